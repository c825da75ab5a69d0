// Batch-invariant matrix product for the decode path: out[n, o] = inp[n, :] . weight[o, :] +
// bias[o], where every output's bits depend only on its row of inp and on the weights, never on
// how many rows the call has, which rows they are, or the thread count. OpenBLAS cannot promise
// that: its kernels, blocking and small-matrix paths change with M, and so do the bits of a row
// (tests/test_paged.c shows it on the Haswell and SkylakeX kernels). The rollout engine needs it
// so that a sample does not depend on what it was batched with; see kernels/kernels.h.
//
// The summation order of one output is fixed: sixteen lanes, lane j accumulating
// fma(inp[k], weight[o, k], acc) over k = j, j + 16, j + 32, ... < C in increasing k (starting
// from +0), then the lanes are added as a tree (j + 8, then + 4, + 2, + 1), then the bias. The
// AVX-512 path (4 rows x 4 outputs of accumulators), the AVX2 path (2 x 2) and the portable path
// (fmaf, one output at a time) all compute exactly that order, so they give the same bits; the
// vector paths load the tail of a row with a mask, and a zero product added to an accumulator
// that started at +0 leaves it unchanged. Threads split the outputs into column blocks.
#include "kernels/cpu/cpu_common.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

enum { LANES = 16, COL_BLOCK = 32 };

// The tiles' loops over their rows and outputs must unroll completely, or the accumulators live
// in memory instead of registers.
#define RL_UNROLL _Pragma("GCC unroll 16")

#if defined(__AVX512F__)

static inline float tree512(__m512 a) {
    __m256 lo = _mm512_castps512_ps256(a);
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

// The lane trees of four accumulators at once (the same pairs as tree512, shuffled so that one
// add serves several accumulators): lane i of the result is the sum of a[i].
static inline __m128 tree512x4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    // + 8: [a0 lanes 0-7 | a1 lanes 0-7] + [a0 lanes 8-15 | a1 lanes 8-15]
    __m512 s01 =
        _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44), _mm512_shuffle_f32x4(a0, a1, 0xEE));
    __m512 s23 =
        _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44), _mm512_shuffle_f32x4(a2, a3, 0xEE));
    // + 4: 128-bit block i holds accumulator i's four partial sums
    __m512 s4 =
        _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, 0x88), _mm512_shuffle_f32x4(s01, s23, 0xDD));
    // + 2, + 1 inside each block
    __m512 s2 = _mm512_add_ps(s4, _mm512_permute_ps(s4, 0x4E));
    __m512 s1 = _mm512_add_ps(s2, _mm512_permute_ps(s2, 0xB1));
    __m512i first = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(first, s1));
}

// RB rows x CB outputs; x rows are C apart, weight rows C apart, out rows ldo apart.
#define RL_DEF_TILE512(RB, CB)                                                                     \
    static void tile512_##RB##x##CB(float *out, int ldo, const float *x, const float *w, int C,    \
                                    const float *bias) {                                           \
        __m512 acc[RB][CB];                                                                        \
        RL_UNROLL for (int r = 0; r < RB; r++) RL_UNROLL for (int c = 0; c < CB; c++) acc[r][c] =  \
            _mm512_setzero_ps();                                                                   \
        for (int k = 0; k < C; k += LANES) {                                                       \
            __mmask16 m = C - k >= LANES ? (__mmask16)0xFFFF : (__mmask16)((1u << (C - k)) - 1u);  \
            __m512 xv[RB], wv[CB];                                                                 \
            RL_UNROLL for (int r = 0; r < RB; r++) xv[r] =                                         \
                _mm512_maskz_loadu_ps(m, x + (size_t)r * C + k);                                   \
            RL_UNROLL for (int c = 0; c < CB; c++) wv[c] =                                         \
                _mm512_maskz_loadu_ps(m, w + (size_t)c * C + k);                                   \
            RL_UNROLL for (int r = 0; r < RB; r++) RL_UNROLL for (int c = 0; c < CB; c++)          \
                acc[r][c] = _mm512_fmadd_ps(xv[r], wv[c], acc[r][c]);                              \
        }                                                                                          \
        RL_UNROLL for (int r = 0; r < RB; r++) {                                                   \
            if (CB == 4) {                                                                         \
                __m128 sum = tree512x4(acc[r][0], acc[r][CB > 1 ? 1 : 0], acc[r][CB > 2 ? 2 : 0],  \
                                       acc[r][CB > 3 ? 3 : 0]);                                    \
                if (bias) sum = _mm_add_ps(sum, _mm_loadu_ps(bias));                               \
                _mm_storeu_ps(out + (size_t)r * ldo, sum);                                         \
            } else                                                                                 \
                RL_UNROLL for (int c = 0; c < CB; c++) out[(size_t)r * ldo + c] =                  \
                    tree512(acc[r][c]) + (bias ? bias[c] : 0.0f);                                  \
        }                                                                                          \
    }
RL_DEF_TILE512(4, 4)
RL_DEF_TILE512(1, 4)
RL_DEF_TILE512(1, 1)
#undef RL_DEF_TILE512

#define TILE_RB   4
#define TILE_CB   4
#define TILE_FULL tile512_4x4
#define TILE_ROW  tile512_1x4
#define TILE_ONE  tile512_1x1

#elif defined(__AVX2__) && defined(__FMA__)

// A 16-lane accumulator is two 8-lane halves: lanes 0-7 and 8-15.
static inline float tree256(__m256 lo, __m256 hi) {
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

// Loads lanes [k, k + 8) of p with zeros past C.
static inline __m256 load8(const float *p, int k, int C) {
    if (C - k >= 8) return _mm256_loadu_ps(p + k);
    float t[8] = {0};
    for (int j = 0; k + j < C; j++) t[j] = p[k + j];
    return _mm256_loadu_ps(t);
}

#define RL_DEF_TILE256(RB, CB)                                                                     \
    static void tile256_##RB##x##CB(float *out, int ldo, const float *x, const float *w, int C,    \
                                    const float *bias) {                                           \
        __m256 lo[RB][CB], hi[RB][CB];                                                             \
        RL_UNROLL for (int r = 0; r < RB; r++) RL_UNROLL for (int c = 0; c < CB; c++) lo[r][c] =   \
            hi[r][c] = _mm256_setzero_ps();                                                        \
        for (int k = 0; k < C; k += LANES) {                                                       \
            __m256 xl[RB], xh[RB], wl[CB], wh[CB];                                                 \
            RL_UNROLL for (int r = 0; r < RB; r++) {                                               \
                xl[r] = load8(x + (size_t)r * C, k, C);                                            \
                xh[r] = load8(x + (size_t)r * C, k + 8, C);                                        \
            }                                                                                      \
            RL_UNROLL for (int c = 0; c < CB; c++) {                                               \
                wl[c] = load8(w + (size_t)c * C, k, C);                                            \
                wh[c] = load8(w + (size_t)c * C, k + 8, C);                                        \
            }                                                                                      \
            RL_UNROLL for (int r = 0; r < RB; r++) RL_UNROLL for (int c = 0; c < CB; c++) {        \
                lo[r][c] = _mm256_fmadd_ps(xl[r], wl[c], lo[r][c]);                                \
                hi[r][c] = _mm256_fmadd_ps(xh[r], wh[c], hi[r][c]);                                \
            }                                                                                      \
        }                                                                                          \
        RL_UNROLL for (int r = 0; r < RB; r++) RL_UNROLL for (int c = 0; c < CB; c++)              \
            out[(size_t)r * ldo + c] = tree256(lo[r][c], hi[r][c]) + (bias ? bias[c] : 0.0f);      \
    }
RL_DEF_TILE256(2, 2)
RL_DEF_TILE256(1, 2)
RL_DEF_TILE256(1, 1)
#undef RL_DEF_TILE256

#define TILE_RB   2
#define TILE_CB   2
#define TILE_FULL tile256_2x2
#define TILE_ROW  tile256_1x2
#define TILE_ONE  tile256_1x1

#else

// The lane tree of one output, in the portable order (a[j] + a[j + 8], ..., s[0] + s[1]).
static float lane_tree(const float *a) {
    float s8[8], s4[4], s2[2];
    for (int j = 0; j < 8; j++) s8[j] = a[j] + a[j + 8];
    for (int j = 0; j < 4; j++) s4[j] = s8[j] + s8[j + 4];
    for (int j = 0; j < 2; j++) s2[j] = s4[j] + s4[j + 2];
    return s2[0] + s2[1];
}

// One output, portable: the reference order every vector path reproduces.
static float dot_portable(const float *x, const float *w, int C) {
    float acc[LANES] = {0};
    for (int k = 0; k < C; k++) acc[k % LANES] = fmaf(x[k], w[k], acc[k % LANES]);
    return lane_tree(acc);
}

static void tile_one_portable(float *out, int ldo, const float *x, const float *w, int C,
                              const float *bias) {
    (void)ldo;
    out[0] = dot_portable(x, w, C) + (bias ? bias[0] : 0.0f);
}

#define TILE_RB   1
#define TILE_CB   1
#define TILE_FULL tile_one_portable
#define TILE_ROW  tile_one_portable
#define TILE_ONE  tile_one_portable

#endif

typedef void tile_fn(float *out, int ldo, const float *x, const float *w, int C, const float *bias);

// Outputs [o0, o1) of rb rows (x, y at their first row): tiles of TILE_CB outputs, then one
// output at a time.
static void tile_rows(tile_fn *tile, int rb, float *y, const float *x, const float *weight,
                      const float *bias, int C, int OC, int o0, int o1) {
    int o = o0;
    for (; o + TILE_CB <= o1; o += TILE_CB)
        tile(y + o, OC, x, weight + (size_t)o * C, C, bias ? bias + o : NULL);
    for (; o < o1; o++)
        for (int r = 0; r < rb; r++)
            TILE_ONE(y + (size_t)r * OC + o, OC, x + (size_t)r * C, weight + (size_t)o * C, C,
                     bias ? bias + o : NULL);
}

// Outputs [o0, o1) of every row: tiles of TILE_RB rows, then the remaining rows one at a time.
static void column_block(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC, int o0, int o1) {
    int n = 0;
    for (; n + TILE_RB <= N; n += TILE_RB)
        tile_rows(TILE_FULL, TILE_RB, out + (size_t)n * OC, inp + (size_t)n * C, weight, bias, C,
                  OC, o0, o1);
    for (; n < N; n++)
        tile_rows(TILE_ROW, 1, out + (size_t)n * OC, inp + (size_t)n * C, weight, bias, C, OC, o0,
                  o1);
}

void matmul_rows_cpu(const rl_backend *be, void *out_, rl_dtype out_dt, const void *inp_,
                     const void *weight_, const void *bias_, int N, int C, int OC) {
    (void)be;
    if (out_dt != RL_F32) { // the CPU's act is float32 (kernels.h)
        fprintf(stderr, "rlpipe: matmul_rows_cpu: out must be float32 on the CPU (got %s)\n",
                rl_dtype_name(out_dt));
        exit(1);
    }
    float *out = out_;
    const float *inp = inp_, *weight = weight_, *bias = bias_;
    if (N <= 0 || OC <= 0) return;
    int nblocks = (OC + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * OC * (size_t)C >= 8 * RL_CPU_PAR_MIN)
    for (int b = 0; b < nblocks; b++) {
        int o0 = b * COL_BLOCK, o1 = o0 + COL_BLOCK < OC ? o0 + COL_BLOCK : OC;
        column_block(out, inp, weight, bias, N, C, OC, o0, o1);
    }
}
