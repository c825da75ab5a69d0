/*
 * math_expr: the expression layer shared by the math accuracy verifier and the path-quality
 * verifier. It turns one short piece of math text (LaTeX or plain: "\frac{1}{2}", "3 \times 4",
 * "(1, 2]", "x \le 3", "7,425,000", "50\%") into a small syntax tree, and evaluates trees either
 * exactly (rationals with GMP big integers) or numerically (complex long double carrying an
 * absolute error bound, so "equal" means "equal within the rounding error actually made").
 *
 * Every input is bounded: at most MX_MAX_TEXT bytes are parsed, nesting is depth-limited (no
 * unbounded recursion), exact values are refused beyond MX_MAX_BITS bits, and every evaluation
 * draws from a work budget, so hostile input ends quickly with an error, never a hang or a crash.
 *
 * Owns: an mx_expr owns a copy of its text, its tokens and its nodes (mx_free releases them).
 * Nothing global; every function is safe to call from several threads on different objects.
 */
#ifndef RL_MATH_EXPR_H
#define RL_MATH_EXPR_H

#include <gmp.h>
#include <stddef.h>
#include <stdint.h>

#define MX_MAX_TEXT  8192  // bytes of one answer or claim that are parsed at most
#define MX_MAX_DEPTH 64    // nesting depth of the parser (brackets, braces, exponents)
#define MX_MAX_BITS  32768 // an exact value larger than this (numerator or denominator) is refused
#define MX_MAX_VARS  8     // distinct variables one comparison may involve
#define MX_BUDGET    4000000L // work units of one evaluation (about one per machine word touched)

// ---- the syntax tree -----------------------------------------------------------------------
typedef enum mx_kind {
    MX_NUM,      // literal: s = digits as written (separators kept), MXF_FLOAT for decimals
    MX_MIXED,    // mixed number: a = whole part (MX_NUM), b = the proper fraction (MX_DIV)
    MX_BASENUM,  // 204_5: a = digits (MX_NUM), b = base; compared by its text only
    MX_SYM,      // variable: s = name ("x", "alpha"), a = subscript or -1, op = number of primes
    MX_CONST,    // op = MXC_PI | MXC_E | MXC_I | MXC_INF
    MX_TEXT,     // \text{...} or a plain word: s = content
    MX_NEG,      // -a
    MX_ADD,      // a + b
    MX_MUL,      // a * b
    MX_DIV,      // a / b
    MX_POW,      // a ^ b
    MX_PM,       // a ± b (a = -1 for the unary form); op = 1 for \mp
    MX_FUNC,     // op = mx_func id, a = argument, b = log base or second argument or -1
    MX_CALL,     // f(a), f'(a): s = function letter, op = primes, a = first argument
    MX_FACT,     // a!
    MX_PERCENT,  // a%  (value a/100)
    MX_ABS,      // |a|
    MX_FLOOR,    // floor(a)
    MX_CEIL,     // ceil(a)
    MX_ROOT,     // \sqrt[b]{a}; b = -1 for the square root
    MX_BINOM,    // \binom{a}{b}
    MX_ELLIPSIS, // \ldots
    MX_LIST,     // a, b, c (bare list): a = first element, linked through next
    MX_SET,      // \{a, b\}: elements through a/next; op = 1 when written with plain braces
    MX_TUPLE,    // (a, b, c) or \langle a, b \rangle; (a, b) is also an open interval
    MX_INTERVAL, // a = low, b = high; op bit 0: low closed, bit 1: high closed
    MX_UNION,    // components through a/next
    MX_REL,      // chain a op b op c: parts through a/next, each part's rel = op before it
    MX_RATIO,    // a : b : c
    MX_MATRIX,   // rows (MX_LIST) through a/next; op = 1 for a determinant (vmatrix)
    MX_EMPTYSET, // \emptyset, \{\}
    MX_REALS,    // \mathbb{R}
} mx_kind;

enum { MXC_PI = 1, MXC_E, MXC_I, MXC_INF };
enum { MXR_NONE = 0, MXR_EQ, MXR_LT, MXR_LE, MXR_GT, MXR_GE, MXR_NE, MXR_APPROX, MXR_IN };
enum {
    MXF_SIN = 1,
    MXF_COS,
    MXF_TAN,
    MXF_SEC,
    MXF_CSC,
    MXF_COT,
    MXF_ASIN,
    MXF_ACOS,
    MXF_ATAN,
    MXF_SINH,
    MXF_COSH,
    MXF_TANH,
    MXF_LN,
    MXF_LOG,
    MXF_EXP,
    MXF_GCD,
    MXF_LCM,
    MXF_MAX,
    MXF_MIN,
};

#define MXF_FLOAT 0x1u // node is or holds a decimal literal ("0.5", "1e-3")
#define MXF_PAREN 0x2u // node was written inside (...) (tuples, groups)
#define MXF_CFORM 0x4u // MX_BINOM written C(n, k)

typedef struct mx_node {
    uint8_t kind;  // mx_kind
    uint8_t op;    // kind-specific (see mx_kind)
    uint8_t rel;   // MX_REL parts: the relation written before this part
    uint8_t flags; // MXF_*
    int32_t a, b;  // children, -1 when absent
    int32_t next;  // next element when in a list, -1 at the end
    int32_t len;   // number of elements (list kinds)
    const char *s; // literal text in the expression's copy of the input, not NUL-terminated
    int32_t n;     // length of s
} mx_node;

typedef struct mx_tok mx_tok;

typedef struct mx_expr {
    char *text; // [n_text + 1] copy of the input
    int n_text;
    mx_tok *toks; // [n_toks]
    int n_toks;
    mx_node *nodes; // [n_nodes] (capacity cap_nodes)
    int n_nodes, cap_nodes;
    int root;     // -1 when parsing failed
    int calls;    // 1: f(x), g(x), h(x) and primed letters parse as function calls
    int n_pm;     // number of \pm / \mp nodes (each has its index in len)
    char err[96]; // why parsing failed
} mx_expr;

// Parses text[0..len) as one answer or expression. flags: MX_PARSE_CALLS. Always returns an
// object (NULL only when out of memory); root < 0 and err set when the text is not parseable.
#define MX_PARSE_CALLS 1
mx_expr *mx_parse(const char *text, size_t len, int flags);
void mx_free(mx_expr *e);

static inline const mx_node *mx_at(const mx_expr *e, int i) {
    return &e->nodes[i];
}

// Writes a canonical text of node i (spaces dropped, \dfrac -> \frac, ...) into out; two trees
// with the same canonical text are the same expression as written. Returns the length, or -1 when
// it did not fit.
int mx_canon(const mx_expr *e, int i, char *out, size_t cap);

// ---- evaluation ------------------------------------------------------------------------------
typedef enum mx_status {
    MX_OK = 0,
    MX_NOTRAT = 1, // has a value, but not an exact rational (sqrt 2, pi): use mx_eval_num
    MX_UNDEF = 2,  // undefined (division by zero, log 0, ...)
    MX_BIG = 3,    // too large to evaluate (beyond MX_MAX_BITS or the work budget)
    MX_NOVAL = 4,  // not a number (a variable without value, a set, text, an ellipsis ...)
} mx_status;

// A numeric value with an absolute bound on its rounding error.
typedef struct mx_num {
    long double re, im;
    long double err;
} mx_num;

// A function defined elsewhere (path quality: "f(x) = x^3 - 3x^2" in the prompt).
typedef struct mx_fdef {
    char name;        // the letter
    const mx_expr *e; // where the body lives
    int body;         // node of the body in e
    char var[48];     // the variable's canonical name
    int poly_deg;     // degree when the body is a polynomial in var, else -1
    mpq_t coef[17];   // poly coefficients, coef[k] of var^k (valid up to poly_deg)
} mx_fdef;

// The values of the variables at one evaluation point, and known functions.
typedef struct mx_env {
    int n_vars;
    char var[MX_MAX_VARS][48]; // canonical names
    int exact[MX_MAX_VARS];    // 1: val_q holds the exact value
    mpq_t val_q[MX_MAX_VARS];
    long double val[MX_MAX_VARS];
    const mx_fdef *funcs; // [n_funcs]
    int n_funcs;
    long budget;      // remaining work; evaluation fails with MX_BIG at 0
    uint32_t pm_mask; // bit k set: the k-th \pm takes its minus sign
} mx_env;

void mx_env_init(mx_env *env);
void mx_env_clear(mx_env *env);
// Collects the variables of node i (function calls contribute their arguments) into env->var; 0,
// or -1 when there are more than MX_MAX_VARS.
int mx_collect_vars(const mx_expr *e, int i, mx_env *env);
// Sets every variable of env to the k-th evaluation point (deterministic, varied rationals, some
// negative), exact and numeric.
void mx_env_point(mx_env *env, int k);

mx_status mx_eval_exact(const mx_expr *e, int i, mx_env *env, mpq_t out);
// A number literal as written ("7,425,000", "0.125", "1.5e-3") as an exact rational.
mx_status mx_literal(const char *s, int n, mpq_t out);
// 1 for the kinds whose children are a list (a, then next): sums, products, lists, sets, ...
int mx_is_list_kind(int kind);
mx_status mx_eval_num(const mx_expr *e, int i, mx_env *env, mx_num *out);
// 1 when node i holds a decimal literal anywhere below it.
int mx_has_float(const mx_expr *e, int i);
// 1 when node i is +-infinity (sign in *neg).
int mx_is_inf(const mx_expr *e, int i, int *neg);
// Number of decimals of the decimal literals below node i (the most), 0 when none.
int mx_float_decimals(const mx_expr *e, int i);
// Node i as a polynomial in var with rational coefficients, degree <= maxdeg: 0 with *deg, or -1.
int mx_poly(const mx_expr *e, int i, const char *var, mpq_t *coef, int maxdeg, int *deg,
            const mx_env *env);

// Initialises / clears a function definition (body node `body` of e, variable var).
void mx_fdef_init(mx_fdef *f, char name, const mx_expr *e, int body, const char *var);
void mx_fdef_clear(mx_fdef *f);

// The canonical variable key of a MX_SYM node (name + subscript + primes) into out[48]; 0 or -1.
int mx_sym_key(const mx_expr *e, int i, char out[48]);

#endif
