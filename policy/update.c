// update: reference log-probs once, then epochs x minibatches of PG loss, backward and AdamW.
#include "policy/update.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void rl_pg_rows_alloc(rl_pg_rows *r, int B, int T) {
    size_t n = (size_t)B * T;
    memset(r, 0, sizeof *r);
    r->B = B;
    r->T = T;
    r->tokens = rl_calloc(n ? n : 1, sizeof(int32_t));
    r->lengths = rl_calloc(B ? (size_t)B : 1, sizeof(int32_t));
    r->targets = rl_malloc((n ? n : 1) * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) r->targets[i] = -1;
    r->old_logp = rl_calloc(n ? n : 1, sizeof(float));
    r->mask = rl_calloc(n ? n : 1, sizeof(float));
    r->adv = rl_calloc(B ? (size_t)B : 1, sizeof(float));
}

void rl_pg_rows_free(rl_pg_rows *r) {
    free(r->tokens);
    free(r->lengths);
    free(r->targets);
    free(r->old_logp);
    free(r->mask);
    free(r->adv);
    memset(r, 0, sizeof *r);
}

// One minibatch repacked to its own longest row, with the model's outputs and loss gradients.
typedef struct mb_rows {
    int B, T;
    int32_t *tokens, *lengths, *targets;                           // [B,T], [B], [B,T]
    float *mask, *old_logp, *logp, *ref_logp, *ent, *dlogp, *dent; // [B,T]
    float *adv;                                                    // [B]
} mb_rows;

static int mb_lo(int B, int M, int mb) {
    return (int)((long)B * mb / M);
}

// Rows [lo, hi) of r, cut to the longest of them (at least 1).
static void mb_pack(mb_rows *u, const rl_pg_rows *r, int lo, int hi) {
    int nb = hi - lo, T = 1;
    for (int i = lo; i < hi; i++)
        if (r->lengths[i] > T) T = r->lengths[i];
    size_t n = (size_t)nb * T;
    u->B = nb;
    u->T = T;
    u->tokens = rl_calloc(n, sizeof(int32_t));
    u->targets = rl_calloc(n, sizeof(int32_t));
    u->lengths = rl_calloc((size_t)nb, sizeof(int32_t));
    u->mask = rl_calloc(n, sizeof(float));
    u->old_logp = rl_calloc(n, sizeof(float));
    u->logp = rl_calloc(n, sizeof(float));
    u->ref_logp = rl_calloc(n, sizeof(float));
    u->ent = rl_calloc(n, sizeof(float));
    u->dlogp = rl_calloc(n, sizeof(float));
    u->dent = rl_calloc(n, sizeof(float));
    u->adv = rl_calloc((size_t)nb, sizeof(float));
    for (int b = 0; b < nb; b++) {
        size_t src = (size_t)(lo + b) * r->T, dst = (size_t)b * T;
        memcpy(u->tokens + dst, r->tokens + src, (size_t)T * sizeof(int32_t));
        memcpy(u->targets + dst, r->targets + src, (size_t)T * sizeof(int32_t));
        memcpy(u->mask + dst, r->mask + src, (size_t)T * sizeof(float));
        memcpy(u->old_logp + dst, r->old_logp + src, (size_t)T * sizeof(float));
        u->lengths[b] = r->lengths[lo + b];
        u->adv[b] = r->adv[lo + b];
    }
}

static void mb_free(mb_rows *u) {
    free(u->tokens);
    free(u->targets);
    free(u->lengths);
    free(u->mask);
    free(u->old_logp);
    free(u->logp);
    free(u->ref_logp);
    free(u->ent);
    free(u->dlogp);
    free(u->dent);
    free(u->adv);
}

// The frozen reference's log-probs of every row, written [B, rows->T] in the rows' layout. Each
// minibatch is scored with exactly the shape the update uses for it.
static int reference_logprobs(rl_model *ref, const rl_pg_rows *r, int M, float *ref_logp,
                              rl_err *err) {
    for (int mb = 0; mb < M; mb++) {
        int lo = mb_lo(r->B, M, mb), hi = mb_lo(r->B, M, mb + 1);
        mb_rows u;
        mb_pack(&u, r, lo, hi);
        // Scoring mode: the reference never trains, so it keeps no activations.
        int rc = rl_model_score_logprobs(ref, u.tokens, u.lengths, u.B, u.T, u.targets, 1.0f,
                                         u.ref_logp, NULL, err);
        for (int b = 0; b < u.B && !rc; b++)
            memcpy(ref_logp + (size_t)(lo + b) * r->T, u.ref_logp + (size_t)b * u.T,
                   (size_t)u.T * sizeof(float));
        mb_free(&u);
        if (rc) return rc;
    }
    return 0;
}

int rl_policy_update(rl_model *m, rl_model *ref, rl_adamw *opt, const rl_pg_rows *rows,
                     const rl_update_params *p, rl_update_stats *us, rl_err *err) {
    memset(us, 0, sizeof *us);
    int B = rows->B;
    if (B == 0) return 0;
    int M = p->minibatches > 0 ? p->minibatches : 1;
    if (M > B) M = B;
    size_t n_params;
    float *params = rl_model_params(m, &n_params);
    rl_pg_params pp = p->pg;
    float *ref_all = NULL;
    int rc = 0;
    if (ref) {
        ref_all = rl_calloc((size_t)B * rows->T, sizeof(float));
        if ((rc = reference_logprobs(ref, rows, M, ref_all, err))) goto done;
    }
    for (int e = 0; e < p->epochs && rc == 0; e++) {
        for (int mb = 0; mb < M && rc == 0; mb++) {
            int lo = mb_lo(B, M, mb), hi = mb_lo(B, M, mb + 1), nb = hi - lo;
            // The left-out zero-contribution rows are spread evenly over the minibatches.
            pp.extra_seqs =
                (int)((long)rows->extra_seqs * (mb + 1) / M - (long)rows->extra_seqs * mb / M);
            pp.extra_tokens = rows->extra_tokens * nb / B;
            mb_rows u;
            mb_pack(&u, rows, lo, hi);
            if (ref)
                for (int b = 0; b < nb; b++)
                    memcpy(u.ref_logp + (size_t)b * u.T, ref_all + (size_t)(lo + b) * rows->T,
                           (size_t)u.T * sizeof(float));
            if ((rc = rl_model_forward(m, u.tokens, u.lengths, nb, u.T, err)) ||
                (rc = rl_model_token_logprobs(m, u.targets, 1.0f, u.logp, u.ent, err))) {
                mb_free(&u);
                break;
            }
            rl_pg_stats ps = rl_pg_loss(&pp, nb, u.T, u.logp, u.old_logp, ref ? u.ref_logp : NULL,
                                        u.ent, u.mask, u.adv, u.dlogp, u.dent);
            rl_model_zero_grad(m);
            rc = rl_model_backward(m, u.dlogp, pp.entropy_coef != 0 ? u.dent : NULL, err);
            for (int b = 0; b < nb; b++) us->tokens += u.lengths[b];
            mb_free(&u);
            if (rc) break;
            // Data-parallel seam: with several ranks, the gradient block (rl_model_grads) and the
            // loss are all-reduced here, and only here, before the norm is taken; every rank
            // then clips and steps identically.
            double gnorm = rl_model_grad_norm(m);
            us->n_updates++;
            us->loss += ps.loss;
            us->kl += ps.kl;
            us->entropy += ps.entropy;
            us->clip_frac += ps.clip_frac;
            us->grad_norm += gnorm;
            if (!isfinite(ps.loss) || !isfinite(gnorm)) {
                us->nonfinite = 1; // skip this update; the caller counts the streak
                continue;
            }
            size_t ng;
            float *grads = rl_model_grads(m, &ng);
            rl_adamw_step(opt, params, grads, &p->adamw, rl_clip_scale(gnorm, p->grad_clip));
        }
    }
    if (us->n_updates > 0) {
        us->loss /= us->n_updates;
        us->kl /= us->n_updates;
        us->entropy /= us->n_updates;
        us->clip_frac /= us->n_updates;
        us->grad_norm /= us->n_updates;
    }
done:
    free(ref_all);
    return rc;
}
