// test_comm: the communicators of kernels/comm.h against sums computed here.
//
// Run alone it checks the single-process communicator and the launch detection; run under
// `mpirun -np N` (ctest runs it with 2 ranks) every collective of the MPI communicator: each rank
// regenerates every rank's random data from its seed, so the expected sums are known everywhere.
// RLPIPE_TEST_BACKEND=cuda adds the NCCL communicator over device buffers (any N, 1 included:
// the one-GPU check).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/comm.h"
#include "kernels/rng.h"
#include "test_util.h"

// Rank q's data: n random floats in [-1, 1) from the stream (seed, q).
static void data_of(int q, uint64_t seed, float *x, size_t n) {
    rl_rng g = rl_rng_stream(seed, 0, (uint64_t)q, 0);
    for (size_t i = 0; i < n; i++) x[i] = 2.0f * rl_rng_float(&g) - 1.0f;
}

// The float32 sum over ranks in rank order, and the bound on reassociation for W terms.
static void expected_sum(int W, uint64_t seed, float *want, size_t n) {
    float *x = rl_malloc(n * sizeof(float));
    memset(want, 0, n * sizeof(float));
    for (int q = 0; q < W; q++) {
        data_of(q, seed, x, n);
        for (size_t i = 0; i < n; i++) want[i] += x[i];
    }
    free(x);
}

static double max_err(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        if (d < 0) d = -d;
        if (d > m || d != d) m = d != d ? 1e30 : d;
    }
    return m;
}

static void test_split(void) {
    // Contiguous, in order, covering, sizes differ by at most one.
    for (int64_t n = 0; n < 40; n++)
        for (int W = 1; W <= 7; W++) {
            int64_t at = 0, lo, hi, mn = n, mx = 0;
            for (int q = 0; q < W; q++) {
                rl_comm_split(n, q, W, &lo, &hi);
                CHECK(lo == at && hi >= lo, "split %lld over %d: rank %d [%lld, %lld)",
                      (long long)n, W, q, (long long)lo, (long long)hi);
                at = hi;
                if (hi - lo < mn) mn = hi - lo;
                if (hi - lo > mx) mx = hi - lo;
            }
            CHECK(at == n && mx - mn <= 1, "split %lld over %d covers %lld", (long long)n, W,
                  (long long)at);
        }
}

// Every collective over `be` buffers (host for mpi/single, device for nccl).
static void check_collectives(const rl_comm *c, const rl_backend *be) {
    rl_err err = {0};
    int W = c->world, r = c->rank;
    const size_t n = 1000 + 37; // not a multiple of the world
    float *host = rl_malloc(n * sizeof(float)), *want = rl_malloc(n * sizeof(float));
    float *got = rl_malloc((n + 1) * sizeof(float)); // n, or one shard (n / W + 1)
    float *dev = be->mem_alloc(be, n * sizeof(float));

    // all-reduce
    data_of(r, 11, host, n);
    be->mem_upload(be, dev, host, n * sizeof(float));
    CHECK(c->all_reduce_sum(c, dev, n, &err) == 0, "%s all-reduce: %s", c->kind, err.msg);
    be->mem_download(be, got, dev, n * sizeof(float));
    expected_sum(W, 11, want, n);
    CHECK(max_err(got, want, n) <= 4e-7 * W, "%s all-reduce off by %g", c->kind,
          max_err(got, want, n));

    // reduce-scatter: block r of the sum
    size_t S = n / W + 1;
    float *big = be->mem_alloc(be, (size_t)W * S * sizeof(float));
    float *hb = rl_malloc((size_t)W * S * sizeof(float)),
          *wb = rl_malloc((size_t)W * S * sizeof(float));
    data_of(r, 12, hb, (size_t)W * S);
    be->mem_upload(be, big, hb, (size_t)W * S * sizeof(float));
    float *shard = be->mem_alloc(be, S * sizeof(float));
    CHECK(c->reduce_scatter_sum(c, big, shard, S, &err) == 0, "%s reduce-scatter: %s", c->kind,
          err.msg);
    be->mem_download(be, got, shard, S * sizeof(float));
    expected_sum(W, 12, wb, (size_t)W * S);
    CHECK(max_err(got, wb + (size_t)r * S, S) <= 4e-7 * W, "%s reduce-scatter off by %g", c->kind,
          max_err(got, wb + (size_t)r * S, S));

    // all-gather, out of place and in place
    data_of(r, 13, hb, S);
    be->mem_upload(be, shard, hb, S * sizeof(float));
    CHECK(c->all_gather(c, shard, big, S, &err) == 0, "%s all-gather: %s", c->kind, err.msg);
    float *gb = rl_malloc((size_t)W * S * sizeof(float));
    be->mem_download(be, gb, big, (size_t)W * S * sizeof(float));
    int exact = 1;
    for (int q = 0; q < W; q++) {
        data_of(q, 13, hb, S);
        exact &= memcmp(gb + (size_t)q * S, hb, S * sizeof(float)) == 0;
    }
    CHECK(exact, "%s all-gather: every rank's block, bit for bit, in rank order", c->kind);
    be->mem_zero(be, big, (size_t)W * S * sizeof(float));
    data_of(r, 14, hb, S);
    be->mem_upload(be, big + (size_t)r * S, hb, S * sizeof(float));
    CHECK(c->all_gather(c, big + (size_t)r * S, big, S, &err) == 0, "%s all-gather in place: %s",
          c->kind, err.msg);
    be->mem_download(be, gb, big, (size_t)W * S * sizeof(float));
    exact = 1;
    for (int q = 0; q < W; q++) {
        data_of(q, 14, hb, S);
        exact &= memcmp(gb + (size_t)q * S, hb, S * sizeof(float)) == 0;
    }
    CHECK(exact, "%s all-gather in place", c->kind);

    // host reductions: doubles and exact int64 (beyond 2^53)
    double d[3] = {r + 0.5, -1.0 * r, 1e-3};
    CHECK(c->all_reduce_f64(c, d, 3, &err) == 0, "%s f64: %s", c->kind, err.msg);
    CHECK(d[0] == W * (W - 1) / 2.0 + 0.5 * W && d[1] == -(W * (W - 1) / 2.0) &&
              d[2] > 0.999e-3 * W && d[2] < 1.001e-3 * W,
          "%s f64 sums: %g %g %g", c->kind, d[0], d[1], d[2]);
    int64_t k[2] = {((int64_t)1 << 60) + r, -r};
    CHECK(c->all_reduce_i64(c, k, 2, &err) == 0, "%s i64: %s", c->kind, err.msg);
    CHECK(k[0] == ((int64_t)1 << 60) * W + W * (W - 1) / 2 && k[1] == -(int64_t)(W * (W - 1) / 2),
          "%s i64 sums exact", c->kind);

    // broadcast from the last rank
    char msg[64];
    snprintf(msg, sizeof msg, "from rank %d", r);
    CHECK(c->broadcast(c, msg, sizeof msg, W - 1, &err) == 0, "%s broadcast: %s", c->kind, err.msg);
    char want_msg[64];
    snprintf(want_msg, sizeof want_msg, "from rank %d", W - 1);
    CHECK(strcmp(msg, want_msg) == 0, "%s broadcast got '%s'", c->kind, msg);

    // gather of different sizes (rank q sends 3q bytes; rank 0 sends none)
    char part[64];
    memset(part, 'a' + r, sizeof part);
    void *all = NULL;
    size_t *sizes = rl_calloc((size_t)W, sizeof(size_t));
    CHECK(c->gather_bytes(c, part, (size_t)3 * r, &all, sizes, &err) == 0, "%s gather: %s", c->kind,
          err.msg);
    if (r == 0) {
        const char *at = all;
        int ok = all != NULL;
        for (int q = 0; q < W && ok; q++) {
            ok &= sizes[q] == (size_t)3 * q;
            for (size_t i = 0; i < sizes[q]; i++) ok &= at[i] == 'a' + q;
            at += sizes[q];
        }
        CHECK(ok, "%s gather: every rank's bytes in rank order", c->kind);
    } else
        CHECK(all == NULL, "%s gather: nothing off rank 0", c->kind);
    free(all);
    free(sizes);
    CHECK(c->barrier(c, &err) == 0, "%s barrier: %s", c->kind, err.msg);

    be->mem_free(be, dev);
    be->mem_free(be, big);
    be->mem_free(be, shard);
    free(host);
    free(want);
    free(got);
    free(hb);
    free(wb);
    free(gb);
}

static rl_comm *world_comm;

static void test_world(void) {
    const char *launched = getenv("OMPI_COMM_WORLD_SIZE");
    CHECK(strcmp(world_comm->kind, launched ? "mpi" : "single") == 0,
          "launched %s: communicator '%s'", launched ? "by mpirun" : "alone", world_comm->kind);
    if (launched)
        CHECK(world_comm->world == atoi(launched) && world_comm->rank >= 0 &&
                  world_comm->rank < world_comm->world && world_comm->local_rank >= 0 &&
                  world_comm->local_rank < world_comm->local_world,
              "rank %d of %d, local %d of %d", world_comm->rank, world_comm->world,
              world_comm->local_rank, world_comm->local_world);
    check_collectives(world_comm, rl_backend_cpu());
}

static void test_nccl(void) {
    const char *name = getenv("RLPIPE_TEST_BACKEND");
    if (!name || strcmp(name, "cuda") != 0) {
        fprintf(stderr, "  (NCCL: set RLPIPE_TEST_BACKEND=cuda on a GPU machine)\n");
        return;
    }
    rl_err err = {0};
    const rl_backend *be = rl_backend_cuda_open(world_comm->local_rank, 0, RL_F32, &err);
    CHECK(be != NULL, "CUDA backend on GPU %d: %s", world_comm->local_rank, err.msg);
    if (!be) return;
    // NCCL over the same ranks; the world communicator becomes its host side.
    rl_comm *c = world_comm;
    CHECK(rl_comm_nccl(&c, be, &err) == 0, "NCCL: %s", err.msg);
    if (c != world_comm) {
        CHECK(strcmp(c->kind, "nccl") == 0 && c->world == world_comm->world, "nccl communicator");
        check_collectives(c, be);
        world_comm = NULL; // released with c
        rl_comm_release(c, 0);
    }
    rl_backend_release(be);
}

int main(void) {
    rl_err err = {0};
    if (rl_comm_open(&world_comm, &err)) {
        fprintf(stderr, "rl_comm_open: %s\n", err.msg);
        return 1;
    }
    RUN(test_split);
    RUN(test_world);
    RUN(test_nccl);
    int rc = test_summary();
    if (world_comm) rl_comm_release(world_comm, rc);
    return rc;
}
