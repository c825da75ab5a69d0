// format: the response-shape verifier. The rules and options are documented in shape.h.
#include "verifiers/shape/shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { THINK_REQUIRED, THINK_OPTIONAL, THINK_FORBIDDEN };

typedef struct format_cfg {
    int think;          // THINK_*
    int open_in_prompt; // 1: the prompt ends with "<think>\n"; the completion holds only </think>
    char *start;        // required prefix of the completion ("" = none)
    int answer_boxed;   // 1: exactly one final \boxed{...} after the think block
    int trailing_none;  // 1: only whitespace and closing delimiters after that box
} format_cfg;

static const char OPEN_TAG[] = "<think>";
static const char CLOSE_TAG[] = "</think>";
static const char BOXED[] = "\\boxed{";

// ---- options --------------------------------------------------------------------------------

static int pick(const char *value, const char *const *names, int *out) {
    for (int i = 0; names[i]; i++)
        if (strcmp(value, names[i]) == 0) {
            *out = i;
            return 0;
        }
    return -1;
}

// The named presets (documented in shape.h). Returns -1 for an unknown name.
static int apply_preset(const char *name, format_cfg *c, const char **start) {
    if (strcmp(name, "r1") == 0) { // R1: the model writes <think>\n ... \n</think> itself
        c->think = THINK_REQUIRED;
        c->open_in_prompt = 0;
    } else if (strcmp(name, "r1_prompt") == 0) { // R1's template ends with "<think>\n"
        c->think = THINK_REQUIRED;
        c->open_in_prompt = 1;
    } else if (strcmp(name, "seed") == 0) { // the seed article: "###" first, one \boxed{} last
        c->think = THINK_OPTIONAL;
        c->open_in_prompt = 0;
        *start = "###";
    } else
        return -1;
    c->answer_boxed = 1;
    c->trailing_none = 1;
    return 0;
}

static void *format_create(const rl_voption *opts, int32_t n_opts, char *err, size_t err_len) {
    format_cfg c = {.think = THINK_REQUIRED, .answer_boxed = 1, .trailing_none = 1};
    const char *start = "";
    // A preset sets defaults first, so the other options refine it whatever their order.
    for (int i = 0; i < n_opts; i++) {
        if (strcmp(opts[i].key, "preset") != 0) continue;
        const char *v = opts[i].value ? opts[i].value : "";
        if (apply_preset(v, &c, &start) != 0) {
            snprintf(err, err_len, "option preset: unexpected value '%s' (r1, r1_prompt, seed)", v);
            return NULL;
        }
    }
    for (int i = 0; i < n_opts; i++) {
        const char *k = opts[i].key, *v = opts[i].value ? opts[i].value : "";
        int ok = 0;
        if (strcmp(k, "preset") == 0) {
            ok = 1;
        } else if (strcmp(k, "think") == 0) {
            static const char *const names[] = {"required", "optional", "forbidden", NULL};
            ok = pick(v, names, &c.think) == 0;
        } else if (strcmp(k, "think_open") == 0) {
            static const char *const names[] = {"completion", "prompt", NULL};
            ok = pick(v, names, &c.open_in_prompt) == 0;
        } else if (strcmp(k, "answer") == 0) {
            static const char *const names[] = {"none", "boxed", NULL};
            ok = pick(v, names, &c.answer_boxed) == 0;
        } else if (strcmp(k, "trailing") == 0) {
            static const char *const names[] = {"any", "none", NULL};
            ok = pick(v, names, &c.trailing_none) == 0;
        } else if (strcmp(k, "start") == 0) {
            start = v;
            ok = 1;
        } else {
            snprintf(err, err_len,
                     "unknown option '%s' (format takes preset, think, think_open, start, answer, "
                     "trailing)",
                     k);
            return NULL;
        }
        if (!ok) {
            snprintf(err, err_len, "option %s: unexpected value '%s'", k, v);
            return NULL;
        }
    }
    format_cfg *self = malloc(sizeof *self);
    char *start_copy = malloc(strlen(start) + 1);
    if (!self || !start_copy) {
        free(self);
        free(start_copy);
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    memcpy(start_copy, start, strlen(start) + 1);
    *self = c;
    self->start = start_copy;
    return self;
}

static void format_destroy(void *p) {
    format_cfg *self = p;
    if (!self) return;
    free(self->start);
    free(self);
}

// ---- scanning helpers (linear in the text length, any bytes) ---------------------------------

static int is_space(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static int all_space(const char *s, const char *end) {
    for (; s < end; s++)
        if (!is_space(*s)) return 0;
    return 1;
}

// The first needle in [s, end), or NULL. (Not strstr in a loop: that rescans the rest of the
// text per call under some libc and sanitizer builds, quadratic on tag-heavy input.)
static const char *find(const char *s, const char *end, const char *needle) {
    size_t nl = strlen(needle);
    while (s + nl <= end) {
        const char *p = memchr(s, needle[0], (size_t)(end - s) - nl + 1);
        if (!p) return NULL;
        if (memcmp(p, needle, nl) == 0) return p;
        s = p + 1;
    }
    return NULL;
}

// Occurrences of needle in [s, end); *first / *last get the first and last match (NULL if none).
static int count_in(const char *s, const char *end, const char *needle, const char **first,
                    const char **last) {
    size_t nl = strlen(needle);
    int n = 0;
    if (first) *first = NULL;
    if (last) *last = NULL;
    for (const char *p = s; (p = find(p, end, needle)); p += nl) {
        if (n == 0 && first) *first = p;
        if (last) *last = p;
        n++;
    }
    return n;
}

// Given p just after "\boxed{", the position just after the matching '}', or NULL when the braces
// never balance. "\{" and "\}" are literal braces (LaTeX sets) and do not count.
static const char *box_end(const char *p) {
    int depth = 1;
    for (; *p; p++) {
        if (*p == '\\' && (p[1] == '{' || p[1] == '}')) {
            p++;
            continue;
        }
        if (*p == '{') depth++;
        if (*p == '}' && --depth == 0) return p + 1;
    }
    return NULL;
}

static int closing_only(const char *s) {
    for (; *s; s++)
        if (!is_space(*s) && !strchr("$.)]\\*", *s)) return 0;
    return 1;
}

// ---- the rules ---------------------------------------------------------------------------------

typedef struct rule_tally {
    int active, held;
    char failed[RL_VDETAIL_MAX];
} rule_tally;

static void rule(rule_tally *t, int held, const char *name) {
    t->active++;
    if (held) {
        t->held++;
        return;
    }
    size_t len = strlen(t->failed);
    snprintf(t->failed + len, sizeof t->failed - len, "%s%s", len ? ", " : "", name);
}

// The think rules. Returns where the answer region starts (after the last </think>, or the body).
static const char *think_rules(const format_cfg *c, const char *body, const char *text,
                               const char *end, rule_tally *t) {
    const char *open_first, *close_first, *close_last;
    int n_open = count_in(text, end, OPEN_TAG, &open_first, NULL);
    int n_close = count_in(text, end, CLOSE_TAG, &close_first, &close_last);
    const char *region = close_last ? close_last + strlen(CLOSE_TAG) : body;

    if (c->think == THINK_FORBIDDEN) {
        rule(t, n_open == 0 && n_close == 0, "no_think");
        return region;
    }
    if (c->think == THINK_OPTIONAL && n_open == 0 && n_close == 0 && !c->open_in_prompt)
        return region;

    if (c->open_in_prompt) {
        rule(t, n_open == 0 && n_close == 1, "think_block");
        rule(t, close_first && !all_space(body, close_first), "reasoning");
        rule(t, close_first && close_first > text && close_first[-1] == '\n', "newlines");
        return region;
    }
    rule(t, n_open == 1 && n_close == 1 && open_first < close_first, "think_block");
    // The opening tag may be part of the start prefix itself (start: "<think>\n").
    rule(t, open_first && (open_first < body || all_space(body, open_first)), "think_first");
    const char *inner = open_first ? open_first + strlen(OPEN_TAG) : NULL;
    const char *inner_end = inner ? find(inner, end, CLOSE_TAG) : NULL;
    rule(t, inner_end && !all_space(inner, inner_end), "reasoning");
    rule(t, inner_end && *inner == '\n' && inner_end > inner && inner_end[-1] == '\n', "newlines");
    return region;
}

static void answer_rules(const format_cfg *c, const char *region, const char *end, rule_tally *t) {
    const char *last_box;
    int n_box = count_in(region, end, BOXED, NULL, &last_box);
    const char *content = last_box ? last_box + strlen(BOXED) : NULL;
    const char *after = content ? box_end(content) : NULL;
    int filled = after && !all_space(content, after - 1);
    rule(t, n_box == 1 && filled, "answer");
    if (c->trailing_none) rule(t, after && closing_only(after), "trailing");
}

static void format_score(void *p, const rl_vsample *s, rl_vresult *out) {
    const format_cfg *c = p;
    const char *text = s->completion ? s->completion : "";
    const char *end = text + strlen(text);
    rule_tally t = {0};

    size_t start_len = strlen(c->start);
    int has_start = strncmp(text, c->start, start_len) == 0;
    if (start_len) rule(&t, has_start, "start");
    const char *body = has_start ? text + start_len : text;

    const char *region = think_rules(c, body, text, end, &t);
    if (c->answer_boxed) answer_rules(c, region, end, &t);

    out->status = RL_VERIFY_OK;
    out->score = t.active ? (double)t.held / t.active : 1.0;
    if (t.held == t.active)
        snprintf(out->detail, sizeof out->detail, "all %d rules hold", t.active);
    else
        snprintf(out->detail, sizeof out->detail, "%d/%d rules; failed: %.200s", t.held, t.active,
                 t.failed);
}

static const rl_verifier_api FORMAT_API = {
    .abi_version = RL_VERIFIER_ABI_VERSION,
    .name = "format",
    .thread_safe = 1,
    .create = format_create,
    .score = format_score,
    .score_group = NULL,
    .destroy = format_destroy,
};

const rl_verifier_api *rl_verifier_format_api(void) {
    return &FORMAT_API;
}
