#!/usr/bin/env bats
# The test infrastructure itself, without the shim: the generated PKI, the
# peers in tests/peers, the C programs in tests/progs and the helpers of
# tests/lib/common.bash.  If these fail, no other result means anything.

load ../lib/common

setup() {
    common_setup
}

teardown() {
    common_teardown
}

# echo_server NAME PORT [HOST]: a plain TCP echo server (socat).
echo_server() {
    local name=$1 port=$2 host=${3:-127.0.0.1}
    if [[ $host == *:* ]]; then
        start_bg "$name" socat "TCP6-LISTEN:$port,bind=[$host],ipv6only=1,reuseaddr,fork" PIPE
    else
        start_bg "$name" socat "TCP4-LISTEN:$port,bind=$host,reuseaddr,fork" PIPE
    fi
    wait_port "$port" "$host"
}

# payload FILE BYTES: random bytes.
payload() {
    head -c "$2" /dev/urandom >"$1"
}

# s_client_echo PORT IN OUT [s_client args...]: send IN over TLS with
# openssl s_client and keep the connection open until as many bytes came
# back as were sent (bounded), so that OUT holds the whole echo.
# -nocommands: a random line starting with K, k, Q or R is data, not an
# s_client command (a key update or quit that would eat the payload).
s_client_echo() {
    local port=$1 in=$2 out=$3 size i
    shift 3
    size=$(stat -c %s "$in")
    : >"$out"
    {
        cat "$in"
        for ((i = 0; i < 100; i++)); do
            (($(stat -c %s "$out") >= size)) && break
            sleep 0.1
        done
    } | openssl s_client -connect "127.0.0.1:$port" -CAfile "$PKI/ca.pem" \
        -verify_return_error -quiet -no_ign_eof -nocommands "$@" >"$out" 2>"$T/s_client.err"
}

@test "the PKI's leaves verify through the intermediate to the root" {
    local name
    for name in good ipsan wronghost wildcard rsa client expired; do
        [[ -s $PKI/$name.pem && -s $PKI/$name.key && -s $PKI/$name.chain.pem ]]
    done
    for name in good ipsan wronghost wildcard rsa client; do
        run openssl verify -CAfile "$PKI/ca.pem" -untrusted "$PKI/inter.pem" "$PKI/$name.pem"
        assert_success
        assert_output "$PKI/$name.pem: OK"
    done
    run openssl verify -CAfile "$PKI/selfsigned.pem" "$PKI/selfsigned.pem"
    assert_success
}

@test "the PKI's chain files hold the leaf then the intermediate" {
    run openssl verify -CAfile "$PKI/ca.pem" -untrusted "$PKI/good.chain.pem" "$PKI/good.pem"
    assert_success
    cmp <(cat "$PKI/good.pem" "$PKI/inter.pem") "$PKI/good.chain.pem"
    cmp "$PKI/root.pem" "$PKI/ca.pem"
}

@test "the expired leaf fails verification because it expired" {
    run openssl verify -CAfile "$PKI/ca.pem" -untrusted "$PKI/inter.pem" "$PKI/expired.pem"
    assert_failure
    assert_output --partial "expired"
}

@test "the other root verifies none of the test leaves" {
    run openssl verify -CAfile "$PKI/other-root.pem" -untrusted "$PKI/inter.pem" "$PKI/good.pem"
    assert_failure
    assert_output --partial "unable to get"
}

@test "each leaf carries the names its test case needs" {
    run openssl x509 -in "$PKI/wronghost.pem" -noout -ext subjectAltName -subject
    assert_success
    assert_output --partial "DNS:wrong.test"
    refute_output --partial "localhost"
    refute_output --partial "127.0.0.1"

    run openssl x509 -in "$PKI/good.pem" -noout -ext subjectAltName,extendedKeyUsage
    assert_output --partial "DNS:localhost, DNS:good.test, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"
    assert_output --partial "TLS Web Server Authentication"

    run openssl x509 -in "$PKI/ipsan.pem" -noout -ext subjectAltName
    assert_output --partial "IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"
    refute_output --partial "DNS:"

    run openssl x509 -in "$PKI/wildcard.pem" -noout -ext subjectAltName
    assert_output --partial "DNS:*.wild.test"

    run openssl x509 -in "$PKI/client.pem" -noout -subject -ext extendedKeyUsage
    assert_output --partial "CN = client.test"
    assert_output --partial "TLS Web Client Authentication"

    run openssl x509 -in "$PKI/rsa.pem" -noout -text
    assert_output --partial "Public-Key: (2048 bit)"
}

@test "the client key opens from PKCS#12 and encrypted PEM with the passphrase file" {
    [[ $(<"$PKI/p12pass.txt") == secret ]]
    run openssl pkcs12 -in "$PKI/client.p12" -passin "file:$PKI/p12pass.txt" -nokeys
    assert_success
    assert_output --partial "CN = client.test"
    assert_output --partial "CN = tlsshim test intermediate"
    run openssl pkey -in "$PKI/client-enc.key" -passin pass:wrong -noout
    assert_failure
    openssl pkey -in "$PKI/client-enc.key" -passin "file:$PKI/p12pass.txt" -pubout >"$T/a.pub"
    openssl pkey -in "$PKI/client.key" -pubout >"$T/b.pub"
    cmp "$T/a.pub" "$T/b.pub"
}

@test "the PKI directory and its secrets are private" {
    [[ $(stat -c %a "$PKI") == 700 ]]
    local f
    for f in "$PKI"/*.key "$PKI/client.p12" "$PKI/p12pass.txt"; do
        [[ $(stat -c %a "$f") == 600 ]] || fail "$f is mode $(stat -c %a "$f")"
    done
}

@test "tls_server echoes a payload over TLS and records it, SNI and ALPN" {
    local port
    port=$(free_port)
    # s_client is no bulk tool: keep the payload within one of its buffers.
    payload "$T/in" 12000
    tls_server srv "$port" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --record "$T/rec" --info "$T/info" --alpn foo,bar
    s_client_echo "$port" "$T/in" "$T/out" -servername good.test -alpn bar
    [[ $(sha_of "$T/out") == $(sha_of "$T/in") ]]
    wait_file "$T/info"
    [[ $(sha_of "$T/rec") == $(sha_of "$T/in") ]]
    assert_equal "$(json_field "$T/info" 1 handshake)" ok
    assert_equal "$(json_field "$T/info" 1 version)" TLSv1.3
    assert_equal "$(json_field "$T/info" 1 sni)" good.test
    assert_equal "$(json_field "$T/info" 1 alpn)" bar
    assert_equal "$(json_field "$T/info" 1 bytes_in)" 12000
    assert_equal "$(json_field "$T/info" 1 end)" close_notify
    assert_equal "$(json_field "$T/info" 1 peer_cert)" null
}

@test "tls_server records a failed handshake and keeps serving" {
    local port
    port=$(free_port)
    tls_server srv "$port" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --ca "$PKI/ca.pem" --verify require --info "$T/info"
    run openssl s_client -connect "127.0.0.1:$port" -CAfile "$PKI/ca.pem" </dev/null
    wait_file "$T/info"
    assert_equal "$(json_field "$T/info" 1 handshake)" failed
    [[ $(json_field "$T/info" 1 error) == *"certificate"* ]]

    payload "$T/in" 1000
    s_client_echo "$port" "$T/in" "$T/out" -cert "$PKI/client.pem" \
        -key "$PKI/client.key" -cert_chain "$PKI/inter.pem"
    [[ $(sha_of "$T/out") == $(sha_of "$T/in") ]]
    for ((i = 0; i < 50; i++)); do
        (($(wc -l <"$T/info") >= 2)) && break
        sleep 0.1
    done
    assert_equal "$(json_field "$T/info" 2 handshake)" ok
    assert_equal "$(json_field "$T/info" 2 peer_cert)" "O=tlsshim tests,CN=client.test"
}

@test "tls_server resumes TLS 1.3 sessions with its tickets" {
    local port
    port=$(free_port)
    tls_server srv "$port" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --info "$T/info" --count 2
    payload "$T/in" 100
    s_client_echo "$port" "$T/in" "$T/out1" -sess_out "$T/sess"
    s_client_echo "$port" "$T/in" "$T/out2" -sess_in "$T/sess"
    [[ $(sha_of "$T/out2") == $(sha_of "$T/in") ]]
    for ((i = 0; i < 50; i++)); do
        (($(wc -l <"$T/info" 2>/dev/null || echo 0) >= 2)) && break
        sleep 0.1
    done
    assert_equal "$(json_field "$T/info" 1 session_reused)" false
    assert_equal "$(json_field "$T/info" 2 session_reused)" true
}

@test "tls_server listens on ::1 and honours --max-version and reply mode" {
    local port
    port=$(free_port)
    tls_server srv "$port" --host ::1 --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --max-version TLSv1_2 --mode reply --reply "pong" --info "$T/info"
    run --separate-stderr openssl s_client -connect "[::1]:$port" -CAfile "$PKI/ca.pem" \
        -verify_return_error -quiet -ign_eof <<<"ping"
    assert_success
    assert_output "pong"
    wait_file "$T/info"
    assert_equal "$(json_field "$T/info" 1 version)" TLSv1.2
    assert_equal "$(json_field "$T/info" 1 end)" replied
    [[ $(json_field "$T/info" 1 peer) == ::1:* ]]
}

@test "tls_server tells a close_notify from a bare FIN and from a reset" {
    local port
    port=$(free_port)
    tls_server srv "$port" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --info "$T/info" --count 3
    "$PYTHON" - "$port" "$PKI/ca.pem" <<'EOF'
import socket, ssl, struct, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
for how in ("close_notify", "eof", "reset"):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                        server_hostname="localhost")
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    if how == "close_notify":
        s.unwrap().close()
    elif how == "reset":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    else:
        s.close()  # Python sends no close_notify here
EOF
    for ((i = 0; i < 50; i++)); do
        (($(wc -l <"$T/info") >= 3)) && break
        sleep 0.1
    done
    assert_equal "$(json_field "$T/info" 1 end)" close_notify
    assert_equal "$(json_field "$T/info" 2 end)" eof
    assert_equal "$(json_field "$T/info" 3 end)" reset
}

@test "tls_server --end eof closes without close_notify" {
    local port
    port=$(free_port)
    tls_server srv "$port" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode reply --reply "bye" --end eof
    run "$PYTHON" - "$port" "$PKI/ca.pem" <<'EOF'
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                    server_hostname="localhost", suppress_ragged_eofs=False)
s.sendall(b"hi\n")
got = b""
try:
    while True:
        b = s.recv(100)
        if not b:
            print(got.decode(), "close_notify")
            break
        got += b
except ssl.SSLError as e:
    print(got.decode(), "unexpected eof" if "EOF" in str(e).upper() else e)
EOF
    assert_success
    assert_output "bye unexpected eof"
}

@test "raw_sink records every byte a client sends" {
    local port
    port=$(free_port)
    payload "$T/in" 200000
    start_bg sink "$PYTHON" "$PEERS/raw_sink.py" --port "$port" --record "$T/rec" --info "$T/info"
    wait_port "$port" 127.0.0.1
    run "$PROGS/blockclient" 127.0.0.1 "$port" <"$T/in"
    assert_success
    assert_output ""
    wait_file "$T/info"
    [[ $(sha_of "$T/rec") == $(sha_of "$T/in") ]]
    assert_equal "$(json_field "$T/info" 1 bytes)" 200000
}

@test "http_tls serves its body file to curl over HTTPS" {
    local port
    port=$(free_port)
    payload "$T/body" 30000
    start_bg http "$PYTHON" "$PEERS/http_tls.py" --port "$port" \
        --cert "$PKI/good.chain.pem" --key "$PKI/good.key" --body-file "$T/body"
    wait_port "$port" 127.0.0.1
    wait_file "$T/http.log"
    run curl -sS --max-time 10 --cacert "$PKI/ca.pem" -o "$T/got" "https://localhost:$port/any"
    assert_success
    [[ $(sha_of "$T/got") == $(sha_of "$T/body") ]]
}

@test "blockclient exchanges a payload with a plain echo server" {
    local port
    port=$(free_port)
    payload "$T/in" 60000
    echo_server echo "$port"
    "$PROGS/blockclient" 127.0.0.1 "$port" <"$T/in" >"$T/out"
    [[ $(sha_of "$T/out") == $(sha_of "$T/in") ]]
}

@test "blockclient -t echoes more than the socket buffers hold, over ::1" {
    local port
    port=$(free_port)
    payload "$T/in" 4000000
    echo_server echo "$port" ::1
    "$PROGS/blockclient" -t ::1 "$port" <"$T/in" >"$T/out"
    [[ $(sha_of "$T/out") == $(sha_of "$T/in") ]]
}

@test "nbclient with poll exchanges a payload with a plain echo server" {
    local port
    port=$(free_port)
    payload "$T/in" 2000000
    echo_server echo "$port"
    "$PROGS/nbclient" 127.0.0.1 "$port" <"$T/in" >"$T/out"
    [[ $(sha_of "$T/out") == $(sha_of "$T/in") ]]
}

@test "nbclient with select exchanges a payload with a plain echo server" {
    local port
    port=$(free_port)
    payload "$T/in" 2000000
    echo_server echo "$port"
    "$PROGS/nbclient" -s 127.0.0.1 "$port" <"$T/in" >"$T/out"
    [[ $(sha_of "$T/out") == $(sha_of "$T/in") ]]
}

@test "nbclient with epoll exchanges a payload with a plain echo server" {
    local port
    port=$(free_port)
    payload "$T/in" 2000000
    echo_server echo "$port"
    "$PROGS/nbclient" -e 127.0.0.1 "$port" <"$T/in" >"$T/out"
    [[ $(sha_of "$T/out") == $(sha_of "$T/in") ]]
}

@test "nbclient with epoll pumps a pipe that pauses, resolving localhost" {
    local port
    port=$(free_port)
    echo_server echo "$port" 127.0.0.1
    echo_server echo6 "$port" ::1
    { printf 'first\n'; sleep 0.3; printf 'second\n'; } |
        "$PROGS/nbclient" -e localhost "$port" >"$T/out"
    assert_equal "$(cat "$T/out")" "$(printf 'first\nsecond')"
}

@test "blockclient reports a refused connection as exit 3 with errno=ECONNREFUSED" {
    local port
    port=$(free_port)
    run "$PROGS/blockclient" 127.0.0.1 "$port" </dev/null
    assert_failure 3
    assert_output "blockclient: connect: Connection refused errno=ECONNREFUSED"
}

@test "nbclient reports a refused connection as exit 3 with errno=ECONNREFUSED in every mode" {
    local port mode
    port=$(free_port)
    for mode in "" -s -e; do
        run "$PROGS/nbclient" $mode 127.0.0.1 "$port" </dev/null
        assert_failure 3
        assert_output "nbclient: connect: Connection refused errno=ECONNREFUSED"
    done
}

@test "the test programs reject bad usage with exit 2" {
    run "$PROGS/blockclient" 127.0.0.1
    assert_failure 2
    run "$PROGS/nbclient" -e -x 127.0.0.1 1
    assert_failure 2
}

@test "teardown's process list names every start_bg process by PID" {
    start_bg one sleep 60
    start_bg two sleep 60
    [[ $(<"$T/one.pid") =~ ^[0-9]+$ ]]
    kill -0 "$(<"$T/one.pid")"
    assert_equal "$(cat "$T/.bg_pids")" "$(cat "$T/one.pid" "$T/two.pid")"
    common_teardown
    run kill -0 "$(<"$T/one.pid")"
    assert_failure
    run kill -0 "$(<"$T/two.pid")"
    assert_failure
}

@test "wait_port, wait_file and wait_grep fail within their bound" {
    local port
    port=$(free_port)
    WAIT_SECONDS=1
    run wait_port "$port" 127.0.0.1
    assert_failure
    assert_output --partial "nothing listens"
    run wait_file "$T/never" 1
    assert_failure
    run wait_grep "$T/never" 'x'
    assert_failure
    assert_output --partial 'wait_grep: 0 of 1 lines match "x"'
    printf 'one\ntwo\n' > "$T/lines"
    run wait_grep "$T/lines" '^three'
    assert_failure
    assert_output --partial 'wait_grep: 0 of 1 lines match "^three"'
    run wait_grep "$T/lines" '^two'
    assert_success
    run wait_grep "$T/lines" 'o' 3
    assert_failure
    assert_output --partial 'wait_grep: 2 of 3 lines match "o"'
    run wait_grep "$T/lines" 'o' 2
    assert_success
}
