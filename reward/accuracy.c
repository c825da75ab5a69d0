// accuracy: the dispatcher over the math and code verifiers, and the built-in table. See builtin.h.
#include "reward/builtin.h"

#include "verifiers/shape/shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The verifiers of other modules are optional parts of the build (reward/CMakeLists.txt defines
// RLPIPE_HAVE_VERIFIER_<NAME> for those whose target exists).
#if RLPIPE_HAVE_VERIFIER_MATH
#include "verifiers/math/math_verify.h"
#define MATH_API rl_verifier_math_api()
#else
#define MATH_API NULL
#endif
#if RLPIPE_HAVE_VERIFIER_CODE
#include "verifiers/code/code.h"
#define CODE_API rl_verifier_code_api()
#else
#define CODE_API NULL
#endif
#if RLPIPE_HAVE_VERIFIER_PATH
#include "verifiers/path/path_quality.h"
#define PATH_API rl_verifier_path_api()
#else
#define PATH_API NULL
#endif

enum { SUB_MATH, SUB_CODE, N_SUB };
static const char *const SUB_NAME[N_SUB] = {"math", "code"};

typedef struct accuracy {
    const rl_verifier_api *api[N_SUB]; // NULL when not part of the build
    void *self[N_SUB];
} accuracy;

static void sub_apis(const rl_verifier_api *api[N_SUB]) {
    api[SUB_MATH] = MATH_API;
    api[SUB_CODE] = CODE_API;
}

static void accuracy_destroy(void *p) {
    accuracy *a = p;
    if (!a) return;
    for (int k = 0; k < N_SUB; k++)
        if (a->self[k]) a->api[k]->destroy(a->self[k]);
    free(a);
}

// Which verifiers take option o: a "math." / "code." prefix names one; otherwise every verifier
// that accepts the option on its own. Sets routed[k] and stripped keys; 0, or -1 with err.
static int route_option(const rl_verifier_api *const api[N_SUB], const rl_voption *o,
                        rl_voption routed[N_SUB], int take[N_SUB], char *err, size_t err_len) {
    for (int k = 0; k < N_SUB; k++) {
        size_t pl = strlen(SUB_NAME[k]);
        if (strncmp(o->key, SUB_NAME[k], pl) == 0 && o->key[pl] == '.') {
            if (!api[k]) {
                snprintf(err, err_len, "option %s: the %s verifier is not part of this build",
                         o->key, SUB_NAME[k]);
                return -1;
            }
            routed[k] = (rl_voption){o->key + pl + 1, o->value};
            take[k] = 1;
            return 0;
        }
    }
    char reasons[2][400] = {"not part of this build", "not part of this build"};
    int taken = 0;
    for (int k = 0; k < N_SUB; k++) {
        if (!api[k]) continue;
        void *probe = api[k]->create(o, 1, reasons[k], sizeof reasons[k]);
        if (!probe) continue;
        api[k]->destroy(probe);
        routed[k] = *o;
        take[k] = 1;
        taken = 1;
    }
    // With a verifier missing from the build the option may be meant for it: nothing to check.
    if (!taken && api[SUB_MATH] && api[SUB_CODE]) {
        snprintf(err, err_len, "option %s: math: %s; code: %s", o->key, reasons[SUB_MATH],
                 reasons[SUB_CODE]);
        return -1;
    }
    return 0;
}

static void *accuracy_create(const rl_voption *opts, int32_t n_opts, char *err, size_t err_len) {
    accuracy *a = calloc(1, sizeof *a);
    rl_voption *lists = calloc((size_t)(n_opts > 0 ? n_opts : 1) * N_SUB, sizeof *lists);
    int n_list[N_SUB] = {0};
    if (!a || !lists) {
        free(a);
        free(lists);
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    sub_apis(a->api);
    for (int i = 0; i < n_opts; i++) {
        rl_voption routed[N_SUB];
        int take[N_SUB] = {0};
        if (route_option(a->api, &opts[i], routed, take, err, err_len) != 0) goto fail;
        for (int k = 0; k < N_SUB; k++)
            if (take[k]) lists[k * n_opts + n_list[k]++] = routed[k];
    }
    for (int k = 0; k < N_SUB; k++) {
        if (!a->api[k]) continue;
        char why[200] = "";
        a->self[k] = a->api[k]->create(lists + (size_t)k * n_opts, n_list[k], why, sizeof why);
        if (!a->self[k]) {
            snprintf(err, err_len, "%s: %s", SUB_NAME[k], why);
            goto fail;
        }
    }
    free(lists);
    return a;
fail:
    free(lists);
    accuracy_destroy(a);
    return NULL;
}

static void accuracy_score(void *p, const rl_vsample *s, rl_vresult *out) {
    accuracy *a = p;
    int k;
    if (s->tests || s->n_tests > 0)
        k = SUB_CODE;
    else if (s->answer)
        k = SUB_MATH;
    else {
        out->score = 0.0;
        out->status = RL_VERIFY_SKIPPED;
        snprintf(out->detail, sizeof out->detail, "no reference answer or tests");
        return;
    }
    if (!a->self[k]) {
        out->score = 0.0;
        out->status = RL_VERIFY_ERROR;
        snprintf(out->detail, sizeof out->detail, "the %s verifier is not part of this build",
                 SUB_NAME[k]);
        return;
    }
    a->api[k]->score(a->self[k], s, out);
}

static const rl_verifier_api ACCURACY_SAFE = {
    .abi_version = RL_VERIFIER_ABI_VERSION,
    .name = "accuracy",
    .thread_safe = 1,
    .create = accuracy_create,
    .score = accuracy_score,
    .score_group = NULL,
    .destroy = accuracy_destroy,
};

static const rl_verifier_api ACCURACY_UNSAFE = {
    .abi_version = RL_VERIFIER_ABI_VERSION,
    .name = "accuracy",
    .thread_safe = 0,
    .create = accuracy_create,
    .score = accuracy_score,
    .score_group = NULL,
    .destroy = accuracy_destroy,
};

// Thread-safe exactly when every verifier it dispatches to is.
const rl_verifier_api *rl_accuracy_api(void) {
    const rl_verifier_api *api[N_SUB];
    sub_apis(api);
    for (int k = 0; k < N_SUB; k++)
        if (api[k] && !api[k]->thread_safe) return &ACCURACY_UNSAFE;
    return &ACCURACY_SAFE;
}

// ---- the built-in table ----------------------------------------------------------------------------

const char *rl_builtin_names(void) {
    return "accuracy, path_quality, format, efficiency";
}

const rl_verifier_api *rl_builtin_api(const char *name, char *why, size_t why_len) {
    const rl_verifier_api *api = NULL;
    if (strcmp(name, "accuracy") == 0) return rl_accuracy_api();
    if (strcmp(name, "format") == 0) return rl_verifier_format_api();
    if (strcmp(name, "efficiency") == 0) return rl_verifier_efficiency_api();
    if (strcmp(name, "path_quality") == 0) {
        api = PATH_API;
        if (!api) snprintf(why, why_len, "the built-in path_quality is not part of this build");
        return api;
    }
    snprintf(why, why_len,
             "unknown verifier (built-ins: %s; give plugin: or command: for your own)",
             rl_builtin_names());
    return NULL;
}
