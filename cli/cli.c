// cli: shared helpers of the commands (error reporting, usage errors). See cli.h.
#include "cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cli_report(const rl_err *err) {
    fprintf(stderr, "rlpipe: %s\n", err->msg[0] ? err->msg : "unknown error");
    return err->kind == RL_EINPUT ? CLI_EXIT_USAGE : CLI_EXIT_INTERNAL;
}

int cli_usage_error(const char *command, const char *fmt, ...) {
    char msg[RL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "rlpipe %s: %s (see rlpipe %s --help)\n", command, msg, command);
    return CLI_EXIT_USAGE;
}

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return 1;
    }
    return 0;
}
