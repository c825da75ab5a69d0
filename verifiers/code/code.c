// code: the code accuracy verifier. Extraction and output comparison are plain string work; the
// runs go through the sandbox. See code.h for the rules and options.
#define _GNU_SOURCE
#include "verifiers/code/code.h"
#include "verifiers/code/sandbox.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

// ---- extraction -------------------------------------------------------------------------------

typedef struct code_block {
    const char *start; // first content line
    const char *end;   // the closing fence line's start
    int indent;        // the opening fence's indentation, removed from content lines
} code_block;

static const char *line_end(const char *s) {
    const char *nl = strchr(s, '\n');
    return nl ? nl : s + strlen(s);
}

static const char *next_line(const char *s) {
    const char *e = line_end(s);
    return *e ? e + 1 : e;
}

// A fence line: optional blanks, then 3+ backticks. Returns the backtick count (0: not a fence)
// and the indentation and the info string (the rest of the line).
static int fence_at(const char *line, int *indent, const char **info, const char **info_end) {
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    int n = 0;
    while (p[n] == '`') n++;
    if (n < 3) return 0;
    *indent = (int)(p - line);
    *info = p + n;
    *info_end = line_end(p);
    return n;
}

static int closes_fence(const char *line, int ticks) {
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    int n = 0;
    while (p[n] == '`') n++;
    if (n < ticks) return 0;
    for (p += n; *p && *p != '\n'; p++)
        if (!isspace((unsigned char)*p)) return 0;
    return 1;
}

enum { LANG_PLAIN, LANG_PYTHON, LANG_OTHER };

static int info_language(const char *info, const char *end) {
    while (info < end && isspace((unsigned char)*info)) info++;
    const char *w = info;
    while (w < end && !isspace((unsigned char)*w) && *w != '{' && *w != '`') w++;
    size_t n = (size_t)(w - info);
    if (n == 0) return LANG_PLAIN;
    static const char *const py[] = {"python", "py", "python3"};
    for (size_t i = 0; i < sizeof py / sizeof *py; i++)
        if (strlen(py[i]) == n && strncasecmp(info, py[i], n) == 0) return LANG_PYTHON;
    return LANG_OTHER;
}

char *rl_code_extract(const char *text) {
    if (!text) return NULL;
    code_block python = {0}, plain = {0};
    for (const char *line = text; *line;) {
        int indent;
        const char *info, *info_end;
        int ticks = fence_at(line, &indent, &info, &info_end);
        if (!ticks || memchr(info, '`', (size_t)(info_end - info))) { // `inline` is no fence
            line = next_line(line);
            continue;
        }
        const char *body = next_line(line), *close = body;
        while (*close && !closes_fence(close, ticks)) close = next_line(close);
        if (!*close) break; // unclosed: the rest of the text is inside it
        int lang = info_language(info, info_end);
        code_block b = {body, close, indent};
        if (lang == LANG_PYTHON) python = b;
        if (lang == LANG_PLAIN) plain = b;
        line = next_line(close);
    }
    const code_block *b = python.start ? &python : plain.start ? &plain : NULL;
    if (!b) return NULL;
    size_t cap = (size_t)(b->end - b->start) + 1;
    char *code = malloc(cap), *w = code;
    if (!code) abort();
    for (const char *l = b->start; l < b->end; l = next_line(l)) {
        const char *e = line_end(l);
        if (e > b->end) e = b->end;
        for (int k = 0; k < b->indent && l < e && (*l == ' ' || *l == '\t'); k++) l++;
        memcpy(w, l, (size_t)(e - l));
        w += e - l;
        if (*e == '\n' && e < b->end) *w++ = '\n';
    }
    *w = 0;
    return code;
}

// ---- output comparison ------------------------------------------------------------------------

typedef struct text_lines {
    const char *s;
    size_t len;
} text_lines;

// Line i of t (0-based) without its trailing whitespace; returns 0 past the end.
static int line_at(text_lines t, size_t *pos, const char **ls, size_t *ll) {
    if (*pos > t.len) return 0;
    const char *p = t.s + *pos;
    const char *nl = memchr(p, '\n', t.len - *pos);
    size_t n = nl ? (size_t)(nl - p) : t.len - *pos;
    *ls = p;
    *pos += n + 1;
    while (n > 0 && isspace((unsigned char)p[n - 1])) n--;
    *ll = n;
    return 1;
}

// The number of lines once trailing empty (after trimming) lines are dropped.
static size_t count_lines(text_lines t) {
    size_t pos = 0, count = 0, last_nonempty = 0;
    const char *ls;
    size_t ll;
    while (line_at(t, &pos, &ls, &ll)) {
        count++;
        if (ll > 0) last_nonempty = count;
    }
    return last_nonempty;
}

static void quote_snippet(char *dst, size_t dst_len, const char *s, size_t n) {
    size_t w = 0;
    for (size_t i = 0; i < n && w + 5 < dst_len; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[w++] = (c >= 32 && c < 127 && c != '"') ? (char)c : '?';
    }
    if (n > 0 && w + 5 >= dst_len) dst[w++] = '.', dst[w++] = '.', dst[w++] = '.';
    dst[w] = 0;
}

int rl_code_output_matches(const char *got, size_t got_len, const char *want, char *why,
                           size_t why_len) {
    text_lines g = {got ? got : "", got ? got_len : 0};
    text_lines x = {want ? want : "", want ? strlen(want) : 0};
    size_t ng = count_lines(g), nx = count_lines(x);
    size_t pg = 0, px = 0;
    for (size_t i = 0; i < ng && i < nx; i++) {
        const char *a, *b;
        size_t la, lb;
        line_at(g, &pg, &a, &la);
        line_at(x, &px, &b, &lb);
        if (la == lb && memcmp(a, b, la) == 0) continue;
        if (why) {
            char qa[48], qb[48];
            quote_snippet(qa, sizeof qa, a, la);
            quote_snippet(qb, sizeof qb, b, lb);
            snprintf(why, why_len, "line %zu: got \"%s\", want \"%s\"", i + 1, qa, qb);
        }
        return 0;
    }
    if (ng != nx) {
        if (why) snprintf(why, why_len, "%zu lines, want %zu", ng, nx);
        return 0;
    }
    return 1;
}

// ---- the verifier -----------------------------------------------------------------------------

typedef struct code_verifier {
    rl_sandbox *sb; // NULL when python or the sandbox is unusable (broken says why)
    char broken[RL_VDETAIL_MAX];
    int all_or_nothing;
    int max_tests;    // 0: all
    int max_timeouts; // stop running tests after this many timed out
} code_verifier;

// The assert harness, run as `python3 -c`. It reads "<mark>\n<assert code>" from fd 3 and closes
// it before the program runs, compiles the asserts first, holds exec/compile/os._exit/os.write and
// the trace setters in locals (the program may monkeypatch builtins, os and sys), runs the
// program and then the asserts in one namespace, and writes the mark only if both returned. A
// program that exits early (sys.exit, os._exit, raise SystemExit) never reaches the mark.
static const char assert_harness[] =
    "import os as _os, sys as _sys\n"
    "def _rlpipe_harness():\n"
    "    read, close, write, exit_ = _os.read, _os.close, _os.write, _os._exit\n"
    "    settrace, setprofile, compile_, exec_ = _sys.settrace, _sys.setprofile, compile, exec\n"
    "    chunks = []\n"
    "    while True:\n"
    "        b = read(3, 65536)\n"
    "        if not b:\n"
    "            break\n"
    "        chunks.append(b)\n"
    "    close(3)\n"
    "    blob = b''.join(chunks)\n"
    "    cut = blob.index(b'\\n')\n"
    "    mark = blob[:cut]\n"
    "    tests = compile_(blob[cut + 1:], '<tests>', 'exec')\n"
    "    del blob, chunks\n"
    "    with open('solution.py', 'rb') as f:\n"
    "        program = compile_(f.read(), 'solution.py', 'exec')\n"
    "    scope = {'__name__': '__main__', '__file__': 'solution.py',\n"
    "             '__builtins__': __builtins__}\n"
    "    exec_(program, scope)\n"
    "    settrace(None)\n"
    "    setprofile(None)\n"
    "    exec_(tests, scope)\n"
    "    for stream in (_sys.stdout, _sys.__stdout__):\n"
    "        try:\n"
    "            stream.flush()\n"
    "        except BaseException:\n"
    "            pass\n"
    "    write(1, b'\\n' + mark + b'\\n')\n"
    "    exit_(0)\n"
    "_rlpipe_harness()\n";

static int parse_double(const char *v, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d)) return -1;
    *out = d;
    return 0;
}

static int parse_int(const char *v, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

static void *code_create(const rl_voption *opts, int32_t n_opts, char *err, size_t err_len) {
    code_verifier *v = calloc(1, sizeof *v);
    if (!v) abort();
    v->max_timeouts = 2;
    rl_sandbox_limits lim;
    rl_sandbox_default_limits(&lim);
    for (int32_t i = 0; i < n_opts; i++) {
        const char *k = opts[i].key, *val = opts[i].value ? opts[i].value : "";
        long long x = 0;
        int bad = 0;
        if (strcmp(k, "scoring") == 0) {
            if (strcmp(val, "fraction") == 0)
                v->all_or_nothing = 0;
            else if (strcmp(val, "all") == 0)
                v->all_or_nothing = 1;
            else
                bad = 1;
        } else if (strcmp(k, "timeout_s") == 0) {
            bad = parse_double(val, &lim.timeout_s);
        } else if (strcmp(k, "memory_mb") == 0) {
            bad = parse_int(val, 0, 1LL << 40, &x), lim.memory_mb = x;
        } else if (strcmp(k, "stack_mb") == 0) {
            bad = parse_int(val, 0, 1LL << 40, &x), lim.stack_mb = x;
        } else if (strcmp(k, "max_output_kb") == 0) {
            bad = parse_int(val, 0, 1LL << 40, &x), lim.max_output_kb = x;
        } else if (strcmp(k, "file_size_mb") == 0) {
            bad = parse_int(val, 0, 1LL << 40, &x), lim.file_size_mb = x;
        } else if (strcmp(k, "disk_mb") == 0) {
            bad = parse_int(val, 0, 1LL << 40, &x), lim.disk_mb = x;
        } else if (strcmp(k, "nproc") == 0) {
            bad = parse_int(val, 0, 1LL << 30, &x), lim.nproc = (int32_t)x;
        } else if (strcmp(k, "nofile") == 0) {
            bad = parse_int(val, 0, 1LL << 30, &x), lim.nofile = (int32_t)x;
        } else if (strcmp(k, "python") == 0) {
            lim.python = val;
            bad = !*val;
        } else if (strcmp(k, "sandbox_dir") == 0) {
            lim.base_dir = val;
            bad = !*val;
        } else if (strcmp(k, "ro_paths") == 0) {
            lim.ro_paths = val;
        } else if (strcmp(k, "isolation") == 0) {
            if (strcmp(val, "auto") == 0)
                lim.isolation = RL_SANDBOX_AUTO;
            else if (strcmp(val, "namespaces") == 0)
                lim.isolation = RL_SANDBOX_NAMESPACES;
            else if (strcmp(val, "rlimits") == 0)
                lim.isolation = RL_SANDBOX_RLIMITS;
            else
                bad = 1;
        } else if (strcmp(k, "max_tests") == 0) {
            bad = parse_int(val, 0, 1 << 20, &x), v->max_tests = (int)x;
        } else if (strcmp(k, "max_timeouts") == 0) {
            bad = parse_int(val, 1, 1 << 20, &x), v->max_timeouts = (int)x;
        } else {
            snprintf(err, err_len,
                     "code verifier: unknown option '%s' (known: scoring, timeout_s, memory_mb, "
                     "stack_mb, max_output_kb, file_size_mb, disk_mb, nproc, nofile, python, "
                     "isolation, sandbox_dir, ro_paths, max_tests, max_timeouts)",
                     k);
            free(v);
            return NULL;
        }
        if (bad) {
            snprintf(err, err_len, "code verifier: bad value '%s' for option '%s'", val, k);
            free(v);
            return NULL;
        }
    }
    char why[RL_VDETAIL_MAX];
    if (rl_sandbox_check_limits(&lim, why, sizeof why) != 0) {
        snprintf(err, err_len, "code verifier: %s", why);
        free(v);
        return NULL;
    }
    // A machine without python (or without any working sandbox) still gets a verifier: every
    // sample then reports ERROR with the reason, as the ABI asks.
    v->sb = rl_sandbox_create(&lim, why, sizeof why);
    if (!v->sb) snprintf(v->broken, sizeof v->broken, "%s", why);
    return v;
}

static void code_destroy(void *self) {
    code_verifier *v = self;
    if (!v) return;
    rl_sandbox_destroy(v->sb);
    free(v);
}

// The last non-empty line of stderr, for "runtime error: ZeroDivisionError: ..." details.
static void last_line(const char *text, char *dst, size_t dst_len) {
    const char *end = text + strlen(text);
    while (end > text && isspace((unsigned char)end[-1])) end--;
    const char *start = end;
    while (start > text && start[-1] != '\n') start--;
    quote_snippet(dst, dst_len, start, (size_t)(end - start));
}

// The assert test's mark must be the last non-empty line of stdout.
static int ends_with_mark(const char *out, size_t len, const char *mark) {
    while (len > 0 && isspace((unsigned char)out[len - 1])) len--;
    size_t m = strlen(mark);
    if (len < m || memcmp(out + len - m, mark, m) != 0) return 0;
    return len == m || out[len - m - 1] == '\n';
}

static int make_mark(char *mark, size_t len) {
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    int w = snprintf(mark, len, "RLPIPE-ASSERTS-PASSED-");
    for (size_t i = 0; i < sizeof raw && (size_t)w + 3 < len; i++)
        w += snprintf(mark + w, len - (size_t)w, "%02x", raw[i]);
    return 0;
}

typedef struct tally {
    int passed, ran, wrong, runtime, timeout, memory, output, file, seccomp;
    int first_fail; // 1-based test index, 0: none
    char first_why[RL_VDETAIL_MAX];
} tally;

static void count_failure(tally *t, int test, int verdict, const char *why) {
    switch (verdict) {
    case RL_SBX_OK:
        t->wrong++;
        break;
    case RL_SBX_TIMEOUT:
        t->timeout++;
        break;
    case RL_SBX_MEMORY:
        t->memory++;
        break;
    case RL_SBX_OUTPUT_LIMIT:
        t->output++;
        break;
    case RL_SBX_FILE_LIMIT:
        t->file++;
        break;
    case RL_SBX_SECCOMP:
        t->seccomp++;
        break;
    default:
        t->runtime++;
        break;
    }
    if (!t->first_fail) {
        t->first_fail = test;
        snprintf(t->first_why, sizeof t->first_why, "%s", why);
    }
}

// Runs test i and returns 1 if it passed; on failure fills why. -1: the sandbox failed.
static int run_test(const code_verifier *v, const char *code, const rl_vtest *test, int *verdict,
                    char *why, size_t why_len) {
    char mark[64];
    char *fd3 = NULL;
    rl_sandbox_job job = {.program = code, .program_len = strlen(code)};
    if (test->kind == RL_VTEST_STDIO) {
        job.stdin_data = test->input ? test->input : "";
        job.stdin_len = strlen(job.stdin_data);
    } else {
        if (make_mark(mark, sizeof mark) != 0) {
            snprintf(why, why_len, "getrandom failed");
            return -1;
        }
        size_t ml = strlen(mark), tl = strlen(test->input);
        fd3 = malloc(ml + 1 + tl + 1);
        if (!fd3) abort();
        memcpy(fd3, mark, ml);
        fd3[ml] = '\n';
        memcpy(fd3 + ml + 1, test->input, tl + 1);
        job.runner = assert_harness;
        job.fd3_data = fd3;
        job.fd3_len = ml + 1 + tl;
    }
    rl_sandbox_result res;
    int rc = rl_sandbox_run(v->sb, &job, &res);
    free(fd3);
    *verdict = res.verdict;
    int passed = 0;
    if (rc != 0) {
        snprintf(why, why_len, "sandbox: %s", res.note);
        rl_sandbox_result_free(&res);
        return -1;
    }
    if (res.verdict == RL_SBX_OK) {
        if (test->kind == RL_VTEST_STDIO) {
            char cmp[160];
            passed = rl_code_output_matches(res.out, res.out_len, test->output, cmp, sizeof cmp);
            if (!passed) snprintf(why, why_len, "wrong answer (%s)", cmp);
        } else {
            passed = ends_with_mark(res.out, res.out_len, mark);
            if (!passed) snprintf(why, why_len, "exited before the asserts finished");
        }
    } else if (res.verdict == RL_SBX_TIMEOUT) {
        snprintf(why, why_len, "timeout (%.1f s)", v->sb ? res.wall_s : 0.0);
    } else {
        char last[96];
        last_line(res.err, last, sizeof last);
        if (res.signal)
            snprintf(why, why_len, "%s (signal %d)", rl_sandbox_verdict_name(res.verdict),
                     res.signal);
        else if (last[0])
            snprintf(why, why_len, "%s: %s", rl_sandbox_verdict_name(res.verdict), last);
        else
            snprintf(why, why_len, "%s (exit %d)", rl_sandbox_verdict_name(res.verdict),
                     res.exit_code);
    }
    rl_sandbox_result_free(&res);
    return passed;
}

// Appends src to the NUL-terminated dst, cutting it where dst is full (details are one short line).
static void append_text(char *dst, size_t cap, const char *src) {
    size_t used = strlen(dst), n = strlen(src);
    if (used + 1 >= cap) return;
    if (n > cap - 1 - used) n = cap - 1 - used;
    memcpy(dst + used, src, n);
    dst[used + n] = 0;
}

static void finish_detail(const code_verifier *v, rl_vresult *out, const char *text) {
    int fallback = v->sb && rl_sandbox_mode(v->sb) == RL_SANDBOX_RLIMITS;
    out->detail[0] = 0;
    append_text(out->detail, sizeof out->detail, text);
    if (fallback) append_text(out->detail, sizeof out->detail, " [rlimits sandbox]");
}

static void code_score(void *self, const rl_vsample *s, rl_vresult *out) {
    code_verifier *v = self;
    out->score = 0.0;
    out->status = RL_VERIFY_OK;
    out->detail[0] = 0;
    if (!s->tests || s->n_tests <= 0) {
        out->status = RL_VERIFY_SKIPPED;
        snprintf(out->detail, sizeof out->detail, "no tests");
        return;
    }
    for (int32_t i = 0; i < s->n_tests; i++) {
        const rl_vtest *t = &s->tests[i];
        int ok =
            (t->kind == RL_VTEST_STDIO && t->output) || (t->kind == RL_VTEST_ASSERT && t->input);
        if (!ok) {
            out->status = RL_VERIFY_SKIPPED;
            snprintf(out->detail, sizeof out->detail, "test %d is malformed (kind %d)", (int)i + 1,
                     (int)t->kind);
            return;
        }
    }
    char *code = rl_code_extract(s->completion);
    if (!code) {
        finish_detail(v, out, "no code block");
        return;
    }
    if (!v->sb) {
        out->status = RL_VERIFY_ERROR;
        snprintf(out->detail, sizeof out->detail, "%s", v->broken);
        free(code);
        return;
    }
    int n = s->n_tests;
    if (v->max_tests > 0 && n > v->max_tests) n = v->max_tests;
    tally t;
    memset(&t, 0, sizeof t);
    for (int i = 0; i < n; i++) {
        char why[RL_VDETAIL_MAX] = "";
        int verdict = RL_SBX_OK;
        int passed = run_test(v, code, &s->tests[i], &verdict, why, sizeof why);
        if (passed < 0) {
            out->status = RL_VERIFY_ERROR;
            snprintf(out->detail, sizeof out->detail, "test %d: %s", i + 1, why);
            free(code);
            return;
        }
        t.ran++;
        if (passed) {
            t.passed++;
            continue;
        }
        count_failure(&t, i + 1, verdict, why);
        if (v->all_or_nothing || t.timeout >= v->max_timeouts) break; // the rest cannot matter
    }
    free(code);
    int all = t.passed == n;
    out->score = v->all_or_nothing ? (all ? 1.0 : 0.0) : (double)t.passed / (double)n;
    if (t.passed == 0 && t.ran > 0 && t.timeout == t.ran) out->status = RL_VERIFY_TIMEOUT;
    char text[RL_VDETAIL_MAX];
    int w = snprintf(text, sizeof text, "passed %d/%d", t.passed, n);
    if (t.ran < n && w < (int)sizeof text)
        w += snprintf(text + w, sizeof text - (size_t)w, " (%d not run)", n - t.ran);
    if (t.first_fail && w < (int)sizeof text) {
        snprintf(text + w, sizeof text - (size_t)w, "; test %d: ", t.first_fail);
        append_text(text, sizeof text, t.first_why);
    }
    finish_detail(v, out, text);
}

static const rl_verifier_api code_api = {
    .abi_version = RL_VERIFIER_ABI_VERSION,
    .name = "code",
    .thread_safe = 1,
    .create = code_create,
    .score = code_score,
    .score_group = NULL,
    .destroy = code_destroy,
};

const rl_verifier_api *rl_verifier_code_api(void) {
    return &code_api;
}
