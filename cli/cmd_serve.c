// cmd_serve: `rlpipe serve`, an OpenAI-compatible HTTP server (manual: cli/serve.md).
//
// Threads: libmicrohttpd runs one thread per connection; a connection thread parses its request
// (serve_api.c), queues a job and then waits on it (for a JSON answer) or feeds server-sent
// events from it. One scheduler thread owns the engine: it admits queued jobs into free KV-cache
// slots, steps the engine (every running request advances one token per step, new ones join
// between steps), and ends jobs. The main thread waits for SIGTERM/SIGINT and shuts down. All job
// and queue state is guarded by one mutex; the engine is touched only by the scheduler.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/serve.h"
#include "kernels/backend.h"
#include "kernels/rng.h"
#include "policy/checkpoint.h"
#include "policy/model.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: rlpipe serve --model DIR [--host 127.0.0.1] [--port 8000] [options]\n\n"
        "Serves a model directory over an OpenAI-compatible HTTP API: GET /v1/models,\n"
        "POST /v1/chat/completions, POST /v1/completions (streaming with server-sent events).\n"
        "Concurrent requests decode together in one batch. Listens on loopback unless --host\n"
        "says otherwise. SIGTERM/SIGINT: stop accepting, let running requests finish (up to\n"
        "--shutdown-grace), cancel the rest, exit 0. See cli/serve.md.\n\n"
        "options:\n"
        "  --model DIR              the model directory (config.json, safetensors, tokenizer)\n"
        "  --host ADDR              address to listen on (default 127.0.0.1)\n"
        "  --port N                 port (default 8000; 0 = any free port, printed at start)\n"
        "  --served-model-name NAME the model id clients use (default: DIR as given)\n"
        "  --chat-template NAME     plain, chatml or r1 (default: from the tokenizer)\n"
        "  --max-model-len N        prompt + completion tokens (default: the model's\n"
        "                           max_position_embeddings, at most 8192)\n"
        "  --max-batch N            sequences decoded together (default 32)\n"
        "  --max-queue N            requests waiting for room beyond that (default 256); more\n"
        "                           are answered 429\n"
        "  --max-body BYTES         largest request body (default 8388608); larger: 413\n"
        "  --timeout SECONDS        per request, queueing included (default 600)\n"
        "  --shutdown-grace SECONDS how long running requests may finish on SIGTERM (default 30)\n"
        "  --api-key KEY            require 'Authorization: Bearer KEY' (default: none)\n"
        "  --log FILE               log every request to this SQLite file (default: off)\n"
        "  --device cpu|cuda        backend (default cpu)\n"
        "  --threads N              CPU threads (default: all cores)\n"
        "  --quiet                  no per-request line on stderr\n"
        "  -h, --help               this help\n");
}

enum { JOB_QUEUED, JOB_RUNNING, JOB_ENDED };
enum { CANCEL_NONE, CANCEL_CLIENT, CANCEL_TIMEOUT, CANCEL_SHUTDOWN, CANCEL_ERROR };
static const char *const OUTCOME[] = {"ok", "client_disconnected", "timeout", "shutdown", "error"};
enum { ROUTE_CHAT = 1, ROUTE_COMPLETIONS = 2 };

typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *t, size_t k) {
    if (b->len + k + 1 > b->cap) {
        b->cap = (b->len + k + 1) * 2;
        b->s = rl_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, t, k);
    b->len += k;
    b->s[b->len] = '\0';
}

// Streaming progress of one choice.
typedef struct choice {
    size_t sent;       // bytes of the decoded text already sent
    int tok_sent;      // tokens whose log-probs were sent
    int started;       // chat: the role chunk went out
    serve_tok_lp *lps; // [max_tokens] when log-probs are asked for
} choice;

struct server;

typedef struct job {
    struct server *S;
    serve_req rq;
    char id[48];
    long created;
    double t0, deadline;
    int route;
    int fd; // the client's socket, watched for a disconnect
    rl_stream_req req;
    rl_completion *out; // [n]
    choice *ch;         // [n]
    int state, cancel;
    char error[RL_ERR_MSG_MAX];
    sbuf sse; // server-sent events produced, not all sent yet
    size_t sse_sent;
    int sse_closed;
    pthread_cond_t cv;
    int refs; // the connection and the scheduler each hold one
    struct job *next;
    char *body; // the request text, for the log
} job;

typedef struct server {
    // settings
    const char *model_dir, *host, *api_key, *log_path;
    int port, max_model_len, max_batch, max_queue, quiet;
    size_t max_body;
    double timeout_s, grace_s;
    int threads;
    serve_model_info mi;
    int32_t stop_ids[RL_CHAT_MAX_STOPS];
    long started;
    // objects
    const rl_backend *be;
    rl_tokenizer *tok;
    rl_model *model;
    rl_engine *engine;
    sqlite3 *db;
    struct MHD_Daemon *d;
    int listen_fd;
    // state, under mu
    pthread_mutex_t mu;
    pthread_cond_t work; // the scheduler waits here
    job *q_head, *q_tail;
    int n_queued;
    job **running; // [max_batch]
    int n_running;
    int slots_busy; // samples of running jobs
    int n_jobs;     // queued + running
    int n_http;     // requests being answered (conn_ctx counted)
    int stopping, quit;
    uint64_t counter;
} server;

// ---- jobs ------------------------------------------------------------------------------------

static void job_unref(job *j) { // mu held
    if (--j->refs > 0) return;
    for (int i = 0; j->out && i < j->rq.n; i++) rl_completion_free(&j->out[i]);
    for (int i = 0; j->ch && i < j->rq.n; i++) free(j->ch[i].lps);
    free(j->out);
    free(j->ch);
    free(j->sse.s);
    free(j->body);
    pthread_cond_destroy(&j->cv);
    serve_req_free(&j->rq);
    free(j);
}

static void sse_event(job *j, json_t *o) { // mu held; takes o
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    sb_add(&j->sse, "data: ", 6);
    sb_add(&j->sse, s, strlen(s));
    sb_add(&j->sse, "\n\n", 2);
    free(s);
}

static json_t *usage_json(const job *j) {
    long completion = 0;
    for (int i = 0; i < j->rq.n; i++) completion += j->out[i].n_tokens;
    return json_pack("{s:i, s:I, s:I}", "prompt_tokens", j->rq.n_ids, "completion_tokens",
                     (json_int_t)completion, "total_tokens",
                     (json_int_t)(j->rq.n_ids + completion));
}

static json_t *chunk_json(const job *j, json_t *choices) {
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:o}", "id", j->id, "object",
                     j->rq.chat ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)j->created, "model", j->S->mi.id, "system_fingerprint", "rlpipe",
                     "choices", choices);
}

// One choice of a stream chunk: new text (or NULL), log-probs of tokens [t0, t1), finish.
static json_t *stream_choice(job *j, int i, const char *text, size_t text_len, int with_role,
                             int t0, int t1, const char *finish) {
    json_t *c = json_pack("{s:i}", "index", i);
    if (j->rq.chat) {
        json_t *delta = json_object();
        if (with_role) json_object_set_new(delta, "role", json_string("assistant"));
        if (text) json_object_set_new(delta, "content", json_stringn(text, text_len));
        json_object_set_new(c, "delta", delta);
    } else
        json_object_set_new(c, "text", json_stringn(text ? text : "", text ? text_len : 0));
    json_object_set_new(
        c, "logprobs",
        j->rq.logprobs && t1 > t0
            ? serve_logprobs_json(&j->S->mi, j->rq.chat, j->ch[i].lps + t0, t1 - t0, j->ch[i].sent)
            : json_null());
    json_object_set_new(c, "finish_reason", finish ? json_string(finish) : json_null());
    return c;
}

// Streams what sample i has that can be sent (mu held).
static void stream_progress(job *j, int i, const rl_completion *c, const char *bytes, size_t n,
                            int done) {
    choice *ch = &j->ch[i];
    if (j->rq.chat && !ch->started) {
        sse_event(j, chunk_json(j, json_pack("[o]", stream_choice(j, i, "", 0, 1, 0, 0, NULL))));
        ch->started = 1;
    }
    size_t upto = done ? n : serve_sendable_len(bytes, ch->sent, n, j->rq.stops, j->rq.n_stops);
    if (upto > ch->sent) {
        size_t tl;
        char *text = rl_utf8_lossy(bytes + ch->sent, upto - ch->sent, &tl);
        json_t *one = stream_choice(j, i, text, tl, 0, ch->tok_sent, c->n_tokens, NULL);
        free(text);
        sse_event(j, chunk_json(j, json_pack("[o]", one)));
        ch->sent = upto;
        ch->tok_sent = c->n_tokens;
    }
    if (done) {
        json_t *one = stream_choice(j, i, j->rq.chat ? NULL : "", 0, 0, ch->tok_sent, c->n_tokens,
                                    serve_finish_reason(c->finish));
        sse_event(j, chunk_json(j, json_pack("[o]", one)));
        ch->tok_sent = c->n_tokens;
    }
}

// The engine's per-token callback (scheduler thread, mu not held).
static int on_token(void *ctx, int sample, const rl_completion *c, const float *logits,
                    const char *bytes, size_t n, int done) {
    job *j = ctx;
    server *S = j->S;
    if (j->rq.logprobs)
        serve_token_logprobs(logits, S->model->V, S->mi.vocab_limit, c->tokens[c->n_tokens - 1],
                             j->rq.top_logprobs, &j->ch[sample].lps[c->n_tokens - 1]);
    pthread_mutex_lock(&S->mu);
    int stop = j->cancel != CANCEL_NONE;
    if (!stop && j->rq.stream) {
        stream_progress(j, sample, c, bytes, n, done);
        pthread_cond_broadcast(&j->cv);
    }
    pthread_mutex_unlock(&S->mu);
    return stop;
}

static json_t *error_object(int status, const char *type, const char *code, const char *msg) {
    serve_error e;
    serve_fail(&e, status, type, NULL, code, "%s", msg);
    char *s = serve_error_json(&e);
    json_t *o = json_loads(s, 0, NULL);
    free(s);
    return o;
}

// Ends a job (mu held): the stream gets its last events, the waiting connection is woken.
static void end_job(server *S, job *j) {
    if (j->state == JOB_RUNNING) S->slots_busy -= j->rq.n;
    j->state = JOB_ENDED;
    S->n_jobs--;
    if (j->rq.stream) {
        if (j->cancel == CANCEL_NONE) {
            if (j->rq.include_usage) {
                json_t *o = chunk_json(j, json_array());
                json_object_set_new(o, "usage", usage_json(j));
                sse_event(j, o);
            }
        } else if (j->cancel != CANCEL_CLIENT) {
            const char *msg = j->cancel == CANCEL_TIMEOUT    ? "the request timed out"
                              : j->cancel == CANCEL_SHUTDOWN ? "the server is shutting down"
                                                             : j->error;
            sse_event(j, error_object(j->cancel == CANCEL_TIMEOUT ? 408 : 503,
                                      j->cancel == CANCEL_ERROR ? "server_error" : "timeout_error",
                                      NULL, msg));
        }
        if (j->cancel != CANCEL_CLIENT) sb_add(&j->sse, "data: [DONE]\n\n", 14);
        j->sse_closed = 1;
    }
    pthread_cond_broadcast(&j->cv);
    job_unref(j);
}

// ---- the scheduler ---------------------------------------------------------------------------

static void sweep_running(server *S) { // mu held: end the jobs whose samples all finished
    int k = 0;
    for (int i = 0; i < S->n_running; i++) {
        job *j = S->running[i];
        if (j->req.n_live == 0)
            end_job(S, j);
        else
            S->running[k++] = j;
    }
    S->n_running = k;
}

static void *scheduler(void *arg) {
    server *S = arg;
    if (S->threads > 0) omp_set_num_threads(S->threads);
    rl_err err = {0};
    pthread_mutex_lock(&S->mu);
    for (;;) {
        for (int i = 0; i < S->n_running; i++)
            if (S->running[i]->cancel) rl_engine_cancel(S->engine, &S->running[i]->req);
        for (job **p = &S->q_head; *p;) { // cancelled while waiting
            job *j = *p;
            if (j->cancel) {
                *p = j->next;
                S->n_queued--;
                end_job(S, j);
            } else
                p = &j->next;
        }
        S->q_tail = NULL;
        for (job *j = S->q_head; j; j = j->next) S->q_tail = j;
        // Admit in arrival order while the head fits.
        while (S->q_head && rl_engine_free_slots(S->engine) >= S->q_head->rq.n) {
            job *j = S->q_head;
            S->q_head = j->next;
            if (!S->q_head) S->q_tail = NULL;
            S->n_queued--;
            j->req = (rl_stream_req){
                &j->rq.params, {j->rq.ids, j->rq.n_ids, 0, j->rq.n}, j->out, on_token, j, 0};
            if (rl_engine_submit(S->engine, &j->req, &err)) {
                snprintf(j->error, sizeof j->error, "%s", err.msg);
                j->cancel = CANCEL_ERROR;
                end_job(S, j);
                continue;
            }
            j->state = JOB_RUNNING;
            S->slots_busy += j->rq.n;
            S->running[S->n_running++] = j;
        }
        sweep_running(S);
        if (S->n_running == 0) {
            if (S->quit) break;
            pthread_cond_wait(&S->work, &S->mu);
            continue;
        }
        pthread_mutex_unlock(&S->mu);
        int rc = rl_engine_step(S->engine, &err);
        pthread_mutex_lock(&S->mu);
        if (rc) { // the engine ended every request; say why
            fprintf(stderr, "rlpipe serve: engine: %s\n", err.msg);
            for (int i = 0; i < S->n_running; i++) {
                snprintf(S->running[i]->error, sizeof S->running[i]->error, "engine: %.900s",
                         err.msg);
                S->running[i]->cancel = CANCEL_ERROR;
            }
        }
        sweep_running(S);
    }
    pthread_mutex_unlock(&S->mu);
    return NULL;
}

// ---- the request log -------------------------------------------------------------------------

static const char LOG_SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS requests ("
    " id INTEGER PRIMARY KEY,"
    " request_id TEXT,"           // chatcmpl-... / cmpl-... (NULL when refused before a job)
    " received_at TEXT NOT NULL," // UTC, ISO 8601
    " endpoint TEXT NOT NULL,"
    " status INTEGER NOT NULL," // HTTP status (200 for every stream that started)
    " outcome TEXT NOT NULL,"   // ok, client_disconnected, timeout, shutdown, error, rejected
    " stream INTEGER, n INTEGER, seed INTEGER,"
    " prompt_tokens INTEGER, completion_tokens INTEGER,"
    " finish_reasons TEXT," // JSON list, one per choice
    " seconds REAL NOT NULL,"
    " request TEXT,"  // the request body as received
    " response TEXT," // JSON list of the choices' texts
    " error TEXT)";   // the error message sent, if any

static int log_open(server *S, rl_err *err) {
    if (sqlite3_open_v2(S->log_path, &S->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(S->db, 5000) != SQLITE_OK ||
        sqlite3_exec(S->db, LOG_SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
        rl_fail(err, RL_EINPUT, "--log %s: %s", S->log_path,
                S->db ? sqlite3_errmsg(S->db) : "cannot open");
        sqlite3_close(S->db);
        S->db = NULL;
        return -1;
    }
    return 0;
}

typedef struct log_row {
    const char *request_id, *endpoint, *outcome, *request, *error;
    int status, stream, n, has_seed;
    long long seed;
    int prompt_tokens;
    long completion_tokens;
    char *finish, *response; // JSON texts or NULL (freed by log_write)
    double t0;
} log_row;

static void log_write(server *S, log_row *r) {
    if (!S->quiet)
        fprintf(stderr, "rlpipe serve: %s %d %s %d+%ld tokens %.3f s\n", r->endpoint, r->status,
                r->outcome, r->prompt_tokens, r->completion_tokens, rl_now() - r->t0);
    if (S->db) {
        char at[32];
        time_t now = time(NULL) - (time_t)(rl_now() - r->t0);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(S->db,
                               "INSERT INTO requests (request_id, received_at, endpoint, status, "
                               "outcome, stream, n, seed, prompt_tokens, completion_tokens, "
                               "finish_reasons, seconds, request, response, error) VALUES "
                               "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                               -1, &st, NULL) == SQLITE_OK) {
            int k = 1;
            sqlite3_bind_text(st, k++, r->request_id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, k++, at, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, k++, r->endpoint, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int(st, k++, r->status);
            sqlite3_bind_text(st, k++, r->outcome, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int(st, k++, r->stream);
            sqlite3_bind_int(st, k++, r->n);
            if (r->has_seed)
                sqlite3_bind_int64(st, k++, r->seed);
            else
                sqlite3_bind_null(st, k++);
            sqlite3_bind_int(st, k++, r->prompt_tokens);
            sqlite3_bind_int64(st, k++, r->completion_tokens);
            sqlite3_bind_text(st, k++, r->finish, -1, SQLITE_TRANSIENT);
            sqlite3_bind_double(st, k++, rl_now() - r->t0);
            sqlite3_bind_text(st, k++, r->request, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, k++, r->response, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, k++, r->error, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(st) != SQLITE_DONE)
                fprintf(stderr, "rlpipe serve: --log: %s\n", sqlite3_errmsg(S->db));
        }
        sqlite3_finalize(st);
    }
    free(r->finish);
    free(r->response);
}

// The log row of a finished job (mu not needed: the job has ended).
static void log_job(server *S, job *j, int status, const char *error) {
    json_t *fin = json_array(), *texts = json_array();
    long completion = 0;
    for (int i = 0; i < j->rq.n; i++) {
        json_array_append_new(fin, json_string(serve_finish_reason(j->out[i].finish)));
        json_array_append_new(texts, json_stringn(j->out[i].text ? j->out[i].text : "",
                                                  j->out[i].text ? j->out[i].text_len : 0));
        completion += j->out[i].n_tokens;
    }
    log_row r = {.request_id = j->id,
                 .endpoint = j->route == ROUTE_CHAT ? "/v1/chat/completions" : "/v1/completions",
                 .outcome = OUTCOME[j->cancel],
                 .request = j->body,
                 .error = error,
                 .status = status,
                 .stream = j->rq.stream,
                 .n = j->rq.n,
                 .has_seed = j->rq.has_seed,
                 .seed = (long long)j->rq.seed,
                 .prompt_tokens = j->rq.n_ids,
                 .completion_tokens = completion,
                 .finish = json_dumps(fin, JSON_COMPACT),
                 .response = json_dumps(texts, JSON_COMPACT),
                 .t0 = j->t0};
    json_decref(fin);
    json_decref(texts);
    log_write(S, &r);
}

// ---- HTTP ------------------------------------------------------------------------------------

// What one connection's current request has gathered.
typedef struct conn_ctx {
    int route;
    sbuf body;
    int too_big;
    int counted; // holds one of S->n_http
    double t0;
} conn_ctx;

static enum MHD_Result send_text(struct MHD_Connection *c, int status, const char *type,
                                 const char *text, const char *allow) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (allow) MHD_add_response_header(r, "Allow", allow);
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

// An error answer in OpenAI's format, logged as refused.
static enum MHD_Result send_error(server *S, struct MHD_Connection *c, const char *endpoint,
                                  const serve_error *e, const char *body, double t0,
                                  const char *allow) {
    char *s = serve_error_json(e);
    enum MHD_Result ret = send_text(c, e->status, "application/json", s, allow);
    free(s);
    log_row r = {.endpoint = endpoint,
                 .outcome = "rejected",
                 .request = body,
                 .error = e->message,
                 .status = e->status,
                 .t0 = t0};
    log_write(S, &r);
    return ret;
}

static int client_gone(int fd) {
    if (fd < 0) return 0;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

// One bounded wait on the job (mu held), then the watchdog checks: a vanished client or a
// passed deadline cancels the job.
static void watch_job(server *S, job *j) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&j->cv, &S->mu, &ts);
    if (j->cancel == CANCEL_NONE && j->state != JOB_ENDED) {
        if (client_gone(j->fd))
            j->cancel = CANCEL_CLIENT;
        else if (rl_now() > j->deadline)
            j->cancel = CANCEL_TIMEOUT;
        if (j->cancel) pthread_cond_signal(&S->work);
    }
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    job *j = cls;
    server *S = j->S;
    pthread_mutex_lock(&S->mu);
    for (;;) {
        if (j->cancel == CANCEL_NONE && j->state != JOB_ENDED && rl_now() > j->deadline) {
            j->cancel = CANCEL_TIMEOUT; // a stream that keeps producing still has a deadline
            pthread_cond_signal(&S->work);
        }
        if (j->sse.len > j->sse_sent) {
            size_t n = j->sse.len - j->sse_sent;
            if (n > max) n = max;
            memcpy(buf, j->sse.s + j->sse_sent, n);
            j->sse_sent += n;
            pthread_mutex_unlock(&S->mu);
            return (ssize_t)n;
        }
        if (j->sse_closed || j->cancel == CANCEL_CLIENT) break;
        watch_job(S, j);
    }
    int client = j->cancel == CANCEL_CLIENT;
    pthread_mutex_unlock(&S->mu);
    return client ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
}

static void sse_free(void *cls) { // the stream's response is gone: sent, or the client left
    job *j = cls;
    server *S = j->S;
    pthread_mutex_lock(&S->mu);
    if (j->state != JOB_ENDED && j->cancel == CANCEL_NONE) {
        j->cancel = CANCEL_CLIENT;
        pthread_cond_signal(&S->work);
    }
    while (j->state != JOB_ENDED) watch_job(S, j); // the scheduler lets go of the outputs
    pthread_mutex_unlock(&S->mu);
    log_job(S, j, 200, j->cancel == CANCEL_NONE ? NULL : OUTCOME[j->cancel]);
    pthread_mutex_lock(&S->mu);
    job_unref(j);
    pthread_mutex_unlock(&S->mu);
}

static json_t *response_json(server *S, job *j) {
    json_t *choices = json_array();
    for (int i = 0; i < j->rq.n; i++) {
        const rl_completion *c = &j->out[i];
        json_t *lp = j->rq.logprobs
                         ? serve_logprobs_json(&S->mi, j->rq.chat, j->ch[i].lps, c->n_tokens, 0)
                         : json_null();
        json_t *o;
        if (j->rq.chat)
            o = json_pack("{s:i, s:{s:s, s:s%, s:n}, s:o, s:s}", "index", i, "message", "role",
                          "assistant", "content", c->text, c->text_len, "refusal", "logprobs", lp,
                          "finish_reason", serve_finish_reason(c->finish));
        else
            o = json_pack("{s:i, s:s%, s:o, s:s}", "index", i, "text", c->text, c->text_len,
                          "logprobs", lp, "finish_reason", serve_finish_reason(c->finish));
        json_array_append_new(choices, o);
    }
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:o, s:o}", "id", j->id, "object",
                     j->rq.chat ? "chat.completion" : "text_completion", "created",
                     (json_int_t)j->created, "model", S->mi.id, "system_fingerprint", "rlpipe",
                     "choices", choices, "usage", usage_json(j));
}

static uint64_t fresh_seed(server *S) { // mu held
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rl_rng r = rl_rng_stream((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30), 0, S->counter, 7);
    return rl_rng_u64(&r);
}

static enum MHD_Result handle_generation(server *S, struct MHD_Connection *c, conn_ctx *cc) {
    const char *endpoint = cc->route == ROUTE_CHAT ? "/v1/chat/completions" : "/v1/completions";
    const char *body = cc->body.s ? cc->body.s : "";
    serve_error e;
    pthread_mutex_lock(&S->mu);
    uint64_t seed = fresh_seed(S);
    uint64_t number = ++S->counter;
    int stopping = S->stopping;
    pthread_mutex_unlock(&S->mu);
    if (stopping) {
        serve_fail(&e, 503, "server_error", NULL, NULL, "The server is shutting down");
        return send_error(S, c, endpoint, &e, body, cc->t0, NULL);
    }
    serve_req rq;
    if (serve_parse_request(&S->mi, cc->route == ROUTE_CHAT, body, cc->body.len, seed, &rq, &e))
        return send_error(S, c, endpoint, &e, body, cc->t0, NULL);

    job *j = rl_calloc(1, sizeof *j);
    j->S = S;
    j->rq = rq;
    // params points at the stop strings of the struct it lives in: re-point it at the copy.
    j->rq.params.stop_strings = (const char *const *)j->rq.stops;
    j->route = cc->route;
    j->t0 = cc->t0;
    j->deadline = cc->t0 + S->timeout_s;
    j->created = (long)time(NULL);
    snprintf(j->id, sizeof j->id, "%s-%llx%08llx", rq.chat ? "chatcmpl" : "cmpl",
             (unsigned long long)number, (unsigned long long)(seed & 0xffffffffu));
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    j->out = rl_calloc((size_t)rq.n, sizeof *j->out);
    j->ch = rl_calloc((size_t)rq.n, sizeof *j->ch);
    if (rq.logprobs)
        for (int i = 0; i < rq.n; i++)
            j->ch[i].lps = rl_calloc((size_t)rq.max_tokens, sizeof *j->ch[i].lps);
    j->body = rl_strdup(body);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 2;

    pthread_mutex_lock(&S->mu);
    int must_wait = S->n_queued > 0 || S->slots_busy + rq.n > S->max_batch;
    if (S->stopping || (must_wait && S->n_queued >= S->max_queue)) {
        int shutting = S->stopping;
        j->refs = 1;
        job_unref(j);
        pthread_mutex_unlock(&S->mu);
        if (shutting)
            serve_fail(&e, 503, "server_error", NULL, NULL, "The server is shutting down");
        else
            serve_fail(&e, 429, "rate_limit_error", NULL, "queue_full",
                       "The server is busy: %d requests are waiting (--max-queue %d); retry later",
                       S->max_queue, S->max_queue);
        return send_error(S, c, endpoint, &e, body, cc->t0, NULL);
    }
    j->state = JOB_QUEUED;
    if (S->q_tail)
        S->q_tail->next = j;
    else
        S->q_head = j;
    S->q_tail = j;
    S->n_queued++;
    S->n_jobs++;
    pthread_cond_signal(&S->work);

    if (rq.stream) {
        pthread_mutex_unlock(&S->mu);
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, j, sse_free);
        if (!r) { // sse_free never runs: let go here
            pthread_mutex_lock(&S->mu);
            j->cancel = CANCEL_CLIENT;
            pthread_cond_signal(&S->work);
            job_unref(j);
            pthread_mutex_unlock(&S->mu);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
    }

    while (j->state != JOB_ENDED && j->cancel != CANCEL_CLIENT) watch_job(S, j);
    if (j->cancel == CANCEL_CLIENT) {
        while (j->state != JOB_ENDED) watch_job(S, j);
        pthread_mutex_unlock(&S->mu);
        log_job(S, j, 499, "client disconnected");
        pthread_mutex_lock(&S->mu);
        job_unref(j);
        pthread_mutex_unlock(&S->mu);
        return MHD_NO; // close the connection
    }
    pthread_mutex_unlock(&S->mu);
    enum MHD_Result ret;
    if (j->cancel == CANCEL_NONE) {
        json_t *o = response_json(S, j);
        char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        ret = send_text(c, 200, "application/json", s, NULL);
        free(s);
        log_job(S, j, 200, NULL);
    } else {
        if (j->cancel == CANCEL_TIMEOUT)
            serve_fail(&e, 408, "timeout_error", NULL, "timeout",
                       "The request timed out after %g s (--timeout)", S->timeout_s);
        else if (j->cancel == CANCEL_SHUTDOWN)
            serve_fail(&e, 503, "server_error", NULL, NULL, "The server is shutting down");
        else
            serve_fail(&e, 500, "server_error", NULL, NULL, "%s", j->error);
        char *s = serve_error_json(&e);
        ret = send_text(c, e.status, "application/json", s, NULL);
        free(s);
        log_job(S, j, e.status, e.message);
    }
    pthread_mutex_lock(&S->mu);
    job_unref(j);
    pthread_mutex_unlock(&S->mu);
    return ret;
}

static json_t *model_json(server *S) {
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:i}", "id", S->mi.id, "object", "model", "created",
                     (json_int_t)S->started, "owned_by", "rlpipe", "root", S->model_dir,
                     "max_model_len", S->max_model_len);
}

static enum MHD_Result send_json_obj(struct MHD_Connection *c, int status, json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    enum MHD_Result ret = send_text(c, status, "application/json", s, NULL);
    free(s);
    return ret;
}

static int authorised(server *S, struct MHD_Connection *c) {
    if (!S->api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    return h && strncmp(h, "Bearer ", 7) == 0 && strcmp(h + 7, S->api_key) == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    server *S = cls;
    conn_ctx *cc = *con_cls;
    serve_error e;
    if (!cc) { // the headers are in: route the request
        cc = rl_calloc(1, sizeof *cc);
        cc->t0 = rl_now();
        *con_cls = cc;
        int is_get = strcmp(method, "GET") == 0, is_post = strcmp(method, "POST") == 0;
        if (strcmp(url, "/v1/chat/completions") == 0)
            cc->route = ROUTE_CHAT;
        else if (strcmp(url, "/v1/completions") == 0)
            cc->route = ROUTE_COMPLETIONS;
        if (!authorised(S, c)) {
            serve_fail(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
                       "Incorrect or missing API key (send 'Authorization: Bearer KEY')");
            return send_error(S, c, url, &e, NULL, cc->t0, NULL);
        }
        if (strcmp(url, "/health") == 0 && is_get)
            return send_text(c, 200, "text/plain", "ok\n", NULL);
        if (strcmp(url, "/v1/models") == 0 || strncmp(url, "/v1/models/", 11) == 0) {
            if (!is_get) {
                serve_fail(&e, 405, "invalid_request_error", NULL, "method_not_allowed",
                           "Method %s is not allowed on %s (use GET)", method, url);
                return send_error(S, c, url, &e, NULL, cc->t0, "GET");
            }
            if (url[10] == '/') {
                const char *id = url + 11;
                if (strcmp(id, S->mi.id) != 0 && strcmp(id, S->model_dir) != 0) {
                    serve_fail(&e, 404, "not_found_error", "model", "model_not_found",
                               "The model '%s' does not exist", id);
                    return send_error(S, c, url, &e, NULL, cc->t0, NULL);
                }
                return send_json_obj(c, 200, model_json(S));
            }
            return send_json_obj(
                c, 200, json_pack("{s:s, s:[o]}", "object", "list", "data", model_json(S)));
        }
        if (!cc->route) {
            serve_fail(&e, 404, "not_found_error", NULL, "not_found",
                       "No route %s %s (this server has GET /v1/models, POST "
                       "/v1/chat/completions, POST /v1/completions)",
                       method, url);
            return send_error(S, c, url, &e, NULL, cc->t0, NULL);
        }
        if (!is_post) {
            serve_fail(&e, 405, "invalid_request_error", NULL, "method_not_allowed",
                       "Method %s is not allowed on %s (use POST)", method, url);
            return send_error(S, c, url, &e, NULL, cc->t0, "POST");
        }
        // A declared body far beyond the limit is refused now; a smaller excess is read and
        // dropped first, so that the client sees the 413 rather than a reset connection.
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > S->max_body * 4 + (1u << 20)) {
            serve_fail(&e, 413, "invalid_request_error", NULL, "request_too_large",
                       "The request body (%s bytes) is larger than the limit of %zu bytes "
                       "(--max-body)",
                       cl, S->max_body);
            return send_error(S, c, url, &e, NULL, cc->t0, NULL);
        }
        pthread_mutex_lock(&S->mu);
        S->n_http++;
        cc->counted = 1;
        pthread_mutex_unlock(&S->mu);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!cc->too_big && cc->body.len + *upload_size > S->max_body) {
            cc->too_big = 1;
            free(cc->body.s);
            cc->body = (sbuf){0};
        }
        if (!cc->too_big) sb_add(&cc->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    const char *endpoint = cc->route == ROUTE_CHAT ? "/v1/chat/completions" : "/v1/completions";
    if (cc->too_big) {
        serve_fail(&e, 413, "invalid_request_error", NULL, "request_too_large",
                   "The request body is larger than the limit of %zu bytes (--max-body)",
                   S->max_body);
        return send_error(S, c, endpoint, &e, NULL, cc->t0, NULL);
    }
    return handle_generation(S, c, cc);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)c;
    (void)toe;
    server *S = cls;
    conn_ctx *cc = *con_cls;
    if (!cc) return;
    if (cc->counted) {
        pthread_mutex_lock(&S->mu);
        S->n_http--;
        pthread_mutex_unlock(&S->mu);
    }
    free(cc->body.s);
    free(cc);
    *con_cls = NULL;
}

// ---- setup -----------------------------------------------------------------------------------

static int open_listener(server *S, rl_err *err) {
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", S->port);
    int rc = getaddrinfo(S->host, port, &hints, &ai);
    if (rc != 0) return rl_fail(err, RL_EINPUT, "--host %s: %s", S->host, gai_strerror(rc));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return rl_fail(err, RL_EINPUT, "cannot listen on %s port %d: %s", S->host, S->port,
                       strerror(e));
    }
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    S->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                             : ((struct sockaddr_in *)&sa)->sin_port);
    int loopback = ai->ai_family == AF_INET
                       ? (ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr) >> 24) == 127
                       : IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr);
    freeaddrinfo(ai);
    if (!loopback)
        fprintf(stderr, "rlpipe serve: warning: listening on %s, beyond this machine%s\n", S->host,
                S->api_key ? "" : ", with no --api-key");
    S->listen_fd = fd;
    return 0;
}

// The chat template a model directory implies: its tokenizer_config.json's template names the
// format; the byte tokenizer's tiny models are trained on plain prompts.
static rl_chat_template detect_template(const char *dir, const rl_tokenizer *tok) {
    if (rl_tokenizer_kind_of(tok) == RL_TOKENIZER_BYTE) return RL_CHAT_PLAIN;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    json_t *o = json_load_file(path, 0, NULL);
    json_t *t = o ? json_object_get(o, "chat_template") : NULL;
    const char *s = t && json_is_string(t) ? json_string_value(t) : "";
    rl_chat_template r = strstr(s, "<｜Assistant｜>")                        ? RL_CHAT_R1
                         : strstr(s, "<|im_start|>")                         ? RL_CHAT_CHATML
                         : rl_tokenizer_special_id(tok, "<|im_start|>") >= 0 ? RL_CHAT_CHATML
                                                                             : RL_CHAT_PLAIN;
    json_decref(o);
    return r;
}

static int parse_int_opt(const char *name, const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi)
        return cli_usage_error("serve", "--%s: expected an integer in [%ld, %ld], got '%s'", name,
                               lo, hi, v);
    *out = x;
    return 0;
}

static int parse_num_opt(const char *name, const char *v, double lo, double hi, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (*end || end == v || !(x >= lo && x <= hi))
        return cli_usage_error("serve", "--%s: expected a number in [%g, %g], got '%s'", name, lo,
                               hi, v);
    *out = x;
    return 0;
}

static int parse_args(server *S, int argc, char **argv, const char **tmpl_name,
                      const char **served_name, const char **device) {
    const char *vals[16] = {0};
    static const char *const NAMES[] = {
        "model",         "host",          "port",           "served-model-name",
        "chat-template", "max-model-len", "max-batch",      "max-queue",
        "max-body",      "timeout",       "shutdown-grace", "api-key",
        "log",           "device",        "threads",        NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quiet") == 0) {
            S->quiet = 1;
            continue;
        }
        int k = -1;
        for (int n = 0; NAMES[n] && k < 0; n++)
            if (strncmp(a, "--", 2) == 0 && strcmp(a + 2, NAMES[n]) == 0) k = n;
        if (k < 0) return cli_usage_error("serve", "unknown argument '%s'", a);
        if (i + 1 >= argc) return cli_usage_error("serve", "%s needs a value", a);
        vals[k] = argv[++i];
    }
    if (!vals[0]) return cli_usage_error("serve", "--model DIR is required");
    S->model_dir = vals[0];
    S->host = vals[1] ? vals[1] : "127.0.0.1";
    *served_name = vals[3];
    *tmpl_name = vals[4];
    S->api_key = vals[11];
    S->log_path = vals[12];
    *device = vals[13] ? vals[13] : "cpu";
    long x;
    S->port = 8000;
    if (vals[2]) {
        if (parse_int_opt("port", vals[2], 0, 65535, &x)) return CLI_EXIT_USAGE;
        S->port = (int)x;
    }
    if (vals[5]) {
        if (parse_int_opt("max-model-len", vals[5], 2, 1 << 24, &x)) return CLI_EXIT_USAGE;
        S->max_model_len = (int)x;
    }
    S->max_batch = 32;
    if (vals[6]) {
        if (parse_int_opt("max-batch", vals[6], 1, 4096, &x)) return CLI_EXIT_USAGE;
        S->max_batch = (int)x;
    }
    S->max_queue = 256;
    if (vals[7]) {
        if (parse_int_opt("max-queue", vals[7], 0, 1 << 20, &x)) return CLI_EXIT_USAGE;
        S->max_queue = (int)x;
    }
    S->max_body = 8u << 20;
    if (vals[8]) {
        if (parse_int_opt("max-body", vals[8], 64, 1L << 30, &x)) return CLI_EXIT_USAGE;
        S->max_body = (size_t)x;
    }
    S->timeout_s = 600;
    if (vals[9] && parse_num_opt("timeout", vals[9], 0.001, 1e7, &S->timeout_s))
        return CLI_EXIT_USAGE;
    S->grace_s = 30;
    if (vals[10] && parse_num_opt("shutdown-grace", vals[10], 0, 1e6, &S->grace_s))
        return CLI_EXIT_USAGE;
    if (vals[14]) {
        if (parse_int_opt("threads", vals[14], 1, 4096, &x)) return CLI_EXIT_USAGE;
        S->threads = (int)x;
    }
    if (S->api_key && !S->api_key[0]) return cli_usage_error("serve", "--api-key is empty");
    return 0;
}

static int load_model(server *S, const char *tmpl_name, const char *served_name, const char *device,
                      rl_err *err) {
    char tok_path[4096];
    RL_TRY(rl_model_tokenizer_path(S->model_dir, tok_path, sizeof tok_path, err));
    if (rl_tokenizer_load(&S->tok, tok_path, err)) return rl_err_prefix(err, "tokenizer: ");
    if (strcmp(device, "cpu") != 0 && strcmp(device, "cuda") != 0)
        return rl_fail(err, RL_EINPUT, "--device: expected cpu or cuda, got '%s'", device);
    S->be = rl_backend_get(device, err);
    if (!S->be) return -1;
    RL_TRY(rl_model_load(&S->model, S->model_dir, S->be, err));
    rl_chat_template tmpl =
        tmpl_name ? rl_chat_template_from_name(tmpl_name) : detect_template(S->model_dir, S->tok);
    if (tmpl == RL_CHAT_INVALID)
        return rl_fail(err, RL_EINPUT, "--chat-template: expected plain, chatml or r1, got '%s'",
                       tmpl_name);
    if (rl_chat_template_check(tmpl, S->tok, err)) return rl_err_prefix(err, "--chat-template: ");
    int vocab = rl_tokenizer_vocab_size(S->tok);
    if (vocab > S->model->V)
        return rl_fail(err, RL_EINPUT, "%s: the tokenizer has %d ids, the model only %d rows",
                       S->model_dir, vocab, S->model->V);
    int mpe = S->model->cfg.max_position_embeddings;
    if (S->max_model_len == 0) S->max_model_len = mpe > 0 && mpe < 8192 ? mpe : 8192;
    RL_TRY(
        rl_engine_create(&S->engine, S->model, S->tok, S->max_batch, S->max_model_len, vocab, err));
    S->mi = (serve_model_info){.id = served_name ? served_name : S->model_dir,
                               .alt_id = S->model_dir,
                               .tok = S->tok,
                               .tmpl = tmpl,
                               .stop_ids = S->stop_ids,
                               .n_stop_ids = rl_chat_stop_ids(tmpl, S->tok, S->stop_ids),
                               .max_model_len = S->max_model_len,
                               .max_n = S->max_batch,
                               .vocab_limit = vocab};
    return 0;
}

static void free_server(server *S) {
    rl_engine_free(S->engine);
    rl_model_free(S->model);
    rl_tokenizer_free(S->tok);
    if (S->be) rl_backend_release(S->be);
    if (S->db) sqlite3_close(S->db);
    if (S->listen_fd >= 0) close(S->listen_fd);
    S->listen_fd = -1;
    free(S->running);
}

// Waits (mu held) until pred holds or `seconds` pass. Returns 1 if it holds.
static int wait_until(server *S, int (*pred)(server *), double seconds) {
    double end = rl_now() + seconds;
    while (!pred(S) && rl_now() < end) {
        pthread_mutex_unlock(&S->mu);
        usleep(20 * 1000);
        pthread_mutex_lock(&S->mu);
    }
    return pred(S);
}
static int no_jobs(server *S) {
    return S->n_jobs == 0;
}
static int no_http(server *S) {
    return S->n_http == 0;
}

// SIGTERM / SIGINT write the signal number to this pipe; the main thread reads it. (A handler
// rather than sigwait: threads that libraries started before main, e.g. OpenBLAS's, may be the
// ones the signal is delivered to.)
static int shutdown_pipe[2] = {-1, -1};

static void on_shutdown_signal(int sig) {
    unsigned char b = (unsigned char)sig;
    ssize_t n = write(shutdown_pipe[1], &b, 1);
    (void)n;
}

static int wait_for_shutdown_signal(void) {
    unsigned char b = 0;
    while (read(shutdown_pipe[0], &b, 1) < 0 && errno == EINTR) {
    }
    return b;
}

int cmd_serve(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }

    server S = {0};
    S.listen_fd = -1;
    const char *tmpl_name = NULL, *served_name = NULL, *device = NULL;
    int rc = parse_args(&S, argc, argv, &tmpl_name, &served_name, &device);
    if (rc) return rc;
    if (S.threads > 0) omp_set_num_threads(S.threads);
    rl_err err = {0};
    if (load_model(&S, tmpl_name, served_name, device, &err) ||
        (S.log_path && log_open(&S, &err)) || open_listener(&S, &err)) {
        rc = cli_report(&err);
        free_server(&S);
        return rc;
    }
    if (pipe2(shutdown_pipe, O_CLOEXEC) != 0) {
        perror("rlpipe serve: pipe");
        free_server(&S);
        return CLI_EXIT_INTERNAL;
    }
    struct sigaction sa = {.sa_handler = on_shutdown_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    // The threads started from here on (OpenMP, libmicrohttpd, the scheduler) keep the shutdown
    // signals blocked, so only the main thread or a library's own thread runs the handler.
    sigset_t sigs, old_mask;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, &old_mask);
    S.started = (long)time(NULL);
    S.running = rl_calloc((size_t)S.max_batch, sizeof *S.running);
    pthread_mutex_init(&S.mu, NULL);
    pthread_cond_init(&S.work, NULL);
    pthread_t sched;
    pthread_create(&sched, NULL, scheduler, &S);
    S.d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                               MHD_USE_POLL | MHD_USE_ITC,
                           0, NULL, NULL, on_request, &S, MHD_OPTION_LISTEN_SOCKET, S.listen_fd,
                           MHD_OPTION_NOTIFY_COMPLETED, on_completed, &S,
                           MHD_OPTION_CONNECTION_LIMIT, (unsigned)(S.max_queue + S.max_batch + 64),
                           // Idle connections close after this; it must outlast the longest
                           // request, which a handler may spend blocked without socket activity.
                           MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(S.timeout_s + 60),
                           MHD_OPTION_END);
    if (!S.d) {
        fprintf(stderr, "rlpipe serve: cannot start the HTTP server\n");
        rc = CLI_EXIT_INTERNAL;
    } else {
        fprintf(stderr,
                "rlpipe serve: model '%s' (chat template %s, max_model_len %d, batch %d, queue "
                "%d)\nrlpipe serve: listening on http://%s%s%s:%d\n",
                S.mi.id, rl_chat_template_name(S.mi.tmpl), S.max_model_len, S.max_batch,
                S.max_queue, strchr(S.host, ':') ? "[" : "", S.host, strchr(S.host, ':') ? "]" : "",
                S.port);
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
        int sig = wait_for_shutdown_signal();
        fprintf(stderr, "rlpipe serve: %s: finishing running requests (up to %g s)\n",
                sig == SIGTERM ? "SIGTERM" : "SIGINT", S.grace_s);
        // Stop taking connections, then let running requests finish for the grace period.
        MHD_socket lfd = MHD_quiesce_daemon(S.d);
        if (lfd != MHD_INVALID_SOCKET) close(lfd);
        S.listen_fd = -1;
        pthread_mutex_lock(&S.mu);
        S.stopping = 1;
        if (!wait_until(&S, no_jobs, S.grace_s)) {
            int n = 0;
            for (job *j = S.q_head; j; j = j->next, n++) j->cancel = CANCEL_SHUTDOWN;
            for (int i = 0; i < S.n_running; i++, n++)
                if (!S.running[i]->cancel) S.running[i]->cancel = CANCEL_SHUTDOWN;
            fprintf(stderr, "rlpipe serve: cancelling %d requests\n", n);
            pthread_cond_signal(&S.work);
            wait_until(&S, no_jobs, 30);
        }
        wait_until(&S, no_http, 5); // answers on their way out
        S.quit = 1;
        pthread_cond_signal(&S.work);
        pthread_mutex_unlock(&S.mu);
        MHD_stop_daemon(S.d);
    }
    pthread_mutex_lock(&S.mu);
    S.quit = 1;
    pthread_cond_signal(&S.work);
    pthread_mutex_unlock(&S.mu);
    pthread_join(sched, NULL);
    pthread_mutex_destroy(&S.mu);
    pthread_cond_destroy(&S.work);
    free_server(&S);
    if (rc == 0) fprintf(stderr, "rlpipe serve: stopped\n");
    close(shutdown_pipe[0]);
    close(shutdown_pipe[1]);
    shutdown_pipe[0] = shutdown_pipe[1] = -1;
    return rc;
}
