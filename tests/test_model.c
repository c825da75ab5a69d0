// test_model: the Qwen2 model against an independent double-precision reference written here
// with plain loops (logits, log-probs, entropies), finite-difference gradients of the whole
// objective for every tensor (tied / untied embeddings, sliding window, no bias, temperature,
// entropy term), padding invariance, batched vs one-at-a-time, KV-cache decoding vs the full
// forward, the tensor table, initialisation and a short AdamW training run.
#include "kernels/rng.h"
#include "policy/model.h"
#include "policy/optim.h"
#include "test_model_util.h"
#include "test_util.h"

#include <stdint.h>

static const rl_backend *BE;
static rl_rng RNG;

static rl_model_config tiny_config(void) {
    return test_tiny_config();
}

static rl_model *make_model(const rl_model_config *cfg, uint64_t seed) {
    rl_model *m = NULL;
    rl_err err;
    int rc = rl_model_create(&m, cfg, BE, &err);
    CHECK(rc == 0, "rl_model_create: %s", err.msg);
    if (rc != 0) exit(1);
    rl_model_init_random(m, seed, 0.3f);
    // biases and norm weights away from their init values so that they matter in the checks
    for (int i = 0; i < rl_model_num_tensors(m); i++) {
        const rl_model_tensor *t = &m->tensors[i];
        if (t->init == 0) continue;
        float *h = rl_malloc(t->numel * sizeof(float));
        for (size_t k = 0; k < t->numel; k++)
            h[k] = (t->init == 2 ? 1.0f : 0.0f) + 0.3f * (2.0f * rl_rng_float(&RNG) - 1.0f);
        rl_model_tensor_write(m, i, h);
        free(h);
    }
    return m;
}

// ------------------------------------------------------------------------------------------------
// The reference: every tensor copied to double, the forward as HF writes it, one sequence at a
// time.

typedef struct ref_model {
    rl_model_config cfg;
    int C, L, NH, NKV, hd, FF, V, n;
    double **t; // [n] tensors in the model's (HF) order
    const rl_model *m;
} ref_model;

static double *ref_tensor(const ref_model *r, const char *fmt, int l) {
    char name[96];
    snprintf(name, sizeof name, fmt, l);
    int i = rl_model_find_tensor(r->m, name);
    return i < 0 ? NULL : r->t[i];
}

static ref_model ref_from(const rl_model *m) {
    ref_model r = {m->cfg, m->C, m->L, m->NH, m->NKV, m->hd, m->FF, m->V, 0, NULL, m};
    r.n = rl_model_num_tensors(m);
    r.t = rl_calloc((size_t)r.n, sizeof(double *));
    for (int i = 0; i < r.n; i++) {
        size_t numel = m->tensors[i].numel;
        float *h = rl_malloc(numel * sizeof(float));
        rl_model_tensor_read(m, i, h);
        r.t[i] = rl_malloc(numel * sizeof(double));
        for (size_t k = 0; k < numel; k++) r.t[i][k] = h[k];
        free(h);
    }
    return r;
}

static void ref_free(ref_model *r) {
    for (int i = 0; i < r->n; i++) free(r->t[i]);
    free(r->t);
}

static void linear(double *out, const double *in, const double *w, const double *b, int in_dim,
                   int out_dim) {
    for (int o = 0; o < out_dim; o++) {
        double s = b ? b[o] : 0.0;
        for (int i = 0; i < in_dim; i++) s += w[(size_t)o * in_dim + i] * in[i];
        out[o] = s;
    }
}

static void rmsnorm(double *out, const double *x, const double *w, int C, double eps) {
    double ss = 0.0;
    for (int c = 0; c < C; c++) ss += x[c] * x[c];
    double r = 1.0 / sqrt(ss / C + eps);
    for (int c = 0; c < C; c++) out[c] = w[c] * (x[c] * r);
}

// HF rotate_half RoPE; inv_freq and the angle in float32 as torch computes them.
static void rope(double *x, int n_heads, int hd, int pos, double theta) {
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < hd / 2; i++) {
            float inv = 1.0f / powf((float)theta, (float)(2 * i) / (float)hd);
            double ang = (double)((float)pos * inv);
            double *a = x + h * hd + i, *b = a + hd / 2;
            double x1 = *a, x2 = *b;
            *a = x1 * cos(ang) - x2 * sin(ang);
            *b = x2 * cos(ang) + x1 * sin(ang);
        }
}

// logits [len, V] of one sequence
static void ref_forward(const ref_model *r, const int32_t *tok, int len, double *logits) {
    int C = r->C, NH = r->NH, NKV = r->NKV, hd = r->hd, FF = r->FF, V = r->V;
    double eps = r->cfg.rms_norm_eps;
    double *x = rl_calloc((size_t)len * C, sizeof(double)), *h = rl_calloc(C, sizeof(double));
    double *q = rl_calloc((size_t)len * NH * hd, sizeof(double));
    double *k = rl_calloc((size_t)len * NKV * hd, sizeof(double));
    double *v = rl_calloc((size_t)len * NKV * hd, sizeof(double));
    double *att = rl_calloc((size_t)NH * hd, sizeof(double)), *o = rl_calloc(C, sizeof(double));
    double *g = rl_calloc(FF, sizeof(double)), *u = rl_calloc(FF, sizeof(double));
    double *sc = rl_calloc(len, sizeof(double));
    const double *embed = ref_tensor(r, "model.embed_tokens.weight", 0);
    for (int t = 0; t < len; t++) memcpy(x + t * C, embed + (size_t)tok[t] * C, C * sizeof(double));
    for (int l = 0; l < r->L; l++) {
        int window =
            r->cfg.use_sliding_window && l >= r->cfg.max_window_layers ? r->cfg.sliding_window : 0;
        for (int t = 0; t < len; t++) {
            rmsnorm(h, x + t * C, ref_tensor(r, "model.layers.%d.input_layernorm.weight", l), C,
                    eps);
            linear(q + t * NH * hd, h, ref_tensor(r, "model.layers.%d.self_attn.q_proj.weight", l),
                   ref_tensor(r, "model.layers.%d.self_attn.q_proj.bias", l), C, NH * hd);
            linear(k + t * NKV * hd, h, ref_tensor(r, "model.layers.%d.self_attn.k_proj.weight", l),
                   ref_tensor(r, "model.layers.%d.self_attn.k_proj.bias", l), C, NKV * hd);
            linear(v + t * NKV * hd, h, ref_tensor(r, "model.layers.%d.self_attn.v_proj.weight", l),
                   ref_tensor(r, "model.layers.%d.self_attn.v_proj.bias", l), C, NKV * hd);
            rope(q + t * NH * hd, NH, hd, t, r->cfg.rope_theta);
            rope(k + t * NKV * hd, NKV, hd, t, r->cfg.rope_theta);
        }
        for (int t = 0; t < len; t++) { // causal (windowed) softmax attention, head by head
            for (int hh = 0; hh < NH; hh++) {
                int kvh = hh / (NH / NKV);
                double mx = -1e300, sum = 0.0;
                for (int j = 0; j <= t; j++) {
                    double s = 0.0;
                    for (int d = 0; d < hd; d++)
                        s += q[(t * NH + hh) * hd + d] * k[(j * NKV + kvh) * hd + d];
                    sc[j] = (window == 0 || j > t - window) ? s / sqrt((double)hd) : -INFINITY;
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j <= t; j++) sum += sc[j] = exp(sc[j] - mx);
                for (int d = 0; d < hd; d++) {
                    double a = 0.0;
                    for (int j = 0; j <= t; j++) a += sc[j] / sum * v[(j * NKV + kvh) * hd + d];
                    att[hh * hd + d] = a;
                }
            }
            linear(o, att, ref_tensor(r, "model.layers.%d.self_attn.o_proj.weight", l), NULL,
                   NH * hd, C);
            for (int c = 0; c < C; c++) x[t * C + c] += o[c];
        }
        for (int t = 0; t < len; t++) {
            rmsnorm(h, x + t * C,
                    ref_tensor(r, "model.layers.%d.post_attention_layernorm.weight", l), C, eps);
            linear(g, h, ref_tensor(r, "model.layers.%d.mlp.gate_proj.weight", l), NULL, C, FF);
            linear(u, h, ref_tensor(r, "model.layers.%d.mlp.up_proj.weight", l), NULL, C, FF);
            for (int i = 0; i < FF; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            linear(o, g, ref_tensor(r, "model.layers.%d.mlp.down_proj.weight", l), NULL, FF, C);
            for (int c = 0; c < C; c++) x[t * C + c] += o[c];
        }
    }
    const double *lm = r->cfg.tie_word_embeddings ? embed : ref_tensor(r, "lm_head.weight", 0);
    for (int t = 0; t < len; t++) {
        rmsnorm(h, x + t * C, ref_tensor(r, "model.norm.weight", 0), C, eps);
        linear(logits + (size_t)t * V, h, lm, NULL, C, V);
    }
    free(x), free(h), free(q), free(k), free(v), free(att), free(o), free(g), free(u), free(sc);
}

// A batch problem: tokens [B,T], lengths, targets, seeds, temperature.
typedef struct batch {
    int B, T;
    int32_t *tokens, *lengths, *targets;
    float *dlogp, *dent; // dent may be NULL
    float temperature;
} batch;

static batch make_batch(int B, int T, const int32_t *lengths, int V, int with_entropy,
                        float temperature) {
    batch b = {B, T, 0, 0, 0, 0, 0, temperature};
    size_t N = (size_t)B * T;
    b.tokens = rl_malloc(N * sizeof(int32_t));
    b.targets = rl_malloc(N * sizeof(int32_t));
    b.lengths = rl_malloc((size_t)B * sizeof(int32_t));
    b.dlogp = rl_malloc(N * sizeof(float));
    b.dent = with_entropy ? rl_malloc(N * sizeof(float)) : NULL;
    for (int i = 0; i < B; i++) b.lengths[i] = lengths[i];
    for (size_t r = 0; r < N; r++) {
        b.tokens[r] = (int32_t)rl_rng_below(&RNG, V);
        b.dlogp[r] = 2.0f * rl_rng_float(&RNG) - 1.0f;
        if (b.dent) b.dent[r] = 2.0f * rl_rng_float(&RNG) - 1.0f;
    }
    for (int i = 0; i < B; i++) // next-token targets; the last position has none
        for (int t = 0; t < T; t++)
            b.targets[(size_t)i * T + t] =
                t + 1 < lengths[i] ? b.tokens[(size_t)i * T + t + 1] : -1;
    return b;
}

static void batch_free(batch *b) {
    free(b->tokens), free(b->targets), free(b->lengths), free(b->dlogp), free(b->dent);
}

// Reference logp and entropy of every valid position (0 elsewhere) and the objective
// sum dlogp*logp + dent*entropy.
static double ref_objective(const ref_model *r, const batch *b, double *logp, double *ent) {
    double f = 0.0;
    double *lg = rl_malloc((size_t)b->T * r->V * sizeof(double));
    for (int i = 0; i < b->B; i++) {
        int len = b->lengths[i];
        ref_forward(r, b->tokens + (size_t)i * b->T, len, lg);
        for (int t = 0; t < b->T; t++) {
            size_t row = (size_t)i * b->T + t;
            double lp = 0.0, h = 0.0;
            if (t < len) {
                const double *z = lg + (size_t)t * r->V;
                double mx = -1e300, sum = 0.0;
                for (int k = 0; k < r->V; k++) mx = fmax(mx, z[k] / b->temperature);
                for (int k = 0; k < r->V; k++) sum += exp(z[k] / b->temperature - mx);
                double lse = mx + log(sum);
                for (int k = 0; k < r->V; k++) {
                    double lpk = z[k] / b->temperature - lse;
                    h -= exp(lpk) * lpk;
                }
                int y = b->targets[row];
                lp = y >= 0 ? z[y] / b->temperature - lse : 0.0;
                f += b->dlogp[row] * lp + (b->dent ? b->dent[row] * h : 0.0);
            }
            if (logp) logp[row] = lp;
            if (ent) ent[row] = h;
        }
    }
    free(lg);
    return f;
}

// ------------------------------------------------------------------------------------------------
// Forward and gradient checks

static void check_forward_and_grads(const char *what, const rl_model_config *cfg, int with_entropy,
                                    float temperature, int logits_chunk) {
    rl_model *m = make_model(cfg, 7);
    if (logits_chunk) m->logits_budget = (size_t)logits_chunk * cfg->vocab_size;
    int32_t lengths[3] = {7, 5, 2};
    batch b = make_batch(3, 7, lengths, cfg->vocab_size, with_entropy, temperature);
    rl_err err;
    CHECK(rl_model_forward(m, b.tokens, b.lengths, b.B, b.T, &err) == 0, "%s: %s", what, err.msg);
    if (logits_chunk)
        CHECK(m->logits_rows == (size_t)logits_chunk, "%s: lm_head chunks of %zu rows", what,
              m->logits_rows);

    // logits against the reference
    ref_model r = ref_from(m);
    size_t N = (size_t)b.B * b.T, V = cfg->vocab_size;
    float *logits = rl_malloc(N * V * sizeof(float));
    CHECK(rl_model_logits(m, logits, &err) == 0, "%s: logits: %s", what, err.msg);
    double *want = rl_malloc((size_t)b.T * V * sizeof(double)), worst = 0.0;
    for (int i = 0; i < b.B; i++) {
        ref_forward(&r, b.tokens + (size_t)i * b.T, lengths[i], want);
        for (size_t k = 0; k < (size_t)lengths[i] * V; k++)
            worst = fmax(worst,
                         fabs(logits[(size_t)i * b.T * V + k] - want[k]) / (1.0 + fabs(want[k])));
        for (size_t k = (size_t)lengths[i] * V; k < (size_t)b.T * V; k++)
            worst = fmax(worst, fabs(logits[(size_t)i * b.T * V + k])); // zeros at padding
    }
    CHECK(worst < 2e-5, "%s: logits differ from the reference by %g", what, worst);

    // log-probs and entropies
    float *logp = rl_malloc(N * sizeof(float)), *ent = rl_malloc(N * sizeof(float));
    CHECK(rl_model_token_logprobs(m, b.targets, b.temperature, logp, ent, &err) == 0, "%s: %s",
          what, err.msg);
    double *wlp = rl_malloc(N * sizeof(double)), *went = rl_malloc(N * sizeof(double));
    ref_objective(&r, &b, wlp, went);
    double worst_lp = 0.0, worst_h = 0.0;
    for (size_t k = 0; k < N; k++) {
        worst_lp = fmax(worst_lp, fabs(logp[k] - wlp[k]));
        worst_h = fmax(worst_h, fabs(ent[k] - went[k]));
    }
    CHECK(worst_lp < 2e-5 && worst_h < 2e-5, "%s: logp err %g, entropy err %g", what, worst_lp,
          worst_h);

    // gradients: every tensor, sampled elements, against central differences of the reference
    rl_model_zero_grad(m);
    CHECK(rl_model_backward(m, b.dlogp, b.dent, &err) == 0, "%s: backward: %s", what, err.msg);
    size_t n_params;
    float *grads = rl_malloc(m->n_params * sizeof(float));
    BE->mem_download(BE, grads, rl_model_grads(m, &n_params), m->n_params * sizeof(float));
    for (int i = 0; i < r.n; i++) {
        const rl_model_tensor *t = &m->tensors[i];
        int samples = 6;
        double got[6], fd[6], scale = 0.0;
        for (size_t k = 0; k < t->numel; k++) scale += fabs(grads[t->offset + k]);
        scale /= (double)t->numel;
        int bad = -1;
        for (int s = 0; s < samples; s++) {
            size_t e = rl_rng_below(&RNG, (uint32_t)t->numel);
            double keep = r.t[i][e], h = 1e-5;
            r.t[i][e] = keep + h;
            double fp = ref_objective(&r, &b, NULL, NULL);
            r.t[i][e] = keep - h;
            double fm = ref_objective(&r, &b, NULL, NULL);
            r.t[i][e] = keep;
            fd[s] = (fp - fm) / (2 * h);
            got[s] = grads[t->offset + e];
            if (bad < 0 && !(fabs(got[s] - fd[s]) <= 2e-3 * (fabs(fd[s]) + scale) + 1e-7)) bad = s;
        }
        CHECK(bad < 0, "%s: gradient of %s: got %.8g, finite difference %.8g (scale %.3g)", what,
              t->name, bad >= 0 ? got[bad] : 0.0, bad >= 0 ? fd[bad] : 0.0, scale);
    }
    // a second backward accumulates: the gradient doubles
    CHECK(rl_model_backward(m, b.dlogp, b.dent, &err) == 0, "%s: second backward", what);
    float *grads2 = rl_malloc(m->n_params * sizeof(float));
    BE->mem_download(BE, grads2, m->grads_block, m->n_params * sizeof(float));
    double dev = 0.0;
    for (size_t k = 0; k < m->n_params; k++)
        dev = fmax(dev, fabs(grads2[k] - 2.0 * grads[k]) / (1e-3 + fabs(grads[k])));
    CHECK(dev < 1e-4, "%s: second backward does not accumulate (%g)", what, dev);
    double norm2 = 0.0;
    for (size_t k = 0; k < m->n_params; k++) norm2 += (double)grads2[k] * grads2[k];
    CHECK_NEAR(rl_model_grad_norm(m), sqrt(norm2), 1e-6, "grad norm");

    free(logits), free(want), free(logp), free(ent), free(wlp), free(went), free(grads);
    free(grads2);
    ref_free(&r);
    batch_free(&b);
    rl_model_free(m);
}

static void test_grads_tied(void) {
    rl_model_config c = tiny_config();
    c.tie_word_embeddings = 1;
    check_forward_and_grads("tied, entropy, T=1", &c, 1, 1.0f, 0);
}

static void test_grads_untied_window(void) {
    rl_model_config c = tiny_config();
    c.use_sliding_window = 1;
    c.sliding_window = 3;
    c.max_window_layers = 1; // layer 0 full, layer 1 windowed
    check_forward_and_grads("untied, window, entropy, T=0.7, logits in chunks of 4", &c, 1, 0.7f,
                            4);
}

static void test_grads_no_bias_mha(void) {
    rl_model_config c = tiny_config();
    c.attention_bias = 0;
    c.num_key_value_heads = 4; // plain multi-head attention
    c.head_dim = 6;            // NH*hd != C
    check_forward_and_grads("no bias, MHA, hd 6, no entropy, T=1.3", &c, 0, 1.3f, 0);
}

// ------------------------------------------------------------------------------------------------
// Padding and batching

static void test_padding_and_batching(void) {
    rl_model_config cfg = tiny_config();
    rl_model *m = make_model(&cfg, 11);
    int32_t lengths[3] = {6, 3, 5};
    batch b = make_batch(3, 6, lengths, cfg.vocab_size, 1, 1.0f);
    size_t N = 18, V = cfg.vocab_size;
    rl_err err;
    float *lp1 = rl_malloc(N * 4), *h1 = rl_malloc(N * 4), *lp2 = rl_malloc(N * 4);
    float *h2 = rl_malloc(N * 4), *g1 = rl_malloc(m->n_params * 4),
          *g2 = rl_malloc(m->n_params * 4);
    float *logits1 = rl_malloc(N * V * 4), *logits2 = rl_malloc(N * V * 4);

    rl_model_forward(m, b.tokens, b.lengths, 3, 6, &err);
    rl_model_logits(m, logits1, &err);
    rl_model_token_logprobs(m, b.targets, 1.0f, lp1, h1, &err);
    rl_model_zero_grad(m);
    rl_model_backward(m, b.dlogp, b.dent, &err);
    BE->mem_download(BE, g1, m->grads_block, m->n_params * 4);

    // garbage beyond the lengths (tokens, targets and seeds alike) changes nothing
    for (int i = 0; i < 3; i++)
        for (int t = lengths[i]; t < 6; t++) {
            size_t r = (size_t)i * 6 + t;
            b.tokens[r] = t % 2 ? 99999 : -7;
            b.targets[r] = -12345;
            b.dlogp[r] = 1e30f;
            b.dent[r] = NAN;
        }
    CHECK(rl_model_forward(m, b.tokens, b.lengths, 3, 6, &err) == 0, "garbage padding accepted");
    rl_model_logits(m, logits2, &err);
    CHECK(rl_model_token_logprobs(m, b.targets, 1.0f, lp2, h2, &err) == 0, "padding targets");
    rl_model_zero_grad(m);
    rl_model_backward(m, b.dlogp, b.dent, &err);
    BE->mem_download(BE, g2, m->grads_block, m->n_params * 4);
    CHECK(memcmp(logits1, logits2, N * V * 4) == 0, "padding content changes logits");
    CHECK(memcmp(lp1, lp2, N * 4) == 0 && memcmp(h1, h2, N * 4) == 0,
          "padding content changes logp / entropy");
    CHECK(memcmp(g1, g2, m->n_params * 4) == 0, "padding content changes gradients");

    // one sequence at a time, unpadded, gives the same log-probs
    double worst = 0.0;
    for (int i = 0; i < 3; i++) {
        float lp[6], h[6];
        rl_model_forward(m, b.tokens + i * 6, NULL, 1, lengths[i], &err);
        rl_model_token_logprobs(m, b.targets + i * 6, 1.0f, lp, h, &err);
        for (int t = 0; t < lengths[i]; t++) {
            worst = fmax(worst, fabs(lp[t] - lp1[i * 6 + t]));
            worst = fmax(worst, fabs(h[t] - h1[i * 6 + t]));
        }
    }
    CHECK(worst < 1e-5, "batched vs one at a time differ by %g", worst);

    // a zero-length row is allowed and contributes nothing
    int32_t zero_len[2] = {0, 3};
    CHECK(rl_model_forward(m, b.tokens, zero_len, 2, 6, &err) == 0, "zero-length row: %s", err.msg);

    free(lp1), free(h1), free(lp2), free(h2), free(g1), free(g2), free(logits1), free(logits2);
    batch_free(&b);
    rl_model_free(m);
}

// ------------------------------------------------------------------------------------------------
// KV-cache decoding equals the full forward

// Full-forward logits of one sequence (host [len, V]).
static float *full_logits(rl_model *m, const int32_t *tok, int len) {
    rl_err err;
    float *out = rl_malloc((size_t)len * m->V * sizeof(float));
    CHECK(rl_model_forward(m, tok, NULL, 1, len, &err) == 0, "full forward: %s", err.msg);
    rl_model_logits(m, out, &err);
    return out;
}

static double row_err(const float *a, const float *b, int V) {
    double worst = 0.0;
    for (int k = 0; k < V; k++) worst = fmax(worst, fabs(a[k] - b[k]) / (1.0 + fabs(b[k])));
    return worst;
}

static void check_decode(const char *what, const rl_model_config *cfg, int long_prompt) {
    rl_model *m = make_model(cfg, 21);
    if (long_prompt) m->prefill_rows = 50; // several chunks; slot 0 ends one mid-prefill
    int V = cfg->vocab_size, steps = 5;
    int lens[3] = {long_prompt ? 300 : 6, 3, 6}; // prompt lengths of slots 0, 2 and 1 (copy)
    int max_len = lens[0] + steps + 2;
    int32_t *seq[3]; // full token sequences (prompt + decoded) of slots 0, 1, 2
    for (int s = 0; s < 3; s++) {
        seq[s] = rl_malloc((size_t)max_len * sizeof(int32_t));
        for (int t = 0; t < max_len; t++) seq[s][t] = (int32_t)rl_rng_below(&RNG, V);
    }
    memcpy(seq[1], seq[0], (size_t)lens[0] * sizeof(int32_t)); // slot 1 shares slot 0's prompt
    rl_err err;
    rl_kv_cache *c = rl_kv_cache_create(m, 4, max_len, &err);
    CHECK(c != NULL, "cache: %s", err.msg);
    float *logits = rl_malloc((size_t)3 * V * sizeof(float));
    // prefill slots 0 and 2 together (different lengths), then copy 0 -> 1
    int slots2[2] = {0, 2};
    const int32_t *toks2[2] = {seq[0], seq[2]};
    int32_t ntok2[2] = {lens[0], lens[1]};
    CHECK(rl_model_prefill(m, c, 2, slots2, toks2, ntok2, logits, &err) == 0, "prefill: %s",
          err.msg);
    float *full0 = full_logits(m, seq[0], lens[0]);
    float *full2 = full_logits(m, seq[2], lens[1]);
    double worst = fmax(row_err(logits, full0 + (size_t)(lens[0] - 1) * V, V),
                        row_err(logits + V, full2 + (size_t)(lens[1] - 1) * V, V));
    free(full0), free(full2);
    rl_kv_cache_copy_slot(c, 1, 0);
    CHECK(rl_kv_cache_len(c, 1) == lens[0] && rl_kv_cache_len(c, 2) == lens[1], "cache lengths");
    // decode steps: slots in a shuffled order, each at its own position
    int order[3] = {2, 0, 1};
    int pos[3] = {lens[0], lens[0], lens[1]}; // next position of slots 0, 1, 2
    for (int step = 0; step < steps; step++) {
        int32_t tok[3];
        for (int i = 0; i < 3; i++) tok[i] = seq[order[i]][pos[order[i]]];
        CHECK(rl_model_decode_step(m, c, 3, order, tok, logits, &err) == 0, "decode: %s", err.msg);
        for (int i = 0; i < 3; i++) {
            int s = order[i];
            pos[s]++;
            float *full = full_logits(m, seq[s], pos[s]);
            worst =
                fmax(worst, row_err(logits + (size_t)i * V, full + (size_t)(pos[s] - 1) * V, V));
            free(full);
        }
    }
    CHECK(worst < 1e-4, "%s: cached decoding differs from the full forward by %g", what, worst);
    CHECK(rl_kv_cache_len(c, 0) == lens[0] + steps, "slot 0 length after decoding");

    // errors: full slot, duplicate slot, bad token, bad slot
    int dup[2] = {0, 0}, bad_slot[1] = {9};
    int32_t two[2] = {1, 2}, bad_tok[1] = {V};
    CHECK(rl_model_decode_step(m, c, 2, dup, two, logits, &err) != 0 && err.kind == RL_EINPUT,
          "duplicate slot rejected");
    CHECK(rl_model_decode_step(m, c, 1, order, bad_tok, logits, &err) != 0, "bad token rejected");
    CHECK(rl_model_decode_step(m, c, 1, bad_slot, two, logits, &err) != 0, "bad slot rejected");
    const int32_t *big[1] = {seq[0]};
    int32_t nbig[1] = {max_len};
    CHECK(rl_model_prefill(m, c, 1, order + 1, big, nbig, logits, &err) != 0 &&
              err.kind == RL_EINPUT,
          "overfull slot rejected");
    rl_kv_cache_reset(c, 0);
    CHECK(rl_kv_cache_len(c, 0) == 0, "reset");

    for (int s = 0; s < 3; s++) free(seq[s]);
    free(logits);
    rl_kv_cache_free(c);
    rl_model_free(m);
}

static void test_decode(void) {
    rl_model_config c = tiny_config();
    check_decode("decode", &c, 0);
    c.use_sliding_window = 1;
    c.sliding_window = 3;
    c.max_window_layers = 1;
    c.tie_word_embeddings = 1;
    check_decode("decode with window, tied", &c, 0);
    c = tiny_config();
    c.head_dim = 16; // the kernels' 16-lane vector paths (NH*hd = 64 != C)
    check_decode("decode, hd 16", &c, 0);
    c = tiny_config();
    check_decode("decode after a 300-token prompt (chunked prefill)", &c, 1);
}

// ------------------------------------------------------------------------------------------------
// Tensors, config validation, initialisation, training

static void test_tensors_and_config(void) {
    rl_model_config cfg = tiny_config();
    rl_model *m = make_model(&cfg, 3);
    CHECK(rl_model_num_tensors(m) == 12 * 2 + 3, "tensor count %d", rl_model_num_tensors(m));
    const char *name;
    int64_t shape[2];
    int ndim;
    void *data;
    rl_model_tensor_info(m, 0, &name, shape, &ndim, &data);
    CHECK(strcmp(name, "model.embed_tokens.weight") == 0 && ndim == 2 && shape[0] == 37 &&
              shape[1] == 16,
          "tensor 0 is %s", name);
    int k = rl_model_find_tensor(m, "model.layers.1.self_attn.k_proj.weight");
    rl_model_tensor_info(m, k, &name, shape, &ndim, &data);
    CHECK(k > 0 && shape[0] == 8 && shape[1] == 16, "k_proj shape %lld x %lld", (long long)shape[0],
          (long long)shape[1]);
    CHECK(data == (float *)m->params.wqkv + (size_t)1 * m->QKV * 16 + 16 * 16,
          "k_proj view inside wqkv");
    k = rl_model_find_tensor(m, "model.layers.0.mlp.up_proj.weight");
    rl_model_tensor_info(m, k, NULL, NULL, NULL, &data);
    CHECK(data == (float *)m->params.wgu + 24 * 16, "up_proj follows gate_proj");
    CHECK(rl_model_find_tensor(m, "lm_head.weight") == rl_model_num_tensors(m) - 1, "lm_head last");
    CHECK(rl_model_tensor_info(m, 99, &name, shape, &ndim, &data) == -1, "index out of range");
    // HF parameter count: 37*16*2 + 2*(16*32 + 32 + 16*16 + 3*16*24 + 2*16) + 16
    CHECK(rl_model_num_weights(m) == 37 * 16 * 2 + 2 * (16 * 32 + 32 + 256 + 3 * 16 * 24 + 32) + 16,
          "weights %zu", rl_model_num_weights(m));
    // write / read round trip
    float vals[16], back[16];
    for (int i = 0; i < 16; i++) vals[i] = (float)i - 3.5f;
    int nf = rl_model_find_tensor(m, "model.norm.weight");
    rl_model_tensor_write(m, nf, vals);
    rl_model_tensor_read(m, nf, back);
    CHECK(memcmp(vals, back, sizeof vals) == 0, "tensor round trip");
    // spans: decay part holds the matrices, the rest norms and biases
    int ns;
    const rl_param_span *sp = rl_model_decay_spans(m, &ns);
    CHECK(ns == 2 && sp[0].decay == 1 && sp[1].decay == 0 && sp[0].offset == 0 &&
              sp[1].offset == sp[0].count && sp[0].count + sp[1].count == m->n_params,
          "decay spans");
    CHECK(m->tensors[nf].offset >= sp[1].offset, "norm weight in the no-decay span");
    rl_model_free(m);

    cfg.tie_word_embeddings = 1;
    cfg.attention_bias = 0;
    m = make_model(&cfg, 3);
    CHECK(rl_model_num_tensors(m) == 9 * 2 + 2, "tied, no bias: %d tensors",
          rl_model_num_tensors(m));
    CHECK(m->params.wlm == m->params.wte && rl_model_find_tensor(m, "lm_head.weight") < 0,
          "tied lm_head");
    rl_model_free(m);

    rl_err err;
    struct {
        const char *what;
        int field, value;
    } bad[] = {{"heads", 0, 5}, {"head_dim odd", 1, 5}, {"vocab", 2, 0}, {"window", 3, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl_model_config c = tiny_config();
        if (bad[i].field == 0) c.num_attention_heads = bad[i].value;
        if (bad[i].field == 1) c.head_dim = bad[i].value;
        if (bad[i].field == 2) c.vocab_size = bad[i].value;
        if (bad[i].field == 3) c.use_sliding_window = 1, c.sliding_window = 0;
        rl_model *bm = (rl_model *)1;
        CHECK(rl_model_create(&bm, &c, BE, &err) == -1 && err.kind == RL_EINPUT && bm == NULL,
              "bad config (%s) rejected", bad[i].what);
    }
    rl_model_config c = tiny_config();
    c.head_dim = 0; // derived: 16 / 4
    CHECK(rl_model_create(&m, &c, BE, &err) == 0 && m->hd == 4, "head_dim derived");
    int32_t tok[2] = {3, 37};
    CHECK(rl_model_forward(m, tok, NULL, 1, 2, &err) == -1 && err.kind == RL_EINPUT,
          "out-of-vocabulary token rejected");
    CHECK(rl_model_backward(m, NULL, NULL, &err) == -1, "backward without log-probs rejected");
    rl_model_free(m);
}

static void test_init(void) {
    rl_model_config cfg = tiny_config();
    cfg.hidden_size = 64;
    cfg.head_dim = 16;
    cfg.vocab_size = 500;
    rl_model *a, *b;
    rl_err err;
    rl_model_create(&a, &cfg, BE, &err);
    rl_model_create(&b, &cfg, BE, &err);
    rl_model_init_random(a, 42, 0.02f);
    rl_model_init_random(b, 42, 0.02f);
    size_t n;
    const float *block_a = rl_model_params(a, &n), *block_b = rl_model_params(b, &n);
    float *pa = rl_malloc(n * 4), *pb = rl_malloc(n * 4);
    BE->mem_download(BE, pa, block_a, n * 4);
    BE->mem_download(BE, pb, block_b, n * 4);
    CHECK(memcmp(pa, pb, n * 4) == 0, "same seed, same parameters");
    rl_model_init_random(b, 43, 0.02f);
    BE->mem_download(BE, pb, block_b, n * 4);
    CHECK(memcmp(pa, pb, n * 4) != 0, "another seed, other parameters");
    for (int i = 0; i < a->n_tensors; i++) {
        const rl_model_tensor *t = &a->tensors[i];
        const float *x = pa + t->offset;
        double s = 0.0, s2 = 0.0;
        for (size_t k = 0; k < t->numel; k++) s += x[k], s2 += (double)x[k] * x[k];
        double mean = s / t->numel, sd = sqrt(s2 / t->numel - mean * mean);
        if (t->init == 0)
            CHECK(fabs(sd - 0.02) < 0.002 && fabs(mean) < 0.002, "%s: mean %g sd %g", t->name, mean,
                  sd);
        else
            CHECK(mean == (t->init == 2 ? 1.0 : 0.0) && sd == 0.0, "%s: constant init", t->name);
    }
    free(pa), free(pb);
    rl_model_free(a);
    rl_model_free(b);
}

// SFT cross-entropy on one fixed batch must go down under AdamW.
static void test_training_reduces_loss(void) {
    rl_model_config cfg = tiny_config();
    rl_model *m = make_model(&cfg, 5);
    rl_model_init_random(m, 5, 0.1f);
    int32_t lengths[4] = {7, 7, 6, 4};
    batch b = make_batch(4, 7, lengths, cfg.vocab_size, 0, 1.0f);
    int n_targets = 0;
    for (int k = 0; k < 28; k++) n_targets += b.targets[k] >= 0;
    for (int k = 0; k < 28; k++) b.dlogp[k] = b.targets[k] >= 0 ? -1.0f / n_targets : 0.0f;
    rl_adamw *opt;
    rl_err err;
    int ns;
    const rl_param_span *spans = rl_model_decay_spans(m, &ns);
    size_t n;
    float *params = rl_model_params(m, &n);
    CHECK(rl_adamw_create(&opt, BE, n, spans, ns, &err) == 0, "adamw: %s", err.msg);
    rl_adamw_hparams hp = {3e-2f, 0.9f, 0.95f, 1e-8f, 0.01f};
    float logp[28];
    double first = 0.0, last = 0.0;
    for (int step = 0; step < 30; step++) {
        rl_model_forward(m, b.tokens, b.lengths, 4, 7, &err);
        rl_model_token_logprobs(m, b.targets, 1.0f, logp, NULL, &err);
        double loss = 0.0;
        for (int k = 0; k < 28; k++) loss -= b.targets[k] >= 0 ? logp[k] / n_targets : 0.0;
        if (step == 0) first = loss;
        last = loss;
        rl_model_zero_grad(m);
        rl_model_backward(m, b.dlogp, NULL, &err);
        float scale = rl_clip_scale(rl_model_grad_norm(m), 1.0f);
        rl_adamw_step(opt, params, rl_model_grads(m, NULL), &hp, scale);
    }
    CHECK(last < 0.5 * first, "loss %g -> %g after 30 steps", first, last);
    CHECK(opt->step == 30, "optimizer step count");
    rl_param_span bad = {1, n, 1};
    rl_adamw *bad_opt;
    CHECK(rl_adamw_create(&bad_opt, BE, n, &bad, 1, &err) == -1, "spans must tile the block");
    rl_adamw_free(opt);
    batch_free(&b);
    rl_model_free(m);
}

int main(void) {
    const char *name = getenv("RLPIPE_TEST_BACKEND");
    rl_err err;
    BE = rl_backend_get(name ? name : "cpu", &err);
    if (!BE) {
        fprintf(stderr, "skip: %s\n", err.msg);
        return 77;
    }
    RNG = rl_rng_stream(99, RL_RNG_INIT, 1, 0);
    RUN(test_grads_tied);
    RUN(test_grads_untied_window);
    RUN(test_grads_no_bias_mha);
    RUN(test_padding_and_batching);
    RUN(test_decode);
    RUN(test_tensors_and_config);
    RUN(test_init);
    RUN(test_training_reduces_loss);
    rl_backend_release(BE);
    return test_summary();
}
