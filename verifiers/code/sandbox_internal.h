/*
 * sandbox_internal: what the sandbox's parent side (sandbox.c, sandbox_policy.c) hands to its
 * child side (sandbox_child.c). The parent prepares a complete sbx_plan before clone; the child
 * only reads it and issues system calls, so nothing between clone and execve allocates or locks.
 *
 * Owns: nothing (a plan borrows everything it points to from the rl_sandbox and the run).
 */
#ifndef RL_SANDBOX_INTERNAL_H
#define RL_SANDBOX_INTERNAL_H

#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

// Descriptor numbers in the child after it has arranged them.
enum {
    SBX_FD_STDIN = 0,
    SBX_FD_STDOUT = 1,
    SBX_FD_STDERR = 2,
    SBX_FD_EXTRA = 3,    // the job's fd3_data, when given
    SBX_FD_SYNC = 4,     // parent -> child "uid maps written, go" (namespaces mode)
    SBX_FD_REPORT = 5,   // child -> parent records (close-on-exec)
    SBX_FD_LANDLOCK = 6, // the Landlock ruleset (rlimits mode, close-on-exec)
    SBX_NFD = 7,
};

#define SBX_MAX_OPS 64 // private-root steps at most (the child keeps one descriptor per step)

// One step of building the private root (namespaces mode), paths relative to the new root.
typedef enum sbx_op_kind {
    SBX_OP_MKDIR = 0, // mkdir rel (mode)
    SBX_OP_BIND_DIR,  // read-only recursive bind of src at rel (mkdir first)
    SBX_OP_BIND_FILE, // read-only bind of the file src at rel (create first)
    SBX_OP_BIND_DEV,  // writable, noexec bind of the device node src at rel
    SBX_OP_SYMLINK,   // symlink rel -> link
} sbx_op_kind;

typedef struct sbx_op {
    int kind;         // sbx_op_kind
    unsigned mode;    // SBX_OP_MKDIR
    const char *src;  // host path (binds)
    const char *rel;  // path in the new root, no leading '/'
    const char *link; // SBX_OP_SYMLINK target
} sbx_op;

// Child records on the report channel. FAIL ends the child; NOTE is informational; EXIT is sent
// by the namespace init with the program's wait status and resource usage.
enum { SBX_REC_FAIL = 1, SBX_REC_NOTE = 2, SBX_REC_EXIT = 3 };

typedef struct sbx_record {
    int32_t kind;
    int32_t stage; // sbx_stage
    int32_t err;   // errno
    int32_t status;
    struct rusage ru;
} sbx_record;

// Setup stages, named in error messages (sbx_stage_name).
typedef enum sbx_stage {
    SBX_ST_FDS = 1,
    SBX_ST_SYNC,
    SBX_ST_SETSID,
    SBX_ST_PARENT_GONE,
    SBX_ST_CREDS,
    SBX_ST_MOUNT_PRIVATE,
    SBX_ST_MOUNT_TMPFS,
    SBX_ST_CHDIR,
    SBX_ST_MKDIR,
    SBX_ST_BIND,
    SBX_ST_READONLY,
    SBX_ST_SYMLINK,
    SBX_ST_MOUNT_PROC,
    SBX_ST_PIVOT_ROOT,
    SBX_ST_WRITE_PROGRAM,
    SBX_ST_FORK_INIT,
    SBX_ST_RLIMIT,
    SBX_ST_CAPS,
    SBX_ST_NO_NEW_PRIVS,
    SBX_ST_LANDLOCK,
    SBX_ST_SECCOMP,
    SBX_ST_EXEC,
    SBX_ST_COUNT,
} sbx_stage;

const char *sbx_stage_name(int stage);

typedef struct sbx_limit {
    int resource;
    struct rlimit value;
} sbx_limit;

// Everything the child needs, prepared by the parent.
typedef struct sbx_plan {
    int namespaces;      // 1: namespaces mode, 0: rlimits mode
    int is_root;         // rlpipe runs as root: drop to an unprivileged uid
    uint32_t fixed_uid;  // as root: 0 = a uid of the run's own (RL_SANDBOX_UID_BASE + pid),
                         // else this uid for every run (containers that map few uids)
    int can_setgroups;   // namespaces mode: setgroups allowed in the new user namespace
    pid_t parent_pid;    // rlimits mode: checked after PR_SET_PDEATHSIG
    int fds[SBX_NFD];    // parent descriptors to install at each child number (-1: none)
    const char *run_dir; // host path of the run directory (mount point or working dir)
    const char *box_dir; // the program's working directory inside ("box" or ".")
    const char *tmpfs_opts;
    const sbx_op *ops; // [n_ops] the private root's layout
    int n_ops;
    const char *program; // [program_len] written to solution.py
    size_t program_len;
    const char *exe; // python executable
    char *const *argv;
    char *const *envp;
    const sbx_limit *limits; // [n_limits] applied just before exec
    int n_limits;
    const struct sock_fprog *seccomp;
} sbx_plan;

// The child's whole life after clone: never returns.
_Noreturn void sbx_child_main(const sbx_plan *p);

// Policy (sandbox_policy.c): the seccomp program for a mode, and Landlock support.
int sbx_build_seccomp(int namespaces, int restrict_kill, struct sock_filter **prog,
                      unsigned short *len, char *err, size_t err_len);
int sbx_landlock_abi(void); // 0 when unavailable
// A ruleset allowing read/execute beneath ro_fds[i] (dirs) / of files, read-write of dev_fds,
// everything beneath run_fd; -1 on failure.
int sbx_landlock_ruleset(int abi, const int *ro_fds, const int *ro_is_dir, int n_ro,
                         const int *dev_fds, int n_dev, int run_fd);

#endif
