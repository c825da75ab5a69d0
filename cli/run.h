/*
 * run: everything one run command (sft, train, eval, sample) sets up from a validated config —
 * backend, tokenizer, policy model, prompt source, verifiers, output directory and rollout log —
 * and the pieces those commands share: rendering a task into prompt tokens, scoring completions,
 * and the held-out evaluation.
 *
 * Order matters for "bad input loses nothing": everything that can fail on bad input (config,
 * tokenizer, model files, dataset, verifier options) is loaded before rl_run_open_output creates
 * the run directory or touches the log.
 *
 * Owns: every object it creates (model, tokenizer, verifiers, engine, log handle) and the run
 * directory's lock (released by rl_run_free).
 */
#ifndef RL_RUN_H
#define RL_RUN_H

#include <stdint.h>

#include "cli/config.h"
#include "cli/progress.h"
#include "kernels/backend.h"
#include "kernels/comm.h"
#include "policy/model.h"
#include "policy/tokenizer.h"
#include "reward/reward.h"
#include "rollout/batch.h"
#include "rollout/dataset.h"
#include "rollout/engine.h"
#include "rollout/log.h"
#include "rollout/tasks.h"

// rl_prompt (one task as posed to the model) and rl_batch live in rollout/batch.h.

typedef struct rl_run {
    rl_config *cfg; // not owned
    // The process group (owned): single, or with RL_RUN_PARALLEL the mpirun/srun job (MPI, NCCL
    // for a CUDA backend). Rank 0 alone writes the run directory, log and checkpoints.
    rl_comm *comm;
    const rl_backend *be;
    rl_tokenizer *tok;
    rl_model *model;
    rl_chat_template tmpl;
    int32_t stop_ids[4];
    int n_stop_ids;
    int vocab_limit; // ids the sampler may draw (the tokenizer's size)

    int use_tasks; // 1: built-in procedural tasks; 0: the JSONL dataset
    rl_task_params task_params;
    rl_taskset tasks;
    rl_dataset data;
    rl_dataset sft_pairs; // prompt/response pairs for SFT (sft.source: jsonl)
    int have_sft_pairs;

    rl_reward *reward;
    int n_verifiers;

    rl_engine *engine;
    int engine_slots, engine_len;

    rl_log *log;
    int64_t run_id; // the run row steps and evals are logged to (-1 = none)
    int verbose;

    // What the command will write, checked by rl_run_open_output before anything is created.
    const char *model_outputs[4]; // model directories it saves (not owned)
    int n_model_outputs;
    int writes_checkpoints; // checkpoint.dir (and its reference/ when algorithm.kl_coef > 0)
    int lock_fd;            // the run directory's lock (valid when have_lock)
    int have_lock;
} rl_run;

enum { RL_RUN_MODEL = 1, RL_RUN_DATA = 2, RL_RUN_REWARD = 4, RL_RUN_SFT = 8, RL_RUN_PARALLEL = 16 };

// Loads what `what` asks for from a finished config (rl_config_finish). Creates nothing on disk.
// With RL_RUN_PARALLEL the communicator comes first (rl_comm_open: MPI when launched by
// mpirun/srun) and a CUDA backend runs on the GPU of the rank's local rank.
// model_dir (may be NULL) overrides model.path.
int rl_run_init(rl_run *r, rl_config *cfg, unsigned what, const char *model_dir, rl_err *err);

// Declares a model directory the command will save to (kept as a pointer: it must outlive r).
void rl_run_add_model_output(rl_run *r, const char *dir);

// Off rank 0 only catches the stop signals: rank 0 alone writes the run directory. On rank 0:
// opens the run's output, in this order, so that bad paths fail before anything is written and
// two processes never write one run directory:
//   1. checks every output path (run.out_dir, logging.db, the declared model directories, and
//      checkpoint.dir with reference/ when writes_checkpoints): a path that exists as the wrong
//      kind (a file for a directory, a non-model directory where a model is saved, ...) is
//      RL_EINPUT naming it;
//   2. creates run.out_dir and takes an exclusive lock on <out_dir>/rlpipe.lock (flock; the
//      file holds the holder's pid), held until rl_run_free: a second process is RL_EINPUT
//      naming the holder's pid;
//   3. removes what killed saves of this run left: <out_dir>/{sft,final}.tmp-XXXXXX and
//      .old-XXXXXX, the same beside each declared model directory, and
//      <checkpoint.dir>/.tmp-step-NNNNNNNN-XXXXXX, reference.tmp-XXXXXX (only those names);
//   4. opens the log (logging.db) with logging.busy_timeout_s, and catches SIGINT and SIGTERM
//      (see rl_run_stop_signal).
int rl_run_open_output(rl_run *r, rl_err *err);

// The signal (SIGINT or SIGTERM) that asked a run command to stop, or 0. The first such signal
// only raises this flag (training loops stop after the step in flight, saving a checkpoint);
// a second one ends the process at once. Process-wide: signals are.
int rl_run_stop_signal(void);
// RL_EINPUT-free failure for a stop request: "interrupted by SIGTERM <what>".
int rl_run_fail_stopped(rl_err *err, const char *what);

// Records the run row's final status: finished (ok), interrupted (a stop signal came) or
// failed, waiting up to max(logging.busy_timeout_s, 10 s) for the log's write lock; a failure to
// record it is a warning on stderr.
void rl_run_record_status(rl_run *r, int ok);

// Starts the run row `name` in the log (status running) and makes it r->run_id; with resume, an
// existing row of that name is reopened instead. A fresh start over an existing row is RL_EINPUT.
// Without a log (ranks other than 0) it does nothing.
int rl_run_start(rl_run *r, const char *name, int resume, rl_err *err);

void rl_run_free(rl_run *r);

// Ends a command's run: the run row (when one was started) gets its final status
// (rl_run_record_status), then r is freed (the lock released).
void rl_run_end(rl_run *r, int ok);

// Saves r->model to dir in model.save_dtype, with the config's tokenizer (byte or tokenizer.path).
// Data parallel: rank 0 saves, and every rank returns once the directory is complete.
int rl_run_save_model(const rl_run *r, const char *dir, rl_err *err);

// The newest trained model of this config's out_dir: <out_dir>/final, else <out_dir>/sft. Returns
// 1 and fills buf when one exists (a directory with a config.json), 0 otherwise.
int rl_run_default_model(const rl_config *cfg, char *buf, size_t size);

// The n-th training / held-out task with its rendered prompt. `sample` picks the teacher's
// independent draw for SFT responses (procedural tasks only).
int rl_run_train_prompt(rl_run *r, uint64_t index, uint64_t sample, rl_prompt *out, rl_err *err);
int rl_run_heldout_prompt(rl_run *r, int index, rl_prompt *out, rl_err *err);
int rl_run_n_heldout(const rl_run *r);
// Renders problem text through prompt_template and the chat template, and tokenises it.
int rl_run_render(rl_run *r, rl_prompt *p, rl_err *err);

// What samples are drawn for. Each purpose has its own seed offset, so an evaluation never draws
// the numbers a training rollout used.
typedef enum rl_gen_purpose {
    RL_GEN_ROLLOUT = 0,
    RL_GEN_EVAL = 1,
    RL_GEN_SAMPLE = 2
} rl_gen_purpose;

// Generation parameters: rollouts use the rollout section; evaluation and `sample` use the given
// temperature (0 = greedy) with eval.top_p and eval.max_new_tokens. Stop tokens come from the
// chat template, stop strings from rollout.stop.
rl_gen_params rl_run_gen_params(const rl_run *r, rl_gen_purpose purpose, double temperature);
// The completion budget of a purpose: rollout.max_new_tokens, or eval.max_new_tokens (0 = the same).
int rl_run_max_new_tokens(const rl_run *r, rl_gen_purpose purpose);

// A sampling engine large enough for `slots` sequences of the configured lengths (reused).
int rl_run_engine(rl_run *r, int slots, int max_new_tokens, rl_err *err);

// Scores samples [s0, s0 + n) of b (sample j answers b->prompts[b->group[j]]), writing their
// verdicts (rl_vresult[n_verifiers] each; b->verdict_bytes must be that size), reward and skipped.
int rl_run_score(rl_run *r, rl_batch *b, int s0, int n, int max_new_tokens, rl_err *err);

// Held-out evaluation: k samples per problem at eval.temperature / top_p.
typedef struct rl_eval_result {
    int n, k;
    double temperature;
    double pass_at_1; // mean share of correct samples per problem
    double pass_at_k; // share of problems with at least one correct sample
    double verifier_means[16];
    double reward_mean;
    double len_mean;
    double seconds;
    double tokens_per_s;
} rl_eval_result;

// Data parallel: each rank evaluates a contiguous share of the problems and the sums are reduced,
// so every rank gets the whole result (a collective).
int rl_run_eval(rl_run *r, int k, double temperature, int n_problems, rl_eval_result *out,
                rl_err *err);
// Prints the evaluation as a table row (with a header when header = 1).
void rl_eval_print(const rl_run *r, const char *label, const rl_eval_result *e, int header,
                   FILE *out);
// Writes it to the evals table (split "heldout").
int rl_eval_log(rl_run *r, int step, const rl_eval_result *e, rl_err *err);

#endif
