// test_cuda_bf16: the CUDA backend opened with bfloat16 weights and activations
// (rl_backend_cuda_open(device, 0, RL_BF16)) against the CPU backend, the float32 reference, op by
// op; and the two ops of the precision seam (convert, adamw_update_master) on both CUDA types.
//
// Method. Random inputs (never zeros) are rounded to bf16 first; the CPU gets the rounded values
// as float32, the GPU the same values as bf16, so both start from identical numbers and the
// comparison measures the kernel's own error, not the input rounding. Arguments that are float32
// in the signature (rstd, lse, parameter gradients, masters, moments) are float32 on both.
//
// Tolerance rule (llm.c's test_gpt2.cu): every element must satisfy
//     |gpu - ref| <= atol + rtol * |ref|,   atol = a * mean|ref|
// where rtol and a are stated per op from its error growth:
//   - an act output is the float32 result rounded once to bf16: |error| <= U_BF16 * |ref|, with
//     U_BF16 = 2^-8 the unit roundoff of bf16's 8 significant bits, plus twice the float32 noise
//     f that the float32 pass (tests/test_cuda.c) already allows between the two backends'
//     summation orders and exp implementations (f = 1e-5 for row ops and products, 2e-5 / 3e-5
//     for attention): rtol = 2^-8 + 2f, atol = f * mean|ref| (cancellation). No op is allowed the
//     error of two roundings: each rounds once, on store;
//   - a float32 output of bf16 operands (gemm with c_dt RL_F32, dweight, dbias, rstd, lse, the
//     optimizer state) has no bf16 rounding at all: the float32 tolerance alone. A kernel that
//     rounded such an output to bf16 fails these checks (2^-8 >> 1e-5);
//   - copies, gathers, the KV cache store, residual adds (a + b of two bf16 values is exact in
//     float32, so the GPU must give exactly RNE(ref)) and the embedding gradient (float32
//     additions in the CPU's order) must match bit for bit;
//   - the bf16 working copy of adamw_update_master must be, bit for bit, the stochastic rounding
//     of kernels/bf16.h (Philox4x32-10, the CPU reference) of the GPU's own float32 master, within
//     one bf16 ulp of the CPU's master, unbiased, and reproducible from its seed.
// Every comparison prints its worst element (error / allowed), so a GPU run's log shows margins.
//
// Without the CUDA backend or a device it exits 77 (skipped); tests/test_cuda.c checks the
// failure path itself.
#define _POSIX_C_SOURCE 200809L
#include "kernels/backend.h"
#include "kernels/bf16.h"
#include "kernels/rng.h"
#include "test_util.h"

#include <stdint.h>

#define U_BF16    (1.0 / 256.0) // unit roundoff of bfloat16: half its 2^-7 spacing at 1
#define F32_TOL   1e-5          // the float32 pass's tolerance for products and row ops
#define ATT_F_TOL 2e-5          // ... for the attention forward (float32 pass: 2e-5)
#define ATT_B_TOL 3e-5          // ... for the attention backward (float32 pass: 3e-5)

static const rl_backend *CPU, *G16, *G32;
static rl_rng RNG;

// ------------------------------------------------------------------------------------------------
// The same numbers on the CPU (float32) and on the bf16 GPU (act: bf16; otherwise float32)

typedef struct xbuf {
    float *cpu; // CPU backend memory, float32 (NULL: absent argument)
    void *gpu;  // GPU memory: bf16 when act, float32 otherwise
    size_t n;
    int act;
} xbuf;

static const xbuf XNONE = {NULL, NULL, 0, 0};

static float round_bf16(float x) {
    return rl_bf16_to_f32(rl_bf16_from_f32(x));
}

static void rand_fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) {
        float u = 0.05f + 0.95f * rl_rng_float(&RNG);
        x[i] = scale * (rl_rng_u32(&RNG) & 1 ? u : -u);
    }
}

// Uploads h[n] (rounded to bf16 in place first when act) to both sides of b.
static void xb_set(xbuf b, float *h) {
    if (b.act) {
        uint16_t *bits = rl_malloc((b.n ? b.n : 1) * 2);
        for (size_t i = 0; i < b.n; i++) bits[i] = rl_bf16_from_f32(h[i]), h[i] = round_bf16(h[i]);
        G16->mem_upload(G16, b.gpu, bits, b.n * 2);
        free(bits);
    } else {
        G16->mem_upload(G16, b.gpu, h, b.n * 4);
    }
    CPU->mem_upload(CPU, b.cpu, h, b.n * 4);
}

static xbuf xb_from(float *h, size_t n, int act) {
    xbuf b = {CPU->mem_alloc(CPU, (n ? n : 1) * 4),
              G16->mem_alloc(G16, (n ? n : 1) * (act ? 2 : 4)), n, act};
    xb_set(b, h);
    return b;
}

static xbuf xb_rand(size_t n, float scale, int act) {
    float *h = rl_malloc((n ? n : 1) * 4);
    rand_fill(h, n, scale);
    xbuf b = xb_from(h, n, act);
    free(h);
    return b;
}

static float *cpu_values(xbuf b) {
    float *h = rl_malloc((b.n ? b.n : 1) * 4);
    CPU->mem_download(CPU, h, b.cpu, b.n * 4);
    return h;
}

static float *gpu_values(xbuf b) {
    float *h = rl_malloc((b.n ? b.n : 1) * 4);
    if (b.act) {
        uint16_t *bits = rl_malloc((b.n ? b.n : 1) * 2);
        G16->mem_download(G16, bits, b.gpu, b.n * 2);
        for (size_t i = 0; i < b.n; i++) h[i] = rl_bf16_to_f32(bits[i]);
        free(bits);
    } else {
        G16->mem_download(G16, h, b.gpu, b.n * 4);
    }
    return h;
}

// The CPU's current values, rounded to bf16 when act, uploaded to both sides (the CPU's output
// of one op becomes both backends' input to the next, as the float32 pass does).
static void xb_share_cpu(xbuf b) {
    float *h = cpu_values(b);
    xb_set(b, h);
    free(h);
}

static void xb_free(xbuf *b) {
    CPU->mem_free(CPU, b->cpu);
    G16->mem_free(G16, b->gpu);
    *b = XNONE;
}

// ------------------------------------------------------------------------------------------------
// Comparisons

// |got - want| <= a * mean|want| + rtol * |want| for every element; non-finite values must
// agree. Prints the worst ratio error / allowed (<= 1 passes).
static void close_to(const char *what, const float *got, const float *want, size_t n, double rtol,
                     double a) {
    double mean = 0.0;
    for (size_t i = 0; i < n; i++) mean += fabs(want[i]);
    mean = n ? mean / n : 0.0;
    double atol = a * mean, worst = 0.0;
    size_t at = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(want[i]) || !isfinite(got[i])) {
            bad += !(isnan(want[i]) && isnan(got[i])) && got[i] != want[i];
            continue;
        }
        double r = fabs((double)got[i] - want[i]) / (atol + rtol * fabs(want[i]) + 1e-300);
        if (r > worst) worst = r, at = i;
    }
    fprintf(stderr, "  %-62s worst %.2f of allowed (rtol %.2e, atol %.1e)\n", what, worst, rtol,
            atol);
    CHECK(bad == 0, "%s: %zu elements non-finite on one side only", what, bad);
    CHECK(worst <= 1.0, "%s: element %zu got %.9g want %.9g: %.2f x the allowed error", what, at,
          n ? got[at] : 0.0, n ? want[at] : 0.0, worst);
}

// GPU against CPU under the rule above.
static void check_x(const char *what, xbuf b, double rtol, double a) {
    float *c = cpu_values(b), *g = gpu_values(b);
    close_to(what, g, c, b.n, rtol, a);
    free(c), free(g);
}

// The GPU holds exactly the CPU's values rounded to nearest even (act) or the same float32 bits.
static void check_exact(const char *what, xbuf b) {
    float *c = cpu_values(b), *g = gpu_values(b);
    size_t first = b.n;
    for (size_t i = 0; i < b.n && first == b.n; i++) {
        float want = b.act ? round_bf16(c[i]) : c[i];
        if (memcmp(&g[i], &want, 4) != 0) first = i;
    }
    fprintf(stderr, "  %-62s %s\n", what, first == b.n ? "exact" : "DIFFER");
    CHECK(first == b.n, "%s: element %zu got %.9g want %.9g", what, first,
          first < b.n ? g[first] : 0.0, first < b.n ? c[first] : 0.0);
    free(c), free(g);
}

// The GPU side of b holds the same bits as `before` (a host copy taken earlier): determinism.
static void check_same_gpu_bits(const char *what, xbuf b, const float *before) {
    float *now = gpu_values(b);
    CHECK(memcmp(now, before, b.n * 4) == 0, "%s: not the same bits", what);
    fprintf(stderr, "  %-62s %s\n", what, memcmp(now, before, b.n * 4) ? "DIFFER" : "same bits");
    free(now);
}

// Tolerance of an act output: one bf16 rounding (relative error <= U_BF16) of a float32 result
// that may itself differ from the CPU's by the float32 noise f; rounding cannot shrink that
// difference and may carry it to the neighbouring bf16 value, hence 2f.
static double act_rtol(double f) {
    return U_BF16 + 2.0 * f;
}

// ------------------------------------------------------------------------------------------------
// Backend and conversions

static void test_open(void) {
    CHECK(G16->act == RL_BF16, "the bf16 backend says act = %s", rl_dtype_name(G16->act));
    CHECK(G32->act == RL_F32, "the float32 backend says act = %s", rl_dtype_name(G32->act));
    rl_err err;
    const rl_backend *bad = rl_backend_cuda_open(0, 0, (rl_dtype)7, &err);
    CHECK(bad == NULL && err.kind == RL_EINPUT && strstr(err.msg, "activation type"),
          "an unknown activation type is refused: '%s'", err.msg);
    rl_backend_release(bad);
}

// kernels/bf16.h against hand-computed patterns: ties to even, carries into the exponent,
// overflow to infinity, NaN stays NaN, subnormals, signs.
static void test_bf16_rounding(void) {
    struct {
        uint32_t f32;
        uint16_t bf16;
    } cases[] = {
        {0x3f800000u, 0x3f80}, // 1
        {0x3f808000u, 0x3f80}, // 1 + 2^-8: a tie, to even (down)
        {0x3f818000u, 0x3f82}, // 1 + 3 * 2^-8: a tie, to even (up)
        {0x3f808001u, 0x3f81}, // just above the tie: up
        {0x3f807fffu, 0x3f80}, // just below: down
        {0x3fff8000u, 0x4000}, // carry into the exponent: 1.99609375 -> 2
        {0x7f7fffffu, 0x7f80}, // FLT_MAX rounds to +inf
        {0xff800000u, 0xff80}, // -inf stays
        {0x00000001u, 0x0000}, // the smallest subnormal rounds to +0
        {0x80018000u, 0x8002}, // a negative subnormal tie, to even
        {0xc0490fdbu, 0xc049}, // -pi
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float x;
        memcpy(&x, &cases[i].f32, 4);
        uint16_t got = rl_bf16_from_f32(x);
        CHECK(got == cases[i].bf16, "rl_bf16_from_f32(0x%08x) = 0x%04x, want 0x%04x", cases[i].f32,
              got, cases[i].bf16);
    }
    float nan = NAN;
    uint16_t qn = rl_bf16_from_f32(nan);
    CHECK((qn & 0x7f80) == 0x7f80 && (qn & 0x7f) != 0, "NaN stays NaN: 0x%04x", qn);
    uint32_t snan_bits = 0x7f800001u; // a signalling NaN whose payload is all below bit 16
    float snan;
    memcpy(&snan, &snan_bits, 4);
    CHECK(isnan(rl_bf16_to_f32(rl_bf16_from_f32(snan))), "a low-payload NaN stays NaN");
    CHECK(isnan(rl_bf16_to_f32(rl_bf16_stochastic(snan, 1, 0))), "stochastic: NaN stays NaN");
    CHECK(rl_bf16_stochastic(INFINITY, 1, 5) == 0x7f80, "stochastic: inf stays inf");
    // a value exactly representable is never moved by stochastic rounding
    for (uint64_t i = 0; i < 64; i++)
        CHECK(rl_bf16_stochastic(1.5f, 99, i) == 0x3fc0, "stochastic(1.5) element %d", (int)i);
}

// convert on the CPU, the float32 GPU and the bf16 GPU: float32 -> bf16 is rl_bf16_from_f32 bit
// for bit (specials included), bf16 -> float32 is exact, same-type converts are copies.
static void test_convert(void) {
    size_t n = 70001;
    float *h = rl_malloc(n * 4);
    rand_fill(h, n, 3.0f);
    float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1.00390625f, 3.3895314e38f, 1e-40f};
    memcpy(h, specials, sizeof specials);
    for (size_t i = 100; i < 200; i++) h[i] *= 1e30f; // large magnitudes
    uint16_t *want = rl_malloc(n * 2), *got = rl_malloc(n * 2);
    for (size_t i = 0; i < n; i++) want[i] = rl_bf16_from_f32(h[i]);
    float *back = rl_malloc(n * 4);
    const rl_backend *bes[3] = {CPU, G32, G16};
    for (int k = 0; k < 3; k++) {
        const rl_backend *be = bes[k];
        float *src = be->mem_alloc(be, n * 4), *dst32 = be->mem_alloc(be, n * 4);
        void *dst16 = be->mem_alloc(be, n * 2);
        be->mem_upload(be, src, h, n * 4);
        be->convert(be, dst16, RL_BF16, src, RL_F32, n);
        be->mem_download(be, got, dst16, n * 2);
        size_t bad = n;
        for (size_t i = 0; i < n && bad == n; i++)
            if (got[i] != want[i] && !(isnan(h[i]) && (got[i] & 0x7fff) > 0x7f80)) bad = i;
        CHECK(bad == n, "%s (act %s): convert f32 -> bf16 element %zu: 0x%04x, want 0x%04x",
              be->name, rl_dtype_name(be->act), bad, bad < n ? got[bad] : 0,
              bad < n ? want[bad] : 0);
        be->convert(be, dst32, RL_F32, dst16, RL_BF16, n);
        be->mem_download(be, back, dst32, n * 4);
        bad = n;
        for (size_t i = 0; i < n && bad == n; i++) {
            float w = rl_bf16_to_f32(got[i]);
            if (memcmp(&back[i], &w, 4) != 0) bad = i;
        }
        CHECK(bad == n, "%s: convert bf16 -> f32 exact (element %zu)", be->name, bad);
        be->convert(be, dst32, RL_F32, src, RL_F32, n); // same type: a copy
        be->mem_download(be, back, dst32, n * 4);
        CHECK(memcmp(back, h, n * 4) == 0, "%s: convert f32 -> f32 copies", be->name);
        uint16_t *before = rl_malloc(n * 2);
        memcpy(before, got, n * 2);
        be->convert(be, dst16, RL_BF16, dst16, RL_BF16, n); // in place, same type: nothing
        be->mem_download(be, got, dst16, n * 2);
        CHECK(memcmp(got, before, n * 2) == 0, "%s: convert in place (same type) keeps the bits",
              be->name);
        free(before);
        fprintf(stderr, "  convert on %s (act %s): f32 <-> bf16 bit for bit\n", be->name,
                rl_dtype_name(be->act));
        be->mem_free(be, src), be->mem_free(be, dst32), be->mem_free(be, dst16);
    }
    free(h), free(want), free(got), free(back);
}

// ------------------------------------------------------------------------------------------------
// Matrix products (bf16 operands, float32 accumulation in cuBLASLt)

static void test_gemm(void) {
    int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {128, 96, 80}, {257, 129, 31}};
    float betas[] = {0.0f, 1.0f, -0.5f};
    char what[128];
    for (int s = 0; s < 5; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int cbf = 0; cbf < 2; cbf++) { // the result in float32, then in bf16
                    int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                    float beta = betas[(s + ta + 2 * tb) % 3];
                    xbuf a = xb_rand((size_t)M * K, 1, 1), b = xb_rand((size_t)K * N, 1, 1);
                    xbuf c = xb_rand((size_t)M * N, 1, cbf);
                    CPU->gemm(CPU, c.cpu, RL_F32, a.cpu, b.cpu, M, N, K, ta, tb, 0.7f, beta);
                    G16->gemm(G16, c.gpu, cbf ? RL_BF16 : RL_F32, a.gpu, b.gpu, M, N, K, ta, tb,
                              0.7f, beta);
                    snprintf(what, sizeof what, "gemm %dx%dx%d ta%d tb%d beta %g -> %s", M, N, K,
                             ta, tb, (double)beta, cbf ? "bf16" : "float32");
                    // float32 result: accumulation noise only; bf16: plus one rounding
                    check_x(what, c, cbf ? act_rtol(F32_TOL) : F32_TOL, F32_TOL);
                    xb_free(&a), xb_free(&b), xb_free(&c);
                }
    for (int cbf = 0; cbf < 2; cbf++) { // K = 0: c = beta * c, exact (beta = 0.5 scales exactly)
        xbuf c = xb_rand(35, 1, cbf);
        CPU->gemm(CPU, c.cpu, RL_F32, c.cpu, c.cpu, 5, 7, 0, 0, 0, 1.0f, 0.5f);
        G16->gemm(G16, c.gpu, cbf ? RL_BF16 : RL_F32, c.gpu, c.gpu, 5, 7, 0, 0, 0, 1.0f, 0.5f);
        check_exact(cbf ? "gemm K=0 beta 0.5 -> bf16" : "gemm K=0 beta 0.5 -> float32", c);
        xb_free(&c);
    }
}

// Forward (bias in cuBLASLt's epilogue) and backward; then the forward again through the
// cublasGemmEx fallback, which the emulator takes when EMU_LT_NO_ALGO=1 (on a GPU the variable
// means nothing and the forward simply runs again).
static void test_matmul(void) {
    int shapes[][3] = {{1, 8, 8}, {6, 5, 7}, {37, 48, 80}, {129, 96, 33}, {300, 64, 1000}};
    char what[128];
    for (int s = 0; s < 5; s++)
        for (int variant = 0; variant < 3; variant++) { // 0: all, 1: no bias, 2: no dinp
            int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
            int with_bias = variant != 1;
            xbuf inp = xb_rand((size_t)N * C, 1, 1), w = xb_rand((size_t)OC * C, 0.5f, 1);
            xbuf bias = with_bias ? xb_rand(OC, 1, 1) : XNONE, out = xb_rand((size_t)N * OC, 1, 1);
            xbuf dout = xb_rand((size_t)N * OC, 1, 1);
            xbuf dinp = variant == 2 ? XNONE : xb_rand((size_t)N * C, 1, 1);
            xbuf dw = xb_rand((size_t)OC * C, 1, 0), db = with_bias ? xb_rand(OC, 1, 0) : XNONE;
            CPU->matmul_forward(CPU, out.cpu, inp.cpu, w.cpu, bias.cpu, N, C, OC);
            G16->matmul_forward(G16, out.gpu, inp.gpu, w.gpu, bias.gpu, N, C, OC);
            snprintf(what, sizeof what, "matmul_forward N%d C%d OC%d bias %d", N, C, OC, with_bias);
            check_x(what, out, act_rtol(F32_TOL), F32_TOL);
            if (variant == 0) {
                setenv("EMU_LT_NO_ALGO", "1", 1);
                G16->matmul_forward(G16, out.gpu, inp.gpu, w.gpu, bias.gpu, N, C, OC);
                unsetenv("EMU_LT_NO_ALGO");
                snprintf(what, sizeof what, "matmul_forward N%d C%d OC%d (GemmEx fallback)", N, C,
                         OC);
                check_x(what, out, act_rtol(F32_TOL), F32_TOL);
            }
            float *dw0 = gpu_values(dw), *db0 = with_bias ? gpu_values(db) : NULL;
            CPU->matmul_backward(CPU, dinp.cpu, dw.cpu, db.cpu, dout.cpu, inp.cpu, w.cpu, N, C, OC);
            G16->matmul_backward(G16, dinp.gpu, dw.gpu, db.gpu, dout.gpu, inp.gpu, w.gpu, N, C, OC);
            snprintf(what, sizeof what, "matmul_backward N%d C%d OC%d v%d: dinp (bf16)", N, C, OC,
                     variant);
            if (dinp.n) check_x(what, dinp, act_rtol(F32_TOL), F32_TOL);
            snprintf(what, sizeof what, "matmul_backward N%d C%d OC%d v%d: dweight (float32)", N, C,
                     OC, variant);
            check_x(what, dw, F32_TOL, F32_TOL);
            snprintf(what, sizeof what, "matmul_backward N%d C%d OC%d v%d: dbias (float32)", N, C,
                     OC, variant);
            if (with_bias) check_x(what, db, F32_TOL, F32_TOL);
            if (variant == 0) { // the same again from the same start: the same bits
                float *dw1 = gpu_values(dw), *db1 = gpu_values(db);
                G16->mem_upload(G16, dw.gpu, dw0, dw.n * 4);
                G16->mem_upload(G16, db.gpu, db0, db.n * 4);
                G16->matmul_backward(G16, dinp.gpu, dw.gpu, db.gpu, dout.gpu, inp.gpu, w.gpu, N, C,
                                     OC);
                snprintf(what, sizeof what, "matmul_backward N%d C%d OC%d twice: dweight", N, C,
                         OC);
                check_same_gpu_bits(what, dw, dw1);
                snprintf(what, sizeof what, "matmul_backward N%d C%d OC%d twice: dbias", N, C, OC);
                check_same_gpu_bits(what, db, db1);
                free(dw1), free(db1);
            }
            free(dw0), free(db0);
            xb_free(&inp), xb_free(&w), xb_free(&bias), xb_free(&out), xb_free(&dout);
            xb_free(&dinp), xb_free(&dw), xb_free(&db);
        }
}

// Views into a block sit at any element offset (the model carves its tensors from a few blocks):
// every operand one element past an aligned address (2 bytes for bf16, 4 for float32), so
// cuBLASLt must be told the real alignments and the bias cannot go through its epilogue.
static void *gpu_at(xbuf b, size_t i) {
    return b.gpu ? (char *)b.gpu + i * (b.act ? 2 : 4) : NULL;
}

static void test_matmul_misaligned(void) {
    int N = 37, C = 48, OC = 80;
    char what[128];
    xbuf inp = xb_rand((size_t)N * C + 1, 1, 1), w = xb_rand((size_t)OC * C + 1, 0.5f, 1);
    xbuf bias = xb_rand(OC + 1, 1, 1), out = xb_rand((size_t)N * OC + 1, 1, 1);
    xbuf dout = xb_rand((size_t)N * OC + 1, 1, 1), dinp = xb_rand((size_t)N * C + 1, 1, 1);
    xbuf dw = xb_rand((size_t)OC * C + 1, 1, 0), db = xb_rand(OC + 1, 1, 0);
    CPU->matmul_forward(CPU, out.cpu + 1, inp.cpu + 1, w.cpu + 1, bias.cpu + 1, N, C, OC);
    G16->matmul_forward(G16, gpu_at(out, 1), gpu_at(inp, 1), gpu_at(w, 1), gpu_at(bias, 1), N, C,
                        OC);
    snprintf(what, sizeof what, "matmul_forward N%d C%d OC%d, operands at odd offsets", N, C, OC);
    check_x(what, out, act_rtol(F32_TOL), F32_TOL);
    CPU->matmul_backward(CPU, dinp.cpu + 1, dw.cpu + 1, db.cpu + 1, dout.cpu + 1, inp.cpu + 1,
                         w.cpu + 1, N, C, OC);
    G16->matmul_backward(G16, gpu_at(dinp, 1), gpu_at(dw, 1), gpu_at(db, 1), gpu_at(dout, 1),
                         gpu_at(inp, 1), gpu_at(w, 1), N, C, OC);
    check_x("matmul_backward at odd offsets: dinp", dinp, act_rtol(F32_TOL), F32_TOL);
    check_x("matmul_backward at odd offsets: dweight", dw, F32_TOL, F32_TOL);
    check_x("matmul_backward at odd offsets: dbias", db, F32_TOL, F32_TOL);
    xb_free(&inp), xb_free(&w), xb_free(&bias), xb_free(&out), xb_free(&dout), xb_free(&dinp);
    xb_free(&dw), xb_free(&db);
}

// ------------------------------------------------------------------------------------------------
// Embedding, RMSNorm, RoPE, SwiGLU, residual, gather

static void test_embedding(void) {
    int cases[][3] = {{37, 45, 11}, {600, 130, 50}, {1, 7, 3}}; // N, C, V (tokens repeat)
    char what[128];
    for (int s = 0; s < 3; s++) {
        int N = cases[s][0], C = cases[s][1], V = cases[s][2];
        int32_t *tok = rl_malloc((size_t)N * 4);
        for (int n = 0; n < N; n++) tok[n] = n % 7 == 3 ? -1 : (int32_t)rl_rng_below(&RNG, V);
        int32_t *tc = CPU->mem_alloc(CPU, (size_t)N * 4),
                *tgpu = G16->mem_alloc(G16, (size_t)N * 4);
        CPU->mem_upload(CPU, tc, tok, (size_t)N * 4);
        G16->mem_upload(G16, tgpu, tok, (size_t)N * 4);
        xbuf wte = xb_rand((size_t)V * C, 1, 1), out = xb_rand((size_t)N * C, 1, 1);
        xbuf dout = xb_rand((size_t)N * C, 1, 1), dwte = xb_rand((size_t)V * C, 1, 0);
        CPU->embedding_forward(CPU, out.cpu, tc, wte.cpu, N, C);
        G16->embedding_forward(G16, out.gpu, tgpu, wte.gpu, N, C);
        snprintf(what, sizeof what, "embedding_forward N%d C%d V%d", N, C, V);
        check_exact(what, out);
        CPU->embedding_backward(CPU, dwte.cpu, dout.cpu, tc, N, C);
        G16->embedding_backward(G16, dwte.gpu, dout.gpu, tgpu, N, C);
        snprintf(what, sizeof what, "embedding_backward N%d C%d V%d (float32, same order)", N, C,
                 V);
        check_exact(what, dwte);
        free(tok);
        CPU->mem_free(CPU, tc), G16->mem_free(G16, tgpu);
        xb_free(&wte), xb_free(&out), xb_free(&dout), xb_free(&dwte);
    }
}

static void test_rmsnorm(void) {
    int cases[][2] = {{1, 7}, {37, 96}, {64, 1000}, {300, 33}};
    char what[128];
    for (int s = 0; s < 4; s++) {
        int N = cases[s][0], C = cases[s][1];
        float eps = s % 2 ? 1e-5f : 1e-6f;
        xbuf x = xb_rand((size_t)N * C, 2, 1), w = xb_rand(C, 1, 1);
        xbuf out = xb_rand((size_t)N * C, 1, 1), rstd = xb_rand(N, 1, 0);
        xbuf dout = xb_rand((size_t)N * C, 1, 1), dx = xb_rand((size_t)N * C, 1, 1);
        xbuf dw = xb_rand(C, 1, 0);
        CPU->rmsnorm_forward(CPU, out.cpu, rstd.cpu, x.cpu, w.cpu, N, C, eps);
        G16->rmsnorm_forward(G16, out.gpu, rstd.gpu, x.gpu, w.gpu, N, C, eps);
        snprintf(what, sizeof what, "rmsnorm_forward N%d C%d: out", N, C);
        check_x(what, out, act_rtol(F32_TOL), F32_TOL);
        snprintf(what, sizeof what, "rmsnorm_forward N%d C%d: rstd (float32)", N, C);
        check_x(what, rstd, F32_TOL, 0.0);
        xb_share_cpu(rstd); // the backward reads the CPU's rstd on both (isolates the backward)
        CPU->rmsnorm_backward(CPU, dx.cpu, dw.cpu, dout.cpu, x.cpu, w.cpu, rstd.cpu, N, C);
        G16->rmsnorm_backward(G16, dx.gpu, dw.gpu, dout.gpu, x.gpu, w.gpu, rstd.gpu, N, C);
        // dinp is accumulated in bf16: the float32 sum of the stored dinp and the new term,
        // rounded once
        snprintf(what, sizeof what, "rmsnorm_backward N%d C%d: dinp (+=, bf16)", N, C);
        check_x(what, dx, act_rtol(F32_TOL), F32_TOL);
        snprintf(what, sizeof what, "rmsnorm_backward N%d C%d: dweight (float32)", N, C);
        check_x(what, dw, F32_TOL, F32_TOL);
        xb_free(&x), xb_free(&w), xb_free(&out), xb_free(&rstd), xb_free(&dout), xb_free(&dx);
        xb_free(&dw);
    }
}

static void test_rope(void) {
    struct {
        int NH, NKV, hd;
        float theta;
    } cases[] = {{4, 2, 4, 10000.0f}, {8, 1, 64, 10000.0f}, {2, 2, 128, 1e6f}, {3, 1, 10, 500.0f}};
    char what[128];
    for (int s = 0; s < 4; s++) {
        int NH = cases[s].NH, NKV = cases[s].NKV, hd = cases[s].hd, N = 37;
        int QKV = (NH + 2 * NKV) * hd;
        int32_t pos[37];
        for (int n = 0; n < N; n++) pos[n] = n < 5 ? n : (int32_t)rl_rng_below(&RNG, 33000);
        int32_t *pc = CPU->mem_alloc(CPU, sizeof pos), *pg = G16->mem_alloc(G16, sizeof pos);
        CPU->mem_upload(CPU, pc, pos, sizeof pos);
        G16->mem_upload(G16, pg, pos, sizeof pos);
        xbuf x = xb_rand((size_t)N * QKV, 1.5f, 1), dx = xb_rand((size_t)N * QKV, 1.0f, 1);
        CPU->rope_forward(CPU, x.cpu, pc, N, NH + NKV, hd, QKV, cases[s].theta);
        G16->rope_forward(G16, x.gpu, pg, N, NH + NKV, hd, QKV, cases[s].theta);
        snprintf(what, sizeof what, "rope_forward NH%d NKV%d hd%d (v untouched)", NH, NKV, hd);
        check_x(what, x, act_rtol(F32_TOL), F32_TOL);
        CPU->rope_backward(CPU, dx.cpu, pc, N, NH + NKV, hd, QKV, cases[s].theta);
        G16->rope_backward(G16, dx.gpu, pg, N, NH + NKV, hd, QKV, cases[s].theta);
        snprintf(what, sizeof what, "rope_backward NH%d NKV%d hd%d", NH, NKV, hd);
        check_x(what, dx, act_rtol(F32_TOL), F32_TOL);
        CPU->mem_free(CPU, pc), G16->mem_free(G16, pg);
        xb_free(&x), xb_free(&dx);
    }
}

static void test_swiglu_residual_gather(void) {
    int cases[][2] = {{1, 5}, {37, 77}, {256, 1408}};
    char what[128];
    for (int s = 0; s < 3; s++) {
        int N = cases[s][0], FF = cases[s][1];
        float *h = rl_malloc((size_t)N * 2 * FF * 4);
        rand_fill(h, (size_t)N * 2 * FF, 4);
        float big[4] = {-95.0f, 95.0f, -30.0f, 30.0f}; // saturated gates
        memcpy(h, big, sizeof big);
        xbuf gu = xb_from(h, (size_t)N * 2 * FF, 1), out = xb_rand((size_t)N * FF, 1, 1);
        xbuf dout = xb_rand((size_t)N * FF, 1, 1), dgu = xb_rand((size_t)N * 2 * FF, 1, 1);
        free(h);
        CPU->swiglu_forward(CPU, out.cpu, gu.cpu, N, FF);
        G16->swiglu_forward(G16, out.gpu, gu.gpu, N, FF);
        snprintf(what, sizeof what, "swiglu_forward N%d FF%d", N, FF);
        check_x(what, out, act_rtol(F32_TOL), F32_TOL);
        CPU->swiglu_backward(CPU, dgu.cpu, dout.cpu, gu.cpu, N, FF);
        G16->swiglu_backward(G16, dgu.gpu, dout.gpu, gu.gpu, N, FF);
        snprintf(what, sizeof what, "swiglu_backward N%d FF%d", N, FF);
        check_x(what, dgu, act_rtol(F32_TOL), F32_TOL);
        xb_free(&gu), xb_free(&out), xb_free(&dout), xb_free(&dgu);
    }
    size_t n = 100003;
    xbuf a = xb_rand(n, 1, 1), b = xb_rand(n, 3, 1), o = xb_rand(n, 1, 1);
    CPU->residual_forward(CPU, o.cpu, a.cpu, b.cpu, n);
    G16->residual_forward(G16, o.gpu, a.gpu, b.gpu, n);
    check_exact("residual_forward n 100003 (RNE of the exact sum)", o);
    CPU->residual_forward(CPU, a.cpu, a.cpu, b.cpu, n);
    G16->residual_forward(G16, a.gpu, a.gpu, b.gpu, n);
    check_exact("residual_forward in place", a);
    xb_free(&a), xb_free(&b), xb_free(&o);
    int rows[6] = {5, 0, 5, 8, 2, 3}, C = 129, R = 9;
    int32_t *rc = CPU->mem_alloc(CPU, sizeof rows), *rg = G16->mem_alloc(G16, sizeof rows);
    CPU->mem_upload(CPU, rc, rows, sizeof rows);
    G16->mem_upload(G16, rg, rows, sizeof rows);
    xbuf x = xb_rand((size_t)R * C, 1, 1), g = xb_rand((size_t)6 * C, 1, 1);
    CPU->gather_rows(CPU, g.cpu, x.cpu, rc, 6, C);
    G16->gather_rows(G16, g.gpu, x.gpu, rg, 6, C);
    check_exact("gather_rows", g);
    CPU->mem_free(CPU, rc), G16->mem_free(G16, rg);
    xb_free(&x), xb_free(&g);
}

// ------------------------------------------------------------------------------------------------
// Attention (the existing warp-per-row kernels, templated). bf16 with head_dim 64 or 128 runs the
// tensor-core flash kernels instead, which round P and dS to bf16: tests/test_cuda_flash.c checks
// those under their own rule, so the head dims here stay off 64 and 128.

static void attention_case(int B, int T, int NH, int NKV, int hd, int window,
                           const int32_t *lengths) {
    int QKV = (NH + 2 * NKV) * hd;
    size_t nq = (size_t)B * T * QKV, no = (size_t)B * T * NH * hd, nl = (size_t)B * T * NH;
    char tag[80], what[128];
    snprintf(tag, sizeof tag, "B%d T%d NH%d NKV%d hd%d w%d%s", B, T, NH, NKV, hd, window,
             lengths ? " padded" : "");
    int32_t *lc = NULL, *lg = NULL;
    if (lengths) {
        lc = CPU->mem_alloc(CPU, (size_t)B * 4), lg = G16->mem_alloc(G16, (size_t)B * 4);
        CPU->mem_upload(CPU, lc, lengths, (size_t)B * 4);
        G16->mem_upload(G16, lg, lengths, (size_t)B * 4);
    }
    xbuf qkv = xb_rand(nq, 1.5f, 1), out = xb_rand(no, 1, 1), lse = xb_rand(nl, 1, 0);
    CPU->attention_forward(CPU, out.cpu, lse.cpu, qkv.cpu, lc, B, T, NH, NKV, hd, window);
    G16->attention_forward(G16, out.gpu, lse.gpu, qkv.gpu, lg, B, T, NH, NKV, hd, window);
    snprintf(what, sizeof what, "attention_forward %s: out", tag);
    check_x(what, out, act_rtol(ATT_F_TOL), ATT_F_TOL);
    snprintf(what, sizeof what, "attention_forward %s: lse (float32)", tag);
    check_x(what, lse, ATT_F_TOL, ATT_F_TOL);
    // the backward reads the CPU forward's out (rounded to bf16, on both) and lse
    xb_share_cpu(out);
    xb_share_cpu(lse);
    xbuf dout = xb_rand(no, 1, 1), dqkv = xb_rand(nq, 7, 1); // dqkv must be overwritten
    CPU->attention_backward(CPU, dqkv.cpu, dout.cpu, qkv.cpu, out.cpu, lse.cpu, lc, B, T, NH, NKV,
                            hd, window);
    G16->attention_backward(G16, dqkv.gpu, dout.gpu, qkv.gpu, out.gpu, lse.gpu, lg, B, T, NH, NKV,
                            hd, window);
    snprintf(what, sizeof what, "attention_backward %s: dqkv", tag);
    check_x(what, dqkv, act_rtol(ATT_B_TOL), ATT_B_TOL);
    float *once = gpu_values(dqkv);
    G16->attention_backward(G16, dqkv.gpu, dout.gpu, qkv.gpu, out.gpu, lse.gpu, lg, B, T, NH, NKV,
                            hd, window);
    snprintf(what, sizeof what, "attention_backward %s: twice", tag);
    check_same_gpu_bits(what, dqkv, once);
    free(once);
    CPU->mem_free(CPU, lc), G16->mem_free(G16, lg);
    xb_free(&qkv), xb_free(&out), xb_free(&lse), xb_free(&dout), xb_free(&dqkv);
}

static void test_attention(void) {
    int32_t l2[2] = {9, 5}, l3[3] = {37, 20, 1}, l70[2] = {70, 33}, l45[2] = {45, 12};
    int32_t l0[2] = {33, 0};
    attention_case(2, 9, 4, 2, 8, 0, l2);        // GQA 2, padding
    attention_case(3, 37, 6, 2, 16, 0, l3);      // GQA 3, a length-1 sequence
    attention_case(2, 70, 8, 1, 48, 0, l70);     // MQA, more than one 64-key block
    attention_case(2, 45, 6, 3, 32, 7, l45);     // sliding window 7
    attention_case(1, 100, 4, 4, 96, 65, NULL);  // MHA, hd 96, window across key tiles
    attention_case(2, 33, 12, 2, 6, 1, l0);      // window 1, an empty sequence, hd 6
}

// kv_store (the caches hold the same values at the same offsets: exact) and attention of every
// stored row against the cache.
static void test_attention_cached(void) {
    int T = 70, S = 3, cap = 2 * RL_KV_BLOCK;
    int heads[3][3] = {{6, 2, 8}, {8, 2, 128}, {14, 2, 64}};
    int windows[3] = {0, 9, 33};
    char what[128];
    for (int c = 0; c < 3; c++) {
        int NH = heads[c][0], NKV = heads[c][1], hd = heads[c][2], window = windows[c];
        int QKV = (NH + 2 * NKV) * hd, n = 2 * T;
        int32_t slot[140], pos[140], perm[140];
        for (int i = 0; i < n; i++) perm[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)rl_rng_below(&RNG, (uint32_t)i + 1), t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        for (int i = 0; i < n; i++) slot[i] = perm[i] < T ? 2 : 0, pos[i] = perm[i] % T;
        int32_t *sc = CPU->mem_alloc(CPU, sizeof slot), *sg = G16->mem_alloc(G16, sizeof slot);
        int32_t *pc = CPU->mem_alloc(CPU, sizeof pos), *pg = G16->mem_alloc(G16, sizeof pos);
        CPU->mem_upload(CPU, sc, slot, sizeof slot), G16->mem_upload(G16, sg, slot, sizeof slot);
        CPU->mem_upload(CPU, pc, pos, sizeof pos), G16->mem_upload(G16, pg, pos, sizeof pos);
        size_t kvn = (size_t)S * cap * NKV * hd;
        xbuf qkv = xb_rand((size_t)n * QKV, 1.5f, 1);
        float *z = rl_calloc(kvn, 4);
        xbuf kc = xb_from(z, kvn, 1), vc = xb_from(z, kvn, 1);
        free(z);
        CPU->kv_store(CPU, kc.cpu, vc.cpu, qkv.cpu, sc, pc, n, NH, NKV, hd, cap);
        G16->kv_store(G16, kc.gpu, vc.gpu, qkv.gpu, sg, pg, n, NH, NKV, hd, cap);
        snprintf(what, sizeof what, "kv_store NH%d NKV%d hd%d: keys", NH, NKV, hd);
        check_exact(what, kc);
        snprintf(what, sizeof what, "kv_store NH%d NKV%d hd%d: values", NH, NKV, hd);
        check_exact(what, vc);
        xbuf out = xb_rand((size_t)n * NH * hd, 1, 1);
        CPU->attention_cached_forward(CPU, out.cpu, qkv.cpu, kc.cpu, vc.cpu, sc, pc, n, NH, NKV, hd,
                                      cap, window);
        G16->attention_cached_forward(G16, out.gpu, qkv.gpu, kc.gpu, vc.gpu, sg, pg, n, NH, NKV, hd,
                                      cap, window);
        snprintf(what, sizeof what, "attention_cached_forward NH%d NKV%d hd%d w%d", NH, NKV, hd,
                 window);
        check_x(what, out, act_rtol(ATT_F_TOL), ATT_F_TOL);
        CPU->mem_free(CPU, sc), G16->mem_free(G16, sg), CPU->mem_free(CPU, pc);
        G16->mem_free(G16, pg);
        xb_free(&qkv), xb_free(&kc), xb_free(&vc), xb_free(&out);
    }
}

// The log-prob ops are float32 on every backend: on the bf16 backend they run as on the float32
// one (the float32 pass checks them in depth).
static void test_logprob_float32(void) {
    int n = 37, V = 1000;
    xbuf x = xb_rand((size_t)n * V, 5, 0), lp = xb_rand(n, 1, 0), ent = xb_rand(n, 1, 0);
    int32_t tg[37];
    for (int i = 0; i < n; i++) tg[i] = i % 5 == 2 ? -1 : (int32_t)rl_rng_below(&RNG, V);
    int32_t *tc = CPU->mem_alloc(CPU, sizeof tg), *tgpu = G16->mem_alloc(G16, sizeof tg);
    CPU->mem_upload(CPU, tc, tg, sizeof tg), G16->mem_upload(G16, tgpu, tg, sizeof tg);
    CPU->logprob_forward(CPU, lp.cpu, ent.cpu, x.cpu, tc, n, V, 0.8f);
    G16->logprob_forward(G16, lp.gpu, ent.gpu, x.gpu, tgpu, n, V, 0.8f);
    check_x("logprob_forward n37 V1000 on the bf16 backend: logp", lp, F32_TOL, F32_TOL);
    check_x("logprob_forward n37 V1000 on the bf16 backend: entropy", ent, F32_TOL, F32_TOL);
    CPU->mem_free(CPU, tc), G16->mem_free(G16, tgpu);
    xb_free(&x), xb_free(&lp), xb_free(&ent);
}

// ------------------------------------------------------------------------------------------------
// AdamW on a float32 master with a bf16 working copy (stochastic rounding)

// One bf16 ulp at x: the spacing of bf16 values around |x| (normal numbers).
static double bf16_ulp(float x) {
    int e;
    frexp(fabs(x), &e); // |x| = f 2^e, f in [0.5, 1)
    return ldexp(1.0, e - 8);
}

static void test_adamw_master(void) {
    size_t n = 100003;
    float *h = rl_malloc(n * 4);
    rand_fill(h, n, 1);
    xbuf master = xb_from(h, n, 0), g = xb_rand(n, 0.1f, 0), m = xb_rand(n, 0.01f, 0);
    rand_fill(h, n, 1);
    for (size_t i = 0; i < n; i++) h[i] = h[i] * h[i] * 1e-3f; // v >= 0 as Adam keeps it
    xbuf v = xb_from(h, n, 0);
    uint16_t *param_c = rl_malloc(n * 2); // the CPU side of the working copy: not used by the CPU
    float *param_cpu = CPU->mem_alloc(CPU, n * 4);
    void *param_g = G16->mem_alloc(G16, n * 2);
    char what[128];
    int steps[] = {1, 2, 10};
    for (int s = 0; s < 3; s++) {
        float wd = s == 1 ? 0.0f : 0.1f;
        uint64_t seed = 0x5eed0000u + (uint64_t)steps[s];
        // the state before, to replay the step
        float *m0 = gpu_values(master), *mm0 = gpu_values(m), *v0 = gpu_values(v);
        CPU->adamw_update_master(CPU, master.cpu, param_cpu, g.cpu, m.cpu, v.cpu, n, 1e-3f, 0.9f,
                                 0.95f, 1e-8f, wd, 0.5f, steps[s], seed);
        G16->adamw_update_master(G16, master.gpu, param_g, g.gpu, m.gpu, v.gpu, n, 1e-3f, 0.9f,
                                 0.95f, 1e-8f, wd, 0.5f, steps[s], seed);
        snprintf(what, sizeof what, "adamw_update_master step %d wd %g: master", steps[s],
                 (double)wd);
        check_x(what, master, 1e-6, 1e-6);
        snprintf(what, sizeof what, "adamw_update_master step %d: m", steps[s]);
        check_x(what, m, 1e-6, 1e-6);
        snprintf(what, sizeof what, "adamw_update_master step %d: v", steps[s]);
        check_x(what, v, 1e-6, 1e-6);
        float *cm = cpu_values(master), *gm = gpu_values(master);
        float *pc = rl_malloc(n * 4);
        CPU->mem_download(CPU, pc, param_cpu, n * 4);
        CHECK(memcmp(pc, cm, n * 4) == 0, "CPU (float32 act): the working copy is the master");
        G16->mem_download(G16, param_c, param_g, n * 2);
        size_t bad = n, not_rne = 0, far = n;
        double bias = 0.0;
        for (size_t i = 0; i < n; i++) {
            uint16_t want = rl_bf16_stochastic(gm[i], seed, i);
            if (param_c[i] != want && bad == n) bad = i;
            not_rne += param_c[i] != rl_bf16_from_f32(gm[i]);
            double p = rl_bf16_to_f32(param_c[i]), u = bf16_ulp(gm[i]);
            bias += (p - gm[i]) / u;
            // within one ulp of the CPU's master (the float32 masters agree to ~1e-6)
            if (fabs(p - cm[i]) > u * (1.0 + 1e-3) + 1e-6 * fabs(cm[i]) && far == n) far = i;
        }
        bias /= (double)n;
        fprintf(
            stderr,
            "  adamw_update_master step %d: working copy = Philox stochastic rounding of the "
            "master bit for bit %s; %.1f%% differ from round-to-nearest; mean error %+.4f ulp\n",
            steps[s], bad == n ? "yes" : "NO", 100.0 * (double)not_rne / (double)n, bias);
        CHECK(bad == n, "step %d element %zu: working copy 0x%04x, want 0x%04x", steps[s], bad,
              bad < n ? param_c[bad] : 0, bad < n ? rl_bf16_stochastic(gm[bad], seed, bad) : 0);
        CHECK(far == n, "step %d element %zu: working copy %.9g vs CPU master %.9g", steps[s], far,
              far < n ? rl_bf16_to_f32(param_c[far]) : 0.0, far < n ? cm[far] : 0.0);
        // stochastic, not nearest: for fractional parts uniform in an ulp, 25% of elements round
        // away from the nearest value; unbiased: the mean error is 0 (its standard deviation
        // over n = 1e5 elements is ~0.001 ulp)
        CHECK(not_rne > n / 8, "step %d: only %zu of %zu differ from round-to-nearest", steps[s],
              not_rne, n);
        CHECK(fabs(bias) < 0.01, "step %d: mean rounding error %.4f ulp (biased)", steps[s], bias);
        // replay from the same state: the same bits; another seed: other bits
        uint16_t *first = rl_malloc(n * 2), *again = rl_malloc(n * 2);
        memcpy(first, param_c, n * 2);
        for (int replay = 0; replay < 2; replay++) {
            G16->mem_upload(G16, master.gpu, m0, n * 4);
            G16->mem_upload(G16, m.gpu, mm0, n * 4);
            G16->mem_upload(G16, v.gpu, v0, n * 4);
            G16->adamw_update_master(G16, master.gpu, param_g, g.gpu, m.gpu, v.gpu, n, 1e-3f, 0.9f,
                                     0.95f, 1e-8f, wd, 0.5f, steps[s], replay ? seed + 1 : seed);
            G16->mem_download(G16, again, param_g, n * 2);
            size_t diff = 0;
            for (size_t i = 0; i < n; i++) diff += again[i] != first[i];
            if (replay == 0)
                CHECK(diff == 0, "step %d replayed with the same seed: %zu elements differ",
                      steps[s], diff);
            else
                CHECK(diff > n / 16, "step %d with another seed: only %zu elements differ",
                      steps[s], diff);
        }
        free(first), free(again), free(cm), free(gm), free(pc), free(m0), free(mm0), free(v0);
    }
    // on the float32 GPU backend the working copy is the master, bit for bit
    float *dm = G32->mem_alloc(G32, n * 4), *dp = G32->mem_alloc(G32, n * 4);
    float *dg = G32->mem_alloc(G32, n * 4), *dmm = G32->mem_alloc(G32, n * 4);
    float *dv = G32->mem_alloc(G32, n * 4);
    rand_fill(h, n, 1);
    G32->mem_upload(G32, dm, h, n * 4);
    rand_fill(h, n, 0.1f);
    G32->mem_upload(G32, dg, h, n * 4);
    G32->adamw_update_master(G32, dm, dp, dg, dmm, dv, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 1,
                             42);
    float *a = rl_malloc(n * 4), *b = rl_malloc(n * 4);
    G32->mem_download(G32, a, dm, n * 4), G32->mem_download(G32, b, dp, n * 4);
    CHECK(memcmp(a, b, n * 4) == 0, "float32 GPU backend: the working copy is the master");
    fprintf(stderr, "  adamw_update_master on the float32 GPU backend: param == master %s\n",
            memcmp(a, b, n * 4) == 0 ? "yes" : "NO");
    G32->mem_free(G32, dm), G32->mem_free(G32, dp), G32->mem_free(G32, dg);
    G32->mem_free(G32, dmm), G32->mem_free(G32, dv);
    free(a), free(b), free(h), free(param_c);
    CPU->mem_free(CPU, param_cpu), G16->mem_free(G16, param_g);
    xb_free(&master), xb_free(&g), xb_free(&m), xb_free(&v);
}

int main(void) {
    rl_err err;
    CPU = rl_backend_cpu();
    G32 = rl_backend_cuda_open(0, 0, RL_F32, &err);
    if (!G32) {
        fprintf(stderr, "skip: %s\n", err.msg);
        return 77;
    }
    G16 = rl_backend_cuda_open(0, 0, RL_BF16, &err);
    CHECK(G16 != NULL, "rl_backend_cuda_open(RL_BF16): %s", err.msg);
    if (!G16) return test_summary();
    RNG = rl_rng_stream(2026, RL_RNG_INIT, 16, 0);
    RUN(test_open);
    RUN(test_bf16_rounding);
    RUN(test_convert);
    RUN(test_gemm);
    RUN(test_matmul);
    RUN(test_matmul_misaligned);
    RUN(test_embedding);
    RUN(test_rmsnorm);
    RUN(test_rope);
    RUN(test_swiglu_residual_gather);
    RUN(test_attention);
    RUN(test_attention_cached);
    RUN(test_logprob_float32);
    RUN(test_adamw_master);
    rl_backend_release(G16);
    rl_backend_release(G32);
    return test_summary();
}
