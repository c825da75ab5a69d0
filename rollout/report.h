/*
 * report: the run report behind `rlpipe report`. It reads rollout logs (rollout/log.h) read-only
 * and turns them into one JSON document of per-step series, evaluations and sample rollouts, then
 * renders that document as one self-contained HTML file (inline CSS, inline SVG drawn by an
 * inline script, no network) and, optionally, as PNG charts drawn with cairo.
 *
 *     json_t *doc = rl_report_new();
 *     rl_report_add_log(doc, "runs/tiny/rollouts.db", "tiny", &opts, &err);  // once per log
 *     rl_report_write_html(doc, "report.html", &err);
 *     rl_report_write_pngs(doc, "plots/", &written, &err);
 *     json_decref(doc);
 *
 * The document (documented in cli/report.md) is {"runs": [...], "notes": [...]}: one entry per run
 * found in the logs, each with column-wise step series ("steps": {"step": [...], "kl": [...]}),
 * per-verifier means per step, evaluations, the best and worst rollouts of every step and, for a
 * run "X" whose log also holds "X-sft" (what `rlpipe train` writes), that SFT run's series under
 * "sft". Logs written by older or newer code are read as far as they go: a missing table or
 * column becomes a note in "notes" and its series are left out, never an error. A log of a run
 * still being written, or of a killed run, shows every committed step (WAL readers never block).
 *
 * Text from the log (completions are model output) is never trusted: in the HTML it is embedded
 * as JSON with '<', '>', '&' and every non-ASCII character escaped, and inserted into the page
 * with textContent only; invalid UTF-8 is replaced with U+FFFD.
 *
 * Owns: nothing global. The document is a jansson value owned by the caller.
 */
#ifndef RL_ROLLOUT_REPORT_H
#define RL_ROLLOUT_REPORT_H

#include <jansson.h>

#include "kernels/rl_error.h"

// Steps whose samples are kept at most; a longer run keeps every k-th step's and the last.
#define RL_REPORT_MAX_SAMPLE_STEPS 250

typedef struct rl_report_opts {
    int samples_per_step; // best and worst rollouts kept per step (each); 0 = none
    int max_text;         // longest prompt/completion/detail kept, in bytes (longer ones are cut)
} rl_report_opts;

// Defaults: 3 best and 3 worst rollouts per step, texts cut at 16 KiB.
void rl_report_opts_init(rl_report_opts *o);

// An empty document.
json_t *rl_report_new(void);

// Adds every run of the log at path to the document; label names the log in the report (run
// names become "label/name" when several logs are added). A missing file, a file that is not an
// rlpipe rollout log or a newer schema is RL_EINPUT naming the file.
int rl_report_add_log(json_t *doc, const char *path, const char *label, const rl_report_opts *o,
                      rl_err *err);

// The number of runs in the document.
int rl_report_n_runs(const json_t *doc);

// Writes the HTML report (atomically: a temporary file renamed into place).
int rl_report_write_html(const json_t *doc, const char *path, rl_err *err);

// Renders the HTML report into a malloc'ed string (*len bytes, NUL-terminated).
char *rl_report_html(const json_t *doc, size_t *len);

// Writes the main curves as PNG files into dir (created if missing): one file per chart that has
// data, named after the chart (reward.png, kl.png, ...). *n_written receives their count.
int rl_report_write_pngs(const json_t *doc, const char *dir, int *n_written, rl_err *err);

#endif
