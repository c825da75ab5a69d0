// comm_mpi: the MPI communicator (Open MPI, host buffers), built as the module librlpipe_mpi.so
// that kernels/comm.c opens only when the process was started by an MPI launcher. See comm.h.
//
// Counts: MPI counts are int, so the float collectives go in pieces of at most 2^30 elements
// (reduce-scatter and all-gather shards must fit one piece: 4 GiB per rank).
#include "kernels/comm.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RL_MPI_EXPORT __attribute__((visibility("default")))
RL_MPI_EXPORT unsigned rl_mpi_module_abi(void);
RL_MPI_EXPORT int rl_mpi_module_open(rl_comm **out, rl_err *err);

#define PIECE ((size_t)1 << 30)

typedef struct mpi_ctx {
    MPI_Comm world;
} mpi_ctx;

static MPI_Comm world_of(const rl_comm *c) {
    return ((const mpi_ctx *)c->ctx)->world;
}

static int check(int rc, const char *what, rl_err *err) {
    if (rc == MPI_SUCCESS) return 0;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return rl_fail(err, RL_EINTERNAL, "MPI %s failed: %.*s", what, len, msg);
}

static int mpi_all_reduce(const rl_comm *c, float *buf, size_t n, rl_err *err) {
    for (size_t at = 0; at < n; at += PIECE) {
        int k = (int)(n - at < PIECE ? n - at : PIECE);
        RL_TRY(check(MPI_Allreduce(MPI_IN_PLACE, buf + at, k, MPI_FLOAT, MPI_SUM, world_of(c)),
                     "all-reduce", err));
    }
    return 0;
}

static int mpi_reduce_scatter(const rl_comm *c, const float *send, float *recv, size_t shard,
                              rl_err *err) {
    if (shard > PIECE)
        return rl_fail(err, RL_EINTERNAL, "reduce-scatter shard of %zu floats is over 2^30", shard);
    return check(MPI_Reduce_scatter_block(send, recv, (int)shard, MPI_FLOAT, MPI_SUM, world_of(c)),
                 "reduce-scatter", err);
}

static int mpi_all_gather(const rl_comm *c, const float *send, float *recv, size_t shard,
                          rl_err *err) {
    if (shard > PIECE)
        return rl_fail(err, RL_EINTERNAL, "all-gather shard of %zu floats is over 2^30", shard);
    // In place when this rank's block already sits at its place in recv.
    const void *s = send == recv + (size_t)c->rank * shard ? MPI_IN_PLACE : send;
    return check(MPI_Allgather(s, (int)shard, MPI_FLOAT, recv, (int)shard, MPI_FLOAT, world_of(c)),
                 "all-gather", err);
}

static int mpi_f64(const rl_comm *c, double *x, int n, rl_err *err) {
    return check(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, world_of(c)), "all-reduce",
                 err);
}

static int mpi_i64(const rl_comm *c, int64_t *x, int n, rl_err *err) {
    return check(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_INT64_T, MPI_SUM, world_of(c)), "all-reduce",
                 err);
}

static int mpi_broadcast(const rl_comm *c, void *buf, size_t bytes, int root, rl_err *err) {
    for (size_t at = 0; at < bytes; at += PIECE) {
        int k = (int)(bytes - at < PIECE ? bytes - at : PIECE);
        RL_TRY(
            check(MPI_Bcast((char *)buf + at, k, MPI_BYTE, root, world_of(c)), "broadcast", err));
    }
    return 0;
}

static int mpi_gather_bytes(const rl_comm *c, const void *send, size_t bytes, void **out,
                            size_t *sizes, rl_err *err) {
    *out = NULL;
    if (bytes > INT_MAX)
        return rl_fail(err, RL_EINTERNAL, "gather of %zu bytes is over 2 GiB", bytes);
    int n = (int)bytes, W = c->world;
    int *counts = c->rank == 0 ? rl_calloc((size_t)W, sizeof(int)) : NULL;
    int *displs = c->rank == 0 ? rl_calloc((size_t)W, sizeof(int)) : NULL;
    int rc = check(MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, world_of(c)), "gather", err);
    char *buf = NULL;
    if (rc == 0 && c->rank == 0) {
        long total = 0;
        for (int q = 0; q < W; q++) {
            displs[q] = (int)total;
            total += counts[q];
            if (sizes) sizes[q] = (size_t)counts[q];
        }
        if (total > INT_MAX)
            rc = rl_fail(err, RL_EINTERNAL, "gather of %ld bytes is over 2 GiB", total);
        buf = rl_malloc(total ? (size_t)total : 1);
    }
    // Every rank takes part even after rank 0's size check failed, so nobody waits forever.
    int rc2 = check(MPI_Gatherv(send, n, MPI_BYTE, buf, counts, displs, MPI_BYTE, 0, world_of(c)),
                    "gather", rc ? NULL : err);
    free(counts);
    free(displs);
    if (rc || rc2) {
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}

static int mpi_barrier(const rl_comm *c, rl_err *err) {
    return check(MPI_Barrier(world_of(c)), "barrier", err);
}

static void mpi_release(rl_comm *c, int exit_code) {
    mpi_ctx *x = c->ctx;
    if (exit_code != 0) {
        // A failing rank takes the whole job down: its peers may be inside a collective.
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, exit_code);
    }
    MPI_Comm_free(&x->world);
    MPI_Finalize();
    free(x);
    free(c);
}

unsigned rl_mpi_module_abi(void) {
    return RL_COMM_ABI;
}

int rl_mpi_module_open(rl_comm **out, rl_err *err) {
    *out = NULL;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(NULL, NULL) != MPI_SUCCESS)
        return rl_fail(err, RL_EINPUT, "MPI_Init failed (launched by mpirun/srun?)");
    mpi_ctx *x = rl_calloc(1, sizeof *x);
    MPI_Comm_dup(MPI_COMM_WORLD, &x->world);
    // Errors come back as return codes (reported with the rank), not as an abort in the library.
    MPI_Comm_set_errhandler(x->world, MPI_ERRORS_RETURN);
    rl_comm *c = rl_calloc(1, sizeof *c);
    MPI_Comm_rank(x->world, &c->rank);
    MPI_Comm_size(x->world, &c->world);
    MPI_Comm node;
    MPI_Comm_split_type(x->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &c->local_rank);
    MPI_Comm_size(node, &c->local_world);
    MPI_Comm_free(&node);
    c->kind = "mpi";
    c->ctx = x;
    c->all_reduce_sum = mpi_all_reduce;
    c->reduce_scatter_sum = mpi_reduce_scatter;
    c->all_gather = mpi_all_gather;
    c->all_reduce_f64 = mpi_f64;
    c->all_reduce_i64 = mpi_i64;
    c->broadcast = mpi_broadcast;
    c->gather_bytes = mpi_gather_bytes;
    c->barrier = mpi_barrier;
    c->release = mpi_release;
    *out = c;
    return 0;
}
