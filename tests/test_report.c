// test_report: `rlpipe report` end to end through the binary. A micro training run (SFT + GRPO +
// evaluations) is reported while it is still running and after it finished; every series in the
// report's embedded JSON is compared with an independent SQL query on the log; the HTML is checked
// for self-containment (no URL, no external resource, balanced script tags) and the PNG charts are
// decoded with cairo and checked for size and ink. Also: two runs overlaid, a run killed with
// SIGKILL, an empty log, a log with tables and columns removed, hostile text in every field that
// reaches the page (</script>, <img onerror>, invalid UTF-8), and the CLI's usage errors.
#define _POSIX_C_SOURCE 200809L
#include <cairo.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "rollout/log.h"
#include "rollout/report.h"
#include "test_proc.h"
#include "test_util.h"

// ---- running the binary -------------------------------------------------------------------------

typedef struct result {
    int code;
    char out[1 << 14];
    char err[1 << 14];
} result;

static result R;

// Runs `rlpipe args...` (NULL-terminated) and waits.
static void rlpipe(const char *const *args, result *r) {
    const char *argv[64];
    test_argv_rlpipe(argv, 64, args);
    r->code = test_run_capture(argv, NULL, r->out, sizeof r->out, r->err, sizeof r->err);
}

// The micro run: 2 layers, 30 SFT steps, RL of 4 prompts x 4 samples, evaluations every 3 steps.
static pid_t start_train(const char *out_dir, const char *const *extra) {
    static const char *micro[] = {"--set", "model.hidden_size=32",
                                  "--set", "model.num_hidden_layers=2",
                                  "--set", "model.num_attention_heads=4",
                                  "--set", "model.num_key_value_heads=2",
                                  "--set", "model.intermediate_size=48",
                                  "--set", "sft.steps=30",
                                  "--set", "sft.batch_size=8",
                                  "--set", "sft.warmup_steps=5",
                                  "--set", "rollout.prompts_per_step=4",
                                  "--set", "rollout.group_size=4",
                                  "--set", "rollout.max_new_tokens=40",
                                  "--set", "eval.n=12",
                                  "--set", "eval.k=2",
                                  "--set", "eval.every=3",
                                  "--set", "checkpoint.every=0",
                                  "--set", "data.heldout_size=20",
                                  "--set", "logging.progress=never",
                                  "--set", "algorithm.lr=3e-3",
                                  NULL};
    static char out_set[512];
    const char *argv[96];
    test_argv_run(argv, 96, "train", "configs/tiny.yaml", micro, out_dir, extra, out_set,
                  sizeof out_set);
    return test_spawn(argv, &(test_proc){.quiet = 1});
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// ---- the log, read independently -----------------------------------------------------------------

static sqlite3 *open_db(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/rollouts.db", dir);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

// One number from a query (NaN when it returns no row or NULL).
static double sql_num(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    double v = NAN;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return NAN;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

// RL steps committed so far in dir's log (run name), -1 when the log cannot be read yet.
static int logged_steps(const char *dir, const char *name) {
    sqlite3 *db = open_db(dir);
    if (!db) return -1;
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.name = '%s'",
             name);
    double n = sql_num(db, sql);
    sqlite3_close(db);
    return isnan(n) ? -1 : (int)n;
}

// ---- the report ----------------------------------------------------------------------------------

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

// The JSON document embedded in the page (NULL when it is missing or does not parse).
static json_t *embedded_json(const char *html) {
    const char *open = "<script type=\"application/json\" id=\"report-data\">";
    const char *a = strstr(html, open);
    if (!a) return NULL;
    a += strlen(open);
    const char *z = strstr(a, "</script>");
    if (!z) return NULL;
    json_error_t e;
    json_t *doc = json_loadb(a, (size_t)(z - a), 0, &e);
    if (!doc) fprintf(stderr, "embedded JSON: %s at %d\n", e.text, e.position);
    return doc;
}

// The page stands alone: one style, exactly two scripts (data and code), no URL but the SVG
// namespace, nothing that loads a resource.
static void check_self_contained(const char *html, const char *what) {
    CHECK(strncmp(html, "<!DOCTYPE html>", 15) == 0, "%s: doctype", what);
    size_t n = strlen(html);
    CHECK(n > 8 && strcmp(html + n - 8, "</html>\n") == 0, "%s: ends with </html>", what);
    CHECK(count_of(html, "<script") == 2 && count_of(html, "</script>") == 2,
          "%s: %d <script and %d </script>", what, count_of(html, "<script"),
          count_of(html, "</script>"));
    CHECK(count_of(html, "<style>") == 1 && count_of(html, "</style>") == 1, "%s: style", what);
    CHECK(count_of(html, "<body>") == 1 && count_of(html, "</body>") == 1, "%s: body", what);
    CHECK(!strstr(html, "https:") && !strstr(html, "//cdn") && !strstr(html, "<link") &&
              !strstr(html, "@import") && !strstr(html, "url(") && !strstr(html, "<script src") &&
              !strstr(html, "<iframe") && !strstr(html, "<img") && !strstr(html, "<!--") &&
              !strstr(html, "<object") && !strstr(html, "<embed"),
          "%s: an external resource or a hostile tag in the page", what);
    CHECK(count_of(html, "http:") == count_of(html, "'http://www.w3.org/2000/svg'"),
          "%s: a URL other than the SVG namespace", what);
}

static double jnum(const json_t *v) {
    if (json_is_number(v)) return json_number_value(v);
    if (json_is_string(v)) return strtod(json_string_value(v), NULL);
    return NAN;
}

static const json_t *run_named(const json_t *doc, const char *name) {
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(doc, "runs"), i, r) {
        const char *nm = json_string_value(json_object_get(r, "name"));
        if (nm && strcmp(nm, name) == 0) return r;
    }
    return NULL;
}

// Every step column that has values in the log has the same values in the report.
static void check_steps_against_sql(sqlite3 *db, const json_t *run, const char *run_name,
                                    int *n_series) {
    static const char *cols[] = {"loss",         "kl",
                                 "entropy",      "clip_frac",
                                 "grad_norm",    "lr",
                                 "reward_mean",  "reward_std",
                                 "accuracy",     "len_mean",
                                 "len_max",      "truncated_frac",
                                 "tokens_per_s", "train_tokens_per_s",
                                 "t_rollout",    "t_verify",
                                 "t_update",     "t_total"};
    const json_t *steps = json_object_get(run, "steps");
    const json_t *step = json_object_get(steps, "step");
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.name = '%s'",
             run_name);
    CHECK((double)json_array_size(step) == sql_num(db, sql),
          "%s: %zu steps in the report, %g in the log", run_name, json_array_size(step),
          sql_num(db, sql));
    *n_series = 0;
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
        snprintf(
            sql, sizeof sql,
            "SELECT COUNT(s.%s) FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.name = '%s'",
            cols[c], run_name);
        double have = sql_num(db, sql);
        const json_t *arr = json_object_get(steps, cols[c]);
        CHECK((have > 0) == (arr != NULL), "%s: column %s: %g values in the log, in report: %d",
              run_name, cols[c], have, arr != NULL);
        if (!arr) continue;
        (*n_series)++;
        for (size_t i = 0; i < json_array_size(step); i++) {
            snprintf(sql, sizeof sql,
                     "SELECT s.%s FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.name = '%s'"
                     " AND s.step = %lld",
                     cols[c], run_name, (long long)json_integer_value(json_array_get(step, i)));
            double want = sql_num(db, sql), got = jnum(json_array_get(arr, i));
            CHECK((isnan(want) && isnan(got)) || fabs(got - want) <= 1e-8 * fmax(1, fabs(want)),
                  "%s: %s at step index %zu: report %.12g, log %.12g", run_name, cols[c], i, got,
                  want);
        }
    }
}

// Per-verifier means, evaluations and the best/worst samples, against SQL.
static void check_rl_run(sqlite3 *db, const json_t *run) {
    const json_t *steps = json_object_get(run, "steps");
    const json_t *step = json_object_get(steps, "step");
    const json_t *vm = json_object_get(run, "verifiers");
    const char *vnames[] = {"accuracy", "path_quality", "format", "efficiency"};
    char sql[768];
    for (int v = 0; v < 4; v++) {
        const json_t *arr = json_object_get(vm, vnames[v]);
        CHECK(arr && json_array_size(arr) == json_array_size(step), "verifier %s series",
              vnames[v]);
        for (size_t i = 0; arr && i < json_array_size(step); i++) {
            snprintf(sql, sizeof sql,
                     "SELECT AVG(sc.score) FROM scores sc JOIN rollouts o ON o.id = sc.rollout_id"
                     " JOIN runs r ON r.id = o.run_id WHERE r.name = 'tiny' AND o.step = %lld AND"
                     " sc.verifier = '%s'",
                     (long long)json_integer_value(json_array_get(step, i)), vnames[v]);
            CHECK_NEAR(jnum(json_array_get(arr, i)), sql_num(db, sql), 1e-8, vnames[v]);
        }
    }
    const json_t *evals = json_object_get(run, "evals");
    double n_evals = sql_num(db, "SELECT COUNT(*) FROM evals e JOIN runs r ON r.id = e.run_id"
                                 " WHERE r.name = 'tiny'");
    CHECK(n_evals >= 2 && (double)json_array_size(evals) == n_evals, "%zu evals, log %g",
          json_array_size(evals), n_evals);
    for (size_t i = 0; i < json_array_size(evals); i++) {
        const json_t *e = json_array_get(evals, i);
        snprintf(sql, sizeof sql,
                 "SELECT pass_at_1 FROM evals e JOIN runs r ON r.id = e.run_id WHERE r.name ="
                 " 'tiny' AND e.step = %lld",
                 (long long)json_integer_value(json_object_get(e, "step")));
        CHECK_NEAR(jnum(json_object_get(e, "pass_at_1")), sql_num(db, sql), 1e-8, "eval pass@1");
        CHECK(json_object_size(json_object_get(e, "verifier_means")) == 4, "eval verifier means");
    }
    // Samples: for every step, best #1 has the step's highest reward and worst #1 the lowest.
    const json_t *samples = json_object_get(run, "samples");
    CHECK(json_object_size(samples) == json_array_size(step), "samples for %zu of %zu steps",
          json_object_size(samples), json_array_size(step));
    const char *key;
    const json_t *list;
    json_object_foreach((json_t *)samples, key, list) {
        int n_best = 0, n_worst = 0;
        for (size_t i = 0; i < json_array_size(list); i++) {
            const json_t *s = json_array_get(list, i);
            n_best += json_object_get(s, "best") != NULL;
            n_worst += json_object_get(s, "worst") != NULL;
            const json_t *sc = json_object_get(s, "scores");
            CHECK(json_array_size(sc) == 4, "step %s: %zu verdicts on a sample", key,
                  json_array_size(sc));
            CHECK(json_is_string(json_object_get(s, "prompt")) &&
                      json_is_string(json_object_get(s, "completion")),
                  "step %s: prompt and completion", key);
            const char *which[] = {"best", "worst"}, *agg[] = {"MAX", "MIN"};
            for (int w = 0; w < 2; w++)
                if (json_integer_value(json_object_get(s, which[w])) == 1) {
                    snprintf(sql, sizeof sql,
                             "SELECT %s(reward) FROM rollouts o JOIN runs r ON r.id = o.run_id"
                             " WHERE r.name = 'tiny' AND o.step = %s",
                             agg[w], key);
                    CHECK_NEAR(jnum(json_object_get(s, "reward")), sql_num(db, sql), 1e-9,
                               which[w]);
                }
        }
        CHECK(n_best == 3 && n_worst == 3, "step %s: %d best and %d worst", key, n_best, n_worst);
    }
}

// A PNG written by the report: signature, IHDR size, and drawn (many colours, some ink).
static void check_png(const char *path) {
    size_t len = 0;
    unsigned char *data = (unsigned char *)test_read_file(path, &len);
    CHECK(data && len > 33, "%s: missing or short", path);
    if (!data || len <= 33) {
        free(data);
        return;
    }
    CHECK(memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0 && memcmp(data + 12, "IHDR", 4) == 0,
          "%s: PNG signature", path);
    uint32_t w = (uint32_t)data[16] << 24 | data[17] << 16 | data[18] << 8 | data[19];
    uint32_t h = (uint32_t)data[20] << 24 | data[21] << 16 | data[22] << 8 | data[23];
    CHECK(w == 960 && h == 540, "%s: IHDR %ux%u", path, w, h);
    free(data);
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    CHECK(cairo_surface_status(s) == CAIRO_STATUS_SUCCESS, "%s: does not decode", path);
    if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS) {
        int sw = cairo_image_surface_get_width(s), sh = cairo_image_surface_get_height(s);
        int stride = cairo_image_surface_get_stride(s);
        const unsigned char *px = cairo_image_surface_get_data(s);
        long inked = 0;
        uint32_t colours[64];
        int n_colours = 0;
        for (int y = 0; y < sh; y++)
            for (int x = 0; x < sw; x++) {
                uint32_t c;
                memcpy(&c, px + (size_t)y * stride + (size_t)x * 4, 4);
                c &= 0xffffff;
                inked += c != 0xffffff;
                int seen = 0;
                for (int i = 0; i < n_colours && !seen; i++) seen = colours[i] == c;
                if (!seen && n_colours < 64) colours[n_colours++] = c;
            }
        double share = (double)inked / ((double)sw * sh);
        CHECK(n_colours >= 16 && share > 0.005 && share < 0.6,
              "%s: %d colours, %.2f%% inked: blank or flooded", path, n_colours, 100 * share);
    }
    cairo_surface_destroy(s);
}

// ---- the tests -----------------------------------------------------------------------------------

static char RUN_A[] = "/tmp/rlpipe-test-report-a-XXXXXX";
static char RUN_B[] = "/tmp/rlpipe-test-report-b-XXXXXX";
static char OUT[] = "/tmp/rlpipe-test-report-out-XXXXXX";

// Run A: reported while running, then after it finished; all series against the log; PNGs.
static void test_real_run(void) {
    char dir[600], html_path[700], png_dir[700];
    snprintf(dir, sizeof dir, "%s/run", RUN_A);
    pid_t pid = start_train(dir, (const char *[]){"--set", "algorithm.steps=7", NULL});
    // While it runs: as soon as two RL steps are committed, a report must already work.
    int seen = -1;
    for (int i = 0; i < 3000 && (seen = logged_steps(dir, "tiny")) < 2; i++) sleep_ms(20);
    snprintf(html_path, sizeof html_path, "%s/live.html", OUT);
    rlpipe((const char *[]){"report", dir, "-o", html_path, NULL}, &R);
    CHECK(R.code == 0, "report of a running run: exit %d: %s", R.code, R.err);
    char *html = test_read_file(html_path, NULL);
    json_t *doc = html ? embedded_json(html) : NULL;
    CHECK(doc != NULL, "live report has its JSON");
    const json_t *run = doc ? run_named(doc, "tiny") : NULL;
    CHECK(run && json_array_size(json_object_get(json_object_get(run, "steps"), "step")) >= 2,
          "live report shows the committed steps (%d seen before)", seen);
    json_decref(doc);
    free(html);

    CHECK(test_wait_code(pid) == 0, "micro training run failed");
    snprintf(png_dir, sizeof png_dir, "%s/png", OUT);
    rlpipe((const char *[]){"report", dir, "--png", png_dir, NULL}, &R);
    CHECK(R.code == 0, "report: exit %d: %s", R.code, R.err);
    CHECK(strstr(R.out, "report.html") && strstr(R.out, "PNG"), "report stdout: %s", R.out);
    snprintf(html_path, sizeof html_path, "%s/report.html", dir); // the default output
    html = test_read_file(html_path, NULL);
    CHECK(html != NULL, "no default output %s", html_path);
    if (!html) return;
    check_self_contained(html, "real run");
    CHECK(strstr(html, "before RL") && strstr(html, "after RL"), "eval table rows");
    CHECK(strstr(html, "<title>rlpipe report: tiny</title>"), "title names the run");
    doc = embedded_json(html);
    sqlite3 *db = open_db(dir);
    run = doc ? run_named(doc, "tiny") : NULL;
    CHECK(run && db, "report names run 'tiny'");
    CHECK(doc && !run_named(doc, "tiny-sft"), "the SFT run is attached, not listed on its own");
    if (run && db) {
        int n_series = 0;
        check_steps_against_sql(db, run, "tiny", &n_series);
        CHECK(n_series >= 14, "only %d step series", n_series);
        const char *must[] = {"reward_mean", "reward_std",     "accuracy",  "entropy",
                              "clip_frac",   "grad_norm",      "lr",        "len_mean",
                              "len_max",     "truncated_frac", "t_rollout", "t_verify",
                              "t_update",    "tokens_per_s"};
        for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
            CHECK(json_object_get(json_object_get(run, "steps"), must[i]), "series %s", must[i]);
        check_rl_run(db, run);
        const json_t *sft = json_object_get(run, "sft");
        CHECK(sft && strcmp(json_string_value(json_object_get(sft, "name")), "tiny-sft") == 0,
              "SFT run attached");
        if (sft) {
            check_steps_against_sql(db, sft, "tiny-sft", &n_series);
            CHECK(json_array_size(json_object_get(json_object_get(sft, "steps"), "loss")) == 30,
                  "SFT loss curve");
        }
    }
    const char *pngs[] = {"reward",
                          "accuracy",
                          "pass_at_k",
                          "entropy",
                          "clip_frac",
                          "grad_norm",
                          "lr",
                          "length",
                          "truncated",
                          "time",
                          "throughput",
                          "sft_loss",
                          "verifier_accuracy",
                          "verifier_format"};
    for (size_t i = 0; i < sizeof pngs / sizeof pngs[0]; i++) {
        char p[800];
        snprintf(p, sizeof p, "%s/%s.png", png_dir, pngs[i]);
        check_png(p);
    }
    if (db) sqlite3_close(db);
    json_decref(doc);
    free(html);
}

// Run B is killed with SIGKILL mid-run; its report works, and both runs overlay.
static void test_killed_and_overlay(void) {
    char dir_b[600], dir_a[600], out[700];
    snprintf(dir_a, sizeof dir_a, "%s/run", RUN_A);
    snprintf(dir_b, sizeof dir_b, "%s/run", RUN_B);
    pid_t pid = start_train(dir_b, (const char *[]){"--set", "sft.enabled=false", "--set",
                                                    "algorithm.steps=500", "--set", "run.seed=77",
                                                    "--set", "eval.every=0", NULL});
    for (int i = 0; i < 3000 && logged_steps(dir_b, "tiny") < 2; i++) sleep_ms(20);
    kill(pid, SIGKILL);
    CHECK(test_wait_code(pid) == 128 + SIGKILL, "run B was killed");
    snprintf(out, sizeof out, "%s/killed.html", OUT);
    rlpipe((const char *[]){"report", dir_b, "-o", out, NULL}, &R);
    CHECK(R.code == 0, "report of a killed run: exit %d: %s", R.code, R.err);
    char *html = test_read_file(out, NULL);
    json_t *doc = html ? embedded_json(html) : NULL;
    const json_t *run = doc ? run_named(doc, "tiny") : NULL;
    int n_logged = logged_steps(dir_b, "tiny");
    CHECK(run &&
              (int)json_array_size(json_object_get(json_object_get(run, "steps"), "step")) ==
                  n_logged &&
              n_logged >= 2,
          "killed run: every committed step (%d)", n_logged);
    CHECK(run && strcmp(json_string_value(json_object_get(run, "status")), "running") == 0,
          "a killed run reads as still 'running' (nothing marked it otherwise)");
    CHECK(html && strstr(html, "status-running"), "status shown");
    json_decref(doc);
    free(html);

    snprintf(out, sizeof out, "%s/both.html", OUT);
    char png_dir[700];
    snprintf(png_dir, sizeof png_dir, "%s/png-both", OUT);
    rlpipe((const char *[]){"report", dir_a, dir_b, "-o", out, "--png", png_dir, NULL}, &R);
    CHECK(R.code == 0, "overlay: exit %d: %s", R.code, R.err);
    html = test_read_file(out, NULL);
    doc = html ? embedded_json(html) : NULL;
    const json_t *runs = doc ? json_object_get(doc, "runs") : NULL;
    CHECK(json_array_size(runs) == 2, "overlay: %zu runs", json_array_size(runs));
    if (json_array_size(runs) == 2) {
        char want_a[700], want_b[700];
        snprintf(want_a, sizeof want_a, "%s/tiny", dir_a);
        snprintf(want_b, sizeof want_b, "%s/tiny", dir_b);
        const char *la = json_string_value(json_object_get(json_array_get(runs, 0), "label"));
        const char *lb = json_string_value(json_object_get(json_array_get(runs, 1), "label"));
        CHECK(la && lb && strcmp(la, want_a) == 0 && strcmp(lb, want_b) == 0,
              "overlay labels name the run directories: %s, %s", la, lb);
    }
    if (html) check_self_contained(html, "overlay");
    char p[800];
    snprintf(p, sizeof p, "%s/reward.png", png_dir);
    check_png(p);
    json_decref(doc);
    free(html);
}

// An empty log (schema only), a foreign file, missing paths, bad options.
static void test_empty_and_errors(void) {
    char db_path[700], out[700];
    snprintf(db_path, sizeof db_path, "%s/empty.db", OUT);
    rl_log *log;
    rl_err err = {0};
    CHECK(rl_log_open(&log, db_path, 1, &err) == 0, "create empty log: %s", err.msg);
    rl_log_close(log);
    snprintf(out, sizeof out, "%s/empty.html", OUT);
    rlpipe((const char *[]){"report", db_path, "-o", out, NULL}, &R);
    CHECK(R.code == 0 && strstr(R.err, "no runs"), "empty log: exit %d, stderr %s", R.code, R.err);
    char *html = test_read_file(out, NULL);
    CHECK(html && strstr(html, "no runs"), "empty report says so");
    json_t *doc = html ? embedded_json(html) : NULL;
    CHECK(doc && json_array_size(json_object_get(doc, "runs")) == 0, "empty: no runs in JSON");
    if (html) check_self_contained(html, "empty");
    json_decref(doc);
    free(html);

    char foreign[700];
    snprintf(foreign, sizeof foreign, "%s/not-a-log.db", OUT);
    FILE *f = fopen(foreign, "w");
    fputs("this is not a database\n", f);
    fclose(f);
    struct {
        const char *args[8];
        const char *in_err;
    } cases[] = {
        {{"report", NULL}, "RUN_DIR"},
        {{"report", foreign, NULL}, "not-a-log.db"},
        {{"report", "/nonexistent/run", NULL}, "/nonexistent/run"},
        {{"report", OUT, NULL}, "no rollouts.db"},
        {{"report", db_path, "--bogus", NULL}, "--bogus"},
        {{"report", db_path, "-o", NULL}, "-o"},
        {{"report", db_path, "--samples", "x", NULL}, "--samples"},
        {{"report", db_path, "-o", "/nonexistent/dir/r.html", NULL}, "/nonexistent/dir/r.html"},
        {{"report", db_path, "-o", db_path, NULL}, "is the rollout log itself"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rlpipe(cases[i].args, &R);
        CHECK(R.code == 2, "case %zu: exit %d (%s)", i, R.code, R.err);
        CHECK(strstr(R.err, cases[i].in_err) && count_of(R.err, "\n") == 1,
              "case %zu: one-line error naming '%s': %s", i, cases[i].in_err, R.err);
    }
    CHECK(rl_log_open(&log, db_path, 0, &err) == 0, "the log survived -o LOG: %s", err.msg);
    rl_log_close(log);
    rlpipe((const char *[]){"report", "--help", NULL}, &R);
    CHECK(R.code == 0 && strstr(R.out, "usage: rlpipe report"), "--help");
}

// A log missing a table and some columns (an older or hand-edited file) is reported as far as
// it goes, with notes.
static void test_missing_columns(void) {
    char dir[600], copy[700], out[700];
    snprintf(dir, sizeof dir, "%s/run", RUN_A);
    snprintf(copy, sizeof copy, "%s/stripped.db", OUT);
    sqlite3 *db = open_db(dir);
    char sql[900];
    snprintf(sql, sizeof sql, "VACUUM INTO '%s'", copy);
    CHECK(db && sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK, "copy the log");
    sqlite3_close(db);
    sqlite3_open(copy, &db);
    char *msg = NULL;
    int rc =
        sqlite3_exec(db,
                     "DROP VIEW step_verifier_means; DROP VIEW step_summary;"
                     " DROP VIEW rollout_summary; DROP VIEW run_summary; DROP TABLE evals;"
                     " ALTER TABLE steps DROP COLUMN kl; ALTER TABLE steps DROP COLUMN entropy;"
                     " ALTER TABLE scores DROP COLUMN detail;"
                     " ALTER TABLE rollouts DROP COLUMN answer;",
                     NULL, NULL, &msg);
    CHECK(rc == SQLITE_OK, "strip the copy: %s", msg ? msg : "");
    sqlite3_free(msg);
    sqlite3_close(db);
    snprintf(out, sizeof out, "%s/stripped.html", OUT);
    rlpipe((const char *[]){"report", copy, "-o", out, NULL}, &R);
    CHECK(R.code == 0, "stripped log: exit %d: %s", R.code, R.err);
    CHECK(strstr(R.err, "evals") && strstr(R.err, "kl") && strstr(R.err, "entropy"),
          "notes name what is missing: %s", R.err);
    char *html = test_read_file(out, NULL);
    json_t *doc = html ? embedded_json(html) : NULL;
    const json_t *run = doc ? run_named(doc, "tiny") : NULL;
    const json_t *steps = json_object_get(run, "steps");
    CHECK(run && !json_object_get(steps, "kl") && !json_object_get(steps, "entropy") &&
              json_object_get(steps, "reward_mean") &&
              json_array_size(json_object_get(run, "evals")) == 0,
          "stripped: what is left is reported");
    CHECK(html && strstr(html, "no table &#39;evals&#39;"), "the page shows the notes");
    const json_t *samples = json_object_get(run, "samples");
    CHECK(json_object_size(samples) > 0, "stripped: samples still shown");
    json_decref(doc);
    free(html);
}

// Hostile text in every field that reaches the page is escaped, and reads back exactly.
static void test_hostile_text(void) {
    static const char COMPLETION[] =
        "<think>2+2</think></script><script>alert(1)</script><img src=x onerror=alert(2)>"
        "<!-- </SCRIPT > \xe2\x80\xa8 & &amp; \"q\" 'a' \xff tail";
    static const char COMPLETION_READ[] = // invalid UTF-8 (\xff) reads back as U+FFFD
        "<think>2+2</think></script><script>alert(1)</script><img src=x onerror=alert(2)>"
        "<!-- </SCRIPT > \xe2\x80\xa8 & &amp; \"q\" 'a' \xef\xbf\xbd tail";
    char db_path[700], out[700];
    snprintf(db_path, sizeof db_path, "%s/hostile.db", OUT);
    rl_log *log;
    rl_err err = {0};
    int64_t run_id, rid;
    int ok = rl_log_open(&log, db_path, 1, &err) == 0 &&
             rl_log_begin_run(log, "<b>run</b></title><script>x()</script>", "a: 1", 1, &run_id,
                              &err) == 0;
    for (int step = 1; ok && step <= 2; step++) {
        ok = rl_log_begin_step(log, run_id, step, &err) == 0;
        rl_step_stats s;
        rl_step_stats_init(&s);
        s.phase = "rl";
        s.reward_mean = 0.25 * step;
        s.loss = step == 2 ? INFINITY : 0.5;
        ok = ok && rl_log_step_stats(log, &s, &err) == 0;
        for (int i = 0; ok && i < 2; i++) {
            rl_rollout_row r;
            rl_rollout_row_init(&r);
            r.prompt_idx = i;
            r.group_id = 0;
            r.sample_idx = i;
            r.task = "\"><svg onload=alert(3)>";
            r.prompt = "What is <b>2+2</b>? </script>";
            r.completion = i == 0 ? COMPLETION : "plain";
            r.answer = "<i>4</i>";
            r.n_tokens = 12;
            r.finish_reason = "stop";
            r.reward = i == 0 ? 1.0 : 0.0;
            ok = ok && rl_log_rollout(log, &r, &rid, &err) == 0 &&
                 rl_log_score(log, rid, "<u>verifier</u>", 0.4, 1.0, "ok",
                              "</script><img src=y onerror=alert(4)>", &err) == 0;
        }
        ok = ok && rl_log_commit_step(log, &err) == 0;
    }
    const char *vn[] = {"<i>v</i>"};
    double vmean[] = {0.5};
    rl_eval_row e;
    rl_eval_row_init(&e);
    e.run_id = run_id;
    e.step = 0;
    e.split = "<s>heldout</s>";
    e.n = 4;
    e.pass_at_1 = 0.5;
    e.verifier_names = vn;
    e.verifier_means = vmean;
    e.n_verifiers = 1;
    ok = ok && rl_log_eval(log, &e, &err) == 0;
    CHECK(ok, "write the hostile log: %s", err.msg);
    rl_log_close(log);

    snprintf(out, sizeof out, "%s/hostile.html", OUT);
    char png_dir[700];
    snprintf(png_dir, sizeof png_dir, "%s/png-hostile", OUT);
    rlpipe((const char *[]){"report", db_path, "-o", out, "--png", png_dir, NULL}, &R);
    CHECK(R.code == 0, "hostile: exit %d: %s", R.code, R.err);
    char *html = test_read_file(out, NULL);
    if (!html) return;
    check_self_contained(html, "hostile");
    CHECK(!strstr(html, "<i>") && !strstr(html, "<s>") && !strstr(html, "<u>"),
          "raw hostile tags in the page");
    CHECK(!strstr(html, "<b>") && !strstr(html, "<svg") && !strstr(html, "<script>alert") &&
              !strstr(html, "<img") && !strstr(html, "\xe2\x80\xa8") && !strstr(html, "\xff"),
          "a hostile string reached the page unescaped");
    CHECK(strstr(html, "&lt;b&gt;run&lt;/b&gt;&lt;/title&gt;"), "run name escaped in the HTML");
    CHECK(strstr(html, "&lt;s&gt;heldout&lt;/s&gt;") && strstr(html, "&lt;i&gt;v&lt;/i&gt;"),
          "eval split and verifier escaped in the table");
    json_t *doc = embedded_json(html);
    const json_t *run = doc ? json_array_get(json_object_get(doc, "runs"), 0) : NULL;
    CHECK(run && strcmp(json_string_value(json_object_get(run, "name")),
                        "<b>run</b></title><script>x()</script>") == 0,
          "run name reads back");
    const json_t *list = json_object_get(json_object_get(run, "samples"), "2");
    const json_t *best = NULL;
    for (size_t i = 0; i < json_array_size(list); i++)
        if (json_integer_value(json_object_get(json_array_get(list, i), "best")) == 1)
            best = json_array_get(list, i);
    CHECK(best &&
              strcmp(json_string_value(json_object_get(best, "completion")), COMPLETION_READ) == 0,
          "the completion reads back exactly (invalid byte as U+FFFD)");
    const json_t *sc = json_array_get(json_object_get(best, "scores"), 0);
    CHECK(sc && strcmp(json_string_value(json_object_get(sc, "detail")),
                       "</script><img src=y onerror=alert(4)>") == 0,
          "the verifier detail reads back");
    const json_t *loss = json_object_get(json_object_get(run, "steps"), "loss");
    CHECK(json_is_string(json_array_get(loss, 1)) &&
              strcmp(json_string_value(json_array_get(loss, 1)), "Infinity") == 0,
          "an infinite loss is kept as \"Infinity\"");
    char p[800];
    snprintf(p, sizeof p, "%s/verifier__u_verifier__u_.png", png_dir);
    CHECK(access(p, F_OK) == 0, "a hostile verifier name makes a safe file name (%s)", p);
    json_decref(doc);
    free(html);
}

// A long run (600 steps) with values far beyond their resolution: the samples are thinned to at
// most RL_REPORT_MAX_SAMPLE_STEPS steps (the last kept) and the charts' ticks terminate.
static void test_long_run(void) {
    char db_path[700], out[700], png_dir[700];
    snprintf(db_path, sizeof db_path, "%s/long.db", OUT);
    rl_log *log;
    rl_err err = {0};
    int64_t run_id, rid;
    int ok = rl_log_open(&log, db_path, 1, &err) == 0 &&
             rl_log_begin_run(log, "long", NULL, 1, &run_id, &err) == 0;
    for (int step = 1; ok && step <= 600; step++) {
        rl_step_stats s;
        rl_step_stats_init(&s);
        s.reward_mean = 1e17 + 16.0 * (step / 100 % 2); // one ulp apart: ticks finer than a double
        s.kl = 1e-300 * step;
        rl_rollout_row r;
        rl_rollout_row_init(&r);
        r.prompt = "p";
        r.completion = "c";
        r.finish_reason = "stop";
        r.reward = step;
        ok = rl_log_begin_step(log, run_id, step, &err) == 0 &&
             rl_log_step_stats(log, &s, &err) == 0 && rl_log_rollout(log, &r, &rid, &err) == 0 &&
             rl_log_commit_step(log, &err) == 0;
    }
    CHECK(ok, "write the long log: %s", err.msg);
    rl_log_close(log);
    snprintf(out, sizeof out, "%s/long.html", OUT);
    snprintf(png_dir, sizeof png_dir, "%s/png-long", OUT);
    rlpipe((const char *[]){"report", db_path, "-o", out, "--png", png_dir, NULL}, &R);
    CHECK(R.code == 0, "long run: exit %d: %s", R.code, R.err);
    char *html = test_read_file(out, NULL);
    json_t *doc = html ? embedded_json(html) : NULL;
    const json_t *run = doc ? run_named(doc, "long") : NULL;
    const json_t *samples = json_object_get(run, "samples");
    CHECK(json_object_size(samples) >= 200 &&
              json_object_size(samples) <= RL_REPORT_MAX_SAMPLE_STEPS + 1 &&
              json_object_get(samples, "600") && json_object_get(samples, "1"),
          "long run: samples of %zu steps, first and last kept", json_object_size(samples));
    CHECK(json_array_size(json_object_get(json_object_get(run, "steps"), "step")) == 600,
          "long run: every step in the curves");
    CHECK(strstr(R.err, "every"), "long run: the thinning is noted: %s", R.err);
    char p[800];
    snprintf(p, sizeof p, "%s/kl.png", png_dir);
    check_png(p);
    snprintf(p, sizeof p, "%s/reward.png", png_dir);
    check_png(p);
    json_decref(doc);
    free(html);
}

int main(void) {
    if (!mkdtemp(RUN_A) || !mkdtemp(RUN_B) || !mkdtemp(OUT)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_real_run);
    RUN(test_killed_and_overlay);
    RUN(test_empty_and_errors);
    RUN(test_missing_columns);
    RUN(test_hostile_text);
    RUN(test_long_run);
    int rc = test_summary();
    if (rc == 0) { // keep the files of a failing run for a look
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", RUN_A, RUN_B, OUT);
        if (system(cmd) != 0) fprintf(stderr, "could not remove the temporary directories\n");
    }
    return rc;
}
