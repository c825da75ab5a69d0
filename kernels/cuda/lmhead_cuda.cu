// The optional fused ops on the GPU: the lm_head + log-prob + entropy over vocabulary chunks
// (forward and backward) and RMSNorm + residual. See kernels/kernels.h for the contracts and
// kernels/cpu/lmhead_cpu.c for the reference they are tested against (tests/test_cuda_lmhead.c).
//
// lm_head forward, per chunk of `chunk` vocabulary columns (the idea of llm.c's fused
// classifier, over chunks because our dlogp is not known at forward time):
//   1. one cuBLAS product into the workspace: logits [N, vc] = h @ wlm[v0 : v0+vc]^T;
//   2. one block per row: the chunk's max, S = sum exp(z - max) and Sz = sum exp(z - max)(z - max)
//      (block reductions), merged by thread 0 into the row's running statistics (online
//      log-sum-exp, the same merge as the CPU), and the target's logit picked up when it is in the
//      chunk;
// then one element-wise pass turns the running statistics into logp, entropy and lse.
// The backward recomputes each chunk's logits (1), turns them into dlogits in place (one block
// per row, from the forward's lse and entropy), then two products: dh (+)= dlogits @ wlm_chunk and
// dwlm_chunk += dlogits^T @ h. Memory: the [N, chunk] logits of one chunk, never [N, V].
//
// Activation type. The kernels that read or write act (the dh store, RMSNorm + residual) are
// templates over the element type (float, __nv_bfloat16), reached through non-template __global__
// wrappers (one per type). The products go through gemm_cuda with float32 output (the chunk's
// logits, dh, dwlm): sgemm for float32 activations; for bf16, cuBLASLt with bf16 operands, so the
// chunk's float32 dlogits are rounded to bf16 (nearest even, convert_cuda) into their own
// workspace slice before the two backward products (the same rounding the unfused model path
// applies to its dlogits), and dh accumulates in float32 across chunks and is rounded once at the
// end. Workspace layout: [N, chunk] float logits, running m, S, Sz [3, N]; with bf16 also the dh
// accumulator [N, C] and the bf16 dlogits [N, chunk], each starting on a 256-byte boundary
// (rl_lm_head_work_floats reserves the slack).
#include "kernels/cuda/cuda_common.h"

#include <cuda_bf16.h>

enum { LM_THREADS = 256, RN_ROWS = RL_CUDA_THREADS / 32 };

static __device__ __forceinline__ float act_load(const float *p, size_t i) {
    return p[i];
}
static __device__ __forceinline__ float act_load(const __nv_bfloat16 *p, size_t i) {
    return __bfloat162float(p[i]);
}
static __device__ __forceinline__ void act_store(float *p, size_t i, float v) {
    p[i] = v;
}
static __device__ __forceinline__ void act_store(__nv_bfloat16 *p, size_t i, float v) {
    p[i] = __float2bfloat16(v);
}

// c[M,N] (float32) = op(a) op(b) + beta c, a and b of the backend's act type. See gemm_cuda.
static void act_gemm(const rl_backend *be, float *c, const void *a, const void *b, int M, int N,
                     int K, int trans_a, int trans_b, float beta) {
    gemm_cuda(be, c, RL_F32, a, b, M, N, K, trans_a, trans_b, 1.0f, beta);
}

// p rounded up to a 256-byte boundary (the alignment cudaMalloc gives and cuBLASLt assumes).
static float *align256(float *p) {
    return (float *)(((uintptr_t)p + 255) & ~(uintptr_t)255);
}

// ------------------------------------------------------------------------------------------------
// lm_head + log-prob + entropy

// Row i of the chunk's logits x[vc] (columns v0 ..): its statistics, merged into the running
// (m, S, Sz) of the row; xt[i] receives the target's logit when the target is in the chunk.
__global__ static void lm_chunk_stats_kernel(float *run_m, float *run_S, float *run_Sz, float *xt,
                                             const float *work, const int32_t *targets, int vc,
                                             int v0, float it, int first, int want_entropy) {
    __shared__ float scratch[32];
    size_t i = blockIdx.x;
    const float *x = work + i * vc;
    float mz, S, Sz;
    block_softmax_sums(x, vc, it, want_entropy, scratch, &mz, &S, &Sz);
    if (threadIdx.x != 0) return;
    int t = targets[i];
    if (t >= v0 && t < v0 + vc) xt[i] = x[t - v0];
    if (first) {
        run_m[i] = mz, run_S[i] = S, run_Sz[i] = Sz;
        return;
    }
    float m = run_m[i], rS = run_S[i], rSz = run_Sz[i];
    if (mz <= m) {
        float d = mz - m, a = expf(d);
        rS += a * S;
        rSz += a * (Sz + d * S);
    } else {
        float d = m - mz, a = expf(d);
        rSz = a * (rSz + d * rS) + Sz;
        rS = a * rS + S;
        m = mz;
    }
    run_m[i] = m, run_S[i] = rS, run_Sz[i] = rSz;
}

__global__ static void lm_finish_kernel(float *logp, float *entropy, float *lse, const float *run_m,
                                        const float *run_S, const float *run_Sz,
                                        const int32_t *targets, int N, float it) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < N; i += gridDim.x * blockDim.x) {
        float logS = logf(run_S[i]), l = run_m[i] + logS;
        logp[i] = targets[i] >= 0 ? logp[i] * it - l : 0.0f;
        if (entropy) entropy[i] = logS - run_Sz[i] / run_S[i];
        if (lse) lse[i] = l;
    }
}

static int clamp_chunk(int chunk, int V) {
    return chunk <= 0 || chunk > V ? V : chunk;
}

void lm_head_logprob_forward_cuda(const rl_backend *be, float *logp, float *entropy, float *lse,
                                  const void *h, const void *wlm, const int32_t *targets, int N,
                                  int C, int V, float inv_temp, int chunk, float *work) {
    if (N <= 0 || V <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    chunk = clamp_chunk(chunk, V);
    size_t es = rl_dtype_size(be->act);
    float *run_m = work + (size_t)N * chunk, *run_S = run_m + N, *run_Sz = run_S + N;
    for (int v0 = 0; v0 < V; v0 += chunk) {
        int vc = V - v0 < chunk ? V - v0 : chunk;
        act_gemm(be, work, h, (const char *)wlm + (size_t)v0 * C * es, N, vc, C, 0, 1, 0.0f);
        lm_chunk_stats_kernel<<<(unsigned)N, LM_THREADS, 0, ctx->stream>>>(
            run_m, run_S, run_Sz, logp, work, targets, vc, v0, inv_temp, v0 == 0, entropy != NULL);
        cudaLaunchCheck(ctx);
    }
    lm_finish_kernel<<<cu_grid((size_t)N, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
        logp, entropy, lse, run_m, run_S, run_Sz, targets, N, inv_temp);
    cudaLaunchCheck(ctx);
}

// dlogits of row i of the chunk, in place of its logits x[vc] (columns v0 ..), as
// logprob_backward: inv_temp * ( dlogp*(onehot - p) - dentropy*p*(log p + H) ).
__global__ static void lm_dlogits_kernel(float *work, const int32_t *targets, const float *dlogp,
                                         const float *dentropy, const float *lse,
                                         const float *entropy, int vc, int v0, float it) {
    size_t i = blockIdx.x;
    float *x = work + i * vc;
    int t = targets[i];
    float dlp = t >= 0 ? dlogp[i] : 0.0f;
    float dent = dentropy ? dentropy[i] : 0.0f;
    float l = lse[i], H = dent != 0.0f ? entropy[i] : 0.0f;
    for (int k = threadIdx.x; k < vc; k += blockDim.x) {
        float lp = x[k] * it - l; // log p_k
        float p = expf(lp);
        x[k] = k + v0 == t ? it * (dlp * (1.0f - p) - dent * p * (lp + H))
                           : -it * p * (dlp + dent * (lp + H));
    }
}

template <typename T> static __device__ void store_rows_body(T *out, const float *in, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        act_store(out, i, in[i]);
}
__global__ static void store_rows_kernel(__nv_bfloat16 *out, const float *in, size_t n) {
    store_rows_body(out, in, n);
}

void lm_head_logprob_backward_cuda(const rl_backend *be, void *dh, float *dwlm, const float *dlogp,
                                   const float *dentropy, const void *h, const void *wlm,
                                   const int32_t *targets, const float *lse, const float *entropy,
                                   int N, int C, int V, float inv_temp, int chunk, float *work) {
    if (N <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    size_t es = rl_dtype_size(be->act);
    if (V <= 0) { // no logits: dh = 0
        cudaCheck(cudaMemsetAsync(dh, 0, (size_t)N * C * es, ctx->stream));
        return;
    }
    chunk = clamp_chunk(chunk, V);
    // float32 activations: dh accumulates in place and the dlogits are the products' operand;
    // bf16: dh in float32 after the statistics, the dlogits rounded to bf16 after that
    int bf = be->act == RL_BF16;
    float *dacc = bf ? align256(work + (size_t)N * (chunk + 3)) : (float *)dh;
    void *dlg = bf ? (void *)align256(dacc + (size_t)N * C) : (void *)work;
    for (int v0 = 0; v0 < V; v0 += chunk) {
        int vc = V - v0 < chunk ? V - v0 : chunk;
        const void *wc = (const char *)wlm + (size_t)v0 * C * es;
        act_gemm(be, work, h, wc, N, vc, C, 0, 1, 0.0f);
        lm_dlogits_kernel<<<(unsigned)N, LM_THREADS, 0, ctx->stream>>>(
            work, targets, dlogp, dentropy, lse, entropy, vc, v0, inv_temp);
        cudaLaunchCheck(ctx);
        if (bf) convert_cuda(be, dlg, RL_BF16, work, RL_F32, (size_t)N * vc);
        act_gemm(be, dacc, dlg, wc, N, C, vc, 0, 0, v0 == 0 ? 0.0f : 1.0f);
        act_gemm(be, dwlm + (size_t)v0 * C, dlg, h, vc, C, N, 1, 0, 1.0f);
    }
    if (be->act == RL_BF16) {
        size_t n = (size_t)N * C;
        store_rows_kernel<<<cu_grid(n, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
            (__nv_bfloat16 *)dh, dacc, n);
        cudaLaunchCheck(ctx);
    }
}

// ------------------------------------------------------------------------------------------------
// RMSNorm + residual: one warp per row, the lanes and sums of rmsnorm_forward_cuda, so the result
// is bit for bit residual_forward_cuda then rmsnorm_forward_cuda (the norm reads the sum as it
// was stored, i.e. rounded to the act type).

template <typename T>
static __device__ void rmsnorm_residual_body(T *res_out, T *out, float *rstd, const T *a,
                                             const T *b, const T *weight, int N, int C, float eps) {
    int lane = threadIdx.x % 32;
    size_t row = (size_t)blockIdx.x * RN_ROWS + threadIdx.x / 32;
    if (row >= (size_t)N) return;
    size_t at = row * C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32) { // each lane reads a[c], b[c] before writing res_out[c]
        act_store(res_out, at + c, act_load(a, at + c) + act_load(b, at + c));
        float x = act_load(res_out, at + c);
        ss += x * x;
    }
    ss = warp_sum(ss);
    float r = 1.0f / sqrtf(ss / (float)C + eps);
    for (int c = lane; c < C; c += 32)
        act_store(out, at + c, act_load(weight, c) * (act_load(res_out, at + c) * r));
    if (rstd && lane == 0) rstd[row] = r;
}

// One kernel per act type, each with its own name (not overloads: a launch names exactly one).
__global__ static void rmsnorm_residual_kernel_f32(float *res_out, float *out, float *rstd,
                                                   const float *a, const float *b,
                                                   const float *weight, int N, int C, float eps) {
    rmsnorm_residual_body(res_out, out, rstd, a, b, weight, N, C, eps);
}

__global__ static void rmsnorm_residual_kernel_bf16(__nv_bfloat16 *res_out, __nv_bfloat16 *out,
                                                    float *rstd, const __nv_bfloat16 *a,
                                                    const __nv_bfloat16 *b,
                                                    const __nv_bfloat16 *weight, int N, int C,
                                                    float eps) {
    rmsnorm_residual_body(res_out, out, rstd, a, b, weight, N, C, eps);
}

void rmsnorm_residual_forward_cuda(const rl_backend *be, void *res_out, void *out, float *rstd,
                                   const void *a, const void *b, const void *weight, int N, int C,
                                   float eps) {
    if (N <= 0 || C <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    unsigned grid = cu_blocks((size_t)N, RN_ROWS);
    if (be->act == RL_BF16)
        rmsnorm_residual_kernel_bf16<<<grid, RL_CUDA_THREADS, 0, ctx->stream>>>(
            (__nv_bfloat16 *)res_out, (__nv_bfloat16 *)out, rstd, (const __nv_bfloat16 *)a,
            (const __nv_bfloat16 *)b, (const __nv_bfloat16 *)weight, N, C, eps);
    else
        rmsnorm_residual_kernel_f32<<<grid, RL_CUDA_THREADS, 0, ctx->stream>>>(
            (float *)res_out, (float *)out, rstd, (const float *)a, (const float *)b,
            (const float *)weight, N, C, eps);
    cudaLaunchCheck(ctx);
}
