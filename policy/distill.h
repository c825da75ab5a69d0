/*
 * distill: the mathematics of token-level knowledge distillation — the temperature of each token
 * (fixed, or dynamic from the teacher's uncertainty and a decaying schedule), the KL divergence
 * between the teacher's and the student's distributions at that temperature (forward or reverse),
 * its gradient with respect to the student's logits, and the teacher's top-k summary that can be
 * cached to disk. Everything here works on host rows of V floats; the loop that feeds it lives in
 * cli/distill.c.
 *
 * Temperature (tau) of one token, with h = H(p_T) / log V the teacher's normalised entropy at
 * temperature 1 (0 = certain, 1 = uniform) and progress in [0, 1] the fraction of training done:
 *
 *   fixed:    tau = tau_fixed
 *   dynamic:  tau = (tau_min + (tau_max - tau_min) * h) * s(progress)
 *             s(progress) = s_end + (s_start - s_end) * d(progress)
 *             d = (1 + cos(pi * progress)) / 2   (cosine)   or   1 - progress   (linear)
 *
 * so an uncertain teacher token gets a higher temperature than a confident one, and every
 * temperature shrinks from s_start x to s_end x over training (high early to explore, low late
 * to focus).
 *
 * Loss of one token at temperature tau, p = softmax(t / tau), q = softmax(z / tau), where t are
 * the teacher's log-probabilities at temperature 1 (any logits give the same p) and z the
 * student's logits:
 *
 *   forward:  L = tau^2 * KL(p || q) = tau^2 * sum_i p_i (log p_i - log q_i)
 *   reverse:  L = tau^2 * KL(q || p) = tau^2 * sum_i q_i (log q_i - log p_i)
 *
 * and, tau being a constant of the token (it depends on the teacher and the step only),
 *
 *   forward:  dL/dz_j = tau * (q_j - p_j)
 *   reverse:  dL/dz_j = tau * q_j * ((log q_j - log p_j) - KL(q || p))
 *
 * The tau^2 factor (Hinton et al.) keeps the gradient's size comparable across temperatures.
 *
 * Top-k summary: the k most likely teacher tokens with their log-probabilities, the teacher's
 * entropy (exact, over the whole vocabulary) and nothing else; the distribution is rebuilt over
 * the whole vocabulary by spreading the remaining mass 1 - sum_k p uniformly over the other V - k
 * tokens (exact when k = V).
 *
 * Owns: nothing; every function writes into caller memory.
 */
#ifndef RL_DISTILL_H
#define RL_DISTILL_H

#include <stdint.h>

enum { RL_DISTILL_TAU_FIXED = 0, RL_DISTILL_TAU_DYNAMIC = 1 };
enum { RL_DISTILL_DECAY_COSINE = 0, RL_DISTILL_DECAY_LINEAR = 1 };
enum { RL_DISTILL_KL_FORWARD = 0, RL_DISTILL_KL_REVERSE = 1 };

typedef struct rl_distill_tau {
    int mode;        // RL_DISTILL_TAU_*
    double fixed;    // tau when fixed
    double min, max; // dynamic: the range the normalised entropy is mapped into
    double s_start;  // dynamic: schedule factor at progress 0
    double s_end;    // dynamic: schedule factor at progress 1
    int decay;       // RL_DISTILL_DECAY_*
} rl_distill_tau;

// The schedule factor s(progress) above (1 for fixed tau); progress is clamped to [0, 1].
double rl_distill_schedule(const rl_distill_tau *t, double progress);

// Tau of a token whose teacher has normalised entropy h (clamped to [0, 1]) at `progress`.
double rl_distill_tau_of(const rl_distill_tau *t, double h, double progress);

// Log-softmax of x[V] into out[V] (double), returning the entropy of the distribution.
double rl_distill_log_softmax(const float *x, int V, double *out);

// One token: loss (tau^2 KL, see above) of the student's logits z[V] against the teacher's
// log-probabilities tlogp[V] (temperature 1) at temperature tau, and, when dz is not NULL, its
// gradient with respect to z times `scale` written to dz[V]. work is scratch of 2*V doubles.
double rl_distill_token(int kl, const float *tlogp, const float *z, int V, double tau, double scale,
                        float *dz, double *work);

// The k most likely entries of tlogp[V] (ties: lower id first) into ids/logp (k <= V).
void rl_distill_topk_of(const float *tlogp, int V, int k, int32_t *ids, float *logp);

// Rebuilds log-probabilities over V tokens from k of them (see above) into tlogp[V].
void rl_distill_from_topk(const int32_t *ids, const float *logp, int k, int V, float *tlogp);

#endif
