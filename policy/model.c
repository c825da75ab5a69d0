// model: Qwen2 parameters, training / scoring forward, log-probabilities, backward. Decoding
// with a KV cache is in model_decode.c. See model.h.
#define _POSIX_C_SOURCE 200809L
#include "policy/model.h"
#include "kernels/bf16.h"
#include "kernels/rng.h"
#include "policy/model_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Largest lm_head output kept at once (floats): rows of logits are processed in chunks of
// LOGITS_BUDGET / V rows, so a 151k vocabulary never needs the full [B*T, V] matrix.
#define LOGITS_BUDGET ((size_t)16 << 20)

// Every parameter view starts on a 16-element boundary (the layout is the same in the act-type
// parameter block and the float32 gradient block).
static size_t align16(size_t n) {
    return (n + 15) / 16 * 16;
}

// Element i of an act-type array (parameters, activations).
#define AT(m, base, i) rl_model__at((base), (m)->act, (size_t)(i))

// ------------------------------------------------------------------------------------------------
// Block layout: tables of tensor specs

static size_t align64(size_t bytes) {
    return (bytes + 63) / 64 * 64;
}

size_t rl_model__specs_bytes(const rl_tensor_spec *specs, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += align64(specs[i].n * rl_dtype_size(specs[i].dt));
    return total;
}

void *rl_model__alloc_specs(const rl_backend *be, const rl_tensor_spec *specs, int n) {
    size_t total = rl_model__specs_bytes(specs, n);
    char *block = be->mem_alloc(be, total ? total : 64);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        *specs[i].ptr = specs[i].n ? block + at : NULL;
        at += align64(specs[i].n * rl_dtype_size(specs[i].dt));
    }
    return block;
}

// ------------------------------------------------------------------------------------------------
// Timing

double rl_model__tic(const rl_model *m) {
    if (!m->timing.enabled) return 0.0;
    m->be->synchronize(m->be);
    return rl_now();
}

void rl_model__toc(rl_model *m, double *bucket, double t0) {
    if (!m->timing.enabled) return;
    m->be->synchronize(m->be);
    *bucket += rl_now() - t0;
}

// ------------------------------------------------------------------------------------------------
// Creation

int rl_model_check_config(const rl_model_config *cfg, int *hd_out, rl_err *err) {
    struct {
        const char *key;
        int value;
    } sizes[] = {{"hidden_size", cfg->hidden_size},
                 {"num_hidden_layers", cfg->num_hidden_layers},
                 {"num_attention_heads", cfg->num_attention_heads},
                 {"num_key_value_heads", cfg->num_key_value_heads},
                 {"intermediate_size", cfg->intermediate_size},
                 {"vocab_size", cfg->vocab_size}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].value <= 0)
            return rl_fail(err, RL_EINPUT, "model config: %s must be positive (got %d)",
                           sizes[i].key, sizes[i].value);
    if (cfg->num_attention_heads % cfg->num_key_value_heads != 0)
        return rl_fail(err, RL_EINPUT,
                       "model config: num_attention_heads (%d) must be a multiple of "
                       "num_key_value_heads (%d)",
                       cfg->num_attention_heads, cfg->num_key_value_heads);
    int hd = cfg->head_dim;
    if (hd == 0) {
        if (cfg->hidden_size % cfg->num_attention_heads != 0)
            return rl_fail(err, RL_EINPUT,
                           "model config: hidden_size (%d) is not a multiple of "
                           "num_attention_heads (%d) and head_dim is not given",
                           cfg->hidden_size, cfg->num_attention_heads);
        hd = cfg->hidden_size / cfg->num_attention_heads;
    }
    if (hd <= 0 || hd % 2 != 0 || hd > RL_MAX_HEAD_DIM)
        return rl_fail(err, RL_EINPUT,
                       "model config: head_dim must be even and in [2, %d] (got %d)",
                       RL_MAX_HEAD_DIM, hd);
    if (!(cfg->rope_theta > 0.0) || !isfinite(cfg->rope_theta))
        return rl_fail(err, RL_EINPUT, "model config: rope_theta must be positive (got %g)",
                       cfg->rope_theta);
    if (!(cfg->rms_norm_eps > 0.0) || !isfinite(cfg->rms_norm_eps))
        return rl_fail(err, RL_EINPUT, "model config: rms_norm_eps must be positive (got %g)",
                       cfg->rms_norm_eps);
    if (cfg->use_sliding_window && cfg->sliding_window <= 0)
        return rl_fail(err, RL_EINPUT,
                       "model config: use_sliding_window needs a positive sliding_window (got %d)",
                       cfg->sliding_window);
    // Every tensor's element count must fit comfortably in size_t and its rows in int.
    double qkv = (double)(cfg->num_attention_heads + 2 * cfg->num_key_value_heads) * hd;
    double biggest = fmax(fmax((double)cfg->vocab_size, qkv), 2.0 * cfg->intermediate_size) *
                     fmax((double)cfg->hidden_size, (double)cfg->intermediate_size) *
                     cfg->num_hidden_layers;
    if (qkv > 1e9 || biggest > 1e14)
        return rl_fail(err, RL_EINPUT, "model config: sizes too large");
    *hd_out = hd;
    return 0;
}

static void add_tensor(rl_model *m, const char *name, int ndim, int64_t d0, int64_t d1,
                       const void *data, int init) {
    rl_model_tensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim == 2 ? d1 : 0;
    t->numel = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    t->offset =
        (size_t)((const char *)data - (const char *)m->params_block) / rl_dtype_size(m->act);
    t->init = init;
}

// The Hugging Face tensors, in state_dict order (module registration order of Qwen2ForCausalLM).
static void build_tensor_table(rl_model *m) {
    int C = m->C, L = m->L, hd = m->hd, FF = m->FF, QKV = m->QKV;
    int qd = m->NH * hd, kvd = m->NKV * hd;
    const rl_model_weights *p = &m->params;
    int has_bias = p->bqkv != NULL;
    m->tensors = rl_calloc((size_t)L * 12 + 3, sizeof *m->tensors);
    add_tensor(m, "model.embed_tokens.weight", 2, m->V, C, p->wte, 0);
    char name[80];
#define LAYER_TENSOR(suffix, ndim, d0, d1, data, init)                                             \
    do {                                                                                           \
        snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);                              \
        add_tensor(m, name, ndim, d0, d1, data, init);                                             \
    } while (0)
    for (int l = 0; l < L; l++) {
        size_t wqkv = (size_t)l * QKV * C, bqkv = (size_t)l * QKV, wgu = (size_t)l * 2 * FF * C;
        LAYER_TENSOR("self_attn.q_proj.weight", 2, qd, C, AT(m, p->wqkv, wqkv), 0);
        if (has_bias) LAYER_TENSOR("self_attn.q_proj.bias", 1, qd, 0, AT(m, p->bqkv, bqkv), 1);
        LAYER_TENSOR("self_attn.k_proj.weight", 2, kvd, C, AT(m, p->wqkv, wqkv + (size_t)qd * C),
                     0);
        if (has_bias)
            LAYER_TENSOR("self_attn.k_proj.bias", 1, kvd, 0, AT(m, p->bqkv, bqkv + qd), 1);
        LAYER_TENSOR("self_attn.v_proj.weight", 2, kvd, C,
                     AT(m, p->wqkv, wqkv + (size_t)(qd + kvd) * C), 0);
        if (has_bias)
            LAYER_TENSOR("self_attn.v_proj.bias", 1, kvd, 0, AT(m, p->bqkv, bqkv + qd + kvd), 1);
        LAYER_TENSOR("self_attn.o_proj.weight", 2, C, qd, AT(m, p->wo, (size_t)l * C * qd), 0);
        LAYER_TENSOR("mlp.gate_proj.weight", 2, FF, C, AT(m, p->wgu, wgu), 0);
        LAYER_TENSOR("mlp.up_proj.weight", 2, FF, C, AT(m, p->wgu, wgu + (size_t)FF * C), 0);
        LAYER_TENSOR("mlp.down_proj.weight", 2, C, FF, AT(m, p->wdown, (size_t)l * C * FF), 0);
        LAYER_TENSOR("input_layernorm.weight", 1, C, 0, AT(m, p->ln1w, (size_t)l * C), 2);
        LAYER_TENSOR("post_attention_layernorm.weight", 1, C, 0, AT(m, p->ln2w, (size_t)l * C), 2);
    }
#undef LAYER_TENSOR
    add_tensor(m, "model.norm.weight", 1, C, 0, p->lnfw, 2);
    if (!m->cfg.tie_word_embeddings) add_tensor(m, "lm_head.weight", 2, m->V, C, p->wlm, 0);
}

// The same tensors as build_tensor_table, from the config alone (test_model_io compares them).
int rl_model_config_tensors(const rl_model_config *cfg,
                            int (*fn)(void *ctx, const rl_model_tensor_spec *t), void *ctx,
                            rl_err *err) {
    int hd;
    RL_TRY(rl_model_check_config(cfg, &hd, err));
    int64_t C = cfg->hidden_size, V = cfg->vocab_size, FF = cfg->intermediate_size;
    int64_t qd = (int64_t)cfg->num_attention_heads * hd;
    int64_t kvd = (int64_t)cfg->num_key_value_heads * hd;
    char c[32], v[32], ff[32], q[64], kv[64];
    snprintf(c, sizeof c, "hidden_size %d", cfg->hidden_size);
    snprintf(v, sizeof v, "vocab_size %d", cfg->vocab_size);
    snprintf(ff, sizeof ff, "intermediate_size %d", cfg->intermediate_size);
    snprintf(q, sizeof q, "num_attention_heads %d * head_dim %d", cfg->num_attention_heads, hd);
    snprintf(kv, sizeof kv, "num_key_value_heads %d * head_dim %d", cfg->num_key_value_heads, hd);
    rl_model_tensor_spec t;
    int rc;
#define SPEC(d0, d1, dims0, dims1, ...)                                                            \
    do {                                                                                           \
        snprintf(t.name, sizeof t.name, __VA_ARGS__);                                              \
        t.ndim = (d1) ? 2 : 1, t.shape[0] = d0, t.shape[1] = d1;                                   \
        snprintf(t.dims, sizeof t.dims, "%s%s%s", dims0, (d1) ? " x " : "", dims1);                \
        if ((rc = fn(ctx, &t)) != 0) return rc;                                                    \
    } while (0)
    SPEC(V, C, v, c, "model.embed_tokens.weight");
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        const char *p = "model.layers.";
        SPEC(qd, C, q, c, "%s%d.self_attn.q_proj.weight", p, l);
        if (cfg->attention_bias) SPEC(qd, 0, q, "", "%s%d.self_attn.q_proj.bias", p, l);
        SPEC(kvd, C, kv, c, "%s%d.self_attn.k_proj.weight", p, l);
        if (cfg->attention_bias) SPEC(kvd, 0, kv, "", "%s%d.self_attn.k_proj.bias", p, l);
        SPEC(kvd, C, kv, c, "%s%d.self_attn.v_proj.weight", p, l);
        if (cfg->attention_bias) SPEC(kvd, 0, kv, "", "%s%d.self_attn.v_proj.bias", p, l);
        SPEC(C, qd, c, q, "%s%d.self_attn.o_proj.weight", p, l);
        SPEC(FF, C, ff, c, "%s%d.mlp.gate_proj.weight", p, l);
        SPEC(FF, C, ff, c, "%s%d.mlp.up_proj.weight", p, l);
        SPEC(C, FF, c, ff, "%s%d.mlp.down_proj.weight", p, l);
        SPEC(C, 0, c, "", "%s%d.input_layernorm.weight", p, l);
        SPEC(C, 0, c, "", "%s%d.post_attention_layernorm.weight", p, l);
    }
    SPEC(C, 0, c, "", "model.norm.weight");
    if (!cfg->tie_word_embeddings) SPEC(V, C, v, c, "lm_head.weight");
#undef SPEC
    return 0;
}

// The parameter tensors as a spec table, in block order: the weight-decay matrices first, then
// the rest. p receives the views; dt is the block's element type (act for parameters, float32
// for gradients). Returns the number of specs written to specs (at most 10); *n_decay_specs
// receives how many of them are the decay part.
static int param_specs(const rl_model *m, rl_model_weights *p, rl_dtype dt, rl_tensor_spec *specs,
                       int *n_decay_specs) {
    size_t C = m->C, L = m->L, V = m->V, QKV = m->QKV, FF = m->FF, AD = (size_t)m->NH * m->hd;
    int n = 0;
#define SPEC(field, count) specs[n++] = (rl_tensor_spec){&p->field, align16(count), dt, #field}
    SPEC(wte, V * C);
    SPEC(wqkv, L * QKV * C);
    SPEC(wo, L * C * AD);
    SPEC(wgu, L * 2 * FF * C);
    SPEC(wdown, L * C * FF);
    if (!m->cfg.tie_word_embeddings) SPEC(wlm, V * C);
    *n_decay_specs = n;
    if (m->cfg.attention_bias) SPEC(bqkv, L * QKV);
    SPEC(ln1w, L * C);
    SPEC(ln2w, L * C);
    SPEC(lnfw, C);
#undef SPEC
    return n;
}

// Points p at a block laid out by param_specs (the parameters, or the gradients with dt float32:
// every tensor is a multiple of 16 elements, so both layouts agree element for element).
static void point_params(const rl_model *m, void *block, rl_dtype dt, rl_model_weights *p) {
    rl_tensor_spec specs[10];
    int nd;
    int n = param_specs(m, p, dt, specs, &nd);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        *specs[i].ptr = rl_model__at(block, dt, at);
        at += specs[i].n;
    }
    if (m->cfg.tie_word_embeddings) p->wlm = p->wte;
    if (!m->cfg.attention_bias) p->bqkv = NULL;
}

// The float32 gradient views (the same layout as the parameters).
static void point_grads(const rl_model *m, float *block, rl_model_wgrads *g) {
    rl_model_weights v;
    point_params(m, block, RL_F32, &v);
    *g = (rl_model_wgrads){v.wte, v.wqkv, v.wo,   v.wgu,  v.wdown,
                           v.wlm, v.bqkv, v.ln1w, v.ln2w, v.lnfw};
}

// Physical memory in GB, 0 when unknown.
static double host_memory_gb(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size / 1e9 : 0.0;
}

int rl_model_create(rl_model **out, const rl_model_config *cfg, const rl_backend *be, rl_err *err) {
    *out = NULL;
    int hd = 0;
    RL_TRY(rl_model_check_config(cfg, &hd, err));
    rl_model *m = rl_calloc(1, sizeof *m);
    m->cfg = *cfg;
    m->cfg.head_dim = hd;
    m->cfg.attention_bias = cfg->attention_bias != 0;
    m->be = be;
    m->C = cfg->hidden_size;
    m->L = cfg->num_hidden_layers;
    m->NH = cfg->num_attention_heads;
    m->NKV = cfg->num_key_value_heads;
    m->hd = hd;
    m->FF = cfg->intermediate_size;
    m->V = cfg->vocab_size;
    m->QKV = (m->NH + 2 * m->NKV) * hd;

    m->act = be->act;
    rl_tensor_spec specs[10];
    int n_decay_specs;
    int n_specs = param_specs(m, &m->params, m->act, specs, &n_decay_specs);
    size_t n_decay = 0, n_rest = 0;
    for (int i = 0; i < n_specs; i++) *(i < n_decay_specs ? &n_decay : &n_rest) += specs[i].n;
    m->n_decay = n_decay;
    m->n_params = n_decay + n_rest;
    // A from-scratch model is as large as its config asks; refuse one the host cannot hold
    // instead of dying in the allocator (exit 1, or an abort under AddressSanitizer).
    double gb = (double)m->n_params * rl_dtype_size(m->act) / 1e9, host_gb = host_memory_gb();
    if (strcmp(be->name, "cpu") == 0 && host_gb > 0 && gb > host_gb) {
        size_t n = m->n_params;
        const char *dt = rl_dtype_name(m->act);
        free(m->tensors);
        free(m);
        return rl_fail(err, RL_EINPUT,
                       "model config: %zu parameters need %.1f GB of %s weights, more than "
                       "this machine's %.1f GB of memory",
                       n, gb, dt, host_gb);
    }
    m->params_block = be->mem_alloc(be, m->n_params * rl_dtype_size(m->act));
    point_params(m, m->params_block, m->act, &m->params);
    build_tensor_table(m);
    m->logits_budget = LOGITS_BUDGET;
    m->prefill_rows = 1024;
    m->spans[0] = (rl_param_span){0, n_decay, 1};
    m->spans[1] = (rl_param_span){n_decay, n_rest, 0};
    *out = m;
    return 0;
}

void rl_model_init_random(rl_model *m, uint64_t seed, float init_std) {
    size_t biggest = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].numel > biggest) biggest = m->tensors[i].numel;
    float *host = rl_malloc(biggest * sizeof(float));
    for (int i = 0; i < m->n_tensors; i++) {
        const rl_model_tensor *t = &m->tensors[i];
        if (t->init == 0) {
            int64_t rows = t->shape[0], cols = t->shape[1];
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < rows; r++) {
                rl_rng rng = rl_rng_stream(seed, RL_RNG_INIT, (uint64_t)i, (uint64_t)r);
                for (int64_t c = 0; c < cols; c++)
                    host[r * cols + c] = (float)(init_std * rl_rng_normal(&rng));
            }
        } else {
            float value = t->init == 2 ? 1.0f : 0.0f;
            for (size_t k = 0; k < t->numel; k++) host[k] = value;
        }
        rl_model_tensor_write(m, i, host);
    }
    free(host);
}

void rl_model_free(rl_model *m) {
    if (!m) return;
    const rl_backend *be = m->be;
    be->mem_free(be, m->params_block);
    be->mem_free(be, m->grads_block);
    be->mem_free(be, m->acts_block);
    be->mem_free(be, m->gacts_block);
    rl_model__decode_graphs_free(m); // before the buffers they name
    be->mem_free(be, m->dec_block);
    be->mem_free(be, m->score_block);
    free(m->dec.h_tokens);
    free(m->dec.h_pos);
    free(m->dec.h_slot);
    free(m->dec.h_out_idx);
    free(m->dec.h_out_dst);
    free(m->h_tokens);
    free(m->h_pos);
    free(m->h_targets);
    free(m->h_lengths);
    free(m->h_f1);
    free(m->h_f2);
    free(m->tensors);
    free(m);
}

int rl_model_layer_window(const rl_model *m, int l) {
    return m->cfg.use_sliding_window && l >= m->cfg.max_window_layers ? m->cfg.sliding_window : 0;
}

// ------------------------------------------------------------------------------------------------
// Tensors

int rl_model_num_tensors(const rl_model *m) {
    return m->n_tensors;
}

int rl_model_tensor_info(const rl_model *m, int i, const char **name, int64_t shape[2], int *ndim,
                         void **data) {
    if (i < 0 || i >= m->n_tensors) return -1;
    const rl_model_tensor *t = &m->tensors[i];
    if (name) *name = t->name;
    if (shape) shape[0] = t->shape[0], shape[1] = t->shape[1];
    if (ndim) *ndim = t->ndim;
    if (data) *data = AT(m, m->params_block, t->offset);
    return 0;
}

int rl_model_find_tensor(const rl_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

// Bytes of the block the conversions below stage through at once.
#define CONVERT_CHUNK ((size_t)1 << 20)

void rl_model__download_f32(const rl_backend *be, rl_dtype dt, float *host, const void *src,
                            size_t n) {
    if (dt == RL_F32) {
        be->mem_download(be, host, src, n * sizeof(float));
        return;
    }
    uint16_t *tmp = rl_malloc(CONVERT_CHUNK * sizeof(uint16_t));
    for (size_t i0 = 0; i0 < n; i0 += CONVERT_CHUNK) {
        size_t k = n - i0 < CONVERT_CHUNK ? n - i0 : CONVERT_CHUNK;
        be->mem_download(be, tmp, rl_model__at(src, dt, i0), k * sizeof(uint16_t));
        for (size_t i = 0; i < k; i++) host[i0 + i] = rl_bf16_to_f32(tmp[i]);
    }
    free(tmp);
}

void rl_model__upload_f32(const rl_backend *be, rl_dtype dt, void *dst, const float *host,
                          size_t n) {
    if (dt == RL_F32) {
        be->mem_upload(be, dst, host, n * sizeof(float));
        return;
    }
    uint16_t *tmp = rl_malloc(CONVERT_CHUNK * sizeof(uint16_t));
    for (size_t i0 = 0; i0 < n; i0 += CONVERT_CHUNK) {
        size_t k = n - i0 < CONVERT_CHUNK ? n - i0 : CONVERT_CHUNK;
        for (size_t i = 0; i < k; i++) tmp[i] = rl_bf16_from_f32(host[i0 + i]);
        be->mem_upload(be, rl_model__at(dst, dt, i0), tmp, k * sizeof(uint16_t));
    }
    free(tmp);
}

void rl_model_tensor_read(const rl_model *m, int i, float *host) {
    const rl_model_tensor *t = &m->tensors[i];
    rl_model__download_f32(m->be, m->act, host, AT(m, m->params_block, t->offset), t->numel);
}

void rl_model_tensor_write(rl_model *m, int i, const float *host) {
    const rl_model_tensor *t = &m->tensors[i];
    rl_model__upload_f32(m->be, m->act, AT(m, m->params_block, t->offset), host, t->numel);
}

// ------------------------------------------------------------------------------------------------
// Activation memory

static size_t logits_chunk_rows(const rl_model *m, size_t N) {
    size_t rows = m->logits_budget / (size_t)m->V;
    if (rows < 1) rows = 1;
    return rows < N ? rows : N;
}

// The activation block of a forward over N rows and B sequences as a spec table (a receives
// the views). With recompute, the per-layer tensors other than the residual stream hold one
// layer (Lk = 1). Returns the number of specs (at most 24).
static int acts_specs(const rl_model *m, rl_model_acts *a, size_t N, size_t B, int recompute,
                      rl_tensor_spec *specs) {
    size_t C = m->C, L = m->L, V = m->V, QKV = m->QKV, FF = m->FF, NH = m->NH;
    size_t AD = NH * m->hd, Lk = recompute ? 1 : L;
    size_t chunk = logits_chunk_rows(m, N);
    rl_dtype act = m->act;
    int n = 0;
#define SPEC(field, count, dt) specs[n++] = (rl_tensor_spec){(void **)&a->field, count, dt, #field}
    SPEC(res, (L + 1) * N * C, act);
    SPEC(resmid, Lk * N * C, act);
    SPEC(rstd1, Lk * N, RL_F32);
    SPEC(rstd2, Lk * N, RL_F32);
    SPEC(qkv, Lk * N * QKV, act);
    SPEC(att, Lk * N * AD, act);
    SPEC(lse, Lk * N * NH, RL_F32);
    SPEC(gu, Lk * N * 2 * FF, act);
    SPEC(lnf, N * C, act);
    SPEC(rstdf, N, RL_F32);
    SPEC(ln, N * C, act);
    SPEC(proj, N * C, act);
    SPEC(mlp, N * FF, act);
    // the logits rows, and beside them the fused lm_head path's per-row statistics
    SPEC(logits, chunk * V + rl_lm_head_work_floats(act, (int)N, m->C, 0), RL_F32);
    SPEC(dlogits_act, act == RL_F32 ? 0 : chunk * V, act);
    SPEC(logp, N, RL_F32);
    SPEC(ent, N, RL_F32);
    SPEC(dlogp, N, RL_F32);
    SPEC(dent, N, RL_F32);
    SPEC(lselm, N, RL_F32);
    SPEC(tokens, N, RL_I32);
    SPEC(pos, N, RL_I32);
    SPEC(targets, N, RL_I32);
    SPEC(lengths, B, RL_I32);
#undef SPEC
    return n;
}

size_t rl_model_acts_bytes(const rl_model *m, size_t N, size_t B, int recompute) {
    rl_model_acts a;
    rl_tensor_spec specs[24];
    int n = acts_specs(m, &a, N, B, recompute, specs);
    return rl_model__specs_bytes(specs, n);
}

void rl_model_set_recompute(rl_model *m, int on) {
    m->recompute = on != 0;
}

// Makes room for N rows and B sequences in the current recompute mode (reallocates only to grow
// or when the mode changed).
static void ensure_acts(rl_model *m, size_t N, size_t B) {
    int same_mode = m->acts_block && m->acts_recompute == m->recompute;
    if (same_mode && N <= m->acts_rows && B <= m->acts_seqs) return;
    if (N < m->acts_rows) N = m->acts_rows;
    if (B < m->acts_seqs) B = m->acts_seqs;
    const rl_backend *be = m->be;
    be->mem_free(be, m->acts_block);
    rl_tensor_spec specs[24];
    int n = acts_specs(m, &m->acts, N, B, m->recompute, specs);
    m->acts_block = rl_model__alloc_specs(be, specs, n);
    m->acts_recompute = m->recompute;
    m->acts_rows = N;
    m->acts_seqs = B;
    m->logits_rows = logits_chunk_rows(m, N);
    m->h_tokens = rl_realloc(m->h_tokens, N * sizeof(int32_t));
    m->h_pos = rl_realloc(m->h_pos, N * sizeof(int32_t));
    m->h_targets = rl_realloc(m->h_targets, N * sizeof(int32_t));
    m->h_lengths = rl_realloc(m->h_lengths, B * sizeof(int32_t));
    m->h_f1 = rl_realloc(m->h_f1, N * sizeof(float));
    m->h_f2 = rl_realloc(m->h_f2, N * sizeof(float));
    // the backward scratch follows the activations' size
    be->mem_free(be, m->gacts_block);
    m->gacts_block = NULL;
}

static void ensure_grads(rl_model *m) {
    const rl_backend *be = m->be;
    if (!m->grads_block) {
        m->grads_block = be->mem_alloc(be, m->n_params * sizeof(float));
        point_grads(m, m->grads_block, &m->grads);
    }
    if (!m->gacts_block && m->acts_rows > 0) {
        size_t N = m->acts_rows, C = m->C, AD = (size_t)m->NH * m->hd;
        rl_model_grad_acts *g = &m->gacts;
        rl_dtype act = m->act;
        rl_tensor_spec specs[] = {
            {&g->dres, N * C, act, "dres"},       {&g->dln, N * C, act, "dln"},
            {&g->dqkv, N * m->QKV, act, "dqkv"},  {&g->datt, N * AD, act, "datt"},
            {&g->dgu, N * 2 * m->FF, act, "dgu"}, {&g->dmlp, N * m->FF, act, "dmlp"}};
        m->gacts_block = rl_model__alloc_specs(be, specs, 6);
    }
}

// ------------------------------------------------------------------------------------------------
// Layer pieces (shared with the decoder)

void rl_model__matmul(rl_model *m, void *out, const void *inp, const void *w, const void *b, int R,
                      int C, int OC) {
    const rl_backend *be = m->be;
    if (m->rows_invariant && be->matmul_rows)
        RL_TIMED(m, matmul, be->matmul_rows(be, out, be->act, inp, w, b, R, C, OC));
    else
        RL_TIMED(m, matmul, be->matmul_forward(be, out, inp, w, b, R, C, OC));
}

void rl_model__lm_head(rl_model *m, float *logits, const void *inp, int R) {
    const rl_backend *be = m->be;
    if (m->rows_invariant && be->matmul_rows)
        RL_TIMED(m, matmul,
                 be->matmul_rows(be, logits, RL_F32, inp, m->params.wlm, NULL, R, m->C, m->V));
    else
        RL_TIMED(m, matmul,
                 be->gemm(be, logits, RL_F32, inp, m->params.wlm, R, m->V, m->C, 0, 1, 1.0f, 0.0f));
}

void rl_model__attn_in(rl_model *m, int l, void *qkv, void *ln, float *rstd, const void *x,
                       const int32_t *pos, int R) {
    const rl_backend *be = m->be;
    const rl_model_weights *p = &m->params;
    size_t C = m->C, QKV = m->QKV;
    RL_TIMED(m, other,
             be->rmsnorm_forward(be, ln, rstd, x, AT(m, p->ln1w, l * C), R, m->C,
                                 (float)m->cfg.rms_norm_eps));
    rl_model__matmul(m, qkv, ln, AT(m, p->wqkv, l * QKV * C), AT(m, p->bqkv, l * QKV), R, m->C,
                     m->QKV);
    RL_TIMED(
        m, other,
        be->rope_forward(be, qkv, pos, R, m->NH + m->NKV, m->hd, m->QKV, (float)m->cfg.rope_theta));
}

void rl_model__attn_out(rl_model *m, int l, void *res_out, const void *res_in, const void *att,
                        void *proj, void *ln, float *rstd, int R) {
    const rl_backend *be = m->be;
    size_t C = m->C, AD = (size_t)m->NH * m->hd;
    const void *w = AT(m, m->params.ln2w, l * C);
    float eps = (float)m->cfg.rms_norm_eps;
    rl_model__matmul(m, proj, att, AT(m, m->params.wo, l * C * AD), NULL, R, m->NH * m->hd, m->C);
    if (be->rmsnorm_residual_forward) {
        RL_TIMED(
            m, other,
            be->rmsnorm_residual_forward(be, res_out, ln, rstd, res_in, proj, w, R, m->C, eps));
        return;
    }
    RL_TIMED(m, other, be->residual_forward(be, res_out, res_in, proj, (size_t)R * C));
    RL_TIMED(m, other, be->rmsnorm_forward(be, ln, rstd, res_out, w, R, m->C, eps));
}

// The first half of the MLP block: gu = ln Wgu^T (ln = RMSNorm(res_in), as attn_out left it).
static void mlp_in(rl_model *m, int l, void *gu, const void *ln, int R) {
    size_t C = m->C, FF = m->FF;
    rl_model__matmul(m, gu, ln, AT(m, m->params.wgu, l * 2 * FF * C), NULL, R, m->C, 2 * m->FF);
}

void rl_model__mlp(rl_model *m, int l, void *res_out, const void *res_in, const void *ln, void *gu,
                   void *mlp, void *proj, int R) {
    const rl_backend *be = m->be;
    size_t C = m->C, FF = m->FF;
    mlp_in(m, l, gu, ln, R);
    RL_TIMED(m, other, be->swiglu_forward(be, mlp, gu, R, m->FF));
    rl_model__matmul(m, proj, mlp, AT(m, m->params.wdown, l * C * FF), NULL, R, m->FF, m->C);
    RL_TIMED(m, other, be->residual_forward(be, res_out, res_in, proj, (size_t)R * C));
}

// ------------------------------------------------------------------------------------------------
// Forward

// RL_EINPUT for a bad shape or a token outside the vocabulary inside a length.
static int check_batch(const rl_model *m, const int32_t *tokens, const int32_t *lengths, int B,
                       int T, const char *what, rl_err *err) {
    if (B <= 0 || T <= 0)
        return rl_fail(err, RL_EINPUT, "model %s: batch %d x %d must be positive", what, B, T);
    for (int b = 0; b < B; b++) {
        int len = lengths ? lengths[b] : T;
        if (len < 0 || len > T)
            return rl_fail(err, RL_EINPUT, "model %s: length %d of row %d outside [0, %d]", what,
                           len, b, T);
        for (int t = 0; t < len; t++) {
            int32_t id = tokens[(size_t)b * T + t];
            if (id < 0 || id >= m->V)
                return rl_fail(err, RL_EINPUT,
                               "model %s: token %d at row %d position %d outside the "
                               "vocabulary [0, %d)",
                               what, id, b, t, m->V);
        }
    }
    return 0;
}

// Layer l's slice of the kept activations of the last forward (N = B*T rows): its input x =
// res[l] always; the rest in slot l, or in slot 0 with recomputation.
typedef struct layer_acts {
    void *x, *resmid, *qkv, *att, *gu; // act
    float *rstd1, *rstd2, *lse;
} layer_acts;

static layer_acts layer_at(const rl_model *m, int l) {
    const rl_model_acts *a = &m->acts;
    size_t N = (size_t)m->B * m->T, C = m->C, k = m->acts_recompute ? 0 : (size_t)l;
    return (layer_acts){AT(m, a->res, l * N * C),
                        AT(m, a->resmid, k * N * C),
                        AT(m, a->qkv, k * N * m->QKV),
                        AT(m, a->att, k * N * m->NH * m->hd),
                        AT(m, a->gu, k * N * 2 * m->FF),
                        a->rstd1 + k * N,
                        a->rstd2 + k * N,
                        a->lse + k * N * m->NH};
}

// Layer l's attention block from its input la->x: qkv, att, lse, rstd1 and resmid (the residual
// after attention). The same calls whether run in the forward or recomputed in the backward, so
// a recomputed layer is bit-identical to the forward's.
static void layer_forward(rl_model *m, int l, const layer_acts *la) {
    const rl_backend *be = m->be;
    rl_model_acts *a = &m->acts;
    int n = m->B * m->T;
    rl_model__attn_in(m, l, la->qkv, a->ln, la->rstd1, la->x, a->pos, n);
    RL_TIMED(m, attention,
             be->attention_forward(be, la->att, la->lse, la->qkv, a->lengths, m->B, m->T, m->NH,
                                   m->NKV, m->hd, rl_model_layer_window(m, l)));
    rl_model__attn_out(m, l, la->resmid, la->x, la->att, a->proj, a->ln, la->rstd2, n);
}

int rl_model_forward(rl_model *m, const int32_t *tokens, const int32_t *lengths, int B, int T,
                     rl_err *err) {
    RL_TRY(check_batch(m, tokens, lengths, B, T, "forward", err));
    size_t N = (size_t)B * T, C = m->C;
    ensure_acts(m, N, (size_t)B);
    const rl_backend *be = m->be;
    rl_model_acts *a = &m->acts;
    for (int b = 0; b < B; b++) {
        int len = lengths ? lengths[b] : T;
        m->h_lengths[b] = len;
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t;
            m->h_tokens[r] = t < len ? tokens[r] : -1; // padding embeds to a zero row
            m->h_pos[r] = t;
        }
    }
    be->mem_upload(be, a->tokens, m->h_tokens, N * sizeof(int32_t));
    be->mem_upload(be, a->pos, m->h_pos, N * sizeof(int32_t));
    be->mem_upload(be, a->lengths, m->h_lengths, (size_t)B * sizeof(int32_t));
    m->B = B;
    m->T = T;
    m->have_logprobs = 0;
    m->logits_valid = 0;

    int n = (int)N;
    RL_TIMED(m, other, be->embedding_forward(be, a->res, a->tokens, m->params.wte, n, m->C));
    for (int l = 0; l < m->L; l++) {
        layer_acts la = layer_at(m, l);
        layer_forward(m, l, &la);
        rl_model__mlp(m, l, AT(m, a->res, (l + 1) * N * C), la.resmid, a->ln, la.gu, a->mlp,
                      a->proj, n);
    }
    RL_TIMED(m, other,
             be->rmsnorm_forward(be, a->lnf, a->rstdf, AT(m, a->res, (size_t)m->L * N * C),
                                 m->params.lnfw, n, m->C, (float)m->cfg.rms_norm_eps));
    return 0;
}

// ------------------------------------------------------------------------------------------------
// The lm_head path

// The fused lm_head + log-prob path (kernels.h lm_head_logprob_forward/backward): `rows` rows
// per call, the vocabulary `chunk` columns at a time, in the logits buffer as workspace
// (rl_lm_head_work_floats(act, rows, C, chunk) <= its floats; the buffer holds `logits_rows`
// rows of V logits plus the fused path's per-row statistics, so with float32 activations it fits
// all rows in one chunk wherever the unfused path fits them; bf16 chunks need half a float more
// per column, for their dlogits rounded to bf16). rows = 0: the unfused path
// (lm_head product, then logprob_forward / backward, row chunk by row chunk). By default
// (lm_head_fused 0) the fused path is taken only where the logits of all N rows do not fit the
// buffer: there the unfused path would recompute the logits in the backward too, while where they
// fit it keeps the forward's logits for the backward and saves one lm_head product.
typedef struct lm_head_plan {
    int rows, chunk;
} lm_head_plan;

enum { LM_HEAD_MIN_CHUNK = 256 }; // narrower vocabulary chunks make poor matrix products

// The logits buffer's floats: `rows` rows of logits and what the fused path needs beside them
// for N rows (kernels.h rl_lm_head_work_floats with chunk 0: per-row statistics).
static size_t lm_head_buffer(const rl_model *m, size_t rows, size_t N) {
    return rows * (size_t)m->V + rl_lm_head_work_floats(m->be->act, (int)N, m->C, 0);
}

// The widest vocabulary chunk (at most V) with which `rows` rows fit `cap` floats of workspace
// (0: none). bf16 chunks are a multiple of 128 columns where they can be, so that every chunk of
// the weight starts on a 256-byte boundary, as cuBLASLt's bf16 products prefer.
static size_t max_chunk(const rl_model *m, size_t rows, size_t cap) {
    size_t base = rl_lm_head_work_floats(m->act, (int)rows, m->C, 0);
    if (cap <= base) return 0;
    size_t chunk = (cap - base) / rows;           // one float per row and column
    if (m->act == RL_BF16) chunk = chunk * 2 / 3; // and half a float for the bf16 dlogits
    if (chunk > (size_t)m->V) chunk = (size_t)m->V;
    while (chunk > 0 && rl_lm_head_work_floats(m->act, (int)rows, m->C, (int)chunk) > cap) chunk--;
    if (m->act == RL_BF16 && chunk < (size_t)m->V && chunk >= 128) chunk -= chunk % 128;
    return chunk;
}

// N rows whose unfused path computes `rows` rows of logits at a time, in a buffer of
// lm_head_buffer(m, rows, N) floats.
static lm_head_plan plan_lm_head(const rl_model *m, size_t N, size_t rows_unfused) {
    lm_head_plan pl = {0, 0};
    const rl_backend *be = m->be;
    if (!be->lm_head_logprob_forward || !be->lm_head_logprob_backward || m->lm_head_fused < 0 ||
        N == 0 || (m->lm_head_fused == 0 && rows_unfused >= N))
        return pl;
    size_t cap = lm_head_buffer(m, rows_unfused, N);
    size_t want = (size_t)m->V < LM_HEAD_MIN_CHUNK ? (size_t)m->V : LM_HEAD_MIN_CHUNK;
    size_t rows = N, chunk = max_chunk(m, N, cap); // all rows at once
    if (chunk < want) {        // fewer rows at a time, with chunks of at least `want` columns
        size_t lo = 0, hi = N; // the most rows whose `want` columns fit
        while (lo < hi) {
            size_t mid = lo + (hi - lo + 1) / 2;
            if (rl_lm_head_work_floats(m->act, (int)mid, m->C, (int)want) <= cap)
                lo = mid;
            else
                hi = mid - 1;
        }
        rows = lo ? lo : 1; // a buffer smaller than one such row: narrower chunks
        chunk = max_chunk(m, rows, cap);
    }
    if (chunk == 0) return pl; // no room at all: the unfused path
    pl.rows = (int)rows;
    pl.chunk = (int)chunk;
    return pl;
}

// ------------------------------------------------------------------------------------------------
// Scoring without activations

// One layer's worth of buffers for rl_model_score_logits (reallocated only to grow).
static void ensure_score(rl_model *m, size_t N, size_t B) {
    if (N <= m->score_rows && B <= m->score_seqs) return;
    if (N < m->score_rows) N = m->score_rows;
    if (B < m->score_seqs) B = m->score_seqs;
    const rl_backend *be = m->be;
    be->mem_free(be, m->score_block);
    size_t C = m->C, AD = (size_t)m->NH * m->hd;
    size_t chunk = logits_chunk_rows(m, N);
    // the logits rows, and beside them the fused lm_head path's per-row statistics
    size_t nlogits = chunk * m->V + rl_lm_head_work_floats(be->act, (int)N, m->C, 0);
    rl_model_score *s = &m->score;
    rl_dtype act = m->act;
    rl_tensor_spec specs[] = {{&s->x, N * C, act, "x"},
                              {&s->mid, N * C, act, "mid"},
                              {&s->ln, N * C, act, "ln"},
                              {&s->qkv, N * m->QKV, act, "qkv"},
                              {&s->att, N * AD, act, "att"},
                              {(void **)&s->lse, N * m->NH, RL_F32, "lse"},
                              {&s->gu, N * 2 * m->FF, act, "gu"},
                              {&s->mlp, N * m->FF, act, "mlp"},
                              {&s->proj, N * C, act, "proj"},
                              {(void **)&s->logits, nlogits, RL_F32, "logits"},
                              {(void **)&s->tokens, N, RL_I32, "tokens"},
                              {(void **)&s->pos, N, RL_I32, "pos"},
                              {(void **)&s->lengths, B, RL_I32, "lengths"},
                              {(void **)&s->targets, N, RL_I32, "targets"},
                              {(void **)&s->logp, N, RL_F32, "logp"},
                              {(void **)&s->ent, N, RL_F32, "ent"}};
    m->score_block = rl_model__alloc_specs(be, specs, (int)(sizeof specs / sizeof specs[0]));
    m->score_rows = N;
    m->score_seqs = B;
    m->score_chunk = chunk;
}

// The scoring forward: B right-padded sequences through every layer in one layer's buffers,
// leaving the final norm's output in m->score.ln. h_len [B] receives the lengths.
static int score_forward(rl_model *m, const int32_t *tokens, const int32_t *lengths, int B, int T,
                         int32_t *h_len, const char *what, rl_err *err) {
    RL_TRY(check_batch(m, tokens, lengths, B, T, what, err));
    size_t N = (size_t)B * T;
    ensure_score(m, N, (size_t)B);
    const rl_backend *be = m->be;
    rl_model_score *s = &m->score;
    int32_t *h_tok = rl_malloc(N * sizeof(int32_t)), *h_pos = rl_malloc(N * sizeof(int32_t));
    for (int b = 0; b < B; b++) {
        int len = lengths ? lengths[b] : T;
        h_len[b] = len;
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t;
            h_tok[r] = t < len ? tokens[r] : -1;
            h_pos[r] = t;
        }
    }
    be->mem_upload(be, s->tokens, h_tok, N * sizeof(int32_t));
    be->mem_upload(be, s->pos, h_pos, N * sizeof(int32_t));
    be->mem_upload(be, s->lengths, h_len, (size_t)B * sizeof(int32_t));
    free(h_tok);
    free(h_pos);
    int n = (int)N;
    // The same layer pieces as rl_model_forward, every layer in the same buffers: the residual
    // stream goes x -> mid (attention) -> x (MLP).
    RL_TIMED(m, other, be->embedding_forward(be, s->x, s->tokens, m->params.wte, n, m->C));
    for (int l = 0; l < m->L; l++) {
        rl_model__attn_in(m, l, s->qkv, s->ln, NULL, s->x, s->pos, n);
        RL_TIMED(m, attention,
                 be->attention_forward(be, s->att, s->lse, s->qkv, s->lengths, B, T, m->NH, m->NKV,
                                       m->hd, rl_model_layer_window(m, l)));
        rl_model__attn_out(m, l, s->mid, s->x, s->att, s->proj, s->ln, NULL, n);
        rl_model__mlp(m, l, s->x, s->mid, s->ln, s->gu, s->mlp, s->proj, n);
    }
    RL_TIMED(m, other,
             be->rmsnorm_forward(be, s->ln, NULL, s->x, m->params.lnfw, n, m->C,
                                 (float)m->cfg.rms_norm_eps));
    return 0;
}

int rl_model_score_logits(rl_model *m, const int32_t *tokens, const int32_t *lengths, int B, int T,
                          float *logits, rl_err *err) {
    int32_t *h_len = rl_malloc((size_t)(B > 0 ? B : 1) * sizeof(int32_t));
    if (score_forward(m, tokens, lengths, B, T, h_len, "score_logits", err)) {
        free(h_len);
        return -1;
    }
    size_t N = (size_t)B * T, C = m->C, V = m->V;
    const rl_backend *be = m->be;
    rl_model_score *s = &m->score;
    for (size_t r0 = 0; r0 < N; r0 += m->score_chunk) {
        int rows = (int)(N - r0 < m->score_chunk ? N - r0 : m->score_chunk);
        rl_model__lm_head(m, s->logits, AT(m, s->ln, r0 * C), rows);
        be->mem_download(be, logits + r0 * V, s->logits, (size_t)rows * V * sizeof(float));
    }
    for (int b = 0; b < B; b++)
        for (int t = h_len[b]; t < T; t++) memset(logits + ((size_t)b * T + t) * V, 0, V * 4);
    free(h_len);
    return 0;
}

int rl_model_score_logprobs(rl_model *m, const int32_t *tokens, const int32_t *lengths, int B,
                            int T, const int32_t *targets, float temperature, float *logp,
                            float *entropy, rl_err *err) {
    if (!(temperature > 0.0f) || !isfinite(temperature))
        return rl_fail(err, RL_EINPUT, "model score_logprobs: temperature %g must be positive",
                       (double)temperature);
    RL_TRY(check_batch(m, tokens, lengths, B, T, "score_logprobs", err));
    size_t N = (size_t)B * T, C = m->C;
    int32_t *h_tg = rl_malloc((N ? N : 1) * sizeof(int32_t));
    for (int b = 0; b < B; b++) {
        int len = lengths ? lengths[b] : T;
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t;
            int32_t y = targets[r];
            if (t < len && (y < -1 || y >= m->V)) {
                free(h_tg);
                return rl_fail(err, RL_EINPUT,
                               "model score_logprobs: target %d at row %d position %d outside "
                               "[-1, %d)",
                               y, b, t, m->V);
            }
            h_tg[r] = t < len ? y : -1;
        }
    }
    int32_t *h_len = rl_malloc((size_t)(B > 0 ? B : 1) * sizeof(int32_t));
    if (score_forward(m, tokens, lengths, B, T, h_len, "score_logprobs", err)) {
        free(h_tg);
        free(h_len);
        return -1;
    }
    const rl_backend *be = m->be;
    rl_model_score *s = &m->score;
    be->mem_upload(be, s->targets, h_tg, N * sizeof(int32_t));
    float it = 1.0f / temperature;
    lm_head_plan pl = plan_lm_head(m, N, m->score_chunk);
    for (size_t r0 = 0; pl.rows && r0 < N; r0 += (size_t)pl.rows) {
        int rows = (int)(N - r0 < (size_t)pl.rows ? N - r0 : (size_t)pl.rows);
        RL_TIMED(m, matmul,
                 be->lm_head_logprob_forward(be, s->logp + r0, entropy ? s->ent + r0 : NULL, NULL,
                                             AT(m, s->ln, r0 * C), m->params.wlm, s->targets + r0,
                                             rows, m->C, m->V, it, pl.chunk, s->logits));
    }
    for (size_t r0 = 0; !pl.rows && r0 < N; r0 += m->score_chunk) {
        int rows = (int)(N - r0 < m->score_chunk ? N - r0 : m->score_chunk);
        rl_model__lm_head(m, s->logits, AT(m, s->ln, r0 * C), rows);
        RL_TIMED(m, other,
                 be->logprob_forward(be, s->logp + r0, entropy ? s->ent + r0 : NULL, s->logits,
                                     s->targets + r0, rows, m->V, it));
    }
    be->mem_download(be, logp, s->logp, N * sizeof(float));
    if (entropy) be->mem_download(be, entropy, s->ent, N * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int t = h_len[b]; t < T; t++) {
            logp[(size_t)b * T + t] = 0.0f;
            if (entropy) entropy[(size_t)b * T + t] = 0.0f;
        }
    free(h_tg);
    free(h_len);
    return 0;
}

// lm_head output of rows [r0, r0 + rows) of the last forward into acts.logits.
static void lm_head_rows(rl_model *m, size_t r0, int rows) {
    rl_model__lm_head(m, m->acts.logits, AT(m, m->acts.lnf, r0 * m->C), rows);
}

// gacts.dln rows [r0, r0 + rows) and the lm_head gradient from the float32 logit gradients in
// acts.logits (rounded to the act type first when that is not float32: matrix products take
// act operands).
static void lm_head_backward(rl_model *m, size_t r0, int rows) {
    const rl_backend *be = m->be;
    rl_model_acts *a = &m->acts;
    const void *dout = a->logits;
    if (m->act != RL_F32) {
        RL_TIMED(m, other,
                 be->convert(be, a->dlogits_act, m->act, a->logits, RL_F32, (size_t)rows * m->V));
        dout = a->dlogits_act;
    }
    RL_TIMED(m, matmul,
             be->matmul_backward(be, AT(m, m->gacts.dln, r0 * m->C), m->grads.wlm, NULL, dout,
                                 AT(m, a->lnf, r0 * m->C), m->params.wlm, rows, m->C, m->V));
}

// Zeroes x[b, t] for the padded positions of the last forward (host array [B, T]).
static void zero_padding(const rl_model *m, float *x) {
    for (int b = 0; b < m->B; b++)
        for (int t = m->h_lengths[b]; t < m->T; t++) x[(size_t)b * m->T + t] = 0.0f;
}

int rl_model_token_logprobs(rl_model *m, const int32_t *targets, float temperature, float *logp,
                            float *entropy, rl_err *err) {
    if (m->B == 0)
        return rl_fail(err, RL_EINTERNAL, "model token_logprobs: no forward pass to score");
    m->have_logprobs = 0; // a failed call leaves nothing for backward
    if (!(temperature > 0.0f) || !isfinite(temperature))
        return rl_fail(err, RL_EINPUT, "model token_logprobs: temperature %g must be positive",
                       (double)temperature);
    int B = m->B, T = m->T;
    size_t N = (size_t)B * T;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t;
            int32_t y = targets[r];
            if (t < m->h_lengths[b] && (y < -1 || y >= m->V))
                return rl_fail(err, RL_EINPUT,
                               "model token_logprobs: target %d at row %d position %d outside "
                               "[-1, %d)",
                               y, b, t, m->V);
            m->h_targets[r] = t < m->h_lengths[b] ? y : -1;
        }
    const rl_backend *be = m->be;
    rl_model_acts *a = &m->acts;
    be->mem_upload(be, a->targets, m->h_targets, N * sizeof(int32_t));
    float it = 1.0f / temperature;
    lm_head_plan pl = plan_lm_head(m, N, m->logits_rows);
    for (size_t r0 = 0; pl.rows && r0 < N; r0 += (size_t)pl.rows) {
        int rows = (int)(N - r0 < (size_t)pl.rows ? N - r0 : (size_t)pl.rows);
        // entropy for every row (the backward may need it) and lse for the backward
        RL_TIMED(m, matmul,
                 be->lm_head_logprob_forward(
                     be, a->logp + r0, a->ent + r0, a->lselm + r0, AT(m, a->lnf, r0 * m->C),
                     m->params.wlm, a->targets + r0, rows, m->C, m->V, it, pl.chunk, a->logits));
    }
    for (size_t r0 = 0; !pl.rows && r0 < N; r0 += m->logits_rows) {
        int rows = (int)(N - r0 < m->logits_rows ? N - r0 : m->logits_rows);
        lm_head_rows(m, r0, rows);
        RL_TIMED(m, other,
                 be->logprob_forward(be, a->logp + r0, entropy ? a->ent + r0 : NULL, a->logits,
                                     a->targets + r0, rows, m->V, it));
    }
    be->mem_download(be, logp, a->logp, N * sizeof(float));
    zero_padding(m, logp);
    if (entropy) {
        be->mem_download(be, entropy, a->ent, N * sizeof(float));
        zero_padding(m, entropy);
    }
    m->logits_valid = !pl.rows && m->logits_rows >= N; // one chunk: backward can reuse them
    m->temperature = temperature;
    m->have_logprobs = 1;
    return 0;
}

int rl_model_logits(rl_model *m, float *logits, rl_err *err) {
    if (m->B == 0) return rl_fail(err, RL_EINTERNAL, "model logits: no forward pass");
    size_t N = (size_t)m->B * m->T, V = m->V;
    for (size_t r0 = 0; r0 < N; r0 += m->logits_rows) {
        int rows = (int)(N - r0 < m->logits_rows ? N - r0 : m->logits_rows);
        lm_head_rows(m, r0, rows);
        m->be->mem_download(m->be, logits + r0 * V, m->acts.logits, (size_t)rows * V * 4);
    }
    for (int b = 0; b < m->B; b++)
        for (int t = m->h_lengths[b]; t < m->T; t++)
            memset(logits + ((size_t)b * m->T + t) * V, 0, V * sizeof(float));
    m->logits_valid = m->logits_rows >= N;
    return 0;
}

// ------------------------------------------------------------------------------------------------
// Backward

static void backward_trunk(rl_model *m);

int rl_model_backward(rl_model *m, const float *dlogp, const float *dentropy, rl_err *err) {
    if (!m->have_logprobs)
        return rl_fail(err, RL_EINTERNAL,
                       "model backward: call rl_model_token_logprobs after the forward first");
    ensure_grads(m);
    const rl_backend *be = m->be;
    rl_model_acts *a = &m->acts;
    size_t N = (size_t)m->B * m->T;

    // seeds, zero at padding
    memcpy(m->h_f1, dlogp, N * sizeof(float));
    zero_padding(m, m->h_f1);
    be->mem_upload(be, a->dlogp, m->h_f1, N * sizeof(float));
    if (dentropy) {
        memcpy(m->h_f2, dentropy, N * sizeof(float));
        zero_padding(m, m->h_f2);
        be->mem_upload(be, a->dent, m->h_f2, N * sizeof(float));
    }

    // lm_head and log-softmax, chunk by chunk: dlogits in place of the logits, then into dlnf
    float it = 1.0f / m->temperature;
    lm_head_plan pl = plan_lm_head(m, N, m->logits_rows); // as token_logprobs
    for (size_t r0 = 0; pl.rows && r0 < N; r0 += (size_t)pl.rows) {
        int rows = (int)(N - r0 < (size_t)pl.rows ? N - r0 : (size_t)pl.rows);
        RL_TIMED(m, matmul,
                 be->lm_head_logprob_backward(be, AT(m, m->gacts.dln, r0 * m->C), m->grads.wlm,
                                              a->dlogp + r0, dentropy ? a->dent + r0 : NULL,
                                              AT(m, a->lnf, r0 * m->C), m->params.wlm,
                                              a->targets + r0, a->lselm + r0, a->ent + r0, rows,
                                              m->C, m->V, it, pl.chunk, a->logits));
    }
    for (size_t r0 = 0; !pl.rows && r0 < N; r0 += m->logits_rows) {
        int rows = (int)(N - r0 < m->logits_rows ? N - r0 : m->logits_rows);
        if (!m->logits_valid) lm_head_rows(m, r0, rows);
        RL_TIMED(m, other,
                 be->logprob_backward(be, a->logits, a->logits, a->targets + r0, a->dlogp + r0,
                                      dentropy ? a->dent + r0 : NULL, rows, m->V, it));
        lm_head_backward(m, r0, rows);
    }
    m->logits_valid = 0; // consumed
    backward_trunk(m);
    return 0;
}

int rl_model_backward_logits(rl_model *m, const float *dlogits, rl_err *err) {
    if (m->B == 0) return rl_fail(err, RL_EINTERNAL, "model backward_logits: no forward pass");
    ensure_grads(m);
    const rl_backend *be = m->be;
    rl_model_acts *a = &m->acts;
    size_t N = (size_t)m->B * m->T, V = m->V;
    // The seeds go through the lm_head chunk by chunk, in the logits buffer; padded rows are
    // zeroed on the host so whatever the caller left there changes nothing.
    float *host = NULL;
    for (size_t r0 = 0; r0 < N; r0 += m->logits_rows) {
        int rows = (int)(N - r0 < m->logits_rows ? N - r0 : m->logits_rows);
        const float *src = dlogits + r0 * V;
        int padded = 0;
        for (int i = 0; i < rows && !padded; i++) {
            size_t r = r0 + (size_t)i;
            padded = (int)(r % (size_t)m->T) >= m->h_lengths[r / (size_t)m->T];
        }
        if (padded) {
            if (!host) host = rl_malloc(m->logits_rows * V * sizeof(float));
            memcpy(host, src, (size_t)rows * V * sizeof(float));
            for (int i = 0; i < rows; i++) {
                size_t r = r0 + (size_t)i;
                if ((int)(r % (size_t)m->T) >= m->h_lengths[r / (size_t)m->T])
                    memset(host + (size_t)i * V, 0, V * sizeof(float));
            }
            src = host;
        }
        be->mem_upload(be, a->logits, src, (size_t)rows * V * sizeof(float));
        lm_head_backward(m, r0, rows);
    }
    free(host);
    m->logits_valid = 0; // the buffer now holds seeds
    m->have_logprobs = 0;
    backward_trunk(m);
    return 0;
}

// Backward from the gradient of the final norm's output (gacts.dln, all N rows) to every
// parameter.
static void backward_trunk(rl_model *m) {
    const rl_backend *be = m->be;
    rl_model_acts *a = &m->acts;
    rl_model_grad_acts *g = &m->gacts;
    const rl_model_weights *p = &m->params;
    rl_model_wgrads *dp = &m->grads;
    int B = m->B, T = m->T, n = B * T;
    size_t N = (size_t)n, C = m->C, QKV = m->QKV, AD = (size_t)m->NH * m->hd;
    size_t FF = m->FF;
    float eps = (float)m->cfg.rms_norm_eps, theta = (float)m->cfg.rope_theta;

    be->mem_zero(be, g->dres, N * C * rl_dtype_size(m->act));
    RL_TIMED(m, other,
             be->rmsnorm_backward(be, g->dres, dp->lnfw, g->dln,
                                  AT(m, a->res, (size_t)m->L * N * C), p->lnfw, a->rstdf, n, m->C));
    for (int l = m->L - 1; l >= 0; l--) {
        layer_acts la = layer_at(m, l);
        if (m->acts_recompute) { // refill slot 0 from res[l]: attention block, then gate|up
            layer_forward(m, l, &la);
            mlp_in(m, l, la.gu, a->ln, n);
        }
        const void *ln1w = AT(m, p->ln1w, l * C), *ln2w = AT(m, p->ln2w, l * C);
        // MLP block: res[l+1] = resmid + down(swiglu(gu)), gu = rmsnorm(resmid) Wgu^T
        RL_TIMED(m, other, be->rmsnorm_forward(be, a->ln, NULL, la.resmid, ln2w, n, m->C, eps));
        RL_TIMED(m, other, be->swiglu_forward(be, a->mlp, la.gu, n, m->FF));
        RL_TIMED(m, matmul,
                 be->matmul_backward(be, g->dmlp, dp->wdown + l * C * FF, NULL, g->dres, a->mlp,
                                     AT(m, p->wdown, l * C * FF), n, m->FF, m->C));
        RL_TIMED(m, other, be->swiglu_backward(be, g->dgu, g->dmlp, la.gu, n, m->FF));
        RL_TIMED(m, matmul,
                 be->matmul_backward(be, g->dln, dp->wgu + l * 2 * FF * C, NULL, g->dgu, a->ln,
                                     AT(m, p->wgu, l * 2 * FF * C), n, m->C, 2 * m->FF));
        RL_TIMED(m, other,
                 be->rmsnorm_backward(be, g->dres, dp->ln2w + l * C, g->dln, la.resmid, ln2w,
                                      la.rstd2, n, m->C));
        // attention block: resmid = x + att Wo^T, qkv = rope(rmsnorm(x) Wqkv^T + b)
        RL_TIMED(m, other, be->rmsnorm_forward(be, a->ln, NULL, la.x, ln1w, n, m->C, eps));
        RL_TIMED(m, matmul,
                 be->matmul_backward(be, g->datt, dp->wo + l * C * AD, NULL, g->dres, la.att,
                                     AT(m, p->wo, l * C * AD), n, m->NH * m->hd, m->C));
        RL_TIMED(m, attention,
                 be->attention_backward(be, g->dqkv, g->datt, la.qkv, la.att, la.lse, a->lengths, B,
                                        T, m->NH, m->NKV, m->hd, rl_model_layer_window(m, l)));
        RL_TIMED(m, other,
                 be->rope_backward(be, g->dqkv, a->pos, n, m->NH + m->NKV, m->hd, m->QKV, theta));
        RL_TIMED(m, matmul,
                 be->matmul_backward(be, g->dln, dp->wqkv + l * QKV * C,
                                     dp->bqkv ? dp->bqkv + l * QKV : NULL, g->dqkv, a->ln,
                                     AT(m, p->wqkv, l * QKV * C), n, m->C, m->QKV));
        RL_TIMED(m, other,
                 be->rmsnorm_backward(be, g->dres, dp->ln1w + l * C, g->dln, la.x, ln1w, la.rstd1,
                                      n, m->C));
    }
    RL_TIMED(m, other, be->embedding_backward(be, dp->wte, g->dres, a->tokens, n, m->C));
}

// ------------------------------------------------------------------------------------------------
// Gradients and optimizer views

void rl_model_zero_grad(rl_model *m) {
    ensure_grads(m);
    m->be->mem_zero(m->be, m->grads_block, m->n_params * sizeof(float));
}

double rl_model_grad_norm(rl_model *m) {
    if (!m->grads_block) return 0.0;
    return sqrt(m->be->sumsq(m->be, m->grads_block, m->n_params));
}

void *rl_model_params(rl_model *m, size_t *n) {
    if (n) *n = m->n_params;
    return m->params_block;
}

float *rl_model_grads(rl_model *m, size_t *n) {
    ensure_grads(m);
    if (n) *n = m->n_params;
    return m->grads_block;
}

const rl_param_span *rl_model_decay_spans(const rl_model *m, int *n) {
    if (n) *n = 2;
    return m->spans;
}

size_t rl_model_num_weights(const rl_model *m) {
    size_t total = 0;
    for (int i = 0; i < m->n_tensors; i++) total += m->tensors[i].numel;
    return total;
}
