// progress: live one-line display on a terminal, plain periodic lines otherwise. See progress.h.
#define _POSIX_C_SOURCE 200809L
#include "cli/progress.h"

#include <stdarg.h>
#include <unistd.h>

#include "kernels/rl_error.h"

void rl_progress_start(rl_progress *p, FILE *out, int mode, const char *label, long total,
                       double budget_s) {
    *p = (rl_progress){0};
    p->out = out;
    p->quiet = mode == 2;
    p->live = mode == 1 || (mode == 0 && isatty(fileno(out)));
    p->label = label;
    p->total = total;
    p->budget_s = budget_s;
    p->start = rl_now();
    p->last_print = 0;
    p->plain_every_s = 10.0;
}

static void format_clock(char *buf, size_t n, double s) {
    if (s < 0) s = 0;
    long t = (long)(s + 0.5);
    snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void rl_progress_update(rl_progress *p, long step, const char *fmt, ...) {
    if (p->quiet) return;
    double now = rl_now(), el = now - p->start;
    if (!p->live && p->last_print > 0 && now - p->last_print < p->plain_every_s) return;
    if (p->live && p->last_print > 0 && now - p->last_print < 0.1) return;
    p->last_print = now;
    char status[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(status, sizeof status, fmt, ap);
    va_end(ap);
    double eta = -1;
    if (p->total > 0 && step > 0)
        eta = el / step * (p->total - step);
    else if (p->budget_s > 0)
        eta = p->budget_s - el;
    char elapsed[32], etas[32] = "?";
    format_clock(elapsed, sizeof elapsed, el);
    if (eta >= 0) format_clock(etas, sizeof etas, eta);
    char steps[64];
    if (p->total > 0)
        snprintf(steps, sizeof steps, "%ld/%ld", step, p->total);
    else
        snprintf(steps, sizeof steps, "%ld", step);
    if (p->live) {
        fprintf(p->out, "\r\033[K[%s] step %s | %s | ETA %s | %s", p->label, steps, elapsed, etas,
                status);
        p->drawn = 1;
    } else {
        fprintf(p->out, "[%s] step %s | %s | ETA %s | %s\n", p->label, steps, elapsed, etas,
                status);
    }
    fflush(p->out);
}

void rl_progress_note(rl_progress *p, const char *fmt, ...) {
    if (p->quiet) return;
    if (p->drawn) {
        fprintf(p->out, "\r\033[K");
        p->drawn = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    fflush(p->out);
}

void rl_progress_finish(rl_progress *p) {
    if (p->quiet) return;
    if (p->drawn) {
        fputc('\n', p->out);
        p->drawn = 0;
    }
    fflush(p->out);
}
