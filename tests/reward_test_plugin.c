/*
 * reward_test_plugin: a scriptable shared-object verifier for the reward tests.
 *
 * Option field: NAME. The verdict is read from the completion text "... NAME=VALUE ...":
 *   a number -> OK with that score (even NaN or out of range: the registry must catch those)
 *   skip -> SKIPPED, err -> ERROR, timeout -> TIMEOUT, badstatus -> status 7,
 *   unset -> the result is left untouched; field missing -> ERROR.
 * Built four ways (tests/reward.cmake): normal; ECHO_UNSAFE (thread_safe = 0, and a score call
 * that overlaps another on the same instance reports ERROR "concurrent use"); ECHO_ABI=99 (a
 * wrong ABI version); ECHO_NO_ENTRY (no rlpipe_verifier symbol).
 */
#define _POSIX_C_SOURCE 200809L
#include "reward/verifier_abi.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef ECHO_ABI
#define ECHO_ABI RL_VERIFIER_ABI_VERSION
#endif
#ifdef ECHO_UNSAFE
#define ECHO_THREAD_SAFE 0
#else
#define ECHO_THREAD_SAFE 1
#endif

typedef struct echo {
    char needle[64]; // "NAME="
    atomic_int busy; // ECHO_UNSAFE: a score call is running on this instance
} echo;

static void *echo_create(const rl_voption *opts, int32_t n_opts, char *err, size_t err_len) {
    const char *field = NULL;
    for (int i = 0; i < n_opts; i++) {
        if (strcmp(opts[i].key, "field") == 0)
            field = opts[i].value;
        else {
            snprintf(err, err_len, "unknown option '%s'", opts[i].key);
            return NULL;
        }
    }
    if (!field || !*field || strlen(field) > 50) {
        snprintf(err, err_len, "option field is required");
        return NULL;
    }
    echo *e = calloc(1, sizeof *e);
    snprintf(e->needle, sizeof e->needle, "%s=", field);
    atomic_init(&e->busy, 0);
    return e;
}

static void echo_destroy(void *p) {
    free(p);
}

static const char *find_field(const char *text, const char *needle) {
    size_t n = strlen(needle);
    for (const char *p = text; (p = strstr(p, needle)); p += n)
        if (p == text || p[-1] == ' ' || p[-1] == '\n') return p + n;
    return NULL;
}

static void verdict(const echo *e, const rl_vsample *s, rl_vresult *out) {
    const char *v = find_field(s->completion, e->needle);
    out->detail[0] = 0;
    if (!v) {
        out->score = 0;
        out->status = RL_VERIFY_ERROR;
        snprintf(out->detail, sizeof out->detail, "no %s in the completion", e->needle);
    } else if (strncmp(v, "skip", 4) == 0) {
        out->score = 0;
        out->status = RL_VERIFY_SKIPPED;
    } else if (strncmp(v, "err", 3) == 0) {
        out->score = 0;
        out->status = RL_VERIFY_ERROR;
    } else if (strncmp(v, "timeout", 7) == 0) {
        out->score = 0.5; // the registry must zero it
        out->status = RL_VERIFY_TIMEOUT;
    } else if (strncmp(v, "badstatus", 9) == 0) {
        out->score = 0.5;
        out->status = 7;
    } else if (strncmp(v, "unset", 5) == 0) {
        return;
    } else if (strncmp(v, "nan", 3) == 0) {
        out->score = NAN;
        out->status = RL_VERIFY_OK;
    } else {
        out->score = strtod(v, NULL);
        out->status = RL_VERIFY_OK;
        snprintf(out->detail, sizeof out->detail, "%s%g", e->needle, out->score);
    }
}

static void echo_score(void *p, const rl_vsample *s, rl_vresult *out) {
    echo *e = p;
#ifdef ECHO_UNSAFE
    if (atomic_exchange(&e->busy, 1)) {
        out->score = 0;
        out->status = RL_VERIFY_ERROR;
        snprintf(out->detail, sizeof out->detail, "concurrent use");
        return;
    }
    struct timespec ts = {0, 50000}; // widen the window in which an overlap would show
    nanosleep(&ts, NULL);
#endif
    verdict(e, s, out);
#ifdef ECHO_UNSAFE
    atomic_store(&e->busy, 0);
#endif
}

static const rl_verifier_api ECHO_API = {
    .abi_version = ECHO_ABI,
    .name = "echo",
    .thread_safe = ECHO_THREAD_SAFE,
    .create = echo_create,
    .score = echo_score,
    .score_group = NULL,
    .destroy = echo_destroy,
};

#ifndef ECHO_NO_ENTRY
__attribute__((visibility("default"))) const rl_verifier_api *rlpipe_verifier(void) {
    return &ECHO_API;
}
#else
__attribute__((visibility("default"))) const rl_verifier_api *not_the_entry(void) {
    return &ECHO_API;
}
#endif
