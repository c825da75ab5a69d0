// test_cuda: the CUDA backend against the CPU backend (the reference, itself checked against
// double-precision math in test_kernels and test_model), op by op and then the whole model.
//
// Every op runs on random inputs (never zeros) of several shapes, odd sizes included, on both
// backends from the same bits; the outputs are compared element by element with
//     rel = |gpu - cpu| / (|cpu| + mean|cpu|)   and   NMSE = sum (gpu - cpu)^2 / sum cpu^2,
// max rel <= tol and NMSE <= tol^2, tol ~1e-5 for float32 (the two backends sum in different
// orders). Copies, gathers, the KV cache store, residual adds, scale, fill and the embedding
// gradient (the same additions in the same order) must match bit for bit. Reductions the
// contract makes deterministic (bias / norm-weight / embedding gradients, attention backward,
// sum of squares) must give the same bits when run twice on the GPU.
//
// Then the Qwen2 model on tiny configs (GQA, MHA, MQA, sliding window, tied and untied, bias or
// not, padding, chunked lm_head): forward logits, token log-probs, entropies, the gradient of the
// full objective (every tensor), the grad norm, an AdamW step of the model's flat blocks, KV-cache
// prefill (chunked too) and decode steps, and a slot copy.
//
// Without the CUDA backend compiled in, or without a device, it checks that asking for the
// backend fails cleanly (an rl_err, no crash), prints why, and exits 77 (skipped).
// Every comparison prints its error statistics, so a GPU run's log shows the margins.
#define _POSIX_C_SOURCE 200809L
#include "kernels/backend.h"
#include "kernels/rng.h"
#include "policy/model.h"
#include "policy/optim.h"
#include "test_model_util.h"
#include "test_util.h"

#ifdef RLPIPE_HAVE_CUDA_BACKEND
#include "kernels/cuda/kernels_cuda.h"
#endif

#include <stdint.h>

static const rl_backend *CPU, *GPU;
static rl_rng RNG;

// ------------------------------------------------------------------------------------------------
// The same array on both backends

typedef struct dbuf {
    float *cpu, *gpu; // NULL for an absent (optional) argument
    size_t n;
} dbuf;

typedef struct ibuf {
    int32_t *cpu, *gpu;
    size_t n;
} ibuf;

// The pointer of a buffer on backend k (0 = CPU, 1 = GPU), used as P(b) in the run loops.
#define P(b)    (k ? (b).gpu : (b).cpu)
#define BACKEND (k ? GPU : CPU)
#define ON_BOTH for (int k = 0; k < 2; k++)

static const dbuf NONE = {NULL, NULL, 0};

// Random values in [-scale, -0.05*scale] U [0.05*scale, scale]: never zero.
static void rand_fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) {
        float u = 0.05f + 0.95f * rl_rng_float(&RNG);
        x[i] = scale * (rl_rng_u32(&RNG) & 1 ? u : -u);
    }
}

static dbuf buf_from(const float *h, size_t n) {
    dbuf b = {CPU->mem_alloc(CPU, (n ? n : 1) * 4), GPU->mem_alloc(GPU, (n ? n : 1) * 4), n};
    CPU->mem_upload(CPU, b.cpu, h, n * 4);
    GPU->mem_upload(GPU, b.gpu, h, n * 4);
    return b;
}

static dbuf buf_rand(size_t n, float scale) {
    float *h = rl_malloc((n ? n : 1) * 4);
    rand_fill(h, n, scale);
    dbuf b = buf_from(h, n);
    free(h);
    return b;
}

static ibuf ibuf_from(const int32_t *h, size_t n) {
    ibuf b = {CPU->mem_alloc(CPU, (n ? n : 1) * 4), GPU->mem_alloc(GPU, (n ? n : 1) * 4), n};
    CPU->mem_upload(CPU, b.cpu, h, n * 4);
    GPU->mem_upload(GPU, b.gpu, h, n * 4);
    return b;
}

static void buf_free(dbuf *b) {
    CPU->mem_free(CPU, b->cpu);
    GPU->mem_free(GPU, b->gpu);
    *b = NONE;
}

static void ibuf_free(ibuf *b) {
    CPU->mem_free(CPU, b->cpu);
    GPU->mem_free(GPU, b->gpu);
}

static float *download(const rl_backend *be, const void *d, size_t n) {
    float *h = rl_malloc((n ? n : 1) * 4);
    be->mem_download(be, h, d, n * 4);
    return h;
}

// ------------------------------------------------------------------------------------------------
// Comparisons

// got (GPU) against want (CPU): rel error with the scale max(mean|want|, floor), NMSE (its
// denominator at least n * floor^2). tol < 0: bit for bit. Prints one line either way.
static void compare_floor(const char *what, const float *got, const float *want, size_t n,
                          double tol, double floor) {
    if (tol < 0) {
        size_t first = n;
        for (size_t i = 0; i < n && first == n; i++)
            if (memcmp(got + i, want + i, 4) != 0) first = i;
        fprintf(stderr, "  %-58s %s\n", what, first == n ? "bitwise equal" : "DIFFER");
        CHECK(first == n, "%s: not bitwise equal: element %zu got %.9g want %.9g", what, first,
              first < n ? got[first] : 0.0, first < n ? want[first] : 0.0);
        return;
    }
    double scale = 0.0, se = 0.0, sw = 0.0, worst = 0.0;
    size_t at = 0, nan_mismatch = 0;
    for (size_t i = 0; i < n; i++) scale += fabs(want[i]);
    scale = n ? scale / n : 0.0;
    if (scale < floor) scale = floor;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) != isnan(want[i]) || isinf(got[i]) != isinf(want[i])) {
            nan_mismatch++;
            continue;
        }
        if (!isfinite(want[i])) continue;
        double d = (double)got[i] - want[i];
        double rel = fabs(d) / (fabs(want[i]) + scale + 1e-30);
        se += d * d;
        sw += (double)want[i] * want[i];
        if (rel > worst) worst = rel, at = i;
    }
    if (sw < (double)n * floor * floor)
        sw = (double)n * floor * floor; // the floor applies here too
    double nmse = sw > 0 ? se / sw : se;
    fprintf(stderr, "  %-58s max rel %.2e  nmse %.2e  (tol %.0e)\n", what, worst, nmse, tol);
    CHECK(nan_mismatch == 0, "%s: %zu elements non-finite on one backend only", what, nan_mismatch);
    CHECK(worst <= tol && nmse <= tol * tol,
          "%s: element %zu got %.9g want %.9g: max rel err %.3g, nmse %.3g (tol %g)", what, at,
          n ? got[at] : 0.0, n ? want[at] : 0.0, worst, nmse, tol);
}

static void compare(const char *what, const float *got, const float *want, size_t n, double tol) {
    compare_floor(what, got, want, n, tol, 0.0);
}

// Downloads a buffer from both backends and compares them (scale floor: see compare_floor).
static void check_buf_floor(const char *what, dbuf b, double tol, double floor) {
    float *c = download(CPU, b.cpu, b.n), *g = download(GPU, b.gpu, b.n);
    compare_floor(what, g, c, b.n, tol, floor);
    free(c), free(g);
}

static void check_buf(const char *what, dbuf b, double tol) {
    check_buf_floor(what, b, tol, 0.0);
}

// The GPU buffer holds the same bits as a host copy taken earlier (determinism).
static void check_same_bits(const char *what, const float *gpu_dev, const float *before, size_t n) {
    float *now = download(GPU, gpu_dev, n);
    compare(what, now, before, n, -1);
    free(now);
}

// ------------------------------------------------------------------------------------------------
// Backend set-up and memory

// rl_backend_get("cuda") fails with an rl_err (never a crash) when the backend is missing.
static void check_unavailable(const rl_err *err) {
    CHECK(err->kind == RL_EINPUT || err->kind == RL_EINTERNAL, "error kind %d", err->kind);
    CHECK(err->msg[0] != '\0' && strstr(err->msg, "cuda") != NULL, "message names cuda: '%s'",
          err->msg);
#ifdef RLPIPE_HAVE_CUDA_BACKEND
    CHECK(strstr(err->msg, "no CUDA device") || strstr(err->msg, "compute capability") ||
              strstr(err->msg, "device index"),
          "message says why: '%s'", err->msg);
#else
    CHECK(strstr(err->msg, "without CUDA") != NULL, "message says why: '%s'", err->msg);
#endif
    rl_err again;
    CHECK(rl_backend_get("cuda", &again) == NULL && strcmp(again.msg, err->msg) == 0,
          "a second request fails the same way");
    rl_backend_release(NULL);
}

#ifdef RLPIPE_CUDA_MODULE
// The dlopen loader (kernels/cuda_module.c): a module path that does not exist, a file that is not
// a shared object, and a shared object without the entry points are each a clear RL_EINPUT that
// names the module, never a crash; unsetting the variable finds the built module again.
static void check_module_loader(void) {
    static const struct {
        const char *path, *says;
    } bad[] = {
        {"/nonexistent/librlpipe_cuda.so", "RLPIPE_CUDA_MODULE"},
        {"CMakeLists.txt", "RLPIPE_CUDA_MODULE"},
        {"libm.so.6", "not an rlpipe CUDA module"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl_err err = {0};
        setenv("RLPIPE_CUDA_MODULE", bad[i].path, 1);
        const rl_backend *be = rl_backend_cuda_open(0, 0, RL_F32, &err);
        CHECK(be == NULL && err.kind == RL_EINPUT && strstr(err.msg, bad[i].says),
              "RLPIPE_CUDA_MODULE=%s refused: '%s'", bad[i].path, err.msg);
        rl_backend_release(be);
    }
    unsetenv("RLPIPE_CUDA_MODULE");
    rl_err err = {0};
    const rl_backend *be = rl_backend_cuda_open(0, 0, RL_F32, &err);
    CHECK(be != NULL || !strstr(err.msg, "cannot load"), "the built module is found: '%s'",
          err.msg);
    rl_backend_release(be);
}
#endif

#ifdef RLPIPE_HAVE_CUDA_BACKEND
// Bad environment values are bad input, checked before any device is touched.
static void check_env_knobs(void) {
    rl_err err;
    setenv("RLPIPE_CUDA_DEVICE", "first", 1);
    CHECK(rl_backend_get("cuda", &err) == NULL && err.kind == RL_EINPUT &&
              strstr(err.msg, "RLPIPE_CUDA_DEVICE"),
          "RLPIPE_CUDA_DEVICE=first rejected: '%s'", err.msg);
    unsetenv("RLPIPE_CUDA_DEVICE");
    setenv("RLPIPE_CUDA_TF32", "-1", 1);
    CHECK(rl_backend_get("cuda", &err) == NULL && err.kind == RL_EINPUT &&
              strstr(err.msg, "RLPIPE_CUDA_TF32"),
          "RLPIPE_CUDA_TF32=-1 rejected: '%s'", err.msg);
    unsetenv("RLPIPE_CUDA_TF32");
}
#endif

static void test_memory(void) {
    size_t n = 1237;
    float *d = GPU->mem_alloc(GPU, n * 4);
    float *h = download(GPU, d, n);
    int all_zero = 1;
    for (size_t i = 0; i < n; i++) all_zero &= h[i] == 0.0f;
    CHECK(all_zero, "mem_alloc returns zero-filled memory");
    float *src = rl_malloc(n * 4);
    rand_fill(src, n, 3.0f);
    GPU->mem_upload(GPU, d, src, n * 4);
    free(h);
    h = download(GPU, d, n);
    CHECK(memcmp(h, src, n * 4) == 0, "upload / download round trip");
    // memmove semantics on both backends: overlapping copies forward and backward, then zero
    dbuf b = buf_from(src, n);
    ON_BOTH {
        BACKEND->mem_copy(BACKEND, P(b) + 100, P(b), 500 * 4);
        BACKEND->mem_copy(BACKEND, P(b) + 3, P(b) + 40, 900 * 4);
        BACKEND->mem_copy(BACKEND, P(b) + 1100, P(b) + 7, 100 * 4);
        BACKEND->mem_zero(BACKEND, P(b) + 17, 33 * 4);
        BACKEND->mem_copy(BACKEND, P(b), P(b), n * 4); // same range: nothing
    }
    check_buf("mem_copy (overlapping, memmove) / mem_zero", b, -1);
    GPU->synchronize(GPU);
    buf_free(&b);
    GPU->mem_free(GPU, d);
    GPU->mem_free(GPU, NULL);
    free(h), free(src);
}

// ------------------------------------------------------------------------------------------------
// Matrix products

static void test_gemm(void) {
    int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {128, 96, 80}, {257, 129, 31}};
    float betas[] = {0.0f, 1.0f, -0.5f};
    char what[96];
    for (int s = 0; s < 5; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                float beta = betas[(s + ta + 2 * tb) % 3];
                dbuf a = buf_rand((size_t)M * K, 1), b = buf_rand((size_t)K * N, 1);
                dbuf c = buf_rand((size_t)M * N, 1);
                ON_BOTH BACKEND->gemm(BACKEND, P(c), RL_F32, P(a), P(b), M, N, K, ta, tb, 0.7f,
                                      beta);
                snprintf(what, sizeof what, "gemm %dx%dx%d ta%d tb%d beta %g", M, N, K, ta, tb,
                         (double)beta);
                check_buf(what, c, 1e-5);
                buf_free(&a), buf_free(&b), buf_free(&c);
            }
    // K = 0: the empty product, c = beta * c
    for (int z = 0; z < 2; z++) {
        dbuf c = buf_rand(35, 1);
        ON_BOTH BACKEND->gemm(BACKEND, P(c), RL_F32, P(c), P(c), 5, 7, 0, 0, 0, 1.0f,
                              z ? 0.5f : 0.0f);
        check_buf(z ? "gemm K=0 beta 0.5" : "gemm K=0 beta 0", c, -1);
        buf_free(&c);
    }
}

static void test_matmul(void) {
    int shapes[][3] = {{1, 8, 8}, {6, 5, 7}, {37, 48, 80}, {129, 96, 33}, {300, 64, 1000}};
    char what[96];
    for (int s = 0; s < 5; s++)
        for (int variant = 0; variant < 3; variant++) { // 0: all, 1: no bias, 2: no dinp
            int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
            int with_bias = variant != 1;
            dbuf inp = buf_rand((size_t)N * C, 1), w = buf_rand((size_t)OC * C, 0.5f);
            dbuf bias = with_bias ? buf_rand(OC, 1) : NONE, out = buf_rand((size_t)N * OC, 1);
            dbuf dout = buf_rand((size_t)N * OC, 1);
            dbuf dinp = variant == 2 ? NONE : buf_rand((size_t)N * C, 1); // overwritten
            dbuf dw = buf_rand((size_t)OC * C, 1), db = with_bias ? buf_rand(OC, 1) : NONE;
            ON_BOTH BACKEND->matmul_forward(BACKEND, P(out), P(inp), P(w), P(bias), N, C, OC);
            snprintf(what, sizeof what, "matmul_forward N%d C%d OC%d bias %d", N, C, OC, with_bias);
            check_buf(what, out, 1e-5);
            float *dw0 = download(GPU, dw.gpu, dw.n),
                  *db0 = with_bias ? download(GPU, db.gpu, OC) : NULL;
            ON_BOTH BACKEND->matmul_backward(BACKEND, P(dinp), P(dw), P(db), P(dout), P(inp), P(w),
                                             N, C, OC);
            snprintf(what, sizeof what, "matmul_backward N%d C%d OC%d variant %d", N, C, OC,
                     variant);
            if (dinp.n) check_buf(what, dinp, 1e-5);
            check_buf(what, dw, 1e-5);
            if (with_bias) check_buf(what, db, 1e-5);
            if (variant == 0) { // the same again from the same start: the same bits
                float *dw1 = download(GPU, dw.gpu, dw.n), *db1 = download(GPU, db.gpu, OC);
                GPU->mem_upload(GPU, dw.gpu, dw0, dw.n * 4);
                GPU->mem_upload(GPU, db.gpu, db0, (size_t)OC * 4);
                GPU->matmul_backward(GPU, dinp.gpu, dw.gpu, db.gpu, dout.gpu, inp.gpu, w.gpu, N, C,
                                     OC);
                snprintf(what, sizeof what, "matmul_backward N%d C%d OC%d twice: dweight", N, C,
                         OC);
                check_same_bits(what, dw.gpu, dw1, dw.n);
                snprintf(what, sizeof what, "matmul_backward N%d C%d OC%d twice: dbias", N, C, OC);
                check_same_bits(what, db.gpu, db1, OC);
                free(dw1), free(db1);
            }
            free(dw0), free(db0);
            buf_free(&inp), buf_free(&w), buf_free(&bias), buf_free(&out), buf_free(&dout);
            buf_free(&dinp), buf_free(&dw), buf_free(&db);
        }
}

// ------------------------------------------------------------------------------------------------
// Embedding, RMSNorm, RoPE, SwiGLU, residual, gather

static void test_embedding(void) {
    int cases[][3] = {{37, 45, 11}, {600, 130, 50}, {1, 7, 3}}; // N, C, V (tokens repeat)
    char what[96];
    for (int s = 0; s < 3; s++) {
        int N = cases[s][0], C = cases[s][1], V = cases[s][2];
        int32_t *tok = rl_malloc((size_t)N * 4);
        for (int n = 0; n < N; n++) tok[n] = n % 7 == 3 ? -1 : (int32_t)rl_rng_below(&RNG, V);
        ibuf t = ibuf_from(tok, N);
        dbuf wte = buf_rand((size_t)V * C, 1), out = buf_rand((size_t)N * C, 1);
        dbuf dout = buf_rand((size_t)N * C, 1), dwte = buf_rand((size_t)V * C, 1);
        ON_BOTH BACKEND->embedding_forward(BACKEND, P(out), P(t), P(wte), N, C);
        snprintf(what, sizeof what, "embedding_forward N%d C%d V%d", N, C, V);
        check_buf(what, out, -1);
        float *before = download(GPU, dwte.gpu, dwte.n);
        ON_BOTH BACKEND->embedding_backward(BACKEND, P(dwte), P(dout), P(t), N, C);
        snprintf(what, sizeof what, "embedding_backward N%d C%d V%d (same order)", N, C, V);
        check_buf(what, dwte, -1);
        float *once = download(GPU, dwte.gpu, dwte.n);
        GPU->mem_upload(GPU, dwte.gpu, before, dwte.n * 4);
        GPU->embedding_backward(GPU, dwte.gpu, dout.gpu, t.gpu, N, C);
        snprintf(what, sizeof what, "embedding_backward N%d C%d twice", N, C);
        check_same_bits(what, dwte.gpu, once, dwte.n);
        free(tok), free(before), free(once);
        ibuf_free(&t);
        buf_free(&wte), buf_free(&out), buf_free(&dout), buf_free(&dwte);
    }
}

static void test_rmsnorm(void) {
    int cases[][2] = {{1, 7}, {37, 96}, {64, 1000}, {300, 33}};
    char what[96];
    for (int s = 0; s < 4; s++) {
        int N = cases[s][0], C = cases[s][1];
        float eps = s % 2 ? 1e-5f : 1e-6f;
        dbuf x = buf_rand((size_t)N * C, 2), w = buf_rand(C, 1), out = buf_rand((size_t)N * C, 1);
        dbuf rstd = buf_rand(N, 1), dout = buf_rand((size_t)N * C, 1);
        dbuf dx = buf_rand((size_t)N * C, 1), dw = buf_rand(C, 1); // accumulated into
        ON_BOTH BACKEND->rmsnorm_forward(BACKEND, P(out), P(rstd), P(x), P(w), N, C, eps);
        snprintf(what, sizeof what, "rmsnorm_forward N%d C%d: out", N, C);
        check_buf(what, out, 1e-5);
        snprintf(what, sizeof what, "rmsnorm_forward N%d C%d: rstd", N, C);
        check_buf(what, rstd, 1e-5);
        // the backward reads the CPU's rstd on both backends (isolates the backward)
        float *r = download(CPU, rstd.cpu, N);
        GPU->mem_upload(GPU, rstd.gpu, r, (size_t)N * 4);
        free(r);
        float *dw0 = download(GPU, dw.gpu, C);
        ON_BOTH BACKEND->rmsnorm_backward(BACKEND, P(dx), P(dw), P(dout), P(x), P(w), P(rstd), N,
                                          C);
        snprintf(what, sizeof what, "rmsnorm_backward N%d C%d: dinp", N, C);
        check_buf(what, dx, 1e-5);
        snprintf(what, sizeof what, "rmsnorm_backward N%d C%d: dweight", N, C);
        check_buf(what, dw, 1e-5);
        float *dw1 = download(GPU, dw.gpu, C);
        GPU->mem_upload(GPU, dw.gpu, dw0, (size_t)C * 4);
        GPU->rmsnorm_backward(GPU, NULL, dw.gpu, dout.gpu, x.gpu, w.gpu, rstd.gpu, N, C);
        snprintf(what, sizeof what, "rmsnorm_backward N%d C%d twice (no dinp): dweight", N, C);
        check_same_bits(what, dw.gpu, dw1, C);
        // no rstd output
        ON_BOTH BACKEND->rmsnorm_forward(BACKEND, P(out), NULL, P(dout), P(w), N, C, eps);
        snprintf(what, sizeof what, "rmsnorm_forward N%d C%d, rstd NULL", N, C);
        check_buf(what, out, 1e-5);
        free(dw0), free(dw1);
        buf_free(&x), buf_free(&w), buf_free(&out), buf_free(&rstd), buf_free(&dout);
        buf_free(&dx), buf_free(&dw);
    }
}

static void test_rope(void) {
    // NH, NKV, hd, theta; rows of fused q|k|v (the v part must stay untouched)
    struct {
        int NH, NKV, hd;
        float theta;
    } cases[] = {{4, 2, 4, 10000.0f},
                 {6, 2, 16, 1e6f},
                 {8, 1, 64, 10000.0f},
                 {2, 2, 128, 1e6f},
                 {3, 1, 10, 500.0f}};
    char what[96];
    for (int s = 0; s < 5; s++) {
        int NH = cases[s].NH, NKV = cases[s].NKV, hd = cases[s].hd, N = 37;
        int QKV = (NH + 2 * NKV) * hd;
        int32_t pos[37];
        for (int n = 0; n < N; n++) pos[n] = n < 5 ? n : (int32_t)rl_rng_below(&RNG, 33000);
        ibuf p = ibuf_from(pos, N);
        dbuf x = buf_rand((size_t)N * QKV, 1.5f);
        ON_BOTH BACKEND->rope_forward(BACKEND, P(x), P(p), N, NH + NKV, hd, QKV, cases[s].theta);
        snprintf(what, sizeof what, "rope_forward NH%d NKV%d hd%d theta %g", NH, NKV, hd,
                 (double)cases[s].theta);
        check_buf(what, x, 1e-5);
        dbuf dx = buf_rand((size_t)N * QKV, 1.0f);
        ON_BOTH BACKEND->rope_backward(BACKEND, P(dx), P(p), N, NH + NKV, hd, QKV, cases[s].theta);
        snprintf(what, sizeof what, "rope_backward NH%d NKV%d hd%d", NH, NKV, hd);
        check_buf(what, dx, 1e-5);
        ibuf_free(&p);
        buf_free(&x), buf_free(&dx);
    }
}

static void test_swiglu_residual(void) {
    int cases[][2] = {{1, 5}, {37, 77}, {256, 1408}};
    char what[96];
    for (int s = 0; s < 3; s++) {
        int N = cases[s][0], FF = cases[s][1];
        dbuf gu = buf_rand((size_t)N * 2 * FF, 4), out = buf_rand((size_t)N * FF, 1);
        // a few saturated gates
        float big[4] = {-95.0f, 95.0f, -30.0f, 30.0f};
        ON_BOTH BACKEND->mem_upload(BACKEND, P(gu), big, sizeof big);
        dbuf dout = buf_rand((size_t)N * FF, 1), dgu = buf_rand((size_t)N * 2 * FF, 1);
        ON_BOTH BACKEND->swiglu_forward(BACKEND, P(out), P(gu), N, FF);
        snprintf(what, sizeof what, "swiglu_forward N%d FF%d", N, FF);
        check_buf(what, out, 1e-5);
        ON_BOTH BACKEND->swiglu_backward(BACKEND, P(dgu), P(dout), P(gu), N, FF);
        snprintf(what, sizeof what, "swiglu_backward N%d FF%d", N, FF);
        check_buf(what, dgu, 1e-5);
        buf_free(&gu), buf_free(&out), buf_free(&dout), buf_free(&dgu);
    }
    size_t n = 100003;
    dbuf a = buf_rand(n, 1), b = buf_rand(n, 3), o = buf_rand(n, 1);
    ON_BOTH BACKEND->residual_forward(BACKEND, P(o), P(a), P(b), n);
    check_buf("residual_forward n 100003", o, -1);
    ON_BOTH BACKEND->residual_forward(BACKEND, P(a), P(a), P(b), n); // out aliases a
    check_buf("residual_forward in place", a, -1);
    buf_free(&a), buf_free(&b), buf_free(&o);
}

static void test_gather_rows(void) {
    int n = 6, C = 129, R = 9;
    int32_t rows[6] = {5, 0, 5, 8, 2, 3};
    dbuf x = buf_rand((size_t)R * C, 1), out = buf_rand((size_t)n * C, 1);
    ibuf r = ibuf_from(rows, n);
    ON_BOTH BACKEND->gather_rows(BACKEND, P(out), P(x), P(r), n, C);
    check_buf("gather_rows", out, -1);
    ibuf_free(&r);
    buf_free(&x), buf_free(&out);
}

// ------------------------------------------------------------------------------------------------
// Attention

static void attention_case(int B, int T, int NH, int NKV, int hd, int window,
                           const int32_t *lengths) {
    int QKV = (NH + 2 * NKV) * hd;
    size_t nq = (size_t)B * T * QKV, no = (size_t)B * T * NH * hd, nl = (size_t)B * T * NH;
    char tag[80], what[128];
    snprintf(tag, sizeof tag, "B%d T%d NH%d NKV%d hd%d w%d%s", B, T, NH, NKV, hd, window,
             lengths ? " padded" : "");
    dbuf qkv = buf_rand(nq, 1.5f), out = buf_rand(no, 1), lse = buf_rand(nl, 1);
    ibuf len = lengths ? ibuf_from(lengths, B) : (ibuf){NULL, NULL, 0};
    ON_BOTH BACKEND->attention_forward(BACKEND, P(out), P(lse), P(qkv), P(len), B, T, NH, NKV, hd,
                                       window);
    snprintf(what, sizeof what, "attention_forward %s: out", tag);
    check_buf(what, out, 2e-5);
    snprintf(what, sizeof what, "attention_forward %s: lse", tag);
    check_buf(what, lse, 2e-5);
    // the backward gets the CPU forward's out and lse on both backends (isolates the backward)
    float *h = download(CPU, out.cpu, no);
    GPU->mem_upload(GPU, out.gpu, h, no * 4);
    free(h);
    h = download(CPU, lse.cpu, nl);
    GPU->mem_upload(GPU, lse.gpu, h, nl * 4);
    free(h);
    dbuf dout = buf_rand(no, 1), dqkv = buf_rand(nq, 7); // dqkv must be overwritten
    ON_BOTH BACKEND->attention_backward(BACKEND, P(dqkv), P(dout), P(qkv), P(out), P(lse), P(len),
                                        B, T, NH, NKV, hd, window);
    snprintf(what, sizeof what, "attention_backward %s: dqkv", tag);
    check_buf(what, dqkv, 3e-5);
    float *once = download(GPU, dqkv.gpu, nq);
    GPU->fill(GPU, dqkv.gpu, -3.0f, nq);
    GPU->attention_backward(GPU, dqkv.gpu, dout.gpu, qkv.gpu, out.gpu, lse.gpu, len.gpu, B, T, NH,
                            NKV, hd, window);
    snprintf(what, sizeof what, "attention_backward %s: twice", tag);
    check_same_bits(what, dqkv.gpu, once, nq);
    free(once);
    if (lengths) ibuf_free(&len);
    buf_free(&qkv), buf_free(&out), buf_free(&lse), buf_free(&dout), buf_free(&dqkv);
}

static void test_attention(void) {
    int32_t l2[2] = {9, 5}, l3[3] = {37, 20, 1}, l70[2] = {70, 33}, l45[2] = {45, 12};
    int32_t l0[2] = {33, 0};
    attention_case(2, 9, 4, 2, 8, 0, l2);        // GQA 2, padding
    attention_case(3, 37, 6, 2, 16, 0, l3);      // GQA 3, a length-1 sequence
    attention_case(2, 70, 8, 1, 64, 0, l70);     // MQA, more than one 64-key block
    attention_case(2, 45, 6, 3, 32, 7, l45);     // sliding window 7
    attention_case(1, 100, 4, 4, 128, 65, NULL); // MHA, hd 128, window across key tiles
    attention_case(1, 40, 2, 1, 256, 0, NULL);   // the largest head dim
    attention_case(2, 33, 12, 2, 6, 1, l0);      // window 1, an empty sequence, hd 6
    attention_case(1, 130, 14, 2, 64, 0, NULL);  // Qwen2.5-0.5B-like heads
    attention_case(2, 17, 9, 1, 10, 3, NULL);    // rep 9, hd 10
}

// kv_store from two interleaved sequences (slots 2 and 0), in two calls, rows shuffled; the
// caches must hold the same bits on both backends (same layout); then cached attention of
// every stored row.
static void test_attention_cached(void) {
    int T = 70, S = 3, cap = 2 * RL_KV_BLOCK;
    int heads[5][3] = {{6, 2, 8}, {4, 1, 32}, {3, 3, 16}, {8, 2, 128}, {14, 2, 64}};
    int windows[5] = {0, 5, 9, 0, 33};
    char what[128];
    for (int c = 0; c < 5; c++) {
        int NH = heads[c][0], NKV = heads[c][1], hd = heads[c][2], window = windows[c];
        int QKV = (NH + 2 * NKV) * hd, n = 2 * T;
        int32_t slot[140], pos[140], perm[140];
        for (int i = 0; i < n; i++) perm[i] = i;
        for (int i = n - 1; i > 0; i--) { // shuffle the store order
            int j = (int)rl_rng_below(&RNG, (uint32_t)i + 1), t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        for (int i = 0; i < n; i++) slot[i] = perm[i] < T ? 2 : 0, pos[i] = perm[i] % T;
        size_t kvn = (size_t)S * cap * NKV * hd;
        dbuf qkv = buf_rand((size_t)n * QKV, 1.5f);
        float *z = rl_calloc(kvn, 4);
        dbuf kc = buf_from(z, kvn), vc = buf_from(z, kvn);
        free(z);
        ibuf sl = ibuf_from(slot, n), ps = ibuf_from(pos, n);
        int first = 51;
        ON_BOTH {
            BACKEND->kv_store(BACKEND, P(kc), P(vc), P(qkv), P(sl), P(ps), first, NH, NKV, hd, cap);
            BACKEND->kv_store(BACKEND, P(kc), P(vc), P(qkv) + (size_t)first * QKV, P(sl) + first,
                              P(ps) + first, n - first, NH, NKV, hd, cap);
        }
        snprintf(what, sizeof what, "kv_store NH%d NKV%d hd%d: keys", NH, NKV, hd);
        check_buf(what, kc, -1);
        snprintf(what, sizeof what, "kv_store NH%d NKV%d hd%d: values", NH, NKV, hd);
        check_buf(what, vc, -1);
        dbuf out = buf_rand((size_t)n * NH * hd, 1);
        ON_BOTH BACKEND->attention_cached_forward(BACKEND, P(out), P(qkv), P(kc), P(vc), P(sl),
                                                  P(ps), n, NH, NKV, hd, cap, window);
        snprintf(what, sizeof what, "attention_cached_forward NH%d NKV%d hd%d w%d", NH, NKV, hd,
                 window);
        check_buf(what, out, 2e-5);
        ibuf_free(&sl), ibuf_free(&ps);
        buf_free(&qkv), buf_free(&kc), buf_free(&vc), buf_free(&out);
    }
}

// ------------------------------------------------------------------------------------------------
// Log-probabilities

// Double-precision reference of the log-prob ops on rows x[n, V] (kernels/kernels.h formulas),
// rounded to float: logp[n], ent[n], dx[n, V] (the backward with dent, which may be NULL) and
// lsm[n, V] (log-softmax).
static void ref_logprob(const float *x, const int32_t *t, const float *dlp, const float *dent,
                        int n, int V, double it, float *logp, float *ent, float *dx, float *lsm) {
    for (int i = 0; i < n; i++) {
        const float *r = x + (size_t)i * V;
        double mx = -INFINITY, S = 0.0, Sz = 0.0;
        for (int k = 0; k < V; k++) mx = fmax(mx, r[k] * it);
        for (int k = 0; k < V; k++) {
            double e = exp(r[k] * it - mx);
            S += e, Sz += e * (r[k] * it - mx);
        }
        double lse = mx + log(S), H = log(S) - Sz / S;
        logp[i] = t[i] >= 0 ? (float)(r[t[i]] * it - lse) : 0.0f;
        ent[i] = (float)H;
        double dl = t[i] >= 0 ? dlp[i] : 0.0, de = dent ? dent[i] : 0.0;
        for (int k = 0; k < V; k++) {
            double lpk = r[k] * it - lse, p = exp(lpk);
            dx[(size_t)i * V + k] = (float)(it * (dl * ((k == t[i]) - p) - de * p * (lpk + H)));
            lsm[(size_t)i * V + k] = (float)lpk;
        }
    }
}

// The GPU result against a double reference want[n] (tight: the GPU sums in a tree).
static void check_gpu_ref(const char *what, const float *gpu_dev, const float *want, size_t n,
                          double tol, double floor) {
    float *g = download(GPU, gpu_dev, n);
    char name[128];
    snprintf(name, sizeof name, "%s vs double", what);
    compare_floor(name, g, want, n, tol, floor);
    free(g);
}

// CPU-vs-GPU tolerances grow with V because the CPU sums a row's V terms in float (16 SIMD
// lanes, or one running sum in builds without vectorisation: ~1e-4 relative error at V = 152k),
// and the entropy gradient p (log p + H) cancels where log p ~ -H, amplifying that error. The
// GPU (tree sums) is therefore also checked against double precision, tightly.
static void test_logprob(void) {
    int cases[][2] = {{1, 5}, {37, 1000}, {8, 5003}, {3, 151936}};
    float temps[] = {1.0f, 0.7f, 1.3f, 1.0f};
    char what[96];
    for (int s = 0; s < 4; s++) {
        int n = cases[s][0], V = cases[s][1];
        size_t nv = (size_t)n * V;
        float it = 1.0f / temps[s];
        double ftol = V > 10000 ? 1e-4 : 1e-5, btol = V > 10000 ? 2e-3 : 5e-5;
        float *h = rl_malloc(nv * 4);
        rand_fill(h, nv, 5);
        h[(size_t)(n - 1) * V + V / 2] = 40.0f; // one very peaked row (entropy ~ 0)
        dbuf x = buf_from(h, nv);
        int32_t *tg = rl_malloc((size_t)n * 4);
        for (int i = 0; i < n; i++) tg[i] = i % 5 == 2 ? -1 : (int32_t)rl_rng_below(&RNG, V);
        if (n > 1) tg[n - 1] = V / 2;
        ibuf t = ibuf_from(tg, n);
        dbuf lp = buf_rand(n, 1), ent = buf_rand(n, 1), dlp = buf_rand(n, 1), dent = buf_rand(n, 1);
        float *hdlp = download(CPU, dlp.cpu, n), *hdent = download(CPU, dent.cpu, n);
        float *rlp = rl_malloc((size_t)n * 4), *rent = rl_malloc((size_t)n * 4);
        float *rdx = rl_malloc(nv * 4), *rlsm = rl_malloc(nv * 4);
        ref_logprob(h, tg, hdlp, hdent, n, V, it, rlp, rent, rdx, rlsm);
        ON_BOTH BACKEND->logprob_forward(BACKEND, P(lp), P(ent), P(x), P(t), n, V, it);
        snprintf(what, sizeof what, "logprob_forward n%d V%d T%g: logp", n, V, (double)temps[s]);
        check_buf(what, lp, ftol);
        check_gpu_ref(what, lp.gpu, rlp, n, 1e-5, 0.0);
        snprintf(what, sizeof what, "logprob_forward n%d V%d: entropy", n, V);
        check_buf_floor(what, ent, ftol, 1.0); // entropies in nats: the peaked row has ~1e-14
        check_gpu_ref(what, ent.gpu, rent, n, 1e-5, 1.0);
        ON_BOTH BACKEND->logprob_forward(BACKEND, P(lp), NULL, P(x), P(t), n, V, it);
        snprintf(what, sizeof what, "logprob_forward n%d V%d: logp, entropy NULL", n, V);
        check_buf(what, lp, ftol);
        // The gradient of a row with p_target = 1 - 1e-13 is 1 - p, pure float32 rounding on
        // both backends (~1e-7 where the other entries are ~1e-15): the backward checks use a
        // moderately peaked row instead.
        h[(size_t)(n - 1) * V + V / 2] = 8.0f;
        ON_BOTH BACKEND->mem_upload(BACKEND, P(x), h, nv * 4);
        dbuf dx = buf_rand(nv, 1);
        for (int with_ent = 0; with_ent < 2; with_ent++) {
            dbuf de = with_ent ? dent : NONE;
            ON_BOTH BACKEND->logprob_backward(BACKEND, P(dx), P(x), P(t), P(dlp), P(de), n, V, it);
            snprintf(what, sizeof what, "logprob_backward n%d V%d dentropy %d", n, V, with_ent);
            check_buf(what, dx, btol);
            if (with_ent) {
                ref_logprob(h, tg, hdlp, hdent, n, V, it, rlp, rent, rdx, rlsm);
                check_gpu_ref(what, dx.gpu, rdx, nv, 2e-5, 0.0);
            }
        }
        ON_BOTH BACKEND->logsoftmax_forward(BACKEND, P(dx), P(x), n, V, it);
        snprintf(what, sizeof what, "logsoftmax_forward n%d V%d", n, V);
        check_buf(what, dx, ftol);
        check_gpu_ref(what, dx.gpu, rlsm, nv, 1e-5, 0.0);
        // in place: the gradient over the logits, then the log-softmax over a fresh copy
        ON_BOTH BACKEND->logprob_backward(BACKEND, P(x), P(x), P(t), P(dlp), P(dent), n, V, it);
        snprintf(what, sizeof what, "logprob_backward n%d V%d in place", n, V);
        check_buf(what, x, btol);
        check_gpu_ref(what, x.gpu, rdx, nv, 2e-5, 0.0);
        ON_BOTH BACKEND->mem_upload(BACKEND, P(x), h, nv * 4);
        ON_BOTH BACKEND->logsoftmax_forward(BACKEND, P(x), P(x), n, V, it);
        snprintf(what, sizeof what, "logsoftmax_forward n%d V%d in place", n, V);
        check_buf(what, x, ftol);
        check_gpu_ref(what, x.gpu, rlsm, nv, 1e-5, 0.0);
        free(h), free(tg), free(hdlp), free(hdent), free(rlp), free(rent), free(rdx), free(rlsm);
        ibuf_free(&t);
        buf_free(&x), buf_free(&lp), buf_free(&ent), buf_free(&dlp), buf_free(&dent);
        buf_free(&dx);
    }
}

// ------------------------------------------------------------------------------------------------
// Optimizer and reductions

static void test_adamw(void) {
    size_t n = 100003;
    dbuf p = buf_rand(n, 1), g = buf_rand(n, 0.1f), m = buf_rand(n, 0.01f), v = buf_rand(n, 1);
    // v >= 0 as Adam keeps it
    float *hv = download(CPU, v.cpu, n);
    for (size_t i = 0; i < n; i++) hv[i] = hv[i] * hv[i] * 1e-3f;
    ON_BOTH BACKEND->mem_upload(BACKEND, P(v), hv, n * 4);
    free(hv);
    int steps[] = {1, 2, 10};
    char what[96];
    for (int s = 0; s < 3; s++) {
        float wd = s == 1 ? 0.0f : 0.1f;
        ON_BOTH BACKEND->adamw_update(BACKEND, P(p), P(g), P(m), P(v), n, 1e-3f, 0.9f, 0.95f, 1e-8f,
                                      wd, 0.5f, steps[s]);
        snprintf(what, sizeof what, "adamw_update step %d wd %g: param", steps[s], (double)wd);
        check_buf(what, p, 1e-6);
        snprintf(what, sizeof what, "adamw_update step %d: m", steps[s]);
        check_buf(what, m, 1e-6);
        snprintf(what, sizeof what, "adamw_update step %d: v", steps[s]);
        check_buf(what, v, 1e-6);
    }
    buf_free(&p), buf_free(&g), buf_free(&m), buf_free(&v);
}

static void test_reductions(void) {
    size_t sizes[] = {1, 255, 256, 257, 100003, ((size_t)4 << 20) + 3};
    for (int s = 0; s < 6; s++) {
        size_t n = sizes[s];
        dbuf x = buf_rand(n, 2);
        double c = CPU->sumsq(CPU, x.cpu, n), g1 = GPU->sumsq(GPU, x.gpu, n);
        double g2 = GPU->sumsq(GPU, x.gpu, n);
        fprintf(stderr, "  sumsq n %-10zu cpu %.17g gpu %.17g\n", n, c, g1);
        CHECK(fabs(g1 - c) <= 1e-12 * c, "sumsq n %zu: gpu %.17g cpu %.17g", n, g1, c);
        CHECK(memcmp(&g1, &g2, sizeof g1) == 0, "sumsq n %zu twice: %.17g then %.17g", n, g1, g2);
        char what[64];
        ON_BOTH BACKEND->scale(BACKEND, P(x), -0.37f, n);
        snprintf(what, sizeof what, "scale n %zu", n);
        check_buf(what, x, -1);
        ON_BOTH BACKEND->fill(BACKEND, P(x) + n / 3, 2.5f, n - n / 3);
        snprintf(what, sizeof what, "fill n %zu", n - n / 3);
        check_buf(what, x, -1);
        buf_free(&x);
    }
    CHECK(GPU->sumsq(GPU, NULL, 0) == 0.0, "sumsq of nothing");
}

#ifdef RLPIPE_HAVE_CUDA_BACKEND
// TF32 tensor-op math (off by default) changes products by ~1e-3 at most.
static void test_tf32_option(void) {
    rl_err err;
    const rl_backend *tf = rl_backend_cuda_open(0, 1, RL_F32, &err);
    CHECK(tf != NULL, "tf32 backend: %s", err.msg);
    const rl_backend *bad = rl_backend_cuda_open(1 << 20, 0, RL_F32, &err);
    CHECK(bad == NULL && err.kind == RL_EINPUT, "device index out of range rejected: %s", err.msg);
    if (!tf) return;
    int M = 96, N = 80, K = 512;
    float *a = rl_malloc((size_t)M * K * 4), *b = rl_malloc((size_t)K * N * 4);
    rand_fill(a, (size_t)M * K, 1), rand_fill(b, (size_t)K * N, 1);
    float *c = rl_calloc((size_t)M * N, 4);
    CPU->gemm(CPU, c, RL_F32, a, b, M, N, K, 0, 0, 1.0f, 0.0f);
    float *da = tf->mem_alloc(tf, (size_t)M * K * 4), *db = tf->mem_alloc(tf, (size_t)K * N * 4);
    float *dc = tf->mem_alloc(tf, (size_t)M * N * 4);
    tf->mem_upload(tf, da, a, (size_t)M * K * 4), tf->mem_upload(tf, db, b, (size_t)K * N * 4);
    tf->gemm(tf, dc, RL_F32, da, db, M, N, K, 0, 0, 1.0f, 0.0f);
    float *g = download(tf, dc, (size_t)M * N);
    compare("gemm 96x80x512 with TF32 (loose)", g, c, (size_t)M * N, 5e-3);
    tf->mem_free(tf, da), tf->mem_free(tf, db), tf->mem_free(tf, dc);
    rl_backend_release(tf);
    free(a), free(b), free(c), free(g);
}
#endif

// ------------------------------------------------------------------------------------------------
// The whole model

// Model-level tolerances: float32 rounding of two different summation orders, amplified through
// the layers (the backward most), on tiny models initialised at std 0.05 (sharper than HF's
// 0.02). For scale, test_model allows the CPU 2e-5 on logits and 2e-3 on gradients against a
// double-precision reference.
#define MODEL_TOL 2e-5
#define GRAD_TOL  2e-4

typedef struct twin {
    rl_model *c, *g; // the same model on the CPU and on the GPU
} twin;

static twin twin_create(const rl_model_config *cfg, uint64_t seed) {
    twin t;
    rl_err err;
    int rc = rl_model_create(&t.c, cfg, CPU, &err);
    CHECK(rc == 0, "rl_model_create cpu: %s", err.msg);
    if (rc) exit(1);
    rc = rl_model_create(&t.g, cfg, GPU, &err);
    CHECK(rc == 0, "rl_model_create cuda: %s", err.msg);
    if (rc) exit(1);
    rl_model_init_random(t.c, seed, 0.05f);
    rl_model_init_random(t.g, seed, 0.05f);
    // biases and norm weights away from their init values, so that they matter
    for (int i = 0; i < rl_model_num_tensors(t.c); i++) {
        const rl_model_tensor *te = &t.c->tensors[i];
        if (te->init == 0) continue;
        float *h = rl_malloc(te->numel * 4);
        for (size_t k = 0; k < te->numel; k++)
            h[k] = (te->init == 2 ? 1.0f : 0.0f) + 0.3f * (2.0f * rl_rng_float(&RNG) - 1.0f);
        rl_model_tensor_write(t.c, i, h);
        rl_model_tensor_write(t.g, i, h);
        free(h);
    }
    float *pc = download(CPU, t.c->params_block, t.c->n_params);
    float *pg = download(GPU, t.g->params_block, t.g->n_params);
    compare("model parameters after init", pg, pc, t.c->n_params, -1);
    free(pc), free(pg);
    return t;
}

static void twin_free(twin *t) {
    rl_model_free(t->c);
    rl_model_free(t->g);
}

// Per-tensor comparison of the two gradient blocks. Scale floor: a tenth of the mean |gradient|
// over the whole block, because some tensors' gradients are mathematically zero and only
// rounding noise on both backends (k_proj.bias: softmax ignores a constant added to every score
// of a query), which no relative tolerance can compare.
static void compare_grads(const char *what, twin *t, double tol) {
    size_t n = t->c->n_params;
    float *gc = download(CPU, t->c->grads_block, n), *gg = download(GPU, t->g->grads_block, n);
    double mean = 0.0;
    for (size_t i = 0; i < n; i++) mean += fabs(gc[i]);
    mean /= (double)n;
    char name[160];
    for (int i = 0; i < rl_model_num_tensors(t->c); i++) {
        const rl_model_tensor *te = &t->c->tensors[i];
        snprintf(name, sizeof name, "%s: d %s", what, te->name);
        compare_floor(name, gg + te->offset, gc + te->offset, te->numel, tol, 0.1 * mean);
    }
    free(gc), free(gg);
}

static void run_batch_both(twin *t, const int32_t *tok, const int32_t *len, int B, int T,
                           const int32_t *targets, float temp, float *lp[2], float *ent[2]) {
    rl_err err;
    rl_model *ms[2] = {t->c, t->g};
    for (int k = 0; k < 2; k++) {
        int rc = rl_model_forward(ms[k], tok, len, B, T, &err);
        CHECK(rc == 0, "forward: %s", err.msg);
        rc = rl_model_token_logprobs(ms[k], targets, temp, lp[k], ent[k], &err);
        CHECK(rc == 0, "token_logprobs: %s", err.msg);
    }
}

// forward logits, log-probs, entropies, gradients of sum dlogp*logp + dent*entropy, grad norm,
// AdamW on the same gradients.
static void model_train_case(const char *what, const rl_model_config *cfg, int B, int T,
                             const int32_t *lengths, float temp, size_t logits_budget) {
    twin t = twin_create(cfg, 11);
    if (logits_budget) t.c->logits_budget = t.g->logits_budget = logits_budget;
    int V = cfg->vocab_size;
    size_t N = (size_t)B * T;
    int32_t *tok = rl_malloc(N * 4), *tg = rl_malloc(N * 4);
    float *dlp = rl_malloc(N * 4), *dent = rl_malloc(N * 4);
    for (size_t r = 0; r < N; r++) {
        tok[r] = (int32_t)rl_rng_below(&RNG, V);
        dlp[r] = 2.0f * rl_rng_float(&RNG) - 1.0f;
        dent[r] = 2.0f * rl_rng_float(&RNG) - 1.0f;
    }
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++)
            tg[(size_t)b * T + i] = i + 1 < lengths[b] ? tok[(size_t)b * T + i + 1] : -1;
    float *lp[2] = {rl_malloc(N * 4), rl_malloc(N * 4)},
          *ent[2] = {rl_malloc(N * 4), rl_malloc(N * 4)};
    char name[160];
    rl_err err;
    // logits first (rl_model_logits), then log-probs
    float *lg[2] = {rl_malloc(N * V * 4), rl_malloc(N * V * 4)};
    rl_model *ms[2] = {t.c, t.g};
    for (int k = 0; k < 2; k++) {
        CHECK(rl_model_forward(ms[k], tok, lengths, B, T, &err) == 0, "forward: %s", err.msg);
        CHECK(rl_model_logits(ms[k], lg[k], &err) == 0, "logits: %s", err.msg);
    }
    snprintf(name, sizeof name, "%s: logits [%d,%d,%d]", what, B, T, V);
    compare(name, lg[1], lg[0], N * V, MODEL_TOL);
    // distillation's pieces: the scoring forward (no activations) and the backward from a full
    // gradient of the logits
    float *sc = rl_malloc(N * V * 4), *dz = rl_malloc(N * V * 4);
    CHECK(rl_model_score_logits(t.g, tok, lengths, B, T, sc, &err) == 0, "score: %s", err.msg);
    snprintf(name, sizeof name, "%s: score_logits", what);
    compare(name, sc, lg[0], N * V, MODEL_TOL);
    for (size_t i = 0; i < N * (size_t)V; i++) dz[i] = (2.0f * rl_rng_float(&RNG) - 1.0f) / N;
    for (int k = 0; k < 2; k++) {
        CHECK(rl_model_forward(ms[k], tok, lengths, B, T, &err) == 0, "forward: %s", err.msg);
        rl_model_zero_grad(ms[k]);
        CHECK(rl_model_backward_logits(ms[k], dz, &err) == 0, "backward_logits: %s", err.msg);
    }
    snprintf(name, sizeof name, "%s (backward_logits)", what);
    compare_grads(name, &t, GRAD_TOL);
    free(sc), free(dz);
    run_batch_both(&t, tok, lengths, B, T, tg, temp, lp, ent);
    snprintf(name, sizeof name, "%s: token logprobs", what);
    compare(name, lp[1], lp[0], N, MODEL_TOL);
    snprintf(name, sizeof name, "%s: entropies", what);
    compare(name, ent[1], ent[0], N, MODEL_TOL);
    // the scoring-only log-prob forward (the reference model, rlpipe logprobs); the backward
    // below then also checks that it left the last forward's state alone
    float *slp = rl_malloc(N * 4), *sent = rl_malloc(N * 4);
    CHECK(rl_model_score_logprobs(t.g, tok, lengths, B, T, tg, temp, slp, sent, &err) == 0,
          "score_logprobs: %s", err.msg);
    snprintf(name, sizeof name, "%s: score_logprobs", what);
    compare(name, slp, lp[0], N, MODEL_TOL);
    snprintf(name, sizeof name, "%s: score_logprobs entropies", what);
    compare(name, sent, ent[0], N, MODEL_TOL);
    free(slp), free(sent);
    for (int k = 0; k < 2; k++) {
        rl_model_zero_grad(ms[k]);
        CHECK(rl_model_backward(ms[k], dlp, dent, &err) == 0, "backward: %s", err.msg);
    }
    compare_grads(what, &t, GRAD_TOL);
    double nc = rl_model_grad_norm(t.c), ng = rl_model_grad_norm(t.g);
    fprintf(stderr, "  %s: grad norm cpu %.9g gpu %.9g\n", what, nc, ng);
    CHECK(fabs(ng - nc) <= 1e-5 * nc, "%s: grad norm gpu %.9g cpu %.9g", what, ng, nc);
    // AdamW over the flat blocks, the GPU given the CPU's gradients (the same bits)
    float *gc = download(CPU, t.c->grads_block, t.c->n_params);
    GPU->mem_upload(GPU, t.g->grads_block, gc, t.c->n_params * 4);
    free(gc);
    int ns;
    const rl_param_span *spans = rl_model_decay_spans(t.c, &ns);
    rl_adamw *opt[2];
    rl_adamw_hparams hp = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f};
    for (int k = 0; k < 2; k++) {
        size_t np;
        float *params = rl_model_params(ms[k], &np);
        CHECK(rl_adamw_create(&opt[k], ms[k]->be, np, spans, ns, &err) == 0, "adamw: %s", err.msg);
        for (int step = 0; step < 2; step++)
            rl_adamw_step(opt[k], params, rl_model_grads(ms[k], NULL), &hp, 0.7f);
    }
    float *pc = download(CPU, t.c->params_block, t.c->n_params);
    float *pg = download(GPU, t.g->params_block, t.g->n_params);
    snprintf(name, sizeof name, "%s: parameters after 2 AdamW steps", what);
    compare(name, pg, pc, t.c->n_params, 1e-6);
    float *mc = rl_malloc(t.c->n_params * 4), *vc = rl_malloc(t.c->n_params * 4);
    float *mg = rl_malloc(t.c->n_params * 4), *vg = rl_malloc(t.c->n_params * 4);
    rl_adamw_state_download(opt[0], mc, vc);
    rl_adamw_state_download(opt[1], mg, vg);
    snprintf(name, sizeof name, "%s: Adam m after 2 steps", what);
    compare(name, mg, mc, t.c->n_params, 1e-6);
    snprintf(name, sizeof name, "%s: Adam v after 2 steps", what);
    compare(name, vg, vc, t.c->n_params, 1e-6);
    // a forward after the update still agrees
    run_batch_both(&t, tok, lengths, B, T, tg, temp, lp, ent);
    snprintf(name, sizeof name, "%s: token logprobs after the update", what);
    compare(name, lp[1], lp[0], N, MODEL_TOL);
    for (int k = 0; k < 2; k++) rl_adamw_free(opt[k]), free(lp[k]), free(ent[k]), free(lg[k]);
    free(pc), free(pg), free(mc), free(vc), free(mg), free(vg);
    free(tok), free(tg), free(dlp), free(dent);
    twin_free(&t);
}

// Prefill three prompts (one longer than a KV block), decode steps with the CPU's greedy tokens
// fed to both, a slot copy, more steps.
static void model_decode_case(const char *what, const rl_model_config *cfg, int prefill_rows) {
    twin t = twin_create(cfg, 12);
    if (prefill_rows) t.c->prefill_rows = t.g->prefill_rows = prefill_rows;
    int V = cfg->vocab_size, n = 3, slots[3] = {2, 0, 3}, counts[3] = {70, 5, 1};
    rl_err err;
    rl_kv_cache *cache[2];
    rl_model *ms[2] = {t.c, t.g};
    for (int k = 0; k < 2; k++) {
        cache[k] = rl_kv_cache_create(ms[k], 4, 150, &err);
        CHECK(cache[k] != NULL, "kv cache: %s", err.msg);
        if (!cache[k]) exit(1);
    }
    int32_t *prompts[3];
    int32_t n_tok[3];
    for (int i = 0; i < n; i++) {
        n_tok[i] = counts[i];
        prompts[i] = rl_malloc((size_t)counts[i] * 4);
        for (int j = 0; j < counts[i]; j++) prompts[i][j] = (int32_t)rl_rng_below(&RNG, V);
    }
    float *lg[2] = {rl_malloc((size_t)n * V * 4), rl_malloc((size_t)n * V * 4)};
    char name[160];
    for (int k = 0; k < 2; k++)
        CHECK(rl_model_prefill(ms[k], cache[k], n, slots, (const int32_t *const *)prompts, n_tok,
                               lg[k], &err) == 0,
              "prefill: %s", err.msg);
    snprintf(name, sizeof name, "%s: prefill logits", what);
    compare(name, lg[1], lg[0], (size_t)n * V, MODEL_TOL);
    int32_t next[3];
    for (int step = 0; step < 4; step++) {
        for (int i = 0; i < n; i++) next[i] = rl_argmax(lg[0] + (size_t)i * V, V);
        for (int k = 0; k < 2; k++)
            CHECK(rl_model_decode_step(ms[k], cache[k], n, slots, next, lg[k], &err) == 0,
                  "decode: %s", err.msg);
        snprintf(name, sizeof name, "%s: decode step %d logits", what, step);
        compare(name, lg[1], lg[0], (size_t)n * V, MODEL_TOL);
    }
    // slot 1 := slot 2 (75 tokens), then both continue with different tokens
    int s2[2] = {1, 2};
    int32_t tk[2] = {(int32_t)(V / 3), (int32_t)(V / 2)};
    for (int k = 0; k < 2; k++) {
        rl_kv_cache_copy_slot(cache[k], 1, 2);
        CHECK(rl_model_decode_step(ms[k], cache[k], 2, s2, tk, lg[k], &err) == 0, "decode: %s",
              err.msg);
    }
    snprintf(name, sizeof name, "%s: decode after a slot copy", what);
    compare(name, lg[1], lg[0], (size_t)2 * V, MODEL_TOL);
    for (int k = 0; k < 2; k++) rl_kv_cache_free(cache[k]), free(lg[k]);
    for (int i = 0; i < n; i++) free(prompts[i]);
    twin_free(&t);
}

// The shared tiny model, widened so the GPU kernels' tiles, warps and blocks are all exercised.
static rl_model_config tiny_config(void) {
    rl_model_config c = test_tiny_config();
    c.hidden_size = 64;
    c.head_dim = 16;
    c.intermediate_size = 96;
    c.vocab_size = 301;
    return c;
}

static void test_model_train(void) {
    int32_t l3[3] = {37, 20, 9}, l2[2] = {40, 40};
    rl_model_config c = tiny_config();
    model_train_case("GQA untied bias", &c, 3, 37, l3, 0.8f, 0);
    c = tiny_config();
    c.num_key_value_heads = 4;
    c.head_dim = 32;
    c.tie_word_embeddings = 1;
    c.attention_bias = 0;
    c.use_sliding_window = 1;
    c.sliding_window = 5;
    c.max_window_layers = 1;
    c.vocab_size = 257;
    c.rms_norm_eps = 1e-5;
    model_train_case("MHA tied no-bias window 5, lm_head in 16-row chunks", &c, 3, 37, l3, 1.0f,
                     (size_t)257 * 16);
    c = tiny_config();
    c.hidden_size = 96;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.head_dim = 128;
    c.vocab_size = 1000;
    c.rope_theta = 1e6;
    model_train_case("MQA hd 128", &c, 2, 40, l2, 1.2f, 0);
}

static void test_model_decode(void) {
    rl_model_config c = tiny_config();
    model_decode_case("decode GQA", &c, 0);
    c.use_sliding_window = 1;
    c.sliding_window = 7;
    c.max_window_layers = 1;
    c.tie_word_embeddings = 1;
    model_decode_case("decode window 7, tied, prefill in 32-row chunks", &c, 32);
}

int main(void) {
    rl_err err;
    CPU = rl_backend_cpu();
    GPU = rl_backend_get("cuda", &err);
#ifdef RLPIPE_HAVE_CUDA_BACKEND
    check_env_knobs();
#endif
#ifdef RLPIPE_CUDA_MODULE
    check_module_loader();
#endif
    if (!GPU) {
        check_unavailable(&err);
        if (test_summary() != 0) return 1; // the failure path itself is wrong
        fprintf(stderr, "skip: %s\n", err.msg);
        return 77;
    }
    RNG = rl_rng_stream(2024, RL_RNG_INIT, 7, 0);
    RUN(test_memory);
    RUN(test_gemm);
    RUN(test_matmul);
    RUN(test_embedding);
    RUN(test_rmsnorm);
    RUN(test_rope);
    RUN(test_swiglu_residual);
    RUN(test_gather_rows);
    RUN(test_attention);
    RUN(test_attention_cached);
    RUN(test_logprob);
    RUN(test_adamw);
    RUN(test_reductions);
#ifdef RLPIPE_HAVE_CUDA_BACKEND
    RUN(test_tf32_option);
#endif
    RUN(test_model_train);
    RUN(test_model_decode);
    rl_backend_release(GPU);
    return test_summary();
}
