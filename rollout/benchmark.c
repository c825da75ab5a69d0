// benchmark: benchmark files in their releases' formats, and their standard prompts. See
// benchmark.h.
#define _POSIX_C_SOURCE 200809L
#include "rollout/benchmark.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernels/rng.h"
#include "policy/fileio.h"
#include "rollout/lcb_decode.h"

// ---- names ----------------------------------------------------------------------------------

static const struct {
    const char *name;
    rl_bench_kind kind;
} NAMES[] = {
    {"math500", RL_BENCH_MATH500},   {"math_500", RL_BENCH_MATH500},
    {"math", RL_BENCH_MATH500},      {"aime", RL_BENCH_AIME},
    {"aime24", RL_BENCH_AIME},       {"aime2024", RL_BENCH_AIME},
    {"aime_2024", RL_BENCH_AIME},    {"aime25", RL_BENCH_AIME},
    {"aime2025", RL_BENCH_AIME},     {"aime_2025", RL_BENCH_AIME},
    {"gpqa", RL_BENCH_GPQA},         {"gpqa_diamond", RL_BENCH_GPQA},
    {"mmlu_pro", RL_BENCH_MMLU_PRO}, {"mmlupro", RL_BENCH_MMLU_PRO},
    {"livecodebench", RL_BENCH_LCB}, {"lcb", RL_BENCH_LCB},
};

int rl_bench_kind_from_name(const char *name) {
    char norm[64];
    size_t n = strlen(name);
    if (n >= sizeof norm) return -1;
    for (size_t i = 0; i <= n; i++)
        norm[i] = name[i] == '-' ? '_' : (char)tolower((unsigned char)name[i]);
    for (size_t i = 0; i < sizeof NAMES / sizeof *NAMES; i++)
        if (strcmp(norm, NAMES[i].name) == 0) return NAMES[i].kind;
    return -1;
}

const char *rl_bench_names(void) {
    return "math500, aime (aime24, aime25), gpqa (gpqa_diamond), mmlu_pro, livecodebench (lcb)";
}

const char *rl_bench_display_name(rl_bench_kind kind) {
    static const char *const d[] = {"MATH-500", "AIME", "GPQA Diamond", "MMLU-Pro",
                                    "LiveCodeBench"};
    return kind >= 0 && kind < RL_BENCH_N_KINDS ? d[kind] : "?";
}

const char *rl_bench_metric(rl_bench_kind kind) {
    return kind == RL_BENCH_MMLU_PRO ? "EM" : "pass@1";
}

rl_bench_grader rl_bench_grader_of(rl_bench_kind kind) {
    if (kind == RL_BENCH_GPQA || kind == RL_BENCH_MMLU_PRO) return RL_BENCH_GRADE_CHOICE;
    if (kind == RL_BENCH_LCB) return RL_BENCH_GRADE_CODE;
    return RL_BENCH_GRADE_MATH;
}

double rl_pass_at_k(int n, int c, int k) {
    if (n <= 0) return 0;
    if (k > n) k = n;
    if (k < 1) k = 1;
    if (n - c < k) return 1.0;
    // 1 - prod_{i = n-c+1}^{n} (1 - k / i), the numerically stable form.
    double keep = 1.0;
    for (int i = n - c + 1; i <= n; i++) keep *= 1.0 - (double)k / i;
    return 1.0 - keep;
}

// ---- a growing text buffer -----------------------------------------------------------------------

typedef struct buf {
    char *s;
    size_t len, cap;
} buf;

static void buf_add(buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s) abort();
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void buf_str(buf *b, const char *s) {
    buf_add(b, s, strlen(s));
}

static void buf_fmt(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_fmt(buf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

// ---- fields ---------------------------------------------------------------------------------------

// The first of names present in obj (and not null), or NULL; *which gets its name.
static json_t *field(json_t *obj, const char *const *names, const char **which) {
    for (int i = 0; names[i]; i++) {
        json_t *v = json_object_get(obj, names[i]);
        if (v && !json_is_null(v)) {
            if (which) *which = names[i];
            return v;
        }
    }
    return NULL;
}

// A field as text: strings as they are, integers and reals printed. NULL when absent.
static char *field_text(json_t *obj, const char *const *names) {
    json_t *v = field(obj, names, NULL);
    if (!v) return NULL;
    if (json_is_string(v)) return rl_strdup(json_string_value(v));
    char tmp[64];
    if (json_is_integer(v)) {
        snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(v));
        return rl_strdup(tmp);
    }
    if (json_is_real(v)) {
        snprintf(tmp, sizeof tmp, "%.17g", json_real_value(v));
        return rl_strdup(tmp);
    }
    return NULL;
}

static int all_blank(const char *s) {
    for (; *s; s++)
        if (!isspace((unsigned char)*s)) return 0;
    return 1;
}

// A required non-blank string field; error names the first of the accepted names.
static int need_text(json_t *obj, const char *const *names, char **out, rl_err *err) {
    json_t *v = field(obj, names, NULL);
    if (!v) return rl_fail(err, RL_EINPUT, "missing field \"%s\"", names[0]);
    if (!json_is_string(v))
        return rl_fail(err, RL_EINPUT, "field \"%s\": expected a string", names[0]);
    if (all_blank(json_string_value(v)))
        return rl_fail(err, RL_EINPUT, "field \"%s\" is empty", names[0]);
    *out = rl_strdup(json_string_value(v));
    return 0;
}

// Trims leading and trailing whitespace in place.
static char *trim(char *s) {
    char *p = s;
    while (isspace((unsigned char)*p)) p++;
    size_t n = strlen(p);
    while (n && isspace((unsigned char)p[n - 1])) n--;
    memmove(s, p, n);
    s[n] = '\0';
    return s;
}

// A compact JSON object of the descriptive fields that are present.
static char *meta_of(json_t *obj, const char *const *keys) {
    json_t *m = json_object();
    for (int i = 0; keys[i]; i++) {
        json_t *v = json_object_get(obj, keys[i]);
        if (v && (json_is_string(v) || json_is_number(v))) json_object_set(m, keys[i], v);
    }
    char *s = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(m);
    return s ? s : rl_strdup("{}");
}

static char *default_id(json_t *obj, const char *const *names, int line) {
    char *id = field_text(obj, names);
    if (id && !all_blank(id)) return id;
    free(id);
    char tmp[32];
    snprintf(tmp, sizeof tmp, "line %d", line);
    return rl_strdup(tmp);
}

// ---- prompts ----------------------------------------------------------------------------------------

static const char MATH_INSTRUCTION[] =
    "Please reason step by step, and put your final answer within \\boxed{}.";
static const char SEED_START[] = "Begin your response with ###.";

static char *math_prompt(const char *problem, rl_bench_style style) {
    buf b = {0};
    buf_str(&b, problem);
    buf_str(&b, "\n");
    buf_str(&b, MATH_INSTRUCTION);
    if (style == RL_BENCH_STYLE_SEED) {
        buf_str(&b, " ");
        buf_str(&b, SEED_START);
    }
    return b.s;
}

static char *choice_prompt(const char *question, char *const *options, int n,
                           rl_bench_style style) {
    buf b = {0};
    char last = (char)('A' + n - 1);
    if (style == RL_BENCH_STYLE_SEED)
        buf_fmt(&b,
                "Answer the following multiple choice question. Please reason step by step, and "
                "put the letter of your final answer (one of A-%c) within \\boxed{}, for example "
                "\\boxed{A}. %s\n\n",
                last, SEED_START);
    else
        buf_fmt(&b,
                "Answer the following multiple choice question. The last line of your response "
                "should be of the following format: 'Answer: $LETTER' (without quotes) where "
                "LETTER is one of A-%c. Think step by step before answering.\n\n",
                last);
    buf_str(&b, question);
    buf_str(&b, "\n");
    for (int i = 0; i < n; i++) {
        buf_fmt(&b, "\n%c) ", 'A' + i);
        buf_str(&b, options[i]);
    }
    return b.s;
}

static char *code_prompt(const char *question, const char *starter, rl_bench_style style) {
    buf b = {0};
    buf_str(&b, "You will be given a question (problem specification) and will generate a correct "
                "Python program that matches the specification and passes all tests.\n\n"
                "Question: ");
    buf_str(&b, question);
    buf_str(&b, "\n\n");
    if (starter && !all_blank(starter)) {
        buf_str(&b, "You will use the following starter code to write the solution to the problem "
                    "and enclose your code within delimiters.\n```python\n");
        buf_str(&b, starter);
        buf_str(&b, "\n```\n\n");
    } else {
        buf_str(&b, "Read the inputs from stdin, solve the problem and write the answer to stdout "
                    "(do not directly test on the sample inputs). Enclose your code within "
                    "delimiters as follows.\n```python\n# YOUR CODE HERE\n```\n\n");
    }
    buf_str(&b, "Answer: (use the provided format with backticks)");
    if (style == RL_BENCH_STYLE_SEED) {
        buf_str(&b, "\n");
        buf_str(&b, SEED_START);
    }
    return b.s;
}

// ---- the five formats -------------------------------------------------------------------------------

static int load_math500(rl_bench_item *it, json_t *o, const rl_bench_opts *opt, rl_err *err) {
    static const char *const P[] = {"problem", "Problem", "question", NULL};
    static const char *const A[] = {"answer", "Answer", NULL};
    static const char *const ID[] = {"unique_id", "id", "ID", NULL};
    static const char *const META[] = {"subject", "level", "unique_id", NULL};
    char *problem = NULL;
    RL_TRY(need_text(o, P, &problem, err));
    json_t *a = field(o, A, NULL);
    if (!a) {
        free(problem);
        return rl_fail(err, RL_EINPUT, "missing field \"answer\"");
    }
    it->answer = field_text(o, A);
    if (!it->answer || all_blank(it->answer)) {
        free(problem);
        return rl_fail(err, RL_EINPUT, "field \"answer\": expected a non-empty string or number");
    }
    it->prompt = math_prompt(problem, opt->style);
    free(problem);
    it->id = default_id(o, ID, it->line);
    it->meta = meta_of(o, META);
    return 0;
}

static int load_aime(rl_bench_item *it, json_t *o, const rl_bench_opts *opt, rl_err *err) {
    static const char *const P[] = {"problem", "Problem", "question", "Question", NULL};
    static const char *const A[] = {"answer", "Answer", NULL};
    static const char *const ID[] = {"id", "ID", "problem_idx", "url", NULL};
    static const char *const META[] = {"id", "ID", "url", "year", "Year", NULL};
    char *problem = NULL;
    RL_TRY(need_text(o, P, &problem, err));
    json_t *a = field(o, A, NULL);
    long long v = -1;
    if (a && json_is_integer(a)) v = json_integer_value(a);
    if (a && json_is_string(a)) {
        const char *s = json_string_value(a);
        char *copy = trim(rl_strdup(s)), *end;
        if (copy[0] && isdigit((unsigned char)copy[0]) && strlen(copy) <= 4) {
            v = strtoll(copy, &end, 10);
            if (*end) v = -1;
        }
        free(copy);
    }
    if (!a || v < 0 || v > 999) {
        free(problem);
        if (!a) return rl_fail(err, RL_EINPUT, "missing field \"answer\"");
        char *shown = json_dumps(a, JSON_ENCODE_ANY | JSON_COMPACT);
        rl_fail(err, RL_EINPUT, "field \"answer\": expected an integer 0..999 (AIME), got %.60s",
                shown ? shown : "?");
        free(shown);
        return -1;
    }
    char tmp[16];
    snprintf(tmp, sizeof tmp, "%lld", v);
    it->answer = rl_strdup(tmp);
    it->prompt = math_prompt(problem, opt->style);
    free(problem);
    it->id = default_id(o, ID, it->line);
    it->meta = meta_of(o, META);
    return 0;
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int load_gpqa(rl_bench_item *it, json_t *o, const rl_bench_opts *opt, rl_err *err) {
    static const char *const Q[] = {"Question", "question", NULL};
    static const char *const C[] = {"Correct Answer", "correct_answer", NULL};
    static const char *const W1[] = {"Incorrect Answer 1", "incorrect_answer_1", NULL};
    static const char *const W2[] = {"Incorrect Answer 2", "incorrect_answer_2", NULL};
    static const char *const W3[] = {"Incorrect Answer 3", "incorrect_answer_3", NULL};
    static const char *const ID[] = {"Record ID", "record_id", "id", NULL};
    static const char *const META[] = {"Record ID", "High-level domain", "Subdomain", NULL};
    const char *const *names[4] = {C, W1, W2, W3};
    char *q = NULL, *opts[4] = {0};
    int rc = need_text(o, Q, &q, err);
    for (int i = 0; i < 4 && rc == 0; i++) {
        rc = need_text(o, names[i], &opts[i], err);
        if (rc == 0) trim(opts[i]);
    }
    if (rc == 0) {
        it->id = default_id(o, ID, it->line);
        char *rid = field_text(o, ID);
        uint64_t key = fnv1a(rid && !all_blank(rid) ? rid : q);
        free(rid);
        // Fisher-Yates over positions: order[j] = which option (0 = correct) is shown at letter j.
        int order[4] = {0, 1, 2, 3};
        rl_rng g = rl_rng_stream(opt->shuffle_seed, RL_RNG_SPLIT, key, 0x47505141 /* GPQA */);
        for (int j = 3; j > 0; j--) {
            int r = (int)rl_rng_below(&g, (uint32_t)(j + 1));
            int t = order[j];
            order[j] = order[r];
            order[r] = t;
        }
        char *shown[4];
        char letter[2] = {0};
        for (int j = 0; j < 4; j++) {
            shown[j] = opts[order[j]];
            if (order[j] == 0) letter[0] = (char)('A' + j);
        }
        it->answer = rl_strdup(letter);
        it->n_options = 4;
        it->prompt = choice_prompt(trim(q), shown, 4, opt->style);
        it->meta = meta_of(o, META);
    }
    free(q);
    for (int i = 0; i < 4; i++) free(opts[i]);
    return rc;
}

static int load_mmlu_pro(rl_bench_item *it, json_t *o, const rl_bench_opts *opt, rl_err *err) {
    static const char *const Q[] = {"question", "Question", NULL};
    static const char *const ID[] = {"question_id", "id", NULL};
    static const char *const META[] = {"question_id", "category", "src", NULL};
    char *q = NULL;
    RL_TRY(need_text(o, Q, &q, err));
    json_t *ov = json_object_get(o, "options"), *parsed = NULL;
    if (ov && json_is_string(ov)) // a CSV cell: the list as JSON text
        ov = parsed = json_loads(json_string_value(ov), 0, NULL);
    int n = ov && json_is_array(ov) ? (int)json_array_size(ov) : -1;
    int rc = 0;
    if (n < 0)
        rc = rl_fail(err, RL_EINPUT, "field \"options\": expected a list of strings");
    else if (n < 2 || n > 10)
        rc = rl_fail(err, RL_EINPUT, "field \"options\": expected 2 to 10 options, got %d", n);
    char *opts[10] = {0};
    for (int i = 0; i < n && rc == 0; i++) {
        json_t *e = json_array_get(ov, (size_t)i);
        if (!json_is_string(e))
            rc = rl_fail(err, RL_EINPUT, "field \"options\": option %d is not a string", i + 1);
        else
            opts[i] = rl_strdup(json_string_value(e));
    }
    char letter = 0;
    if (rc == 0) {
        json_t *a = json_object_get(o, "answer");
        const char *as = a && json_is_string(a) ? json_string_value(a) : NULL;
        if (as) {
            while (*as == ' ') as++;
            if (*as >= 'A' && *as <= 'Z' && (as[1] == '\0' || as[1] == ' ')) letter = *as;
        }
        if (!letter || letter - 'A' >= n)
            rc = rl_fail(err, RL_EINPUT,
                         "field \"answer\": expected a letter A-%c naming one of the %d options",
                         'A' + n - 1, n);
    }
    if (rc == 0) {
        json_t *ai = json_object_get(o, "answer_index");
        if (ai && json_is_string(ai)) { // CSV
            char *end;
            long v = strtol(json_string_value(ai), &end, 10);
            if (*end || end == json_string_value(ai)) v = -1;
            if (v != letter - 'A')
                rc = rl_fail(err, RL_EINPUT, "field \"answer_index\" (%s) disagrees with answer %c",
                             json_string_value(ai), letter);
        } else if (ai && !json_is_null(ai) &&
                   (!json_is_integer(ai) || json_integer_value(ai) != letter - 'A'))
            rc = rl_fail(err, RL_EINPUT, "field \"answer_index\" disagrees with answer %c", letter);
    }
    if (rc == 0) {
        char l[2] = {letter, 0};
        it->answer = rl_strdup(l);
        it->n_options = n;
        it->prompt = choice_prompt(q, opts, n, opt->style);
        it->id = default_id(o, ID, it->line);
        it->meta = meta_of(o, META);
    }
    for (int i = 0; i < 10; i++) free(opts[i]);
    free(q);
    json_decref(parsed);
    return rc;
}

// ---- LiveCodeBench tests ----------------------------------------------------------------------------

// Text as a Python expression that cannot break out of its literal: base64 of the UTF-8 bytes.
static void py_text(buf *b, const char *s) {
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    buf_str(b, "_rl_b64.b64decode('");
    size_t n = strlen(s);
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)u[i] << 16;
        if (i + 1 < n) v |= (uint32_t)u[i + 1] << 8;
        if (i + 2 < n) v |= u[i + 2];
        char q[4] = {T[v >> 18 & 63], T[v >> 12 & 63], i + 1 < n ? T[v >> 6 & 63] : '=',
                     i + 2 < n ? T[v & 63] : '='};
        buf_add(b, q, 4);
    }
    buf_str(b, "').decode('utf-8')");
}

// The assert code of one functional test: call the function with the input lines as JSON
// arguments and compare the result (tuples as lists) with the expected JSON value.
static char *functional_assert(const char *func, const char *input, const char *output) {
    buf b = {0};
    buf_str(&b, "import json as _rl_json, base64 as _rl_b64\n_rl_in = ");
    py_text(&b, input);
    buf_str(&b, "\n_rl_want = _rl_json.loads(");
    py_text(&b, output);
    buf_str(&b, ")\n_rl_args = [_rl_json.loads(_l) for _l in _rl_in.split('\\n') if _l.strip()]\n"
                "_rl_name = ");
    py_text(&b, func);
    buf_str(&b, "\n_rl_f = getattr(Solution(), _rl_name) if 'Solution' in globals() "
                "else globals()[_rl_name]\n"
                "_rl_got = _rl_f(*_rl_args)\n"
                "try:\n"
                "    _rl_got = _rl_json.loads(_rl_json.dumps(_rl_got))\n"
                "except (TypeError, ValueError):\n"
                "    pass\n"
                "assert _rl_got == _rl_want, 'wrong answer'\n");
    return b.s;
}

// Appends the tests of one JSON list (already parsed) to the item.
static int add_tests(rl_bench_item *it, json_t *list, const char *what, const char *func,
                     rl_err *err) {
    if (!json_is_array(list))
        return rl_fail(err, RL_EINPUT, "field \"%s\": expected a JSON list of tests", what);
    size_t n = json_array_size(list);
    it->tests = realloc(it->tests, (size_t)(it->n_tests + (int)n + 1) * sizeof *it->tests);
    if (!it->tests) abort();
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(list, i);
        json_t *in = json_object_get(t, "input"), *out = json_object_get(t, "output");
        json_t *ty = json_object_get(t, "testtype");
        if (!json_is_object(t) || !json_is_string(in) || !json_is_string(out))
            return rl_fail(err, RL_EINPUT,
                           "field \"%s\": test %zu needs string \"input\" and \"output\"", what,
                           i + 1);
        const char *type = json_is_string(ty) ? json_string_value(ty) : "stdin";
        rl_bench_test *bt = &it->tests[it->n_tests];
        memset(bt, 0, sizeof *bt);
        if (strcmp(type, "stdin") == 0) {
            bt->input = rl_strdup(json_string_value(in));
            bt->output = rl_strdup(json_string_value(out));
        } else if (strcmp(type, "functional") == 0) {
            if (!func)
                return rl_fail(err, RL_EINPUT,
                               "field \"%s\": test %zu is functional but \"metadata\" names no "
                               "func_name",
                               what, i + 1);
            bt->is_assert = 1;
            bt->input = functional_assert(func, json_string_value(in), json_string_value(out));
        } else
            return rl_fail(err, RL_EINPUT,
                           "field \"%s\": test %zu: testtype \"%.40s\" (expected stdin or "
                           "functional)",
                           what, i + 1, type);
        it->n_tests++;
    }
    return 0;
}

// A test-case field: a JSON list, JSON text of one, or (private tests) base64(zlib(pickle(str))).
static int lcb_tests(rl_bench_item *it, json_t *o, const char *name, const char *func,
                     size_t max_bytes, rl_err *err) {
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v)) return 0;
    if (json_is_array(v)) return add_tests(it, v, name, func, err);
    if (!json_is_string(v))
        return rl_fail(err, RL_EINPUT, "field \"%s\": expected a string or a list", name);
    const char *s = json_string_value(v);
    if (all_blank(s)) return 0;
    const char *p = s;
    while (isspace((unsigned char)*p)) p++;
    char *decoded = NULL;
    json_t *list = NULL;
    json_error_t jerr;
    if (*p == '[') {
        list = json_loads(s, 0, &jerr);
        if (!list) return rl_fail(err, RL_EINPUT, "field \"%s\": bad JSON: %s", name, jerr.text);
    } else {
        rl_err e = {0};
        if (rl_lcb_decode_private(s, strlen(s), max_bytes, &decoded, &e))
            return rl_fail(err, RL_EINPUT,
                           "field \"%s\": neither JSON nor base64(zlib(pickle)): %s", name, e.msg);
        list = json_loads(decoded, 0, &jerr);
        free(decoded);
        if (!list)
            return rl_fail(err, RL_EINPUT, "field \"%s\": the decoded text is not JSON: %s", name,
                           jerr.text);
    }
    int rc = add_tests(it, list, name, func, err);
    json_decref(list);
    return rc;
}

static int load_lcb(rl_bench_item *it, json_t *o, const rl_bench_opts *opt, rl_err *err) {
    static const char *const Q[] = {"question_content", "content", NULL};
    static const char *const ID[] = {"question_id", "id", NULL};
    static const char *const META[] = {"question_id", "question_title", "platform", "contest_date",
                                       "difficulty",  "contest_id",     NULL};
    char *q = NULL, *func = NULL;
    RL_TRY(need_text(o, Q, &q, err));
    json_t *md = json_object_get(o, "metadata"), *md_parsed = NULL;
    if (md && json_is_string(md) && !all_blank(json_string_value(md))) {
        json_error_t jerr;
        md = md_parsed = json_loads(json_string_value(md), 0, &jerr);
        if (!md) {
            free(q);
            return rl_fail(err, RL_EINPUT, "field \"metadata\": bad JSON: %s", jerr.text);
        }
    }
    json_t *fn = md && json_is_object(md) ? json_object_get(md, "func_name") : NULL;
    if (fn && json_is_string(fn) && !all_blank(json_string_value(fn))) {
        func = rl_strdup(json_string_value(fn));
        for (const char *c = func; *c; c++)
            if (!isalnum((unsigned char)*c) && *c != '_') {
                free(q);
                free(func);
                json_decref(md_parsed);
                return rl_fail(err, RL_EINPUT,
                               "field \"metadata\": func_name is not a Python name");
            }
    }
    json_decref(md_parsed);
    size_t max = opt->max_test_bytes ? opt->max_test_bytes : (size_t)1 << 30;
    int rc = lcb_tests(it, o, "public_test_cases", func, max, err);
    if (rc == 0) rc = lcb_tests(it, o, "private_test_cases", func, max, err);
    if (rc == 0 && it->n_tests == 0)
        rc = rl_fail(err, RL_EINPUT,
                     "no tests: \"public_test_cases\" and \"private_test_cases\" are both empty");
    if (rc == 0) {
        json_t *st = json_object_get(o, "starter_code");
        it->prompt = code_prompt(q, json_is_string(st) ? json_string_value(st) : NULL, opt->style);
        it->id = default_id(o, ID, it->line);
        it->meta = meta_of(o, META);
    }
    free(q);
    free(func);
    return rc;
}

// ---- reading records ---------------------------------------------------------------------------------

typedef int (*row_fn)(rl_bench_item *, json_t *, const rl_bench_opts *, rl_err *);

static int add_row(rl_bench *b, json_t *obj, int line, row_fn fn, const rl_bench_opts *opt,
                   rl_err *err) {
    if (!json_is_object(obj))
        return rl_fail(err, RL_EINPUT, "%s:%d: expected a JSON object", b->path, line);
    b->items = realloc(b->items, (size_t)(b->n + 1) * sizeof *b->items);
    if (!b->items) abort();
    rl_bench_item *it = &b->items[b->n++];
    memset(it, 0, sizeof *it);
    it->line = line;
    if (fn(it, obj, opt, err)) return rl_err_prefix(err, "%s:%d: ", b->path, line);
    return 0;
}

static int read_jsonl(rl_bench *b, FILE *f, row_fn fn, const rl_bench_opts *opt, rl_err *err) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0, rc = 0;
    while (rc == 0 && (got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        if (memchr(line, '\0', len)) {
            rc = rl_fail(err, RL_EINPUT, "%s:%d: NUL byte in the line", b->path, lineno);
            break;
        }
        const char *text = line;
        if (lineno == 1 && len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) // a UTF-8 BOM
            text += 3, len -= 3;
        if (all_blank(text)) continue;
        json_error_t jerr;
        json_t *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!obj) {
            rc = rl_fail(err, RL_EINPUT, "%s:%d: not JSON: %s (column %d)", b->path, lineno,
                         jerr.text, jerr.column);
            break;
        }
        rc = add_row(b, obj, lineno, fn, opt, err);
        json_decref(obj);
    }
    free(line);
    return rc;
}

// One CSV record (RFC 4180) from f into fields; *line counts newlines. 0 ok, 1 end of file, -1
// error (message in err).
static int csv_record(FILE *f, buf *cells, size_t **starts, int *n, int *line, const char *path,
                      rl_err *err) {
    int c = fgetc(f);
    if (c == EOF) return 1;
    cells->len = 0;
    *n = 0;
    int cap = 0;
    for (;;) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *starts = realloc(*starts, (size_t)cap * sizeof **starts);
            if (!*starts) abort();
        }
        (*starts)[(*n)++] = cells->len;
        int start_line = *line;
        if (c == '"') {
            for (;;) {
                c = fgetc(f);
                if (c == EOF)
                    return rl_fail(err, RL_EINPUT, "%s:%d: unterminated quoted field", path,
                                   start_line);
                if (c == '"') {
                    c = fgetc(f);
                    if (c != '"') break;
                }
                if (c == '\n') (*line)++;
                char ch = (char)c;
                buf_add(cells, &ch, 1);
            }
            if (c != ',' && c != '\n' && c != '\r' && c != EOF)
                return rl_fail(err, RL_EINPUT, "%s:%d: text after a closing quote", path, *line);
        } else {
            while (c != ',' && c != '\n' && c != '\r' && c != EOF) {
                if (c == '"')
                    return rl_fail(err, RL_EINPUT, "%s:%d: a quote inside an unquoted field", path,
                                   *line);
                char ch = (char)c;
                buf_add(cells, &ch, 1);
                c = fgetc(f);
            }
        }
        size_t from = (*starts)[*n - 1];
        if (cells->len > from && memchr(cells->s + from, '\0', cells->len - from))
            return rl_fail(err, RL_EINPUT, "%s:%d: NUL byte", path, *line);
        buf_add(cells, "", 1); // each cell NUL-terminated in place
        if (c == '\r') {       // CRLF, or a lone CR (old Mac files) that ends the record too
            c = fgetc(f);
            if (c != '\n' && c != EOF) {
                ungetc(c, f);
                c = '\n';
            }
        }
        if (c == '\n' || c == EOF) {
            (*line)++;
            return 0;
        }
        c = fgetc(f); // after ','
    }
}

static int read_csv(rl_bench *b, FILE *f, row_fn fn, const rl_bench_opts *opt, rl_err *err) {
    buf cells = {0};
    size_t *starts = NULL;
    int n = 0, line = 1, rc;
    char **header = NULL;
    int n_header = 0;
    rc = csv_record(f, &cells, &starts, &n, &line, b->path, err);
    if (rc == 1) rc = rl_fail(err, RL_EINPUT, "%s: empty CSV file (no header row)", b->path);
    if (rc == 0) {
        n_header = n;
        header = malloc((size_t)n * sizeof *header);
        if (!header) abort();
        for (int i = 0; i < n; i++) header[i] = rl_strdup(cells.s + starts[i]);
        if (strncmp(header[0], "\xef\xbb\xbf", 3) == 0) // a UTF-8 BOM (spreadsheet exports)
            memmove(header[0], header[0] + 3, strlen(header[0]) - 2);
    }
    while (rc == 0) {
        int at = line;
        int r = csv_record(f, &cells, &starts, &n, &line, b->path, err);
        if (r == 1) break;
        if (r < 0) {
            rc = -1;
            break;
        }
        if (n == 1 && all_blank(cells.s + starts[0])) continue; // blank line
        if (n != n_header) {
            rc = rl_fail(err, RL_EINPUT, "%s:%d: %d fields, the header has %d", b->path, at, n,
                         n_header);
            break;
        }
        json_t *obj = json_object();
        for (int i = 0; i < n; i++) {
            json_t *s = json_string(cells.s + starts[i]);
            if (!s) {
                json_decref(obj);
                rc = rl_fail(err, RL_EINPUT, "%s:%d: field \"%s\" is not valid UTF-8", b->path, at,
                             header[i]);
                break;
            }
            json_object_set_new(obj, header[i], s);
        }
        if (rc) break;
        rc = add_row(b, obj, at, fn, opt, err);
        json_decref(obj);
    }
    for (int i = 0; i < n_header; i++) free(header[i]);
    free(header);
    free(starts);
    free(cells.s);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

int rl_bench_load(rl_bench *b, rl_bench_kind kind, const char *name, const char *path,
                  const rl_bench_opts *opts, rl_err *err) {
    memset(b, 0, sizeof *b);
    b->kind = kind;
    b->name = rl_strdup(name);
    b->path = rl_strdup(path);
    static const row_fn FN[RL_BENCH_N_KINDS] = {load_math500, load_aime, load_gpqa, load_mmlu_pro,
                                                load_lcb};
    rl_bench_opts o = opts ? *opts : (rl_bench_opts){0};
    if (ends_with(path, ".parquet") || ends_with(path, ".arrow"))
        return rl_fail(err, RL_EINPUT,
                       "%s: parquet/arrow files are not read; convert to JSON lines first, e.g. "
                       "python3 -c \"import pandas as p; p.read_parquet('%s').to_json('out.jsonl', "
                       "orient='records', lines=True)\"",
                       path, path);
    FILE *f = fopen(path, "rb");
    if (!f) return rl_fail(err, RL_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    int rc = ends_with(path, ".csv") ? read_csv(b, f, FN[kind], &o, err)
                                     : read_jsonl(b, f, FN[kind], &o, err);
    fclose(f);
    if (rc == 0 && b->n == 0) rc = rl_fail(err, RL_EINPUT, "%s: no problems in the file", path);
    return rc;
}

void rl_bench_free(rl_bench *b) {
    if (!b) return;
    for (int i = 0; i < b->n; i++) {
        rl_bench_item *it = &b->items[i];
        free(it->id);
        free(it->prompt);
        free(it->answer);
        free(it->meta);
        for (int t = 0; t < it->n_tests; t++) {
            free(it->tests[t].input);
            free(it->tests[t].output);
        }
        free(it->tests);
    }
    free(b->items);
    free(b->name);
    free(b->path);
    memset(b, 0, sizeof *b);
}
