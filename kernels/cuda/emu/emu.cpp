// emu: the CPU emulation of the CUDA runtime, device language and cuBLAS subset that
// kernels/cuda/ uses (declared in cuda_runtime.h, cublas_v2.h and cublasLt.h beside this file). A test aid
// for machines without a GPU, built only by check.sh.
//
// Launches: blocks run one after another; a block's threads are ucontext fibers run round-robin
// by a scheduler, each until it finishes or waits at a barrier (__syncthreads, __syncwarp, a
// shuffle). A thread that returns leaves its warp's and block's barriers, as an exited GPU thread
// does. Memory: every cudaMalloc block is its own mapping, PROT_NONE whenever no kernel, copy or
// cuBLAS call runs, so a host dereference of device memory is a segmentation fault; fresh blocks
// are filled with 0xff bytes (NaN floats), so reading memory nobody wrote shows.
#include "cublasLt.h"
#include "cublas_v2.h"
#include "cuda_bf16.h"

#include <map>
#include <memory>
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
static unsigned char exchange[1024][16];             // one slot per thread of the block
static unsigned char *dynamic_smem;                  // the running block's dynamic shared memory
static std::map<const void *, int> max_dynamic_smem; // cudaFuncSetAttribute, per kernel

// Dynamic shared memory without cudaFuncSetAttribute, and the most a block may ask for (sm_90).
static const size_t SMEM_DEFAULT = 48 * 1024, SMEM_MAX = 227 * 1024;

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

void *emu_dynamic_smem() {
    return dynamic_smem;
}

cudaError_t emu_func_set_attribute(const void *kernel, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
        (size_t)value > SMEM_MAX)
        return cudaErrorInvalidValue;
    max_dynamic_smem[kernel] = value;
    return cudaSuccess;
}

static void run_launch(const void *kernel, dim3 grid, dim3 block, size_t smem,
                       const std::function<void()> &body);

void emu_launch_key(const void *kernel, dim3 grid, dim3 block, size_t smem,
                    std::function<void()> body) {
    emu_enqueue([=]() { run_launch(kernel, grid, block, smem, body); });
}

static void run_launch(const void *kernel, dim3 grid, dim3 block, size_t smem,
                       const std::function<void()> &body) {
    DeviceAccess access;
    int n = (int)(block.x * block.y * block.z);
    if (n <= 0 || n > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 ||
        grid.z > 65535) {
        fprintf(stderr, "emu: bad launch: grid %u,%u,%u block %u,%u,%u\n", grid.x, grid.y, grid.z,
                block.x, block.y, block.z);
        abort();
    }
    if (smem > SMEM_DEFAULT) {
        auto it = max_dynamic_smem.find(kernel);
        if (smem > SMEM_MAX || it == max_dynamic_smem.end() || (size_t)it->second < smem) {
            fprintf(stderr,
                    "emu: bad launch: %zu bytes of dynamic shared memory (above 48 KiB needs "
                    "cudaFuncSetAttribute, at most %zu)\n",
                    smem, SMEM_MAX);
            abort();
        }
    }
    // 256-byte aligned, ending where the block's allocation ends (when smem is a multiple of 256)
    // so that AddressSanitizer sees accesses past it
    size_t smem_len = (smem + 255) / 256 * 256;
    std::unique_ptr<unsigned char, decltype(&free)> smem_buf(
        (unsigned char *)aligned_alloc(256, smem_len ? smem_len : 256), &free);
    unsigned char *smem_base = smem_buf.get();
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
                memset(smem_base, 0xff, smem);
                dynamic_smem = smem_base;
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
    dynamic_smem = nullptr;
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

// Element e of a column-major matrix of type t, as double.
static double load_elem(const void *p, cudaDataType_t t, size_t e) {
    if (t == CUDA_R_16BF) return __bfloat162float(((const __nv_bfloat16 *)p)[e]);
    return ((const float *)p)[e];
}

static void store_elem(void *p, cudaDataType_t t, size_t e, double x) {
    if (t == CUDA_R_16BF)
        ((__nv_bfloat16 *)p)[e] = __float2bfloat16((float)x);
    else
        ((float *)p)[e] = (float)x;
}

static int known_type(cudaDataType_t t) {
    return t == CUDA_R_32F || t == CUDA_R_16BF;
}

// D = alpha op(A) op(B) + beta C (+ bias[i]), column-major, double accumulation, one rounding to
// D's type; beta = 0 ignores C. C and D may be the same array (each element is read before it is
// written).
static void ref_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, double alpha,
                     const void *A, cudaDataType_t at, int lda, const void *B, cudaDataType_t bt,
                     int ldb, double beta, const void *C, void *D, cudaDataType_t ct, int ldc,
                     const void *bias, cudaDataType_t biast) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0.0;
            for (int l = 0; l < k; l++) {
                double a =
                    load_elem(A, at, ta == CUBLAS_OP_N ? i + (size_t)l * lda : l + (size_t)i * lda);
                double b =
                    load_elem(B, bt, tb == CUBLAS_OP_N ? l + (size_t)j * ldb : j + (size_t)l * ldb);
                s += a * b;
            }
            size_t e = i + (size_t)j * ldc;
            double r = alpha * s + (beta == 0.0 ? 0.0 : beta * load_elem(C, ct, e));
            if (bias) r += load_elem(bias, biast, (size_t)i);
            store_elem(D, ct, e, r);
        }
}

// cublasGemmEx for the type combinations cuBLAS supports with CUBLAS_COMPUTE_32F that the kernels
// use: A and B both float32 or both bf16, C float32 or bf16 (float32 A/B need a float32 C).
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType_t Atype,
                            int lda, const void *B, cudaDataType_t Btype, int ldb, const void *beta,
                            void *C, cudaDataType_t Ctype, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t algo) {
    if (m < 0 || n < 0 || k < 0 || lda < imax1(ta == CUBLAS_OP_N ? m : k) ||
        ldb < imax1(tb == CUBLAS_OP_N ? k : n) || ldc < imax1(m) || compute != CUBLAS_COMPUTE_32F ||
        Atype != Btype || !known_type(Atype) || !known_type(Ctype) ||
        (Atype == CUDA_R_32F && Ctype != CUDA_R_32F))
        return CUBLAS_STATUS_INVALID_VALUE;
    // queued like a kernel, so a stream capture records it (with its scalars' values now)
    float al = *(const float *)alpha, be = *(const float *)beta;
    emu_enqueue([=]() {
        DeviceAccess access;
        ref_gemm(ta, tb, m, n, k, al, A, Atype, lda, B, Btype, ldb, be, C, C, Ctype, ldc, NULL,
                 CUDA_R_32F);
    });
    return CUBLAS_STATUS_SUCCESS;
}

// ------------------------------------------------------------------------------------------------
// cuBLASLt

struct emu_lt {
    int unused;
};
static emu_lt the_lt;

struct emu_lt_desc {
    cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const void *bias = NULL;
    int bias_type = -1; // -1: D's type
};
struct emu_lt_layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};
struct emu_lt_pref {
    size_t workspace = 0;
    uint32_t align[4] = {256, 256, 256, 256}; // A, B, C, D: cuBLASLt's defaults
};

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = &the_lt;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute,
                                        cudaDataType_t scale_type) {
    if (compute != CUBLAS_COMPUTE_32F || scale_type != CUDA_R_32F)
        return CUBLAS_STATUS_INVALID_VALUE;
    *d = new emu_lt_desc;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}

template <class V> static int get_attr(V *out, const void *buf, size_t size) {
    if (size != sizeof(V)) return 0;
    memcpy(out, buf, sizeof(V));
    return 1;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d,
                                              cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t size) {
    int ok = 0;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
        ok = get_attr(&d->ta, buf, size);
        break;
    case CUBLASLT_MATMUL_DESC_TRANSB:
        ok = get_attr(&d->tb, buf, size);
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
        ok = get_attr(&d->epilogue, buf, size);
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        ok = get_attr(&d->bias, buf, size);
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: {
        cudaDataType_t t;
        ok = get_attr(&t, buf, size) && known_type(t);
        if (ok) d->bias_type = t;
        break;
    }
    }
    return ok ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
    if (!known_type(type) || ld < (int64_t)(rows > 1 ? rows : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    *l = new emu_lt_layout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = new emu_lt_pref;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t size) {
    int ok = 0;
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES)
        ok = get_attr(&p->workspace, buf, size);
    else if (attr >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES &&
             attr <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES)
        ok = get_attr(&p->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], buf, size);
    return ok ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

// The checks cuBLASLt makes before it runs a product: op(A) is m x k, op(B) k x n, C and D m x n
// of one type; A and B of one type (bf16 A/B may give a float32 or bf16 D; float32 A/B need
// float32 D); a bias epilogue needs a bias pointer.
static int lt_valid(const emu_lt_desc *d, const emu_lt_layout *a, const emu_lt_layout *b,
                    const emu_lt_layout *c, const emu_lt_layout *dd) {
    uint64_t m = dd->rows, n = dd->cols;
    uint64_t am = d->ta == CUBLAS_OP_N ? a->rows : a->cols,
             ak = d->ta == CUBLAS_OP_N ? a->cols : a->rows;
    uint64_t bk = d->tb == CUBLAS_OP_N ? b->rows : b->cols,
             bn = d->tb == CUBLAS_OP_N ? b->cols : b->rows;
    return am == m && bn == n && ak == bk && c->rows == m && c->cols == n && c->type == dd->type &&
           c->ld == dd->ld && a->type == b->type &&
           (a->type == CUDA_R_16BF || dd->type == CUDA_R_32F) &&
           (d->epilogue == CUBLASLT_EPILOGUE_DEFAULT ||
            (d->epilogue == CUBLASLT_EPILOGUE_BIAS && d->bias));
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dd,
                                              cublasLtMatmulPreference_t p, int requested,
                                              cublasLtMatmulHeuristicResult_t *results,
                                              int *returned) {
    if (requested < 1 || !lt_valid(d, a, b, c, dd)) return CUBLAS_STATUS_INVALID_VALUE;
    const char *no_algo = getenv("EMU_LT_NO_ALGO");
    *returned = no_algo && *no_algo == '1' ? 0 : 1;
    memset(results, 0, sizeof *results);
    results->algo.data[0] = 0xa160u; // marks an algorithm returned by this heuristic
    for (int i = 0; i < 4; i++) results->algo.data[1 + i] = p->align[i]; // what it relies on
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t a, const void *B,
                              cublasLtMatrixLayout_t b, const void *beta, const void *C,
                              cublasLtMatrixLayout_t c, void *D, cublasLtMatrixLayout_t dd,
                              const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspace_bytes, cudaStream_t stream) {
    if (!lt_valid(d, a, b, c, dd) || !algo || algo->data[0] != 0xa160u)
        return CUBLAS_STATUS_INVALID_VALUE;
    const void *ptrs[4] = {A, B, C, D};
    for (int i = 0; i < 4; i++) // a real GPU faults on a misaligned vector access
        if ((uintptr_t)ptrs[i] % algo->data[1 + i] != 0) {
            fprintf(stderr,
                    "emu: cublasLtMatmul: operand %c at %p is not %u-byte aligned, as "
                    "the heuristic was told\n",
                    "ABCD"[i], ptrs[i], (unsigned)algo -> data[1 + i]);
            return CUBLAS_STATUS_INVALID_VALUE;
        }
    if (d->epilogue == CUBLASLT_EPILOGUE_BIAS && (uintptr_t)d->bias % 16 != 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    int m = (int)dd->rows, n = (int)dd->cols;
    int k = (int)(d->ta == CUBLAS_OP_N ? a->cols : a->rows);
    const void *bias = d->epilogue == CUBLASLT_EPILOGUE_BIAS ? d->bias : NULL;
    cudaDataType_t bias_type = d->bias_type < 0 ? dd->type : (cudaDataType_t)d->bias_type;
    // queued like a kernel, so a stream capture records it: the descriptors' contents and the
    // scalars are read now (as cuBLASLt does), the operands when it runs
    cublasOperation_t ta = d->ta, tb = d->tb;
    cudaDataType_t at = a->type, bt = b->type, dt = dd->type;
    int lda = (int)a->ld, ldb = (int)b->ld, ldd = (int)dd->ld;
    float al = *(const float *)alpha, be = *(const float *)beta;
    emu_enqueue([=]() {
        DeviceAccess access;
        ref_gemm(ta, tb, m, n, k, al, A, at, lda, B, bt, ldb, be, C, D, dt, ldd, bias, bias_type);
    });
    return CUBLAS_STATUS_SUCCESS;
}
