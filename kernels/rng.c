// rng: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
#include "kernels/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void rl_philox4x32(uint64_t key, uint64_t counter, uint32_t out[4]) {
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

rl_rng rl_rng_stream(uint64_t seed, uint32_t purpose, uint64_t a, uint64_t b) {
    uint64_t k = splitmix64(seed ^ 0x5EEDull);
    k = splitmix64(k ^ ((uint64_t)purpose << 48));
    k = splitmix64(k ^ a);
    k = splitmix64(k ^ (b * 0x9E3779B97F4A7C15ull));
    rl_rng r = {.key = k, .counter = 0, .used = 4};
    return r;
}

uint32_t rl_rng_u32(rl_rng *r) {
    if (r->used >= 4) {
        rl_philox4x32(r->key, r->counter++, r->buf);
        r->used = 0;
    }
    return r->buf[r->used++];
}

uint64_t rl_rng_u64(rl_rng *r) {
    uint64_t hi = rl_rng_u32(r);
    return (hi << 32) | rl_rng_u32(r);
}

float rl_rng_float(rl_rng *r) {
    return (float)(rl_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

double rl_rng_double(rl_rng *r) {
    return (double)(rl_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint32_t rl_rng_below(rl_rng *r, uint32_t n) {
    // Lemire's multiply-shift with rejection: unbiased for every n.
    uint64_t m = (uint64_t)rl_rng_u32(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)rl_rng_u32(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

int rl_rng_range(rl_rng *r, int lo, int hi) {
    return lo + (int)rl_rng_below(r, (uint32_t)(hi - lo + 1));
}

double rl_rng_normal(rl_rng *r) {
    double u1 = rl_rng_double(r), u2 = rl_rng_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
