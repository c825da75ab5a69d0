// test_sandbox: the code verifier and its process sandbox. Extraction and output comparison on
// hand-written cases; stdio and assert scoring (partial credit, all-or-nothing, early exits and
// other ways around the asserts); the hostile programs in tests/hostile/ in both isolation modes,
// each followed by checks that nothing survived, nothing was written or read outside the sandbox,
// the run directory is gone and a normal program still runs; concurrent scoring from two threads.
#define _GNU_SOURCE
#include "verifiers/code/code.h"
#include "verifiers/code/sandbox.h"

#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#define T_TIMEOUT "1.5" // seconds per test run in verifier tests (python starts in ~0.05 s)

// ---- helpers ----------------------------------------------------------------------------------

static void random_hex(char *dst, size_t n_bytes) {
    unsigned char raw[32];
    if (n_bytes > sizeof raw) n_bytes = sizeof raw;
    if (getrandom(raw, n_bytes, 0) != (ssize_t)n_bytes) abort();
    for (size_t i = 0; i < n_bytes; i++) sprintf(dst + 2 * i, "%02x", raw[i]);
}

static void *make_verifier(const char *const *kv, int n_pairs) {
    rl_voption opts[16];
    for (int i = 0; i < n_pairs; i++) opts[i] = (rl_voption){kv[2 * i], kv[2 * i + 1]};
    char err[256] = "";
    void *v = rl_verifier_code_api()->create(opts, n_pairs, err, sizeof err);
    CHECK(v != NULL, "create failed: %s", err);
    return v;
}

static void destroy_verifier(void *v) {
    rl_verifier_code_api()->destroy(v);
}

static rl_vresult score(void *v, const char *completion, const rl_vtest *tests, int n_tests) {
    rl_vsample s;
    memset(&s, 0, sizeof s);
    s.completion = completion;
    s.tests = tests;
    s.n_tests = n_tests;
    rl_vresult r;
    memset(&r, 0x5a, sizeof r);
    rl_verifier_code_api()->score(v, &s, &r);
    return r;
}

// Wraps a program the way a model would answer.
static char *answer(const char *code) {
    const char *fmt = "Let me think step by step.\n\n```python\n%s```\nThat prints the result.";
    size_t n = strlen(fmt) + strlen(code) + 1;
    char *s = malloc(n);
    if (!s) abort();
    snprintf(s, n, fmt, code);
    return s;
}

static rl_vtest stdio(const char *in, const char *out) {
    return (rl_vtest){RL_VTEST_STDIO, in, out};
}
static rl_vtest asserts(const char *code) {
    return (rl_vtest){RL_VTEST_ASSERT, code, NULL};
}

// ---- extraction and comparison ----------------------------------------------------------------

static void test_extract(void) {
    char *c;
    c = rl_code_extract("no code here");
    CHECK(c == NULL, "plain text has no block");
    c = rl_code_extract("```python\nprint(1)\n```\ntext\n```python\nprint(2)\n```\n");
    CHECK(c && strcmp(c, "print(2)\n") == 0, "last python block wins, got '%s'", c ? c : "(null)");
    free(c);
    c = rl_code_extract("```python\nprint(1)\n```\n```\nplain\n```\n");
    CHECK(c && strcmp(c, "print(1)\n") == 0, "python beats a later plain block, got '%s'",
          c ? c : "(null)");
    free(c);
    c = rl_code_extract("```\nfirst\n```\n```\nsecond\n```");
    CHECK(c && strcmp(c, "second\n") == 0, "plain fallback, last wins, got '%s'", c ? c : "(null)");
    free(c);
    c = rl_code_extract("```cpp\nint main(){}\n```\n");
    CHECK(c == NULL, "other languages are ignored");
    c = rl_code_extract("```py\nx=1\n```\n```Python3\nx=2\n```\n```cpp\nx=3\n```\n");
    CHECK(c && strcmp(c, "x=2\n") == 0, "py/Python3 tags, cpp ignored, got '%s'", c ? c : "(null)");
    free(c);
    c = rl_code_extract("```python\nprint(1)\n```\nnow the final:\n```python\nprint(2)\n");
    CHECK(c && strcmp(c, "print(1)\n") == 0, "unclosed final block ignored, got '%s'",
          c ? c : "(null)");
    free(c);
    c = rl_code_extract("1. code:\n   ```python\n   def f():\n       return 3\n   ```\n");
    CHECK(c && strcmp(c, "def f():\n    return 3\n") == 0, "fence indentation removed, got '%s'",
          c ? c : "(null)");
    free(c);
    c = rl_code_extract("````python\nprint('```')\n````\n");
    CHECK(c && strcmp(c, "print('```')\n") == 0, "4-backtick fence, got '%s'", c ? c : "(null)");
    free(c);
    c = rl_code_extract("use ```python``` inline then\n```python\nok=1\n```");
    CHECK(c && strcmp(c, "ok=1\n") == 0, "inline backticks are not a fence, got '%s'",
          c ? c : "(null)");
    free(c);
    c = rl_code_extract("```python\n```\n");
    CHECK(c && strcmp(c, "") == 0, "empty block is a block");
    free(c);
}

static void test_compare(void) {
    char why[160];
    const char *want = "1 2\n3\n";
    CHECK(rl_code_output_matches("1 2\n3\n", 6, want, why, sizeof why), "exact");
    CHECK(rl_code_output_matches("1 2   \n3\t\n\n\n", 12, want, why, sizeof why),
          "trailing spaces and empty lines");
    CHECK(rl_code_output_matches("1 2\r\n3\r\n", 8, want, why, sizeof why), "CRLF");
    CHECK(rl_code_output_matches("1 2\n3", 5, want, why, sizeof why), "no final newline");
    CHECK(!rl_code_output_matches("1 2\n", 4, want, why, sizeof why), "prefix only fails");
    CHECK(strstr(why, "1 lines, want 2") != NULL, "why: %s", why);
    CHECK(!rl_code_output_matches("1 2\n3\n4\n", 8, want, why, sizeof why), "extra line fails");
    CHECK(!rl_code_output_matches("1  2\n3\n", 7, want, why, sizeof why), "inner spaces count");
    CHECK(strstr(why, "line 1") != NULL, "why names the line: %s", why);
    CHECK(!rl_code_output_matches("\n1 2\n3\n", 7, want, why, sizeof why), "leading blank counts");
    CHECK(rl_code_output_matches("", 0, "", why, sizeof why), "empty matches empty");
    CHECK(rl_code_output_matches("\n \n", 3, "\n", why, sizeof why), "blank matches blank");
    CHECK(!rl_code_output_matches("", 0, "0\n", why, sizeof why), "empty is not 0");
    CHECK(!rl_code_output_matches("3\0x", 3, "3x", why, sizeof why), "NUL bytes kept");
}

// ---- stdio and assert scoring -----------------------------------------------------------------

static void test_stdio_scoring(void) {
    const char *kv[] = {"timeout_s", T_TIMEOUT};
    void *v = make_verifier(kv, 1);
    if (!v) return;
    // multi-line output with trailing spaces, two tests
    char *good = answer("n = int(input())\nfor i in range(n):\n    print(i, i * i, '  ')\n");
    rl_vtest t2[] = {stdio("3\n", "0 0\n1 1\n2 4\n"), stdio("1\n", "0 0")};
    rl_vresult r = score(v, good, t2, 2);
    CHECK(r.status == RL_VERIFY_OK && r.score == 1.0, "correct program: %g %d %s", r.score,
          r.status, r.detail);
    // partial credit: 2 of 3
    rl_vtest t3[] = {stdio("3\n", "0 0\n1 1\n2 4\n"), stdio("2\n", "0 0\n1 2\n"),
                     stdio("1\n", "0 0\n")};
    r = score(v, good, t3, 3);
    CHECK_NEAR(r.score, 2.0 / 3.0, 1e-12, "2 of 3");
    CHECK(r.status == RL_VERIFY_OK && strstr(r.detail, "passed 2/3") &&
              strstr(r.detail, "test 2: wrong answer"),
          "detail: %s", r.detail);
    // prefix-only output (the zip-truncation hack) fails
    char *prefix = answer("print(0, 0)\n");
    r = score(v, prefix, t2, 1);
    CHECK(r.score == 0.0 && strstr(r.detail, "1 lines, want 3"), "prefix only: %g %s", r.score,
          r.detail);
    // a runtime error after printing the right answer still fails
    char *crash = answer("print(0, 0)\nraise ValueError('late')\n");
    rl_vtest one[] = {stdio("1\n", "0 0\n")};
    r = score(v, crash, one, 1);
    CHECK(r.score == 0.0 && strstr(r.detail, "ValueError: late"), "crash: %s", r.detail);
    // no code block / no tests / malformed test
    r = score(v, "I think the answer is print(42).", one, 1);
    CHECK(r.status == RL_VERIFY_OK && r.score == 0.0 && strcmp(r.detail, "no code block") == 0,
          "no code: %d %s", r.status, r.detail);
    r = score(v, good, NULL, 0);
    CHECK(r.status == RL_VERIFY_SKIPPED && r.score == 0.0, "no tests: %d", r.status);
    rl_vtest bad[] = {{RL_VTEST_STDIO, "1\n", NULL}};
    r = score(v, good, bad, 1);
    CHECK(r.status == RL_VERIFY_SKIPPED, "malformed test: %d %s", r.status, r.detail);
    free(good), free(prefix), free(crash);
    destroy_verifier(v);

    // all-or-nothing
    const char *kv_all[] = {"timeout_s", T_TIMEOUT, "scoring", "all"};
    v = make_verifier(kv_all, 2);
    if (!v) return;
    good = answer("n = int(input())\nfor i in range(n):\n    print(i, i * i)\n");
    r = score(v, good, t3, 3);
    CHECK(r.score == 0.0 && strstr(r.detail, "not run"), "all mode, 2/3 -> 0: %s", r.detail);
    rl_vtest t3ok[] = {t3[0], t3[2]};
    r = score(v, good, t3ok, 2);
    CHECK(r.score == 1.0, "all mode, all pass -> 1: %s", r.detail);
    free(good);
    destroy_verifier(v);

    // bad options fail create; a missing python gives ERROR scores
    char err[256] = "";
    rl_voption o1[] = {{"scoring", "most"}};
    CHECK(rl_verifier_code_api()->create(o1, 1, err, sizeof err) == NULL && strstr(err, "scoring"),
          "bad scoring: %s", err);
    rl_voption o2[] = {{"timeout_seconds", "3"}};
    CHECK(rl_verifier_code_api()->create(o2, 1, err, sizeof err) == NULL && strstr(err, "unknown"),
          "unknown key: %s", err);
    rl_voption o3[] = {{"memory_mb", "-5"}};
    CHECK(rl_verifier_code_api()->create(o3, 1, err, sizeof err) == NULL, "bad memory");
    const char *kv_py[] = {"python", "/nonexistent/python3"};
    v = make_verifier(kv_py, 1);
    if (!v) return;
    good = answer("print(1)\n");
    r = score(v, good, one, 1);
    CHECK(r.status == RL_VERIFY_ERROR && r.score == 0.0 && strstr(r.detail, "python"),
          "missing python: %d %s", r.status, r.detail);
    free(good);
    destroy_verifier(v);
}

static void test_assert_scoring(void) {
    const char *kv[] = {"timeout_s", T_TIMEOUT};
    void *v = make_verifier(kv, 1);
    if (!v) return;
    rl_vtest t[] = {asserts("assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"),
                    asserts("assert add(10, 20) == 30\n"), asserts("assert add(1, 1) == 3\n")};
    struct {
        const char *code;
        double want;
        const char *why;
    } cases[] = {
        {"def add(a, b):\n    return a + b\nprint('debug output')\n", 2.0 / 3.0, "honest"},
        {"def add(a, b):\n    return 0\n", 0.0, "wrong function"},
        {"import sys\ndef add(a, b):\n    return 0\nsys.exit(0)\n", 0.0, "sys.exit(0) first"},
        {"import os\ndef add(a, b):\n    return 0\nos._exit(0)\n", 0.0, "os._exit(0) first"},
        {"def add(a, b):\n    return 0\nraise SystemExit\n", 0.0, "raise SystemExit"},
        {"import builtins\ndef add(a, b):\n    return 0\nbuiltins.exec = lambda *a, **k: None\n"
         "builtins.compile = lambda *a, **k: compile('pass', 'x', 'exec')\n",
         0.0, "monkeypatched exec/compile"},
        {"import os\ndef add(a, b):\n    return 0\nos._exit = lambda c: None\nos.write = "
         "lambda fd, b: len(b)\n",
         0.0, "monkeypatched os"},
        {"import sys, os\ndef add(a, b):\n    return 0\nprint('RLPIPE-ASSERTS-PASSED-'+'0'*32)\n"
         "sys.stdout.flush()\nos._exit(0)\n",
         0.0, "guessed mark"},
        {"import atexit, os\ndef add(a, b):\n    return 0\natexit.register(lambda: print('ok'))\n",
         0.0, "atexit"},
        {"import sys\ndef add(a, b):\n    return 0\n"
         "def tr(frame, event, arg):\n    if frame.f_code.co_filename == '<tests>':\n"
         "        frame.f_lineno = frame.f_lineno  # would jump over asserts\n    return tr\n"
         "sys.settrace(tr)\n",
         0.0, "trace hook"},
        {"def add(a, b):\n    try:\n        return a + b\n    finally:\n        pass\n"
         "if __name__ == '__main__':\n    print(add(1, 2))\n",
         2.0 / 3.0, "main block runs"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *c = answer(cases[i].code);
        rl_vresult r = score(v, c, t, 3);
        CHECK_NEAR(r.score, cases[i].want, 1e-12, cases[i].why);
        if (fabs(r.score - cases[i].want) > 1e-12) fprintf(stderr, "  detail: %s\n", r.detail);
        free(c);
    }
    // an early exit is reported as such
    char *c = answer("import sys\ndef add(a, b):\n    return a + b\nsys.exit(0)\n");
    rl_vresult r = score(v, c, t, 1);
    CHECK(r.score == 0.0 && strstr(r.detail, "exited before the asserts finished"), "detail: %s",
          r.detail);
    free(c);
    // stdio and assert tests mixed in one sample
    c = answer("def add(a, b):\n    return a + b\nprint(add(*map(int, input().split())))\n");
    rl_vtest mixed[] = {stdio("2 5\n", "7\n"), asserts("assert add(4, 4) == 8\n")};
    // the assert harness gives the program an empty stdin: input() fails there
    r = score(v, c, mixed, 2);
    CHECK_NEAR(r.score, 0.5, 1e-12, "mixed: stdio passes, assert run has no stdin");
    free(c);
    destroy_verifier(v);
}

static void test_timeouts_and_limits(void) {
    const char *kv[] = {"timeout_s", "1", "max_timeouts", "2"};
    void *v = make_verifier(kv, 2);
    if (!v) return;
    char *loop = answer("while True:\n    pass\n");
    rl_vtest t4[] = {stdio("", "1\n"), stdio("", "1\n"), stdio("", "1\n"), stdio("", "1\n")};
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    rl_vresult r = score(v, loop, t4, 4);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double took = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    CHECK(r.status == RL_VERIFY_TIMEOUT && r.score == 0.0, "loop: %d %s", r.status, r.detail);
    CHECK(strstr(r.detail, "2 not run") != NULL, "stops after 2 timeouts: %s", r.detail);
    CHECK(took < 6.0, "two timeouts took %.2f s", took); // not four
    // passes the small test, times out on the big one: OK with partial credit
    char *slow = answer("n = int(input())\nwhile n > 5:\n    pass\nprint(n)\n");
    rl_vtest t2[] = {stdio("3\n", "3\n"), stdio("9\n", "9\n")};
    r = score(v, slow, t2, 2);
    CHECK(r.status == RL_VERIFY_OK && r.score == 0.5 && strstr(r.detail, "timeout"),
          "partial + timeout: %d %g %s", r.status, r.score, r.detail);
    // output, memory and file limits show up in the detail, status OK, score 0
    struct {
        const char *code, *want;
    } lim[] = {{"while True:\n    print('y' * 100)\n", "output limit"},
               {"x = bytearray(2000 * 1024 * 1024)\n", "memory limit"},
               {"open('f', 'wb').write(b'x' * (40 << 20))\n", "file limit"}};
    for (size_t i = 0; i < sizeof lim / sizeof *lim; i++) {
        char *c = answer(lim[i].code);
        r = score(v, c, t2, 1);
        CHECK(r.status == RL_VERIFY_OK && r.score == 0.0 && strstr(r.detail, lim[i].want),
              "%s: %d %s", lim[i].want, r.status, r.detail);
        free(c);
    }
    // ... and the verifier keeps serving
    char *good = answer("print(int(input()))\n");
    r = score(v, good, t2, 2);
    CHECK(r.score == 1.0, "after limits: %s", r.detail);
    free(loop), free(slow), free(good);
    destroy_verifier(v);
}

// ---- the hostile suite ------------------------------------------------------------------------

typedef struct proc_info {
    int pid, ppid, pgrp;
    unsigned uid;
} proc_info;

static int read_procs(proc_info *out, int cap) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], buf[1024];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t k = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (k <= 0) continue;
        buf[k] = 0;
        char *rp = strrchr(buf, ')'); // the command name may hold anything
        proc_info p = {atoi(e->d_name), 0, 0, 0};
        char state;
        if (!rp || sscanf(rp + 2, "%c %d %d", &state, &p.ppid, &p.pgrp) != 3) continue;
        snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Uid: %u", &p.uid) == 1) break;
        fclose(f);
        out[n++] = p;
    }
    closedir(d);
    return n;
}

// Processes that belong to the finished run: its outside uid (when it is not ours), its process
// group (rlimits mode), or any process descending from this test. Waits up to 2 s for killed
// processes to disappear.
static int count_leftovers(const rl_sandbox_result *res, char *which, size_t which_len) {
    static proc_info procs[32768];
    int self = getpid(), left = 0;
    for (int attempt = 0; attempt < 40; attempt++) {
        int n = read_procs(procs, 32768);
        left = 0;
        which[0] = 0;
        for (int i = 0; i < n; i++) {
            const proc_info *p = &procs[i];
            if (p->pid == self) continue;
            int mine = (res->uid != getuid() && p->uid == res->uid) ||
                       (res->mode == RL_SANDBOX_RLIMITS && p->pgrp == res->pid);
            for (int up = p->ppid, hops = 0; !mine && up > 1 && hops < 64; hops++) {
                if (up == self) mine = 1;
                int next = 0;
                for (int j = 0; j < n; j++)
                    if (procs[j].pid == up) next = procs[j].ppid;
                up = next;
            }
            if (mine) {
                left++;
                size_t w = strlen(which);
                snprintf(which + w, which_len - w, " %d(uid %u)", p->pid, p->uid);
            }
        }
        if (!left) return 0;
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
    return left;
}

static int listen_local(int *port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 4) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        if (s >= 0) close(s);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return s;
}

static char *substitute(const char *text, const char *const *pairs, int n_pairs) {
    size_t cap = strlen(text) * 4 + 4096, w = 0;
    char *out = malloc(cap);
    if (!out) abort();
    for (const char *p = text; *p;) {
        int hit = 0;
        for (int i = 0; i < n_pairs && !hit; i++) {
            size_t k = strlen(pairs[2 * i]);
            if (strncmp(p, pairs[2 * i], k) == 0) {
                size_t m = strlen(pairs[2 * i + 1]);
                if (w + m + 1 >= cap) abort();
                memcpy(out + w, pairs[2 * i + 1], m);
                w += m, p += k, hit = 1;
            }
        }
        if (!hit) {
            if (w + 2 >= cap) abort();
            out[w++] = *p++;
        }
    }
    out[w] = 0;
    return out;
}

static int verdict_from_name(const char *s, size_t n) {
    static const char *const names[] = {"ok",           "runtime_error", "timeout", "memory",
                                        "output_limit", "file_limit",    "seccomp"};
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (strlen(names[i]) == n && strncmp(s, names[i], n) == 0) return i;
    return -1;
}

// The verdicts a hostile program's "# expect: a|b" line allows.
static int expected_verdict(const char *program, int verdict) {
    const char *e = strstr(program, "# expect:");
    if (!e) return 0;
    e += strlen("# expect:");
    while (*e == ' ') e++;
    while (*e && *e != '\n') {
        size_t n = strcspn(e, "|\n");
        if (verdict_from_name(e, n) == verdict) return 1;
        e += n;
        if (*e == '|') e++;
    }
    return 0;
}

static void hostile_suite(int isolation) {
    rl_sandbox_limits lim;
    rl_sandbox_default_limits(&lim);
    lim.timeout_s = 1.0;
    lim.memory_mb = 128; // the bombs hit the walls sooner
    lim.disk_mb = 16;
    lim.file_size_mb = 8;
    lim.isolation = isolation;
    char err[256];
    rl_sandbox *sb = rl_sandbox_create(&lim, err, sizeof err);
    if (!sb) { // namespaces may be unavailable (the rlimits suite still runs)
        fprintf(stderr, "  SKIPPED: %s mode unavailable here: %s\n",
                rl_sandbox_mode_name(isolation), err);
        CHECK(isolation == RL_SANDBOX_NAMESPACES, "rlimits mode must always work: %s", err);
        return;
    }
    fprintf(stderr, "  hostile suite in %s mode%s%s\n", rl_sandbox_mode_name(rl_sandbox_mode(sb)),
            rl_sandbox_mode_note(sb)[0] ? ": " : "", rl_sandbox_mode_note(sb));
    // The rlimits fallback confines the file system only through Landlock; without it (kernels
    // before 5.13) world-writable directories and world-readable files stay reachable. That is
    // the documented limit of that mode: report it instead of failing.
    int fs_confined = !strstr(rl_sandbox_mode_note(sb), "no Landlock");
    if (!fs_confined)
        fprintf(stderr, "  WEAKER MODE: no Landlock, file-system escape checks are skipped\n");

    char nonce[33], secret[64], repo[PATH_MAX], runner[32], port_s[16], secret_path[128];
    random_hex(nonce, 16);
    snprintf(secret, sizeof secret, "S3CR3T-%s", nonce);
    if (!getcwd(repo, sizeof repo)) abort();
    snprintf(runner, sizeof runner, "%d", (int)getpid());
    // what a program might hunt for: a file on the host, our environment, our descriptors
    snprintf(secret_path, sizeof secret_path, "/tmp/rlpipe_secret_%s", nonce);
    FILE *sf = fopen(secret_path, "w");
    CHECK(sf != NULL, "cannot write %s", secret_path);
    if (sf) fprintf(sf, "%s\n", secret), fclose(sf);
    chmod(secret_path, 0644);
    setenv("RLPIPE_TEST_SECRET", secret, 1);
    int leak_fd = open("/dev/null", O_RDONLY); // deliberately without O_CLOEXEC
    int port = 0, listener = listen_local(&port);
    CHECK(listener >= 0, "cannot listen on 127.0.0.1");
    snprintf(port_s, sizeof port_s, "%d", port);
    const char *subst[] = {"@NONCE@", nonce, "@REPO@", repo, "@PORT@", port_s, "@RUNNER@", runner};

    const char *escapes[] = {"/tmp/rlpipe_escape_%s",      "/tmp/rlpipe_escape_%s_daemon",
                             "/tmp/rlpipe_escape_%s_sh",   "%s/rlpipe_escape_%s",
                             "%s/rlpipe_escape_%s_daemon", "/root/rlpipe_escape_%s",
                             "/dev/shm/rlpipe_escape_%s",  "/var/tmp/rlpipe_escape_%s"};
    DIR *d = opendir("tests/hostile");
    CHECK(d != NULL, "tests/hostile not found (run from the project root)");
    char *names[64];
    int n_names = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && n_names < 64)
        if (strstr(e->d_name, ".py") && e->d_name[0] != '.') names[n_names++] = strdup(e->d_name);
    if (d) closedir(d);
    for (int i = 0; i < n_names; i++) // sort for a stable order
        for (int j = i + 1; j < n_names; j++)
            if (strcmp(names[j], names[i]) < 0) {
                char *t = names[i];
                names[i] = names[j], names[j] = t;
            }
    CHECK(n_names >= 20, "only %d hostile programs", n_names);

    for (int i = 0; i < n_names; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "tests/hostile/%s", names[i]);
        char *raw = test_read_file(path, NULL);
        CHECK(raw != NULL, "read %s", path);
        if (!raw) continue;
        char *prog = substitute(raw, subst, 4);
        rl_sandbox_job job = {.program = prog, .program_len = strlen(prog)};
        rl_sandbox_result res;
        int rc = rl_sandbox_run(sb, &job, &res);
        const char *name = names[i];
        CHECK(rc == 0, "%s: sandbox failed: %s", name, res.note);
        CHECK(expected_verdict(raw, res.verdict), "%s: verdict %s (exit %d, signal %d): %.200s",
              name, rl_sandbox_verdict_name(res.verdict), res.exit_code, res.signal, res.err);
        CHECK(!fs_confined || (!strstr(res.out, secret) && !strstr(res.err, secret)),
              "%s: the secret leaked", name);
        CHECK(res.wall_s < lim.timeout_s + 3.0, "%s: took %.2f s", name,
              res.wall_s); // deadline held
        if (strcmp(name, "daemon.py") == 0) nanosleep(&(struct timespec){0, 700000000}, NULL);
        if (strcmp(name, "env_snoop.py") == 0)
            CHECK(strstr(res.out, "no secret\nkeys: HOME,LANG,LC_ALL,MKL_NUM_THREADS,"
                                  "OMP_NUM_THREADS,OPENBLAS_NUM_THREADS,PATH,"
                                  "PYTHONDONTWRITEBYTECODE,PYTHONHASHSEED,PYTHONIOENCODING,"
                                  "TMPDIR\n"),
                  "env: %s", res.out);
        if (strcmp(name, "fd_snoop.py") == 0)
            CHECK(strcmp(res.out, "leaked: []\n") == 0, "fds: %s", res.out);
        if (strcmp(name, "read_outside.py") == 0 && fs_confined)
            CHECK(strcmp(res.out, "readable: []\n") == 0, "read: %s", res.out);
        if (strcmp(name, "socket_connect.py") == 0)
            CHECK(!strstr(res.out, "succeeded") && strstr(res.out, "netlink failed"), "net: %s",
                  res.out);
        if (strcmp(name, "kill_parent.py") == 0)
            CHECK(strstr(res.out, "still here"), "kill: %s", res.out);
        if (strcmp(name, "ptrace_unshare.py") == 0)
            CHECK(strstr(res.out, "ptrace -1") && strstr(res.out, "unshare -1") &&
                      strstr(res.out, "mount -1") && strstr(res.out, "chroot -1"),
                  "privileged: %s", res.out);

        char which[512];
        int left = count_leftovers(&res, which, sizeof which);
        CHECK(left == 0, "%s: %d processes left behind:%s", name, left, which);
        for (size_t k = 0; k < sizeof escapes / sizeof *escapes; k++) {
            char esc[PATH_MAX];
            if (escapes[k][0] == '%')
                snprintf(esc, sizeof esc, escapes[k], repo, nonce);
            else
                snprintf(esc, sizeof esc, escapes[k], nonce);
            CHECK(!fs_confined || access(esc, F_OK) != 0, "%s: wrote %s outside the sandbox", name,
                  esc);
            unlink(esc);
        }
        struct stat st;
        CHECK(res.dir[0] && stat(res.dir, &st) != 0, "%s: run directory %s not removed", name,
              res.dir);
        int conn = accept(listener, NULL, NULL);
        CHECK(conn < 0, "%s: a connection reached the test's listener", name);
        if (conn >= 0) close(conn);
        rl_sandbox_result_free(&res);

        // ... and a normal program right after it is run and judged correctly
        static const char normal[] = "print(int(input()) * 2)\n";
        rl_sandbox_job job2 = {.program = normal,
                               .program_len = sizeof normal - 1,
                               .stdin_data = "21\n",
                               .stdin_len = 3};
        rl_sandbox_run(sb, &job2, &res);
        CHECK(res.verdict == RL_SBX_OK && strcmp(res.out, "42\n") == 0, "%s: next run: %s %s", name,
              rl_sandbox_verdict_name(res.verdict), res.err);
        rl_sandbox_result_free(&res);
        free(prog);
        free(raw);
    }
    for (int i = 0; i < n_names; i++) free(names[i]);
    unsetenv("RLPIPE_TEST_SECRET");
    unlink(secret_path);
    if (listener >= 0) close(listener);
    if (leak_fd >= 0) close(leak_fd);
    rl_sandbox_destroy(sb);
}

static void test_hostile_namespaces(void) {
    hostile_suite(RL_SANDBOX_NAMESPACES);
}
static void test_hostile_rlimits(void) {
    hostile_suite(RL_SANDBOX_RLIMITS);
}

// The verifier's view of a few hostile programs: statuses, and it keeps serving.
static void test_verifier_hostile(void) {
    const char *kv[] = {"timeout_s", "1", "memory_mb", "128"};
    void *v = make_verifier(kv, 2);
    if (!v) return;
    rl_vtest t[] = {stdio("", "ok\n")};
    struct {
        const char *code;
        int status;
        const char *detail;
    } cases[] = {
        {"import time\ntime.sleep(1e9)\n", RL_VERIFY_TIMEOUT, "timeout"},
        {"import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
         RL_VERIFY_TIMEOUT, "timeout"},
        {"import os, signal\nfor pid in (os.getppid(), -1):\n    try:\n"
         "        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\nprint('ok?')\n",
         RL_VERIFY_OK, "wrong answer"},
        {"x = []\nwhile True:\n    x.append(bytearray(1 << 24))\n", RL_VERIFY_OK, "memory limit"},
    };
    char *good = answer("print('ok')\n");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *c = answer(cases[i].code);
        rl_vresult r = score(v, c, t, 1);
        CHECK(r.score == 0.0 && r.status == cases[i].status && strstr(r.detail, cases[i].detail),
              "case %zu: %g %d %s", i, r.score, r.status, r.detail);
        free(c);
        r = score(v, good, t, 1);
        CHECK(r.score == 1.0 && r.status == RL_VERIFY_OK, "normal after case %zu: %s", i, r.detail);
    }
    free(good);
    destroy_verifier(v);

    // the fallback mode says so in the detail
    const char *kv_rl[] = {"timeout_s", T_TIMEOUT, "isolation", "rlimits"};
    v = make_verifier(kv_rl, 2);
    if (!v) return;
    good = answer("print('ok')\n");
    rl_vresult r = score(v, good, t, 1);
    CHECK(r.score == 1.0 && strstr(r.detail, "[rlimits sandbox]"), "rlimits detail: %s", r.detail);
    free(good);
    destroy_verifier(v);
}

// ---- concurrency ------------------------------------------------------------------------------

typedef struct worker {
    void *v;
    int id, failures;
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    for (int k = 0; k < 4; k++) {
        char code[256], in[32], want[32];
        int x = 100 * w->id + k;
        // odd k: a wrong program; the other thread runs different numbers at the same time
        snprintf(code, sizeof code, "import time\ntime.sleep(0.05)\nprint(int(input()) * %d)\n",
                 k % 2 ? 3 : 2);
        snprintf(in, sizeof in, "%d\n", x);
        snprintf(want, sizeof want, "%d\n", 2 * x);
        char *c = answer(code);
        rl_vtest t[] = {stdio(in, want)};
        rl_vresult r = score(w->v, c, t, 1);
        double expect = k % 2 ? 0.0 : 1.0;
        if (r.score != expect || r.status != RL_VERIFY_OK) {
            fprintf(stderr, "  thread %d sample %d: %g %s\n", w->id, k, r.score, r.detail);
            w->failures++;
        }
        free(c);
    }
    return NULL;
}

static void test_concurrent(void) {
    const char *kv[] = {"timeout_s", "5"};
    void *v = make_verifier(kv, 1);
    if (!v) return;
    CHECK(rl_verifier_code_api()->thread_safe == 1, "declared thread-safe");
    worker w[2] = {{v, 1, 0}, {v, 2, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, worker_main, &w[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK(w[0].failures == 0 && w[1].failures == 0, "concurrent scoring: %d + %d failures",
          w[0].failures, w[1].failures);
    destroy_verifier(v);
}

// ---- the sandbox API directly -----------------------------------------------------------------

static void test_sandbox_api(void) {
    rl_sandbox_limits lim;
    rl_sandbox_default_limits(&lim);
    lim.timeout_s = 2.0;
    rl_sandbox_result res;
    int rc =
        rl_sandbox_run_once(&lim, "import sys\nprint(sys.stdin.read()[::-1])\n", "abc", 3, &res);
    CHECK(rc == 0 && res.verdict == RL_SBX_OK && strcmp(res.out, "cba\n") == 0, "run_once: %s",
          res.out);
    fprintf(stderr, "  default mode: %s (uid outside %u)\n", rl_sandbox_mode_name(res.mode),
            res.uid);
    rl_sandbox_result_free(&res);
    char err[256];
    rl_sandbox *sb = rl_sandbox_create(&lim, err, sizeof err);
    CHECK(sb != NULL, "create: %s", err);
    if (!sb) return;
    // stderr is captured separately; the exit code comes through
    static const char p1[] =
        "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)\n";
    rl_sandbox_job job = {.program = p1, .program_len = sizeof p1 - 1};
    rl_sandbox_run(sb, &job, &res);
    CHECK(res.verdict == RL_SBX_RUNTIME_ERROR && res.exit_code == 3 &&
              strcmp(res.out, "out\n") == 0 && strcmp(res.err, "err\n") == 0,
          "exit 3: %s %d '%s' '%s'", rl_sandbox_verdict_name(res.verdict), res.exit_code, res.out,
          res.err);
    rl_sandbox_result_free(&res);
    // large stdin is not a deadlock (the program never reads it), large stdout below the cap
    size_t big = 4 << 20;
    char *in = malloc(big);
    if (!in) abort();
    memset(in, 'z', big);
    static const char p2[] = "import sys\nsys.stdout.write('x' * 900000)\n";
    rl_sandbox_job job2 = {
        .program = p2, .program_len = sizeof p2 - 1, .stdin_data = in, .stdin_len = big};
    rl_sandbox_run(sb, &job2, &res);
    CHECK(res.verdict == RL_SBX_OK && res.out_len == 900000, "big io: %s %zu",
          rl_sandbox_verdict_name(res.verdict), res.out_len);
    rl_sandbox_result_free(&res);
    free(in);
    // limits as configured: open files, processes, address space
    static const char p3[] = "import os, resource\n"
                             "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], "
                             "resource.getrlimit(resource.RLIMIT_AS)[0] >> 20, "
                             "resource.getrlimit(resource.RLIMIT_FSIZE)[0] >> 20, "
                             "resource.getrlimit(resource.RLIMIT_CORE)[0])\n";
    rl_sandbox_job job3 = {.program = p3, .program_len = sizeof p3 - 1};
    rl_sandbox_run(sb, &job3, &res);
    CHECK(strcmp(res.out, "64 512 16 0\n") == 0, "rlimits: %s %s", res.out, res.err);
    rl_sandbox_result_free(&res);
    // a harness run: descriptor 3 carries data, read once
    static const char runner[] = "import os\nprint(os.read(3, 100).decode())\n";
    rl_sandbox_job job4 = {
        .program = "", .program_len = 0, .runner = runner, .fd3_data = "via fd3", .fd3_len = 7};
    rl_sandbox_run(sb, &job4, &res);
    CHECK(strcmp(res.out, "via fd3\n") == 0, "fd3: %s %s", res.out, res.err);
    rl_sandbox_result_free(&res);
    rl_sandbox_destroy(sb);
    // bad limits are refused with the limit's name
    lim.timeout_s = -1;
    CHECK(rl_sandbox_create(&lim, err, sizeof err) == NULL && strstr(err, "timeout_s"), "%s", err);
}

int main(void) {
    RUN(test_extract);
    RUN(test_compare);
    RUN(test_sandbox_api);
    RUN(test_stdio_scoring);
    RUN(test_assert_scoring);
    RUN(test_timeouts_and_limits);
    RUN(test_hostile_namespaces);
    RUN(test_hostile_rlimits);
    RUN(test_verifier_hostile);
    RUN(test_concurrent);
    return test_summary();
}
