// test_train: the training loop end to end through the rlpipe binary on a micro config: a run
// killed with SIGKILL at any moment and resumed ends with exactly the same weights and logged
// rewards as an uninterrupted run; non-finite updates are skipped, logged and stop the run; the
// SQLite log answers "per-step accuracy and reward by verifier" with one query.
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_proc.h"
#include "test_util.h"

// The micro run: a 2-layer model, 30 SFT steps, 8 RL steps of 4 prompts x 4 samples.
static const char *MICRO[] = {"--set", "model.hidden_size=32",
                              "--set", "model.num_hidden_layers=2",
                              "--set", "model.num_attention_heads=4",
                              "--set", "model.num_key_value_heads=2",
                              "--set", "model.intermediate_size=48",
                              "--set", "sft.steps=30",
                              "--set", "sft.batch_size=8",
                              "--set", "sft.warmup_steps=5",
                              "--set", "algorithm.steps=8",
                              "--set", "rollout.prompts_per_step=4",
                              "--set", "rollout.group_size=4",
                              "--set", "rollout.max_new_tokens=40",
                              "--set", "eval.n=12",
                              "--set", "eval.k=2",
                              "--set", "eval.every=0",
                              "--set", "checkpoint.every=2",
                              "--set", "checkpoint.keep=0",
                              "--set", "data.heldout_size=40",
                              "--set", "logging.progress=never",
                              "--set", "algorithm.lr=3e-3",
                              NULL};

// Starts `rlpipe train configs/tiny.yaml MICRO... extra...` with out_dir; returns the pid.
static pid_t start_train(const char *out_dir, const char *const *extra) {
    static char out_set[512];
    const char *argv[96];
    test_argv_run(argv, 96, "train", "configs/tiny.yaml", MICRO, out_dir, extra, out_set,
                  sizeof out_set);
    return test_spawn(argv, &(test_proc){.quiet = 1});
}

static int run_train(const char *out_dir, const char *const *extra) {
    return test_wait_code(start_train(out_dir, extra));
}

// Every RL rollout's (step, group, sample, reward, completion) as one string, in order.
static char *rollout_digest(const char *out_dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/rollouts.db", out_dir);
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return NULL;
    sqlite3_stmt *st;
    sqlite3_prepare_v2(
        db,
        "SELECT r.step, r.group_id, r.sample_idx, r.reward, r.completion FROM rollouts r "
        "JOIN runs u ON u.id = r.run_id WHERE u.name = 'tiny' "
        "ORDER BY r.step, r.group_id, r.sample_idx",
        -1, &st, NULL);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    out[0] = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        char line[1024];
        int n = snprintf(line, sizeof line, "%d %d %d %.17g %s\n", sqlite3_column_int(st, 0),
                         sqlite3_column_int(st, 1), sqlite3_column_int(st, 2),
                         sqlite3_column_double(st, 3), (const char *)sqlite3_column_text(st, 4));
        if (n < 0) break;
        if (len + (size_t)n + 1 > cap) out = realloc(out, cap = 2 * (cap + (size_t)n));
        memcpy(out + len, line, (size_t)n + 1);
        len += (size_t)n;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

// The number of steps of run `name` logged so far (-1 while the log does not exist yet).
static int run_steps(const char *out_dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/rollouts.db", out_dir);
    struct stat sb;
    if (stat(path, &sb) != 0) return -1;
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return -1;
    sqlite3_busy_timeout(db, 1000);
    sqlite3_stmt *st;
    int n = -1;
    if (sqlite3_prepare_v2(
            db, "SELECT count(*) FROM steps s JOIN runs u ON u.id = s.run_id WHERE u.name = ?", -1,
            &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

static int logged_steps(const char *out_dir) {
    return run_steps(out_dir, "tiny");
}

static void rm_rf(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// Kills a training run (SIGKILL) once run `name` has logged `at_step` steps plus `delay_ms`,
// resumes it until it finishes, and compares with the uninterrupted reference.
static void kill_and_resume(const char *ref_dir, const char *dir, const char *name, int at_step,
                            int delay_ms) {
    rm_rf(dir);
    pid_t pid = start_train(dir, NULL);
    for (int i = 0; i < 30000 && run_steps(dir, name) < at_step; i++) sleep_ms(2);
    sleep_ms(delay_ms);
    kill(pid, SIGKILL);
    test_wait_code(pid);
    char final_path[600];
    snprintf(final_path, sizeof final_path, "%s/final/model.safetensors", dir);
    CHECK(access(final_path, F_OK) != 0, "the run was killed before it finished (%s after step %d)",
          name, at_step);
    const char *resume[] = {"--resume", NULL};
    int code = run_train(dir, resume);
    CHECK(code == 0, "resumed run (killed at %s step %d + %d ms) exits %d", name, at_step, delay_ms,
          code);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/final/model.safetensors", ref_dir);
    snprintf(b, sizeof b, "%s/final/model.safetensors", dir);
    size_t la = 0, lb = 0;
    char *wa = test_read_file(a, &la), *wb = test_read_file(b, &lb);
    CHECK(wa && wb && la == lb && memcmp(wa, wb, la) == 0,
          "final weights identical after kill at step %d + %d ms (%zu vs %zu bytes)", at_step,
          delay_ms, la, lb);
    char *da = rollout_digest(ref_dir), *db = rollout_digest(dir);
    CHECK(da && db && strcmp(da, db) == 0,
          "logged rollouts and rewards identical (no duplicates) after kill at "
          "step %d + %d ms",
          at_step, delay_ms);
    free(wa);
    free(wb);
    free(da);
    free(db);
}

// Per-process scratch directories, so concurrent runs of this test (two checkouts on one
// machine) never share them: /tmp/rlpipe-test-train-<pid>-<name>. Four rotating buffers.
static const char *tmp_dir(const char *name) {
    static char bufs[4][128];
    static int next = 0;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "/tmp/rlpipe-test-train-%ld-%s", (long)getpid(), name);
    return b;
}

static void test_resume_determinism(void) {
    char ref[128];
    snprintf(ref, sizeof ref, "%s", tmp_dir("ref"));
    rm_rf(ref);
    int code = run_train(ref, NULL);
    CHECK(code == 0, "uninterrupted micro run exits 0 (got %d)", code);
    CHECK(logged_steps(ref) == 8, "8 RL steps logged");
    // Killed in the middle of the cold-start SFT, and mid-RL at different moments (right after
    // a step, a little later, after a checkpoint).
    kill_and_resume(ref, tmp_dir("k1"), "tiny-sft", 10, 0);
    kill_and_resume(ref, tmp_dir("k2"), "tiny", 3, 0);
    kill_and_resume(ref, tmp_dir("k3"), "tiny", 5, 20);
    // A second fresh start on the same directory is refused, and leaves the log untouched.
    int before = logged_steps(ref);
    code = run_train(ref, NULL);
    CHECK(code == 2, "a fresh start over an existing run exits 2 (got %d)", code);
    CHECK(logged_steps(ref) == before, "and loses nothing");
}

// The one query the issue asks for: per-step accuracy and reward by verifier.
static void test_per_step_query(void) {
    sqlite3 *db;
    char ref_db[256];
    snprintf(ref_db, sizeof ref_db, "%s/rollouts.db", tmp_dir("ref"));
    CHECK(sqlite3_open_v2(ref_db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "open");
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        db,
        "SELECT step, reward_mean, accuracy, path_quality, format, efficiency "
        "FROM step_summary WHERE run_id = (SELECT id FROM runs WHERE name = 'tiny') "
        "ORDER BY step",
        -1, &st, NULL);
    CHECK(rc == SQLITE_OK, "%s", sqlite3_errmsg(db));
    int rows = 0;
    while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        rows++;
        for (int c = 1; c < 6; c++) {
            double v = sqlite3_column_double(st, c);
            CHECK(sqlite3_column_type(st, c) != SQLITE_NULL && v >= 0 && v <= 1,
                  "step %d column %d = %g", rows, c, v);
        }
    }
    CHECK(rows == 8, "one row per step (got %d)", rows);
    sqlite3_finalize(st);
    // Both evaluations exist: RL step 0 (before any update) and the last step.
    rc = sqlite3_prepare_v2(
        db,
        "SELECT step FROM evals e JOIN runs u ON u.id = e.run_id WHERE u.name = 'tiny' "
        "AND split = 'heldout' ORDER BY step",
        -1, &st, NULL);
    int steps[4], n = 0;
    while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW && n < 4)
        steps[n++] = sqlite3_column_int(st, 0);
    CHECK(n == 2 && steps[0] == 0 && steps[1] == 8, "held-out evals at steps 0 and 8 (%d rows)", n);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

// A corrupted reference policy (a NaN in one weight) makes the KL term, and so every loss,
// non-finite: each update is skipped and logged, and the run stops after max_nonfinite_steps in a
// row with exit code 1 and the run marked failed.
static void test_nonfinite_updates_stop_the_run(void) {
    char dir[128];
    snprintf(dir, sizeof dir, "%s", tmp_dir("nan"));
    rm_rf(dir);
    char model_dir[512], ref_dir[512], cmd[2048];
    snprintf(model_dir, sizeof model_dir, "%s/start", dir);
    snprintf(ref_dir, sizeof ref_dir, "%s/checkpoints/reference", dir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/checkpoints && %s model init --config configs/tiny.yaml --set "
             "model.hidden_size=32 "
             "--set model.num_hidden_layers=2 --set model.num_attention_heads=4 --set "
             "model.num_key_value_heads=2 "
             "--set model.intermediate_size=48 --out %s >/dev/null 2>&1 && cp -r %s %s",
             dir, test_rlpipe_bin(), model_dir, model_dir, ref_dir);
    CHECK(system(cmd) == 0, "set up the start model: %s", cmd);
    // Overwrite the last 4 bytes of the reference weights (the final norm's last element) with a NaN.
    char st_path[600];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", ref_dir);
    FILE *f = fopen(st_path, "r+b");
    CHECK(f != NULL, "open %s", st_path);
    if (!f) return;
    const unsigned char nan_bits[4] = {0x00, 0x00, 0xc0, 0x7f};
    fseek(f, -4, SEEK_END);
    fwrite(nan_bits, 1, 4, f);
    fclose(f);
    char model_set[600];
    snprintf(model_set, sizeof model_set, "model.path=%s", model_dir);
    const char *extra[] = {"--set",    model_set,
                           "--set",    "sft.enabled=false",
                           "--set",    "algorithm.kl_coef=0.1",
                           "--set",    "algorithm.max_nonfinite_steps=2",
                           "--set",    "eval.at_start=false",
                           "--resume", NULL};
    int code = run_train(dir, extra);
    CHECK(code == 1, "non-finite run exits 1 (got %d)", code);
    char path[512];
    snprintf(path, sizeof path, "%s/rollouts.db", dir);
    sqlite3 *db;
    CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "open");
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT count(*), sum(nonfinite) FROM steps", -1, &st, NULL);
    int rows = 0, nonfinite = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        rows = sqlite3_column_int(st, 0);
        nonfinite = sqlite3_column_int(st, 1);
    }
    sqlite3_finalize(st);
    sqlite3_prepare_v2(db, "SELECT status FROM runs WHERE name = 'tiny'", -1, &st, NULL);
    char status[32] = "";
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(status, sizeof status, "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    CHECK(rows == 2 && nonfinite == 2, "two skipped updates logged (%d of %d steps)", nonfinite,
          rows);
    CHECK(strcmp(status, "failed") == 0, "run marked failed (%s)", status);
    // The policy itself was never touched: it is still the start model.
    rm_rf(dir);
}

int main(void) {
    if (access(test_rlpipe_bin(), X_OK) != 0) {
        fprintf(stderr, "rlpipe binary not found at %s\n", test_rlpipe_bin());
        return 1;
    }
    RUN(test_resume_determinism);
    RUN(test_per_step_query);
    RUN(test_nonfinite_updates_stop_the_run);
    static const char *const dirs[] = {"k1", "k2", "k3", "ref", "nan"};
    for (int i = 0; i < 5; i++) rm_rf(tmp_dir(dirs[i]));
    return test_summary();
}
