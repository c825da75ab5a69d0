/*
 * progress: the one-line progress display of long commands. On a terminal it redraws one line in
 * place (step, elapsed, ETA, and whatever the caller reports: loss, reward, tokens/s); when output
 * is not a terminal it prints plain periodic lines instead, so logs stay readable.
 *
 * Owns: nothing but its own small state; writes to the stream it is given.
 */
#ifndef RL_PROGRESS_H
#define RL_PROGRESS_H

#include <stdio.h>

typedef struct rl_progress {
    FILE *out;
    int live;          // 1: redraw one line in place (a terminal); 0: periodic plain lines
    int quiet;         // 1: print nothing (logging.progress: never)
    const char *label; // "sft", "rl", "eval"
    long total;        // total steps, or 0 when bounded by time
    double budget_s;   // time budget, or 0
    double start, last_print, plain_every_s;
    int drawn; // a live line is on screen
} rl_progress;

// mode: 0 auto (live when `out` is a terminal), 1 always live, 2 never print.
void rl_progress_start(rl_progress *p, FILE *out, int mode, const char *label, long total,
                       double budget_s);
// Reports step `step` (1-based) with a caller-formatted status ("loss 0.53 | 24.1k tok/s").
void rl_progress_update(rl_progress *p, long step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
// Prints a message on its own line without garbling the live line.
void rl_progress_note(rl_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Ends the live line.
void rl_progress_finish(rl_progress *p);

#endif
