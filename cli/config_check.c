// config_check: cross-field checks of a run config and the derived defaults. See config.h.
//
// Single keys are range-checked while loading; what is checked here involves two keys or more
// (head counts that must divide, a path a source needs). A message starts with the key most likely
// at fault: of the keys involved, the one the config file or a --set actually set.
#define _POSIX_C_SOURCE 200809L
#include "cli/config.h"
#include "cli/config_internal.h"
#include "policy/fileio.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int was_set(const rl_config *c, const char *key) {
    int k = rl_config_find_key(key);
    return k >= 0 && c->origin && c->origin[k];
}

// Fails with "<key>: <message><where>", where key is `a`, or `b` when only b was set explicitly
// (so the message points at a line of the file, or at the --set, that the user wrote).
static int vfail(const rl_config *c, rl_err *err, const char *a, const char *b, const char *fmt,
                 ...) __attribute__((format(printf, 5, 6)));

static int vfail(const rl_config *c, rl_err *err, const char *a, const char *b, const char *fmt,
                 ...) {
    const char *key = b && !was_set(c, a) && was_set(c, b) ? b : a;
    char msg[RL_ERR_MSG_MAX], where[RL_ERR_MSG_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cfg_where(c, key, where, sizeof where);
    return rl_fail(err, RL_EINPUT, "%s: %s%s", key, msg, where);
}

static int valid_run_name(const char *s) {
    if (!*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
    for (const char *p = s; *p; p++)
        if (!(*p == '_' || *p == '-' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return 0;
    return 1;
}

static int check_run(const rl_config *c, rl_err *err) {
    if (!valid_run_name(c->run.name))
        return vfail(c, err, "run.name", NULL,
                     "expected a name of letters, digits, '.', '_' and '-', got \"%s\"",
                     c->run.name);
    if (c->run.precision == RL_CFG_PREC_BF16 && c->run.device != RL_CFG_CUDA)
        return vfail(c, err, "run.precision", "run.device",
                     "bfloat16 needs run.device cuda (the CPU backend is float32 only)");
    if (c->run.precision == RL_CFG_PREC_BF16 && c->parallel.zero == 1)
        return vfail(c, err, "parallel.zero", "run.precision",
                     "ZeRO-1 with bfloat16 is not supported yet (the optimizer's shard does not "
                     "hold a float32 master); use parallel.zero: 0");
    return 0;
}

static int check_model(const rl_config *c, rl_err *err) {
    const rl_cfg_model *m = &c->model;
    if (m->num_attention_heads % m->num_key_value_heads != 0)
        return vfail(c, err, "model.num_key_value_heads", "model.num_attention_heads",
                     "model.num_attention_heads (%d) must be a multiple of "
                     "model.num_key_value_heads (%d)",
                     m->num_attention_heads, m->num_key_value_heads);
    if (m->hidden_size % m->num_attention_heads != 0)
        return vfail(c, err, "model.num_attention_heads", "model.hidden_size",
                     "model.hidden_size (%d) must be a multiple of model.num_attention_heads (%d)",
                     m->hidden_size, m->num_attention_heads);
    if ((m->hidden_size / m->num_attention_heads) % 2 != 0)
        return vfail(c, err, "model.num_attention_heads", "model.hidden_size",
                     "the head size model.hidden_size / model.num_attention_heads = %d must be "
                     "even (rotary embedding rotates pairs)",
                     m->hidden_size / m->num_attention_heads);
    if (m->use_sliding_window && m->max_window_layers > m->num_hidden_layers)
        return vfail(c, err, "model.max_window_layers", "model.use_sliding_window",
                     "model.max_window_layers (%d) is more than model.num_hidden_layers (%d)",
                     m->max_window_layers, m->num_hidden_layers);
    if (!m->path[0]) { // from scratch: the context length is ours to check
        if (c->rollout.max_new_tokens >= m->max_position_embeddings)
            return vfail(c, err, "rollout.max_new_tokens", "model.max_position_embeddings",
                         "rollout.max_new_tokens (%d) leaves no room for the prompt in "
                         "model.max_position_embeddings (%d)",
                         c->rollout.max_new_tokens, m->max_position_embeddings);
        if (c->eval.max_new_tokens >= m->max_position_embeddings)
            return vfail(c, err, "eval.max_new_tokens", "model.max_position_embeddings",
                         "eval.max_new_tokens (%d) leaves no room for the prompt in "
                         "model.max_position_embeddings (%d)",
                         c->eval.max_new_tokens, m->max_position_embeddings);
    }
    return 0;
}

static int check_tokenizer(const rl_config *c, rl_err *err) {
    if (c->tokenizer.kind == RL_CFG_TOK_HF && !c->tokenizer.path[0] && !c->model.path[0])
        return vfail(c, err, "tokenizer.path", "tokenizer.kind",
                     "tokenizer.kind hf needs tokenizer.path (a directory with tokenizer.json) "
                     "or model.path");
    return 0;
}

static int check_data(const rl_config *c, rl_err *err) {
    const rl_cfg_data *d = &c->data;
    if (d->source == RL_CFG_DATA_JSONL && !d->train_path[0])
        return vfail(c, err, "data.train_path", "data.source",
                     "data.source jsonl needs data.train_path");
    if (d->source == RL_CFG_DATA_TASKS && d->tasks.n == 0)
        return vfail(c, err, "data.tasks", "data.source",
                     "data.source tasks needs at least one entry in data.tasks");
    if (d->task_weights.n > 0) {
        if (d->task_weights.n != d->tasks.n)
            return vfail(c, err, "data.task_weights", "data.tasks",
                         "data.task_weights has %d entries but data.tasks has %d",
                         d->task_weights.n, d->tasks.n);
        double sum = 0;
        for (int i = 0; i < d->task_weights.n; i++) sum += d->task_weights.v[i];
        if (!(sum > 0)) return vfail(c, err, "data.task_weights", NULL, "the weights are all 0");
    }
    if (!strstr(d->prompt_template, "{problem}"))
        return vfail(c, err, "data.prompt_template", NULL,
                     "must contain {problem} (where the problem text goes)");
    if (d->arith.min_ops > d->arith.max_ops)
        return vfail(c, err, "data.arith.min_ops", "data.arith.max_ops",
                     "data.arith.min_ops (%d) is more than data.arith.max_ops (%d)",
                     d->arith.min_ops, d->arith.max_ops);
    return 0;
}

static int check_rollout(const rl_config *c, rl_err *err) {
    for (int i = 0; i < c->rollout.stop.n; i++)
        if (!c->rollout.stop.v[i][0])
            return vfail(c, err, "rollout.stop", NULL, "entry %d is an empty string", i);
    if (c->rollout.group_size < 2 && c->algorithm.advantage != RL_CFG_ADV_BATCH_STD)
        return vfail(c, err, "rollout.group_size", "algorithm.advantage",
                     "algorithm.advantage %s compares samples within a group and needs "
                     "rollout.group_size >= 2, got %d",
                     rl_config_enum_name("algorithm.advantage", c->algorithm.advantage),
                     c->rollout.group_size);
    return 0;
}

// The loader checks verifier lists as it reads them; this catches lists built in code.
static int check_reward(const rl_config *c, rl_err *err) {
    const rl_verifier_list *l = &c->reward.verifiers;
    if (l->n == 0) return vfail(c, err, "reward.verifiers", NULL, "expected at least one verifier");
    double sum = 0;
    for (int i = 0; i < l->n; i++) {
        const rl_verifier_spec *s = &l->v[i];
        if (!s->name || !s->name[0])
            return vfail(c, err, "reward.verifiers", NULL, "entry %d has no name", i);
        if (!(s->weight >= 0) || !isfinite(s->weight))
            return vfail(c, err, "reward.verifiers", NULL,
                         "entry %d (%s) has weight %g; expected a number >= 0", i, s->name,
                         s->weight);
        for (int j = 0; j < i; j++)
            if (strcmp(l->v[j].name, s->name) == 0)
                return vfail(c, err, "reward.verifiers", NULL, "verifier \"%s\" is listed twice",
                             s->name);
        sum += s->weight;
    }
    if (!(sum > 0))
        return vfail(c, err, "reward.verifiers", NULL, "the verifier weights are all 0");
    return 0;
}

static int check_algorithm(const rl_config *c, rl_err *err) {
    const rl_cfg_algorithm *a = &c->algorithm;
    if (a->dual_clip != 0 && !(a->dual_clip > 1))
        return vfail(c, err, "algorithm.dual_clip", NULL,
                     "expected 0 (off) or a number > 1, got %g", a->dual_clip);
    if (a->steps > 0 && a->warmup_steps > a->steps)
        return vfail(c, err, "algorithm.warmup_steps", "algorithm.steps",
                     "algorithm.warmup_steps (%d) is more than algorithm.steps (%d)",
                     a->warmup_steps, a->steps);
    if (a->overlong == RL_CFG_OVERLONG_PENALTY && a->overlong_buffer >= c->rollout.max_new_tokens)
        return vfail(c, err, "algorithm.overlong_buffer", "algorithm.overlong",
                     "algorithm.overlong_buffer (%d) must be less than rollout.max_new_tokens (%d)",
                     a->overlong_buffer, c->rollout.max_new_tokens);
    size_t samples = (size_t)c->rollout.prompts_per_step * (size_t)c->rollout.group_size;
    if (samples % (size_t)a->minibatches != 0)
        return vfail(c, err, "algorithm.minibatches", "rollout.prompts_per_step",
                     "the %zu samples of a step (rollout.prompts_per_step x rollout.group_size) "
                     "do not split into %d equal algorithm.minibatches",
                     samples, a->minibatches);
    return 0;
}

static int check_sft(const rl_config *c, rl_err *err) {
    const rl_cfg_sft *s = &c->sft;
    if (!s->enabled) return 0;
    if (s->steps == 0 && s->time_budget_s == 0)
        return vfail(c, err, "sft.time_budget_s", "sft.steps",
                     "sft.steps and sft.time_budget_s are both 0; set one (or sft.enabled: false)");
    if (s->steps > 0 && s->warmup_steps > s->steps)
        return vfail(c, err, "sft.warmup_steps", "sft.steps",
                     "sft.warmup_steps (%d) is more than sft.steps (%d)", s->warmup_steps,
                     s->steps);
    if (s->source == RL_CFG_SFT_JSONL && !s->path[0])
        return vfail(c, err, "sft.path", "sft.source", "sft.source jsonl needs sft.path");
    return 0;
}

static int check_distill(const rl_config *c, rl_err *err) {
    const rl_cfg_distill *d = &c->distill;
    if (d->tau_min > d->tau_max)
        return vfail(c, err, "distill.tau_min", "distill.tau_max",
                     "distill.tau_min (%g) is more than distill.tau_max (%g)", d->tau_min,
                     d->tau_max);
    if (d->warmup_steps > d->steps)
        return vfail(c, err, "distill.warmup_steps", "distill.steps",
                     "distill.warmup_steps (%d) is more than distill.steps (%d)", d->warmup_steps,
                     d->steps);
    if (d->cache_topk > 0 && d->source == RL_CFG_DISTILL_ON_POLICY)
        return vfail(c, err, "distill.cache_topk", "distill.source",
                     "the teacher cache needs fixed completions; distill.source on_policy samples "
                     "new ones every step (set distill.cache_topk: 0)");
    if (d->source == RL_CFG_DISTILL_DATASET && c->sft.source == RL_CFG_SFT_JSONL && !c->sft.path[0])
        return vfail(c, err, "sft.path", "distill.source",
                     "distill.source dataset with sft.source jsonl needs sft.path");
    return 0;
}

int rl_config_validate(const rl_config *c, rl_err *err) {
    RL_TRY(check_run(c, err));
    RL_TRY(check_model(c, err));
    RL_TRY(check_tokenizer(c, err));
    RL_TRY(check_data(c, err));
    RL_TRY(check_rollout(c, err));
    RL_TRY(check_reward(c, err));
    RL_TRY(check_algorithm(c, err));
    RL_TRY(check_sft(c, err));
    RL_TRY(check_distill(c, err));
    return 0;
}

static void replace(char **field, char *value) {
    free(*field);
    *field = value;
}

int rl_config_finish(rl_config *c, rl_err *err) {
    RL_TRY(rl_config_validate(c, err));
    if (!c->run.out_dir[0]) replace(&c->run.out_dir, rl_path_join("runs", c->run.name));
    if (!c->logging.db[0]) replace(&c->logging.db, rl_path_join(c->run.out_dir, "rollouts.db"));
    if (!c->checkpoint.dir[0])
        replace(&c->checkpoint.dir, rl_path_join(c->run.out_dir, "checkpoints"));
    if (!c->distill.cache_path[0])
        replace(&c->distill.cache_path, rl_path_join(c->run.out_dir, "teacher_topk.bin"));
    if (c->tokenizer.kind == RL_CFG_TOK_HF && !c->tokenizer.path[0])
        replace(&c->tokenizer.path, rl_strdup(c->model.path));
    return 0;
}
