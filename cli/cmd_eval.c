// cmd_eval: `rlpipe eval CONFIG`: pass@1 / pass@k and per-verifier means on the held-out set.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench_eval.h"
#include "cli/cli.h"
#include "rollout/benchmark.h"
#include "cli/run.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: rlpipe eval CONFIG [--model DIR] [--data FILE] [--k K] [--n N]\n"
        "                   [--temperature T] [--step S] [--set key=value]...\n\n"
        "Evaluates a policy on held-out problems with the configured verifiers: K samples per\n"
        "problem at temperature T (default eval.k = 8, eval.temperature = 0.6); pass@1 is the\n"
        "mean share of correct samples per problem, pass@K the share of problems with at least\n"
        "one correct sample. Prints a table and writes a row to the evals table of\n"
        "<out_dir>/rollouts.db (run \"<run.name>-eval\", split \"heldout\", step S).\n\n"
        "options:\n"
        "  --model DIR       the policy to evaluate (default: model.path, or <out_dir>/final,\n"
        "                    <out_dir>/sft when they exist)\n"
        "  --data FILE       a JSONL file whose every line is a held-out problem\n"
        "  --k K             samples per problem\n"
        "  --n N             evaluate only the first N problems\n"
        "  --temperature T   sampling temperature (0 = greedy)\n"
        "  --step S          the step number recorded with the result (default 0)\n"
        "  --set key=value   override a config key (repeatable)\n"
        "  -h, --help        this help\n\n"
        "benchmarks (see cli/benchmarks.md):\n"
        "  rlpipe eval CONFIG --benchmark NAME=FILE [--benchmark NAME=FILE]... [--model DIR]\n"
        "              [--k K] [--n N] [--temperature T] [--top-p P] [--style standard|seed]\n"
        "              [--pass-k K1,K2,...] [--responses FILE] [--prompts-out FILE]\n"
        "              [--shuffle-seed S] [--step S]\n"
        "  --benchmark NAME=FILE  a benchmark file in its release's format (JSON lines, or CSV\n"
        "                    for a .csv file); NAME: %s\n"
        "  --top-p P         nucleus mass (default eval.top_p = 0.95; T: eval.temperature = 0.6)\n"
        "  --style S         standard (each benchmark's usual prompt) or seed (answers in\n"
        "                    \\boxed{}, the response forced to start with ###)\n"
        "  --pass-k LIST     also report the unbiased pass@k for these k (<= K)\n"
        "  --responses FILE  score these completions instead of sampling: JSON lines\n"
        "                    {\"benchmark\": NAME, \"index\": I, \"completion\": TEXT}\n"
        "  --prompts-out FILE  write the rendered prompts as JSON lines and stop\n"
        "  --shuffle-seed S  seed of GPQA's option order (default 0)\n",
        rl_bench_names());
}

static int parse_int(const char *s, const char *what, int lo, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > 1000000)
        return cli_usage_error("eval", "%s: expected an integer >= %d, got '%s'", what, lo, s);
    *out = (int)v;
    return 0;
}

int cmd_eval(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *model = NULL, *data = NULL, *ks = NULL, *ns = NULL, *ts = NULL, *ss = NULL, *pos[1];
    const char *tps = NULL, *style = NULL, *pks = NULL, *responses = NULL, *prompts_out = NULL,
               *seeds = NULL;
    cli_opt opts[] = {{"model", &model, NULL},
                      {"data", &data, NULL},
                      {"k", &ks, NULL},
                      {"n", &ns, NULL},
                      {"temperature", &ts, NULL},
                      {"step", &ss, NULL},
                      {"top-p", &tps, NULL},
                      {"style", &style, NULL},
                      {"pass-k", &pks, NULL},
                      {"responses", &responses, NULL},
                      {"prompts-out", &prompts_out, NULL},
                      {"shuffle-seed", &seeds, NULL}};
    // --benchmark is repeatable: take its occurrences out before the common parser sees argv.
    char **rest = rl_calloc((size_t)argc + 1, sizeof *rest);
    const char **specs = rl_calloc((size_t)argc + 1, sizeof *specs);
    int n_rest = 0, n_specs = 0, rc = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && strcmp(argv[i], "--benchmark") == 0) {
            if (i + 1 >= argc) {
                rc = cli_usage_error("eval", "--benchmark needs NAME=FILE");
                break;
            }
            specs[n_specs++] = argv[++i];
        } else if (i > 0 && strncmp(argv[i], "--benchmark=", 12) == 0)
            specs[n_specs++] = argv[i] + 12;
        else
            rest[n_rest++] = argv[i];
    }
    char **sets = NULL;
    int n_pos = 0, n_sets = 0;
    if (rc == 0)
        rc = cli_parse_run_args("eval", n_rest, rest, opts, 12, pos, 1, &n_pos, &sets, &n_sets);
    if (rc == 0 && !n_specs && (tps || style || pks || responses || prompts_out || seeds))
        rc = cli_usage_error("eval", "--top-p, --style, --pass-k, --responses, --prompts-out and "
                                     "--shuffle-seed go with --benchmark");
    if (rc == 0 && n_specs && data)
        rc = cli_usage_error("eval", "--data and --benchmark do not go together");
    if (rc == 0 && n_pos != 1) rc = cli_usage_error("eval", "expected one CONFIG file");
    rl_config cfg;
    rl_config_defaults(&cfg);
    int k = -1, n = -1, step = 0;
    double temperature = -1;
    if (rc == 0 && ks) rc = parse_int(ks, "--k", 1, &k);
    if (rc == 0 && ns) rc = parse_int(ns, "--n", 1, &n);
    if (rc == 0 && ss) rc = parse_int(ss, "--step", 0, &step);
    if (rc == 0 && ts) {
        char *end;
        temperature = strtod(ts, &end);
        if (*end || temperature < 0 || temperature > 10)
            rc = cli_usage_error("eval", "--temperature: expected a number in [0, 10], got '%s'",
                                 ts);
    }
    double top_p = -1;
    int bstyle = RL_BENCH_STYLE_STANDARD, pass_k[7], n_pass_k = 0;
    long long shuffle_seed = 0;
    if (rc == 0 && tps) {
        char *end;
        top_p = strtod(tps, &end);
        if (*end || end == tps || !(top_p > 0 && top_p <= 1))
            rc = cli_usage_error("eval", "--top-p: expected a number in (0, 1], got '%s'", tps);
    }
    if (rc == 0 && style) {
        if (strcmp(style, "seed") == 0)
            bstyle = RL_BENCH_STYLE_SEED;
        else if (strcmp(style, "standard") != 0)
            rc = cli_usage_error("eval", "--style: expected standard or seed, got '%s'", style);
    }
    if (rc == 0 && seeds) {
        char *end;
        shuffle_seed = strtoll(seeds, &end, 10);
        if (*end || end == seeds || shuffle_seed < 0)
            rc = cli_usage_error("eval", "--shuffle-seed: expected an integer >= 0, got '%s'",
                                 seeds);
    }
    for (const char *p = pks; rc == 0 && p && *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 100000 || (*end && *end != ',') || n_pass_k == 7) {
            rc = cli_usage_error("eval",
                                 "--pass-k: expected up to 7 integers >= 1 separated by "
                                 "commas, got '%s'",
                                 pks);
            break;
        }
        pass_k[n_pass_k++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (rc) {
        free(sets);
        free(rest);
        free(specs);
        rl_config_free(&cfg);
        return rc;
    }
    rl_config_free(&cfg);
    rl_err err = {0};
    rl_run run = {0};
    int code = CLI_EXIT_OK;
    if (rl_config_from_args(&cfg, pos[0], sets, n_sets, &err)) {
        code = cli_report(&err);
        goto done;
    }
    if (n_specs) {
        rl_bench_eval_opts bo = {.specs = specs,
                                 .n_specs = n_specs,
                                 .model = model,
                                 .k = k,
                                 .n = n,
                                 .temperature = temperature,
                                 .top_p = top_p,
                                 .style = bstyle,
                                 .pass_k = pass_k,
                                 .n_pass_k = n_pass_k,
                                 .responses = responses,
                                 .prompts_out = prompts_out,
                                 .shuffle_seed = (uint64_t)shuffle_seed,
                                 .model_step = step};
        code = rl_bench_eval_run(&cfg, &bo);
        rl_config_free(&cfg);
        free(sets);
        free(rest);
        free(specs);
        return code;
    }
    if (data) {
        // Every line of FILE is a held-out problem: load it as a dataset that is all held-out.
        free(cfg.data.train_path);
        free(cfg.data.heldout_path);
        cfg.data.source = RL_CFG_DATA_JSONL;
        cfg.data.train_path = rl_strdup(data);
        cfg.data.heldout_path = rl_strdup(data);
    }
    char found[4096];
    if (!model && !cfg.model.path[0] && rl_run_default_model(&cfg, found, sizeof found))
        model = found;
    if (rl_run_init(&run, &cfg, RL_RUN_MODEL | RL_RUN_DATA | RL_RUN_REWARD | RL_RUN_PARALLEL, model,
                    &err) ||
        rl_run_open_output(&run, &err)) {
        code = cli_report(&err);
        goto done;
    }
    char name[512];
    snprintf(name, sizeof name, "%s-eval", cfg.run.name);
    if (rl_run_start(&run, name, 1, &err)) {
        code = cli_report(&err);
        goto done;
    }
    if (k < 0) k = cfg.eval.k;
    if (n < 0) n = cfg.eval.n;
    if (temperature < 0) temperature = cfg.eval.temperature;
    rl_eval_result e;
    if (rl_run_eval(&run, k, temperature, n, &e, &err) || rl_eval_log(&run, step, &e, &err)) {
        code = cli_report(&err);
        goto done;
    }
    if (run.comm->rank != 0) goto done; // data parallel: rank 0 alone prints
    rl_eval_print(&run, model ? model : (cfg.model.path[0] ? cfg.model.path : "init"), &e, 1,
                  stdout);
    fprintf(stderr, "eval: %d problems x %d samples in %.1f s (%.0f tokens/s)\n", e.n, e.k,
            e.seconds, e.tokens_per_s);
done:
    if (code != CLI_EXIT_OK && rl_run_stop_signal()) code = 128 + rl_run_stop_signal();
    rl_run_end(&run, code == CLI_EXIT_OK);
    rl_config_free(&cfg);
    free(sets);
    free(rest);
    free(specs);
    return code;
}
