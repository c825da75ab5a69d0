// bench_math: throughput of the math accuracy verifier (extract + compare, one core) and of the
// path-quality verifier, on a mix of typical answers, equal and not equal.
//   build/bench/bench_math [seconds per measurement, default 1]
#define _POSIX_C_SOURCE 200809L
#include "verifiers/math/math_verify.h"
#include "verifiers/path/path_quality.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

// reference, completion: integers, fractions, decimals, expressions, sets, intervals, relations
static const char *const MATH[][2] = {
    {"42", "<think>\n6*7=42\n</think>\n\\boxed{42}"},
    {"42", "<think>\n6*7=43\n</think>\n\\boxed{43}"},
    {"7425000", "The total is \\boxed{7,425,000}."},
    {"\\frac{3}{4}", "so the probability is $\\boxed{\\dfrac{3}{4}}$"},
    {"\\frac{3}{4}", "\\boxed{0.75}"},
    {"\\frac{1}{3}", "\\boxed{0.33}"},
    {"2\\sqrt{2}", "\\boxed{\\sqrt{8}}"},
    {"\\frac{\\pi}{4}", "\\boxed{\\frac{\\pi}{3}}"},
    {"2x+2", "\\boxed{2(x+1)}"},
    {"x^2-1", "\\boxed{(x-1)(x+2)}"},
    {"\\{1, 2\\}", "\\boxed{\\{2, 1\\}}"},
    {"(-\\infty, 3]", "\\boxed{(-\\infty, 3)}"},
    {"x \\le 3", "\\boxed{x \\leq 3}"},
    {"50\\%", "\\boxed{0.5}"},
    {"(1, 2)", "\\boxed{(1,2)}"},
    {"-5", "\\boxed{5}"},
};

static const char *const PATH[][2] = {
    {"Compute 3+4*2-5.", "<think>\n4*2=8\n3+8=11\n11-5=6\ncheck: 6+5=11\n</think>\n\\boxed{6}"},
    {"Let f(x) = x^3 - 3x^2 + 2x. Find f'(2).",
     "<think>\nf'(x) = 3x^2 - 6x + 2\nf'(2) = 3*2^2 - 6*2 + 2\n3*2^2 = 12\n6*2 = 12\n"
     "12 - 12 + 2 = 2\ncheck: f'(2) = 3*4 - 12 + 2 = 2\n</think>\n\\boxed{2}"},
    {"Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
     "May. How many clips did Natalia sell altogether?",
     "<think>\nIn May she sold half of 48, which is $48 \\div 2 = 24$ clips.\n\nSo altogether:\n"
     "\\[\n48 + 24 = 72\n\\]\nLet me double-check: $72 - 24 = 48$.\n</think>\n\\boxed{72}"},
};

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    int nm = (int)(sizeof MATH / sizeof MATH[0]), np = (int)(sizeof PATH / sizeof PATH[0]);
    rl_math_opts o;
    rl_math_opts_default(&o);
    long n = 0, equal = 0;
    double t0 = now_s(), t;
    do {
        for (int k = 0; k < nm; k++)
            equal += rl_math_grade(MATH[k][0], MATH[k][1], &o, NULL, 0) == RL_MATH_EQUAL;
        n += nm;
    } while ((t = now_s() - t0) < secs);
    printf("math accuracy (extract + compare): %.0f verifications/s on one core (%ld in %.2f s, "
           "%ld equal, mix of %d)\n",
           n / t, n, t, equal, nm);
    n = 0;
    t0 = now_s();
    do {
        for (int k = 0; k < nm; k++) rl_math_equal(MATH[k][0], MATH[k][1], &o, NULL, 0);
        n += nm;
    } while ((t = now_s() - t0) < secs);
    printf("math rl_math_equal on answer texts: %.0f comparisons/s\n", n / t);
    n = 0;
    double sum = 0;
    t0 = now_s();
    do {
        for (int k = 0; k < np; k++)
            sum += rl_path_score(PATH[k][0], PATH[k][1], NULL, NULL, NULL, 0);
        n += np;
    } while ((t = now_s() - t0) < secs);
    printf("path quality: %.0f evaluations/s on one core (%ld in %.2f s, mean score %.3f)\n", n / t,
           n, t, sum / n);
    return 0;
}
