// spec: releasing a verifier spec. See spec.h.
#include "reward/spec.h"

#include <stdlib.h>

void rl_verifier_spec_free(rl_verifier_spec *spec) {
    if (!spec) return;
    free(spec->name);
    free(spec->plugin);
    free(spec->command);
    free(spec->gate);
    for (int i = 0; i < spec->n_options; i++) {
        free((char *)spec->options[i].key);
        free((char *)spec->options[i].value);
    }
    free(spec->options);
    *spec = (rl_verifier_spec){0};
}
