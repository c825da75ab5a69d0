// log_doc: the rollout log's schema reference (rollout/SCHEMA.md), generated from the schema itself.
// The DDL is loaded into an in-memory database and read back with SQLite's pragmas, so the columns,
// types, keys and indexes printed are the ones a new file has; the one-line descriptions come from
// the table next to the DDL in log.c. See log_doc.h.
#define _POSIX_C_SOURCE 200809L
#include "rollout/log_doc.h"
#include "rollout/log.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sql_fail(sqlite3 *db, rl_err *err, const char *what) {
    return rl_fail(err, RL_EINTERNAL, "schema reference: %s: %s", what, sqlite3_errmsg(db));
}

// The entry describing object.column (column NULL: the object itself), or NULL.
static const rl_log_doc *find_doc(const rl_log_doc *docs, int n, const char *object,
                                  const char *column) {
    for (int i = 0; i < n; i++) {
        if (strcmp(docs[i].object, object) != 0) continue;
        if (!column && !docs[i].column) return &docs[i];
        if (column && docs[i].column && strcmp(docs[i].column, column) == 0) return &docs[i];
    }
    return NULL;
}

// Markdown table cell text: a '|' would end the cell.
static void put_cell(FILE *out, const char *s) {
    for (; *s; s++) {
        if (*s == '|') fputc('\\', out);
        fputc(*s, out);
    }
}

// Prints "- name: (a, b)" lines for each index of a table (the primary key, UNIQUE constraints and
// CREATE INDEX), in the order SQLite lists them.
static int put_indexes(FILE *out, sqlite3 *db, const char *table, rl_err *err) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT name, \"unique\", origin FROM pragma_index_list('%s')",
             table);
    sqlite3_stmt *list = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &list, NULL) != SQLITE_OK)
        return sql_fail(db, err, "index list");
    int rc;
    while ((rc = sqlite3_step(list)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(list, 0);
        const char *origin = (const char *)sqlite3_column_text(list, 2);
        const char *kind = strcmp(origin, "pk") == 0     ? "primary key"
                           : strcmp(origin, "u") == 0    ? "unique"
                           : sqlite3_column_int(list, 1) ? "unique index"
                                                         : "index";
        sqlite3_stmt *cols = NULL;
        if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_index_info(?1) ORDER BY seqno", -1,
                               &cols, NULL) != SQLITE_OK) {
            sqlite3_finalize(list);
            return sql_fail(db, err, "index columns");
        }
        sqlite3_bind_text(cols, 1, name, -1, SQLITE_TRANSIENT);
        fprintf(out, "- %s `(", kind);
        for (int k = 0; sqlite3_step(cols) == SQLITE_ROW; k++)
            fprintf(out, "%s%s", k ? ", " : "", (const char *)sqlite3_column_text(cols, 0));
        fprintf(out, ")`");
        if (strcmp(origin, "c") == 0) fprintf(out, " (`%s`)", name);
        fputc('\n', out);
        sqlite3_finalize(cols);
    }
    sqlite3_finalize(list);
    if (rc != SQLITE_DONE) return sql_fail(db, err, "index list");
    return 0;
}

// "- foreign key `(a, b)` -> `t(x, y)`" per foreign key (several columns share one id).
static int put_foreign_keys(FILE *out, sqlite3 *db, const char *table, rl_err *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1)"
                           " ORDER BY id, seq",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_fail(db, err, "foreign keys");
    sqlite3_bind_text(st, 1, table, -1, SQLITE_TRANSIENT);
    char from[256] = "", to[256] = "", target[128] = "";
    int id = -1, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int this_id = sqlite3_column_int(st, 0);
        if (this_id != id && id >= 0)
            fprintf(out, "- foreign key `(%s)` \xe2\x86\x92 `%s(%s)`\n", from, target, to);
        if (this_id != id) from[0] = to[0] = '\0';
        id = this_id;
        snprintf(target, sizeof target, "%s", (const char *)sqlite3_column_text(st, 1));
        const char *t = (const char *)sqlite3_column_text(st, 3);
        size_t lf = strlen(from), lt = strlen(to);
        snprintf(from + lf, sizeof from - lf, "%s%s", lf ? ", " : "",
                 (const char *)sqlite3_column_text(st, 2));
        snprintf(to + lt, sizeof to - lt, "%s%s", lt ? ", " : "", t ? t : "rowid");
    }
    if (id >= 0) fprintf(out, "- foreign key `(%s)` \xe2\x86\x92 `%s(%s)`\n", from, target, to);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return sql_fail(db, err, "foreign keys");
    return 0;
}

// The column table of one table or view. Fails when a column has no description.
static int put_columns(FILE *out, sqlite3 *db, const char *object, int is_view,
                       const rl_log_doc *docs, int n_docs, int *used, rl_err *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT name, type, \"notnull\", dflt_value, pk FROM "
                           "pragma_table_xinfo(?1) ORDER BY cid",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_fail(db, err, "columns");
    sqlite3_bind_text(st, 1, object, -1, SQLITE_TRANSIENT);
    fprintf(out, is_view ? "| column | type | meaning |\n|---|---|---|\n"
                         : "| column | type | constraints | meaning |\n|---|---|---|---|\n");
    int rc, fail = 0;
    while (!fail && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *type = (const char *)sqlite3_column_text(st, 1);
        const rl_log_doc *d = find_doc(docs, n_docs, object, name);
        if (!d) {
            fail = rl_fail(err, RL_EINTERNAL,
                           "rollout/log.c: LOG_DOCS has no description for %s.%s", object, name);
            break;
        }
        used[d - docs] = 1;
        if (d->type) type = d->type;
        if (!type || !*type) {
            fail =
                rl_fail(err, RL_EINTERNAL,
                        "rollout/log.c: LOG_DOCS: %s.%s is computed; give its type", object, name);
            break;
        }
        fprintf(out, "| `%s` | %s | ", name, type);
        if (!is_view) {
            const char *sep = "";
            if (sqlite3_column_int(st, 4)) {
                fputs("primary key", out);
                sep = ", ";
            }
            if (sqlite3_column_int(st, 2)) {
                fprintf(out, "%snot null", sep);
                sep = ", ";
            }
            const char *dflt = (const char *)sqlite3_column_text(st, 3);
            if (dflt) {
                fprintf(out, "%sdefault `", sep);
                put_cell(out, dflt);
                fputc('`', out);
            }
            fputs(" | ", out);
        }
        put_cell(out, d->text);
        fputs(" |\n", out);
    }
    sqlite3_finalize(st);
    if (fail) return -1;
    if (rc != SQLITE_DONE) return sql_fail(db, err, "columns");
    return 0;
}

static int put_reference(FILE *out, sqlite3 *db, const rl_log_doc *docs, int n_docs, int *used,
                         rl_err *err) {
    fprintf(out,
            "<!-- Generated by `rlpipe logs --schema-doc` from rollout/log.c; do not edit. -->\n"
            "# The rollout log: schema reference\n\n"
            "Every table, view and column of `rollouts.db`, schema version **%d** (`PRAGMA "
            "user_version`; `PRAGMA application_id` is `0x%08X`). This file is generated from "
            "the DDL and the descriptions next to it in [`log.c`](log.c) by `rlpipe logs "
            "--schema-doc`, and a test fails when it is stale. How the log is written, read and "
            "queried: [README.md](README.md#the-rollout-log).\n\n"
            "Conventions: times are UTC text `YYYY-MM-DD HH:MM:SS.SSS` (SQLite's date functions "
            "read them); `NULL` means not measured or not applicable; scores are in [0, 1]; "
            "lengths are in tokens. Columns are only ever added in a new version; existing "
            "columns keep their meaning.\n",
            RL_LOG_SCHEMA_VERSION, RL_LOG_APPLICATION_ID);

    sqlite3_stmt *objs = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view')"
                           " AND name NOT LIKE 'sqlite_%' ORDER BY type = 'view', rowid",
                           -1, &objs, NULL) != SQLITE_OK)
        return sql_fail(db, err, "schema");
    int rc, fail = 0, views_started = 0;
    fputs("\n## Tables\n", out);
    while (!fail && (rc = sqlite3_step(objs)) == SQLITE_ROW) {
        int is_view = strcmp((const char *)sqlite3_column_text(objs, 0), "view") == 0;
        char name[128];
        snprintf(name, sizeof name, "%s", (const char *)sqlite3_column_text(objs, 1));
        if (is_view && !views_started) {
            fputs("\n## Views\n\nComputed from the tables on every query; they cost nothing to "
                  "keep and always agree with the rows.\n",
                  out);
            views_started = 1;
        }
        const rl_log_doc *d = find_doc(docs, n_docs, name, NULL);
        if (!d) {
            fail = rl_fail(err, RL_EINTERNAL, "rollout/log.c: LOG_DOCS has no description for %s",
                           name);
            break;
        }
        used[d - docs] = 1;
        fprintf(out, "\n### `%s`\n\n%s.\n\n", name, d->text);
        if (!is_view) {
            fail = put_indexes(out, db, name, err) || put_foreign_keys(out, db, name, err);
            if (fail) break;
            fputc('\n', out);
        }
        fail = put_columns(out, db, name, is_view, docs, n_docs, used, err);
    }
    sqlite3_finalize(objs);
    if (fail) return -1;
    if (rc != SQLITE_DONE) return sql_fail(db, err, "schema");
    for (int i = 0; i < n_docs; i++)
        if (!used[i])
            return rl_fail(err, RL_EINTERNAL,
                           "rollout/log.c: LOG_DOCS describes %s%s%s, which the schema does not "
                           "have",
                           docs[i].object, docs[i].column ? "." : "",
                           docs[i].column ? docs[i].column : "");
    return 0;
}

int rl_log_schema_markdown(FILE *out, rl_err *err) {
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY, NULL) !=
        SQLITE_OK) {
        sqlite3_close(db);
        return rl_fail(err, RL_EINTERNAL, "schema reference: cannot open an in-memory database");
    }
    int n_docs;
    const rl_log_doc *docs = rl_log_schema_docs(&n_docs);
    int *used = rl_calloc((size_t)n_docs, sizeof *used);
    int rc = 0;
    for (int v = 1; rc == 0 && rl_log_schema_sql(v); v++)
        if (sqlite3_exec(db, rl_log_schema_sql(v), NULL, NULL, NULL) != SQLITE_OK)
            rc = sql_fail(db, err, "loading the schema");
    if (rc == 0) rc = put_reference(out, db, docs, n_docs, used, err);
    free(used);
    sqlite3_close(db);
    if (rc == 0 && ferror(out)) return rl_fail(err, RL_EINTERNAL, "schema reference: write error");
    return rc;
}
