// config_schema: the one table describing every run-config key. See config.h.
//
// To add a key: add the field to the struct in config.h and one line here (in the section it belongs
// to). Defaults are text in the key's own syntax; lists join their items with '|'; the verifier
// list is name:weight pairs. configs/README.md is generated from this table (rlpipe config
// reference) and a test fails when it is out of date.
#include "cli/config.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#define F(field) offsetof(rl_config, field)
#define INF      HUGE_VAL
#define IMAX     INT_MAX
#define OPEN_MIN RL_CK_MIN_OPEN
#define OPEN_MAX RL_CK_MAX_OPEN
#define V(...)   ((const char *const[]){__VA_ARGS__, NULL})
#define SECTION(path, doc)                                                                         \
    { path, RL_CK_SECTION, 0, NULL, 0, 0, 0, NULL, doc }
#define INT     RL_CK_INT
#define NUM     RL_CK_NUM
#define BOOL    RL_CK_BOOL
#define STR     RL_CK_STR
#define ENUM    RL_CK_ENUM
#define STRLIST RL_CK_STRLIST
#define NUMLIST RL_CK_NUMLIST

#define DEFAULT_PROMPT "{problem}\nReason step by step and put the final answer in \\boxed{}."

// clang-format off
static const rl_config_key KEYS[] = {
// path                               type  field                              default  min max flags values doc
SECTION("run", "What the run is called, where it writes and what it runs on"),
{"run.name",                          STR,  F(run.name),                       "tiny",  0, 0, 0, NULL, "name of the run (letters, digits, '.', '_', '-'); names the output directory"},
{"run.out_dir",                       STR,  F(run.out_dir),                    "",      0, 0, 0, NULL, "output directory of the run; empty = runs/<run.name>"},
{"run.seed",                          INT,  F(run.seed),                       "1234",  0, IMAX, 0, NULL, "seed of every random stream (initialisation, data order, sampling)"},
{"run.device",                        ENUM, F(run.device),                     "cpu",   0, 0, 0, V("cpu", "cuda"), "compute backend"},
{"run.threads",                       INT,  F(run.threads),                    "0",     0, 4096, 0, NULL, "CPU threads; 0 = all cores"},
{"run.precision",                     ENUM, F(run.precision),                  "float32", 0, 0, 0, V("float32", "bfloat16"), "element type of weights and activations; bfloat16 (float32 master weights, gradients and optimizer state; policy/README.md) needs run.device cuda"},

SECTION("model", "The policy: a Qwen2-architecture model, loaded from a directory or initialised from scratch"),
{"model.path",                        STR,  F(model.path),                     "",      0, 0, 0, NULL, "Hugging Face-style model directory (config.json + safetensors); empty = initialise from scratch with the shape below"},
{"model.hidden_size",                 INT,  F(model.hidden_size),              "128",   1, 65536, 0, NULL, "width of the residual stream (from scratch)"},
{"model.num_hidden_layers",           INT,  F(model.num_hidden_layers),        "4",     1, 1024, 0, NULL, "number of transformer layers (from scratch)"},
{"model.num_attention_heads",         INT,  F(model.num_attention_heads),      "4",     1, 1024, 0, NULL, "query heads; must divide model.hidden_size (from scratch)"},
{"model.num_key_value_heads",         INT,  F(model.num_key_value_heads),      "1",     1, 1024, 0, NULL, "key/value heads (grouped-query attention); must divide model.num_attention_heads (from scratch)"},
{"model.intermediate_size",           INT,  F(model.intermediate_size),        "336",   1, 1 << 20, 0, NULL, "MLP width (from scratch)"},
{"model.rope_theta",                  NUM,  F(model.rope_theta),               "10000", 0, INF, OPEN_MIN, NULL, "rotary embedding base (from scratch)"},
{"model.rms_norm_eps",                NUM,  F(model.rms_norm_eps),             "1e-5",  0, 1, OPEN_MIN, NULL, "epsilon inside RMSNorm's square root (from scratch)"},
{"model.max_position_embeddings",     INT,  F(model.max_position_embeddings),  "512",   1, 1 << 24, 0, NULL, "longest sequence (prompt + completion) in tokens (from scratch)"},
{"model.tie_word_embeddings",         BOOL, F(model.tie_word_embeddings),      "true",  0, 0, 0, NULL, "the output layer reuses the token embedding (from scratch)"},
{"model.use_sliding_window",          BOOL, F(model.use_sliding_window),       "false", 0, 0, 0, NULL, "sliding-window attention on layers >= model.max_window_layers (from scratch)"},
{"model.sliding_window",              INT,  F(model.sliding_window),           "4096",  1, 1 << 24, 0, NULL, "window length in tokens when model.use_sliding_window (from scratch)"},
{"model.max_window_layers",           INT,  F(model.max_window_layers),        "0",     0, 1024, 0, NULL, "first layer index that uses the sliding window (from scratch)"},
{"model.init_std",                    NUM,  F(model.init_std),                 "0.02",  0, 1, OPEN_MIN, NULL, "standard deviation of the random initial weights (from scratch)"},
{"model.save_dtype",                  ENUM, F(model.save_dtype),               "f32",   0, 0, 0, V("f32", "bf16"), "dtype of saved checkpoint weights"},

SECTION("tokenizer", "How text becomes tokens and how prompts are wrapped"),
{"tokenizer.kind",                    ENUM, F(tokenizer.kind),                 "byte",  0, 0, 0, V("byte", "hf"), "byte: 256 bytes + special tokens (tiny models); hf: byte-level BPE from tokenizer.json"},
{"tokenizer.path",                    STR,  F(tokenizer.path),                 "",      0, 0, 0, NULL, "directory holding tokenizer.json (kind hf); empty = model.path"},
{"tokenizer.chat_template",           ENUM, F(tokenizer.chat_template),        "plain", 0, 0, 0, V("plain", "chatml", "r1"), "how the prompt is wrapped: as is, ChatML turns (Qwen2.5) or the R1-distill format"},

SECTION("data", "Where prompts come from: built-in task generators or JSONL files"),
{"data.source",                       ENUM, F(data.source),                    "tasks", 0, 0, 0, V("tasks", "jsonl"), "tasks: procedural problems from data.tasks; jsonl: records from data.train_path"},
{"data.tasks",                        STRLIST, F(data.tasks),                  "arith", 0, 0, 0, V("arith", "deriv"), "task generators used when data.source is tasks"},
{"data.task_weights",                 NUMLIST, F(data.task_weights),           "",      0, INF, 0, NULL, "sampling weight per entry of data.tasks; empty = equal"},
{"data.train_path",                   STR,  F(data.train_path),                "",      0, 0, 0, NULL, "JSONL file of training problems (data.source jsonl)"},
{"data.heldout_path",                 STR,  F(data.heldout_path),              "",      0, 0, 0, NULL, "JSONL file of held-out problems; empty = split data.heldout_fraction off the training file"},
{"data.split_key",                    STR,  F(data.split_key),                 "",      0, 0, 0, NULL, "JSONL field whose value decides the held-out split (hashed); empty = the problem text"},
{"data.heldout_fraction",             NUM,  F(data.heldout_fraction),          "0.1",   0, 1, OPEN_MAX, NULL, "fraction of the training file held out when data.heldout_path is empty"},
{"data.heldout_size",                 INT,  F(data.heldout_size),              "500",   0, 1 << 24, 0, NULL, "number of held-out problems (generated for tasks; at most this many from JSONL)"},
{"data.on_bad_line",                  ENUM, F(data.on_bad_line),               "fail",  0, 0, 0, V("skip", "fail"), "what a malformed JSONL line does: skipped with a count, or a stop naming the line"},
{"data.prompt_template",              STR,  F(data.prompt_template),           DEFAULT_PROMPT, 0, 0, 0, NULL, "the user turn; {problem} is replaced by the problem text"},
{"data.system_prompt",                STR,  F(data.system_prompt),             "",      0, 0, 0, NULL, "system turn for chat templates that have one; empty = none"},

SECTION("data.arith", "The arithmetic task: integer expressions with + - * and standard precedence"),
{"data.arith.min_ops",                INT,  F(data.arith.min_ops),             "2",     1, 7, 0, NULL, "fewest operators in an expression"},
{"data.arith.max_ops",                INT,  F(data.arith.max_ops),             "3",     1, 7, 0, NULL, "most operators in an expression"},
{"data.arith.max_operand",            INT,  F(data.arith.max_operand),         "9",     1, 1000000, 0, NULL, "largest operand (operands are drawn from 1..max_operand)"},
{"data.arith.allow_negative",         BOOL, F(data.arith.allow_negative),      "true",  0, 0, 0, NULL, "intermediate results and answers may be negative"},
{"data.arith.max_value",              INT,  F(data.arith.max_value),           "0",     0, 1000000000, 0, NULL, "largest magnitude of any intermediate result (0 = no limit)"},

SECTION("data.deriv", "The derivative task: the value of a polynomial's derivative at a point"),
{"data.deriv.max_degree",             INT,  F(data.deriv.max_degree),          "3",     2, 7, 0, NULL, "highest polynomial degree (degrees are drawn from 2..max_degree)"},
{"data.deriv.max_coef",               INT,  F(data.deriv.max_coef),            "5",     1, 1000, 0, NULL, "largest coefficient magnitude"},
{"data.deriv.max_x",                  INT,  F(data.deriv.max_x),               "3",     1, 1000, 0, NULL, "largest magnitude of the evaluation point"},

SECTION("data.teacher", "The procedural teacher that writes worked solutions for SFT"),
{"data.teacher.error_rate",           NUM,  F(data.teacher.error_rate),        "0.0",   0, 1, 0, NULL, "probability that the teacher slips at each step where a slip is possible (carried through to its answer)"},
{"data.teacher.error_kinds",          STRLIST, F(data.teacher.error_kinds),    "sign|carry|copy", 0, 0, 0, V("sign", "carry", "copy"), "kinds of mistakes the teacher makes"},

SECTION("rollout", "Sampling completions from the policy"),
{"rollout.prompts_per_step",          INT,  F(rollout.prompts_per_step),       "16",    1, 1 << 20, 0, NULL, "prompts per RL step"},
{"rollout.group_size",                INT,  F(rollout.group_size),             "8",     1, 1024, 0, NULL, "completions per prompt (the group of group-relative advantages)"},
{"rollout.temperature",               NUM,  F(rollout.temperature),            "1.0",   0, 10, 0, NULL, "sampling temperature"},
{"rollout.top_p",                     NUM,  F(rollout.top_p),                  "1.0",   0, 1, OPEN_MIN, NULL, "nucleus sampling mass; 1 = off"},
{"rollout.top_k",                     INT,  F(rollout.top_k),                  "0",     0, 1 << 24, 0, NULL, "sample among the k most likely tokens; 0 = off"},
{"rollout.min_p",                     NUM,  F(rollout.min_p),                  "0.0",   0, 1, 0, NULL, "drop tokens below min_p times the top probability; 0 = off"},
{"rollout.max_new_tokens",            INT,  F(rollout.max_new_tokens),         "128",   1, 1 << 20, 0, NULL, "completion budget in tokens"},
{"rollout.stop",                      STRLIST, F(rollout.stop),                "",      0, 0, 0, NULL, "extra stop strings (end-of-sequence tokens always stop)"},
{"rollout.greedy",                    BOOL, F(rollout.greedy),                 "false", 0, 0, 0, NULL, "take the most likely token instead of sampling"},
{"rollout.kv_cache_mb",               NUM,  F(rollout.kv_cache_mb),            "0",     0, 1 << 30, 0, NULL, "KV-cache pool in MB (1e6 bytes); 0 = room for every sequence at full length; when it runs out sequences wait or are preempted and recomputed"},
{"rollout.gpu_memory_utilization",    NUM,  F(rollout.gpu_memory_utilization), "0",     0, 1, 0, NULL, "CUDA: KV-cache pool as this fraction of the free device memory (as vLLM's); 0 = rollout.kv_cache_mb"},
{"rollout.prefill_chunk",             INT,  F(rollout.prefill_chunk),          "512",   1, 1 << 20, 0, NULL, "prompt tokens per engine step, mixed with the decode tokens (chunked prefill)"},
{"rollout.batch_invariant",           ENUM, F(rollout.batch_invariant),        "auto",  0, 0, 0, V("auto", "true", "false"), "true: the engine's matrix products sum every row in one fixed order, so a sample never depends on what it was batched with (the same seed gives the same completions whatever the scheduling); false: the backend's fastest products (cuBLAS tensor cores on CUDA); auto: true on the CPU (where it is also the fastest), false on CUDA"},
{"rollout.cuda_graphs",               BOOL, F(rollout.cuda_graphs),            "true",  0, 0, 0, NULL, "CUDA: run each decode step as a CUDA graph captured per batch-size bucket (1, 2, 4, ... 512 sequences), with one upload of its inputs; false = op by op (the same tokens, slower); no effect on the CPU"},

SECTION("reward", "The verifiers that score completions and how their scores combine"),
{"reward.verifiers",                  RL_CK_VERIFIERS, F(reward.verifiers),    "accuracy:0.4|path_quality:0.3|format:0.2|efficiency:0.1", 0, INF, 0, V("accuracy", "none"), "list of {name, weight, plugin, command, gate, options...}; reward = sum of weight * score"},
{"reward.extract",                    ENUM, F(reward.extract),                 "boxed", 0, 0, 0, V("boxed", "auto"), "how the final answer is found: the last \\boxed{}, or boxed then the last number"},
{"reward.threads",                    INT,  F(reward.threads),                 "0",     0, 4096, 0, NULL, "threads scoring completions; 0 = automatic"},

SECTION("algorithm", "The policy-gradient update (GRPO and its variants)"),
{"algorithm.steps",                   INT,  F(algorithm.steps),                "100",   0, IMAX, 0, NULL, "RL steps"},
{"algorithm.time_budget_s",           NUM,  F(algorithm.time_budget_s),        "0",     0, INF, 0, NULL, "stop RL after this many seconds; 0 = no limit"},
{"algorithm.lr",                      NUM,  F(algorithm.lr),                   "1e-4",  0, 1, 0, NULL, "peak learning rate (AdamW)"},
{"algorithm.lr_schedule",             ENUM, F(algorithm.lr_schedule),          "constant", 0, 0, 0, V("constant", "cosine", "linear"), "learning-rate decay after warm-up"},
{"algorithm.warmup_steps",            INT,  F(algorithm.warmup_steps),         "0",     0, IMAX, 0, NULL, "linear warm-up steps"},
{"algorithm.min_lr_ratio",            NUM,  F(algorithm.min_lr_ratio),         "0.1",   0, 1, 0, NULL, "final learning rate as a fraction of algorithm.lr (cosine, linear)"},
{"algorithm.weight_decay",            NUM,  F(algorithm.weight_decay),         "0.0",   0, 10, 0, NULL, "AdamW decoupled weight decay"},
{"algorithm.beta1",                   NUM,  F(algorithm.beta1),                "0.9",   0, 1, OPEN_MAX, NULL, "AdamW first-moment decay"},
{"algorithm.beta2",                   NUM,  F(algorithm.beta2),                "0.99",  0, 1, OPEN_MAX, NULL, "AdamW second-moment decay"},
{"algorithm.adam_eps",                NUM,  F(algorithm.adam_eps),             "1e-8",  0, 1, OPEN_MIN, NULL, "AdamW epsilon"},
{"algorithm.grad_clip",               NUM,  F(algorithm.grad_clip),            "1.0",   0, INF, 0, NULL, "clip the global gradient norm to this; 0 = off"},
{"algorithm.advantage",               ENUM, F(algorithm.advantage),            "grpo",  0, 0, 0, V("grpo", "drgrpo", "batch_std", "rloo"), "advantage: group z-score, group mean only (Dr.GRPO), batch std, leave-one-out"},
{"algorithm.adv_eps",                 NUM,  F(algorithm.adv_eps),              "1e-4",  0, 1, OPEN_MIN, NULL, "added to the standard deviation in the advantage"},
{"algorithm.clip_low",                NUM,  F(algorithm.clip_low),             "0.2",   0, 1, OPEN_MAX, NULL, "ratio clip below: 1 - clip_low"},
{"algorithm.clip_high",               NUM,  F(algorithm.clip_high),            "0.2",   0, 10, 0, NULL, "ratio clip above: 1 + clip_high (DAPO clip-higher when > clip_low)"},
{"algorithm.dual_clip",               NUM,  F(algorithm.dual_clip),            "0",     0, INF, 0, NULL, "dual-clip bound c > 1 for negative advantages; 0 = off"},
{"algorithm.kl_coef",                 NUM,  F(algorithm.kl_coef),              "0.0",   0, 100, 0, NULL, "weight of the KL penalty to the frozen reference; 0 = no reference model"},
{"algorithm.kl_estimator",            ENUM, F(algorithm.kl_estimator),         "k3",    0, 0, 0, V("k1", "k2", "k3"), "KL estimator (Schulman's k1, k2, k3)"},
{"algorithm.entropy_coef",            NUM,  F(algorithm.entropy_coef),         "0.0",   0, 10, 0, NULL, "weight of the entropy bonus"},
{"algorithm.loss_agg",                ENUM, F(algorithm.loss_agg),             "token_mean", 0, 0, 0, V("token_mean", "seq_mean_token_mean", "dr_grpo"), "loss aggregation: over all tokens, per sequence then over sequences, or a constant token count (Dr.GRPO)"},
{"algorithm.loss_norm_tokens",        INT,  F(algorithm.loss_norm_tokens),     "0",     0, 1 << 24, 0, NULL, "the constant of loss_agg dr_grpo; 0 = rollout.max_new_tokens"},
{"algorithm.epochs",                  INT,  F(algorithm.epochs),               "1",     1, 100, 0, NULL, "passes over each step's rollouts"},
{"algorithm.minibatches",             INT,  F(algorithm.minibatches),          "1",     1, 1 << 20, 0, NULL, "optimizer updates per epoch (the step's samples split evenly)"},
{"algorithm.overlong",                ENUM, F(algorithm.overlong),             "none",  0, 0, 0, V("none", "mask", "penalty"), "truncated completions: kept, masked from the loss, or penalised over the last overlong_buffer tokens"},
{"algorithm.overlong_buffer",         INT,  F(algorithm.overlong_buffer),      "16",    0, 1 << 20, 0, NULL, "tokens before the budget where the overlong penalty ramps up"},
{"algorithm.dynamic_sampling",        BOOL, F(algorithm.dynamic_sampling),     "false", 0, 0, 0, NULL, "resample prompts whose groups all got the same reward (DAPO)"},
{"algorithm.dynamic_max_rounds",      INT,  F(algorithm.dynamic_max_rounds),   "3",     1, 100, 0, NULL, "most extra sampling rounds per step with dynamic sampling"},
{"algorithm.max_nonfinite_steps",     INT,  F(algorithm.max_nonfinite_steps),  "5",     0, 1 << 20, 0, NULL, "skipped steps with a non-finite loss or gradient allowed in a row before the run stops"},

SECTION("sft", "Supervised warm-up before RL"),
{"sft.enabled",                       BOOL, F(sft.enabled),                    "true",  0, 0, 0, NULL, "run SFT before RL"},
{"sft.steps",                         INT,  F(sft.steps),                      "0",     0, IMAX, 0, NULL, "SFT steps; 0 = run for sft.time_budget_s"},
{"sft.time_budget_s",                 NUM,  F(sft.time_budget_s),              "180",   0, INF, 0, NULL, "SFT time limit in seconds; 0 = none"},
{"sft.batch_size",                    INT,  F(sft.batch_size),                 "32",    1, 1 << 20, 0, NULL, "sequences per SFT step"},
{"sft.lr",                            NUM,  F(sft.lr),                         "3e-3",  0, 1, 0, NULL, "peak learning rate"},
{"sft.lr_schedule",                   ENUM, F(sft.lr_schedule),                "cosine", 0, 0, 0, V("constant", "cosine", "linear"), "learning-rate decay after warm-up"},
{"sft.warmup_steps",                  INT,  F(sft.warmup_steps),               "50",    0, IMAX, 0, NULL, "linear warm-up steps"},
{"sft.min_lr_ratio",                  NUM,  F(sft.min_lr_ratio),               "0.1",   0, 1, 0, NULL, "final learning rate as a fraction of sft.lr"},
{"sft.weight_decay",                  NUM,  F(sft.weight_decay),               "0.1",   0, 10, 0, NULL, "AdamW decoupled weight decay"},
{"sft.beta1",                         NUM,  F(sft.beta1),                      "0.9",   0, 1, OPEN_MAX, NULL, "AdamW first-moment decay"},
{"sft.beta2",                         NUM,  F(sft.beta2),                      "0.95",  0, 1, OPEN_MAX, NULL, "AdamW second-moment decay"},
{"sft.grad_clip",                     NUM,  F(sft.grad_clip),                  "1.0",   0, INF, 0, NULL, "clip the global gradient norm to this; 0 = off"},
{"sft.source",                        ENUM, F(sft.source),                     "teacher", 0, 0, 0, V("teacher", "jsonl"), "worked solutions from the procedural teacher, or prompt/completion pairs from sft.path"},
{"sft.path",                          STR,  F(sft.path),                       "",      0, 0, 0, NULL, "JSONL file of SFT examples (sft.source jsonl)"},
{"sft.eval_every",                    INT,  F(sft.eval_every),                 "0",     0, IMAX, 0, NULL, "evaluate every this many SFT steps; 0 = only at the end"},

SECTION("distill", "Token-level distillation from a teacher model (rlpipe distill; cli/distill.md)"),
{"distill.teacher",                   STR,  F(distill.teacher),                "",      0, 0, 0, NULL, "teacher model directory (a Qwen2 checkpoint with the student's vocabulary); required by rlpipe distill"},
{"distill.source",                    ENUM, F(distill.source),                 "teacher", 0, 0, 0, V("teacher", "dataset", "on_policy"), "completions written by the teacher, the SFT examples (sft.source), or sampled from the student each step (GKD)"},
{"distill.examples",                  INT,  F(distill.examples),               "512",   1, 1 << 24, 0, NULL, "training examples (prompts + completions) cycled over in epochs (sources teacher and dataset)"},
{"distill.teacher_temperature",       NUM,  F(distill.teacher_temperature),    "0.6",   0, 10, 0, NULL, "temperature the teacher writes completions at (source teacher and the perplexity text); 0 = greedy"},
{"distill.steps",                     INT,  F(distill.steps),                  "200",   1, IMAX, 0, NULL, "optimizer steps"},
{"distill.batch_size",                INT,  F(distill.batch_size),             "16",    1, 1 << 16, 0, NULL, "sequences per step"},
{"distill.lr",                        NUM,  F(distill.lr),                     "1e-3",  0, 1, 0, NULL, "peak learning rate (AdamW)"},
{"distill.lr_schedule",               ENUM, F(distill.lr_schedule),            "cosine", 0, 0, 0, V("constant", "cosine", "linear"), "learning-rate decay after warm-up"},
{"distill.warmup_steps",              INT,  F(distill.warmup_steps),           "10",    0, IMAX, 0, NULL, "linear warm-up steps"},
{"distill.min_lr_ratio",              NUM,  F(distill.min_lr_ratio),           "0.1",   0, 1, 0, NULL, "final learning rate as a fraction of distill.lr"},
{"distill.weight_decay",              NUM,  F(distill.weight_decay),           "0.0",   0, 10, 0, NULL, "AdamW decoupled weight decay"},
{"distill.beta1",                     NUM,  F(distill.beta1),                  "0.9",   0, 1, OPEN_MAX, NULL, "AdamW first-moment decay"},
{"distill.beta2",                     NUM,  F(distill.beta2),                  "0.95",  0, 1, OPEN_MAX, NULL, "AdamW second-moment decay"},
{"distill.grad_clip",                 NUM,  F(distill.grad_clip),              "1.0",   0, INF, 0, NULL, "clip the global gradient norm to this; 0 = off"},
{"distill.kl",                        ENUM, F(distill.kl),                     "forward", 0, 0, 0, V("forward", "reverse"), "KL(teacher || student) or KL(student || teacher), times tau^2"},
{"distill.tau",                       ENUM, F(distill.tau),                    "dynamic", 0, 0, 0, V("fixed", "dynamic"), "temperature: distill.tau_fixed, or per token from the teacher's normalised entropy times a decaying schedule"},
{"distill.tau_fixed",                 NUM,  F(distill.tau_fixed),              "1.0",   0, 100, OPEN_MIN, NULL, "the temperature when distill.tau is fixed"},
{"distill.tau_min",                   NUM,  F(distill.tau_min),                "1.0",   0, 100, OPEN_MIN, NULL, "dynamic: temperature of a certain teacher token (entropy 0), before the schedule"},
{"distill.tau_max",                   NUM,  F(distill.tau_max),                "2.0",   0, 100, OPEN_MIN, NULL, "dynamic: temperature of a uniform teacher token (entropy log V), before the schedule"},
{"distill.tau_start",                 NUM,  F(distill.tau_start),              "1.5",   0, 100, OPEN_MIN, NULL, "dynamic: schedule factor at the first step"},
{"distill.tau_end",                   NUM,  F(distill.tau_end),                "0.5",   0, 100, OPEN_MIN, NULL, "dynamic: schedule factor at the last step"},
{"distill.tau_decay",                 ENUM, F(distill.tau_decay),              "cosine", 0, 0, 0, V("cosine", "linear"), "dynamic: shape of the schedule from distill.tau_start to distill.tau_end"},
{"distill.cache_topk",                INT,  F(distill.cache_topk),             "0",     0, 1 << 20, 0, NULL, "keep the teacher's top-k log-probs per token in distill.cache_path, scored once and reused across epochs and runs; 0 = score the full distribution every step"},
{"distill.cache_path",                STR,  F(distill.cache_path),             "",      0, 0, 0, NULL, "teacher cache file; empty = <run.out_dir>/teacher_topk.bin"},
{"distill.eval_every",                INT,  F(distill.eval_every),             "0",     0, IMAX, 0, NULL, "held-out perplexity and pass@1 every this many steps; 0 = at the start and the end only"},
{"distill.eval_n",                    INT,  F(distill.eval_n),                 "100",   1, 1 << 20, 0, NULL, "held-out prompts whose teacher-written completions measure the student's perplexity"},

SECTION("eval", "Held-out evaluation (pass@1 and pass@k)"),
{"eval.every",                        INT,  F(eval.every),                     "0",     0, IMAX, 0, NULL, "evaluate every this many RL steps; 0 = at start and end only"},
{"eval.n",                            INT,  F(eval.n),                         "0",     0, 1 << 24, 0, NULL, "held-out problems per evaluation; 0 = all of them"},
{"eval.k",                            INT,  F(eval.k),                         "8",     1, 1024, 0, NULL, "samples per problem (pass@k)"},
{"eval.temperature",                  NUM,  F(eval.temperature),               "0.6",   0, 10, 0, NULL, "sampling temperature"},
{"eval.top_p",                        NUM,  F(eval.top_p),                     "0.95",  0, 1, OPEN_MIN, NULL, "nucleus sampling mass"},
{"eval.max_new_tokens",               INT,  F(eval.max_new_tokens),            "0",     0, 1 << 20, 0, NULL, "completion budget; 0 = rollout.max_new_tokens"},
{"eval.at_start",                     BOOL, F(eval.at_start),                  "true",  0, 0, 0, NULL, "evaluate before the first RL step"},

SECTION("logging", "The SQLite rollout log and console progress"),
{"logging.db",                        STR,  F(logging.db),                     "",      0, 0, 0, NULL, "SQLite file of the run; empty = <run.out_dir>/rollouts.db"},
{"logging.progress",                  ENUM, F(logging.progress),               "auto",  0, 0, 0, V("auto", "always", "never"), "progress line on stderr: when it is a terminal, always, never"},
{"logging.every",                     INT,  F(logging.every),                  "1",     1, 1 << 20, 0, NULL, "print a summary every this many steps"},
{"logging.log_rollouts",              BOOL, F(logging.log_rollouts),           "true",  0, 0, 0, NULL, "store every rollout and score (false: step statistics only)"},
{"logging.busy_timeout_s",            NUM,  F(logging.busy_timeout_s),         "60",    0, 604800, 0, NULL, "seconds a write waits (retrying with backoff) while another connection holds the log's write lock, before the run fails"},

SECTION("checkpoint", "Saved model states"),
{"checkpoint.every",                  INT,  F(checkpoint.every),               "0",     0, IMAX, 0, NULL, "save every this many RL steps; 0 = only at the end"},
{"checkpoint.keep",                   INT,  F(checkpoint.keep),                "2",     0, 1 << 20, 0, NULL, "most recent checkpoints kept; 0 = keep all"},
{"checkpoint.dir",                    STR,  F(checkpoint.dir),                 "",      0, 0, 0, NULL, "checkpoint directory; empty = <run.out_dir>/checkpoints"},

SECTION("train", "How every training step (SFT, distillation, RL) trades memory for compute"),
{"train.recompute",                   ENUM, F(train.recompute),                "none",  0, 0, 0, V("none", "layer"), "activation recomputation: none keeps every layer's activations; layer keeps only each layer's input and recomputes the layer in the backward pass (about 1/3 more compute, activation memory ~L times smaller; same gradients)"},
SECTION("parallel", "Data parallel over processes (mpirun -np N rlpipe train|sft|eval; policy/PARALLEL.md)"),
{"parallel.zero",                     INT,  F(parallel.zero),                  "0",     0, 1, 0, NULL, "ZeRO stage: 0 = every rank keeps the whole AdamW state and all-reduces gradients; 1 = each rank keeps and updates 1/N of the float32 weights and AdamW moments (reduce-scatter, shard update, all-gather)"},
};
// clang-format on

static const int N_KEYS = (int)(sizeof KEYS / sizeof KEYS[0]);

const rl_config_key *rl_config_keys(int *n) {
    if (n) *n = N_KEYS;
    return KEYS;
}

int rl_config_n_keys(void) {
    return N_KEYS;
}

int rl_config_find_key(const char *path) {
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(KEYS[i].path, path) == 0) return i;
    return -1;
}

const char *rl_config_enum_name(const char *path, int v) {
    int k = rl_config_find_key(path);
    if (k < 0 || KEYS[k].type != RL_CK_ENUM || v < 0) return NULL;
    for (int i = 0; i <= v; i++)
        if (!KEYS[k].values[i]) return NULL;
    return KEYS[k].values[v];
}
