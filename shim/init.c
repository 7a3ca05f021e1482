/*
 * Module start: resolve the real symbols and load the policy.  Nothing is
 * started here: no threads and no OpenSSL until the first socket a rule
 * matches (DESIGN.md).  Environment variables are ignored in
 * secure-execution mode, where only the system policy is read.
 */
#include "config.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "context.h"
#include "log.h"
#include "report.h"
#include "owner.h"
#include "shim.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static struct policy *policy;
static char policy_error[512];
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static const char *
env(const char *name)
{
    if (getauxval(AT_SECURE))
        return NULL;
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : NULL;
}

static void
load(void)
{
    const char *path = env("TLSSHIM_CONF");
    const char *sys_path = TLSSHIM_SYSCONFDIR "/tlsshim.conf";
    const char *dbg = env("TLSSHIM_DEBUG");
    const char *target = env("TLSSHIM_LOG");
    long level = -1;
    char err[512];

    real_init();
    if (dbg != NULL && util_parse_int(dbg, 0, 3, &level) < 0)
        level = -1;
    if (path == NULL && access(sys_path, F_OK) == 0)
        path = sys_path;
    policy = policy_load(path, 1, err, sizeof(err));
    if (policy == NULL) {
        snprintf(policy_error, sizeof(policy_error), "%s", err);
        (void)log_configure(level >= 0 ? (int)level : 0, target);
        log_error("policy not loaded, refusing TCP connections: %s", err);
        return;
    }
    if (level < 0)
        level = policy->global.debug >= 0 ? policy->global.debug : 0;
    if (target == NULL)
        target = policy->global.log;
    if (log_configure((int)level, target) < 0) {
        (void)log_configure((int)level, NULL);
        log_error("cannot open log %s; logging to stderr", target);
    }
    log_flow("policy %s loaded: %zu rules", policy->file, policy->nrules);
    /* SSLKEYLOGFILE only where the policy allows it, and env() ignores it
     * in secure-execution mode (SPEC section 2) */
    const char *keylog = env("SSLKEYLOGFILE");
    if (policy->global.keylog && keylog != NULL) {
        if (context_set_keylog(keylog) < 0)
            log_error("cannot open SSLKEYLOGFILE %s: %s", keylog,
                      strerror(errno));
        else
            log_warn("keylog = yes: TLS session keys are written to %s",
                     keylog);
    }
    const char *report = env("TLSSHIM_REPORT");
    if (report == NULL)
        report = policy->global.report;
    if (report != NULL &&
        report_configure(report, policy->global.report_open) < 0)
        log_error("cannot open the report %s: %s; no report is written",
                  report, strerror(errno));
}

void
shim_init(void)
{
    pthread_once(&init_once, load);
}

const struct policy *
shim_policy(void)
{
    shim_init();
    return policy;
}

const char *
shim_policy_error(void)
{
    return policy_error;
}

static void
at_exit(void)
{
    conn_exit_all();
}

static void
register_exit(void)
{
    /* OpenSSL registers its cleanup with atexit when it initialises;
     * handlers run in reverse order, so ours, registered after, runs
     * first and can still send close_notify. */
    if (context_init() == 0)
        atexit(at_exit);
}

void
shim_register_exit(void)
{
    pthread_once(&exit_once, register_exit);
}

int
shim_is_inet_stream(int fd)
{
    int type = 0;
    socklen_t len = sizeof(type);
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);

    if (real.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
        type != SOCK_STREAM)
        return 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &slen) < 0)
        return 0;
    return ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
}

__thread int shim_forking_relay __attribute__((tls_model("initial-exec")));

static void
before_fork(void)
{
    /* The relay's own fork keeps the owner: the connection is being
     * handed over, not left for whoever comes first. */
    if (!shim_forking_relay)
        conn_before_fork();
}

static void
after_fork_child(void)
{
    owner_after_fork_child();
}

__attribute__((constructor)) static void
shim_constructor(void)
{
    shim_init();
    pthread_atfork(before_fork, NULL, after_fork_child);
}
