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

// ---- data parallel -------------------------------------------------------------------------

void rl_update_shard(size_t n, const rl_comm *comm, size_t *lo, size_t *hi, size_t *shard) {
    size_t W = comm ? (size_t)comm->world : 1, r = comm ? (size_t)comm->rank : 0;
    size_t S = (n + W - 1) / W;
    *shard = S;
    *lo = r * S < n ? r * S : n;
    *hi = *lo + S < n ? *lo + S : n;
}

static int sharded(const rl_comm *comm, int zero) {
    return zero && comm && comm->world > 1;
}

int rl_update_optimizer(rl_adamw **out, rl_model *m, const rl_comm *comm, int zero, rl_err *err) {
    size_t n;
    rl_model_params(m, &n);
    int ns;
    const rl_param_span *spans = rl_model_decay_spans(m, &ns);
    if (!sharded(comm, zero)) return rl_adamw_create(out, m->be, n, spans, ns, err);
    size_t lo, hi, S;
    rl_update_shard(n, comm, &lo, &hi, &S);
    // The decay spans cut to [lo, hi), offsets relative to lo.
    rl_param_span *cut = rl_malloc((size_t)(ns + 1) * sizeof *cut);
    int nc = 0;
    for (int i = 0; i < ns; i++) {
        size_t a = spans[i].offset, b = a + spans[i].count;
        if (a < lo) a = lo;
        if (b > hi) b = hi;
        if (a < b) cut[nc++] = (rl_param_span){a - lo, b - a, spans[i].decay};
    }
    int rc = rl_adamw_create(out, m->be, hi - lo, cut, nc, err);
    free(cut);
    return rc;
}

// One moment array's shards to rank 0, in pieces small enough for one gather (MPI counts are int).
static int gather_moments(const rl_comm *comm, const float *mine, size_t k, size_t n, size_t S,
                          float *full, rl_err *err) {
    size_t piece = ((size_t)1 << 29) / (sizeof(float) * (size_t)comm->world); // <= 512 MiB a call
    size_t *sizes = rl_calloc((size_t)comm->world, sizeof(size_t));
    int rc = 0;
    for (size_t off = 0; off < S && rc == 0; off += piece) {
        size_t cnt = off < k ? (k - off < piece ? k - off : piece) : 0;
        void *all = NULL;
        rc = comm->gather_bytes(comm, mine + off, cnt * sizeof(float), &all, sizes, err);
        if (rc == 0 && comm->rank == 0) {
            const char *at = all;
            for (int q = 0; q < comm->world; q++) {
                size_t qlo = (size_t)q * S < n ? (size_t)q * S : n;
                memcpy(full + qlo + off, at, sizes[q]);
                at += sizes[q];
            }
        }
        free(all);
    }
    free(sizes);
    return rc;
}

int rl_update_opt_gather(const rl_adamw *opt, const rl_comm *comm, size_t n, float *m_full,
                         float *v_full, rl_err *err) {
    size_t lo, hi, S;
    rl_update_shard(n, comm, &lo, &hi, &S);
    size_t k = hi - lo;
    float *mh = rl_malloc((k ? k : 1) * sizeof(float)),
          *vh = rl_malloc((k ? k : 1) * sizeof(float));
    rl_adamw_state_download(opt, mh, vh);
    int rc = gather_moments(comm, mh, k, n, S, m_full, err);
    if (rc == 0) rc = gather_moments(comm, vh, k, n, S, v_full, err);
    free(mh);
    free(vh);
    return rc;
}

// Scratch of a ZeRO-1 update: the gradient padded to world x shard, this rank's reduced shard.
typedef struct zero_bufs {
    size_t n, lo, hi, S;
    float *pad;   // [world * S] backend memory
    float *shard; // [S] backend memory
} zero_bufs;

// Reduce-scatter of the gradient; returns this shard's sum of squares (the caller sums ranks).
static int zero_reduce(const rl_backend *be, const rl_comm *comm, zero_bufs *z, const float *grads,
                       double *sumsq, rl_err *err) {
    size_t W = (size_t)comm->world;
    be->mem_copy(be, z->pad, grads, z->n * sizeof(float));
    if (W * z->S > z->n) be->mem_zero(be, z->pad + z->n, (W * z->S - z->n) * sizeof(float));
    RL_TRY(comm->reduce_scatter_sum(comm, z->pad, z->shard, z->S, err));
    *sumsq = z->hi > z->lo ? be->sumsq(be, z->shard, z->hi - z->lo) : 0.0;
    return 0;
}

// After the shard's update: every rank's shard of the weights to every rank.
static int zero_gather(const rl_backend *be, const rl_comm *comm, zero_bufs *z, float *params,
                       rl_err *err) {
    float *mine = z->pad + (size_t)comm->rank * z->S;
    if (z->hi > z->lo) be->mem_copy(be, mine, params + z->lo, (z->hi - z->lo) * sizeof(float));
    RL_TRY(comm->all_gather(comm, mine, z->pad, z->S, err));
    be->mem_copy(be, params, z->pad, z->n * sizeof(float));
    return 0;
}

int rl_update_apply(rl_model *m, rl_adamw *opt, const rl_comm *comm, int zero,
                    const rl_adamw_hparams *hp, float grad_clip, double *stats, int n_stats,
                    double *gnorm, int *skipped, rl_err *err) {
    const rl_backend *be = m->be;
    size_t n;
    float *params = rl_model_params(m, &n);
    float *grads = rl_model_grads(m, NULL);
    *skipped = 0;
    *gnorm = 0;
    if (!comm || comm->world == 1) {
        *gnorm = rl_model_grad_norm(m);
    } else {
        zero_bufs z = {.n = n};
        double *st = rl_malloc((size_t)(n_stats + 1) * sizeof(double));
        memcpy(st, stats, (size_t)n_stats * sizeof(double));
        st[n_stats] = 0;
        int rc = 0;
        if (zero) {
            rl_update_shard(n, comm, &z.lo, &z.hi, &z.S);
            z.pad = be->mem_alloc(be, (size_t)comm->world * z.S * sizeof(float));
            z.shard = be->mem_alloc(be, (z.S ? z.S : 1) * sizeof(float));
            rc = zero_reduce(be, comm, &z, grads, &st[n_stats], err);
        } else
            rc = comm->all_reduce_sum(comm, grads, n, err);
        if (rc == 0) rc = comm->all_reduce_f64(comm, st, n_stats + 1, err);
        if (rc == 0) {
            memcpy(stats, st, (size_t)n_stats * sizeof(double));
            *gnorm = zero ? sqrt(st[n_stats]) : rl_model_grad_norm(m);
            if ((n_stats > 0 && !isfinite(stats[0])) || !isfinite(*gnorm))
                *skipped = 1;
            else if (zero) {
                rl_adamw_step(opt, params + z.lo, z.shard, hp, rl_clip_scale(*gnorm, grad_clip));
                rc = zero_gather(be, comm, &z, params, err);
            } else
                rl_adamw_step(opt, params, grads, hp, rl_clip_scale(*gnorm, grad_clip));
        }
        free(st);
        if (z.pad) be->mem_free(be, z.pad);
        if (z.shard) be->mem_free(be, z.shard);
        return rc;
    }
    if ((n_stats > 0 && !isfinite(stats[0])) || !isfinite(*gnorm))
        *skipped = 1;
    else
        rl_adamw_step(opt, params, grads, hp, rl_clip_scale(*gnorm, grad_clip));
    return 0;
}

// Local counts of one minibatch for the global normalisers.
static void mb_counts(const mb_rows *u, double c[3]) {
    double tok = 0, used = 0;
    for (int b = 0; b < u->B; b++) {
        double n_b = 0;
        for (int t = 0; t < u->T; t++) n_b += u->mask[(size_t)b * u->T + t];
        tok += n_b;
        used += n_b > 0;
    }
    c[0] = tok;
    c[1] = used;
    c[2] = u->B;
}

int rl_policy_update(rl_model *m, rl_model *ref, rl_adamw *opt, const rl_pg_rows *rows,
                     const rl_update_params *p, rl_update_stats *us, rl_err *err) {
    memset(us, 0, sizeof *us);
    const rl_comm *comm = p->comm && p->comm->world > 1 ? p->comm : NULL;
    int B = rows->B;
    int64_t Bg = B;
    if (comm) RL_TRY(comm->all_reduce_i64(comm, &Bg, 1, err));
    if (Bg == 0) return 0;
    // The same number of minibatches on every rank (collectives pair up).
    int M = p->minibatches > 0 ? p->minibatches : 1;
    if (M > Bg) M = (int)Bg;
    rl_pg_params pp = p->pg;
    float *ref_all = NULL;
    int rc = 0;
    if (ref && B > 0) {
        ref_all = rl_calloc((size_t)B * rows->T, sizeof(float));
        if ((rc = reference_logprobs(ref, rows, M, ref_all, err))) goto done;
    }
    for (int e = 0; e < p->epochs && rc == 0; e++) {
        for (int mb = 0; mb < M && rc == 0; mb++) {
            int lo = mb_lo(B, M, mb), hi = mb_lo(B, M, mb + 1), nb = hi - lo;
            // The left-out zero-contribution rows are spread evenly over the minibatches.
            int ex_seqs =
                (int)((long)rows->extra_seqs * (mb + 1) / M - (long)rows->extra_seqs * mb / M);
            // (A rank with no rows of its own still counts its left-out rows, evenly.)
            double ex_tokens = B > 0 ? rows->extra_tokens * nb / B : rows->extra_tokens / M;
            pp.extra_seqs = ex_seqs;
            pp.extra_tokens = ex_tokens;
            mb_rows u;
            mb_pack(&u, rows, lo, hi);
            if (comm) {
                // Global normalisers: this rank's loss is its share of the global mean.
                double loc[3], glob[3];
                mb_counts(&u, loc);
                glob[0] = loc[0] + ex_tokens;
                glob[1] = loc[1] + ex_seqs;
                glob[2] = loc[2] + ex_seqs;
                if ((rc = comm->all_reduce_f64(comm, glob, 3, err))) {
                    mb_free(&u);
                    break;
                }
                pp.extra_tokens = glob[0] - loc[0];
                pp.extra_seqs = (int)(pp.agg == RL_AGG_SEQ_MEAN_TOKEN_MEAN ? glob[1] - loc[1]
                                                                           : glob[2] - loc[2]);
            }
            if (ref)
                for (int b = 0; b < nb; b++)
                    memcpy(u.ref_logp + (size_t)b * u.T, ref_all + (size_t)(lo + b) * rows->T,
                           (size_t)u.T * sizeof(float));
            rl_pg_stats ps = {0};
            rl_model_zero_grad(m);
            if (nb > 0) {
                if ((rc = rl_model_forward(m, u.tokens, u.lengths, nb, u.T, err)) ||
                    (rc = rl_model_token_logprobs(m, u.targets, 1.0f, u.logp, u.ent, err))) {
                    mb_free(&u);
                    break;
                }
                ps = rl_pg_loss(&pp, nb, u.T, u.logp, u.old_logp, ref ? u.ref_logp : NULL, u.ent,
                                u.mask, u.adv, u.dlogp, u.dent);
                rc = rl_model_backward(m, u.dlogp, pp.entropy_coef != 0 ? u.dent : NULL, err);
            }
            for (int b = 0; b < nb; b++) us->tokens += u.lengths[b];
            mb_free(&u);
            if (rc) break;
            // Data-parallel seam: the gradient block and the loss are reduced here, and only
            // here, before the norm is taken; every rank then clips and steps identically.
            double st[5] = {ps.loss, ps.kl * ps.n_tokens, ps.entropy * ps.n_tokens,
                            ps.clip_frac * ps.n_tokens, ps.n_tokens};
            double gnorm;
            int skipped;
            if ((rc = rl_update_apply(m, opt, p->comm, p->zero, &p->adamw, p->grad_clip, st, 5,
                                      &gnorm, &skipped, err)))
                break;
            if (comm) {
                ps.loss = st[0];
                ps.kl = st[4] > 0 ? st[1] / st[4] : 0;
                ps.entropy = st[4] > 0 ? st[2] / st[4] : 0;
                ps.clip_frac = st[4] > 0 ? st[3] / st[4] : 0;
            }
            us->n_updates++;
            us->loss += ps.loss;
            us->kl += ps.kl;
            us->entropy += ps.entropy;
            us->clip_frac += ps.clip_frac;
            us->grad_norm += gnorm;
            if (skipped) us->nonfinite = 1; // the caller counts the streak
        }
    }
    if (comm && rc == 0) {
        double t = us->tokens;
        rc = comm->all_reduce_f64(comm, &t, 1, err);
        us->tokens = t;
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
