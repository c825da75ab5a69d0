// Tests for policy/fileio: whole-file reads (random bytes round-trip, the size cap at exactly N
// and N + 1, messages for a missing file and a directory), atomic writes (content, replacement,
// no temporary left behind, a failed stream leaves the old file), path joining, mkdir -p, tree
// removal that does not follow symbolic links, JSON type names, and refusing FIFOs and devices
// without blocking.
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/rng.h"
#include "policy/fileio.h"
#include "test_util.h"

static char g_tmp[64];

static char *in_tmp(const char *name) {
    return rl_path_join(g_tmp, name);
}

static void write_raw(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

// Names in g_tmp that contain ".tmp." (leftover temporaries).
static int count_temporaries(void) {
    DIR *d = opendir(g_tmp);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

static void test_read_round_trip(void) {
    // Sizes around the initial 64 KiB buffer and its doublings.
    const size_t sizes[] = {0, 1, 65535, 65536, 65537, 300001};
    rl_rng r = rl_rng_stream(7, 0, 0, 0);
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        size_t n = sizes[t];
        unsigned char *want = malloc(n + 1);
        for (size_t i = 0; i < n; i++) want[i] = (unsigned char)(rl_rng_u32(&r) & 0xff);
        char *p = in_tmp("blob.bin");
        write_raw(p, want, n);
        char *got = NULL;
        size_t len = 12345;
        rl_err err = {0};
        CHECK(rl_read_file(p, 0, &got, &len, &err) == 0, "read %zu bytes: %s", n, err.msg);
        CHECK(len == n, "length %zu, want %zu", len, n);
        CHECK(got && memcmp(got, want, n) == 0, "content differs at size %zu", n);
        CHECK(got && got[n] == '\0', "no NUL after %zu bytes", n);
        free(got);
        free(want);
        free(p);
    }
}

static void test_read_cap_and_errors(void) {
    char *p = in_tmp("capped.txt");
    char buf[1000];
    memset(buf, 'x', sizeof buf);
    write_raw(p, buf, sizeof buf);
    char *got = NULL;
    size_t len = 0;
    rl_err err = {0};
    CHECK(rl_read_file(p, 1000, &got, &len, &err) == 0 && len == 1000, "exactly at the cap: %s",
          err.msg);
    free(got);
    got = NULL;
    CHECK(rl_read_file(p, 999, &got, &len, &err) != 0, "one byte over the cap was accepted");
    CHECK(err.kind == RL_EINPUT && strstr(err.msg, "capped.txt: larger than 999 bytes"), "msg: %s",
          err.msg);
    CHECK(got == NULL, "output set on failure");
    free(p);

    p = in_tmp("does-not-exist");
    rl_err_clear(&err);
    CHECK(rl_read_file(p, 0, &got, &len, &err) != 0, "missing file read");
    CHECK(err.kind == RL_EINPUT && strstr(err.msg, "does-not-exist: cannot open: "), "msg: %s",
          err.msg);
    free(p);

    rl_err_clear(&err);
    CHECK(rl_read_file(g_tmp, 0, &got, &len, &err) != 0, "a directory was read as a file");
    CHECK(err.kind == RL_EINPUT && strstr(err.msg, ": not a regular file (a directory)"), "msg: %s",
          err.msg);
}

// Runs fn(path) in a child with an alarm, so that a reader that blocks fails the test instead of
// hanging it. fn returns 0 when it refused the path as it should.
static int refused_without_hanging(int (*fn)(const char *), const char *path) {
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        _exit(fn(path));
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) fprintf(stderr, "  %s: the reader hung\n", path);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int read_file_refuses(const char *path) {
    char *got = NULL;
    size_t len = 0;
    rl_err err = {0};
    if (rl_read_file(path, 0, &got, &len, &err) == 0) return 1;
    if (err.kind != RL_EINPUT || !strstr(err.msg, path) || !strstr(err.msg, "not a regular file"))
        return fprintf(stderr, "  message: %s\n", err.msg), 1;
    return 0;
}

static int fopen_refuses(const char *path) {
    rl_err err = {0};
    FILE *f = rl_fopen_regular(path, &err);
    if (f) return fclose(f), 1;
    return err.kind == RL_EINPUT && strstr(err.msg, "not a regular file") ? 0 : 1;
}

static int open_refuses(const char *path) {
    rl_err err = {0};
    int fd = rl_open_regular(path, NULL, &err);
    if (fd >= 0) return close(fd), 1;
    return err.kind == RL_EINPUT && strstr(err.msg, "not a regular file") ? 0 : 1;
}

// A FIFO (nobody writing) or a character device in place of a file is refused at once: opening
// a FIFO for reading used to wait for a writer for ever.
static void test_not_regular(void) {
    char *fifo = in_tmp("fifo");
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo: %s", strerror(errno));
    CHECK(refused_without_hanging(read_file_refuses, fifo) == 0, "rl_read_file on a FIFO");
    CHECK(refused_without_hanging(fopen_refuses, fifo) == 0, "rl_fopen_regular on a FIFO");
    CHECK(refused_without_hanging(open_refuses, fifo) == 0, "rl_open_regular on a FIFO");
    rl_err err = {0};
    CHECK(rl_read_file(fifo, 0, &(char *){NULL}, &(size_t){0}, &err) != 0 &&
              strstr(err.msg, "(a FIFO)"),
          "FIFO message: %s", err.msg);
    CHECK(refused_without_hanging(read_file_refuses, "/dev/zero") == 0, "/dev/zero");
    free(fifo);

    // A regular file still opens, reports its size, and reads blocking (O_NONBLOCK cleared).
    char *p = in_tmp("plain.txt");
    write_raw(p, "12345", 5);
    size_t size = 0;
    int fd = rl_open_regular(p, &size, &err);
    CHECK(fd >= 0 && size == 5, "regular file: fd %d size %zu: %s", fd, size, err.msg);
    if (fd >= 0) {
        CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0, "O_NONBLOCK left set");
        close(fd);
    }
    FILE *f = rl_fopen_regular(p, &err);
    char line[16] = "";
    CHECK(f && fgets(line, sizeof line, f) && strcmp(line, "12345") == 0, "fopen_regular read");
    if (f) fclose(f);
    free(p);
}

static void test_write_atomic(void) {
    char *p = in_tmp("atomic.txt");
    rl_err err = {0};
    const char a[] = "first version\n", b[] = "second, longer version\n";
    CHECK(rl_write_file_atomic(p, a, sizeof a - 1, &err) == 0, "write: %s", err.msg);
    CHECK(rl_write_file_atomic(p, b, sizeof b - 1, &err) == 0, "replace: %s", err.msg);
    char *got = NULL;
    size_t len = 0;
    CHECK(rl_read_file(p, 0, &got, &len, &err) == 0 && len == sizeof b - 1 &&
              memcmp(got, b, len) == 0,
          "replaced content: %s", got ? got : err.msg);
    free(got);
    CHECK(count_temporaries() == 0, "a temporary file was left behind");

    // A stream that failed part way: the old file stays, the temporary goes.
    char *tmp = NULL;
    int fd = rl_atomic_open(p, &tmp, &err);
    CHECK(fd >= 0 && tmp && strstr(tmp, "atomic.txt.tmp."), "open: %s", err.msg);
    CHECK(rl_write_all(fd, "partial", 7) == 0, "write_all");
    rl_err_clear(&err);
    CHECK(rl_atomic_commit(fd, tmp, p, ENOSPC, &err) != 0, "a failed stream was committed");
    CHECK(err.kind == RL_EINTERNAL && strstr(err.msg, "atomic.txt: write failed: ") &&
              strstr(err.msg, strerror(ENOSPC)),
          "msg: %s", err.msg);
    CHECK(rl_read_file(p, 0, &got, &len, &err) == 0 && len == sizeof b - 1 &&
              memcmp(got, b, len) == 0,
          "old content lost after a failed write");
    free(got);
    CHECK(count_temporaries() == 0, "the failed temporary was left behind");
    free(p);

    // A missing directory: RL_EINPUT naming the temporary.
    p = in_tmp("no-such-dir/x.json");
    rl_err_clear(&err);
    CHECK(rl_write_file_atomic(p, a, 3, &err) != 0, "write into a missing directory");
    CHECK(err.kind == RL_EINPUT && strstr(err.msg, "no-such-dir/x.json.tmp.") &&
              strstr(err.msg, ": cannot create: "),
          "msg: %s", err.msg);
    free(p);
}

static void test_paths_and_dirs(void) {
    char *j = rl_path_join("a/b", "c.json");
    CHECK(strcmp(j, "a/b/c.json") == 0, "join %s", j);
    free(j);
    j = rl_path_join("a/b/", "c.json");
    CHECK(strcmp(j, "a/b/c.json") == 0, "join with trailing slash %s", j);
    free(j);
    j = rl_path_join("", "c");
    CHECK(strcmp(j, "c") == 0, "join with empty dir %s", j);
    free(j);

    rl_err err = {0};
    char *deep = in_tmp("tree/x/y/z");
    CHECK(rl_make_dirs(deep, &err) == 0 && rl_is_dir(deep), "mkdir -p: %s", err.msg);
    CHECK(rl_make_dirs(deep, &err) == 0, "mkdir -p of an existing tree: %s", err.msg);
    CHECK(rl_make_dir(deep, &err) == 0, "mkdir of an existing dir: %s", err.msg);
    CHECK(!rl_is_file(deep), "a directory counted as a file");
    char *f = in_tmp("tree/x/file");
    write_raw(f, "1", 1);
    CHECK(rl_is_file(f) && !rl_is_dir(f), "file kind");
    char *under_file = in_tmp("tree/x/file/sub");
    rl_err_clear(&err);
    CHECK(rl_make_dirs(under_file, &err) != 0, "mkdir under a regular file");
    CHECK(err.kind == RL_EINPUT && strstr(err.msg, "file/sub: cannot create directory: "),
          "msg: %s", err.msg);
    rl_err_clear(&err);
    CHECK(rl_make_dirs("", &err) != 0 && err.kind == RL_EINPUT, "empty name accepted");

    // A link inside the tree to a directory outside: removing the tree keeps the outside one.
    char *outside = in_tmp("outside");
    CHECK(rl_make_dir(outside, &err) == 0, "mkdir: %s", err.msg);
    char *kept = in_tmp("outside/kept");
    write_raw(kept, "k", 1);
    char *link = in_tmp("tree/x/y/link");
    CHECK(symlink(outside, link) == 0, "symlink: %s", strerror(errno));
    char *tree = in_tmp("tree");
    rl_remove_tree(tree);
    struct stat st;
    CHECK(lstat(tree, &st) != 0 && errno == ENOENT, "tree still there");
    CHECK(rl_is_file(kept), "removal followed a symbolic link");
    rl_remove_tree(tree); // a missing path is fine
    free(deep);
    free(f);
    free(under_file);
    free(outside);
    free(kept);
    free(link);
    free(tree);
}

static void test_json_type_names(void) {
    json_t *vals[] = {json_object(),  json_array(), json_string("s"), json_integer(3),
                      json_real(0.5), json_true(),  json_false(),     json_null()};
    const char *want[] = {"an object",     "an array",  "a string",  "an integer",
                          "a real number", "a boolean", "a boolean", "null"};
    for (int i = 0; i < 8; i++) {
        CHECK(strcmp(rl_json_type_name(vals[i]), want[i]) == 0, "type %d: %s", i,
              rl_json_type_name(vals[i]));
        json_decref(vals[i]);
    }
    CHECK(strcmp(rl_json_type_name(NULL), "missing") == 0, "NULL");
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/rl_fileio_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_read_round_trip);
    RUN(test_read_cap_and_errors);
    RUN(test_not_regular);
    RUN(test_write_atomic);
    RUN(test_paths_and_dirs);
    RUN(test_json_type_names);
    rl_remove_tree(g_tmp);
    return test_summary();
}
