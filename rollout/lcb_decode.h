/*
 * lcb_decode: LiveCodeBench's compressed private test cases, decoded without running anything.
 *
 * The code_generation_lite release stores private_test_cases as base64( zlib( pickle( str ) ) ),
 * where str is the JSON text of the test list. Unpickling is code execution in Python (a pickle
 * can call any function), so rlpipe never runs a pickle interpreter: rl_pickle_string() reads the
 * opcodes itself and accepts exactly one shape, a pickle whose whole content is a single str:
 *     [PROTO v] [FRAME n]* (SHORT_BINUNICODE | BINUNICODE | BINUNICODE8) [MEMOIZE | BINPUT |
 *     LONG_BINPUT]* [FRAME n]* STOP
 * Anything else (GLOBAL, REDUCE, any other object, a second value, bytes after STOP, a truncated
 * stream, a string that is not UTF-8) is refused with the opcode and its offset named.
 *
 * Owns: nothing; every result is malloc'd for the caller.
 */
#ifndef RL_LCB_DECODE_H
#define RL_LCB_DECODE_H

#include <stddef.h>

#include "kernels/rl_error.h"

// Standard base64 (RFC 4648, '=' padding, whitespace ignored) to bytes. RL_EINPUT on bad input.
int rl_base64_decode(const char *text, size_t len, unsigned char **out, size_t *out_len,
                     rl_err *err);

// zlib-inflates data (a zlib stream, RFC 1950) into at most max_out bytes. RL_EINPUT when the
// stream is corrupt, truncated, followed by junk or inflates past max_out.
int rl_zlib_inflate(const unsigned char *data, size_t len, size_t max_out, unsigned char **out,
                    size_t *out_len, rl_err *err);

// The str inside a pickle that holds exactly one str (see above), NUL-terminated in *out.
int rl_pickle_string(const unsigned char *data, size_t len, char **out, size_t *out_len,
                     rl_err *err);

// The whole chain: base64 text -> zlib -> pickle -> the JSON text, at most max_out bytes.
int rl_lcb_decode_private(const char *b64, size_t len, size_t max_out, char **json_text,
                          rl_err *err);

#endif
