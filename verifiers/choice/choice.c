// choice: multiple-choice letter extraction and exact match. See choice.h for the rules.
#include "verifiers/choice/choice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_upper(char c) {
    return c >= 'A' && c <= 'Z';
}

static int is_alnum(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// The last occurrence of needle in [s, end), or NULL.
static const char *last_of(const char *s, const char *end, const char *needle) {
    size_t n = strlen(needle);
    const char *found = NULL;
    for (const char *p = s; p + n <= end; p++) {
        p = memchr(p, needle[0], (size_t)(end - p));
        if (!p || p + n > end) break;
        if (memcmp(p, needle, n) == 0) found = p;
    }
    return found;
}

// Skips blanks and answer markup: * $ ( [ { ~ and \text{ \textbf{ \mathrm{ \mathbf{ \boxed{.
static const char *skip_markup(const char *p, const char *end) {
    static const char *const macros[] = {"\\text{",  "\\textbf{", "\\mathrm{", "\\mathbf{",
                                         "\\boxed{", "\\(",       "\\[",       NULL};
    for (;;) {
        while (p < end && *p && strchr(" \t*_$([{~", *p)) p++;
        int moved = 0;
        for (int i = 0; macros[i]; i++) {
            size_t n = strlen(macros[i]);
            if ((size_t)(end - p) >= n && memcmp(p, macros[i], n) == 0) {
                p += n;
                moved = 1;
                break;
            }
        }
        if (!moved) return p;
    }
}

// A capital letter at p (within the first n options) that is a word of its own, else 0.
static char letter_at(const char *p, const char *end, int n_options) {
    if (p >= end || !is_upper(*p) || *p - 'A' >= n_options) return 0;
    if (p + 1 < end && is_alnum(p[1])) return 0;
    return *p;
}

// Case-insensitive: does [p, end) start with word?
static int starts_with_ci(const char *p, const char *end, const char *word) {
    size_t n = strlen(word);
    return (size_t)(end - p) >= n && strncasecmp(p, word, n) == 0;
}

// "answer" at p followed by ':' or "is", then the letter. Returns the letter or 0.
static char after_answer_word(const char *p, const char *end, int n_options) {
    p += 6; // "answer"
    while (p < end && (*p == ' ' || *p == '*' || *p == '_' || *p == '\t')) p++;
    if (p < end && *p == ':')
        p++;
    else if (starts_with_ci(p, end, "is") && (p + 2 >= end || !is_alnum(p[2])))
        p += 2;
    else
        return 0;
    while (p < end && (*p == '*' || *p == '_' || *p == ' ' || *p == ':')) p++;
    return letter_at(skip_markup(p, end), end, n_options);
}

char rl_choice_extract(const char *completion, int n_options) {
    if (!completion) return 0;
    if (n_options < 1) n_options = 1;
    if (n_options > 26) n_options = 26;
    const char *text = completion, *end = completion + strlen(completion);
    const char *close = last_of(text, end, "</think>");
    if (close) text = close + 8;
    // Scan every candidate; the one that starts last wins.
    const char *best_at = NULL;
    char best = 0;
    for (const char *p = text; p < end; p++) {
        char got = 0;
        if ((*p == 'a' || *p == 'A') && starts_with_ci(p, end, "answer") &&
            (p == text || !is_alnum(p[-1])))
            got = after_answer_word(p, end, n_options);
        else if (*p == '\\' && (size_t)(end - p) >= 7 && memcmp(p, "\\boxed{", 7) == 0)
            got = letter_at(skip_markup(p + 7, end), end, n_options);
        if (got) {
            best = got;
            best_at = p;
        }
    }
    return best_at ? best : 0;
}

char rl_choice_reference(const char *reference) {
    if (!reference) return 0;
    const char *p = reference;
    while (*p == ' ' || *p == '(') p++;
    char c = *p;
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    if (c < 'A' || c > 'Z') return 0;
    for (p++; *p; p++)
        if (*p != ' ' && *p != ')') return 0;
    return c;
}

typedef struct choice_cfg {
    int n_options;
} choice_cfg;

static void *choice_create(const rl_voption *opts, int32_t n_opts, char *err, size_t err_len) {
    choice_cfg c = {.n_options = 10};
    for (int i = 0; i < n_opts; i++) {
        const char *v = opts[i].value ? opts[i].value : "";
        if (strcmp(opts[i].key, "options") == 0) {
            char *e;
            long n = strtol(v, &e, 10);
            if (*v == '\0' || *e || n < 2 || n > 26) {
                snprintf(err, err_len, "option options: expected an integer in [2, 26], got '%s'",
                         v);
                return NULL;
            }
            c.n_options = (int)n;
        } else {
            snprintf(err, err_len, "unknown option '%s' (choice takes options)", opts[i].key);
            return NULL;
        }
    }
    choice_cfg *self = malloc(sizeof *self);
    if (!self) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    *self = c;
    return self;
}

static void choice_destroy(void *self) {
    free(self);
}

static void choice_score(void *p, const rl_vsample *s, rl_vresult *out) {
    const choice_cfg *c = p;
    char want = rl_choice_reference(s->answer);
    out->score = 0;
    if (!want || want - 'A' >= c->n_options) {
        out->status = RL_VERIFY_SKIPPED;
        snprintf(out->detail, sizeof out->detail, "reference is not a letter of A..%c",
                 'A' + c->n_options - 1);
        return;
    }
    out->status = RL_VERIFY_OK;
    char got = rl_choice_extract(s->completion, c->n_options);
    if (!got) {
        snprintf(out->detail, sizeof out->detail, "no answer letter, reference %c", want);
        return;
    }
    out->score = got == want ? 1.0 : 0.0;
    snprintf(out->detail, sizeof out->detail, "answer %c, reference %c", got, want);
}

static const rl_verifier_api CHOICE_API = {
    .abi_version = RL_VERIFIER_ABI_VERSION,
    .name = "choice",
    .thread_safe = 1,
    .create = choice_create,
    .score = choice_score,
    .score_group = NULL,
    .destroy = choice_destroy,
};

const rl_verifier_api *rl_verifier_choice_api(void) {
    return &CHOICE_API;
}
