// report_html: the report document as one self-contained HTML page. See report.h.
//
// The page is static HTML for what reads well without a script (the runs, notes and evaluation
// tables, escaped here) plus the document itself as JSON inside <script type="application/json">
// and the drawing script (report_page.js, embedded at build time) that turns it into SVG charts
// and the sample browser. Nothing is loaded from anywhere else.
#define _POSIX_C_SOURCE 200809L
#include "rollout/report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef RLPIPE_VERSION
#define RLPIPE_VERSION "unknown"
#endif

extern const char RL_REPORT_JS[];  // report_page.js
extern const char RL_REPORT_CSS[]; // report_page.css

// ---- a growable string ------------------------------------------------------------------------

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void put_n(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2 + 256;
        b->p = rl_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void put(buf *b, const char *s) {
    put_n(b, s, strlen(s));
}

static void putf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof tmp) n = (int)sizeof tmp - 1;
    if (n > 0) put_n(b, tmp, (size_t)n);
}

// Text as HTML character data or a quoted attribute value.
static void put_esc(buf *b, const char *s) {
    if (!s) return;
    for (; *s; s++) {
        switch (*s) {
        case '&':
            put(b, "&amp;");
            break;
        case '<':
            put(b, "&lt;");
            break;
        case '>':
            put(b, "&gt;");
            break;
        case '"':
            put(b, "&quot;");
            break;
        case '\'':
            put(b, "&#39;");
            break;
        default:
            put_n(b, s, 1);
        }
    }
}

// ---- numbers as table cells ---------------------------------------------------------------------

static double num(const json_t *v) {
    if (json_is_number(v)) return json_number_value(v);
    if (json_is_string(v)) return strtod(json_string_value(v), NULL); // "Infinity", "NaN"
    return NAN;
}

static void put_num(buf *b, const json_t *v, const char *fmt) {
    double x = num(v);
    char tmp[64];
    if (isnan(x) && !json_is_string(v))
        snprintf(tmp, sizeof tmp, "&mdash;");
    else if (!isfinite(x))
        snprintf(tmp, sizeof tmp, "%s", isnan(x) ? "NaN" : x > 0 ? "inf" : "-inf");
    else
        snprintf(tmp, sizeof tmp, fmt, x);
    putf(b, "<td class=\"n\">%s</td>", tmp);
}

static void put_pct(buf *b, const json_t *v) {
    double x = num(v);
    if (isnan(x))
        put(b, "<td class=\"n\">&mdash;</td>");
    else
        putf(b, "<td class=\"n\">%.1f%%</td>", 100 * x);
}

// ---- the static sections -------------------------------------------------------------------------

static const json_t *last_non_null(const json_t *arr) {
    for (size_t i = json_array_size(arr); i-- > 0;)
        if (!json_is_null(json_array_get(arr, i))) return json_array_get(arr, i);
    return NULL;
}

static void runs_table(buf *b, const json_t *runs) {
    put(b, "<section id=\"runs\"><h2>Runs</h2>\n");
    if (json_array_size(runs) == 0) {
        put(b, "<p class=\"muted\">The log holds no runs yet.</p></section>\n");
        return;
    }
    put(b, "<table><tr><th>run</th><th>status</th><th>steps</th><th>last step</th>"
           "<th>last reward</th><th>SFT steps</th><th>evals</th><th>started</th>"
           "<th>finished</th><th>log</th></tr>\n");
    size_t i;
    const json_t *r;
    json_array_foreach(runs, i, r) {
        const json_t *steps = json_object_get(r, "steps");
        const json_t *step = json_object_get(steps, "step");
        const json_t *sft = json_object_get(r, "sft");
        const char *status = json_string_value(json_object_get(r, "status"));
        put(b, "<tr><td>");
        put_esc(b, json_string_value(json_object_get(r, "label")));
        put(b, "</td><td class=\"status-");
        put_esc(b, status ? status : "unknown");
        put(b, "\">");
        put_esc(b, status ? status : "unknown");
        putf(b, "</td><td class=\"n\">%zu</td>", json_array_size(step));
        put_num(b, last_non_null(step), "%.0f");
        put_num(b, last_non_null(json_object_get(steps, "reward_mean")), "%.4f");
        if (sft)
            putf(b, "<td class=\"n\">%zu</td>",
                 json_array_size(json_object_get(json_object_get(sft, "steps"), "step")));
        else
            put(b, "<td class=\"n\">&mdash;</td>");
        putf(b, "<td class=\"n\">%zu</td><td>", json_array_size(json_object_get(r, "evals")));
        put_esc(b, json_string_value(json_object_get(r, "started_at")));
        put(b, "</td><td>");
        put_esc(b, json_string_value(json_object_get(r, "finished_at")));
        put(b, "</td><td>");
        put_esc(b, json_string_value(json_object_get(r, "file")));
        put(b, "</td></tr>\n");
    }
    put(b, "</table></section>\n");
}

static void notes_list(buf *b, const json_t *notes) {
    if (json_array_size(notes) == 0) return;
    put(b, "<section id=\"notes\"><h2>Notes</h2><ul class=\"notes\">\n");
    size_t i;
    const json_t *n;
    json_array_foreach(notes, i, n) {
        put(b, "<li>");
        put_esc(b, json_string_value(n));
        put(b, "</li>\n");
    }
    put(b, "</ul></section>\n");
}

// One run's evaluations: a row per evaluation, the first labelled "before RL" and the last
// "after RL", then the change between them.
static void eval_table(buf *b, const json_t *run) {
    const json_t *evals = json_object_get(run, "evals");
    size_t n = json_array_size(evals);
    if (!n) return;
    json_t *vnames = json_array(); // union of verifier names, in first-seen order
    size_t i;
    const json_t *e;
    json_array_foreach(evals, i, e) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)json_object_get(e, "verifier_means"), k, v) {
            int seen = 0;
            for (size_t j = 0; j < json_array_size(vnames); j++)
                seen |= strcmp(json_string_value(json_array_get(vnames, j)), k) == 0;
            if (!seen) json_array_append_new(vnames, json_string(k));
        }
    }
    size_t nv = json_array_size(vnames);
    put(b, "<h3>");
    put_esc(b, json_string_value(json_object_get(run, "label")));
    put(b, "</h3>\n<table class=\"evals\"><tr><th>model</th><th>step</th><th>split</th><th>n</th>"
           "<th>k</th><th>T</th><th>pass@1</th><th>pass@k</th>");
    for (size_t v = 0; v < nv; v++) {
        put(b, "<th>");
        put_esc(b, json_string_value(json_array_get(vnames, v)));
        put(b, "</th>");
    }
    put(b, "<th>mean len</th><th>seconds</th></tr>\n");
    json_array_foreach(evals, i, e) {
        const char *label = n > 1 && i == 0 ? "before RL" : n > 1 && i == n - 1 ? "after RL" : "";
        put(b, "<tr><td>");
        put(b, label);
        put(b, "</td>");
        put_num(b, json_object_get(e, "step"), "%.0f");
        put(b, "<td>");
        put_esc(b, json_string_value(json_object_get(e, "split")));
        put(b, "</td>");
        put_num(b, json_object_get(e, "n"), "%.0f");
        put_num(b, json_object_get(e, "k"), "%.0f");
        put_num(b, json_object_get(e, "temperature"), "%.2f");
        put_pct(b, json_object_get(e, "pass_at_1"));
        put_pct(b, json_object_get(e, "pass_at_k"));
        const json_t *vm = json_object_get(e, "verifier_means");
        for (size_t v = 0; v < nv; v++)
            put_num(b, json_object_get(vm, json_string_value(json_array_get(vnames, v))), "%.3f");
        put_num(b, json_object_get(e, "len_mean"), "%.1f");
        put_num(b, json_object_get(e, "seconds"), "%.1f");
        put(b, "</tr>\n");
    }
    if (n > 1) {
        const json_t *a = json_array_get(evals, 0), *z = json_array_get(evals, n - 1);
        put(b, "<tr class=\"delta\"><td>change</td><td colspan=\"5\"></td>");
        const char *pk[] = {"pass_at_1", "pass_at_k"};
        for (int p = 0; p < 2; p++) {
            double d = num(json_object_get(z, pk[p])) - num(json_object_get(a, pk[p]));
            if (isnan(d))
                put(b, "<td class=\"n\">&mdash;</td>");
            else
                putf(b, "<td class=\"n\">%+.1f pts</td>", 100 * d);
        }
        const json_t *va = json_object_get(a, "verifier_means"),
                     *vz = json_object_get(z, "verifier_means");
        for (size_t v = 0; v < nv; v++) {
            const char *k = json_string_value(json_array_get(vnames, v));
            double d = num(json_object_get(vz, k)) - num(json_object_get(va, k));
            if (isnan(d))
                put(b, "<td class=\"n\">&mdash;</td>");
            else
                putf(b, "<td class=\"n\">%+.3f</td>", d);
        }
        double dl = num(json_object_get(z, "len_mean")) - num(json_object_get(a, "len_mean"));
        if (isnan(dl))
            put(b, "<td class=\"n\">&mdash;</td><td></td></tr>\n");
        else
            putf(b, "<td class=\"n\">%+.1f</td><td></td></tr>\n", dl);
    }
    put(b, "</table>\n");
    json_decref(vnames);
}

static void eval_section(buf *b, const json_t *runs) {
    put(b, "<section id=\"evals\"><h2>Held-out evaluation (before / after)</h2>\n");
    int any = 0;
    size_t i;
    const json_t *r;
    json_array_foreach(runs, i, r) any |= json_array_size(json_object_get(r, "evals")) > 0;
    if (!any) put(b, "<p class=\"muted\">No evaluations in the log.</p>\n");
    json_array_foreach(runs, i, r) eval_table(b, r);
    put(b, "</section>\n");
}

// The document as JSON that cannot end the <script> element it sits in: every '<', '>' and '&'
// (they only occur inside strings) becomes a \u escape, and non-ASCII is escaped too.
static void put_json(buf *b, const json_t *doc) {
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10));
    if (!text)
        text = rl_strdup("{\"runs\":[],\"notes\":[\"the report data could not be encoded\"]}");
    for (const char *s = text; *s; s++) {
        if (*s == '<')
            put(b, "\\u003c");
        else if (*s == '>')
            put(b, "\\u003e");
        else if (*s == '&')
            put(b, "\\u0026");
        else
            put_n(b, s, 1);
    }
    free(text);
}

char *rl_report_html(const json_t *doc, size_t *len) {
    buf b = {0};
    const json_t *runs = json_object_get(doc, "runs");
    put(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<title>rlpipe report: ");
    size_t i;
    const json_t *r;
    json_array_foreach(runs, i, r) {
        if (i) put(&b, ", ");
        put_esc(&b, json_string_value(json_object_get(r, "label")));
    }
    if (!json_array_size(runs)) put(&b, "no runs");
    put(&b, "</title>\n<style>\n");
    put(&b, RL_REPORT_CSS);
    put(&b, "</style>\n</head>\n<body>\n<header><h1>rlpipe run report</h1><p class=\"sub\">");
    char when[64] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    putf(&b, "Written by rlpipe %s at %s from the rollout log alone. Hover a chart for values.",
         RLPIPE_VERSION, when);
    put(&b,
        "</p></header>\n<noscript><p class=\"notes\">The charts and the sample browser are drawn "
        "by the page's inline script; the tables below need none.</p></noscript>\n");
    runs_table(&b, runs);
    notes_list(&b, json_object_get(doc, "notes"));
    put(&b, "<section id=\"curves\"><h2>Training curves</h2>\n<div id=\"charts\" "
            "class=\"chart-grid\"></div>\n<p id=\"absent\" class=\"muted\"></p></section>\n");
    eval_section(&b, runs);
    put(&b, "<section id=\"samples\"><h2>Samples: best and worst rollouts of a step</h2>\n"
            "<div id=\"sample-browser\"></div></section>\n");
    put(&b, "<script type=\"application/json\" id=\"report-data\">");
    put_json(&b, doc);
    put(&b, "</script>\n<script>\n");
    put(&b, RL_REPORT_JS);
    put(&b, "</script>\n</body>\n</html>\n");
    *len = b.n;
    return b.p;
}

int rl_report_write_html(const json_t *doc, const char *path, rl_err *err) {
    size_t len;
    char *html = rl_report_html(doc, &len);
    size_t plen = strlen(path);
    char *tmp = rl_malloc(plen + 16);
    snprintf(tmp, plen + 16, "%s.tmp%ld", path, (long)getpid() % 100000);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(html, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    int rc = 0;
    if (!ok || rename(tmp, path) != 0) {
        rc = rl_fail(err, RL_EINPUT, "%s: cannot write the report: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    free(html);
    return rc;
}
