/*
 * log_doc: the rollout log's schema reference. rollout/SCHEMA.md is the output of
 * rl_log_schema_markdown() (`rlpipe logs --schema-doc`), built from the DDL a new log is created
 * with (log.c) and the one-line descriptions kept next to it, and test_docs fails when the file is
 * stale or a column has no description.
 *
 * Owns: nothing; the DDL and the descriptions are static tables in log.c.
 */
#ifndef RL_ROLLOUT_LOG_DOC_H
#define RL_ROLLOUT_LOG_DOC_H

#include <stdio.h>

#include "kernels/rl_error.h"

// One line of documentation for a table or view (column NULL) or one of its columns.
typedef struct rl_log_doc {
    const char *object; // table or view
    const char *column; // NULL: the entry describes the object itself
    const char *type;   // for view columns computed by an expression (no declared type), else NULL
    const char *text;   // one line of Markdown
} rl_log_doc;

// The DDL a new file is created with, in parts: version 1's tables, index and views, then what
// each later schema version adds (2: distillation). NULL after the last part.
const char *rl_log_schema_sql(int version);
// The documentation: one entry per table and view, then one per column, in the schema's order.
const rl_log_doc *rl_log_schema_docs(int *n);

// Writes the Markdown reference of every table, view and column (rollout/SCHEMA.md) to out: the
// columns, types, keys and indexes read back from an in-memory database built with the DDL
// (SQLite's table_xinfo, index_list and foreign_key_list pragmas), with the descriptions.
// RL_EINTERNAL naming the entry when a column has no description or a description names nothing.
int rl_log_schema_markdown(FILE *out, rl_err *err);

#endif
