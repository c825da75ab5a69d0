/*
 * emu/cuda_bf16.h: a CPU stand-in for the part of CUDA's cuda_bf16.h that kernels/cuda/ uses:
 * the __nv_bfloat16 storage type (the upper 16 bits of a float32) and its conversions, with
 * round-to-nearest-even like __float2bfloat16 (NaN stays a quiet NaN). Arithmetic on
 * __nv_bfloat16 goes through float, as the kernels do. Only check.sh puts this folder on the
 * include path.
 *
 * Owns: nothing (inline functions only).
 */
#ifndef RL_EMU_CUDA_BF16_H
#define RL_EMU_CUDA_BF16_H

#include <stdint.h>
#include <string.h>

struct __nv_bfloat16 {
    uint16_t bits;
};

struct __nv_bfloat162 {
    __nv_bfloat16 x, y;
};

static inline float __bfloat162float(__nv_bfloat16 h) {
    uint32_t u = (uint32_t)h.bits << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline __nv_bfloat16 __float2bfloat16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    __nv_bfloat16 h;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        h.bits = (uint16_t)((u >> 16) | 0x40u); // quiet NaN
        return h;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    h.bits = (uint16_t)(u >> 16);
    return h;
}

static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    return __float2bfloat16(f);
}

// Truncation (round toward zero), the base of stochastic rounding.
static inline __nv_bfloat16 __float2bfloat16_rz(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    __nv_bfloat16 h;
    h.bits = (uint16_t)(u >> 16);
    return h;
}

#endif
