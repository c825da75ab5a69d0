// test_sample: the sampling op of the CPU backend (be->sample, kernels/kernels.h) and the
// stream positions it draws with (kernels/rng.h).
//
//   - rl_philox_uniform(key, rl_rng_position(r)) is the next rl_rng_float(r); rl_rng_advance
//     moves a stream as that many draws would; pinned values keep the streams of past runs.
//   - The op equals the rollout engine's host sampling (rollout/engine.c, sample_one: one
//     rl_rng_float per token, rl_sampling_probs + rl_sample_from_probs, rl_token_logprob over
//     the full row) bit for bit, on random rows with ties, every filter, greedy, a vocabulary
//     limit, rows with their own parameters, several consecutive steps of each stream.
//   - Inside the engine itself: at every token the engine draws (streaming API, whose callback
//     sees the logits), the op on the same logits and stream position gives the same token and
//     the same two log-probs, bit for bit. So switching the engine to the op changes no sample.
//   - The draws follow the filtered distribution (frequencies over many stream positions) and
//     ids at or above the vocabulary limit are never drawn.
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
#include "test_util.h"

static rl_rng RNG;

// ------------------------------------------------------------------------------------------------
// Streams

static void test_stream_positions(void) {
    // Pinned: the first draws of a sampling stream (the values every earlier run drew).
    rl_rng r = rl_rng_stream(42, RL_RNG_SAMPLE, 7, 3);
    uint32_t first[6];
    for (int i = 0; i < 6; i++) first[i] = rl_rng_u32(&r);
    static const uint32_t pinned[6] = {0xfc1fd45bu, 0x62bfbe2du, 0x06c48502u,
                                       0xdf04ff14u, 0xe450b63au, 0x288a304au};
    CHECK(memcmp(first, pinned, sizeof first) == 0,
          "sampling stream changed: %08x %08x %08x %08x %08x %08x", first[0], first[1], first[2],
          first[3], first[4], first[5]);

    for (int trial = 0; trial < 20; trial++) {
        rl_rng a = rl_rng_stream(rl_rng_u64(&RNG), RL_RNG_SAMPLE, trial, trial * 3);
        rl_rng b = a;
        int ok = 1;
        for (int d = 0; d < 37; d++) {
            uint64_t pos = rl_rng_position(&a);
            ok &= pos == (uint64_t)d;
            float want = rl_rng_float(&a);
            ok &= rl_philox_uniform(a.key, pos) == want;
        }
        CHECK(ok, "rl_philox_uniform at rl_rng_position is the next rl_rng_float");
        // advance == that many draws, from every phase of a block
        int skip = (int)rl_rng_below(&RNG, 11);
        for (int d = 0; d < trial % 5; d++) rl_rng_u32(&b);
        rl_rng c = b;
        rl_rng_advance(&c, (uint64_t)skip);
        for (int d = 0; d < skip; d++) rl_rng_u32(&b);
        CHECK(rl_rng_position(&b) == rl_rng_position(&c), "positions after advance");
        for (int d = 0; d < 9; d++)
            CHECK(rl_rng_u32(&b) == rl_rng_u32(&c), "advance(%d): draw %d differs", skip, d);
    }
}

// ------------------------------------------------------------------------------------------------
// The op against the engine's host sampling

// The engine's sample_one (rollout/engine.c), verbatim in its numerics: the reference.
static void engine_sample(int32_t *t_out, float *lp_s, float *lp_p, const float *row, int V,
                          int limit, const rl_sampling *s, int greedy, rl_rng *rng) {
    float *probs = rl_malloc((size_t)V * sizeof(float));
    int32_t *idx = rl_malloc((size_t)V * sizeof(int32_t));
    int t;
    float lp_sample;
    float u = rl_rng_float(rng);
    if (greedy || s->temperature <= 0) {
        t = rl_argmax(row, limit);
        lp_sample = 0.0f;
    } else {
        rl_sampling_probs(probs, row, limit, s, idx);
        t = rl_sample_from_probs(probs, limit, u);
        lp_sample = logf(probs[t]);
    }
    *t_out = t;
    *lp_s = lp_sample;
    *lp_p = rl_token_logprob(row, V, t, 1.0f);
    free(probs);
    free(idx);
}

// Random logits: a spread of values, some ties (a coarse grid), some -inf.
static void random_row(float *row, int V, int kind) {
    for (int i = 0; i < V; i++) {
        switch (kind) {
        case 0:
            row[i] = 4.0f * (float)rl_rng_normal(&RNG);
            break;
        case 1:
            row[i] = (float)rl_rng_below(&RNG, 12) * 0.5f;
            break; // heavy ties
        default:
            row[i] = rl_rng_below(&RNG, 50) == 0 ? -INFINITY : (float)rl_rng_normal(&RNG);
        }
    }
}

static const rl_sampling MODES[] = {
    {1.0f, 0, 1.0f, 0.0f},   {0.7f, 0, 1.0f, 0.0f},  {0.0f, 0, 1.0f, 0.0f},
    {1.0f, 5, 1.0f, 0.0f},   {1.0f, 0, 0.9f, 0.0f},  {0.8f, 0, 1.0f, 0.05f},
    {1.3f, 20, 0.95f, 0.0f}, {0.6f, 40, 0.8f, 0.1f}, {1.0f, 1, 1.0f, 0.0f},
    {1.0f, 0, 0.0f, 0.0f},   {2.0f, 3, 0.5f, 0.2f},  {1.0f, 100000, 0.999f, 0.001f},
};
enum { N_MODES = sizeof MODES / sizeof MODES[0] };

static void test_op_matches_engine_sampling(void) {
    const rl_backend *be = rl_backend_cpu();
    const int shapes[][2] = {{7, 7}, {64, 50}, {272, 260}, {3001, 3001}, {40000, 39000}};
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
        int V = shapes[sh][0], limit = shapes[sh][1];
        int n = V > 10000 ? 4 : 2 * N_MODES;
        float *logits = rl_malloc((size_t)n * V * sizeof(float));
        rl_sampling *par = rl_malloc((size_t)n * sizeof *par);
        rl_rng *streams = rl_malloc((size_t)n * sizeof *streams);
        uint64_t *key_draw = rl_malloc((size_t)2 * n * sizeof(uint64_t));
        int32_t *tok = rl_malloc((size_t)n * sizeof(int32_t));
        float *lps = rl_malloc((size_t)n * sizeof(float)), *lpp = rl_malloc((size_t)n * 4);
        for (int i = 0; i < n; i++) {
            par[i] = MODES[(i + sh) % N_MODES];
            streams[i] = rl_rng_stream(99, RL_RNG_SAMPLE, sh, (uint64_t)i);
        }
        int mismatches = 0, checked = 0;
        for (int step = 0; step < 3; step++) {
            for (int i = 0; i < n; i++) random_row(logits + (size_t)i * V, V, (i + step) % 3);
            for (int i = 0; i < n; i++) {
                key_draw[2 * i] = streams[i].key;
                key_draw[2 * i + 1] = rl_rng_position(&streams[i]);
            }
            be->sample(be, tok, lps, lpp, logits, key_draw, par, n, V, limit);
            for (int i = 0; i < n; i++) {
                int32_t t;
                float s_want, p_want;
                engine_sample(&t, &s_want, &p_want, logits + (size_t)i * V, V, limit, &par[i], 0,
                              &streams[i]); // advances the stream by one, as the engine
                checked++;
                if (t != tok[i] || memcmp(&s_want, &lps[i], 4) || memcmp(&p_want, &lpp[i], 4)) {
                    if (mismatches++ < 5)
                        fprintf(stderr,
                                "V %d row %d step %d: op %d %.9g %.9g, engine %d %.9g %.9g\n", V, i,
                                step, tok[i], lps[i], lpp[i], t, s_want, p_want);
                }
                CHECK(tok[i] >= 0 && tok[i] < limit, "token %d outside the limit %d", tok[i],
                      limit);
            }
        }
        CHECK(mismatches == 0, "V %d: %d of %d draws differ from the engine's", V, mismatches,
              checked);
        free(logits), free(par), free(streams), free(key_draw), free(tok), free(lps), free(lpp);
    }
}

// Frequencies of the draws over many stream positions follow the filtered distribution, and
// logp_sample is the log of the drawn token's filtered probability.
static void test_op_distribution(void) {
    const rl_backend *be = rl_backend_cpu();
    enum { V = 9, LIMIT = 8, N = 4000 };
    const float row[V] = {1.0f, 2.0f, 0.5f, 2.0f, -1.0f, 0.0f, 1.5f, 0.25f, 9.0f};
    rl_sampling s = {0.9f, 6, 0.97f, 0.0f};
    float probs[LIMIT];
    int32_t idx[LIMIT];
    rl_sampling_probs(probs, row, LIMIT, &s, idx);
    float *logits = rl_malloc((size_t)N * V * sizeof(float));
    uint64_t *kd = rl_malloc((size_t)2 * N * sizeof(uint64_t));
    rl_sampling *par = rl_malloc((size_t)N * sizeof *par);
    int32_t tok[N];
    float lps[N], lpp[N];
    for (int i = 0; i < N; i++) {
        memcpy(logits + (size_t)i * V, row, sizeof row);
        kd[2 * i] = 0xABCDEF12345ull;
        kd[2 * i + 1] = (uint64_t)i;
        par[i] = s;
    }
    be->sample(be, tok, lps, lpp, logits, kd, par, N, V, LIMIT);
    int count[LIMIT] = {0}, bad = 0;
    double lse = 0.0;
    for (int k = 0; k < V; k++) lse += exp((double)row[k] - 9.0);
    lse = 9.0 + log(lse);
    for (int i = 0; i < N; i++) {
        if (tok[i] < 0 || tok[i] >= LIMIT) { // id 8 holds almost all the mass, beyond the limit
            bad++;
            continue;
        }
        count[tok[i]]++;
        bad += lps[i] != logf(probs[tok[i]]);
        bad += fabs(lpp[i] - (row[tok[i]] - lse)) > 1e-5;
    }
    CHECK(bad == 0, "%d draws outside the limit or with wrong log-probs", bad);
    for (int k = 0; k < LIMIT; k++) {
        double want = probs[k] * N, sd = sqrt(want * (1.0 - probs[k]) + 1e-9);
        CHECK(fabs(count[k] - want) <= 4.5 * sd + 1e-9, "token %d drawn %d times, want %.1f", k,
              count[k], want);
    }
    free(logits), free(kd), free(par);
}

// ------------------------------------------------------------------------------------------------
// Inside the engine

typedef struct engine_probe {
    const rl_gen_params *p;
    uint64_t key; // the prompt's key
    int V, limit;
    int tokens, mismatches;
} engine_probe;

// Called by the engine after each token with the logits the token was drawn from.
static int probe_token(void *ctx, int sample, const rl_completion *c, const float *logits,
                       const char *bytes, size_t n_bytes, int done) {
    engine_probe *pr = ctx;
    const rl_backend *be = rl_backend_cpu();
    rl_rng stream = rl_rng_stream(pr->p->seed, RL_RNG_SAMPLE, pr->key, (uint64_t)sample);
    uint64_t kd[2] = {stream.key, (uint64_t)(c->n_tokens - 1)}; // one draw per token so far
    rl_sampling s = pr->p->sampling;
    if (pr->p->greedy) s.temperature = 0.0f;
    int32_t t;
    float lps, lpp;
    be->sample(be, &t, &lps, &lpp, logits, kd, &s, 1, pr->V, pr->limit);
    int k = c->n_tokens - 1;
    pr->tokens++;
    if (t != c->tokens[k] || memcmp(&lps, &c->logp_sample[k], 4) ||
        memcmp(&lpp, &c->logp_policy[k], 4))
        pr->mismatches++;
    return 0;
}

static void test_engine_draws(void) {
    rl_err err = {0};
    const rl_backend *be = rl_backend_cpu();
    rl_tokenizer *tok;
    CHECK(rl_tokenizer_load(&tok, "byte", &err) == 0, "%s", err.msg);
    rl_model_config c = {0};
    c.hidden_size = 32;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.intermediate_size = 48;
    c.vocab_size = 272;
    c.max_position_embeddings = 256;
    c.rope_theta = 10000;
    c.rms_norm_eps = 1e-5;
    c.tie_word_embeddings = 1;
    c.eos_token_id = 256;
    rl_model *m;
    CHECK(rl_model_create(&m, &c, be, &err) == 0, "%s", err.msg);
    rl_model_init_random(m, 5, 0.5f);
    rl_ids prompt = {0};
    const char *text = "Q: 17*3?\n";
    rl_tokenizer_encode_append(tok, text, strlen(text), &prompt, &err);
    static const int32_t eos[1] = {256};
    const rl_sampling modes[] = {{1.0f, 0, 1.0f, 0.0f},
                                 {0.7f, 10, 0.9f, 0.0f},
                                 {1.2f, 0, 0.95f, 0.05f},
                                 {1.0f, 0, 1.0f, 0.0f}};
    for (int mode = 0; mode < 4; mode++) {
        rl_gen_params p = {.sampling = modes[mode],
                           .greedy = mode == 3,
                           .max_new_tokens = 24,
                           .stop_ids = eos,
                           .n_stop_ids = 1,
                           .seed = 1234 + mode};
        rl_engine *e;
        int limit = mode == 1 ? 260 : 272;
        CHECK(rl_engine_create(&e, m, tok, 4, 64, limit, &err) == 0, "%s", err.msg);
        engine_probe pr = {&p, 77, 272, limit, 0, 0};
        rl_completion out[3];
        rl_stream_req req = {&p, {prompt.data, (int)prompt.len, 77, 3}, out, probe_token, &pr, 0};
        CHECK(rl_engine_submit(e, &req, &err) == 0, "%s", err.msg);
        for (int steps = 0; rl_engine_n_live(e) > 0 && steps < 100; steps++)
            CHECK(rl_engine_step(e, &err) == 0, "%s", err.msg);
        CHECK(pr.tokens > 30 && pr.mismatches == 0,
              "mode %d: %d of %d engine draws differ from the op's", mode, pr.mismatches,
              pr.tokens);
        for (int i = 0; i < 3; i++) rl_completion_free(&out[i]);
        rl_engine_free(e);
    }
    rl_ids_free(&prompt);
    rl_model_free(m);
    rl_tokenizer_free(tok);
}

int main(void) {
    RNG = rl_rng_stream(7, RL_RNG_INIT, 11, 0);
    RUN(test_stream_positions);
    RUN(test_op_matches_engine_sampling);
    RUN(test_op_distribution);
    RUN(test_engine_draws);
    return test_summary();
}
