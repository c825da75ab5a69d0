/*
 * rl_error: the one error-handling style of rlpipe, shared by every module above the verifier ABI.
 *
 * A fallible function returns int: 0 on success, -1 on failure, and on failure it has filled the
 * caller's rl_err with a one-line message and a kind. The kind decides the process exit code at the
 * CLI: RL_EINPUT (bad config, bad file, bad usage: exit 2) or RL_EINTERNAL (a bug or a resource
 * failure: exit 1). Callers add context on the way up with rl_err_prefix(), so the message that
 * reaches the user names the file, line, key or tensor.
 *
 * Out-of-memory is not an rl_err: rl_malloc/rl_calloc/rl_realloc print and exit(1), llm.c style,
 * because no caller can do anything useful with it.
 *
 * Owns: nothing global. Every function here works only on the arguments it is given.
 */
#ifndef RL_ERROR_H
#define RL_ERROR_H

#include <stddef.h>

enum { RL_OK = 0, RL_EINTERNAL = 1, RL_EINPUT = 2 };

#define RL_ERR_MSG_MAX 1024

typedef struct rl_err {
    int kind;                 // RL_OK, RL_EINPUT or RL_EINTERNAL
    char msg[RL_ERR_MSG_MAX]; // one line, no trailing newline
} rl_err;

// Sets *err (if err is not NULL) and returns -1, so a failure site reads
//     return rl_fail(err, RL_EINPUT, "%s: expected a number", key);
int rl_fail(rl_err *err, int kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// Prepends context to an existing message: "file.yaml: " + msg. Returns -1.
int rl_err_prefix(rl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Clears an error value to RL_OK.
void rl_err_clear(rl_err *err);

// Propagates a failure from a call that already filled the error.
#define RL_TRY(call)                                                                               \
    do {                                                                                           \
        if ((call) != 0) return -1;                                                                \
    } while (0)

// Allocation that cannot fail from the caller's point of view (prints and exits 1 on OOM).
void *rl_malloc(size_t bytes);
void *rl_calloc(size_t count, size_t size);
void *rl_realloc(void *ptr, size_t bytes);
char *rl_strdup(const char *s);

// Seconds on a monotonic clock, for timings and throughput reports.
double rl_now(void);

#endif
