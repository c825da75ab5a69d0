// test_cli: the built rlpipe binary's front end and `rlpipe config`: exit codes (0 ok, 2 bad usage
// or input), --help everywhere, one-line errors with file:line:col on stderr for every malformed
// config in tests/configs_bad/, and that config commands create nothing on disk.
#define _POSIX_C_SOURCE 200809L
#include "test_proc.h"
#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

typedef struct result {
    int code; // exit code, or 128 + signal number when the process was killed
    char out[1 << 16];
    char err[1 << 14];
} result;

// Runs the rlpipe binary with args (NULL-terminated) in directory cwd (NULL = here).
static void run_in(const char *cwd, const char *const *args, result *r) {
    const char *argv[32];
    test_argv_rlpipe(argv, 32, args);
    test_proc opt = {.cwd = cwd};
    r->code = test_run_capture(argv, &opt, r->out, sizeof r->out, r->err, sizeof r->err);
}

static void run(const char *const *args, result *r) {
    run_in(NULL, args, r);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static result R; // one result buffer reused by every check (too big for the stack under ASan)

static void test_binary_exists(void) {
    CHECK(access(test_rlpipe_bin(), X_OK) == 0, "no rlpipe binary at %s", test_rlpipe_bin());
}

static void test_help(void) {
    const char *cases[][4] = {
        {"--help", NULL},
        {"config", "--help", NULL},
        {"config", "show", "--help", NULL},
        {"config", "check", "-h", NULL},
        {"config", "reference", "--help", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run(cases[i], &R);
        CHECK(R.code == 0, "%s %s: exit %d", cases[i][0], cases[i][1] ? cases[i][1] : "", R.code);
        CHECK(strstr(R.out, "usage: rlpipe"), "%s: no usage on stdout: %s", cases[i][0], R.out);
        CHECK(R.err[0] == '\0', "%s: stderr not empty: %s", cases[i][0], R.err);
    }
    run((const char *[]){"--help", NULL}, &R);
    CHECK(strstr(R.out, "config"), "config missing from rlpipe --help");
}

static void test_usage_errors(void) {
    const char *cases[][5] = {
        {NULL},
        {"no-such-command", NULL},
        {"config", NULL},
        {"config", "frobnicate", NULL},
        {"config", "check", "--bogus", NULL},
        {"config", "show", "configs/tiny.yaml", "--sett", NULL},
        {"config", "check", "configs/tiny.yaml", "configs/tiny.yaml", NULL},
        {"config", "check", "--set", NULL},
        {"config", "reference", "extra", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run(cases[i], &R);
        CHECK(R.code == 2, "case %zu (%s %s): exit %d", i, cases[i][0] ? cases[i][0] : "",
              cases[i][0] && cases[i][1] ? cases[i][1] : "", R.code);
        CHECK(strstr(R.err, "rlpipe") && R.out[0] == '\0', "case %zu: stderr '%s' stdout '%s'", i,
              R.err, R.out);
    }
    run((const char *[]){"config", "check", "--bogus", NULL}, &R);
    CHECK(count_lines(R.err) == 1 && strstr(R.err, "--bogus"), "unknown option message: %s", R.err);
}

static void test_check_and_show(void) {
    run((const char *[]){"config", "check", "configs/tiny.yaml", NULL}, &R);
    CHECK(R.code == 0, "check tiny.yaml: exit %d, %s", R.code, R.err);
    CHECK(count_lines(R.out) == 1 && strstr(R.out, "configs/tiny.yaml: OK"), "summary: %s", R.out);

    run((const char *[]){"config", "check", "configs/examples/qwen2.5-0.5b-gpu.yaml", NULL}, &R);
    CHECK(R.code == 0, "check qwen example: exit %d, %s", R.code, R.err);

    run((const char *[]){"config", "show", "configs/tiny.yaml", "--set", "rollout.temperature=0.7",
                         "--set=run.name=shown", NULL},
        &R);
    CHECK(R.code == 0, "show: exit %d, %s", R.code, R.err);
    CHECK(strstr(R.out, "  temperature: 0.7\n") && strstr(R.out, "  name: shown\n") &&
              strstr(R.out, "  out_dir: runs/shown\n"),
          "show output lacks the overrides:\n%s", R.out);
    CHECK(strstr(R.out, "max_nonfinite_steps: 5"), "show output lacks defaults");

    run((const char *[]){"config", "check", "configs/tiny.yaml", "--set", "rollout.temperature=hot",
                         NULL},
        &R);
    CHECK(R.code == 2, "bad --set: exit %d", R.code);
    CHECK(strcmp(R.err, "rlpipe: --set rollout.temperature=hot: expected a number in [0, 10], got "
                        "\"hot\"\n") == 0,
          "bad --set message: %s", R.err);

    run((const char *[]){"config", "check", "configs/missing.yaml", NULL}, &R);
    CHECK(R.code == 2 && count_lines(R.err) == 1 && strstr(R.err, "configs/missing.yaml"),
          "missing file: exit %d, %s", R.code, R.err);

    run((const char *[]){"config", "reference", NULL}, &R);
    CHECK(R.code == 0 && strstr(R.out, "# Run configuration reference") &&
              strstr(R.out, "`rollout.temperature`"),
          "reference: exit %d", R.code);
}

// "# expect: <prefix> @ <line>:<col>" -> "<line>:<col>".
static int expected_location(const char *path, char *loc, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char line[1024];
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char *at = ok ? strstr(line, " @ ") : NULL;
    if (!at) return -1;
    snprintf(loc, n, "%s", at + 3);
    loc[strcspn(loc, "\n")] = '\0';
    return 0;
}

static void test_bad_configs(void) {
    const char *dir = "tests/configs_bad";
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    if (!d) return;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0) continue;
        char path[512], loc[64], want[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (expected_location(path, loc, sizeof loc) != 0) {
            CHECK(0, "%s: no expect line", path);
            continue;
        }
        snprintf(want, sizeof want, " at %s:%s\n", path, loc);
        run((const char *[]){"config", "check", path, NULL}, &R);
        CHECK(R.code == 2, "%s: exit %d", path, R.code);
        CHECK(count_lines(R.err) == 1 && strncmp(R.err, "rlpipe: ", 8) == 0, "%s: stderr '%s'",
              path, R.err);
        size_t el = strlen(R.err), wl = strlen(want);
        CHECK(el >= wl && strcmp(R.err + el - wl, want) == 0, "%s: '%s' does not end with '%s'",
              path, R.err, want);
        CHECK(R.out[0] == '\0', "%s: printed on stdout: %s", path, R.out);
        n++;
    }
    closedir(d);
    CHECK(n >= 25, "only %d malformed configs", n);
}

// Config commands only read: run them in an empty directory and it stays empty.
static void test_creates_nothing(void) {
    char dir[] = "/tmp/rlpipe-test-cwd-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char cwd[PATH_MAX], good[PATH_MAX + 32], bad[PATH_MAX + 64];
    CHECK(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
    snprintf(good, sizeof good, "%s/configs/tiny.yaml", cwd);
    snprintf(bad, sizeof bad, "%s/tests/configs_bad/type_number_word.yaml", cwd);
    const char *const cases[][5] = {
        {"config", "check", good, NULL},
        {"config", "show", good, NULL},
        {"config", "check", bad, NULL},
        {"config", "show", bad, NULL},
        {"config", "check", "--set", "run.out_dir=out", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_in(dir, cases[i], &R);
    DIR *d = opendir(dir);
    int entries = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) entries++;
    if (d) closedir(d);
    CHECK(entries == 0, "config commands created %d entries in %s", entries, dir);
    rmdir(dir);
}

// The binary links neither the CUDA runtime nor cuBLAS, whatever the build: the CUDA backend is a
// module loaded on demand (kernels/cuda_module.c), so `rlpipe --help` or `rlpipe verify` start
// without ~220 MB of GPU libraries.
static void test_no_cuda_link(void) {
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "ldd '%s' 2>&1", test_rlpipe_bin());
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL, "run ldd");
    if (!p) return;
    char line[1024];
    int n = 0, cuda = 0;
    while (fgets(line, sizeof line, p)) {
        n++;
        // Nor Open MPI or NCCL: the MPI communicator is a module too (kernels/comm.c).
        if (strstr(line, "libcudart") || strstr(line, "libcublas") || strstr(line, "libcuda.") ||
            strstr(line, "libmpi") || strstr(line, "libnccl")) {
            cuda++;
            fprintf(stderr, "  linked: %s", line);
        }
    }
    pclose(p);
    CHECK(n > 0 && cuda == 0,
          "rlpipe's shared libraries include no CUDA, MPI or NCCL library (%d of %d)", cuda, n);
}

int main(void) {
    RUN(test_binary_exists);
    if (access(test_rlpipe_bin(), X_OK) != 0) return test_summary();
    RUN(test_help);
    RUN(test_no_cuda_link);
    RUN(test_usage_errors);
    RUN(test_check_and_show);
    RUN(test_bad_configs);
    RUN(test_creates_nothing);
    return test_summary();
}
