/*
 * escapes MODE HOST PORT: connect (a plain TCP client; under tlsshim a TLS
 * one), then let the connection escape the hooked calls in one of the
 * ways SPEC section 9 lists, send one line through it and print the
 * echoed line:
 *   stdout   dup2 the socket onto fd 1 and printf (stdio, libc-internal)
 *   system   system("echo via-system >&3; head -n1 <&3")
 *   popen    popen("echo via-popen >&3; head -n1 <&3", "r")
 *   fdopen   fdopen + fprintf/fgets
 *   dprintf  dprintf, then read
 *   exec     an inetd-style hand-over: exec /bin/sh on fd 0/1
 *   dup      dup onto the lowest free fd after closing 0
 *   spawn    posix_spawn a shell with a close-on-exec TLS socket dup2ed
 *            onto its stdin and stdout by the file actions
 *   vfork    a vfork()ed child execs a shell that tries to write into the
 *            inherited connection; then the parent uses it
 * The socket is created without SOCK_CLOEXEC so that children inherit it.
 */
#include <fcntl.h>
#include <netdb.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int
connect_to(const char *host, const char *port)
{
    struct addrinfo hints, *res;
    int fd;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        exit(3);
    fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        perror("escapes: connect");
        exit(3);
    }
    freeaddrinfo(res);
    return fd;
}

static void
read_line(int fd, const char *tag)
{
    char buf[256];
    size_t n = 0;

    while (n < sizeof(buf) - 1) {
        ssize_t r = read(fd, buf + n, 1);
        if (r <= 0)
            break;
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = '\0';
    fprintf(stderr, "%s got: %s", tag, buf);
}

int
main(int argc, char **argv)
{
    volatile int fd;   /* survives vfork */

    if (argc != 4) {
        fprintf(stderr, "usage: escapes MODE HOST PORT\n");
        return 2;
    }
    alarm(20);
    fd = connect_to(argv[2], argv[3]);
    const char *mode = argv[1];
    if (strcmp(mode, "stdout") == 0) {
        int saved = dup(1);
        if (dup2(fd, 1) < 0) {
            perror("escapes: dup2");
            return 4;
        }
        printf("via-stdout\n");
        fflush(stdout);
        read_line(1, "stdout");
        dup2(saved, 1);
    } else if (strcmp(mode, "system") == 0) {
        char cmd[128];
        if (fd != 3 && dup2(fd, 3) < 0)
            return 4;
        snprintf(cmd, sizeof(cmd), "echo via-system >&3; head -n1 <&3 >&2");
        if (system(cmd) != 0)
            return 4;
    } else if (strcmp(mode, "popen") == 0) {
        char line[256];
        if (fd != 3 && dup2(fd, 3) < 0)
            return 4;
        FILE *p = popen("echo via-popen >&3; head -n1 <&3", "r");
        if (p == NULL || fgets(line, sizeof(line), p) == NULL)
            return 4;
        fprintf(stderr, "popen got: %s", line);
        pclose(p);
    } else if (strcmp(mode, "fdopen") == 0) {
        char line[256];
        FILE *f = fdopen(fd, "r+");
        if (f == NULL) {
            perror("escapes: fdopen");
            return 4;
        }
        fprintf(f, "via-fdopen\n");
        fflush(f);
        if (fgets(line, sizeof(line), f) == NULL)
            return 4;
        fprintf(stderr, "fdopen got: %s", line);
        fclose(f);
        return 0;
    } else if (strcmp(mode, "dprintf") == 0) {
        if (dprintf(fd, "via-%s\n", "dprintf") < 0)
            return 4;
        read_line(fd, "dprintf");
    } else if (strcmp(mode, "exec") == 0) {
        if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0)
            return 4;
        close(fd);
        execl("/bin/sh", "sh", "-c", "echo via-exec; head -n1 >&2", (char *)NULL);
        perror("escapes: exec");
        return 4;
    } else if (strcmp(mode, "dup") == 0) {
        close(0);
        int nfd = dup(fd);    /* lands on 0 */
        if (nfd != 0)
            return 4;
        close(fd);
        if (write(0, "via-dup\n", 8) != 8)
            return 4;
        read_line(0, "dup");
    } else if (strcmp(mode, "spawn") == 0) {
        posix_spawn_file_actions_t fa;
        pid_t pid;
        int status;
        char *args[] = {"sh", "-c", "echo via-spawn; head -n1 >&2", NULL};
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
            posix_spawn_file_actions_init(&fa) != 0 ||
            posix_spawn_file_actions_adddup2(&fa, fd, 0) != 0 ||
            posix_spawn_file_actions_adddup2(&fa, fd, 1) != 0 ||
            posix_spawn(&pid, "/bin/sh", &fa, NULL, args, environ) != 0 ||
            waitpid(pid, &status, 0) < 0 || status != 0)
            return 4;
    } else if (strcmp(mode, "vfork") == 0) {
        int status;
        if (fd != 3 && (dup2(fd, 3) < 0 || close(fd) < 0))
            return 4;
        fd = 3;
        pid_t pid = vfork();
        if (pid == 0) {
            execl("/bin/sh", "sh", "-c", "echo LEAKED-PLAINTEXT >&3",
                  (char *)NULL);
            _exit(127);
        }
        if (pid < 0 || waitpid(pid, &status, 0) < 0)
            return 4;
        if (write(fd, "via-vfork\n", 10) != 10)
            return 4;
        read_line(fd, "vfork");
    } else {
        return 2;
    }
    close(fd);
    return 0;
}
