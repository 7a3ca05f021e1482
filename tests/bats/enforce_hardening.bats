#!/usr/bin/env bats
# action = enforce, hardened (SPEC section 3, tlsshim.conf(5)): what the
# program's own TLS may not do on an enforce-rule connection.  A TLS
# object freed after its socket was closed touches nothing on the number's
# next owner; a client certificate and early data never leave before the
# rule has checked the server; a TLS 1.2 renegotiation is refused.  Each
# refusal is shown on the peer's side (what it received) and by tlsshim's
# log line, with the same program run without tlsshim as the control.

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

# --- L2: no client certificate, no early data before the rule's check -----

# client_cert_test VERSION CLIENT ARGS...: CLIENT offers a client
# certificate to a wrong-host server that asks for one
client_cert_test() {
    local version=$1
    shift
    sserver wronghost "-$version" -verify 1 -CAfile "$PKI/ca.pem"
    # s_server sends its stdin: the echo the client waits for
    printf 'secret payload' >&7
    # control: without tlsshim the lax client sends its certificate
    run timeout 20 "$@" -C "$PKI/client.pem" -K "$PKI/client.key" localhost "$PORT" "secret payload"
    wait_grep "$T/srv.log" "^<<< .*Certificate"
    common_teardown
    : >"$T/.bg_pids"
    sserver wronghost "-$version" -verify 1 -CAfile "$PKI/ca.pem"
    run -3 enforced timeout 20 "$@" -C "$PKI/client.pem" -K "$PKI/client.key" localhost "$PORT" "secret payload"
    assert_output --partial "rule=lab: certificate verify failed: hostname mismatch (wanted localhost, certificate has wrong.test)"
    # the server saw the handshake begin, and never a certificate
    wait_grep "$T/srv.log" "^<<< .*ClientHello"
    run grep -E "^<<< .*Certificate" "$T/srv.log"
    assert_failure
}

@test "enforce: a GnuTLS client never sends its certificate to a TLS 1.3 server the rule refuses" {
    [ -x "$PROGS/gnutlsclient" ] || skip "built without GnuTLS headers"
    client_cert_test tls1_3 "$PROGS/gnutlsclient"
}

@test "enforce: a GnuTLS client never sends its certificate to a TLS 1.2 server the rule refuses" {
    [ -x "$PROGS/gnutlsclient" ] || skip "built without GnuTLS headers"
    client_cert_test tls1_2 "$PROGS/gnutlsclient"
}

@test "enforce: an OpenSSL client never sends its certificate to a server the rule refuses (TLS 1.3 and 1.2)" {
    client_cert_test tls1_3 "$PROGS/osslclient" -M tls1.3
    common_teardown
    : >"$T/.bg_pids"
    client_cert_test tls1_2 "$PROGS/osslclient"
}

@test "enforce: GnuTLS early data is refused before the hello leaves" {
    [ -x "$PROGS/gnutlsclient" ] || skip "built without GnuTLS headers"
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode echo --record "$T/rec.bin"
    # control: GnuTLS takes the early data (0: buffered for the hello)
    run -0 "$PROGS/gnutlsclient" -E "early bytes" localhost "$PORT" "secret payload"
    assert_output --partial "gnutls_record_send_early_data: 0"
    run -0 enforced "$PROGS/gnutlsclient" -E "early bytes" localhost "$PORT" "secret payload"
    assert_output --partial "gnutls_record_send_early_data: -50"
    assert_output --partial "rule=lab: the program's GnuTLS early data (0-RTT) refused"
    # the ordinary handshake that follows is verified and works
    assert_output --partial "gnutlsclient: TLS1.3 got secret payload"
    run grep -c "early bytes" "$T/rec.bin"
    assert_output 0
}

@test "enforce: GnuTLS early data given before the socket was set cuts the connection before the hello" {
    [ -x "$PROGS/gnutlsclient" ] || skip "built without GnuTLS headers"
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode echo --record "$T/rec.bin" --info "$T/info.json"
    run -3 enforced "$PROGS/gnutlsclient" -e -E "early bytes" localhost "$PORT" "secret payload"
    # GnuTLS took it (nothing said then which socket it was for)...
    assert_output --partial "gnutls_record_send_early_data: 0"
    # ...so the enforce-rule connection is cut before its hello leaves
    assert_output --partial "rule=lab: the program gave GnuTLS early data (0-RTT) before its socket was connected; connection cut before the hello"
    assert_output --partial "gnutlsclient: handshake failed"
    [ ! -s "$T/rec.bin" ]
}

@test "enforce: OpenSSL early data is refused before the hello leaves" {
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode echo --record "$T/rec.bin"
    run -0 enforced "$PROGS/osslclient" -M tls1.3 -E "early bytes" localhost "$PORT" "secret payload"
    assert_output --partial "osslclient: SSL_write_early_data: 0 (0 bytes)"
    assert_output --partial "rule=lab: the program's OpenSSL early data (0-RTT) refused"
    assert_output --partial "osslclient: TLSv1.3 got secret payload"
    run grep -c "early bytes" "$T/rec.bin"
    assert_output 0
}

# --- L3: no TLS 1.2 renegotiation once the rule has verified the peer ------

# renegotiate NAME CMD...: CMD (a client with -R) against s_server -tls1_2,
# which echoes "ping", asks to renegotiate, then says "bye"
renegotiate() {
    local name=$1 i
    shift
    sserver good -tls1_2
    start_bg "$name" "$@" localhost "$PORT" ping
    wait_grep "$T/srv.log" "^ping"
    printf 'ping' >&7
    wait_grep "$T/$name.log" "got ping"
    printf 'r\n' >&7
    wait_grep "$T/srv.log" "^>>> .*HelloRequest"
    # the client's answer: a second ClientHello, or an alert
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        [ "$(grep -c '^<<< .*ClientHello' "$T/srv.log")" -ge 2 ] && break
        grep -q '^<<< .*Alert' "$T/srv.log" && break
        sleep 0.05
    done
    printf 'bye\n' >&7 2>/dev/null || true
    wait_exit "$name"
}

@test "enforce: an OpenSSL client refuses a TLS 1.2 renegotiation after the rule verified the server" {
    # control: OpenSSL renegotiates by default
    renegotiate plain "$PROGS/osslclient" -R
    run cat "$T/plain.log"
    assert_output --partial "after the echo: got bye"
    run grep -c "^<<< .*ClientHello" "$T/srv.log"
    assert_output 2
    common_teardown
    : >"$T/.bg_pids"
    renegotiate cli env LD_PRELOAD="$PRELOAD" TLSSHIM_CONF="$TLSSHIM_CONF" \
        TLSSHIM_DEBUG=1 "$PROGS/osslclient" -R
    run cat "$T/cli.log"
    assert_output --partial "rule=lab action=enforce tls=TLSv1.2"
    assert_output --partial "rule=lab: the server asked the program's OpenSSL to renegotiate: refused"
    refute_output --partial "got bye"
    # the server asked, and got the refusal instead of a second hello
    run grep -c "^<<< .*ClientHello" "$T/srv.log"
    assert_output 1
    run grep "no_renegotiation" "$T/srv.log"
    assert_success
}

@test "enforce: a GnuTLS client refuses a TLS 1.2 renegotiation after the rule verified the server" {
    [ -x "$PROGS/gnutlsclient" ] || skip "built without GnuTLS headers"
    renegotiate plain "$PROGS/gnutlsclient" -R
    run cat "$T/plain.log"
    assert_output --partial "renegotiation: done"
    assert_output --partial "after the echo: got bye"
    common_teardown
    : >"$T/.bg_pids"
    renegotiate cli env LD_PRELOAD="$PRELOAD" TLSSHIM_CONF="$TLSSHIM_CONF" \
        TLSSHIM_DEBUG=1 "$PROGS/gnutlsclient" -R
    run cat "$T/cli.log"
    assert_output --partial "rule=lab action=enforce tls=TLSv1.2"
    assert_output --partial "rule=lab: the program's GnuTLS renegotiation refused"
    assert_output --partial "gnutlsclient: renegotiation: "
    refute_output --partial "renegotiation: done"
    run grep -c "^<<< .*ClientHello" "$T/srv.log"
    assert_output 1
    run grep "no_renegotiation" "$T/srv.log"
    assert_success
}

# --- L4: a first write too short to show a TLS record header is plaintext --

SPLIT_CLIENT='
import socket, sys
s = socket.create_connection(("localhost", int(sys.argv[1])))
s.settimeout(10)
# a first write of one byte that could begin a TLS record, then the rest
s.send(b"\x16")
s.sendall(b"plain after 0x16\n")
data = b""
try:
    while len(data) < 18:
        d = s.recv(100)
        if not d:
            break
        data += d
except OSError as e:
    print("client:", e)
print("client: got", repr(data))
'

# split_first_write ACTION: the client above under a rule with ACTION,
# against a TLS echo server that records what it decrypts
split_first_write() {
    {
        echo "[lab]"
        echo "connect = localhost:$PORT"
        echo "action = $1"
        echo "ca_file = $PKI/ca.pem"
    } >"$T/policy.conf"
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode echo --record "$T/rec.bin"
    run -0 enforced env TLSSHIM_DEBUG=1 "$PYTHON" -c "$SPLIT_CLIENT" "$PORT"
    # tlsshim's own TLS carried both writes, the 0x16 byte as plaintext
    assert_output --partial "client: got b'\\x16plain after 0x16\\n'"
    assert_output --regexp "rule=lab.* tls=TLSv1\.[23]"
    printf '\026plain after 0x16\n' >"$T/want.bin"
    [ "$(sha_of "$T/rec.bin")" = "$(sha_of "$T/want.bin")" ]
}

@test "auto: a one-byte first write of 0x16 is plaintext, not a TLS handshake passed through" {
    split_first_write auto
}

@test "enforce: a one-byte first write of 0x16 is plaintext, not a TLS hello cut or passed through" {
    split_first_write enforce
}
