// bench_log: how long the rollout log takes to write one training step (begin_step, step stats,
// R rollouts with ~300-byte completions, 4 verifier scores each, commit), as the trainer does it.
//
//   bench_log [--steps N] [--rollouts R] [--bytes B] [--db PATH]
//
// Prints mean, median, p95 and max milliseconds per step and the resulting file size. The
// default database is a fresh file in a temporary directory, removed afterwards.
#define _POSIX_C_SOURCE 200809L
#include "kernels/rl_error.h"
#include "kernels/rng.h"
#include "rollout/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const VERIFIERS[4] = {"accuracy", "path_quality", "format", "efficiency"};
static const double WEIGHTS[4] = {0.4, 0.3, 0.2, 0.1};

// Printable text of n bytes, word-like, with a few newlines (a reasoning trace stand-in).
static void random_text(rl_rng *rng, char *buf, int n) {
    static const char letters[] = "abcdefghijklmnopqrstuvwxyz0123456789+-=";
    for (int i = 0; i < n; i++) {
        uint32_t r = rl_rng_below(rng, 64);
        buf[i] = r < 9 ? ' ' : r == 9 ? '\n' : letters[r % (sizeof letters - 1)];
    }
    buf[n] = '\0';
}

// CPU seconds of this process: unlike wall time, not inflated by other programs on the machine.
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int steps = 50, rollouts = 512, bytes = 300;
    const char *db_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--steps") == 0)
            steps = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--rollouts") == 0)
            rollouts = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--bytes") == 0)
            bytes = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--db") == 0)
            db_arg = argv[++i];
        else {
            fprintf(stderr,
                    "usage: bench_log [--steps N] [--rollouts R] [--bytes B] [--db PATH]\n");
            return 2;
        }
    }
    if (steps < 1 || rollouts < 1 || bytes < 1) return 2;

    char dir[64] = "", path[256];
    if (db_arg) {
        snprintf(path, sizeof path, "%s", db_arg);
    } else {
        snprintf(dir, sizeof dir, "/tmp/rlpipe-bench-log-XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
        snprintf(path, sizeof path, "%s/rollouts.db", dir);
    }

    rl_err err = {0};
    rl_log *log = NULL;
    int64_t run = 0;
    if (rl_log_open(&log, path, 1, &err) != 0 ||
        rl_log_begin_run(log, "bench", "bench: true\n", 1, &run, &err) != 0) {
        fprintf(stderr, "bench_log: %s\n", err.msg);
        return 1;
    }

    // The data is made before timing: only the log's cost is measured.
    const int group = 8;
    rl_rng rng = rl_rng_stream(1, RL_RNG_DATA, 0, 0);
    char **completions = rl_malloc((size_t)rollouts * sizeof *completions);
    char **prompts = rl_malloc((size_t)rollouts * sizeof *prompts);
    for (int i = 0; i < rollouts; i++) {
        completions[i] = rl_malloc((size_t)bytes + 1);
        random_text(&rng, completions[i], bytes);
        prompts[i] = rl_malloc(121);
        random_text(&rng, prompts[i], 120);
    }
    double *ms = rl_malloc((size_t)steps * sizeof *ms);
    double cpu = 0;

    for (int s = 0; s < steps; s++) {
        double t0 = rl_now(), c0 = cpu_now();
        int ok = rl_log_begin_step(log, run, s, &err) == 0;
        for (int i = 0; ok && i < rollouts; i++) {
            rl_rollout_row r;
            rl_rollout_row_init(&r);
            r.prompt_idx = (int64_t)s * (rollouts / group) + i / group;
            r.group_id = i / group;
            r.sample_idx = i % group;
            r.task = "arith";
            r.prompt = prompts[i - i % group];
            r.completion = completions[(i + s) % rollouts];
            r.answer = "42";
            r.n_tokens = bytes / 3;
            r.n_prompt_tokens = 40;
            r.finish_reason = i % 17 == 0 ? "length" : "stop";
            r.reward = 0.001 * (i % 1000);
            r.advantage = 0.01 * (i % 200) - 1.0;
            r.sample_logprob_sum = -0.37 * r.n_tokens;
            int64_t id = 0;
            ok = rl_log_rollout(log, &r, &id, &err) == 0;
            for (int k = 0; ok && k < 4; k++)
                ok = rl_log_score(log, id, VERIFIERS[k], WEIGHTS[k], 0.25 * k, "ok",
                                  "answer 42, reference 42", &err) == 0;
        }
        rl_step_stats st;
        rl_step_stats_init(&st);
        st.phase = "rl";
        st.loss = 0.1;
        st.n_rollouts = rollouts;
        ok = ok && rl_log_step_stats(log, &st, &err) == 0 && rl_log_commit_step(log, &err) == 0;
        if (!ok) {
            fprintf(stderr, "bench_log: %s\n", err.msg);
            return 1;
        }
        ms[s] = 1e3 * (rl_now() - t0);
        cpu += cpu_now() - c0;
    }
    rl_log_close(log);

    double sum = 0;
    for (int s = 0; s < steps; s++) sum += ms[s];
    qsort(ms, (size_t)steps, sizeof *ms, cmp_double);
    struct stat sb;
    double mib = stat(path, &sb) == 0 ? (double)sb.st_size / (1 << 20) : 0;
    printf("rollout log: %d steps x %d rollouts (%d-byte completions) x 4 scores\n", steps,
           rollouts, bytes);
    printf("ms per step: mean %.2f  median %.2f  p95 %.2f  max %.2f\n", sum / steps, ms[steps / 2],
           ms[(int)(0.95 * (steps - 1))], ms[steps - 1]);
    printf("CPU ms per step: mean %.2f (wall time includes waiting for the disk and other "
           "programs)\n",
           1e3 * cpu / steps);
    printf("rows per second: %.0f   file size: %.1f MiB\n",
           (double)steps * rollouts * 5 / (sum / 1e3), mib);

    for (int i = 0; i < rollouts; i++) {
        free(completions[i]);
        free(prompts[i]);
    }
    free(completions);
    free(prompts);
    free(ms);
    if (dir[0]) {
        char p[300];
        const char *suffix[] = {"", "-wal", "-shm"};
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, "%s%s", path, suffix[i]);
            unlink(p);
        }
        rmdir(dir);
    }
    return 0;
}
