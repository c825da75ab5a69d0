// Row-wise layers on the GPU: embedding, RMSNorm, RoPE, SwiGLU, residual add, row gather.
// Element-wise kernels use one thread per element (grid-stride loops); row reductions one warp
// per row. Gradients of shared weights (RMSNorm weight, embedding table) are reduced in a fixed
// order without atomics, so they are reproducible bit for bit. See kernels/kernels.h.
#include "kernels/cuda/cuda_common.h"

#define GRID_STRIDE(i, n)                                                                          \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                        \
         i += (size_t)gridDim.x * blockDim.x)

// Rows handled by one block of a warp-per-row kernel.
enum { ROWS_PER_BLOCK = RL_CUDA_THREADS / 32 };

// ------------------------------------------------------------------------------------------------
// Embedding

__global__ static void embedding_forward_kernel(float *out, const int32_t *tokens, const float *wte,
                                                int N, int C) {
    GRID_STRIDE(i, (size_t)N * C) {
        size_t n = i / (size_t)C, c = i % (size_t)C;
        int32_t tok = tokens[n];
        out[i] = tok < 0 ? 0.0f : wte[(size_t)tok * C + c];
    }
}

void embedding_forward_cuda(const rl_backend *be, float *out, const int32_t *tokens,
                            const float *wte, int N, int C) {
    if (N <= 0 || C <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    embedding_forward_kernel<<<cu_grid((size_t)N * C, RL_CUDA_THREADS), RL_CUDA_THREADS, 0,
                               ctx->stream>>>(out, tokens, wte, N, C);
    cudaLaunchCheck(ctx);
}

// dwte[tokens[n], c] += dout[n, c]. Two positions may share a token, so no thread owns a
// position: thread (c, bucket) owns column c of the table rows whose token id is congruent to
// `bucket` modulo EMB_BUCKETS, and walks all positions in order, adding those with its tokens.
// Every table element thus receives its additions in position order, as on the CPU (the same
// float additions in the same order: the same bits).
enum { EMB_BUCKETS = 32, EMB_TILE = 256 };

__global__ static void embedding_backward_kernel(float *dwte, const float *dout,
                                                 const int32_t *tokens, int N, int C) {
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
                dwte[(size_t)t * C + c] += dout[(size_t)(n0 + k) * C + c];
        }
    }
}

void embedding_backward_cuda(const rl_backend *be, float *dwte, const float *dout,
                             const int32_t *tokens, int N, int C) {
    if (N <= 0 || C <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    dim3 grid(cu_blocks((size_t)C, 128), EMB_BUCKETS);
    embedding_backward_kernel<<<grid, 128, 0, ctx->stream>>>(dwte, dout, tokens, N, C);
    cudaLaunchCheck(ctx);
}

// ------------------------------------------------------------------------------------------------
// RMSNorm

__global__ static void rmsnorm_forward_kernel(float *out, float *rstd, const float *inp,
                                              const float *weight, int N, int C, float eps) {
    int lane = threadIdx.x % 32;
    size_t row = (size_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32;
    if (row >= (size_t)N) return;
    const float *x = inp + row * C;
    float *o = out + row * C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32) ss += x[c] * x[c];
    ss = warp_sum(ss);
    float r = 1.0f / sqrtf(ss / (float)C + eps);
    for (int c = lane; c < C; c += 32) o[c] = weight[c] * (x[c] * r);
    if (rstd && lane == 0) rstd[row] = r;
}

void rmsnorm_forward_cuda(const rl_backend *be, float *out, float *rstd, const float *inp,
                          const float *weight, int N, int C, float eps) {
    if (N <= 0 || C <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    rmsnorm_forward_kernel<<<cu_blocks((size_t)N, ROWS_PER_BLOCK), RL_CUDA_THREADS, 0,
                             ctx->stream>>>(out, rstd, inp, weight, N, C, eps);
    cudaLaunchCheck(ctx);
}

// dx += r * (w*dy - x * k), k = r^2 * mean(w*dy*x): one warp per row.
__global__ static void rmsnorm_backward_dinp_kernel(float *dinp, const float *dout,
                                                    const float *inp, const float *weight,
                                                    const float *rstd, int N, int C) {
    int lane = threadIdx.x % 32;
    size_t row = (size_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32;
    if (row >= (size_t)N) return;
    const float *x = inp + row * C, *dy = dout + row * C;
    float *dx = dinp + row * C;
    float r = rstd[row], dot = 0.0f;
    for (int c = lane; c < C; c += 32) dot += weight[c] * dy[c] * x[c];
    dot = warp_sum(dot);
    float k = dot * r * r / (float)C;
    for (int c = lane; c < C; c += 32) dx[c] += r * (weight[c] * dy[c] - x[c] * k);
}

// dweight[c] += sum_n dy[n,c] * x[n,c] * r[n]: the fixed-order column reduction of
// matmul_cuda.cu's bias gradient (32 columns per block, COLSUM_ROWS row groups).
enum { COLSUM_ROWS = 16 };

__global__ static void rmsnorm_backward_dweight_kernel(float *dweight, const float *dout,
                                                       const float *inp, const float *rstd, int N,
                                                       int C) {
    __shared__ float part[COLSUM_ROWS][33];
    int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx;
    float acc = 0.0f;
    if (c < C)
        for (int n = ty; n < N; n += COLSUM_ROWS) {
            size_t at = (size_t)n * C + c;
            acc += dout[at] * (inp[at] * rstd[n]);
        }
    part[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && c < C) {
        float s = 0.0f;
        for (int k = 0; k < COLSUM_ROWS; k++) s += part[k][tx];
        dweight[c] += s;
    }
}

void rmsnorm_backward_cuda(const rl_backend *be, float *dinp, float *dweight, const float *dout,
                           const float *inp, const float *weight, const float *rstd, int N, int C) {
    if (N <= 0 || C <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    if (dinp) {
        rmsnorm_backward_dinp_kernel<<<cu_blocks((size_t)N, ROWS_PER_BLOCK), RL_CUDA_THREADS, 0,
                                       ctx->stream>>>(dinp, dout, inp, weight, rstd, N, C);
        cudaLaunchCheck(ctx);
    }
    if (dweight) {
        dim3 block(32, COLSUM_ROWS);
        rmsnorm_backward_dweight_kernel<<<cu_blocks((size_t)C, 32), block, 0, ctx->stream>>>(
            dweight, dout, inp, rstd, N, C);
        cudaLaunchCheck(ctx);
    }
}

// ------------------------------------------------------------------------------------------------
// RoPE: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin) at angle pos * inv_freq[i]; the backward
// flips the sign of sin. The inverse frequencies come from the host (rl_rope_inv_freq, the same
// float32 values the CPU uses) as a kernel argument.

typedef struct rope_freqs {
    float f[RL_MAX_HEAD_DIM / 2];
} rope_freqs;

__global__ static void rope_kernel(float *x, const int32_t *pos, int N, int n_heads, int hd,
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
        float *x1 = x + n * row_stride + (size_t)h * hd, *x2 = x1 + half;
        float a = x1[i], b = x2[i];
        x1[i] = a * c - b * s;
        x2[i] = b * c + a * s;
    }
}

static void rope_launch(const rl_backend *be, float *x, const int32_t *pos, int N, int n_heads,
                        int hd, int row_stride, float theta, float sign) {
    if (N <= 0 || n_heads <= 0 || hd < 2) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    rope_freqs inv_freq;
    rl_rope_inv_freq(inv_freq.f, hd, theta);
    size_t total = (size_t)N * n_heads * (hd / 2);
    rope_kernel<<<cu_grid(total, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
        x, pos, N, n_heads, hd, row_stride, inv_freq, sign);
    cudaLaunchCheck(ctx);
}

void rope_forward_cuda(const rl_backend *be, float *x, const int32_t *pos, int N, int n_heads,
                       int hd, int row_stride, float theta) {
    rope_launch(be, x, pos, N, n_heads, hd, row_stride, theta, 1.0f);
}

void rope_backward_cuda(const rl_backend *be, float *dx, const int32_t *pos, int N, int n_heads,
                        int hd, int row_stride, float theta) {
    rope_launch(be, dx, pos, N, n_heads, hd, row_stride, theta, -1.0f);
}

// ------------------------------------------------------------------------------------------------
// SwiGLU: out = silu(g) * u, silu(g) = g * sigmoid(g)

__global__ static void swiglu_forward_kernel(float *out, const float *gu, int N, int FF) {
    GRID_STRIDE(i, (size_t)N * FF) {
        size_t n = i / (size_t)FF, k = i % (size_t)FF;
        const float *g = gu + n * 2 * FF;
        float gv = g[k];
        out[i] = gv / (1.0f + expf(-gv)) * g[FF + k];
    }
}

void swiglu_forward_cuda(const rl_backend *be, float *out, const float *gu, int N, int FF) {
    if (N <= 0 || FF <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    swiglu_forward_kernel<<<cu_grid((size_t)N * FF, RL_CUDA_THREADS), RL_CUDA_THREADS, 0,
                            ctx->stream>>>(out, gu, N, FF);
    cudaLaunchCheck(ctx);
}

__global__ static void swiglu_backward_kernel(float *dgu, const float *dout, const float *gu, int N,
                                              int FF) {
    GRID_STRIDE(i, (size_t)N * FF) {
        size_t n = i / (size_t)FF, k = i % (size_t)FF;
        const float *g = gu + n * 2 * FF;
        float *dg = dgu + n * 2 * FF;
        float gv = g[k], u = g[FF + k], d = dout[i];
        float s = 1.0f / (1.0f + expf(-gv));
        float silu = gv * s;
        dg[k] = d * u * (s + silu * (1.0f - s)); // d silu/dg = s (1 + g (1 - s))
        dg[FF + k] = d * silu;
    }
}

void swiglu_backward_cuda(const rl_backend *be, float *dgu, const float *dout, const float *gu,
                          int N, int FF) {
    if (N <= 0 || FF <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    swiglu_backward_kernel<<<cu_grid((size_t)N * FF, RL_CUDA_THREADS), RL_CUDA_THREADS, 0,
                             ctx->stream>>>(dgu, dout, gu, N, FF);
    cudaLaunchCheck(ctx);
}

// ------------------------------------------------------------------------------------------------
// Residual add, row gather

__global__ static void residual_kernel(float *out, const float *a, const float *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

void residual_forward_cuda(const rl_backend *be, float *out, const float *a, const float *b,
                           size_t n) {
    if (n == 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    residual_kernel<<<cu_grid(n, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(out, a, b, n);
    cudaLaunchCheck(ctx);
}

__global__ static void gather_rows_kernel(float *out, const float *inp, const int32_t *rows, int n,
                                          int C) {
    GRID_STRIDE(i, (size_t)n * C) {
        size_t r = i / (size_t)C, c = i % (size_t)C;
        out[i] = inp[(size_t)rows[r] * C + c];
    }
}

void gather_rows_cuda(const rl_backend *be, float *out, const float *inp, const int32_t *rows,
                      int n, int C) {
    if (n <= 0 || C <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    gather_rows_kernel<<<cu_grid((size_t)n * C, RL_CUDA_THREADS), RL_CUDA_THREADS, 0,
                         ctx->stream>>>(out, inp, rows, n, C);
    cudaLaunchCheck(ctx);
}
