/*
 * emu/cuda_runtime.h: a CPU stand-in for the parts of the CUDA runtime API and of CUDA C++'s
 * device language that kernels/cuda/ uses, so that the kernels' logic (indexing, formulas, warp
 * shuffles, barriers, the backend's memory discipline) can be run and tested on a machine
 * without a GPU. Never part of a real build: only kernels/cuda/emu/check.sh puts this folder on
 * the include path.
 *
 * Model: a launch runs its blocks one after another; the threads of a block are cooperative
 * fibers that switch only at __syncthreads, __syncwarp and shuffles (so races that need real
 * concurrency are NOT found here). __shared__ becomes a function-local static, shared by the
 * block's fibers. Device memory is mapped PROT_NONE outside kernels and copies, so host code
 * that dereferences backend memory crashes.
 *
 * Stream capture (CUDA graphs): between cudaStreamBeginCapture and cudaStreamEndCapture,
 * launches, copies, fills and cuBLAS calls are recorded instead of run; cudaGraphLaunch replays
 * the record in order with the arguments captured (pointers, not the data behind them: new
 * inputs written into the same buffers are what the replay reads, as on a GPU). Host code run
 * between the recorded calls is not part of the graph, as on a GPU. Pinned host memory
 * (cudaHostAlloc) is plain host memory; events are always complete (the emulation is
 * synchronous).
 *
 * Owns: nothing (declarations; emu.cpp holds the state of the emulation).
 */
#ifndef RL_EMU_CUDA_RUNTIME_H
#define RL_EMU_CUDA_RUNTIME_H

#include <functional>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__      static
#define __launch_bounds__(...)

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

const dim3 &emu_thread_idx();
int emu_lane();
extern dim3 emu_block_idx, emu_block_dim, emu_grid_dim;
#define threadIdx (emu_thread_idx())
#define blockIdx  (emu_block_idx)
#define blockDim  (emu_block_dim)
#define gridDim   (emu_grid_dim)

// kernel<<<grid, block, smem, stream>>>(args) is rewritten (launch_rewrite.py) into
// emu_launch(kernel, dim3(grid), dim3(block), smem, [=]() { kernel(args); }). `smem` bytes of
// dynamic shared memory (extern __shared__, rewritten into emu_dynamic_smem()) are given to each
// block, filled with 0xff bytes (NaN floats) so that reading what nobody wrote shows; above
// 48 KiB the launch needs cudaFuncSetAttribute(kernel, MaxDynamicSharedMemorySize) first, as on
// a GPU, and never more than an sm_90 block may have (227 KiB).
void emu_launch_key(const void *kernel, dim3 grid, dim3 block, size_t smem,
                    std::function<void()> body);
template <class F>
void emu_launch(F kernel, dim3 grid, dim3 block, size_t smem, std::function<void()> body) {
    emu_launch_key(reinterpret_cast<const void *>(kernel), grid, block, smem, body);
}
// The block's dynamic shared memory (256-byte aligned).
void *emu_dynamic_smem();
void emu_syncthreads();
void emu_syncwarp();
// Every lane of the warp publishes `size` bytes at v and receives lane src_lane's into out.
void emu_exchange(const void *v, size_t size, int src_lane, void *out);

// Atomic add (a fiber switches only at barriers, so a plain read-modify-write is atomic here).
template <class T> T atomicAdd(T *address, T value) {
    T old = *address;
    *address = old + value;
    return old;
}

#define __syncthreads() emu_syncthreads()
#define __syncwarp()    emu_syncwarp()

template <class T> T __shfl_xor_sync(unsigned, T v, int mask) {
    T r;
    emu_exchange(&v, sizeof v, emu_lane() ^ mask, &r);
    return r;
}

template <class T> T __shfl_sync(unsigned, T v, int src) {
    T r;
    emu_exchange(&v, sizeof v, src % 32, &r);
    return r;
}

static inline int min(int a, int b) {
    return a < b ? a : b;
}
static inline int max(int a, int b) {
    return a > b ? a : b;
}

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorNoDevice = 100,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901
} cudaError_t;
typedef void *cudaStream_t;
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
#define cudaStreamNonBlocking 1
struct cudaDeviceProp {
    char name[256];
    int major, minor;
};

const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaMalloc(void **p, size_t bytes);
template <class T> cudaError_t cudaMalloc(T **p, size_t bytes) {
    return cudaMalloc((void **)p, bytes);
}
cudaError_t cudaFree(void *p);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);

// Pinned host memory and events
#define cudaHostAllocDefault   0
#define cudaEventDisableTiming 2
typedef struct emu_event *cudaEvent_t;
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned flags);
template <class T> cudaError_t cudaHostAlloc(T **p, size_t bytes, unsigned flags) {
    return cudaHostAlloc((void **)p, bytes, flags);
}
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventDestroy(cudaEvent_t e);

// Stream capture and graphs
enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2
};
typedef struct emu_graph *cudaGraph_t;
typedef struct emu_graph *cudaGraphExec_t;
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long flags);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
// Runs `work` now, or records it when a capture is on (for emulated library calls).
void emu_enqueue(std::function<void()> work);
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
cudaError_t emu_func_set_attribute(const void *kernel, cudaFuncAttribute attr, int value);
template <class F> cudaError_t cudaFuncSetAttribute(F kernel, cudaFuncAttribute attr, int value) {
    return emu_func_set_attribute(reinterpret_cast<const void *>(kernel), attr, value);
}

#endif
