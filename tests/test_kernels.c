// test_kernels: every kernel of the backend table against a naive double-precision reference on
// random inputs, the backward of every op against central finite differences of that reference,
// the sampling helpers against hand-derived distributions, AdamW against a double reference.
//
// The test talks to the kernels only through the backend table and its memory functions, so the
// same file checks another backend: RLPIPE_TEST_BACKEND=cuda (default cpu).
#include "kernels/backend.h"
#include "kernels/cpu/cpu_common.h"
#include "kernels/rng.h"
#include "test_util.h"

#include <float.h>
#include <stdint.h>

static const rl_backend *BE;

// ------------------------------------------------------------------------------------------------
// Helpers: random data, device copies, comparisons.

static rl_rng RNG;

static double urand(double lo, double hi) {
    return lo + (hi - lo) * rl_rng_double(&RNG);
}

// Random values in [-1,-0.05] U [0.05,1] (never zero).
static void fill_rand(double *x, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) {
        double u = urand(0.05, 1.0);
        x[i] = scale * (rl_rng_u32(&RNG) & 1 ? u : -u);
    }
}

static double *dalloc(size_t n) {
    return rl_calloc(n ? n : 1, sizeof(double));
}

// Device copy of a double array (as float).
static float *dev_f(const double *x, size_t n) {
    float *h = rl_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = (float)x[i];
    float *d = BE->mem_alloc(BE, (n ? n : 1) * sizeof(float));
    BE->mem_upload(BE, d, h, n * sizeof(float));
    free(h);
    return d;
}

static int32_t *dev_i(const int32_t *x, size_t n) {
    int32_t *d = BE->mem_alloc(BE, (n ? n : 1) * sizeof(int32_t));
    BE->mem_upload(BE, d, x, n * sizeof(int32_t));
    return d;
}

// Host double copy of a device float array.
static double *host_d(const float *d, size_t n) {
    float *h = rl_malloc((n ? n : 1) * sizeof(float));
    BE->mem_download(BE, h, d, n * sizeof(float));
    double *x = dalloc(n);
    for (size_t i = 0; i < n; i++) x[i] = h[i];
    free(h);
    return x;
}

static void dfree(void *d) {
    BE->mem_free(BE, d);
}

// One CHECK per array: |got - want| <= tol * (|want| + mean|want|) everywhere.
static void check_close(const char *what, const double *got, const double *want, size_t n,
                        double tol) {
    double scale = 0.0;
    for (size_t i = 0; i < n; i++) scale += fabs(want[i]);
    scale = n ? scale / n : 0.0;
    size_t bad = n;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]) / (fabs(want[i]) + scale + 1e-30);
        if (!(err <= tol) && bad == n) bad = i;
        if (err > worst || isnan(err)) worst = err;
    }
    CHECK(bad == n, "%s: element %zu got %.8g want %.8g (worst rel err %.3g, tol %g)", what, bad,
          bad < n ? got[bad] : 0.0, bad < n ? want[bad] : 0.0, worst, tol);
}

// Central difference of f at x[i] (x restored afterwards).
typedef double (*objective_fn)(void *ctx);
static double central_diff(double *x, size_t i, objective_fn f, void *ctx) {
    double h = 1e-5 * (fabs(x[i]) > 1.0 ? fabs(x[i]) : 1.0), keep = x[i];
    x[i] = keep + h;
    double fp = f(ctx);
    x[i] = keep - h;
    double fm = f(ctx);
    x[i] = keep;
    return (fp - fm) / (2 * h);
}

// Compares an analytic gradient g (for x[n]) with finite differences at up to `samples` indices.
static void check_grad(const char *what, double *x, const double *g, size_t n, int samples,
                       objective_fn f, void *ctx, double tol) {
    size_t m = n < (size_t)samples ? n : (size_t)samples;
    double *got = dalloc(m), *want = dalloc(m);
    for (size_t s = 0; s < m; s++) {
        size_t i = n <= (size_t)samples ? s : rl_rng_below(&RNG, (uint32_t)n);
        got[s] = g[i];
        want[s] = central_diff(x, i, f, ctx);
    }
    check_close(what, got, want, m, tol);
    free(got);
    free(want);
}

static double dot_d(const double *a, const double *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

// ------------------------------------------------------------------------------------------------
// Matrix products

static void ref_gemm(double *c, const double *a, const double *b, int M, int N, int K, int ta,
                     int tb, double alpha, double beta) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++)
                s += (ta ? a[(size_t)k * M + i] : a[(size_t)i * K + k]) *
                     (tb ? b[(size_t)j * K + k] : b[(size_t)k * N + j]);
            c[(size_t)i * N + j] = alpha * s + beta * c[(size_t)i * N + j];
        }
}

static void test_gemm(void) {
    // M = 1 rows take the CPU's sgemv path (batch-1 decode), large enough to use its vector code
    int shapes[][3] = {{5, 7, 3}, {33, 17, 65}, {1, 40, 9}, {1, 301, 257}};
    for (int s = 0; s < 4; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                double *a = dalloc((size_t)M * K), *b = dalloc((size_t)K * N),
                       *c = dalloc((size_t)M * N);
                fill_rand(a, (size_t)M * K, 1);
                fill_rand(b, (size_t)K * N, 1);
                fill_rand(c, (size_t)M * N, 1);
                float *da = dev_f(a, (size_t)M * K), *db = dev_f(b, (size_t)K * N),
                      *dc = dev_f(c, (size_t)M * N);
                BE->gemm(BE, dc, RL_F32, da, db, M, N, K, ta, tb, 0.7f, 0.5f);
                ref_gemm(c, a, b, M, N, K, ta, tb, 0.7, 0.5);
                double *got = host_d(dc, (size_t)M * N);
                char what[64];
                snprintf(what, sizeof what, "gemm %dx%dx%d ta=%d tb=%d", M, N, K, ta, tb);
                check_close(what, got, c, (size_t)M * N, 1e-5);
                free(a), free(b), free(c), free(got);
                dfree(da), dfree(db), dfree(dc);
            }
}

typedef struct matmul_case {
    int N, C, OC;
    double *inp, *w, *bias, *dout; // dout weights the objective sum(dout * out)
} matmul_case;

static void ref_matmul(double *out, const double *inp, const double *w, const double *bias, int N,
                       int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++) s += inp[(size_t)n * C + c] * w[(size_t)o * C + c];
            out[(size_t)n * OC + o] = s;
        }
}

static double matmul_objective(void *ctx) {
    matmul_case *t = ctx;
    double *out = dalloc((size_t)t->N * t->OC);
    ref_matmul(out, t->inp, t->w, t->bias, t->N, t->C, t->OC);
    double f = dot_d(out, t->dout, (size_t)t->N * t->OC);
    free(out);
    return f;
}

static void test_matmul(void) {
    int shapes[][3] = {{6, 5, 7}, {37, 16, 33}, {130, 64, 70}};
    for (int s = 0; s < 3; s++)
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            matmul_case t = {shapes[s][0], shapes[s][1], shapes[s][2], 0, 0, 0, 0};
            size_t nI = (size_t)t.N * t.C, nW = (size_t)t.OC * t.C, nO = (size_t)t.N * t.OC;
            t.inp = dalloc(nI), t.w = dalloc(nW), t.dout = dalloc(nO);
            t.bias = with_bias ? dalloc(t.OC) : NULL;
            fill_rand(t.inp, nI, 1), fill_rand(t.w, nW, 0.5), fill_rand(t.dout, nO, 1);
            if (t.bias) fill_rand(t.bias, t.OC, 1);
            // Gradient buffers start from random values: the backward must accumulate.
            double *dw0 = dalloc(nW), *db0 = dalloc(t.OC), *want = dalloc(nO);
            fill_rand(dw0, nW, 1), fill_rand(db0, t.OC, 1);
            float *di = dev_f(t.inp, nI), *dw = dev_f(t.w, nW), *dd = dev_f(t.dout, nO);
            float *dbias = t.bias ? dev_f(t.bias, t.OC) : NULL;
            float *out = BE->mem_alloc(BE, nO * sizeof(float));
            float *dinp = BE->mem_alloc(BE, nI * sizeof(float));
            float *gw = dev_f(dw0, nW), *gb = with_bias ? dev_f(db0, t.OC) : NULL;

            BE->matmul_forward(BE, out, di, dw, dbias, t.N, t.C, t.OC);
            ref_matmul(want, t.inp, t.w, t.bias, t.N, t.C, t.OC);
            double *got = host_d(out, nO);
            check_close("matmul_forward", got, want, nO, 1e-5);

            BE->matmul_backward(BE, dinp, gw, gb, dd, di, dw, t.N, t.C, t.OC);
            double *g_inp = host_d(dinp, nI), *g_w = host_d(gw, nW);
            for (size_t i = 0; i < nW; i++) g_w[i] -= dw0[i]; // the accumulated part
            check_grad("matmul dinp", t.inp, g_inp, nI, 40, matmul_objective, &t, 1e-4);
            check_grad("matmul dweight", t.w, g_w, nW, 40, matmul_objective, &t, 1e-4);
            if (with_bias) {
                double *g_b = host_d(gb, t.OC);
                for (int i = 0; i < t.OC; i++) g_b[i] -= db0[i];
                check_grad("matmul dbias", t.bias, g_b, t.OC, 40, matmul_objective, &t, 1e-4);
                free(g_b);
            }
            free(t.inp), free(t.w), free(t.dout), free(t.bias), free(dw0), free(db0), free(want);
            free(got), free(g_inp), free(g_w);
            dfree(di), dfree(dw), dfree(dd), dfree(dbias), dfree(out), dfree(dinp), dfree(gw);
            dfree(gb);
        }
}

// ------------------------------------------------------------------------------------------------
// Embedding

static void test_embedding(void) {
    int N = 23, C = 70, V = 11;
    int32_t tok[23];
    for (int n = 0; n < N; n++) tok[n] = (int32_t)rl_rng_below(&RNG, V);
    tok[3] = -1; // padding: zero row, no gradient
    tok[5] = tok[7] = 4;
    double *wte = dalloc((size_t)V * C), *dout = dalloc((size_t)N * C), *g0 = dalloc((size_t)V * C);
    fill_rand(wte, (size_t)V * C, 1), fill_rand(dout, (size_t)N * C, 1);
    fill_rand(g0, (size_t)V * C, 1);
    float *dw = dev_f(wte, (size_t)V * C), *dd = dev_f(dout, (size_t)N * C);
    float *gw = dev_f(g0, (size_t)V * C);
    int32_t *dt = dev_i(tok, N);
    float *out = BE->mem_alloc(BE, (size_t)N * C * sizeof(float));
    BE->embedding_forward(BE, out, dt, dw, N, C);
    double *got = host_d(out, (size_t)N * C), *want = dalloc((size_t)N * C);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            want[(size_t)n * C + c] = tok[n] < 0 ? 0.0 : wte[(size_t)tok[n] * C + c];
    check_close("embedding_forward", got, want, (size_t)N * C, 1e-7);

    BE->embedding_backward(BE, gw, dd, dt, N, C);
    double *g = host_d(gw, (size_t)V * C), *gwant = dalloc((size_t)V * C);
    memcpy(gwant, g0, (size_t)V * C * sizeof(double));
    for (int n = 0; n < N; n++)
        if (tok[n] >= 0)
            for (int c = 0; c < C; c++) gwant[(size_t)tok[n] * C + c] += dout[(size_t)n * C + c];
    check_close("embedding_backward", g, gwant, (size_t)V * C, 1e-6);
    free(wte), free(dout), free(g0), free(got), free(want), free(g), free(gwant);
    dfree(dw), dfree(dd), dfree(gw), dfree(dt), dfree(out);
}

// ------------------------------------------------------------------------------------------------
// RMSNorm

typedef struct rms_case {
    int N, C;
    double eps, *inp, *w, *dout;
} rms_case;

static void ref_rmsnorm(double *out, const double *inp, const double *w, int N, int C, double eps) {
    for (int n = 0; n < N; n++) {
        const double *x = inp + (size_t)n * C;
        double r = 1.0 / sqrt(dot_d(x, x, C) / C + eps);
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = w[c] * x[c] * r;
    }
}

static double rms_objective(void *ctx) {
    rms_case *t = ctx;
    double *out = dalloc((size_t)t->N * t->C);
    ref_rmsnorm(out, t->inp, t->w, t->N, t->C, t->eps);
    double f = dot_d(out, t->dout, (size_t)t->N * t->C);
    free(out);
    return f;
}

static void test_rmsnorm(void) {
    int shapes[][2] = {{7, 13}, {40, 96}, {3, 200}};
    for (int s = 0; s < 3; s++) {
        rms_case t = {shapes[s][0], shapes[s][1], s == 1 ? 1e-5 : 1e-6, 0, 0, 0};
        size_t n = (size_t)t.N * t.C;
        t.inp = dalloc(n), t.w = dalloc(t.C), t.dout = dalloc(n);
        fill_rand(t.inp, n, 2), fill_rand(t.w, t.C, 1.5), fill_rand(t.dout, n, 1);
        double *gi0 = dalloc(n), *gw0 = dalloc(t.C), *want = dalloc(n);
        fill_rand(gi0, n, 1), fill_rand(gw0, t.C, 1);
        float *di = dev_f(t.inp, n), *dw = dev_f(t.w, t.C), *dd = dev_f(t.dout, n);
        float *gi = dev_f(gi0, n), *gw = dev_f(gw0, t.C);
        float *out = BE->mem_alloc(BE, n * sizeof(float)), *rstd = BE->mem_alloc(BE, t.N * 4);
        BE->rmsnorm_forward(BE, out, rstd, di, dw, t.N, t.C, (float)t.eps);
        ref_rmsnorm(want, t.inp, t.w, t.N, t.C, t.eps);
        double *got = host_d(out, n);
        check_close("rmsnorm_forward", got, want, n, 2e-6);
        BE->rmsnorm_backward(BE, gi, gw, dd, di, dw, rstd, t.N, t.C);
        double *g_i = host_d(gi, n), *g_w = host_d(gw, t.C);
        for (size_t i = 0; i < n; i++) g_i[i] -= gi0[i];
        for (int i = 0; i < t.C; i++) g_w[i] -= gw0[i];
        check_grad("rmsnorm dinp", t.inp, g_i, n, 60, rms_objective, &t, 1e-4);
        check_grad("rmsnorm dweight", t.w, g_w, t.C, 60, rms_objective, &t, 1e-4);
        free(t.inp), free(t.w), free(t.dout), free(gi0), free(gw0), free(want), free(got);
        free(g_i), free(g_w);
        dfree(di), dfree(dw), dfree(dd), dfree(gi), dfree(gw), dfree(out), dfree(rstd);
    }
}

// ------------------------------------------------------------------------------------------------
// RoPE

typedef struct rope_case {
    int N, n_heads, hd, stride;
    float theta;
    const int32_t *pos;
    double *x, *dout;
} rope_case;

// HF: inv_freq in float32, angle = float32(pos * inv_freq); the rotation itself in double.
static void ref_rope(double *out, const double *x, const rope_case *t) {
    memcpy(out, x, (size_t)t->N * t->stride * sizeof(double));
    int half = t->hd / 2;
    for (int n = 0; n < t->N; n++)
        for (int h = 0; h < t->n_heads; h++)
            for (int i = 0; i < half; i++) {
                float inv = 1.0f / powf(t->theta, (float)(2 * i) / (float)t->hd);
                double ang = (double)((float)t->pos[n] * inv);
                size_t a = (size_t)n * t->stride + (size_t)h * t->hd + i, b = a + half;
                out[a] = x[a] * cos(ang) - x[b] * sin(ang);
                out[b] = x[b] * cos(ang) + x[a] * sin(ang);
            }
}

static double rope_objective(void *ctx) {
    rope_case *t = ctx;
    size_t n = (size_t)t->N * t->stride;
    double *out = dalloc(n);
    ref_rope(out, t->x, t);
    double f = dot_d(out, t->dout, n);
    free(out);
    return f;
}

static void test_rope(void) {
    // heads sit inside wider rows (like q|k inside q|k|v): the rest of each row is untouched
    int cases[][4] = {{5, 3, 8, 30}, {9, 6, 64, 6 * 64 + 10}, {2, 1, 128, 128}};
    float thetas[] = {10000.0f, 1e6f, 500.0f};
    for (int s = 0; s < 3; s++) {
        rope_case t = {cases[s][0], cases[s][1], cases[s][2], cases[s][3], thetas[s], 0, 0, 0};
        int32_t pos[16];
        for (int n = 0; n < t.N; n++) pos[n] = (int32_t)rl_rng_below(&RNG, s == 1 ? 30000 : 50);
        t.pos = pos;
        size_t n = (size_t)t.N * t.stride;
        t.x = dalloc(n), t.dout = dalloc(n);
        fill_rand(t.x, n, 1), fill_rand(t.dout, n, 1);
        double *want = dalloc(n);
        ref_rope(want, t.x, &t);
        float *dx = dev_f(t.x, n), *dd = dev_f(t.dout, n);
        int32_t *dp = dev_i(pos, t.N);
        BE->rope_forward(BE, dx, dp, t.N, t.n_heads, t.hd, t.stride, t.theta);
        double *got = host_d(dx, n);
        // large positions: float angles make cos/sin differ from double by ~1e-6 absolute
        check_close("rope_forward", got, want, n, 1e-5);
        BE->rope_backward(BE, dd, dp, t.N, t.n_heads, t.hd, t.stride, t.theta);
        double *g = host_d(dd, n);
        // rows outside the heads have zero derivative through the rotation; the objective's
        // identity part there equals dout
        check_grad("rope backward", t.x, g, n, 80, rope_objective, &t, 1e-5);
        free(t.x), free(t.dout), free(want), free(got), free(g);
        dfree(dx), dfree(dd), dfree(dp);
    }
    // inv_freq exactly as torch's float32 formula, checked at a few hand-computed points
    float inv[64];
    rl_rope_inv_freq(inv, 128, 1e6f);
    CHECK(inv[0] == 1.0f, "inv_freq[0] = %g", inv[0]);
    CHECK_NEAR(inv[32], 1.0 / pow(1e6, 0.5), 1e-6, "inv_freq[32] = 1e6^-0.5");
    CHECK_NEAR(inv[63] * 1e6, 1e6 / pow(1e6, 126.0 / 128.0), 1e-5, "inv_freq[63]");
}

// ------------------------------------------------------------------------------------------------
// SwiGLU, residual

typedef struct swiglu_case {
    int N, FF;
    double *gu, *dout;
} swiglu_case;

static void ref_swiglu(double *out, const double *gu, int N, int FF) {
    for (int n = 0; n < N; n++)
        for (int i = 0; i < FF; i++) {
            double g = gu[(size_t)n * 2 * FF + i], u = gu[(size_t)n * 2 * FF + FF + i];
            out[(size_t)n * FF + i] = g / (1.0 + exp(-g)) * u;
        }
}

static double swiglu_objective(void *ctx) {
    swiglu_case *t = ctx;
    double *out = dalloc((size_t)t->N * t->FF);
    ref_swiglu(out, t->gu, t->N, t->FF);
    double f = dot_d(out, t->dout, (size_t)t->N * t->FF);
    free(out);
    return f;
}

static void test_swiglu_residual(void) {
    int shapes[][2] = {{3, 5}, {17, 130}};
    for (int s = 0; s < 2; s++) {
        swiglu_case t = {shapes[s][0], shapes[s][1], 0, 0};
        size_t n = (size_t)t.N * t.FF;
        t.gu = dalloc(2 * n), t.dout = dalloc(n);
        fill_rand(t.gu, 2 * n, 4), fill_rand(t.dout, n, 1);
        t.gu[0] = -95.0; // deep in the exp underflow range: silu -> -0
        t.gu[1] = 30.0;
        double *want = dalloc(n);
        ref_swiglu(want, t.gu, t.N, t.FF);
        float *dg = dev_f(t.gu, 2 * n), *dd = dev_f(t.dout, n);
        float *out = BE->mem_alloc(BE, n * 4), *dgu = BE->mem_alloc(BE, 2 * n * 4);
        BE->swiglu_forward(BE, out, dg, t.N, t.FF);
        double *got = host_d(out, n);
        check_close("swiglu_forward", got, want, n, 1e-6);
        BE->swiglu_backward(BE, dgu, dd, dg, t.N, t.FF);
        double *g = host_d(dgu, 2 * n);
        check_grad("swiglu backward", t.gu, g, 2 * n, 80, swiglu_objective, &t, 1e-4);
        free(t.gu), free(t.dout), free(want), free(got), free(g);
        dfree(dg), dfree(dd), dfree(out), dfree(dgu);
    }
    size_t n = 20001; // odd, above the parallel threshold
    double *a = dalloc(n), *b = dalloc(n), *want = dalloc(n);
    fill_rand(a, n, 1), fill_rand(b, n, 1);
    for (size_t i = 0; i < n; i++) want[i] = (double)(float)a[i] + (double)(float)b[i];
    float *da = dev_f(a, n), *db = dev_f(b, n);
    BE->residual_forward(BE, da, da, db, n); // out aliases a
    double *got = host_d(da, n);
    check_close("residual_forward", got, want, n, 1e-7);
    free(a), free(b), free(want), free(got);
    dfree(da), dfree(db);
}

// ------------------------------------------------------------------------------------------------
// Attention

typedef struct att_case {
    int B, T, NH, NKV, hd, window;
    const int32_t *lengths;
    double *qkv, *dout;
} att_case;

// Naive attention: full score rows with the causal / window / length mask, softmax in double.
static void ref_attention(double *out, const att_case *t) {
    int QKV = (t->NH + 2 * t->NKV) * t->hd, rep = t->NH / t->NKV;
    double *sc = dalloc(t->T);
    for (int b = 0; b < t->B; b++)
        for (int i = 0; i < t->T; i++)
            for (int h = 0; h < t->NH; h++) {
                double *o = out + ((size_t)b * t->T + i) * t->NH * t->hd + (size_t)h * t->hd;
                memset(o, 0, (size_t)t->hd * sizeof(double));
                if (i >= t->lengths[b]) continue;
                const double *q = t->qkv + ((size_t)b * t->T + i) * QKV + (size_t)h * t->hd;
                int kvh = h / rep;
                double mx = -1e300, sum = 0.0;
                for (int j = 0; j <= i; j++) {
                    int visible = t->window == 0 || j > i - t->window;
                    const double *k = t->qkv + ((size_t)b * t->T + j) * QKV +
                                      (size_t)t->NH * t->hd + (size_t)kvh * t->hd;
                    sc[j] = visible ? dot_d(q, k, t->hd) / sqrt((double)t->hd) : -INFINITY;
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = 0; j <= i; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int j = 0; j <= i; j++) {
                    const double *v = t->qkv + ((size_t)b * t->T + j) * QKV +
                                      (size_t)(t->NH + t->NKV) * t->hd + (size_t)kvh * t->hd;
                    for (int d = 0; d < t->hd; d++) o[d] += sc[j] / sum * v[d];
                }
            }
    free(sc);
}

static double att_objective(void *ctx) {
    att_case *t = ctx;
    size_t n = (size_t)t->B * t->T * t->NH * t->hd;
    double *out = dalloc(n);
    ref_attention(out, t);
    double f = dot_d(out, t->dout, n);
    free(out);
    return f;
}

static void run_attention_case(int B, int T, int NH, int NKV, int hd, int window,
                               const int32_t *lengths) {
    att_case t = {B, T, NH, NKV, hd, window, lengths, 0, 0};
    int QKV = (NH + 2 * NKV) * hd;
    size_t nq = (size_t)B * T * QKV, no = (size_t)B * T * NH * hd;
    t.qkv = dalloc(nq), t.dout = dalloc(no);
    fill_rand(t.qkv, nq, 1.5), fill_rand(t.dout, no, 1);
    // The objective only sees valid positions: zero dout at padding so FD and kernel agree.
    for (int b = 0; b < B; b++)
        for (int i = lengths[b]; i < T; i++)
            memset(t.dout + ((size_t)b * T + i) * NH * hd, 0, (size_t)NH * hd * sizeof(double));
    double *want = dalloc(no);
    ref_attention(want, &t);
    float *dq = dev_f(t.qkv, nq), *dd = dev_f(t.dout, no);
    int32_t *dl = dev_i(lengths, B);
    float *out = BE->mem_alloc(BE, no * 4), *lse = BE->mem_alloc(BE, (size_t)B * T * NH * 4);
    float *dqkv = BE->mem_alloc(BE, nq * 4);
    BE->fill(BE, dqkv, 7.0f, nq); // must be overwritten
    BE->attention_forward(BE, out, lse, dq, dl, B, T, NH, NKV, hd, window);
    double *got = host_d(out, no);
    char what[96];
    snprintf(what, sizeof what, "attention_forward B%d T%d NH%d NKV%d hd%d w%d", B, T, NH, NKV, hd,
             window);
    check_close(what, got, want, no, 2e-5);
    BE->attention_backward(BE, dqkv, dd, dq, out, lse, dl, B, T, NH, NKV, hd, window);
    double *g = host_d(dqkv, nq);
    snprintf(what, sizeof what, "attention_backward B%d T%d NH%d NKV%d hd%d w%d", B, T, NH, NKV, hd,
             window);
    check_grad(what, t.qkv, g, nq, 150, att_objective, &t, 2e-4);
    int pad_zero = 1; // padded rows of dqkv are exactly zero
    for (int b = 0; b < B; b++)
        for (int i = lengths[b]; i < T; i++)
            for (int c = 0; c < QKV; c++) pad_zero &= g[((size_t)b * T + i) * QKV + c] == 0.0;
    CHECK(pad_zero, "%s: padded rows of dqkv not zero", what);
    free(t.qkv), free(t.dout), free(want), free(got), free(g);
    dfree(dq), dfree(dd), dfree(dl), dfree(out), dfree(lse), dfree(dqkv);
}

static void test_attention(void) {
    int32_t full[3] = {9, 9, 9}, padded[3] = {9, 4, 1}, one[1] = {70};
    run_attention_case(3, 9, 4, 2, 8, 0, full);
    run_attention_case(3, 9, 4, 1, 6, 0, padded); // MQA, padding
    run_attention_case(3, 9, 6, 2, 4, 3, padded); // GQA 3, sliding window 3
    run_attention_case(2, 9, 2, 2, 16, 1, full);  // window 1: attends itself only
    run_attention_case(1, 70, 9, 1, 8, 0, one);   // rep 9 > one group, > one key block
    run_attention_case(1, 70, 2, 1, 10, 65, one); // window across a block boundary
}

// The cached path must equal the reference on the same keys: fill a cache through kv_store from
// two interleaved sequences, then query positions of both.
static void test_attention_cached(void) {
    int T = 70, S = 3, max_len = 2 * RL_KV_BLOCK;
    int heads[4][3] = {{6, 2, 8}, {6, 2, 8}, {4, 1, 32}, {3, 3, 16}}; // NH, NKV, hd
    int windows[4] = {0, 5, 0, 9};
    for (int c = 0; c < 4; c++) {
        int NH = heads[c][0], NKV = heads[c][1], hd = heads[c][2], window = windows[c];
        int QKV = (NH + 2 * NKV) * hd;
        int32_t lengths[2] = {T, T};
        att_case t = {2, T, NH, NKV, hd, window, lengths, 0, 0};
        size_t nq = (size_t)2 * T * QKV, no = (size_t)2 * T * NH * hd;
        t.qkv = dalloc(nq);
        fill_rand(t.qkv, nq, 1.5);
        double *want = dalloc(no);
        ref_attention(want, &t);
        // sequence b lives in slot 2 - b; store all rows in one call (order does not matter)
        int32_t slot[140], pos[140];
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < T; i++) slot[b * T + i] = 2 - b, pos[b * T + i] = i;
        float *dq = dev_f(t.qkv, nq);
        float *kc = BE->mem_alloc(BE, (size_t)S * max_len * NKV * hd * 4);
        float *vc = BE->mem_alloc(BE, (size_t)S * max_len * NKV * hd * 4);
        int32_t *ds = dev_i(slot, 2 * T), *dp = dev_i(pos, 2 * T);
        BE->kv_store(BE, kc, vc, dq, ds, dp, 2 * T, NH, NKV, hd, max_len);
        float *out = BE->mem_alloc(BE, no * 4);
        BE->attention_cached_forward(BE, out, dq, kc, vc, ds, dp, 2 * T, NH, NKV, hd, max_len,
                                     window);
        double *got = host_d(out, no);
        char what[80];
        snprintf(what, sizeof what, "attention_cached_forward NH%d NKV%d hd%d w%d", NH, NKV, hd,
                 window);
        check_close(what, got, want, no, 2e-5);
        free(t.qkv), free(want), free(got);
        dfree(dq), dfree(kc), dfree(vc), dfree(ds), dfree(dp), dfree(out);
    }
}

static void test_gather_rows(void) {
    int n = 4, C = 9, R = 6;
    double *x = dalloc((size_t)R * C), *want = dalloc((size_t)n * C);
    fill_rand(x, (size_t)R * C, 1);
    int32_t rows[4] = {5, 0, 5, 2};
    for (int i = 0; i < n; i++) memcpy(want + i * C, x + rows[i] * C, C * sizeof(double));
    float *dx = dev_f(x, (size_t)R * C), *out = BE->mem_alloc(BE, (size_t)n * C * 4);
    int32_t *dr = dev_i(rows, n);
    BE->gather_rows(BE, out, dx, dr, n, C);
    double *got = host_d(out, (size_t)n * C);
    check_close("gather_rows", got, want, (size_t)n * C, 1e-7);
    free(x), free(want), free(got);
    dfree(dx), dfree(out), dfree(dr);
}

// ------------------------------------------------------------------------------------------------
// Log-probabilities

typedef struct lp_case {
    int n, V;
    double it;
    const int32_t *targets;
    double *logits, *dlogp, *dent;
} lp_case;

// logp and entropy rows in double
static void ref_logprob(double *logp, double *ent, const lp_case *t) {
    for (int i = 0; i < t->n; i++) {
        const double *x = t->logits + (size_t)i * t->V;
        double mx = -1e300, sum = 0.0, h = 0.0;
        for (int k = 0; k < t->V; k++) mx = fmax(mx, x[k] * t->it);
        for (int k = 0; k < t->V; k++) sum += exp(x[k] * t->it - mx);
        double lse = mx + log(sum);
        for (int k = 0; k < t->V; k++) {
            double lp = x[k] * t->it - lse;
            h -= exp(lp) * lp;
        }
        logp[i] = t->targets[i] >= 0 ? x[t->targets[i]] * t->it - lse : 0.0;
        ent[i] = h;
    }
}

static double lp_objective(void *ctx) {
    lp_case *t = ctx;
    double *lp = dalloc(t->n), *h = dalloc(t->n);
    ref_logprob(lp, h, t);
    double f = dot_d(lp, t->dlogp, t->n) + (t->dent ? dot_d(h, t->dent, t->n) : 0.0);
    free(lp), free(h);
    return f;
}

static void test_logprob(void) {
    int shapes[][2] = {{5, 37}, {3, 5000}};
    double temps[] = {0.7, 1.0};
    for (int s = 0; s < 2; s++)
        for (int with_ent = 0; with_ent < 2; with_ent++) {
            lp_case t = {shapes[s][0], shapes[s][1], 1.0 / temps[s], 0, 0, 0, 0};
            size_t nl = (size_t)t.n * t.V;
            int32_t targets[5];
            for (int i = 0; i < t.n; i++) targets[i] = (int32_t)rl_rng_below(&RNG, t.V);
            targets[1] = -1; // no target: only the entropy term
            t.targets = targets;
            t.logits = dalloc(nl), t.dlogp = dalloc(t.n);
            fill_rand(t.logits, nl, 6), fill_rand(t.dlogp, t.n, 1);
            t.logits[3] = 25.0; // a peaked row 0
            if (with_ent) t.dent = dalloc(t.n), fill_rand(t.dent, t.n, 1);
            double *wlp = dalloc(t.n), *went = dalloc(t.n);
            ref_logprob(wlp, went, &t);
            float *dl = dev_f(t.logits, nl), *ddl = dev_f(t.dlogp, t.n);
            float *dde = t.dent ? dev_f(t.dent, t.n) : NULL;
            int32_t *dt = dev_i(targets, t.n);
            float *lp = BE->mem_alloc(BE, t.n * 4), *ent = BE->mem_alloc(BE, t.n * 4);
            BE->logprob_forward(BE, lp, ent, dl, dt, t.n, t.V, (float)t.it);
            double *glp = host_d(lp, t.n), *gent = host_d(ent, t.n);
            check_close("logprob_forward logp", glp, wlp, t.n, 2e-6);
            check_close("logprob_forward entropy", gent, went, t.n, 2e-5);
            // log_softmax rows
            float *ls = BE->mem_alloc(BE, nl * 4);
            BE->logsoftmax_forward(BE, ls, dl, t.n, t.V, (float)t.it);
            double *gls = host_d(ls, nl), *wls = dalloc(nl);
            for (int i = 0; i < t.n; i++) {
                int32_t keep = targets[i];
                for (int k = 0; k < t.V; k++) {
                    targets[i] = k; // reuse the reference: logp of every token
                    double lpk, hk;
                    lp_case one = t;
                    one.n = 1, one.logits = t.logits + (size_t)i * t.V, one.targets = &targets[i];
                    ref_logprob(&lpk, &hk, &one);
                    wls[(size_t)i * t.V + k] = lpk;
                    if (t.V > 100 && k > 40) break; // a few columns of the wide rows suffice
                }
                targets[i] = keep;
            }
            for (int i = 0; i < t.n; i++)
                for (int k = 0; k < t.V; k++)
                    if (t.V > 100 && k > 40) wls[(size_t)i * t.V + k] = gls[(size_t)i * t.V + k];
            check_close("logsoftmax_forward", gls, wls, nl, 2e-6);
            // backward in place (dlogits aliases logits)
            BE->logprob_backward(BE, dl, dl, dt, ddl, dde, t.n, t.V, (float)t.it);
            double *g = host_d(dl, nl);
            check_grad(with_ent ? "logprob_backward with entropy" : "logprob_backward", t.logits, g,
                       nl, 80, lp_objective, &t, 2e-4);
            free(t.logits), free(t.dlogp), free(t.dent), free(wlp), free(went), free(glp);
            free(gent), free(g), free(gls), free(wls);
            dfree(dl), dfree(ddl), dfree(dde), dfree(dt), dfree(lp), dfree(ent), dfree(ls);
        }
}

// ------------------------------------------------------------------------------------------------
// AdamW and reductions

static void test_adamw(void) {
    size_t n = 33333;
    double *p = dalloc(n), *m = dalloc(n), *v = dalloc(n);
    float *dp, *dm, *dv, *dg;
    fill_rand(p, n, 1);
    dp = dev_f(p, n), dm = BE->mem_alloc(BE, n * 4), dv = BE->mem_alloc(BE, n * 4);
    dg = BE->mem_alloc(BE, n * 4);
    double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1, gs = 0.5;
    for (int step = 1; step <= 3; step++) {
        double *g = dalloc(n);
        fill_rand(g, n, 1);
        float *tmp = dev_f(g, n);
        BE->mem_copy(BE, dg, tmp, n * 4);
        dfree(tmp);
        BE->adamw_update(BE, dp, dg, dm, dv, n, (float)lr, (float)b1, (float)b2, (float)eps,
                         (float)wd, (float)gs, step);
        for (size_t i = 0; i < n; i++) { // PyTorch AdamW in double
            double gi = (double)(float)g[i] * gs;
            p[i] *= 1.0 - lr * wd;
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            double mh = m[i] / (1 - pow(b1, step)), vh = v[i] / (1 - pow(b2, step));
            p[i] -= lr * mh / (sqrt(vh) + eps);
        }
        free(g);
    }
    double *gp = host_d(dp, n), *gm = host_d(dm, n), *gv = host_d(dv, n);
    check_close("adamw params", gp, p, n, 1e-5);
    check_close("adamw m", gm, m, n, 1e-5);
    check_close("adamw v", gv, v, n, 1e-5);
    free(p), free(m), free(v), free(gp), free(gm), free(gv);
    dfree(dp), dfree(dm), dfree(dv), dfree(dg);
}

static void test_reductions(void) {
    size_t sizes[] = {1, 255, 257, 100003};
    for (int s = 0; s < 4; s++) {
        size_t n = sizes[s];
        double *x = dalloc(n), want = 0.0;
        fill_rand(x, n, 3);
        for (size_t i = 0; i < n; i++) want += (double)(float)x[i] * (double)(float)x[i];
        float *dx = dev_f(x, n);
        double got = BE->sumsq(BE, dx, n);
        CHECK_NEAR(got, want, 1e-12, "sumsq");
        CHECK(BE->sumsq(BE, dx, n) == got, "sumsq is deterministic");
        BE->scale(BE, dx, -0.5f, n);
        double *gx = host_d(dx, n), *wx = dalloc(n);
        for (size_t i = 0; i < n; i++) wx[i] = -0.5 * (double)(float)x[i];
        check_close("scale", gx, wx, n, 1e-7);
        BE->fill(BE, dx, 0.25f, n);
        double *fx = host_d(dx, n);
        for (size_t i = 0; i < n; i++) wx[i] = 0.25;
        check_close("fill", fx, wx, n, 0);
        free(x), free(gx), free(wx), free(fx);
        dfree(dx);
    }
}

// The hand-written vectorisable exp of the CPU kernels.
static void test_expf(void) {
    double worst = 0.0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + 175.0f * (float)i / 200000.0f;
        double want = exp((double)x), got = rl_expf(x);
        double rel = fabs(got - want) / want;
        if (rel > worst) worst = rel;
    }
    CHECK(worst < 2.5e-7, "rl_expf max relative error %g", worst);
    CHECK(rl_expf(-200.0f) == 0.0f && rl_expf(-INFINITY) == 0.0f, "rl_expf underflow is 0");
    CHECK(rl_expf(0.0f) == 1.0f, "rl_expf(0) = %g", rl_expf(0.0f));
}

// ------------------------------------------------------------------------------------------------
// Sampling helpers

// Expected distribution: softmax(logits / T) restricted to `keep` (a 0/1 mask), renormalised.
static void expect_probs(double *want, const float *logits, int V, double T, const int *keep) {
    double sum = 0.0;
    for (int k = 0; k < V; k++) sum += keep[k] ? exp(logits[k] / T) : 0.0;
    for (int k = 0; k < V; k++) want[k] = keep[k] ? exp(logits[k] / T) / sum : 0.0;
}

static void check_sampling(const char *what, const float *logits, int V, rl_sampling s,
                           const int *keep) {
    float probs[16];
    int32_t idx[16];
    double got[16], want[16];
    int n = rl_sampling_probs(probs, logits, V, &s, idx);
    int n_keep = 0;
    for (int k = 0; k < V; k++) n_keep += keep[k], got[k] = probs[k];
    expect_probs(want, logits, V, s.temperature, keep);
    CHECK(n == n_keep, "%s: kept %d tokens, want %d", what, n, n_keep);
    check_close(what, got, want, V, 1e-6);
}

static void test_sampling(void) {
    // Ranked: 5 (3.0), 0 (2.0), 1 & 6 (1.0, tie), 2 (0.5), 3 (0.0), 4 (-1.0)
    const float lg[7] = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, 3.0f, 1.0f};
    int all[7] = {1, 1, 1, 1, 1, 1, 1};
    check_sampling("temperature 1", lg, 7, (rl_sampling){1.0f, 0, 1.0f, 0.0f}, all);
    check_sampling("temperature 0.5", lg, 7, (rl_sampling){0.5f, 0, 1.0f, 0.0f}, all);
    int top2[7] = {1, 0, 0, 0, 0, 1, 0};
    check_sampling("top_k 2", lg, 7, (rl_sampling){1.0f, 2, 1.0f, 0.0f}, top2);
    int top3[7] = {1, 1, 0, 0, 0, 1, 1}; // the tie at rank 3 keeps both (HF)
    check_sampling("top_k 3 with tie", lg, 7, (rl_sampling){1.0f, 3, 1.0f, 0.0f}, top3);
    // T = 1 probabilities: 5 .5591, 0 .2057, 1 .0757, 6 .0757, 2 .0459, 3 .0278, 4 .0102
    // top_p 0.6: the mass above 0 is .5591 < .6 (kept), above 1 it is .7648 >= .6 (dropped)
    int p06[7] = {1, 0, 0, 0, 0, 1, 0};
    check_sampling("top_p 0.6", lg, 7, (rl_sampling){1.0f, 0, 0.6f, 0.0f}, p06);
    // top_p 0.8: above 1 (tie with 6 broken by id) .7648 < .8 kept; above 6 .8405 dropped
    int p08[7] = {1, 1, 0, 0, 0, 1, 0};
    check_sampling("top_p 0.8", lg, 7, (rl_sampling){1.0f, 0, 0.8f, 0.0f}, p08);
    int p01[7] = {0, 0, 0, 0, 0, 1, 0}; // the best token always stays
    check_sampling("top_p 0.1", lg, 7, (rl_sampling){1.0f, 0, 0.1f, 0.0f}, p01);
    // top_k 3 keeps 4 tokens (tie), renormalised: 5 .6103, 0 .2245, 1 .0826, 6 .0826;
    // then top_p 0.8: above 0 .6103 kept, above 1 .8348 dropped -> {5, 0}
    int kp[7] = {1, 0, 0, 0, 0, 1, 0};
    check_sampling("top_k 3 + top_p 0.8", lg, 7, (rl_sampling){1.0f, 3, 0.8f, 0.0f}, kp);
    // min_p 0.1: threshold .0559 keeps 5, 0, 1, 6 (.0757) and drops 2 (.0459)
    int mp[7] = {1, 1, 0, 0, 0, 1, 1};
    check_sampling("min_p 0.1", lg, 7, (rl_sampling){1.0f, 0, 1.0f, 0.1f}, mp);
    // T = 2: 5 .3348, 0 .2030, 1 .1231, 6 .1231, 2 .0959, 3 .0747, 4 .0453;
    // min_p 0.3 -> threshold .1004 keeps 5, 0, 1, 6
    check_sampling("T 2 + min_p 0.3", lg, 7, (rl_sampling){2.0f, 0, 1.0f, 0.3f}, mp);
    // greedy
    float probs[7];
    int32_t idx[7];
    int n = rl_sampling_probs(probs, lg, 7, &(rl_sampling){0.0f, 0, 1.0f, 0.0f}, idx);
    CHECK(n == 1 && probs[5] == 1.0f && probs[0] == 0.0f, "greedy is one-hot at the argmax");
    CHECK(rl_argmax(lg, 7) == 5, "argmax");
    // drawing: inverse CDF over the kept tokens
    rl_sampling_probs(probs, lg, 7, &(rl_sampling){1.0f, 2, 1.0f, 0.0f}, idx);
    CHECK(rl_sample_from_probs(probs, 7, 0.0f) == 0, "u = 0 draws the first kept token");
    CHECK(rl_sample_from_probs(probs, 7, probs[0] + 1e-4f) == 5, "u past token 0 draws 5");
    CHECK(rl_sample_from_probs(probs, 7, 0.9999999f) == 5, "u near 1 draws the last kept token");
    // token log-prob
    double lse = 0.0;
    for (int k = 0; k < 7; k++) lse += exp(lg[k] / 0.7);
    CHECK_NEAR(rl_token_logprob(lg, 7, 2, 0.7f), 0.5 / 0.7 - log(lse), 1e-6, "rl_token_logprob");
    // softmax
    float sm[7];
    rl_softmax(sm, lg, 7, 1.0f);
    double want[7], got[7];
    expect_probs(want, lg, 7, 1.0, all);
    for (int k = 0; k < 7; k++) got[k] = sm[k];
    check_close("rl_softmax", got, want, 7, 1e-6);

    // A wide random row: top-p against a brute-force selection (exercises the sort).
    enum { VW = 3000 };
    float *wl = rl_malloc(VW * sizeof(float)), *wp = rl_malloc(VW * sizeof(float));
    int32_t *wi = rl_malloc(VW * sizeof(int32_t));
    for (int k = 0; k < VW; k++) wl[k] = (float)(rl_rng_below(&RNG, 400)) / 100.0f; // many ties
    rl_sampling s = {1.3f, 0, 0.9f, 0.0f};
    int kept = rl_sampling_probs(wp, wl, VW, &s, wi);
    double *pr = dalloc(VW), tot = 0.0;
    for (int k = 0; k < VW; k++) tot += pr[k] = exp(wl[k] / 1.3);
    int bf = 0, agree = 1;
    for (int k = 0; k < VW; k++) { // keep k iff the mass ranked strictly above k is < top_p
        double above = 0.0;
        for (int j = 0; j < VW; j++)
            if (wl[j] > wl[k] || (wl[j] == wl[k] && j < k)) above += pr[j] / tot;
        int keep = above < 0.9;
        bf += keep;
        agree &= keep == (wp[k] > 0.0f);
    }
    CHECK(agree && kept == bf, "wide top_p: kept %d, brute force %d", kept, bf);
    free(wl), free(wp), free(wi), free(pr);
}

int main(void) {
    const char *name = getenv("RLPIPE_TEST_BACKEND");
    rl_err err;
    BE = rl_backend_get(name ? name : "cpu", &err);
    if (!BE) {
        fprintf(stderr, "skip: %s\n", err.msg);
        return 77;
    }
    RNG = rl_rng_stream(1234, RL_RNG_INIT, 0, 0);
    RUN(test_gemm);
    RUN(test_matmul);
    RUN(test_embedding);
    RUN(test_rmsnorm);
    RUN(test_rope);
    RUN(test_swiglu_residual);
    RUN(test_attention);
    RUN(test_attention_cached);
    RUN(test_gather_rows);
    RUN(test_logprob);
    RUN(test_adamw);
    RUN(test_reductions);
    RUN(test_expf);
    RUN(test_sampling);
    rl_backend_release(BE);
    return test_summary();
}
