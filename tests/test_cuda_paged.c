// test_cuda_paged: the CUDA paged-KV ops against the CPU backend (the reference, itself checked
// against double-precision math in test_kernels and test_paged).
//
//   - kv_store into pools whose blocks are scattered (block tables in shuffled order): both
//     backends must hold the same bits at the same offsets (the layout inside a block is shared);
//   - attention_cached_forward over long contexts (up to 1100 positions, 18 blocks, so every
//     warp of the split-over-blocks kernel gets several blocks), sliding windows whose old blocks
//     are absent from the table (-1), two slots sharing prefix blocks, GQA / MQA / MHA, head
//     dims 8 to 256;
//   - the model: paged prefill and decode with a forked slot (copy-on-write) and window layers,
//     CUDA logits against the CPU's.
//
// Runs on a GPU build with a device, and in the emulator (kernels/cuda/emu/check.sh); elsewhere
// it checks that the backend is refused cleanly and exits 77 (skipped).
#define _POSIX_C_SOURCE 200809L
#include "kernels/backend.h"
#include "kernels/rng.h"
#include "policy/model.h"
#include "test_backend_util.h"
#include "test_model_util.h"
#include "test_util.h"

#include <stdint.h>

static const rl_backend *CPU, *GPU;
static rl_rng RNG;

// got against want: max |d| / (|want| + mean|want|) <= tol; tol < 0: bit for bit.
static void compare(const char *what, const float *got, const float *want, size_t n, double tol) {
    double scale = 0.0, worst = 0.0;
    size_t at = 0, bits = 0;
    for (size_t i = 0; i < n; i++) scale += fabs(want[i]);
    scale = n ? scale / n : 0.0;
    for (size_t i = 0; i < n; i++) {
        bits += memcmp(got + i, want + i, 4) != 0;
        double rel = fabs((double)got[i] - want[i]) / (fabs(want[i]) + scale + 1e-30);
        if (!(rel <= worst)) worst = rel, at = i;
    }
    fprintf(stderr, "  %-62s max rel %.2e  (%zu of %zu differ in bits)\n", what, worst, bits, n);
    if (tol < 0)
        CHECK(bits == 0, "%s: %zu elements differ", what, bits);
    else
        CHECK(worst <= tol, "%s: element %zu got %.9g want %.9g (rel %.3g, tol %g)", what, at,
              n ? got[at] : 0.0, n ? want[at] : 0.0, worst, tol);
}

static void rand_fill(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float u = 0.05f + 0.95f * rl_rng_float(&RNG);
        x[i] = 1.5f * (rl_rng_u32(&RNG) & 1 ? u : -u);
    }
}

// Two sequences of T positions in slots 0 and 2 of a 3-slot table; slot 2's first `shared`
// blocks are slot 0's (a fork), and blocks a window can no longer see are -1 in the table the
// attention gets (they were stored through the full table first).
static void cached_case(int NH, int NKV, int hd, int T, int window, int shared) {
    int S = 3, mb = (T + RL_KV_BLOCK - 1) / RL_KV_BLOCK, QKV = (NH + 2 * NKV) * hd;
    int n_blocks = S * mb;
    size_t kv_dim = (size_t)NKV * hd, pool = (size_t)n_blocks * RL_KV_BLOCK * kv_dim;
    // block table: a shuffled permutation of the pool; slot 2 shares slot 0's first blocks
    int32_t *perm = rl_malloc((size_t)n_blocks * 4), *table = rl_malloc((size_t)n_blocks * 4);
    for (int i = 0; i < n_blocks; i++) perm[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) {
        int j = (int)rl_rng_below(&RNG, (uint32_t)i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    memcpy(table, perm, (size_t)n_blocks * 4);
    for (int j = 0; j < shared; j++) table[2 * mb + j] = table[j];
    // rows: slot 0 positions 0..T-1, slot 2 positions shared*BLOCK..T-1 (its own part)
    int first2 = shared * RL_KV_BLOCK, n = T + (T - first2);
    int32_t *slot = rl_malloc((size_t)n * 4), *pos = rl_malloc((size_t)n * 4);
    for (int i = 0; i < T; i++) slot[i] = 0, pos[i] = i;
    for (int i = 0; i < T - first2; i++) slot[T + i] = 2, pos[T + i] = first2 + i;
    float *qkv = rl_malloc((size_t)n * QKV * 4), *zero = rl_calloc(pool, 4);
    rand_fill(qkv, (size_t)n * QKV);
    const rl_backend *be[2] = {CPU, GPU};
    float *k_h[2], *v_h[2], *o_h[2];
    // queries: slot 0's last rows and slot 2's first ones (rows [q0, q0 + nq)), enough to cover
    // every case while keeping the emulator's work small
    int q0 = T > 24 ? T - 24 : 0, nq = (n < q0 + 48 ? n : q0 + 48) - q0;
    size_t no = (size_t)nq * NH * hd;
    // the attention table: blocks entirely before every query's window removed
    int32_t *att_table = rl_malloc((size_t)n_blocks * 4);
    memcpy(att_table, table, (size_t)n_blocks * 4);
    int min_first = window > 0 ? first2 - window + 1 : 0; // slot 2's earliest query
    if (window > 0)
        for (int j = 0; (j + 1) * RL_KV_BLOCK <= min_first; j++) att_table[2 * mb + j] = -1;
    for (int k = 0; k < 2; k++) {
        const rl_backend *b = be[k];
        void *kp = test_up(b, zero, pool * 4), *vp = test_up(b, zero, pool * 4),
             *dq = test_up(b, qkv, (size_t)n * QKV * 4);
        int32_t *dt = test_up(b, table, (size_t)n_blocks * 4),
                *da = test_up(b, att_table, (size_t)n_blocks * 4);
        int32_t *ds = test_up(b, slot, (size_t)n * 4), *dp = test_up(b, pos, (size_t)n * 4);
        // stored in two calls, slot 2's rows first
        b->kv_store(b, kp, vp, (float *)dq + (size_t)T * QKV, dt, mb, ds + T, dp + T, n - T, NH,
                    NKV, hd);
        b->kv_store(b, kp, vp, dq, dt, mb, ds, dp, T, NH, NKV, hd);
        void *out = b->mem_alloc(b, no * 4);
        b->attention_cached_forward(b, out, (float *)dq + (size_t)q0 * QKV, kp, vp,
                                    window > 0 ? da : dt, mb, ds + q0, dp + q0, nq, NH, NKV, hd,
                                    window);
        k_h[k] = test_down(b, kp, pool), v_h[k] = test_down(b, vp, pool),
        o_h[k] = test_down(b, out, no);
        b->mem_free(b, kp), b->mem_free(b, vp), b->mem_free(b, dq), b->mem_free(b, dt);
        b->mem_free(b, da), b->mem_free(b, ds), b->mem_free(b, dp), b->mem_free(b, out);
    }
    char what[128];
    snprintf(what, sizeof what, "kv_store NH%d NKV%d hd%d T%d shared %d: keys", NH, NKV, hd, T,
             shared);
    compare(what, k_h[1], k_h[0], pool, -1);
    snprintf(what, sizeof what, "kv_store NH%d NKV%d hd%d T%d shared %d: values", NH, NKV, hd, T,
             shared);
    compare(what, v_h[1], v_h[0], pool, -1);
    snprintf(what, sizeof what, "attention_cached NH%d NKV%d hd%d T%d w%d shared %d", NH, NKV, hd,
             T, window, shared);
    compare(what, o_h[1], o_h[0], no, 2e-5);
    for (int k = 0; k < 2; k++) free(k_h[k]), free(v_h[k]), free(o_h[k]);
    free(perm), free(table), free(att_table), free(slot), free(pos), free(qkv), free(zero);
}

static void test_paged_ops(void) {
    cached_case(6, 2, 8, 70, 0, 1);      // GQA 3, two blocks, one shared
    cached_case(4, 1, 32, 200, 37, 2);   // MQA, window, dropped blocks
    cached_case(14, 2, 64, 1100, 0, 9);  // Qwen2.5-0.5B heads, 18 blocks: every warp has several
    cached_case(8, 8, 128, 700, 300, 4); // MHA hd 128, window across warps' blocks
    cached_case(2, 1, 256, 150, 0, 0);   // the largest head dim, nothing shared
    cached_case(3, 3, 16, 65, 1, 1);     // window 1: each query sees itself only
}

// The model's paged decode on both backends: a prompt longer than two blocks prefilled in
// chunks, forked to two slots, decoded past the window of the window layers.
static void test_paged_model(void) {
    rl_model_config cfg = test_tiny_config();
    cfg.hidden_size = 64, cfg.num_attention_heads = 4, cfg.num_key_value_heads = 2;
    cfg.head_dim = 16, cfg.intermediate_size = 96, cfg.num_hidden_layers = 3;
    cfg.use_sliding_window = 1, cfg.sliding_window = 50, cfg.max_window_layers = 1;
    int V = cfg.vocab_size, P = 140, steps = 40;
    rl_model *m[2];
    rl_kv_cache *c[2];
    rl_err err;
    const rl_backend *be[2] = {CPU, GPU};
    for (int k = 0; k < 2; k++) {
        CHECK(rl_model_create(&m[k], &cfg, be[k], &err) == 0, "model: %s", err.msg);
        rl_model_init_random(m[k], 9, 0.3f);
        c[k] = rl_kv_cache_create_pool(m[k], 3, P + steps + 1, 0, 48, &err);
        CHECK(c[k] != NULL, "cache: %s", err.msg);
    }
    int32_t prompt[140];
    for (int i = 0; i < P; i++) prompt[i] = (int32_t)rl_rng_below(&RNG, V);
    float *lg[2] = {rl_malloc((size_t)2 * V * 4), rl_malloc((size_t)2 * V * 4)};
    int slot = 1, slots[2] = {1, 2};
    for (int k = 0; k < 2; k++)
        for (int at = 0; at < P; at += 48) {
            int32_t nt = P - at < 48 ? P - at : 48;
            const int32_t *part = prompt + at;
            CHECK(rl_model_prefill(m[k], c[k], 1, &slot, &part, &nt, lg[k], &err) == 0,
                  "prefill: %s", err.msg);
        }
    compare("paged model: prompt logits", lg[1], lg[0], (size_t)V, 1e-4);
    double worst = 0.0;
    for (int k = 0; k < 2; k++) rl_kv_cache_fork(c[k], 2, 1);
    for (int t = 0; t < steps; t++) {
        int32_t tok[2] = {(int32_t)((t * 5 + 1) % V), (int32_t)((t * 11 + 3) % V)};
        for (int k = 0; k < 2; k++)
            CHECK(rl_model_decode_step(m[k], c[k], 2, slots, tok, lg[k], &err) == 0, "decode: %s",
                  err.msg);
        float *g = lg[1], *w = lg[0];
        for (size_t i = 0; i < (size_t)2 * V; i++)
            worst = fmax(worst, fabs(g[i] - w[i]) / (1.0 + fabs(w[i])));
    }
    fprintf(stderr, "  paged model: %d decode steps of a forked pair, max rel %.2e\n", steps,
            worst);
    CHECK(worst < 1e-4, "paged decode: CUDA differs from the CPU by %.3g", worst);
    CHECK(c[1]->cow_copies == c[0]->cow_copies && c[0]->cow_copies == 2,
          "copy-on-write of the shared partial block in both groups (%ld)", c[1]->cow_copies);
    for (int k = 0; k < 2; k++) rl_kv_cache_free(c[k]), rl_model_free(m[k]), free(lg[k]);
}

int main(void) {
    CPU = rl_backend_cpu();
    int status;
    GPU = test_open_cuda(&status);
    if (!GPU) return status;
    RNG = rl_rng_stream(2025, RL_RNG_INIT, 11, 0);
    RUN(test_paged_ops);
    RUN(test_paged_model);
    rl_backend_release(GPU);
    return test_summary();
}
