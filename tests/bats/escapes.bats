#!/usr/bin/env bats
# Connections that leave the calls tlsshim sees in the less common ways
# (SPEC sections 5 and 9): close_range() and closefrom(), fclose() of an
# fdopen() stream, fexecve() and execveat(), the posix_spawn of old
# binaries, a vfork() child; proof, at a raw TCP sink, that no escape puts
# plaintext on the wire; and epoll sets watched by another set or by
# poll() (libuv's backend fd), and dup()s of an epoll fd.  Bytes are
# checked at a real TLS peer on 127.0.0.1 (what it received, and whether
# the session ended with close_notify).  The programs are
# tests/progs/fdgaps.c, escapes.c and nestepoll.c.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
    PLAIN=$(free_port)
    f="$T/policy.conf"
    printf '[lab]\nconnect = 127.0.0.1:%s\nca_file = %s\n' "$PORT" "$PKI/ca.pem" > "$f"
    chmod 600 "$f"
    export TLSSHIM_CONF="$f"
}

teardown() {
    common_teardown
}

echo_server() {
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode echo --record "$T/rec.bin" --info "$T/info.json"
}

# sink_start NAME PORT [ARGS...]: start a raw TCP sink recording into
# $T/NAME.bin; sink_ready NAME: wait until it listens; sink: both
sink_start() {
    local name=$1 port=$2
    shift 2
    start_bg "$name" "$PYTHON" "$PEERS/raw_sink.py" --port "$port" \
        --record "$T/$name.bin" "$@"
}

sink_ready() {
    local i
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        grep -q '^READY' "$T/$1.log" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "sink: $1 not READY" >&2
    return 1
}

sink() {
    sink_start "$@" && sink_ready "$1"
}

# assert_tls_end TEXT END: the TLS peer got exactly the line TEXT over a
# session that ended as END says (close_notify, eof)
assert_tls_end() {
    run cat "$T/rec.bin"
    assert_output "$1"
    wait_file "$T/info.json"
    run json_field "$T/info.json" -1 handshake
    assert_output ok
    run json_field "$T/info.json" -1 end
    assert_output "$2"
}

# gap_close MODE: a close that bypasses close(); the peer sees
# close_notify before the program exits, and fd 3 then is a plain socket
gap_close() {
    echo_server
    sink plain "$PLAIN"
    run shim_run "$PROGS/fdgaps" "$1" 127.0.0.1 "$PORT" "$PLAIN" "$T/info.json"
    assert_success
    assert_output --partial "$1: the peer saw the end before exit"
    assert_output --partial "$1: fd 3 reused by a plain socket"
    assert_tls_end "hello-$1" close_notify
    wait_file "$T/plain.bin"
    run cat "$T/plain.bin"
    assert_output "plain-after-$1"
}

# gap_exec MODE: a new image started by MODE uses the inherited connection
gap_exec() {
    echo_server
    run shim_run "$PROGS/fdgaps" "$1" 127.0.0.1 "$PORT"
    assert_success
    assert_output "via-$1"
    assert_tls_end "via-$1" close_notify
}

@test "close_range() of a TLS socket sends close_notify at once, and the freed number is a plain socket" {
    gap_close closerange
}

@test "closefrom() over a TLS socket sends close_notify at once, and the freed number is a plain socket" {
    gap_close closefrom
}

@test "fclose() of an fdopen() stream on a TLS socket sends close_notify at once, and the freed number is a plain socket" {
    gap_close fclose
}

@test "close_range(CLOSE_RANGE_CLOEXEC) on a TLS socket closes it at exec instead of handing it to a relay" {
    echo_server
    export TLSSHIM_DEBUG=2
    run shim_run "$PROGS/fdgaps" cloexec 127.0.0.1 "$PORT"
    assert_success
    assert_output --partial "cloexec: fd 3 closed at exec"
    refute_output --partial "relay"
    # closed by the kernel at exec: an EOF without close_notify, nothing
    # of the new image's on the wire
    assert_tls_end "hello-cloexec" eof
}

@test "fexecve() of a shell: the new image reads and writes the inherited connection through TLS" {
    gap_exec fexecve
}

@test "execveat() of a shell: the new image reads and writes the inherited connection through TLS" {
    gap_exec execveat
}

@test "posix_spawn@GLIBC_2.2.5 (binaries built against old glibc) children use the inherited connection through TLS" {
    if ! nm -D --with-symbol-versions "$PROGS/fdgaps" 2>/dev/null | grep -q 'posix_spawn@GLIBC_2.2.5'; then
        skip "no posix_spawn@GLIBC_2.2.5 on this platform"
    fi
    gap_exec spawnold
}

@test "a vfork() child's closefrom() leaves the parent's TLS connection alone, and its dup2() of it is refused" {
    echo_server
    run shim_run "$PROGS/fdgaps" vfork 127.0.0.1 "$PORT"
    assert_success
    assert_output --partial "copy of a TLS connection in a vfork() child refused"
    assert_output --partial "vfork: closed"
    assert_tls_end "hello-vfork
hello-vfork" close_notify
}

@test "no escape puts plaintext on the wire: exec, system, popen, posix_spawn, stdout, fdopen, dprintf" {
    local modes=(exec system popen spawn stdout fdopen dprintf) m i ports=() pids=() bad=0 head
    # action = auto: connect() returns with TCP up and the handshake not
    # started, so the first bytes on the wire come through the escape
    # itself, and tlsshim must start the handshake there.  One sink per
    # mode, all at once: each handshake fails when its sink closes the
    # idle connection after a second.
    mapfile -t ports < <("$PYTHON" -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))' "${#modes[@]}")
    {
        echo "[sink]"
        echo "connect = ${ports[*]/#/127.0.0.1:}"
        echo "action = auto"
        echo "ca_file = $PKI/ca.pem"
        echo "handshake_timeout = 3"
    } > "$TLSSHIM_CONF"
    for ((i = 0; i < ${#modes[@]}; i++)); do
        sink_start "sink.${modes[i]}" "${ports[i]}" --idle-timeout 1
    done
    for m in "${modes[@]}"; do
        sink_ready "sink.$m"
    done
    for ((i = 0; i < ${#modes[@]}; i++)); do
        shim_run timeout 10 "$PROGS/escapes" "${modes[i]}" 127.0.0.1 "${ports[i]}" \
            > "$T/out.${modes[i]}" 2>&1 &
        pids[i]=$!
    done
    wait "${pids[@]}" || true   # exit statuses vary; the wire is what counts
    for m in "${modes[@]}"; do
        if ! [[ -s $T/sink.$m.bin ]]; then
            echo "$m: nothing reached the sink"
            bad=1
            continue
        fi
        head=$(od -An -tx1 -N2 "$T/sink.$m.bin" | tr -d ' \n')
        if [[ $head != 1603 ]]; then
            echo "$m: the wire does not begin with a TLS handshake record (${head})"
            bad=1
        fi
        if grep -aq "via-$m" "$T/sink.$m.bin"; then
            echo "$m: the plaintext marker via-$m reached the wire"
            bad=1
        fi
    done
    if ((bad)); then
        for m in "${modes[@]}"; do
            echo "--- $m:"
            cat "$T/out.$m"
        done
    fi
    ((bad == 0))
}

# tfo_send PORT TEXT: a python client sending TEXT with sendto(MSG_FASTOPEN)
# (connect and send in one call), then printing what comes back
tfo_send() {
    shim_run "$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    s.sendto(sys.argv[2].encode() + b"\n", socket.MSG_FASTOPEN,
             ("127.0.0.1", int(sys.argv[1])))
except OSError as e:
    print("sendto:", e.strerror)
    sys.exit(1)
print("echo:", s.recv(100).decode().strip())' "$1" "$2"
}

@test "sendto(MSG_FASTOPEN) goes through the policy: a deny rule refuses it, a TLS rule wraps it" {
    echo_server
    sink plain "$PLAIN"
    printf '[deny-plain]\nconnect = 127.0.0.1:%s\naction = deny\n' "$PLAIN" \
        >> "$TLSSHIM_CONF"
    run tfo_send "$PLAIN" "tfo-secret"
    assert_failure
    assert_output --partial "sendto: Permission denied"
    assert_output --partial "connect 127.0.0.1:$PLAIN rule=deny-plain: denied by policy"
    sleep 0.5
    run cat "$T/plain.bin"
    refute_output --partial "tfo-secret"
    # the TLS rule: the marker arrives through TLS, and comes back
    run tfo_send "$PORT" "tfo-over-tls"
    assert_success
    assert_output --partial "echo: tfo-over-tls"
    wait_file "$T/info.json"
    run json_field "$T/info.json" -1 handshake
    assert_output ok
    run cat "$T/rec.bin"
    assert_output "tfo-over-tls"
}

@test "an epoll set nested in another (libuv's backend fd) is reported while plaintext waits in the TLS layer" {
    echo_server
    head -c 65536 /dev/urandom > "$T/msg.bin"
    run shim_run "$PROGS/nestepoll" 127.0.0.1 "$PORT" "$T/msg.bin" "$T/out.bin"
    assert_success
    assert_output --partial "nestepoll: 65536 bytes"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/msg.bin")"
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$T/msg.bin")"
}

@test "a nested edge-triggered epoll set is reported while plaintext waits in the TLS layer" {
    echo_server
    head -c 65536 /dev/urandom > "$T/msg.bin"
    run shim_run "$PROGS/nestepoll" -e 127.0.0.1 "$PORT" "$T/msg.bin" "$T/out.bin"
    assert_success
    assert_output --partial "nestepoll: 65536 bytes"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/msg.bin")"
}

@test "an epoll set watched with poll() (a GLib loop embedding libuv) is reported while plaintext waits in the TLS layer" {
    echo_server
    head -c 65536 /dev/urandom > "$T/msg.bin"
    run shim_run "$PROGS/nestepoll" -p 127.0.0.1 "$PORT" "$T/msg.bin" "$T/out.bin"
    assert_success
    assert_output --partial "nestepoll: 65536 bytes"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/msg.bin")"
}

@test "a dup() of an epoll fd is the same set: registered through one fd, nested and waited on through the other" {
    echo_server
    head -c 65536 /dev/urandom > "$T/msg.bin"
    run shim_run "$PROGS/nestepoll" -d 127.0.0.1 "$PORT" "$T/msg.bin" "$T/out.bin"
    assert_success
    assert_output --partial "nestepoll: 65536 bytes"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/msg.bin")"
}
