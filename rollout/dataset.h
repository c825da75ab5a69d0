/*
 * dataset: prompt sources read from JSONL files, one task per line:
 *     {"prompt": "...", "answer": "..."}                      math-style, checked by the accuracy verifier
 *     {"prompt": "...", "tests": [{"input": "...", "output": "..."}, {"assert": "..."}]}   code
 *     {"prompt": "...", "response": "..."}                    an SFT target (distillation from a stronger model)
 * Optional keys: "task" (a tag), any split key named by the config. Unknown keys are ignored.
 *
 * Splitting into train and held-out: by a key (`split_key: split` sends lines whose "split" value is
 * "heldout", "test", "validation" or "val" to held-out), by a separate held-out file, or by a seeded
 * fraction (a line goes to held-out when a hash of (seed, line number) falls below the fraction, so
 * the split does not depend on file order changes elsewhere).
 *
 * Bad lines (not JSON, no "prompt", wrong types) are reported with file and line number and either
 * skipped (counted, each reported on stderr) or fatal, per config; never silently dropped.
 *
 * Owns: the items it read (strings are owned by the dataset).
 */
#ifndef RL_DATASET_H
#define RL_DATASET_H

#include <stdint.h>
#include <stdio.h>

#include "kernels/rl_error.h"

typedef struct rl_item {
    char *prompt;     // the task text (before the prompt template)
    char *answer;     // reference answer, or NULL
    char *tests_json; // the "tests" array as compact JSON text, or NULL
    char *response;   // SFT target response, or NULL
    char *task;       // task tag, or NULL
    int line;         // 1-based line in its file
} rl_item;

typedef struct rl_dataset {
    rl_item *train; // [n_train]
    int n_train;
    rl_item *heldout; // [n_heldout]
    int n_heldout;
    int n_bad; // lines skipped as bad
} rl_dataset;

typedef struct rl_dataset_opts {
    const char *train_path;   // required
    const char *heldout_path; // optional: a separate held-out file (then no other split is applied)
    const char *split_key;    // optional: split by this key's value
    double heldout_fraction;  // used when neither heldout_path nor split_key is given
    uint64_t seed;
    int fail_on_bad_line; // 1: the first bad line is an error; 0: skip it with a warning
    FILE *warn;           // where skipped lines are reported (NULL = stderr)
} rl_dataset_opts;

int rl_dataset_load(rl_dataset *ds, const rl_dataset_opts *opts, rl_err *err);
void rl_dataset_free(rl_dataset *ds);

// Parses one JSONL line into an item (used by the loader and by commands reading stdin).
int rl_item_parse(rl_item *item, const char *line, size_t len, rl_err *err);
void rl_item_free(rl_item *item);

#endif
