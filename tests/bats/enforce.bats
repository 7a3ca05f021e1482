#!/usr/bin/env bats
# action = enforce (SPEC section 3): programs that speak TLS themselves
# through the system OpenSSL or GnuTLS get their handshake verified by the
# rule, whatever they asked for; TLS that tlsshim's hooks cannot see is cut.
# Every client here connects without tlsshim to the same bad server first,
# so a failure under the rule is tlsshim's doing (its log line says so),
# and the server's record shows the payload never reached it.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
    ENFORCELIB=$BUILDDIR/.libs/libtlsshim-enforce.so
    PRELOAD=$SHIMLIB:$ENFORCELIB
    policy
}

teardown() {
    common_teardown
}

# policy [key=value...]: one enforce rule for localhost:$PORT
policy() {
    local f="$T/policy.conf" kv
    {
        echo "[lab]"
        echo "connect = localhost:$PORT 127.0.0.1:$PORT"
        echo "action = enforce"
        echo "ca_file = $PKI/ca.pem"
        for kv in "$@"; do echo "$kv"; done
    } > "$f"
    chmod 600 "$f"
    export TLSSHIM_CONF="$f"
}

# enforced CMD...: run CMD with both modules preloaded
enforced() {
    (
        export TLSSHIM_CONF TLSSHIM_REPORT TLSSHIM_DEBUG
        LD_PRELOAD=$PRELOAD "$@"
    )
}

# server CERT: an echo server with CERT that records what it receives
server() {
    local cert="$PKI/$1.chain.pem"
    [ -e "$cert" ] || cert="$PKI/$1.pem"
    rm -f "$T/rec.bin"
    tls_server srv "$PORT" --cert "$cert" --key "$PKI/$1.key" \
        --mode echo --record "$T/rec.bin" --info "$T/info.json"
}

# https CERT: an HTTPS server with CERT that logs each request
https() {
    local cert="$PKI/$1.chain.pem"
    [ -e "$cert" ] || cert="$PKI/$1.pem"
    echo "the body" > "$T/body"
    rm -f "$T/http.log"
    start_bg https "$PYTHON" "$PEERS/http_tls.py" --port "$PORT" \
        --cert "$cert" --key "$PKI/$1.key" --body-file "$T/body" \
        --log "$T/http.log"
    wait_port "$PORT"
}

# nothing_received: the server's record holds no plaintext
nothing_received() {
    [ ! -s "$T/rec.bin" ] || fail "the server received: $(head -c 200 "$T/rec.bin")"
}

PYCLIENT='
import socket, ssl, sys
ctx = ssl._create_unverified_context()
s = socket.create_connection(("localhost", int(sys.argv[1])))
try:
    t = ctx.wrap_socket(s, server_hostname="localhost")
except ssl.SSLError as e:
    print("python: handshake failed:", e)
    sys.exit(3)
t.sendall(b"secret payload\n")
print("python: got", t.recv(100).decode().strip(), t.version())
'

# --- OpenSSL: a C program with SSL_VERIFY_NONE and no host name ------------

@test "enforce: a C OpenSSL client with SSL_VERIFY_NONE and no SNI fails against a wrong-host certificate" {
    server wronghost
    run -0 "$PROGS/osslclient" localhost "$PORT" "secret payload"
    assert_output --partial "got secret payload"
    rm -f "$T/rec.bin"
    run -3 enforced "$PROGS/osslclient" localhost "$PORT" "secret payload"
    assert_output --partial "SSL_connect failed: verify result 62 (hostname mismatch)"
    assert_output --partial "rule=lab: certificate verify failed: hostname mismatch (wanted localhost, certificate has wrong.test) (the program's OpenSSL TLS)"
    # the careless write after the failure goes nowhere
    assert_output --partial "SSL_write after the failure: -1"
    nothing_received
}

@test "enforce: the C client fails against self-signed and expired certificates, with OpenSSL's own reason" {
    for cert in selfsigned:18:"self-signed certificate" expired:10:"certificate has expired"; do
        IFS=: read -r name code reason <<<"$cert"
        server "$name"
        run -0 "$PROGS/osslclient" localhost "$PORT" "secret payload"
        rm -f "$T/rec.bin"
        run -3 enforced "$PROGS/osslclient" localhost "$PORT" "secret payload"
        assert_output --partial "verify result $code ($reason)"
        assert_output --partial "rule=lab: certificate verify failed: $reason"
        nothing_received
        common_teardown
    done
}

@test "enforce: the C client works against a good server, reports it, and resumes its own session as before" {
    server good
    export TLSSHIM_REPORT=$T/report.json TLSSHIM_DEBUG=1
    run -0 enforced "$PROGS/osslclient" -r localhost "$PORT" "secret payload"
    assert_line --partial "osslclient: TLSv1.2 got secret payload resumed=no verify=0"
    assert_line --partial "osslclient: TLSv1.2 got secret payload resumed=yes verify=0"
    assert_output --partial "rule=lab action=enforce tls=TLSv1.2"
    assert_output --partial "verified=localhost resumed=yes"
    assert_equal "$(json_field "$T/report.json" 1 action)" enforce
    assert_equal "$(json_field "$T/report.json" 1 outcome)" ok
    assert_equal "$(json_field "$T/report.json" 1 verify)" ok
    assert_equal "$(json_field "$T/report.json" 1 version)" TLSv1.2
    assert_equal "$(json_field "$T/report.json" 2 resumed)" true
    # no second handshake of tlsshim's own: two connections, two handshakes
    assert_equal "$(grep -c . "$T/info.json")" 2
}

@test "enforce: the name verified is the program's SNI when it sends one" {
    server good
    run -3 enforced "$PROGS/osslclient" -n wrong.test localhost "$PORT" "secret payload"
    assert_output --partial "hostname mismatch (wanted wrong.test, certificate has"
    nothing_received
}

# sclient ARGS...: openssl s_client to localhost:$PORT that sends a line
# and quits; TLS 1.2, whose sessions are saved once the handshake ends
sclient() {
    echo "secret payload" | timeout 10 openssl s_client -connect "localhost:$PORT" \
        -servername localhost -tls1_2 -ign_eof "$@" 2>&1
}

@test "enforce: openssl s_client without -verify_return_error fails against a self-signed server" {
    server selfsigned
    run sclient
    assert_output --partial "Verify return code: 18 (self-signed certificate)"
    assert_output --partial "secret payload"   # echoed: it went through
    rm -f "$T/rec.bin"
    run enforced bash -c "$(declare -f sclient); PORT=$PORT sclient"
    assert_output --partial "rule=lab: certificate verify failed: self-signed certificate"
    # s_client reports OpenSSL's own reason, as it would have verified
    assert_output --partial "Verification error: self-signed certificate"
    refute_output --partial "Verification: OK"
    nothing_received
}

@test "enforce: a TLS 1.3 external PSK, which shows no certificate, fails" {
    local psk=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
    start_bg psksrv openssl s_server -accept "$PORT" -4 -www -tls1_3 \
        -cert "$PKI/selfsigned.pem" -key "$PKI/selfsigned.key" -psk "$psk" \
        -ciphersuites TLS_AES_128_GCM_SHA256
    wait_port "$PORT"
    pskclient() {
        printf 'GET /psk-secret HTTP/1.0\r\n\r\n' | timeout 10 openssl s_client \
            -connect "127.0.0.1:$PORT" -tls1_3 -psk "$psk" \
            -ciphersuites TLS_AES_128_GCM_SHA256 -ign_eof 2>&1
    }
    # without tlsshim the key alone authenticates the server
    run pskclient
    assert_output --partial "HTTP/1.0 200 ok"
    run enforced bash -c "$(declare -f pskclient); PORT=$PORT psk=$psk pskclient"
    assert_output --partial "rule=lab: the server authenticated with no certificate"
    refute_output --partial "HTTP/1.0 200 ok"
}

@test "enforce: openssl s_client works against a good server and resumes its saved session" {
    server good
    # A session restored from a file holds the server's certificate but not
    # its chain: the rule must be able to verify that certificate alone.
    cat "$PKI/ca.pem" "$PKI/inter.pem" > "$T/bundle.pem"
    policy "ca_file = $T/bundle.pem"
    sed -i "0,/^ca_file = .*ca.pem$/{//d}" "$TLSSHIM_CONF"
    run enforced bash -c "$(declare -f sclient); PORT=$PORT sclient -sess_out $T/sess.pem"
    assert_output --partial "Verify return code: 0 (ok)"
    assert_output --partial "New, TLSv1.2"
    run enforced bash -c "$(declare -f sclient); PORT=$PORT sclient -sess_in $T/sess.pem"
    assert_output --partial "Reused, TLSv1.2"
    assert_equal "$(grep -c 'secret payload' "$T/rec.bin")" 2
}

@test "enforce: a session saved from an unverified connection is refused when it is offered" {
    server selfsigned
    # saved without tlsshim, where nothing verified the server
    run sclient -sess_out "$T/sess.pem"
    assert_output --partial "Verify return code: 18"
    rm -f "$T/rec.bin"
    run enforced bash -c "$(declare -f sclient); PORT=$PORT sclient -sess_in $T/sess.pem"
    assert_output --partial "rule=lab: certificate verify failed: self-signed certificate"
    refute_output --partial "Reused,"
    nothing_received
}

@test "enforce: openssl s_client -verify_return_error still verifies and works as before" {
    server good
    run enforced bash -c "$(declare -f sclient); PORT=$PORT sclient -verify_return_error -CAfile $PKI/ca.pem"
    assert_output --partial "Verify return code: 0 (ok)"
    assert_equal "$(grep -c 'secret payload' "$T/rec.bin")" 1
    assert_equal "$(grep -c . "$T/info.json")" 1
}

# --- python's ssl, curl -k ---------------------------------------------------

@test "enforce: python's unverified context fails against a wrong-host certificate" {
    server wronghost
    run -0 "$PYTHON" -c "$PYCLIENT" "$PORT"
    assert_output --partial "python: got secret payload"
    rm -f "$T/rec.bin"
    run -3 enforced "$PYTHON" -c "$PYCLIENT" "$PORT"
    assert_output --partial "python: handshake failed"
    assert_output --partial "rule=lab: certificate verify failed: hostname mismatch (wanted localhost"
    nothing_received
}

@test "enforce: python's unverified context works against a good server" {
    server good
    export TLSSHIM_REPORT=$T/report.json
    run -0 enforced "$PYTHON" -c "$PYCLIENT" "$PORT"
    assert_output --partial "python: got secret payload TLSv1.3"
    assert_equal "$(json_field "$T/report.json" 1 outcome)" ok
    assert_equal "$(json_field "$T/report.json" 1 sni)" localhost
}

@test "enforce: curl -k fails against an expired certificate and sends no request" {
    https expired
    run -0 curl -k -sS --max-time 10 "https://localhost:$PORT/x"
    assert_output "the body"
    rm -f "$T/http.log"
    run enforced curl -k -sS --max-time 10 "https://localhost:$PORT/x"
    assert_failure 60
    assert_output --partial "rule=lab: certificate verify failed: certificate has expired"
    [ ! -s "$T/http.log" ] || fail "the server got a request: $(cat "$T/http.log")"
}

@test "enforce: curl -k and curl with its own verification work against a good server" {
    https good
    run -0 enforced curl -k -sS --max-time 10 "https://localhost:$PORT/x"
    assert_output "the body"
    run -0 enforced curl -sS --cacert "$PKI/ca.pem" --max-time 10 "https://localhost:$PORT/y"
    assert_output "the body"
    assert_equal "$(cat "$T/http.log" | awk '{print $2}' | tr '\n' ' ')" "/x /y "
}

@test "enforce: a program that verifies with its own, stricter trust still fails on its own terms" {
    https good
    # curl trusts an unrelated CA: its own verification refuses the peer
    run enforced curl -sS --cacert "$PKI/other-root.pem" --max-time 10 "https://localhost:$PORT/x"
    assert_failure 60
    [ ! -s "$T/http.log" ]
}

@test "enforce: plaintext on an enforce rule gets tlsshim's own verified TLS, as with auto" {
    server good
    run -0 bash -c "printf 'plain text\n' | LD_PRELOAD=$PRELOAD TLSSHIM_CONF=$TLSSHIM_CONF $PROGS/blockclient localhost $PORT"
    assert_output --partial "plain text"
    assert_equal "$(json_field "$T/info.json" 1 handshake)" ok
}

@test "enforce: a program whose offer has nothing the rule allows fails before its hello leaves" {
    sink
    policy "min_version = TLSv1_3"
    # osslclient allows TLS 1.2 at most, the rule TLS 1.3 only
    run -3 enforced "$PROGS/osslclient" localhost "$PORT" "secret payload"
    assert_output --partial "rule=lab: the program's OpenSSL offer has nothing rule lab allows (it allows SSLv3-TLSv1.2"
    assert_output --partial "no protocols available"
    # the sink saw the TCP connection, and not one byte on it
    wait_file "$T/sink.json"
    assert_equal "$(json_field "$T/sink.json" 1 bytes)" 0
}

# --- the program's offer, narrowed to the rule --------------------------------

# vserver ARGS...: the good echo server with extra tls_server.py options
vserver() {
    rm -f "$T/rec.bin"
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode echo --record "$T/rec.bin" --info "$T/info.json" "$@"
}

@test "enforce: a program allowing TLS 1.0 offers only the rule's versions; a TLS 1.0/1.1 server is refused" {
    vserver --min-version TLSv1 --max-version TLSv1_1 --ciphers 'DEFAULT@SECLEVEL=0'
    # the program alone negotiates TLS 1.1 with it
    run -0 "$PROGS/osslclient" -m tls1 -c 'DEFAULT@SECLEVEL=0' localhost "$PORT" "secret payload"
    assert_output --partial "osslclient: TLSv1.1 got secret payload"
    rm -f "$T/rec.bin"
    export TLSSHIM_DEBUG=2
    run -3 enforced "$PROGS/osslclient" -m tls1 -c 'DEFAULT@SECLEVEL=0' localhost "$PORT" "secret payload"
    assert_output --partial "rule=lab: the program's OpenSSL offer narrowed to the rule: versions TLSv1.2-TLSv1.2 (it allowed TLSv1-TLSv1.2)"
    assert_output --partial "security level 2 (it had 0)"
    # the server saw a hello without TLS 1.0/1.1 and refused it
    assert_output --partial "rule=lab: the program's OpenSSL handshake failed: "
    assert_output --partial "(its offer was narrowed to TLSv1.2-TLSv1.2 and "
    assert_equal "$(json_field "$T/info.json" 2 handshake)" failed
    nothing_received
}

@test "enforce: a program allowing TLS 1.3 under a rule that stops at TLS 1.2 negotiates TLS 1.2" {
    vserver
    policy "max_version = TLSv1_2"
    run -0 "$PROGS/osslclient" -M tls1.3 localhost "$PORT" "secret payload"
    assert_output --partial "osslclient: TLSv1.3 got secret payload"
    export TLSSHIM_DEBUG=2
    run -0 enforced "$PROGS/osslclient" -M tls1.3 localhost "$PORT" "secret payload"
    # not refused after a TLS 1.3 handshake: TLS 1.3 was never offered
    assert_output --partial "osslclient: TLSv1.2 got secret payload"
    assert_output --partial "offer narrowed to the rule: versions TLSv1.2-TLSv1.2 (it allowed SSLv3-TLSv1.3)"
    assert_output --partial "rule=lab action=enforce tls=TLSv1.2"
    assert_equal "$(json_field "$T/info.json" 2 version)" TLSv1.2
}

@test "enforce: cipher suites the rule refuses are not offered, so the server picks an allowed one" {
    # the server prefers CBC with SHA-1, which the rule's list excludes
    local both='ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256'
    vserver --max-version TLSv1_2 --ciphers "$both"
    run -0 "$PROGS/osslclient" -c "$both" localhost "$PORT" "secret payload"
    assert_output --partial "cipher=ECDHE-ECDSA-AES128-SHA"
    export TLSSHIM_DEBUG=2
    run -0 enforced "$PROGS/osslclient" -c "$both" localhost "$PORT" "secret payload"
    assert_output --partial "osslclient: TLSv1.2 got secret payload"
    assert_output --partial "cipher=ECDHE-ECDSA-AES128-GCM-SHA256"
    # its list: the 3 TLS 1.3 suites and these 2
    assert_output --partial "4 of its 5 cipher suites"
    assert_equal "$(json_field "$T/info.json" 2 cipher)" ECDHE-ECDSA-AES128-GCM-SHA256
}

@test "enforce: a GnuTLS program's priorities are narrowed to the rule's versions" {
    vserver
    policy "max_version = TLSv1_2"
    run -0 "$PROGS/gnutlsclient" localhost "$PORT" "secret payload"
    assert_output --partial "gnutlsclient: TLS1.3 got secret payload"
    export TLSSHIM_DEBUG=2
    run -0 enforced "$PROGS/gnutlsclient" localhost "$PORT" "secret payload"
    assert_output --partial "gnutlsclient: TLS1.2 got secret payload"
    assert_output --partial "rule=lab: the program's GnuTLS priorities (the default) narrowed to the rule: the default + -VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-TLS1.3:"
    # a priority string of its own gets the same removals appended
    run -0 enforced "$PROGS/gnutlsclient" -P 'NORMAL:+VERS-TLS1.0' localhost "$PORT" "secret payload"
    assert_output --partial "gnutlsclient: TLS1.2 got secret payload"
    assert_output --partial "priorities \"NORMAL:+VERS-TLS1.0\" narrowed to the rule: \"NORMAL:+VERS-TLS1.0:-VERS-SSL3.0:-VERS-TLS1.0:"
    assert_equal "$(json_field "$T/info.json" 3 version)" TLSv1.2
}

@test "enforce: a GnuTLS program allowing only TLS 1.0 fails against a TLS 1.0 server" {
    vserver --min-version TLSv1 --max-version TLSv1 --ciphers 'DEFAULT@SECLEVEL=0'
    local prio='NORMAL:-VERS-ALL:+VERS-TLS1.0:%COMPAT'
    run -0 "$PROGS/gnutlsclient" -P "$prio" localhost "$PORT" "secret payload"
    assert_output --partial "gnutlsclient: TLS1.0 got secret payload"
    rm -f "$T/rec.bin"
    run -3 enforced "$PROGS/gnutlsclient" -P "$prio" localhost "$PORT" "secret payload"
    assert_output --partial "gnutlsclient: handshake failed"
    assert_output --partial "rule=lab: the program's GnuTLS priorities leave nothing the rule allows (narrowed: \"$prio:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1:"
    nothing_received
    assert_equal "$(json_field "$T/info.json" 2 handshake)" failed
}

# --- what the program sets cannot weaken the rule's check -------------------

@test "enforce: SSL_set1_host naming the bad certificate and an accept-all verify callback do not help" {
    server wronghost
    # the program verifies (SSL_VERIFY_PEER) the name wrong.test, which
    # the certificate has, and its callback accepts anything anyway
    run -0 "$PROGS/osslclient" -V -H wrong.test -T "$PKI/ca.pem" localhost "$PORT" "secret payload"
    assert_output --partial "got secret payload resumed=no verify=0"
    rm -f "$T/rec.bin"
    run -3 enforced "$PROGS/osslclient" -V -H wrong.test -T "$PKI/ca.pem" localhost "$PORT" "secret payload"
    assert_output --partial "verify result 62 (hostname mismatch)"
    assert_output --partial "rule=lab: certificate verify failed: hostname mismatch (wanted localhost, certificate has wrong.test)"
    nothing_received
}

@test "enforce: X509_V_FLAG_NO_CHECK_TIME, a trusted leaf with PARTIAL_CHAIN and a cert verify callback do not help" {
    server expired
    for opts in "-V -t -T $PKI/ca.pem" "-V -p -t -T $PKI/expired.pem" "-k"; do
        # each way, the program's own verification accepts the certificate
        rm -f "$T/rec.bin"
        run -0 "$PROGS/osslclient" $opts localhost "$PORT" "secret payload"
        assert_output --partial "got secret payload resumed=no verify=0"
        rm -f "$T/rec.bin"
        run -3 enforced "$PROGS/osslclient" $opts localhost "$PORT" "secret payload"
        assert_output --partial "verify result 10 (certificate has expired)"
        assert_output --partial "rule=lab: certificate verify failed: certificate has expired"
        nothing_received
    done
}

@test "enforce: GnuTLS with GNUTLS_VERIFY_DISABLE_TIME_CHECKS still fails against an expired certificate" {
    server expired
    # GnuTLS verifies during the handshake, without time checks
    run -0 "$PROGS/gnutlsclient" -t -T "$PKI/ca.pem" -H localhost localhost "$PORT" "secret payload"
    assert_output --partial "got secret payload"
    rm -f "$T/rec.bin"
    run -3 enforced "$PROGS/gnutlsclient" -t -T "$PKI/ca.pem" -H localhost localhost "$PORT" "secret payload"
    assert_output --partial "gnutlsclient: handshake failed: Error in the certificate verification."
    assert_output --partial "rule=lab: certificate verify failed: certificate has expired"
    assert_output --partial "gnutls_record_send after the failure: -"
    nothing_received
}

@test "enforce: a GnuTLS program that checks the peer itself and ignores the verdict still fails" {
    server wronghost
    run -0 "$PROGS/gnutlsclient" -i -T "$PKI/ca.pem" localhost "$PORT" "secret payload"
    assert_output --partial "own check (ignored): The certificate is NOT trusted."
    assert_output --partial "got secret payload"
    rm -f "$T/rec.bin"
    run -3 enforced "$PROGS/gnutlsclient" -i -T "$PKI/ca.pem" localhost "$PORT" "secret payload"
    assert_output --partial "rule=lab: certificate verify failed: hostname mismatch (wanted localhost"
    refute_output --partial "own check (ignored)"
    nothing_received
}

# --- TLS that the hooks cannot see ------------------------------------------

# sink: a plain TCP server on $PORT that records every byte it receives
sink() {
    start_bg sink "$PYTHON" "$PEERS/raw_sink.py" --port "$PORT" \
        --record "$T/raw.bin" --info "$T/sink.json"
    wait_port "$PORT"
}

@test "enforce: a ClientHello built by the program itself is cut with ECONNRESET before it leaves" {
    server good
    run -0 "$PROGS/rawhello" localhost "$PORT" localhost
    assert_output --regexp "rawhello: wrote [0-9]+ bytes, the peer answered [1-9]"
    common_teardown
    sink
    export TLSSHIM_REPORT=$T/report.json
    run -3 enforced "$PROGS/rawhello" localhost "$PORT" localhost
    assert_output --partial "rawhello: write: Connection reset by peer errno=ECONNRESET"
    assert_output --partial "rule=lab: a TLS ClientHello that did not come through tlsshim's OpenSSL or GnuTLS hooks"
    assert_equal "$(json_field "$T/report.json" 1 outcome)" denied
    # the sink saw the TCP connection, and not one byte on it
    wait_file "$T/sink.json"
    assert_equal "$(json_field "$T/sink.json" 1 bytes)" 0
    [ ! -s "$T/raw.bin" ]
}

@test "enforce: without libtlsshim-enforce.so, a program's own TLS is cut rather than passed unverified" {
    sink
    run -3 bash -c "LD_PRELOAD=$SHIMLIB TLSSHIM_CONF=$TLSSHIM_CONF $PROGS/osslclient localhost $PORT 'secret payload'"
    assert_output --partial "libtlsshim-enforce.so is not loaded to verify it; connection cut"
    wait_file "$T/sink.json"
    assert_equal "$(json_field "$T/sink.json" 1 bytes)" 0
}

@test "enforce: the same program's hello through OpenSSL passes where its hand-made one is cut" {
    server good
    run -0 enforced "$PROGS/osslclient" localhost "$PORT" "secret payload"
    assert_output --partial "got secret payload"
    run -3 enforced "$PROGS/rawhello" localhost "$PORT" localhost
    assert_output --partial "errno=ECONNRESET"
    # only osslclient's hello reached the server: the second connection
    # ended before any handshake byte
    assert_equal "$(json_field "$T/info.json" 1 handshake)" ok
    assert_equal "$(json_field "$T/info.json" 2 handshake)" failed
    assert_equal "$(json_field "$T/info.json" 2 bytes_in)" 0
    assert_equal "$(grep -c 'secret payload' "$T/rec.bin")" 1
}

# --- GnuTLS: wget, gnutls-cli ------------------------------------------------

@test "enforce: wget --no-check-certificate (GnuTLS) fails against a wrong-host certificate and sends no request" {
    https wronghost
    run -0 wget --no-check-certificate -q -O - "https://localhost:$PORT/w"
    assert_output "the body"
    rm -f "$T/http.log"
    run enforced wget --no-check-certificate -q -O - "https://localhost:$PORT/w"
    assert_failure 4
    assert_output --partial "rule=lab: certificate verify failed: hostname mismatch (wanted localhost, certificate has wrong.test) (the program's GnuTLS TLS)"
    [ ! -s "$T/http.log" ] || fail "the server got a request: $(cat "$T/http.log")"
}

@test "enforce: wget fails against expired and self-signed certificates" {
    for cert in expired:"certificate has expired" selfsigned:"self-signed certificate"; do
        IFS=: read -r name reason <<<"$cert"
        https "$name"
        run enforced wget --no-check-certificate -q -O - "https://localhost:$PORT/w"
        assert_failure 4
        assert_output --partial "rule=lab: certificate verify failed: $reason"
        [ ! -s "$T/http.log" ]
        common_teardown
    done
}

@test "enforce: wget works against a good server, with and without its own verification" {
    https good
    export TLSSHIM_REPORT=$T/report.json
    run -0 enforced wget --no-check-certificate -q -O - "https://localhost:$PORT/a"
    assert_output "the body"
    run -0 enforced wget --ca-certificate="$PKI/ca.pem" -q -O - "https://localhost:$PORT/b"
    assert_output "the body"
    assert_equal "$(awk '{print $2}' "$T/http.log" | tr '\n' ' ')" "/a /b "
    assert_equal "$(json_field "$T/report.json" 1 outcome)" ok
    assert_equal "$(json_field "$T/report.json" 1 cipher)" TLS_AES_256_GCM_SHA384
}

@test "enforce: gnutls-cli --insecure fails against a wrong-host certificate" {
    server wronghost
    run bash -c "echo 'secret payload' | timeout 10 gnutls-cli --insecure -p $PORT localhost 2>&1"
    assert_output --partial "- Handshake was completed"
    assert_equal "$(grep -c 'secret payload' "$T/rec.bin")" 1
    rm -f "$T/rec.bin"
    run enforced bash -c "echo 'secret payload' | timeout 10 gnutls-cli --insecure -p $PORT localhost 2>&1"
    assert_output --partial "rule=lab: certificate verify failed: hostname mismatch"
    assert_output --partial "Error in the certificate verification"
    refute_output --partial "- Handshake was completed"
    nothing_received
}

@test "enforce: gnutls-cli --insecure works against a good server and resumes with -r" {
    server good
    run enforced bash -c "echo 'secret payload' | timeout 10 gnutls-cli --insecure -r -p $PORT localhost 2>&1"
    assert_output --partial "- Handshake was completed"
    assert_output --partial "This is a resumed session"
    assert_equal "$(grep -c 'secret payload' "$T/rec.bin")" 1
}

@test "tlsshim adds libtlsshim-enforce.so to LD_PRELOAD only for a policy with enforce rules" {
    run -0 "$TLSSHIM" -- sh -c 'echo "$LD_PRELOAD"'
    assert_output --partial "libtlsshim-enforce.so"
    printf '[web]\nconnect = :443\n' > "$T/tls.conf"
    chmod 600 "$T/tls.conf"
    run -0 "$TLSSHIM" -f "$T/tls.conf" -- sh -c 'echo "$LD_PRELOAD"'
    assert_output --partial "libtlsshim.so"
    refute_output --partial "libtlsshim-enforce.so"
}

@test "a child that lost LD_PRELOAD gets libtlsshim-enforce.so back with libtlsshim.so" {
    run -0 enforced env -u LD_PRELOAD sh -c 'echo "$LD_PRELOAD"'
    assert_output --partial "libtlsshim.so"
    assert_output --partial "libtlsshim-enforce.so"
}
