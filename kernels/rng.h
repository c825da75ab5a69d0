/*
 * rng: counter-based random numbers (Philox4x32-10), one independent stream per purpose.
 *
 * A stream is named by (seed, purpose, a, b): e.g. (run seed, RL_RNG_SAMPLE, prompt id, sample
 * index). The n-th draw of a stream depends only on that name and n, never on what other streams
 * did, so a resumed run or a differently batched rollout draws exactly the same numbers. The
 * state is two integers, so it is trivially checkpointed.
 *
 * The generator itself, rl_philox4x32, and the uniform float of a stream's n-th draw,
 * rl_philox_uniform, are static inline functions usable from C and from CUDA device code: the
 * backends' sampling op (kernels/kernels.h, rl_sample_fn) draws with them, so a seed gives the
 * same uniform numbers on the CPU and on the GPU.
 *
 * Owns: nothing global; an rl_rng is a plain value.
 */
#ifndef RL_RNG_H
#define RL_RNG_H

#include <stdint.h>

// Purposes: distinct stream families so that, e.g., changing the data order never changes init.
enum {
    RL_RNG_INIT = 1,    // parameter initialisation
    RL_RNG_DATA = 2,    // data order, task generation for training
    RL_RNG_SAMPLE = 3,  // token sampling during rollouts and eval
    RL_RNG_HELDOUT = 4, // the fixed held-out task set
    RL_RNG_TEACHER = 5, // teacher traces and their deliberate mistakes
    RL_RNG_SPLIT = 6,   // train/held-out split of datasets
};

typedef struct rl_rng {
    uint64_t key;     // derived from (seed, purpose, a, b)
    uint64_t counter; // number of 128-bit blocks consumed
    uint32_t buf[4];  // current block
    int used;         // words of buf already handed out (4 = empty)
} rl_rng;

// Host and device (CUDA) qualifiers for the inline functions below; empty in C.
#if defined(__CUDACC__)
#define RL_HOST_DEVICE __host__ __device__
#else
#define RL_HOST_DEVICE
#endif

// The raw generator, Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
// 3", SC'11): 128 random bits for a (key, counter) pair.
static inline RL_HOST_DEVICE void rl_philox4x32(uint64_t key, uint64_t counter, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0x243F6A88u,
             c3 = 0x85A308D3u;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

// The uniform float in [0, 1) that rl_rng_float returns as a stream's word number `draw` (the
// count of 32-bit words drawn before it; see rl_rng_position): word draw % 4 of the block at
// counter draw / 4, its top 24 bits.
static inline RL_HOST_DEVICE float rl_philox_uniform(uint64_t key, uint64_t draw) {
    uint32_t w[4];
    rl_philox4x32(key, draw / 4, w);
    return (float)(w[draw % 4] >> 8) * (1.0f / 16777216.0f);
}

// A stream named by (seed, purpose, a, b), positioned at draw 0.
rl_rng rl_rng_stream(uint64_t seed, uint32_t purpose, uint64_t a, uint64_t b);

uint32_t rl_rng_u32(rl_rng *r);
uint64_t rl_rng_u64(rl_rng *r);
// Uniform in [0, 1) with 24 (float) or 53 (double) random bits.
float rl_rng_float(rl_rng *r);
double rl_rng_double(rl_rng *r);
// Uniform integer in [0, n) without modulo bias; n > 0.
uint32_t rl_rng_below(rl_rng *r, uint32_t n);
// Uniform integer in [lo, hi] inclusive.
int rl_rng_range(rl_rng *r, int lo, int hi);
// Standard normal (Box-Muller).
double rl_rng_normal(rl_rng *r);

// Number of 32-bit words drawn from the stream so far: the next rl_rng_float(r) equals
// rl_philox_uniform(r->key, rl_rng_position(r)). This is how a caller hands a stream to the
// sampling op (kernels/kernels.h, rl_sample_fn) and then moves it on with rl_rng_advance.
uint64_t rl_rng_position(const rl_rng *r);

// Moves the stream past `words` more 32-bit words, as that many rl_rng_u32 calls would.
void rl_rng_advance(rl_rng *r, uint64_t words);

#endif
