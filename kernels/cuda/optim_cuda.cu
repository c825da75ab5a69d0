// AdamW (plain, and the mixed-precision variant that keeps a float32 master and writes the act
// working copy, bf16 by stochastic rounding) and the flat-vector helpers (sum of squares, scale,
// fill) on the GPU. See kernels/kernels.h for the contracts.
#include "kernels/bf16.h"
#include "kernels/cuda/cuda_common.h"

#define GRID_STRIDE(i, n)                                                                          \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                        \
         i += (size_t)gridDim.x * blockDim.x)

// One AdamW step of one element, the same float operations in the same order as the CPU's
// adamw_step (kernels/cpu/optim_cpu.c). bc1, bc2: the bias corrections 1 - beta^step, computed
// on the host in double as the CPU does.
static __device__ __forceinline__ float adamw_step(float p, float grad, float *m, float *v,
                                                   float lr, float beta1, float beta2, float eps,
                                                   float weight_decay, float grad_scale, float bc1,
                                                   float bc2) {
    float g = grad * grad_scale;
    float mi = beta1 * *m + (1.0f - beta1) * g;
    float vi = beta2 * *v + (1.0f - beta2) * g * g;
    *m = mi;
    *v = vi;
    float mhat = mi / bc1, vhat = vi / bc2;
    return p - lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p);
}

__global__ static void adamw_kernel(float *param, const float *grad, float *m, float *v, size_t n,
                                    float lr, float beta1, float beta2, float eps,
                                    float weight_decay, float grad_scale, float bc1, float bc2) {
    GRID_STRIDE(i, n) {
        param[i] = adamw_step(param[i], grad[i], m + i, v + i, lr, beta1, beta2, eps, weight_decay,
                              grad_scale, bc1, bc2);
    }
}

// The step on the float32 master, then the working copy: a copy (float) or the stochastic
// rounding of kernels/bf16.h (bf16), whose random word depends only on (seed, i).
static __device__ __forceinline__ void store_working(float *param, size_t i, float x, uint64_t) {
    param[i] = x;
}
static __device__ __forceinline__ void store_working(bf16 *param, size_t i, float x,
                                                     uint64_t seed) {
    uint16_t bits = rl_bf16_stochastic(x, seed, (uint64_t)i);
    memcpy(param + i, &bits, sizeof bits);
}

template <class T>
__global__ static void adamw_master_kernel(float *master, T *param, const float *grad, float *m,
                                           float *v, size_t n, float lr, float beta1, float beta2,
                                           float eps, float weight_decay, float grad_scale,
                                           float bc1, float bc2, uint64_t seed) {
    GRID_STRIDE(i, n) {
        float p = adamw_step(master[i], grad[i], m + i, v + i, lr, beta1, beta2, eps, weight_decay,
                             grad_scale, bc1, bc2);
        master[i] = p;
        store_working(param, i, p, seed);
    }
}

void adamw_update_cuda(const rl_backend *be, float *param, const float *grad, float *m, float *v,
                       size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                       float grad_scale, int step) {
    if (n == 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    float bc1 = (float)(1.0 - pow((double)beta1, (double)step));
    float bc2 = (float)(1.0 - pow((double)beta2, (double)step));
    adamw_kernel<<<cu_grid(n, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
        param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale, bc1, bc2);
    cudaLaunchCheck(ctx);
}

template <class T>
static void adamw_master_launch(rl_cuda_ctx *ctx, float *master, void *param, const float *grad,
                                float *m, float *v, size_t n, float lr, float beta1, float beta2,
                                float eps, float weight_decay, float grad_scale, float bc1,
                                float bc2, uint64_t seed) {
    adamw_master_kernel<T><<<cu_grid(n, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
        master, (T *)param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale, bc1,
        bc2, seed);
}

void adamw_update_master_cuda(const rl_backend *be, float *master, void *param, const float *grad,
                              float *m, float *v, size_t n, float lr, float beta1, float beta2,
                              float eps, float weight_decay, float grad_scale, int step,
                              uint64_t seed) {
    if (n == 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    float bc1 = (float)(1.0 - pow((double)beta1, (double)step));
    float bc2 = (float)(1.0 - pow((double)beta2, (double)step));
    ACT_DISPATCH(be, adamw_master_launch, ctx, master, param, grad, m, v, n, lr, beta1, beta2, eps,
                 weight_decay, grad_scale, bc1, bc2, seed);
    cudaLaunchCheck(ctx);
}

// Sum of squares in a fixed order: block c of RL_CUDA_SUMSQ_BLOCKS sums the contiguous chunk
// [c*len, (c+1)*len) in double (each thread a strided subset, then a fixed shuffle / shared
// memory tree), and the host adds the partials in block order. Thread and block counts are
// constants, so the bits depend only on n and x.
enum { SUMSQ_THREADS = 256 };

__global__ static void sumsq_kernel(double *partials, const float *x, size_t n, size_t len) {
    __shared__ double warp_part[SUMSQ_THREADS / 32];
    size_t i0 = (size_t)blockIdx.x * len, i1 = i0 + len < n ? i0 + len : n;
    double s = 0.0;
    for (size_t i = i0 + threadIdx.x; i < i1; i += SUMSQ_THREADS) s += (double)x[i] * (double)x[i];
    s = warp_sum_d(s);
    if (threadIdx.x % 32 == 0) warp_part[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int w = 0; w < SUMSQ_THREADS / 32; w++) total += warp_part[w];
        partials[blockIdx.x] = total;
    }
}

double sumsq_cuda(const rl_backend *be, const float *x, size_t n) {
    if (n == 0) return 0.0;
    rl_cuda_ctx *ctx = cu_ctx(be);
    rl_cuda_not_capturable(ctx, "sumsq");
    size_t len = (n + RL_CUDA_SUMSQ_BLOCKS - 1) / RL_CUDA_SUMSQ_BLOCKS;
    sumsq_kernel<<<RL_CUDA_SUMSQ_BLOCKS, SUMSQ_THREADS, 0, ctx->stream>>>(ctx->partials, x, n, len);
    cudaLaunchCheck(ctx);
    double part[RL_CUDA_SUMSQ_BLOCKS];
    cudaCheck(
        cudaMemcpyAsync(part, ctx->partials, sizeof part, cudaMemcpyDeviceToHost, ctx->stream));
    cudaCheck(cudaStreamSynchronize(ctx->stream));
    double total = 0.0;
    for (int c = 0; c < RL_CUDA_SUMSQ_BLOCKS; c++) total += part[c];
    return total;
}

__global__ static void scale_kernel(float *x, float s, size_t n) {
    GRID_STRIDE(i, n) x[i] *= s;
}

void scale_cuda(const rl_backend *be, float *x, float s, size_t n) {
    if (n == 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    scale_kernel<<<cu_grid(n, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(x, s, n);
    cudaLaunchCheck(ctx);
}

__global__ static void fill_kernel(float *x, float value, size_t n) {
    GRID_STRIDE(i, n) x[i] = value;
}

void fill_cuda(const rl_backend *be, float *x, float value, size_t n) {
    if (n == 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    fill_kernel<<<cu_grid(n, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(x, value, n);
    cudaLaunchCheck(ctx);
}
