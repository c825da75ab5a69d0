// test_config: the typed run config: schema table, defaults, loading YAML, every value type,
// --set overrides, the YAML round trip, error messages (key path + file:line:col), verifier lists,
// cross-field rules, the malformed configs in tests/configs_bad/, configs/README.md, and the caps
// on nesting depth and file size.
#define _POSIX_C_SOURCE 200809L
#include "cli/config.h"
#include "kernels/rng.h"
#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

// ---- helpers -------------------------------------------------------------------------------------

static int load_str(rl_config *c, const char *yaml, rl_err *err) {
    return rl_config_load_text(c, yaml, strlen(yaml), "t.yaml", err);
}

static int starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

// Loads yaml (then finishes it) and expects a bad-input failure whose message starts with `prefix`
// and ends with `suffix`.
static void expect_yaml_error(const char *yaml, const char *prefix, const char *suffix) {
    rl_config c;
    rl_err err = {0};
    int rc = load_str(&c, yaml, &err);
    if (rc == 0) rc = rl_config_finish(&c, &err);
    CHECK(rc == -1, "accepted: %s", yaml);
    CHECK(err.kind == RL_EINPUT, "kind %d for: %s", err.kind, yaml);
    CHECK(starts_with(err.msg, prefix), "message '%s' does not start with '%s'", err.msg, prefix);
    CHECK(ends_with(err.msg, suffix), "message '%s' does not end with '%s'", err.msg, suffix);
    CHECK(!strchr(err.msg, '\n'), "multi-line message '%s'", err.msg);
    rl_config_free(&c);
}

static void expect_set_error(const char *assignment, const char *want) {
    rl_config c;
    rl_config_defaults(&c);
    rl_err err = {0};
    CHECK(rl_config_set(&c, assignment, &err) == -1, "accepted --set %s", assignment);
    CHECK(err.kind == RL_EINPUT, "kind %d for --set %s", err.kind, assignment);
    CHECK(strcmp(err.msg, want) == 0, "--set %s:\n  got  '%s'\n  want '%s'", assignment, err.msg,
          want);
    rl_config_free(&c);
}

// ---- the schema table ----------------------------------------------------------------------------

static void test_schema_table(void) {
    int n;
    const rl_config_key *keys = rl_config_keys(&n);
    CHECK(n == rl_config_n_keys() && n > 100, "n_keys %d", n);
    for (int i = 0; i < n; i++) {
        const rl_config_key *k = &keys[i];
        CHECK(rl_config_find_key(k->path) == i, "%s is listed twice", k->path);
        CHECK(k->doc && k->doc[0], "%s has no doc", k->path);
        // Every key's section is declared before it.
        const char *dot = strrchr(k->path, '.');
        if (dot) {
            char parent[128];
            snprintf(parent, sizeof parent, "%.*s", (int)(dot - k->path), k->path);
            int p = rl_config_find_key(parent);
            CHECK(p >= 0 && p < i && keys[p].type == RL_CK_SECTION, "%s: section %s missing",
                  k->path, parent);
        } else {
            CHECK(k->type == RL_CK_SECTION, "top-level %s is not a section", k->path);
        }
        if (k->type == RL_CK_ENUM) CHECK(k->values && k->values[0], "%s: no values", k->path);
    }
    CHECK(rl_config_find_key("rollout.nope") == -1, "found a key that does not exist");
    CHECK(rl_config_find_key("data.arith") >= 0, "data.arith section missing");
}

// The C enums in config.h must match the order of the names in the table.
static void test_enum_order(void) {
    struct {
        const char *key;
        int v;
        const char *name;
    } cases[] = {
        {"run.device", RL_CFG_CPU, "cpu"},
        {"run.device", RL_CFG_CUDA, "cuda"},
        {"model.save_dtype", RL_CFG_F32, "f32"},
        {"model.save_dtype", RL_CFG_BF16, "bf16"},
        {"tokenizer.kind", RL_CFG_TOK_BYTE, "byte"},
        {"tokenizer.kind", RL_CFG_TOK_HF, "hf"},
        {"tokenizer.chat_template", RL_CFG_CHAT_PLAIN, "plain"},
        {"tokenizer.chat_template", RL_CFG_CHAT_CHATML, "chatml"},
        {"tokenizer.chat_template", RL_CFG_CHAT_R1, "r1"},
        {"data.source", RL_CFG_DATA_TASKS, "tasks"},
        {"data.source", RL_CFG_DATA_JSONL, "jsonl"},
        {"data.on_bad_line", RL_CFG_BAD_SKIP, "skip"},
        {"data.on_bad_line", RL_CFG_BAD_FAIL, "fail"},
        {"reward.extract", RL_CFG_EXTRACT_BOXED, "boxed"},
        {"reward.extract", RL_CFG_EXTRACT_AUTO, "auto"},
        {"algorithm.lr_schedule", RL_CFG_LR_CONSTANT, "constant"},
        {"algorithm.lr_schedule", RL_CFG_LR_COSINE, "cosine"},
        {"algorithm.lr_schedule", RL_CFG_LR_LINEAR, "linear"},
        {"sft.lr_schedule", RL_CFG_LR_CONSTANT, "constant"},
        {"sft.lr_schedule", RL_CFG_LR_COSINE, "cosine"},
        {"sft.lr_schedule", RL_CFG_LR_LINEAR, "linear"},
        {"algorithm.advantage", RL_CFG_ADV_GRPO, "grpo"},
        {"algorithm.advantage", RL_CFG_ADV_DRGRPO, "drgrpo"},
        {"algorithm.advantage", RL_CFG_ADV_BATCH_STD, "batch_std"},
        {"algorithm.advantage", RL_CFG_ADV_RLOO, "rloo"},
        {"algorithm.kl_estimator", RL_CFG_KL_K1, "k1"},
        {"algorithm.kl_estimator", RL_CFG_KL_K2, "k2"},
        {"algorithm.kl_estimator", RL_CFG_KL_K3, "k3"},
        {"algorithm.loss_agg", RL_CFG_AGG_TOKEN_MEAN, "token_mean"},
        {"algorithm.loss_agg", RL_CFG_AGG_SEQ_MEAN_TOKEN_MEAN, "seq_mean_token_mean"},
        {"algorithm.loss_agg", RL_CFG_AGG_DR_GRPO, "dr_grpo"},
        {"algorithm.overlong", RL_CFG_OVERLONG_NONE, "none"},
        {"algorithm.overlong", RL_CFG_OVERLONG_MASK, "mask"},
        {"algorithm.overlong", RL_CFG_OVERLONG_PENALTY, "penalty"},
        {"sft.source", RL_CFG_SFT_TEACHER, "teacher"},
        {"sft.source", RL_CFG_SFT_JSONL, "jsonl"},
        {"logging.progress", RL_CFG_PROGRESS_AUTO, "auto"},
        {"logging.progress", RL_CFG_PROGRESS_ALWAYS, "always"},
        {"logging.progress", RL_CFG_PROGRESS_NEVER, "never"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *name = rl_config_enum_name(cases[i].key, cases[i].v);
        CHECK(name && strcmp(name, cases[i].name) == 0, "%s value %d is '%s', want '%s'",
              cases[i].key, cases[i].v, name ? name : "(null)", cases[i].name);
    }
    CHECK(rl_config_enum_name("run.device", 2) == NULL, "value past the end has a name");
    CHECK(rl_config_enum_name("run.seed", 0) == NULL, "a non-enum key has names");
}

// ---- defaults ------------------------------------------------------------------------------------

static void test_defaults(void) {
    rl_config c;
    rl_config_defaults(&c);
    CHECK(strcmp(c.run.name, "tiny") == 0 && c.run.out_dir[0] == '\0', "run.name/out_dir");
    CHECK(c.run.seed == 1234 && c.run.device == RL_CFG_CPU && c.run.threads == 0, "run");
    CHECK(c.model.path[0] == '\0' && c.model.hidden_size == 128 && c.model.num_hidden_layers == 4,
          "model shape");
    CHECK(c.model.num_attention_heads == 4 && c.model.num_key_value_heads == 1 &&
              c.model.intermediate_size == 336,
          "model heads");
    CHECK(c.model.rope_theta == 10000.0 && c.model.rms_norm_eps == 1e-5, "rope/eps");
    CHECK(c.model.max_position_embeddings == 512 && c.model.tie_word_embeddings == 1 &&
              c.model.use_sliding_window == 0 && c.model.sliding_window == 4096 &&
              c.model.max_window_layers == 0,
          "model misc");
    CHECK(c.model.init_std == 0.02 && c.model.save_dtype == RL_CFG_F32, "init_std/save_dtype");
    CHECK(c.tokenizer.kind == RL_CFG_TOK_BYTE && c.tokenizer.chat_template == RL_CFG_CHAT_PLAIN,
          "tokenizer");
    CHECK(c.data.source == RL_CFG_DATA_TASKS && c.data.tasks.n == 1 &&
              strcmp(c.data.tasks.v[0], "arith") == 0 && c.data.task_weights.n == 0,
          "data.tasks");
    CHECK(c.data.heldout_fraction == 0.1 && c.data.heldout_size == 500 &&
              c.data.on_bad_line == RL_CFG_BAD_FAIL,
          "data heldout");
    CHECK(strcmp(c.data.prompt_template,
                 "{problem}\nReason step by step and put the final answer in \\boxed{}.") == 0,
          "prompt_template '%s'", c.data.prompt_template);
    CHECK(c.data.arith.min_ops == 2 && c.data.arith.max_ops == 3 && c.data.arith.max_operand == 9 &&
              c.data.arith.allow_negative == 1,
          "data.arith");
    CHECK(c.data.deriv.max_degree == 3 && c.data.deriv.max_coef == 5 && c.data.deriv.max_x == 3,
          "data.deriv");
    CHECK(c.data.teacher.error_rate == 0.0 && c.data.teacher.error_kinds.n == 3 &&
              strcmp(c.data.teacher.error_kinds.v[1], "carry") == 0,
          "data.teacher");
    CHECK(c.rollout.prompts_per_step == 16 && c.rollout.group_size == 8 &&
              c.rollout.temperature == 1.0 && c.rollout.top_p == 1.0 && c.rollout.top_k == 0 &&
              c.rollout.min_p == 0.0 && c.rollout.max_new_tokens == 128 && c.rollout.stop.n == 0 &&
              c.rollout.greedy == 0,
          "rollout");
    const char *names[] = {"accuracy", "path_quality", "format", "efficiency"};
    const double weights[] = {0.4, 0.3, 0.2, 0.1};
    CHECK(c.reward.verifiers.n == 4, "verifiers %d", c.reward.verifiers.n);
    for (int i = 0; i < 4 && i < c.reward.verifiers.n; i++) {
        const rl_verifier_spec *s = &c.reward.verifiers.v[i];
        CHECK(strcmp(s->name, names[i]) == 0 && s->weight == weights[i] && !s->plugin &&
                  !s->command && !s->gate && s->n_options == 0,
              "verifier %d", i);
    }
    CHECK(c.reward.extract == RL_CFG_EXTRACT_BOXED && c.reward.threads == 0, "reward");
    const rl_cfg_algorithm *a = &c.algorithm;
    CHECK(a->steps == 100 && a->time_budget_s == 0 && a->lr == 1e-4 &&
              a->lr_schedule == RL_CFG_LR_CONSTANT && a->warmup_steps == 0 &&
              a->min_lr_ratio == 0.1 && a->weight_decay == 0.0,
          "algorithm lr");
    CHECK(a->beta1 == 0.9 && a->beta2 == 0.99 && a->adam_eps == 1e-8 && a->grad_clip == 1.0,
          "algorithm adam");
    CHECK(a->advantage == RL_CFG_ADV_GRPO && a->adv_eps == 1e-4 && a->clip_low == 0.2 &&
              a->clip_high == 0.2 && a->dual_clip == 0 && a->kl_coef == 0 &&
              a->kl_estimator == RL_CFG_KL_K3 && a->entropy_coef == 0,
          "algorithm loss");
    CHECK(a->loss_agg == RL_CFG_AGG_TOKEN_MEAN && a->loss_norm_tokens == 0 && a->epochs == 1 &&
              a->minibatches == 1 && a->overlong == RL_CFG_OVERLONG_NONE &&
              a->overlong_buffer == 16 && a->dynamic_sampling == 0 && a->dynamic_max_rounds == 3 &&
              a->max_nonfinite_steps == 5,
          "algorithm misc");
    const rl_cfg_sft *s = &c.sft;
    CHECK(s->enabled == 1 && s->steps == 0 && s->time_budget_s == 180 && s->batch_size == 32 &&
              s->lr == 3e-3 && s->lr_schedule == RL_CFG_LR_COSINE && s->warmup_steps == 50 &&
              s->min_lr_ratio == 0.1 && s->weight_decay == 0.1 && s->beta1 == 0.9 &&
              s->beta2 == 0.95 && s->grad_clip == 1.0 && s->source == RL_CFG_SFT_TEACHER &&
              s->path[0] == '\0' && s->eval_every == 0,
          "sft");
    CHECK(c.eval.every == 0 && c.eval.n == 0 && c.eval.k == 8 && c.eval.temperature == 0.6 &&
              c.eval.top_p == 0.95 && c.eval.max_new_tokens == 0 && c.eval.at_start == 1,
          "eval");
    CHECK(c.logging.db[0] == '\0' && c.logging.progress == RL_CFG_PROGRESS_AUTO &&
              c.logging.every == 1 && c.logging.log_rollouts == 1,
          "logging");
    CHECK(c.checkpoint.every == 0 && c.checkpoint.keep == 2 && c.checkpoint.dir[0] == '\0',
          "checkpoint");
    CHECK(!c.source_path && !c.source_text, "defaults have no source");

    rl_err err = {0};
    CHECK(rl_config_validate(&c, &err) == 0, "defaults invalid: %s", err.msg);
    CHECK(rl_config_finish(&c, &err) == 0, "finish: %s", err.msg);
    CHECK(strcmp(c.run.out_dir, "runs/tiny") == 0, "out_dir %s", c.run.out_dir);
    CHECK(strcmp(c.logging.db, "runs/tiny/rollouts.db") == 0, "db %s", c.logging.db);
    CHECK(strcmp(c.checkpoint.dir, "runs/tiny/checkpoints") == 0, "dir %s", c.checkpoint.dir);
    rl_config_free(&c);

    // load(NULL) is the defaults; explicit paths are kept by finish.
    rl_config d;
    CHECK(rl_config_load(&d, NULL, &err) == 0, "load NULL");
    CHECK(rl_config_set(&d, "run.name=exp1", &err) == 0 &&
              rl_config_set(&d, "logging.db=/tmp/x.db", &err) == 0 &&
              rl_config_finish(&d, &err) == 0,
          "%s", err.msg);
    CHECK(strcmp(d.run.out_dir, "runs/exp1") == 0 && strcmp(d.logging.db, "/tmp/x.db") == 0 &&
              strcmp(d.checkpoint.dir, "runs/exp1/checkpoints") == 0,
          "derived paths %s %s %s", d.run.out_dir, d.logging.db, d.checkpoint.dir);
    rl_config_free(&d);
}

// ---- the shipped configs -------------------------------------------------------------------------

static void test_load_tiny(void) {
    rl_config c;
    rl_err err = {0};
    int rc = rl_config_load(&c, "configs/tiny.yaml", &err);
    CHECK(rc == 0, "tiny.yaml: %s", err.msg);
    CHECK(rl_config_finish(&c, &err) == 0, "tiny.yaml finish: %s", err.msg);
    CHECK(strcmp(c.run.name, "tiny") == 0 && c.run.device == RL_CFG_CPU, "run");
    CHECK(c.model.hidden_size == 128 && c.model.num_hidden_layers == 4, "model");
    CHECK(c.reward.verifiers.n == 4, "verifiers");
    const double weights[] = {0.4, 0.3, 0.2, 0.1};
    for (int i = 0; i < 4 && i < c.reward.verifiers.n; i++) {
        CHECK(c.reward.verifiers.v[i].weight == weights[i], "weight %d", i);
        CHECK(c.reward.verifiers.v[i].line > 0 && c.reward.verifiers.v[i].column > 0,
              "verifier %d position %d:%d", i, c.reward.verifiers.v[i].line,
              c.reward.verifiers.v[i].column);
    }
    // Entries are on consecutive lines.
    if (c.reward.verifiers.n == 4)
        CHECK(c.reward.verifiers.v[3].line == c.reward.verifiers.v[0].line + 3, "verifier lines");
    char *text = test_read_file("configs/tiny.yaml", NULL);
    CHECK(text && c.source_text && strcmp(text, c.source_text) == 0, "source_text kept");
    CHECK(c.source_path && strcmp(c.source_path, "configs/tiny.yaml") == 0, "source_path");
    free(text);
    rl_config_free(&c);

    CHECK(rl_config_load(&c, "configs/examples/qwen2.5-0.5b-gpu.yaml", &err) == 0 &&
              rl_config_finish(&c, &err) == 0,
          "qwen example: %s", err.msg);
    CHECK(c.run.device == RL_CFG_CUDA && c.tokenizer.kind == RL_CFG_TOK_HF &&
              c.tokenizer.chat_template == RL_CFG_CHAT_CHATML && c.model.path[0],
          "qwen example values");
    CHECK(strcmp(c.tokenizer.path, c.model.path) == 0, "tokenizer.path derived from model.path");
    rl_config_free(&c);
}

static void test_missing_file(void) {
    rl_config c;
    rl_err err = {0};
    CHECK(rl_config_load(&c, "configs/does-not-exist.yaml", &err) == -1, "loaded a missing file");
    CHECK(err.kind == RL_EINPUT && strstr(err.msg, "configs/does-not-exist.yaml"), "%s", err.msg);
    rl_config_free(&c);
    CHECK(rl_config_load(&c, "configs", &err) == -1 && err.kind == RL_EINPUT,
          "loaded a directory: %s", err.msg);
    rl_config_free(&c);
}

// Nesting is capped at 64 levels, and files at 4 MiB, before libyaml builds a document: its
// scanner is quadratic in the depth (40,000 levels of '[' took 10 s). 64 levels still load.
static void test_depth_and_size_caps(void) {
    const int depths[] = {64, 65, 40000};
    for (int i = 0; i < 3; i++) {
        int d = depths[i];
        size_t n = 32 + 2 * (size_t)d;
        char *y = malloc(n);
        int k = snprintf(y, n, "data:\n  tasks: ");
        // the top-level mapping (1) + data's mapping (1) + the lists (d - 2)
        for (int j = 0; j < d - 2; j++) y[k++] = '[';
        for (int j = 0; j < d - 2; j++) y[k++] = ']';
        y[k++] = '\n';
        y[k] = '\0';
        rl_config c;
        rl_err err = {0};
        double t0 = rl_now();
        int rc = load_str(&c, y, &err);
        double dt = rl_now() - t0;
        if (d <= 64) {
            // deep enough to load, then refused as the wrong type, not for its depth
            CHECK(rc != 0 && !strstr(err.msg, "levels deep"), "depth %d: %s", d, err.msg);
        } else {
            char want[80];
            // the 63rd '[' (the 65th level) is at column 9 + 63
            snprintf(want, sizeof want, "t.yaml:2:%d: YAML nested more than 64 levels deep",
                     9 + 63);
            CHECK(rc != 0 && err.kind == RL_EINPUT && strcmp(err.msg, want) == 0,
                  "depth %d: '%s', want '%s'", d, err.msg, want);
        }
        CHECK(dt < 1.0, "depth %d took %.2f s", d, dt);
        rl_config_free(&c);
        free(y);
    }
    // Block-style nesting too, with the line of the 65th level.
    char *y = malloc(70 * 80);
    size_t k = 0;
    for (int j = 0; j < 70; j++) k += (size_t)sprintf(y + k, "%*sk%d:\n", j, "", j);
    rl_config c;
    rl_err err = {0};
    CHECK(load_str(&c, y, &err) != 0 && strcmp(err.msg, "t.yaml:65:65: YAML nested more than 64 "
                                                        "levels deep") == 0,
          "block nesting: %s", err.msg);
    rl_config_free(&c);
    free(y);
    // --set values are YAML too.
    char set[200] = "data.tasks=";
    for (int j = 0; j < 80; j++) strcat(set, "[");
    CHECK(rl_config_load_text(&c, "", 0, "t.yaml", &err) == 0, "empty config");
    CHECK(rl_config_set(&c, set, &err) != 0 &&
              strcmp(err.msg, "--set data.tasks: the value is YAML nested more than 64 levels "
                              "deep") == 0,
          "--set nesting: %s", err.msg);
    rl_config_free(&c);
    // Size: 4 MiB of comments is refused, from text and from a file.
    size_t big = (4u << 20) + 1;
    char *text = malloc(big + 1);
    memset(text, '#', big);
    text[big] = '\0';
    CHECK(rl_config_load_text(&c, text, big, "big.yaml", &err) != 0 &&
              strcmp(err.msg, "big.yaml: larger than 4194304 bytes") == 0,
          "big text: %s", err.msg);
    rl_config_free(&c);
    char path[] = "/tmp/rlpipe-test-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, text, big) == (ssize_t)big, "write %s", path);
    if (fd >= 0) close(fd);
    CHECK(rl_config_load(&c, path, &err) != 0 && strstr(err.msg, "larger than 4194304 bytes") &&
              strstr(err.msg, path),
          "big file: %s", err.msg);
    rl_config_free(&c);
    unlink(path);
    free(text);
    // A FIFO in place of the config is refused, not waited on.
    char fifo[] = "/tmp/rlpipe-test-config-fifo-XXXXXX";
    fd = mkstemp(fifo);
    if (fd >= 0) close(fd);
    unlink(fifo);
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        rl_config cc;
        rl_err e = {0};
        int r = rl_config_load(&cc, fifo, &e);
        _exit(r != 0 && strstr(e.msg, "not a regular file (a FIFO)") ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "FIFO config: %s",
          WIFSIGNALED(status) ? "hung" : "no error");
    unlink(fifo);
}

// ---- value types ---------------------------------------------------------------------------------

static void test_every_type(void) {
    const char *yaml = "run:\n"
                       "  seed: 42\n"      // int
                       "  name: 'exp-1'\n" // quoted string
                       "  device: cuda\n"  // enum
                       "model:\n"
                       "  rope_theta: 1e6\n" // number with exponent
                       "  rms_norm_eps: 0.000001\n"
                       "  tie_word_embeddings: no\n" // bool spelled no
                       "  path: ~\n"                 // null string -> ""
                       "rollout:\n"
                       "  greedy: True\n"
                       "  min_p: .05\n"
                       "  top_k: +40\n"
                       "  stop:\n" // block list
                       "    - \"</s>\"\n"
                       "    - \"\\n\\n\"\n"
                       "data:\n"
                       "  tasks: [deriv, arith]\n" // flow list restricted to values
                       "  task_weights: [2, 0.5]\n"
                       "  system_prompt: >-\n" // folded block scalar
                       "    You are\n"
                       "    careful.\n"
                       "  arith:\n"
                       "    allow_negative: off\n"
                       "algorithm:\n"
                       "  lr: 3.5e-6\n"
                       "eval:\n" // an empty section is all defaults
                       "logging:\n"
                       "  progress: never\n";
    rl_config c;
    rl_err err = {0};
    CHECK(load_str(&c, yaml, &err) == 0, "%s", err.msg);
    CHECK(c.run.seed == 42 && strcmp(c.run.name, "exp-1") == 0 && c.run.device == RL_CFG_CUDA,
          "run");
    CHECK(c.model.rope_theta == 1e6 && c.model.rms_norm_eps == 1e-6 &&
              c.model.tie_word_embeddings == 0 && c.model.path[0] == '\0',
          "model");
    CHECK(c.rollout.greedy == 1 && c.rollout.min_p == 0.05 && c.rollout.top_k == 40, "rollout");
    CHECK(c.rollout.stop.n == 2 && strcmp(c.rollout.stop.v[0], "</s>") == 0 &&
              strcmp(c.rollout.stop.v[1], "\n\n") == 0,
          "stop");
    CHECK(c.data.tasks.n == 2 && strcmp(c.data.tasks.v[0], "deriv") == 0, "tasks");
    CHECK(c.data.task_weights.n == 2 && c.data.task_weights.v[0] == 2 &&
              c.data.task_weights.v[1] == 0.5,
          "task_weights");
    CHECK(strcmp(c.data.system_prompt, "You are careful.") == 0, "system_prompt '%s'",
          c.data.system_prompt);
    CHECK(c.data.arith.allow_negative == 0, "allow_negative");
    CHECK(c.algorithm.lr == 3.5e-6, "lr");
    CHECK(c.eval.k == 8, "empty section keeps defaults");
    CHECK(c.logging.progress == RL_CFG_PROGRESS_NEVER, "progress");
    // Keys not in the file keep their defaults.
    CHECK(c.rollout.group_size == 8 && c.model.hidden_size == 128, "untouched defaults");
    rl_config_free(&c);

    // Empty text and comment-only text are all defaults.
    CHECK(load_str(&c, "", &err) == 0 && c.run.seed == 1234, "empty file: %s", err.msg);
    rl_config_free(&c);
    CHECK(load_str(&c, "# nothing here\n", &err) == 0 && c.run.seed == 1234, "comment only");
    rl_config_free(&c);
    // An explicitly empty list.
    CHECK(load_str(&c, "data:\n  teacher:\n    error_kinds: []\n", &err) == 0 &&
              c.data.teacher.error_kinds.n == 0,
          "empty list: %s", err.msg);
    rl_config_free(&c);
}

static void test_type_errors(void) {
    expect_yaml_error("rollout:\n  temperature: hot\n",
                      "rollout.temperature: expected a number in [0, 10], got \"hot\"",
                      " at t.yaml:2:16");
    expect_yaml_error("rollout:\n  temperature: .inf\n", "rollout.temperature: expected a number",
                      ":2:16");
    expect_yaml_error("rollout:\n  temperature: 0x10\n", "rollout.temperature: expected a number",
                      ":2:16");
    expect_yaml_error("rollout:\n  top_k: 99999999999999999999\n",
                      "rollout.top_k: expected an integer", ":2:10");
    expect_yaml_error("rollout:\n  top_k: 1.0\n", "rollout.top_k: expected an integer", ":2:10");
    expect_yaml_error("rollout:\n  greedy: 1\n", "rollout.greedy: expected true or false", ":2:11");
    expect_yaml_error("rollout:\n  greedy: \"true\"\n", "rollout.greedy: expected true or false",
                      ":2:11");
    expect_yaml_error("algorithm:\n  clip_low: 1\n",
                      "algorithm.clip_low: expected a number in [0, 1), got \"1\"", ":2:13");
    expect_yaml_error("algorithm:\n  adam_eps: 0\n",
                      "algorithm.adam_eps: expected a number in (0, 1]", ":2:13");
    expect_yaml_error("run:\n  name: \"a\\0b\"\n", "run.name: strings may not contain NUL", ":2:9");
    expect_yaml_error("rollout:\n  stop: [a, [b]]\n",
                      "rollout.stop[1]: expected a string, got a list", ":2:13");
    expect_yaml_error("rollout:\n  stop: [a, ~]\n",
                      "rollout.stop[1]: expected a string, got nothing", ":2:13");
    expect_yaml_error("? [run]\n: 1\n", "expected a key name, got a list", " at t.yaml:1:3");
}

// ---- --set ---------------------------------------------------------------------------------------

static void test_overrides(void) {
    rl_config c;
    rl_err err = {0};
    CHECK(load_str(&c, "rollout:\n  temperature: 0.5\n", &err) == 0, "%s", err.msg);
    CHECK(rl_config_set(&c, "rollout.temperature=0.7", &err) == 0 && c.rollout.temperature == 0.7,
          "--set overrides the file: %s", err.msg);
    CHECK(rl_config_set(&c, "rollout.temperature=0.9", &err) == 0 && c.rollout.temperature == 0.9,
          "later --set wins");
    CHECK(rl_config_set(&c, "run.seed=7", &err) == 0 && c.run.seed == 7, "int");
    CHECK(rl_config_set(&c, "rollout.greedy=yes", &err) == 0 && c.rollout.greedy == 1, "bool");
    CHECK(rl_config_set(&c, "run.device=cuda", &err) == 0 && c.run.device == RL_CFG_CUDA, "enum");
    CHECK(rl_config_set(&c, "data.prompt_template=Q: {problem} [A]:", &err) == 0 &&
              strcmp(c.data.prompt_template, "Q: {problem} [A]:") == 0,
          "string taken literally: '%s'", c.data.prompt_template);
    CHECK(rl_config_set(&c, "data.system_prompt=\"a\\tb\"", &err) == 0 &&
              strcmp(c.data.system_prompt, "a\tb") == 0,
          "quoted string is YAML: %s", err.msg);
    CHECK(rl_config_set(&c, "model.path=", &err) == 0 && c.model.path[0] == '\0', "empty string");
    CHECK(rl_config_set(&c, "rollout.stop=[\"</s>\",\"\\n\\n\"]", &err) == 0 &&
              c.rollout.stop.n == 2 && strcmp(c.rollout.stop.v[1], "\n\n") == 0,
          "flow list: %s", err.msg);
    CHECK(rl_config_set(&c, "data.task_weights=[1, 3]", &err) == 0 && c.data.task_weights.n == 2 &&
              c.data.task_weights.v[1] == 3,
          "number list");
    CHECK(rl_config_set(&c, "data.arith={min_ops: 1, max_ops: 4}", &err) == 0 &&
              c.data.arith.min_ops == 1 && c.data.arith.max_ops == 4 &&
              c.data.arith.max_operand == 9,
          "section as a flow map: %s", err.msg);
    CHECK(rl_config_set(&c, "reward.verifiers=[{name: accuracy, weight: 1, strict: true}]", &err) ==
                  0 &&
              c.reward.verifiers.n == 1 && c.reward.verifiers.v[0].n_options == 1 &&
              strcmp(c.reward.verifiers.v[0].options[0].value, "true") == 0 &&
              c.reward.verifiers.v[0].line == 0,
          "verifier list: %s", err.msg);
    // A failed --set leaves the old value.
    CHECK(rl_config_set(&c, "rollout.temperature=hot", &err) == -1 && c.rollout.temperature == 0.9,
          "failed --set changed the value");
    CHECK(rl_config_set(&c, "data.tasks=[arith, nope]", &err) == -1 && c.data.tasks.n == 1,
          "failed list --set changed the value");
    rl_config_free(&c);

    expect_set_error("rollout.temperature=hot",
                     "--set rollout.temperature=hot: expected a number in [0, 10], got \"hot\"");
    expect_set_error("rollout.temprature=1",
                     "--set rollout.temprature=1: unknown key; did you mean rollout.temperature?");
    expect_set_error(
        "rollout.temperature",
        "--set rollout.temperature: expected key=value (e.g. rollout.temperature=0.7)");
    expect_set_error("=1", "--set =1: expected key=value (e.g. rollout.temperature=0.7)");
    expect_set_error("zzz=1", "--set zzz=1: unknown key (see rlpipe config reference)");
    expect_set_error("rollout.top_k=",
                     "--set rollout.top_k=: expected an integer in [0, 16777216], got nothing "
                     "(null)");
    expect_set_error("rollout.stop=[a,",
                     "--set rollout.stop=[a,: invalid YAML value: did not find expected node "
                     "content (while parsing a flow node)");
    expect_set_error("data.arith={min_ops: x}",
                     "--set data.arith={min_ops: x}: data.arith.min_ops: expected an integer in "
                     "[1, 7], got \"x\"");
    expect_set_error("rollout={temprature: 1}",
                     "--set rollout={temprature: 1}: rollout.temprature: unknown key; did you mean "
                     "rollout.temperature?");
    expect_set_error(
        "run.device=gpu",
        "--set run.device=gpu: expected one of cpu|cuda, got \"gpu\"; did you mean cpu?");
    expect_set_error("run.name=t\xffny", "--set run.name=t\xffny: the value is not valid UTF-8");
    expect_set_error(
        "rollout.stop=[t\xffny]",
        "--set rollout.stop=[t\xffny]: invalid YAML value: invalid leading UTF-8 octet");
    expect_set_error("rollout.top_p=\"0.5\"",
                     "--set rollout.top_p=\"0.5\": expected a number in (0, 1], got the quoted "
                     "string \"0.5\"");

    // Cross-field errors name the --set that caused them.
    rl_config_defaults(&c);
    CHECK(rl_config_set(&c, "model.num_key_value_heads=3", &err) == 0, "%s", err.msg);
    CHECK(rl_config_finish(&c, &err) == -1 &&
              strcmp(err.msg, "model.num_key_value_heads: model.num_attention_heads (4) must be a "
                              "multiple of model.num_key_value_heads (3) (from --set "
                              "model.num_key_value_heads=3)") == 0,
          "%s", err.msg);
    rl_config_free(&c);

    char *sets[] = {"rollout.group_size=4", "run.name=from-args"};
    CHECK(rl_config_from_args(&c, "configs/tiny.yaml", sets, 2, &err) == 0, "%s", err.msg);
    CHECK(c.rollout.group_size == 4 && strcmp(c.run.out_dir, "runs/from-args") == 0, "from_args");
    rl_config_free(&c);
}

// ---- unknown keys ---------------------------------------------------------------------------------

static void test_unknown_keys(void) {
    expect_yaml_error("rollout:\n  temprature: 1\n",
                      "rollout.temprature: unknown key; did you mean rollout.temperature?",
                      " at t.yaml:2:3");
    expect_yaml_error("rolout:\n  temperature: 1\n", "rolout: unknown key; did you mean rollout?",
                      " at t.yaml:1:1");
    expect_yaml_error("temperature: 1\n",
                      "temperature: unknown key; did you mean rollout.temperature or "
                      "eval.temperature?",
                      " at t.yaml:1:1");
    expect_yaml_error("algorithm:\n  kl_coeff: 0.1\n",
                      "algorithm.kl_coeff: unknown key; did you mean algorithm.kl_coef?", ":2:3");
    expect_yaml_error("data:\n  teacher:\n    eror_rate: 0.1\n",
                      "data.teacher.eror_rate: unknown key; did you mean data.teacher.error_rate?",
                      ":3:5");
    expect_yaml_error("model:\n  colour: 1\n",
                      "model.colour: unknown key in section model (see rlpipe config reference)",
                      ":2:3");
    expect_yaml_error("wandb:\n  project: x\n", "wandb: unknown section (sections: run, model,",
                      ":1:1");
}

// ---- reward.verifiers ----------------------------------------------------------------------------

static void test_verifiers(void) {
    const char *yaml = "reward:\n"
                       "  verifiers:\n"
                       "    - name: accuracy\n"
                       "      weight: 0.5\n"
                       "      gate: none\n"
                       "      tolerance: 1e-6\n"
                       "      mode: \"strict: yes\"\n"
                       "    - {name: judge, weight: 0.25, command: python3 judge.py, timeout_s: 5, "
                       "empty: }\n"
                       "    - {name: mine, weight: 0.25, plugin: ./libmine.so, gate: accuracy}\n"
                       "    - {name: format, weight: 0}\n";
    rl_config c;
    rl_err err = {0};
    int rc = load_str(&c, yaml, &err);
    if (rc == 0) rc = rl_config_finish(&c, &err);
    CHECK(rc == 0, "%s", err.msg);
    const rl_verifier_list *l = &c.reward.verifiers;
    CHECK(l->n == 4, "n %d", l->n);
    if (rc == 0 && l->n == 4) {
        const rl_verifier_spec *a = &l->v[0], *j = &l->v[1], *m = &l->v[2], *f = &l->v[3];
        CHECK(strcmp(a->name, "accuracy") == 0 && a->weight == 0.5 && strcmp(a->gate, "none") == 0,
              "accuracy entry");
        CHECK(a->line == 3 && a->column == 7, "accuracy at %d:%d", a->line, a->column);
        CHECK(a->n_options == 2 && strcmp(a->options[0].key, "tolerance") == 0 &&
                  strcmp(a->options[0].value, "1e-6") == 0 &&
                  strcmp(a->options[1].key, "mode") == 0 &&
                  strcmp(a->options[1].value, "strict: yes") == 0,
              "accuracy options kept as text in order");
        CHECK(strcmp(j->command, "python3 judge.py") == 0 && !j->plugin && !j->gate, "judge");
        CHECK(j->n_options == 2 && strcmp(j->options[0].key, "timeout_s") == 0 &&
                  strcmp(j->options[0].value, "5") == 0 && strcmp(j->options[1].value, "") == 0,
              "judge options");
        CHECK(j->line == 8 && j->column == 7, "judge at %d:%d", j->line, j->column);
        CHECK(strcmp(m->plugin, "./libmine.so") == 0 && strcmp(m->gate, "accuracy") == 0, "mine");
        CHECK(f->weight == 0, "a zero weight among others is fine");
    }
    rl_config_free(&c);

    expect_yaml_error("reward:\n  verifiers: []\n",
                      "reward.verifiers: expected at least one verifier", ":2:14");
    expect_yaml_error("reward:\n  verifiers:\n", "reward.verifiers: expected a list of verifiers",
                      ":2:13");
    expect_yaml_error("reward:\n  verifiers:\n    - {name: a b, weight: 1, command: x}\n",
                      "reward.verifiers[0].name: expected a verifier name", ":3:14");
    expect_yaml_error("reward:\n  verifiers:\n    - {name: format, weight: 1, gate: [accuracy]}\n",
                      "reward.verifiers[0].gate: expected one of accuracy|none, got a list",
                      ":3:39");
    expect_yaml_error("reward:\n  verifiers:\n    - {name: format, weight: 1, opt: {a: 1}}\n",
                      "reward.verifiers[0].opt: verifier options take a scalar value (text), got "
                      "a mapping",
                      ":3:38");
    expect_yaml_error("reward:\n  verifiers:\n    - {name: format, weight: 1, wieght: [1]}\n",
                      "reward.verifiers[0].wieght: verifier options take a scalar value (text), "
                      "got a list; did you mean weight?",
                      ":3:41");

    // Lists built in code are checked by validate.
    rl_config_defaults(&c);
    for (int i = 0; i < c.reward.verifiers.n; i++) c.reward.verifiers.v[i].weight = 0;
    CHECK(rl_config_validate(&c, &err) == -1 &&
              starts_with(err.msg, "reward.verifiers: the verifier weights are all 0"),
          "%s", err.msg);
    c.reward.verifiers.v[0].weight = NAN;
    CHECK(rl_config_validate(&c, &err) == -1 && starts_with(err.msg, "reward.verifiers: entry 0"),
          "%s", err.msg);
    rl_config_free(&c);
}

// ---- cross-field rules ---------------------------------------------------------------------------

static void test_cross_field(void) {
    expect_yaml_error(
        "model:\n  hidden_size: 96\n  num_attention_heads: 6\n  num_key_value_heads: 4\n",
        "model.num_key_value_heads: model.num_attention_heads (6) must be a "
        "multiple of model.num_key_value_heads (4)",
        " at t.yaml:4:24");
    expect_yaml_error(
        "model:\n  hidden_size: 100\n  num_attention_heads: 8\n  num_key_value_heads: 2\n",
        "model.num_attention_heads: model.hidden_size (100) must be a multiple of", ":3:24");
    expect_yaml_error("model:\n  hidden_size: 36\n  num_attention_heads: 4\n",
                      "model.num_attention_heads: the head size", ":3:24");
    expect_yaml_error("model:\n  use_sliding_window: true\n  max_window_layers: 9\n",
                      "model.max_window_layers: model.max_window_layers (9) is more than", ":3:22");
    expect_yaml_error("rollout:\n  top_p: 0.0\n", "rollout.top_p: expected a number in (0, 1]",
                      ":2:10");
    expect_yaml_error("algorithm:\n  clip_high: -0.1\n",
                      "algorithm.clip_high: expected a number in [0, 10]", ":2:14");
    expect_yaml_error("algorithm:\n  dual_clip: 1.0\n", "algorithm.dual_clip: expected 0 (off)",
                      ":2:14");
    expect_yaml_error("data:\n  source: jsonl\n",
                      "data.source: data.source jsonl needs data.train_path", ":2:11");
    expect_yaml_error("data:\n  train_path: x.jsonl\n  source: jsonl\n  prompt_template: \"Q\"\n",
                      "data.prompt_template: must contain {problem}", ":4:20");
    expect_yaml_error("tokenizer:\n  kind: hf\n", "tokenizer.kind: tokenizer.kind hf needs",
                      ":2:9");
    expect_yaml_error("data:\n  tasks: []\n",
                      "data.tasks: data.source tasks needs at least one entry", ":2:10");
    expect_yaml_error("data:\n  task_weights: [0]\n", "data.task_weights: the weights are all 0",
                      ":2:17");
    expect_yaml_error("data:\n  arith:\n    min_ops: 5\n",
                      "data.arith.min_ops: data.arith.min_ops (5) is more than", ":3:14");
    expect_yaml_error("rollout:\n  stop: [\"\"]\n", "rollout.stop: entry 0 is an empty string",
                      ":2:9");
    expect_yaml_error("algorithm:\n  advantage: rloo\nrollout:\n  group_size: 1\n",
                      "rollout.group_size: algorithm.advantage rloo compares", ":4:15");
    expect_yaml_error("algorithm:\n  steps: 10\n  warmup_steps: 20\n",
                      "algorithm.warmup_steps: algorithm.warmup_steps (20) is more than "
                      "algorithm.steps (10)",
                      ":3:17");
    expect_yaml_error("algorithm:\n  overlong: penalty\n  overlong_buffer: 128\n",
                      "algorithm.overlong_buffer: algorithm.overlong_buffer (128) must be less",
                      ":3:20");
    expect_yaml_error("algorithm:\n  minibatches: 3\n",
                      "algorithm.minibatches: the 128 samples of a step", ":2:16");
    expect_yaml_error("sft:\n  source: jsonl\n", "sft.source: sft.source jsonl needs sft.path",
                      ":2:11");
    expect_yaml_error("eval:\n  max_new_tokens: 600\n",
                      "eval.max_new_tokens: eval.max_new_tokens (600) leaves no room", ":2:19");
    expect_yaml_error("run:\n  name: \"..\"\n", "run.name: expected a name", ":2:9");

    // Things that are fine: batch_std with groups of one, sliding window within the layers, sft
    // off with no budget, a model from a directory with a long completion budget.
    const char *ok[] = {
        "algorithm:\n  advantage: batch_std\nrollout:\n  group_size: 1\n",
        "model:\n  use_sliding_window: true\n  max_window_layers: 4\n",
        "sft:\n  enabled: false\n  time_budget_s: 0\n",
        "model:\n  path: some/dir\nrollout:\n  max_new_tokens: 4096\n",
        "algorithm:\n  dual_clip: 3\n  minibatches: 4\n",
        "data:\n  source: jsonl\n  train_path: a.jsonl\n  tasks: []\n",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        rl_config c;
        rl_err err = {0};
        CHECK(load_str(&c, ok[i], &err) == 0 && rl_config_finish(&c, &err) == 0, "%s: %s", ok[i],
              err.msg);
        rl_config_free(&c);
    }
}

// sft.steps 10 < the default warm-up 50: the message names the key that was set and its line.
static void test_blame_points_at_the_set_key(void) {
    rl_config c;
    rl_err err = {0};
    CHECK(load_str(&c, "sft:\n  steps: 10\n", &err) == 0, "%s", err.msg);
    CHECK(rl_config_finish(&c, &err) == -1, "accepted");
    CHECK(strcmp(err.msg, "sft.steps: sft.warmup_steps (50) is more than sft.steps (10) at "
                          "t.yaml:2:10") == 0,
          "%s", err.msg);
    rl_config_free(&c);
    rl_config_defaults(&c);
    c.sft.steps = 10; // set in code: nobody to blame but the default
    CHECK(rl_config_validate(&c, &err) == -1 && ends_with(err.msg, " (the default)"), "%s",
          err.msg);
    rl_config_free(&c);
}

// ---- round trip ----------------------------------------------------------------------------------

static void check_round_trip(const rl_config *c, const char *what) {
    char *text = NULL;
    rl_err err = {0};
    CHECK(rl_config_to_yaml(c, &text, &err) == 0, "%s: to_yaml: %s", what, err.msg);
    if (!text) return;
    rl_config back;
    int rc = load_str(&back, text, &err);
    CHECK(rc == 0, "%s: reload: %s\n%s", what, err.msg, text);
    const char *diff = rc == 0 ? rl_config_diff(c, &back) : NULL;
    CHECK(diff == NULL, "%s: key %s differs after the round trip", what, diff);
    // And the text is a fixed point.
    char *again = NULL;
    CHECK(rl_config_to_yaml(&back, &again, &err) == 0 && again && strcmp(text, again) == 0,
          "%s: YAML not stable", what);
    free(again);
    free(text);
    rl_config_free(&back);
}

static void test_round_trip(void) {
    rl_config c;
    rl_err err = {0};
    rl_config_defaults(&c);
    check_round_trip(&c, "defaults");
    CHECK(rl_config_finish(&c, &err) == 0, "%s", err.msg);
    check_round_trip(&c, "finished defaults");
    rl_config_free(&c);

    CHECK(rl_config_load(&c, "configs/tiny.yaml", &err) == 0 && rl_config_finish(&c, &err) == 0,
          "%s", err.msg);
    check_round_trip(&c, "tiny.yaml");
    rl_config_free(&c);

    // Strings YAML would misread if written plainly, and verifier options.
    rl_config_defaults(&c);
    const char *sets[] = {
        "run.name=123",
        "model.path=\"true\"",
        "data.train_path=null",
        "data.heldout_path= leading and trailing ",
        "data.split_key=#not a comment",
        "data.system_prompt=\"line one\\nline \\\"two\\\"\\t\\u00e9\\u4e2d\"",
        "data.prompt_template=- {problem}: [x] {y} & *z ! 'q'",
        "tokenizer.path=~",
        "rollout.stop=[\"\", \"</s>\", \"\\n\\n\", \"a, b\", \"[\", \"#\", \"yes\", \"1e3\"]",
        "data.tasks=[deriv]",
        "data.task_weights=[0.1]",
        "reward.verifiers=[{name: x.y-z, weight: 1e-300, command: \"a: b\", o1: \"\", o2: '3', "
        "o3: \"x\\ny\", o4: null}, {name: p, weight: 0.1, plugin: ./p.so, gate: none}]",
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        CHECK(rl_config_set(&c, sets[i], &err) == 0, "%s: %s", sets[i], err.msg);
    check_round_trip(&c, "awkward strings");
    rl_config_free(&c);

    // Random values in range for every int, number and bool key.
    int n;
    const rl_config_key *keys = rl_config_keys(&n);
    for (int trial = 0; trial < 20; trial++) {
        rl_rng rng = rl_rng_stream(99, 7, (uint64_t)trial, 0);
        rl_config_defaults(&c);
        for (int i = 0; i < n; i++) {
            const rl_config_key *k = &keys[i];
            char assignment[256];
            if (k->type == RL_CK_NUM) {
                double hi = isfinite(k->max) ? k->max : k->min + 1e6;
                double v = k->min + (hi - k->min) * rl_rng_double(&rng);
                if (trial % 2) v = k->min + (hi - k->min) * pow(rl_rng_double(&rng), 30);
                if (!(v > k->min) && (k->flags & RL_CK_MIN_OPEN)) v = hi;
                if (!(v < hi) && (k->flags & RL_CK_MAX_OPEN)) continue;
                snprintf(assignment, sizeof assignment, "%s=%.17g", k->path, v);
            } else if (k->type == RL_CK_INT) {
                double hi = k->max < 1e7 ? k->max : k->min + 1e7;
                long v = (long)k->min + (long)rl_rng_below(&rng, (uint32_t)(hi - k->min + 1));
                snprintf(assignment, sizeof assignment, "%s=%ld", k->path, v);
            } else if (k->type == RL_CK_BOOL) {
                snprintf(assignment, sizeof assignment, "%s=%s", k->path,
                         rl_rng_below(&rng, 2) ? "true" : "false");
            } else {
                continue;
            }
            CHECK(rl_config_set(&c, assignment, &err) == 0, "%s: %s", assignment, err.msg);
        }
        check_round_trip(&c, "random values");
        rl_config_free(&c);
    }

    // diff notices a change in each kind of value.
    rl_config a, b;
    rl_config_defaults(&a);
    rl_config_defaults(&b);
    CHECK(rl_config_diff(&a, &b) == NULL, "equal defaults differ");
    const char *changes[] = {"run.seed=1",
                             "rollout.top_p=0.5",
                             "rollout.greedy=true",
                             "run.device=cuda",
                             "model.path=x",
                             "rollout.stop=[x]",
                             "data.task_weights=[1]",
                             "reward.verifiers=[{name: accuracy, weight: 0.4, k: v}]"};
    const char *keys_changed[] = {"run.seed",          "rollout.top_p",   "rollout.greedy",
                                  "run.device",        "model.path",      "rollout.stop",
                                  "data.task_weights", "reward.verifiers"};
    for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++) {
        rl_config_free(&b);
        rl_config_defaults(&b);
        CHECK(rl_config_set(&b, changes[i], &err) == 0, "%s", err.msg);
        const char *d = rl_config_diff(&a, &b);
        CHECK(d && strcmp(d, keys_changed[i]) == 0, "%s: diff says %s", changes[i], d);
    }
    rl_config_free(&a);
    rl_config_free(&b);
}

// ---- malformed configs on disk -------------------------------------------------------------------

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Each tests/configs_bad/*.yaml starts with "# expect: <message prefix> @ <line>:<col>".
static void test_bad_configs(void) {
    const char *dir = "tests/configs_bad";
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    if (!d) return;
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".yaml") == 0) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_names);
    CHECK(n >= 25, "only %d malformed configs", n);
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *text = test_read_file(path, NULL);
        CHECK(text && strncmp(text, "# expect: ", 10) == 0, "%s: no expect line", path);
        char *at = text ? strstr(text, " @ ") : NULL;
        char *eol = text ? strchr(text, '\n') : NULL;
        if (!text || !at || !eol || at > eol) {
            free(text);
            free(names[i]);
            continue;
        }
        char prefix[512], loc[64], suffix[600];
        snprintf(prefix, sizeof prefix, "%.*s", (int)(at - text - 10), text + 10);
        snprintf(loc, sizeof loc, "%.*s", (int)(eol - at - 3), at + 3);
        snprintf(suffix, sizeof suffix, " at %s:%s", path, loc);
        rl_config c;
        rl_err err = {0};
        int rc = rl_config_load(&c, path, &err);
        if (rc == 0) rc = rl_config_finish(&c, &err);
        CHECK(rc == -1 && err.kind == RL_EINPUT, "%s: accepted", path);
        CHECK(starts_with(err.msg, prefix), "%s:\n  got   '%s'\n  wants '%s...'", path, err.msg,
              prefix);
        CHECK(ends_with(err.msg, suffix), "%s:\n  got   '%s'\n  wants '...%s'", path, err.msg,
              suffix);
        rl_config_free(&c);
        free(text);
        free(names[i]);
    }
}

// ---- robustness ----------------------------------------------------------------------------------

// Randomly damaged copies of tiny.yaml: every outcome is a clean accept or a one-line bad-input
// error, never a crash, an internal error or a read out of bounds (run under ASan in CI).
static void test_mutations(void) {
    char *orig = test_read_file("configs/tiny.yaml", NULL);
    CHECK(orig != NULL, "configs/tiny.yaml missing");
    if (!orig) return;
    size_t len = strlen(orig);
    static const char special[] = ":-[]{}#&*!|>'\"%@,?~\t\n 0123456789.e\\\xff\xc3";
    rl_rng rng = rl_rng_stream(2024, 11, 0, 0);
    int rejected = 0;
    for (int trial = 0; trial < 400; trial++) {
        char *text = malloc(len + 8);
        memcpy(text, orig, len + 1);
        size_t n = len;
        int edits = 1 + (int)rl_rng_below(&rng, 4);
        for (int e = 0; e < edits && n > 1; e++) {
            size_t at = rl_rng_below(&rng, (uint32_t)n);
            switch (rl_rng_below(&rng, 3)) {
            case 0:
                text[at] = special[rl_rng_below(&rng, sizeof special - 1)];
                break;
            case 1:
                memmove(text + at, text + at + 1, n - at), n--;
                break; // delete a byte
            default:
                text[at] = (char)(1 + rl_rng_below(&rng, 255));
                break;
            }
        }
        rl_config c;
        rl_err err = {0};
        int rc = rl_config_load_text(&c, text, n, "m.yaml", &err);
        if (rc == 0) rc = rl_config_finish(&c, &err);
        if (rc == 0) {
            char *yaml = NULL;
            CHECK(rl_config_to_yaml(&c, &yaml, &err) == 0, "trial %d: to_yaml: %s", trial, err.msg);
            free(yaml);
        } else {
            rejected++;
            CHECK(err.kind == RL_EINPUT && err.msg[0] && !strchr(err.msg, '\n'),
                  "trial %d: kind %d message '%s'", trial, err.kind, err.msg);
        }
        rl_config_free(&c);
        free(text);
    }
    CHECK(rejected > 100, "only %d of 400 damaged configs rejected", rejected);
    free(orig);
}

// ---- the reference -------------------------------------------------------------------------------

static void test_reference_up_to_date(void) {
    char *generated = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&generated, &len);
    CHECK(f && rl_config_reference_markdown(f) == 0, "reference failed");
    if (f) fclose(f);
    char *committed = test_read_file("configs/README.md", NULL);
    CHECK(committed != NULL, "configs/README.md missing");
    CHECK(generated && committed && strcmp(generated, committed) == 0,
          "configs/README.md is out of date with the schema: regenerate it with "
          "`build/rlpipe config reference > configs/README.md`");
    // Every key appears in it.
    int n;
    const rl_config_key *keys = rl_config_keys(&n);
    for (int i = 0; generated && i < n; i++) {
        char needle[160];
        snprintf(needle, sizeof needle, "`%s`", keys[i].path);
        CHECK(strstr(generated, needle), "%s missing from the reference", keys[i].path);
    }
    free(generated);
    free(committed);
}

int main(void) {
    RUN(test_schema_table);
    RUN(test_enum_order);
    RUN(test_defaults);
    RUN(test_load_tiny);
    RUN(test_missing_file);
    RUN(test_depth_and_size_caps);
    RUN(test_every_type);
    RUN(test_type_errors);
    RUN(test_overrides);
    RUN(test_unknown_keys);
    RUN(test_verifiers);
    RUN(test_cross_field);
    RUN(test_blame_points_at_the_set_key);
    RUN(test_round_trip);
    RUN(test_bad_configs);
    RUN(test_mutations);
    RUN(test_reference_up_to_date);
    return test_summary();
}
