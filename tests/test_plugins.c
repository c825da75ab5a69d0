// test_plugins: verifiers from outside the binary, through the registry. The example C plugin
// and the example Python program end to end; plugins refused for a wrong ABI, a missing entry
// point or a missing file; line-protocol programs that crash, hang (also ignoring SIGTERM), print
// garbage, reply twice, close their output or reply with bad fields: each costs one sample an
// ERROR or TIMEOUT, later requests work, and no process or zombie is left behind.
//
// The misbehaving programs are this test binary itself, run as `test_plugins --child MODE`.
#define _GNU_SOURCE
#include "reward/reward.h"

#include "kernels/rl_error.h"
#include "test_util.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

// ---- the child: a line-protocol verifier with scripted misbehaviour -----------------------------------

// mode "multi": the completion says what to do (crash, hang, hang_noterm, garbage, noscore,
// range, twice, close, skipstatus; else reply score=<x> or 0.5). mode "crash2": exits on every
// second request. Replies carry "pid=<pid>" in the detail.
static int child_main(const char *mode) {
    char *line = NULL;
    size_t cap = 0;
    int count = 0;
    pid_t pid = getpid();
    while (getline(&line, &cap, stdin) > 0) {
        count++;
        json_t *req = json_loads(line, 0, NULL);
        const char *c = json_string_value(json_object_get(req, "completion"));
        if (!c) c = "";
        if (strcmp(mode, "crash2") == 0 && count % 2 == 0) _exit(3);
        if (strstr(c, "crash")) _exit(4);
        if (strstr(c, "hang_noterm")) signal(SIGTERM, SIG_IGN);
        if (strstr(c, "hang"))
            for (;;) pause();
        if (strstr(c, "garbage")) {
            printf("this is not json\n");
        } else if (strstr(c, "noscore")) {
            printf("{\"status\": \"ok\", \"detail\": \"pid=%d\"}\n", (int)pid);
        } else if (strstr(c, "range")) {
            printf("{\"score\": 1.5, \"detail\": \"pid=%d\"}\n", (int)pid);
        } else if (strstr(c, "skipstatus")) {
            printf("{\"score\": 0.7, \"status\": \"skipped\", \"detail\": \"pid=%d\"}\n", (int)pid);
        } else if (strstr(c, "close")) {
            fflush(stdout);
            shutdown(1, SHUT_WR);
            for (;;) pause();
        } else {
            const char *sc = strstr(c, "score=");
            double score = sc ? strtod(sc + 6, NULL) : 0.5;
            json_t *opts = json_object_get(req, "options");
            const char *o = json_string_value(json_object_get(opts, "tag"));
            printf("{\"score\": %g, \"detail\": \"pid=%d n=%d tag=%s n_tokens=%d\"}\n", score,
                   (int)pid, count, o ? o : "-",
                   (int)json_integer_value(json_object_get(req, "n_tokens")));
            if (strstr(c, "twice")) printf("{\"score\": 0.1}\n");
        }
        fflush(stdout);
        json_decref(req);
    }
    _exit(0); // skip the sanitizers' exit-time checks in the child
}

// ---- helpers ----------------------------------------------------------------------------------------

static char self_exe[4096];

static rl_reward *make_command(const char *command, const char *timeout_s, int threads,
                               rl_err *err) {
    rl_verifier_spec s = {.name = rl_strdup("prog"), .weight = 1.0, .command = rl_strdup(command)};
    if (timeout_s) rl_verifier_spec_set_option(&s, "timeout_s", timeout_s);
    rl_verifier_spec_set_option(&s, "tag", "hello");
    rl_reward_opts o = {.threads = threads};
    rl_reward *rw = NULL;
    rl_reward_create(&rw, &s, 1, &o, err);
    rl_verifier_spec_free(&s);
    return rw;
}

static int pid_of(const rl_vresult *r) {
    const char *p = strstr(r->detail, "pid=");
    return p ? atoi(p + 4) : 0;
}

// 1 when the process is gone (or a zombie that is not ours to reap).
static int gone(int pid) {
    if (pid <= 0) return 1;
    if (kill(pid, 0) == 0) {
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        buf[n] = 0;
        const char *close_paren = strrchr(buf, ')');
        return close_paren && close_paren[2] == 'Z';
    }
    return errno == ESRCH;
}

static int no_children(void) {
    int st;
    return waitpid(-1, &st, WNOHANG) == -1 && errno == ECHILD;
}

static void score_texts(rl_reward *rw, const char *const *texts, int n, rl_vresult *res) {
    rl_vsample s[32];
    double reward[32];
    rl_err err = {0};
    for (int i = 0; i < n; i++)
        s[i] = (rl_vsample){.prompt = "p", .completion = texts[i], .n_tokens = 3, .max_tokens = 9};
    CHECK(rl_reward_score(rw, s, NULL, n, res, reward, NULL, &err) == 0, "%s", err.msg);
}

// ---- shared-object plugins ------------------------------------------------------------------------

static void test_keyword_plugin(void) {
    rl_verifier_spec s = {
        .name = rl_strdup("keyword"), .weight = 1.0, .plugin = rl_strdup(KEYWORD_PLUGIN)};
    rl_verifier_spec_set_option(&s, "keywords", "therefore, Check");
    rl_verifier_spec_set_option(&s, "where", "answer");
    rl_reward *rw = NULL;
    rl_err err = {0};
    CHECK(rl_reward_create(&rw, &s, 1, NULL, &err) == 0, "%s", err.msg);
    rl_verifier_spec_free(&s);
    if (!rw) return;
    const char *texts[] = {"<think>\ntherefore\n</think>\nTherefore, let me CHECK: 5",
                           "<think>\ntherefore check\n</think>\nthe answer is 5",
                           "<think>\n</think>\nthus, therefore"};
    rl_vresult res[3];
    score_texts(rw, texts, 3, res);
    CHECK(res[0].status == RL_VERIFY_OK && res[0].score == 1.0, "both: %g %s", res[0].score,
          res[0].detail);
    CHECK(res[1].score == 0.0, "only in the reasoning: %g", res[1].score);
    CHECK(res[2].score == 0.5 && strstr(res[2].detail, "missing: Check"), "half: %g %s",
          res[2].score, res[2].detail);
    rl_reward_free(rw);

    // Its own option errors reach the user with the verifier named.
    rl_verifier_spec b = {.name = rl_strdup("keyword"),
                          .weight = 1.0,
                          .plugin = rl_strdup(KEYWORD_PLUGIN),
                          .line = 4,
                          .column = 7};
    CHECK(rl_reward_create(&rw, &b, 1, NULL, &err) != 0 &&
              strstr(err.msg, "verifier 'keyword' (line 4, column 7): option keywords"),
          "'%s'", err.msg);
    rl_verifier_spec_free(&b);
}

static void expect_refused(const char *plugin, const char *want1, const char *want2) {
    rl_verifier_spec s = {.name = rl_strdup("p"), .weight = 1.0, .plugin = rl_strdup(plugin)};
    rl_verifier_spec_set_option(&s, "field", "x");
    rl_reward *rw = NULL;
    rl_err err = {0};
    int rc = rl_reward_create(&rw, &s, 1, NULL, &err);
    rl_verifier_spec_free(&s);
    CHECK(rc != 0 && rw == NULL && err.kind == RL_EINPUT, "%s accepted", plugin);
    CHECK(strstr(err.msg, want1) && strstr(err.msg, want2), "message '%s' lacks '%s' / '%s'",
          err.msg, want1, want2);
}

static void test_plugin_refusals(void) {
    expect_refused(PLUGIN_BAD_ABI, "ABI version 99", "speaks version 1");
    expect_refused(PLUGIN_BAD_ABI, PLUGIN_BAD_ABI, "rebuild");
    expect_refused(PLUGIN_NO_ENTRY, "does not export rlpipe_verifier", PLUGIN_NO_ENTRY);
    expect_refused("/nonexistent/plugin.so", "cannot load plugin /nonexistent/plugin.so", "");
    expect_refused("plugin.so", "cannot load plugin plugin.so", "./plugin.so");
}

// ---- line-protocol programs -------------------------------------------------------------------------

static void test_misbehaving_program(int wrapped) {
    char cmd[4200];
    // Plain: exec'ed, the program is our child. Wrapped (quotes): it runs under sh.
    snprintf(cmd, sizeof cmd, wrapped ? "'%s' --child multi" : "%s --child multi", self_exe);
    rl_err err = {0};
    rl_reward *rw = make_command(cmd, "0.4", 1, &err);
    CHECK(rw != NULL, "%s", err.msg);
    if (!rw) return;
    const char *texts[] = {"score=0.25", "garbage", "ok",      "hang",
                           "ok",         "noscore", "ok",      "range",
                           "twice",      "ok",      "close",   "ok",
                           "skipstatus", "crash",   "score=1", wrapped ? "ok" : "hang_noterm",
                           "ok"};
    enum { N = 17 };
    int want[N] = {0, 2, 0, 3, 0, 2, 0, 2, 0, 0, 2, 0, 1, 2, 0, wrapped ? 0 : 3, 0};
    rl_vresult res[N];
    double t0 = rl_now();
    score_texts(rw, texts, N, res);
    double took = rl_now() - t0;
    for (int i = 0; i < N; i++)
        CHECK(res[i].status == want[i], "%s: status %s, want %s (%s)", texts[i],
              rl_vstatus_name(res[i].status), rl_vstatus_name(want[i]), res[i].detail);
    CHECK(res[0].score == 0.25 && strstr(res[0].detail, "tag=hello n_tokens=3"),
          "options and fields reach the program: %s", res[0].detail);
    CHECK(strstr(res[1].detail, "not JSON"), "garbage: %s", res[1].detail);
    CHECK(strstr(res[3].detail, "no reply within 0.4 s"), "hang: %s", res[3].detail);
    CHECK(strstr(res[5].detail, "score"), "noscore: %s", res[5].detail);
    CHECK(strstr(res[7].detail, "outside [0, 1]"), "range: %s", res[7].detail);
    CHECK(strstr(res[10].detail, "stopped replying"), "close: %s", res[10].detail);
    CHECK(res[12].score == 0.0, "a skipped reply scores 0");
    CHECK(strstr(res[13].detail, "exited with code 4"), "crash: %s", res[13].detail);
    CHECK(res[14].score == 1.0, "after the crash: %s", res[14].detail);
    // Restarts: after garbage, a hang, an unsolicited second line, a close; not after noscore.
    int p[N];
    for (int i = 0; i < N; i++) p[i] = pid_of(&res[i]);
    CHECK(p[0] && p[2] && p[0] != p[2], "restarted after garbage (%d, %d)", p[0], p[2]);
    CHECK(p[4] && p[4] != p[2], "restarted after the hang");
    CHECK(p[6] == p[4] && p[5] == p[4], "kept after a reply without score");
    CHECK(p[9] && p[9] != p[8], "restarted after an unsolicited line");
    CHECK(p[11] && p[11] != p[9], "restarted after closing its output");
    CHECK(took < 4.0, "took %.1f s", took);
    for (int i = 0; i < N; i++)
        if (p[i] != p[N - 1]) CHECK(gone(p[i]), "process %d of request %d still alive", p[i], i);
    rl_reward_free(rw);
    CHECK(gone(p[N - 1]), "the last process survives destroy");
    CHECK(no_children(), "a child is left unreaped");
}

static void test_plugin_multi(void) {
    test_misbehaving_program(0);
}
static void test_plugin_multi_under_sh(void) {
    test_misbehaving_program(1);
}

static void test_crash_every_second(void) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "%s --child crash2", self_exe);
    rl_err err = {0};
    rl_reward *rw = make_command(cmd, NULL, 1, &err);
    CHECK(rw != NULL, "%s", err.msg);
    if (!rw) return;
    const char *texts[] = {"a", "b", "c", "d", "e", "f"};
    rl_vresult res[6];
    score_texts(rw, texts, 6, res);
    for (int i = 0; i < 6; i++) {
        int want = i % 2 ? RL_VERIFY_ERROR : RL_VERIFY_OK;
        CHECK(res[i].status == want, "request %d: %s (%s)", i, rl_vstatus_name(res[i].status),
              res[i].detail);
        if (i % 2) CHECK(strstr(res[i].detail, "exited with code 3"), "%s", res[i].detail);
    }
    rl_reward_free(rw);
    CHECK(no_children(), "a child is left unreaped");
}

static void test_missing_program(void) {
    rl_err err = {0};
    rl_reward *rw = make_command("/nonexistent/verifier --x", NULL, 1, &err);
    CHECK(rw != NULL, "%s", err.msg);
    if (!rw) return;
    const char *texts[] = {"a", "b"};
    rl_vresult res[2];
    score_texts(rw, texts, 2, res);
    for (int i = 0; i < 2; i++)
        CHECK(res[i].status == RL_VERIFY_ERROR && strstr(res[i].detail, "code 127"), "%s",
              res[i].detail);
    rl_reward_free(rw);
    CHECK(make_command("x", "-1", 1, &err) == NULL && strstr(err.msg, "timeout_s"), "'%s'",
          err.msg);
    CHECK(no_children(), "a child is left unreaped");
}

// One program per worker thread, started on first use; all stopped by destroy.
static void test_program_per_thread(void) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "%s --child multi", self_exe);
    rl_err err = {0};
    rl_reward *rw = make_command(cmd, NULL, 3, &err);
    CHECK(rw != NULL, "%s", err.msg);
    if (!rw) return;
    enum { N = 30 };
    const char *texts[N];
    for (int i = 0; i < N; i++) texts[i] = i % 2 ? "score=0.75" : "score=0.125";
    rl_vresult res[N];
    score_texts(rw, texts, N, res);
    int pids[N], distinct = 0;
    for (int i = 0; i < N; i++) {
        CHECK(res[i].status == RL_VERIFY_OK && res[i].score == (i % 2 ? 0.75 : 0.125), "%d: %s", i,
              res[i].detail);
        pids[i] = pid_of(&res[i]);
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= pids[j] == pids[i];
        distinct += !seen;
    }
    CHECK(distinct >= 1 && distinct <= 3, "%d processes for 3 workers", distinct);
    rl_reward_free(rw);
    for (int i = 0; i < N; i++) CHECK(gone(pids[i]), "process %d alive after destroy", pids[i]);
    CHECK(no_children(), "a child is left unreaped");
}

static void test_python_example(void) {
    if (system("command -v python3 >/dev/null 2>&1") != 0) {
        fprintf(stderr, "python3 not found: skipping the Python example\n");
        return;
    }
    rl_verifier_spec s = {.name = rl_strdup("length"),
                          .weight = 1.0,
                          .command = rl_strdup("python3 verifiers/examples/length_verifier.py")};
    rl_verifier_spec_set_option(&s, "max", "10");
    rl_verifier_spec t = {.name = rl_strdup("length_tokens"),
                          .weight = 1.0,
                          .command = rl_strdup("python3 verifiers/examples/length_verifier.py")};
    rl_verifier_spec_set_option(&t, "unit", "tokens");
    rl_verifier_spec specs[2] = {s, t};
    rl_reward *rw = NULL;
    rl_err err = {0};
    rl_reward_opts o = {.threads = 2};
    CHECK(rl_reward_create(&rw, specs, 2, &o, &err) == 0, "%s", err.msg);
    rl_verifier_spec_free(&specs[0]);
    rl_verifier_spec_free(&specs[1]);
    if (!rw) return;
    rl_vsample in[3] = {
        {.prompt = "p", .completion = "one two three four five", .n_tokens = 25, .max_tokens = 100},
        {.prompt = "p", .completion = "a b", .n_tokens = 5, .max_tokens = 10, .truncated = 1},
        {.prompt = "p", .completion = "caf\xc3\xa9 \xff\xfe ok", .n_tokens = 0, .max_tokens = 8},
    };
    rl_vresult res[6];
    double reward[3];
    CHECK(rl_reward_score(rw, in, NULL, 3, res, reward, NULL, &err) == 0, "%s", err.msg);
    CHECK(res[0].status == RL_VERIFY_OK && fabs(res[0].score - 0.5) < 1e-12, "words: %g %s",
          res[0].score, res[0].detail);
    CHECK(fabs(res[1].score - 0.75) < 1e-12, "tokens: %g %s", res[1].score, res[1].detail);
    CHECK(res[2].score == 0 && res[3].score == 0, "truncated: %g %g", res[2].score, res[3].score);
    CHECK(res[4].status == RL_VERIFY_OK && fabs(res[4].score - 0.7) < 1e-12,
          "invalid UTF-8 reaches it as U+FFFD: %g %s", res[4].score, res[4].detail);
    CHECK(fabs(reward[0] - 1.25) < 1e-12, "ungated sum without accuracy: %g", reward[0]);
    rl_reward_free(rw);
    CHECK(no_children(), "a child is left unreaped");
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--child") == 0) return child_main(argv[2]);
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n <= 0) {
        fprintf(stderr, "cannot find this executable\n");
        return 1;
    }
    self_exe[n] = 0;
    RUN(test_keyword_plugin);
    RUN(test_plugin_refusals);
    RUN(test_plugin_multi);
    RUN(test_plugin_multi_under_sh);
    RUN(test_crash_every_second);
    RUN(test_missing_program);
    RUN(test_program_per_thread);
    RUN(test_python_example);
    return test_summary();
}
