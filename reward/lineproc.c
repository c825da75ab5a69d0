// lineproc: external line-protocol verifiers, one child process per instance. See lineproc.h.
#define _GNU_SOURCE
#include "reward/lineproc.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>

extern char **environ;

#define REPLY_MAX         (1u << 20) // longest reply line accepted, bytes
#define DEFAULT_TIMEOUT_S 10.0

typedef struct lineproc {
    char *script;     // what /bin/sh -c runs: "exec <command>" or "trap ...; <command>"
    json_t *options;  // {"key": "value", ...} forwarded in every request
    double timeout_s; // per request, from sending to the end of the reply line
    pid_t pid;        // the running child (also its process group id), or 0
    int fd;           // our end of the socket pair, or -1
    char *buf;        // [cap] received bytes not yet consumed
    size_t len, cap;
} lineproc;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_ms(int ms) {
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void fail(rl_vresult *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(rl_vresult *out, int status, const char *fmt, ...) {
    out->score = 0.0;
    out->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->detail, sizeof out->detail, fmt, ap);
    va_end(ap);
}

// ---- create / destroy ----------------------------------------------------------------------------

// The shell script for a command. A plain "program args..." is exec'ed, so the program itself is
// our child and we reap it. Anything else (pipes, &&, assignments, ...) keeps sh as the parent,
// with a TERM trap so that sh outlives its children on SIGTERM and reaps them: this process may
// run under an init that never reaps orphans.
static char *make_script(const char *command) {
    size_t first = strcspn(command, " \t");
    int plain = strcspn(command, "\n;&|()`$<>") == strlen(command);
    for (size_t i = 0; plain && i < first; i++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./+-",
                       command[i]) != NULL;
    const char *prefix = plain ? "exec " : "trap 'exit 143' TERM; ";
    size_t n = strlen(prefix) + strlen(command) + 1;
    char *script = malloc(n);
    if (script) snprintf(script, n, "%s%s", prefix, command);
    return script;
}

void *rl_lineproc_create(const char *command, const rl_voption *opts, int n_opts, char *err,
                         size_t err_len) {
    double timeout_s = DEFAULT_TIMEOUT_S;
    if (!command || !*command) {
        snprintf(err, err_len, "command is empty");
        return NULL;
    }
    json_t *options = json_object();
    for (int i = 0; i < n_opts; i++) {
        const char *k = opts[i].key, *v = opts[i].value ? opts[i].value : "";
        if (strcmp(k, "timeout_s") == 0) {
            char *end;
            timeout_s = strtod(v, &end);
            if (!*v || *end || !isfinite(timeout_s) || timeout_s <= 0 || timeout_s > 86400) {
                snprintf(err, err_len, "option timeout_s: expected seconds in (0, 86400], got '%s'",
                         v);
                json_decref(options);
                return NULL;
            }
        }
        json_t *jv = json_string(v);
        if (!jv || json_object_set_new(options, k, jv) != 0) {
            snprintf(err, err_len, "option '%s': key or value is not valid UTF-8", k);
            json_decref(options);
            return NULL;
        }
    }
    lineproc *lp = calloc(1, sizeof *lp);
    char *cmd = make_script(command);
    if (!lp || !cmd) {
        free(lp);
        free(cmd);
        json_decref(options);
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    lp->script = cmd;
    lp->options = options;
    lp->timeout_s = timeout_s;
    lp->fd = -1;
    return lp;
}

int rl_lineproc_pid(const void *self) {
    return self ? (int)((const lineproc *)self)->pid : 0;
}

// Waits up to ms for the child to end, without reaping it (WNOWAIT), so that its pid, which is
// also its process group id, stays reserved for a later killpg. 1 when it has ended.
static int peek_exit(pid_t pid, int ms, siginfo_t *info) {
    for (int waited = 0;; waited += 2) {
        memset(info, 0, sizeof *info);
        if (waitid(P_PID, (id_t)pid, info, WEXITED | WNOHANG | WNOWAIT) == 0 && info->si_pid == pid)
            return 1;
        if (waited >= ms) return 0;
        sleep_ms(2);
    }
}

// Ends the child and everything in its process group, then reaps it. grace_ms: how long it may
// take to exit on its own first (after EOF on its stdin, or when it closed its stdout). Then
// SIGTERM to the group, up to 100 ms for the child to exit (a shell wrapper reaps its own
// children then, so no orphan is left for an init that may not reap), then SIGKILL to the group.
// why (may be NULL) receives how the child ended on its own.
static void stop_child(lineproc *lp, int grace_ms, char *why, size_t why_len) {
    if (!lp->pid) return;
    siginfo_t info;
    int ended = peek_exit(lp->pid, grace_ms, &info);
    if (why && why_len) {
        if (!ended)
            snprintf(why, why_len, "stopped replying and was killed");
        else if (info.si_code == CLD_EXITED)
            snprintf(why, why_len, "exited with code %d", info.si_status);
        else
            snprintf(why, why_len, "was killed by signal %d", info.si_status);
    }
    if (!ended) {
        kill(-lp->pid, SIGTERM);
        peek_exit(lp->pid, 100, &info);
    }
    kill(-lp->pid, SIGKILL); // whatever is left of the group
    while (waitpid(lp->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    if (lp->fd >= 0) close(lp->fd);
    lp->fd = -1;
    lp->pid = 0;
    lp->len = 0;
}

static void lineproc_destroy(void *self) {
    lineproc *lp = self;
    if (!lp) return;
    if (lp->pid) {
        shutdown(lp->fd, SHUT_WR); // EOF on the program's stdin: a polite request to exit
        stop_child(lp, 200, NULL, 0);
    }
    json_decref(lp->options);
    free(lp->script);
    free(lp->buf);
    free(lp);
}

// ---- starting the program ------------------------------------------------------------------------

static int start_child(lineproc *lp, char *why, size_t why_len) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(why, why_len, "socketpair: %s", strerror(errno));
        return -1;
    }
    size_t n_env = 0;
    while (environ && environ[n_env]) n_env++;
    char **envp = malloc((n_env + 2) * sizeof *envp);
    if (!envp) {
        close(sv[0]);
        close(sv[1]);
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++)
        if (strncmp(environ[i], "PYTHONUNBUFFERED=", 17) != 0) envp[k++] = environ[i];
    envp[k++] = (char *)"PYTHONUNBUFFERED=1"; // a Python verifier need not remember to flush
    envp[k] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(&fa, 3); // no other descriptor of ours leaks in
#endif
    posix_spawnattr_init(&attr);
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &dfl);
    posix_spawnattr_setpgroup(&attr, 0); // its own process group, so one kill reaches everything
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {(char *)"sh", (char *)"-c", lp->script, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(envp);
    close(sv[1]);
    if (rc != 0) {
        close(sv[0]);
        snprintf(why, why_len, "cannot start /bin/sh: %s", strerror(rc));
        return -1;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    lp->pid = pid;
    lp->fd = sv[0];
    lp->len = 0;
    return 0;
}

// ---- one request ---------------------------------------------------------------------------------

static int wait_fd(int fd, short events, double deadline) {
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0) return -1;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)ceil(left * 1000.0));
        if (r > 0) return 0;
        if (r < 0 && errno != EINTR) return -2;
    }
}

// 0 sent; -1 timeout; -2 the program closed its end or died.
static int send_all(lineproc *lp, const char *data, size_t len, double deadline) {
    while (len > 0) {
        ssize_t w = send(lp->fd, data, len, MSG_NOSIGNAL);
        if (w > 0) {
            data += w;
            len -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(lp->fd, POLLOUT, deadline);
            if (r) return r;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else {
            return -2;
        }
    }
    return 0;
}

// Reads until a '\n' is buffered: 0 with *line_len (excluding the newline); -1 timeout; -2 EOF
// or error; -3 the line is longer than REPLY_MAX.
static int read_line(lineproc *lp, double deadline, size_t *line_len) {
    size_t scanned = 0;
    for (;;) {
        char *nl = lp->len > scanned ? memchr(lp->buf + scanned, '\n', lp->len - scanned) : NULL;
        if (nl) {
            *line_len = (size_t)(nl - lp->buf);
            return 0;
        }
        scanned = lp->len;
        if (lp->len > REPLY_MAX) return -3;
        if (lp->cap - lp->len < 4096) {
            size_t cap = lp->cap ? 2 * lp->cap : 8192;
            char *nb = realloc(lp->buf, cap);
            if (!nb) return -2;
            lp->buf = nb;
            lp->cap = cap;
        }
        ssize_t r = recv(lp->fd, lp->buf + lp->len, lp->cap - lp->len, 0);
        if (r > 0)
            lp->len += (size_t)r;
        else if (r == 0)
            return -2;
        else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wait_fd(lp->fd, POLLIN, deadline);
            if (w) return w;
        } else if (errno != EINTR)
            return -2;
    }
}

// A JSON string of text; bytes that are not valid UTF-8 become U+FFFD.
static json_t *utf8_string(const char *text) {
    json_t *j = json_string(text ? text : "");
    if (j) return j;
    size_t n = strlen(text), k = 0;
    char *clean = malloc(3 * n + 1);
    if (!clean) return NULL;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
    while (n > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t used = utf8proc_iterate(p, (utf8proc_ssize_t)n, &cp);
        if (used > 0 && cp > 0) {
            memcpy(clean + k, p, (size_t)used);
            k += (size_t)used;
        } else {
            memcpy(clean + k, "\xEF\xBF\xBD", 3);
            k += 3;
            used = 1;
        }
        p += used;
        n -= (size_t)used;
    }
    clean[k] = 0;
    j = json_string(clean);
    free(clean);
    return j;
}

static char *build_request(const lineproc *lp, const rl_vsample *s, size_t *len) {
    json_t *req = json_object();
    json_object_set_new(req, "prompt", utf8_string(s->prompt));
    json_object_set_new(req, "completion", utf8_string(s->completion));
    if (s->tokens) {
        json_t *toks = json_array();
        for (int32_t i = 0; i < s->n_tokens; i++)
            json_array_append_new(toks, json_integer(s->tokens[i]));
        json_object_set_new(req, "tokens", toks);
    }
    json_object_set_new(req, "n_tokens", json_integer(s->n_tokens));
    json_object_set_new(req, "max_tokens", json_integer(s->max_tokens));
    json_object_set_new(req, "truncated", json_boolean(s->truncated));
    if (s->answer) json_object_set_new(req, "answer", utf8_string(s->answer));
    if (s->tests) {
        json_t *tests = json_array();
        for (int32_t i = 0; i < s->n_tests; i++) {
            const rl_vtest *t = &s->tests[i];
            json_t *jt = json_object();
            if (t->kind == RL_VTEST_ASSERT) {
                json_object_set_new(jt, "assert", utf8_string(t->input));
            } else {
                json_object_set_new(jt, "input", utf8_string(t->input));
                json_object_set_new(jt, "output", utf8_string(t->output));
            }
            json_array_append_new(tests, jt);
        }
        json_object_set_new(req, "tests", tests);
    }
    if (s->task) json_object_set_new(req, "task", utf8_string(s->task));
    json_object_set(req, "options", lp->options);
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!text) return NULL;
    *len = strlen(text);
    char *line = realloc(text, *len + 2);
    if (!line) {
        free(text);
        return NULL;
    }
    line[(*len)++] = '\n';
    line[*len] = 0;
    return line;
}

static int parse_status(const char *word) {
    static const char *const names[] = {"ok", "skipped", "error", "timeout"};
    for (int i = 0; i < 4; i++)
        if (strcmp(word, names[i]) == 0) return i;
    return -1;
}

// Fills out from one reply line. Returns -1 when the line is not JSON at all (the stream is then
// not trusted any more), 0 otherwise (including well-formed JSON with bad fields: ERROR).
static int parse_reply(const char *line, size_t len, rl_vresult *out) {
    json_error_t jerr;
    json_t *j = json_loadb(line, len, JSON_DECODE_ANY, &jerr);
    if (!j) {
        fail(out, RL_VERIFY_ERROR, "reply is not JSON: %.60s", line);
        return -1;
    }
    json_t *score = json_object_get(j, "score");
    json_t *status = json_object_get(j, "status");
    json_t *detail = json_object_get(j, "detail");
    int st = RL_VERIFY_OK;
    if (!json_is_object(j)) {
        fail(out, RL_VERIFY_ERROR, "reply is not a JSON object: %.60s", line);
    } else if (status &&
               (!json_is_string(status) || (st = parse_status(json_string_value(status))) < 0)) {
        fail(out, RL_VERIFY_ERROR,
             "reply has an unknown status (want ok, skipped, error, timeout)");
    } else if (!json_is_number(score)) {
        fail(out, RL_VERIFY_ERROR, "reply has no numeric \"score\": %.60s", line);
    } else {
        out->score = json_number_value(score);
        out->status = st;
        if (st != RL_VERIFY_OK) out->score = 0.0;
        if (json_is_string(detail))
            snprintf(out->detail, sizeof out->detail, "%s", json_string_value(detail));
        else
            out->detail[0] = 0;
        if (st == RL_VERIFY_OK && !(out->score >= 0.0 && out->score <= 1.0))
            fail(out, RL_VERIFY_ERROR, "reply score %g is outside [0, 1]", out->score);
    }
    json_decref(j);
    return 0;
}

static void lineproc_score(void *self, const rl_vsample *s, rl_vresult *out) {
    lineproc *lp = self;
    char why[160];
    // Output nobody asked for (a second reply line, stray prints) would pair the next reply
    // with the wrong request: start over with a fresh process instead.
    if (lp->pid) {
        char probe;
        ssize_t r = recv(lp->fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
        if (lp->len > 0 || r >= 0) stop_child(lp, 0, NULL, 0);
    }
    if (!lp->pid && start_child(lp, why, sizeof why) != 0) {
        fail(out, RL_VERIFY_ERROR, "%s", why);
        return;
    }

    size_t req_len = 0;
    char *req = build_request(lp, s, &req_len);
    if (!req) {
        fail(out, RL_VERIFY_ERROR, "cannot encode the request as JSON");
        return;
    }
    double deadline = now_s() + lp->timeout_s;
    int r = send_all(lp, req, req_len, deadline);
    free(req);
    size_t line_len = 0;
    if (r == 0) r = read_line(lp, deadline, &line_len);
    if (r == -1) {
        stop_child(lp, 0, NULL, 0);
        fail(out, RL_VERIFY_TIMEOUT, "no reply within %g s; program killed", lp->timeout_s);
        return;
    }
    if (r == -2) {
        stop_child(lp, 50, why, sizeof why);
        fail(out, RL_VERIFY_ERROR, "program %s before replying", why);
        return;
    }
    if (r == -3) {
        stop_child(lp, 0, NULL, 0);
        fail(out, RL_VERIFY_ERROR, "reply line longer than %u bytes", REPLY_MAX);
        return;
    }
    lp->buf[line_len] = 0; // the '\n'
    int bad = parse_reply(lp->buf, line_len, out);
    size_t rest = lp->len - line_len - 1;
    memmove(lp->buf, lp->buf + line_len + 1, rest);
    lp->len = rest;
    if (bad) stop_child(lp, 0, NULL, 0);
}

static const rl_verifier_api LINEPROC_API = {
    .abi_version = RL_VERIFIER_ABI_VERSION,
    .name = "command",
    .thread_safe = 0,
    .create = NULL,
    .score = lineproc_score,
    .score_group = NULL,
    .destroy = lineproc_destroy,
};

const rl_verifier_api *rl_lineproc_api(void) {
    return &LINEPROC_API;
}
