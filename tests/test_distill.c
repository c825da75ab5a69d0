// test_distill: the distillation math (policy/distill.h) and the model's backward from logits.
// The tau formula at known points; tau^2 KL, forward and reverse, against an independent
// double-precision reference on random rows, and its gradient against central finite
// differences of that reference; the top-k summary and its rebuild; rl_model_backward_logits
// against rl_model_backward on the same objective (cross-entropy), padding ignored.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/rng.h"
#include "policy/distill.h"
#include "policy/model.h"
#include "test_util.h"

static rl_rng G;

static float uniform(double lo, double hi) {
    return (float)(lo + (hi - lo) * rl_rng_double(&G));
}

// ---- independent references (double, straight from the definitions) ----------------------------

static void softmax_ref(const double *x, int V, double tau, double *p) {
    double mx = x[0];
    for (int i = 1; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    double s = 0;
    for (int i = 0; i < V; i++) s += p[i] = exp((x[i] - mx) / tau);
    for (int i = 0; i < V; i++) p[i] /= s;
}

// tau^2 KL(p || q) (forward) or tau^2 KL(q || p) (reverse), p from t, q from z at tau.
static double kl_ref(int reverse, const double *t, const double *z, int V, double tau) {
    double p[512], q[512], d = 0;
    softmax_ref(t, V, tau, p);
    softmax_ref(z, V, tau, q);
    for (int i = 0; i < V; i++) d += reverse ? q[i] * log(q[i] / p[i]) : p[i] * log(p[i] / q[i]);
    return tau * tau * d;
}

// A random teacher row of log-probabilities (peaked or flat) and a random student row.
static void random_rows(int V, float *tlogp, float *z, double spread) {
    double x[512] = {0}, lp[512];
    for (int i = 0; i < V; i++) x[i] = uniform(-spread, spread);
    softmax_ref(x, V, 1.0, lp);
    for (int i = 0; i < V; i++) tlogp[i] = (float)log(lp[i]);
    for (int i = 0; i < V; i++) z[i] = uniform(-3, 3);
}

// ---- tau -----------------------------------------------------------------------------------------

static void test_tau_formula(void) {
    rl_distill_tau fx = {RL_DISTILL_TAU_FIXED, 2.5, 1, 3, 2, 0.5, RL_DISTILL_DECAY_COSINE};
    CHECK_NEAR(rl_distill_tau_of(&fx, 0.9, 0.3), 2.5, 1e-15, "fixed ignores entropy and progress");
    CHECK_NEAR(rl_distill_schedule(&fx, 0.7), 1.0, 1e-15, "fixed has no schedule");
    rl_distill_tau dy = {RL_DISTILL_TAU_DYNAMIC, 1, 1.0, 3.0, 2.0, 0.5, RL_DISTILL_DECAY_COSINE};
    // (tau_min + (tau_max - tau_min) h) * (s_end + (s_start - s_end) (1 + cos(pi p)) / 2)
    CHECK_NEAR(rl_distill_tau_of(&dy, 0, 0), 1.0 * 2.0, 1e-12, "certain teacher, start");
    CHECK_NEAR(rl_distill_tau_of(&dy, 1, 0), 3.0 * 2.0, 1e-12, "uniform teacher, start");
    CHECK_NEAR(rl_distill_tau_of(&dy, 0.5, 0.5), 2.0 * 1.25, 1e-12, "half way");
    CHECK_NEAR(rl_distill_tau_of(&dy, 0.25, 1), 1.5 * 0.5, 1e-12, "end of training");
    CHECK_NEAR(rl_distill_schedule(&dy, 0.25),
               0.5 + 1.5 * (1 + cos(3.14159265358979323846 * 0.25)) / 2, 1e-12, "cosine at 1/4");
    CHECK_NEAR(rl_distill_tau_of(&dy, 7, 0), 6.0, 1e-12, "entropy clamped to 1");
    CHECK_NEAR(rl_distill_tau_of(&dy, -1, 2), 0.5, 1e-12, "entropy and progress clamped");
    CHECK_NEAR(rl_distill_tau_of(&dy, NAN, NAN), 2.0, 1e-12, "NaN clamps to 0");
    dy.decay = RL_DISTILL_DECAY_LINEAR;
    CHECK_NEAR(rl_distill_schedule(&dy, 0.25), 0.5 + 1.5 * 0.75, 1e-12, "linear at 1/4");
    // high early, low late: monotone non-increasing in progress
    dy.decay = RL_DISTILL_DECAY_COSINE;
    double prev = INFINITY;
    for (int i = 0; i <= 20; i++) {
        double s = rl_distill_schedule(&dy, i / 20.0);
        CHECK(s <= prev + 1e-15, "schedule rises at %d/20", i);
        prev = s;
    }
}

// ---- KL loss and gradient ---------------------------------------------------------------------

static void test_kl_against_reference(void) {
    static const int Vs[] = {2, 7, 33, 300};
    double work[1024];
    for (int trial = 0; trial < 40; trial++) {
        int V = Vs[trial % 4];
        int reverse = trial % 2;
        double tau = 0.3 + 3.0 * rl_rng_double(&G);
        float t[512], z[512], dz[512];
        random_rows(V, t, z, trial % 3 == 0 ? 8.0 : 1.5);
        double want_t[512], want_z[512];
        for (int i = 0; i < V; i++) want_t[i] = t[i], want_z[i] = z[i];
        double scale = 0.37;
        double got = rl_distill_token(reverse, t, z, V, tau, scale, dz, work);
        double want = kl_ref(reverse, want_t, want_z, V, tau);
        CHECK_NEAR(got, want, 1e-9, reverse ? "reverse loss" : "forward loss");
        CHECK(got >= -1e-12, "KL is never negative: %g", got);
        // gradient: central differences of the double reference, in double
        double h = 1e-5, worst = 0;
        for (int j = 0; j < V; j++) {
            double zp[512];
            memcpy(zp, want_z, sizeof(double) * (size_t)V);
            zp[j] = want_z[j] + h;
            double up = kl_ref(reverse, want_t, zp, V, tau);
            zp[j] = want_z[j] - h;
            double dn = kl_ref(reverse, want_t, zp, V, tau);
            double fd = scale * (up - dn) / (2 * h);
            double e = fabs(fd - dz[j]) / (fabs(fd) > 1e-3 ? fabs(fd) : 1e-3);
            if (e > worst) worst = e;
        }
        CHECK(worst < 1e-3, "trial %d (V %d, %s, tau %.2f): gradient off by %.2e (relative)", trial,
              V, reverse ? "reverse" : "forward", tau, worst);
        // the gradient of a softmax input sums to zero
        double sum = 0;
        for (int j = 0; j < V; j++) sum += dz[j];
        CHECK(fabs(sum) < 1e-5, "gradient sums to %g", sum);
    }
}

static void test_forward_vs_reverse(void) {
    double work[64];
    float t[16], z[16];
    random_rows(16, t, z, 3.0);
    double f = rl_distill_token(RL_DISTILL_KL_FORWARD, t, z, 16, 1.0, 1, NULL, work);
    double r = rl_distill_token(RL_DISTILL_KL_REVERSE, t, z, 16, 1.0, 1, NULL, work);
    CHECK(fabs(f - r) > 1e-3, "forward %g and reverse %g KL must differ on asymmetric rows", f, r);
    // swapping the roles of teacher and student turns one into the other
    float tl[16];
    double lz[16];
    rl_distill_log_softmax(z, 16, lz);
    for (int i = 0; i < 16; i++) tl[i] = (float)lz[i];
    double f_sw = rl_distill_token(RL_DISTILL_KL_FORWARD, tl, t, 16, 1.0, 1, NULL, work);
    CHECK_NEAR(f_sw, r, 1e-5, "KL(q||p) by swapping");
    // a student equal to the teacher up to a constant shift has zero loss and gradient
    float zs[16], dz[16];
    for (int i = 0; i < 16; i++) zs[i] = t[i] + 4.0f;
    for (int kl = 0; kl < 2; kl++) {
        double l = rl_distill_token(kl, t, zs, 16, 1.7, 1, dz, work);
        CHECK(fabs(l) < 1e-6, "matching student has loss %g", l);
        for (int i = 0; i < 16; i++) CHECK(fabs(dz[i]) < 1e-6, "matching student has gradient");
    }
    // tau^2 scaling: forward gradient is tau (q - p), so at a large tau the loss is ~ the
    // squared logit gap / 2 independent of tau (Hinton): loss(tau=50) ~ loss(tau=100)
    double l50 = rl_distill_token(0, t, z, 16, 50, 1, NULL, work);
    double l100 = rl_distill_token(0, t, z, 16, 100, 1, NULL, work);
    CHECK(fabs(l50 - l100) < 0.02 * l100, "tau^2 KL levels off: %g vs %g", l50, l100);
}

// ---- top-k -------------------------------------------------------------------------------------

static void test_topk(void) {
    float t[40], z[40], back[40];
    random_rows(40, t, z, 4.0);
    t[6] = t[5]; // a tie, then renormalised (equal values stay equal)
    double back_d[40];
    rl_distill_log_softmax(t, 40, back_d);
    for (int i = 0; i < 40; i++) t[i] = (float)back_d[i];
    int32_t ids[40];
    float lp[40];
    rl_distill_topk_of(t, 40, 40, ids, lp);
    for (int i = 0; i < 40; i++) CHECK(lp[i] == t[ids[i]], "value follows its id");
    for (int i = 1; i < 40; i++) CHECK(lp[i] <= lp[i - 1], "sorted descending at %d", i);
    for (int i = 1; i < 40; i++)
        if (lp[i] == lp[i - 1]) CHECK(ids[i] > ids[i - 1], "ties: lower id first");
    rl_distill_from_topk(ids, lp, 40, 40, back);
    for (int i = 0; i < 40; i++) CHECK(back[i] == t[i], "k = V rebuilds exactly");
    // k < V: the kept ids keep their values, the rest share the missing mass equally
    int k = 5;
    rl_distill_topk_of(t, 40, k, ids, lp);
    double want_kept = 0;
    int32_t all[40];
    float all_lp[40];
    rl_distill_topk_of(t, 40, 40, all, all_lp);
    for (int i = 0; i < k; i++) CHECK(ids[i] == all[i] && lp[i] == all_lp[i], "top-5 prefix");
    for (int i = 0; i < k; i++) want_kept += exp(lp[i]);
    rl_distill_from_topk(ids, lp, k, 40, back);
    double mass = 0;
    for (int i = 0; i < 40; i++) mass += exp(back[i]);
    CHECK_NEAR(mass, 1.0, 1e-5, "rebuilt distribution sums to 1");
    CHECK_NEAR(exp(back[all[39]]), (1 - want_kept) / 35, 1e-6, "tail share");
    // a teacher with everything on its top k: the tail gets a floor, not -inf
    float peaked[8] = {0, -200, -200, -200, -200, -200, -200, -200};
    rl_distill_topk_of(peaked, 8, 1, ids, lp);
    rl_distill_from_topk(ids, lp, 1, 8, back);
    CHECK(isfinite(back[3]) && back[3] < -50, "tail floor %g", back[3]);
}

// ---- model: backward from logits ------------------------------------------------------------

static rl_model *tiny_model(const rl_backend *be) {
    rl_model_config c = {0};
    c.hidden_size = 16;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.intermediate_size = 24;
    c.vocab_size = 23;
    c.max_position_embeddings = 32;
    c.rope_theta = 10000;
    c.rms_norm_eps = 1e-5;
    c.tie_word_embeddings = 0;
    c.attention_bias = 1;
    c.bos_token_id = -1;
    c.eos_token_id = 1;
    c.n_eos = 1;
    c.eos_token_ids[0] = 1;
    rl_model *m = NULL;
    rl_err err = {0};
    if (rl_model_create(&m, &c, be, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    rl_model_init_random(m, 99, 0.2f);
    return m;
}

static void test_backward_logits_matches_backward(void) {
    const rl_backend *be = rl_backend_cpu();
    rl_model *m = tiny_model(be);
    CHECK(m != NULL, "model");
    if (!m) return;
    int B = 3, T = 9, V = m->V;
    int32_t tokens[27], targets[27], lengths[3] = {9, 5, 7};
    for (int i = 0; i < B * T; i++) tokens[i] = (int32_t)rl_rng_below(&G, (uint32_t)V);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            targets[b * T + t] = t + 1 < lengths[b] ? tokens[b * T + t + 1] : -1;
    rl_err err = {0};
    // reference: cross-entropy through the token log-prob path
    float logp[27], dlogp[27];
    int n = 0;
    for (int i = 0; i < B * T; i++) n += targets[i] >= 0;
    for (int i = 0; i < B * T; i++) dlogp[i] = targets[i] >= 0 ? -1.0f / n : 0.0f;
    CHECK(rl_model_forward(m, tokens, lengths, B, T, &err) == 0, "forward");
    CHECK(rl_model_token_logprobs(m, targets, 1.0f, logp, NULL, &err) == 0, "logprobs");
    rl_model_zero_grad(m);
    CHECK(rl_model_backward(m, dlogp, NULL, &err) == 0, "backward");
    size_t np;
    float *g = rl_model_grads(m, &np);
    float *want = malloc(np * sizeof(float));
    be->mem_download(be, want, g, np * sizeof(float));
    // the same gradient from dlogits = (softmax - onehot) / n; garbage at padded rows
    float *logits = malloc((size_t)B * T * V * sizeof(float));
    CHECK(rl_model_forward(m, tokens, lengths, B, T, &err) == 0, "forward again");
    CHECK(rl_model_logits(m, logits, &err) == 0, "logits");
    double work[64];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int r = b * T + t;
            float *row = logits + (size_t)r * V;
            if (t >= lengths[b]) {
                for (int i = 0; i < V; i++) row[i] = uniform(-1e3, 1e3); // must be ignored
                continue;
            }
            rl_distill_log_softmax(row, V, work);
            for (int i = 0; i < V; i++)
                row[i] = targets[r] >= 0
                             ? (float)((exp(work[i]) - (i == targets[r] ? 1.0 : 0.0)) / n)
                             : 0.0f;
        }
    rl_model_zero_grad(m);
    CHECK(rl_model_backward_logits(m, logits, &err) == 0, "backward_logits: %s", err.msg);
    float *got = malloc(np * sizeof(float));
    be->mem_download(be, got, g, np * sizeof(float));
    double worst = 0, norm = 0;
    for (size_t i = 0; i < np; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d > worst) worst = d;
        norm += (double)want[i] * want[i];
    }
    CHECK(norm > 1e-8, "the reference gradient is not zero");
    CHECK(worst < 1e-5, "backward_logits differs from backward by %g", worst);
    // with a small logits budget (several lm_head chunks) the result is the same
    m->logits_budget = (size_t)V * 4;
    rl_model_free(m);
    m = tiny_model(be);
    m->logits_budget = (size_t)V * 4;
    CHECK(rl_model_forward(m, tokens, lengths, B, T, &err) == 0, "chunked forward");
    rl_model_zero_grad(m);
    CHECK(rl_model_backward_logits(m, logits, &err) == 0, "chunked backward_logits");
    g = rl_model_grads(m, &np);
    be->mem_download(be, got, g, np * sizeof(float));
    worst = 0;
    for (size_t i = 0; i < np; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d > worst) worst = d;
    }
    CHECK(worst < 1e-5, "chunked backward_logits differs by %g", worst);
    // no forward: a clear internal error
    rl_model_free(m);
    m = tiny_model(be);
    CHECK(rl_model_backward_logits(m, logits, &err) != 0 && err.kind == RL_EINTERNAL,
          "backward_logits before any forward");
    free(want);
    free(got);
    free(logits);
    rl_model_free(m);
}

// Finite differences through the model: d(sum of tau^2 KL)/d(one weight).
static void test_model_kl_gradient_fd(void) {
    const rl_backend *be = rl_backend_cpu();
    rl_model *m = tiny_model(be);
    if (!m) return;
    int B = 2, T = 6, V = m->V;
    int32_t tokens[12], lengths[2] = {6, 4};
    for (int i = 0; i < 12; i++) tokens[i] = (int32_t)rl_rng_below(&G, (uint32_t)V);
    float tl[12 * 64], z[12 * 64];
    for (int r = 0; r < 12; r++) random_rows(V, tl + r * V, z, 2.0);
    double work[128];
    rl_err err = {0};
    double tau = 1.7;
    // loss(params) over the valid rows
    float *logits = malloc((size_t)12 * V * sizeof(float));
#define LOSS(out)                                                                                  \
    do {                                                                                           \
        rl_model_forward(m, tokens, lengths, B, T, &err);                                          \
        rl_model_logits(m, logits, &err);                                                          \
        double s_ = 0;                                                                             \
        for (int b_ = 0; b_ < B; b_++)                                                             \
            for (int t_ = 0; t_ < lengths[b_]; t_++) {                                             \
                int r_ = b_ * T + t_;                                                              \
                s_ += rl_distill_token(RL_DISTILL_KL_REVERSE, tl + r_ * V, logits + r_ * V, V,     \
                                       tau, 1, NULL, work);                                        \
            }                                                                                      \
        out = s_;                                                                                  \
    } while (0)
    rl_model_forward(m, tokens, lengths, B, T, &err);
    rl_model_logits(m, logits, &err);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int r = b * T + t;
            if (t < lengths[b])
                rl_distill_token(RL_DISTILL_KL_REVERSE, tl + r * V, logits + r * V, V, tau, 1,
                                 logits + r * V, work);
        }
    rl_model_zero_grad(m);
    CHECK(rl_model_backward_logits(m, logits, &err) == 0, "backward_logits");
    size_t np;
    float *g = rl_model_grads(m, &np);
    float *params = rl_model_params(m, &np);
    float *hg = malloc(np * sizeof(float)), *hp = malloc(np * sizeof(float));
    be->mem_download(be, hg, g, np * sizeof(float));
    be->mem_download(be, hp, params, np * sizeof(float));
    int checked = 0;
    for (int trial = 0; trial < 12; trial++) {
        size_t i = (size_t)rl_rng_below(&G, (uint32_t)np);
        if (hg[i] == 0) continue; // padding or an untouched embedding row
        float keep = hp[i], h = 1e-2f;
        double up, dn;
        hp[i] = keep + h;
        be->mem_upload(be, params, hp, np * sizeof(float));
        LOSS(up);
        hp[i] = keep - h;
        be->mem_upload(be, params, hp, np * sizeof(float));
        LOSS(dn);
        hp[i] = keep;
        be->mem_upload(be, params, hp, np * sizeof(float));
        double fd = (up - dn) / (2.0 * h);
        CHECK(fabs(fd - hg[i]) <= 2e-2 * fabs(fd) + 2e-4, "param %zu: analytic %g, fd %g", i,
              (double)hg[i], fd);
        checked++;
    }
#undef LOSS
    CHECK(checked >= 4, "enough parameters checked (%d)", checked);
    free(hg);
    free(hp);
    free(logits);
    rl_model_free(m);
}

// The scoring mode (no activations kept) gives the logits of forward + logits, and leaves the
// training state alone.
static void test_score_logits_matches_forward(void) {
    const rl_backend *be = rl_backend_cpu();
    rl_model *m = tiny_model(be);
    if (!m) return;
    int B = 3, T = 7, V = m->V;
    int32_t tokens[21], lengths[3] = {7, 2, 5};
    for (int i = 0; i < 21; i++) tokens[i] = (int32_t)rl_rng_below(&G, (uint32_t)V);
    size_t n = (size_t)B * T * V;
    float *want = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    rl_err err = {0};
    CHECK(rl_model_forward(m, tokens, lengths, B, T, &err) == 0, "forward");
    CHECK(rl_model_logits(m, want, &err) == 0, "logits");
    for (size_t i = 0; i < n; i++) got[i] = NAN;
    CHECK(rl_model_score_logits(m, tokens, lengths, B, T, got, &err) == 0, "score: %s", err.msg);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= worst)) worst = d;
    }
    CHECK(worst < 1e-5, "score_logits differs from forward by %g", worst);
    CHECK(got[(size_t)(1 * T + 3) * V] == 0.0f, "padded rows are zero");
    // the forward's state is intact: backward_logits after a score still works on it
    CHECK(rl_model_backward_logits(m, want, &err) == 0, "backward after score: %s", err.msg);
    // bad input is refused like forward's
    int32_t bad[21];
    memcpy(bad, tokens, sizeof bad);
    bad[4] = V;
    CHECK(rl_model_score_logits(m, bad, lengths, B, T, got, &err) != 0 && err.kind == RL_EINPUT &&
              strstr(err.msg, "vocabulary"),
          "token outside the vocabulary: %s", err.msg);
    // no activation block was needed for scoring alone
    rl_model *fresh = tiny_model(be);
    CHECK(rl_model_score_logits(fresh, tokens, lengths, B, T, got, &err) == 0, "fresh score");
    CHECK(fresh->acts_block == NULL && fresh->grads_block == NULL, "scoring keeps no activations");
    double worst2 = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= worst2)) worst2 = d;
    }
    CHECK(worst2 < 1e-5, "fresh model scores the same (%g)", worst2);
    rl_model_free(fresh);
    free(want);
    free(got);
    rl_model_free(m);
}

int main(void) {
    G = rl_rng_stream(20261206, 0, 0, 0);
    RUN(test_tau_formula);
    RUN(test_kl_against_reference);
    RUN(test_forward_vs_reverse);
    RUN(test_topk);
    RUN(test_backward_logits_matches_backward);
    RUN(test_model_kl_gradient_fd);
    RUN(test_score_logits_matches_forward);
    return test_summary();
}
