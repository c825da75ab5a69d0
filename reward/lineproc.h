/*
 * lineproc: a verifier that is an external program speaking the line protocol.
 *
 * The program is started with /bin/sh -c in the working directory, in its own process group, with
 * the environment of rlpipe plus PYTHONUNBUFFERED=1. A plain "program args..." command is
 * exec'ed (the program is our child); anything else (pipes, &&, variable assignments) runs under
 * sh with a TERM trap. Its stdin and stdout are one end of a Unix socket pair; its stderr is
 * rlpipe's stderr (tracebacks show up there). It is started lazily on the first request and kept
 * running between requests.
 *
 * Request (one line, compact JSON, UTF-8 with invalid bytes replaced by U+FFFD):
 *   {"prompt": "...", "completion": "...", "tokens": [ids] (only when known), "n_tokens": n,
 *    "max_tokens": m, "truncated": false, "answer": "..." | "tests": [{"input": "...",
 *    "output": "..."} | {"assert": "..."}], "task": "..." (when known), "options": {"k": "v"}}
 * Reply (one line): {"score": x, "status": "ok|skipped|error|timeout", "detail": "..."}; only
 *   "score" is required (status defaults to "ok"); x must be a number in [0, 1].
 *
 * Failures are per request and never fatal: no reply within timeout_s (option, default 10,
 * fractional allowed) -> TIMEOUT; the program exits or closes stdout -> ERROR naming its exit
 * code or signal; a line that is not JSON (or longer than 1 MiB) -> ERROR; output that arrives
 * when no request is pending (a second reply line) -> the process is replaced before the next
 * request. The process is stopped with SIGTERM to its group, 100 ms, then SIGKILL to the group,
 * and reaped; the next request starts a fresh one. A JSON reply without a valid "score" or
 * "status" is an ERROR for that request only (the process stays). destroy closes the program's
 * stdin, gives it 200 ms to exit on its own, then stops it the same way: no zombies.
 *
 * Owns: one child process (at most) and its socket per instance. Not thread-safe: the registry
 * gives each worker thread its own instance.
 */
#ifndef RL_REWARD_LINEPROC_H
#define RL_REWARD_LINEPROC_H

#include "reward/verifier_abi.h"

// The ABI table of line-protocol verifiers (create is NULL: use rl_lineproc_create).
const rl_verifier_api *rl_lineproc_api(void);

// Parses the options (timeout_s is taken; all of them are forwarded in "options"). NULL with a
// reason in err on a bad option value. Starts nothing.
void *rl_lineproc_create(const char *command, const rl_voption *opts, int n_opts, char *err,
                         size_t err_len);

// The process id of the running child, or 0 (for tests).
int rl_lineproc_pid(const void *self);

#endif
