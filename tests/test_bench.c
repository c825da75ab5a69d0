// test_bench: benchmark evaluation. The files in tests/data/bench/ follow each public release's
// format (written by tests/data/bench/make_fixtures.py); the "model" is a responder that answers
// from the reference, right or wrong by a known pattern, so every score is known in advance.
#define _GNU_SOURCE
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "kernels/rl_error.h"
#include "rollout/benchmark.h"
#include "rollout/lcb_decode.h"
#include "test_util.h"
#include "verifiers/choice/choice.h"

#define DATA "tests/data/bench/"

// ---- helpers --------------------------------------------------------------------------------

static char tmpdir[256];

static int hexval(char c) {
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

// The hex pickle called name in pickles.txt; returns its length.
static size_t pickle_named(const char *name, unsigned char *out, size_t cap) {
    FILE *f = fopen(DATA "pickles.txt", "r");
    char line[4096];
    size_t n = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *sp = strchr(line, ' ');
        if (!sp || (size_t)(sp - line) != strlen(name) || strncmp(line, name, strlen(name)))
            continue;
        for (char *h = sp + 1; h[0] && h[1] && h[0] != '\n' && n < cap; h += 2)
            out[n++] = (unsigned char)(hexval(h[0]) << 4 | hexval(h[1]));
    }
    if (f) fclose(f);
    return n;
}

static char *b64(const unsigned char *s, size_t n) {
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(n / 3 * 4 + 8), *w = o;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        *w++ = T[v >> 18 & 63];
        *w++ = T[v >> 12 & 63];
        *w++ = i + 1 < n ? T[v >> 6 & 63] : '=';
        *w++ = i + 2 < n ? T[v & 63] : '=';
    }
    *w = 0;
    return o;
}

// Runs a shell command; stdout into *out (may be NULL), stderr into err; returns the exit code.
static int run(const char *cmd, char **out, char *err, size_t err_len) {
    char full[8192], err_path[300];
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", tmpdir);
    snprintf(full, sizeof full, "%s 2>%s", cmd, err_path);
    FILE *p = popen(full, "r");
    size_t cap = 1 << 16, len = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 4096) buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    int st = pclose(p);
    FILE *f = fopen(err_path, "r");
    size_t n = f ? fread(err, 1, err_len - 1, f) : 0;
    if (f) fclose(f);
    err[n] = 0;
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// ---- decoding LiveCodeBench's private tests -----------------------------------------------------------

static void test_pickle(void) {
    unsigned char pk[2048];
    const char *good[] = {"p2", "p3", "p4", "p5"};
    for (int i = 0; i < 4; i++) {
        size_t n = pickle_named(good[i], pk, sizeof pk);
        CHECK(n > 10, "fixture %s", good[i]);
        char *s = NULL;
        size_t len = 0;
        rl_err err = {0};
        CHECK(rl_pickle_string(pk, n, &s, &len, &err) == 0, "%s: %s", good[i], err.msg);
        CHECK(s && strcmp(s, "h\xc3\xa9llo [1]") == 0 && len == 10, "%s: got '%s'", good[i],
              s ? s : "");
        free(s);
        // Every truncation is refused, never read past.
        for (size_t cut = 0; cut < n; cut++) {
            rl_err e = {0};
            char *t = NULL;
            CHECK(rl_pickle_string(pk, cut, &t, &len, &e) != 0 && e.kind == RL_EINPUT,
                  "%s cut at %zu accepted", good[i], cut);
            free(t);
        }
        // Bytes after STOP.
        pk[n] = '.';
        rl_err e = {0};
        CHECK(rl_pickle_string(pk, n + 1, &s, &len, &e) != 0 && strstr(e.msg, "after the STOP"),
              "trailing: %s", e.msg);
    }
    size_t n = pickle_named("p4_long", pk, sizeof pk);
    char *s = NULL;
    size_t len = 0;
    rl_err err = {0};
    CHECK(rl_pickle_string(pk, n, &s, &len, &err) == 0 && len == 300 && s[0] == 'x' &&
              s[299] == 'x',
          "long: %s", err.msg);
    free(s);
    // Pickles that are anything but one str: a list, bytes, a callable (os.system), two strings.
    const char *evil[] = {"list", "bytes", "evil", "two"};
    for (int i = 0; i < 4; i++) {
        n = pickle_named(evil[i], pk, sizeof pk);
        rl_err e = {0};
        s = NULL;
        CHECK(n > 5 && rl_pickle_string(pk, n, &s, &len, &e) != 0 && strstr(e.msg, "opcode") &&
                  strstr(e.msg, "not allowed"),
              "%s: %s", evil[i], e.msg);
        free(s);
    }
    // BINUNICODE8 outside a frame (how protocol 4 writes strings too large for one), and a
    // string that is not UTF-8.
    unsigned char big[64] = {0x80, 4, 0x8d, 5, 0, 0, 0, 0, 0, 0, 0, 'a', 'b', 'c', 'd', 'e', '.'};
    CHECK(rl_pickle_string(big, 17, &s, &len, &err) == 0 && strcmp(s, "abcde") == 0, "binunicode8");
    free(s);
    unsigned char bad_utf8[] = {0x80, 4, 0x8c, 2, 0xc3, 0x28, '.'};
    rl_err e = {0};
    CHECK(rl_pickle_string(bad_utf8, sizeof bad_utf8, &s, &len, &e) != 0 && strstr(e.msg, "UTF-8"),
          "utf8: %s", e.msg);
    unsigned char proto9[] = {0x80, 9, 0x8c, 1, 'a', '.'};
    CHECK(rl_pickle_string(proto9, sizeof proto9, &s, &len, &e) != 0, "protocol 9 accepted");
    // Random corruption of a good pickle: refused or decoded, never a crash (ASan watches).
    n = pickle_named("p4", pk, sizeof pk);
    uint64_t x = 12345;
    for (int t = 0; t < 5000; t++) {
        unsigned char c[64];
        memcpy(c, pk, n);
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        c[(x >> 33) % n] = (unsigned char)(x >> 17);
        char *o = NULL;
        rl_err ee = {0};
        if (rl_pickle_string(c, n, &o, &len, &ee) == 0) CHECK(o && strlen(o) <= len, "len");
        free(o);
    }
}

static void test_base64_zlib(void) {
    const char *json = "[{\"input\": \"1 2\\n\", \"output\": \"3\\n\", \"testtype\": \"stdin\"}]";
    // pickle protocol 4 of that string, built by hand: PROTO 4, FRAME, SHORT_BINUNICODE, MEMOIZE,
    // STOP.
    unsigned char pk[256];
    size_t jl = strlen(json), n = 0;
    pk[n++] = 0x80, pk[n++] = 4, pk[n++] = 0x95;
    uint64_t frame = jl + 4;
    for (int i = 0; i < 8; i++) pk[n++] = (unsigned char)(frame >> (8 * i));
    pk[n++] = 0x8c, pk[n++] = (unsigned char)jl;
    memcpy(pk + n, json, jl);
    n += jl;
    pk[n++] = 0x94, pk[n++] = '.';
    unsigned char z[512];
    uLongf zl = sizeof z;
    CHECK(compress2(z, &zl, pk, n, 9) == Z_OK, "compress");
    char *text = b64(z, zl);
    char *got = NULL;
    rl_err err = {0};
    CHECK(rl_lcb_decode_private(text, strlen(text), 1 << 20, &got, &err) == 0 &&
              strcmp(got, json) == 0,
          "chain: %s", err.msg);
    free(got);
    // Whitespace inside base64 is ignored; a bad character or length is not.
    char spaced[1024];
    snprintf(spaced, sizeof spaced, "%.8s\n %s", text, text + 8);
    CHECK(rl_lcb_decode_private(spaced, strlen(spaced), 1 << 20, &got, &err) == 0, "spaced");
    free(got);
    rl_err e = {0};
    CHECK(rl_lcb_decode_private("abc!", 4, 1 << 20, &got, &e) != 0 && strstr(e.msg, "base64"), "%s",
          e.msg);
    CHECK(rl_lcb_decode_private("abcde", 5, 1 << 20, &got, &e) != 0 && strstr(e.msg, "base64"),
          "%s", e.msg);
    // Truncated zlib, junk after the stream, a bomb past the limit.
    unsigned char *raw;
    size_t rawn;
    CHECK(rl_zlib_inflate(z, zl - 3, 1 << 20, &raw, &rawn, &e) != 0 && strstr(e.msg, "zlib"),
          "truncated: %s", e.msg);
    unsigned char zj[600];
    memcpy(zj, z, zl);
    zj[zl] = 'x';
    CHECK(rl_zlib_inflate(zj, zl + 1, 1 << 20, &raw, &rawn, &e) != 0 && strstr(e.msg, "junk"),
          "junk: %s", e.msg);
    size_t bomb_n = 8u << 20;
    unsigned char *zeros = calloc(bomb_n, 1), *bz = malloc(compressBound(bomb_n));
    uLongf bzl = compressBound(bomb_n);
    CHECK(compress2(bz, &bzl, zeros, bomb_n, 9) == Z_OK, "compress bomb");
    CHECK(rl_zlib_inflate(bz, bzl, 1 << 20, &raw, &rawn, &e) != 0 && strstr(e.msg, "more than"),
          "bomb: %s", e.msg);
    CHECK(rl_zlib_inflate(bz, bzl, bomb_n, &raw, &rawn, &e) == 0 && rawn == bomb_n, "exact limit");
    free(raw);
    free(zeros);
    free(bz);
    free(text);
}

// ---- the choice verifier and pass@k -------------------------------------------------------------

static void test_choice(void) {
    static const struct {
        const char *text;
        int n;
        char want;
    } cases[] = {
        {"Thinking... Answer: C", 4, 'C'},
        {"answer: c", 4, 0}, // a lower-case letter is not an option letter
        {"**Answer:** (B)", 4, 'B'},
        {"__Answer__: _D_", 4, 'D'},
        {"The answer is D.", 4, 'D'},
        {"Final answer: $\\boxed{A}$", 4, 'A'},
        {"\\boxed{\\text{B}}", 4, 'B'},
        {"\\boxed{(C) 42}", 4, 'C'},
        {"Answer: A\nWait, no. Answer: B", 4, 'B'}, // the last one counts
        {"Answer: E", 4, 0},                        // not an option of a 4-option question
        {"Answer: E", 5, 'E'},
        {"Answer: J", 10, 'J'},
        {"I think it's B", 4, 0}, // no anchor: no guessing
        {"Answer: Because", 4, 0},
        {"<think>\nAnswer: A\n</think>\nSo the result.", 4, 0}, // the reasoning is not read
        {"<think>\nAnswer: A\n</think>\nAnswer: C", 4, 'C'},
        {"answerable: B", 4, 0},
        {"", 4, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char got = rl_choice_extract(cases[i].text, cases[i].n);
        CHECK(got == cases[i].want, "'%s': got %c want %c", cases[i].text, got ? got : '0',
              cases[i].want ? cases[i].want : '0');
    }
    CHECK(rl_choice_reference("(c)") == 'C' && rl_choice_reference("D") == 'D' &&
              rl_choice_reference("AB") == 0 && rl_choice_reference("1") == 0,
          "references");
    const rl_verifier_api *api = rl_verifier_choice_api();
    char why[200];
    rl_voption o = {"options", "4"};
    void *v = api->create(&o, 1, why, sizeof why);
    rl_vsample s = {.completion = "Answer: B", .answer = "B"};
    rl_vresult r;
    api->score(v, &s, &r);
    CHECK(r.status == RL_VERIFY_OK && r.score == 1.0, "right: %s", r.detail);
    s.answer = "C";
    api->score(v, &s, &r);
    CHECK(r.status == RL_VERIFY_OK && r.score == 0.0 && strstr(r.detail, "answer B"), "%s",
          r.detail);
    s.answer = "42";
    api->score(v, &s, &r);
    CHECK(r.status == RL_VERIFY_SKIPPED, "bad reference");
    api->destroy(v);
    rl_voption bad = {"options", "99"};
    CHECK(api->create(&bad, 1, why, sizeof why) == NULL && strstr(why, "options"), "%s", why);
}

static double binom(int n, int k) {
    if (k < 0 || k > n) return 0;
    double r = 1;
    for (int i = 1; i <= k; i++) r = r * (n - k + i) / i;
    return r;
}

static void test_pass_at_k(void) {
    // Against the definition: the share of k-subsets of the n samples holding a correct one.
    for (int n = 1; n <= 16; n++)
        for (int c = 0; c <= n; c++)
            for (int k = 1; k <= n; k++) {
                double want = 1.0 - binom(n - c, k) / binom(n, k);
                CHECK_NEAR(rl_pass_at_k(n, c, k), want, 1e-12, "pass@k");
            }
    CHECK_NEAR(rl_pass_at_k(8, 3, 1), 3.0 / 8, 1e-15, "pass@1 = c/n");
    CHECK(rl_pass_at_k(4, 0, 4) == 0 && rl_pass_at_k(4, 1, 4) == 1, "edges");
}

// ---- loading the five formats -----------------------------------------------------------------

static int load(rl_bench *b, const char *name, const char *file, int style, rl_err *err) {
    rl_bench_opts o = {.style = style};
    return rl_bench_load(b, rl_bench_kind_from_name(name), name, file, &o, err);
}

static void test_load_formats(void) {
    rl_bench b;
    rl_err err = {0};
    CHECK(load(&b, "math500", DATA "math500.jsonl", 0, &err) == 0, "%s", err.msg);
    CHECK(b.n == 4 && strcmp(b.items[0].answer, "\\frac{5}{6}") == 0 &&
              strcmp(b.items[0].id, "test/prealgebra/1.json") == 0,
          "math500");
    CHECK(strstr(b.items[1].prompt, "Solve for $x$") &&
              strstr(b.items[1].prompt, "put your final answer within \\boxed{}"),
          "math prompt: %s", b.items[1].prompt);
    CHECK(strstr(b.items[2].meta, "\"subject\":\"Algebra\"") &&
              strstr(b.items[2].meta, "\"level\":3"),
          "meta %s", b.items[2].meta);
    rl_bench_free(&b);

    CHECK(load(&b, "aime24", DATA "aime24.jsonl", 1, &err) == 0, "%s", err.msg);
    CHECK(b.n == 3 && strcmp(b.items[0].answer, "1") == 0 &&
              strcmp(b.items[2].answer, "216") == 0 && strcmp(b.items[1].id, "61") == 0,
          "aime");
    CHECK(strstr(b.items[0].prompt, "###"), "seed style asks for ###: %s", b.items[0].prompt);
    rl_bench_free(&b);
    CHECK(load(&b, "AIME-2024", DATA "aime24_caps.jsonl", 0, &err) == 0, "%s", err.msg);
    CHECK(b.n == 2 && strcmp(b.items[0].answer, "156") == 0 &&
              strcmp(b.items[1].id, "2024-I-2") == 0,
          "aime caps");
    rl_bench_free(&b);

    // GPQA: the CSV (quoted newlines, doubled quotes) and the JSONL read the same; the correct
    // answer is at its letter.
    rl_bench c, j;
    CHECK(load(&c, "gpqa", DATA "gpqa_diamond.csv", 0, &err) == 0, "%s", err.msg);
    CHECK(load(&j, "gpqa_diamond", DATA "gpqa_diamond.jsonl", 0, &err) == 0, "%s", err.msg);
    const char *correct[] = {"Photon", "1e-3", "Thymine"};
    CHECK(c.n == 3 && j.n == 3, "gpqa n");
    for (int i = 0; i < 3 && c.n == 3 && j.n == 3; i++) {
        CHECK(strcmp(c.items[i].prompt, j.items[i].prompt) == 0, "csv and jsonl differ at %d", i);
        CHECK(strcmp(c.items[i].answer, j.items[i].answer) == 0, "letters differ");
        char want[64];
        snprintf(want, sizeof want, "\n%s) %s", c.items[i].answer, correct[i]);
        CHECK(strstr(c.items[i].prompt, want), "problem %d: '%s' not in %s", i, want,
              c.items[i].prompt);
        CHECK(c.items[i].n_options == 4 && c.items[i].line == (i == 0   ? 2
                                                               : i == 1 ? 4
                                                                        : 6),
              "line %d", c.items[i].line);
    }
    CHECK(c.n == 3 && strstr(c.items[1].prompt, "\"ideal\" solution") &&
              strstr(c.items[2].prompt, "Guanine, or \"G\""),
          "quotes");
    CHECK(c.n == 3 && strcmp(c.items[0].id, "recA1") == 0, "id");
    rl_bench_free(&c);
    rl_bench_free(&j);

    CHECK(load(&b, "mmlu_pro", DATA "mmlu_pro.jsonl", 0, &err) == 0, "%s", err.msg);
    CHECK(b.n == 3 && b.items[0].n_options == 10 && b.items[1].n_options == 3 &&
              strcmp(b.items[2].answer, "J") == 0,
          "mmlu");
    CHECK(strstr(b.items[0].prompt, "\nC) Paris") && strstr(b.items[0].prompt, "\nJ) Dublin") &&
              strstr(b.items[1].prompt, "one of A-C"),
          "mmlu prompt %s", b.items[0].prompt);
    rl_bench_free(&b);

    CHECK(load(&b, "livecodebench", DATA "livecodebench.jsonl", 0, &err) == 0, "%s", err.msg);
    CHECK(b.n == 3 && b.items[0].n_tests == 3 && b.items[1].n_tests == 3 && b.items[2].n_tests == 2,
          "lcb tests");
    if (b.n == 3) {
        CHECK(!b.items[0].tests[0].is_assert && strcmp(b.items[0].tests[0].input, "1 2\n") == 0 &&
                  strcmp(b.items[0].tests[2].output, "0\n") == 0,
              "stdin tests (public then private)");
        CHECK(b.items[1].tests[2].is_assert && strstr(b.items[1].tests[2].input, "Solution()") &&
                  !b.items[1].tests[2].output,
              "functional test");
        CHECK(strstr(b.items[1].prompt, "class Solution:") && strstr(b.items[0].prompt, "stdin"),
              "code prompts");
        CHECK(strstr(b.items[1].meta, "\"platform\":\"leetcode\""), "%s", b.items[1].meta);
    }
    rl_bench_free(&b);
    CHECK(rl_bench_kind_from_name("nope") < 0 && rl_bench_kind_from_name("LCB") == RL_BENCH_LCB,
          "names");
}

// The GPQA permutation: deterministic, keyed by the record, uniform over the four letters.
static void test_gpqa_shuffle(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/gpqa_many.jsonl", tmpdir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 800; i++)
        fprintf(f,
                "{\"Question\": \"q%d\", \"Correct Answer\": \"right\", \"Incorrect Answer 1\": "
                "\"w1\", \"Incorrect Answer 2\": \"w2\", \"Incorrect Answer 3\": \"w3\", "
                "\"Record ID\": \"rec%d\"}\n",
                i, i);
    fclose(f);
    rl_bench a, b, s;
    rl_err err = {0};
    rl_bench_opts o0 = {0}, o1 = {.shuffle_seed = 1};
    CHECK(rl_bench_load(&a, RL_BENCH_GPQA, "gpqa", path, &o0, &err) == 0, "%s", err.msg);
    CHECK(rl_bench_load(&b, RL_BENCH_GPQA, "gpqa", path, &o0, &err) == 0, "%s", err.msg);
    CHECK(rl_bench_load(&s, RL_BENCH_GPQA, "gpqa", path, &o1, &err) == 0, "%s", err.msg);
    int count[4] = {0}, same = 0, moved = 0;
    for (int i = 0; i < a.n; i++) {
        count[a.items[i].answer[0] - 'A']++;
        same += strcmp(a.items[i].prompt, b.items[i].prompt) == 0;
        moved += strcmp(a.items[i].prompt, s.items[i].prompt) != 0;
    }
    CHECK(same == 800, "not deterministic");
    CHECK(moved > 500, "the shuffle seed changes little: %d", moved);
    for (int l = 0; l < 4; l++)
        CHECK(count[l] > 140 && count[l] < 260, "letter %c: %d", 'A' + l, count[l]);
    rl_bench_free(&a);
    rl_bench_free(&b);
    rl_bench_free(&s);
}

// Malformed and hostile rows: RL_EINPUT naming the file and the line.
static void test_bad_rows(void) {
    static const struct {
        const char *name, *file;
        int line;
        const char *says;
    } cases[] = {
        {"math500", "math_no_answer.jsonl", 3, "answer"},
        {"math500", "math_not_json.jsonl", 2, "not JSON"},
        {"math500", "math_array.jsonl", 3, "object"},
        {"aime", "aime_answer.jsonl", 1, "0..999"},
        {"aime", "aime_range.jsonl", 1, "0..999"},
        {"gpqa", "gpqa_missing.csv", 2, "Incorrect Answer 3"},
        {"gpqa", "gpqa_quote.csv", 3, "unterminated"},
        {"gpqa", "gpqa_fields.csv", 4, "fields"},
        {"mmlu_pro", "mmlu_letter.jsonl", 2, "letter"},
        {"mmlu_pro", "mmlu_index.jsonl", 1, "answer_index"},
        {"mmlu_pro", "mmlu_options.jsonl", 1, "options"},
        {"lcb", "lcb_evil_pickle.jsonl", 1, "never runs a pickle"},
        {"lcb", "lcb_list_pickle.jsonl", 2, "opcode"},
        {"lcb", "lcb_garbage.jsonl", 1, "base64"},
        {"lcb", "lcb_truncated.jsonl", 1, "zlib"},
        {"lcb", "lcb_no_func.jsonl", 1, "func_name"},
        {"lcb", "lcb_testtype.jsonl", 1, "interactive"},
        {"lcb", "lcb_func_name.jsonl", 1, "func_name"},
        {"lcb", "lcb_no_tests.jsonl", 1, "no tests"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[256], where[300];
        snprintf(path, sizeof path, DATA "bad/%s", cases[i].file);
        snprintf(where, sizeof where, "%s:%d: ", path, cases[i].line);
        rl_bench b;
        rl_err err = {0};
        int rc = load(&b, cases[i].name, path, 0, &err);
        CHECK(rc != 0 && err.kind == RL_EINPUT && strncmp(err.msg, where, strlen(where)) == 0 &&
                  strstr(err.msg, cases[i].says),
              "%s: '%s'", cases[i].file, err.msg);
        rl_bench_free(&b);
    }
    rl_bench b;
    rl_err err = {0};
    CHECK(load(&b, "math500", DATA "nope.jsonl", 0, &err) != 0 && strstr(err.msg, "cannot open"),
          "%s", err.msg);
    rl_bench_free(&b);
    CHECK(load(&b, "math500", DATA "x.parquet", 0, &err) != 0 && strstr(err.msg, "JSON lines"),
          "%s", err.msg);
    rl_bench_free(&b);
    char path[300];
    snprintf(path, sizeof path, "%s/empty.jsonl", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("\n\n", f);
    fclose(f);
    CHECK(load(&b, "math500", path, 0, &err) != 0 && strstr(err.msg, "no problems"), "%s", err.msg);
    rl_bench_free(&b);
    // A UTF-8 byte-order mark (spreadsheet and Windows exports) is skipped in both formats; CRLF
    // line ends are fine.
    snprintf(path, sizeof path, "%s/bom.jsonl", tmpdir);
    f = fopen(path, "w");
    fputs("\xef\xbb\xbf{\"problem\": \"1+1?\", \"answer\": \"2\"}\r\n", f);
    fclose(f);
    CHECK(load(&b, "math500", path, 0, &err) == 0 && b.n == 1, "bom jsonl: %s", err.msg);
    rl_bench_free(&b);
    snprintf(path, sizeof path, "%s/bom.csv", tmpdir);
    f = fopen(path, "w");
    fputs("\xef\xbb\xbfQuestion,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect "
          "Answer 3\r\nq,a,b,c,d\r\n",
          f);
    fclose(f);
    CHECK(load(&b, "gpqa", path, 0, &err) == 0 && b.n == 1, "bom csv: %s", err.msg);
    rl_bench_free(&b);
    // Hostile lines: a NUL byte, invalid UTF-8, 100k nested arrays, a 4 MB problem (accepted).
    static const struct {
        const char *bytes;
        size_t len;
        const char *says;
    } hostile[] = {
        {"{\"problem\": \"a\0b\", \"answer\": \"1\"}\n", 34, "NUL"},
        {"{\"problem\": \"\xff\xfe\", \"answer\": \"1\"}\n", 33, "not JSON"},
    };
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
        snprintf(path, sizeof path, "%s/hostile%zu.jsonl", tmpdir, i);
        f = fopen(path, "wb");
        fputs("{\"problem\": \"ok\", \"answer\": \"1\"}\n", f);
        fwrite(hostile[i].bytes, 1, hostile[i].len, f);
        fclose(f);
        char where[400];
        snprintf(where, sizeof where, "%s:2: ", path);
        CHECK(load(&b, "math500", path, 0, &err) != 0 &&
                  strncmp(err.msg, where, strlen(where)) == 0 && strstr(err.msg, hostile[i].says),
              "hostile %zu: %s", i, err.msg);
        rl_bench_free(&b);
    }
    snprintf(path, sizeof path, "%s/deep.jsonl", tmpdir);
    f = fopen(path, "wb");
    fputs("{\"problem\": ", f);
    for (int i = 0; i < 100000; i++) fputc('[', f);
    fputc('\n', f);
    fclose(f);
    CHECK(load(&b, "math500", path, 0, &err) != 0 && strstr(err.msg, ":1: not JSON"), "deep: %s",
          err.msg);
    rl_bench_free(&b);
    snprintf(path, sizeof path, "%s/big.jsonl", tmpdir);
    f = fopen(path, "wb");
    fputs("{\"problem\": \"", f);
    for (int i = 0; i < 4 << 20; i++) fputc('x', f);
    fputs("\", \"answer\": \"7\"}\n", f);
    fclose(f);
    CHECK(load(&b, "math500", path, 0, &err) == 0 && b.n == 1 &&
              strlen(b.items[0].prompt) > 4 << 20,
          "big: %s", err.msg);
    rl_bench_free(&b);
    // Lone CR line ends (old Mac exports) end records too, and lose no character.
    snprintf(path, sizeof path, "%s/cr.csv", tmpdir);
    f = fopen(path, "w");
    fputs("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\r"
          "q1,a,b,c,d\rq2,\"x\ry\",b,c,d\r",
          f);
    fclose(f);
    CHECK(load(&b, "gpqa", path, 0, &err) == 0 && b.n == 2 && strstr(b.items[0].prompt, "\nq1\n") &&
              strstr(b.items[1].prompt, ") x\ry"),
          "cr csv: %s", err.msg);
    rl_bench_free(&b);
}

// ---- rlpipe eval --benchmark, end to end ---------------------------------------------------------

static const char *const ALL_SPECS =
    "--benchmark math500=" DATA "math500.jsonl --benchmark aime24=" DATA "aime24.jsonl "
    "--benchmark gpqa=" DATA "gpqa_diamond.csv --benchmark mmlu_pro=" DATA "mmlu_pro.jsonl "
    "--benchmark lcb=" DATA "livecodebench.jsonl";

// Programs that solve the three LiveCodeBench fixtures.
static const char *code_for(const char *id) {
    if (strcmp(id, "abc000_a") == 0) return "a, b = map(int, input().split())\nprint(a + b)";
    if (strcmp(id, "1") == 0)
        return "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
               "        seen = {}\n        for i, x in enumerate(nums):\n"
               "            if target - x in seen:\n                return (seen[target - x], i)\n"
               "            seen[x] = i";
    return "print(input()[::-1])";
}

// Sample s of problem i is right when (i + s) % 3 != 0: with k = 3 every problem has 2 of 3.
static int is_right(int i, int s) {
    return (i + s) % 3 != 0;
}

// One completion for a problem, right or wrong, in the standard or the seed style.
static char *respond(const char *bench, json_t *p, int right, int seed_style, int s) {
    const char *answer = json_string_value(json_object_get(p, "answer"));
    const char *id = json_string_value(json_object_get(p, "id"));
    char *out = malloc(4096);
    const char *think = seed_style ? " Let me think.\n" : "<think>\nLet me think.\n</think>\n";
    if (!strcmp(bench, "math500") || !strcmp(bench, "aime24")) {
        if (right)
            snprintf(out, 4096, "%sThe answer is $\\boxed{%s}$.", think, answer);
        else if (s % 2) // hedging between the right answer and another one is wrong
            snprintf(out, 4096, "%s\\boxed{%s} or \\boxed{12345}", think, answer);
        else
            snprintf(out, 4096, "%sThe answer is $\\boxed{12345}$.", think);
    } else if (!strcmp(bench, "gpqa") || !strcmp(bench, "mmlu_pro")) {
        char wrong = answer[0] == 'A' ? 'B' : 'A';
        if (seed_style)
            snprintf(out, 4096, "%sSo \\boxed{%c}", think, right ? answer[0] : wrong);
        else if (right)
            snprintf(out, 4096, "%sAnswer: %c is tempting.\nAnswer: %c", think, wrong, answer[0]);
        else
            snprintf(out, 4096, "%sAnswer: %c", think, wrong);
    } else {
        if (right)
            snprintf(out, 4096, "%sHere it is.\n```python\n%s\n```", think, code_for(id));
        else if (s % 2)
            snprintf(out, 4096, "%s```python\nprint('wrong')\n```", think);
        else
            snprintf(out, 4096, "%sI cannot write code.", think);
    }
    return out;
}

static int query_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static double query_double(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    double v = NAN;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

// Writes responses for every prompt of prompts_file; returns the expected pass@1 per benchmark.
static void write_responses(const char *prompts_file, const char *out_file, int seed_style, int k) {
    FILE *in = fopen(prompts_file, "r"), *out = fopen(out_file, "w");
    char *line = NULL;
    size_t cap = 0;
    while (in && getline(&line, &cap, in) > 0) {
        json_t *p = json_loads(line, 0, NULL);
        const char *bench = json_string_value(json_object_get(p, "benchmark"));
        int idx = (int)json_integer_value(json_object_get(p, "index"));
        json_t *o = json_object(), *list = json_array();
        for (int s = 0; s < k; s++) {
            char *r = respond(bench, p, is_right(idx, s), seed_style, s);
            json_array_append_new(list, json_string(r));
            free(r);
        }
        json_object_set_new(o, "benchmark", json_string(bench));
        json_object_set_new(o, "index", json_integer(idx));
        json_object_set_new(o, "completions", list);
        char *s = json_dumps(o, JSON_COMPACT);
        fprintf(out, "%s\n", s);
        free(s);
        json_decref(o);
        json_decref(p);
    }
    free(line);
    if (in) fclose(in);
    if (out) fclose(out);
}

static void test_cli_end_to_end(int seed_style) {
    char cmd[4096], err[8192], prompts[300], responses[300], dir[300], db_path[400];
    snprintf(prompts, sizeof prompts, "%s/prompts%d.jsonl", tmpdir, seed_style);
    snprintf(responses, sizeof responses, "%s/responses%d.jsonl", tmpdir, seed_style);
    snprintf(dir, sizeof dir, "%s/run%d", tmpdir, seed_style);
    snprintf(db_path, sizeof db_path, "%s/rollouts.db", dir);
    const char *style = seed_style ? "--style seed" : "";
    snprintf(cmd, sizeof cmd,
             "%s eval configs/tiny.yaml --set run.out_dir=%s --set run.name=t %s %s "
             "--prompts-out %s",
             test_rlpipe_bin(), dir, ALL_SPECS, style, prompts);
    int rc = run(cmd, NULL, err, sizeof err);
    CHECK(rc == 0, "prompts-out: rc %d: %s", rc, err);
    struct stat st;
    CHECK(stat(dir, &st) != 0, "--prompts-out created the run directory");
    // Every prompt is there; the seed style forces the response to start with ###.
    FILE *f = fopen(prompts, "r");
    int n_lines = 0, ends_hash = 0;
    char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0) {
        json_t *p = json_loads(line, 0, NULL);
        const char *text = json_string_value(json_object_get(p, "text"));
        n_lines++;
        ends_hash += text && strlen(text) >= 3 && strcmp(text + strlen(text) - 3, "###") == 0;
        json_decref(p);
    }
    free(line);
    if (f) fclose(f);
    CHECK(n_lines == 16, "prompts: %d", n_lines);
    CHECK(ends_hash == (seed_style ? 16 : 0), "### endings: %d", ends_hash);

    write_responses(prompts, responses, seed_style, 3);
    snprintf(cmd, sizeof cmd,
             "%s eval configs/tiny.yaml --set run.out_dir=%s --set run.name=t %s %s "
             "--responses %s --pass-k 2,3",
             test_rlpipe_bin(), dir, ALL_SPECS, style, responses);
    char *out = NULL;
    rc = run(cmd, &out, err, sizeof err);
    CHECK(rc == 0, "responses: rc %d: %s", rc, err);
    // Expected, per problem index i: correct samples c_i = #{s < 3 : (i + s) % 3 != 0} = 2.
    // pass@1 = 2/3, pass@2 = 1 - C(1,2)/C(3,2) = 1, pass@3 = 1.
    static const char *const rows[] = {
        "| MATH-500       | pass@1  |   66.7% |     4 |   3 |",
        "| MATH-500       | pass@2  |  100.0% |     4 |   3 |",
        "| AIME 2024      | pass@1  |   66.7% |     3 |   3 |",
        "| GPQA Diamond   | pass@1  |   66.7% |     3 |   3 |",
        "| MMLU-Pro       | EM      |   66.7% |     3 |   3 |",
        "| MMLU-Pro       | pass@3  |  100.0% |     3 |   3 |",
        "| LiveCodeBench  | pass@1  |   66.7% |     3 |   3 |",
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        CHECK(out && strstr(out, rows[i]), "row '%s' missing from:\n%s", rows[i], out ? out : "");
    CHECK(out && strstr(out, "| benchmark      | metric  |   score |     n |   k | mean len |"),
          "header");
    free(out);

    sqlite3 *db = NULL;
    CHECK(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "open db");
    int total = (4 + 3 + 3 + 3 + 3) * 3;
    CHECK(query_int(db, "SELECT COUNT(*) FROM rollouts r JOIN runs u ON u.id = r.run_id "
                        "WHERE u.name = 't-bench'") == total,
          "rollouts");
    CHECK(query_int(db, "SELECT COUNT(*) FROM scores") == 2 * total, "scores");
    CHECK(query_int(db, "SELECT COUNT(*) FROM evals") == 5, "evals");
    // Every sample's verdict agrees with the pattern the responder followed.
    CHECK(query_int(db, "SELECT COUNT(*) FROM rollouts r JOIN scores s ON s.rollout_id = r.id "
                        "WHERE s.verifier = 'accuracy' AND s.status = 'ok' AND "
                        "s.score = ((r.prompt_idx + r.sample_idx) % 3 != 0)") == total,
          "per-sample verdicts");
    CHECK_NEAR(query_double(db, "SELECT pass_at_1 FROM evals WHERE split = 'lcb'"), 2.0 / 3, 1e-12,
               "lcb pass@1");
    CHECK_NEAR(query_double(db, "SELECT pass_at_k FROM evals WHERE split = 'gpqa'"), 1.0, 1e-12,
               "gpqa pass@k");
    CHECK_NEAR(query_double(db, "SELECT json_extract(extra, '$.pass_at.\"2\"') FROM evals "
                                "WHERE split = 'math500'"),
               1.0, 1e-12, "pass@2 in extra");
    CHECK(query_int(db, "SELECT COUNT(*) FROM evals WHERE json_extract(extra, '$.metric') = 'EM' "
                        "AND split = 'mmlu_pro'") == 1,
          "metric EM");
    CHECK(query_int(db, "SELECT COUNT(*) FROM steps WHERE phase = 'bench'") == 5, "steps");
    // Every response follows its style's format (seed: ### first and one final \boxed{}; standard:
    // R1's think block) except the two hedged math answers, which hold two boxes.
    CHECK(query_int(db, "SELECT COUNT(*) FROM scores s WHERE s.verifier = 'format' AND "
                        "s.score = 1") == total - 2,
          "format: %d",
          query_int(db, "SELECT COUNT(*) FROM scores s WHERE s.verifier = 'format' "
                        "AND s.score = 1"));
    CHECK(query_int(db, "SELECT COUNT(*) FROM scores s JOIN rollouts r ON r.id = s.rollout_id "
                        "WHERE s.verifier = 'format' AND s.score < 1 AND r.completion LIKE "
                        "'%\\boxed{12345}%' AND r.task IN ('math500', 'aime24')") == 2,
          "the hedged answers fail the format");
    CHECK(query_int(db, "SELECT COUNT(*) FROM rollouts WHERE completion LIKE '###%'") ==
              (seed_style ? total : 0),
          "the forced ### start is part of the scored completion");
    sqlite3_close(db);

    // A second invocation is a new run beside the first.
    rc = run(cmd, NULL, err, sizeof err);
    CHECK(rc == 0, "again: %s", err);
    sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL);
    CHECK(query_int(db, "SELECT COUNT(*) FROM runs WHERE name = 't-bench-2' AND status = "
                        "'finished'") == 1,
          "second run");
    sqlite3_close(db);
}

static void test_cli_standard_style(void) {
    test_cli_end_to_end(0);
}

static void test_cli_seed_style(void) {
    test_cli_end_to_end(1);
}

static void test_cli_errors(void) {
    char cmd[4096], err[8192], dir[300];
    snprintf(dir, sizeof dir, "%s/errs", tmpdir);
    static const struct {
        const char *args, *says;
    } cases[] = {
        {"--benchmark mathh=" DATA "math500.jsonl", "unknown benchmark 'mathh'"},
        {"--benchmark " DATA "math500.jsonl", "NAME=FILE"},
        {"--benchmark math500=" DATA "bad/math_no_answer.jsonl", "math_no_answer.jsonl:3:"},
        {"--benchmark lcb=" DATA "bad/lcb_evil_pickle.jsonl", "lcb_evil_pickle.jsonl:1:"},
        {"--benchmark math500=" DATA "math500.jsonl --benchmark math500=" DATA "math500.jsonl",
         "given twice"},
        {"--benchmark math500=" DATA "math500.jsonl --k 2 --pass-k 4", "--pass-k 4"},
        {"--benchmark math500=" DATA "math500.jsonl --style fancy", "standard or seed"},
        {"--benchmark math500=" DATA "math500.jsonl --top-p 0", "--top-p"},
        {"--style seed", "go with --benchmark"},
        {"--benchmark math500=" DATA "math500.jsonl --responses " DATA "aime24.jsonl",
         "\"benchmark\""},
        {"--benchmark math500=" DATA "math500.jsonl --responses RESP --set "
         "'reward.verifiers=[{name: accuracy, weight: 1, code.bogus: 1}]'",
         "bogus"},
        {"--benchmark math500=" DATA "math500.jsonl --responses RESP --set "
         "'reward.verifiers=[{name: accuracy, weight: 1, math.float_rounding: 99}]'",
         "float_rounding"},
        {"--benchmark math500=" DATA "math500.jsonl --responses RESP --k 4",
         "has 1 completion(s) per problem"},
        {"--benchmark math500=" DATA "math500.jsonl --benchmark aime=" DATA
         "aime24.jsonl --responses RESP",
         "no completion for aime problem 0"},
    };
    // The shipped benchmark config is valid.
    snprintf(cmd, sizeof cmd, "%s config check configs/examples/r1-distill-bench.yaml",
             test_rlpipe_bin());
    CHECK(run(cmd, NULL, err, sizeof err) == 0, "r1-distill-bench.yaml: %s", err);
    char resp[300];
    snprintf(resp, sizeof resp, "%s/partial.jsonl", tmpdir);
    FILE *f = fopen(resp, "w");
    for (int i = 0; i < 4; i++)
        fprintf(f,
                "{\"benchmark\": \"math500\", \"index\": %d, \"completion\": \"\\\\boxed{1}\"}\n",
                i);
    fclose(f);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char args[1024];
        const char *r = strstr(cases[i].args, "RESP");
        if (r)
            snprintf(args, sizeof args, "%.*s%s%s", (int)(r - cases[i].args), cases[i].args, resp,
                     r + 4);
        else
            snprintf(args, sizeof args, "%s", cases[i].args);
        snprintf(cmd, sizeof cmd, "%s eval configs/tiny.yaml --set run.out_dir=%s %s",
                 test_rlpipe_bin(), dir, args);
        int rc = run(cmd, NULL, err, sizeof err);
        CHECK(rc == 2 && strstr(err, cases[i].says), "%s: rc %d, stderr '%s'", args, rc, err);
        int lines = 0;
        for (const char *c = err; *c; c++) lines += *c == '\n';
        CHECK(lines == 1, "one line: '%s'", err);
        struct stat st;
        CHECK(stat(dir, &st) != 0, "%s: bad input left %s behind", args, dir);
    }
}

// R1's chat template with the seed style: the prompt ends "<think>\n###", so a response closes
// the think block and ends with one box (format preset seed with think_open: prompt).
static void test_cli_r1_template(void) {
    char cmd[4096], err[8192], dir[300], resp[300], db_path[400];
    snprintf(dir, sizeof dir, "%s/r1", tmpdir);
    snprintf(db_path, sizeof db_path, "%s/rollouts.db", dir);
    snprintf(resp, sizeof resp, "%s/r1.jsonl", tmpdir);
    const char *base = "eval configs/tiny.yaml --set tokenizer.chat_template=r1 --set run.name=r "
                       "--benchmark aime=" DATA "aime24_caps.jsonl --style seed";
    // Printing prompts (and scoring responses) runs no model, so it needs no GPU either.
    snprintf(cmd, sizeof cmd, "%s %s --set run.device=cuda --prompts-out -", test_rlpipe_bin(),
             base);
    char *out = NULL;
    CHECK(run(cmd, &out, err, sizeof err) == 0, "%s", err);
    json_t *first = out ? json_loads(out, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    const char *text = json_string_value(json_object_get(first, "text"));
    CHECK(text && strstr(text, "<\xef\xbd\x9cUser\xef\xbd\x9c>What is $12 \\times 13$?") &&
              strlen(text) > 12 && strcmp(text + strlen(text) - 11, "<think>\n###") == 0,
          "r1 text: %s", text ? text : "");
    json_decref(first);
    free(out);
    FILE *f = fopen(resp, "w");
    fprintf(f, "{\"benchmark\": \"aime\", \"index\": 0, \"completions\": "
               "[\" 12*13=156\\n</think>\\n\\\\boxed{156}\", \" 156\\n\\\\boxed{156}\"]}\n"
               "{\"benchmark\": \"aime\", \"index\": 1, \"completions\": "
               "[\" 999-1=998\\n</think>\\n\\\\boxed{998}\", \"</think>\\\\boxed{997}\"]}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s %s --set run.device=cuda --set run.out_dir=%s --responses %s",
             test_rlpipe_bin(), base, dir, resp);
    out = NULL;
    CHECK(run(cmd, &out, err, sizeof err) == 0, "%s", err);
    CHECK(out && strstr(out, "| AIME           | pass@1  |   75.0% |     2 |   2 |"), "%s",
          out ? out : "");
    free(out);
    sqlite3 *db = NULL;
    sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL);
    // Sample 0 of each problem has the whole format; sample 1 misses </think> (problem 0) or the
    // reasoning (problem 1).
    CHECK(query_int(db, "SELECT COUNT(*) FROM rollouts r JOIN scores s ON s.rollout_id = r.id "
                        "WHERE s.verifier = 'format' AND (s.score = 1) = (r.sample_idx = 0)") == 4,
          "r1 + seed format verdicts");
    sqlite3_close(db);
}

// The seed preset in a reward config, as training uses it: rlpipe verify scores fixed completions.
static void test_seed_preset_in_reward(void) {
    char cmd[4096], err[8192], cfg[300], in[300];
    snprintf(cfg, sizeof cfg, "%s/seed.yaml", tmpdir);
    snprintf(in, sizeof in, "%s/seed_in.jsonl", tmpdir);
    FILE *f = fopen(cfg, "w");
    fputs("reward:\n  verifiers:\n    - {name: accuracy, weight: 0.4}\n"
          "    - {name: format, weight: 0.2, preset: seed}\n",
          f);
    fclose(f);
    f = fopen(in, "w");
    fputs("{\"prompt\": \"1+1?\", \"answer\": \"2\", \"completion\": \"### 1+1=2 so "
          "\\\\boxed{2}\"}\n"
          "{\"prompt\": \"1+1?\", \"answer\": \"2\", \"completion\": \"1+1=2 so "
          "\\\\boxed{2}\"}\n",
          f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s verify --config %s < %s", test_rlpipe_bin(), cfg, in);
    char *out = NULL;
    CHECK(run(cmd, &out, err, sizeof err) == 0, "%s", err);
    CHECK(out && strstr(out, "\"format\":1.0") && strstr(out, "\"format\":0.6666666667") &&
              strstr(out, "failed: start"),
          "%s", out ? out : "");
    free(out);
}

// The real sampling path: a tiny random model, 2 problems x 2 samples of two benchmarks.
static void test_cli_sampling(void) {
    char cmd[4096], err[8192], dir[300], db_path[400];
    snprintf(dir, sizeof dir, "%s/sampled", tmpdir);
    snprintf(db_path, sizeof db_path, "%s/rollouts.db", dir);
    snprintf(cmd, sizeof cmd,
             "%s eval configs/tiny.yaml --set run.out_dir=%s --set run.name=s "
             "--set eval.max_new_tokens=6 --set run.threads=1 --benchmark math500=" DATA
             "math500.jsonl --benchmark gpqa=" DATA "gpqa_diamond.jsonl --k 2 --n 2 --style seed",
             test_rlpipe_bin(), dir);
    char *out = NULL;
    int rc = run(cmd, &out, err, sizeof err);
    CHECK(rc == 0, "rc %d: %s", rc, err);
    CHECK(out && strstr(out, "| MATH-500       | pass@1  |") && strstr(out, "|     2 |   2 |"),
          "table: %s", out ? out : "");
    free(out);
    sqlite3 *db = NULL;
    sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL);
    CHECK(query_int(db, "SELECT COUNT(*) FROM rollouts WHERE completion LIKE '###%' AND "
                        "n_tokens BETWEEN 1 AND 6") == 8,
          "sampled rollouts");
    CHECK(query_int(db, "SELECT COUNT(*) FROM rollouts WHERE n_prompt_tokens > 20") == 8,
          "prompt tokens");
    CHECK(query_double(db, "SELECT temperature FROM evals WHERE split = 'gpqa'") == 0.6, "T");
    sqlite3_close(db);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rlpipe_test_bench_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    RUN(test_pickle);
    RUN(test_base64_zlib);
    RUN(test_choice);
    RUN(test_pass_at_k);
    RUN(test_load_formats);
    RUN(test_gpqa_shuffle);
    RUN(test_bad_rows);
    RUN(test_cli_errors);
    RUN(test_cli_standard_style);
    RUN(test_cli_seed_style);
    RUN(test_cli_r1_template);
    RUN(test_seed_preset_in_reward);
    RUN(test_cli_sampling);
    char rm[400];
    snprintf(rm, sizeof rm, "rm -rf %s", tmpdir);
    if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
