// test_paged: the paged KV cache and the continuous-batching engine on the CPU.
//
//   - paged decode equals a full forward: a long prompt prefilled in chunks, forked to two more
//     slots (shared full blocks, copy-on-write of the partial last block), decoded past the
//     sliding window of the window layers (whose old blocks are released): every step's logits
//     against rl_model_score_logits of the whole sequence; block counts checked exactly; both
//     through the batch-invariant products and through OpenBLAS (rollout.batch_invariant: false);
//   - a row's logits do not depend on the batch: one sequence decoded alone and among 1..40
//     others gives the same bits (fails with OpenBLAS's row-count dependent summation in place of
//     the backend's batch-invariant matmul_rows);
//   - the engine's completions are byte-identical whatever max_slots, prefill chunk, KV budget
//     (with preemptions) or prompt order;
//   - a small pool waits and preempts cleanly, a budget too small for one sequence is refused.
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/rng.h"
#include "policy/model.h"
#include "policy/tokenizer.h"
#include "rollout/engine.h"
#include "test_model_util.h"
#include "test_util.h"

static rl_rng RNG;

static rl_model *make_model(const rl_model_config *cfg, uint64_t seed, float scale) {
    rl_model *m;
    rl_err err = {0};
    if (rl_model_create(&m, cfg, rl_backend_cpu(), &err)) {
        fprintf(stderr, "model: %s\n", err.msg);
        exit(1);
    }
    rl_model_init_random(m, seed, scale);
    return m;
}

// Three layers, the last two with a 70-token sliding window (Qwen2's max_window_layers).
static rl_model_config window_config(void) {
    rl_model_config c = test_tiny_config();
    c.num_hidden_layers = 3;
    c.use_sliding_window = 1;
    c.sliding_window = 70;
    c.max_window_layers = 1;
    return c;
}

static double row_err(const float *a, const float *b, int V) {
    double worst = 0.0;
    for (int k = 0; k < V; k++) worst = fmax(worst, fabs(a[k] - b[k]) / (1.0 + fabs(b[k])));
    return worst;
}

static int group_used(const rl_kv_cache *c, int window) {
    for (int g = 0; g < c->n_groups; g++)
        if (c->group[g].window == window) return c->group[g].n_blocks - c->group[g].n_free;
    return -1;
}

// ------------------------------------------------------------------------------------------------

// batch_invariant: the model's setting (1: products through matmul_rows; -1: OpenBLAS).
static void paged_decode_case(int batch_invariant) {
    rl_model_config cfg = window_config();
    rl_model *m = make_model(&cfg, 5, 0.3f);
    m->batch_invariant = batch_invariant;
    int V = cfg.vocab_size, P = 130, steps = 140, S = 3, T = P + steps;
    rl_err err;
    rl_kv_cache *c = rl_kv_cache_create_pool(m, 4, T + 2, 0, 50, &err);
    CHECK(c != NULL, "cache: %s", err.msg);
    CHECK(c->n_groups == 2 && c->group[0].window == 0 && c->group[1].window == 70 &&
              c->group[0].n_layers == 1 && c->group[1].n_layers == 2,
          "one full group, one window group");
    int32_t *seq[3];
    for (int s = 0; s < S; s++) {
        seq[s] = rl_malloc((size_t)T * sizeof(int32_t));
        for (int t = 0; t < T; t++) seq[s][t] = (int32_t)rl_rng_below(&RNG, V);
        if (s > 0) memcpy(seq[s], seq[0], (size_t)P * sizeof(int32_t)); // the shared prompt
    }
    float *dec = rl_malloc((size_t)S * T * V * sizeof(float)); // [S, T, V] decode logits
    float *lg = rl_malloc((size_t)S * V * sizeof(float));
    // the prompt in chunks of 50 into slot 3 (so the window group frees blocks between chunks)
    int slot0 = 3;
    for (int at = 0; at < P; at += 50) {
        int32_t n = P - at < 50 ? P - at : 50;
        const int32_t *part = seq[0] + at;
        CHECK(rl_model_prefill(m, c, 1, &slot0, &part, &n, lg, &err) == 0, "prefill: %s", err.msg);
    }
    memcpy(dec + (size_t)(P - 1) * V, lg, (size_t)V * sizeof(float));
    // the window layers keep only the blocks positions >= 130 - 70 + 1 = 61 need: blocks 0..2
    // minus block 0 (positions 0..63 hold 61..63: kept) -> all 3; the full layer: 3 blocks
    CHECK(group_used(c, 0) == 3 && group_used(c, 70) == 3, "blocks after the prompt: %d %d",
          group_used(c, 0), group_used(c, 70));
    int slots[3] = {3, 0, 1};
    rl_kv_cache_fork(c, 0, 3);
    rl_kv_cache_fork(c, 1, 3);
    CHECK(group_used(c, 0) == 3 && rl_kv_cache_len(c, 1) == P, "a fork takes no block");
    // feed seq[s][P .. T-1]; logits after feeding position t predict t + 1
    for (int t = P; t < T - 1; t++) {
        int32_t tok[3] = {seq[0][t], seq[1][t], seq[2][t]};
        CHECK(rl_model_decode_step(m, c, S, slots, tok, lg, &err) == 0, "decode: %s", err.msg);
        for (int s = 0; s < S; s++)
            memcpy(dec + ((size_t)s * T + t) * V, lg + (size_t)s * V, (size_t)V * sizeof(float));
        if (t == P) { // two of the three copied the shared partial block (in every group)
            CHECK(c->cow_copies == 4, "copy-on-write: %ld blocks copied (want 2 per group)",
                  c->cow_copies);
            CHECK(group_used(c, 0) == 5, "2 shared full blocks + 3 partial: %d", group_used(c, 0));
        }
    }
    // full layer: 2 shared blocks + 3 x 3 own (positions 128..268); window layer: positions
    // >= 269 - 70 + 1 = 200 -> blocks 3 and 4 of each slot, nothing shared left
    int len = T - 1;
    CHECK(rl_kv_cache_len(c, 0) == len, "length");
    CHECK(group_used(c, 0) == 2 + 3 * 3, "full-layer blocks at the end: %d", group_used(c, 0));
    CHECK(group_used(c, 70) == 3 * 2, "window-layer blocks at the end: %d", group_used(c, 70));
    CHECK(c->group[1].peak_used < c->group[0].peak_used, "the window group peaked lower");
    // the reference: one full forward per sequence
    float *full = rl_malloc((size_t)S * len * V * sizeof(float));
    int32_t *toks = rl_malloc((size_t)S * len * sizeof(int32_t)), lens[3] = {len, len, len};
    for (int s = 0; s < S; s++) memcpy(toks + (size_t)s * len, seq[s], (size_t)len * 4);
    CHECK(rl_model_score_logits(m, toks, lens, S, len, full, &err) == 0, "score: %s", err.msg);
    double worst = 0.0;
    for (int s = 0; s < S; s++)
        for (int t = P - 1; t < len; t++) {
            if (s > 0 && t == P - 1) continue; // only slot 3 has the prompt's logits
            worst = fmax(
                worst, row_err(dec + ((size_t)s * T + t) * V, full + ((size_t)s * len + t) * V, V));
        }
    fprintf(stderr, "  paged decode (batch_invariant %d) vs full forward: max rel err %.2e\n",
            batch_invariant, worst);
    CHECK(worst < 2e-5, "paged decode differs from the full forward: %.3g", worst);
    // releasing every slot gives every block back
    for (int s = 0; s < 4; s++) rl_kv_cache_reset(c, s);
    CHECK(rl_kv_cache_bytes_used(c) == 0, "all blocks free after reset");
    free(full), free(toks), free(dec), free(lg);
    for (int s = 0; s < S; s++) free(seq[s]);
    rl_kv_cache_free(c);
    rl_model_free(m);
}

static void test_paged_decode_matches_forward(void) {
    paged_decode_case(1);
}

// The same through the backend's fastest products (rollout.batch_invariant: false).
static void test_paged_decode_fast_products(void) {
    paged_decode_case(-1);
}

// Reserve is all or nothing, never over max_len; a shared block is copied before a write.
static void test_reserve_and_budget(void) {
    rl_model_config cfg = test_tiny_config();
    rl_model *m = make_model(&cfg, 6, 0.3f);
    rl_err err;
    size_t per_block = (size_t)2 * cfg.num_hidden_layers * RL_KV_BLOCK * 2 * 4 * sizeof(float);
    // a budget of 5 blocks for sequences of up to 4 blocks
    rl_kv_cache *c = rl_kv_cache_create_pool(m, 3, 4 * RL_KV_BLOCK, 5 * per_block, 0, &err);
    CHECK(c != NULL && c->group[0].n_blocks == 5, "5 blocks: %s", c ? "" : err.msg);
    CHECK(rl_kv_cache_reserve(c, 0, 3 * RL_KV_BLOCK) == 0, "3 blocks for slot 0");
    CHECK(rl_kv_cache_reserve(c, 1, 3 * RL_KV_BLOCK) != 0, "3 more do not fit");
    CHECK(c->group[0].n_free == 2, "a failed reserve takes nothing");
    CHECK(rl_kv_cache_reserve(c, 2, 4 * RL_KV_BLOCK + 1) != 0, "beyond max_len refused");
    rl_kv_cache_free(c);
    c = rl_kv_cache_create_pool(m, 3, 4 * RL_KV_BLOCK, 3 * per_block, 0, &err);
    CHECK(c == NULL && err.kind == RL_EINPUT && strstr(err.msg, "bytes needed"),
          "a budget below one sequence is refused: %s", err.msg);
    rl_model_free(m);
}

// One sequence decoded alone, then among k others (k = 1..40, other tokens and lengths): the
// same logits, bit for bit.
static void test_rows_independent_of_batch(void) {
    rl_model_config cfg = test_tiny_config();
    cfg.hidden_size = 64, cfg.num_attention_heads = 8, cfg.num_key_value_heads = 2;
    cfg.head_dim = 8, cfg.intermediate_size = 176, cfg.vocab_size = 301;
    rl_model *m = make_model(&cfg, 8, 0.3f);
    int V = cfg.vocab_size, n_max = 41;
    rl_err err;
    rl_kv_cache *c = rl_kv_cache_create(m, n_max, 64, &err);
    int32_t prompt[9];
    for (int i = 0; i < 9; i++) prompt[i] = (int32_t)rl_rng_below(&RNG, V);
    float *lg = rl_malloc((size_t)n_max * V * sizeof(float)), *alone = rl_malloc((size_t)V * 4);
    int slot = 0;
    const int32_t *pp = prompt;
    int32_t np = 9, next = 7;
    CHECK(rl_model_prefill(m, c, 1, &slot, &pp, &np, lg, &err) == 0, "%s", err.msg);
    CHECK(rl_model_decode_step(m, c, 1, &slot, &next, alone, &err) == 0, "%s", err.msg);
    int differ = 0;
    for (int k = 1; k < n_max; k++) {
        int slots[64];
        int32_t toks[64];
        for (int i = 0; i <= k; i++) rl_kv_cache_reset(c, i);
        // the others: prompts of 1..12 tokens prefilled together with ours
        const int32_t *lists[64];
        int32_t counts[64];
        for (int i = 0; i <= k; i++) {
            slots[i] = (i + k / 2) % (k + 1); // a rotation: every slot once
            lists[i] = prompt + (i % 3);
            counts[i] = 9 - (i % 3);
            toks[i] = (int32_t)((i * 13 + k) % V);
        }
        int ours = 0;
        for (int i = 0; i <= k; i++)
            if (slots[i] == 0) ours = i;
        lists[ours] = prompt, counts[ours] = 9, toks[ours] = next;
        CHECK(rl_model_prefill(m, c, k + 1, slots, lists, counts, lg, &err) == 0, "%s", err.msg);
        CHECK(rl_model_decode_step(m, c, k + 1, slots, toks, lg, &err) == 0, "%s", err.msg);
        if (memcmp(lg + (size_t)ours * V, alone, (size_t)V * sizeof(float)) != 0) differ++;
    }
    CHECK(differ == 0, "a row's logits changed with the batch in %d of %d batch sizes", differ,
          n_max - 1);
    free(lg), free(alone);
    rl_kv_cache_free(c);
    rl_model_free(m);
}

// ------------------------------------------------------------------------------------------------
// The engine

typedef struct fixture {
    rl_tokenizer *tok;
    rl_model *m;
    int32_t *ids[5];
    int n_ids[5];
} fixture;

static void fixture_init(fixture *f, int window) {
    rl_err err = {0};
    if (rl_tokenizer_load(&f->tok, "byte", &err)) exit(1);
    rl_model_config c = test_tiny_config();
    c.hidden_size = 32, c.num_hidden_layers = 3, c.intermediate_size = 48, c.vocab_size = 272;
    c.head_dim = 8, c.max_position_embeddings = 1024, c.tie_word_embeddings = 1;
    c.eos_token_id = 256;
    if (window) c.use_sliding_window = 1, c.sliding_window = 40, c.max_window_layers = 1;
    f->m = make_model(&c, 11, 0.5f);
    int lens[5] = {17, 9, 150, 3, 70}; // one prompt longer than two blocks
    for (int i = 0; i < 5; i++) {
        f->n_ids[i] = lens[i];
        f->ids[i] = rl_malloc((size_t)lens[i] * sizeof(int32_t));
        for (int j = 0; j < lens[i]; j++) f->ids[i][j] = (int32_t)(32 + rl_rng_below(&RNG, 90));
    }
}

static void fixture_free(fixture *f) {
    for (int i = 0; i < 5; i++) free(f->ids[i]);
    rl_model_free(f->m);
    rl_tokenizer_free(f->tok);
}

static rl_gen_params gen_params(void) {
    static const int32_t eos[1] = {256};
    rl_gen_params p = {.sampling = {1.0f, 0, 0.95f, 0.0f},
                       .max_new_tokens = 60,
                       .stop_ids = eos,
                       .n_stop_ids = 1,
                       .seed = 4242};
    return p;
}

static int same_bits(const rl_completion *a, const rl_completion *b) {
    if (a->n_tokens != b->n_tokens || a->finish != b->finish || a->text_len != b->text_len)
        return 0;
    size_t n = (size_t)a->n_tokens;
    return memcmp(a->tokens, b->tokens, n * 4) == 0 &&
           memcmp(a->logp_sample, b->logp_sample, n * 4) == 0 &&
           memcmp(a->logp_policy, b->logp_policy, n * 4) == 0 &&
           memcmp(a->text, b->text, a->text_len) == 0;
}

// Runs the 5 prompts (G = 3, 2, 3, 1, 2) in the given order on an engine with these options;
// out is in the canonical prompt order.
static int run_engine(fixture *f, const rl_engine_opts *o, const int order[5], rl_completion *out,
                      rl_gen_stats *st) {
    int G[5] = {3, 2, 3, 1, 2}, first[5], k = 0;
    for (int i = 0; i < 5; i++) first[i] = k, k += G[i];
    rl_gen_prompt gp[5];
    for (int i = 0; i < 5; i++) {
        int p = order[i];
        gp[i] = (rl_gen_prompt){f->ids[p], f->n_ids[p], 1000 + (uint64_t)p, G[p]};
    }
    rl_engine *e;
    rl_err err = {0};
    if (rl_engine_create_opts(&e, f->m, f->tok, o, &err)) {
        fprintf(stderr, "engine: %s\n", err.msg);
        return -1;
    }
    rl_completion tmp[11];
    rl_gen_params p = gen_params();
    int rc = rl_generate(e, &p, gp, 5, tmp, st, &err);
    if (rc) fprintf(stderr, "generate: %s\n", err.msg);
    k = 0;
    for (int i = 0; i < 5 && rc == 0; i++)
        for (int s = 0; s < G[order[i]]; s++) out[first[order[i]] + s] = tmp[k++];
    rl_engine_free(e);
    return rc;
}

static void check_scheduling_independence(int window) {
    fixture f;
    fixture_init(&f, window);
    int canonical[5] = {0, 1, 2, 3, 4}, shuffled[5] = {3, 2, 4, 0, 1};
    rl_completion want[11], got[11];
    rl_gen_stats st;
    rl_engine_opts base = {16, 256, 272, 512, 0, 0};
    CHECK(run_engine(&f, &base, canonical, want, &st) == 0, "baseline run");
    CHECK(st.preemptions == 0, "an unlimited pool never preempts");
    long toks = 0;
    for (int i = 0; i < 11; i++) toks += want[i].n_tokens;
    CHECK(toks > 100, "the samples say something (%ld tokens)", toks);
    // the last run's pool holds 1.5 sequences' worth of blocks: enough for one, not for all
    struct {
        rl_engine_opts o;
        const int *order;
        const char *what;
        int expect_preempt;
    } runs[] = {
        {{16, 256, 272, 512, 0, 0}, shuffled, "another prompt order", 0},
        {{3, 256, 272, 512, 0, 0}, canonical, "max_slots 3", 0},
        {{5, 300, 272, 7, 0, 0}, shuffled, "max_slots 5, prefill chunk 7", 0},
        {{11, 256, 272, 64, 0, 0}, canonical, "max_slots 11, chunk 64", 0},
        {{16, 256, 272, 16, 1, 0}, canonical, "a small KV budget (waiting, preemption)", 1},
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        rl_engine_opts o = runs[r].o;
        if (o.kv_budget_bytes == 1) { // the smallest budget the engine accepts, plus 2 blocks
            rl_err err;
            rl_kv_cache *probe =
                rl_kv_cache_create_pool(f.m, 1, o.max_len, 1, o.prefill_chunk, &err);
            CHECK(probe == NULL, "probe fails");
            size_t need = (size_t)strtoull(strstr(err.msg, "(") + 1, NULL, 10);
            o.kv_budget_bytes = need + need / 2;
        }
        memset(got, 0, sizeof got);
        int rc = run_engine(&f, &o, runs[r].order, got, &st);
        CHECK(rc == 0, "%s: ran", runs[r].what);
        if (rc) continue;
        int same = 1;
        for (int i = 0; i < 11; i++) same &= same_bits(&got[i], &want[i]);
        CHECK(same, "window %d, %s: completions differ from the baseline", window, runs[r].what);
        fprintf(stderr, "  window %d, %-44s steps %4ld  preemptions %3ld  kv peak %zu B\n", window,
                runs[r].what, st.steps, st.preemptions, st.kv_peak_bytes);
        if (runs[r].expect_preempt)
            CHECK(st.preemptions > 0 && st.recomputed_tokens > 0, "%s: sequences were preempted",
                  runs[r].what);
        for (int i = 0; i < 11; i++) rl_completion_free(&got[i]);
    }
    for (int i = 0; i < 11; i++) rl_completion_free(&want[i]);
    fixture_free(&f);
}

static void test_scheduling_independence(void) {
    check_scheduling_independence(0);
}

static void test_scheduling_independence_window(void) {
    check_scheduling_independence(1);
}

// More requests than slots: a freed slot is refilled mid-round (the steps needed are fewer than
// running the requests in rounds would take), and a request too large for the engine is refused.
static void test_refill_and_errors(void) {
    fixture f;
    fixture_init(&f, 0);
    rl_err err = {0};
    rl_engine *e;
    rl_engine_opts o = {4, 256, 272, 512, 0, 0};
    CHECK(rl_engine_create_opts(&e, f.m, f.tok, &o, &err) == 0, "%s", err.msg);
    rl_gen_params p = gen_params();
    p.max_new_tokens = 40;
    static const char *const stops[8] = {"a", "e", "i", "o", "u", "1", "2", "3"};
    p.stop_strings = stops; // completions of varied lengths
    p.n_stop_strings = 8;
    rl_gen_prompt gp[8];
    for (int i = 0; i < 8; i++) gp[i] = (rl_gen_prompt){f.ids[i % 5], f.n_ids[i % 5], 7 + i, 1};
    rl_completion out[8];
    rl_gen_stats st;
    CHECK(rl_generate(e, &p, gp, 8, out, &st, &err) == 0, "%s", err.msg);
    // A sequence of n tokens holds its slot for n steps (its prompt's step draws the first
    // token). With refill the step count is the list-scheduling makespan: each request starts
    // on the first slot to come free; rounds of 4 would take the sum of each round's longest.
    int free_at[4] = {0}, rounds[2] = {0, 0}, makespan = 0;
    for (int i = 0; i < 8; i++) {
        int best = 0;
        for (int s = 1; s < 4; s++)
            if (free_at[s] < free_at[best]) best = s;
        free_at[best] += out[i].n_tokens;
        if (free_at[best] > makespan) makespan = free_at[best];
        if (out[i].n_tokens > rounds[i / 4]) rounds[i / 4] = out[i].n_tokens;
    }
    fprintf(stderr, "  8 requests on 4 slots: %ld steps (refill makespan %d, rounds %d)\n",
            st.steps, makespan, rounds[0] + rounds[1]);
    CHECK(st.steps == makespan, "refill: %ld steps, want %d", st.steps, makespan);
    for (int i = 0; i < 8; i++) rl_completion_free(&out[i]);
    gp[0].n_samples = 5;
    CHECK(rl_generate(e, &p, gp, 1, out, &st, &err) != 0 && err.kind == RL_EINPUT,
          "more samples than slots refused: %s", err.msg);
    rl_engine_free(e);
    o.kv_budget_bytes = 1000;
    CHECK(rl_engine_create_opts(&e, f.m, f.tok, &o, &err) != 0 && err.kind == RL_EINPUT &&
              strstr(err.msg, "engine: kv cache"),
          "a tiny budget is refused: %s", err.msg);
    fixture_free(&f);
}

int main(void) {
    RNG = rl_rng_stream(77, RL_RNG_INIT, 3, 0);
    RUN(test_paged_decode_matches_forward);
    RUN(test_paged_decode_fast_products);
    RUN(test_reserve_and_budget);
    RUN(test_rows_independent_of_batch);
    RUN(test_scheduling_independence);
    RUN(test_scheduling_independence_window);
    RUN(test_refill_and_errors);
    return test_summary();
}
