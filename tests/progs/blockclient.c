/*
 * blockclient: the simplest kind of TCP client, for the end-to-end tests.
 * It resolves HOST with getaddrinfo() (so the resolver hooks see the name),
 * connects with a blocking connect(), copies standard input to the socket
 * with write(), shuts the sending side down, then copies the socket to
 * standard output with read() until EOF.  With -t, a second thread reads
 * the socket while the main thread writes (full duplex on one blocking
 * socket), so payloads larger than the socket buffers can be echoed.
 *
 * Errors are reported as "blockclient: CALL: strerror errno=NAME".
 * Exit status: 0 success, 2 usage, 3 resolution or connect error, 4 I/O
 * error, 5 the overall timeout (30 s, or -w SECONDS) expired.
 */
#define _GNU_SOURCE
#define PROG "blockclient"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "progutil.h"

static void *
reader_thread(void *arg)
{
    copy_socket_to_stdout(*(int *)arg);
    return NULL;
}

int
main(int argc, char **argv)
{
    int opt, fd, rc, threaded = 0;
    unsigned timeout_seconds = 30;
    pthread_t reader;

    while ((opt = getopt(argc, argv, "tw:")) != -1) {
        switch (opt) {
        case 't':
            threaded = 1;
            break;
        case 'w':
            if (parse_seconds(optarg, &timeout_seconds) < 0)
                goto usage;
            break;
        default:
            goto usage;
        }
    }
    if (argc - optind != 2)
        goto usage;

    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm(timeout_seconds);

    fd = connect_to(argv[optind], argv[optind + 1], CONNECT_GAI_HOST, NULL);
    if (threaded) {
        if ((rc = pthread_create(&reader, NULL, reader_thread, &fd)) != 0)
            die_io("pthread_create", rc);
        copy_stdin_to_socket(fd);
        if ((rc = pthread_join(reader, NULL)) != 0)
            die_io("pthread_join", rc);
    } else {
        copy_stdin_to_socket(fd);
        copy_socket_to_stdout(fd);
    }
    if (close(fd) < 0)
        die_io("close", errno);
    return 0;

usage:
    fprintf(stderr, "usage: blockclient [-t] [-w SECONDS] HOST PORT\n");
    return EXIT_USAGE;
}
