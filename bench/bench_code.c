// bench_code: code verifications per second with a trivial program (print(int(input())*2), one
// stdio test) in each sandbox mode, and the sandbox's overhead per run over starting the same python
// program bare (posix_spawn + pipes, no isolation). Latencies are measured interleaved (bare,
// namespaces, rlimits, bare, ...) so that load from other processes hits all three alike; then
// throughput from one and from two threads per mode.
// Usage: bench_code [runs per measurement, default 100]
#define _GNU_SOURCE
#include "verifiers/code/code.h"
#include "verifiers/code/sandbox.h"

#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char program[] = "print(int(input())*2)\n";
static const char completion[] = "Double it:\n```python\nprint(int(input())*2)\n```\n";

// The same program started bare: no namespaces, limits or filters.
static double bare_runs_per_s(const char *python, int n) {
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        int in[2], out[2];
        if (pipe(in) != 0 || pipe(out) != 0) return 0;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in[0], 0);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        posix_spawn_file_actions_addclose(&fa, in[1]);
        posix_spawn_file_actions_addclose(&fa, out[0]);
        char *argv[] = {(char *)python, "-B", "-s", "-c", (char *)program, NULL};
        pid_t pid;
        if (posix_spawn(&pid, python, &fa, NULL, argv, environ) != 0) return 0;
        posix_spawn_file_actions_destroy(&fa);
        close(in[0]);
        close(out[1]);
        if (write(in[1], "21\n", 3) != 3) return 0;
        close(in[1]);
        char buf[64];
        while (read(out[0], buf, sizeof buf) > 0) {
        }
        close(out[0]);
        waitpid(pid, NULL, 0);
    }
    return n / (now_s() - t0);
}

typedef struct job {
    void *v;
    int n, failures;
} job;

static void *score_loop(void *arg) {
    job *j = arg;
    rl_vtest test = {RL_VTEST_STDIO, "21\n", "42\n"};
    rl_vsample s;
    memset(&s, 0, sizeof s);
    s.completion = completion;
    s.tests = &test;
    s.n_tests = 1;
    for (int i = 0; i < j->n; i++) {
        rl_vresult r;
        rl_verifier_code_api()->score(j->v, &s, &r);
        if (r.score != 1.0) j->failures++;
    }
    return NULL;
}

static double verifications_per_s(void *v, int n, int threads) {
    job jobs[8];
    pthread_t th[8];
    double t0 = now_s();
    for (int t = 0; t < threads; t++) {
        jobs[t] = (job){v, n / threads, 0};
        pthread_create(&th[t], NULL, score_loop, &jobs[t]);
    }
    int failures = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        failures += jobs[t].failures;
    }
    if (failures) fprintf(stderr, "bench_code: %d verifications failed\n", failures);
    return (n / threads) * threads / (now_s() - t0);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100;
    if (n < 2) n = 2;
    rl_sandbox_limits lim;
    rl_sandbox_default_limits(&lim);
    char err[256];
    rl_sandbox *probe = rl_sandbox_create(&lim, err, sizeof err);
    if (!probe) {
        fprintf(stderr, "bench_code: %s\n", err);
        return 1;
    }
    char python[4096];
    rl_sandbox_result res;
    rl_sandbox_job pj = {.program = "import sys\nprint(sys.executable)\n", .program_len = 34};
    rl_sandbox_run(probe, &pj, &res);
    snprintf(python, sizeof python, "%s", res.out);
    python[strcspn(python, "\n")] = 0;
    rl_sandbox_result_free(&res);
    rl_sandbox_destroy(probe);

    const char *modes[] = {"namespaces", "rlimits"};
    void *v[2];
    for (int m = 0; m < 2; m++) {
        rl_voption opts[] = {{"isolation", modes[m]}};
        v[m] = rl_verifier_code_api()->create(opts, 1, err, sizeof err);
        if (!v[m]) {
            fprintf(stderr, "bench_code: %s: %s\n", modes[m], err);
            return 1;
        }
    }
    bare_runs_per_s(python, 5); // warm the page cache
    verifications_per_s(v[0], 4, 1);
    verifications_per_s(v[1], 4, 1);
    double t_bare = 0, t_mode[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        t_bare += 1.0 / bare_runs_per_s(python, 1);
        for (int m = 0; m < 2; m++) t_mode[m] += 1.0 / verifications_per_s(v[m], 1, 1);
    }
    printf("latency, %d interleaved runs each:\n", n);
    printf("  bare python (%s): %.2f ms per run\n", python, 1e3 * t_bare / n);
    for (int m = 0; m < 2; m++)
        printf("  %-10s: %.2f ms per verification, overhead %.2f ms over bare python\n", modes[m],
               1e3 * t_mode[m] / n, 1e3 * (t_mode[m] - t_bare) / n);
    printf("throughput (%d verifications each):\n", n);
    for (int m = 0; m < 2; m++) {
        double one = verifications_per_s(v[m], n, 1);
        double two = verifications_per_s(v[m], n, 2);
        printf("  %-10s: %.1f verifications/s from 1 thread, %.1f from 2 threads\n", modes[m], one,
               two);
        rl_verifier_code_api()->destroy(v[m]);
    }
    printf("(%ld CPUs online)\n", sysconf(_SC_NPROCESSORS_ONLN));
    return 0;
}
