/*
 * math_internal: functions shared between the files of verifiers/math (not a public API).
 *
 * Owns: nothing.
 */
#ifndef RL_MATH_INTERNAL_H
#define RL_MATH_INTERNAL_H

#include "verifiers/math/math_expr.h"
#include "verifiers/math/math_verify.h"

#define MX_SCAN_MAX 65536 // bytes at the end of a completion that extraction looks at

// Equivalence of two parsed answers (reference g, prediction p): 1 or 0, with a short reason
// in why when they differ for a reason other than different values.
int mx_compare(const mx_expr *g, const mx_expr *p, const rl_math_opts *o, char *why, size_t n);

// Finds an answer in free text the way auto extraction does (anchors, then the rightmost LaTeX
// environment or plain number that parses). Writes the answer's span into *a, *b; returns 1 or 0.
int mx_find_answer(const char *s, const char *end, const char **a, const char **b);

// Whether [s, end) looks like junk rather than a completion (braces that never balance, no
// prose in a long text): auto extraction then finds nothing in it.
int mx_junk(const char *s, const char *end);

// Where trailing remarks begin in [s, end) (a line or sentence in the last 2000 bytes opening
// with "Note", "Remark", "Check", "I hope" ... and not followed by a new conclusion), or NULL.
const char *mx_remark_start(const char *s, const char *end);

// Collects every \boxed{...} / \fbox{...} in [s, end): distinct contents joined with ", " into
// out. Returns the number of distinct boxes, 0 when none, -1 when out is too small.
int mx_boxes(const char *s, const char *end, char *out, size_t cap);

#endif
