// sandbox_policy: the sandbox's kernel-enforced rules, prepared in the parent. The seccomp filter
// is built with libseccomp once per sandbox and exported as a BPF program that the child loads
// with a raw seccomp() call; Landlock rulesets are built per run (they name the run directory).
#define _GNU_SOURCE
#include "verifiers/code/sandbox_internal.h"

#include <errno.h>
#include <linux/landlock.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

// System calls the program never needs and that reach beyond its own process: tracing, mounts,
// namespaces, kernel modules and keyrings, clocks, io_uring (its operations bypass per-syscall
// filtering), userfaultfd, handle-based opens. Names the kernel or libseccomp do not know are
// skipped.
static const char *const denied_syscalls[] = {
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "vhangup",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    "fanotify_init",
    "iopl",
    "ioperm",
    "personality",
    "sethostname",
    "setdomainname",
    "move_pages",
    "migrate_pages",
    "uselib",
};

// Signals that could reach processes outside the sandbox when neither a PID namespace nor
// Landlock's signal scope confines them.
static const char *const signal_syscalls[] = {
    "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_send_signal", "pidfd_open"};

static int deny(scmp_filter_ctx ctx, uint32_t action, const char *name) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return 0;
    return seccomp_rule_add(ctx, action, nr, 0);
}

int sbx_build_seccomp(int namespaces, int restrict_kill, struct sock_filter **prog,
                      unsigned short *len, char *err, size_t err_len) {
    *prog = NULL;
    *len = 0;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) {
        snprintf(err, err_len, "seccomp_init failed");
        return -1;
    }
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0); // the child sets no_new_privs
    // i386/x32 entry points would bypass an x86-64 filter: other ABIs kill the process
    rc |= seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    for (size_t i = 0; i < sizeof denied_syscalls / sizeof *denied_syscalls; i++)
        rc |= deny(ctx, SCMP_ACT_ERRNO(EPERM), denied_syscalls[i]);
    static const uint64_t ns_flags[] = {CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS,
                                        CLONE_NEWIPC, CLONE_NEWUSER,   CLONE_NEWPID,
                                        CLONE_NEWNET, CLONE_NEWTIME};
    for (size_t i = 0; i < sizeof ns_flags / sizeof *ns_flags; i++)
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
    // clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc fall back to clone
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    // no network: only local (AF_UNIX) sockets; socketpair stays allowed
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 1,
                           SCMP_A0(SCMP_CMP_NE, AF_UNIX));
    if (!namespaces) {
        // keep the whole tree in the session's process group, which the parent kills at the end
        rc |= deny(ctx, SCMP_ACT_ERRNO(EPERM), "setsid");
        rc |= deny(ctx, SCMP_ACT_ERRNO(EPERM), "setpgid");
    }
    if (restrict_kill) {
        // only kill(0, sig): the program's own process group
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(kill), 1,
                               SCMP_A0(SCMP_CMP_NE, 0));
        for (size_t i = 0; i < sizeof signal_syscalls / sizeof *signal_syscalls; i++)
            rc |= deny(ctx, SCMP_ACT_ERRNO(EPERM), signal_syscalls[i]);
    }
    if (rc != 0) {
        snprintf(err, err_len, "seccomp rule setup failed: %s", strerror(-rc));
        seccomp_release(ctx);
        return -1;
    }
    int fd = memfd_create("rlpipe-seccomp", MFD_CLOEXEC);
    if (fd < 0 || seccomp_export_bpf(ctx, fd) != 0) {
        snprintf(err, err_len, "seccomp export failed");
        if (fd >= 0) close(fd);
        seccomp_release(ctx);
        return -1;
    }
    seccomp_release(ctx);
    off_t size = lseek(fd, 0, SEEK_END);
    size_t n = size > 0 ? (size_t)size / sizeof(struct sock_filter) : 0;
    if (n == 0 || n > 0xffff) {
        snprintf(err, err_len, "seccomp export: bad program size %lld", (long long)size);
        close(fd);
        return -1;
    }
    struct sock_filter *p = malloc(n * sizeof *p);
    if (!p || pread(fd, p, n * sizeof *p, 0) != (ssize_t)(n * sizeof *p)) {
        snprintf(err, err_len, "seccomp export: read failed");
        free(p);
        close(fd);
        return -1;
    }
    close(fd);
    *prog = p;
    *len = (unsigned short)n;
    return 0;
}

// ---- Landlock ---------------------------------------------------------------------------------
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule       445
#endif
#define LL_FS_V1        ((1ULL << 13) - 1) // execute .. make_sym
#define LL_FS_REFER     (1ULL << 13)       // ABI 2
#define LL_FS_TRUNCATE  (1ULL << 14)       // ABI 3
#define LL_FS_IOCTL_DEV (1ULL << 15)       // ABI 5
#define LL_NET_TCP      3ULL               // bind + connect, ABI 4
#define LL_SCOPE_ALL    3ULL               // abstract unix sockets + signals, ABI 6
#define LL_EXECUTE      (1ULL << 0)
#define LL_WRITE_FILE   (1ULL << 1)
#define LL_READ_FILE    (1ULL << 2)
#define LL_READ_DIR     (1ULL << 3)

int sbx_landlock_abi(void) {
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1UL /* VERSION */);
    return abi > 0 ? (int)abi : 0;
}

static int add_path_rule(int ruleset, int fd, uint64_t access) {
    struct landlock_path_beneath_attr rule = {.allowed_access = access, .parent_fd = fd};
    return (int)syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
}

int sbx_landlock_ruleset(int abi, const int *ro_fds, const int *ro_is_dir, int n_ro,
                         const int *dev_fds, int n_dev, int run_fd) {
    if (abi <= 0) return -1;
    uint64_t fs = LL_FS_V1 | (abi >= 2 ? LL_FS_REFER : 0) | (abi >= 3 ? LL_FS_TRUNCATE : 0) |
                  (abi >= 5 ? LL_FS_IOCTL_DEV : 0);
    struct {
        uint64_t handled_fs, handled_net, scoped;
    } attr = {fs, abi >= 4 ? LL_NET_TCP : 0, abi >= 6 ? LL_SCOPE_ALL : 0};
    size_t size = abi >= 6 ? 24 : abi >= 4 ? 16 : 8;
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (rs < 0) return -1;
    uint64_t read_dir = LL_EXECUTE | LL_READ_FILE | LL_READ_DIR;
    uint64_t read_file = LL_EXECUTE | LL_READ_FILE;
    uint64_t dev = LL_READ_FILE | LL_WRITE_FILE | (abi >= 3 ? LL_FS_TRUNCATE : 0) |
                   (abi >= 5 ? LL_FS_IOCTL_DEV : 0);
    int rc = 0;
    for (int i = 0; i < n_ro; i++)
        rc |= add_path_rule(rs, ro_fds[i], ro_is_dir[i] ? read_dir : read_file);
    for (int i = 0; i < n_dev; i++) rc |= add_path_rule(rs, dev_fds[i], dev);
    rc |= add_path_rule(rs, run_fd, fs);
    if (rc != 0) {
        int e = errno;
        close(rs);
        errno = e;
        return -1;
    }
    return rs;
}
