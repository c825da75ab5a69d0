// test_cuda_flash: the CUDA backend's fused causal attention (kernels/cuda/flash_attention_cuda.cu,
// bf16 on tensor cores for head_dim 64 and 128) and its float32 path, against the CPU backend's
// attention (kernels/cpu/attention_cpu.c, the reference), forward (out, lse) and backward (dqkv).
//
// Shapes cover the contract: B >= 2 with right padding (an empty and a length-1 sequence), GQA
// 7:1, MQA and MHA, sliding windows narrower and wider than a tile, head_dim 64 and 128, T not a
// multiple of the 64-row tile; and head_dim 32, which bf16 runs on the general kernels. Inputs are random (never zero); the bf16 runs feed the CPU the very
// floats the GPU sees (inputs rounded to bf16 first).
//
// Tolerances, |gpu - ref| <= atol + rtol * |ref| element by element:
// - float32: rtol = 2e-5, atol = 2e-5 * mean|ref| (the backends sum in different orders; as
//   test_cuda).
// - bf16 (u = 2^-8, bf16's unit roundoff; eps = 2u = 2^-7): every output element is a sum of
//   products in which one factor is rounded to bf16 before the tensor-core product (P for out
//   and dV, dS for dQ and dK) and the result is rounded to bf16 once more. For out = sum_j p_j v_j
//   / l the first costs at most u * max|v| (the weights sum to 1), the second u * |out|. So
//   rtol = eps and atol = eps * max|ref| of the tensor (dq, dk, dv parts separately): twice the
//   worst case of the forward, and for the backward, whose sums cancel (dS sums to zero over a
//   row), a bound the random-sign rounding errors stay far inside (the log prints the margin).
//   A part whose reference is only float32 noise (window 1: a query sees only itself, dS = dP - D
//   = 0, so dq = dk = 0 up to the CPU's rounding) uses at least 2^-8 * max|ref| of all of dqkv.
//   lse is float32 throughout: atol = 1e-4, rtol = 1e-5.
// Padded positions must be exactly zero (out, lse, dqkv), every element of out, lse and dqkv must
// be written (they start as garbage), the forward without lse must give the same output, and the
// backward the same bits when run twice.
//
// Without a CUDA device (or without the CUDA backend) it exits 77 (skipped); the emulator
// (kernels/cuda/emu/check.sh) runs it on the CPU.
#define _POSIX_C_SOURCE 200809L
#include "kernels/backend.h"
#include "kernels/rng.h"
#include "test_util.h"

#include <stdint.h>

static const rl_backend *CPU, *GPU, *GPU16; // GPU16: the CUDA backend with bf16 activations
static rl_rng RNG;

// ------------------------------------------------------------------------------------------------
// Host helpers

static uint16_t to_bf16(float f) { // round to nearest even (finite inputs)
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// Random values in [-scale, -0.05*scale] U [0.05*scale, scale]: never zero.
static float *rand_floats(size_t n, float scale) {
    float *x = rl_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        float u = 0.05f + 0.95f * rl_rng_float(&RNG);
        x[i] = scale * (rl_rng_u32(&RNG) & 1 ? u : -u);
    }
    return x;
}

static void round_bf16(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = from_bf16(to_bf16(x[i]));
}

// x on backend be in its act type (float32 or bf16).
static void *upload(const rl_backend *be, const float *x, size_t n) {
    size_t es = rl_dtype_size(be->act);
    void *d = be->mem_alloc(be, (n ? n : 1) * es);
    if (be->act == RL_BF16) {
        uint16_t *h = rl_malloc((n ? n : 1) * 2);
        for (size_t i = 0; i < n; i++) h[i] = to_bf16(x[i]);
        be->mem_upload(be, d, h, n * 2);
        free(h);
    } else {
        be->mem_upload(be, d, x, n * 4);
    }
    return d;
}

// n elements of be's act type as floats (malloc'ed).
static float *download(const rl_backend *be, const void *d, size_t n) {
    float *x = rl_malloc((n ? n : 1) * 4);
    if (be->act == RL_BF16) {
        uint16_t *h = rl_malloc((n ? n : 1) * 2);
        be->mem_download(be, h, d, n * 2);
        for (size_t i = 0; i < n; i++) x[i] = from_bf16(h[i]);
        free(h);
    } else {
        be->mem_download(be, x, d, n * 4);
    }
    return x;
}

static float *download_f32(const rl_backend *be, const float *d, size_t n) {
    float *x = rl_malloc((n ? n : 1) * 4);
    be->mem_download(be, x, d, n * 4);
    return x;
}

// gpu vs ref over elements i where sel(i) (NULL: all) under |g - r| <= atol + rtol |r|; prints the
// worst ratio err / bound. Returns the ratio.
static double compare(const char *what, const float *g, const float *r, size_t n, double atol,
                      double rtol, int (*sel)(size_t, const void *), const void *arg) {
    double worst = 0.0, maxerr = 0.0;
    size_t at = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (sel && !sel(i, arg)) continue;
        double e = fabs((double)g[i] - (double)r[i]), bound = atol + rtol * fabs((double)r[i]);
        double ratio = isnan(g[i]) ? INFINITY : (bound > 0 ? e / bound : (e > 0 ? INFINITY : 0));
        if (ratio > worst) worst = ratio, at = i, maxerr = e;
        bad += ratio > 1.0;
    }
    fprintf(stderr, "  %-58s max err %.3g, worst err/bound %.3f\n", what, maxerr, worst);
    CHECK(bad == 0, "%s: %zu elements out of tolerance, worst at %zu: gpu %.8g ref %.8g", what, bad,
          at, (double)g[at], (double)r[at]);
    return worst;
}

// ------------------------------------------------------------------------------------------------
// One case

typedef struct att_case {
    int B, T, NH, NKV, hd, window;
    const int32_t *lengths; // NULL: all T
    const char *what;
} att_case;

// Which part of a dqkv row element i is in: 0 q, 1 k, 2 v (for selecting per-part tolerances).
typedef struct part_sel {
    int QKV, NH, NKV, hd, part;
} part_sel;

static int in_part(size_t i, const void *arg) {
    const part_sel *p = arg;
    int c = (int)(i % (size_t)p->QKV);
    int part = c < p->NH * p->hd ? 0 : c < (p->NH + p->NKV) * p->hd ? 1 : 2;
    return part == p->part;
}

static double max_abs_sel(const float *x, size_t n, int (*sel)(size_t, const void *),
                          const void *arg) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if ((!sel || sel(i, arg)) && fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}

static double mean_abs(const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += fabs(x[i]);
    return n ? s / (double)n : 0.0;
}

static int pos_len(const att_case *c, int b) {
    return c->lengths ? c->lengths[b] : c->T;
}

// Elements at padded positions of a [B,T,width] array must be exactly 0.
static void check_padding_zero(const char *what, const att_case *c, const float *x, int width) {
    size_t bad = 0;
    for (int b = 0; b < c->B; b++)
        for (int t = pos_len(c, b); t < c->T; t++)
            for (int e = 0; e < width; e++) bad += x[((size_t)b * c->T + t) * width + e] != 0.0f;
    CHECK(bad == 0, "%s: %zu nonzero elements at padded positions", what, bad);
}

static void run_case(const rl_backend *G, const att_case *c) {
    int bf = G->act == RL_BF16;
    int QKV = (c->NH + 2 * c->NKV) * c->hd, AD = c->NH * c->hd;
    size_t nq = (size_t)c->B * c->T * QKV, no = (size_t)c->B * c->T * AD,
           nl = (size_t)c->B * c->T * c->NH;
    char tag[160];
    snprintf(tag, sizeof tag, "%s %s B%d T%d NH%d NKV%d hd%d w%d", bf ? "bf16" : "f32 ", c->what,
             c->B, c->T, c->NH, c->NKV, c->hd, c->window);
    fprintf(stderr, "%s\n", tag);
    float *qkv = rand_floats(nq, 1.5f), *dout = rand_floats(no, 1.0f);
    if (bf) round_bf16(qkv, nq), round_bf16(dout, no);

    // CPU reference forward
    float *qkv_c = CPU->mem_alloc(CPU, nq * 4), *out_c = CPU->mem_alloc(CPU, no * 4),
          *lse_c = CPU->mem_alloc(CPU, nl * 4);
    int32_t *len_c = NULL, *len_g = NULL;
    memcpy(qkv_c, qkv, nq * 4);
    if (c->lengths) {
        len_c = CPU->mem_alloc(CPU, (size_t)c->B * 4);
        memcpy(len_c, c->lengths, (size_t)c->B * 4);
        len_g = G->mem_alloc(G, (size_t)c->B * 4);
        G->mem_upload(G, len_g, c->lengths, (size_t)c->B * 4);
    }
    CPU->attention_forward(CPU, out_c, lse_c, qkv_c, len_c, c->B, c->T, c->NH, c->NKV, c->hd,
                           c->window);

    // GPU forward (out and lse start as garbage: every element must be written)
    float *junk = rand_floats(no > nl ? no : nl, 9.0f);
    void *qkv_g = upload(G, qkv, nq), *out_g = upload(G, junk, no);
    float *lse_g = G->mem_alloc(G, nl * 4);
    G->mem_upload(G, lse_g, junk, nl * 4);
    G->attention_forward(G, out_g, lse_g, qkv_g, len_g, c->B, c->T, c->NH, c->NKV, c->hd,
                         c->window);
    float *out = download(G, out_g, no), *lse = download_f32(G, lse_g, nl);
    part_sel vpart = {QKV, c->NH, c->NKV, c->hd, 2};
    double atol =
        bf ? ldexp(1.0, -7) * max_abs_sel(qkv_c, nq, in_part, &vpart) : 2e-5 * mean_abs(out_c, no);
    double rtol = bf ? ldexp(1.0, -7) : 2e-5;
    compare("forward out", out, out_c, no, atol, rtol, NULL, NULL);
    compare("forward lse", lse, lse_c, nl, bf ? 1e-4 : 2e-5 * mean_abs(lse_c, nl), bf ? 1e-5 : 2e-5,
            NULL, NULL);
    check_padding_zero("forward out", c, out, AD);
    check_padding_zero("forward lse", c, lse, c->NH);
    // without lse (scoring, prefill): the same output bits
    void *out2_g = upload(G, junk, no);
    G->attention_forward(G, out2_g, NULL, qkv_g, len_g, c->B, c->T, c->NH, c->NKV, c->hd,
                         c->window);
    float *out2 = download(G, out2_g, no);
    CHECK(memcmp(out, out2, no * 4) == 0, "%s: the forward without lse gives the same output", tag);
    G->mem_free(G, out2_g);
    free(out2);

    // Backward: both get the CPU forward's out (in the act type: rounded for bf16) and lse.
    float *out_r = rl_malloc(no * 4);
    memcpy(out_r, out_c, no * 4);
    if (bf) round_bf16(out_r, no);
    memcpy(out_c, out_r, no * 4);
    G->mem_free(G, out_g);
    out_g = upload(G, out_r, no);
    G->mem_upload(G, lse_g, lse_c, nl * 4);
    float *dout_c = CPU->mem_alloc(CPU, no * 4), *dqkv_c = CPU->mem_alloc(CPU, nq * 4);
    memcpy(dout_c, dout, no * 4);
    CPU->attention_backward(CPU, dqkv_c, dout_c, qkv_c, out_c, lse_c, len_c, c->B, c->T, c->NH,
                            c->NKV, c->hd, c->window);
    float *junk2 = rand_floats(nq, 7.0f);
    void *dout_g = upload(G, dout, no), *dqkv_g = upload(G, junk2, nq);
    G->attention_backward(G, dqkv_g, dout_g, qkv_g, out_g, lse_g, len_g, c->B, c->T, c->NH, c->NKV,
                          c->hd, c->window);
    float *dqkv = download(G, dqkv_g, nq);
    static const char *parts[3] = {"backward dq", "backward dk", "backward dv"};
    double gmax = max_abs_sel(dqkv_c, nq, NULL, NULL);
    for (int p = 0; p < 3; p++) {
        part_sel ps = {QKV, c->NH, c->NKV, c->hd, p};
        double pmax = fmax(max_abs_sel(dqkv_c, nq, in_part, &ps), ldexp(gmax, -8));
        double a = bf ? ldexp(1.0, -7) * pmax : 2e-5 * mean_abs(dqkv_c, nq);
        compare(parts[p], dqkv, dqkv_c, nq, a, rtol, in_part, &ps);
    }
    check_padding_zero("backward dqkv", c, dqkv, QKV);

    // Deterministic: the same bits again (from different garbage)
    void *dqkv2_g = upload(G, qkv, nq);
    G->attention_backward(G, dqkv2_g, dout_g, qkv_g, out_g, lse_g, len_g, c->B, c->T, c->NH, c->NKV,
                          c->hd, c->window);
    size_t bytes = nq * rl_dtype_size(G->act);
    unsigned char *h1 = rl_malloc(bytes), *h2 = rl_malloc(bytes);
    G->mem_download(G, h1, dqkv_g, bytes);
    G->mem_download(G, h2, dqkv2_g, bytes);
    CHECK(memcmp(h1, h2, bytes) == 0, "%s: the backward gives the same bits twice", tag);
    free(h1), free(h2);

    G->mem_free(G, dqkv2_g), G->mem_free(G, dqkv_g), G->mem_free(G, dout_g);
    G->mem_free(G, out_g), G->mem_free(G, qkv_g), G->mem_free(G, lse_g), G->mem_free(G, len_g);
    CPU->mem_free(CPU, qkv_c), CPU->mem_free(CPU, out_c), CPU->mem_free(CPU, lse_c);
    CPU->mem_free(CPU, len_c), CPU->mem_free(CPU, dout_c), CPU->mem_free(CPU, dqkv_c);
    free(qkv), free(dout), free(junk), free(junk2), free(out), free(lse), free(out_r), free(dqkv);
}

// ------------------------------------------------------------------------------------------------

static const int32_t L2a[] = {70, 45}, L2b[] = {100, 1}, L2c[] = {90, 67}, L2d[] = {0, 20},
                     L2e[] = {40, 17}, L3[] = {64, 63, 33};

static const att_case CASES[] = {
    {2, 70, 14, 2, 64, 0, L2a, "GQA 7:1, padded, T % 64 != 0"},
    {2, 100, 4, 1, 128, 0, L2b, "MQA, hd 128, a length-1 sequence"},
    {2, 90, 2, 1, 64, 20, L2c, "window 20 across key tiles"},
    {1, 130, 2, 2, 128, 65, NULL, "MHA, hd 128, window 65 > tile, 3 tiles"},
    {2, 20, 4, 2, 64, 1, L2d, "window 1, an empty sequence"},
    {3, 64, 7, 1, 64, 0, L3, "MQA 7:1, T = tile"},
    {2, 40, 4, 2, 32, 5, L2e, "hd 32: the general kernels"},
};

static void test_bf16(void) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) run_case(GPU16, &CASES[i]);
}

static void test_f32(void) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) run_case(GPU, &CASES[i]);
}

int main(int argc, char **argv) {
    rl_err err;
    CPU = rl_backend_cpu();
    GPU = rl_backend_get("cuda", &err);
    if (!GPU) {
        fprintf(stderr, "skip: %s\n", err.msg);
        return 77;
    }
    GPU16 = rl_backend_cuda_open(0, 0, RL_BF16, &err);
    CHECK(GPU16 != NULL, "the CUDA backend opens with bf16 activations: '%s'", err.msg);
    RNG = rl_rng_stream(2026, RL_RNG_INIT, 10, 0);
    const char *only = argc > 1 ? argv[1] : ""; // "bf16" or "f32": only those cases
    if (GPU16 && !strstr(only, "f32")) RUN(test_bf16);
    if (!strstr(only, "bf16")) RUN(test_f32);
    rl_backend_release(GPU16);
    rl_backend_release(GPU);
    return test_summary();
}
