/*
 * The connection report (SPEC section 8): one JSON object per line,
 * appended with a single write() per line to a file opened O_APPEND, so
 * that many processes may share it.  The descriptor is checked (device
 * and inode) before each line and reopened when the program closed or
 * reused its number.
 */
#ifndef TLSSHIM_REPORT_H
#define TLSSHIM_REPORT_H

#include <sys/socket.h>

#include "policy.h"

struct conn;

/* Report to path (NULL: no report); report_open: also a line when each
 * handshake ends.  0, or -1 when the file cannot be opened. */
int report_configure(const char *path, int report_open);
int report_enabled(void);
int report_open_enabled(void);

/* A line for c ("open" or "close").  Lock held.  Marks c reported on
 * "close"; a second close line is never written. */
void report_conn(struct conn *c, const char *event);

/* A connection refused before tlsshim made anything of it (deny,
 * ambiguous name): role, rule (NULL: the default action), peer, the name
 * that matched (or NULL), the local address it was accepted on (server
 * role; NULL for a client), the outcome and why. */
void report_refused(enum policy_role role, const struct policy_rule *rule,
                    enum policy_action action, const struct sockaddr *peer,
                    const char *host, const struct sockaddr *local,
                    const char *outcome, const char *error);

#endif
