// test_update: rl_policy_update on a tiny random model — bit-for-bit the same as the update
// composed step by step from the model, the PG loss and AdamW (reference log-probs every epoch, as
// the loop in cli/ did before), the policy moving toward positive advantages, the non-finite skip,
// epoch x minibatch counts and the empty batch; the scoring-only log-prob forward the reference
// uses; rl_lr_at's schedules.
#include "kernels/rng.h"
#include "policy/model.h"
#include "policy/optim.h"
#include "policy/update.h"
#include "test_model_util.h"
#include "test_util.h"

#include <stdint.h>
#include <string.h>

static const rl_backend *BE;
static rl_rng RNG;

static rl_model *make_model(uint64_t seed) {
    rl_model_config c = test_tiny_config();
    c.max_position_embeddings = 64;
    rl_model *m = NULL;
    rl_err err;
    if (rl_model_create(&m, &c, BE, &err)) {
        CHECK(0, "rl_model_create: %s", err.msg);
        exit(1);
    }
    rl_model_init_random(m, seed, 0.3f);
    return m;
}

static rl_adamw *make_opt(rl_model *m) {
    size_t n;
    rl_model_params(m, &n);
    int ns;
    const rl_param_span *sp = rl_model_decay_spans(m, &ns);
    rl_adamw *o;
    rl_err err;
    if (rl_adamw_create(&o, BE, n, sp, ns, &err)) exit(1);
    return o;
}

static float *params_copy(rl_model *m, size_t *n) {
    float *p = rl_model_params(m, n);
    float *h = rl_malloc(*n * sizeof(float));
    BE->mem_download(BE, h, p, *n * sizeof(float));
    return h;
}

// B random rows: a prompt of 2..5 tokens, a completion that fills the row to 4..T tokens,
// behaviour log-probs = the model's own plus noise of size `noise` (so some ratios clip).
static void random_rows(rl_pg_rows *r, rl_model *m, int B, int T, float noise) {
    rl_pg_rows_alloc(r, B, T);
    for (int b = 0; b < B; b++) {
        int len = 4 + (int)(rl_rng_float(&RNG) * (T - 3));
        if (len > T) len = T;
        int np = 2 + (int)(rl_rng_float(&RNG) * 3);
        r->lengths[b] = len;
        for (int t = 0; t < len; t++)
            r->tokens[(size_t)b * T + t] = (int32_t)rl_rng_below(&RNG, 37);
        for (int t = np - 1; t < len - 1; t++) {
            r->targets[(size_t)b * T + t] = r->tokens[(size_t)b * T + t + 1];
            r->mask[(size_t)b * T + t] = 1;
        }
        r->adv[b] = 2.0f * rl_rng_float(&RNG) - 1.0f;
    }
    rl_err err;
    float *lp = rl_malloc((size_t)B * T * sizeof(float));
    CHECK(rl_model_forward(m, r->tokens, r->lengths, B, T, &err) == 0 &&
              rl_model_token_logprobs(m, r->targets, 1.0f, lp, NULL, &err) == 0,
          "scoring rows");
    for (size_t i = 0; i < (size_t)B * T; i++)
        r->old_logp[i] = r->mask[i] ? lp[i] + noise * (2.0f * rl_rng_float(&RNG) - 1.0f) : 0;
    free(lp);
}

static rl_update_params params_for(int epochs, int minibatches, float kl, float ent) {
    rl_update_params p = {0};
    p.pg.clip_low = 0.2f;
    p.pg.clip_high = 0.28f;
    p.pg.kl_coef = kl;
    p.pg.kl_estimator = RL_KL_K3;
    p.pg.entropy_coef = ent;
    p.pg.agg = RL_AGG_SEQ_MEAN_TOKEN_MEAN;
    p.pg.norm_tokens = 16;
    p.adamw = (rl_adamw_hparams){3e-3f, 0.9f, 0.99f, 1e-8f, 0.01f};
    p.grad_clip = 1.0f;
    p.epochs = epochs;
    p.minibatches = minibatches;
    return p;
}

// The same update composed by hand from the primitives, with the reference model scored inside
// the epoch loop (the pre-module code path).
static void update_by_hand(rl_model *m, rl_model *ref, rl_adamw *opt, const rl_pg_rows *r,
                           const rl_update_params *p, double *loss_mean) {
    int B = r->B, M = p->minibatches < B ? p->minibatches : B, n = 0;
    size_t np;
    float *params = rl_model_params(m, &np);
    rl_err err;
    *loss_mean = 0;
    for (int e = 0; e < p->epochs; e++)
        for (int mb = 0; mb < M; mb++) {
            int lo = B * mb / M, hi = B * (mb + 1) / M, nb = hi - lo, T = 1;
            for (int i = lo; i < hi; i++) T = r->lengths[i] > T ? r->lengths[i] : T;
            size_t sz = (size_t)nb * T;
            int32_t *tok = rl_calloc(sz, 4), *tg = rl_calloc(sz, 4), *len = rl_calloc(nb, 4);
            float *mask = rl_calloc(sz, 4), *old = rl_calloc(sz, 4), *lp = rl_calloc(sz, 4),
                  *rlp = rl_calloc(sz, 4), *ent = rl_calloc(sz, 4), *dl = rl_calloc(sz, 4),
                  *de = rl_calloc(sz, 4), *adv = rl_calloc(nb, 4);
            for (int b = 0; b < nb; b++) {
                for (int t = 0; t < T; t++) {
                    size_t s = (size_t)(lo + b) * r->T + t, d = (size_t)b * T + t;
                    tok[d] = r->tokens[s];
                    tg[d] = r->targets[s];
                    mask[d] = r->mask[s];
                    old[d] = r->old_logp[s];
                }
                len[b] = r->lengths[lo + b];
                adv[b] = r->adv[lo + b];
            }
            if (ref) {
                rl_model_forward(ref, tok, len, nb, T, &err);
                rl_model_token_logprobs(ref, tg, 1.0f, rlp, NULL, &err);
            }
            rl_model_forward(m, tok, len, nb, T, &err);
            rl_model_token_logprobs(m, tg, 1.0f, lp, ent, &err);
            rl_pg_params pp = p->pg;
            rl_pg_stats ps =
                rl_pg_loss(&pp, nb, T, lp, old, ref ? rlp : NULL, ent, mask, adv, dl, de);
            rl_model_zero_grad(m);
            rl_model_backward(m, dl, pp.entropy_coef != 0 ? de : NULL, &err);
            double g = rl_model_grad_norm(m);
            size_t ng;
            rl_adamw_step(opt, params, rl_model_grads(m, &ng), &p->adamw,
                          rl_clip_scale(g, p->grad_clip));
            *loss_mean += ps.loss;
            n++;
            free(tok), free(tg), free(len), free(mask), free(old), free(lp), free(rlp);
            free(ent), free(dl), free(de), free(adv);
        }
    *loss_mean /= n;
}

static void test_same_as_by_hand(int epochs, int minibatches, float kl, float ent) {
    char what[96];
    snprintf(what, sizeof what, "epochs %d, minibatches %d, kl %g, entropy %g", epochs, minibatches,
             kl, ent);
    rl_model *a = make_model(7), *b = make_model(7), *ref = kl != 0 ? make_model(8) : NULL;
    rl_adamw *oa = make_opt(a), *ob = make_opt(b);
    rl_pg_rows rows;
    random_rows(&rows, a, 7, 12, 0.3f);
    rl_update_params p = params_for(epochs, minibatches, kl, ent);
    rl_update_stats st;
    rl_err err;
    CHECK(rl_policy_update(a, ref, oa, &rows, &p, &st, &err) == 0, "%s: update: %s", what, err.msg);
    double loss_b;
    update_by_hand(b, ref, ob, &rows, &p, &loss_b);
    size_t n;
    float *pa = params_copy(a, &n), *pb = params_copy(b, &n), *p0;
    rl_model *fresh = make_model(7);
    p0 = params_copy(fresh, &n);
    CHECK(memcmp(pa, pb, n * sizeof(float)) == 0, "%s: weights bit-identical to the hand path",
          what);
    CHECK(memcmp(pa, p0, n * sizeof(float)) != 0, "%s: the update changed the weights", what);
    int M = minibatches < rows.B ? minibatches : rows.B;
    CHECK(st.n_updates == epochs * M && oa->step == epochs * M, "%s: %d updates, %d steps", what,
          st.n_updates, oa->step);
    double tok = 0;
    for (int i = 0; i < rows.B; i++) tok += rows.lengths[i];
    CHECK(st.tokens == epochs * tok, "%s: tokens %g", what, st.tokens);
    CHECK(st.loss == loss_b && st.nonfinite == 0, "%s: mean loss %.9g vs %.9g", what, st.loss,
          loss_b);
    CHECK(st.grad_norm > 0 && (kl == 0 ? st.kl == 0 : st.kl > 0), "%s: stats", what);
    free(pa), free(pb), free(p0);
    rl_pg_rows_free(&rows);
    rl_adamw_free(oa), rl_adamw_free(ob);
    rl_model_free(a), rl_model_free(b), rl_model_free(ref), rl_model_free(fresh);
}

// Summed log-prob of each row's targets under m.
static void row_logprobs(rl_model *m, const rl_pg_rows *r, double *out) {
    rl_err err;
    float *lp = rl_malloc((size_t)r->B * r->T * sizeof(float));
    rl_model_forward(m, r->tokens, r->lengths, r->B, r->T, &err);
    rl_model_token_logprobs(m, r->targets, 1.0f, lp, NULL, &err);
    for (int b = 0; b < r->B; b++) {
        out[b] = 0;
        for (int t = 0; t < r->T; t++)
            out[b] += r->mask[(size_t)b * r->T + t] * lp[(size_t)b * r->T + t];
    }
    free(lp);
}

static void test_moves_toward_advantage(void) {
    rl_model *m = make_model(11);
    rl_adamw *o = make_opt(m);
    rl_pg_rows rows;
    random_rows(&rows, m, 4, 10, 0.0f);
    for (int b = 0; b < rows.B; b++) rows.adv[b] = b % 2 ? -1.0f : 1.0f;
    double before[4], after[4];
    row_logprobs(m, &rows, before);
    // The behaviour log-probs stay those of the starting policy: each call is one more
    // minibatch step on the same clipped objective, whose value must fall.
    rl_update_params p = params_for(1, 1, 0, 0);
    rl_update_stats st;
    rl_err err;
    double first_loss = 0, last = 0;
    for (int it = 0; it < 4; it++) {
        CHECK(rl_policy_update(m, NULL, o, &rows, &p, &st, &err) == 0, "update %d", it);
        if (it == 0)
            first_loss = st.loss;
        else
            CHECK(st.loss < last, "loss falls: call %d %g after %g", it, st.loss, last);
        last = st.loss;
    }
    row_logprobs(m, &rows, after);
    CHECK(st.loss < first_loss, "loss falls across steps: %g then %g", first_loss, st.loss);
    for (int b = 0; b < rows.B; b++)
        CHECK(b % 2 ? after[b] < before[b] : after[b] > before[b],
              "row %d (adv %+g): log-prob %g -> %g", b, rows.adv[b], before[b], after[b]);
    rl_pg_rows_free(&rows);
    rl_adamw_free(o);
    rl_model_free(m);
}

static void test_nonfinite_skip_and_empty(void) {
    rl_model *m = make_model(5);
    rl_adamw *o = make_opt(m);
    rl_pg_rows rows;
    random_rows(&rows, m, 5, 9, 0.1f);
    rows.old_logp[(size_t)1 * rows.T + rows.lengths[1] - 2] = NAN; // a masked-in position of row 1
    size_t n;
    float *p0 = params_copy(m, &n);
    rl_update_params p = params_for(2, 5, 0, 0);
    rl_update_stats st;
    rl_err err;
    CHECK(rl_policy_update(m, NULL, o, &rows, &p, &st, &err) == 0, "nan update runs");
    float *p1 = params_copy(m, &n);
    // minibatch 1 holds row 1 alone: its two updates are skipped, the other eight are taken
    CHECK(st.nonfinite == 1 && st.n_updates == 10 && o->step == 8,
          "skip: nonfinite %d, %d updates, %d optimizer steps", st.nonfinite, st.n_updates,
          o->step);
    CHECK(memcmp(p0, p1, n * sizeof(float)) != 0, "the finite minibatches still update");
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p1[i])) {
            CHECK(0, "weight %zu non-finite after a skipped update", i);
            break;
        }
    free(p1);
    // every row NaN: nothing changes at all
    for (int b = 0; b < rows.B; b++) rows.adv[b] = NAN;
    p1 = params_copy(m, &n);
    CHECK(rl_policy_update(m, NULL, o, &rows, &p, &st, &err) == 0 && st.nonfinite == 1 &&
              o->step == 8,
          "all-NaN update skipped");
    float *p2 = params_copy(m, &n);
    CHECK(memcmp(p1, p2, n * sizeof(float)) == 0, "all skipped: weights unchanged");
    rl_pg_rows_free(&rows);
    rl_pg_rows empty;
    rl_pg_rows_alloc(&empty, 0, 1);
    CHECK(rl_policy_update(m, NULL, o, &empty, &p, &st, &err) == 0 && st.n_updates == 0 &&
              st.tokens == 0 && o->step == 8,
          "empty batch: no update");
    rl_pg_rows_free(&empty);
    free(p0), free(p1), free(p2);
    rl_adamw_free(o);
    rl_model_free(m);
}

// rl_model_score_logprobs against rl_model_forward + rl_model_token_logprobs: bit-identical
// log-probs and entropies, zeros at padding, the training state of an earlier forward untouched,
// a bad target refused.
static void test_score_logprobs(void) {
    rl_model *m = make_model(21);
    rl_pg_rows a, b;
    random_rows(&a, m, 3, 11, 0);
    random_rows(&b, m, 4, 9, 0);
    size_t na = (size_t)a.B * a.T, nb = (size_t)b.B * b.T;
    float *lp = rl_malloc(nb * 4), *en = rl_malloc(nb * 4), *slp = rl_malloc(nb * 4),
          *sen = rl_malloc(nb * 4);
    rl_err err;
    CHECK(rl_model_forward(m, b.tokens, b.lengths, b.B, b.T, &err) == 0 &&
              rl_model_token_logprobs(m, b.targets, 0.7f, lp, en, &err) == 0,
          "forward b");
    for (size_t i = 0; i < nb; i++) slp[i] = sen[i] = 99.0f;
    CHECK(rl_model_score_logprobs(m, b.tokens, b.lengths, b.B, b.T, b.targets, 0.7f, slp, sen,
                                  &err) == 0,
          "score b: %s", err.msg);
    CHECK(memcmp(lp, slp, nb * 4) == 0 && memcmp(en, sen, nb * 4) == 0,
          "scoring log-probs and entropies bit-identical to forward + token_logprobs");
    int pad_zero = 1;
    for (int r = 0; r < b.B; r++)
        for (int t = b.lengths[r]; t < b.T; t++)
            pad_zero &= slp[(size_t)r * b.T + t] == 0 && sen[(size_t)r * b.T + t] == 0;
    CHECK(pad_zero, "zeros at padding");
    // forward a, score b in between, then a's log-probs and backward still belong to a
    float *la = rl_malloc(na * 4), *la2 = rl_malloc(na * 4), *da = rl_malloc(na * 4);
    CHECK(rl_model_forward(m, a.tokens, a.lengths, a.B, a.T, &err) == 0 &&
              rl_model_token_logprobs(m, a.targets, 1.0f, la, NULL, &err) == 0,
          "forward a");
    CHECK(rl_model_score_logprobs(m, b.tokens, b.lengths, b.B, b.T, b.targets, 1.0f, slp, NULL,
                                  &err) == 0,
          "score b between");
    CHECK(rl_model_token_logprobs(m, a.targets, 1.0f, la2, NULL, &err) == 0 &&
              memcmp(la, la2, na * 4) == 0,
          "the last forward (a) is untouched by scoring");
    for (size_t i = 0; i < na; i++) da[i] = a.mask[i];
    rl_model_zero_grad(m);
    CHECK(rl_model_backward(m, da, NULL, &err) == 0 && rl_model_grad_norm(m) > 0,
          "backward after scoring");
    b.targets[b.T + 1] = 37; // inside row 1 (every row holds at least 4 tokens)
    CHECK(rl_model_score_logprobs(m, b.tokens, b.lengths, b.B, b.T, b.targets, 1.0f, slp, NULL,
                                  &err) == -1 &&
              err.kind == RL_EINPUT && strstr(err.msg, "target 37"),
          "bad target: %s", err.msg);
    CHECK(rl_model_score_logprobs(m, b.tokens, b.lengths, b.B, b.T, b.targets, 0.0f, slp, NULL,
                                  &err) == -1 &&
              err.kind == RL_EINPUT,
          "temperature 0 refused");
    free(lp), free(en), free(slp), free(sen), free(la), free(la2), free(da);
    rl_pg_rows_free(&a);
    rl_pg_rows_free(&b);
    rl_model_free(m);
}

static void test_lr_schedules(void) {
    CHECK_NEAR(rl_lr_at(RL_LR_CONSTANT, 1e-3, 10, 0.1, 4, 0.02), 5e-4, 1e-12, "warmup step 4");
    CHECK_NEAR(rl_lr_at(RL_LR_CONSTANT, 1e-3, 10, 0.1, 50, 0.5), 1e-3, 1e-12, "constant");
    CHECK_NEAR(rl_lr_at(RL_LR_LINEAR, 1e-3, 0, 0.1, 50, 0.5), 5.5e-4, 1e-12, "linear midway");
    CHECK_NEAR(rl_lr_at(RL_LR_COSINE, 1e-3, 0, 0.1, 50, 0.5), 5.5e-4, 1e-12, "cosine midway");
    CHECK_NEAR(rl_lr_at(RL_LR_COSINE, 1e-3, 0, 0.1, 99, 1.5), 1e-4, 1e-12, "cosine end, clamped");
}

int main(void) {
    BE = rl_backend_cpu();
    RNG = rl_rng_stream(2026, 0, 0, 0);
    test_same_as_by_hand(1, 1, 0, 0);
    test_same_as_by_hand(2, 3, 0.05f, 0.01f);
    test_same_as_by_hand(3, 9, 0.1f, 0); // more minibatches than rows: one row each
    test_moves_toward_advantage();
    test_nonfinite_skip_and_empty();
    test_score_logprobs();
    test_lr_schedules();
    return test_summary();
}
