// test_cuda_lmhead: the CUDA backend's fused ops (kernels/cuda/lmhead_cuda.cu) against the CPU
// backend's (the reference, itself checked against double precision in test_lmhead), from the
// same random bits: the fused lm_head log-probs, entropies, lse and gradients (dh, dW) for
// vocabulary chunks that do and do not divide V, one chunk, one-column chunks, targets < 0,
// inv_temp != 1, with and without an entropy seed; the CUDA fused op against the CUDA unfused
// ops; RMSNorm + residual bit for bit as the CUDA residual + RMSNorm and close to the CPU; and the
// model's fused lm_head path on the GPU against the CPU's unfused path.
//
// Comparisons use test_cuda's rule: rel = |gpu - cpu| / (|cpu| + mean|cpu|) <= tol, tol 2e-5 for
// float32 (the backends sum in different orders).
//
// bf16: the fused lm_head of the CUDA backend opened with bfloat16 activations against the CPU's
// float32 fused op, from the same numbers (h and wlm rounded to bf16 first; the CPU gets them as
// float32), with test_cuda_bf16's rule: every element |gpu - ref| <= atol + rtol * |ref|,
// atol = a * mean|ref|, f = 1e-5 the float32 noise of the two backends' summation orders:
//   - logp, entropy, lse: float32 results of bf16 operands (the logits are float32): no bf16
//     rounding, rtol = 2f, a = 2f;
//   - the dW increment (dW - dW0, float32): the dlogits are rounded once to bf16 (2^-8 relative
//     each) before the product, rtol = 2^-8 + 2f; dW[v,k] sums N rows' terms dlogits[i,v] h[i,k]
//     of independent signs, whose rounding errors grow with sqrt(N) * |term| while |sum| does too,
//     but mean|dW| is set by the largest rows: a = 2^-8 * sqrt(N) (measured: a = 2^-8 alone
//     fails at N = 40 by 1.9x; with sqrt(N) the worst is ~0.3 of allowed);
//   - dh (bf16): that rounding and the final store, rtol = 2 * 2^-8 + 2f, a = 2^-8 (a row's
//     dlogits are dominated by the target's and the few largest probabilities, so its sum over
//     V behaves as a sum of a few terms; measured worst ~0.6 of allowed).
// The model with the fused path in bf16 is checked in test_cuda_mixed.
//
// Without the CUDA backend compiled in, or without a device, it exits 77 (skipped). The
// emulator (kernels/cuda/emu/check.sh) runs it against the CPU emulation of the CUDA runtime.
#define _POSIX_C_SOURCE 200809L
#include "kernels/backend.h"
#include "kernels/bf16.h"
#include "kernels/rng.h"
#include "policy/model.h"
#include "test_model_util.h"
#include "test_util.h"

#include <stdint.h>

static const rl_backend *CPU, *GPU, *G16; // G16: bf16 activations (NULL: not available)
static rl_rng RNG;

static float urand(float scale) {
    float mag = scale * (0.05f + 0.95f * rl_rng_float(&RNG));
    return rl_rng_float(&RNG) < 0.5f ? -mag : mag;
}

static float *host_rand(size_t n, float scale) {
    float *x = rl_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = urand(scale);
    return x;
}

static void *up(const rl_backend *be, const void *x, size_t bytes) {
    void *d = be->mem_alloc(be, bytes ? bytes : 4);
    if (bytes && x) be->mem_upload(be, d, x, bytes);
    return d;
}

static float *down(const rl_backend *be, const void *d, size_t n) {
    float *x = rl_malloc((n ? n : 1) * sizeof(float));
    if (n) be->mem_download(be, x, d, n * sizeof(float));
    return x;
}

// max |g - c| / (|c| + mean |c|)
static double rel(const float *g, const float *c, size_t n) {
    double mean = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) mean += fabs(c[i]);
    mean = mean / (double)(n ? n : 1) + 1e-30;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)g[i] - c[i]) / (fabs(c[i]) + mean);
        worst = isnan(g[i]) ? INFINITY : fmax(worst, e);
    }
    return worst;
}

typedef struct lm_out {
    float *logp, *ent, *lse, *dh, *dw;
} lm_out;

// The fused forward and backward on backend be (unfused: matmul + logprob ops instead).
static lm_out run_lm(const rl_backend *be, int fused, const float *h, const float *w,
                     const int32_t *tg, const float *dlogp, const float *dent, const float *dw0,
                     int N, int C, int V, int chunk, float it) {
    int ch = chunk <= 0 || chunk > V ? V : chunk;
    float *d_h = up(be, h, (size_t)N * C * 4), *d_w = up(be, w, (size_t)V * C * 4);
    int32_t *d_tg = up(be, tg, (size_t)N * 4);
    float *d_dlogp = up(be, dlogp, (size_t)N * 4), *d_dent = dent ? up(be, dent, N * 4) : NULL;
    float *d_logp = up(be, NULL, N * 4), *d_ent = up(be, NULL, N * 4);
    float *d_lse = up(be, NULL, N * 4), *d_dh = up(be, dw0, (size_t)N * C * 4);
    float *d_dw = up(be, dw0, (size_t)V * C * 4);
    size_t nwork = fused ? rl_lm_head_work_floats(be->act, N, C, ch) : (size_t)N * V;
    float *d_work = up(be, NULL, nwork * 4);
    if (fused) {
        be->lm_head_logprob_forward(be, d_logp, d_ent, d_lse, d_h, d_w, d_tg, N, C, V, it, chunk,
                                    d_work);
        be->lm_head_logprob_backward(be, d_dh, d_dw, d_dlogp, d_dent, d_h, d_w, d_tg, d_lse, d_ent,
                                     N, C, V, it, chunk, d_work);
    } else {
        be->matmul_forward(be, d_work, d_h, d_w, NULL, N, C, V);
        be->logprob_forward(be, d_logp, d_ent, d_work, d_tg, N, V, it);
        be->logprob_backward(be, d_work, d_work, d_tg, d_dlogp, d_dent, N, V, it);
        be->matmul_backward(be, d_dh, d_dw, NULL, d_work, d_h, d_w, N, C, V);
    }
    lm_out o = {down(be, d_logp, N), down(be, d_ent, N), down(be, d_lse, N),
                down(be, d_dh, (size_t)N * C), down(be, d_dw, (size_t)V * C)};
    void *devs[] = {d_h, d_w, d_tg, d_dlogp, d_dent, d_logp, d_ent, d_lse, d_dh, d_dw, d_work};
    for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) be->mem_free(be, devs[i]);
    return o;
}

static void lm_free(lm_out *o) {
    free(o->logp), free(o->ent), free(o->lse), free(o->dh), free(o->dw);
}

static void test_lm_head(void) {
    const struct {
        int N, C, V, chunk;
        float temp;
        int dent;
    } cases[] = {
        {7, 24, 50, 16, 1.0f, 1},  {9, 33, 301, 64, 0.6f, 1}, {6, 17, 37, 37, 1.7f, 1},
        {5, 8, 37, 1000, 1.0f, 0}, {4, 12, 29, 1, 0.8f, 1},   {40, 64, 700, 256, 1.3f, 0},
        {3, 16, 40, 0, 1.0f, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int N = cases[c].N, C = cases[c].C, V = cases[c].V, chunk = cases[c].chunk;
        float it = 1.0f / cases[c].temp;
        float *h = host_rand((size_t)N * C, 1.0f), *w = host_rand((size_t)V * C, 0.6f);
        float *dlogp = host_rand(N, 1.0f), *dent = host_rand(N, 0.5f);
        float *dw0 = host_rand((size_t)V * C, 0.1f);
        int32_t *tg = rl_malloc((size_t)N * sizeof(int32_t));
        for (int i = 0; i < N; i++)
            tg[i] = i == 0 ? 0 : i == 1 ? V - 1 : i % 4 == 2 ? -1 : (int)(rl_rng_float(&RNG) * V);
        const float *de = cases[c].dent ? dent : NULL;
        lm_out cpu = run_lm(CPU, 1, h, w, tg, dlogp, de, dw0, N, C, V, chunk, it);
        lm_out gpu = run_lm(GPU, 1, h, w, tg, dlogp, de, dw0, N, C, V, chunk, it);
        lm_out gun = run_lm(GPU, 0, h, w, tg, dlogp, de, dw0, N, C, V, chunk, it);
        double e[5] = {rel(gpu.logp, cpu.logp, N), rel(gpu.ent, cpu.ent, N),
                       rel(gpu.lse, cpu.lse, N), rel(gpu.dh, cpu.dh, (size_t)N * C),
                       rel(gpu.dw, cpu.dw, (size_t)V * C)};
        double u[4] = {rel(gun.logp, gpu.logp, N), rel(gun.ent, gpu.ent, N),
                       rel(gun.dh, gpu.dh, (size_t)N * C), rel(gun.dw, gpu.dw, (size_t)V * C)};
        fprintf(stderr,
                "  lm_head N %d C %d V %d chunk %d: gpu-cpu logp %.2g ent %.2g lse %.2g dh %.2g "
                "dW %.2g; fused-unfused %.2g %.2g %.2g %.2g\n",
                N, C, V, chunk, e[0], e[1], e[2], e[3], e[4], u[0], u[1], u[2], u[3]);
        int ok = 1;
        for (int k = 0; k < 5; k++) ok &= e[k] <= 2e-5;
        for (int k = 0; k < 4; k++) ok &= u[k] <= 2e-5;
        CHECK(ok, "lm_head N %d C %d V %d chunk %d: GPU fused off the CPU or its unfused ops", N, C,
              V, chunk);
        lm_free(&cpu), lm_free(&gpu), lm_free(&gun);
        free(h), free(w), free(dlogp), free(dent), free(dw0), free(tg);
    }
}

#define U_BF16 (1.0 / 256.0) // unit roundoff of bfloat16
#define F32_F  1e-5          // float32 noise between the backends

static void *up_bf16(const float *x, size_t n) {
    uint16_t *b = rl_malloc((n ? n : 1) * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) b[i] = rl_bf16_from_f32(x[i]);
    void *d = up(G16, b, n * 2);
    free(b);
    return d;
}

// |got - want| <= a * mean|want| + rtol * |want| for every element (NaN fails).
static void close_to(const char *what, const float *got, const float *want, size_t n, double rtol,
                     double a) {
    double mean = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) mean += fabs(want[i]);
    mean /= (double)(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)got[i] - want[i]) / (a * mean + rtol * fabs(want[i]) + 1e-300);
        worst = isnan(got[i]) ? INFINITY : fmax(worst, r);
    }
    fprintf(stderr, "    %-28s worst %.3f of allowed (rtol %.2e, a %.1e)\n", what, worst, rtol, a);
    CHECK(worst <= 1.0, "%s: off the CPU reference (worst %.3g of allowed)", what, worst);
}

static void test_lm_head_bf16(void) {
    if (!G16) {
        fprintf(stderr, "  skip: no bf16 CUDA backend\n");
        return;
    }
    const struct {
        int N, C, V, chunk;
        float temp;
        int dent;
    } cases[] = {{7, 24, 50, 16, 1.0f, 1},
                 {9, 33, 301, 64, 0.6f, 1},
                 {5, 8, 37, 1000, 1.0f, 0},
                 {4, 12, 29, 1, 0.8f, 1},
                 {40, 64, 700, 256, 1.3f, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int N = cases[c].N, C = cases[c].C, V = cases[c].V, chunk = cases[c].chunk;
        int ch = chunk <= 0 || chunk > V ? V : chunk;
        size_t nh = (size_t)N * C, nw = (size_t)V * C;
        float it = 1.0f / cases[c].temp;
        float *h = host_rand(nh, 1.0f), *w = host_rand(nw, 0.6f);
        for (size_t i = 0; i < nh; i++) h[i] = rl_bf16_to_f32(rl_bf16_from_f32(h[i]));
        for (size_t i = 0; i < nw; i++) w[i] = rl_bf16_to_f32(rl_bf16_from_f32(w[i]));
        float *dlogp = host_rand(N, 1.0f), *dent = host_rand(N, 0.5f);
        float *dw0 = host_rand(nw, 0.1f);
        int32_t *tg = rl_malloc((size_t)N * sizeof(int32_t));
        for (int i = 0; i < N; i++)
            tg[i] = i == 0 ? 0 : i == 1 ? V - 1 : i % 4 == 2 ? -1 : (int)(rl_rng_float(&RNG) * V);
        const float *de = cases[c].dent ? dent : NULL;
        lm_out cpu = run_lm(CPU, 1, h, w, tg, dlogp, de, dw0, N, C, V, chunk, it);

        const rl_backend *be = G16;
        void *d_h = up_bf16(h, nh), *d_w = up_bf16(w, nw), *d_dh = up(be, NULL, nh * 2);
        int32_t *d_tg = up(be, tg, (size_t)N * 4);
        float *d_dlogp = up(be, dlogp, (size_t)N * 4), *d_dent = de ? up(be, de, N * 4) : NULL;
        float *d_logp = up(be, NULL, N * 4), *d_ent = up(be, NULL, N * 4);
        float *d_lse = up(be, NULL, N * 4), *d_dw = up(be, dw0, nw * 4);
        float *d_work = up(be, NULL, rl_lm_head_work_floats(RL_BF16, N, C, ch) * 4);
        be->lm_head_logprob_forward(be, d_logp, d_ent, d_lse, d_h, d_w, d_tg, N, C, V, it, chunk,
                                    d_work);
        be->lm_head_logprob_backward(be, d_dh, d_dw, d_dlogp, d_dent, d_h, d_w, d_tg, d_lse, d_ent,
                                     N, C, V, it, chunk, d_work);
        float *logp = down(be, d_logp, N), *ent = down(be, d_ent, N), *lse = down(be, d_lse, N);
        float *dw = down(be, d_dw, nw), *dh = rl_malloc(nh * sizeof(float));
        uint16_t *dhb = rl_malloc(nh * 2);
        be->mem_download(be, dhb, d_dh, nh * 2);
        for (size_t i = 0; i < nh; i++) dh[i] = rl_bf16_to_f32(dhb[i]);
        for (size_t i = 0; i < nw; i++) dw[i] -= dw0[i], cpu.dw[i] -= dw0[i];

        fprintf(stderr, "  lm_head bf16 N %d C %d V %d chunk %d temp %.1f%s\n", N, C, V, chunk,
                (double)cases[c].temp, de ? " (entropy seed)" : "");
        close_to("log-probs", logp, cpu.logp, N, 2 * F32_F, 2 * F32_F);
        close_to("entropies", ent, cpu.ent, N, 2 * F32_F, 2 * F32_F);
        close_to("lse", lse, cpu.lse, N, 2 * F32_F, 2 * F32_F);
        close_to("dW increment (float32)", dw, cpu.dw, nw, U_BF16 + 2 * F32_F,
                 U_BF16 * sqrt((double)N));
        close_to("dh (bf16)", dh, cpu.dh, nh, 2 * U_BF16 + 2 * F32_F, U_BF16);

        void *devs[] = {d_h, d_w, d_dh, d_tg, d_dlogp, d_dent, d_logp, d_ent, d_lse, d_dw, d_work};
        for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) be->mem_free(be, devs[i]);
        free(logp), free(ent), free(lse), free(dw), free(dh), free(dhb);
        lm_free(&cpu);
        free(h), free(w), free(dlogp), free(dent), free(dw0), free(tg);
    }
}

static void test_rmsnorm_residual(void) {
    const int shapes[][2] = {{1, 7}, {5, 64}, {13, 100}, {70, 33}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], C = shapes[s][1];
        size_t n = (size_t)N * C;
        float *a = host_rand(n, 2.0f), *b = host_rand(n, 1.0f), *w = host_rand(C, 1.5f);
        float *out[2][3];
        for (int k = 0; k < 2; k++) { // k = 0 the CPU, 1 the GPU
            const rl_backend *be = k ? GPU : CPU;
            float *d_a = up(be, a, n * 4), *d_b = up(be, b, n * 4), *d_w = up(be, w, C * 4);
            float *d_out = up(be, NULL, n * 4), *d_rstd = up(be, NULL, N * 4);
            be->rmsnorm_residual_forward(be, d_a, d_out, d_rstd, d_a, d_b, d_w, N, C, 1e-5f);
            out[k][0] = down(be, d_a, n), out[k][1] = down(be, d_out, n);
            out[k][2] = down(be, d_rstd, N);
            if (k) { // the GPU composition: the same bits
                be->mem_upload(be, d_a, a, n * 4);
                float *d_res = up(be, NULL, n * 4);
                be->residual_forward(be, d_res, d_a, d_b, n);
                be->rmsnorm_forward(be, d_out, d_rstd, d_res, d_w, N, C, 1e-5f);
                float *r2 = down(be, d_res, n), *o2 = down(be, d_out, n), *s2 = down(be, d_rstd, N);
                CHECK(!memcmp(r2, out[1][0], n * 4) && !memcmp(o2, out[1][1], n * 4) &&
                          !memcmp(s2, out[1][2], (size_t)N * 4),
                      "rmsnorm_residual %dx%d: GPU fused not bit for bit its composition", N, C);
                free(r2), free(o2), free(s2);
                be->mem_free(be, d_res);
            }
            void *devs[] = {d_a, d_b, d_w, d_out, d_rstd};
            for (size_t i = 0; i < 5; i++) be->mem_free(be, devs[i]);
        }
        double e = fmax(rel(out[1][1], out[0][1], n), rel(out[1][2], out[0][2], N));
        CHECK(!memcmp(out[1][0], out[0][0], n * 4) && e <= 2e-6,
              "rmsnorm_residual %dx%d: GPU vs CPU %.3g", N, C, e);
        for (int k = 0; k < 2; k++)
            for (int j = 0; j < 3; j++) free(out[k][j]);
        free(a), free(b), free(w);
    }
}

// RMSNorm + residual on the bf16 backend: bit for bit its composition (residual_forward then
// rmsnorm_forward, both of which round to bf16 on store), as the contract says for every act type.
static void test_rmsnorm_residual_bf16(void) {
    if (!G16) {
        fprintf(stderr, "  skip: no bf16 CUDA backend\n");
        return;
    }
    const int shapes[][2] = {{1, 7}, {13, 100}, {70, 33}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], C = shapes[s][1];
        size_t n = (size_t)N * C;
        float *a = host_rand(n, 2.0f), *b = host_rand(n, 1.0f), *w = host_rand(C, 1.5f);
        void *d_a = up_bf16(a, n), *d_b = up_bf16(b, n), *d_w = up_bf16(w, C);
        void *d_res = up(G16, NULL, n * 2), *d_out = up(G16, NULL, n * 2);
        float *d_rstd = up(G16, NULL, N * 4);
        uint16_t *fused[2], *comp[2];
        G16->rmsnorm_residual_forward(G16, d_res, d_out, d_rstd, d_a, d_b, d_w, N, C, 1e-5f);
        float *r1 = down(G16, d_rstd, N);
        fused[0] = rl_malloc(n * 2), fused[1] = rl_malloc(n * 2);
        G16->mem_download(G16, fused[0], d_res, n * 2);
        G16->mem_download(G16, fused[1], d_out, n * 2);
        G16->mem_zero(G16, d_res, n * 2), G16->mem_zero(G16, d_out, n * 2);
        G16->residual_forward(G16, d_res, d_a, d_b, n);
        G16->rmsnorm_forward(G16, d_out, d_rstd, d_res, d_w, N, C, 1e-5f);
        float *r2 = down(G16, d_rstd, N);
        comp[0] = rl_malloc(n * 2), comp[1] = rl_malloc(n * 2);
        G16->mem_download(G16, comp[0], d_res, n * 2);
        G16->mem_download(G16, comp[1], d_out, n * 2);
        CHECK(!memcmp(fused[0], comp[0], n * 2) && !memcmp(fused[1], comp[1], n * 2) &&
                  !memcmp(r1, r2, (size_t)N * 4),
              "rmsnorm_residual bf16 %dx%d: not bit for bit its composition", N, C);
        void *devs[] = {d_a, d_b, d_w, d_res, d_out, d_rstd};
        for (size_t i = 0; i < 6; i++) G16->mem_free(G16, devs[i]);
        for (int k = 0; k < 2; k++) free(fused[k]), free(comp[k]);
        free(r1), free(r2), free(a), free(b), free(w);
    }
}

// The model on the GPU with the fused lm_head (buffers of 2 rows of logits: 2 rows and
// 256-column chunks at a time) against the model on the CPU without it.
static void test_model_fused(void) {
    rl_model_config cfg = test_tiny_config();
    cfg.vocab_size = 301;
    int B = 3, T = 9;
    int32_t lengths[3] = {9, 6, 2};
    size_t N = (size_t)B * T;
    int32_t *tokens = rl_malloc(N * 4), *targets = rl_malloc(N * 4);
    float *dlogp = host_rand(N, 1.0f), *dent = host_rand(N, 0.5f);
    for (size_t i = 0; i < N; i++) {
        tokens[i] = (int32_t)(rl_rng_float(&RNG) * cfg.vocab_size);
        targets[i] = i % 5 == 3 ? -1 : (int32_t)(rl_rng_float(&RNG) * cfg.vocab_size);
    }
    float *lp[2], *en[2], *g[2], *slp[2];
    size_t ng = 0;
    for (int k = 0; k < 2; k++) {
        rl_model *m = NULL;
        rl_err err;
        if (rl_model_create(&m, &cfg, k ? GPU : CPU, &err)) {
            CHECK(0, "rl_model_create: %s", err.msg);
            exit(1);
        }
        rl_model_init_random(m, 42, 0.4f);
        m->lm_head_fused = k ? 1 : -1;
        if (k) m->logits_budget = 2 * (size_t)cfg.vocab_size;
        lp[k] = rl_malloc(N * 4), en[k] = rl_malloc(N * 4), slp[k] = rl_malloc(N * 4);
        CHECK(rl_model_forward(m, tokens, lengths, B, T, &err) == 0, "forward: %s", err.msg);
        CHECK(rl_model_token_logprobs(m, targets, 0.7f, lp[k], en[k], &err) == 0, "logprobs: %s",
              err.msg);
        rl_model_zero_grad(m);
        CHECK(rl_model_backward(m, dlogp, dent, &err) == 0, "backward: %s", err.msg);
        float *dg = rl_model_grads(m, &ng);
        g[k] = down(m->be, dg, ng);
        CHECK(rl_model_score_logprobs(m, tokens, lengths, B, T, targets, 0.7f, slp[k], NULL,
                                      &err) == 0,
              "score: %s", err.msg);
        rl_model_free(m);
    }
    // gradients: max |gpu - cpu| over the largest |cpu| of the whole block (some tensors' entries
    // are tiny, where the element-wise rule above measures only float32 noise)
    double gmax = 0.0, gerr = 0.0;
    for (size_t i = 0; i < ng; i++) gmax = fmax(gmax, fabs(g[0][i]));
    for (size_t i = 0; i < ng; i++) gerr = fmax(gerr, fabs((double)g[1][i] - g[0][i]));
    double e[4] = {rel(lp[1], lp[0], N), rel(en[1], en[0], N), gerr / gmax, rel(slp[1], slp[0], N)};
    fprintf(stderr, "  model: gpu fused - cpu unfused logp %.2g ent %.2g grads %.2g score %.2g\n",
            e[0], e[1], e[2], e[3]);
    CHECK(e[0] <= 2e-5 && e[1] <= 2e-5 && e[2] <= 1e-5 && e[3] <= 2e-5,
          "model: GPU fused lm_head off the CPU");
    for (int k = 0; k < 2; k++) free(lp[k]), free(en[k]), free(g[k]), free(slp[k]);
    free(tokens), free(targets), free(dlogp), free(dent);
}

int main(void) {
    rl_err err;
    CPU = rl_backend_cpu();
    GPU = rl_backend_cuda(&err);
    if (!GPU) {
        fprintf(stderr, "skip: %s\n", err.msg);
        return 77;
    }
    CHECK(GPU->lm_head_logprob_forward && GPU->lm_head_logprob_backward &&
              GPU->rmsnorm_residual_forward,
          "the CUDA backend provides the fused ops");
    if (test_failures_) return test_summary();
    RNG = rl_rng_stream(777, RL_RNG_INIT, 0, 0);
    RUN(test_lm_head);
    G16 = rl_backend_cuda_open(0, 0, RL_BF16, &err);
    if (!G16) fprintf(stderr, "no bf16 CUDA backend: %s\n", err.msg);
    RUN(test_lm_head_bf16);
    RUN(test_rmsnorm_residual_bf16);
    if (G16) rl_backend_release(G16);
    RUN(test_rmsnorm_residual);
    RUN(test_model_fused);
    rl_backend_release(GPU);
    return test_summary();
}
