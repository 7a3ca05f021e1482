/*
 * tlsshim --learn OUT [--probe] [-f POLICY] -- COMMAND (SPEC section 1):
 * run COMMAND with the policy in audit mode (default_action and
 * default_listen_action = audit, catch-all plain rules audit too) and a
 * report of its own, then write OUT: the policy's text as it was, with one
 * proposed rule per destination that the report shows was used in
 * plaintext, the evidence in comments above each, placed before the rules
 * that let it through so that it takes effect.  With --probe, each
 * destination's addresses are asked (after COMMAND exited) whether TLS
 * answers and verifies on the same port, after the protocol's STARTTLS on
 * the same port, and on the protocol's TLS port.  Plaintext the program
 * accepted gets a listen rule, commented out (the certificate is the
 * operator's to choose).  The policy text is edited line by line, never rewritten, so that the
 * operator's comments and layout survive; the result is parsed again
 * before it is written.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "evidence.h"
#include "probe.h"

/* Addresses probed per destination. */
#define LEARN_MAX_PROBED 4
/* The policy parser's limits (policy.c). */
#define LEARN_MAX_FILE_SIZE (1024 * 1024)
#define LEARN_MAX_SECTION_NAME 128
/* Characters of COMMAND quoted in OUT. */
#define LEARN_COMMAND_SHOWN 160

/* --- the policy text, line by line --------------------------------------- */

struct text_line {
    const char *p;
    size_t len;   /* without the '\n' */
};

struct policy_text {
    char *buf;
    size_t len;
    struct text_line *lines;   /* lines[i] is line i + 1 of the file */
    size_t n;
};

static void
text_free(struct policy_text *t)
{
    free(t->buf);
    free(t->lines);
    memset(t, 0, sizeof(*t));
}

/* Split as the parser does: at '\n', after a byte order mark. */
static int
text_split(struct policy_text *t)
{
    const char *p = t->buf, *end = t->buf + t->len;
    size_t cap = 0;

    if (t->len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

        if (t->n == cap) {
            struct text_line *grown;

            cap = cap == 0 ? 64 : cap * 2;
            if ((grown = realloc(t->lines, cap * sizeof(*grown))) == NULL)
                return -1;
            t->lines = grown;
        }
        t->lines[t->n].p = p;
        t->lines[t->n++].len = len;
        p += len + (nl != NULL);
    }
    return 0;
}

/* The policy's text: the file it came from, or the embedded default. */
static int
text_read(const struct policy *p, struct policy_text *t)
{
    FILE *in;
    size_t got;

    memset(t, 0, sizeof(*t));
    if (p->embedded) {
        t->len = strlen(policy_default_text);
        if ((t->buf = strdup(policy_default_text)) == NULL)
            goto oom;
    } else {
        if ((in = fopen(p->file, "r")) == NULL) {
            cli_error("cannot read %s: %s", p->file, strerror(errno));
            return -1;
        }
        if ((t->buf = malloc(LEARN_MAX_FILE_SIZE + 1)) == NULL) {
            fclose(in);
            goto oom;
        }
        got = fread(t->buf, 1, LEARN_MAX_FILE_SIZE + 1, in);
        if (ferror(in) || got > LEARN_MAX_FILE_SIZE) {
            cli_error("cannot read %s", p->file);
            fclose(in);
            text_free(t);
            return -1;
        }
        fclose(in);
        t->len = got;
    }
    if (text_split(t) != 0)
        goto oom;
    return 0;
oom:
    cli_error("out of memory");
    text_free(t);
    return -1;
}

static const char *
skip_space(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\r'))
        s++;
    return s;
}

/* A "[name]" line: 1 and the name (trimmed) in name. */
static int
line_header(const struct text_line *l, char *name, size_t len)
{
    const char *end = l->p + l->len, *s = skip_space(l->p, end), *close;
    size_t n;

    if (s == end || *s != '[' ||
        (close = memchr(s, ']', (size_t)(end - s))) == NULL)
        return 0;
    s = skip_space(s + 1, close);
    while (close > s && (close[-1] == ' ' || close[-1] == '\t'))
        close--;
    n = (size_t)(close - s);
    if (n >= len)
        n = len - 1;
    memcpy(name, s, n);
    name[n] = '\0';
    return 1;
}

/* A "key = value" line whose key is key. */
static int
line_has_key(const struct text_line *l, const char *key)
{
    const char *end = l->p + l->len, *s = skip_space(l->p, end);
    size_t n = strlen(key);

    if ((size_t)(end - s) < n || memcmp(s, key, n) != 0)
        return 0;
    s = skip_space(s + n, end);
    return s < end && *s == '=';
}

static int
line_is_comment(const struct text_line *l)
{
    const char *end = l->p + l->len, *s = skip_space(l->p, end);

    return s < end && (*s == '#' || *s == ';');
}

static void
put_line(FILE *out, const struct text_line *l)
{
    fwrite(l->p, 1, l->len, out);
    fputc('\n', out);
}

/* --- audit mode ---------------------------------------------------------- */

/*
 * Whether some client rule names a host without a wildcard: such a rule
 * also matches, after every other rule, the addresses tlsshim's own
 * lookup of the name returns (SPEC section 3), and a catch-all rule
 * would take those connections first.
 */
static int
has_resolved_names(const struct policy *p)
{
    for (size_t i = 0; i < p->nrules; i++) {
        const struct policy_rule *r = &p->rules[i];

        for (size_t j = 0; j < r->npatterns; j++)
            if (r->role == POLICY_ROLE_CLIENT &&
                r->patterns[j].kind == PAT_NAME && !r->patterns[j].wildcard)
                return 1;
    }
    return 0;
}

/*
 * The policy for the audit run: the same text, with [global]
 * default_action and default_listen_action = audit, and catch-all plain
 * rules made audit rules, so that everything plaintext is observed while
 * the rules that decide otherwise keep deciding.  Line numbers after the
 * [global] header shift; nothing else changes.  audit_rule, unless "", is
 * the name of a catch-all audit rule added at the end: it reports the
 * name the program looked up, where default_action reports none.
 */
static void
write_audit_policy(FILE *out, const struct policy_text *t,
                   const struct policy *p, const char *audit_rule)
{
    static const char audit_lines[] = "default_action = audit\n"
                                      "default_listen_action = audit\n";
    char section[LEARN_MAX_SECTION_NAME + 1] = "";
    int have_global = 0;
    size_t i, j;

    for (i = 0; i < t->n; i++)
        if (line_header(&t->lines[i], section, sizeof(section)) &&
            strcmp(section, "global") == 0)
            have_global = 1;
    if (!have_global)
        fprintf(out, "[global]\n%s\n", audit_lines);
    section[0] = '\0';
    for (i = 0; i < t->n; i++) {
        const struct text_line *l = &t->lines[i];
        int lineno = (int)i + 1, done = 0;

        if (line_header(l, section, sizeof(section))) {
            put_line(out, l);
            if (strcmp(section, "global") == 0)
                fputs(audit_lines, out);
            for (j = 0; j < p->nrules; j++) {
                const struct policy_rule *r = &p->rules[j];

                if (r->line == lineno && r->action == POLICY_PLAIN &&
                    r->origin[PK_ACTION] != POLICY_ORIGIN_RULE &&
                    cli_rule_is_catch_all(r))
                    fputs("action = audit\n", out);
            }
            continue;
        }
        if (strcmp(section, "global") == 0 &&
            (line_has_key(l, "default_action") ||
             line_has_key(l, "default_listen_action"))) {
            fputs("# ", out);
            put_line(out, l);
            continue;
        }
        for (j = 0; j < p->nrules && !done; j++) {
            const struct policy_rule *r = &p->rules[j];

            if (r->value_line[PK_ACTION] == lineno &&
                r->action == POLICY_PLAIN &&
                r->origin[PK_ACTION] == POLICY_ORIGIN_RULE &&
                cli_rule_is_catch_all(r)) {
                fputs("action = audit\n", out);
                done = 1;
            }
        }
        if (!done)
            put_line(out, l);
    }
    if (audit_rule[0] != '\0')
        fprintf(out, "\n[%s]\nconnect = *\naction = audit\n", audit_rule);
}

/* --- running COMMAND ----------------------------------------------------- */

static volatile sig_atomic_t child_pid;

/* tlsshim asked to stop passes it on, and writes OUT when COMMAND ends. */
static void
forward_signal(int sig)
{
    if (child_pid > 0)
        kill((pid_t)child_pid, sig);
}

/*
 * Run COMMAND as "tlsshim -f POLICY -r REPORT COMMAND" would, in a child,
 * and wait for it.  *ran is 0 when it could not be started (the status is
 * then tlsshim's, with the message printed).  Returns the exit status.
 */
static int
run_command(const struct cli_options *o, const char *policy_path,
            const char *report_path, int *ran)
{
    struct cli_options run = *o;
    struct sigaction ign, fwd, old_int, old_quit, old_term, old_hup;
    sigset_t stop, old_mask;
    int pipefd[2], wstatus = 0, status;
    unsigned char failed;
    ssize_t n;
    pid_t pid;

    *ran = 0;
    run.mode = CLI_RUN;
    run.mode_flag = NULL;
    run.policy_file = policy_path;
    run.report = report_path;
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        cli_error("pipe: %s", strerror(errno));
        return CLI_EXIT_USAGE;
    }
    /* As system(3): the terminal's interrupt is COMMAND's to handle; and
     * a request to stop is passed on, so that OUT is still written.  Set
     * before the fork, and the requests held until the child's PID is
     * known, so that no signal falls between. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    sigprocmask(SIG_BLOCK, &stop, &old_mask);
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    memset(&fwd, 0, sizeof(fwd));
    fwd.sa_handler = forward_signal;
    sigemptyset(&fwd.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    sigaction(SIGTERM, &fwd, &old_term);
    sigaction(SIGHUP, &fwd, &old_hup);
    fflush(NULL);
    if ((pid = fork()) == 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGHUP, &old_hup, NULL);
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        /* The pipe closes when exec succeeds; a byte says it did not. */
        close(pipefd[0]);
        status = cli_run(&run);
        failed = (unsigned char)status;
        (void)!write(pipefd[1], &failed, 1);
        _exit(status);
    }
    close(pipefd[1]);
    if (pid < 0) {
        cli_error("fork: %s", strerror(errno));
        close(pipefd[0]);
        status = CLI_EXIT_USAGE;
        goto out;
    }
    child_pid = pid;
    sigprocmask(SIG_SETMASK, &old_mask, NULL);

    do
        n = read(pipefd[0], &failed, 1);
    while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
        ;
    child_pid = 0;
    if (n == 1) {
        status = failed;
    } else {
        *ran = 1;
        if (WIFEXITED(wstatus))
            status = WEXITSTATUS(wstatus);
        else if (WIFSIGNALED(wstatus))
            status = 128 + WTERMSIG(wstatus);
        else
            status = CLI_EXIT_USAGE;
    }
out:
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    return status;
}

/* --- proposals ----------------------------------------------------------- */

/* What is known about plaintext protocols: their implicit-TLS port, the
 * plaintext ports it replaces, and their STARTTLS (a starttls value that
 * starttls.c has a client dialogue for). */
static const struct protocol_info {
    const char *proto;
    unsigned tls_port;        /* 0: TLS on the same port, if at all */
    unsigned plain_ports[2];
    const char *tls_name;     /* the TLS port's service name */
    const char *starttls;     /* the starttls value, or NULL */
} protocol_table[] = {
    {"http", 443, {80, 0}, "https", NULL},
    {"smtp", 465, {25, 587}, "smtps", "smtp"},
    {"imap", 993, {143, 0}, "imaps", "imap"},
    {"pop3", 995, {110, 0}, "pop3s", "pop3"},
    {"ldap", 636, {389, 0}, "ldaps", "ldap"},
    {"nntp", 563, {119, 0}, "nntps", "nntp"},
    {"redis", 0, {6379, 0}, NULL, NULL},
    {"ftp", 0, {21, 0}, NULL, "ftp"},
    {"postgres", 0, {5432, 0}, NULL, "postgres"},
    {"mysql", 0, {3306, 0}, NULL, "mysql"},
};

/* The protocol of d: by its first bytes, else by its port. */
static const struct protocol_info *
protocol_of(const struct evidence_dest *d, const struct evidence_kind *kind)
{
    size_t i;

    if (kind != NULL)
        for (i = 0; i < TLSSHIM_NELEMS(protocol_table); i++)
            if (strcmp(kind->proto, protocol_table[i].proto) == 0)
                return &protocol_table[i];
    for (i = 0; i < TLSSHIM_NELEMS(protocol_table); i++)
        if (d->port == protocol_table[i].plain_ports[0] ||
            d->port == protocol_table[i].plain_ports[1])
            return &protocol_table[i];
    return NULL;
}

/* What a proposal proposes; with --probe, the first of TLS on the same
 * port, STARTTLS on the same port, and TLS on the protocol's TLS port
 * that verified at every address (tlsshim(1), --probe). */
enum decision {
    DECIDE_TLS,       /* TLS on the same port */
    DECIDE_STARTTLS,  /* the protocol's STARTTLS on the same port */
    DECIDE_REDIRECT,  /* TLS on the protocol's TLS port */
    DECIDE_PLAIN,     /* no verified TLS found */
};

/* What one probe asked. */
enum probe_kind {
    PROBE_SAME_PORT,  /* TLS on the same port */
    PROBE_STARTTLS,   /* STARTTLS on the same port */
    PROBE_TLS_PORT,   /* TLS on the protocol's TLS port */
};

struct probe_entry {
    struct sockaddr_storage addr;
    enum probe_kind kind;
    struct probe_result res;
};

/* One proposed rule. */
struct proposal {
    const struct evidence_dest *d;
    const struct evidence_kind *kind;
    const struct protocol_info *proto;
    unsigned tls_port;    /* the TLS port to try, 0 for none */
    char name[LEARN_MAX_SECTION_NAME + 1];
    char pattern[1024];   /* the connect value */
    enum decision decision;
    struct probe_entry probes[3 * LEARN_MAX_PROBED];
    size_t nprobes;
};

/* Everything --learn works with. */
struct learn {
    const struct cli_options *o;
    struct policy *policy;        /* the given policy */
    struct policy_text text;
    struct policy *probe_policy;  /* its [defaults] on probe rules */
    const struct policy_rule *probe_rule;   /* action = tls */
    /* the same with starttls = protocol_table[i].starttls, or NULL */
    const struct policy_rule *starttls_rules[TLSSHIM_NELEMS(protocol_table)];
    struct evidence ev;
    struct proposal *props;
    size_t nprops;
    /* server side: the accepted plaintext, one commented-out listen rule
     * each (names[i] for ev.dests[listen_dests[i]]) */
    size_t *listen_dests;
    char (*listen_names)[LEARN_MAX_SECTION_NAME + 1];
    size_t nlisten;
    char audit_rule[LEARN_MAX_SECTION_NAME + 1]; /* "" when none */
    char workdir[PATH_MAX];
    char policy_path[PATH_MAX + 32];
    char report_path[PATH_MAX + 32];
};

static int
section_exists(const struct learn *l, const char *name)
{
    size_t i;

    if (strcmp(name, "global") == 0 || strcmp(name, "defaults") == 0 ||
        strcmp(name, "listen-defaults") == 0)
        return 1;
    for (i = 0; i < l->policy->nrules; i++)
        if (strcmp(l->policy->rules[i].name, name) == 0)
            return 1;
    for (i = 0; i < l->nprops; i++)
        if (strcmp(l->props[i].name, name) == 0)
            return 1;
    for (i = 0; i < l->nlisten; i++)
        if (strcmp(l->listen_names[i], name) == 0)
            return 1;
    return 0;
}

/* "learned-HOST-PORT", made of the characters section names allow, and
 * unlike every other section. */
static void
choose_name(const struct learn *l, struct proposal *pr)
{
    /* room for "-9999" within the parser's limit on names */
    char base[LEARN_MAX_SECTION_NAME - 8], host[256], suffix[16];
    const struct evidence_dest *d = pr->d;
    size_t i, len;

    if (d->name[0] != '\0')
        util_strlcpy(host, d->name, sizeof(host));
    else
        util_ip_str((const struct sockaddr *)&d->first_addr, host,
                    sizeof(host));
    for (i = 0; host[i] != '\0'; i++) {
        char c = host[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || strchr("-_.:@", c) != NULL))
            host[i] = '_';
    }
    snprintf(base, sizeof(base), "learned-%.96s-%u", host, d->port);
    util_strlcpy(pr->name, base, sizeof(pr->name));
    len = strlen(base);
    for (i = 2; section_exists(l, pr->name) && i < 10000; i++) {
        snprintf(suffix, sizeof(suffix), "-%u", (unsigned)i);
        memcpy(pr->name + len, suffix, strlen(suffix) + 1);
    }
}

/* Whether the policy parser takes "connect = value". */
static int
pattern_parses(const char *value)
{
    char text[1200], err[256];
    struct policy *p;
    int n = snprintf(text, sizeof(text), "[x]\nconnect = %s\n", value);

    if (n < 0 || (size_t)n >= sizeof(text) || strpbrk(value, "\n#;\"") != NULL)
        return 0;
    p = policy_parse(text, (size_t)n, "(learn)", err, sizeof(err));
    policy_free(p);
    return p != NULL;
}

/* The connect value: the name the program used, else the addresses. */
static void
choose_pattern(struct proposal *pr)
{
    const struct evidence_dest *d = pr->d;
    char one[INET6_ADDRSTRLEN + 16];
    size_t used = 0;

    if (d->name[0] != '\0') {
        snprintf(pr->pattern, sizeof(pr->pattern), "%s:%u", d->name,
                 d->port);
        if (pattern_parses(pr->pattern))
            return;
    }
    pr->pattern[0] = '\0';
    for (size_t i = 0; i < d->naddrs; i++) {
        util_addr_str((const struct sockaddr *)&d->addrs[i], one,
                      sizeof(one));
        used += (size_t)snprintf(pr->pattern + used,
                                 sizeof(pr->pattern) - used, "%s%s",
                                 used ? " " : "", one);
        if (used >= sizeof(pr->pattern))
            break;
    }
}

static unsigned
tls_port_of(const struct proposal *pr)
{
    if (pr->proto == NULL || pr->proto->tls_port == 0 ||
        pr->proto->tls_port == pr->d->port)
        return 0;
    return pr->proto->tls_port;
}

static int
is_plain_port(const struct proposal *pr)
{
    return pr->proto != NULL && (pr->d->port == pr->proto->plain_ports[0] ||
                                 pr->d->port == pr->proto->plain_ports[1]);
}

/* The probe rules' text: "[NAME]" with action = tls, then one rule of
 * that name with "-starttls-PROTO" for each STARTTLS the table knows. */
static char *
probe_rules_text(const char *name, size_t *len)
{
    char *buf = NULL;
    FILE *out;

    if ((out = open_memstream(&buf, len)) == NULL)
        return NULL;
    fprintf(out, "\n[%s]\nconnect = :1\naction = tls\n", name);
    for (size_t i = 0; i < TLSSHIM_NELEMS(protocol_table); i++)
        if (protocol_table[i].starttls != NULL)
            fprintf(out, "\n[%s-starttls-%s]\nconnect = :1\naction = tls\n"
                         "starttls = %s\n", name, protocol_table[i].starttls,
                    protocol_table[i].starttls);
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static const struct policy_rule *
rule_named(const struct policy *p, const char *name)
{
    for (size_t i = 0; i < p->nrules; i++)
        if (strcmp(p->rules[i].name, name) == 0)
            return &p->rules[i];
    return NULL;
}

/* The rules probes get their settings from: the policy's [defaults] on
 * rules of their own, as each proposed rule will have them; one with
 * action = tls, and one per STARTTLS protocol. */
static int
make_probe_rule(struct learn *l)
{
    char err[512], name[LEARN_MAX_SECTION_NAME - 32], rname[LEARN_MAX_SECTION_NAME + 1];
    char *rules, *text;
    size_t rules_len = 0, len;
    int i;

    util_strlcpy(name, "learn-probe", sizeof(name));
    for (i = 2; section_exists(l, name) && i < 10000; i++)
        snprintf(name, sizeof(name), "learn-probe-%d", i);
    if ((rules = probe_rules_text(name, &rules_len)) == NULL) {
        cli_error("out of memory");
        return -1;
    }
    len = l->text.len + rules_len;
    if ((text = malloc(len + 1)) == NULL) {
        free(rules);
        cli_error("out of memory");
        return -1;
    }
    memcpy(text, l->text.buf, l->text.len);
    memcpy(text + l->text.len, rules, rules_len);
    l->probe_policy = policy_parse(text, len, l->policy->file, err,
                                   sizeof(err));
    free(text);
    if (l->probe_policy == NULL) {
        /* the policy is full: probe with the built-in settings */
        cli_warn("probing with the built-in verification settings: %s", err);
        l->probe_policy = policy_parse(rules, rules_len, "(learn)", err,
                                       sizeof(err));
        if (l->probe_policy == NULL) {
            cli_error("internal error: %s", err);
            free(rules);
            return -1;
        }
    }
    free(rules);
    l->probe_rule = rule_named(l->probe_policy, name);
    for (size_t k = 0; k < TLSSHIM_NELEMS(protocol_table); k++) {
        if (protocol_table[k].starttls == NULL)
            continue;
        snprintf(rname, sizeof(rname), "%s-starttls-%s", name,
                 protocol_table[k].starttls);
        l->starttls_rules[k] = rule_named(l->probe_policy, rname);
    }
    if (l->probe_rule == NULL) {
        cli_error("internal error: no probe rule %s", name);
        return -1;
    }
    return 0;
}

static void
with_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/* The probe rule with pr's STARTTLS, or NULL when it has none. */
static const struct policy_rule *
starttls_rule_of(const struct learn *l, const struct proposal *pr)
{
    if (pr->proto == NULL || pr->proto->starttls == NULL)
        return NULL;
    return l->starttls_rules[pr->proto - protocol_table];
}

/*
 * Ask the addresses the program used (and nothing else) for TLS on the
 * same port, for the protocol's STARTTLS on the same port, and for TLS on
 * the protocol's TLS port; decide for the first of these, in that order,
 * that verified at every address.
 */
static void
probe_proposal(const struct learn *l, struct proposal *pr)
{
    const struct evidence_dest *d = pr->d;
    const struct policy_rule *stls = starttls_rule_of(l, pr);
    const char *name = d->name[0] != '\0' ? d->name : NULL;
    int ok[3] = {1, stls != NULL, pr->tls_port != 0};
    char where[INET6_ADDRSTRLEN + 16];

    for (size_t i = 0; i < d->naddrs && i < LEARN_MAX_PROBED; i++) {
        for (int k = PROBE_SAME_PORT; k <= PROBE_TLS_PORT; k++) {
            const struct policy_rule *r = l->probe_rule;
            struct probe_entry *e;

            if (k == PROBE_STARTTLS && (r = stls) == NULL)
                continue;
            if (k == PROBE_TLS_PORT && pr->tls_port == 0)
                continue;
            e = &pr->probes[pr->nprobes++];
            e->addr = d->addrs[i];
            e->kind = (enum probe_kind)k;
            with_port(&e->addr, k == PROBE_TLS_PORT ? pr->tls_port
                                                    : d->port);
            util_addr_str((const struct sockaddr *)&e->addr, where,
                          sizeof(where));
            fprintf(stderr, "tlsshim: probing %s%s%s\n", where,
                    k == PROBE_STARTTLS ? " with STARTTLS " : "",
                    k == PROBE_STARTTLS ? r->starttls : "");
            probe_tls((const struct sockaddr *)&e->addr, r, name, &e->res);
            if (e->res.verdict != PROBE_VERIFIED)
                ok[k] = 0;
        }
    }
    if (pr->nprobes == 0)
        pr->decision = DECIDE_PLAIN;
    else if (ok[PROBE_SAME_PORT])
        pr->decision = DECIDE_TLS;
    else if (ok[PROBE_STARTTLS])
        pr->decision = DECIDE_STARTTLS;
    else if (ok[PROBE_TLS_PORT])
        pr->decision = DECIDE_REDIRECT;
    else
        pr->decision = DECIDE_PLAIN;
}

/* Whether d, accepted plaintext, gets a listen rule: only where the
 * report names the local address (a listen rule matches nothing else). */
static int
wants_listen_rule(const struct evidence_dest *d)
{
    return d->role == POLICY_ROLE_SERVER && d->plaintext > 0 &&
           d->has_local && d->nlocals > 0;
}

/* "learned-listen-IP-PORT" for the first local address of d. */
static void
choose_listen_name(const struct learn *l, const struct evidence_dest *d,
                   char *name, size_t len)
{
    char ip[INET6_ADDRSTRLEN], base[LEARN_MAX_SECTION_NAME - 8];

    util_ip_str((const struct sockaddr *)&d->locals[0], ip, sizeof(ip));
    for (size_t i = 0; ip[i] != '\0'; i++)
        if (!((ip[i] >= '0' && ip[i] <= '9') || (ip[i] >= 'a' && ip[i] <= 'f') ||
              ip[i] == '.' || ip[i] == ':'))
            ip[i] = '_';
    snprintf(base, sizeof(base), "learned-listen-%s-%u", ip, d->port);
    util_strlcpy(name, base, len);
    for (int i = 2; section_exists(l, name) && i < 10000; i++)
        snprintf(name, len, "%s-%d", base, i);
}

static int
make_listen_proposals(struct learn *l)
{
    size_t i, n = 0;

    for (i = 0; i < l->ev.n; i++)
        n += wants_listen_rule(&l->ev.dests[i]);
    if (n == 0)
        return 0;
    l->listen_dests = calloc(n, sizeof(*l->listen_dests));
    l->listen_names = calloc(n, sizeof(*l->listen_names));
    if (l->listen_dests == NULL || l->listen_names == NULL) {
        cli_error("out of memory");
        return -1;
    }
    for (i = 0; i < l->ev.n; i++) {
        if (!wants_listen_rule(&l->ev.dests[i]))
            continue;
        choose_listen_name(l, &l->ev.dests[i], l->listen_names[l->nlisten],
                           sizeof(l->listen_names[0]));
        l->listen_dests[l->nlisten++] = i;
    }
    return 0;
}

static int
make_proposals(struct learn *l)
{
    size_t i, n = 0;

    for (i = 0; i < l->ev.n; i++)
        if (l->ev.dests[i].role == POLICY_ROLE_CLIENT &&
            l->ev.dests[i].plaintext > 0)
            n++;
    if (n > 0 && (l->props = calloc(n, sizeof(*l->props))) == NULL) {
        cli_error("out of memory");
        return -1;
    }
    if (l->o->probe && n > 0 && make_probe_rule(l) != 0)
        return -1;
    for (i = 0; i < l->ev.n; i++) {
        const struct evidence_dest *d = &l->ev.dests[i];
        struct proposal *pr;

        if (d->role != POLICY_ROLE_CLIENT || d->plaintext == 0)
            continue;
        pr = &l->props[l->nprops];
        pr->d = d;
        pr->kind = evidence_main_kind(d);
        pr->proto = protocol_of(d, pr->kind);
        pr->tls_port = tls_port_of(pr);
        choose_name(l, pr);
        l->nprops++;
        choose_pattern(pr);
        if (l->o->probe)
            probe_proposal(l, pr);
        else if (pr->tls_port != 0 && is_plain_port(pr))
            pr->decision = DECIDE_REDIRECT;
        else
            pr->decision = DECIDE_TLS;
    }
    return make_listen_proposals(l);
}

/* --- writing OUT --------------------------------------------------------- */

/* A comment, kept to printable ASCII and wrapped at 76 columns. */
static void
comment(FILE *out, const char *text)
{
    char safe[2048];
    const char *p = safe;

    evidence_printable(text, strlen(text), safe, sizeof(safe));
    do {
        /* 76 columns with "# " or "#   " in front */
        size_t width = p == safe ? 74 : 72, len = strlen(p), cut = len;

        if (len > width) {
            cut = width;
            while (cut > 20 && p[cut] != ' ')
                cut--;
            if (p[cut] != ' ')
                cut = width;
        }
        fprintf(out, "#%s%.*s\n", p == safe ? " " : "   ", (int)cut, p);
        p += cut;
        while (*p == ' ')
            p++;
    } while (*p != '\0');
}

static void commentf(FILE *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
commentf(FILE *out, const char *fmt, ...)
{
    char text[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    comment(out, text);
}

static const char *
plural(unsigned n)
{
    return n == 1 ? "" : "s";
}

/* Who let the destination through during the audit run. */
static void
write_through(FILE *out, const struct evidence_dest *d)
{
    if (d->rule[0] != '\0')
        commentf(out, "let through by rule %s", d->rule);
    else
        commentf(out, "no rule matched it (%s)",
                 d->role == POLICY_ROLE_SERVER ? "default_listen_action"
                                               : "default_action");
}

static void
write_probes(FILE *out, const struct proposal *pr)
{
    char where[INET6_ADDRSTRLEN + 16], port_label[64];

    for (size_t i = 0; i < pr->nprobes; i++) {
        const struct probe_entry *e = &pr->probes[i];

        util_addr_str((const struct sockaddr *)&e->addr, where,
                      sizeof(where));
        switch (e->kind) {
        case PROBE_SAME_PORT:
            util_strlcpy(port_label, "the same port", sizeof(port_label));
            break;
        case PROBE_STARTTLS:
            snprintf(port_label, sizeof(port_label), "STARTTLS %s on the "
                     "same port", pr->proto->starttls);
            break;
        case PROBE_TLS_PORT:
            snprintf(port_label, sizeof(port_label), "the %s port",
                     pr->proto->tls_name);
            break;
        }
        commentf(out, "probe %s (%s): %s", where, port_label, e->res.why);
    }
}

/* TLS answered somewhere without verifying: say what to fix, and the
 * lines of the first way (in the order of the decision) that answered. */
static void
write_unverified_hint(FILE *out, const struct proposal *pr)
{
    int answered[3] = {0, 0, 0};

    for (size_t i = 0; i < pr->nprobes; i++)
        if (pr->probes[i].res.verdict == PROBE_TLS_FAILED ||
            pr->probes[i].res.verdict == PROBE_VERIFIED)
            answered[pr->probes[i].kind] = 1;
    if (!answered[PROBE_SAME_PORT] && !answered[PROBE_STARTTLS] &&
        !answered[PROBE_TLS_PORT])
        return;
    comment(out, "TLS answered but did not verify everywhere; once it "
                 "verifies (ca_file in [defaults] or here, or the "
                 "fingerprint that tlsshim --fingerprint prints), use:");
    fputs("#   action = tls\n", out);
    if (answered[PROBE_SAME_PORT])
        return;
    if (answered[PROBE_STARTTLS])
        fprintf(out, "#   starttls = %s\n", pr->proto->starttls);
    else
        fprintf(out, "#   redirect = :%u\n", pr->tls_port);
}

static void
write_proposal(FILE *out, const struct proposal *pr, int probed)
{
    const struct evidence_dest *d = pr->d;
    char dest[400], kinds[1024], addrs[512];

    evidence_dest_text(d, dest, sizeof(dest));
    evidence_kinds_text(d, kinds, sizeof(kinds));
    evidence_addrs_text(d, addrs, sizeof(addrs));
    fputc('\n', out);
    commentf(out, "%s: %u connection%s, %u in plaintext: %s", dest,
             d->connections, plural(d->connections), d->plaintext, kinds);
    if (d->name[0] != '\0')
        commentf(out, "the program looked up the name %s (address%s %s)",
                 d->name, d->naddrs == 1 ? "" : "es", addrs);
    else
        commentf(out, "the program connected to the address %s without "
                      "looking up a name", addrs);
    write_through(out, d);
    if (probed) {
        write_probes(out, pr);
    } else {
        comment(out, "not probed: tlsshim --learn --probe checks that TLS "
                     "answers and verifies there");
    }
    switch (pr->decision) {
    case DECIDE_TLS:
        comment(out, probed ? "proposed: TLS on the same port, verified"
                            : "proposed: TLS on the same port");
        break;
    case DECIDE_STARTTLS:
        commentf(out, "proposed: STARTTLS (%s) on the same port, verified; "
                      "tlsshim runs the dialogue and the program starts its "
                      "session afresh over TLS",
                 pr->proto->starttls);
        break;
    case DECIDE_REDIRECT:
        commentf(out, "proposed: TLS on port %u (%s)%s", pr->tls_port,
                 pr->proto->tls_name, probed ? ", verified" : "");
        break;
    case DECIDE_PLAIN:
        comment(out, "proposed: plain, as no verified TLS was found");
        break;
    }
    if (!probed && pr->proto != NULL && pr->proto->starttls != NULL)
        commentf(out, "%s servers often offer STARTTLS on this port "
                      "instead (starttls = %s): tlsshim --learn --probe "
                      "asks for it.",
                 pr->proto->proto, pr->proto->starttls);
    if (pr->proto != NULL && pr->proto->starttls != NULL &&
        pr->decision != DECIDE_PLAIN)
        commentf(out, "A program that upgrades with STARTTLS itself (the "
                      "audit sees only the first bytes) must stay plain "
                      "here.");
    if (pr->decision == DECIDE_PLAIN && probed)
        write_unverified_hint(out, pr);
    fprintf(out, "[%s]\nconnect = %s\n", pr->name, pr->pattern);
    switch (pr->decision) {
    case DECIDE_TLS:
        fputs("action = tls\n", out);
        break;
    case DECIDE_STARTTLS:
        fprintf(out, "action = tls\nstarttls = %s\n", pr->proto->starttls);
        break;
    case DECIDE_REDIRECT:
        fprintf(out, "action = tls\nredirect = :%u\n", pr->tls_port);
        break;
    case DECIDE_PLAIN:
        fputs("action = plain\n", out);
        break;
    }
}

/*
 * A listen rule for plaintext that the program accepted, commented out:
 * tlsshim cannot know the certificate and key the server should offer,
 * and enabling it makes every client of the address speak TLS, which the
 * operator has to arrange first.  A rule with a made-up certificate, or
 * cert_file = auto (meant for test harnesses), would break those clients
 * or teach them to trust a certificate nobody chose.
 */
static void
write_listen_proposal(FILE *out, const struct evidence_dest *d,
                      const char *name)
{
    char dest[600], kinds[1024], addrs[512], locals[700];

    evidence_dest_text(d, dest, sizeof(dest));
    evidence_kinds_text(d, kinds, sizeof(kinds));
    evidence_addrs_text(d, addrs, sizeof(addrs));
    evidence_locals_text(d, locals, sizeof(locals));
    fputc('\n', out);
    commentf(out, "%s: %u connection%s, %u in plaintext: %s", dest,
             d->connections, plural(d->connections), d->plaintext, kinds);
    commentf(out, "from %s%s", addrs, d->more_addrs ? " and more" : "");
    write_through(out, d);
    comment(out, "proposed, commented out: TLS on the program's listening "
                 "address. tlsshim cannot know the certificate and key this "
                 "server should offer, and once the rule is on, every "
                 "client of this address must speak TLS (itself, or under "
                 "tlsshim with a client rule). Set cert_file and key_file "
                 "(PEM, DER or PKCS#12; the key readable by the program's "
                 "user only), then remove the '#' before each line of the "
                 "rule.");
    fprintf(out, "#[%s]\n#listen = %s\n#action = tls\n"
                 "#cert_file = /path/to/certificate.pem\n"
                 "#key_file = /path/to/private-key.pem\n", name, locals);
}

/* Why connections without plaintext need no rule, from their kinds. */
static void
no_plaintext_reason(const struct evidence_dest *d, char *buf, size_t len)
{
    static const struct {
        const char *proto, *why;
    } reasons[] = {
        {"tls", "the program's own TLS"},
        {"ssh", "SSH encrypts by itself"},
        {"none", "closed before any byte"},
    };
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < TLSSHIM_NELEMS(reasons); i++)
        for (size_t j = 0; j < d->nkinds; j++)
            if (strcmp(d->kinds[j].proto, reasons[i].proto) == 0) {
                used += (size_t)snprintf(buf + used, len - used, "%s%s",
                                         used ? "; " : "", reasons[i].why);
                if (used >= len)
                    return;
                break;
            }
}

/* What was seen and needs no rule, or cannot get one. */
static void
write_not_proposed(FILE *out, const struct learn *l)
{
    char dest[400], kinds[1024], addrs[512], why[128];
    int header = 0;

    for (size_t i = 0; i < l->ev.n; i++) {
        const struct evidence_dest *d = &l->ev.dests[i];

        if ((d->role == POLICY_ROLE_CLIENT && d->plaintext > 0) ||
            wants_listen_rule(d))
            continue;
        if (!header) {
            fputs("\n", out);
            comment(out, "Seen, but no rule proposed:");
            header = 1;
        }
        evidence_dest_text(d, dest, sizeof(dest));
        evidence_kinds_text(d, kinds, sizeof(kinds));
        evidence_addrs_text(d, addrs, sizeof(addrs));
        if (d->role == POLICY_ROLE_SERVER && d->plaintext > 0) {
            /* a report without local (an older tlsshim's) */
            commentf(out, "- accepted connections (%s%s): %u connection%s, "
                          "%u in plaintext: %s, from %s. The report does "
                          "not record the local address, so no listen rule "
                          "is proposed: add one by hand (listen = "
                          "ADDRESS:PORT, cert_file, key_file).",
                     d->rule[0] != '\0' ? "rule " : "default_listen_action",
                     d->rule, d->connections, plural(d->connections),
                     d->plaintext, kinds, addrs);
        } else if (d->role == POLICY_ROLE_SERVER) {
            no_plaintext_reason(d, why, sizeof(why));
            commentf(out, "- %s: %u connection%s, none in plaintext: %s "
                          "(%s)",
                     dest, d->connections, plural(d->connections), kinds,
                     why);
        } else {
            no_plaintext_reason(d, why, sizeof(why));
            commentf(out, "- %s: %u connection%s, none in plaintext: %s (%s)",
                     dest, d->connections, plural(d->connections), kinds,
                     why);
        }
    }
}

/* The command line, for the header. */
static void
command_text(const struct cli_options *o, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (int i = 0; i < o->nargs && used + 1 < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s",
                                 i ? " " : "", o->args[i]);
    if (strlen(buf) > LEARN_COMMAND_SHOWN)
        memcpy(buf + LEARN_COMMAND_SHOWN - 3, "...", 4);
}

static void
write_block(FILE *out, const struct learn *l)
{
    char cmd[1024];

    command_text(l->o, cmd, sizeof(cmd));
    commentf(out, "Proposed by tlsshim --learn%s from %lu connection%s "
                  "observed in audit mode, running: %s",
             l->o->probe ? " --probe" : "", l->ev.audited,
             plural((unsigned)l->ev.audited), cmd);
    if (l->nprops > 0)
        comment(out, "Each rule matches one destination the program reached "
                     "in plaintext; the comments above it are the evidence. "
                     "Review them, then check the file with tlsshim --check "
                     "-f FILE.");
    else if (l->nlisten == 0)
        comment(out, "No destination was reached in plaintext: no rule is "
                     "proposed.");
    if (l->nlisten > 0)
        comment(out, "The program accepted connections in plaintext: the "
                     "listen rules for them are written commented out, "
                     "to be completed and enabled by hand.");
    if (l->audit_rule[0] == '\0')
        comment(out, "The policy has rules that name hosts, which tlsshim "
                     "also matches by its own lookup of the name, so the "
                     "audit run used default_action = audit: that records "
                     "no name, and destinations no rule matched are "
                     "proposed by address.");
    for (size_t i = 0; i < l->nprops; i++)
        write_proposal(out, &l->props[i], l->o->probe);
    for (size_t i = 0; i < l->nlisten; i++)
        write_listen_proposal(out, &l->ev.dests[l->listen_dests[i]],
                              l->listen_names[i]);
    write_not_proposed(out, l);
    fputs("\n", out);
    comment(out, "End of the rules proposed by tlsshim --learn.");
}

/*
 * Where the block goes: before the first rule that let a proposed
 * destination or accepted connection through (the audit run matched it
 * there) and before the first catch-all rule (of listen rules only when
 * a listen rule is proposed), with the comment lines right above that
 * rule; else at the end.  Returns a line index (0-based) or t->n.
 */
static size_t
insertion_index(const struct learn *l)
{
    const struct policy *p = l->policy;
    int best = 0;
    size_t i, j, idx;

    for (i = 0; i < p->nrules; i++) {
        const struct policy_rule *r = &p->rules[i];
        int hit = cli_rule_is_catch_all(r) &&
                  (r->role == POLICY_ROLE_CLIENT || l->nlisten > 0);

        for (j = 0; j < l->nprops && !hit; j++)
            hit = strcmp(l->props[j].d->rule, r->name) == 0;
        /* the listen rules, once enabled, must come first too */
        for (j = 0; j < l->nlisten && !hit; j++)
            hit = strcmp(l->ev.dests[l->listen_dests[j]].rule, r->name) == 0;
        if (hit && (best == 0 || r->line < best))
            best = r->line;
    }
    if (best == 0 || (size_t)best > l->text.n)
        return l->text.n;
    idx = (size_t)best - 1;
    while (idx > 0 && line_is_comment(&l->text.lines[idx - 1]))
        idx--;
    return idx;
}

/* OUT's text into a malloc'ed buffer. */
static char *
build_output(const struct learn *l, size_t *len)
{
    size_t at = insertion_index(l), i;
    char *buf = NULL;
    FILE *out;

    if ((out = open_memstream(&buf, len)) == NULL)
        return NULL;
    for (i = 0; i < at; i++)
        put_line(out, &l->text.lines[i]);
    if (at > 0 && l->text.lines[at - 1].len > 0)
        fputc('\n', out);
    write_block(out, l);
    if (at < l->text.n)
        fputc('\n', out);
    for (i = at; i < l->text.n; i++)
        put_line(out, &l->text.lines[i]);
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* OUT must load, and each proposed rule must be the one its destination
 * gets. */
static int
check_output(const struct learn *l, const char *text, size_t len)
{
    char err[1024];
    struct policy *p;

    if ((p = policy_parse(text, len, l->o->learn_out, err, sizeof(err))) ==
        NULL) {
        cli_error("internal error: the proposed policy does not load: %s",
                  err);
        return -1;
    }
    for (size_t i = 0; i < l->nprops; i++) {
        const struct proposal *pr = &l->props[i];
        const struct evidence_dest *d = pr->d;
        const struct policy_rule *r;

        if (d->naddrs == 0)
            continue;
        r = policy_match_connect(p, (const struct sockaddr *)&d->addrs[0],
                                 d->name[0] != '\0' ? d->name : NULL, NULL,
                                 NULL, NULL);
        if (r == NULL || strcmp(r->name, pr->name) != 0)
            cli_warn("%s: rule %s does not take effect: %s matches first",
                     l->o->learn_out, pr->name,
                     r != NULL ? r->name : "no rule");
    }
    policy_free(p);
    return 0;
}

/* The directory part of path, into dir. */
static void
dir_of(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        util_strlcpy(dir, ".", len);
    else if (slash == path)
        util_strlcpy(dir, "/", len);
    else
        snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

/* Refuse an OUT that cannot be written, before COMMAND runs. */
static int
check_output_path(const char *path)
{
    char dir[PATH_MAX];
    struct stat st;

    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        cli_error("%s: not a regular file", path);
        return -1;
    }
    dir_of(path, dir, sizeof(dir));
    if (access(dir, W_OK | X_OK) != 0) {
        cli_error("cannot write to %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Write OUT whole or not at all: a temporary file beside it, renamed.
 * Readable by all and writable by the owner only, as tlsshim requires of
 * a policy file. */
static int
write_output(const char *path, const char *text, size_t len)
{
    char tmp[PATH_MAX + 16];
    mode_t mask = umask(077);
    size_t off = 0;
    int fd, rv = -1;

    umask(mask);
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >=
        sizeof(tmp)) {
        cli_error("%s: path too long", path);
        return -1;
    }
    if ((fd = mkstemp(tmp)) < 0) {
        cli_error("cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            cli_error("cannot write %s: %s", tmp, strerror(errno));
            goto out;
        }
        off += (size_t)n;
    }
    if (fchmod(fd, 0644 & ~mask & ~022) != 0 || fsync(fd) != 0) {
        cli_error("cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        cli_error("cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        cli_error("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    rv = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rv != 0)
        unlink(tmp);
    return rv;
}

/* --- the run's own files ------------------------------------------------- */

/* The audit policy's text, checked: with the catch-all audit rule where
 * it changes no decision, else without it. */
static char *
audit_policy_text(struct learn *l, size_t *len)
{
    char *buf = NULL, err[512];
    struct policy *check;
    FILE *out;

    l->audit_rule[0] = '\0';
    if (!has_resolved_names(l->policy)) {
        util_strlcpy(l->audit_rule, "tlsshim-learn-audit",
                     sizeof(l->audit_rule));
        for (int i = 2; section_exists(l, l->audit_rule) && i < 10000; i++)
            snprintf(l->audit_rule, sizeof(l->audit_rule),
                     "tlsshim-learn-audit-%d", i);
    }
    for (;;) {
        if ((out = open_memstream(&buf, len)) == NULL)
            return NULL;
        write_audit_policy(out, &l->text, l->policy, l->audit_rule);
        if (fclose(out) != 0) {
            free(buf);
            return NULL;
        }
        check = policy_parse(buf, *len, l->policy->file, err, sizeof(err));
        if (check != NULL) {
            policy_free(check);
            return buf;
        }
        free(buf);
        buf = NULL;
        if (l->audit_rule[0] == '\0') {
            cli_error("internal error: the audit policy does not load: %s",
                      err);
            return NULL;
        }
        /* [defaults] that an audit rule cannot take: go without it */
        l->audit_rule[0] = '\0';
    }
}

static int
write_file(const char *path, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    size_t off = 0;

    if (fd < 0) {
        cli_error("cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            cli_error("cannot write %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    if (close(fd) != 0) {
        cli_error("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int
make_workdir(struct learn *l)
{
    const char *tmp = getenv("TMPDIR");
    char *text;
    size_t len = 0;
    int rv;

    if (tmp == NULL || tmp[0] != '/')
        tmp = "/tmp";
    snprintf(l->workdir, sizeof(l->workdir), "%s/tlsshim-learn.XXXXXX", tmp);
    if (mkdtemp(l->workdir) == NULL) {
        cli_error("cannot create a directory in %s: %s", tmp,
                  strerror(errno));
        l->workdir[0] = '\0';
        return -1;
    }
    snprintf(l->policy_path, sizeof(l->policy_path), "%s/policy.conf",
             l->workdir);
    snprintf(l->report_path, sizeof(l->report_path), "%s/report.jsonl",
             l->workdir);
    if ((text = audit_policy_text(l, &len)) == NULL)
        return -1;
    rv = write_file(l->policy_path, text, len);
    free(text);
    if (rv == 0)
        rv = write_file(l->report_path, "", 0);
    return rv;
}

static void
remove_workdir(struct learn *l)
{
    if (l->workdir[0] == '\0')
        return;
    unlink(l->policy_path);
    unlink(l->report_path);
    if (rmdir(l->workdir) != 0)
        cli_warn("cannot remove %s: %s", l->workdir, strerror(errno));
}

static void
summarise(const struct learn *l)
{
    size_t tls = 0, plain = 0;
    char listen[96] = "";

    for (size_t i = 0; i < l->nprops; i++) {
        if (l->props[i].decision == DECIDE_PLAIN)
            plain++;
        else
            tls++;
    }
    if (l->nlisten > 0)
        snprintf(listen, sizeof(listen), " and %zu listen rule%s to "
                 "complete (commented out)", l->nlisten,
                 l->nlisten == 1 ? "" : "s");
    fprintf(stderr, "tlsshim: %s: %zu rule%s proposed (%zu tls, %zu plain)%s "
            "from %lu connection%s\n", l->o->learn_out, l->nprops,
            l->nprops == 1 ? "" : "s", tls, plain, listen, l->ev.audited,
            l->ev.audited == 1 ? "" : "s");
}

int
cli_learn(const struct cli_options *o)
{
    struct learn l;
    char *out = NULL;
    size_t out_len = 0;
    int status = CLI_EXIT_USAGE, ran = 0;

    memset(&l, 0, sizeof(l));
    l.o = o;
    if (check_output_path(o->learn_out) != 0)
        return CLI_EXIT_USAGE;
    if ((l.policy = cli_load_policy(o)) == NULL)
        return CLI_EXIT_USAGE;
    if (text_read(l.policy, &l.text) != 0 || make_workdir(&l) != 0)
        goto out;

    status = run_command(o, l.policy_path, l.report_path, &ran);
    if (!ran)
        goto out;   /* nothing ran: no evidence, no OUT */

    if (evidence_read(l.report_path, &l.ev) != 0)
        goto not_written;
    /* the catch-all audit rule stands for default_action */
    for (size_t i = 0; i < l.ev.n; i++)
        if (l.audit_rule[0] != '\0' &&
            strcmp(l.ev.dests[i].rule, l.audit_rule) == 0)
            l.ev.dests[i].rule[0] = '\0';
    if (make_proposals(&l) != 0)
        goto not_written;
    if ((out = build_output(&l, &out_len)) == NULL) {
        cli_error("out of memory");
        goto not_written;
    }
    if (check_output(&l, out, out_len) != 0 ||
        write_output(o->learn_out, out, out_len) != 0)
        goto not_written;
    summarise(&l);
    goto out;
not_written:
    /* COMMAND ran, but what it taught is lost: that is an error. */
    cli_error("%s not written", o->learn_out);
    status = CLI_EXIT_USAGE;
out:
    free(out);
    remove_workdir(&l);
    evidence_free(&l.ev);
    free(l.props);
    free(l.listen_dests);
    free(l.listen_names);
    policy_free(l.probe_policy);
    policy_free(l.policy);
    text_free(&l.text);
    return status;
}
