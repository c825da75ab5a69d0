// memplan: per-GPU memory of a training run from its shape and batch sizes. See memplan.h.
#include "policy/memplan.h"
#include "policy/model.h"

#include <string.h>

int64_t rl_memplan_param_count(const rl_model_config *cfg, int64_t *layer) {
    int64_t C = cfg->hidden_size, FF = cfg->intermediate_size, V = cfg->vocab_size;
    int64_t hd = cfg->head_dim > 0 ? cfg->head_dim : C / cfg->num_attention_heads;
    int64_t AD = (int64_t)cfg->num_attention_heads * hd;
    int64_t QKV = AD + 2 * (int64_t)cfg->num_key_value_heads * hd;
    int64_t per_layer = QKV * C + (cfg->attention_bias ? QKV : 0) + AD * C + 3 * FF * C + 2 * C;
    if (layer) *layer = per_layer;
    return V * C + cfg->num_hidden_layers * per_layer + C + (cfg->tie_word_embeddings ? 0 : V * C);
}

static int layer_window(const rl_model_config *cfg, int l) {
    return cfg->use_sliding_window && l >= cfg->max_window_layers ? cfg->sliding_window : 0;
}

static int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

// Blocks one group of g samples holds in one layer of window w (0 = full attention).
static int64_t group_blocks(int64_t g, int64_t prompt, int64_t total, int64_t w) {
    const int64_t B = RL_KV_BLOCK;
    int64_t nb = ceil_div(total, B), shared = g > 1 ? prompt / B : 0;
    int64_t full = shared + g * (nb - shared);
    if (w <= 0 || total <= w) return full;
    // The window covers w consecutive positions: at most ceil((w-1)/B)+1 blocks at any time; the
    // full prompt blocks it can still see stay shared.
    int64_t kept = ceil_div(w - 1, B) + 1;
    if (kept > nb) kept = nb;
    int64_t first = (total - w) / B, visible = shared - first;
    if (visible < 0) visible = 0;
    if (visible > kept) visible = kept;
    int64_t windowed = visible + g * (kept - visible);
    return windowed < full ? windowed : full; // never more than keeping everything
}

int64_t rl_memplan_kv_blocks(const rl_model_config *cfg, int seqs, int prompt, int completion,
                             int group) {
    if (seqs <= 0) return 0;
    if (group < 1) group = 1;
    int64_t total = (int64_t)prompt + completion, full = seqs / group, rest = seqs % group;
    int64_t blocks = 0;
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        int64_t w = layer_window(cfg, l);
        blocks += full * group_blocks(group, prompt, total, w);
        if (rest) blocks += group_blocks(rest, prompt, total, w);
    }
    return blocks;
}

static int check_params(const rl_memplan_params *p, rl_err *err) {
    struct {
        const char *name;
        long long v, min;
    } f[] = {{"gpus", p->gpus, 1},
             {"tensor_parallel", p->tensor_parallel, 1},
             {"micro_batch", p->micro_batch, 1},
             {"seq_len", p->seq_len, 1},
             {"rollout_seqs", p->rollout_seqs, 0},
             {"prompt_len", p->prompt_len, 0},
             {"completion_len", p->completion_len, 0},
             {"group_size", p->group_size, 1},
             {"decode_rows", p->decode_rows, 1},
             {"logits_floats", (long long)p->logits_floats, 1}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < f[i].min)
            return rl_fail(err, RL_EINPUT, "memory plan: %s = %lld, must be >= %lld", f[i].name,
                           f[i].v, f[i].min);
    if (p->gpus % p->tensor_parallel)
        return rl_fail(err, RL_EINPUT,
                       "memory plan: tensor_parallel %d does not divide the %d GPUs",
                       p->tensor_parallel, p->gpus);
    if (!(p->reserve_bytes >= 0))
        return rl_fail(err, RL_EINPUT, "memory plan: reserve must be >= 0");
    return 0;
}

int rl_memplan_compute(const rl_model_config *cfg, const rl_memplan_params *p, rl_memplan *out,
                       rl_err *err) {
    int head_dim;
    if (rl_model_check_config(cfg, &head_dim, err) || check_params(p, err)) return -1;
    int t = p->tensor_parallel;
    if (cfg->num_attention_heads % t)
        return rl_fail(err, RL_EINPUT,
                       "memory plan: tensor_parallel %d does not divide num_attention_heads %d", t,
                       cfg->num_attention_heads);
    memset(out, 0, sizeof *out);
    const double a = (double)rl_dtype_size(p->act), f32 = 4.0;
    const double C = cfg->hidden_size, L = cfg->num_hidden_layers;
    const double hd = head_dim;
    // what one GPU holds of each dimension under tensor parallelism (K/V heads replicate when
    // there are fewer of them than GPUs in the group)
    const double NH = cfg->num_attention_heads / t;
    const double NKV = (double)ceil_div(cfg->num_key_value_heads, t);
    const double FF = (double)ceil_div(cfg->intermediate_size, t);
    const double AD = NH * hd, QKV = AD + 2 * NKV * hd, Vt = (double)ceil_div(cfg->vocab_size, t);
    const double dp = (double)(p->gpus / t); // data-parallel ranks sharding the ZeRO state

    int64_t layer;
    out->n_params = rl_memplan_param_count(cfg, &layer);
    out->layer_params = layer;
    const double P = (double)out->n_params / t; // parameters on one GPU before ZeRO sharding
    const int bf16 = p->act == RL_BF16;
    // The largest piece ZeRO-3 gathers at once: a layer or the embedding / lm_head.
    double piece = (double)layer / t;
    if (C * Vt > piece) piece = C * Vt;
    for (int s = 0; s < RL_MEMPLAN_STAGES; s++) {
        out->weights[s] = a * P / (s >= 3 ? dp : 1);
        out->grads[s] = f32 * P / (s >= 2 ? dp : 1);
        out->master[s] = bf16 ? f32 * P / (s >= 1 ? dp : 1) : 0.0;
        out->optim[s] = 2 * f32 * P / (s >= 1 ? dp : 1);
        // in flight: ZeRO-2 a layer of full gradients before its reduce-scatter; ZeRO-3 also the
        // gathered weights of the piece in use and the one prefetched
        out->gather[s] = s == 2 ? f32 * piece : s == 3 ? 2 * a * piece + f32 * piece : 0.0;
        out->state[s] =
            out->weights[s] + out->grads[s] + out->master[s] + out->optim[s] + out->gather[s];
        // generation needs every weight on the GPU: ZeRO-3 gathers the rest for the rollout
        out->rollout_weights[s] = s >= 3 ? a * P - out->weights[s] : 0.0;
    }

    const double B = p->micro_batch, N = B * p->seq_len;
    const double per_layer = N * ((2 * C + QKV + AD + 2 * FF) * a + (2 + NH) * f32);
    out->acts_layers = L * per_layer;
    out->acts_recompute = L * N * C * a + per_layer;
    // last residual, final norm, norm / projection / SwiGLU scratch; rstd_f, logp, entropy and
    // their gradients (float32); tokens, positions, targets (int32); lengths
    out->acts_common = N * (4 * C + FF) * a + N * 5 * f32 + N * 3 * 4.0 + B * 4.0;
    double chunk_rows = (double)(p->logits_floats / (size_t)(Vt > 0 ? Vt : 1));
    if (chunk_rows < 1) chunk_rows = 1;
    if (chunk_rows > N) chunk_rows = N;
    out->logits = chunk_rows * Vt * f32;
    out->grad_scratch = N * (2 * C + QKV + AD + 3 * FF) * a;
    for (int r = 0; r < 2; r++)
        out->acts_total[r] = (r ? out->acts_recompute : out->acts_layers) + out->acts_common +
                             out->logits + out->grad_scratch;

    const double kv_pos = 2 * NKV * hd * a; // K and V of one position in one layer
    out->kv_blocks =
        rl_memplan_kv_blocks(cfg, p->rollout_seqs, p->prompt_len, p->completion_len, p->group_size);
    out->kv = (double)out->kv_blocks * RL_KV_BLOCK * kv_pos;
    out->kv_flat = (double)p->rollout_seqs * L *
                   (double)ceil_div((int64_t)p->prompt_len + p->completion_len, RL_KV_BLOCK) *
                   RL_KV_BLOCK * kv_pos;
    const double R = p->decode_rows, O = p->rollout_seqs;
    out->decode = R * (3 * C + QKV + AD + 3 * FF) * a + O * C * a + O * Vt * f32;
    out->reserve = p->reserve_bytes;

    for (int s = 0; s < RL_MEMPLAN_STAGES; s++)
        for (int r = 0; r < 2; r++)
            out->peak[s][r] = out->state[s] + out->acts_total[r] + out->kv + out->decode +
                              out->rollout_weights[s] + out->reserve;
    return 0;
}
