/*
 * fileio: file and JSON helpers shared by the policy, rollout and CLI modules, so that reading a
 * whole file, replacing one atomically, making and removing directories and naming a JSON value's
 * type are written once, with one wording of their error messages.
 *
 * Atomic replacement: the data goes to the temporary sibling "<path>.tmp.<pid>", is fsync'ed, and
 * is renamed over path; any failure removes the temporary and leaves path as it was. Messages:
 *   "<tmp>: cannot create: <why>"   RL_EINPUT (a missing or read-only directory, usually)
 *   "<path>: write failed: <why>"   RL_EINTERNAL (disk full, I/O error)
 * Reading a whole file: "<path>: cannot open: <why>", "<path>: read error: <why>" and, with a size
 * cap, "<path>: larger than N bytes", all RL_EINPUT.
 *
 * Every file rlpipe reads from a path a user gave (configs, model files, tokenizers, datasets)
 * is opened through rl_open_regular: O_NONBLOCK, so that a FIFO or a device cannot make open()
 * wait for a writer, then fstat on the descriptor, and anything but a regular file is refused:
 *   "<path>: not a regular file (a FIFO)"   RL_EINPUT  (or a directory, a device, a socket)
 *
 * Verifiers do not use this module (they include only the verifier ABI and libraries).
 *
 * Owns: nothing; the buffers and names it returns are the caller's to free().
 */
#ifndef RL_POLICY_FILEIO_H
#define RL_POLICY_FILEIO_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "kernels/rl_error.h"

// ---- paths ------------------------------------------------------------------------------------

// dir + "/" + name (no second slash when dir already ends in one). Caller frees.
char *rl_path_join(const char *dir, const char *name);

// 1 when path exists (symbolic links followed) and is a regular file / a directory, else 0.
int rl_is_file(const char *path);
int rl_is_dir(const char *path);

// ---- reading ----------------------------------------------------------------------------------

// Opens path read-only for reading a regular file: never blocks in open() (O_NONBLOCK, cleared
// again once the file is known to be regular), refuses what fstat says is not a regular file.
// Returns the descriptor (O_CLOEXEC), or -1 with RL_EINPUT "<path>: cannot open: <why>" or
// "<path>: not a regular file (a FIFO)". *size (if not NULL) gets the file size.
int rl_open_regular(const char *path, size_t *size, rl_err *err);

// The same as a stdio stream ("rb"), for line-oriented readers. NULL on failure.
FILE *rl_fopen_regular(const char *path, rl_err *err);

// The whole file: *data (malloc'd, with a NUL after the *len bytes, so text can be used as a C
// string) and its length. max_bytes > 0 refuses larger files; 0 = no cap.
int rl_read_file(const char *path, size_t max_bytes, char **data, size_t *len, rl_err *err);

// ---- writing ----------------------------------------------------------------------------------

// Replaces path with the n bytes at data, atomically (see above).
int rl_write_file_atomic(const char *path, const void *data, size_t n, rl_err *err);

// The two halves of rl_write_file_atomic, for writers that stream: rl_atomic_open creates the
// temporary and returns its descriptor (-1 on failure) and *tmp its name (malloc'd);
// rl_atomic_commit syncs and closes fd and renames tmp over path, or, when failed_errno is not 0
// (an earlier write failed with that errno) or any of that fails, removes tmp. It frees tmp.
int rl_atomic_open(const char *path, char **tmp, rl_err *err);
int rl_atomic_commit(int fd, char *tmp, const char *path, int failed_errno, rl_err *err);

// write(2) until all n bytes are out (retrying short writes and EINTR). 0, or the errno.
int rl_write_all(int fd, const void *data, size_t n);

// ---- directories ------------------------------------------------------------------------------

// mkdir dir; an existing one is fine. RL_EINPUT "<dir>: cannot create directory: <why>".
int rl_make_dir(const char *dir, rl_err *err);

// mkdir -p: dir and every missing parent, with rl_make_dir's message for the one that fails.
int rl_make_dirs(const char *dir, rl_err *err);

// Deletes a file or a directory tree, best effort. Symbolic links are removed, not followed; a
// path that does not exist is fine.
void rl_remove_tree(const char *path);

// ---- JSON -------------------------------------------------------------------------------------

// "an object", "an array", "a string", "an integer", "a real number", "a boolean" or "null"
// ("missing" for NULL), for messages like "\"x\" must be an integer, got a string".
const char *rl_json_type_name(const json_t *v);

#endif
