// test_matmul_rows: the CPU's batch-invariant matmul_rows (kernels/cpu/matmul_rows_cpu.c).
//   - against a double-precision naive product on random inputs (many shapes: C below, at and
//     past multiples of 16, output counts that are not multiples of the tile, 1..9 rows);
//   - bit for bit against an independent scalar implementation of the summation order the kernel
//     documents (16 fmaf lanes, then the tree +8, +4, +2, +1, then the bias), so every vector path
//     and tail tile computes that order and nothing else;
//   - batch invariance: a row's outputs are the same bits alone, at any position among other
//     rows, with 1 or 2 threads.
#include "kernels/backend.h"
#include "kernels/rng.h"
#include "test_util.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>

static const rl_backend *BE;
static rl_rng RNG;

static void fill(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float u = 0.05f + 0.95f * (float)rl_rng_double(&RNG);
        x[i] = rl_rng_u32(&RNG) & 1 ? u : -u;
    }
}

// The order kernels/cpu/matmul_rows_cpu.c documents, written out independently.
static float documented_dot(const float *x, const float *w, int C) {
    float lane[16];
    for (int j = 0; j < 16; j++) lane[j] = 0.0f;
    for (int k = 0; k < C; k++) lane[k % 16] = fmaf(x[k], w[k], lane[k % 16]);
    for (int step = 8; step >= 1; step /= 2)
        for (int j = 0; j < step; j++) lane[j] = lane[j] + lane[j + step];
    return lane[0];
}

static int same_bits(float a, float b) {
    return memcmp(&a, &b, sizeof a) == 0;
}

static void check_shape(int N, int C, int OC, int with_bias) {
    float *x = rl_malloc((size_t)N * C * sizeof(float));
    float *w = rl_malloc((size_t)OC * C * sizeof(float));
    float *b = rl_malloc((size_t)OC * sizeof(float));
    float *out = rl_malloc((size_t)N * OC * sizeof(float));
    fill(x, (size_t)N * C);
    fill(w, (size_t)OC * C);
    fill(b, (size_t)OC);
    BE->matmul_rows(BE, out, RL_F32, x, w, with_bias ? b : NULL, N, C, OC);
    double worst = 0.0;
    int order_diff = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double ref = with_bias ? b[o] : 0.0, mag = fabs(ref);
            for (int k = 0; k < C; k++) {
                double p = (double)x[(size_t)n * C + k] * w[(size_t)o * C + k];
                ref += p;
                mag += fabs(p);
            }
            float got = out[(size_t)n * OC + o];
            double err = fabs(got - ref) / (mag > 1e-30 ? mag : 1.0);
            if (!(err <= worst)) worst = err;
            float doc = documented_dot(x + (size_t)n * C, w + (size_t)o * C, C);
            if (with_bias) doc = doc + b[o];
            order_diff += !same_bits(got, doc);
        }
    CHECK(worst < 1e-6, "N %d C %d OC %d bias %d: error %.3g against the double product", N, C, OC,
          with_bias, worst);
    CHECK(order_diff == 0, "N %d C %d OC %d bias %d: %d outputs differ from the documented order",
          N, C, OC, with_bias, order_diff);
    free(x);
    free(w);
    free(b);
    free(out);
}

static void test_against_references(void) {
    const int Cs[] = {1, 7, 15, 16, 17, 33, 64, 100, 128, 200};
    const int OCs[] = {1, 3, 4, 5, 31, 32, 33, 70};
    for (int N = 1; N <= 9; N++)
        for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++)
            for (size_t oi = 0; oi < sizeof OCs / sizeof OCs[0]; oi++)
                check_shape(N, Cs[ci], OCs[oi], (N + (int)ci + (int)oi) & 1);
    check_shape(37, 896, 130, 1); // a real hidden size, many column blocks
}

// Row r of a batch of N rows, computed inside batches of every size and offset and with 1 or 2
// threads, always has the bits it has alone.
static void test_batch_invariance(void) {
    enum { MAXN = 70, C = 144, OC = 97 };
    float *x = rl_malloc((size_t)MAXN * C * sizeof(float));
    float *w = rl_malloc((size_t)OC * C * sizeof(float));
    float *b = rl_malloc((size_t)OC * sizeof(float));
    float *alone = rl_malloc((size_t)MAXN * OC * sizeof(float));
    float *out = rl_malloc((size_t)MAXN * OC * sizeof(float));
    fill(x, (size_t)MAXN * C);
    fill(w, (size_t)OC * C);
    fill(b, OC);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    for (int r = 0; r < MAXN; r++)
        BE->matmul_rows(BE, alone + (size_t)r * OC, RL_F32, x + (size_t)r * C, w, b, 1, C, OC);
    int bad = 0, calls = 0;
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        for (int N = 1; N <= MAXN; N += (N < 10 ? 1 : 7))
            for (int start = 0; start + N <= MAXN; start += (N > 20 ? 13 : 5)) {
                BE->matmul_rows(BE, out, RL_F32, x + (size_t)start * C, w, b, N, C, OC);
                calls++;
                bad += memcmp(out, alone + (size_t)start * OC, (size_t)N * OC * sizeof(float)) != 0;
            }
    }
    omp_set_num_threads(threads);
    CHECK(bad == 0, "%d of %d calls gave a row other bits than it has alone", bad, calls);
    free(x);
    free(w);
    free(b);
    free(alone);
    free(out);
}

int main(void) {
    rl_err err;
    BE = rl_backend_get("cpu", &err);
    if (!BE) {
        fprintf(stderr, "skip: %s\n", err.msg);
        return 77;
    }
    RNG = rl_rng_stream(4321, RL_RNG_INIT, 0, 0);
    CHECK(BE->matmul_rows != NULL, "the CPU backend has matmul_rows");
    if (BE->matmul_rows) {
        RUN(test_against_references);
        RUN(test_batch_invariance);
    }
    rl_backend_release(BE);
    return test_summary();
}
