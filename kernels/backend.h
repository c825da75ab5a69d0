/*
 * backend: one table of operations per compute device, chosen once at start-up from run.device.
 *
 * The model, the optimizer and the rollout engine call only through this table and never touch
 * device memory directly: memory comes from mem_alloc in a few large blocks (parameters,
 * gradients, Adam moments, activations, KV cache), and crosses to and from the host only through
 * mem_upload / mem_download. Every operation has the signature of its function type in
 * kernels/kernels.h and takes the backend itself as first argument.
 *
 *     rl_err err;
 *     const rl_backend *be = rl_backend_get("cpu", &err);
 *     float *x = be->mem_alloc(be, n * sizeof(float));
 *     be->mem_upload(be, x, host, n * sizeof(float));
 *     be->rmsnorm_forward(be, out, rstd, x, w, N, C, 1e-6f);
 *     ...
 *     rl_backend_release(be);
 *
 * The CPU backend is a constant table (no state at all); host pointers are its device pointers.
 * A CUDA backend keeps its stream, cuBLAS handle and workspace behind ctx. A backend value is
 * used by one host thread at a time.
 *
 * CPU threads: OpenMP (OMP_NUM_THREADS). OpenBLAS is its OpenMP build, so sgemm and the kernels'
 * loops share one libgomp pool and never oversubscribe each other. libgomp spin-waits between
 * parallel regions by default, the fastest choice on a dedicated machine; on a machine shared
 * with other busy processes set OMP_WAIT_POLICY=passive before starting (see bench_model).
 *
 * Owns: the CPU table is a constant; a CUDA backend owns its context until rl_backend_release.
 */
#ifndef RL_BACKEND_H
#define RL_BACKEND_H

#include "kernels/kernels.h"
#include "kernels/rl_error.h"

// One host array for mem_upload_staged: bytes from host src to backend dst.
typedef struct rl_upload {
    void *dst;       // backend memory
    const void *src; // host memory
    size_t bytes;
} rl_upload;

// A captured sequence of operations (a CUDA graph), replayable with graph_launch.
typedef struct rl_graph rl_graph;

struct rl_backend {
    const char *name; // "cpu" or "cuda"
    int is_host;      // 1: backend memory is host memory (device pointers are host pointers)
    rl_dtype act;     // element type of weights and activations (kernels.h); RL_F32 on the CPU
    void *ctx;        // backend-private state (NULL for the CPU backend)

    // ---- memory
    // Zero-filled, 64-byte aligned block; out of memory prints and exits 1, like rl_malloc.
    void *(*mem_alloc)(const rl_backend *be, size_t bytes);
    void (*mem_free)(const rl_backend *be, void *ptr); // NULL is fine
    void (*mem_upload)(const rl_backend *be, void *dst, const void *host_src, size_t bytes);
    void (*mem_download)(const rl_backend *be, void *host_dst, const void *src, size_t bytes);
    void (*mem_copy)(const rl_backend *be, void *dst, const void *src, size_t bytes);
    void (*mem_zero)(const rl_backend *be, void *dst, size_t bytes);
    // Waits for every queued operation (timings; a no-op on the CPU).
    void (*synchronize)(const rl_backend *be);
    // Device memory not in use now, in bytes (sizes the KV cache like vLLM's
    // gpu_memory_utilization); NULL where memory is the host's (the CPU backend).
    size_t (*mem_available)(const rl_backend *be);
    // Releases ctx (NULL when there is nothing to release). Called by rl_backend_release.
    void (*release)(const rl_backend *be);

    // ---- operations (kernels/kernels.h documents each)
    rl_gemm_fn *gemm;
    rl_matmul_forward_fn *matmul_forward;
    rl_matmul_rows_fn *matmul_rows; // NULL where the backend cannot promise batch invariance
    rl_matmul_backward_fn *matmul_backward;
    rl_embedding_forward_fn *embedding_forward;
    rl_embedding_backward_fn *embedding_backward;
    rl_rmsnorm_forward_fn *rmsnorm_forward;
    rl_rmsnorm_backward_fn *rmsnorm_backward;
    rl_rope_forward_fn *rope_forward;
    rl_rope_backward_fn *rope_backward;
    rl_swiglu_forward_fn *swiglu_forward;
    rl_swiglu_backward_fn *swiglu_backward;
    rl_residual_forward_fn *residual_forward;
    rl_attention_forward_fn *attention_forward;
    rl_attention_backward_fn *attention_backward;
    rl_kv_store_fn *kv_store;
    rl_attention_cached_forward_fn *attention_cached_forward;
    rl_gather_rows_fn *gather_rows;
    rl_convert_fn *convert;
    rl_logprob_forward_fn *logprob_forward;
    rl_logprob_backward_fn *logprob_backward;
    rl_logsoftmax_forward_fn *logsoftmax_forward;
    rl_adamw_update_fn *adamw_update;
    rl_adamw_update_master_fn *adamw_update_master;
    rl_sumsq_fn *sumsq;
    rl_scale_fn *scale;
    rl_fill_fn *fill;

    // ---- optional fused ops (may be NULL: callers then compose the ops above)
    rl_lm_head_logprob_forward_fn *lm_head_logprob_forward;
    rl_lm_head_logprob_backward_fn *lm_head_logprob_backward;
    rl_rmsnorm_residual_forward_fn *rmsnorm_residual_forward;
    // ---- decode-step support (appended: the layout above is unchanged)
    rl_sample_fn *sample; // one token per row, the logits stay here (kernels.h)

    // Uploads several small host arrays (a decode step's tokens, positions, block tables, random
    // streams, sampling parameters) in ONE transfer: CUDA packs them into a pinned staging buffer,
    // queues one host-to-device copy and one scatter kernel; the CPU copies each. Returns as soon
    // as the host arrays may be reused; the copies are ordered before every later operation.
    // At most RL_UPLOAD_MAX_PARTS parts; dst ranges must not overlap one another.
    void (*mem_upload_staged)(const rl_backend *be, const rl_upload *parts, int n);

    // Graph capture (CUDA graphs; all four NULL on the CPU, which has nothing to gain): between
    // graph_begin and graph_end the backend's operations are recorded instead of run;
    // graph_launch replays them with the same arguments (the same buffers: write new inputs into
    // them, e.g. with mem_upload_staged, before each launch). Capturable: every op except sumsq
    // (cuBLAS products included: the workspace is fixed), mem_copy of non-overlapping ranges,
    // mem_zero. Not capturable (the call exits with a message naming it): mem_alloc, mem_free,
    // mem_upload, mem_download, mem_upload_staged, synchronize, sumsq, graph_launch.
    // graph_end returns NULL with err set when the capture failed (the stream is usable again).
    // A graph may be launched any number of times and freed once (graph_free waits for it).
    void (*graph_begin)(const rl_backend *be);
    rl_graph *(*graph_end)(const rl_backend *be, rl_err *err);
    void (*graph_launch)(const rl_backend *be, rl_graph *g); // queued, like any op
    void (*graph_free)(const rl_backend *be, rl_graph *g);   // NULL is fine
};

// Most parts one mem_upload_staged call takes.
#define RL_UPLOAD_MAX_PARTS 16

// Stamp of this table's layout, compared when the CUDA module is loaded: a module built from
// other sources (a stale librlpipe_cuda.so next to a newer rlpipe) is refused, not called.
// Bump the version when an operation's meaning changes without changing the table's size.
#define RL_BACKEND_ABI ((unsigned)(sizeof(struct rl_backend) << 8 | 1u))

// The CPU backend (OpenBLAS + OpenMP). Always available; a constant table.
const rl_backend *rl_backend_cpu(void);

// The CUDA backend on device `device` (index among the visible devices), whose weights and
// activations are of type act (RL_F32 or RL_BF16), with TF32 tensor-op
// math for matrix products when tf32 != 0 (faster, ~1e-3 relative error; off by default because
// the parity tests compare float32 results to ~1e-5), or NULL with a message in err: RL_EINPUT
// when rlpipe was built without CUDA, the CUDA module cannot be loaded, there is no such device
// or its compute capability is below 8.0; RL_EINTERNAL when the stream, cuBLAS handle or
// workspace cannot be created. Release it with rl_backend_release.
//
// Loading: the CUDA kernels, the CUDA runtime and cuBLAS live in a separate module,
// librlpipe_cuda.so, opened with dlopen on the first call, so a process that never asks for
// a GPU (rlpipe --help, rlpipe verify used as a reward function) never loads them (~220 MB and
// ~0.2 s). kernels/cuda_module.c says where the module is looked for ($RLPIPE_CUDA_MODULE
// first). The emulator build (kernels/cuda/emu) links the kernels in statically instead.
const rl_backend *rl_backend_cuda_open(int device, int tf32, rl_dtype act, rl_err *err);

// rl_backend_cuda_open(device, tf32, RL_F32) with the device from $RLPIPE_CUDA_DEVICE (default 0;
// CUDA_VISIBLE_DEVICES selects which GPUs are visible) and tf32 from $RLPIPE_CUDA_TF32 (1 = on;
// default off); anything but a small non-negative integer there is RL_EINPUT.
// $RLPIPE_CUDA_SYNC=1 makes every operation wait for its kernels and check them (slow; pins an
// asynchronous error to the op that caused it).
const rl_backend *rl_backend_cuda(rl_err *err);

// rl_backend_cuda with weights and activations of type act (run.precision).
const rl_backend *rl_backend_cuda_act(rl_dtype act, rl_err *err);

// The backend named "cpu" or "cuda" (RL_EINPUT for another name or an unavailable backend).
const rl_backend *rl_backend_get(const char *name, rl_err *err);

// Releases a backend obtained above (NULL is fine). Memory from it must be freed before.
void rl_backend_release(const rl_backend *be);

// A backend that is another one with its allocations counted, for benchmarks and tests that
// measure peak memory: `be` is the real backend's table with mem_alloc / mem_free wrapped, so
// every operation still runs on the real context. Pass &counter->be wherever a backend is
// wanted; live and peak are bytes allocated through it (set peak = live to start a new peak).
typedef struct rl_mem_counter {
    rl_backend be; // first member: the wrapped functions find their counter from it
    const rl_backend *real;
    void **ptr;    // [n] live blocks
    size_t *bytes; // [n] their sizes
    size_t n, cap; //
    double live, peak;
} rl_mem_counter;

void rl_mem_counter_init(rl_mem_counter *c, const rl_backend *real);
// Frees the counter's bookkeeping (neither the real backend nor blocks still live).
void rl_mem_counter_release(rl_mem_counter *c);

// A one-line description of how the CPU kernels run (OpenMP threads, OpenBLAS configuration),
// for logs and benchmarks. Host function; writes at most size bytes.
void rl_backend_cpu_describe(char *buf, size_t size);

#endif
