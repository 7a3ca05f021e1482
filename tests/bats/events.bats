#!/usr/bin/env bats
# Event loops and the less common socket calls on a TLS socket (SPEC
# section 5): epoll in level-triggered, edge-triggered and one-shot mode,
# shared between threads and mixed with untracked fds; select and pselect
# on high fd numbers; ppoll's signal mask; MSG_* flags and FIONREAD;
# SIGPIPE and EINTR as the kernel gives them; recvmmsg/sendmmsg,
# sendfile/splice and TCP_CORK.  Payloads are checked end to end with
# sha256; the programs are tests/progs/evloop.c and sockcalls.c.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
    MSG="$T/msg.bin"
    head -c 65536 /dev/urandom > "$MSG"
}

teardown() {
    common_teardown
}

# policy [key=value...]: a one-rule policy for 127.0.0.1:$PORT
policy() {
    local f="$T/policy.conf"
    {
        echo "[lab]"
        echo "connect = 127.0.0.1:$PORT [::1]:$PORT localhost:$PORT"
        echo "ca_file = $PKI/ca.pem"
        for kv in "$@"; do echo "$kv"; done
    } > "$f"
    chmod 600 "$f"
    export TLSSHIM_CONF="$f"
}

# echo_server [tls_server.py args...]: the echo peer, recording what it got
echo_server() {
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" \
        --key "$PKI/good.key" --mode echo --record "$T/rec.bin" \
        --info "$T/info.json" "$@"
}

# ok_sha FILE: FILE holds exactly the message
ok_sha() {
    assert_equal "$(sha_of "$1")" "$(sha_of "$MSG")"
}

# --- epoll ------------------------------------------------------------------

@test "edge-triggered epoll: 64 KiB read one byte at a time until EAGAIN per edge arrives whole" {
    policy
    echo_server
    run shim_run "$PROGS/evloop" et 127.0.0.1 "$PORT" "$MSG" "$T/out.bin"
    assert_success
    assert_output --partial "et: edges_in="
    assert_output --partial "bytes=65536"
    ok_sha "$T/out.bin"
    ok_sha "$T/rec.bin"
}

@test "epoll works where epoll_pwait2 fails with ENOSYS (Linux before 5.11, valgrind)" {
    policy
    echo_server
    # nopwait2.so after the module: the shim's real epoll_pwait2
    run shim_run env LD_PRELOAD="$SHIM_PRELOAD:$PROGS/.libs/nopwait2.so" \
        "$PROGS/evloop" et 127.0.0.1 "$PORT" "$MSG" "$T/out.bin"
    assert_success
    assert_output --partial "bytes=65536"
    ok_sha "$T/out.bin"
    ok_sha "$T/rec.bin"
}

@test "edge-triggered epoll does not report unread data again and again" {
    policy
    echo_server
    run shim_run "$PROGS/evloop" nospin 127.0.0.1 "$PORT"
    assert_success
    # 10 waits of 100 ms: an edge is reported once, then the waits time out
    [[ $output =~ nospin:\ wakeups=([0-9]+)\ timeouts=([0-9]+) ]]
    echo "wakeups=${BASH_REMATCH[1]} timeouts=${BASH_REMATCH[2]}"
    (( BASH_REMATCH[1] <= 1 && BASH_REMATCH[2] >= 9 ))
    assert_output --partial "nospin: echo intact"
}

@test "level-triggered epoll reports unread data at every call" {
    policy
    echo_server
    run shim_run "$PROGS/evloop" -l nospin 127.0.0.1 "$PORT"
    assert_success
    assert_output --partial "nospin: wakeups=10 timeouts=0"
    assert_output --partial "nospin: echo intact"
}

@test "edge-triggered epoll reports plaintext decrypted ahead while the kernel socket is empty" {
    policy
    echo_server
    run shim_run "$PROGS/evloop" buffered 127.0.0.1 "$PORT" "$MSG" "$T/out.bin"
    assert_success
    assert_output --partial "buffered: reported, 10 bytes"
    ok_sha "$T/out.bin"
}

@test "EPOLLONESHOT reports once and nothing more until EPOLL_CTL_MOD" {
    policy
    echo_server
    run shim_run "$PROGS/evloop" oneshot 127.0.0.1 "$PORT" "$MSG" "$T/out.bin"
    assert_success
    assert_output --partial "oneshot: silent=1 rearms="
    ok_sha "$T/out.bin"
}

@test "EPOLLEXCLUSIVE is accepted and keeps the kernel's rules" {
    policy
    echo_server
    run shim_run "$PROGS/evloop" exclusive 127.0.0.1 "$PORT" "$MSG" "$T/out.bin"
    assert_success
    assert_output --partial "exclusive: ok"
    ok_sha "$T/out.bin"
}

@test "two threads share an epoll set of TLS sockets and a pipe; MOD and DEL work and the pipe keeps its data" {
    policy
    echo_server
    run shim_run "$PROGS/evloop" threads 127.0.0.1 "$PORT" "$MSG" "$T/out" 6
    assert_success
    assert_output --regexp "threads: 6 connections, events [0-9]+\+[0-9]+, pipe 19 bytes"
    for i in 0 1 2 3 4 5; do
        ok_sha "$T/out.$i"
    done
}

@test "level-triggered EPOLLOUT means room in the kernel: blocking writes stream 32 MiB both ways" {
    policy
    # a stalled stream ends when the server gives up after 10 s idle
    echo_server --timeout 10
    head -c 33554432 /dev/urandom > "$T/big.bin"
    run shim_run "$PROGS/evloop" -w 60 duplex 127.0.0.1 "$PORT" "$T/big.bin" "$T/out.bin"
    assert_success
    assert_output "duplex: 33554432 bytes"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/big.bin")"
}

@test "one epoll set holds 300 TLS sockets" {
    policy
    echo_server
    run shim_run "$PROGS/evloop" -w 60 many 127.0.0.1 "$PORT" 300
    assert_success
    assert_output "many: 300 echoes"
}

# --- select, ppoll, flags -----------------------------------------------------

@test "select, pselect and __select report a TLS socket at fd 900 and above; a closed fd gives EBADF" {
    policy
    echo_server
    run shim_run "$PROGS/sockcalls" select 127.0.0.1 "$PORT" "$MSG" "$T/out.bin"
    assert_success
    assert_output --regexp "select: fd=9[0-9][0-9] ebadf=ok"
    ok_sha "$T/out.bin"
}

@test "ppoll on a TLS socket honours its timeout and its signal mask" {
    policy
    echo_server
    run shim_run "$PROGS/sockcalls" ppoll 127.0.0.1 "$PORT"
    assert_success
    assert_output --partial "ppoll: EINTR through the mask, handler=1"
    assert_output --partial "ppoll: blocked by the mask, delivered after"
    assert_output --partial "ppoll: echo reported"
}

@test "MSG_DONTWAIT, MSG_PEEK, FIONREAD and MSG_WAITALL behave as on TCP" {
    policy
    echo_server
    run shim_run "$PROGS/sockcalls" flags 127.0.0.1 "$PORT" "$MSG" "$T/out.bin"
    assert_success
    assert_output --partial "flags: MSG_DONTWAIT EAGAIN"
    assert_output --partial "flags: FIONBIO and FIONREAD at an odd address"
    assert_output --partial "flags: MSG_WAITALL"
    ok_sha "$T/out.bin"
}

# --- signals ------------------------------------------------------------------

# reply_server: answers one line, then resets the connection (the peer is
# gone: the kernel reports ECONNRESET once, then EPIPE)
reply_server() {
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" \
        --key "$PKI/good.key" --mode reply --reply "bye" --end reset
}

@test "writing to a TLS socket whose peer has gone raises SIGPIPE" {
    policy
    reply_server
    run shim_run "$PROGS/sockcalls" sigpipe 127.0.0.1 "$PORT"
    # killed by SIGPIPE: the shell's status 128 + 13
    assert_equal "$status" 141
    refute_output --partial "sigpipe: errno="
}

@test "with MSG_NOSIGNAL, or SIGPIPE ignored, that write fails with EPIPE" {
    policy
    reply_server
    run shim_run "$PROGS/sockcalls" -n sigpipe 127.0.0.1 "$PORT"
    assert_success
    assert_output --partial "sigpipe: errno=EPIPE"
    run shim_run "$PROGS/sockcalls" -i sigpipe 127.0.0.1 "$PORT"
    assert_success
    assert_output --partial "sigpipe: errno=EPIPE"
}

@test "a blocking read interrupted by a handler without SA_RESTART fails with EINTR" {
    policy
    echo_server
    run shim_run "$PROGS/sockcalls" eintr 127.0.0.1 "$PORT"
    assert_success
    assert_output --regexp "eintr: read errno=EINTR after [0-9]+ ms handler=1"
    assert_output --partial "eintr: echo intact"
}

@test "with SA_RESTART a blocking read goes on, unless the socket has SO_RCVTIMEO" {
    policy
    echo_server
    run shim_run "$PROGS/sockcalls" -r eintr 127.0.0.1 "$PORT"
    assert_success
    assert_output --regexp "eintr: read 5 bytes after [0-9]+ ms handler=1"
    run shim_run "$PROGS/sockcalls" -t eintr 127.0.0.1 "$PORT"
    assert_success
    assert_output --regexp "eintr: read errno=EINTR after [0-9]+ ms handler=1"
    assert_output --partial "eintr: echo intact"
}

@test "a crash handler without SA_RESTART does not turn an SA_RESTART signal into EINTR" {
    # crash reporters and sanitizer runtimes handle SIGSEGV, SIGBUS, SIGFPE
    # and SIGILL without SA_RESTART; a fault never interrupts a wait, so
    # only SIGUSR2's handler decides, as in the kernel
    policy
    echo_server
    run shim_run "$PROGS/sockcalls" -c -r eintr 127.0.0.1 "$PORT"
    assert_success
    assert_output --regexp "eintr: read 5 bytes after [0-9]+ ms handler=1"
    assert_output --partial "eintr: echo intact"
    # the same handlers, SIGUSR2's without SA_RESTART: still EINTR
    run shim_run "$PROGS/sockcalls" -c eintr 127.0.0.1 "$PORT"
    assert_success
    assert_output --regexp "eintr: read errno=EINTR after [0-9]+ ms handler=1"
    assert_output --partial "eintr: echo intact"
}

# --- batches, zero-copy, options ----------------------------------------------

@test "sendmmsg and recvmmsg carry the payload intact" {
    policy
    echo_server
    run shim_run "$PROGS/sockcalls" mmsg 127.0.0.1 "$PORT" "$MSG" "$T/out.bin"
    assert_success
    assert_output --partial "mmsg: sendmmsg 4 messages, 65536 bytes"
    ok_sha "$T/out.bin"
    ok_sha "$T/rec.bin"
}

@test "sendfile and sendfile64 into a TLS socket send the file and keep file positions right" {
    policy
    echo_server
    run shim_run "$PROGS/sockcalls" sendfile 127.0.0.1 "$PORT" "$MSG" "$T/out.bin"
    assert_success
    ok_sha "$T/out.bin"
    ok_sha "$T/rec.bin"
}

@test "splice from a pipe into a TLS socket works; from a TLS socket it fails with EINVAL" {
    policy
    echo_server
    run shim_run "$PROGS/sockcalls" splice 127.0.0.1 "$PORT" "$MSG" "$T/out.bin"
    assert_success
    assert_output --partial "from the TLS socket: EINVAL"
    ok_sha "$T/out.bin"
    ok_sha "$T/rec.bin"
}

@test "TCP_CORK reaches the kernel and the stream stays intact" {
    policy
    echo_server
    run shim_run "$PROGS/sockcalls" cork 127.0.0.1 "$PORT" "$MSG" "$T/out.bin"
    assert_success
    ok_sha "$T/out.bin"
    ok_sha "$T/rec.bin"
}

# --- cost on untracked fds ----------------------------------------------------

@test "hookbench measures read, poll and epoll_wait on untracked fds with and without the shim" {
    [[ -z $SHIM_RUNTIME ]] || skip "timings in a sanitizer build measure the sanitizer"
    run "$PROGS/hookbench" -q "$SHIMLIB"
    assert_success
    assert_line --index 0 "hookbench: ns per call on untracked fds (quick)"
    assert_line --regexp "^read\(pipe, 1 byte\) +[0-9.]+ +[0-9.]+ +[0-9.]+$"
    assert_line --regexp "^poll\(1000 untracked fds, timeout 0\) +[0-9.]+ +[0-9.]+ +[0-9.]+$"
    assert_line --regexp "^epoll_wait\(1000 untracked fds, 0\) +[0-9.]+ +[0-9.]+ +[0-9.]+$"
}
