// math_eval: exact (GMP rationals) and numeric (complex long double with an error bound)
// evaluation of mx_node trees, polynomials, and evaluation points. See math_expr.h.
#include "verifiers/math/math_expr.h"

#include <complex.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_DEPTH 400 // trees are shallow (the parser limits nesting); this guards calls

typedef long double complex cld;

static const long double PI_L = 3.141592653589793238462643383279502884L;
static const long double E_L = 2.718281828459045235360287471352662498L;
// Relative rounding error charged per operation: a few units in the last place of long double.
static const long double U = 4.0L * LDBL_EPSILON;

int mx_is_list_kind(int k) {
    return k == MX_ADD || k == MX_MUL || k == MX_LIST || k == MX_SET || k == MX_TUPLE ||
           k == MX_UNION || k == MX_REL || k == MX_RATIO || k == MX_MATRIX;
}

static mx_status worst(mx_status a, mx_status b) {
    return a > b ? a : b;
}

// ---- exact values ----------------------------------------------------------------------------
static size_t qbits(const mpq_t q) {
    size_t a = mpz_sizeinbase(mpq_numref(q), 2), b = mpz_sizeinbase(mpq_denref(q), 2);
    return a > b ? a : b;
}

static mx_status charge(mx_env *env, size_t bits) {
    env->budget -= (long)(bits / 64 + 1);
    return env->budget < 0 ? MX_BIG : MX_OK;
}

static mx_status check_size(mx_env *env, const mpq_t q) {
    size_t b = qbits(q);
    if (b > MX_MAX_BITS) return MX_BIG;
    return charge(env, b);
}

// A literal ("7,425,000", "0.125", "1.5e-3") as an exact rational.
// Adds the repeating part "\overline{142857}" of a decimal with frac digits before it:
// R / ((10^r - 1) 10^frac).
static mx_status add_repeating(const char *s, int n, int frac, mpq_t out) {
    int a = 0;
    while (a < n && s[a] != '{') a++;
    int b = a + 1;
    while (b < n && s[b] >= '0' && s[b] <= '9') b++;
    int r = b - a - 1;
    if (a >= n || r < 1 || r > 60 || frac > 60) return MX_NOVAL;
    char digits[64];
    memcpy(digits, s + a + 1, (size_t)r);
    digits[r] = '\0';
    mpq_t x;
    mpq_init(x);
    mpz_set_str(mpq_numref(x), digits, 10);
    mpz_ui_pow_ui(mpq_denref(x), 10, (unsigned long)r);
    mpz_sub_ui(mpq_denref(x), mpq_denref(x), 1);
    mpz_t p;
    mpz_init(p);
    mpz_ui_pow_ui(p, 10, (unsigned long)frac);
    mpz_mul(mpq_denref(x), mpq_denref(x), p);
    mpz_clear(p);
    mpq_canonicalize(x);
    mpq_add(out, out, x);
    mpq_clear(x);
    return MX_OK;
}

mx_status mx_literal(const char *s, int n, mpq_t out) {
    char small[128], *buf = n < (int)sizeof small ? small : malloc((size_t)n + 1);
    if (!buf) return MX_BIG;
    int k = 0, frac = -1, j = 0, rep = -1;
    long expo = 0;
    for (; j < n; j++) {
        char c = s[j];
        if (c == '\\' && ((n - j > 9 && memcmp(s + j + 1, "overline{", 9) == 0) ||
                          (n - j > 4 && memcmp(s + j + 1, "dot{", 4) == 0))) {
            // 0.\overline{3}: the repeating digits end the literal (other backslashes are
            // digit-group spacing: 1\,000)
            rep = j;
            break;
        }
        if (c >= '0' && c <= '9') {
            buf[k++] = c;
            if (frac >= 0) frac++;
        } else if (c == '.') {
            frac = 0;
        } else if (c == '{' && j + 3 < n && s[j + 1] == ',' && s[j + 2] == '}' && frac < 0) {
            // 3{,}5: a decimal comma unless a group of exactly three digits follows
            int run = 0;
            while (j + 3 + run < n && s[j + 3 + run] >= '0' && s[j + 3 + run] <= '9') run++;
            if (run != 3) frac = 0;
            j += 2;
        } else if (c == 'e' || c == 'E') {
            break;
        }
    }
    if (j < n && rep < 0) { // exponent
        int neg = 0;
        j++;
        if (j < n && (s[j] == '-' || s[j] == '+')) neg = s[j++] == '-';
        for (; j < n && s[j] >= '0' && s[j] <= '9'; j++)
            if (expo < 100000) expo = expo * 10 + (s[j] - '0');
        if (neg) expo = -expo;
    }
    mx_status st = MX_OK;
    if (k == 0) {
        st = MX_NOVAL;
    } else {
        buf[k] = '\0';
        mpz_set_str(mpq_numref(out), buf, 10);
        mpz_set_ui(mpq_denref(out), 1);
        long shift = expo - (frac > 0 ? frac : 0);
        if (labs(shift) > 4000) {
            st = MX_BIG;
        } else if (shift > 0) {
            mpz_t p;
            mpz_init(p);
            mpz_ui_pow_ui(p, 10, (unsigned long)shift);
            mpz_mul(mpq_numref(out), mpq_numref(out), p);
            mpz_clear(p);
        } else if (shift < 0) {
            mpz_ui_pow_ui(mpq_denref(out), 10, (unsigned long)-shift);
            mpq_canonicalize(out);
        }
    }
    if (st == MX_OK && rep >= 0) st = add_repeating(s + rep, n - rep, frac > 0 ? frac : 0, out);
    if (buf != small) free(buf);
    return st;
}

static int var_index(const mx_env *env, const char *key) {
    for (int k = 0; k < env->n_vars; k++)
        if (strcmp(env->var[k], key) == 0) return k;
    return -1;
}

static const mx_fdef *find_func(const mx_env *env, char name) {
    for (int k = 0; k < env->n_funcs; k++)
        if (env->funcs[k].name == name) return &env->funcs[k];
    return NULL;
}

static mx_status ex(const mx_expr *e, int i, mx_env *env, mpq_t out, int depth);

// Integer power of an exact rational, refusing results beyond MX_MAX_BITS.
static mx_status q_pow_int(mx_env *env, mpq_t out, const mpq_t base, long n) {
    if (mpq_sgn(base) == 0) {
        if (n <= 0) return MX_UNDEF;
        mpq_set_ui(out, 0, 1);
        return MX_OK;
    }
    if (mpz_cmpabs_ui(mpq_numref(base), 1) == 0 && mpz_cmp_ui(mpq_denref(base), 1) == 0) {
        mpq_set(out, base);
        if (mpq_sgn(base) < 0 && n % 2 == 0) mpq_neg(out, out);
        return MX_OK;
    }
    unsigned long an = (unsigned long)(n < 0 ? -n : n);
    if (an > MX_MAX_BITS || (double)qbits(base) * (double)an > MX_MAX_BITS + 64.0) return MX_BIG;
    mpq_t r;
    mpq_init(r);
    mpz_pow_ui(mpq_numref(r), mpq_numref(base), an);
    mpz_pow_ui(mpq_denref(r), mpq_denref(base), an);
    if (n < 0) mpq_inv(r, r);
    mpq_canonicalize(r);
    mpq_swap(out, r);
    mpq_clear(r);
    return check_size(env, out);
}

// k-th root of an exact rational when it is exact; MX_NOTRAT otherwise.
static mx_status q_root(mpq_t out, const mpq_t q, unsigned long k) {
    if (k == 0) return MX_UNDEF;
    if (k == 1) {
        mpq_set(out, q);
        return MX_OK;
    }
    int neg = mpq_sgn(q) < 0;
    if (neg && k % 2 == 0) return MX_NOTRAT; // complex
    mpz_t a, b;
    mpz_inits(a, b, NULL);
    int ea = mpz_root(a, mpq_numref(q), k); // mpz_root of a negative number with odd k is fine
    int eb = mpz_root(b, mpq_denref(q), k);
    mx_status st = MX_NOTRAT;
    if (ea && eb) {
        mpz_set(mpq_numref(out), a);
        mpz_set(mpq_denref(out), b);
        mpq_canonicalize(out);
        st = MX_OK;
    }
    mpz_clears(a, b, NULL);
    return st;
}

// A small integer out of an exact rational (|v| <= limit), or 0 when it is not one.
static int q_small_int(const mpq_t q, long limit, long *v) {
    if (mpz_cmp_ui(mpq_denref(q), 1) != 0 || !mpz_fits_slong_p(mpq_numref(q))) return 0;
    long x = mpz_get_si(mpq_numref(q));
    if (x > limit || x < -limit) return 0;
    *v = x;
    return 1;
}

static mx_status ex_pow(const mx_expr *e, const mx_node *n, mx_env *env, mpq_t out, int depth) {
    mpq_t b, x;
    mpq_inits(b, x, NULL);
    mx_status st = ex(e, n->a, env, b, depth + 1);
    mx_status sx = ex(e, n->b, env, x, depth + 1);
    if (sx == MX_NOVAL || st == MX_NOVAL)
        st = MX_NOVAL;
    else if (st == MX_OK && sx == MX_OK) {
        long num, den;
        if (mpq_sgn(b) == 0 && mpq_sgn(x) > 0) {
            mpq_set_ui(out, 0, 1);
        } else if (!q_small_int(x, MX_MAX_BITS, &num) &&
                   !(mpz_fits_slong_p(mpq_numref(x)) && mpz_fits_slong_p(mpq_denref(x)))) {
            // a huge exponent: only 0, 1 and -1 stay small
            if (mpz_cmpabs_ui(mpq_numref(b), 1) == 0 && mpz_cmp_ui(mpq_denref(b), 1) == 0 &&
                mpz_cmp_ui(mpq_denref(x), 1) == 0) {
                mpq_set(out, b);
                if (mpq_sgn(b) < 0 && mpz_even_p(mpq_numref(x))) mpq_neg(out, out);
            } else {
                st = MX_BIG;
            }
        } else if (mpz_cmp_ui(mpq_denref(x), 1) == 0) {
            st = q_small_int(x, MX_MAX_BITS, &num) ? q_pow_int(env, out, b, num) : MX_BIG;
        } else {
            num = mpz_get_si(mpq_numref(x));
            den = mpz_get_si(mpq_denref(x));
            if (den > 64)
                st = MX_NOTRAT;
            else {
                mpq_t r;
                mpq_init(r);
                st = q_root(r, b, (unsigned long)den);
                if (st == MX_OK) st = q_pow_int(env, out, r, num);
                mpq_clear(r);
            }
        }
    } else {
        st = worst(st, sx);
    }
    mpq_clears(b, x, NULL);
    return st;
}

// Evaluates the body of f at an exact argument.
static mx_status ex_call(const mx_expr *e, const mx_node *n, mx_env *env, mpq_t out, int depth) {
    const mx_fdef *f = find_func(env, n->s[0]);
    if (!f || n->a < 0 || e->nodes[n->a].kind == MX_LIST) return MX_NOVAL;
    mpq_t arg;
    mpq_init(arg);
    mx_status st = ex(e, n->a, env, arg, depth + 1);
    if (st == MX_OK && n->op > 0) { // derivative of a polynomial body
        if (f->poly_deg < 0)
            st = MX_NOVAL;
        else {
            mpq_t acc, c, fk;
            mpq_inits(acc, c, fk, NULL);
            for (int k = f->poly_deg; k >= n->op; k--) {
                mpq_mul(acc, acc, arg);
                mpz_set_ui(mpq_numref(fk), 1);
                mpz_set_ui(mpq_denref(fk), 1);
                for (int j = 0; j < n->op; j++)
                    mpz_mul_ui(mpq_numref(fk), mpq_numref(fk), (unsigned long)(k - j));
                mpq_mul(c, f->coef[k], fk);
                mpq_add(acc, acc, c);
            }
            mpq_set(out, acc);
            mpq_clears(acc, c, fk, NULL);
        }
    } else if (st == MX_OK) {
        mx_env sub;
        mx_env_init(&sub);
        sub.n_vars = 1;
        strcpy(sub.var[0], f->var);
        sub.exact[0] = 1;
        mpq_set(sub.val_q[0], arg);
        sub.val[0] = (long double)mpq_get_d(arg);
        sub.funcs = env->funcs;
        sub.n_funcs = env->n_funcs;
        sub.budget = env->budget;
        st = ex(f->e, f->body, &sub, out, depth + 1);
        env->budget = sub.budget;
        mx_env_clear(&sub);
    }
    mpq_clear(arg);
    return st;
}

static mx_status ex(const mx_expr *e, int i, mx_env *env, mpq_t out, int depth) {
    if (i < 0) return MX_NOVAL;
    if (depth > EVAL_DEPTH) return MX_BIG;
    const mx_node *n = &e->nodes[i];
    mx_status st = MX_OK;
    mpq_t t;
    switch (n->kind) {
    case MX_NUM: {
        st = mx_literal(n->s, n->n, out);
        return st == MX_OK ? check_size(env, out) : st;
    }
    case MX_MIXED:
        mpq_init(t);
        st = ex(e, n->a, env, out, depth + 1);
        if (st == MX_OK) st = ex(e, n->b, env, t, depth + 1);
        if (st == MX_OK) mpq_add(out, out, t);
        mpq_clear(t);
        return st;
    case MX_SYM: {
        char key[48];
        if (mx_sym_key(e, i, key) < 0) return MX_NOVAL;
        int k = var_index(env, key);
        if (k < 0) return MX_NOVAL;
        if (!env->exact[k]) return MX_NOTRAT;
        mpq_set(out, env->val_q[k]);
        return MX_OK;
    }
    case MX_CONST:
        return n->op == MXC_INF ? MX_NOVAL : MX_NOTRAT;
    case MX_NEG:
        st = ex(e, n->a, env, out, depth + 1);
        if (st == MX_OK) mpq_neg(out, out);
        return st;
    case MX_PERCENT:
        st = ex(e, n->a, env, out, depth + 1);
        if (st == MX_OK) {
            mpz_mul_ui(mpq_denref(out), mpq_denref(out), 100);
            mpq_canonicalize(out);
        }
        return st;
    case MX_ADD:
    case MX_MUL: {
        int add = n->kind == MX_ADD;
        mpq_set_ui(out, add ? 0 : 1, 1);
        mpq_init(t);
        for (int c = n->a; c >= 0 && st == MX_OK; c = e->nodes[c].next) {
            mx_status sc = ex(e, c, env, t, depth + 1);
            if (sc != MX_OK) {
                st = sc;
                break;
            }
            if (add)
                mpq_add(out, out, t);
            else if (e->nodes[c].rel) {
                if (mpq_sgn(t) == 0)
                    st = MX_UNDEF;
                else
                    mpq_div(out, out, t);
            } else {
                mpq_mul(out, out, t);
            }
            if (st == MX_OK) st = check_size(env, out);
        }
        // a later child may make the whole thing "not a number" (a set, text)
        for (int c = e->nodes[i].a; st != MX_OK && st != MX_NOVAL && c >= 0; c = e->nodes[c].next) {
            int k = e->nodes[c].kind;
            if (k == MX_TEXT || k == MX_LIST || k == MX_SET || k == MX_TUPLE || k == MX_INTERVAL ||
                k == MX_ELLIPSIS || k == MX_REL || k == MX_MATRIX)
                st = MX_NOVAL;
        }
        mpq_clear(t);
        return st;
    }
    case MX_DIV:
    case MX_BINOM:
        mpq_init(t);
        st = ex(e, n->a, env, out, depth + 1);
        {
            mx_status sb = ex(e, n->b, env, t, depth + 1);
            if (st == MX_OK)
                st = sb;
            else
                st = worst(st, sb == MX_NOVAL ? MX_NOVAL : st);
        }
        if (st == MX_OK && n->kind == MX_DIV) {
            if (mpq_sgn(t) == 0)
                st = MX_UNDEF;
            else {
                mpq_div(out, out, t);
                st = check_size(env, out);
            }
        } else if (st == MX_OK) { // binomial coefficient of integers
            long nn, kk;
            int n_int = q_small_int(out, 1000000, &nn), k_int = q_small_int(t, 1000000, &kk);
            if ((!n_int || nn < 0) && k_int && kk >= 0 && kk <= 64) {
                // binom(x, k) of any rational x: x (x - 1) ... (x - k + 1) / k!
                mpq_t acc, f;
                mpq_inits(acc, f, NULL);
                mpq_set_ui(acc, 1, 1);
                for (long j = 0; j < kk && st == MX_OK; j++) {
                    mpq_set_si(f, -j, 1);
                    mpq_add(f, f, out);
                    mpq_mul(acc, acc, f);
                    mpq_set_ui(f, 1, (unsigned long)(j + 1));
                    mpq_mul(acc, acc, f);
                    st = check_size(env, acc);
                }
                mpq_set(out, acc);
                mpq_clears(acc, f, NULL);
            } else if (!n_int || !k_int)
                st = MX_NOTRAT;
            else if (nn < 0 || kk < 0 || kk > nn) {
                if (nn >= 0)
                    mpq_set_ui(out, 0, 1);
                else
                    st = MX_NOTRAT;
            } else {
                long small = kk < nn - kk ? kk : nn - kk;
                if ((double)small * log2((double)nn + 1) > MX_MAX_BITS)
                    st = MX_BIG;
                else {
                    mpz_bin_uiui(mpq_numref(out), (unsigned long)nn, (unsigned long)kk);
                    mpz_set_ui(mpq_denref(out), 1);
                    st = check_size(env, out);
                }
            }
        }
        mpq_clear(t);
        return st;
    case MX_POW:
        return ex_pow(e, n, env, out, depth);
    case MX_PM: {
        int minus = ((env->pm_mask >> (n->len & 31)) & 1u) ^ n->op;
        mpq_init(t);
        st = ex(e, n->b, env, t, depth + 1);
        if (st == MX_OK) {
            if (n->a >= 0)
                st = ex(e, n->a, env, out, depth + 1);
            else
                mpq_set_ui(out, 0, 1);
        }
        if (st == MX_OK) {
            if (minus)
                mpq_sub(out, out, t);
            else
                mpq_add(out, out, t);
        }
        mpq_clear(t);
        return st;
    }
    case MX_FACT: {
        st = ex(e, n->a, env, out, depth + 1);
        if (st != MX_OK) return st;
        long v;
        if (mpz_cmp_ui(mpq_denref(out), 1) != 0) return MX_NOTRAT;
        if (!q_small_int(out, 100000, &v)) return MX_BIG;
        if (v < 0) return MX_UNDEF;
        if (v > 2 && lgamma((double)v + 1) / log(2.0) > MX_MAX_BITS) return MX_BIG;
        st = charge(env, (size_t)(v > 2 ? lgamma((double)v + 1) / log(2.0) * 4 : 1));
        if (st != MX_OK) return st;
        mpz_fac_ui(mpq_numref(out), (unsigned long)v);
        mpz_set_ui(mpq_denref(out), 1);
        return MX_OK;
    }
    case MX_ABS:
        st = ex(e, n->a, env, out, depth + 1);
        if (st == MX_OK) mpq_abs(out, out);
        return st;
    case MX_FLOOR:
    case MX_CEIL:
        st = ex(e, n->a, env, out, depth + 1);
        if (st == MX_OK) {
            if (n->kind == MX_FLOOR)
                mpz_fdiv_q(mpq_numref(out), mpq_numref(out), mpq_denref(out));
            else
                mpz_cdiv_q(mpq_numref(out), mpq_numref(out), mpq_denref(out));
            mpz_set_ui(mpq_denref(out), 1);
        }
        return st;
    case MX_ROOT: {
        long k = 2;
        if (n->b >= 0) {
            mpq_init(t);
            st = ex(e, n->b, env, t, depth + 1);
            if (st == MX_OK && (!q_small_int(t, 64, &k) || k < 1)) st = MX_NOTRAT;
            mpq_clear(t);
            if (st != MX_OK) return st;
        }
        mpq_init(t);
        st = ex(e, n->a, env, t, depth + 1);
        if (st == MX_OK) st = q_root(out, t, (unsigned long)k);
        mpq_clear(t);
        return st;
    }
    case MX_FUNC: {
        if (n->op == MXF_GCD || n->op == MXF_LCM || n->op == MXF_MAX || n->op == MXF_MIN) {
            const mx_node *arg = &e->nodes[n->a];
            int first = arg->kind == MX_LIST ? arg->a : n->a;
            int single = arg->kind != MX_LIST;
            mpq_init(t);
            int have = 0;
            for (int c = first; c >= 0 && st == MX_OK; c = single ? -1 : e->nodes[c].next) {
                st = ex(e, c, env, t, depth + 1);
                if (st != MX_OK) break;
                if (n->op == MXF_GCD || n->op == MXF_LCM) {
                    if (mpz_cmp_ui(mpq_denref(t), 1) != 0) {
                        st = MX_NOVAL;
                        break;
                    }
                    if (!have)
                        mpz_abs(mpq_numref(out), mpq_numref(t));
                    else if (n->op == MXF_GCD)
                        mpz_gcd(mpq_numref(out), mpq_numref(out), mpq_numref(t));
                    else
                        mpz_lcm(mpq_numref(out), mpq_numref(out), mpq_numref(t));
                    mpz_set_ui(mpq_denref(out), 1);
                } else if (!have ||
                           (n->op == MXF_MAX ? mpq_cmp(t, out) > 0 : mpq_cmp(t, out) < 0)) {
                    mpq_set(out, t);
                }
                have = 1;
                if (st == MX_OK) st = check_size(env, out);
            }
            mpq_clear(t);
            return st;
        }
        // exact special values are left to the numeric path (sin 0, ln 1 ...)
        mpq_init(t);
        st = ex(e, n->a, env, t, depth + 1);
        if (st == MX_OK || st == MX_NOTRAT) st = MX_NOTRAT;
        if (st == MX_NOTRAT && n->b >= 0) st = worst(st, ex(e, n->b, env, t, depth + 1));
        mpq_clear(t);
        return st == MX_OK ? MX_NOTRAT : st;
    }
    case MX_CALL:
        return ex_call(e, n, env, out, depth);
    default:
        return MX_NOVAL;
    }
}

mx_status mx_eval_exact(const mx_expr *e, int i, mx_env *env, mpq_t out) {
    return ex(e, i, env, out, 0);
}

// ---- numeric values --------------------------------------------------------------------------
// Top 64 bits of |z| as a long double times 2^*shift.
static long double z_to_ld(const mpz_t z, long *shift) {
    size_t bits = mpz_sizeinbase(z, 2);
    *shift = 0;
    if (bits <= 64) {
        long double v = (long double)mpz_getlimbn(z, 0);
        return mpz_sgn(z) < 0 ? -v : v;
    }
    mpz_t t;
    mpz_init(t);
    mpz_tdiv_q_2exp(t, z, (mp_bitcnt_t)(bits - 64));
    long double v = (long double)mpz_getlimbn(t, 0);
    mpz_clear(t);
    *shift = (long)(bits - 64);
    return mpz_sgn(z) < 0 ? -v : v;
}

// An exact rational as a long double; inf or 0 when out of range (the caller checks).
static long double q_to_ld(const mpq_t q) {
    long sn, sd;
    long double a = z_to_ld(mpq_numref(q), &sn), b = z_to_ld(mpq_denref(q), &sd);
    long sh = sn - sd;
    if (sh > 40000) return a > 0 ? INFINITY : -INFINITY;
    if (sh < -40000) return 0.0L;
    return ldexpl(a / b, (int)sh);
}

static long double mag(cld z) {
    return hypotl(creall(z), cimagl(z));
}

static mx_status num_ok(mx_num *o, cld v, long double err) {
    o->re = creall(v);
    o->im = cimagl(v);
    o->err = err;
    if (isnan(o->re) || isnan(o->im) || isnan(err)) return MX_UNDEF;
    if (isinf(o->re) || isinf(o->im) || isinf(err)) return MX_BIG;
    return MX_OK;
}

// (-0 imaginary parts are made +0 so that square roots of negative reals take the principal branch)
static cld cz(const mx_num *a) {
    return CMPLXL(a->re, a->im == 0 ? 0.0L : a->im);
}

static mx_status nu(const mx_expr *e, int i, mx_env *env, mx_num *out, int depth);

// Real odd roots of negative reals stay real (the cube root of -27 is -3).
static cld root_of(cld a, long double k) {
    if (cimagl(a) == 0 && creall(a) < 0 && fmodl(k, 2.0L) == 1.0L)
        return -powl(-creall(a), 1.0L / k);
    if (k == 2) return csqrtl(a);
    return cpowl(a, 1.0L / k);
}

static mx_status nu_pow(const mx_num *a, const mx_num *b, mx_num *out) {
    cld x = cz(a), y = cz(b);
    long double ma = mag(x);
    // an exact small integer exponent: repeated multiplication keeps negative bases real
    if (b->im == 0 && b->err == 0 && fabsl(b->re) <= 1e6L && b->re == truncl(b->re)) {
        long n = (long)b->re;
        if (ma == 0) {
            if (n <= 0) return MX_UNDEF;
            return num_ok(out, 0, powl(a->err, (long double)n));
        }
        cld v = (a->im == 0) ? (cld)powl(a->re, (long double)n) : cpowl(x, (cld)n);
        long double rel = fabsl((long double)n) * a->err / ma;
        if (rel > 1) return MX_BIG; // the error bound is meaningless
        long double mv = mag(v);
        if (mv == 0 && ma > 0) return MX_BIG; // underflow
        return num_ok(out, v, mv * (rel * 1.01L + U * (2 + log2l(fabsl((long double)n) + 1))));
    }
    if (ma <= a->err) return MX_UNDEF;
    cld lg = clogl(x);
    cld v = cexpl(y * lg);
    long double mv = mag(v);
    if (mv == 0) return MX_BIG;
    long double rel = mag(y) * a->err / ma + mag(lg) * b->err + U * (mag(y * lg) + 1);
    if (rel > 1) return MX_BIG;
    return num_ok(out, v, mv * rel * 1.01L);
}

static mx_status nu_func(int id, const mx_num *a, const mx_num *base, mx_num *out) {
    cld x = cz(a), v;
    long double ea = a->err, mx = mag(x), err;
    switch (id) {
    case MXF_SIN:
        v = csinl(x);
        err = ea * coshl(cimagl(x));
        break;
    case MXF_COS:
        v = ccosl(x);
        err = ea * coshl(cimagl(x));
        break;
    case MXF_TAN:
    case MXF_SEC:
    case MXF_CSC:
    case MXF_COT: {
        cld s = csinl(x), c = ccosl(x);
        long double es = ea * coshl(cimagl(x)) + U;
        cld num =
            (id == MXF_TAN || id == MXF_CSC) ? (id == MXF_TAN ? s : 1) : (id == MXF_SEC ? 1 : c);
        cld den = (id == MXF_TAN || id == MXF_SEC) ? c : s;
        if (mag(den) <= 2 * es) return MX_UNDEF;
        v = num / den;
        err = (es * (1 + mag(v))) / (mag(den) - es);
        break;
    }
    case MXF_ASIN:
    case MXF_ACOS:
    case MXF_ATAN: {
        v = id == MXF_ASIN ? casinl(x) : id == MXF_ACOS ? cacosl(x) : catanl(x);
        long double d = id == MXF_ATAN ? mag(1 + x * x) : sqrtl(mag(1 - x * x));
        if (d <= ea) return MX_UNDEF;
        err = ea / (d - ea);
        break;
    }
    case MXF_SINH:
        v = csinhl(x);
        err = ea * coshl(mx);
        break;
    case MXF_COSH:
        v = ccoshl(x);
        err = ea * coshl(mx);
        break;
    case MXF_TANH:
        v = ctanhl(x);
        err = ea * (1 + mag(v) * mag(v));
        break;
    case MXF_EXP:
        v = cexpl(x);
        err = mag(v) * ea * 1.01L;
        break;
    case MXF_LN:
    case MXF_LOG:
        if (mx <= ea) return MX_UNDEF;
        v = clogl(x);
        err = ea / (mx - ea);
        if (base) {
            cld lb = clogl(cz(base));
            long double mb = mag(cz(base));
            if (mb <= base->err) return MX_UNDEF;
            long double eb = base->err / (mb - base->err) + U * (1 + mag(lb));
            if (mag(lb) <= eb) return MX_UNDEF;
            cld q = v / lb;
            err = (err + U * (1 + mag(v)) + mag(q) * eb) / (mag(lb) - eb);
            v = q;
        }
        break;
    default:
        return MX_NOVAL;
    }
    return num_ok(out, v, err + U * (1 + mag(v)));
}

static mx_status nu_call(const mx_expr *e, const mx_node *n, mx_env *env, mx_num *out, int depth) {
    const mx_fdef *f = find_func(env, n->s[0]);
    if (!f || n->a < 0 || e->nodes[n->a].kind == MX_LIST) return MX_NOVAL;
    mx_num arg;
    mx_status st = nu(e, n->a, env, &arg, depth + 1);
    if (st != MX_OK) return st;
    if (n->op > 0) {
        if (f->poly_deg < 0) return MX_NOVAL;
        cld acc = 0, x = cz(&arg);
        long double err = 0, mx = mag(x);
        for (int k = f->poly_deg; k >= n->op; k--) {
            long double c = q_to_ld(f->coef[k]);
            for (int j = 0; j < n->op; j++) c *= (long double)(k - j);
            err = err * mx + mag(acc) * arg.err + U * (mag(acc) * mx + fabsl(c));
            acc = acc * x + c;
        }
        return num_ok(out, acc, err);
    }
    mx_env sub;
    mx_env_init(&sub);
    sub.n_vars = 1;
    strcpy(sub.var[0], f->var);
    sub.exact[0] = 0;
    sub.val[0] = arg.re; // real arguments (complex ones are rare and skipped)
    sub.funcs = env->funcs;
    sub.n_funcs = env->n_funcs;
    sub.budget = env->budget;
    if (arg.im != 0)
        st = MX_NOVAL;
    else
        st = nu(f->e, f->body, &sub, out, depth + 1);
    if (st == MX_OK) out->err += arg.err * 1e3L; // crude: the body's slope is not tracked
    env->budget = sub.budget;
    mx_env_clear(&sub);
    return st;
}

static mx_status nu(const mx_expr *e, int i, mx_env *env, mx_num *out, int depth) {
    if (i < 0) return MX_NOVAL;
    if (depth > EVAL_DEPTH) return MX_BIG;
    if (--env->budget < 0) return MX_BIG;
    const mx_node *n = &e->nodes[i];
    mx_num a, b;
    mx_status st;
    switch (n->kind) {
    case MX_NUM:
    case MX_MIXED: {
        mpq_t q;
        mpq_init(q);
        st = ex(e, i, env, q, depth);
        long double v = st == MX_OK ? q_to_ld(q) : 0;
        int zero = st == MX_OK && mpq_sgn(q) == 0;
        mpq_clear(q);
        if (st != MX_OK) return st;
        if (v == 0 && !zero) return MX_BIG; // underflow
        return num_ok(out, v, fabsl(v) * U);
    }
    case MX_SYM: {
        char key[48];
        if (mx_sym_key(e, i, key) < 0) return MX_NOVAL;
        int k = var_index(env, key);
        if (k < 0) return MX_NOVAL;
        return num_ok(out, env->val[k], fabsl(env->val[k]) * U);
    }
    case MX_CONST:
        if (n->op == MXC_PI) return num_ok(out, PI_L, PI_L * U);
        if (n->op == MXC_E) return num_ok(out, E_L, E_L * U);
        if (n->op == MXC_I) return num_ok(out, CMPLXL(0, 1), 0);
        return MX_NOVAL;
    case MX_NEG:
        st = nu(e, n->a, env, &a, depth + 1);
        if (st != MX_OK) return st;
        return num_ok(out, -cz(&a), a.err);
    case MX_PERCENT:
        st = nu(e, n->a, env, &a, depth + 1);
        if (st != MX_OK) return st;
        return num_ok(out, cz(&a) / 100.0L, a.err / 100.0L + U * mag(cz(&a)) / 100.0L);
    case MX_ADD:
    case MX_MUL: {
        int add = n->kind == MX_ADD;
        cld acc = add ? 0 : 1;
        long double err = 0;
        for (int c = n->a; c >= 0; c = e->nodes[c].next) {
            st = nu(e, c, env, &a, depth + 1);
            if (st != MX_OK) return st;
            cld x = cz(&a);
            if (add) {
                acc += x;
                err += a.err + U * mag(acc);
            } else if (e->nodes[c].rel) {
                long double mx = mag(x);
                if (mx <= a.err) return MX_UNDEF;
                cld r = acc / x;
                err = (err + mag(r) * a.err) / (mx - a.err) + U * mag(r);
                if (mag(r) == 0 && mag(acc) != 0) return MX_BIG;
                acc = r;
            } else {
                cld r = acc * x;
                err = mag(acc) * a.err + mag(x) * err + err * a.err + U * mag(r);
                if (mag(r) == 0 && mag(acc) != 0 && mag(x) != 0) return MX_BIG;
                acc = r;
            }
            st = num_ok(out, acc, err);
            if (st != MX_OK) return st;
        }
        return num_ok(out, acc, err);
    }
    case MX_DIV: {
        st = nu(e, n->a, env, &a, depth + 1);
        mx_status sb = nu(e, n->b, env, &b, depth + 1);
        if (st != MX_OK || sb != MX_OK) return worst(st, sb);
        long double mb = mag(cz(&b));
        if (mb <= b.err) return MX_UNDEF;
        cld r = cz(&a) / cz(&b);
        if (mag(r) == 0 && mag(cz(&a)) != 0) return MX_BIG;
        return num_ok(out, r, (a.err + mag(r) * b.err) / (mb - b.err) + U * mag(r));
    }
    case MX_POW:
        st = nu(e, n->a, env, &a, depth + 1);
        if (st == MX_OK) {
            // exact integer exponents get err 0 so that repeated multiplication is used
            mpq_t q;
            mpq_init(q);
            mx_status sq = ex(e, n->b, env, q, depth + 1);
            long k;
            if (sq == MX_OK && q_small_int(q, 1000000, &k)) {
                b.re = (long double)k;
                b.im = 0;
                b.err = 0;
            } else if (sq == MX_OK && a.im == 0 && a.re < 0 && mpz_odd_p(mpq_denref(q)) &&
                       mpz_cmpabs_ui(mpq_numref(q), 1000000) < 0 &&
                       mpz_cmp_ui(mpq_denref(q), 1000000) < 0) {
                // a negative base to a power p/q with q odd stays real, like \sqrt[q]{x}^p
                long double x = q_to_ld(q), v = powl(-a.re, x);
                if (mpz_odd_p(mpq_numref(q))) v = -v;
                mpq_clear(q);
                return num_ok(out, v, fabsl(v) * (fabsl(x) * a.err / -a.re + 4 * U));
            } else {
                st = nu(e, n->b, env, &b, depth + 1);
            }
            mpq_clear(q);
        }
        if (st != MX_OK) return st;
        return nu_pow(&a, &b, out);
    case MX_PM: {
        int minus = ((env->pm_mask >> (n->len & 31)) & 1u) ^ n->op;
        st = nu(e, n->b, env, &b, depth + 1);
        if (st != MX_OK) return st;
        cld acc = 0;
        long double err = 0;
        if (n->a >= 0) {
            st = nu(e, n->a, env, &a, depth + 1);
            if (st != MX_OK) return st;
            acc = cz(&a);
            err = a.err;
        }
        acc = minus ? acc - cz(&b) : acc + cz(&b);
        return num_ok(out, acc, err + b.err + U * mag(acc));
    }
    case MX_FACT: {
        st = nu(e, n->a, env, &a, depth + 1);
        if (st != MX_OK) return st;
        if (a.im != 0) return MX_NOVAL;
        long double x = a.re + 1;
        if (x <= 0 && x == truncl(x)) return MX_UNDEF;
        long double v = tgammal(x);
        return num_ok(out, v, fabsl(v) * (a.err * (logl(fabsl(x) + 2) + 1) + 64 * U));
    }
    case MX_BINOM: {
        st = nu(e, n->a, env, &a, depth + 1);
        mx_status sb = nu(e, n->b, env, &b, depth + 1);
        if (st != MX_OK || sb != MX_OK) return worst(st, sb);
        if (a.im != 0 || b.im != 0) return MX_NOVAL;
        long double v = expl(lgammal(a.re + 1) - lgammal(b.re + 1) - lgammal(a.re - b.re + 1));
        return num_ok(out, v, fabsl(v) * (64 * U * (1 + logl(fabsl(a.re) + 2)) + a.err + b.err));
    }
    case MX_ABS:
        st = nu(e, n->a, env, &a, depth + 1);
        if (st != MX_OK) return st;
        return num_ok(out, mag(cz(&a)), a.err + U * mag(cz(&a)));
    case MX_FLOOR:
    case MX_CEIL: {
        st = nu(e, n->a, env, &a, depth + 1);
        if (st != MX_OK) return st;
        if (a.im != 0) return MX_NOVAL;
        long double r = n->kind == MX_FLOOR ? floorl(a.re) : ceill(a.re);
        if (fabsl(a.re - roundl(a.re)) <= a.err) return MX_UNDEF; // too close to an integer to tell
        return num_ok(out, r, 0);
    }
    case MX_ROOT: {
        long double k = 2;
        if (n->b >= 0) {
            st = nu(e, n->b, env, &b, depth + 1);
            if (st != MX_OK) return st;
            if (b.im != 0 || b.re == 0) return MX_NOVAL;
            k = b.re;
        }
        st = nu(e, n->a, env, &a, depth + 1);
        if (st != MX_OK) return st;
        cld v = root_of(cz(&a), k);
        long double mv = mag(v), ma = mag(cz(&a));
        long double err = ma > 0 ? mv * (a.err / ma) / fabsl(k) : powl(a.err, 1.0L / fabsl(k));
        if (ma > 0 && a.err >= ma) err = powl(ma + a.err, 1.0L / fabsl(k));
        return num_ok(out, v, err + U * mv);
    }
    case MX_FUNC: {
        if (n->op == MXF_GCD || n->op == MXF_LCM || n->op == MXF_MAX || n->op == MXF_MIN) {
            mpq_t q;
            mpq_init(q);
            st = ex(e, i, env, q, depth);
            long double v = st == MX_OK ? q_to_ld(q) : 0;
            mpq_clear(q);
            if (st != MX_OK) return st == MX_NOTRAT ? MX_NOVAL : st;
            return num_ok(out, v, fabsl(v) * U);
        }
        st = nu(e, n->a, env, &a, depth + 1);
        if (st != MX_OK) return st;
        if (n->b >= 0) {
            st = nu(e, n->b, env, &b, depth + 1);
            if (st != MX_OK) return st;
            return nu_func(n->op, &a, &b, out);
        }
        return nu_func(n->op, &a, NULL, out);
    }
    case MX_CALL:
        return nu_call(e, n, env, out, depth);
    default:
        return MX_NOVAL;
    }
}

mx_status mx_eval_num(const mx_expr *e, int i, mx_env *env, mx_num *out) {
    memset(out, 0, sizeof *out);
    return nu(e, i, env, out, 0);
}

// ---- environments and points -----------------------------------------------------------------
void mx_env_init(mx_env *env) {
    memset(env, 0, sizeof *env);
    for (int k = 0; k < MX_MAX_VARS; k++) mpq_init(env->val_q[k]);
    env->budget = MX_BUDGET;
}

void mx_env_clear(mx_env *env) {
    for (int k = 0; k < MX_MAX_VARS; k++) mpq_clear(env->val_q[k]);
}

static int collect(const mx_expr *e, int i, mx_env *env, int depth) {
    if (i < 0) return 0;
    if (depth > EVAL_DEPTH) return -1;
    const mx_node *n = &e->nodes[i];
    if (n->kind == MX_SYM) {
        char key[48];
        if (mx_sym_key(e, i, key) < 0) return -1;
        if (var_index(env, key) >= 0) return 0;
        if (env->n_vars >= MX_MAX_VARS) return -1;
        strcpy(env->var[env->n_vars++], key);
        return 0;
    }
    if (n->kind == MX_CALL) return collect(e, n->a, env, depth + 1);
    if (mx_is_list_kind(n->kind)) {
        for (int c = n->a; c >= 0; c = e->nodes[c].next)
            if (collect(e, c, env, depth + 1) < 0) return -1;
        return 0;
    }
    if (collect(e, n->a, env, depth + 1) < 0) return -1;
    return collect(e, n->b, env, depth + 1);
}

int mx_collect_vars(const mx_expr *e, int i, mx_env *env) {
    return collect(e, i, env, 0);
}

void mx_env_point(mx_env *env, int k) {
    for (int j = 0; j < env->n_vars; j++) {
        unsigned h = 2166136261u;
        for (const char *p = env->var[j]; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
        long num = 1 + (long)((h + 7919u * (unsigned)k + 31u * (unsigned)j) % 37u);
        long den = 3 + (long)((h / 37u + 13u * (unsigned)k + 7u * (unsigned)j) % 17u);
        if (k % 4 == 3) num = -num;
        mpq_set_si(env->val_q[j], num, (unsigned long)den);
        mpq_canonicalize(env->val_q[j]);
        env->exact[j] = 1;
        env->val[j] = (long double)num / (long double)den;
    }
}

// ---- facts about trees -----------------------------------------------------------------------
static int any_node(const mx_expr *e, int i, int depth, int (*pred)(const mx_node *)) {
    if (i < 0 || depth > EVAL_DEPTH) return 0;
    const mx_node *n = &e->nodes[i];
    if (pred(n)) return 1;
    if (mx_is_list_kind(n->kind)) {
        for (int c = n->a; c >= 0; c = e->nodes[c].next)
            if (any_node(e, c, depth + 1, pred)) return 1;
        return 0;
    }
    return any_node(e, n->a, depth + 1, pred) || any_node(e, n->b, depth + 1, pred);
}

static int is_float_lit(const mx_node *n) {
    return n->kind == MX_NUM && (n->flags & MXF_FLOAT);
}
int mx_has_float(const mx_expr *e, int i) {
    return any_node(e, i, 0, is_float_lit);
}

int mx_is_inf(const mx_expr *e, int i, int *neg) {
    *neg = 0;
    while (i >= 0 && e->nodes[i].kind == MX_NEG) {
        *neg = !*neg;
        i = e->nodes[i].a;
    }
    return i >= 0 && e->nodes[i].kind == MX_CONST && e->nodes[i].op == MXC_INF;
}

static int decimals_rec(const mx_expr *e, int i, int depth) {
    if (i < 0 || depth > EVAL_DEPTH) return 0;
    const mx_node *n = &e->nodes[i];
    if (n->kind == MX_NUM && (n->flags & MXF_FLOAT)) {
        int d = 0, seen = 0, expo = 0, sign = 1, j;
        for (j = 0; j < n->n && n->s[j] != 'e' && n->s[j] != 'E'; j++) {
            if (n->s[j] == '.')
                seen = 1;
            else if (seen && n->s[j] >= '0' && n->s[j] <= '9')
                d++;
        }
        if (j < n->n) {
            j++;
            if (j < n->n && (n->s[j] == '-' || n->s[j] == '+')) sign = n->s[j++] == '-' ? 1 : -1;
            for (; j < n->n && expo < 100; j++) expo = expo * 10 + (n->s[j] - '0');
            d += sign * expo;
        }
        return d < 0 ? 0 : d;
    }
    int best = 0;
    if (mx_is_list_kind(n->kind)) {
        for (int c = n->a; c >= 0; c = e->nodes[c].next) {
            int d = decimals_rec(e, c, depth + 1);
            if (d > best) best = d;
        }
        return best;
    }
    int da = decimals_rec(e, n->a, depth + 1), db = decimals_rec(e, n->b, depth + 1);
    return da > db ? da : db;
}

int mx_float_decimals(const mx_expr *e, int i) {
    return decimals_rec(e, i, 0);
}

// ---- polynomials -----------------------------------------------------------------------------
#define POLY_MAX 16

typedef struct poly {
    int deg; // -1: the zero polynomial
    mpq_t c[POLY_MAX + 1];
} poly;

static void poly_init(poly *p) {
    p->deg = -1;
    for (int k = 0; k <= POLY_MAX; k++) mpq_init(p->c[k]);
}
static void poly_clear(poly *p) {
    for (int k = 0; k <= POLY_MAX; k++) mpq_clear(p->c[k]);
}
static void poly_trim(poly *p) {
    while (p->deg >= 0 && mpq_sgn(p->c[p->deg]) == 0) p->deg--;
}

static int poly_rec(const mx_expr *e, int i, const char *var, poly *out, int maxdeg,
                    const mx_env *env, int depth);

static int poly_mul(poly *acc, const poly *x, int maxdeg) {
    if (acc->deg < 0 || x->deg < 0) {
        acc->deg = -1;
        return 0;
    }
    if (acc->deg + x->deg > maxdeg) return -1;
    poly r;
    poly_init(&r);
    mpq_t t;
    mpq_init(t);
    for (int a = 0; a <= acc->deg; a++)
        for (int b = 0; b <= x->deg; b++) {
            mpq_mul(t, acc->c[a], x->c[b]);
            mpq_add(r.c[a + b], r.c[a + b], t);
        }
    r.deg = acc->deg + x->deg;
    for (int k = 0; k <= r.deg; k++) mpq_set(acc->c[k], r.c[k]);
    for (int k = r.deg + 1; k <= POLY_MAX; k++) mpq_set_ui(acc->c[k], 0, 1);
    acc->deg = r.deg;
    poly_trim(acc);
    mpq_clear(t);
    poly_clear(&r);
    return 0;
}

static int poly_rec(const mx_expr *e, int i, const char *var, poly *out, int maxdeg,
                    const mx_env *env, int depth) {
    if (i < 0 || depth > EVAL_DEPTH) return -1;
    const mx_node *n = &e->nodes[i];
    for (int k = 0; k <= POLY_MAX; k++) mpq_set_ui(out->c[k], 0, 1);
    out->deg = -1;
    switch (n->kind) {
    case MX_NUM:
    case MX_MIXED: {
        mx_env tmp;
        mx_env_init(&tmp);
        mx_status st = mx_eval_exact(e, i, &tmp, out->c[0]);
        mx_env_clear(&tmp);
        if (st != MX_OK) return -1;
        out->deg = 0;
        poly_trim(out);
        return 0;
    }
    case MX_SYM: {
        char key[48];
        if (mx_sym_key(e, i, key) < 0 || strcmp(key, var) != 0) return -1;
        mpq_set_ui(out->c[1], 1, 1);
        out->deg = 1;
        return maxdeg >= 1 ? 0 : -1;
    }
    case MX_NEG:
    case MX_PERCENT:
        if (poly_rec(e, n->a, var, out, maxdeg, env, depth + 1) < 0) return -1;
        for (int k = 0; k <= out->deg; k++) {
            if (n->kind == MX_NEG)
                mpq_neg(out->c[k], out->c[k]);
            else {
                mpz_mul_ui(mpq_denref(out->c[k]), mpq_denref(out->c[k]), 100);
                mpq_canonicalize(out->c[k]);
            }
        }
        return 0;
    case MX_DIV: {
        poly x;
        poly_init(&x);
        int rc = poly_rec(e, n->a, var, out, maxdeg, env, depth + 1);
        if (rc == 0) rc = poly_rec(e, n->b, var, &x, maxdeg, env, depth + 1);
        if (rc == 0 && x.deg != 0) rc = -1; // only division by a nonzero constant
        if (rc == 0)
            for (int k = 0; k <= out->deg; k++) mpq_div(out->c[k], out->c[k], x.c[0]);
        poly_clear(&x);
        return rc;
    }
    case MX_ADD:
    case MX_MUL: {
        int add = n->kind == MX_ADD;
        poly x;
        poly_init(&x);
        if (!add) {
            mpq_set_ui(out->c[0], 1, 1);
            out->deg = 0;
        }
        int rc = 0;
        for (int c = n->a; c >= 0 && rc == 0; c = e->nodes[c].next) {
            rc = poly_rec(e, c, var, &x, maxdeg, env, depth + 1);
            if (rc < 0) break;
            if (add) {
                for (int k = 0; k <= x.deg; k++) mpq_add(out->c[k], out->c[k], x.c[k]);
                if (x.deg > out->deg) out->deg = x.deg;
                poly_trim(out);
            } else if (e->nodes[c].rel) {
                if (x.deg != 0)
                    rc = -1; // only division by a nonzero constant
                else
                    for (int k = 0; k <= out->deg; k++) mpq_div(out->c[k], out->c[k], x.c[0]);
            } else {
                rc = poly_mul(out, &x, maxdeg);
            }
        }
        poly_clear(&x);
        return rc;
    }
    case MX_POW: {
        mx_env tmp;
        mx_env_init(&tmp);
        mpq_t q;
        mpq_init(q);
        mx_status st = mx_eval_exact(e, n->b, &tmp, q);
        long k = -1;
        if (st == MX_OK) q_small_int(q, maxdeg, &k);
        mpq_clear(q);
        mx_env_clear(&tmp);
        if (k < 0) return -1;
        poly base;
        poly_init(&base);
        int rc = poly_rec(e, n->a, var, &base, maxdeg, env, depth + 1);
        mpq_set_ui(out->c[0], 1, 1);
        out->deg = 0;
        for (long j = 0; j < k && rc == 0; j++) rc = poly_mul(out, &base, maxdeg);
        poly_clear(&base);
        return rc;
    }
    default:
        return -1;
    }
}

int mx_poly(const mx_expr *e, int i, const char *var, mpq_t *coef, int maxdeg, int *deg,
            const mx_env *env) {
    if (maxdeg > POLY_MAX) maxdeg = POLY_MAX;
    poly p;
    poly_init(&p);
    int rc = poly_rec(e, i, var, &p, maxdeg, env, 0);
    if (rc == 0) {
        for (int k = 0; k <= maxdeg; k++) mpq_set(coef[k], p.c[k]);
        *deg = p.deg < 0 ? 0 : p.deg;
    }
    poly_clear(&p);
    return rc;
}

void mx_fdef_init(mx_fdef *f, char name, const mx_expr *e, int body, const char *var) {
    memset(f, 0, sizeof *f);
    f->name = name;
    f->e = e;
    f->body = body;
    snprintf(f->var, sizeof f->var, "%s", var);
    for (int k = 0; k <= 16; k++) mpq_init(f->coef[k]);
    int deg;
    f->poly_deg = mx_poly(e, body, var, f->coef, 16, &deg, NULL) == 0 ? deg : -1;
}

void mx_fdef_clear(mx_fdef *f) {
    for (int k = 0; k <= 16; k++) mpq_clear(f->coef[k]);
}
