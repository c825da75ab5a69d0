// dataset: JSONL prompt sources and their train/held-out split. See dataset.h.
#define _POSIX_C_SOURCE 200809L
#include "rollout/dataset.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rng.h"
#include "policy/fileio.h"

void rl_item_free(rl_item *item) {
    if (!item) return;
    free(item->prompt);
    free(item->answer);
    free(item->tests_json);
    free(item->response);
    free(item->task);
    memset(item, 0, sizeof *item);
}

// An optional string field: absent or null gives NULL; a number is accepted for "answer" (many
// datasets store integer answers as numbers) and converted to its JSON text.
static int opt_string(json_t *obj, const char *key, int allow_number, char **out, rl_err *err) {
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) {
        *out = rl_strdup(json_string_value(v));
        return 0;
    }
    if (allow_number && json_is_number(v)) {
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        *out = rl_strdup(s);
        free(s);
        return 0;
    }
    return rl_fail(err, RL_EINPUT, "\"%s\" must be a string", key);
}

static int check_tests(json_t *tests, rl_err *err) {
    if (!json_is_array(tests)) return rl_fail(err, RL_EINPUT, "\"tests\" must be an array");
    size_t i;
    json_t *t;
    json_array_foreach(tests, i, t) {
        if (!json_is_object(t)) return rl_fail(err, RL_EINPUT, "tests[%zu] must be an object", i);
        json_t *assert_code = json_object_get(t, "assert");
        json_t *in = json_object_get(t, "input"), *out = json_object_get(t, "output");
        if (assert_code && json_is_string(assert_code)) continue;
        if (!json_is_string(in) || !json_is_string(out))
            return rl_fail(err, RL_EINPUT,
                           "tests[%zu] needs string \"input\" and \"output\" (or \"assert\")", i);
    }
    return 0;
}

int rl_item_parse(rl_item *item, const char *line, size_t len, rl_err *err) {
    memset(item, 0, sizeof *item);
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, 0, &jerr);
    if (!obj)
        return rl_fail(err, RL_EINPUT, "not valid JSON (%s at column %d)", jerr.text, jerr.column);
    int rc = -1;
    if (!json_is_object(obj)) {
        rl_fail(err, RL_EINPUT, "expected a JSON object");
        goto done;
    }
    json_t *prompt = json_object_get(obj, "prompt");
    if (!json_is_string(prompt)) {
        rl_fail(err, RL_EINPUT, prompt ? "\"prompt\" must be a string" : "missing \"prompt\"");
        goto done;
    }
    item->prompt = rl_strdup(json_string_value(prompt));
    if (opt_string(obj, "answer", 1, &item->answer, err) ||
        opt_string(obj, "response", 0, &item->response, err) ||
        opt_string(obj, "task", 0, &item->task, err))
        goto done;
    json_t *tests = json_object_get(obj, "tests");
    if (tests && !json_is_null(tests)) {
        if (check_tests(tests, err)) goto done;
        char *s = json_dumps(tests, JSON_COMPACT);
        item->tests_json = rl_strdup(s);
        free(s);
    }
    if (!item->answer && !item->tests_json && !item->response) {
        rl_fail(err, RL_EINPUT, "needs \"answer\", \"tests\" or \"response\"");
        goto done;
    }
    rc = 0;
done:
    json_decref(obj);
    if (rc) rl_item_free(item);
    return rc;
}

static int is_heldout_label(const char *v) {
    return strcmp(v, "heldout") == 0 || strcmp(v, "held_out") == 0 || strcmp(v, "test") == 0 ||
           strcmp(v, "validation") == 0 || strcmp(v, "val") == 0;
}

static void push(rl_item **arr, int *n, int *cap, const rl_item *it) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *arr = rl_realloc(*arr, (size_t)*cap * sizeof **arr);
    }
    (*arr)[(*n)++] = *it;
}

// Reads one file; each good item goes to train or held-out according to `route`:
// 0 = train, 1 = held-out, 2 = decide per line (split key or seeded fraction).
static int load_file(rl_dataset *ds, const rl_dataset_opts *o, const char *path, int route,
                     int *cap_train, int *cap_heldout, rl_err *err) {
    FILE *f = rl_fopen_regular(path, err); // a FIFO or directory is refused, not waited on
    if (!f) return rl_err_prefix(err, "dataset: ");
    char *line = NULL;
    size_t linecap = 0;
    ssize_t got;
    int lineno = 0, rc = 0;
    while ((got = getline(&line, &linecap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        size_t s = 0;
        while (s < len && (line[s] == ' ' || line[s] == '\t')) s++;
        if (s == len) continue; // blank lines are allowed
        rl_item it;
        rl_err e = {0};
        if (rl_item_parse(&it, line, len, &e)) {
            if (o->fail_on_bad_line) {
                rc = rl_fail(err, RL_EINPUT, "%s:%d: %s", path, lineno, e.msg);
                break;
            }
            fprintf(o->warn ? o->warn : stderr, "rlpipe: warning: %s:%d: %s (line skipped)\n", path,
                    lineno, e.msg);
            ds->n_bad++;
            continue;
        }
        it.line = lineno;
        int heldout = route == 1;
        if (route == 2) {
            if (o->split_key && o->split_key[0]) {
                json_t *obj = json_loadb(line, len, 0, NULL);
                json_t *v = obj ? json_object_get(obj, o->split_key) : NULL;
                heldout = json_is_string(v) && is_heldout_label(json_string_value(v));
                json_decref(obj);
            } else {
                rl_rng r = rl_rng_stream(o->seed, RL_RNG_SPLIT, (uint64_t)lineno, 0);
                heldout = rl_rng_double(&r) < o->heldout_fraction;
            }
        }
        if (heldout)
            push(&ds->heldout, &ds->n_heldout, cap_heldout, &it);
        else
            push(&ds->train, &ds->n_train, cap_train, &it);
    }
    free(line);
    fclose(f);
    return rc;
}

int rl_dataset_load(rl_dataset *ds, const rl_dataset_opts *o, rl_err *err) {
    memset(ds, 0, sizeof *ds);
    if (!o->train_path || !o->train_path[0])
        return rl_fail(err, RL_EINPUT, "data.train_path: no dataset file given");
    int cap_train = 0, cap_heldout = 0;
    int separate = o->heldout_path && o->heldout_path[0];
    int rc = load_file(ds, o, o->train_path, separate ? 0 : 2, &cap_train, &cap_heldout, err);
    if (rc == 0 && separate)
        rc = load_file(ds, o, o->heldout_path, 1, &cap_train, &cap_heldout, err);
    if (rc == 0 && ds->n_train == 0)
        rc = rl_fail(err, RL_EINPUT, "%s: no usable training lines", o->train_path);
    if (rc) rl_dataset_free(ds);
    return rc;
}

void rl_dataset_free(rl_dataset *ds) {
    for (int i = 0; i < ds->n_train; i++) rl_item_free(&ds->train[i]);
    for (int i = 0; i < ds->n_heldout; i++) rl_item_free(&ds->heldout[i]);
    free(ds->train);
    free(ds->heldout);
    memset(ds, 0, sizeof *ds);
}
