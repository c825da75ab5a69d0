// engine: batched KV-cache generation with per-sample counter-based randomness. See engine.h.
#include "rollout/engine.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rng.h"

struct rl_engine {
    rl_model *m;
    const rl_tokenizer *tok;
    rl_kv_cache *cache;
    int max_slots, max_len;
    int V;           // model vocabulary (logits row length)
    int vocab_limit; // ids sampled are < vocab_limit
    float *logits;   // [max_slots, V] host: logits of the live rows
    float *probs;    // [n_threads, V] scratch
    int32_t *idx;    // [n_threads, V] scratch
    int n_threads;

    // Continuous batching (rl_engine_submit / rl_engine_step), allocated on the first submit.
    struct live_seq *sq;         // [max_slots] the sequence in each slot (active = in use)
    int n_used;                  // slots in use
    struct rl_stream_req **pend; // [max_slots] requests admitted, not yet prefilled
    int n_pend;
    float *pf_logits; // [max_slots, V] prefill logits of the newly admitted prompts
};

// What the engine tracks for one sample while it is being generated.
typedef struct live_seq {
    rl_completion *out; // where the result goes
    int slot;           // its KV-cache slot
    rl_rng rng;         // its random stream
    const float *row;   // logits to sample the next token from
    int32_t last;       // the token just sampled (fed to the next decode step)
    char *bytes;        // decoded bytes so far (stop tokens excluded)
    size_t n_bytes, cap_bytes;
    int done;
    // Continuous batching only:
    const rl_gen_params *p; // the request's parameters
    rl_stream_req *req;     // the request it belongs to
    int sample;             // its index within the request
    int active;             // the slot is in use
} live_seq;

int rl_engine_create(rl_engine **out, rl_model *model, const rl_tokenizer *tok, int max_slots,
                     int max_len, int vocab_limit, rl_err *err) {
    *out = NULL;
    if (max_slots < 1 || max_len < 2)
        return rl_fail(err, RL_EINPUT, "engine: max_slots (%d) and max_len (%d) too small",
                       max_slots, max_len);
    int V = model->V;
    if (vocab_limit <= 0 || vocab_limit > V) vocab_limit = V;
    rl_engine *e = rl_calloc(1, sizeof *e);
    e->m = model;
    e->tok = tok;
    e->max_slots = max_slots;
    e->max_len = max_len;
    e->V = V;
    e->vocab_limit = vocab_limit;
    e->cache = rl_kv_cache_create(model, max_slots, max_len, err);
    if (!e->cache) {
        free(e);
        return rl_err_prefix(err, "engine: ");
    }
    e->n_threads = omp_get_max_threads();
    e->logits = rl_malloc((size_t)max_slots * V * sizeof(float));
    e->probs = rl_malloc((size_t)e->n_threads * V * sizeof(float));
    e->idx = rl_malloc((size_t)e->n_threads * V * sizeof(int32_t));
    *out = e;
    return 0;
}

void rl_engine_free(rl_engine *e) {
    if (!e) return;
    rl_kv_cache_free(e->cache);
    free(e->logits);
    free(e->probs);
    free(e->idx);
    if (e->sq)
        for (int i = 0; i < e->max_slots; i++) free(e->sq[i].bytes);
    free(e->sq);
    free(e->pend);
    free(e->pf_logits);
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

// Draws the next token of one sample and decides whether it finished.
static void sample_one(rl_engine *e, const rl_gen_params *p, live_seq *s, float *probs,
                       int32_t *idx) {
    rl_completion *c = s->out;
    int t;
    float lp_sample;
    float u = rl_rng_float(&s->rng); // drawn even when greedy, so streams stay aligned
    if (p->greedy || p->sampling.temperature <= 0) {
        t = rl_argmax(s->row, e->vocab_limit);
        lp_sample = 0.0f;
    } else {
        rl_sampling_probs(probs, s->row, e->vocab_limit, &p->sampling, idx);
        t = rl_sample_from_probs(probs, e->vocab_limit, u);
        lp_sample = logf(probs[t]);
    }
    c->tokens[c->n_tokens] = t;
    c->logp_sample[c->n_tokens] = lp_sample;
    c->logp_policy[c->n_tokens] = rl_token_logprob(s->row, e->V, t, 1.0f);
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

// Generates prompts [p0, p1) whose samples fit the cache together, into out[0 .. their samples).
static int generate_round(rl_engine *e, const rl_gen_params *p, const rl_gen_prompt *prompts,
                          int p0, int p1, rl_completion *out, rl_gen_stats *st, rl_err *err) {
    int n_prompts = p1 - p0, n_seq = 0;
    for (int i = p0; i < p1; i++) n_seq += prompts[i].n_samples;
    live_seq *seqs = rl_calloc((size_t)n_seq, sizeof *seqs);
    int *slots = rl_malloc((size_t)(n_seq > n_prompts ? n_seq : n_prompts) * sizeof(int));
    int32_t *toks = rl_malloc((size_t)n_seq * sizeof(int32_t));
    const int32_t **pids = rl_malloc((size_t)n_prompts * sizeof *pids);
    int32_t *plen = rl_malloc((size_t)n_prompts * sizeof *plen);
    int rc = -1;

    // Prefill each prompt once, into the slot of its first sample.
    int slot = 0;
    for (int i = 0; i < n_prompts; i++) {
        const rl_gen_prompt *pr = &prompts[p0 + i];
        slots[i] = slot;
        pids[i] = pr->ids;
        plen[i] = pr->n_ids;
        slot += pr->n_samples;
    }
    for (int s = 0; s < slot; s++) rl_kv_cache_reset(e->cache, s);
    double t0 = rl_now();
    if (rl_model_prefill(e->m, e->cache, n_prompts, slots, pids, plen, e->logits, err)) goto done;
    st->prefill_seconds += rl_now() - t0;

    // Share the prefix with the rest of each group; every sample starts from its prompt's logits.
    int k = 0;
    for (int i = 0; i < n_prompts; i++) {
        const rl_gen_prompt *pr = &prompts[p0 + i];
        st->prompt_tokens += pr->n_ids;
        for (int s = 0; s < pr->n_samples; s++, k++) {
            live_seq *q = &seqs[k];
            q->out = &out[k]; // out holds this round's samples, prompt by prompt
            q->slot = slots[i] + s;
            if (s > 0) rl_kv_cache_copy_slot(e->cache, q->slot, slots[i]);
            q->rng = rl_rng_stream(p->seed, RL_RNG_SAMPLE, pr->key, (uint64_t)s);
            q->row = e->logits + (size_t)i * e->V;
        }
    }

    int n_live = n_seq;
    live_seq **live = rl_malloc((size_t)n_seq * sizeof *live);
    for (int i = 0; i < n_seq; i++) live[i] = &seqs[i];
    while (n_live > 0) {
#pragma omp parallel for schedule(dynamic, 4)
        for (int i = 0; i < n_live; i++) {
            int th = omp_get_thread_num();
            sample_one(e, p, live[i], e->probs + (size_t)th * e->V, e->idx + (size_t)th * e->V);
        }
        int n_next = 0;
        for (int i = 0; i < n_live; i++) {
            if (live[i]->done) {
                finish_text(live[i]);
                st->new_tokens += live[i]->out->n_tokens;
            } else
                live[n_next++] = live[i];
        }
        n_live = n_next;
        if (n_live == 0) break;
        for (int i = 0; i < n_live; i++) {
            slots[i] = live[i]->slot;
            toks[i] = live[i]->last;
        }
        if (rl_model_decode_step(e->m, e->cache, n_live, slots, toks, e->logits, err)) {
            free(live);
            goto done;
        }
        for (int i = 0; i < n_live; i++) live[i]->row = e->logits + (size_t)i * e->V;
    }
    free(live);
    rc = 0;
done:
    for (int i = 0; i < n_seq; i++) free(seqs[i].bytes);
    free(seqs);
    free(slots);
    free(toks);
    free(pids);
    free(plen);
    return rc;
}

int rl_generate(rl_engine *e, const rl_gen_params *p, const rl_gen_prompt *prompts, int n_prompts,
                rl_completion *out, rl_gen_stats *stats, rl_err *err) {
    rl_gen_stats st = {0};
    double t0 = rl_now();
    int total = 0;
    for (int i = 0; i < n_prompts; i++) {
        const rl_gen_prompt *pr = &prompts[i];
        if (pr->n_ids < 1) return rl_fail(err, RL_EINPUT, "prompt %d is empty", i);
        if (pr->n_ids + p->max_new_tokens > e->max_len)
            return rl_fail(err, RL_EINPUT,
                           "prompt %d has %d tokens; with max_new_tokens %d it exceeds the "
                           "engine's %d positions",
                           i, pr->n_ids, p->max_new_tokens, e->max_len);
        if (pr->n_samples < 1 || pr->n_samples > e->max_slots)
            return rl_fail(err, RL_EINPUT, "prompt %d asks for %d samples (engine holds %d)", i,
                           pr->n_samples, e->max_slots);
        total += pr->n_samples;
    }
    if (p->max_new_tokens < 1) return rl_fail(err, RL_EINPUT, "max_new_tokens must be >= 1");
    int k = 0;
    for (int i = 0; i < n_prompts; i++)
        for (int s = 0; s < prompts[i].n_samples; s++, k++) {
            rl_completion *c = &out[k];
            memset(c, 0, sizeof *c);
            c->prompt = i;
            c->sample = s;
            c->tokens = rl_malloc((size_t)p->max_new_tokens * sizeof(int32_t));
            c->logp_sample = rl_malloc((size_t)p->max_new_tokens * sizeof(float));
            c->logp_policy = rl_malloc((size_t)p->max_new_tokens * sizeof(float));
        }
    int p0 = 0, first = 0; // first: index in out of prompt p0's first sample
    while (p0 < n_prompts) {
        int p1 = p0, used = 0;
        while (p1 < n_prompts && used + prompts[p1].n_samples <= e->max_slots)
            used += prompts[p1++].n_samples;
        if (generate_round(e, p, prompts, p0, p1, out + first, &st, err)) {
            for (int i = 0; i < total; i++) rl_completion_free(&out[i]);
            return -1;
        }
        p0 = p1;
        first += used;
    }
    st.seconds = rl_now() - t0;
    st.tokens_per_s = st.seconds > 0 ? st.new_tokens / st.seconds : 0;
    if (stats) *stats = st;
    return 0;
}

// ---- continuous batching ----------------------------------------------------------------------

int rl_engine_free_slots(const rl_engine *e) {
    return e->max_slots - e->n_used;
}

int rl_engine_n_live(const rl_engine *e) {
    return e->n_used;
}

int rl_engine_submit(rl_engine *e, rl_stream_req *r, rl_err *err) {
    const rl_gen_params *p = r->params;
    const rl_gen_prompt *pr = &r->prompt;
    r->n_live = 0;
    if (pr->n_ids < 1) return rl_fail(err, RL_EINPUT, "the prompt is empty");
    if (p->max_new_tokens < 1) return rl_fail(err, RL_EINPUT, "max_new_tokens must be >= 1");
    if (pr->n_ids + p->max_new_tokens > e->max_len)
        return rl_fail(err, RL_EINPUT,
                       "the prompt has %d tokens; with max_new_tokens %d it exceeds the engine's "
                       "%d positions",
                       pr->n_ids, p->max_new_tokens, e->max_len);
    if (pr->n_samples < 1 || pr->n_samples > e->max_slots)
        return rl_fail(err, RL_EINPUT, "%d samples asked (engine holds %d)", pr->n_samples,
                       e->max_slots);
    if (pr->n_samples > e->max_slots - e->n_used)
        return rl_fail(err, RL_EINPUT, "%d samples asked, %d slots free", pr->n_samples,
                       e->max_slots - e->n_used);
    if (!e->sq) {
        e->sq = rl_calloc((size_t)e->max_slots, sizeof *e->sq);
        e->pend = rl_calloc((size_t)e->max_slots, sizeof *e->pend);
        e->pf_logits = rl_malloc((size_t)e->max_slots * e->V * sizeof(float));
    }
    int s = 0;
    for (int slot = 0; slot < e->max_slots && s < pr->n_samples; slot++) {
        live_seq *q = &e->sq[slot];
        if (q->active) continue;
        free(q->bytes);
        memset(q, 0, sizeof *q);
        rl_completion *c = &r->out[s];
        memset(c, 0, sizeof *c);
        c->sample = s;
        c->tokens = rl_malloc((size_t)p->max_new_tokens * sizeof(int32_t));
        c->logp_sample = rl_malloc((size_t)p->max_new_tokens * sizeof(float));
        c->logp_policy = rl_malloc((size_t)p->max_new_tokens * sizeof(float));
        q->out = c;
        q->slot = slot;
        q->rng = rl_rng_stream(p->seed, RL_RNG_SAMPLE, pr->key, (uint64_t)s);
        q->p = p;
        q->req = r;
        q->sample = s;
        q->active = 1;
        s++;
    }
    e->n_used += pr->n_samples;
    e->pend[e->n_pend++] = r;
    r->n_live = pr->n_samples;
    return 0;
}

// Frees a sequence's slot; its completion keeps what it has (text made from the bytes so far).
static void release_seq(rl_engine *e, live_seq *q) {
    if (!q->out->text) finish_text(q);
    free(q->bytes);
    q->bytes = NULL;
    q->active = 0;
    q->req->n_live--;
    e->n_used--;
}

void rl_engine_cancel(rl_engine *e, rl_stream_req *r) {
    if (!e->sq || r->n_live == 0) return;
    for (int slot = 0; slot < e->max_slots; slot++) {
        live_seq *q = &e->sq[slot];
        if (!q->active || q->req != r) continue;
        if (!q->done) q->out->finish = RL_FINISH_LENGTH;
        release_seq(e, q);
    }
    for (int i = 0; i < e->n_pend; i++)
        if (e->pend[i] == r) {
            memmove(&e->pend[i], &e->pend[i + 1], (size_t)(e->n_pend - i - 1) * sizeof *e->pend);
            e->n_pend--;
            break;
        }
}

static live_seq *seq_of(rl_engine *e, const rl_stream_req *r, int sample) {
    for (int slot = 0; slot < e->max_slots; slot++)
        if (e->sq[slot].active && e->sq[slot].req == r && e->sq[slot].sample == sample)
            return &e->sq[slot];
    return NULL;
}

// Prefills every request admitted since the last step, all in one call.
static int prefill_pending(rl_engine *e, rl_err *err) {
    int n = e->n_pend;
    int *slots = rl_malloc((size_t)n * sizeof(int));
    const int32_t **pids = rl_malloc((size_t)n * sizeof *pids);
    int32_t *plen = rl_malloc((size_t)n * sizeof *plen);
    for (int i = 0; i < n; i++) {
        rl_stream_req *r = e->pend[i];
        slots[i] = seq_of(e, r, 0)->slot;
        pids[i] = r->prompt.ids;
        plen[i] = r->prompt.n_ids;
        for (int s = 0; s < r->prompt.n_samples; s++)
            rl_kv_cache_reset(e->cache, seq_of(e, r, s)->slot);
    }
    int rc = rl_model_prefill(e->m, e->cache, n, slots, pids, plen, e->pf_logits, err);
    if (rc == 0)
        for (int i = 0; i < n; i++) {
            rl_stream_req *r = e->pend[i];
            for (int s = 0; s < r->prompt.n_samples; s++) {
                live_seq *q = seq_of(e, r, s);
                if (s > 0) rl_kv_cache_copy_slot(e->cache, q->slot, slots[i]);
                q->row = e->pf_logits + (size_t)i * e->V;
            }
        }
    e->n_pend = 0;
    free(slots);
    free(pids);
    free(plen);
    return rc;
}

static void cancel_all(rl_engine *e) {
    for (int slot = 0; slot < e->max_slots; slot++)
        if (e->sq[slot].active) rl_engine_cancel(e, e->sq[slot].req);
    e->n_pend = 0;
}

int rl_engine_step(rl_engine *e, rl_err *err) {
    if (!e->sq || e->n_used == 0) return 0;
    if (e->n_pend > 0 && prefill_pending(e, err)) {
        cancel_all(e);
        return -1;
    }
    live_seq **live = rl_malloc((size_t)e->max_slots * sizeof *live);
    int n_live = 0;
    for (int slot = 0; slot < e->max_slots; slot++)
        if (e->sq[slot].active) live[n_live++] = &e->sq[slot];
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < n_live; i++) {
        int th = omp_get_thread_num();
        sample_one(e, live[i]->p, live[i], e->probs + (size_t)th * e->V,
                   e->idx + (size_t)th * e->V);
    }
    // Report each token in slot order; a callback may cancel its request (and so other entries).
    for (int i = 0; i < n_live; i++) {
        live_seq *q = live[i];
        if (!q->active) continue;
        rl_stream_req *r = q->req;
        if (q->done)
            q->out->text = rl_utf8_lossy(q->bytes ? q->bytes : "", q->n_bytes, &q->out->text_len);
        int stop = r->on_token ? r->on_token(r->ctx, q->sample, q->out, q->row,
                                             q->bytes ? q->bytes : "", q->n_bytes, q->done)
                               : 0;
        if (q->done) release_seq(e, q);
        if (stop) rl_engine_cancel(e, r);
    }
    int n_next = 0;
    int *slots = rl_malloc((size_t)e->max_slots * sizeof(int));
    int32_t *toks = rl_malloc((size_t)e->max_slots * sizeof(int32_t));
    for (int i = 0; i < n_live; i++)
        if (live[i]->active) {
            live[n_next] = live[i];
            slots[n_next] = live[i]->slot;
            toks[n_next] = live[i]->last;
            n_next++;
        }
    int rc = 0;
    if (n_next > 0) {
        if (rl_model_decode_step(e->m, e->cache, n_next, slots, toks, e->logits, err)) {
            cancel_all(e);
            rc = -1;
        } else
            for (int i = 0; i < n_next; i++) live[i]->row = e->logits + (size_t)i * e->V;
    }
    free(live);
    free(slots);
    free(toks);
    return rc;
}
