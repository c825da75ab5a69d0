// config_emit: the effective config as YAML (libyaml's emitter) and the Markdown key reference,
// both generated from the schema table. See config.h.
#define _POSIX_C_SOURCE 200809L
#include "cli/config.h"
#include "cli/config_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

// ---- shared value formatting ---------------------------------------------------------------------

static const char *parent_end(const char *path) {
    return strrchr(path, '.');
}

// 1 if key `path` sits directly inside section `prefix` ("" = the top level).
static int is_child(const char *path, const char *prefix) {
    const char *dot = parent_end(path);
    if (!prefix[0]) return dot == NULL;
    size_t n = strlen(prefix);
    return dot && (size_t)(dot - path) == n && strncmp(path, prefix, n) == 0;
}

static int looks_like_number(const char *s) {
    if (!*s) return 0;
    for (const char *p = s; *p; p++)
        if (!strchr("0123456789+-.eE", *p)) return 0;
    char *end;
    strtod(s, &end);
    return *end == '\0';
}

// Strings that a YAML reader would take for something else, or that need escapes, are written
// double-quoted; the rest plain where YAML allows it.
static int needs_double_quotes(const char *s) {
    static const char *const special[] = {"~",    "null",  "Null",  "NULL",  "true", "True",
                                          "TRUE", "false", "False", "FALSE", "yes",  "Yes",
                                          "YES",  "no",    "No",    "NO",    "on",   "On",
                                          "ON",   "off",   "Off",   "OFF",   NULL};
    if (!*s || looks_like_number(s)) return 1;
    for (int i = 0; special[i]; i++)
        if (strcmp(s, special[i]) == 0) return 1;
    size_t n = strlen(s);
    if (s[0] == ' ' || s[n - 1] == ' ') return 1;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) return 1;
    return 0;
}

// ---- YAML output ---------------------------------------------------------------------------------

typedef struct text_buf {
    char *s;
    size_t len, cap;
} text_buf;

static int write_to_buf(void *data, unsigned char *bytes, size_t size) {
    text_buf *b = data;
    if (b->len + size + 1 > b->cap) {
        while (b->len + size + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 4096;
        b->s = rl_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, bytes, size);
    b->len += size;
    b->s[b->len] = '\0';
    return 1;
}

typedef struct emitter {
    yaml_emitter_t e;
    int failed;
} emitter;

static void emit(emitter *em, yaml_event_t *ev, int init_ok) {
    if (em->failed) {
        if (init_ok) yaml_event_delete(ev);
        return;
    }
    if (!init_ok || !yaml_emitter_emit(&em->e, ev)) em->failed = 1; // emit consumes the event
}

static void emit_scalar(emitter *em, const char *s, yaml_scalar_style_t style) {
    yaml_event_t ev;
    int ok = yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
                                          style);
    emit(em, &ev, ok);
}

static void emit_string(emitter *em, const char *s) {
    emit_scalar(em, s,
                needs_double_quotes(s) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
}

static void emit_plain(emitter *em, const char *s) {
    emit_scalar(em, s, YAML_PLAIN_SCALAR_STYLE);
}

static void emit_double(emitter *em, double v) {
    char buf[40];
    cfg_format_double(v, buf, sizeof buf);
    emit_plain(em, buf);
}

static void mapping_start(emitter *em, yaml_mapping_style_t style) {
    yaml_event_t ev;
    emit(em, &ev, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, style));
}

static void mapping_end(emitter *em) {
    yaml_event_t ev;
    emit(em, &ev, yaml_mapping_end_event_initialize(&ev));
}

static void sequence_start(emitter *em, yaml_sequence_style_t style) {
    yaml_event_t ev;
    emit(em, &ev, yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, style));
}

static void sequence_end(emitter *em) {
    yaml_event_t ev;
    emit(em, &ev, yaml_sequence_end_event_initialize(&ev));
}

static void emit_verifier(emitter *em, const rl_verifier_spec *s) {
    mapping_start(em, YAML_FLOW_MAPPING_STYLE);
    emit_plain(em, "name");
    emit_string(em, s->name ? s->name : "");
    emit_plain(em, "weight");
    emit_double(em, s->weight);
    const char *keys[3] = {"plugin", "command", "gate"};
    const char *vals[3] = {s->plugin, s->command, s->gate};
    for (int i = 0; i < 3; i++)
        if (vals[i]) {
            emit_plain(em, keys[i]);
            emit_string(em, vals[i]);
        }
    for (int i = 0; i < s->n_options; i++) {
        emit_string(em, s->options[i].key);
        emit_string(em, s->options[i].value);
    }
    mapping_end(em);
}

static void emit_value(emitter *em, const rl_config *c, const rl_config_key *k) {
    const void *f = cfg_field(c, k);
    char buf[32];
    switch (k->type) {
    case RL_CK_INT:
        snprintf(buf, sizeof buf, "%d", *(const int *)f);
        emit_plain(em, buf);
        break;
    case RL_CK_NUM:
        emit_double(em, *(const double *)f);
        break;
    case RL_CK_BOOL:
        emit_plain(em, *(const int *)f ? "true" : "false");
        break;
    case RL_CK_ENUM: {
        const char *name = rl_config_enum_name(k->path, *(const int *)f);
        emit_plain(em, name ? name : "?");
        if (!name) em->failed = 1;
        break;
    }
    case RL_CK_STR:
        emit_string(em, *(char *const *)f);
        break;
    case RL_CK_STRLIST: {
        const rl_strlist *l = f;
        sequence_start(em, YAML_FLOW_SEQUENCE_STYLE);
        for (int i = 0; i < l->n; i++) emit_string(em, l->v[i]);
        sequence_end(em);
        break;
    }
    case RL_CK_NUMLIST: {
        const rl_numlist *l = f;
        sequence_start(em, YAML_FLOW_SEQUENCE_STYLE);
        for (int i = 0; i < l->n; i++) emit_double(em, l->v[i]);
        sequence_end(em);
        break;
    }
    case RL_CK_VERIFIERS: {
        const rl_verifier_list *l = f;
        sequence_start(em, YAML_BLOCK_SEQUENCE_STYLE);
        for (int i = 0; i < l->n; i++) emit_verifier(em, &l->v[i]);
        sequence_end(em);
        break;
    }
    default:
        em->failed = 1;
    }
}

// The keys directly inside `prefix`, in table order, subsections as nested mappings.
static void emit_section(emitter *em, const rl_config *c, const char *prefix) {
    int n;
    const rl_config_key *keys = rl_config_keys(&n);
    mapping_start(em, YAML_BLOCK_MAPPING_STYLE);
    for (int i = 0; i < n; i++) {
        if (!is_child(keys[i].path, prefix)) continue;
        const char *dot = parent_end(keys[i].path);
        emit_plain(em, dot ? dot + 1 : keys[i].path);
        if (keys[i].type == RL_CK_SECTION)
            emit_section(em, c, keys[i].path);
        else
            emit_value(em, c, &keys[i]);
    }
    mapping_end(em);
}

int rl_config_to_yaml(const rl_config *c, char **out_text, rl_err *err) {
    *out_text = NULL;
    emitter em = {0};
    text_buf buf = {0};
    if (!yaml_emitter_initialize(&em.e))
        return rl_fail(err, RL_EINTERNAL, "cannot initialise the YAML emitter");
    yaml_emitter_set_output(&em.e, write_to_buf, &buf);
    yaml_emitter_set_unicode(&em.e, 1);
    yaml_emitter_set_width(&em.e, -1); // never fold long strings
    yaml_emitter_set_indent(&em.e, 2);
    yaml_event_t ev;
    emit(&em, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    emit(&em, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
    emit_section(&em, c, "");
    emit(&em, &ev, yaml_document_end_event_initialize(&ev, 1));
    emit(&em, &ev, yaml_stream_end_event_initialize(&ev));
    if (!em.failed && !yaml_emitter_flush(&em.e)) em.failed = 1;
    const char *problem = em.e.problem;
    yaml_emitter_delete(&em.e);
    if (em.failed) {
        free(buf.s);
        return rl_fail(err, RL_EINTERNAL, "cannot write the config as YAML: %s",
                       problem ? problem : "bad value");
    }
    *out_text = buf.s ? buf.s : rl_strdup("");
    return 0;
}

// ---- the Markdown reference ----------------------------------------------------------------------

static const char *INTRO =
    "# Run configuration reference\n"
    "\n"
    "A run is described by one YAML file: `configs/tiny.yaml` is the CPU default and\n"
    "`configs/examples/` holds larger set-ups. Every key has a default, so a file only needs the\n"
    "keys it changes. Keys are grouped in sections (nested mappings in the file, dotted paths on\n"
    "the command line):\n"
    "\n"
    "```sh\n"
    "rlpipe config check configs/tiny.yaml                         # validate, one-line summary\n"
    "rlpipe config show configs/tiny.yaml --set rollout.top_p=0.9  # every key, defaults filled "
    "in\n"
    "rlpipe config reference                                       # this file\n"
    "```\n"
    "\n"
    "Loading is strict. An unknown key (with a \"did you mean\" suggestion), a duplicate key, a "
    "value\n"
    "of the wrong type or outside its range, a list where a mapping belongs, or a YAML syntax "
    "error\n"
    "stops with one line that names the key and `file:line:column`, for example\n"
    "`rollout.temperature: expected a number in [0, 10], got \"hot\" at configs/x.yaml:12:16`.\n"
    "The rules that involve several keys are listed at the end. Commands that start a run check "
    "the\n"
    "whole config before they create the run directory, so a bad config never leaves files "
    "behind.\n"
    "\n"
    "Values: integers and numbers are plain YAML numbers (a quoted `\"5\"` is a string and is\n"
    "rejected); booleans are `true`/`false` (`yes`/`no`, `on`/`off` also work); for strings an "
    "empty\n"
    "value or `null` means unset; lists are `[a, b]` or one `- item` per line.\n"
    "`--set key=value` takes the same values: `--set rollout.stop=[\"</s>\",\"\\n\\n\"]`; a string "
    "key\n"
    "takes the text after `=` literally unless it starts with a quote.\n"
    "\n"
    "This file is generated from the schema table in `cli/config_schema.c` by\n"
    "`rlpipe config reference > configs/README.md`; a test fails when it is out of date.\n";

static const char *VERIFIER_DOC =
    "Each entry of `reward.verifiers` is a mapping:\n"
    "\n"
    "| key | meaning |\n"
    "|---|---|\n"
    "| `name` | required; a built-in (`accuracy`, `path_quality`, `format`, `efficiency`) or the "
    "plugin's name (letters, digits, `_`, `-`, `.`; unique in the list) |\n"
    "| `weight` | required; a number >= 0, the weight of the score in the reward (not all 0) |\n"
    "| `plugin` | path of a shared-object plugin exporting `rlpipe_verifier` |\n"
    "| `command` | an external program speaking the line protocol (run through `/bin/sh -c`); "
    "not together with `plugin` |\n"
    "| `gate` | `accuracy`: the score counts only in proportion to accuracy; `none`; absent = the "
    "verifier's default |\n"
    "| any other key | a free option handed to the verifier as text (scalar values only) |\n"
    "\n"
    "```yaml\n"
    "reward:\n"
    "  verifiers:\n"
    "    - {name: accuracy, weight: 0.4}\n"
    "    - {name: path_quality, weight: 0.3}\n"
    "    - {name: format, weight: 0.2, gate: accuracy}\n"
    "    - {name: my_judge, weight: 0.1, command: \"python3 judge.py\", timeout_s: 5}\n"
    "```\n";

static const char *RULES_DOC =
    "## Rules across keys\n"
    "\n"
    "Checked after loading (`rlpipe config check`); each message names the key at fault.\n"
    "\n"
    "- `run.name` uses only letters, digits, `.`, `_`, `-` (it names a directory).\n"
    "- `model.num_attention_heads` is a multiple of `model.num_key_value_heads`; "
    "`model.hidden_size`\n"
    "  is a multiple of `model.num_attention_heads` and the head size is even;\n"
    "  `model.max_window_layers` <= `model.num_hidden_layers` when `model.use_sliding_window`.\n"
    "- From scratch (`model.path` empty): `rollout.max_new_tokens` and `eval.max_new_tokens` are\n"
    "  below `model.max_position_embeddings`.\n"
    "- `tokenizer.kind: hf` needs `tokenizer.path` or `model.path` (then `tokenizer.path` = "
    "`model.path`).\n"
    "- `data.source: jsonl` needs `data.train_path`; `data.source: tasks` needs at least one of\n"
    "  `data.tasks`; `data.task_weights` is empty or has one weight per task, not all 0;\n"
    "  `data.prompt_template` contains `{problem}`; `data.arith.min_ops` <= `data.arith.max_ops`.\n"
    "- `rollout.stop` has no empty strings; `rollout.group_size` >= 2 unless\n"
    "  `algorithm.advantage: batch_std`.\n"
    "- `reward.verifiers`: at least one entry, unique names, weights >= 0 and not all 0.\n"
    "- `algorithm.dual_clip` is 0 or > 1; `algorithm.warmup_steps` <= `algorithm.steps` (when\n"
    "  steps > 0); with `algorithm.overlong: penalty`, `algorithm.overlong_buffer` <\n"
    "  `rollout.max_new_tokens`; the samples of a step (`rollout.prompts_per_step` x\n"
    "  `rollout.group_size`) split evenly into `algorithm.minibatches`.\n"
    "- With `sft.enabled`: `sft.steps` or `sft.time_budget_s` is non-zero; `sft.warmup_steps` <=\n"
    "  `sft.steps` (when steps > 0); `sft.source: jsonl` needs `sft.path`.\n"
    "- `distill.tau_min` <= `distill.tau_max`; `distill.warmup_steps` <= `distill.steps`;\n"
    "  `distill.cache_topk` > 0 needs fixed completions (not `distill.source: on_policy`).\n"
    "\n"
    "Derived defaults, filled in after the checks: `run.out_dir` = `runs/<run.name>`, `logging.db` "
    "=\n"
    "`<run.out_dir>/rollouts.db`, `checkpoint.dir` = `<run.out_dir>/checkpoints`,\n"
    "`distill.cache_path` = `<run.out_dir>/teacher_topk.bin`.\n";

static const char *type_name(int type) {
    switch (type) {
    case RL_CK_INT:
        return "int";
    case RL_CK_NUM:
        return "number";
    case RL_CK_BOOL:
        return "bool";
    case RL_CK_STR:
        return "string";
    case RL_CK_ENUM:
        return "enum";
    case RL_CK_STRLIST:
        return "list of strings";
    case RL_CK_NUMLIST:
        return "list of numbers";
    case RL_CK_VERIFIERS:
        return "list of verifiers";
    default:
        return "section";
    }
}

// Table-cell text: '|' would end the cell and '<' could start HTML.
static void put_cell(FILE *out, const char *s) {
    for (const char *p = s; *p; p++) {
        if (*p == '|' || *p == '<') fputc('\\', out);
        fputc(*p, out);
    }
}

// A string as YAML would read it back: plain, or double-quoted with escapes.
static void put_yaml_string(FILE *out, const char *s) {
    if (!needs_double_quotes(s) && !strpbrk(s, "\"'{}[],#:&*!|>%@`")) {
        put_cell(out, s);
        return;
    }
    fputc('"', out);
    for (const char *p = s; *p; p++) {
        if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\t')
            fputs("\\t", out);
        else if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p == '|')
            fputs("\\|", out);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void put_default(FILE *out, const rl_config *d, const rl_config_key *k) {
    const void *f = cfg_field(d, k);
    char buf[40];
    switch (k->type) {
    case RL_CK_INT:
        fprintf(out, "`%d`", *(const int *)f);
        break;
    case RL_CK_NUM:
        cfg_format_double(*(const double *)f, buf, sizeof buf);
        fprintf(out, "`%s`", buf);
        break;
    case RL_CK_BOOL:
        fputs(*(const int *)f ? "`true`" : "`false`", out);
        break;
    case RL_CK_ENUM:
        fprintf(out, "`%s`", rl_config_enum_name(k->path, *(const int *)f));
        break;
    case RL_CK_STR:
        fputc('`', out);
        put_yaml_string(out, *(char *const *)f);
        fputc('`', out);
        break;
    case RL_CK_STRLIST: {
        const rl_strlist *l = f;
        fputs("`[", out);
        for (int i = 0; i < l->n; i++) {
            if (i) fputs(", ", out);
            put_yaml_string(out, l->v[i]);
        }
        fputs("]`", out);
        break;
    }
    case RL_CK_NUMLIST: {
        const rl_numlist *l = f;
        fputs("`[", out);
        for (int i = 0; i < l->n; i++) {
            cfg_format_double(l->v[i], buf, sizeof buf);
            fprintf(out, "%s%s", i ? ", " : "", buf);
        }
        fputs("]`", out);
        break;
    }
    case RL_CK_VERIFIERS: {
        const rl_verifier_list *l = f;
        for (int i = 0; i < l->n; i++) {
            cfg_format_double(l->v[i].weight, buf, sizeof buf);
            fprintf(out, "%s`%s` %s", i ? ", " : "", l->v[i].name, buf);
        }
        break;
    }
    default:
        break;
    }
}

static void put_allowed(FILE *out, const rl_config_key *k) {
    char buf[96];
    switch (k->type) {
    case RL_CK_INT:
    case RL_CK_NUM:
    case RL_CK_NUMLIST:
        cfg_describe_range(k, buf, sizeof buf);
        // "an integer in [1, 64]" -> "[1, 64]"; "a number >= 0" -> ">= 0"
        {
            const char *p = strchr(buf, ' ');
            p = p ? strchr(p + 1, ' ') : NULL;
            p = p ? p + 1 : buf;
            if (strncmp(p, "in ", 3) == 0) p += 3;
            if (k->type == RL_CK_NUMLIST) fputs("items ", out);
            put_cell(out, p);
        }
        break;
    case RL_CK_BOOL:
        fputs("`true`, `false`", out);
        break;
    case RL_CK_ENUM:
    case RL_CK_STRLIST:
        if (!k->values) break;
        if (k->type == RL_CK_STRLIST) fputs("items from ", out);
        for (int i = 0; k->values[i]; i++) fprintf(out, "%s`%s`", i ? ", " : "", k->values[i]);
        break;
    case RL_CK_VERIFIERS:
        fputs("see below", out);
        break;
    default:
        break;
    }
}

int rl_config_reference_markdown(FILE *out) {
    rl_config d;
    rl_config_defaults(&d);
    int n;
    const rl_config_key *keys = rl_config_keys(&n);
    fputs(INTRO, out);
    for (int s = 0; s < n; s++) {
        if (keys[s].type != RL_CK_SECTION) continue;
        int top = strchr(keys[s].path, '.') == NULL;
        fprintf(out, "\n%s `%s`\n\n", top ? "##" : "###", keys[s].path);
        put_cell(out, keys[s].doc);
        fputs(".\n\n| key | type | default | allowed | description |\n|---|---|---|---|---|\n",
              out);
        int has_verifiers = 0;
        for (int i = 0; i < n; i++) {
            const rl_config_key *k = &keys[i];
            if (k->type == RL_CK_SECTION || !is_child(k->path, keys[s].path)) continue;
            fprintf(out, "| `%s` | %s | ", k->path, type_name(k->type));
            put_default(out, &d, k);
            fputs(" | ", out);
            put_allowed(out, k);
            fputs(" | ", out);
            put_cell(out, k->doc);
            fputs(" |\n", out);
            has_verifiers |= k->type == RL_CK_VERIFIERS;
        }
        if (has_verifiers) {
            fputc('\n', out);
            fputs(VERIFIER_DOC, out);
        }
    }
    fputc('\n', out);
    fputs(RULES_DOC, out);
    rl_config_free(&d);
    return ferror(out) ? -1 : 0;
}
