// bench_attention: speed of the training attention (forward and backward) on a backend (not a
// test). On CUDA it runs the bf16 flash kernels (head_dim 64 and 128) and the float32 kernels.
//
//   bench_attention [--device cpu|cuda] [--T N] [--B N] [--iters N]
//
// Shapes: the attention layers of Qwen2.5-0.5B (14 query heads, 2 kv heads, head_dim 64) and of
// DeepSeek-R1-Distill-Qwen-1.5B (12, 2, 128), causal, no window, full-length sequences (default
// B = 2, T = 4096 on CUDA, T = 512 on the CPU). For each it prints milliseconds per call and the
// achieved TFLOP/s (GFLOP/s on the CPU), counting the causal half only: forward 4 * B * NH * hd * T^2 / 2 (Q K^T and
// P V), backward 2.5 x that (five products instead of two), as FlashAttention counts; on CUDA
// next to the dense bf16 peak of an H100 / H200 SXM (989 TFLOP/s).
#define _POSIX_C_SOURCE 200809L
#include "kernels/backend.h"
#include "kernels/rng.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct att_shape {
    const char *name;
    int NH, NKV, hd;
} att_shape;

static const att_shape SHAPES[] = {
    {"qwen2.5-0.5b (NH 14, NKV 2, hd 64)", 14, 2, 64},
    {"r1-distill-1.5b (NH 12, NKV 2, hd 128)", 12, 2, 128},
};

// Random act-typed device array of n elements in [-scale, scale].
static void *rand_act(const rl_backend *be, size_t n, float scale, rl_rng *rng) {
    float *h = rl_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = scale * (2.0f * rl_rng_float(rng) - 1.0f);
    void *d = be->mem_alloc(be, n * rl_dtype_size(be->act));
    if (be->act == RL_F32) {
        be->mem_upload(be, d, h, n * 4);
    } else {
        float *f = be->mem_alloc(be, n * 4);
        be->mem_upload(be, f, h, n * 4);
        be->convert(be, d, be->act, f, RL_F32, n);
        be->mem_free(be, f);
    }
    free(h);
    return d;
}

static void bench_shape(const rl_backend *be, const att_shape *s, int B, int T, int iters,
                        double peak_tflops) {
    rl_rng rng = rl_rng_stream(7, RL_RNG_INIT, 1, 0);
    size_t qkv_n = (size_t)B * T * (s->NH + 2 * s->NKV) * s->hd,
           out_n = (size_t)B * T * s->NH * s->hd;
    void *qkv = rand_act(be, qkv_n, 1.0f, &rng), *dout = rand_act(be, out_n, 1.0f, &rng);
    void *out = be->mem_alloc(be, out_n * rl_dtype_size(be->act));
    void *dqkv = be->mem_alloc(be, qkv_n * rl_dtype_size(be->act));
    float *lse = be->mem_alloc(be, (size_t)B * T * s->NH * sizeof(float));
    double fwd_flops = 4.0 * B * s->NH * s->hd * (double)T * T / 2.0;
    double t_fwd = 0.0, t_bwd = 0.0;
    for (int it = -1; it < iters; it++) { // iteration -1 warms up
        be->synchronize(be);
        double t0 = now_s();
        be->attention_forward(be, out, lse, qkv, NULL, B, T, s->NH, s->NKV, s->hd, 0);
        be->synchronize(be);
        double t1 = now_s();
        be->attention_backward(be, dqkv, dout, qkv, out, lse, NULL, B, T, s->NH, s->NKV, s->hd, 0);
        be->synchronize(be);
        double t2 = now_s();
        if (it >= 0) t_fwd += t1 - t0, t_bwd += t2 - t1;
    }
    t_fwd /= iters, t_bwd /= iters;
    // TFLOP/s on a GPU, GFLOP/s on the CPU
    double unit = peak_tflops > 0 ? 1e-12 : 1e-9;
    const char *uname = peak_tflops > 0 ? "TFLOP/s" : "GFLOP/s";
    double r_fwd = fwd_flops / t_fwd * unit, r_bwd = 2.5 * fwd_flops / t_bwd * unit;
    printf("%-8s %-40s B %d T %5d  forward %9.3f ms %8.2f %s  backward %9.3f ms %8.2f %s",
           rl_dtype_name(be->act), s->name, B, T, 1e3 * t_fwd, r_fwd, uname, 1e3 * t_bwd, r_bwd,
           uname);
    if (peak_tflops > 0)
        printf("  (%.1f%% / %.1f%% of %.0f)", 100.0 * r_fwd / peak_tflops,
               100.0 * r_bwd / peak_tflops, peak_tflops);
    printf("\n");
    fflush(stdout);
    be->mem_free(be, qkv), be->mem_free(be, dout), be->mem_free(be, out);
    be->mem_free(be, dqkv), be->mem_free(be, lse);
}

static int usage(void) {
    fprintf(stderr, "usage: bench_attention [--device cpu|cuda] [--T N] [--B N] [--iters N]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *device = "cuda";
    int T = 0, B = 2, iters = 3;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) return usage();
        if (!strcmp(argv[i], "--device"))
            device = argv[++i];
        else if (!strcmp(argv[i], "--T"))
            T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--B"))
            B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters"))
            iters = atoi(argv[++i]);
        else
            return usage();
    }
    if (B <= 0 || iters <= 0 || T < 0 || (strcmp(device, "cpu") && strcmp(device, "cuda")))
        return usage();
    int cuda = !strcmp(device, "cuda");
    if (T == 0) T = cuda ? 4096 : 512;
    rl_err err;
    const rl_backend *bes[2] = {NULL, NULL};
    if (cuda) {
        bes[0] = rl_backend_cuda_open(0, 0, RL_BF16, &err);
        if (bes[0]) bes[1] = rl_backend_cuda_open(0, 0, RL_F32, &err);
    } else {
        bes[0] = rl_backend_cpu();
    }
    if (!bes[0]) {
        fprintf(stderr, "bench_attention: %s\n", err.msg);
        return 2;
    }
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; bes[k] && i < sizeof SHAPES / sizeof SHAPES[0]; i++)
            bench_shape(bes[k], &SHAPES[i], B, T, iters, cuda ? 989.0 : 0.0);
    rl_backend_release(bes[1]);
    if (cuda) rl_backend_release(bes[0]);
    return 0;
}
