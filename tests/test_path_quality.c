// Tests of the path-quality verifier (verifiers/path): teacher-style traces score 1, each kind
// of mistake lowers the score, farming attempts score low, real-model LaTeX traces are read,
// options and the ABI behave, hostile inputs end quickly, and two threads agree.
#define _POSIX_C_SOURCE 200809L
#include "verifiers/path/path_quality.h"

#include "test_util.h"

#include <pthread.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#define TIME_SCALE 6.0
#else
#define TIME_SCALE 1.0
#endif

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double score(const char *prompt, const char *completion, rl_path_report *r) {
    char d[RL_VDETAIL_MAX];
    double s = rl_path_score(prompt, completion, NULL, r, d, sizeof d);
    CHECK(s >= 0 && s <= 1, "score %g out of range (%s)", s, d);
    return s;
}

// The arithmetic teacher: "Compute a+b*c-d." -> b*c=p, a+p=q, q-d=r, check: r+d=q.
static void arith_trace(char *buf, size_t n, int a, int b, int c, int d, int slip) {
    int p = b * c, q = a + p, r = q - d;
    int p2 = p + (slip == 1), q2 = a + p2 + (slip == 2), r2 = q2 - d + (slip == 3);
    int d2 = slip == 4 ? d + 1 : d; // a miscopied operand carried through
    if (slip == 4) r2 = q2 - d2;
    (void)r;
    snprintf(buf, n,
             "<think>\n%d*%d=%d\n%d+%d=%d\n%d-%d=%d\ncheck: %d+%d=%d\n</think>\n\\boxed{%d}", b, c,
             p2, a, p2, q2, q2, d2, r2, r2, d2, q2, r2);
}

static void test_arith_teacher(void) {
    rl_path_report r;
    CHECK_NEAR(score("Compute 3+4*2-5.",
                     "<think>\n4*2=8\n3+8=11\n11-5=6\ncheck: 6+5=11\n</think>\n\\boxed{6}", &r),
               1.0, 1e-12, "the brief's arithmetic trace");
    CHECK(r.claims == 4 && r.true_claims == 4 && r.grounded == 4 && r.check == 1,
          "report %d %d %d %d", r.claims, r.true_claims, r.grounded, r.check);
    unsigned s = 99;
    for (int k = 0; k < 40; k++) {
        s = s * 1664525u + 1013904223u;
        int a = 2 + (int)(s >> 10) % 90, b = 2 + (int)(s >> 17) % 12, c = 2 + (int)(s >> 22) % 9;
        int d = 1 + (int)(s >> 5) % 30;
        // keep the operands apart (a miscopied d+1 that equals another number of the problem is
        // grounded by that number: path quality cannot tell, accuracy does)
        int d1 = d + 1;
        if (a == d || b == d || c == d || a == b * c || b == c || d1 == a || d1 == b || d1 == c ||
            d1 == b * c || d1 == a + b * c)
            continue;
        char prompt[64], good[256], bad[256];
        snprintf(prompt, sizeof prompt, "Compute %d+%d*%d-%d.", a, b, c, d);
        arith_trace(good, sizeof good, a, b, c, d, 0);
        double s0 = score(prompt, good, &r);
        CHECK_NEAR(s0, 1.0, 1e-12, good);
        for (int slip = 1; slip <= 4; slip++) {
            arith_trace(bad, sizeof bad, a, b, c, d, slip);
            double s1 = score(prompt, bad, &r);
            CHECK(s1 <= 0.75, "%s: mistake %d scored %.3f", prompt, slip, s1);
            if (slip <= 3)
                CHECK(r.false_claims >= 1, "mistake %d not detected: %s", slip, bad);
            else
                CHECK(r.grounded < r.claims, "miscopied operand not flagged: %s", bad);
        }
    }
}

// The derivative teacher: f(x) = x^3 + p x^2 + q x, f'(k).
static void deriv_trace(char *buf, size_t n, int p, int q, int k, int slip) {
    int a = 3, b = 2 * p + (slip == 1 ? 1 : 0), c = q; // f'(x) = 3x^2 + b x + c
    int t1 = a * k * k, t2 = b * k + (slip == 2), v = t1 + t2 + c + (slip == 3);
    snprintf(
        buf, n,
        "<think>\nf'(x) = 3x^2 + %dx + %d\nf'(%d) = 3*%d^2 + %d*%d + %d\n3*%d^2 = %d\n%d*%d = %d\n"
        "%d + %d + %d = %d\ncheck: f'(%d) = 3*%d + %d + %d = %d\n</think>\n\\boxed{%d}",
        b, c, k, k, b, k, c, k, t1, b, k, t2, t1, t2, c, v, k, k * k, t2, c, v, v);
}

static void test_deriv_teacher(void) {
    rl_path_report r;
    const char *brief =
        "<think>\nf'(x) = 3x^2 - 6x + 2\nf'(2) = 3*2^2 - 6*2 + 2\n3*2^2 = 12\n"
        "6*2 = 12\n12 - 12 + 2 = 2\ncheck: f'(2) = 3*4 - 12 + 2 = 2\n</think>\n\\boxed{2}";
    CHECK_NEAR(score("Let f(x) = x^3 - 3x^2 + 2x. Find f'(2).", brief, &r), 1.0, 1e-12,
               "the brief's derivative trace");
    CHECK(r.claims >= 6 && r.false_claims == 0 && r.check, "deriv report: %d claims %d false",
          r.claims, r.false_claims);
    // a sign slip in the derivative is a false claim against the prompt's f
    const char *slip =
        "<think>\nf'(x) = 3x^2 - 6x - 2\nf'(2) = 3*2^2 - 6*2 - 2\n3*2^2 = 12\n"
        "6*2 = 12\n12 - 12 - 2 = -2\ncheck: f'(2) = 3*4 - 12 - 2 = -2\n</think>\n\\boxed{-2}";
    CHECK(score("Let f(x) = x^3 - 3x^2 + 2x. Find f'(2).", slip, &r) < 0.5 && r.false_claims >= 2,
          "sign slip: %d false", r.false_claims);
    for (int p = 1; p <= 4; p++)
        for (int q = 1; q <= 3; q++) {
            int k = 1 + (p + q) % 4;
            char prompt[96], good[512], bad[512];
            snprintf(prompt, sizeof prompt, "Let f(x) = x^3 + %dx^2 + %dx. Find f'(%d).", p, q, k);
            deriv_trace(good, sizeof good, p, q, k, 0);
            CHECK_NEAR(score(prompt, good, &r), 1.0, 1e-12, good);
            for (int s = 1; s <= 3; s++) {
                deriv_trace(bad, sizeof bad, p, q, k, s);
                double v = score(prompt, bad, &r);
                CHECK(v <= 0.75 && r.false_claims >= 1, "%s\nmistake %d scored %.3f", bad, s, v);
            }
        }
}

static void test_farming(void) {
    rl_path_report r;
    const char *p = "Compute 3+4*2-5.";
    const char *good = "<think>\n4*2=8\n3+8=11\n11-5=6\ncheck: 6+5=11\n</think>\n\\boxed{6}";
    double base = score(p, good, &r);
    CHECK(score(p,
                "<think>\nStep 1: read the problem.\nStep 2: think hard.\nStep 3: "
                "done.\n</think>\n\\boxed{6}",
                &r) == 0,
          "Step spam");
    CHECK(score(p,
                "<think>\nThe answer follows from careful thought about the operations "
                "involved.\n</think>\n\\boxed{6}",
                &r) == 0,
          "prose");
    CHECK(score(p, "<think>\n1+1=2\n1+1=2\n1+1=2\n1+1=2\n1+1=2\n1+1=2\n</think>\n\\boxed{6}", &r) ==
                  0 &&
              r.duplicates == 5,
          "1+1=2 repeated");
    CHECK(score(p, "<think>\n17*23=391\n19*21=399\n12*12=144\n</think>\n\\boxed{6}", &r) == 0,
          "unrelated claims only");
    double padded = score(
        p,
        "<think>\n17*23=391\n19*21=399\n4*2=8\n3+8=11\n11-5=6\ncheck: 6+5=11\n</think>\n\\boxed{6}",
        &r);
    CHECK(padded < base - 0.1, "unrelated padding %.3f vs %.3f", padded, base);
    char loop[4096] = "<think>\n";
    for (int k = 0; k < 40; k++) strcat(loop, "4*2=8 so 3+8=11 so 11-5=6 and then\n");
    strcat(loop, "</think>\n\\boxed{6}");
    CHECK(score(p, loop, &r) < 0.2, "repetition loop %.3f (rep %.2f)", r.score, r.repetition);
    CHECK(score(p,
                "\\boxed{6}\n<think>\n4*2=8\n3+8=11\n11-5=6\ncheck: 6+5=11\n</think>\n\\boxed{6}",
                &r) <= 0.5 &&
              r.answer_first,
          "answer before reasoning");
    CHECK(score(p, "<think>\n4*2=8\n3+8=11 \\boxed{11}\n11-5=6\n</think>\n\\boxed{6}", &r) <= 0.5 &&
              r.answer_first,
          "answer inside reasoning");
    // a long chain of trivially grounded claims is scaled down by the allowance
    char chain[8192] = "<think>\n";
    int v = 2;
    for (int k = 0; k < 50; k++, v += 2) {
        char line[64];
        snprintf(line, sizeof line, "%d+2=%d\n", v, v + 2);
        strcat(chain, line);
    }
    strcat(chain, "</think>\n\\boxed{6}");
    double ch = score(p, chain, &r);
    CHECK(r.claims == 50 && r.factor < 0.5 && ch < 0.5,
          "claim flood: %d claims factor %.2f score %.2f", r.claims, r.factor, ch);
    // a check line that only repeats an earlier claim is not a check
    score(p, "<think>\n4*2=8\n3+8=11\n11-5=6\ncheck: 11-5=6\n</think>\n\\boxed{6}", &r);
    CHECK(!r.check, "repeated claim accepted as a check");
    // a check that does not involve the answer is not a check
    score(p, "<think>\n4*2=8\n3+8=11\n11-5=6\ncheck: 8+3=11\n</think>\n\\boxed{6}", &r);
    CHECK(!r.check, "check without the answer accepted");
}

static void test_structure(void) {
    rl_path_report r;
    const char *p = "Compute 3+4*2-5.";
    CHECK_NEAR(score(p, "<think>\n4*2=8\n3+8=11\n11-5=6\n</think>\n\\boxed{6}", &r), 0.9, 1e-12,
               "no check line");
    CHECK(score(p, "<think>\n4*2=8, 3+8=11, 11-5=6, check 6+5=11\n</think>\n\\boxed{6}", &r) <
                  1.0 &&
              r.claim_lines == 1 && r.chains == 4,
          "claims on one line: %d lines %d chains", r.claim_lines, r.chains);
    score(p, "<think>\n4*2=8\n7*7=49\n3+8=11\n11-5=6\n</think>\n\\boxed{6}", &r);
    CHECK(r.results == 4 && r.used == 3, "unused intermediate: %d/%d", r.used, r.results);
    // no think block: the reasoning is the text before the box
    CHECK_NEAR(score(p, "4*2=8\n3+8=11\n11-5=6\ncheck: 6+5=11\n\\boxed{6}", &r), 1.0, 1e-12,
               "no think block");
    // only </think> (the template opened it)
    CHECK_NEAR(score(p, "4*2=8\n3+8=11\n11-5=6\ncheck: 6+5=11\n</think>\n\\boxed{6}", &r), 1.0,
               1e-12, "only </think>");
    // too short a reasoning fails the length rule
    CHECK_NEAR(score(p, "<think>4*2=8, 3+8=11, 11-5=6</think>\\boxed{6}", &r),
               0.6 + 0.1 * (1.0 / 3) + 0.1, 1e-9, "one line");
    // approximations, equations and undefined labels are not claims
    score(p, "<think>\nx + 3 = 7\nx = 4\ng(2) = 9\n\\pi \\approx 3.14\n4*2=8\n</think>\n\\boxed{8}",
          &r);
    CHECK(r.claims == 1, "non-claims counted: %d", r.claims);
    // decimals are compared at the decimals written
    score("Compute 70/9.", "<think>\n70/9 = 7.78\n70/9 = 7.77\n</think>\n\\boxed{7.78}", &r);
    CHECK(r.claims == 2 && r.true_claims == 1, "decimal claims: %d true of %d", r.true_claims,
          r.claims);
    // identities in one variable are checked; a false rewrite is caught
    score("Expand (x-1)(x+1) and (x+2)^2.",
          "<think>\n(x-1)(x+1) = x^2 - 1\n(x+2)^2 = x^2 + 2x + 4\n</think>\n\\boxed{x^2-1}", &r);
    CHECK(r.claims == 2 && r.true_claims == 1, "identities: %d true of %d", r.true_claims,
          r.claims);
}

static void test_real_model_style(void) {
    rl_path_report r;
    const char *nat =
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
        "clips in May. How many clips did Natalia sell altogether in April and May?";
    const char *t1 =
        "<think>\nOkay, so Natalia sold clips to 48 of her friends in April, and then half as "
        "many in May.\n\nIn May she sold half of 48, which is $48 \\div 2 = 24$ clips.\n\n"
        "So altogether she sold:\n\\[\n48 + 24 = 72\n\\]\n\nLet me double-check: $72 - 24 = 48$, "
        "which matches April.\n</think>\n\nNatalia sold $48 + 24 = 72$ clips.\n\n**Final "
        "Answer**\n\\boxed{72}";
    CHECK(score(nat, t1, &r) >= 0.95 && r.claims == 3 && r.check,
          "GSM8K-style trace: %.3f, %d claims", r.score, r.claims);
    const char *store =
        "A store sells 1,250 widgets per day at \\$3 each and pays \\$1,000 per day in costs. "
        "What is its profit over 7 days?";
    const char *t2 =
        "<think>\nRevenue per day: $1,250 \\times 3 = 3,750$ dollars.\nOver a week: $3,750 \\cdot "
        "7 = 26,250$.\n"
        "\\begin{align*}\n\\text{Cost} &= 7 \\times 1{,}000 \\\\\n&= 7{,}000\n\\end{align*}\n"
        "Profit: 26,250 \xE2\x88\x92 7,000 = 19,250.\nCheck: 19,250 + 7,000 = "
        "26,250\n</think>\n\\boxed{19250}";
    CHECK(score(store, t2, &r) >= 0.99 && r.claims == 5 && r.grounded == 5,
          "commas, \\cdot, align, U+2212: %.3f, %d claims, %d grounded", r.score, r.claims,
          r.grounded);
    const char *f = "Let f(x) = x^3 - 3x^2 + 2x. Find f'(2).";
    const char *t3 = "<think>\nDifferentiating term by term: $\\frac{d}{dx}x^3 = 3x^2$ and "
                     "$\\frac{d}{dx}(-3x^2) = -6x$.\n"
                     "So $f'(x) = 3x^2 - 6x + 2$.\nThen $f'(2) = 3(2)^2 - 6(2) + 2 = 12 - 12 + 2 = "
                     "2$.\n</think>\n$\\boxed{2}$";
    CHECK(score(f, t3, &r) >= 0.85 && r.claims == 4 && r.false_claims == 0,
          "derivative in LaTeX: %.3f, %d claims", r.score, r.claims);
    // the same trace with a wrong derivative
    const char *t4 = "<think>\nSo $f'(x) = 3x^2 - 6x - 2$.\nThen $f'(2) = 3(2)^2 - 6(2) - 2 = 12 - "
                     "12 - 2 = -2$.\n</think>\n$\\boxed{-2}$";
    CHECK(score(f, t4, &r) < 0.5 && r.false_claims >= 2, "wrong derivative: %.3f, %d false",
          r.score, r.false_claims);
}

static void test_options_and_abi(void) {
    const rl_verifier_api *api = rl_verifier_path_api();
    CHECK(api->abi_version == RL_VERIFIER_ABI_VERSION && api->thread_safe &&
              strcmp(api->name, "path_quality") == 0,
          "api");
    char err[300];
    rl_voption good[] = {{"w_check", "0"}, {"rep_free", "0.3"}, {"max_claims", "10"}};
    void *v = api->create(good, 3, err, sizeof err);
    CHECK(v != NULL, "create: %s", err);
    if (v) {
        rl_vsample s = {0};
        rl_vresult out;
        s.prompt = "Compute 3+4*2-5.";
        s.completion = "<think>\n4*2=8\n3+8=11\n11-5=6\n</think>\n\\boxed{6}";
        api->score(v, &s, &out);
        CHECK_NEAR(out.score, 1.0, 1e-12, "w_check 0: no check needed");
        CHECK(out.status == RL_VERIFY_OK && strstr(out.detail, "claims 3/3 true"), "detail: %s",
              out.detail);
        s.completion = NULL;
        api->score(v, &s, &out);
        CHECK(out.score == 0 && out.status == RL_VERIFY_OK, "null completion");
        api->destroy(v);
    }
    rl_voption bad[][1] = {{{"w_core", "-1"}},
                           {{"max_claims", "2.5"}},
                           {{"rep_free", "1"}},
                           {{"weight", "1"}},
                           {{"min_lines", "x"}}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        err[0] = '\0';
        v = api->create(bad[k], 1, err, sizeof err);
        CHECK(v == NULL && strstr(err, bad[k][0].key), "option %s=%s must fail (%s)", bad[k][0].key,
              bad[k][0].value, err);
        if (v) api->destroy(v);
    }
    rl_voption lines[] = {{"min_lines", "10"}, {"max_lines", "5"}};
    v = api->create(lines, 2, err, sizeof err);
    CHECK(v == NULL, "min_lines above max_lines accepted");
    if (v) api->destroy(v);
}

static char *repeat(const char *pre, const char *unit, int n, const char *post) {
    size_t lu = strlen(unit), lp = strlen(pre);
    char *s = malloc(lp + lu * (size_t)n + strlen(post) + 1);
    memcpy(s, pre, lp);
    for (int i = 0; i < n; i++) memcpy(s + lp + lu * (size_t)i, unit, lu);
    strcpy(s + lp + lu * (size_t)n, post);
    return s;
}

static void test_hostile(void) {
    char *ones = repeat("<think>\n", "1+1=2\n", 200000, "</think>\\boxed{2}");
    char *distinct = malloc(1 << 21);
    strcpy(distinct, "<think>\n");
    for (int k = 0; k < 60000; k++) sprintf(distinct + strlen(distinct), "%d+1=%d\n", k, k + 1);
    strcat(distinct, "</think>\\boxed{1}");
    char *braces = repeat("<think>\n", "{", 1 << 20, "1=1</think>");
    char *eqs = repeat("<think>\n1", "=1", 100000, "</think>");
    char *dollars = repeat("<think>\n", "$ 1 = ", 100000, "</think>");
    char *huge =
        repeat("<think>\n", "5^{5^{5^{5^5}}} = 5^{5^{5^{5^5}}} + 1\n", 2000, "</think>\\boxed{1}");
    char *prompt = repeat("Let f(x) = ", "x+", 30000, "1. Find f(2).");
    const char *H[][2] = {{"Compute 1+1.", ones},
                          {"Compute 1+1.", distinct},
                          {"x", braces},
                          {"x", eqs},
                          {"x", dollars},
                          {"x", huge},
                          {prompt, "<think>\nf(2) = 3\n</think>\\boxed{3}"}};
    for (size_t k = 0; k < sizeof H / sizeof H[0]; k++) {
        rl_path_report r;
        double s = 0, t = 1e9; // the fastest of 3: the cost, not the shared machine's load
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now_s();
            s = rl_path_score(H[k][0], H[k][1], NULL, &r, NULL, 0);
            if (now_s() - t0 < t) t = now_s() - t0;
        }
        CHECK(s >= 0 && s <= 1, "hostile %zu: score %g", k, s);
        CHECK(t < 0.05 * TIME_SCALE, "hostile %zu took %.1f ms", k, t * 1e3);
    }
    free(ones);
    free(distinct);
    free(braces);
    free(eqs);
    free(dollars);
    free(huge);
    free(prompt);
}

typedef struct job {
    double s[8];
} job;

static const char *const JOB_P[4] = {"Compute 3+4*2-5.", "Let f(x) = x^3 - 3x^2 + 2x. Find f'(2).",
                                     "Compute 3+4*2-5.", "Compute 2*3."};
static const char *const JOB_C[4] = {
    "<think>\n4*2=8\n3+8=11\n11-5=6\ncheck: 6+5=11\n</think>\n\\boxed{6}",
    "<think>\nf'(x) = 3x^2 - 6x + 2\nf'(2) = 3*2^2 - 6*2 + 2\n3*2^2 = 12\n6*2 = 12\n12 - 12 + 2 = "
    "2\n</think>\n\\boxed{2}",
    "<think>\n4*2=8\n3+8=12\n12-5=7\n</think>\n\\boxed{7}", "<think>\n2*3=6\n</think>\\boxed{6}"};

static void *run_job(void *p) {
    job *j = p;
    for (int rep = 0; rep < 50; rep++)
        for (int k = 0; k < 4; k++)
            j->s[k] = rl_path_score(JOB_P[k], JOB_C[k], NULL, NULL, NULL, 0);
    return NULL;
}

static void test_threads(void) {
    job serial, par[2];
    run_job(&serial);
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        CHECK(pthread_create(&t[k], NULL, run_job, &par[k]) == 0, "pthread_create");
    for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
    for (int k = 0; k < 4; k++)
        CHECK(par[0].s[k] == serial.s[k] && par[1].s[k] == serial.s[k], "job %d: %g %g %g", k,
              serial.s[k], par[0].s[k], par[1].s[k]);
}

int main(void) {
    RUN(test_arith_teacher);
    RUN(test_deriv_teacher);
    RUN(test_farming);
    RUN(test_structure);
    RUN(test_real_model_style);
    RUN(test_options_and_abi);
    RUN(test_hostile);
    RUN(test_threads);
    return test_summary();
}
