/*
 * The persistent client session cache (session_cache_dir): one file per
 * rule and destination in a directory only the user can write, so that
 * short-lived programs, which run once per connection, still resume.
 * Files are written whole to a temporary name and renamed, so concurrent
 * processes read either the old session or the new one, never a mix.
 */
#ifndef TLSSHIM_SESSCACHE_H
#define TLSSHIM_SESSCACHE_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

/* Largest session file accepted, header included. */
#define SESSCACHE_MAX_FILE 16384

/*
 * The cache directory of rule r in out: its session_cache_dir, or for
 * "auto" $XDG_RUNTIME_DIR/tlsshim (made 0700 when missing).  1 when the
 * cache is usable; 0 when it is off or refused (the reason logged once:
 * a directory not owned by us or writable by others, a setuid program).
 */
int sesscache_dir(const struct policy_rule *r, char *out, size_t len);
/*
 * The file name (no directory) of the session of rule r for key, in out
 * (65 bytes at least): a hash of the rule's name, of its security settings
 * (trust store, names, pins, versions...) and of key, so that a session
 * made under a looser rule is never found by a stricter one.  0 or -1.
 */
int sesscache_name(const struct policy_rule *r, const char *key, char *out,
                   size_t len);
/* The session stored for key under rule r (a new reference), or NULL when
 * there is none, it expired or the file is not trusted (logged). */
SSL_SESSION *sesscache_load(const struct policy_rule *r, const char *key);
/* Store s for key under rule r, replacing what was there; only resumable
 * sessions of verified connections come here.  Errors are logged. */
void sesscache_store(const struct policy_rule *r, const char *key,
                     SSL_SESSION *s);
/* When s stops being resumable: its time plus its timeout (for a TLS 1.3
 * ticket, the lifetime the server gave), in seconds since the epoch. */
int64_t sesscache_expiry(const SSL_SESSION *s);

#endif
