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

// A percent sign written after a box ("\boxed{25}\%", "\boxed{25} %", "\boxed{25} percent"):
// the length of the sign, 0 when there is none.
static int percent_after(const char *p, const char *end) {
    static const char *const signs[] = {
        "\\%",     "%",        "\\text{\\%}", "\\text{%}", "\\text{ percent}", "\\text{percent}",
        "percent", "per cent", "pct"};
    const char *q = p;
    for (int k = 0; k < 3 && q < end; k++) { // spacing: " ", "\,", "\ ", "$"
        while (q < end && (*q == ' ' || *q == '\t')) q++;
        if (end - q >= 2 && q[0] == '\\' && (q[1] == ',' || q[1] == ' ' || q[1] == ';'))
            q += 2;
        else if (q < end && *q == '~')
            q++;
        else if (q < end && *q == '$' && q + 1 < end && q[1] != '$')
            q++;
        else
            break;
    }
    for (size_t k = 0; k < sizeof signs / sizeof signs[0]; k++) {
        size_t n = strlen(signs[k]);
        if ((size_t)(end - q) >= n && starts_ci(q, end, signs[k]) &&
            !(isalpha((unsigned char)signs[k][n - 1]) && q + n < end &&
              isalpha((unsigned char)q[n])))
            return (int)(q + n - p);
    }
    return 0;
}

// Whether a box's content already says percent.
static int has_percent(const char *a, const char *b) {
    for (const char *p = a; p < b; p++)
        if (*p == '%' || starts_ci(p, b, "percent") || starts_ci(p, b, "pct")) return 1;
    return 0;
}

int mx_boxes(const char *s, const char *end, char *out, size_t cap) {
    const char *box[MAX_BOXES];
    int len[MAX_BOXES], pct[MAX_BOXES], n = 0, extra = 0, cmd;
    const char *p = s, *taken = s;
    if (cap) out[0] = '\0';
    while ((p = next_box(p, end, &cmd)) != NULL) {
        if (p < taken) { // a box inside the previous box
            p += cmd;
            continue;
        }
        const char *q = p + cmd, *a, *b;
        int is_pct = 0; // a percent sign follows the box
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
            int sign = percent_after(taken, end);
            is_pct = sign && !has_percent(a, b);
            if (is_pct) taken += sign;
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
        for (int k = 0; k < n && !dup; k++)
            dup = pct[k] == is_pct && same_content(box[k], len[k], a, (int)(b - a));
        if (dup) continue;
        if (n < MAX_BOXES) {
            box[n] = a;
            pct[n] = is_pct;
            len[n++] = (int)(b - a);
        } else {
            extra++;
        }
    }
    size_t used = 0;
    for (int k = 0; k < n; k++) {
        size_t need = (size_t)len[k] + (k ? 2 : 0) + (pct[k] ? 2 : 0);
        if (used + need + 1 > cap) return -1;
        if (k) memcpy(out + used, ", ", 2), used += 2;
        memcpy(out + used, box[k], (size_t)len[k]);
        used += (size_t)len[k];
        if (pct[k]) memcpy(out + used, "\\%", 2), used += 2;
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
    ok += percent_after(ok, end); // "increases by 100%", "25 \%", "25 percent"
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

// One TeX argument at p ({group} or one character); the position after it, or NULL.
static const char *tex_arg_end(const char *p, const char *end) {
    while (p < end && *p == ' ') p++;
    if (p >= end) return NULL;
    if (*p != '{') return isalnum((unsigned char)*p) ? p + 1 : NULL;
    int depth = 0;
    for (const char *q = p; q < end && q - p < 512; q++) {
        if (*q == '\\' && q + 1 < end) {
            q++;
            continue;
        }
        if (*q == '{')
            depth++;
        else if (*q == '}' && --depth == 0)
            return q + 1;
    }
    return NULL;
}

// A bare \frac{a}{b} or \sqrt{a} outside any environment ("\frac{3}{4}" as the whole answer is
// three quarters, never its denominator).
static int latex_at(const char *p, const char *end, span *out) {
    static const char *const cmds[] = {"\\frac", "\\dfrac", "\\tfrac", "\\sqrt"};
    for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++) {
        size_t n = strlen(cmds[k]);
        if ((size_t)(end - p) <= n || memcmp(p, cmds[k], n) != 0 || isalpha((unsigned char)p[n]))
            continue;
        const char *q = tex_arg_end(p + n, end);
        if (q && k < 3) q = tex_arg_end(q, end);
        if (!q) return 0;
        *out = (span){p, q, q};
        return 1;
    }
    return 0;
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
        } else if (*p == '\\' && latex_at(p, end, &t)) {
            if (p > s && p[-1] == '-') t.a--;
            num = t;
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

// Where an explaining clause starts in [p, stop) (", since", " because", " (", "; "), or stop.
static const char *clause_end(const char *p, const char *stop) {
    static const char *const cues[] = {", since ", " since ", ", because ", " because ", ", as ",
                                       ", which ", " which ", ", where ",   " where ",   ", so ",
                                       " (",       "; ",      ", but ",     " but "};
    const char *best = stop;
    for (size_t k = 0; k < sizeof cues / sizeof cues[0]; k++) {
        size_t n = strlen(cues[k]);
        for (const char *q = p; q + n <= best; q++) {
            if (*q == '$') { // never inside an environment
                const char *z = memchr(q + 1, '$', (size_t)(stop - q - 1));
                if (!z) break;
                q = z;
                continue;
            }
            if (starts_ci(q, stop, cues[k])) {
                if (q > p) best = q;
                break;
            }
        }
    }
    return best;
}

// The answer after an anchor at p: an environment right there, the whole rest of the sentence
// (up to an explaining clause), or the rightmost math in it.
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
    // "the answer is 12, since there are 4 groups of 3": the clause after the answer explains it
    const char *clause = clause_end(p, stop);
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
    if (clause < stop && parses(p, clause)) {
        *a = p;
        *b = clause;
        return 1;
    }
    if ((clause < stop && rightmost(p, clause, &t)) || rightmost(p, stop, &t)) {
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

// Whether [a, b) as a whole is one answer that is not only words ("\frac{3}{4}", "x = 5").
static int whole_answer(const char *a, const char *b) {
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    if (b <= a || b - a > 512) return 0;
    // prose is never one answer ("So it is 25%." is not the product S o i t i s 25%)
    for (const char *p = a; p < b; p++) {
        if (*p == '\\') { // a command and, for \text-like ones, its argument
            const char *q = p + 1;
            while (q < b && isalpha((unsigned char)*q)) q++;
            p = q - 1;
            continue;
        }
        if (isalpha((unsigned char)*p) && p + 1 < b && isalpha((unsigned char)p[1]) &&
            (p == a || !isalpha((unsigned char)p[-1])) && (p == a || p[-1] != '{')) {
            const char *q = p;
            while (q < b && isalpha((unsigned char)*q)) q++;
            static const char *const math_words[] = {
                "sin", "cos", "tan", "ln",      "log",        "exp", "pi",  "sqrt", "gcd",
                "lcm", "max", "min", "percent", "percentage", "pct", "per", "cent"};
            int ok = 0;
            for (size_t k = 0; k < sizeof math_words / sizeof math_words[0] && !ok; k++)
                ok = (size_t)(q - p) == strlen(math_words[k]) && starts_ci(p, q, math_words[k]);
            if (!ok) return 0;
            p = q - 1;
        }
    }
    mx_expr *e = mx_parse(a, (size_t)(b - a), 0);
    int ok = e && e->root >= 0;
    if (ok) {
        const mx_node *r = mx_at(e, e->root);
        if (r->kind == MX_TEXT || (r->kind == MX_LIST && mx_at(e, r->a)->kind == MX_TEXT)) ok = 0;
    }
    mx_free(e);
    return ok;
}

static int word_at(const char *p, const char *end, const char *w) {
    size_t n = strlen(w);
    return starts_ci(p, end, w) && (p + n >= end || !isalpha((unsigned char)p[n]));
}

// Where trailing remarks begin: the first line or sentence in the last 2000 bytes that opens
// with "Note", "Remark", "Check", "I hope" ..., after which nothing concludes again
// ("therefore", "thus", "so the"). NULL when there is none.
const char *mx_remark_start(const char *s, const char *end) {
    static const char *const opens[] = {"note",        "remark",      "check",  "verification",
                                        "verify",      "explanation", "i hope", "hope this",
                                        "let me know", "feel free",   "p.s",    "alternatively"};
    static const char *const concl[] = {"therefore", "thus",     "hence", "so",
                                        "then",      "in total", "final", "answer",
                                        "we get",    "gives",    "total"};
    const char *from = end - s > 2000 ? end - 2000 : s;
    for (const char *p = from; p < end; p++) {
        int start = p == s || p[-1] == '\n' || (p - s >= 2 && p[-1] == ' ' && strchr(".!?", p[-2]));
        if (!start) continue;
        const char *q = p;
        while (q < end && (*q == ' ' || *q == '*' || *q == '#' || *q == '>' || *q == '(' ||
                           *q == '_' || *q == '-'))
            q++;
        int opened = 0;
        for (size_t k = 0; k < sizeof opens / sizeof opens[0] && !opened; k++)
            opened = word_at(q, end, opens[k]);
        if (!opened || p == s) continue;
        // a later sentence that concludes again ("Then 7 * 6 = 42.") ends the remarks
        int concludes = 0;
        for (const char *r = q + 1; r < end && !concludes; r++) {
            if (!(r[-1] == '\n' || (r - q >= 2 && r[-1] == ' ' && strchr(".!?:", r[-2])))) continue;
            const char *w = r;
            while (w < end && (*w == ' ' || *w == '*' || *w == '#')) w++;
            for (size_t k = 0; k < sizeof concl / sizeof concl[0] && !concludes; k++)
                concludes = word_at(w, end, concl[k]);
        }
        if (!concludes) return p;
    }
    return NULL;
}

// Whether [a, b) joins a value to its approximation with nothing else (", which is", " or ",
// " = ", "(i.e."): "the radius is 2, so the area is about 12.57" keeps 12.57.
static int only_filler(const char *a, const char *b) {
    static const char *const words[] = {"which", "is", "that",   "or",
                                        "i.e.",  "ie", "equals", "this"};
    if (b - a > 40) return 0;
    for (const char *p = a; p < b;) {
        if (strchr(" ,;:()$=", *p)) {
            p++;
            continue;
        }
        size_t k = 0, n = 0;
        for (; k < sizeof words / sizeof words[0]; k++) {
            n = strlen(words[k]);
            if ((size_t)(b - p) >= n && starts_ci(p, b, words[k]) &&
                (p + n == b || !isalpha((unsigned char)p[n])))
                break;
        }
        if (k == sizeof words / sizeof words[0]) return 0;
        p += n;
    }
    return 1;
}

// Where a word saying "approximately" ends just before p ("about $0.17$", "\approx 0.17"):
// the start of that word, else NULL.
static const char *approximation_before(const char *s, const char *p) {
    static const char *const words[] = {"approximately", "about",  "roughly",     "around",
                                        "\\approx",      "nearly", "\xE2\x89\x88"};
    const char *q = p;
    while (q > s && (q[-1] == ' ' || q[-1] == '$' || q[-1] == '(' || q[-1] == '\\')) q--;
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++) {
        size_t n = strlen(words[k]);
        if ((size_t)(q - s) >= n && starts_ci(q - n, q, words[k])) return q - n;
    }
    return NULL;
}

int mx_junk(const char *s, const char *end) {
    // random LaTeX: braces that never balance, and no prose
    long depth = 0, broken = 0, words = 0;
    for (const char *p = s; p < end; p++) {
        if (*p == '\\' && p + 1 < end) {
            p++;
            while (p + 1 < end && isalpha((unsigned char)p[1])) p++;
            continue;
        }
        if (*p == '{') {
            depth++;
        } else if (*p == '}') {
            if (--depth < 0) broken++, depth = 0;
        } else if (isalpha((unsigned char)*p) && (p == s || p[-1] == ' ' || p[-1] == '\n')) {
            const char *q = p;
            while (q < end && isalpha((unsigned char)*q)) q++;
            if (q - p >= 3 && (q == end || strchr(" .,:;!?\n", *q))) words++;
            p = q - 1;
        }
    }
    long len = (long)(end - s);
    if (broken + depth > 3) return 1;
    return len > 16384 && words * 1000 < len;
}

int mx_find_answer(const char *s, const char *end, const char **a, const char **b) {
    if (whole_answer(s, end)) {
        while (s < end && isspace((unsigned char)*s)) s++;
        while (end > s && isspace((unsigned char)end[-1])) end--;
        *a = s;
        *b = end;
        return 1;
    }
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
    const char *cut = mx_remark_start(s, end);
    if ((cut && rightmost(s, cut, &t)) || rightmost(s, end, &t)) {
        // "$\frac{1}{6}$, which is about $0.17$": the exact value before its approximation
        const char *w = approximation_before(s, t.a);
        span u;
        if (w && rightmost(s, w, &u) && only_filler(u.end, w)) t = u;
        *a = t.a;
        *b = t.b;
        return 1;
    }
    return 0;
}
