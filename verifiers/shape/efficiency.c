// efficiency: the length-against-budget verifier. Modes and options are documented in shape.h.
#include "verifiers/shape/shape.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MODE_BUDGET, MODE_TARGET, MODE_GROUP };

typedef struct efficiency_cfg {
    int mode;      // MODE_*
    double flat;   // budget: the fraction of max_tokens that still scores 1
    double target; // target: the token count that still scores 1
} efficiency_cfg;

// Parses a finite number that fills the whole string.
static int parse_number(const char *s, double *out) {
    char *end;
    if (!s || !*s) return -1;
    double v = strtod(s, &end);
    if (*end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static void *efficiency_create(const rl_voption *opts, int32_t n_opts, char *err, size_t err_len) {
    efficiency_cfg c = {.mode = MODE_BUDGET, .flat = 0.0, .target = 0.0};
    int have_target = 0;
    for (int i = 0; i < n_opts; i++) {
        const char *k = opts[i].key, *v = opts[i].value ? opts[i].value : "";
        if (strcmp(k, "mode") == 0) {
            if (strcmp(v, "budget") == 0)
                c.mode = MODE_BUDGET;
            else if (strcmp(v, "target") == 0)
                c.mode = MODE_TARGET;
            else if (strcmp(v, "group") == 0)
                c.mode = MODE_GROUP;
            else {
                snprintf(err, err_len, "option mode: expected budget, target or group, got '%s'",
                         v);
                return NULL;
            }
        } else if (strcmp(k, "flat") == 0) {
            if (parse_number(v, &c.flat) || c.flat < 0 || c.flat >= 1) {
                snprintf(err, err_len, "option flat: expected a number in [0, 1), got '%s'", v);
                return NULL;
            }
        } else if (strcmp(k, "target") == 0) {
            if (parse_number(v, &c.target) || c.target <= 0) {
                snprintf(err, err_len, "option target: expected a token count > 0, got '%s'", v);
                return NULL;
            }
            have_target = 1;
        } else {
            snprintf(err, err_len, "unknown option '%s' (efficiency takes mode, flat, target)", k);
            return NULL;
        }
    }
    if (c.mode == MODE_TARGET && !have_target) {
        snprintf(err, err_len, "mode target needs the option target (tokens that still score 1)");
        return NULL;
    }
    efficiency_cfg *self = malloc(sizeof *self);
    if (!self) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    *self = c;
    return self;
}

static void efficiency_destroy(void *self) {
    free(self);
}

static void set(rl_vresult *out, double score, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set(rl_vresult *out, double score, int status, const char *fmt, ...) {
    out->score = score;
    out->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->detail, sizeof out->detail, fmt, ap);
    va_end(ap);
}

// 1 up to `full` tokens, then linear down to 0 at `max` tokens.
static double ramp(double n, double full, double max) {
    if (n <= full) return 1.0;
    if (n >= max || max <= full) return 0.0;
    return (max - n) / (max - full);
}

static void efficiency_score(void *p, const rl_vsample *s, rl_vresult *out) {
    const efficiency_cfg *c = p;
    long n = s->n_tokens, max = s->max_tokens;
    if (n < 0)
        set(out, 0, RL_VERIFY_ERROR, "negative token count %ld", n);
    else if (s->truncated)
        set(out, 0, RL_VERIFY_OK, "truncated at %ld of %ld tokens", n, max);
    else if (c->mode == MODE_GROUP)
        set(out, 1, RL_VERIFY_OK, "%ld tokens, group of 1", n);
    else if (max <= 0)
        set(out, 0, RL_VERIFY_SKIPPED, "no token budget (%ld tokens)", n);
    else {
        double full = c->mode == MODE_BUDGET ? c->flat * (double)max : c->target;
        set(out, ramp((double)n, full, (double)max), RL_VERIFY_OK, "%ld of %ld tokens", n, max);
    }
}

// Kimi-style: relative to the shortest and longest completion of the group.
static void efficiency_score_group(void *p, const rl_vsample *s, int32_t n, rl_vresult *out) {
    const efficiency_cfg *c = p;
    if (c->mode != MODE_GROUP) {
        for (int i = 0; i < n; i++) efficiency_score(p, &s[i], &out[i]);
        return;
    }
    long lo = 0, hi = 0;
    int seen = 0;
    for (int i = 0; i < n; i++) {
        if (s[i].n_tokens < 0) continue;
        if (!seen || s[i].n_tokens < lo) lo = s[i].n_tokens;
        if (!seen || s[i].n_tokens > hi) hi = s[i].n_tokens;
        seen = 1;
    }
    for (int i = 0; i < n; i++) {
        long len = s[i].n_tokens;
        if (len < 0)
            set(&out[i], 0, RL_VERIFY_ERROR, "negative token count %ld", len);
        else if (s[i].truncated)
            set(&out[i], 0, RL_VERIFY_OK, "truncated at %ld of %ld tokens", len,
                (long)s[i].max_tokens);
        else if (hi == lo)
            set(&out[i], 1, RL_VERIFY_OK, "%ld tokens, group of %ld", len, (long)n);
        else
            set(&out[i], (double)(hi - len) / (double)(hi - lo), RL_VERIFY_OK,
                "%ld tokens, group range %ld..%ld", len, lo, hi);
    }
}

static const rl_verifier_api EFFICIENCY_API = {
    .abi_version = RL_VERIFIER_ABI_VERSION,
    .name = "efficiency",
    .thread_safe = 1,
    .create = efficiency_create,
    .score = efficiency_score,
    .score_group = efficiency_score_group,
    .destroy = efficiency_destroy,
};

const rl_verifier_api *rl_verifier_efficiency_api(void) {
    return &EFFICIENCY_API;
}
