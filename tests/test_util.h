/*
 * test_util: the tiny assertion kit every rlpipe test executable uses. A test file defines
 * test functions, calls them from main() with RUN(fn), and returns test_summary().
 *
 *   CHECK(cond, "fmt", ...)        records a failure with file:line and the message
 *   CHECK_NEAR(a, b, tol, "what")  |a-b| <= tol * max(1, |b|)   (relative above 1, absolute below)
 *   test_shared_dir()              path of ../shared (or $RLPIPE_SHARED_DIR), NULL if absent
 *   test_rlpipe_bin()              path of the built rlpipe binary ($RLPIPE_BIN)
 *   test_read_file(path, &len)     a whole file, NUL-terminated, malloc'ed (free() it); NULL if it
 *                                  cannot be opened; len (may be NULL) receives its length
 *
 * Owns: a per-process failure counter (a test binary is a process; nothing else shares it).
 */
#ifndef RL_TEST_UTIL_H
#define RL_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int test_failures_ = 0;
static int test_checks_ = 0;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        test_checks_++;                                                                            \
        if (!(cond)) {                                                                             \
            test_failures_++;                                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol, what)                                                                \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        double s_ = fabs(b_) > 1.0 ? fabs(b_) : 1.0;                                               \
        CHECK(fabs(a_ - b_) <= (tol)*s_ && !isnan(a_), "%s: got %.9g, want %.9g (tol %g)", (what), \
              a_, b_, (double)(tol));                                                              \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        int before_ = test_failures_;                                                              \
        fn();                                                                                      \
        fprintf(stderr, "%s %s\n", test_failures_ == before_ ? "ok  " : "FAIL", #fn);              \
    } while (0)

static inline int test_summary(void) {
    fprintf(stderr, "%d checks, %d failures\n", test_checks_, test_failures_);
    return test_failures_ ? 1 : 0;
}

// ../shared relative to the project root (tests run from the root), or $RLPIPE_SHARED_DIR.
static inline const char *test_shared_dir(void) {
    const char *env = getenv("RLPIPE_SHARED_DIR");
    if (env && access(env, R_OK) == 0) return env;
    if (access("../shared", R_OK) == 0) return "../shared";
    return NULL;
}

static inline const char *test_rlpipe_bin(void) {
    const char *env = getenv("RLPIPE_BIN");
    return env ? env : "build/rlpipe";
}

static inline char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    if (!buf) abort();
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap && !(buf = realloc(buf, cap *= 2))) abort();
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

#endif
