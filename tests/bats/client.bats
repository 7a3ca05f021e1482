#!/usr/bin/env bats
# Client connections: plain programs get verified TLS per the policy
# (SPEC sections 3-5).  Each test checks the payload end to end and what
# the peer received.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
    MSG="$T/msg.bin"
    head -c 100000 /dev/urandom > "$MSG"
}

teardown() {
    common_teardown
}

# policy NAME [key=value...]: a one-rule policy for 127.0.0.1:$PORT
policy() {
    local f="$T/policy.conf"
    {
        echo "[lab]"
        echo "connect = localhost:$PORT 127.0.0.1:$PORT [::1]:$PORT"
        echo "ca_file = $PKI/ca.pem"
        for kv in "$@"; do echo "$kv"; done
    } > "$f"
    chmod 600 "$f"
    export TLSSHIM_CONF="$f"
}

echo_server() {
    local cert="$PKI/${1:-good}.chain.pem"
    [ -e "$cert" ] || cert="$PKI/${1:-good}.pem"
    tls_server srv "$PORT" --cert "$cert" \
        --key "$PKI/${1:-good}.key" --mode echo --record "$T/rec.bin" \
        --info "$T/info.json" "${@:2}"
}

@test "python3 gets verified TLS and its payload echoes back intact" {
    policy
    echo_server
    run shim_run /usr/bin/python3 -c "
import socket, sys
s = socket.create_connection(('127.0.0.1', $PORT))
data = open('$MSG', 'rb').read()
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b''
while True:
    b = s.recv(65536)
    if not b: break
    got += b
open('$T/out.bin', 'wb').write(got)
"
    assert_success
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$MSG")"
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$MSG")"
    run grep -c '"version": "TLSv1.3"' "$T/info.json"
    assert_output 1
}

@test "nc over IPv6 is upgraded and the server sees the plaintext" {
    policy
    echo_server good --host ::1
    run bash -c "printf 'hello over six\n' | TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD nc -q 2 ::1 $PORT"
    assert_success
    assert_output --partial "hello over six"
    assert_output --partial "info: connect [::1]:$PORT rule=lab tls=TLSv1.3"
    run cat "$T/rec.bin"
    assert_output "hello over six"
}

@test "the blocking C client exchanges 100 KB and the log line shows the verified connection" {
    policy
    echo_server
    run bash -c "TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient localhost $PORT < $MSG > $T/out.bin"
    assert_success
    assert_output --partial "info: connect localhost:$PORT (127.0.0.1) rule=lab tls=TLSv1.3"
    assert_output --partial "sni=localhost verify=ok"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$MSG")"
    run grep -c '"sni": "localhost"' "$T/info.json"
    assert_output 1
}

@test "the non-blocking C client works with poll, select and epoll" {
    policy
    echo_server
    for mode in "" -s -e; do
        run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/nbclient $mode 127.0.0.1 $PORT < $MSG > $T/out$mode.bin"
        assert_success
        assert_equal "$(sha_of "$T/out$mode.bin")" "$(sha_of "$MSG")"
    done
    run grep -c '"handshake": "ok"' "$T/info.json"
    assert_output 3
}

@test "curl http:// to a TLS-only server works through the shim" {
    policy
    printf 'tlsshim says hello\n' > "$T/body"
    start_bg web /usr/bin/python3 "$PEERS/http_tls.py" --port "$PORT" \
        --cert "$PKI/good.chain.pem" --key "$PKI/good.key" --body-file "$T/body"
    wait_port "$PORT"
    run shim_run curl -sS --max-time 10 "http://localhost:$PORT/x"
    assert_success
    assert_output "tlsshim says hello"
}

@test "perl IO::Socket::INET talks TLS without knowing it" {
    policy
    echo_server
    run shim_run perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => '"$PORT"') or die "connect: $!";
        print $s "perl line\n"; my $l = <$s>; print $l;'
    assert_success
    assert_output "perl line"
}

@test "a wrong-host certificate fails connect with ECONNREFUSED and sends nothing" {
    policy
    echo_server wronghost
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient localhost $PORT < $MSG"
    assert_failure 3
    assert_output --partial "errno=ECONNREFUSED"
    assert_output --partial "certificate verify failed: hostname mismatch (wanted localhost, certificate has wrong.test"
    [ ! -s "$T/rec.bin" ]
}

@test "an expired certificate is refused with the reason" {
    policy
    echo_server expired
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT < $MSG"
    assert_failure 3
    assert_output --partial "errno=ECONNREFUSED"
    assert_output --partial "certificate has expired"
    [ ! -s "$T/rec.bin" ]
}

@test "a certificate from an unknown CA is refused" {
    policy
    echo_server selfsigned
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT < $MSG"
    assert_failure 3
    assert_output --partial "errno=ECONNREFUSED"
    assert_output --partial "certificate verify failed: self-signed certificate"
    [ ! -s "$T/rec.bin" ]
}

@test "a fingerprint accepts a self-signed server" {
    fp=$(openssl x509 -in "$PKI/selfsigned.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g')
    policy "fingerprint = sha256\$$fp"
    echo_server selfsigned
    run bash -c "printf 'pinned\n' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    assert_output "pinned"
}

@test "a plaintext server gets a ClientHello and never the payload" {
    policy "handshake_timeout = 2"
    start_bg sink /usr/bin/python3 "$PEERS/raw_sink.py" --port "$PORT" --record "$T/raw.bin"
    wait_port "$PORT"
    printf 'SECRET-PAYLOAD\n' > "$T/secret"
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD TLSSHIM_CONF=$TLSSHIM_CONF $PROGS/blockclient 127.0.0.1 $PORT < $T/secret"
    assert_failure 3
    assert_output --partial "errno=ETIMEDOUT"
    run grep -c SECRET-PAYLOAD "$T/raw.bin"
    assert_output 0
    # what the sink got is a TLS handshake record
    run head -c 1 "$T/raw.bin"
    assert_equal "$(head -c 1 "$T/raw.bin" | od -An -tx1 | tr -d ' ')" "16"
}

@test "a server that never answers the handshake times out with ETIMEDOUT" {
    policy "handshake_timeout = 1"
    start_bg sink /usr/bin/python3 "$PEERS/raw_sink.py" --port "$PORT" --record "$T/raw.bin"
    wait_port "$PORT"
    start=$(date +%s)
    run bash -c "printf 'x' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_failure 3
    assert_output --partial "errno=ETIMEDOUT"
    assert_output --partial "TLS handshake timed out after 1 s"
    [ $(( $(date +%s) - start )) -lt 10 ]
}

@test "a refused TCP connect is returned as it is" {
    policy
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT </dev/null"
    assert_failure 3
    assert_output --partial "errno=ECONNREFUSED"
    refute_output --partial "certificate"
}

@test "deny refuses with EACCES and nothing reaches the network" {
    policy "action = deny"
    start_bg sink /usr/bin/python3 "$PEERS/raw_sink.py" --port "$PORT" --record "$T/raw.bin"
    wait_port "$PORT"
    run bash -c "printf 'x' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_failure 3
    assert_output --partial "errno=EACCES"
    assert_output --partial "denied by policy"
    [ ! -e "$T/raw.bin" ] || [ ! -s "$T/raw.bin" ]
    run grep -c "connection" "$T/sink.log"
    assert_output 0
}

@test "a plain rule leaves the connection in plaintext" {
    policy "action = plain"
    start_bg sink /usr/bin/python3 "$PEERS/raw_sink.py" --port "$PORT" --record "$T/raw.bin"
    wait_port "$PORT"
    run bash -c "printf 'in the clear\n' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    wait_file "$T/raw.bin"
    run cat "$T/raw.bin"
    assert_output "in the clear"
}

@test "a destination no rule names is left alone" {
    policy
    OTHER=$(free_port)
    start_bg sink /usr/bin/python3 "$PEERS/raw_sink.py" --port "$OTHER" --record "$T/raw.bin"
    wait_port "$OTHER"
    run bash -c "printf 'untouched\n' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $OTHER"
    assert_success
    wait_file "$T/raw.bin"
    run cat "$T/raw.bin"
    assert_output "untouched"
}

@test "auto passes curl's own TLS through untouched" {
    policy "action = auto"
    printf 'curl spoke TLS itself\n' > "$T/body"
    start_bg web /usr/bin/python3 "$PEERS/http_tls.py" --port "$PORT" \
        --cert "$PKI/good.chain.pem" --key "$PKI/good.key" --body-file "$T/body"
    wait_port "$PORT"
    run shim_run curl -sS --max-time 10 --cacert "$PKI/ca.pem" "https://localhost:$PORT/"
    assert_success
    assert_output "curl spoke TLS itself"
}

@test "auto upgrades a plain client whose first bytes are not TLS" {
    policy "action = auto"
    echo_server
    run bash -c "printf 'plain first\n' | TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    assert_output --partial "plain first"
    assert_output --partial "rule=lab tls=TLSv1.3"
    run cat "$T/rec.bin"
    assert_output "plain first"
}

@test "the second connection of a process resumes the session" {
    policy
    echo_server
    run bash -c "TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD /usr/bin/python3 -c \"
import socket
for i in range(2):
    s = socket.create_connection(('localhost', $PORT))
    s.sendall(b'round %d\\n' % i)
    print(s.recv(100).decode().strip())
    s.close()
\""
    assert_success
    assert_line --partial "resumed=no"
    assert_line --partial "resumed=yes"
    assert_line "round 1"
    run grep -c '"session_reused": true' "$T/info.json"
    assert_output 1
}

@test "session_cache_size = 0 disables resumption" {
    policy "session_cache_size = 0"
    echo_server
    run bash -c "TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD /usr/bin/python3 -c \"
import socket
for i in range(2):
    s = socket.create_connection(('localhost', $PORT))
    s.sendall(b'x\\n'); s.recv(10); s.close()
\""
    assert_success
    refute_output --partial "resumed=yes"
}

@test "a literal IP destination is checked against the IP SAN" {
    policy
    echo_server ipsan
    run bash -c "printf 'by address\n' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    assert_output "by address"
}

@test "a client certificate in PEM is presented to a server that requires one" {
    policy "cert_file = $PKI/client.chain.pem" "key_file = $PKI/client.key"
    echo_server good --ca "$PKI/ca.pem" --verify require
    run bash -c "printf 'mtls\n' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    assert_output "mtls"
    run grep -c 'client.test' "$T/info.json"
    assert_output 1
}

@test "a client certificate in PKCS#12 with a passphrase file works" {
    policy "cert_file = $PKI/client.p12" "passwd_file = $PKI/p12pass.txt"
    echo_server good --ca "$PKI/ca.pem" --verify require
    run bash -c "printf 'p12\n' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    assert_output "p12"
}

@test "max_version TLSv1_2 and ALPN are negotiated as configured" {
    policy "max_version = TLSv1_2" "alpn_protocols = h2,http/1.1"
    echo_server good --alpn http/1.1
    run bash -c "printf 'v12\n' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    assert_output "v12"
    run grep -c '"version": "TLSv1.2"' "$T/info.json"
    assert_output 1
    run grep -c '"alpn": "http/1.1"' "$T/info.json"
    assert_output 1
}

@test "a policy that cannot be loaded makes every TCP connect fail with EACCES" {
    printf '[lab]\nconnect = 127.0.0.1:%s\nbogus_key = 1\n' "$PORT" > "$T/bad.conf"
    chmod 600 "$T/bad.conf"
    start_bg sink /usr/bin/python3 "$PEERS/raw_sink.py" --port "$PORT" --record "$T/raw.bin"
    wait_port "$PORT"
    run bash -c "printf 'x' | TLSSHIM_CONF=$T/bad.conf LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_failure 3
    assert_output --partial "errno=EACCES"
    assert_output --partial "bad.conf:3:"
}

@test "TLSSHIM_CONF naming a missing file fails closed" {
    run bash -c "printf 'x' | TLSSHIM_CONF=$T/missing.conf LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_failure 3
    assert_output --partial "errno=EACCES"
    assert_output --partial "missing.conf"
}

@test "the module exports only hooked libc symbols" {
    [[ -z $SHIM_RUNTIME ]] ||
        skip "a sanitizer build's module exports the runtime's interceptors"
    run bash -c "nm -D --defined-only $SHIMLIB | awk '{print \$3}' | sort"
    assert_success
    for sym in $output; do
        nm -D --defined-only /lib/x86_64-linux-gnu/libc.so.6 | awk '{print $3}' | sed 's/@.*//' | grep -qx "$sym" \
            || fail "exported symbol $sym is not a libc function"
    done
    assert_line connect
    assert_line read
}

@test "a forked child that exits does not end the parent's TLS stream" {
    policy
    echo_server
    run shim_run /usr/bin/python3 -c "
import os, socket
s = socket.create_connection(('127.0.0.1', $PORT))
s.sendall(b'before fork\n')
print(s.recv(100).decode().strip())
pid = os.fork()
if pid == 0:
    s.close()
    os._exit(0) if False else exit(0)
os.waitpid(pid, 0)
s.sendall(b'after fork\n')
print(s.recv(100).decode().strip())
"
    assert_success
    assert_line --index 0 "before fork"
    assert_line --index 1 "after fork"
}

# ocsp_staple STATUS: an OCSP response for good.pem signed by the issuing
# CA, saying V (good) or R (revoked), in $T/staple.der
ocsp_staple() {
    local serial subj
    serial=$(openssl x509 -in "$PKI/good.pem" -noout -serial | sed 's/serial=//')
    subj=$(openssl x509 -in "$PKI/good.pem" -noout -subject -nameopt compat | sed 's/subject=//')
    if [ "$1" = R ]; then
        printf 'R\t300101000000Z\t240101000000Z,keyCompromise\t%s\tunknown\t%s\n' "$serial" "$subj" > "$T/index.txt"
    else
        printf 'V\t300101000000Z\t\t%s\tunknown\t%s\n' "$serial" "$subj" > "$T/index.txt"
    fi
    openssl ocsp -issuer "$PKI/inter.pem" -cert "$PKI/good.pem" -no_nonce -reqout "$T/req.der" >/dev/null 2>&1
    openssl ocsp -index "$T/index.txt" -rsigner "$PKI/inter.pem" -rkey "$PKI/inter.key" \
        -CA "$PKI/inter.pem" -reqin "$T/req.der" -respout "$T/staple.der" -ndays 1 >/dev/null 2>&1
    [ -s "$T/staple.der" ]
}

staple_server() {
    start_bg srv openssl s_server -accept "127.0.0.1:$PORT" -cert "$PKI/good.pem" \
        -key "$PKI/good.key" -cert_chain "$PKI/inter.pem" -status_file "$T/staple.der" -rev
    wait_port "$PORT"
}

@test "a good OCSP staple is checked and reported" {
    policy
    ocsp_staple V
    staple_server
    run bash -c "printf 'stapled\n' | TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    assert_output --partial "delpats"
    assert_output --partial "verify=ok ocsp=good"
}

@test "a staple saying revoked fails the connection before any data is sent" {
    policy
    ocsp_staple R
    staple_server
    run bash -c "printf 'SECRET-PAYLOAD\n' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_failure 3
    assert_output --partial "errno=ECONNREFUSED"
    assert_output --partial "certificate revoked (OCSP staple, reason keyCompromise)"
    # the connect failed, so blockclient never wrote the payload
    refute_output --partial "DAOLYAP-TERCES"
}

@test "ocsp_mode = no_staple does not ask for a staple" {
    policy "ocsp_mode = no_staple"
    ocsp_staple R
    staple_server
    run bash -c "printf 'unstapled\n' | TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    assert_output --partial "delpatsnu"
    assert_output --partial "ocsp=none"
}

@test "a program that exits without closing still delivers every byte and close_notify" {
    policy
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode sink --record "$T/rec.bin" --info "$T/info.json" --count 1
    run shim_run "$PROGS/exitwriter" 127.0.0.1 "$PORT" 8000000
    assert_success
    /usr/bin/python3 -c "
import sys
n = 8000000
pat = bytes(ord('a') + i % 26 for i in range(26))
want = (pat * (n // 26 + 1))[:n]
sys.exit(0 if open('$T/rec.bin', 'rb').read() == want else 1)
" || { wait_file "$T/info.json"; false; }
    wait_file "$T/info.json"
    run json_field "$T/info.json" -1 end
    assert_output "close_notify"
}

@test "TLSSHIM_LOG sends log lines to a file, one line per connection at level 1" {
    policy
    echo_server
    run bash -c "printf 'logged\n' | TLSSHIM_DEBUG=1 TLSSHIM_LOG=$T/shim.log LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    assert_output "logged"
    run grep -c "^tlsshim\[[0-9]*\]: info: connect 127.0.0.1:$PORT rule=lab tls=TLSv1.3" "$T/shim.log"
    assert_output 1
}

@test "level 0 logs nothing for a good connection and level 2 logs the call flow" {
    policy
    echo_server
    run bash -c "printf 'quiet\n' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    assert_output "quiet"
    run bash -c "printf 'loud\n' | TLSSHIM_DEBUG=2 LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    assert_output --regexp "debug: fd [0-9]+: connect 127.0.0.1:$PORT rule=lab action=tls"
}

@test "after fork the first process to use a connection owns it and the other gets EIO" {
    policy
    echo_server
    run shim_run /usr/bin/python3 -c "
import os, socket, errno
s = socket.create_connection(('127.0.0.1', $PORT))
s.sendall(b'parent before\n'); print(s.recv(100).decode().strip())
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    s.sendall(b'child owns it\n'); print(s.recv(100).decode().strip(), flush=True)
    os.write(w, b'x')
    s.close()
    os._exit(0)
os.close(w)
os.read(r, 1)
try:
    s.sendall(b'parent again\n')
    print('parent wrote')
except OSError as e:
    print('parent', errno.errorcode[e.errno])
os.waitpid(pid, 0)
"
    assert_success
    assert_line --index 0 "parent before"
    assert_line --index 1 "child owns it"
    assert_line --index 2 "parent EIO"
    run grep -c "parent again" "$T/rec.bin"
    assert_output 0
}

@test "ciphersuites picks the TLS 1.3 suite that is negotiated" {
    policy "ciphersuites = TLS_CHACHA20_POLY1305_SHA256"
    echo_server
    run bash -c "printf 'suite\n' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    run grep -c '"cipher": "TLS_CHACHA20_POLY1305_SHA256"' "$T/info.json"
    assert_output 1
}

@test "cipher_list applies to TLS 1.2" {
    policy "max_version = TLSv1_2" "cipher_list = ECDHE-ECDSA-CHACHA20-POLY1305"
    echo_server
    run bash -c "printf 'list\n' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    run grep -c '"cipher": "ECDHE-ECDSA-CHACHA20-POLY1305"' "$T/info.json"
    assert_output 1
}

@test "a bad ecdh_curve fails the connection with EACCES and names the curve" {
    policy "ecdh_curve = nosuchcurve"
    echo_server
    run bash -c "printf 'x' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_failure 3
    assert_output --partial "errno=EACCES"
    assert_output --partial "bad ecdh_curve nosuchcurve"
}

@test "ecdh_curve limits the groups offered: a server with none of them fails the handshake" {
    policy "ecdh_curve = secp384r1"
    start_bg srv openssl s_server -accept "127.0.0.1:$PORT" -cert "$PKI/good.pem" \
        -key "$PKI/good.key" -cert_chain "$PKI/inter.pem" -groups X25519 -rev
    wait_port "$PORT"
    run bash -c "printf 'x' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_failure 3
    assert_output --partial "errno=ECONNREFUSED"
}

@test "hostname sets the SNI sent, independently of the name verified" {
    policy "hostname = sni.example" "verifycn_name = localhost"
    echo_server
    run bash -c "printf 'sni\n' | LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    run grep -c '"sni": "sni.example"' "$T/info.json"
    assert_output 1
}
