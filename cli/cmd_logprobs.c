// rlpipe logprobs: score token sequences under a model. JSON lines {"ids": [...]} in,
// {"logprobs": [...]} out (the natural log-probability of each token after the first), one output
// line per input line, in order. Lines are scored in batches (right-padded to the longest
// sequence of the batch); a sequence's values do not depend on what it is batched with.
#define _POSIX_C_SOURCE 200809L
#include "cli/cli.h"
#include "kernels/backend.h"
#include "policy/checkpoint.h"
#include "policy/model.h"
#include "policy/tokenizer.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: rlpipe logprobs --model DIR [--batch N] [--max-tokens N] [--text] [--echo]\n"
    "                       [--device cpu|cuda]\n"
    "\n"
    "Reads JSON lines {\"ids\": [...]} on stdin and writes {\"logprobs\": [...]} on stdout: for\n"
    "each token after the first, log p(ids[t] | ids[0..t-1]) under the model in DIR (natural\n"
    "log, temperature 1), so len(ids) - 1 values; 0 or 1 ids give []. One output line per input\n"
    "line, in order. Positions start at 0 with the first id: include any BOS yourself.\n"
    "\n"
    "options:\n"
    "  --model DIR       Hugging Face-style model directory (config.json + safetensors), e.g.\n"
    "                    written by `rlpipe model init` (required)\n"
    "  --batch N         sequences per forward pass (default 16); results do not depend on it\n"
    "  --max-tokens N    also close a batch before it would exceed N padded tokens (default "
    "8192);\n"
    "                    a single sequence longer than N is refused (see below)\n"
    "  --text            read {\"text\": \"...\"} instead and tokenize it with the model's\n"
    "                    tokenizer (no BOS/EOS added); the output then includes \"ids\"\n"
    "  --echo            include the input \"ids\" in each output line\n"
    "  --device NAME     cpu (default) or cuda\n"
    "  -h, --help        this help\n"
    "\n"
    "A line that cannot be scored (bad JSON, no \"ids\" array, an id outside [0, vocab_size),\n"
    "more ids than the model's max_position_embeddings or than --max-tokens) produces\n"
    "{\"error\": \"line N: ...\"} in its place and processing continues. Sequences are never\n"
    "truncated: positions past max_position_embeddings are outside what the model was trained\n"
    "on, and attention cost grows with the square of the length.\n"
    "Exit codes: 0 every line ok; 2 bad usage, unloadable model, or at least one bad line;\n"
    "1 internal failure.\n";

typedef struct lp_opts {
    const char *model, *device;
    int batch, max_tokens, text, echo;
    int max_pos; // the model's max_position_embeddings, once it is loaded
} lp_opts;

// One input line waiting for its batch to be scored.
typedef struct lp_item {
    size_t line;
    char *error;  // malloc'd message, or NULL
    int32_t *ids; // [n] malloc'd
    int n;
    float *logp; // [n - 1] once scored
} lp_item;

typedef struct lp_batch {
    lp_item *items;
    int n_items, cap;
    int n_seqs, max_len; // scored sequences (n >= 2) and their longest length
} lp_batch;

static int parse_positive(const char *opt, const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > 1 << 24)
        return cli_usage_error("logprobs", "%s expects a positive integer, got '%s'", opt, s);
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, lp_opts *o) {
    static const struct option LONG[] = {
        {"model", required_argument, NULL, 'm'},
        {"batch", required_argument, NULL, 'b'},
        {"max-tokens", required_argument, NULL, 'M'},
        {"text", no_argument, NULL, 't'},
        {"echo", no_argument, NULL, 'e'},
        {"device", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (lp_opts){.device = "cpu", .batch = 16, .max_tokens = 8192};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", LONG, NULL)) != -1) {
        switch (c) {
        case 'm':
            o->model = optarg;
            break;
        case 'b':
            RL_TRY(parse_positive("--batch", optarg, &o->batch));
            break;
        case 'M':
            RL_TRY(parse_positive("--max-tokens", optarg, &o->max_tokens));
            break;
        case 't':
            o->text = 1;
            break;
        case 'e':
            o->echo = 1;
            break;
        case 'd':
            o->device = optarg;
            break;
        default:
            return cli_usage_error("logprobs", "unknown or incomplete option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("logprobs", "unexpected argument '%s'", argv[optind]);
    if (!o->model) return cli_usage_error("logprobs", "--model DIR is required");
    return 0;
}

// ------------------------------------------------------------------------------------------------
// Parsing one line into an item

__attribute__((format(printf, 2, 3))) static void set_error(lp_item *it, const char *fmt, ...) {
    char msg[RL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    it->error = rl_strdup(msg);
}

// 1 (and the item's error set) when a sequence of n ids is longer than the model or --max-tokens
// allows; checked before anything is allocated for it.
static int too_long(lp_item *it, size_t n, const lp_opts *o, const char *what) {
    if (n > (size_t)o->max_pos) {
        set_error(it, "%s %zu tokens, more than the model's max_position_embeddings (%d)", what, n,
                  o->max_pos);
        return 1;
    }
    if (n > (size_t)o->max_tokens) {
        set_error(it, "%s %zu tokens, more than --max-tokens (%d); raise it to score this line",
                  what, n, o->max_tokens);
        return 1;
    }
    return 0;
}

static void parse_ids(lp_item *it, const json_t *arr, int vocab, const lp_opts *o) {
    size_t n = json_array_size(arr);
    if (too_long(it, n, o, "the sequence has")) return;
    it->ids = rl_malloc((n ? n : 1) * sizeof(int32_t));
    it->n = (int)n;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v)) {
            set_error(it, "ids[%zu] is not an integer", i);
            return;
        }
        json_int_t id = json_integer_value(v);
        if (id < 0 || id >= vocab) {
            set_error(it, "ids[%zu] = %lld is outside the model's vocabulary [0, %d)", i,
                      (long long)id, vocab);
            return;
        }
        it->ids[i] = (int32_t)id;
    }
}

static void parse_line(lp_item *it, const char *line, size_t len, const lp_opts *o, int vocab,
                       const rl_tokenizer *tok) {
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
    char msg[RL_ERR_MSG_MAX];
    if (!obj) {
        snprintf(msg, sizeof msg, "invalid JSON at column %d: %s", jerr.column, jerr.text);
        it->error = rl_strdup(msg);
        return;
    }
    if (!json_is_object(obj)) {
        it->error = rl_strdup("expected a JSON object");
    } else if (o->text) {
        const json_t *text = json_object_get(obj, "text");
        rl_err err = {0};
        size_t n = 0;
        if (!json_is_string(text)) {
            it->error = rl_strdup("expected an object with a string \"text\"");
        } else if (rl_tokenizer_encode(tok, json_string_value(text), json_string_length(text),
                                       &it->ids, &n, &err) != 0) {
            it->error = rl_strdup(err.msg);
        } else if (!too_long(it, n, o, "the text encodes to")) {
            it->n = (int)n;
            for (int i = 0; i < it->n && !it->error; i++)
                if (it->ids[i] >= vocab)
                    set_error(it, "token %d of the text is outside the model's vocabulary [0, %d)",
                              (int)it->ids[i], vocab);
        }
    } else {
        const json_t *arr = json_object_get(obj, "ids");
        if (!json_is_array(arr))
            it->error = rl_strdup("expected an object with an array \"ids\"");
        else
            parse_ids(it, arr, vocab, o);
    }
    json_decref(obj);
}

// ------------------------------------------------------------------------------------------------
// Scoring a batch and writing its lines

static int score_batch(rl_model *m, lp_batch *b, rl_err *err) {
    int B = b->n_seqs, T = b->max_len;
    if (B == 0) return 0;
    size_t N = (size_t)B * T;
    int32_t *tokens = rl_calloc(N, sizeof(int32_t)), *targets = rl_malloc(N * sizeof(int32_t));
    int32_t *lengths = rl_malloc((size_t)B * sizeof(int32_t));
    float *logp = rl_malloc(N * sizeof(float));
    int s = 0;
    for (int i = 0; i < b->n_items; i++) {
        const lp_item *it = &b->items[i];
        if (it->error || it->n < 2) continue;
        memcpy(tokens + (size_t)s * T, it->ids, (size_t)it->n * sizeof(int32_t));
        for (int t = 0; t < T; t++)
            targets[(size_t)s * T + t] = t + 1 < it->n ? it->ids[t + 1] : -1;
        lengths[s++] = it->n;
    }
    // Scoring mode: nothing here trains, so no layer's activations are kept.
    int rc = rl_model_score_logprobs(m, tokens, lengths, B, T, targets, 1.0f, logp, NULL, err);
    s = 0;
    for (int i = 0; i < b->n_items && rc == 0; i++) {
        lp_item *it = &b->items[i];
        if (it->error || it->n < 2) continue;
        it->logp = rl_malloc((size_t)(it->n - 1) * sizeof(float));
        memcpy(it->logp, logp + (size_t)s * T, (size_t)(it->n - 1) * sizeof(float));
        s++;
    }
    free(tokens), free(targets), free(lengths), free(logp);
    return rc;
}

static int put_error_line(size_t line, const char *msg) {
    char buf[RL_ERR_MSG_MAX + 64];
    snprintf(buf, sizeof buf, "line %zu: %s", line, msg);
    char *safe = rl_utf8_lossy(buf, strlen(buf), NULL);
    json_t *v = json_pack("{s:s}", "error", safe);
    free(safe);
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    int bad = !s || fputs(s, stdout) < 0 || fputc('\n', stdout) == EOF;
    free(s);
    return bad ? -1 : 0;
}

// Writes the item's output line. Returns 1 for an error line, 0 for a result, -1 on write error.
static int put_item(const lp_item *it, const lp_opts *o) {
    if (!it->error)
        for (int t = 0; t + 1 < it->n; t++)
            if (!isfinite(it->logp[t]))
                return put_error_line(it->line, "non-finite log-probability (does the model hold "
                                                "NaN or infinite weights?)")
                           ? -1
                           : 1;
    if (it->error) return put_error_line(it->line, it->error) ? -1 : 1;
    int bad = 0;
    if (o->echo || o->text) {
        bad |= fputs("{\"ids\":[", stdout) < 0;
        for (int t = 0; t < it->n; t++) bad |= printf(t ? ",%d" : "%d", (int)it->ids[t]) < 0;
        bad |= fputs("],\"logprobs\":[", stdout) < 0;
    } else {
        bad |= fputs("{\"logprobs\":[", stdout) < 0;
    }
    for (int t = 0; t + 1 < it->n; t++) bad |= printf(t ? ",%.9g" : "%.9g", it->logp[t]) < 0;
    bad |= fputs("]}\n", stdout) < 0;
    return bad ? -1 : 0;
}

static void clear_batch(lp_batch *b) {
    for (int i = 0; i < b->n_items; i++) {
        free(b->items[i].error);
        free(b->items[i].ids);
        free(b->items[i].logp);
    }
    b->n_items = b->n_seqs = b->max_len = 0;
}

// Scores and writes the pending lines. Returns -1 on a model failure (err set) or write error.
static int flush_batch(rl_model *m, lp_batch *b, const lp_opts *o, size_t *bad, int *write_failed,
                       rl_err *err) {
    int rc = score_batch(m, b, err);
    for (int i = 0; i < b->n_items && rc == 0; i++) {
        int r = put_item(&b->items[i], o);
        if (r < 0) *write_failed = 1, rc = -1;
        if (r > 0) (*bad)++;
    }
    if (rc == 0 && fflush(stdout) != 0) *write_failed = 1, rc = -1;
    clear_batch(b);
    return rc;
}

int cmd_logprobs(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return CLI_EXIT_OK;
    }
    lp_opts o;
    if (parse_args(argc, argv, &o) != 0) return CLI_EXIT_USAGE;
    rl_err err = {0};
    const rl_backend *be = rl_backend_get(o.device, &err);
    if (!be) return cli_report(&err);
    rl_model *m = NULL;
    rl_tokenizer *tok = NULL;
    char tok_path[4096];
    int rc = rl_model_load(&m, o.model, be, &err);
    if (rc == 0 && o.text) rc = rl_model_tokenizer_path(o.model, tok_path, sizeof tok_path, &err);
    if (rc == 0 && o.text) rc = rl_tokenizer_load(&tok, tok_path, &err);
    if (rc != 0) {
        rl_model_free(m);
        rl_backend_release(be);
        return cli_report(&err);
    }
    o.max_pos = m->cfg.max_position_embeddings;

    lp_batch b = {0};
    char *line = NULL;
    size_t cap = 0, lineno = 0, bad = 0;
    ssize_t got;
    int write_failed = 0;
    while (rc == 0 && (got = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        size_t n = (size_t)got;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        lp_item it = {.line = lineno};
        parse_line(&it, line, n, &o, m->V, tok);
        int scored = !it.error && it.n >= 2;
        // Close the batch first if this sequence would push it past --max-tokens.
        if (scored && b.n_seqs > 0) {
            int T = it.n > b.max_len ? it.n : b.max_len;
            if ((size_t)(b.n_seqs + 1) * (size_t)T > (size_t)o.max_tokens)
                rc = flush_batch(m, &b, &o, &bad, &write_failed, &err);
        }
        if (b.n_items == b.cap) {
            b.cap = b.cap ? 2 * b.cap : 32;
            b.items = rl_realloc(b.items, (size_t)b.cap * sizeof *b.items);
        }
        b.items[b.n_items++] = it;
        if (scored) {
            b.n_seqs++;
            if (it.n > b.max_len) b.max_len = it.n;
        }
        if (rc == 0 && (b.n_seqs >= o.batch || b.n_items >= 4 * o.batch + 64))
            rc = flush_batch(m, &b, &o, &bad, &write_failed, &err);
    }
    if (rc == 0) rc = flush_batch(m, &b, &o, &bad, &write_failed, &err);
    clear_batch(&b);
    free(b.items);
    free(line);
    rl_tokenizer_free(tok);
    rl_model_free(m);
    rl_backend_release(be);
    if (write_failed) {
        fprintf(stderr, "rlpipe logprobs: cannot write the output\n");
        return CLI_EXIT_INTERNAL;
    }
    if (rc != 0) return cli_report(&err);
    if (bad) {
        fprintf(stderr, "rlpipe logprobs: %zu of %zu lines failed\n", bad, lineno);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}
