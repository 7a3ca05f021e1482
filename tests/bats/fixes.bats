#!/usr/bin/env bats
# Regression tests, one per bug found by tests (SPEC sections 3-5 and 9):
# strict_eof default, errno after a handshake timeout, IPv4-mapped
# destinations, the name verified after the rule's own resolution, poll
# asked for both directions, and one relay shared by several children.
# The helpers are those of client2.bats.

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

# policy [key=value...]: a one-rule policy for 127.0.0.1, ::1 and localhost
# on $PORT
policy() {
    rule "127.0.0.1:$PORT [::1]:$PORT localhost:$PORT" "$@"
}

# rule PATTERNS [key=value...]: a one-rule policy (rule "lab") for PATTERNS
rule() {
    local f="$T/policy.conf" kv
    {
        echo "[lab]"
        echo "connect = $1"
        echo "ca_file = $PKI/ca.pem"
        shift
        for kv in "$@"; do echo "$kv"; done
    } > "$f"
    chmod 600 "$f"
    export TLSSHIM_CONF="$f"
}

# echo_server [CERT [tls_server.py options...]]
echo_server() {
    local cert="$PKI/${1:-good}.chain.pem"
    [ -e "$cert" ] || cert="$PKI/${1:-good}.pem"
    tls_server srv "$PORT" --cert "$cert" \
        --key "$PKI/${1:-good}.key" --mode echo --record "$T/rec.bin" \
        --info "$T/info.json" "${@:2}"
}

# sink [HOST]: a plain TCP server on $PORT that records what it receives
sink() {
    start_bg sink "$PYTHON" "$PEERS/raw_sink.py" --port "$PORT" \
        --host "${1:-127.0.0.1}" --record "$T/raw.bin" --info "$T/sink.json"
    wait_port "$PORT" "${1:-127.0.0.1}"
}

# private_hosts LINE...: an /etc/hosts for in_hosts; skips the test where
# mount namespaces are not available
private_hosts() {
    unshare -m true 2>/dev/null || skip "needs unshare -m (root)"
    printf '%s\n' "$@" > "$T/hosts"
}

# in_hosts CMD...: run CMD with $T/hosts as its /etc/hosts
in_hosts() {
    unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' \
        "$T/hosts" "$@"
}

# Bug: the socket BIO of src/conn.c answers 0 to BIO_CTRL_EOF, so OpenSSL
# never applies SSL_OP_IGNORE_UNEXPECTED_EOF and every EOF without
# close_notify becomes ECONNRESET, strict_eof or not.
@test "an EOF without close_notify is a normal end of stream by default" {
    policy
    echo_server good --end eof
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT < $MSG > $T/out.bin"
    assert_success
    refute_output --partial "errno="
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$MSG")"
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$MSG")"
    assert_equal "$(json_field "$T/info.json" 1 server_end)" eof
}

@test "an EOF without close_notify ends the non-blocking client's stream normally by default" {
    policy
    echo_server good --end eof
    for mode in "" -s -e; do
        run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/nbclient $mode 127.0.0.1 $PORT < $MSG > $T/out.bin"
        assert_success
        refute_output --partial "errno="
        assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$MSG")"
    done
}

# Bug: a handshake timeout fails the connection with io_errno ETIMEDOUT
# (src/conn.c, handshake_step), so reads and writes after it return
# ETIMEDOUT; SPEC section 5 says ECONNRESET, as after any other failure.
@test "after a non-blocking handshake timeout the next read and write fail with ECONNRESET" {
    policy "handshake_timeout = 1"
    sink
    for mode in "" -s -e; do
        run --separate-stderr bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/nbconnect $mode 127.0.0.1 $PORT"
        assert_failure 3
        assert_line "so_error: ETIMEDOUT"
        assert_line "read: errno=ECONNRESET"
        assert_line "write: errno=ECONNRESET"
    done
}

# Bug: conn_new_client (src/conn.c) takes the verification name of a
# literal destination from util_ip_str() of the raw peer address, so an
# IPv4-mapped destination is verified as "::ffff:127.0.0.1", which no IP
# SAN 127.0.0.1 matches; the rule matched it as the IPv4 address (SPEC
# section 3), and verification should follow.
@test "an IPv4-mapped IPv6 destination is verified against the IPv4 address in the IP SAN" {
    rule "127.0.0.1:$PORT"
    echo_server ipsan
    run bash -c "TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD $PROGS/ambiguous ::ffff:127.0.0.1 $PORT < $MSG > $T/out.bin"
    assert_success
    assert_output --partial "rule=lab tls=TLSv1.3"
    refute_output --partial "wanted ::ffff:127.0.0.1"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$MSG")"
}

# Bug (SPEC reading): the program looked up alias.test, which no pattern
# names; the rule matched only through its own resolution of localhost, so
# "the name that matched" (SPEC section 4, verifycn_name) is localhost.
# choose_rule (shim/hooks_connect.c) keeps the program's name instead and
# verifies (and sends as SNI) alias.test.
@test "a rule matched through its own resolution verifies its own name even after the program looked up another" {
    private_hosts "127.0.0.1 localhost" "127.0.0.1 alias.test"
    rule "localhost:$PORT"
    echo_server
    run in_hosts env TLSSHIM_DEBUG=1 LD_PRELOAD="$SHIM_PRELOAD" "$PROGS/ambiguous" -c alias.test 127.0.0.1 "$PORT" < "$MSG"
    assert_success
    refute_output --partial "wanted alias.test"
    assert_output --partial "info: connect localhost:$PORT (127.0.0.1) rule=lab tls=TLSv1.3"
    assert_equal "$(json_field "$T/info.json" 1 sni)" localhost
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$MSG")"
}

# --- real programs (programs.bats) --------------------------------------

# prog_wait_lines FILE N: wait until FILE has at least N lines.
prog_wait_lines() {
    local file=$1 n=$2 i
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        [[ -f $file ]] && (($(wc -l <"$file") >= n)) && return 0
        sleep 0.05
    done
    echo "prog_wait_lines: $file has fewer than $n lines after ${WAIT_SECONDS}s" >&2
    return 1
}

# Bug: conn_poll_check (src/conn.c) returns as soon as a TLS socket is
# writable and only then asks the kernel for what the TLS layer needs
# ("if (ready == 0) *kernel = ..."), and poll_tracked / epoll_tracked
# (shim/hooks_poll.c) pass no events to the kernel for an fd already
# ready: a program waiting for reading and writing at once is never told
# that records arrived.  socat (select on both directions) keeps writing,
# never reads the echo, and stalls once the buffers fill.
@test "socat streams 32 MiB both ways over TLS and both directions arrive intact" {
    policy
    echo_server good --timeout 10
    head -c 33554432 /dev/urandom >"$T/big.bin"
    # -t 30: after stdin's EOF socat keeps reading the echo for up to 30 s.
    run -0 shim_run bash -c 'exec timeout 60 socat -t 30 -b 65536 - "TCP:127.0.0.1:$1" >"$2"' \
        _ "$PORT" "$T/out.bin" <"$T/big.bin"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/big.bin")"
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$T/big.bin")"
    prog_wait_lines "$T/info.json" 1
    assert_equal "$(json_field "$T/info.json" 1 version)" TLSv1.3
    assert_equal "$(json_field "$T/info.json" 1 bytes_out)" 33554432
}

# Same bug, shown directly: an echo that has arrived is readable to
# select, poll and epoll asked for reading and writing together, as it is
# without the shim.
@test "python3 select, poll and epoll asked for reading and writing report an arrived echo as readable" {
    policy
    echo_server
    run -0 shim_run timeout 60 /usr/bin/python3 -c "
import select, socket, time

def check(name, ready):
    # bounded: the echo is back within milliseconds on loopback
    for _ in range(50):
        r, w = ready()
        if r:
            break
        time.sleep(0.1)
    print('%s readable=%d writable=%d' % (name, r, w))

def sel(s):
    r, w, _ = select.select([s], [s], [], 0)
    return bool(r), bool(w)

def pol(s):
    p = select.poll()
    p.register(s, select.POLLIN | select.POLLOUT)
    ev = dict(p.poll(0)).get(s.fileno(), 0)
    return bool(ev & select.POLLIN), bool(ev & select.POLLOUT)

def epo(s):
    e = select.epoll()
    e.register(s, select.EPOLLIN | select.EPOLLOUT)
    ev = dict(e.poll(0)).get(s.fileno(), 0)
    e.close()
    return bool(ev & select.EPOLLIN), bool(ev & select.EPOLLOUT)

for name, ready in (('select', sel), ('poll', pol), ('epoll', epo)):
    s = socket.create_connection(('127.0.0.1', $PORT))
    s.sendall(b'echo me\n')
    check(name, lambda: ready(s))
    print(name, s.recv(100).decode().strip())
    s.close()
"
    assert_line "select readable=1 writable=1"
    assert_line "poll readable=1 writable=1"
    assert_line "epoll readable=1 writable=1"
    assert_line "select echo me"
    assert_line "epoll echo me"
}

# Bug: each child that execs with an inherited TLS fd makes its own relay
# (relay_escape_inherited, shim/relay.c), and a child whose connection is
# already owned by an earlier child's relay gets a dead end ("connection
# not ours to relay; fds closed off", relay_handoff): the shell's fd 3
# stays the TLS socket, so every external command after the first reads
# EOF and its writes vanish, all with exit status 0.  SPEC section 9: one
# relay per connection, and children keep working.
@test "bash /dev/tcp: an external head reads the echo of what an earlier external cat wrote" {
    policy
    echo_server
    printf 'through two children\n' >"$T/line"
    run -0 shim_run timeout 60 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1"
        cat "$2" >&3
        head -n 1 <&3' _ "$PORT" "$T/line"
    assert_output "through two children"
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$T/line")"
}

@test "bash /dev/tcp passes 1 MiB through concurrent external cat and head over TLS" {
    policy
    echo_server good --timeout 10
    head -c 1048576 /dev/urandom >"$T/big.bin"
    # cat writes fd 3 as its stdout while head reads it as its stdin: two
    # new images that know nothing of TLS share the shell's connection.
    run -0 shim_run timeout 60 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1"
        head -c 1048576 <&3 >"$3" &
        cat "$2" >&3
        wait $!' _ "$PORT" "$T/big.bin" "$T/out.bin"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/big.bin")"
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$T/big.bin")"
    prog_wait_lines "$T/info.json" 1
    assert_equal "$(json_field "$T/info.json" 1 bytes_in)" 1048576
    assert_equal "$(json_field "$T/info.json" 1 end)" close_notify
}
