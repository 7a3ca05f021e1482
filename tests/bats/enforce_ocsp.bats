#!/usr/bin/env bats
# action = enforce and ocsp_mode (SPEC section 4): the program's own
# OpenSSL or GnuTLS handshake asks for a staple and has it checked, and
# must_staple and resolve apply, whatever the program asked for.  The PKI
# of tests/lib/rev_pki.sh names OCSP responders on 127.0.0.1 that the
# tests start with `openssl ocsp`; servers that staple are `openssl
# s_server -status_file`.  Each client is run without tlsshim first, so a
# failure under the rule is tlsshim's doing (its log line says so).

load ../lib/common

setup_file() {
    LPORT=$(free_port)
    IPORT=$(free_port)
    REV=$BATS_FILE_TMPDIR/rev
    sh "$BATS_TEST_DIRNAME/../lib/rev_pki.sh" "$REV" "$LPORT" "$IPORT"
    export LPORT IPORT REV
}

setup() {
    common_setup
    PORT=$(free_port)
    PRELOAD=$SHIMLIB:$BUILDDIR/.libs/libtlsshim-enforce.so
    policy
}

teardown() {
    common_teardown
}

# policy LINE...: one enforce rule for 127.0.0.1:$PORT trusting the root
policy() {
    {
        echo "[rev]"
        echo "connect = 127.0.0.1:$PORT"
        echo "action = enforce"
        echo "ca_file = $REV/ca.pem"
        local line
        for line in "$@"; do echo "$line"; done
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
    export TLSSHIM_CONF=$T/policy.conf
}

enforced() {
    (
        export TLSSHIM_CONF TLSSHIM_REPORT TLSSHIM_DEBUG
        LD_PRELOAD=$PRELOAD "$@"
    )
}

# responder: the intermediate's OCSP responder (the leaves name it)
responder() {
    start_bg ocsp-leaf openssl ocsp -index "$REV/db-inter/index.txt" \
        -port "$LPORT" -rsigner "$REV/inter.pem" -rkey "$REV/inter.key" \
        -CA "$REV/inter.pem" -ignore_err
    wait_port "$LPORT"
}

# staple NAME: fetch leaf NAME's OCSP response into $T/NAME.der
staple() {
    openssl ocsp -issuer "$REV/inter.pem" -cert "$REV/$1.pem" \
        -url "http://127.0.0.1:$LPORT/" -respout "$T/$1.der" -noverify \
        >/dev/null 2>&1
    [ -s "$T/$1.der" ]
}

# sserver NAME [STAPLE [MODE]]: openssl s_server with leaf NAME, stapling
# the DER response STAPLE if given (or ""); MODE -rev (default): echo
# lines reversed; "record": print what it receives to $T/sserver.log
sserver() {
    local extra=() mode=${3:--rev}
    [ -z "${2:-}" ] || extra=(-status_file "$2")
    set -- -accept "127.0.0.1:$PORT" -cert "$REV/$1.pem" \
        -cert_chain "$REV/$1.chain.pem" -key "$REV/$1.key" "${extra[@]}"
    if [ "$mode" = record ]; then
        # s_server ends at EOF on its input: give it one that stays open
        start_bg sserver bash -c 'sleep 600 | stdbuf -oL openssl s_server "$@"' _ "$@"
    else
        start_bg sserver openssl s_server -rev "$@"
    fi
    wait_port "$PORT" 127.0.0.1
}

# recserver NAME [STAPLE]: sserver that records what it receives
recserver() {
    sserver "$1" "${2:-}" record
}

MSG=$'secret payload\n'
ECHO="daolyap terces"

# nothing_received: the recording s_server got no payload and, where
# tlsshim stops the handshake before it ends (OpenSSL), finished none
nothing_received() {
    sleep 0.2
    refute grep -q "secret" "$T/sserver.log"
    [ "${1:-}" = gnutls ] || refute grep -q "CONNECTION ESTABLISHED" "$T/sserver.log"
}

@test "enforce: a C OpenSSL client fails against a stapled revoked response, with OpenSSL's reason" {
    responder
    staple revoked
    sserver revoked "$T/revoked.der"
    run -0 "$PROGS/osslclient" -M tls1.3 127.0.0.1 "$PORT" "$MSG"
    assert_output --partial "got $ECHO"
    common_teardown
    recserver revoked "$T/revoked.der"
    export TLSSHIM_REPORT=$T/report.json
    run -3 enforced "$PROGS/osslclient" -M tls1.3 127.0.0.1 "$PORT" "$MSG"
    assert_output --partial "SSL_connect failed: verify result 23 (certificate revoked)"
    assert_output --partial "rule=rev: certificate verify failed: certificate revoked (OCSP staple, reason keyCompromise) (the program's OpenSSL TLS)"
    assert_output --partial "SSL_write after the failure: -1"
    assert_equal "$(json_field "$T/report.json" 1 outcome)" verify_failed
    assert_equal "$(json_field "$T/report.json" 1 ocsp)" revoked
    nothing_received
}

@test "enforce: the program's own status callback that accepts anything cannot override a revoked staple" {
    responder
    staple revoked
    recserver revoked "$T/revoked.der"
    # the program asks for the staple itself and accepts whatever comes
    run -3 enforced "$PROGS/osslclient" -s 127.0.0.1 "$PORT" "$MSG"
    assert_output --partial "verify result 23 (certificate revoked)"
    assert_output --partial "certificate revoked (OCSP staple, reason keyCompromise)"
    refute_output --partial "osslclient: status callback"
    nothing_received
}

@test "enforce: must_staple fails a C OpenSSL client against a server without a staple, passes with a good one" {
    responder
    staple good
    sserver good
    policy "ocsp_mode = must_staple"
    run -0 "$PROGS/osslclient" 127.0.0.1 "$PORT" "$MSG"
    assert_output --partial "got $ECHO"
    common_teardown
    recserver good
    run -3 enforced "$PROGS/osslclient" 127.0.0.1 "$PORT" "$MSG"
    assert_output --partial "verify result 73 (OCSP verification needed)"
    assert_output --partial "rule=rev: certificate verify failed: no OCSP staple, and ocsp_mode must_staple requires one (the program's OpenSSL TLS)"
    nothing_received
    common_teardown
    # with a good staple it works, and the program's own callback (it
    # asked for the staple too) still sees it
    sserver good "$T/good.der"
    export TLSSHIM_DEBUG=1
    run -0 enforced "$PROGS/osslclient" -s 127.0.0.1 "$PORT" "$MSG"
    assert_output --partial "osslclient: status callback: a staple"
    assert_output --partial "got $ECHO"
    assert_output --partial "rule=rev action=enforce tls=TLSv1.2"
    assert_output --partial "ocsp=good"
}

@test "enforce: the TLS feature status_request requires a staple of the program's TLS too" {
    responder
    recserver muststaple
    run -3 enforced "$PROGS/osslclient" 127.0.0.1 "$PORT" "$MSG"
    assert_output --partial "no OCSP staple, and the certificate requires one (TLS feature status_request)"
    nothing_received
}

@test "enforce: ocsp_mode resolve asks the responder during the program's handshake" {
    responder
    recserver revoked
    policy "ocsp_mode = resolve"
    run -3 enforced "$PROGS/osslclient" 127.0.0.1 "$PORT" "$MSG"
    assert_output --partial "verify result 23 (certificate revoked)"
    assert_output --partial "rule=rev: certificate verify failed: certificate revoked (OCSP responder http://127.0.0.1:$LPORT/, depth 0, /CN=revoked, reason keyCompromise) (the program's OpenSSL TLS)"
    nothing_received
    common_teardown
    responder
    sserver good
    export TLSSHIM_DEBUG=1
    run -0 enforced "$PROGS/osslclient" 127.0.0.1 "$PORT" "$MSG"
    assert_output --partial "got $ECHO"
    assert_output --partial "ocsp=good"
    common_teardown
    # the responder is gone: soft fail, or refused with fail_hard
    sserver good
    run -0 enforced "$PROGS/osslclient" 127.0.0.1 "$PORT" "$MSG"
    assert_output --partial "warning: connect 127.0.0.1:$PORT rule=rev: OCSP status of depth 0 (/CN=good) not confirmed: responder http://127.0.0.1:$LPORT/: Connection refused; accepted (soft fail)"
    policy "ocsp_mode = resolve|fail_hard"
    run -3 enforced "$PROGS/osslclient" 127.0.0.1 "$PORT" "$MSG"
    assert_output --partial "OCSP status of the certificate not confirmed: responder http://127.0.0.1:$LPORT/: Connection refused (ocsp_mode fail_hard)"
}

# wgetr: wget the s_server status page, printing wget's status
wgetr() {
    enforced wget --no-check-certificate -t 1 -q -O /dev/null "https://127.0.0.1:$PORT/"
}

@test "enforce: wget (GnuTLS) fails against a stapled revoked response and without a required staple" {
    responder
    staple revoked
    staple good
    start_bg sserver openssl s_server -accept "127.0.0.1:$PORT" -www \
        -cert "$REV/revoked.pem" -cert_chain "$REV/inter.pem" \
        -key "$REV/revoked.key" -status_file "$T/revoked.der"
    wait_port "$PORT" 127.0.0.1
    run -0 wget --no-check-certificate -t 1 -q -O /dev/null "https://127.0.0.1:$PORT/"
    run wgetr
    assert_failure
    assert_output --partial "rule=rev: certificate verify failed: certificate revoked (OCSP staple, reason keyCompromise) (the program's GnuTLS TLS)"
    common_teardown
    policy "ocsp_mode = must_staple"
    start_bg sserver openssl s_server -accept "127.0.0.1:$PORT" -www \
        -cert "$REV/good.pem" -cert_chain "$REV/inter.pem" -key "$REV/good.key"
    wait_port "$PORT" 127.0.0.1
    run wgetr
    assert_failure
    assert_output --partial "rule=rev: certificate verify failed: no OCSP staple, and ocsp_mode must_staple requires one (the program's GnuTLS TLS)"
    common_teardown
    start_bg sserver openssl s_server -accept "127.0.0.1:$PORT" -www \
        -cert "$REV/good.pem" -cert_chain "$REV/inter.pem" -key "$REV/good.key" \
        -status_file "$T/good.der"
    wait_port "$PORT" 127.0.0.1
    export TLSSHIM_DEBUG=1
    run -0 wgetr
    assert_output --partial "rule=rev action=enforce tls=TLSv1.3"
    assert_output --partial "ocsp=good"
}

@test "enforce: gnutls-cli --insecure fails against a stapled revoked response" {
    responder
    staple revoked
    sserver revoked "$T/revoked.der"
    recserver revoked "$T/revoked.der"
    run bash -c "printf '$MSG' | timeout 10 gnutls-cli --insecure -p $PORT 127.0.0.1 2>&1"
    assert_output --partial "- Handshake was completed"
    common_teardown
    recserver revoked "$T/revoked.der"
    run enforced bash -c "printf '$MSG' | timeout 10 gnutls-cli --insecure -p $PORT 127.0.0.1 2>&1"
    assert_output --partial "rule=rev: certificate verify failed: certificate revoked (OCSP staple, reason keyCompromise) (the program's GnuTLS TLS)"
    # gnutls_handshake failed: gnutls-cli never reached its data phase
    refute_output --partial "- Handshake was completed"
    nothing_received gnutls
}
