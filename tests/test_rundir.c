// test_rundir: what a run does to its directory, through the rlpipe binary on a micro config:
//   - one process at a time: a --resume (or sft, or eval) started while a run trains exits 2
//     naming the holder's pid, and the live run's rows are untouched;
//   - temporary directories of killed saves (final.tmp-*, sft.tmp-*, checkpoints/.tmp-step-*)
//     are removed by the next run, and nothing else is;
//   - output paths that exist as the wrong kind are refused before the first step (exit 2, no
//     log, nothing created);
//   - checkpoint pruning deletes only checkpoints the run wrote;
//   - another connection holding the log's write lock longer than 5 s no longer kills the run
//     (logging.busy_timeout_s), a lock held past the timeout fails the run with status 'failed',
//     and SIGTERM / SIGINT stop it after the step with a checkpoint and status 'interrupted',
//     from which --resume finishes the run.
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "test_proc.h"
#include "test_util.h"

static const char *MICRO[] = {"--set", "model.hidden_size=32",
                              "--set", "model.num_hidden_layers=2",
                              "--set", "model.num_attention_heads=4",
                              "--set", "model.num_key_value_heads=2",
                              "--set", "model.intermediate_size=48",
                              "--set", "sft.steps=10",
                              "--set", "sft.batch_size=4",
                              "--set", "sft.warmup_steps=2",
                              "--set", "rollout.prompts_per_step=4",
                              "--set", "rollout.group_size=4",
                              "--set", "rollout.max_new_tokens=40",
                              "--set", "eval.n=8",
                              "--set", "eval.k=2",
                              "--set", "data.heldout_size=40",
                              "--set", "logging.progress=never",
                              NULL};

// Starts `rlpipe CMD configs/tiny.yaml MICRO... run.out_dir=DIR extra...`; stderr to err_path.
static pid_t start(const char *cmd, const char *dir, const char *const *extra,
                   const char *err_path) {
    const char *argv[96];
    char out_set[512];
    test_argv_run(argv, 96, cmd, "configs/tiny.yaml", MICRO, dir, extra, out_set, sizeof out_set);
    return test_spawn(argv, &(test_proc){.quiet = 1, .err_path = err_path});
}

static char ERR[8192];
static char ERR_PATH[128]; // per process, like every directory below

// "/tmp/rlpipe-test-rundir-<pid>-<what>" in a static buffer of its own per call site.
#define TDIR(what)                                                                                 \
    (snprintf(tdir_##what, sizeof tdir_##what, "/tmp/rlpipe-test-rundir-%ld-" #what,               \
              (long)getpid()),                                                                     \
     tdir_##what)
static char tdir_lock[128], tdir_clean[128], tdir_out[128], tdir_busy[128], tdir_sig[128];

static const char *read_err(const char *path) {
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(ERR, 1, sizeof ERR - 1, f) : 0;
    ERR[n] = '\0';
    if (f) fclose(f);
    return ERR;
}

static int run_cmd(const char *cmd, const char *dir, const char *const *extra) {
    return test_wait_code(start(cmd, dir, extra, ERR_PATH));
}

static void rm_rf(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

static void sh(const char *fmt, const char *a, const char *b) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    CHECK(system(cmd) == 0, "%s", cmd);
}

static int exists(const char *dir, const char *name) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// SELECT on the run's log: the first column of the first row as text ("" when none).
static const char *q(const char *dir, const char *sql, char *buf, size_t size) {
    char path[600];
    snprintf(path, sizeof path, "%s/rollouts.db", dir);
    buf[0] = '\0';
    if (access(path, F_OK) != 0) return buf;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 2000);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return buf;
}

static int rl_steps(const char *dir) {
    char b[64];
    q(dir, "SELECT count(*) FROM steps s JOIN runs u ON u.id = s.run_id WHERE u.name = 'tiny'", b,
      sizeof b);
    return b[0] ? atoi(b) : -1;
}

static const char *status_of(const char *dir, const char *name, char *buf, size_t size) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT status FROM runs WHERE name = '%s'", name);
    return q(dir, sql, buf, size);
}

// 1 while process pid has not exited (a zombie has).
static int alive(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && paren[2] != 'Z';
}

// Waits (at most a minute) until run 'tiny' has logged n steps or pid has exited.
static void wait_steps(const char *dir, int n, pid_t pid) {
    for (int i = 0; i < 20000 && rl_steps(dir) < n && alive(pid); i++) sleep_ms(3);
}

// (a) A second process on a live run directory.
static void test_one_process_per_run_dir(void) {
    const char *dir = TDIR(lock);
    rm_rf(dir);
    const char *slow[] = {"--set", "algorithm.steps=40", "--set", "rollout.max_new_tokens=80",
                          "--set", "checkpoint.every=1", NULL};
    pid_t a = start("train", dir, slow, NULL);
    wait_steps(dir, 2, a);
    CHECK(rl_steps(dir) >= 2 && alive(a), "the first run is training");
    const char *resume[] = {"--set", "algorithm.steps=40", "--set",    "rollout.max_new_tokens=80",
                            "--set", "checkpoint.every=1", "--resume", NULL};
    int code = run_cmd("train", dir, resume);
    const char *err = read_err(ERR_PATH);
    char pid_text[32];
    snprintf(pid_text, sizeof pid_text, "pid %ld", (long)a);
    CHECK(code == 2, "a --resume while the run trains exits %d (want 2): %s", code, err);
    CHECK(strstr(err, pid_text) != NULL, "the refusal names the holder (%s): %s", pid_text, err);
    code = run_cmd("sft", dir, NULL);
    CHECK(code == 2 && strstr(read_err(ERR_PATH), pid_text), "sft on the live run dir exits %d: %s",
          code, ERR);
    code = run_cmd("eval", dir, NULL);
    CHECK(code == 2 && strstr(read_err(ERR_PATH), pid_text),
          "eval on the live run dir exits %d: %s", code, ERR);
    code = test_wait_code(a);
    CHECK(code == 0, "the first run finishes undisturbed (exit %d)", code);
    char b[64];
    CHECK(rl_steps(dir) == 40, "all 40 steps logged once (%d)", rl_steps(dir));
    q(dir,
      "SELECT count(*) FROM (SELECT step, group_id, sample_idx FROM rollouts GROUP BY 1, 2, 3 "
      "HAVING count(*) > 1)",
      b, sizeof b);
    CHECK(strcmp(b, "0") == 0, "no duplicated rollouts (%s)", b);
    CHECK(strcmp(status_of(dir, "tiny", b, sizeof b), "finished") == 0, "status %s", b);
    // Once it has ended, the directory is free again.
    code = run_cmd("train", dir, resume);
    CHECK(code == 0, "a --resume after the run ended exits %d: %s", code, read_err(ERR_PATH));
    rm_rf(dir);
}

// (b) + (d): leftovers of killed saves are removed, look-alikes are not; pruning deletes only
// the run's own checkpoints.
static void test_leftovers_and_pruning(void) {
    const char *dir = TDIR(clean);
    rm_rf(dir);
    sh("mkdir -p %s/checkpoints && cd %s && mkdir final.tmp-a1B2c3 sft.tmp-Zz9Yy8 final.old-Qq1Ww2 "
       "checkpoints/.tmp-step-00000004-Ab12Cd checkpoints/reference.tmp-x1y2z3 "
       "final.tmp-notmine sft.tmp-abc mine.tmp-a1B2c3 checkpoints/.tmp-step-4-Ab12Cd "
       "checkpoints/step-00000001 checkpoints/step-00000003 && "
       "echo keep > final.tmp-a1B2c3/weights && echo keep > checkpoints/step-00000001/notes.txt && "
       "echo keep > checkpoints/step-00000003/trainer_state.json && "
       "touch final.tmp-zzzzzz",
       dir, dir);
    const char *extra[] = {"--set", "algorithm.steps=6", "--set", "checkpoint.every=2",
                           "--set", "checkpoint.keep=2", NULL};
    int code = run_cmd("train", dir, extra);
    read_err(ERR_PATH);
    CHECK(code == 0, "run exits %d: %s", code, ERR);
    const char *gone[] = {"final.tmp-a1B2c3", "sft.tmp-Zz9Yy8", "final.old-Qq1Ww2",
                          "checkpoints/.tmp-step-00000004-Ab12Cd",
                          "checkpoints/reference.tmp-x1y2z3"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        CHECK(!exists(dir, gone[i]), "%s was not removed", gone[i]);
    const char *kept[] = {"final.tmp-notmine",
                          "sft.tmp-abc",
                          "mine.tmp-a1B2c3",
                          "checkpoints/.tmp-step-4-Ab12Cd",
                          "final.tmp-zzzzzz",
                          "checkpoints/step-00000001/notes.txt",
                          "checkpoints/step-00000003/trainer_state.json"};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        CHECK(exists(dir, kept[i]), "%s (not a leftover of ours) was removed", kept[i]);
    CHECK(strstr(ERR, "final.tmp-a1B2c3") != NULL, "the removal is reported: %s", ERR);
    // keep=2 of the run's own (2, 4, 6): 4 and 6 stay, 2 is pruned; the older foreign 1 and 3,
    // which the old pruning deleted as the oldest, are untouched.
    CHECK(exists(dir, "checkpoints/step-00000006/rlpipe_checkpoint.json") &&
              exists(dir, "checkpoints/step-00000004/model/config.json"),
          "the newest two checkpoints are kept");
    CHECK(!exists(dir, "checkpoints/step-00000002"), "older own checkpoints are pruned");
    rm_rf(dir);
}

// (c) Output paths of the wrong kind are refused before the first step.
static void test_outputs_checked_first(void) {
    const char *dir = TDIR(out);
    struct {
        const char *setup; // shell, %s = dir (twice)
        const char *cmd;
        const char *needle;
    } cases[] = {
        {"mkdir -p %s/final && echo mine > %s/final/notes.txt", "train", "final"},
        {"mkdir -p %s && echo mine > %s/final", "train", "final"},
        {"mkdir -p %s/sft && echo mine > %s/sft/notes.txt", "train", "sft"},
        {"mkdir -p %s/sft && echo mine > %s/sft/notes.txt", "sft", "sft"},
        {"mkdir -p %s && ln -s /tmp %s/final", "train", "final"},
        {"mkdir -p %s && echo x > %s/checkpoints", "train", "checkpoint.dir"},
        {"mkdir -p %s/rollouts.db && touch %s/rollouts.db/x", "train", "logging.db"},
        {"echo x > %s; true %s", "train", "run.out_dir"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rm_rf(dir);
        sh(cases[i].setup, dir, dir);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int code = run_cmd(cases[i].cmd, dir, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        const char *err = read_err(ERR_PATH);
        CHECK(code == 2, "case %zu (%s): exit %d (want 2): %s", i, cases[i].cmd, code, err);
        CHECK(strstr(err, cases[i].needle) && strchr(err, '\n') == err + strlen(err) - 1,
              "case %zu: one line naming %s: %s", i, cases[i].needle, err);
        CHECK(!exists(dir, "rollouts.db") || i == 6, "case %zu: a log was created", i);
        CHECK(!exists(dir, "checkpoints/step-00000001") && !exists(dir, "sft/config.json"),
              "case %zu: training started", i);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        CHECK(secs < 20, "case %zu took %.1f s", i, secs);
    }
    rm_rf(dir);
    // What was there is still there.
    sh("mkdir -p %s/final && echo mine > %s/final/notes.txt", dir, dir);
    run_cmd("train", dir, NULL);
    CHECK(exists(dir, "final/notes.txt"), "final/notes.txt survived");
    rm_rf(dir);
}

// (e) A lock held by another connection: waited out, or the run fails and says so.
static void hold_lock_after_step(const char *dir, int step, int hold_ms, pid_t pid) {
    wait_steps(dir, step, pid);
    if (!alive(pid)) return;
    char path[600];
    snprintf(path, sizeof path, "%s/rollouts.db", dir);
    sqlite3 *db = NULL;
    sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    sqlite3_busy_timeout(db, 5000);
    CHECK(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK, "lock: %s",
          sqlite3_errmsg(db));
    sleep_ms(hold_ms);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
}

static void test_busy_log(void) {
    const char *dir = TDIR(busy);
    rm_rf(dir);
    // 6.5 s of someone else's write lock (the old fixed limit was 5 s), with the default
    // logging.busy_timeout_s: the run waits and finishes.
    const char *patient[] = {"--set", "algorithm.steps=4", NULL};
    pid_t a = start("train", dir, patient, ERR_PATH);
    hold_lock_after_step(dir, 1, 6500, a);
    int code = test_wait_code(a);
    char b[64];
    CHECK(code == 0, "a run outwaits a 6.5 s lock (exit %d): %s", code, read_err(ERR_PATH));
    CHECK(rl_steps(dir) == 4, "all steps logged (%d)", rl_steps(dir));
    CHECK(strcmp(status_of(dir, "tiny", b, sizeof b), "finished") == 0, "status %s", b);
    // Held past a 1 s timeout: the run fails with the key in the message, and its status is
    // recorded once the lock is free.
    rm_rf(dir);
    const char *hasty[] = {"--set", "algorithm.steps=4", "--set", "logging.busy_timeout_s=1", NULL};
    a = start("train", dir, hasty, ERR_PATH);
    hold_lock_after_step(dir, 1, 3000, a);
    code = test_wait_code(a);
    const char *err = read_err(ERR_PATH);
    CHECK(code == 1, "a lock held past the timeout fails the run (exit %d): %s", code, err);
    CHECK(strstr(err, "logging.busy_timeout_s") != NULL, "the message names the key: %s", err);
    CHECK(strcmp(status_of(dir, "tiny", b, sizeof b), "failed") == 0, "status '%s', not running",
          b);
    rm_rf(dir);
}

// (e) SIGTERM and SIGINT: stop after the step, checkpoint, status 'interrupted'; --resume ends it.
static void test_stop_signals(void) {
    const char *dir = TDIR(sig);
    int sigs[2] = {SIGTERM, SIGINT};
    for (int k = 0; k < 2; k++) {
        rm_rf(dir);
        const char *extra[] = {"--set", "algorithm.steps=30", "--set", "checkpoint.every=0", NULL};
        pid_t a = start("train", dir, extra, ERR_PATH);
        wait_steps(dir, 2, a);
        kill(a, sigs[k]);
        int code = test_wait_code(a);
        const char *err = read_err(ERR_PATH);
        char b[64];
        CHECK(code == 128 + sigs[k], "signal %d: exit %d (want %d): %s", sigs[k], code,
              128 + sigs[k], err);
        CHECK(strcmp(status_of(dir, "tiny", b, sizeof b), "interrupted") == 0,
              "signal %d: status '%s'", sigs[k], b);
        int steps = rl_steps(dir);
        char ck[64];
        snprintf(ck, sizeof ck, "checkpoints/step-%08d/trainer_state.json", steps);
        CHECK(steps >= 2 && steps < 30 && exists(dir, ck),
              "signal %d: a checkpoint at the last logged step %d", sigs[k], steps);
        CHECK(strstr(err, "--resume") != NULL, "the message says how to go on: %s", err);
        const char *resume[] = {
            "--set", "algorithm.steps=30", "--set", "checkpoint.every=0", "--resume", NULL};
        code = run_cmd("train", dir, resume);
        CHECK(code == 0, "resume after signal %d exits %d: %s", sigs[k], code, read_err(ERR_PATH));
        CHECK(rl_steps(dir) == 30 && strcmp(status_of(dir, "tiny", b, sizeof b), "finished") == 0,
              "resumed to the end: %d steps, %s", rl_steps(dir), b);
    }
    rm_rf(dir);
}

int main(void) {
    if (access(test_rlpipe_bin(), X_OK) != 0) {
        fprintf(stderr, "rlpipe binary not found at %s\n", test_rlpipe_bin());
        return 1;
    }
    snprintf(ERR_PATH, sizeof ERR_PATH, "/tmp/rlpipe-test-rundir-%ld.err", (long)getpid());
    RUN(test_outputs_checked_first);
    RUN(test_leftovers_and_pruning);
    RUN(test_one_process_per_run_dir);
    RUN(test_busy_log);
    RUN(test_stop_signals);
    unlink(ERR_PATH);
    return test_summary();
}
