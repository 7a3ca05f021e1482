#!/usr/bin/env bats
# ktls (tlsshim.conf(5)): where the kernel cannot take a connection's
# records over, ktls = auto keeps TLS in tlsshim and says why at debug
# level, and ktls = yes fails the connection, closed, naming the reason.
# The reason is computed here from the machine (the kernel's tls module,
# and whether tlsshim's OpenSSL was built with kernel TLS), so the tests
# hold on kernels with and without the module.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
    if grep -q 'define OPENSSL_NO_KTLS' /usr/include/*/openssl/configuration.h \
        /usr/include/openssl/configuration.h 2>/dev/null; then
        WHY="the OpenSSL tlsshim uses was built without kernel TLS (OPENSSL_NO_KTLS)"
    elif [ ! -e /sys/module/tls ] && [ ! -e /proc/net/tls_stat ]; then
        WHY="the kernel has no tls module loaded (no /sys/module/tls)"
    else
        WHY="OpenSSL did not hand the connection's keys to the kernel"
    fi
}

teardown() {
    common_teardown
}

# policy ktls: rule "lab" for 127.0.0.1:$PORT with ktls = $1
policy() {
    printf '[lab]\nconnect = 127.0.0.1:%s\nca_file = %s\nktls = %s\n' \
        "$PORT" "$PKI/ca.pem" "$1" > "$T/policy.conf"
    chmod 600 "$T/policy.conf"
    export TLSSHIM_CONF="$T/policy.conf"
}

echo_server() {
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode echo --record "$T/rec.bin" --info "$T/info.json"
}

# client: blockclient sending "hello ktls", debug log in $T/client.err
client() {
    echo "hello ktls" | TLSSHIM_DEBUG=2 shim_run "$PROGS/blockclient" \
        127.0.0.1 "$PORT" > "$T/client.out" 2> "$T/client.err"
}

# json_line_field KEY: KEY of the JSON line on standard input
json_line_field() {
    "$PYTHON" -c 'import json,sys; print(json.loads(sys.stdin.readline()).get(sys.argv[1]))' "$1"
}

@test "ktls = auto falls back to TLS in tlsshim and logs why at debug level" {
    policy auto
    echo_server
    client
    assert_equal "$(cat "$T/client.out")" "hello ktls"
    grep -q "rule=lab: kernel TLS unavailable: $WHY" "$T/client.err"
    grep -q "TLS stays in tlsshim" "$T/client.err"
    run json_field "$T/info.json" 1 handshake
    assert_output ok
    # at the default level the fallback is silent
    echo "again" | shim_run "$PROGS/blockclient" 127.0.0.1 "$PORT" \
        > "$T/quiet.out" 2> "$T/quiet.err"
    assert_equal "$(cat "$T/quiet.out")" "again"
    run cat "$T/quiet.err"
    refute_output --partial "kernel TLS"
}

@test "ktls = yes fails the client connection closed, naming the reason" {
    policy yes
    echo_server
    run client
    assert_failure 3
    grep -q "blockclient: connect: Connection refused errno=ECONNREFUSED" "$T/client.err"
    grep -q "rule=lab: ktls = yes: kernel TLS unavailable: $WHY" "$T/client.err"
    # the server saw the handshake, never a byte of the program's data
    run json_field "$T/info.json" 1 bytes_in
    assert_output 0
    [ ! -s "$T/rec.bin" ]
}

@test "ktls = no does not look for kernel TLS" {
    policy no
    echo_server
    client
    assert_equal "$(cat "$T/client.out")" "hello ktls"
    run cat "$T/client.err"
    refute_output --partial "kernel TLS"
}

@test "ktls = yes on a listen rule resets the client, naming the reason" {
    printf '[srv]\nlisten = 127.0.0.1:%s\ncert_file = %s\nkey_file = %s\nktls = yes\n' \
        "$PORT" "$PKI/good.chain.pem" "$PKI/good.key" > "$T/policy.conf"
    chmod 600 "$T/policy.conf"
    rm -f "$T/psrv.log"
    start_bg psrv "$TLSSHIM" -f "$T/policy.conf" -d 1 -o "$T/shim.log" -- \
        "$PYTHON" "$PEERS/plain_server.py" --port "$PORT" --log "$T/conns.log" \
        --mode upper
    wait_file "$T/psrv.log"
    wait_port "$PORT" 127.0.0.1
    run "$PYTHON" "$PEERS/tls_client.py" --port "$PORT" --cafile "$PKI/ca.pem" \
        --send "hello"
    # the handshake ended, then the connection was reset: no answer
    [ "$(echo "$output" | json_line_field ok)" = False ]
    [ "$(echo "$output" | json_line_field reply)" != HELLO ]
    grep -q "rule=srv: ktls = yes: kernel TLS unavailable: $WHY" "$T/shim.log"
}
