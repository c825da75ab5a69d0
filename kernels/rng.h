/*
 * rng: counter-based random numbers (Philox4x32-10), one independent stream per purpose.
 *
 * A stream is named by (seed, purpose, a, b): e.g. (run seed, RL_RNG_SAMPLE, prompt id, sample
 * index). The n-th draw of a stream depends only on that name and n, never on what other streams
 * did, so a resumed run or a differently batched rollout draws exactly the same numbers. The
 * state is two integers, so it is trivially checkpointed.
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

// The raw generator: 128 random bits for a (key, counter) pair.
void rl_philox4x32(uint64_t key, uint64_t counter, uint32_t out[4]);

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

#endif
