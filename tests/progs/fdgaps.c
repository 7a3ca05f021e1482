/*
 * fdgaps: the ways a program closes a connection without close(), or
 * hands it to a new image without execve() or the current posix_spawn,
 * for tests/bats/escapes.bats (SPEC sections 5 and 9).
 *
 *     fdgaps MODE HOST PORT [PLAIN_PORT [WAIT_FILE]]
 *
 * Connects to HOST:PORT (under tlsshim a TLS connection) with a socket
 * children inherit, placed on fd 3, then:
 *
 *   closerange  sends "hello-closerange", reads the echo, close_range(3, 3, 0)
 *   closefrom   the same with closefrom(3)
 *   fclose      fdopen(3), the line through the stream, fclose()
 *   cloexec     the line, close_range(3, 3, CLOSE_RANGE_CLOEXEC), exec a
 *               shell that tries to write "LEAK" on fd 3: the connection
 *               must be closed at exec, not handed to a relay
 *   fexecve     fexecve() of /bin/sh (an fd), which writes "via-fexecve"
 *               on fd 3 and copies the echo to stderr
 *   execveat    the same through execveat(dirfd of /bin, "sh", ..., 0)
 *   spawnold    the same through posix_spawn@GLIBC_2.2.5, the version
 *               binaries linked against glibc before 2.15 call
 *   vfork       the line; a vfork() child tries dup2(3, 0) (must fail with
 *               EACCES: no relay can be made there), closefrom(3) and
 *               exec /bin/true; then the parent sends the line again and
 *               closes the connection
 *
 * After closerange, closefrom and fclose, with WAIT_FILE, it waits (2 s at
 * most) until WAIT_FILE is not empty (the TLS peer recorded the end of the
 * connection), so the end is known to come from the close and not from
 * the exit.  With PLAIN_PORT, a socket() made then must get fd 3 back and
 * be a plain one: it sends "plain-after-MODE" to PLAIN_PORT.
 *
 * Exit status: 0 success, 1 wrong behaviour, 2 usage, 3 connect error,
 * 4 I/O error, 5 timeout (10 s).
 */
#define _GNU_SOURCE
#define PROG "fdgaps"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "progutil.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define TLS_FD 3

extern char **environ;

/* The posix_spawn of glibc before 2.15 (x86_64: GLIBC_2.2.5). */
#if defined(__x86_64__) && defined(__GLIBC__)
int posix_spawn_old(pid_t *, const char *, const posix_spawn_file_actions_t *,
                    const posix_spawnattr_t *, char *const[], char *const[]);
__asm__(".symver posix_spawn_old, posix_spawn@GLIBC_2.2.5");
#define HAVE_SPAWN_OLD 1
#endif

static const char *mode;

static void
fail(int status, const char *call, int err)
{
    if (err != 0)
        fprintf(stderr, "fdgaps: %s: %s: %s\n", mode, call, strerror(err));
    else
        fprintf(stderr, "fdgaps: %s: %s\n", mode, call);
    exit(status);
}

/* The first IPv4 address only; errors reported by fail(). */
static int
connect_inet(const char *host, const char *port)
{
    struct addrinfo hints, *res;
    int fd, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
        fprintf(stderr, "fdgaps: getaddrinfo: %s\n", gai_strerror(rc));
        exit(EXIT_CONNECT);
    }
    fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0)
        fail(EXIT_CONNECT, "connect", errno);
    freeaddrinfo(res);
    return fd;
}

/* Send "hello-MODE\n" on fd and read the echo. */
static void
exchange(int fd)
{
    char line[64], got[64];
    size_t n = 0;
    int len = snprintf(line, sizeof(line), "hello-%s\n", mode);

    if (write(fd, line, (size_t)len) != len)
        fail(EXIT_IO, "write", errno);
    while (n < (size_t)len) {
        ssize_t r = read(fd, got + n, (size_t)len - n);
        if (r <= 0)
            fail(EXIT_IO, "read", r < 0 ? errno : EPIPE);
        n += (size_t)r;
    }
    if (memcmp(got, line, n) != 0)
        fail(EXIT_WRONG, "echo differs", 0);
}

/* Wait until path is not empty: the peer saw the connection end. */
static void
wait_peer_end(const char *path)
{
    struct stat st;

    for (int i = 0; i < 200; i++) {
        if (stat(path, &st) == 0 && st.st_size > 0) {
            printf("%s: the peer saw the end before exit\n", mode);
            return;
        }
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    fail(EXIT_WRONG, "the peer saw no end of the connection within 2 s "
                     "of closing it", 0);
}

/* A new socket must take fd 3 back, untracked: its bytes reach the plain
 * sink at plain_port as written. */
static void
plain_after(const char *host, const char *plain_port)
{
    char line[64];
    int len = snprintf(line, sizeof(line), "plain-after-%s\n", mode);
    int fd = connect_inet(host, plain_port);

    if (fd != TLS_FD) {
        fprintf(stderr, "fdgaps: %s: new socket is fd %d, not %d\n", mode, fd,
                TLS_FD);
        exit(EXIT_WRONG);
    }
    if (write(fd, line, (size_t)len) != len)
        fail(EXIT_IO, "write (plain socket)", errno);
    if (close(fd) < 0)
        fail(EXIT_IO, "close (plain socket)", errno);
    printf("%s: fd %d reused by a plain socket\n", mode, fd);
}

static char *shell_args[] = {"sh", "-c", NULL, NULL};

static void
set_script(void)
{
    static char script[160];

    snprintf(script, sizeof(script), "echo via-%s >&3; head -n1 <&3 >&2",
             mode);
    shell_args[2] = script;
}

int
main(int argc, char **argv)
{
    int fd;

    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: fdgaps MODE HOST PORT [PLAIN_PORT [WAIT_FILE]]\n");
        return EXIT_USAGE;
    }
    mode = argv[1];
    signal(SIGALRM, on_alarm);
    alarm(10);
    fd = connect_inet(argv[2], argv[3]);
    if (fd != TLS_FD) {
        if (dup2(fd, TLS_FD) < 0)
            fail(EXIT_IO, "dup2", errno);
        close(fd);
        fd = TLS_FD;
    }
    fflush(stdout);

    if (strcmp(mode, "closerange") == 0) {
        exchange(fd);
        if (close_range(TLS_FD, TLS_FD, 0) < 0)
            fail(EXIT_IO, "close_range", errno);
        if (fcntl(TLS_FD, F_GETFD) >= 0 || errno != EBADF)
            fail(EXIT_WRONG, "fd 3 still open after close_range", 0);
    } else if (strcmp(mode, "closefrom") == 0) {
        exchange(fd);
        closefrom(TLS_FD);
        if (fcntl(TLS_FD, F_GETFD) >= 0 || errno != EBADF)
            fail(EXIT_WRONG, "fd 3 still open after closefrom", 0);
    } else if (strcmp(mode, "fclose") == 0) {
        char line[64];
        FILE *f = fdopen(fd, "r+");
        if (f == NULL)
            fail(EXIT_IO, "fdopen", errno);
        if (fprintf(f, "hello-%s\n", mode) < 0 || fflush(f) != 0)
            fail(EXIT_IO, "fprintf", errno);
        if (fgets(line, sizeof(line), f) == NULL)
            fail(EXIT_IO, "fgets", errno ? errno : EPIPE);
        if (strncmp(line, "hello-fclose\n", sizeof(line)) != 0)
            fail(EXIT_WRONG, "echo differs", 0);
        if (fclose(f) != 0)
            fail(EXIT_IO, "fclose", errno);
    } else if (strcmp(mode, "cloexec") == 0) {
        exchange(fd);
        if (close_range(TLS_FD, TLS_FD, CLOSE_RANGE_CLOEXEC) < 0)
            fail(EXIT_IO, "close_range(CLOSE_RANGE_CLOEXEC)", errno);
        if (!(fcntl(TLS_FD, F_GETFD) & FD_CLOEXEC))
            fail(EXIT_WRONG, "fd 3 not close-on-exec", 0);
        execl("/bin/sh", "sh", "-c",
              "if { echo LEAK >&3; } 2>/dev/null; then echo 'cloexec: fd 3 "
              "open after exec'; exit 1; fi; echo 'cloexec: fd 3 closed at exec'",
              (char *)NULL);
        fail(EXIT_IO, "execl", errno);
    } else if (strcmp(mode, "fexecve") == 0) {
        int sh = open("/bin/sh", O_RDONLY | O_CLOEXEC);
        if (sh < 0)
            fail(EXIT_IO, "open /bin/sh", errno);
        set_script();
        fexecve(sh, shell_args, environ);
        fail(EXIT_IO, "fexecve", errno);
    } else if (strcmp(mode, "execveat") == 0) {
        int bin = open("/bin", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (bin < 0)
            fail(EXIT_IO, "open /bin", errno);
        set_script();
        execveat(bin, "sh", shell_args, environ, 0);
        fail(EXIT_IO, "execveat", errno);
    } else if (strcmp(mode, "vfork") == 0) {
        int status;
        exchange(fd);
        pid_t pid = vfork();
        if (pid == 0) {
            if (dup2(TLS_FD, 0) >= 0 || errno != EACCES)
                _exit(40);
            closefrom(TLS_FD);
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        if (pid < 0 || waitpid(pid, &status, 0) < 0)
            fail(EXIT_IO, "vfork", errno);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "fdgaps: vfork: child status %d (40: its dup2 "
                            "of the TLS socket was not refused)\n", status);
            return EXIT_WRONG;
        }
        exchange(fd);
        if (close(fd) < 0)
            fail(EXIT_IO, "close", errno);
    } else if (strcmp(mode, "spawnold") == 0) {
#ifdef HAVE_SPAWN_OLD
        pid_t pid;
        int status, rc;
        set_script();
        if ((rc = posix_spawn_old(&pid, "/bin/sh", NULL, NULL, shell_args,
                                  environ)) != 0)
            fail(EXIT_IO, "posix_spawn@GLIBC_2.2.5", rc);
        if (waitpid(pid, &status, 0) < 0)
            fail(EXIT_IO, "waitpid", errno);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail(EXIT_WRONG, "the spawned shell failed", 0);
        close(fd);
        return 0;
#else
        fprintf(stderr, "fdgaps: spawnold: not available here\n");
        return 77;
#endif
    } else {
        fprintf(stderr, "fdgaps: unknown mode %s\n", mode);
        return EXIT_USAGE;
    }
    printf("%s: closed\n", mode);
    fflush(stdout);
    if (argc == 6)
        wait_peer_end(argv[5]);
    if (argc >= 5)
        plain_after(argv[2], argv[4]);
    return 0;
}
