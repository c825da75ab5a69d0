// test_backend_util: moving test data to and from a backend's memory (the CUDA tests compare a
// device backend with the CPU one, so each needs these two): test_up copies host bytes into a
// fresh backend block, test_down returns n floats of backend memory in a malloc'ed host array
// (both exit on allocation failure, as rl_malloc and mem_alloc do); test_open_cuda opens the CUDA
// backend or, where there is none, checks that the refusal is clean and says how to exit.
#ifndef RL_TEST_BACKEND_UTIL_H
#define RL_TEST_BACKEND_UTIL_H

#include "kernels/backend.h"
#include "test_util.h"

static inline void *test_up(const rl_backend *be, const void *host, size_t bytes) {
    void *d = be->mem_alloc(be, bytes ? bytes : 4);
    be->mem_upload(be, d, host, bytes);
    return d;
}

static inline float *test_down(const rl_backend *be, const void *d, size_t n) {
    float *h = rl_malloc((n ? n : 1) * sizeof(float));
    be->mem_download(be, h, d, n * sizeof(float));
    return h;
}

// The CUDA backend; without one, checks that the refusal names cuda, prints "skip: ..." and
// returns NULL with *status set to the test's exit status (77 skipped, 1 if a check failed).
static inline const rl_backend *test_open_cuda(int *status) {
    rl_err err;
    const rl_backend *be = rl_backend_get("cuda", &err);
    if (be) return be;
    CHECK(err.msg[0] != '\0' && strstr(err.msg, "cuda") != NULL, "the refusal names cuda: '%s'",
          err.msg);
    *status = test_summary() != 0 ? 1 : 77;
    if (*status == 77) fprintf(stderr, "skip: %s\n", err.msg);
    return NULL;
}

#endif
