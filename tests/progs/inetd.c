/*
 * inetd: the smallest inetd-style server, for the end-to-end tests of
 * server mode (SPEC sections 5 and 9: an accepted connection that stays
 * open across execve() is handed to a relay process).
 *
 *     inetd [-n COUNT] HOST PORT COMMAND [ARG...]
 *
 * Listens on HOST:PORT (a numeric address), prints "READY\n" on stdout,
 * and for each connection it accepts forks a child that dup2()s the
 * connection onto fd 0 and 1 and execs COMMAND, as inetd's "nowait"
 * services do.  The parent never reads or writes the connection, so the
 * handshake of a TLS server connection has not happened when the child
 * execs.  With -n it exits after COUNT connections; otherwise it serves
 * until killed.  Errors are reported as "inetd: CALL: strerror".
 * Exit status: 0 done, 2 usage, 3 socket setup, 4 accept or fork error.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_USAGE 2
#define EXIT_SETUP 3
#define EXIT_SERVE 4

static void
report(const char *call, int err)
{
    fprintf(stderr, "inetd: %s: %s\n", call, strerror(err));
}

static void
usage(void)
{
    fprintf(stderr, "usage: inetd [-n COUNT] HOST PORT COMMAND [ARG...]\n");
    exit(EXIT_USAGE);
}

/* A listening socket on HOST:PORT, or -1 after reporting why. */
static int
listen_on(const char *host, const char *port)
{
    struct addrinfo hints, *res = NULL;
    int fd = -1, one = 1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
        fprintf(stderr, "inetd: getaddrinfo: %s\n", gai_strerror(rc));
        return -1;
    }
    if ((fd = socket(res->ai_family, SOCK_STREAM, 0)) == -1) {
        report("socket", errno);
        goto err;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1) {
        report("setsockopt", errno);
        goto err;
    }
    if (bind(fd, res->ai_addr, res->ai_addrlen) == -1) {
        report("bind", errno);
        goto err;
    }
    if (listen(fd, 16) == -1) {
        report("listen", errno);
        goto err;
    }
    freeaddrinfo(res);
    return fd;
err:
    if (fd != -1)
        close(fd);
    freeaddrinfo(res);
    return -1;
}

/* The child: the connection becomes stdin and stdout of COMMAND. */
static void
run_service(int lfd, int cfd, char **argv)
{
    close(lfd);
    if (dup2(cfd, STDIN_FILENO) == -1 || dup2(cfd, STDOUT_FILENO) == -1) {
        report("dup2", errno);
        _exit(EXIT_SERVE);
    }
    if (cfd != STDIN_FILENO && cfd != STDOUT_FILENO)
        close(cfd);
    execvp(argv[0], argv);
    report("execvp", errno);
    _exit(127);
}

int
main(int argc, char **argv)
{
    long count = -1, served = 0;
    struct sigaction sa;
    char *end;
    int lfd, cfd, opt;
    pid_t pid;

    while ((opt = getopt(argc, argv, "+n:")) != -1) {
        switch (opt) {
        case 'n':
            errno = 0;
            count = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || count < 1)
                usage();
            break;
        default:
            usage();
        }
    }
    if (argc - optind < 3)
        usage();

    /* Children are reaped by the kernel, as inetd's nowait services. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = SA_NOCLDWAIT;
    if (sigaction(SIGCHLD, &sa, NULL) == -1) {
        report("sigaction", errno);
        return EXIT_SETUP;
    }

    if ((lfd = listen_on(argv[optind], argv[optind + 1])) == -1)
        return EXIT_SETUP;
    printf("READY\n");
    fflush(stdout);

    while (count < 0 || served < count) {
        if ((cfd = accept(lfd, NULL, NULL)) == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            report("accept", errno);
            return EXIT_SERVE;
        }
        served++;
        if ((pid = fork()) == -1) {
            report("fork", errno);
            return EXIT_SERVE;
        }
        if (pid == 0)
            run_service(lfd, cfd, argv + optind + 2);
        close(cfd);
    }
    close(lfd);
    return 0;
}
