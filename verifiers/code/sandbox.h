/*
 * sandbox: runs one untrusted Python program in a fresh, locked-down process tree and reports its
 * stdout, stderr and fate (exit, crash, timeout, memory, output or file limit).
 *
 * Two isolation modes (chosen once, at rl_sandbox_create):
 *   namespaces  The child is PID 1 of new user, PID, network, mount, IPC, UTS and cgroup namespaces.
 *               It sees a private root: a size-limited tmpfs holding /box (its working directory),
 *               /tmp, a minimal /dev, its own /proc, and read-only binds of /usr, /lib*, /bin,
 *               /sbin and a few /etc files. No network interfaces. PID 1 is a tiny init (our code)
 *               that relays the program's exit status; killing it kills every process in the
 *               namespace, so nothing survives a run. Outside, the run has a uid of its own
 *               (RL_SANDBOX_UID_BASE + pid) when rlpipe runs as root, our own uid otherwise.
 *   rlimits     Fallback when user namespaces are unavailable: a new session (setsid), setsid and
 *               setpgid then denied by seccomp so the whole tree stays in one process group (killed
 *               as a group), a uid of its own when root, and Landlock (when the kernel has it)
 *               limiting file access to the exposed system paths (read) and the run directory
 *               (read-write) and scoping signals to the sandbox. Weaker: the host's process list and
 *               abstract sockets are visible, and there is no disk quota beyond RLIMIT_FSIZE.
 * Both modes: rlimits (CPU, address space, file size, open files, processes, stack, core 0,
 * memlock 0), no_new_privs, a seccomp filter (no sockets except AF_UNIX, no ptrace, mount,
 * namespaces, bpf, io_uring, keyrings, ...), all capabilities dropped, an empty environment, all
 * inherited descriptors closed, umask 077, SIGKILL on the death of the calling thread, a per-run
 * directory created with mkdtemp and removed afterwards, a wall-clock deadline, and stdout capped
 * and drained concurrently with stderr.
 *
 * Thread safety: a created rl_sandbox is read-only; rl_sandbox_run may be called from several
 * threads at once (each run has its own directory, descriptors and processes). Between clone and
 * execve the child uses only raw system calls (no malloc, no locks), so it is safe to use from a
 * multi-threaded process. The process must not reap unknown children (waitpid(-1, ...)).
 *
 * Owns: the resolved python path, the prepared seccomp program and mount plan (rl_sandbox);
 * the captured output (rl_sandbox_result, freed by rl_sandbox_result_free).
 */
#ifndef RL_SANDBOX_H
#define RL_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#define RL_SANDBOX_UID_BASE 0x40000000u // outside uid of a run (as root) = this + its pid

typedef enum rl_sandbox_isolation {
    RL_SANDBOX_AUTO = 0,       // namespaces when they work, else rlimits
    RL_SANDBOX_NAMESPACES = 1, // required: create fails when unavailable
    RL_SANDBOX_RLIMITS = 2,    // the weaker fallback, on purpose
} rl_sandbox_isolation;

typedef struct rl_sandbox_limits {
    double timeout_s;      // wall clock per run; RLIMIT_CPU = ceil(timeout_s), hard +1
    int64_t memory_mb;     // RLIMIT_AS (numpy needs ~400)
    int64_t stack_mb;      // RLIMIT_STACK (also the default thread stack size)
    int64_t max_output_kb; // stdout cap; more is "output limit" and the run is killed
    int64_t file_size_mb;  // RLIMIT_FSIZE
    int64_t disk_mb;       // size of the private tmpfs (namespaces mode)
    int32_t nproc;         // processes + threads the program may have at once
    int32_t nofile;        // RLIMIT_NOFILE
    int32_t isolation;     // rl_sandbox_isolation
    const char *python;    // absolute path, or a name searched in /usr/local/bin:/usr/bin:/bin
    const char *base_dir;  // where run directories are made; NULL: $TMPDIR or /tmp
    const char *ro_paths;  // extra read-only paths to expose, ':'-separated, or NULL
} rl_sandbox_limits;

// Defaults: 4 s, 512 MiB, 32 MiB stack, 1024 KiB output, 16 MiB files, 64 MiB disk, 64 procs,
// 64 files, auto isolation, "python3".
void rl_sandbox_default_limits(rl_sandbox_limits *lim);

// One program run.
typedef struct rl_sandbox_job {
    const char *program; // Python source, written to solution.py in the working directory
    size_t program_len;
    const char *stdin_data; // given as stdin (a sealed in-memory file: reads never block)
    size_t stdin_len;
    const char *runner;   // NULL: `python3 solution.py`; else `python3 -c runner` (a harness)
    const char *fd3_data; // when non-NULL: readable on descriptor 3 (sealed in-memory file)
    size_t fd3_len;
} rl_sandbox_job;

typedef enum rl_sandbox_verdict {
    RL_SBX_OK = 0,            // exited with status 0
    RL_SBX_RUNTIME_ERROR = 1, // non-zero exit or a crash
    RL_SBX_TIMEOUT = 2,       // wall-clock deadline or CPU limit
    RL_SBX_MEMORY = 3,        // MemoryError (address-space limit)
    RL_SBX_OUTPUT_LIMIT = 4,  // stdout exceeded max_output_kb
    RL_SBX_FILE_LIMIT = 5,    // file size limit or private disk full
    RL_SBX_SECCOMP = 6,       // killed by the system-call filter (SIGSYS)
    RL_SBX_SETUP_ERROR = 7,   // the sandbox could not start the program (see note)
} rl_sandbox_verdict;

typedef struct rl_sandbox_result {
    int32_t verdict;   // rl_sandbox_verdict
    int32_t exit_code; // when the program exited, else -1
    int32_t signal;    // when it was killed by a signal, else 0
    int32_t mode;      // RL_SANDBOX_NAMESPACES or RL_SANDBOX_RLIMITS
    double wall_s;     // from clone to the end of the process tree
    double cpu_s;      // user + system time of the whole tree
    int64_t max_rss_kb;
    char *out; // [out_len + 1] stdout (at most the cap), NUL-terminated
    size_t out_len;
    char *err; // [err_len + 1] the last 64 KiB of stderr, NUL-terminated
    size_t err_len;
    int32_t pid;    // the top process's pid (outside view), for leak checks
    uint32_t uid;   // the outside uid the program ran as
    char dir[256];  // the run directory (removed when the run returns)
    char note[160]; // what went wrong, one line ("" when nothing)
} rl_sandbox_result;

typedef struct rl_sandbox rl_sandbox;

// 0 when the limits are in range, else -1 with a one-line reason (which limit, which value).
int rl_sandbox_check_limits(const rl_sandbox_limits *lim, char *err, size_t err_len);

// Resolves python, prepares the filters and the mount plan, and (in auto mode) probes whether the
// namespaces work by running a tiny program. NULL with a one-line reason in err on failure.
rl_sandbox *rl_sandbox_create(const rl_sandbox_limits *lim, char *err, size_t err_len);
void rl_sandbox_destroy(rl_sandbox *sb);

// The mode in effect and, for the fallback, why namespaces were not used ("" otherwise).
int rl_sandbox_mode(const rl_sandbox *sb);
const char *rl_sandbox_mode_note(const rl_sandbox *sb);
const char *rl_sandbox_mode_name(int mode); // "namespaces" / "rlimits"
const char *rl_sandbox_verdict_name(int verdict);

// Runs one job. Returns 0 when the program ran (its fate is in res->verdict) and -1 when the
// sandbox could not start it (res->verdict is RL_SBX_SETUP_ERROR, res->note says why). res is
// always filled and must be released with rl_sandbox_result_free.
int rl_sandbox_run(const rl_sandbox *sb, const rl_sandbox_job *job, rl_sandbox_result *res);
void rl_sandbox_result_free(rl_sandbox_result *res);

// One-shot convenience: create, run `program` on stdin, destroy.
int rl_sandbox_run_once(const rl_sandbox_limits *lim, const char *program, const char *stdin_data,
                        size_t stdin_len, rl_sandbox_result *res);

#endif
