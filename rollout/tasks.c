// tasks: procedural arithmetic and derivative problems and the (optionally fallible) teacher.
#include "rollout/tasks.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rng.h"

void rl_task_params_defaults(rl_task_params *p) {
    *p = (rl_task_params){0};
    p->weights[RL_TASK_ARITH] = 1.0;
    p->weights[RL_TASK_DERIV] = 0.0;
    p->arith_min_ops = 2;
    p->arith_max_ops = 3;
    p->arith_max_operand = 9;
    p->arith_allow_negative = 1;
    p->arith_max_value = 0;
    p->deriv_max_degree = 3;
    p->deriv_max_coef = 5;
    p->deriv_max_x = 3;
    p->error_rate = 0.0;
    p->mistakes = RL_MISTAKE_SIGN | RL_MISTAKE_CARRY | RL_MISTAKE_COPY;
}

const char *rl_task_kind_name(rl_task_kind k) {
    switch (k) {
    case RL_TASK_ARITH:
        return "arith";
    case RL_TASK_DERIV:
        return "deriv";
    default:
        return "?";
    }
}

// ---- a small append-only text buffer ----------------------------------------------------------

typedef struct textbuf {
    char *p;
    size_t len, cap;
} textbuf;

__attribute__((format(printf, 2, 3))) static void tb_printf(textbuf *b, const char *fmt, ...) {
    if (b->len >= b->cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    b->len += (size_t)n;
    if (b->len >= b->cap) b->len = b->cap - 1; // truncated; the caller sized the buffer
}

// A number as an operand: negative values get parentheses so "3*(-2)" reads unambiguously.
static void tb_operand(textbuf *b, long v) {
    if (v < 0)
        tb_printf(b, "(%ld)", v);
    else
        tb_printf(b, "%ld", v);
}

// ---- arithmetic -------------------------------------------------------------------------------

static long apply_op(long a, char op, long b) {
    switch (op) {
    case '+':
        return a + b;
    case '-':
        return a - b;
    default:
        return a * b;
    }
}

// Reduces an expression with standard precedence: '*' leftmost first, then + and - left to right.
// Calls back nothing; returns 0 if every intermediate satisfies the constraints, -1 otherwise.
static int arith_value(const rl_task_params *p, const rl_problem *pr, long *result) {
    long v[RL_TASK_MAX_TERMS];
    char o[RL_TASK_MAX_TERMS];
    int n = pr->n;
    memcpy(v, pr->vals, sizeof v);
    memcpy(o, pr->ops, sizeof o);
    for (;;) {
        int i = -1;
        for (int k = 0; k < n - 1; k++)
            if (o[k] == '*') {
                i = k;
                break;
            }
        if (i < 0 && n > 1) i = 0;
        if (i < 0) break;
        long c = apply_op(v[i], o[i], v[i + 1]);
        if (!p->arith_allow_negative && c < 0) return -1;
        if (p->arith_max_value > 0 && labs(c) > p->arith_max_value) return -1;
        v[i] = c;
        for (int k = i + 1; k < n - 1; k++) v[k] = v[k + 1];
        for (int k = i; k < n - 2; k++) o[k] = o[k + 1];
        n--;
    }
    *result = v[0];
    return 0;
}

static void arith_generate(const rl_task_params *p, rl_rng *r, rl_problem *pr) {
    for (int attempt = 0; attempt < 1000; attempt++) {
        int n_ops = rl_rng_range(r, p->arith_min_ops, p->arith_max_ops);
        pr->n = n_ops + 1;
        for (int i = 0; i < pr->n; i++) pr->vals[i] = rl_rng_range(r, 1, p->arith_max_operand);
        for (int i = 0; i < n_ops; i++) pr->ops[i] = "+-*"[rl_rng_below(r, 3)];
        long value;
        if (arith_value(p, pr, &value) == 0) {
            snprintf(pr->answer, sizeof pr->answer, "%ld", value);
            return;
        }
    }
    // The constraints rejected everything we drew: fall back to a sum, which always satisfies them.
    for (int i = 0; i < pr->n - 1; i++) pr->ops[i] = '+';
    long value;
    arith_value(p, pr, &value);
    snprintf(pr->answer, sizeof pr->answer, "%ld", value);
}

static void arith_text(rl_problem *pr) {
    textbuf b = {pr->text, 0, sizeof pr->text};
    tb_printf(&b, "Compute %ld", pr->vals[0]);
    for (int i = 1; i < pr->n; i++) tb_printf(&b, "%c%ld", pr->ops[i - 1], pr->vals[i]);
    tb_printf(&b, ".");
}

// ---- derivatives ------------------------------------------------------------------------------

static void poly_text(textbuf *b, const long *coef, int degree) {
    int first = 1;
    for (int k = degree; k >= 0; k--) {
        long c = coef[k];
        if (c == 0) continue;
        if (!first)
            tb_printf(b, c < 0 ? "-" : "+");
        else if (c < 0)
            tb_printf(b, "-");
        long a = labs(c);
        if (k == 0)
            tb_printf(b, "%ld", a);
        else {
            if (a != 1) tb_printf(b, "%ld", a);
            tb_printf(b, k == 1 ? "x" : "x^%d", k);
        }
        first = 0;
    }
    if (first) tb_printf(b, "0");
}

static long ipow(long x, int k) {
    long r = 1;
    for (int i = 0; i < k; i++) r *= x;
    return r;
}

static long deriv_value(const rl_problem *pr) {
    long s = 0;
    for (int k = 1; k < pr->n; k++) s += (long)k * pr->vals[k] * ipow(pr->x0, k - 1);
    return s;
}

static void deriv_generate(const rl_task_params *p, rl_rng *r, rl_problem *pr) {
    // Degree >= 2, so f' has a term in x and the trace has a computation to check.
    int degree = p->deriv_max_degree < 2 ? 2 : p->deriv_max_degree;
    if (degree > RL_TASK_MAX_TERMS - 1) degree = RL_TASK_MAX_TERMS - 1;
    degree = rl_rng_range(r, 2, degree);
    pr->n = degree + 1;
    for (int k = 0; k <= degree; k++)
        pr->vals[k] = rl_rng_range(r, -p->deriv_max_coef, p->deriv_max_coef);
    while (pr->vals[degree] == 0)
        pr->vals[degree] = rl_rng_range(r, -p->deriv_max_coef, p->deriv_max_coef);
    pr->x0 = rl_rng_range(r, -p->deriv_max_x, p->deriv_max_x);
    snprintf(pr->answer, sizeof pr->answer, "%ld", deriv_value(pr));
}

static void deriv_text(rl_problem *pr) {
    textbuf b = {pr->text, 0, sizeof pr->text};
    tb_printf(&b, "Let f(x)=");
    poly_text(&b, pr->vals, pr->n - 1);
    tb_printf(&b, ". Find f'(%ld).", pr->x0);
}

void rl_task_generate(const rl_task_params *p, uint64_t seed, uint32_t purpose, uint64_t index,
                      rl_problem *out) {
    rl_rng r = rl_rng_stream(seed, purpose, index, 0);
    memset(out, 0, sizeof *out);
    out->id = index;
    double total = 0;
    for (int k = 0; k < RL_TASK_KINDS; k++) total += p->weights[k] > 0 ? p->weights[k] : 0;
    double u = rl_rng_double(&r) * (total > 0 ? total : 1);
    out->kind = RL_TASK_ARITH;
    for (int k = 0; k < RL_TASK_KINDS; k++) {
        double w = p->weights[k] > 0 ? p->weights[k] : 0;
        if (u < w) {
            out->kind = (rl_task_kind)k;
            break;
        }
        u -= w;
    }
    if (out->kind == RL_TASK_DERIV) {
        deriv_generate(p, &r, out);
        deriv_text(out);
    } else {
        arith_generate(p, &r, out);
        arith_text(out);
    }
}

// ---- the teacher ------------------------------------------------------------------------------

// A plausible miscopy of a number: a neighbouring digit, or swapped digits of a two-digit number.
static long miscopy(rl_rng *r, long v) {
    long a = labs(v);
    if (a >= 10 && a < 100 && a / 10 != a % 10 && rl_rng_below(r, 2) == 0) {
        long s = (a % 10) * 10 + a / 10;
        return v < 0 ? -s : s;
    }
    long w = v + (rl_rng_below(r, 2) ? 1 : -1);
    if (w == 0) w = v + 1;
    return w;
}

// Dropped carry (+) or dropped borrow (-) on non-negative operands; 0 if not applicable.
static long carry_slip(long a, char op, long b) {
    if (a < 0 || b < 0) return 0;
    if (op == '+' && (a % 10) + (b % 10) >= 10) return -10;
    if (op == '-' && a >= b && (a % 10) < (b % 10)) return +10;
    return 0;
}

typedef struct slipper {
    const rl_task_params *p;
    rl_rng rng;
    int made; // number of slips made so far
} slipper;

// Decides whether this step slips and how. `cands` lists applicable kinds; returns the chosen kind
// or 0 for no slip.
static unsigned pick_slip(slipper *s, unsigned applicable) {
    applicable &= s->p->mistakes;
    if (s->p->error_rate <= 0 || !applicable) return 0;
    if (rl_rng_double(&s->rng) >= s->p->error_rate) return 0;
    unsigned kinds[3];
    int n = 0;
    for (unsigned k = 1; k <= 4; k <<= 1)
        if (applicable & k) kinds[n++] = k;
    s->made++;
    return kinds[rl_rng_below(&s->rng, (uint32_t)n)];
}

static void arith_trace(slipper *s, const rl_problem *pr, textbuf *b, long *answer) {
    long v[RL_TASK_MAX_TERMS];
    char o[RL_TASK_MAX_TERMS];
    int fresh[RL_TASK_MAX_TERMS]; // operand still as copied from the prompt
    int n = pr->n;
    for (int i = 0; i < n; i++) v[i] = pr->vals[i], o[i] = pr->ops[i], fresh[i] = 1;
    long la = v[0], lb = 0, lc = v[0];
    char lop = 0;
    while (n > 1) {
        int i = -1;
        for (int k = 0; k < n - 1; k++)
            if (o[k] == '*') {
                i = k;
                break;
            }
        if (i < 0) i = 0;
        long a = v[i], bb = v[i + 1];
        char op = o[i];
        long c = apply_op(a, op, bb);
        unsigned applicable = 0;
        if (fresh[i] || fresh[i + 1]) applicable |= RL_MISTAKE_COPY;
        if (carry_slip(a, op, bb)) applicable |= RL_MISTAKE_CARRY;
        if (c < 0) applicable |= RL_MISTAKE_SIGN;
        switch (pick_slip(s, applicable)) {
        case RL_MISTAKE_COPY:
            if (fresh[i + 1])
                bb = miscopy(&s->rng, bb);
            else
                a = miscopy(&s->rng, a);
            c = apply_op(a, op, bb);
            break;
        case RL_MISTAKE_CARRY:
            c += carry_slip(a, op, bb);
            break;
        case RL_MISTAKE_SIGN:
            c = -c;
            break;
        default:
            break;
        }
        tb_printf(b, "%ld%c%ld=%ld\n", a, op, bb, c);
        la = a, lb = bb, lc = c, lop = op;
        v[i] = c;
        fresh[i] = 0;
        for (int k = i + 1; k < n - 1; k++) v[k] = v[k + 1], fresh[k] = fresh[k + 1];
        for (int k = i; k < n - 2; k++) o[k] = o[k + 1];
        n--;
    }
    // Check the last step by its inverse: the check holds exactly when that step was right.
    if (lop == '+')
        tb_printf(b, "check: %ld-%ld=%ld\n", lc, lb, la);
    else if (lop == '-')
        tb_printf(b, "check: %ld+%ld=%ld\n", lc, lb, la);
    else if (lop == '*')
        tb_printf(b, "check: %ld/%ld=%ld\n", lc, lb, la);
    *answer = v[0];
}

static void deriv_trace(slipper *s, const rl_problem *pr, textbuf *b, long *answer) {
    int degree = pr->n - 1;
    long d[RL_TASK_MAX_TERMS] = {0}; // derivative coefficients d[k-1] = k * a_k
    for (int k = 1; k <= degree; k++) {
        long a = pr->vals[k];
        if (a != 0 && pick_slip(s, RL_MISTAKE_COPY) == RL_MISTAKE_COPY) a = miscopy(&s->rng, a);
        d[k - 1] = (long)k * a;
    }
    tb_printf(b, "f'(x)=");
    poly_text(b, d, degree - 1);
    tb_printf(b, "\n");

    // Substitute, then evaluate each non-constant term on its own line.
    long vals[RL_TASK_MAX_TERMS];
    int nv = 0;
    tb_printf(b, "f'(");
    tb_printf(b, "%ld", pr->x0);
    tb_printf(b, ")=");
    int first = 1;
    for (int k = degree - 1; k >= 0; k--) {
        if (d[k] == 0) continue;
        if (d[k] < 0)
            tb_printf(b, "-%ld", -d[k]);
        else
            tb_printf(b, first ? "%ld" : "+%ld", d[k]);
        if (k >= 1) {
            tb_printf(b, "*");
            tb_operand(b, pr->x0);
            if (k >= 2) tb_printf(b, "^%d", k);
        }
        first = 0;
    }
    if (first) tb_printf(b, "0");
    tb_printf(b, "\n");
    for (int k = degree - 1; k >= 0; k--) {
        if (d[k] == 0) continue;
        long v = d[k] * ipow(pr->x0, k);
        if (k >= 1) {
            unsigned applicable = (d[k] < 0 || pr->x0 < 0) && v != 0 ? RL_MISTAKE_SIGN : 0;
            if (pick_slip(s, applicable) == RL_MISTAKE_SIGN) v = -v;
            tb_printf(b, "%ld*", d[k]);
            tb_operand(b, pr->x0);
            if (k >= 2) tb_printf(b, "^%d", k);
            tb_printf(b, "=%ld\n", v);
        }
        vals[nv++] = v;
    }
    long total = 0;
    for (int i = 0; i < nv; i++) total += vals[i];
    if (nv >= 2) {
        long run = vals[0], carry_from = 0;
        for (int i = 1; i < nv && !carry_from; i++) {
            if (run >= 0 && vals[i] >= 0 && carry_slip(run, '+', vals[i])) carry_from = 1;
            run += vals[i];
        }
        if (carry_from && pick_slip(s, RL_MISTAKE_CARRY) == RL_MISTAKE_CARRY) total -= 10;
        tb_printf(b, "%ld", vals[0]);
        for (int i = 1; i < nv; i++) tb_printf(b, vals[i] < 0 ? "%ld" : "+%ld", vals[i]);
        tb_printf(b, "=%ld\n", total);
        // Check: the total minus the other terms gives back the first term.
        tb_printf(b, "check: %ld", total);
        for (int i = 1; i < nv; i++) tb_printf(b, vals[i] < 0 ? "+%ld" : "-%ld", labs(vals[i]));
        tb_printf(b, "=%ld\n", vals[0]);
    } else if (nv == 1) {
        // A single term c*x0^k = v: check it by dividing back, v/c = x0^k.
        int k = degree - 1;
        while (k > 0 && d[k] == 0) k--;
        tb_printf(b, "check: %ld/%ld=%ld\n", vals[0], d[k], ipow(pr->x0, k));
    }
    *answer = nv ? total : 0;
}

size_t rl_teacher_trace(const rl_task_params *p, const rl_problem *pr, uint64_t seed,
                        uint64_t sample, char *out, size_t cap, int *made_mistake) {
    slipper s = {.p = p, .rng = rl_rng_stream(seed, RL_RNG_TEACHER, pr->id, sample), .made = 0};
    textbuf b = {out, 0, cap};
    if (cap) out[0] = '\0';
    long answer = 0;
    tb_printf(&b, "<think>\n");
    if (pr->kind == RL_TASK_DERIV)
        deriv_trace(&s, pr, &b, &answer);
    else
        arith_trace(&s, pr, &b, &answer);
    tb_printf(&b, "</think>\n\\boxed{%ld}", answer);
    if (made_mistake) {
        char want[32];
        snprintf(want, sizeof want, "%ld", answer);
        *made_mistake = strcmp(want, pr->answer) != 0;
    }
    return b.len;
}

// ---- the held-out set and the training stream -------------------------------------------------

static uint64_t text_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ? h : 1; // 0 marks an empty slot
}

static int hashset_insert(uint64_t *tab, size_t cap, uint64_t h) {
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (tab[i] == h) return 0;
        if (tab[i] == 0) {
            tab[i] = h;
            return 1;
        }
    }
}

static int hashset_has(const uint64_t *tab, size_t cap, uint64_t h) {
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (tab[i] == h) return 1;
        if (tab[i] == 0) return 0;
    }
}

int rl_taskset_init(rl_taskset *ts, const rl_task_params *p, uint64_t seed, int n_heldout,
                    rl_err *err) {
    memset(ts, 0, sizeof *ts);
    ts->params = *p;
    ts->seed = seed;
    size_t cap = 64;
    while (cap < (size_t)n_heldout * 4) cap <<= 1;
    ts->hash_cap = cap;
    ts->hashes = rl_calloc(cap, sizeof *ts->hashes);
    ts->heldout = rl_calloc((size_t)(n_heldout > 0 ? n_heldout : 1), sizeof *ts->heldout);
    uint64_t index = 0, limit = (uint64_t)n_heldout * 50 + 1000;
    while (ts->n_heldout < n_heldout && index < limit) {
        rl_problem pr;
        rl_task_generate(p, seed, RL_RNG_HELDOUT, index++, &pr);
        if (hashset_insert(ts->hashes, cap, text_hash(pr.text))) {
            pr.id = (uint64_t)ts->n_heldout;
            ts->heldout[ts->n_heldout++] = pr;
        }
    }
    if (ts->n_heldout < n_heldout) {
        int got = ts->n_heldout;
        rl_taskset_free(ts);
        return rl_fail(err, RL_EINPUT,
                       "data.heldout_size: only %d distinct problems found for %d requested; "
                       "make the tasks harder (more operators, larger operands)",
                       got, n_heldout);
    }
    return 0;
}

void rl_taskset_free(rl_taskset *ts) {
    free(ts->heldout);
    free(ts->hashes);
    memset(ts, 0, sizeof *ts);
}

int rl_taskset_is_heldout(const rl_taskset *ts, const char *text) {
    return hashset_has(ts->hashes, ts->hash_cap, text_hash(text));
}

void rl_taskset_train(const rl_taskset *ts, uint64_t index, rl_problem *out) {
    // Retry with a different sub-stream until the problem is not a held-out one. The retries are
    // part of the stream's definition, so problem `index` is the same in every run.
    for (uint64_t attempt = 0;; attempt++) {
        rl_task_generate(&ts->params, ts->seed, RL_RNG_DATA, index + (attempt << 40), out);
        out->id = index;
        if (!rl_taskset_is_heldout(ts, out->text) || attempt > 1000) return;
    }
}
