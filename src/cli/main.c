/*
 * The tlsshim command line (SPEC section 1).  tlsshim's own options end at
 * the first argument that is not one of them, or at "--", so that nothing
 * meant for COMMAND is ever read as ours; options are parsed by hand
 * because getopt_long() would also accept abbreviations and permute.  The
 * modes themselves live in run.c, check.c, fingerprint.c, stats.c,
 * unitdropin.c and learn.c.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "json.h"

/* Options a mode accepts, for refusing the ones it would ignore. */
#define OPT_F      0x01u
#define OPT_D      0x02u
#define OPT_O      0x04u
#define OPT_R      0x08u
#define OPT_LISTEN 0x10u
#define OPT_ALLOW  0x20u
#define OPT_WRITE  0x40u
#define OPT_PROBE  0x80u

static const struct {
    const char *flag;
    enum cli_mode mode;
    unsigned allowed;
} modes[] = {
    {"--check", CLI_CHECK, OPT_F | OPT_R},
    {"--explain", CLI_EXPLAIN, OPT_F | OPT_LISTEN},
    {"--env", CLI_ENV, OPT_F | OPT_D | OPT_O | OPT_R},
    {"--fingerprint", CLI_FINGERPRINT, OPT_F},
    {"--stats", CLI_STATS, 0},
    {"--learn", CLI_LEARN, OPT_F | OPT_D | OPT_O | OPT_ALLOW | OPT_PROBE},
    {"--unit-dropin", CLI_UNIT_DROPIN,
     OPT_F | OPT_D | OPT_O | OPT_R | OPT_ALLOW | OPT_WRITE},
    {"--version", CLI_VERSION, 0},
    {"--help", CLI_HELP, 0},
};

static const char usage_text[] =
    "usage: tlsshim [-f POLICY] [-d LEVEL] [-o LOG] [-r REPORT]"
    " [--allow-uncovered]\n"
    "               [--] COMMAND [ARG...]\n"
    "       tlsshim --check [-f POLICY] [-r REPORT]\n"
    "       tlsshim --explain [-f POLICY] [--listen] HOST:PORT\n"
    "       tlsshim --env [-f POLICY] [-d LEVEL] [-o LOG] [-r REPORT]\n"
    "       tlsshim --fingerprint [-f POLICY] HOST:PORT [ALGO]\n"
    "       tlsshim --stats REPORT\n"
    "       tlsshim --unit-dropin UNIT [-f POLICY] [-d LEVEL] [-o LOG]"
    " [-r REPORT]\n"
    "               [--allow-uncovered] [--write]\n"
    "       tlsshim --learn OUT [--probe] [-f POLICY] [-d LEVEL] [-o LOG]\n"
    "               [--allow-uncovered] [--] COMMAND [ARG...]\n"
    "       tlsshim --version | --help\n"
    "\n"
    "  -f POLICY          policy file (else $TLSSHIM_CONF, the system file,"
    "\n"
    "                     the embedded default)\n"
    "  -d LEVEL           debug level 0-3 (TLSSHIM_DEBUG)\n"
    "  -o LOG             log to stderr, syslog or a file (TLSSHIM_LOG)\n"
    "  -r REPORT          JSON-lines connection report (TLSSHIM_REPORT)\n"
    "  --allow-uncovered  run COMMAND even if tlsshim cannot cover it\n"
    "  --check            validate the policy and print the effective rules\n"
    "                     (with -r: warn about plaintext the report shows)\n"
    "  --explain          show the rule and settings for HOST:PORT\n"
    "  --listen           with --explain: match listen rules\n"
    "  --env              print export lines for eval in a shell\n"
    "  --fingerprint      connect to HOST:PORT, show its certificate,\n"
    "                     whether the policy accepts it, and its fingerprint\n"
    "                     (ALGO sha256, or sha1, sha224, sha384, sha512)\n"
    "  --stats            summarise a JSON-lines connection report\n"
    "  --learn OUT        run COMMAND in audit mode and write to OUT the\n"
    "                     policy plus a rule per plaintext destination\n"
    "  --probe            with --learn: ask each destination whether TLS\n"
    "                     answers and verifies there\n"
    "  --unit-dropin      print a systemd drop-in that runs UNIT under\n"
    "                     tlsshim, LD_PRELOAD appended to the unit's own\n"
    "  --write            with --unit-dropin: install it as\n"
    "                     /etc/systemd/system/UNIT.d/tlsshim.conf\n"
    "  --version          print the versions of tlsshim and OpenSSL\n"
    "  --help             print this help\n";

void
cli_error(const char *fmt, ...)
{
    va_list ap;

    fputs("tlsshim: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void
cli_warn(const char *fmt, ...)
{
    va_list ap;

    fputs("tlsshim: warning: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void
cli_print_safe(FILE *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + len;

    while (p < end) {
        size_t n = 1;

        if (*p < 0x20 || *p == 0x7f) {
            fprintf(out, "\\x%02x", *p);
        } else if (*p < 0x80) {
            fputc(*p, out);
        } else if (*p == 0xc2 && end - p >= 2 && p[1] >= 0x80 &&
                   p[1] <= 0x9f) {
            /* C1 controls: some terminals take 0x9b as CSI */
            fprintf(out, "\\u%04x", p[1]);
            n = 2;
        } else if ((n = json_utf8_length(p, end)) > 0) {
            fwrite(p, 1, n, out);
        } else {
            fprintf(out, "\\x%02x", *p);
            n = 1;
        }
        p += n;
    }
}

/* A usage error: the message and a one-line hint. */
static int
usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("tlsshim: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see tlsshim --help)\n", stderr);
    return -1;
}

/* The value of -f/-d/-o/-r: attached ("-fFILE") or the next argument. */
static const char *
option_value(int argc, char **argv, int *i, const char **seen)
{
    const char *arg = argv[*i];

    if (*seen != NULL) {
        usage_error("option -%c given twice", arg[1]);
        return NULL;
    }
    if (arg[2] != '\0')
        *seen = arg + 2;
    else if (*i + 1 < argc)
        *seen = argv[++*i];
    else {
        usage_error("option -%c needs a value", arg[1]);
        return NULL;
    }
    if (**seen == '\0') {
        usage_error("option -%c needs a non-empty value", arg[1]);
        return NULL;
    }
    return *seen;
}

static int
parse_long(const char *arg, struct cli_options *o, unsigned *given,
           unsigned *allowed)
{
    size_t i;

    if (strcmp(arg, "--listen") == 0) {
        *given |= OPT_LISTEN;
        o->listen = 1;
        return 0;
    }
    if (strcmp(arg, "--probe") == 0) {
        *given |= OPT_PROBE;
        o->probe = 1;
        return 0;
    }
    if (strcmp(arg, "--write") == 0) {
        *given |= OPT_WRITE;
        o->write = 1;
        return 0;
    }
    if (strcmp(arg, "--allow-uncovered") == 0) {
        *given |= OPT_ALLOW;
        o->allow_uncovered = 1;
        return 0;
    }
    for (i = 0; i < TLSSHIM_NELEMS(modes); i++) {
        if (strcmp(arg, modes[i].flag) != 0)
            continue;
        if (o->mode_flag != NULL)
            return usage_error("%s and %s cannot be combined", o->mode_flag,
                               arg);
        o->mode = modes[i].mode;
        o->mode_flag = modes[i].flag;
        *allowed = modes[i].allowed;
        return 0;
    }
    return usage_error("unknown option %s", arg);
}

static int
parse_short(int argc, char **argv, int *i, struct cli_options *o,
            unsigned *given, const char **debug_text)
{
    const char *arg = argv[*i];
    long level;

    switch (arg[1]) {
    case 'f':
        *given |= OPT_F;
        return option_value(argc, argv, i, &o->policy_file) ? 0 : -1;
    case 'd':
        *given |= OPT_D;
        if (option_value(argc, argv, i, debug_text) == NULL)
            return -1;
        if (util_parse_int(*debug_text, 0, 3, &level) != 0)
            return usage_error("-d LEVEL must be 0, 1, 2 or 3, not '%s'",
                               *debug_text);
        o->debug = (int)level;
        return 0;
    case 'o':
        *given |= OPT_O;
        return option_value(argc, argv, i, &o->log) ? 0 : -1;
    case 'r':
        *given |= OPT_R;
        return option_value(argc, argv, i, &o->report) ? 0 : -1;
    default:
        return usage_error("unknown option %s", arg);
    }
}

/* Refuse options the mode would silently ignore. */
static int
check_mode_options(const struct cli_options *o, unsigned given,
                   unsigned allowed)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {OPT_F, "-f"}, {OPT_D, "-d"}, {OPT_O, "-o"}, {OPT_R, "-r"},
        {OPT_LISTEN, "--listen"}, {OPT_ALLOW, "--allow-uncovered"},
        {OPT_WRITE, "--write"}, {OPT_PROBE, "--probe"},
    };
    size_t i;

    for (i = 0; i < TLSSHIM_NELEMS(names); i++)
        if ((given & names[i].bit) != 0 && (allowed & names[i].bit) == 0) {
            if (o->mode == CLI_RUN)
                return usage_error("%s needs %s", names[i].name,
                                   names[i].bit == OPT_WRITE
                                       ? "--unit-dropin"
                                   : names[i].bit == OPT_PROBE
                                       ? "--learn"
                                       : "--explain");
            return usage_error("%s does not apply to %s", names[i].name,
                               o->mode_flag);
        }

    switch (o->mode) {
    case CLI_RUN:
    case CLI_LEARN:
        if (o->nargs == 0)
            return usage_error("no COMMAND given");
        break;
    case CLI_EXPLAIN:
        if (o->nargs != 1)
            return usage_error("--explain takes one HOST:PORT");
        break;
    case CLI_FINGERPRINT:
        if (o->nargs < 1 || o->nargs > 2)
            return usage_error("--fingerprint takes HOST:PORT and an "
                               "optional ALGO");
        break;
    case CLI_STATS:
        if (o->nargs != 1)
            return usage_error("--stats takes one REPORT file");
        break;
    case CLI_UNIT_DROPIN:
        if (o->nargs != 1)
            return usage_error("--unit-dropin takes one UNIT");
        break;
    case CLI_CHECK:
    case CLI_ENV:
        if (o->nargs != 0)
            return usage_error("%s takes no operand ('%s')", o->mode_flag,
                               o->args[0]);
        break;
    default:
        break;
    }
    return 0;
}

/*
 * Options run up to the first non-option or "--".  With a mode other than
 * running COMMAND there is no COMMAND to protect, so operands may sit
 * among the options there.  Returns 0 or -1 (message printed).
 */
static int
parse_args(int argc, char **argv, struct cli_options *o, char **operands)
{
    unsigned given = 0;
    unsigned allowed = OPT_F | OPT_D | OPT_O | OPT_R | OPT_ALLOW;
    const char *debug_text = NULL;
    int i, rv;

    memset(o, 0, sizeof(*o));
    o->debug = -1;
    o->args = operands;
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (arg[0] != '-' || arg[1] == '\0') {
            if (o->mode == CLI_RUN || o->mode == CLI_LEARN)
                break;
            operands[o->nargs++] = argv[i];
            continue;
        }
        if (arg[1] == '-')
            rv = parse_long(arg, o, &given, &allowed);
        else
            rv = parse_short(argc, argv, &i, o, &given, &debug_text);
        if (rv != 0)
            return -1;
        /* --learn OUT: OUT is never an option, even if it looks like one */
        if (strcmp(arg, "--learn") == 0) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0' ||
                strcmp(argv[i + 1], "-") == 0 ||
                strcmp(argv[i + 1], "--") == 0)
                return usage_error("--learn needs the OUT file");
            o->learn_out = argv[++i];
        }
    }
    while (i < argc)
        operands[o->nargs++] = argv[i++];
    operands[o->nargs] = NULL;
    return check_mode_options(o, given, allowed);
}

static int
print_version(void)
{
    printf("tlsshim %s\nOpenSSL %s\n", PACKAGE_VERSION,
           OpenSSL_version(OPENSSL_VERSION_STRING));
    return 0;
}

int
main(int argc, char **argv)
{
    struct cli_options o;
    char **operands;
    int status = CLI_EXIT_USAGE;

    /* One slot per argument plus the terminating NULL execv() needs. */
    if ((operands = calloc((size_t)argc + 1, sizeof(*operands))) == NULL) {
        cli_error("out of memory");
        return CLI_EXIT_USAGE;
    }
    if (parse_args(argc, argv, &o, operands) != 0)
        goto out;

    switch (o.mode) {
    case CLI_RUN:
        status = cli_run(&o);
        break;
    case CLI_CHECK:
        status = cli_check(&o);
        break;
    case CLI_EXPLAIN:
        status = cli_explain(&o);
        break;
    case CLI_ENV:
        status = cli_print_env(&o);
        break;
    case CLI_FINGERPRINT:
        status = cli_fingerprint(&o);
        break;
    case CLI_STATS:
        status = cli_stats(&o);
        break;
    case CLI_UNIT_DROPIN:
        status = cli_unit_dropin(&o);
        break;
    case CLI_LEARN:
        status = cli_learn(&o);
        break;
    case CLI_VERSION:
        status = print_version();
        break;
    case CLI_HELP:
        fputs(usage_text, stdout);
        status = 0;
        break;
    }
    /* Output that did not reach its destination is a failure: a script
     * reading --check or --env must not take half of it for all of it. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("cannot write the output: %s", strerror(errno));
        status = CLI_EXIT_USAGE;
    }
out:
    free(operands);
    return status;
}
