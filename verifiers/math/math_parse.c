// math_parse: recursive-descent parser from tokens to the mx_node tree. See math_expr.h.
//
// Precedence, lowest first: list (, ; and or) < relation chain (= < \le ... and :) < union (\cup)
// < sum (+ - \pm) < product (* / \times \cdot, juxtaposition) < sign < power (^) < postfix (! %)
// < primary. Sums and products are n-ary (children through next; a product child with rel = 1
// is a divisor), so long sums do not make deep trees; every other nesting counts against
// MX_MAX_DEPTH.
#include "verifiers/math/math_expr.h"
#include "verifiers/math/math_lex.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    mx_expr *e;
    int i;         // current token
    int depth;     // nesting depth
    int abs_depth; // inside |...|: '|' closes
    int failed;
} parser;

static const struct mx_tok *tok(const parser *P) {
    return &P->e->toks[P->i];
}
static const struct mx_tok *tok_at(const parser *P, int k) {
    int j = P->i + k;
    return &P->e->toks[j < P->e->n_toks ? j : P->e->n_toks - 1];
}
static void adv(parser *P) {
    if (tok(P)->t != T_END) P->i++;
}
static int is_ch(const struct mx_tok *t, int c) {
    return t->t == T_CH && t->id == c;
}
static int is_cmd(const struct mx_tok *t, int kind) {
    return t->t == T_CMD && t->x == kind;
}
static int is_op(const struct mx_tok *t, int op) {
    return t->t == T_CMD && t->x == CK_OP && t->id == op;
}

static int fail(parser *P, const char *fmt, ...) {
    if (!P->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(P->e->err, sizeof P->e->err, fmt, ap);
        va_end(ap);
    }
    P->failed = 1;
    return -1;
}

static int fail_tok(parser *P, const char *what) {
    const struct mx_tok *t = tok(P);
    if (t->t == T_END) return fail(P, "%s: unexpected end", what);
    return fail(P, "%s: unexpected '%.*s'", what, t->n > 20 ? 20 : t->n, t->s);
}

static int new_node(parser *P, int kind) {
    mx_expr *e = P->e;
    if (e->n_nodes >= e->cap_nodes) return fail(P, "expression too large");
    int i = e->n_nodes++;
    mx_node *n = &e->nodes[i];
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->a = n->b = n->next = -1;
    return i;
}

static int node2(parser *P, int kind, int a, int b) {
    if (a < 0 && kind != MX_PM) return -1;
    int i = new_node(P, kind);
    if (i < 0) return -1;
    P->e->nodes[i].a = a;
    P->e->nodes[i].b = b;
    if (kind == MX_PM) P->e->nodes[i].len = P->e->n_pm++;
    return i;
}

static mx_node *N(parser *P, int i) {
    return &P->e->nodes[i];
}

// Appends node x to the list held by node l (a = first), keeping a tail pointer in b.
static void list_push(parser *P, int l, int x) {
    mx_node *L = N(P, l);
    if (L->a < 0)
        L->a = x;
    else
        N(P, L->b)->next = x;
    L->b = x;
    L->len++;
}

static int list_new(parser *P, int kind, int first) {
    int l = new_node(P, kind);
    if (l < 0) return -1;
    list_push(P, l, first);
    return l;
}

// A list node's b was its tail; lists keep b = -1 once complete (intervals use a and b).
static void list_done(parser *P, int l) {
    N(P, l)->b = -1;
}

static int enter(parser *P) {
    if (++P->depth > MX_MAX_DEPTH) return fail(P, "too deeply nested");
    return 0;
}
static void leave(parser *P) {
    P->depth--;
}

// ---- token classes -------------------------------------------------------------------------
static const char *const MATH_WORDS[] = {
    "sin",  "cos",  "tan",  "sec", "csc",   "cot",      "arcsin", "arccos", "arctan",
    "sinh", "cosh", "tanh", "ln",  "log",   "exp",      "sqrt",   "gcd",    "lcm",
    "max",  "min",  "pi",   "inf", "infty", "infinity", NULL};
static const int MATH_WORD_FUNC[] = {MXF_SIN,  MXF_COS,  MXF_TAN,  MXF_SEC,  MXF_CSC,  MXF_COT,
                                     MXF_ASIN, MXF_ACOS, MXF_ATAN, MXF_SINH, MXF_COSH, MXF_TANH,
                                     MXF_LN,   MXF_LOG,  MXF_EXP,  -1,       MXF_GCD,  MXF_LCM,
                                     MXF_MAX,  MXF_MIN,  -2,       -3,       -3,       -3};

static int math_word(const struct mx_tok *t) {
    if (t->t != T_WORD) return -1;
    for (int k = 0; MATH_WORDS[k]; k++)
        if (mx_tok_is(t, MATH_WORDS[k])) return k;
    return -1;
}

static int text_is(const struct mx_tok *t, const char *w) {
    // \text{ and } with spaces around
    const char *a = t->s, *b = t->s + t->n;
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    size_t n = strlen(w);
    if ((size_t)(b - a) != n) return 0;
    for (size_t k = 0; k < n; k++)
        if (tolower((unsigned char)a[k]) != w[k]) return 0;
    return 1;
}

static int is_separator(const parser *P, const struct mx_tok *t) {
    (void)P;
    if (is_ch(t, ',') || is_ch(t, ';')) return 1;
    if (t->t == T_WORD && (mx_tok_is(t, "and") || mx_tok_is(t, "or"))) return 1;
    if (t->t == T_TEXT && (text_is(t, "and") || text_is(t, "or") || text_is(t, ","))) return 1;
    return 0;
}

static int is_percent_word(const struct mx_tok *t) {
    if (t->t == T_TEXT) // \text{ percent}, \text{\%}, \text{per cent}
        return text_is(t, "percent") || text_is(t, "pct") || text_is(t, "percentage") ||
               text_is(t, "per cent") || text_is(t, "\\%") || text_is(t, "%");
    return t->t == T_WORD &&
           (mx_tok_is(t, "percent") || mx_tok_is(t, "pct") || mx_tok_is(t, "percentage"));
}

static int is_closer(const parser *P, const struct mx_tok *t) {
    switch (t->t) {
    case T_END:
    case T_SETR:
    case T_ROW:
    case T_ENDENV:
        return 1;
    case T_CH:
        return t->id == ')' || t->id == ']' || t->id == '}' || t->id == '&' ||
               (t->id == '|' && P->abs_depth > 0);
    case T_CMD:
        return t->x == CK_RANGLE || t->x == CK_RFLOOR || t->x == CK_RCEIL;
    default:
        return 0;
    }
}

// Two-letter unit abbreviations (longer unknown words after a value are units anyway).
static int unit_word(const struct mx_tok *t) {
    static const char *const two[] = {"cm", "mm", "km", "ft", "in", "kg", "mg", "ml",
                                      "lb", "oz", "hr", "yd", "mi", "sq", "cu", "dm",
                                      "mL", "kW", "Hz", "ms", "pm", "am", NULL};
    if (t->t != T_WORD || math_word(t) >= 0 || is_percent_word(t)) return 0;
    if (mx_tok_is(t, "and") || mx_tok_is(t, "or")) return 0;
    if (t->n >= 3) return 1;
    for (int k = 0; two[k]; k++)
        if (t->n == 2 && memcmp(t->s, two[k], 2) == 0) return 1;
    return 0;
}

// Units at the end of a value ("5 \text{ cm}^2", "125 miles", "3 km/h"): when the tokens from
// here are only units up to a closer, a separator or a relation, skips them and returns 1.
static int skip_trailing_units(parser *P) {
    int j = P->i, seen = 0;
    const mx_expr *e = P->e;
    for (;;) {
        const struct mx_tok *t = &e->toks[j];
        if (t->t == T_TEXT && !is_separator(P, t))
            j++, seen = 1;
        else if (unit_word(t))
            j++, seen = 1;
        else if (seen && t->t == T_CH && t->id == '^' && e->toks[j + 1].t == T_NUM)
            j += 2;
        else if (seen && t->t == T_CH && t->id == '^' && is_ch(&e->toks[j + 1], '{') &&
                 e->toks[j + 2].t == T_NUM && is_ch(&e->toks[j + 3], '}'))
            j += 4;
        else if (seen && t->t == T_CH && (t->id == '/' || t->id == '.' || t->id == '-') &&
                 (e->toks[j + 1].t == T_TEXT || unit_word(&e->toks[j + 1])))
            j++;
        else if (seen && is_ch(t, '.') &&
                 (e->toks[j + 1].t == T_END || is_closer(P, &e->toks[j + 1])))
            j++;
        else
            break;
    }
    const struct mx_tok *t = &e->toks[j];
    if (!seen || !(is_closer(P, t) || is_separator(P, t) || t->t == T_REL)) return 0;
    P->i = j;
    return 1;
}

static int starts_primary(const parser *P, const struct mx_tok *t) {
    switch (t->t) {
    case T_NUM:
    case T_BEGIN: // 2\begin{pmatrix}...\end{pmatrix}: a scalar times a matrix
        return 1;
    case T_WORD:
        if (is_separator(P, t) || is_percent_word(t)) return 0;
        return math_word(t) >= 0 || t->n <= 2;
    case T_CMD:
        return t->x == CK_FUNC || t->x == CK_CONST || t->x == CK_GREEK || t->x == CK_FRAC ||
               t->x == CK_SQRT || t->x == CK_BINOM || t->x == CK_LFLOOR || t->x == CK_LCEIL ||
               t->x == CK_UNKNOWN;
    case T_CH:
        return t->id == '(' || t->id == '{' || (t->id == '|' && P->abs_depth == 0);
    default:
        return 0;
    }
}

// ---- grammar --------------------------------------------------------------------------------
static int parse_list(parser *P);
static int parse_rel(parser *P);
static int parse_add(parser *P);
static int parse_power(parser *P);
static int parse_primary(parser *P);
static int parse_paren(parser *P, int open);

static int expect_ch(parser *P, int c, const char *what) {
    if (!is_ch(tok(P), c)) return fail_tok(P, what);
    adv(P);
    return 0;
}

// { list } after the opening brace was seen.
static int parse_brace_group(parser *P) {
    adv(P);
    if (is_ch(tok(P), '}')) return fail(P, "empty group {}");
    int x = parse_list(P);
    if (x < 0) return -1;
    if (expect_ch(P, '}', "group") < 0) return -1;
    if (N(P, x)->kind == MX_LIST) {
        N(P, x)->kind = MX_SET;
        N(P, x)->op = 1;
    }
    return x;
}

// One TeX argument: {group}, or a single digit / letter / command (\frac12, \sqrt3).
static int parse_tex_arg(parser *P) {
    const struct mx_tok *t = tok(P);
    if (is_ch(t, '{')) {
        adv(P);
        int x = parse_list(P);
        if (x < 0) return -1;
        if (expect_ch(P, '}', "argument") < 0) return -1;
        return x;
    }
    if ((t->t == T_NUM && isdigit((unsigned char)t->s[0])) || t->t == T_WORD) {
        int kind = t->t == T_NUM ? MX_NUM : MX_SYM;
        int x = new_node(P, kind);
        if (x < 0) return -1;
        N(P, x)->s = t->s;
        N(P, x)->n = 1;
        if (kind == MX_SYM && (t->s[0] == 'e' || t->s[0] == 'i')) {
            N(P, x)->kind = MX_CONST;
            N(P, x)->op = t->s[0] == 'e' ? MXC_E : MXC_I;
        }
        struct mx_tok *m = &P->e->toks[P->i];
        if (m->n > 1) { // the rest of the token stays for the next argument
            m->s++;
            m->n--;
            m->sp = SP_NONE;
            if (m->t == T_NUM) m->x = (uint8_t)(memchr(m->s, '.', (size_t)m->n) != NULL);
        } else {
            adv(P);
        }
        return x;
    }
    if (t->t == T_CMD) return parse_primary(P);
    return fail_tok(P, "argument");
}

// A function applied to its argument: \sin x, \sin^2(x), \log_2 8, \sin^{-1} x, gcd(4, 6).
static int parse_function(parser *P, int id) {
    adv(P);
    int pw = -1, base = -1;
    if (is_ch(tok(P), '^')) {
        adv(P);
        const struct mx_tok *t0 = tok(P), *t1 = tok_at(P, 1), *t2 = tok_at(P, 2),
                            *t3 = tok_at(P, 3);
        int inverse = (is_ch(t0, '{') && is_ch(t1, '-') && t2->t == T_NUM && t2->n == 1 &&
                       t2->s[0] == '1' && is_ch(t3, '}')) ||
                      (is_ch(t0, '-') && t1->t == T_NUM && t1->n == 1 && t1->s[0] == '1');
        if (inverse && (id == MXF_SIN || id == MXF_COS || id == MXF_TAN)) {
            P->i += is_ch(t0, '{') ? 4 : 2;
            id = id == MXF_SIN ? MXF_ASIN : id == MXF_COS ? MXF_ACOS : MXF_ATAN;
        } else {
            pw = parse_tex_arg(P);
            if (pw < 0) return -1;
        }
    }
    if (is_ch(tok(P), '_')) {
        adv(P);
        base = parse_tex_arg(P);
        if (base < 0) return -1;
    }
    int arg;
    if (is_ch(tok(P), '(')) {
        adv(P);
        arg = parse_list(P);
        if (arg < 0) return -1;
        if (expect_ch(P, ')', "function argument") < 0) return -1;
        if (N(P, arg)->kind == MX_LIST) {
            if (id != MXF_GCD && id != MXF_LCM && id != MXF_MAX && id != MXF_MIN)
                return fail(P, "function with several arguments");
        }
    } else if (is_ch(tok(P), '{')) {
        arg = parse_brace_group(P);
        if (arg < 0) return -1;
    } else {
        if (enter(P) < 0) return -1;
        arg = parse_power(P);
        // \sin 2x: the argument runs on through juxtaposed factors, up to the next function
        while (arg >= 0 && starts_primary(P, tok(P)) && !is_cmd(tok(P), CK_FUNC) &&
               math_word(tok(P)) < 0 && !is_ch(tok(P), '(') && tok(P)->t != T_NUM) {
            int b = parse_power(P);
            if (b < 0) return -1;
            int m = list_new(P, MX_MUL, arg);
            if (m < 0) return -1;
            list_push(P, m, b);
            list_done(P, m);
            arg = m;
        }
        leave(P);
        if (arg < 0) return -1;
    }
    int f = node2(P, MX_FUNC, arg, base);
    if (f < 0) return -1;
    N(P, f)->op = (uint8_t)id;
    if (pw >= 0) f = node2(P, MX_POW, f, pw);
    return f;
}

static int is_plain_int(const struct mx_tok *t) {
    if (t->t != T_NUM || t->x) return 0;
    for (int k = 0; k < t->n; k++)
        if (!isdigit((unsigned char)t->s[k])) return 0;
    return 1;
}

static long small_int(const struct mx_tok *t) {
    long v = 0;
    for (int k = 0; k < t->n && v < 1000000000L; k++)
        if (isdigit((unsigned char)t->s[k])) v = v * 10 + (t->s[k] - '0');
    return v;
}

static int num_node(parser *P, const struct mx_tok *t) {
    int x = new_node(P, MX_NUM);
    if (x < 0) return -1;
    N(P, x)->s = t->s;
    N(P, x)->n = t->n;
    if (t->x) N(P, x)->flags |= MXF_FLOAT;
    return x;
}

// A number, a mixed number ("2 1/2", "2\frac{1}{2}") or a number in a base ("204_5").
static int parse_number(parser *P) {
    const struct mx_tok *t = tok(P);
    int x = num_node(P, t);
    if (x < 0) return -1;
    int whole_int = t->x == 0 && t->n <= 24 && !memchr(t->s, 'e', (size_t)t->n) &&
                    !memchr(t->s, 'E', (size_t)t->n);
    adv(P);
    // plain mixed number: integer, one space (not a line break), a/b with a < b
    const struct mx_tok *a = tok(P), *sl = tok_at(P, 1), *b = tok_at(P, 2), *after = tok_at(P, 3);
    if (whole_int && a->sp == SP_SPACE && is_plain_int(a) && is_ch(sl, '/') && is_plain_int(b) &&
        !is_ch(after, '^') && !is_ch(after, '.') && after->t != T_NUM && !is_ch(after, '/')) {
        long num = small_int(a), den = small_int(b);
        if (den == 0 || num >= den) return fail(P, "not a proper mixed number");
        int nn = num_node(P, a), dn = num_node(P, b);
        if (nn < 0 || dn < 0) return -1;
        P->i += 3;
        int fr = node2(P, MX_DIV, nn, dn);
        return node2(P, MX_MIXED, x, fr);
    }
    // LaTeX mixed number: integer immediately followed by \frac{p}{q} of integers with p < q
    if (whole_int && is_cmd(a, CK_FRAC)) {
        int save = P->i, nsave = P->e->n_toks - save < 8 ? P->e->n_toks - save : 8;
        struct mx_tok backup[8];
        memcpy(backup, &P->e->toks[save], (size_t)nsave * sizeof backup[0]);
        adv(P);
        int num = parse_tex_arg(P);
        int den = num >= 0 ? parse_tex_arg(P) : -1;
        if (num < 0 || den < 0) return -1;
        const mx_node *nu = N(P, num), *de = N(P, den);
        if (nu->kind == MX_NUM && de->kind == MX_NUM && !(nu->flags & MXF_FLOAT) &&
            !(de->flags & MXF_FLOAT)) {
            struct mx_tok tn = {T_NUM, 0, 0, 0, nu->s, nu->n, nu->s},
                          td = {T_NUM, 0, 0, 0, de->s, de->n, de->s};
            long p = small_int(&tn), q = small_int(&td);
            if (q > 0 && p < q && nu->n <= 9 && de->n <= 9) {
                int fr = node2(P, MX_DIV, num, den);
                return node2(P, MX_MIXED, x, fr);
            }
        }
        P->i = save; // not a mixed number: a product, parsed by the caller
        memcpy(&P->e->toks[save], backup, (size_t)nsave * sizeof backup[0]);
        return x;
    }
    // base: 204_5, 1011_{2}
    if (is_ch(a, '_')) {
        int j = is_ch(sl, '{') ? 2 : 1;
        const struct mx_tok *bt = tok_at(P, j);
        if (is_plain_int(bt) && (j == 1 || is_ch(tok_at(P, 3), '}'))) {
            int bn = num_node(P, bt);
            if (bn < 0) return -1;
            P->i += j == 2 ? 4 : 2;
            return node2(P, MX_BASENUM, x, bn);
        }
    }
    return x;
}

static int const_node(parser *P, int c) {
    int x = new_node(P, MX_CONST);
    if (x >= 0) N(P, x)->op = (uint8_t)c;
    return x;
}

static int sym_node(parser *P, const char *s, int n) {
    if (n == 1 && (s[0] == 'e' || s[0] == 'E')) return const_node(P, MXC_E);
    if (n == 1 && s[0] == 'i') return const_node(P, MXC_I);
    int x = new_node(P, MX_SYM);
    if (x < 0) return -1;
    N(P, x)->s = s;
    N(P, x)->n = n;
    return x;
}

// A word: a function, a constant, one letter (a variable) or two letters (a product).
static int parse_word(parser *P) {
    const struct mx_tok *t = tok(P);
    int k = math_word(t);
    if (k >= 0) {
        int id = MATH_WORD_FUNC[k];
        if (id == -2) {
            adv(P);
            return const_node(P, MXC_PI);
        }
        if (id == -3) {
            adv(P);
            return const_node(P, MXC_INF);
        }
        if (id == -1) { // sqrt written as a word
            adv(P);
            int arg = is_ch(tok(P), '(') || is_ch(tok(P), '{') ? parse_primary(P) : parse_power(P);
            return node2(P, MX_ROOT, arg, -1);
        }
        return parse_function(P, id);
    }
    if (is_separator(P, t) || is_percent_word(t)) return fail_tok(P, "value");
    if (t->n == 1 && t->s[0] == 'C' && is_ch(tok_at(P, 1), '(') && tok_at(P, 1)->sp == SP_NONE) {
        // C(n, k): the binomial coefficient (compared as the pair against a point)
        adv(P);
        int x = parse_paren(P, '(');
        if (x < 0) return -1;
        mx_node *X = N(P, x);
        if (X->kind == MX_TUPLE && X->len == 2) {
            int a = X->a, b = N(P, a)->next;
            N(P, a)->next = -1;
            int c = node2(P, MX_BINOM, a, b);
            if (c >= 0) N(P, c)->flags |= MXF_CFORM;
            return c;
        }
        int s = sym_node(P, t->s, 1), m = s >= 0 ? list_new(P, MX_MUL, s) : -1;
        if (m < 0) return -1;
        list_push(P, m, x);
        list_done(P, m);
        return m;
    }
    if (t->n > 2) return fail(P, "unexpected word '%.*s'", t->n > 20 ? 20 : t->n, t->s);
    adv(P);
    if (t->n == 1) return sym_node(P, t->s, 1);
    int a = sym_node(P, t->s, 1), b = sym_node(P, t->s + 1, 1);
    if (a < 0 || b < 0) return -1;
    int m = list_new(P, MX_MUL, a);
    if (m < 0) return -1;
    list_push(P, m, b);
    list_done(P, m);
    return m;
}

// Elements of a bracketed list, up to one of the closers; converts a list node into kind.
static int bracket_body(parser *P, int *close) {
    int x = parse_list(P);
    if (x < 0) return -1;
    const struct mx_tok *t = tok(P);
    if (!is_ch(t, ')') && !is_ch(t, ']')) return fail_tok(P, "bracket");
    *close = t->id;
    adv(P);
    return x;
}

static int to_interval(parser *P, int l, int lo_closed, int hi_closed) {
    mx_node *L = N(P, l);
    int lo = L->a, hi = N(P, lo)->next;
    N(P, lo)->next = -1;
    L->kind = MX_INTERVAL;
    L->a = lo;
    L->b = hi;
    L->op = (uint8_t)((lo_closed ? 1 : 0) | (hi_closed ? 2 : 0));
    return l;
}

static int parse_paren(parser *P, int open) {
    adv(P);
    if (is_ch(tok(P), ')') || is_ch(tok(P), ']')) return fail(P, "empty brackets");
    int close = 0;
    int x = bracket_body(P, &close);
    if (x < 0) return -1;
    mx_node *X = N(P, x);
    int same = (open == '(' && close == ')') || (open == '[' && close == ']');
    if (X->kind != MX_LIST) { // a group
        if (!same) return fail(P, "mismatched brackets");
        X->flags |= MXF_PAREN;
        return x;
    }
    if (X->len == 2 && !(open == '(' && close == ')'))
        return to_interval(P, x, open == '[', close == ']');
    if (!same) return fail(P, "mismatched brackets");
    X->kind = MX_TUPLE;
    X->op = (uint8_t)open;
    X->flags |= MXF_PAREN;
    return x;
}

static int parse_matrix(parser *P) {
    const struct mx_tok *t = tok(P);
    static const char *const envs[] = {"pmatrix", "bmatrix",     "Bmatrix", "vmatrix", "Vmatrix",
                                       "matrix",  "smallmatrix", "array",   NULL};
    int ok = 0, det = 0;
    for (int k = 0; envs[k]; k++)
        if ((size_t)t->n == strlen(envs[k]) && memcmp(t->s, envs[k], (size_t)t->n) == 0)
            ok = 1, det = k == 3; // vmatrix: a determinant
    if (!ok) return fail(P, "unsupported environment %.*s", t->n > 20 ? 20 : t->n, t->s);
    adv(P);
    int m = new_node(P, MX_MATRIX);
    if (m < 0) return -1;
    N(P, m)->op = (uint8_t)det;
    for (;;) {
        if (tok(P)->t == T_ENDENV) break;
        int row = new_node(P, MX_LIST);
        if (row < 0) return -1;
        for (;;) {
            int c = parse_rel(P);
            if (c < 0) return -1;
            list_push(P, row, c);
            if (is_ch(tok(P), '&')) {
                adv(P);
                continue;
            }
            break;
        }
        list_done(P, row);
        list_push(P, m, row);
        if (tok(P)->t == T_ROW) {
            adv(P);
            continue;
        }
        if (tok(P)->t != T_ENDENV) return fail_tok(P, "matrix");
    }
    adv(P);
    list_done(P, m);
    if (N(P, m)->len == 0) return fail(P, "empty matrix");
    return m;
}

// f(x), f'(2) when calls are enabled: letter (with primes) directly followed by '('.
static int maybe_call(parser *P, int x) {
    mx_node *X = N(P, x);
    if (!P->e->calls || X->kind != MX_SYM || X->n != 1 || !is_ch(tok(P), '(') ||
        tok(P)->sp != SP_NONE)
        return x;
    if (!X->op && !strchr("fghFGH", X->s[0])) return x;
    adv(P);
    int args = parse_list(P);
    if (args < 0) return -1;
    if (expect_ch(P, ')', "call") < 0) return -1;
    X = N(P, x);
    X->kind = MX_CALL;
    X->a = args;
    return x;
}

// {}_nC_k, _nC_k, ^nC_k: a binomial coefficient written with prescripts (at the '_' or '^').
static int parse_prescript_binom(parser *P) {
    adv(P);
    int n = parse_tex_arg(P);
    if (n < 0) return -1;
    const struct mx_tok *c = tok(P);
    if (!(c->t == T_WORD && c->n == 1 && c->s[0] == 'C') ||
        !(is_ch(tok_at(P, 1), '_') || is_ch(tok_at(P, 1), '^')))
        return fail(P, "prescript without C");
    P->i += 2;
    int k = parse_tex_arg(P);
    return k < 0 ? -1 : node2(P, MX_BINOM, n, k);
}

static int parse_primary(parser *P) {
    if (enter(P) < 0) return -1;
    const struct mx_tok *t = tok(P);
    int x = -1;
    switch (t->t) {
    case T_NUM:
        x = parse_number(P);
        break;
    case T_WORD:
        x = parse_word(P);
        break;
    case T_TEXT:
        if (is_separator(P, t)) return fail_tok(P, "value");
        x = new_node(P, MX_TEXT);
        if (x >= 0) {
            N(P, x)->s = t->s;
            N(P, x)->n = t->n;
        }
        adv(P);
        break;
    case T_ELL:
        x = new_node(P, MX_ELLIPSIS);
        adv(P);
        break;
    case T_BEGIN:
        x = parse_matrix(P);
        break;
    case T_SETL:
        adv(P);
        if (tok(P)->t == T_SETR) {
            adv(P);
            x = new_node(P, MX_EMPTYSET);
            break;
        }
        x = parse_list(P);
        if (x < 0) break;
        if (tok(P)->t != T_SETR) return fail_tok(P, "set");
        adv(P);
        if (N(P, x)->kind == MX_LIST)
            N(P, x)->kind = MX_SET;
        else {
            int s = list_new(P, MX_SET, x);
            if (s >= 0) list_done(P, s);
            x = s;
        }
        break;
    case T_CH:
        if (t->id == '(' || t->id == '[') {
            x = parse_paren(P, t->id);
        } else if (t->id == '_' || t->id == '^') {
            x = parse_prescript_binom(P);
        } else if (t->id == '{' && is_ch(tok_at(P, 1), '}') &&
                   (is_ch(tok_at(P, 2), '_') || is_ch(tok_at(P, 2), '^'))) {
            P->i += 2; // {}_5C_2
            x = parse_prescript_binom(P);
        } else if (t->id == '{') {
            x = parse_brace_group(P);
        } else if (t->id == '|') {
            adv(P);
            P->abs_depth++;
            int a = parse_add(P);
            P->abs_depth--;
            if (a < 0) return -1;
            if (expect_ch(P, '|', "absolute value") < 0) return -1;
            x = node2(P, MX_ABS, a, -1);
        } else {
            return fail_tok(P, "value");
        }
        break;
    case T_CMD:
        switch (t->x) {
        case CK_CONST:
            x = const_node(P, t->id);
            adv(P);
            break;
        case CK_GREEK:
            x = new_node(P, MX_SYM);
            if (x >= 0) {
                N(P, x)->s = t->s;
                N(P, x)->n = t->n;
            }
            adv(P);
            break;
        case CK_EMPTY:
            x = new_node(P, MX_EMPTYSET);
            adv(P);
            break;
        case CK_REALS:
            x = new_node(P, MX_REALS);
            adv(P);
            break;
        case CK_FUNC:
            x = parse_function(P, t->id);
            break;
        case CK_FRAC: {
            adv(P);
            int a = parse_tex_arg(P);
            int b = a >= 0 ? parse_tex_arg(P) : -1;
            x = b >= 0 ? node2(P, MX_DIV, a, b) : -1;
            break;
        }
        case CK_BINOM: {
            adv(P);
            int a = parse_tex_arg(P);
            int b = a >= 0 ? parse_tex_arg(P) : -1;
            x = b >= 0 ? node2(P, MX_BINOM, a, b) : -1;
            break;
        }
        case CK_SQRT: {
            int unicode = t->id == 1; // "√2": the whole next operand, not one TeX token
            adv(P);
            int idx = -1;
            if (is_ch(tok(P), '[')) {
                adv(P);
                idx = parse_add(P);
                if (idx < 0) return -1;
                if (expect_ch(P, ']', "root index") < 0) return -1;
            }
            int a = unicode ? parse_power(P) : parse_tex_arg(P);
            x = a >= 0 ? node2(P, MX_ROOT, a, idx) : -1;
            break;
        }
        case CK_LFLOOR:
        case CK_LCEIL: {
            int fl = t->x == CK_LFLOOR;
            adv(P);
            int a = parse_add(P);
            if (a < 0) return -1;
            if (!is_cmd(tok(P), fl ? CK_RFLOOR : CK_RCEIL)) return fail_tok(P, "floor/ceiling");
            adv(P);
            x = node2(P, fl ? MX_FLOOR : MX_CEIL, a, -1);
            break;
        }
        case CK_LANGLE: {
            adv(P);
            int a = parse_list(P);
            if (a < 0) return -1;
            if (!is_cmd(tok(P), CK_RANGLE)) return fail_tok(P, "angle brackets");
            adv(P);
            if (N(P, a)->kind != MX_LIST) {
                int l = list_new(P, MX_TUPLE, a);
                if (l >= 0) list_done(P, l);
                x = l;
            } else {
                N(P, a)->kind = MX_TUPLE;
                x = a;
            }
            break;
        }
        case CK_UNKNOWN: // an unknown command is a name (\zzz, \sum): equal only to itself
            x = new_node(P, MX_SYM);
            if (x >= 0) {
                N(P, x)->s = t->s;
                N(P, x)->n = t->n;
            }
            adv(P);
            break;
        default:
            return fail_tok(P, "value");
        }
        break;
    default:
        return fail_tok(P, "value");
    }
    if (x < 0) return -1;
    // subscripts and primes on variables: x_1, a_{n}, f'
    while (N(P, x)->kind == MX_SYM) {
        if (is_ch(tok(P), '\'')) {
            N(P, x)->op++;
            adv(P);
        } else if (is_ch(tok(P), '_') && N(P, x)->a < 0) {
            adv(P);
            if (is_ch(tok(P), '{') && tok_at(P, 1)->t == T_WORD && is_ch(tok_at(P, 2), '}')) {
                // S_{MBCN}, v_{max}: a subscript that is a name
                const struct mx_tok *w = tok_at(P, 1);
                int sub = new_node(P, MX_SYM);
                if (sub < 0) return -1;
                N(P, sub)->s = w->s;
                N(P, sub)->n = w->n;
                P->i += 3;
                N(P, x)->a = sub;
                continue;
            }
            int sub = parse_tex_arg(P);
            if (sub < 0) return -1;
            N(P, x)->a = sub;
        } else {
            break;
        }
    }
    x = maybe_call(P, x);
    leave(P);
    return x;
}

// Exponent after '^': a group, a signed atom, a whole number; right-associative.
static int parse_exponent(parser *P) {
    if (enter(P) < 0) return -1;
    const struct mx_tok *t = tok(P);
    int x;
    if (is_ch(t, '-') || is_ch(t, '+')) {
        int neg = is_ch(t, '-');
        adv(P);
        x = parse_exponent(P);
        if (x >= 0 && neg) x = node2(P, MX_NEG, x, -1);
        leave(P);
        return x;
    }
    if (t->t == T_WORD && t->n > 1 && math_word(t) < 0) { // x^ab: TeX takes one letter
        x = sym_node(P, t->s, 1);
        struct mx_tok *m = &P->e->toks[P->i];
        m->s++;
        m->n--;
        m->sp = SP_NONE;
    } else {
        x = parse_primary(P);
    }
    if (x >= 0 && is_ch(tok(P), '^')) {
        adv(P);
        int y = parse_exponent(P);
        x = y >= 0 ? node2(P, MX_POW, x, y) : -1;
    }
    leave(P);
    return x;
}

// An operand that ends a degree mark: "90^\circ" lexes as 90 ^ (nothing).
static int degree_mark(const parser *P) {
    const struct mx_tok *t = tok_at(P, 1);
    if (is_ch(t, '{') && is_ch(tok_at(P, 2), '}')) return 3;
    if (is_closer(P, t) || is_separator(P, t) || t->t == T_REL || t->t == T_END || is_ch(t, '+') ||
        is_ch(t, '-') || is_ch(t, '*') || is_ch(t, '/') || is_cmd(t, CK_OP) || t->t == T_TEXT ||
        t->t == T_PCT)
        return 1;
    return 0;
}

static int parse_power(parser *P) {
    int x = parse_primary(P);
    if (x < 0) return -1;
    for (;;) {
        const struct mx_tok *t = tok(P);
        if (is_ch(t, '^')) {
            int d = degree_mark(P);
            if (d) {
                P->i += d;
                continue;
            }
            adv(P);
            int y = parse_exponent(P);
            if (y < 0) return -1;
            const mx_node *X = N(P, x);
            if (X->kind == MX_SYM && X->n == 1 && X->s[0] == 'C' && X->a >= 0 && !X->op) {
                x = node2(P, MX_BINOM, X->a, y); // C_5^2: the binomial coefficient (5 choose 2)
                continue;
            }
            x = node2(P, MX_POW, x, y);
        } else if (is_ch(t, '!')) {
            adv(P);
            x = node2(P, MX_FACT, x, -1);
        } else if (t->t == T_PCT || is_percent_word(t)) {
            adv(P);
            x = node2(P, MX_PERCENT, x, -1);
        } else {
            break;
        }
        if (x < 0) return -1;
    }
    return x;
}

static int parse_unary(parser *P) {
    const struct mx_tok *t = tok(P);
    if (is_ch(t, '-') || is_ch(t, '+') || is_op(t, OP_PM) || is_op(t, OP_MP)) {
        if (enter(P) < 0) return -1;
        adv(P);
        int x = parse_unary(P);
        leave(P);
        if (x < 0) return -1;
        if (is_ch(t, '+')) return x;
        if (is_ch(t, '-')) return node2(P, MX_NEG, x, -1);
        int pm = node2(P, MX_PM, -1, x);
        if (pm >= 0) N(P, pm)->op = (uint8_t)is_op(t, OP_MP);
        return pm;
    }
    return parse_power(P);
}

static int last_was_number(const parser *P) {
    if (P->i == 0) return 0;
    const struct mx_tok *p = &P->e->toks[P->i - 1];
    return p->t == T_NUM;
}

static int parse_mul(parser *P) {
    int x = parse_unary(P);
    if (x < 0) return -1;
    int m = -1; // the product node once there are two factors
    for (;;) {
        const struct mx_tok *t = tok(P);
        int divide = 0, y;
        if (is_ch(t, '*') || is_op(t, OP_TIMES) || is_ch(t, '/') || is_op(t, OP_DIV)) {
            divide = is_ch(t, '/') || is_op(t, OP_DIV);
            adv(P);
            y = parse_unary(P);
        } else if ((t->t == T_TEXT || unit_word(t)) && skip_trailing_units(P)) {
            break;
        } else if (starts_primary(P, t) && !(t->t == T_NUM && last_was_number(P))) {
            y = parse_power(P);
        } else {
            break;
        }
        if (y < 0) return -1;
        if (m < 0) {
            m = list_new(P, MX_MUL, x);
            if (m < 0) return -1;
            x = m;
        }
        list_push(P, m, y);
        N(P, y)->rel = (uint8_t)divide;
    }
    if (m >= 0) list_done(P, m);
    return x;
}

static int parse_add(parser *P) {
    int x = parse_mul(P);
    if (x < 0) return -1;
    int s = -1;
    for (;;) {
        const struct mx_tok *t = tok(P);
        int sign;
        if (is_ch(t, '+'))
            sign = 0;
        else if (is_ch(t, '-'))
            sign = 1;
        else if (is_op(t, OP_PM) || is_op(t, OP_MP))
            sign = 2;
        else
            break;
        int mp = is_op(t, OP_MP);
        adv(P);
        int y = parse_mul(P);
        if (y < 0) return -1;
        if (sign == 1) y = node2(P, MX_NEG, y, -1);
        if (sign == 2) {
            y = node2(P, MX_PM, -1, y);
            if (y >= 0) N(P, y)->op = (uint8_t)mp;
        }
        if (y < 0) return -1;
        if (s < 0) {
            s = list_new(P, MX_ADD, x);
            if (s < 0) return -1;
            x = s;
        }
        list_push(P, s, y);
    }
    if (s >= 0) list_done(P, s);
    return x;
}

static int parse_union(parser *P) {
    int x = parse_add(P);
    if (x < 0) return -1;
    if (!is_op(tok(P), OP_CUP)) {
        if (is_op(tok(P), OP_CAP) || is_op(tok(P), OP_SETMINUS))
            return fail(P, "set intersection/difference not supported");
        return x;
    }
    int u = list_new(P, MX_UNION, x);
    if (u < 0) return -1;
    while (is_op(tok(P), OP_CUP)) {
        adv(P);
        int y = parse_add(P);
        if (y < 0) return -1;
        list_push(P, u, y);
    }
    list_done(P, u);
    return u;
}

// a : b : c (binds tighter than relations: "a:b = 2:3" relates two ratios)
static int parse_ratio(parser *P) {
    int x = parse_union(P);
    if (x < 0 || !is_ch(tok(P), ':')) return x;
    int r = list_new(P, MX_RATIO, x);
    if (r < 0) return -1;
    while (is_ch(tok(P), ':')) {
        adv(P);
        int y = parse_union(P);
        if (y < 0) return -1;
        list_push(P, r, y);
    }
    list_done(P, r);
    return r;
}

static int parse_rel(parser *P) {
    int x = parse_ratio(P);
    if (x < 0) return -1;
    const struct mx_tok *t = tok(P);
    if (t->t != T_REL) return x;
    int r = list_new(P, MX_REL, x);
    if (r < 0) return -1;
    while ((t = tok(P))->t == T_REL) {
        int op = t->id;
        adv(P);
        int y = parse_ratio(P);
        if (y < 0) return -1;
        N(P, y)->rel = (uint8_t)op;
        list_push(P, r, y);
    }
    list_done(P, r);
    return r;
}

// TeX's infix fractions: {a+b \over c} divides everything on its left in the group by
// everything on its right; {n \choose k} is a binomial coefficient.
static int parse_over(parser *P) {
    int x = parse_rel(P);
    while (x >= 0 && (is_op(tok(P), OP_OVER) || is_op(tok(P), OP_CHOOSE))) {
        int kind = is_op(tok(P), OP_OVER) ? MX_DIV : MX_BINOM;
        adv(P);
        int y = parse_rel(P);
        if (y < 0) return -1;
        x = node2(P, kind, x, y);
    }
    return x;
}

static int parse_list(parser *P) {
    if (enter(P) < 0) return -1;
    while (is_separator(P, tok(P)) && !is_ch(tok(P), ',')) adv(P); // leading "and" (rare)
    int x = parse_over(P);
    if (x < 0) return -1;
    if (!is_separator(P, tok(P))) {
        leave(P);
        return x;
    }
    int l = list_new(P, MX_LIST, x);
    if (l < 0) return -1;
    while (is_separator(P, tok(P))) {
        while (is_separator(P, tok(P))) adv(P); // "19, 46, and 82"
        if (is_closer(P, tok(P))) break;        // trailing comma
        int y = parse_over(P);
        if (y < 0) return -1;
        list_push(P, l, y);
    }
    list_done(P, l);
    leave(P);
    return l;
}

// ---- whole answers -----------------------------------------------------------------------------
// Words only ("Evelyn", "\text{no solution}", "odd"): one text node, or a set of them.
static int parse_text_answer(parser *P) {
    const mx_expr *e = P->e;
    int letters = 0, has_text = 0;
    for (int k = P->i; k < e->n_toks - 1; k++) {
        const struct mx_tok *t = &e->toks[k];
        if (t->t == T_WORD) {
            if (math_word(t) >= 0) return -2;
            if (!is_separator(P, t)) letters += t->n;
        } else if (t->t == T_TEXT) {
            has_text = 1;
        } else if (!(t->t == T_CH && strchr("().,'-", t->id))) {
            return -2;
        }
    }
    if (!has_text && letters < 3) return -2;
    int set = -1, start = -1;
    for (int k = P->i; k < e->n_toks; k++) {
        const struct mx_tok *t = &e->toks[k];
        int sep = t->t == T_END || is_separator(P, t);
        if (!sep) {
            if (start < 0) start = k;
            continue;
        }
        if (start < 0) continue;
        int x = new_node(P, MX_TEXT);
        if (x < 0) return -1;
        // the source span (token texts may live in constant strings: U+2212 is "-")
        const char *a = e->toks[start].src, *b = e->toks[k].src;
        N(P, x)->s = a;
        N(P, x)->n = (int)(b - a);
        start = -1;
        if (set < 0)
            set = list_new(P, MX_LIST, x);
        else
            list_push(P, set, x);
        if (set < 0) return -1;
    }
    if (set < 0) return -2;
    list_done(P, set);
    if (N(P, set)->len == 1) return N(P, set)->a;
    return set;
}

// A whole answer that is a number in English words, possibly signed ("minus") and followed by
// "percent" / "%" ("twenty-five percent", "three hundred and two", "one million"): rewritten in
// place as digits followed by the rest. Returns the new length (len when not of that form).
static size_t number_words(char *t, size_t len) {
    static const char *const small[] = {"zero",    "one",     "two",       "three",    "four",
                                        "five",    "six",     "seven",     "eight",    "nine",
                                        "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                                        "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
    static const char *const tens[] = {"twenty", "thirty",  "forty",  "fifty",
                                       "sixty",  "seventy", "eighty", "ninety"};
    if (len > 200) return len;
    size_t i = 0, end = len;
    while (i < end && t[i] == ' ') i++;
    while (end > i && t[end - 1] == ' ') end--;
    if (i < end && t[i] == '\\' && t[end - 1] == '}') { // \text{three}, \textbf{five percent}
        size_t k = i + 1;
        while (k < end && isalpha((unsigned char)t[k])) k++;
        if (k < end && t[k] == '{') i = k + 1, end--;
    }
    long long total = 0, group = 0;
    int words = 0, neg = 0;
    while (i < end) {
        while (i < end && (t[i] == ' ' || t[i] == '-' || t[i] == '\t')) i++;
        size_t j = i;
        while (j < end && isalpha((unsigned char)t[j])) j++;
        if (j == i) break;
        char w[16];
        size_t n = j - i;
        if (n >= sizeof w) break;
        for (size_t k = 0; k < n; k++) w[k] = (char)tolower((unsigned char)t[i + k]);
        w[n] = '\0';
        int v = -1;
        for (int k = 0; k < 20 && v < 0; k++)
            if (strcmp(w, small[k]) == 0) v = k;
        for (int k = 0; k < 8 && v < 0; k++)
            if (strcmp(w, tens[k]) == 0) v = 20 + 10 * k;
        if (v >= 0) {
            group += v;
        } else if (strcmp(w, "hundred") == 0 && words) {
            group *= 100;
        } else if ((strcmp(w, "thousand") == 0 || strcmp(w, "million") == 0) && words) {
            total += group * (w[0] == 't' ? 1000 : 1000000);
            group = 0;
        } else if (strcmp(w, "and") == 0 && words) {
            // "three hundred and two"
        } else if (strcmp(w, "minus") == 0 && !words && !neg) {
            neg = 1;
            i = j;
            continue;
        } else {
            break;
        }
        words++;
        i = j;
    }
    if (!words) return len;
    // what may follow: nothing, or a percent word / sign (and sentence punctuation)
    size_t rest = i;
    while (rest < end && t[rest] == ' ') rest++;
    const char *tail = t + rest;
    size_t tail_n = end - rest;
    while (tail_n && strchr(" .!", tail[tail_n - 1])) tail_n--;
    int pct = tail_n == 7;
    for (size_t k = 0; pct && k < 7; k++) pct = tolower((unsigned char)tail[k]) == "percent"[k];
    int ok = tail_n == 0 || pct || (tail_n == 1 && tail[0] == '%') ||
             (tail_n == 2 && memcmp(tail, "\\%", 2) == 0);
    if (!ok) return len;
    char digits[48];
    int m = snprintf(digits, sizeof digits, "%s%lld%s", neg ? "-" : "", total + group,
                     tail_n ? " " : "");
    if (m < 0 || (size_t)m + tail_n > len) return len;
    memmove(t + m, tail, tail_n);
    memcpy(t, digits, (size_t)m);
    t[m + tail_n] = '\0';
    return (size_t)m + tail_n;
}

mx_expr *mx_parse(const char *text, size_t len, int flags) {
    mx_expr *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->root = -1;
    e->calls = (flags & MX_PARSE_CALLS) != 0;
    if (len > MX_MAX_TEXT) {
        snprintf(e->err, sizeof e->err, "too long (%zu bytes, at most %d)", len, MX_MAX_TEXT);
        return e;
    }
    e->text = malloc(len + 1);
    int cap = (int)len + 4;
    e->toks = malloc((size_t)cap * sizeof *e->toks);
    if (!e->text || !e->toks) {
        mx_free(e);
        return NULL;
    }
    memcpy(e->text, text, len);
    e->text[len] = '\0';
    len = number_words(e->text, len); // "twenty-five percent" -> "25 percent"
    e->n_text = (int)len;
    e->n_toks = mx_lex(e->text, (int)len, e->toks, cap);
    if (e->n_toks < 0) {
        snprintf(e->err, sizeof e->err, "too many tokens");
        e->n_toks = 0;
        return e;
    }
    // sentence punctuation after the answer ("\frac{1}{3}.", "5,")
    while (e->n_toks >= 2) {
        struct mx_tok *t = &e->toks[e->n_toks - 2];
        if (!(t->t == T_CH && (t->id == '.' || t->id == ',' || t->id == ';'))) break;
        e->toks[e->n_toks - 2] = e->toks[e->n_toks - 1];
        e->n_toks--;
    }
    e->cap_nodes = 2 * e->n_toks + 16;
    e->nodes = malloc((size_t)e->cap_nodes * sizeof *e->nodes);
    if (!e->nodes) {
        mx_free(e);
        return NULL;
    }
    if (e->n_toks <= 1) {
        snprintf(e->err, sizeof e->err, "empty");
        return e;
    }
    parser P = {e, 0, 0, 0, 0};
    // a label in text before the value: \textbf{Answer:} 5, \text{Total: } 12
    while (P.i < e->n_toks - 2 && e->toks[P.i].t == T_TEXT && e->toks[P.i].n > 0) {
        const struct mx_tok *t = &e->toks[P.i];
        const char *z = t->s + t->n;
        while (z > t->s && isspace((unsigned char)z[-1])) z--;
        if (z == t->s || z[-1] != ':') break;
        P.i++;
    }
    int root = parse_text_answer(&P);
    if (root == -2) {
        P.failed = 0;
        e->err[0] = '\0';
        root = parse_list(&P);
        if (root >= 0 && tok(&P)->t != T_END) root = fail_tok(&P, "answer");
    }
    e->root = P.failed ? -1 : root;
    return e;
}

void mx_free(mx_expr *e) {
    if (!e) return;
    free(e->text);
    free(e->toks);
    free(e->nodes);
    free(e);
}

// ---- canonical text --------------------------------------------------------------------------
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int over;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    if (b->n + n >= b->cap) {
        b->over = 1;
        return;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void puts_(sbuf *b, const char *s) {
    put(b, s, strlen(s));
}

// Number as digits: separators dropped, leading zeros and trailing decimal zeros removed.
static void canon_num(sbuf *b, const char *s, int n) {
    size_t start = b->n, dot = (size_t)-1;
    int expo = 0, rep = 0;
    for (int j = 0; j < n; j++) {
        char c = s[j];
        if (c == '\\' && ((n - j > 9 && memcmp(s + j + 1, "overline{", 9) == 0) ||
                          (n - j > 4 && memcmp(s + j + 1, "dot{", 4) == 0))) {
            // 0.\overline{3}: "0.r3", never "0.3"
            put(b, "r", 1);
            rep = 1;
            while (j + 1 < n && s[j + 1] != '{') j++;
            continue;
        }
        if (isdigit((unsigned char)c)) {
            if (c == '0' && b->n == start && j + 1 < n && isdigit((unsigned char)s[j + 1]))
                continue;
            put(b, &c, 1);
        } else if (c == '.') {
            dot = b->n;
            put(b, &c, 1);
        } else if (c == '{' && j + 3 < n && s[j + 1] == ',' && s[j + 2] == '}' &&
                   dot == (size_t)-1) { // a decimal comma, read as mx_literal reads it
            int run = 0;
            while (j + 3 + run < n && isdigit((unsigned char)s[j + 3 + run])) run++;
            if (run != 3) {
                dot = b->n;
                put(b, ".", 1);
            }
            j += 2;
        } else if (c == 'e' || c == 'E') {
            expo = 1;
            put(b, "e", 1);
        } else if (expo && (c == '-' || c == '+')) {
            put(b, &c, 1);
        }
    }
    if (dot != (size_t)-1 && !expo && !rep && !b->over) {
        while (b->n > dot + 1 && b->p[b->n - 1] == '0') b->n--;
        if (b->n == dot + 1) b->n--;
        b->p[b->n] = '\0';
    }
}

static void canon_rec(const mx_expr *e, int i, sbuf *b, int depth) {
    if (b->over) return;
    if (i < 0) {
        puts_(b, "_");
        return;
    }
    if (depth > 200) {
        b->over = 1;
        return;
    }
    const mx_node *n = &e->nodes[i];
    char tmp[32];
    switch (n->kind) {
    case MX_NUM:
        canon_num(b, n->s, n->n);
        return;
    case MX_SYM:
        put(b, n->s, (size_t)n->n);
        for (int k = 0; k < n->op; k++) puts_(b, "'");
        if (n->a >= 0) {
            puts_(b, "_{");
            canon_rec(e, n->a, b, depth + 1);
            puts_(b, "}");
        }
        return;
    case MX_CONST:
        puts_(b, n->op == MXC_PI  ? "\\pi"
                 : n->op == MXC_E ? "e"
                 : n->op == MXC_I ? "i"
                                  : "\\infty");
        return;
    case MX_TEXT: {
        puts_(b, "\\text{");
        for (int k = 0; k < n->n; k++) {
            if (n->s[k] == '\\') { // \text of a multi-part text answer
                while (k + 1 < n->n && isalpha((unsigned char)n->s[k + 1])) k++;
                continue;
            }
            char c = (char)tolower((unsigned char)n->s[k]);
            if (isalnum((unsigned char)c) || (unsigned char)c >= 0x80) put(b, &c, 1);
        }
        puts_(b, "}");
        return;
    }
    case MX_ELLIPSIS:
        puts_(b, "...");
        return;
    case MX_EMPTYSET:
        puts_(b, "{}");
        return;
    case MX_REALS:
        puts_(b, "R");
        return;
    default:
        break;
    }
    static const char *const names[] = {
        [MX_MIXED] = "mixed", [MX_BASENUM] = "base", [MX_NEG] = "neg",   [MX_ADD] = "add",
        [MX_MUL] = "mul",     [MX_DIV] = "frac",     [MX_POW] = "pow",   [MX_PM] = "pm",
        [MX_FUNC] = "f",      [MX_CALL] = "call",    [MX_FACT] = "fact", [MX_PERCENT] = "pct",
        [MX_ABS] = "abs",     [MX_FLOOR] = "floor",  [MX_CEIL] = "ceil", [MX_ROOT] = "root",
        [MX_BINOM] = "binom", [MX_LIST] = "list",    [MX_SET] = "set",   [MX_TUPLE] = "tuple",
        [MX_INTERVAL] = "iv", [MX_UNION] = "union",  [MX_REL] = "rel",   [MX_RATIO] = "ratio",
        [MX_MATRIX] = "mat",
    };
    puts_(b, n->kind < sizeof names / sizeof names[0] && names[n->kind] ? names[n->kind] : "?");
    if (n->kind == MX_FUNC || n->kind == MX_INTERVAL || n->kind == MX_PM) {
        snprintf(tmp, sizeof tmp, "%d", n->op);
        puts_(b, tmp);
    }
    if (n->kind == MX_CALL) {
        put(b, n->s, (size_t)n->n);
        for (int k = 0; k < n->op; k++) puts_(b, "'");
    }
    puts_(b, "(");
    int list = n->kind == MX_ADD || n->kind == MX_MUL || n->kind == MX_LIST || n->kind == MX_SET ||
               n->kind == MX_TUPLE || n->kind == MX_UNION || n->kind == MX_REL ||
               n->kind == MX_RATIO || n->kind == MX_MATRIX;
    if (list) {
        int first = 1;
        for (int c = n->a; c >= 0; c = e->nodes[c].next) {
            if (!first) puts_(b, ",");
            first = 0;
            const mx_node *cn = &e->nodes[c];
            if (n->kind == MX_MUL && cn->rel) puts_(b, "/");
            if (n->kind == MX_REL) {
                static const char *const rn[] = {"", "=", "<", "<=", ">", ">=", "!=", "~", "in"};
                puts_(b, cn->rel < 9 ? rn[cn->rel] : "?");
            }
            canon_rec(e, c, b, depth + 1);
        }
    } else {
        canon_rec(e, n->a, b, depth + 1);
        if (n->b >= 0) {
            puts_(b, ",");
            canon_rec(e, n->b, b, depth + 1);
        }
    }
    puts_(b, ")");
}

int mx_canon(const mx_expr *e, int i, char *out, size_t cap) {
    if (cap == 0) return -1;
    out[0] = '\0';
    sbuf b = {out, 0, cap, 0};
    canon_rec(e, i, &b, 0);
    return b.over ? -1 : (int)b.n;
}

int mx_sym_key(const mx_expr *e, int i, char out[48]) {
    int n = mx_canon(e, i, out, 48);
    return n < 0 ? -1 : 0;
}
