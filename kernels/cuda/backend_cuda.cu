// backend_cuda: the CUDA backend table, its context (device, stream, cuBLAS handle, workspace)
// and its memory functions. See kernels/cuda/kernels_cuda.h and kernels/backend.h.
//
// Memory: cudaMalloc blocks (256-byte aligned, zero-filled on the backend's stream). Copies are
// cudaMemcpyAsync on the stream; upload and download wait for the copy, so the host buffer may
// be reused (upload) or read (download) as soon as they return, whatever kind of host memory it
// is. Device-to-device copies and fills stay queued.
#include "kernels/cuda/cuda_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// cuBLAS workspace: a fixed block, so cuBLAS never allocates behind our back and picks the same
// algorithms run after run (llm.c uses 32 MiB: Hopper kernels want that much).
#define WORKSPACE_BYTES ((size_t)32 << 20)

// ------------------------------------------------------------------------------------------------
// Errors

void rl_cuda_die(const char *file, int line, const char *what, const char *message) {
    fprintf(stderr, "rlpipe: CUDA error at %s:%d: %s: %s\n", file, line, what, message);
    exit(1);
}

void rl_cuda_launch_check(const rl_cuda_ctx *ctx, const char *file, int line) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) rl_cuda_die(file, line, "kernel launch", cudaGetErrorString(e));
    if (ctx->sync_check && !ctx->capturing) {
        e = cudaStreamSynchronize(ctx->stream);
        if (e != cudaSuccess) rl_cuda_die(file, line, "kernel execution", cudaGetErrorString(e));
    }
}

// ------------------------------------------------------------------------------------------------
// Memory

static void *cuda_mem_alloc(const rl_backend *be, size_t bytes) {
    rl_cuda_ctx *ctx = cu_ctx(be);
    rl_cuda_not_capturable(ctx, "mem_alloc");
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, rounded);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        fprintf(stderr,
                "rlpipe: out of GPU memory allocating %zu bytes on %s (%s; %.1f of %.1f GiB "
                "free)\n",
                bytes, ctx->name, cudaGetErrorString(e), free_b / 1073741824.0,
                total_b / 1073741824.0);
        exit(1);
    }
    cudaCheck(cudaMemsetAsync(p, 0, rounded, ctx->stream));
    return p;
}

static void cuda_mem_free(const rl_backend *be, void *ptr) {
    if (!ptr) return;
    rl_cuda_not_capturable(cu_ctx(be), "mem_free");
    // queued work may still use the block
    cudaCheck(cudaStreamSynchronize(cu_ctx(be)->stream));
    cudaCheck(cudaFree(ptr));
}

static void cuda_mem_upload(const rl_backend *be, void *dst, const void *host_src, size_t bytes) {
    if (bytes == 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    rl_cuda_not_capturable(ctx, "mem_upload");
    cudaCheck(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, ctx->stream));
    cudaCheck(cudaStreamSynchronize(ctx->stream));
}

static void cuda_mem_download(const rl_backend *be, void *host_dst, const void *src, size_t bytes) {
    if (bytes == 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    rl_cuda_not_capturable(ctx, "mem_download");
    cudaCheck(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream));
    cudaCheck(cudaStreamSynchronize(ctx->stream));
}

// memmove semantics, as the CPU backend: overlapping ranges go through a temporary block
// (cudaMemcpy does not promise anything for overlapping ranges). No hot path copies overlap.
static void cuda_mem_copy(const rl_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes == 0 || dst == src) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    const char *d = (const char *)dst, *s = (const char *)src;
    if (d < s + bytes && s < d + bytes) {
        void *tmp = cuda_mem_alloc(be, bytes);
        cudaCheck(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
        cudaCheck(cudaMemcpyAsync(dst, tmp, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
        cuda_mem_free(be, tmp);
        return;
    }
    cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
}

static void cuda_mem_zero(const rl_backend *be, void *dst, size_t bytes) {
    if (bytes == 0) return;
    cudaCheck(cudaMemsetAsync(dst, 0, bytes, cu_ctx(be)->stream));
}

static size_t cuda_mem_available(const rl_backend *be) {
    size_t free_bytes = 0, total = 0;
    cudaCheck(cudaSetDevice(cu_ctx(be)->device));
    cudaCheck(cudaMemGetInfo(&free_bytes, &total));
    return free_bytes;
}

static void cuda_synchronize(const rl_backend *be) {
    rl_cuda_not_capturable(cu_ctx(be), "synchronize");
    cudaCheck(cudaStreamSynchronize(cu_ctx(be)->stream));
}

// ------------------------------------------------------------------------------------------------
// Context

// Frees whatever parts of ctx exist (also a half-built one), then ctx itself.
static void destroy_ctx(rl_cuda_ctx *ctx) {
    if (!ctx) return;
    if (ctx->stream) cudaStreamSynchronize(ctx->stream);
    rl_cuda_step_release(ctx);
    if (ctx->lt) cublasLtDestroy(ctx->lt);
    if (ctx->cublas) cublasDestroy(ctx->cublas);
    if (ctx->workspace) cudaFree(ctx->workspace);
    if (ctx->partials) cudaFree(ctx->partials);
    if (ctx->att_delta) cudaFree(ctx->att_delta);
    if (ctx->stream) cudaStreamDestroy(ctx->stream);
    free(ctx);
}

static void cuda_release(const rl_backend *be) {
    destroy_ctx(cu_ctx(be));
    free((void *)be);
}

// Designated initializers in declaration order (C++20, accepted by nvcc's C++17 as an extension):
// several members share a type (upload / download / copy, scale / fill), so names, not
// positions, say which function goes where.
static const rl_backend CUDA_TABLE = {
    .name = "cuda",
    .is_host = 0,
    .act = RL_F32,
    .ctx = NULL, // set per instance
    .mem_alloc = cuda_mem_alloc,
    .mem_free = cuda_mem_free,
    .mem_upload = cuda_mem_upload,
    .mem_download = cuda_mem_download,
    .mem_copy = cuda_mem_copy,
    .mem_zero = cuda_mem_zero,
    .synchronize = cuda_synchronize,
    .mem_available = cuda_mem_available,
    .release = cuda_release,
    .gemm = gemm_cuda,
    .matmul_forward = matmul_forward_cuda,
    .matmul_rows = matmul_rows_cuda,
    .matmul_backward = matmul_backward_cuda,
    .embedding_forward = embedding_forward_cuda,
    .embedding_backward = embedding_backward_cuda,
    .rmsnorm_forward = rmsnorm_forward_cuda,
    .rmsnorm_backward = rmsnorm_backward_cuda,
    .rope_forward = rope_forward_cuda,
    .rope_backward = rope_backward_cuda,
    .swiglu_forward = swiglu_forward_cuda,
    .swiglu_backward = swiglu_backward_cuda,
    .residual_forward = residual_forward_cuda,
    .attention_forward = attention_forward_cuda,
    .attention_backward = attention_backward_cuda,
    .kv_store = kv_store_cuda,
    .attention_cached_forward = attention_cached_forward_cuda,
    .gather_rows = gather_rows_cuda,
    .convert = convert_cuda,
    .logprob_forward = logprob_forward_cuda,
    .logprob_backward = logprob_backward_cuda,
    .logsoftmax_forward = logsoftmax_forward_cuda,
    .adamw_update = adamw_update_cuda,
    .adamw_update_master = adamw_update_master_cuda,
    .sumsq = sumsq_cuda,
    .scale = scale_cuda,
    .fill = fill_cuda,
    .lm_head_logprob_forward = lm_head_logprob_forward_cuda,
    .lm_head_logprob_backward = lm_head_logprob_backward_cuda,
    .rmsnorm_residual_forward = rmsnorm_residual_forward_cuda,
    .sample = sample_cuda,
    .mem_upload_staged = cuda_mem_upload_staged,
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .graph_launch = cuda_graph_launch,
    .graph_free = cuda_graph_free,
};

// A failing CUDA / cuBLAS call while building the context: fill err, clean up, return NULL.
#define OPEN_TRY(call, kind_of_call, status_string)                                                \
    do {                                                                                           \
        auto s_ = (call);                                                                          \
        if (s_ != (kind_of_call)) {                                                                \
            rl_fail(err, RL_EINTERNAL, "device 'cuda': %s failed on %s: %s", #call, ctx->name,     \
                    status_string(s_));                                                            \
            destroy_ctx(ctx);                                                                      \
            return NULL;                                                                           \
        }                                                                                          \
    } while (0)
#define OPEN_CUDA(call)   OPEN_TRY(call, cudaSuccess, cudaGetErrorString)
#define OPEN_CUBLAS(call) OPEN_TRY(call, CUBLAS_STATUS_SUCCESS, cublasGetStatusString)

const rl_backend *rl_backend_cuda_open(int device, int tf32, rl_dtype act, rl_err *err) {
    if (act != RL_F32 && act != RL_BF16) {
        rl_fail(err, RL_EINPUT, "device 'cuda': unknown activation type %d", (int)act);
        return NULL;
    }
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        rl_fail(err, RL_EINPUT,
                "device 'cuda': no CUDA device: cudaGetDeviceCount returned %d (%s)", (int)e,
                e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        cudaGetLastError(); // clear it, so no later cudaGetLastError reports it again
        return NULL;
    }
    if (device < 0 || device >= count) {
        rl_fail(err, RL_EINPUT, "device 'cuda': device index %d outside [0, %d)", device, count);
        return NULL;
    }
    cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess) {
        rl_fail(err, RL_EINTERNAL, "device 'cuda': cudaGetDeviceProperties(%d): %s", device,
                cudaGetErrorString(e));
        return NULL;
    }
    if (prop.major < 8) {
        rl_fail(err, RL_EINPUT,
                "device 'cuda': %s has compute capability %d.%d; this build targets 8.0 and 9.0 "
                "(CMAKE_CUDA_ARCHITECTURES 80 90)",
                prop.name, prop.major, prop.minor);
        return NULL;
    }

    rl_cuda_ctx *ctx = (rl_cuda_ctx *)rl_calloc(1, sizeof *ctx);
    ctx->device = device;
    ctx->tf32 = tf32 != 0;
    const char *sync = getenv("RLPIPE_CUDA_SYNC");
    ctx->sync_check = sync && *sync && strcmp(sync, "0") != 0;
    snprintf(ctx->name, sizeof ctx->name, "%.200s (device %d, sm_%d%d)", prop.name, device,
             prop.major, prop.minor);
    OPEN_CUDA(cudaSetDevice(device));
    OPEN_CUDA(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
    OPEN_CUDA(cudaMalloc(&ctx->workspace, WORKSPACE_BYTES));
    ctx->workspace_bytes = WORKSPACE_BYTES;
    OPEN_CUDA(cudaMalloc((void **)&ctx->partials, RL_CUDA_SUMSQ_BLOCKS * sizeof(double)));
    OPEN_CUBLAS(cublasCreate(&ctx->cublas));
    OPEN_CUBLAS(cublasSetStream(ctx->cublas, ctx->stream));
    OPEN_CUBLAS(cublasSetWorkspace(ctx->cublas, ctx->workspace, ctx->workspace_bytes));
    OPEN_CUBLAS(cublasSetPointerMode(ctx->cublas, CUBLAS_POINTER_MODE_HOST));
    OPEN_CUBLAS(cublasSetAtomicsMode(ctx->cublas, CUBLAS_ATOMICS_NOT_ALLOWED));
    OPEN_CUBLAS(cublasSetMathMode(ctx->cublas,
                                  ctx->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    OPEN_CUBLAS(cublasLtCreate(&ctx->lt));

    rl_backend *be = (rl_backend *)rl_malloc(sizeof *be);
    *be = CUDA_TABLE;
    be->act = act;
    be->ctx = ctx;
    return be;
}

// The module's entry point, looked up by kernels/cuda_module.c after dlopen: the ABI stamp first
// (a module built from other sources is refused), then the same open as the static build's.
RL_CUDA_MODULE_EXPORT unsigned rl_cuda_module_abi(void) {
    return RL_BACKEND_ABI;
}

RL_CUDA_MODULE_EXPORT const rl_backend *rl_cuda_module_open(int device, int tf32, rl_dtype act,
                                                            rl_err *err) {
    return rl_backend_cuda_open(device, tf32, act, err);
}
