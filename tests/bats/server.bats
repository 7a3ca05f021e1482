#!/usr/bin/env bats
# Server mode: a plain server gets TLS on the connections it accepts on
# addresses that listen rules name (SPEC sections 3-5).  The server here
# is tests/peers/plain_server.py, which knows nothing of TLS; the clients
# are python's ssl module and openssl s_client.  Each test checks what the
# client received and what the program saw.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
}

teardown() {
    common_teardown
}

# spolicy [LINE...]: a policy with one listen rule [srv] for $PORT on
# 127.0.0.1 and ::1 offering the "good" certificate, plus LINEs.
spolicy() {
    local f="$T/policy.conf" line
    {
        echo "[srv]"
        echo "listen = 127.0.0.1:$PORT [::1]:$PORT"
        echo "cert_file = $PKI/good.chain.pem"
        echo "key_file = $PKI/good.key"
        for line in "$@"; do echo "$line"; done
    } >"$f"
    chmod 600 "$f"
}

# serve [ARGS...]: plain_server.py under tlsshim (-d 1, log in
# $T/shim.log), connections logged to $T/conns.log; waits for READY.
serve() {
    local i pid
    rm -f "$T/srv.log"   # an earlier server's READY must not count
    start_bg srv "$TLSSHIM" -f "$T/policy.conf" -d 1 -o "$T/shim.log" -- \
        "$PYTHON" "$PEERS/plain_server.py" --port "$PORT" --log "$T/conns.log" "$@"
    pid=$(<"$T/srv.pid")
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        grep -q '^READY' "$T/srv.log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "serve: the server did not start:" >&2
    cat "$T/srv.log" >&2
    return 1
}

# client [ARGS...]: tests/peers/tls_client.py against $PORT, trusting ca.pem
client() {
    "$PYTHON" "$PEERS/tls_client.py" --port "$PORT" --cafile "$PKI/ca.pem" "$@"
}

# conns_with TEXT: how many connections the program saw that match TEXT
conns_with() {
    grep -c -- "$1" "$T/conns.log" 2>/dev/null || true
}

@test "a listen rule turns a plain echo server into a verified TLS server" {
    spolicy
    # dual-stack: IPv4 clients arrive as ::ffff:127.0.0.1, matched as IPv4
    serve --mode upper --host ::
    run client --send "hello tls"
    assert_success
    assert_equal "$(echo "$output" | json_reply)" "HELLO TLS"
    [[ $output == *'"subject": "localhost"'* ]]
    # IPv6
    run client --host ::1 --send "over v6"
    assert_success
    assert_equal "$(echo "$output" | json_reply)" "OVER V6"
    # one summary line per connection at -d 1
    run grep -c "info: accept 127.0.0.1:$PORT from 127.0.0.1:[0-9]* rule=srv tls=TLSv1.3" "$T/shim.log"
    assert_output 1
    run grep -c "info: accept \[::1\]:$PORT from \[::1\]:[0-9]* rule=srv" "$T/shim.log"
    assert_output 1
}

@test "a plain-text client gets no plaintext answer and the program sees a reset" {
    spolicy
    serve --mode upper
    run "$PYTHON" -c "
import socket
s = socket.create_connection(('127.0.0.1', $PORT), timeout=5)
s.sendall(b'GET / HTTP/1.0\r\n\r\n')
got = b''
try:
    while True:
        b = s.recv(4096)
        if not b: break
        got += b
except ConnectionResetError:
    pass
print(repr(got))
"
    assert_success
    # no upper-cased echo of the request: only a TLS alert, if anything
    refute_output --partial "GET / HTTP"
    refute_output --partial "HTTP/1.0"
    run grep "accept 127.0.0.1:$PORT from .* rule=srv: TLS handshake failed: http request" "$T/shim.log"
    assert_success
    wait_file "$T/conns.log"
    run cat "$T/conns.log"
    assert_output --regexp "^conn 127.0.0.1:[0-9]+ bytes=0 end=reset$"
}

# json_reply: the "reply" field of tls_client.py's JSON line on stdin
json_reply() {
    "$PYTHON" -c 'import json,sys; print(json.loads(sys.stdin.readline())["reply"])'
}

@test "rules match the accepted local address: a dual-stack server is TLS on 127.0.0.1 only" {
    {
        echo "[v4]"
        echo "listen = 127.0.0.1:$PORT"
        echo "cert_file = $PKI/good.chain.pem"
        echo "key_file = $PKI/good.key"
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
    serve --mode upper --host ::
    run client --send "secret"
    assert_success
    assert_equal "$(echo "$output" | json_reply)" "SECRET"
    # ::1 is not named: default_listen_action = plain leaves it alone
    run "$PYTHON" -c "
import socket
s = socket.create_connection(('::1', $PORT), timeout=5)
s.sendall(b'plain text')
print(s.recv(100).decode())
"
    assert_success
    assert_output "PLAIN TEXT"
}

@test "deny: refused connections are closed before the program sees them" {
    {
        echo "[global]"
        echo "default_listen_action = deny"
        echo "[v4]"
        echo "listen = 127.0.0.1:$PORT"
        echo "cert_file = $PKI/good.chain.pem"
        echo "key_file = $PKI/good.key"
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
    serve --host ::
    run "$PYTHON" -c "
import socket
s = socket.create_connection(('::1', $PORT), timeout=5)
try:
    s.sendall(b'let me in')
    print('got %r' % s.recv(100))
except OSError as e:
    print('error', e)
"
    assert_success
    assert_output --regexp "^(got b''|error .*reset.*)$"
    run grep "accept \[::1\]:$PORT from \[::1\]:[0-9]* rule=(default_listen_action): denied by policy" "$T/shim.log"
    assert_success
    # the allowed address still works, and the program saw only that one
    run client --send "ok"
    assert_success
    wait_grep "$T/conns.log" "127.0.0.1" 1
    assert_equal "$(conns_with '::1')" 0
    assert_equal "$(conns_with '127.0.0.1')" 1
}

@test "action = deny and action = plain on listen rules" {
    {
        echo "[closed]"
        echo "listen = [::1]:$PORT"
        echo "action = deny"
        echo "[open]"
        echo "listen = 127.0.0.1:$PORT"
        echo "action = plain"
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
    serve --host :: --mode upper
    run "$PYTHON" -c "
import socket
s = socket.create_connection(('127.0.0.1', $PORT), timeout=5)
s.sendall(b'plain')
print(s.recv(100).decode())
"
    assert_output "PLAIN"
    run "$PYTHON" -c "
import socket
s = socket.create_connection(('::1', $PORT), timeout=5)
s.sendall(b'x')
try:
    print('got %r' % s.recv(100))
except OSError as e:
    print('error', e)
"
    assert_output --regexp "^(got b''|error .*reset.*)$"
    run grep -c "rule=closed: denied by policy" "$T/shim.log"
    assert_output 1
}

@test "sni_cert: the client's server name picks the certificate, cert_file otherwise" {
    spolicy "sni_cert = wrong.test $PKI/wronghost.chain.pem $PKI/wronghost.key" \
        "sni_cert = *.wild.test $PKI/wildcard.chain.pem $PKI/wildcard.key"
    serve
    subject() {
        openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$PKI/ca.pem" \
            -verify_return_error "$@" </dev/null 2>/dev/null |
            openssl x509 -noout -subject
    }
    run subject -servername wrong.test
    assert_output --partial "CN = wrong.test"
    run subject -servername a.b.wild.test
    assert_output --partial "CN = *.wild.test"
    run subject -servername localhost
    assert_output --partial "CN = localhost"
    run subject -noservername
    assert_output --partial "CN = localhost"
    # and a whole exchange under the switched certificate
    run client --name wrong.test --send "via sni"
    assert_success
    assert_equal "$(echo "$output" | json_reply)" "via sni"
    run grep -c "sni=wrong.test" "$T/shim.log"
    assert_output 2
}

@test "alpn_protocols: the server picks from its own list, in its order" {
    spolicy "alpn_protocols = h2,http/1.1"
    serve
    alpn() {
        openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$PKI/ca.pem" \
            -alpn "$1" </dev/null 2>/dev/null | grep -i 'ALPN'
    }
    run alpn http/1.1
    assert_output --partial "ALPN protocol: http/1.1"
    run alpn http/1.1,h2
    assert_output --partial "ALPN protocol: h2"
    run alpn spdy/3
    assert_output --partial "No ALPN negotiated"
    run client --alpn "foo,http/1.1"
    assert_success
    [[ $output == *'"alpn": "http/1.1"'* ]]
}

@test "mTLS: verify_mode = require accepts a client certificate from ca_file and refuses others" {
    spolicy "verify_mode = require" "ca_file = $PKI/ca.pem"
    serve --mode upper
    run client --cert "$PKI/client.chain.pem" --key "$PKI/client.key" --send "mutual"
    assert_success
    assert_equal "$(echo "$output" | json_reply)" "MUTUAL"
    run grep -E "info: accept .* rule=srv .*verify=ok client=/O=tlsshim tests/CN=client.test" "$T/shim.log"
    assert_success
    # CA names are sent in the request (client_ca_file defaults to ca_file)
    run sh -c "openssl s_client -connect 127.0.0.1:$PORT -CAfile $PKI/ca.pem </dev/null 2>/dev/null"
    assert_output --partial "Acceptable client certificate CA names"
    assert_output --partial "CN = tlsshim test root"
    # no certificate: refused, the program saw a reset and no data
    run client --send "anonymous"
    assert_failure
    run grep -E "rule=srv: TLS handshake failed: peer did not return a certificate" "$T/shim.log"
    assert_success
    # a certificate of another CA: refused with the reason
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$T/rogue.key" -out "$T/rogue.pem" -subj /CN=rogue -days 1 2>/dev/null
    run client --cert "$T/rogue.pem" --key "$T/rogue.key" --send "rogue"
    assert_failure
    run grep -E "rule=srv: certificate verify failed: self-signed certificate \(depth 0, /CN=rogue\)" "$T/shim.log"
    assert_success
    # s_client above, the anonymous client and the rogue one
    wait_grep "$T/conns.log" "bytes=0 end=reset" 3
    wait_grep "$T/conns.log" "bytes=6 end=eof" 1
    run grep -c "bytes=0 end=reset" "$T/conns.log"
    assert_output 3
    run grep -c "bytes=6 end=eof" "$T/conns.log"
    assert_output 1
}

@test "mTLS: verify_mode = peer makes the certificate optional but verified" {
    spolicy "verify_mode = peer" "ca_file = $PKI/ca.pem"
    serve --mode upper
    run client --send "anonymous"
    assert_success
    assert_equal "$(echo "$output" | json_reply)" "ANONYMOUS"
    run client --cert "$PKI/client.chain.pem" --key "$PKI/client.key" --send "known"
    assert_success
    run grep -c "verify=ok client=/O=tlsshim tests/CN=client.test" "$T/shim.log"
    assert_output 1
    run grep -c "verify=none client=-" "$T/shim.log"
    assert_output 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$T/rogue.key" -out "$T/rogue.pem" -subj /CN=rogue -days 1 2>/dev/null
    run client --cert "$T/rogue.pem" --key "$T/rogue.key"
    assert_failure
}

@test "resumption: a client resumes its session (TLS 1.3 tickets and TLS 1.2)" {
    spolicy
    serve
    run client --again 2
    assert_success
    [[ $output == *'"resumed": true'* ]]
    run grep -c "resumed=yes" "$T/shim.log"
    assert_output 2
    # TLS 1.2 session resumption with openssl s_client's session file
    openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$PKI/ca.pem" -tls1_2 \
        -sess_out "$T/sess.pem" </dev/null >/dev/null 2>&1
    run sh -c "openssl s_client -connect 127.0.0.1:$PORT -CAfile $PKI/ca.pem -tls1_2 -sess_in $T/sess.pem </dev/null 2>/dev/null"
    assert_output --partial "Reused, TLSv1.2"
}

@test "handshake_timeout: a stalled client is dropped without delaying the others" {
    spolicy "handshake_timeout = 1"
    # one thread, non-blocking sockets: a blocking handshake would stall it
    serve --style select --mode upper
    start_bg staller "$PYTHON" -c "
import socket, time
s = socket.create_connection(('127.0.0.1', $PORT))
s.sendall(b'\x16\x03\x01')          # the start of a record, then nothing
t0 = time.time()
s.settimeout(8)
try:
    got = s.recv(100)
    print('closed after %.1f s: %r' % (time.time() - t0, got[:1]), flush=True)
except OSError as e:
    print('closed after %.1f s: %s' % (time.time() - t0, e), flush=True)
"
    sleep 0.3
    for i in 1 2 3; do
        run client --send "meanwhile $i" --timeout 3
        assert_success
        assert_equal "$(echo "$output" | json_reply)" "MEANWHILE $i"
    done
    wait_file "$T/staller.log" 8
    run cat "$T/staller.log"
    assert_output --regexp "^closed after (0\.[5-9]|1\.[0-9]|2\.[0-9]) s"
    run grep -c "rule=srv: TLS handshake timed out after 1 s" "$T/shim.log"
    assert_output 1
    run grep -c "end=reset" "$T/conns.log"
    assert_output 1
}

@test "bad clients (garbage, reset mid-handshake, obsolete protocols) are logged and never stall the server" {
    spolicy
    serve --mode upper
    "$PYTHON" -c "
import socket, struct
s = socket.create_connection(('127.0.0.1', $PORT))
s.sendall(bytes(range(256)) * 4)
s.close()
# a ClientHello cut short, then a reset (SO_LINGER 0)
s = socket.create_connection(('127.0.0.1', $PORT))
s.sendall(b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + b'\x00' * 40)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
s.close()
"
    run openssl s_client -connect "127.0.0.1:$PORT" -tls1 -cipher 'DEFAULT@SECLEVEL=0' </dev/null
    assert_failure
    run client --send "still serving"
    assert_success
    assert_equal "$(echo "$output" | json_reply)" "STILL SERVING"
    run grep -c "rule=srv: TLS handshake failed: wrong version number" "$T/shim.log"
    assert_output 1
    run grep -cE "rule=srv: TLS handshake failed: (Connection reset by peer|the peer closed the connection)" "$T/shim.log"
    assert_output 1
    run grep -cE "rule=srv: TLS handshake failed: (unsupported protocol|no protocols available)" "$T/shim.log"
    assert_output 1
    wait_grep "$T/conns.log" "bytes=0 end=reset" 3
    wait_grep "$T/conns.log" "end=eof" 1
    run grep -c "bytes=0 end=reset" "$T/conns.log"
    assert_output 3
    run grep -c "end=eof" "$T/conns.log"
    assert_output 1
}

@test "keys are read at listen(): removed afterwards, the server still offers them" {
    cp "$PKI/good.key" "$T/key.pem"
    chmod 600 "$T/key.pem"
    spolicy
    sed -i "s|^key_file = .*|key_file = $T/key.pem|" "$T/policy.conf"
    serve --mode upper
    rm "$T/key.pem"
    run client --send "after removal"
    assert_success
    assert_equal "$(echo "$output" | json_reply)" "AFTER REMOVAL"
}

@test "a server rule whose key cannot be loaded makes listen() fail with EACCES" {
    spolicy
    sed -i "s|^key_file = .*|key_file = $T/missing.key|" "$T/policy.conf"
    run "$TLSSHIM" -f "$T/policy.conf" -- "$PYTHON" "$PEERS/plain_server.py" --port "$PORT"
    assert_failure
    assert_output --partial "tlsshim["
    assert_output --partial "error: listen 127.0.0.1:$PORT rule=srv: cannot open $T/missing.key"
    assert_output --partial "PermissionError: [Errno 13] Permission denied"
    refute_output --partial "READY"
}

@test "server certificates in DER, PKCS#12 and encrypted PEM with passwd_file" {
    openssl x509 -in "$PKI/good.pem" -outform DER -out "$T/good.der"
    openssl pkey -in "$PKI/good.key" -outform DER -out "$T/good.key.der"
    echo "s3cret pass" >"$T/pass.txt"
    openssl pkcs12 -export -in "$PKI/good.pem" -inkey "$PKI/good.key" \
        -certfile "$PKI/inter.pem" -passout file:"$T/pass.txt" -out "$T/good.p12"
    openssl pkey -in "$PKI/good.key" -aes256 -passout file:"$T/pass.txt" -out "$T/enc.key"
    chmod 600 "$T"/*.der "$T/pass.txt" "$T/good.p12" "$T/enc.key"
    check_with() {
        {
            echo "[srv]"
            echo "listen = 127.0.0.1:$PORT"
            for line in "$@"; do echo "$line"; done
        } >"$T/policy.conf"
        chmod 600 "$T/policy.conf"
        serve --mode upper
        # DER holds one certificate: the intermediate must come from ca.pem
        cat "$PKI/ca.pem" "$PKI/inter.pem" >"$T/trust.pem"
        run "$PYTHON" "$PEERS/tls_client.py" --port "$PORT" --cafile "$T/trust.pem" --send "$1"
        assert_success
        [[ $output == *'"subject": "localhost"'* ]]
        common_teardown
    }
    check_with "cert_file = $T/good.der" "key_file = $T/good.key.der"
    check_with "cert_file = $T/good.p12" "passwd_file = $T/pass.txt"
    check_with "cert_file = $PKI/good.chain.pem" "key_file = $T/enc.key" "passwd_file = $T/pass.txt"
    # the wrong passphrase: listen() fails and says why
    echo "wrong" >"$T/bad.txt"
    chmod 600 "$T/bad.txt"
    sed -i "s|^passwd_file = .*|passwd_file = $T/bad.txt|" "$T/policy.conf"
    run "$TLSSHIM" -f "$T/policy.conf" -- "$PYTHON" "$PEERS/plain_server.py" --port "$PORT"
    assert_failure
    assert_output --partial "rule=srv: $T/enc.key: cannot read private key"
}

@test "version, cipher_list and honor_cipher_order apply to the server" {
    spolicy "version = TLSv1_2" \
        "cipher_list = ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256"
    serve
    run openssl s_client -connect "127.0.0.1:$PORT" -tls1_3 </dev/null
    assert_failure
    cipher() {
        openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$PKI/ca.pem" \
            -cipher "$1" </dev/null 2>/dev/null | grep -m1 -E '^ *Cipher *:'
    }
    # honor_cipher_order (default yes): the server's first choice wins
    run cipher 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305'
    assert_output --partial "ECDHE-ECDSA-CHACHA20-POLY1305"
    common_teardown
    spolicy "version = TLSv1_2" "honor_cipher_order = no" \
        "cipher_list = ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256"
    serve
    run cipher 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305'
    assert_output --partial "ECDHE-ECDSA-AES128-GCM-SHA256"
}

@test "ticket_key_file: a malformed file makes listen() fail and says why" {
    head -c 79 /dev/urandom >"$T/tickets.bin"
    chmod 600 "$T/tickets.bin"
    spolicy "ticket_key_file = $T/tickets.bin"
    run "$TLSSHIM" -f "$T/policy.conf" -- "$PYTHON" "$PEERS/plain_server.py" --port "$PORT"
    assert_failure
    assert_output --partial "rule=srv: ticket_key_file $T/tickets.bin: 79 bytes, want one to 64 records of 80 bytes"
    # readable by every user: a policy error before anything runs
    head -c 80 /dev/urandom >"$T/tickets.bin"
    chmod 644 "$T/tickets.bin"
    run "$TLSSHIM" -f "$T/policy.conf" -- true
    assert_equal "$status" 2
    assert_output --partial "ticket key file $T/tickets.bin is readable by every user"
}

@test "cert_file = auto: a certificate for the listening address from auto_ca_dir's CA" {
    {
        echo "[auto]"
        echo "listen = 127.0.0.1:$PORT [::1]:$PORT"
        echo "cert_file = auto"
        echo "auto_ca_dir = $T/autoca"
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
    serve --mode upper
    [ "$(stat -c %a "$T/autoca")" = 700 ]
    [ "$(stat -c %a "$T/autoca/ca.key")" = 600 ]
    run client --cafile "$T/autoca/ca.pem" --send "auto"
    assert_success
    assert_equal "$(echo "$output" | json_reply)" "AUTO"
    run client --cafile "$T/autoca/ca.pem" --name 127.0.0.1 --send "by ip"
    assert_success
    # the CA is not the test PKI's: a client trusting only that fails
    run client --cafile "$PKI/ca.pem"
    assert_failure
    assert_output --partial "CERTIFICATE_VERIFY_FAILED"
    # the CA is reused by the next run
    sum=$(sha_of "$T/autoca/ca.pem")
    common_teardown
    serve --host ::1
    run client --host ::1 --name ::1 --cafile "$T/autoca/ca.pem"
    assert_success
    assert_equal "$(sha_of "$T/autoca/ca.pem")" "$sum"
}

@test "policy errors of listen rules name the file and line" {
    printf '[a]\nlisten = 127.0.0.1:1\ncert_file = auto\n' >"$T/p1.conf"
    printf '[b]\nlisten = 127.0.0.1:1\n' >"$T/p2.conf"
    printf '[c]\nlisten = www.example.com:443\ncert_file = %s\nkey_file = %s\n' \
        "$PKI/good.pem" "$PKI/good.key" >"$T/p3.conf"
    printf '[d]\nconnect = 127.0.0.1:1\nsni_cert = a %s %s\n' \
        "$PKI/good.pem" "$PKI/good.key" >"$T/p4.conf"
    chmod 600 "$T"/p?.conf
    run "$TLSSHIM" --check -f "$T/p1.conf"
    assert_equal "$status" 2
    assert_output --partial "$T/p1.conf:3: cert_file = auto needs auto_ca_dir"
    run "$TLSSHIM" --check -f "$T/p2.conf"
    assert_equal "$status" 2
    assert_output --partial "$T/p2.conf:1: listen rule [b] needs cert_file"
    run "$TLSSHIM" --check -f "$T/p3.conf"
    assert_equal "$status" 2
    assert_output --partial "$T/p3.conf:2:"
    run "$TLSSHIM" --check -f "$T/p4.conf"
    assert_equal "$status" 2
    assert_output --partial "$T/p4.conf:3: key sni_cert is for listen rules only"
}

@test "a policy that cannot be loaded makes accept() fail with EACCES" {
    start_bg srv env TLSSHIM_CONF="$T/missing.conf" LD_PRELOAD="$SHIM_PRELOAD" \
        "$PYTHON" -c "
import socket
ls = socket.socket()
ls.bind(('127.0.0.1', $PORT))
ls.listen(8)
print('READY', flush=True)
try:
    c, a = ls.accept()
    c.sendall(b'served in plaintext')
    print('accepted')
except OSError as e:
    print('accept failed:', e.strerror)
"
    # not wait_file: the shim's own error about the policy may come first
    wait_grep "$T/srv.log" '^READY'
    run "$PYTHON" -c "
import socket
s = socket.create_connection(('127.0.0.1', $PORT), timeout=5)
print(repr(s.recv(100)))
"
    assert_output "b''"
    wait_grep "$T/srv.log" "accept failed"
    run cat "$T/srv.log"
    assert_output --partial "accept failed: Permission denied"
    assert_output --regexp "error: accept 127.0.0.1:$PORT from 127.0.0.1:[0-9]+ refused: policy not loaded"
    refute_output --partial "accepted"
}

@test "--explain --listen shows the server rule and its settings" {
    spolicy "verify_mode = require" "ca_file = $PKI/ca.pem"
    run "$TLSSHIM" --explain --listen -f "$T/policy.conf" "127.0.0.1:$PORT"
    assert_success
    assert_line --index 0 "listen 127.0.0.1:$PORT"
    assert_output --partial "rule srv ($T/policy.conf:1) matches the address"
    assert_output --regexp "verify_mode = require +\(rule srv line 5\)"
    assert_output --partial "client_ca_file = $PKI/ca.pem"
    run "$TLSSHIM" --explain --listen -f "$T/policy.conf" "127.0.0.2:$PORT"
    assert_output --partial "no rule matches: default_listen_action = plain"
}

@test "mTLS: a client certificate made for servers only is refused (purpose clientAuth)" {
    spolicy "verify_mode = require" "ca_file = $PKI/ca.pem"
    serve --mode upper
    # good.pem has extendedKeyUsage serverAuth only
    run client --cert "$PKI/good.chain.pem" --key "$PKI/good.key" --send "x"
    assert_failure
    run grep -c "rule=srv: certificate verify failed: unsuitable certificate purpose (depth 0, /O=tlsshim tests/CN=localhost)" "$T/shim.log"
    assert_output 1
}

@test "[listen-defaults] gives every listen rule its certificate and settings (ecdh_curve)" {
    {
        echo "[listen-defaults]"
        echo "cert_file = $PKI/good.chain.pem"
        echo "key_file = $PKI/good.key"
        echo "ecdh_curve = secp384r1"
        echo "[srv]"
        echo "listen = 127.0.0.1:$PORT"
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
    serve --mode upper
    run client --send "inherited"
    assert_success
    assert_equal "$(echo "$output" | json_reply)" "INHERITED"
    run sh -c "openssl s_client -connect 127.0.0.1:$PORT -CAfile $PKI/ca.pem -groups X25519:secp384r1 </dev/null 2>/dev/null"
    assert_output --regexp "Server Temp Key: (ECDH, )?(secp384r1|P-384)"
    # a client offering only another group is refused
    run openssl s_client -connect "127.0.0.1:$PORT" -groups X25519 </dev/null
    assert_failure
}
