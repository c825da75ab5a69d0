/*
 * benchmark: the public reasoning benchmarks, read from the files their releases ship, and posed
 * with each benchmark's standard prompt.
 *
 *   kind           names accepted            fields read (JSON lines or CSV with a header row)
 *   MATH-500       math500, math             problem, answer; subject, level, unique_id kept
 *   AIME           aime, aime24, aime25      problem|Problem|question, answer|Answer (an integer
 *                                            0..999, as a number or digits); id|ID|url kept
 *   GPQA Diamond   gpqa, gpqa_diamond        Question, Correct Answer, Incorrect Answer 1..3
 *                                            (also snake_case); Record ID, High-level domain kept.
 *                                            Options shuffled per problem (see below)
 *   MMLU-Pro       mmlu_pro, mmlupro         question, options (2..10 strings), answer (letter);
 *                                            answer_index checked against it; question_id, category
 *   LiveCodeBench  livecodebench, lcb        question_content, public_test_cases,
 *                                            private_test_cases, metadata (func_name), starter_code;
 *                                            question_id, question_title, platform, difficulty,
 *                                            contest_date kept
 *
 * A file ending in .csv is CSV (RFC 4180: quoted fields may hold commas, quotes and newlines);
 * anything else is JSON lines (blank lines allowed). Every problem must be well formed: the first
 * bad row stops loading with RL_EINPUT naming the file, the line and the field.
 *
 * GPQA's four options are shuffled per problem by a Philox permutation keyed by (shuffle_seed,
 * FNV-1a of the Record ID, or of the question when there is none), so the order is the same
 * whatever the file order, and the correct letter is wherever the permutation put the correct
 * answer.
 *
 * LiveCodeBench tests: public_test_cases and private_test_cases are JSON text (a list of
 * {input, output, testtype}); private_test_cases may instead be base64(zlib(pickle(str))) as in
 * the code_generation_lite release, decoded by lcb_decode.h without a pickle interpreter. testtype
 * stdin: the program reads input on stdin and must print output. testtype functional (LeetCode):
 * each input line is one JSON argument, output is the JSON result; the test calls
 * Solution().<func_name>(*args) (or a top-level <func_name> when there is no class Solution) and
 * compares the result, tuples read as lists, with ==. Both run in the code verifier's sandbox.
 *
 * Owns: every string of the items it read.
 */
#ifndef RL_BENCHMARK_H
#define RL_BENCHMARK_H

#include <stdint.h>

#include "kernels/rl_error.h"

typedef enum rl_bench_kind {
    RL_BENCH_MATH500 = 0,
    RL_BENCH_AIME,
    RL_BENCH_GPQA,
    RL_BENCH_MMLU_PRO,
    RL_BENCH_LCB,
    RL_BENCH_N_KINDS
} rl_bench_kind;

// How the answer is graded.
typedef enum rl_bench_grader {
    RL_BENCH_GRADE_MATH = 0, // the math verifier against `answer`
    RL_BENCH_GRADE_CHOICE,   // the choice verifier: the letter, exact match
    RL_BENCH_GRADE_CODE      // the code verifier against `tests`
} rl_bench_grader;

// The prompt style: standard (each benchmark's usual instruction) or seed (the seed article's:
// answers in \boxed{}, and the response starts with "###").
typedef enum rl_bench_style { RL_BENCH_STYLE_STANDARD = 0, RL_BENCH_STYLE_SEED } rl_bench_style;

typedef struct rl_bench_test {
    int is_assert; // 0: stdin/stdout; 1: Python assert code in `input` (functional tests)
    char *input;   // stdin text, or the assert code
    char *output;  // expected stdout (NULL for assert tests)
} rl_bench_test;

typedef struct rl_bench_item {
    char *id;             // the release's id (unique_id, ID, Record ID, question_id) or "line N"
    char *prompt;         // the user message: the benchmark's standard prompt around the problem
    char *answer;         // math: the reference; choice: the correct letter; code: NULL
    rl_bench_test *tests; // [n_tests] code tests (public, then private)
    int n_tests;
    int n_options; // choice: the number of options (letters A..)
    char *meta;    // a compact JSON object of the release's descriptive fields (subject, level...)
    int line;      // the line the row starts on in its file
} rl_bench_item;

typedef struct rl_bench {
    rl_bench_kind kind;
    char *name; // the name it was asked for ("math500", "aime24", ...)
    char *path;
    rl_bench_item *items; // [n]
    int n;
} rl_bench;

typedef struct rl_bench_opts {
    rl_bench_style style;
    uint64_t shuffle_seed; // GPQA option order
    size_t max_test_bytes; // limit on one problem's decoded tests (0 = 1 GiB)
} rl_bench_opts;

// The kind called name (case-insensitive, '-' read as '_'), or -1.
int rl_bench_kind_from_name(const char *name);
// "MATH-500", "AIME", "GPQA Diamond", "MMLU-Pro", "LiveCodeBench".
const char *rl_bench_display_name(rl_bench_kind kind);
// The table's metric: "pass@1" (MMLU-Pro: "EM", the mean exact match of the sampled letters).
const char *rl_bench_metric(rl_bench_kind kind);
rl_bench_grader rl_bench_grader_of(rl_bench_kind kind);
// Every accepted name, for messages: "math500, aime, gpqa, mmlu_pro, livecodebench".
const char *rl_bench_names(void);

// Reads the whole file. On RL_EINPUT the message starts "path:line: ".
int rl_bench_load(rl_bench *b, rl_bench_kind kind, const char *name, const char *path,
                  const rl_bench_opts *opts, rl_err *err);
void rl_bench_free(rl_bench *b);

// The unbiased pass@k estimator for one problem with n samples of which c are correct
// (Chen et al. 2021): 1 - C(n-c, k) / C(n, k); k > n is read as k = n.
double rl_pass_at_k(int n, int c, int k);

#endif
