// log: the SQLite rollout log (schema, versioning, one transaction per step). See log.h.
#define _POSIX_C_SOURCE 200809L
#include "rollout/log.h"
#include "rollout/log_doc.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef RLPIPE_VERSION
#define RLPIPE_VERSION "unknown"
#endif

// Timestamps are UTC text that SQLite's date functions understand: "2025-01-31 12:00:07.123".
#define SQL_NOW "strftime('%Y-%m-%d %H:%M:%f','now')"

// ---- the schema (version 1) -------------------------------------------------------------------
// Append-only in spirit: a change that alters the meaning of a column bumps RL_LOG_SCHEMA_VERSION.
// LOG_DOCS below describes every table, view and column; rollout/SCHEMA.md is generated from the
// two (`rlpipe logs --schema-doc`), and test_docs fails when a column has no description or the
// file is stale.

static const char SCHEMA_SQL[] =
    "CREATE TABLE meta (\n"
    "  key   TEXT PRIMARY KEY,\n"
    "  value TEXT NOT NULL\n"
    ");\n"
    "CREATE TABLE runs (\n"
    "  id             INTEGER PRIMARY KEY,\n"
    "  name           TEXT NOT NULL UNIQUE,\n"
    "  status         TEXT NOT NULL DEFAULT 'running'\n"
    "                 CHECK (status IN ('running','finished','failed','interrupted')),\n"
    "  seed           INTEGER,\n"
    "  config_yaml    TEXT,\n"
    "  out_dir        TEXT,\n"
    "  rlpipe_version TEXT,\n"
    "  started_at     TEXT NOT NULL,\n"
    "  finished_at    TEXT\n"
    ");\n"
    "CREATE TABLE steps (\n"
    "  run_id             INTEGER NOT NULL REFERENCES runs(id),\n"
    "  step               INTEGER NOT NULL,\n"
    "  phase              TEXT,\n"
    "  loss               REAL,\n"
    "  kl                 REAL,\n"
    "  entropy            REAL,\n"
    "  clip_frac          REAL,\n"
    "  grad_norm          REAL,\n"
    "  lr                 REAL,\n"
    "  reward_mean        REAL,\n"
    "  reward_std         REAL,\n"
    "  accuracy           REAL,\n"
    "  len_mean           REAL,\n"
    "  len_max            INTEGER,\n"
    "  truncated_frac     REAL,\n"
    "  n_rollouts         INTEGER,\n"
    "  n_groups_kept      INTEGER,\n"
    "  nonfinite          INTEGER,\n"
    "  tokens_per_s       REAL,\n"
    "  train_tokens_per_s REAL,\n"
    "  t_rollout          REAL,\n"
    "  t_verify           REAL,\n"
    "  t_update           REAL,\n"
    "  t_total            REAL,\n"
    "  extra              TEXT,\n"
    "  logged_at          TEXT NOT NULL,\n"
    "  PRIMARY KEY (run_id, step)\n"
    ");\n"
    "CREATE TABLE rollouts (\n"
    "  id                 INTEGER PRIMARY KEY,\n"
    "  run_id             INTEGER NOT NULL,\n"
    "  step               INTEGER NOT NULL,\n"
    "  group_id           INTEGER NOT NULL,\n"
    "  sample_idx         INTEGER NOT NULL,\n"
    "  prompt_idx         INTEGER NOT NULL,\n"
    "  task               TEXT,\n"
    "  prompt             TEXT NOT NULL,\n"
    "  completion         TEXT NOT NULL,\n"
    "  answer             TEXT,\n"
    "  n_tokens           INTEGER NOT NULL,\n"
    "  n_prompt_tokens    INTEGER,\n"
    "  finish_reason      TEXT NOT NULL,\n"
    "  reward             REAL,\n"
    "  advantage          REAL,\n"
    "  sample_logprob_sum REAL,\n"
    "  FOREIGN KEY (run_id, step) REFERENCES steps(run_id, step)\n"
    ");\n"
    "CREATE INDEX rollouts_run_step ON rollouts(run_id, step);\n"
    "CREATE TABLE scores (\n"
    "  rollout_id INTEGER NOT NULL REFERENCES rollouts(id),\n"
    "  verifier   TEXT NOT NULL,\n"
    "  weight     REAL NOT NULL,\n"
    "  score      REAL,\n"
    "  status     TEXT NOT NULL CHECK (status IN ('ok','skipped','error','timeout')),\n"
    "  detail     TEXT,\n"
    "  PRIMARY KEY (rollout_id, verifier)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE evals (\n"
    "  id              INTEGER PRIMARY KEY,\n"
    "  run_id          INTEGER NOT NULL REFERENCES runs(id),\n"
    "  step            INTEGER NOT NULL,\n"
    "  split           TEXT NOT NULL,\n"
    "  n               INTEGER NOT NULL,\n"
    "  k               INTEGER,\n"
    "  temperature     REAL,\n"
    "  pass_at_1       REAL,\n"
    "  pass_at_k       REAL,\n"
    "  accuracy_greedy REAL,\n"
    "  accuracy        REAL,\n"
    "  path_quality    REAL,\n"
    "  format          REAL,\n"
    "  efficiency      REAL,\n"
    "  verifier_means  TEXT,\n"
    "  len_mean        REAL,\n"
    "  seconds         REAL,\n"
    "  extra           TEXT,\n"
    "  created_at      TEXT NOT NULL,\n"
    "  UNIQUE (run_id, step, split)\n"
    ");\n"
    // One row per run, step and verifier: what each verifier thought of the step's rollouts.
    "CREATE VIEW step_verifier_means AS\n"
    "SELECT o.run_id, o.step, sc.verifier,\n"
    "  COUNT(*)                    AS n,\n"
    "  AVG(sc.weight)              AS weight,\n"
    "  AVG(sc.score)               AS mean_score,\n"
    "  AVG(sc.weight * sc.score)   AS mean_weighted,\n"
    "  MIN(sc.score)               AS min_score,\n"
    "  MAX(sc.score)               AS max_score,\n"
    "  SUM(sc.status = 'ok')       AS n_ok,\n"
    "  SUM(sc.status = 'skipped')  AS n_skipped,\n"
    "  SUM(sc.status = 'error')    AS n_error,\n"
    "  SUM(sc.status = 'timeout')  AS n_timeout\n"
    "FROM scores sc JOIN rollouts o ON o.id = sc.rollout_id\n"
    "GROUP BY o.run_id, o.step, sc.verifier;\n"
    // One row per step: reward and the built-in verifiers' means from the rollouts themselves,
    // next to the update's statistics.
    "CREATE VIEW step_summary AS\n"
    "SELECT s.run_id, s.step, s.phase,\n"
    "  r.n_rollouts, r.reward_mean, r.reward_min, r.reward_max,\n"
    "  v.accuracy, v.path_quality, v.format, v.efficiency,\n"
    "  r.len_mean, r.truncated_frac,\n"
    "  s.loss, s.kl, s.entropy, s.grad_norm, s.lr, s.t_total\n"
    "FROM steps s\n"
    "LEFT JOIN (SELECT run_id, step, COUNT(*) AS n_rollouts, AVG(reward) AS reward_mean,\n"
    "                  MIN(reward) AS reward_min, MAX(reward) AS reward_max,\n"
    "                  AVG(n_tokens) AS len_mean,\n"
    "                  AVG(finish_reason = 'length') AS truncated_frac\n"
    "           FROM rollouts GROUP BY run_id, step) r\n"
    "  ON r.run_id = s.run_id AND r.step = s.step\n"
    "LEFT JOIN (SELECT o.run_id, o.step,\n"
    "                  AVG(CASE WHEN sc.verifier = 'accuracy' THEN sc.score END) AS accuracy,\n"
    "                  AVG(CASE WHEN sc.verifier = 'path_quality' THEN sc.score END)\n"
    "                    AS path_quality,\n"
    "                  AVG(CASE WHEN sc.verifier = 'format' THEN sc.score END) AS format,\n"
    "                  AVG(CASE WHEN sc.verifier = 'efficiency' THEN sc.score END)\n"
    "                    AS efficiency\n"
    "           FROM scores sc JOIN rollouts o ON o.id = sc.rollout_id\n"
    "           GROUP BY o.run_id, o.step) v\n"
    "  ON v.run_id = s.run_id AND v.step = s.step;\n"
    // One row per rollout with its scores side by side, all verdicts as one text, and its rank
    // in its step (best_rank 1 = highest reward, worst_rank 1 = lowest; ties broken by id).
    "CREATE VIEW rollout_summary AS\n"
    "SELECT o.id, o.run_id, o.step, o.group_id, o.sample_idx, o.prompt_idx, o.task,\n"
    "  o.n_tokens, o.finish_reason, o.reward, o.advantage,\n"
    "  (SELECT score FROM scores WHERE rollout_id = o.id AND verifier = 'accuracy')\n"
    "    AS accuracy,\n"
    "  (SELECT score FROM scores WHERE rollout_id = o.id AND verifier = 'path_quality')\n"
    "    AS path_quality,\n"
    "  (SELECT score FROM scores WHERE rollout_id = o.id AND verifier = 'format') AS format,\n"
    "  (SELECT score FROM scores WHERE rollout_id = o.id AND verifier = 'efficiency')\n"
    "    AS efficiency,\n"
    "  ROW_NUMBER() OVER (PARTITION BY o.run_id, o.step ORDER BY o.reward DESC, o.id)\n"
    "    AS best_rank,\n"
    "  ROW_NUMBER() OVER (PARTITION BY o.run_id, o.step ORDER BY o.reward ASC, o.id)\n"
    "    AS worst_rank,\n"
    "  (SELECT group_concat(verifier || ' ' || printf('%.3f', score) || ' ' || status ||\n"
    "                       CASE WHEN detail IS NOT NULL AND detail <> ''\n"
    "                            THEN ': ' || detail ELSE '' END, '; ')\n"
    "   FROM scores WHERE rollout_id = o.id) AS details,\n"
    "  o.answer, o.prompt, o.completion\n"
    "FROM rollouts o;\n"
    // One row per run: how far it got.
    "CREATE VIEW run_summary AS\n"
    "SELECT r.id, r.name, r.status, r.seed, r.started_at, r.finished_at,\n"
    "  (SELECT COUNT(*) FROM steps s WHERE s.run_id = r.id)    AS n_steps,\n"
    "  (SELECT MAX(step) FROM steps s WHERE s.run_id = r.id)   AS last_step,\n"
    "  (SELECT COUNT(*) FROM rollouts o WHERE o.run_id = r.id) AS n_rollouts,\n"
    "  (SELECT COUNT(*) FROM evals e WHERE e.run_id = r.id)    AS n_evals\n"
    "FROM runs r;\n";

// ---- version 2: distillation -----------------------------------------------------------------
// Added on top of version 1 (new files get both; a version-1 file opened for writing is upgraded
// in place, its rows kept): one row per distillation step, and the held-out perplexity of an
// evaluation. Version-1 readers' queries all still work on a version-2 file.
static const char SCHEMA_V2_SQL[] =
    "CREATE TABLE distill_steps (\n"
    "  run_id          INTEGER NOT NULL,\n"
    "  step            INTEGER NOT NULL,\n"
    "  kl              REAL,\n" // mean per-token tau^2 KL (the loss)
    "  tau_mean        REAL,\n"
    "  tau_min         REAL,\n"
    "  tau_max         REAL,\n"
    "  teacher_entropy REAL,\n" // mean teacher entropy (nats, temperature 1)
    "  student_entropy REAL,\n"
    "  n_tokens        INTEGER,\n"
    "  PRIMARY KEY (run_id, step),\n"
    "  FOREIGN KEY (run_id, step) REFERENCES steps(run_id, step)\n"
    ") WITHOUT ROWID;\n"
    "ALTER TABLE evals ADD COLUMN perplexity REAL;\n";

// One line per table and view (column NULL), then one per column, in the schema's order. type is
// given only for view columns computed by an expression (SQLite declares no type for those).
#define T(obj, text)                                                                               \
    { obj, NULL, NULL, text }
#define C(obj, col, text)                                                                          \
    { obj, col, NULL, text }
#define V(obj, col, type, text)                                                                    \
    { obj, col, type, text }
static const rl_log_doc LOG_DOCS[] = {
    T("meta", "Key/value facts about the file: `application` (`rlpipe rollout log`), "
              "`schema_version`, `created_by` (rlpipe version), `created_at`"),
    C("meta", "key", "the fact's name"),
    C("meta", "value", "its value, as text"),

    T("runs", "One row per run (normally one per file; `rlpipe train` adds its cold-start SFT as "
              "a second run, `NAME-sft`)"),
    C("runs", "id", "run id"),
    C("runs", "name", "run name from the config, unique in the file"),
    C("runs", "status",
      "`running`, `finished`, `failed` or `interrupted` (a resumed run is "
      "`running` again)"),
    C("runs", "seed",
      "the run seed (its 64 bits as a signed integer: a seed >= 2^63 reads "
      "negative)"),
    C("runs", "config_yaml", "the full validated config the run used, as YAML"),
    C("runs", "out_dir", "the run's output directory (NULL if not recorded)"),
    C("runs", "rlpipe_version", "the rlpipe version that started the run"),
    C("runs", "started_at", "when the run started"),
    C("runs", "finished_at", "when it finished, failed or was interrupted (NULL while running)"),

    T("steps", "One row per training step; the trainer fills the statistics it measured, the rest "
               "are NULL (e.g. `kl` in SFT steps)"),
    C("steps", "run_id", "the run"),
    C("steps", "step", "step number, from 0"),
    C("steps", "phase", "`sft` or `rl`"),
    C("steps", "loss",
      "the optimised objective (clipped policy-gradient surrogate + KL term, or "
      "SFT cross-entropy)"),
    C("steps", "kl", "mean per-token KL divergence to the reference policy"),
    C("steps", "entropy", "mean per-token entropy of the policy on the sampled tokens"),
    C("steps", "clip_frac", "fraction of tokens whose probability ratio was clipped"),
    C("steps", "grad_norm", "global gradient norm before clipping"),
    C("steps", "lr", "learning rate of this update"),
    C("steps", "reward_mean", "mean total reward over the step's rollouts"),
    C("steps", "reward_std", "standard deviation of the total reward over the step's rollouts"),
    C("steps", "accuracy", "mean score of the accuracy verifier"),
    C("steps", "len_mean", "mean completion length in tokens"),
    C("steps", "len_max", "longest completion in tokens"),
    C("steps", "truncated_frac", "fraction of completions stopped by the token budget"),
    C("steps", "n_rollouts", "rollouts generated this step"),
    C("steps", "n_groups_kept", "prompt groups with a non-zero advantage that entered the update"),
    C("steps", "nonfinite",
      "1 if the update was skipped because of a non-finite loss or "
      "gradient"),
    C("steps", "tokens_per_s", "generation throughput (completion tokens per second)"),
    C("steps", "train_tokens_per_s",
      "update throughput (tokens through forward + backward per "
      "second)"),
    C("steps", "t_rollout", "seconds spent generating"),
    C("steps", "t_verify", "seconds spent scoring"),
    C("steps", "t_update", "seconds spent in the policy update"),
    C("steps", "t_total", "seconds for the whole step"),
    C("steps", "extra", "a JSON object with any other statistic (`json_extract(extra, '$.name')`)"),
    C("steps", "logged_at", "when the step was written"),

    T("rollouts", "One row per sampled completion"),
    C("rollouts", "id", "rollout id (`rlpipe logs DB show ID`)"),
    C("rollouts", "run_id", "the run that generated it"),
    C("rollouts", "step", "the step that generated it"),
    C("rollouts", "group_id",
      "the prompt's group within the step (0 .. prompts per step - 1); "
      "the advantage is relative to this group"),
    C("rollouts", "sample_idx", "which of the group's samples (0 .. G - 1)"),
    C("rollouts", "prompt_idx",
      "index of the prompt in its source (dataset row or task-generator "
      "counter)"),
    C("rollouts", "task", "task family (`arith`, `code`, a dataset name) or NULL"),
    C("rollouts", "prompt", "the prompt text, before the chat template"),
    C("rollouts", "completion", "the decoded completion"),
    C("rollouts", "answer", "the reference answer (NULL for code tasks judged by tests)"),
    C("rollouts", "n_tokens", "completion length in tokens"),
    C("rollouts", "n_prompt_tokens", "prompt length in tokens (NULL if unknown)"),
    C("rollouts", "finish_reason",
      "`stop` (end-of-sequence or a stop string) or `length` (token "
      "budget reached)"),
    C("rollouts", "reward", "total reward, the sum of weight x score over the verifiers (gated)"),
    C("rollouts", "advantage",
      "group-relative advantage (`algorithm.advantage`); 0 for groups "
      "left out of the update"),
    C("rollouts", "sample_logprob_sum",
      "sum of the sampled tokens' log-probabilities under the "
      "sampling distribution"),

    T("scores", "One row per rollout and verifier: every verdict that entered the reward"),
    C("scores", "rollout_id", "the rollout"),
    C("scores", "verifier",
      "`accuracy`, `path_quality`, `format`, `efficiency` or a plugin's "
      "name"),
    C("scores", "weight", "the verifier's weight in the reward"),
    C("scores", "score",
      "its score in [0, 1] (NULL only if the verifier returned a non-finite "
      "number)"),
    C("scores", "status",
      "`ok`; `skipped` (the reference could not be judged; score 0); `error` "
      "(the verifier failed); `timeout`"),
    C("scores", "detail",
      "the verifier's one-line explanation, e.g. `different: answer 41, "
      "reference 42`"),

    T("evals", "One row per evaluation of the policy (an evaluation logged again for the same "
               "run, step and split replaces the row)"),
    C("evals", "id", "evaluation id"),
    C("evals", "run_id", "the run"),
    C("evals", "step", "training steps completed when the policy was evaluated"),
    C("evals", "split", "`heldout`, `train` or a dataset name"),
    C("evals", "n", "prompts evaluated"),
    C("evals", "k", "samples per prompt"),
    C("evals", "temperature", "sampling temperature"),
    C("evals", "pass_at_1", "unbiased pass@1 estimate from the k samples (mean accuracy)"),
    C("evals", "pass_at_k", "unbiased pass@k estimate from the k samples"),
    C("evals", "accuracy_greedy", "accuracy of greedy decoding (NULL if not run)"),
    C("evals", "accuracy", "mean score of the accuracy verifier (NULL if not configured)"),
    C("evals", "path_quality",
      "mean score of the path_quality verifier (NULL if not "
      "configured)"),
    C("evals", "format", "mean score of the format verifier (NULL if not configured)"),
    C("evals", "efficiency", "mean score of the efficiency verifier (NULL if not configured)"),
    C("evals", "verifier_means", "JSON object of every verifier's mean score, plugins included"),
    C("evals", "len_mean", "mean completion length in tokens"),
    C("evals", "seconds", "wall time of the evaluation"),
    C("evals", "extra", "JSON object with anything else"),
    C("evals", "created_at", "when it was written"),
    C("evals", "perplexity",
      "held-out perplexity of the policy on teacher-written text (`rlpipe distill`; NULL "
      "otherwise; schema version 2)"),

    T("distill_steps", "One row per `rlpipe distill` step, next to its `steps` row (schema version "
                       "2)"),
    C("distill_steps", "run_id", "the run"),
    C("distill_steps", "step", "step number, from 0"),
    C("distill_steps", "kl",
      "mean per-token tau^2-scaled KL between teacher and student (the loss)"),
    C("distill_steps", "tau_mean", "mean distillation temperature over the step's tokens"),
    C("distill_steps", "tau_min", "smallest per-token temperature"),
    C("distill_steps", "tau_max", "largest per-token temperature"),
    C("distill_steps", "teacher_entropy", "mean teacher entropy in nats, at temperature 1"),
    C("distill_steps", "student_entropy", "mean student entropy in nats, at temperature 1"),
    C("distill_steps", "n_tokens", "completion tokens in the step"),

    T("step_verifier_means", "One row per run, step and verifier (plugins too): what each "
                             "verifier thought of the step's rollouts, whatever the status"),
    C("step_verifier_means", "run_id", "the run"),
    C("step_verifier_means", "step", "the step"),
    C("step_verifier_means", "verifier", "the verifier's name"),
    V("step_verifier_means", "n", "INTEGER", "verdicts"),
    V("step_verifier_means", "weight", "REAL", "the verifier's weight"),
    V("step_verifier_means", "mean_score", "REAL", "mean score"),
    V("step_verifier_means", "mean_weighted", "REAL",
      "mean of weight x score: the verifier's "
      "mean contribution to the reward (ungated)"),
    V("step_verifier_means", "min_score", "REAL", "lowest score"),
    V("step_verifier_means", "max_score", "REAL", "highest score"),
    V("step_verifier_means", "n_ok", "INTEGER", "verdicts with status `ok`"),
    V("step_verifier_means", "n_skipped", "INTEGER", "verdicts with status `skipped`"),
    V("step_verifier_means", "n_error", "INTEGER", "verdicts with status `error`"),
    V("step_verifier_means", "n_timeout", "INTEGER", "verdicts with status `timeout`"),

    T("step_summary", "One row per run and step: reward and the built-in verifiers' means computed "
                      "from the rollouts and scores themselves, next to the update's statistics"),
    C("step_summary", "run_id", "the run"),
    C("step_summary", "step", "the step"),
    C("step_summary", "phase", "`sft` or `rl`"),
    V("step_summary", "n_rollouts", "INTEGER", "rollouts logged for the step"),
    V("step_summary", "reward_mean", "REAL", "mean reward"),
    V("step_summary", "reward_min", "REAL", "lowest reward"),
    V("step_summary", "reward_max", "REAL", "highest reward"),
    V("step_summary", "accuracy", "REAL", "mean accuracy score"),
    V("step_summary", "path_quality", "REAL", "mean path_quality score"),
    V("step_summary", "format", "REAL", "mean format score"),
    V("step_summary", "efficiency", "REAL", "mean efficiency score"),
    V("step_summary", "len_mean", "REAL", "mean completion length in tokens"),
    V("step_summary", "truncated_frac", "REAL",
      "fraction of completions with `finish_reason = "
      "'length'`"),
    C("step_summary", "loss", "from `steps`"),
    C("step_summary", "kl", "from `steps`"),
    C("step_summary", "entropy", "from `steps`"),
    C("step_summary", "grad_norm", "from `steps`"),
    C("step_summary", "lr", "from `steps`"),
    C("step_summary", "t_total", "from `steps`"),

    T("rollout_summary", "One row per rollout, its scores side by side, every verdict as one "
                         "text, and its rank in its step"),
    C("rollout_summary", "id", "rollout id"),
    C("rollout_summary", "run_id", "the run"),
    C("rollout_summary", "step", "the step"),
    C("rollout_summary", "group_id", "the prompt's group within the step"),
    C("rollout_summary", "sample_idx", "which of the group's samples"),
    C("rollout_summary", "prompt_idx", "index of the prompt in its source"),
    C("rollout_summary", "task", "task family or NULL"),
    C("rollout_summary", "n_tokens", "completion length in tokens"),
    C("rollout_summary", "finish_reason", "`stop` or `length`"),
    C("rollout_summary", "reward", "total reward"),
    C("rollout_summary", "advantage", "group-relative advantage"),
    V("rollout_summary", "accuracy", "REAL", "the accuracy verifier's score"),
    V("rollout_summary", "path_quality", "REAL", "the path_quality verifier's score"),
    V("rollout_summary", "format", "REAL", "the format verifier's score"),
    V("rollout_summary", "efficiency", "REAL", "the efficiency verifier's score"),
    V("rollout_summary", "best_rank", "INTEGER", "1 = highest reward in its step (ties by id)"),
    V("rollout_summary", "worst_rank", "INTEGER", "1 = lowest reward in its step (ties by id)"),
    V("rollout_summary", "details", "TEXT",
      "every verdict as `verifier score status: detail; ...`"),
    C("rollout_summary", "answer", "the reference answer"),
    C("rollout_summary", "prompt", "the prompt text"),
    C("rollout_summary", "completion", "the decoded completion"),

    T("run_summary", "One row per run: how far it got"),
    C("run_summary", "id", "run id"),
    C("run_summary", "name", "run name"),
    C("run_summary", "status", "`running`, `finished`, `failed` or `interrupted`"),
    C("run_summary", "seed", "the run seed"),
    C("run_summary", "started_at", "when the run started"),
    C("run_summary", "finished_at", "when it ended (NULL while running)"),
    V("run_summary", "n_steps", "INTEGER", "steps logged"),
    V("run_summary", "last_step", "INTEGER", "the last logged step (NULL if none)"),
    V("run_summary", "n_rollouts", "INTEGER", "rollouts logged"),
    V("run_summary", "n_evals", "INTEGER", "evaluations logged"),
};
#undef T
#undef C
#undef V

const char *rl_log_schema_sql(int version) {
    return version == 1 ? SCHEMA_SQL : version == 2 ? SCHEMA_V2_SQL : NULL;
}

const rl_log_doc *rl_log_schema_docs(int *n) {
    *n = (int)(sizeof LOG_DOCS / sizeof LOG_DOCS[0]);
    return LOG_DOCS;
}

// ---- the handle -------------------------------------------------------------------------------

struct rl_log {
    sqlite3 *db;
    char *path;
    int readonly;
    // Waiting for another connection's write lock (see rl_log_set_busy_timeout).
    double busy_timeout_s;
    const volatile sig_atomic_t *busy_stop;
    double busy_since;
    // Readers: what the authorizer refused last ("PRAGMA writable_schema", ...), or "".
    char refused[160];
    int in_step;    // a step transaction is open
    int64_t run_id; // the step in progress
    int step;
    // Prepared once at open (writers only), reused for every row.
    sqlite3_stmt *begin, *commit, *rollback;
    sqlite3_stmt *insert_step, *update_stats, *insert_rollout, *insert_score, *insert_eval;
    sqlite3_stmt *insert_distill;
};

// The columns of rl_step_stats that are plain numbers, in the order of the UPDATE's parameters.
typedef struct stat_col {
    const char *name;
    size_t offset;
    int integer; // stored as INTEGER (rounded)
} stat_col;

#define STAT(field, integer)                                                                       \
    { #field, offsetof(rl_step_stats, field), integer }
static const stat_col STAT_COLS[] = {
    STAT(loss, 0),
    STAT(kl, 0),
    STAT(entropy, 0),
    STAT(clip_frac, 0),
    STAT(grad_norm, 0),
    STAT(lr, 0),
    STAT(reward_mean, 0),
    STAT(reward_std, 0),
    STAT(accuracy, 0),
    STAT(len_mean, 0),
    STAT(len_max, 1),
    STAT(truncated_frac, 0),
    STAT(n_rollouts, 1),
    STAT(n_groups_kept, 1),
    STAT(nonfinite, 1),
    STAT(tokens_per_s, 0),
    STAT(train_tokens_per_s, 0),
    STAT(t_rollout, 0),
    STAT(t_verify, 0),
    STAT(t_update, 0),
    STAT(t_total, 0),
};
#undef STAT
#define N_STAT_COLS ((int)(sizeof STAT_COLS / sizeof STAT_COLS[0]))

static const char *const BUILTIN_VERIFIERS[4] = {"accuracy", "path_quality", "format",
                                                 "efficiency"};

void rl_step_stats_init(rl_step_stats *s) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < N_STAT_COLS; i++) *(double *)((char *)s + STAT_COLS[i].offset) = NAN;
}

void rl_rollout_row_init(rl_rollout_row *r) {
    memset(r, 0, sizeof *r);
    r->n_prompt_tokens = -1;
    r->reward = r->advantage = r->sample_logprob_sum = NAN;
}

void rl_eval_row_init(rl_eval_row *e) {
    memset(e, 0, sizeof *e);
    e->temperature = e->pass_at_1 = e->pass_at_k = e->accuracy_greedy = NAN;
    e->len_mean = e->seconds = e->perplexity = NAN;
}

struct sqlite3 *rl_log_sqlite(rl_log *log) {
    return log->db;
}
const char *rl_log_path(const rl_log *log) {
    return log->path;
}

// ---- small helpers ----------------------------------------------------------------------------

// "path: what: sqlite's message", with a hint when another connection held the lock too long.
static int db_fail(rl_log *log, rl_err *err, int kind, const char *what) {
    if ((sqlite3_errcode(log->db) & 0xff) == SQLITE_BUSY && !log->readonly)
        return rl_fail(err, kind,
                       "%s: %s: %s (another connection held the write lock for more than %g s; "
                       "raise logging.busy_timeout_s)",
                       log->path, what, sqlite3_errmsg(log->db), log->busy_timeout_s);
    return rl_fail(err, kind, "%s: %s: %s", log->path, what, sqlite3_errmsg(log->db));
}

static int exec_sql(rl_log *log, const char *sql, const char *what, rl_err *err) {
    char *msg = NULL;
    if (sqlite3_exec(log->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        rl_fail(err, RL_EINTERNAL, "%s: %s: %s", log->path, what, msg ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int prepare(rl_log *log, const char *sql, sqlite3_stmt **st, rl_err *err) {
    if (sqlite3_prepare_v3(log->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return db_fail(log, err, RL_EINTERNAL, "preparing a statement");
    return 0;
}

// Runs a statement that returns no rows and resets it. Returns the sqlite result code
// (SQLITE_DONE on success); the message stays readable through sqlite3_errmsg.
// Bindings are cleared so that no borrowed string pointer outlives the call.
static int step_once(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s) {
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

// NaN means "not measured"; +-inf is kept (a diverged loss is worth seeing).
static void bind_real(sqlite3_stmt *st, int i, double x) {
    if (isnan(x))
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_double(st, i, x);
}

static void bind_int_from_real(sqlite3_stmt *st, int i, double x) {
    if (isfinite(x) && fabs(x) < 9.0e18)
        sqlite3_bind_int64(st, i, (sqlite3_int64)llround(x));
    else
        sqlite3_bind_null(st, i);
}

// Seeds are uint64 and SQLite integers int64: the seed is stored as its two's-complement bit
// pattern, so a seed >= 2^63 reads back negative (add 2^64). Text would lose it to INTEGER affinity.
static void bind_seed(sqlite3_stmt *st, int i, uint64_t seed) {
    int64_t bits;
    memcpy(&bits, &seed, sizeof bits);
    sqlite3_bind_int64(st, i, bits);
}

static int is_one_of(const char *s, const char *const *set, int n) {
    if (!s) return 0;
    for (int i = 0; i < n; i++)
        if (strcmp(s, set[i]) == 0) return 1;
    return 0;
}

static const char *const RUN_STATUSES[4] = {"running", "finished", "failed", "interrupted"};
static const char *const SCORE_STATUSES[4] = {"ok", "skipped", "error", "timeout"};

// A JSON object text, or NULL. Anything else is the caller's bug.
static int check_json_object(rl_log *log, const char *text, const char *what, rl_err *err) {
    if (!text) return 0;
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    int ok = v && json_is_object(v);
    json_decref(v);
    if (!ok)
        return rl_fail(err, RL_EINTERNAL, "%s: %s is not a JSON object: %s", log->path, what,
                       v ? "another JSON value" : jerr.text);
    return 0;
}

// ---- opening, versioning ------------------------------------------------------------------------

static int query_int(rl_log *log, const char *sql, int64_t *out, int *rc_out) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(log->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    *rc_out = rc;
    return rc == SQLITE_OK ? 0 : -1;
}

static int create_schema(rl_log *log, rl_err *err) {
    RL_TRY(exec_sql(log, SCHEMA_SQL, "creating the schema", err));
    RL_TRY(exec_sql(log, SCHEMA_V2_SQL, "creating the schema", err));
    char sql[512];
    snprintf(sql, sizeof sql,
             "PRAGMA application_id = %d; PRAGMA user_version = %d;"
             "INSERT INTO meta(key, value) VALUES ('application', 'rlpipe rollout log'),"
             " ('schema_version', '%d'), ('created_by', 'rlpipe %s'),"
             " ('created_at', %s);",
             (int)RL_LOG_APPLICATION_ID, RL_LOG_SCHEMA_VERSION, RL_LOG_SCHEMA_VERSION,
             RLPIPE_VERSION, SQL_NOW);
    return exec_sql(log, sql, "writing the schema version", err);
}

// Reads the header and either accepts the file, initialises an empty one (may_init) or refuses.
static int check_or_init_schema(rl_log *log, int may_init, rl_err *err) {
    int64_t app_id = 0, version = 0, n_objects = 0;
    int rc = SQLITE_OK;
    if (query_int(log, "PRAGMA application_id", &app_id, &rc) != 0 ||
        query_int(log, "PRAGMA user_version", &version, &rc) != 0 ||
        query_int(log, "SELECT COUNT(*) FROM sqlite_master", &n_objects, &rc) != 0) {
        if ((rc & 0xff) == SQLITE_NOTADB)
            return rl_fail(err, RL_EINPUT, "%s: not an rlpipe rollout log (not an SQLite database)",
                           log->path);
        if ((rc & 0xff) == SQLITE_CORRUPT)
            return rl_fail(err, RL_EINPUT, "%s: the database file is damaged: %s", log->path,
                           sqlite3_errstr(rc));
        return db_fail(log, err, RL_EINPUT, "cannot read the database");
    }
    if (app_id == 0 && version == 0 && n_objects == 0) {
        if (!may_init)
            return rl_fail(err, RL_EINPUT, "%s: empty database, not an rlpipe rollout log",
                           log->path);
        return create_schema(log, err);
    }
    if (app_id != RL_LOG_APPLICATION_ID)
        return rl_fail(err, RL_EINPUT,
                       "%s: not an rlpipe rollout log (an SQLite database with application_id "
                       "0x%08" PRIx32 ", expected 0x%08x)",
                       log->path, (uint32_t)app_id, (unsigned)RL_LOG_APPLICATION_ID);
    if (version > RL_LOG_SCHEMA_VERSION)
        return rl_fail(err, RL_EINPUT,
                       "%s: rollout log schema version %" PRId64
                       " is newer than this rlpipe supports (%d); use a newer rlpipe",
                       log->path, version, RL_LOG_SCHEMA_VERSION);
    if (version == 1) {
        // Version 1 is version 2 without the distillation table and column: readers need
        // nothing more, writers add them (inside the caller's write transaction).
        if (log->readonly) return 0;
        RL_TRY(exec_sql(log, SCHEMA_V2_SQL, "upgrading the schema to version 2", err));
        char sql[160];
        snprintf(sql, sizeof sql,
                 "PRAGMA user_version = %d; UPDATE meta SET value = '%d' WHERE key = "
                 "'schema_version';",
                 RL_LOG_SCHEMA_VERSION, RL_LOG_SCHEMA_VERSION);
        return exec_sql(log, sql, "upgrading the schema to version 2", err);
    }
    if (version < RL_LOG_SCHEMA_VERSION)
        return rl_fail(err, RL_EINPUT,
                       "%s: rollout log schema version %" PRId64 " is older than %d and cannot be "
                       "upgraded",
                       log->path, version, RL_LOG_SCHEMA_VERSION);
    return 0;
}

static int prepare_writers(rl_log *log, rl_err *err) {
    RL_TRY(prepare(log, "BEGIN IMMEDIATE", &log->begin, err));
    RL_TRY(prepare(log, "COMMIT", &log->commit, err));
    RL_TRY(prepare(log, "ROLLBACK", &log->rollback, err));
    RL_TRY(prepare(log, "INSERT INTO steps(run_id, step, logged_at) VALUES (?1, ?2, " SQL_NOW ")",
                   &log->insert_step, err));

    // UPDATE steps SET phase=?1, extra=?2, loss=?3, ... WHERE run_id=?N+3 AND step=?N+4
    char sql[2048];
    size_t len = (size_t)snprintf(sql, sizeof sql, "UPDATE steps SET phase = ?1, extra = ?2");
    for (int i = 0; i < N_STAT_COLS; i++)
        len +=
            (size_t)snprintf(sql + len, sizeof sql - len, ", %s = ?%d", STAT_COLS[i].name, i + 3);
    snprintf(sql + len, sizeof sql - len, " WHERE run_id = ?%d AND step = ?%d", N_STAT_COLS + 3,
             N_STAT_COLS + 4);
    RL_TRY(prepare(log, sql, &log->update_stats, err));

    RL_TRY(prepare(log,
                   "INSERT INTO rollouts(run_id, step, group_id, sample_idx, prompt_idx, task,"
                   " prompt, completion, answer, n_tokens, n_prompt_tokens, finish_reason, reward,"
                   " advantage, sample_logprob_sum)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                   &log->insert_rollout, err));
    RL_TRY(prepare(log,
                   "INSERT INTO scores(rollout_id, verifier, weight, score, status, detail)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                   &log->insert_score, err));
    RL_TRY(prepare(log,
                   "INSERT OR REPLACE INTO evals(run_id, step, split, n, k, temperature, pass_at_1,"
                   " pass_at_k, accuracy_greedy, accuracy, path_quality, format, efficiency,"
                   " verifier_means, len_mean, seconds, extra, perplexity, created_at)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
                   " ?17, ?18, " SQL_NOW ")",
                   &log->insert_eval, err));
    RL_TRY(prepare(log,
                   "INSERT INTO distill_steps(run_id, step, kl, tau_mean, tau_min, tau_max,"
                   " teacher_entropy, student_entropy, n_tokens)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                   &log->insert_distill, err));
    return 0;
}

// ---- waiting for the write lock ---------------------------------------------------------------

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

// SQLite calls this while another connection holds a lock: sleep with exponential backoff (1 ms
// doubling to 256 ms) until busy_timeout_s have passed since the first call of this wait, or the
// caller's stop flag is raised (a signal asked the process to end). 0 gives up: SQLITE_BUSY.
static int busy_wait(void *ctx, int count) {
    rl_log *log = ctx;
    double now = mono_now();
    if (count == 0) log->busy_since = now;
    if (log->busy_stop && *log->busy_stop) return 0;
    double left = log->busy_timeout_s - (now - log->busy_since);
    if (left <= 0) return 0;
    double nap = 0.001 * (double)(1u << (count < 8 ? count : 8));
    if (nap > left) nap = left;
    struct timespec ts = {(time_t)nap, (long)((nap - (double)(time_t)nap) * 1e9)};
    nanosleep(&ts, NULL); // a signal cuts the nap short; the flag is checked on the next call
    return 1;
}

void rl_log_set_busy_timeout(rl_log *log, double seconds, const volatile sig_atomic_t *stop) {
    if (!log || !log->db) return;
    log->busy_timeout_s = seconds > 0 ? seconds : 0;
    log->busy_stop = stop;
    sqlite3_busy_handler(log->db, busy_wait, log);
}

// ---- readers: read-only by construction ----------------------------------------------------------
// A reader's connection refuses, at prepare time, everything that is not a read: the authorizer
// allows SELECT, reading columns, recursive CTEs, the built-in functions below and read-only
// pragmas; everything else (writes, schema changes, transactions, savepoints, ATTACH, other
// pragmas, fts3_tokenizer, load_extension, readfile, ...) is SQLITE_DENY. Defensive mode,
// query_only, no extension loading, no ATTACH slots and an untrusted schema back it up.

static const char *const READ_FUNCTIONS[] = {
    // core scalar functions
    "abs", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex", "ifnull", "iif",
    "instr", "length", "like", "likelihood", "likely", "lower", "ltrim", "max", "min", "nullif",
    "octet_length", "printf", "quote", "random", "replace", "round", "rtrim", "sign", "soundex",
    "substr", "substring", "trim", "typeof", "unhex", "unicode", "unlikely", "upper",
    "sqlite_version", "sqlite_source_id", "->", "->>",
    // aggregates
    "avg", "count", "group_concat", "string_agg", "sum", "total",
    // date and time
    "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
    // math
    "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "ceiling", "cos", "cosh",
    "degrees", "exp", "floor", "ln", "log", "log10", "log2", "mod", "pi", "pow", "power", "radians",
    "sin", "sinh", "sqrt", "tan", "tanh", "trunc",
    // window functions
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value",
    // JSON (the functions return new text; none writes)
    "json", "json_array", "json_array_length", "json_extract", "json_insert", "json_object",
    "json_patch", "json_remove", "json_replace", "json_set", "json_type", "json_valid",
    "json_quote", "json_group_array", "json_group_object", "json_each", "json_tree",
    "json_error_position", "jsonb", "jsonb_array", "jsonb_extract", "jsonb_insert", "jsonb_object",
    "jsonb_patch", "jsonb_remove", "jsonb_replace", "jsonb_set", "jsonb_group_array",
    "jsonb_group_object"};

// Pragmas that only report. With an argument only the ones whose argument names what to report.
static const char *const READ_PRAGMAS[] = {
    "application_id",  "user_version",   "schema_version",    "data_version",     "page_count",
    "page_size",       "freelist_count", "encoding",          "compile_options",  "database_list",
    "collation_list",  "function_list",  "module_list",       "pragma_list",      "table_list",
    "integrity_check", "quick_check",    "foreign_key_check", "foreign_key_list", "table_info",
    "table_xinfo",     "index_list",     "index_info",        "index_xinfo"};
static const char *const READ_PRAGMAS_WITH_ARG[] = {
    "table_info",       "table_xinfo",       "index_list",      "index_info",  "index_xinfo",
    "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check", "table_list"};

static int in_set(const char *s, const char *const *set, size_t n) {
    if (!s) return 0;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(s, set[i]) == 0) return 1;
    return 0;
}
#define IN_SET(s, set) in_set((s), (set), sizeof(set) / sizeof((set)[0]))

static int refuse(rl_log *log, const char *what, const char *name) {
    snprintf(log->refused, sizeof log->refused, "%s%s%s", what, name ? " " : "", name ? name : "");
    return SQLITE_DENY;
}

static int read_only_authorizer(void *ctx, int action, const char *a, const char *b,
                                const char *db_name, const char *trigger) {
    (void)db_name;
    (void)trigger;
    rl_log *log = ctx;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    case SQLITE_FUNCTION:
        return IN_SET(b, READ_FUNCTIONS) ? SQLITE_OK : refuse(log, "the function", b);
    case SQLITE_PRAGMA:
        if (b == NULL ? IN_SET(a, READ_PRAGMAS) : IN_SET(a, READ_PRAGMAS_WITH_ARG))
            return SQLITE_OK;
        return refuse(log, "PRAGMA", a);
    case SQLITE_TRANSACTION:
        return refuse(log, "a transaction statement", a);
    case SQLITE_SAVEPOINT:
        return refuse(log, "SAVEPOINT/RELEASE", b);
    case SQLITE_ATTACH:
    case SQLITE_DETACH:
        return refuse(log, "ATTACH/DETACH", NULL);
    case SQLITE_UPDATE:
        // Reading an eponymous virtual table (pragma_table_info, json_each) asks about updating
        // the schema table's columns while it declares the table; nothing is written then, and a
        // real UPDATE of sqlite_master is stopped by defensive mode and query_only.
        if (a && (strcmp(a, "sqlite_master") == 0 || strcmp(a, "sqlite_schema") == 0))
            return SQLITE_OK;
        return refuse(log, "a write to", a);
    case SQLITE_INSERT:
    case SQLITE_DELETE:
        return refuse(log, "a write to", a);
    default:
        return refuse(log, "a statement that changes the database", NULL);
    }
}

static void harden_reader(rl_log *log) {
    sqlite3 *db = log->db;
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)NULL);
#ifdef SQLITE_DBCONFIG_TRUSTED_SCHEMA
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
#endif
    sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
    sqlite3_set_authorizer(db, read_only_authorizer, log);
}

const char *rl_log_refused(const rl_log *log) {
    return log && log->refused[0] ? log->refused : NULL;
}

void rl_log_clear_refused(rl_log *log) {
    if (log) log->refused[0] = '\0';
}

// How a reader opens the file. A WAL database opened SQLITE_OPEN_READONLY leaves -wal and -shm
// files behind (it cannot checkpoint and delete them on close), and cannot open at all where
// those cannot be created (a read-only directory or file system). So:
//   - writable directory and file: open read-write, made read-only by query_only and the
//     authorizer; closing the last connection then removes -wal and -shm as a writer's would;
//   - otherwise, when a non-empty -wal exists (a writer is running or was killed) try a plain
//     read-only open, which works when the -shm exists; else open with immutable=1 (SQLite
//     reads the file alone, creating and locking nothing; a -wal it cannot read is ignored, so
//     say so on stderr).
// RLPIPE_LOG_ASSUME_READONLY_DIR=1 in the environment treats the directory as not writable
// (tests, where running as root makes every directory writable).
static int dir_writable(const char *path) {
    const char *env = getenv("RLPIPE_LOG_ASSUME_READONLY_DIR");
    if (env && strcmp(env, "1") == 0) return 0;
    char *dir = rl_strdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int ok = access(dir, W_OK) == 0 && access(path, W_OK) == 0;
    free(dir);
    return ok;
}

static int wal_has_frames(const char *path) {
    size_t n = strlen(path) + 8;
    char *wal = rl_malloc(n);
    snprintf(wal, n, "%s-wal", path);
    struct stat st;
    int yes = stat(wal, &st) == 0 && st.st_size > 0;
    free(wal);
    return yes;
}

// path as a file: URI (so that ?immutable=1 can follow), with %, ? and # escaped.
static char *file_uri(const char *path, const char *query) {
    size_t n = strlen(path);
    char *u = rl_malloc(n * 3 + strlen(query) + 16);
    size_t k = (size_t)sprintf(u, "file:");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c == '%' || c == '?' || c == '#' || c < 0x20 || c >= 0x7f)
            k += (size_t)sprintf(u + k, "%%%02X", c);
        else
            u[k++] = (char)c;
    }
    sprintf(u + k, "%s", query);
    return u;
}

static int open_reader(rl_log *log, const char *path) {
    int rc;
    if (dir_writable(path))
        return sqlite3_open_v2(path, &log->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (wal_has_frames(path)) {
        rc = sqlite3_open_v2(path, &log->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc == SQLITE_OK && sqlite3_exec(log->db, "SELECT COUNT(*) FROM sqlite_master", NULL,
                                            NULL, NULL) == SQLITE_OK)
            return SQLITE_OK;
        sqlite3_close(log->db);
        log->db = NULL;
        fprintf(stderr,
                "rlpipe: warning: %s-wal holds changes that cannot be read without write access "
                "to the directory; showing the database file without them\n",
                path);
    }
    char *uri = file_uri(path, "?immutable=1");
    rc = sqlite3_open_v2(uri, &log->db,
                         SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
    free(uri);
    return rc;
}

static int open_log(rl_log **out, const char *path, int create, int readonly, rl_err *err) {
    *out = NULL;
    if (!path || !*path) return rl_fail(err, RL_EINPUT, "rollout log: empty path");
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno != ENOENT || !create)
            return rl_fail(err, RL_EINPUT, "%s: cannot open the rollout log: %s", path,
                           strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
        return rl_fail(err, RL_EINPUT, "%s: is a directory, not a rollout log", path);
    } else if (!S_ISREG(sb.st_mode)) {
        // SQLite would wait for ever reading a FIFO.
        return rl_fail(err, RL_EINPUT, "%s: not a regular file, not a rollout log", path);
    }

    rl_log *log = rl_calloc(1, sizeof *log);
    log->path = rl_strdup(path);
    log->readonly = readonly;
    int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    int orc = readonly ? open_reader(log, path) : sqlite3_open_v2(path, &log->db, flags, NULL);
    if (orc != SQLITE_OK) {
        rl_fail(err, RL_EINPUT, "%s: cannot open the rollout log: %s", path,
                log->db ? sqlite3_errmsg(log->db) : "out of memory");
        rl_log_close(log);
        return -1;
    }
    sqlite3_extended_result_codes(log->db, 1);
    rl_log_set_busy_timeout(log, RL_LOG_DEFAULT_BUSY_TIMEOUT_S, NULL);

    int ok;
    if (readonly) {
        ok = exec_sql(log, "PRAGMA query_only = 1", "opening read-only", err) == 0 &&
             check_or_init_schema(log, 0, err) == 0;
        if (ok) harden_reader(log);
    } else {
        // Check and (for a new file) create the schema under one write lock, so two processes
        // creating the same file at once cannot both initialise it. The journal mode changes
        // only after the file is known to be ours.
        int rc = sqlite3_exec(log->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            if ((rc & 0xff) == SQLITE_NOTADB)
                rl_fail(err, RL_EINPUT, "%s: not an rlpipe rollout log (not an SQLite database)",
                        path);
            else
                db_fail(log, err, RL_EINPUT, "cannot lock the database");
            rl_log_close(log);
            return -1;
        }
        ok = check_or_init_schema(log, create, err) == 0 &&
             exec_sql(log, "COMMIT", "creating the schema", err) == 0;
        if (!ok) sqlite3_exec(log->db, "ROLLBACK", NULL, NULL, NULL);
        ok = ok &&
             exec_sql(log,
                      "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                      " PRAGMA foreign_keys = ON;",
                      "setting WAL mode", err) == 0 &&
             prepare_writers(log, err) == 0;
    }
    if (!ok) {
        rl_log_close(log);
        return -1;
    }
    *out = log;
    return 0;
}

int rl_log_open(rl_log **out, const char *path, int create, rl_err *err) {
    return open_log(out, path, create, 0, err);
}

int rl_log_open_readonly(rl_log **out, const char *path, rl_err *err) {
    return open_log(out, path, 0, 1, err);
}

void rl_log_close(rl_log *log) {
    if (!log) return;
    if (log->db) {
        rl_log_abort_step(log);
        sqlite3_stmt *stmts[] = {log->begin,        log->commit,       log->rollback,
                                 log->insert_step,  log->update_stats, log->insert_rollout,
                                 log->insert_score, log->insert_eval,  log->insert_distill};
        for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) sqlite3_finalize(stmts[i]);
        sqlite3_close(log->db);
    }
    free(log->path);
    free(log);
}

// ---- runs -------------------------------------------------------------------------------------

static int need_writer(rl_log *log, const char *what, rl_err *err) {
    if (log->readonly)
        return rl_fail(err, RL_EINTERNAL, "%s: %s: the log is open read-only", log->path, what);
    return 0;
}

static int need_no_step(rl_log *log, const char *what, rl_err *err) {
    RL_TRY(need_writer(log, what, err));
    if (log->in_step)
        return rl_fail(err, RL_EINTERNAL, "%s: %s: step %d is still in progress", log->path, what,
                       log->step);
    return 0;
}

static int run_exists(rl_log *log, int64_t run_id, rl_err *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(log->db, "SELECT 1 FROM runs WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
        return db_fail(log, err, RL_EINTERNAL, "looking up a run");
    sqlite3_bind_int64(st, 1, run_id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE)
        return rl_fail(err, RL_EINPUT, "%s: no run with id %" PRId64, log->path, run_id);
    return db_fail(log, err, RL_EINTERNAL, "looking up a run");
}

int rl_log_begin_run(rl_log *log, const char *name, const char *config_yaml, uint64_t seed,
                     int64_t *run_id, rl_err *err) {
    RL_TRY(need_no_step(log, "begin_run", err));
    if (!name || !*name) return rl_fail(err, RL_EINPUT, "%s: a run needs a name", log->path);
    sqlite3_stmt *st = NULL;
    RL_TRY(prepare(log,
                   "INSERT INTO runs(name, status, seed, config_yaml, rlpipe_version, started_at)"
                   " VALUES (?1, 'running', ?2, ?3, ?4, " SQL_NOW ")",
                   &st, err));
    bind_text(st, 1, name);
    bind_seed(st, 2, seed);
    bind_text(st, 3, config_yaml);
    bind_text(st, 4, RLPIPE_VERSION);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT_UNIQUE)
        return rl_fail(err, RL_EINPUT, "%s: a run named '%s' already exists (resume it instead)",
                       log->path, name);
    if (rc != SQLITE_DONE) return db_fail(log, err, RL_EINTERNAL, "starting a run");
    if (run_id) *run_id = sqlite3_last_insert_rowid(log->db);
    return 0;
}

int rl_log_set_run_out_dir(rl_log *log, int64_t run_id, const char *out_dir, rl_err *err) {
    RL_TRY(need_writer(log, "set_run_out_dir", err));
    RL_TRY(run_exists(log, run_id, err));
    sqlite3_stmt *st = NULL;
    RL_TRY(prepare(log, "UPDATE runs SET out_dir = ?1 WHERE id = ?2", &st, err));
    bind_text(st, 1, out_dir);
    sqlite3_bind_int64(st, 2, run_id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_fail(log, err, RL_EINTERNAL, "setting out_dir");
}

int rl_log_find_run(rl_log *log, const char *name_or_id, int64_t *run_id, rl_err *err) {
    if (!name_or_id || !*name_or_id)
        return rl_fail(err, RL_EINPUT, "%s: empty run name", log->path);
    sqlite3_stmt *st = NULL;
    RL_TRY(prepare(log,
                   "SELECT id FROM runs WHERE name = ?1"
                   " UNION ALL SELECT id FROM runs WHERE CAST(id AS TEXT) = ?1"
                   " AND NOT EXISTS (SELECT 1 FROM runs WHERE name = ?1)",
                   &st, err));
    bind_text(st, 1, name_or_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *run_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE)
        return rl_fail(err, RL_EINPUT, "%s: no run named or numbered '%s'", log->path, name_or_id);
    return db_fail(log, err, RL_EINTERNAL, "looking up a run");
}

int rl_log_last_step(rl_log *log, int64_t run_id, int *step, rl_err *err) {
    RL_TRY(run_exists(log, run_id, err));
    sqlite3_stmt *st = NULL;
    RL_TRY(prepare(log, "SELECT MAX(step) FROM steps WHERE run_id = ?1", &st, err));
    sqlite3_bind_int64(st, 1, run_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *step = sqlite3_column_type(st, 0) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_fail(log, err, RL_EINTERNAL, "reading the last step");
}

int rl_log_finish_run(rl_log *log, int64_t run_id, const char *status, rl_err *err) {
    RL_TRY(need_writer(log, "finish_run", err));
    if (!is_one_of(status, RUN_STATUSES, 4))
        return rl_fail(err, RL_EINTERNAL,
                       "%s: run status '%s' is not running, finished, failed or interrupted",
                       log->path, status ? status : "(null)");
    RL_TRY(run_exists(log, run_id, err));
    sqlite3_stmt *st = NULL;
    RL_TRY(prepare(log,
                   "UPDATE runs SET status = ?1, finished_at = CASE WHEN ?1 = 'running' THEN NULL"
                   " ELSE " SQL_NOW " END WHERE id = ?2",
                   &st, err));
    bind_text(st, 1, status);
    sqlite3_bind_int64(st, 2, run_id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_fail(log, err, RL_EINTERNAL, "setting the run status");
}

// ---- one step, one transaction ------------------------------------------------------------------

// A failure inside a step: roll it back now so the caller cannot commit half a step.
static int step_fail(rl_log *log) {
    rl_log_abort_step(log);
    return -1;
}

static int need_step(rl_log *log, const char *what, rl_err *err) {
    RL_TRY(need_writer(log, what, err));
    if (!log->in_step)
        return rl_fail(err, RL_EINTERNAL, "%s: %s: no step in progress (begin_step first)",
                       log->path, what);
    return 0;
}

int rl_log_begin_step(rl_log *log, int64_t run_id, int step, rl_err *err) {
    RL_TRY(need_no_step(log, "begin_step", err));
    if (step < 0) return rl_fail(err, RL_EINTERNAL, "%s: negative step %d", log->path, step);
    if (step_once(log->begin) != SQLITE_DONE)
        return db_fail(log, err, RL_EINTERNAL, "beginning a step");
    log->in_step = 1;
    log->run_id = run_id;
    log->step = step;
    sqlite3_bind_int64(log->insert_step, 1, run_id);
    sqlite3_bind_int(log->insert_step, 2, step);
    int rc = step_once(log->insert_step);
    if (rc == SQLITE_DONE) return 0;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        rl_fail(err, RL_EINPUT,
                "%s: step %d of run %" PRId64 " is already logged (truncate_after to replace it)",
                log->path, step, run_id);
    else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        rl_fail(err, RL_EINPUT, "%s: no run with id %" PRId64, log->path, run_id);
    else
        db_fail(log, err, RL_EINTERNAL, "inserting a step");
    return step_fail(log);
}

int rl_log_step_stats(rl_log *log, const rl_step_stats *s, rl_err *err) {
    RL_TRY(need_step(log, "step_stats", err));
    if (check_json_object(log, s->extra_json, "steps.extra", err) != 0) return step_fail(log);
    sqlite3_stmt *st = log->update_stats;
    bind_text(st, 1, s->phase);
    bind_text(st, 2, s->extra_json);
    for (int i = 0; i < N_STAT_COLS; i++) {
        double x = *(const double *)((const char *)s + STAT_COLS[i].offset);
        if (STAT_COLS[i].integer)
            bind_int_from_real(st, i + 3, x);
        else
            bind_real(st, i + 3, x);
    }
    sqlite3_bind_int64(st, N_STAT_COLS + 3, log->run_id);
    sqlite3_bind_int(st, N_STAT_COLS + 4, log->step);
    if (step_once(st) != SQLITE_DONE) {
        db_fail(log, err, RL_EINTERNAL, "writing step statistics");
        return step_fail(log);
    }
    return 0;
}

int rl_log_rollout(rl_log *log, const rl_rollout_row *r, int64_t *rollout_id, rl_err *err) {
    RL_TRY(need_step(log, "rollout", err));
    if (!r->prompt || !r->completion || !r->finish_reason) {
        rl_fail(err, RL_EINTERNAL, "%s: a rollout needs prompt, completion and finish_reason",
                log->path);
        return step_fail(log);
    }
    sqlite3_stmt *st = log->insert_rollout;
    sqlite3_bind_int64(st, 1, log->run_id);
    sqlite3_bind_int(st, 2, log->step);
    sqlite3_bind_int(st, 3, r->group_id);
    sqlite3_bind_int(st, 4, r->sample_idx);
    sqlite3_bind_int64(st, 5, r->prompt_idx);
    bind_text(st, 6, r->task);
    bind_text(st, 7, r->prompt);
    bind_text(st, 8, r->completion);
    bind_text(st, 9, r->answer);
    sqlite3_bind_int(st, 10, r->n_tokens);
    if (r->n_prompt_tokens >= 0)
        sqlite3_bind_int(st, 11, r->n_prompt_tokens);
    else
        sqlite3_bind_null(st, 11);
    bind_text(st, 12, r->finish_reason);
    bind_real(st, 13, r->reward);
    bind_real(st, 14, r->advantage);
    bind_real(st, 15, r->sample_logprob_sum);
    if (step_once(st) != SQLITE_DONE) {
        db_fail(log, err, RL_EINTERNAL, "inserting a rollout");
        return step_fail(log);
    }
    if (rollout_id) *rollout_id = sqlite3_last_insert_rowid(log->db);
    return 0;
}

int rl_log_score(rl_log *log, int64_t rollout_id, const char *verifier, double weight, double score,
                 const char *status, const char *detail, rl_err *err) {
    RL_TRY(need_step(log, "score", err));
    if (!verifier || !*verifier || !is_one_of(status, SCORE_STATUSES, 4) || !isfinite(weight)) {
        rl_fail(err, RL_EINTERNAL,
                "%s: bad score row for rollout %" PRId64 " (verifier '%s', status '%s', weight %g)",
                log->path, rollout_id, verifier ? verifier : "(null)", status ? status : "(null)",
                weight);
        return step_fail(log);
    }
    sqlite3_stmt *st = log->insert_score;
    sqlite3_bind_int64(st, 1, rollout_id);
    bind_text(st, 2, verifier);
    sqlite3_bind_double(st, 3, weight);
    bind_real(st, 4, score);
    bind_text(st, 5, status);
    bind_text(st, 6, detail);
    int rc = step_once(st);
    if (rc == SQLITE_DONE) return 0;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        rl_fail(err, RL_EINTERNAL, "%s: rollout %" PRId64 " already has a '%s' score", log->path,
                rollout_id, verifier);
    else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        rl_fail(err, RL_EINTERNAL, "%s: score for unknown rollout %" PRId64, log->path, rollout_id);
    else
        db_fail(log, err, RL_EINTERNAL, "inserting a score");
    return step_fail(log);
}

int rl_log_commit_step(rl_log *log, rl_err *err) {
    RL_TRY(need_step(log, "commit_step", err));
    if (step_once(log->commit) != SQLITE_DONE) {
        db_fail(log, err, RL_EINTERNAL, "committing a step");
        return step_fail(log);
    }
    log->in_step = 0;
    return 0;
}

void rl_log_abort_step(rl_log *log) {
    if (!log || !log->in_step) return;
    // ROLLBACK can only fail when no transaction is open (SQLite already rolled back itself).
    if (step_once(log->rollback) != SQLITE_DONE && sqlite3_get_autocommit(log->db) == 0)
        sqlite3_exec(log->db, "ROLLBACK", NULL, NULL, NULL);
    log->in_step = 0;
}

// ---- evals, truncation ------------------------------------------------------------------------

// {"name": mean, ...}; a NaN mean becomes null. Returns a malloc'd string or NULL on failure.
static char *verifier_means_json(const rl_eval_row *e) {
    json_t *obj = json_object();
    for (int i = 0; i < e->n_verifiers; i++) {
        double m = e->verifier_means[i];
        json_t *v = isfinite(m) ? json_real(m) : json_null();
        if (!e->verifier_names[i] || json_object_set_new(obj, e->verifier_names[i], v) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    char *text = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(obj);
    return text;
}

int rl_log_distill_step(rl_log *log, const rl_distill_step_row *d, rl_err *err) {
    RL_TRY(need_step(log, "distill_step", err));
    sqlite3_stmt *st = log->insert_distill;
    sqlite3_bind_int64(st, 1, log->run_id);
    sqlite3_bind_int(st, 2, log->step);
    bind_real(st, 3, d->kl);
    bind_real(st, 4, d->tau_mean);
    bind_real(st, 5, d->tau_min);
    bind_real(st, 6, d->tau_max);
    bind_real(st, 7, d->teacher_entropy);
    bind_real(st, 8, d->student_entropy);
    sqlite3_bind_int64(st, 9, d->n_tokens);
    if (step_once(st) == SQLITE_DONE) return 0;
    db_fail(log, err, RL_EINTERNAL, "inserting a distill step");
    step_fail(log);
    return -1;
}

int rl_log_eval(rl_log *log, const rl_eval_row *e, rl_err *err) {
    RL_TRY(need_writer(log, "eval", err));
    if (!e->split || !*e->split || e->n < 0 || e->step < 0 || e->n_verifiers < 0 ||
        (e->n_verifiers > 0 && (!e->verifier_names || !e->verifier_means)))
        return rl_fail(err, RL_EINTERNAL, "%s: bad eval row (split, n, step or verifiers)",
                       log->path);
    RL_TRY(check_json_object(log, e->extra_json, "evals.extra", err));
    char *means = verifier_means_json(e);
    if (!means)
        return rl_fail(err, RL_EINTERNAL, "%s: eval: bad verifier name (NULL or not UTF-8)",
                       log->path);
    sqlite3_stmt *st = log->insert_eval;
    sqlite3_bind_int64(st, 1, e->run_id);
    sqlite3_bind_int(st, 2, e->step);
    bind_text(st, 3, e->split);
    sqlite3_bind_int(st, 4, e->n);
    if (e->k > 0)
        sqlite3_bind_int(st, 5, e->k);
    else
        sqlite3_bind_null(st, 5);
    bind_real(st, 6, e->temperature);
    bind_real(st, 7, e->pass_at_1);
    bind_real(st, 8, e->pass_at_k);
    bind_real(st, 9, e->accuracy_greedy);
    for (int b = 0; b < 4; b++) {
        double m = NAN;
        for (int i = 0; i < e->n_verifiers; i++)
            if (e->verifier_names[i] && strcmp(e->verifier_names[i], BUILTIN_VERIFIERS[b]) == 0)
                m = e->verifier_means[i];
        bind_real(st, 10 + b, m);
    }
    bind_text(st, 14, means);
    bind_real(st, 15, e->len_mean);
    bind_real(st, 16, e->seconds);
    bind_text(st, 17, e->extra_json);
    bind_real(st, 18, e->perplexity);
    int rc = step_once(st);
    free(means);
    if (rc == SQLITE_DONE) return 0;
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        rl_fail(err, RL_EINPUT, "%s: eval for unknown run %" PRId64, log->path, e->run_id);
    else
        db_fail(log, err, RL_EINTERNAL, "inserting an eval");
    if (log->in_step) step_fail(log);
    return -1;
}

int rl_log_truncate_after(rl_log *log, int64_t run_id, int after_step, rl_err *err) {
    RL_TRY(need_no_step(log, "truncate_after", err));
    RL_TRY(run_exists(log, run_id, err));
    static const char *const deletes[] = {
        "DELETE FROM scores WHERE rollout_id IN"
        " (SELECT id FROM rollouts WHERE run_id = ?1 AND step > ?2)",
        "DELETE FROM rollouts WHERE run_id = ?1 AND step > ?2",
        "DELETE FROM distill_steps WHERE run_id = ?1 AND step > ?2",
        "DELETE FROM steps WHERE run_id = ?1 AND step > ?2",
        "DELETE FROM evals WHERE run_id = ?1 AND step > ?2",
    };
    if (step_once(log->begin) != SQLITE_DONE)
        return db_fail(log, err, RL_EINTERNAL, "truncating the log");
    for (size_t i = 0; i < sizeof deletes / sizeof deletes[0]; i++) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(log->db, deletes[i], -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, run_id);
            sqlite3_bind_int(st, 2, after_step);
            rc = sqlite3_step(st);
        }
        if (rc != SQLITE_DONE) db_fail(log, err, RL_EINTERNAL, "truncating the log");
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            step_once(log->rollback);
            return -1;
        }
    }
    if (step_once(log->commit) != SQLITE_DONE) {
        db_fail(log, err, RL_EINTERNAL, "truncating the log");
        step_once(log->rollback);
        return -1;
    }
    return 0;
}

// ---- showing logged text ------------------------------------------------------------------------

size_t rl_log_utf8_len(const unsigned char *s, size_t n) {
    if (s[0] < 0x80) return 1;
    size_t len = s[0] >= 0xC2 && s[0] <= 0xDF   ? 2
                 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
                 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4
                                                : 0;
    if (len == 0 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (len == 3 && s[0] == 0xE0 && s[1] < 0xA0) return 0;  // overlong
    if (len == 3 && s[0] == 0xED && s[1] >= 0xA0) return 0; // surrogate
    if (len == 4 && s[0] == 0xF0 && s[1] < 0x90) return 0;  // overlong
    if (len == 4 && s[0] == 0xF4 && s[1] >= 0x90) return 0; // above U+10FFFF
    return len;
}
