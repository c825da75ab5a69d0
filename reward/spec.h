/*
 * spec: how one verifier is named in a run config (one entry of reward.verifiers), as plain data.
 *
 * The config module fills these from YAML; the reward registry turns them into live verifiers.
 * Reserved keys of an entry: name, weight, plugin (path of a shared object), command (an external
 * program speaking the line protocol), gate. Every other key is a free option handed to the
 * verifier's create() as text, so plugins can take options the core does not know.
 *
 * Owns: the strings and option array of each spec (rl_verifier_spec_free releases them).
 */
#ifndef RL_REWARD_SPEC_H
#define RL_REWARD_SPEC_H

#include "reward/verifier_abi.h"

typedef struct rl_verifier_spec {
    char *name;    // "accuracy", "path_quality", "format", "efficiency", or a plugin's own name
    double weight; // weight in the reward sum, >= 0
    char *plugin;  // path of a shared-object plugin, or NULL
    char *command; // external program (run through /bin/sh -c), or NULL
    char *gate;    // "accuracy": counts only in proportion to accuracy; "none"; NULL = default
    rl_voption *options; // [n_options] free options, key and value owned
    int n_options;
    int line, column; // where the entry starts in the config file (1-based; 0 when from code)
} rl_verifier_spec;

void rl_verifier_spec_free(rl_verifier_spec *spec);

#endif
