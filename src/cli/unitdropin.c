/*
 * tlsshim --unit-dropin UNIT (SPEC section 1): print, or with --write
 * install, a systemd drop-in that runs a service under the shim.  systemd's
 * Environment= cannot refer to other variables, so "append to LD_PRELOAD"
 * has to be done here: the unit's own files (the unit file and its
 * drop-ins, in systemd's search path and order, without the drop-in this
 * writes) are read for the LD_PRELOAD they set, and the drop-in sets it to
 * that value with the shim appended.  What an Environment= drop-in cannot
 * override (an EnvironmentFile= that sets LD_PRELOAD, a drop-in that sorts
 * after ours, UnsetEnvironment=) is refused rather than left to fail open,
 * and so are the services the shim cannot cover (SPEC section 9): an
 * ExecStart= program that inspect.c refuses, RootDirectory= or RootImage=,
 * and a sandbox that hides the library or keeps it from being mapped; the
 * drop-in asserts that the library exists, since ld.so would skip a
 * missing one with a warning.  TLSSHIM_SYSTEMD_DIR replaces the whole
 * search path and the directory written to, for tests and for preparing
 * an image.
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "inspect.h"

#define SHIM_LIBRARY "libtlsshim.so"
#define ENFORCE_LIBRARY "libtlsshim-enforce.so"
#define DROPIN_NAME "tlsshim.conf"
#define UNIT_NAME_MAX 255
/* A unit file or drop-in larger than this is not one. */
#define UNIT_FILE_MAX (1024 * 1024)
/* Where systemd looks up ExecStart= programs given without a path, and
 * the PATH its services get. */
#define SERVICE_PATH                                                           \
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* systemd's unit search path for the system manager, highest priority
 * first (systemd.unit(5)); the drop-in is written to /etc/systemd/system.
 * /lib/systemd/system is the same directory on merged-/usr systems: the
 * duplicates then collapse, as drop-ins of one name do. */
static const char *const system_unit_dirs[] = {
    "/etc/systemd/system.control", "/run/systemd/system.control",
    "/run/systemd/transient",      "/run/systemd/generator.early",
    "/etc/systemd/system",         "/etc/systemd/system.attached",
    "/run/systemd/system",         "/run/systemd/system.attached",
    "/run/systemd/generator",      "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",     "/lib/systemd/system",
    "/run/systemd/generator.late",
};
#define SYSTEM_WRITE_DIR_INDEX 4

static const char *const unit_types[] = {
    "service", "socket", "target", "device", "mount", "automount",
    "swap",    "timer",  "path",   "slice",  "scope",
};

struct strv {
    char **v;
    size_t n;
};

/* What the unit's configuration says, as far as the drop-in cares. */
struct unit_info {
    char *fragment;         /* the unit file read, or NULL: not found */
    char *preload;          /* LD_PRELOAD set by Environment=, before systemd
                             * expands specifiers; NULL when unset */
    char *preload_file;     /* the file that set it */
    char *late_file;        /* a drop-in after ours that sets LD_PRELOAD or
                             * empties Environment= */
    char *unset_file;       /* UnsetEnvironment= of LD_PRELOAD or TLSSHIM_ */
    char *root;             /* RootDirectory= or RootImage= */
    char *user;             /* User=, "(dynamic)", or NULL for root */
    struct strv env_files;  /* EnvironmentFile= values */
    struct strv exec_start; /* the programs of ExecStart= */
    /* The file system the service sees: what it cannot see (with the
     * setting that hides it), what is bound back in, what it cannot
     * execute from and the exceptions. */
    struct strv hidden, hidden_by, bound, noexec, exec;
    int private_tmp;
    char *protect_home;
};

struct dropin {
    char *name; /* file name: drop-ins apply in this order */
    char *path; /* NULL for the slot of the drop-in we write */
};

struct dropins {
    struct dropin *v;
    size_t n;
};

static int
strv_push(struct strv *s, const char *value)
{
    char **grown, *copy;

    if ((copy = strdup(value)) == NULL)
        return -1;
    if ((grown = realloc(s->v, (s->n + 1) * sizeof(*grown))) == NULL) {
        free(copy);
        return -1;
    }
    s->v = grown;
    s->v[s->n++] = copy;
    return 0;
}

static void
strv_clear(struct strv *s)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

/* *dst = a copy of src (NULL allowed); -1 when out of memory. */
static int
set_string(char **dst, const char *src)
{
    char *copy = NULL;

    if (src != NULL && (copy = strdup(src)) == NULL)
        return -1;
    free(*dst);
    *dst = copy;
    return 0;
}

static void
unit_info_free(struct unit_info *u)
{
    free(u->fragment);
    free(u->preload);
    free(u->preload_file);
    free(u->late_file);
    free(u->unset_file);
    free(u->root);
    free(u->user);
    strv_clear(&u->env_files);
    strv_clear(&u->exec_start);
    strv_clear(&u->hidden);
    strv_clear(&u->hidden_by);
    strv_clear(&u->bound);
    strv_clear(&u->noexec);
    strv_clear(&u->exec);
    free(u->protect_home);
}

static void
dropins_free(struct dropins *d)
{
    size_t i;

    for (i = 0; i < d->n; i++) {
        free(d->v[i].name);
        free(d->v[i].path);
    }
    free(d->v);
}

static int
has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/*
 * UNIT as systemd would take it (systemctl's mangling without the glob and
 * path forms): letters, digits and ":-_.\" with at most one '@' after a
 * non-empty prefix; ".service" is added when the name has no unit type
 * suffix.  Other unit types are refused: only services run programs that
 * the drop-in could cover.
 */
static int
unit_name_make(const char *arg, char *unit, size_t len)
{
    const char *p, *dot, *at = NULL;
    size_t i;
    int typed = 0;

    if (*arg == '\0') {
        cli_error("--unit-dropin: the unit name is empty");
        return -1;
    }
    for (p = arg; *p != '\0'; p++) {
        if (isalnum((unsigned char)*p) || strchr(":-_.\\", *p) != NULL)
            continue;
        if (*p == '@' && at == NULL && p != arg) {
            at = p;
            continue;
        }
        cli_error("--unit-dropin: '%s' is not a unit name: %s", arg,
                  *p == '/'   ? "it holds a '/' (give the unit's name, not "
                                "the path of its file)"
                  : *p == '@' ? "a unit name has one '@', after its prefix"
                              : "it holds a character systemd does not "
                                "allow in unit names");
        return -1;
    }
    if ((dot = strrchr(arg, '.')) != NULL)
        for (i = 0; i < TLSSHIM_NELEMS(unit_types); i++)
            if (strcmp(dot + 1, unit_types[i]) == 0)
                typed = 1;
    if (typed && strcmp(dot, ".service") != 0) {
        cli_error("--unit-dropin: %s is not a service: name the service "
                  "whose programs should run under tlsshim",
                  arg);
        return -1;
    }
    if (typed && dot == arg) {
        cli_error("--unit-dropin: '%s' is not a unit name", arg);
        return -1;
    }
    if ((size_t)snprintf(unit, len, "%s%s", arg, typed ? "" : ".service") >=
            len ||
        strlen(unit) > UNIT_NAME_MAX) {
        cli_error("--unit-dropin: the unit name is longer than %d bytes",
                  UNIT_NAME_MAX);
        return -1;
    }
    return 0;
}

/* The unit's name as a directory of /var/log/tlsshim: systemd-escaped
 * unit names may hold '\' and ':', which LogsDirectory= would take as an
 * escape and a separator. */
static void
unit_path_component(const char *unit, char *out, size_t len)
{
    size_t i;

    util_strlcpy(out, unit, len);
    for (i = 0; out[i] != '\0'; i++)
        if (out[i] == '\\' || out[i] == ':')
            out[i] = '_';
}

/* -------------------------------------------------------------------- */
/* Reading unit files as systemd does                                   */

/* n hex digits of s into *code; -1 when they are not. */
static int
parse_hex(const char *s, int n, unsigned long *code)
{
    int i;

    *code = 0;
    for (i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return -1;
        *code = *code * 16 +
                (unsigned long)(isdigit((unsigned char)s[i])
                                    ? s[i] - '0'
                                    : tolower((unsigned char)s[i]) - 'a' + 10);
    }
    return 0;
}

/* code point as UTF-8 into out (at most 4 bytes); returns the length. */
static int
put_utf8(unsigned long code, char *out)
{
    if (code < 0x80) {
        out[0] = (char)code;
        return 1;
    }
    if (code < 0x800) {
        out[0] = (char)(0xc0 | (code >> 6));
        out[1] = (char)(0x80 | (code & 0x3f));
        return 2;
    }
    if (code < 0x10000) {
        out[0] = (char)(0xe0 | (code >> 12));
        out[1] = (char)(0x80 | ((code >> 6) & 0x3f));
        out[2] = (char)(0x80 | (code & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (code >> 18));
    out[1] = (char)(0x80 | ((code >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((code >> 6) & 0x3f));
    out[3] = (char)(0x80 | (code & 0x3f));
    return 4;
}

/* One escape after a backslash, as systemd's cunescape_one(): writes the
 * bytes into out (at most 4) and returns how many, advancing *p; -1 when
 * the escape is not one. */
static int
unescape_one(const char **p, char *out)
{
    /* pairs: the letter after the backslash, the byte it stands for */
    static const char simple[] = "a\ab\bf\fn\nr\rt\tv\vs \\\\\"\"''";
    const char *s = *p;
    unsigned long code = 0;
    size_t i;
    int digits;

    for (i = 0; i + 1 < sizeof(simple); i += 2)
        if (*s == simple[i]) {
            *out = simple[i + 1];
            *p = s + 1;
            return 1;
        }
    if (*s == 'x') {
        if (parse_hex(s + 1, 2, &code) != 0 || code == 0)
            return -1;
        *out = (char)code;
        *p = s + 3;
        return 1;
    }
    if (*s == 'u' || *s == 'U') {
        digits = *s == 'u' ? 4 : 8;
        if (parse_hex(s + 1, digits, &code) != 0 || code == 0 ||
            code > 0x10ffff || (code >= 0xd800 && code < 0xe000))
            return -1;
        *p = s + 1 + digits;
        return put_utf8(code, out);
    }
    /* three octal digits */
    for (i = 0; i < 3; i++) {
        if (s[i] < '0' || s[i] > '7')
            return -1;
        code = code * 8 + (unsigned long)(s[i] - '0');
    }
    if (code == 0 || code > 0xff)
        return -1;
    *out = (char)code;
    *p = s + 3;
    return 1;
}

/*
 * The next whitespace-separated word of *p, as systemd's
 * extract_first_word() with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE: quotes
 * ("..." and '...', anywhere in the word) are removed and keep whitespace,
 * backslash escapes are C escapes inside and outside quotes.  Returns 1
 * with a malloc'ed *word, 0 at the end, -1 on bad syntax (systemd then
 * ignores the rest of the line) or no memory.
 */
static int
next_word(const char **p, char **word)
{
    const char *s = *p;
    size_t cap, n = 0;
    char quote = 0, *w;
    char bytes[4];
    int k;

    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    if (*s == '\0') {
        *p = s;
        return 0;
    }
    cap = strlen(s) + 1;
    if ((w = malloc(cap)) == NULL)
        return -1;
    for (;;) {
        if (*s == '\0') {
            if (quote != 0)
                goto bad;
            break;
        }
        if (*s == '\\') {
            s++;
            if ((k = unescape_one(&s, bytes)) < 0)
                goto bad;
            /* an escape never yields more bytes than it takes */
            memcpy(w + n, bytes, (size_t)k);
            n += (size_t)k;
            continue;
        }
        if (quote != 0) {
            if (*s == quote)
                quote = 0;
            else
                w[n++] = *s;
            s++;
            continue;
        }
        if (*s == '"' || *s == '\'') {
            quote = *s++;
            continue;
        }
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
            break;
        w[n++] = *s++;
    }
    w[n] = '\0';
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    *p = s;
    *word = w;
    return 1;
bad:
    free(w);
    return -1;
}

/* word assigns the variable name. */
static int
env_assignment_name(const char *word, const char *name)
{
    size_t n = strlen(name);

    return strncmp(word, name, n) == 0 && word[n] == '=';
}

/* NAME=VALUE with a name systemd accepts: [A-Za-z_][A-Za-z0-9_]*. */
static int
env_assignment_valid(const char *word)
{
    const char *p = word;

    if (!isalpha((unsigned char)*p) && *p != '_')
        return 0;
    while (isalnum((unsigned char)*p) || *p == '_')
        p++;
    return *p == '=';
}

/* A variable name (UnsetEnvironment= takes NAME or NAME=VALUE) whose
 * removal would take the shim out. */
static int
unsets_shim(const char *word)
{
    size_t n = strcspn(word, "=");

    return (n == strlen("LD_PRELOAD") && strncmp(word, "LD_PRELOAD", n) == 0) ||
           strncmp(word, "TLSSHIM_", strlen("TLSSHIM_")) == 0;
}

static int
is_yes(const char *v)
{
    return strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0 ||
           strcasecmp(v, "true") == 0 || strcasecmp(v, "on") == 0;
}

/* A path of a sandbox setting, without its "-" and "+" prefixes and, for
 * the settings that take them, ":OPTIONS" or the ":DEST" of BindPaths=
 * (the destination is what the service sees). */
static int
push_setting_path(struct strv *list, const char *word, int take_dest)
{
    char buf[PATH_MAX], *colon;

    while (*word == '-' || *word == '+')
        word++;
    util_strlcpy(buf, word, sizeof(buf));
    if ((colon = strchr(buf, ':')) != NULL) {
        if (take_dest && colon[1] == '/') {
            memmove(buf, colon + 1, strlen(colon + 1) + 1);
            if ((colon = strchr(buf, ':')) != NULL)
                *colon = '\0';
        } else {
            *colon = '\0';
        }
    }
    return *buf == '/' ? strv_push(list, buf) : 0;
}

/* The space-separated paths of a sandbox setting; an empty value resets
 * the list.  hidden_by, when given, records the setting per path. */
static int
apply_path_list(struct strv *list, struct strv *why, const char *key,
                const char *value, int take_dest)
{
    const char *p = value;
    char *word;
    int r;

    if (*value == '\0') {
        /* systemd resets only this setting's list; keeping the paths of
         * the other hiding settings errs on the side of refusing */
        if (why == NULL)
            strv_clear(list);
        return 0;
    }
    while ((r = next_word(&p, &word)) > 0) {
        size_t before = list->n;

        r = push_setting_path(list, word, take_dest);
        free(word);
        if (r != 0 ||
            (why != NULL && list->n > before && strv_push(why, key) != 0))
            return -1;
    }
    return 0;
}

/* Apply one assignment of a [Service] section.  late: the file sorts after
 * our drop-in. */
static int
apply_setting(struct unit_info *u, const char *path, unsigned line, int late,
              const char *key, const char *value)
{
    const char *p = value;
    char *word;
    int r;

    if (strcmp(key, "Environment") == 0) {
        if (*value == '\0') {
            if (set_string(&u->preload, NULL) != 0 ||
                set_string(&u->preload_file, path) != 0 ||
                (late && set_string(&u->late_file, path) != 0))
                return -1;
            return 0;
        }
        while ((r = next_word(&p, &word)) > 0) {
            int failed = 0;

            if (env_assignment_valid(word) &&
                env_assignment_name(word, "LD_PRELOAD"))
                failed = set_string(&u->preload,
                                    word + strlen("LD_PRELOAD=")) != 0 ||
                         set_string(&u->preload_file, path) != 0 ||
                         (late && set_string(&u->late_file, path) != 0);
            free(word);
            if (failed)
                return -1;
        }
        if (r < 0)
            cli_warn("%s:%u: bad quoting in Environment=; systemd ignores "
                     "the rest of the line",
                     path, line);
        return 0;
    }
    if (strcmp(key, "UnsetEnvironment") == 0) {
        if (*value == '\0')
            return set_string(&u->unset_file, NULL);
        while ((r = next_word(&p, &word)) > 0) {
            r = unsets_shim(word) ? set_string(&u->unset_file, path) : 0;
            free(word);
            if (r != 0)
                return -1;
        }
        return 0;
    }
    if (strcmp(key, "EnvironmentFile") == 0) {
        if (*value == '\0') {
            strv_clear(&u->env_files);
            return 0;
        }
        return strv_push(&u->env_files, value);
    }
    if (strcmp(key, "ExecStart") == 0) {
        if (*value == '\0') {
            strv_clear(&u->exec_start);
            return 0;
        }
        /* the prefixes @ - : + ! !! come before the program */
        while (*p != '\0' && strchr("@-:+!", *p) != NULL)
            p++;
        if ((r = next_word(&p, &word)) <= 0) {
            cli_warn("%s:%u: cannot read the program of ExecStart=", path,
                     line);
            return 0;
        }
        r = strv_push(&u->exec_start, word);
        free(word);
        return r;
    }
    if (strcmp(key, "InaccessiblePaths") == 0 ||
        strcmp(key, "TemporaryFileSystem") == 0)
        return apply_path_list(&u->hidden, &u->hidden_by, key, value, 0);
    if (strcmp(key, "BindPaths") == 0 || strcmp(key, "BindReadOnlyPaths") == 0)
        return apply_path_list(&u->bound, NULL, key, value, 1);
    if (strcmp(key, "NoExecPaths") == 0)
        return apply_path_list(&u->noexec, NULL, key, value, 0);
    if (strcmp(key, "ExecPaths") == 0)
        return apply_path_list(&u->exec, NULL, key, value, 0);
    if (strcmp(key, "PrivateTmp") == 0) {
        u->private_tmp = is_yes(value);
        return 0;
    }
    if (strcmp(key, "ProtectHome") == 0)
        return set_string(&u->protect_home, value);
    if (strcmp(key, "RootDirectory") == 0 || strcmp(key, "RootImage") == 0)
        return set_string(&u->root, *value != '\0' ? value : NULL);
    if (strcmp(key, "User") == 0)
        return set_string(&u->user, *value != '\0' ? value : NULL);
    if (strcmp(key, "DynamicUser") == 0 && is_yes(value)) {
        /* DynamicUser= implies PrivateTmp= */
        u->private_tmp = 1;
        return set_string(&u->user, "(dynamic)");
    }
    return 0;
}

/* The file's text, NUL-terminated; NULL with errno set on failure. */
static char *
read_text(const char *path)
{
    struct stat st;
    char *text = NULL;
    ssize_t got;
    size_t n = 0;
    int fd;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return NULL;
    if (fstat(fd, &st) != 0)
        goto err;
    if (!S_ISREG(st.st_mode) || st.st_size > UNIT_FILE_MAX) {
        errno = S_ISDIR(st.st_mode)    ? EISDIR
                : !S_ISREG(st.st_mode) ? EINVAL
                                       : EFBIG;
        goto err;
    }
    if ((text = malloc((size_t)st.st_size + 1)) == NULL)
        goto err;
    while (n < (size_t)st.st_size) {
        got = read(fd, text + n, (size_t)st.st_size - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    text[n] = '\0';
    close(fd);
    return text;
err:
    free(text);
    {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return NULL;
}

static char *
trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

/*
 * Read one unit file or drop-in: "[Section]" headers, "Key=Value" lines,
 * '#' and ';' comments, and a backslash at the end of a line continuing it
 * on the next (comment lines in between are skipped), as systemd's parser
 * does.  Only [Service] matters here.
 */
static int
parse_unit_file(struct unit_info *u, const char *path, int late)
{
    char *text, *line, *next, *joined = NULL, *key, *value, *eq;
    unsigned lineno = 0, first_line = 0;
    int in_service = 0, rv = -1;
    size_t len;

    if ((text = read_text(path)) == NULL) {
        cli_error("cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    for (line = text; line != NULL; line = next) {
        if ((next = strchr(line, '\n')) != NULL)
            *next++ = '\0';
        lineno++;
        if (joined != NULL) {
            char *t = trim(line), *grown;
            size_t have, add;

            if (*t == '#' || *t == ';')
                continue;
            have = strlen(joined);
            add = strlen(t);
            if ((grown = realloc(joined, have + add + 2)) == NULL)
                goto err;
            joined = grown;
            joined[have] = ' ';
            memcpy(joined + have + 1, t, add + 1);
        } else {
            line = trim(line);
            if (*line == '\0' || *line == '#' || *line == ';')
                continue;
            if ((joined = strdup(line)) == NULL)
                goto err;
            first_line = lineno;
        }
        len = strlen(joined);
        if (len > 0 && joined[len - 1] == '\\' && next != NULL) {
            joined[len - 1] = '\0';
            continue;
        }
        key = trim(joined);
        if (*key == '[') {
            in_service = strcmp(key, "[Service]") == 0;
        } else if (in_service && (eq = strchr(key, '=')) != NULL) {
            *eq = '\0';
            value = trim(eq + 1);
            key = trim(key);
            if (apply_setting(u, path, first_line, late, key, value) != 0)
                goto err;
        }
        free(joined);
        joined = NULL;
    }
    rv = 0;
err:
    if (rv != 0)
        cli_error("out of memory");
    free(joined);
    free(text);
    return rv;
}

static char *
join_path(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *path = malloc(len);

    if (path != NULL)
        snprintf(path, len, "%s/%s", dir, name);
    return path;
}

/* A unit file or drop-in that is a link to /dev/null (or empty) masks. */
static int
is_masked(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 &&
           (S_ISCHR(st.st_mode) || (S_ISREG(st.st_mode) && st.st_size == 0));
}

/*
 * The names of the directories that hold drop-ins for unit: UNIT.d, the
 * template's for an instance, each dash-prefix ("a-b-c.service" also reads
 * "a-b-.service.d" and "a-.service.d") and the type's ("service.d").
 */
static int
dropin_dir_names(const char *unit, struct strv *names)
{
    char buf[UNIT_NAME_MAX + 16];
    const char *at = strchr(unit, '@');
    const char *suffix = strrchr(unit, '.');
    size_t prefix_len = (size_t)((at != NULL ? at : suffix) - unit), i;

    snprintf(buf, sizeof(buf), "%s.d", unit);
    if (strv_push(names, buf) != 0)
        return -1;
    if (at != NULL && at + 1 != suffix) {
        snprintf(buf, sizeof(buf), "%.*s@%s.d", (int)(at - unit), unit, suffix);
        if (strv_push(names, buf) != 0)
            return -1;
    }
    for (i = prefix_len; i > 0; i--) {
        if (unit[i - 1] != '-' || i == 1)
            continue;
        snprintf(buf, sizeof(buf), "%.*s%s.d", (int)i, unit, suffix);
        if (strv_push(names, buf) != 0)
            return -1;
    }
    snprintf(buf, sizeof(buf), "%s.d", suffix + 1);
    return strv_push(names, buf);
}

static int
dropin_compare(const void *a, const void *b)
{
    return strcmp(((const struct dropin *)a)->name,
                  ((const struct dropin *)b)->name);
}

static int
dropins_add(struct dropins *d, const char *name, char *path)
{
    struct dropin *grown;
    size_t i;

    for (i = 0; i < d->n; i++)
        if (strcmp(d->v[i].name, name) == 0) {
            /* a drop-in of this name in a directory of higher priority
             * already masks this one */
            free(path);
            return 0;
        }
    if ((grown = realloc(d->v, (d->n + 1) * sizeof(*grown))) == NULL)
        goto err;
    d->v = grown;
    if ((d->v[d->n].name = strdup(name)) == NULL)
        goto err;
    d->v[d->n++].path = path;
    return 0;
err:
    free(path);
    return -1;
}

/*
 * Collect the drop-ins of the unit's names (its name and, for an alias,
 * the name it is an alias of), one per file name (the directory first in
 * the search path wins), in the order systemd applies them.  Our own
 * drop-in takes its slot in the directory written to; one of that name
 * in a directory of higher priority would mask it, which is an error.
 */
static int
collect_dropins(const char *const units[2], const char *const *dirs,
                size_t ndirs, size_t write_index, struct dropins *d)
{
    struct strv names = {NULL, 0};
    size_t i, j;
    int rv = -1;

    for (i = 0; i < 2 && units[i] != NULL; i++)
        if (dropin_dir_names(units[i], &names) != 0)
            goto nomem;
    for (i = 0; i < ndirs; i++) {
        if (i == write_index && dropins_add(d, DROPIN_NAME, NULL) != 0)
            goto nomem;
        for (j = 0; j < names.n; j++) {
            char *dirpath = join_path(dirs[i], names.v[j]);
            struct dirent *e;
            DIR *dir;

            if (dirpath == NULL)
                goto nomem;
            dir = opendir(dirpath);
            while (dir != NULL && (e = readdir(dir)) != NULL) {
                char *path;

                if (e->d_name[0] == '.' || !has_suffix(e->d_name, ".conf"))
                    continue;
                if ((path = join_path(dirpath, e->d_name)) == NULL) {
                    closedir(dir);
                    free(dirpath);
                    goto nomem;
                }
                if (i < write_index && strcmp(e->d_name, DROPIN_NAME) == 0) {
                    cli_error("%s masks the drop-in this would write to %s; "
                              "remove it first",
                              path, dirs[write_index]);
                    free(path);
                    closedir(dir);
                    free(dirpath);
                    goto out;
                }
                if (dropins_add(d, e->d_name, path) != 0) {
                    closedir(dir);
                    free(dirpath);
                    goto nomem;
                }
            }
            if (dir != NULL)
                closedir(dir);
            free(dirpath);
        }
    }
    qsort(d->v, d->n, sizeof(*d->v), dropin_compare);
    rv = 0;
    goto out;
nomem:
    cli_error("out of memory");
out:
    strv_clear(&names);
    return rv;
}

/* The unit file: the first in the search path; for an instance without a
 * file of its own, the template's. */
static char *
find_fragment(const char *unit, const char *const *dirs, size_t ndirs)
{
    char template[UNIT_NAME_MAX + 1];
    const char *at = strchr(unit, '@'), *suffix = strrchr(unit, '.');
    const char *names[2] = {unit, NULL};
    size_t i, k;

    if (at != NULL && at + 1 != suffix) {
        snprintf(template, sizeof(template), "%.*s@%s", (int)(at - unit), unit,
                 suffix);
        names[1] = template;
    }
    for (k = 0; k < 2 && names[k] != NULL; k++)
        for (i = 0; i < ndirs; i++) {
            char *path = join_path(dirs[i], names[k]);

            if (path == NULL || access(path, F_OK) == 0 || is_masked(path))
                return path;
            free(path);
        }
    return NULL;
}

/* Whether an EnvironmentFile= sets LD_PRELOAD: 1 yes, 0 no, -1 unreadable
 * (errno set). */
static int
env_file_sets_preload(const char *path)
{
    char *text, *line, *next;
    int found = 0;

    if ((text = read_text(path)) == NULL)
        return -1;
    for (line = text; line != NULL; line = next) {
        if ((next = strchr(line, '\n')) != NULL)
            *next++ = '\0';
        line = trim(line);
        if (strncmp(line, "export", 6) == 0 &&
            (line[6] == ' ' || line[6] == '\t'))
            line = trim(line + 6);
        if (strncmp(line, "LD_PRELOAD", 10) == 0 && trim(line + 10)[0] == '=')
            found = 1;
    }
    free(text);
    return found;
}

/*
 * When the unit file found for name is a link to a unit file of another
 * name, name is an alias (systemctl enable makes them, e.g. redis.service
 * for redis-server.service): the unit is that other name, into canon.
 */
static void
resolve_alias(const char *name, const char *fragment, char *canon, size_t len)
{
    char target[PATH_MAX];
    const char *base = strrchr(fragment, '/'), *tbase;

    util_strlcpy(canon, name, len);
    if (base == NULL || strcmp(base + 1, name) != 0 ||
        realpath(fragment, target) == NULL ||
        (tbase = strrchr(target, '/')) == NULL)
        return;
    tbase++;
    if (strcmp(tbase, name) != 0 && has_suffix(tbase, ".service") &&
        strlen(tbase) <= UNIT_NAME_MAX &&
        strspn(tbase, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                      "0123456789:-_.\\@") == strlen(tbase)) {
        util_strlcpy(canon, tbase, len);
        fprintf(stderr, "tlsshim: %s is an alias of %s\n", name, canon);
    }
}

/* Read what the unit's files say, and the unit's own name into canon
 * (name, or what it is an alias of); -1 on an error (printed). */
static int
unit_read(const char *name, const char *const *dirs, size_t ndirs,
          size_t write_index, char *canon, size_t canonlen, struct unit_info *u)
{
    struct dropins d = {NULL, 0};
    const char *units[2] = {name, NULL};
    int after_ours = 0, rv = -1;
    size_t i;

    util_strlcpy(canon, name, canonlen);
    if ((u->fragment = find_fragment(name, dirs, ndirs)) != NULL) {
        if (is_masked(u->fragment)) {
            cli_error("%s is masked (%s)", name, u->fragment);
            return -1;
        }
        resolve_alias(name, u->fragment, canon, canonlen);
        if (strcmp(canon, name) != 0)
            units[1] = canon;
    }
    if (collect_dropins(units, dirs, ndirs, write_index, &d) != 0)
        goto out;
    if (u->fragment != NULL && parse_unit_file(u, u->fragment, 0) != 0)
        goto out;
    for (i = 0; i < d.n; i++) {
        if (d.v[i].path == NULL) {
            after_ours = 1;
            continue;
        }
        if (is_masked(d.v[i].path))
            continue;
        if (parse_unit_file(u, d.v[i].path, after_ours) != 0)
            goto out;
    }
    rv = 0;
out:
    dropins_free(&d);
    return rv;
}

/* -------------------------------------------------------------------- */
/* Checks                                                               */

/* What would make the drop-in ineffective; 0 to go on. */
static int
check_overrides(const char *unit, const struct unit_info *u)
{
    size_t i;
    int r;

    if (u->late_file != NULL) {
        cli_error("%s sets LD_PRELOAD of %s after this drop-in would, "
                  "which would take tlsshim out: add the library to it "
                  "instead, or remove it",
                  u->late_file, unit);
        return -1;
    }
    if (u->unset_file != NULL) {
        cli_error("%s: UnsetEnvironment= of %s removes LD_PRELOAD or a "
                  "TLSSHIM_ variable, which would take tlsshim out",
                  u->unset_file, unit);
        return -1;
    }
    for (i = 0; i < u->env_files.n; i++) {
        const char *path = u->env_files.v[i];
        int optional = *path == '-';

        if (optional)
            path++;
        if (strchr(path, '%') != NULL) {
            cli_warn("cannot read EnvironmentFile=%s (a specifier): if it "
                     "sets LD_PRELOAD, that replaces the drop-in's and "
                     "tlsshim is not loaded",
                     path);
            continue;
        }
        if ((r = env_file_sets_preload(path)) > 0) {
            cli_error("%s sets LD_PRELOAD for %s, and an EnvironmentFile= "
                      "overrides Environment=: append the library there",
                      path, unit);
            return -1;
        }
        if (r < 0 && !(optional && errno == ENOENT))
            cli_warn("cannot read EnvironmentFile=%s (%s): if it sets "
                     "LD_PRELOAD, that replaces the drop-in's and tlsshim "
                     "is not loaded",
                     path, strerror(errno));
    }
    return 0;
}

/* An uncovered service: refused, or with --allow-uncovered a warning. */
static int
uncovered(const struct cli_options *o, const char *unit, const char *why)
{
    if (o->allow_uncovered) {
        cli_warn("%s is not covered: %s", unit, why);
        return 0;
    }
    cli_error("%s cannot be covered: %s (use --allow-uncovered to make the "
              "drop-in anyway)",
              unit, why);
    return -1;
}

/* SPEC section 9 for the service: its own root, and what ExecStart= runs. */
static int
check_coverage(const struct cli_options *o, const char *unit,
               const struct unit_info *u)
{
    char path[PATH_MAX], reason[1024], why[PATH_MAX + 1100];
    size_t i;
    int r;

    if (u->root != NULL) {
        snprintf(why, sizeof(why),
                 "it runs in its own root (%s), where the library and the "
                 "policy are not",
                 u->root);
        if (uncovered(o, unit, why) != 0)
            return -1;
    }
    for (i = 0; i < u->exec_start.n; i++) {
        const char *prog = u->exec_start.v[i];

        if (strchr(prog, '%') != NULL) {
            cli_warn("cannot inspect ExecStart=%s (a specifier)", prog);
            continue;
        }
        if (inspect_find_command(prog, SERVICE_PATH, path, sizeof(path)) != 0) {
            cli_warn("cannot find ExecStart=%s to inspect it", prog);
            continue;
        }
        r = inspect_command_path(path, SERVICE_PATH, reason, sizeof(reason));
        if (r == INSPECT_ERROR) {
            cli_warn("cannot inspect %s: %s", path, reason);
        } else if (r == INSPECT_UNCOVERED) {
            snprintf(why, sizeof(why), "%s: %s", path, reason);
            if (uncovered(o, unit, why) != 0)
                return -1;
        }
    }
    return 0;
}

/* path with symbolic links resolved where it exists, as systemd resolves
 * the paths of its sandbox settings. */
static void
canonical_path(const char *path, char *out, size_t len)
{
    char buf[PATH_MAX];

    util_strlcpy(out, realpath(path, buf) != NULL ? buf : path, len);
}

static int
path_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);

    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n == 1 && dir[0] == '/')
        return 1;
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* 1 + the length of the deepest path of list that path lies under, or 0:
 * the deepest of nested settings decides. */
static size_t
deepest_under(const struct strv *list, const char *path)
{
    char dir[PATH_MAX];
    size_t i, best = 0;

    for (i = 0; i < list->n; i++) {
        canonical_path(list->v[i], dir, sizeof(dir));
        if (path_under(path, dir) && strlen(dir) + 1 > best)
            best = strlen(dir) + 1;
    }
    return best;
}

/* The setting that hides path from the service, or NULL when it sees it. */
static const char *
hidden_by(const struct unit_info *u, const char *path)
{
    char dir[PATH_MAX], bind[PATH_MAX];
    size_t i, j;

    for (i = 0; i < u->hidden.n; i++) {
        canonical_path(u->hidden.v[i], dir, sizeof(dir));
        if (!path_under(path, dir))
            continue;
        for (j = 0; j < u->bound.n; j++) {
            canonical_path(u->bound.v[j], bind, sizeof(bind));
            if (path_under(path, bind) && path_under(bind, dir))
                break;
        }
        if (j == u->bound.n)
            return u->hidden_by.v[i];
    }
    return NULL;
}

/*
 * The service's sandbox must let it see and map the library, or ld.so
 * skips it with a warning and the service runs without TLS; and see the
 * policy, or every connection fails.  PrivateTmp= and ProtectHome= hide
 * directories as InaccessiblePaths= and TemporaryFileSystem= do.
 */
static int
check_sandbox(const struct cli_options *o, const char *unit,
              struct unit_info *u, char *const libs[2], const char *policy)
{
    static const char *const tmp_dirs[] = {"/tmp", "/var/tmp"};
    static const char *const home_dirs[] = {"/home", "/root", "/run/user"};
    char path[PATH_MAX], why[PATH_MAX + 256];
    const char *by;
    size_t i;

    for (i = 0; u->private_tmp && i < TLSSHIM_NELEMS(tmp_dirs); i++)
        if (strv_push(&u->hidden, tmp_dirs[i]) != 0 ||
            strv_push(&u->hidden_by, "PrivateTmp") != 0)
            goto nomem;
    for (i = 0;
         u->protect_home != NULL &&
         (is_yes(u->protect_home) || strcmp(u->protect_home, "tmpfs") == 0) &&
         i < TLSSHIM_NELEMS(home_dirs);
         i++)
        if (strv_push(&u->hidden, home_dirs[i]) != 0 ||
            strv_push(&u->hidden_by, "ProtectHome") != 0)
            goto nomem;

    for (i = 0; i < 2 && libs[i] != NULL; i++) {
        size_t noexec, exec;

        canonical_path(libs[i], path, sizeof(path));
        if ((by = hidden_by(u, path)) != NULL) {
            snprintf(why, sizeof(why), "%s= hides %s from it", by, libs[i]);
            if (uncovered(o, unit, why) != 0)
                return -1;
        }
        noexec = deepest_under(&u->noexec, path);
        exec = deepest_under(&u->exec, path);
        if (noexec > 0 && noexec >= exec) {
            snprintf(why, sizeof(why),
                     "NoExecPaths= keeps it from loading %s (add its "
                     "directory to ExecPaths=)",
                     libs[i]);
            if (uncovered(o, unit, why) != 0)
                return -1;
        }
    }
    if (policy != NULL) {
        canonical_path(policy, path, sizeof(path));
        if ((by = hidden_by(u, path)) != NULL) {
            cli_error("%s= hides the policy %s from %s: every connection "
                      "would fail",
                      by, policy, unit);
            return -1;
        }
    }
    return 0;
nomem:
    cli_error("out of memory");
    return -1;
}

/* The service must read the policy; the shim refuses it otherwise. */
static void
check_policy_readable(const char *unit, const char *policy,
                      const struct unit_info *u)
{
    struct stat st;

    if (u->user == NULL || strcmp(u->user, "root") == 0 ||
        strcmp(u->user, "0") == 0 || stat(policy, &st) != 0)
        return;
    if ((st.st_mode & S_IROTH) == 0)
        cli_warn("%s runs as %s, and other users cannot read %s: the shim "
                 "fails every connection when it cannot read its policy",
                 unit, u->user, policy);
}

/* -------------------------------------------------------------------- */
/* Writing the drop-in                                                  */

static int
has_control(const char *s)
{
    const unsigned char *p;

    for (p = (const unsigned char *)s; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 1;
    return 0;
}

/* Paths go into a line-oriented file (AssertPathExists=, comments). */
static int
check_path_text(const char *what, const char *path)
{
    if (has_control(path)) {
        cli_error("%s holds a control character, which a unit file "
                  "cannot carry",
                  what);
        return -1;
    }
    return 0;
}

/* NAME=VALUE as one double-quoted word of Environment=, which systemd
 * reads with C escapes: '\' and '"' escaped, control characters as \xNN;
 * '%' doubled unless the value is already in unit-file form (the
 * LD_PRELOAD taken from the unit, specifiers and all). */
static void
put_environment(FILE *out, const char *name, const char *value, int specifiers)
{
    const unsigned char *v = (const unsigned char *)value;

    fprintf(out, "Environment=\"%s=", name);
    for (; *v != '\0'; v++) {
        if (*v < 0x20 || *v == 0x7f) {
            fprintf(out, "\\x%02x", *v);
            continue;
        }
        if (*v == '\\' || *v == '"')
            fputc('\\', out);
        else if (*v == '%' && !specifiers)
            fputc('%', out);
        fputc(*v, out);
    }
    fputs("\"\n", out);
}

/* A path setting (specifiers expanded, no quoting). */
static void
put_path_setting(FILE *out, const char *key, const char *path)
{
    fprintf(out, "%s=", key);
    for (; *path != '\0'; path++) {
        if (*path == '%')
            fputc('%', out);
        fputc(*path, out);
    }
    fputc('\n', out);
}

/* list with item appended (unless there), malloc'ed. */
static char *
preload_append(const char *list, const char *item)
{
    size_t len;
    char *out;

    if (list == NULL || *list == '\0')
        return strdup(item);
    if (cli_list_contains(list, item))
        return strdup(list);
    len = strlen(list) + strlen(item) + 2;
    if ((out = malloc(len)) != NULL)
        snprintf(out, len, "%s:%s", list, item);
    return out;
}

struct dropin_text {
    const char *unit;
    const char *preload;      /* the value to set */
    const char *preload_from; /* where the unit's own value came from */
    const char *libs[2];      /* AssertPathExists= */
    const char *policy;       /* NULL: the embedded default */
    const char *debug, *log, *report;
    int default_report;
};

static void
put_dropin(FILE *out, const struct dropin_text *t)
{
    char logdir[UNIT_NAME_MAX + 1];
    size_t i;

    unit_path_component(t->unit, logdir, sizeof(logdir));
    fprintf(out,
            "# Runs %s under tlsshim; made by tlsshim --unit-dropin.\n"
            "# Apply with: systemctl daemon-reload && "
            "systemctl restart %s\n"
            "# Make it again when the unit's LD_PRELOAD changes: systemd "
            "cannot append\n"
            "# to a variable, so the value below is the unit's own with "
            "the library added.\n",
            t->unit, t->unit);
    /* a missing library would be skipped by ld.so with a warning: fail
     * the start instead of running the service without TLS */
    fputs("\n[Unit]\n", out);
    for (i = 0; i < TLSSHIM_NELEMS(t->libs) && t->libs[i] != NULL; i++)
        put_path_setting(out, "AssertPathExists", t->libs[i]);
    if (t->policy != NULL)
        put_path_setting(out, "AssertPathExists", t->policy);
    fputs("\n[Service]\n", out);
    if (t->preload_from != NULL && !has_control(t->preload_from))
        fprintf(out, "# LD_PRELOAD of %s, with tlsshim appended\n",
                t->preload_from);
    put_environment(out, "LD_PRELOAD", t->preload, 1);
    if (t->policy != NULL)
        put_environment(out, "TLSSHIM_CONF", t->policy, 0);
    else
        fputs("# No policy file: the embedded default policy applies "
              "(tlsshim --check).\n",
              out);
    if (t->debug != NULL)
        put_environment(out, "TLSSHIM_DEBUG", t->debug, 0);
    if (t->log != NULL)
        put_environment(out, "TLSSHIM_LOG", t->log, 0);
    if (t->default_report) {
        fprintf(out,
                "# The connection report, in a directory systemd makes "
                "writable for the service\n"
                "LogsDirectory=tlsshim/%s\n",
                logdir);
        fprintf(out,
                "Environment=\"TLSSHIM_REPORT=/var/log/tlsshim/%s/"
                "connections.jsonl\"\n",
                logdir);
    } else if (t->report != NULL) {
        put_environment(out, "TLSSHIM_REPORT", t->report, 0);
    }
}

/* Replace DIR/UNIT.d/tlsshim.conf with text, atomically. */
static int
write_dropin(const char *dir, const char *unit, const char *text, size_t len)
{
    char sub[PATH_MAX], tmp[PATH_MAX], dst[PATH_MAX];
    struct stat st;
    size_t off = 0;
    ssize_t n;
    int fd = -1, rv = -1;

    if ((size_t)snprintf(sub, sizeof(sub), "%s/%s.d", dir, unit) >=
            sizeof(sub) ||
        (size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", sub, DROPIN_NAME) >=
            sizeof(tmp) ||
        (size_t)snprintf(dst, sizeof(dst), "%s/%s", sub, DROPIN_NAME) >=
            sizeof(dst)) {
        cli_error("%s: path too long", dir);
        return -1;
    }
    if (mkdir(sub, 0755) != 0 && errno != EEXIST) {
        cli_error("cannot create %s: %s", sub, strerror(errno));
        return -1;
    }
    if (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode)) {
        cli_error("%s is not a directory", sub);
        return -1;
    }
    if ((fd = mkstemp(tmp)) < 0) {
        cli_error("cannot create a file in %s: %s", sub, strerror(errno));
        return -1;
    }
    while (off < len) {
        n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto err;
        off += (size_t)n;
    }
    if (fchmod(fd, 0644) != 0 || fsync(fd) != 0)
        goto err;
    if (close(fd) != 0) {
        fd = -1;
        goto err;
    }
    fd = -1;
    if (rename(tmp, dst) != 0)
        goto err;
    fprintf(stderr,
            "tlsshim: wrote %s\n"
            "tlsshim: to apply it: systemctl daemon-reload && "
            "systemctl restart %s\n",
            dst, unit);
    rv = 0;
err:
    if (rv != 0) {
        cli_error("cannot write %s: %s", dst, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
    }
    return rv;
}

static int
is_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The libraries to preload, into libs[] (malloc'ed); -1 when missing. */
static int
find_libraries(const struct policy *p, char *libs[2])
{
    char dir[PATH_MAX], path[PATH_MAX + 64];

    cli_library_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/" SHIM_LIBRARY, dir);
    if (!is_file(path)) {
        cli_error("cannot find the shim library %s", path);
        return -1;
    }
    if (strcmp(dir, TLSSHIM_PKGLIBDIR) != 0)
        cli_warn("the drop-in names the library of the build tree, %s; "
                 "install tlsshim for services",
                 path);
    if ((libs[0] = strdup(path)) == NULL)
        return -1;
    if (p->has_enforce) {
        snprintf(path, sizeof(path), "%s/" ENFORCE_LIBRARY, dir);
        if (!is_file(path)) {
            cli_error("the policy has enforce rules, but %s is missing", path);
            return -1;
        }
        if ((libs[1] = strdup(path)) == NULL)
            return -1;
    }
    return 0;
}

int
cli_unit_dropin(const struct cli_options *o)
{
    const char *override = getenv("TLSSHIM_SYSTEMD_DIR");
    const char *const *dirs = system_unit_dirs;
    size_t ndirs = TLSSHIM_NELEMS(system_unit_dirs);
    size_t write_index = SYSTEM_WRITE_DIR_INDEX, i, textlen = 0;
    char name[UNIT_NAME_MAX + 16], unit[UNIT_NAME_MAX + 16], level[16];
    char *libs[2] = {NULL, NULL}, *policy_path = NULL, *preload = NULL;
    char *log = NULL, *report = NULL, *text = NULL;
    struct unit_info u;
    struct dropin_text t;
    struct policy *p = NULL;
    FILE *out;
    int status = CLI_EXIT_USAGE;

    memset(&u, 0, sizeof(u));
    memset(&t, 0, sizeof(t));
    if (override != NULL && *override != '\0') {
        dirs = &override;
        ndirs = 1;
        write_index = 0;
    }
    if (unit_name_make(o->args[0], name, sizeof(name)) != 0)
        return CLI_EXIT_USAGE;
    if ((p = cli_load_policy(o)) == NULL)
        return CLI_EXIT_USAGE;
    if (find_libraries(p, libs) != 0)
        goto out;
    for (i = 0; i < TLSSHIM_NELEMS(libs) && libs[i] != NULL; i++)
        if (strpbrk(libs[i], ": ") != NULL) {
            cli_error("cannot preload %s: its path holds a colon or space",
                      libs[i]);
            goto out;
        }
    if (!p->embedded) {
        if ((policy_path = cli_absolute_path(p->file)) == NULL) {
            cli_error("%s: %s", p->file, strerror(errno));
            goto out;
        }
        if (check_path_text("the policy's path", policy_path) != 0)
            goto out;
    }

    if (unit_read(name, dirs, ndirs, write_index, unit, sizeof(unit), &u) != 0)
        goto out;
    if (u.fragment == NULL)
        cli_warn("cannot find %s in %s%s: an LD_PRELOAD it sets elsewhere "
                 "would be replaced",
                 unit, dirs[0],
                 ndirs > 1 ? " and the rest of systemd's "
                             "search path"
                           : "");
    if (check_overrides(unit, &u) != 0 || check_coverage(o, unit, &u) != 0 ||
        check_sandbox(o, unit, &u, libs, policy_path) != 0)
        goto out;
    if (policy_path != NULL)
        check_policy_readable(unit, policy_path, &u);

    preload = libs[0] != NULL ? preload_append(u.preload, libs[0]) : NULL;
    if (preload != NULL && libs[1] != NULL) {
        char *both = preload_append(preload, libs[1]);
        free(preload);
        preload = both;
    }
    if (o->log != NULL)
        log = strcmp(o->log, "stderr") == 0 || strcmp(o->log, "syslog") == 0
                  ? strdup(o->log)
                  : cli_absolute_path(o->log);
    if (o->report != NULL)
        report = cli_absolute_path(o->report);
    if (preload == NULL || (o->log != NULL && log == NULL) ||
        (o->report != NULL && report == NULL)) {
        cli_error("out of memory");
        goto out;
    }
    if ((log != NULL && check_path_text("the log's path", log) != 0) ||
        (report != NULL && check_path_text("the report's path", report) != 0))
        goto out;
    if (o->debug >= 0)
        snprintf(level, sizeof(level), "%d", o->debug);

    t.unit = unit;
    t.preload = preload;
    t.preload_from =
        u.preload != NULL && *u.preload != '\0' ? u.preload_file : NULL;
    t.libs[0] = libs[0];
    t.libs[1] = libs[1];
    t.policy = policy_path;
    t.debug = o->debug >= 0 ? level : NULL;
    t.log = log;
    t.report = report;
    t.default_report = report == NULL;

    if (!o->write) {
        put_dropin(stdout, &t);
        status = 0;
        goto out;
    }
    if ((out = open_memstream(&text, &textlen)) == NULL) {
        cli_error("out of memory");
        goto out;
    }
    put_dropin(out, &t);
    if (fclose(out) != 0) {
        cli_error("out of memory");
        goto out;
    }
    if (write_dropin(dirs[write_index], unit, text, textlen) == 0)
        status = 0;
out:
    free(text);
    free(log);
    free(report);
    free(preload);
    free(policy_path);
    for (i = 0; i < TLSSHIM_NELEMS(libs); i++)
        free(libs[i]);
    unit_info_free(&u);
    policy_free(p);
    return status;
}
