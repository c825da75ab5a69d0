// model_decode: the KV cache, prompt prefill and batched one-token decoding. See model.h.
//
// Both entry points run the same path: the new tokens of all sequences become the rows of one
// batch (in chunks of at most dec.rows rows), every layer projects them together, stores their
// keys and values at (slot, position) and attends each row to its own slot's cache. Only the
// rows whose logits are wanted (each sequence's last new token) go through the final norm and
// lm_head.
#define _POSIX_C_SOURCE 200809L
#include "policy/model.h"
#include "policy/model_impl.h"

#include <stdlib.h>
#include <string.h>

// ------------------------------------------------------------------------------------------------
// KV cache

rl_kv_cache *rl_kv_cache_create(const rl_model *m, int n_slots, int max_len, rl_err *err) {
    if (n_slots <= 0 || max_len <= 0) {
        rl_fail(err, RL_EINPUT, "kv cache: %d slots of %d tokens: both must be positive", n_slots,
                max_len);
        return NULL;
    }
    rl_kv_cache *c = rl_calloc(1, sizeof *c);
    c->be = m->be;
    c->n_slots = n_slots;
    c->max_len = max_len;
    c->L = m->L;
    c->kv_dim = m->NKV * m->hd;
    c->cap = (max_len + RL_KV_BLOCK - 1) / RL_KV_BLOCK * RL_KV_BLOCK;
    size_t n = (size_t)c->L * n_slots * c->cap * c->kv_dim;
    c->k = c->be->mem_alloc(c->be, n * sizeof(float));
    c->v = c->be->mem_alloc(c->be, n * sizeof(float));
    c->len = rl_calloc((size_t)n_slots, sizeof(int));
    return c;
}

void rl_kv_cache_free(rl_kv_cache *c) {
    if (!c) return;
    c->be->mem_free(c->be, c->k);
    c->be->mem_free(c->be, c->v);
    free(c->len);
    free(c);
}

static int valid_slot(const rl_kv_cache *c, int slot) {
    return slot >= 0 && slot < c->n_slots;
}

void rl_kv_cache_reset(rl_kv_cache *c, int slot) {
    if (valid_slot(c, slot)) c->len[slot] = 0;
}

void rl_kv_cache_copy_slot(rl_kv_cache *c, int dst, int src) {
    if (!valid_slot(c, dst) || !valid_slot(c, src) || dst == src) return;
    // the first ceil(len / RL_KV_BLOCK) blocks of a slot hold its first len positions
    size_t blocks = ((size_t)c->len[src] + RL_KV_BLOCK - 1) / RL_KV_BLOCK;
    size_t per_slot = (size_t)c->cap * c->kv_dim;
    size_t bytes = blocks * RL_KV_BLOCK * c->kv_dim * sizeof(float);
    for (int l = 0; l < c->L; l++) {
        size_t layer = (size_t)l * c->n_slots * per_slot;
        c->be->mem_copy(c->be, c->k + layer + dst * per_slot, c->k + layer + src * per_slot, bytes);
        c->be->mem_copy(c->be, c->v + layer + dst * per_slot, c->v + layer + src * per_slot, bytes);
    }
    c->len[dst] = c->len[src];
}

int rl_kv_cache_len(const rl_kv_cache *c, int slot) {
    return valid_slot(c, slot) ? c->len[slot] : 0;
}

// ------------------------------------------------------------------------------------------------
// Decode scratch

// Room for chunks of `rows` new tokens with up to `outs` logits rows each.
static void ensure_decode(rl_model *m, int rows, int outs) {
    rl_model_decode *d = &m->dec;
    if (rows <= d->rows && outs <= d->out_rows) return;
    if (rows < d->rows) rows = d->rows;
    if (outs < d->out_rows) outs = d->out_rows;
    const rl_backend *be = m->be;
    be->mem_free(be, m->dec_block);
    size_t R = (size_t)rows, O = (size_t)outs, C = m->C, AD = (size_t)m->NH * m->hd;
    float *tokens, *pos, *slot, *out_idx;
    float **views[] = {&d->x,    &d->ln,     &d->qkv, &d->att, &d->proj, &d->gu,  &d->mlp,
                       &d->last, &d->logits, &tokens, &pos,    &slot,    &out_idx};
    size_t sizes[] = {R * C,    R * C, R * m->QKV, R * AD, R * C, R * 2 * m->FF, R * m->FF, O * C,
                      O * m->V, R,     R,          R,      O};
    m->dec_block = rl_model__alloc_views(be, views, sizes, (int)(sizeof sizes / sizeof sizes[0]));
    d->tokens = (int32_t *)tokens;
    d->pos = (int32_t *)pos;
    d->slot = (int32_t *)slot;
    d->out_idx = (int32_t *)out_idx;
    d->h_tokens = rl_realloc(d->h_tokens, R * sizeof(int32_t));
    d->h_pos = rl_realloc(d->h_pos, R * sizeof(int32_t));
    d->h_slot = rl_realloc(d->h_slot, R * sizeof(int32_t));
    d->h_out_idx = rl_realloc(d->h_out_idx, O * sizeof(int32_t));
    d->h_out_dst = rl_realloc(d->h_out_dst, O * sizeof(int32_t));
    d->rows = rows;
    d->out_rows = outs;
}

// ------------------------------------------------------------------------------------------------
// One chunk: R rows (host arrays filled) through every layer; logits of the k rows listed in
// h_out_idx go to logits_host rows h_out_dst.

static void run_chunk(rl_model *m, rl_kv_cache *c, int R, int k, float *logits_host) {
    const rl_backend *be = m->be;
    rl_model_decode *d = &m->dec;
    be->mem_upload(be, d->tokens, d->h_tokens, (size_t)R * sizeof(int32_t));
    be->mem_upload(be, d->pos, d->h_pos, (size_t)R * sizeof(int32_t));
    be->mem_upload(be, d->slot, d->h_slot, (size_t)R * sizeof(int32_t));
    be->mem_upload(be, d->out_idx, d->h_out_idx, (size_t)k * sizeof(int32_t));

    RL_TIMED(m, other, be->embedding_forward(be, d->x, d->tokens, m->params.wte, R, m->C));
    size_t layer_floats = (size_t)c->n_slots * c->cap * c->kv_dim;
    for (int l = 0; l < m->L; l++) {
        float *kc = c->k + l * layer_floats, *vc = c->v + l * layer_floats;
        rl_model__attn_in(m, l, d->qkv, d->ln, NULL, d->x, d->pos, R);
        double t0 = rl_model__tic(m);
        be->kv_store(be, kc, vc, d->qkv, d->slot, d->pos, R, m->NH, m->NKV, m->hd, c->cap);
        be->attention_cached_forward(be, d->att, d->qkv, kc, vc, d->slot, d->pos, R, m->NH, m->NKV,
                                     m->hd, c->cap, rl_model_layer_window(m, l));
        rl_model__toc(m, &m->timing.attention, t0);
        rl_model__attn_out(m, l, d->x, d->x, d->att, d->proj, R);
        rl_model__mlp(m, l, d->x, d->x, d->ln, NULL, d->gu, d->mlp, d->proj, R);
    }
    if (k == 0) return;
    double t0 = rl_model__tic(m);
    be->gather_rows(be, d->last, d->x, d->out_idx, k, m->C);
    be->rmsnorm_forward(be, d->ln, NULL, d->last, m->params.lnfw, k, m->C,
                        (float)m->cfg.rms_norm_eps);
    rl_model__toc(m, &m->timing.other, t0);
    rl_model__lm_head(m, d->logits, d->ln, k);
    size_t V = m->V;
    int consecutive = 1;
    for (int j = 1; j < k; j++) consecutive &= d->h_out_dst[j] == d->h_out_dst[0] + j;
    t0 = rl_model__tic(m);
    if (consecutive)
        be->mem_download(be, logits_host + (size_t)d->h_out_dst[0] * V, d->logits,
                         (size_t)k * V * sizeof(float));
    else
        for (int j = 0; j < k; j++)
            be->mem_download(be, logits_host + (size_t)d->h_out_dst[j] * V,
                             d->logits + (size_t)j * V, V * sizeof(float));
    rl_model__toc(m, &m->timing.other, t0);
}

// Appends the tokens of n sequences: sequence i has count(i) tokens, tokens(i, j).
// Exactly one of tok_lists / flat is given: tok_lists[i][j] with n_tokens[i], or flat[i] (one
// token each).
static int run_cached(rl_model *m, rl_kv_cache *c, int n, const int *slots,
                      const int32_t *const *tok_lists, const int32_t *n_tokens, const int32_t *flat,
                      float *logits, const char *what, rl_err *err) {
    if (c->L != m->L || c->kv_dim != m->NKV * m->hd)
        return rl_fail(err, RL_EINTERNAL, "%s: the KV cache was made for another model shape",
                       what);
    if (n < 0 || n > c->n_slots)
        return rl_fail(err, RL_EINPUT, "%s: %d sequences for a cache of %d slots", what, n,
                       c->n_slots);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        int s = slots[i];
        if (!valid_slot(c, s))
            return rl_fail(err, RL_EINPUT, "%s: slot %d outside [0, %d)", what, s, c->n_slots);
        for (int j = 0; j < i; j++)
            if (slots[j] == s) return rl_fail(err, RL_EINPUT, "%s: slot %d appears twice", what, s);
        int count = n_tokens ? n_tokens[i] : 1;
        if (count <= 0)
            return rl_fail(err, RL_EINPUT, "%s: sequence %d has %d new tokens", what, i, count);
        if (count > c->max_len - c->len[s])
            return rl_fail(err, RL_EINPUT,
                           "%s: slot %d holds %d tokens, %d more exceed its %d positions", what, s,
                           c->len[s], count, c->max_len);
        for (int j = 0; j < count; j++) {
            int32_t id = n_tokens ? tok_lists[i][j] : flat[i];
            if (id < 0 || id >= m->V)
                return rl_fail(err, RL_EINPUT,
                               "%s: token %d (sequence %d, position %d) outside the vocabulary "
                               "[0, %d)",
                               what, id, i, j, m->V);
        }
        total += (size_t)count;
    }
    if (n == 0) return 0;
    // a chunk holds at most m->prefill_rows rows (but every sequence of a decode step) and at
    // most one logits row per sequence
    int cap = m->prefill_rows > 0 ? m->prefill_rows : 1;
    int want = total < (size_t)cap ? (int)total : cap;
    ensure_decode(m, want > n ? want : n, n);

    rl_model_decode *d = &m->dec;
    int R = 0, k = 0;
    for (int i = 0; i < n; i++) {
        int count = n_tokens ? n_tokens[i] : 1;
        for (int j = 0; j < count; j++) {
            d->h_tokens[R] = n_tokens ? tok_lists[i][j] : flat[i];
            d->h_pos[R] = c->len[slots[i]] + j;
            d->h_slot[R] = slots[i];
            if (j == count - 1) {
                d->h_out_idx[k] = R;
                d->h_out_dst[k++] = i;
            }
            if (++R == d->rows) {
                run_chunk(m, c, R, k, logits);
                R = k = 0;
            }
        }
    }
    if (R > 0) run_chunk(m, c, R, k, logits);
    for (int i = 0; i < n; i++) c->len[slots[i]] += n_tokens ? n_tokens[i] : 1;
    return 0;
}

int rl_model_prefill(rl_model *m, rl_kv_cache *c, int n, const int *slots,
                     const int32_t *const *tokens, const int32_t *n_tokens, float *logits,
                     rl_err *err) {
    return run_cached(m, c, n, slots, tokens, n_tokens, NULL, logits, "prefill", err);
}

int rl_model_decode_step(rl_model *m, rl_kv_cache *c, int n, const int *slots,
                         const int32_t *tokens, float *logits, rl_err *err) {
    return run_cached(m, c, n, slots, NULL, NULL, tokens, logits, "decode step", err);
}
