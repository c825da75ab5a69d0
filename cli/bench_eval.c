// bench_eval: benchmark evaluation (`rlpipe eval --benchmark`). See bench_eval.h and
// cli/benchmarks.md.
#define _POSIX_C_SOURCE 200809L
#include "cli/bench_eval.h"

#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/run.h"
#include "rollout/benchmark.h"
#include "verifiers/choice/choice.h"
#include "verifiers/code/code.h"
#include "verifiers/math/math_verify.h"
#include "verifiers/shape/shape.h"

#define MAX_BENCH 16

// What LiveCodeBench puts in front of every program (its graders do the same): the usual imports,
// so that annotations such as List[int] and helpers such as deque resolve as they do on LeetCode.
static const char CODE_PRELUDE[] =
    "import sys, os, re, io, json, math, heapq, bisect, string, random, copy, operator\n"
    "import itertools, functools, collections, statistics, datetime\n"
    "from typing import *\n"
    "from collections import *\n"
    "from heapq import *\n"
    "from bisect import *\n"
    "from itertools import *\n"
    "from functools import *\n"
    "from math import *\n"
    "sys.setrecursionlimit(50000)\n";

typedef struct bench_run {
    rl_bench b;
    const char *label; // the table's name for it
    int n;             // problems evaluated
    rl_ids *ids;       // [n] rendered prompts
    char **texts;      // [n] rendered prompt text (for --prompts-out)
    char ***responses; // [n][k] from --responses, or NULL
    int *n_responses;  // [n]
    void *format;      // the format verifier for this benchmark
} bench_run;

typedef struct graders {
    const rl_verifier_api *math_api, *code_api, *fmt_api;
    void *math, *code;
} graders;

// ---- set-up ---------------------------------------------------------------------------------

static const char *label_of(const char *name, rl_bench_kind kind) {
    char low[80];
    snprintf(low, sizeof low, "%s", name);
    for (char *c = low; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    if (strstr(low, "24")) return "AIME 2024";
    if (strstr(low, "25")) return "AIME 2025";
    return rl_bench_display_name(kind);
}

static int load_benches(const rl_bench_eval_opts *o, bench_run *br, int *n_br, rl_err *err) {
    *n_br = 0;
    if (o->n_specs > MAX_BENCH)
        return rl_fail(err, RL_EINPUT, "--benchmark: at most %d benchmarks at once", MAX_BENCH);
    for (int i = 0; i < o->n_specs; i++) {
        const char *spec = o->specs[i], *eq = strchr(spec, '=');
        char name[64];
        if (!eq || eq == spec || !eq[1] || (size_t)(eq - spec) >= sizeof name)
            return rl_fail(err, RL_EINPUT, "--benchmark %s: expected NAME=FILE (names: %s)", spec,
                           rl_bench_names());
        snprintf(name, sizeof name, "%.*s", (int)(eq - spec), spec);
        int kind = rl_bench_kind_from_name(name);
        if (kind < 0)
            return rl_fail(err, RL_EINPUT, "--benchmark %s: unknown benchmark '%s' (names: %s)",
                           spec, name, rl_bench_names());
        for (int j = 0; j < *n_br; j++)
            if (strcmp(br[j].b.name, name) == 0)
                return rl_fail(err, RL_EINPUT, "--benchmark %s: '%s' is given twice", spec, name);
        rl_bench_opts bo = {.style = o->style, .shuffle_seed = o->shuffle_seed};
        bench_run *r = &br[*n_br];
        memset(r, 0, sizeof *r);
        if (rl_bench_load(&r->b, (rl_bench_kind)kind, name, eq + 1, &bo, err)) {
            rl_bench_free(&r->b);
            return -1;
        }
        (*n_br)++;
        r->label = rl_bench_kind_from_name(name) == RL_BENCH_AIME ? label_of(name, RL_BENCH_AIME)
                                                                  : rl_bench_display_name(kind);
        r->n = o->n > 0 && o->n < r->b.n ? o->n : r->b.n;
    }
    return 0;
}

// The chat-rendered prompt, followed by the forced start of the response.
static int render(rl_run *run, const char *user, const char *start, char **text, rl_ids *ids,
                  rl_err *err) {
    const char *system = run->cfg->data.system_prompt[0] ? run->cfg->data.system_prompt : NULL;
    char *t = NULL;
    RL_TRY(rl_chat_render(run->tmpl, run->tok, system, user, &t, err));
    size_t n = strlen(t), m = strlen(start);
    t = rl_realloc(t, n + m + 1);
    memcpy(t + n, start, m + 1);
    ids->len = 0;
    int rc = rl_tokenizer_encode_append(run->tok, t, n + m, ids, err);
    *text = t;
    return rc;
}

// The format verdict for a benchmark: the seed preset (### first, one \boxed{} last) or R1's think
// block (behind R1's template, which opens it in the prompt); code answers are a fenced block, and
// "Answer: X" lines are not boxed.
static int make_format(bench_run *r, const graders *g, int style, int tmpl_r1, rl_err *err) {
    rl_voption opts[4];
    int n = 0;
    if (style == RL_BENCH_STYLE_SEED) {
        opts[n++] = (rl_voption){"preset", "seed"};
        if (tmpl_r1) opts[n++] = (rl_voption){"think_open", "prompt"};
    } else
        opts[n++] = (rl_voption){"preset", tmpl_r1 ? "r1_prompt" : "r1"};
    rl_bench_grader gr = rl_bench_grader_of(r->b.kind);
    if (gr == RL_BENCH_GRADE_CODE ||
        (gr == RL_BENCH_GRADE_CHOICE && style != RL_BENCH_STYLE_SEED)) {
        opts[n++] = (rl_voption){"answer", "none"};
        opts[n++] = (rl_voption){"trailing", "any"};
    }
    char why[256] = "";
    r->format = g->fmt_api->create(opts, n, why, sizeof why);
    if (!r->format) return rl_fail(err, RL_EINTERNAL, "format verifier: %s", why);
    return 0;
}

// The math and code verifiers, with the options of the config's accuracy entry routed as the
// accuracy dispatcher routes them ("math." / "code." prefixes, else whichever takes the key).
// Code answers must pass every test (scoring: all, which also stops at the first failure)
// unless the entry says otherwise.
static int make_graders(const rl_config *cfg, graders *g, rl_err *err) {
    const rl_verifier_spec *acc = NULL;
    for (int i = 0; i < cfg->reward.verifiers.n; i++)
        if (strcmp(cfg->reward.verifiers.v[i].name, "accuracy") == 0 &&
            !cfg->reward.verifiers.v[i].plugin && !cfg->reward.verifiers.v[i].command)
            acc = &cfg->reward.verifiers.v[i];
    int n = acc ? acc->n_options : 0;
    rl_voption *mo = rl_calloc((size_t)n + 1, sizeof *mo),
               *co = rl_calloc((size_t)n + 2, sizeof *co);
    int nm = 0, nc = 0, scoring_set = 0, rc = 0;
    char why[256] = "";
    for (int i = 0; i < n && rc == 0; i++) {
        rl_voption o = acc->options[i];
        if (strncmp(o.key, "math.", 5) == 0) {
            mo[nm++] = (rl_voption){o.key + 5, o.value};
            continue;
        }
        if (strncmp(o.key, "code.", 5) == 0)
            o.key += 5;
        else {
            void *probe = g->math_api->create(&o, 1, why, sizeof why);
            if (probe) {
                g->math_api->destroy(probe);
                mo[nm++] = o;
                continue;
            }
        }
        scoring_set |= strcmp(o.key, "scoring") == 0;
        co[nc++] = o;
    }
    if (!scoring_set) co[nc++] = (rl_voption){"scoring", "all"};
    g->math = g->math_api->create(mo, nm, why, sizeof why);
    if (!g->math) rc = rl_fail(err, RL_EINPUT, "reward.verifiers: accuracy: math: %s", why);
    if (rc == 0) {
        g->code = g->code_api->create(co, nc, why, sizeof why);
        if (!g->code) rc = rl_fail(err, RL_EINPUT, "reward.verifiers: accuracy: %s", why);
    }
    free(mo);
    free(co);
    return rc;
}

// ---- --responses ------------------------------------------------------------------------------

static int push_response(bench_run *r, int idx, const char *text) {
    int k = r->n_responses[idx]++;
    r->responses[idx] = rl_realloc(r->responses[idx], (size_t)(k + 1) * sizeof(char *));
    r->responses[idx][k] = rl_strdup(text);
    return 0;
}

// Lines {"benchmark": NAME, "index": I, "completion": TEXT} or {..., "completions": [TEXT...]}.
// Every evaluated problem needs the same number of completions (that is k).
static int read_responses(const char *path, bench_run *br, int n_br, int *k_out, rl_err *err) {
    for (int b = 0; b < n_br; b++) {
        br[b].responses = rl_calloc((size_t)br[b].n, sizeof(char **));
        br[b].n_responses = rl_calloc((size_t)br[b].n, sizeof(int));
    }
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return rl_fail(err, RL_EINPUT, "--responses %s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0, rc = 0;
    while (rc == 0 && (got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        int blank = 1;
        for (ssize_t i = 0; i < got; i++)
            if (line[i] != ' ' && line[i] != '\n' && line[i] != '\r' && line[i] != '\t') blank = 0;
        if (blank) continue;
        json_error_t jerr;
        json_t *o = json_loadb(line, (size_t)got, 0, &jerr);
        if (!o || !json_is_object(o)) {
            rc = rl_fail(err, RL_EINPUT, "%s:%d: expected a JSON object%s%s", path, lineno,
                         o ? "" : ": ", o ? "" : jerr.text);
            json_decref(o);
            break;
        }
        json_t *bn = json_object_get(o, "benchmark"), *ix = json_object_get(o, "index");
        json_t *one = json_object_get(o, "completion"), *many = json_object_get(o, "completions");
        bench_run *r = NULL;
        if (json_is_string(bn))
            for (int b = 0; b < n_br; b++)
                if (strcmp(br[b].b.name, json_string_value(bn)) == 0) r = &br[b];
        if (!json_is_string(bn))
            rc = rl_fail(err, RL_EINPUT, "%s:%d: \"benchmark\": expected a string", path, lineno);
        else if (!r)
            rc = rl_fail(err, RL_EINPUT, "%s:%d: \"benchmark\": '%.60s' is not one of --benchmark",
                         path, lineno, json_string_value(bn));
        else if (!json_is_integer(ix) || json_integer_value(ix) < 0 ||
                 json_integer_value(ix) >= r->b.n)
            rc =
                rl_fail(err, RL_EINPUT, "%s:%d: \"index\": expected a problem index in 0..%d of %s",
                        path, lineno, r->b.n - 1, r->b.path);
        else if (!json_is_string(one) && !json_is_array(many))
            rc = rl_fail(err, RL_EINPUT,
                         "%s:%d: expected \"completion\" (a string) or \"completions\" (a list)",
                         path, lineno);
        if (rc == 0 && json_integer_value(ix) < r->n) {
            int idx = (int)json_integer_value(ix);
            if (json_is_string(one)) push_response(r, idx, json_string_value(one));
            for (size_t i = 0; json_is_array(many) && i < json_array_size(many); i++) {
                json_t *c = json_array_get(many, i);
                if (!json_is_string(c)) {
                    rc = rl_fail(err, RL_EINPUT, "%s:%d: \"completions\"[%zu] is not a string",
                                 path, lineno, i);
                    break;
                }
                push_response(r, idx, json_string_value(c));
            }
        }
        json_decref(o);
    }
    free(line);
    if (f != stdin) fclose(f);
    if (rc) return rc;
    int k = -1;
    for (int b = 0; b < n_br; b++)
        for (int i = 0; i < br[b].n; i++) {
            int c = br[b].n_responses[i];
            if (c == 0)
                return rl_fail(err, RL_EINPUT, "%s: no completion for %s problem %d (%s)", path,
                               br[b].b.name, i, br[b].b.items[i].id);
            if (k < 0) k = c;
            if (c != k)
                return rl_fail(err, RL_EINPUT,
                               "%s: %s problem %d has %d completions, others %d (k must be the "
                               "same for every problem)",
                               path, br[b].b.name, i, c, k);
        }
    *k_out = k;
    return 0;
}

// ---- grading --------------------------------------------------------------------------------

static void grade_choice(const rl_bench_item *it, const char *text, rl_vresult *out) {
    char want = it->answer[0];
    char got = rl_choice_extract(text, it->n_options);
    out->status = RL_VERIFY_OK;
    out->score = got && got == want ? 1.0 : 0.0;
    if (got)
        snprintf(out->detail, sizeof out->detail, "answer %c, reference %c", got, want);
    else
        snprintf(out->detail, sizeof out->detail, "no answer letter, reference %c", want);
}

static void grade_code(const graders *g, const rl_bench_item *it, const rl_vtest *tests,
                       const char *text, rl_vresult *out) {
    char *code = rl_code_extract(text);
    if (!code) {
        out->status = RL_VERIFY_OK;
        out->score = 0;
        snprintf(out->detail, sizeof out->detail, "no code block");
        return;
    }
    size_t n = strlen(code);
    char *wrapped = rl_malloc(n + sizeof CODE_PRELUDE + 32);
    snprintf(wrapped, n + sizeof CODE_PRELUDE + 32, "```python\n%s%s\n```\n", CODE_PRELUDE, code);
    rl_vsample s = {.prompt = it->prompt,
                    .completion = wrapped,
                    .tests = tests,
                    .n_tests = it->n_tests,
                    .task = "code"};
    g->code_api->score(g->code, &s, out);
    free(wrapped);
    free(code);
}

static void grade(const graders *g, const bench_run *r, const rl_bench_item *it,
                  const rl_vtest *tests, const char *text, int n_tokens, int max_new, int truncated,
                  rl_vresult *acc, rl_vresult *fmt) {
    memset(acc, 0, sizeof *acc);
    switch (rl_bench_grader_of(r->b.kind)) {
    case RL_BENCH_GRADE_MATH: {
        rl_vsample s = {.prompt = it->prompt, .completion = text, .answer = it->answer};
        g->math_api->score(g->math, &s, acc);
        break;
    }
    case RL_BENCH_GRADE_CHOICE:
        grade_choice(it, text, acc);
        break;
    case RL_BENCH_GRADE_CODE:
        grade_code(g, it, tests, text, acc);
        break;
    }
    rl_vsample s = {.prompt = it->prompt,
                    .completion = text,
                    .n_tokens = n_tokens,
                    .max_tokens = max_new,
                    .truncated = truncated};
    memset(fmt, 0, sizeof *fmt);
    g->fmt_api->score(r->format, &s, fmt);
    rl_vresult_sanitize(acc);
    rl_vresult_sanitize(fmt);
}

static rl_vtest *vtests_of(const rl_bench_item *it) {
    if (!it->n_tests) return NULL;
    rl_vtest *t = rl_calloc((size_t)it->n_tests, sizeof *t);
    for (int i = 0; i < it->n_tests; i++)
        t[i] = (rl_vtest){it->tests[i].is_assert ? RL_VTEST_ASSERT : RL_VTEST_STDIO,
                          it->tests[i].input, it->tests[i].output};
    return t;
}

// ---- one benchmark ----------------------------------------------------------------------------

typedef struct bench_result {
    double pass1, passk[8], len_mean, fmt_mean, seconds, tokens_per_s;
    int n, k, n_pass_k;
    long correct;
} bench_result;

typedef struct sample {
    char *text;   // as scored: the forced start + the generated text
    int n_tokens; // generated tokens
    int finish;
    rl_vresult acc, fmt;
} sample;

static int run_bench(rl_run *run, const graders *g, const rl_bench_eval_opts *o, bench_run *r,
                     int step, int k, const char *start, bench_result *res, rl_err *err) {
    memset(res, 0, sizeof *res);
    res->n = r->n;
    res->k = k;
    double t0 = rl_now(), gen_s = 0, new_tokens = 0;
    int max_new = rl_run_max_new_tokens(run, RL_GEN_EVAL);
    rl_gen_params gp = rl_run_gen_params(run, RL_GEN_EVAL, o->temperature);
    gp.sampling.top_p = (float)o->top_p;
    gp.seed += (uint64_t)r->b.kind * 1000003ull;
    int chunk = r->responses ? 64 : (512 / k > 0 ? 512 / k : 1);
    if (!r->responses) {
        int longest = 0;
        for (int i = 0; i < r->n; i++)
            if ((int)r->ids[i].len > longest) longest = (int)r->ids[i].len;
        int need = longest + max_new + 1, slots = chunk * k;
        if (!run->engine || run->engine_len < need || run->engine_slots < slots) {
            rl_engine_free(run->engine);
            run->engine = NULL;
            if (need > run->engine_len) run->engine_len = need;
            if (slots > run->engine_slots) run->engine_slots = slots;
            RL_TRY(rl_engine_create(&run->engine, run->model, run->tok, run->engine_slots,
                                    run->engine_len, run->vocab_limit, err));
        }
    }
    int nt = run->cfg->reward.threads > 0 ? run->cfg->reward.threads : omp_get_num_procs();
    RL_TRY(rl_log_begin_step(run->log, run->run_id, step, err));
    sample *smp = rl_calloc((size_t)chunk * k, sizeof *smp);
    rl_gen_prompt *gprompts = rl_calloc((size_t)chunk, sizeof *gprompts);
    rl_completion *comps = rl_calloc((size_t)chunk * k, sizeof *comps);
    rl_vtest **tests = rl_calloc((size_t)chunk, sizeof *tests);
    double len_sum = 0, fmt_sum = 0, share_sum = 0, passk_sum[8] = {0};
    size_t start_len = strlen(start);
    int rc = 0;
    for (int base = 0; base < r->n && rc == 0; base += chunk) {
        int m = r->n - base < chunk ? r->n - base : chunk;
        if (r->responses) {
            for (int i = 0; i < m; i++)
                for (int s = 0; s < k; s++) {
                    sample *x = &smp[i * k + s];
                    const char *resp = r->responses[base + i][s];
                    size_t rl = strlen(resp);
                    x->text = rl_malloc(start_len + rl + 1);
                    memcpy(x->text, start, start_len);
                    memcpy(x->text + start_len, resp, rl + 1);
                    rl_ids ids = {0};
                    if (rl_tokenizer_encode_append(run->tok, resp, rl, &ids, err)) rc = -1;
                    x->n_tokens = (int)ids.len;
                    x->finish = RL_FINISH_STOP;
                    rl_ids_free(&ids);
                }
        } else {
            for (int i = 0; i < m; i++)
                gprompts[i] = (rl_gen_prompt){r->ids[base + i].data, (int)r->ids[base + i].len,
                                              (uint64_t)(base + i), k};
            rl_gen_stats st;
            rc = rl_generate(run->engine, &gp, gprompts, m, comps, &st, err);
            if (rc == 0) {
                gen_s += st.seconds;
                new_tokens += (double)st.new_tokens;
                for (int j = 0; j < m * k; j++) {
                    sample *x = &smp[j];
                    x->text = rl_malloc(start_len + comps[j].text_len + 1);
                    memcpy(x->text, start, start_len);
                    memcpy(x->text + start_len, comps[j].text, comps[j].text_len + 1);
                    x->n_tokens = comps[j].n_tokens;
                    x->finish = comps[j].finish;
                    rl_completion_free(&comps[j]);
                }
            }
        }
        if (rc) break;
        for (int i = 0; i < m; i++) tests[i] = vtests_of(&r->b.items[base + i]);
        int total = m * k;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int j = 0; j < total; j++) {
            const rl_bench_item *it = &r->b.items[base + j / k];
            grade(g, r, it, tests[j / k], smp[j].text, smp[j].n_tokens, max_new,
                  smp[j].finish == RL_FINISH_LENGTH, &smp[j].acc, &smp[j].fmt);
        }
        for (int i = 0; i < m && rc == 0; i++) {
            const rl_bench_item *it = &r->b.items[base + i];
            int correct = 0;
            char ref[64];
            if (it->answer)
                snprintf(ref, sizeof ref, "%s", it->answer);
            else
                snprintf(ref, sizeof ref, "%d tests", it->n_tests);
            for (int s = 0; s < k && rc == 0; s++) {
                sample *x = &smp[i * k + s];
                int right = x->acc.status == RL_VERIFY_OK && x->acc.score >= 1.0 - 1e-9;
                correct += right;
                len_sum += x->n_tokens;
                fmt_sum += x->fmt.score;
                rl_rollout_row row;
                rl_rollout_row_init(&row);
                row.prompt_idx = base + i;
                row.group_id = base + i;
                row.sample_idx = s;
                row.task = r->b.name;
                row.prompt = it->prompt;
                row.completion = x->text;
                row.answer = ref;
                row.n_tokens = x->n_tokens;
                row.n_prompt_tokens = r->ids ? (int)r->ids[base + i].len : -1;
                row.finish_reason = x->finish == RL_FINISH_LENGTH ? "length" : "stop";
                row.reward = x->acc.score;
                int64_t rid;
                rc = rl_log_rollout(run->log, &row, &rid, err);
                if (rc == 0)
                    rc = rl_log_score(run->log, rid, "accuracy", 1.0, x->acc.score,
                                      rl_vstatus_name(x->acc.status), x->acc.detail, err);
                if (rc == 0)
                    rc = rl_log_score(run->log, rid, "format", 0.0, x->fmt.score,
                                      rl_vstatus_name(x->fmt.status), x->fmt.detail, err);
            }
            res->correct += correct;
            share_sum += (double)correct / k;
            for (int p = 0; p < o->n_pass_k && p < 7; p++)
                passk_sum[p] += rl_pass_at_k(k, correct, o->pass_k[p]);
            passk_sum[7] += correct > 0; // pass@k at k = samples, for the evals row
        }
        for (int i = 0; i < m; i++) {
            free(tests[i]);
            tests[i] = NULL;
        }
        if (r->n > chunk)
            fprintf(stderr, "bench: %s: %d/%d problems, %.0f s\n", r->label, base + m, r->n,
                    rl_now() - t0);
        for (int j = 0; j < m * k; j++) {
            free(smp[j].text);
            smp[j].text = NULL;
        }
    }
    for (int j = 0; j < chunk * k; j++) free(smp[j].text); // left by a failed chunk
    free(smp);
    free(gprompts);
    free(comps);
    free(tests);
    if (rc) {
        rl_log_abort_step(run->log);
        return -1;
    }
    double total = (double)r->n * k;
    res->pass1 = share_sum / r->n;
    res->n_pass_k = o->n_pass_k;
    for (int p = 0; p < o->n_pass_k && p < 7; p++) res->passk[p] = passk_sum[p] / r->n;
    res->passk[7] = passk_sum[7] / r->n;
    res->len_mean = len_sum / total;
    res->fmt_mean = fmt_sum / total;
    res->seconds = rl_now() - t0;
    res->tokens_per_s = gen_s > 0 ? new_tokens / gen_s : 0;

    rl_step_stats stats;
    rl_step_stats_init(&stats);
    stats.phase = "bench";
    stats.accuracy = res->pass1;
    stats.reward_mean = res->pass1;
    stats.len_mean = res->len_mean;
    stats.n_rollouts = total;
    stats.tokens_per_s = res->tokens_per_s;
    stats.t_total = res->seconds;
    RL_TRY(rl_log_step_stats(run->log, &stats, err));
    RL_TRY(rl_log_commit_step(run->log, err));

    json_t *extra = json_object();
    json_object_set_new(extra, "benchmark", json_string(r->label));
    json_object_set_new(extra, "metric", json_string(rl_bench_metric(r->b.kind)));
    json_object_set_new(extra, "file", json_string(r->b.path));
    json_object_set_new(extra, "style", json_string(o->style ? "seed" : "standard"));
    json_object_set_new(extra, "top_p", json_real(o->top_p));
    json_object_set_new(extra, "model", json_string(o->model ? o->model : ""));
    json_object_set_new(extra, "model_step", json_integer(o->model_step));
    json_object_set_new(extra, "source", json_string(r->responses ? "responses" : "sampled"));
    json_t *pk = json_object();
    for (int p = 0; p < o->n_pass_k && p < 7; p++) {
        char key[16];
        snprintf(key, sizeof key, "%d", o->pass_k[p]);
        json_object_set_new(pk, key, json_real(res->passk[p]));
    }
    json_object_set_new(extra, "pass_at", pk);
    char *extra_s = json_dumps(extra, JSON_COMPACT);
    json_decref(extra);
    const char *names[2] = {"accuracy", "format"};
    double means[2] = {res->pass1, res->fmt_mean};
    rl_eval_row row;
    rl_eval_row_init(&row);
    row.run_id = run->run_id;
    row.step = step;
    row.split = r->b.name;
    row.n = r->n;
    row.k = k;
    row.temperature = r->responses ? NAN : o->temperature;
    row.pass_at_1 = res->pass1;
    row.pass_at_k = res->passk[7];
    row.len_mean = res->len_mean;
    row.seconds = res->seconds;
    row.verifier_names = names;
    row.verifier_means = means;
    row.n_verifiers = 2;
    row.extra_json = extra_s;
    int lrc = rl_log_eval(run->log, &row, err);
    free(extra_s);
    return lrc;
}

// ---- the table --------------------------------------------------------------------------------

static void print_header(FILE *out) {
    fprintf(out, "| %-14s | %-7s | %7s | %5s | %3s | %8s |\n", "benchmark", "metric", "score", "n",
            "k", "mean len");
    fprintf(out, "|----------------|---------|---------|-------|-----|----------|\n");
}

static void print_rows(FILE *out, const bench_run *r, const bench_result *res,
                       const rl_bench_eval_opts *o) {
    fprintf(out, "| %-14s | %-7s | %6.1f%% | %5d | %3d | %8.1f |\n", r->label,
            rl_bench_metric(r->b.kind), 100 * res->pass1, res->n, res->k, res->len_mean);
    for (int p = 0; p < o->n_pass_k && p < 7; p++) {
        char metric[16];
        snprintf(metric, sizeof metric, "pass@%d", o->pass_k[p]);
        fprintf(out, "| %-14s | %-7s | %6.1f%% | %5d | %3d | %8.1f |\n", r->label, metric,
                100 * res->passk[p], res->n, res->k, res->len_mean);
    }
    fflush(out);
}

// ---- the command ------------------------------------------------------------------------------

static int write_prompts(const char *path, bench_run *br, int n_br, rl_err *err) {
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "wb");
    if (!f) return rl_fail(err, RL_EINPUT, "--prompts-out %s: cannot create", path);
    for (int b = 0; b < n_br; b++)
        for (int i = 0; i < br[b].n; i++) {
            const rl_bench_item *it = &br[b].b.items[i];
            json_t *o = json_object();
            json_object_set_new(o, "benchmark", json_string(br[b].b.name));
            json_object_set_new(o, "index", json_integer(i));
            json_object_set_new(o, "id", json_string(it->id));
            json_object_set_new(o, "prompt", json_string(it->prompt));
            json_object_set_new(o, "text", json_string(br[b].texts[i]));
            if (it->answer) json_object_set_new(o, "answer", json_string(it->answer));
            char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
            json_decref(o);
            fprintf(f, "%s\n", s ? s : "{}");
            free(s);
        }
    int bad = ferror(f);
    if (f != stdout)
        bad |= fclose(f) != 0;
    else
        fflush(f);
    return bad ? rl_fail(err, RL_EINPUT, "--prompts-out %s: write failed", path) : 0;
}

static int start_unique_run(rl_run *run, rl_err *err) {
    char name[600];
    for (int i = 1; i < 100000; i++) {
        if (i == 1)
            snprintf(name, sizeof name, "%s-bench", run->cfg->run.name);
        else
            snprintf(name, sizeof name, "%s-bench-%d", run->cfg->run.name, i);
        int64_t id;
        rl_err probe = {0};
        if (rl_log_find_run(run->log, name, &id, &probe) != 0)
            return rl_run_start(run, name, 0, err);
    }
    return rl_fail(err, RL_EINPUT, "too many benchmark runs in %s", run->cfg->logging.db);
}

int rl_bench_eval_run(rl_config *cfg, const rl_bench_eval_opts *o_in) {
    rl_bench_eval_opts o = *o_in;
    if (o.temperature < 0) o.temperature = cfg->eval.temperature; // default 0.6 (R1)
    if (o.top_p < 0) o.top_p = cfg->eval.top_p;                   // default 0.95 (R1)
    rl_err err = {0};
    bench_run br[MAX_BENCH];
    int n_br = 0, code = CLI_EXIT_OK;
    rl_run run = {0};
    graders g = {rl_verifier_math_api(), rl_verifier_code_api(), rl_verifier_format_api(), NULL,
                 NULL};
    const char *start = o.style == RL_BENCH_STYLE_SEED ? "###" : "";
    char found[4096];
    int sampling = !o.responses && !o.prompts_out;
    if (sampling && !o.model && !cfg->model.path[0] &&
        rl_run_default_model(cfg, found, sizeof found))
        o.model = found;
    int k = o.k > 0 ? o.k : cfg->eval.k;

    // Scoring and printing prompts run no model: they need no GPU.
    if (!sampling) cfg->run.device = RL_CFG_CPU;
    // Everything that can fail on bad input comes before the log is touched.
    if (load_benches(&o, br, &n_br, &err) ||
        rl_run_init(&run, cfg, sampling ? RL_RUN_MODEL : 0, o.model, &err))
        goto fail;
    for (int p = 0; p < o.n_pass_k; p++)
        if (o.pass_k[p] > k && !o.responses) {
            rl_fail(&err, RL_EINPUT, "--pass-k %d: more than the %d samples per problem (--k)",
                    o.pass_k[p], k);
            goto fail;
        }
    int tmpl_r1 = run.tmpl == RL_CHAT_R1;
    for (int b = 0; b < n_br; b++) {
        br[b].ids = rl_calloc((size_t)br[b].n, sizeof(rl_ids));
        br[b].texts = rl_calloc((size_t)br[b].n, sizeof(char *));
        for (int i = 0; i < br[b].n; i++)
            if (render(&run, br[b].b.items[i].prompt, start, &br[b].texts[i], &br[b].ids[i],
                       &err)) {
                rl_err_prefix(&err, "%s:%d: ", br[b].b.path, br[b].b.items[i].line);
                goto fail;
            }
        if (make_format(&br[b], &g, o.style, tmpl_r1, &err)) goto fail;
    }
    if (o.prompts_out) {
        if (write_prompts(o.prompts_out, br, n_br, &err)) goto fail;
        goto done;
    }
    if (o.responses) {
        if (read_responses(o.responses, br, n_br, &k, &err)) goto fail;
        if (o.k > 0 && o.k != k) {
            rl_fail(&err, RL_EINPUT, "--k %d: %s has %d completion(s) per problem", o.k,
                    o.responses, k);
            goto fail;
        }
        for (int p = 0; p < o.n_pass_k; p++)
            if (o.pass_k[p] > k) {
                rl_fail(&err, RL_EINPUT, "--pass-k %d: more than the %d completions per problem",
                        o.pass_k[p], k);
                goto fail;
            }
    }
    if (make_graders(cfg, &g, &err)) goto fail;
    if (rl_run_open_output(&run, &err) || start_unique_run(&run, &err)) goto fail;
    bench_result res[MAX_BENCH];
    for (int b = 0; b < n_br; b++) {
        fprintf(stderr, "bench: %s (%s): %d problems x %d samples\n", br[b].label, br[b].b.path,
                br[b].n, k);
        if (run_bench(&run, &g, &o, &br[b], b, k, start, &res[b], &err)) goto fail;
    }
    printf("benchmarks (%s, %s):\n", o.responses ? o.responses : (o.model ? o.model : "init"),
           cfg->logging.db);
    print_header(stdout);
    for (int b = 0; b < n_br; b++) print_rows(stdout, &br[b], &res[b], &o);
    if (o.responses)
        printf("completions from %s, style %s; pass@1 = mean over the k samples of each problem\n",
               o.responses, o.style ? "seed (###)" : "standard");
    else
        printf("T = %.2f, top-p = %.2f, style %s; pass@1 = mean over the k samples of each "
               "problem\n",
               o.temperature, o.top_p, o.style ? "seed (###)" : "standard");

    goto done;
fail:
    code = cli_report(&err);
done:
    for (int b = 0; b < n_br; b++) {
        for (int i = 0; i < br[b].n; i++) {
            if (br[b].ids) rl_ids_free(&br[b].ids[i]);
            if (br[b].texts) free(br[b].texts[i]);
            if (br[b].responses) {
                for (int s = 0; s < br[b].n_responses[i]; s++) free(br[b].responses[i][s]);
                free(br[b].responses[i]);
            }
        }
        free(br[b].ids);
        free(br[b].texts);
        free(br[b].responses);
        free(br[b].n_responses);
        if (br[b].format) g.fmt_api->destroy(br[b].format);
        rl_bench_free(&br[b].b);
    }
    if (g.math) g.math_api->destroy(g.math);
    if (g.code) g.code_api->destroy(g.code);
    rl_run_end(&run, code == CLI_EXIT_OK);
    return code;
}
