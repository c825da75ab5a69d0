/*
 * log: the SQLite rollout log. One database file per run directory holds the run (config text,
 * seed, status), every step's statistics, every rollout (prompt, completion, reward, advantage),
 * every verifier score of every rollout and the evaluations, so a person can query training with
 * `sqlite3`, pandas or `rlpipe logs`. The schema (tables, views, version) is defined in log.c,
 * with one line of documentation per column next to it, and rollout/SCHEMA.md is generated from
 * them (log_doc.h); it is versioned with PRAGMA user_version and tagged with PRAGMA
 * application_id, so a newer or foreign file is refused with a clear error.
 *
 * Writing one step is ONE transaction:
 *
 *     rl_log_begin_step(log, run_id, step, &err);          // BEGIN; the steps row appears
 *     for each sample: rl_log_rollout(...) then rl_log_score(...) per verifier;
 *     rl_log_step_stats(log, &stats, &err);                // any time inside the step
 *     rl_log_commit_step(log, &err);                       // COMMIT
 *
 * A process killed at any moment leaves every committed step intact and no trace of the step in
 * flight (WAL mode, synchronous=NORMAL: durable against process crashes; a power loss may lose the
 * last few commits but never corrupts the file). When any call inside a step fails, the library
 * rolls the step back at once; rl_log_abort_step() is then a harmless no-op.
 *
 * Resuming: reopen the file, rl_log_find_run() by name or id, rl_log_truncate_after() the last
 * checkpointed step (rows logged after it are deleted, so re-running those steps replaces rather
 * than duplicates them), rl_log_finish_run(.., "running") to mark it live again.
 *
 * Threading: an rl_log handle belongs to one thread at a time (the training loop's); it is not
 * safe to call concurrently. Other threads or processes that want to read open their own handle
 * (rl_log_open_readonly); WAL lets them read committed steps while a step is being written.
 *
 * Numbers: in the row structs a NaN double means "not measured" and is stored as SQL NULL.
 * Integer-valued statistics (len_max, n_rollouts, ...) are doubles for that reason and are stored
 * as INTEGER.
 *
 * Owns: the sqlite3 connection and its prepared statements (released by rl_log_close). Every
 * string passed in is copied by SQLite before the call returns.
 */
#ifndef RL_ROLLOUT_LOG_H
#define RL_ROLLOUT_LOG_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/rl_error.h"

// PRAGMA user_version of files this code writes (2 = 1 + distill_steps, evals.perplexity;
// version-1 files are upgraded when opened to write)
#define RL_LOG_SCHEMA_VERSION         2
#define RL_LOG_APPLICATION_ID         0x726C706C // PRAGMA application_id: 'rlpl'
#define RL_LOG_DEFAULT_BUSY_TIMEOUT_S 60.0       // waiting for another connection's write lock

typedef struct rl_log rl_log;
struct sqlite3;

// Statistics of one step (one row of `steps`). Start from rl_step_stats_init (everything NULL).
typedef struct rl_step_stats {
    const char *phase;     // "sft" or "rl" (NULL = unknown)
    double loss;           // the optimised objective (policy-gradient surrogate + KL, or SFT CE)
    double kl;             // mean per-token KL to the reference policy
    double entropy;        // mean per-token entropy of the policy on the sampled tokens
    double clip_frac;      // fraction of tokens whose ratio was clipped
    double grad_norm;      // global gradient norm before clipping
    double lr;             // learning rate used for this update
    double reward_mean;    // mean total reward over the step's rollouts
    double reward_std;     // its standard deviation
    double accuracy;       // mean score of the accuracy verifier
    double len_mean;       // mean completion length in tokens
    double len_max;        // longest completion in tokens (integer)
    double truncated_frac; // fraction of completions stopped by the token budget
    double n_rollouts;     // rollouts generated this step (integer)
    double n_groups_kept;  // prompt groups with non-zero advantage used in the update (integer)
    double nonfinite;      // 1 if the update was skipped for a non-finite loss/gradient (0/1)
    double tokens_per_s;   // generation throughput (completion tokens per second)
    double train_tokens_per_s; // update throughput (tokens through forward+backward per second)
    double t_rollout;          // seconds spent generating
    double t_verify;           // seconds spent scoring
    double t_update;           // seconds spent in the policy update
    double t_total;            // seconds for the whole step
    const char *extra_json;    // a JSON object with anything else, or NULL
} rl_step_stats;

// One rollout (one row of `rollouts`); run and step are the step in progress.
typedef struct rl_rollout_row {
    int64_t prompt_idx;        // index of the prompt in its source (dataset row, generator counter)
    int group_id;              // the prompt's group within this step (0..n_groups-1)
    int sample_idx;            // which of the group's samples (0..G-1)
    const char *task;          // task family ("arith", "code", a dataset name) or NULL
    const char *prompt;        // the prompt text (before the chat template)
    const char *completion;    // the decoded completion
    const char *answer;        // the reference answer (or tests summary) or NULL
    int n_tokens;              // completion length in tokens
    int n_prompt_tokens;       // prompt length in tokens, or -1 when unknown (NULL)
    const char *finish_reason; // "stop" (EOS or stop string) or "length" (token budget)
    double reward;             // total reward (NaN = NULL)
    double advantage;          // group-relative advantage (NaN = NULL)
    double
        sample_logprob_sum; // sum of the sampled tokens' log-probs under the sampler (NaN = NULL)
} rl_rollout_row;

// One evaluation (one row of `evals`, unique per run, step and split: logging it again replaces).
typedef struct rl_eval_row {
    int64_t run_id;
    int step;                          // training steps completed when the policy was evaluated
    const char *split;                 // "heldout", "train", a dataset name
    int n;                             // prompts evaluated
    int k;                             // samples per prompt (<= 0: NULL)
    double temperature;                // sampling temperature (NaN = NULL)
    double pass_at_1;                  // unbiased pass@1 estimate over the k samples
    double pass_at_k;                  // unbiased pass@k estimate
    double accuracy_greedy;            // accuracy of greedy decoding (NaN = not measured)
    double len_mean;                   // mean completion length in tokens
    double seconds;                    // wall time of the evaluation
    const char *const *verifier_names; // [n_verifiers] verifier names ...
    const double *verifier_means;      // [n_verifiers] ... and their mean scores
    int n_verifiers;
    const char *extra_json; // a JSON object with anything else, or NULL
    double perplexity; // held-out perplexity (distillation: of teacher-written text; NaN = NULL)
} rl_eval_row;

// One distillation step (one row of `distill_steps`, schema version 2); run and step are the
// step in progress.
typedef struct rl_distill_step_row {
    double kl;       // mean per-token loss tau^2 KL
    double tau_mean; // mean temperature over the step's tokens
    double tau_min, tau_max;
    double teacher_entropy; // mean teacher entropy (nats, temperature 1)
    double student_entropy; // mean student entropy (nats, temperature 1)
    int64_t n_tokens;       // tokens distilled
} rl_distill_step_row;

// Everything NaN / NULL / -1, so only measured fields need to be set.
void rl_step_stats_init(rl_step_stats *s);
void rl_rollout_row_init(rl_rollout_row *r);
void rl_eval_row_init(rl_eval_row *e);

// Opens (create=1: creates when missing, with the schema) the log at path for writing.
// A missing file with create=0, a non-SQLite file, a foreign SQLite file or a newer schema
// version is RL_EINPUT naming the file.
int rl_log_open(rl_log **out, const char *path, int create, rl_err *err);
// Opens an existing log for reading; same checks. The connection is read-only by construction:
// query_only, defensive mode, no ATTACH, no extensions, the FTS3 tokenizer function off, and an
// authorizer that refuses at prepare time every statement that is not a read (writes, schema
// changes, transactions, SAVEPOINT, ATTACH, pragmas other than read-only ones such as
// user_version or table_info, functions outside the built-in read set: fts3_tokenizer,
// load_extension, readfile, ...); rl_log_refused() then says what was refused. No -wal / -shm
// file is left behind: in a writable directory the file is opened read-write (closing the last
// connection removes them); in a read-only directory or file system it is opened with
// immutable=1 (or plain read-only when a live writer's -wal and -shm exist).
int rl_log_open_readonly(rl_log **out, const char *path, rl_err *err);
// What a reader's authorizer refused last ("PRAGMA writable_schema", "the function
// fts3_tokenizer", ...), or NULL; rl_log_clear_refused forgets it.
const char *rl_log_refused(const rl_log *log);
void rl_log_clear_refused(rl_log *log);

// How long a statement waits for another connection's write lock before failing with
// "database is locked" (retrying with exponential backoff; default RL_LOG_DEFAULT_BUSY_TIMEOUT_S).
// When stop is not NULL the wait ends early once *stop is non-zero (a signal handler's flag).
void rl_log_set_busy_timeout(rl_log *log, double seconds, const volatile sig_atomic_t *stop);
// Closes the connection (rolls back a step still in progress). NULL is fine.
void rl_log_close(rl_log *log);

// The underlying connection, for queries (the CLI); the handle keeps ownership.
struct sqlite3 *rl_log_sqlite(rl_log *log);
const char *rl_log_path(const rl_log *log);

// Starts a new run with status 'running'. Names are unique within a file (RL_EINPUT if taken).
// runs.seed holds the seed's 64 bits as a signed integer (a seed >= 2^63 reads back negative).
int rl_log_begin_run(rl_log *log, const char *name, const char *config_yaml, uint64_t seed,
                     int64_t *run_id, rl_err *err);
// Records the run's output directory (optional).
int rl_log_set_run_out_dir(rl_log *log, int64_t run_id, const char *out_dir, rl_err *err);
// Finds a run by exact name, or else by decimal id. RL_EINPUT when there is none.
int rl_log_find_run(rl_log *log, const char *name_or_id, int64_t *run_id, rl_err *err);
// The run's last logged step in *step, or -1 when it has none.
int rl_log_last_step(rl_log *log, int64_t run_id, int *step, rl_err *err);
// Sets the run's status: "running" (clears finished_at: a resumed run), "finished", "failed" or
// "interrupted" (set finished_at to now).
int rl_log_finish_run(rl_log *log, int64_t run_id, const char *status, rl_err *err);

// Opens the transaction of one step and inserts its steps row. RL_EINPUT if that step is already
// logged (truncate first when resuming).
int rl_log_begin_step(rl_log *log, int64_t run_id, int step, rl_err *err);
// Sets the step's statistics (may be called again; the last call wins).
int rl_log_step_stats(rl_log *log, const rl_step_stats *s, rl_err *err);
// Adds one rollout to the step; *rollout_id (may be NULL) receives its id for rl_log_score.
int rl_log_rollout(rl_log *log, const rl_rollout_row *r, int64_t *rollout_id, rl_err *err);
// Adds one verifier's verdict on a rollout of this step. status: "ok", "skipped", "error",
// "timeout". detail may be NULL.
int rl_log_score(rl_log *log, int64_t rollout_id, const char *verifier, double weight, double score,
                 const char *status, const char *detail, rl_err *err);
// Commits the step. On failure nothing of the step is kept.
int rl_log_commit_step(rl_log *log, rl_err *err);
// Discards the step in progress (no-op when none).
void rl_log_abort_step(rl_log *log);

// Writes one evaluation (its own transaction, or part of the step in progress if there is one).
int rl_log_eval(rl_log *log, const rl_eval_row *e, rl_err *err);
// Inserts the distill_steps row of the step in progress (after rl_log_begin_step).
int rl_log_distill_step(rl_log *log, const rl_distill_step_row *d, rl_err *err);

// Deletes the run's steps, rollouts, scores and evals with step > after_step (-1: all), in one
// transaction. Not allowed inside a step.
int rl_log_truncate_after(rl_log *log, int64_t run_id, int after_step, rl_err *err);

// ---- showing logged text ----------------------------------------------------------------------
// Logged text (completions, prompts, details) is whatever the model and verifiers wrote, not
// necessarily UTF-8. Length of the valid UTF-8 sequence at s (n >= 1 bytes left), or 0 when the
// byte starts none (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t rl_log_utf8_len(const unsigned char *s, size_t n);

#endif
