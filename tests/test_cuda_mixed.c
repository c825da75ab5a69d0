// test_cuda_mixed: the whole model and its optimizer in bfloat16 mixed precision (the CUDA backend
// opened with RL_BF16: bf16 weights and activations, float32 statistics, logits, gradients,
// master weights and Adam moments) against the CPU float32 model, the reference.
//
//   - logits, log-probs and every parameter gradient of a tiny model (GQA, biases, a sliding-window
//     layer, right padding) within the bounds stated at BOUND_* below, and the logits of KV-cache
//     decoding in bf16 (measured 1.1%) within the logits bound;
//   - a 30-step SFT run whose bf16 loss curve tracks the float32 one (bounds and reasons at
//     CURVE_*), at a learning rate where round-to-nearest updates of a bf16 weight would mostly
//     be lost, so the float32 master and stochastic rounding are what make the curves agree;
//   - stochastic rounding is reproducible: the same seed gives the same bits, another seed other
//     bits; saving the master and moments and restoring them into a fresh model and optimizer
//     continues bit for bit (what a training checkpoint does);
//   - a BF16 safetensors save loads back into bf16 weights bit for bit.
//
// Both sides start from the same numbers: the CPU model's weights are rounded to bf16 first, so
// the comparison measures the bf16 computation, not the rounding of the initial weights.
// Without the CUDA backend or a device it exits 77 (skipped). In CI it runs on the emulator
// (kernels/cuda/emu/check.sh); on a GPU natively.
#define _POSIX_C_SOURCE 200809L
#include "kernels/backend.h"
#include "kernels/bf16.h"
#include "kernels/rng.h"
#include "policy/checkpoint.h"
#include "policy/model.h"
#include "policy/optim.h"
#include "test_model_util.h"
#include "test_util.h"

#include <stdint.h>
#include <sys/stat.h>

static const rl_backend *CPU, *G16;

// Whole-model bounds. bf16 keeps 8 significant bits: one rounding is a relative error of at
// most U = 2^-8 (0.39%), about U/sqrt(3) on average. Along the forward every layer rounds about
// nine act tensors (norm outputs, q|k|v, attention output, projections, residual stream,
// gate|up, SwiGLU), so a 2-layer model's logits carry some 20 roundings, and the residual stream
// and the norms pass earlier errors on, amplified where the weights are large (init std 0.3 on a
// width of 32 here, logits of size ~10). Measured on the emulator: logits 1.4% relative L2,
// log-probs 0.11 nats at worst (a low-probability target; |delta| grows with |logit|; 1.2% of
// 1 + |log-prob|), parameter gradients 1.1-5% per tensor (largest for the q/k biases: a bias
// gradient is a sum over every row, where cancellation leaves a total smaller than its terms).
// The bounds are two to four times the measured values, for a GPU that sums in other orders.
#define BOUND_LOGITS 0.03 // relative L2 of the logits
#define BOUND_LOGP   0.05 // max |delta log-prob| / (1 + |log-prob|)
#define BOUND_GRAD   0.1  // relative L2 of each parameter tensor's gradient

// SFT curve bounds. At step 0 the two losses differ only by the forward's rounding (measured
// 0.004 nats at a loss of 7.3). Over 30 steps the weights' trajectories separate by the
// stochastic rounding of the working copy (unbiased, below one bf16 ulp per element per step)
// and the bf16 gradients (a few percent, above); AdamW normalises the step size, so that is a
// few-percent error in each update's direction, and the gap grows as the loss falls. Measured on
// the emulator: max |delta loss| 0.032 nats over the 30 steps while the loss falls from 7.3 to
// 1.4; final losses 1.382 vs 1.412 (ratio 1.022). The bounds allow about 2.5x that. They do
// catch a lost master: with the optimizer's master replaced by the working copy each step and
// the new weights rounded to nearest (updates below half an ulp vanish), the emulator measured
// max |delta loss| 0.158 and a final ratio of 1.114, failing both.
#define CURVE_STEP_ABS    0.08 // max over steps |loss_bf16 - loss_f32|, nats
#define CURVE_FINAL_RATIO 0.06 // |final_bf16 / final_f32 - 1|
#define CURVE_STEPS       30

static rl_model_config config(void) {
    rl_model_config c = test_tiny_config();
    c.hidden_size = 32;
    c.head_dim = 16; // NH*hd = 64 != C
    c.intermediate_size = 48;
    c.vocab_size = 301;
    c.use_sliding_window = 1;
    c.sliding_window = 5;
    c.max_window_layers = 1; // layer 0 full, layer 1 windowed
    return c;
}

static rl_model *create(const rl_backend *be) {
    rl_model_config c = config();
    rl_model *m;
    rl_err err;
    if (rl_model_create(&m, &c, be, &err)) {
        fprintf(stderr, "rl_model_create: %s\n", err.msg);
        exit(1);
    }
    return m;
}

// Random weights rounded to bf16 (biases and norm weights perturbed so they matter), written to
// every model given.
static void init_same(rl_model **ms, int n, uint64_t seed, float std) {
    rl_model *src = ms[0];
    rl_model_init_random(src, seed, std);
    rl_rng rng = rl_rng_stream(seed, RL_RNG_INIT, 99, 0);
    for (int i = 0; i < rl_model_num_tensors(src); i++) {
        const rl_model_tensor *t = &src->tensors[i];
        float *h = malloc(t->numel * sizeof(float));
        rl_model_tensor_read(src, i, h);
        for (size_t k = 0; k < t->numel; k++) {
            if (t->init != 0) h[k] += 0.2f * (rl_rng_float(&rng) - 0.5f);
            h[k] = rl_bf16_to_f32(rl_bf16_from_f32(h[k]));
        }
        for (int j = 0; j < n; j++) rl_model_tensor_write(ms[j], i, h);
        free(h);
    }
}

typedef struct batch {
    int B, T;
    int32_t *tokens, *targets, *lengths;
    float *dlogp, *dent;
    int n_targets;
} batch;

// B rows of a fixed pattern the model can learn (token t+1 follows t with a per-row stride),
// right-padded to the given lengths; SFT seeds dlogp = -1/n_targets.
static batch make_batch(int B, int T, const int32_t *lengths, int V, uint64_t seed) {
    batch b = {B,
               T,
               malloc(sizeof(int32_t) * B * T),
               malloc(sizeof(int32_t) * B * T),
               malloc(sizeof(int32_t) * B),
               malloc(sizeof(float) * B * T),
               malloc(sizeof(float) * B * T),
               0};
    rl_rng rng = rl_rng_stream(seed, RL_RNG_DATA, 3, 0);
    for (int r = 0; r < B; r++) {
        b.lengths[r] = lengths[r];
        int start = (int)(rl_rng_float(&rng) * V), stride = 1 + r % 3;
        for (int t = 0; t < T; t++) b.tokens[r * T + t] = (start + stride * t) % V;
        for (int t = 0; t < T; t++) {
            int y = t + 1 < lengths[r] ? b.tokens[r * T + t + 1] : -1;
            b.targets[r * T + t] = y;
            b.n_targets += y >= 0;
            b.dent[r * T + t] = 0.1f * (rl_rng_float(&rng) - 0.5f);
        }
    }
    for (int k = 0; k < B * T; k++) b.dlogp[k] = b.targets[k] >= 0 ? -1.0f / b.n_targets : 0.0f;
    return b;
}

static void batch_free(batch *b) {
    free(b->tokens);
    free(b->targets);
    free(b->lengths);
    free(b->dlogp);
    free(b->dent);
}

static double rel_l2(const float *got, const float *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static float *grads_host(rl_model *m) {
    float *g = malloc(m->n_params * sizeof(float));
    m->be->mem_download(m->be, g, rl_model_grads(m, NULL), m->n_params * sizeof(float));
    return g;
}

// Raw bytes of the parameter block.
static void *params_bytes(rl_model *m) {
    size_t bytes = m->n_params * rl_dtype_size(m->act);
    void *h = malloc(bytes);
    m->be->mem_download(m->be, h, rl_model_params(m, NULL), bytes);
    return h;
}

// ------------------------------------------------------------------------------------------------

static void test_model_parity(void) {
    rl_model *ms[2] = {create(CPU), create(G16)};
    CHECK(ms[1]->act == RL_BF16 && ms[0]->act == RL_F32, "act types");
    init_same(ms, 2, 7, 0.3f);
    int32_t lengths[3] = {11, 7, 3};
    batch b = make_batch(3, 11, lengths, ms[0]->V, 1);
    size_t N = (size_t)b.B * b.T, V = (size_t)ms[0]->V;
    float *logits[2], *logp[2], *ent[2], *g[2];
    rl_err err;
    for (int k = 0; k < 2; k++) {
        logits[k] = malloc(N * V * sizeof(float));
        logp[k] = malloc(N * sizeof(float));
        ent[k] = malloc(N * sizeof(float));
        CHECK(rl_model_forward(ms[k], b.tokens, b.lengths, b.B, b.T, &err) == 0, "%s", err.msg);
        CHECK(rl_model_logits(ms[k], logits[k], &err) == 0, "%s", err.msg);
        CHECK(rl_model_token_logprobs(ms[k], b.targets, 0.9f, logp[k], ent[k], &err) == 0, "%s",
              err.msg);
        rl_model_zero_grad(ms[k]);
        CHECK(rl_model_backward(ms[k], b.dlogp, b.dent, &err) == 0, "%s", err.msg);
        g[k] = grads_host(ms[k]);
    }
    double e_logits = rel_l2(logits[1], logits[0], N * V), e_lp = 0, e_ent = 0, abs_lp = 0;
    for (size_t i = 0; i < N; i++) {
        abs_lp = fmax(abs_lp, fabs(logp[1][i] - logp[0][i]));
        e_lp = fmax(e_lp, fabs(logp[1][i] - logp[0][i]) / (1 + fabs(logp[0][i])));
        e_ent = fmax(e_ent, fabs(ent[1][i] - ent[0][i]) / (1 + fabs(ent[0][i])));
    }
    printf("  logits: relative L2 error %.4f (bound %.3f); log-probs: max |delta| %.4f nats, "
           "max |delta|/(1+|ref|) %.4f, entropies %.4f (bound %.3f)\n",
           e_logits, BOUND_LOGITS, abs_lp, e_lp, e_ent, BOUND_LOGP);
    CHECK(e_logits <= BOUND_LOGITS, "logits relative error %g", e_logits);
    CHECK(e_lp <= BOUND_LOGP && e_ent <= BOUND_LOGP, "log-prob error %g, entropy error %g", e_lp,
          e_ent);
    CHECK(e_logits > 0, "the bf16 model computes in bf16 (no error at all is suspicious)");
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < rl_model_num_tensors(ms[0]); i++) {
        const rl_model_tensor *t = &ms[0]->tensors[i];
        double e = rel_l2(g[1] + t->offset, g[0] + t->offset, t->numel);
        CHECK(e <= BOUND_GRAD, "gradient of %s: relative error %g", t->name, e);
        printf("    %-45s %.4f\n", t->name, e);
        if (e > worst) worst = e, worst_name = t->name;
    }
    printf("  gradients: worst tensor relative L2 error %.4f (%s; bound %.3f)\n", worst, worst_name,
           BOUND_GRAD);
    // decoding in bf16 (prefill of each sequence, then one step for its last token) against the
    // float32 forward's logits at those positions, within the same bound
    rl_kv_cache *kv = rl_kv_cache_create(ms[1], b.B, b.T, &err);
    CHECK(kv != NULL, "kv cache: %s", err.msg);
    float *dec = malloc((size_t)b.B * V * sizeof(float)), *ref = malloc((size_t)b.B * V * 4);
    int slots[3] = {0, 1, 2};
    const int32_t *toks[3];
    int32_t ntok[3], last[3];
    for (int r = 0; r < b.B; r++) {
        toks[r] = b.tokens + r * b.T;
        ntok[r] = b.lengths[r] - 1;
        last[r] = b.tokens[r * b.T + b.lengths[r] - 1];
        memcpy(ref + r * V, logits[0] + ((size_t)r * b.T + b.lengths[r] - 1) * V, V * 4);
    }
    if (kv) {
        CHECK(rl_model_prefill(ms[1], kv, b.B, slots, toks, ntok, dec, &err) == 0, "prefill: %s",
              err.msg);
        CHECK(rl_model_decode_step(ms[1], kv, b.B, slots, last, dec, &err) == 0, "decode: %s",
              err.msg);
        double e_dec = rel_l2(dec, ref, (size_t)b.B * V);
        printf("  decoding: relative L2 error of the last positions' logits %.4f (bound %.3f)\n",
               e_dec, BOUND_LOGITS);
        CHECK(e_dec <= BOUND_LOGITS, "bf16 decoding logits relative error %g", e_dec);
    }
    rl_kv_cache_free(kv);
    free(dec);
    free(ref);
    for (int k = 0; k < 2; k++) {
        free(logits[k]);
        free(logp[k]);
        free(ent[k]);
        free(g[k]);
        rl_model_free(ms[k]);
    }
    batch_free(&b);
}

// One SFT step (forward, loss, backward, clip, AdamW); returns the loss before the update.
static double sft_step(rl_model *m, rl_adamw *opt, const batch *b, const rl_adamw_hparams *hp) {
    rl_err err;
    size_t N = (size_t)b->B * b->T;
    float *logp = malloc(N * sizeof(float));
    CHECK(rl_model_forward(m, b->tokens, b->lengths, b->B, b->T, &err) == 0, "%s", err.msg);
    CHECK(rl_model_token_logprobs(m, b->targets, 1.0f, logp, NULL, &err) == 0, "%s", err.msg);
    double loss = 0;
    for (size_t i = 0; i < N; i++) loss -= b->targets[i] >= 0 ? logp[i] / b->n_targets : 0.0;
    rl_model_zero_grad(m);
    CHECK(rl_model_backward(m, b->dlogp, NULL, &err) == 0, "%s", err.msg);
    rl_adamw_step(opt, rl_model_params(m, NULL), rl_model_grads(m, NULL), hp,
                  rl_clip_scale(rl_model_grad_norm(m), 1.0f));
    free(logp);
    return loss;
}

static rl_adamw *make_opt(rl_model *m, uint64_t seed) {
    rl_adamw *opt;
    rl_err err;
    int ns;
    const rl_param_span *spans = rl_model_decay_spans(m, &ns);
    if (rl_adamw_create(&opt, m->be, m->n_params, spans, ns, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    rl_adamw_set_seed(opt, seed);
    return opt;
}

// lr 1e-3 against weights of std 0.3: a bf16 ulp at |w| in [0.25, 0.5) is 2^-9 ~ 0.002, so an
// Adam step (~lr per element) is below half an ulp there and round-to-nearest would drop it.
static const rl_adamw_hparams SFT_HP = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.01f};

static void test_sft_curve(void) {
    rl_model *ms[2] = {create(CPU), create(G16)};
    init_same(ms, 2, 3, 0.3f);
    int32_t lengths[4] = {12, 12, 9, 6};
    batch b = make_batch(4, 12, lengths, ms[0]->V, 2);
    rl_adamw *opt[2] = {make_opt(ms[0], 5), make_opt(ms[1], 5)};
    CHECK(!rl_adamw_has_master(opt[0]) && rl_adamw_has_master(opt[1]), "master only for bf16");
    double loss[2][CURVE_STEPS], worst = 0;
    for (int s = 0; s < CURVE_STEPS; s++)
        for (int k = 0; k < 2; k++) loss[k][s] = sft_step(ms[k], opt[k], &b, &SFT_HP);
    printf("  step  loss f32  loss bf16\n");
    for (int s = 0; s < CURVE_STEPS; s++) {
        worst = fmax(worst, fabs(loss[1][s] - loss[0][s]));
        if (s % 5 == 0 || s == CURVE_STEPS - 1)
            printf("  %4d  %8.5f  %9.5f\n", s, loss[0][s], loss[1][s]);
    }
    double f32_drop = loss[0][0] - loss[0][CURVE_STEPS - 1];
    double ratio = loss[1][CURVE_STEPS - 1] / loss[0][CURVE_STEPS - 1];
    printf("  max |delta loss| %.4f (bound %.2f); final ratio %.4f (bound 1 +- %.2f); float32 "
           "drop %.3f\n",
           worst, CURVE_STEP_ABS, ratio, CURVE_FINAL_RATIO, f32_drop);
    CHECK(f32_drop > 0.5, "the float32 run must learn (loss drop %g)", f32_drop);
    CHECK(worst <= CURVE_STEP_ABS, "max per-step |delta loss| %g", worst);
    CHECK(fabs(ratio - 1) <= CURVE_FINAL_RATIO, "final loss ratio %g", ratio);
    for (int k = 0; k < 2; k++) {
        rl_adamw_free(opt[k]);
        rl_model_free(ms[k]);
    }
    batch_free(&b);
}

// The same seed gives the same bits; another seed other bits; a restored master and optimizer
// state continue bit for bit.
static void test_rounding_reproducible(void) {
    rl_model *ms[4] = {create(G16), create(G16), create(G16), create(G16)};
    init_same(ms, 4, 9, 0.3f);
    int32_t lengths[2] = {8, 5};
    batch b = make_batch(2, 8, lengths, ms[0]->V, 4);
    rl_adamw *opt[3] = {make_opt(ms[0], 77), make_opt(ms[1], 77), make_opt(ms[2], 78)};
    for (int s = 0; s < 3; s++)
        for (int k = 0; k < 3; k++) sft_step(ms[k], opt[k], &b, &SFT_HP);
    size_t bytes = ms[0]->n_params * 2;
    void *p0 = params_bytes(ms[0]), *p1 = params_bytes(ms[1]), *p2 = params_bytes(ms[2]);
    CHECK(memcmp(p0, p1, bytes) == 0, "same seed: the bf16 weights must be the same bits");
    CHECK(memcmp(p0, p2, bytes) != 0, "another seed: the stochastic rounding must differ");
    // checkpoint and restore into model 3: weights, master, moments, step
    size_t n = opt[0]->n;
    float *x = malloc(n * 4), *mm = malloc(n * 4), *vv = malloc(n * 4);
    rl_adamw_master_download(opt[0], rl_model_params(ms[0], NULL), x);
    rl_adamw_state_download(opt[0], mm, vv);
    ms[3]->be->mem_upload(ms[3]->be, rl_model_params(ms[3], NULL), p0, bytes);
    rl_adamw *restored = make_opt(ms[3], 77);
    rl_adamw_state_upload(restored, mm, vv, opt[0]->step);
    rl_adamw_master_upload(restored, x);
    sft_step(ms[0], opt[0], &b, &SFT_HP);
    sft_step(ms[3], restored, &b, &SFT_HP);
    void *q0 = params_bytes(ms[0]), *q3 = params_bytes(ms[3]);
    CHECK(memcmp(q0, q3, bytes) == 0, "a restored master and state must continue bit for bit");
    CHECK(memcmp(q0, p0, bytes) != 0, "the step changed the weights");
    free(x);
    free(mm);
    free(vv);
    free(p0);
    free(p1);
    free(p2);
    free(q0);
    free(q3);
    rl_adamw_free(restored);
    for (int k = 0; k < 3; k++) rl_adamw_free(opt[k]);
    for (int k = 0; k < 4; k++) rl_model_free(ms[k]);
    batch_free(&b);
}

// A bf16 model saved as BF16 safetensors loads back into bf16 weights bit for bit.
static void test_bf16_save_load(void) {
    rl_model *m = create(G16);
    init_same(&m, 1, 13, 0.3f);
    char dir[] = "/tmp/rlpipe-test-mixed-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256];
    snprintf(path, sizeof path, "%s/model", dir);
    rl_err err;
    CHECK(rl_model_save(m, path, 1, &err) == 0, "save: %s", err.msg);
    rl_model *l = NULL;
    CHECK(rl_model_load(&l, path, G16, &err) == 0, "load: %s", err.msg);
    if (l) {
        void *a = params_bytes(m), *c = params_bytes(l);
        CHECK(l->act == RL_BF16 && memcmp(a, c, m->n_params * 2) == 0,
              "BF16 file -> bf16 weights must be exact");
        free(a);
        free(c);
    }
    rl_model_free(l);
    rl_model_free(m);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

int main(void) {
    rl_err err;
    CPU = rl_backend_cpu();
    G16 = rl_backend_cuda_open(0, 0, RL_BF16, &err);
    if (!G16) {
        fprintf(stderr, "skip: %s\n", err.msg);
        return 77;
    }
    RUN(test_model_parity);
    RUN(test_rounding_reproducible);
    RUN(test_bf16_save_load);
    RUN(test_sft_curve);
    rl_backend_release(G16);
    return test_summary();
}
