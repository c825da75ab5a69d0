/*
 * grpo: the clipped policy-gradient surrogate with KL and entropy terms, per token, and its
 * gradient with respect to each token's log-probability. Pure math over flat arrays: the model
 * computes log-probs (policy/model.h) and turns dL/dlogp back into parameter gradients.
 *
 * For token t of sequence i with advantage A_i, new log-prob l, behaviour log-prob l_old (the
 * unmodified policy when the sample was drawn) and reference log-prob l_ref:
 *     ratio  r = exp(l - l_old)
 *     surr     = min(r·A, clip(r, 1-clip_low, 1+clip_high)·A)         (clip-higher when high > low)
 *     dual clip (A < 0, dual_clip = c > 1): surr = max(surr, c·A)
 *     kl       = k1: l - l_ref | k2: ½(l - l_ref)² | k3: exp(l_ref - l) - (l_ref - l) - 1
 *     loss_t   = -surr + kl_coef·kl - entropy_coef·H_t
 * Aggregation over the batch (mask excludes prompt, padding and masked-out tokens):
 *     token_mean            Σ loss_t / Σ mask
 *     seq_mean_token_mean   mean over sequences of (Σ_t loss_t / n_i)
 *     dr_grpo               Σ loss_t / (n_seq · norm_tokens)      (Dr. GRPO's constant normaliser)
 *
 * Owns: nothing.
 */
#ifndef RL_GRPO_H
#define RL_GRPO_H

#include <stdint.h>

typedef enum rl_kl_estimator { RL_KL_K1 = 0, RL_KL_K2 = 1, RL_KL_K3 = 2 } rl_kl_estimator;
typedef enum rl_loss_agg {
    RL_AGG_TOKEN_MEAN = 0,
    RL_AGG_SEQ_MEAN_TOKEN_MEAN = 1,
    RL_AGG_DR_GRPO = 2,
} rl_loss_agg;

typedef struct rl_pg_params {
    float clip_low, clip_high; // ratio clip range [1 - low, 1 + high]
    float dual_clip;           // 0 = off, else c > 1 bounds the loss of negative-advantage tokens
    float kl_coef;             // 0 = no KL term (then ref_logp may be NULL)
    rl_kl_estimator kl_estimator;
    float entropy_coef; // entropy bonus weight (0 = off; then entropy may be NULL)
    rl_loss_agg agg;
    int norm_tokens; // dr_grpo's constant per-sequence token count
    // Sequences (and their tokens) of the same batch that are not passed in but still count in
    // the denominators: a caller may leave out sequences whose every term is exactly zero
    // (advantage 0, no KL, no entropy bonus) to save their forward and backward passes.
    int extra_seqs;
    double extra_tokens;
} rl_pg_params;

typedef struct rl_pg_stats {
    double loss;       // the aggregated objective (what the gradient descends)
    double pg_loss;    // -surrogate part, aggregated the same way
    double kl;         // mean KL estimate per token (masked)
    double entropy;    // mean entropy per token (masked)
    double clip_frac;  // share of tokens where the clip was active (gradient zeroed)
    double ratio_mean; // mean ratio
    double n_tokens;   // Σ mask
} rl_pg_stats;

// The loss for a batch of B sequences laid out [B, T] (row i's tokens at i*T .. i*T+T-1).
//   logp      [B, T]  new log-probs of the taken tokens
//   old_logp  [B, T]  behaviour log-probs recorded at sampling time
//   ref_logp  [B, T]  reference-policy log-probs (NULL when kl_coef == 0)
//   entropy   [B, T]  per-position entropy (NULL when entropy_coef == 0)
//   mask      [B, T]  1 for tokens that count, 0 otherwise
//   adv       [B]     advantage of each sequence
// Writes dlogp [B, T] = dloss/dlogp and dentropy [B, T] = dloss/dentropy (NULL allowed when
// entropy_coef == 0) and returns the statistics.
rl_pg_stats rl_pg_loss(const rl_pg_params *p, int B, int T, const float *logp,
                       const float *old_logp, const float *ref_logp, const float *entropy,
                       const float *mask, const float *adv, float *dlogp, float *dentropy);

#endif
