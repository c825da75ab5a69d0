// backend: the CPU table, backend selection by name, release. See backend.h.
#define _POSIX_C_SOURCE 200809L
#include "kernels/backend.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ------------------------------------------------------------------------------------------------
// CPU memory: host memory, 64-byte aligned (one cache line, one AVX-512 vector).

static void *cpu_mem_alloc(const rl_backend *be, size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    void *p = aligned_alloc(64, rounded);
    if (!p) {
        fprintf(stderr, "rlpipe: out of memory allocating %zu bytes\n", bytes);
        exit(1);
    }
    memset(p, 0, rounded);
    return p;
}

static void cpu_mem_free(const rl_backend *be, void *ptr) {
    free(ptr);
}

static void cpu_mem_copy(const rl_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) memmove(dst, src, bytes);
}

static void cpu_mem_zero(const rl_backend *be, void *dst, size_t bytes) {
    if (bytes) memset(dst, 0, bytes);
}

static void cpu_synchronize(const rl_backend *be) {}

static void cpu_mem_upload_staged(const rl_backend *be, const rl_upload *parts, int n) {
    for (int i = 0; i < n; i++)
        if (parts[i].bytes) memcpy(parts[i].dst, parts[i].src, parts[i].bytes);
}

static const rl_backend CPU_BACKEND = {
    .name = "cpu",
    .is_host = 1,
    .act = RL_F32,
    .ctx = NULL,
    .mem_alloc = cpu_mem_alloc,
    .mem_free = cpu_mem_free,
    .mem_upload = cpu_mem_copy,
    .mem_download = cpu_mem_copy,
    .mem_copy = cpu_mem_copy,
    .mem_zero = cpu_mem_zero,
    .synchronize = cpu_synchronize,
    .release = NULL,
    .gemm = gemm_cpu,
    .matmul_forward = matmul_forward_cpu,
    .matmul_rows = matmul_rows_cpu,
    .matmul_backward = matmul_backward_cpu,
    .embedding_forward = embedding_forward_cpu,
    .embedding_backward = embedding_backward_cpu,
    .rmsnorm_forward = rmsnorm_forward_cpu,
    .rmsnorm_backward = rmsnorm_backward_cpu,
    .rope_forward = rope_forward_cpu,
    .rope_backward = rope_backward_cpu,
    .swiglu_forward = swiglu_forward_cpu,
    .swiglu_backward = swiglu_backward_cpu,
    .residual_forward = residual_forward_cpu,
    .attention_forward = attention_forward_cpu,
    .attention_backward = attention_backward_cpu,
    .kv_store = kv_store_cpu,
    .attention_cached_forward = attention_cached_forward_cpu,
    .gather_rows = gather_rows_cpu,
    .convert = convert_cpu,
    .logprob_forward = logprob_forward_cpu,
    .logprob_backward = logprob_backward_cpu,
    .logsoftmax_forward = logsoftmax_forward_cpu,
    .adamw_update = adamw_update_cpu,
    .adamw_update_master = adamw_update_master_cpu,
    .sumsq = sumsq_cpu,
    .scale = scale_cpu,
    .fill = fill_cpu,
    .lm_head_logprob_forward = lm_head_logprob_forward_cpu,
    .lm_head_logprob_backward = lm_head_logprob_backward_cpu,
    .rmsnorm_residual_forward = rmsnorm_residual_forward_cpu,
    .sample = sample_cpu,
    .mem_upload_staged = cpu_mem_upload_staged,
    .graph_begin = NULL,
    .graph_end = NULL,
    .graph_launch = NULL,
    .graph_free = NULL,
};

const rl_backend *rl_backend_cpu(void) {
    return &CPU_BACKEND;
}

#ifndef RLPIPE_HAVE_CUDA_BACKEND
// Built without the CUDA backend. With it, kernels/cuda_module.c (the dlopen loader) or, in the
// emulator build, kernels/cuda/backend_cuda.cu itself defines this function.
const rl_backend *rl_backend_cuda_open(int device, int tf32, rl_dtype act, rl_err *err) {
    rl_fail(err, RL_EINPUT, "device 'cuda': this rlpipe was built without CUDA support");
    return NULL;
}
#endif

// A device index or switch from the environment: unset or empty gives def; anything but a small
// non-negative integer is bad input.
static int env_int(const char *name, int def, int *out, rl_err *err) {
    const char *s = getenv(name);
    *out = def;
    if (!s || !*s) return 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < 0 || v > 1 << 20)
        return rl_fail(err, RL_EINPUT, "device 'cuda': %s=%s is not a non-negative integer", name,
                       s);
    *out = (int)v;
    return 0;
}

const rl_backend *rl_backend_cuda(rl_err *err) {
    return rl_backend_cuda_act(RL_F32, err);
}

const rl_backend *rl_backend_cuda_act(rl_dtype act, rl_err *err) {
    int device, tf32;
    if (env_int("RLPIPE_CUDA_DEVICE", 0, &device, err) ||
        env_int("RLPIPE_CUDA_TF32", 0, &tf32, err))
        return NULL;
    return rl_backend_cuda_open(device, tf32, act, err);
}

const rl_backend *rl_backend_get(const char *name, rl_err *err) {
    if (name && strcmp(name, "cpu") == 0) return rl_backend_cpu();
    if (name && strcmp(name, "cuda") == 0) return rl_backend_cuda(err);
    rl_fail(err, RL_EINPUT, "unknown device '%s' (expected cpu or cuda)", name ? name : "(null)");
    return NULL;
}

// ---- the counting wrapper

static void *counted_alloc(const rl_backend *be, size_t bytes) {
    rl_mem_counter *c = (rl_mem_counter *)be; // be is &c->be, the first member
    void *p = c->real->mem_alloc(c->real, bytes);
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->ptr = rl_realloc(c->ptr, c->cap * sizeof *c->ptr);
        c->bytes = rl_realloc(c->bytes, c->cap * sizeof *c->bytes);
    }
    c->ptr[c->n] = p, c->bytes[c->n++] = bytes;
    c->live += (double)bytes;
    if (c->live > c->peak) c->peak = c->live;
    return p;
}

static void counted_free(const rl_backend *be, void *p) {
    rl_mem_counter *c = (rl_mem_counter *)be;
    if (!p) return;
    for (size_t i = 0; i < c->n; i++)
        if (c->ptr[i] == p) {
            c->live -= (double)c->bytes[i];
            c->ptr[i] = c->ptr[--c->n], c->bytes[i] = c->bytes[c->n];
            break;
        }
    c->real->mem_free(c->real, p);
}

void rl_mem_counter_init(rl_mem_counter *c, const rl_backend *real) {
    memset(c, 0, sizeof *c);
    c->be = *real;
    c->be.mem_alloc = counted_alloc;
    c->be.mem_free = counted_free;
    c->real = real;
}

void rl_mem_counter_release(rl_mem_counter *c) {
    free(c->ptr);
    free(c->bytes);
    c->ptr = NULL, c->bytes = NULL, c->n = c->cap = 0;
}

void rl_backend_release(const rl_backend *be) {
    if (be && be->release) be->release(be);
}

void rl_backend_cpu_describe(char *buf, size_t size) {
    const char *wait = getenv("OMP_WAIT_POLICY");
    snprintf(buf, size, "cpu: %d OpenMP threads (OMP_WAIT_POLICY=%s), OpenBLAS %s, %s",
             omp_get_max_threads(), wait ? wait : "unset", openblas_get_config(),
             openblas_get_parallel() == 2 ? "OpenMP-threaded" : "pthread/serial");
}
