// rlpipe plan: the GPU memory a run config needs per GPU, and whether it fits (cli/plan.md).
// The arithmetic is policy/memplan.c; this file derives the per-GPU workload from the config,
// prints the table (or JSON) and searches for what would make an oversized run fit.
#define _POSIX_C_SOURCE 200809L
#include "cli/cli.h"
#include "cli/config.h"
#include "policy/hf_config.h"
#include "policy/memplan.h"
#include "policy/model.h"
#include "policy/tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: rlpipe plan CONFIG [--set key=value]... [--gpus N] [--gpu-memory GB] [--json]\n"
    "                   [--dtype bf16|f32] [--micro-batch N] [--seq-len N] [--prompt-tokens N]\n"
    "                   [--rollout-batch N] [--tensor-parallel N] [--reserve GB]\n"
    "\n"
    "The memory budget of one GPU for the run CONFIG: weights, gradients, float32 master weights\n"
    "and AdamW moments by ZeRO stage (0 and 1, which rlpipe runs, and what 2 and 3 would give),\n"
    "activations of one training micro-batch with and without per-layer recomputation, the\n"
    "paged KV cache of the rollout batch, lm-head logit chunks and scratch, and whether it fits.\n"
    "When it does not fit even with ZeRO-1, it says what would: ZeRO-3, tensor parallelism, more\n"
    "GPUs or a smaller micro-batch, and by how much. Nothing is allocated or written.\n"
    "\n"
    "The model is model.path's config.json when model.path is set (no weights are read), else\n"
    "the model section's shape. 1 GB here is 2^30 bytes (GiB, as nvidia-smi's MiB).\n"
    "\n"
    "options:\n"
    "  --gpus N             GPUs, data parallel (default 1)\n"
    "  --gpu-memory GB      memory of one GPU (default 80)\n"
    "  --dtype bf16|f32     element type of weights and activations (default bf16: 18 bytes per\n"
    "                       parameter of model state; f32: 16)\n"
    "  --micro-batch N      sequences per forward+backward on one GPU (default: this GPU's share\n"
    "                       of prompts_per_step x group_size / algorithm.minibatches)\n"
    "  --seq-len N          tokens per training sequence (default: prompt tokens +\n"
    "                       rollout.max_new_tokens, at most max_position_embeddings)\n"
    "  --prompt-tokens N    prompt length assumed for sequences and the KV cache (default 512)\n"
    "  --rollout-batch N    sequences decoded at once on one GPU (default: this GPU's whole\n"
    "                       groups of prompts_per_step x group_size)\n"
    "  --tensor-parallel N  tensor-parallel degree (default 1; must divide --gpus and the heads)\n"
    "  --reserve GB         CUDA context, cuBLAS workspace and allocator slack (default 1)\n"
    "  --json               one JSON object on stdout (bytes), for scripts\n"
    "  --set key=value      override a config key (repeatable)\n"
    "  -h, --help           this help\n"
    "\n"
    "Exit status: 0 whether or not it fits (the verdict is in the output), 2 bad input.\n";

#define GIB            (1024.0 * 1024.0 * 1024.0)
#define DEFAULT_PROMPT 512
#define DECODE_ROWS    1024 // the engine's prefill chunk (policy/model.c prefill_rows)
#define LOGITS_FLOATS  ((size_t)16 << 20) // policy/model.c LOGITS_BUDGET

typedef struct plan_opts {
    int gpus, tp, micro_batch, seq_len, prompt, rollout_batch, json;
    double gpu_bytes, reserve;
    rl_dtype act;
} plan_opts;

// ---- option parsing ----------------------------------------------------------------------------

static int parse_int(const char *s, const char *name, int min, int max, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return cli_usage_error("plan", "%s: expected an integer in [%d, %d], got '%s'", name, min,
                               max, s);
    *out = (int)v;
    return 0;
}

static int parse_gb(const char *s, const char *name, double min, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > 1e6)
        return cli_usage_error("plan", "%s: expected a number of GB in [%g, 1e6], got '%s'", name,
                               min, s);
    *out = v * GIB;
    return 0;
}

// ---- the model shape ---------------------------------------------------------------------------

static int model_shape(const rl_config *c, rl_model_config *mc, rl_err *err) {
    if (c->model.path[0]) {
        if (rl_hf_config_load(mc, c->model.path, err)) return -1;
        return 0;
    }
    cli_model_shape(&c->model, mc);
    // the vocabulary comes from the tokenizer, as `rlpipe train` sizes it
    rl_tokenizer *tok;
    const char *what = c->tokenizer.kind == RL_CFG_TOK_BYTE ? "byte" : c->tokenizer.path;
    if (rl_tokenizer_load(&tok, what, err)) return rl_err_prefix(err, "tokenizer: ");
    int vocab = rl_tokenizer_vocab_size(tok);
    if (c->tokenizer.kind != RL_CFG_TOK_BYTE) vocab = (vocab + 63) / 64 * 64;
    rl_tokenizer_free(tok);
    mc->vocab_size = vocab;
    return 0;
}

// ---- the per-GPU workload ----------------------------------------------------------------------

typedef struct workload {
    int dp;      // data-parallel ranks
    int groups;  // prompt groups per rank
    int samples; // sequences per rank per step
    rl_memplan_params p;
} workload;

static workload workload_for(const rl_config *c, const rl_model_config *mc, const plan_opts *o,
                             int gpus, int tp, int micro_batch) {
    workload w = {0};
    w.dp = gpus / tp;
    // prompts are sharded across ranks in whole groups (issue 12): the busiest rank's share
    w.groups = (c->rollout.prompts_per_step + w.dp - 1) / w.dp;
    w.samples = w.groups * c->rollout.group_size;
    int max_pos = mc->max_position_embeddings;
    int prompt = o->prompt < max_pos ? o->prompt : max_pos - 1;
    if (prompt < 0) prompt = 0;
    int completion = c->rollout.max_new_tokens;
    if (prompt + completion > max_pos) completion = max_pos - prompt;
    if (completion < 1) completion = 1;
    int seq = o->seq_len ? o->seq_len : prompt + completion;
    int minibatches = c->algorithm.minibatches > 0 ? c->algorithm.minibatches : 1;
    int mb = micro_batch ? micro_batch : (w.samples + minibatches - 1) / minibatches;
    if (mb < 1) mb = 1;
    w.p = (rl_memplan_params){
        .gpus = gpus,
        .tensor_parallel = tp,
        .act = o->act,
        .micro_batch = mb,
        .seq_len = seq,
        .rollout_seqs = o->rollout_batch ? o->rollout_batch : w.samples,
        .prompt_len = prompt,
        .completion_len = completion,
        .group_size = c->rollout.group_size,
        .decode_rows = DECODE_ROWS,
        .logits_floats = LOGITS_FLOATS,
        .reserve_bytes = o->reserve,
    };
    return w;
}

// ---- verdict -----------------------------------------------------------------------------------

// The implemented configurations, in order of preference: no sharding and no recomputation
// first (fastest), then ZeRO-1, then recomputation.
static const int IMPLEMENTED[][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};

typedef struct verdict {
    int fits, stage, recompute;
    double need, free_bytes;
    // when it does not fit with ZeRO-0/1:
    int z2_fits, z3_fits; // at the given GPU count, with recomputation
    double z2_need, z3_need;
    int z3_gpus;         // fewest GPUs with which ZeRO-3 + recomputation fits (0: none <= 4096)
    int tp_here;         // on these GPUs: the first tensor-parallel degree with which
    double tp_here_need; // ZeRO-1 fits, else the largest tried (0: none possible)
    int tp_rollout;      // with tp_here: the most rollout sequences per GPU that fit
    int tp, tp_gpus;     // else: the smallest degree <= 8 and fewest GPUs that fit
    double tp_need;
    double full_weights; // bytes of the whole working-precision weights
    int micro_batch;     // largest micro-batch with which ZeRO-1 + recomputation fits (0: none)
} verdict;

static int compute(const rl_model_config *mc, const workload *w, rl_memplan *plan) {
    rl_err e = {0};
    return rl_memplan_compute(mc, &w->p, plan, &e);
}

static verdict decide(const rl_config *c, const rl_model_config *mc, const plan_opts *o,
                      const rl_memplan *plan, const workload *w) {
    verdict v = {0};
    double M = o->gpu_bytes;
    for (size_t i = 0; i < sizeof IMPLEMENTED / sizeof IMPLEMENTED[0]; i++) {
        int s = IMPLEMENTED[i][0], r = IMPLEMENTED[i][1];
        if (plan->peak[s][r] <= M) {
            v.fits = 1, v.stage = s, v.recompute = r, v.need = plan->peak[s][r];
            v.free_bytes = M - v.need;
            return v;
        }
    }
    v.stage = 1, v.recompute = 1, v.need = plan->peak[1][1], v.free_bytes = M - v.need;
    v.z2_need = plan->peak[2][1], v.z2_fits = v.z2_need <= M;
    v.z3_need = plan->peak[3][1], v.z3_fits = v.z3_need <= M;
    v.full_weights = (double)plan->n_params * rl_dtype_size(o->act) / o->tp;
    rl_memplan q;
    // ZeRO-3 with more GPUs (each GPU's share of the batch shrinks too)
    for (int g = o->gpus; g <= 4096 && !v.z3_gpus; g += o->tp) {
        workload wg = workload_for(c, mc, o, g, o->tp, o->micro_batch);
        if (compute(mc, &wg, &q) == 0 && q.peak[3][1] <= M) v.z3_gpus = g;
    }
    // tensor parallelism with ZeRO-1 over the remaining data-parallel ranks, on these GPUs
    for (int t = o->tp * 2; t <= o->gpus && t <= 64; t *= 2) {
        if (o->gpus % t || mc->num_attention_heads % t) continue;
        workload wt = workload_for(c, mc, o, o->gpus, t, o->micro_batch);
        if (compute(mc, &wt, &q) != 0) continue;
        v.tp_here = t, v.tp_here_need = q.peak[1][1];
        if (q.peak[1][1] <= M) break;
    }
    // with the largest degree tried: the most rollout sequences per GPU that would fit
    if (v.tp_here && v.tp_here_need > M) {
        workload wt = workload_for(c, mc, o, o->gpus, v.tp_here, o->micro_batch);
        for (int n = wt.p.rollout_seqs - 1; n >= 1 && !v.tp_rollout; n--) {
            wt.p.rollout_seqs = n;
            if (compute(mc, &wt, &q) == 0 && q.peak[1][1] <= M) v.tp_rollout = n;
        }
    }
    // else the smallest degree (up to 8, one node) and GPU count that would do it
    if (!v.tp_here || v.tp_here_need > M) {
        for (int t = o->tp * 2; t <= 8 && !v.tp_gpus; t *= 2) {
            if (mc->num_attention_heads % t) continue;
            for (int g = t; g <= 4096 && !v.tp_gpus; g += t) {
                workload wt = workload_for(c, mc, o, g, t, o->micro_batch);
                if (compute(mc, &wt, &q) == 0 && q.peak[1][1] <= M)
                    v.tp = t, v.tp_gpus = g, v.tp_need = q.peak[1][1];
            }
        }
    }
    // a smaller micro-batch
    for (int mb = w->p.micro_batch - 1; mb >= 1 && !v.micro_batch; mb--) {
        workload wm = workload_for(c, mc, o, o->gpus, o->tp, mb);
        if (compute(mc, &wm, &q) == 0 && q.peak[1][1] <= M) v.micro_batch = mb;
    }
    return v;
}

// ---- text output -------------------------------------------------------------------------------

static void header4(const char *title) {
    printf("%-36s %9s %9s %9s %9s\n", title, "ZeRO-0", "ZeRO-1", "ZeRO-2", "ZeRO-3");
}

static void row4(const char *name, const double *x) {
    printf("  %-34s", name);
    for (int s = 0; s < RL_MEMPLAN_STAGES; s++) printf(" %9.2f", x[s] / GIB);
    printf("\n");
}

static void row1(const char *name, double x, const char *note) {
    printf("  %-34s %9.2f%s%s\n", name, x / GIB, note && note[0] ? "  " : "", note ? note : "");
}

static void print_text(const char *config_path, const rl_config *c, const rl_model_config *mc,
                       const plan_opts *o, const workload *w, const rl_memplan *p,
                       const verdict *v) {
    int hd = mc->head_dim > 0 ? mc->head_dim : mc->hidden_size / mc->num_attention_heads;
    const char *an = o->act == RL_BF16 ? "bf16" : "float32";
    printf("rlpipe plan %s\n", config_path);
    printf("model     %s: C=%d L=%d NH=%d NKV=%d hd=%d FF=%d V=%d, %s\n",
           c->model.path[0] ? c->model.path : "from scratch (model section)", mc->hidden_size,
           mc->num_hidden_layers, mc->num_attention_heads, mc->num_key_value_heads, hd,
           mc->intermediate_size, mc->vocab_size,
           mc->tie_word_embeddings ? "tied embeddings" : "untied lm_head");
    printf("          %lld parameters (%.3f B), %lld per layer", (long long)p->n_params,
           p->n_params / 1e9, (long long)p->layer_params);
    if (mc->use_sliding_window)
        printf("; sliding window %d on layers >= %d", mc->sliding_window, mc->max_window_layers);
    printf("\n");
    printf("GPUs      %d x %.1f GB, %s weights and activations; data parallel %d", o->gpus,
           o->gpu_bytes / GIB, an, w->dp);
    if (o->tp > 1) printf(" x tensor parallel %d", o->tp);
    printf("\n");
    printf("training  micro-batch %d sequences x %d tokens per GPU\n", w->p.micro_batch,
           w->p.seq_len);
    printf("rollout   %d sequences per GPU (%d prompts x %d samples), %d prompt + %d completion "
           "tokens\n\n",
           w->p.rollout_seqs, w->groups, c->rollout.group_size, w->p.prompt_len,
           w->p.completion_len);

    header4("model state per GPU (GB)");
    char name[64];
    snprintf(name, sizeof name, "weights (%s)", an);
    row4(name, p->weights);
    row4("gradients (float32)", p->grads);
    if (o->act == RL_BF16) row4("master weights (float32)", p->master);
    row4("AdamW m, v (float32)", p->optim);
    row4("in flight (ZeRO-2/3 buffers)", p->gather);
    row4("total", p->state);
    printf("  (rlpipe runs ZeRO-0 and ZeRO-1; stages 2 and 3 are shown for sizing)\n\n");

    printf("%-36s %9s %9s\n", "activations per GPU (GB)", "plain", "recompute");
    printf("  %-34s %9.2f %9.2f\n", "saved per layer, all layers", p->acts_layers / GIB,
           p->acts_recompute / GIB);
    printf("  %-34s %9.2f %9.2f\n", "final norm, scratch, per token", p->acts_common / GIB,
           p->acts_common / GIB);
    printf("  %-34s %9.2f %9.2f\n", "lm-head logit chunk (float32)", p->logits / GIB,
           p->logits / GIB);
    printf("  %-34s %9.2f %9.2f\n", "backward scratch (one layer)", p->grad_scratch / GIB,
           p->grad_scratch / GIB);
    printf("  %-34s %9.2f %9.2f\n\n", "total", p->acts_total[0] / GIB, p->acts_total[1] / GIB);

    printf("rollout per GPU (GB)\n");
    char note[160];
    snprintf(note, sizeof note, "(%lld blocks of %d positions; contiguous, unshared: %.2f)",
             (long long)p->kv_blocks, RL_KV_BLOCK, p->kv_flat / GIB);
    row1("KV cache, paged", p->kv, note);
    row1("decode scratch and logits", p->decode, "");
    row1("weights gathered to generate", p->rollout_weights[3], "(ZeRO-3 only)");
    row1("reserve (CUDA context, cuBLAS)", p->reserve, "");
    printf("\n");

    header4("peak per GPU (GB)");
    double no_rc[RL_MEMPLAN_STAGES], rc[RL_MEMPLAN_STAGES];
    for (int s = 0; s < RL_MEMPLAN_STAGES; s++) no_rc[s] = p->peak[s][0], rc[s] = p->peak[s][1];
    row4("without recomputation", no_rc);
    row4("with per-layer recomputation", rc);
    printf("\n");

    double M = o->gpu_bytes;
    if (v->fits) {
        printf("verdict: fits with ZeRO-%d %s recomputation: %.2f of %.2f GB per GPU (%.2f free)\n",
               v->stage, v->recompute ? "and per-layer" : "without", v->need / GIB, M / GIB,
               v->free_bytes / GIB);
        return;
    }
    printf("verdict: does NOT fit: even ZeRO-1 with per-layer recomputation needs %.2f GB per "
           "GPU, %.2f GB more than the %.2f GB card\n",
           v->need / GIB, (v->need - M) / GIB, M / GIB);
    printf("needed:\n");
    printf("  ZeRO-2 + recomputation on %d GPUs: %.2f GB per GPU (%s)\n", o->gpus, v->z2_need / GIB,
           v->z2_fits ? "fits" : "does not fit");
    if (v->z3_fits)
        printf("  ZeRO-3 + recomputation on %d GPUs: %.2f GB per GPU (fits; %.2f free)\n", o->gpus,
               v->z3_need / GIB, (M - v->z3_need) / GIB);
    else
        printf("  ZeRO-3 + recomputation on %d GPUs: %.2f GB per GPU (%.2f GB short)\n", o->gpus,
               v->z3_need / GIB, (v->z3_need - M) / GIB);
    if (v->z3_gpus && v->z3_gpus != o->gpus)
        printf("  ZeRO-3 + recomputation fits from %d GPUs\n", v->z3_gpus);
    else if (!v->z3_gpus)
        printf("  ZeRO-3 + recomputation fits on no number of GPUs (up to 4096): generation needs "
               "the whole weights (%.2f GB) on each GPU beside the activations\n",
               v->full_weights / GIB);
    if (v->tp_here && v->tp_here_need <= M)
        printf("  tensor parallel %d x data parallel %d with ZeRO-1 + recomputation: %.2f GB per "
               "GPU (fits)\n",
               v->tp_here, o->gpus / v->tp_here, v->tp_here_need / GIB);
    else if (v->tp_here) {
        printf("  tensor parallel %d x data parallel %d with ZeRO-1 + recomputation: %.2f GB per "
               "GPU (%.2f GB short)\n",
               v->tp_here, o->gpus / v->tp_here, v->tp_here_need / GIB,
               (v->tp_here_need - M) / GIB);
        if (v->tp_rollout)
            printf("    and fits with at most %d rollout sequences live per GPU (instead of %d; "
                   "--rollout-batch)\n",
                   v->tp_rollout, w->p.rollout_seqs);
    }
    if (v->tp_gpus)
        printf("  tensor parallel %d with ZeRO-1 + recomputation fits from %d GPUs (%.2f GB per "
               "GPU)\n",
               v->tp, v->tp_gpus, v->tp_need / GIB);
    else if (!v->tp_here || v->tp_here_need > M)
        printf("  tensor parallel up to 8 with ZeRO-1 fits on no number of GPUs up to 4096\n");
    if (v->micro_batch)
        printf("  or micro-batch %d (instead of %d) with ZeRO-1 + recomputation\n", v->micro_batch,
               w->p.micro_batch);
    printf("  (rlpipe implements data parallel with ZeRO-0/1 only: ZeRO-3 and tensor parallel are "
           "not available yet)\n");
}

// ---- JSON output -------------------------------------------------------------------------------

static json_t *stages(const double *x) {
    json_t *a = json_array();
    for (int s = 0; s < RL_MEMPLAN_STAGES; s++) json_array_append_new(a, json_real(x[s]));
    return a;
}

static int print_json(const char *config_path, const rl_config *c, const rl_model_config *mc,
                      const plan_opts *o, const workload *w, const rl_memplan *p,
                      const verdict *v) {
    int hd = mc->head_dim > 0 ? mc->head_dim : mc->hidden_size / mc->num_attention_heads;
    json_t *peak = json_object();
    double no_rc[RL_MEMPLAN_STAGES], rc[RL_MEMPLAN_STAGES];
    for (int s = 0; s < RL_MEMPLAN_STAGES; s++) no_rc[s] = p->peak[s][0], rc[s] = p->peak[s][1];
    json_object_set_new(peak, "no_recompute", stages(no_rc));
    json_object_set_new(peak, "recompute", stages(rc));
    json_t *verd =
        json_pack("{s:b, s:i, s:b, s:f, s:f}", "fits", v->fits, "zero_stage", v->stage, "recompute",
                  v->recompute, "need_bytes", v->need, "free_bytes", v->free_bytes);
    if (!v->fits) {
        json_object_set_new(verd, "zero2_bytes", json_real(v->z2_need));
        json_object_set_new(verd, "zero2_fits", json_boolean(v->z2_fits));
        json_object_set_new(verd, "zero3_bytes", json_real(v->z3_need));
        json_object_set_new(verd, "zero3_fits", json_boolean(v->z3_fits));
        json_object_set_new(verd, "zero3_min_gpus", json_integer(v->z3_gpus));
        json_object_set_new(verd, "tensor_parallel_here", json_integer(v->tp_here));
        json_object_set_new(verd, "tensor_parallel_here_bytes", json_real(v->tp_here_need));
        json_object_set_new(verd, "tensor_parallel_here_rollout_seqs", json_integer(v->tp_rollout));
        json_object_set_new(verd, "tensor_parallel", json_integer(v->tp));
        json_object_set_new(verd, "tensor_parallel_min_gpus", json_integer(v->tp_gpus));
        json_object_set_new(verd, "tensor_parallel_bytes", json_real(v->tp_need));
        json_object_set_new(verd, "full_weights_bytes", json_real(v->full_weights));
        json_object_set_new(verd, "micro_batch_that_fits", json_integer(v->micro_batch));
    }
    json_t *root = json_pack(
        "{s:s, s:{s:s, s:I, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:b, s:b, s:i, s:i},"
        " s:{s:i, s:i, s:i, s:f, s:s, s:i, s:i, s:i, s:i, s:i, s:i},"
        " s:{s:o, s:o, s:o, s:o, s:o, s:o},"
        " s:{s:f, s:f, s:f, s:f, s:f, s:f, s:f},"
        " s:{s:I, s:f, s:f, s:f, s:o, s:f},"
        " s:o, s:o}",
        "config", config_path, "model", "source",
        c->model.path[0] ? c->model.path : "model section", "parameters", (json_int_t)p->n_params,
        "layer_parameters", (json_int_t)p->layer_params, "hidden_size", mc->hidden_size,
        "num_hidden_layers", mc->num_hidden_layers, "num_attention_heads", mc->num_attention_heads,
        "num_key_value_heads", mc->num_key_value_heads, "head_dim", hd, "intermediate_size",
        mc->intermediate_size, "vocab_size", mc->vocab_size, "tie_word_embeddings",
        mc->tie_word_embeddings, "use_sliding_window", mc->use_sliding_window, "sliding_window",
        mc->sliding_window, "max_window_layers", mc->max_window_layers, "run", "gpus", o->gpus,
        "data_parallel", w->dp, "tensor_parallel", o->tp, "gpu_memory_bytes", o->gpu_bytes, "dtype",
        rl_dtype_name(o->act), "micro_batch", w->p.micro_batch, "seq_len", w->p.seq_len,
        "rollout_seqs", w->p.rollout_seqs, "prompt_tokens", w->p.prompt_len, "completion_tokens",
        w->p.completion_len, "group_size", w->p.group_size, "state", "weights", stages(p->weights),
        "grads", stages(p->grads), "master", stages(p->master), "optim", stages(p->optim),
        "in_flight", stages(p->gather), "total", stages(p->state), "activations", "layers",
        p->acts_layers, "layers_recompute", p->acts_recompute, "common", p->acts_common, "logits",
        p->logits, "backward_scratch", p->grad_scratch, "total", p->acts_total[0],
        "total_recompute", p->acts_total[1], "rollout", "kv_blocks", (json_int_t)p->kv_blocks,
        "kv_bytes", p->kv, "kv_flat_bytes", p->kv_flat, "decode_bytes", p->decode,
        "gathered_weights", stages(p->rollout_weights), "reserve", p->reserve, "peak", peak,
        "verdict", verd);
    if (!root) return -1;
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) return -1;
    printf("%s\n", text);
    free(text);
    return 0;
}

// ---- the command -------------------------------------------------------------------------------

int cmd_plan(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return CLI_EXIT_OK;
    }
    const char *gpus_s = NULL, *mem_s = NULL, *dtype_s = NULL, *mb_s = NULL, *seq_s = NULL,
               *prompt_s = NULL, *rb_s = NULL, *tp_s = NULL, *reserve_s = NULL;
    plan_opts o = {.gpus = 1,
                   .tp = 1,
                   .prompt = DEFAULT_PROMPT,
                   .gpu_bytes = 80 * GIB,
                   .reserve = 1 * GIB,
                   .act = RL_BF16};
    cli_opt opts[] = {{"gpus", &gpus_s, NULL},        {"gpu-memory", &mem_s, NULL},
                      {"dtype", &dtype_s, NULL},      {"micro-batch", &mb_s, NULL},
                      {"seq-len", &seq_s, NULL},      {"prompt-tokens", &prompt_s, NULL},
                      {"rollout-batch", &rb_s, NULL}, {"tensor-parallel", &tp_s, NULL},
                      {"reserve", &reserve_s, NULL},  {"json", NULL, &o.json}};
    rl_config cfg;
    int rc =
        cli_load_run_config("plan", argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), &cfg);
    if (rc) return rc;
    if (!rc && gpus_s) rc = parse_int(gpus_s, "--gpus", 1, 1 << 20, &o.gpus);
    if (!rc && tp_s) rc = parse_int(tp_s, "--tensor-parallel", 1, 1024, &o.tp);
    if (!rc && mb_s) rc = parse_int(mb_s, "--micro-batch", 1, 1 << 20, &o.micro_batch);
    if (!rc && seq_s) rc = parse_int(seq_s, "--seq-len", 1, 1 << 24, &o.seq_len);
    if (!rc && prompt_s) rc = parse_int(prompt_s, "--prompt-tokens", 0, 1 << 24, &o.prompt);
    if (!rc && rb_s) rc = parse_int(rb_s, "--rollout-batch", 1, 1 << 20, &o.rollout_batch);
    if (!rc && mem_s) rc = parse_gb(mem_s, "--gpu-memory", 1e-3, &o.gpu_bytes);
    if (!rc && reserve_s) rc = parse_gb(reserve_s, "--reserve", 0, &o.reserve);
    if (!rc && dtype_s) {
        if (strcmp(dtype_s, "bf16") == 0 || strcmp(dtype_s, "bfloat16") == 0)
            o.act = RL_BF16;
        else if (strcmp(dtype_s, "f32") == 0 || strcmp(dtype_s, "float32") == 0)
            o.act = RL_F32;
        else
            rc = cli_usage_error("plan", "--dtype: expected bf16 or f32, got '%s'", dtype_s);
    }
    if (!rc && o.gpus % o.tp)
        rc =
            cli_usage_error("plan", "--tensor-parallel %d does not divide --gpus %d", o.tp, o.gpus);
    rl_model_config mc;
    rl_err err = {0};
    if (!rc && model_shape(&cfg, &mc, &err)) rc = cli_report(&err);
    if (!rc && o.seq_len > mc.max_position_embeddings)
        rc = cli_usage_error("plan", "--seq-len %d exceeds the model's max_position_embeddings %d",
                             o.seq_len, mc.max_position_embeddings);
    if (!rc && mc.num_attention_heads % o.tp)
        rc = cli_usage_error("plan", "--tensor-parallel %d does not divide num_attention_heads %d",
                             o.tp, mc.num_attention_heads);
    workload w;
    rl_memplan plan;
    if (!rc) {
        w = workload_for(&cfg, &mc, &o, o.gpus, o.tp, o.micro_batch);
        if (rl_memplan_compute(&mc, &w.p, &plan, &err)) rc = cli_report(&err);
    }
    if (!rc) {
        const char *path = cfg.source_path ? cfg.source_path : "(defaults)";
        verdict v = decide(&cfg, &mc, &o, &plan, &w);
        if (o.json) {
            if (print_json(path, &cfg, &mc, &o, &w, &plan, &v)) {
                fprintf(stderr, "rlpipe plan: cannot build the JSON output\n");
                rc = CLI_EXIT_INTERNAL;
            }
        } else {
            print_text(path, &cfg, &mc, &o, &w, &plan, &v);
        }
    }
    rl_config_free(&cfg);
    return rc;
}
