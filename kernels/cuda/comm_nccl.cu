// comm_nccl: the NCCL communicator (kernels/comm.h) for CUDA backends: the float collectives run
// on the backend's stream over device memory; host reductions, broadcasts, gathers and barriers
// go to the MPI communicator it was bootstrapped from. As llm.c's zero.cuh does, rank 0 makes
// the NCCL unique id and MPI broadcasts it; each rank then joins on the GPU of its backend (the
// one its local rank picked, see cli/run.c).
//
// Precision: parameter gradients and master weights are float32 (kernels/kernels.h), so the
// reductions are float32 sums (ncclFloat). NCCL's summation order is its own (ring or tree), so
// results match the MPI path only to float32 reassociation.
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_common.h"

extern "C" {
#include "kernels/comm.h"
}

extern "C" RL_CUDA_MODULE_EXPORT int
rl_cuda_module_nccl_open(const rl_comm *host, const rl_backend *be, rl_comm **out, rl_err *err);

typedef struct nccl_ctx {
    ncclComm_t comm;
    cudaStream_t stream; // the backend's: collectives are ordered with its kernels
    int device;
} nccl_ctx;

static nccl_ctx *ctx_of(const rl_comm *c) {
    return (nccl_ctx *)c->ctx;
}

static int nccl_check(ncclResult_t r, const char *what, rl_err *err) {
    if (r == ncclSuccess) return 0;
    return rl_fail(err, RL_EINTERNAL, "NCCL %s failed: %s", what, ncclGetErrorString(r));
}

static int nccl_all_reduce(const rl_comm *c, float *buf, size_t n, rl_err *err) {
    nccl_ctx *x = ctx_of(c);
    return nccl_check(ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, x->comm, x->stream),
                      "all-reduce", err);
}

static int nccl_reduce_scatter(const rl_comm *c, const float *send, float *recv, size_t shard,
                               rl_err *err) {
    nccl_ctx *x = ctx_of(c);
    return nccl_check(ncclReduceScatter(send, recv, shard, ncclFloat, ncclSum, x->comm, x->stream),
                      "reduce-scatter", err);
}

static int nccl_all_gather(const rl_comm *c, const float *send, float *recv, size_t shard,
                           rl_err *err) {
    nccl_ctx *x = ctx_of(c);
    // In place when send is this rank's block of recv (NCCL allows exactly that).
    return nccl_check(ncclAllGather(send, recv, shard, ncclFloat, x->comm, x->stream), "all-gather",
                      err);
}

// Host work: the MPI communicator's (after the stream's device work, so that a host reduction of
// numbers computed on the device never races them).
static int host_f64(const rl_comm *c, double *v, int n, rl_err *err) {
    return c->host->all_reduce_f64(c->host, v, n, err);
}

static int host_i64(const rl_comm *c, int64_t *v, int n, rl_err *err) {
    return c->host->all_reduce_i64(c->host, v, n, err);
}

static int host_broadcast(const rl_comm *c, void *buf, size_t bytes, int root, rl_err *err) {
    return c->host->broadcast(c->host, buf, bytes, root, err);
}

static int host_gather(const rl_comm *c, const void *send, size_t bytes, void **out, size_t *sizes,
                       rl_err *err) {
    return c->host->gather_bytes(c->host, send, bytes, out, sizes, err);
}

static int host_barrier(const rl_comm *c, rl_err *err) {
    cudaCheck(cudaStreamSynchronize(ctx_of(c)->stream));
    return c->host->barrier(c->host, err);
}

static void nccl_release(rl_comm *c, int exit_code) {
    nccl_ctx *x = ctx_of(c);
    rl_comm *host = (rl_comm *)c->host;
    if (exit_code == 0) {
        cudaStreamSynchronize(x->stream);
        ncclCommDestroy(x->comm);
    } else
        ncclCommAbort(x->comm); // peers may be stuck in a collective
    free(x);
    free(c);
    host->release(host, exit_code);
}

extern "C" int rl_cuda_module_nccl_open(const rl_comm *host, const rl_backend *be, rl_comm **out,
                                        rl_err *err) {
    *out = NULL;
    if (be->is_host) return rl_fail(err, RL_EINTERNAL, "NCCL needs a CUDA backend");
    rl_cuda_ctx *cc = cu_ctx(be);
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (host->rank == 0 && nccl_check(ncclGetUniqueId(&id), "unique id", err)) return -1;
    RL_TRY(host->broadcast(host, &id, sizeof id, 0, err));
    cudaCheck(cudaSetDevice(cc->device));
    nccl_ctx *x = (nccl_ctx *)rl_calloc(1, sizeof *x);
    x->stream = cc->stream;
    x->device = cc->device;
    if (nccl_check(ncclCommInitRank(&x->comm, host->world, id, host->rank), "init", err)) {
        free(x);
        return rl_err_prefix(err, "rank %d (GPU %d): ", host->rank, cc->device);
    }
    rl_comm *c = (rl_comm *)rl_calloc(1, sizeof *c);
    c->rank = host->rank;
    c->world = host->world;
    c->local_rank = host->local_rank;
    c->local_world = host->local_world;
    c->kind = "nccl";
    c->ctx = x;
    c->host = host;
    c->all_reduce_sum = nccl_all_reduce;
    c->reduce_scatter_sum = nccl_reduce_scatter;
    c->all_gather = nccl_all_gather;
    c->all_reduce_f64 = host_f64;
    c->all_reduce_i64 = host_i64;
    c->broadcast = host_broadcast;
    c->gather_bytes = host_gather;
    c->barrier = host_barrier;
    c->release = nccl_release;
    *out = c;
    return 0;
}
