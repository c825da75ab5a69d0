/*
 * comm: the communicator — a group of processes training one model together (data parallel).
 *
 * A backend (kernels/backend.h) is a device; a communicator is a group of processes. The
 * collectives are not backend ops: they sit beside the backend, one table per group, with three
 * implementations behind the same type:
 *
 *   single  one process: every collective is a no-op (or a copy). No MPI is loaded.
 *   mpi     Open MPI over host memory (the CPU backend's buffers are host buffers). The MPI code
 *           is a module, librlpipe_mpi.so, opened with dlopen only when the process was started
 *           by a launcher (mpirun/mpiexec, srun), so `rlpipe --help` and every single-process
 *           run never load or initialise MPI.
 *   nccl    NCCL over CUDA device memory for the float buffers (all-reduce, reduce-scatter,
 *           all-gather), MPI for everything on the host. Built into the CUDA module
 *           (kernels/cuda/comm_nccl.cu); its unique id is broadcast over MPI, as llm.c does.
 *
 *     rl_comm *c;
 *     rl_comm_open(&c, &err);              // single, or MPI when launched by mpirun/srun
 *     ... device = c->local_rank ...       // the GPU of this rank
 *     rl_comm_for_backend(&c, be, &err);   // NCCL in place of MPI for a CUDA backend
 *     c->all_reduce_sum(c, grads, n, &err);
 *     rl_comm_release(c, exit_code);
 *
 * Buffers: all_reduce_sum / reduce_scatter_sum / all_gather take backend memory of the backend
 * the communicator was made for (host memory for mpi, CUDA memory for nccl), float32 always
 * (parameter gradients and master weights are float32). The host reductions, broadcast and
 * gather take host memory. Every rank must make the same calls in the same order with the same
 * sizes (they are collectives); a rank that does not deadlocks the group.
 *
 * Launch detection (rl_comm_open): $RLPIPE_COMM=single|mpi forces the choice; otherwise MPI is used
 * when one of OMPI_COMM_WORLD_SIZE (mpirun), PMI_SIZE (MPICH, srun --mpi=pmi2) or PMIX_RANK
 * (srun --mpi=pmix, prterun) is set.
 *
 * Errors: a collective that fails returns -1 with err set (RL_EINTERNAL). A rank that dies
 * mid-collective makes the launcher end the job (mpirun reports which rank and signal).
 *
 * Owns: its implementation's context (the MPI or NCCL communicator); released by rl_comm_release.
 */
#ifndef RL_COMM_H
#define RL_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/backend.h"
#include "kernels/rl_error.h"

#define RL_COMM_ABI 0x00010001u // bumped whenever struct rl_comm changes (modules check it)

typedef struct rl_comm rl_comm;
struct rl_comm {
    int rank, world;             // this process's rank in [0, world)
    int local_rank, local_world; // rank among the processes of this node (picks the GPU)
    const char *kind;            // "single", "mpi" or "nccl"
    void *ctx;                   // the implementation's state
    const rl_comm *host;         // the MPI communicator an nccl one bootstraps from (else NULL)

    // Backend float buffers (see above). In place: buf[n] becomes the sum over ranks.
    int (*all_reduce_sum)(const rl_comm *c, float *buf, size_t n, rl_err *err);
    // send[world * shard] summed over ranks; this rank receives block `rank` into recv[shard].
    int (*reduce_scatter_sum)(const rl_comm *c, const float *send, float *recv, size_t shard,
                              rl_err *err);
    // Every rank's send[shard] concatenated in rank order into recv[world * shard].
    int (*all_gather)(const rl_comm *c, const float *send, float *recv, size_t shard, rl_err *err);

    // Host reductions, in place: sums over ranks (exact for int64; doubles in rank order).
    int (*all_reduce_f64)(const rl_comm *c, double *x, int n, rl_err *err);
    int (*all_reduce_i64)(const rl_comm *c, int64_t *x, int n, rl_err *err);
    // Host buffer of `bytes` from rank root to every rank.
    int (*broadcast)(const rl_comm *c, void *buf, size_t bytes, int root, rl_err *err);
    // Every rank's bytes to rank 0: there *out (malloc'ed, free it) is the concatenation in rank
    // order and sizes[world] the size of each part; elsewhere *out = NULL. sizes may be NULL
    // off rank 0.
    int (*gather_bytes)(const rl_comm *c, const void *send, size_t bytes, void **out, size_t *sizes,
                        rl_err *err);
    int (*barrier)(const rl_comm *c, rl_err *err);
    // Ends the group: exit_code 0 finalises cleanly; anything else aborts every rank of the job
    // with that code (so no peer waits forever in a collective). Frees c.
    void (*release)(rl_comm *c, int exit_code);
};

// The single-process communicator (rank 0 of 1). Never fails.
rl_comm *rl_comm_single(void);

// The communicator of this process: MPI when launched by mpirun/mpiexec/srun (or RLPIPE_COMM=mpi),
// else single. RL_EINPUT when MPI is wanted but librlpipe_mpi.so cannot be loaded.
int rl_comm_open(rl_comm **out, rl_err *err);

// The number of ranks the launcher started, from its environment without initialising MPI (1 when
// not launched by one, or when it does not say).
int rl_comm_launched_world(void);

// For a CUDA backend and world > 1, replaces *c by an NCCL communicator over the same ranks
// (which keeps the MPI one for host work, and releases it with itself). Otherwise leaves *c.
int rl_comm_for_backend(rl_comm **c, const rl_backend *be, rl_err *err);

// The NCCL communicator over the ranks of *c (any world size: one rank checks NCCL on one GPU);
// *c (single or MPI) becomes its host communicator. RL_EINPUT without the CUDA build.
int rl_comm_nccl(rl_comm **c, const rl_backend *be, rl_err *err);

// Releases c (NULL is fine); see rl_comm.release.
void rl_comm_release(rl_comm *c, int exit_code);

// [lo, hi) of n items that rank `rank` of `world` takes: contiguous, in rank order, sizes
// differing by at most one.
void rl_comm_split(int64_t n, int rank, int world, int64_t *lo, int64_t *hi);

#endif
