// serve_api: the OpenAI wire format of `rlpipe serve` (requests in, JSON pieces out). See serve.h.
#include "cli/serve.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int serve_fail(serve_error *e, int status, const char *type, const char *param, const char *code,
               const char *fmt, ...) {
    e->status = status;
    e->type = type;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

char *serve_error_json(const serve_error *e) {
    json_t *o = json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", e->message, "type",
                          e->type ? e->type : "invalid_request_error", "param",
                          e->param[0] ? json_string(e->param) : json_null(), "code",
                          e->code ? json_string(e->code) : json_null());
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

void serve_req_free(serve_req *r) {
    if (!r) return;
    for (int i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->ids);
    memset(r, 0, sizeof *r);
}

const char *serve_finish_reason(int finish) {
    return finish == RL_FINISH_LENGTH ? "length" : "stop";
}

#define BAD(e, param, ...) serve_fail(e, 400, "invalid_request_error", param, NULL, __VA_ARGS__)

// ---- field readers: a missing or null field keeps the default --------------------------------

static int get_number(json_t *o, const char *key, double lo, double hi, double *v, serve_error *e) {
    json_t *x = json_object_get(o, key);
    if (!x || json_is_null(x)) return 0;
    if (!json_is_number(x)) return BAD(e, key, "'%s' must be a number", key);
    double d = json_number_value(x);
    if (!(d >= lo && d <= hi))
        return BAD(e, key, "'%s' must be in [%g, %g], got %g", key, lo, hi, d);
    *v = d;
    return 0;
}

static int get_int(json_t *o, const char *key, long long lo, long long hi, long long *v,
                   serve_error *e) {
    json_t *x = json_object_get(o, key);
    if (!x || json_is_null(x)) return 0;
    if (!json_is_integer(x)) return BAD(e, key, "'%s' must be an integer", key);
    long long d = json_integer_value(x);
    if (d < lo || d > hi)
        return BAD(e, key, "'%s' must be in [%lld, %lld], got %lld", key, lo, hi, d);
    *v = d;
    return 0;
}

static int get_bool(json_t *o, const char *key, int *v, serve_error *e) {
    json_t *x = json_object_get(o, key);
    if (!x || json_is_null(x)) return 0;
    if (!json_is_boolean(x)) return BAD(e, key, "'%s' must be true or false", key);
    *v = json_is_true(x);
    return 0;
}

// Every key of o must be in the NULL-terminated list.
static int check_keys(json_t *o, const char *const *allowed, const char *where, serve_error *e) {
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++) ok = strcmp(*a, key) == 0;
        if (!ok) return BAD(e, key, "Unrecognized %s argument supplied: '%s'", where, key);
    }
    return 0;
}

static const char *const CHAT_KEYS[] = {"model",
                                        "messages",
                                        "temperature",
                                        "top_p",
                                        "top_k",
                                        "min_p",
                                        "max_tokens",
                                        "max_completion_tokens",
                                        "stop",
                                        "seed",
                                        "n",
                                        "stream",
                                        "stream_options",
                                        "logprobs",
                                        "top_logprobs",
                                        "user",
                                        "presence_penalty",
                                        "frequency_penalty",
                                        "logit_bias",
                                        "ignore_eos",
                                        "response_format",
                                        NULL};
static const char *const COMPLETION_KEYS[] = {"model",
                                              "prompt",
                                              "temperature",
                                              "top_p",
                                              "top_k",
                                              "min_p",
                                              "max_tokens",
                                              "stop",
                                              "seed",
                                              "n",
                                              "stream",
                                              "stream_options",
                                              "logprobs",
                                              "user",
                                              "presence_penalty",
                                              "frequency_penalty",
                                              "logit_bias",
                                              "ignore_eos",
                                              "echo",
                                              "suffix",
                                              "best_of",
                                              NULL};

// Fields we accept only at their neutral value (clients send them by default).
static int check_neutral(json_t *o, int chat, serve_error *e) {
    static const char *const ZERO[] = {"presence_penalty", "frequency_penalty"};
    for (int i = 0; i < 2; i++) {
        double v = 0;
        if (get_number(o, ZERO[i], -2, 2, &v, e)) return -1;
        if (v != 0) return BAD(e, ZERO[i], "'%s' is not supported (only 0)", ZERO[i]);
    }
    json_t *x = json_object_get(o, "logit_bias");
    if (x && !json_is_null(x) && !(json_is_object(x) && json_object_size(x) == 0))
        return BAD(e, "logit_bias", "'logit_bias' is not supported");
    if (chat) {
        x = json_object_get(o, "response_format");
        if (x && !json_is_null(x)) {
            json_t *t = json_is_object(x) ? json_object_get(x, "type") : NULL;
            if (!t || !json_is_string(t) || strcmp(json_string_value(t), "text") != 0 ||
                json_object_size(x) != 1)
                return BAD(e, "response_format", "only {\"type\": \"text\"} is supported");
        }
    } else {
        int echo = 0;
        if (get_bool(o, "echo", &echo, e)) return -1;
        if (echo) return BAD(e, "echo", "'echo' is not supported");
        x = json_object_get(o, "suffix");
        if (x && !json_is_null(x)) return BAD(e, "suffix", "'suffix' is not supported");
    }
    x = json_object_get(o, "user");
    if (x && !json_is_null(x) && !json_is_string(x))
        return BAD(e, "user", "'user' must be a string");
    return 0;
}

static int parse_stop(json_t *o, serve_req *r, serve_error *e) {
    json_t *x = json_object_get(o, "stop");
    if (!x || json_is_null(x)) return 0;
    if (json_is_string(x)) {
        if (json_string_length(x) == 0) return BAD(e, "stop", "'stop' strings must not be empty");
        r->stops[r->n_stops++] = rl_strdup(json_string_value(x));
        return 0;
    }
    if (!json_is_array(x)) return BAD(e, "stop", "'stop' must be a string or a list of strings");
    if (json_array_size(x) > SERVE_MAX_STOPS)
        return BAD(e, "stop", "'stop' holds at most %d strings", SERVE_MAX_STOPS);
    size_t i;
    json_t *s;
    json_array_foreach(x, i, s) {
        if (!json_is_string(s) || json_string_length(s) == 0)
            return BAD(e, "stop", "'stop' must be a list of non-empty strings");
        r->stops[r->n_stops++] = rl_strdup(json_string_value(s));
    }
    return 0;
}

// The text of a message's content: a string, or a list of {"type": "text", "text": ...} parts.
static int content_text(json_t *c, int i, char **out, serve_error *e) {
    if (!c || json_is_null(c)) {
        *out = rl_strdup("");
        return 0;
    }
    if (json_is_string(c)) {
        *out = rl_strdup(json_string_value(c));
        return 0;
    }
    if (!json_is_array(c))
        return BAD(e, "messages", "messages[%d].content must be a string or a list of parts", i);
    size_t total = 1, k;
    json_t *part;
    json_array_foreach(c, k, part) {
        json_t *type = json_is_object(part) ? json_object_get(part, "type") : NULL;
        json_t *text = json_is_object(part) ? json_object_get(part, "text") : NULL;
        if (!type || !json_is_string(type) || strcmp(json_string_value(type), "text") != 0 ||
            !text || !json_is_string(text))
            return BAD(e, "messages",
                       "messages[%d].content[%zu]: only {\"type\": \"text\", \"text\": ...} parts "
                       "are supported",
                       i, k);
        total += json_string_length(text);
    }
    char *s = rl_malloc(total);
    s[0] = '\0';
    json_array_foreach(c, k, part) strcat(s, json_string_value(json_object_get(part, "text")));
    *out = s;
    return 0;
}

static int render_messages(const serve_model_info *mi, json_t *o, serve_req *r, serve_error *e) {
    json_t *msgs = json_object_get(o, "messages");
    if (!msgs || !json_is_array(msgs) || json_array_size(msgs) == 0)
        return BAD(e, "messages", "'messages' must be a non-empty list");
    size_t n = json_array_size(msgs);
    rl_chat_msg *cm = rl_calloc(n, sizeof *cm);
    char **texts = rl_calloc(n, sizeof *texts);
    static const char *const MSG_KEYS[] = {"role", "content", "name", NULL};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *m = json_array_get(msgs, i);
        json_t *role = json_is_object(m) ? json_object_get(m, "role") : NULL;
        if (!role || !json_is_string(role)) {
            rc = BAD(e, "messages", "messages[%zu] must be an object with a string 'role'", i);
            break;
        }
        const char *rs = json_string_value(role);
        if (strcmp(rs, "system") && strcmp(rs, "developer") && strcmp(rs, "user") &&
            strcmp(rs, "assistant")) {
            rc = BAD(e, "messages",
                     "messages[%zu].role '%s' is not supported (system, developer, user, "
                     "assistant)",
                     i, rs);
            break;
        }
        if (check_keys(m, MSG_KEYS, "message", e) ||
            content_text(json_object_get(m, "content"), (int)i, &texts[i], e)) {
            rc = -1;
            break;
        }
        cm[i] = (rl_chat_msg){rs, texts[i]};
    }
    char *prompt = NULL;
    rl_err err = {0};
    if (rc == 0 && rl_chat_render_messages(mi->tmpl, mi->tok, cm, (int)n, &prompt, &err))
        rc = BAD(e, "messages", "%s", err.msg);
    if (rc == 0) {
        size_t n_ids = 0;
        if (rl_tokenizer_encode(mi->tok, prompt, strlen(prompt), &r->ids, &n_ids, &err))
            rc = BAD(e, "messages", "%s", err.msg);
        r->n_ids = (int)n_ids;
    }
    free(prompt);
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(cm);
    return rc;
}

static int prompt_ids(const serve_model_info *mi, json_t *x, serve_req *r, serve_error *e) {
    rl_err err = {0};
    if (json_is_array(x) && json_array_size(x) == 1 &&
        (json_is_string(json_array_get(x, 0)) || json_is_array(json_array_get(x, 0))))
        x = json_array_get(x, 0); // a batch of one
    if (json_is_string(x)) {
        size_t n_ids = 0;
        if (rl_tokenizer_encode(mi->tok, json_string_value(x), json_string_length(x), &r->ids,
                                &n_ids, &err))
            return BAD(e, "prompt", "%s", err.msg);
        r->n_ids = (int)n_ids;
        return 0;
    }
    if (json_is_array(x) && json_array_size(x) > 0 && json_is_integer(json_array_get(x, 0))) {
        size_t n = json_array_size(x), i;
        json_t *t;
        r->ids = rl_malloc(n * sizeof(int32_t));
        json_array_foreach(x, i, t) {
            if (!json_is_integer(t) || json_integer_value(t) < 0 ||
                json_integer_value(t) >= mi->vocab_limit)
                return BAD(e, "prompt", "prompt[%zu]: token ids must be integers in [0, %d)", i,
                           mi->vocab_limit);
            r->ids[i] = (int32_t)json_integer_value(t);
        }
        r->n_ids = (int)n;
        return 0;
    }
    if (json_is_array(x) && json_array_size(x) > 1)
        return BAD(e, "prompt", "one prompt per request (send several requests; they are batched)");
    return BAD(e, "prompt",
               "'prompt' must be a string, a list of one string, or a list of token ids");
}

int serve_parse_request(const serve_model_info *mi, int chat, const char *body, size_t len,
                        uint64_t random_seed, serve_req *r, serve_error *e) {
    memset(r, 0, sizeof *r);
    r->chat = chat;
    json_error_t je;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return BAD(e, NULL,
                   "We could not parse the JSON body of your request: %s (line %d, column %d)",
                   je.text, je.line, je.column);
    int rc = -1;
    if (!json_is_object(o)) {
        BAD(e, NULL, "The request body must be a JSON object");
        goto done;
    }
    if (check_keys(o, chat ? CHAT_KEYS : COMPLETION_KEYS, "request", e) ||
        check_neutral(o, chat, e))
        goto done;
    json_t *model = json_object_get(o, "model");
    if (model && !json_is_null(model)) {
        if (!json_is_string(model)) {
            BAD(e, "model", "'model' must be a string");
            goto done;
        }
        const char *m = json_string_value(model);
        if (strcmp(m, mi->id) != 0 && !(mi->alt_id && strcmp(m, mi->alt_id) == 0)) {
            serve_fail(e, 404, "not_found_error", "model", "model_not_found",
                       "The model '%s' does not exist (this server has '%s')", m, mi->id);
            goto done;
        }
    }
    double temperature = 1.0, top_p = 1.0, min_p = 0.0;
    long long top_k = 0, n = 1, max_tokens = -1, seed = 0, lp_int = -1, top_lp = 0;
    int has_seed = json_object_get(o, "seed") && !json_is_null(json_object_get(o, "seed"));
    int stream = 0, ignore_eos = 0, lp_bool = 0;
    if (get_number(o, "temperature", 0, 2, &temperature, e) ||
        get_number(o, "top_p", 0, 1, &top_p, e) || get_number(o, "min_p", 0, 1, &min_p, e) ||
        get_int(o, "top_k", -1, 1 << 30, &top_k, e) || get_int(o, "n", 1, mi->max_n, &n, e) ||
        get_int(o, "max_tokens", 1, 1 << 30, &max_tokens, e) ||
        (chat && get_int(o, "max_completion_tokens", 1, 1 << 30, &max_tokens, e)) ||
        get_int(o, "seed", INT64_MIN, INT64_MAX, &seed, e) || get_bool(o, "stream", &stream, e) ||
        get_bool(o, "ignore_eos", &ignore_eos, e) || parse_stop(o, r, e))
        goto done;
    if (top_p <= 0) {
        BAD(e, "top_p", "'top_p' must be in (0, 1]");
        goto done;
    }
    if (chat) {
        if (get_bool(o, "logprobs", &lp_bool, e) ||
            get_int(o, "top_logprobs", 0, SERVE_MAX_TOP_LOGPROBS, &top_lp, e))
            goto done;
        if (top_lp > 0 && !lp_bool) {
            BAD(e, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
            goto done;
        }
        r->logprobs = lp_bool;
        r->top_logprobs = (int)top_lp;
    } else {
        if (get_int(o, "logprobs", 0, 5, &lp_int, e)) goto done;
        long long best_of = n;
        if (get_int(o, "best_of", 1, mi->max_n, &best_of, e)) goto done;
        if (best_of != n) {
            BAD(e, "best_of", "'best_of' other than n is not supported");
            goto done;
        }
        r->logprobs = lp_int >= 0;
        r->top_logprobs = lp_int > 0 ? (int)lp_int : 0;
    }
    json_t *so = json_object_get(o, "stream_options");
    if (so && !json_is_null(so)) {
        static const char *const SO_KEYS[] = {"include_usage", "continuous_usage_stats", NULL};
        if (!stream) {
            BAD(e, "stream_options", "'stream_options' is only allowed with 'stream': true");
            goto done;
        }
        if (!json_is_object(so) || check_keys(so, SO_KEYS, "stream_options", e) ||
            get_bool(so, "include_usage", &r->include_usage, e)) {
            if (!json_is_object(so)) BAD(e, "stream_options", "'stream_options' must be an object");
            goto done;
        }
    }
    if (chat ? render_messages(mi, o, r, e) : prompt_ids(mi, json_object_get(o, "prompt"), r, e))
        goto done;
    if (r->n_ids == 0) {
        BAD(e, chat ? "messages" : "prompt", "The prompt is empty");
        goto done;
    }
    if (r->n_ids >= mi->max_model_len ||
        (max_tokens > 0 && r->n_ids + max_tokens > mi->max_model_len)) {
        serve_fail(e, 400, "invalid_request_error", chat ? "messages" : "prompt",
                   "context_length_exceeded",
                   "This model's maximum context length is %d tokens. However, you requested %lld "
                   "tokens (%d in the prompt, %lld for the completion). Please reduce the prompt "
                   "or max_tokens.",
                   mi->max_model_len, r->n_ids + (max_tokens > 0 ? max_tokens : 1), r->n_ids,
                   max_tokens > 0 ? max_tokens : 1);
        goto done;
    }
    r->stream = stream;
    r->n = (int)n;
    r->has_seed = has_seed;
    r->seed = has_seed ? (uint64_t)seed : random_seed;
    r->max_tokens = max_tokens > 0 ? (int)max_tokens : mi->max_model_len - r->n_ids;
    rl_gen_params *p = &r->params;
    p->sampling.temperature = (float)temperature;
    p->sampling.top_k = top_k > 0 ? (int)top_k : 0;
    p->sampling.top_p = (float)top_p;
    p->sampling.min_p = (float)min_p;
    p->greedy = temperature == 0;
    p->max_new_tokens = r->max_tokens;
    p->stop_ids = ignore_eos ? NULL : mi->stop_ids;
    p->n_stop_ids = ignore_eos ? 0 : mi->n_stop_ids;
    p->stop_strings = (const char *const *)r->stops;
    p->n_stop_strings = r->n_stops;
    p->seed = r->seed;
    rc = 0;
done:
    json_decref(o);
    if (rc) serve_req_free(r);
    return rc;
}

// ---- log-probs -----------------------------------------------------------------------------

void serve_token_logprobs(const float *logits, int V, int vocab_limit, int32_t id, int top,
                          serve_tok_lp *lp) {
    float mx = logits[0];
    for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
    float lse = mx + (float)log(sum);
    lp->id = id;
    lp->logprob = logits[id] - lse;
    lp->n_top = 0;
    if (top > SERVE_MAX_TOP_LOGPROBS) top = SERVE_MAX_TOP_LOGPROBS;
    for (int i = 0; i < vocab_limit && top > 0; i++) { // insertion into a short sorted list
        float v = logits[i];
        if (lp->n_top == top && v <= lp->top_lp[top - 1] + lse) continue;
        int k = lp->n_top < top ? lp->n_top++ : top - 1;
        while (k > 0 && lp->top_lp[k - 1] < v - lse) {
            lp->top_lp[k] = lp->top_lp[k - 1];
            lp->top_id[k] = lp->top_id[k - 1];
            k--;
        }
        lp->top_lp[k] = v - lse;
        lp->top_id[k] = i;
    }
}

char *serve_token_text(const rl_tokenizer *tok, int32_t id, size_t *out_len) {
    size_t len = 0;
    const char *b = rl_tokenizer_token_bytes(tok, id, &len);
    return rl_utf8_lossy(b ? b : "", b ? len : 0, out_len);
}

static json_t *token_bytes_json(const rl_tokenizer *tok, int32_t id) {
    size_t len = 0;
    const char *b = rl_tokenizer_token_bytes(tok, id, &len);
    json_t *a = json_array();
    for (size_t i = 0; b && i < len; i++)
        json_array_append_new(a, json_integer((unsigned char)b[i]));
    return a;
}

static json_t *chat_token_json(const rl_tokenizer *tok, int32_t id, float logprob) {
    size_t tl;
    char *t = serve_token_text(tok, id, &tl);
    json_t *o = json_pack("{s:s%, s:f, s:o}", "token", t, tl, "logprob", (double)logprob, "bytes",
                          token_bytes_json(tok, id));
    free(t);
    return o;
}

json_t *serve_logprobs_json(const serve_model_info *mi, int chat, const serve_tok_lp *lps, int n,
                            size_t text_offset0) {
    if (chat) {
        json_t *content = json_array();
        for (int i = 0; i < n; i++) {
            json_t *o = chat_token_json(mi->tok, lps[i].id, lps[i].logprob);
            json_t *top = json_array();
            for (int k = 0; k < lps[i].n_top; k++)
                json_array_append_new(top,
                                      chat_token_json(mi->tok, lps[i].top_id[k], lps[i].top_lp[k]));
            json_object_set_new(o, "top_logprobs", top);
            json_array_append_new(content, o);
        }
        return json_pack("{s:o, s:n}", "content", content, "refusal");
    }
    json_t *tokens = json_array(), *lp = json_array(), *tops = json_array(), *offs = json_array();
    size_t off = text_offset0;
    for (int i = 0; i < n; i++) {
        size_t tl;
        char *t = serve_token_text(mi->tok, lps[i].id, &tl);
        json_array_append_new(tokens, json_stringn(t, tl));
        json_array_append_new(lp, json_real(lps[i].logprob));
        json_array_append_new(offs, json_integer((json_int_t)off));
        size_t len = 0;
        rl_tokenizer_token_bytes(mi->tok, lps[i].id, &len);
        off += len;
        // The top alternatives, with the sampled token added when it is not among them.
        json_t *d = json_object();
        for (int k = 0; k < lps[i].n_top; k++) {
            size_t al;
            char *a = serve_token_text(mi->tok, lps[i].top_id[k], &al);
            if (!json_object_get(d, a)) json_object_set_new(d, a, json_real(lps[i].top_lp[k]));
            free(a);
        }
        if (!json_object_get(d, t)) json_object_set_new(d, t, json_real(lps[i].logprob));
        json_array_append_new(tops, d);
        free(t);
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", lp, "top_logprobs",
                     tops, "text_offset", offs);
}

size_t serve_sendable_len(const char *text, size_t sent, size_t n, char *const *stops,
                          int n_stops) {
    size_t hold = 0;
    for (int i = 0; i < n_stops; i++) {
        size_t sl = strlen(stops[i]);
        for (size_t k = sl - 1; k > hold; k--) // the longest proper prefix ending the text
            if (k <= n && memcmp(text + n - k, stops[i], k) == 0) {
                hold = k;
                break;
            }
    }
    size_t upto = n - hold;
    if (upto <= sent) return sent;
    return sent + rl_utf8_complete_len(text + sent, upto - sent);
}
