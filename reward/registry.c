// registry: building the verifier set, scoring a batch on threads, weighting. See reward.h.
#define _GNU_SOURCE
#include "reward/reward.h"

#include "reward/advantage.h"
#include "reward/builtin.h"
#include "reward/lineproc.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_THREADS 64

typedef struct rl_vslot {
    char *name;
    const rl_verifier_api *api;
    void **inst; // [n_inst] one instance (thread-safe) or one per worker
    int n_inst;
    void *dl; // dlopen handle of a plugin, or NULL
} rl_vslot;

struct rl_reward {
    rl_vslot *v;    // [n]
    double *weight; // [n]
    uint8_t *gated; // [n] 1: multiplied by the accuracy score
    int n;
    int accuracy; // index of the verifier named "accuracy", or -1
    int threads;
};

// ---- messages ------------------------------------------------------------------------------------

static int spec_fail(rl_err *err, const rl_verifier_spec *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// "verifier 'format' (line 12, column 5): <message>", RL_EINPUT.
static int spec_fail(rl_err *err, const rl_verifier_spec *s, const char *fmt, ...) {
    char msg[RL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *name = s->name ? s->name : (s->plugin ? s->plugin : "?");
    if (s->line > 0)
        return rl_fail(err, RL_EINPUT, "verifier '%s' (line %d, column %d): %s", name, s->line,
                       s->column, msg);
    return rl_fail(err, RL_EINPUT, "verifier '%s': %s", name, msg);
}

const char *rl_vstatus_name(int status) {
    static const char *const names[] = {"ok", "skipped", "error", "timeout"};
    return status >= 0 && status < 4 ? names[status] : "invalid";
}

// ---- specs -----------------------------------------------------------------------------------------

const char *rl_verifier_spec_option(const rl_verifier_spec *spec, const char *key) {
    for (int i = 0; i < spec->n_options; i++)
        if (strcmp(spec->options[i].key, key) == 0) return spec->options[i].value;
    return NULL;
}

void rl_verifier_spec_set_option(rl_verifier_spec *spec, const char *key, const char *value) {
    for (int i = 0; i < spec->n_options; i++)
        if (strcmp(spec->options[i].key, key) == 0) {
            free((char *)spec->options[i].value);
            spec->options[i].value = rl_strdup(value);
            return;
        }
    spec->options =
        rl_realloc(spec->options, (size_t)(spec->n_options + 1) * sizeof *spec->options);
    spec->options[spec->n_options++] = (rl_voption){rl_strdup(key), rl_strdup(value)};
}

rl_verifier_spec *rl_reward_default_specs(int *n) {
    static const char *const names[] = {"accuracy", "path_quality", "format", "efficiency"};
    static const double weights[] = {0.4, 0.3, 0.2, 0.1};
    rl_verifier_spec *specs = rl_calloc(4, sizeof *specs);
    for (int i = 0; i < 4; i++) {
        specs[i].name = rl_strdup(names[i]);
        specs[i].weight = weights[i];
    }
    *n = 4;
    return specs;
}

// ---- weighting ---------------------------------------------------------------------------------------

double rl_reward_weighted(int n_verifiers, const double *weight, const uint8_t *gated, int accuracy,
                          const rl_vresult *row, int *skipped) {
    double acc = 1.0;
    int skip = 0;
    if (accuracy >= 0 && accuracy < n_verifiers) {
        const rl_vresult *a = &row[accuracy];
        acc = a->status == RL_VERIFY_OK ? a->score : 0.0;
        skip = a->status == RL_VERIFY_SKIPPED;
    } else {
        accuracy = -1;
    }
    double r = 0.0;
    for (int v = 0; v < n_verifiers; v++) {
        double s = row[v].status == RL_VERIFY_OK ? row[v].score : 0.0;
        double g = gated[v] && accuracy >= 0 && v != accuracy ? acc : 1.0;
        r += weight[v] * g * s;
    }
    if (skipped) *skipped = skip;
    return r;
}

int rl_reward_check_weights(int n_verifiers, const char *const *names, const double *weight,
                            const uint8_t *gated, int accuracy, rl_err *err) {
    if (accuracy < 0 || accuracy >= n_verifiers) return 0;
    double ungated = 0.0;
    char terms[512] = "";
    for (int v = 0; v < n_verifiers; v++) {
        if (v == accuracy || gated[v] || weight[v] == 0.0) continue;
        ungated += weight[v];
        size_t len = strlen(terms);
        snprintf(terms + len, sizeof terms - len, "%s%s %g", len ? " + " : "", names[v], weight[v]);
    }
    if (ungated < weight[accuracy]) return 0;
    return rl_fail(err, RL_EINPUT,
                   "reward weights let a wrong answer score as high as a correct one: the "
                   "ungated verifiers (%s = %g) must weigh less than accuracy (%g); lower them, "
                   "raise accuracy, or gate them with `gate: accuracy`",
                   terms, ungated, weight[accuracy]);
}

void rl_vresult_sanitize(rl_vresult *r) {
    r->detail[RL_VDETAIL_MAX - 1] = 0;
    if (r->status == -1 && isnan(r->score)) {
        r->status = RL_VERIFY_ERROR;
        r->score = 0.0;
        snprintf(r->detail, sizeof r->detail, "the verifier did not fill in a result");
    } else if (r->status < RL_VERIFY_OK || r->status > RL_VERIFY_TIMEOUT) {
        int bad = r->status;
        r->status = RL_VERIFY_ERROR;
        r->score = 0.0;
        snprintf(r->detail, sizeof r->detail, "the verifier returned an invalid status %d", bad);
    } else if (r->status == RL_VERIFY_OK && !(r->score >= 0.0 && r->score <= 1.0)) {
        double bad = r->score;
        r->status = RL_VERIFY_ERROR;
        r->score = 0.0;
        snprintf(r->detail, sizeof r->detail, "the verifier returned score %g, outside [0, 1]",
                 bad);
    } else if (r->status != RL_VERIFY_OK) {
        r->score = 0.0;
    }
}

// ---- construction ------------------------------------------------------------------------------------

static int load_plugin(const rl_verifier_spec *s, rl_vslot *slot, rl_err *err) {
    // A bare file name would make dlopen search the library path; we mean the working directory.
    char path[4096];
    snprintf(path, sizeof path, "%s%s", strchr(s->plugin, '/') ? "" : "./", s->plugin);
    // dlopen would wait for ever on a FIFO: only a regular file is a plugin.
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return spec_fail(err, s, "cannot load plugin %s: not a regular file", s->plugin);
    slot->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!slot->dl) return spec_fail(err, s, "cannot load plugin %s: %s", s->plugin, dlerror());
    dlerror();
    void *sym = dlsym(slot->dl, RL_VERIFIER_ENTRY);
    if (!sym)
        return spec_fail(err, s, "plugin %s does not export %s() (see reward/verifier_abi.h)",
                         s->plugin, RL_VERIFIER_ENTRY);
    rl_verifier_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); // object pointer -> function pointer, as POSIX allows
    const rl_verifier_api *api = entry();
    if (!api)
        return spec_fail(err, s, "plugin %s: %s() returned NULL", s->plugin, RL_VERIFIER_ENTRY);
    if (api->abi_version != RL_VERIFIER_ABI_VERSION)
        return spec_fail(err, s,
                         "plugin %s was built for verifier ABI version %u, but this rlpipe "
                         "speaks version %d; rebuild it against reward/verifier_abi.h",
                         s->plugin, (unsigned)api->abi_version, RL_VERIFIER_ABI_VERSION);
    if (!api->create || !api->score || !api->destroy)
        return spec_fail(err, s, "plugin %s: its rl_verifier_api lacks create, score or destroy",
                         s->plugin);
    slot->api = api;
    return 0;
}

static int resolve_api(const rl_verifier_spec *s, rl_vslot *slot, rl_err *err) {
    if (s->plugin && s->command)
        return spec_fail(err, s, "give either plugin: or command:, not both");
    if (s->plugin) return load_plugin(s, slot, err);
    if (s->command) {
        slot->api = rl_lineproc_api();
        return 0;
    }
    char why[256] = "";
    slot->api = rl_builtin_api(s->name, why, sizeof why);
    return slot->api ? 0 : spec_fail(err, s, "%s", why);
}

// The options create() gets: the entry's, plus extract for the built-in accuracy (opts->extract)
// unless the entry chose its own. Returns an rl_malloc'ed array of *n options (strings borrowed).
static rl_voption *entry_options(const rl_verifier_spec *s, const rl_reward_opts *opts, int *n) {
    rl_voption *o = rl_malloc((size_t)(s->n_options + 1) * sizeof *o);
    if (s->n_options) memcpy(o, s->options, (size_t)s->n_options * sizeof *o);
    *n = s->n_options;
    if (opts && opts->extract && !s->plugin && !s->command && strcmp(s->name, "accuracy") == 0 &&
        !rl_verifier_spec_option(s, "extract") && !rl_verifier_spec_option(s, "math.extract"))
        o[(*n)++] = (rl_voption){"extract", opts->extract};
    return o;
}

static int create_instances(const rl_verifier_spec *s, rl_vslot *slot, int threads,
                            const rl_reward_opts *opts, rl_err *err) {
    slot->n_inst = slot->api->thread_safe ? 1 : threads;
    slot->inst = rl_calloc((size_t)slot->n_inst, sizeof *slot->inst);
    int n_opts = 0;
    rl_voption *o = entry_options(s, opts, &n_opts);
    for (int i = 0; i < slot->n_inst; i++) {
        char why[RL_ERR_MSG_MAX] = "";
        if (s->command)
            slot->inst[i] = rl_lineproc_create(s->command, o, n_opts, why, sizeof why);
        else
            slot->inst[i] = slot->api->create(o, n_opts, why, sizeof why);
        if (!slot->inst[i]) {
            free(o);
            return spec_fail(err, s, "%s", why[0] ? why : "create() failed");
        }
    }
    free(o);
    return 0;
}

// The gate of entry s: 1 gated by accuracy, 0 not. Explicit `gate:` wins; accuracy and format
// default to ungated, everything else (path_quality, efficiency, plugins, programs) to gated.
static int resolve_gate(const rl_verifier_spec *s, const char *name, int *gated, rl_err *err) {
    int is_acc = strcmp(name, "accuracy") == 0;
    if (!s->gate || !*s->gate) {
        *gated = !is_acc && strcmp(name, "format") != 0;
        return 0;
    }
    if (strcmp(s->gate, "none") == 0)
        *gated = 0;
    else if (strcmp(s->gate, "accuracy") == 0)
        *gated = 1;
    else
        return spec_fail(err, s, "gate: expected accuracy or none, got '%s'", s->gate);
    if (is_acc && *gated) return spec_fail(err, s, "accuracy cannot be gated by itself");
    return 0;
}

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > MAX_THREADS ? MAX_THREADS : (int)n);
}

static int add_verifier(rl_reward *rw, const rl_verifier_spec *s, const rl_reward_opts *opts,
                        rl_err *err) {
    rl_vslot *slot = &rw->v[rw->n];
    if (!s->name && !s->plugin)
        return spec_fail(err, s, "an entry needs a name (or a plugin that names itself)");
    if (!isfinite(s->weight) || s->weight < 0)
        return spec_fail(err, s, "weight must be a finite number >= 0, got %g", s->weight);
    rw->n++; // from here on rl_reward_free releases the slot
    RL_TRY(resolve_api(s, slot, err));
    slot->name = rl_strdup(s->name ? s->name : slot->api->name);
    for (int i = 0; i < rw->n - 1; i++)
        if (strcmp(rw->v[i].name, slot->name) == 0)
            return spec_fail(err, s, "a second verifier named '%s' (names must be unique)",
                             slot->name);
    int gated = 0;
    RL_TRY(resolve_gate(s, slot->name, &gated, err));
    rw->weight[rw->n - 1] = s->weight;
    rw->gated[rw->n - 1] = (uint8_t)gated;
    return create_instances(s, slot, rw->threads, opts, err);
}

int rl_reward_create(rl_reward **out, const rl_verifier_spec *specs, int n_specs,
                     const rl_reward_opts *opts, rl_err *err) {
    *out = NULL;
    if (n_specs <= 0) return rl_fail(err, RL_EINPUT, "reward.verifiers: no verifiers configured");
    rl_reward *rw = rl_calloc(1, sizeof *rw);
    rw->v = rl_calloc((size_t)n_specs, sizeof *rw->v);
    rw->weight = rl_calloc((size_t)n_specs, sizeof *rw->weight);
    rw->gated = rl_calloc((size_t)n_specs, sizeof *rw->gated);
    rw->accuracy = -1;
    rw->threads = opts && opts->threads > 0 ? opts->threads : default_threads();
    if (rw->threads > MAX_THREADS) rw->threads = MAX_THREADS;
    for (int i = 0; i < n_specs; i++)
        if (add_verifier(rw, &specs[i], opts, err) != 0) goto fail;

    double total = 0.0;
    const char **names = rl_malloc((size_t)rw->n * sizeof *names);
    for (int v = 0; v < rw->n; v++) {
        names[v] = rw->v[v].name;
        total += rw->weight[v];
        if (strcmp(rw->v[v].name, "accuracy") == 0) rw->accuracy = v;
    }
    if (rw->accuracy < 0) {
        for (int i = 0; i < n_specs; i++)
            if (specs[i].gate && strcmp(specs[i].gate, "accuracy") == 0) {
                free(names);
                spec_fail(err, &specs[i],
                          "gate: accuracy, but no verifier named accuracy is configured");
                goto fail;
            }
        memset(rw->gated, 0, (size_t)rw->n); // nothing to gate on: every verifier counts as is
    }
    int bad = total <= 0.0 ? rl_fail(err, RL_EINPUT, "reward.verifiers: every weight is 0")
              : opts && opts->allow_unsafe_weights
                  ? 0
                  : rl_reward_check_weights(rw->n, names, rw->weight, rw->gated, rw->accuracy, err);
    free(names);
    if (bad) goto fail;
    *out = rw;
    return 0;
fail:
    rl_reward_free(rw);
    return -1;
}

void rl_reward_free(rl_reward *rw) {
    if (!rw) return;
    for (int v = 0; v < rw->n; v++) {
        rl_vslot *slot = &rw->v[v];
        for (int i = 0; i < slot->n_inst; i++)
            if (slot->inst[i]) slot->api->destroy(slot->inst[i]);
        free(slot->inst);
        free(slot->name);
        if (slot->dl) dlclose(slot->dl);
    }
    free(rw->v);
    free(rw->weight);
    free(rw->gated);
    free(rw);
}

int rl_reward_n_verifiers(const rl_reward *rw) {
    return rw->n;
}
const char *rl_reward_name(const rl_reward *rw, int v) {
    return rw->v[v].name;
}
double rl_reward_weight(const rl_reward *rw, int v) {
    return rw->weight[v];
}
int rl_reward_gated(const rl_reward *rw, int v) {
    return rw->gated[v];
}
int rl_reward_accuracy_index(const rl_reward *rw) {
    return rw->accuracy;
}
int rl_reward_threads(const rl_reward *rw) {
    return rw->threads;
}

// ---- scoring a batch ---------------------------------------------------------------------------------

// One unit of work: verifier v on sample `lo` (hi < 0), or on the group order[lo..hi).
typedef struct job {
    int v, lo, hi;
} job;

typedef struct batch {
    const rl_reward *rw;
    const rl_vsample *samples; // [n]
    const int *order;          // [n] sample indices, grouped (NULL when no groups)
    rl_vsample *gathered;      // [n] samples[order[k]], so a group is contiguous
    rl_vresult *scratch;       // [n_verifiers, n] group verdicts in gathered order
    rl_vresult *results;       // [n, n_verifiers]
    int n;
    const job *jobs;
    int n_jobs;
    atomic_int next;
} batch;

typedef struct worker_arg {
    batch *b;
    int w; // worker index: picks the instance of verifiers that are not thread-safe
} worker_arg;

static void run_job(batch *b, const job *j, int w) {
    const rl_vslot *slot = &b->rw->v[j->v];
    void *self = slot->inst[slot->n_inst == 1 ? 0 : w];
    int nv = b->rw->n;
    if (j->hi < 0) {
        slot->api->score(self, &b->samples[j->lo], &b->results[(size_t)j->lo * nv + j->v]);
        return;
    }
    rl_vresult *out = &b->scratch[(size_t)j->v * b->n + j->lo];
    slot->api->score_group(self, &b->gathered[j->lo], j->hi - j->lo, out);
    for (int k = j->lo; k < j->hi; k++)
        b->results[(size_t)b->order[k] * nv + j->v] = out[k - j->lo];
}

static void *worker_main(void *p) {
    worker_arg *a = p;
    for (;;) {
        int j = atomic_fetch_add(&a->b->next, 1);
        if (j >= a->b->n_jobs) break;
        run_job(a->b, &a->b->jobs[j], a->w);
    }
    return NULL;
}

static void run_jobs(batch *b, int threads) {
    int n_workers = threads < b->n_jobs ? threads : b->n_jobs;
    pthread_t tid[MAX_THREADS];
    worker_arg args[MAX_THREADS];
    int started = 0;
    atomic_init(&b->next, 0);
    for (int w = 1; w < n_workers; w++) {
        args[w] = (worker_arg){b, w};
        if (pthread_create(&tid[w], NULL, worker_main, &args[w]) != 0) break;
        started = w;
    }
    args[0] = (worker_arg){b, 0};
    worker_main(&args[0]); // the calling thread is worker 0
    for (int w = 1; w <= started; w++) pthread_join(tid[w], NULL);
}

int rl_reward_score(rl_reward *rw, const rl_vsample *samples, const int32_t *group, int n,
                    rl_vresult *results, double *reward, uint8_t *skipped, rl_err *err) {
    if (n < 0 || (n > 0 && (!samples || !results || !reward)))
        return rl_fail(err, RL_EINTERNAL, "rl_reward_score: bad arguments (n = %d)", n);
    if (n == 0) return 0;
    int nv = rw->n;
    for (size_t i = 0; i < (size_t)n * nv; i++)
        results[i] = (rl_vresult){.score = NAN, .status = -1, .detail = ""};

    batch b = {.rw = rw, .samples = samples, .results = results, .n = n};
    int *order = NULL, *starts = NULL, n_groups = 0;
    if (group) {
        order = rl_malloc((size_t)n * sizeof *order);
        starts = rl_malloc((size_t)(n + 1) * sizeof *starts);
        n_groups = rl_adv_group_order(group, n, order, starts);
        b.order = order;
        b.gathered = rl_malloc((size_t)n * sizeof *b.gathered);
        for (int k = 0; k < n; k++) b.gathered[k] = samples[order[k]];
        b.scratch = rl_malloc((size_t)nv * n * sizeof *b.scratch);
        for (size_t i = 0; i < (size_t)nv * n; i++)
            b.scratch[i] = (rl_vresult){.score = NAN, .status = -1, .detail = ""};
    }
    job *jobs = rl_malloc((size_t)nv * n * sizeof *jobs);
    int n_jobs = 0;
    for (int v = 0; v < nv; v++) {
        if (group && rw->v[v].api->score_group)
            for (int g = 0; g < n_groups; g++) jobs[n_jobs++] = (job){v, starts[g], starts[g + 1]};
        else
            for (int s = 0; s < n; s++) jobs[n_jobs++] = (job){v, s, -1};
    }
    b.jobs = jobs;
    b.n_jobs = n_jobs;
    run_jobs(&b, rw->threads);

    for (int s = 0; s < n; s++) {
        rl_vresult *row = &results[(size_t)s * nv];
        for (int v = 0; v < nv; v++) rl_vresult_sanitize(&row[v]);
        int skip = 0;
        reward[s] = rl_reward_weighted(nv, rw->weight, rw->gated, rw->accuracy, row, &skip);
        if (skipped) skipped[s] = (uint8_t)skip;
    }
    free(jobs);
    free(order);
    free(starts);
    free(b.gathered);
    free(b.scratch);
    return 0;
}
