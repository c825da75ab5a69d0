/*
 * philox: the Philox4x32-10 block function (Salmon et al., "Parallel random numbers: as easy as
 * 1, 2, 3", SC'11) as one inline function that compiles as C, as CUDA host code and as CUDA
 * device code, so a GPU kernel and its CPU reference draw the very same bits for a (key,
 * counter) pair. kernels/rng.h builds its named streams on it (rl_philox4x32).
 *
 * Owns: nothing (an inline function).
 */
#ifndef RL_PHILOX_H
#define RL_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__)
#define RL_HOST_DEVICE __host__ __device__
#else
#define RL_HOST_DEVICE
#endif

// 128 random bits for (key, counter): ten rounds of Philox4x32 with the published constants.
RL_HOST_DEVICE static inline void rl_philox4x32_block(uint64_t key, uint64_t counter,
                                                      uint32_t out[4]) {
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

#endif
