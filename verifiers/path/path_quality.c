// path_quality: checked arithmetic claims of the reasoning, grounded in the prompt, plus a few
// structural signals. See path_quality.h for exactly what is rewarded.
#include "verifiers/path/path_quality.h"

#include "verifiers/math/math_expr.h"
#include "verifiers/math/math_lex.h"
#include "verifiers/math/math_verify.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_MAX   65536 // bytes of reasoning (and of prompt) read
#define MAX_NUMS   2048  // grounded numbers kept
#define MAX_DEFS   4     // functions defined in the prompt
#define MAX_CHAINS 1024  // chains with claims
#define MAX_WORDS  20000 // words of the repetition measure
#define KEY_MAX    512   // canonical text of one claim
#define N_POINTS   6

// ---- options ---------------------------------------------------------------------------------
void rl_path_opts_default(rl_path_opts *o) {
    o->w_core = 0.6;
    o->w_steps = 0.1;
    o->w_used = 0.1;
    o->w_check = 0.1;
    o->w_length = 0.1;
    o->false_penalty = 1.0;
    o->ungrounded_weight = 0.25;
    o->max_claims = 60;
    o->claims_allowance = 20;
    o->rep_n = 4;
    o->rep_free = 0.2;
    o->answer_first_factor = 0.5;
    o->min_lines = 2;
    o->max_lines = 400;
    o->max_chars = 32000;
}

int rl_path_opts_set(rl_path_opts *o, const char *key, const char *value, char *err,
                     size_t err_len) {
    struct {
        const char *name;
        double *d;
        int *i;
        double lo, hi;
    } T[] = {
        {"w_core", &o->w_core, NULL, 0, 100},
        {"w_steps", &o->w_steps, NULL, 0, 100},
        {"w_used", &o->w_used, NULL, 0, 100},
        {"w_check", &o->w_check, NULL, 0, 100},
        {"w_length", &o->w_length, NULL, 0, 100},
        {"false_penalty", &o->false_penalty, NULL, 0, 100},
        {"ungrounded_weight", &o->ungrounded_weight, NULL, 0, 1},
        {"max_claims", NULL, &o->max_claims, 1, 10000},
        {"claims_allowance", NULL, &o->claims_allowance, 1, 10000},
        {"rep_n", NULL, &o->rep_n, 1, 16},
        {"rep_free", &o->rep_free, NULL, 0, 0.99},
        {"answer_first_factor", &o->answer_first_factor, NULL, 0, 1},
        {"min_lines", NULL, &o->min_lines, 0, 1000000},
        {"max_lines", NULL, &o->max_lines, 1, 1000000},
        {"max_chars", NULL, &o->max_chars, 1, 100000000},
    };
    for (size_t k = 0; k < sizeof T / sizeof T[0]; k++) {
        if (strcmp(key, T[k].name) != 0) continue;
        char *end;
        errno = 0;
        double v = strtod(value ? value : "", &end);
        if (!value || end == value || *end || errno || !(v >= T[k].lo && v <= T[k].hi) ||
            (T[k].i && v != floor(v))) {
            snprintf(err, err_len, "option %s: bad value '%s' (%s from %g to %g)", key,
                     value ? value : "", T[k].i ? "an integer" : "a number", T[k].lo, T[k].hi);
            return -1;
        }
        if (T[k].d)
            *T[k].d = v;
        else
            *T[k].i = (int)v;
        return 0;
    }
    snprintf(err, err_len,
             "unknown option '%s' (path_quality takes w_core, w_steps, w_used, w_check, w_length, "
             "false_penalty, ungrounded_weight, max_claims, claims_allowance, rep_n, rep_free, "
             "answer_first_factor, min_lines, max_lines, max_chars)",
             key);
    return -1;
}

// ---- sets of exact numbers -----------------------------------------------------------------------
typedef struct numset {
    mpq_t v[MAX_NUMS];
    int n;
} numset;

// |a| == |b| (rationals are kept canonical, so numerators and denominators compare directly)
static int abs_equal(const mpq_t a, const mpq_t b) {
    return mpz_cmpabs(mpq_numref(a), mpq_numref(b)) == 0 &&
           mpz_cmp(mpq_denref(a), mpq_denref(b)) == 0;
}

static void ns_init(numset *s) {
    s->n = 0;
}
static void ns_clear(numset *s) {
    for (int k = 0; k < s->n; k++) mpq_clear(s->v[k]);
    s->n = 0;
}
static int ns_has(const numset *s, const mpq_t q) {
    for (int k = 0; k < s->n; k++)
        if (abs_equal(s->v[k], q)) return 1;
    return 0;
}
// Adds |q| (numbers are grounded whatever their sign).
static void ns_add(numset *s, const mpq_t q) {
    if (s->n >= MAX_NUMS || ns_has(s, q)) return;
    mpq_init(s->v[s->n]);
    mpq_abs(s->v[s->n], q);
    s->n++;
}
static void ns_add_si(numset *s, long v) {
    mpq_t q;
    mpq_init(q);
    mpq_set_si(q, v, 1);
    ns_add(s, q);
    mpq_clear(q);
}

// ---- the state of one scoring ------------------------------------------------------------------
typedef struct chain {
    int line;
    int check;      // on a check line
    int has_result; // result holds the exact value of its last part
    mpq_t result;
    int first_lit, n_lits; // its literals in the literal pool
} chain;

typedef struct scorer {
    const rl_path_opts *o;
    numset grounded; // numbers a claim may use
    mx_fdef defs[MAX_DEFS];
    mx_expr *def_expr[MAX_DEFS];
    int n_defs;
    char **keys; // distinct claims seen
    int n_keys, cap_keys;
    chain *chains;
    int n_chains;
    mpq_t *lits; // literal pool of the chains (for "used")
    int n_lits, cap_lits;
    int have_final;
    mpq_t final; // |final answer|
    int non_check_claims;
    int last_claim_line;
    int runs_left; // equality runs still to be parsed (bounds the work on hostile text)
    rl_path_report r;
    double t_weighted; // true claims, weighted by grounding
} scorer;

static int has_key(const scorer *S, const char *k) {
    for (int i = 0; i < S->n_keys; i++)
        if (strcmp(S->keys[i], k) == 0) return 1;
    return 0;
}

static void add_key(scorer *S, const char *k) {
    if (S->n_keys == S->cap_keys) {
        int cap = S->cap_keys ? 2 * S->cap_keys : 64;
        char **nk = realloc(S->keys, (size_t)cap * sizeof *nk);
        if (!nk) return;
        S->keys = nk;
        S->cap_keys = cap;
    }
    char *c = malloc(strlen(k) + 1);
    if (!c) return;
    strcpy(c, k);
    S->keys[S->n_keys++] = c;
}

static void add_lit(scorer *S, const mpq_t q) {
    if (S->n_lits == S->cap_lits) {
        int cap = S->cap_lits ? 2 * S->cap_lits : 256;
        if (cap > 1 << 16) return;
        mpq_t *nl = realloc(S->lits, (size_t)cap * sizeof *nl);
        if (!nl) return;
        S->lits = nl;
        S->cap_lits = cap;
    }
    mpq_init(S->lits[S->n_lits]);
    mpq_abs(S->lits[S->n_lits], q);
    S->n_lits++;
}

// ---- walking trees -------------------------------------------------------------------------------
typedef void (*visit_fn)(const mx_expr *e, int i, void *ctx);

static void walk(const mx_expr *e, int i, visit_fn f, void *ctx, int depth) {
    if (i < 0 || depth > 300) return;
    f(e, i, ctx);
    const mx_node *n = mx_at(e, i);
    if (n->kind == MX_SYM) return; // a subscript is part of the name
    if (mx_is_list_kind(n->kind)) {
        for (int c = n->a; c >= 0; c = mx_at(e, c)->next) walk(e, c, f, ctx, depth + 1);
        return;
    }
    walk(e, n->a, f, ctx, depth + 1);
    walk(e, n->b, f, ctx, depth + 1);
}

typedef struct lit_ctx {
    numset *set;      // literals added here (when not NULL)
    const numset *in; // or checked against this
    int all_in;       // every literal is in `in`
    int count;
    scorer *S; // literals also go to the pool (when not NULL)
} lit_ctx;

static void visit_lit(const mx_expr *e, int i, void *p) {
    const mx_node *n = mx_at(e, i);
    if (n->kind != MX_NUM) return;
    lit_ctx *c = p;
    mpq_t q;
    mpq_init(q);
    if (mx_literal(n->s, n->n, q) == MX_OK) {
        c->count++;
        if (c->set) ns_add(c->set, q);
        if (c->in && !ns_has(c->in, q)) c->all_in = 0;
        if (c->S) add_lit(c->S, q);
    }
    mpq_clear(q);
}

static int literals_in(const mx_expr *e, int i, const numset *in) {
    lit_ctx c = {NULL, in, 1, 0, NULL};
    walk(e, i, visit_lit, &c, 0);
    return c.all_in;
}

typedef struct value_ctx {
    numset *set;
    const mx_fdef *defs;
    int n_defs;
} value_ctx;

// Values of the variable-free sub-expressions (3*2^2 grounds 4 and 12 as well as 3 and 2).
static void visit_value(const mx_expr *e, int i, void *p) {
    value_ctx *c = p;
    const mx_node *n = mx_at(e, i);
    if (n->kind == MX_NUM || n->kind == MX_SYM || n->kind == MX_REL || n->kind == MX_LIST) return;
    mx_env env;
    mx_env_init(&env);
    env.funcs = c->defs;
    env.n_funcs = c->n_defs;
    env.budget = 20000;
    mpq_t q;
    mpq_init(q);
    if (mx_collect_vars(e, i, &env) == 0 && env.n_vars == 0 &&
        mx_eval_exact(e, i, &env, q) == MX_OK)
        ns_add(c->set, q);
    mpq_clear(q);
    mx_env_clear(&env);
}

typedef struct call_ctx {
    const scorer *S;
    int defined, undefined;
} call_ctx;

static void visit_call(const mx_expr *e, int i, void *p) {
    call_ctx *c = p;
    const mx_node *n = mx_at(e, i);
    if (n->kind != MX_CALL) return;
    int found = 0;
    for (int k = 0; k < c->S->n_defs; k++) found |= c->S->defs[k].name == n->s[0];
    if (found)
        c->defined++;
    else
        c->undefined++;
}

// A side that is just a number: 12, -3, 2 1/2, 50%.
static int is_number(const mx_expr *e, int i) {
    const mx_node *n = mx_at(e, i);
    while (n->kind == MX_NEG || n->kind == MX_PERCENT) n = mx_at(e, n->a);
    return n->kind == MX_NUM || n->kind == MX_MIXED;
}

// ---- checking one claim --------------------------------------------------------------------------
// 1 true, 0 false, -1 not a checkable claim.
static int claim_truth(scorer *S, const mx_expr *e, int L, int R, int has_call) {
    mx_env env;
    mx_env_init(&env);
    env.funcs = S->defs;
    env.n_funcs = S->n_defs;
    if (mx_collect_vars(e, L, &env) < 0 || mx_collect_vars(e, R, &env) < 0) {
        mx_env_clear(&env);
        return -1;
    }
    if (env.n_vars > 0 && !has_call) { // a rewrite in one variable: polynomials of one degree
        mpq_t cl[17], cr[17];
        int dl = -1, dr = -1, ok = env.n_vars == 1;
        for (int k = 0; k < 17; k++) mpq_init(cl[k]), mpq_init(cr[k]);
        if (ok)
            ok = mx_poly(e, L, env.var[0], cl, 16, &dl, NULL) == 0 &&
                 mx_poly(e, R, env.var[0], cr, 16, &dr, NULL) == 0 && dl == dr && dl >= 1;
        for (int k = 0; k < 17; k++) mpq_clear(cl[k]), mpq_clear(cr[k]);
        if (!ok) {
            mx_env_clear(&env);
            return -1;
        }
    }
    int has_float = mx_has_float(e, L) || mx_has_float(e, R);
    int digits = mx_float_decimals(e, L), dr = mx_float_decimals(e, R);
    if (dr > digits) digits = dr;
    if (digits > 6) digits = 6;
    int npts = env.n_vars ? N_POINTS : 1, valid = 0, truth = 1;
    mpq_t a, b;
    mpq_inits(a, b, NULL);
    for (int k = 0; k < npts && truth; k++) {
        if (env.n_vars) mx_env_point(&env, k);
        mx_status sa = mx_eval_exact(e, L, &env, a);
        mx_status sb = sa == MX_OK || sa == MX_NOTRAT ? mx_eval_exact(e, R, &env, b) : sa;
        if (sa == MX_OK && sb == MX_OK) {
            valid++;
            if (has_float) {
                // compare at the decimals written: 70/9 = 7.78
                mpz_t x, y, p;
                mpz_inits(x, y, p, NULL);
                mpz_ui_pow_ui(p, 10, (unsigned long)digits);
                mpz_mul(x, mpq_numref(a), p);
                mpz_mul(y, mpq_numref(b), p);
                // round half away from zero: (2|num|*10^d + den) / (2 den)
                mpz_mul_2exp(x, x, 1);
                mpz_mul_2exp(y, y, 1);
                int sx = mpz_sgn(x), sy = mpz_sgn(y);
                mpz_abs(x, x);
                mpz_abs(y, y);
                mpz_add(x, x, mpq_denref(a));
                mpz_add(y, y, mpq_denref(b));
                mpz_fdiv_q(x, x, mpq_denref(a));
                mpz_fdiv_q(y, y, mpq_denref(b));
                mpz_fdiv_q_2exp(x, x, 1);
                mpz_fdiv_q_2exp(y, y, 1);
                if (sx < 0) mpz_neg(x, x);
                if (sy < 0) mpz_neg(y, y);
                truth = mpz_cmp(x, y) == 0;
                mpz_clears(x, y, p, NULL);
            } else {
                truth = mpq_equal(a, b);
            }
            continue;
        }
        if (sa == MX_NOVAL || sb == MX_NOVAL || sa == MX_BIG || sb == MX_BIG) {
            valid = 0;
            break;
        }
        mx_num x, y;
        sa = mx_eval_num(e, L, &env, &x);
        sb = mx_eval_num(e, R, &env, &y);
        if (sa != MX_OK || sb != MX_OK) {
            if (sa == MX_UNDEF && sb == MX_UNDEF) continue;
            valid = 0;
            break;
        }
        valid++;
        long double d = hypotl(x.re - y.re, x.im - y.im);
        long double tol = 8 * (x.err + y.err) + 1e-300L;
        if (has_float) tol = fmaxl(tol, 0.5L * powl(10.0L, -(long double)digits));
        truth = d <= tol;
    }
    mpq_clears(a, b, NULL);
    mx_env_clear(&env);
    if (valid == 0 || (env.n_vars && valid < 3 && truth)) return -1;
    return truth;
}

typedef struct final_ctx {
    const mpq_t *final;
    int hit;
} final_ctx;

static void visit_final(const mx_expr *e, int i, void *p) {
    final_ctx *c = p;
    const mx_node *n = mx_at(e, i);
    if (n->kind != MX_NUM || c->hit) return;
    mpq_t q;
    mpq_init(q);
    if (mx_literal(n->s, n->n, q) == MX_OK && abs_equal(q, *c->final)) c->hit = 1;
    mpq_clear(q);
}

static int has_final(const scorer *S, const mx_expr *e, int i) {
    if (!S->have_final) return 0;
    final_ctx c = {(const mpq_t *)&S->final, 0};
    walk(e, i, visit_final, &c, 0);
    return c.hit;
}

// The claims of one parsed chain (or list of chains).
static void chain_claims(scorer *S, const mx_expr *e, int root, int line, int check_line) {
    const mx_node *r = mx_at(e, root);
    if (r->kind == MX_LIST) {
        for (int c = r->a; c >= 0; c = mx_at(e, c)->next)
            if (mx_at(e, c)->kind == MX_REL) chain_claims(S, e, c, line, check_line);
        return;
    }
    if (r->kind != MX_REL) return;
    int any = 0, last = -1;
    int first_lit = S->n_lits;
    for (int L = r->a, R = L >= 0 ? mx_at(e, L)->next : -1; R >= 0; L = R, R = mx_at(e, R)->next) {
        last = R;
        if (mx_at(e, R)->rel != MXR_EQ) continue;
        if (S->r.claims >= S->o->max_claims) return;
        char kl[KEY_MAX], kr[KEY_MAX], key[2 * KEY_MAX + 2];
        if (mx_canon(e, L, kl, sizeof kl) < 0 || mx_canon(e, R, kr, sizeof kr) < 0) continue;
        if (strcmp(kl, kr) == 0) continue; // "5 = 5" says nothing
        call_ctx cc = {S, 0, 0};
        walk(e, L, visit_call, &cc, 0);
        walk(e, R, visit_call, &cc, 0);
        if (cc.undefined) continue; // a label such as g(2) without a definition
        int truth = claim_truth(S, e, L, R, cc.defined > 0);
        if (truth < 0) continue;
        snprintf(key, sizeof key, "%s=%s", strcmp(kl, kr) < 0 ? kl : kr,
                 strcmp(kl, kr) < 0 ? kr : kl);
        if (has_key(S, key)) {
            S->r.duplicates++;
            continue;
        }
        add_key(S, key);
        // grounding: the computing side uses known numbers (or the prompt's function)
        int grounded;
        if (cc.defined)
            grounded = 1;
        else {
            int lg = literals_in(e, L, &S->grounded), rg = literals_in(e, R, &S->grounded);
            int ln = is_number(e, L), rn = is_number(e, R);
            grounded = rn && !ln ? lg : ln && !rn ? rg : (lg || rg);
        }
        S->r.claims++;
        any = 1;
#ifdef PATH_DEBUG
        fprintf(stderr, "claim line %d check %d: %s  truth %d grounded %d\n", line, check_line, key,
                truth, grounded);
#endif
        if (truth)
            S->r.true_claims++;
        else
            S->r.false_claims++;
        if (grounded) S->r.grounded++;
        if (truth) S->t_weighted += grounded ? 1.0 : S->o->ungrounded_weight;
        if (grounded) {
            lit_ctx lc = {&S->grounded, NULL, 1, 0, NULL};
            walk(e, L, visit_lit, &lc, 0);
            walk(e, R, visit_lit, &lc, 0);
            value_ctx vc = {&S->grounded, S->defs, S->n_defs};
            walk(e, L, visit_value, &vc, 0);
            walk(e, R, visit_value, &vc, 0);
        }
        if (check_line && S->non_check_claims > 0 && truth && grounded &&
            (has_final(S, e, L) || has_final(S, e, R)))
            S->r.check = 1;
        if (!check_line) S->non_check_claims++;
    }
    if (!any || S->n_chains >= MAX_CHAINS) return;
    // the chain: its line, its result, its literals
    chain *c = &S->chains[S->n_chains++];
    c->line = line;
    c->check = check_line;
    mpq_init(c->result);
    mx_env env;
    mx_env_init(&env);
    env.funcs = S->defs;
    env.n_funcs = S->n_defs;
    env.budget = 100000;
    c->has_result = mx_collect_vars(e, last, &env) == 0 && env.n_vars == 0 &&
                    mx_eval_exact(e, last, &env, c->result) == MX_OK;
    if (c->has_result) mpq_abs(c->result, c->result);
    mx_env_clear(&env);
    lit_ctx lc = {NULL, NULL, 1, 0, S};
    walk(e, root, visit_lit, &lc, 0);
    c->first_lit = first_lit;
    c->n_lits = S->n_lits - first_lit;
    if (line != S->last_claim_line) S->r.claim_lines++;
    S->last_claim_line = line;
    S->r.chains++;
}

// ---- cutting claims out of text ------------------------------------------------------------------
static const char *const MATH_WORDS[] = {"sin", "cos",  "tan", "sec", "csc", "cot", "ln",  "log",
                                         "exp", "sqrt", "pi",  "gcd", "lcm", "max", "min", NULL};

static int is_math_word(const struct mx_tok *t) {
    for (int k = 0; MATH_WORDS[k]; k++)
        if (mx_tok_is(t, MATH_WORDS[k])) return 1;
    return 0;
}

// Tokens that end a claim: words, text, sentence punctuation, ", ", unknown commands.
static int breaks_claim(const struct mx_tok *t, const struct mx_tok *next,
                        const struct mx_tok *prev) {
    switch (t->t) {
    case T_WORD:
        return t->n >= 2 && !is_math_word(t);
    case T_TEXT:
    case T_ROW:
    case T_BEGIN:
    case T_ENDENV:
    case T_OTHER:
    case T_END:
        return 1;
    case T_CMD:
        return t->x == CK_UNKNOWN;
    case T_CH:
        if (t->id == ':' || t->id == ';' || t->id == '?' || t->id == '.') return 1;
        if (t->id == ',') return next->sp != SP_NONE;
        if (t->id == '!')
            return !(prev && (prev->t == T_NUM || (prev->t == T_CH && prev->id == ')')));
        return 0;
    default:
        return 0;
    }
}

// Operator notation and modular arithmetic are not arithmetic claims.
static int operator_notation(const char *a, const char *b) {
    static const char *const bad[] = {"d/d",         "\\frac{d",  "\\frac{\\partial",
                                      "\\int",       "\\sum",     "\\prod",
                                      "\\lim",       "\\partial", "\\nabla",
                                      "\\mathrm{d}", "\\pmod",    "\\bmod",
                                      "\\mod",       "\\equiv",   "mod ",
                                      "\\to",        NULL};
    for (int k = 0; bad[k]; k++) {
        size_t n = strlen(bad[k]);
        for (const char *p = a; p + n <= b; p++)
            if (memcmp(p, bad[k], n) == 0) return 1;
    }
    return 0;
}

typedef struct cutter {
    scorer *S;
    int line;
    int check_line;
    const char *cont_a, *cont_b; // the last part of the previous row ("&= ..." continues it)
    int defs_mode;               // reading the prompt for definitions
} cutter;

static void parse_claim_text(cutter *C, const char *a, const char *b);

// Definitions in the prompt: "f(x) = <body>" with a single-letter function and variable.
static void take_definition(scorer *S, mx_expr *e) {
    const mx_node *r = mx_at(e, e->root);
    if (r->kind != MX_REL || S->n_defs >= MAX_DEFS) {
        mx_free(e);
        return;
    }
    const mx_node *lhs = mx_at(e, r->a);
    int body = lhs->next;
    if (lhs->kind != MX_CALL || lhs->op != 0 || lhs->a < 0 || mx_at(e, lhs->a)->kind != MX_SYM ||
        mx_at(e, body)->rel != MXR_EQ) {
        mx_free(e);
        return;
    }
    for (int k = 0; k < S->n_defs; k++)
        if (S->defs[k].name == lhs->s[0]) { // the first definition wins
            mx_free(e);
            return;
        }
    char var[48];
    if (mx_sym_key(e, lhs->a, var) < 0) {
        mx_free(e);
        return;
    }
    mx_fdef_init(&S->defs[S->n_defs], lhs->s[0], e, body, var);
    S->def_expr[S->n_defs++] = e;
}

static void parse_claim_text(cutter *C, const char *a, const char *b) {
    if (C->S->runs_left <= 0 || C->S->r.claims >= C->S->o->max_claims) return;
    C->S->runs_left--;
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    if (b - a < 3 || b - a > 2000 || operator_notation(a, b)) return;
    mx_expr *e = mx_parse(a, (size_t)(b - a), MX_PARSE_CALLS);
    if (!e) return;
    if (e->root < 0) {
        mx_free(e);
        return;
    }
    if (C->defs_mode) {
        take_definition(C->S, e);
        return;
    }
    chain_claims(C->S, e, e->root, C->line, C->check_line);
    mx_free(e);
}

// One run of tokens between breakers: a claim when it holds '='.
static void run_claims(cutter *C, const struct mx_tok *t, int i0, int i1) {
    while (i0 < i1 && t[i0].t == T_CH && t[i0].id == '&') i0++;
    if (i0 >= i1) return;
    int eq = -1;
    for (int k = i0; k < i1; k++)
        if (t[k].t == T_REL && t[k].id == MXR_EQ) {
            eq = k;
            break;
        }
    // remember the last part for an aligned continuation row ("&= 12")
    const char *last_a = NULL, *last_b = t[i1].src;
    for (int k = i1 - 1; k >= i0; k--)
        if (t[k].t == T_REL) {
            last_a = t[k + 1].src;
            break;
        }
    if (eq < 0) {
        if (i1 > i0) C->cont_a = t[i0].src, C->cont_b = t[i1].src;
        return;
    }
    if (eq == i0) { // starts with '=': continues the previous row
        if (C->cont_a) {
            size_t n1 = (size_t)(C->cont_b - C->cont_a), n2 = (size_t)(t[i1].src - t[i0].src);
            char *buf = malloc(n1 + n2 + 2);
            if (buf) {
                memcpy(buf, C->cont_a, n1);
                buf[n1] = ' ';
                memcpy(buf + n1 + 1, t[i0].src, n2);
                parse_claim_text(C, buf, buf + n1 + 1 + n2);
                free(buf);
            }
        }
    } else if (C->S->runs_left > 0 && C->S->r.claims < C->S->o->max_claims) {
        // leading words the splitter kept ("1 4*2=8" after "Step"): try later starts too
        mx_expr *probe = mx_parse(t[i0].src, (size_t)(t[i1].src - t[i0].src), MX_PARSE_CALLS);
        int start = i0;
        if (probe && probe->root < 0) {
            for (int k = i0 + 1, tries = 0; k < eq && tries < 4; k++) {
                if (t[k].sp == SP_NONE) continue;
                tries++;
                mx_expr *q = mx_parse(t[k].src, (size_t)(t[i1].src - t[k].src), MX_PARSE_CALLS);
                int ok = q && q->root >= 0;
                mx_free(q);
                if (ok) {
                    start = k;
                    break;
                }
            }
        }
        mx_free(probe);
        parse_claim_text(C, t[start].src, t[i1].src);
    }
    if (last_a) C->cont_a = last_a, C->cont_b = last_b;
}

// Claims in a piece of text (a line outside math, or the inside of a math environment).
static void piece_claims(cutter *C, const char *a, const char *b) {
    if (b <= a) return;
    int cap = (int)(b - a) + 4;
    struct mx_tok *t = malloc((size_t)cap * sizeof *t);
    if (!t) return;
    int n = mx_lex(a, (int)(b - a), t, cap);
    int start = 0;
    for (int k = 0; k < n; k++) {
        const struct mx_tok *next = k + 1 < n ? &t[k + 1] : &t[k];
        if (t[k].t == T_CH && t[k].id == '&') continue; // alignment marks
        if (!breaks_claim(&t[k], next, k > 0 ? &t[k - 1] : NULL)) continue;
        if (k > start) run_claims(C, t, start, k);
        if (t[k].t == T_ROW && !C->defs_mode) C->line++; // aligned rows are lines of their own
        start = k + 1;
    }
    free(t);
}

// A check line: "check", "verify", "verification", "double-check" among the words before its
// first math ("check: 6+5=11", "Let me verify: $6 + 5 = 11$", "**Verification.**").
static int is_check_line(const char *a, const char *b) {
    const char *limit = b - a > 48 ? a + 48 : b;
    for (const char *p = a; p < limit; p++) {
        if (*p == '\n' || *p == '=' || *p == '$' || isdigit((unsigned char)*p)) return 0;
        if (p > a && isalpha((unsigned char)p[-1])) continue;
        static const char *const words[] = {"check", "verif", "double-check", NULL};
        for (int k = 0; words[k]; k++) {
            size_t n = strlen(words[k]), j = 0;
            while (j < n && p + j < b && tolower((unsigned char)p[j]) == words[k][j]) j++;
            if (j == n) return 1;
        }
    }
    return 0;
}

// Where a math environment opened at p closes (inner range [*ia, *ib), whole end returned).
static const char *env_close(const char *p, const char *end, const char **ia, const char **ib) {
    const char *open = NULL, *close = NULL;
    int inline_env = 0;
    if (p + 1 < end && p[0] == '$' && p[1] == '$')
        open = "$$", close = "$$";
    else if (p[0] == '$')
        open = "$", close = "$", inline_env = 1;
    else if (p + 1 < end && p[0] == '\\' && p[1] == '(')
        open = "\\(", close = "\\)", inline_env = 1;
    else if (p + 1 < end && p[0] == '\\' && p[1] == '[')
        open = "\\[", close = "\\]";
    else
        return NULL;
    size_t no = strlen(open), nc = strlen(close);
    const char *limit = end - p > 8192 ? p + 8192 : end;
    for (const char *q = p + no; q + nc <= limit; q++) {
        if (inline_env && *q == '\n') return NULL;
        if (*q == '\\' && close[0] == '$' && q + 1 < end && q[1] == '$') {
            q++;
            continue;
        }
        if (memcmp(q, close, nc) == 0) {
            *ia = p + no;
            *ib = q;
            return q + nc;
        }
    }
    return NULL;
}

// All claims of [a, b), line by line; display math may span lines.
static void text_claims(cutter *C, const char *a, const char *b) {
    const char *p = a;
    const char *plain = a; // start of the current non-math piece
    C->check_line = is_check_line(a, b);
    while (p < b && C->S->runs_left > 0 && C->S->r.claims < C->S->o->max_claims) {
        if (*p == '\n') { // (a line starting with "=" continues the one before)
            piece_claims(C, plain, p);
            C->line++;
            plain = p + 1;
            C->check_line = is_check_line(p + 1, b);
            p++;
            continue;
        }
        const char *ia, *ib, *after;
        if ((*p == '$' || *p == '\\') && (after = env_close(p, b, &ia, &ib)) != NULL) {
            piece_claims(C, plain, p);
            C->cont_a = NULL;
            piece_claims(C, ia, ib);
            C->cont_a = NULL;
            for (const char *q = ia; q < ib; q++)
                if (*q == '\n') C->line++; // a display spanning lines
            p = after;
            plain = after;
            continue;
        }
        if (*p == '\\' && p + 1 < b) p++;
        p++;
    }
    piece_claims(C, plain, b);
}

// ---- the prompt ------------------------------------------------------------------------------------
static void prompt_facts(scorer *S, const char *prompt, int *operators) {
    *operators = 0;
    if (!prompt) return;
    size_t len = strlen(prompt);
    if (len > SCAN_MAX) len = SCAN_MAX;
    int cap = (int)len + 4;
    struct mx_tok *t = malloc((size_t)cap * sizeof *t);
    if (!t) return;
    int n = mx_lex(prompt, (int)len, t, cap);
    static const struct {
        const char *w;
        long v;
    } words[] = {
        {"twice", 2},   {"double", 2},    {"half", 2},        {"halved", 2},       {"triple", 3},
        {"thrice", 3},  {"tripled", 3},   {"quarter", 4},     {"dozen", 12},       {"percent", 100},
        {"one", 1},     {"two", 2},       {"three", 3},       {"four", 4},         {"five", 5},
        {"six", 6},     {"seven", 7},     {"eight", 8},       {"nine", 9},         {"ten", 10},
        {"eleven", 11}, {"twelve", 12},   {"twenty", 20},     {"thirty", 30},      {"forty", 40},
        {"fifty", 50},  {"hundred", 100}, {"thousand", 1000}, {"million", 1000000}};
    mpq_t q;
    mpq_init(q);
    for (int k = 0; k < n; k++) {
        if (t[k].t == T_NUM && mx_literal(t[k].s, t[k].n, q) == MX_OK) ns_add(&S->grounded, q);
        if (t[k].t == T_PCT) ns_add_si(&S->grounded, 100);
        if (t[k].t == T_WORD)
            for (size_t w = 0; w < sizeof words / sizeof words[0]; w++)
                if (mx_tok_is(&t[k], words[w].w)) ns_add_si(&S->grounded, words[w].v);
        if ((t[k].t == T_CH && strchr("+-*/^", t[k].id)) ||
            (t[k].t == T_CMD &&
             (t[k].x == CK_OP || t[k].x == CK_FRAC || t[k].x == CK_SQRT || t[k].x == CK_FUNC)))
            (*operators)++;
    }
    mpq_clear(q);
    free(t);
    cutter C = {S, 0, 0, NULL, NULL, 1};
    int runs = S->runs_left;
    S->runs_left = 64;
    text_claims(&C, prompt, prompt + len);
    S->runs_left = runs;
}

// ---- repetition ----------------------------------------------------------------------------------
static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

// Share of word n-grams that repeat an earlier one.
static double repetition(const char *a, const char *b, int n) {
    uint64_t *word = malloc(MAX_WORDS * sizeof *word);
    if (!word) return 0;
    int nw = 0;
    for (const char *p = a; p < b && nw < MAX_WORDS;) {
        while (p < b && isspace((unsigned char)*p)) p++;
        if (p >= b) break;
        uint64_t h = 1469598103934665603ull;
        while (p < b && !isspace((unsigned char)*p))
            h = (h ^ (uint64_t)tolower((unsigned char)*p++)) * 1099511628211ull;
        word[nw++] = h;
    }
    double r = 0;
    int ng = nw - n + 1;
    if (ng >= 2) {
        uint64_t *g = malloc((size_t)ng * sizeof *g);
        if (g) {
            for (int i = 0; i < ng; i++) {
                uint64_t h = 0;
                for (int j = 0; j < n; j++) h = h * 0x9E3779B97F4A7C15ull + word[i + j];
                g[i] = h;
            }
            qsort(g, (size_t)ng, sizeof *g, cmp_u64);
            int unique = 1;
            for (int i = 1; i < ng; i++) unique += g[i] != g[i - 1];
            r = 1.0 - (double)unique / ng;
            free(g);
        }
    }
    free(word);
    return r;
}

// ---- the whole score ---------------------------------------------------------------------------------
static const char *find_str(const char *a, const char *b, const char *lit) {
    size_t n = strlen(lit);
    for (const char *p = a; p + n <= b; p++)
        if (memcmp(p, lit, n) == 0) return p;
    return NULL;
}

static const char *find_last(const char *a, const char *b, const char *lit) {
    size_t n = strlen(lit);
    for (const char *p = b - n; p >= a; p--)
        if (memcmp(p, lit, n) == 0) return p;
    return NULL;
}

// The final answer's value (|value|), when it is a number.
static void final_answer(scorer *S, const char *completion) {
    char *buf = malloc(MX_MAX_TEXT + 1);
    if (!buf) return;
    if (rl_math_extract(completion, RL_MATH_EXTRACT_BOXED, buf, MX_MAX_TEXT + 1) == 1) {
        mx_expr *e = mx_parse(buf, strlen(buf), 0);
        if (e && e->root >= 0) {
            int i = e->root;
            const mx_node *r = mx_at(e, i);
            if (r->kind == MX_REL) // x = 6
                for (int c = r->a; c >= 0; c = mx_at(e, c)->next) i = c;
            mx_env env;
            mx_env_init(&env);
            if (mx_eval_exact(e, i, &env, S->final) == MX_OK) {
                S->have_final = 1;
                mpq_abs(S->final, S->final);
            }
            mx_env_clear(&env);
        }
        mx_free(e);
    }
    free(buf);
}

double rl_path_score(const char *prompt, const char *completion, const rl_path_opts *opts,
                     rl_path_report *rep, char *detail, size_t detail_len) {
    rl_path_opts def;
    if (!opts) {
        rl_path_opts_default(&def);
        opts = &def;
    }
    scorer *S = calloc(1, sizeof *S);
    if (!S) {
        if (detail && detail_len) snprintf(detail, detail_len, "out of memory");
        return 0;
    }
    S->o = opts;
    S->last_claim_line = -1;
    S->runs_left = 4 * opts->max_claims + 200;
    mpq_init(S->final);
    ns_init(&S->grounded);
    S->chains = malloc(MAX_CHAINS * sizeof *S->chains);
    if (!completion) completion = "";
    const char *end = completion + strlen(completion);

    // where the reasoning is, and whether an answer was boxed before it ended
    const char *open = find_str(completion, end, "<think>");
    const char *close = find_str(open ? open : completion, end, "</think>");
    const char *ra = completion, *rb = end;
    if (close) {
        ra = open && open < close ? open + 7 : completion;
        rb = close;
    } else if (open) {
        ra = open + 7;
        const char *box = find_last(ra, end, "\\boxed");
        rb = box ? box : end;
    } else {
        const char *box = find_last(completion, end, "\\boxed");
        const char *fbox = find_last(completion, end, "\\fbox");
        if (fbox && (!box || fbox > box)) box = fbox;
        rb = box ? box : end;
    }
    S->r.answer_first =
        find_str(completion, rb, "\\boxed") != NULL || find_str(completion, rb, "\\fbox") != NULL;
    S->r.chars = (int)(rb - ra);
    for (const char *p = ra; p < rb;) {
        const char *q = memchr(p, '\n', (size_t)(rb - p));
        if (!q) q = rb;
        for (const char *c = p; c < q; c++)
            if (!isspace((unsigned char)*c)) {
                S->r.lines++;
                break;
            }
        p = q + 1;
    }
    const char *scan_b = rb - ra > SCAN_MAX ? ra + SCAN_MAX : rb;

    int operators = 0;
    final_answer(S, completion);
    prompt_facts(S, prompt, &operators);
    cutter C = {S, 0, 0, NULL, NULL, 0};
    if (S->chains) text_claims(&C, ra, scan_b);

    // used results
    for (int i = 0; i < S->n_chains; i++) {
        chain *c = &S->chains[i];
        if (c->check || !c->has_result) continue;
        S->r.results++;
        int used = S->have_final && mpq_cmp(c->result, S->final) == 0;
        for (int j = i + 1; j < S->n_chains && !used; j++)
            for (int k = 0; k < S->chains[j].n_lits && !used; k++)
                used = mpq_cmp(S->lits[S->chains[j].first_lit + k], c->result) == 0;
        S->r.used += used;
    }
    S->r.repetition = repetition(ra, scan_b, opts->rep_n);

    // the score
    rl_path_report *r = &S->r;
    double score = 0;
    if (r->claims > 0 && r->grounded > 0 && r->true_claims > 0) {
        r->core = (S->t_weighted - opts->false_penalty * r->false_claims) / r->claims;
        if (r->core < 0) r->core = 0;
        double steps = r->chains ? (double)r->claim_lines / r->chains : 0;
        if (steps > 1) steps = 1;
        double used = r->results ? (double)r->used / r->results : 1;
        double length = r->lines >= opts->min_lines && r->lines <= opts->max_lines &&
                        r->chars <= opts->max_chars;
        double wsum = opts->w_core + opts->w_steps + opts->w_used + opts->w_check + opts->w_length;
        r->structure = wsum > 0 ? (opts->w_core + opts->w_steps * steps + opts->w_used * used +
                                   opts->w_check * r->check + opts->w_length * length) /
                                      wsum
                                : 1;
        double rep_f = 1 - fmax(0, r->repetition - opts->rep_free) / (1 - opts->rep_free);
        int allowance = 4 * operators + 8;
        if (allowance < opts->claims_allowance) allowance = opts->claims_allowance;
        double claims_f = r->claims > allowance ? (double)allowance / r->claims : 1;
        r->factor = rep_f * (r->answer_first ? opts->answer_first_factor : 1) * claims_f;
        score = r->core * r->structure * r->factor;
    }
    if (score < 0) score = 0;
    if (score > 1) score = 1;
    r->score = score;
    if (detail && detail_len) {
        if (r->claims == 0)
            snprintf(detail, detail_len, "no checkable claims%s",
                     r->answer_first ? ", answer before reasoning" : "");
        else
            snprintf(detail, detail_len,
                     "claims %d/%d true, grounded %d/%d, used %d/%d, check %s, rep %.2f%s%s",
                     r->true_claims, r->claims, r->grounded, r->claims, r->used, r->results,
                     r->check ? "ok" : "none", r->repetition,
                     r->answer_first ? ", answer before reasoning" : "",
                     r->factor < 1 && !r->answer_first && r->repetition <= opts->rep_free
                         ? ", too many claims"
                         : "");
    }
    if (rep) *rep = *r;

    for (int k = 0; k < S->n_defs; k++) {
        mx_fdef_clear(&S->defs[k]);
        mx_free(S->def_expr[k]);
    }
    for (int k = 0; k < S->n_keys; k++) free(S->keys[k]);
    free(S->keys);
    for (int k = 0; k < S->n_chains; k++) mpq_clear(S->chains[k].result);
    free(S->chains);
    for (int k = 0; k < S->n_lits; k++) mpq_clear(S->lits[k]);
    free(S->lits);
    ns_clear(&S->grounded);
    mpq_clear(S->final);
    free(S);
    return score;
}

// ---- the verifier ----------------------------------------------------------------------------------
static void *path_create(const rl_voption *opts, int32_t n_opts, char *err, size_t err_len) {
    rl_path_opts o;
    rl_path_opts_default(&o);
    for (int i = 0; i < n_opts; i++)
        if (rl_path_opts_set(&o, opts[i].key, opts[i].value, err, err_len) != 0) return NULL;
    if (o.min_lines > o.max_lines) {
        snprintf(err, err_len, "min_lines (%d) is above max_lines (%d)", o.min_lines, o.max_lines);
        return NULL;
    }
    rl_path_opts *p = malloc(sizeof *p);
    if (!p) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    *p = o;
    return p;
}

static void path_score(void *self, const rl_vsample *s, rl_vresult *out) {
    out->status = RL_VERIFY_OK;
    out->detail[0] = '\0';
    out->score =
        rl_path_score(s->prompt, s->completion, self, NULL, out->detail, sizeof out->detail);
}

static void path_destroy(void *self) {
    free(self);
}

static const rl_verifier_api PATH_API = {
    .abi_version = RL_VERIFIER_ABI_VERSION,
    .name = "path_quality",
    .thread_safe = 1,
    .create = path_create,
    .score = path_score,
    .score_group = NULL,
    .destroy = path_destroy,
};

const rl_verifier_api *rl_verifier_path_api(void) {
    return &PATH_API;
}
