/*
 * config: the typed run configuration of rlpipe (one YAML file per run) and its schema.
 *
 * One struct, rl_config, holds every knob of a run in sections: run, model, tokenizer, data,
 * rollout, reward, algorithm, sft, eval, logging, checkpoint. One table (cli/config_schema.c)
 * describes every key: its dotted path, type, default, allowed range or values, where it lives in
 * the struct and a one-line doc. Everything else is driven by that table: defaults, loading YAML
 * (libyaml), `--set key=value` overrides, the effective-YAML dump, the equality check and the
 * Markdown key reference (configs/README.md). Adding a key = one table line + one struct field.
 *
 * Errors are one line and name the key path and where the value came from:
 *     rollout.temperature: expected a number in [0, 10], got "hot" at configs/x.yaml:12:16
 *     rollout.temprature: unknown key; did you mean rollout.temperature? at configs/x.yaml:12:3
 *     --set rollout.temperature=hot: expected a number in [0, 10], got "hot"
 * Unknown keys, duplicate keys, wrong node kinds, bad YAML, out-of-range values are all RL_EINPUT.
 *
 * Typical use (what a run command does before it creates anything on disk):
 *     rl_config c;
 *     if (rl_config_load(&c, path, &err) || rl_config_set(&c, "rollout.temperature=0.7", &err) ||
 *         rl_config_finish(&c, &err)) { ...report...; }
 *     ... use c ...
 *     rl_config_free(&c);   // always, also after a failure
 *
 * Owns: every string, list and verifier spec inside an rl_config (rl_config_free releases them).
 * The schema table is constant.
 */
#ifndef RL_CONFIG_H
#define RL_CONFIG_H

#include "kernels/rl_error.h"
#include "reward/spec.h"

#include <stddef.h>
#include <stdio.h>

// ---- value types used in the struct ----------------------------------------------------------

typedef struct rl_strlist {
    char **v; // [n] owned strings
    int n;
} rl_strlist;

typedef struct rl_numlist {
    double *v; // [n]
    int n;
} rl_numlist;

typedef struct rl_verifier_list {
    rl_verifier_spec *v; // [n] owned specs (rl_verifier_spec_free each)
    int n;
} rl_verifier_list;

// ---- enums: the order matches the values string of the key in the schema table ----------------

enum { RL_CFG_CPU, RL_CFG_CUDA };                                // run.device
enum { RL_CFG_F32, RL_CFG_BF16 };                                // model.save_dtype
enum { RL_CFG_TOK_BYTE, RL_CFG_TOK_HF };                         // tokenizer.kind
enum { RL_CFG_CHAT_PLAIN, RL_CFG_CHAT_CHATML, RL_CFG_CHAT_R1 };  // tokenizer.chat_template
enum { RL_CFG_DATA_TASKS, RL_CFG_DATA_JSONL };                   // data.source
enum { RL_CFG_BAD_SKIP, RL_CFG_BAD_FAIL };                       // data.on_bad_line
enum { RL_CFG_EXTRACT_BOXED, RL_CFG_EXTRACT_AUTO };              // reward.extract
enum { RL_CFG_LR_CONSTANT, RL_CFG_LR_COSINE, RL_CFG_LR_LINEAR }; // *.lr_schedule
enum { RL_CFG_ADV_GRPO, RL_CFG_ADV_DRGRPO, RL_CFG_ADV_BATCH_STD, RL_CFG_ADV_RLOO }; // advantage
enum { RL_CFG_KL_K1, RL_CFG_KL_K2, RL_CFG_KL_K3 }; // algorithm.kl_estimator
enum { RL_CFG_AGG_TOKEN_MEAN, RL_CFG_AGG_SEQ_MEAN_TOKEN_MEAN, RL_CFG_AGG_DR_GRPO }; // loss_agg
enum { RL_CFG_OVERLONG_NONE, RL_CFG_OVERLONG_MASK, RL_CFG_OVERLONG_PENALTY }; // algorithm.overlong
enum { RL_CFG_SFT_TEACHER, RL_CFG_SFT_JSONL };                                // sft.source
enum { RL_CFG_PROGRESS_AUTO, RL_CFG_PROGRESS_ALWAYS, RL_CFG_PROGRESS_NEVER }; // logging.progress
enum { RL_CFG_DISTILL_TEACHER, RL_CFG_DISTILL_DATASET, RL_CFG_DISTILL_ON_POLICY }; // distill.source
enum { RL_CFG_PREC_F32, RL_CFG_PREC_BF16 };                                        // run.precision
enum { RL_CFG_RECOMPUTE_NONE, RL_CFG_RECOMPUTE_LAYER }; // train.recompute
enum {
    RL_CFG_INVARIANT_AUTO,
    RL_CFG_INVARIANT_TRUE,
    RL_CFG_INVARIANT_FALSE
}; // rollout.batch_invariant
// distill.kl, distill.tau, distill.tau_decay: the RL_DISTILL_* values of policy/distill.h

// ---- the config ------------------------------------------------------------------------------
// Bools are int 0/1, enums are int (values above), strings are never NULL ("" = unset).

typedef struct rl_cfg_run {
    char *name;    // run name; only letters, digits, '.', '_', '-'
    char *out_dir; // "" -> runs/<name> (filled by rl_config_finish)
    int seed;
    int device;    // RL_CFG_CPU / RL_CFG_CUDA
    int threads;   // 0 = all cores
    int precision; // RL_CFG_PREC_F32 / RL_CFG_PREC_BF16 (weights and activations)
} rl_cfg_run;

typedef struct rl_cfg_model {
    char *path; // HF-style directory; "" = initialise from scratch with the shape below
    int hidden_size;
    int num_hidden_layers;
    int num_attention_heads;
    int num_key_value_heads;
    int intermediate_size;
    double rope_theta;
    double rms_norm_eps;
    int max_position_embeddings;
    int tie_word_embeddings;
    int use_sliding_window;
    int sliding_window;
    int max_window_layers;
    double init_std;
    int save_dtype; // RL_CFG_F32 / RL_CFG_BF16
} rl_cfg_model;

typedef struct rl_cfg_tokenizer {
    int kind;          // RL_CFG_TOK_*
    char *path;        // "" -> model.path when kind is hf (filled by rl_config_finish)
    int chat_template; // RL_CFG_CHAT_*
} rl_cfg_tokenizer;

typedef struct rl_cfg_arith {
    int min_ops, max_ops, max_operand;
    int allow_negative;
    int max_value; // 0 = no limit
} rl_cfg_arith;

typedef struct rl_cfg_deriv {
    int max_degree, max_coef, max_x;
} rl_cfg_deriv;

typedef struct rl_cfg_teacher {
    double error_rate;
    rl_strlist error_kinds; // subset of sign, carry, copy
} rl_cfg_teacher;

typedef struct rl_cfg_data {
    int source;              // RL_CFG_DATA_*
    rl_strlist tasks;        // built-in task generators: arith, deriv
    rl_numlist task_weights; // [tasks.n] or empty = equal
    char *train_path;
    char *heldout_path;
    char *split_key;
    double heldout_fraction;
    int heldout_size;
    int on_bad_line;       // RL_CFG_BAD_*
    char *prompt_template; // contains "{problem}"
    char *system_prompt;
    rl_cfg_arith arith;
    rl_cfg_deriv deriv;
    rl_cfg_teacher teacher;
} rl_cfg_data;

typedef struct rl_cfg_rollout {
    int prompts_per_step;
    int group_size;
    double temperature;
    double top_p;
    int top_k;
    double min_p;
    int max_new_tokens;
    rl_strlist stop;
    int greedy;
    double kv_cache_mb;            // KV pool size; 0: every slot can hold its full length
    double gpu_memory_utilization; // CUDA: KV pool = this fraction of free device memory
    int prefill_chunk;             // prompt tokens per engine step
    int cuda_graphs;               // CUDA: decode steps as CUDA graphs (one per batch bucket)
    int batch_invariant;           // RL_CFG_INVARIANT_*
} rl_cfg_rollout;

typedef struct rl_cfg_reward {
    rl_verifier_list verifiers;
    int extract; // RL_CFG_EXTRACT_*
    int threads;
} rl_cfg_reward;

typedef struct rl_cfg_algorithm {
    int steps;
    double time_budget_s;
    double lr;
    int lr_schedule; // RL_CFG_LR_*
    int warmup_steps;
    double min_lr_ratio;
    double weight_decay;
    double beta1, beta2, adam_eps;
    double grad_clip;
    int advantage; // RL_CFG_ADV_*
    double adv_eps;
    double clip_low, clip_high;
    double dual_clip;
    double kl_coef;
    int kl_estimator; // RL_CFG_KL_*
    double entropy_coef;
    int loss_agg; // RL_CFG_AGG_*
    int loss_norm_tokens;
    int epochs;
    int minibatches;
    int overlong; // RL_CFG_OVERLONG_*
    int overlong_buffer;
    int dynamic_sampling;
    int dynamic_max_rounds;
    int max_nonfinite_steps;
} rl_cfg_algorithm;

typedef struct rl_cfg_sft {
    int enabled;
    int steps;
    double time_budget_s;
    int batch_size;
    double lr;
    int lr_schedule; // RL_CFG_LR_*
    int warmup_steps;
    double min_lr_ratio;
    double weight_decay;
    double beta1, beta2;
    double grad_clip;
    int source; // RL_CFG_SFT_*
    char *path;
    int eval_every;
} rl_cfg_sft;

typedef struct rl_cfg_distill {
    char *teacher; // teacher model directory
    int source;    // RL_CFG_DISTILL_*
    int examples;
    double teacher_temperature;
    int steps;
    int batch_size;
    double lr;
    int lr_schedule; // RL_CFG_LR_*
    int warmup_steps;
    double min_lr_ratio;
    double weight_decay;
    double beta1, beta2;
    double grad_clip;
    int kl;  // RL_DISTILL_KL_*
    int tau; // RL_DISTILL_TAU_*
    double tau_fixed;
    double tau_min, tau_max;
    double tau_start, tau_end;
    int tau_decay; // RL_DISTILL_DECAY_*
    int cache_topk;
    char *cache_path; // "" -> <out_dir>/teacher_topk.bin (filled by rl_config_finish)
    int eval_every;
    int eval_n;
} rl_cfg_distill;

typedef struct rl_cfg_eval {
    int every;
    int n;
    int k;
    double temperature;
    double top_p;
    int max_new_tokens;
    int at_start;
} rl_cfg_eval;

typedef struct rl_cfg_logging {
    char *db;     // "" -> <out_dir>/rollouts.db (filled by rl_config_finish)
    int progress; // RL_CFG_PROGRESS_*
    int every;
    int log_rollouts;
    double busy_timeout_s; // wait this long for another connection's write lock
} rl_cfg_logging;

typedef struct rl_cfg_train {
    int recompute; // RL_CFG_RECOMPUTE_NONE / RL_CFG_RECOMPUTE_LAYER
} rl_cfg_train;

typedef struct rl_cfg_checkpoint {
    int every;
    int keep;
    char *dir; // "" -> <out_dir>/checkpoints (filled by rl_config_finish)
} rl_cfg_checkpoint;

typedef struct rl_cfg_parallel {
    int zero; // ZeRO stage, 0 or 1
} rl_cfg_parallel;

typedef struct rl_config {
    rl_cfg_run run;
    rl_cfg_model model;
    rl_cfg_tokenizer tokenizer;
    rl_cfg_data data;
    rl_cfg_rollout rollout;
    rl_cfg_reward reward;
    rl_cfg_algorithm algorithm;
    rl_cfg_sft sft;
    rl_cfg_distill distill;
    rl_cfg_eval eval;
    rl_cfg_logging logging;
    rl_cfg_checkpoint checkpoint;
    rl_cfg_train train;
    rl_cfg_parallel parallel;

    char *source_path; // the config file as given, or NULL (defaults only)
    char *source_text; // its text as read (for the run log), or NULL
    char **origin;     // [rl_config_n_keys()] where each key got its value: "file:line:col" or
                       // "--set k=v"; NULL entry = the default. Used by error messages.
} rl_config;

// ---- the schema --------------------------------------------------------------------------------

typedef enum rl_config_type {
    RL_CK_SECTION,  // a mapping of keys (run, data.arith, ...)
    RL_CK_INT,      // int
    RL_CK_NUM,      // double, finite
    RL_CK_BOOL,     // int 0/1; YAML true/false (also yes/no, on/off)
    RL_CK_STR,      // char *, never NULL
    RL_CK_ENUM,     // int index into the key's values
    RL_CK_STRLIST,  // rl_strlist; items restricted to the key's values when those are given
    RL_CK_NUMLIST,  // rl_numlist; every item within [min, max]
    RL_CK_VERIFIERS // rl_verifier_list (reward.verifiers)
} rl_config_type;

enum { RL_CK_MIN_OPEN = 1, RL_CK_MAX_OPEN = 2 }; // rl_config_key.flags: that bound is exclusive

typedef struct rl_config_key {
    const char *path;          // dotted key path, "rollout.temperature"
    int type;                  // rl_config_type
    size_t offset;             // offsetof(rl_config, field); 0 for sections
    const char *def;           // default as text: "1.0", "true", "cpu"; lists: items joined by '|'
    double min, max;           // allowed range of int / number values (and number-list items)
    int flags;                 // RL_CK_MIN_OPEN, RL_CK_MAX_OPEN
    const char *const *values; // NULL-terminated; enum: its names in C enum order; string list:
                               // the allowed items (NULL = any); verifiers: the gate names
    const char *doc;           // one line for the reference
} rl_config_key;

// The schema table, in reference order; *n receives its length. Sections precede their keys.
const rl_config_key *rl_config_keys(int *n);
int rl_config_n_keys(void);
// The table index of a key or section path, or -1.
int rl_config_find_key(const char *path);
// The name of value `v` of an enum key ("cuda" for run.device, RL_CFG_CUDA), or NULL if out of range.
const char *rl_config_enum_name(const char *path, int v);

// ---- the API -----------------------------------------------------------------------------------

// Fills every key with its default. Owns allocations: free with rl_config_free.
void rl_config_defaults(rl_config *c);

// Defaults, then the YAML file at path on top (path NULL = defaults only). Keeps the file's text
// in c->source_text. Call rl_config_free afterwards even when this fails.
int rl_config_load(rl_config *c, const char *path, rl_err *err);

// As rl_config_load, from text in memory; name is used in messages ("<embedded>", a file name).
int rl_config_load_text(rl_config *c, const char *text, size_t len, const char *name, rl_err *err);

// One command-line override "a.b=value" on top of c, with the same checks as the file. The value
// is a YAML scalar (lists in flow syntax: stop=["</s>","\n\n"], maps: data.arith={min_ops: 3});
// for string keys the text after '=' is taken literally unless it starts with a quote.
int rl_config_set(rl_config *c, const char *assignment, rl_err *err);

// Cross-field checks (head counts divide, paths required by a source or kind, ...). Does not
// modify c, and accepts the derived paths still empty.
int rl_config_validate(const rl_config *c, rl_err *err);

// rl_config_validate, then fills the derived defaults: run.out_dir = runs/<run.name>,
// logging.db = <out_dir>/rollouts.db, checkpoint.dir = <out_dir>/checkpoints, tokenizer.path =
// model.path when tokenizer.kind is hf. Creates nothing on disk.
int rl_config_finish(rl_config *c, rl_err *err);

// load + each --set + finish: what every run command does first.
int rl_config_from_args(rl_config *c, const char *path, char *const *sets, int n_sets, rl_err *err);

// The full effective config as YAML (every key, defaults included), which loads back to an equal
// config. *out_text is malloc'ed; free() it.
int rl_config_to_yaml(const rl_config *c, char **out_text, rl_err *err);

// The path of the first key whose values differ (schema order), or NULL when a and b are equal.
// Verifier entries compare name, weight, plugin, command, gate and options (in order).
const char *rl_config_diff(const rl_config *a, const rl_config *b);

// The key reference as Markdown (configs/README.md is exactly this output). Returns 0, -1 on a
// write error.
int rl_config_reference_markdown(FILE *out);

void rl_config_free(rl_config *c);

#endif
