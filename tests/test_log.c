// Tests of the SQLite rollout log (rollout/log.h) and of `rlpipe logs`: every column written is
// read back (NaN as NULL), the views agree with aggregates computed here independently, a writer
// killed with SIGKILL never leaves a partial step, truncation and resume, version and foreign-file
// refusal, and the CLI's exit codes and read-only SQL.
#define _POSIX_C_SOURCE 200809L
#include "kernels/rng.h"
#include "rollout/log.h"
#include "test_proc.h"
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>

// ---- helpers ----------------------------------------------------------------------------------

typedef struct tdir {
    char dir[64];
    char db[128];
} tdir;

static void tdir_make(tdir *t, const char *dbname) {
    snprintf(t->dir, sizeof t->dir, "/tmp/rlpipe-test-log-XXXXXX");
    if (!mkdtemp(t->dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(t->db, sizeof t->db, "%s/%s", t->dir, dbname);
}

static void tdir_remove(const tdir *t) {
    DIR *d = opendir(t->dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", t->dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(t->dir);
}

static sqlite3 *raw_open(const char *path, int readonly) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        path, &db, readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
        NULL);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "raw_open %s: %s\n", path, sqlite3_errmsg(db));
        exit(1);
    }
    return db;
}

static void raw_exec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "raw_exec %s: %s\n", sql, msg);
        exit(1);
    }
}

// The first column of the first row as an integer (-999 when NULL or no row).
static int64_t q_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    int64_t v = -999;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "q_int %s: %s\n", sql, sqlite3_errmsg(db));
        return -999;
    }
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

// The first column of the first row as text, copied into buf ("<NULL>" when NULL or no row).
static const char *q_text(sqlite3 *db, const char *sql, char *buf, size_t size) {
    sqlite3_stmt *st = NULL;
    snprintf(buf, size, "<NULL>");
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "q_text %s: %s\n", sql, sqlite3_errmsg(db));
        return buf;
    }
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return buf;
}

// Checks a REAL/INTEGER/NULL column against an expected double (NaN = NULL).
static void check_value(sqlite3_stmt *st, int c, double want, int integer, const char *what) {
    int type = sqlite3_column_type(st, c);
    if (isnan(want)) {
        CHECK(type == SQLITE_NULL, "%s: want NULL, got type %d", what, type);
    } else if (integer) {
        CHECK(type == SQLITE_INTEGER && sqlite3_column_int64(st, c) == (int64_t)want,
              "%s: want integer %.0f, got type %d value %lld", what, want, type,
              (long long)sqlite3_column_int64(st, c));
    } else {
        CHECK(type == SQLITE_FLOAT && sqlite3_column_double(st, c) == want,
              "%s: want %.17g, got type %d value %.17g", what, want, type,
              sqlite3_column_double(st, c));
    }
}

static void check_text(sqlite3_stmt *st, int c, const char *want, const char *what) {
    const char *got = (const char *)sqlite3_column_text(st, c);
    if (!want)
        CHECK(sqlite3_column_type(st, c) == SQLITE_NULL, "%s: want NULL", what);
    else
        CHECK(got && strcmp(got, want) == 0, "%s: want '%s', got '%s'", what, want,
              got ? got : "NULL");
}

static double uniform(rl_rng *r, double lo, double hi) {
    return lo + (hi - lo) * rl_rng_double(r);
}

// ---- 1. every column round-trips --------------------------------------------------------------

typedef struct stat_expect {
    const char *name;
    double *field;
    int integer;
} stat_expect;

static void test_roundtrip(void) {
    tdir t;
    tdir_make(&t, "roundtrip.db");
    rl_err err = {0};
    rl_log *log = NULL;
    rl_rng rng = rl_rng_stream(11, RL_RNG_DATA, 1, 0);
    CHECK(rl_log_open(&log, t.db, 1, &err) == 0, "open: %s", err.msg);
    if (!log) return;
    int64_t run = 0, run_big = 0;
    const char *config = "run:\n  name: tiny\n  seed: 42\n";
    CHECK(rl_log_begin_run(log, "tiny", config, 42, &run, &err) == 0, "begin_run: %s", err.msg);
    uint64_t big_seed = UINT64_MAX - 5;
    CHECK(rl_log_begin_run(log, "big-seed", NULL, big_seed, &run_big, &err) == 0, "%s", err.msg);
    CHECK(run != run_big, "distinct run ids");
    CHECK(rl_log_set_run_out_dir(log, run, "runs/tiny", &err) == 0, "%s", err.msg);

    rl_step_stats s;
    rl_step_stats_init(&s);
    s.phase = "rl";
    s.extra_json = "{\"kl_coef\": 0.04, \"note\": \"x\"}";
    double *num[] = {&s.loss,           &s.kl,           &s.clip_frac,
                     &s.grad_norm,      &s.lr,           &s.reward_mean,
                     &s.reward_std,     &s.accuracy,     &s.len_mean,
                     &s.truncated_frac, &s.tokens_per_s, &s.train_tokens_per_s,
                     &s.t_rollout,      &s.t_verify,     &s.t_update,
                     &s.t_total};
    for (size_t i = 0; i < sizeof num / sizeof num[0]; i++) *num[i] = uniform(&rng, -3, 3);
    s.len_max = 37;
    s.n_rollouts = 3;
    s.n_groups_kept = 1;
    s.nonfinite = 0; // entropy stays NaN -> NULL
    CHECK(rl_log_begin_step(log, run, 7, &err) == 0, "begin_step: %s", err.msg);
    CHECK(rl_log_step_stats(log, &s, &err) == 0, "step_stats: %s", err.msg);

    rl_rollout_row rows[3];
    int64_t ids[3];
    const char *completions[3] = {"<think>\nfirst line\nsecond \"quoted\"</think> \\boxed{7}",
                                  "caf\xc3\xa9 \xe2\x88\x9a"
                                  "2 \xf0\x9f\x99\x82",
                                  "x"};
    for (int i = 0; i < 3; i++) {
        rl_rollout_row_init(&rows[i]);
        rows[i].prompt_idx = 1000 + i;
        rows[i].group_id = i / 2;
        rows[i].sample_idx = i % 2;
        rows[i].task = i == 1 ? NULL : "arith";
        rows[i].prompt = "What is 3+4?";
        rows[i].completion = completions[i];
        rows[i].answer = i == 2 ? NULL : "7";
        rows[i].n_tokens = 10 + i;
        rows[i].n_prompt_tokens = i == 1 ? -1 : 5;
        rows[i].finish_reason = i == 2 ? "length" : "stop";
        rows[i].reward = uniform(&rng, 0, 1);
        rows[i].advantage = i == 1 ? NAN : uniform(&rng, -2, 2);
        rows[i].sample_logprob_sum = uniform(&rng, -50, 0);
        CHECK(rl_log_rollout(log, &rows[i], &ids[i], &err) == 0, "rollout: %s", err.msg);
    }
    double score_acc[3], score_fmt[3];
    for (int i = 0; i < 3; i++) {
        score_acc[i] = uniform(&rng, 0, 1);
        score_fmt[i] = i == 2 ? NAN : uniform(&rng, 0, 1);
        CHECK(rl_log_score(log, ids[i], "accuracy", 0.4, score_acc[i], i == 1 ? "skipped" : "ok",
                           i == 1 ? NULL : "answer 7, reference 7", &err) == 0,
              "score: %s", err.msg);
        CHECK(rl_log_score(log, ids[i], "format", 0.2, score_fmt[i], i == 2 ? "timeout" : "ok",
                           "shape ok", &err) == 0,
              "score: %s", err.msg);
    }
    CHECK(rl_log_commit_step(log, &err) == 0, "commit: %s", err.msg);

    const char *names[3] = {"accuracy", "format", "my_plugin"};
    double means[3] = {0.5, 0.25, NAN};
    rl_eval_row e;
    rl_eval_row_init(&e);
    e.run_id = run;
    e.step = 7;
    e.split = "heldout";
    e.n = 64;
    e.k = 4;
    e.temperature = 0.7;
    e.pass_at_1 = 0.375;
    e.pass_at_k = 0.6;
    e.len_mean = 120.5;
    e.seconds = 3.25; // accuracy_greedy stays NaN
    e.verifier_names = names;
    e.verifier_means = means;
    e.n_verifiers = 3;
    e.extra_json = "{\"seed\": 5}";
    CHECK(rl_log_eval(log, &e, &err) == 0, "eval: %s", err.msg);
    CHECK(rl_log_finish_run(log, run, "finished", &err) == 0, "finish: %s", err.msg);
    rl_log_close(log);

    sqlite3 *db = raw_open(t.db, 1);
    char buf[512], sql[512];
    CHECK(q_int(db, "PRAGMA user_version") == RL_LOG_SCHEMA_VERSION, "user_version");
    CHECK(q_int(db, "PRAGMA application_id") == RL_LOG_APPLICATION_ID, "application_id");
    CHECK(strcmp(q_text(db, "PRAGMA journal_mode", buf, sizeof buf), "wal") == 0, "journal mode %s",
          buf);
    CHECK(strcmp(q_text(db, "SELECT value FROM meta WHERE key='schema_version'", buf, sizeof buf),
                 "2") == 0,
          "meta schema_version %s", buf);

    // runs
    snprintf(sql, sizeof sql,
             "SELECT name, config_yaml, seed, out_dir, status, started_at, finished_at FROM runs "
             "WHERE id = %lld",
             (long long)run);
    sqlite3_stmt *st = NULL;
    CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(db));
    CHECK(sqlite3_step(st) == SQLITE_ROW, "run row");
    check_text(st, 0, "tiny", "runs.name");
    check_text(st, 1, config, "runs.config_yaml");
    check_value(st, 2, 42, 1, "runs.seed");
    check_text(st, 3, "runs/tiny", "runs.out_dir");
    check_text(st, 4, "finished", "runs.status");
    const char *started = (const char *)sqlite3_column_text(st, 5);
    CHECK(started && strlen(started) == 23 && started[4] == '-' && started[10] == ' ',
          "started_at '%s'", started ? started : "NULL");
    CHECK(sqlite3_column_type(st, 6) == SQLITE_TEXT, "finished_at set");
    sqlite3_finalize(st);
    snprintf(sql, sizeof sql, "SELECT seed FROM runs WHERE id = %lld", (long long)run_big);
    int64_t seed_bits = q_int(db, sql);
    CHECK((uint64_t)seed_bits == big_seed, "big seed stored as its bit pattern: %lld",
          (long long)seed_bits);

    // steps: every statistic, NaN as NULL
    stat_expect stats[] = {
        {"loss", &s.loss, 0},
        {"kl", &s.kl, 0},
        {"entropy", &s.entropy, 0},
        {"clip_frac", &s.clip_frac, 0},
        {"grad_norm", &s.grad_norm, 0},
        {"lr", &s.lr, 0},
        {"reward_mean", &s.reward_mean, 0},
        {"reward_std", &s.reward_std, 0},
        {"accuracy", &s.accuracy, 0},
        {"len_mean", &s.len_mean, 0},
        {"len_max", &s.len_max, 1},
        {"truncated_frac", &s.truncated_frac, 0},
        {"n_rollouts", &s.n_rollouts, 1},
        {"n_groups_kept", &s.n_groups_kept, 1},
        {"nonfinite", &s.nonfinite, 1},
        {"tokens_per_s", &s.tokens_per_s, 0},
        {"train_tokens_per_s", &s.train_tokens_per_s, 0},
        {"t_rollout", &s.t_rollout, 0},
        {"t_verify", &s.t_verify, 0},
        {"t_update", &s.t_update, 0},
        {"t_total", &s.t_total, 0},
    };
    for (size_t i = 0; i < sizeof stats / sizeof stats[0]; i++) {
        snprintf(sql, sizeof sql, "SELECT %s FROM steps WHERE run_id = %lld AND step = 7",
                 stats[i].name, (long long)run);
        CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(db));
        CHECK(sqlite3_step(st) == SQLITE_ROW, "steps row");
        check_value(st, 0, *stats[i].field, stats[i].integer, stats[i].name);
        sqlite3_finalize(st);
    }
    snprintf(sql, sizeof sql,
             "SELECT phase, json_extract(extra, '$.kl_coef'), logged_at FROM steps");
    CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(db));
    CHECK(sqlite3_step(st) == SQLITE_ROW, "steps row");
    check_text(st, 0, "rl", "steps.phase");
    check_value(st, 1, 0.04, 0, "steps.extra.kl_coef");
    CHECK(sqlite3_column_type(st, 2) == SQLITE_TEXT, "logged_at");
    sqlite3_finalize(st);

    // rollouts and scores
    for (int i = 0; i < 3; i++) {
        snprintf(sql, sizeof sql,
                 "SELECT run_id, step, group_id, sample_idx, prompt_idx, task, prompt, completion,"
                 " answer, n_tokens, n_prompt_tokens, finish_reason, reward, advantage,"
                 " sample_logprob_sum FROM rollouts WHERE id = %lld",
                 (long long)ids[i]);
        CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(db));
        CHECK(sqlite3_step(st) == SQLITE_ROW, "rollout row %d", i);
        check_value(st, 0, (double)run, 1, "rollouts.run_id");
        check_value(st, 1, 7, 1, "rollouts.step");
        check_value(st, 2, rows[i].group_id, 1, "rollouts.group_id");
        check_value(st, 3, rows[i].sample_idx, 1, "rollouts.sample_idx");
        check_value(st, 4, (double)rows[i].prompt_idx, 1, "rollouts.prompt_idx");
        check_text(st, 5, rows[i].task, "rollouts.task");
        check_text(st, 6, rows[i].prompt, "rollouts.prompt");
        check_text(st, 7, rows[i].completion, "rollouts.completion");
        check_text(st, 8, rows[i].answer, "rollouts.answer");
        check_value(st, 9, rows[i].n_tokens, 1, "rollouts.n_tokens");
        check_value(st, 10, rows[i].n_prompt_tokens < 0 ? NAN : rows[i].n_prompt_tokens, 1,
                    "rollouts.n_prompt_tokens");
        check_text(st, 11, rows[i].finish_reason, "rollouts.finish_reason");
        check_value(st, 12, rows[i].reward, 0, "rollouts.reward");
        check_value(st, 13, rows[i].advantage, 0, "rollouts.advantage");
        check_value(st, 14, rows[i].sample_logprob_sum, 0, "rollouts.sample_logprob_sum");
        sqlite3_finalize(st);

        snprintf(sql, sizeof sql,
                 "SELECT verifier, weight, score, status, detail FROM scores WHERE rollout_id = "
                 "%lld ORDER BY verifier",
                 (long long)ids[i]);
        CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(db));
        CHECK(sqlite3_step(st) == SQLITE_ROW, "score row");
        check_text(st, 0, "accuracy", "scores.verifier");
        check_value(st, 1, 0.4, 0, "scores.weight");
        check_value(st, 2, score_acc[i], 0, "scores.score");
        check_text(st, 3, i == 1 ? "skipped" : "ok", "scores.status");
        check_text(st, 4, i == 1 ? NULL : "answer 7, reference 7", "scores.detail");
        CHECK(sqlite3_step(st) == SQLITE_ROW, "score row");
        check_text(st, 0, "format", "scores.verifier");
        check_value(st, 2, score_fmt[i], 0, "scores.score (NaN -> NULL)");
        check_text(st, 3, i == 2 ? "timeout" : "ok", "scores.status");
        CHECK(sqlite3_step(st) == SQLITE_DONE, "two scores");
        sqlite3_finalize(st);
    }

    // evals
    snprintf(sql, sizeof sql,
             "SELECT run_id, step, split, n, k, temperature, pass_at_1, pass_at_k, accuracy_greedy,"
             " accuracy, path_quality, format, efficiency, json_extract(verifier_means,"
             " '$.format'), json_type(verifier_means, '$.my_plugin'), len_mean, seconds,"
             " json_extract(extra, '$.seed'), created_at FROM evals");
    CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(db));
    CHECK(sqlite3_step(st) == SQLITE_ROW, "eval row");
    check_value(st, 0, (double)run, 1, "evals.run_id");
    check_value(st, 1, 7, 1, "evals.step");
    check_text(st, 2, "heldout", "evals.split");
    check_value(st, 3, 64, 1, "evals.n");
    check_value(st, 4, 4, 1, "evals.k");
    check_value(st, 5, 0.7, 0, "evals.temperature");
    check_value(st, 6, 0.375, 0, "evals.pass_at_1");
    check_value(st, 7, 0.6, 0, "evals.pass_at_k");
    check_value(st, 8, NAN, 0, "evals.accuracy_greedy");
    check_value(st, 9, 0.5, 0, "evals.accuracy");
    check_value(st, 10, NAN, 0, "evals.path_quality (not configured)");
    check_value(st, 11, 0.25, 0, "evals.format");
    check_value(st, 12, NAN, 0, "evals.efficiency");
    check_value(st, 13, 0.25, 0, "evals.verifier_means.format");
    check_text(st, 14, "null", "evals.verifier_means.my_plugin");
    check_value(st, 15, 120.5, 0, "evals.len_mean");
    check_value(st, 16, 3.25, 0, "evals.seconds");
    check_value(st, 17, 5, 1, "evals.extra.seed");
    CHECK(sqlite3_column_type(st, 18) == SQLITE_TEXT, "created_at");
    sqlite3_finalize(st);
    CHECK(q_int(db, "PRAGMA foreign_key_check") == -999, "no foreign key violations");
    sqlite3_close(db);
    tdir_remove(&t);
}

// ---- 2. the views against aggregates computed here -----------------------------------------------

#define V_STEPS     3
#define V_ROLLOUTS  12 // per step
#define V_VERIFIERS 5

static const char *const V_NAMES[V_VERIFIERS] = {"accuracy", "efficiency", "format", "path_quality",
                                                 "zz_plugin"};
static const double V_WEIGHTS[V_VERIFIERS] = {0.4, 0.1, 0.2, 0.3, 0.5};
static const char *const V_STATUS[4] = {"ok", "skipped", "error", "timeout"};

typedef struct vdata {
    int64_t id[V_STEPS][V_ROLLOUTS];
    double reward[V_STEPS][V_ROLLOUTS];
    int n_tokens[V_STEPS][V_ROLLOUTS];
    int truncated[V_STEPS][V_ROLLOUTS];
    double score[V_STEPS][V_ROLLOUTS][V_VERIFIERS];
    int status[V_STEPS][V_ROLLOUTS][V_VERIFIERS];
    int has[V_STEPS][V_ROLLOUTS][V_VERIFIERS]; // the plugin scores only some rollouts
    double loss[V_STEPS];
} vdata;

static void test_views(void) {
    tdir t;
    tdir_make(&t, "views.db");
    rl_err err = {0};
    rl_log *log = NULL;
    CHECK(rl_log_open(&log, t.db, 1, &err) == 0, "open: %s", err.msg);
    if (!log) return;
    int64_t run = 0, other = 0;
    CHECK(rl_log_begin_run(log, "views", NULL, 3, &run, &err) == 0, "%s", err.msg);
    CHECK(rl_log_begin_run(log, "other", NULL, 4, &other, &err) == 0, "%s", err.msg);
    vdata *v = rl_calloc(1, sizeof *v);
    rl_rng rng = rl_rng_stream(5, RL_RNG_DATA, 2, 0);
    for (int s = 0; s < V_STEPS; s++) {
        CHECK(rl_log_begin_step(log, run, s, &err) == 0, "%s", err.msg);
        rl_step_stats st;
        rl_step_stats_init(&st);
        v->loss[s] = uniform(&rng, 0, 2);
        st.loss = v->loss[s];
        CHECK(rl_log_step_stats(log, &st, &err) == 0, "%s", err.msg);
        for (int i = 0; i < V_ROLLOUTS; i++) {
            rl_rollout_row r;
            rl_rollout_row_init(&r);
            r.group_id = i / 4;
            r.sample_idx = i % 4;
            r.prompt_idx = s * 10 + i / 4;
            r.prompt = "p";
            r.completion = "c";
            v->n_tokens[s][i] = rl_rng_range(&rng, 5, 300);
            v->truncated[s][i] = rl_rng_below(&rng, 4) == 0;
            r.n_tokens = v->n_tokens[s][i];
            r.finish_reason = v->truncated[s][i] ? "length" : "stop";
            double reward = 0;
            for (int k = 0; k < V_VERIFIERS; k++) {
                v->has[s][i][k] = k < 4 || rl_rng_below(&rng, 2);
                // Quarter steps make exact ties in reward likely, which tests the id tie-break.
                v->score[s][i][k] = rl_rng_below(&rng, 5) * 0.25;
                v->status[s][i][k] = rl_rng_below(&rng, 3) == 0 ? (int)rl_rng_below(&rng, 4) : 0;
                if (v->has[s][i][k]) reward += V_WEIGHTS[k] * v->score[s][i][k];
            }
            v->reward[s][i] = reward;
            r.reward = reward;
            r.advantage = uniform(&rng, -1, 1);
            CHECK(rl_log_rollout(log, &r, &v->id[s][i], &err) == 0, "%s", err.msg);
            for (int k = 0; k < V_VERIFIERS; k++)
                if (v->has[s][i][k])
                    CHECK(rl_log_score(log, v->id[s][i], V_NAMES[k], V_WEIGHTS[k],
                                       v->score[s][i][k], V_STATUS[v->status[s][i][k]],
                                       k == 0 ? "answer 1, reference 2" : "", &err) == 0,
                          "%s", err.msg);
        }
        CHECK(rl_log_commit_step(log, &err) == 0, "%s", err.msg);
    }
    // A step of another run must not leak into this run's aggregates.
    CHECK(rl_log_begin_step(log, other, 0, &err) == 0, "%s", err.msg);
    rl_rollout_row r;
    rl_rollout_row_init(&r);
    r.prompt = "p";
    r.completion = "c";
    r.finish_reason = "stop";
    r.reward = 100;
    int64_t oid;
    CHECK(rl_log_rollout(log, &r, &oid, &err) == 0, "%s", err.msg);
    CHECK(rl_log_score(log, oid, "accuracy", 1, 1, "ok", NULL, &err) == 0, "%s", err.msg);
    CHECK(rl_log_commit_step(log, &err) == 0, "%s", err.msg);
    for (int s = 0; s < 2; s++) {
        rl_eval_row e;
        rl_eval_row_init(&e);
        e.run_id = run;
        e.step = s;
        e.split = "heldout";
        e.n = 8;
        CHECK(rl_log_eval(log, &e, &err) == 0, "%s", err.msg);
    }
    rl_log_close(log);

    sqlite3 *db = raw_open(t.db, 1);
    char sql[1024];
    sqlite3_stmt *st = NULL;

    // step_verifier_means: one row per (step, verifier), in that order
    snprintf(sql, sizeof sql,
             "SELECT step, verifier, n, weight, mean_score, mean_weighted, min_score, max_score,"
             " n_ok, n_skipped, n_error, n_timeout FROM step_verifier_means WHERE run_id = %lld"
             " ORDER BY step, verifier",
             (long long)run);
    CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(db));
    for (int s = 0; s < V_STEPS; s++)
        for (int k = 0; k < V_VERIFIERS; k++) {
            int n = 0, counts[4] = {0};
            double sum = 0, wsum = 0, lo = 2, hi = -1;
            for (int i = 0; i < V_ROLLOUTS; i++) {
                if (!v->has[s][i][k]) continue;
                double x = v->score[s][i][k];
                n++;
                sum += x;
                wsum += V_WEIGHTS[k] * x;
                lo = x < lo ? x : lo;
                hi = x > hi ? x : hi;
                counts[v->status[s][i][k]]++;
            }
            if (n == 0) continue;
            CHECK(sqlite3_step(st) == SQLITE_ROW, "step_verifier_means row %d %d", s, k);
            CHECK(sqlite3_column_int(st, 0) == s, "step");
            check_text(st, 1, V_NAMES[k], "verifier");
            CHECK(sqlite3_column_int(st, 2) == n, "n: %d vs %d", sqlite3_column_int(st, 2), n);
            CHECK_NEAR(sqlite3_column_double(st, 3), V_WEIGHTS[k], 1e-12, "weight");
            CHECK_NEAR(sqlite3_column_double(st, 4), sum / n, 1e-12, "mean_score");
            CHECK_NEAR(sqlite3_column_double(st, 5), wsum / n, 1e-12, "mean_weighted");
            CHECK_NEAR(sqlite3_column_double(st, 6), lo, 1e-12, "min_score");
            CHECK_NEAR(sqlite3_column_double(st, 7), hi, 1e-12, "max_score");
            for (int c = 0; c < 4; c++)
                CHECK(sqlite3_column_int(st, 8 + c) == counts[c], "status count %s: %d vs %d",
                      V_STATUS[c], sqlite3_column_int(st, 8 + c), counts[c]);
        }
    CHECK(sqlite3_step(st) == SQLITE_DONE, "no extra step_verifier_means rows");
    sqlite3_finalize(st);

    // step_summary: the wide per-step view
    snprintf(sql, sizeof sql,
             "SELECT step, n_rollouts, reward_mean, reward_min, reward_max, accuracy, path_quality,"
             " format, efficiency, len_mean, truncated_frac, loss FROM step_summary"
             " WHERE run_id = %lld ORDER BY step",
             (long long)run);
    CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(db));
    for (int s = 0; s < V_STEPS; s++) {
        double rsum = 0, rlo = 1e9, rhi = -1e9, lsum = 0, tsum = 0, vsum[4] = {0};
        for (int i = 0; i < V_ROLLOUTS; i++) {
            rsum += v->reward[s][i];
            rlo = v->reward[s][i] < rlo ? v->reward[s][i] : rlo;
            rhi = v->reward[s][i] > rhi ? v->reward[s][i] : rhi;
            lsum += v->n_tokens[s][i];
            tsum += v->truncated[s][i];
            for (int k = 0; k < 4; k++) vsum[k] += v->score[s][i][k];
        }
        CHECK(sqlite3_step(st) == SQLITE_ROW, "step_summary row %d", s);
        CHECK(sqlite3_column_int(st, 0) == s, "step");
        CHECK(sqlite3_column_int(st, 1) == V_ROLLOUTS, "n_rollouts");
        CHECK_NEAR(sqlite3_column_double(st, 2), rsum / V_ROLLOUTS, 1e-12, "reward_mean");
        CHECK_NEAR(sqlite3_column_double(st, 3), rlo, 1e-12, "reward_min");
        CHECK_NEAR(sqlite3_column_double(st, 4), rhi, 1e-12, "reward_max");
        // V_NAMES order: accuracy efficiency format path_quality; columns: acc path format eff
        CHECK_NEAR(sqlite3_column_double(st, 5), vsum[0] / V_ROLLOUTS, 1e-12, "accuracy");
        CHECK_NEAR(sqlite3_column_double(st, 6), vsum[3] / V_ROLLOUTS, 1e-12, "path_quality");
        CHECK_NEAR(sqlite3_column_double(st, 7), vsum[2] / V_ROLLOUTS, 1e-12, "format");
        CHECK_NEAR(sqlite3_column_double(st, 8), vsum[1] / V_ROLLOUTS, 1e-12, "efficiency");
        CHECK_NEAR(sqlite3_column_double(st, 9), lsum / V_ROLLOUTS, 1e-12, "len_mean");
        CHECK_NEAR(sqlite3_column_double(st, 10), tsum / V_ROLLOUTS, 1e-12, "truncated_frac");
        CHECK_NEAR(sqlite3_column_double(st, 11), v->loss[s], 1e-15, "loss");
    }
    CHECK(sqlite3_step(st) == SQLITE_DONE, "one step_summary row per step");
    sqlite3_finalize(st);

    // rollout_summary: ranks within the step (reward, ties by id), per-verifier columns, details
    int s = 1;
    snprintf(sql, sizeof sql,
             "SELECT id, best_rank, worst_rank, accuracy, efficiency, details FROM rollout_summary"
             " WHERE run_id = %lld AND step = %d ORDER BY id",
             (long long)run, s);
    CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(db));
    for (int i = 0; i < V_ROLLOUTS; i++) {
        int best = 1, worst = 1;
        for (int j = 0; j < V_ROLLOUTS; j++) {
            double a = v->reward[s][i], b = v->reward[s][j];
            if (b > a || (b == a && j < i)) best++;
            if (b < a || (b == a && j < i)) worst++;
        }
        CHECK(sqlite3_step(st) == SQLITE_ROW, "rollout_summary row");
        CHECK(sqlite3_column_int64(st, 0) == v->id[s][i], "id order");
        CHECK(sqlite3_column_int(st, 1) == best, "best_rank of %d: %d vs %d", i,
              sqlite3_column_int(st, 1), best);
        CHECK(sqlite3_column_int(st, 2) == worst, "worst_rank of %d: %d vs %d", i,
              sqlite3_column_int(st, 2), worst);
        CHECK_NEAR(sqlite3_column_double(st, 3), v->score[s][i][0], 1e-15, "accuracy column");
        CHECK_NEAR(sqlite3_column_double(st, 4), v->score[s][i][1], 1e-15, "efficiency column");
        const char *details = (const char *)sqlite3_column_text(st, 5);
        char frag[128];
        snprintf(frag, sizeof frag, "accuracy %.3f %s: answer 1, reference 2", v->score[s][i][0],
                 V_STATUS[v->status[s][i][0]]);
        CHECK(details && strstr(details, frag), "details '%s' lacks '%s'",
              details ? details : "NULL", frag);
        snprintf(frag, sizeof frag, "format %.3f %s", v->score[s][i][2],
                 V_STATUS[v->status[s][i][2]]);
        CHECK(details && strstr(details, frag), "details '%s' lacks '%s'",
              details ? details : "NULL", frag);
        CHECK(details && (strstr(details, "zz_plugin") != NULL) == v->has[s][i][4],
              "plugin in details iff scored");
    }
    sqlite3_finalize(st);

    // run_summary
    snprintf(sql, sizeof sql,
             "SELECT n_steps || ' ' || last_step || ' ' || n_rollouts || ' ' || n_evals"
             " FROM run_summary WHERE id = %lld",
             (long long)run);
    char buf[64];
    q_text(db, sql, buf, sizeof buf);
    char want[64];
    snprintf(want, sizeof want, "%d %d %d 2", V_STEPS, V_STEPS - 1, V_STEPS * V_ROLLOUTS);
    CHECK(strcmp(buf, want) == 0, "run_summary '%s' vs '%s'", buf, want);
    sqlite3_close(db);
    free(v);
    tdir_remove(&t);
}

// ---- 3. SIGKILL in the middle of writing never leaves a partial step ------------------------------

#define CRASH_ROLLOUTS 48

// The writer: resumes the run from its last "checkpoint" (every third step) and writes steps
// until it is killed. Every rollout's text names its step, so duplicates would show. With
// stop_fd >= 0 it halts half-way through the third step after the checkpoint, tells the parent
// through stop_fd and waits to be killed; its tiny page cache has by then spilled uncommitted
// pages of that step into the WAL file, which recovery must ignore.
static void crash_writer(const char *path, int stop_fd) {
    rl_err err = {0};
    rl_log *log = NULL;
    if (rl_log_open(&log, path, 1, &err) != 0) _exit(3);
    if (sqlite3_exec(rl_log_sqlite(log), "PRAGMA cache_size = 8", NULL, NULL, NULL) != SQLITE_OK)
        _exit(3);
    int64_t run = 0;
    if (rl_log_find_run(log, "crash", &run, &err) != 0 &&
        rl_log_begin_run(log, "crash", "x: 1\n", 1, &run, &err) != 0)
        _exit(3);
    int last = -1;
    if (rl_log_last_step(log, run, &last, &err) != 0) _exit(3);
    int ckpt = last < 0 ? -1 : last - last % 3;
    if (rl_log_truncate_after(log, run, ckpt, &err) != 0) _exit(3);
    if (rl_log_finish_run(log, run, "running", &err) != 0) _exit(3);
    char text[1400];
    for (int step = ckpt + 1;; step++) {
        if (rl_log_begin_step(log, run, step, &err) != 0) _exit(4);
        int spilled = 0, hi = 0; // counts cache spills from here on
        sqlite3_db_status(rl_log_sqlite(log), SQLITE_DBSTATUS_CACHE_SPILL, &spilled, &hi, 1);
        for (int i = 0; i < CRASH_ROLLOUTS; i++) {
            rl_rollout_row r;
            rl_rollout_row_init(&r);
            snprintf(text, sizeof text, "step %d sample %d: %01200d", step, i, i);
            r.group_id = i / 8;
            r.sample_idx = i % 8;
            r.prompt = "prompt";
            r.completion = text;
            r.finish_reason = "stop";
            r.n_tokens = 300;
            r.reward = 0.5;
            int64_t id;
            if (rl_log_rollout(log, &r, &id, &err) != 0) _exit(4);
            for (int k = 0; k < 4; k++)
                if (rl_log_score(log, id, V_NAMES[k], 0.25, 0.5, "ok", "detail", &err) != 0)
                    _exit(4);
            if (stop_fd >= 0 && step == ckpt + 3 && i == CRASH_ROLLOUTS / 2) {
                // 'x' if uncommitted pages of this step were written to the WAL, else 'n'.
                sqlite3_db_status(rl_log_sqlite(log), SQLITE_DBSTATUS_CACHE_SPILL, &spilled, &hi,
                                  0);
                if (write(stop_fd, spilled > 0 ? "x" : "n", 1) != 1) _exit(5);
                for (;;) pause();
            }
        }
        rl_step_stats s;
        rl_step_stats_init(&s);
        s.n_rollouts = CRASH_ROLLOUTS;
        s.loss = step;
        if (rl_log_step_stats(log, &s, &err) != 0 || rl_log_commit_step(log, &err) != 0) _exit(4);
    }
}

static void test_crash_safety(void) {
    tdir t;
    tdir_make(&t, "crash.db");
    rl_rng rng = rl_rng_stream(7, RL_RNG_DATA, 3, 0);
    int max_seen = -1, rounds = 8, last_before = -1;
    for (int round = 0; round < rounds; round++) {
        // Odd rounds: killed at a random moment. Even rounds: killed half-way through a step
        // known in advance, so the round proves the exact outcome.
        int stopped = round % 2 == 0, fds[2] = {-1, -1};
        if (stopped && pipe(fds) != 0) {
            CHECK(0, "pipe: %s", strerror(errno));
            return;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            CHECK(0, "fork: %s", strerror(errno));
            return;
        }
        if (pid == 0) {
            if (stopped) close(fds[0]);
            crash_writer(t.db, stopped ? fds[1] : -1);
        }
        if (stopped) {
            close(fds[1]);
            char c;
            CHECK(read(fds[0], &c, 1) == 1, "round %d: the writer did not reach its stop", round);
            CHECK(c == 'x', "round %d: no uncommitted page reached the WAL before the kill", round);
            close(fds[0]);
        } else {
            struct timespec ts = {0, rl_rng_range(&rng, 20, 120) * 1000000L};
            nanosleep(&ts, NULL);
        }
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "round %d: writer should die by SIGKILL, exited with %d", round,
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);

        // Read it the way `rlpipe logs` would right after the crash: read-only.
        rl_err err = {0};
        rl_log *log = NULL;
        CHECK(rl_log_open_readonly(&log, t.db, &err) == 0, "round %d open: %s", round, err.msg);
        if (!log) continue;
        sqlite3 *db = rl_log_sqlite(log);
        char buf[256];
        CHECK(strcmp(q_text(db, "PRAGMA integrity_check", buf, sizeof buf), "ok") == 0,
              "round %d integrity_check: %s", round, buf);
        CHECK(q_int(db, "SELECT COUNT(*) FROM pragma_foreign_key_check") == 0,
              "round %d foreign keys", round);
        int64_t n_steps = q_int(db, "SELECT COUNT(*) FROM steps");
        int64_t last = q_int(db, "SELECT MAX(step) FROM steps");
        CHECK(n_steps == 0 || last == n_steps - 1, "round %d: steps 0..%lld contiguous (%lld)",
              round, (long long)last, (long long)n_steps);
        // Every step present is complete: its rollouts, their scores, its statistics.
        char sql[512];
        snprintf(sql, sizeof sql,
                 "SELECT COUNT(*) FROM steps s WHERE s.n_rollouts IS NOT %d OR s.loss IS NOT s.step"
                 " OR (SELECT COUNT(*) FROM rollouts o WHERE o.step = s.step) <> %d"
                 " OR (SELECT COUNT(*) FROM scores sc JOIN rollouts o ON o.id = sc.rollout_id"
                 " WHERE o.step = s.step) <> %d",
                 CRASH_ROLLOUTS, CRASH_ROLLOUTS, 4 * CRASH_ROLLOUTS);
        CHECK(q_int(db, sql) == 0, "round %d: a partial step", round);
        CHECK(q_int(db, "SELECT COUNT(*) FROM rollouts WHERE completion NOT LIKE"
                        " 'step ' || step || ' sample %'") == 0,
              "round %d: rollout text from another step", round);
        CHECK(q_int(db, "SELECT COUNT(*) FROM rollouts o WHERE NOT EXISTS (SELECT 1 FROM steps s"
                        " WHERE s.step = o.step)") == 0,
              "round %d: orphan rollouts", round);
        if (stopped) {
            int ckpt = last_before < 0 ? -1 : last_before - last_before % 3;
            CHECK(last == ckpt + 2, "round %d: killed inside step %d, last step is %lld", round,
                  ckpt + 3, (long long)last);
        }
        last_before = (int)last;
        if (last > max_seen) max_seen = (int)last;
        rl_log_close(log);
    }
    CHECK(max_seen >= 1, "the writer committed steps before being killed (last %d)", max_seen);
    fprintf(stderr, "     crash test: %d rounds, last step seen %d\n", rounds, max_seen);
    tdir_remove(&t);
}

// ---- 4. truncate_after, resume, eval replacement ----------------------------------------------------

static void write_simple_step(rl_log *log, int64_t run, int step, int n, rl_err *err) {
    CHECK(rl_log_begin_step(log, run, step, err) == 0, "begin_step %d: %s", step, err->msg);
    for (int i = 0; i < n; i++) {
        rl_rollout_row r;
        rl_rollout_row_init(&r);
        r.prompt = "p";
        r.completion = "c";
        r.finish_reason = "stop";
        r.reward = step + 0.1 * i;
        int64_t id;
        CHECK(rl_log_rollout(log, &r, &id, err) == 0, "%s", err->msg);
        CHECK(rl_log_score(log, id, "accuracy", 1, 0.5, "ok", NULL, err) == 0, "%s", err->msg);
    }
    CHECK(rl_log_commit_step(log, err) == 0, "commit %d: %s", step, err->msg);
}

static void test_truncate_and_resume(void) {
    tdir t;
    tdir_make(&t, "resume.db");
    rl_err err = {0};
    rl_log *log = NULL;
    CHECK(rl_log_open(&log, t.db, 1, &err) == 0, "%s", err.msg);
    if (!log) return;
    int64_t run = 0, other = 0;
    CHECK(rl_log_begin_run(log, "r1", NULL, 1, &run, &err) == 0, "%s", err.msg);
    CHECK(rl_log_begin_run(log, "2", NULL, 1, &other, &err) == 0, "%s", err.msg);
    for (int s = 0; s < 6; s++) write_simple_step(log, run, s, 3, &err);
    for (int s = 0; s < 6; s++) write_simple_step(log, other, s, 2, &err);
    for (int s = 0; s < 6; s += 2) {
        rl_eval_row e;
        rl_eval_row_init(&e);
        e.run_id = run;
        e.step = s;
        e.split = "heldout";
        e.n = 10;
        e.pass_at_1 = 0.1 * s;
        CHECK(rl_log_eval(log, &e, &err) == 0, "%s", err.msg);
    }
    CHECK(rl_log_finish_run(log, run, "interrupted", &err) == 0, "%s", err.msg);
    rl_log_close(log);

    // Reopen without create; find the run by name and by id.
    log = NULL;
    CHECK(rl_log_open(&log, t.db, 0, &err) == 0, "reopen: %s", err.msg);
    if (!log) return;
    int64_t found = 0;
    CHECK(rl_log_find_run(log, "r1", &found, &err) == 0 && found == run, "find by name");
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%lld", (long long)run);
    found = 0;
    CHECK(rl_log_find_run(log, idtext, &found, &err) == 0 && found == run, "find by id");
    // A run named "2" wins over the run with id 2.
    found = 0;
    CHECK(rl_log_find_run(log, "2", &found, &err) == 0 && found == other, "name before id");
    rl_err_clear(&err);
    CHECK(rl_log_find_run(log, "nope", &found, &err) != 0 && err.kind == RL_EINPUT &&
              strstr(err.msg, "nope"),
          "unknown run: %s", err.msg);
    rl_err_clear(&err);
    CHECK(rl_log_begin_run(log, "r1", NULL, 1, &found, &err) != 0 && err.kind == RL_EINPUT &&
              strstr(err.msg, "already exists"),
          "duplicate run name: %s", err.msg);
    int last = -2;
    CHECK(rl_log_last_step(log, run, &last, &err) == 0 && last == 5, "last step %d", last);

    // Logging an existing step again is refused, and leaves no transaction behind.
    rl_err_clear(&err);
    CHECK(rl_log_begin_step(log, run, 3, &err) != 0 && err.kind == RL_EINPUT &&
              strstr(err.msg, "already logged"),
          "duplicate step: %s", err.msg);
    CHECK(sqlite3_get_autocommit(rl_log_sqlite(log)) == 1, "no open transaction after failure");

    // Resume from checkpoint 3: later rows go, the other run is untouched.
    CHECK(rl_log_truncate_after(log, run, 3, &err) == 0, "truncate: %s", err.msg);
    CHECK(rl_log_finish_run(log, run, "running", &err) == 0, "%s", err.msg);
    sqlite3 *db = rl_log_sqlite(log);
    char sql[256], buf[64];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM steps WHERE run_id = %lld", (long long)run);
    CHECK(q_int(db, sql) == 4, "steps after truncate: %lld", (long long)q_int(db, sql));
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM rollouts WHERE run_id = %lld", (long long)run);
    CHECK(q_int(db, sql) == 12, "rollouts after truncate");
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM scores sc JOIN rollouts o ON o.id = sc.rollout_id"
             " WHERE o.run_id = %lld",
             (long long)run);
    CHECK(q_int(db, sql) == 12, "scores after truncate");
    CHECK(q_int(db, "SELECT COUNT(*) FROM scores") == 12 + 12, "no orphan scores left");
    snprintf(sql, sizeof sql, "SELECT group_concat(step) FROM evals WHERE run_id = %lld",
             (long long)run);
    CHECK(strcmp(q_text(db, sql, buf, sizeof buf), "0,2") == 0, "evals after truncate: %s", buf);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM steps WHERE run_id = %lld", (long long)other);
    CHECK(q_int(db, sql) == 6, "other run untouched");
    snprintf(sql, sizeof sql,
             "SELECT status || ':' || IFNULL(finished_at, '-') FROM runs"
             " WHERE id = %lld",
             (long long)run);
    CHECK(strcmp(q_text(db, sql, buf, sizeof buf), "running:-") == 0, "status %s", buf);

    // The re-run steps replace the truncated ones: exactly 3 rollouts each, no duplicates.
    for (int s = 4; s < 7; s++) write_simple_step(log, run, s, 3, &err);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM (SELECT step FROM rollouts WHERE run_id = %lld GROUP BY step"
             " HAVING COUNT(*) <> 3)",
             (long long)run);
    CHECK(q_int(db, sql) == 0, "3 rollouts per step after resume");
    CHECK(rl_log_last_step(log, run, &last, &err) == 0 && last == 6, "last step %d", last);

    // An eval logged again for the same (run, step, split) replaces the row.
    rl_eval_row e;
    rl_eval_row_init(&e);
    e.run_id = run;
    e.step = 2;
    e.split = "heldout";
    e.n = 10;
    e.pass_at_1 = 0.99;
    CHECK(rl_log_eval(log, &e, &err) == 0, "%s", err.msg);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) || ' ' || MAX(pass_at_1) FROM evals WHERE run_id = %lld AND step = 2",
             (long long)run);
    CHECK(strcmp(q_text(db, sql, buf, sizeof buf), "1 0.99") == 0, "eval replaced: %s", buf);
    CHECK(rl_log_finish_run(log, run, "finished", &err) == 0, "%s", err.msg);
    rl_log_close(log);
    tdir_remove(&t);
}

// ---- 5. refusing files that are not ours ----------------------------------------------------------

static void expect_refused(const char *path, const char *needle, const char *what) {
    rl_err err = {0};
    rl_log *log = NULL;
    CHECK(rl_log_open(&log, path, 1, &err) != 0 && log == NULL, "%s: opened", what);
    CHECK(err.kind == RL_EINPUT, "%s: kind %d", what, err.kind);
    CHECK(strstr(err.msg, path) && strstr(err.msg, needle), "%s: message '%s' lacks '%s'", what,
          err.msg, needle);
    rl_err_clear(&err);
    CHECK(rl_log_open_readonly(&log, path, &err) != 0 && log == NULL, "%s: opened ro", what);
    CHECK(err.kind == RL_EINPUT && strstr(err.msg, path) && strstr(err.msg, needle),
          "%s: read-only message '%s'", what, err.msg);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = rl_malloc(1 << 16);
    *n = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

static void test_refuses_foreign_files(void) {
    tdir t;
    tdir_make(&t, "log.db");
    rl_err err = {0};
    rl_log *log = NULL;
    char path[256];

    // A newer schema version.
    CHECK(rl_log_open(&log, t.db, 1, &err) == 0, "%s", err.msg);
    rl_log_close(log);
    sqlite3 *db = raw_open(t.db, 0);
    raw_exec(db, "PRAGMA user_version = 3");
    sqlite3_close(db);
    expect_refused(t.db, "newer", "newer schema version");

    // Another application's SQLite database: refused and left as it was (still not WAL).
    snprintf(path, sizeof path, "%s/foreign.db", t.dir);
    db = raw_open(path, 0);
    raw_exec(db, "CREATE TABLE notes(x); INSERT INTO notes VALUES (1)");
    sqlite3_close(db);
    size_t n0 = 0, n1 = 0;
    char *before = slurp(path, &n0);
    expect_refused(path, "not an rlpipe rollout log", "foreign SQLite file");
    char *after = slurp(path, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0, "foreign file changed");
    free(before);
    free(after);

    // Not SQLite at all.
    snprintf(path, sizeof path, "%s/notes.txt", t.dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 200; i++) fprintf(f, "this is a text file, line %d\n", i);
    fclose(f);
    before = slurp(path, &n0);
    expect_refused(path, "not an SQLite database", "text file");
    after = slurp(path, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0, "text file changed");
    free(before);
    free(after);

    // Missing file without create; a directory; an empty file opened read-only.
    snprintf(path, sizeof path, "%s/missing.db", t.dir);
    rl_err_clear(&err);
    CHECK(rl_log_open(&log, path, 0, &err) != 0 && err.kind == RL_EINPUT && strstr(err.msg, path),
          "missing file: %s", err.msg);
    CHECK(access(path, F_OK) != 0, "open without create made a file");
    rl_err_clear(&err);
    CHECK(rl_log_open(&log, t.dir, 1, &err) != 0 && err.kind == RL_EINPUT, "directory: %s",
          err.msg);
    snprintf(path, sizeof path, "%s/empty.db", t.dir);
    fclose(fopen(path, "w"));
    rl_err_clear(&err);
    CHECK(rl_log_open_readonly(&log, path, &err) != 0 && err.kind == RL_EINPUT, "empty: %s",
          err.msg);
    // ... but create=1 turns an empty file into a log.
    CHECK(rl_log_open(&log, path, 1, &err) == 0, "empty with create: %s", err.msg);
    rl_log_close(log);

    // A FIFO is refused at once, read-only or not (SQLite would wait for a writer for ever; a
    // child with an alarm turns a hang into a failure).
    snprintf(path, sizeof path, "%s/fifo.db", t.dir);
    CHECK(mkfifo(path, 0600) == 0, "mkfifo");
    for (int ro = 0; ro < 2; ro++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(10);
            rl_log *l = NULL;
            rl_err e = {0};
            int r = ro ? rl_log_open_readonly(&l, path, &e) : rl_log_open(&l, path, 1, &e);
            _exit(r != 0 && e.kind == RL_EINPUT && strstr(e.msg, "not a regular file") ? 0 : 1);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "FIFO log (read-only %d): %s", ro,
              WIFSIGNALED(status) ? "hung" : "no error");
    }
    tdir_remove(&t);
}

// ---- 6. misuse is an error, not a half-written step ---------------------------------------------

static void test_misuse(void) {
    tdir t;
    tdir_make(&t, "misuse.db");
    rl_err err = {0};
    rl_log *log = NULL;
    CHECK(rl_log_open(&log, t.db, 1, &err) == 0, "%s", err.msg);
    if (!log) return;
    int64_t run = 0, id = 0;
    CHECK(rl_log_begin_run(log, "m", NULL, 1, &run, &err) == 0, "%s", err.msg);
    rl_rollout_row r;
    rl_rollout_row_init(&r);
    r.prompt = "p";
    r.completion = "c";
    r.finish_reason = "stop";
    CHECK(rl_log_rollout(log, &r, &id, &err) != 0 && err.kind == RL_EINTERNAL,
          "rollout outside a step");
    rl_err_clear(&err);
    CHECK(rl_log_begin_step(log, run + 100, 0, &err) != 0 && err.kind == RL_EINPUT,
          "unknown run: %s", err.msg);

    // A bad score inside a step rolls the whole step back.
    CHECK(rl_log_begin_step(log, run, 0, &err) == 0, "%s", err.msg);
    CHECK(rl_log_rollout(log, &r, &id, &err) == 0, "%s", err.msg);
    rl_err_clear(&err);
    CHECK(rl_log_score(log, id, "accuracy", 1, 0.5, "great", NULL, &err) != 0 &&
              strstr(err.msg, "great"),
          "bad status: %s", err.msg);
    CHECK(rl_log_commit_step(log, &err) != 0, "commit after a failed call");
    CHECK(q_int(rl_log_sqlite(log), "SELECT COUNT(*) FROM rollouts") == 0, "step rolled back");
    CHECK(q_int(rl_log_sqlite(log), "SELECT COUNT(*) FROM steps") == 0, "step row rolled back");
    rl_log_abort_step(log); // harmless now

    // Duplicate verifier on one rollout, bad extra JSON.
    CHECK(rl_log_begin_step(log, run, 0, &err) == 0, "%s", err.msg);
    CHECK(rl_log_rollout(log, &r, &id, &err) == 0, "%s", err.msg);
    CHECK(rl_log_score(log, id, "accuracy", 1, 0.5, "ok", NULL, &err) == 0, "%s", err.msg);
    CHECK(rl_log_score(log, id, "accuracy", 1, 0.5, "ok", NULL, &err) != 0, "duplicate score");
    CHECK(rl_log_begin_step(log, run, 0, &err) == 0, "step 0 free again: %s", err.msg);
    rl_step_stats s;
    rl_step_stats_init(&s);
    s.extra_json = "[1, 2]";
    CHECK(rl_log_step_stats(log, &s, &err) != 0 && strstr(err.msg, "JSON object"),
          "extra must be an object: %s", err.msg);
    // Abort keeps nothing; close with a step open rolls it back too.
    CHECK(rl_log_begin_step(log, run, 0, &err) == 0, "%s", err.msg);
    CHECK(rl_log_rollout(log, &r, &id, &err) == 0, "%s", err.msg);
    rl_log_abort_step(log);
    CHECK(rl_log_begin_step(log, run, 1, &err) == 0, "%s", err.msg);
    CHECK(rl_log_truncate_after(log, run, 0, &err) != 0, "truncate inside a step");
    rl_log_close(log);

    CHECK(rl_log_open_readonly(&log, t.db, &err) == 0, "%s", err.msg);
    CHECK(q_int(rl_log_sqlite(log), "SELECT COUNT(*) FROM steps") == 0, "nothing kept");
    rl_err_clear(&err);
    CHECK(rl_log_begin_run(log, "x", NULL, 1, &run, &err) != 0 && strstr(err.msg, "read-only"),
          "read-only handle refuses writes: %s", err.msg);
    CHECK(sqlite3_exec(rl_log_sqlite(log), "DELETE FROM runs", NULL, NULL, NULL) != SQLITE_OK,
          "read-only connection refuses DELETE");
    rl_log_close(log);
    tdir_remove(&t);
}

// ---- 7. the CLI ---------------------------------------------------------------------------------

typedef struct cli_out {
    int code;
    char out[16384];
    char err[4096];
} cli_out;

// Runs `rlpipe logs ARGS...` (NULL-terminated) with stdout and stderr captured.
static void run_logs(cli_out *o, const char *const *args) {
    const char *argv[16];
    int n = test_argv_rlpipe(argv, 16, (const char *const[]){"logs", NULL});
    test_argv_append(argv, n, 16, args);
    o->code = test_run_capture(argv, NULL, o->out, sizeof o->out, o->err, sizeof o->err);
}

#define LOGS(o, ...) run_logs((o), (const char *const[]){__VA_ARGS__, NULL})

static void test_cli(void) {
    if (access(test_rlpipe_bin(), X_OK) != 0) {
        CHECK(0, "rlpipe binary %s not built", test_rlpipe_bin());
        return;
    }
    tdir t;
    tdir_make(&t, "cli.db");
    rl_err err = {0};
    rl_log *log = NULL;
    CHECK(rl_log_open(&log, t.db, 1, &err) == 0, "%s", err.msg);
    if (!log) return;
    int64_t run = 0, ids[4] = {0};
    CHECK(rl_log_begin_run(log, "cli-run", "a: 1\n", 9, &run, &err) == 0, "%s", err.msg);
    for (int s = 0; s < 2; s++) {
        CHECK(rl_log_begin_step(log, run, s, &err) == 0, "%s", err.msg);
        for (int i = 0; i < 4; i++) {
            rl_rollout_row r;
            rl_rollout_row_init(&r);
            r.group_id = i / 2;
            r.sample_idx = i % 2;
            r.prompt = "Compute 6*7.";
            r.completion = i == 3 ? "<think>\nsix times seven\n</think>\nThe answer is \\boxed{41}"
                                  : "<think>\nok\n</think>\n\\boxed{42}";
            r.answer = "42";
            r.finish_reason = "stop";
            r.n_tokens = 20 + i;
            r.reward = i == 3 ? 0.125 : 0.75 + 0.0625 * i;
            r.advantage = i - 1.5;
            CHECK(rl_log_rollout(log, &r, &ids[i], &err) == 0, "%s", err.msg);
            CHECK(rl_log_score(log, ids[i], "accuracy", 0.4, i == 3 ? 0 : 1, "ok",
                               i == 3 ? "answer 41, reference 42" : "answer 42, reference 42",
                               &err) == 0,
                  "%s", err.msg);
            CHECK(rl_log_score(log, ids[i], "format", 0.2, 1, "ok", "one boxed answer", &err) == 0,
                  "%s", err.msg);
        }
        CHECK(rl_log_commit_step(log, &err) == 0, "%s", err.msg);
    }
    rl_log_close(log);

    cli_out *o = rl_calloc(1, sizeof *o);
    char missing[256], idtext[32];
    snprintf(missing, sizeof missing, "%s/missing.db", t.dir);

    LOGS(o, "--help");
    CHECK(o->code == 0 && strstr(o->out, "usage: rlpipe logs"), "--help: %d", o->code);
    LOGS(o, missing, "runs");
    CHECK(o->code == 2 && strstr(o->err, missing), "missing db: %d '%s'", o->code, o->err);
    CHECK(access(missing, F_OK) != 0, "logs created the missing file");
    LOGS(o, t.db);
    CHECK(o->code == 2, "no subcommand: %d", o->code);
    LOGS(o, t.db, "frobnicate");
    CHECK(o->code == 2, "unknown subcommand: %d", o->code);

    LOGS(o, t.db, "runs");
    CHECK(o->code == 0 && strstr(o->out, "cli-run") && strstr(o->out, "running"), "runs: %d\n%s",
          o->code, o->out);
    LOGS(o, t.db, "steps", "--run", "cli-run");
    CHECK(o->code == 0 && strstr(o->out, "reward") && strstr(o->out, "accuracy"), "steps: %d\n%s",
          o->code, o->err);
    LOGS(o, t.db, "steps", "--run", "no-such-run");
    CHECK(o->code == 2 && strstr(o->err, "no-such-run"), "steps unknown run: %d", o->code);
    LOGS(o, t.db, "rollouts", "--sort", "worst", "--limit", "1", "--width", "0");
    CHECK(o->code == 0 && strstr(o->out, "\\boxed{41}") && !strstr(o->out, "\\boxed{42}") &&
              strstr(o->out, "(1 of 4 rollouts"),
          "rollouts worst: %d\n%s%s", o->code, o->out, o->err);
    CHECK(strstr(o->out, "\xe2\x8f\x8e") != NULL, "newlines shown as a mark:\n%s", o->out);
    LOGS(o, t.db, "rollouts", "--width", "12");
    CHECK(o->code == 0 && strstr(o->out, "\xe2\x80\xa6") && !strstr(o->out, "six times"),
          "long cells cut with an ellipsis:\n%s", o->out);

    snprintf(idtext, sizeof idtext, "%lld", (long long)ids[3]);
    LOGS(o, t.db, "show", idtext);
    CHECK(o->code == 0 && strstr(o->out, "six times seven\n</think>") &&
              strstr(o->out, "answer 41, reference 42") && strstr(o->out, "Compute 6*7."),
          "show: %d\n%s", o->code, o->out);
    LOGS(o, t.db, "show", "999999");
    CHECK(o->code == 2 && strstr(o->err, "999999"), "show unknown: %d %s", o->code, o->err);
    LOGS(o, t.db, "show", "abc");
    CHECK(o->code == 2, "show non-number: %d", o->code);

    // sql: results, formats, refusal of writes, syntax errors
    LOGS(o, t.db, "sql", "SELECT step, COUNT(*) AS n FROM rollouts GROUP BY step", "--format",
         "csv");
    CHECK(o->code == 0 && strcmp(o->out, "step,n\n0,4\n1,4\n") == 0, "csv: %d '%s'", o->code,
          o->out);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT id, completion, reward FROM rollouts WHERE id = %s", idtext);
    LOGS(o, t.db, "sql", sql, "--format=json");
    json_error_t jerr;
    json_t *j = json_loads(o->out, 0, &jerr);
    CHECK(o->code == 0 && json_is_array(j) && json_array_size(j) == 1, "json: %s\n%s", jerr.text,
          o->out);
    json_t *row = json_array_get(j, 0);
    CHECK(json_is_object(row) && json_real_value(json_object_get(row, "reward")) == 0.125 &&
              strstr(json_string_value(json_object_get(row, "completion")), "\nThe answer"),
          "json row values");
    json_decref(j);
    LOGS(o, t.db, "show", idtext, "--format", "json");
    j = json_loads(o->out, 0, &jerr);
    CHECK(o->code == 0 && json_is_object(j) && json_array_size(json_object_get(j, "scores")) == 2,
          "show json: %s\n%s", jerr.text, o->out);
    json_decref(j);
    LOGS(o, t.db, "sql", "SELECT * FROM step_summary");
    CHECK(o->code == 0 && strstr(o->out, "(2 rows)"), "view query: %d\n%s", o->code, o->out);

    const char *writes[] = {"DELETE FROM runs",
                            "DROP TABLE scores",
                            "INSERT INTO runs(name, started_at) VALUES ('x', 'now')",
                            "SELECT 1; DELETE FROM runs",
                            "UPDATE runs SET status = 'failed'",
                            "PRAGMA user_version = 7"};
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        LOGS(o, t.db, "sql", writes[i]);
        CHECK(o->code == 2, "'%s' exit %d, stderr %s", writes[i], o->code, o->err);
    }
    sqlite3 *db = raw_open(t.db, 1);
    CHECK(q_int(db, "SELECT COUNT(*) FROM runs") == 1, "runs row still there");
    CHECK(q_int(db, "SELECT COUNT(*) FROM scores") == 16, "scores still there");
    CHECK(q_int(db, "PRAGMA user_version") == RL_LOG_SCHEMA_VERSION, "user_version untouched");
    CHECK(q_int(db, "SELECT COUNT(*) FROM runs WHERE status = 'running'") == 1, "status untouched");
    sqlite3_close(db);
    LOGS(o, t.db, "sql", "SELEC * FROM runs");
    CHECK(o->code == 2 && strstr(o->err, "syntax error"), "syntax error: %d %s", o->code, o->err);
    LOGS(o, t.db, "sql", "SELECT * FROM no_such_table");
    CHECK(o->code == 2 && strstr(o->err, "no_such_table"), "no table: %d %s", o->code, o->err);
    LOGS(o, t.db, "runs", "--step", "3");
    CHECK(o->code == 2, "option that does not apply: %d", o->code);

    // A foreign file is refused by name.
    char foreign[256];
    snprintf(foreign, sizeof foreign, "%s/notes.txt", t.dir);
    FILE *f = fopen(foreign, "w");
    for (int i = 0; i < 100; i++) fprintf(f, "plain text line %d\n", i);
    fclose(f);
    LOGS(o, foreign, "runs");
    CHECK(o->code == 2 && strstr(o->err, foreign), "foreign file: %d %s", o->code, o->err);

    // Readers see committed steps while the writer is in the middle of a step (WAL).
    CHECK(rl_log_open(&log, t.db, 0, &err) == 0, "%s", err.msg);
    CHECK(rl_log_begin_step(log, run, 2, &err) == 0, "%s", err.msg);
    rl_rollout_row r;
    rl_rollout_row_init(&r);
    r.prompt = "p";
    r.completion = "c";
    r.finish_reason = "stop";
    CHECK(rl_log_rollout(log, &r, NULL, &err) == 0, "%s", err.msg);
    LOGS(o, t.db, "sql", "SELECT COUNT(*) AS n FROM rollouts", "--format", "csv");
    CHECK(o->code == 0 && strcmp(o->out, "n\n8\n") == 0, "concurrent read: %d '%s' %s", o->code,
          o->out, o->err);
    CHECK(rl_log_commit_step(log, &err) == 0, "%s", err.msg);
    LOGS(o, t.db, "sql", "SELECT COUNT(*) AS n FROM rollouts", "--format", "csv");
    CHECK(o->code == 0 && strcmp(o->out, "n\n9\n") == 0, "read after commit: '%s'", o->out);
    rl_log_close(log);
    free(o);
    tdir_remove(&t);
}

// Schema version 2 (distill_steps, evals.perplexity): a version-1 file keeps its rows, is read
// as it is read-only and upgraded in place when opened for writing; the new rows round-trip.
static void test_upgrade_from_v1(void) {
    tdir t;
    tdir_make(&t, "v1.db");
    rl_err err = {0};
    rl_log *log = NULL;
    int64_t run = 0;
    CHECK(rl_log_open(&log, t.db, 1, &err) == 0, "%s", err.msg);
    CHECK(rl_log_begin_run(log, "old", NULL, 1, &run, &err) == 0, "%s", err.msg);
    rl_eval_row e;
    rl_eval_row_init(&e);
    e.run_id = run;
    e.split = "heldout";
    e.n = 10;
    e.pass_at_1 = 0.25;
    CHECK(rl_log_eval(log, &e, &err) == 0, "%s", err.msg);
    rl_log_close(log);
    // make it the version-1 file an older rlpipe wrote
    sqlite3 *db = raw_open(t.db, 0);
    raw_exec(db,
             "DROP TABLE distill_steps; ALTER TABLE evals DROP COLUMN perplexity;"
             " PRAGMA user_version = 1; UPDATE meta SET value = '1' WHERE key = 'schema_version'");
    sqlite3_close(db);
    // read-only: accepted untouched
    CHECK(rl_log_open_readonly(&log, t.db, &err) == 0, "read-only v1: %s", err.msg);
    rl_log_close(log);
    db = raw_open(t.db, 1);
    CHECK(q_int(db, "PRAGMA user_version") == 1, "read-only open left version 1");
    sqlite3_close(db);
    // for writing: upgraded, rows kept, new rows accepted
    CHECK(rl_log_open(&log, t.db, 0, &err) == 0, "upgrade: %s", err.msg);
    CHECK(rl_log_begin_run(log, "new", NULL, 2, &run, &err) == 0, "%s", err.msg);
    CHECK(rl_log_begin_step(log, run, 1, &err) == 0, "%s", err.msg);
    rl_step_stats st;
    rl_step_stats_init(&st);
    st.phase = "distill";
    st.loss = 0.5;
    rl_distill_step_row d = {0.4, 1.25, 0.5, 2.0, 0.3, 0.7, 123};
    CHECK(rl_log_step_stats(log, &st, &err) == 0 && rl_log_distill_step(log, &d, &err) == 0, "%s",
          err.msg);
    CHECK(rl_log_commit_step(log, &err) == 0, "%s", err.msg);
    rl_eval_row_init(&e);
    e.run_id = run;
    e.step = 1;
    e.split = "teacher_text";
    e.n = 4;
    e.perplexity = 3.5;
    CHECK(rl_log_eval(log, &e, &err) == 0, "%s", err.msg);
    // a distill row outside a step is a misuse
    CHECK(rl_log_distill_step(log, &d, &err) != 0 && err.kind == RL_EINTERNAL, "outside a step");
    rl_log_close(log);
    db = raw_open(t.db, 1);
    char buf[64];
    CHECK(q_int(db, "PRAGMA user_version") == RL_LOG_SCHEMA_VERSION, "upgraded version");
    CHECK(strcmp(q_text(db, "SELECT value FROM meta WHERE key='schema_version'", buf, sizeof buf),
                 "2") == 0,
          "meta version %s", buf);
    CHECK(q_int(db, "SELECT COUNT(*) FROM evals e JOIN runs r ON r.id = e.run_id"
                    " WHERE r.name = 'old' AND e.pass_at_1 = 0.25 AND e.perplexity IS NULL") == 1,
          "the version-1 row is kept");
    CHECK(q_int(db, "SELECT n_tokens FROM distill_steps WHERE step = 1") == 123, "distill row");
    CHECK(q_int(db, "SELECT CAST(1000 * tau_mean AS INTEGER) FROM distill_steps") == 1250, "tau");
    CHECK(q_int(db, "SELECT CAST(10 * perplexity AS INTEGER) FROM evals"
                    " WHERE split = 'teacher_text'") == 35,
          "perplexity");
    sqlite3_close(db);
    // truncation removes distill rows with their steps
    CHECK(rl_log_open(&log, t.db, 0, &err) == 0, "%s", err.msg);
    CHECK(rl_log_truncate_after(log, run, 0, &err) == 0, "%s", err.msg);
    rl_log_close(log);
    db = raw_open(t.db, 1);
    CHECK(q_int(db, "SELECT COUNT(*) FROM distill_steps") == 0, "truncated distill rows");
    sqlite3_close(db);
    tdir_remove(&t);
}

// rl_log_utf8_len against sequences whose validity the Unicode standard (table 3-7) fixes.
static void test_utf8_len(void) {
    static const struct {
        const char *bytes;
        size_t n, want;
    } cases[] = {
        {"a", 1, 1},
        {"\xC3\xA9", 2, 2},
        {"\xE2\x82\xAC", 3, 3},
        {"\xF0\x9F\x98\x80", 4, 4},
        {"\xF4\x8F\xBF\xBF", 4, 4},
        {"\xC3", 1, 0},             // cut short
        {"\xC0\xAF", 2, 0},         // overlong
        {"\xC1\xBF", 2, 0},         // overlong
        {"\xE0\x80\xAF", 3, 0},     // overlong
        {"\xED\xA0\x80", 3, 0},     // surrogate
        {"\xF0\x80\x80\xAF", 4, 0}, // overlong
        {"\xF4\x90\x80\x80", 4, 0}, // above U+10FFFF
        {"\xF5\x80\x80\x80", 4, 0}, // no such lead byte
        {"\x80", 1, 0},             // continuation byte first
        {"\xE2\x82(", 3, 0},        // continuation missing
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t got = rl_log_utf8_len((const unsigned char *)cases[i].bytes, cases[i].n);
        CHECK(got == cases[i].want, "case %zu: got %zu, want %zu", i, got, cases[i].want);
    }
}

int main(void) {
    RUN(test_roundtrip);
    RUN(test_upgrade_from_v1);
    RUN(test_views);
    RUN(test_crash_safety);
    RUN(test_truncate_and_resume);
    RUN(test_refuses_foreign_files);
    RUN(test_misuse);
    RUN(test_cli);
    RUN(test_utf8_len);
    return test_summary();
}
