#!/usr/bin/env bats
# Connections that leave the hooked calls (SPEC section 9): exec, system,
# popen, stdio on fd 0-2, fdopen, dprintf.  Each goes through a relay; the
# TLS server proves it by receiving the line intact over a TLS session
# that ended cleanly (plaintext written into the TLS stream would break
# the session instead).

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
    f="$T/policy.conf"
    printf '[lab]\nconnect = 127.0.0.1:%s\nca_file = %s\n' "$PORT" "$PKI/ca.pem" > "$f"
    chmod 600 "$f"
    export TLSSHIM_CONF="$f"
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode echo --record "$T/rec.bin" --info "$T/info.json"
}

teardown() {
    common_teardown
}

# the server got exactly LINE over a TLS session that ended cleanly
assert_tls_line() {
    run cat "$T/rec.bin"
    assert_output "$1"
    wait_file "$T/info.json"
    run json_field "$T/info.json" -1 handshake
    assert_output ok
}

escape() {
    run shim_run "$PROGS/escapes" "$1" 127.0.0.1 "$PORT"
    assert_success
    assert_output --partial "via-$1"
    assert_tls_line "via-$1"
}

@test "bash /dev/tcp with builtins and an external head reads and writes through TLS" {
    run shim_run bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; printf 'from bash\n' >&3; head -n1 <&3"
    assert_success
    assert_output "from bash"
    assert_tls_line "from bash"
}

@test "printf after dup2 of a TLS socket onto stdout goes through TLS" {
    escape stdout
}

@test "system() children read and write the inherited connection through TLS" {
    escape system
}

@test "popen() children use the inherited connection through TLS" {
    escape popen
}

@test "fdopen() stdio streams carry plaintext over TLS" {
    escape fdopen
}

@test "dprintf() on a TLS socket is encrypted" {
    escape dprintf
}

@test "an inetd-style exec of a shell on the connection keeps it TLS" {
    escape exec
}

@test "dup() landing on fd 0 keeps the connection TLS" {
    escape dup
}

@test "one relay per connection: a second escape reuses the first relay" {
    run shim_run bash -c "TLSSHIM_DEBUG=2; exec 3<>/dev/tcp/127.0.0.1/$PORT; printf 'one\n' >&3; head -n1 <&3; printf 'two\n' >&3; head -n1 <&3"
    assert_success
    assert_line "one"
    assert_line "two"
    run bash -c "TLSSHIM_DEBUG=2 LD_PRELOAD=$SHIM_PRELOAD bash -c 'exec 3<>/dev/tcp/127.0.0.1/$PORT; printf \"one\n\" >&3; head -n1 <&3; printf \"two\n\" >&3; head -n1 <&3' 2>&1 | grep -c 'handed to a relay'"
    assert_output 1
}

@test "a child started with env -i is still covered" {
    run shim_run /usr/bin/env -i /usr/bin/python3 -c "
import socket
s = socket.create_connection(('127.0.0.1', $PORT))
s.sendall(b'from env -i\n'); print(s.recv(100).decode().strip())"
    assert_success
    assert_output "from env -i"
    assert_tls_line "from env -i"
}

@test "uncovered = refuse makes exec of a static binary fail with EACCES" {
    printf '[global]\nuncovered = refuse\n[lab]\nconnect = 127.0.0.1:%s\nca_file = %s\n' "$PORT" "$PKI/ca.pem" > "$TLSSHIM_CONF"
    printf 'int main(void){return 0;}\n' > "$T/s.c"
    gcc -static -o "$T/static" "$T/s.c" || skip "no static libc (libc6-dev)"
    run shim_run bash -c "exec $T/static"
    assert_failure
    assert_output --partial "exec $T/static refused: tlsshim cannot cover it: statically linked"
    assert_output --partial "Permission denied"
}

@test "uncovered = warn runs a static binary and says its connections are not secured" {
    printf 'int main(void){return 7;}\n' > "$T/s.c"
    gcc -static -o "$T/static" "$T/s.c" || skip "no static libc (libc6-dev)"
    run shim_run bash -c "$T/static"
    assert_failure 7
    assert_output --partial "warning: exec $T/static: tlsshim cannot cover it: statically linked"
}

@test "a vfork child cannot write into an inherited connection, and the parent keeps it" {
    run shim_run "$PROGS/escapes" vfork 127.0.0.1 "$PORT"
    assert_success
    assert_output --partial "closed in the child"
    assert_output --partial "vfork got: via-vfork"
    assert_tls_line "via-vfork"
}

@test "posix_spawn file actions that dup2 a close-on-exec TLS socket into the child keep it TLS" {
    escape spawn
}
