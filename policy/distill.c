// distill: temperature, KL loss and gradient of token-level distillation. See distill.h.
#include "policy/distill.h"

#include <math.h>
#include <stddef.h>

static const double PI = 3.14159265358979323846;

double rl_distill_schedule(const rl_distill_tau *t, double progress) {
    if (t->mode != RL_DISTILL_TAU_DYNAMIC) return 1.0;
    if (!(progress > 0)) progress = 0; // also NaN
    if (progress > 1) progress = 1;
    double d =
        t->decay == RL_DISTILL_DECAY_LINEAR ? 1.0 - progress : 0.5 * (1.0 + cos(PI * progress));
    return t->s_end + (t->s_start - t->s_end) * d;
}

double rl_distill_tau_of(const rl_distill_tau *t, double h, double progress) {
    if (t->mode != RL_DISTILL_TAU_DYNAMIC) return t->fixed;
    if (!(h > 0)) h = 0;
    if (h > 1) h = 1;
    return (t->min + (t->max - t->min) * h) * rl_distill_schedule(t, progress);
}

double rl_distill_log_softmax(const float *x, int V, double *out) {
    double mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (x[i] > mx) mx = x[i];
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)x[i] - mx);
    double lse = mx + log(sum), ent = 0;
    for (int i = 0; i < V; i++) {
        out[i] = (double)x[i] - lse;
        double p = exp(out[i]);
        if (p > 0) ent -= p * out[i];
    }
    return ent;
}

// log-softmax of x / tau into out.
static void log_softmax_at(const float *x, int V, double tau, double *out) {
    double mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (x[i] > mx) mx = x[i];
    double sum = 0;
    for (int i = 0; i < V; i++) {
        out[i] = ((double)x[i] - mx) / tau;
        sum += exp(out[i]);
    }
    double ls = log(sum);
    for (int i = 0; i < V; i++) out[i] -= ls;
}

double rl_distill_token(int kl, const float *tlogp, const float *z, int V, double tau, double scale,
                        float *dz, double *work) {
    double *lp = work, *lq = work + V;
    log_softmax_at(tlogp, V, tau, lp);
    log_softmax_at(z, V, tau, lq);
    double d = 0;
    if (kl == RL_DISTILL_KL_REVERSE) {
        for (int i = 0; i < V; i++) {
            double q = exp(lq[i]);
            if (q > 0) d += q * (lq[i] - lp[i]);
        }
        if (dz)
            for (int i = 0; i < V; i++) {
                double q = exp(lq[i]);
                dz[i] = q > 0 ? (float)(scale * tau * q * ((lq[i] - lp[i]) - d)) : 0.0f;
            }
    } else {
        for (int i = 0; i < V; i++) {
            double p = exp(lp[i]);
            if (p > 0) d += p * (lp[i] - lq[i]);
        }
        if (dz)
            for (int i = 0; i < V; i++) dz[i] = (float)(scale * tau * (exp(lq[i]) - exp(lp[i])));
    }
    return tau * tau * d;
}

void rl_distill_topk_of(const float *tlogp, int V, int k, int32_t *ids, float *logp) {
    // k passes of a selection: k is small (tens) next to V, and this runs once per cached token.
    int n = 0;
    for (int i = 0; i < V; i++) {
        // insertion into the sorted top list (descending, lower id first on ties)
        float v = tlogp[i];
        if (n == k && !(v > logp[k - 1])) continue;
        int at = n < k ? n++ : k - 1;
        while (at > 0 && v > logp[at - 1]) {
            ids[at] = ids[at - 1];
            logp[at] = logp[at - 1];
            at--;
        }
        ids[at] = i;
        logp[at] = v;
    }
}

void rl_distill_from_topk(const int32_t *ids, const float *logp, int k, int V, float *tlogp) {
    double kept = 0;
    for (int j = 0; j < k; j++) kept += exp((double)logp[j]);
    double rest = 1.0 - kept;
    // The tail's share per token; a teacher that put (numerically) everything on its top k gets
    // a floor far below any kept token instead of log(0).
    float tail = (float)(V > k && rest > 1e-30 ? log(rest / (V - k)) : -69.0);
    for (int i = 0; i < V; i++) tlogp[i] = tail;
    for (int j = 0; j < k; j++) tlogp[ids[j]] = logp[j];
}
