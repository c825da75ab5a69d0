/*
 * test_proc: running the rlpipe binary (or any program) from a test, one way for every test.
 *
 *   test_spawn(argv, &opt)               fork + exec argv (argv[0] = program); returns the pid
 *   test_wait_code(pid)                  waits; the exit code, or 128 + signal number if killed
 *   test_run_capture(argv, &opt, out, out_cap, err, err_cap)
 *                                        runs argv to the end, stdout and stderr into the caller's
 *                                        buffers (NUL-terminated, cut at cap - 1); the exit code
 *   test_argv_rlpipe(argv, cap, args)    argv = {rlpipe binary, args...}; returns the count
 *   test_argv_append(argv, n, cap, list) appends a NULL-terminated list; returns the new count
 *   test_argv_run(argv, cap, cmd, config, sets, out_dir, extra, out_set, out_set_cap)
 *                                        argv = {rlpipe, cmd, config, sets..., --set
 *                                        run.out_dir=OUT_DIR, extra...}, the assignment written
 *                                        into out_set (which must outlive argv)
 *
 * test_proc options (a NULL pointer or a zeroed struct: here, inherit stdout/stderr):
 *   cwd       the child's working directory (NULL: this one)
 *   env       one "NAME=VALUE" added to the child's environment (NULL: none)
 *   quiet     stdout and stderr go to /dev/null
 *   err_path  stderr goes to this file (created/truncated), whatever quiet says
 * test_run_capture always captures both streams; quiet and err_path are ignored there.
 *
 * A child that cannot chdir exits 126, one that cannot exec exits 127. Output is flushed before
 * the fork, so buffered test output is never written twice.
 *
 * Owns: nothing; capture files are unlinked temporaries in /tmp.
 */
#ifndef RL_TEST_PROC_H
#define RL_TEST_PROC_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

typedef struct test_proc {
    const char *cwd;
    const char *env;
    int quiet;
    const char *err_path;
} test_proc;

#define TEST_ARGV_MAX 128

// In the child: redirects stdout to out_fd and stderr to err_fd (-1 keeps them) and execs.
static inline pid_t test_spawn_fds_(const char *const *argv, const test_proc *opt, int out_fd,
                                    int err_fd) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) return pid;
    if (out_fd < 0 && err_fd < 0 && opt && (opt->quiet || opt->err_path)) {
        int devnull = open("/dev/null", O_WRONLY);
        int e = opt->err_path ? open(opt->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : devnull;
        if (opt->quiet) dup2(devnull, 1);
        dup2(e < 0 ? devnull : e, 2);
    }
    if (out_fd >= 0) dup2(out_fd, 1);
    if (err_fd >= 0) dup2(err_fd, 2);
    if (opt && opt->cwd && chdir(opt->cwd) != 0) _exit(126);
    if (opt && opt->env) {
        char assign[512];
        snprintf(assign, sizeof assign, "%s", opt->env);
        char *eq = strchr(assign, '=');
        if (!eq) _exit(126);
        *eq = '\0';
        setenv(assign, eq + 1, 1);
    }
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

static inline pid_t test_spawn(const char *const *argv, const test_proc *opt) {
    return test_spawn_fds_(argv, opt, -1, -1);
}

static inline int test_wait_code(pid_t pid) {
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// Reads an unlinked capture file from its start into buf (NUL-terminated) and closes it.
static inline void test_slurp_fd_(int fd, char *buf, size_t cap) {
    size_t n = 0;
    if (fd >= 0) {
        lseek(fd, 0, SEEK_SET);
        while (n + 1 < cap) {
            ssize_t r = read(fd, buf + n, cap - 1 - n);
            if (r <= 0) break;
            n += (size_t)r;
        }
        close(fd);
    }
    buf[n] = '\0';
}

static inline int test_run_capture(const char *const *argv, const test_proc *opt, char *out,
                                   size_t out_cap, char *err, size_t err_cap) {
    char out_name[] = "/tmp/rlpipe-test-out-XXXXXX", err_name[] = "/tmp/rlpipe-test-err-XXXXXX";
    int out_fd = mkstemp(out_name), err_fd = mkstemp(err_name);
    if (out_fd >= 0) unlink(out_name);
    if (err_fd >= 0) unlink(err_name);
    int code = -1;
    if (out_fd >= 0 && err_fd >= 0)
        code = test_wait_code(test_spawn_fds_(argv, opt, out_fd, err_fd));
    test_slurp_fd_(out_fd, out, out_cap);
    test_slurp_fd_(err_fd, err, err_cap);
    return code;
}

static inline int test_argv_append(const char **argv, int n, int cap, const char *const *list) {
    for (int i = 0; list && list[i] && n < cap - 1; i++) argv[n++] = list[i];
    argv[n] = NULL;
    return n;
}

static inline int test_argv_rlpipe(const char **argv, int cap, const char *const *args) {
    argv[0] = test_rlpipe_bin();
    return test_argv_append(argv, 1, cap, args);
}

static inline int test_argv_run(const char **argv, int cap, const char *cmd, const char *config,
                                const char *const *sets, const char *out_dir,
                                const char *const *extra, char *out_set, size_t out_set_cap) {
    snprintf(out_set, out_set_cap, "run.out_dir=%s", out_dir);
    int n = test_argv_rlpipe(argv, cap, (const char *const[]){cmd, config, NULL});
    n = test_argv_append(argv, n, cap, sets);
    n = test_argv_append(argv, n, cap, (const char *const[]){"--set", out_set, NULL});
    return test_argv_append(argv, n, cap, extra);
}

#endif
