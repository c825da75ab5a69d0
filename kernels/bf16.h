/*
 * bf16: bfloat16 <-> float32 conversions as inline functions over the raw 16-bit pattern (the
 * upper half of a float32), compiled the same way in C, CUDA host and CUDA device code, so the
 * CPU reference and the GPU kernels round identically:
 *   - rl_bf16_from_f32: round to nearest even, as __float2bfloat16 (NaN stays a quiet NaN);
 *   - rl_bf16_stochastic: stochastic rounding for the optimizer's working copy (llm.c's
 *     adamw.cuh idea): add 16 random bits below the kept mantissa, then truncate, so x rounds
 *     up with probability equal to its distance from the lower neighbour; E[result] = x. The
 *     bits come from Philox4x32-10 (rl_philox4x32, kernels/rng.h) keyed by a seed, so it is
 *     reproducible.
 *
 * Owns: nothing (inline functions).
 */
#ifndef RL_BF16_H
#define RL_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/rng.h"

RL_HOST_DEVICE static inline uint32_t rl_f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

RL_HOST_DEVICE static inline float rl_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

// Round to nearest, ties to even; NaN stays a (quiet) NaN, infinities stay infinite.
RL_HOST_DEVICE static inline uint16_t rl_bf16_from_f32(float x) {
    uint32_t u = rl_f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

// Stochastic rounding with the random word r (its low 16 bits are used). Non-finite values
// (NaN, +-inf) round to nearest instead: adding bits to them could turn a NaN into a number.
RL_HOST_DEVICE static inline uint16_t rl_bf16_round_bits(float x, uint32_t r) {
    uint32_t u = rl_f32_bits(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return rl_bf16_from_f32(x);
    return (uint16_t)((u + (r & 0xffffu)) >> 16);
}

// Stochastic rounding of element i of a tensor seeded with seed: the random word is word i % 4
// of Philox4x32-10(key = seed, counter = i / 4).
RL_HOST_DEVICE static inline uint16_t rl_bf16_stochastic(float x, uint64_t seed, uint64_t i) {
    uint32_t r[4];
    rl_philox4x32(seed, i >> 2, r);
    return rl_bf16_round_bits(x, r[i & 3u]);
}

#endif
