// cmd_sft: `rlpipe sft CONFIG`: cold-start supervised fine-tuning, then a held-out evaluation.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/trainer.h"
#include "policy/checkpoint.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: rlpipe sft CONFIG [--set key=value]... [--out DIR]\n\n"
        "Cold-start supervised fine-tuning (the R1 recipe's first stage). Trains the policy\n"
        "(model.path, or a freshly initialised model from the model section) on teacher traces\n"
        "of the built-in tasks, or on the \"response\" of each line of a JSONL file\n"
        "(sft.source: jsonl, sft.path): loss on response tokens only, AdamW with warmup and\n"
        "cosine decay, gradient clipping, for sft.steps steps or sft.time_budget_s seconds.\n"
        "Then evaluates on the held-out set (eval.n problems, eval.k samples at\n"
        "eval.temperature) and prints the table.\n\n"
        "Writes into run.out_dir (default runs/<run.name>): rollouts.db (run \"<name>-sft\":\n"
        "steps and evals) and the model as a Hugging Face directory in <out_dir>/sft.\n\n"
        "options:\n"
        "  --set key=value   override a config key (repeatable)\n"
        "  --out DIR         where to save the fine-tuned model (default <out_dir>/sft)\n"
        "  -h, --help        this help\n");
}

int cmd_sft(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *out_dir = NULL;
    cli_opt opts[] = {{"out", &out_dir, NULL}};
    rl_config cfg;
    int code = cli_load_run_config("sft", argc, argv, opts, 1, &cfg);
    if (code) return code;
    rl_err err = {0};
    rl_run run = {0};
    char save_dir[4096];
    if (rl_run_init(&run, &cfg,
                    RL_RUN_MODEL | RL_RUN_DATA | RL_RUN_REWARD | RL_RUN_SFT | RL_RUN_PARALLEL, NULL,
                    &err)) {
        code = cli_report(&err);
        goto done;
    }
    int lead = run.comm->rank == 0; // data parallel: rank 0 alone prints and writes
    if (!lead) cfg.logging.progress = RL_CFG_PROGRESS_NEVER;
    snprintf(save_dir, sizeof save_dir, "%s/sft", cfg.run.out_dir);
    if (out_dir) snprintf(save_dir, sizeof save_dir, "%s", out_dir);
    rl_run_add_model_output(&run, save_dir);
    if (rl_run_open_output(&run, &err)) {
        code = cli_report(&err);
        goto done;
    }
    char run_name[512];
    snprintf(run_name, sizeof run_name, "%s-sft", cfg.run.name);
    if (rl_run_start(&run, run_name, 0, &err)) {
        code = cli_report(&err);
        goto done;
    }

    rl_progress prog;
    rl_progress_start(&prog, stderr, cfg.logging.progress, "sft", cfg.sft.steps,
                      cfg.sft.time_budget_s);
    rl_sft_result res;
    if (rl_sft(&run, &prog, &res, &err)) {
        code = cli_report(&err);
        goto done;
    }
    if (lead)
        fprintf(stderr, "sft: %d steps in %.1f s, %.0f tokens/s, final loss %.4f\n", res.steps,
                res.seconds, res.tokens_per_s, res.final_loss);
    if (rl_run_save_model(&run, save_dir, &err)) {
        code = cli_report(&err);
        goto done;
    }
    if (lead) fprintf(stderr, "sft: model saved to %s\n", save_dir);
    rl_eval_result e;
    if (rl_run_eval(&run, cfg.eval.k, cfg.eval.temperature, cfg.eval.n, &e, &err)) {
        code = cli_report(&err);
        goto done;
    }
    if (lead) rl_eval_print(&run, "sft", &e, 1, stdout);
    if (rl_eval_log(&run, res.steps, &e, &err)) code = cli_report(&err);
done:
    if (code != CLI_EXIT_OK && rl_run_stop_signal()) code = 128 + rl_run_stop_signal();
    rl_run_end(&run, code == CLI_EXIT_OK);
    rl_config_free(&cfg);
    return code;
}
