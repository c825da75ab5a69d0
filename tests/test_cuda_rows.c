// test_cuda_rows: the CUDA backend's batch-invariant matmul_rows (kernels/cuda/matmul_rows_cuda.cu)
// against the CPU's (kernels/cpu/matmul_rows_cpu.c), which both sum every output in the same
// documented order:
//   - float32 backend: the CPU's bits exactly, for many shapes (C below, at and past multiples
//     of 16; row and output counts that are not multiples of the 4 x 4 tile), with and without
//     bias;
//   - bfloat16 backend, on bf16-valued operands: a float32 result with the CPU's bits, a bf16
//     result equal to the CPU's float rounded once to bf16;
//   - batch invariance on the device: a row's outputs are the same alone and among other rows.
// Without a GPU it runs in the emulator (kernels/cuda/emu/check.sh); in a build with the CUDA
// backend and no GPU it checks the clean failure and is skipped.
#include "kernels/backend.h"
#include "kernels/bf16.h"
#include "kernels/rng.h"
#include "test_backend_util.h"
#include "test_util.h"

#include <stdint.h>

static const rl_backend *CPU, *G32, *G16;
static rl_rng RNG;

static void fill(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float u = 0.05f + 0.95f * (float)rl_rng_double(&RNG);
        x[i] = rl_rng_u32(&RNG) & 1 ? u : -u;
    }
}

// x rounded to bf16 in place; bits receives the bf16 encodings.
static void to_bf16(float *x, uint16_t *bits, size_t n) {
    for (size_t i = 0; i < n; i++) {
        bits[i] = rl_bf16_from_f32(x[i]);
        x[i] = rl_bf16_to_f32(bits[i]);
    }
}

static void check_shape(int N, int C, int OC, int with_bias) {
    size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *x = rl_malloc(nx * sizeof(float)), *w = rl_malloc(nw * sizeof(float));
    float *b = rl_malloc((size_t)OC * sizeof(float));
    uint16_t *xh = rl_malloc(nx * 2), *wh = rl_malloc(nw * 2), *bh = rl_malloc((size_t)OC * 2);
    float *ref = rl_malloc(no * sizeof(float)), *got = rl_malloc(no * sizeof(float));
    uint16_t *got16 = rl_malloc(no * 2);
    fill(x, nx);
    fill(w, nw);
    fill(b, (size_t)OC);

    // float32: the CPU's bits
    CPU->matmul_rows(CPU, ref, RL_F32, x, w, with_bias ? b : NULL, N, C, OC);
    void *dx = test_up(G32, x, nx * 4), *dw = test_up(G32, w, nw * 4),
         *db = test_up(G32, b, OC * 4);
    void *dout = G32->mem_alloc(G32, no * 4);
    G32->matmul_rows(G32, dout, RL_F32, dx, dw, with_bias ? db : NULL, N, C, OC);
    G32->mem_download(G32, got, dout, no * 4);
    CHECK(memcmp(got, ref, no * 4) == 0, "float32 N %d C %d OC %d bias %d: not the CPU's bits", N,
          C, OC, with_bias);
    G32->mem_free(G32, dx);
    G32->mem_free(G32, dw);
    G32->mem_free(G32, db);
    G32->mem_free(G32, dout);

    // bfloat16 operands: float32 result = the CPU's bits on the same values; bf16 result = it
    // rounded once
    to_bf16(x, xh, nx);
    to_bf16(w, wh, nw);
    to_bf16(b, bh, (size_t)OC);
    CPU->matmul_rows(CPU, ref, RL_F32, x, w, with_bias ? b : NULL, N, C, OC);
    dx = test_up(G16, xh, nx * 2), dw = test_up(G16, wh, nw * 2), db = test_up(G16, bh, OC * 2);
    dout = G16->mem_alloc(G16, no * 4);
    G16->matmul_rows(G16, dout, RL_F32, dx, dw, with_bias ? db : NULL, N, C, OC);
    G16->mem_download(G16, got, dout, no * 4);
    CHECK(memcmp(got, ref, no * 4) == 0, "bf16 -> float32 N %d C %d OC %d: not the CPU's bits", N,
          C, OC);
    G16->matmul_rows(G16, dout, RL_BF16, dx, dw, with_bias ? db : NULL, N, C, OC);
    G16->mem_download(G16, got16, dout, no * 2);
    int bad = 0;
    for (size_t i = 0; i < no; i++) bad += got16[i] != rl_bf16_from_f32(ref[i]);
    CHECK(bad == 0, "bf16 -> bf16 N %d C %d OC %d: %d outputs are not the CPU's sum rounded", N, C,
          OC, bad);
    G16->mem_free(G16, dx);
    G16->mem_free(G16, dw);
    G16->mem_free(G16, db);
    G16->mem_free(G16, dout);
    free(x);
    free(w);
    free(b);
    free(xh);
    free(wh);
    free(bh);
    free(ref);
    free(got);
    free(got16);
}

static void test_cpu_bits(void) {
    const int Cs[] = {1, 15, 16, 17, 100};
    const int OCs[] = {1, 3, 4, 5, 33};
    for (int N = 1; N <= 6; N++)
        for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++)
            for (size_t oi = 0; oi < sizeof OCs / sizeof OCs[0]; oi++)
                check_shape(N, Cs[ci], OCs[oi], (N + (int)ci + (int)oi) & 1);
    check_shape(13, 128, 70, 1);
}

static void test_device_batch_invariance(void) {
    enum { MAXN = 11, C = 48, OC = 21 };
    float x[MAXN * C], w[OC * C], alone[MAXN * OC], out[MAXN * OC];
    fill(x, MAXN * C);
    fill(w, OC * C);
    void *dx = test_up(G32, x, sizeof x), *dw = test_up(G32, w, sizeof w);
    void *dout = G32->mem_alloc(G32, sizeof out);
    for (int r = 0; r < MAXN; r++) {
        G32->matmul_rows(G32, dout, RL_F32, (const float *)dx + (size_t)r * C, dw, NULL, 1, C, OC);
        G32->mem_download(G32, alone + (size_t)r * OC, dout, OC * sizeof(float));
    }
    int bad = 0, calls = 0;
    for (int N = 2; N <= MAXN; N++)
        for (int start = 0; start + N <= MAXN; start += 3) {
            G32->matmul_rows(G32, dout, RL_F32, (const float *)dx + (size_t)start * C, dw, NULL, N,
                             C, OC);
            G32->mem_download(G32, out, dout, (size_t)N * OC * sizeof(float));
            bad += memcmp(out, alone + (size_t)start * OC, (size_t)N * OC * sizeof(float)) != 0;
            calls++;
        }
    CHECK(bad == 0, "%d of %d device calls changed a row's bits with its batch", bad, calls);
    G32->mem_free(G32, dx);
    G32->mem_free(G32, dw);
    G32->mem_free(G32, dout);
}

int main(void) {
    rl_err err;
    CPU = rl_backend_cpu();
    int status;
    G32 = test_open_cuda(&status);
    if (!G32) return status;
    G16 = rl_backend_cuda_open(0, 0, RL_BF16, &err);
    CHECK(G16 != NULL, "rl_backend_cuda_open(RL_BF16): %s", err.msg);
    RNG = rl_rng_stream(77, RL_RNG_INIT, 3, 0);
    CHECK(G32->matmul_rows && CPU->matmul_rows, "both backends have matmul_rows");
    if (G16 && G32->matmul_rows && CPU->matmul_rows) {
        RUN(test_cpu_bits);
        RUN(test_device_batch_invariance);
    }
    if (G16) rl_backend_release(G16);
    rl_backend_release(G32);
    return test_summary();
}
