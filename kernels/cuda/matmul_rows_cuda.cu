// matmul_rows on CUDA: the batch-invariant product of the decode path, in the very summation
// order of kernels/cpu/matmul_rows_cpu.c, so a float32 backend gives the CPU's bits and a bf16
// backend the CPU's bits on the same (bf16-valued) operands: lane j of 16 accumulates
// fmaf(inp[k], weight[o, k], acc) over k = j, j + 16, ... in increasing k from +0, the lanes are
// added as the tree +8, +4, +2, +1 (a half-warp's xor butterfly: every lane ends with the same
// bits, since a + b == b + a), then the bias; a bf16 result is rounded once at the end.
//
// One half-warp owns a tile of 4 rows x 4 outputs: its 16 lanes hold the 16 lane-accumulators of
// each of the 16 outputs, so a k step loads 16 consecutive elements of each of the 4 rows and 4
// weight rows (64 contiguous bytes in float32) and does 16 FMAs per lane. Rows and outputs past
// the end are computed as zeros and not stored: they never touch another output's sum. Tiles are
// numbered row tile fastest, so the half-warps running together share one weight tile (read
// from memory once, then from cache) while the N x C input stays in L2.
//
// This runs on CUDA cores in float32 arithmetic, not on tensor cores: at batch 1 it streams the
// weights like a GEMV; at large batches cuBLAS's tensor-core GEMMs are several times faster, and
// rollout.batch_invariant: false trades the invariance for them (rollout/README.md).
#include "kernels/cuda/cuda_common.h"

#include <stdio.h>
#include <stdlib.h>

enum { ROWS_RB = 4, ROWS_CB = 4, ROWS_LANES = 16, ROWS_THREADS = 128 };

template <class T> static __device__ __forceinline__ float load_or_zero(const T *p, int ok) {
    return ok ? to_float(*p) : 0.0f;
}

template <class T, class TO>
__global__ static void matmul_rows_kernel(TO *out, const T *inp, const T *weight, const T *bias,
                                          int N, int C, int OC) {
    int lane = threadIdx.x % ROWS_LANES;
    long long tile = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / ROWS_LANES;
    long long row_tiles = (N + ROWS_RB - 1) / ROWS_RB;
    long long n_tiles = row_tiles * ((OC + ROWS_CB - 1) / ROWS_CB);
    if (tile >= n_tiles) return; // a whole half-warp leaves together
    int n0 = (int)(tile % row_tiles) * ROWS_RB, o0 = (int)(tile / row_tiles) * ROWS_CB;
    float acc[ROWS_RB][ROWS_CB];
#pragma unroll
    for (int r = 0; r < ROWS_RB; r++)
#pragma unroll
        for (int c = 0; c < ROWS_CB; c++) acc[r][c] = 0.0f;
    for (int k = lane; k < C; k += ROWS_LANES) {
        float x[ROWS_RB], w[ROWS_CB];
#pragma unroll
        for (int r = 0; r < ROWS_RB; r++)
            x[r] = load_or_zero(inp + (size_t)(n0 + r) * C + k, n0 + r < N);
#pragma unroll
        for (int c = 0; c < ROWS_CB; c++)
            w[c] = load_or_zero(weight + (size_t)(o0 + c) * C + k, o0 + c < OC);
#pragma unroll
        for (int r = 0; r < ROWS_RB; r++)
#pragma unroll
            for (int c = 0; c < ROWS_CB; c++) acc[r][c] = fmaf(x[r], w[c], acc[r][c]);
    }
    // the lane tree of every output (shuffles inside this half-warp: the other half may have
    // left); lane t then keeps output t of the tile
    const unsigned mask = 0xffffu << (threadIdx.x & 16);
    float mine = 0.0f;
#pragma unroll
    for (int r = 0; r < ROWS_RB; r++)
#pragma unroll
        for (int c = 0; c < ROWS_CB; c++) {
            float s = acc[r][c];
            for (int step = 8; step >= 1; step /= 2) s = s + __shfl_xor_sync(mask, s, step);
            if (lane == r * ROWS_CB + c) mine = s;
        }
    int n = n0 + lane / ROWS_CB, o = o0 + lane % ROWS_CB;
    if (n >= N || o >= OC) return;
    if (bias) mine = mine + to_float(bias[o]);
    out[(size_t)n * OC + o] = from_float<TO>(mine);
}

template <class T, class TO>
static void matmul_rows_launch(const rl_backend *be, void *out, const void *inp, const void *weight,
                               const void *bias, int N, int C, int OC) {
    rl_cuda_ctx *ctx = cu_ctx(be);
    size_t tiles = (size_t)((N + ROWS_RB - 1) / ROWS_RB) * (size_t)((OC + ROWS_CB - 1) / ROWS_CB);
    size_t threads = tiles * ROWS_LANES;
    unsigned blocks = (unsigned)((threads + ROWS_THREADS - 1) / ROWS_THREADS);
    matmul_rows_kernel<T, TO><<<blocks, ROWS_THREADS, 0, ctx->stream>>>(
        (TO *)out, (const T *)inp, (const T *)weight, (const T *)bias, N, C, OC);
    cudaLaunchCheck(ctx);
}

void matmul_rows_cuda(const rl_backend *be, void *out, rl_dtype out_dt, const void *inp,
                      const void *weight, const void *bias, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    if (out_dt != RL_F32 && out_dt != be->act) {
        fprintf(stderr, "rlpipe: matmul_rows_cuda: out must be float32 or the act type (got %s)\n",
                rl_dtype_name(out_dt));
        exit(1);
    }
    if (be->act == RL_BF16) {
        if (out_dt == RL_F32)
            matmul_rows_launch<bf16, float>(be, out, inp, weight, bias, N, C, OC);
        else
            matmul_rows_launch<bf16, bf16>(be, out, inp, weight, bias, N, C, OC);
    } else
        matmul_rows_launch<float, float>(be, out, inp, weight, bias, N, C, OC);
}
