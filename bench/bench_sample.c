// bench_sample: the sampling op (be->sample) on a backend, next to the path it replaces (not a
// test).
//
//   bench_sample [--device cpu|cuda] [--vocab V] [--reps N]
//
// For batches of 1, 64 and 256 rows of V logits (default Qwen's 151,936) and four sampling
// modes (greedy; temperature 1; top-k 50 + top-p 0.95; top-p 0.9 + min-p 0.05) it prints the
// time of one call, rows per second, and the time the op would take if it read the logits
// exactly once at the bandwidth measured here (a device-to-device copy of the same bytes): the
// op makes several passes over each row, most of them from cache, so "x copy" says how far it
// is from a single read. On cuda it also prints the path the op replaces: download all the
// logits (n x V x 4 bytes) and sample on the host.
#define _POSIX_C_SOURCE 200809L
#include "kernels/backend.h"
#include "kernels/rng.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *device = "cpu";
    int V = 151936, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            device = argv[++i];
        else if (strcmp(argv[i], "--vocab") == 0 && i + 1 < argc)
            V = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_sample [--device cpu|cuda] [--vocab V] [--reps N]\n");
            return 2;
        }
    }
    if (V < 2 || reps < 1) {
        fprintf(stderr, "bench_sample: --vocab must be >= 2 and --reps >= 1\n");
        return 2;
    }
    rl_err err;
    const rl_backend *be = rl_backend_get(device, &err);
    if (!be) {
        fprintf(stderr, "bench_sample: %s\n", err.msg);
        return 2;
    }
    const rl_backend *cpu = rl_backend_cpu();
    enum { MAXN = 256 };
    const int batches[] = {1, 64, MAXN};
    const rl_sampling modes[] = {{0.0f, 0, 1.0f, 0.0f},
                                 {1.0f, 0, 1.0f, 0.0f},
                                 {1.0f, 50, 0.95f, 0.0f},
                                 {1.0f, 0, 0.9f, 0.05f}};
    const char *mode_names[] = {"greedy", "temperature 1", "top-k 50 + top-p 0.95",
                                "top-p 0.9 + min-p 0.05"};
    size_t nv = (size_t)MAXN * V;
    float *h_logits = malloc(nv * sizeof(float));
    rl_rng rng = rl_rng_stream(1, RL_RNG_INIT, 0, 0);
    for (size_t i = 0; i < nv; i++) h_logits[i] = 3.0f * (float)rl_rng_normal(&rng);
    float *logits = be->mem_alloc(be, nv * sizeof(float));
    float *copy = be->mem_alloc(be, nv * sizeof(float));
    be->mem_upload(be, logits, h_logits, nv * sizeof(float));
    uint64_t kd[2 * MAXN];
    rl_sampling par[MAXN];
    uint64_t *d_kd = be->mem_alloc(be, sizeof kd);
    rl_sampling *d_par = be->mem_alloc(be, sizeof par);
    int32_t *d_out = be->mem_alloc(be, 3 * MAXN * sizeof(int32_t));
    int32_t out[3 * MAXN];
    float *scratch = malloc(nv * sizeof(float));
    printf("bench_sample: device %s, V %d, %d reps (best of)\n", be->name, V, reps);
    printf("%-24s %5s %11s %12s %13s %9s", "mode", "rows", "us/call", "rows/s", "1-read us",
           "x copy");
    if (!be->is_host) printf(" %16s", "download+host us");
    printf("\n");
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
            int n = batches[b];
            for (int i = 0; i < n; i++) {
                kd[2 * i] = 1000 + (uint64_t)i;
                kd[2 * i + 1] = 0;
                par[i] = modes[m];
            }
            rl_upload up[2] = {{d_kd, kd, 2 * n * sizeof(uint64_t)},
                               {d_par, par, n * sizeof(rl_sampling)}};
            be->mem_upload_staged(be, up, 2);
            double best = 1e30, best_copy = 1e30, best_old = 1e30;
            for (int r = 0; r < reps + 1; r++) { // the first run warms up
                be->synchronize(be);
                double t0 = now();
                be->sample(be, d_out, (float *)(d_out + n), (float *)(d_out + 2 * n), logits, d_kd,
                           d_par, n, V, V);
                be->mem_download(be, out, d_out, 3 * (size_t)n * sizeof(int32_t));
                double t1 = now();
                be->mem_copy(be, copy, logits, (size_t)n * V * sizeof(float));
                be->synchronize(be);
                double t2 = now();
                if (r > 0 && t1 - t0 < best) best = t1 - t0;
                if (r > 0 && t2 - t1 < best_copy) best_copy = t2 - t1;
                if (!be->is_host) { // the replaced path: all logits to the host, host sampling
                    double t3 = now();
                    be->mem_download(be, scratch, logits, (size_t)n * V * sizeof(float));
                    cpu->sample(cpu, out, (float *)(out + n), (float *)(out + 2 * n), scratch, kd,
                                par, n, V, V);
                    double t4 = now();
                    if (r > 0 && t4 - t3 < best_old) best_old = t4 - t3;
                }
            }
            // a copy reads and writes the bytes: one read takes half of it
            double one_read = best_copy / 2.0;
            printf("%-24s %5d %11.1f %12.0f %13.1f %9.1f", mode_names[m], n, best * 1e6, n / best,
                   one_read * 1e6, best / one_read);
            if (!be->is_host) printf(" %16.1f", best_old * 1e6);
            printf("\n");
        }
    be->mem_free(be, logits);
    be->mem_free(be, copy);
    be->mem_free(be, d_kd);
    be->mem_free(be, d_par);
    be->mem_free(be, d_out);
    free(h_logits);
    free(scratch);
    rl_backend_release(be);
    return 0;
}
