// sandbox: the parent side. rl_sandbox_create resolves python, prepares the seccomp program, the
// private root's layout and the Landlock path handles, then probes the namespaces. rl_sandbox_run
// prepares one run (directory, in-memory stdin, pipes, plan), clones the child, writes its uid
// maps, drains its output under a deadline, kills the whole tree, reaps it and classifies the
// outcome. See sandbox.h for the protections and sandbox_child.c for the child's side.
#define _GNU_SOURCE
#include "verifiers/code/sandbox.h"
#include "verifiers/code/sandbox_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

#define SBX_STDERR_KEEP     (64 * 1024) // the tail of stderr kept for diagnosis
#define SBX_DRAIN_GRACE_S   0.5         // after the program ended, wait this long for pipe EOF
#define SBX_PROBE_TIMEOUT_S 20.0        // a loaded machine may start python slowly

static const char *const sbx_search_path[] = {"/usr/local/bin", "/usr/bin", "/bin"};

// What the program may read (besides its own directory), and the device nodes it may use.
static const char *const sbx_system_paths[] = {
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/lib32",
    "/libx32",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/alternatives", // Debian's library links
};
static const char *const sbx_dev_nodes[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                            "/dev/urandom"};

struct rl_sandbox {
    rl_sandbox_limits lim; // copy; string fields point at the owned copies below
    char *python;          // resolved, absolute
    char *base_dir;
    char *ro_paths;
    int mode; // RL_SANDBOX_NAMESPACES or RL_SANDBOX_RLIMITS
    int is_root;
    uint32_t fixed_uid; // as root: 0 = a uid of each run's own, else this uid for every run
    uid_t uid;
    gid_t gid;
    char mode_note[160];
    // namespaces mode: the private root's layout
    sbx_op *ops; // [n_ops]
    int n_ops;
    char **strings; // [n_strings] every string the ops point at
    int n_strings;
    char tmpfs_opts[96];
    // rlimits mode: Landlock handles for the same paths
    int landlock_abi;
    int *ro_fds;    // [n_ro]
    int *ro_is_dir; // [n_ro]
    int n_ro;
    int dev_fds[sizeof sbx_dev_nodes / sizeof *sbx_dev_nodes];
    int n_dev;
    // the seccomp program for the mode in effect
    struct sock_filter *bpf; // [bpf_len]
    unsigned short bpf_len;
};

void rl_sandbox_default_limits(rl_sandbox_limits *lim) {
    memset(lim, 0, sizeof *lim);
    lim->timeout_s = 4.0;
    lim->memory_mb = 512;
    lim->stack_mb = 32;
    lim->max_output_kb = 1024;
    lim->file_size_mb = 16;
    lim->disk_mb = 64;
    lim->nproc = 64;
    lim->nofile = 64;
    lim->isolation = RL_SANDBOX_AUTO;
    lim->python = "python3";
}

const char *rl_sandbox_mode_name(int mode) {
    return mode == RL_SANDBOX_NAMESPACES ? "namespaces"
           : mode == RL_SANDBOX_RLIMITS  ? "rlimits"
                                         : "auto";
}

const char *rl_sandbox_verdict_name(int verdict) {
    static const char *const names[] = {"ok",           "runtime error", "timeout",
                                        "memory limit", "output limit",  "file limit",
                                        "seccomp kill", "setup error"};
    return verdict >= 0 && verdict <= RL_SBX_SETUP_ERROR ? names[verdict] : "?";
}

int rl_sandbox_mode(const rl_sandbox *sb) {
    return sb->mode;
}
const char *rl_sandbox_mode_note(const rl_sandbox *sb) {
    return sb->mode_note;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---- creation ---------------------------------------------------------------------------------

static char *resolve_python(const char *name, char *err, size_t err_len) {
    char path[PATH_MAX];
    if (!name || !*name) {
        snprintf(err, err_len, "python: empty path");
        return NULL;
    }
    if (strchr(name, '/')) {
        snprintf(path, sizeof path, "%s", name);
    } else {
        // a fixed system search path: the caller's PATH may hold shims (pyenv) that need its env
        path[0] = 0;
        for (size_t i = 0; i < sizeof sbx_search_path / sizeof *sbx_search_path; i++) {
            char cand[PATH_MAX];
            snprintf(cand, sizeof cand, "%s/%s", sbx_search_path[i], name);
            if (access(cand, X_OK) == 0) {
                snprintf(path, sizeof path, "%s", cand);
                break;
            }
        }
        if (!path[0]) {
            snprintf(err, err_len, "python not found: %s (searched /usr/local/bin:/usr/bin:/bin)",
                     name);
            return NULL;
        }
    }
    char real[PATH_MAX];
    if (!realpath(path, real) || access(real, X_OK) != 0) {
        snprintf(err, err_len, "python not found: %s (%s)", path, strerror(errno));
        return NULL;
    }
    return strdup(real);
}

static char *keep_string(rl_sandbox *sb, const char *s) {
    char *copy = strdup(s);
    if (!copy) abort();
    char **grown = realloc(sb->strings, (size_t)(sb->n_strings + 1) * sizeof *grown);
    if (!grown) abort();
    sb->strings = grown;
    sb->strings[sb->n_strings++] = copy;
    return copy;
}

static void add_op(rl_sandbox *sb, int kind, unsigned mode, const char *src, const char *rel,
                   const char *link) {
    sbx_op *grown = realloc(sb->ops, (size_t)(sb->n_ops + 1) * sizeof *grown);
    if (!grown) abort();
    sb->ops = grown;
    sbx_op *op = &sb->ops[sb->n_ops++];
    op->kind = kind;
    op->mode = mode;
    op->src = src ? keep_string(sb, src) : NULL;
    op->rel = keep_string(sb, rel);
    op->link = link ? keep_string(sb, link) : NULL;
}

// True when an op already provides rel (a directory made or bound there, or a bind above it).
static int layout_has(const rl_sandbox *sb, const char *rel, int as_prefix_only) {
    size_t n = strlen(rel);
    for (int i = 0; i < sb->n_ops; i++) {
        const sbx_op *op = &sb->ops[i];
        size_t m = strlen(op->rel);
        if (!as_prefix_only && strcmp(op->rel, rel) == 0) return 1;
        if (op->kind == SBX_OP_BIND_DIR && n > m && strncmp(op->rel, rel, m) == 0 && rel[m] == '/')
            return 1;
        if (op->kind == SBX_OP_BIND_DIR && strcmp(op->rel, rel) == 0) return 1;
    }
    return 0;
}

static void add_parent_dirs(rl_sandbox *sb, const char *rel) {
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", rel);
    for (char *slash = strchr(buf, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = 0;
        if (!layout_has(sb, buf, 0)) add_op(sb, SBX_OP_MKDIR, 0755, NULL, buf, NULL);
        *slash = '/';
    }
}

// Exposes one host path in the private root (namespaces) and in the Landlock rules (rlimits).
static void expose_path(rl_sandbox *sb, const char *path) {
    if (path[0] != '/' || strcmp(path, "/") == 0) return;
    const char *rel = path + 1;
    struct stat st;
    if (lstat(path, &st) != 0 || layout_has(sb, rel, 0)) return;
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0) return;
        target[n] = 0;
        add_parent_dirs(sb, rel);
        add_op(sb, SBX_OP_SYMLINK, 0, NULL, rel, target);
    } else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
        add_parent_dirs(sb, rel);
        add_op(sb, S_ISDIR(st.st_mode) ? SBX_OP_BIND_DIR : SBX_OP_BIND_FILE, 0, path, rel, NULL);
    } else {
        return;
    }
    int fd = open(path, O_PATH | O_CLOEXEC); // follows links: the rule covers the target
    if (fd < 0) return;
    struct stat tst;
    if (fstat(fd, &tst) != 0) {
        close(fd);
        return;
    }
    int *fds = realloc(sb->ro_fds, (size_t)(sb->n_ro + 1) * sizeof *fds);
    int *dirs = realloc(sb->ro_is_dir, (size_t)(sb->n_ro + 1) * sizeof *dirs);
    if (!fds || !dirs) abort();
    sb->ro_fds = fds;
    sb->ro_is_dir = dirs;
    sb->ro_fds[sb->n_ro] = fd;
    sb->ro_is_dir[sb->n_ro] = S_ISDIR(tst.st_mode);
    sb->n_ro++;
}

static void build_layout(rl_sandbox *sb) {
    add_op(sb, SBX_OP_MKDIR, 0755, NULL, "box", NULL);
    add_op(sb, SBX_OP_MKDIR, 01777, NULL, "tmp", NULL);
    add_op(sb, SBX_OP_MKDIR, 0755, NULL, "dev", NULL);
    add_op(sb, SBX_OP_MKDIR, 01777, NULL, "dev/shm", NULL);
    add_op(sb, SBX_OP_MKDIR, 0555, NULL, "proc", NULL);
    for (size_t i = 0; i < sizeof sbx_system_paths / sizeof *sbx_system_paths; i++)
        expose_path(sb, sbx_system_paths[i]);
    // the python installation's prefix (…/bin/python → …), when not under /usr already
    char prefix[PATH_MAX];
    snprintf(prefix, sizeof prefix, "%s", sb->python);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(prefix, '/');
        if (slash && slash != prefix) *slash = 0;
    }
    expose_path(sb, prefix);
    if (sb->ro_paths) {
        char *list = strdup(sb->ro_paths), *save = NULL;
        if (!list) abort();
        for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save))
            expose_path(sb, p);
        free(list);
    }
    for (size_t i = 0; i < sizeof sbx_dev_nodes / sizeof *sbx_dev_nodes; i++) {
        struct stat st;
        if (stat(sbx_dev_nodes[i], &st) != 0 || !S_ISCHR(st.st_mode)) continue;
        add_op(sb, SBX_OP_BIND_DEV, 0, sbx_dev_nodes[i], sbx_dev_nodes[i] + 1, NULL);
        int fd = open(sbx_dev_nodes[i], O_PATH | O_CLOEXEC);
        if (fd >= 0) sb->dev_fds[sb->n_dev++] = fd;
    }
    add_op(sb, SBX_OP_SYMLINK, 0, NULL, "dev/fd", "/proc/self/fd");
    add_op(sb, SBX_OP_SYMLINK, 0, NULL, "dev/stdin", "/proc/self/fd/0");
    add_op(sb, SBX_OP_SYMLINK, 0, NULL, "dev/stdout", "/proc/self/fd/1");
    add_op(sb, SBX_OP_SYMLINK, 0, NULL, "dev/stderr", "/proc/self/fd/2");
}

int rl_sandbox_check_limits(const rl_sandbox_limits *l, char *err, size_t err_len) {
    if (!(l->timeout_s > 0 && l->timeout_s <= 3600)) {
        snprintf(err, err_len, "timeout_s must be in (0, 3600], got %g", l->timeout_s);
        return -1;
    }
    if (l->memory_mb < 16 || l->memory_mb > (1 << 20)) {
        snprintf(err, err_len, "memory_mb must be in [16, 1048576], got %lld",
                 (long long)l->memory_mb);
        return -1;
    }
    if (l->stack_mb < 1 || l->stack_mb > l->memory_mb) {
        snprintf(err, err_len, "stack_mb must be in [1, memory_mb], got %lld",
                 (long long)l->stack_mb);
        return -1;
    }
    if (l->max_output_kb < 1 || l->max_output_kb > (1 << 20)) {
        snprintf(err, err_len, "max_output_kb must be in [1, 1048576], got %lld",
                 (long long)l->max_output_kb);
        return -1;
    }
    if (l->file_size_mb < 1 || l->file_size_mb > (1 << 20) || l->disk_mb < 1 ||
        l->disk_mb > (1 << 20)) {
        snprintf(err, err_len, "file_size_mb and disk_mb must be in [1, 1048576]");
        return -1;
    }
    if (l->nproc < 1 || l->nproc > 100000 || l->nofile < 8 || l->nofile > 1000000) {
        snprintf(err, err_len, "nproc must be in [1, 100000] and nofile in [8, 1000000]");
        return -1;
    }
    if (l->isolation < RL_SANDBOX_AUTO || l->isolation > RL_SANDBOX_RLIMITS) {
        snprintf(err, err_len, "unknown isolation mode %d", l->isolation);
        return -1;
    }
    return 0;
}

// Whether [first, first + count) is mapped in one line of /proc/self/{uid,gid}_map.
static int ids_mapped(const char *map_path, uint64_t first, uint64_t count) {
    FILE *f = fopen(map_path, "r");
    if (!f) return 0;
    unsigned long long inside, outside, n;
    int ok = 0;
    while (!ok && fscanf(f, "%llu %llu %llu", &inside, &outside, &n) == 3)
        ok = inside <= first && first + count <= inside + n;
    fclose(f);
    return ok;
}

// As root, each run gets a uid (and gid) of its own, RL_SANDBOX_UID_BASE + its pid, so that runs
// cannot signal or count against each other. Containers that map only a small id range (rootless
// podman, userns-remap) get nobody (65534) for every run instead.
static int choose_run_uid(rl_sandbox *sb, char *err, size_t err_len) {
    const uint64_t pids = 4194304; // PID_MAX_LIMIT
    if (ids_mapped("/proc/self/uid_map", RL_SANDBOX_UID_BASE, pids) &&
        ids_mapped("/proc/self/gid_map", RL_SANDBOX_UID_BASE, pids)) {
        sb->fixed_uid = 0;
        return 0;
    }
    if (ids_mapped("/proc/self/uid_map", 65534, 1) && ids_mapped("/proc/self/gid_map", 65534, 1)) {
        sb->fixed_uid = 65534;
        return 0;
    }
    snprintf(err, err_len, "running as root, but neither uids %u+ nor 65534 are mapped here",
             RL_SANDBOX_UID_BASE);
    return -1;
}

static uint32_t run_uid(const rl_sandbox *sb, pid_t pid) {
    if (!sb->is_root) return (uint32_t)sb->uid;
    return sb->fixed_uid ? sb->fixed_uid : RL_SANDBOX_UID_BASE + (uint32_t)pid;
}

static int prepare_mode(rl_sandbox *sb, int mode, char *err, size_t err_len) {
    free(sb->bpf);
    sb->bpf = NULL;
    sb->mode = mode;
    int namespaces = mode == RL_SANDBOX_NAMESPACES;
    int restrict_kill = !namespaces && sb->landlock_abi < 6;
    return sbx_build_seccomp(namespaces, restrict_kill, &sb->bpf, &sb->bpf_len, err, err_len);
}

// Runs print(6*7) and tells whether it came back as "42".
static int probe(rl_sandbox *sb, char *why, size_t why_len) {
    static const char prog[] = "print(6*7)\n";
    rl_sandbox_job job = {.program = prog, .program_len = sizeof prog - 1};
    rl_sandbox_result res;
    double saved = sb->lim.timeout_s;
    sb->lim.timeout_s = SBX_PROBE_TIMEOUT_S > saved ? SBX_PROBE_TIMEOUT_S : saved;
    rl_sandbox_run(sb, &job, &res);
    sb->lim.timeout_s = saved;
    int ok = res.verdict == RL_SBX_OK && strcmp(res.out, "42\n") == 0;
    if (!ok) {
        if (res.note[0])
            snprintf(why, why_len, "%s", res.note);
        else {
            // the last line of stderr says what python complained about
            const char *e = res.err, *last = e;
            for (const char *q = e; *q; q++)
                if (*q == '\n' && q[1]) last = q + 1;
            snprintf(why, why_len, "probe program: %s: %.100s",
                     rl_sandbox_verdict_name(res.verdict), last);
            char *nl = strchr(why, '\n');
            if (nl) *nl = 0;
        }
    }
    rl_sandbox_result_free(&res);
    return ok;
}

rl_sandbox *rl_sandbox_create(const rl_sandbox_limits *lim, char *err, size_t err_len) {
    if (rl_sandbox_check_limits(lim, err, err_len) != 0) return NULL;
    rl_sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) abort();
    for (size_t i = 0; i < sizeof sb->dev_fds / sizeof *sb->dev_fds; i++) sb->dev_fds[i] = -1;
    sb->lim = *lim;
    sb->is_root = geteuid() == 0;
    sb->uid = getuid();
    sb->gid = getgid();
    sb->python = resolve_python(lim->python ? lim->python : "python3", err, err_len);
    if (!sb->python) goto fail;
    const char *base = lim->base_dir;
    if (!base || !*base) base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    sb->base_dir = strdup(base);
    sb->ro_paths = lim->ro_paths ? strdup(lim->ro_paths) : NULL;
    if (!sb->base_dir || (lim->ro_paths && !sb->ro_paths)) abort();
    struct stat st;
    if (stat(sb->base_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, err_len, "sandbox base directory %s: %s", sb->base_dir,
                 errno ? strerror(errno) : "not a directory");
        goto fail;
    }
    sb->lim.python = sb->python;
    sb->lim.base_dir = sb->base_dir;
    sb->lim.ro_paths = sb->ro_paths;
    // uid=0 is the namespace's root, i.e. the run's own uid outside: the program owns its root
    snprintf(sb->tmpfs_opts, sizeof sb->tmpfs_opts,
             "size=%lldm,nr_inodes=16384,mode=0755,uid=0,gid=0", (long long)lim->disk_mb);
    if (sb->is_root && choose_run_uid(sb, err, err_len) != 0) goto fail;
    build_layout(sb);
    if (sb->n_ops > SBX_MAX_OPS) {
        snprintf(err, err_len, "too many exposed paths (%d steps, at most %d)", sb->n_ops,
                 SBX_MAX_OPS);
        goto fail;
    }
    sb->landlock_abi = sbx_landlock_abi();

    char why[160] = "";
    if (lim->isolation != RL_SANDBOX_RLIMITS) {
        if (prepare_mode(sb, RL_SANDBOX_NAMESPACES, err, err_len) != 0) goto fail;
        if (probe(sb, why, sizeof why)) return sb;
        if (lim->isolation == RL_SANDBOX_NAMESPACES) {
            snprintf(err, err_len, "namespace sandbox unavailable: %s", why);
            goto fail;
        }
        snprintf(sb->mode_note, sizeof sb->mode_note, "namespaces unavailable (%s)", why);
    }
    if (prepare_mode(sb, RL_SANDBOX_RLIMITS, err, err_len) != 0) goto fail;
    if (!probe(sb, why, sizeof why)) {
        snprintf(err, err_len, "sandbox cannot run python: %s", why);
        goto fail;
    }
    if (sb->landlock_abi == 0) {
        size_t n = strlen(sb->mode_note);
        snprintf(sb->mode_note + n, sizeof sb->mode_note - n, "%sno Landlock", n ? "; " : "");
    }
    return sb;
fail:
    rl_sandbox_destroy(sb);
    return NULL;
}

void rl_sandbox_destroy(rl_sandbox *sb) {
    if (!sb) return;
    for (int i = 0; i < sb->n_strings; i++) free(sb->strings[i]);
    free(sb->strings);
    free(sb->ops);
    for (int i = 0; i < sb->n_ro; i++) close(sb->ro_fds[i]);
    free(sb->ro_fds);
    free(sb->ro_is_dir);
    for (int i = 0; i < sb->n_dev; i++) close(sb->dev_fds[i]);
    free(sb->bpf);
    free(sb->python);
    free(sb->base_dir);
    free(sb->ro_paths);
    free(sb);
}

// ---- one run ----------------------------------------------------------------------------------

// Growing capture buffers. stdout keeps its head up to the cap; stderr keeps its tail.
typedef struct sbx_buf {
    char *data;
    size_t len, cap;
} sbx_buf;

static void buf_append(sbx_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) abort();
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

static void buf_keep_tail(sbx_buf *b, size_t keep) {
    if (b->len <= 2 * keep) return;
    memmove(b->data, b->data + b->len - keep, keep);
    b->len = keep;
    b->data[b->len] = 0;
}

static int sealed_memfd(const char *name, const char *data, size_t len) {
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)n;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0 ||
        lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int write_text_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int e = errno;
    close(fd);
    errno = e;
    return w == (ssize_t)n ? 0 : -1;
}

// The namespace's uid/gid maps: its root is the run's own uid (as root) or ours.
static int write_id_maps(const rl_sandbox *sb, pid_t pid, uint32_t *outer, char *why,
                         size_t why_len) {
    char path[64], map[64];
    uint32_t uid = run_uid(sb, pid);
    uint32_t gid = sb->is_root ? uid : (uint32_t)sb->gid;
    *outer = uid;
    if (!sb->is_root) { // an unprivileged writer may map its own gid only after this
        snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
        if (write_text_file(path, "deny") != 0) goto fail;
    }
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    snprintf(map, sizeof map, "0 %u 1\n", uid);
    if (write_text_file(path, map) != 0) goto fail;
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    snprintf(map, sizeof map, "0 %u 1\n", gid);
    if (write_text_file(path, map) != 0) goto fail;
    return 0;
fail:
    snprintf(why, why_len, "write %s: %s", path, strerror(errno));
    return -1;
}

// Tasks (processes + threads) of uid, for RLIMIT_NPROC in the non-root rlimits mode, where the
// limit counts everything we run.
static long count_user_tasks(uid_t uid) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    long total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        struct stat st;
        char path[300];
        snprintf(path, sizeof path, "/proc/%s/task", e->d_name);
        if (stat(path, &st) != 0 || st.st_uid != uid) continue;
        DIR *t = opendir(path);
        if (!t) continue;
        struct dirent *te;
        while ((te = readdir(t)))
            if (te->d_name[0] != '.') total++;
        closedir(t);
    }
    closedir(d);
    return total;
}

// Removes a run directory the program may have filled, made read-only or nested deeply, using one
// descriptor at a time (no recursion) and never following links. Runs after the process tree is
// dead, so nothing moves underneath.
static void remove_tree(const char *path) {
    if (rmdir(path) == 0 || errno == ENOENT) return;
    int cur = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cur < 0) {
        chmod(path, 0700);
        cur = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cur < 0) return;
    }
    struct stat top;
    if (fstat(cur, &top) != 0) {
        close(cur);
        return;
    }
    for (long steps = 0; steps < 10000000; steps++) {
        fchmod(cur, 0700);
        int dup_fd = dup(cur);
        DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
        if (!d) {
            if (dup_fd >= 0) close(dup_fd);
            break;
        }
        rewinddir(d);
        char child[NAME_MAX + 1] = "";
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            if (unlinkat(cur, e->d_name, 0) == 0) continue;
            if (unlinkat(cur, e->d_name, AT_REMOVEDIR) == 0) continue;
            snprintf(child, sizeof child, "%s", e->d_name); // a non-empty directory
            break;
        }
        closedir(d);
        if (child[0]) { // descend
            fchmodat(cur, child, 0700, 0);
            int next = openat(cur, child, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (next < 0) break;
            close(cur);
            cur = next;
            continue;
        }
        struct stat here;
        if (fstat(cur, &here) != 0) break;
        if (here.st_dev == top.st_dev && here.st_ino == top.st_ino) break; // all done
        int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (up < 0) break;
        close(cur);
        cur = up;
    }
    close(cur);
    rmdir(path);
}

// fork-like clone with a pidfd: clone3, or clone where clone3 is missing/filtered.
static pid_t spawn(uint64_t flags, int *pidfd) {
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = flags | CLONE_PIDFD;
    ca.pidfd = (uint64_t)(uintptr_t)pidfd;
    ca.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &ca, sizeof ca);
    if (pid < 0 && (errno == ENOSYS || errno == EPERM))
        pid = syscall(SYS_clone, (unsigned long)(flags | CLONE_PIDFD | SIGCHLD), 0, pidfd, 0, 0);
    return (pid_t)pid;
}

typedef struct sbx_run {
    char dir[256];
    int fds[SBX_NFD]; // child ends
    int out_r, err_r, sync_w, report_r, pidfd;
    pid_t pid;
} sbx_run;

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static void kill_tree(const rl_sandbox *sb, const sbx_run *r) {
    // namespaces: PID 1 dies and the kernel kills the namespace; rlimits: the process group
    if (sb->mode == RL_SANDBOX_RLIMITS) kill(-r->pid, SIGKILL);
    syscall(SYS_pidfd_send_signal, r->pidfd, SIGKILL, NULL, 0);
}

// Sorts the outcome into a verdict (see rl_sandbox_verdict).
static void classify(const rl_sandbox *sb, rl_sandbox_result *res, int status, int have_status,
                     int timed_out, int output_limit) {
    if (have_status && WIFEXITED(status)) res->exit_code = WEXITSTATUS(status);
    if (have_status && WIFSIGNALED(status)) res->signal = WTERMSIG(status);
    double cpu_limit = ceil(sb->lim.timeout_s);
    if (output_limit) {
        res->verdict = RL_SBX_OUTPUT_LIMIT;
    } else if (timed_out || res->signal == SIGXCPU ||
               (res->signal == SIGKILL && res->cpu_s >= cpu_limit - 0.05)) {
        res->verdict = RL_SBX_TIMEOUT;
    } else if (!have_status) {
        res->verdict = RL_SBX_RUNTIME_ERROR;
        snprintf(res->note, sizeof res->note, "no exit status from the sandbox init");
    } else if (res->signal == SIGXFSZ) {
        res->verdict = RL_SBX_FILE_LIMIT;
    } else if (res->signal == SIGSYS) {
        res->verdict = RL_SBX_SECCOMP;
    } else if (res->signal) {
        res->verdict = RL_SBX_RUNTIME_ERROR;
    } else if (res->exit_code == 0) {
        res->verdict = RL_SBX_OK;
    } else if (strstr(res->err, "MemoryError") || strstr(res->err, "Cannot allocate memory")) {
        res->verdict = RL_SBX_MEMORY;
    } else if (strstr(res->err, "[Errno 27]") || strstr(res->err, "[Errno 28]")) {
        res->verdict = RL_SBX_FILE_LIMIT; // EFBIG (RLIMIT_FSIZE) or ENOSPC (private disk)
    } else {
        res->verdict = RL_SBX_RUNTIME_ERROR;
    }
}

static void setup_failed(rl_sandbox_result *res, const char *fmt, const char *what, int err) {
    res->verdict = RL_SBX_SETUP_ERROR;
    snprintf(res->note, sizeof res->note, fmt, what, strerror(err));
}

int rl_sandbox_run(const rl_sandbox *sb, const rl_sandbox_job *job, rl_sandbox_result *res) {
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    res->mode = sb->mode;
    sbx_buf out = {0}, err = {0};
    buf_append(&out, "", 0);
    buf_append(&err, "", 0);
    int ns = sb->mode == RL_SANDBOX_NAMESPACES;
    double t0 = now_s();
    sbx_run r;
    memset(&r, 0, sizeof r);
    for (int i = 0; i < SBX_NFD; i++) r.fds[i] = -1;
    r.out_r = r.err_r = r.sync_w = r.report_r = r.pidfd = -1;
    r.pid = -1;
    int setup_ok = 0, status = 0, have_status = 0, timed_out = 0, output_limit = 0;
    struct rusage ru;

    snprintf(r.dir, sizeof r.dir, "%s/rlpipe-sbx-XXXXXX", sb->base_dir);
    if (!mkdtemp(r.dir)) {
        setup_failed(res, "mkdtemp in %s: %s", sb->base_dir, errno);
        r.dir[0] = 0;
        goto done;
    }
    snprintf(res->dir, sizeof res->dir, "%s", r.dir);

    // descriptors: in-memory stdin and fd 3, output pipes, sync and report channels
    int p_out[2] = {-1, -1}, p_err[2] = {-1, -1}, p_rep[2] = {-1, -1}, sync[2] = {-1, -1};
    r.fds[SBX_FD_STDIN] = sealed_memfd("rlpipe-stdin", job->stdin_data ? job->stdin_data : "",
                                       job->stdin_data ? job->stdin_len : 0);
    if (r.fds[SBX_FD_STDIN] < 0) {
        setup_failed(res, "%s: %s", "stdin memfd", errno);
        goto done;
    }
    if (job->fd3_data) {
        r.fds[SBX_FD_EXTRA] = sealed_memfd("rlpipe-fd3", job->fd3_data, job->fd3_len);
        if (r.fds[SBX_FD_EXTRA] < 0) {
            setup_failed(res, "%s: %s", "fd3 memfd", errno);
            goto done;
        }
    }
    if (pipe2(p_out, O_CLOEXEC) != 0 || pipe2(p_err, O_CLOEXEC) != 0 ||
        pipe2(p_rep, O_CLOEXEC) != 0 ||
        (ns && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) != 0)) {
        setup_failed(res, "%s: %s", "pipe", errno);
        r.out_r = p_out[0], r.err_r = p_err[0], r.report_r = p_rep[0], r.sync_w = sync[0];
        r.fds[SBX_FD_STDOUT] = p_out[1], r.fds[SBX_FD_STDERR] = p_err[1];
        r.fds[SBX_FD_REPORT] = p_rep[1], r.fds[SBX_FD_SYNC] = sync[1];
        goto done;
    }
    r.out_r = p_out[0], r.err_r = p_err[0], r.report_r = p_rep[0], r.sync_w = sync[0];
    r.fds[SBX_FD_STDOUT] = p_out[1], r.fds[SBX_FD_STDERR] = p_err[1];
    r.fds[SBX_FD_REPORT] = p_rep[1], r.fds[SBX_FD_SYNC] = sync[1];
    fcntl(r.out_r, F_SETFL, O_NONBLOCK);
    fcntl(r.err_r, F_SETFL, O_NONBLOCK);
    fcntl(r.report_r, F_SETFL, O_NONBLOCK);

    if (!ns && sb->landlock_abi > 0) {
        int run_fd = open(r.dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        int rs = run_fd >= 0 ? sbx_landlock_ruleset(sb->landlock_abi, sb->ro_fds, sb->ro_is_dir,
                                                    sb->n_ro, sb->dev_fds, sb->n_dev, run_fd)
                             : -1;
        int e = errno;
        if (run_fd >= 0) close(run_fd);
        if (rs < 0) {
            setup_failed(res, "%s: %s", "landlock ruleset", e);
            goto done;
        }
        fcntl(rs, F_SETFD, FD_CLOEXEC);
        r.fds[SBX_FD_LANDLOCK] = rs;
    }

    // the plan: everything the child needs, prepared here (the child must not allocate)
    char home[300], tmp[300];
    snprintf(home, sizeof home, "HOME=%s", ns ? "/box" : r.dir);
    snprintf(tmp, sizeof tmp, "TMPDIR=%s", ns ? "/tmp" : r.dir);
    char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin",
                    "LANG=C.UTF-8",
                    "LC_ALL=C.UTF-8",
                    home,
                    tmp,
                    "PYTHONDONTWRITEBYTECODE=1",
                    "PYTHONHASHSEED=0",
                    "PYTHONIOENCODING=utf-8",
                    "OPENBLAS_NUM_THREADS=1",
                    "OMP_NUM_THREADS=1",
                    "MKL_NUM_THREADS=1",
                    NULL};
    char *argv_file[] = {sb->python, "-B", "-s", "solution.py", NULL};
    char *argv_runner[] = {sb->python, "-B", "-s", "-c", (char *)job->runner, NULL};
    rlim_t cpu = (rlim_t)ceil(sb->lim.timeout_s);
    rlim_t nproc = (rlim_t)sb->lim.nproc;
    if (ns)
        nproc += 1; // the namespace's init
    else if (!sb->is_root)
        nproc += (rlim_t)count_user_tasks(sb->uid); // counts all our processes
    rlim_t mib = 1024 * 1024;
    sbx_limit limits[] = {
        {RLIMIT_CPU, {cpu, cpu + 1}},
        {RLIMIT_AS, {(rlim_t)sb->lim.memory_mb * mib, (rlim_t)sb->lim.memory_mb * mib}},
        {RLIMIT_STACK, {(rlim_t)sb->lim.stack_mb * mib, (rlim_t)sb->lim.stack_mb * mib}},
        {RLIMIT_FSIZE, {(rlim_t)sb->lim.file_size_mb * mib, (rlim_t)sb->lim.file_size_mb * mib}},
        {RLIMIT_NOFILE, {(rlim_t)sb->lim.nofile, (rlim_t)sb->lim.nofile}},
        {RLIMIT_NPROC, {nproc, nproc}},
        {RLIMIT_CORE, {0, 0}},
        {RLIMIT_MEMLOCK, {0, 0}},
        {RLIMIT_MSGQUEUE, {0, 0}},
    };
    struct sock_fprog fprog = {.len = sb->bpf_len, .filter = sb->bpf};
    sbx_plan plan = {
        .namespaces = ns,
        .is_root = sb->is_root,
        .fixed_uid = sb->fixed_uid,
        .can_setgroups = sb->is_root,
        .parent_pid = getpid(),
        .run_dir = r.dir,
        .box_dir = ns ? "/box" : ".",
        .tmpfs_opts = sb->tmpfs_opts,
        .ops = sb->ops,
        .n_ops = sb->n_ops,
        .program = job->program ? job->program : "",
        .program_len = job->program ? job->program_len : 0,
        .exe = sb->python,
        .argv = job->runner ? argv_runner : argv_file,
        .envp = envp,
        .limits = limits,
        .n_limits = (int)(sizeof limits / sizeof *limits),
        .seccomp = &fprog,
    };
    memcpy(plan.fds, r.fds, sizeof plan.fds);

    // Block every signal around clone so that no handler of ours runs in the child before it
    // resets them.
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    uint64_t flags = ns ? (uint64_t)(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET |
                                     CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP)
                        : 0;
    r.pid = spawn(flags, &r.pidfd);
    if (r.pid == 0) sbx_child_main(&plan);
    int spawn_errno = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    for (int i = 0; i < SBX_NFD; i++) close_fd(&r.fds[i]);
    if (r.pid < 0) {
        r.pid = -1;
        setup_failed(res, "%s: %s", ns ? "clone with namespaces" : "clone", spawn_errno);
        goto done;
    }
    res->pid = r.pid;
    res->uid = run_uid(sb, r.pid);

    if (ns) {
        uint32_t outer = 0;
        char why[sizeof res->note];
        if (write_id_maps(sb, r.pid, &outer, why, sizeof why) != 0) {
            kill_tree(sb, &r);
            res->verdict = RL_SBX_SETUP_ERROR;
            memcpy(res->note, why, sizeof res->note);
            res->note[sizeof res->note - 1] = 0;
            goto reap;
        }
        if (send(r.sync_w, "g", 1, MSG_NOSIGNAL) != 1) { /* the child died: its record says why */
        }
        close_fd(&r.sync_w);
    }
    setup_ok = 1;

    // Drain stdout and stderr concurrently until the tree is gone, under the deadline.
    double deadline = t0 + sb->lim.timeout_s, drain_until = 0;
    size_t out_cap = (size_t)sb->lim.max_output_kb * 1024;
    int exited = 0, killed = 0;
    char chunk[65536];
    for (;;) {
        double t = now_s();
        if (!exited && !killed && t >= deadline) {
            kill_tree(sb, &r);
            timed_out = killed = 1;
        }
        if (exited && ((r.out_r < 0 && r.err_r < 0) || t >= drain_until)) break;
        struct pollfd pf[3];
        int n = 0, i_out = -1, i_err = -1, i_pid = -1;
        if (r.out_r >= 0) pf[i_out = n++] = (struct pollfd){r.out_r, POLLIN, 0};
        if (r.err_r >= 0) pf[i_err = n++] = (struct pollfd){r.err_r, POLLIN, 0};
        if (!exited) pf[i_pid = n++] = (struct pollfd){r.pidfd, POLLIN, 0};
        double until = exited ? drain_until : killed ? t + 1.0 : deadline;
        int wait_ms = (int)ceil((until - t) * 1000.0);
        if (wait_ms < 0) wait_ms = 0;
        if (poll(pf, (nfds_t)n, wait_ms) < 0 && errno != EINTR) break;
        int which[2] = {i_out, i_err};
        int *fdp[2] = {&r.out_r, &r.err_r};
        for (int k = 0; k < 2; k++) {
            if (which[k] < 0 || !(pf[which[k]].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            for (;;) {
                ssize_t got = read(*fdp[k], chunk, sizeof chunk);
                if (got < 0 && errno == EINTR) continue;
                if (got < 0) break; // EAGAIN: drained for now
                if (got == 0) {
                    close_fd(fdp[k]);
                    break;
                }
                if (k == 1) {
                    buf_append(&err, chunk, (size_t)got);
                    buf_keep_tail(&err, SBX_STDERR_KEEP);
                    continue;
                }
                size_t room = out.len < out_cap ? out_cap - out.len : 0;
                buf_append(&out, chunk, (size_t)got < room ? (size_t)got : room);
                if ((size_t)got > room && !output_limit) {
                    output_limit = 1;
                    if (!killed) kill_tree(sb, &r);
                    killed = 1;
                }
            }
        }
        if (i_pid >= 0 && (pf[i_pid].revents & POLLIN)) {
            exited = 1;
            // rlimits mode: background processes left in the group die now (the zombie still
            // holds the group id, so it cannot have been reused)
            if (sb->mode == RL_SANDBOX_RLIMITS) kill(-r.pid, SIGKILL);
            drain_until = now_s() + SBX_DRAIN_GRACE_S;
        }
    }
    buf_keep_tail(&err, SBX_STDERR_KEEP / 2);

reap:
    memset(&ru, 0, sizeof ru);
    if (r.pid > 0) {
        int wst = 0;
        while (wait4(r.pid, &wst, 0, &ru) < 0 && errno == EINTR) {
        }
        if (!ns) status = wst, have_status = 1;
        res->cpu_s = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
                     (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
        res->max_rss_kb = ru.ru_maxrss;
        if (!setup_ok) goto done;
    }
    // the child's records: a setup failure, notes, and (namespaces) the program's wait status
    sbx_record rec;
    int failed_stage = 0, failed_err = 0;
    while (read(r.report_r, &rec, sizeof rec) == (ssize_t)sizeof rec) {
        if (rec.kind == SBX_REC_FAIL && !failed_stage)
            failed_stage = rec.stage, failed_err = rec.err;
        if (rec.kind == SBX_REC_EXIT && ns) {
            status = rec.status, have_status = 1;
            // the init's wait4 saw the program's own usage (ours misses what the kernel reaped
            // while tearing the namespace down)
            res->cpu_s = (double)rec.ru.ru_utime.tv_sec + 1e-6 * (double)rec.ru.ru_utime.tv_usec +
                         (double)rec.ru.ru_stime.tv_sec + 1e-6 * (double)rec.ru.ru_stime.tv_usec;
            res->max_rss_kb = rec.ru.ru_maxrss;
        }
    }
    if (failed_stage) {
        res->verdict = RL_SBX_SETUP_ERROR;
        snprintf(res->note, sizeof res->note, "sandbox setup failed at %s: %s",
                 sbx_stage_name(failed_stage), strerror(failed_err));
        setup_ok = 0;
        goto done;
    }
    res->out = out.data, res->out_len = out.len;
    res->err = err.data, res->err_len = err.len;
    out.data = err.data = NULL;
    classify(sb, res, status, have_status, timed_out, output_limit);

done:
    close_fd(&r.out_r);
    close_fd(&r.err_r);
    close_fd(&r.sync_w);
    close_fd(&r.report_r);
    close_fd(&r.pidfd);
    for (int i = 0; i < SBX_NFD; i++) close_fd(&r.fds[i]);
    if (r.dir[0]) remove_tree(r.dir);
    if (!res->out) {
        res->out = out.data ? out.data : strdup("");
        res->out_len = out.data ? out.len : 0;
        out.data = NULL;
    }
    if (!res->err) {
        res->err = err.data ? err.data : strdup("");
        res->err_len = err.data ? err.len : 0;
        err.data = NULL;
    }
    if (!res->out || !res->err) abort();
    free(out.data);
    free(err.data);
    res->wall_s = now_s() - t0;
    return setup_ok ? 0 : -1;
}

void rl_sandbox_result_free(rl_sandbox_result *res) {
    free(res->out);
    free(res->err);
    res->out = res->err = NULL;
    res->out_len = res->err_len = 0;
}

int rl_sandbox_run_once(const rl_sandbox_limits *lim, const char *program, const char *stdin_data,
                        size_t stdin_len, rl_sandbox_result *res) {
    char why[256];
    rl_sandbox *sb = rl_sandbox_create(lim, why, sizeof why);
    if (!sb) {
        memset(res, 0, sizeof *res);
        res->verdict = RL_SBX_SETUP_ERROR;
        res->exit_code = -1;
        size_t n = strnlen(why, sizeof res->note - 1);
        memcpy(res->note, why, n);
        res->note[n] = 0;
        res->out = strdup("");
        res->err = strdup("");
        if (!res->out || !res->err) abort();
        return -1;
    }
    rl_sandbox_job job = {.program = program,
                          .program_len = program ? strlen(program) : 0,
                          .stdin_data = stdin_data,
                          .stdin_len = stdin_len};
    int rc = rl_sandbox_run(sb, &job, res);
    rl_sandbox_destroy(sb);
    return rc;
}
