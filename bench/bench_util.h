// bench_util: what several benchmarks share: the Qwen2 model configuration of a benchmark shape
// (random weights; no tokenizer ids, no sliding window) and the machine's memory read bandwidth,
// the limit batch-1 decoding is compared with.
#ifndef RL_BENCH_UTIL_H
#define RL_BENCH_UTIL_H

#include "kernels/rl_error.h"
#include "policy/model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

// A Qwen2 shape: hidden C, L layers, NH query heads and NKV key/value heads of head_dim hd,
// FF intermediate, V vocabulary, tied (or not) embeddings, positions up to max_pos; q/k/v bias,
// RoPE theta 1e4, RMSNorm eps 1e-6 as Qwen2.
static inline rl_model_config bench_qwen2_config(int C, int L, int NH, int NKV, int hd, int FF,
                                                 int V, int tied, int max_pos) {
    rl_model_config c = {0};
    c.hidden_size = C;
    c.num_hidden_layers = L;
    c.num_attention_heads = NH;
    c.num_key_value_heads = NKV;
    c.head_dim = hd;
    c.intermediate_size = FF;
    c.vocab_size = V;
    c.max_position_embeddings = max_pos;
    c.rope_theta = 10000.0;
    c.rms_norm_eps = 1e-6;
    c.tie_word_embeddings = tied;
    c.attention_bias = 1;
    c.bos_token_id = c.eos_token_id = -1;
    return c;
}

// The machine's read bandwidth in GB/s: the best of 5 sums over a 512 MB buffer (far larger than
// most caches), on as many threads as the kernels use.
static inline double bench_read_bandwidth_gbs(void) {
    size_t n = (size_t)64 << 20; // 64-bit words: 512 MB
    uint64_t *x = rl_malloc(n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) x[i] = i * 0x9E3779B97F4A7C15ull;
    double best = 1e30;
    uint64_t sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = rl_now();
        uint64_t acc = 0; // integer sums vectorise without reassociation concerns
#pragma omp parallel for simd reduction(+ : acc) schedule(static)
        for (size_t i = 0; i < n; i++) acc += x[i];
        double t = rl_now() - t0;
        sink ^= acc;
        if (t < best) best = t;
    }
    free(x);
    if (sink == 42) printf(" "); // keeps the sums alive
    return (double)n * sizeof(uint64_t) / best / 1e9;
}

#endif
