// test_rollout: the sampling engine (determinism, batching, stop rules, recorded log-probs), the
// procedural tasks and their teacher (scored by the real verifiers), and JSONL prompt sources.
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/backend.h"
#include "kernels/rng.h"
#include "policy/model.h"
#include "policy/tokenizer.h"
#include "reward/reward.h"
#include "rollout/dataset.h"
#include "rollout/engine.h"
#include "rollout/tasks.h"
#include "test_util.h"

static rl_model *tiny_model(const rl_backend *be, uint64_t seed) {
    rl_model_config c = {0};
    c.hidden_size = 32;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.intermediate_size = 48;
    c.vocab_size = 272;
    c.max_position_embeddings = 256;
    c.rope_theta = 10000;
    c.rms_norm_eps = 1e-5;
    c.tie_word_embeddings = 1;
    c.attention_bias = 1;
    c.eos_token_id = 256;
    rl_model *m;
    rl_err err = {0};
    if (rl_model_create(&m, &c, be, &err)) {
        fprintf(stderr, "model: %s\n", err.msg);
        exit(1);
    }
    // A large init so that sampling at temperature 1 is far from uniform and stops sometimes.
    rl_model_init_random(m, seed, 0.5f);
    return m;
}

typedef struct fixture {
    const rl_backend *be;
    rl_tokenizer *tok;
    rl_model *m;
    rl_ids prompts[3];
} fixture;

static void fixture_init(fixture *f) {
    rl_err err = {0};
    f->be = rl_backend_cpu();
    if (rl_tokenizer_load(&f->tok, "byte", &err)) exit(1);
    f->m = tiny_model(f->be, 11);
    const char *texts[3] = {"Compute 3+4*2-5.\n", "Q: 12+7?\n", "Let f(x)=x^2. Find f'(3).\n"};
    for (int i = 0; i < 3; i++) {
        memset(&f->prompts[i], 0, sizeof f->prompts[i]);
        rl_tokenizer_encode_append(f->tok, texts[i], strlen(texts[i]), &f->prompts[i], &err);
    }
}

static void fixture_free(fixture *f) {
    for (int i = 0; i < 3; i++) rl_ids_free(&f->prompts[i]);
    rl_model_free(f->m);
    rl_tokenizer_free(f->tok);
}

static rl_gen_params params_at(float temperature, int max_new) {
    static const int32_t eos[1] = {256};
    rl_gen_params p = {
        .sampling = {.temperature = temperature, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f},
        .max_new_tokens = max_new,
        .stop_ids = eos,
        .n_stop_ids = 1,
        .seed = 99,
    };
    return p;
}

static int same_completion(const rl_completion *a, const rl_completion *b) {
    if (a->n_tokens != b->n_tokens || a->finish != b->finish) return 0;
    for (int i = 0; i < a->n_tokens; i++)
        if (a->tokens[i] != b->tokens[i]) return 0;
    return strcmp(a->text, b->text) == 0;
}

// The same seed gives the same samples whatever the batch: all prompts together, one at a time,
// in another order, or through a cache so small that groups are generated in several rounds.
static void test_batching_and_determinism(void) {
    fixture f;
    fixture_init(&f);
    rl_err err = {0};
    rl_gen_params p = params_at(1.0f, 24);
    int G = 4;
    rl_gen_prompt gp[3];
    for (int i = 0; i < 3; i++)
        gp[i] = (rl_gen_prompt){f.prompts[i].data, (int)f.prompts[i].len, 1000 + i, G};
    rl_engine *big, *small;
    CHECK(rl_engine_create(&big, f.m, f.tok, 12, 128, 272, &err) == 0, "%s", err.msg);
    CHECK(rl_engine_create(&small, f.m, f.tok, 4, 128, 272, &err) == 0, "%s", err.msg);
    rl_completion all[12], again[12], one[4], rounds[12];
    rl_gen_stats st;
    CHECK(rl_generate(big, &p, gp, 3, all, &st, &err) == 0, "%s", err.msg);
    CHECK(st.new_tokens > 0 && st.tokens_per_s > 0, "throughput is measured");
    CHECK(rl_generate(big, &p, gp, 3, again, NULL, &err) == 0, "%s", err.msg);
    CHECK(rl_generate(small, &p, gp, 3, rounds, NULL, &err) == 0, "%s", err.msg);
    int distinct = 0;
    for (int i = 0; i < 12; i++) {
        CHECK(same_completion(&all[i], &again[i]), "sample %d differs between identical calls", i);
        CHECK(same_completion(&all[i], &rounds[i]), "sample %d differs when generated in rounds",
              i);
        if (i % G && !same_completion(&all[i], &all[i - 1])) distinct++;
    }
    CHECK(distinct > 0, "samples of one group should differ at temperature 1");
    // One prompt alone (the third), in a call of its own.
    CHECK(rl_generate(big, &p, &gp[2], 1, one, NULL, &err) == 0, "%s", err.msg);
    for (int s = 0; s < G; s++)
        CHECK(same_completion(&one[s], &all[8 + s]), "alone: sample %d differs", s);
    // Reversed prompt order: each prompt keeps its samples (streams are named by key, not position).
    rl_gen_prompt rev[3] = {gp[2], gp[1], gp[0]};
    rl_completion revc[12];
    CHECK(rl_generate(big, &p, rev, 3, revc, NULL, &err) == 0, "%s", err.msg);
    for (int i = 0; i < 3; i++)
        for (int s = 0; s < G; s++)
            CHECK(same_completion(&revc[(2 - i) * G + s], &all[i * G + s]),
                  "reversed: prompt %d sample %d", i, s);
    // Another seed changes the samples.
    rl_gen_params p2 = p;
    p2.seed = 100;
    rl_completion other[12];
    CHECK(rl_generate(big, &p2, gp, 3, other, NULL, &err) == 0, "%s", err.msg);
    int changed = 0;
    for (int i = 0; i < 12; i++) changed += !same_completion(&other[i], &all[i]);
    CHECK(changed > 0, "a different seed should change some samples");
    for (int i = 0; i < 12; i++) {
        rl_completion_free(&all[i]);
        rl_completion_free(&again[i]);
        rl_completion_free(&rounds[i]);
        rl_completion_free(&revc[i]);
        rl_completion_free(&other[i]);
    }
    for (int s = 0; s < G; s++) rl_completion_free(&one[s]);
    rl_engine_free(big);
    rl_engine_free(small);
    fixture_free(&f);
}

// The recorded log-probs equal a fresh full forward over prompt + completion: logp_policy at
// temperature 1, logp_sample under the sampling temperature (no truncation here).
static void test_logprobs_match_forward(void) {
    fixture f;
    fixture_init(&f);
    rl_err err = {0};
    rl_gen_params p = params_at(0.7f, 20);
    rl_gen_prompt gp = {f.prompts[0].data, (int)f.prompts[0].len, 5, 3};
    rl_engine *e;
    CHECK(rl_engine_create(&e, f.m, f.tok, 3, 128, 272, &err) == 0, "%s", err.msg);
    rl_completion c[3];
    CHECK(rl_generate(e, &p, &gp, 1, c, NULL, &err) == 0, "%s", err.msg);
    for (int s = 0; s < 3; s++) {
        int np = gp.n_ids, T = np + c[s].n_tokens;
        int32_t *tok = malloc(sizeof(int32_t) * T), *tgt = malloc(sizeof(int32_t) * T);
        float *lp1 = malloc(sizeof(float) * T), *lpt = malloc(sizeof(float) * T);
        for (int t = 0; t < T; t++) tok[t] = t < np ? gp.ids[t] : c[s].tokens[t - np];
        for (int t = 0; t < T; t++) tgt[t] = t + 1 < T && t + 1 >= np ? tok[t + 1] : -1;
        CHECK(rl_model_forward(f.m, tok, NULL, 1, T, &err) == 0, "%s", err.msg);
        CHECK(rl_model_token_logprobs(f.m, tgt, 1.0f, lp1, NULL, &err) == 0, "%s", err.msg);
        CHECK(rl_model_token_logprobs(f.m, tgt, 0.7f, lpt, NULL, &err) == 0, "%s", err.msg);
        for (int k = 0; k < c[s].n_tokens; k++) {
            CHECK_NEAR(c[s].logp_policy[k], lp1[np + k - 1], 1e-4, "logp_policy vs forward");
            CHECK_NEAR(c[s].logp_sample[k], lpt[np + k - 1], 1e-4, "logp_sample vs forward at T");
        }
        free(tok);
        free(tgt);
        free(lp1);
        free(lpt);
        rl_completion_free(&c[s]);
    }
    rl_engine_free(e);
    fixture_free(&f);
}

// Greedy decoding is the argmax path: equal to a step-by-step full-forward argmax.
static void test_greedy_matches_forward_argmax(void) {
    fixture f;
    fixture_init(&f);
    rl_err err = {0};
    rl_gen_params p = params_at(1.0f, 12);
    p.greedy = 1;
    p.n_stop_ids = 0; // run to the budget
    rl_gen_prompt gp = {f.prompts[1].data, (int)f.prompts[1].len, 1, 1};
    rl_engine *e;
    CHECK(rl_engine_create(&e, f.m, f.tok, 1, 64, 272, &err) == 0, "%s", err.msg);
    rl_completion c;
    CHECK(rl_generate(e, &p, &gp, 1, &c, NULL, &err) == 0, "%s", err.msg);
    CHECK(c.n_tokens == 12 && c.finish == RL_FINISH_LENGTH, "budget stop: %d tokens, finish %d",
          c.n_tokens, c.finish);
    int T = gp.n_ids + 12, V = f.m->V;
    int32_t *tok = malloc(sizeof(int32_t) * T);
    float *logits = malloc(sizeof(float) * (size_t)T * V);
    for (int t = 0; t < gp.n_ids; t++) tok[t] = gp.ids[t];
    for (int k = 0; k < 12; k++) {
        int len = gp.n_ids + k;
        CHECK(rl_model_forward(f.m, tok, NULL, 1, len, &err) == 0, "%s", err.msg);
        int32_t *tgt = malloc(sizeof(int32_t) * len);
        float *lp = malloc(sizeof(float) * len);
        for (int t = 0; t < len; t++) tgt[t] = -1;
        rl_model_token_logprobs(f.m, tgt, 1.0f, lp, NULL, &err);
        rl_model_logits(f.m, logits, &err);
        tok[len] = rl_argmax(logits + (size_t)(len - 1) * V, 272);
        CHECK(tok[len] == c.tokens[k], "greedy token %d: engine %d, forward argmax %d", k,
              c.tokens[k], tok[len]);
        free(tgt);
        free(lp);
    }
    free(tok);
    free(logits);
    rl_completion_free(&c);
    rl_engine_free(e);
    fixture_free(&f);
}

// Stop strings end a completion even when they span token boundaries, and are cut from the
// text; stop tokens are kept in tokens but not in text.
static void test_stop_rules(void) {
    fixture f;
    fixture_init(&f);
    rl_err err = {0};
    rl_gen_params free_run = params_at(1.0f, 40);
    free_run.n_stop_ids = 0;
    rl_gen_prompt gp = {f.prompts[0].data, (int)f.prompts[0].len, 77, 1};
    rl_engine *e;
    CHECK(rl_engine_create(&e, f.m, f.tok, 1, 128, 272, &err) == 0, "%s", err.msg);
    rl_completion ref;
    CHECK(rl_generate(e, &free_run, &gp, 1, &ref, NULL, &err) == 0, "%s", err.msg);
    // Pick a 2-byte stop string that spans two tokens of the reference completion (tokens 5, 6
    // are single bytes when they are byte tokens).
    int k = 5;
    while (k + 1 < ref.n_tokens && (ref.tokens[k] >= 256 || ref.tokens[k + 1] >= 256)) k++;
    CHECK(k + 1 < ref.n_tokens, "need two byte tokens");
    char stop[3] = {(char)ref.tokens[k], (char)ref.tokens[k + 1], 0};
    // The text up to the first occurrence of `stop` in the reference's bytes.
    char bytes[64];
    int nb = 0;
    for (int i = 0; i < ref.n_tokens && nb < 60; i++) {
        size_t len;
        const char *b = rl_tokenizer_token_bytes(f.tok, ref.tokens[i], &len);
        for (size_t j = 0; j < len && nb < 60; j++) bytes[nb++] = b[j];
    }
    bytes[nb] = 0;
    char *first = strstr(bytes, stop);
    CHECK(first != NULL, "stop string occurs");
    const char *stops[1] = {stop};
    rl_gen_params p = free_run;
    p.stop_strings = stops;
    p.n_stop_strings = 1;
    rl_completion c;
    CHECK(rl_generate(e, &p, &gp, 1, &c, NULL, &err) == 0, "%s", err.msg);
    CHECK(c.finish == RL_FINISH_STOP, "stopped by the string");
    // The text is the bytes before the stop string, made valid UTF-8 (a random model emits stray
    // bytes >= 0x80, each shown as U+FFFD).
    size_t want_len = 0;
    char *want_text = rl_utf8_lossy(bytes, first ? (size_t)(first - bytes) : 0, &want_len);
    CHECK(first && c.text_len == want_len && memcmp(c.text, want_text, want_len) == 0,
          "text cut before the stop string (%zu vs %zu bytes)", c.text_len, want_len);
    free(want_text);
    CHECK(c.n_tokens <= k + 2, "stopped no later than the token completing the string");
    for (int i = 0; i < c.n_tokens; i++) CHECK(c.tokens[i] == ref.tokens[i], "prefix token %d", i);
    // A stop token: whatever the reference's 4th token is, stopping on it ends there.
    int32_t stop_id[1] = {ref.tokens[3]};
    rl_gen_params q = free_run;
    q.stop_ids = stop_id;
    q.n_stop_ids = 1;
    rl_completion d;
    CHECK(rl_generate(e, &q, &gp, 1, &d, NULL, &err) == 0, "%s", err.msg);
    int first_at = 0;
    while (ref.tokens[first_at] != stop_id[0]) first_at++;
    CHECK(d.n_tokens == first_at + 1 && d.finish == RL_FINISH_STOP,
          "stop token ends the completion (n %d)", d.n_tokens);
    CHECK(d.tokens[d.n_tokens - 1] == stop_id[0], "the stop token is kept in tokens");
    rl_completion_free(&ref);
    rl_completion_free(&c);
    rl_completion_free(&d);
    rl_engine_free(e);
    fixture_free(&f);
}

static void test_bad_requests(void) {
    fixture f;
    fixture_init(&f);
    rl_err err = {0};
    rl_engine *e;
    CHECK(rl_engine_create(&e, f.m, f.tok, 2, 32, 272, &err) == 0, "%s", err.msg);
    rl_gen_params p = params_at(1.0f, 30);
    rl_gen_prompt gp = {f.prompts[0].data, (int)f.prompts[0].len, 1, 1};
    rl_completion c[4];
    CHECK(rl_generate(e, &p, &gp, 1, c, NULL, &err) != 0 && err.kind == RL_EINPUT, "too long: %s",
          err.msg);
    gp.n_samples = 3;
    p.max_new_tokens = 4;
    CHECK(rl_generate(e, &p, &gp, 1, c, NULL, &err) != 0 && err.kind == RL_EINPUT,
          "group > slots: %s", err.msg);
    gp.n_ids = 0;
    gp.n_samples = 1;
    CHECK(rl_generate(e, &p, &gp, 1, c, NULL, &err) != 0 && err.kind == RL_EINPUT, "empty prompt");
    rl_engine_free(e);
    fixture_free(&f);
}

// ---- tasks and teacher ---------------------------------------------------------------------------

static rl_reward *default_reward(void) {
    int n;
    rl_verifier_spec *specs = rl_reward_default_specs(&n);
    rl_reward *rw = NULL;
    rl_err err = {0};
    rl_reward_opts o = {.threads = 2};
    if (rl_reward_create(&rw, specs, n, &o, &err)) fprintf(stderr, "reward: %s\n", err.msg);
    for (int i = 0; i < n; i++) rl_verifier_spec_free(&specs[i]);
    free(specs);
    return rw;
}

static void score_traces(rl_reward *rw, const rl_problem *pr, char traces[][1024], int n,
                         rl_vresult *res) {
    rl_vsample s[64];
    double reward[64];
    uint8_t skipped[64];
    rl_err err = {0};
    for (int i = 0; i < n; i++)
        s[i] = (rl_vsample){.prompt = pr[i].text,
                            .completion = traces[i],
                            .n_tokens = (int32_t)strlen(traces[i]),
                            .max_tokens = 256,
                            .answer = pr[i].answer,
                            .task = rl_task_kind_name(pr[i].kind)};
    CHECK(rl_reward_score(rw, s, NULL, n, res, reward, skipped, &err) == 0, "%s", err.msg);
}

// At error rate 0 every teacher trace scores full accuracy, path quality and format; with slips
// the accuracy verifier catches each wrong answer and path quality drops.
static void test_teacher_traces(void) {
    rl_reward *rw = default_reward();
    CHECK(rw != NULL, "default verifiers");
    if (!rw) return;
    int nv = rl_reward_n_verifiers(rw), iacc = -1, ipath = -1, ifmt = -1;
    for (int v = 0; v < nv; v++) {
        if (strcmp(rl_reward_name(rw, v), "accuracy") == 0) iacc = v;
        if (strcmp(rl_reward_name(rw, v), "path_quality") == 0) ipath = v;
        if (strcmp(rl_reward_name(rw, v), "format") == 0) ifmt = v;
    }
    for (int kind = 0; kind < 2; kind++) {
        rl_task_params p;
        rl_task_params_defaults(&p);
        p.weights[0] = kind == 0;
        p.weights[1] = kind == 1;
        enum { N = 48 };
        rl_problem pr[N];
        char traces[N][1024];
        rl_vresult res[N * 8];
        for (int i = 0; i < N; i++) {
            rl_task_generate(&p, 3, RL_RNG_DATA, (uint64_t)i, &pr[i]);
            int wrong;
            rl_teacher_trace(&p, &pr[i], 3, 0, traces[i], sizeof traces[i], &wrong);
            CHECK(!wrong, "error rate 0 never slips");
        }
        score_traces(rw, pr, traces, N, res);
        for (int i = 0; i < N; i++) {
            const rl_vresult *row = &res[i * nv];
            CHECK(row[iacc].score == 1.0, "%s accuracy %.2f on %s\n%s\n(%s)",
                  rl_task_kind_name(pr[i].kind), row[iacc].score, pr[i].text, traces[i],
                  row[iacc].detail);
            CHECK(row[ipath].score == 1.0, "path quality %.3f on %s\n%s\n(%s)", row[ipath].score,
                  pr[i].text, traces[i], row[ipath].detail);
            CHECK(row[ifmt].score == 1.0, "format %.2f on\n%s\n(%s)", row[ifmt].score, traces[i],
                  row[ifmt].detail);
        }
        // Now a teacher that slips often: every wrong trace is scored wrong, and has lower path quality.
        p.error_rate = 0.5;
        int n_wrong = 0;
        for (int i = 0; i < N; i++) {
            int wrong;
            rl_teacher_trace(&p, &pr[i], 3, 1, traces[i], sizeof traces[i], &wrong);
            n_wrong += wrong;
            pr[i].id = (uint64_t)wrong; // remember
        }
        CHECK(n_wrong > N / 5, "slipping teacher makes mistakes (%d of %d)", n_wrong, N);
        score_traces(rw, pr, traces, N, res);
        double path_slipped = 0;
        int n_caught = 0;
        for (int i = 0; i < N; i++) {
            const rl_vresult *row = &res[i * nv];
            if (pr[i].id) {
                CHECK(row[iacc].score == 0.0, "a slipped trace must be wrong: %s\n%s", pr[i].text,
                      traces[i]);
                path_slipped += row[ipath].score;
                n_caught += row[ipath].score < 1.0;
            } else
                CHECK(row[iacc].score == 1.0, "an unslipped trace is right: %s\n%s", pr[i].text,
                      traces[i]);
        }
        // Path quality sees most slips as false claims; a miscopied operand that equals another
        // number of the problem reads as a true, grounded claim, and only accuracy catches it.
        CHECK(n_caught >= n_wrong * 3 / 4, "path quality flags most slipped traces (%d of %d)",
              n_caught, n_wrong);
        CHECK(path_slipped / n_wrong < 0.8, "slipped traces lose path quality on average (%.3f)",
              path_slipped / n_wrong);
    }
    rl_reward_free(rw);
}

// Problems are pure functions of (seed, purpose, index); the training stream avoids the held-out set.
static void test_task_streams(void) {
    rl_task_params p;
    rl_task_params_defaults(&p);
    p.weights[1] = 1.0;
    rl_taskset ts;
    rl_err err = {0};
    CHECK(rl_taskset_init(&ts, &p, 42, 300, &err) == 0, "%s", err.msg);
    CHECK(ts.n_heldout == 300, "held-out size");
    for (int i = 0; i < ts.n_heldout; i++)
        for (int j = 0; j < i; j++)
            CHECK(strcmp(ts.heldout[i].text, ts.heldout[j].text) != 0, "duplicate held-out");
    int arith = 0;
    for (uint64_t i = 0; i < 3000; i++) {
        rl_problem a, b;
        rl_taskset_train(&ts, i, &a);
        rl_taskset_train(&ts, i, &b);
        CHECK(strcmp(a.text, b.text) == 0, "train problem %llu is deterministic",
              (unsigned long long)i);
        CHECK(!rl_taskset_is_heldout(&ts, a.text), "train problem equals a held-out one: %s",
              a.text);
        arith += a.kind == RL_TASK_ARITH;
        // The reference answer is the value of the expression / derivative.
        if (a.kind == RL_TASK_ARITH) CHECK(strncmp(a.text, "Compute ", 8) == 0, "arith text");
    }
    CHECK(arith > 1200 && arith < 1800, "task mix follows the weights (%d of 3000 arith)", arith);
    rl_taskset_free(&ts);
    // A task space too small for the requested held-out set is a clear input error.
    p.weights[1] = 0;
    p.arith_min_ops = p.arith_max_ops = 1;
    p.arith_max_operand = 2;
    CHECK(rl_taskset_init(&ts, &p, 42, 100, &err) != 0 && err.kind == RL_EINPUT,
          "tiny task space: %s", err.msg);
    // Arithmetic answers checked independently: evaluate the text with precedence.
    rl_task_params_defaults(&p);
    for (uint64_t i = 0; i < 500; i++) {
        rl_problem a;
        rl_task_generate(&p, 9, RL_RNG_DATA, i, &a);
        long vals[8];
        char ops[8];
        int n = 0;
        const char *s = a.text + 8;
        vals[n] = strtol(s, (char **)&s, 10);
        while (*s == '+' || *s == '-' || *s == '*') {
            ops[n] = *s++;
            vals[++n] = strtol(s, (char **)&s, 10);
        }
        // multiplication first, then left to right
        long terms[8];
        char tops[8];
        int nt = 0;
        terms[0] = vals[0];
        for (int k = 0; k < n; k++) {
            if (ops[k] == '*')
                terms[nt] *= vals[k + 1];
            else {
                tops[nt] = ops[k];
                terms[++nt] = vals[k + 1];
            }
        }
        long v = terms[0];
        for (int k = 0; k < nt; k++) v = tops[k] == '+' ? v + terms[k + 1] : v - terms[k + 1];
        CHECK(atol(a.answer) == v, "%s: answer %s, expected %ld", a.text, a.answer, v);
    }
}

// ---- JSONL datasets -------------------------------------------------------------------------------

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_datasets(void) {
    char dir[] = "/tmp/rlpipe-ds-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "tmpdir");
    char path[256], warn_path[256];
    snprintf(path, sizeof path, "%s/d.jsonl", dir);
    snprintf(warn_path, sizeof warn_path, "%s/warn.txt", dir);
    write_file(path,
               "{\"prompt\": \"1+1?\", \"answer\": \"2\", \"split\": \"train\"}\n"
               "not json\n"
               "{\"prompt\": \"2+2?\", \"answer\": 4, \"split\": \"test\"}\n"
               "\n"
               "{\"answer\": \"5\"}\n"
               "{\"prompt\": \"sort\", \"tests\": [{\"input\": \"3 1\", \"output\": \"1 3\"}]}\n"
               "{\"prompt\": \"bad tests\", \"tests\": [{\"input\": 3}]}\n"
               "{\"prompt\": \"p\", \"response\": \"<think>\\nr\\n</think>\\n\\\\boxed{1}\"}\n");
    rl_dataset ds;
    rl_err err = {0};
    FILE *warn = fopen(warn_path, "w");
    rl_dataset_opts o = {
        .train_path = path, .split_key = "split", .fail_on_bad_line = 0, .warn = warn};
    CHECK(rl_dataset_load(&ds, &o, &err) == 0, "%s", err.msg);
    fclose(warn);
    CHECK(ds.n_bad == 3, "three bad lines skipped (got %d)", ds.n_bad);
    CHECK(ds.n_heldout == 1 && strcmp(ds.heldout[0].answer, "4") == 0,
          "split by key; numeric answer as text");
    CHECK(ds.n_train == 3, "train lines (got %d)", ds.n_train);
    CHECK(ds.train[1].tests_json && strstr(ds.train[1].tests_json, "\"1 3\""),
          "tests kept as JSON");
    CHECK(ds.train[2].response != NULL && ds.train[2].line == 8, "response and line number");
    rl_dataset_free(&ds);
    // The warnings name the file and each bad line.
    FILE *w = fopen(warn_path, "r");
    char buf[2048] = {0};
    size_t got = fread(buf, 1, sizeof buf - 1, w);
    fclose(w);
    buf[got] = 0;
    char want[300];
    snprintf(want, sizeof want, "%s:2:", path);
    CHECK(strstr(buf, want), "warning names line 2: %s", buf);
    snprintf(want, sizeof want, "%s:5: missing \"prompt\"", path);
    CHECK(strstr(buf, want), "warning names line 5: %s", buf);
    snprintf(want, sizeof want, "%s:7:", path);
    CHECK(strstr(buf, want), "warning names line 7: %s", buf);
    // Fatal mode stops at the first bad line, naming it.
    o.fail_on_bad_line = 1;
    CHECK(rl_dataset_load(&ds, &o, &err) != 0 && err.kind == RL_EINPUT, "fatal bad line");
    snprintf(want, sizeof want, "%s:2:", path);
    CHECK(strstr(err.msg, want) != NULL, "error names the line: %s", err.msg);
    // Seeded fraction: deterministic, about the requested share, disjoint.
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 1000; i++) fprintf(f, "{\"prompt\": \"q%d\", \"answer\": \"%d\"}\n", i, i);
    fclose(f);
    rl_dataset_opts fo = {.train_path = path, .heldout_fraction = 0.2, .seed = 5};
    rl_dataset a, b;
    CHECK(rl_dataset_load(&a, &fo, &err) == 0 && rl_dataset_load(&b, &fo, &err) == 0, "%s",
          err.msg);
    CHECK(a.n_heldout == b.n_heldout && a.n_heldout > 150 && a.n_heldout < 250,
          "fraction split (%d)", a.n_heldout);
    for (int i = 0; i < a.n_heldout && i < b.n_heldout; i++)
        CHECK(strcmp(a.heldout[i].prompt, b.heldout[i].prompt) == 0, "split is deterministic");
    CHECK(a.n_train + a.n_heldout == 1000, "every line lands once");
    rl_dataset_free(&a);
    rl_dataset_free(&b);
    // Missing file.
    rl_dataset_opts mo = {.train_path = "/nonexistent/x.jsonl"};
    CHECK(rl_dataset_load(&ds, &mo, &err) != 0 && err.kind == RL_EINPUT &&
              strstr(err.msg, "/nonexistent/x.jsonl"),
          "missing file named: %s", err.msg);
    unlink(path);
    unlink(warn_path);
    rmdir(dir);
}

// What a streaming callback saw of one sample: every call's text must extend the previous one.
typedef struct stream_seen {
    int calls[4], done[4], prefix_ok;
    size_t len[4];
    int cancel_after; // >0: ask to cancel once sample 0 has this many tokens
} stream_seen;

static int on_token_record(void *ctx, int sample, const rl_completion *c, const float *logits,
                           const char *bytes, size_t n_bytes, int done) {
    stream_seen *s = ctx;
    // The logits given are the row the token was drawn from: its policy log-prob matches.
    if (fabs(rl_token_logprob(logits, 272, c->tokens[c->n_tokens - 1], 1.0f) -
             c->logp_policy[c->n_tokens - 1]) > 1e-5)
        s->prefix_ok = 0;
    s->calls[sample]++;
    s->done[sample] += done;
    if (c->n_tokens != s->calls[sample]) s->prefix_ok = 0; // one call per token
    if (done) { // the final text is the bytes made valid UTF-8
        size_t n;
        char *lossy = rl_utf8_lossy(bytes, n_bytes, &n);
        if (n != c->text_len || memcmp(lossy, c->text, n) != 0) s->prefix_ok = 0;
        free(lossy);
    }
    s->len[sample] = n_bytes;
    return s->cancel_after > 0 && sample == 0 && c->n_tokens >= s->cancel_after;
}

// Continuous batching: requests with their own parameters join a running batch at different
// steps, and each gets exactly what rl_generate gives it alone; a cancelled request frees its
// slots at once and the others are unaffected.
static void test_continuous_batching(void) {
    fixture f;
    fixture_init(&f);
    rl_err err = {0};
    rl_gen_params pa = params_at(1.0f, 30), pb = params_at(0.7f, 18), pc = params_at(1.0f, 40);
    pb.seed = 7;
    pb.sampling.top_k = 20;
    static const char *const stops[1] = {"+"};
    pc.stop_strings = stops;
    pc.n_stop_strings = 1;
    pc.sampling.top_p = 0.9f;
    rl_gen_params *ps[3] = {&pa, &pb, &pc};
    int G[3] = {3, 2, 2};
    rl_gen_prompt gp[3];
    for (int i = 0; i < 3; i++)
        gp[i] = (rl_gen_prompt){f.prompts[i].data, (int)f.prompts[i].len, 300 + i, G[i]};
    rl_engine *solo, *e;
    CHECK(rl_engine_create(&solo, f.m, f.tok, 4, 128, 272, &err) == 0, "%s", err.msg);
    CHECK(rl_engine_create(&e, f.m, f.tok, 8, 128, 272, &err) == 0, "%s", err.msg);
    rl_completion want[3][3], got[3][3], cancelled[2];
    for (int i = 0; i < 3; i++)
        CHECK(rl_generate(solo, ps[i], &gp[i], 1, want[i], NULL, &err) == 0, "%s", err.msg);
    stream_seen seen[3] = {{.prefix_ok = 1}, {.prefix_ok = 1}, {.prefix_ok = 1}};
    stream_seen seen_x = {.prefix_ok = 1, .cancel_after = 3};
    rl_stream_req req[3], x;
    for (int i = 0; i < 3; i++)
        req[i] = (rl_stream_req){ps[i], gp[i], got[i], on_token_record, &seen[i], 0};
    // x: a fourth request (prompt 1 again, other key) that cancels itself after 3 tokens.
    rl_gen_prompt gx = gp[1];
    gx.key = 999;
    x = (rl_stream_req){&pa, gx, cancelled, on_token_record, &seen_x, 0};
    CHECK(rl_engine_submit(e, &req[0], &err) == 0, "%s", err.msg);
    CHECK(rl_engine_submit(e, &x, &err) == 0, "%s", err.msg);
    CHECK(rl_engine_free_slots(e) == 3, "3 + 2 slots used, %d free", rl_engine_free_slots(e));
    rl_stream_req too_many = req[2];
    too_many.prompt.n_samples = 4;
    CHECK(rl_engine_submit(e, &too_many, &err) != 0 && err.kind == RL_EINPUT, "over capacity");
    int steps = 0;
    while (rl_engine_n_live(e) > 0 || steps < 8) {
        if (steps == 2) CHECK(rl_engine_submit(e, &req[1], &err) == 0, "%s", err.msg);
        if (steps == 5) {
            CHECK(x.n_live == 0, "the cancelled request ended");
            CHECK(rl_engine_submit(e, &req[2], &err) == 0, "%s", err.msg);
        }
        CHECK(rl_engine_step(e, &err) == 0, "%s", err.msg);
        steps++;
        if (steps > 500) break;
    }
    CHECK(rl_engine_free_slots(e) == 8, "every slot free at the end");
    for (int i = 0; i < 3; i++) {
        CHECK(req[i].n_live == 0, "request %d ended", i);
        CHECK(seen[i].prefix_ok, "request %d: one call per token, final text from the bytes", i);
        for (int s = 0; s < G[i]; s++) {
            CHECK(same_completion(&got[i][s], &want[i][s]),
                  "request %d sample %d differs from rl_generate alone", i, s);
            CHECK(seen[i].done[s] == 1, "request %d sample %d: one done call", i, s);
            CHECK_NEAR(got[i][s].logp_sample[0], want[i][s].logp_sample[0], 1e-6, "logp_sample");
            rl_completion_free(&got[i][s]);
            rl_completion_free(&want[i][s]);
        }
    }
    CHECK(seen_x.calls[0] == 3 && cancelled[0].n_tokens == 3, "cancelled after 3 tokens (%d)",
          cancelled[0].n_tokens);
    CHECK(cancelled[0].text != NULL && cancelled[1].text != NULL, "cancelled samples keep text");
    rl_completion_free(&cancelled[0]);
    rl_completion_free(&cancelled[1]);
    // A stepping engine with nothing to do is a no-op; bad requests are refused up front.
    CHECK(rl_engine_step(e, &err) == 0, "idle step");
    rl_gen_params big = params_at(1.0f, 200);
    rl_stream_req bad = {&big, gp[0], got[0], NULL, NULL, 0};
    CHECK(rl_engine_submit(e, &bad, &err) != 0 && strstr(err.msg, "positions"), "too long: %s",
          err.msg);
    rl_engine_free(e);
    rl_engine_free(solo);
    fixture_free(&f);
}

int main(void) {
    RUN(test_batching_and_determinism);
    RUN(test_logprobs_match_forward);
    RUN(test_greedy_matches_forward_argmax);
    RUN(test_continuous_batching);
    RUN(test_stop_rules);
    RUN(test_bad_requests);
    RUN(test_task_streams);
    RUN(test_teacher_traces);
    RUN(test_datasets);
    return test_summary();
}
