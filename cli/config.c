// config: defaults, loading YAML (libyaml's document API), --set overrides, equality and freeing.
// Everything walks the schema table of config_schema.c. See config.h.
#define _POSIX_C_SOURCE 200809L
#include "cli/config.h"
#include "cli/config_internal.h"
#include "policy/fileio.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_CONFIG_BYTES (4u << 20) // a config is a few KiB; refuse anything absurd
#define MAX_CONFIG_DEPTH 64         // nested mappings / lists; a config uses 3 or 4
#define PATH_MAX_LEN     256        // longest key path we print ("reward.verifiers[3].timeout_s")

const char *const RL_BUILTIN_VERIFIERS[] = {"accuracy", "path_quality", "format", "efficiency",
                                            NULL};

// ---- small helpers shared with the other config files ------------------------------------------

void cfg_format_double(double v, char *buf, size_t n) {
    // The shortest of %.15g..%.17g that reads back exactly: "0.1", not "0.10000000000000001".
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eEn")) { // "1" -> "1.0", so the YAML reads as a number to people too
        size_t len = strlen(buf);
        if (len + 3 <= n) memcpy(buf + len, ".0", 3);
    }
}

static void format_bound(const rl_config_key *k, double v, char *buf, size_t n) {
    if (k->type == RL_CK_INT)
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, "%g", v);
}

void cfg_describe_range(const rl_config_key *k, char *buf, size_t n) {
    const char *what = k->type == RL_CK_INT ? "an integer" : "a number";
    int has_max = k->type == RL_CK_INT ? k->max < INT32_MAX : isfinite(k->max);
    char lo[32], hi[32];
    format_bound(k, k->min, lo, sizeof lo);
    format_bound(k, k->max, hi, sizeof hi);
    if (has_max)
        snprintf(buf, n, "%s in %c%s, %s%c", what, (k->flags & RL_CK_MIN_OPEN) ? '(' : '[', lo, hi,
                 (k->flags & RL_CK_MAX_OPEN) ? ')' : ']');
    else
        snprintf(buf, n, "%s %s %s", what, (k->flags & RL_CK_MIN_OPEN) ? ">" : ">=", lo);
}

int cfg_in_range(const rl_config_key *k, double v) {
    if ((k->flags & RL_CK_MIN_OPEN) ? !(v > k->min) : !(v >= k->min)) return 0;
    if ((k->flags & RL_CK_MAX_OPEN) ? !(v < k->max) : !(v <= k->max)) return 0;
    return 1;
}

int cfg_edit_distance(const char *a, const char *b) {
    // Optimal string alignment: insertions, deletions, substitutions and swaps of neighbours
    // ("cdua" is one edit from "cuda"). Three rolling rows of the DP table.
    size_t na = strlen(a), nb = strlen(b);
    if (na > 200 || nb > 200) return 1 << 20; // not a typo of any key we have
    int rows[3][201];
    int *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= nb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        int *t = prev2;
        prev2 = prev, prev = cur, cur = t;
    }
    return prev[nb];
}

// A name is "close" when few edits separate them relative to its length: one or two typos.
static int close_enough(int d, const char *candidate) {
    int len = (int)strlen(candidate);
    int limit = len / 3 > 2 ? len / 3 : 2;
    return d <= limit && d < len;
}

const char *cfg_closest(const char *s, const char *const *names) {
    const char *best = NULL;
    int best_d = 1 << 30;
    for (int i = 0; names[i]; i++) {
        int d = cfg_edit_distance(s, names[i]);
        if (d < best_d) best_d = d, best = names[i];
    }
    return best && close_enough(best_d, best) ? best : NULL;
}

// out = prefix + sep + name; 0 if it did not fit (then the path is only good for messages).
static int join_key(char *out, size_t n, const char *prefix, const char *sep, const char *name) {
    int len = snprintf(out, n, "%s%s%s", prefix, sep, name);
    return len >= 0 && (size_t)len < n;
}

// out = path + "[i]".
static void index_key(char *out, size_t n, const char *path, int i) {
    if (snprintf(out, n, "%s[%d]", path, i) < 0) out[0] = '\0';
}

static const char *last_component(const char *path) {
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

// The known key or section nearest to an unknown path, written to out: a small typo of the whole
// path, or else every key with the same last name in another section ("temperature" at the top ->
// "rollout.temperature or eval.temperature"). 0 when nothing is close.
static int suggest_key(const char *path, char *out, size_t n) {
    int nk;
    const rl_config_key *keys = rl_config_keys(&nk);
    const char *best = NULL;
    int best_d = 1 << 30;
    for (int i = 0; i < nk; i++) {
        int d = cfg_edit_distance(path, keys[i].path);
        if (d < best_d) best_d = d, best = keys[i].path;
    }
    if (best && close_enough(best_d, last_component(best))) {
        snprintf(out, n, "%s", best);
        return 1;
    }
    const char *name = last_component(path);
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < nk && len < n; i++)
        if (strcmp(last_component(keys[i].path), name) == 0)
            len += (size_t)snprintf(out + len, n - len, "%s%s", len ? " or " : "", keys[i].path);
    return len > 0;
}

void cfg_where(const rl_config *c, const char *path, char *buf, size_t n) {
    int k = rl_config_find_key(path);
    const char *o = (k >= 0 && c->origin) ? c->origin[k] : NULL;
    if (!o)
        snprintf(buf, n, " (the default)");
    else if (strncmp(o, "--set ", 6) == 0)
        snprintf(buf, n, " (from %s)", o);
    else
        snprintf(buf, n, " at %s", o);
}

static void set_origin(rl_config *c, const rl_config_key *k, const char *where) {
    int n;
    const rl_config_key *keys = rl_config_keys(&n);
    size_t i = (size_t)(k - keys);
    if (!c->origin) c->origin = rl_calloc((size_t)n, sizeof *c->origin);
    free(c->origin[i]);
    c->origin[i] = where ? rl_strdup(where) : NULL;
}

// ---- freeing values ------------------------------------------------------------------------------

static void strlist_free(rl_strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    *l = (rl_strlist){0};
}

static void verifiers_free(rl_verifier_list *l) {
    for (int i = 0; i < l->n; i++) rl_verifier_spec_free(&l->v[i]);
    free(l->v);
    *l = (rl_verifier_list){0};
}

static void value_free(rl_config *c, const rl_config_key *k) {
    void *f = cfg_field(c, k);
    switch (k->type) {
    case RL_CK_STR:
        free(*(char **)f);
        *(char **)f = NULL;
        break;
    case RL_CK_STRLIST:
        strlist_free(f);
        break;
    case RL_CK_NUMLIST:
        free(((rl_numlist *)f)->v);
        *(rl_numlist *)f = (rl_numlist){0};
        break;
    case RL_CK_VERIFIERS:
        verifiers_free(f);
        break;
    default:
        break;
    }
}

void rl_config_free(rl_config *c) {
    if (!c) return;
    int n;
    const rl_config_key *keys = rl_config_keys(&n);
    for (int i = 0; i < n; i++) value_free(c, &keys[i]);
    if (c->origin)
        for (int i = 0; i < n; i++) free(c->origin[i]);
    free(c->origin);
    free(c->source_path);
    free(c->source_text);
    memset(c, 0, sizeof *c);
}

// ---- defaults: the table's text, parsed by a tiny reader (a bad default is a bug) ----------------

static void schema_bug(const rl_config_key *k) {
    fprintf(stderr, "rlpipe: internal error: bad default \"%s\" for %s in the config schema\n",
            k->def, k->path);
    abort();
}

static int enum_index(const rl_config_key *k, const char *s) {
    for (int i = 0; k->values[i]; i++)
        if (strcmp(k->values[i], s) == 0) return i;
    return -1;
}

// Splits "a|b|c" into owned strings; "" is the empty list.
static char **split_bars(const char *s, int *n) {
    *n = 0;
    if (!*s) return NULL;
    int count = 1;
    for (const char *p = s; *p; p++) count += *p == '|';
    char **out = rl_calloc((size_t)count, sizeof *out);
    for (int i = 0; i < count; i++) {
        const char *end = strchr(s, '|');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        out[i] = rl_malloc(len + 1);
        memcpy(out[i], s, len);
        out[i][len] = '\0';
        s += len + 1;
    }
    *n = count;
    return out;
}

static void set_default(rl_config *c, const rl_config_key *k) {
    void *f = cfg_field(c, k);
    char *end;
    switch (k->type) {
    case RL_CK_SECTION:
        return;
    case RL_CK_INT: {
        long v = strtol(k->def, &end, 10);
        if (*end || !cfg_in_range(k, (double)v)) schema_bug(k);
        *(int *)f = (int)v;
        return;
    }
    case RL_CK_NUM: {
        double v = strtod(k->def, &end);
        if (*end || !cfg_in_range(k, v)) schema_bug(k);
        *(double *)f = v;
        return;
    }
    case RL_CK_BOOL:
        if (strcmp(k->def, "true") != 0 && strcmp(k->def, "false") != 0) schema_bug(k);
        *(int *)f = strcmp(k->def, "true") == 0;
        return;
    case RL_CK_STR:
        *(char **)f = rl_strdup(k->def);
        return;
    case RL_CK_ENUM:
        *(int *)f = enum_index(k, k->def);
        if (*(int *)f < 0) schema_bug(k);
        return;
    case RL_CK_STRLIST: {
        rl_strlist *l = f;
        l->v = split_bars(k->def, &l->n);
        return;
    }
    case RL_CK_NUMLIST: {
        int n;
        char **items = split_bars(k->def, &n);
        rl_numlist *l = f;
        l->v = rl_calloc((size_t)n, sizeof *l->v);
        l->n = n;
        for (int i = 0; i < n; i++) {
            l->v[i] = strtod(items[i], &end);
            if (*end) schema_bug(k);
            free(items[i]);
        }
        free(items);
        return;
    }
    case RL_CK_VERIFIERS: {
        int n;
        char **items = split_bars(k->def, &n); // "name:weight"
        rl_verifier_list *l = f;
        l->v = rl_calloc((size_t)n, sizeof *l->v);
        l->n = n;
        for (int i = 0; i < n; i++) {
            char *colon = strchr(items[i], ':');
            if (!colon) schema_bug(k);
            *colon = '\0';
            l->v[i].name = rl_strdup(items[i]);
            l->v[i].weight = strtod(colon + 1, &end);
            if (*end) schema_bug(k);
            free(items[i]);
        }
        free(items);
        return;
    }
    }
    schema_bug(k);
}

void rl_config_defaults(rl_config *c) {
    memset(c, 0, sizeof *c);
    int n;
    const rl_config_key *keys = rl_config_keys(&n);
    for (int i = 0; i < n; i++) set_default(c, &keys[i]);
    c->origin = rl_calloc((size_t)n, sizeof *c->origin);
}

// ---- applying YAML nodes -------------------------------------------------------------------------

// Where the nodes being applied come from: a file (marks are positions in it) or one --set.
typedef struct cfg_ctx {
    rl_config *c;
    yaml_document_t *doc;
    const char *file;    // file name, or NULL for --set
    const char *set_arg; // the whole "--set" assignment, or NULL
    const char *set_key; // its key part
    rl_err *err;
} cfg_ctx;

static int ctx_fail(const cfg_ctx *x, const char *path, const yaml_node_t *node, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

static int ctx_fail(const cfg_ctx *x, const char *path, const yaml_node_t *node, const char *fmt,
                    ...) {
    char msg[RL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (x->set_arg) {
        if (!path[0] || strcmp(path, x->set_key) == 0)
            return rl_fail(x->err, RL_EINPUT, "--set %s: %s", x->set_arg, msg);
        return rl_fail(x->err, RL_EINPUT, "--set %s: %s: %s", x->set_arg, path, msg);
    }
    int line = (int)node->start_mark.line + 1, col = (int)node->start_mark.column + 1;
    if (!path[0]) return rl_fail(x->err, RL_EINPUT, "%s at %s:%d:%d", msg, x->file, line, col);
    return rl_fail(x->err, RL_EINPUT, "%s: %s at %s:%d:%d", path, msg, x->file, line, col);
}

// "file:12:3" or "--set a.b=c": recorded as the origin of a key.
static void ctx_where(const cfg_ctx *x, const yaml_node_t *node, char *buf, size_t n) {
    if (x->set_arg)
        snprintf(buf, n, "--set %s", x->set_arg);
    else
        snprintf(buf, n, "%s:%d:%d", x->file, (int)node->start_mark.line + 1,
                 (int)node->start_mark.column + 1);
}

static const char *kind_name(const yaml_node_t *node) {
    switch (node->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a scalar";
    }
}

static const char *scalar_text(const yaml_node_t *node) {
    return (const char *)node->data.scalar.value;
}

static int is_plain(const yaml_node_t *node) {
    return node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ||
           node->data.scalar.style == YAML_ANY_SCALAR_STYLE;
}

// YAML null: an empty plain value ("key:"), ~ or null.
static int is_null(const yaml_node_t *node) {
    if (node->type != YAML_SCALAR_NODE || !is_plain(node)) return 0;
    const char *s = scalar_text(node);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

// What a value looked like, for "got ..." in messages: "hot" (quoted, cut short), a list, nothing.
static void describe_got(const yaml_node_t *node, char *buf, size_t n) {
    if (node->type != YAML_SCALAR_NODE) {
        snprintf(buf, n, "%s", kind_name(node));
        return;
    }
    if (is_null(node)) {
        snprintf(buf, n, "nothing (null)");
        return;
    }
    const char *s = scalar_text(node);
    const char *quoted = is_plain(node) ? "" : "the quoted string ";
    if (strlen(s) > 40)
        snprintf(buf, n, "%s\"%.37s...\"", quoted, s);
    else
        snprintf(buf, n, "%s\"%s\"", quoted, s);
}

// A scalar's text, rejecting embedded NUL bytes (possible through "\0" escapes).
static int scalar_string(const cfg_ctx *x, const char *path, const yaml_node_t *node,
                         const char **out) {
    if (node->type != YAML_SCALAR_NODE)
        return ctx_fail(x, path, node, "expected a string, got %s", kind_name(node));
    if (strlen(scalar_text(node)) != node->data.scalar.length)
        return ctx_fail(x, path, node, "strings may not contain NUL characters");
    *out = is_null(node) ? "" : scalar_text(node);
    return 0;
}

static int parse_int(const cfg_ctx *x, const rl_config_key *k, const char *path,
                     const yaml_node_t *node, int *out) {
    char want[96], got[96];
    cfg_describe_range(k, want, sizeof want);
    describe_got(node, got, sizeof got);
    if (node->type != YAML_SCALAR_NODE || !is_plain(node) || is_null(node))
        return ctx_fail(x, path, node, "expected %s, got %s", want, got);
    const char *s = scalar_text(node);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno == ERANGE || s[0] == ' ' || !cfg_in_range(k, (double)v))
        return ctx_fail(x, path, node, "expected %s, got %s", want, got);
    *out = (int)v;
    return 0;
}

// Number text as YAML writes it: digits, sign, '.', exponent (no hex, inf or nan).
static int number_text(const char *s) {
    if (!*s) return 0;
    for (const char *p = s; *p; p++)
        if (!strchr("0123456789+-.eE", *p)) return 0;
    return 1;
}

static int parse_num(const cfg_ctx *x, const rl_config_key *k, const char *path,
                     const yaml_node_t *node, double *out) {
    char want[96], got[96];
    cfg_describe_range(k, want, sizeof want);
    describe_got(node, got, sizeof got);
    if (node->type != YAML_SCALAR_NODE || !is_plain(node) || is_null(node))
        return ctx_fail(x, path, node, "expected %s, got %s", want, got);
    const char *s = scalar_text(node);
    char *end;
    double v = strtod(s, &end);
    if (!number_text(s) || end == s || *end || !isfinite(v) || !cfg_in_range(k, v))
        return ctx_fail(x, path, node, "expected %s, got %s", want, got);
    *out = v;
    return 0;
}

static int parse_bool(const cfg_ctx *x, const char *path, const yaml_node_t *node, int *out) {
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes",
                                      "YES",  "on",   "On",   "ON"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No",
                                     "NO",    "off",   "Off",   "OFF"};
    char got[96];
    describe_got(node, got, sizeof got);
    if (node->type == YAML_SCALAR_NODE && is_plain(node)) {
        for (int i = 0; i < 9; i++) {
            if (strcmp(scalar_text(node), yes[i]) == 0) return *out = 1, 0;
            if (strcmp(scalar_text(node), no[i]) == 0) return *out = 0, 0;
        }
    }
    return ctx_fail(x, path, node, "expected true or false, got %s", got);
}

static int parse_enum(const cfg_ctx *x, const rl_config_key *k, const char *path,
                      const yaml_node_t *node, int *out) {
    char names[256] = "", got[96];
    for (int i = 0; k->values[i]; i++) {
        size_t len = strlen(names);
        snprintf(names + len, sizeof names - len, "%s%s", i ? "|" : "", k->values[i]);
    }
    describe_got(node, got, sizeof got);
    if (node->type == YAML_SCALAR_NODE && !is_null(node)) {
        int v = enum_index(k, scalar_text(node));
        if (v >= 0) return *out = v, 0;
        const char *near = cfg_closest(scalar_text(node), k->values);
        if (near)
            return ctx_fail(x, path, node, "expected one of %s, got %s; did you mean %s?", names,
                            got, near);
    }
    return ctx_fail(x, path, node, "expected one of %s, got %s", names, got);
}

static yaml_node_t *node_at(const cfg_ctx *x, int id) {
    return yaml_document_get_node(x->doc, id);
}

// The items of a list value, or an error naming what came instead. A null value is the empty list.
static int sequence_items(const cfg_ctx *x, const char *path, const yaml_node_t *node,
                          const char *what, yaml_node_item_t **items, int *n) {
    *items = NULL, *n = 0;
    if (is_null(node)) return 0;
    if (node->type != YAML_SEQUENCE_NODE)
        return ctx_fail(x, path, node, "expected %s, got %s", what, kind_name(node));
    *items = node->data.sequence.items.start;
    *n = (int)(node->data.sequence.items.top - node->data.sequence.items.start);
    return 0;
}

static int parse_strlist(const cfg_ctx *x, const rl_config_key *k, const char *path,
                         const yaml_node_t *node, rl_strlist *out) {
    yaml_node_item_t *items;
    int n;
    RL_TRY(sequence_items(x, path, node, "a list of strings ([a, b])", &items, &n));
    rl_strlist l = {rl_calloc((size_t)n, sizeof(char *)), 0};
    for (int i = 0; i < n; i++) {
        char ipath[PATH_MAX_LEN];
        index_key(ipath, sizeof ipath, path, i);
        const yaml_node_t *item = node_at(x, items[i]);
        const char *s;
        if (scalar_string(x, ipath, item, &s) != 0) goto fail;
        if (is_null(item)) {
            ctx_fail(x, ipath, item, "expected a string, got nothing (null)");
            goto fail;
        }
        if (k->values) {
            if (enum_index(k, s) < 0) {
                parse_enum(x, k, ipath, item, &(int){0}); // the "expected one of" message
                goto fail;
            }
            for (int j = 0; j < i; j++)
                if (strcmp(l.v[j], s) == 0) {
                    ctx_fail(x, ipath, item, "\"%s\" is listed twice", s);
                    goto fail;
                }
        }
        l.v[l.n++] = rl_strdup(s);
    }
    *out = l;
    return 0;
fail:
    strlist_free(&l);
    return -1;
}

static int parse_numlist(const cfg_ctx *x, const rl_config_key *k, const char *path,
                         const yaml_node_t *node, rl_numlist *out) {
    yaml_node_item_t *items;
    int n;
    RL_TRY(sequence_items(x, path, node, "a list of numbers ([1, 2.5])", &items, &n));
    rl_numlist l = {rl_calloc((size_t)n, sizeof(double)), n};
    for (int i = 0; i < n; i++) {
        char ipath[PATH_MAX_LEN];
        index_key(ipath, sizeof ipath, path, i);
        if (parse_num(x, k, ipath, node_at(x, items[i]), &l.v[i]) != 0) {
            free(l.v);
            return -1;
        }
    }
    *out = l;
    return 0;
}

// ---- reward.verifiers ----------------------------------------------------------------------------

static const char *const VERIFIER_RESERVED[] = {"name",    "weight", "plugin",
                                                "command", "gate",   NULL};

// Duplicate keys of one mapping: the earlier pair with the same scalar key, or NULL.
static const yaml_node_t *earlier_duplicate(const cfg_ctx *x, const yaml_node_t *map,
                                            const yaml_node_pair_t *pair) {
    const yaml_node_t *key = node_at(x, pair->key);
    for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < pair; q++) {
        const yaml_node_t *qk = node_at(x, q->key);
        if (qk->type == YAML_SCALAR_NODE && strcmp(scalar_text(qk), scalar_text(key)) == 0)
            return qk;
    }
    return NULL;
}

static int duplicate_fail(const cfg_ctx *x, const char *path, const yaml_node_t *key,
                          const yaml_node_t *first) {
    if (x->set_arg) return ctx_fail(x, path, key, "duplicate key");
    return ctx_fail(x, path, key, "duplicate key (first at %s:%d:%d)", x->file,
                    (int)first->start_mark.line + 1, (int)first->start_mark.column + 1);
}

// Name characters: they end up in the log's verifier column and in messages.
static int valid_verifier_name(const char *s) {
    if (!*s) return 0;
    for (const char *p = s; *p; p++)
        if (!(*p == '_' || *p == '-' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return 0;
    return 1;
}

static int optional_string(const cfg_ctx *x, const char *path, const yaml_node_t *node,
                           char **out) {
    const char *s;
    RL_TRY(scalar_string(x, path, node, &s));
    free(*out);
    *out = is_null(node) ? NULL : rl_strdup(s);
    return 0;
}

static int parse_verifier(const cfg_ctx *x, const rl_config_key *k, const char *path,
                          const yaml_node_t *node, rl_verifier_spec *spec) {
    if (node->type != YAML_MAPPING_NODE)
        return ctx_fail(x, path, node, "expected a mapping {name: ..., weight: ...}, got %s",
                        kind_name(node));
    if (!x->set_arg) {
        spec->line = (int)node->start_mark.line + 1;
        spec->column = (int)node->start_mark.column + 1;
    }
    const yaml_node_t *name_node = NULL, *command_node = NULL;
    int have_weight = 0;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *key = node_at(x, p->key), *val = node_at(x, p->value);
        if (key->type != YAML_SCALAR_NODE)
            return ctx_fail(x, path, key, "expected a key name, got %s", kind_name(key));
        const char *kname = scalar_text(key);
        char kpath[PATH_MAX_LEN];
        join_key(kpath, sizeof kpath, path, ".", kname);
        const yaml_node_t *first = earlier_duplicate(x, node, p);
        if (first) return duplicate_fail(x, kpath, key, first);
        if (strcmp(kname, "name") == 0) {
            RL_TRY(optional_string(x, kpath, val, &spec->name));
            if (!spec->name || !valid_verifier_name(spec->name))
                return ctx_fail(x, kpath, val,
                                "expected a verifier name (letters, digits, '_', '-', '.')");
            name_node = val;
        } else if (strcmp(kname, "weight") == 0) {
            const rl_config_key wkey = {.type = RL_CK_NUM, .min = k->min, .max = k->max};
            RL_TRY(parse_num(x, &wkey, kpath, val, &spec->weight));
            have_weight = 1;
        } else if (strcmp(kname, "plugin") == 0) {
            RL_TRY(optional_string(x, kpath, val, &spec->plugin));
        } else if (strcmp(kname, "command") == 0) {
            RL_TRY(optional_string(x, kpath, val, &spec->command));
            command_node = val;
        } else if (strcmp(kname, "gate") == 0) {
            free(spec->gate);
            spec->gate = NULL;
            if (!is_null(val)) {
                const rl_config_key gkey = {.type = RL_CK_ENUM, .values = k->values};
                int g;
                RL_TRY(parse_enum(x, &gkey, kpath, val, &g));
                spec->gate = rl_strdup(k->values[g]);
            }
        } else {
            // A free option for the verifier itself, kept as text.
            const char *near = cfg_closest(kname, VERIFIER_RESERVED);
            if (val->type != YAML_SCALAR_NODE)
                return ctx_fail(x, kpath, val,
                                "verifier options take a scalar value (text), got %s%s%s%s",
                                kind_name(val), near ? "; did you mean " : "", near ? near : "",
                                near ? "?" : "");
            const char *s;
            RL_TRY(scalar_string(x, kpath, val, &s));
            spec->options =
                rl_realloc(spec->options, (size_t)(spec->n_options + 1) * sizeof *spec->options);
            spec->options[spec->n_options++] = (rl_voption){rl_strdup(kname), rl_strdup(s)};
        }
    }
    if (!name_node) return ctx_fail(x, path, node, "missing required key \"name\"");
    if (!have_weight) return ctx_fail(x, path, node, "missing required key \"weight\"");
    if (spec->plugin && spec->command)
        return ctx_fail(x, path, command_node, "give either plugin or command, not both");
    if (!spec->plugin && !spec->command) {
        int builtin = 0;
        for (int i = 0; RL_BUILTIN_VERIFIERS[i]; i++)
            builtin |= strcmp(spec->name, RL_BUILTIN_VERIFIERS[i]) == 0;
        if (!builtin) {
            char kpath[PATH_MAX_LEN];
            join_key(kpath, sizeof kpath, path, ".", "name");
            const char *near = cfg_closest(spec->name, RL_BUILTIN_VERIFIERS);
            if (near)
                return ctx_fail(x, kpath, name_node,
                                "unknown built-in verifier \"%s\"; did you mean %s?", spec->name,
                                near);
            return ctx_fail(x, kpath, name_node,
                            "unknown built-in verifier \"%s\" (built-ins: accuracy, path_quality, "
                            "format, efficiency; others need plugin or command)",
                            spec->name);
        }
    }
    return 0;
}

static int parse_verifiers(const cfg_ctx *x, const rl_config_key *k, const char *path,
                           const yaml_node_t *node, rl_verifier_list *out) {
    if (node->type != YAML_SEQUENCE_NODE) {
        char got[96];
        describe_got(node, got, sizeof got);
        return ctx_fail(x, path, node,
                        "expected a list of verifiers (- {name: ..., weight: ...}), got %s", got);
    }
    yaml_node_item_t *items = node->data.sequence.items.start;
    int n = (int)(node->data.sequence.items.top - items);
    if (n == 0) return ctx_fail(x, path, node, "expected at least one verifier");
    rl_verifier_list l = {rl_calloc((size_t)n, sizeof(rl_verifier_spec)), 0};
    double total = 0;
    for (int i = 0; i < n; i++) {
        char ipath[PATH_MAX_LEN];
        index_key(ipath, sizeof ipath, path, i);
        const yaml_node_t *item = node_at(x, items[i]);
        rl_verifier_spec *spec = &l.v[l.n++];
        if (parse_verifier(x, k, ipath, item, spec) != 0) goto fail;
        for (int j = 0; j < i; j++)
            if (strcmp(l.v[j].name, spec->name) == 0) {
                ctx_fail(x, ipath, item, "verifier \"%s\" is listed twice (entries %d and %d)",
                         spec->name, j, i);
                goto fail;
            }
        total += spec->weight;
    }
    if (!(total > 0)) {
        ctx_fail(x, path, node, "the verifier weights are all 0");
        goto fail;
    }
    *out = l;
    return 0;
fail:
    verifiers_free(&l);
    return -1;
}

// ---- keys and sections ---------------------------------------------------------------------------

static int apply_node(cfg_ctx *x, int key_index, const char *path, const yaml_node_t *node);

static int unknown_key(const cfg_ctx *x, const char *path, const yaml_node_t *key) {
    char near[256];
    if (suggest_key(path, near, sizeof near))
        return ctx_fail(x, path, key, "unknown key; did you mean %s?", near);
    const char *dot = strrchr(path, '.');
    if (!dot)
        return ctx_fail(x, path, key,
                        "unknown section (sections: run, model, tokenizer, data, "
                        "rollout, reward, algorithm, sft, distill, eval, logging, checkpoint)");
    return ctx_fail(x, path, key, "unknown key in section %.*s (see rlpipe config reference)",
                    (int)(dot - path), path);
}

// The keys of a section (prefix "" = the top level). A null value is an empty section.
static int apply_mapping(cfg_ctx *x, const char *prefix, const yaml_node_t *node) {
    if (is_null(node)) return 0;
    if (node->type != YAML_MAPPING_NODE) {
        if (!prefix[0])
            return ctx_fail(x, "", node,
                            "expected a mapping of sections (run:, model:, ...), got %s",
                            kind_name(node));
        return ctx_fail(x, prefix, node, "expected a mapping of keys, got %s", kind_name(node));
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *key = node_at(x, p->key);
        if (key->type != YAML_SCALAR_NODE)
            return ctx_fail(x, prefix, key, "expected a key name, got %s", kind_name(key));
        char path[PATH_MAX_LEN];
        int fits = join_key(path, sizeof path, prefix, prefix[0] ? "." : "", scalar_text(key));
        int k = fits ? rl_config_find_key(path) : -1;
        if (k < 0) return unknown_key(x, path, key);
        const yaml_node_t *first = earlier_duplicate(x, node, p);
        if (first) return duplicate_fail(x, path, key, first);
        RL_TRY(apply_node(x, k, path, node_at(x, p->value)));
    }
    return 0;
}

// One key's value (or a whole section), checked, then stored over the old value.
static int apply_node(cfg_ctx *x, int key_index, const char *path, const yaml_node_t *node) {
    const rl_config_key *k = &rl_config_keys(NULL)[key_index];
    if (k->type == RL_CK_SECTION) return apply_mapping(x, path, node);
    void *f = cfg_field(x->c, k);
    switch (k->type) {
    case RL_CK_INT: {
        int v = 0;
        RL_TRY(parse_int(x, k, path, node, &v));
        *(int *)f = v;
        break;
    }
    case RL_CK_NUM: {
        double v = 0;
        RL_TRY(parse_num(x, k, path, node, &v));
        *(double *)f = v;
        break;
    }
    case RL_CK_BOOL: {
        int v = 0;
        RL_TRY(parse_bool(x, path, node, &v));
        *(int *)f = v;
        break;
    }
    case RL_CK_ENUM: {
        int v = 0;
        RL_TRY(parse_enum(x, k, path, node, &v));
        *(int *)f = v;
        break;
    }
    case RL_CK_STR: {
        const char *s;
        RL_TRY(scalar_string(x, path, node, &s));
        char *copy = rl_strdup(s);
        value_free(x->c, k);
        *(char **)f = copy;
        break;
    }
    case RL_CK_STRLIST: {
        rl_strlist l;
        RL_TRY(parse_strlist(x, k, path, node, &l));
        value_free(x->c, k);
        *(rl_strlist *)f = l;
        break;
    }
    case RL_CK_NUMLIST: {
        rl_numlist l;
        RL_TRY(parse_numlist(x, k, path, node, &l));
        value_free(x->c, k);
        *(rl_numlist *)f = l;
        break;
    }
    case RL_CK_VERIFIERS: {
        rl_verifier_list l;
        RL_TRY(parse_verifiers(x, k, path, node, &l));
        value_free(x->c, k);
        *(rl_verifier_list *)f = l;
        break;
    }
    default:
        return rl_fail(x->err, RL_EINTERNAL, "%s: unhandled key type %d", path, k->type);
    }
    char where[PATH_MAX_LEN + 64];
    ctx_where(x, node, where, sizeof where);
    set_origin(x->c, k, where);
    return 0;
}

// ---- YAML text -----------------------------------------------------------------------------------

// line:col (1-based) of a byte offset, for libyaml reader errors, which give only the offset.
static void offset_position(const char *text, size_t len, size_t offset, int *line, int *col) {
    *line = 1, *col = 1;
    for (size_t i = 0; i < offset && i < len; i++) {
        if (text[i] == '\n')
            ++*line, *col = 1;
        else if (((unsigned char)text[i] & 0xC0) != 0x80)
            ++*col;
    }
}

static int syntax_fail(const yaml_parser_t *p, const char *text, size_t len, const char *file,
                       const char *set_arg, rl_err *err) {
    if (p->error == YAML_MEMORY_ERROR)
        return rl_fail(err, RL_EINTERNAL, "out of memory parsing YAML");
    const char *problem = p->problem ? p->problem : "malformed YAML";
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
    if (p->error == YAML_READER_ERROR) offset_position(text, len, p->problem_offset, &line, &col);
    // libyaml's context says what it was reading, and where that began: an unclosed quote or
    // bracket is reported at the end of the file, its context mark is where it opened.
    char context[160] = "";
    int cline = (int)p->context_mark.line + 1, ccol = (int)p->context_mark.column + 1;
    if (p->context && !set_arg && (cline != line || ccol != col))
        snprintf(context, sizeof context, " (%s at line %d column %d)", p->context, cline, ccol);
    else if (p->context)
        snprintf(context, sizeof context, " (%s)", p->context);
    size_t at = p->problem_mark.index;
    const char *hint = p->error == YAML_SCANNER_ERROR && at < len && text[at] == '\t'
                           ? "; it is a tab, and YAML indents with spaces"
                           : "";
    if (set_arg)
        return rl_fail(err, RL_EINPUT, "--set %s: invalid YAML value: %s%s%s", set_arg, problem,
                       context, hint);
    return rl_fail(err, RL_EINPUT, "YAML syntax error: %s%s%s at %s:%d:%d", problem, context, hint,
                   file, line, col);
}

// Refuses nesting deeper than MAX_CONFIG_DEPTH, walking libyaml's events before any document
// is built: its scanner is quadratic in the depth (40,000 levels of '[' took 10 s) and a config
// is never more than a few levels deep. Syntax errors are left to load_document, which reports
// them with its own wording; the walk stops at the first one.
static int check_depth(const char *text, size_t len, const char *file, const char *set_arg,
                       rl_err *err) {
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return rl_fail(err, RL_EINTERNAL, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int depth = 0, rc = 0, done = 0;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) break;
        if (ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_SEQUENCE_START_EVENT) {
            if (++depth > MAX_CONFIG_DEPTH) {
                int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
                if (set_arg)
                    rc = rl_fail(err, RL_EINPUT,
                                 "--set %.*s: the value is YAML nested more than %d levels deep",
                                 (int)strcspn(set_arg, "="), set_arg, MAX_CONFIG_DEPTH);
                else
                    rc = rl_fail(err, RL_EINPUT, "%s:%d:%d: YAML nested more than %d levels deep",
                                 file, line, col, MAX_CONFIG_DEPTH);
            }
        } else if (ev.type == YAML_MAPPING_END_EVENT || ev.type == YAML_SEQUENCE_END_EVENT) {
            depth--;
        } else if (ev.type == YAML_STREAM_END_EVENT) {
            done = 1;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

// Parses one YAML document from text into *doc. *has_doc = 0 for an empty stream.
static int load_document(const char *text, size_t len, const char *file, const char *set_arg,
                         yaml_document_t *doc, rl_err *err) {
    RL_TRY(check_depth(text, len, file, set_arg, err));
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return rl_fail(err, RL_EINTERNAL, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, doc)) {
        syntax_fail(&parser, text, len, file, set_arg, err);
        yaml_parser_delete(&parser);
        return -1;
    }
    // A config is one document: a second one is almost certainly a pasting accident.
    yaml_document_t extra;
    if (!yaml_parser_load(&parser, &extra)) {
        syntax_fail(&parser, text, len, file, set_arg, err);
        yaml_document_delete(doc);
        yaml_parser_delete(&parser);
        return -1;
    }
    yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
    int second = extra_root != NULL;
    int line = extra_root ? (int)extra.start_mark.line + 1 : 0;
    int col = extra_root ? (int)extra.start_mark.column + 1 : 0;
    yaml_document_delete(&extra);
    yaml_parser_delete(&parser);
    if (second) {
        yaml_document_delete(doc);
        if (set_arg)
            return rl_fail(err, RL_EINPUT, "--set %s: expected one YAML value, got several",
                           set_arg);
        return rl_fail(err, RL_EINPUT,
                       "expected one YAML document, a second one starts at %s:%d:%d", file, line,
                       col);
    }
    return 0;
}

static int apply_text(rl_config *c, const char *text, size_t len, const char *name, rl_err *err) {
    if (memchr(text, '\0', len))
        return rl_fail(err, RL_EINPUT, "%s: not a text file (contains NUL bytes)", name);
    yaml_document_t doc;
    RL_TRY(load_document(text, len, name, NULL, &doc, err));
    cfg_ctx x = {.c = c, .doc = &doc, .file = name, .err = err};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int rc = root ? apply_mapping(&x, "", root) : 0; // an empty file is all defaults
    yaml_document_delete(&doc);
    return rc;
}

int rl_config_load_text(rl_config *c, const char *text, size_t len, const char *name, rl_err *err) {
    rl_config_defaults(c);
    if (len > MAX_CONFIG_BYTES)
        return rl_fail(err, RL_EINPUT, "%s: larger than %u bytes", name, MAX_CONFIG_BYTES);
    c->source_path = rl_strdup(name);
    c->source_text = rl_malloc(len + 1);
    memcpy(c->source_text, text, len);
    c->source_text[len] = '\0';
    return apply_text(c, text, len, name, err);
}

int rl_config_load(rl_config *c, const char *path, rl_err *err) {
    rl_config_defaults(c);
    if (!path) return 0;
    char *text = NULL;
    size_t len = 0;
    RL_TRY(rl_read_file(path, MAX_CONFIG_BYTES, &text, &len, err));
    c->source_path = rl_strdup(path);
    c->source_text = text; // NUL-terminated by rl_read_file
    return apply_text(c, c->source_text, len, path, err);
}

// ---- --set key=value -----------------------------------------------------------------------------

int rl_config_set(rl_config *c, const char *assignment, rl_err *err) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return rl_fail(err, RL_EINPUT,
                       "--set %s: expected key=value (e.g. rollout.temperature=0.7)", assignment);
    char key[PATH_MAX_LEN];
    size_t klen = (size_t)(eq - assignment);
    if (klen >= sizeof key)
        return rl_fail(err, RL_EINPUT, "--set %.40s...: unknown key", assignment);
    memcpy(key, assignment, klen);
    key[klen] = '\0';
    int k = rl_config_find_key(key);
    if (k < 0) {
        char near[256];
        if (suggest_key(key, near, sizeof near))
            return rl_fail(err, RL_EINPUT, "--set %s: unknown key; did you mean %s?", assignment,
                           near);
        return rl_fail(err, RL_EINPUT, "--set %s: unknown key (see rlpipe config reference)",
                       assignment);
    }
    const rl_config_key *ck = &rl_config_keys(NULL)[k];
    const char *value = eq + 1;
    yaml_document_t doc;
    int literal = ck->type == RL_CK_STR && value[0] != '"' && value[0] != '\'';
    if (literal) {
        // String keys take the text as it is: prompts full of ':' and '{' need no YAML quoting.
        if (!yaml_document_initialize(&doc, NULL, NULL, NULL, 1, 1))
            return rl_fail(err, RL_EINTERNAL, "out of memory building a YAML value");
        // libyaml refuses text that is not UTF-8 here (the file path checks it while parsing).
        if (!yaml_document_add_scalar(&doc, NULL, (yaml_char_t *)value, (int)strlen(value),
                                      YAML_SINGLE_QUOTED_SCALAR_STYLE)) {
            yaml_document_delete(&doc);
            return rl_fail(err, RL_EINPUT, "--set %s: the value is not valid UTF-8", assignment);
        }
    } else {
        RL_TRY(load_document(value, strlen(value), NULL, assignment, &doc, err));
        if (!yaml_document_get_root_node(&doc) &&
            !yaml_document_add_scalar(&doc, NULL, (yaml_char_t *)"", 0, YAML_PLAIN_SCALAR_STYLE)) {
            yaml_document_delete(&doc);
            return rl_fail(err, RL_EINTERNAL, "out of memory building a YAML value");
        }
    }
    cfg_ctx x = {.c = c, .doc = &doc, .set_arg = assignment, .set_key = key, .err = err};
    int rc = apply_node(&x, k, key, yaml_document_get_root_node(&doc));
    yaml_document_delete(&doc);
    return rc;
}

int rl_config_from_args(rl_config *c, const char *path, char *const *sets, int n_sets,
                        rl_err *err) {
    RL_TRY(rl_config_load(c, path, err));
    for (int i = 0; i < n_sets; i++) RL_TRY(rl_config_set(c, sets[i], err));
    return rl_config_finish(c, err);
}

// ---- equality ------------------------------------------------------------------------------------

static int str_eq(const char *a, const char *b) {
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

static int spec_eq(const rl_verifier_spec *a, const rl_verifier_spec *b) {
    if (!str_eq(a->name, b->name) || a->weight != b->weight || !str_eq(a->plugin, b->plugin) ||
        !str_eq(a->command, b->command) || !str_eq(a->gate, b->gate) ||
        a->n_options != b->n_options)
        return 0;
    for (int i = 0; i < a->n_options; i++)
        if (!str_eq(a->options[i].key, b->options[i].key) ||
            !str_eq(a->options[i].value, b->options[i].value))
            return 0;
    return 1;
}

static int value_eq(const rl_config *a, const rl_config *b, const rl_config_key *k) {
    const void *fa = cfg_field(a, k), *fb = cfg_field(b, k);
    switch (k->type) {
    case RL_CK_INT:
    case RL_CK_BOOL:
    case RL_CK_ENUM:
        return *(const int *)fa == *(const int *)fb;
    case RL_CK_NUM:
        return *(const double *)fa == *(const double *)fb;
    case RL_CK_STR:
        return str_eq(*(char *const *)fa, *(char *const *)fb);
    case RL_CK_STRLIST: {
        const rl_strlist *la = fa, *lb = fb;
        if (la->n != lb->n) return 0;
        for (int i = 0; i < la->n; i++)
            if (!str_eq(la->v[i], lb->v[i])) return 0;
        return 1;
    }
    case RL_CK_NUMLIST: {
        const rl_numlist *la = fa, *lb = fb;
        if (la->n != lb->n) return 0;
        for (int i = 0; i < la->n; i++)
            if (la->v[i] != lb->v[i]) return 0;
        return 1;
    }
    case RL_CK_VERIFIERS: {
        const rl_verifier_list *la = fa, *lb = fb;
        if (la->n != lb->n) return 0;
        for (int i = 0; i < la->n; i++)
            if (!spec_eq(&la->v[i], &lb->v[i])) return 0;
        return 1;
    }
    default:
        return 1;
    }
}

const char *rl_config_diff(const rl_config *a, const rl_config *b) {
    int n;
    const rl_config_key *keys = rl_config_keys(&n);
    for (int i = 0; i < n; i++)
        if (keys[i].type != RL_CK_SECTION && !value_eq(a, b, &keys[i])) return keys[i].path;
    return NULL;
}
