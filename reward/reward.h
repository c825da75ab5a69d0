/*
 * reward: the reward stage. Builds the configured verifier set, scores a batch of samples on a
 * thread pool, and combines the per-verifier scores into one reward per sample.
 *
 * Verifiers come from rl_verifier_spec entries (reward.verifiers in the config), each one of:
 *   - a built-in, by name: accuracy (math answers and code tests, dispatched per sample: a sample
 *     with tests goes to the code verifier, one with an answer to the math verifier), path_quality,
 *     format, efficiency;
 *   - a shared-object plugin (`plugin: path.so`): dlopen'ed, its RL_VERIFIER_ENTRY called, refused
 *     unless its abi_version equals RL_VERIFIER_ABI_VERSION (a path without '/' is taken relative
 *     to the working directory, never searched for);
 *   - an external program (`command: "python3 my_verifier.py"`, run by /bin/sh -c in the working
 *     directory) speaking the line protocol: one JSON request per line on its stdin, one JSON
 *     reply per line on its stdout (see reward/lineproc.h and the plugin guide).
 *
 * Threads: rl_reward_score runs the (verifier, sample) and (verifier, group) jobs on `threads`
 * worker threads. A verifier with thread_safe = 1 has one instance shared by all workers; one with
 * thread_safe = 0 gets one instance per worker (create() is called once per worker at
 * construction), so no instance is ever used by two threads at once. External programs are not
 * thread-safe by definition: each worker gets its own child process, started on first use.
 * Results do not depend on the number of threads. One rl_reward_score call at a time per
 * rl_reward (the per-worker instances are not shared between concurrent calls).
 *
 * Scores: every result is validated. A score that is NaN, infinite or outside [0, 1], or a status
 * outside rl_vstatus, becomes status ERROR with score 0; any status other than OK forces score 0.
 *
 * Weighting (issue 4 §4), with a_s the accuracy score of sample s:
 *     reward_s = sum_i  w_i * g_i * score_i,s      g_i = a_s when verifier i is gated, else 1
 * Gate defaults: path_quality, efficiency and every plugin or program are gated by accuracy;
 * accuracy and format are not. `gate: none|accuracy` in the entry overrides (accuracy itself
 * cannot be gated). The invariant: a correct answer (a_s = 1) always earns strictly more than any
 * wrong one (a_s = 0) in the same group, because a correct sample earns >= w_accuracy and a wrong
 * one earns at most U = the sum of the weights of the ungated verifiers other than accuracy. So
 * construction fails unless U < w_accuracy (defaults: U = 0.2 < 0.4), naming the weights; set
 * rl_reward_opts.allow_unsafe_weights to accept such weights anyway.
 * Without an "accuracy" verifier there is nothing to gate on: default-gated verifiers then count
 * ungated and the invariant check is off; an explicit `gate: accuracy` is an error.
 *
 * Skipped references: when the accuracy verifier reports SKIPPED (the reference answer or tests
 * cannot be parsed), the sample's accuracy counts as 0, every gated term is 0, and skipped[s] = 1:
 * the advantage code gives such samples advantage 0 and leaves them out of group statistics, and
 * the trainer should leave them out of the loss. A skipped sample can never get full marks.
 *
 * Owns: the verifier instances, dlopen handles and child processes of one rl_reward.
 */
#ifndef RL_REWARD_H
#define RL_REWARD_H

#include "kernels/rl_error.h"
#include "reward/spec.h"
#include "reward/verifier_abi.h"

#include <stdint.h>

typedef struct rl_reward rl_reward;

typedef struct rl_reward_opts {
    int threads;              // scoring threads; 0 = the number of online CPUs (at most 64)
    int allow_unsafe_weights; // 1: accept weights that break the correct-beats-wrong invariant
    const char *extract;      // reward.extract ("boxed" | "auto") or NULL: given to the built-in
                              // accuracy as option extract unless its entry sets extract (or
                              // math.extract) itself
} rl_reward_opts;

// Builds the verifier set. Every failure is RL_EINPUT and names the verifier and, when the spec
// came from a file, its line and column: "verifier 'format' (line 12, column 5): unknown option".
// opts may be NULL (defaults).
int rl_reward_create(rl_reward **out, const rl_verifier_spec *specs, int n_specs,
                     const rl_reward_opts *opts, rl_err *err);
// Destroys the verifiers, kills and reaps their child processes, unloads plugins. NULL is fine.
void rl_reward_free(rl_reward *rw);

int rl_reward_n_verifiers(const rl_reward *rw);
const char *rl_reward_name(const rl_reward *rw, int v);
double rl_reward_weight(const rl_reward *rw, int v);
int rl_reward_gated(const rl_reward *rw, int v);   // 1 when verifier v is multiplied by accuracy
int rl_reward_accuracy_index(const rl_reward *rw); // the "accuracy" verifier, or -1
int rl_reward_threads(const rl_reward *rw);

// Scores n samples. group[s] names the prompt of sample s (samples of one prompt share a value;
// any int32 values; NULL = every sample its own group); verifiers with score_group get each
// group's samples together. Fills results[s * n_verifiers + v], reward[s] and, when not NULL,
// skipped[s]. Fails only on bad arguments: verifier failures are per-sample statuses.
int rl_reward_score(rl_reward *rw, const rl_vsample *samples, const int32_t *group, int n,
                    rl_vresult *results, double *reward, uint8_t *skipped, rl_err *err);

// ---- the weighting rule as plain functions (what rl_reward_score uses) ---------------------------

// One sample's reward from its row of results ([n_verifiers]); accuracy = index of the gate or -1.
// *skipped (may be NULL) = 1 when the accuracy verifier's status is SKIPPED.
double rl_reward_weighted(int n_verifiers, const double *weight, const uint8_t *gated, int accuracy,
                          const rl_vresult *row, int *skipped);

// The construction-time check: sum of ungated non-accuracy weights < accuracy weight (when
// accuracy >= 0). names[] are used in the message. RL_EINPUT on failure.
int rl_reward_check_weights(int n_verifiers, const char *const *names, const double *weight,
                            const uint8_t *gated, int accuracy, rl_err *err);

// Clamps a verifier's verdict into the contract: NaN / out of range / unknown status -> ERROR,
// non-OK -> score 0, detail NUL-terminated.
void rl_vresult_sanitize(rl_vresult *r);

// "ok", "skipped", "error", "timeout" (the rollout log's words), or "invalid".
const char *rl_vstatus_name(int status);

// ---- specs -------------------------------------------------------------------------------------

// The default verifier set: accuracy 0.4, path_quality 0.3, format 0.2, efficiency 0.1. Returns
// an rl_malloc'ed array of *n specs; free each with rl_verifier_spec_free, then free() the array.
rl_verifier_spec *rl_reward_default_specs(int *n);

// Sets (or replaces) a free option of a spec; key and value are copied.
void rl_verifier_spec_set_option(rl_verifier_spec *spec, const char *key, const char *value);

// The value of a free option, or NULL.
const char *rl_verifier_spec_option(const rl_verifier_spec *spec, const char *key);

#endif
