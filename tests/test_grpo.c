// test_grpo: the clipped policy-gradient surrogate, its KL and entropy terms and every loss
// aggregation, against hand-computed values and finite differences of the loss itself; then one
// real update on a tiny model moves probability toward the higher-reward sample.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "policy/grpo.h"
#include "policy/model.h"
#include "policy/optim.h"
#include "test_util.h"

static rl_pg_params base_params(void) {
    rl_pg_params p = {.clip_low = 0.2f, .clip_high = 0.2f, .agg = RL_AGG_TOKEN_MEAN};
    return p;
}

// One token with ratio r and advantage A: the loss is -min(rA, clip(r)A), by hand.
static void test_single_token_clip(void) {
    rl_pg_params p = base_params();
    float mask = 1, dl, old = 0;
    struct {
        double r, a, loss, dloss; // dloss/dlogp = -rA when unclipped, 0 when clipped
        int clipped;
    } cases[] = {
        {1.0, 2.0, -2.0, -2.0, 0}, // on-policy
        {1.1, 2.0, -2.2, -2.2, 0}, // inside the range
        {1.5, 2.0, -2.4, 0.0, 1},  // A > 0, ratio above 1 + 0.2: clipped at 1.2
        {0.5, 2.0, -1.0, -1.0, 0}, // A > 0, ratio below 1 - 0.2: min picks the unclipped
        {0.5, -2.0, 1.6, 0.0, 1},  // A < 0, ratio below 0.8: clipped at 0.8
        {1.5, -2.0, 3.0, 3.0, 0},  // A < 0, ratio above 1.2: the unclipped is smaller
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float lp = (float)log(cases[i].r), adv = (float)cases[i].a;
        rl_pg_stats st = rl_pg_loss(&p, 1, 1, &lp, &old, NULL, NULL, &mask, &adv, &dl, NULL);
        CHECK_NEAR(st.loss, cases[i].loss, 1e-6, "loss");
        CHECK_NEAR(dl, cases[i].dloss, 1e-6, "dloss/dlogp");
        CHECK(st.clip_frac == cases[i].clipped, "case %zu: clip_frac %g", i, st.clip_frac);
    }
    // Clip-higher: the upper bound moves to 1.28 while the lower stays 0.8.
    p.clip_high = 0.28f;
    float lp = (float)log(1.25), adv = 1.0f;
    rl_pg_stats st = rl_pg_loss(&p, 1, 1, &lp, &old, NULL, NULL, &mask, &adv, &dl, NULL);
    CHECK_NEAR(st.loss, -1.25, 1e-6, "clip-higher leaves 1.25 unclipped");
    CHECK_NEAR(dl, -1.25, 1e-6, "and its gradient");
    // Dual clip (c = 3) bounds the loss of a negative advantage when the ratio explodes.
    p = base_params();
    p.dual_clip = 3.0f;
    lp = (float)log(5.0);
    adv = -1.0f;
    st = rl_pg_loss(&p, 1, 1, &lp, &old, NULL, NULL, &mask, &adv, &dl, NULL);
    CHECK_NEAR(st.loss, 3.0, 1e-6, "dual clip: loss -max(min(-5, -1.2), -3) = 3");
    CHECK(dl == 0.0f && st.clip_frac == 1.0, "dual clip zeroes the gradient");
    p.dual_clip = 0;
    st = rl_pg_loss(&p, 1, 1, &lp, &old, NULL, NULL, &mask, &adv, &dl, NULL);
    CHECK_NEAR(st.loss, 5.0, 1e-6, "without dual clip the loss is 5");
}

// KL estimators by hand at l = log 0.5, l_ref = log 0.25 (d = l_ref - l = -log 2).
static void test_kl_estimators(void) {
    double l = log(0.5), lr = log(0.25), d = lr - l;
    struct {
        rl_kl_estimator est;
        double kl, dkl;
    } cases[] = {
        {RL_KL_K1, -d, 1.0},
        {RL_KL_K2, 0.5 * d * d, -d},
        {RL_KL_K3, exp(d) - d - 1.0, 1.0 - exp(d)},
    };
    for (int i = 0; i < 3; i++) {
        rl_pg_params p = base_params();
        p.kl_coef = 0.5f;
        p.kl_estimator = cases[i].est;
        float lp = (float)l, old = (float)l, ref = (float)lr, mask = 1, adv = 0, dl;
        rl_pg_stats st = rl_pg_loss(&p, 1, 1, &lp, &old, &ref, NULL, &mask, &adv, &dl, NULL);
        CHECK_NEAR(st.kl, cases[i].kl, 1e-6, "kl value");
        CHECK_NEAR(st.loss, 0.5 * cases[i].kl, 1e-6, "loss = kl_coef * kl when A = 0");
        CHECK_NEAR(dl, 0.5 * cases[i].dkl, 1e-6, "d(kl)/dl");
    }
    // k3 is never negative and is 0 exactly at l = l_ref.
    rl_pg_params p = base_params();
    p.kl_coef = 1;
    p.kl_estimator = RL_KL_K3;
    for (int i = -20; i <= 20; i++) {
        float lp = -1.0f, old = -1.0f, ref = -1.0f + 0.2f * i, mask = 1, adv = 0, dl;
        rl_pg_stats st = rl_pg_loss(&p, 1, 1, &lp, &old, &ref, NULL, &mask, &adv, &dl, NULL);
        CHECK(st.kl >= 0 && (i != 0 || st.kl == 0), "k3 >= 0 (%g at shift %d)", st.kl, i);
    }
}

// The loss of a random batch as a plain function of logp, for finite differences.
typedef struct batch {
    int B, T;
    float logp[3 * 5], old[3 * 5], ref[3 * 5], ent[3 * 5], mask[3 * 5], adv[3];
} batch;

static double loss_at(const rl_pg_params *p, const batch *b) {
    float dl[15], de[15];
    return rl_pg_loss(p, b->B, b->T, b->logp, b->old, b->ref, b->ent, b->mask, b->adv, dl, de).loss;
}

static void random_batch(batch *b, unsigned seed) {
    srand(seed);
    b->B = 3;
    b->T = 5;
    for (int i = 0; i < 15; i++) {
        b->old[i] = -0.2f - 2.0f * rand() / RAND_MAX;
        b->logp[i] =
            b->old[i] + 0.3f * ((float)rand() / RAND_MAX - 0.5f); // ratios within ~[0.86, 1.16]
        b->ref[i] = b->old[i] + 0.5f * ((float)rand() / RAND_MAX - 0.5f);
        b->ent[i] = 0.1f + (float)rand() / RAND_MAX;
    }
    // Different lengths: 5, 3 and 1 counted tokens.
    int len[3] = {5, 3, 1};
    for (int r = 0; r < 3; r++)
        for (int t = 0; t < 5; t++) b->mask[r * 5 + t] = t < len[r];
    b->adv[0] = 1.3f, b->adv[1] = -0.7f, b->adv[2] = 0.4f;
}

// Aggregations by hand, and dloss/dlogp against central differences of the loss itself.
static void test_aggregations_and_gradients(void) {
    batch b;
    random_batch(&b, 7);
    // At ratio 1 and no extra terms, the per-token loss is -A: the aggregates are sums of -A.
    batch onp = b;
    memcpy(onp.logp, onp.old, sizeof onp.logp);
    rl_pg_params p = base_params();
    p.agg = RL_AGG_TOKEN_MEAN;
    CHECK_NEAR(loss_at(&p, &onp), -(5 * 1.3 + 3 * -0.7 + 1 * 0.4) / 9.0, 1e-6,
               "token_mean by hand");
    p.agg = RL_AGG_SEQ_MEAN_TOKEN_MEAN;
    CHECK_NEAR(loss_at(&p, &onp), -(1.3 - 0.7 + 0.4) / 3.0, 1e-6, "seq_mean_token_mean by hand");
    p.agg = RL_AGG_DR_GRPO;
    p.norm_tokens = 8;
    CHECK_NEAR(loss_at(&p, &onp), -(5 * 1.3 + 3 * -0.7 + 1 * 0.4) / (3.0 * 8), 1e-6,
               "dr_grpo by hand");
    // Left-out zero-advantage sequences still count in the denominators.
    p.agg = RL_AGG_TOKEN_MEAN;
    p.extra_seqs = 2;
    p.extra_tokens = 6;
    CHECK_NEAR(loss_at(&p, &onp), -(5 * 1.3 + 3 * -0.7 + 1 * 0.4) / 15.0, 1e-6,
               "token_mean with extras");
    p.agg = RL_AGG_SEQ_MEAN_TOKEN_MEAN;
    CHECK_NEAR(loss_at(&p, &onp), -(1.3 - 0.7 + 0.4) / 5.0, 1e-6, "seq mean with extras");
    p.extra_seqs = 0;
    p.extra_tokens = 0;

    // Gradients: every mode with KL (each estimator) and the entropy bonus.
    for (int agg = 0; agg < 3; agg++)
        for (int est = 0; est < 3; est++) {
            rl_pg_params q = base_params();
            q.agg = (rl_loss_agg)agg;
            q.norm_tokens = 6;
            q.kl_coef = 0.3f;
            q.kl_estimator = (rl_kl_estimator)est;
            q.entropy_coef = 0.05f;
            float dl[15], de[15];
            rl_pg_loss(&q, 3, 5, b.logp, b.old, b.ref, b.ent, b.mask, b.adv, dl, de);
            for (int i = 0; i < 15; i++) {
                batch hi = b, lo = b;
                double h = 1e-3;
                hi.logp[i] += (float)h;
                lo.logp[i] -= (float)h;
                double fd = (loss_at(&q, &hi) - loss_at(&q, &lo)) / (2 * h);
                CHECK(fabs(dl[i] - fd) < 2e-4,
                      "agg %d kl %d token %d: dlogp %g vs finite difference %g", agg, est, i, dl[i],
                      fd);
                hi = b, lo = b;
                hi.ent[i] += (float)h;
                lo.ent[i] -= (float)h;
                fd = (loss_at(&q, &hi) - loss_at(&q, &lo)) / (2 * h);
                CHECK(fabs(de[i] - fd) < 2e-4, "agg %d token %d: dentropy %g vs %g", agg, i, de[i],
                      fd);
                if (b.mask[i] == 0)
                    CHECK(dl[i] == 0 && de[i] == 0, "masked token %d has no gradient", i);
            }
        }
}

// One update on a tiny model: two completions of one prompt, the first with a positive advantage
// and the second with a negative one. Afterwards the first is more likely, the second less.
static void test_update_moves_toward_reward(void) {
    rl_model_config c = {0};
    c.hidden_size = 32;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.intermediate_size = 48;
    c.vocab_size = 40;
    c.max_position_embeddings = 64;
    c.rope_theta = 10000;
    c.rms_norm_eps = 1e-5;
    c.tie_word_embeddings = 1;
    c.attention_bias = 1;
    rl_model *m;
    rl_err err = {0};
    const rl_backend *be = rl_backend_cpu();
    CHECK(rl_model_create(&m, &c, be, &err) == 0, "%s", err.msg);
    rl_model_init_random(m, 3, 0.1f);
    enum { B = 2, T = 8, NP = 3 };
    int32_t tokens[B * T] = {1, 2, 3, 10, 11, 12, 13, 14, 1, 2, 3, 20, 21, 22, 23, 24};
    int32_t targets[B * T];
    float mask[B * T], old[B * T], logp[B * T], dl[B * T], adv[B] = {1.0f, -1.0f};
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int on = t + 1 < T && t + 1 >= NP;
            targets[b * T + t] = on ? tokens[b * T + t + 1] : -1;
            mask[b * T + t] = (float)on;
        }
    double before[B] = {0}, after[B] = {0};
    CHECK(rl_model_forward(m, tokens, NULL, B, T, &err) == 0, "%s", err.msg);
    CHECK(rl_model_token_logprobs(m, targets, 1.0f, logp, NULL, &err) == 0, "%s", err.msg);
    for (int i = 0; i < B * T; i++) {
        old[i] = logp[i];
        before[i / T] += mask[i] * logp[i];
    }
    rl_pg_params p = base_params();
    rl_pg_loss(&p, B, T, logp, old, NULL, NULL, mask, adv, dl, NULL);
    rl_model_zero_grad(m);
    CHECK(rl_model_backward(m, dl, NULL, &err) == 0, "%s", err.msg);
    size_t n;
    float *params = rl_model_params(m, &n), *grads = rl_model_grads(m, &n);
    int n_spans;
    const rl_param_span *spans = rl_model_decay_spans(m, &n_spans);
    rl_adamw *opt;
    CHECK(rl_adamw_create(&opt, be, n, spans, n_spans, &err) == 0, "%s", err.msg);
    rl_adamw_hparams hp = {1e-3f, 0.9f, 0.99f, 1e-8f, 0.0f};
    rl_adamw_step(opt, params, grads, &hp, 1.0f);
    CHECK(rl_model_forward(m, tokens, NULL, B, T, &err) == 0, "%s", err.msg);
    CHECK(rl_model_token_logprobs(m, targets, 1.0f, logp, NULL, &err) == 0, "%s", err.msg);
    for (int i = 0; i < B * T; i++) after[i / T] += mask[i] * logp[i];
    CHECK(after[0] > before[0] + 1e-3, "the rewarded completion becomes more likely (%g -> %g)",
          before[0], after[0]);
    CHECK(after[1] < before[1] - 1e-3, "the penalised completion becomes less likely (%g -> %g)",
          before[1], after[1]);
    rl_adamw_free(opt);
    rl_model_free(m);
}

int main(void) {
    RUN(test_single_token_clip);
    RUN(test_kl_estimators);
    RUN(test_aggregations_and_gradients);
    RUN(test_update_moves_toward_reward);
    return test_summary();
}
