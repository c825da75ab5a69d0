// test_lmhead: the optional fused ops of kernels/kernels.h (lm_head_logprob_forward/backward,
// rmsnorm_residual_forward) on one backend (RLPIPE_TEST_BACKEND, default cpu), and the model's
// fused lm_head path.
//
//  - The fused lm_head log-prob, entropy, lse and their gradients (dh, dW) against a
//    double-precision naive reference (full [N, V] logits in double), for vocabulary chunks that
//    do and do not divide V, one chunk, a chunk wider than V, one-column chunks, targets < 0
//    (whose dlogp must be ignored), inv_temp != 1, with and without an entropy seed.
//  - The fused op against the unfused composition on the same backend (matmul_forward +
//    logprob_forward, logprob_backward + matmul_backward): on the CPU bit for bit with one chunk
//    (chunk >= V), within float32 reassociation otherwise.
//  - rmsnorm_residual_forward bit for bit as residual_forward + rmsnorm_forward, aliased outputs
//    included, and against a double reference.
//  - The model: token log-probs, entropies and every gradient of the fused path (lm_head_fused
//    1, several chunkings) against the unfused one (-1), and the scoring-only forward likewise.
#define _POSIX_C_SOURCE 200809L
#include "kernels/backend.h"
#include "kernels/rng.h"
#include "policy/model.h"
#include "test_model_util.h"
#include "test_util.h"

#include <stdint.h>

static const rl_backend *BE;
static rl_rng RNG;

static float urand(float scale) { // in [-scale, -0.05 scale] U [0.05 scale, scale]: never zero
    float u = rl_rng_float(&RNG);
    float mag = scale * (0.05f + 0.95f * u);
    return rl_rng_float(&RNG) < 0.5f ? -mag : mag;
}

static float *host_rand(size_t n, float scale) {
    float *x = rl_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = urand(scale);
    return x;
}

// A backend copy of host array x[n].
static void *dev_of(const void *x, size_t bytes) {
    void *d = BE->mem_alloc(BE, bytes ? bytes : 4);
    if (bytes) BE->mem_upload(BE, d, x, bytes);
    return d;
}

static float *host_of(const void *d, size_t n) {
    float *x = rl_malloc((n ? n : 1) * sizeof(float));
    if (n) BE->mem_download(BE, x, d, n * sizeof(float));
    return x;
}

static int same_bits(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

// ------------------------------------------------------------------------------------------------
// Double-precision reference: the full [N, V] logits, then every statistic and gradient.

typedef struct lm_ref {
    double *logp, *ent, *lse; // [N]
    double *dh;               // [N, C]
    double *dw;               // [V, C] (the gradient alone, without the accumulated start)
} lm_ref;

static lm_ref reference(const float *h, const float *w, const int32_t *tg, const float *dlogp,
                        const float *dent, int N, int C, int V, double it) {
    lm_ref r;
    r.logp = calloc((size_t)N, sizeof(double));
    r.ent = calloc((size_t)N, sizeof(double));
    r.lse = calloc((size_t)N, sizeof(double));
    r.dh = calloc((size_t)N * C, sizeof(double));
    r.dw = calloc((size_t)V * C, sizeof(double));
    double *z = malloc((size_t)V * sizeof(double)), *dz = malloc((size_t)V * sizeof(double));
    for (int i = 0; i < N; i++) {
        double mx = -INFINITY;
        for (int k = 0; k < V; k++) {
            double s = 0.0;
            for (int c = 0; c < C; c++) s += (double)h[(size_t)i * C + c] * w[(size_t)k * C + c];
            z[k] = s * it;
            mx = fmax(mx, z[k]);
        }
        double S = 0.0;
        for (int k = 0; k < V; k++) S += exp(z[k] - mx);
        double lse = mx + log(S), H = 0.0;
        for (int k = 0; k < V; k++) H -= exp(z[k] - lse) * (z[k] - lse);
        r.lse[i] = lse;
        r.ent[i] = H;
        r.logp[i] = tg[i] >= 0 ? z[tg[i]] - lse : 0.0;
        double dlp = tg[i] >= 0 ? dlogp[i] : 0.0, de = dent ? dent[i] : 0.0;
        for (int k = 0; k < V; k++) {
            double lp = z[k] - lse, p = exp(lp);
            dz[k] = it * (dlp * ((k == tg[i]) - p) - de * p * (lp + H));
        }
        for (int k = 0; k < V; k++)
            for (int c = 0; c < C; c++) {
                r.dh[(size_t)i * C + c] += dz[k] * w[(size_t)k * C + c];
                r.dw[(size_t)k * C + c] += dz[k] * h[(size_t)i * C + c];
            }
    }
    free(z);
    free(dz);
    return r;
}

static void ref_free(lm_ref *r) {
    free(r->logp), free(r->ent), free(r->lse), free(r->dh), free(r->dw);
}

// max |got - want| / (|want| + mean |want|) over n values (the relative error of test_cuda).
static double rel_err(const float *got, const double *want, const float *base, size_t n) {
    double mean = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) mean += fabs(want[i]);
    mean = mean / (double)(n ? n : 1) + 1e-30;
    for (size_t i = 0; i < n; i++) {
        double g = got[i] - (base ? base[i] : 0.0f);
        double e = fabs(g - want[i]) / (fabs(want[i]) + mean);
        worst = isnan(g) ? INFINITY : fmax(worst, e);
    }
    return worst;
}

// ------------------------------------------------------------------------------------------------
// Fused lm_head against the reference and against the unfused composition

typedef struct lm_case {
    int N, C, V, chunk;
    float temp;
    int with_entropy; // an entropy seed in the backward
} lm_case;

static void check_lm_case(lm_case c) {
    char what[128];
    snprintf(what, sizeof what, "N %d C %d V %d chunk %d temp %g dent %d", c.N, c.C, c.V, c.chunk,
             (double)c.temp, c.with_entropy);
    int N = c.N, C = c.C, V = c.V;
    float it = 1.0f / c.temp;
    float *h = host_rand((size_t)N * C, 1.0f), *w = host_rand((size_t)V * C, 0.6f);
    float *dlogp = host_rand(N, 1.0f), *dent = host_rand(N, 0.5f);
    float *dw0 = host_rand((size_t)V * C, 0.1f); // dW accumulates onto this
    int32_t *tg = rl_malloc((size_t)N * sizeof(int32_t));
    for (int i = 0; i < N; i++) // first and last token, padding, and random targets
        tg[i] = i == 0 ? 0 : i == 1 ? V - 1 : i % 4 == 2 ? -1 : (int)(rl_rng_float(&RNG) * V);
    lm_ref r = reference(h, w, tg, dlogp, c.with_entropy ? dent : NULL, N, C, V, it);

    int chunk = c.chunk <= 0 || c.chunk > V ? V : c.chunk;
    size_t nwork = rl_lm_head_work_floats(BE->act, N, C, chunk);
    float *d_h = dev_of(h, (size_t)N * C * 4), *d_w = dev_of(w, (size_t)V * C * 4);
    int32_t *d_tg = dev_of(tg, (size_t)N * 4);
    float *d_dlogp = dev_of(dlogp, (size_t)N * 4), *d_dent = dev_of(dent, (size_t)N * 4);
    float *d_logp = BE->mem_alloc(BE, (size_t)N * 4), *d_ent = BE->mem_alloc(BE, (size_t)N * 4);
    float *d_lse = BE->mem_alloc(BE, (size_t)N * 4), *d_work = BE->mem_alloc(BE, nwork * 4);
    float *d_dh = dev_of(dw0, (size_t)N * C * 4); // garbage: dh is overwritten
    float *d_dw = dev_of(dw0, (size_t)V * C * 4);

    BE->lm_head_logprob_forward(BE, d_logp, d_ent, d_lse, d_h, d_w, d_tg, N, C, V, it, c.chunk,
                                d_work);
    float *logp = host_of(d_logp, N), *ent = host_of(d_ent, N), *lse = host_of(d_lse, N);
    double e_logp = rel_err(logp, r.logp, NULL, N), e_ent = rel_err(ent, r.ent, NULL, N);
    double e_lse = rel_err(lse, r.lse, NULL, N);
    CHECK(e_logp < 2e-5 && e_ent < 2e-5 && e_lse < 2e-5,
          "%s: forward against double: logp %.3g entropy %.3g lse %.3g", what, e_logp, e_ent,
          e_lse);
    int zero_pad = 1;
    for (int i = 0; i < N; i++) zero_pad &= tg[i] >= 0 || logp[i] == 0.0f;
    CHECK(zero_pad, "%s: logp is 0 where the target is < 0", what);

    BE->lm_head_logprob_backward(BE, d_dh, d_dw, d_dlogp, c.with_entropy ? d_dent : NULL, d_h, d_w,
                                 d_tg, d_lse, d_ent, N, C, V, it, c.chunk, d_work);
    float *dh = host_of(d_dh, (size_t)N * C), *dw = host_of(d_dw, (size_t)V * C);
    double e_dh = rel_err(dh, r.dh, NULL, (size_t)N * C);
    double e_dw = rel_err(dw, r.dw, dw0, (size_t)V * C);
    CHECK(e_dh < 5e-5 && e_dw < 5e-5, "%s: backward against double: dh %.3g dW %.3g", what, e_dh,
          e_dw);

    // The unfused composition on the same backend: the whole [N, V] logits.
    float *d_logits = BE->mem_alloc(BE, (size_t)N * V * 4);
    float *d_logp2 = BE->mem_alloc(BE, (size_t)N * 4), *d_ent2 = BE->mem_alloc(BE, (size_t)N * 4);
    float *d_dh2 = BE->mem_alloc(BE, (size_t)N * C * 4), *d_dw2 = dev_of(dw0, (size_t)V * C * 4);
    BE->matmul_forward(BE, d_logits, d_h, d_w, NULL, N, C, V);
    BE->logprob_forward(BE, d_logp2, d_ent2, d_logits, d_tg, N, V, it);
    BE->logprob_backward(BE, d_logits, d_logits, d_tg, d_dlogp, c.with_entropy ? d_dent : NULL, N,
                         V, it);
    BE->matmul_backward(BE, d_dh2, d_dw2, NULL, d_logits, d_h, d_w, N, C, V);
    float *logp2 = host_of(d_logp2, N), *ent2 = host_of(d_ent2, N);
    float *dh2 = host_of(d_dh2, (size_t)N * C), *dw2 = host_of(d_dw2, (size_t)V * C);
    if (chunk == V && BE->is_host) {
        CHECK(same_bits(logp, logp2, N) && same_bits(ent, ent2, N),
              "%s: one chunk: log-probs "
              "and entropies bit for bit as the unfused ops",
              what);
        CHECK(same_bits(dh, dh2, (size_t)N * C) && same_bits(dw, dw2, (size_t)V * C),
              "%s: one chunk: dh and dW bit for bit as the unfused ops", what);
    } else {
        double worst = 0.0;
        for (int i = 0; i < N; i++)
            worst = fmax(worst, fmax(fabs(logp[i] - logp2[i]), fabs(ent[i] - ent2[i])) /
                                    (1.0 + fabs(logp2[i])));
        for (size_t k = 0; k < (size_t)N * C; k++)
            worst = fmax(worst, fabs(dh[k] - dh2[k]) / (1.0 + fabs(dh2[k])));
        for (size_t k = 0; k < (size_t)V * C; k++)
            worst = fmax(worst, fabs(dw[k] - dw2[k]) / (1.0 + fabs(dw2[k])));
        CHECK(worst < 1e-5, "%s: fused vs unfused differ by %.3g", what, worst);
    }

    void *devs[] = {d_h,    d_w,  d_tg, d_dlogp,  d_dent,  d_logp, d_ent, d_lse,
                    d_work, d_dh, d_dw, d_logits, d_logp2, d_ent2, d_dh2, d_dw2};
    for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) BE->mem_free(BE, devs[i]);
    free(h), free(w), free(dlogp), free(dent), free(dw0), free(tg), free(logp), free(ent);
    free(lse), free(dh), free(dw), free(logp2), free(ent2), free(dh2), free(dw2);
    ref_free(&r);
}

static void test_lm_head_fused(void) {
    const lm_case cases[] = {
        {7, 24, 50, 16, 1.0f, 1},    // 16 does not divide 50
        {9, 33, 301, 64, 0.6f, 1},   // nor 64 301, inv_temp 1/0.6
        {6, 17, 37, 37, 1.7f, 1},    // one chunk exactly
        {5, 8, 37, 1000, 1.0f, 0},   // chunk wider than V; no entropy seed
        {4, 12, 29, 1, 0.8f, 1},     // one column at a time
        {3, 16, 40, 0, 1.0f, 1},     // chunk 0: the whole vocabulary
        {33, 40, 517, 100, 1.3f, 0}, // more rows, no entropy seed
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_lm_case(cases[i]);
}

// A peaked row whose maximum sits in a late chunk, and logits far from zero: the online merge
// must rescale the running sums (not overflow or lose the entropy).
static void test_lm_head_rescale(void) {
    int N = 3, C = 4, V = 70, chunk = 8;
    float h[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0}, *w = host_rand((size_t)V * C, 1.0f);
    for (int k = 0; k < V; k++) {
        w[(size_t)k * C + 0] = 0.01f * k;               // increasing: max in the last chunk
        w[(size_t)k * C + 1] = k == 3 ? 60.0f : -20.0f; // one dominant logit in the first chunk
        w[(size_t)k * C + 2] = 80.0f + 0.5f * (k % 9);  // large logits everywhere
    }
    int32_t tg[3] = {69, 3, 5};
    float dlogp[3] = {1.0f, -0.5f, 0.25f}, dent[3] = {0.3f, 0.7f, -1.1f};
    lm_ref r = reference(h, w, tg, dlogp, dent, N, C, V, 1.0);
    float *d_h = dev_of(h, sizeof h), *d_w = dev_of(w, (size_t)V * C * 4);
    int32_t *d_tg = dev_of(tg, sizeof tg);
    size_t nwork = rl_lm_head_work_floats(BE->act, N, C, chunk);
    float *d_logp = BE->mem_alloc(BE, 12), *d_ent = BE->mem_alloc(BE, 12);
    float *d_lse = BE->mem_alloc(BE, 12), *d_work = BE->mem_alloc(BE, nwork * 4);
    BE->lm_head_logprob_forward(BE, d_logp, d_ent, d_lse, d_h, d_w, d_tg, N, C, V, 1.0f, chunk,
                                d_work);
    float *logp = host_of(d_logp, N), *ent = host_of(d_ent, N), *lse = host_of(d_lse, N);
    for (int i = 0; i < N; i++) {
        CHECK_NEAR(logp[i], r.logp[i], 1e-5, "rescale: logp");
        CHECK(fabs(ent[i] - r.ent[i]) < 1e-5, "rescale: row %d entropy %.9g, want %.9g", i,
              (double)ent[i], r.ent[i]);
        CHECK_NEAR(lse[i], r.lse[i], 1e-6, "rescale: lse");
    }
    void *devs[] = {d_h, d_w, d_tg, d_logp, d_ent, d_lse, d_work};
    for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) BE->mem_free(BE, devs[i]);
    free(w), free(logp), free(ent), free(lse);
    ref_free(&r);
}

// ------------------------------------------------------------------------------------------------
// RMSNorm + residual

static void test_rmsnorm_residual(void) {
    const int shapes[][2] = {{1, 7}, {5, 64}, {13, 100}, {64, 33}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], C = shapes[s][1];
        size_t n = (size_t)N * C;
        float *a = host_rand(n, 2.0f), *b = host_rand(n, 1.0f), *w = host_rand(C, 1.5f);
        float eps = 1e-5f;
        float *d_a = dev_of(a, n * 4), *d_b = dev_of(b, n * 4), *d_w = dev_of(w, (size_t)C * 4);
        float *d_res = BE->mem_alloc(BE, n * 4), *d_out = BE->mem_alloc(BE, n * 4);
        float *d_rstd = BE->mem_alloc(BE, (size_t)N * 4);
        float *d_res2 = BE->mem_alloc(BE, n * 4), *d_out2 = BE->mem_alloc(BE, n * 4);
        float *d_rstd2 = BE->mem_alloc(BE, (size_t)N * 4);
        BE->rmsnorm_residual_forward(BE, d_res, d_out, d_rstd, d_a, d_b, d_w, N, C, eps);
        BE->residual_forward(BE, d_res2, d_a, d_b, n);
        BE->rmsnorm_forward(BE, d_out2, d_rstd2, d_res2, d_w, N, C, eps);
        float *res = host_of(d_res, n), *out = host_of(d_out, n), *rstd = host_of(d_rstd, N);
        float *res2 = host_of(d_res2, n), *out2 = host_of(d_out2, n);
        float *rstd2 = host_of(d_rstd2, N);
        CHECK(same_bits(res, res2, n) && same_bits(out, out2, n) && same_bits(rstd, rstd2, N),
              "rmsnorm_residual %dx%d: bit for bit residual_forward + rmsnorm_forward", N, C);
        double worst = 0.0;
        for (int i = 0; i < N; i++) {
            double ss = 0.0;
            for (int c = 0; c < C; c++) {
                double x = (double)a[(size_t)i * C + c] + b[(size_t)i * C + c];
                ss += x * x;
            }
            double r = 1.0 / sqrt(ss / C + eps);
            worst = fmax(worst, fabs(rstd[i] - r) / r);
            for (int c = 0; c < C; c++) {
                double x = (double)a[(size_t)i * C + c] + b[(size_t)i * C + c];
                worst = fmax(worst, fabs(out[(size_t)i * C + c] - w[c] * x * r) /
                                        (1.0 + fabs(w[c] * x * r)));
            }
        }
        CHECK(worst < 1e-5, "rmsnorm_residual %dx%d: %.3g from the double reference", N, C, worst);
        // res_out aliasing a (the model's in-place residual stream), then aliasing b
        BE->rmsnorm_residual_forward(BE, d_a, d_out, NULL, d_a, d_b, d_w, N, C, eps);
        float *res3 = host_of(d_a, n), *out3 = host_of(d_out, n);
        CHECK(same_bits(res3, res2, n) && same_bits(out3, out2, n),
              "rmsnorm_residual %dx%d: res_out aliasing a", N, C);
        BE->mem_upload(BE, d_a, a, n * 4);
        BE->rmsnorm_residual_forward(BE, d_b, d_out, NULL, d_a, d_b, d_w, N, C, eps);
        float *res4 = host_of(d_b, n), *out4 = host_of(d_out, n);
        CHECK(same_bits(res4, res2, n) && same_bits(out4, out2, n),
              "rmsnorm_residual %dx%d: res_out aliasing b", N, C);
        void *devs[] = {d_a, d_b, d_w, d_res, d_out, d_rstd, d_res2, d_out2, d_rstd2};
        for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) BE->mem_free(BE, devs[i]);
        free(a), free(b), free(w), free(res), free(out), free(rstd), free(res2), free(out2);
        free(rstd2), free(res3), free(out3), free(res4), free(out4);
    }
}

// ------------------------------------------------------------------------------------------------
// The model's fused lm_head path against its unfused one

typedef struct model_run {
    float *logp, *ent; // [N]
    float *grads;      // [n_grads]
    size_t n_grads;
    float *slogp, *sent; // scoring-only forward [N]
} model_run;

static model_run run_model(const rl_model_config *cfg, int fused, size_t budget_rows,
                           const int32_t *tokens, const int32_t *lengths, const int32_t *targets,
                           const float *dlogp, const float *dent, int B, int T, float temp) {
    rl_model *m = NULL;
    rl_err err;
    if (rl_model_create(&m, cfg, BE, &err)) {
        CHECK(0, "rl_model_create: %s", err.msg);
        exit(1);
    }
    rl_model_init_random(m, 42, 0.4f);
    m->lm_head_fused = fused;
    if (budget_rows) m->logits_budget = budget_rows * (size_t)cfg->vocab_size;
    size_t N = (size_t)B * T;
    model_run r;
    r.logp = rl_malloc(N * 4), r.ent = rl_malloc(N * 4), r.slogp = rl_malloc(N * 4);
    r.sent = rl_malloc(N * 4);
    CHECK(rl_model_forward(m, tokens, lengths, B, T, &err) == 0, "forward: %s", err.msg);
    CHECK(rl_model_token_logprobs(m, targets, temp, r.logp, r.ent, &err) == 0, "logprobs: %s",
          err.msg);
    rl_model_zero_grad(m);
    CHECK(rl_model_backward(m, dlogp, dent, &err) == 0, "backward: %s", err.msg);
    float *g = rl_model_grads(m, &r.n_grads);
    r.grads = host_of(g, r.n_grads);
    CHECK(rl_model_score_logprobs(m, tokens, lengths, B, T, targets, temp, r.slogp, r.sent, &err) ==
              0,
          "score_logprobs: %s", err.msg);
    rl_model_free(m);
    return r;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double scale = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    return worst / (scale > 0.0 ? scale : 1.0);
}

static void test_model_fused(void) {
    rl_model_config cfg = test_tiny_config();
    cfg.vocab_size = 301; // with a small buffer: a 256-column chunk and a ragged 45-column one
    int B = 3, T = 9;
    int32_t lengths[3] = {9, 6, 2};
    size_t N = (size_t)B * T;
    int32_t *tokens = rl_malloc(N * 4), *targets = rl_malloc(N * 4);
    float *dlogp = host_rand(N, 1.0f), *dent = host_rand(N, 0.5f);
    for (size_t i = 0; i < N; i++) {
        tokens[i] = (int32_t)(rl_rng_float(&RNG) * cfg.vocab_size);
        targets[i] = i % 5 == 3 ? -1 : (int32_t)(rl_rng_float(&RNG) * cfg.vocab_size);
    }
    float temp = 0.7f;
    model_run ref = run_model(&cfg, -1, 0, tokens, lengths, targets, dlogp, dent, B, T, temp);
    // fused: every row and the whole vocabulary at once (the default buffer); with buffers of
    // 4, 2 and 1 rows of logits: 4, 2 and 1 rows at a time, 256-column chunks
    const size_t budgets[] = {0, 4, 2, 1};
    for (size_t k = 0; k < sizeof budgets / sizeof budgets[0]; k++) {
        model_run f =
            run_model(&cfg, 1, budgets[k], tokens, lengths, targets, dlogp, dent, B, T, temp);
        double e_lp = max_diff(f.logp, ref.logp, N), e_ent = max_diff(f.ent, ref.ent, N);
        double e_g = max_diff(f.grads, ref.grads, ref.n_grads);
        double e_s = fmax(max_diff(f.slogp, ref.slogp, N), max_diff(f.sent, ref.sent, N));
        if (budgets[k] == 0 && BE->is_host) { // one chunk of all rows: the same bits
            CHECK(same_bits(f.logp, ref.logp, N) && same_bits(f.ent, ref.ent, N) &&
                      same_bits(f.grads, ref.grads, ref.n_grads),
                  "model, fused in one chunk: bit for bit the unfused path (%.3g %.3g %.3g)", e_lp,
                  e_ent, e_g);
        }
        CHECK(e_lp < 1e-5 && e_ent < 1e-5 && e_g < 1e-5 && e_s < 1e-5,
              "model, fused with a budget of %zu rows: logp %.3g entropy %.3g grads %.3g "
              "score %.3g from the unfused path",
              budgets[k], e_lp, e_ent, e_g, e_s);
        free(f.logp), free(f.ent), free(f.grads), free(f.slogp), free(f.sent);
    }
    // the default (0): fused only where the logits do not fit; results as above either way
    model_run d = run_model(&cfg, 0, 2, tokens, lengths, targets, dlogp, dent, B, T, temp);
    CHECK(max_diff(d.grads, ref.grads, ref.n_grads) < 1e-5,
          "model, default path with a small "
          "budget: gradients %.3g",
          max_diff(d.grads, ref.grads, ref.n_grads));
    free(d.logp), free(d.ent), free(d.grads), free(d.slogp), free(d.sent);
    free(ref.logp), free(ref.ent), free(ref.grads), free(ref.slogp), free(ref.sent);
    free(tokens), free(targets), free(dlogp), free(dent);
}

int main(void) {
    const char *name = getenv("RLPIPE_TEST_BACKEND");
    rl_err err;
    BE = rl_backend_get(name ? name : "cpu", &err);
    if (!BE) {
        fprintf(stderr, "skip: %s\n", err.msg);
        return 77;
    }
    if (!BE->lm_head_logprob_forward || !BE->lm_head_logprob_backward ||
        !BE->rmsnorm_residual_forward) {
        fprintf(stderr, "FAIL: backend %s lacks a fused op (every backend here provides them)\n",
                BE->name);
        return 1;
    }
    RNG = rl_rng_stream(4321, RL_RNG_INIT, 0, 0);
    RUN(test_lm_head_fused);
    RUN(test_lm_head_rescale);
    RUN(test_rmsnorm_residual);
    RUN(test_model_fused);
    rl_backend_release(BE);
    return test_summary();
}
