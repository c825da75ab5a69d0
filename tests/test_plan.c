// test_plan: the GPU memory planner (policy/memplan.c, `rlpipe plan`).
//
//   - parameter counts of the four shipped shapes (configs/shapes/*/config.json) against the
//     totals Hugging Face reports for the published checkpoints
//   - every term of one plan (R1-Distill-Qwen-1.5B, 8 GPUs) against numbers computed by hand
//     (written out below as literals, not through the planner's code)
//   - paged KV blocks with shared prompt blocks and sliding-window layers, by hand
//   - the formula against a measurement: the CPU model's real allocations (a counting backend)
//     for a forward + log-probs + backward + AdamW step and a KV cache, at float32
//   - the command: the four shapes print budgets, the 32B shape on 8 x 80 GB does not fit and
//     says what would, --json parses, bad input exits 2 with one line
#define _POSIX_C_SOURCE 200809L
#include "kernels/backend.h"
#include "kernels/rng.h"
#include "policy/hf_config.h"
#include "policy/memplan.h"
#include "policy/model.h"
#include "policy/optim.h"
#include "test_proc.h"
#include "test_util.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>

static const char *SHAPES[4] = {"qwen2.5-0.5b", "r1-distill-qwen-1.5b", "qwen2.5-7b",
                                "r1-distill-qwen-32b"};

static int load_shape(const char *name, rl_model_config *mc) {
    char path[256];
    snprintf(path, sizeof path, "configs/shapes/%s/config.json", name);
    rl_err err = {0};
    int rc = rl_hf_config_load(mc, path, &err);
    CHECK(rc == 0, "%s: %s", path, err.msg);
    return rc;
}

// ---- parameter counts ----------------------------------------------------------------------------

static void test_param_counts(void) {
    // The published BF16 totals (safetensors metadata on the Hub; ../shared/notes/qwen2-format.md).
    const int64_t want[4] = {494032768LL, 1777088000LL, 7615616512LL, 32763876352LL};
    for (int i = 0; i < 4; i++) {
        rl_model_config mc;
        if (load_shape(SHAPES[i], &mc)) continue;
        int64_t n = rl_memplan_param_count(&mc, NULL);
        CHECK(n == want[i], "%s: %lld parameters, want %lld", SHAPES[i], (long long)n,
              (long long)want[i]);
    }
    // the fixtures are the real shapes (published config.json values)
    rl_model_config mc;
    if (load_shape("r1-distill-qwen-32b", &mc) == 0) {
        CHECK(mc.hidden_size == 5120 && mc.intermediate_size == 27648 &&
                  mc.num_hidden_layers == 64 && mc.num_attention_heads == 40 &&
                  mc.num_key_value_heads == 8 && mc.vocab_size == 152064 &&
                  mc.max_position_embeddings == 131072 && !mc.tie_word_embeddings &&
                  mc.rms_norm_eps == 1e-5 && mc.rope_theta == 1e6,
              "32B shape");
    }
    if (load_shape("r1-distill-qwen-1.5b", &mc) == 0)
        CHECK(mc.rope_theta == 10000 && mc.max_window_layers == 21 && !mc.use_sliding_window &&
                  !mc.tie_word_embeddings && mc.vocab_size == 151936,
              "1.5B shape");
}

// ---- one plan by hand ------------------------------------------------------------------------------

static void check_eq(double got, double want, const char *what) {
    CHECK(got == want, "%s: got %.0f, want %.0f (off by %.0f)", what, got, want, got - want);
}

static void test_hand_computed(void) {
    rl_model_config mc;
    if (load_shape("r1-distill-qwen-1.5b", &mc)) return;
    rl_memplan_params p = {.gpus = 8,
                           .tensor_parallel = 1,
                           .act = RL_BF16,
                           .micro_batch = 1,
                           .seq_len = 4096,
                           .rollout_seqs = 64,
                           .prompt_len = 512,
                           .completion_len = 4096,
                           .group_size = 8,
                           .decode_rows = 1024,
                           .logits_floats = (size_t)16 << 20,
                           .reserve_bytes = 0};
    rl_memplan m;
    rl_err err = {0};
    CHECK(rl_memplan_compute(&mc, &p, &m, &err) == 0, "%s", err.msg);
    // P = 1,777,088,000; one layer: q|k|v 2048 x 1536 + bias 2048 + o 1536 x 1536
    // + 3 x 8960 x 1536 + 2 x 1536 norms = 46,797,824
    CHECK(m.layer_params == 46797824, "layer params %lld", (long long)m.layer_params);
    // ZeRO-0: 18 bytes per parameter
    check_eq(m.weights[0], 3554176000.0, "weights bf16");
    check_eq(m.grads[0], 7108352000.0, "grads f32");
    check_eq(m.master[0], 7108352000.0, "master f32");
    check_eq(m.optim[0], 14216704000.0, "AdamW m, v");
    check_eq(m.state[0], 31987584000.0, "ZeRO-0 state");
    // ZeRO-1 over 8: 2P + 4P + (4P + 8P) / 8
    check_eq(m.state[1], 13328160000.0, "ZeRO-1 state");
    // ZeRO-2: 2P + (4P + 4P + 8P) / 8 + one piece of float32 gradients in flight; the largest
    // piece is the lm_head 151936 x 1536 = 233,373,696 (> one layer)
    check_eq(m.state[2], 7108352000.0 + 933494784.0, "ZeRO-2 state");
    // ZeRO-3: 18P / 8 + (2 + 2 + 4) bytes x 233,373,696 in flight
    check_eq(m.state[3], 3998448000.0 + 1866989568.0, "ZeRO-3 state");
    // activations, N = 4096 rows: per layer and row (2*1536 + 2048 + 1536 + 2*8960) * 2 bytes
    // + (2 + 12) * 4 bytes = 49,208; x 4096 x 28 layers
    check_eq(m.acts_layers, 5643567104.0, "saved activations");
    // recompute: 28 layer inputs 4096 x 1536 x 2 bytes + one layer 201,555,968
    check_eq(m.acts_recompute, 352321536.0 + 201555968.0, "recompute activations");
    // 4096 x (4 x 1536 + 8960) x 2 + 4096 x 5 x 4 + 4096 x 3 x 4 + 1 x 4
    check_eq(m.acts_common, 123863044.0, "common activations");
    // 16,777,216 / 151,936 = 110 rows of float32 logits
    check_eq(m.logits, 110.0 * 151936 * 4, "logit chunk");
    // 4096 x (2*1536 + 2048 + 1536 + 3*8960) x 2
    check_eq(m.grad_scratch, 274726912.0, "backward scratch");
    check_eq(m.acts_total[0], 6109008900.0, "activations total");
    // KV: a group of 8 shares 512 / 64 = 8 prompt blocks; each sample holds 4608 / 64 - 8 = 64
    // more: 8 + 8 x 64 = 520 per group, 8 groups, 28 layers = 116,480 blocks of 64 positions x
    // K and V of 2 heads x 128 x 2 bytes (1,024 bytes per position)
    CHECK(m.kv_blocks == 116480, "kv blocks %lld", (long long)m.kv_blocks);
    check_eq(m.kv, 116480.0 * 64 * 1024, "paged KV");
    check_eq(m.kv_flat, 64.0 * 28 * 4608 * 1024, "flat KV");
    // decode: 1024 x (3*1536 + 2048 + 1536 + 3*8960) x 2 + 64 x 1536 x 2 + 64 x 151936 x 4
    check_eq(m.decode, 71827456.0 + 196608.0 + 38895616.0, "decode scratch");
    check_eq(m.rollout_weights[3], 3554176000.0 - 444272000.0, "ZeRO-3 gathered weights");
    check_eq(m.peak[1][0], 13328160000.0 + 6109008900.0 + 7633633280.0 + 110919680.0,
             "ZeRO-1 peak");
    // float32 training: 16 bytes per parameter, no separate master
    p.act = RL_F32;
    CHECK(rl_memplan_compute(&mc, &p, &m, &err) == 0, "%s", err.msg);
    check_eq(m.state[0], 16.0 * 1777088000, "float32 ZeRO-0 state");
    check_eq(m.master[0], 0.0, "float32 master");
    // tensor parallel 2 halves the model state of every GPU
    p.act = RL_BF16, p.tensor_parallel = 2;
    CHECK(rl_memplan_compute(&mc, &p, &m, &err) == 0, "%s", err.msg);
    check_eq(m.state[0], 31987584000.0 / 2, "TP2 ZeRO-0 state");
    // bad workloads name the field
    p.tensor_parallel = 3;
    CHECK(rl_memplan_compute(&mc, &p, &m, &err) != 0 && strstr(err.msg, "tensor_parallel"),
          "tp 3: %s", err.msg);
    p.tensor_parallel = 1, p.micro_batch = 0;
    CHECK(rl_memplan_compute(&mc, &p, &m, &err) != 0 && strstr(err.msg, "micro_batch"), "mb 0");
}

// ---- KV blocks with windows ------------------------------------------------------------------------

static void test_kv_windows(void) {
    rl_model_config mc;
    rl_hf_config_defaults(&mc);
    mc.hidden_size = 64, mc.num_hidden_layers = 4, mc.num_attention_heads = 4;
    mc.num_key_value_heads = 2, mc.intermediate_size = 128, mc.vocab_size = 300;
    mc.use_sliding_window = 1, mc.sliding_window = 100, mc.max_window_layers = 2;
    // 10 sequences in groups of 4 (2 groups and a group of 2), 130 + 200 = 330 tokens: 6 blocks,
    // the first 130 / 64 = 2 shared. Full layers (0, 1): 2 + 4 x 4 = 18 per group of 4, 2 + 2 x 4
    // = 10 for the group of 2: 46. Window layers (2, 3), window 100: at most ceil(99/64) + 1 = 3
    // blocks per sequence; the window (positions 230..329) no longer sees the prompt blocks: 30.
    CHECK(rl_memplan_kv_blocks(&mc, 10, 130, 200, 4) == 2 * 46 + 2 * 30, "window 100: %lld",
          (long long)rl_memplan_kv_blocks(&mc, 10, 130, 200, 4));
    // prompt 300 + 50: 6 blocks, 4 shared; full: 4 + 4 x 2 = 12. Window 200 may span 5 blocks,
    // more than the sequence's own 2 beyond the shared 4: a window never costs more than full.
    mc.sliding_window = 200;
    CHECK(rl_memplan_kv_blocks(&mc, 4, 300, 50, 4) == 4 * 12, "window 200: %lld",
          (long long)rl_memplan_kv_blocks(&mc, 4, 300, 50, 4));
    // no window, no sharing (group 1): every sequence its own ceil(len / 64) blocks per layer
    mc.use_sliding_window = 0;
    CHECK(rl_memplan_kv_blocks(&mc, 3, 10, 100, 1) == 3 * 2 * 4, "flat");
    // a long generation on window layers: 1000 + 7000 tokens, window 4096 on layers >= 2
    mc.use_sliding_window = 1, mc.sliding_window = 4096;
    int64_t all = 125 * 4, win = 125 * 2 + (64 + 1) * 2; // 8000/64 = 125 blocks; 4095/64 -> 64 + 1
    CHECK(rl_memplan_kv_blocks(&mc, 1, 1000, 7000, 1) == win && win < all, "long window: %lld",
          (long long)rl_memplan_kv_blocks(&mc, 1, 1000, 7000, 1));
}

// ---- the formula against the CPU model's real allocations --------------------------------------

static void test_measured(void) {
    rl_mem_counter mem; // the CPU backend with its allocations counted: live bytes, their peak
    rl_mem_counter_init(&mem, rl_backend_cpu());
    rl_model_config mc;
    rl_hf_config_defaults(&mc);
    mc.hidden_size = 256, mc.num_hidden_layers = 4, mc.num_attention_heads = 4;
    mc.num_key_value_heads = 2, mc.intermediate_size = 704, mc.vocab_size = 1024;
    mc.max_position_embeddings = 256, mc.tie_word_embeddings = 0, mc.head_dim = 0;
    const int B = 4, T = 128, N = B * T;
    rl_err err = {0};
    rl_model *m;
    if (rl_model_create(&m, &mc, &mem.be, &err)) {
        CHECK(0, "%s", err.msg);
        rl_mem_counter_release(&mem);
        return;
    }
    rl_model_init_random(m, 7, 0.02f);
    int32_t *tokens = malloc(N * sizeof *tokens), *targets = malloc(N * sizeof *targets);
    float *logp = malloc(N * sizeof *logp), *dlogp = malloc(N * sizeof *dlogp);
    rl_rng rng = rl_rng_stream(3, RL_RNG_DATA, 0, 0);
    for (int i = 0; i < N; i++) tokens[i] = (int32_t)rl_rng_below(&rng, 1024);
    for (int i = 0; i < N; i++) {
        targets[i] = (i + 1) % T ? tokens[i + 1] : -1;
        dlogp[i] = -1.0f / N;
    }
    size_t n;
    float *params = rl_model_params(m, &n);
    int ns;
    const rl_param_span *spans = rl_model_decay_spans(m, &ns);
    rl_adamw *opt = NULL;
    CHECK(rl_adamw_create(&opt, m->be, n, spans, ns, &err) == 0, "%s", err.msg);
    rl_adamw_hparams hp = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
    CHECK(rl_model_forward(m, tokens, NULL, B, T, &err) == 0, "%s", err.msg);
    CHECK(rl_model_token_logprobs(m, targets, 1.0f, logp, NULL, &err) == 0, "%s", err.msg);
    rl_model_zero_grad(m);
    CHECK(rl_model_backward(m, dlogp, NULL, &err) == 0, "%s", err.msg);
    if (opt) rl_adamw_step(opt, params, rl_model_grads(m, NULL), &hp, 1.0f);
    double train_peak = mem.peak;
    // a contiguous KV cache: 6 slots of 200 positions
    double before = mem.live;
    rl_kv_cache *kv = rl_kv_cache_create(m, 6, 200, &err);
    CHECK(kv != NULL, "%s", err.msg);
    double kv_measured = mem.live - before;

    rl_memplan_params p = {.gpus = 1,
                           .tensor_parallel = 1,
                           .act = RL_F32,
                           .micro_batch = B,
                           .seq_len = T,
                           .rollout_seqs = 6,
                           .prompt_len = 0,
                           .completion_len = 200,
                           .group_size = 1,
                           .decode_rows = 1,
                           .logits_floats = m->logits_budget,
                           .reserve_bytes = 0};
    rl_memplan plan;
    CHECK(rl_memplan_compute(&mc, &p, &plan, &err) == 0, "%s", err.msg);
    double predicted = plan.state[0] + plan.acts_total[0];
    double rel = (train_peak - predicted) / train_peak;
    fprintf(stderr,
            "  measured peak of a training step (C=256 L=4 V=1024, B=%d T=%d, float32): "
            "%.0f bytes; planner %.0f bytes; error %+.3f%%\n",
            B, T, train_peak, predicted, 100 * rel);
    // the planner counts tensors exactly; the model pads each tensor / view to 64 bytes
    CHECK(fabs(rel) < 0.005, "training peak: measured %.0f, planned %.0f (%.3f%%)", train_peak,
          predicted, 100 * rel);
    CHECK(predicted <= train_peak, "the planner may only miss padding: %.0f > %.0f", predicted,
          train_peak);
    double kv_rel = (kv_measured - plan.kv_flat) / kv_measured;
    fprintf(stderr,
            "  measured KV cache (6 slots x 200 positions, pool for all of them): %.0f bytes; "
            "planner (flat) %.0f; error %+.3f%%\n",
            kv_measured, plan.kv_flat, 100 * kv_rel);
    // the paged cache's pools hold exactly what the planner counts; beside them it allocates
    // its block table (int32 [slots, ceil(200 / RL_KV_BLOCK)] for the one full-attention group),
    // padded to 64 bytes like every tensor of a spec table
    double table_bytes = 6.0 * ((200 + RL_KV_BLOCK - 1) / RL_KV_BLOCK) * sizeof(int32_t);
    table_bytes = ceil(table_bytes / 64) * 64;
    CHECK((double)rl_kv_cache_bytes_total(kv) == plan.kv_flat, "kv pools: %zu, planned %.0f",
          rl_kv_cache_bytes_total(kv), plan.kv_flat);
    CHECK(kv_measured == plan.kv_flat + table_bytes, "kv: measured %.0f, planned %.0f + table %.0f",
          kv_measured, plan.kv_flat, table_bytes);
    rl_kv_cache_free(kv);
    rl_adamw_free(opt);
    rl_model_free(m);
    CHECK(mem.live == 0, "leaked %.0f bytes", mem.live);
    rl_mem_counter_release(&mem);
    free(tokens), free(targets), free(logp), free(dlogp);
}

// ---- the command -------------------------------------------------------------------------------

static char g_out[1 << 16], g_err[1 << 14];

static int run_plan(const char *const *args) {
    const char *argv[TEST_ARGV_MAX];
    int n = test_argv_rlpipe(argv, TEST_ARGV_MAX, (const char *const[]){"plan", NULL});
    n = test_argv_append(argv, n, TEST_ARGV_MAX, args);
    (void)n;
    return test_run_capture(argv, NULL, g_out, sizeof g_out, g_err, sizeof g_err);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_command_shapes(void) {
    for (int i = 0; i < 4; i++) {
        char path[128];
        snprintf(path, sizeof path, "configs/shapes/%s.yaml", SHAPES[i]);
        int rc = run_plan((const char *const[]){path, "--gpus", "8", NULL});
        CHECK(rc == 0, "%s: exit %d: %s", path, rc, g_err);
        CHECK(strstr(g_out, "model state per GPU") && strstr(g_out, "KV cache, paged") &&
                  strstr(g_out, "verdict: "),
              "%s: %s", path, g_out);
    }
    // the 1.5B run fits on 8 x 80 GB; the 32B one does not even with ZeRO-1 and says what would
    run_plan(
        (const char *const[]){"configs/shapes/r1-distill-qwen-1.5b.yaml", "--gpus", "8", NULL});
    CHECK(strstr(g_out, "verdict: fits"), "1.5B: %s", g_out);
    int rc = run_plan((const char *const[]){"configs/shapes/r1-distill-qwen-32b.yaml", "--gpus",
                                            "8", "--gpu-memory", "80", NULL});
    CHECK(rc == 0, "32B exit %d", rc);
    CHECK(strstr(g_out, "verdict: does NOT fit: even ZeRO-1"), "32B: %s", g_out);
    CHECK(strstr(g_out, "ZeRO-3 + recomputation on 8 GPUs") && strstr(g_out, "tensor parallel"),
          "32B needs: %s", g_out);

    // --json: the same numbers for scripts
    rc = run_plan((const char *const[]){"configs/shapes/r1-distill-qwen-32b.yaml", "--gpus", "8",
                                        "--json", NULL});
    json_error_t je;
    json_t *j = json_loads(g_out, 0, &je);
    CHECK(rc == 0 && j, "json: %s (%s)", je.text, g_out);
    if (j) {
        json_t *v = json_object_get(j, "verdict");
        CHECK(json_is_false(json_object_get(v, "fits")), "32B fits?");
        // 32,763,876,352 parameters: ZeRO-1 state per GPU = 6P + 12P/8 = 7.5P bytes
        double z1 = json_real_value(
            json_array_get(json_object_get(json_object_get(j, "state"), "total"), 1));
        CHECK(z1 == 7.5 * 32763876352.0, "ZeRO-1 state %.0f", z1);
        CHECK(json_integer_value(json_object_get(json_object_get(j, "model"), "parameters")) ==
                  32763876352LL,
              "parameters");
        CHECK(json_real_value(json_object_get(v, "need_bytes")) > 80.0 * (1 << 30),
              "need > 80 GiB");
        CHECK(json_integer_value(json_object_get(v, "tensor_parallel")) >= 2 ||
                  json_integer_value(json_object_get(v, "tensor_parallel_here")) >= 2,
              "a tensor-parallel suggestion");
        json_decref(j);
    }
    // a from-scratch config (the model section) works too
    rc = run_plan((const char *const[]){"configs/tiny.yaml", "--json", NULL});
    j = json_loads(g_out, 0, &je);
    CHECK(rc == 0 && j, "tiny json");
    if (j) {
        CHECK(json_is_true(json_object_get(json_object_get(j, "verdict"), "fits")), "tiny fits");
        json_decref(j);
    }
}

static void expect_bad(const char *const *args, const char *needle) {
    int rc = run_plan(args);
    CHECK(rc == 2, "%s: exit %d", args[0], rc);
    CHECK(count_lines(g_err) == 1 && strstr(g_err, needle), "stderr '%s', want '%s'", g_err,
          needle);
    CHECK(g_out[0] == '\0', "stdout on error: %s", g_out);
}

static void test_command_errors(void) {
    const char *cfg = "configs/shapes/qwen2.5-0.5b.yaml";
    expect_bad((const char *const[]){cfg, "--gpus", "0", NULL}, "--gpus");
    expect_bad((const char *const[]){cfg, "--gpus", "eight", NULL}, "--gpus");
    expect_bad((const char *const[]){cfg, "--gpu-memory", "-5", NULL}, "--gpu-memory");
    expect_bad((const char *const[]){cfg, "--gpu-memory", "nan", NULL}, "--gpu-memory");
    expect_bad((const char *const[]){cfg, "--dtype", "fp8", NULL}, "--dtype");
    expect_bad((const char *const[]){cfg, "--gpus", "6", "--tensor-parallel", "4", NULL},
               "--tensor-parallel");
    expect_bad((const char *const[]){cfg, "--seq-len", "100000", NULL}, "max_position_embeddings");
    expect_bad((const char *const[]){cfg, "--bogus", NULL}, "unknown option");
    expect_bad((const char *const[]){"configs/shapes/nope.yaml", NULL}, "nope.yaml");
    expect_bad((const char *const[]){NULL}, "CONFIG");
    // a model directory without config.json, and a broken config.json: named in the message
    char dir[] = "/tmp/rlpipe-test-plan-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char set[256], path[300];
    snprintf(set, sizeof set, "model.path=%s", dir);
    expect_bad((const char *const[]){cfg, "--set", set, NULL}, dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("{\"model_type\": \"qwen2\", \"hidden_size\": \"wide\"}", f);
        fclose(f);
    }
    expect_bad((const char *const[]){cfg, "--set", set, NULL}, "hidden_size");
    unlink(path);
    rmdir(dir);
}

int main(void) {
    RUN(test_param_counts);
    RUN(test_hand_computed);
    RUN(test_kv_windows);
    RUN(test_measured);
    RUN(test_command_shapes);
    RUN(test_command_errors);
    return test_summary();
}
