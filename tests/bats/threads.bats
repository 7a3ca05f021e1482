#!/usr/bin/env bats
# Threads and signals (DESIGN.md "The connection engine"): full duplex on
# one connection, many threads with many connections, and signal handlers
# making hooked calls while threads are inside the hooks.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
    f="$T/policy.conf"
    printf '[lab]\nconnect = 127.0.0.1:%s\nca_file = %s\n' "$PORT" "$PKI/ca.pem" > "$f"
    chmod 600 "$f"
    export TLSSHIM_CONF="$f"
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode echo --info "$T/info.json"
}

teardown() {
    common_teardown
}

handshakes() {
    grep -c '"handshake": "ok"' "$T/info.json"
}

@test "one thread blocked in read while another writes 8 MiB does not deadlock" {
    run shim_run "$PROGS/threads" duplex 127.0.0.1 "$PORT"
    assert_success
    assert_output "ok duplex"
    wait_file "$T/info.json"
    run handshakes
    assert_output 1
}

@test "16 threads making 128 connections all get verified TLS and intact echoes" {
    run shim_run "$PROGS/threads" many 127.0.0.1 "$PORT"
    assert_success
    assert_output "ok many"
    for i in $(seq 1 50); do [ "$(handshakes)" -ge 128 ] && break; sleep 0.1; done
    run handshakes
    assert_output 128
}

@test "a signal handler writing to a pipe every millisecond does not disturb TLS I/O" {
    run shim_run "$PROGS/threads" signals 127.0.0.1 "$PORT"
    assert_success
    assert_output "ok signals"
}
