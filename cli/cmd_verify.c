// cmd_verify: `rlpipe verify`, the verifiers as a command-line scorer over JSON lines.
//
// Input, one JSON object per line on stdin (blank lines are ignored, unknown keys too):
//   {"prompt": "...", "completion": "...", "answer": "7"}                      math
//   {"completion": "...", "tests": [{"input": "1 2\n", "output": "3\n"}, {"assert": "..."}]}   code
//   optional: "tokens": [ids], "n_tokens": n, "max_tokens": m, "truncated": true|false,
//             "task": "...", "group": any number or string (lines with equal group values are
//             scored as one group; default: every line its own group)
// n_tokens is, in order of preference: "n_tokens", the length of "tokens", or an estimate of
// ceil(UTF-8 bytes / 4) (about one BPE token per 4 bytes of English text; exact for nothing).
// max_tokens: the line's, else --max-tokens, else rollout.max_new_tokens of --config, else 1024.
//
// Output, one line per input line, in order:
//   {"reward": r, "scores": {"accuracy": 1, ...}, "status": {"accuracy": "ok", ...},
//    "details": {"accuracy": "...", ...}, "skipped": false, "n_tokens": 57}
// A malformed input line gives {"error": "line 3: ..."} on its output line and the run goes on;
// the exit code is then 2 (after all lines are written). A bad flag or config exits 2 at once.
#define _GNU_SOURCE
#include "cli/cli.h"
#include "cli/config.h"
#include "reward/reward.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_TOKENS 1024

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: rlpipe verify [--config FILE] [--set KEY=VALUE]... [--only NAME]\n"
        "                     [--extract boxed|auto] [--max-tokens N] [--threads N]\n\n"
        "Scores JSON lines from stdin with the reward verifiers and writes one JSON line per\n"
        "input line: {\"reward\", \"scores\", \"status\", \"details\", \"skipped\", "
        "\"n_tokens\"}.\n"
        "Input keys: completion (required), prompt, answer (math) or tests (code:\n"
        "[{\"input\",\"output\"}] or [{\"assert\"}]), tokens, n_tokens, max_tokens, truncated,\n"
        "task, group (lines with the same group are scored together).\n\n"
        "  --config FILE     take reward.verifiers, reward.extract, reward.threads and\n"
        "                    rollout.max_new_tokens from a run config (default: 0.4 accuracy,\n"
        "                    0.3 path_quality, 0.2 format, 0.1 efficiency)\n"
        "  --set KEY=VALUE   override a config key (repeatable)\n"
        "  --only NAME       run one verifier; the reward is then its score alone\n"
        "  --extract MODE    answer extraction of the math verifier: boxed (the last\n"
        "                    \\boxed{}) or auto (boxed, else the last number)\n"
        "  --max-tokens N    token budget of lines without max_tokens (default: the config's\n"
        "                    rollout.max_new_tokens with --config, else 1024)\n"
        "  --threads N       scoring threads (default: reward.threads, 0 = all cores)\n\n"
        "`rlpipe verify --only accuracy --extract auto` is a plain answer checker. n_tokens,\n"
        "when not given, is estimated as ceil(bytes / 4). A malformed line gives\n"
        "{\"error\": \"line N: ...\"} and the exit code 2 after all lines are written.\n");
}

// ---- input lines ---------------------------------------------------------------------------------

typedef struct vline {
    int lineno;      // 1-based line in the input
    json_t *root;    // the parsed object (owns the strings the sample points to)
    char error[200]; // non-empty: the line is malformed
    rl_vsample sample;
    rl_vtest *tests;   // [sample.n_tests]
    int32_t *tokens;   // [sample.n_tokens] or NULL
    char *answer_text; // the answer when given as a JSON number
    char *group_key;   // "g:<value>" or "l:<line>", for grouping
} vline;

static int line_fail(vline *l, const char *fmt, const char *key) {
    snprintf(l->error, sizeof l->error, fmt, key);
    return -1;
}

static int opt_string(vline *l, const char *key, const char **out) {
    json_t *v = json_object_get(l->root, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return line_fail(l, "\"%s\" must be a string", key);
    *out = json_string_value(v);
    return 0;
}

static int opt_int(vline *l, const char *key, int lo, int *out, int *given) {
    json_t *v = json_object_get(l->root, key);
    *given = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > (1 << 30))
        return line_fail(l, "\"%s\" must be a non-negative integer", key);
    *out = (int)json_integer_value(v);
    *given = 1;
    return 0;
}

static int parse_tests(vline *l, json_t *tests) {
    if (!json_is_array(tests)) return line_fail(l, "\"%s\" must be a list of tests", "tests");
    size_t n = json_array_size(tests);
    l->tests = rl_calloc(n ? n : 1, sizeof *l->tests);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(tests, i);
        json_t *in = json_object_get(t, "input"), *want = json_object_get(t, "output");
        json_t *as = json_object_get(t, "assert");
        if (json_is_string(as)) {
            l->tests[i] = (rl_vtest){RL_VTEST_ASSERT, json_string_value(as), NULL};
        } else if (json_is_string(in) && json_is_string(want)) {
            l->tests[i] =
                (rl_vtest){RL_VTEST_STDIO, json_string_value(in), json_string_value(want)};
        } else {
            return line_fail(l, "each of \"%s\" needs string input and output, or assert", "tests");
        }
    }
    l->sample.tests = l->tests;
    l->sample.n_tests = (int32_t)n;
    return 0;
}

static int parse_tokens(vline *l, json_t *toks) {
    if (!json_is_array(toks)) return line_fail(l, "\"%s\" must be a list of token ids", "tokens");
    size_t n = json_array_size(toks);
    l->tokens = rl_malloc((n ? n : 1) * sizeof *l->tokens);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(toks, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > INT32_MAX)
            return line_fail(l, "\"%s\" must be a list of token ids", "tokens");
        l->tokens[i] = (int32_t)json_integer_value(t);
    }
    l->sample.tokens = l->tokens;
    l->sample.n_tokens = (int32_t)n;
    return 0;
}

static int parse_line(vline *l, const char *text, size_t len, int default_max) {
    json_error_t jerr;
    l->root = json_loadb(text, len, 0, &jerr);
    if (!l->root) {
        snprintf(l->error, sizeof l->error, "not a JSON object: %s (column %d)", jerr.text,
                 jerr.column);
        return -1;
    }
    if (!json_is_object(l->root)) return line_fail(l, "expected a JSON object%s", "");
    rl_vsample *s = &l->sample;
    RL_TRY(opt_string(l, "completion", &s->completion));
    if (!s->completion) return line_fail(l, "missing \"%s\" (a string)", "completion");
    RL_TRY(opt_string(l, "prompt", &s->prompt));
    if (!s->prompt) s->prompt = "";
    RL_TRY(opt_string(l, "task", &s->task));
    json_t *answer = json_object_get(l->root, "answer");
    if (json_is_string(answer))
        s->answer = json_string_value(answer);
    else if (json_is_number(answer))
        s->answer = l->answer_text = json_dumps(answer, JSON_ENCODE_ANY);
    else if (answer && !json_is_null(answer))
        return line_fail(l, "\"%s\" must be a string or a number", "answer");
    json_t *tests = json_object_get(l->root, "tests");
    if (tests && !json_is_null(tests)) RL_TRY(parse_tests(l, tests));
    json_t *toks = json_object_get(l->root, "tokens");
    if (toks && !json_is_null(toks)) RL_TRY(parse_tokens(l, toks));
    int v, given;
    RL_TRY(opt_int(l, "n_tokens", 0, &v, &given));
    if (given)
        s->n_tokens = v;
    else if (!s->tokens)
        s->n_tokens = (int32_t)((strlen(s->completion) + 3) / 4);
    RL_TRY(opt_int(l, "max_tokens", 1, &v, &given));
    s->max_tokens = given ? v : default_max;
    json_t *trunc = json_object_get(l->root, "truncated");
    if (trunc && !json_is_boolean(trunc) && !json_is_null(trunc))
        return line_fail(l, "\"%s\" must be true or false", "truncated");
    s->truncated = json_is_true(trunc);
    json_t *group = json_object_get(l->root, "group");
    if (group && !json_is_null(group)) {
        if (!json_is_string(group) && !json_is_integer(group))
            return line_fail(l, "\"%s\" must be a string or an integer", "group");
        char *g = json_dumps(group, JSON_ENCODE_ANY);
        size_t n = strlen(g) + 3;
        l->group_key = rl_malloc(n);
        snprintf(l->group_key, n, "g:%s", g);
        free(g);
    }
    return 0;
}

static void line_free(vline *l) {
    json_decref(l->root);
    free(l->tests);
    free(l->tokens);
    free(l->answer_text);
    free(l->group_key);
}

// ---- groups ----------------------------------------------------------------------------------------

typedef struct gkey {
    const char *key;
    int index;
} gkey;

static int by_key(const void *pa, const void *pb) {
    const gkey *a = pa, *b = pb;
    int c = strcmp(a->key, b->key);
    return c ? c : (a->index > b->index) - (a->index < b->index);
}

// group[i] = a dense id per distinct group key.
static void assign_groups(vline **lines, int n, int32_t *group) {
    gkey *k = rl_malloc((size_t)(n ? n : 1) * sizeof *k);
    for (int i = 0; i < n; i++) k[i] = (gkey){lines[i]->group_key, i};
    qsort(k, (size_t)n, sizeof *k, by_key);
    int32_t id = -1;
    for (int i = 0; i < n; i++) {
        if (i == 0 || strcmp(k[i].key, k[i - 1].key) != 0) id++;
        group[k[i].index] = id;
    }
    free(k);
}

// ---- the verifier set --------------------------------------------------------------------------------

static void copy_spec(rl_verifier_spec *dst, const rl_verifier_spec *src) {
    *dst = (rl_verifier_spec){
        .name = src->name ? rl_strdup(src->name) : NULL,
        .weight = src->weight,
        .plugin = src->plugin ? rl_strdup(src->plugin) : NULL,
        .command = src->command ? rl_strdup(src->command) : NULL,
        .gate = src->gate ? rl_strdup(src->gate) : NULL,
        .line = src->line,
        .column = src->column,
    };
    for (int i = 0; i < src->n_options; i++)
        rl_verifier_spec_set_option(dst, src->options[i].key, src->options[i].value);
}

// The specs to run: the config's list, or only `only` (weight 1, ungated). *n receives the count.
static int build_specs(const rl_config *c, const char *only, rl_verifier_spec **out, int *n,
                       rl_err *err) {
    const rl_verifier_list *list = &c->reward.verifiers;
    rl_verifier_spec *specs = rl_calloc((size_t)list->n + 1, sizeof *specs);
    int k = 0;
    for (int i = 0; i < list->n; i++)
        if (!only || strcmp(list->v[i].name, only) == 0) copy_spec(&specs[k++], &list->v[i]);
    if (only && k == 0) {
        const char *builtins[] = {"accuracy", "path_quality", "format", "efficiency"};
        for (int i = 0; i < 4 && k == 0; i++)
            if (strcmp(only, builtins[i]) == 0) specs[k++].name = rl_strdup(only);
        if (k == 0) {
            free(specs);
            return rl_fail(err, RL_EINPUT,
                           "--only %s: no verifier of that name in the config (built-ins: "
                           "accuracy, path_quality, format, efficiency)",
                           only);
        }
    }
    for (int i = 0; i < k; i++) {
        if (only) {
            specs[i].weight = 1.0;
            free(specs[i].gate);
            specs[i].gate = rl_strdup("none");
        }
    }
    *out = specs;
    *n = k;
    return 0;
}

// ---- output ----------------------------------------------------------------------------------------

static void print_result(const rl_reward *rw, const vline *l, const rl_vresult *row, double reward,
                         int skipped) {
    json_t *o = json_object();
    if (l->error[0]) {
        char msg[260];
        snprintf(msg, sizeof msg, "line %d: %s", l->lineno, l->error);
        json_object_set_new(o, "error", json_string(msg));
    } else {
        json_t *scores = json_object(), *status = json_object(), *details = json_object();
        for (int v = 0; v < rl_reward_n_verifiers(rw); v++) {
            const char *name = rl_reward_name(rw, v);
            json_object_set_new(scores, name, json_real(row[v].score));
            json_object_set_new(status, name, json_string(rl_vstatus_name(row[v].status)));
            json_t *d = json_string(row[v].detail);
            json_object_set_new(details, name, d ? d : json_string("(detail not UTF-8)"));
        }
        json_object_set_new(o, "reward", json_real(reward));
        json_object_set_new(o, "scores", scores);
        json_object_set_new(o, "status", status);
        json_object_set_new(o, "details", details);
        json_object_set_new(o, "skipped", json_boolean(skipped));
        json_object_set_new(o, "n_tokens", json_integer(l->sample.n_tokens));
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
    if (text) puts(text);
    free(text);
    json_decref(o);
}

// ---- the command -------------------------------------------------------------------------------------

typedef struct verify_args {
    const char *config, *only, *extract;
    char **sets;
    int n_sets, max_tokens, threads;
} verify_args;

static int parse_args(int argc, char **argv, verify_args *a) {
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"set", required_argument, NULL, 's'},
                                             {"only", required_argument, NULL, 'o'},
                                             {"extract", required_argument, NULL, 'e'},
                                             {"max-tokens", required_argument, NULL, 'm'},
                                             {"threads", required_argument, NULL, 't'},
                                             {NULL, 0, NULL, 0}};
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'c':
            a->config = optarg;
            break;
        case 's':
            a->sets[a->n_sets++] = optarg;
            break;
        case 'o':
            a->only = optarg;
            break;
        case 'e':
            if (strcmp(optarg, "boxed") != 0 && strcmp(optarg, "auto") != 0)
                return cli_usage_error("verify", "--extract: expected boxed or auto, got '%s'",
                                       optarg);
            a->extract = optarg;
            break;
        case 'm':
        case 't': {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < (ch == 'm' ? 1 : 0) || v > (1 << 20))
                return cli_usage_error("verify", "--%s: expected a %s integer, got '%s'",
                                       ch == 'm' ? "max-tokens" : "threads",
                                       ch == 'm' ? "positive" : "non-negative", optarg);
            if (ch == 'm')
                a->max_tokens = (int)v;
            else
                a->threads = (int)v;
            break;
        }
        default:
            return cli_usage_error("verify", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("verify", "unexpected argument '%s'", argv[optind]);
    return 0;
}

// Reads every line of stdin; *n receives the number of non-blank lines.
static vline **read_lines(int default_max, int *n, int *n_bad) {
    vline **lines = NULL;
    int cap = 0, count = 0, lineno = 0;
    char *buf = NULL;
    size_t bufcap = 0;
    ssize_t len;
    *n_bad = 0;
    while ((len = getline(&buf, &bufcap, stdin)) >= 0) {
        lineno++;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) buf[--len] = 0;
        size_t skip = strspn(buf, " \t");
        if ((size_t)len == skip) continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            lines = rl_realloc(lines, (size_t)cap * sizeof *lines);
        }
        vline *l = rl_calloc(1, sizeof *l);
        l->lineno = lineno;
        if (parse_line(l, buf, (size_t)len, default_max) != 0) (*n_bad)++;
        if (!l->group_key) {
            char key[32];
            snprintf(key, sizeof key, "l:%d", lineno);
            l->group_key = rl_strdup(key);
        }
        lines[count++] = l;
    }
    free(buf);
    *n = count;
    return lines;
}

static int run_verify(const verify_args *a, rl_config *c) {
    rl_err err = {0};
    const char *extract =
        a->extract ? a->extract : rl_config_enum_name("reward.extract", c->reward.extract);
    rl_verifier_spec *specs = NULL;
    int n_specs = 0;
    if (build_specs(c, a->only, &specs, &n_specs, &err) != 0) return cli_report(&err);
    rl_reward_opts ropts = {.threads = a->threads >= 0 ? a->threads : c->reward.threads,
                            .extract = extract ? extract : "boxed"};
    rl_reward *rw = NULL;
    int rc = rl_reward_create(&rw, specs, n_specs, &ropts, &err);
    for (int i = 0; i < n_specs; i++) rl_verifier_spec_free(&specs[i]);
    free(specs);
    if (rc != 0) {
        if (a->config) rl_err_prefix(&err, "%s: ", a->config);
        return cli_report(&err);
    }

    int default_max = a->max_tokens ? a->max_tokens
                      : a->config   ? c->rollout.max_new_tokens
                                    : DEFAULT_MAX_TOKENS;
    int n = 0, n_bad = 0;
    vline **lines = read_lines(default_max, &n, &n_bad);

    // Only well-formed lines are scored.
    int nv = rl_reward_n_verifiers(rw), n_ok = 0;
    rl_vsample *samples = rl_malloc((size_t)(n ? n : 1) * sizeof *samples);
    vline **ok = rl_malloc((size_t)(n ? n : 1) * sizeof *ok);
    for (int i = 0; i < n; i++)
        if (!lines[i]->error[0]) {
            ok[n_ok] = lines[i];
            samples[n_ok++] = lines[i]->sample;
        }
    int32_t *group = rl_malloc((size_t)(n_ok ? n_ok : 1) * sizeof *group);
    rl_vresult *results = rl_malloc((size_t)(n_ok ? n_ok : 1) * nv * sizeof *results);
    double *reward = rl_malloc((size_t)(n_ok ? n_ok : 1) * sizeof *reward);
    uint8_t *skipped = rl_malloc((size_t)(n_ok ? n_ok : 1));
    assign_groups(ok, n_ok, group);
    rc = rl_reward_score(rw, samples, group, n_ok, results, reward, skipped, &err);

    for (int i = 0, k = 0; rc == 0 && i < n; i++) {
        int good = !lines[i]->error[0];
        print_result(rw, lines[i], good ? &results[(size_t)k * nv] : NULL, good ? reward[k] : 0,
                     good ? skipped[k] : 0);
        k += good;
    }
    fflush(stdout);
    for (int i = 0; i < n; i++) {
        line_free(lines[i]);
        free(lines[i]);
    }
    free(lines);
    free(samples);
    free(ok);
    free(group);
    free(results);
    free(reward);
    free(skipped);
    rl_reward_free(rw);
    if (rc != 0) return cli_report(&err);
    if (n_bad) {
        fprintf(stderr, "rlpipe verify: %d of %d input lines were malformed\n", n_bad, n);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

int cmd_verify(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    char **sets = rl_calloc((size_t)argc + 1, sizeof *sets);
    verify_args a = {.sets = sets, .threads = -1};
    int rc = parse_args(argc, argv, &a);
    if (rc == 0) {
        rl_config c;
        rl_err err = {0};
        int bad = rl_config_load(&c, a.config, &err);
        for (int i = 0; !bad && i < a.n_sets; i++) bad = rl_config_set(&c, a.sets[i], &err);
        rc = bad ? cli_report(&err) : run_verify(&a, &c);
        rl_config_free(&c);
    }
    free(sets);
    return rc;
}
