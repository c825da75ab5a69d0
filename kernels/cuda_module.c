// cuda_module: loads the CUDA backend module (librlpipe_cuda.so) with dlopen the first time a
// CUDA backend is asked for, so that rlpipe itself links neither the CUDA runtime nor cuBLAS and a
// process that stays on the CPU starts in milliseconds. See rl_backend_cuda_open in backend.h.
//
// Where the module is looked for, first found wins:
//   1. $RLPIPE_CUDA_MODULE, a path to the .so (when set, nothing else is tried);
//   2. next to the running executable (build/rlpipe -> build/librlpipe_cuda.so);
//   3. one folder up (build/tests/test_cuda, build/bench/bench_model -> build/);
//   4. ../lib/rlpipe/ from the executable (an installed layout: bin/ and lib/rlpipe/);
//   5. the dynamic linker's own search (LD_LIBRARY_PATH, ldconfig) for "librlpipe_cuda.so".
// The loader keeps no state: dlopen counts references and returns the same handle each time, and
// the module is never unloaded (the CUDA runtime does not support being unloaded mid-process).
#define _POSIX_C_SOURCE 200809L
#include "kernels/backend.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODULE_NAME "librlpipe_cuda.so"

typedef unsigned module_abi_fn(void);
typedef const rl_backend *module_open_fn(int device, int tf32, rl_dtype act, rl_err *err);

// The folder of the running executable, without a trailing slash; 0 on success.
static int exe_dir(char *buf, size_t size) {
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0) return -1;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash) return -1;
    *slash = '\0';
    return 0;
}

// dlopen of one candidate path. A file that exists but does not load (a missing libcudart, a
// module for another architecture) is remembered in `why`: it is the error worth reporting.
static void *try_open(const char *path, char *why, size_t why_size) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h && access(path, F_OK) == 0 && !why[0]) {
        const char *e = dlerror();
        snprintf(why, why_size, "%s", e ? e : path);
    }
    return h;
}

static void *open_module(char *why, size_t why_size, rl_err *err) {
    why[0] = '\0';
    const char *env = getenv("RLPIPE_CUDA_MODULE");
    if (env && *env) {
        void *h = try_open(env, why, why_size);
        if (!h)
            rl_fail(err, RL_EINPUT, "device 'cuda': RLPIPE_CUDA_MODULE=%s cannot be loaded: %s",
                    env, why[0] ? why : "no such file");
        return h;
    }
    char dir[4096];
    if (exe_dir(dir, sizeof dir) == 0) {
        static const char *const rel[] = {"/", "/../", "/../lib/rlpipe/"};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            char path[4200];
            snprintf(path, sizeof path, "%s%s%s", dir, rel[i], MODULE_NAME);
            void *h = try_open(path, why, why_size);
            if (h) return h;
        }
    }
    void *h = try_open(MODULE_NAME, why, why_size);
    if (!h) {
        if (!why[0]) {
            const char *e = dlerror();
            snprintf(why, why_size, "%s", e ? e : "not found");
        }
        rl_fail(err, RL_EINPUT,
                "device 'cuda': cannot load the CUDA backend module " MODULE_NAME
                " (looked next to the executable, one folder up, ../lib/rlpipe/ and the library "
                "path; set RLPIPE_CUDA_MODULE to its path): %s",
                why);
    }
    return h;
}

const rl_backend *rl_backend_cuda_open(int device, int tf32, rl_dtype act, rl_err *err) {
    char why[512];
    void *h = open_module(why, sizeof why, err);
    if (!h) return NULL;
    // POSIX allows converting dlsym's void * to a function pointer; the union says so to C11.
    union {
        void *p;
        module_abi_fn *abi;
        module_open_fn *open;
    } abi = {dlsym(h, "rl_cuda_module_abi")}, open = {dlsym(h, "rl_cuda_module_open")};
    if (!abi.p || !open.p) {
        rl_fail(err, RL_EINPUT, "device 'cuda': %s is not an rlpipe CUDA module (no entry point)",
                MODULE_NAME);
        return NULL;
    }
    unsigned got = abi.abi();
    if (got != RL_BACKEND_ABI) {
        rl_fail(err, RL_EINPUT,
                "device 'cuda': %s was built for another rlpipe (backend ABI %#x, this one %#x); "
                "rebuild both from the same sources",
                MODULE_NAME, got, RL_BACKEND_ABI);
        return NULL;
    }
    return open.open(device, tf32, act, err);
}

// Another entry point of the module (the NCCL communicator, kernels/comm.c), or NULL with err set.
void *rl_cuda_module_symbol(const char *name, rl_err *err);
void *rl_cuda_module_symbol(const char *name, rl_err *err) {
    char why[512];
    void *h = open_module(why, sizeof why, err);
    if (!h) return NULL;
    void *f = dlsym(h, name);
    if (!f) rl_fail(err, RL_EINPUT, "%s has no entry point %s (rebuild it)", MODULE_NAME, name);
    return f;
}
