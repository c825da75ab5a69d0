// rlpipe logs: read a rollout log (runs, steps, rollouts, one rollout in full, or any read-only
// SQL) and print aligned tables, CSV or JSON. The file is always opened read-only.
#define _POSIX_C_SOURCE 200809L
#include "cli/cli.h"
#include "rollout/log.h"
#include "rollout/log_doc.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: rlpipe logs DB runs\n"
    "       rlpipe logs DB steps    [--run ID|NAME] [--step N] [--limit K]\n"
    "       rlpipe logs DB rollouts [--run ID|NAME] [--step N] [--limit K] [--sort id|best|worst]\n"
    "       rlpipe logs DB show ROLLOUT_ID\n"
    "       rlpipe logs DB sql \"SELECT ...\"\n"
    "       rlpipe logs --schema-doc\n"
    "\n"
    "Reads the SQLite rollout log DB (e.g. runs/tiny/rollouts.db) read-only, also while a run\n"
    "writes it and on a read-only file system; it leaves no -wal/-shm files behind.\n"
    "\n"
    "  runs        every run in the file: status, steps, rollouts, evals\n"
    "  steps       per-step reward, mean score of each built-in verifier, length, loss, KL\n"
    "              (all runs unless --run; --limit K keeps the latest K steps)\n"
    "  rollouts    the rollouts of one step (default: the latest run's last step), with their\n"
    "              scores; --sort best|worst orders by reward; default --limit 50\n"
    "  show        one rollout in full: prompt, completion, reward, advantage, every verdict\n"
    "  sql         any read-only SQL (tables runs, steps, rollouts, scores, evals,\n"
    "              distill_steps; views step_summary, step_verifier_means, rollout_summary,\n"
    "              run_summary). Anything\n"
    "              else is refused before it runs: writes, schema changes, transactions,\n"
    "              SAVEPOINT, ATTACH, pragmas that set something, functions outside the\n"
    "              built-in read set (load_extension, fts3_tokenizer, readfile, ...)\n"
    "  --schema-doc  print the Markdown reference of every table, view and column\n"
    "              (rollout/SCHEMA.md), generated from the schema; needs no DB\n"
    "\n"
    "options:\n"
    "  --run ID|NAME         a run by name or id\n"
    "  --step N              one step\n"
    "  --limit K             at most K rows\n"
    "  --sort id|best|worst  order of `rollouts`\n"
    "  --format table|csv|json   output format (default table)\n"
    "  --width W             table cells longer than W characters are cut with an ellipsis\n"
    "                        (default 48; 0 = no limit). Newlines show as \xe2\x8f\x8e.\n"
    "  -h, --help            this help\n"
    "\n"
    "Exit codes: 0 ok; 2 missing file, not a rollout log, bad SQL, a write statement, unknown\n"
    "run or rollout; 1 internal failure.\n";

enum { FMT_TABLE, FMT_CSV, FMT_JSON };

typedef struct logs_opts {
    const char *db;
    const char *sub;
    const char *arg; // the rollout id of show, the SQL of sql
    const char *run; // --run
    int64_t step;    // --step, -1 = not given
    int64_t limit;   // --limit, -1 = not given
    const char *sort;
    int format;
    int width;
} logs_opts;

// ---- a growable string ------------------------------------------------------------------------

typedef struct strbuf {
    char *p;
    size_t n, cap;
} strbuf;

static void sb_putn(strbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2 + 64;
        b->p = rl_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_puts(strbuf *b, const char *s) {
    sb_putn(b, s, strlen(s));
}

// ---- UTF-8 and cell text ----------------------------------------------------------------------

// One table cell: newlines as a visible mark, tabs as a space, other control bytes and invalid
// UTF-8 as U+FFFD, cut to `width` characters with an ellipsis (width 0: no cut).
static char *table_text(const unsigned char *s, size_t n, int width) {
    strbuf b = {0};
    int chars = 0;
    for (size_t i = 0; i < n;) {
        if (width > 0 && chars == width - 1 && i < n) {
            // One character left: it is the last one only if this is the final character.
            size_t len = rl_log_utf8_len(s + i, n - i);
            if (i + (len ? len : 1) < n) {
                sb_puts(&b, "\xe2\x80\xa6"); // …
                break;
            }
        }
        size_t len = rl_log_utf8_len(s + i, n - i);
        if (len == 0) {
            sb_puts(&b, "\xef\xbf\xbd");
            i++;
        } else if (s[i] == '\n') {
            sb_puts(&b, "\xe2\x8f\x8e"); // ⏎
            i++;
        } else if (s[i] == '\t') {
            sb_puts(&b, " ");
            i++;
        } else if (s[i] < 0x20 || s[i] == 0x7f) {
            sb_puts(&b, "\xef\xbf\xbd");
            i++;
        } else {
            sb_putn(&b, (const char *)s + i, len);
            i += len;
        }
        chars++;
    }
    if (!b.p) sb_puts(&b, "");
    return b.p;
}

// Display width of valid UTF-8 text: one column per code point.
static int text_width(const char *s) {
    int w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80) w++;
    return w;
}

// The shortest %g that reads back as the same double (CSV and JSON keep full precision).
static void fmt_real_exact(double x, char *buf, size_t size) {
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

static void json_string(strbuf *b, const unsigned char *s, size_t n) {
    sb_puts(b, "\"");
    for (size_t i = 0; i < n;) {
        size_t len = rl_log_utf8_len(s + i, n - i);
        char esc[8];
        if (len == 0) {
            sb_puts(b, "\\ufffd");
            i++;
            continue;
        }
        if (s[i] == '"' || s[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char)s[i];
            sb_putn(b, esc, 2);
        } else if (s[i] == '\n') {
            sb_puts(b, "\\n");
        } else if (s[i] == '\t') {
            sb_puts(b, "\\t");
        } else if (s[i] < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", s[i]);
            sb_puts(b, esc);
        } else {
            sb_putn(b, (const char *)s + i, len);
        }
        i += len;
    }
    sb_puts(b, "\"");
}

static void csv_field(strbuf *b, const char *s, size_t n) {
    int quote = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r') quote = 1;
    if (!quote) {
        sb_putn(b, s, n);
        return;
    }
    sb_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') sb_puts(b, "\"");
        sb_putn(b, s + i, 1);
    }
    sb_puts(b, "\"");
}

// ---- printing one statement's result ------------------------------------------------------------

typedef struct table {
    int ncols;
    char **cells; // [nrows+1, ncols] header row first, display text
    int *numeric; // [ncols] 1: every non-NULL value is a number (right-aligned)
    size_t nrows; // data rows
    size_t cap;
} table;

static void table_add_row(table *t, char **row) {
    if ((t->nrows + 2) * (size_t)t->ncols > t->cap) {
        t->cap = (t->nrows + 2) * (size_t)t->ncols * 2;
        t->cells = rl_realloc(t->cells, t->cap * sizeof *t->cells);
    }
    memcpy(t->cells + (t->nrows + 1) * (size_t)t->ncols, row, (size_t)t->ncols * sizeof *row);
    t->nrows++;
}

static void table_print(const table *t, FILE *out) {
    int *w = rl_calloc((size_t)t->ncols, sizeof *w);
    for (size_t r = 0; r <= t->nrows; r++)
        for (int c = 0; c < t->ncols; c++) {
            int cw = text_width(t->cells[r * (size_t)t->ncols + c]);
            if (cw > w[c]) w[c] = cw;
        }
    strbuf line = {0};
    char pad[2] = " ";
    // Row 0 is the header; a rule of dashes follows it.
    for (size_t r = 0; r <= t->nrows; r++) {
        for (int pass = 0; pass < (r == 0 ? 2 : 1); pass++) {
            line.n = 0;
            sb_puts(&line, "");
            for (int c = 0; c < t->ncols; c++) {
                const char *s = t->cells[r * (size_t)t->ncols + c];
                int fill = w[c] - text_width(s);
                if (c) sb_puts(&line, "  ");
                if (pass == 1) {
                    for (int i = 0; i < w[c]; i++) sb_puts(&line, "-");
                } else if (t->numeric[c] && r > 0) {
                    for (int i = 0; i < fill; i++) sb_putn(&line, pad, 1);
                    sb_puts(&line, s);
                } else {
                    sb_puts(&line, s);
                    for (int i = 0; i < fill; i++) sb_putn(&line, pad, 1);
                }
            }
            while (line.n > 0 && line.p[line.n - 1] == ' ') line.n--;
            fwrite(line.p, 1, line.n, out);
            fputc('\n', out);
        }
    }
    free(line.p);
    free(w);
}

static void table_free(table *t) {
    for (size_t i = 0; i < (t->nrows + 1) * (size_t)t->ncols; i++) free(t->cells[i]);
    free(t->cells);
    free(t->numeric);
}

// Text of one value for the table view.
static char *table_cell(sqlite3_stmt *st, int c, int width) {
    char buf[64];
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_NULL:
        return rl_strdup("");
    case SQLITE_INTEGER:
        snprintf(buf, sizeof buf, "%lld", (long long)sqlite3_column_int64(st, c));
        return rl_strdup(buf);
    case SQLITE_FLOAT:
        snprintf(buf, sizeof buf, "%.6g", sqlite3_column_double(st, c));
        return rl_strdup(buf);
    case SQLITE_BLOB:
        snprintf(buf, sizeof buf, "<blob %d bytes>", sqlite3_column_bytes(st, c));
        return rl_strdup(buf);
    default: {
        const unsigned char *s = sqlite3_column_text(st, c);
        return table_text(s ? s : (const unsigned char *)"", (size_t)sqlite3_column_bytes(st, c),
                          width);
    }
    }
}

// CSV / JSON text of one value appended to b.
static void exact_cell(strbuf *b, sqlite3_stmt *st, int c, int format) {
    char buf[64];
    int type = sqlite3_column_type(st, c);
    if (type == SQLITE_NULL) {
        if (format == FMT_JSON) sb_puts(b, "null");
    } else if (type == SQLITE_INTEGER) {
        snprintf(buf, sizeof buf, "%lld", (long long)sqlite3_column_int64(st, c));
        sb_puts(b, buf);
    } else if (type == SQLITE_FLOAT) {
        double x = sqlite3_column_double(st, c);
        if (!isfinite(x) && format == FMT_JSON)
            sb_puts(b, "null");
        else {
            fmt_real_exact(x, buf, sizeof buf);
            sb_puts(b, buf);
        }
    } else if (type == SQLITE_BLOB) {
        // Blobs as lowercase hex (rlpipe writes none; a user's query might make one).
        const unsigned char *p = sqlite3_column_blob(st, c);
        int n = sqlite3_column_bytes(st, c);
        strbuf hex = {0};
        sb_puts(&hex, "");
        for (int i = 0; i < n; i++) {
            snprintf(buf, sizeof buf, "%02x", p[i]);
            sb_puts(&hex, buf);
        }
        if (format == FMT_JSON)
            json_string(b, (const unsigned char *)hex.p, hex.n);
        else
            sb_puts(b, hex.p);
        free(hex.p);
    } else {
        const unsigned char *s = sqlite3_column_text(st, c);
        size_t n = (size_t)sqlite3_column_bytes(st, c);
        if (!s) s = (const unsigned char *)"";
        if (format == FMT_JSON)
            json_string(b, s, n);
        else
            csv_field(b, (const char *)s, n);
    }
}

// Steps st to the end and prints its rows. The query's errors (a bad function argument, ...)
// are the user's input: RL_EINPUT.
static int print_result(sqlite3_stmt *st, const logs_opts *o, size_t *nrows, rl_err *err) {
    int ncols = sqlite3_column_count(st);
    table t = {.ncols = ncols};
    strbuf line = {0};
    if (o->format == FMT_TABLE) {
        t.numeric = rl_calloc((size_t)ncols, sizeof *t.numeric);
        t.cap = (size_t)ncols * 16;
        t.cells = rl_malloc(t.cap * sizeof *t.cells);
        for (int c = 0; c < ncols; c++) {
            t.cells[c] = rl_strdup(sqlite3_column_name(st, c));
            t.numeric[c] = 1;
        }
    } else if (o->format == FMT_CSV) {
        for (int c = 0; c < ncols; c++) {
            if (c) sb_puts(&line, ",");
            const char *name = sqlite3_column_name(st, c);
            csv_field(&line, name, strlen(name));
        }
        if (ncols) printf("%s\n", line.p);
    } else {
        printf("[");
    }

    size_t n = 0;
    int rc;
    char **row = rl_calloc((size_t)ncols + 1, sizeof *row);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (o->format == FMT_TABLE) {
            for (int c = 0; c < ncols; c++) {
                int type = sqlite3_column_type(st, c);
                if (type != SQLITE_NULL && type != SQLITE_INTEGER && type != SQLITE_FLOAT)
                    t.numeric[c] = 0;
                row[c] = table_cell(st, c, o->width);
            }
            table_add_row(&t, row);
        } else {
            line.n = 0;
            sb_puts(&line, "");
            if (o->format == FMT_JSON) sb_puts(&line, n ? ",\n{" : "\n{");
            for (int c = 0; c < ncols; c++) {
                if (c) sb_puts(&line, ",");
                if (o->format == FMT_JSON) {
                    const char *name = sqlite3_column_name(st, c);
                    json_string(&line, (const unsigned char *)name, strlen(name));
                    sb_puts(&line, ":");
                }
                exact_cell(&line, st, c, o->format);
            }
            if (o->format == FMT_JSON) sb_puts(&line, "}");
            fputs(line.p, stdout);
            if (o->format == FMT_CSV) fputc('\n', stdout);
        }
        n++;
    }
    free(row);
    int ok = rc == SQLITE_DONE;
    if (!ok) rl_fail(err, RL_EINPUT, "%s: %s", o->db, sqlite3_errmsg(sqlite3_db_handle(st)));
    if (o->format == FMT_TABLE) {
        if (ok && ncols > 0) table_print(&t, stdout);
        table_free(&t);
    } else if (o->format == FMT_JSON) {
        printf(n ? "\n]\n" : "]\n");
    }
    free(line.p);
    if (nrows) *nrows = n;
    return ok ? 0 : -1;
}

static int prepare_query(sqlite3 *db, const logs_opts *o, const char *sql, sqlite3_stmt **st,
                         rl_err *err) {
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
        return rl_fail(err, RL_EINTERNAL, "%s: %s", o->db, sqlite3_errmsg(db));
    return 0;
}

// ---- the subcommands ----------------------------------------------------------------------------

static int logs_runs(rl_log *log, const logs_opts *o, rl_err *err) {
    sqlite3_stmt *st = NULL;
    RL_TRY(prepare_query(rl_log_sqlite(log), o,
                         "SELECT id, name, status, seed, n_steps AS steps, last_step,"
                         " n_rollouts AS rollouts, n_evals AS evals, started_at, finished_at"
                         " FROM run_summary ORDER BY id",
                         &st, err));
    int rc = print_result(st, o, NULL, err);
    sqlite3_finalize(st);
    return rc;
}

static int logs_steps(rl_log *log, const logs_opts *o, rl_err *err) {
    int64_t run_id = -1;
    if (o->run) RL_TRY(rl_log_find_run(log, o->run, &run_id, err));
    // The latest --limit steps, shown in step order.
    sqlite3_stmt *st = NULL;
    RL_TRY(prepare_query(rl_log_sqlite(log), o,
                         "SELECT * FROM (SELECT run_id AS run, step, phase, n_rollouts AS n,"
                         " reward_mean AS reward, accuracy, path_quality, format, efficiency,"
                         " len_mean, truncated_frac AS truncated, loss, kl, t_total"
                         " FROM step_summary WHERE (?1 < 0 OR run_id = ?1)"
                         " AND (?2 < 0 OR step = ?2) ORDER BY run_id DESC, step DESC LIMIT ?3)"
                         " ORDER BY run, step",
                         &st, err));
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, o->step);
    sqlite3_bind_int64(st, 3, o->limit);
    int rc = print_result(st, o, NULL, err);
    sqlite3_finalize(st);
    return rc;
}

static int count_query(sqlite3 *db, const char *sql, int64_t a, int64_t b, int64_t *out) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        // Binds as many of a, b as the query has parameters.
        if (sqlite3_bind_parameter_count(st) >= 1) sqlite3_bind_int64(st, 1, a);
        if (sqlite3_bind_parameter_count(st) >= 2) sqlite3_bind_int64(st, 2, b);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *out = sqlite3_column_type(st, 0) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

static int logs_rollouts(rl_log *log, const logs_opts *o, rl_err *err) {
    sqlite3 *db = rl_log_sqlite(log);
    int64_t run_id = -1, step = o->step, total = 0;
    if (o->run)
        RL_TRY(rl_log_find_run(log, o->run, &run_id, err));
    else if (count_query(db, "SELECT MAX(id) FROM runs", 0, 0, &run_id) != 0)
        return rl_fail(err, RL_EINTERNAL, "%s: %s", o->db, sqlite3_errmsg(db));
    if (run_id < 0) return rl_fail(err, RL_EINPUT, "%s: the log has no runs", o->db);
    if (step < 0 &&
        count_query(db, "SELECT MAX(step) FROM rollouts WHERE run_id = ?1", run_id, 0, &step) != 0)
        return rl_fail(err, RL_EINTERNAL, "%s: %s", o->db, sqlite3_errmsg(db));
    if (step < 0)
        return rl_fail(err, RL_EINPUT, "%s: run %" PRId64 " has no rollouts", o->db, run_id);
    if (count_query(db, "SELECT COUNT(*) FROM rollouts WHERE run_id = ?1 AND step = ?2", run_id,
                    step, &total) != 0)
        return rl_fail(err, RL_EINTERNAL, "%s: %s", o->db, sqlite3_errmsg(db));

    const char *order = "id";
    if (o->sort && strcmp(o->sort, "best") == 0) order = "best_rank";
    if (o->sort && strcmp(o->sort, "worst") == 0) order = "worst_rank";
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT id, step, group_id AS grp, sample_idx AS smp, reward, advantage AS adv,"
             " accuracy AS acc, path_quality AS path, format AS fmt, efficiency AS eff,"
             " n_tokens AS tokens, finish_reason AS finish, completion"
             " FROM rollout_summary WHERE run_id = ?1 AND step = ?2 ORDER BY %s LIMIT ?3",
             order);
    sqlite3_stmt *st = NULL;
    RL_TRY(prepare_query(db, o, sql, &st, err));
    int64_t limit = o->limit >= 0 ? o->limit : 50;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, step);
    sqlite3_bind_int64(st, 3, limit);
    size_t shown = 0;
    int rc = print_result(st, o, &shown, err);
    sqlite3_finalize(st);
    if (rc == 0 && o->format == FMT_TABLE && (int64_t)shown < total)
        printf("(%zu of %" PRId64 " rollouts of run %" PRId64 " step %" PRId64
               "; --limit K for more)\n",
               shown, total, run_id, step);
    return rc;
}

static void print_labeled(const char *label, sqlite3_stmt *st, int c) {
    printf("%s ", label);
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_NULL:
        printf("-");
        break;
    case SQLITE_INTEGER:
        printf("%lld", (long long)sqlite3_column_int64(st, c));
        break;
    case SQLITE_FLOAT:
        printf("%.6g", sqlite3_column_double(st, c));
        break;
    default:
        printf("%s", (const char *)sqlite3_column_text(st, c));
        break;
    }
}

static int logs_show(rl_log *log, const logs_opts *o, rl_err *err) {
    char *end = NULL;
    errno = 0;
    long long id = strtoll(o->arg, &end, 10);
    if (errno || end == o->arg || *end)
        return rl_fail(err, RL_EINPUT, "logs show: '%s' is not a rollout id", o->arg);
    sqlite3 *db = rl_log_sqlite(log);
    sqlite3_stmt *st = NULL;
    RL_TRY(prepare_query(db, o,
                         "SELECT o.id, o.run_id, r.name, o.step, o.group_id, o.sample_idx,"
                         " o.prompt_idx, o.task, o.n_tokens, o.n_prompt_tokens, o.finish_reason,"
                         " o.reward, o.advantage, o.sample_logprob_sum, o.answer, o.prompt,"
                         " o.completion FROM rollouts o JOIN runs r ON r.id = o.run_id"
                         " WHERE o.id = ?1",
                         &st, err));
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE)
            rl_fail(err, RL_EINPUT, "%s: no rollout with id %lld", o->db, id);
        else
            rl_fail(err, RL_EINTERNAL, "%s: %s", o->db, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    if (o->format == FMT_JSON) {
        // The rollout row as one JSON object, its scores as an array under "scores".
        strbuf b = {0};
        sb_puts(&b, "{");
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const char *name = sqlite3_column_name(st, c);
            if (c) sb_puts(&b, ",");
            json_string(&b, (const unsigned char *)name, strlen(name));
            sb_puts(&b, ":");
            exact_cell(&b, st, c, FMT_JSON);
        }
        sb_puts(&b, ",\"scores\":");
        fputs(b.p, stdout);
        free(b.p);
    } else {
        print_labeled("rollout", st, 0);
        print_labeled("  run", st, 1);
        printf(" (%s)", (const char *)sqlite3_column_text(st, 2));
        print_labeled("  step", st, 3);
        print_labeled("  group", st, 4);
        print_labeled("  sample", st, 5);
        print_labeled("  prompt_idx", st, 6);
        print_labeled("  task", st, 7);
        printf("\n");
        print_labeled("reward", st, 11);
        print_labeled("  advantage", st, 12);
        print_labeled("  tokens", st, 8);
        print_labeled("  prompt_tokens", st, 9);
        print_labeled("  finish", st, 10);
        print_labeled("  logprob_sum", st, 13);
        printf("\n");
        print_labeled("answer:", st, 14);
        printf("\n\n--- prompt ---\n%s\n--- completion ---\n%s\n--- scores ---\n",
               (const char *)sqlite3_column_text(st, 15),
               (const char *)sqlite3_column_text(st, 16));
    }
    sqlite3_finalize(st);

    RL_TRY(prepare_query(db, o,
                         "SELECT verifier, weight, score, status, detail FROM scores"
                         " WHERE rollout_id = ?1 ORDER BY weight DESC, verifier",
                         &st, err));
    sqlite3_bind_int64(st, 1, id);
    logs_opts full = *o;
    full.width = 0; // show is the place to read details in full
    rc = print_result(st, &full, NULL, err);
    sqlite3_finalize(st);
    if (o->format == FMT_JSON) printf("}\n");
    return rc;
}

// Runs every statement of the text, after checking that none of them writes.
static int logs_sql(rl_log *log, const logs_opts *o, rl_err *err) {
    sqlite3 *db = rl_log_sqlite(log);
    sqlite3_stmt **stmts = NULL;
    int n = 0, rc = 0;
    const char *sql = o->arg;
    while (sql && *sql) {
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        rl_log_clear_refused(log);
        if (sqlite3_prepare_v2(db, sql, -1, &st, &tail) != SQLITE_OK) {
            const char *what = rl_log_refused(log);
            if (what) {
                while (*sql == ' ' || *sql == '\n' || *sql == '\t') sql++;
                int len = (int)strcspn(sql, ";");
                rc = rl_fail(err, RL_EINPUT,
                             "%s: sql: only read-only statements are allowed; refusing %s in: "
                             "%.*s",
                             o->db, what, len > 200 ? 200 : len, sql);
            } else
                rc = rl_fail(err, RL_EINPUT, "%s: sql: %s", o->db, sqlite3_errmsg(db));
            break;
        }
        if (!st) break; // only whitespace or comments left
        stmts = rl_realloc(stmts, (size_t)(n + 1) * sizeof *stmts);
        stmts[n++] = st;
        if (!sqlite3_stmt_readonly(st)) {
            const char *text = sqlite3_sql(st);
            while (*text == ' ' || *text == '\n' || *text == '\t') text++;
            rc = rl_fail(err, RL_EINPUT,
                         "%s: sql: only read-only statements are allowed; refusing: %.200s", o->db,
                         text);
            break;
        }
        sql = tail;
    }
    if (rc == 0 && n == 0) rc = rl_fail(err, RL_EINPUT, "%s: sql: no statement given", o->db);
    for (int i = 0; rc == 0 && i < n; i++) {
        if (i > 0 && o->format == FMT_TABLE && sqlite3_column_count(stmts[i]) > 0) printf("\n");
        size_t rows = 0;
        rc = print_result(stmts[i], o, &rows, err);
        if (rc == 0 && o->format == FMT_TABLE && sqlite3_column_count(stmts[i]) > 0)
            printf("(%zu row%s)\n", rows, rows == 1 ? "" : "s");
    }
    for (int i = 0; i < n; i++) sqlite3_finalize(stmts[i]);
    free(stmts);
    return rc;
}

// ---- arguments ----------------------------------------------------------------------------------

static int parse_int(const char *opt, const char *s, int64_t *out) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        return cli_usage_error("logs", "%s expects a non-negative integer, got '%s'", opt, s);
    *out = v;
    return 0;
}

// Fills o from argv. Returns 0, or the exit code of a usage error.
static int parse_args(int argc, char **argv, logs_opts *o) {
    *o = (logs_opts){.step = -1, .limit = -1, .format = FMT_TABLE, .width = 48};
    const char *pos[3] = {0};
    int npos = 0, only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (only_pos || strncmp(a, "--", 2) != 0) {
            if (npos == 3) return cli_usage_error("logs", "unexpected argument '%s'", a);
            pos[npos++] = a;
            continue;
        }
        // --name value or --name=value
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(nlen < 31 ? nlen : 31), a);
        if (!val) return cli_usage_error("logs", "%s needs a value", name);
        int64_t v = 0;
        if (strcmp(name, "--run") == 0) {
            o->run = val;
        } else if (strcmp(name, "--step") == 0) {
            if (parse_int(name, val, &o->step)) return CLI_EXIT_USAGE;
        } else if (strcmp(name, "--limit") == 0) {
            if (parse_int(name, val, &o->limit)) return CLI_EXIT_USAGE;
        } else if (strcmp(name, "--width") == 0) {
            if (parse_int(name, val, &v)) return CLI_EXIT_USAGE;
            o->width = v > 100000 ? 100000 : (int)v;
        } else if (strcmp(name, "--sort") == 0) {
            if (strcmp(val, "id") && strcmp(val, "best") && strcmp(val, "worst"))
                return cli_usage_error("logs", "--sort expects id, best or worst, got '%s'", val);
            o->sort = val;
        } else if (strcmp(name, "--format") == 0) {
            if (strcmp(val, "table") == 0)
                o->format = FMT_TABLE;
            else if (strcmp(val, "csv") == 0)
                o->format = FMT_CSV;
            else if (strcmp(val, "json") == 0)
                o->format = FMT_JSON;
            else
                return cli_usage_error("logs", "--format expects table, csv or json, got '%s'",
                                       val);
        } else {
            return cli_usage_error("logs", "unknown option '%s'", name);
        }
    }
    if (npos < 2)
        return cli_usage_error("logs", "expected DB and one of runs, steps, rollouts, show, sql");
    o->db = pos[0];
    o->sub = pos[1];
    o->arg = pos[2];
    int takes_arg = strcmp(o->sub, "show") == 0 || strcmp(o->sub, "sql") == 0;
    if (strcmp(o->sub, "runs") && strcmp(o->sub, "steps") && strcmp(o->sub, "rollouts") &&
        !takes_arg)
        return cli_usage_error("logs", "unknown subcommand '%s'", o->sub);
    if (takes_arg && !o->arg)
        return cli_usage_error("logs", "%s needs %s", o->sub,
                               strcmp(o->sub, "show") == 0 ? "a ROLLOUT_ID" : "an SQL statement");
    if (!takes_arg && o->arg) return cli_usage_error("logs", "unexpected argument '%s'", o->arg);
    int filters = strcmp(o->sub, "steps") == 0 || strcmp(o->sub, "rollouts") == 0;
    if (!filters && (o->run || o->step >= 0 || o->limit >= 0))
        return cli_usage_error("logs", "--run, --step and --limit apply to steps and rollouts");
    if (o->sort && strcmp(o->sub, "rollouts"))
        return cli_usage_error("logs", "--sort applies to rollouts");
    return 0;
}

// rlpipe logs --schema-doc: the schema reference, which rollout/SCHEMA.md is.
static int schema_doc(int argc, char **argv) {
    if (argc > 2)
        return cli_usage_error("logs", "--schema-doc takes no argument, got '%s'", argv[2]);
    rl_err err = {0};
    if (rl_log_schema_markdown(stdout, &err) != 0) return cli_report(&err);
    if (fflush(stdout) != 0) {
        rl_fail(&err, RL_EINTERNAL, "logs --schema-doc: cannot write the output");
        return cli_report(&err);
    }
    return CLI_EXIT_OK;
}

int cmd_logs(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return CLI_EXIT_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "--schema-doc") == 0) return schema_doc(argc, argv);
    logs_opts o;
    int code = parse_args(argc, argv, &o);
    if (code) return code;

    rl_err err = {0};
    rl_log *log = NULL;
    if (rl_log_open_readonly(&log, o.db, &err) != 0) return cli_report(&err);
    int rc;
    if (strcmp(o.sub, "runs") == 0)
        rc = logs_runs(log, &o, &err);
    else if (strcmp(o.sub, "steps") == 0)
        rc = logs_steps(log, &o, &err);
    else if (strcmp(o.sub, "rollouts") == 0)
        rc = logs_rollouts(log, &o, &err);
    else if (strcmp(o.sub, "show") == 0)
        rc = logs_show(log, &o, &err);
    else
        rc = logs_sql(log, &o, &err);
    rl_log_close(log);
    fflush(stdout);
    return rc == 0 ? CLI_EXIT_OK : cli_report(&err);
}
