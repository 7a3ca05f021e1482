/*
 * dial: a blocking TCP connection to HOST:PORT, the first address of the
 * resolver's list that answers; the socket, or -1.  For the test
 * programs that need nothing more (osslclient, gnutlsclient, latefree).
 */
#ifndef TLSSHIM_TESTS_DIAL_H
#define TLSSHIM_TESTS_DIAL_H

#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int
dial(const char *host, const char *port)
{
    struct addrinfo hints, *res, *ai;
    int fd = -1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

#endif
