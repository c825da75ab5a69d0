/*
 * cuda_common: what the CUDA sources of kernels/cuda/ share (CUDA C++ only, never included from
 * C): the backend context, the error-check macros, the act element types (float / bf16) and
 * their conversions, launch-size helpers and warp / block reductions.
 *
 * The context (rl_cuda_ctx, behind rl_backend.ctx) holds everything a CUDA backend owns: device
 * index, stream, cuBLAS and cuBLASLt handles and workspace, the sum-of-squares partials. There is
 * no global mutable state: every operation reaches its context through the backend it is given.
 *
 * Error rule. A function that returns a status (rl_backend_cuda_open) turns CUDA and cuBLAS
 * failures into an rl_err. Every other function (the operations and the memory functions have
 * void signatures, like their CPU twins) checks each call with cudaCheck / cublasCheck, which
 * print "rlpipe: CUDA error at file:line: call: message" and exit(1): a failed kernel or copy
 * leaves device state that no caller can repair, as llm.c does. Kernel launches are checked with
 * cudaLaunchCheck(ctx) right after the launch (launch-configuration errors); errors raised while
 * a kernel runs surface at the next synchronising call, or right away with $RLPIPE_CUDA_SYNC=1.
 *
 * Owns: nothing (the context type is defined here, created and released in backend_cuda.cu).
 */
#ifndef RL_CUDA_COMMON_H
#define RL_CUDA_COMMON_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/cuda/kernels_cuda.h"

// Blocks of the sum-of-squares reduction: a fixed number, so the summation order depends only
// on n (kernels/kernels.h requires it), as the CPU's 256 chunks.
#define RL_CUDA_SUMSQ_BLOCKS 256

typedef struct rl_cuda_ctx {
    int device;             // CUDA device index
    int tf32;               // cuBLAS may use TF32 tensor ops for float32 products
    int sync_check;         // $RLPIPE_CUDA_SYNC: synchronise and check after every launch
    cudaStream_t stream;    // every kernel, copy and cuBLAS call of this backend
    cublasHandle_t cublas;  // bound to stream and workspace
    cublasLtHandle_t lt;    // cuBLASLt: the bf16 products (same stream and workspace)
    void *workspace;        // [workspace_bytes] cuBLAS workspace (fixed: reproducible products)
    size_t workspace_bytes; //
    double *partials;       // [RL_CUDA_SUMSQ_BLOCKS] device: per-block sums of squares
    float *att_delta;       // [att_delta_n] device: flash attention backward's rowsum(dO * O),
    size_t att_delta_n;     //   grown on demand (flash_attention_cuda.cu)
    char name[256];         // device name, for messages
    // decode-step support (step_cuda.cu)
    int capturing;          // between graph_begin and graph_end
    void *stage_host;       // [stage_cap] pinned host staging buffer of mem_upload_staged
    void *stage_dev;        // [stage_cap] its device twin
    size_t stage_cap;       //
    cudaEvent_t stage_done; // recorded after the last staged copy (NULL before the first)
} rl_cuda_ctx;

// The backend calls that cannot be recorded into a graph (they wait for the stream, allocate,
// or return device results to the host) exit with this message during a capture.
void rl_cuda_not_capturable(const rl_cuda_ctx *ctx, const char *what);
// Frees the staging buffers and event of ctx (step_cuda.cu; called by the context's destroy).
void rl_cuda_step_release(rl_cuda_ctx *ctx);

static inline rl_cuda_ctx *cu_ctx(const rl_backend *be) {
    return (rl_cuda_ctx *)be->ctx;
}

// Print "rlpipe: CUDA error at file:line: what: message" and exit(1). (backend_cuda.cu)
void rl_cuda_die(const char *file, int line, const char *what, const char *message);
// cudaGetLastError after a launch; with ctx->sync_check also synchronise and check. (backend_cuda.cu)
void rl_cuda_launch_check(const rl_cuda_ctx *ctx, const char *file, int line);

#define cudaCheck(call)                                                                            \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) rl_cuda_die(__FILE__, __LINE__, #call, cudaGetErrorString(e_));     \
    } while (0)

#define cublasCheck(call)                                                                          \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                           \
            rl_cuda_die(__FILE__, __LINE__, #call, cublasGetStatusString(s_));                     \
    } while (0)

#define cudaLaunchCheck(ctx) rl_cuda_launch_check((ctx), __FILE__, __LINE__)

// ------------------------------------------------------------------------------------------------
// Element types. Kernels over weights and activations are templates over T = float or bf16 (the
// backend's act, rl_backend.act): storage in T, arithmetic in float. Loads widen with to_float,
// stores round to nearest even with from_float<T>. A host entry point picks the instance with
// ACT_DISPATCH.

typedef __nv_bfloat16 bf16;

static __host__ __device__ __forceinline__ float to_float(float x) {
    return x;
}
static __host__ __device__ __forceinline__ float to_float(bf16 x) {
    return __bfloat162float(x);
}

template <class T> static __host__ __device__ __forceinline__ T from_float(float x) {
    return x;
}
template <> __host__ __device__ __forceinline__ bf16 from_float<bf16>(float x) {
    return __float2bfloat16(x);
}

// fn<float>(args...) on a float32 backend, fn<bf16>(args...) on a bfloat16 one.
#define ACT_DISPATCH(be, fn, ...)                                                                  \
    ((be)->act == RL_BF16 ? fn<bf16>(__VA_ARGS__) : fn<float>(__VA_ARGS__))

// ------------------------------------------------------------------------------------------------
// Launch sizes

enum {
    RL_CUDA_THREADS = 256, // threads per block of the element-wise and row kernels
    RL_CUDA_WARPS = 4,     // warps per block of the warp-per-(row, head) attention kernels
    RL_CUDA_HD_LANES = RL_MAX_HEAD_DIM / 32, // head-dim elements each lane of a warp holds
};

// Blocks for a grid-stride loop over n elements (n > 0): enough to fill any current GPU, never
// more than the grid limit.
static inline unsigned cu_grid(size_t n, int threads) {
    size_t blocks = (n + (size_t)threads - 1) / (size_t)threads;
    const size_t cap = (size_t)1 << 20;
    return (unsigned)(blocks < cap ? blocks : cap);
}

// Blocks of `per_block` items for n items (n > 0); n / per_block must fit the x-dimension limit.
static inline unsigned cu_blocks(size_t n, int per_block) {
    return (unsigned)((n + (size_t)per_block - 1) / (size_t)per_block);
}

// ------------------------------------------------------------------------------------------------
// Reductions (every lane / thread of the warp / block must call them)

static __device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

static __device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

static __device__ __forceinline__ double warp_sum_d(double x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// Sum / max over the block (blockDim.x a multiple of 32, at most 1024); the result reaches every
// thread. `scratch` is 32 floats of shared memory; safe to call several times in a row.
static __device__ __forceinline__ float block_sum(float x, float *scratch) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    x = warp_sum(x);
    __syncthreads(); // an earlier call may still be reading scratch
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    x = lane < nw ? scratch[lane] : 0.0f;
    return warp_sum(x);
}

static __device__ __forceinline__ float block_max(float x, float *scratch) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    x = warp_max(x);
    __syncthreads();
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    x = lane < nw ? scratch[lane] : -INFINITY;
    return warp_max(x);
}

// The softmax sums of row x[n] at inverse temperature it > 0, over the block: *mz = max_k z_k,
// *S = sum_k exp(z_k - mz), *Sz = sum_k exp(z_k - mz) (z_k - mz) (0 unless want_entropy), with
// z = x * it. The log-prob and fused lm-head kernels share it, so their bits agree; every read of
// x happens before it returns (block barriers inside). Every thread gets the results.
static __device__ __forceinline__ void block_softmax_sums(const float *x, int n, float it,
                                                          int want_entropy, float *scratch,
                                                          float *mz, float *S, float *Sz) {
    float mx = -INFINITY;
    for (int k = threadIdx.x; k < n; k += blockDim.x) mx = fmaxf(mx, x[k]);
    mx = block_max(mx, scratch);
    float m = mx * it; // it > 0, so the max of z is at the max of x
    float s = 0.0f, sz = 0.0f;
    for (int k = threadIdx.x; k < n; k += blockDim.x) {
        float d = x[k] * it - m;
        float e = expf(d);
        s += e;
        sz += e * d;
    }
    *mz = m;
    *S = block_sum(s, scratch);
    *Sz = want_entropy ? block_sum(sz, scratch) : 0.0f;
}

#endif
