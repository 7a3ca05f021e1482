/*
 * The relay (SPEC section 9, DESIGN.md): a connection that escapes the
 * calls the hooks see (exec, system, popen, posix_spawn, stdio on fd 0-2,
 * fdopen) is handed to a relay process that keeps its TLS state and
 * carries plaintext over a socketpair put on the same fd numbers.
 */
#ifndef TLSSHIM_RELAY_H
#define TLSSHIM_RELAY_H

struct conn;

/*
 * Hand c to a new relay process; afterwards every fd number that shared
 * c is one end of a socketpair whose other end the relay serves.  When
 * another process owns c, the fds become dead ends (EOF, EPIPE) instead:
 * nothing of this process reaches that stream.  Returns 0 or -errno.
 */
int relay_handoff(struct conn *c);

/* Hand every tracked connection that has an fd without FD_CLOEXEC to a
 * relay (before exec, system, popen, posix_spawn). */
void relay_escape_inherited(void);

#endif
