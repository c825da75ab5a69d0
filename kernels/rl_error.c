// rl_error: messages, context prefixes and checked allocation. See rl_error.h.
#define _POSIX_C_SOURCE 200809L
#include "kernels/rl_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int rl_fail(rl_err *err, int kind, const char *fmt, ...) {
    if (!err) return -1;
    err->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    // Keep messages on one line: a newline inside would break the "one-line error" contract.
    for (char *p = err->msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return -1;
}

int rl_err_prefix(rl_err *err, const char *fmt, ...) {
    if (!err) return -1;
    char prefix[RL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    // Join by hand: truncation of an over-long message is intended, not a bug.
    char joined[RL_ERR_MSG_MAX];
    size_t np = strnlen(prefix, sizeof joined - 1);
    memcpy(joined, prefix, np);
    size_t nm = strnlen(err->msg, sizeof joined - 1 - np);
    memcpy(joined + np, err->msg, nm);
    joined[np + nm] = '\0';
    memcpy(err->msg, joined, sizeof joined);
    if (err->kind == RL_OK) err->kind = RL_EINTERNAL;
    return -1;
}

void rl_err_clear(rl_err *err) {
    if (!err) return;
    err->kind = RL_OK;
    err->msg[0] = '\0';
}

static void out_of_memory(size_t bytes) {
    fprintf(stderr, "rlpipe: out of memory allocating %zu bytes\n", bytes);
    exit(1);
}

void *rl_malloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) out_of_memory(bytes);
    return p;
}

void *rl_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) out_of_memory(count * size);
    return p;
}

void *rl_realloc(void *ptr, size_t bytes) {
    void *p = realloc(ptr, bytes ? bytes : 1);
    if (!p) out_of_memory(bytes);
    return p;
}

char *rl_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = rl_malloc(n);
    memcpy(p, s, n);
    return p;
}

double rl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
