#!/usr/bin/env bats
# action = enforce, hardened (SPEC section 3, tlsshim.conf(5)): a TLS
# object freed after its socket was closed touches nothing on the number's
# next owner.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
    ENFORCELIB=$BUILDDIR/.libs/libtlsshim-enforce.so
    PRELOAD=$SHIMLIB:$ENFORCELIB
    policy
}

teardown() {
    # the write end of an s_server's stdin, if a test opened one
    exec 7>&- 2>/dev/null || true
    common_teardown
}

policy() {
    local f="$T/policy.conf"
    {
        echo "[lab]"
        echo "connect = localhost:$PORT 127.0.0.1:$PORT"
        echo "action = enforce"
        echo "ca_file = $PKI/ca.pem"
    } >"$f"
    chmod 600 "$f"
    export TLSSHIM_CONF="$f"
}

enforced() {
    (
        export TLSSHIM_CONF TLSSHIM_DEBUG
        LD_PRELOAD=$PRELOAD "$@"
    )
}

# wait_grep FILE PATTERN: wait until FILE has a line matching PATTERN.
wait_grep() {
    local i
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "wait_grep: no \"$2\" in $1 after ${WAIT_SECONDS}s:" >&2
    cat "$1" >&2
    return 1
}

# wait_exit NAME: wait until the background process NAME has exited.
wait_exit() {
    local pid i
    pid=$(<"$T/$1.pid")
    for ((i = 0; i < WAIT_SECONDS * 40; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    echo "wait_exit: $1 still running after $((WAIT_SECONDS * 2))s" >&2
    return 1
}

# sserver CERT ARGS...: openssl s_server on $PORT with CERT, printing every
# handshake message it sends (>>>) and receives (<<<) to $T/srv.log; its
# stdin is the fifo $T/srv.in, opened for writing on fd 7 (what is written
# there is sent to the client; "r" asks it to renegotiate).
sserver() {
    local cert=$1
    shift
    rm -f "$T/srv.in"
    mkfifo "$T/srv.in"
    start_bg srv sh -c 'exec "$@" <"$0"' "$T/srv.in" \
        openssl s_server -accept "$PORT" -cert "$PKI/$cert.pem" \
        -key "$PKI/$cert.key" -cert_chain "$PKI/inter.pem" -msg "$@"
    exec 7>"$T/srv.in"
    wait_port "$PORT"
}

# --- L1: a late free touches nothing on a reused descriptor number --------

late_free() {
    start_bg sink "$PYTHON" "$PEERS/raw_sink.py" --port "$PORT" \
        --record "$T/sink.bin"
    PORT2=$(free_port)
    start_bg echo "$PYTHON" "$PEERS/plain_server.py" --port "$PORT2"
    wait_port "$PORT"
    wait_port "$PORT2"
    run -0 enforced "$PROGS/latefree" "$@" 127.0.0.1 "$PORT" "$PORT2"
}

@test "enforce: an SSL_free after the program closed its socket leaves the connection that reused the number alone" {
    late_free
    assert_output --partial "latefree: handshake begun on fd"
    # tlsshim bound the object and saw its handshake abandoned...
    assert_output --regexp "rule=lab: the program's OpenSSL handshake did not complete"
    # ...and the echo connection on the same number still works
    assert_output --regexp "latefree: new connection on fd [0-9]+ intact"
    # the hello did leave: the rule's socket was the program's
    [ -s "$T/sink.bin" ]
}

@test "enforce: a gnutls_deinit after the program closed its socket leaves the connection that reused the number alone" {
    [ -x "$PROGS/gnutlsclient" ] || skip "built without GnuTLS headers"
    late_free -g
    assert_output --partial "latefree: handshake begun on fd"
    assert_output --regexp "rule=lab: the program's GnuTLS handshake did not complete"
    assert_output --regexp "latefree: new connection on fd [0-9]+ intact"
    [ -s "$T/sink.bin" ]
}
