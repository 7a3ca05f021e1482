/*
 * The tlsshim command (SPEC section 1): what its modules share.  main.c
 * parses the command line into a cli_options and dispatches; run.c finds
 * the policy and the preloaded libraries, builds the environment and runs
 * COMMAND (or prints the environment for --env); check.c implements --check
 * and --explain; fingerprint.c --fingerprint; stats.c --stats, with the
 * JSON parser of json.c; unitdropin.c --unit-dropin; learn.c --learn,
 * with probe.c and the report reading of evidence.c (also --check -r).
 * Every message goes to stderr prefixed "tlsshim: ".
 */
#ifndef TLSSHIM_CLI_H
#define TLSSHIM_CLI_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

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
    CLI_FINGERPRINT,
    CLI_STATS,
    CLI_LEARN,
    CLI_UNIT_DROPIN,
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
    int write;               /* --unit-dropin --write */
    const char *learn_out;   /* --learn OUT */
    int probe;               /* --learn --probe */
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

/* Write s[0..len) for a terminal: control characters (C0, DEL and the C1
 * range U+0080-U+009F) as \xNN or \u00NN escapes, so that text from a
 * peer or a report cannot drive the terminal.  Other UTF-8 passes
 * through; bytes that are not UTF-8 are escaped too. */
void cli_print_safe(FILE *out, const char *s, size_t len);

/* The directory libtlsshim.so is taken from: the libtool build tree
 * beside the running executable, else the installed pkglibdir. */
void cli_library_dir(char *dir, size_t len);

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

/* Split HOST:PORT ("[v6]:PORT" for IPv6) into host and port; *is_literal
 * is 1 for an IP address, 0 for a name.  Prints why on failure. */
int cli_split_destination(const char *arg, char *host, size_t hostlen,
                          unsigned *port, int *is_literal)
    TLSSHIM_WARN_UNUSED;
/* policy_resolve_fn: whether host resolves to addr, as the shim's own
 * resolution of a rule's name (SPEC section 3). */
int cli_resolve_name(void *arg, const char *host,
                     const struct sockaddr *addr);
/* Whether rule r matches every address of both families at every port,
 * so that no later rule of its role can match (check.c). */
int cli_rule_is_catch_all(const struct policy_rule *r);

/* The modes; each returns the exit status. */
int cli_run(const struct cli_options *o);
int cli_print_env(const struct cli_options *o);
int cli_check(const struct cli_options *o);
int cli_explain(const struct cli_options *o);
int cli_fingerprint(const struct cli_options *o);
int cli_stats(const struct cli_options *o);
int cli_unit_dropin(const struct cli_options *o);
/* Whether the colon- or space-separated list (LD_PRELOAD) holds item. */
int cli_list_contains(const char *list, const char *item);
int cli_learn(const struct cli_options *o);

#endif
