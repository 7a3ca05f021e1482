#!/usr/bin/env bats
# Client connections, second part: how streams end (strict_eof,
# close_notify), which name a connection carries (SPEC section 3: the
# program's lookup, the rule's own resolution, ambiguity), IPv6, failures
# of non-blocking connects, every I/O entry point, large transfers and
# socket timeouts (SPEC sections 4 and 5).  Payloads are checked end to end
# and against what the peer recorded.
#
# Tests that need two names for 127.0.0.1 give the client a private
# /etc/hosts in a mount namespace of its own (unshare -m, root only).

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
    rule "localhost:$PORT 127.0.0.1:$PORT [::1]:$PORT" "$@"
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

# first_byte FILE: the first byte of FILE in hex
first_byte() {
    head -c 1 "$1" | od -An -tx1 | tr -d ' \n'
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

# --- how a stream ends ------------------------------------------------------

@test "strict_eof = yes makes an EOF without close_notify fail the read with ECONNRESET after the data" {
    policy "strict_eof = yes"
    echo_server good --end eof
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT < $MSG > $T/out.bin"
    assert_failure 4
    assert_output --partial "blockclient: read: Connection reset by peer errno=ECONNRESET"
    assert_output --partial "connect 127.0.0.1:$PORT rule=lab: read failed: "
    # every byte sent before the EOF was delivered first
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$MSG")"
    assert_equal "$(json_field "$T/info.json" 1 server_end)" eof
}

@test "strict_eof = yes fails the non-blocking client's read with ECONNRESET too" {
    policy "strict_eof = yes"
    echo_server good --end eof
    for mode in "" -s -e; do
        run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/nbclient $mode 127.0.0.1 $PORT < $MSG > $T/out.bin"
        assert_failure 4
        assert_output --partial "nbclient: read: Connection reset by peer errno=ECONNRESET"
        assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$MSG")"
    done
}

@test "a close_notify from the server is a clean EOF whatever strict_eof says" {
    echo_server good --end close_notify
    for strict in no yes; do
        policy "strict_eof = $strict"
        run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT < $MSG > $T/out-$strict.bin"
        assert_success
        refute_output --partial "errno="
        assert_equal "$(sha_of "$T/out-$strict.bin")" "$(sha_of "$MSG")"
    done
    wait_file "$T/info.json"
    run grep -c '"server_end": "close_notify"' "$T/info.json"
    assert_output 2
}

@test "close() of a TLS socket sends close_notify to the server" {
    policy
    echo_server
    run shim_run "$PYTHON" -c "
import socket
s = socket.create_connection(('127.0.0.1', $PORT))
data = open('$MSG', 'rb').read()
s.sendall(data)
got = b''
while len(got) < len(data):
    b = s.recv(65536)
    if not b: break
    got += b
assert got == data, 'echo differs'
s.close()
print('closed')
"
    assert_success
    assert_output "closed"
    wait_file "$T/info.json"
    assert_equal "$(json_field "$T/info.json" 1 end)" close_notify
    assert_equal "$(json_field "$T/info.json" 1 bytes_in)" 100000
}

@test "shutdown(SHUT_WR) sends close_notify first and the echo still arrives" {
    # blockclient shuts its sending side down before it reads: had the
    # shutdown not sent close_notify, the server would see a bare FIN
    policy
    echo_server
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT < $MSG > $T/out.bin"
    assert_success
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$MSG")"
    assert_equal "$(json_field "$T/info.json" 1 end)" close_notify
    assert_equal "$(json_field "$T/info.json" 1 bytes_out)" 100000
}

# --- which name a connection carries ------------------------------------------

@test "a name rule matches a client that resolved the name, which is verified and sent as SNI" {
    rule "localhost:$PORT"
    echo_server
    run bash -c "TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient localhost $PORT < $MSG > $T/out.bin"
    assert_success
    assert_output --partial "info: connect localhost:$PORT (127.0.0.1) rule=lab tls=TLSv1.3"
    assert_output --partial "sni=localhost verify=ok"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$MSG")"
    assert_equal "$(json_field "$T/info.json" 1 sni)" localhost
}

@test "a name rule covers a client that connects to the literal address through the rule's own resolution" {
    rule "localhost:$PORT"
    echo_server
    # ambiguous with no names to look up: a socket, inet_pton and connect
    run bash -c "TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD $PROGS/ambiguous 127.0.0.1 $PORT < $MSG > $T/out.bin"
    assert_success
    assert_output --partial "info: connect localhost:$PORT (127.0.0.1) rule=lab tls=TLSv1.3"
    assert_output --partial "sni=localhost verify=ok"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$MSG")"
    assert_equal "$(json_field "$T/info.json" 1 sni)" localhost
}

@test "a literal-address client covered by a name rule is verified against the rule's name" {
    rule "localhost:$PORT"
    echo_server wronghost
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/ambiguous 127.0.0.1 $PORT < $MSG"
    assert_failure 3
    assert_output --partial "ambiguous: connect: Connection refused errno=ECONNREFUSED"
    assert_output --partial "certificate verify failed: hostname mismatch (wanted localhost, certificate has wrong.test"
    [ ! -s "$T/rec.bin" ]
}

@test "a python client connecting to the literal address is covered by a name rule" {
    rule "localhost:$PORT"
    echo_server wronghost
    run shim_run "$PYTHON" -c "
import errno, socket
s = socket.socket()
try:
    s.connect(('127.0.0.1', $PORT))
    print('connected')
except OSError as e:
    print('connect failed:', errno.errorcode.get(e.errno, e))
"
    assert_success
    assert_output --partial "connect failed: ECONNREFUSED"
    assert_output --partial "hostname mismatch (wanted localhost"
}

@test "a wildcard rule covers resolved names but never a literal-address connect" {
    private_hosts "127.0.0.1 localhost" "127.0.0.1 alias.test"
    rule "*.test:$PORT" "handshake_timeout = 1"
    sink
    # a client that resolved alias.test: the rule applies (a ClientHello
    # reaches the plain server, then the handshake times out)
    run in_hosts env LD_PRELOAD="$SHIM_PRELOAD" "$PROGS/ambiguous" -c alias.test 127.0.0.1 "$PORT" < "$MSG"
    assert_failure 3
    assert_output --partial "errno=ETIMEDOUT"
    wait_file "$T/raw.bin"
    assert_equal "$(first_byte "$T/raw.bin")" 16
    : > "$T/raw.bin"
    # the literal: tlsshim cannot resolve a wildcard, so it stays plain
    printf 'in the clear\n' > "$T/clear"
    run in_hosts env LD_PRELOAD="$SHIM_PRELOAD" "$PROGS/ambiguous" 127.0.0.1 "$PORT" < "$T/clear"
    assert_success
    refute_output --partial "tlsshim"
    wait_file "$T/raw.bin"
    run cat "$T/raw.bin"
    assert_output "in the clear"
}

@test "a literal connect fails closed when other threads resolved two names for the address" {
    # a wildcard rule: each name would be verified as itself
    private_hosts "127.0.0.1 localhost" "127.0.0.1 one.test" "127.0.0.1 two.test"
    rule "*.test:$PORT" "handshake_timeout = 2"
    sink
    run in_hosts env LD_PRELOAD="$SHIM_PRELOAD" "$PROGS/ambiguous" 127.0.0.1 "$PORT" one.test two.test < "$MSG"
    assert_failure 3
    assert_output --partial "ambiguous: connect: Permission denied errno=EACCES"
    assert_output --partial "connect 127.0.0.1:$PORT refused: ambiguous name"
    sleep 0.3
    [ ! -s "$T/raw.bin" ]
    [ ! -s "$T/sink.json" ]
}

@test "names recorded by gethostbyname_r in other threads make a literal connect ambiguous too" {
    private_hosts "127.0.0.1 localhost" "127.0.0.1 one.test" "127.0.0.1 two.test"
    rule "*.test:$PORT" "handshake_timeout = 2"
    sink
    run in_hosts env LD_PRELOAD="$SHIM_PRELOAD" "$PROGS/ambiguous" -g 127.0.0.1 "$PORT" one.test two.test < "$MSG"
    assert_failure 3
    assert_output --partial "errno=EACCES"
    assert_output --partial "refused: ambiguous name"
}

@test "the connecting thread's own lookup wins over names other threads resolved" {
    private_hosts "127.0.0.1 localhost" "127.0.0.1 alias.test"
    rule "localhost:$PORT"
    echo_server
    run in_hosts env TLSSHIM_DEBUG=1 LD_PRELOAD="$SHIM_PRELOAD" "$PROGS/ambiguous" -c localhost 127.0.0.1 "$PORT" localhost alias.test < "$MSG"
    assert_success
    refute_output --partial "ambiguous name"
    assert_output --partial "info: connect localhost:$PORT (127.0.0.1) rule=lab tls=TLSv1.3"
    assert_equal "$(json_field "$T/info.json" 1 sni)" localhost
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$MSG")"
}

@test "a name another thread resolved names a literal connect" {
    private_hosts "127.0.0.1 localhost" "127.0.0.1 good.test"
    # a wildcard rule is never resolved by tlsshim, so only the other
    # thread's lookup can make it match
    rule "*.test:$PORT"
    echo_server
    run in_hosts env TLSSHIM_DEBUG=1 LD_PRELOAD="$SHIM_PRELOAD" "$PROGS/ambiguous" 127.0.0.1 "$PORT" good.test < "$MSG"
    assert_success
    refute_output --partial "ambiguous name"
    assert_output --partial "info: connect good.test:$PORT (127.0.0.1) rule=lab tls=TLSv1.3"
    assert_equal "$(json_field "$T/info.json" 1 sni)" good.test
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$MSG")"
}

@test "names that select the same rule and verification name are not ambiguous" {
    private_hosts "127.0.0.1 localhost" "127.0.0.1 alias.test"
    rule "localhost:$PORT alias.test:$PORT" "verifycn_name = localhost"
    echo_server
    run in_hosts env LD_PRELOAD="$SHIM_PRELOAD" "$PROGS/ambiguous" 127.0.0.1 "$PORT" localhost alias.test < "$MSG"
    assert_success
    refute_output --partial "ambiguous name"
    assert_equal "$(json_field "$T/info.json" 1 sni)" localhost
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$MSG")"
}

# --- IPv6 ------------------------------------------------------------------------

@test "a literal ::1 is verified against the certificate's IP SAN and sends no SNI" {
    policy
    echo_server ipsan --host ::1
    run bash -c "TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient ::1 $PORT < $MSG > $T/out.bin"
    assert_success
    assert_output --partial "info: connect [::1]:$PORT rule=lab tls=TLSv1.3"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$MSG")"
    assert_equal "$(json_field "$T/info.json" 1 sni)" null
}

@test "a rule for [::1]:PORT matches ::1 and leaves 127.0.0.1 on the same port alone" {
    rule "[::1]:$PORT"
    echo_server good --host ::1
    sink 127.0.0.1
    run bash -c "TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient ::1 $PORT < $MSG > $T/out.bin"
    assert_success
    assert_output --partial "info: connect [::1]:$PORT rule=lab tls=TLSv1.3"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$MSG")"
    run bash -c "printf 'plain over four\n' | TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT"
    assert_success
    refute_output --partial "rule=lab"
    wait_file "$T/raw.bin"
    run cat "$T/raw.bin"
    assert_output "plain over four"
}

@test "an IPv4-mapped IPv6 destination is matched by the IPv4 rule" {
    rule "127.0.0.1:$PORT" "handshake_timeout = 1"
    sink
    printf 'SECRET-PAYLOAD\n' > "$T/secret"
    # an AF_INET6 socket connecting to ::ffff:127.0.0.1, as dual-stack
    # programs do
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/ambiguous ::ffff:127.0.0.1 $PORT < $T/secret"
    assert_failure 3
    assert_output --partial "errno=ETIMEDOUT"
    assert_output --partial "rule=lab: TLS handshake timed out"
    wait_file "$T/raw.bin"
    assert_equal "$(first_byte "$T/raw.bin")" 16
    run grep -c SECRET-PAYLOAD "$T/raw.bin"
    assert_output 0
}

# --- non-blocking connects that fail (SPEC section 5) ----------------------------------

@test "the non-blocking client gets ECONNREFUSED from a wrong-host server with poll, select and epoll" {
    policy
    echo_server wronghost
    for mode in "" -s -e; do
        run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/nbclient $mode localhost $PORT < $MSG"
        assert_failure 3
        assert_output --partial "nbclient: connect: Connection refused errno=ECONNREFUSED"
        assert_output --partial "hostname mismatch (wanted localhost"
    done
    [ ! -s "$T/rec.bin" ]
}

@test "a failed non-blocking handshake shows as EINPROGRESS, then POLLOUT|POLLERR and SO_ERROR ECONNREFUSED" {
    policy
    echo_server wronghost
    for mode in "" -s -e; do
        run --separate-stderr bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/nbconnect $mode localhost $PORT"
        assert_failure 3
        assert_line --index 0 "connect: errno=EINPROGRESS"
        assert_line --index 1 --regexp '^ready:.* OUT'
        if [ "$mode" != -s ]; then
            assert_line --index 1 --regexp '^ready:.* ERR'
        fi
        assert_line "so_error: ECONNREFUSED"
        assert_line "so_error again: 0"
        assert_line "read: errno=ECONNRESET"
        assert_line "write: errno=ECONNRESET"
        [[ $stderr == *"hostname mismatch (wanted localhost"* ]]
    done
    [ ! -s "$T/rec.bin" ]
}

@test "the non-blocking client gets ETIMEDOUT from a silent server with poll, select and epoll" {
    policy "handshake_timeout = 1"
    sink
    for mode in "" -s -e; do
        start=$(date +%s)
        run bash -c "printf x | LD_PRELOAD=$SHIM_PRELOAD $PROGS/nbclient $mode 127.0.0.1 $PORT"
        assert_failure 3
        assert_output --partial "nbclient: connect: Connection timed out errno=ETIMEDOUT"
        assert_output --partial "TLS handshake timed out after 1 s"
        [ $(( $(date +%s) - start )) -lt 6 ]
    done
}

@test "a silent server makes the readiness call return at the handshake timeout with SO_ERROR ETIMEDOUT" {
    policy "handshake_timeout = 1"
    sink
    for mode in "" -s -e; do
        run --separate-stderr bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/nbconnect $mode 127.0.0.1 $PORT"
        assert_failure 3
        assert_line --index 0 "connect: errno=EINPROGRESS"
        assert_line --index 1 --regexp '^ready:.* OUT'
        assert_line "so_error: ETIMEDOUT"
        assert_line "so_error again: 0"
        ms=$(sed -n 's/^wait_ms: //p' <<<"$output")
        [ "$ms" -ge 900 ] && [ "$ms" -lt 5000 ]
    done
}

# --- I/O entry points -----------------------------------------------------------

@test "every read and write entry point carries plaintext, fortified ones included" {
    # the fortified variants are what -O2 -D_FORTIFY_SOURCE=2 binaries call
    run nm -D --undefined-only "$PROGS/ioapi"
    assert_output --partial "__read_chk"
    assert_output --partial "__recv_chk"
    assert_output --partial "__recvfrom_chk"
    policy
    echo_server
    run bash -c "TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD $PROGS/ioapi localhost $PORT"
    assert_success
    for step in write/read send/recv sendto/recvfrom writev/readv sendmsg/recvmsg \
        peek waitall fionread fcntl nonblock dup; do
        assert_line "ok $step"
    done
    # the program sees its blocking socket; tlsshim made the real one
    # non-blocking, and F_GETFL hides that
    assert_line "real O_NONBLOCK: yes"
    assert_output --partial "info: connect localhost:$PORT (127.0.0.1) rule=lab tls=TLSv1.3"
    wait_file "$T/info.json"
    # 3000+20000+20000+25100+25100+1000+50000+10+2000+30000 bytes
    assert_equal "$(json_field "$T/info.json" 1 bytes_in)" 176210
    assert_equal "$(json_field "$T/info.json" 1 bytes_out)" 176210
    # closing the original after dup() did not end the stream; closing
    # the duplicate did, with close_notify
    assert_equal "$(json_field "$T/info.json" 1 end)" close_notify
}

# --- large payloads -----------------------------------------------------------------

@test "32 MiB each way through the non-blocking client arrive intact" {
    policy
    echo_server
    head -c 32M /dev/urandom > "$T/big.bin"
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/nbclient -w 120 127.0.0.1 $PORT < $T/big.bin > $T/out.bin"
    assert_success
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/big.bin")"
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$T/big.bin")"
    assert_equal "$(json_field "$T/info.json" 1 end)" close_notify
}

@test "32 MiB each way through the threaded blocking client arrive intact" {
    policy
    echo_server
    head -c 32M /dev/urandom > "$T/big.bin"
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient -t -w 120 127.0.0.1 $PORT < $T/big.bin > $T/out.bin"
    assert_success
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/big.bin")"
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$T/big.bin")"
    assert_equal "$(json_field "$T/info.json" 1 end)" close_notify
}

# --- socket timeouts ---------------------------------------------------------------

@test "SO_RCVTIMEO bounds a blocking read on a TLS socket and the connection stays usable" {
    policy
    echo_server
    for before in "" -b; do
        run --separate-stderr bash -c "TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD $PROGS/rcvtimeo $before 127.0.0.1 $PORT 1000"
        assert_success
        assert_line --index 0 --regexp '^read: errno=EAGAIN elapsed_ms=[0-9]+$'
        ms=$(sed -n 's/^read: errno=EAGAIN elapsed_ms=//p' <<<"$output")
        [ "$ms" -ge 900 ] && [ "$ms" -lt 5000 ]
        assert_line --index 1 "echo: still alive"
        [[ $stderr == *"rule=lab tls=TLSv1.3"* ]]
    done
}

# --- sessions ------------------------------------------------------------------------

@test "a session made under a literal-address rule is not resumed under a name rule for the same server" {
    {
        echo "[byname]"
        echo "connect = localhost:$PORT"
        echo "ca_file = $PKI/ca.pem"
        echo "[byaddr]"
        echo "connect = 127.0.0.1:$PORT"
        echo "ca_file = $PKI/ca.pem"
    } > "$T/policy.conf"
    chmod 600 "$T/policy.conf"
    export TLSSHIM_CONF="$T/policy.conf"
    echo_server
    # first the literal (no lookup yet, so rule byaddr), then the name
    # twice (rule byname): only the third connection may resume
    run bash -c "TLSSHIM_DEBUG=1 LD_PRELOAD=$SHIM_PRELOAD $PYTHON -c \"
import socket
for host in ('127.0.0.1', 'localhost', 'localhost'):
    s = socket.create_connection((host, $PORT))
    s.sendall(b'to %s\\n' % host.encode())
    print(s.recv(100).decode().strip())
    s.close()
\" 2> $T/log"
    assert_success
    assert_output "to 127.0.0.1
to localhost
to localhost"
    mapfile -t conns < <(grep 'info: connect' "$T/log")
    assert_equal "${#conns[@]}" 3
    [[ ${conns[0]} == *"connect 127.0.0.1:$PORT rule=byaddr tls=TLSv1.3"*"resumed=no"* ]]
    [[ ${conns[1]} == *"connect localhost:$PORT (127.0.0.1) rule=byname tls=TLSv1.3"*"resumed=no"* ]]
    [[ ${conns[2]} == *"rule=byname"*"resumed=yes"* ]]
    assert_equal "$(json_field "$T/info.json" 1 session_reused)" false
    assert_equal "$(json_field "$T/info.json" 2 session_reused)" false
    assert_equal "$(json_field "$T/info.json" 3 session_reused)" true
}

@test "two name rules for the same server never resume each other's sessions" {
    private_hosts "127.0.0.1 localhost" "127.0.0.1 good.test"
    {
        echo "[one]"
        echo "connect = localhost:$PORT"
        echo "ca_file = $PKI/ca.pem"
        echo "[two]"
        echo "connect = good.test:$PORT"
        echo "ca_file = $PKI/ca.pem"
    } > "$T/policy.conf"
    chmod 600 "$T/policy.conf"
    export TLSSHIM_CONF="$T/policy.conf"
    echo_server
    run in_hosts env TLSSHIM_DEBUG=1 TLSSHIM_LOG="$T/log" LD_PRELOAD="$SHIM_PRELOAD" "$PYTHON" -c "
import socket
for host in ('localhost', 'good.test', 'localhost', 'good.test'):
    s = socket.create_connection((host, $PORT))
    s.sendall(b'to %s\n' % host.encode())
    print(s.recv(100).decode().strip())
    s.close()
"
    assert_success
    mapfile -t conns < <(grep 'info: connect' "$T/log")
    assert_equal "${#conns[@]}" 4
    [[ ${conns[0]} == *"connect localhost:$PORT (127.0.0.1) rule=one "*"resumed=no"* ]]
    [[ ${conns[1]} == *"connect good.test:$PORT (127.0.0.1) rule=two "*"resumed=no"* ]]
    [[ ${conns[2]} == *"rule=one "*"resumed=yes"* ]]
    [[ ${conns[3]} == *"rule=two "*"resumed=yes"* ]]
    run grep -c '"session_reused": false' "$T/info.json"
    assert_output 2
    assert_equal "$(json_field "$T/info.json" 1 sni)" localhost
    assert_equal "$(json_field "$T/info.json" 2 sni)" good.test
}
