#!/usr/bin/env bats
# starttls on listen rules (SPEC section 4): a plain SMTP, IMAP or POP3
# server gets STARTTLS without knowing it.  tlsshim adds STARTTLS to the
# capability lists the program sends, answers the client's STARTTLS (STLS)
# itself, runs the TLS handshake, and hands the program the rest of the
# session over TLS; with starttls_required it refuses what the protocol
# forbids before STARTTLS.
#
# The program is tests/peers/plain_mail_server.py, which records every
# command line it received; the clients are tests/peers/line_client.py
# (scripted: it sends exactly what each test says), curl and openssl
# s_client.  Each test checks what the client got and what the program saw.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
}

teardown() {
    common_teardown
}

# spolicy PROTO [LINE...]: a listen rule [mail] for 127.0.0.1:$PORT
# offering STARTTLS for PROTO with the "good" certificate
spolicy() {
    local proto=$1 line
    shift
    {
        echo "[mail]"
        echo "listen = 127.0.0.1:$PORT"
        echo "cert_file = $PKI/good.chain.pem"
        echo "key_file = $PKI/good.key"
        echo "starttls = $proto"
        for line in "$@"; do echo "$line"; done
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
}

# serve PROTO [ARGS...]: plain_mail_server.py under tlsshim (-d 1, log in
# $T/shim.log, report in $T/report.jsonl), its record in $T/rec.json
serve() {
    local proto=$1 i pid
    shift
    rm -f "$T/srv.log"
    start_bg srv "$TLSSHIM" -f "$T/policy.conf" -d 1 -o "$T/shim.log" \
        -r "$T/report.jsonl" -- "$PYTHON" "$PEERS/plain_mail_server.py" \
        --proto "$proto" --port "$PORT" --record "$T/rec.json" "$@"
    pid=$(<"$T/srv.pid")
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        grep -q '^READY' "$T/srv.log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "serve: the server did not start:" >&2
    cat "$T/srv.log" >&2
    return 1
}

# talk STEP...: line_client.py against the server (see its steps)
talk() {
    timeout 30 "$PYTHON" "$PEERS/line_client.py" --port "$PORT" \
        --cafile "$PKI/ca.pem" "$@"
}

# lines_are PYLIST: the program received exactly these command lines
# (Python list syntax) on its last connection
lines_are() {
    wait_file "$T/rec.json" || return 1
    "$PYTHON" - "$T/rec.json" "$1" <<'EOF'
import ast, json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
want = ast.literal_eval(sys.argv[2])
if r["lines"] != want:
    sys.exit("the program received %r\n  expected %r" % (r["lines"], want))
EOF
}

# report_is KEY VALUE: the report's last line has KEY = VALUE
report_is() {
    local i
    # the program closes, then tlsshim writes the line
    for ((i = 0; i < 40; i++)); do
        [[ -s $T/report.jsonl ]] && break
        sleep 0.05
    done
    run json_field "$T/report.jsonl" -1 "$1"
    assert_output "$2"
}

# a message with a known checksum, for FETCH and RETR
make_message() {
    {
        printf 'Subject: starttls test\r\n\r\n'
        head -c 3000 /dev/urandom | base64 -w 76 | sed 's/$/\r/'
    } >"$T/message"
}

# --- SMTP ------------------------------------------------------------------

@test "smtp: EHLO lists STARTTLS, tlsshim answers 220, the program sees the next EHLO over TLS" {
    spolicy smtp
    serve smtp
    run talk '<' '>EHLO client.test\r\n' '<' '>STARTTLS\r\n' '<' tls \
        '>EHLO client.test\r\n' '<' '>QUIT\r\n' '<'
    assert_success
    assert_line --index 0 "S: 220 plain.server ESMTP PlainMail"
    assert_line --index 1 "S: 250-plain.server"
    assert_line --index 2 "S: 250-STARTTLS"
    assert_line --index 5 "S: 250 SIZE 10000000"
    assert_line --index 6 "S: 220 2.0.0 Ready to start TLS"
    assert_line --index 7 "TLS TLSv1.3"
    # over TLS the program's own list, without STARTTLS
    assert_line --index 8 "S: 250-plain.server"
    assert_line --index 9 "S: 250-PIPELINING"
    assert_line --index 12 "S: 221 2.0.0 bye"
    assert_equal "$(grep -c STARTTLS <<<"$output")" 1
    # the program never saw STARTTLS: its session simply goes on
    lines_are "['EHLO client.test\r\n', 'EHLO client.test\r\n', 'QUIT\r\n']"
    run grep -c "info: accept 127.0.0.1:$PORT from 127.0.0.1:[0-9]* rule=mail starttls=smtp tls=TLSv1.3 " "$T/shim.log"
    assert_output 1
    report_is role server
    report_is starttls smtp
    report_is version TLSv1.3
    report_is outcome ok
}

@test "smtp: a one-line EHLO answer goes on with STARTTLS as its last line" {
    spolicy smtp
    serve smtp --ehlo-single
    run talk '<' '>EHLO client.test\r\n' '<' '>QUIT\r\n' '<'
    assert_success
    assert_line --index 1 "S: 250-plain.server"
    assert_line --index 2 "S: 250 STARTTLS"
    assert_line --index 3 "S: 221 2.0.0 bye"
    # no STARTTLS: the session stayed plaintext, and the report says so
    report_is starttls smtp
    report_is version null
    report_is outcome ok
}

@test "curl smtp:// --ssl-reqd sends a message through the upgrade, checksum intact" {
    spolicy smtp
    serve smtp
    head -c 8000 /dev/urandom | base64 -w 76 | sed 's/$/\r/' >"$T/payload"
    run timeout 30 curl -sS --ssl-reqd --cacert "$PKI/ca.pem" \
        "smtp://localhost:$PORT" --mail-from a@client.test \
        --mail-rcpt b@plain.server -T "$T/payload"
    assert_success
    wait_file "$T/rec.json"
    run "$PYTHON" -c 'import json,sys; r = json.loads(open(sys.argv[1]).read().splitlines()[-1]); print(r["data_sha256"]); print(r["lines"][0].split()[0], r["lines"][1].split()[0], r["lines"][2].split()[0]); print(any("STARTTLS" in l for l in r["lines"]))' "$T/rec.json"
    assert_line --index 0 "['$(sha_of "$T/payload")']"
    assert_line --index 1 "EHLO EHLO MAIL"
    assert_line --index 2 False
    report_is version TLSv1.3
    report_is outcome ok
}

@test "an asyncio server (epoll, non-blocking sockets) is offered STARTTLS the same way" {
    spolicy smtp
    serve smtp --style async
    head -c 5000 /dev/urandom | base64 -w 76 | sed 's/$/\r/' >"$T/payload"
    run timeout 30 curl -sS --ssl-reqd --cacert "$PKI/ca.pem" \
        "smtp://localhost:$PORT" --mail-from a@client.test \
        --mail-rcpt b@plain.server -T "$T/payload"
    assert_success
    wait_file "$T/rec.json"
    run grep -c "$(sha_of "$T/payload")" "$T/rec.json"
    assert_output 1
    report_is version TLSv1.3
}

@test "openssl s_client -starttls smtp finds STARTTLS and verifies the rule's certificate" {
    spolicy smtp
    serve smtp
    run bash -c "printf 'EHLO s.client\r\nQUIT\r\n' | timeout 20 openssl s_client \
        -starttls smtp -connect 127.0.0.1:$PORT -CAfile '$PKI/ca.pem' \
        -verify_hostname localhost -verify_return_error -quiet -ign_eof 2>&1"
    assert_success
    assert_output --partial "250-plain.server"
    assert_output --partial "221 2.0.0 bye"
    # s_client's own EHLO before STARTTLS, ours after it
    lines_are "['EHLO mail.example.com\r\n', 'EHLO s.client\r\n', 'QUIT\r\n']"
}

# --- IMAP ------------------------------------------------------------------

@test "imap: greeting and CAPABILITY list STARTTLS, tlsshim answers OK, the session goes on over TLS" {
    spolicy imap
    serve imap
    run talk '<' '>a1 CAPABILITY\r\n' '<a1' '>a2 STARTTLS\r\n' '<a2' tls \
        '>a3 CAPABILITY\r\n' '<a3' '>a4 LOGIN user secret\r\n' '<a4' \
        '>a5 LOGOUT\r\n' '<a5'
    assert_success
    assert_line --index 0 "S: * OK [CAPABILITY IMAP4rev1 STARTTLS] plain.server IMAP ready"
    assert_line --index 1 "S: * CAPABILITY IMAP4rev1 ID STARTTLS"
    assert_line --index 2 "S: a1 OK done"
    assert_line --index 3 "S: a2 OK Begin TLS negotiation now"
    assert_line --index 4 "TLS TLSv1.3"
    assert_line --index 5 "S: * CAPABILITY IMAP4rev1 ID"
    assert_line --index 7 "S: a4 OK [CAPABILITY IMAP4rev1] logged in"
    lines_are "['a1 CAPABILITY\r\n', 'a3 CAPABILITY\r\n', 'a4 LOGIN user secret\r\n', 'a5 LOGOUT\r\n']"
    report_is starttls imap
    report_is version TLSv1.3
}

@test "curl imap:// --ssl-reqd fetches a message over the upgrade, checksum intact" {
    make_message
    spolicy imap
    serve imap --message "$T/message"
    run timeout 30 curl -sS --ssl-reqd --cacert "$PKI/ca.pem" -u user:secret \
        -o "$T/got" "imap://localhost:$PORT/INBOX;MAILINDEX=1"
    assert_success
    assert_equal "$(sha_of "$T/got")" "$(sha_of "$T/message")"
    wait_file "$T/rec.json"
    run grep -c STARTTLS "$T/rec.json"
    assert_output 0
    run grep -c "LOGIN user secret" "$T/rec.json"
    assert_output 1
    report_is version TLSv1.3
}

# --- POP3 ------------------------------------------------------------------

@test "pop3: CAPA lists STLS, tlsshim answers +OK, RETR comes over TLS" {
    spolicy pop3
    serve pop3
    run talk '<' '>CAPA\r\n' '<.' '>STLS\r\n' '<' tls '>CAPA\r\n' '<.' \
        '>QUIT\r\n' '<'
    assert_success
    assert_line --index 0 "S: +OK plain.server POP3 ready"
    assert_line --index 3 "S: UIDL"
    assert_line --index 4 "S: STLS"
    assert_line --index 5 "S: ."
    assert_line --index 6 "S: +OK Begin TLS negotiation"
    assert_line --index 7 "TLS TLSv1.3"
    assert_line --index 10 "S: UIDL"
    assert_line --index 11 "S: ."
    lines_are "['CAPA\r\n', 'CAPA\r\n', 'QUIT\r\n']"
    report_is starttls pop3
    report_is version TLSv1.3
}

@test "curl pop3:// --ssl-reqd retrieves a message over the upgrade, checksum intact" {
    make_message
    spolicy pop3
    serve pop3 --message "$T/message"
    run timeout 30 curl -sS --ssl-reqd --cacert "$PKI/ca.pem" -u user:secret \
        -o "$T/got" "pop3://localhost:$PORT/1"
    assert_success
    assert_equal "$(sha_of "$T/got")" "$(sha_of "$T/message")"
    run grep -c STLS "$T/rec.json"
    assert_output 0
    report_is version TLSv1.3
}

# --- injection ---------------------------------------------------------------

@test "smtp: a command sent with STARTTLS in one segment is discarded, never the program's" {
    spolicy smtp
    serve smtp
    run talk '<' '>EHLO client.test\r\n' '<' \
        '>STARTTLS\r\nMAIL FROM:<evil@inject.test>\r\n' '<' tls \
        '>EHLO client.test\r\n' '<' '>QUIT\r\n' '<'
    assert_success
    assert_line --index 7 "TLS TLSv1.3"
    lines_are "['EHLO client.test\r\n', 'EHLO client.test\r\n', 'QUIT\r\n']"
    run grep -c "warning: accept 127.0.0.1:$PORT from .* rule=mail starttls=smtp: 30 bytes came after STARTTLS, before the TLS handshake; discarded (injected?)" "$T/shim.log"
    assert_output 1
}

@test "smtp: STARTTLS before the program answered an earlier command is refused, never answered inside TLS" {
    spolicy smtp
    # a pipelining server: it answers NOOP only once FIONREAD says the
    # client has nothing more waiting, which it asks after reading NOOP
    serve smtp --style pipelining
    # NOOP injected before the client's STARTTLS, in the same segment
    run talk '<' '>NOOP\r\nSTARTTLS\r\n' '<' '<' '>QUIT\r\n' '<'
    assert_success
    assert_line --index 1 "S: 503 5.5.1 STARTTLS sent before the answers to earlier commands"
    assert_line --index 2 "S: 250 2.0.0 ok"
    assert_line --index 3 "S: 221 2.0.0 bye"
    refute_line --partial "Ready to start TLS"
    lines_are "['NOOP\r\n', 'QUIT\r\n']"
    run grep -c "warning: accept 127.0.0.1:$PORT from .* rule=mail starttls=smtp: STARTTLS refused: it came before the program had answered the commands it read (pipelined, or injected)" "$T/shim.log"
    assert_output 1
}

@test "smtp: STARTTLS after the program answered goes on to TLS with a pipelining server" {
    spolicy smtp
    serve smtp --style pipelining
    run talk '<' '>EHLO client.test\r\n' '<' '>STARTTLS\r\n' '<' tls \
        '>EHLO client.test\r\n' '<' '>QUIT\r\n' '<'
    assert_success
    assert_line "S: 220 2.0.0 Ready to start TLS"
    assert_line "TLS TLSv1.3"
    lines_are "['EHLO client.test\r\n', 'EHLO client.test\r\n', 'QUIT\r\n']"
}

@test "imap and pop3: commands injected after STARTTLS/STLS never reach the program" {
    spolicy imap
    serve imap
    run talk '<' '>a1 STARTTLS\r\na2 LOGIN evil evil\r\n' '<a1' tls \
        '>a3 LOGOUT\r\n' '<a3'
    assert_success
    lines_are "['a3 LOGOUT\r\n']"
    run grep -c "starttls=imap: 20 bytes came after STARTTLS" "$T/shim.log"
    assert_output 1
    common_teardown
    rm -f "$T/rec.json"
    spolicy pop3
    serve pop3
    run talk '<' '>STLS\r\nUSER evil\r\n' '<' tls '>QUIT\r\n' '<'
    assert_success
    lines_are "['QUIT\r\n']"
    run grep -c "starttls=pop3: 11 bytes came after STARTTLS" "$T/shim.log"
    assert_output 1
}

@test "a client that asks for STARTTLS and then does not speak TLS: handshake fails, the program gets a reset" {
    spolicy smtp
    serve smtp
    run talk '<' '>STARTTLS\r\n' '<' '>MAIL FROM:<a@b>\r\n' 'eof'
    assert_success
    assert_line --index 1 "S: 220 2.0.0 Ready to start TLS"
    assert_line "EOF"
    lines_are "[]"
    run grep -c "error: accept 127.0.0.1:$PORT from .* rule=mail: TLS handshake failed" "$T/shim.log"
    assert_output 1
    report_is outcome handshake_failed
}

# --- starttls_required ---------------------------------------------------------

@test "starttls_required = yes: smtp commands before STARTTLS get 530 from tlsshim, not the program" {
    spolicy smtp "starttls_required = yes"
    serve smtp
    run talk '<' '>EHLO client.test\r\n' '<' '>MAIL FROM:<a@client.test>\r\n' '<' \
        '>AUTH PLAIN AGEAYg==\r\n' '<' '>NOOP\r\n' '<' '>QUIT\r\n' '<'
    assert_success
    assert_line --index 2 "S: 250-STARTTLS"
    assert_line --index 6 "S: 530 5.7.0 Must issue a STARTTLS command first"
    assert_line --index 7 "S: 530 5.7.0 Must issue a STARTTLS command first"
    assert_line --index 8 "S: 250 2.0.0 ok"
    lines_are "['EHLO client.test\r\n', 'NOOP\r\n', 'QUIT\r\n']"
    run grep -c "rule=mail starttls=smtp: MAIL refused before STARTTLS (starttls_required = yes)" "$T/shim.log"
    assert_output 1
    report_is outcome starttls_refused
    report_is error "the client closed without STARTTLS (2 commands refused)"
}

@test "starttls_required = yes: after STARTTLS the mail goes through to the program" {
    spolicy smtp "starttls_required = yes"
    serve smtp
    run talk '<' '>EHLO client.test\r\n' '<' '>STARTTLS\r\n' '<' tls \
        '>EHLO client.test\r\n' '<' '>MAIL FROM:<a@client.test>\r\n' '<' '>QUIT\r\n' '<'
    assert_success
    assert_line --index 12 "S: 250 2.0.0 ok"
    lines_are "['EHLO client.test\r\n', 'EHLO client.test\r\n', 'MAIL FROM:<a@client.test>\r\n', 'QUIT\r\n']"
    report_is outcome ok
}

@test "starttls_required = yes: imap advertises LOGINDISABLED and refuses LOGIN with NO" {
    spolicy imap "starttls_required = yes"
    serve imap
    run talk '<' '>a1 CAPABILITY\r\n' '<a1' '>a2 LOGIN user secret\r\n' '<a2' \
        '>a3 SELECT INBOX\r\n' '<a3' '>a4 STARTTLS\r\n' '<a4' tls \
        '>a5 CAPABILITY\r\n' '<a5' '>a6 LOGIN user secret\r\n' '<a6' '>a7 LOGOUT\r\n' '<a7'
    assert_success
    assert_line --index 0 "S: * OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] plain.server IMAP ready"
    assert_line --index 1 "S: * CAPABILITY IMAP4rev1 ID STARTTLS LOGINDISABLED"
    assert_line --index 3 "S: a2 NO [PRIVACYREQUIRED] Must issue a STARTTLS command first"
    assert_line --index 4 "S: a3 BAD Must issue a STARTTLS command first"
    assert_line --index 7 "S: * CAPABILITY IMAP4rev1 ID"
    assert_line --index 9 "S: a6 OK [CAPABILITY IMAP4rev1] logged in"
    lines_are "['a1 CAPABILITY\r\n', 'a5 CAPABILITY\r\n', 'a6 LOGIN user secret\r\n', 'a7 LOGOUT\r\n']"
    report_is outcome ok
}

@test "starttls_required = yes: an imap literal before STARTTLS is refused, its bytes never reach the program" {
    spolicy imap "starttls_required = yes"
    serve imap
    # the literal hides a LOGIN that a server rejecting the first line
    # would read as a command
    run talk '<' '>a ID {19+}\r\nb LOGIN user pass\r\n)\r\n' '<a' \
        '>c NOOP {5}\r\n' '<c' '>d LOGOUT\r\n' '<d'
    assert_success
    assert_line --index 1 "S: a BAD No literals before STARTTLS"
    assert_line --index 2 "S: c BAD No literals before STARTTLS"
    lines_are "['d LOGOUT\r\n']"
    run grep -c "rule=mail starttls=imap: ID refused before STARTTLS (starttls_required = yes)" "$T/shim.log"
    assert_output 1
}

@test "starttls_required = yes: pop3 USER before STLS gets -ERR from tlsshim" {
    spolicy pop3 "starttls_required = yes"
    serve pop3
    run talk '<' '>USER user\r\n' '<' '>PASS secret\r\n' '<' '>QUIT\r\n' '<'
    assert_success
    assert_line --index 1 "S: -ERR Must issue a STLS command first"
    assert_line --index 2 "S: -ERR Must issue a STLS command first"
    assert_line --index 3 "S: +OK bye"
    lines_are "['QUIT\r\n']"
    report_is outcome starttls_refused
}

@test "starttls_required = no: a client that logs in without STARTTLS goes on in plaintext" {
    make_message
    spolicy pop3
    serve pop3 --message "$T/message"
    run timeout 30 curl -sS -u user:secret -o "$T/got" "pop3://127.0.0.1:$PORT/1"
    assert_success
    assert_equal "$(sha_of "$T/got")" "$(sha_of "$T/message")"
    wait_file "$T/rec.json"
    run grep -c '"PASS secret' "$T/rec.json"
    assert_output 1
    run grep -c "rule=mail starttls=pop3: the client went on without STARTTLS; plaintext (starttls_required = no)" "$T/shim.log"
    assert_output 1
    report_is version null
    report_is outcome ok
}

# --- policy ----------------------------------------------------------------------

@test "policy: starttls on listen rules is smtp, imap or pop3; starttls_required = yes needs it" {
    spolicy ftp
    run "$TLSSHIM" --check -f "$T/policy.conf"
    assert_equal "$status" 2
    assert_output --partial "policy.conf:5: starttls = ftp on listen rules is not supported (tlsshim offers STARTTLS to clients for smtp, imap and pop3), and [mail] is a listen rule"
    printf '[mail]\nlisten = 127.0.0.1:%s\ncert_file = %s\nkey_file = %s\nstarttls_required = yes\n' \
        "$PORT" "$PKI/good.pem" "$PKI/good.key" >"$T/policy.conf"
    run "$TLSSHIM" --check -f "$T/policy.conf"
    assert_equal "$status" 2
    assert_output --partial "policy.conf:5: starttls_required = yes on a listen rule needs starttls (in [mail])"
    spolicy imap "starttls_required = yes"
    run "$TLSSHIM" --check -f "$T/policy.conf"
    assert_success
    assert_output --partial "starttls = imap"
}
