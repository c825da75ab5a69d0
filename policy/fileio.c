// fileio: file and JSON helpers shared by policy, rollout and the CLI. See fileio.h.
#define _XOPEN_SOURCE 700 // nftw
#include "policy/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// ---- paths ------------------------------------------------------------------------------------

char *rl_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = rl_malloc(a + b + 2);
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

int rl_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int rl_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

// ---- reading ----------------------------------------------------------------------------------

static const char *file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a plain file";
}

int rl_open_regular(const char *path, size_t *size, rl_err *err) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, for ever.
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return rl_fail(err, RL_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return rl_fail(err, RL_EINPUT, "%s: cannot open: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rl_fail(err, RL_EINPUT, "%s: not a regular file (%s)", path, file_kind(st.st_mode));
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    if (size) *size = (size_t)st.st_size;
    return fd;
}

FILE *rl_fopen_regular(const char *path, rl_err *err) {
    int fd = rl_open_regular(path, NULL, err);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        rl_fail(err, RL_EINPUT, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

int rl_read_file(const char *path, size_t max_bytes, char **data, size_t *len, rl_err *err) {
    int fd = rl_open_regular(path, NULL, err);
    if (fd < 0) return -1;
    size_t cap = 1 << 16, n = 0;
    char *buf = rl_malloc(cap + 1);
    int too_large = 0, read_errno = 0;
    for (;;) {
        if (n == cap) buf = rl_realloc(buf, (cap *= 2) + 1);
        // With a cap, never ask for more than one byte past it: that byte is enough to refuse.
        size_t want = cap - n;
        if (max_bytes && max_bytes - n < want) want = max_bytes - n + 1;
        ssize_t got = read(fd, buf + n, want);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            read_errno = errno ? errno : EIO;
            break;
        }
        if (got == 0) break; // end of file
        n += (size_t)got;
        if (max_bytes && n > max_bytes) {
            too_large = 1;
            break;
        }
    }
    close(fd);
    if (too_large || read_errno) {
        free(buf);
        if (too_large) return rl_fail(err, RL_EINPUT, "%s: larger than %zu bytes", path, max_bytes);
        return rl_fail(err, RL_EINPUT, "%s: read error: %s", path, strerror(read_errno));
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

// ---- writing ----------------------------------------------------------------------------------

int rl_write_all(int fd, const void *data, size_t n) {
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? errno : EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int rl_atomic_open(const char *path, char **tmp, rl_err *err) {
    size_t cap = strlen(path) + 32;
    *tmp = rl_malloc(cap);
    snprintf(*tmp, cap, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(*tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        rl_fail(err, RL_EINPUT, "%s: cannot create: %s", *tmp, strerror(errno));
        free(*tmp);
        *tmp = NULL;
    }
    return fd;
}

int rl_atomic_commit(int fd, char *tmp, const char *path, int failed_errno, rl_err *err) {
    int e = failed_errno;
    if (!e && fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e) e = errno;
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e) unlink(tmp);
    free(tmp);
    if (e) return rl_fail(err, RL_EINTERNAL, "%s: write failed: %s", path, strerror(e));
    return 0;
}

int rl_write_file_atomic(const char *path, const void *data, size_t n, rl_err *err) {
    char *tmp;
    int fd = rl_atomic_open(path, &tmp, err);
    if (fd < 0) return -1;
    return rl_atomic_commit(fd, tmp, path, rl_write_all(fd, data, n), err);
}

// ---- directories ------------------------------------------------------------------------------

int rl_make_dir(const char *dir, rl_err *err) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return rl_fail(err, RL_EINPUT, "%s: cannot create directory: %s", dir, strerror(errno));
    return 0;
}

int rl_make_dirs(const char *dir, rl_err *err) {
    if (!dir[0]) return rl_fail(err, RL_EINPUT, "cannot create a directory with an empty name");
    char *p = rl_strdup(dir);
    int rc = 0;
    for (char *q = p + 1; rc == 0; q++) {
        if (*q != '/' && *q != '\0') continue;
        char c = *q;
        *q = '\0';
        rc = rl_make_dir(p, err);
        *q = c;
        if (c == '\0') break;
    }
    free(p);
    return rc;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    remove(path);
    return 0; // keep going: remove what can be removed
}

void rl_remove_tree(const char *path) {
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

// ---- JSON -------------------------------------------------------------------------------------

const char *rl_json_type_name(const json_t *v) {
    if (!v) return "missing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}
