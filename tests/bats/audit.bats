#!/usr/bin/env bats
# action = audit and default_action/default_listen_action = audit (SPEC
# sections 3 and 8): the connection passes unchanged, and its first bytes
# are classified, logged and reported, never payload beyond that.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
    REPORT=$T/report.jsonl
}

teardown() {
    common_teardown
}

# policy LINE...: a policy file made of LINEs
policy() {
    printf '%s\n' "$@" >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
}

audited() {
    TLSSHIM_CONF=$T/policy.conf TLSSHIM_REPORT=$REPORT TLSSHIM_DEBUG=1 \
        TLSSHIM_LOG=$T/shim.log shim_run "$@"
}

@test "audit: curl's plain HTTP passes unchanged and is reported as http" {
    mkdir "$T/www" && echo "page body" >"$T/www/secret-page.txt"
    start_bg web "$PYTHON" -m http.server -b 127.0.0.1 -d "$T/www" "$PORT"
    wait_port "$PORT"
    policy "[watch]" "connect = 127.0.0.1:$PORT" "action = audit"
    run audited curl -sS "http://127.0.0.1:$PORT/secret-page.txt?token=hunter2"
    assert_success
    assert_output "page body"
    run json_field "$REPORT" 1 outcome
    assert_output audit
    run json_field "$REPORT" 1 first_bytes
    assert_output http
    run json_field "$REPORT" 1 first_detail
    assert_output "method=GET"
    run json_field "$REPORT" 1 rule
    assert_output watch
    run grep -c "info: connect 127.0.0.1:$PORT rule=watch audit first_bytes=http method=GET (from the client)" "$T/shim.log"
    assert_output 1
    # never payload beyond the method
    run grep -c -e secret-page -e hunter2 "$REPORT" "$T/shim.log"
    assert_output --regexp "^$REPORT:0"$'\n'"$T/shim.log:0$"
}

@test "audit: a program's own TLS is reported with its SNI and versions" {
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" --mode echo
    policy "[global]" "default_action = audit"
    run audited "$PYTHON" -c "
import socket, ssl
ctx = ssl.create_default_context(cafile='$PKI/ca.pem')
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', $PORT)), server_hostname='localhost')
s.sendall(b'x'); print(s.recv(10).decode())"
    assert_output x
    run json_field "$REPORT" 1 first_bytes
    assert_output tls
    run json_field "$REPORT" 1 first_detail
    # python offers every version its OpenSSL knows; the level refuses old ones later
    assert_output "sni=localhost versions=TLSv1.3,TLSv1.2,TLSv1.1,TLSv1"
    # the default action matched: no rule
    run json_field "$REPORT" 1 rule
    assert_output null
}

@test "audit: a server greeting read first is recognised (smtp, imap, pop3, ftp)" {
    policy "[global]" "default_action = audit"
    for greeting in "220 mail.test ESMTP ready" "* OK IMAP4rev1 ready" "+OK POP3 ready" "220 FTP server ready"; do
        start_bg greeter "$PYTHON" -c "
import socket
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(('127.0.0.1', $PORT)); ls.listen(1)
c, _ = ls.accept(); c.sendall(b'$greeting\r\n'); c.recv(100)"
        wait_port "$PORT"
        run audited "$PYTHON" -c "
import socket
s = socket.create_connection(('127.0.0.1', $PORT)); print(s.recv(100).decode().strip()); s.sendall(b'QUIT\r\n')"
        assert_output "$greeting"
        common_teardown
    done
    run "$PYTHON" -c "
import json
print(' '.join(json.loads(l)['first_bytes'] for l in open('$REPORT')))"
    assert_output "smtp imap pop3 ftp"
}

@test "audit on the server side: default_listen_action = audit" {
    policy "[global]" "default_listen_action = audit"
    start_bg srv env TLSSHIM_CONF="$T/policy.conf" TLSSHIM_REPORT="$REPORT" \
        LD_PRELOAD="$SHIM_PRELOAD" "$PYTHON" "$PEERS/plain_server.py" --port "$PORT" --mode upper
    wait_port "$PORT"
    run "$PYTHON" -c "
import socket
s = socket.create_connection(('127.0.0.1', $PORT)); s.sendall(b'*1\r\n\$4\r\nPING\r\n'); print(s.recv(100))"
    assert_output --partial "PING"
    for k in 1 2 3 4 5 6 7 8 9 10; do [ -s "$REPORT" ] && break; sleep 0.1; done
    run json_field "$REPORT" 1 role
    assert_output server
    run json_field "$REPORT" 1 first_bytes
    assert_output redis
}

@test "audit: a connection closed before any byte is reported as none" {
    start_bg sink "$PYTHON" "$PEERS/raw_sink.py" --port "$PORT" --record "$T/raw.bin"
    wait_port "$PORT"
    policy "[watch]" "connect = 127.0.0.1:$PORT" "action = audit"
    run audited "$PYTHON" -c "
import socket
s = socket.create_connection(('127.0.0.1', $PORT)); s.close(); print('closed')"
    assert_output closed
    run json_field "$REPORT" 1 first_bytes
    assert_output none
}

@test "audit: non-blocking and event-loop programs are not disturbed" {
    mkdir "$T/www" && head -c 300000 /dev/urandom >"$T/www/blob"
    start_bg web "$PYTHON" -m http.server -b 127.0.0.1 -d "$T/www" "$PORT"
    wait_port "$PORT"
    policy "[global]" "default_action = audit"
    run audited "$PYTHON" -c "
import asyncio, hashlib
async def main():
    r, w = await asyncio.open_connection('127.0.0.1', $PORT)
    w.write(b'GET /blob HTTP/1.0\r\n\r\n'); await w.drain()
    data = await r.read()
    print(hashlib.sha256(data.split(b'\r\n\r\n', 1)[1]).hexdigest())
asyncio.run(main())"
    assert_output "$(sha_of "$T/www/blob")"
    run json_field "$REPORT" 1 first_bytes
    assert_output http
}

# report_lines FILE: "role local peer-host outcome rule host" of each line
report_lines() {
    "$PYTHON" - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    peer = o["peer"].rsplit(":", 1)[0]
    print(o["role"], o.get("local", "(absent)"), peer, o["outcome"],
          o["rule"], o["host"])
PY
}

@test "the report's server lines name the local address each connection was accepted on (audit, deny, tls; IPv4-mapped as IPv4)" {
    policy "[global]" "default_listen_action = audit" \
        "[closed]" "listen = [::1]:$PORT" "action = deny"
    start_bg srv env TLSSHIM_CONF="$T/policy.conf" TLSSHIM_REPORT="$REPORT" \
        LD_PRELOAD="$SHIM_PRELOAD" "$PYTHON" "$PEERS/plain_server.py" \
        --host :: --port "$PORT" --mode upper
    wait_port "$PORT"
    run "$PYTHON" -c "
import socket
for host in ('127.0.0.1', '::1'):
    s = socket.create_connection((host, $PORT))
    try:
        s.sendall(b'GET / HTTP/1.0\r\n\r\n')
        got = s.recv(100).split(b'\r\n')[0].decode()
    except (ConnectionResetError, BrokenPipeError):
        got = ''   # the denied connection is closed, maybe with a reset
    print(host, got or 'closed')
    s.close()"
    assert_line "127.0.0.1 GET / HTTP/1.0"
    assert_line "::1 closed"
    for k in $(seq 50); do [ "$(wc -l <"$REPORT")" -ge 2 ] && break; sleep 0.1; done
    run report_lines "$REPORT"
    assert_line "server 127.0.0.1:$PORT 127.0.0.1 audit None None"
    assert_line "server [::1]:$PORT [::1] denied closed None"
    assert_equal "${#lines[@]}" 2
}

@test "the report's lines of a TLS listen rule carry local; client lines do not" {
    policy "[global]" "default_action = audit" \
        "[front]" "listen = 127.0.0.1:$PORT" "cert_file = $PKI/good.chain.pem" \
        "key_file = $PKI/good.key"
    start_bg srv env TLSSHIM_CONF="$T/policy.conf" TLSSHIM_REPORT="$REPORT" \
        LD_PRELOAD="$SHIM_PRELOAD" "$PYTHON" "$PEERS/plain_server.py" \
        --port "$PORT" --mode upper
    wait_port "$PORT"
    run audited "$PYTHON" -c "
import socket, ssl
ctx = ssl.create_default_context(cafile='$PKI/ca.pem')
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', $PORT)), server_hostname='localhost')
s.sendall(b'tls'); print(s.recv(10).decode()); s.close()"
    assert_output TLS
    for k in $(seq 50); do [ "$(wc -l <"$REPORT")" -ge 2 ] && break; sleep 0.1; done
    run report_lines "$REPORT"
    # the client's own TLS, audited by default_action; the server's TLS
    assert_line "client (absent) 127.0.0.1 audit None None"
    assert_line "server 127.0.0.1:$PORT 127.0.0.1 ok front None"
    assert_equal "${#lines[@]}" 2
}

@test "default_action = audit reports rule and host null though the program looked the name up; a catch-all audit rule reports the name" {
    start_bg sink "$PYTHON" "$PEERS/raw_sink.py" --port "$PORT" --record "$T/raw.bin"
    wait_port "$PORT"
    prog="
import socket
s = socket.create_connection(('localhost', $PORT)); s.sendall(b'GET / HTTP/1.0\r\n\r\n'); s.close(); print('sent')"
    policy "[global]" "default_action = audit"
    run audited "$PYTHON" -c "$prog"
    assert_output sent
    policy "[global]" "default_action = deny" "[all]" "connect = *" "action = audit"
    run audited "$PYTHON" -c "$prog"
    assert_output sent
    # SPEC section 8: rule is null when none matched, and host is the
    # matched name: none matched, so none
    run report_lines "$REPORT"
    assert_line --index 0 --regexp "^client \\(absent\\) (127\\.0\\.0\\.1|\\[::1\\]) audit None None$"
    assert_line --index 1 --regexp "^client \\(absent\\) (127\\.0\\.0\\.1|\\[::1\\]) audit all localhost$"
    assert_equal "${#lines[@]}" 2
}
