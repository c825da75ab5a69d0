// test_golden: parity with Hugging Face transformers on the golden fixtures in tests/golden/
// (written by scripts/make_golden.py with transformers itself: tiny random Qwen2 checkpoints
// saved by save_pretrained, reference log-probs computed in float32 with eager attention, and
// for some cases the gradient of the summed log-probs w.r.t. every parameter).
//
// For each case: rl_model_load the directory, score all sequences in ONE padded batch (the
// reference scored each alone, unpadded) and compare the log-probs; compare each sequence
// scored alone too (batching must not change results beyond float rounding); compare the
// gradients tensor by tensor; and run `rlpipe logprobs` on the directory and compare its
// output. Prints the measured differences per case.
#define _POSIX_C_SOURCE 200809L
#include "kernels/backend.h"
#include "policy/checkpoint.h"
#include "policy/model.h"
#include "policy/safetensors.h"
#include "test_util.h"

#include <jansson.h>
#include <stdint.h>

#define GOLDEN_DIR "tests/golden"
#define LOGP_TOL   1e-5 // absolute below 1, relative above (CHECK_NEAR): fp32 vs fp32
#define GRAD_TOL   1e-4 // max |g - ref| / max |ref| per tensor

static const char *const CASES[] = {"f32_tied_gqa",   "f32_untied_mqa", "bf16_untied_mha",
                                    "sliding_window", "sharded_mha",    "tied_extra_lm_head"};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

typedef struct golden {
    int n;         // sequences
    int32_t **ids; // [n][len[i]]
    int *len;      // [n]
    double **logp; // [n][len[i] - 1] (or empty)
    int has_grads;
} golden;

static int load_golden(golden *g, const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/expected.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        return -1;
    }
    json_t *seqs = json_object_get(root, "sequences");
    g->n = (int)json_array_size(seqs);
    g->ids = calloc(g->n, sizeof *g->ids);
    g->len = calloc(g->n, sizeof *g->len);
    g->logp = calloc(g->n, sizeof *g->logp);
    for (int i = 0; i < g->n; i++) {
        json_t *s = json_array_get(seqs, i);
        json_t *ids = json_object_get(s, "ids"), *lp = json_object_get(s, "logprobs");
        g->len[i] = (int)json_array_size(ids);
        g->ids[i] = calloc(g->len[i] + 1, sizeof(int32_t));
        g->logp[i] = calloc(g->len[i] + 1, sizeof(double));
        for (int t = 0; t < g->len[i]; t++)
            g->ids[i][t] = (int32_t)json_integer_value(json_array_get(ids, t));
        int nlp = (int)json_array_size(lp);
        if (nlp != (g->len[i] > 0 ? g->len[i] - 1 : 0)) {
            fprintf(stderr, "%s: sequence %d: %d log-probs for %d ids\n", path, i, nlp, g->len[i]);
            json_decref(root);
            return -1;
        }
        for (int t = 0; t < nlp; t++) g->logp[i][t] = json_real_value(json_array_get(lp, t));
    }
    g->has_grads = json_object_get(root, "grads") != NULL;
    json_decref(root);
    return 0;
}

static void free_golden(golden *g) {
    for (int i = 0; i < g->n; i++) free(g->ids[i]), free(g->logp[i]);
    free(g->ids), free(g->len), free(g->logp);
}

// Scores sequences [first, first+count) of g in one padded batch; out[i][t] receives the
// log-prob of token t+1 of sequence first+i. Returns T (the padded length), or -1.
static int score(rl_model *m, const golden *g, int first, int count, float **out, int backward) {
    int T = 1;
    for (int i = 0; i < count; i++)
        if (g->len[first + i] > T) T = g->len[first + i];
    size_t N = (size_t)count * T;
    int32_t *tokens = calloc(N, sizeof(int32_t)), *targets = malloc(N * sizeof(int32_t));
    int32_t *lengths = malloc(count * sizeof(int32_t));
    float *logp = malloc(N * sizeof(float)), *seed = malloc(N * sizeof(float));
    for (int i = 0; i < count; i++) {
        const int32_t *ids = g->ids[first + i];
        int n = g->len[first + i];
        lengths[i] = n;
        for (int t = 0; t < T; t++) {
            // padding gets a random-looking valid id: it must change nothing
            tokens[(size_t)i * T + t] = t < n ? ids[t] : (int32_t)((7 * t + 3) % m->V);
            targets[(size_t)i * T + t] = t + 1 < n ? ids[t + 1] : -1;
            seed[(size_t)i * T + t] = t + 1 < n ? 1.0f : 0.0f;
        }
    }
    rl_err err = {0};
    int rc = rl_model_forward(m, tokens, lengths, count, T, &err);
    if (rc == 0) rc = rl_model_token_logprobs(m, targets, 1.0f, logp, NULL, &err);
    if (rc == 0 && backward) {
        rl_model_zero_grad(m);
        rc = rl_model_backward(m, seed, NULL, &err);
    }
    CHECK(rc == 0, "forward/backward: %s", err.msg);
    for (int i = 0; i < count && rc == 0; i++)
        for (int t = 0; t + 1 < g->len[first + i]; t++) out[first + i][t] = logp[(size_t)i * T + t];
    free(tokens), free(targets), free(lengths), free(logp), free(seed);
    return rc == 0 ? T : -1;
}

// Compares the model's gradient block with grads.safetensors. Returns the max abs difference and
// the max relative (per-tensor inf-norm) difference.
static void compare_grads(rl_model *m, const char *dir, double *max_abs, double *max_rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/grads.safetensors", dir);
    rl_err err = {0};
    rl_st_file *f;
    *max_abs = *max_rel = 0.0;
    if (rl_st_open(&f, path, &err) != 0) {
        CHECK(0, "%s", err.msg);
        return;
    }
    CHECK(rl_st_count(f) == rl_model_num_tensors(m), "%s: %d gradients for %d tensors", path,
          rl_st_count(f), rl_model_num_tensors(m));
    size_t n_grads;
    float *grads = rl_model_grads(m, &n_grads);
    for (int k = 0; k < rl_st_count(f); k++) {
        const rl_st_tensor *t = rl_st_at(f, k);
        int i = rl_model_find_tensor(m, t->name);
        CHECK(i >= 0, "gradient for unknown tensor %s", t->name);
        if (i < 0) continue;
        size_t numel = m->tensors[i].numel;
        CHECK(numel == t->numel, "%s: %zu elements, model has %zu", t->name, t->numel, numel);
        if (numel != t->numel) continue;
        float *ref = malloc(numel * sizeof(float)), *got = malloc(numel * sizeof(float));
        CHECK(rl_st_read_f32(f, t, ref, numel, &err) == 0, "%s", err.msg);
        m->be->mem_download(m->be, got, grads + m->tensors[i].offset, numel * sizeof(float));
        double diff = 0.0, scale = 0.0;
        for (size_t j = 0; j < numel; j++) {
            diff = fmax(diff, fabs((double)got[j] - ref[j]));
            scale = fmax(scale, fabs((double)ref[j]));
        }
        double rel = diff / fmax(scale, 1e-30);
        CHECK(scale > 0.0, "%s: reference gradient is all zeros", t->name);
        CHECK(rel <= GRAD_TOL, "%s: gradient max |diff| %.3g, max |ref| %.3g (rel %.3g)", t->name,
              diff, scale, rel);
        *max_abs = fmax(*max_abs, diff);
        *max_rel = fmax(*max_rel, rel);
        free(ref), free(got);
    }
    rl_st_close(f);
}

// Runs `rlpipe logprobs --model dir --batch 2` on the case's sequences; returns the max abs
// difference from the reference (or +inf on failure).
static double run_cli(const char *dir, const golden *g) {
    char tmp[] = "/tmp/rlpipe-golden-XXXXXX";
    if (!mkdtemp(tmp)) return INFINITY;
    char in[256], out[256], cmd[1024];
    snprintf(in, sizeof in, "%s/in.jsonl", tmp);
    snprintf(out, sizeof out, "%s/out.jsonl", tmp);
    FILE *fp = fopen(in, "w");
    for (int i = 0; i < g->n; i++) {
        fprintf(fp, "{\"ids\": [");
        for (int t = 0; t < g->len[i]; t++) fprintf(fp, t ? ",%d" : "%d", g->ids[i][t]);
        fprintf(fp, "]}\n");
    }
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s logprobs --model %s --batch 2 < %s > %s 2>/dev/null",
             test_rlpipe_bin(), dir, in, out);
    int rc = system(cmd);
    CHECK(rc == 0, "%s: exit status %d", cmd, rc);
    double worst = 0.0;
    fp = fopen(out, "r");
    char *line = NULL;
    size_t cap = 0;
    int i = 0;
    while (fp && getline(&line, &cap, fp) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        json_t *lp = json_object_get(o, "logprobs");
        CHECK(i < g->n && json_is_array(lp), "line %d: %s", i + 1, line);
        if (i < g->n && json_is_array(lp)) {
            int want = g->len[i] > 0 ? g->len[i] - 1 : 0;
            CHECK((int)json_array_size(lp) == want, "line %d: %zu values, want %d", i + 1,
                  json_array_size(lp), want);
            for (int t = 0; t < want && t < (int)json_array_size(lp); t++) {
                double v = json_number_value(json_array_get(lp, t));
                CHECK_NEAR(v, g->logp[i][t], LOGP_TOL, "rlpipe logprobs value");
                worst = fmax(worst, fabs(v - g->logp[i][t]));
            }
        }
        json_decref(o);
        i++;
    }
    CHECK(i == g->n, "%d output lines for %d sequences", i, g->n);
    free(line);
    if (fp) fclose(fp);
    unlink(in), unlink(out), rmdir(tmp);
    return worst;
}

static void run_case(const rl_backend *be, const char *name) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/%s", GOLDEN_DIR, name);
    golden g = {0};
    if (load_golden(&g, dir) != 0) {
        CHECK(0, "%s: cannot read the fixture", dir);
        return;
    }
    rl_err err = {0};
    rl_model *m;
    if (rl_model_load(&m, dir, be, &err) != 0) {
        CHECK(0, "%s: %s", dir, err.msg);
        free_golden(&g);
        return;
    }
    float **batched = calloc(g.n, sizeof(float *)), **alone = calloc(g.n, sizeof(float *));
    for (int i = 0; i < g.n; i++) {
        batched[i] = calloc(g.len[i] + 1, sizeof(float));
        alone[i] = calloc(g.len[i] + 1, sizeof(float));
    }
    score(m, &g, 0, g.n, batched, g.has_grads);
    double grad_abs = 0.0, grad_rel = 0.0;
    if (g.has_grads) compare_grads(m, dir, &grad_abs, &grad_rel);
    for (int i = 0; i < g.n; i++) score(m, &g, i, 1, alone, 0);

    double worst = 0.0, biggest = 0.0, batch_diff = 0.0;
    int values = 0;
    for (int i = 0; i < g.n; i++)
        for (int t = 0; t + 1 < g.len[i]; t++) {
            CHECK_NEAR(batched[i][t], g.logp[i][t], LOGP_TOL, name);
            worst = fmax(worst, fabs(batched[i][t] - g.logp[i][t]));
            biggest = fmax(biggest, fabs(g.logp[i][t]));
            batch_diff = fmax(batch_diff, fabs((double)batched[i][t] - alone[i][t]));
            values++;
        }
    // Not bit-exact: OpenBLAS picks other kernels for other matrix shapes (row results of sgemm
    // change with M), so batching may move the last bits, never more.
    for (int i = 0; i < g.n; i++)
        for (int t = 0; t + 1 < g.len[i]; t++)
            CHECK_NEAR(batched[i][t], alone[i][t], LOGP_TOL, "batched vs alone");
    double cli = run_cli(dir, &g);
    fprintf(stderr,
            "  %-18s %2d log-probs (|ref| <= %5.2f): max |diff| %.2e, batched vs alone %.1e, "
            "rlpipe logprobs %.2e",
            name, values, biggest, worst, batch_diff, cli);
    if (g.has_grads)
        fprintf(stderr, "; grads %d tensors: max |diff| %.2e, max rel %.2e", m->n_tensors, grad_abs,
                grad_rel);
    fprintf(stderr, "\n");

    for (int i = 0; i < g.n; i++) free(batched[i]), free(alone[i]);
    free(batched), free(alone);
    rl_model_free(m);
    free_golden(&g);
}

static void test_golden_cases(void) {
    rl_err err = {0};
    const rl_backend *be = rl_backend_get("cpu", &err);
    for (int c = 0; c < N_CASES; c++) run_case(be, CASES[c]);
    rl_backend_release(be);
}

// The comparison can fail: without the sliding window the same fixture is far off.
static void test_golden_detects_a_wrong_window(void) {
    rl_err err = {0};
    const rl_backend *be = rl_backend_get("cpu", &err);
    golden g = {0};
    rl_model *m;
    const char *dir = GOLDEN_DIR "/sliding_window";
    if (load_golden(&g, dir) != 0 || rl_model_load(&m, dir, be, &err) != 0) {
        CHECK(0, "%s: cannot load", dir);
        return;
    }
    m->cfg.use_sliding_window = 0;
    float **lp = calloc(g.n, sizeof(float *));
    for (int i = 0; i < g.n; i++) lp[i] = calloc(g.len[i] + 1, sizeof(float));
    score(m, &g, 0, g.n, lp, 0);
    double worst = 0.0;
    for (int i = 0; i < g.n; i++)
        for (int t = 0; t + 1 < g.len[i]; t++) worst = fmax(worst, fabs(lp[i][t] - g.logp[i][t]));
    CHECK(worst > 0.1, "full attention should not match the windowed reference (diff %.3g)", worst);
    for (int i = 0; i < g.n; i++) free(lp[i]);
    free(lp);
    rl_model_free(m);
    free_golden(&g);
    rl_backend_release(be);
}

int main(void) {
    if (access(GOLDEN_DIR "/f32_tied_gqa/expected.json", R_OK) != 0) {
        fprintf(stderr, "test_golden: %s not found (run from the project root)\n", GOLDEN_DIR);
        return 77;
    }
    RUN(test_golden_cases);
    RUN(test_golden_detects_a_wrong_window);
    return test_summary();
}
