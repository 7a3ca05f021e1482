#!/usr/bin/env bats
# Revocation, pins and certificate checks (SPEC section 4): OCSP staples
# and responders (ocsp_mode), CRLs (check_crl, crl_file), pubkey_pin, and
# what OpenSSL's chain checks refuse (purpose, key size, validity).  The
# PKI of tests/lib/rev_pki.sh names OCSP responders on 127.0.0.1 that the
# tests start with `openssl ocsp`.

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
}

teardown() {
    common_teardown
}

# policy LINE...: one client rule for 127.0.0.1:$PORT trusting the root
policy() {
    {
        echo "[rev]"
        echo "connect = 127.0.0.1:$PORT"
        echo "ca_file = $REV/ca.pem"
        local line
        for line in "$@"; do echo "$line"; done
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
}

# responders: the OCSP responders of both CAs (the ports are in the PKI)
responders() {
    start_bg ocsp-leaf openssl ocsp -index "$REV/db-inter/index.txt" \
        -port "$LPORT" -rsigner "$REV/inter.pem" -rkey "$REV/inter.key" \
        -CA "$REV/inter.pem" -ignore_err
    start_bg ocsp-inter openssl ocsp -index "$REV/db-root/index.txt" \
        -port "$IPORT" -rsigner "$REV/root.pem" -rkey "$REV/root.key" \
        -CA "$REV/root.pem" -ignore_err
    wait_port "$LPORT"
    wait_port "$IPORT"
}

# server NAME: tls_server.py offering leaf NAME, echoing, info in $T/info.json
server() {
    tls_server srv "$PORT" --cert "$REV/$1.chain.pem" --key "$REV/$1.key" \
        --mode echo --info "$T/info.json"
}

# shimmed: a plain python client through the shim (-d 1); prints the echo
# or "error ERRNAME"
shimmed() {
    TLSSHIM_CONF=$T/policy.conf TLSSHIM_DEBUG=1 TLSSHIM_LOG=$T/shim.log \
        shim_run "$PYTHON" -c "
import errno, socket
try:
    s = socket.create_connection(('127.0.0.1', $PORT), timeout=10)
    s.sendall(b'ping\\n')
    print(s.recv(10).decode().strip())
except OSError as e:
    print('error', errno.errorcode.get(e.errno, e.errno))
"
}

# nothing_received: the server got no plaintext on the last connection
nothing_received() {
    sleep 0.2
    run json_field "$T/info.json" -1 bytes_in
    assert_output 0
}

@test "ocsp_mode resolve: a good leaf is confirmed by its responder" {
    responders
    policy "ocsp_mode = resolve"
    server good
    run shimmed
    assert_output "ping"
    run grep -c "rule=rev .*verify=ok ocsp=good" "$T/shim.log"
    assert_output 1
}

@test "ocsp_mode resolve: a revoked leaf is refused before any byte is sent" {
    responders
    policy "ocsp_mode = resolve"
    server revoked
    run shimmed
    assert_output "error ECONNREFUSED"
    run grep "rule=rev: certificate verify failed: certificate revoked (OCSP responder http://127.0.0.1:$LPORT/, depth 0, /CN=revoked, reason keyCompromise)" "$T/shim.log"
    assert_success
    nothing_received
}

@test "a non-blocking client waits for the responder in its event loop" {
    responders
    policy "ocsp_mode = resolve"
    server revoked
    run env TLSSHIM_CONF="$T/policy.conf" TLSSHIM_LOG="$T/shim.log" \
        LD_PRELOAD="$SHIM_PRELOAD" "$PYTHON" -c "
import asyncio
async def main():
    try:
        r, w = await asyncio.open_connection('127.0.0.1', $PORT)
        w.write(b'ping'); await w.drain()
        print('got', await r.read(10))
    except OSError as e:
        print('error', e.errno)
asyncio.run(main())
"
    assert_output "error 111"
    run grep -c "certificate revoked (OCSP responder" "$T/shim.log"
    assert_output 1
    nothing_received
}

@test "unknown status and an unreachable responder: soft fail, or refused with fail_hard" {
    responders
    policy "ocsp_mode = resolve"
    server unknown
    run shimmed
    assert_output "ping"
    run grep -c "warning: connect 127.0.0.1:$PORT rule=rev: OCSP status of depth 0 (/CN=unknown) not confirmed: the responder does not know it; accepted (soft fail)" "$T/shim.log"
    assert_output 1
    policy "ocsp_mode = resolve|fail_hard"
    run shimmed
    assert_output "error ECONNREFUSED"
    run grep -c "OCSP status of the certificate not confirmed: the status is unknown (ocsp_mode fail_hard)" "$T/shim.log"
    assert_output 1
    # the responder goes away
    common_teardown
    server good
    policy "ocsp_mode = resolve"
    run shimmed
    assert_output "ping"
    run grep -c "(/CN=good) not confirmed: responder http://127.0.0.1:$LPORT/: Connection refused; accepted (soft fail)" "$T/shim.log"
    assert_output 1
    policy "ocsp_mode = resolve|fail_hard"
    run shimmed
    assert_output "error ECONNREFUSED"
    nothing_received
}

@test "a silent responder costs at most ocsp_timeout" {
    # accepts and never answers
    start_bg silent "$PYTHON" -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $LPORT)); s.listen(8)
conns = []
while True:
    conns.append(s.accept()[0])
"
    wait_port "$LPORT"
    server good
    policy "ocsp_mode = resolve" "ocsp_timeout = 1"
    t0=$(date +%s%N)
    run shimmed
    t1=$(date +%s%N)
    assert_output "ping"
    ms=$(((t1 - t0) / 1000000))
    echo "took $ms ms"
    ((ms >= 900 && ms < 5000))
    run grep -c "responder http://127.0.0.1:$LPORT/ did not answer within 1 s; accepted (soft fail)" "$T/shim.log"
    assert_output 1
    policy "ocsp_mode = resolve|fail_hard" "ocsp_timeout = 1"
    run shimmed
    assert_output "error ECONNREFUSED"
    run grep -c "did not answer within 1 s (ocsp_mode fail_hard)" "$T/shim.log"
    assert_output 1
}

@test "full_chain: a revoked intermediate is found; without it only the leaf is asked" {
    responders
    {
        cat "$REV/root.pem"
    } >"$T/trust.pem"
    server sub
    policy "ocsp_mode = resolve|full_chain"
    run shimmed
    assert_output "error ECONNREFUSED"
    run grep -c "certificate revoked (OCSP responder http://127.0.0.1:$IPORT/, depth 1, /CN=revoked intermediate, reason keyCompromise)" "$T/shim.log"
    assert_output 1
    policy "ocsp_mode = resolve"
    run shimmed
    assert_output "ping"
}

@test "must_staple, and the TLS feature status_request, require a staple" {
    responders
    server good
    policy "ocsp_mode = must_staple"
    run shimmed
    assert_output "error ECONNREFUSED"
    run grep -c "certificate verify failed: no OCSP staple, and ocsp_mode must_staple requires one" "$T/shim.log"
    assert_output 1
    common_teardown
    responders
    server muststaple
    policy
    run shimmed
    assert_output "error ECONNREFUSED"
    run grep -c "no OCSP staple, and the certificate requires one (TLS feature status_request)" "$T/shim.log"
    assert_output 1
    common_teardown
    # a server that staples a good response
    responders
    openssl ocsp -issuer "$REV/inter.pem" -cert "$REV/muststaple.pem" \
        -url "http://127.0.0.1:$LPORT/" -respout "$T/staple.der" -noverify >/dev/null 2>&1
    [ -s "$T/staple.der" ]
    start_bg stapler openssl s_server -accept "127.0.0.1:$PORT" -rev \
        -cert "$REV/muststaple.pem" -cert_chain "$REV/inter.pem" \
        -key "$REV/muststaple.key" -status_file "$T/staple.der"
    wait_port "$PORT" 127.0.0.1
    policy "ocsp_mode = must_staple"
    run shimmed
    assert_output "gnip"
    run grep -c "rule=rev .*ocsp=good" "$T/shim.log"
    assert_output 1
}

@test "check_crl with crl_file: revoked, current and expired CRLs" {
    policy "check_crl = yes" "crl_file = $REV/crl.pem"
    server good
    run shimmed
    assert_output "ping"
    common_teardown
    server revoked
    run shimmed
    assert_output "error ECONNREFUSED"
    run grep -c "certificate verify failed: certificate revoked (depth 0, /CN=revoked)" "$T/shim.log"
    assert_output 1
    nothing_received
    policy "check_crl = yes" "crl_file = $REV/crl-expired.pem"
    common_teardown
    server good
    run shimmed
    assert_output "error ECONNREFUSED"
    run grep -c "certificate verify failed: CRL has expired (depth 0, /CN=good)" "$T/shim.log"
    assert_output 1
    # no CRL at all for the issuer
    policy "check_crl = yes"
    run shimmed
    assert_output "error ECONNREFUSED"
    run grep -c "certificate verify failed: unable to get certificate CRL (depth 0, /CN=good)" "$T/shim.log"
    assert_output 1
    # without check_crl the revoked certificate is not looked up
    common_teardown
    server revoked
    policy "ocsp_mode = no_staple"
    run shimmed
    assert_output "ping"
}

# pin_of CERT: sha256//BASE64 of the certificate's SubjectPublicKeyInfo
pin_of() {
    echo "sha256//$(openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER |
        openssl dgst -sha256 -binary | base64)"
}

@test "pubkey_pin: any key of the verified chain, else refused with the chain's pins" {
    server good
    policy "pubkey_pin = $(pin_of "$REV/inter.pem")"
    run shimmed
    assert_output "ping"
    policy "pubkey_pin = $(pin_of "$REV/good.pem")"
    run shimmed
    assert_output "ping"
    policy "pubkey_pin = $(pin_of "$REV/root.pem"), $(pin_of "$REV/inter2.pem")"
    run shimmed
    assert_output "ping"
    policy "pubkey_pin = $(pin_of "$REV/inter2.pem")"
    run shimmed
    assert_output "error ECONNREFUSED"
    run grep -c "certificate verify failed: no key of the chain matches pubkey_pin (the chain has $(pin_of "$REV/good.pem"), $(pin_of "$REV/inter.pem"), $(pin_of "$REV/root.pem"))" "$T/shim.log"
    assert_output 1
    nothing_received
    # a pin never replaces verification: the pinned key of an untrusted chain
    {
        echo "[rev]"
        echo "connect = 127.0.0.1:$PORT"
        echo "ca_file = $PKI/ca.pem"
        echo "pubkey_pin = $(pin_of "$REV/good.pem")"
    } >"$T/policy.conf"
    run shimmed
    assert_output "error ECONNREFUSED"
    run grep -c "certificate verify failed: unable to get local issuer certificate" "$T/shim.log"
    assert_output 1
}

@test "chain checks: purpose, key usage, path length, signature digest, key size, validity dates" {
    policy
    check() {
        common_teardown
        server "$1"
        run shimmed
        assert_output "error ECONNREFUSED"
        run grep -c "certificate verify failed: $2" "$T/shim.log"
        assert_output 1
    }
    check clientonly "unsuitable certificate purpose (depth 0, /CN=clientonly)"
    check future "certificate is not yet valid (depth 0, /CN=future)"
    check pathlen "path length constraint exceeded (depth 2, /CN=revocation test intermediate)"
    # OpenSSL's purpose check accepts keyAgreement alone; RFC 5280 does not
    check ku "its key usage does not allow signing (depth 0, /CN=keyusage)"
    # SHA-1: python refuses to serve it, openssl at level 0 does
    common_teardown
    start_bg sha1 openssl s_server -accept "127.0.0.1:$PORT" -rev \
        -cert "$REV/sha1.pem" -cert_chain "$REV/inter.pem" \
        -key "$REV/sha1.key" -cipher 'DEFAULT@SECLEVEL=0'
    wait_port "$PORT" 127.0.0.1
    run shimmed
    assert_output "error ECONNREFUSED"
    run grep -c "certificate verify failed: CA signature digest algorithm too weak (depth 0, /CN=sha1)" "$T/shim.log"
    assert_output 1
    # RSA 1024: python refuses to serve it, openssl at level 0 does
    common_teardown
    start_bg weak openssl s_server -accept "127.0.0.1:$PORT" -rev \
        -cert "$REV/weak.pem" -cert_chain "$REV/inter.pem" \
        -key "$REV/weak.key" -cipher 'DEFAULT@SECLEVEL=0'
    wait_port "$PORT" 127.0.0.1
    run shimmed
    assert_output "error ECONNREFUSED"
    run grep -c "certificate verify failed: EE certificate key too weak (depth 0, /CN=weak)" "$T/shim.log"
    assert_output 1
    # security_level 0 accepts it
    policy "security_level = 0"
    run shimmed
    assert_output "gnip"
}

@test "OCSP answers are cached until their nextUpdate" {
    responders
    server good
    # a full handshake each time (a resumed session shows no certificate)
    policy "ocsp_mode = resolve|fail_hard" "session_cache_size = 0"
    run env TLSSHIM_CONF="$T/policy.conf" TLSSHIM_DEBUG=1 TLSSHIM_LOG="$T/shim.log" \
        LD_PRELOAD="$SHIM_PRELOAD" "$PYTHON" -c "
import os, signal, socket, time
def once():
    s = socket.create_connection(('127.0.0.1', $PORT), timeout=10)
    s.sendall(b'ping'); r = s.recv(10); s.close(); return r
print(once())
os.kill($(<"$T/ocsp-leaf.pid"), signal.SIGKILL)
time.sleep(0.2)
print(once())
"
    assert_output "b'ping'
b'ping'"
    run grep -c "ocsp=good" "$T/shim.log"
    assert_output 2
}

@test "a TLS 1.2 session whose OCSP check failed is never resumed" {
    responders
    policy "ocsp_mode = resolve"
    tls_server srv "$PORT" --cert "$REV/revoked.chain.pem" \
        --key "$REV/revoked.key" --mode echo --max-version TLSv1_2 \
        --info "$T/info.json"
    # two connections in one process: the second would resume the
    # session of the first, which the handshake made before OCSP refused
    run env TLSSHIM_CONF="$T/policy.conf" TLSSHIM_DEBUG=1 TLSSHIM_LOG="$T/shim.log" \
        LD_PRELOAD="$SHIM_PRELOAD" "$PYTHON" -c "
import errno, socket
for i in range(2):
    try:
        s = socket.create_connection(('127.0.0.1', $PORT), timeout=10)
        s.sendall(b'ping'); print(s.recv(10))
    except OSError as e:
        print('error', errno.errorcode.get(e.errno, e.errno))
"
    assert_output "error ECONNREFUSED
error ECONNREFUSED"
    run grep -c "rule=rev: certificate verify failed: certificate revoked (OCSP" "$T/shim.log"
    assert_output 2
    run grep -c "resumed=yes" "$T/shim.log"
    assert_output 0
    run json_field "$T/info.json" -1 bytes_in
    assert_output 0
}
