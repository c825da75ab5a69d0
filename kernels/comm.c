// comm: the single-process communicator and the loaders of the MPI and NCCL ones. See comm.h.
#define _POSIX_C_SOURCE 200809L
#include "kernels/comm.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---- single process ----------------------------------------------------------------------------

static int single_all_reduce(const rl_comm *c, float *buf, size_t n, rl_err *err) {
    return 0;
}

static int single_reduce_scatter(const rl_comm *c, const float *send, float *recv, size_t shard,
                                 rl_err *err) {
    // One rank: its block is the whole buffer. Backend memory, but a single communicator only
    // ever serves the host (the CPU backend) or a same-pointer call.
    if (send != recv) memmove(recv, send, shard * sizeof(float));
    return 0;
}

static int single_all_gather(const rl_comm *c, const float *send, float *recv, size_t shard,
                             rl_err *err) {
    if (send != recv) memmove(recv, send, shard * sizeof(float));
    return 0;
}

static int single_f64(const rl_comm *c, double *x, int n, rl_err *err) {
    return 0;
}

static int single_i64(const rl_comm *c, int64_t *x, int n, rl_err *err) {
    return 0;
}

static int single_broadcast(const rl_comm *c, void *buf, size_t bytes, int root, rl_err *err) {
    return 0;
}

static int single_gather_bytes(const rl_comm *c, const void *send, size_t bytes, void **out,
                               size_t *sizes, rl_err *err) {
    *out = rl_malloc(bytes ? bytes : 1);
    if (bytes) memcpy(*out, send, bytes);
    if (sizes) sizes[0] = bytes;
    return 0;
}

static int single_barrier(const rl_comm *c, rl_err *err) {
    return 0;
}

static void single_release(rl_comm *c, int exit_code) {
    free(c);
}

rl_comm *rl_comm_single(void) {
    rl_comm *c = rl_calloc(1, sizeof *c);
    *c = (rl_comm){.rank = 0,
                   .world = 1,
                   .local_rank = 0,
                   .local_world = 1,
                   .kind = "single",
                   .all_reduce_sum = single_all_reduce,
                   .reduce_scatter_sum = single_reduce_scatter,
                   .all_gather = single_all_gather,
                   .all_reduce_f64 = single_f64,
                   .all_reduce_i64 = single_i64,
                   .broadcast = single_broadcast,
                   .gather_bytes = single_gather_bytes,
                   .barrier = single_barrier,
                   .release = single_release};
    return c;
}

// ---- the MPI module ----------------------------------------------------------------------------

#define MPI_MODULE "librlpipe_mpi.so"

typedef unsigned comm_abi_fn(void);
typedef int mpi_open_fn(rl_comm **out, rl_err *err);

// Started by a launcher: mpirun/mpiexec of Open MPI, MPICH's hydra, or srun with PMI-2/PMIx.
static int launched_by_mpi(void) {
    const char *force = getenv("RLPIPE_COMM");
    if (force && strcmp(force, "single") == 0) return 0;
    if (force && strcmp(force, "mpi") == 0) return 1;
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

// The MPI module: $RLPIPE_MPI_MODULE, else next to the executable, one folder up (tests, bench),
// ../lib/rlpipe/, then the dynamic linker's search.
static void *open_mpi_module(char *why, size_t size) {
    why[0] = '\0';
    const char *env = getenv("RLPIPE_MPI_MODULE");
    char dir[4096];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    char *slash = NULL;
    if (n > 0) {
        dir[n] = '\0';
        slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
    }
    const char *rel[] = {"/", "/../", "/../lib/rlpipe/"};
    for (int i = -1; i < 4; i++) {
        char path[4300];
        if (i == -1) {
            if (!env || !*env) continue;
            snprintf(path, sizeof path, "%s", env);
        } else if (i < 3) {
            if (!slash) continue;
            snprintf(path, sizeof path, "%s%s%s", dir, rel[i], MPI_MODULE);
        } else
            snprintf(path, sizeof path, "%s", MPI_MODULE);
        // RTLD_GLOBAL: Open MPI opens its own plugins, which resolve symbols of libmpi.
        void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
        if (h) return h;
        if (!why[0] && (i == 3 || access(path, F_OK) == 0)) {
            const char *e = dlerror();
            snprintf(why, size, "%.400s", e ? e : MPI_MODULE);
        }
        if (i == -1) return NULL; // an explicit path is the only one tried
    }
    return NULL;
}

int rl_comm_launched_world(void) {
    if (!launched_by_mpi()) return 1;
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS",
                           "SLURM_NTASKS"};
    for (int i = 0; i < 4; i++) {
        const char *v = getenv(names[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    return 1;
}

int rl_comm_open(rl_comm **out, rl_err *err) {
    *out = NULL;
    if (!launched_by_mpi()) {
        *out = rl_comm_single();
        return 0;
    }
    char why[512];
    void *h = open_mpi_module(why, sizeof why);
    if (!h)
        return rl_fail(err, RL_EINPUT,
                       "launched under MPI but the MPI module " MPI_MODULE
                       " cannot be loaded (install Open MPI: scripts/install-deps.sh; or set "
                       "RLPIPE_MPI_MODULE): %s",
                       why);
    union {
        void *p;
        comm_abi_fn *abi;
        mpi_open_fn *open;
    } abi = {dlsym(h, "rl_mpi_module_abi")}, open = {dlsym(h, "rl_mpi_module_open")};
    if (!abi.p || !open.p || abi.abi() != RL_COMM_ABI)
        return rl_fail(err, RL_EINPUT,
                       MPI_MODULE " is not this rlpipe's MPI module (no entry point or another "
                                  "ABI); rebuild both from the same sources");
    return open.open(out, err);
}

// ---- NCCL --------------------------------------------------------------------------------------

#ifdef RLPIPE_CUDA_MODULE
typedef int nccl_open_fn(const rl_comm *host, const rl_backend *be, rl_comm **out, rl_err *err);
void *rl_cuda_module_symbol(const char *name, rl_err *err); // kernels/cuda_module.c
#endif

int rl_comm_nccl(rl_comm **c, const rl_backend *be, rl_err *err) {
#ifdef RLPIPE_CUDA_MODULE
    union {
        void *p;
        nccl_open_fn *open;
    } f = {rl_cuda_module_symbol("rl_cuda_module_nccl_open", err)};
    if (!f.p) return -1;
    rl_comm *nc = NULL;
    RL_TRY(f.open(*c, be, &nc, err));
    *c = nc; // owns the host communicator now (nc->host)
    return 0;
#else
    (void)be;
    return rl_fail(err, RL_EINPUT,
                   "%d ranks on a GPU backend need NCCL: this rlpipe was built without CUDA",
                   (*c)->world);
#endif
}

int rl_comm_for_backend(rl_comm **c, const rl_backend *be, rl_err *err) {
    if ((*c)->world == 1 || be->is_host) return 0;
    return rl_comm_nccl(c, be, err);
}

void rl_comm_release(rl_comm *c, int exit_code) {
    if (c) c->release(c, exit_code);
}

void rl_comm_split(int64_t n, int rank, int world, int64_t *lo, int64_t *hi) {
    *lo = n * rank / world;
    *hi = n * (rank + 1) / world;
}
