// rlpipe tokenize: JSON lines in, JSON lines out. Encodes {"text": ...} to {"ids": [...]} (or the
// reverse with --decode) with the byte tokenizer or a Hugging Face tokenizer.json, optionally
// through a chat template. One output line per input line, in order.
#define _POSIX_C_SOURCE 200809L
#include "cli/cli.h"
#include "policy/tokenizer.h"

#include <getopt.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: rlpipe tokenize --tokenizer PATH|byte [--decode] [--template NAME] [--system TEXT]\n"
    "\n"
    "Reads JSON lines on stdin and writes one JSON line per input line on stdout, in order.\n"
    "  encode (default)  {\"text\": \"...\"}  ->  {\"ids\": [...]}\n"
    "  --decode          {\"ids\": [...]}    ->  {\"text\": \"...\"}   (bytes that are not valid\n"
    "                    UTF-8, e.g. half a character, become U+FFFD as in Hugging Face)\n"
    "Encoding adds no BOS/EOS; special tokens written in the text (<|im_end|>, <think>) are\n"
    "recognised.\n"
    "\n"
    "options:\n"
    "  --tokenizer PATH|byte  \"byte\" (the tiny models' byte tokenizer), a tokenizer.json, or a\n"
    "                         directory containing one (required)\n"
    "  --decode               ids to text instead of text to ids\n"
    "  --template NAME        encode the chat prompt plain|chatml|r1 built with \"text\" as the\n"
    "                         user turn (and the line's \"system\" or --system as the system "
    "turn)\n"
    "  --system TEXT          default system prompt for --template\n"
    "  -h, --help             this help\n"
    "\n"
    "A line that cannot be processed (bad JSON, missing key, bad id, invalid UTF-8) produces\n"
    "{\"error\": \"line N: ...\"} in its place and processing continues.\n"
    "Exit codes: 0 every line ok; 2 bad usage, unloadable tokenizer, or at least one bad line;\n"
    "1 internal failure (e.g. cannot write stdout).\n";

typedef struct tokenize_opts {
    const char *tokenizer;
    int decode;
    rl_chat_template tmpl; // RL_CHAT_INVALID: no template
    const char *system;
} tokenize_opts;

static int parse_args(int argc, char **argv, tokenize_opts *o) {
    static const struct option LONG[] = {
        {"tokenizer", required_argument, NULL, 't'},
        {"decode", no_argument, NULL, 'd'},
        {"template", required_argument, NULL, 'T'},
        {"system", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (tokenize_opts){.tmpl = RL_CHAT_INVALID};
    const char *tmpl_name = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", LONG, NULL)) != -1) {
        switch (c) {
        case 't':
            o->tokenizer = optarg;
            break;
        case 'd':
            o->decode = 1;
            break;
        case 'T':
            tmpl_name = optarg;
            break;
        case 's':
            o->system = optarg;
            break;
        default:
            return cli_usage_error("tokenize", "unknown or incomplete option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("tokenize", "unexpected argument '%s'", argv[optind]);
    if (!o->tokenizer) return cli_usage_error("tokenize", "--tokenizer PATH|byte is required");
    if (o->system && !tmpl_name) return cli_usage_error("tokenize", "--system needs --template");
    if (tmpl_name) {
        o->tmpl = rl_chat_template_from_name(tmpl_name);
        if (o->tmpl == RL_CHAT_INVALID)
            return cli_usage_error("tokenize", "unknown --template '%s' (plain, chatml, r1)",
                                   tmpl_name);
        if (o->decode) return cli_usage_error("tokenize", "--template applies to encoding only");
    }
    return 0;
}

// Writes one JSON value as a line; returns 0, or -1 on a write error.
static int put_json_line(json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!s) return -1;
    int bad = fputs(s, stdout) < 0 || fputc('\n', stdout) == EOF;
    free(s);
    return bad ? -1 : 0;
}

static int put_error_line(size_t line, const char *msg) {
    char buf[RL_ERR_MSG_MAX + 64];
    snprintf(buf, sizeof buf, "line %zu: %s", line, msg);
    // The message may quote invalid UTF-8 from the input: jansson only takes valid UTF-8.
    char *safe = rl_utf8_lossy(buf, strlen(buf), NULL);
    int rc = put_json_line(json_pack("{s:s}", "error", safe));
    free(safe);
    return rc;
}

static int put_ids_line(const int32_t *ids, size_t n) {
    if (fputs("{\"ids\":[", stdout) < 0) return -1;
    for (size_t i = 0; i < n; i++)
        if (printf(i ? ",%d" : "%d", (int)ids[i]) < 0) return -1;
    return fputs("]}\n", stdout) < 0 ? -1 : 0;
}

// Processes one input line. Returns 1 if the line was bad (an error line was written), 0 if
// fine, -1 on a write failure.
static int encode_line(const rl_tokenizer *tok, const tokenize_opts *o, json_t *obj, size_t line,
                       rl_ids *ids) {
    const json_t *text = json_object_get(obj, "text");
    if (!json_is_string(text))
        return put_error_line(line, "expected an object with a string \"text\"") ? -1 : 1;
    const json_t *sys = json_object_get(obj, "system");
    if (sys && !json_is_string(sys) && !json_is_null(sys))
        return put_error_line(line, "\"system\" must be a string") ? -1 : 1;
    rl_err err = {0};
    ids->len = 0;
    int rc;
    if (o->tmpl != RL_CHAT_INVALID) {
        if (memchr(json_string_value(text), 0, json_string_length(text)))
            return put_error_line(line, "\"text\" contains NUL, not allowed with --template") ? -1
                                                                                              : 1;
        const char *system = json_is_string(sys) ? json_string_value(sys) : o->system;
        rc = rl_chat_encode(o->tmpl, tok, system, json_string_value(text), ids, &err);
    } else {
        rc = rl_tokenizer_encode_append(tok, json_string_value(text), json_string_length(text), ids,
                                        &err);
    }
    if (rc != 0) return put_error_line(line, err.msg) ? -1 : 1;
    return put_ids_line(ids->data, ids->len) ? -1 : 0;
}

static int decode_line(const rl_tokenizer *tok, json_t *obj, size_t line, rl_ids *ids) {
    const json_t *arr = json_object_get(obj, "ids");
    if (!json_is_array(arr))
        return put_error_line(line, "expected an object with an array \"ids\"") ? -1 : 1;
    ids->len = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
            json_integer_value(v) > INT32_MAX) {
            char msg[96];
            snprintf(msg, sizeof msg, "ids[%zu] is not a 32-bit integer", i);
            return put_error_line(line, msg) ? -1 : 1;
        }
        int32_t id = (int32_t)json_integer_value(v);
        if (ids->len == ids->cap) {
            ids->cap = ids->cap ? 2 * ids->cap : 64;
            ids->data = rl_realloc(ids->data, ids->cap * sizeof *ids->data);
        }
        ids->data[ids->len++] = id;
    }
    rl_err err = {0};
    char *bytes;
    size_t n;
    if (rl_tokenizer_decode(tok, ids->data, ids->len, &bytes, &n, &err) != 0)
        return put_error_line(line, err.msg) ? -1 : 1;
    size_t m;
    char *text = rl_utf8_lossy(bytes, n, &m);
    free(bytes);
    json_t *out = json_object();
    json_object_set_new(out, "text", json_stringn(text, m));
    free(text);
    return put_json_line(out) ? -1 : 0;
}

int cmd_tokenize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return CLI_EXIT_OK;
    }
    tokenize_opts o;
    if (parse_args(argc, argv, &o) != 0) return CLI_EXIT_USAGE;
    rl_err err = {0};
    rl_tokenizer *tok;
    if (rl_tokenizer_load(&tok, o.tokenizer, &err) != 0) return cli_report(&err);
    if (o.tmpl != RL_CHAT_INVALID && rl_chat_template_check(o.tmpl, tok, &err) != 0)
        fprintf(stderr, "rlpipe tokenize: warning: %s\n", err.msg);

    char *line = NULL;
    size_t cap = 0, lineno = 0, bad = 0;
    ssize_t got;
    rl_ids ids = {0};
    int failed = 0;
    while (!failed && (got = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        size_t n = (size_t)got;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        json_error_t jerr;
        json_t *obj = json_loadb(line, n, JSON_ALLOW_NUL, &jerr);
        int rc;
        if (!obj) {
            char msg[RL_ERR_MSG_MAX];
            snprintf(msg, sizeof msg, "invalid JSON at column %d: %s", jerr.column, jerr.text);
            rc = put_error_line(lineno, msg) ? -1 : 1;
        } else if (!json_is_object(obj)) {
            rc = put_error_line(lineno, "expected a JSON object") ? -1 : 1;
        } else {
            rc = o.decode ? decode_line(tok, obj, lineno, &ids)
                          : encode_line(tok, &o, obj, lineno, &ids);
        }
        json_decref(obj);
        if (rc < 0) failed = 1;
        if (rc > 0) bad++;
        if (fflush(stdout) != 0) failed = 1;
    }
    free(line);
    rl_ids_free(&ids);
    rl_tokenizer_free(tok);
    if (failed) {
        fprintf(stderr, "rlpipe tokenize: cannot write the output\n");
        return CLI_EXIT_INTERNAL;
    }
    if (bad) {
        fprintf(stderr, "rlpipe tokenize: %zu of %zu lines failed\n", bad, lineno);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}
