// emu: the CPU emulation of the CUDA runtime, device language and cuBLAS subset that
// kernels/cuda/ uses (declared in cuda_runtime.h and cublas_v2.h beside this file). A test aid
// for machines without a GPU, built only by check.sh.
//
// Launches: blocks run one after another; a block's threads are ucontext fibers run round-robin
// by a scheduler, each until it finishes or waits at a barrier (__syncthreads, __syncwarp, a
// shuffle). A thread that returns leaves its warp's and block's barriers, as an exited GPU thread
// does. Memory: every cudaMalloc block is its own mapping, PROT_NONE whenever no kernel, copy or
// cuBLAS call runs, so a host dereference of device memory is a segmentation fault; fresh blocks
// are filled with 0xff bytes (NaN floats), so reading memory nobody wrote shows.
#include "cublas_v2.h"

#include <map>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <vector>

dim3 emu_block_idx, emu_block_dim, emu_grid_dim;

// ------------------------------------------------------------------------------------------------
// Device memory protection

static std::map<void *, size_t> buffers; // mapping -> length
static int open_depth = 0;

static void protect_all(int prot) {
    for (auto &b : buffers) mprotect(b.first, b.second, prot);
}

// Device memory is readable and writable while one of these lives.
struct DeviceAccess {
    DeviceAccess() {
        if (open_depth++ == 0) protect_all(PROT_READ | PROT_WRITE);
    }
    ~DeviceAccess() {
        if (--open_depth == 0) protect_all(PROT_NONE);
    }
};

// ------------------------------------------------------------------------------------------------
// Fibers and barriers

struct Barrier {
    int expected = 0, count = 0, generation = 0;
};

struct Fiber {
    ucontext_t ctx;
    dim3 tid;
    int linear = 0, done = 0;
};

static const size_t STACK_BYTES = 128 * 1024;
static std::vector<Fiber> fibers;
static std::vector<char *> stacks;
static Fiber *current;
static ucontext_t scheduler;
static std::function<void()> *body_now;
static Barrier block_barrier;
static std::vector<Barrier> warp_barriers;
static unsigned char exchange[1024][16]; // one slot per thread of the block

static int warp_lanes(int warp, int threads) {
    int left = threads - 32 * warp;
    return left < 32 ? left : 32;
}

const dim3 &emu_thread_idx() {
    return current->tid;
}

int emu_lane() {
    return current->linear % 32;
}

static void yield_to_scheduler() {
    swapcontext(&current->ctx, &scheduler);
}

static void barrier_wait(Barrier &b) {
    int gen = b.generation;
    if (++b.count == b.expected) {
        b.count = 0;
        b.generation++;
        return;
    }
    while (b.generation == gen) yield_to_scheduler();
}

// A finished thread no longer counts; if the others were only waiting for it, they go on.
static void barrier_leave(Barrier &b) {
    b.expected--;
    if (b.count > 0 && b.count == b.expected) {
        b.count = 0;
        b.generation++;
    }
}

void emu_syncthreads() {
    barrier_wait(block_barrier);
}

void emu_syncwarp() {
    barrier_wait(warp_barriers[current->linear / 32]);
}

void emu_exchange(const void *v, size_t size, int src_lane, void *out) {
    int warp = current->linear / 32;
    if (src_lane >= warp_lanes(warp, (int)fibers.size())) {
        fprintf(stderr, "emu: shuffle from a lane the warp does not have\n");
        abort();
    }
    memcpy(exchange[current->linear], v, size);
    barrier_wait(warp_barriers[warp]); // every lane has published
    memcpy(out, exchange[warp * 32 + src_lane], size);
    barrier_wait(warp_barriers[warp]); // every lane has read before anyone publishes again
}

static void fiber_main() {
    (*body_now)();
    current->done = 1;
    barrier_leave(block_barrier);
    barrier_leave(warp_barriers[current->linear / 32]);
    swapcontext(&current->ctx, &scheduler);
}

// ------------------------------------------------------------------------------------------------
// Stream capture: a graph is the list of the calls recorded while capturing.

struct emu_graph {
    std::vector<std::function<void()>> calls;
};
static emu_graph *capture = NULL; // the graph being recorded, if any
static int sync_in_capture = 0;   // a synchronising call happened during the capture

void emu_enqueue(std::function<void()> work) {
    if (capture)
        capture->calls.push_back(std::move(work));
    else
        work();
}

static void run_launch(dim3 grid, dim3 block, const std::function<void()> &body);

void emu_launch(dim3 grid, dim3 block, std::function<void()> body) {
    emu_enqueue([=]() { run_launch(grid, block, body); });
}

static void run_launch(dim3 grid, dim3 block, const std::function<void()> &body) {
    DeviceAccess access;
    int n = (int)(block.x * block.y * block.z);
    if (n <= 0 || n > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 ||
        grid.z > 65535) {
        fprintf(stderr, "emu: bad launch: grid %u,%u,%u block %u,%u,%u\n", grid.x, grid.y, grid.z,
                block.x, block.y, block.z);
        abort();
    }
    while ((int)stacks.size() < n) stacks.push_back((char *)malloc(STACK_BYTES));
    emu_grid_dim = grid;
    emu_block_dim = block;
    std::function<void()> body_copy = body; // a replay may launch while another runs
    body_now = &body_copy;
    fibers.assign((size_t)n, Fiber());
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                emu_block_idx = dim3(bx, by, bz);
                block_barrier = Barrier();
                block_barrier.expected = n;
                warp_barriers.assign((size_t)(n + 31) / 32, Barrier());
                for (size_t w = 0; w < warp_barriers.size(); w++)
                    warp_barriers[w].expected = warp_lanes((int)w, n);
                for (int i = 0; i < n; i++) {
                    Fiber &f = fibers[i];
                    f.linear = i;
                    f.done = 0;
                    f.tid = dim3(i % block.x, (i / block.x) % block.y, i / (block.x * block.y));
                    getcontext(&f.ctx);
                    f.ctx.uc_stack.ss_sp = stacks[i];
                    f.ctx.uc_stack.ss_size = STACK_BYTES;
                    f.ctx.uc_link = &scheduler;
                    makecontext(&f.ctx, fiber_main, 0);
                }
                for (int live = n; live > 0;) {
                    live = 0;
                    for (int i = 0; i < n; i++) {
                        if (fibers[i].done) continue;
                        current = &fibers[i];
                        swapcontext(&scheduler, &current->ctx);
                        if (!fibers[i].done) live++;
                    }
                }
            }
}

// ------------------------------------------------------------------------------------------------
// Runtime API: one emulated device (compute capability 9.0), synchronous streams

const char *cudaGetErrorString(cudaError_t e) {
    return e == cudaSuccess ? "no error" : "emulated error";
}

cudaError_t cudaGetLastError(void) {
    return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device) {
    snprintf(p->name, sizeof p->name, "CPU emulation");
    p->major = 9;
    p->minor = 0;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    *s = (void *)1;
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s) {
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (capture) {
        sync_in_capture = 1;
        return cudaErrorStreamCaptureUnsupported;
    }
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes) {
    size_t len = (bytes + 4095) / 4096 * 4096;
    if (len == 0) len = 4096;
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return cudaErrorMemoryAllocation;
    memset(m, 0xff, len);
    if (open_depth == 0) mprotect(m, len, PROT_NONE);
    buffers[m] = len;
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
    auto it = buffers.find(p);
    if (it == buffers.end()) {
        fprintf(stderr, "emu: cudaFree of a pointer cudaMalloc did not return\n");
        abort();
    }
    munmap(p, it->second);
    buffers.erase(it);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s) {
    emu_enqueue([=]() {
        DeviceAccess access;
        memset(p, value, bytes);
    });
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s) {
    const char *d = (const char *)dst, *r = (const char *)src;
    if (d != r && d < r + bytes && r < d + bytes) {
        fprintf(stderr, "emu: cudaMemcpy between overlapping ranges\n");
        abort();
    }
    if (capture && kind == cudaMemcpyDeviceToHost) { // a GPU cannot capture a download either
        sync_in_capture = 1;
        return cudaErrorStreamCaptureUnsupported;
    }
    emu_enqueue([=]() {
        DeviceAccess access;
        memcpy(dst, src, bytes);
    });
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = *total_bytes = 0;
    return cudaSuccess;
}

cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned flags) {
    if (capture) return cudaErrorStreamCaptureUnsupported;
    *p = malloc(bytes ? bytes : 1);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFreeHost(void *p) {
    free(p);
    return cudaSuccess;
}

struct emu_event {
    int unused;
};

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
    *e = new emu_event();
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    return capture ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
    if (capture) return cudaErrorStreamCaptureUnsupported;
    capture = new emu_graph();
    sync_in_capture = 0;
    return cudaSuccess;
}

// As on a GPU, a capture that met a synchronising call is invalid: no graph.
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) {
    emu_graph *done = capture;
    capture = NULL;
    *g = NULL;
    if (!done) return cudaErrorStreamCaptureInvalidated;
    if (sync_in_capture) {
        delete done;
        return cudaErrorStreamCaptureInvalidated;
    }
    *g = done;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long flags) {
    *exec = new emu_graph(*g);
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
    if (capture) return cudaErrorStreamCaptureUnsupported;
    for (auto &call : exec->calls) call();
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;
    return cudaSuccess;
}

// ------------------------------------------------------------------------------------------------
// cuBLAS

struct emu_cublas {
    int unused;
};
static emu_cublas the_handle;

const char *cublasGetStatusString(cublasStatus_t s) {
    return s == CUBLAS_STATUS_SUCCESS ? "success" : "invalid value";
}
cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = &the_handle;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes) {
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetPointerMode(cublasHandle_t h, cublasPointerMode_t mode) {
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetAtomicsMode(cublasHandle_t h, cublasAtomicsMode_t mode) {
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
    return CUBLAS_STATUS_SUCCESS;
}

static int imax1(int a) {
    return a > 1 ? a : 1;
}

// C = alpha op(A) op(B) + beta C, column-major; beta = 0 ignores C (NaN included), as cuBLAS.
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float *alpha, const float *A, int lda,
                           const float *B, int ldb, const float *beta, float *C, int ldc) {
    if (capture) { // recorded with its scalars (host pointer mode: their values at the call)
        float a = *alpha, b = *beta;
        capture->calls.push_back([=]() {
            emu_graph *saved = capture;
            capture = NULL;
            cublasSgemm(h, ta, tb, m, n, k, &a, A, lda, B, ldb, &b, C, ldc);
            capture = saved;
        });
        return CUBLAS_STATUS_SUCCESS;
    }
    DeviceAccess access;
    if (m < 0 || n < 0 || k < 0 || lda < imax1(ta == CUBLAS_OP_N ? m : k) ||
        ldb < imax1(tb == CUBLAS_OP_N ? k : n) || ldc < imax1(m))
        return CUBLAS_STATUS_INVALID_VALUE;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0.0;
            for (int l = 0; l < k; l++) {
                double a = ta == CUBLAS_OP_N ? A[i + (size_t)l * lda] : A[l + (size_t)i * lda];
                double b = tb == CUBLAS_OP_N ? B[l + (size_t)j * ldb] : B[j + (size_t)l * ldb];
                s += a * b;
            }
            float *c = C + i + (size_t)j * ldc;
            *c = (float)(*alpha * s + (*beta == 0.0f ? 0.0 : (double)*beta * *c));
        }
    return CUBLAS_STATUS_SUCCESS;
}
