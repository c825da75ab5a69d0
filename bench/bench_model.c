// bench_model: throughput of the Qwen2 model on a backend (not a test).
//
//   bench_model [tiny|25m|qwen0.5b|qwen0.5b-4k|r1-1.5b-4k|all] [--device cpu|cuda]
//               [--dtype float32|tf32|bfloat16] [--steps N] [--decode-steps N] [--batch N]
//               [--seq N] [--peak-tflops X]
//
// For each model size it prints: the machine's sgemm rate (a 1024^3 product and the exact
// matrix-product shapes of one training step), the training step (forward + log-probs + backward
// + grad norm + AdamW) in tokens/s and achieved GFLOP/s with the time split, and batched
// decoding at batch 64 (prefill, then one token per sequence per step) in tokens/s with the split,
// then batch-1 decoding next to its memory-bandwidth limit (every weight is read once per token:
// weight bytes / the machine's measured read bandwidth). "qwen0.5b" is Qwen2.5-0.5B's exact shape
// with random weights, decoding only (all = tiny and 25m; name it to run it).
//
// "qwen0.5b-4k" and "r1-1.5b-4k" are random-weight models of Qwen2.5-0.5B's and
// DeepSeek-R1-Distill-Qwen-1.5B's exact shapes (tied / untied lm_head, V = 151936) trained at
// sequence length 4096 (batch 4 and 2; --batch, --seq change them): the GPU benchmark. They run
// the training step only and print its model-FLOPs utilisation (MFU) against the card's dense
// peak: bf16 989 TFLOP/s (H100/H200 SXM; --peak-tflops changes it), and beside it against the
// peak of the precision used (TF32 dense = half the bf16 peak, 494; FP32 67 on H100/H200 SXM),
// and the peak memory allocated through the backend (the model's blocks and the optimizer's
// moments; the CUDA context and cuBLAS's 32 MiB workspace come on top).
//
// --dtype picks the precision: float32 (the default), tf32 (float32 storage, TF32 tensor-core
// matrix products; CUDA only) or bfloat16 (bf16 weights and activations; CUDA only, when the
// backend supports it). A precision the backend or build does not support ends the run with a
// one-line message and exit status 77 (scripts/gpu_check.sh records it as skipped).
//
// FLOPs are counted explicitly: a training step is 6 * N_matmul * tokens (N_matmul = parameters
// in matrix products, lm_head included, embedding lookup excluded) plus attention, 3x its forward
// 4 * NH * hd * (keys per query, averaged over the causal triangle) per token per layer.
#define _POSIX_C_SOURCE 200809L
#include "bench/bench_util.h"
#include "kernels/backend.h"
#include "kernels/rng.h"
#include "policy/memplan.h"
#include "policy/model.h"
#include "policy/optim.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench_size {
    const char *name;
    int C, L, NH, NKV, FF, V, B, T;
    int prompt, gen; // decoding: prompt tokens per sequence, generated tokens per sequence
    int decode_only; // 1: batch-1 decoding only (too large to train here), not part of "all"
    int train_only;  // 1: the GPU training benchmark (MFU, peak memory), not part of "all"
    int tied;        // tie_word_embeddings
} bench_size;

static const bench_size SIZES[] = {
    {"tiny", 128, 4, 4, 1, 336, 272, 32, 128, 32, 96, 0, 0, 1},
    {"25m", 512, 8, 8, 2, 1408, 4096, 8, 256, 32, 64, 0, 0, 1},
    {"qwen0.5b", 896, 24, 14, 2, 4864, 151936, 1, 32, 32, 32, 1, 0, 1},
    // Qwen2.5-0.5B and DeepSeek-R1-Distill-Qwen-1.5B (configs/shapes/*/config.json)
    {"qwen0.5b-4k", 896, 24, 14, 2, 4864, 151936, 4, 4096, 0, 0, 0, 1, 1},
    {"r1-1.5b-4k", 1536, 28, 12, 2, 8960, 151936, 2, 4096, 0, 0, 0, 1, 0},
};

// Dense peaks of the H100 / H200 SXM (TFLOP/s): bf16 tensor cores, TF32 tensor cores, FP32.
#define PEAK_BF16 989.0
#define PEAK_FP32 67.0

static rl_model_config config_of(const bench_size *s) {
    return bench_qwen2_config(s->C, s->L, s->NH, s->NKV, s->C / s->NH, s->FF, s->V, s->tied,
                              s->T > 4096 ? s->T : 4096);
}

static double matmul_params(const rl_model *m) {
    double per_layer = (double)m->C * m->QKV + (double)m->C * m->NH * m->hd + 3.0 * m->C * m->FF;
    return m->L * per_layer + (double)m->V * m->C;
}

// The median of n timings (sorts them). This machine may be shared: the median (and the best)
// say more about the code than the mean.
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

// ---- sgemm rate --------------------------------------------------------------------------------

static double time_gemm(const rl_backend *be, int M, int N, int K, int ta, int tb, float *a,
                        float *b, float *c, double min_seconds) {
    be->gemm(be, c, RL_F32, a, b, M, N, K, ta, tb, 1.0f, 0.0f); // warm-up
    be->synchronize(be);
    int reps = 0;
    double t0 = rl_now(), dt;
    do {
        be->gemm(be, c, RL_F32, a, b, M, N, K, ta, tb, 1.0f, 0.0f);
        be->synchronize(be);
        reps++;
    } while ((dt = rl_now() - t0) < min_seconds);
    return dt / reps;
}

// GFLOP/s of a large square product and of the products of one training step of model m.
static void bench_sgemm(const rl_backend *be, const rl_model *m, int N) {
    size_t biggest = (size_t)1024 * 1024;
    size_t need[] = {(size_t)N * m->C, (size_t)N * m->FF * 2, (size_t)N * m->QKV,
                     (size_t)m->V * m->C, (size_t)N * m->V};
    for (int i = 0; i < 5; i++)
        if (need[i] > biggest) biggest = need[i];
    float *a = be->mem_alloc(be, biggest * 4), *b = be->mem_alloc(be, biggest * 4);
    float *c = be->mem_alloc(be, biggest * 4);
    be->fill(be, a, 0.01f, biggest);
    be->fill(be, b, 0.02f, biggest);
    double t = time_gemm(be, 1024, 1024, 1024, 0, 1, a, b, c, 1.0);
    printf("  sgemm 1024^3:                 %8.1f GFLOP/s\n", 2e-9 * 1024 * 1024 * 1024 / t);
    // the step's products: per linear (in C_in -> out OC over N rows): forward NT, dinp NN, dW TN
    int shapes[][2] = {{m->C, m->QKV}, {m->NH * m->hd, m->C}, {m->C, 2 * m->FF}, {m->FF, m->C}};
    double flops = 0.0, secs = 0.0;
    for (int s = 0; s < 4; s++) {
        int K = shapes[s][0], OC = shapes[s][1];
        double f = 2.0 * N * K * OC;
        secs += m->L * (time_gemm(be, N, OC, K, 0, 1, a, b, c, 0.2) +
                        time_gemm(be, N, K, OC, 0, 0, a, b, c, 0.2) +
                        time_gemm(be, OC, K, N, 1, 0, a, b, c, 0.2));
        flops += m->L * 3 * f;
    }
    double f = 2.0 * N * m->C * m->V; // lm_head
    secs += time_gemm(be, N, m->V, m->C, 0, 1, a, b, c, 0.2) +
            time_gemm(be, N, m->C, m->V, 0, 0, a, b, c, 0.2) +
            time_gemm(be, m->V, m->C, N, 1, 0, a, b, c, 0.2);
    flops += 3 * f;
    printf("  sgemm at the step's shapes:   %8.1f GFLOP/s  (%d rows; fwd NT, dinp NN, dW TN)\n",
           1e-9 * flops / secs, N);
    be->mem_free(be, a), be->mem_free(be, b), be->mem_free(be, c);
}

// ---- training step -----------------------------------------------------------------------------

static void print_split(const rl_model_timing *t) {
    double total = t->matmul + t->attention + t->other;
    printf("matmul %.0f%%, attention %.0f%%, rest %.0f%%", 100 * t->matmul / total,
           100 * t->attention / total, 100 * t->other / total);
}

typedef struct bench_precision {
    const char *name; // float32, tf32, bfloat16
    double peak;      // dense peak of that precision, TFLOP/s
    double peak_bf16; // the card's dense bf16 peak, TFLOP/s
} bench_precision;

// mem: the counting backend m was made on (the step's peak memory).
static int bench_train(rl_model *m, const bench_size *s, int steps, const bench_precision *prec,
                       const rl_mem_counter *mem) {
    rl_err err;
    int B = s->B, T = s->T;
    size_t N = (size_t)B * T;
    int32_t *tokens = rl_malloc(N * sizeof(int32_t)), *targets = rl_malloc(N * sizeof(int32_t));
    float *logp = rl_malloc(N * sizeof(float)), *dlogp = rl_malloc(N * sizeof(float));
    rl_rng rng = rl_rng_stream(1, RL_RNG_DATA, 0, 0);
    for (size_t i = 0; i < N; i++) tokens[i] = (int32_t)rl_rng_below(&rng, s->V);
    for (size_t i = 0; i < N; i++) {
        targets[i] = (i + 1) % T ? tokens[i + 1] : -1;
        dlogp[i] = -1.0f / (float)N;
    }
    int ns;
    const rl_param_span *spans = rl_model_decay_spans(m, &ns);
    size_t n;
    float *params = rl_model_params(m, &n);
    rl_adamw *opt;
    if (rl_adamw_create(&opt, m->be, n, spans, ns, &err)) return fprintf(stderr, "%s\n", err.msg);
    if (steps < 1) steps = 1;
    rl_adamw_hparams hp = {1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f};
    double *times = rl_malloc((size_t)steps * sizeof(double));
    for (int step = -1; step <= steps; step++) { // step -1 warms up; step == steps is timed
        m->timing = (rl_model_timing){0};
        m->timing.enabled = step == steps;
        double t0 = rl_now();
        if (rl_model_forward(m, tokens, NULL, B, T, &err) ||
            rl_model_token_logprobs(m, targets, 1.0f, logp, NULL, &err))
            return fprintf(stderr, "%s\n", err.msg);
        rl_model_zero_grad(m);
        if (rl_model_backward(m, dlogp, NULL, &err)) return fprintf(stderr, "%s\n", err.msg);
        float scale = rl_clip_scale(rl_model_grad_norm(m), 1.0f);
        rl_adamw_step(opt, params, rl_model_grads(m, NULL), &hp, scale);
        m->be->synchronize(m->be);
        if (step >= 0 && step < steps) times[step] = rl_now() - t0;
    }
    double step_time = median(times, steps), best = times[0];
    double t_avg = (T + 1) / 2.0; // keys per query, causal
    double flops_tok = 6.0 * matmul_params(m) + 3.0 * 4.0 * m->L * m->NH * m->hd * t_avg;
    printf("  train step (B=%d, T=%d):       %8.0f tokens/s, %.3f s/step, %.1f GFLOP/s "
           "(%.1f MFLOP/token; median of %d steps, best %.1f GFLOP/s)\n",
           B, T, N / step_time, step_time, 1e-9 * flops_tok * N / step_time, 1e-6 * flops_tok,
           steps, 1e-9 * flops_tok * N / best);
    free(times);
    if (prec) {
        double tflops = 1e-12 * flops_tok * N / step_time;
        printf("    MFU %.1f%% of the dense bf16 peak (%.0f TFLOP/s); %s peak %.0f TFLOP/s: %.1f%% "
               "of it (%.1f TFLOP/s achieved)\n",
               100 * tflops / prec->peak_bf16, prec->peak_bf16, prec->name, prec->peak,
               100 * tflops / prec->peak, tflops);
        // the planner's figure for the same step (rlpipe plan): model state at ZeRO-0 and the
        // activations of this micro-batch without recomputation
        rl_memplan_params pp = {.gpus = 1,
                                .tensor_parallel = 1,
                                .act = m->be->act,
                                .micro_batch = B,
                                .seq_len = T,
                                .group_size = 1,
                                .decode_rows = 1,
                                .logits_floats = m->logits_budget};
        rl_memplan plan;
        double planned = rl_memplan_compute(&m->cfg, &pp, &plan, &err) == 0
                             ? plan.state[0] + plan.acts_total[0]
                             : 0.0;
        printf("    peak memory through the backend: %.2f GiB (parameters, gradients, AdamW "
               "moments, activations); rlpipe plan's formula: %.2f GiB (%+.2f%%)\n",
               mem->peak / (1024.0 * 1024 * 1024), planned / (1024.0 * 1024 * 1024),
               planned > 0 ? 100 * (planned - mem->peak) / mem->peak : 0.0);
    }
    printf("    time split: ");
    print_split(&m->timing);
    printf("\n");
    rl_adamw_free(opt);
    free(tokens), free(targets), free(logp), free(dlogp);
    return 0;
}

// ---- batched decoding --------------------------------------------------------------------------

static int bench_decode(rl_model *m, const bench_size *s, int batch, int gen) {
    rl_err err;
    int P = s->prompt, V = m->V;
    rl_kv_cache *c = rl_kv_cache_create(m, batch, P + gen + 1, &err);
    if (!c) return fprintf(stderr, "%s\n", err.msg);
    int32_t *prompts = rl_malloc((size_t)batch * P * sizeof(int32_t));
    const int32_t **lists = rl_malloc((size_t)batch * sizeof(int32_t *));
    int32_t *counts = rl_malloc((size_t)batch * sizeof(int32_t));
    int *slots = rl_malloc((size_t)batch * sizeof(int));
    int32_t *next = rl_malloc((size_t)batch * sizeof(int32_t));
    float *logits = rl_malloc((size_t)batch * V * sizeof(float));
    double *step_times = rl_malloc((size_t)gen * sizeof(double));
    rl_rng rng = rl_rng_stream(2, RL_RNG_DATA, 0, 0);
    for (int i = 0; i < batch * P; i++) prompts[i] = (int32_t)rl_rng_below(&rng, V);
    for (int i = 0; i < batch; i++) lists[i] = prompts + (size_t)i * P, counts[i] = P, slots[i] = i;

    for (int pass = 0; pass < 2; pass++) { // pass 0 timed end to end, pass 1 with the split
        for (int i = 0; i < batch; i++) rl_kv_cache_reset(c, i);
        m->timing = (rl_model_timing){0};
        m->timing.enabled = pass == 1;
        double t0 = rl_now();
        if (rl_model_prefill(m, c, batch, slots, lists, counts, logits, &err))
            return fprintf(stderr, "%s\n", err.msg);
        double t_prefill = rl_now() - t0;
        rl_model_timing after_prefill = m->timing;
        t0 = rl_now();
        for (int step = 0; step < gen; step++) {
            double ts = rl_now();
            for (int i = 0; i < batch; i++) next[i] = rl_argmax(logits + (size_t)i * V, V);
            if (rl_model_decode_step(m, c, batch, slots, next, logits, &err))
                return fprintf(stderr, "%s\n", err.msg);
            step_times[step] = rl_now() - ts;
        }
        double t_decode = rl_now() - t0;
        if (pass == 0) {
            double med = median(step_times, gen);
            printf("  prefill %d x %d tokens:        %8.0f tokens/s\n", batch, P,
                   batch * P / t_prefill);
            printf("  decode batch %d, %d steps:    %8.0f tokens/s (median step %.2f ms, "
                   "positions %d..%d; mean over all steps %.0f tokens/s)\n",
                   batch, gen, batch / med, 1e3 * med, P, P + gen - 1, batch * gen / t_decode);
        } else {
            rl_model_timing d = m->timing;
            d.matmul -= after_prefill.matmul;
            d.attention -= after_prefill.attention;
            d.other -= after_prefill.other;
            double rest = t_decode - (d.matmul + d.attention + d.other); // host argmax, staging
            printf("    decode time split: ");
            print_split(&d);
            printf(" (host argmax + staging outside the model: %.0f%% of the step)\n",
                   100 * rest / t_decode);
        }
    }
    rl_kv_cache_free(c);
    free(prompts), free(lists), free(counts), free(slots), free(next), free(logits);
    free(step_times);
    return 0;
}

// ---- batch-1 decoding against the memory-bandwidth limit ---------------------------------------

static int bench_decode_one(rl_model *m, const bench_size *s, int gen, double gbs) {
    rl_err err;
    int P = s->prompt, V = m->V;
    rl_kv_cache *c = rl_kv_cache_create(m, 1, P + gen + 1, &err);
    if (!c) return fprintf(stderr, "%s\n", err.msg);
    int32_t *prompt = rl_malloc((size_t)P * sizeof(int32_t)), next = 0, count = P;
    float *logits = rl_malloc((size_t)V * sizeof(float));
    double *step_times = rl_malloc((size_t)gen * sizeof(double));
    rl_rng rng = rl_rng_stream(3, RL_RNG_DATA, 0, 0);
    for (int i = 0; i < P; i++) prompt[i] = (int32_t)rl_rng_below(&rng, V);
    const int32_t *list = prompt;
    int slot = 0;
    if (rl_model_prefill(m, c, 1, &slot, &list, &count, logits, &err))
        return fprintf(stderr, "%s\n", err.msg);
    m->timing = (rl_model_timing){0};
    m->timing.enabled = 1;
    for (int step = 0; step < gen; step++) {
        double ts = rl_now();
        next = rl_argmax(logits, V);
        if (rl_model_decode_step(m, c, 1, &slot, &next, logits, &err))
            return fprintf(stderr, "%s\n", err.msg);
        step_times[step] = rl_now() - ts;
    }
    double med = median(step_times, gen);
    // Bytes every token must read: each weight matrix once (the tied lm_head is the embedding),
    // plus the KV cache, negligible at these lengths.
    double bytes = 4.0 * matmul_params(m);
    printf("  decode batch 1, %d steps:     %8.1f tokens/s (median step %.2f ms); ", gen, 1.0 / med,
           1e3 * med);
    if (bytes < 64e6) // served from the caches: DRAM bandwidth is no limit for it
        printf("weights %.1f MB fit in the caches (no DRAM-bandwidth limit)\n", bytes / 1e6);
    else
        printf("bandwidth limit %.1f tokens/s (%.0f MB of weights per token at %.1f GB/s read) = "
               "%.0f%% of it\n",
               gbs * 1e9 / bytes, bytes / 1e6, gbs, 100.0 * (1.0 / med) / (gbs * 1e9 / bytes));
    printf("    batch-1 decode time split: ");
    print_split(&m->timing);
    printf("\n");
    m->timing.enabled = 0;
    rl_kv_cache_free(c);
    free(prompt), free(logits), free(step_times);
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: bench_model [tiny|25m|qwen0.5b|qwen0.5b-4k|r1-1.5b-4k|all] "
                    "[--device cpu|cuda] [--dtype float32|tf32|bfloat16] [--steps N] "
                    "[--decode-steps N] [--batch N] [--seq N] [--peak-tflops X]\n");
    return 2;
}

// The backend for --device and --dtype, or NULL with the exit status in *rc (77: this precision
// is not supported here; 2: anything else).
static const rl_backend *open_backend(const char *device, const char *dtype, int *rc) {
    rl_err err = {0};
    int tf32 = strcmp(dtype, "tf32") == 0, bf16 = strcmp(dtype, "bfloat16") == 0;
    if (strcmp(device, "cuda") != 0) {
        if (tf32 || bf16) {
            fprintf(stderr,
                    "bench_model: --dtype %s is not supported on the %s backend (float32 "
                    "only; tf32 and bfloat16 need --device cuda)\n",
                    dtype, device);
            *rc = 77;
            return NULL;
        }
        const rl_backend *be = rl_backend_get(device, &err);
        if (!be) fprintf(stderr, "bench_model: %s\n", err.msg), *rc = 2;
        return be;
    }
    const char *env = getenv("RLPIPE_CUDA_DEVICE");
    int index = env && *env ? atoi(env) : 0;
    const rl_backend *be = rl_backend_cuda_open(index, tf32, bf16 ? RL_BF16 : RL_F32, &err);
    if (!be) {
        fprintf(stderr, "bench_model: --device cuda --dtype %s: %s\n", dtype, err.msg);
        // the CUDA backend answers RL_EINPUT for a precision it does not support (yet)
        *rc = bf16 && err.kind == RL_EINPUT && strstr(err.msg, "not supported") ? 77 : 2;
    }
    return be;
}

int main(int argc, char **argv) {
    const char *which = "all", *device = "cpu", *dtype = "float32";
    int steps = 5, gen = -1, batch = 0, seq = 0;
    double peak_bf16 = PEAK_BF16;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            device = argv[++i];
        else if (strcmp(argv[i], "--dtype") == 0 && i + 1 < argc)
            dtype = argv[++i];
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--decode-steps") == 0 && i + 1 < argc)
            gen = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seq") == 0 && i + 1 < argc)
            seq = atoi(argv[++i]);
        else if (strcmp(argv[i], "--peak-tflops") == 0 && i + 1 < argc)
            peak_bf16 = atof(argv[++i]);
        else if (argv[i][0] != '-')
            which = argv[i];
        else
            return usage();
    }
    if (strcmp(dtype, "float32") != 0 && strcmp(dtype, "tf32") != 0 &&
        strcmp(dtype, "bfloat16") != 0) {
        fprintf(stderr, "bench_model: --dtype: expected float32, tf32 or bfloat16, got '%s'\n",
                dtype);
        return 2;
    }
    if (steps < 1 || batch < 0 || seq < 0 || !(peak_bf16 > 0)) return usage();
    int known = strcmp(which, "all") == 0;
    for (size_t k = 0; k < sizeof SIZES / sizeof SIZES[0]; k++)
        known |= !strcmp(which, SIZES[k].name);
    if (!known) {
        fprintf(stderr, "bench_model: unknown size '%s'\n", which);
        return usage();
    }
    int rc = 0;
    const rl_backend *real = open_backend(device, dtype, &rc);
    if (!real) return rc;
    rl_mem_counter mem; // peak memory through the backend
    rl_mem_counter_init(&mem, real);
    const rl_backend *be = &mem.be;
    rl_err err;
    char desc[512];
    rl_backend_cpu_describe(desc, sizeof desc);
    printf("backend %s, %s; %s\n", be->name, dtype, desc);
    bench_precision prec = {dtype,
                            strcmp(dtype, "bfloat16") == 0 ? peak_bf16
                            : strcmp(dtype, "tf32") == 0   ? peak_bf16 / 2
                                                           : PEAK_FP32 * peak_bf16 / PEAK_BF16,
                            peak_bf16};
    double gbs = 0.0; // measured once, when the first batch-1 run needs it
    for (size_t k = 0; k < sizeof SIZES / sizeof SIZES[0]; k++) {
        bench_size s = SIZES[k];
        int all = strcmp(which, "all") == 0;
        if (strcmp(which, s.name) != 0 && (!all || s.decode_only || s.train_only)) continue;
        if (batch) s.B = batch;
        if (seq) s.T = seq;
        rl_model_config cfg = config_of(&s);
        rl_model *m;
        mem.peak = mem.live;
        if (rl_model_create(&m, &cfg, be, &err)) {
            fprintf(stderr, "bench_model: %s\n", err.msg);
            rl_mem_counter_release(&mem);
            rl_backend_release(real);
            return 1;
        }
        rl_model_init_random(m, 1, 0.02f);
        printf("\n%s: C=%d L=%d NH=%d NKV=%d hd=%d FF=%d V=%d (%s): %.2fM parameters, %.2fM in "
               "matrix products\n",
               s.name, s.C, s.L, s.NH, s.NKV, m->hd, s.FF, s.V, s.tied ? "tied" : "untied",
               1e-6 * rl_model_num_weights(m), 1e-6 * matmul_params(m));
        if (s.train_only) {
            if (bench_train(m, &s, steps, &prec, &mem)) return 1;
        } else {
            if (!s.decode_only) {
                bench_sgemm(be, m, s.B * s.T);
                if (bench_train(m, &s, steps, NULL, &mem)) return 1;
                if (bench_decode(m, &s, 64, gen > 0 ? gen : s.gen)) return 1;
            }
            if (!gbs) gbs = bench_read_bandwidth_gbs();
            if (bench_decode_one(m, &s, gen > 0 ? gen : s.gen, gbs)) return 1;
        }
        rl_model_free(m);
    }
    rl_mem_counter_release(&mem);
    rl_backend_release(real);
    return 0;
}
