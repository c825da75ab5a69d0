/*
 * verifier_abi: the whole contract between rlpipe and a verifier, built-in or plugin.
 *
 * A verifier is created from its options (the free keys of its entry in the config's
 * reward.verifiers list, as strings), scores samples, and is destroyed. It never sees the model,
 * the tokenizer or the trainer; it sees one sample (or one prompt's group of samples) at a time
 * and returns a score in [0, 1], a status and a short detail string.
 *
 * A shared-object plugin exports one function named RL_VERIFIER_ENTRY ("rlpipe_verifier") that
 * returns a pointer to a static rl_verifier_api. rlpipe refuses a plugin whose abi_version differs
 * from RL_VERIFIER_ABI_VERSION. This header depends only on the C standard library so that a
 * plugin can be compiled with nothing but this file.
 *
 * Owns: nothing. All pointers in rl_vsample are borrowed for the duration of one score call.
 */
#ifndef RL_VERIFIER_ABI_H
#define RL_VERIFIER_ABI_H

#include <stddef.h>
#include <stdint.h>

#define RL_VERIFIER_ABI_VERSION 1
#define RL_VERIFIER_ENTRY       "rlpipe_verifier"
#define RL_VDETAIL_MAX          256

// What happened when scoring one sample.
typedef enum rl_vstatus {
    RL_VERIFY_OK = 0, // score is meaningful
    RL_VERIFY_SKIPPED =
        1,               // the reference (answer or tests) cannot be parsed: no judgement, score 0
    RL_VERIFY_ERROR = 2, // the verifier itself failed (plugin crashed, bad reply, ...): score 0
    RL_VERIFY_TIMEOUT = 3, // the verifier or the sandboxed program ran out of time: score 0
} rl_vstatus;

// One code test: either stdin/expected-stdout, or an assert-style snippet run after the program.
typedef enum rl_vtest_kind { RL_VTEST_STDIO = 0, RL_VTEST_ASSERT = 1 } rl_vtest_kind;

typedef struct rl_vtest {
    int32_t kind; // rl_vtest_kind
    const char
        *input; // STDIO: bytes given on stdin; ASSERT: Python code appended after the program
    const char *
        output; // STDIO: expected stdout (compared line by line, trailing space trimmed); ASSERT: NULL
} rl_vtest;

// One sample to score.
typedef struct rl_vsample {
    const char *prompt;     // the task as posed to the model (before the chat template), UTF-8
    const char *completion; // the decoded completion, UTF-8, NUL-terminated
    const int32_t *tokens;  // [n_tokens] the completion's token ids (may be NULL when unknown)
    int32_t n_tokens;       // completion length in tokens
    int32_t max_tokens;     // the token budget the completion was generated under
    int32_t truncated;      // 1 if generation stopped at the budget (finish reason "length")
    const char *answer;     // reference answer for math-style tasks; NULL when tests are given
    const rl_vtest *tests;  // [n_tests] code tests; NULL for math-style tasks
    int32_t n_tests;
    const char *task; // task family tag ("arith", "deriv", "code", a dataset name) or NULL
} rl_vsample;

// The verdict on one sample.
typedef struct rl_vresult {
    double score;                // in [0, 1]
    int32_t status;              // rl_vstatus
    char detail[RL_VDETAIL_MAX]; // short, human readable, e.g. "answer 7, reference 8"
} rl_vresult;

// A free option from the config entry, as text ("timeout_s" -> "5").
typedef struct rl_voption {
    const char *key;
    const char *value;
} rl_voption;

typedef struct rl_verifier_api {
    uint32_t abi_version; // RL_VERIFIER_ABI_VERSION the verifier was built against
    const char *name;     // its default name
    int32_t thread_safe;  // 1: score() may run concurrently on one instance
    // Returns the verifier's state, or NULL with a one-line reason in err (unknown option, bad value).
    void *(*create)(const rl_voption *opts, int32_t n_opts, char *err, size_t err_len);
    // Scores one sample. Must always fill out (score in [0, 1], a status, a detail).
    void (*score)(void *self, const rl_vsample *sample, rl_vresult *out);
    // Optional (may be NULL): scores the n samples of one prompt together, for verdicts that are
    // relative to the group (e.g. length against the group's shortest and longest). When present
    // the registry calls it instead of score() whenever groups are known.
    void (*score_group)(void *self, const rl_vsample *samples, int32_t n, rl_vresult *out);
    void (*destroy)(void *self);
} rl_verifier_api;

// The type of the exported entry point of a shared-object plugin.
typedef const rl_verifier_api *(*rl_verifier_entry_fn)(void);

#endif
