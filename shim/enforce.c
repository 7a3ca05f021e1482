/*
 * libtlsshim-enforce.so: the part its OpenSSL and GnuTLS hooks share.
 * Each thread keeps the stack of objects whose hooked calls it is in
 * (OpenSSL calls nest: SSL_connect calls SSL_do_handshake); a claim from
 * libtlsshim.so looks at that stack, newest first.  The module's one
 * exported data symbol, tlsshim_enforce_module, is how libtlsshim.so finds
 * it (shim/enforce.h).
 */
#include "config.h"

#include <stddef.h>

#include "enforce_module.h"
#include "util.h"

#define NEST_MAX 8

struct current {
    enum enforce_kind kind;
    void *obj;
};

static __thread struct current stack[NEST_MAX]
    __attribute__((tls_model("initial-exec")));
static __thread int depth __attribute__((tls_model("initial-exec")));

const struct tlsshim_enforce_core *enforce_core;

void
enforce_enter(enum enforce_kind kind, void *obj)
{
    /* deeper nesting than NEST_MAX is only counted: such an object is
     * not found by a claim, so its hello is cut (fail closed) */
    if (depth < NEST_MAX) {
        stack[depth].kind = kind;
        stack[depth].obj = obj;
    }
    depth++;
}

void
enforce_leave(void)
{
    if (depth > 0)
        depth--;
}

static void
attach(const struct tlsshim_enforce_core *core)
{
    if (core != NULL && core->abi == TLSSHIM_ENFORCE_ABI)
        enforce_core = core;
}

static int
claim(const unsigned char random[32], void *token)
{
    int top = depth < NEST_MAX ? depth : NEST_MAX;

    if (enforce_core == NULL)
        return 0;
    for (int i = top - 1; i >= 0; i--) {
        int rv = ENFORCE_NOT_MINE;
        if (stack[i].kind == ENFORCE_OPENSSL)
            rv = enforce_openssl_claim(stack[i].obj, random, token);
        else if (stack[i].kind == ENFORCE_GNUTLS)
            rv = enforce_gnutls_claim(stack[i].obj, random, token);
        if (rv != ENFORCE_NOT_MINE)
            return rv;
    }
    return 0;
}

TLSSHIM_EXPORT const struct tlsshim_enforce_module tlsshim_enforce_module = {
    .abi = TLSSHIM_ENFORCE_ABI,
    .attach = attach,
    .claim = claim,
};
