// math_compare: equivalence of two parsed answers (reference first). See math_verify.h for the
// policy; this file implements it: unwrapping of assignments and "x \in", collections (sets,
// lists, ± variants), ordered structures (tuples, intervals, matrices, sequences), relations
// (atoms compared up to a factor at evaluation points) and scalars (exact, rounded or numeric).
#include "verifiers/math/math_internal.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_ELEMS 64   // elements of one collection that are compared
#define MAX_ATOMS 8    // atomic relations of one chain
#define MAX_CALLS 4000 // eq() calls of one comparison (bounds set matching)
#define N_POINTS  6    // evaluation points for expressions in variables

typedef struct ref {
    const mx_expr *e;
    int i;
    uint32_t mask; // signs chosen for the \pm nodes below
    int fixed;     // 1: the \pm signs are chosen (the node is one value, not a set)
} ref;

typedef struct cmp {
    const rl_math_opts *o;
    long budget;
    int calls;
    const char *why; // a reason worth reporting when the answer is judged different
} cmp;

static const mx_node *NODE(ref r) {
    return &r.e->nodes[r.i];
}
static int KIND(ref r) {
    return NODE(r)->kind;
}
static ref sub(ref r, int i) {
    return (ref){r.e, i, r.mask, r.fixed};
}

static int eq(cmp *C, ref g, ref p, int depth);

static int is_scalar_kind(int k) {
    switch (k) {
    case MX_NUM:
    case MX_MIXED:
    case MX_SYM:
    case MX_CONST:
    case MX_NEG:
    case MX_ADD:
    case MX_MUL:
    case MX_DIV:
    case MX_POW:
    case MX_PM:
    case MX_FUNC:
    case MX_CALL:
    case MX_FACT:
    case MX_PERCENT:
    case MX_ABS:
    case MX_FLOOR:
    case MX_CEIL:
    case MX_ROOT:
    case MX_BINOM:
        return 1;
    default:
        return 0;
    }
}

// Indices of the \pm nodes under node i (at most cap; returns cap + 1 when there are more).
static int pm_nodes(const mx_expr *e, int i, int *idx, int cap, int n, int depth) {
    if (i < 0 || depth > 300 || n > cap) return n;
    const mx_node *x = &e->nodes[i];
    if (x->kind == MX_PM) {
        if (n < cap) idx[n] = x->len;
        n++;
    }
    if (mx_is_list_kind(x->kind)) {
        for (int c = x->a; c >= 0; c = e->nodes[c].next) n = pm_nodes(e, c, idx, cap, n, depth + 1);
        return n;
    }
    n = pm_nodes(e, x->a, idx, cap, n, depth + 1);
    return pm_nodes(e, x->b, idx, cap, n, depth + 1);
}

static int canon_equal(ref g, ref p) {
    if (g.mask || p.mask) return 0;
    char a[2048], b[2048];
    if (mx_canon(g.e, g.i, a, sizeof a) < 0 || mx_canon(p.e, p.i, b, sizeof b) < 0) return 0;
    return strcmp(a, b) == 0;
}

// ---- unwrapping ----------------------------------------------------------------------------
static int part_count(ref r) {
    return NODE(r)->len;
}

// A label on the left of an assignment: x, x_1, f(x) (a letter times a bracketed group), f'(x),
// a name written as letters (AB, xy), a ratio of labels (a/b, a:b) and a tuple of labels (x, y).
static int is_label_d(ref r, int depth) {
    const mx_node *n = NODE(r);
    if (depth > 4) return 0;
    if (n->kind == MX_SYM || n->kind == MX_CALL) return 1;
    if (n->kind == MX_TEXT && depth == 0) return 1; // \text{Area} = 24
    if (n->kind == MX_MUL && n->len == 2) {
        const mx_node *a = &r.e->nodes[n->a], *b = &r.e->nodes[a->next];
        if (a->kind == MX_SYM && (b->flags & MXF_PAREN) && !b->rel) return 1;
    }
    if (n->kind == MX_MUL && n->len <= 4) {
        for (int c = n->a; c >= 0; c = r.e->nodes[c].next)
            if (r.e->nodes[c].kind != MX_SYM || r.e->nodes[c].rel) return 0;
        return 1;
    }
    if (n->kind == MX_DIV)
        return is_label_d(sub(r, n->a), depth + 1) && is_label_d(sub(r, n->b), depth + 1);
    if (n->kind == MX_ABS) return is_label_d(sub(r, n->a), depth + 1); // |AB| = 1
    if (n->kind == MX_RATIO || (n->kind == MX_TUPLE && n->op == '(')) {
        for (int c = n->a; c >= 0; c = r.e->nodes[c].next)
            if (!is_label_d(sub(r, c), depth + 1)) return 0;
        return 1;
    }
    return 0;
}

static int is_label(ref r) {
    return is_label_d(r, 0);
}

// "x = value" or a chain "a = b = ... = value" (equalities only): the value, else -1.
static int assignment_value(ref r) {
    if (KIND(r) != MX_REL) return -1;
    int n = part_count(r), last = -1;
    for (int c = NODE(r)->a, k = 0; c >= 0; c = r.e->nodes[c].next, k++) {
        if (k > 0 && r.e->nodes[c].rel != MXR_EQ) return -1;
        last = c;
    }
    if (n >= 3 || is_label(sub(r, NODE(r)->a))) return last;
    return -1;
}

// A predicted "x = 5+5+1 = 11" or "x \approx 11" against a plain reference: the value after the
// last '=' (an approximation after it is ignored), or after the last \approx if there is no '='.
static int predicted_value(ref r) {
    if (KIND(r) != MX_REL) return -1;
    int after_eq = -1, last = -1;
    for (int c = NODE(r)->a, k = 0; c >= 0; c = r.e->nodes[c].next, k++) {
        if (k == 0) continue;
        int op = r.e->nodes[c].rel;
        if (op != MXR_EQ && op != MXR_APPROX) return -1;
        if (op == MXR_EQ) after_eq = c;
        last = c;
    }
    if (after_eq < 0 && last >= 0 && !is_label(sub(r, NODE(r)->a)))
        return NODE(r)->a; // "4\pi \approx 12.57": the exact value before its approximation
    return after_eq >= 0 ? after_eq : last;
}

// "x \in S" -> S
static ref unwrap_in(ref r) {
    if (KIND(r) == MX_REL && part_count(r) == 2) {
        int a = NODE(r)->a, b = r.e->nodes[a].next;
        if (r.e->nodes[b].rel == MXR_IN && r.e->nodes[a].kind == MX_SYM) return sub(r, b);
    }
    return r;
}

// ---- collections ---------------------------------------------------------------------------
// Variants of one element with its \pm signs chosen; returns the count added, -1 when too many.
static int add_variants(ref r, ref *out, int n, int cap) {
    int idx[5];
    int k = r.fixed ? 0 : pm_nodes(r.e, r.i, idx, 4, 0, 0);
    if (k > 4) return -1;
    for (int k2 = 0; k2 < k; k2++)
        if (idx[k2] >= 32) return -1;
    for (int m = 0; m < (1 << k); m++) {
        if (n >= cap) return -1;
        uint32_t mask = r.mask;
        for (int j = 0; j < k; j++)
            if ((m >> j) & 1) mask |= 1u << idx[j];
        out[n++] = (ref){r.e, r.i, mask, 1};
    }
    return n;
}

static int is_collection(ref r) {
    int k = KIND(r);
    if (k == MX_LIST || k == MX_SET || k == MX_EMPTYSET) return 1;
    if (is_scalar_kind(k) && !r.fixed) {
        int idx[1];
        return pm_nodes(r.e, r.i, idx, 1, 0, 0) > 0;
    }
    return 0;
}

// The symbol an element assigns to ("x = 1" -> x), or NULL.
static const mx_node *assigned_sym(ref r) {
    if (KIND(r) != MX_REL || part_count(r) != 2) return NULL;
    const mx_node *a = &r.e->nodes[NODE(r)->a];
    if (a->kind != MX_SYM || r.e->nodes[a->next].rel != MXR_EQ) return NULL;
    return a;
}

// The elements of a collection (\pm expanded; "x = 1, x = 2" read as 1, 2). *ordered is set when
// an ellipsis makes it a sequence. Returns the count or -1 when there are too many.
static int elements(ref r, ref *out, int cap, int *ordered) {
    *ordered = 0;
    int k = KIND(r), n = 0;
    if (k == MX_EMPTYSET) return 0;
    if (k != MX_LIST && k != MX_SET) return add_variants(r, out, 0, cap);
    // assignments of one same symbol are unwrapped
    const mx_node *sym = NULL;
    int same = 1, rels = 0;
    for (int c = NODE(r)->a; c >= 0; c = r.e->nodes[c].next) {
        ref x = sub(r, c);
        if (KIND(x) == MX_ELLIPSIS) *ordered = 1;
        if (KIND(x) != MX_REL) continue;
        rels++;
        const mx_node *s = assigned_sym(x);
        if (!s || (sym && (s->n != sym->n || memcmp(s->s, sym->s, (size_t)s->n) != 0))) same = 0;
        if (s) sym = s;
    }
    for (int c = NODE(r)->a; c >= 0; c = r.e->nodes[c].next) {
        ref x = sub(r, c);
        if (rels && same && assigned_sym(x)) x = sub(r, r.e->nodes[NODE(x)->a].next);
        n = add_variants(x, out, n, cap);
        if (n < 0) return -1;
    }
    return n;
}

// Every element of a has an equal one in b and the other way round.
static int set_equal(cmp *C, const ref *a, int na, const ref *b, int nb, int depth) {
    for (int pass = 0; pass < 2; pass++) {
        const ref *x = pass ? b : a, *y = pass ? a : b;
        int nx = pass ? nb : na, ny = pass ? na : nb;
        for (int i = 0; i < nx; i++) {
            int found = 0;
            for (int j = 0; j < ny && !found; j++)
                found = pass ? eq(C, y[j], x[i], depth + 1) : eq(C, x[i], y[j], depth + 1);
            if (!found) return 0;
        }
    }
    return 1;
}

static int ordered_equal(cmp *C, const ref *a, int na, const ref *b, int nb, int depth) {
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (!eq(C, a[i], b[i], depth + 1)) return 0;
    return 1;
}

static int children(ref r, ref *out, int cap) {
    int n = 0;
    for (int c = NODE(r)->a; c >= 0 && n < cap; c = r.e->nodes[c].next) out[n++] = sub(r, c);
    return n;
}

// ---- scalars -------------------------------------------------------------------------------
static void round_q(mpz_t out, const mpq_t q, int digits) {
    mpq_t t;
    mpq_init(t);
    mpz_ui_pow_ui(mpq_numref(t), 10, (unsigned long)digits);
    mpz_set_ui(mpq_denref(t), 1);
    mpq_mul(t, t, q);
    int neg = mpq_sgn(t) < 0;
    mpq_abs(t, t);
    // floor(t + 1/2)
    mpz_mul_2exp(mpq_numref(t), mpq_numref(t), 1);
    mpz_add(mpq_numref(t), mpq_numref(t), mpq_denref(t));
    mpz_mul_2exp(mpq_denref(t), mpq_denref(t), 1);
    mpz_fdiv_q(out, mpq_numref(t), mpq_denref(t));
    if (neg) mpz_neg(out, out);
    mpq_clear(t);
}

// |a - b| <= 10^(3 - guard) max(|a|, |b|) (10^-3 for float_rounding 6): the guard that keeps
// tiny values apart after rounding (3e-8 and 3e-9 both round to 0.000000).
static int rel_close_q(const mpq_t a, const mpq_t b, int guard) {
    if (guard <= 3) return 1;
    mpq_t d, m, t;
    mpq_inits(d, m, t, NULL);
    mpq_sub(d, a, b);
    mpq_abs(d, d);
    mpq_abs(m, a);
    mpq_abs(t, b);
    if (mpq_cmp(t, m) > 0) mpq_set(m, t);
    mpz_set_ui(mpq_numref(t), 1);
    mpz_ui_pow_ui(mpq_denref(t), 10, (unsigned long)(guard - 3));
    mpq_mul(m, m, t);
    int r = mpq_cmp(d, m) <= 0;
    mpq_clears(d, m, t, NULL);
    return r;
}

// Equal when rounded to digits decimals (digits covers every decimal written on either side, so
// 0.9999999 != 1 and 0.3333334 != 1/3), and not apart by more than the relative guard.
static int rounded_equal_q(const mpq_t a, const mpq_t b, int digits, int guard) {
    if (mpq_equal(a, b)) return 1;
    mpz_t x, y;
    mpz_inits(x, y, NULL);
    round_q(x, a, digits);
    round_q(y, b, digits);
    int r = mpz_cmp(x, y) == 0 && rel_close_q(a, b, guard);
    mpz_clears(x, y, NULL);
    return r;
}

static int rounded_equal_ld(long double a, long double b, int digits, int guard) {
    long double s = powl(10.0L, (long double)digits), x = a * s, y = b * s;
    if (fabsl(x) < 1e18L && fabsl(y) < 1e18L)
        return roundl(x) == roundl(y) &&
               (guard <= 3 ||
                fabsl(a - b) <= powl(10.0L, 3.0L - guard) * fmaxl(fabsl(a), fabsl(b)));
    return fabsl(a - b) <= 1e-17L * fmaxl(fabsl(a), fabsl(b));
}

// |a - b| <= 10^-digits * max(1, |a|, |b|)
static int close_q(const mpq_t a, const mpq_t b, int digits) {
    mpq_t d, m, t;
    mpq_inits(d, m, t, NULL);
    mpq_sub(d, a, b);
    mpq_abs(d, d);
    mpq_abs(m, a);
    mpq_abs(t, b);
    if (mpq_cmp(t, m) > 0) mpq_set(m, t);
    if (mpq_cmp_ui(m, 1, 1) < 0) mpq_set_ui(m, 1, 1);
    mpz_ui_pow_ui(mpq_denref(t), 10, (unsigned long)digits);
    mpz_set_ui(mpq_numref(t), 1);
    mpq_mul(m, m, t);
    int r = mpq_cmp(d, m) <= 0;
    mpq_clears(d, m, t, NULL);
    return r;
}

static int num_equal(const mx_num *a, const mx_num *b, int has_float, int nvars, int digits,
                     int guard) {
    long double d = hypotl(a->re - b->re, a->im - b->im);
    long double tol = 8 * (a->err + b->err) + 4 * LDBL_MIN;
    if (has_float && nvars == 0) {
        if (fabsl(a->im) > 8 * a->err + 1e-300L || fabsl(b->im) > 8 * b->err + 1e-300L)
            return d <= tol;
        return rounded_equal_ld(a->re, b->re, digits, guard);
    }
    if (has_float) {
        long double m = fmaxl(1.0L, fmaxl(hypotl(a->re, a->im), hypotl(b->re, b->im)));
        tol = fmaxl(tol, m * powl(10.0L, -(long double)digits));
    }
    return d <= tol;
}

static int scalar_core(cmp *C, ref g, ref p) {
    int gneg, pneg;
    int gi = mx_is_inf(g.e, g.i, &gneg), pi = mx_is_inf(p.e, p.i, &pneg);
    if (gi || pi) return gi && pi && gneg == pneg;
    int has_float = mx_has_float(g.e, g.i) || mx_has_float(p.e, p.i);
    int digits = C->o->float_rounding;
    if (has_float) { // a decimal is held to every digit it writes
        int dg = mx_float_decimals(g.e, g.i), dp = mx_float_decimals(p.e, p.i);
        if (dg > digits) digits = dg;
        if (dp > digits) digits = dp;
        if (digits > 40) digits = 40;
    }
    mx_env env;
    mx_env_init(&env);
    env.budget = C->budget;
    int result = 1, valid = 0;
    if (mx_collect_vars(g.e, g.i, &env) < 0 || mx_collect_vars(p.e, p.i, &env) < 0) {
        mx_env_clear(&env);
        C->why = "too many variables";
        return 0;
    }
    int npts = env.n_vars ? N_POINTS : 1;
    mpq_t qg, qp;
    mpq_inits(qg, qp, NULL);
    for (int k = 0; k < npts && result; k++) {
        if (env.n_vars) mx_env_point(&env, k);
        env.pm_mask = g.mask;
        mx_status sg = mx_eval_exact(g.e, g.i, &env, qg);
        env.pm_mask = p.mask;
        mx_status sp = sg == MX_NOVAL ? MX_NOVAL : mx_eval_exact(p.e, p.i, &env, qp);
        if (sg == MX_OK && sp == MX_OK) {
            valid++;
            int same = !has_float        ? mpq_equal(qg, qp)
                       : env.n_vars == 0 ? rounded_equal_q(qg, qp, digits, C->o->float_rounding)
                                         : close_q(qg, qp, digits);
            if (!same) result = 0;
            continue;
        }
        if (sg == MX_NOVAL || sp == MX_NOVAL) {
            result = 0;
            break;
        }
        mx_num ng, np;
        env.pm_mask = g.mask;
        mx_status tg = mx_eval_num(g.e, g.i, &env, &ng);
        env.pm_mask = p.mask;
        mx_status tp = mx_eval_num(p.e, p.i, &env, &np);
        if (tg == MX_OK && tp == MX_OK) {
            valid++;
            if (!num_equal(&ng, &np, has_float, env.n_vars, digits, C->o->float_rounding))
                result = 0;
        } else if (tg == MX_UNDEF && tp == MX_UNDEF) {
            continue; // undefined on both sides at this point
        } else {
            if (tg == MX_BIG || tp == MX_BIG || sg == MX_BIG || sp == MX_BIG)
                C->why = "too large to compare";
            else if (tg == MX_UNDEF || tp == MX_UNDEF)
                C->why = "undefined value";
            result = 0;
        }
    }
    if (valid == 0 || (env.n_vars && valid < 3)) result = 0;
    mpq_clears(qg, qp, NULL);
    C->budget = env.budget;
    mx_env_clear(&env);
    return result;
}

static int scalar_equal(cmp *C, ref g, ref p) {
    if (C->o->percent) { // lenient: 50% also equals 50
        int gp = KIND(g) == MX_PERCENT, pp = KIND(p) == MX_PERCENT;
        if (gp != pp) {
            ref g2 = gp ? sub(g, NODE(g)->a) : g, p2 = pp ? sub(p, NODE(p)->a) : p;
            if (scalar_core(C, g2, p2)) return 1;
        }
    }
    return scalar_core(C, g, p);
}

// ---- intervals -----------------------------------------------------------------------------
typedef struct ivl {
    ref lo, hi;
    int lo_inf, hi_inf; // endpoint is infinite
    int lo_neg, hi_neg; // sign of an infinite endpoint
    int lo_closed, hi_closed;
} ivl;

static void set_end(ref r, int i, ref *end, int *inf, int *neg) {
    *end = sub(r, i);
    *inf = mx_is_inf(r.e, i, neg);
}

static int to_ivl(ref r, ivl *v) {
    memset(v, 0, sizeof *v);
    const mx_node *n = NODE(r);
    if (n->kind == MX_REALS) {
        v->lo_inf = v->hi_inf = v->lo_neg = 1;
        v->hi_neg = 0;
        return 1;
    }
    if (n->kind == MX_INTERVAL) {
        set_end(r, n->a, &v->lo, &v->lo_inf, &v->lo_neg);
        set_end(r, n->b, &v->hi, &v->hi_inf, &v->hi_neg);
        v->lo_closed = n->op & 1;
        v->hi_closed = (n->op >> 1) & 1;
        return 1;
    }
    if (n->kind == MX_TUPLE && n->len == 2 && n->op == '(') {
        set_end(r, n->a, &v->lo, &v->lo_inf, &v->lo_neg);
        set_end(r, r.e->nodes[n->a].next, &v->hi, &v->hi_inf, &v->hi_neg);
        return 1;
    }
    return 0;
}

static int ivl_equal(cmp *C, const ivl *a, const ivl *b) {
    if (a->lo_inf != b->lo_inf || a->hi_inf != b->hi_inf) return 0;
    if (a->lo_inf ? a->lo_neg != b->lo_neg
                  : (a->lo_closed != b->lo_closed || !scalar_equal(C, a->lo, b->lo)))
        return 0;
    if (a->hi_inf ? a->hi_neg != b->hi_neg
                  : (a->hi_closed != b->hi_closed || !scalar_equal(C, a->hi, b->hi)))
        return 0;
    return 1;
}

// ---- relations -----------------------------------------------------------------------------
typedef struct atom {
    ref big, small; // the relation reads big - small (op) 0
    int op;         // MXR_EQ, MXR_NE, MXR_GT, MXR_GE
} atom;

static int atoms_of(ref r, atom *out, int cap) {
    int n = 0;
    int prev = NODE(r)->a;
    // "x = 5+5+1 = 7 = 11", "x = 1/3 \approx 0.33": an assignment chain reads x = its value
    int chain = 1, approx = 0;
    for (int c = r.e->nodes[prev].next; c >= 0; c = r.e->nodes[c].next) {
        if (r.e->nodes[c].rel == MXR_APPROX)
            approx = 1;
        else if (r.e->nodes[c].rel != MXR_EQ)
            chain = 0;
    }
    if (chain && (NODE(r)->len >= 3 || approx) && is_label(sub(r, prev)) && cap >= 1) {
        out[0] = (atom){sub(r, prev), sub(r, predicted_value(r)), MXR_EQ};
        return 1;
    }
    for (int c = r.e->nodes[prev].next; c >= 0; prev = c, c = r.e->nodes[c].next) {
        int op = r.e->nodes[c].rel;
        if (op == MXR_APPROX || op == MXR_IN) continue;
        if (n >= cap) return -1;
        ref L = sub(r, prev), R = sub(r, c);
        atom *a = &out[n++];
        if (op == MXR_LT || op == MXR_LE) {
            a->big = R;
            a->small = L;
            a->op = op == MXR_LT ? MXR_GT : MXR_GE;
        } else {
            a->big = L;
            a->small = R;
            a->op = op;
        }
    }
    return n;
}

static int no_vars(ref r) {
    mx_env env;
    mx_env_init(&env);
    int ok = mx_collect_vars(r.e, r.i, &env) == 0 && env.n_vars == 0;
    mx_env_clear(&env);
    return ok;
}

// big-small evaluated at the current point: exact into d (returns 1), numeric into *v (returns 0),
// or -1 when not evaluable (*st says why).
static int side_diff(mx_env *env, const atom *a, mpq_t d, mx_num *v, mx_status *st) {
    mpq_t s;
    mpq_init(s);
    env->pm_mask = a->big.mask;
    mx_status s1 = mx_eval_exact(a->big.e, a->big.i, env, d);
    env->pm_mask = a->small.mask;
    mx_status s2 = s1 == MX_NOVAL ? MX_NOVAL : mx_eval_exact(a->small.e, a->small.i, env, s);
    if (s1 == MX_OK && s2 == MX_OK) {
        mpq_sub(d, d, s);
        mpq_clear(s);
        return 1;
    }
    mpq_clear(s);
    if (s1 == MX_NOVAL || s2 == MX_NOVAL) {
        *st = MX_NOVAL;
        return -1;
    }
    mx_num x, y;
    env->pm_mask = a->big.mask;
    s1 = mx_eval_num(a->big.e, a->big.i, env, &x);
    env->pm_mask = a->small.mask;
    s2 = mx_eval_num(a->small.e, a->small.i, env, &y);
    if (s1 != MX_OK || s2 != MX_OK) {
        *st = s1 != MX_OK ? s1 : s2;
        return -1;
    }
    v->re = x.re - y.re;
    v->im = x.im - y.im;
    v->err = x.err + y.err + LDBL_EPSILON * (hypotl(x.re, x.im) + hypotl(y.re, y.im));
    return 0;
}

static long double q_ld(const mpq_t q) {
    return (long double)mpq_get_d(q);
}

// The two atoms hold for the same values: same kind, and one difference is a constant (positive
// for inequalities) multiple of the other at every evaluation point.
static int atom_equal(cmp *C, const atom *a, const atom *b) {
    if (a->op != b->op) return 0;
    mx_env env;
    mx_env_init(&env);
    env.budget = C->budget;
    int ok = mx_collect_vars(a->big.e, a->big.i, &env) == 0 &&
             mx_collect_vars(a->small.e, a->small.i, &env) == 0 &&
             mx_collect_vars(b->big.e, b->big.i, &env) == 0 &&
             mx_collect_vars(b->small.e, b->small.i, &env) == 0;
    int npts = env.n_vars ? N_POINTS : 1, have = 0, have_exact = 0;
    mpq_t da, db, r, r0;
    mpq_inits(da, db, r, r0, NULL);
    long double ratio = 0;
    for (int k = 0; k < npts && ok; k++) {
        if (env.n_vars) mx_env_point(&env, k);
        mx_num va, vb;
        mx_status st = MX_OK;
        int xa = side_diff(&env, a, da, &va, &st);
        int xb = xa < 0 ? -1 : side_diff(&env, b, db, &vb, &st);
        if (xa < 0 || xb < 0) {
            if (st != MX_UNDEF) ok = 0;
            continue;
        }
        if (xa == 1 && xb == 1) {
            if (mpq_sgn(da) == 0 || mpq_sgn(db) == 0) {
                if (mpq_sgn(da) != mpq_sgn(db)) ok = 0;
                continue;
            }
            mpq_div(r, db, da);
            if (have_exact && !mpq_equal(r, r0)) ok = 0;
            if (have && !have_exact && fabsl(q_ld(r) - ratio) > 1e-9L * fabsl(ratio)) ok = 0;
            if (!have_exact) mpq_set(r0, r);
            have_exact = 1;
            ratio = q_ld(r);
        } else {
            if (xa == 1) va.re = q_ld(da), va.im = 0, va.err = fabsl(va.re) * LDBL_EPSILON;
            if (xb == 1) vb.re = q_ld(db), vb.im = 0, vb.err = fabsl(vb.re) * LDBL_EPSILON;
            long double ma = hypotl(va.re, va.im), mb = hypotl(vb.re, vb.im);
            int za = ma <= 8 * va.err, zb = mb <= 8 * vb.err;
            if (za || zb) {
                if (za != zb) ok = 0;
                continue;
            }
            // ratio vb / va must be real
            long double rr = (vb.re * va.re + vb.im * va.im) / (ma * ma);
            long double ri = (vb.im * va.re - vb.re * va.im) / (ma * ma);
            long double rerr = (vb.err + mb / ma * va.err) / ma * 8 + 1e-12L * fabsl(rr);
            if (fabsl(ri) > rerr) ok = 0;
            if (have && fabsl(rr - ratio) > rerr + 1e-9L * fabsl(ratio)) ok = 0;
            if (!have) ratio = rr;
        }
        have = 1;
        if (ok && (a->op == MXR_GT || a->op == MXR_GE) && ratio <= 0) ok = 0;
    }
    // with no usable point both sides were zero everywhere: two identities
    mpq_clears(da, db, r, r0, NULL);
    C->budget = env.budget;
    mx_env_clear(&env);
    return ok;
}

static int rel_equal(cmp *C, ref g, ref p) {
    atom ga[MAX_ATOMS], pa[MAX_ATOMS];
    int ng = atoms_of(g, ga, MAX_ATOMS), np = atoms_of(p, pa, MAX_ATOMS);
    if (ng <= 0 || np <= 0 || ng != np) return 0;
    for (int pass = 0; pass < 2; pass++) {
        const atom *x = pass ? pa : ga, *y = pass ? ga : pa;
        for (int i = 0; i < ng; i++) {
            int found = 0;
            for (int j = 0; j < np && !found; j++) found = atom_equal(C, &x[i], &y[j]);
            if (!found) return 0;
        }
    }
    return 1;
}

// What a bound may constrain: a variable, or a name of a value (f(x), AB).
static int is_bound_var(ref r) {
    return KIND(r) == MX_SYM || (KIND(r) == MX_MUL && is_label(r));
}

// A relation in one variable as an interval (or, for x \ne c, the two open intervals).
static int rel_to_ivl(ref r, ivl *v, int *ne) {
    atom at[MAX_ATOMS];
    int n = atoms_of(r, at, MAX_ATOMS);
    if (n <= 0) return 0;
    memset(v, 0, sizeof *v);
    v->lo_inf = v->hi_inf = v->lo_neg = 1;
    int have_lo = 0, have_hi = 0;
    *ne = 0;
    const mx_node *var = NULL;
    ref var_ref = r;
    for (int k = 0; k < n; k++) {
        // big - small (op) 0 with the variable (or a name: f(x), AB) on one side
        int var_big = is_bound_var(at[k].big) && no_vars(at[k].small);
        int var_small = is_bound_var(at[k].small) && no_vars(at[k].big);
        if (!var_big && !var_small) return 0;
        ref vr = var_big ? at[k].big : at[k].small;
        const mx_node *s = NODE(vr);
        if (var && s->kind == MX_SYM &&
            (var->kind != MX_SYM || s->n != var->n || memcmp(s->s, var->s, (size_t)s->n) != 0 ||
             s->a >= 0))
            return 0;
        if (var && s->kind != MX_SYM && !canon_equal(vr, var_ref)) return 0;
        var = s;
        var_ref = vr;
        ref c = var_big ? at[k].small : at[k].big;
        int closed = at[k].op == MXR_GE;
        if (at[k].op == MXR_EQ) return 0;
        if (at[k].op == MXR_NE) {
            if (n != 1) return 0;
            *ne = 1;
            v->lo = v->hi = c;
            return 1;
        }
        if (var_big) { // x > c: a lower bound
            if (have_lo++) return 0;
            v->lo = c;
            v->lo_inf = 0;
            v->lo_closed = closed;
        } else {
            if (have_hi++) return 0;
            v->hi = c;
            v->hi_inf = 0;
            v->hi_neg = 0;
            v->hi_closed = closed;
        }
    }
    if (!have_hi) v->hi_neg = 0;
    return 1;
}

static int rel_set_equal(cmp *C, ref rel, ref set) {
    ivl a, b;
    int ne;
    if (!rel_to_ivl(rel, &a, &ne)) return 0;
    if (!ne) return to_ivl(set, &b) && ivl_equal(C, &a, &b);
    if (KIND(set) != MX_UNION || NODE(set)->len != 2) return 0;
    ivl left = {.hi = a.lo, .lo_inf = 1, .lo_neg = 1}, right = {.lo = a.lo, .hi_inf = 1};
    ref comp[2];
    children(set, comp, 2);
    ivl c0, c1;
    if (!to_ivl(comp[0], &c0) || !to_ivl(comp[1], &c1)) return 0;
    return (ivl_equal(C, &left, &c0) && ivl_equal(C, &right, &c1)) ||
           (ivl_equal(C, &left, &c1) && ivl_equal(C, &right, &c0));
}

// ---- text ----------------------------------------------------------------------------------
// Text-like node as lowercase letters and digits: \text{...}, a variable name, a product of
// one-letter variables (an italic word). Returns the length or -1.
static int text_form(ref r, char *out, int cap, int depth) {
    const mx_node *n = NODE(r);
    int k = 0;
    if (depth > 8) return -1;
    if (n->kind == MX_TEXT) {
        for (int j = 0; j < n->n && k < cap - 1; j++) {
            if (n->s[j] == '\\') {
                while (j + 1 < n->n && isalpha((unsigned char)n->s[j + 1])) j++;
                continue;
            }
            unsigned char c = (unsigned char)n->s[j];
            if (isalnum(c) || c >= 0x80) out[k++] = (char)tolower(c);
        }
    } else if (n->kind == MX_SYM && n->a < 0 && n->op == 0) {
        for (int j = 0; j < n->n && k < cap - 1; j++)
            out[k++] = (char)tolower((unsigned char)n->s[j]);
    } else if (n->kind == MX_CONST && (n->op == MXC_E || n->op == MXC_I)) {
        out[k++] = n->op == MXC_E ? 'e' : 'i';
    } else if (n->kind == MX_MUL) {
        for (int c = n->a; c >= 0; c = r.e->nodes[c].next) {
            if (r.e->nodes[c].rel) return -1;
            int m = text_form(sub(r, c), out + k, cap - k, depth + 1);
            if (m < 0) return -1;
            k += m;
        }
    } else {
        return -1;
    }
    out[k] = '\0';
    return k;
}

static int text_equal(ref g, ref p) {
    char a[256], b[256];
    int na = text_form(g, a, sizeof a, 0), nb = text_form(p, b, sizeof b, 0);
    return na > 0 && nb > 0 && strcmp(a, b) == 0;
}

// ---- named values --------------------------------------------------------------------------
#define MAX_NAMED 16

// "a = 2, b = 3" (assignments to different labels) or "(a, b) = (2, 3)": the labels and their
// values in written order. Returns the count, 0 when r is not of that form.
static int named_values(ref r, ref *names, ref *vals, int cap) {
    int k = KIND(r), n = 0;
    if (k == MX_REL) {
        if (part_count(r) != 2) return 0;
        ref L = sub(r, NODE(r)->a), R = sub(r, r.e->nodes[NODE(r)->a].next);
        if (NODE(R)->rel != MXR_EQ || KIND(L) != MX_TUPLE || KIND(R) != MX_TUPLE ||
            NODE(L)->len != NODE(R)->len || NODE(L)->len > cap || !is_label(L))
            return 0;
        n = children(L, names, cap);
        children(R, vals, cap);
        return n;
    }
    if (k != MX_LIST && k != MX_SET) return 0;
    for (int c = NODE(r)->a; c >= 0; c = r.e->nodes[c].next) {
        ref x = sub(r, c);
        if (KIND(x) != MX_REL || part_count(x) != 2 || n >= cap) return 0;
        ref L = sub(x, NODE(x)->a), R = sub(x, x.e->nodes[NODE(x)->a].next);
        if (NODE(R)->rel != MXR_EQ || !is_label(L)) return 0;
        names[n] = L;
        vals[n++] = R;
    }
    for (int i = 0; i < n; i++) // "x = 1, x = 2" is a set of values of one name
        for (int j = i + 1; j < n; j++)
            if (canon_equal(names[i], names[j])) return 0;
    return n;
}

// A reference naming its quantities ("a = 2, b = 3", "(x, y) = (1, 2)") against a prediction:
// named values are matched by name (in order when the names differ), a bare tuple or list in
// written order. -1 when the reference names nothing or the prediction is of another kind.
static int named_equal(cmp *C, ref g, ref p, int depth) {
    ref gn[MAX_NAMED], gv[MAX_NAMED], pn[MAX_NAMED], pv[MAX_NAMED], pe[MAX_ELEMS];
    int ng = named_values(g, gn, gv, MAX_NAMED);
    if (ng < 2) return -1;
    int np = named_values(p, pn, pv, MAX_NAMED);
    if (np > 0) {
        if (np != ng) return 0;
        int by_name = 1, match[MAX_NAMED];
        for (int i = 0; i < ng && by_name; i++) {
            match[i] = -1;
            for (int j = 0; j < np && match[i] < 0; j++)
                if (canon_equal(gn[i], pn[j])) match[i] = j;
            by_name = match[i] >= 0;
        }
        if (!by_name) return ordered_equal(C, gv, ng, pv, np, depth);
        for (int i = 0; i < ng; i++)
            if (!eq(C, gv[i], pv[match[i]], depth + 1)) return 0;
        return 1;
    }
    int pk = KIND(p);
    if (pk == MX_TUPLE || pk == MX_LIST) {
        np = children(p, pe, MAX_ELEMS);
        return ordered_equal(C, gv, ng, pe, np, depth);
    }
    return -1;
}

// ---- ratios and matrices -------------------------------------------------------------------
// The exact value of node r at the evaluation point of env (variables set); 0 when none.
static int value_at(cmp *C, mx_env *env, ref r, mpq_t out) {
    env->budget = C->budget;
    env->pm_mask = r.mask;
    int ok = mx_eval_exact(r.e, r.i, env, out) == MX_OK;
    C->budget = env->budget;
    return ok;
}

// The exact value of a constant node; 0 when it has none.
static int exact_value(cmp *C, ref r, mpq_t out) {
    mx_env env;
    mx_env_init(&env);
    env.budget = C->budget;
    env.pm_mask = r.mask;
    int ok = mx_collect_vars(r.e, r.i, &env) == 0 && env.n_vars == 0 &&
             mx_eval_exact(r.e, r.i, &env, out) == MX_OK;
    C->budget = env.budget;
    mx_env_clear(&env);
    return ok;
}

// A ratio a : b against a number: a / b (2:3 is 2/3), exactly or rounded when a decimal is
// written.
static int ratio_scalar_equal(cmp *C, ref ratio, ref v) {
    if (NODE(ratio)->len != 2) return 0;
    ref parts[2];
    children(ratio, parts, 2);
    mpq_t a, b, x;
    mpq_inits(a, b, x, NULL);
    int r = exact_value(C, parts[0], a) && exact_value(C, parts[1], b) && mpq_sgn(b) != 0 &&
            exact_value(C, v, x);
    if (r) {
        mpq_div(a, a, b);
        int has_float = mx_has_float(ratio.e, ratio.i) || mx_has_float(v.e, v.i);
        r = has_float ? rounded_equal_q(a, x, C->o->float_rounding, C->o->float_rounding)
                      : mpq_equal(a, x);
    }
    mpq_clears(a, b, x, NULL);
    return r;
}

#define MAT_MAX 36 // entries of a matrix that matrix arithmetic handles (6 x 6)

typedef struct mat {
    int rows, cols; // 0 x 0: a scalar in v[0]
    mpq_t v[MAT_MAX];
} mat;

static void mat_init(mat *m) {
    m->rows = m->cols = 0;
    for (int k = 0; k < MAT_MAX; k++) mpq_init(m->v[k]);
}
static void mat_clear(mat *m) {
    for (int k = 0; k < MAT_MAX; k++) mpq_clear(m->v[k]);
}

// Whether node r is a matrix or an arithmetic expression with one (2M, AB, M + N, -M, M/2).
static int has_matrix(ref r, int depth) {
    int k = KIND(r);
    if (k == MX_MATRIX) return 1;
    if (depth > 6) return 0;
    if (k == MX_MUL || k == MX_ADD) {
        for (int c = NODE(r)->a; c >= 0; c = r.e->nodes[c].next)
            if (has_matrix(sub(r, c), depth + 1)) return 1;
        return 0;
    }
    if (k == MX_NEG || k == MX_DIV || k == MX_POW) return has_matrix(sub(r, NODE(r)->a), depth + 1);
    return 0;
}

// m = a * b (either may be a scalar). 0 when the shapes do not fit.
static int mat_mul(mat *m, const mat *a, const mat *b) {
    if (a->rows == 0 || b->rows == 0) {
        const mat *s = a->rows == 0 ? a : b, *x = a->rows == 0 ? b : a;
        int n = x->rows ? x->rows * x->cols : 1;
        for (int k = 0; k < n; k++) mpq_mul(m->v[k], s->v[0], x->v[k]);
        m->rows = x->rows;
        m->cols = x->cols;
        return 1;
    }
    if (a->cols != b->rows || a->rows * b->cols > MAT_MAX) return 0;
    mpq_t t;
    mpq_init(t);
    for (int i = 0; i < a->rows; i++)
        for (int j = 0; j < b->cols; j++) {
            mpq_set_ui(m->v[i * b->cols + j], 0, 1);
            for (int k = 0; k < a->cols; k++) {
                mpq_mul(t, a->v[i * a->cols + k], b->v[k * b->cols + j]);
                mpq_add(m->v[i * b->cols + j], m->v[i * b->cols + j], t);
            }
        }
    mpq_clear(t);
    m->rows = a->rows;
    m->cols = b->cols;
    return 1;
}

static void mat_copy(mat *d, const mat *s) {
    d->rows = s->rows;
    d->cols = s->cols;
    int n = s->rows ? s->rows * s->cols : 1;
    for (int k = 0; k < n; k++) mpq_set(d->v[k], s->v[k]);
}

// The exact value of a matrix expression at the evaluation point of env (entries may hold
// variables). 1, or 0 when it has none (irrational entries, shapes that do not fit, too large).
static int mat_value(cmp *C, mx_env *env, ref r, mat *out, int depth) {
    const mx_node *n = NODE(r);
    if (depth > 6) return 0;
    if (n->kind == MX_MATRIX) {
        int rows = n->len, cols = -1, k = 0;
        for (int row = n->a; row >= 0; row = r.e->nodes[row].next) {
            const mx_node *R = &r.e->nodes[row];
            if (cols >= 0 && R->len != cols) return 0;
            cols = R->len;
            if (rows * cols > MAT_MAX) return 0;
            for (int c = R->a; c >= 0; c = r.e->nodes[c].next)
                if (!value_at(C, env, sub(r, c), out->v[k++])) return 0;
        }
        out->rows = rows;
        out->cols = cols;
        return rows > 0 && cols > 0;
    }
    if (!has_matrix(r, 0)) {
        out->rows = out->cols = 0;
        return value_at(C, env, r, out->v[0]);
    }
    int ok = 0;
    mat a, b;
    mat_init(&a);
    mat_init(&b);
    switch (n->kind) {
    case MX_NEG:
        ok = mat_value(C, env, sub(r, n->a), out, depth + 1);
        for (int k = 0; ok && k < (out->rows ? out->rows * out->cols : 1); k++)
            mpq_neg(out->v[k], out->v[k]);
        break;
    case MX_DIV:
        ok = mat_value(C, env, sub(r, n->a), out, depth + 1) && !has_matrix(sub(r, n->b), 0) &&
             value_at(C, env, sub(r, n->b), a.v[0]) && mpq_sgn(a.v[0]) != 0;
        if (ok) {
            mpq_inv(a.v[0], a.v[0]);
            mat_copy(&b, out);
            ok = mat_mul(out, &a, &b);
        }
        break;
    case MX_POW:
        ok = mat_value(C, env, sub(r, n->a), &a, depth + 1) && a.rows == a.cols && a.rows > 0 &&
             value_at(C, env, sub(r, n->b), b.v[0]) && mpz_cmp_ui(mpq_denref(b.v[0]), 1) == 0 &&
             mpz_cmp_ui(mpq_numref(b.v[0]), 1) >= 0 && mpz_cmp_ui(mpq_numref(b.v[0]), 8) <= 0;
        if (ok) {
            unsigned long e = mpz_get_ui(mpq_numref(b.v[0]));
            mat_copy(out, &a);
            for (unsigned long k = 1; ok && k < e; k++) {
                mat_copy(&b, out);
                ok = mat_mul(out, &b, &a);
            }
        }
        break;
    case MX_MUL:
    case MX_ADD:
        ok = 1;
        out->rows = out->cols = 0;
        mpq_set_ui(out->v[0], n->kind == MX_MUL, 1);
        for (int c = n->a; c >= 0 && ok; c = r.e->nodes[c].next) {
            ok = mat_value(C, env, sub(r, c), &a, depth + 1);
            if (!ok) break;
            if (n->kind == MX_MUL) {
                if (r.e->nodes[c].rel) { // divided by: only a scalar
                    ok = a.rows == 0 && mpq_sgn(a.v[0]) != 0;
                    if (ok) mpq_inv(a.v[0], a.v[0]);
                }
                mat_copy(&b, out);
                ok = ok && mat_mul(out, &b, &a);
            } else if (c == n->a) {
                mat_copy(out, &a);
            } else {
                ok = a.rows == out->rows && a.cols == out->cols && a.rows > 0;
                for (int k = 0; ok && k < a.rows * a.cols; k++)
                    mpq_add(out->v[k], out->v[k], a.v[k]);
            }
        }
        break;
    default:
        break;
    }
    mat_clear(&a);
    mat_clear(&b);
    return ok;
}

// The determinant of a square matrix m (destroyed) into out, by elimination over rationals.
static int mat_det(mat *m, mpq_t out) {
    int n = m->rows;
    if (n < 1 || m->cols != n) return 0;
    mpq_t f, t;
    mpq_inits(f, t, NULL);
    mpq_set_ui(out, 1, 1);
    for (int c = 0; c < n; c++) {
        int piv = c;
        while (piv < n && mpq_sgn(m->v[piv * n + c]) == 0) piv++;
        if (piv == n) {
            mpq_set_ui(out, 0, 1);
            break;
        }
        if (piv != c) {
            for (int k = 0; k < n; k++) mpq_swap(m->v[piv * n + k], m->v[c * n + k]);
            mpq_neg(out, out);
        }
        mpq_mul(out, out, m->v[c * n + c]);
        for (int r = c + 1; r < n; r++) {
            mpq_div(f, m->v[r * n + c], m->v[c * n + c]);
            for (int k = c; k < n; k++) {
                mpq_mul(t, f, m->v[c * n + k]);
                mpq_sub(m->v[r * n + k], m->v[r * n + k], t);
            }
        }
    }
    mpq_clears(f, t, NULL);
    return 1;
}

// A determinant written as \begin{vmatrix}...\end{vmatrix} against a value, at N_POINTS
// values of the variables.
static int determinant_equal(cmp *C, ref det, ref v) {
    mat m;
    mat_init(&m);
    mx_env env;
    mx_env_init(&env);
    mpq_t d, x;
    mpq_inits(d, x, NULL);
    int ok = mx_collect_vars(det.e, det.i, &env) == 0 && mx_collect_vars(v.e, v.i, &env) == 0;
    int npts = env.n_vars ? N_POINTS : 1;
    int has_float = mx_has_float(det.e, det.i) || mx_has_float(v.e, v.i);
    for (int pt = 0; ok && pt < npts; pt++) {
        if (env.n_vars) mx_env_point(&env, pt);
        ok = mat_value(C, &env, det, &m, 0) && mat_det(&m, d) && value_at(C, &env, v, x);
        if (ok)
            ok = has_float ? rounded_equal_q(d, x, C->o->float_rounding, C->o->float_rounding)
                           : mpq_equal(d, x);
    }
    mpq_clears(d, x, NULL);
    mx_env_clear(&env);
    mat_clear(&m);
    return ok;
}

// Matrix expressions compared by their values (2M against the matrix of doubled entries;
// t(1, 2)^T against (t, 2t)^T at N_POINTS values of the variables).
static int matrix_expr_equal(cmp *C, ref g, ref p) {
    mat a, b;
    mat_init(&a);
    mat_init(&b);
    mx_env env;
    mx_env_init(&env);
    int ok = mx_collect_vars(g.e, g.i, &env) == 0 && mx_collect_vars(p.e, p.i, &env) == 0;
    int has_float = mx_has_float(g.e, g.i) || mx_has_float(p.e, p.i);
    int npts = env.n_vars ? N_POINTS : 1;
    for (int pt = 0; ok && pt < npts; pt++) {
        if (env.n_vars) mx_env_point(&env, pt);
        ok = mat_value(C, &env, g, &a, 0) && mat_value(C, &env, p, &b, 0) && a.rows > 0 &&
             a.rows == b.rows && a.cols == b.cols;
        for (int k = 0; ok && k < a.rows * a.cols; k++)
            ok = has_float
                     ? rounded_equal_q(a.v[k], b.v[k], C->o->float_rounding, C->o->float_rounding)
                     : mpq_equal(a.v[k], b.v[k]);
    }
    mx_env_clear(&env);
    mat_clear(&a);
    mat_clear(&b);
    return ok;
}

// ---- bounds joined by "and" / "or" ---------------------------------------------------------
// Two bounds on one variable written as a list ("x \ge 2 and x \le 5", "x < 2 or x > 3") as the
// set they describe: one interval when they overlap (read "and"), two when they are apart
// (read "or"; "and" would be empty). Returns the number of intervals, 0 when not of that form.
static int bounds_to_set(cmp *C, ref list, ivl *out) {
    if (KIND(list) != MX_LIST || NODE(list)->len != 2) return 0;
    ref el[2];
    children(list, el, 2);
    ivl a, b;
    int ne;
    if (KIND(el[0]) != MX_REL || KIND(el[1]) != MX_REL || !rel_to_ivl(el[0], &a, &ne) || ne ||
        !rel_to_ivl(el[1], &b, &ne) || ne)
        return 0;
    if (a.lo_inf && !b.lo_inf) { // a holds the lower bound
        ivl t = a;
        a = b;
        b = t;
    }
    if (a.lo_inf || !a.hi_inf || b.hi_inf || !b.lo_inf) return 0; // one lower, one upper bound
    mpq_t lo, hi;
    mpq_inits(lo, hi, NULL);
    int n = 0;
    if (exact_value(C, a.lo, lo) && exact_value(C, b.hi, hi)) {
        int c = mpq_cmp(lo, hi);
        if (c < 0) { // lo < x < hi
            out[0] = a;
            out[0].hi = b.hi;
            out[0].hi_inf = 0;
            out[0].hi_neg = 0;
            out[0].hi_closed = b.hi_closed;
            n = 1;
        } else if (c > 0) { // x < hi or x > lo
            out[0] = b;
            out[1] = a;
            n = 2;
        }
    }
    mpq_clears(lo, hi, NULL);
    return n;
}

// A set (interval, union of two, the reals) against the intervals of bounds_to_set.
static int set_is(cmp *C, ref set, const ivl *v, int n) {
    ivl x, y;
    if (n == 1) return to_ivl(set, &x) && ivl_equal(C, &x, &v[0]);
    if (KIND(set) != MX_UNION || NODE(set)->len != 2) return 0;
    ref comp[2];
    children(set, comp, 2);
    if (!to_ivl(comp[0], &x) || !to_ivl(comp[1], &y)) return 0;
    return (ivl_equal(C, &x, &v[0]) && ivl_equal(C, &y, &v[1])) ||
           (ivl_equal(C, &x, &v[1]) && ivl_equal(C, &y, &v[0]));
}

// ---- dispatch ------------------------------------------------------------------------------
static int eq(cmp *C, ref g, ref p, int depth) {
    if (depth > 24 || ++C->calls > MAX_CALLS || C->budget <= 0) {
        C->why = "too complex to compare";
        return 0;
    }
    if (canon_equal(g, p)) return 1;
    g = unwrap_in(g);
    p = unwrap_in(p);
    int named = named_equal(C, g, p, depth);
    if (named >= 0) return named;
    int gk = KIND(g), pk = KIND(p);
    // assignments: reference x = 3 against 3; prediction x = 1+2 = 3 against 3
    if (gk == MX_REL && pk != MX_REL) {
        int v = assignment_value(g);
        if (v >= 0) g = sub(g, v), gk = KIND(g);
    }
    if (pk == MX_REL && gk != MX_REL) {
        int v = predicted_value(p);
        if (v >= 0) {
            // "4\pi \approx 12.57" also answers a reference written as the decimal 12.57
            int last = -1;
            for (int c = NODE(p)->a; c >= 0; c = p.e->nodes[c].next) last = c;
            if (last != v && p.e->nodes[last].rel == MXR_APPROX && is_scalar_kind(gk) &&
                mx_has_float(g.e, g.i) && eq(C, g, sub(p, last), depth + 1))
                return 1;
            p = sub(p, v), pk = KIND(p);
        }
    }
    if (gk == MX_REL && pk == MX_REL) {
        if (rel_equal(C, g, p)) return 1;
        // the same label on both sides ("(x, y) = (1, 2)"): compare what is assigned
        int gv = assignment_value(g), pv = predicted_value(p);
        if (gv >= 0 && pv >= 0 && part_count(g) == 2 && part_count(p) == 2 &&
            canon_equal(sub(g, NODE(g)->a), sub(p, NODE(p)->a)))
            return eq(C, sub(g, gv), sub(p, pv), depth + 1);
        return 0;
    }
    int p_set = pk == MX_INTERVAL || pk == MX_UNION || pk == MX_REALS ||
                (pk == MX_TUPLE && NODE(p)->len == 2 && NODE(p)->op == '(');
    int g_set = gk == MX_INTERVAL || gk == MX_UNION || gk == MX_REALS ||
                (gk == MX_TUPLE && NODE(g)->len == 2 && NODE(g)->op == '(');
    if (gk == MX_REL && p_set) return rel_set_equal(C, g, p);
    // a predicted bound on one variable ("1 < x \le 3") against an interval: the same set
    // (set_relation=lenient, the default); a restated inequality of anything else ("x^2 < 4")
    // is never read as its solution
    if (pk == MX_REL && g_set) return C->o->set_relation ? rel_set_equal(C, p, g) : 0;
    if (gk == MX_TEXT || pk == MX_TEXT) return text_equal(g, p);
    ivl bounds[2];
    int nb;
    if (pk == MX_LIST && g_set && C->o->set_relation && (nb = bounds_to_set(C, p, bounds)))
        return set_is(C, g, bounds, nb);
    if (gk == MX_LIST && p_set && (nb = bounds_to_set(C, g, bounds)))
        return set_is(C, p, bounds, nb);

    int gc = is_collection(g), pc = is_collection(p);
    if (gc || pc) {
        ref ge[MAX_ELEMS], pe[MAX_ELEMS];
        int go = 0, po = 0, ng, np;
        if (gc && pc) {
            ng = elements(g, ge, MAX_ELEMS, &go);
            np = elements(p, pe, MAX_ELEMS, &po);
            if (ng < 0 || np < 0) {
                C->why = "too many elements";
                return 0;
            }
            if (go || po) return ordered_equal(C, ge, ng, pe, np, depth);
            return set_equal(C, ge, ng, pe, np, depth);
        }
        if (gk == MX_TUPLE && (pk == MX_LIST || pk == MX_SET)) { // in written order
            ng = children(g, ge, MAX_ELEMS);
            np = children(p, pe, MAX_ELEMS);
            return ordered_equal(C, ge, ng, pe, np, depth);
        }
        if ((gk == MX_LIST || gk == MX_SET) && pk == MX_TUPLE) {
            ng = elements(g, ge, MAX_ELEMS, &go);
            np = children(p, pe, MAX_ELEMS);
            return ng >= 0 && set_equal(C, ge, ng, pe, np, depth);
        }
        if (pc) C->why = "several answers";
        return 0;
    }
    if (g_set && p_set) {
        if (gk == MX_UNION || pk == MX_UNION) {
            if (gk != pk) return 0;
            ref ge[MAX_ELEMS], pe[MAX_ELEMS];
            int ng = children(g, ge, MAX_ELEMS), np = children(p, pe, MAX_ELEMS);
            return set_equal(C, ge, ng, pe, np, depth);
        }
        if (gk == MX_TUPLE && pk == MX_TUPLE) { // (a, b): a pair or an open interval, alike
            ref ge[2], pe[2];
            children(g, ge, 2);
            children(p, pe, 2);
            return ordered_equal(C, ge, 2, pe, 2, depth);
        }
        ivl a, b;
        return to_ivl(g, &a) && to_ivl(p, &b) && ivl_equal(C, &a, &b);
    }
    if (pk == MX_MATRIX && NODE(p)->op == 1 && is_scalar_kind(gk) && !has_matrix(g, 0))
        return determinant_equal(C, p, g);
    if (gk == MX_MATRIX && NODE(g)->op == 1 && is_scalar_kind(pk) && !has_matrix(p, 0))
        return determinant_equal(C, g, p);
    if ((gk == MX_MATRIX || pk == MX_MATRIX || has_matrix(g, 0) || has_matrix(p, 0)) &&
        !(gk == MX_MATRIX && pk == MX_MATRIX))
        return matrix_expr_equal(C, g, p);
    if (gk == MX_RATIO && pk != MX_RATIO && is_scalar_kind(pk)) return ratio_scalar_equal(C, g, p);
    if (pk == MX_RATIO && gk != MX_RATIO && is_scalar_kind(gk)) return ratio_scalar_equal(C, p, g);
    if (pk == MX_BINOM && (NODE(p)->flags & MXF_CFORM) && gk == MX_TUPLE && NODE(g)->len == 2) {
        ref ge[2], pe[2] = {sub(p, NODE(p)->a), sub(p, NODE(p)->b)};
        children(g, ge, 2); // C(5, 2) against the point (5, 2): a point named C
        return ordered_equal(C, ge, 2, pe, 2, depth);
    }
    if (gk != pk && !(is_scalar_kind(gk) && is_scalar_kind(pk))) return 0;
    switch (gk) {
    case MX_TUPLE:
    case MX_RATIO:
    case MX_MATRIX: {
        ref ge[MAX_ELEMS], pe[MAX_ELEMS];
        int ng = children(g, ge, MAX_ELEMS), np = children(p, pe, MAX_ELEMS);
        if (NODE(g)->len > MAX_ELEMS || NODE(p)->len > MAX_ELEMS) return 0;
        if (gk == MX_MATRIX) { // rows are lists: compare them in order
            if (ng != np) return 0;
            for (int k = 0; k < ng; k++) {
                ref gr[MAX_ELEMS], pr[MAX_ELEMS];
                int a = children(ge[k], gr, MAX_ELEMS), b = children(pe[k], pr, MAX_ELEMS);
                if (!ordered_equal(C, gr, a, pr, b, depth)) return 0;
            }
            return 1;
        }
        return ordered_equal(C, ge, ng, pe, np, depth);
    }
    case MX_ELLIPSIS:
    case MX_EMPTYSET:
        return 1;
    case MX_BASENUM:
        return 0; // compared by their text only (done above)
    default:
        break;
    }
    if (is_scalar_kind(gk) && is_scalar_kind(pk)) return scalar_equal(C, g, p);
    return 0;
}

// "3,5" / "-2,74" / "0,111" written for one number: two digit runs joined by a comma with no
// space, the second not a group of thousands (or the first a lone 0). The comma's offset in
// e->text, or -1.
static int decimal_comma(const mx_expr *e) {
    const mx_node *r = &e->nodes[e->root];
    if (r->kind != MX_LIST || r->len != 2) return -1;
    const mx_node *a = &e->nodes[r->a], *b = &e->nodes[a->next];
    if (a->kind == MX_NEG) a = &e->nodes[a->a];
    if (a->kind != MX_NUM || b->kind != MX_NUM || (a->flags & MXF_FLOAT) || (b->flags & MXF_FLOAT))
        return -1;
    for (int k = 0; k < a->n; k++)
        if (!isdigit((unsigned char)a->s[k])) return -1;
    for (int k = 0; k < b->n; k++)
        if (!isdigit((unsigned char)b->s[k])) return -1;
    if (a->s < e->text || b->s + b->n > e->text + e->n_text) return -1;
    if (a->s + a->n + 1 != b->s || a->s[a->n] != ',') return -1;
    if (b->n == 3 && !(a->n == 1 && a->s[0] == '0')) return -1;
    return (int)(a->s + a->n - e->text);
}

// A number with a decimal comma read again with a decimal point (a scalar reference and
// "3,5"; a reference "1,22" and the number 1.22); NULL when the text is not of that form.
static mx_expr *decimal_comma_reread(const mx_expr *e) {
    int at = decimal_comma(e);
    if (at < 0) return NULL;
    char buf[MX_MAX_TEXT + 1];
    memcpy(buf, e->text, (size_t)e->n_text);
    buf[at] = '.';
    mx_expr *x = mx_parse(buf, (size_t)e->n_text, 0);
    if (x && x->root < 0) {
        mx_free(x);
        x = NULL;
    }
    return x;
}

int mx_compare(const mx_expr *g, const mx_expr *p, const rl_math_opts *o, char *why, size_t n) {
    cmp C = {o, MX_BUDGET, 0, NULL};
    ref rg = {g, g->root, 0, 0}, rp = {p, p->root, 0, 0};
    int r = eq(&C, rg, rp, 0);
    int g_scalar = is_scalar_kind(g->nodes[g->root].kind) && !is_collection(rg);
    int p_scalar = is_scalar_kind(p->nodes[p->root].kind) && !is_collection(rp);
    if (!r && (g_scalar || p_scalar)) {
        // a comma that can only be a decimal comma, given that the other side is one number
        mx_expr *x = g_scalar ? decimal_comma_reread(p) : decimal_comma_reread(g);
        if (x) {
            ref rx = {x, x->root, 0, 0};
            const char *keep = C.why;
            C.why = NULL;
            r = g_scalar ? eq(&C, rg, rx, 0) : eq(&C, rx, rp, 0);
            if (!r) C.why = keep;
            mx_free(x);
        }
    }
    if (why && n) snprintf(why, n, "%s", !r && C.why ? C.why : "");
    return r;
}
