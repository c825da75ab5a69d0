// grpo: per-token clipped surrogate, KL and entropy terms and their gradients. See grpo.h.
#include "policy/grpo.h"

#include <math.h>
#include <stddef.h>

// KL estimate and its derivative with respect to the new log-prob l.
static double kl_term(rl_kl_estimator est, double l, double l_ref, double *dkl) {
    double d = l_ref - l;
    switch (est) {
    case RL_KL_K1:
        *dkl = 1.0;
        return -d;
    case RL_KL_K2:
        *dkl = -d;
        return 0.5 * d * d;
    default: {
        double e = exp(d);
        *dkl = 1.0 - e; // d/dl [exp(l_ref - l) - (l_ref - l) - 1]
        return e - d - 1.0;
    }
    }
}

// -surrogate for one token and its derivative with respect to l; *clipped tells whether the
// clipped branch was taken (no gradient).
static double pg_term(const rl_pg_params *p, double l, double l_old, double a, double *dl,
                      int *clipped) {
    double r = exp(l - l_old);
    double lo = 1.0 - p->clip_low, hi = 1.0 + p->clip_high;
    double rc = r < lo ? lo : (r > hi ? hi : r);
    double unclipped = r * a, clippedv = rc * a;
    double surr;
    int use_clipped;
    if (clippedv < unclipped)
        surr = clippedv, use_clipped = 1;
    else
        surr = unclipped, use_clipped = 0;
    // min() picks the unclipped branch on ties, and inside the range both are equal anyway.
    if (use_clipped && rc == r) use_clipped = 0;
    if (p->dual_clip > 1.0f && a < 0 && surr < p->dual_clip * a) {
        surr = p->dual_clip * a;
        use_clipped = 1;
    }
    *clipped = use_clipped;
    *dl = use_clipped ? 0.0 : -r * a; // d(-r·a)/dl = -r·a
    return -surr;
}

rl_pg_stats rl_pg_loss(const rl_pg_params *p, int B, int T, const float *logp,
                       const float *old_logp, const float *ref_logp, const float *entropy,
                       const float *mask, const float *adv, float *dlogp, float *dentropy) {
    rl_pg_stats st = {0};
    double n_tok = p->extra_tokens, n_seq_used = p->extra_seqs;
    for (size_t i = 0; i < (size_t)B * T; i++) n_tok += mask[i];
    for (int b = 0; b < B; b++) {
        double n_b = 0;
        for (int t = 0; t < T; t++) n_b += mask[(size_t)b * T + t];
        if (n_b > 0) n_seq_used++;
    }
    int n_seq_all = B + p->extra_seqs;
    double clip_count = 0, ratio_sum = 0, kl_sum = 0, ent_sum = 0;
    for (int b = 0; b < B; b++) {
        const size_t row = (size_t)b * T;
        double n_b = 0;
        for (int t = 0; t < T; t++) n_b += mask[row + t];
        // Weight of one token's loss in the aggregate.
        double w = 0;
        if (n_b > 0) {
            switch (p->agg) {
            case RL_AGG_TOKEN_MEAN:
                w = 1.0 / n_tok;
                break;
            case RL_AGG_SEQ_MEAN_TOKEN_MEAN:
                w = 1.0 / (n_b * n_seq_used);
                break;
            default:
                w = 1.0 / ((double)n_seq_all * (p->norm_tokens > 0 ? p->norm_tokens : T));
                break;
            }
        }
        for (int t = 0; t < T; t++) {
            size_t i = row + t;
            dlogp[i] = 0;
            if (dentropy) dentropy[i] = 0;
            if (mask[i] == 0) continue;
            double m = mask[i];
            double dl, dkl = 0, kl = 0;
            int clipped;
            double pg = pg_term(p, logp[i], old_logp[i], adv[b], &dl, &clipped);
            double loss_t = pg;
            double grad = dl;
            if (p->kl_coef != 0 && ref_logp) {
                kl = kl_term(p->kl_estimator, logp[i], ref_logp[i], &dkl);
                loss_t += p->kl_coef * kl;
                grad += p->kl_coef * dkl;
            }
            if (p->entropy_coef != 0 && entropy) {
                loss_t -= p->entropy_coef * entropy[i];
                if (dentropy) dentropy[i] = (float)(-p->entropy_coef * w * m);
            }
            st.loss += w * m * loss_t;
            st.pg_loss += w * m * pg;
            dlogp[i] = (float)(w * m * grad);
            clip_count += m * clipped;
            ratio_sum += m * exp(logp[i] - old_logp[i]);
            kl_sum += m * kl;
            if (entropy) ent_sum += m * entropy[i];
        }
    }
    // Statistics are over the tokens passed in (the left-out ones have ratio 1, no clip).
    double n_in = n_tok - p->extra_tokens;
    st.n_tokens = n_in;
    if (n_in > 0) {
        st.clip_frac = clip_count / n_in;
        st.ratio_mean = ratio_sum / n_in;
        st.kl = kl_sum / n_in;
        st.entropy = ent_sum / n_in;
    }
    return st;
}
