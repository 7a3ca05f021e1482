#!/usr/bin/env bats
# redirect (SPEC section 4): a matching connect() goes to another port or
# host; the certificate is verified against the original name and
# getpeername() shows the address the program asked for.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)      # what the program asks for: nothing listens
    TPORT=$(free_port)     # where the TLS server is
}

teardown() {
    common_teardown
}

policy() {
    {
        echo "[web]"
        echo "connect = localhost:$PORT 127.0.0.1:$PORT"
        echo "ca_file = $PKI/ca.pem"
        local line
        for line in "$@"; do echo "$line"; done
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
}

# client HOST: connect to HOST:$PORT through the shim, print the echo and
# the peer address the program sees
client() {
    TLSSHIM_CONF=$T/policy.conf TLSSHIM_LOG=$T/shim.log TLSSHIM_DEBUG=1 \
        TLSSHIM_REPORT=$T/report.jsonl shim_run "$PYTHON" -c "
import errno, socket
try:
    s = socket.create_connection(('$1', $PORT), timeout=10)
    s.sendall(b'hello')
    print(s.recv(100).decode(), s.getpeername()[1])
except OSError as e:
    print('error', errno.errorcode.get(e.errno, e.errno))"
}

@test "redirect = :PORT reaches the TLS port, verified against the name the program used" {
    tls_server srv "$TPORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode echo --info "$T/info.json"
    policy "redirect = :$TPORT"
    run client localhost
    assert_output "hello $PORT"
    run grep -c "info: connect localhost:$PORT (127.0.0.1) via 127.0.0.1:$TPORT rule=web tls=TLSv1.3 .*sni=localhost verify=ok" "$T/shim.log"
    assert_output 1
    run json_field "$T/info.json" 1 sni
    assert_output localhost
    # without the rule nothing listens there
    policy
    run client localhost
    assert_output "error ECONNREFUSED"
}

@test "redirect to HOST:PORT; the original name is still what is verified" {
    tls_server srv "$TPORT" --cert "$PKI/wronghost.chain.pem" --key "$PKI/wronghost.key" --mode echo
    policy "redirect = 127.0.0.1:$TPORT"
    run client localhost
    assert_output "error ECONNREFUSED"
    run grep -c "certificate verify failed: hostname mismatch (wanted localhost" "$T/shim.log"
    assert_output 1
    # verifycn_name says otherwise
    policy "redirect = 127.0.0.1:$TPORT" "verifycn_name = wrong.test"
    run client localhost
    assert_output "hello $PORT"
}

@test "redirect to an IPv6 target from an IPv4 socket fails closed and says why" {
    policy "redirect = [::1]:$TPORT"
    run client 127.0.0.1
    assert_output "error EACCES"
    run grep -c "rule=web: redirect \[::1\]:$TPORT: no address of the socket's family (IPv4)" "$T/shim.log"
    assert_output 1
}

@test "redirect needs a TLS action" {
    policy "redirect = :$TPORT" "action = plain"
    run "$TLSSHIM" --check -f "$T/policy.conf"
    assert_equal "$status" 2
    assert_output --partial "redirect needs action tls, auto or enforce (it is plain in [web])"
}
