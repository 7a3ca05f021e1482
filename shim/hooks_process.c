/*
 * Process hooks: the ways a connection leaves the calls tlsshim sees
 * (SPEC section 9).  Before exec, system(), popen() and posix_spawn(),
 * every connection the new image would inherit is handed to a relay; the
 * new image's environment gets LD_PRELOAD and the TLSSHIM_ variables back
 * if the program dropped them; and an image the shim cannot cover is
 * refused, warned about or allowed as [global] uncovered says.  fdopen()
 * streams go through a relay too; dprintf() is formatted here and written
 * through the engine.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "conn.h"
#include "inspect.h"
#include "log.h"
#include "relay.h"
#include "enforce.h"
#include "shim.h"

extern char **environ;

typedef int (*spawn_fn)(pid_t *, const char *,
                        const posix_spawn_file_actions_t *,
                        const posix_spawnattr_t *, char *const[],
                        char *const[]);

static struct {
    int (*execve)(const char *, char *const[], char *const[]);
    int (*execvpe)(const char *, char *const[], char *const[]);
    int (*fexecve)(int, char *const[], char *const[]);
    int (*execveat)(int, const char *, char *const[], char *const[], int);
    spawn_fn posix_spawn, posix_spawnp;
    int (*system)(const char *);
    FILE *(*popen)(const char *, const char *);
    FILE *(*fdopen)(int, const char *);
    int (*vdprintf)(int, const char *, va_list);
} preal;

static pthread_once_t preal_once = PTHREAD_ONCE_INIT;

/* What children get back when they lost it: libtlsshim.so, and
 * libtlsshim-enforce.so when the policy has enforce rules. */
static char self_path[PATH_MAX];
static char enforce_path[PATH_MAX];
/* is_path: a file name, made absolute for a child that runs elsewhere */
static const struct {
    const char *name;
    int is_path;
} kept_vars[] = {
    {"TLSSHIM_CONF", 1}, {"TLSSHIM_DEBUG", 0}, {"TLSSHIM_LOG", 1},
    {"TLSSHIM_REPORT", 1},
#ifdef TLSSHIM_SANITIZER_RUNTIME
    /* a sanitizer build (configure --enable-sanitizers): the module runs
     * only after its runtime (runtime_path), and a child's reports go
     * where its parent's do */
    {"ASAN_OPTIONS", 0}, {"UBSAN_OPTIONS", 0}, {"LSAN_OPTIONS", 0},
    {"TSAN_OPTIONS", 0},
#endif
};
static char *kept_values[TLSSHIM_NELEMS(kept_vars)];
/* A sanitizer build's runtime when this process was started with it in
 * LD_PRELOAD; put back before the module (a program that runs without it,
 * as .ci/sanitize runs some, keeps running without it). */
static char runtime_path[PATH_MAX];

/* The enforce module loaded with us, else the one beside us when the
 * policy has enforce rules (a child must keep verifying what we do). */
static void
find_enforce_module(void)
{
    const struct policy *p = shim_policy();
    void *sym = dlsym(RTLD_DEFAULT, TLSSHIM_ENFORCE_SYMBOL);
    Dl_info info;
    char *slash;

    if (sym != NULL && dladdr(sym, &info) && info.dli_fname != NULL) {
        if (realpath(info.dli_fname, enforce_path) == NULL)
            util_strlcpy(enforce_path, info.dli_fname, sizeof(enforce_path));
        return;
    }
    if (p == NULL || !p->has_enforce || self_path[0] == '\0' ||
        (slash = strrchr(self_path, '/')) == NULL)
        return;
    snprintf(enforce_path, sizeof(enforce_path), "%.*s/%s",
             (int)(slash - self_path), self_path, TLSSHIM_ENFORCE_LIBRARY);
    if (access(enforce_path, R_OK) != 0)
        enforce_path[0] = '\0';
}

static int has_token(const char *list, const char *tok);

static void
preal_init(void)
{
    Dl_info info;

    real_init();
    *(void **)&preal.execve = dlsym(RTLD_NEXT, "execve");
    *(void **)&preal.execvpe = dlsym(RTLD_NEXT, "execvpe");
    *(void **)&preal.fexecve = dlsym(RTLD_NEXT, "fexecve");
    *(void **)&preal.execveat = dlsym(RTLD_NEXT, "execveat");
    /* the current versions; callers of the 2.2.5 ones get them too */
    *(void **)&preal.posix_spawn = dlvsym(RTLD_NEXT, "posix_spawn", "GLIBC_2.15");
    *(void **)&preal.posix_spawnp = dlvsym(RTLD_NEXT, "posix_spawnp", "GLIBC_2.15");
    if (preal.posix_spawn == NULL)
        *(void **)&preal.posix_spawn = dlsym(RTLD_NEXT, "posix_spawn");
    if (preal.posix_spawnp == NULL)
        *(void **)&preal.posix_spawnp = dlsym(RTLD_NEXT, "posix_spawnp");
    *(void **)&preal.system = dlsym(RTLD_NEXT, "system");
    *(void **)&preal.popen = dlsym(RTLD_NEXT, "popen");
    *(void **)&preal.fdopen = dlsym(RTLD_NEXT, "fdopen");
    *(void **)&preal.vdprintf = dlsym(RTLD_NEXT, "vdprintf");

    if (dladdr((void *)preal_init, &info) && info.dli_fname != NULL &&
        realpath(info.dli_fname, self_path) == NULL)
        util_strlcpy(self_path, info.dli_fname, sizeof(self_path));
    find_enforce_module();
#ifdef TLSSHIM_SANITIZER_RUNTIME
    {
        const char *pre = getenv("LD_PRELOAD");
        if (pre != NULL && has_token(pre, TLSSHIM_SANITIZER_RUNTIME))
            util_strlcpy(runtime_path, TLSSHIM_SANITIZER_RUNTIME,
                         sizeof(runtime_path));
    }
#endif
    if (getauxval(AT_SECURE))
        return;
    for (size_t i = 0; i < TLSSHIM_NELEMS(kept_vars); i++) {
        const char *v = getenv(kept_vars[i].name);
        char abs[PATH_MAX];
        if (v == NULL || *v == '\0')
            continue;
        /* a relative policy or log path must still name the same file in
         * a child that runs elsewhere */
        if (kept_vars[i].is_path && v[0] != '/' && strcmp(v, "stderr") != 0 &&
            strcmp(v, "syslog") != 0 && realpath(v, abs) != NULL)
            v = abs;
        size_t n = strlen(kept_vars[i].name) + strlen(v) + 2;
        if ((kept_values[i] = malloc(n)) != NULL)
            snprintf(kept_values[i], n, "%s=%s", kept_vars[i].name, v);
    }
}

/* Called from the constructor, so that the environment is read before
 * the program changes it. */
__attribute__((constructor)) static void
process_constructor(void)
{
    pthread_once(&preal_once, preal_init);
    /* cache our pid now: a vfork child must never be the first to ask
     * (shim_in_vfork_child compares against it) */
    (void)owner_self();
}

static void
ensure(void)
{
    pthread_once(&preal_once, preal_init);
}

static int
has_token(const char *list, const char *tok)
{
    size_t n = strlen(tok);

    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, ": ");
        if (len == n && strncmp(p, tok, n) == 0)
            return 1;
        p += len;
        p += strspn(p, ": ");
    }
    return 0;
}

static const char *
env_find(char *const envp[], const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++)
        if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
            return envp[i];
    return NULL;
}

/*
 * envp with LD_PRELOAD and the TLSSHIM_ variables put back where the
 * program dropped them (SPEC section 9), or NULL when nothing is missing.
 * The new array is leaked when exec succeeds and freed when it fails.
 */
static char **
env_fixed(char *const envp[], char **extra_alloc)
{
    const char *pre = env_find(envp, "LD_PRELOAD");
    char *add[TLSSHIM_NELEMS(kept_vars) + 1];
    int nadd = 0, replace_pre = 0;
    size_t n = 0;

    *extra_alloc = NULL;
    const char *old = pre != NULL ? pre + 11 : "";
    int need_self = self_path[0] != '\0' && !has_token(old, self_path);
    int need_enforce = enforce_path[0] != '\0' &&
                       !has_token(old, enforce_path);
    int need_runtime = need_self && runtime_path[0] != '\0' &&
                       !has_token(old, runtime_path);
    if (need_self || need_enforce) {
        const char *parts[4];
        int np = 0;
        if (need_runtime)
            parts[np++] = runtime_path;
        if (old[0] != '\0')
            parts[np++] = old;
        if (need_self)
            parts[np++] = self_path;
        if (need_enforce)
            parts[np++] = enforce_path;
        size_t len = 12 + strlen(old) + strlen(self_path) +
                     strlen(enforce_path) + strlen(runtime_path) + 3;
        char *v = malloc(len);
        if (v == NULL)
            return NULL;
        size_t off = (size_t)snprintf(v, len, "LD_PRELOAD=");
        for (int i = 0; i < np; i++)
            off += (size_t)snprintf(v + off, len - off, "%s%s",
                                    i > 0 ? ":" : "", parts[i]);
        *extra_alloc = v;
        add[nadd++] = v;
        replace_pre = pre != NULL;
    }
    for (size_t i = 0; i < TLSSHIM_NELEMS(kept_vars); i++)
        if (kept_values[i] != NULL && env_find(envp, kept_vars[i].name) == NULL)
            add[nadd++] = kept_values[i];
    if (nadd == 0)
        return NULL;
    while (envp != NULL && envp[n] != NULL)
        n++;
    char **out = malloc((n + (size_t)nadd + 1) * sizeof(char *));
    if (out == NULL) {
        free(*extra_alloc);
        *extra_alloc = NULL;
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!(replace_pre && envp[i] == pre))
            out[k++] = envp[i];
    for (int i = 0; i < nadd; i++)
        out[k++] = add[i];
    out[k] = NULL;
    return out;
}

/*
 * Judge the image about to run (SPEC section 9).  Returns 0 to go on, -1
 * with errno = EACCES to refuse.
 */
static int
check_image(const char *file, int search, char *const envp[])
{
    const struct policy *p = shim_policy();
    const char *path_var = env_find(envp, "PATH");
    char path[PATH_MAX], reason[256];

    if (p == NULL || p->global.uncovered == POLICY_UNCOVERED_ALLOW ||
        file == NULL)
        return 0;
    if (path_var != NULL)
        path_var += 5;
    if (search && strchr(file, '/') == NULL) {
        if (inspect_find_command(file, path_var, path, sizeof(path)) != 0)
            return 0;   /* exec will report it */
    } else {
        util_strlcpy(path, file, sizeof(path));
    }
    if (inspect_command_path(path, path_var, reason, sizeof(reason)) !=
        INSPECT_UNCOVERED)
        return 0;
    if (p->global.uncovered == POLICY_UNCOVERED_REFUSE) {
        log_error("exec %s refused: tlsshim cannot cover it: %s "
                  "(uncovered = refuse)", path, reason);
        errno = EACCES;
        return -1;
    }
    log_warn("exec %s: tlsshim cannot cover it: %s; its connections are "
             "not secured (uncovered = warn)", path, reason);
    return 0;
}

/* Everything a new image needs before it starts. */
static int
before_exec(const char *file, int search, char *const envp[])
{
    ensure();
    if (check_image(file, search, envp) < 0)
        return -1;
    relay_escape_inherited();
    return 0;
}

static int
run_execve(const char *path, char *const argv[], char *const envp[],
           int search)
{
    char *extra, **fixed;
    int rv, e;

    if (before_exec(path, search, envp) < 0)
        return -1;
    fixed = env_fixed(envp, &extra);
    if (search)
        rv = preal.execvpe(path, argv, fixed ? fixed : envp);
    else
        rv = preal.execve(path, argv, fixed ? fixed : envp);
    e = errno;
    free(fixed);
    free(extra);
    errno = e;
    return rv;
}

HOOK int
execve(const char *path, char *const argv[], char *const envp[])
{
    return run_execve(path, argv, envp, 0);
}

HOOK int
execv(const char *path, char *const argv[])
{
    return run_execve(path, argv, environ, 0);
}

HOOK int
execvp(const char *file, char *const argv[])
{
    return run_execve(file, argv, environ, 1);
}

HOOK int
execvpe(const char *file, char *const argv[], char *const envp[])
{
    return run_execve(file, argv, envp, 1);
}

/* execl and friends: collect the arguments, then as execv*. */
/* The arguments of an execl-style call up to its NULL; ap is taken by
 * pointer so that execle can read the envp that follows. */
static char **
collect_args(const char *arg0, va_list *ap)
{
    va_list cnt;
    size_t n = 1;
    char **argv;

    va_copy(cnt, *ap);
    if (arg0 != NULL)
        while (va_arg(cnt, char *) != NULL)
            n++;
    va_end(cnt);
    argv = malloc((n + 1) * sizeof(char *));
    if (argv == NULL)
        return NULL;
    argv[0] = (char *)arg0;
    for (size_t i = 1; arg0 != NULL && i < n; i++)
        argv[i] = va_arg(*ap, char *);
    argv[arg0 != NULL ? n : 0] = NULL;
    if (arg0 != NULL)
        (void)va_arg(*ap, char *);   /* the terminating NULL */
    return argv;
}

/* run_execve() on collected arguments, which it frees if exec fails. */
static int
run_collected(const char *path, char **argv, char *const envp[], int search)
{
    int rv, e;

    if (argv == NULL) {
        errno = ENOMEM;
        return -1;
    }
    rv = run_execve(path, argv, envp, search);
    e = errno;
    free(argv);
    errno = e;
    return rv;
}

HOOK int
execl(const char *path, const char *arg0, ...)
{
    va_list ap;
    char **argv;

    va_start(ap, arg0);
    argv = collect_args(arg0, &ap);
    va_end(ap);
    return run_collected(path, argv, environ, 0);
}

HOOK int
execlp(const char *file, const char *arg0, ...)
{
    va_list ap;
    char **argv;

    va_start(ap, arg0);
    argv = collect_args(arg0, &ap);
    va_end(ap);
    return run_collected(file, argv, environ, 1);
}

HOOK int
execle(const char *path, const char *arg0, ...)
{
    va_list ap;
    char **argv, **envp;

    va_start(ap, arg0);
    argv = collect_args(arg0, &ap);
    envp = va_arg(ap, char **);
    va_end(ap);
    return run_collected(path, argv, envp, 0);
}

HOOK int
fexecve(int fd, char *const argv[], char *const envp[])
{
    char path[64], *extra, **fixed;
    int rv, e;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (before_exec(path, 0, envp) < 0)
        return -1;
    fixed = env_fixed(envp, &extra);
    rv = preal.fexecve(fd, argv, fixed ? fixed : envp);
    e = errno;
    free(fixed);
    free(extra);
    errno = e;
    return rv;
}

HOOK int
execveat(int dirfd, const char *path, char *const argv[],
         char *const envp[], int flags)
{
    char full[PATH_MAX], *extra, **fixed;
    int rv, e;

    if (path[0] == '/')
        util_strlcpy(full, path, sizeof(full));
    else if (path[0] == '\0')
        snprintf(full, sizeof(full), "/proc/self/fd/%d", dirfd);
    else
        snprintf(full, sizeof(full), "/proc/self/fd/%d/%s", dirfd, path);
    if (before_exec(full, 0, envp) < 0)
        return -1;
    fixed = env_fixed(envp, &extra);
    if (preal.execveat == NULL) {
        errno = ENOSYS;
        rv = -1;
    } else {
        rv = preal.execveat(dirfd, path, argv, fixed ? fixed : envp, flags);
    }
    e = errno;
    free(fixed);
    free(extra);
    errno = e;
    return rv;
}

/*
 * posix_spawn file actions can dup2 a close-on-exec TLS fd into the child.
 * glibc keeps the actions in a private array (spawn_int.h): an enum tag,
 * then for dup2 the source and target fds.  Every dup2 source that is a
 * TLS connection goes to a relay first.
 */
struct glibc_spawn_action {
    int tag;                  /* 1: spawn_do_dup2 */
    union {                   /* as large and aligned as glibc's (its open
                               * action holds a pointer): 24 bytes at 8 */
        struct {
            int fd, newfd;
        } dup2_action;
        void *align;
        char pad[24];
    } action;
};
_Static_assert(sizeof(struct glibc_spawn_action) == 32,
               "glibc's struct __spawn_action is 32 bytes on LP64");

static void
relay_dup2_sources(const posix_spawn_file_actions_t *fa)
{
    const struct {
        int allocated, used;
        struct glibc_spawn_action *actions;
    } *raw = (const void *)fa;

    if (fa == NULL || raw->actions == NULL || raw->used < 0 ||
        raw->used > raw->allocated || raw->used > 4096)
        return;
    for (int i = 0; i < raw->used; i++) {
        struct conn *c;
        if (raw->actions[i].tag != 1 ||
            (c = conn_get(raw->actions[i].action.dup2_action.fd)) == NULL)
            continue;
        int rv = relay_handoff(c);
        conn_put(c);
        if (rv < 0)
            log_error("posix_spawn: cannot hand fd %d to a relay: %s",
                      raw->actions[i].action.dup2_action.fd, strerror(-rv));
    }
}

static int
run_spawn(spawn_fn fn, int search, pid_t *pid, const char *path,
          const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *at,
          char *const argv[], char *const envp[])
{
    char *extra, **fixed;
    int rv;

    if (before_exec(path, search, envp) < 0)
        return EACCES;
    relay_dup2_sources(fa);
    fixed = env_fixed(envp, &extra);
    rv = fn(pid, path, fa, at, argv, fixed ? fixed : envp);
    free(fixed);
    free(extra);
    return rv;
}

HOOK int
posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
            const posix_spawnattr_t *at, char *const argv[],
            char *const envp[])
{
    ensure();
    return run_spawn(preal.posix_spawn, 0, pid, path, fa, at, argv, envp);
}

HOOK int
posix_spawnp(pid_t *pid, const char *file,
             const posix_spawn_file_actions_t *fa,
             const posix_spawnattr_t *at, char *const argv[],
             char *const envp[])
{
    ensure();
    return run_spawn(preal.posix_spawnp, 1, pid, file, fa, at, argv, envp);
}

/* system() and popen() run /bin/sh with environ: put the variables back
 * into this process's environment first (only those that are missing). */
static void
restore_environ(void)
{
    char *extra, **fixed = env_fixed(environ, &extra);

    if (fixed == NULL)
        return;
    for (size_t i = 0; fixed[i] != NULL; i++) {
        char *eq = strchr(fixed[i], '=');
        if (eq == NULL)
            continue;
        char name[64];
        size_t n = (size_t)(eq - fixed[i]);
        if (n >= sizeof(name))
            continue;
        memcpy(name, fixed[i], n);
        name[n] = '\0';
        const char *cur = getenv(name);
        if (cur == NULL || strcmp(cur, eq + 1) != 0)
            setenv(name, eq + 1, 1);
    }
    free(fixed);
    free(extra);
}

HOOK int
system(const char *cmd) /* banned-ok: the hook of libc's system() */
{
    ensure();
    if (cmd != NULL) {
        relay_escape_inherited();
        restore_environ();
    }
    return preal.system(cmd);
}

HOOK FILE *
popen(const char *cmd, const char *mode)
{
    ensure();
    relay_escape_inherited();
    restore_environ();
    return preal.popen(cmd, mode);
}

HOOK FILE *
fdopen(int fd, const char *mode)
{
    struct conn *c;

    ensure();
    if ((c = conn_get(fd)) != NULL) {
        /* stdio writes through libc-internal calls: relay first */
        int rv = relay_handoff(c);
        conn_put(c);
        if (rv < 0) {
            log_error("fd %d: fdopen of a TLS connection refused: %s", fd,
                      strerror(-rv));
            errno = -rv;
            return NULL;
        }
    }
    return preal.fdopen(fd, mode);
}

/* dprintf on a TLS fd: format here, write through the engine. */
static int
tracked_vdprintf(struct conn *c, const char *fmt, va_list ap)
{
    char *buf = NULL;
    int n = vasprintf(&buf, fmt, ap);
    ssize_t done = 0;

    if (n < 0) {
        conn_put(c);
        errno = ENOMEM;
        return -1;
    }
    while (done < n) {
        ssize_t w = conn_write(c, buf + done, (size_t)(n - done), 0);
        if (w < 0) {
            free(buf);
            conn_put(c);
            errno = (int)-w;
            return -1;
        }
        done += w;
    }
    free(buf);
    conn_put(c);
    return n;
}

HOOK int
vdprintf(int fd, const char *fmt, va_list ap)
{
    struct conn *c = conn_get(fd);

    ensure();
    if (c == NULL)
        return preal.vdprintf(fd, fmt, ap);
    return tracked_vdprintf(c, fmt, ap);
}

HOOK int
dprintf(int fd, const char *fmt, ...)
{
    va_list ap;
    int rv;

    va_start(ap, fmt);
    rv = vdprintf(fd, fmt, ap);
    va_end(ap);
    return rv;
}

HOOK int
__vdprintf_chk(int fd, int flag, const char *fmt, va_list ap)
{
    return vdprintf(fd, fmt, ap);
}

HOOK int
__dprintf_chk(int fd, int flag, const char *fmt, ...)
{
    va_list ap;
    int rv;

    va_start(ap, fmt);
    rv = vdprintf(fd, fmt, ap);
    va_end(ap);
    return rv;
}
