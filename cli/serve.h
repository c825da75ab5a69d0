/*
 * serve: `rlpipe serve`, an OpenAI-compatible HTTP server for a model directory (manual:
 * cli/serve.md). This header is shared by the two halves of the command:
 *
 *   serve_api.c  the OpenAI wire format: a request body (JSON) -> a validated serve_req, and the
 *                response bodies, stream chunks and error objects. No I/O, no threads.
 *   cmd_serve.c  the server: libmicrohttpd (one thread per connection), a scheduler thread that
 *                owns the engine and runs continuous batching (rollout/engine.h rl_engine_step),
 *                the bounded queue, timeouts, disconnects, SIGTERM and the SQLite request log.
 *
 * Owns: each serve_req owns its strings and arrays (serve_req_free).
 */
#ifndef RL_SERVE_H
#define RL_SERVE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "policy/tokenizer.h"
#include "rollout/engine.h"

enum { SERVE_MAX_STOPS = 16, SERVE_MAX_TOP_LOGPROBS = 20 };

// What the request parser needs to know about the server.
typedef struct serve_model_info {
    const char *id;          // the model name clients send ("model")
    const char *alt_id;      // another accepted name (e.g. the directory), or NULL
    const rl_tokenizer *tok; // thread-safe for encode
    rl_chat_template tmpl;
    const int32_t *stop_ids; // the template's stop tokens
    int n_stop_ids;
    int max_model_len; // prompt + completion tokens
    int max_n;         // most samples per request (the engine's slots)
    int vocab_limit;   // ids a prompt may hold
} serve_model_info;

// A validated request.
typedef struct serve_req {
    int chat;          // 1: /v1/chat/completions, 0: /v1/completions
    int stream;        // server-sent events
    int include_usage; // stream_options.include_usage
    int n;
    int logprobs;     // 1: report the sampled tokens' log-probs
    int top_logprobs; // alternatives per token (0..20)
    int has_seed;
    uint64_t seed;
    int max_tokens;       // resolved (max_model_len - prompt when not given)
    rl_gen_params params; // params.stop_strings points at stops below: re-point it in a copy
    char *stops[SERVE_MAX_STOPS];
    int n_stops;
    int32_t *ids; // [n_ids] the rendered, tokenised prompt
    int n_ids;
} serve_req;

// An error for the client: HTTP status and OpenAI's error object fields.
typedef struct serve_error {
    int status;       // 400, 404, ...
    const char *type; // "invalid_request_error", "not_found_error", ...
    char param[64];   // the offending field, "" for null
    const char *code; // e.g. "context_length_exceeded", NULL for null
    char message[512];
} serve_error;

// Parses and validates a request body for the chat (chat = 1) or completions endpoint. Returns 0,
// or -1 with *e filled (400 for bad JSON, types, ranges and unknown fields; 404 for an unknown
// model). A request without a seed gets random_seed.
int serve_parse_request(const serve_model_info *mi, int chat, const char *body, size_t len,
                        uint64_t random_seed, serve_req *out, serve_error *e);
void serve_req_free(serve_req *r);

// {"error": {"message", "type", "param", "code"}} as a malloc'd compact JSON string.
char *serve_error_json(const serve_error *e);
// Fills *e (message printf-style) and returns -1.
int serve_fail(serve_error *e, int status, const char *type, const char *param, const char *code,
               const char *fmt, ...) __attribute__((format(printf, 6, 7)));

// One generated token's log-prob information (log-probs under the model, temperature 1).
typedef struct serve_tok_lp {
    int32_t id;
    float logprob;
    int n_top;
    int32_t top_id[SERVE_MAX_TOP_LOGPROBS];
    float top_lp[SERVE_MAX_TOP_LOGPROBS];
} serve_tok_lp;

// Fills lp for token id drawn from logits[V] (ids < vocab_limit are candidates for the top list).
void serve_token_logprobs(const float *logits, int V, int vocab_limit, int32_t id, int top,
                          serve_tok_lp *lp);

// The logprobs object of a choice for tokens lps[0..n) ("content" list for chat; tokens /
// token_logprobs / top_logprobs / text_offset for completions; text_offset counts from
// text_offset0).
json_t *serve_logprobs_json(const serve_model_info *mi, int chat, const serve_tok_lp *lps, int n,
                            size_t text_offset0);

// One token's bytes made valid UTF-8 (malloc'd; *len excludes the NUL; the text may hold NUL
// bytes, so use *len, e.g. with json_stringn).
char *serve_token_text(const rl_tokenizer *tok, int32_t id, size_t *len);

// "stop" / "length".
const char *serve_finish_reason(int finish);

// How much of text[0..n) can be sent, given that text[0..sent) was: up to a point that does not
// end inside a UTF-8 character and holds back a tail that could still grow into a stop string.
// Returns a value in [sent, n].
size_t serve_sendable_len(const char *text, size_t sent, size_t n, char *const *stops, int n_stops);

#endif
