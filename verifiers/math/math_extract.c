// math_extract: finding the final answer in a completion (boxes, anchors, the rightmost math).
// See math_verify.h for the priorities.
#include "verifiers/math/math_internal.h"

#include <ctype.h>
#include <string.h>

#define MAX_BOXES 16 // distinct boxes kept (more are still "several answers")

static int starts_ci(const char *p, const char *end, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(end - p) < n) return 0;
    for (size_t k = 0; k < n; k++)
        if (tolower((unsigned char)p[k]) != lit[k]) return 0;
    return 1;
}

// Next occurrence of \boxed or \fbox at or after p; sets *cmd_len.
static const char *next_box(const char *p, const char *end, int *cmd_len) {
    for (; p < end; p++) {
        p = memchr(p, '\\', (size_t)(end - p));
        if (!p) return NULL;
        int n = 0;
        if (end - p >= 6 && memcmp(p, "\\boxed", 6) == 0)
            n = 6;
        else if (end - p >= 5 && memcmp(p, "\\fbox", 5) == 0)
            n = 5;
        if (n && !(p + n < end && isalpha((unsigned char)p[n]))) {
            *cmd_len = n;
            return p;
        }
    }
    return NULL;
}

// Same content apart from whitespace.
static int same_content(const char *a, int na, const char *b, int nb) {
    int i = 0, j = 0;
    for (;;) {
        while (i < na && isspace((unsigned char)a[i])) i++;
        while (j < nb && isspace((unsigned char)b[j])) j++;
        if (i == na || j == nb) return i == na && j == nb;
        if (a[i++] != b[j++]) return 0;
    }
}

int mx_boxes(const char *s, const char *end, char *out, size_t cap) {
    const char *box[MAX_BOXES];
    int len[MAX_BOXES], n = 0, extra = 0, cmd;
    const char *p = s, *taken = s;
    if (cap) out[0] = '\0';
    while ((p = next_box(p, end, &cmd)) != NULL) {
        if (p < taken) { // a box inside the previous box
            p += cmd;
            continue;
        }
        const char *q = p + cmd, *a, *b;
        while (q < end && (*q == ' ' || *q == '\t')) q++;
        if (q < end && *q == '{') {
            int depth = 0;
            const char *r = q;
            for (; r < end; r++) {
                if (*r == '\\' && r + 1 < end) {
                    r++;
                    continue;
                }
                if (*r == '{')
                    depth++;
                else if (*r == '}' && --depth == 0)
                    break;
            }
            if (r >= end) break; // unbalanced: the box never closes
            a = q + 1;
            b = r;
            taken = r + 1;
        } else { // \boxed 5
            a = q;
            b = q;
            while (b < end && !isspace((unsigned char)*b) && *b != '$') b++;
            while (b > a && strchr(".,;", b[-1])) b--;
            taken = b;
        }
        p = taken;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (a == b) continue;
        if (b - a > MX_MAX_TEXT) return -1;
        int dup = 0;
        for (int k = 0; k < n && !dup; k++) dup = same_content(box[k], len[k], a, (int)(b - a));
        if (dup) continue;
        if (n < MAX_BOXES) {
            box[n] = a;
            len[n++] = (int)(b - a);
        } else {
            extra++;
        }
    }
    size_t used = 0;
    for (int k = 0; k < n; k++) {
        size_t need = (size_t)len[k] + (k ? 2 : 0);
        if (used + need + 1 > cap) return -1;
        if (k) memcpy(out + used, ", ", 2), used += 2;
        memcpy(out + used, box[k], (size_t)len[k]);
        used += (size_t)len[k];
        out[used] = '\0';
    }
    return n + extra;
}

// ---- LaTeX environments and plain numbers -----------------------------------------------------
typedef struct span {
    const char *a, *b; // inner text
    const char *end;   // where the whole match ends (rightmost wins)
} span;

// What earlier searches for closing delimiters learnt, so that many openers without a closer
// ("\\[" repeated) cost one pass, not one pass each: for each kind there is no closer in
// [opener, free), and nl says that an inline environment is cut by a line break at free.
typedef struct envscan {
    const char *free[4];
    int nl[4];
} envscan;

enum { ENV_DD, ENV_D, ENV_PAREN, ENV_BRACKET }; // $$ $ \( \[

// Finds the end delimiter lit of an environment opened before p; inline forms must not cross a
// line break, and no environment is longer than one answer.
static const char *find_close(envscan *S, int kind, const char *p, const char *end, const char *lit,
                              int inline_env) {
    size_t n = strlen(lit);
    const char *limit = end - p > MX_MAX_TEXT ? p + MX_MAX_TEXT : end;
    const char *q = p;
    if (p < S->free[kind]) {
        if (S->nl[kind]) return NULL;
        q = S->free[kind];
    }
    for (; q + n <= limit; q++) {
        if (inline_env && *q == '\n') {
            S->free[kind] = q;
            S->nl[kind] = 1;
            return NULL;
        }
        if (*q == '\\' && lit[0] == '$' && q + 1 < end && q[1] == '$') {
            q++;
            continue;
        }
        if (memcmp(q, lit, n) == 0) return q;
    }
    S->free[kind] = q;
    S->nl[kind] = 0;
    return NULL;
}

// The environment starting at p, if any.
static int env_at(envscan *S, const char *p, const char *end, span *out) {
    const char *c = NULL;
    if (*p == '$' && p + 1 < end && p[1] == '$') {
        if ((c = find_close(S, ENV_DD, p + 2, end, "$$", 0))) *out = (span){p + 2, c, c + 2};
    } else if (*p == '$') {
        if ((c = find_close(S, ENV_D, p + 1, end, "$", 1)) && c > p + 1)
            *out = (span){p + 1, c, c + 1};
        else
            c = NULL;
    } else if (*p == '\\' && p + 1 < end && p[1] == '(') {
        if ((c = find_close(S, ENV_PAREN, p + 2, end, "\\)", 1))) *out = (span){p + 2, c, c + 2};
    } else if (*p == '\\' && p + 1 < end && p[1] == '[') {
        if ((c = find_close(S, ENV_BRACKET, p + 2, end, "\\]", 0))) *out = (span){p + 2, c, c + 2};
    }
    return c != NULL;
}

// Between two environments only a separator: "$1$, $2$", "$3$ or $5$", "$12$ and $13$".
static int joins_envs(const char *a, const char *b) {
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    if (a == b || (b - a == 1 && *a == ',')) return 1;
    if (b - a == 3 && starts_ci(a, b, "and")) return 1;
    if (b - a == 2 && starts_ci(a, b, "or")) return 1;
    return 0;
}

// Up to 5 environments joined by separators after env t: the span from t's inside to the last's.
static span merge_forward(envscan *S, span t, const char *end) {
    for (int k = 1; k < 5; k++) {
        const char *q = t.end;
        while (q < end && (isspace((unsigned char)*q) || *q == ',')) q++;
        if (starts_ci(q, end, "and"))
            q += 3;
        else if (starts_ci(q, end, "or"))
            q += 2;
        while (q < end && isspace((unsigned char)*q)) q++;
        span u;
        if (q >= end || !(*q == '$' || *q == '\\') || !env_at(S, q, end, &u) ||
            !joins_envs(t.end, q))
            break;
        t.b = u.b;
        t.end = u.end;
    }
    return t;
}

static int run_char(char c) {
    return isdigit((unsigned char)c) || (c && strchr(".,/ +-*^()", c));
}

// A plain number or arithmetic expression starting at p ("4 4/9", "1,000.99", "(15+27)/2").
static int number_at(const char *s, const char *p, const char *end, span *out) {
    int digit = isdigit((unsigned char)*p) ||
                ((*p == '-' || *p == '.') && p + 1 < end && isdigit((unsigned char)p[1]));
    if (!digit) return 0;
    if (p > s && (isalnum((unsigned char)p[-1]) || strchr("_^\\.", p[-1]))) return 0;
    const char *q = p;
    while (q < end && run_char(*q)) q++;
    while (q > p && !(isdigit((unsigned char)q[-1]) || q[-1] == ')')) q--;
    // unbalanced closing parentheses belong to the sentence
    int depth = 0;
    const char *ok = p;
    for (const char *r = p; r < q; r++) {
        if (*r == '(')
            depth++;
        else if (*r == ')' && --depth < 0)
            break;
        if (depth == 0 && (isdigit((unsigned char)*r) || *r == ')')) ok = r + 1;
    }
    if (ok == p) return 0;
    if (ok < end && *ok == '%') ok++; // "increases by 100%"
    *out = (span){p, ok, ok};
    return 1;
}

static int parses(const char *a, const char *b) {
    if (b <= a || b - a > MX_MAX_TEXT) return 0;
    mx_expr *e = mx_parse(a, (size_t)(b - a), 0);
    int ok = e && e->root >= 0;
    mx_free(e);
    return ok;
}

// The rightmost environment or number in [s, end) that parses. A number that does not parse
// is retried from its later words ("4 4/9 2" -> "2").
static int rightmost(const char *s, const char *end, span *out) {
    span env = {0}, num = {0}, t;
    span recent[5]; // the last environments, for joining "$12$ and $13$"
    int n_recent = 0;
    envscan S = {{0}, {0}};
    for (const char *p = s; p < end; p++) {
        if ((*p == '$' || *p == '\\') && env_at(&S, p, end, &t)) {
            // an environment joined to the previous ones by a separator extends them
            int joined = n_recent > 0 && joins_envs(recent[(n_recent - 1) % 5].end, p);
            if (!joined) n_recent = 0;
            recent[n_recent % 5] = t;
            n_recent++;
            env = t;
            if (n_recent > 1) env.a = recent[(n_recent > 5 ? n_recent - 5 : 0) % 5].a;
            p = t.end - 1;
        } else if (*p == '\\' && p + 1 < end) {
            p++; // \$ and other escapes
        } else if (number_at(s, p, end, &t)) {
            num = t;
            p = t.end - 1;
        }
    }
    span cand[2];
    int n = 0;
    if (env.a && (!num.a || env.end >= num.end)) cand[n++] = env;
    if (num.a) cand[n++] = num;
    if (env.a && num.a && env.end < num.end) cand[n++] = env;
    for (int k = 0; k < n; k++) {
        if (parses(cand[k].a, cand[k].b)) {
            *out = cand[k];
            return 1;
        }
        if (cand[k].a == num.a) { // shrink a plain run from the left, a word at a time
            int tries = 0;
            const char *from = cand[k].b - cand[k].a > 200 ? cand[k].b - 200 : cand[k].a;
            for (const char *p = from; p < cand[k].b && tries < 8; p++) {
                if (*p != ' ') continue;
                tries++;
                if (parses(p + 1, cand[k].b)) {
                    *out = (span){p + 1, cand[k].b, cand[k].b};
                    return 1;
                }
            }
        }
    }
    return 0;
}

// End of the sentence that starts at p (a period before a space, a blank line), at most 300 bytes.
static const char *sentence_end(const char *p, const char *end) {
    const char *limit = end - p > 300 ? p + 300 : end;
    span t;
    envscan S = {{0}, {0}};
    for (const char *q = p; q < limit; q++) {
        if ((*q == '$' || *q == '\\') && env_at(&S, q, end, &t)) {
            q = t.end - 1;
            if (q >= limit) return t.end;
            continue;
        }
        if (*q == '\n' && q + 1 < end && q[1] == '\n') return q;
        if (*q == '.' && (q + 1 >= end || isspace((unsigned char)q[1]))) return q;
    }
    return limit;
}

// The answer after an anchor at p: an environment right there, the whole rest of the sentence,
// or the rightmost math in it.
static int after_anchor(const char *p, const char *end, const char **a, const char **b) {
    static const char *const filler[] = {"is", "the", "final", "answer", "was", "be", "=", ":"};
    for (;;) {
        while (p < end && (isspace((unsigned char)*p) || *p == '"' || *p == '\'' ||
                           (*p == '\\' && p + 1 < end && p[1] == '"')))
            p += *p == '\\' ? 2 : 1;
        int skipped = 0;
        for (size_t k = 0; k < sizeof filler / sizeof filler[0]; k++) {
            size_t n = strlen(filler[k]);
            if (starts_ci(p, end, filler[k]) &&
                (p + n >= end || !isalpha((unsigned char)p[n]) || !isalpha((unsigned char)*p))) {
                p += n;
                skipped = 1;
                break;
            }
        }
        if (!skipped) break;
    }
    const char *stop = sentence_end(p, end);
    span t;
    envscan S = {{0}, {0}};
    if (p < end && (*p == '$' || *p == '\\') && env_at(&S, p, end, &t) &&
        (t = merge_forward(&S, t, end), parses(t.a, t.b))) {
        *a = t.a;
        *b = t.b;
        return 1;
    }
    if (parses(p, stop)) {
        *a = p;
        *b = stop;
        return 1;
    }
    if (rightmost(p, stop, &t)) {
        *a = t.a;
        *b = t.b;
        return 1;
    }
    return 0;
}

// Last occurrence of a case-insensitive anchor in [s, end); the position after it.
static const char *last_anchor(const char *s, const char *end, const char *lit) {
    size_t n = strlen(lit);
    for (const char *p = end - n; p >= s; p--)
        if (starts_ci(p, end, lit)) return p + n;
    return NULL;
}

int mx_find_answer(const char *s, const char *end, const char **a, const char **b) {
    static const char *const anchors[][3] = {
        {"final answer is", NULL, NULL},
        {"answer:", "answer is", NULL},
        {"answer", NULL, NULL},
    };
    for (int level = 0; level < 3; level++) {
        const char *best = NULL;
        for (int k = 0; k < 3 && anchors[level][k]; k++) {
            const char *q = last_anchor(s, end, anchors[level][k]);
            if (q && (!best || q > best)) best = q;
        }
        if (best && after_anchor(best, end, a, b)) return 1;
    }
    span t;
    if (rightmost(s, end, &t)) {
        *a = t.a;
        *b = t.b;
        return 1;
    }
    return 0;
}
