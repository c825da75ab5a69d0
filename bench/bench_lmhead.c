// bench_lmhead: peak memory and time of one training step's model work (forward, token
// log-probs with entropies, backward) on the CPU, with the lm_head unfused (the whole [N, V]
// logits kept from the forward for the backward) and fused (kernels.h lm_head_logprob_*: a
// [N, 256]-column workspace, the logits recomputed chunk by chunk in the backward), for random
// models of bench_model's tiny and 25m shapes.
//
//   bench_lmhead [tiny|25m|all] [--steps N]
//
// Each configuration runs in a child process, so that its peak resident set (getrusage
// ru_maxrss) is its own. Also prints the sum of the log-probs of both paths: they agree to float32
// reassociation.
#define _POSIX_C_SOURCE 200809L
#include "bench/bench_util.h"
#include "kernels/backend.h"
#include "policy/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct shape {
    const char *name;
    int C, L, NH, NKV, FF, V, B, T; // as bench_model's SIZES
} shape;

static const shape SHAPES[] = {
    {"tiny", 128, 4, 4, 1, 336, 272, 32, 128},
    {"25m", 512, 8, 8, 2, 1408, 4096, 8, 256},
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// One configuration, in the calling (child) process.
static int run(const shape *s, int fused, int steps) {
    rl_model_config c =
        bench_qwen2_config(s->C, s->L, s->NH, s->NKV, s->C / s->NH, s->FF, s->V, 1, 4096);
    rl_err err;
    rl_model *m = NULL;
    if (rl_model_create(&m, &c, rl_backend_cpu(), &err)) {
        fprintf(stderr, "bench_lmhead: %s\n", err.msg);
        return 1;
    }
    rl_model_init_random(m, 1, 0.02f);
    size_t N = (size_t)s->B * s->T;
    m->lm_head_fused = fused ? 1 : -1;
    // fused: a buffer for 256-column chunks of all rows (plus the per-row statistics)
    if (fused) m->logits_budget = N * 256 + 3 * N;
    int32_t *tok = malloc(N * 4), *tg = malloc(N * 4);
    float *lp = malloc(N * 4), *en = malloc(N * 4), *d = malloc(N * 4), *de = malloc(N * 4);
    for (size_t i = 0; i < N; i++) {
        tok[i] = (int32_t)((i * 7919) % (size_t)s->V);
        tg[i] = (int32_t)((i * 104729 + 3) % (size_t)s->V);
        d[i] = 1.0f / (float)N;
        de[i] = 0.01f / (float)N;
    }
    double t0 = 0.0;
    for (int k = 0; k <= steps; k++) { // the first step warms up (allocations)
        if (k == 1) t0 = now();
        if (rl_model_forward(m, tok, NULL, s->B, s->T, &err) ||
            rl_model_token_logprobs(m, tg, 1.0f, lp, en, &err)) {
            fprintf(stderr, "bench_lmhead: %s\n", err.msg);
            return 1;
        }
        rl_model_zero_grad(m);
        if (rl_model_backward(m, d, de, &err)) {
            fprintf(stderr, "bench_lmhead: %s\n", err.msg);
            return 1;
        }
    }
    double dt = (now() - t0) / steps, sum = 0.0;
    for (size_t i = 0; i < N; i++) sum += lp[i];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    size_t work = m->logits_rows * (size_t)s->V + 3 * N; // the logits buffer (model.c)
    printf("%-5s %-7s N %5zu V %6d  lm_head buffer %7.1f MB  peak RSS %7.1f MB  %7.3f s/step  "
           "sum logp %.4f\n",
           s->name, fused ? "fused" : "unfused", N, s->V, (double)work * 4 / 1e6,
           (double)ru.ru_maxrss / 1024.0, dt, sum);
    rl_model_free(m);
    free(tok), free(tg), free(lp), free(en), free(d), free(de);
    return 0;
}

int main(int argc, char **argv) {
    const char *which = "all";
    int steps = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (argv[i][0] != '-')
            which = argv[i];
        else {
            fprintf(stderr, "usage: bench_lmhead [tiny|25m|all] [--steps N]\n");
            return 2;
        }
    }
    if (steps < 1) steps = 1;
    int found = 0;
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
        if (strcmp(which, "all") && strcmp(which, SHAPES[s].name)) continue;
        found = 1;
        for (int fused = 0; fused < 2; fused++) {
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) { // the child: its own peak memory
                int rc = run(&SHAPES[s], fused, steps);
                fflush(stdout);
                _exit(rc);
            }
            int st = 0;
            if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) return 1;
        }
    }
    if (!found) {
        fprintf(stderr, "bench_lmhead: unknown size '%s' (tiny, 25m, all)\n", which);
        return 2;
    }
    return 0;
}
