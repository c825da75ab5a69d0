// model_decode: the KV cache, prompt prefill and batched one-token decoding. See model.h.
//
// Both entry points run the same path: the new tokens of all sequences become the rows of one
// batch (in chunks of at most dec.rows rows), every layer projects them together, stores their
// keys and values at (slot, position) and attends each row to its own slot's cache. Only the
// rows whose logits are wanted (each sequence's last new token) go through the final norm and
// lm_head.
//
// On a backend with graph capture (CUDA), a pure decode step (one new token per sequence, at most
// the largest bucket's rows) is padded to a fixed bucket of rows and run as that bucket's CUDA
// graph: one staged upload of its inputs, one graph launch (see "Decode-step graphs" below).
#define _POSIX_C_SOURCE 200809L
#include "policy/model.h"
#include "policy/model_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ------------------------------------------------------------------------------------------------
// Paged KV cache

static int ceil_div(int a, int b) {
    return (a + b - 1) / b;
}

// Blocks one sequence can hold at once in a group: everything for full attention; for a window,
// the blocks covering the window plus `chunk` positions appended together.
static int seq_blocks(const rl_kv_cache *c, const rl_kv_group *g, int chunk) {
    if (g->window <= 0) return c->max_blocks;
    int b = ceil_div(g->window - 1 + chunk, RL_KV_BLOCK) + 1;
    return b < c->max_blocks ? b : c->max_blocks;
}

rl_kv_cache *rl_kv_cache_create_pool(const rl_model *m, int n_slots, int max_len,
                                     size_t budget_bytes, int chunk, rl_err *err) {
    if (n_slots <= 0 || max_len <= 0) {
        rl_fail(err, RL_EINPUT, "kv cache: %d slots of %d tokens: both must be positive", n_slots,
                max_len);
        return NULL;
    }
    if (chunk <= 0 || chunk > max_len) chunk = max_len;
    rl_kv_cache *c = rl_calloc(1, sizeof *c);
    c->be = m->be;
    c->n_slots = n_slots;
    c->max_len = max_len;
    c->L = m->L;
    c->kv_dim = m->NKV * m->hd;
    c->max_blocks = ceil_div(max_len, RL_KV_BLOCK);
    c->layer_group = rl_calloc((size_t)m->L, sizeof(int));
    c->layer_index = rl_calloc((size_t)m->L, sizeof(int));
    c->group = rl_calloc((size_t)m->L, sizeof *c->group);
    c->len = rl_calloc((size_t)n_slots, sizeof(int));
    // one group per distinct window, in order of first appearance; a window covering max_len is
    // full attention for this cache
    size_t elem = rl_dtype_size(m->be->act);
    for (int l = 0; l < m->L; l++) {
        int w = rl_model_layer_window(m, l);
        if (w >= max_len) w = 0;
        int gi = 0;
        while (gi < c->n_groups && c->group[gi].window != w) gi++;
        if (gi == c->n_groups) c->group[c->n_groups++].window = w;
        c->layer_group[l] = gi;
        c->layer_index[l] = c->group[gi].n_layers++;
    }
    size_t per_seq = 0; // bytes one sequence can hold over all groups
    for (int gi = 0; gi < c->n_groups; gi++) {
        rl_kv_group *g = &c->group[gi];
        g->block_bytes = (size_t)2 * g->n_layers * RL_KV_BLOCK * c->kv_dim * elem;
        per_seq += (size_t)seq_blocks(c, g, chunk) * g->block_bytes;
    }
    if (budget_bytes > 0 && budget_bytes < per_seq) {
        rl_fail(err, RL_EINPUT,
                "kv cache: a budget of %zu bytes cannot hold one sequence of %d tokens (%zu bytes "
                "needed)",
                budget_bytes, max_len, per_seq);
        rl_kv_cache_free(c);
        return NULL;
    }
    // the budget in sequences' worth, each group getting that many times one sequence's blocks
    double seqs = budget_bytes > 0 ? (double)budget_bytes / (double)per_seq : (double)n_slots;
    for (int gi = 0; gi < c->n_groups; gi++) {
        rl_kv_group *g = &c->group[gi];
        double nb = seqs * seq_blocks(c, g, chunk);
        double most = (double)n_slots * c->max_blocks; // more could never be used
        g->n_blocks = (int)(nb < most ? nb : most);
        size_t pool = (size_t)g->n_layers * g->n_blocks * RL_KV_BLOCK * c->kv_dim;
        size_t cells = (size_t)n_slots * c->max_blocks;
        rl_tensor_spec specs[] = {{&g->k, pool, m->be->act, "kv.k"},
                                  {&g->v, pool, m->be->act, "kv.v"},
                                  {(void **)&g->table, cells, RL_I32, "kv.table"}};
        g->block = rl_model__alloc_specs(c->be, specs, (int)(sizeof specs / sizeof specs[0]));
        g->h_table = rl_malloc(cells * sizeof(int32_t));
        for (size_t i = 0; i < cells; i++) g->h_table[i] = -1;
        g->ref = rl_calloc((size_t)g->n_blocks, sizeof(int));
        g->free_list = rl_malloc((size_t)g->n_blocks * sizeof(int));
        for (int i = 0; i < g->n_blocks; i++) g->free_list[i] = g->n_blocks - 1 - i; // 0 on top
        g->n_free = g->n_blocks;
        g->dirty = 1;
    }
    return c;
}

rl_kv_cache *rl_kv_cache_create(const rl_model *m, int n_slots, int max_len, rl_err *err) {
    return rl_kv_cache_create_pool(m, n_slots, max_len, 0, 0, err);
}

void rl_kv_cache_free(rl_kv_cache *c) {
    if (!c) return;
    for (int gi = 0; gi < c->n_groups; gi++) {
        rl_kv_group *g = &c->group[gi];
        c->be->mem_free(c->be, g->block);
        free(g->h_table);
        free(g->ref);
        free(g->free_list);
    }
    free(c->group);
    free(c->layer_group);
    free(c->layer_index);
    free(c->len);
    free(c);
}

static int valid_slot(const rl_kv_cache *c, int slot) {
    return slot >= 0 && slot < c->n_slots;
}

static int32_t *row_of(rl_kv_group *g, const rl_kv_cache *c, int slot) {
    return g->h_table + (size_t)slot * c->max_blocks;
}

static void unref(rl_kv_group *g, int32_t b) {
    if (--g->ref[b] == 0) g->free_list[g->n_free++] = b;
}

static int32_t take_block(rl_kv_group *g) {
    int32_t b = g->free_list[--g->n_free];
    g->ref[b] = 1;
    int used = g->n_blocks - g->n_free;
    if (used > g->peak_used) g->peak_used = used;
    return b;
}

void rl_kv_cache_reset(rl_kv_cache *c, int slot) {
    if (!valid_slot(c, slot)) return;
    for (int gi = 0; gi < c->n_groups; gi++) {
        rl_kv_group *g = &c->group[gi];
        int32_t *row = row_of(g, c, slot);
        for (int j = 0; j < c->max_blocks; j++)
            if (row[j] >= 0) {
                unref(g, row[j]);
                row[j] = -1;
                g->dirty = 1;
            }
    }
    c->len[slot] = 0;
}

void rl_kv_cache_fork(rl_kv_cache *c, int dst, int src) {
    if (!valid_slot(c, dst) || !valid_slot(c, src) || dst == src) return;
    rl_kv_cache_reset(c, dst);
    for (int gi = 0; gi < c->n_groups; gi++) {
        rl_kv_group *g = &c->group[gi];
        int32_t *from = row_of(g, c, src), *to = row_of(g, c, dst);
        for (int j = 0; j < c->max_blocks; j++)
            if ((to[j] = from[j]) >= 0) g->ref[to[j]]++;
        g->dirty = 1;
    }
    c->len[dst] = c->len[src];
}

void rl_kv_cache_copy_slot(rl_kv_cache *c, int dst, int src) {
    rl_kv_cache_fork(c, dst, src);
}

int rl_kv_cache_len(const rl_kv_cache *c, int slot) {
    return valid_slot(c, slot) ? c->len[slot] : 0;
}

// A copy of pool block b of group g (every layer, keys and values) in a fresh block.
static int32_t copy_block(rl_kv_cache *c, rl_kv_group *g, int32_t b) {
    int32_t nb = take_block(g);
    size_t blk = g->block_bytes / 2 / g->n_layers, layer = (size_t)g->n_blocks * blk;
    for (int li = 0; li < g->n_layers; li++) {
        char *k = (char *)g->k + li * layer, *v = (char *)g->v + li * layer;
        c->be->mem_copy(c->be, k + nb * blk, k + b * blk, blk);
        c->be->mem_copy(c->be, v + nb * blk, v + b * blk, blk);
    }
    unref(g, b);
    c->cow_copies++;
    return nb;
}

int rl_kv_cache_reserve(rl_kv_cache *c, int slot, int n) {
    if (!valid_slot(c, slot) || n < 0 || c->len[slot] + n > c->max_len) return -1;
    if (n == 0) return 0;
    int first = c->len[slot] / RL_KV_BLOCK, last = (c->len[slot] + n - 1) / RL_KV_BLOCK;
    for (int gi = 0; gi < c->n_groups; gi++) { // all or nothing: count first
        rl_kv_group *g = &c->group[gi];
        const int32_t *row = row_of(g, c, slot);
        int need = 0;
        for (int j = first; j <= last; j++) need += row[j] < 0 || g->ref[row[j]] > 1;
        if (need > g->n_free) return -1;
    }
    for (int gi = 0; gi < c->n_groups; gi++) {
        rl_kv_group *g = &c->group[gi];
        int32_t *row = row_of(g, c, slot);
        for (int j = first; j <= last; j++) {
            if (row[j] < 0)
                row[j] = take_block(g);
            else if (g->ref[row[j]] > 1)
                row[j] = copy_block(c, g, row[j]);
            else
                continue;
            g->dirty = 1;
        }
    }
    return 0;
}

// Window groups release the blocks no later query of slot can see: queries come at positions
// >= len, which see keys from len - window + 1 on.
static void release_unseen(rl_kv_cache *c, int slot) {
    if (c->keep_window) return;
    for (int gi = 0; gi < c->n_groups; gi++) {
        rl_kv_group *g = &c->group[gi];
        if (g->window <= 0) continue;
        int first_seen = c->len[slot] - g->window + 1;
        int32_t *row = row_of(g, c, slot);
        for (int j = 0; (j + 1) * RL_KV_BLOCK <= first_seen; j++)
            if (row[j] >= 0) {
                unref(g, row[j]);
                row[j] = -1;
                g->dirty = 1;
            }
    }
}

size_t rl_kv_cache_bytes_used(const rl_kv_cache *c) {
    size_t s = 0;
    for (int gi = 0; gi < c->n_groups; gi++)
        s += (size_t)(c->group[gi].n_blocks - c->group[gi].n_free) * c->group[gi].block_bytes;
    return s;
}

size_t rl_kv_cache_bytes_peak(const rl_kv_cache *c) {
    size_t s = 0;
    for (int gi = 0; gi < c->n_groups; gi++)
        s += (size_t)c->group[gi].peak_used * c->group[gi].block_bytes;
    return s;
}

size_t rl_kv_cache_bytes_total(const rl_kv_cache *c) {
    size_t s = 0;
    for (int gi = 0; gi < c->n_groups; gi++)
        s += (size_t)c->group[gi].n_blocks * c->group[gi].block_bytes;
    return s;
}

size_t rl_kv_cache_token_bytes(const rl_kv_cache *c) {
    size_t s = 0;
    for (int gi = 0; gi < c->n_groups; gi++) s += c->group[gi].block_bytes / RL_KV_BLOCK;
    return s;
}

void rl_kv_cache_reset_peak(rl_kv_cache *c) {
    for (int gi = 0; gi < c->n_groups; gi++)
        c->group[gi].peak_used = c->group[gi].n_blocks - c->group[gi].n_free;
}

static void upload_tables(rl_kv_cache *c) {
    for (int gi = 0; gi < c->n_groups; gi++) {
        rl_kv_group *g = &c->group[gi];
        if (!g->dirty) continue;
        c->be->mem_upload(c->be, g->table, g->h_table,
                          (size_t)c->n_slots * c->max_blocks * sizeof(int32_t));
        g->dirty = 0;
    }
}

// ------------------------------------------------------------------------------------------------
// Decode scratch

// ------------------------------------------------------------------------------------------------
// Decode-step graphs
//
// A decode step launches ~10 kernels per layer, each a few microseconds of GPU work for a small
// batch: on a GPU the launches, not the kernels, would set the pace. So on a backend with graph
// capture a pure decode step (R rows, every one the last new token of its sequence) is padded to
// the next of a few fixed row counts (buckets) and run as that bucket's CUDA graph, captured the
// first time the bucket is seen and replayed after: one staged upload of the step's inputs
// (tokens, positions, slots, logits rows and changed block tables) into the fixed decode buffers,
// then one graph launch. A replay repeats the captured launches with their captured arguments,
// so nothing in the step may depend on host values that change between steps: row counts are
// the bucket's, the attention reads each row's position and block table from device memory
// (its grid is rows x heads, its key loop bounded by pos[i]), and padding rows have slot -1,
// which kv_store skips and attention_cached_forward answers with zeros (they write no KV and
// their rows of every product are discarded). Every other captured argument (decode buffers,
// weights, the KV pools and tables, the cache's block-table width, each layer's window, and which
// products run: m->rows_invariant) is fixed between steps; the graphs are dropped when one of
// them changes: ensure_decode reallocating the buffers, a step with another KV cache (compared
// layer by layer) or other products (graph_bind), rl_model_free.
//
// The padding to buckets is done whether graphs are on or off (m->eager_decode), so the two give
// the same rows to the same kernels and bit-identical logits, also with cuBLAS products (whose
// bits may depend on the row count; matmul_rows' never do). Backends without graph ops (the CPU)
// never pad to buckets.

static const int DECODE_BUCKETS[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
enum { N_BUCKETS = (int)(sizeof DECODE_BUCKETS / sizeof DECODE_BUCKETS[0]) };

// Index of the bucket a pure decode step of n rows is padded to, or -1: no graph ops on this
// backend, or more rows than the largest bucket (such a step runs op by op, unpadded).
static int decode_bucket(const rl_model *m, int n) {
    if (!m->be->graph_begin || !m->be->mem_upload_staged || n <= 0) return -1;
    for (int b = 0; b < N_BUCKETS; b++)
        if (n <= DECODE_BUCKETS[b]) return b;
    return -1;
}

// What a decode-step graph captured of a KV cache, per layer: the pool, table and window its
// kv_store and attention launches name.
typedef struct kv_binding {
    const void *k, *v;
    const int32_t *table;
    int window;
} kv_binding;

struct rl_decode_graphs {
    rl_graph *graph[N_BUCKETS]; // NULL until the bucket is first captured
    kv_binding *layer;          // [L] what every graph captured of the KV cache
    int max_blocks;             // the cache's block-table row length, also captured
    int rows_invariant;         // the products the graphs captured (m->rows_invariant)
    int broken;                 // a capture failed: decode steps run op by op from then on
};

// Frees every captured graph (they name the decode buffers and a KV cache's pools).
static void graphs_clear(rl_model *m) {
    struct rl_decode_graphs *gs = m->dec.graphs;
    if (!gs) return;
    for (int b = 0; b < N_BUCKETS; b++) {
        m->be->graph_free(m->be, gs->graph[b]);
        gs->graph[b] = NULL;
    }
}

void rl_model__decode_graphs_free(rl_model *m) {
    if (!m->dec.graphs) return;
    graphs_clear(m);
    free(m->dec.graphs->layer);
    free(m->dec.graphs);
    m->dec.graphs = NULL;
}

// Layer l's KV pools (keys, values) in cache c.
static void layer_kv(const rl_model *m, const rl_kv_cache *c, int l, void **kp, void **vp) {
    const rl_kv_group *g = &c->group[c->layer_group[l]];
    size_t layer = (size_t)c->layer_index[l] * g->n_blocks * RL_KV_BLOCK * c->kv_dim;
    *kp = rl_model__at(g->k, m->act, layer);
    *vp = rl_model__at(g->v, m->act, layer);
}

// The graph state for steps on cache c: the graphs are kept when they captured exactly c's pools,
// tables, windows and table width, and dropped otherwise (another cache, or one at the same
// addresses laid out differently).
static struct rl_decode_graphs *graph_bind(rl_model *m, const rl_kv_cache *c) {
    struct rl_decode_graphs *gs = m->dec.graphs;
    if (!gs) {
        gs = m->dec.graphs = rl_calloc(1, sizeof *gs);
        gs->layer = rl_calloc((size_t)m->L, sizeof *gs->layer);
    }
    int same = gs->max_blocks == c->max_blocks && gs->rows_invariant == m->rows_invariant;
    for (int l = 0; l < m->L; l++) {
        void *kp, *vp;
        layer_kv(m, c, l, &kp, &vp);
        const rl_kv_group *g = &c->group[c->layer_group[l]];
        kv_binding now = {kp, vp, g->table, g->window};
        kv_binding *was = &gs->layer[l];
        same &= was->k == now.k && was->v == now.v && was->table == now.table &&
                was->window == now.window;
        *was = now;
    }
    if (!same) graphs_clear(m);
    gs->max_blocks = c->max_blocks;
    gs->rows_invariant = m->rows_invariant;
    return gs;
}

// Logits rows the decode buffers get for a call of n sequences on cache c: n, or with graphs,
// enough for a decode step of every slot of c (up to the largest bucket), so that a live batch
// growing step by step does not grow the buffers, and drop every graph, at each new bucket.
static int decode_outs(const rl_model *m, const rl_kv_cache *c, int n) {
    int most = DECODE_BUCKETS[N_BUCKETS - 1], slots = c->n_slots < most ? c->n_slots : most;
    return decode_bucket(m, slots) >= 0 && slots > n ? slots : n;
}

// Room for chunks of `rows` new tokens with up to `outs` logits rows each.
static void ensure_decode(rl_model *m, int rows, int outs) {
    rl_model_decode *d = &m->dec;
    int b = decode_bucket(m, outs); // a decode step of `outs` sequences is padded to its bucket
    if (b >= 0 && DECODE_BUCKETS[b] > rows) rows = DECODE_BUCKETS[b];
    if (b >= 0 && DECODE_BUCKETS[b] > outs) outs = DECODE_BUCKETS[b];
    if (rows <= d->rows && outs <= d->out_rows) return;
    if (rows < d->rows) rows = d->rows;
    if (outs < d->out_rows) outs = d->out_rows;
    const rl_backend *be = m->be;
    rl_model__decode_graphs_free(m); // they name the buffers freed here
    be->mem_free(be, m->dec_block);
    size_t R = (size_t)rows, O = (size_t)outs, C = m->C, AD = (size_t)m->NH * m->hd;
    rl_dtype act = be->act;
    rl_tensor_spec specs[] = {
        {&d->x, R * C, act, "dec.x"},
        {&d->ln, R * C, act, "dec.ln"},
        {&d->qkv, R * m->QKV, act, "dec.qkv"},
        {&d->att, R * AD, act, "dec.att"},
        {&d->proj, R * C, act, "dec.proj"},
        {&d->gu, R * 2 * m->FF, act, "dec.gu"},
        {&d->mlp, R * m->FF, act, "dec.mlp"},
        {&d->last, O * C, act, "dec.last"},
        {(void **)&d->logits, O * m->V, RL_F32, "dec.logits"},
        {(void **)&d->tokens, R, RL_I32, "dec.tokens"},
        {(void **)&d->pos, R, RL_I32, "dec.pos"},
        {(void **)&d->slot, R, RL_I32, "dec.slot"},
        {(void **)&d->out_idx, O, RL_I32, "dec.out_idx"},
    };
    int n_specs = (int)(sizeof specs / sizeof specs[0]);
    m->dec_block = rl_model__alloc_specs(be, specs, n_specs);
    // rows no chunk has written yet hold finite values (zero bits are 0.0 in float32 and bf16)
    be->mem_zero(be, m->dec_block, rl_model__specs_bytes(specs, n_specs));
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

// Embedding, every layer, the final norm and lm_head over the uploaded inputs: R rows (a padding
// row, slot -1, stores nothing and attends to nothing), k logits rows (none when k is 0) into
// d->logits.
static void forward_chunk(rl_model *m, rl_kv_cache *c, int R, int k) {
    const rl_backend *be = m->be;
    rl_model_decode *d = &m->dec;
    RL_TIMED(m, other, be->embedding_forward(be, d->x, d->tokens, m->params.wte, R, m->C));
    for (int l = 0; l < m->L; l++) {
        rl_kv_group *g = &c->group[c->layer_group[l]];
        void *kp, *vp;
        layer_kv(m, c, l, &kp, &vp);
        rl_model__attn_in(m, l, d->qkv, d->ln, NULL, d->x, d->pos, R);
        double t0 = rl_model__tic(m);
        be->kv_store(be, kp, vp, d->qkv, g->table, c->max_blocks, d->slot, d->pos, R, m->NH, m->NKV,
                     m->hd);
        be->attention_cached_forward(be, d->att, d->qkv, kp, vp, g->table, c->max_blocks, d->slot,
                                     d->pos, R, m->NH, m->NKV, m->hd, g->window);
        rl_model__toc(m, &m->timing.attention, t0);
        rl_model__attn_out(m, l, d->x, d->x, d->att, d->proj, d->ln, NULL, R);
        rl_model__mlp(m, l, d->x, d->x, d->ln, d->gu, d->mlp, d->proj, R);
    }
    if (k == 0) return;
    double t0 = rl_model__tic(m);
    be->gather_rows(be, d->last, d->x, d->out_idx, k, m->C);
    be->rmsnorm_forward(be, d->ln, NULL, d->last, m->params.lnfw, k, m->C,
                        (float)m->cfg.rms_norm_eps);
    rl_model__toc(m, &m->timing.other, t0);
    rl_model__lm_head(m, d->logits, d->ln, k);
}

// The first k rows of d->logits to rows h_out_dst of logits_out (backend memory when logits_be).
static void move_logits(rl_model *m, int k, float *logits_out, int logits_be) {
    const rl_backend *be = m->be;
    rl_model_decode *d = &m->dec;
    size_t V = m->V;
    int consecutive = 1;
    for (int j = 1; j < k; j++) consecutive &= d->h_out_dst[j] == d->h_out_dst[0] + j;
    double t0 = rl_model__tic(m);
    void (*move)(const rl_backend *, void *, const void *, size_t) =
        logits_be ? be->mem_copy : be->mem_download;
    if (consecutive)
        move(be, logits_out + (size_t)d->h_out_dst[0] * V, d->logits,
             (size_t)k * V * sizeof(float));
    else
        for (int j = 0; j < k; j++)
            move(be, logits_out + (size_t)d->h_out_dst[j] * V, d->logits + (size_t)j * V,
                 V * sizeof(float));
    rl_model__toc(m, &m->timing.other, t0);
}

// A pure decode step of R rows (row j's logits wanted, h_out_idx[j] = j) padded to bucket b:
// the inputs in one staged upload, then the bucket's graph (captured now when new) or, with
// graphs off, the same padded rows op by op.
static void run_bucket(rl_model *m, rl_kv_cache *c, int R, int b, float *logits_out,
                       int logits_be) {
    const rl_backend *be = m->be;
    rl_model_decode *d = &m->dec;
    int B = DECODE_BUCKETS[b];
    for (int i = R; i < B; i++) // padding rows: slot -1 (no KV stored, zero attention)
        d->h_tokens[i] = 0, d->h_pos[i] = 0, d->h_slot[i] = -1, d->h_out_idx[i] = i;
    size_t bytes = (size_t)B * sizeof(int32_t);
    rl_upload parts[RL_UPLOAD_MAX_PARTS] = {{d->tokens, d->h_tokens, bytes},
                                            {d->pos, d->h_pos, bytes},
                                            {d->slot, d->h_slot, bytes},
                                            {d->out_idx, d->h_out_idx, bytes}};
    int n = 4;
    for (int gi = 0; gi < c->n_groups; gi++) { // changed block tables, in the same transfer
        rl_kv_group *g = &c->group[gi];
        if (!g->dirty) continue;
        size_t tb = (size_t)c->n_slots * c->max_blocks * sizeof(int32_t);
        if (n < RL_UPLOAD_MAX_PARTS)
            parts[n++] = (rl_upload){g->table, g->h_table, tb};
        else
            be->mem_upload(be, g->table, g->h_table, tb);
        g->dirty = 0;
    }
    be->mem_upload_staged(be, parts, n);

    struct rl_decode_graphs *gs = graph_bind(m, c);
    // timing synchronises after every op, which a capture cannot hold: timed steps run op by op
    if (m->eager_decode || m->timing.enabled || gs->broken) {
        forward_chunk(m, c, B, B);
    } else {
        if (!gs->graph[b]) {
            rl_err err;
            be->graph_begin(be);
            forward_chunk(m, c, B, B);
            gs->graph[b] = be->graph_end(be, &err);
            if (!gs->graph[b]) { // nothing ran: this step and every later one op by op
                fprintf(stderr, "rlpipe: %s; decode steps run without CUDA graphs\n", err.msg);
                gs->broken = 1;
                forward_chunk(m, c, B, B);
            } else {
                d->graph_captures++;
            }
        }
        if (gs->graph[b]) {
            be->graph_launch(be, gs->graph[b]);
            d->graph_replays++;
        }
    }
    move_logits(m, R, logits_out, logits_be);
}

// logits_be: logits is backend memory (a device-to-device copy), else host memory.
static void run_chunk(rl_model *m, rl_kv_cache *c, int R, int k, float *logits_out, int logits_be) {
    const rl_backend *be = m->be;
    rl_model_decode *d = &m->dec;
    int b = R == k ? decode_bucket(m, R) : -1; // every row a sequence's last: a decode step
    if (b >= 0 && DECODE_BUCKETS[b] <= d->rows && DECODE_BUCKETS[b] <= d->out_rows) {
        run_bucket(m, c, R, b, logits_out, logits_be);
        return;
    }
    be->mem_upload(be, d->tokens, d->h_tokens, (size_t)R * sizeof(int32_t));
    be->mem_upload(be, d->pos, d->h_pos, (size_t)R * sizeof(int32_t));
    be->mem_upload(be, d->slot, d->h_slot, (size_t)R * sizeof(int32_t));
    if (k > 0) be->mem_upload(be, d->out_idx, d->h_out_idx, (size_t)k * sizeof(int32_t));
    upload_tables(c);
    forward_chunk(m, c, R, k);
    if (k > 0) move_logits(m, k, logits_out, logits_be);
}

// Appends the tokens of n sequences: sequence i has count(i) tokens, tokens(i, j).
// Exactly one of tok_lists / flat is given: tok_lists[i][j] with n_tokens[i], or flat[i] (one
// token each).
static int run_cached(rl_model *m, rl_kv_cache *c, int n, const int *slots,
                      const int32_t *const *tok_lists, const int32_t *n_tokens, const int32_t *flat,
                      float *logits, int logits_be, const char *what, rl_err *err) {
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
    for (int i = 0; i < n; i++) // blocks for every new position (a no-op where reserved before)
        if (rl_kv_cache_reserve(c, slots[i], n_tokens ? n_tokens[i] : 1))
            return rl_fail(err, RL_EINTERNAL,
                           "%s: KV cache pool exhausted (slot %d, %d tokens held, %zu of %zu "
                           "bytes in use)",
                           what, slots[i], c->len[slots[i]], rl_kv_cache_bytes_used(c),
                           rl_kv_cache_bytes_total(c));
    // a chunk holds at most m->prefill_rows rows (but every sequence of a decode step) and at
    // most one logits row per sequence
    int cap = m->prefill_rows > 0 ? m->prefill_rows : 1;
    int want = total < (size_t)cap ? (int)total : cap;
    ensure_decode(m, want > n ? want : n, decode_outs(m, c, n));

    rl_model_decode *d = &m->dec;
    int R = 0, k = 0;
    // the products of these chunks go through be->matmul_rows unless told otherwise (model.h)
    m->rows_invariant = m->batch_invariant > 0 || (m->batch_invariant == 0 && m->be->is_host);
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
                run_chunk(m, c, R, k, logits, logits_be);
                R = k = 0;
            }
        }
    }
    if (R > 0) run_chunk(m, c, R, k, logits, logits_be);
    m->rows_invariant = 0;
    for (int i = 0; i < n; i++) {
        c->len[slots[i]] += n_tokens ? n_tokens[i] : 1;
        release_unseen(c, slots[i]);
    }
    return 0;
}

int rl_model_prefill(rl_model *m, rl_kv_cache *c, int n, const int *slots,
                     const int32_t *const *tokens, const int32_t *n_tokens, float *logits,
                     rl_err *err) {
    return run_cached(m, c, n, slots, tokens, n_tokens, NULL, logits, 0, "prefill", err);
}

int rl_model_prefill_be(rl_model *m, rl_kv_cache *c, int n, const int *slots,
                        const int32_t *const *tokens, const int32_t *n_tokens, float *logits,
                        rl_err *err) {
    return run_cached(m, c, n, slots, tokens, n_tokens, NULL, logits, 1, "prefill", err);
}

int rl_model_decode_step(rl_model *m, rl_kv_cache *c, int n, const int *slots,
                         const int32_t *tokens, float *logits, rl_err *err) {
    return run_cached(m, c, n, slots, NULL, NULL, tokens, logits, 0, "decode step", err);
}
