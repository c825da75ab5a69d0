// bench_rollout: generation throughput and KV memory of the rollout engine (not a test).
//
//   bench_rollout [tiny|25m|all] [--shape qwen0.5b|r1-1.5b] [--device cpu|cuda]
//                 [--batch 1,64,256] [--work 32/128,64/256] [--kv-gb X] [--hbm-gbs X]
//                 [--window] [--no-graphs]
//
// For each model, workload (prompt/generated tokens per sequence) and batch (sequences live at
// once; `batch` prompts of one sample each, no stop token, so every sequence generates exactly
// its budget) it runs rl_generate with random weights and prints: generated tokens/s, the time
// split (prefill steps / the rest), KV memory per sequence (the pool's peak bytes in use / batch)
// and, at batch 1, the memory-bandwidth limit: every weight and every cached key/value up to the
// current position is read once per token, so tokens/s <= bandwidth / (weight bytes + mean KV
// bytes per token). The CPU's read bandwidth is measured (as bench_model does); a GPU's is
// --hbm-gbs (default 3350, an H100 SXM's HBM3).
//
// --shape qwen0.5b | r1-1.5b: Qwen2.5-0.5B's or DeepSeek-R1-Distill-Qwen-1.5B's exact shape with
// random weights, at the seed article's workloads 512/2048, 1024/4096, 8192/1024 unless --work
// says otherwise (meant for a GPU: --device cuda; --kv-gb caps the KV pool, 40 by default there,
// so large batches wait or are preempted as in production).
//
// --window: what freeing the blocks a sliding window can no longer see saves on a long
// generation with Qwen2-style window layers (use_sliding_window, the upper half of the layers
// windowed, max_window_layers = L/2): the KV peak with and without freeing, same completions.
//
// On a backend with graph capture (CUDA) the decode steps run as CUDA graphs, one per batch
// bucket (policy/model_decode.c), as rollout.cuda_graphs: true does; --no-graphs runs them op by
// op (the same tokens) to measure what the graphs save. The header line says which.
//
// Defaults on the CPU: tiny and 25m, batches 1, 64, 256, the seed's workloads scaled down 16x
// (32/128, 64/256, 512/64).
#define _POSIX_C_SOURCE 200809L
#include "bench/bench_util.h"
#include "kernels/backend.h"
#include "kernels/rng.h"
#include "policy/model.h"
#include "policy/tokenizer.h"
#include "rollout/engine.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct shape {
    const char *name;
    int C, L, NH, NKV, hd, FF, V, tied;
} shape;

static const shape SHAPES[] = {
    {"tiny", 128, 4, 4, 1, 32, 336, 272, 1},
    {"25m", 512, 8, 8, 2, 64, 1408, 4096, 1},
    {"qwen0.5b", 896, 24, 14, 2, 64, 4864, 151936, 1},
    {"r1-1.5b", 1536, 28, 12, 2, 128, 8960, 151936, 0},
};

static const shape *shape_named(const char *name) {
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
        if (strcmp(SHAPES[i].name, name) == 0) return &SHAPES[i];
    return NULL;
}

static rl_model *make_model(const rl_backend *be, const shape *s, int window) {
    rl_model_config c =
        bench_qwen2_config(s->C, s->L, s->NH, s->NKV, s->hd, s->FF, s->V, s->tied, 16384);
    if (window > 0) {
        c.use_sliding_window = 1;
        c.sliding_window = window;
        c.max_window_layers = s->L / 2;
    }
    rl_model *m;
    rl_err err = {0};
    if (rl_model_create(&m, &c, be, &err)) {
        fprintf(stderr, "bench_rollout: model %s: %s\n", s->name, err.msg);
        exit(2);
    }
    rl_model_init_random(m, 7, 0.02f);
    return m;
}

typedef struct run_result {
    rl_gen_stats st;
    size_t kv_peak, token_bytes;
    uint64_t digest; // of every generated token: runs that must agree can be compared
} run_result;

// batch prompts of P random tokens, one sample each, G new tokens each.
// The engine runs decode steps op by op when eager (--no-graphs), else as CUDA graphs where the
// backend has them.
static int run_once(rl_model *m, const rl_tokenizer *tok, int batch, int P, int G, size_t kv_bytes,
                    int keep_window, int eager, run_result *res) {
    rl_engine_opts o = {batch, P + G + 1, 0, 512, kv_bytes, eager};
    rl_engine *e;
    rl_err err = {0};
    if (rl_engine_create_opts(&e, m, tok, &o, &err)) {
        fprintf(stderr, "bench_rollout: %s\n", err.msg);
        return -1;
    }
    rl_engine_cache(e)->keep_window = keep_window;
    int32_t *ids = rl_malloc((size_t)batch * P * sizeof(int32_t));
    rl_rng rng = rl_rng_stream(3, RL_RNG_INIT, (uint64_t)P, (uint64_t)batch);
    int vocab = m->V < 256 ? m->V : 256;
    for (size_t i = 0; i < (size_t)batch * P; i++) ids[i] = (int32_t)rl_rng_below(&rng, vocab);
    rl_gen_prompt *gp = rl_malloc((size_t)batch * sizeof *gp);
    for (int i = 0; i < batch; i++) gp[i] = (rl_gen_prompt){ids + (size_t)i * P, P, (uint64_t)i, 1};
    rl_gen_params p = {.sampling = {1.0f, 0, 1.0f, 0.0f}, .max_new_tokens = G, .seed = 1};
    rl_completion *out = rl_calloc((size_t)batch, sizeof *out);
    int rc = rl_generate(e, &p, gp, batch, out, &res->st, &err);
    if (rc) fprintf(stderr, "bench_rollout: %s\n", err.msg);
    res->kv_peak = rl_kv_cache_bytes_peak(rl_engine_cache(e));
    res->token_bytes = rl_kv_cache_token_bytes(rl_engine_cache(e));
    res->digest = 1469598103934665603ull;
    for (int i = 0; i < batch && rc == 0; i++) {
        for (int t = 0; t < out[i].n_tokens; t++)
            res->digest = (res->digest ^ (uint64_t)out[i].tokens[t]) * 1099511628211ull;
        rl_completion_free(&out[i]);
    }
    free(out), free(gp), free(ids);
    rl_engine_free(e);
    return rc;
}

static double weight_bytes(const rl_model *m) {
    double per_layer = (double)m->C * m->QKV + (double)m->C * m->NH * m->hd + 3.0 * m->C * m->FF;
    return 4.0 * (m->L * per_layer + (double)m->V * m->C);
}

static void bench_config(const rl_backend *be, const rl_tokenizer *tok, const shape *s,
                         const int *batches, int nb, const int (*work)[2], int nw, size_t kv_bytes,
                         double gbs, int gpu_limits, int invariant, int eager) {
    rl_model *m = make_model(be, s, 0);
    m->batch_invariant = invariant;
    double wb = weight_bytes(m);
    int rows = invariant > 0 || (invariant == 0 && be->is_host);
    printf("\n%s: C %d, L %d, heads %d/%d x %d, FF %d, V %d; %.1f MB of matmul weights (float32); "
           "products: %s\n",
           s->name, s->C, s->L, s->NH, s->NKV, s->hd, s->FF, s->V, wb / 1e6,
           rows ? "batch-invariant matmul_rows" : "the backend's fastest (not batch-invariant)");
    printf("  %-10s %6s %12s %10s %10s %14s %8s\n", "work", "batch", "gen tok/s", "prefill s",
           "total s", "KV/seq (peak)", "preempt");
    for (int w = 0; w < nw; w++) {
        int P = work[w][0], G = work[w][1];
        for (int b = 0; b < nb; b++) {
            run_result r;
            if (run_once(m, tok, batches[b], P, G, kv_bytes, 0, eager, &r)) continue;
            char wl[32];
            snprintf(wl, sizeof wl, "%d/%d", P, G);
            printf("  %-10s %6d %12.1f %10.2f %10.2f %11.2f MB %8ld\n", wl, batches[b],
                   r.st.tokens_per_s, r.st.prefill_seconds, r.st.seconds,
                   r.kv_peak / 1e6 / batches[b], r.st.preemptions);
            if (batches[b] == 1 && !gpu_limits && wb < 64e6)
                printf("  %-10s %6s weights %.1f MB fit in the caches: no DRAM-bandwidth limit\n",
                       "", "", wb / 1e6);
            else if (batches[b] == 1) {
                double kv_read = r.token_bytes * (P + G / 2.0); // mean positions read per token
                double limit = gbs * 1e9 / (wb + kv_read);
                printf("  %-10s %6s batch-1 limit %.1f tok/s (%.1f MB weights + %.2f MB KV per "
                       "token at %.1f GB/s): %.0f%% of it\n",
                       "", "", limit, wb / 1e6, kv_read / 1e6, gbs,
                       100.0 * r.st.tokens_per_s / limit);
            }
            fflush(stdout);
        }
    }
    if (be->graph_begin)
        printf("  decode-step graphs: %ld captured, %ld replays\n", m->dec.graph_captures,
               m->dec.graph_replays);
    rl_model_free(m);
}

// KV peak with and without freeing the blocks outside the window, on one long generation.
static void bench_window(const rl_backend *be, const rl_tokenizer *tok, const shape *s, int window,
                         int batch, int P, int G) {
    rl_model *m = make_model(be, s, window);
    run_result keep, drop;
    // a pool that holds every block of every sequence in both runs (a pool sized for freeing
    // would make the run that keeps the blocks wait and preempt)
    size_t kv =
        (size_t)2 * batch * (P + G + 1 + RL_KV_BLOCK) * 2 * m->L * m->NKV * m->hd * sizeof(float);
    if (run_once(m, tok, batch, P, G, kv, 1, 0, &keep) ||
        run_once(m, tok, batch, P, G, kv, 0, 0, &drop)) {
        rl_model_free(m);
        return;
    }
    printf("\nsliding window %d on layers %d..%d of %s (Qwen2 max_window_layers %d), %d sequences "
           "of %d + %d tokens:\n",
           window, s->L / 2, s->L - 1, s->name, s->L / 2, batch, P, G);
    printf("  KV peak keeping every block  %10.2f MB  (%ld preemptions)\n", keep.kv_peak / 1e6,
           keep.st.preemptions);
    printf("  KV peak freeing unseen ones  %10.2f MB  (%.1f%% less; same tokens: %s)\n",
           drop.kv_peak / 1e6, 100.0 * (1.0 - (double)drop.kv_peak / (double)keep.kv_peak),
           keep.digest == drop.digest ? "yes" : "NO");
    rl_model_free(m);
}

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        out[n++] = atoi(s);
        s = strchr(s, ',');
        if (!s) break;
        s++;
    }
    return n;
}

int main(int argc, char **argv) {
    const char *device = "cpu", *which = "all", *shape_name = NULL;
    int batches[8] = {1, 64, 256}, nb = 3, work[8][2], nw = 0, window_test = 0;
    double kv_gb = -1, hbm = 3350;
    int invariant = 0;    // --invariant auto|true|false, as rollout.batch_invariant
    int eager_decode = 0; // --no-graphs: rl_engine_opts.eager_decode
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            device = argv[++i];
        else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc)
            shape_name = argv[++i];
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            nb = parse_list(argv[++i], batches, 8);
        else if (strcmp(argv[i], "--work") == 0 && i + 1 < argc) {
            const char *s = argv[++i];
            while (*s && nw < 8) {
                work[nw][0] = atoi(s);
                const char *slash = strchr(s, '/');
                work[nw][1] = slash ? atoi(slash + 1) : 0;
                nw++;
                s = strchr(s, ',');
                if (!s) break;
                s++;
            }
        } else if (strcmp(argv[i], "--kv-gb") == 0 && i + 1 < argc)
            kv_gb = atof(argv[++i]);
        else if (strcmp(argv[i], "--hbm-gbs") == 0 && i + 1 < argc)
            hbm = atof(argv[++i]);
        else if (strcmp(argv[i], "--window") == 0)
            window_test = 1;
        else if (strcmp(argv[i], "--no-graphs") == 0)
            eager_decode = 1;
        else if (strcmp(argv[i], "--invariant") == 0 && i + 1 < argc) {
            const char *v = argv[++i];
            invariant = strcmp(v, "true") == 0 ? 1 : strcmp(v, "false") == 0 ? -1 : 0;
            if (invariant == 0 && strcmp(v, "auto") != 0) {
                fprintf(stderr, "bench_rollout: --invariant takes auto, true or false\n");
                return 2;
            }
        } else if (argv[i][0] != '-')
            which = argv[i];
        else {
            fprintf(stderr, "usage: bench_rollout [tiny|25m|all] [--shape qwen0.5b|r1-1.5b] "
                            "[--device cpu|cuda] [--batch 1,64,256] [--work P/G,...] [--kv-gb X] "
                            "[--hbm-gbs X] [--window] [--invariant auto|true|false] "
                            "[--no-graphs]\n");
            return 2;
        }
    }
    for (int w = 0; w < nw; w++)
        if (work[w][0] < 1 || work[w][1] < 1) {
            fprintf(stderr, "bench_rollout: --work wants PROMPT/GEN pairs, both >= 1\n");
            return 2;
        }
    for (int b = 0; b < nb; b++)
        if (batches[b] < 1) {
            fprintf(stderr, "bench_rollout: --batch wants positive sizes\n");
            return 2;
        }
    rl_err err = {0};
    const rl_backend *be = rl_backend_get(device, &err);
    if (!be) {
        fprintf(stderr, "bench_rollout: %s\n", err.msg);
        return 2;
    }
    rl_tokenizer *tok;
    if (rl_tokenizer_load(&tok, "byte", &err)) {
        fprintf(stderr, "bench_rollout: %s\n", err.msg);
        return 2;
    }
    int gpu = strcmp(device, "cpu") != 0;
    double gbs = gpu ? hbm : bench_read_bandwidth_gbs();
    printf("bench_rollout on %s: memory read bandwidth %.1f GB/s (%s)\n", device, gbs,
           gpu ? "--hbm-gbs" : "measured");
    printf("decode steps: %s\n", !be->graph_begin ? "op by op (this backend has no graph capture)"
                                 : eager_decode   ? "op by op (--no-graphs)"
                                                  : "CUDA graphs, one per batch bucket");
    if (kv_gb < 0) kv_gb = gpu ? 40 : 0;
    size_t kv_bytes = (size_t)(kv_gb * 1e9);
    if (shape_name) {
        const shape *s = shape_named(shape_name);
        if (!s || s == &SHAPES[0] || s == &SHAPES[1]) {
            fprintf(stderr, "bench_rollout: --shape takes qwen0.5b or r1-1.5b\n");
            return 2;
        }
        static const int seed_work[3][2] = {{512, 2048}, {1024, 4096}, {8192, 1024}};
        bench_config(be, tok, s, batches, nb, nw ? (const int(*)[2])work : seed_work, nw ? nw : 3,
                     kv_bytes, gbs, gpu, invariant, eager_decode);
    } else if (window_test) {
        bench_window(be, tok, &SHAPES[0], 128, 4, 128, 768);
    } else {
        static const int cpu_work[3][2] = {{32, 128}, {64, 256}, {512, 64}};
        for (int i = 0; i < 2; i++) {
            if (strcmp(which, "all") != 0 && strcmp(which, SHAPES[i].name) != 0) continue;
            bench_config(be, tok, &SHAPES[i], batches, nb, nw ? (const int(*)[2])work : cpu_work,
                         nw ? nw : 3, kv_bytes, gbs, gpu, invariant, eager_decode);
        }
    }
    rl_tokenizer_free(tok);
    rl_backend_release(be);
    return 0;
}
