/*
 * path_quality: a process reward that checks the reasoning instead of guessing at it.
 *
 * What is read. The reasoning is the text inside <think>...</think> (with only </think>, the
 * text before it; with no think tag, the text before the last \boxed). The final answer is the
 * completion's \boxed answer (as the math verifier extracts it). The prompt supplies the numbers
 * of the problem and the functions it defines ("Let f(x) = x^3 - 3x^2 + 2x").
 *
 * Claims. Every equality the reasoning states is a claim: "4*2=8", "58 \times 2 = 116",
 * "$3 + 8 = 11$", each adjacent pair of a chain "f'(2) = 3*4 - 12 + 2 = 2". Claims are cut out of
 * lines at words, ":", ";", ". " and ", ", and out of $...$ / \(...\) / \[...\] (aligned rows split
 * at \\; "&=" continues the row before). A claim is CHECKED with the math verifier's exact
 * arithmetic (GMP rationals; numerically within rounding error for roots, pi, ...) when
 *   - both sides are numbers or arithmetic (decimals: compared at the decimals written, so
 *     "70/9 = 7.78" holds), or
 *   - a side calls a function the prompt defines: f(2), f(x), f'(x), f''(2) (derivatives of
 *     polynomial definitions are exact), checked at 6 rational points when x stays free, or
 *   - both sides are polynomials of the same degree >= 1 in one variable ("(x-1)(x+1) = x^2-1"),
 *     checked as an identity.
 * Everything else is not a claim: labels without a definition ("g(2) = 7" when g is unknown),
 * equations to solve ("2x + 3 = 7", "x = 3"), operator notation (d/dx, \int, \sum, \lim, mod),
 * approximations (\approx), sides written identically ("5 = 5").
 *
 * Grounding (anti-farming). A claim is grounded when the numbers on its computing side (the side
 * that is not a single number; either side when both compute) all come from the prompt (digits
 * and number words: twice, half, dozen, ...), from an earlier grounded claim (its numbers and the
 * values of its sub-expressions), or when it uses a function the prompt defines. Duplicates
 * (same two sides, in either order) count once; at most max_claims distinct claims are read.
 *
 * Score (in [0, 1]):
 *   core   = max(0, T - false_penalty * F) / N   over the N distinct checked claims, where T
 *            counts true grounded claims 1 and true ungrounded ones ungrounded_weight, and F the
 *            false ones. No grounded true claim at all -> the score is 0 (prose, "Step 1:" and
 *            unrelated padding earn nothing).
 *   structure, each in [0, 1]:
 *     steps  = lines holding claims / chains holding claims (one computation per line = 1)
 *     used   = share of chain results (outside check lines) that reappear as a number in a later
 *              claim or equal the final answer
 *     check  = 1 when a line starting with check / verify / verification holds a true grounded
 *              claim that is new (not a repeat of an earlier one) and has the final answer's
 *              value among its numbers, e.g. "check: 6+5=11" after concluding 6
 *     length = 1 when the reasoning has min_lines..max_lines non-blank lines and at most
 *              max_chars bytes
 *   score  = core * (w_core + w_steps*steps + w_used*used + w_check*check + w_length*length)
 *            / (sum of the weights) * repetition * order * claims_factor
 *     repetition    = 1 - max(0, r - rep_free) / (1 - rep_free), r the share of repeated word
 *                     n-grams (rep_n words) in the reasoning
 *     order         = answer_first_factor when a \boxed answer appears before or inside the
 *                     reasoning, else 1
 *     claims_factor = min(1, allowance / distinct claims), allowance = max(claims_allowance,
 *                     4 * operators in the prompt + 8)
 *
 * Options (create(), text): w_core 0.6, w_steps 0.1, w_used 0.1, w_check 0.1, w_length 0.1,
 * false_penalty 1, ungrounded_weight 0.25, max_claims 60, claims_allowance 20, rep_n 4,
 * rep_free 0.2, answer_first_factor 0.5, min_lines 2, max_lines 400, max_chars 32000.
 *
 * Thread-safe; the state is the options. Owns: nothing global.
 */
#ifndef RL_PATH_QUALITY_H
#define RL_PATH_QUALITY_H

#include "reward/verifier_abi.h"

#include <stddef.h>

typedef struct rl_path_opts {
    double w_core, w_steps, w_used, w_check, w_length;
    double false_penalty;       // how many true claims one false claim cancels
    double ungrounded_weight;   // credit of a true claim that uses numbers from nowhere
    int max_claims;             // distinct claims read at most
    int claims_allowance;       // distinct claims allowed before the score is scaled down
    int rep_n;                  // words per n-gram of the repetition measure
    double rep_free;            // share of repeated n-grams that costs nothing
    double answer_first_factor; // factor when the answer is boxed before/inside the reasoning
    int min_lines, max_lines;   // sensible reasoning length in non-blank lines
    int max_chars;              // and in bytes
} rl_path_opts;

// What the score is made of (for tests, logs and the detail string).
typedef struct rl_path_report {
    int claims;      // distinct checked claims
    int true_claims; // of which true
    int grounded;    // of which grounded
    int false_claims;
    int duplicates;    // repeated claims not counted again
    int chains;        // chains holding claims
    int claim_lines;   // lines holding claims
    int results, used; // chain results outside check lines / reused later
    int check;         // 1: a check line verifies the final answer
    int answer_first;  // 1: \boxed before or inside the reasoning
    int lines, chars;  // reasoning size
    double repetition; // share of repeated n-grams
    double core, structure, factor, score;
} rl_path_report;

void rl_path_opts_default(rl_path_opts *o);

// Sets one option from text; 0, or -1 with a reason in err (unknown key, bad value).
int rl_path_opts_set(rl_path_opts *o, const char *key, const char *value, char *err,
                     size_t err_len);

// Scores one completion against its prompt. rep and detail may be NULL. Returns the score.
double rl_path_score(const char *prompt, const char *completion, const rl_path_opts *o,
                     rl_path_report *rep, char *detail, size_t detail_len);

// The verifier for the registry (default name "path_quality"). Thread-safe.
const rl_verifier_api *rl_verifier_path_api(void);

#endif
