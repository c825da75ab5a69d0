// test_distill_cli: `rlpipe distill` end to end on micro models. A student distilled from a
// random, sharply peaked teacher lowers its KL and its perplexity on teacher-written text; every
// step is in the log (steps + distill_steps) with held-out evaluations; the top-k cache is
// written once, reused bit for bit by the next run and refused when damaged; fixed tau is logged
// as such; the on-policy and dataset sources run; bad configs and a teacher with another
// vocabulary are refused with exit 2 before anything is written.
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_proc.h"
#include "test_util.h"

static char DIR_[64];
static char OUT[16384], ERR[16384];

// Runs rlpipe with args (NULL-terminated), capturing stdout and stderr; returns the exit code.
static int rlpipe(const char *const *args) {
    const char *argv[128];
    test_argv_rlpipe(argv, 128, args);
    return test_run_capture(argv, NULL, OUT, sizeof OUT, ERR, sizeof ERR);
}

#define MICRO_MODEL                                                                                \
    "--set", "model.hidden_size=32", "--set", "model.num_hidden_layers=1", "--set",                \
        "model.num_attention_heads=2", "--set", "model.num_key_value_heads=1", "--set",            \
        "model.intermediate_size=48", "--set", "model.max_position_embeddings=128"

// A distill run of the micro student from the teacher in DIR_/teacher, into DIR_/<name>.
static int distill(const char *name, const char *const *extra) {
    static char teacher[128], out[128], run_name[128];
    snprintf(teacher, sizeof teacher, "distill.teacher=%s/teacher", DIR_);
    snprintf(out, sizeof out, "run.out_dir=%s/%s", DIR_, name);
    snprintf(run_name, sizeof run_name, "run.name=%s", name);
    const char *base[] = {"distill",
                          "configs/distill-student.yaml",
                          MICRO_MODEL,
                          "--set",
                          teacher,
                          "--set",
                          out,
                          "--set",
                          run_name,
                          "--set",
                          "distill.examples=24",
                          "--set",
                          "distill.batch_size=6",
                          "--set",
                          "distill.steps=30",
                          "--set",
                          "distill.warmup_steps=2",
                          "--set",
                          "distill.eval_n=6",
                          "--set",
                          "eval.n=4",
                          "--set",
                          "eval.k=1",
                          "--set",
                          "rollout.max_new_tokens=20",
                          "--set",
                          "distill.cache_topk=0",
                          "--set",
                          "distill.lr=1e-2",
                          "--set",
                          "data.heldout_size=8",
                          "--set",
                          "run.threads=1"};
    const char *argv[128];
    int n = 0;
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) argv[n++] = base[i];
    for (int i = 0; extra && extra[i]; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    return rlpipe(argv);
}

static sqlite3 *open_db(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s/rollouts.db", DIR_, name);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static double q(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    double v = NAN;
    if (db && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int exists(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", DIR_, name);
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void make_teacher(void) {
    char out[128];
    snprintf(out, sizeof out, "%s/teacher", DIR_);
    // A random model with large weights: sharply peaked, varied distributions to learn.
    const char *args[] = {"model",
                          "init",
                          "--config",
                          "configs/distill-student.yaml",
                          MICRO_MODEL,
                          "--set",
                          "model.num_hidden_layers=2",
                          "--set",
                          "model.init_std=0.3",
                          "--out",
                          out,
                          "--seed",
                          "5",
                          NULL};
    CHECK(rlpipe(args) == 0, "teacher init: %s", ERR);
}

static void test_distill_lowers_kl_and_logs(void) {
    CHECK(distill("dyn", NULL) == 0, "distill: %s", ERR);
    sqlite3 *db = open_db("dyn");
    CHECK(db != NULL, "log");
    CHECK(q(db, "SELECT COUNT(*) FROM distill_steps") == 30, "30 distill rows");
    CHECK(q(db, "SELECT COUNT(*) FROM steps WHERE phase = 'distill' AND loss IS NOT NULL"
                " AND grad_norm IS NOT NULL AND lr IS NOT NULL") == 30,
          "30 steps rows");
    double p0 = q(db, "SELECT perplexity FROM evals WHERE split = 'teacher_text' AND step = 0");
    double p1 = q(db, "SELECT perplexity FROM evals WHERE split = 'teacher_text' AND step = 30");
    CHECK(p1 < 0.9 * p0, "perplexity on teacher text fell from %g to %g", p0, p1);
    CHECK(q(db, "SELECT COUNT(*) FROM evals WHERE split = 'heldout' AND pass_at_1 IS NOT NULL") ==
              2,
          "held-out pass@1 at the start and the end");
    // dynamic tau: within [tau_min * s_end, tau_max * s_start], decaying over the run
    double t_first = q(db, "SELECT tau_mean FROM distill_steps WHERE step = 1");
    double t_last = q(db, "SELECT tau_mean FROM distill_steps WHERE step = 30");
    CHECK(t_first > t_last, "tau decays: %g -> %g", t_first, t_last);
    CHECK(q(db, "SELECT MIN(tau_min) FROM distill_steps") >= 0.5 - 1e-9 &&
              q(db, "SELECT MAX(tau_max) FROM distill_steps") <= 3.0 + 1e-9,
          "tau within its range");
    CHECK(q(db, "SELECT MIN(teacher_entropy) FROM distill_steps") > 0, "teacher entropy logged");
    sqlite3_close(db);
    CHECK(exists("dyn/distill/config.json"), "student saved");
    CHECK(strstr(OUT, "held-out perplexity on teacher text") != NULL, "summary printed: %s", OUT);
}

static void test_fixed_reverse(void) {
    // At a fixed temperature the KL of successive steps is comparable: it must fall.
    const char *extra[] = {"--set", "distill.tau=fixed",  "--set", "distill.tau_fixed=2.5",
                           "--set", "distill.kl=reverse", NULL};
    CHECK(distill("rev", extra) == 0, "reverse: %s", ERR);
    sqlite3 *db = open_db("rev");
    CHECK(q(db, "SELECT COUNT(*) FROM distill_steps WHERE ABS(tau_mean - 2.5) < 1e-9 AND"
                " ABS(tau_min - 2.5) < 1e-9 AND ABS(tau_max - 2.5) < 1e-9") == 30,
          "fixed tau logged as 2.5");
    double first = q(db, "SELECT AVG(kl) FROM distill_steps WHERE step <= 5");
    double last = q(db, "SELECT AVG(kl) FROM distill_steps WHERE step > 25");
    CHECK(last < 0.8 * first, "reverse KL fell from %g to %g", first, last);
    sqlite3_close(db);
    const char *fwd[] = {"--set", "distill.tau=fixed", "--set", "distill.tau_fixed=1", NULL};
    CHECK(distill("fwd", fwd) == 0, "forward: %s", ERR);
    db = open_db("fwd");
    first = q(db, "SELECT AVG(kl) FROM distill_steps WHERE step <= 5");
    last = q(db, "SELECT AVG(kl) FROM distill_steps WHERE step > 25");
    CHECK(last < 0.8 * first, "forward KL fell from %g to %g", first, last);
    sqlite3_close(db);
}

static void test_cache_roundtrip(void) {
    char cache[128], set[160];
    snprintf(cache, sizeof cache, "%s/topk.bin", DIR_);
    snprintf(set, sizeof set, "distill.cache_path=%s", cache);
    const char *extra[] = {"--set", "distill.cache_topk=8", "--set", set,
                           "--set", "distill.steps=6",      "--set", "logging.progress=always",
                           NULL};
    CHECK(distill("c1", extra) == 0, "cache write: %s", ERR);
    CHECK(strstr(ERR, "cached in") != NULL, "first run scores the teacher: %s", ERR);
    struct stat sb;
    CHECK(stat(cache, &sb) == 0 && sb.st_size > 0, "cache file written");
    CHECK(distill("c2", extra) == 0, "cache reuse: %s", ERR);
    CHECK(strstr(ERR, "reused") != NULL, "second run reuses the cache: %s", ERR);
    sqlite3 *a = open_db("c1"), *b = open_db("c2");
    for (int s = 1; s <= 6; s++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT loss FROM steps WHERE step = %d", s);
        double la = q(a, sql), lb = q(b, sql);
        CHECK(la == lb && isfinite(la), "step %d: loss %.17g from the fresh cache, %.17g reused", s,
              la, lb);
    }
    sqlite3_close(a);
    sqlite3_close(b);
    // another k: not the same cache, scored again (not an error)
    const char *k4[] = {"--set", "distill.cache_topk=4", "--set", set,
                        "--set", "distill.steps=2",      "--set", "logging.progress=always",
                        NULL};
    CHECK(distill("c3", k4) == 0 && strstr(ERR, "cached in"), "k changed: rebuilt: %s", ERR);
    // a damaged cache: refused with exit 2 naming the file
    CHECK(distill("c4", k4) == 0 && strstr(ERR, "reused"), "k=4 reused: %s", ERR);
    FILE *f = fopen(cache, "r+b");
    if (f) {
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fclose(f);
        CHECK(truncate(cache, n - 7) == 0, "truncate cache");
    }
    CHECK(distill("c5", k4) == 2, "damaged cache exit code");
    CHECK(strstr(ERR, "damaged") && strstr(ERR, cache), "message: %s", ERR);
    // not a cache at all
    f = fopen(cache, "wb");
    fputs("hello, this is not a cache file", f);
    fclose(f);
    CHECK(distill("c6", k4) == 2 && strstr(ERR, "not an rlpipe teacher cache"), "foreign: %s", ERR);
}

static void test_sources(void) {
    const char *onp[] = {"--set", "distill.source=on_policy", "--set", "distill.steps=3", NULL};
    CHECK(distill("onp", onp) == 0, "on-policy: %s", ERR);
    sqlite3 *db = open_db("onp");
    CHECK(q(db, "SELECT COUNT(*) FROM distill_steps WHERE n_tokens > 0") == 3, "on-policy rows");
    sqlite3_close(db);
    const char *ds[] = {"--set", "distill.source=dataset", "--set", "distill.steps=3", NULL};
    CHECK(distill("ds", ds) == 0, "dataset: %s", ERR);
    db = open_db("ds");
    CHECK(q(db, "SELECT COUNT(*) FROM distill_steps WHERE n_tokens > 0") == 3, "dataset rows");
    sqlite3_close(db);
    // the dataset source with a cache: scored once, then reused
    char set[160];
    snprintf(set, sizeof set, "distill.cache_path=%s/ds-topk.bin", DIR_);
    const char *dsc[] = {"--set", "distill.source=dataset",  "--set", "distill.steps=2",
                         "--set", "distill.cache_topk=4",    "--set", set,
                         "--set", "logging.progress=always", NULL};
    CHECK(distill("dsc1", dsc) == 0 && strstr(ERR, "cached in"), "dataset cache: %s", ERR);
    CHECK(distill("dsc2", dsc) == 0 && strstr(ERR, "reused"), "dataset cache reused: %s", ERR);
}

static void expect_refused(const char *name, const char *const *extra, const char *needle) {
    int code = distill(name, extra);
    CHECK(code == 2, "%s: exit %d (want 2): %s", name, code, ERR);
    CHECK(strstr(ERR, needle) != NULL, "%s: message lacks '%s': %s", name, needle, ERR);
    CHECK(strchr(ERR, '\n') == strrchr(ERR, '\n'), "%s: one line: %s", name, ERR);
    CHECK(!exists(name), "%s: nothing written on bad input", name);
}

static void test_config_errors(void) {
    const char *no_teacher[] = {"--set", "distill.teacher=", NULL};
    expect_refused("e1", no_teacher, "distill.teacher");
    const char *missing[] = {"--set", "distill.teacher=/nonexistent/teacher", NULL};
    expect_refused("e2", missing, "/nonexistent/teacher");
    const char *range[] = {"--set", "distill.tau_min=3", "--set", "distill.tau_max=2", NULL};
    expect_refused("e3", range, "distill.tau_m");
    const char *cache_onp[] = {"--set", "distill.source=on_policy", "--set", "distill.cache_topk=4",
                               NULL};
    expect_refused("e4", cache_onp, "distill.cache_topk");
    const char *bad_kl[] = {"--set", "distill.kl=sideways", NULL};
    expect_refused("e5", bad_kl, "distill.kl");
    const char *bad_tau[] = {"--set", "distill.tau_fixed=0", NULL};
    expect_refused("e6", bad_tau, "distill.tau_fixed");
    // a teacher with another vocabulary (the Qwen2 tokenizer's 151k tokens against 256 bytes)
    const char *shared = test_shared_dir();
    if (shared) {
        char tok[256], out[128];
        snprintf(tok, sizeof tok, "tokenizer.path=%s/data/qwen2-tokenizer", shared);
        snprintf(out, sizeof out, "%s/qwen-teacher", DIR_);
        const char *init[] = {"model", "init",
                              "--set", "model.hidden_size=8",
                              "--set", "model.num_hidden_layers=1",
                              "--set", "model.num_attention_heads=1",
                              "--set", "model.num_key_value_heads=1",
                              "--set", "model.intermediate_size=8",
                              "--set", "tokenizer.kind=hf",
                              "--set", tok,
                              "--out", out,
                              NULL};
        CHECK(rlpipe(init) == 0, "qwen-vocab teacher: %s", ERR);
        char set[160];
        snprintf(set, sizeof set, "distill.teacher=%s", out);
        const char *vocab[] = {"--set", set, NULL};
        expect_refused("e7", vocab, "vocabulary");
    } else {
        fprintf(stderr, "note: ../shared absent, vocabulary-mismatch check skipped\n");
    }
}

int main(void) {
    snprintf(DIR_, sizeof DIR_, "/tmp/rl_distill_cli_XXXXXX");
    if (!mkdtemp(DIR_)) return 1;
    make_teacher();
    RUN(test_distill_lowers_kl_and_logs);
    RUN(test_fixed_reverse);
    RUN(test_cache_roundtrip);
    RUN(test_sources);
    RUN(test_config_errors);
    if (test_failures_ == 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", DIR_);
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", DIR_);
    } else {
        fprintf(stderr, "files kept in %s\n", DIR_);
    }
    return test_summary();
}
