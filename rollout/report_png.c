// report_png: the report's main curves as PNG files, drawn with cairo. See report.h.
//
// One 960x540 image per chart that has data: title, axes with round ticks, one line per run and
// series (colour = run when several runs are overlaid, otherwise colour = series; dashes tell the
// series of one run apart), the reward's +-std band, markers on sparse series (evaluations) and
// a legend.
#define _POSIX_C_SOURCE 200809L
#include "rollout/report.h"

#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { IMG_W = 960, IMG_H = 540, ML = 86, MR = 24, MB = 56, LEGEND_ROW = 20 };

typedef struct png_series {
    const char *label;
    const char *from; // "steps", "sft" (the SFT run's steps), "evals", "verifiers"
    const char *key;
    const char *band; // a std column drawn as mean +- std, or NULL
} png_series;

typedef struct png_chart {
    const char *file;
    const char *title;
    png_series s[4];
} png_chart;

static const png_chart CHARTS[] = {
    {"reward", "Reward (mean \xc2\xb1 std)", {{"reward", "steps", "reward_mean", "reward_std"}}},
    {"accuracy", "Accuracy (training rollouts)", {{"accuracy", "steps", "accuracy", NULL}}},
    {"pass_at_k",
     "Held-out pass@1 and pass@k",
     {{"pass@1", "evals", "pass_at_1", NULL}, {"pass@k", "evals", "pass_at_k", NULL}}},
    {"kl", "KL to the reference policy", {{"KL", "steps", "kl", NULL}}},
    {"entropy", "Entropy (per token)", {{"entropy", "steps", "entropy", NULL}}},
    {"clip_frac", "Clip fraction", {{"clipped", "steps", "clip_frac", NULL}}},
    {"grad_norm", "Gradient norm (before clipping)", {{"grad norm", "steps", "grad_norm", NULL}}},
    {"lr", "Learning rate", {{"lr", "steps", "lr", NULL}}},
    {"loss", "Loss", {{"loss", "steps", "loss", NULL}}},
    {"length",
     "Completion length (tokens)",
     {{"mean", "steps", "len_mean", NULL}, {"max", "steps", "len_max", NULL}}},
    {"truncated", "Truncation rate", {{"truncated", "steps", "truncated_frac", NULL}}},
    {"time",
     "Time per step (s)",
     {{"rollout", "steps", "t_rollout", NULL},
      {"verify", "steps", "t_verify", NULL},
      {"update", "steps", "t_update", NULL},
      {"total", "steps", "t_total", NULL}}},
    {"throughput",
     "Tokens per second",
     {{"generation", "steps", "tokens_per_s", NULL},
      {"update", "steps", "train_tokens_per_s", NULL}}},
    {"sft_loss", "SFT loss (cold start)", {{"SFT loss", "sft", "loss", NULL}}},
};
#define N_CHARTS ((int)(sizeof CHARTS / sizeof CHARTS[0]))

static const double COLORS[][3] = {{0.12, 0.47, 0.71}, {0.84, 0.15, 0.16}, {0.17, 0.63, 0.17},
                                   {1.00, 0.50, 0.05}, {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29},
                                   {0.89, 0.47, 0.76}, {0.09, 0.75, 0.81}};
#define N_COLORS ((int)(sizeof COLORS / sizeof COLORS[0]))
static const double DASHES[][2] = {{0, 0}, {9, 5}, {2, 4}, {12, 4}}; // on, off (0: solid)

// ---- series extraction -----------------------------------------------------------------------

typedef struct line {
    double *x, *y, *lo, *hi; // [n]; lo/hi NULL without a band
    int n;
    int markers;
    const double *rgb;
    int dash;
    char label[256];
} line;

static double num(const json_t *v) {
    if (json_is_number(v)) return json_number_value(v);
    if (json_is_string(v)) return strtod(json_string_value(v), NULL);
    return NAN;
}

static int any_finite(const line *l) {
    for (int i = 0; i < l->n; i++)
        if (isfinite(l->x[i]) && isfinite(l->y[i])) return 1;
    return 0;
}

// Reads one series of one run; 0 when it has no finite point.
static int extract(const json_t *run, const png_series *s, line *l) {
    memset(l, 0, sizeof *l);
    const json_t *xs = NULL, *ys = NULL, *bs = NULL;
    if (strcmp(s->from, "evals") == 0) {
        const json_t *ev = json_object_get(run, "evals");
        size_t n = json_array_size(ev);
        int heldout = 0;
        for (size_t i = 0; i < n; i++) {
            const char *sp = json_string_value(json_object_get(json_array_get(ev, i), "split"));
            heldout |= sp && strcmp(sp, "heldout") == 0;
        }
        l->x = rl_calloc(n + 1, sizeof(double));
        l->y = rl_calloc(n + 1, sizeof(double));
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(ev, i);
            const char *sp = json_string_value(json_object_get(e, "split"));
            if (heldout && !(sp && strcmp(sp, "heldout") == 0)) continue;
            l->x[l->n] = num(json_object_get(e, "step"));
            l->y[l->n++] = num(json_object_get(e, s->key));
        }
        l->markers = 1;
        return any_finite(l);
    }
    const json_t *steps = strcmp(s->from, "sft") == 0
                              ? json_object_get(json_object_get(run, "sft"), "steps")
                              : json_object_get(run, "steps");
    xs = json_object_get(steps, "step");
    ys = strcmp(s->from, "verifiers") == 0
             ? json_object_get(json_object_get(run, "verifiers"), s->key)
             : json_object_get(steps, s->key);
    if (s->band) bs = json_object_get(steps, s->band);
    size_t n = json_array_size(xs);
    if (!ys || json_array_size(ys) != n) return 0;
    l->x = rl_calloc(n + 1, sizeof(double));
    l->y = rl_calloc(n + 1, sizeof(double));
    if (bs) {
        l->lo = rl_calloc(n + 1, sizeof(double));
        l->hi = rl_calloc(n + 1, sizeof(double));
    }
    for (size_t i = 0; i < n; i++) {
        l->x[i] = num(json_array_get(xs, i));
        l->y[i] = num(json_array_get(ys, i));
        if (bs) {
            double sd = num(json_array_get(bs, i));
            l->lo[i] = l->y[i] - sd;
            l->hi[i] = l->y[i] + sd;
        }
    }
    l->n = (int)n;
    l->markers = n <= 2;
    return any_finite(l);
}

static void line_free(line *l) {
    free(l->x);
    free(l->y);
    free(l->lo);
    free(l->hi);
}

// ---- drawing ------------------------------------------------------------------------------------

static void widen(double *lo, double *hi, const double *v, int n) {
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            if (v[i] < *lo) *lo = v[i];
            if (v[i] > *hi) *hi = v[i];
        }
}

// Round tick spacing (1, 2, 5 x 10^k) giving about n ticks over [lo, hi].
static double tick_step(double lo, double hi, int n) {
    double span = hi - lo, step = pow(10, floor(log10(span / n)));
    double e = span / n / step;
    return e >= 7.5 ? step * 10 : e >= 3.5 ? step * 5 : e >= 1.5 ? step * 2 : step;
}

static void tick_label(char *out, size_t cap, double v, double step) {
    double a = fabs(v);
    if (a != 0 && (a < 1e-3 || a >= 1e6))
        snprintf(out, cap, "%.2e", v);
    else {
        int digits = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        snprintf(out, cap, "%.*f", digits > 6 ? 6 : digits, fabs(v) < step * 1e-9 ? 0.0 : v);
    }
}

static void set_rgb(cairo_t *cr, const double *c, double alpha) {
    cairo_set_source_rgba(cr, c[0], c[1], c[2], alpha);
}

// The legend sits in rows under the title, items left to right; returns the number of rows
// (draw=0 only measures).
static int legend(cairo_t *cr, const line *lines, int n_lines, double top, int draw) {
    double x = ML, y = top;
    int rows = n_lines > 0;
    cairo_text_extents_t te;
    for (int i = 0; i < n_lines; i++) {
        cairo_text_extents(cr, lines[i].label, &te);
        double w = 36 + te.x_advance + 18;
        if (x > ML && x + w > IMG_W - MR) {
            x = ML;
            y += LEGEND_ROW;
            rows++;
        }
        if (draw) {
            set_rgb(cr, lines[i].rgb, 1);
            cairo_set_line_width(cr, 2.5);
            const double *d = DASHES[lines[i].dash % 4];
            cairo_set_dash(cr, d, d[0] > 0 ? 2 : 0, 0);
            cairo_move_to(cr, x, y - 4);
            cairo_line_to(cr, x + 28, y - 4);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
            cairo_set_source_rgb(cr, 0.2, 0.22, 0.27);
            cairo_move_to(cr, x + 36, y);
            cairo_show_text(cr, lines[i].label);
        }
        x += w;
    }
    return rows;
}

static void draw(cairo_t *cr, const char *title, line *lines, int n_lines) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n_lines; i++) {
        widen(&x0, &x1, lines[i].x, lines[i].n);
        widen(&y0, &y1, lines[i].y, lines[i].n);
        if (lines[i].lo) {
            widen(&y0, &y1, lines[i].lo, lines[i].n);
            widen(&y0, &y1, lines[i].hi, lines[i].n);
        }
    }
    if (x0 == x1) x0 -= 1, x1 += 1;
    if (y0 == y1) {
        double d = fabs(y0) * 0.1 > 0 ? fabs(y0) * 0.1 : 1;
        y0 -= d, y1 += d;
    }
    double pad = (y1 - y0) * 0.05;
    y0 -= pad, y1 += pad;
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 13);
    int rows = legend(cr, lines, n_lines, 58, 0);
    if (rows > 6) rows = 6; // very many overlaid runs: the plot keeps most of the height
    const double MT = 58 + LEGEND_ROW * rows;
    double pw = IMG_W - ML - MR, ph = IMG_H - MT - MB;
#define PX(v) (ML + ((v)-x0) / (x1 - x0) * pw)
#define PY(v) (IMG_H - MB - ((v)-y0) / (y1 - y0) * ph)

    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 20);
    cairo_set_source_rgb(cr, 0.1, 0.12, 0.16);
    cairo_move_to(cr, ML, 32);
    cairo_show_text(cr, title);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 13);

    char lab[64];
    cairo_text_extents_t te;
    double ys = tick_step(y0, y1, 6);
    // Ticks by index, so that a step below the values' resolution cannot loop forever.
    for (int it = 0; it < 40; it++) {
        double t = (ceil(y0 / ys) + it) * ys;
        if (!(t <= y1 + ys * 1e-9)) break;
        cairo_set_source_rgb(cr, 0.92, 0.93, 0.95);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, ML, PY(t));
        cairo_line_to(cr, IMG_W - MR, PY(t));
        cairo_stroke(cr);
        tick_label(lab, sizeof lab, t, ys);
        cairo_text_extents(cr, lab, &te);
        cairo_set_source_rgb(cr, 0.28, 0.33, 0.40);
        cairo_move_to(cr, ML - 8 - te.x_advance, PY(t) + 4.5);
        cairo_show_text(cr, lab);
    }
    double xs = tick_step(x0, x1, 8);
    if (xs < 1) xs = 1; // steps are integers
    for (int it = 0; it < 40; it++) {
        double t = (ceil(x0 / xs) + it) * xs;
        if (!(t <= x1 + xs * 1e-9)) break;
        cairo_set_source_rgb(cr, 0.6, 0.64, 0.70);
        cairo_move_to(cr, PX(t), IMG_H - MB);
        cairo_line_to(cr, PX(t), IMG_H - MB + 5);
        cairo_stroke(cr);
        tick_label(lab, sizeof lab, t, xs);
        cairo_text_extents(cr, lab, &te);
        cairo_set_source_rgb(cr, 0.28, 0.33, 0.40);
        cairo_move_to(cr, PX(t) - te.x_advance / 2, IMG_H - MB + 22);
        cairo_show_text(cr, lab);
    }
    cairo_set_source_rgb(cr, 0.28, 0.33, 0.40);
    cairo_move_to(cr, IMG_W - MR - 30, IMG_H - 10);
    cairo_show_text(cr, "step");
    cairo_set_source_rgb(cr, 0.6, 0.64, 0.70);
    cairo_move_to(cr, ML, MT);
    cairo_line_to(cr, ML, IMG_H - MB);
    cairo_line_to(cr, IMG_W - MR, IMG_H - MB);
    cairo_stroke(cr);

    for (int i = 0; i < n_lines; i++) {
        line *l = &lines[i];
        if (l->lo) { // the band: upper edge forwards, lower edge backwards
            int started = 0;
            for (int j = 0; j < l->n; j++)
                if (isfinite(l->x[j]) && isfinite(l->hi[j]) && isfinite(l->lo[j])) {
                    if (started)
                        cairo_line_to(cr, PX(l->x[j]), PY(l->hi[j]));
                    else
                        cairo_move_to(cr, PX(l->x[j]), PY(l->hi[j]));
                    started = 1;
                }
            for (int j = l->n; j-- > 0;)
                if (isfinite(l->x[j]) && isfinite(l->hi[j]) && isfinite(l->lo[j]))
                    cairo_line_to(cr, PX(l->x[j]), PY(l->lo[j]));
            if (started) {
                cairo_close_path(cr);
                set_rgb(cr, l->rgb, 0.16);
                cairo_fill(cr);
            }
        }
        set_rgb(cr, l->rgb, 1);
        cairo_set_line_width(cr, 2);
        const double *d = DASHES[l->dash % 4];
        cairo_set_dash(cr, d, d[0] > 0 ? 2 : 0, 0);
        int pen = 0;
        for (int j = 0; j < l->n; j++) {
            if (!isfinite(l->x[j]) || !isfinite(l->y[j])) {
                pen = 0;
                continue;
            }
            if (pen)
                cairo_line_to(cr, PX(l->x[j]), PY(l->y[j]));
            else
                cairo_move_to(cr, PX(l->x[j]), PY(l->y[j]));
            pen = 1;
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        if (l->markers)
            for (int j = 0; j < l->n; j++)
                if (isfinite(l->x[j]) && isfinite(l->y[j])) {
                    cairo_arc(cr, PX(l->x[j]), PY(l->y[j]), 4, 0, 6.283185307179586);
                    cairo_fill(cr);
                }
    }
#undef PX
#undef PY

    legend(cr, lines, n_lines, 58, 1);
}

// Writes one chart; *wrote = 0 when no run has data for it.
static int write_chart(const json_t *doc, const png_chart *c, const char *dir, int *wrote,
                       rl_err *err) {
    *wrote = 0;
    const json_t *runs = json_object_get(doc, "runs");
    size_t n_runs = json_array_size(runs);
    int n_series = 0;
    while (n_series < 4 && c->s[n_series].label) n_series++;
    line *lines = rl_calloc(n_runs * 4 + 1, sizeof(line));
    int n = 0;
    for (size_t r = 0; r < n_runs; r++) {
        const json_t *run = json_array_get(runs, r);
        for (int s = 0; s < n_series; s++) {
            line *l = &lines[n];
            if (!extract(run, &c->s[s], l)) {
                line_free(l);
                continue;
            }
            int many = n_runs > 1;
            l->rgb = COLORS[(many ? (int)r : s) % N_COLORS];
            l->dash = many ? s : 0;
            const char *label = json_string_value(json_object_get(run, "label"));
            if (many && n_series > 1)
                snprintf(l->label, sizeof l->label, "%s: %s", label ? label : "?", c->s[s].label);
            else
                snprintf(l->label, sizeof l->label, "%s", many && label ? label : c->s[s].label);
            n++;
        }
    }
    int rc = 0;
    if (n > 0) {
        cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, IMG_W, IMG_H);
        cairo_t *cr = cairo_create(surf);
        draw(cr, c->title, lines, n);
        cairo_destroy(cr);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.png", dir, c->file);
        cairo_status_t st = cairo_surface_write_to_png(surf, path);
        cairo_surface_destroy(surf);
        if (st != CAIRO_STATUS_SUCCESS)
            rc = rl_fail(err, RL_EINPUT, "%s: cannot write the PNG: %s", path,
                         cairo_status_to_string(st));
        else
            *wrote = 1;
    }
    for (int i = 0; i < n; i++) line_free(&lines[i]);
    free(lines);
    return rc;
}

// cairo and fontconfig keep font caches for the life of the process; they are released after
// the charts are drawn so that nothing outlives the call (and leak checkers stay quiet).
static void release_font_caches(void) {
    cairo_debug_reset_static_data();
    FcFini();
}

static int write_all(const json_t *doc, const char *dir, int *n_written, rl_err *err);

int rl_report_write_pngs(const json_t *doc, const char *dir, int *n_written, rl_err *err) {
    int rc = write_all(doc, dir, n_written, err);
    release_font_caches();
    return rc;
}

static int write_all(const json_t *doc, const char *dir, int *n_written, rl_err *err) {
    *n_written = 0;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return rl_fail(err, RL_EINPUT, "%s: cannot create the PNG directory: %s", dir,
                       strerror(errno));
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return rl_fail(err, RL_EINPUT, "%s: not a directory", dir);
    for (int i = 0; i < N_CHARTS; i++) {
        int wrote;
        RL_TRY(write_chart(doc, &CHARTS[i], dir, &wrote, err));
        *n_written += wrote;
    }
    // One chart per verifier, named verifier_<name>.png (the name cut to safe characters).
    json_t *seen = json_object();
    size_t r;
    const json_t *run;
    json_array_foreach(json_object_get(doc, "runs"), r, run) {
        const char *name;
        json_t *v;
        json_object_foreach((json_t *)json_object_get(run, "verifiers"), name, v) {
            if (json_object_get(seen, name)) continue;
            json_object_set_new(seen, name, json_true());
            char file[96] = "verifier_", title[300];
            size_t at = strlen(file);
            for (const char *p = name; *p && at < sizeof file - 1; p++)
                file[at++] = (char)((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                                            (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'
                                        ? *p
                                        : '_');
            file[at] = '\0';
            snprintf(title, sizeof title, "Verifier mean: %s", name);
            png_chart c = {file, title, {{name, "verifiers", name, NULL}}};
            int wrote;
            if (write_chart(doc, &c, dir, &wrote, err)) {
                json_decref(seen);
                return -1;
            }
            *n_written += wrote;
        }
    }
    json_decref(seen);
    return 0;
}
