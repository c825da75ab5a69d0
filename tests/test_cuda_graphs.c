// test_cuda_graphs: the decode step as CUDA graphs, one per batch bucket (policy/model_decode.c).
//
//   - padding rows (slot -1) on both backends: kv_store leaves the pools untouched for them,
//     attention_cached_forward gives them zeros, and the real rows get the same bits as without
//     the padding (the CPU part runs everywhere, also where there is no GPU);
//   - the model: decode steps whose live batch crosses buckets (1 .. 20 sequences), with forks,
//     resets, new blocks allocated between replays of the same bucket's graph, window layers, a
//     decode buffer that grows (the graphs are dropped and recaptured) and a second KV cache:
//     the logits with graphs equal the logits op by op bit for bit, and both match the CPU;
//     with float32 (cublasSgemm or the batch-invariant matmul_rows, switched mid-run: the graphs
//     are recaptured) and bf16 (cuBLASLt) weights and activations;
//   - the engine: several prompts x G with continuous batching (fewer slots than samples, stops
//     mid-round, so the live batch size moves across buckets), with graphs on and off: the same
//     tokens and bit-identical log-probs, and the graphs were really replayed.
//
// Runs on a GPU build with a device, and in the emulator (kernels/cuda/emu/check.sh); elsewhere
// it runs the CPU part, checks that the CUDA backend is refused cleanly and exits 77 (skipped).
#define _POSIX_C_SOURCE 200809L
#include "kernels/backend.h"
#include "kernels/rng.h"
#include "policy/model.h"
#include "policy/tokenizer.h"
#include "rollout/engine.h"
#include "test_backend_util.h"
#include "test_model_util.h"
#include "test_util.h"

#include <stdint.h>

static const rl_backend *CPU, *GPU;
static rl_rng RNG;

static void rand_fill(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = 2.0f * rl_rng_float(&RNG) - 1.0f;
}

// ------------------------------------------------------------------------------------------------
// Padding rows

// Rows of two slots (5 and 3 positions, scattered blocks) stored and attended twice: alone, and
// interleaved with 6 padding rows (slot -1, position 0, random q|k|v) in a call of 14 rows.
static void padding_case(const rl_backend *be) {
    enum { NH = 4, NKV = 2, HD = 8, MB = 2, S = 2, NB = 4, N = 8, NP = 14 };
    int QKV = (NH + 2 * NKV) * HD;
    size_t kv_dim = (size_t)NKV * HD, pool = (size_t)NB * RL_KV_BLOCK * kv_dim;
    int32_t table[S * MB] = {2, 0, 3, 1};
    int32_t slot[N], pos[N];
    for (int i = 0; i < N; i++) slot[i] = i < 5 ? 0 : 1, pos[i] = i < 5 ? 60 + i : 62 + (i - 5);
    float *qkv = rl_malloc((size_t)NP * QKV * 4), *pool0 = rl_malloc(pool * 4);
    rand_fill(qkv, (size_t)NP * QKV);
    rand_fill(pool0, pool); // earlier positions' keys and values
    // the padded call: real row i at place where[i], padding rows elsewhere
    int where[N] = {0, 2, 3, 5, 6, 9, 10, 13};
    int32_t pslot[NP], ppos[NP];
    float *pqkv = rl_malloc((size_t)NP * QKV * 4);
    for (int j = 0; j < NP; j++) pslot[j] = -1, ppos[j] = 0;
    memcpy(pqkv, qkv, (size_t)NP * QKV * 4); // padding rows keep random values
    for (int i = 0; i < N; i++) {
        pslot[where[i]] = slot[i], ppos[where[i]] = pos[i];
        memcpy(pqkv + (size_t)where[i] * QKV, qkv + (size_t)i * QKV, (size_t)QKV * 4);
    }
    float *k_h[2], *v_h[2], *o_h[2];
    for (int pad = 0; pad < 2; pad++) {
        int n = pad ? NP : N;
        void *kp = test_up(be, pool0, pool * 4), *vp = test_up(be, pool0, pool * 4);
        void *dq = test_up(be, pad ? pqkv : qkv, (size_t)n * QKV * 4);
        int32_t *dt = test_up(be, table, sizeof table);
        int32_t *ds = test_up(be, pad ? pslot : slot, (size_t)n * 4);
        int32_t *dp = test_up(be, pad ? ppos : pos, (size_t)n * 4);
        float *junk = rl_malloc((size_t)n * NH * HD * 4);
        for (size_t i = 0; i < (size_t)n * NH * HD; i++) junk[i] = 7.0f;
        void *out = test_up(be, junk, (size_t)n * NH * HD * 4);
        be->kv_store(be, kp, vp, dq, dt, MB, ds, dp, n, NH, NKV, HD);
        be->attention_cached_forward(be, out, dq, kp, vp, dt, MB, ds, dp, n, NH, NKV, HD, 0);
        k_h[pad] = test_down(be, kp, pool), v_h[pad] = test_down(be, vp, pool);
        o_h[pad] = test_down(be, out, (size_t)n * NH * HD);
        be->mem_free(be, kp), be->mem_free(be, vp), be->mem_free(be, dq), be->mem_free(be, dt);
        be->mem_free(be, ds), be->mem_free(be, dp), be->mem_free(be, out);
        free(junk);
    }
    CHECK(memcmp(k_h[0], k_h[1], pool * 4) == 0 && memcmp(v_h[0], v_h[1], pool * 4) == 0,
          "%s: padding rows changed the KV pools", be->name);
    int same = 1, zeros = 1;
    size_t row = (size_t)NH * HD;
    for (int i = 0; i < N; i++)
        same &= memcmp(o_h[0] + i * row, o_h[1] + (size_t)where[i] * row, row * 4) == 0;
    for (int j = 0; j < NP; j++)
        if (pslot[j] < 0)
            for (size_t e = 0; e < row; e++) zeros &= o_h[1][(size_t)j * row + e] == 0.0f;
    CHECK(same, "%s: padding rows changed the real rows' attention", be->name);
    CHECK(zeros, "%s: a padding row's attention output is not zero", be->name);
    for (int k = 0; k < 2; k++) free(k_h[k]), free(v_h[k]), free(o_h[k]);
    free(qkv), free(pqkv), free(pool0);
}

static void test_padding_rows_cpu(void) {
    padding_case(CPU);
}

static void test_padding_rows_cuda(void) {
    padding_case(GPU);
}

// ------------------------------------------------------------------------------------------------
// The model

static rl_model_config small_config(void) {
    rl_model_config cfg = test_tiny_config();
    cfg.hidden_size = 32, cfg.num_attention_heads = 4, cfg.num_key_value_heads = 2;
    cfg.head_dim = 8, cfg.intermediate_size = 48, cfg.num_hidden_layers = 2, cfg.vocab_size = 61;
    cfg.use_sliding_window = 1, cfg.sliding_window = 40, cfg.max_window_layers = 1;
    return cfg;
}

static rl_model *model_on(const rl_backend *be, const rl_model_config *cfg) {
    rl_model *m;
    rl_err err = {0};
    CHECK(rl_model_create(&m, cfg, be, &err) == 0, "model: %s", err.msg);
    if (!m) exit(1);
    rl_model_init_random(m, 17, 0.4f);
    return m;
}

// Three models with the same weights run the same calls: the CPU (reference), the GPU with
// graphs, the GPU op by op. Each call's logits: graphs == op by op bit for bit, both near the CPU.
typedef struct trio {
    rl_model *m[3]; // CPU, GPU graphs, GPU eager
    rl_kv_cache *c[3];
    float *lg[3];
    int V, steps, exact_fail, decode_steps;
    double worst_cpu;       // largest |gpu - cpu| / (1 + |cpu|)
    double sq_diff, sq_ref; // relative L2 of the GPU's logits against the CPU's
} trio;

static void trio_cache(trio *t, int slots, int max_len) {
    rl_err err = {0};
    for (int k = 0; k < 3; k++) {
        rl_kv_cache_free(t->c[k]);
        t->c[k] = rl_kv_cache_create_pool(t->m[k], slots, max_len, 0, 32, &err);
        CHECK(t->c[k] != NULL, "cache: %s", err.msg);
    }
}

static void trio_compare(trio *t, int n) {
    size_t cnt = (size_t)n * t->V;
    if (memcmp(t->lg[1], t->lg[2], cnt * sizeof(float)) != 0) {
        if (t->exact_fail++ < 3)
            fprintf(stderr, "  step %d (%d rows): graph logits differ from op-by-op logits\n",
                    t->steps, n);
    }
    for (size_t i = 0; i < cnt; i++) {
        double d = fabs((double)t->lg[1][i] - t->lg[0][i]) / (1.0 + fabs(t->lg[0][i]));
        if (!(d <= t->worst_cpu)) t->worst_cpu = d;
        double e = (double)t->lg[1][i] - t->lg[0][i];
        t->sq_diff += e * e, t->sq_ref += (double)t->lg[0][i] * t->lg[0][i];
    }
    t->steps++;
}

static void trio_decode(trio *t, int n, const int *slots) {
    int32_t tok[64];
    for (int i = 0; i < n; i++) tok[i] = (int32_t)rl_rng_below(&RNG, (uint32_t)t->V);
    rl_err err = {0};
    for (int k = 0; k < 3; k++)
        CHECK(rl_model_decode_step(t->m[k], t->c[k], n, slots, tok, t->lg[k], &err) == 0,
              "decode: %s", err.msg);
    t->decode_steps++;
    trio_compare(t, n);
}

// Prompts of len, len + 3, len + 6, .. tokens into slots first .. first + n - 1, in one call.
static void trio_prefill(trio *t, int first, int n, int len) {
    int32_t ids[16][200], nt[16];
    const int32_t *lists[16];
    int slots[16];
    for (int i = 0; i < n; i++) {
        slots[i] = first + i, nt[i] = len + 3 * i, lists[i] = ids[i];
        for (int j = 0; j < nt[i]; j++) ids[i][j] = (int32_t)rl_rng_below(&RNG, (uint32_t)t->V);
    }
    rl_err err = {0};
    for (int k = 0; k < 3; k++)
        CHECK(rl_model_prefill(t->m[k], t->c[k], n, slots, lists, nt, t->lg[k], &err) == 0,
              "prefill: %s", err.msg);
    trio_compare(t, n);
}

static void trio_fork(trio *t, int dst, int src) {
    for (int k = 0; k < 3; k++) rl_kv_cache_fork(t->c[k], dst, src);
}

// gpu: the backend under test; against the CPU's logits: max_tol bounds the largest element's
// |d| / (1 + |cpu|), l2_tol the relative L2 of all of them.
// invariant: the GPU models' batch_invariant (policy/model.h: 1 = matmul_rows, -1 = cuBLAS).
static void decode_logits(const rl_backend *gpu, int invariant, double max_tol, double l2_tol) {
    rl_model_config cfg = small_config();
    trio t = {0};
    t.V = cfg.vocab_size;
    const rl_backend *be[3] = {CPU, gpu, gpu};
    for (int k = 0; k < 3; k++) {
        t.m[k] = model_on(be[k], &cfg);
        t.lg[k] = rl_malloc((size_t)64 * t.V * sizeof(float));
    }
    t.m[2]->eager_decode = 1;
    t.m[1]->batch_invariant = t.m[2]->batch_invariant = invariant;
    int slots[64];
    for (int i = 0; i < 64; i++) slots[i] = i;
    // a first cache: two prompts, forked; the live batch grows 1, 2, 3 .. 6 and shrinks
    trio_cache(&t, 24, 200);
    trio_prefill(&t, 0, 1, 118); // nearly two blocks
    trio_decode(&t, 1, slots);
    trio_prefill(&t, 1, 1, 9);
    for (int s = 0; s < 2; s++) trio_decode(&t, 2, slots);
    for (int f = 2; f < 6; f++) {
        trio_fork(&t, f, f % 2); // shares the parent's blocks; the next write copies one
        trio_decode(&t, f + 1, slots);
    }
    // bucket 8 again and again (6, 7, 8 rows) while slots 0, 2 and 4 cross position 128: their
    // tables gain a block between replays of one graph; the window layer frees blocks
    for (int s = 0; s < 9; s++) trio_decode(&t, 6 + (s % 3), slots);
    trio_fork(&t, 7, 0); // a fork between two replays of bucket 8
    trio_decode(&t, 8, slots);
    int odd[3] = {5, 1, 7}; // not in slot order
    for (int s = 0; s < 2; s++) trio_decode(&t, 3, odd);
    for (int k = 0; k < 3; k++) rl_kv_cache_reset(t.c[k], 0);
    int rest[5] = {1, 3, 4, 6, 7};
    trio_decode(&t, 5, rest);
    long caps = t.m[1]->dec.graph_captures, reps = t.m[1]->dec.graph_replays;
    int steps_then = t.decode_steps;
    // more sequences than the decode buffers hold: they grow, the graphs are dropped
    trio_prefill(&t, 8, 12, 3);
    trio_decode(&t, 12, slots + 8);
    trio_decode(&t, 20, slots);
    trio_decode(&t, 17, slots + 3);
    // a second cache (other pools and tables, another table width): graphs are recaptured
    trio_cache(&t, 6, 130);
    trio_prefill(&t, 0, 3, 20);
    for (int s = 0; s < 3; s++) trio_decode(&t, 3, slots);
    // the other kind of products: the graphs (which name the old kernels) are recaptured
    long caps2 = t.m[1]->dec.graph_captures;
    t.m[1]->batch_invariant = t.m[2]->batch_invariant = -invariant;
    for (int s = 0; s < 2; s++) trio_decode(&t, 3, slots);
    CHECK(t.m[1]->dec.graph_captures == caps2 + 1, "recaptured for other products");
    fprintf(stderr,
            "  %d calls (%d decode steps): graph != op-by-op in %d; max rel vs CPU %.2e; "
            "%ld graphs captured, %ld replays (%ld and %ld before the growth)\n",
            t.steps, t.decode_steps, t.exact_fail, t.worst_cpu, t.m[1]->dec.graph_captures,
            t.m[1]->dec.graph_replays, caps, reps);
    CHECK(t.exact_fail == 0, "graph logits differ from op-by-op logits in %d calls", t.exact_fail);
    double l2 = sqrt(t.sq_diff / t.sq_ref);
    fprintf(stderr, "  relative L2 against the CPU %.2e\n", l2);
    CHECK(t.worst_cpu < max_tol, "CUDA logits differ from the CPU's by %.3g", t.worst_cpu);
    CHECK(l2 < l2_tol, "CUDA logits' relative L2 against the CPU's %.3g", l2);
    CHECK(caps == 4 && reps == steps_then,
          "every decode step a replay, one capture per bucket (1, 2, 4, 8): %ld captures, %ld "
          "replays in %d steps",
          caps, reps, steps_then);
    CHECK(t.m[1]->dec.graph_captures > caps, "graphs recaptured after the buffers grew");
    CHECK(t.m[2]->dec.graph_captures == 0 && t.m[2]->dec.graph_replays == 0,
          "eager_decode runs no graph");
    CHECK(t.m[0]->dec.graph_captures == 0 && t.m[0]->dec.graph_replays == 0,
          "the CPU runs no graph");
    for (int k = 0; k < 3; k++) rl_kv_cache_free(t.c[k]), rl_model_free(t.m[k]), free(t.lg[k]);
}

static void test_decode_logits(void) {
    decode_logits(GPU, -1, 1e-4, 1e-5); // cublasSgemm
}

// the batch-invariant products (matmul_rows kernels) inside the graphs
static void test_decode_logits_invariant(void) {
    decode_logits(GPU, 1, 1e-4, 1e-5);
}

// bf16 weights and activations: the products go through cuBLASLt instead of cublasSgemm
static void test_decode_logits_bf16(void) {
    rl_err err = {0};
    const rl_backend *bf = rl_backend_cuda_open(0, 0, RL_BF16, &err);
    CHECK(bf != NULL, "bf16 backend: %s", err.msg);
    if (!bf) return;
    // bf16 weights and activations against float32: a sanity bound (the prefill calls alone,
    // which neither pad nor replay, measure 1.7% to 3.7% relative L2 here); the check that matters
    // is graphs == op by op, bit for bit
    decode_logits(bf, -1, 1.0, 0.08);
    rl_backend_release(bf);
}

// ------------------------------------------------------------------------------------------------
// The engine

static int same_bits(const rl_completion *a, const rl_completion *b) {
    if (a->n_tokens != b->n_tokens || a->finish != b->finish) return 0;
    size_t n = (size_t)a->n_tokens;
    return memcmp(a->tokens, b->tokens, n * 4) == 0 &&
           memcmp(a->logp_sample, b->logp_sample, n * 4) == 0 &&
           memcmp(a->logp_policy, b->logp_policy, n * 4) == 0;
}

static void test_engine(void) {
    rl_err err = {0};
    rl_tokenizer *tok;
    CHECK(rl_tokenizer_load(&tok, "byte", &err) == 0, "tokenizer: %s", err.msg);
    rl_model_config cfg = small_config();
    cfg.vocab_size = 272, cfg.max_position_embeddings = 1024;
    enum { NP = 5, MAXS = 11 };
    int G[NP] = {3, 2, 3, 1, 2}, lens[NP] = {12, 40, 5, 30, 9}, total = 0;
    int32_t *ids[NP];
    rl_gen_prompt gp[NP];
    for (int i = 0; i < NP; i++) {
        ids[i] = rl_malloc((size_t)lens[i] * sizeof(int32_t));
        for (int j = 0; j < lens[i]; j++) ids[i][j] = (int32_t)(32 + rl_rng_below(&RNG, 90));
        gp[i] = (rl_gen_prompt){ids[i], lens[i], 500 + (uint64_t)i, G[i]};
        total += G[i];
    }
    // ten stop ids: a sample stops after ~27 tokens on average, many before their budget of 24
    int32_t stops[10];
    for (int i = 0; i < 10; i++) stops[i] = 40 + 7 * i;
    rl_gen_params p = {.sampling = {1.0f, 0, 0.95f, 0.0f},
                       .max_new_tokens = 24,
                       .stop_ids = stops,
                       .n_stop_ids = 10,
                       .seed = 99};
    rl_completion out[2][MAXS * 2];
    long replays[2], captures[2];
    for (int eager = 0; eager < 2; eager++) {
        rl_model *m = model_on(GPU, &cfg);
        rl_engine_opts o = {
            .max_slots = 7, .max_len = 200, .prefill_chunk = 16, .eager_decode = eager};
        rl_engine *e;
        CHECK(rl_engine_create_opts(&e, m, tok, &o, &err) == 0, "engine: %s", err.msg);
        rl_gen_stats st;
        CHECK(rl_generate(e, &p, gp, NP, out[eager], &st, &err) == 0, "generate: %s", err.msg);
        replays[eager] = m->dec.graph_replays, captures[eager] = m->dec.graph_captures;
        rl_engine_free(e);
        rl_model_free(m);
    }
    int same = 1, stopped = 0, full = 0;
    long toks = 0;
    for (int i = 0; i < total; i++) {
        same &= same_bits(&out[0][i], &out[1][i]);
        stopped += out[0][i].finish == RL_FINISH_STOP && out[0][i].n_tokens < p.max_new_tokens;
        full += out[0][i].finish == RL_FINISH_LENGTH;
        toks += out[0][i].n_tokens;
    }
    fprintf(stderr,
            "  %d samples, %ld tokens (%d stopped early, %d at the budget); graphs: %ld captured, "
            "%ld replays\n",
            total, toks, stopped, full, captures[0], replays[0]);
    CHECK(same, "the engine's tokens or log-probs differ with and without graphs");
    CHECK(stopped >= 2 && full >= 1, "samples stop mid-round (%d) and run to the budget (%d)",
          stopped, full);
    CHECK(captures[0] >= 3 && replays[0] > 10, "the engine replayed graphs (%ld captured, %ld)",
          captures[0], replays[0]);
    CHECK(captures[1] == 0 && replays[1] == 0, "eager_decode: no graph");
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < total; i++) rl_completion_free(&out[k][i]);
    for (int i = 0; i < NP; i++) free(ids[i]);
    rl_tokenizer_free(tok);
}

int main(void) {
    CPU = rl_backend_cpu();
    RNG = rl_rng_stream(2026, RL_RNG_INIT, 12, 0);
    RUN(test_padding_rows_cpu);
    int status;
    GPU = test_open_cuda(&status);
    if (!GPU) return status;
    CHECK(GPU->graph_begin && GPU->mem_upload_staged, "the CUDA backend captures graphs");
    RUN(test_padding_rows_cuda);
    RUN(test_decode_logits);
    RUN(test_decode_logits_invariant);
    RUN(test_decode_logits_bf16);
    RUN(test_engine);
    rl_backend_release(GPU);
    return test_summary();
}
