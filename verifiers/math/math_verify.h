/*
 * math_verify: the math accuracy verifier. It extracts the final answer of a completion and
 * decides whether it is equivalent to the reference answer, in the spirit of Hugging Face's
 * Math-Verify (the reference design; see ../shared/notes/verifiers.md) but in C, bounded and
 * thread-safe.
 *
 * Extraction (rl_math_extract):
 *   boxed (default)  every \boxed{...} / \fbox{...} (balanced braces; also "\boxed 5") in the
 *                    text after the last </think> (the whole completion when that part has no
 *                    box). One box, or several boxes holding the same answer: that answer.
 *                    Several DIFFERENT boxes: all of them, as a set, which never equals a
 *                    single-valued reference (hedging fails by construction). A percent sign
 *                    after a box belongs to it (\boxed{25}\%); boxes inside trailing remarks
 *                    ("Note: with 5 it would be \boxed{50}") are ignored when one comes before.
 *   auto             boxes first; else a completion that is one answer as a whole
 *                    ("\frac{3}{4}"); else, by priority, "final answer is X", "answer: X" /
 *                    "answer is X" (up to an explaining clause: ", since ...", " (..."), then
 *                    the rightmost $...$ / \(...\) / \[...\] / bare \frac or plain
 *                    number/expression before any trailing remarks ("Note: ...", "I hope ...")
 *                    and before its own approximation ("$\frac16$, about $0.17$")
 *                    (environments joined by "and", "or", "," are one answer: "$3$ or $5$"
 *                    is a set). Text after </think> is read before a box inside the reasoning.
 *   Only the last 64 KiB of a completion are scanned; an answer over 8 KiB is refused. Junk
 *   (braces that never balance, or a long text without prose) yields no answer in both modes.
 *
 * Equivalence (rl_math_equal, reference first: it is not symmetric on purpose):
 *   - both sides are normalised alike: $ \( \[ delimiters, \left \right, \! \, spacing, \dfrac
 *     \tfrac -> \frac, \boxed, ^\circ, units at the end (\text{ cm}, "miles", ...), currency.
 *   - numbers: integers, decimals, repeating decimals (0.\overline{3} is exactly 1/3), digit
 *     groups (7,425,000  1\,000  1 000  14{,}916), fractions
 *     (\frac12, a/b), mixed numbers (2\frac{1}{2} and "2 1/2" are 5/2: an integer directly
 *     followed by a proper fraction of integer literals; 2\frac{3}{2} is a product), roots,
 *     powers, \pi, e, i, factorials, binomials, logs and trig functions.
 *   - exact comparison with big rationals (GMP) when both sides are rational; when either side
 *     is written as a decimal, both are rounded to max(float_rounding (6), the decimals written)
 *     places (1/3 == 0.333333 == 0.3333333, 1/3 != 0.33, 1 != 0.9999999, 1/3 != 0.3333334)
 *     and must also agree to a relative 10^(3 - float_rounding) (3e-8 != 3e-9, which both round
 *     to 0); irrational values are compared numerically within the rounding error actually made
 *     (so 1/2^99 != 1/2^98, 1-1/e != 1+1/e).
 *   - expressions in variables: equal at 6 deterministic rational points (2x+2 == 2(x+1)).
 *   - percent: 50\% is the number 0.5 (== 0.5, == 1/2, != 50); percent=lenient also accepts 50.
 *     "50 percent", "50 pct", 50\text{ percent} are 50\%.
 *   - named answers: a reference x = 5, AB = 12, a:b = 2:3, (x, y) = (1, 2) matches its value;
 *     "a = 2, b = 3" matches by name or, bare, in written order; a ratio 2:3 equals 2/3.
 *   - matrices: 2M, AB, M + N, M^2 of constant matrices are compared by value.
 *   - binomials: \binom \dbinom \tbinom, {n \choose k}, C(n, k), C_n^k, {}_nC_k.
 *   - decimal comma: 3{,}5 is 3.5; "3,5" is 3.5 when the other side is one number (1,000 stays
 *     a thousand).
 *   - \over, \text{5} / \textbf{5} / {\bf 5} (a value dressed as text is a value), \\le (a
 *     doubled backslash) as \le.
 *   - sets \{1,2\} and lists (order-free), tuples (ordered; a tuple reference matches a set
 *     written in the same order), intervals (endpoints and openness), unions, matrices.
 *   - relations: x \le 3 == 3 \ge x, x<1 == -x>-1, equations up to a nonzero factor; a reference
 *     x = 3 matches 3; a predicted x = ... = 3 matches 3; a reference 1<x<2 matches (1,2) and,
 *     with set_relation=lenient (the default), a reference (1,3] matches a predicted bound on one
 *     variable 1 < x \le 3 (never a restated inequality such as x^2 < 4); bounds joined by
 *     and/or ("x < 2 or x > 3") are the interval or union they describe.
 *   - text: \text{Evelyn} == evelyn (case-insensitive); \text{13} is the number 13.
 *   - ± answers are the set of both values; sequences with \ldots compare in order.
 *   A reference that cannot be parsed is "skipped" (RL_MATH_BAD_REFERENCE): no judgement, never
 *   a match, whatever the prediction.
 *
 * Options (create(), all text): extract = boxed|auto; float_rounding = 0..15 (6);
 * percent = strict|lenient (strict); set_relation = strict|lenient (lenient).
 *
 * Owns: nothing global; every function is thread-safe.
 */
#ifndef RL_MATH_VERIFY_H
#define RL_MATH_VERIFY_H

#include "reward/verifier_abi.h"

#include <stddef.h>

typedef enum rl_math_extract_mode {
    RL_MATH_EXTRACT_BOXED = 0,
    RL_MATH_EXTRACT_AUTO = 1
} rl_math_extract_mode;

typedef struct rl_math_opts {
    int extract;        // rl_math_extract_mode (boxed)
    int float_rounding; // decimals compared when either side is written as a decimal (6)
    int percent;        // 0 strict: "50%" is 0.5 only; 1 lenient: "50%" also equals "50"
    int set_relation;   // 0 strict; 1: a set reference also matches an equivalent relation
} rl_math_opts;

// Results of rl_math_equal and rl_math_grade.
enum {
    RL_MATH_NOT_EQUAL = 0,
    RL_MATH_EQUAL = 1,
    RL_MATH_BAD_REFERENCE = -1, // the reference cannot be parsed: no judgement (skip)
    RL_MATH_NO_ANSWER = -2,     // the completion holds no answer (score 0)
};

void rl_math_opts_default(rl_math_opts *o);

// Compares a reference answer with a predicted answer. Both are answer texts: a bare answer
// ("\frac{1}{2}", "x = 3"), a LaTeX snippet ("$...$", "\boxed{...}") or a sentence holding one
// (found as in auto extraction). o may be NULL (defaults); detail (may be NULL) receives a short
// reason. Returns RL_MATH_EQUAL, RL_MATH_NOT_EQUAL or RL_MATH_BAD_REFERENCE.
int rl_math_equal(const char *gold, const char *pred, const rl_math_opts *o, char *detail,
                  size_t detail_len);

// Extracts the final answer of a completion into out (NUL-terminated; several different boxes
// are joined with ", "). Returns 1 when an answer was found, 0 when none, -1 when it is too long
// for out or for the verifier (out then holds a reason).
int rl_math_extract(const char *completion, rl_math_extract_mode mode, char *out, size_t out_len);

// Extracts the answer of a completion and compares it with the reference: RL_MATH_EQUAL,
// RL_MATH_NOT_EQUAL, RL_MATH_BAD_REFERENCE or RL_MATH_NO_ANSWER.
int rl_math_grade(const char *gold, const char *completion, const rl_math_opts *o, char *detail,
                  size_t detail_len);

// Evaluates one expression exactly ("3*2^2 - 6*2 + 2", "\frac{7}{3}", "2^{10}"): writes the
// value as "p/q" or "p" into value and returns 1; returns 0 when the value exists but is not
// rational (value then holds a decimal approximation), -1 when it cannot be evaluated (value
// holds the reason). The evaluator the path-quality verifier uses for its claims.
int rl_math_eval(const char *expr, char *value, size_t value_len);

// The verifier for the registry (its default name "math"; the registry's "accuracy" dispatches
// samples with a reference answer to it). Thread-safe.
const rl_verifier_api *rl_verifier_math_api(void);

#endif
