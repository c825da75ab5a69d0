// sandbox_child: the sandbox child's life from clone to execve. It runs in a copy of a possibly
// multi-threaded process, so it only reads the prepared plan and issues system calls: no malloc,
// no stdio, no locks, and raw syscalls for credentials (glibc's setresuid would try to signal
// the parent's threads). Every failure is reported as a record on the report channel.
#define _GNU_SOURCE
#include "verifiers/code/sandbox.h"
#include "verifiers/code/sandbox_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_landlock_restrict_self
#define SYS_landlock_restrict_self 446
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV  0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif

static const char *const stage_names[SBX_ST_COUNT] = {
    [SBX_ST_FDS] = "arrange descriptors",
    [SBX_ST_SYNC] = "wait for uid maps",
    [SBX_ST_SETSID] = "setsid",
    [SBX_ST_PARENT_GONE] = "parent gone",
    [SBX_ST_CREDS] = "set credentials",
    [SBX_ST_MOUNT_PRIVATE] = "make mounts private",
    [SBX_ST_MOUNT_TMPFS] = "mount tmpfs",
    [SBX_ST_CHDIR] = "chdir",
    [SBX_ST_MKDIR] = "mkdir in private root",
    [SBX_ST_BIND] = "bind mount",
    [SBX_ST_READONLY] = "make bind read-only",
    [SBX_ST_SYMLINK] = "symlink in private root",
    [SBX_ST_MOUNT_PROC] = "mount /proc",
    [SBX_ST_PIVOT_ROOT] = "pivot_root",
    [SBX_ST_WRITE_PROGRAM] = "write solution.py",
    [SBX_ST_FORK_INIT] = "fork from namespace init",
    [SBX_ST_RLIMIT] = "setrlimit",
    [SBX_ST_CAPS] = "drop capabilities",
    [SBX_ST_NO_NEW_PRIVS] = "no_new_privs",
    [SBX_ST_LANDLOCK] = "landlock",
    [SBX_ST_SECCOMP] = "seccomp",
    [SBX_ST_EXEC] = "execve python",
};

const char *sbx_stage_name(int stage) {
    if (stage <= 0 || stage >= SBX_ST_COUNT || !stage_names[stage]) return "setup";
    return stage_names[stage];
}

static void send_record(int fd, int kind, int stage, int err, int status, const struct rusage *ru) {
    sbx_record r;
    memset(&r, 0, sizeof r);
    r.kind = kind;
    r.stage = stage;
    r.err = err;
    r.status = status;
    if (ru) r.ru = *ru;
    ssize_t n;
    do n = write(fd, &r, sizeof r);
    while (n < 0 && errno == EINTR);
}

static _Noreturn void fail_on(int fd, int stage) {
    send_record(fd, SBX_REC_FAIL, stage, errno, 0, NULL);
    _exit(127);
}

static _Noreturn void fail(int stage) {
    fail_on(SBX_FD_REPORT, stage);
}

// Default dispositions and an empty mask: the parent blocked every signal around clone, and
// ignored signals (SIGPIPE, ...) would otherwise survive execve.
static void reset_signals(void) {
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        uint64_t mask;
    } dfl = {0, 0, 0, 0}; // SIG_DFL
    for (int sig = 1; sig <= 64; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(uint64_t));
    }
    uint64_t none = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none);
}

// Installs the plan's descriptors at their child numbers and closes everything else. Duplicating
// all of them above the target range first makes overlapping numbers harmless.
static int arrange_fds(const sbx_plan *p) {
    int tmp[SBX_NFD];
    for (int i = 0; i < SBX_NFD; i++) {
        tmp[i] = -1;
        if (p->fds[i] >= 0 && (tmp[i] = fcntl(p->fds[i], F_DUPFD_CLOEXEC, 16)) < 0) return -1;
    }
    for (int i = 0; i < SBX_NFD; i++) {
        if (tmp[i] < 0) {
            close(i);
            continue;
        }
        int flags = i >= SBX_FD_SYNC ? O_CLOEXEC : 0; // only 0..3 reach the program
        if (dup3(tmp[i], i, flags) < 0) return -1;
    }
    if (syscall(SYS_close_range, SBX_NFD, ~0U, 0) == 0) return 0;
    struct rlimit rl;
    long max =
        getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1048576 ? (long)rl.rlim_cur : 65536;
    for (long fd = SBX_NFD; fd < max; fd++) close((int)fd);
    return 0;
}

// Read-only (or other) flags on a bind mount. mount_setattr (5.12+) only adds flags; the remount
// fallback must repeat the flags the kernel locked on the mount when it came from our parent.
static int set_mount_attrs(const char *rel, uint64_t set, int recursive) {
    struct {
        uint64_t attr_set, attr_clr, propagation, userns_fd;
    } attr = {set, 0, 0, 0};
    unsigned flags = AT_SYMLINK_NOFOLLOW | (recursive ? AT_RECURSIVE : 0);
    if (syscall(SYS_mount_setattr, AT_FDCWD, rel, flags, &attr, sizeof attr) == 0) return 0;
    if (errno != ENOSYS) return -1;
    struct statfs sf;
    if (statfs(rel, &sf) != 0) return -1;
    unsigned long ms = MS_REMOUNT | MS_BIND;
    if (set & MOUNT_ATTR_RDONLY) ms |= MS_RDONLY;
    if ((set & MOUNT_ATTR_NOSUID) || (sf.f_flags & ST_NOSUID)) ms |= MS_NOSUID;
    if ((set & MOUNT_ATTR_NODEV) || (sf.f_flags & ST_NODEV)) ms |= MS_NODEV;
    if ((set & MOUNT_ATTR_NOEXEC) || (sf.f_flags & ST_NOEXEC)) ms |= MS_NOEXEC;
    if (sf.f_flags & ST_NOATIME) ms |= MS_NOATIME;
    if (sf.f_flags & ST_NODIRATIME) ms |= MS_NODIRATIME;
    if (sf.f_flags & ST_RELATIME) ms |= MS_RELATIME;
    return mount(NULL, rel, NULL, ms, NULL);
}

static int make_mount_point_file(const char *rel) {
    int fd = open(rel, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

// "/proc/self/fd/<fd>": binds from descriptors opened while we could still reach every source.
static void fd_path(char *dst, int fd) {
    static const char prefix[] = "/proc/self/fd/";
    char digits[12];
    int n = 0;
    do digits[n++] = (char)('0' + fd % 10);
    while ((fd /= 10) > 0 && n < 11);
    memcpy(dst, prefix, sizeof prefix - 1);
    for (int i = 0; i < n; i++) dst[sizeof prefix - 1 + i] = digits[n - 1 - i];
    dst[sizeof prefix - 1 + n] = 0;
}

static int is_bind(const sbx_op *op) {
    return op->kind == SBX_OP_BIND_DIR || op->kind == SBX_OP_BIND_FILE ||
           op->kind == SBX_OP_BIND_DEV;
}

static void run_op(const sbx_op *op, int src_fd) {
    char src[32];
    if (is_bind(op)) fd_path(src, src_fd);
    switch (op->kind) {
    case SBX_OP_MKDIR:
        if (mkdir(op->rel, op->mode) != 0 && errno != EEXIST) fail(SBX_ST_MKDIR);
        break;
    case SBX_OP_BIND_DIR:
        if (mkdir(op->rel, 0755) != 0 && errno != EEXIST) fail(SBX_ST_MKDIR);
        if (mount(src, op->rel, NULL, MS_BIND | MS_REC, NULL) != 0) fail(SBX_ST_BIND);
        if (set_mount_attrs(op->rel, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 1))
            fail(SBX_ST_READONLY);
        break;
    case SBX_OP_BIND_FILE:
    case SBX_OP_BIND_DEV: {
        int dev = op->kind == SBX_OP_BIND_DEV;
        if (make_mount_point_file(op->rel) != 0) fail(SBX_ST_MKDIR);
        if (mount(src, op->rel, NULL, MS_BIND, NULL) != 0) fail(SBX_ST_BIND);
        uint64_t set = dev ? MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC
                           : MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        if (set_mount_attrs(op->rel, set, 0) != 0) fail(SBX_ST_READONLY);
        break;
    }
    case SBX_OP_SYMLINK:
        if (symlink(op->link, op->rel) != 0 && errno != EEXIST) fail(SBX_ST_SYMLINK);
        break;
    }
}

// Namespaces mode, as PID 1 of the new namespaces: wait until the parent wrote our uid/gid maps;
// while still holding the parent's uid (which can traverse its private directories), mount the
// private root's tmpfs on the run directory and open every bind source; then become the
// namespace's root (the run's own uid outside), build the private root and enter it.
static void enter_namespaces(const sbx_plan *p) {
    // a session of its own: no controlling terminal, no signals aimed at the runner's group
    if (setsid() < 0) fail(SBX_ST_SETSID);
    char go;
    ssize_t n;
    do n = read(SBX_FD_SYNC, &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        errno = n == 0 ? ECONNRESET : errno;
        fail(SBX_ST_SYNC);
    }
    close(SBX_FD_SYNC);

    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail(SBX_ST_MOUNT_PRIVATE);
    if (mount("tmpfs", p->run_dir, "tmpfs", MS_NOSUID | MS_NODEV, p->tmpfs_opts) != 0)
        fail(SBX_ST_MOUNT_TMPFS);
    if (chdir(p->run_dir) != 0) fail(SBX_ST_CHDIR);
    int src_fd[SBX_MAX_OPS];
    for (int i = 0; i < p->n_ops && i < SBX_MAX_OPS; i++) {
        src_fd[i] = -1;
        if (is_bind(&p->ops[i]) &&
            (src_fd[i] = open(p->ops[i].src, O_PATH | O_CLOEXEC | O_NOFOLLOW)) < 0)
            fail(SBX_ST_BIND);
    }

    if (syscall(SYS_setresgid, 0, 0, 0) != 0) fail(SBX_ST_CREDS);
    if (p->can_setgroups && syscall(SYS_setgroups, 0, NULL) != 0) fail(SBX_ST_CREDS);
    if (syscall(SYS_setresuid, 0, 0, 0) != 0) fail(SBX_ST_CREDS);

    for (int i = 0; i < p->n_ops && i < SBX_MAX_OPS; i++) {
        run_op(&p->ops[i], src_fd[i]);
        if (src_fd[i] >= 0) close(src_fd[i]);
    }
    // A /proc of our own PID namespace; without it the program just has no /proc. hidepid hides
    // the (non-dumpable) init, whose command line is a copy of the runner's.
    if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") != 0 &&
        mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        send_record(SBX_FD_REPORT, SBX_REC_NOTE, SBX_ST_MOUNT_PROC, errno, 0, NULL);
    if (syscall(SYS_pivot_root, ".", ".") != 0) fail(SBX_ST_PIVOT_ROOT);
    if (umount2(".", MNT_DETACH) != 0) fail(SBX_ST_PIVOT_ROOT);
    if (chdir("/") != 0 || chdir(p->box_dir) != 0) fail(SBX_ST_CHDIR);
    sethostname("sandbox", 7);
}

// Rlimits mode: a session of our own (the parent kills it as a process group), and as root a uid
// of the run's own, which owns the run directory.
static void enter_session(const sbx_plan *p) {
    if (setsid() < 0) fail(SBX_ST_SETSID);
    if (getppid() != p->parent_pid) {
        errno = ESRCH;
        fail(SBX_ST_PARENT_GONE);
    }
    if (chdir(p->run_dir) != 0) fail(SBX_ST_CHDIR);
    if (p->is_root) {
        uint32_t id = p->fixed_uid ? p->fixed_uid : RL_SANDBOX_UID_BASE + (uint32_t)getpid();
        if (chown(".", id, id) != 0) fail(SBX_ST_CREDS);
        if (syscall(SYS_setgroups, 0, NULL) != 0) fail(SBX_ST_CREDS);
        if (syscall(SYS_setresgid, id, id, id) != 0) fail(SBX_ST_CREDS);
        if (syscall(SYS_setresuid, id, id, id) != 0) fail(SBX_ST_CREDS);
    }
}

static int write_program(const sbx_plan *p) {
    int fd = open("solution.py", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    const char *s = p->program;
    size_t left = p->program_len;
    while (left > 0) {
        ssize_t n = write(fd, s, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        s += n;
        left -= (size_t)n;
    }
    return close(fd);
}

// Empties every capability set for good. In namespaces mode the program runs as the namespace's
// root, so the securebits keep execve from granting capabilities back.
static int drop_capabilities(int must_lock) {
    int bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
               SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED;
#ifdef SECBIT_NO_CAP_AMBIENT_RAISE
    bits |= SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
#endif
    if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0 && must_lock) return -1;
    for (int cap = 0; cap < 64; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL) break;
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    return (int)syscall(SYS_capset, &hdr, data);
}

static _Noreturn void exec_program(const sbx_plan *p) {
    for (int i = 0; i < p->n_limits; i++) {
        struct rlimit want = p->limits[i].value, have;
        // never ask for more than our own hard limit (that would fail as unprivileged)
        if (getrlimit(p->limits[i].resource, &have) == 0 && have.rlim_max != RLIM_INFINITY) {
            if (want.rlim_max > have.rlim_max) want.rlim_max = have.rlim_max;
            if (want.rlim_cur > want.rlim_max) want.rlim_cur = want.rlim_max;
        }
        if (setrlimit(p->limits[i].resource, &want) != 0) fail(SBX_ST_RLIMIT);
    }
    umask(077);
    if (drop_capabilities(p->namespaces) != 0) fail(SBX_ST_CAPS);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(SBX_ST_NO_NEW_PRIVS);
    if (p->fds[SBX_FD_LANDLOCK] >= 0 &&
        syscall(SYS_landlock_restrict_self, SBX_FD_LANDLOCK, 0) != 0)
        fail(SBX_ST_LANDLOCK);
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, p->seccomp) != 0) fail(SBX_ST_SECCOMP);
    execve(p->exe, p->argv, p->envp);
    fail(SBX_ST_EXEC);
}

// The namespace's init: relays the program's wait status and usage, reaps orphans, and exits as
// soon as the program has, which makes the kernel kill everything left in the namespace.
static _Noreturn void namespace_init(pid_t program) {
    for (int fd = 0; fd < SBX_NFD; fd++)
        if (fd != SBX_FD_REPORT) close(fd);
    for (;;) {
        int status = 0;
        struct rusage ru;
        pid_t w = wait4(-1, &status, 0, &ru);
        if (w == program) {
            send_record(SBX_FD_REPORT, SBX_REC_EXIT, 0, 0, status, &ru);
            _exit(0);
        }
        if (w < 0 && errno != EINTR) _exit(0);
    }
}

_Noreturn void sbx_child_main(const sbx_plan *p) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    reset_signals();
    umask(0);
    if (arrange_fds(p) != 0) fail_on(p->fds[SBX_FD_REPORT], SBX_ST_FDS);
    if (p->namespaces)
        enter_namespaces(p);
    else
        enter_session(p);
    if (write_program(p) != 0) fail(SBX_ST_WRITE_PROGRAM);
    if (p->namespaces) {
        // the init stays non-dumpable: the program (same uid, no capabilities) can then neither
        // trace it nor read its memory or environment, and hidepid hides it; execve makes the
        // program dumpable again
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        // fork-like raw clone: glibc's fork would take locks another parent thread may hold
        pid_t child = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, 0, 0, 0, 0);
        if (child < 0) fail(SBX_ST_FORK_INIT);
        if (child > 0) namespace_init(child);
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    }
    exec_program(p);
}
