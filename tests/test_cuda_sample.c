// test_cuda_sample: the decode-step operations of the CUDA backend against the CPU backend:
//
//   - sample: random float32 logits (V up to Qwen's 151,936), every sampling mode (greedy,
//     temperature, top-k with ties at the k-th logit, top-p, min-p, their combinations, a
//     vocabulary limit below V, -inf logits, all-equal rows), rows with their own parameters;
//     the GPU must draw the SAME tokens as the CPU (the same Philox uniforms), with the same
//     log-probs (bit for bit in the emulator, ~1e-6 on a GPU whose expf/logf differ by an ulp),
//     and the same bits when run twice (deterministic).
//   - mem_upload_staged: parts of odd sizes (empty ones too) land where they should, the
//     staging buffer grows when a call needs more, and the host arrays may be reused at once.
//   - graph capture: a sequence of ops (RMSNorm, a cuBLAS matmul, a residual add, a fill, a
//     device copy, the sampling op) captured once and replayed with new inputs written into the
//     same buffers gives the same bits as running the ops directly; a call that cannot be
//     captured (a download) ends the process with a message naming it.
//
// Without the CUDA backend compiled in, or without a device, it prints why and exits 77.
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/backend.h"
#include "kernels/rng.h"
#include "test_util.h"

static const rl_backend *CPU, *GPU;
static rl_rng RNG;

static void *gpu_from(const void *host, size_t bytes) {
    void *d = GPU->mem_alloc(GPU, bytes ? bytes : 1);
    GPU->mem_upload(GPU, d, host, bytes);
    return d;
}

// ------------------------------------------------------------------------------------------------
// Sampling

// Row kinds: 0 normal spread, 1 heavy ties on a coarse grid, 2 some -inf, 3 all equal,
// 4 one dominant logit with a flat tail (top-p cuts inside a tie group), 5 tiny spread.
static void fill_row(float *row, int V, int kind) {
    for (int i = 0; i < V; i++) {
        switch (kind) {
        case 0:
            row[i] = 3.0f * (float)rl_rng_normal(&RNG);
            break;
        case 1:
            row[i] = (float)rl_rng_below(&RNG, 16) * 0.25f;
            break;
        case 2:
            row[i] = rl_rng_below(&RNG, 20) == 0 ? -INFINITY : 2.0f * (float)rl_rng_normal(&RNG);
            break;
        case 3:
            row[i] = 1.5f;
            break;
        case 4:
            row[i] = i == V / 3 ? 12.0f : (float)rl_rng_below(&RNG, 3);
            break;
        default:
            row[i] = 1e-3f * (float)rl_rng_normal(&RNG);
            break;
        }
    }
    if (kind == 2) row[rl_rng_below(&RNG, (uint32_t)V)] = 5.0f; // never all -inf
}

static const rl_sampling MODES[] = {
    {1.0f, 0, 1.0f, 0.0f},   {0.7f, 0, 1.0f, 0.0f},  {0.0f, 0, 1.0f, 0.0f},
    {1.0f, 5, 1.0f, 0.0f},   {1.0f, 0, 0.9f, 0.0f},  {0.8f, 0, 1.0f, 0.05f},
    {1.3f, 20, 0.95f, 0.0f}, {0.6f, 40, 0.8f, 0.1f}, {1.0f, 1, 1.0f, 0.0f},
    {1.0f, 0, 0.0f, 0.0f},   {2.0f, 3, 0.5f, 0.2f},  {1.0f, 1000, 0.999f, 0.001f},
    {0.9f, 50, 1.0f, 0.0f},  {1.1f, 0, 0.6f, 0.0f},  {-1.0f, 7, 0.5f, 0.5f},
};
enum { N_MODES = sizeof MODES / sizeof MODES[0] };

typedef struct sample_out {
    int32_t *tok;
    float *lps, *lpp;
} sample_out;

// Runs the op on both backends; returns the number of rows whose token differs.
static int compare_sample(const char *what, int n, int V, int limit, int kind0) {
    size_t nv = (size_t)n * V;
    float *logits = rl_malloc(nv * sizeof(float));
    rl_sampling *par = rl_malloc((size_t)n * sizeof *par);
    uint64_t *kd = rl_malloc((size_t)2 * n * sizeof(uint64_t));
    for (int i = 0; i < n; i++) {
        fill_row(logits + (size_t)i * V, V, (kind0 + i) % 6);
        par[i] = MODES[(size_t)(i / 6 + kind0) % N_MODES]; // every mode with every kind
        kd[2 * i] = rl_rng_u64(&RNG);
        kd[2 * i + 1] = rl_rng_below(&RNG, 1000);
    }
    sample_out c = {rl_malloc((size_t)n * 4), rl_malloc((size_t)n * 4), rl_malloc((size_t)n * 4)};
    CPU->sample(CPU, c.tok, c.lps, c.lpp, logits, kd, par, n, V, limit);

    float *d_logits = gpu_from(logits, nv * sizeof(float));
    rl_sampling *d_par = gpu_from(par, (size_t)n * sizeof *par);
    uint64_t *d_kd = gpu_from(kd, (size_t)2 * n * sizeof(uint64_t));
    int32_t *d_out = GPU->mem_alloc(GPU, (size_t)3 * n * 4); // tokens | logp_s | logp_p
    int32_t *g = rl_malloc((size_t)3 * n * 4), *g2 = rl_malloc((size_t)3 * n * 4);
    for (int run = 0; run < 2; run++) {
        GPU->sample(GPU, d_out, (float *)(d_out + n), (float *)(d_out + 2 * n), d_logits, d_kd,
                    d_par, n, V, limit);
        GPU->mem_download(GPU, run ? g2 : g, d_out, (size_t)3 * n * 4);
    }
    CHECK(memcmp(g, g2, (size_t)3 * n * 4) == 0, "%s: two GPU runs differ", what);
    int tok_diff = 0, exact = 0;
    double max_err = 0.0;
    for (int i = 0; i < n; i++) {
        float gs, gp;
        memcpy(&gs, &g[n + i], 4);
        memcpy(&gp, &g[2 * n + i], 4);
        if (g[i] != c.tok[i]) {
            if (tok_diff++ < 5)
                fprintf(stderr, "  %s row %d (kind %d, mode %d): gpu %d cpu %d\n", what, i,
                        (kind0 + i) % 6, (i / 6 + kind0) % N_MODES, g[i], c.tok[i]);
            continue;
        }
        exact += gs == c.lps[i] && gp == c.lpp[i];
        double e1 = fabs((double)gs - c.lps[i]) / (1.0 + fabs(c.lps[i]));
        double e2 = fabs((double)gp - c.lpp[i]) / (1.0 + fabs(c.lpp[i]));
        if (!(e1 <= max_err)) max_err = e1 > max_err || isnan(e1) ? e1 : max_err;
        if (!(e2 <= max_err)) max_err = e2 > max_err || isnan(e2) ? e2 : max_err;
        CHECK(g[i] >= 0 && g[i] < limit, "%s: token %d beyond the limit %d", what, g[i], limit);
    }
    fprintf(stderr,
            "  %-28s n %4d V %6d limit %6d: %d tokens differ, %d/%d log-probs "
            "bit-equal, max rel err %.2g\n",
            what, n, V, limit, tok_diff, exact, n - tok_diff, max_err);
    CHECK(tok_diff == 0, "%s: %d of %d tokens differ from the CPU's", what, tok_diff, n);
    CHECK(max_err <= 2e-6, "%s: log-probs differ by %.3g", what, max_err);
    GPU->mem_free(GPU, d_logits);
    GPU->mem_free(GPU, d_par);
    GPU->mem_free(GPU, d_kd);
    GPU->mem_free(GPU, d_out);
    free(logits), free(par), free(kd), free(c.tok), free(c.lps), free(c.lpp), free(g), free(g2);
    return tok_diff;
}

static void test_sample_parity(void) {
    compare_sample("tiny rows", 2 * N_MODES * 6, 7, 7, 0);
    compare_sample("small, limit < V", 3 * N_MODES, 300, 260, 1);
    compare_sample("odd width", 2 * N_MODES, 4099, 4099, 2);
    compare_sample("wide", N_MODES, 32000, 31990, 3);
    compare_sample("Qwen vocabulary", 6, 151936, 151665, 0);
    compare_sample("Qwen vocabulary, ties", 6, 151936, 151936, 1);
}

// ------------------------------------------------------------------------------------------------
// Staged upload

static void test_staged_upload(void) {
    const size_t sizes[] = {4, 0, 13, 256, 1, 3000, 64 * 1024 + 7}; // the last one grows the buffer
    enum { P = sizeof sizes / sizeof sizes[0] };
    for (int round = 0; round < 3; round++) {
        int np = round == 0 ? P - 1 : P; // round 1 needs a larger staging buffer
        unsigned char *host[P], *dev[P], *back[P], *want[P];
        rl_upload parts[P];
        for (int i = 0; i < np; i++) {
            host[i] = rl_malloc(sizes[i] + 1);
            back[i] = rl_malloc(sizes[i] + 1);
            want[i] = rl_malloc(sizes[i] + 1);
            for (size_t b = 0; b < sizes[i]; b++) host[i][b] = (unsigned char)rl_rng_u32(&RNG);
            memcpy(want[i], host[i], sizes[i]);
            dev[i] = GPU->mem_alloc(GPU, sizes[i] + 16);
            // destinations at odd offsets inside their blocks
            parts[i] = (rl_upload){dev[i] + (i % 3), host[i], sizes[i]};
        }
        GPU->mem_upload_staged(GPU, parts, np);
        for (int i = 0; i < np; i++) memset(host[i], 0, sizes[i]); // reusable at once...
        int ok = 1;
        for (int i = 0; i < np; i++) { // ...the device holds the values from before the memset
            GPU->mem_download(GPU, back[i], dev[i] + (i % 3), sizes[i]);
            ok &= memcmp(back[i], want[i], sizes[i]) == 0;
        }
        CHECK(ok, "staged upload round %d", round);
        for (int i = 0; i < np; i++) {
            GPU->mem_free(GPU, dev[i]);
            free(host[i]), free(back[i]), free(want[i]);
        }
    }
    // exact content check, with a known pattern
    unsigned char a[37], b[5000], ra[37], rb[5000];
    for (size_t i = 0; i < sizeof a; i++) a[i] = (unsigned char)(3 * i + 1);
    for (size_t i = 0; i < sizeof b; i++) b[i] = (unsigned char)(7 * i + 5);
    unsigned char *da = GPU->mem_alloc(GPU, 64), *db = GPU->mem_alloc(GPU, 5008);
    GPU->mem_zero(GPU, db, 5008);
    rl_upload parts[2] = {{da + 1, a, sizeof a}, {db + 3, b, sizeof b}};
    GPU->mem_upload_staged(GPU, parts, 2);
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    GPU->mem_download(GPU, ra, da + 1, sizeof ra);
    GPU->mem_download(GPU, rb, db + 3, sizeof rb);
    int ok = 1;
    for (size_t i = 0; i < sizeof ra; i++) ok &= ra[i] == (unsigned char)(3 * i + 1);
    for (size_t i = 0; i < sizeof rb; i++) ok &= rb[i] == (unsigned char)(7 * i + 5);
    unsigned char edge[3];
    GPU->mem_download(GPU, edge, db, 3);
    ok &= edge[0] == 0 && edge[1] == 0 && edge[2] == 0; // bytes before a part untouched
    CHECK(ok, "staged upload: content");
    GPU->mem_free(GPU, da);
    GPU->mem_free(GPU, db);
    // the CPU backend's version is a plain copy
    float x[3] = {1, 2, 3}, y[3] = {0};
    rl_upload cp = {y, x, sizeof x};
    CPU->mem_upload_staged(CPU, &cp, 1);
    CHECK(y[0] == 1 && y[2] == 3, "CPU staged upload");
    CHECK(!CPU->graph_begin && !CPU->graph_end && !CPU->graph_launch && !CPU->graph_free,
          "the CPU has no graphs");
}

// ------------------------------------------------------------------------------------------------
// Graph capture

enum { GN = 5, GC = 64, GV = 300 };

typedef struct step_bufs {
    float *x, *w_norm, *w_lm, *h, *logits, *tmp;
    uint64_t *kd;
    rl_sampling *par;
    int32_t *out;
} step_bufs;

// The "decode step": norm, lm-head product, residual, fill, copy, sampling.
static void run_step(const step_bufs *b) {
    GPU->rmsnorm_forward(GPU, b->h, NULL, b->x, b->w_norm, GN, GC, 1e-5f);
    GPU->residual_forward(GPU, b->h, b->h, b->x, (size_t)GN * GC);
    GPU->matmul_forward(GPU, b->logits, b->h, b->w_lm, NULL, GN, GC, GV);
    GPU->fill(GPU, b->tmp, 0.5f, 7);
    GPU->mem_copy(GPU, b->tmp + 8, b->logits, 16 * sizeof(float));
    GPU->sample(GPU, b->out, (float *)(b->out + GN), (float *)(b->out + 2 * GN), b->logits, b->kd,
                b->par, GN, GV, GV);
}

static void write_inputs(const step_bufs *b, int iter) {
    float x[GN * GC];
    for (int i = 0; i < GN * GC; i++) x[i] = (float)rl_rng_normal(&RNG);
    uint64_t kd[2 * GN];
    rl_sampling par[GN];
    for (int i = 0; i < GN; i++) {
        kd[2 * i] = 1000 + (uint64_t)i;
        kd[2 * i + 1] = (uint64_t)iter;
        par[i] = MODES[(size_t)(i + iter) % N_MODES];
    }
    rl_upload parts[3] = {{b->x, x, sizeof x}, {b->kd, kd, sizeof kd}, {b->par, par, sizeof par}};
    GPU->mem_upload_staged(GPU, parts, 3);
}

static void read_outputs(const step_bufs *b, float *logits, float *tmp, int32_t *out) {
    GPU->mem_download(GPU, logits, b->logits, (size_t)GN * GV * sizeof(float));
    GPU->mem_download(GPU, tmp, b->tmp, 24 * sizeof(float));
    GPU->mem_download(GPU, out, b->out, 3 * GN * sizeof(int32_t));
}

static void test_graph_capture(void) {
    if (!GPU->graph_begin) {
        CHECK(0, "the CUDA backend has graph capture");
        return;
    }
    step_bufs b;
    float wn[GC], *wl = rl_malloc((size_t)GV * GC * sizeof(float));
    for (int i = 0; i < GC; i++) wn[i] = 1.0f + 0.1f * (float)rl_rng_normal(&RNG);
    for (int i = 0; i < GV * GC; i++) wl[i] = 0.5f * (float)rl_rng_normal(&RNG);
    b.x = GPU->mem_alloc(GPU, GN * GC * 4);
    b.h = GPU->mem_alloc(GPU, GN * GC * 4);
    b.w_norm = gpu_from(wn, sizeof wn);
    b.w_lm = gpu_from(wl, (size_t)GV * GC * 4);
    b.logits = GPU->mem_alloc(GPU, GN * GV * 4);
    b.tmp = GPU->mem_alloc(GPU, 24 * 4);
    b.kd = GPU->mem_alloc(GPU, 2 * GN * 8);
    b.par = GPU->mem_alloc(GPU, GN * sizeof(rl_sampling));
    b.out = GPU->mem_alloc(GPU, 3 * GN * 4);

    rl_err err = {0};
    write_inputs(&b, 0);
    GPU->graph_begin(GPU);
    run_step(&b);
    rl_graph *g = GPU->graph_end(GPU, &err);
    CHECK(g != NULL, "graph_end: %s", err.msg);
    if (!g) return;

    float lg_eager[GN * GV], lg_graph[GN * GV], t_eager[24], t_graph[24];
    int32_t o_eager[3 * GN], o_graph[3 * GN];
    int same = 1, changed = 0;
    int32_t first_tokens[GN];
    for (int iter = 1; iter <= 4; iter++) {
        rl_rng saved = RNG;
        write_inputs(&b, iter);
        GPU->mem_zero(GPU, b.logits, GN * GV * 4);
        GPU->mem_zero(GPU, b.out, 3 * GN * 4);
        GPU->graph_launch(GPU, g);
        read_outputs(&b, lg_graph, t_graph, o_graph);
        RNG = saved; // the same inputs again, run directly
        write_inputs(&b, iter);
        GPU->mem_zero(GPU, b.logits, GN * GV * 4);
        run_step(&b);
        read_outputs(&b, lg_eager, t_eager, o_eager);
        same &= memcmp(lg_eager, lg_graph, sizeof lg_eager) == 0 &&
                memcmp(t_eager, t_graph, sizeof t_eager) == 0 &&
                memcmp(o_eager, o_graph, sizeof o_eager) == 0;
        if (iter == 1)
            memcpy(first_tokens, o_graph, sizeof first_tokens);
        else
            changed |= memcmp(first_tokens, o_graph, sizeof first_tokens) != 0;
        CHECK(t_graph[0] == 0.5f && t_graph[8] == lg_graph[0], "fill and copy replayed");
    }
    CHECK(same, "replayed graph differs from running the ops directly");
    CHECK(changed, "the replays read the new inputs (tokens never changed)");
    GPU->graph_free(GPU, g);
    GPU->graph_free(GPU, NULL);

    // A download inside a capture: the process ends with a message naming the call.
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, 2);
        GPU->graph_begin(GPU);
        float one;
        GPU->mem_download(GPU, &one, b.logits, 4);
        _exit(0); // not reached
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "a download in a capture exits 1");
    // graph_end without graph_begin is an error, not a crash
    CHECK(GPU->graph_end(GPU, &err) == NULL && err.kind == RL_EINTERNAL, "graph_end alone");

    GPU->mem_free(GPU, b.x), GPU->mem_free(GPU, b.h), GPU->mem_free(GPU, b.w_norm);
    GPU->mem_free(GPU, b.w_lm), GPU->mem_free(GPU, b.logits), GPU->mem_free(GPU, b.tmp);
    GPU->mem_free(GPU, b.kd), GPU->mem_free(GPU, b.par), GPU->mem_free(GPU, b.out);
    free(wl);
}

int main(void) {
    rl_err err;
    CPU = rl_backend_cpu();
    GPU = rl_backend_get("cuda", &err);
    if (!GPU) {
        CHECK(err.kind == RL_EINPUT && err.msg[0], "a clean error without the CUDA backend");
        if (test_summary() != 0) return 1;
        fprintf(stderr, "skip: %s\n", err.msg);
        return 77;
    }
    RNG = rl_rng_stream(2026, RL_RNG_INIT, 12, 0);
    RUN(test_sample_parity);
    RUN(test_staged_upload);
    RUN(test_graph_capture);
    rl_backend_release(GPU);
    return test_summary();
}
