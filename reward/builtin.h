/*
 * builtin: the built-in verifiers by name, and the accuracy dispatcher (reward-internal).
 *
 * accuracy is a thin dispatcher over two verifiers in verifiers/: a sample with tests goes to
 * the code verifier (verifiers/code), a sample with a reference answer to the math verifier
 * (verifiers/math); a sample with neither is SKIPPED. Its options are routed: a key prefixed
 * "math." or "code." goes only to that verifier (prefix removed); any other key goes to every
 * verifier that accepts it on its own (extract -> math, timeout_s / memory_mb -> code), and a key
 * that none accepts is an error quoting each verifier's reason. A verifier that is not part of
 * the build leaves its samples with status ERROR ("... not part of this build"), and options no
 * built verifier takes are then accepted unchecked (they may be meant for the missing one).
 *
 * Owns: nothing global.
 */
#ifndef RL_REWARD_BUILTIN_H
#define RL_REWARD_BUILTIN_H

#include "reward/verifier_abi.h"

// The built-in verifier called name, or NULL (with the reason in why: unknown name, or known but
// not part of this build).
const rl_verifier_api *rl_builtin_api(const char *name, char *why, size_t why_len);

// The names of the built-ins, for messages: "accuracy, path_quality, format, efficiency".
const char *rl_builtin_names(void);

const rl_verifier_api *rl_accuracy_api(void);

#endif
