/*
 * tasks: built-in procedural reasoning tasks and their teacher, so the embedded default needs no
 * download.
 *
 * Two families, each with difficulty knobs:
 *   arith  multi-step integer arithmetic with + - * and standard precedence:  "Compute 3+4*2-5."
 *   deriv  the derivative of a polynomial at a point (the seed's worked example):
 *          "Let f(x)=x^3-3x^2+2x. Find f'(2)."
 * A problem is a pure function of (seed, purpose, index): the held-out set is indices 0..N-1 of the
 * RL_RNG_HELDOUT stream (deduplicated), the training stream is an unbounded sequence from
 * RL_RNG_DATA that skips any problem whose text is in the held-out set.
 *
 * The teacher writes a step-by-step trace in the configured format,
 *     <think>\n4*2=8\n3+8=11\n11-5=6\ncheck: 6+5=11\n</think>\n\boxed{6}
 * one claim per line, every intermediate result reused, a check of the last step. It is correct by
 * default; with error_rate > 0 it slips at each step where a slip is possible with that probability
 * (a slipped sign, a dropped carry or borrow, a miscopied number) and carries the wrong value
 * through to the answer, the way a real model's distilled traces are imperfect.
 *
 * Owns: the held-out set of an rl_taskset (problems and a hash set of their texts).
 */
#ifndef RL_TASKS_H
#define RL_TASKS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/rl_error.h"

typedef enum rl_task_kind { RL_TASK_ARITH = 0, RL_TASK_DERIV = 1, RL_TASK_KINDS = 2 } rl_task_kind;

enum { RL_MISTAKE_SIGN = 1, RL_MISTAKE_CARRY = 2, RL_MISTAKE_COPY = 4 };

#define RL_TASK_MAX_TERMS 8

typedef struct rl_task_params {
    double weights[RL_TASK_KINDS]; // mix of task families (need not sum to 1; 0 disables a family)
    // arith
    int arith_min_ops, arith_max_ops; // number of operators per problem
    int arith_max_operand;            // operands are drawn from 1..max_operand
    int arith_allow_negative;         // 0: reject problems with a negative intermediate or answer
    int arith_max_value; // reject problems whose |intermediate| exceeds this (0 = no cap)
    // deriv
    int deriv_max_degree; // degree of f, 1..6
    int deriv_max_coef;   // coefficients in -max..max (leading one non-zero)
    int deriv_max_x;      // evaluation point in -max..max
    // teacher
    double error_rate; // per-step probability of a slip where one is possible
    unsigned mistakes; // RL_MISTAKE_* bitmask of the slips the teacher may make
} rl_task_params;

// Defaults matching the config's defaults (arith only, operands 1..9, 2-3 ops, no mistakes).
void rl_task_params_defaults(rl_task_params *p);

typedef struct rl_problem {
    rl_task_kind kind;
    uint64_t id;     // index in its stream (held-out or train)
    char text[160];  // the problem as posed: "Compute 3+4*2-5."
    char answer[32]; // the reference answer: "6"
    // structure the teacher works from
    int n;                        // arith: number of operands; deriv: degree + 1 coefficients
    long vals[RL_TASK_MAX_TERMS]; // arith: operands in order; deriv: coefficients a_0..a_degree
    char ops[RL_TASK_MAX_TERMS];  // arith: operators between operands ('+', '-', '*')
    long x0;                      // deriv: evaluation point
} rl_problem;

// Problem number `index` of the stream (seed, purpose). Deterministic; never fails.
void rl_task_generate(const rl_task_params *p, uint64_t seed, uint32_t purpose, uint64_t index,
                      rl_problem *out);

// The teacher's trace for a problem (response only, starting with "<think>\n" and ending with the
// boxed answer). `sample` selects an independent mistake draw for the same problem. Returns the
// trace length; *made_mistake tells whether the trace contains a slip (and so a wrong answer).
size_t rl_teacher_trace(const rl_task_params *p, const rl_problem *pr, uint64_t seed,
                        uint64_t sample, char *out, size_t cap, int *made_mistake);

// A held-out set plus the deduplicated training stream that avoids it.
typedef struct rl_taskset {
    rl_task_params params;
    uint64_t seed;
    int n_heldout;
    rl_problem *heldout; // [n_heldout]
    uint64_t *hashes;    // open-addressing set of held-out text hashes, [hash_cap]
    size_t hash_cap;
} rl_taskset;

int rl_taskset_init(rl_taskset *ts, const rl_task_params *p, uint64_t seed, int n_heldout,
                    rl_err *err);
void rl_taskset_free(rl_taskset *ts);
// Training problem `index` (never equal in text to a held-out problem).
void rl_taskset_train(const rl_taskset *ts, uint64_t index, rl_problem *out);
int rl_taskset_is_heldout(const rl_taskset *ts, const char *text);

const char *rl_task_kind_name(rl_task_kind k);

#endif
