#!/usr/bin/env bats
# starttls (SPEC sections 3, 4, 5 and 8): tlsshim performs the protocol's
# upgrade dialogue itself, verifies the handshake, and gives the program a
# fresh plaintext stream (a greeting made locally where the server speaks
# first) on which nothing received before the handshake ever appears.
#
# The server is tests/peers/starttls_server.py: it records every byte it
# got before and after the handshake, so each test checks what the server
# saw of the program, not only what the program printed.  The program is
# tests/peers/proto_client.py (a naive plaintext client of each protocol,
# blocking or asyncio) or curl.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
}

teardown() {
    common_teardown
}

# policy PROTO [LINE...]: a client rule for 127.0.0.1:$PORT with starttls
policy() {
    local proto=$1 line
    shift
    {
        echo "[stls]"
        echo "connect = 127.0.0.1:$PORT"
        echo "starttls = $proto"
        echo "ca_file = $PKI/ca.pem"
        for line in "$@"; do echo "$line"; done
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
}

# server PROTO MODE [ARGS...]: start starttls_server.py on $PORT, record
# in $T/srv.json, and wait until it is listening
server() {
    local proto=$1 mode=$2 pid i
    shift 2
    start_bg srv "$PYTHON" "$PEERS/starttls_server.py" --proto "$proto" \
        --mode "$mode" --port "$PORT" --cert "$PKI/good.chain.pem" \
        --key "$PKI/good.key" --record "$T/srv.json" "$@"
    pid=$(<"$T/srv.pid")
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        grep -q '^READY' "$T/srv.log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "server: not READY:" >&2
    cat "$T/srv.log" >&2
    return 1
}

# under_shim CMD...: run CMD with the shim, the policy, a log and a report
under_shim() {
    TLSSHIM_CONF=$T/policy.conf TLSSHIM_LOG=$T/shim.log TLSSHIM_DEBUG=1 \
        TLSSHIM_REPORT=$T/report.jsonl shim_run timeout 30 "$@"
}

# client PROTO [ARGS...]: the plaintext client of PROTO through the shim
client() {
    local proto=$1
    shift
    under_shim "$PYTHON" "$PEERS/proto_client.py" --proto "$proto" \
        --port "$PORT" "$@"
}

# record_has EXPR: the Python expression EXPR holds for r, the server's
# record of its (last) connection
record_has() {
    wait_file "$T/srv.json" || return 1
    "$PYTHON" - "$T/srv.json" "$1" <<'EOF'
import json, sys
path, expr = sys.argv[1], sys.argv[2]
r = json.loads(open(path).read().splitlines()[-1])
if not eval(expr, {"r": r}):
    sys.exit("record_has: %s\n  is false for %s" % (expr, json.dumps(r)))
EOF
}

# What tlsshim itself sends before the handshake, per protocol (as the
# server's record shows it: latin-1 text in Python syntax).
declare -gA DIALOGUE=(
    [smtp]='"EHLO [127.0.0.1]\r\nSTARTTLS\r\n"'
    [imap]='"T1 CAPABILITY\r\nT2 STARTTLS\r\n"'
    [pop3]='"STLS\r\n"'
    [ftp]='"AUTH TLS\r\n"'
    [nntp]='"STARTTLS\r\n"'
    [ldap]='"0\x1d\x02\x01\x01w\x18\x80\x161.3.6.1.4.1.1466.20037"'
    [xmpp]='"<?xml version='"'"'1.0'"'"'?><stream:stream to='"'"'127.0.0.1'"'"' version='"'"'1.0'"'"' xmlns='"'"'jabber:client'"'"' xmlns:stream='"'"'http://etherx.jabber.org/streams'"'"'><starttls xmlns='"'"'urn:ietf:params:xml:ns:xmpp-tls'"'"'/>"'
    [postgres]='"\x00\x00\x00\x08\x04\xd2\x16/"'
    # the SSLRequest: the first 32 bytes of the program's login, CLIENT_SSL
    # added to its capability flags 0x0008a209
    [mysql]='" \x00\x00\x01\t\xaa\x08\x00\x00\x00\x00\x01!" + "\x00" * 23'
)

# ...and what it asks when the server offers no STARTTLS.
declare -gA PROBE=(
    [smtp]='"EHLO [127.0.0.1]\r\n"'
    [imap]='"T1 CAPABILITY\r\n"'
    [xmpp]='"<?xml version='"'"'1.0'"'"'?><stream:stream to='"'"'127.0.0.1'"'"' version='"'"'1.0'"'"' xmlns='"'"'jabber:client'"'"' xmlns:stream='"'"'http://etherx.jabber.org/streams'"'"'>"'
    [mysql]='""'
)

# The program's first words over TLS (for ftp, after tlsshim's PBSZ/PROT).
declare -gA FIRST=(
    [smtp]='"EHLO program.test\r\n"'
    [imap]='"a1 CAPABILITY\r\n"'
    [pop3]='"USER user\r\n"'
    [ftp]='"PBSZ 0\r\nPROT P\r\nUSER anonymous\r\n"'
    [nntp]='"CAPABILITIES\r\n"'
    [ldap]='"0\x19\x02\x01\x01`\x14\x02\x01\x03\x04\x07cn=test"'
    [xmpp]='"<?xml version='"'"'1.0'"'"'?><stream:stream to='"'"'localhost'"'"'"'
    [postgres]='"\x00\x00\x00!\x00\x03\x00\x00user\x00test"'
    # its login, numbered 2 after the SSLRequest, with CLIENT_SSL
    [mysql]='"U\x00\x00\x02\t\xaa\x08\x00"'
)

# The first thing the program is shown.
declare -gA SHOWN=(
    [smtp]='S: 220 [127.0.0.1] ESMTP ready (TLS by tlsshim)'
    [imap]='S: * OK [127.0.0.1] ready (TLS by tlsshim)'
    [pop3]='S: +OK [127.0.0.1] ready (TLS by tlsshim)'
    [ftp]='S: 220 [127.0.0.1] ready (TLS by tlsshim)'
    [nntp]='S: 200 [127.0.0.1] ready (TLS by tlsshim)'
    [ldap]='S: ldap message id=1 op=0x61 result=0'
    [xmpp]="S: <?xml version='1.0'?><stream:stream from='real.server' "
    [postgres]='S: R'
    [mysql]='S: greeting seq=0 version=5.5.5-10.11.0-MariaDB-fake ssl=no'
)

# upgrade PROTO [CLIENT ARGS...]: the whole happy path of one protocol;
# what the program printed is left in $T/client.out
upgrade() {
    local proto=$1
    shift
    server "$proto" normal
    policy "$proto"
    run client "$proto" "$@"
    printf '%s\n' "$output" >"$T/client.out"
    assert_success
    assert_line --index 0 --partial "${SHOWN[$proto]}"
    refute_output --partial "real.server ESMTP"
    refute_output --partial "real.server IMAP"
    refute_output --partial "real.server POP3"
    refute_output --partial "real.server NNTP"
    refute_output --partial "STARTTLS"
    refute_output --partial "starttls"
    record_has "r['tls'] and r['version'] == 'TLSv1.3' and r['error'] is None"
    # the server saw only tlsshim's dialogue in plaintext, and the
    # program's own words only over TLS
    record_has "r['pre'] == ${DIALOGUE[$proto]}"
    record_has "r['post'].startswith(${FIRST[$proto]})"
    run json_field "$T/report.jsonl" -1 starttls
    assert_output "$proto"
    run json_field "$T/report.jsonl" -1 outcome
    assert_output ok
    run json_field "$T/report.jsonl" -1 version
    assert_output TLSv1.3
    run json_field "$T/report.jsonl" -1 verify
    assert_output ok
    run grep -c "info: connect 127.0.0.1:$PORT rule=stls starttls=$proto tls=TLSv1.3 .* verify=ok" "$T/shim.log"
    assert_output 1
}

# injected PROTO: the go-ahead comes with more bytes in the same segment
injected() {
    local proto=$1
    server "$proto" inject
    policy "$proto"
    run client "$proto"
    assert_equal "$status" 3
    assert_output "error ECONNREFUSED"
    record_has "r['pre'] == ${DIALOGUE[$proto]} and r['post'] == '' and not r['tls']"
    run grep -c "rule=stls: STARTTLS $proto: [0-9]* bytes came after the server's go-ahead, before the TLS handshake (injected?)" "$T/shim.log"
    assert_output 1
    run json_field "$T/report.jsonl" -1 outcome
    assert_output handshake_failed
    run json_field "$T/report.jsonl" -1 starttls
    assert_output "$proto"
}

# refused PROTO MODE: a server without STARTTLS (or refusing it) fails
# the connect, and has seen nothing but tlsshim's question
refused() {
    local proto=$1 mode=$2 pre
    server "$proto" "$mode"
    policy "$proto"
    run client "$proto"
    assert_equal "$status" 3
    assert_output "error ECONNREFUSED"
    if [[ $mode == nostarttls ]]; then
        pre=${PROBE[$proto]:-${DIALOGUE[$proto]}}
    else
        pre=${DIALOGUE[$proto]}
    fi
    record_has "r['pre'] == $pre and r['post'] == '' and not r['tls']"
    run grep -c "error: connect 127.0.0.1:$PORT rule=stls: STARTTLS $proto refused: " "$T/shim.log"
    assert_output 1
    run json_field "$T/report.jsonl" -1 outcome
    assert_output starttls_refused
    run json_field "$T/report.jsonl" -1 starttls
    assert_output "$proto"
    run json_field "$T/report.jsonl" -1 version
    assert_output null
}

# --- the upgrade, protocol by protocol ----------------------------------------

@test "smtp: the program gets a neutral greeting and its EHLO goes over verified TLS" {
    upgrade smtp
    # the message went through whole
    record_has "r['data_sha256'] == ['44723dd4d0e0d46a3c7fa8aca254b61c27b6b5789f96177e82c80700409f1535']"
}

@test "imap: the program gets a neutral greeting and its CAPABILITY goes over TLS" {
    upgrade imap
}

@test "pop3: the program gets a neutral +OK and its USER goes over TLS" {
    upgrade pop3
}

@test "ftp: tlsshim asks for PBSZ 0 and PROT P over TLS before the program's USER" {
    upgrade ftp
    record_has "r['post'] == 'PBSZ 0\r\nPROT P\r\nUSER anonymous\r\nPASS guest\r\nPWD\r\nQUIT\r\n'"
}

@test "nntp: the program gets a neutral 200 and its commands go over TLS" {
    upgrade nntp
}

@test "ldap: the StartTLS extended operation, then the program's bind over TLS" {
    upgrade ldap
}

@test "xmpp: <starttls/> after tlsshim's stream header; the program opens its stream over TLS" {
    upgrade xmpp
    # what the program read is the server's stream over TLS: no STARTTLS
    # feature in it, the features offered after TLS instead
    run cat "$T/client.out"
    assert_line --index 0 --partial "<mechanism>SCRAM-SHA-1</mechanism>"
}

@test "postgres: SSLRequest, then the program's startup message over TLS" {
    upgrade postgres
    run cat "$T/client.out"
    assert_line "S: D 1"
}

@test "mysql: the program sees the greeting without SSL, the SSLRequest carries its login's flags, the login goes over TLS numbered 2" {
    upgrade mysql
    # the program answered the greeting's scramble and the auth switch's
    # (the server checks both), and saw every id as it numbers them
    run cat "$T/client.out"
    assert_line --index 1 "S: auth switch seq=2"
    assert_line --index 2 "S: ok seq=4"
    assert_line --index 3 "S: row $(printf '%s' "SELECT 'tlsshim'" | sha256sum | cut -d' ' -f1)"
    # the server saw the SSLRequest as 1, the login as 2, the switch's
    # answer as 4, then the query and the quit as commands (0), and the
    # same capability flags in the SSLRequest and the login
    record_has "r['mysql']['seqs'] == [1, 2, 4, 0, 0] and r['mysql']['logged_in']"
    record_has "r['mysql']['ssl_caps'] == r['mysql']['login_caps'] == 0x0008aa09"
    record_has "r['mysql']['user'] == 'user' and r['mysql']['db'] == 'test'"
    record_has "'user' not in r['pre']"
}

@test "mysql: the program is given the greeting rebuilt from its parsed fields: filler and reserved bytes zeroed, bytes after the plugin name dropped" {
    server mysql odd_greeting
    # without tlsshim the program sees the odd bytes as the server sent them
    run timeout 30 "$PYTHON" "$PEERS/proto_client.py" --proto mysql \
        --port "$PORT" --greeting-hex
    assert_success
    local raw=$(sed -n 's/^S: greeting hex //p' <<<"$output")
    [[ $raw == *"$(printf ODDODD | od -An -tx1 | tr -d ' \n')"* ]]
    [[ $raw == *"$(printf TRAILING | od -An -tx1 | tr -d ' \n')" ]]
    # what tlsshim must give instead: the same fields, filler and reserved
    # bytes zero, CLIENT_SSL cleared, nothing after the plugin's NUL
    local want=$("$PYTHON" -c '
import sys
g = bytearray.fromhex(sys.argv[1])
filler = g.index(0, 1) + 1 + 4 + 8
g[filler] = 0
g[filler + 2] &= ~0x08
g[filler + 9:filler + 15] = bytes(6)
print(bytes(g[:-len(b"TRAILING")]).hex())' "$raw")

    policy mysql
    run client mysql --greeting-hex
    assert_success
    assert_line --index 0 "S: greeting seq=0 version=5.5.5-10.11.0-MariaDB-fake ssl=no"
    assert_line --index 1 "S: greeting hex $want"
    assert_line "S: row $(printf '%s' "SELECT 'tlsshim'" | sha256sum | cut -d' ' -f1)"
    record_has "r['tls'] and r['mysql']['logged_in'] and 'user' not in r['pre']"
}

@test "mysql: a login written in pieces is sent whole, once, over TLS" {
    server mysql normal
    policy mysql
    run client mysql --split-login
    assert_success
    assert_line --index 2 "S: ok seq=4"
    record_has "r['tls'] and r['pre'] == ${DIALOGUE[mysql]} and r['post'].startswith(${FIRST[mysql]})"
    record_has "r['mysql']['seqs'] == [1, 2, 4, 0, 0] and r['mysql']['logged_in']"
}

@test "curl smtp:// sends a message through the upgraded connection, checksum intact" {
    server smtp normal
    policy smtp
    head -c 6000 /dev/urandom | base64 -w 76 | sed 's/$/\r/' >"$T/payload"
    run under_shim curl -sS "smtp://127.0.0.1:$PORT" --mail-from a@program.test \
        --mail-rcpt b@real.server -T "$T/payload"
    assert_success
    record_has "r['tls'] and r['pre'] == ${DIALOGUE[smtp]}"
    record_has "r['post'].startswith('EHLO ')"
    record_has "r['data_sha256'] == ['$(sha_of "$T/payload")']"
    run json_field "$T/report.jsonl" -1 outcome
    assert_output ok
}

@test "curl imap:// lists the mailbox over the upgraded connection" {
    server imap normal
    policy imap
    run under_shim curl -sS "imap://127.0.0.1:$PORT/" -u user:secret
    assert_success
    assert_equal "${output%$'\r'}" '* LIST (\HasNoChildren) "/" INBOX'
    record_has "r['tls'] and r['pre'] == ${DIALOGUE[imap]}"
    record_has "r['post'].startswith('A001 CAPABILITY\r\n') and 'LOGIN user secret' in r['post']"
}

@test "curl pop3:// retrieves a message over the upgraded connection" {
    server pop3 normal
    policy pop3
    run under_shim curl -sS "pop3://127.0.0.1:$PORT/1" -u user:secret
    assert_success
    assert_equal "${output%$'\r'}" hello
    record_has "r['tls'] and r['pre'] == 'STLS\r\n' and r['post'].startswith('CAPA\r\n')"
}

# --- injection ------------------------------------------------------------------

@test "smtp: a response injected after the 220 go-ahead fails the connection" {
    injected smtp
}

@test "imap: an untagged response injected after the OK fails the connection" {
    injected imap
}

@test "pop3: an answer injected after +OK fails the connection" {
    injected pop3
}

@test "ftp: a reply injected after 234 fails the connection" {
    injected ftp
}

@test "nntp: a reply injected after 382 fails the connection" {
    injected nntp
}

@test "ldap: a message injected after the StartTLS response fails the connection" {
    injected ldap
}

@test "xmpp: a stanza injected after <proceed/> fails the connection" {
    injected xmpp
}

@test "postgres: an AuthenticationOk injected after S fails the connection" {
    injected postgres
}

@test "mysql: an OK packet injected after the greeting fails the connect; nothing is sent" {
    server mysql inject
    policy mysql
    run client mysql
    assert_equal "$status" 3
    assert_output "error ECONNREFUSED"
    record_has "r['pre'] == '' and r['post'] == '' and not r['tls']"
    run grep -c "error: connect 127.0.0.1:$PORT rule=stls: STARTTLS mysql: 11 bytes came after the server's greeting, before the program's login (injected?)" "$T/shim.log"
    assert_output 1
    run json_field "$T/report.jsonl" -1 outcome
    assert_output handshake_failed
}

@test "mysql: bytes that come while the program prepares its login fail its write; nothing is sent" {
    # the server's OK comes 0.2 s after its greeting, the login after 1 s
    server mysql inject_late
    policy mysql
    run client mysql --delay 1
    assert_equal "$status" 4
    assert_line --index 0 "${SHOWN[mysql]}"
    assert_line --index 1 --partial "error [Errno 104] Connection reset by peer"
    record_has "r['pre'] == '' and r['post'] == '' and not r['tls']"
    run grep -c "rule=stls: STARTTLS mysql: 11 bytes came after the server's greeting, before the program's login (injected?)" "$T/shim.log"
    assert_output 1
    run json_field "$T/report.jsonl" -1 outcome
    assert_output handshake_failed
}

@test "mysql: bytes that come while the program waits to read before its login fail that read" {
    server mysql inject_late
    policy mysql
    run client mysql --read-early
    assert_equal "$status" 4
    assert_line --index 0 "${SHOWN[mysql]}"
    assert_line --index 1 --partial "error [Errno 104] Connection reset by peer"
    refute_output --partial "early"
    record_has "r['pre'] == '' and r['post'] == '' and not r['tls']"
    run grep -c "rule=stls: STARTTLS mysql: 11 bytes came after the server's greeting, before the program's login (injected?)" "$T/shim.log"
    assert_output 1
}

@test "smtp: bytes injected in a later segment break the handshake instead" {
    server smtp inject_late
    policy smtp
    run client smtp
    assert_equal "$status" 3
    assert_output "error ECONNREFUSED"
    record_has "r['pre'] == ${DIALOGUE[smtp]} and r['post'] == '' and not r['tls']"
    run grep -c "rule=stls: TLS handshake failed: " "$T/shim.log"
    assert_output 1
    run json_field "$T/report.jsonl" -1 outcome
    assert_output handshake_failed
}

# --- refusals --------------------------------------------------------------------

@test "smtp: a server that does not offer STARTTLS: ECONNREFUSED, nothing of the program sent" {
    refused smtp nostarttls
}

@test "smtp: a server that answers STARTTLS with 454: ECONNREFUSED" {
    refused smtp refuse
}

@test "imap: no STARTTLS capability, or a NO to STARTTLS: ECONNREFUSED" {
    refused imap nostarttls
    rm -f "$T/srv.json" "$T/shim.log" "$T/report.jsonl"
    common_teardown
    refused imap refuse
}

@test "pop3, ftp, nntp: the upgrade refused: ECONNREFUSED, nothing of the program sent" {
    local proto
    for proto in pop3 ftp nntp; do
        refused "$proto" refuse
        rm -f "$T/srv.json" "$T/shim.log" "$T/report.jsonl"
        common_teardown
    done
}

@test "ldap, xmpp, postgres: no STARTTLS: ECONNREFUSED, nothing of the program sent" {
    local proto
    for proto in ldap xmpp postgres; do
        refused "$proto" nostarttls
        rm -f "$T/srv.json" "$T/shim.log" "$T/report.jsonl"
        common_teardown
    done
}

@test "mysql: a greeting without CLIENT_SSL (a server without SSL, or a stripping man in the middle): ECONNREFUSED, nothing sent" {
    refused mysql nostarttls
    run grep -c "STARTTLS mysql refused: the server does not offer SSL (no CLIENT_SSL in its greeting's capability flags)" "$T/shim.log"
    assert_output 1
}

@test "xmpp: <failure/> to <starttls/>: ECONNREFUSED" {
    refused xmpp refuse
}

# --- starttls_required = no ---------------------------------------------------------

@test "starttls_required = no: smtp goes on in plaintext with the server's own greeting" {
    server smtp nostarttls
    policy smtp "starttls_required = no"
    run client smtp
    assert_success
    assert_line --index 0 "S: 220 real.server ESMTP FakeMail"
    assert_line --index 1 "S: 250-real.server"
    # the program's EHLO follows tlsshim's on the same plaintext stream
    record_has "not r['tls'] and r['pre'].startswith('EHLO [127.0.0.1]\r\nEHLO program.test\r\nMAIL FROM:')"
    record_has "r['data_sha256'] == ['44723dd4d0e0d46a3c7fa8aca254b61c27b6b5789f96177e82c80700409f1535']"
    run grep -c "warning: connect 127.0.0.1:$PORT rule=stls starttls=smtp: the server does not offer STARTTLS (not in its EHLO answer); going on in plaintext (starttls_required = no)" "$T/shim.log"
    assert_output 1
    run json_field "$T/report.jsonl" -1 outcome
    assert_output ok
    run json_field "$T/report.jsonl" -1 starttls
    assert_output smtp
    run json_field "$T/report.jsonl" -1 version
    assert_output null
}

@test "starttls_required = no: imap, pop3, ftp, nntp, ldap, postgres go on in plaintext" {
    local proto
    declare -A real=(
        [imap]='S: * OK [CAPABILITY IMAP4rev1 STARTTLS] real.server IMAP ready'
        [pop3]='S: +OK real.server POP3 ready <1896.697170952@real.server>'
        [ftp]='S: 220-real.server FTP'
        [nntp]='S: 200 real.server NNTP ready'
        [ldap]='S: ldap message id=1 op=0x61 result=0'
        [postgres]='S: R'
    )
    for proto in imap pop3 ftp nntp ldap postgres; do
        server "$proto" refuse
        policy "$proto" "starttls_required = no"
        run client "$proto"
        assert_success
        assert_line --index 0 "${real[$proto]}"
        record_has "not r['tls'] and r['pre'].startswith(${DIALOGUE[$proto]}) and r['error'] is None"
        run json_field "$T/report.jsonl" -1 outcome
        assert_output ok
        rm -f "$T/srv.json" "$T/shim.log" "$T/report.jsonl"
        common_teardown
    done
}

@test "starttls_required = no: mysql goes on in plaintext with the server's own greeting and ids" {
    server mysql nostarttls
    policy mysql "starttls_required = no"
    run client mysql
    assert_success
    assert_line --index 0 "${SHOWN[mysql]}"
    assert_line --index 1 "S: auth switch seq=2"
    assert_line --index 2 "S: ok seq=4"
    # the login as the program numbered it, nothing of tlsshim's before it
    record_has "not r['tls'] and r['pre'].startswith('U\x00\x00\x01\t\xa2') and r['error'] is None"
    record_has "r['mysql']['seqs'] == [1, 3, 0, 0] and r['mysql']['logged_in']"
    run grep -c "warning: connect 127.0.0.1:$PORT rule=stls starttls=mysql: the server does not offer SSL (no CLIENT_SSL in its greeting's capability flags); going on in plaintext (starttls_required = no)" "$T/shim.log"
    assert_output 1
    run json_field "$T/report.jsonl" -1 outcome
    assert_output ok
}

@test "starttls_required = no does not apply to a server that offers STARTTLS" {
    server smtp normal
    policy smtp "starttls_required = no"
    run client smtp
    assert_success
    assert_line --index 0 "${SHOWN[smtp]}"
    record_has "r['tls'] and r['pre'] == ${DIALOGUE[smtp]}"
}

# --- non-blocking programs --------------------------------------------------------

@test "an asyncio client (non-blocking connect, epoll) gets the upgrade" {
    local proto
    for proto in smtp postgres mysql; do
        server "$proto" normal
        policy "$proto"
        run client "$proto" --async
        assert_success
        assert_line --index 0 --partial "${SHOWN[$proto]}"
        record_has "r['tls'] and r['pre'] == ${DIALOGUE[$proto]}"
        record_has "r['post'].startswith(${FIRST[$proto]})"
        run json_field "$T/report.jsonl" -1 starttls
        assert_output "$proto"
        rm -f "$T/srv.json" "$T/shim.log" "$T/report.jsonl"
        common_teardown
    done
}

@test "an asyncio client sees a refused STARTTLS as ECONNREFUSED (SO_ERROR)" {
    server smtp nostarttls
    policy smtp
    run client smtp --async
    assert_equal "$status" 3
    assert_output "error ECONNREFUSED"
    record_has "r['pre'] == ${PROBE[smtp]} and r['post'] == ''"
}

@test "an asyncio client goes on in plaintext with starttls_required = no" {
    server postgres nostarttls
    policy postgres "starttls_required = no"
    run client postgres --async
    assert_success
    assert_line "S: D 1"
    record_has "not r['tls'] and r['pre'].startswith(${DIALOGUE[postgres]} + '\x00\x00\x00!')"
}

# --- timeouts, verification, policy ---------------------------------------------

@test "handshake_timeout covers the dialogue: a silent server gives ETIMEDOUT" {
    server smtp stall
    policy smtp "handshake_timeout = 1"
    local start=$SECONDS
    run client smtp
    assert_equal "$status" 3
    assert_output "error ETIMEDOUT"
    ((SECONDS - start < 10))
    run grep -c "STARTTLS smtp dialogue timed out after 1 s" "$T/shim.log"
    assert_output 1
    run json_field "$T/report.jsonl" -1 outcome
    assert_output timeout
}

@test "mysql: handshake_timeout runs from the program's login, not while it thinks" {
    server mysql normal
    policy mysql "handshake_timeout = 1"
    run client mysql --delay 2
    assert_success
    assert_line --index 2 "S: ok seq=4"
    common_teardown
    rm -f "$T/srv.json" "$T/shim.log" "$T/report.jsonl"
    # a server that takes the SSLRequest and never starts TLS
    server mysql stall
    local start=$SECONDS
    run client mysql
    assert_equal "$status" 4
    assert_line --index 1 --partial "error [Errno 104] Connection reset by peer"
    ((SECONDS - start < 10))
    run grep -c "TLS handshake timed out after 1 s" "$T/shim.log"
    assert_output 1
    run json_field "$T/report.jsonl" -1 outcome
    assert_output timeout
}

@test "mysql: a certificate for another name fails the login's write; the login never leaves" {
    start_bg srv "$PYTHON" "$PEERS/starttls_server.py" --proto mysql \
        --port "$PORT" --cert "$PKI/wronghost.chain.pem" \
        --key "$PKI/wronghost.key" --record "$T/srv.json"
    wait_port "$PORT" 127.0.0.1
    policy mysql
    run client mysql
    assert_equal "$status" 4
    assert_line --index 0 "${SHOWN[mysql]}"
    assert_line --index 1 --partial "error [Errno 104] Connection reset by peer"
    run grep -c "certificate verify failed: hostname mismatch (wanted 127.0.0.1" "$T/shim.log"
    assert_output 1
    run json_field "$T/report.jsonl" -1 outcome
    assert_output verify_failed
    record_has "r['pre'] == ${DIALOGUE[mysql]} and r['post'] == '' and r['mysql']['user'] is None"
}

@test "after the upgrade the certificate is verified: a wrong name fails closed" {
    start_bg srv "$PYTHON" "$PEERS/starttls_server.py" --proto smtp \
        --port "$PORT" --cert "$PKI/wronghost.chain.pem" \
        --key "$PKI/wronghost.key" --record "$T/srv.json"
    wait_port "$PORT" 127.0.0.1
    policy smtp
    run client smtp
    assert_equal "$status" 3
    assert_output "error ECONNREFUSED"
    run grep -c "certificate verify failed: hostname mismatch (wanted 127.0.0.1" "$T/shim.log"
    assert_output 1
    run json_field "$T/report.jsonl" -1 outcome
    assert_output verify_failed
    record_has "r['pre'] == ${DIALOGUE[smtp]} and r['post'] == ''"
}

@test "the default verifycn_scheme is the protocol's: smtp refuses a partial wildcard that default accepts" {
    # a leaf for mx*.example.test, signed by the test intermediate
    printf '[l]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\nsubjectAltName = DNS:mx*.example.test\n' >"$T/ext.cnf"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/mx.key" 2>/dev/null
    openssl req -new -key "$T/mx.key" -subj "/CN=mx.example.test" -out "$T/mx.csr"
    openssl x509 -req -in "$T/mx.csr" -CA "$PKI/inter.pem" -CAkey "$PKI/inter.key" \
        -set_serial 0x$(openssl rand -hex 8) -days 2 -sha256 -extfile "$T/ext.cnf" \
        -extensions l -out "$T/mx.pem" 2>/dev/null
    cat "$T/mx.pem" "$PKI/inter.pem" >"$T/mx.chain.pem"
    start_bg srv "$PYTHON" "$PEERS/starttls_server.py" --proto smtp \
        --port "$PORT" --cert "$T/mx.chain.pem" --key "$T/mx.key"
    wait_port "$PORT" 127.0.0.1
    policy smtp "verifycn_name = mx1.example.test"
    run client smtp
    assert_output "error ECONNREFUSED"
    run grep -c "hostname mismatch (wanted mx1.example.test" "$T/shim.log"
    assert_output 1
    policy smtp "verifycn_name = mx1.example.test" "verifycn_scheme = default"
    run client smtp
    assert_success
    assert_line --index 0 "S: 220 mx1.example.test ESMTP ready (TLS by tlsshim)"
}

@test "starttls is refused where it is not built: listen rules beyond smtp/imap/pop3 (mysql too), xmpp without STARTTLS" {
    local proto
    for proto in nntp mysql; do
        printf '[s]\nlisten = 127.0.0.1:%s\ncert_file = %s\nkey_file = %s\nstarttls = %s\n' \
            "$PORT" "$PKI/good.pem" "$PKI/good.key" "$proto" >"$T/policy.conf"
        chmod 600 "$T/policy.conf"
        run "$TLSSHIM" --check -f "$T/policy.conf"
        assert_equal "$status" 2
        assert_output --partial "policy.conf:5: starttls = $proto on listen rules is not supported (tlsshim offers STARTTLS to clients for smtp, imap and pop3), and [s] is a listen rule"
    done
    # on a client rule mysql is built
    policy mysql
    run "$TLSSHIM" --check -f "$T/policy.conf"
    assert_success
    assert_output --partial "starttls = mysql"
    policy xmpp "starttls_required = no"
    run "$TLSSHIM" --check -f "$T/policy.conf"
    assert_equal "$status" 2
    assert_output --partial "starttls_required = no is not possible with starttls = xmpp"
    policy smtp "action = auto"
    run "$TLSSHIM" --check -f "$T/policy.conf"
    assert_equal "$status" 2
    assert_output --partial "starttls needs action tls (it is auto in [stls])"
    policy smtp
    run "$TLSSHIM" --check -f "$T/policy.conf"
    assert_success
    assert_output --partial "starttls = smtp"
}
