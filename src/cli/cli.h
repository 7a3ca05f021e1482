/*
 * The tlsshim command (SPEC section 1): what its modules share.  main.c
 * parses the command line into a cli_options and dispatches; run.c finds
 * the policy and the preloaded libraries, builds the environment and runs
 * COMMAND (or prints the environment for --env); check.c implements --check
 * and --explain.  Every message goes to stderr prefixed "tlsshim: ".
 */
#ifndef TLSSHIM_CLI_H
#define TLSSHIM_CLI_H

#include <stddef.h>

#include "policy.h"
#include "util.h"

/* Exit status for a usage or policy error: nothing was run. */
#define CLI_EXIT_USAGE 2
/* Exit statuses of a shell for a command not found / not executable. */
#define CLI_EXIT_NOT_FOUND 127
#define CLI_EXIT_NOT_EXECUTABLE 126

enum cli_mode {
    CLI_RUN = 0,
    CLI_CHECK,
    CLI_EXPLAIN,
    CLI_ENV,
    CLI_VERSION,
    CLI_HELP,
};

struct cli_options {
    enum cli_mode mode;
    const char *mode_flag;   /* "--check"..., NULL for CLI_RUN */
    const char *policy_file; /* -f, as given */
    int debug;               /* -d, or -1 */
    const char *log;         /* -o */
    const char *report;      /* -r */
    int allow_uncovered;
    int listen;              /* --explain --listen */
    char **args;             /* CLI_RUN: COMMAND [ARG...]; else operands */
    int nargs;
};

/* Environment variables set for COMMAND (and printed by --env). */
#define CLI_ENV_MAX 5
struct cli_env {
    const char *name[CLI_ENV_MAX];
    char *value[CLI_ENV_MAX];
    size_t n;
};

/* "tlsshim: " + message on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "tlsshim: warning: " + message on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Load the policy the shim would use (SPEC section 2: -f, TLSSHIM_CONF,
 * the system file, the embedded default).  Prints the error and returns
 * NULL when it does not load. */
struct policy *cli_load_policy(const struct cli_options *o)
    TLSSHIM_WARN_UNUSED;

/* path made absolute against the working directory (not resolving
 * symbolic links); malloc'ed, NULL on error. */
char *cli_absolute_path(const char *path) TLSSHIM_WARN_UNUSED;

/* The variables of section 2 for COMMAND: LD_PRELOAD with the shim
 * appended, and the -f/-d/-o/-r settings.  Prints the error and returns -1
 * when a library is missing. */
int cli_env_build(const struct cli_options *o, const struct policy *p,
                  struct cli_env *env) TLSSHIM_WARN_UNUSED;
void cli_env_free(struct cli_env *env);

/* The modes; each returns the exit status. */
int cli_run(const struct cli_options *o);
int cli_print_env(const struct cli_options *o);
int cli_check(const struct cli_options *o);
int cli_explain(const struct cli_options *o);

#endif
