// cmd_report: `rlpipe report RUN_DIR...`: the HTML run report (and PNG charts) from rollout logs.
// The reading and rendering live in rollout/report.h; this file parses arguments and names files.
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "rollout/report.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: rlpipe report RUN_DIR [RUN_DIR...] [-o FILE] [--png DIR] [--samples K]\n\n"
        "Writes one self-contained HTML file (no network: inline SVG charts drawn by an inline\n"
        "script) from the rollout logs alone: per-step reward, verifier means, accuracy,\n"
        "held-out pass@1/pass@k, KL, entropy, clip fraction, gradient norm, learning rate,\n"
        "completion length and truncation, time split and tokens/s, the SFT curve, the\n"
        "before/after evaluation table and a browser of each step's best and worst rollouts.\n"
        "Several RUN_DIRs are overlaid. Logs are opened read-only, so a run still in progress\n"
        "or a killed one can be reported at any time.\n\n"
        "RUN_DIR is a run's output directory (its rollouts.db is read) or a rollout log file.\n\n"
        "options:\n"
        "  -o, --output FILE  the HTML file (default: RUN_DIR/report.html for one RUN_DIR,\n"
        "                     ./report.html for several)\n"
        "  --png DIR          also write the main curves as PNG files into DIR (created if\n"
        "                     missing): reward.png, pass_at_k.png, kl.png, ...\n"
        "  --samples K        best and worst rollouts kept per step, each (default 3; 0 = none)\n"
        "  -h, --help         this help\n\n"
        "Exit codes: 0 ok; 2 bad usage, a missing or foreign log, an unwritable output; 1\n"
        "internal failure.\n");
}

// The log of a RUN_DIR argument: DIR/rollouts.db for a directory, else the file itself.
static int log_path(const char *arg, char *out, size_t cap, rl_err *err) {
    struct stat sb;
    if (stat(arg, &sb) != 0) return rl_fail(err, RL_EINPUT, "%s: %s", arg, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(out, cap, "%s", arg);
        return 0;
    }
    snprintf(out, cap, "%s/rollouts.db", arg);
    if (stat(out, &sb) != 0)
        return rl_fail(err, RL_EINPUT,
                       "%s: no rollouts.db in this directory (is it a run's "
                       "output directory? a log file can be named directly)",
                       arg);
    return 0;
}

// The argument without trailing slashes, as the runs' label prefix.
static void label_of(const char *arg, char *out, size_t cap) {
    snprintf(out, cap, "%s", arg);
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') out[--n] = '\0';
}

int cmd_report(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *output = NULL, *png = NULL, *samples = NULL;
    const char **dirs = rl_calloc((size_t)argc + 1, sizeof(char *));
    int n_dirs = 0, rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        const char **target = NULL;
        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)
            target = &output;
        else if (strcmp(a, "--png") == 0)
            target = &png;
        else if (strcmp(a, "--samples") == 0)
            target = &samples;
        else if (strncmp(a, "--output=", 9) == 0)
            output = a + 9;
        else if (strncmp(a, "--png=", 6) == 0)
            png = a + 6;
        else if (strncmp(a, "--samples=", 10) == 0)
            samples = a + 10;
        else if (a[0] == '-' && a[1] != '\0')
            rc = cli_usage_error("report", "unknown option '%s'", a);
        else
            dirs[n_dirs++] = a;
        if (target) {
            if (i + 1 >= argc)
                rc = cli_usage_error("report", "%s needs a value", a);
            else
                *target = argv[++i];
        }
    }
    if (rc == 0 && n_dirs == 0) rc = cli_usage_error("report", "expected at least one RUN_DIR");
    if (rc == 0 && output && !*output) rc = cli_usage_error("report", "-o: empty file name");
    if (rc == 0 && png && !*png) rc = cli_usage_error("report", "--png: empty directory name");
    rl_report_opts opts;
    rl_report_opts_init(&opts);
    if (rc == 0 && samples) {
        char *end;
        long k = strtol(samples, &end, 10);
        if (!*samples || *end || k < 0 || k > 1000)
            rc = cli_usage_error("report", "--samples: expected an integer 0..1000, got '%s'",
                                 samples);
        opts.samples_per_step = (int)k;
    }
    if (rc) {
        free(dirs);
        return rc;
    }

    rl_err err = {0};
    json_t *doc = rl_report_new();
    char path[4096], label[4096], out_buf[4096];
    for (int i = 0; i < n_dirs && rc == 0; i++) {
        label_of(dirs[i], label, sizeof label);
        if (log_path(dirs[i], path, sizeof path, &err) ||
            rl_report_add_log(doc, path, n_dirs > 1 ? label : NULL, &opts, &err))
            rc = cli_report(&err);
    }
    if (rc == 0 && !output) {
        struct stat sb;
        if (n_dirs == 1 && stat(dirs[0], &sb) == 0 && S_ISDIR(sb.st_mode))
            snprintf(out_buf, sizeof out_buf, "%s/report.html", label);
        else
            snprintf(out_buf, sizeof out_buf, "report.html");
        output = out_buf;
    }
    // Never replace a log with its report (rename would succeed and the log would be gone).
    struct stat out_st, in_st;
    for (int i = 0; rc == 0 && i < n_dirs && stat(output, &out_st) == 0; i++)
        if (log_path(dirs[i], path, sizeof path, &err) == 0 && stat(path, &in_st) == 0 &&
            in_st.st_dev == out_st.st_dev && in_st.st_ino == out_st.st_ino)
            rc = cli_usage_error("report", "-o %s is the rollout log itself", output);
    if (rc == 0) {
        size_t i;
        json_t *n;
        json_array_foreach(json_object_get(doc, "notes"), i, n)
            fprintf(stderr, "rlpipe report: note: %s\n", json_string_value(n));
        if (rl_report_write_html(doc, output, &err)) rc = cli_report(&err);
    }
    if (rc == 0) {
        int n_runs = rl_report_n_runs(doc);
        printf("wrote %s (%d run%s)\n", output, n_runs, n_runs == 1 ? "" : "s");
        if (n_runs == 0) fprintf(stderr, "rlpipe report: note: the log holds no runs yet\n");
    }
    if (rc == 0 && png) {
        int n_png = 0;
        if (rl_report_write_pngs(doc, png, &n_png, &err))
            rc = cli_report(&err);
        else
            printf("wrote %d PNG chart%s to %s\n", n_png, n_png == 1 ? "" : "s", png);
    }
    json_decref(doc);
    free(dirs);
    return rc;
}
