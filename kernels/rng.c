// rng: named streams over the Philox4x32-10 generator of rng.h. See rng.h.
#include "kernels/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
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

uint64_t rl_rng_position(const rl_rng *r) {
    return r->used >= 4 ? r->counter * 4 : (r->counter - 1) * 4 + (uint64_t)r->used;
}

void rl_rng_advance(rl_rng *r, uint64_t words) {
    uint64_t pos = rl_rng_position(r) + words;
    if (pos % 4 == 0) {
        r->counter = pos / 4;
        r->used = 4;
    } else {
        rl_philox4x32(r->key, pos / 4, r->buf);
        r->counter = pos / 4 + 1;
        r->used = (int)(pos % 4);
    }
}
