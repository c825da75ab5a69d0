/*
 * bench_eval: `rlpipe eval CONFIG --benchmark NAME=FILE ...`: the public benchmarks (MATH-500,
 * AIME, GPQA Diamond, MMLU-Pro, LiveCodeBench) scored the way the R1 report does, printed as the
 * seed article's table and logged sample by sample. The manual is cli/benchmarks.md.
 *
 * For each benchmark: every problem is posed with its standard prompt (rollout/benchmark.h)
 * through the config's chat template, followed by the forced response start (--style seed:
 * "###"); k samples per problem at temperature T and top-p P (defaults 0.6 and 0.95); each
 * sample graded by the benchmark's verifier (math, choice letter, or code in the sandbox) and by
 * the format verifier; pass@1 = the mean over problems of the share of correct samples, and the
 * unbiased pass@k for every k asked for. Instead of sampling, --responses FILE scores completions
 * made elsewhere (one JSON line per completion).
 *
 * Log: one run "<run.name>-bench" (then -bench-2, ...) per invocation; benchmark i is step i
 * (phase "bench"): every sample is a rollouts row (task = the benchmark's name, group_id =
 * prompt_idx = the problem's index, reward = its accuracy), with its "accuracy" and "format"
 * verdicts in scores, and one evals row per benchmark (split = the benchmark's name).
 *
 * Owns: nothing beyond the call.
 */
#ifndef RL_CLI_BENCH_EVAL_H
#define RL_CLI_BENCH_EVAL_H

#include <stdint.h>

#include "cli/config.h"

typedef struct rl_bench_eval_opts {
    const char *const *specs; // [n_specs] "NAME=FILE"
    int n_specs;
    const char *model;  // model directory or NULL (model.path, out_dir/final, out_dir/sft)
    int k;              // samples per problem (<= 0: eval.k)
    int n;              // first n problems of each benchmark (<= 0: all)
    double temperature; // < 0: 0.6
    double top_p;       // < 0: 0.95
    int style;          // rl_bench_style
    const int *pass_k;  // [n_pass_k] extra pass@k rows (each <= k)
    int n_pass_k;
    const char *responses;   // JSONL of completions to score instead of sampling, or NULL
    const char *prompts_out; // write the rendered prompts as JSONL here and stop, or NULL
    uint64_t shuffle_seed;   // GPQA option order
    int model_step;          // recorded in the evals rows' extra JSON
} rl_bench_eval_opts;

// Runs the whole command on a finished config; returns the process exit code.
int rl_bench_eval_run(rl_config *cfg, const rl_bench_eval_opts *o);

#endif
