// engine: paged-KV generation with continuous batching and per-sample counter-based randomness.
// See engine.h.
#include "rollout/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rng.h"

// What the engine tracks for one sample. Its tokens are its prompt followed by the tokens drawn
// so far; n_fed of them are in the KV cache, and when all are, its logits row is ready and it
// draws the next one. A sample other than 0 waits (fork_wait) until its request's sample 0 has
// its prompt in the cache, then forks those blocks.
typedef struct live_seq {
    rl_completion *out;     // where the result goes
    const rl_gen_params *p; // the request's parameters
    rl_stream_req *req;     // the request it belongs to
    int sample;             // its index within the request
    int slot;               // its KV-cache slot (block-table row)
    int active;             // the slot is in use
    int fork_wait;          // waiting for sample 0's prompt
    int ready;              // row holds the logits to draw the next token from
    int done;
    uint64_t order;  // admission order (older sequences are never preempted for newer)
    int32_t *prompt; // [plen] own copy (recomputation after a preemption needs it)
    int plen;
    int n_fed;             // tokens in the KV cache (prompt first, then drawn tokens)
    rl_rng rng;            // its random stream
    int row;               // row of the step's logits (d_logits) to draw the next token from
    const float *row_host; // that row on the host (for on_token), NULL until downloaded
    int32_t last;          // the token just sampled
    char *bytes;           // decoded bytes so far (stop tokens excluded)
    size_t n_bytes, cap_bytes;
} live_seq;

// A submitted request waiting for its slots, with its own copy of the prompt.
struct queued {
    rl_stream_req *r;
    int32_t *ids;
};

struct rl_engine {
    rl_model *m;
    const rl_tokenizer *tok;
    rl_kv_cache *cache;
    int max_slots, max_len, chunk;
    int eager_decode; // no CUDA graphs for decode steps (rl_engine_opts)
    int V;            // model vocabulary (logits row length)
    int vocab_limit;  // ids sampled are < vocab_limit
    // Sampling runs on the backend (be->sample): the logits never leave it, one 12-byte row per
    // sampled token comes back (kernels/README.md, "Sampling and the decode step").
    float *d_logits;    // [max_slots, V] backend: logits of the step's rows
    float *d_rows;      // [max_slots, V] backend: the rows to draw from, when not d_logits' order
    int32_t *d_out;     // [3 * max_slots] backend: tokens | logp_sample | logp_policy
    uint64_t *d_rng;    // [2 * max_slots] backend: (key, position) of each row's stream
    rl_sampling *d_par; // [max_slots] backend: each row's parameters
    uint64_t *h_rng;    // host copies of the above
    rl_sampling *h_par;
    int32_t *h_out;
    float *logits; // [max_slots, V] host: rows downloaded for on_token callbacks

    live_seq *sq;         // [max_slots] the sequence in each slot
    int n_used;           // slots in use
    struct queued *queue; // [cap_queue] submitted, not yet admitted, in order
    int n_queue, cap_queue, n_queued_samples;
    uint64_t next_order;
    rl_gen_stats st; // accumulated by the steps (rl_generate reports them)
    // step scratch, [max_slots] each
    live_seq **run; // sequences in the step, in admission order
    int *slots;
    const int32_t **lists;
    int32_t *counts;
};

int rl_engine_create_opts(rl_engine **out, rl_model *model, const rl_tokenizer *tok,
                          const rl_engine_opts *o, rl_err *err) {
    *out = NULL;
    if (o->max_slots < 1 || o->max_len < 2)
        return rl_fail(err, RL_EINPUT, "engine: max_slots (%d) and max_len (%d) too small",
                       o->max_slots, o->max_len);
    int V = model->V, vocab_limit = o->vocab_limit;
    if (vocab_limit <= 0 || vocab_limit > V) vocab_limit = V;
    rl_engine *e = rl_calloc(1, sizeof *e);
    e->m = model;
    e->tok = tok;
    e->max_slots = o->max_slots;
    e->max_len = o->max_len;
    e->chunk = o->prefill_chunk > 0 ? o->prefill_chunk : 512;
    e->eager_decode = o->eager_decode != 0;
    e->V = V;
    e->vocab_limit = vocab_limit;
    e->cache =
        rl_kv_cache_create_pool(model, o->max_slots, o->max_len, o->kv_budget_bytes, e->chunk, err);
    if (!e->cache) {
        free(e);
        return rl_err_prefix(err, "engine: ");
    }
    size_t S = (size_t)o->max_slots;
    const rl_backend *be = model->be;
    e->d_logits = be->mem_alloc(be, S * V * sizeof(float));
    e->d_rows = be->mem_alloc(be, S * V * sizeof(float));
    e->d_out = be->mem_alloc(be, 3 * S * sizeof(int32_t));
    e->d_rng = be->mem_alloc(be, 2 * S * sizeof(uint64_t));
    e->d_par = be->mem_alloc(be, S * sizeof(rl_sampling));
    e->h_rng = rl_malloc(2 * S * sizeof(uint64_t));
    e->h_par = rl_malloc(S * sizeof(rl_sampling));
    e->h_out = rl_malloc(3 * S * sizeof(int32_t));
    e->logits = rl_malloc(S * V * sizeof(float));
    e->sq = rl_calloc(S, sizeof *e->sq);
    e->run = rl_malloc(S * sizeof *e->run);
    e->slots = rl_malloc(S * sizeof *e->slots);
    e->lists = rl_malloc(S * sizeof *e->lists);
    e->counts = rl_malloc(S * sizeof *e->counts);
    *out = e;
    return 0;
}

int rl_engine_create(rl_engine **out, rl_model *model, const rl_tokenizer *tok, int max_slots,
                     int max_len, int vocab_limit, rl_err *err) {
    rl_engine_opts o = {max_slots, max_len, vocab_limit, 0, 0, 0};
    return rl_engine_create_opts(out, model, tok, &o, err);
}

rl_kv_cache *rl_engine_cache(rl_engine *e) {
    return e->cache;
}

void rl_engine_free(rl_engine *e) {
    if (!e) return;
    rl_kv_cache_free(e->cache);
    const rl_backend *be = e->m->be;
    be->mem_free(be, e->d_logits);
    be->mem_free(be, e->d_rows);
    be->mem_free(be, e->d_out);
    be->mem_free(be, e->d_rng);
    be->mem_free(be, e->d_par);
    free(e->h_rng);
    free(e->h_par);
    free(e->h_out);
    free(e->logits);
    for (int i = 0; i < e->max_slots; i++) free(e->sq[i].bytes), free(e->sq[i].prompt);
    free(e->sq);
    for (int i = 0; i < e->n_queue; i++) free(e->queue[i].ids);
    free(e->queue);
    free(e->run);
    free(e->slots);
    free(e->lists);
    free(e->counts);
    free(e);
}

void rl_completion_free(rl_completion *c) {
    if (!c) return;
    free(c->tokens);
    free(c->logp_sample);
    free(c->logp_policy);
    free(c->text);
    memset(c, 0, sizeof *c);
}

static int is_stop_id(const rl_gen_params *p, int32_t t) {
    for (int i = 0; i < p->n_stop_ids; i++)
        if (p->stop_ids[i] == t) return 1;
    return 0;
}

// Appends a token's bytes and reports where a stop string ends the text (-1 if none). Only the
// window that the new bytes can complete is searched, so a stop string spanning tokens is found.
static long append_and_find_stop(live_seq *s, const rl_tokenizer *tok, const rl_gen_params *p,
                                 int32_t t) {
    size_t len;
    const char *b = rl_tokenizer_token_bytes(tok, t, &len);
    if (!b) len = 0;
    size_t before = s->n_bytes;
    if (s->n_bytes + len + 1 > s->cap_bytes) {
        s->cap_bytes = (s->n_bytes + len + 1) * 2;
        s->bytes = rl_realloc(s->bytes, s->cap_bytes);
    }
    memcpy(s->bytes + s->n_bytes, b, len);
    s->n_bytes += len;
    s->bytes[s->n_bytes] = '\0';
    long found = -1;
    for (int i = 0; i < p->n_stop_strings; i++) {
        size_t sl = strlen(p->stop_strings[i]);
        if (sl == 0 || sl > s->n_bytes) continue;
        size_t from = before + 1 > sl ? before + 1 - sl : 0;
        for (size_t at = from; at + sl <= s->n_bytes; at++)
            if (memcmp(s->bytes + at, p->stop_strings[i], sl) == 0) {
                if (found < 0 || (long)at < found) found = (long)at;
                break;
            }
    }
    return found;
}

// Records the token the sampling op drew for one sample and decides whether it finished.
static void take_token(rl_engine *e, const rl_gen_params *p, live_seq *s, int t, float lp_sample,
                       float lp_policy) {
    rl_completion *c = s->out;
    c->tokens[c->n_tokens] = t;
    c->logp_sample[c->n_tokens] = lp_sample;
    c->logp_policy[c->n_tokens] = lp_policy;
    c->n_tokens++;
    s->last = t;
    if (is_stop_id(p, t)) {
        c->finish = RL_FINISH_STOP;
        s->done = 1;
        return;
    }
    long stop_at = append_and_find_stop(s, e->tok, p, t);
    if (stop_at >= 0) {
        s->n_bytes = (size_t)stop_at;
        c->finish = RL_FINISH_STOP;
        s->done = 1;
    } else if (c->n_tokens >= p->max_new_tokens) {
        c->finish = RL_FINISH_LENGTH;
        s->done = 1;
    }
}

static void finish_text(live_seq *s) {
    rl_completion *c = s->out;
    c->text = rl_utf8_lossy(s->bytes ? s->bytes : "", s->n_bytes, &c->text_len);
    free(s->bytes);
    s->bytes = NULL;
}

// ---- requests, slots, preemption --------------------------------------------------------------

// Why a request cannot run on this engine (RL_EINPUT), or 0.
static int check_request(const rl_engine *e, const rl_gen_params *p, const rl_gen_prompt *pr,
                         const char *what, rl_err *err) {
    if (pr->n_ids < 1 || !pr->ids) return rl_fail(err, RL_EINPUT, "%s is empty", what);
    if (p->max_new_tokens < 1) return rl_fail(err, RL_EINPUT, "max_new_tokens must be >= 1");
    if (pr->n_ids > e->max_len - p->max_new_tokens)
        return rl_fail(err, RL_EINPUT,
                       "%s has %d tokens; with max_new_tokens %d it exceeds the engine's %d "
                       "positions",
                       what, pr->n_ids, p->max_new_tokens, e->max_len);
    if (pr->n_samples < 1 || pr->n_samples > e->max_slots)
        return rl_fail(err, RL_EINPUT, "%s asks for %d samples (engine holds %d)", what,
                       pr->n_samples, e->max_slots);
    return 0;
}

static void alloc_completion(rl_completion *c, const rl_gen_params *p, int sample) {
    int prompt = c->prompt;
    memset(c, 0, sizeof *c);
    c->prompt = prompt;
    c->sample = sample;
    c->tokens = rl_malloc((size_t)p->max_new_tokens * sizeof(int32_t));
    c->logp_sample = rl_malloc((size_t)p->max_new_tokens * sizeof(float));
    c->logp_policy = rl_malloc((size_t)p->max_new_tokens * sizeof(float));
}

// Gives r its slots (the caller checked that n_samples are free); ids: its prompt (freed).
static void admit(rl_engine *e, rl_stream_req *r, int32_t *ids) {
    const rl_gen_prompt *pr = &r->prompt;
    int s = 0;
    for (int slot = 0; slot < e->max_slots && s < pr->n_samples; slot++) {
        live_seq *q = &e->sq[slot];
        if (q->active) continue;
        free(q->bytes);
        free(q->prompt);
        memset(q, 0, sizeof *q);
        q->out = &r->out[s];
        q->p = r->params;
        q->req = r;
        q->sample = s;
        q->slot = slot;
        q->active = 1;
        q->fork_wait = s > 0;
        q->order = e->next_order++;
        q->prompt = rl_malloc((size_t)pr->n_ids * sizeof(int32_t));
        memcpy(q->prompt, ids, (size_t)pr->n_ids * sizeof(int32_t));
        q->plen = pr->n_ids;
        q->rng = rl_rng_stream(r->params->seed, RL_RNG_SAMPLE, pr->key, (uint64_t)s);
        rl_kv_cache_reset(e->cache, slot);
        s++;
    }
    free(ids);
    e->n_used += pr->n_samples;
    e->st.prompt_tokens += pr->n_ids;
}

// Frees a sequence's slot and blocks; its completion keeps what it has.
static void release_seq(rl_engine *e, live_seq *q) {
    if (!q->out->text) finish_text(q);
    free(q->bytes);
    q->bytes = NULL;
    free(q->prompt);
    q->prompt = NULL;
    rl_kv_cache_reset(e->cache, q->slot);
    q->active = 0;
    q->req->n_live--;
    e->n_used--;
}

// Gives back a running sequence's blocks; it will feed its prompt and tokens again.
static void preempt(rl_engine *e, live_seq *q) {
    e->st.recomputed_tokens += q->n_fed;
    e->st.preemptions++;
    rl_kv_cache_reset(e->cache, q->slot);
    q->n_fed = 0;
    q->ready = 0;
}

// The newest running sequence holding blocks, newer than q (NULL if none).
static live_seq *victim_for(rl_engine *e, const live_seq *q) {
    live_seq *v = NULL;
    for (int slot = 0; slot < e->max_slots; slot++) {
        live_seq *c = &e->sq[slot];
        if (!c->active || c == q || c->order < q->order || rl_kv_cache_len(e->cache, slot) == 0)
            continue;
        if (!v || c->order > v->order) v = c;
    }
    return v;
}

static int by_order(const void *a, const void *b) {
    const live_seq *x = *(live_seq *const *)a, *y = *(live_seq *const *)b;
    return x->order < y->order ? -1 : x->order > y->order;
}

// ---- one step -----------------------------------------------------------------------------------

// Admits queued requests in order while their slots are free.
static void admit_queued(rl_engine *e) {
    int k = 0;
    while (k < e->n_queue && e->queue[k].r->prompt.n_samples <= e->max_slots - e->n_used) {
        e->n_queued_samples -= e->queue[k].r->prompt.n_samples;
        admit(e, e->queue[k].r, e->queue[k].ids);
        k++;
    }
    memmove(e->queue, e->queue + k, (size_t)(e->n_queue - k) * sizeof *e->queue);
    e->n_queue -= k;
}

// Chooses the step's rows: every running sequence's next tokens, prompt tokens limited to
// e->chunk in all; reserves their KV blocks, preempting newer sequences when a pool is full.
// Returns the number of sequences in the step (e->run, e->lists, e->counts).
static int plan_step(rl_engine *e, int *prompt_rows) {
    int n = 0, budget = e->chunk;
    live_seq **order = e->run;
    for (int slot = 0; slot < e->max_slots; slot++)
        if (e->sq[slot].active && !e->sq[slot].fork_wait) order[n++] = &e->sq[slot];
    qsort(order, (size_t)n, sizeof *order, by_order);
    int k = 0;
    *prompt_rows = 0;
    for (int i = 0; i < n; i++) {
        live_seq *q = order[i];
        int known = q->plen + q->out->n_tokens, count;
        const int32_t *from;
        if (q->n_fed < q->plen) { // prompt tokens (a recomputation feeds them first)
            count = q->plen - q->n_fed < budget ? q->plen - q->n_fed : budget;
            from = q->prompt + q->n_fed;
        } else {
            count = known - q->n_fed;
            from = q->out->tokens + (q->n_fed - q->plen);
            if (count > 1) count = count < budget ? count : budget; // recomputed tokens
        }
        if (count <= 0) continue;
        int ok = 0;
        while (!(ok = rl_kv_cache_reserve(e->cache, q->slot, count) == 0)) {
            live_seq *v = victim_for(e, q);
            if (!v) break;
            preempt(e, v);
        }
        if (!ok) break; // the oldest waiting for blocks: nothing newer may overtake it
        if (count > 1 || q->n_fed < q->plen) budget -= count, *prompt_rows += count;
        order[k] = q;
        e->slots[k] = q->slot;
        e->lists[k] = from;
        e->counts[k] = count;
        k++;
    }
    return k;
}

// Draws a token for every ready sequence, reports it, releases finished sequences.
static void draw_tokens(rl_engine *e) {
    live_seq **ready = e->run;
    int n = 0;
    for (int slot = 0; slot < e->max_slots; slot++)
        if (e->sq[slot].active && e->sq[slot].ready) ready[n++] = &e->sq[slot];
    qsort(ready, (size_t)n, sizeof *ready, by_order);
    if (n == 0) return;
    // per row: its stream handed over at its position (then moved on by the one word the draw
    // takes, greedy or not, so streams stay aligned), its parameters, its logits row
    const rl_backend *be = e->m->be;
    size_t V = (size_t)e->V;
    int in_order = 1;
    for (int i = 0; i < n; i++) in_order &= ready[i]->row == i;
    for (int i = 0; i < n; i++) {
        live_seq *q = ready[i];
        e->h_rng[2 * i] = q->rng.key;
        e->h_rng[2 * i + 1] = rl_rng_position(&q->rng);
        rl_rng_advance(&q->rng, 1);
        e->h_par[i] = q->p->sampling;
        if (q->p->greedy) e->h_par[i].temperature = 0.0f;
        if (!in_order)
            be->mem_copy(be, e->d_rows + i * V, e->d_logits + (size_t)q->row * V,
                         V * sizeof(float));
    }
    rl_upload up[2] = {{e->d_rng, e->h_rng, 2 * (size_t)n * sizeof(uint64_t)},
                       {e->d_par, e->h_par, (size_t)n * sizeof(rl_sampling)}};
    be->mem_upload_staged(be, up, 2);
    be->sample(be, e->d_out, (float *)(e->d_out + n), (float *)(e->d_out + 2 * n),
               in_order ? e->d_logits : e->d_rows, e->d_rng, e->d_par, n, e->V, e->vocab_limit);
    be->mem_download(be, e->h_out, e->d_out, 3 * (size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        float lp_s, lp_p;
        memcpy(&lp_s, e->h_out + n + i, sizeof lp_s);
        memcpy(&lp_p, e->h_out + 2 * n + i, sizeof lp_p);
        take_token(e, ready[i]->p, ready[i], e->h_out[i], lp_s, lp_p);
        ready[i]->ready = 0;
    }
    // Report each token in admission order; a callback may cancel its request.
    for (int i = 0; i < n; i++) {
        live_seq *q = ready[i];
        if (!q->active) continue;
        rl_stream_req *r = q->req;
        if (q->done) {
            q->out->text = rl_utf8_lossy(q->bytes ? q->bytes : "", q->n_bytes, &q->out->text_len);
            e->st.new_tokens += q->out->n_tokens;
        }
        if (r->on_token && !q->row_host) { // the row the token was drawn from, for the callback
            float *h = e->logits + (size_t)q->row * V;
            be->mem_download(be, h, e->d_logits + (size_t)q->row * V, V * sizeof(float));
            q->row_host = h;
        }
        int stop = r->on_token ? r->on_token(r->ctx, q->sample, q->out, q->row_host,
                                             q->bytes ? q->bytes : "", q->n_bytes, q->done)
                               : 0;
        if (q->done) release_seq(e, q);
        if (stop) rl_engine_cancel(e, r);
    }
}

static void cancel_all(rl_engine *e) {
    for (int slot = 0; slot < e->max_slots; slot++)
        if (e->sq[slot].active) rl_engine_cancel(e, e->sq[slot].req);
    while (e->n_queue > 0) rl_engine_cancel(e, e->queue[0].r);
}

int rl_engine_step(rl_engine *e, rl_err *err) {
    admit_queued(e);
    if (e->n_used == 0) return 0;
    int prompt_rows;
    int n = plan_step(e, &prompt_rows);
    if (n > 0) {
        double t0 = rl_now();
        e->m->eager_decode = e->eager_decode; // the model may serve other engines
        if (rl_model_prefill_be(e->m, e->cache, n, e->slots, e->lists, e->counts, e->d_logits,
                                err)) {
            cancel_all(e);
            return -1;
        }
        if (prompt_rows > 0) e->st.prefill_seconds += rl_now() - t0;
        e->st.steps++;
        size_t used = rl_kv_cache_bytes_used(e->cache);
        if (used > e->st.kv_peak_bytes) e->st.kv_peak_bytes = used;
    }
    if (n == 0) { // cannot happen while the pool holds one sequence (checked at creation)
        cancel_all(e);
        return rl_fail(err, RL_EINTERNAL,
                       "engine: no sequence can get KV blocks (%zu of %zu "
                       "bytes in use)",
                       rl_kv_cache_bytes_used(e->cache), rl_kv_cache_bytes_total(e->cache));
    }
    for (int i = 0; i < n; i++) {
        live_seq *q = e->run[i];
        q->n_fed += e->counts[i];
        if (q->n_fed < q->plen + q->out->n_tokens) continue;
        q->ready = 1;
        q->row = i;
        q->row_host = NULL;
        if (q->sample != 0 || q->out->n_tokens != 0) continue;
        // sample 0 has its prompt in the cache: the other samples share it
        for (int slot = 0; slot < e->max_slots; slot++) {
            live_seq *c = &e->sq[slot];
            if (!c->active || !c->fork_wait || c->req != q->req) continue;
            rl_kv_cache_fork(e->cache, c->slot, q->slot);
            c->fork_wait = 0;
            c->n_fed = q->n_fed;
            c->ready = 1;
            c->row = q->row;
            c->row_host = NULL;
        }
    }
    draw_tokens(e);
    return 0;
}

// ---- the two front ends -------------------------------------------------------------------------

static int enqueue(rl_engine *e, rl_stream_req *r, int alloc, rl_err *err);

int rl_generate(rl_engine *e, const rl_gen_params *p, const rl_gen_prompt *prompts, int n_prompts,
                rl_completion *out, rl_gen_stats *stats, rl_err *err) {
    if (e->n_used > 0 || e->n_queue > 0)
        return rl_fail(err, RL_EINTERNAL, "rl_generate: the engine is serving other requests");
    int total = 0;
    char what[64];
    for (int i = 0; i < n_prompts; i++) {
        snprintf(what, sizeof what, "prompt %d", i);
        if (check_request(e, p, &prompts[i], what, err)) return -1;
        total += prompts[i].n_samples;
    }
    if (p->max_new_tokens < 1) return rl_fail(err, RL_EINPUT, "max_new_tokens must be >= 1");
    memset(&e->st, 0, sizeof e->st);
    rl_kv_cache_reset_peak(e->cache);
    double t0 = rl_now();
    rl_stream_req *reqs = rl_calloc((size_t)n_prompts, sizeof *reqs);
    int k = 0;
    for (int i = 0; i < n_prompts; i++) {
        reqs[i] = (rl_stream_req){.params = p, .prompt = prompts[i], .out = out + k};
        for (int s = 0; s < prompts[i].n_samples; s++) {
            out[k + s].prompt = i;
            alloc_completion(&out[k + s], p, s);
        }
        k += prompts[i].n_samples;
        if (enqueue(e, &reqs[i], 0, err)) break; // cannot fail: checked above
    }
    int rc = 0;
    while (rc == 0 && (e->n_used > 0 || e->n_queue > 0)) rc = rl_engine_step(e, err);
    free(reqs);
    if (rc) {
        for (int i = 0; i < total; i++) rl_completion_free(&out[i]);
        return -1;
    }
    e->st.seconds = rl_now() - t0;
    e->st.tokens_per_s = e->st.seconds > 0 ? e->st.new_tokens / e->st.seconds : 0;
    if (stats) *stats = e->st;
    return 0;
}

int rl_engine_free_slots(const rl_engine *e) {
    return e->max_slots - e->n_used - e->n_queued_samples;
}

int rl_engine_n_live(const rl_engine *e) {
    return e->n_used + e->n_queued_samples;
}

// Queues r; its completions are allocated here unless rl_generate did (alloc = 0).
static int enqueue(rl_engine *e, rl_stream_req *r, int alloc, rl_err *err) {
    r->n_live = 0;
    if (check_request(e, r->params, &r->prompt, "the prompt", err)) return -1;
    if (alloc)
        for (int s = 0; s < r->prompt.n_samples; s++) {
            r->out[s].prompt = 0;
            alloc_completion(&r->out[s], r->params, s);
        }
    if (e->n_queue == e->cap_queue) {
        e->cap_queue = e->cap_queue ? 2 * e->cap_queue : 16;
        e->queue = rl_realloc(e->queue, (size_t)e->cap_queue * sizeof *e->queue);
    }
    struct queued *qd = &e->queue[e->n_queue++];
    qd->r = r;
    qd->ids = rl_malloc((size_t)r->prompt.n_ids * sizeof(int32_t));
    memcpy(qd->ids, r->prompt.ids, (size_t)r->prompt.n_ids * sizeof(int32_t));
    e->n_queued_samples += r->prompt.n_samples;
    r->n_live = r->prompt.n_samples;
    return 0;
}

int rl_engine_submit(rl_engine *e, rl_stream_req *r, rl_err *err) {
    r->n_live = 0;
    if (r->prompt.n_samples > rl_engine_free_slots(e) && r->prompt.n_samples <= e->max_slots)
        return rl_fail(err, RL_EINPUT, "%d samples asked, %d slots free", r->prompt.n_samples,
                       rl_engine_free_slots(e));
    return enqueue(e, r, 1, err);
}

void rl_engine_cancel(rl_engine *e, rl_stream_req *r) {
    if (r->n_live == 0) return;
    for (int i = 0; i < e->n_queue; i++)
        if (e->queue[i].r == r) { // never admitted: its samples end empty
            free(e->queue[i].ids);
            memmove(&e->queue[i], &e->queue[i + 1],
                    (size_t)(e->n_queue - i - 1) * sizeof *e->queue);
            e->n_queue--;
            e->n_queued_samples -= r->prompt.n_samples;
            for (int s = 0; s < r->prompt.n_samples; s++) {
                r->out[s].finish = RL_FINISH_LENGTH;
                if (!r->out[s].text) r->out[s].text = rl_utf8_lossy("", 0, &r->out[s].text_len);
            }
            r->n_live = 0;
            return;
        }
    for (int slot = 0; slot < e->max_slots; slot++) {
        live_seq *q = &e->sq[slot];
        if (!q->active || q->req != r) continue;
        if (!q->done) q->out->finish = RL_FINISH_LENGTH;
        release_seq(e, q);
    }
}
