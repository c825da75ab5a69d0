// step_cuda: what a GPU decode step needs besides its kernels: one staged upload of the step's
// small inputs, and CUDA-graph capture and replay of a sequence of backend operations. See
// kernels/backend.h (mem_upload_staged, graph_begin .. graph_free).
//
// Staged upload: the parts are packed, behind a table of (destination, offset, size), into one
// pinned host buffer; one cudaMemcpyAsync moves it to a device twin and one kernel scatters the
// parts to their destinations (a block per part). The pinned buffer is reused by the next call
// once the event recorded after this copy has passed, so a call waits at most for the previous
// step's copy. It grows (freeing the old pair after a stream synchronisation) only when a call
// needs more room: in steady state nothing is allocated.
//
// Graphs: graph_begin starts a thread-local stream capture of the backend's stream; every op
// queued until graph_end becomes a node (kernels, cuBLAS calls, device copies and fills);
// graph_end instantiates it. cuBLAS is capturable here because its workspace is fixed
// (cublasSetWorkspace at open: it never allocates) and the pointer mode is host (alpha and
// beta are baked into the graph). Calls that would wait for the stream, allocate, or bring data
// to the host are refused during a capture with a message naming the call
// (rl_cuda_not_capturable), instead of the capture failing later without a name.
#include "kernels/cuda/cuda_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rl_cuda_not_capturable(const rl_cuda_ctx *ctx, const char *what) {
    if (!ctx->capturing) return;
    fprintf(stderr,
            "rlpipe: CUDA graph capture: %s cannot be captured (it waits for the stream, "
            "allocates or returns data to the host); call it before graph_begin or after "
            "graph_end\n",
            what);
    exit(1);
}

// ------------------------------------------------------------------------------------------------
// Staged upload

typedef struct stage_part {
    char *dst;
    unsigned long long offset, bytes; // of the part's bytes inside the staging buffer
} stage_part;

// Block p copies part p from the staging buffer to its destination.
__global__ static void scatter_kernel(const char *stage, int n) {
    const stage_part *parts = (const stage_part *)stage;
    stage_part pt = parts[blockIdx.x];
    const char *src = stage + pt.offset;
    for (unsigned long long i = threadIdx.x; i < pt.bytes; i += blockDim.x) pt.dst[i] = src[i];
}

static size_t round16(size_t x) {
    return (x + 15) / 16 * 16;
}

void rl_cuda_step_release(rl_cuda_ctx *ctx) {
    if (ctx->stage_host) cudaFreeHost(ctx->stage_host);
    if (ctx->stage_dev) cudaFree(ctx->stage_dev);
    if (ctx->stage_done) cudaEventDestroy(ctx->stage_done);
    ctx->stage_host = ctx->stage_dev = NULL;
    ctx->stage_cap = 0;
    ctx->stage_done = NULL;
}

void cuda_mem_upload_staged(const rl_backend *be, const rl_upload *parts, int n) {
    rl_cuda_ctx *ctx = cu_ctx(be);
    rl_cuda_not_capturable(ctx, "mem_upload_staged");
    if (n <= 0) return;
    if (n > RL_UPLOAD_MAX_PARTS) {
        fprintf(stderr, "rlpipe: mem_upload_staged: %d parts (at most %d)\n", n,
                RL_UPLOAD_MAX_PARTS);
        exit(1);
    }
    size_t total = round16((size_t)n * sizeof(stage_part));
    for (int i = 0; i < n; i++) total += round16(parts[i].bytes);
    if (total > ctx->stage_cap) {
        size_t cap = ctx->stage_cap ? ctx->stage_cap : 64 * 1024;
        while (cap < total) cap *= 2;
        cudaCheck(cudaStreamSynchronize(ctx->stream)); // the old buffers may still be read
        if (ctx->stage_host) cudaCheck(cudaFreeHost(ctx->stage_host));
        if (ctx->stage_dev) cudaCheck(cudaFree(ctx->stage_dev));
        ctx->stage_host = ctx->stage_dev = NULL;
        cudaCheck(cudaHostAlloc(&ctx->stage_host, cap, cudaHostAllocDefault));
        cudaCheck(cudaMalloc(&ctx->stage_dev, cap));
        ctx->stage_cap = cap;
        if (!ctx->stage_done)
            cudaCheck(cudaEventCreateWithFlags(&ctx->stage_done, cudaEventDisableTiming));
    } else {
        cudaCheck(cudaEventSynchronize(ctx->stage_done)); // the previous copy has left
    }
    char *h = (char *)ctx->stage_host;
    stage_part *table = (stage_part *)h;
    size_t at = round16((size_t)n * sizeof(stage_part));
    for (int i = 0; i < n; i++) {
        table[i].dst = (char *)parts[i].dst;
        table[i].offset = at;
        table[i].bytes = parts[i].bytes;
        if (parts[i].bytes) memcpy(h + at, parts[i].src, parts[i].bytes);
        at += round16(parts[i].bytes);
    }
    cudaCheck(cudaMemcpyAsync(ctx->stage_dev, ctx->stage_host, total, cudaMemcpyHostToDevice,
                              ctx->stream));
    scatter_kernel<<<n, RL_CUDA_THREADS, 0, ctx->stream>>>((const char *)ctx->stage_dev, n);
    cudaLaunchCheck(ctx);
    cudaCheck(cudaEventRecord(ctx->stage_done, ctx->stream));
}

// ------------------------------------------------------------------------------------------------
// Graphs

void cuda_graph_begin(const rl_backend *be) {
    rl_cuda_ctx *ctx = cu_ctx(be);
    if (ctx->capturing) {
        fprintf(stderr, "rlpipe: CUDA graph capture: graph_begin inside a capture\n");
        exit(1);
    }
    cudaCheck(cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal));
    ctx->capturing = 1;
}

rl_graph *cuda_graph_end(const rl_backend *be, rl_err *err) {
    rl_cuda_ctx *ctx = cu_ctx(be);
    if (!ctx->capturing) {
        rl_fail(err, RL_EINTERNAL, "CUDA graph capture: graph_end without graph_begin");
        return NULL;
    }
    ctx->capturing = 0;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(ctx->stream, &graph);
    if (e != cudaSuccess || !graph) {
        rl_fail(err, RL_EINTERNAL, "CUDA graph capture failed on %s: %s", ctx->name,
                cudaGetErrorString(e));
        cudaGetLastError();
        return NULL;
    }
    cudaGraphExec_t exec = NULL;
    e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        rl_fail(err, RL_EINTERNAL, "CUDA graph instantiation failed on %s: %s", ctx->name,
                cudaGetErrorString(e));
        cudaGetLastError();
        return NULL;
    }
    return (rl_graph *)exec;
}

void cuda_graph_launch(const rl_backend *be, rl_graph *g) {
    rl_cuda_ctx *ctx = cu_ctx(be);
    rl_cuda_not_capturable(ctx, "graph_launch");
    cudaCheck(cudaGraphLaunch((cudaGraphExec_t)g, ctx->stream));
    if (ctx->sync_check) cudaCheck(cudaStreamSynchronize(ctx->stream));
}

void cuda_graph_free(const rl_backend *be, rl_graph *g) {
    if (!g) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    rl_cuda_not_capturable(ctx, "graph_free");
    cudaCheck(cudaStreamSynchronize(ctx->stream)); // a launch may still run
    cudaCheck(cudaGraphExecDestroy((cudaGraphExec_t)g));
}
