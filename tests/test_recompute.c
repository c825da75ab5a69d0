// test_recompute: per-layer activation recomputation (train.recompute: layer). Two models with
// the same weights, one keeping every layer's activations and one keeping only each layer's input,
// must give bit-identical log-probs, entropies, gradients (through rl_model_backward and
// rl_model_backward_logits) and AdamW updates, on a shape that exercises every layer piece
// (grouped-query attention, biases, a sliding-window layer, padding, the lm_head in chunks); the
// recomputing model must hold less activation memory; switching the mode on a live model must
// work both ways.
#include "kernels/rng.h"
#include "policy/model.h"
#include "policy/optim.h"
#include "test_model_util.h"
#include "test_util.h"

#include <stdint.h>

static const rl_backend *BE;

enum { B = 3, T = 9, N = B * T };

static rl_model_config config(void) {
    rl_model_config c = test_tiny_config();
    c.num_hidden_layers = 3;
    c.use_sliding_window = 1;
    c.sliding_window = 4;
    c.max_window_layers = 2; // layers 0, 1 full; layer 2 windowed
    return c;
}

static rl_model *make_model(int recompute) {
    rl_model_config c = config();
    rl_model *m;
    rl_err err;
    if (rl_model_create(&m, &c, BE, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    rl_model_init_random(m, 11, 0.3f);
    m->logits_budget = (size_t)4 * c.vocab_size; // lm_head in chunks of 4 rows
    rl_model_set_recompute(m, recompute);
    return m;
}

typedef struct batch {
    int32_t tokens[N], targets[N], lengths[B];
    float dlogp[N], dent[N], *dlogits;
} batch;

static batch make_batch(int V) {
    batch b;
    rl_rng rng = rl_rng_stream(5, RL_RNG_INIT, 7, 0);
    int32_t lengths[B] = {9, 6, 2};
    memcpy(b.lengths, lengths, sizeof lengths);
    for (int i = 0; i < N; i++) {
        b.tokens[i] = (int32_t)(rl_rng_float(&rng) * V);
        b.targets[i] = (int32_t)(rl_rng_float(&rng) * V);
        b.dlogp[i] = rl_rng_float(&rng) - 0.5f;
        b.dent[i] = 0.3f * (rl_rng_float(&rng) - 0.5f);
    }
    b.dlogits = malloc((size_t)N * V * sizeof(float));
    for (size_t i = 0; i < (size_t)N * V; i++) b.dlogits[i] = rl_rng_float(&rng) - 0.5f;
    return b;
}

// One forward + log-probs + backward; logp, ent [N] and grads [n_params] receive the results.
static void run_step(rl_model *m, const batch *b, int through_logits, float *logp, float *ent,
                     float *grads) {
    rl_err err;
    CHECK(rl_model_forward(m, b->tokens, b->lengths, B, T, &err) == 0, "forward: %s", err.msg);
    CHECK(rl_model_token_logprobs(m, b->targets, 0.8f, logp, ent, &err) == 0, "logprobs: %s",
          err.msg);
    rl_model_zero_grad(m);
    if (through_logits)
        CHECK(rl_model_backward_logits(m, b->dlogits, &err) == 0, "backward_logits: %s", err.msg);
    else
        CHECK(rl_model_backward(m, b->dlogp, b->dent, &err) == 0, "backward: %s", err.msg);
    BE->mem_download(BE, grads, rl_model_grads(m, NULL), m->n_params * sizeof(float));
}

static int same_bits(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static double max_abs(const float *x, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) w = fmax(w, fabs(x[i]));
    return w;
}

static void test_bit_identical(void) {
    rl_model *full = make_model(0), *rec = make_model(1);
    batch b = make_batch(full->V);
    size_t np = full->n_params;
    float lp0[N], lp1[N], e0[N], e1[N];
    float *g0 = malloc(np * sizeof(float)), *g1 = malloc(np * sizeof(float));
    for (int through_logits = 0; through_logits < 2; through_logits++) {
        run_step(full, &b, through_logits, lp0, e0, g0);
        run_step(rec, &b, through_logits, lp1, e1, g1);
        const char *how = through_logits ? "backward_logits" : "backward";
        CHECK(same_bits(lp0, lp1, N) && same_bits(e0, e1, N), "%s: log-probs differ", how);
        CHECK(max_abs(g0, np) > 1e-3, "%s: gradients are not trivially zero", how);
        CHECK(same_bits(g0, g1, np), "%s: gradients differ with recomputation", how);
        // every layer's tensors contribute (a recomputation that reused the wrong layer's
        // activations would still give a gradient everywhere, but not the same one)
        for (int i = 0; i < rl_model_num_tensors(full); i++) {
            const rl_model_tensor *t = &full->tensors[i];
            CHECK(max_abs(g1 + t->offset, t->numel) > 0, "%s: no gradient for %s", how, t->name);
        }
    }
    // the memory: only the residual stream keeps L copies
    size_t bytes0 = rl_model_acts_bytes(full, N, B, 0), bytes1 = rl_model_acts_bytes(full, N, B, 1);
    CHECK(bytes1 < bytes0 * 6 / 10, "recompute keeps %zu of %zu activation bytes", bytes1, bytes0);
    // switching modes on a live model: rec goes back to keeping everything, full to recomputing
    rl_model_set_recompute(rec, 0);
    rl_model_set_recompute(full, 1);
    run_step(full, &b, 0, lp0, e0, g0);
    run_step(rec, &b, 0, lp1, e1, g1);
    CHECK(same_bits(g0, g1, np) && same_bits(lp0, lp1, N), "gradients differ after switching");
    CHECK(rec->acts_recompute == 0 && full->acts_recompute == 1, "modes took effect");
    free(g0);
    free(g1);
    free(b.dlogits);
    rl_model_free(full);
    rl_model_free(rec);
}

// Five AdamW steps leave the same parameters with and without recomputation.
static void test_training_identical(void) {
    rl_model *ms[2] = {make_model(0), make_model(1)};
    batch b = make_batch(ms[0]->V);
    rl_adamw_hparams hp = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f};
    float lp[N], ent[N];
    float *g = malloc(ms[0]->n_params * sizeof(float));
    float *p[2];
    for (int k = 0; k < 2; k++) {
        rl_adamw *opt;
        rl_err err;
        int ns;
        const rl_param_span *spans = rl_model_decay_spans(ms[k], &ns);
        size_t n;
        void *params = rl_model_params(ms[k], &n);
        CHECK(rl_adamw_create(&opt, BE, n, spans, ns, &err) == 0, "adamw: %s", err.msg);
        for (int step = 0; step < 5; step++) {
            run_step(ms[k], &b, 0, lp, ent, g);
            rl_adamw_step(opt, params, rl_model_grads(ms[k], NULL), &hp,
                          rl_clip_scale(rl_model_grad_norm(ms[k]), 1.0f));
        }
        p[k] = malloc(n * sizeof(float));
        BE->mem_download(BE, p[k], params, n * sizeof(float));
        rl_adamw_free(opt);
    }
    CHECK(same_bits(p[0], p[1], ms[0]->n_params), "parameters differ after 5 steps");
    free(p[0]);
    free(p[1]);
    free(g);
    free(b.dlogits);
    rl_model_free(ms[0]);
    rl_model_free(ms[1]);
}

int main(void) {
    rl_err err;
    const char *name = getenv("RLPIPE_TEST_BACKEND");
    BE = rl_backend_get(name ? name : "cpu", &err);
    if (!BE) {
        fprintf(stderr, "skip: %s\n", err.msg);
        return 77;
    }
    RUN(test_bit_identical);
    RUN(test_training_identical);
    rl_backend_release(BE);
    return test_summary();
}
