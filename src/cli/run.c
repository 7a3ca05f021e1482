/*
 * Running COMMAND under the shim (SPEC sections 1, 2 and 9): pick and
 * validate the policy the shim will read, find libtlsshim.so (the libtool
 * build tree beside the running executable first, so that tests run what
 * was just built, then the installed pkglibdir), refuse a COMMAND the shim
 * cannot cover, then exec it with LD_PRELOAD appended and the TLSSHIM_
 * variables set.  --env prints the same environment as shell code.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "inspect.h"

#define SHIM_LIBRARY "libtlsshim.so"
#define ENFORCE_LIBRARY "libtlsshim-enforce.so"
#define SYSTEM_POLICY TLSSHIM_SYSCONFDIR "/tlsshim.conf"

char *
cli_absolute_path(const char *path)
{
    char cwd[PATH_MAX], *abs;
    size_t len;

    if (path[0] == '/')
        return strdup(path);
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return NULL;
    while (path[0] == '.' && path[1] == '/') {
        path += 2;
        while (*path == '/')
            path++;
    }
    len = strlen(cwd) + strlen(path) + 2;
    if ((abs = malloc(len)) == NULL)
        return NULL;
    snprintf(abs, len, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/",
             path);
    return abs;
}

struct policy *
cli_load_policy(const struct cli_options *o)
{
    const char *path = NULL, *env = getenv("TLSSHIM_CONF");
    char err[1024];
    struct policy *p;

    if (o->policy_file != NULL)
        path = o->policy_file;
    else if (env != NULL && *env != '\0')
        path = env;
    else if (access(SYSTEM_POLICY, F_OK) == 0)
        path = SYSTEM_POLICY;
    /* The shim refuses policy files that others may write, so we do. */
    if ((p = policy_load(path, 1, err, sizeof(err))) == NULL)
        cli_error("%s", err);
    return p;
}

static int
is_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Format into buf; 0 when it fitted. */
static int
format_path(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s%s", dir, name);

    return n >= 0 && (size_t)n < len ? 0 : -1;
}

void
cli_library_dir(char *dir, size_t len)
{
    char exe[PATH_MAX], probe[PATH_MAX];
    ssize_t n;
    char *slash;

    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        if ((slash = strrchr(exe, '/')) != NULL) {
            *slash = '\0';
            /* Built but not installed: libtool keeps the module in .libs
             * beside us (or we are ourselves in .libs). */
            if (format_path(probe, sizeof(probe), exe,
                            "/.libs/" SHIM_LIBRARY) == 0 &&
                is_file(probe) &&
                format_path(dir, len, exe, "/.libs") == 0)
                return;
            slash = strrchr(exe, '/');
            if (slash != NULL && strcmp(slash, "/.libs") == 0 &&
                format_path(probe, sizeof(probe), exe,
                            "/" SHIM_LIBRARY) == 0 &&
                is_file(probe) && format_path(dir, len, exe, "") == 0)
                return;
        }
    }
    util_strlcpy(dir, TLSSHIM_PKGLIBDIR, len);
}

int
cli_list_contains(const char *list, const char *item)
{
    size_t n = strlen(item);
    const char *p = list;

    while (*p != '\0') {
        size_t w = strcspn(p, ": ");
        if (w == n && memcmp(p, item, n) == 0)
            return 1;
        p += w;
        if (*p != '\0')
            p++;
    }
    return 0;
}

/* Append item to the malloc'ed list *list unless it is already there. */
static int
list_append(char **list, const char *item)
{
    size_t len;
    char *grown;

    if (*list != NULL && cli_list_contains(*list, item))
        return 0;
    len = (*list != NULL ? strlen(*list) + 1 : 0) + strlen(item) + 1;
    if ((grown = malloc(len)) == NULL)
        return -1;
    if (*list != NULL && **list != '\0')
        snprintf(grown, len, "%s:%s", *list, item);
    else
        snprintf(grown, len, "%s", item);
    free(*list);
    *list = grown;
    return 0;
}

static int
env_add(struct cli_env *env, const char *name, char *value)
{
    /* value is NULL when malloc() or getcwd() failed. */
    if (value == NULL) {
        cli_error("cannot set %s: %s", name, strerror(errno));
        return -1;
    }
    env->name[env->n] = name;
    env->value[env->n++] = value;
    return 0;
}

/* -o may name stderr or syslog; anything else is a file, made absolute so
 * that a program that changes directory still finds it. */
static char *
log_target(const char *target)
{
    if (strcmp(target, "stderr") == 0 || strcmp(target, "syslog") == 0)
        return strdup(target);
    return cli_absolute_path(target);
}

/* ld.so splits LD_PRELOAD at colons and spaces: such a path cannot be
 * preloaded at all. */
static int
preload_append(char **preload, const char *lib)
{
    if (strpbrk(lib, ": ") != NULL) {
        cli_error("cannot preload %s: its path holds a colon or space", lib);
        return -1;
    }
    if (list_append(preload, lib) != 0) {
        cli_error("out of memory");
        return -1;
    }
    return 0;
}

int
cli_env_build(const struct cli_options *o, const struct policy *p,
              struct cli_env *env)
{
    char dir[PATH_MAX], lib[PATH_MAX + 64], level[16];
    const char *old = getenv("LD_PRELOAD");
    char *preload = NULL;
    int rv = -1;

    memset(env, 0, sizeof(*env));
    cli_library_dir(dir, sizeof(dir));
#ifdef TLSSHIM_SANITIZER_RUNTIME
    /* A sanitizer build's module needs its runtime loaded before
     * everything else (configure --enable-sanitizers). */
    if ((old == NULL || !cli_list_contains(old, TLSSHIM_SANITIZER_RUNTIME)) &&
        preload_append(&preload, TLSSHIM_SANITIZER_RUNTIME) != 0)
        goto err;
#endif
    if (old != NULL && *old != '\0' && list_append(&preload, old) != 0) {
        cli_error("out of memory");
        goto err;
    }
    snprintf(lib, sizeof(lib), "%s/" SHIM_LIBRARY, dir);
    if (!is_file(lib)) {
        cli_error("cannot find the shim library %s", lib);
        goto err;
    }
    if (preload_append(&preload, lib) != 0)
        goto err;
    if (p->has_enforce) {
        snprintf(lib, sizeof(lib), "%s/" ENFORCE_LIBRARY, dir);
        if (!is_file(lib)) {
            cli_error("the policy has enforce rules, but %s is missing",
                      lib);
            goto err;
        }
        if (preload_append(&preload, lib) != 0)
            goto err;
    }
    if (env_add(env, "LD_PRELOAD", preload) != 0)
        goto err;
    preload = NULL;

    if (o->policy_file != NULL &&
        env_add(env, "TLSSHIM_CONF", cli_absolute_path(o->policy_file)) != 0)
        goto err;
    if (o->debug >= 0) {
        snprintf(level, sizeof(level), "%d", o->debug);
        if (env_add(env, "TLSSHIM_DEBUG", strdup(level)) != 0)
            goto err;
    }
    if (o->log != NULL && env_add(env, "TLSSHIM_LOG", log_target(o->log)) != 0)
        goto err;
    if (o->report != NULL &&
        env_add(env, "TLSSHIM_REPORT", cli_absolute_path(o->report)) != 0)
        goto err;
    rv = 0;
err:
    free(preload);
    if (rv != 0)
        cli_env_free(env);
    return rv;
}

void
cli_env_free(struct cli_env *env)
{
    size_t i;

    for (i = 0; i < env->n; i++)
        free(env->value[i]);
    env->n = 0;
}

/* value in single quotes, each ' written as '\'' . */
static void
print_quoted(const char *value)
{
    putchar('\'');
    for (; *value != '\0'; value++) {
        if (*value == '\'')
            fputs("'\\''", stdout);
        else
            putchar(*value);
    }
    putchar('\'');
}

int
cli_print_env(const struct cli_options *o)
{
    struct policy *p;
    struct cli_env env;
    size_t i;

    if ((p = cli_load_policy(o)) == NULL)
        return CLI_EXIT_USAGE;
    if (cli_env_build(o, p, &env) != 0) {
        policy_free(p);
        return CLI_EXIT_USAGE;
    }
    for (i = 0; i < env.n; i++) {
        printf("export %s=", env.name[i]);
        print_quoted(env.value[i]);
        putchar('\n');
    }
    cli_env_free(&env);
    policy_free(p);
    return 0;
}

static int
is_elf(const char *path)
{
    unsigned char magic[4];
    int fd, rv = 0;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    rv = read(fd, magic, sizeof(magic)) == (ssize_t)sizeof(magic) &&
        memcmp(magic, "\177ELF", 4) == 0;
    close(fd);
    return rv;
}

/* Find COMMAND as execvp() would; prints why not and returns the exit
 * status a shell would use, or 0. */
static int
find_command(const char *name, char *path, size_t len)
{
    int err = inspect_find_command(name, getenv("PATH"), path, len);

    if (err == 0)
        return 0;
    if (err == ENOENT && strchr(name, '/') == NULL) {
        cli_error("%s: command not found", name);
        return CLI_EXIT_NOT_FOUND;
    }
    cli_error("%s: %s", name, strerror(err));
    return err == ENOENT ? CLI_EXIT_NOT_FOUND : CLI_EXIT_NOT_EXECUTABLE;
}

/* Refuse what SPEC section 9 says cannot be covered; returns 0 to go on. */
static int
check_coverage(const struct cli_options *o, const char *path)
{
    char reason[1024];
    int rv = inspect_command(path, reason, sizeof(reason));

    if (rv == INSPECT_COVERED)
        return 0;
    if (o->allow_uncovered) {
        cli_warn("running %s uncovered: %s", o->args[0], reason);
        return 0;
    }
    if (rv == INSPECT_UNCOVERED)
        cli_error("%s cannot be covered: %s "
                  "(use --allow-uncovered to run it anyway)",
                  o->args[0], reason);
    else
        cli_error("%s cannot be inspected: %s "
                  "(use --allow-uncovered to run it anyway)",
                  o->args[0], reason);
    return -1;
}

int
cli_run(const struct cli_options *o)
{
    char path[PATH_MAX];
    struct policy *p;
    struct cli_env env;
    char **sh_argv = NULL;
    size_t i;
    int status = CLI_EXIT_USAGE, err;

    /* An operator who asks for a report expects evidence: a report that
     * cannot be written stops the run before anything starts. */
    if (o->report != NULL) {
        int fd = open(o->report, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                      0600);
        if (fd < 0) {
            fprintf(stderr, "tlsshim: -r: cannot open %s: %s\n", o->report,
                    strerror(errno));
            return CLI_EXIT_USAGE;
        }
        close(fd);
    }
    if ((p = cli_load_policy(o)) == NULL)
        return CLI_EXIT_USAGE;
    if (cli_env_build(o, p, &env) != 0)
        goto out;
    policy_free(p);
    p = NULL;

    if ((status = find_command(o->args[0], path, sizeof(path))) != 0)
        goto out;
    status = CLI_EXIT_USAGE;
    if (check_coverage(o, path) != 0)
        goto out;

    for (i = 0; i < env.n; i++)
        if (setenv(env.name[i], env.value[i], 1) != 0) {
            cli_error("cannot set %s: %s", env.name[i], strerror(errno));
            goto out;
        }
    /* argv[0] stays as the user typed it, as execvp() leaves it. */
    execv(path, o->args);
    err = errno;
    if (err == ENOEXEC && !is_elf(path)) {
        /* Neither ELF nor "#!": run it with the shell, as execvp() does
         * (and as inspect judged it); an ELF image the kernel refused is
         * not shell code. */
        if ((sh_argv = calloc((size_t)o->nargs + 2, sizeof(*sh_argv))) ==
            NULL) {
            cli_error("out of memory");
            goto out;
        }
        sh_argv[0] = (char *)"/bin/sh";
        sh_argv[1] = path;
        for (i = 1; i < (size_t)o->nargs; i++)
            sh_argv[i + 1] = o->args[i];
        execv("/bin/sh", sh_argv);
        err = errno;
    }
    cli_error("cannot run %s: %s", o->args[0], strerror(err));
    status = err == ENOENT ? CLI_EXIT_NOT_FOUND : CLI_EXIT_NOT_EXECUTABLE;
out:
    free(sh_argv);
    cli_env_free(&env);
    if (p != NULL)
        policy_free(p);
    return status;
}
