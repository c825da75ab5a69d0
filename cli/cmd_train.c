// cmd_train: `rlpipe train CONFIG`: cold-start SFT (when configured), then GRPO, end to end.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/trainer.h"
#include "policy/checkpoint.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: rlpipe train CONFIG [--set key=value]... [--resume]\n\n"
            "Runs the whole R1-style recipe from one config:\n"
            "  1. cold-start SFT on teacher traces (when sft.enabled and no model.path), logged\n"
            "     as run \"<run.name>-sft\", the model saved to <out_dir>/sft;\n"
            "  2. GRPO: each step samples rollout.group_size completions for\n"
            "     rollout.prompts_per_step prompts, scores them with the verifiers (weighted\n"
            "     reward), computes group-relative advantages and updates the policy with the\n"
            "     clipped surrogate (algorithm.*); every step and rollout is logged to\n"
            "     <out_dir>/rollouts.db as run \"<run.name>\";\n"
            "  3. held-out evaluation before the first update and after the last (evals table),\n"
            "     printed as a before/after table; the final policy saved to <out_dir>/final.\n"
            "Checkpoints (model, optimizer, data position) go to checkpoint.dir every\n"
            "checkpoint.every steps and at the end, each written atomically.\n\n"
            "options:\n"
            "  --set key=value   override a config key (repeatable)\n"
            "  --resume          continue from the newest checkpoint of this run (rows logged\n"
            "                    after it are replaced); a run killed at any moment and resumed\n"
            "                    ends with the same weights and rewards as an uninterrupted one\n"
            "\n"
            "One process at a time writes a run directory (a lock on <out_dir>/rlpipe.lock; a\n"
            "second one exits 2 naming the first's pid). Output paths are checked before the\n"
            "first step. SIGINT or SIGTERM stops after the step in progress with a checkpoint\n"
            "(status 'interrupted', exit 128+signal); a second signal stops at once.\n"
            "  -h, --help        this help\n");
}

static int dir_has_model(const char *dir) {
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/config.json", dir);
    struct stat st;
    return stat(probe, &st) == 0;
}

// Replaces the policy with the model saved in dir.
static int start_from(rl_run *r, const char *dir, rl_err *err) {
    rl_model *m;
    RL_TRY(rl_model_load(&m, dir, r->be, err));
    rl_engine_free(r->engine); // its KV cache and scratch belong to the old model
    r->engine = NULL;
    r->engine_slots = r->engine_len = 0;
    rl_model_free(r->model);
    r->model = m;
    return 0;
}

// Cold start: SFT as its own run row, then the fine-tuned model is the policy RL starts from.
static int cold_start(rl_run *r, int resume, const char *sft_dir, rl_err *err) {
    const rl_config *c = r->cfg;
    char name[512];
    snprintf(name, sizeof name, "%s-sft", c->run.name);
    if (resume && dir_has_model(sft_dir)) return start_from(r, sft_dir, err);
    RL_TRY(rl_run_start(r, name, resume, err));
    if (resume && r->log && rl_log_truncate_after(r->log, r->run_id, 0, err)) return -1;
    rl_progress prog;
    rl_progress_start(&prog, stderr, c->logging.progress, "sft", c->sft.steps,
                      c->sft.time_budget_s);
    rl_sft_result res;
    if (rl_sft(r, &prog, &res, err)) {
        rl_run_record_status(r, 0);
        return -1;
    }
    if (r->comm->rank == 0)
        fprintf(stderr, "sft: %d steps in %.1f s (%.0f tokens/s), final loss %.4f\n", res.steps,
                res.seconds, res.tokens_per_s, res.final_loss);
    RL_TRY(rl_run_save_model(r, sft_dir, err));
    if (r->log) RL_TRY(rl_log_finish_run(r->log, r->run_id, "finished", err));
    if (rl_run_stop_signal()) return rl_run_fail_stopped(err, "after SFT (RL starts on --resume)");
    // RL starts from exactly the weights a resumed run would load (model.save_dtype: bf16 rounds).
    return c->model.save_dtype == RL_CFG_BF16 ? start_from(r, sft_dir, err) : 0;
}

int cmd_train(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    int resume = 0;
    cli_opt opts[] = {{"resume", NULL, &resume}};
    rl_config cfg;
    int code = cli_load_run_config("train", argc, argv, opts, 1, &cfg);
    if (code) return code;
    rl_err err = {0};
    rl_run run = {0};
    double t_start = rl_now();
    char sft_dir[4096], final_dir[4096];
    if (rl_run_init(&run, &cfg,
                    RL_RUN_MODEL | RL_RUN_DATA | RL_RUN_REWARD | RL_RUN_SFT | RL_RUN_PARALLEL, NULL,
                    &err)) {
        code = cli_report(&err);
        goto done;
    }
    int lead = run.comm->rank == 0; // data parallel: rank 0 alone prints and writes
    if (!lead) cfg.logging.progress = RL_CFG_PROGRESS_NEVER;
    snprintf(sft_dir, sizeof sft_dir, "%s/sft", cfg.run.out_dir);
    snprintf(final_dir, sizeof final_dir, "%s/final", cfg.run.out_dir);
    // Every output path is checked before the first step, not found wrong after the whole run.
    rl_run_add_model_output(&run, final_dir);
    if (cfg.sft.enabled && !cfg.model.path[0]) rl_run_add_model_output(&run, sft_dir);
    run.writes_checkpoints = 1;
    if (rl_run_open_output(&run, &err)) {
        code = cli_report(&err);
        goto done;
    }
    if (cfg.sft.enabled && !cfg.model.path[0] && cold_start(&run, resume, sft_dir, &err)) {
        code = cli_report(&err);
        goto done;
    }
    if (rl_run_start(&run, cfg.run.name, resume, &err)) {
        code = cli_report(&err);
        goto done;
    }
    rl_progress prog;
    rl_progress_start(&prog, stderr, cfg.logging.progress, "rl", cfg.algorithm.steps,
                      cfg.algorithm.time_budget_s);
    rl_train_result res;
    if (rl_grpo_train(&run, &prog, resume, &res, &err) ||
        rl_run_save_model(&run, final_dir, &err)) {
        code = cli_report(&err);
        goto done;
    }
    if (!lead) goto done;
    printf("\nheld-out evaluation (%s):\n", cfg.logging.db);
    if (res.have_before) rl_eval_print(&run, "before RL", &res.before, 1, stdout);
    if (res.have_after) rl_eval_print(&run, "after RL", &res.after, !res.have_before, stdout);
    if (res.have_before && res.have_after)
        printf("pass@1 %+.1f points after %d RL steps (%.0f s of RL, %.0f s in all)\n",
               100 * (res.after.pass_at_1 - res.before.pass_at_1), res.steps, res.seconds,
               rl_now() - t_start);
    printf("final policy: %s\n", final_dir);
done:
    if (code != CLI_EXIT_OK && rl_run_stop_signal()) code = 128 + rl_run_stop_signal();
    rl_run_end(&run, code == CLI_EXIT_OK);
    rl_config_free(&cfg);
    return code;
}
