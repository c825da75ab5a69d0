// report: rollout logs into the report's JSON document (series, evals, samples). See report.h.
#define _POSIX_C_SOURCE 200809L
#include "rollout/report.h"

#include <math.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollout/log.h"

void rl_report_opts_init(rl_report_opts *o) {
    o->samples_per_step = 3;
    o->max_text = 16384;
}

json_t *rl_report_new(void) {
    return json_pack("{s:[],s:[]}", "runs", "notes");
}

int rl_report_n_runs(const json_t *doc) {
    return (int)json_array_size(json_object_get(doc, "runs"));
}

static void note(json_t *doc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(json_t *doc, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    json_array_append_new(json_object_get(doc, "notes"), json_string(buf));
}

// ---- values ----------------------------------------------------------------------------------

// Text from the log as a JSON string: invalid UTF-8 becomes U+FFFD, and text longer than max
// bytes is cut at a character boundary with a note of how much was left out.
static json_t *text_json(const unsigned char *s, size_t n, int max) {
    if (!s) return json_null();
    size_t cap = n + 64, len = 0;
    char *out = rl_malloc(cap);
    size_t i = 0;
    while (i < n) {
        size_t c = rl_log_utf8_len(s + i, n - i);
        if (max > 0 && len + (c ? c : 3) > (size_t)max) break;
        if (len + 4 > cap) out = rl_realloc(out, cap *= 2);
        if (c == 0) {
            memcpy(out + len, "\xef\xbf\xbd", 3);
            len += 3;
            i++;
        } else {
            memcpy(out + len, s + i, c);
            len += c;
            i += c;
        }
    }
    if (i < n) {
        char tail[96];
        int t = snprintf(tail, sizeof tail, "\n\xe2\x80\xa6 [cut: %zu more bytes]", n - i);
        if (len + (size_t)t + 1 > cap) out = rl_realloc(out, cap = len + (size_t)t + 1);
        memcpy(out + len, tail, (size_t)t);
        len += (size_t)t;
    }
    json_t *v = json_stringn_nocheck(out, len);
    free(out);
    return v;
}

// A numeric cell: null for NULL (not measured) or text, an integer or a real; +-inf and NaN
// (a diverged loss is worth seeing) as the strings "Infinity", "-Infinity", "NaN".
static json_t *num_json(sqlite3_stmt *st, int col) {
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(st, col));
    case SQLITE_FLOAT: {
        double x = sqlite3_column_double(st, col);
        if (isfinite(x)) return json_real(x);
        return json_string(isnan(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity");
    }
    default:
        return json_null();
    }
}

static json_t *col_text(sqlite3_stmt *st, int col, int max) {
    if (sqlite3_column_type(st, col) == SQLITE_NULL) return json_null();
    const unsigned char *s = sqlite3_column_text(st, col);
    return text_json(s, (size_t)sqlite3_column_bytes(st, col), max);
}

// ---- schema probing ----------------------------------------------------------------------------

typedef struct table_info {
    int exists;
    char cols[64][48]; // the table's columns (names cut at 47 bytes; ours are short)
    int n_cols;
} table_info;

static void probe_table(sqlite3 *db, const char *table, table_info *t) {
    memset(t, 0, sizeof *t);
    char sql[128];
    snprintf(sql, sizeof sql, "PRAGMA table_info(%s)", table);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return;
    while (sqlite3_step(st) == SQLITE_ROW && t->n_cols < 64) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        snprintf(t->cols[t->n_cols++], sizeof t->cols[0], "%s", name ? name : "");
    }
    sqlite3_finalize(st);
    t->exists = t->n_cols > 0;
}

static int has_col(const table_info *t, const char *col) {
    for (int i = 0; i < t->n_cols; i++)
        if (strcmp(t->cols[i], col) == 0) return 1;
    return 0;
}

// Appends "a, b, NULL AS c" for the wanted columns (those missing read as NULL) to sql and
// returns how many were missing; their names go to missing (comma-separated).
static int select_list(const table_info *t, const char *const *want, int n, char *sql, size_t cap,
                       char *missing, size_t mcap) {
    int n_missing = 0;
    size_t len = strlen(sql), mlen = 0;
    missing[0] = '\0';
    for (int i = 0; i < n; i++) {
        int ok = has_col(t, want[i]);
        len += (size_t)snprintf(sql + len, len < cap ? cap - len : 0, "%s%s%s", i ? ", " : "",
                                ok ? "" : "NULL AS ", want[i]);
        if (!ok) {
            mlen += (size_t)snprintf(missing + mlen, mlen < mcap ? mcap - mlen : 0, "%s%s",
                                     n_missing ? ", " : "", want[i]);
            n_missing++;
        }
    }
    return n_missing;
}

// ---- per-run sections --------------------------------------------------------------------------

// The numeric columns of `steps` the report plots, in the order the document lists them.
static const char *const STEP_COLS[] = {
    "step",
    "loss",
    "kl",
    "entropy",
    "clip_frac",
    "grad_norm",
    "lr",
    "reward_mean",
    "reward_std",
    "accuracy",
    "len_mean",
    "len_max",
    "truncated_frac",
    "n_rollouts",
    "n_groups_kept",
    "nonfinite",
    "tokens_per_s",
    "train_tokens_per_s",
    "t_rollout",
    "t_verify",
    "t_update",
    "t_total",
};
#define N_STEP_COLS ((int)(sizeof STEP_COLS / sizeof STEP_COLS[0]))

typedef struct src {
    sqlite3 *db;
    const char *path;
    json_t *doc;
    const rl_report_opts *o;
    table_info steps, rollouts, scores, evals, runs;
} src;

// Column-wise step series of one run: {"step": [...], "phase": [...], "kl": [...], ...}.
static json_t *load_steps(src *s, int64_t run_id, const char *run_name) {
    json_t *out = json_object();
    if (!s->steps.exists || !has_col(&s->steps, "run_id") || !has_col(&s->steps, "step"))
        return out;
    char sql[2048] = "SELECT ", missing[512];
    const char *want[N_STEP_COLS + 1];
    for (int i = 0; i < N_STEP_COLS; i++) want[i] = STEP_COLS[i];
    want[N_STEP_COLS] = "phase";
    int n_missing =
        select_list(&s->steps, want, N_STEP_COLS + 1, sql, sizeof sql, missing, sizeof missing);
    size_t len = strlen(sql);
    snprintf(sql + len, sizeof sql - len, " FROM steps WHERE run_id = ?1 ORDER BY step");
    if (n_missing)
        note(s->doc, "%s: run '%s': steps has no column %s; those curves are left out", s->path,
             run_name, missing);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        note(s->doc, "%s: cannot read steps: %s", s->path, sqlite3_errmsg(s->db));
        return out;
    }
    json_t *cols[N_STEP_COLS + 1];
    for (int i = 0; i <= N_STEP_COLS; i++) {
        cols[i] = json_array();
        json_object_set_new(out, want[i], cols[i]);
    }
    sqlite3_bind_int64(st, 1, run_id);
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int i = 0; i < N_STEP_COLS; i++) json_array_append_new(cols[i], num_json(st, i));
        json_array_append_new(cols[N_STEP_COLS], col_text(st, N_STEP_COLS, 64));
    }
    sqlite3_finalize(st);
    // Columns with no value at all are dropped: the report then says they were not logged.
    for (int i = 1; i <= N_STEP_COLS; i++) {
        size_t j;
        json_t *v;
        int any = 0;
        json_array_foreach(cols[i], j, v) any |= !json_is_null(v);
        if (!any) json_object_del(out, want[i]);
    }
    return out;
}

// Mean score of each verifier per step, aligned with steps: {"accuracy": [...], ...}.
static json_t *load_verifier_means(src *s, int64_t run_id, const json_t *steps) {
    json_t *out = json_object();
    const json_t *step_col = json_object_get(steps, "step");
    size_t n_steps = json_array_size(step_col);
    if (!n_steps || !s->scores.exists || !s->rollouts.exists) return out;
    if (!has_col(&s->scores, "score") || !has_col(&s->scores, "verifier") ||
        !has_col(&s->scores, "rollout_id"))
        return out;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT o.step, sc.verifier, AVG(sc.score) FROM scores sc"
                           " JOIN rollouts o ON o.id = sc.rollout_id WHERE o.run_id = ?1"
                           " GROUP BY o.step, sc.verifier ORDER BY o.step, sc.verifier",
                           -1, &st, NULL) != SQLITE_OK) {
        note(s->doc, "%s: cannot read verifier scores: %s", s->path, sqlite3_errmsg(s->db));
        return out;
    }
    sqlite3_bind_int64(st, 1, run_id);
    size_t at = 0; // steps are ordered, so the index only moves forward
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_int_t step = sqlite3_column_int64(st, 0);
        while (at < n_steps && json_integer_value(json_array_get(step_col, at)) < step) at++;
        if (at >= n_steps || json_integer_value(json_array_get(step_col, at)) != step) continue;
        const unsigned char *name = sqlite3_column_text(st, 1);
        json_t *key = text_json(name, (size_t)sqlite3_column_bytes(st, 1), 200);
        const char *k = json_string_value(key);
        json_t *arr = json_object_get(out, k);
        if (!arr) {
            arr = json_array();
            for (size_t i = 0; i < n_steps; i++) json_array_append_new(arr, json_null());
            json_object_set_new(out, k, arr);
        }
        json_array_set_new(arr, at, num_json(st, 2));
        json_decref(key);
    }
    sqlite3_finalize(st);
    return out;
}

// Every evaluation of the run, ordered by step.
static json_t *load_evals(src *s, int64_t run_id, const char *run_name) {
    json_t *out = json_array();
    if (!s->evals.exists) return out;
    static const char *const want[] = {
        "step",      "split",           "n",        "k",       "temperature",    "pass_at_1",
        "pass_at_k", "accuracy_greedy", "len_mean", "seconds", "verifier_means", "created_at"};
    int n = (int)(sizeof want / sizeof want[0]);
    if (!has_col(&s->evals, "run_id") || !has_col(&s->evals, "step")) return out;
    char sql[1024] = "SELECT ", missing[256];
    if (select_list(&s->evals, want, n, sql, sizeof sql, missing, sizeof missing))
        note(s->doc, "%s: run '%s': evals has no column %s", s->path, run_name, missing);
    size_t len = strlen(sql);
    snprintf(sql + len, sizeof sql - len, " FROM evals WHERE run_id = ?1 ORDER BY step, split");
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        note(s->doc, "%s: cannot read evals: %s", s->path, sqlite3_errmsg(s->db));
        return out;
    }
    sqlite3_bind_int64(st, 1, run_id);
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *e = json_object();
        for (int i = 0; i < n; i++) {
            if (strcmp(want[i], "split") == 0 || strcmp(want[i], "created_at") == 0) {
                json_object_set_new(e, want[i], col_text(st, i, 200));
            } else if (strcmp(want[i], "verifier_means") == 0) {
                // A JSON object {"accuracy": 0.5, ...} as text; anything else is ignored.
                json_t *vm = NULL;
                const char *txt = (const char *)sqlite3_column_text(st, i);
                if (txt) vm = json_loads(txt, 0, NULL);
                if (vm && !json_is_object(vm)) {
                    json_decref(vm);
                    vm = NULL;
                }
                json_t *clean = json_object();
                const char *k;
                json_t *v;
                if (vm)
                    json_object_foreach(vm, k,
                                        v) if (json_is_number(v) && isfinite(json_number_value(v)))
                        json_object_set_new(clean, k, json_real(json_number_value(v)));
                json_decref(vm);
                json_object_set_new(e, "verifier_means", clean);
            } else {
                json_object_set_new(e, want[i], num_json(st, i));
            }
        }
        json_array_append_new(out, e);
    }
    sqlite3_finalize(st);
    return out;
}

// Every verdict on one rollout: [{"verifier", "weight", "score", "status", "detail"}].
static json_t *load_scores(src *s, sqlite3_stmt *st, int64_t rollout_id) {
    json_t *out = json_array();
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, rollout_id);
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *v = json_object();
        json_object_set_new(v, "verifier", col_text(st, 0, 200));
        json_object_set_new(v, "weight", num_json(st, 1));
        json_object_set_new(v, "score", num_json(st, 2));
        json_object_set_new(v, "status", col_text(st, 3, 64));
        json_object_set_new(v, "detail", col_text(st, 4, s->o->max_text));
        json_array_append_new(out, v);
    }
    return out;
}

// The best and worst rollouts of every step: {"<step>": [{..., "best": rank, "worst": rank}]}.
static json_t *load_samples(src *s, int64_t run_id, const char *run_name) {
    json_t *out = json_object();
    int k = s->o->samples_per_step;
    if (k <= 0 || !s->rollouts.exists) return out;
    static const char *const required[] = {"id", "run_id", "step", "completion"};
    for (int i = 0; i < 4; i++)
        if (!has_col(&s->rollouts, required[i])) {
            note(s->doc, "%s: rollouts has no column %s; no samples shown", s->path, required[i]);
            return out;
        }
    static const char *const want[] = {"id",         "step",          "reward",     "advantage",
                                       "n_tokens",   "finish_reason", "task",       "group_id",
                                       "sample_idx", "prompt",        "completion", "answer"};
    int n = (int)(sizeof want / sizeof want[0]);
    char sql[2048] = "SELECT ", missing[256];
    if (select_list(&s->rollouts, want, n, sql, sizeof sql, missing, sizeof missing))
        note(s->doc, "%s: run '%s': rollouts has no column %s", s->path, run_name, missing);
    size_t len = strlen(sql);
    const char *rw = has_col(&s->rollouts, "reward") ? "reward" : "NULL";
    snprintf(
        sql + len, sizeof sql - len,
        ", best, worst FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY step ORDER BY %s IS NULL,"
        " %s DESC, id) AS best, ROW_NUMBER() OVER (PARTITION BY step ORDER BY %s IS NULL, %s,"
        " id) AS worst FROM rollouts WHERE run_id = ?1) WHERE (best <= ?2 OR worst <= ?2)"
        " AND ((step - ?3) %% ?4 = 0 OR step = ?5) ORDER BY step, best",
        rw, rw, rw, rw);
    sqlite3_stmt *st = NULL, *sc = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        note(s->doc, "%s: cannot read rollouts: %s", s->path, sqlite3_errmsg(s->db));
        return out;
    }
    if (s->scores.exists) {
        char ssql[512] = "SELECT ";
        static const char *const swant[] = {"verifier", "weight", "score", "status", "detail"};
        select_list(&s->scores, swant, 5, ssql, sizeof ssql, missing, sizeof missing);
        len = strlen(ssql);
        // Heaviest verifier first (the configured order for the built-in weights), then by name.
        snprintf(ssql + len, sizeof ssql - len, " FROM scores WHERE rollout_id = ?1 ORDER BY %s",
                 has_col(&s->scores, "weight") ? "weight DESC, verifier" : "verifier");
        if (sqlite3_prepare_v2(s->db, ssql, -1, &sc, NULL) != SQLITE_OK) {
            note(s->doc, "%s: cannot read scores: %s", s->path, sqlite3_errmsg(s->db));
            sc = NULL;
        }
    }
    // A long run keeps the samples of every stride-th step (and the last) so the page stays small.
    int64_t first = 0, last = 0, n_steps = 0, stride = 1;
    sqlite3_stmt *span = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT MIN(step), MAX(step), COUNT(DISTINCT step) FROM rollouts"
                           " WHERE run_id = ?1",
                           -1, &span, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(span, 1, run_id);
        if (sqlite3_step(span) == SQLITE_ROW) {
            first = sqlite3_column_int64(span, 0);
            last = sqlite3_column_int64(span, 1);
            n_steps = sqlite3_column_int64(span, 2);
        }
    }
    sqlite3_finalize(span);
    if (n_steps > RL_REPORT_MAX_SAMPLE_STEPS) {
        stride = (last - first) / RL_REPORT_MAX_SAMPLE_STEPS + 1;
        note(s->doc,
             "run '%s': %lld steps have rollouts; samples are kept for every %lld-th step"
             " and the last",
             run_name, (long long)n_steps, (long long)stride);
    }
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int(st, 2, k);
    sqlite3_bind_int64(st, 3, first);
    sqlite3_bind_int64(st, 4, stride);
    sqlite3_bind_int64(st, 5, last);
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *r = json_object();
        for (int i = 0; i < n; i++) {
            int is_text = i >= 5 && (i == 5 || i == 6 || i >= 9);
            json_object_set_new(r, want[i],
                                is_text ? col_text(st, i, i == 5 ? 64 : s->o->max_text)
                                        : num_json(st, i));
        }
        int64_t best = sqlite3_column_int64(st, n), worst = sqlite3_column_int64(st, n + 1);
        if (best <= k) json_object_set_new(r, "best", json_integer(best));
        if (worst <= k) json_object_set_new(r, "worst", json_integer(worst));
        json_object_set_new(r, "scores",
                            sc ? load_scores(s, sc, sqlite3_column_int64(st, 0)) : json_array());
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)sqlite3_column_int64(st, 1));
        json_t *list = json_object_get(out, key);
        if (!list) json_object_set_new(out, key, list = json_array());
        json_array_append_new(list, r);
    }
    sqlite3_finalize(sc);
    sqlite3_finalize(st);
    return out;
}

// One run's entry: identity, steps, verifier means, evals, samples.
static json_t *load_run(src *s, sqlite3_stmt *run_row, const char *label, int with_samples) {
    int64_t id = sqlite3_column_int64(run_row, 0);
    json_t *name = col_text(run_row, 1, 400);
    const char *nm = json_string_value(name) ? json_string_value(name) : "?";
    json_t *r = json_object();
    char full[1024];
    if (label && *label)
        snprintf(full, sizeof full, "%s/%s", label, nm);
    else
        snprintf(full, sizeof full, "%s", nm);
    json_object_set_new(r, "label", json_string(full));
    json_object_set_new(r, "name", name);
    json_object_set_new(r, "file",
                        text_json((const unsigned char *)s->path, strlen(s->path), 4096));
    json_object_set_new(r, "id", json_integer(id));
    for (int c = 2; c < 7; c++) {
        const char *key = sqlite3_column_name(run_row, c);
        json_object_set_new(r, key, col_text(run_row, c, 400));
    }
    json_t *steps = load_steps(s, id, nm);
    json_object_set_new(r, "verifiers", load_verifier_means(s, id, steps));
    json_object_set_new(r, "steps", steps);
    json_object_set_new(r, "evals", load_evals(s, id, nm));
    json_object_set_new(r, "samples", with_samples ? load_samples(s, id, nm) : json_object());
    return r;
}

static int ends_with_sft(const char *name) {
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, "-sft") == 0;
}

int rl_report_add_log(json_t *doc, const char *path, const char *label, const rl_report_opts *o,
                      rl_err *err) {
    rl_log *log = NULL;
    RL_TRY(rl_log_open_readonly(&log, path, err));
    src s = {.db = rl_log_sqlite(log), .path = path, .doc = doc, .o = o};
    probe_table(s.db, "runs", &s.runs);
    probe_table(s.db, "steps", &s.steps);
    probe_table(s.db, "rollouts", &s.rollouts);
    probe_table(s.db, "scores", &s.scores);
    probe_table(s.db, "evals", &s.evals);
    const char *tables[] = {"steps", "rollouts", "scores", "evals"};
    const table_info *infos[] = {&s.steps, &s.rollouts, &s.scores, &s.evals};
    for (int i = 0; i < 4; i++)
        if (!infos[i]->exists)
            note(doc, "%s: no table '%s'; what it holds is left out", path, tables[i]);
    if (!s.runs.exists || !has_col(&s.runs, "id") || !has_col(&s.runs, "name")) {
        note(doc, "%s: no table 'runs' (or it lacks id/name): nothing to report", path);
        rl_log_close(log);
        return 0;
    }
    char sql[512] = "SELECT id, name, ", missing[256];
    static const char *const want[] = {"status", "started_at", "finished_at", "seed", "out_dir"};
    select_list(&s.runs, want, 5, sql, sizeof sql, missing, sizeof missing);
    size_t len = strlen(sql);
    snprintf(sql + len, sizeof sql - len, " FROM runs ORDER BY id");
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s.db, sql, -1, &st, NULL) != SQLITE_OK) {
        int rc =
            rl_fail(err, RL_EINPUT, "%s: cannot read the runs: %s", path, sqlite3_errmsg(s.db));
        rl_log_close(log);
        return rc;
    }
    // First every run by name, so that "X-sft" can be attached to "X".
    json_t *names = json_object(); // name -> run entry (borrowed from the list below)
    json_t *all = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *nm = (const char *)sqlite3_column_text(st, 1);
        int is_sft = nm && ends_with_sft(nm);
        json_t *r = load_run(&s, st, label, !is_sft);
        json_array_append_new(all, r);
        if (nm) json_object_set(names, nm, r);
    }
    sqlite3_finalize(st);
    json_t *runs = json_object_get(doc, "runs");
    size_t i;
    json_t *r;
    json_array_foreach(all, i, r) {
        const char *nm = json_string_value(json_object_get(r, "name"));
        char base[1024];
        if (nm && ends_with_sft(nm)) {
            snprintf(base, sizeof base, "%.*s", (int)(strlen(nm) - 4), nm);
            if (json_object_get(names, base)) continue; // attached below
        }
        if (nm) {
            snprintf(base, sizeof base, "%s-sft", nm);
            json_t *sft = json_object_get(names, base);
            if (sft) json_object_set(r, "sft", sft);
        }
        json_array_append(runs, r);
    }
    json_decref(names);
    json_decref(all);
    rl_log_close(log);
    return 0;
}
