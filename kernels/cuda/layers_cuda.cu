// Row-wise layers on the GPU: embedding, RMSNorm, RoPE, SwiGLU, residual add, row gather.
// Element-wise kernels use one thread per element (grid-stride loops); row reductions one warp
// per row. Gradients of shared weights (RMSNorm weight, embedding table) are reduced in a fixed
// order without atomics, so they are reproducible bit for bit. Every kernel over activations is a
// template over the act type T (float or bf16, cuda_common.h): loads widen to float, arithmetic
// and reductions run in float, stores round once. See kernels/kernels.h.
#include "kernels/cuda/cuda_common.h"

#define GRID_STRIDE(i, n)                                                                          \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                        \
         i += (size_t)gridDim.x * blockDim.x)

// Rows handled by one block of a warp-per-row kernel.
enum { ROWS_PER_BLOCK = RL_CUDA_THREADS / 32 };

// ------------------------------------------------------------------------------------------------
// Embedding

template <class T>
__global__ static void embedding_forward_kernel(T *out, const int32_t *tokens, const T *wte, int N,
                                                int C) {
    GRID_STRIDE(i, (size_t)N * C) {
        size_t n = i / (size_t)C, c = i % (size_t)C;
        int32_t tok = tokens[n];
        out[i] = tok < 0 ? from_float<T>(0.0f) : wte[(size_t)tok * C + c];
    }
}

template <class T>
static void embedding_forward_launch(rl_cuda_ctx *ctx, void *out, const int32_t *tokens,
                                     const void *wte, int N, int C) {
    embedding_forward_kernel<T>
        <<<cu_grid((size_t)N * C, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
            (T *)out, tokens, (const T *)wte, N, C);
}

void embedding_forward_cuda(const rl_backend *be, void *out, const int32_t *tokens, const void *wte,
                            int N, int C) {
    if (N <= 0 || C <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    ACT_DISPATCH(be, embedding_forward_launch, ctx, out, tokens, wte, N, C);
    cudaLaunchCheck(ctx);
}

// dwte[tokens[n], c] += dout[n, c]. Two positions may share a token, so no thread owns a
// position: thread (c, bucket) owns column c of the table rows whose token id is congruent to
// `bucket` modulo EMB_BUCKETS, and walks all positions in order, adding those with its tokens.
// Every table element thus receives its additions in position order, as on the CPU (the same
// float additions in the same order: the same bits).
enum { EMB_BUCKETS = 32, EMB_TILE = 256 };

template <class T>
__global__ static void embedding_backward_kernel(float *dwte, const T *dout, const int32_t *tokens,
                                                 int N, int C) {
    __shared__ int32_t tok[EMB_TILE];
    int c = blockIdx.x * blockDim.x + threadIdx.x, bucket = blockIdx.y;
    for (int n0 = 0; n0 < N; n0 += EMB_TILE) {
        int nt = N - n0 < EMB_TILE ? N - n0 : EMB_TILE;
        __syncthreads(); // the previous tile is consumed
        for (int k = threadIdx.x; k < nt; k += blockDim.x) tok[k] = tokens[n0 + k];
        __syncthreads();
        if (c >= C) continue;
        for (int k = 0; k < nt; k++) {
            int32_t t = tok[k];
            if (t >= 0 && t % EMB_BUCKETS == bucket)
                dwte[(size_t)t * C + c] += to_float(dout[(size_t)(n0 + k) * C + c]);
        }
    }
}

template <class T>
static void embedding_backward_launch(rl_cuda_ctx *ctx, float *dwte, const void *dout,
                                      const int32_t *tokens, int N, int C) {
    dim3 grid(cu_blocks((size_t)C, 128), EMB_BUCKETS);
    embedding_backward_kernel<T>
        <<<grid, 128, 0, ctx->stream>>>(dwte, (const T *)dout, tokens, N, C);
}

void embedding_backward_cuda(const rl_backend *be, float *dwte, const void *dout,
                             const int32_t *tokens, int N, int C) {
    if (N <= 0 || C <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    ACT_DISPATCH(be, embedding_backward_launch, ctx, dwte, dout, tokens, N, C);
    cudaLaunchCheck(ctx);
}

// ------------------------------------------------------------------------------------------------
// RMSNorm

template <class T>
__global__ static void rmsnorm_forward_kernel(T *out, float *rstd, const T *inp, const T *weight,
                                              int N, int C, float eps) {
    int lane = threadIdx.x % 32;
    size_t row = (size_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32;
    if (row >= (size_t)N) return;
    const T *x = inp + row * C;
    T *o = out + row * C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float xv = to_float(x[c]);
        ss += xv * xv;
    }
    ss = warp_sum(ss);
    float r = 1.0f / sqrtf(ss / (float)C + eps);
    for (int c = lane; c < C; c += 32)
        o[c] = from_float<T>(to_float(weight[c]) * (to_float(x[c]) * r));
    if (rstd && lane == 0) rstd[row] = r;
}

template <class T>
static void rmsnorm_forward_launch(rl_cuda_ctx *ctx, void *out, float *rstd, const void *inp,
                                   const void *weight, int N, int C, float eps) {
    rmsnorm_forward_kernel<T>
        <<<cu_blocks((size_t)N, ROWS_PER_BLOCK), RL_CUDA_THREADS, 0, ctx->stream>>>(
            (T *)out, rstd, (const T *)inp, (const T *)weight, N, C, eps);
}

void rmsnorm_forward_cuda(const rl_backend *be, void *out, float *rstd, const void *inp,
                          const void *weight, int N, int C, float eps) {
    if (N <= 0 || C <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    ACT_DISPATCH(be, rmsnorm_forward_launch, ctx, out, rstd, inp, weight, N, C, eps);
    cudaLaunchCheck(ctx);
}

// dx += r * (w*dy - x * k), k = r^2 * mean(w*dy*x): one warp per row.
template <class T>
__global__ static void rmsnorm_backward_dinp_kernel(T *dinp, const T *dout, const T *inp,
                                                    const T *weight, const float *rstd, int N,
                                                    int C) {
    int lane = threadIdx.x % 32;
    size_t row = (size_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32;
    if (row >= (size_t)N) return;
    const T *x = inp + row * C, *dy = dout + row * C;
    T *dx = dinp + row * C;
    float r = rstd[row], dot = 0.0f;
    for (int c = lane; c < C; c += 32)
        dot += to_float(weight[c]) * to_float(dy[c]) * to_float(x[c]);
    dot = warp_sum(dot);
    float k = dot * r * r / (float)C;
    for (int c = lane; c < C; c += 32)
        dx[c] = from_float<T>(to_float(dx[c]) +
                              r * (to_float(weight[c]) * to_float(dy[c]) - to_float(x[c]) * k));
}

// dweight[c] += sum_n dy[n,c] * x[n,c] * r[n]: the fixed-order column reduction of
// matmul_cuda.cu's bias gradient (32 columns per block, COLSUM_ROWS row groups).
enum { COLSUM_ROWS = 16 };

template <class T>
__global__ static void rmsnorm_backward_dweight_kernel(float *dweight, const T *dout, const T *inp,
                                                       const float *rstd, int N, int C) {
    __shared__ float part[COLSUM_ROWS][33];
    int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx;
    float acc = 0.0f;
    if (c < C)
        for (int n = ty; n < N; n += COLSUM_ROWS) {
            size_t at = (size_t)n * C + c;
            acc += to_float(dout[at]) * (to_float(inp[at]) * rstd[n]);
        }
    part[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && c < C) {
        float s = 0.0f;
        for (int k = 0; k < COLSUM_ROWS; k++) s += part[k][tx];
        dweight[c] += s;
    }
}

template <class T>
static void rmsnorm_backward_launch(rl_cuda_ctx *ctx, void *dinp, float *dweight, const void *dout,
                                    const void *inp, const void *weight, const float *rstd, int N,
                                    int C) {
    if (dinp) {
        rmsnorm_backward_dinp_kernel<T>
            <<<cu_blocks((size_t)N, ROWS_PER_BLOCK), RL_CUDA_THREADS, 0, ctx->stream>>>(
                (T *)dinp, (const T *)dout, (const T *)inp, (const T *)weight, rstd, N, C);
        cudaLaunchCheck(ctx);
    }
    if (dweight) {
        dim3 block(32, COLSUM_ROWS);
        rmsnorm_backward_dweight_kernel<T><<<cu_blocks((size_t)C, 32), block, 0, ctx->stream>>>(
            dweight, (const T *)dout, (const T *)inp, rstd, N, C);
        cudaLaunchCheck(ctx);
    }
}

void rmsnorm_backward_cuda(const rl_backend *be, void *dinp, float *dweight, const void *dout,
                           const void *inp, const void *weight, const float *rstd, int N, int C) {
    if (N <= 0 || C <= 0) return;
    ACT_DISPATCH(be, rmsnorm_backward_launch, cu_ctx(be), dinp, dweight, dout, inp, weight, rstd, N,
                 C);
}

// ------------------------------------------------------------------------------------------------
// RoPE: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin) at angle pos * inv_freq[i]; the backward
// flips the sign of sin. The inverse frequencies come from the host (rl_rope_inv_freq, the same
// float32 values the CPU uses) as a kernel argument.

typedef struct rope_freqs {
    float f[RL_MAX_HEAD_DIM / 2];
} rope_freqs;

template <class T>
__global__ static void rope_kernel(T *x, const int32_t *pos, int N, int n_heads, int hd,
                                   int row_stride, rope_freqs inv_freq, float sign) {
    int half = hd / 2;
    size_t total = (size_t)N * n_heads * half;
    GRID_STRIDE(idx, total) {
        int i = (int)(idx % (size_t)half);
        size_t nh = idx / (size_t)half;
        int h = (int)(nh % (size_t)n_heads);
        size_t n = nh / (size_t)n_heads;
        float f = (float)pos[n] * inv_freq.f[i], s, c;
        sincosf(f, &s, &c);
        s *= sign;
        T *x1 = x + n * row_stride + (size_t)h * hd, *x2 = x1 + half;
        float a = to_float(x1[i]), b = to_float(x2[i]);
        x1[i] = from_float<T>(a * c - b * s);
        x2[i] = from_float<T>(b * c + a * s);
    }
}

template <class T>
static void rope_kernel_launch(rl_cuda_ctx *ctx, void *x, const int32_t *pos, int N, int n_heads,
                               int hd, int row_stride, const rope_freqs &inv_freq, float sign) {
    size_t total = (size_t)N * n_heads * (hd / 2);
    rope_kernel<T><<<cu_grid(total, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
        (T *)x, pos, N, n_heads, hd, row_stride, inv_freq, sign);
}

static void rope_launch(const rl_backend *be, void *x, const int32_t *pos, int N, int n_heads,
                        int hd, int row_stride, float theta, float sign) {
    if (N <= 0 || n_heads <= 0 || hd < 2) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    rope_freqs inv_freq;
    rl_rope_inv_freq(inv_freq.f, hd, theta);
    ACT_DISPATCH(be, rope_kernel_launch, ctx, x, pos, N, n_heads, hd, row_stride, inv_freq, sign);
    cudaLaunchCheck(ctx);
}

void rope_forward_cuda(const rl_backend *be, void *x, const int32_t *pos, int N, int n_heads,
                       int hd, int row_stride, float theta) {
    rope_launch(be, x, pos, N, n_heads, hd, row_stride, theta, 1.0f);
}

void rope_backward_cuda(const rl_backend *be, void *dx, const int32_t *pos, int N, int n_heads,
                        int hd, int row_stride, float theta) {
    rope_launch(be, dx, pos, N, n_heads, hd, row_stride, theta, -1.0f);
}

// ------------------------------------------------------------------------------------------------
// SwiGLU: out = silu(g) * u, silu(g) = g * sigmoid(g)

template <class T>
__global__ static void swiglu_forward_kernel(T *out, const T *gu, int N, int FF) {
    GRID_STRIDE(i, (size_t)N * FF) {
        size_t n = i / (size_t)FF, k = i % (size_t)FF;
        const T *g = gu + n * 2 * FF;
        float gv = to_float(g[k]);
        out[i] = from_float<T>(gv / (1.0f + expf(-gv)) * to_float(g[FF + k]));
    }
}

template <class T>
static void swiglu_forward_launch(rl_cuda_ctx *ctx, void *out, const void *gu, int N, int FF) {
    swiglu_forward_kernel<T>
        <<<cu_grid((size_t)N * FF, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
            (T *)out, (const T *)gu, N, FF);
}

void swiglu_forward_cuda(const rl_backend *be, void *out, const void *gu, int N, int FF) {
    if (N <= 0 || FF <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    ACT_DISPATCH(be, swiglu_forward_launch, ctx, out, gu, N, FF);
    cudaLaunchCheck(ctx);
}

template <class T>
__global__ static void swiglu_backward_kernel(T *dgu, const T *dout, const T *gu, int N, int FF) {
    GRID_STRIDE(i, (size_t)N * FF) {
        size_t n = i / (size_t)FF, k = i % (size_t)FF;
        const T *g = gu + n * 2 * FF;
        T *dg = dgu + n * 2 * FF;
        float gv = to_float(g[k]), u = to_float(g[FF + k]), d = to_float(dout[i]);
        float s = 1.0f / (1.0f + expf(-gv));
        float silu = gv * s;
        dg[k] = from_float<T>(d * u * (s + silu * (1.0f - s))); // d silu/dg = s (1 + g (1 - s))
        dg[FF + k] = from_float<T>(d * silu);
    }
}

template <class T>
static void swiglu_backward_launch(rl_cuda_ctx *ctx, void *dgu, const void *dout, const void *gu,
                                   int N, int FF) {
    swiglu_backward_kernel<T>
        <<<cu_grid((size_t)N * FF, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
            (T *)dgu, (const T *)dout, (const T *)gu, N, FF);
}

void swiglu_backward_cuda(const rl_backend *be, void *dgu, const void *dout, const void *gu, int N,
                          int FF) {
    if (N <= 0 || FF <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    ACT_DISPATCH(be, swiglu_backward_launch, ctx, dgu, dout, gu, N, FF);
    cudaLaunchCheck(ctx);
}

// ------------------------------------------------------------------------------------------------
// Residual add, row gather

template <class T>
__global__ static void residual_kernel(T *out, const T *a, const T *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
}

template <class T>
static void residual_launch(rl_cuda_ctx *ctx, void *out, const void *a, const void *b, size_t n) {
    residual_kernel<T><<<cu_grid(n, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
        (T *)out, (const T *)a, (const T *)b, n);
}

void residual_forward_cuda(const rl_backend *be, void *out, const void *a, const void *b,
                           size_t n) {
    if (n == 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    ACT_DISPATCH(be, residual_launch, ctx, out, a, b, n);
    cudaLaunchCheck(ctx);
}

template <class T>
__global__ static void gather_rows_kernel(T *out, const T *inp, const int32_t *rows, int n, int C) {
    GRID_STRIDE(i, (size_t)n * C) {
        size_t r = i / (size_t)C, c = i % (size_t)C;
        out[i] = inp[(size_t)rows[r] * C + c];
    }
}

template <class T>
static void gather_rows_launch(rl_cuda_ctx *ctx, void *out, const void *inp, const int32_t *rows,
                               int n, int C) {
    gather_rows_kernel<T>
        <<<cu_grid((size_t)n * C, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
            (T *)out, (const T *)inp, rows, n, C);
}

void gather_rows_cuda(const rl_backend *be, void *out, const void *inp, const int32_t *rows, int n,
                      int C) {
    if (n <= 0 || C <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    ACT_DISPATCH(be, gather_rows_launch, ctx, out, inp, rows, n, C);
    cudaLaunchCheck(ctx);
}

// ------------------------------------------------------------------------------------------------
// Type conversion: any pair of float32 / bfloat16, round to nearest even into bf16.

template <class D, class S> __global__ static void convert_kernel(D *dst, const S *src, size_t n) {
    GRID_STRIDE(i, n) dst[i] = from_float<D>(to_float(src[i]));
}

void convert_cuda(const rl_backend *be, void *dst, rl_dtype dst_dt, const void *src,
                  rl_dtype src_dt, size_t n) {
    if (n == 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    if (dst_dt == src_dt) {
        if (dst != src)
            cudaCheck(cudaMemcpyAsync(dst, src, n * rl_dtype_size(dst_dt), cudaMemcpyDeviceToDevice,
                                      ctx->stream));
        return;
    }
    unsigned grid = cu_grid(n, RL_CUDA_THREADS);
    if (dst_dt == RL_BF16)
        convert_kernel<bf16, float>
            <<<grid, RL_CUDA_THREADS, 0, ctx->stream>>>((bf16 *)dst, (const float *)src, n);
    else
        convert_kernel<float, bf16>
            <<<grid, RL_CUDA_THREADS, 0, ctx->stream>>>((float *)dst, (const bf16 *)src, n);
    cudaLaunchCheck(ctx);
}
