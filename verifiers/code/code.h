/*
 * code: the accuracy verifier for code tasks. It extracts the last fenced Python block from the
 * completion and runs it in the process sandbox (sandbox.h) against the sample's tests:
 *   RL_VTEST_STDIO   stdin given, stdout compared with the expected output in the parent
 *                    (rl_code_output_matches); the program must also exit 0.
 *   RL_VTEST_ASSERT  a trusted harness runs the program, then the assert code, in one
 *                    interpreter, and prints a per-run random mark only if both returned normally;
 *                    the test passes when the process exits 0 and the mark is the last line.
 * Score: the fraction of tests passed ("scoring: fraction", default) or 1/0 ("scoring: all").
 * Status: SKIPPED without tests; ERROR when the sandbox cannot run python; TIMEOUT when no test
 * passed and every test that ran timed out; OK otherwise (also when there is no code block).
 *
 * Options (config keys, all optional): scoring, timeout_s, memory_mb, stack_mb, max_output_kb,
 * file_size_mb, disk_mb, nproc, python, isolation (auto|namespaces|rlimits), sandbox_dir,
 * ro_paths, max_tests (0 = all), max_timeouts (stop after this many timed-out tests, default 2).
 *
 * Owns: its sandbox (one per verifier instance; score() is thread-safe).
 */
#ifndef RL_VERIFIER_CODE_H
#define RL_VERIFIER_CODE_H

#include "reward/verifier_abi.h"

#include <stddef.h>

// The verifier's ABI table (name "code"; the registry routes samples with tests to it).
const rl_verifier_api *rl_verifier_code_api(void);

// The code of the completion's chosen block, malloc'd, or NULL when there is none. The last
// closed ```python (or ```py / ```python3) block wins; without one, the last closed block with
// no language tag. Blocks tagged with another language and an unclosed final block are ignored.
// Content lines lose the opening fence's indentation.
char *rl_code_extract(const char *text);

// Whether program output matches the expected output: both split into lines at '\n', trailing
// whitespace (incl. '\r') trimmed on each line, trailing empty lines ignored; the line counts
// must be equal and every line identical. On mismatch, why (if non-NULL) says where.
int rl_code_output_matches(const char *got, size_t got_len, const char *want, char *why,
                           size_t why_len);

#endif
