// test_verify_cli: the built `rlpipe verify` on JSON lines: output per line in order, error
// objects for malformed lines (exit 2 at the end), flags, configs (weights, gates, plugins,
// groups, max_new_tokens), and, when the math verifier is built, right / wrong / skipped answers
// and the plain answer checker (--only accuracy --extract auto).
#define _GNU_SOURCE
#include "test_util.h"

#include <jansson.h>
#include <sys/wait.h>

static char in_path[64], err_path[64], cfg_path[64];

// Runs `rlpipe verify <args>` with input on stdin; returns the exit code, fills out (malloc'ed
// stdout) and err_text (stderr, truncated).
static int run_verify(const char *args, const char *input, char **out, char *err_text,
                      size_t err_len) {
    FILE *f = fopen(in_path, "w");
    fputs(input, f);
    fclose(f);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s verify %s < %s 2> %s", test_rlpipe_bin(), args, in_path,
             err_path);
    FILE *p = popen(cmd, "r");
    size_t cap = 1 << 16, len = 0;
    *out = malloc(cap);
    size_t got;
    while ((got = fread(*out + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 4096) *out = realloc(*out, cap *= 2);
    }
    (*out)[len] = 0;
    int st = pclose(p);
    f = fopen(err_path, "r");
    size_t n = f ? fread(err_text, 1, err_len - 1, f) : 0;
    if (f) fclose(f);
    err_text[n] = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The output lines parsed as JSON; returns how many (at most max).
static int parse_lines(const char *out, json_t **lines, int max) {
    int n = 0;
    const char *p = out;
    while (*p && n < max) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        lines[n] = json_loadb(p, len, 0, NULL);
        CHECK(lines[n] != NULL, "output line %d is not JSON: %.*s", n + 1, (int)len, p);
        n++;
        p += len + (nl ? 1 : 0);
    }
    return n;
}

static double num(json_t *line, const char *obj, const char *key) {
    json_t *o = obj ? json_object_get(line, obj) : line;
    return json_number_value(json_object_get(o, key));
}

static const char *str(json_t *line, const char *obj, const char *key) {
    json_t *o = obj ? json_object_get(line, obj) : line;
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static void free_lines(json_t **lines, int n) {
    for (int i = 0; i < n; i++) json_decref(lines[i]);
}

static void write_config(const char *text) {
    FILE *f = fopen(cfg_path, "w");
    fputs(text, f);
    fclose(f);
}

// ---- tests ----------------------------------------------------------------------------------------------

static void test_flags(void) {
    char *out, err[2048];
    CHECK(run_verify("--help", "", &out, err, sizeof err) == 0, "--help exit");
    CHECK(strstr(out, "usage: rlpipe verify"), "--help text");
    free(out);
    const char *bad[][2] = {{"--bogus", "unknown"},
                            {"--extract fuzzy", "boxed or auto"},
                            {"--only nosuch", "--only nosuch"},
                            {"--threads -2", "--threads"},
                            {"--config /nonexistent/x.yaml", "/nonexistent/x.yaml"},
                            {"extra", "unexpected argument"}};
    for (int i = 0; i < 6; i++) {
        int rc = run_verify(bad[i][0], "{\"completion\": \"x\"}\n", &out, err, sizeof err);
        CHECK(rc == 2, "%s: exit %d", bad[i][0], rc);
        CHECK(out[0] == 0, "%s: wrote output '%s'", bad[i][0], out);
        CHECK(strstr(err, bad[i][1]), "%s: stderr '%s'", bad[i][0], err);
        free(out);
    }
}

static void test_only_format_and_malformed(void) {
    const char *input = "{\"completion\": \"<think>\\nx\\n</think>\\n\\\\boxed{5}\"}\n"
                        "not json\n"
                        "{\"prompt\": \"x\"}\n"
                        "{\"completion\": \"x\", \"answer\": [1]}\n"
                        "   \n"
                        "{\"completion\": \"\\\\boxed{5}\", \"answer\": 5}\n"
                        "[1, 2]\n";
    char *out, err[2048];
    int rc = run_verify("--only format", input, &out, err, sizeof err);
    CHECK(rc == 2, "malformed lines: exit %d", rc);
    CHECK(strstr(err, "4 of 6 input lines were malformed"), "stderr '%s'", err);
    json_t *l[8];
    int n = parse_lines(out, l, 8);
    CHECK(n == 6, "%d output lines for 6 non-blank input lines", n);
    if (n == 6) {
        CHECK(num(l[0], NULL, "reward") == 1.0 && num(l[0], "scores", "format") == 1.0,
              "full marks: %s", out);
        CHECK(strcmp(str(l[0], "status", "format"), "ok") == 0, "status");
        CHECK(json_object_size(json_object_get(l[0], "scores")) == 1, "only one verifier");
        CHECK(strstr(str(l[1], NULL, "error"), "line 2: not a JSON object"), "%s",
              str(l[1], NULL, "error"));
        CHECK(strstr(str(l[2], NULL, "error"), "line 3: missing \"completion\""), "%s",
              str(l[2], NULL, "error"));
        CHECK(strstr(str(l[3], NULL, "error"), "line 4: \"answer\""), "%s",
              str(l[3], NULL, "error"));
        CHECK(fabs(num(l[4], NULL, "reward") - 2.0 / 6) < 1e-9, "partial: %s", out);
        CHECK(strstr(str(l[5], NULL, "error"), "line 7: expected a JSON object"), "%s",
              str(l[5], NULL, "error"));
    }
    free_lines(l, n);
    free(out);
}

static void test_config_groups_plugin(void) {
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "reward:\n"
             "  verifiers:\n"
             "    - {name: format, weight: 0.2}\n"
             "    - {name: efficiency, weight: 0.1, mode: group}\n"
             "    - {name: kw, weight: 0.1, plugin: \"%s\", keywords: check, gate: none}\n"
             "rollout:\n"
             "  max_new_tokens: 200\n",
             KEYWORD_PLUGIN);
    write_config(cfg);
    const char *input =
        "{\"completion\": \"<think>\\ncheck\\n</think>\\n\\\\boxed{1}\", \"group\": \"a\", "
        "\"n_tokens\": 10}\n"
        "{\"completion\": \"no\", \"group\": 7}\n"
        "{\"completion\": \"<think>\\nx\\n</think>\\n\\\\boxed{1}\", \"group\": \"a\", "
        "\"tokens\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]}\n"
        "{\"completion\": \"<think>\\nx\\n</think>\\n\\\\boxed{1} check\", \"group\": \"a\", "
        "\"n_tokens\": 30}\n";
    char *out, err[2048], args[256];
    snprintf(args, sizeof args, "--config %s --threads 2", cfg_path);
    int rc = run_verify(args, input, &out, err, sizeof err);
    CHECK(rc == 0, "exit %d: %s", rc, err);
    json_t *l[4];
    int n = parse_lines(out, l, 4);
    CHECK(n == 4, "%d lines", n);
    if (n == 4) {
        // Group a: 10, 20, 30 tokens -> efficiency 1, 0.5, 0; the lone line of group 7 -> 1.
        double eff[4] = {1, 1, 0.5, 0}, fmt[4] = {1, 0, 1, 5.0 / 6}, kw[4] = {1, 0, 0, 1};
        for (int i = 0; i < 4; i++) {
            CHECK(fabs(num(l[i], "scores", "efficiency") - eff[i]) < 1e-9, "eff %d: %s", i, out);
            CHECK(fabs(num(l[i], "scores", "format") - fmt[i]) < 1e-9, "fmt %d", i);
            CHECK(fabs(num(l[i], "scores", "kw") - kw[i]) < 1e-9, "kw %d", i);
            double want = 0.2 * fmt[i] + 0.1 * eff[i] + 0.1 * kw[i];
            CHECK(fabs(num(l[i], NULL, "reward") - want) < 1e-9, "reward %d", i);
        }
        CHECK(num(l[1], NULL, "n_tokens") == 1, "estimated tokens of \"no\": ceil(2 / 4) = 1");
        CHECK(num(l[2], NULL, "n_tokens") == 20, "tokens counted");
    }
    free_lines(l, n);
    free(out);

    // max_new_tokens of the config is the default budget (budget mode: 1 - n / max).
    write_config("reward:\n  verifiers:\n    - {name: efficiency, weight: 1}\n"
                 "rollout:\n  max_new_tokens: 200\n");
    snprintf(args, sizeof args, "--config %s", cfg_path);
    rc = run_verify(args,
                    "{\"completion\": \"x\", \"n_tokens\": 50}\n"
                    "{\"completion\": \"x\", \"n_tokens\": 50, \"max_tokens\": 100}\n"
                    "{\"completion\": \"x\", \"n_tokens\": 5, \"truncated\": true}\n",
                    &out, err, sizeof err);
    n = parse_lines(out, l, 4);
    CHECK(rc == 0 && n == 3, "exit %d, %d lines: %s", rc, n, err);
    if (n == 3) {
        CHECK(fabs(num(l[0], NULL, "reward") - 0.75) < 1e-9, "config budget: %s", out);
        CHECK(fabs(num(l[1], NULL, "reward") - 0.5) < 1e-9, "line budget");
        CHECK(num(l[2], NULL, "reward") == 0, "truncated");
    }
    free_lines(l, n);
    free(out);
    rc = run_verify("--max-tokens 400 --only efficiency",
                    "{\"completion\": \"x\", \"n_tokens\": 100}\n", &out, err, sizeof err);
    n = parse_lines(out, l, 1);
    CHECK(rc == 0 && n == 1 && fabs(num(l[0], NULL, "reward") - 0.75) < 1e-9, "--max-tokens: %s",
          out);
    free_lines(l, n);
    free(out);
}

static void test_config_bad_weights(void) {
    write_config("reward:\n  verifiers:\n    - {name: accuracy, weight: 0.4}\n"
                 "    - {name: format, weight: 0.5}\n");
    char *out, err[2048], args[256];
    snprintf(args, sizeof args, "--config %s", cfg_path);
    int rc =
        run_verify(args, "{\"completion\": \"x\", \"answer\": \"1\"}\n", &out, err, sizeof err);
    CHECK(rc == 2, "exit %d", rc);
    CHECK(strstr(err, cfg_path) && strstr(err, "weigh less than accuracy"), "stderr '%s'", err);
    free(out);
    write_config("reward:\n  verifiers:\n    - {name: format, weight: 0.4, thinking: yes}\n");
    rc = run_verify(args, "", &out, err, sizeof err);
    CHECK(rc == 2 && strstr(err, "verifier 'format' (line 3, column 7)") && strstr(err, "thinking"),
          "exit %d, stderr '%s'", rc, err);
    free(out);
}

static void test_math_answers(void) {
#if HAVE_VERIFIER_MATH
    write_config("reward:\n  verifiers:\n    - {name: accuracy, weight: 0.4}\n"
                 "    - {name: format, weight: 0.2}\n    - {name: efficiency, weight: 0.1}\n");
    const char *input =
        "{\"prompt\": \"2+3?\", \"completion\": \"<think>\\n2+3=5\\n</think>\\n\\\\boxed{5}\", "
        "\"answer\": \"5\", \"n_tokens\": 100, \"max_tokens\": 200}\n"
        "{\"prompt\": \"2+3?\", \"completion\": \"<think>\\n2+3=6\\n</think>\\n\\\\boxed{6}\", "
        "\"answer\": \"5\", \"n_tokens\": 100, \"max_tokens\": 200}\n"
        "{\"prompt\": \"?\", \"completion\": \"<think>\\nx\\n</think>\\n\\\\boxed{5}\", "
        "\"answer\": \"\\\\frac{\", \"n_tokens\": 100, \"max_tokens\": 200}\n";
    char *out, err[2048], args[256];
    snprintf(args, sizeof args, "--config %s", cfg_path);
    int rc = run_verify(args, input, &out, err, sizeof err);
    json_t *l[3];
    int n = parse_lines(out, l, 3);
    CHECK(rc == 0 && n == 3, "exit %d, %d lines: %s", rc, n, err);
    if (n == 3) {
        CHECK(num(l[0], "scores", "accuracy") == 1 &&
                  fabs(num(l[0], NULL, "reward") - (0.4 + 0.2 + 0.05)) < 1e-9,
              "right: %s", out);
        CHECK(num(l[1], "scores", "accuracy") == 0 && fabs(num(l[1], NULL, "reward") - 0.2) < 1e-9,
              "wrong: gated efficiency gives nothing");
        CHECK(strcmp(str(l[2], "status", "accuracy"), "skipped") == 0 &&
                  json_is_true(json_object_get(l[2], "skipped")) &&
                  fabs(num(l[2], NULL, "reward") - 0.2) < 1e-9,
              "unparseable reference: skipped, no accuracy credit: %s", out);
    }
    free_lines(l, n);
    free(out);

    // The plain answer checker.
    const char *free_text = "{\"completion\": \"The answer is 42.\", \"answer\": \"42\"}\n";
    rc = run_verify("--only accuracy --extract auto", free_text, &out, err, sizeof err);
    n = parse_lines(out, l, 1);
    CHECK(rc == 0 && n == 1 && num(l[0], NULL, "reward") == 1.0, "auto extract: %s %s", out, err);
    free_lines(l, n);
    free(out);
    rc = run_verify("--only accuracy --extract boxed", free_text, &out, err, sizeof err);
    n = parse_lines(out, l, 1);
    CHECK(rc == 0 && n == 1 && num(l[0], NULL, "reward") == 0.0, "boxed extract: %s %s", out, err);
    free_lines(l, n);
    free(out);
#else
    fprintf(stderr, "the math verifier is not part of this build: answer checks skipped\n");
#endif
}

// Samples with tests go to the code verifier.
static void test_code_tests(void) {
#if HAVE_VERIFIER_CODE
    const char *input =
        "{\"completion\": \"```python\\na, b = map(int, input().split())\\nprint(a + b)\\n```\", "
        "\"tests\": [{\"input\": \"1 2\\n\", \"output\": \"3\\n\"}, {\"input\": \"5 5\\n\", "
        "\"output\": \"10\\n\"}]}\n"
        "{\"completion\": \"```python\\nprint(3)\\n```\", \"tests\": [{\"input\": \"1 2\\n\", "
        "\"output\": \"3\\n\"}, {\"input\": \"5 5\\n\", \"output\": \"10\\n\"}]}\n";
    char *out, err[2048];
    int rc = run_verify("--only accuracy", input, &out, err, sizeof err);
    json_t *l[2];
    int n = parse_lines(out, l, 2);
    CHECK(rc == 0 && n == 2, "exit %d, %d lines: %s", rc, n, err);
    if (n == 2 && strcmp(str(l[0], "status", "accuracy"), "error") == 0) {
        fprintf(stderr, "the code sandbox cannot run here (%s): code checks skipped\n",
                str(l[0], "details", "accuracy"));
    } else if (n == 2) {
        CHECK(num(l[0], NULL, "reward") == 1.0, "right program: %s", out);
        CHECK(num(l[1], NULL, "reward") == 0.5, "half right: %s", out);
    }
    free_lines(l, n);
    free(out);
#endif
}

static void test_default_set(void) {
#if HAVE_VERIFIER_MATH && HAVE_VERIFIER_PATH
    char *out, err[2048];
    int rc = run_verify("",
                        "{\"completion\": \"<think>\\n2+3=5\\n</think>\\n\\\\boxed{5}\", "
                        "\"answer\": \"5\"}\n",
                        &out, err, sizeof err);
    json_t *l[1];
    int n = parse_lines(out, l, 1);
    CHECK(rc == 0 && n == 1, "exit %d: %s", rc, err);
    if (n == 1) {
        json_t *scores = json_object_get(l[0], "scores");
        CHECK(json_object_size(scores) == 4 && json_object_get(scores, "path_quality"),
              "the default four: %s", out);
        CHECK(num(l[0], NULL, "reward") >= 0.4 + 0.2, "right and well formed: %s", out);
    }
    free_lines(l, n);
    free(out);
#endif
}

int main(void) {
    if (access(test_rlpipe_bin(), X_OK) != 0) {
        fprintf(stderr, "%s not built\n", test_rlpipe_bin());
        return 77;
    }
    snprintf(in_path, sizeof in_path, "/tmp/rl_verify_in_%d.jsonl", (int)getpid());
    snprintf(err_path, sizeof err_path, "/tmp/rl_verify_err_%d.txt", (int)getpid());
    snprintf(cfg_path, sizeof cfg_path, "/tmp/rl_verify_cfg_%d.yaml", (int)getpid());
    RUN(test_flags);
    RUN(test_only_format_and_malformed);
    RUN(test_config_groups_plugin);
    RUN(test_config_bad_weights);
    RUN(test_math_answers);
    RUN(test_code_tests);
    RUN(test_default_set);
    unlink(in_path);
    unlink(err_path);
    unlink(cfg_path);
    return test_summary();
}
