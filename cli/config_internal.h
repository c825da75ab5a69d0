/*
 * config_internal: helpers shared by the config module's files (config.c loads and sets,
 * config_check.c validates, config_emit.c writes YAML and the reference). Not for other modules.
 *
 * Owns: nothing.
 */
#ifndef RL_CONFIG_INTERNAL_H
#define RL_CONFIG_INTERNAL_H

#include "cli/config.h"

#include <stddef.h>

// The built-in verifier names a reward.verifiers entry may use without plugin or command.
extern const char *const RL_BUILTIN_VERIFIERS[];

// The struct field a key describes.
static inline void *cfg_field(const rl_config *c, const rl_config_key *k) {
    return (char *)c + k->offset;
}

// Shortest text that reads back as exactly v, with a '.' or exponent so it reads as a number
// ("1.0", "0.0001", "1e-08").
void cfg_format_double(double v, char *buf, size_t n);

// "an integer in [1, 65536]", "a number > 0", "a number in (0, 1]": what a key accepts.
void cfg_describe_range(const rl_config_key *k, char *buf, size_t n);

// 1 if v lies within the key's range (bounds and open flags).
int cfg_in_range(const rl_config_key *k, double v);

// Levenshtein distance (bytes), for "did you mean" suggestions.
int cfg_edit_distance(const char *a, const char *b);

// The closest candidate to s among the NULL-terminated names, or NULL when none is close.
const char *cfg_closest(const char *s, const char *const *names);

// Where key `path` got its value, as a message suffix: " at file:12:3", " (from --set k=v)", or
// " (the default)".
void cfg_where(const rl_config *c, const char *path, char *buf, size_t n);

#endif
