#!/usr/bin/env bats
# The connection report (SPEC section 8): one JSON line per connection,
# for every outcome class, with report_open lines, written whole by many
# processes at once, and surviving programs that close or reuse its
# descriptor.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
    REPORT=$T/report.jsonl
}

teardown() {
    common_teardown
}

# policy LINE...: [lab] for 127.0.0.1:$PORT and localhost:$PORT, then LINEs
policy() {
    {
        echo "[lab]"
        echo "connect = localhost:$PORT 127.0.0.1:$PORT"
        echo "ca_file = $PKI/ca.pem"
        local line
        for line in "$@"; do echo "$line"; done
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
}

# client [HOST] [MODE]: a plain python client through the shim, with the
# report; MODE close (default), exit (sys.exit, no close), _exit
client() {
    local host=${1:-localhost} mode=${2:-close}
    TLSSHIM_CONF=$T/policy.conf TLSSHIM_REPORT=$REPORT TLSSHIM_LOG=$T/shim.log \
        shim_run "$PYTHON" -c "
import errno, os, socket, sys
try:
    s = socket.create_connection(('$host', $PORT), timeout=10)
    s.sendall(b'hello')
    print(s.recv(100).decode())
except OSError as e:
    print('error', errno.errorcode.get(e.errno, e.errno))
    sys.exit(0)
if '$mode' == 'exit': sys.exit(0)
if '$mode' == '_exit': os._exit(0)
s.close()
"
}

# check_line N: line N of the report is valid JSON with every field of
# SPEC section 8 of the right type; prints the object's outcome
check_line() {
    "$PYTHON" - "$REPORT" "$1" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
o = json.loads(lines[int(sys.argv[2]) - 1 if int(sys.argv[2]) > 0 else int(sys.argv[2])])
want = {
    "id": str, "event": str, "ts": str, "duration_ms": int, "pid": int,
    "role": str, "rule": (str, type(None)), "action": str,
    "peer": str, "host": (str, type(None)), "sni": (str, type(None)),
    "version": (str, type(None)), "starttls": type(None),
    "outcome": str, "error": (str, type(None)), "cipher": (str, type(None)),
    "alpn": (str, type(None)), "resumed": bool, "verify": (str, type(None)),
    "ocsp": str, "peer_cert": (dict, type(None)), "bytes_in": int,
    "bytes_out": int, "handshake_ms": (int, type(None)),
}
for k, t in want.items():
    if k not in o:
        sys.exit("missing %s in %s" % (k, o))
    if not isinstance(o[k], t):
        sys.exit("%s has type %s in %s" % (k, type(o[k]).__name__, o))
assert o["event"] in ("open", "close"), o
assert o["role"] in ("client", "server"), o
assert o["outcome"] in ("ok", "denied", "connect_failed", "handshake_failed",
    "verify_failed", "starttls_refused", "timeout", "passthrough", "audit"), o
assert o["ocsp"] in ("good", "revoked", "unknown", "none", "soft_fail"), o
import re
assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", o["ts"]), o["ts"]
if o["peer_cert"] is not None:
    for k in ("subject", "issuer", "san", "not_before", "not_after", "sha256"):
        assert k in o["peer_cert"], o
print(o["outcome"])
EOF
}

@test "a verified connection: every field, the certificate and the byte counts" {
    policy
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" --mode echo
    run client
    assert_output "hello"
    run check_line 1
    assert_success
    assert_output ok
    run json_field "$REPORT" 1 host
    assert_output localhost
    for kv in role=client rule=lab action=tls peer=127.0.0.1:$PORT sni=localhost \
        version=TLSv1.3 verify=ok bytes_in=5 bytes_out=5 event=close error=null; do
        run json_field "$REPORT" 1 "${kv%%=*}"
        assert_output "${kv#*=}"
    done
    sha=$(openssl x509 -in "$PKI/good.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)
    run json_field "$REPORT" 1 peer_cert
    assert_output --partial "\"sha256\": \"$sha\""
    assert_output --partial '"subject": "CN=localhost,O=tlsshim tests"'
    assert_output --partial '"san": ["localhost", "good.test", "127.0.0.1", "::1"]'
    # ts is now, give or take
    run "$PYTHON" -c "
import datetime, json
o = json.loads(open('$REPORT').readline())
t = datetime.datetime.strptime(o['ts'], '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=datetime.timezone.utc)
print(abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()) < 60)"
    assert_output True
}

@test "every failure class has its outcome and reason" {
    # denied
    policy "action = deny"
    run client
    assert_output "error EACCES"
    # connect_failed: nothing listens
    policy
    run client 127.0.0.1
    assert_output "error ECONNREFUSED"
    # verify_failed
    tls_server srv "$PORT" --cert "$PKI/wronghost.chain.pem" --key "$PKI/wronghost.key" --mode echo
    run client
    assert_output "error ECONNREFUSED"
    common_teardown
    # handshake_failed: the peer is not TLS (it closes at once)
    start_bg sink "$PYTHON" "$PEERS/raw_sink.py" --port "$PORT" --idle-timeout 0.2 --record "$T/raw.bin"
    wait_port "$PORT"
    run client 127.0.0.1
    assert_output "error ECONNREFUSED"
    common_teardown
    # timeout: a silent peer
    start_bg sink2 "$PYTHON" "$PEERS/raw_sink.py" --port "$PORT" --idle-timeout 30 --record "$T/raw2.bin"
    wait_port "$PORT"
    policy "handshake_timeout = 1"
    run client 127.0.0.1
    assert_output "error ETIMEDOUT"
    run "$PYTHON" -c "
import json
for l in open('$REPORT'):
    o = json.loads(l)
    print(o['outcome'], o['error'] if o['outcome'] != 'verify_failed' else o['verify'])"
    assert_line --index 0 "denied denied by policy"
    assert_line --index 1 "connect_failed TCP connect failed: Connection refused"
    assert_line --index 2 --partial "verify_failed certificate verify failed: hostname mismatch (wanted localhost"
    assert_line --index 3 --regexp "^handshake_failed TLS handshake failed: "
    assert_line --index 4 "timeout TLS handshake timed out after 1 s"
    for i in 1 2 3 4 5; do
        run check_line $i
        assert_success
    done
}

@test "action auto: a program that speaks TLS itself is reported as passthrough" {
    policy "action = auto"
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" --mode echo
    run env TLSSHIM_CONF="$T/policy.conf" TLSSHIM_REPORT="$REPORT" LD_PRELOAD="$SHIM_PRELOAD" "$PYTHON" -c "
import socket, ssl
ctx = ssl.create_default_context(cafile='$PKI/ca.pem')
s = ctx.wrap_socket(socket.create_connection(('localhost', $PORT)), server_hostname='localhost')
s.sendall(b'own tls'); print(s.recv(100).decode()); s.close()"
    assert_output "own tls"
    run check_line 1
    assert_output passthrough
}

@test "report_open: an open line when the handshake ends, and the close line shares its id" {
    policy
    printf '[global]\nreport_open = yes\n' | cat - "$T/policy.conf" >"$T/p2" && mv "$T/p2" "$T/policy.conf"
    chmod 600 "$T/policy.conf"
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" --mode echo
    run client localhost _exit
    assert_output hello
    # _exit loses the close line; the open line is the evidence
    run wc -l <"$REPORT"
    assert_output 1
    run json_field "$REPORT" 1 event
    assert_output open
    run client localhost close
    run json_field "$REPORT" 2 event
    assert_output open
    run json_field "$REPORT" 3 event
    assert_output close
    [ "$(json_field "$REPORT" 2 id)" = "$(json_field "$REPORT" 3 id)" ]
    [ "$(json_field "$REPORT" 1 id)" != "$(json_field "$REPORT" 2 id)" ]
    run check_line 2
    assert_success
}

@test "a connection still open at a normal exit is reported; one left by _exit is not" {
    policy
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" --mode echo
    run client localhost exit
    assert_output hello
    run json_field "$REPORT" 1 outcome
    assert_output ok
    run json_field "$REPORT" 1 bytes_out
    assert_output 5
    run client localhost _exit
    run wc -l <"$REPORT"
    assert_output 1
}

@test "server connections are reported with the client's identity" {
    {
        echo "[srv]"
        echo "listen = 127.0.0.1:$PORT"
        echo "cert_file = $PKI/good.chain.pem"
        echo "key_file = $PKI/good.key"
        echo "verify_mode = peer"
        echo "ca_file = $PKI/ca.pem"
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
    start_bg srv env TLSSHIM_CONF="$T/policy.conf" TLSSHIM_REPORT="$REPORT" \
        LD_PRELOAD="$SHIM_PRELOAD" "$PYTHON" "$PEERS/plain_server.py" --port "$PORT" --mode upper
    wait_port "$PORT"
    run "$PYTHON" "$PEERS/tls_client.py" --port "$PORT" --cafile "$PKI/ca.pem" \
        --cert "$PKI/client.chain.pem" --key "$PKI/client.key" --send abc
    assert_success
    run "$PYTHON" -c "
import socket
s = socket.create_connection(('127.0.0.1', $PORT)); s.sendall(b'plain'); s.recv(10)"
    for i in 1 2 3 4 5 6 7 8 9 10; do
        [ "$(wc -l <"$REPORT")" -ge 2 ] && break
        sleep 0.2
    done
    run check_line 1
    assert_output ok
    run json_field "$REPORT" 1 role
    assert_output server
    run json_field "$REPORT" 1 peer_cert
    assert_output --partial '"subject": "CN=client.test,O=tlsshim tests"'
    run json_field "$REPORT" 1 bytes_in
    assert_output 3
    run check_line 2
    assert_output handshake_failed
    run json_field "$REPORT" 2 error
    assert_output "TLS handshake failed: wrong version number"
}

@test "20 processes writing at once leave no torn line" {
    policy "action = deny"
    pids=()
    for i in $(seq 20); do
        TLSSHIM_CONF=$T/policy.conf TLSSHIM_REPORT=$REPORT TLSSHIM_LOG=$T/shim.log \
            LD_PRELOAD=$SHIM_PRELOAD "$PYTHON" -c "
import socket
for i in range(50):
    try: socket.create_connection(('127.0.0.1', $PORT))
    except OSError: pass" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    run "$PYTHON" -c "
import json
n = 0
for l in open('$REPORT'):
    o = json.loads(l); assert o['outcome'] == 'denied'; n += 1
print(n)"
    assert_output 1000
}

@test "the report survives a program that closes or reuses its descriptor" {
    policy
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" --mode echo
    run env TLSSHIM_CONF="$T/policy.conf" TLSSHIM_REPORT="$REPORT" LD_PRELOAD="$SHIM_PRELOAD" "$PYTHON" -c "
import os, socket
def once():
    s = socket.create_connection(('localhost', $PORT)); s.sendall(b'x'); s.recv(10); s.close()
os.closerange(3, 256)
once()
# every low number now refers to the program's own file
f = os.open('$T/mine.txt', os.O_WRONLY | os.O_CREAT, 0o600)
for fd in range(3, 32):
    if fd != f: os.dup2(f, fd)
once()
print('done')"
    assert_output done
    run wc -l <"$REPORT"
    assert_output 2
    [ ! -s "$T/mine.txt" ]
}

@test "names and error texts are escaped: the line stays valid JSON" {
    # a certificate whose name holds quotes, a backslash and UTF-8
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -utf8 \
        -keyout "$T/odd.key" -out "$T/odd.pem" -days 1 \
        -subj '/CN=odd "quoted" \\ name é/O=tlsshim tests' \
        -addext 'subjectAltName=DNS:odd.test' 2>/dev/null
    tls_server srv "$PORT" --cert "$T/odd.pem" --key "$T/odd.key" --mode echo
    policy "fingerprint = sha256\$$(openssl x509 -in "$T/odd.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g')"
    run client
    assert_output hello
    run check_line 1
    assert_output ok
    run json_field "$REPORT" 1 verify
    assert_output pinned
    run "$PYTHON" -c "
import json
print(json.loads(open('$REPORT').readline())['peer_cert']['subject'])"
    # RFC 2253 escapes the quotes and the backslash; JSON carries that
    assert_output 'O=tlsshim tests,CN=odd \"quoted\" \\ name é'
}

@test "the log file survives a program that closes or reuses its descriptor" {
    policy "action = deny"
    run env TLSSHIM_CONF="$T/policy.conf" TLSSHIM_LOG="$T/shim.log" LD_PRELOAD="$SHIM_PRELOAD" "$PYTHON" -c "
import os, socket
def once():
    try: socket.create_connection(('127.0.0.1', $PORT))
    except OSError as e: return e.errno
os.closerange(3, 256)
once()
f = os.open('$T/mine.txt', os.O_WRONLY | os.O_CREAT, 0o600)
for fd in range(3, 32):
    if fd != f: os.dup2(f, fd)
print(once())"
    assert_output 13
    run grep -c "rule=lab: denied by policy" "$T/shim.log"
    assert_output 2
    [ ! -s "$T/mine.txt" ]
}

@test "after fork the connection is reported once, by the process that used it" {
    policy
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" --mode echo
    run env TLSSHIM_CONF="$T/policy.conf" TLSSHIM_REPORT="$REPORT" LD_PRELOAD="$SHIM_PRELOAD" "$PYTHON" -c "
import os, socket
s = socket.create_connection(('localhost', $PORT))
pid = os.fork()
if pid == 0:
    s.sendall(b'child'); s.recv(10); s.close(); os._exit(0)
os.waitpid(pid, 0)
s.close()
print(pid)"
    assert_success
    child=$output
    run wc -l <"$REPORT"
    assert_output 1
    run json_field "$REPORT" 1 pid
    assert_output "$child"
    run json_field "$REPORT" 1 bytes_out
    assert_output 5
}

@test "keylog = yes writes the session keys to SSLKEYLOGFILE; without it nothing is written" {
    # the server logs its keys too: both must agree line for line
    start_bg srv "$PYTHON" -c "
import socket, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain('$PKI/good.chain.pem', '$PKI/good.key')
ctx.keylog_filename = '$T/server.keys'
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(('127.0.0.1', $PORT)); ls.listen(4)
print('READY', flush=True)
while True:
    c, _ = ls.accept()
    try:
        s = ctx.wrap_socket(c, server_side=True); s.sendall(s.recv(100)); s.close()
    except OSError:
        pass"
    wait_port "$PORT"
    policy
    printf '[global]\nkeylog = yes\n' | cat - "$T/policy.conf" >"$T/p2" && mv "$T/p2" "$T/policy.conf"
    chmod 600 "$T/policy.conf"
    SSLKEYLOGFILE=$T/client.keys run client
    assert_output --partial hello
    [ "$(stat -c %a "$T/client.keys")" = 600 ]
    run grep -cvE '^(CLIENT_HANDSHAKE_TRAFFIC_SECRET|SERVER_HANDSHAKE_TRAFFIC_SECRET|CLIENT_TRAFFIC_SECRET_0|SERVER_TRAFFIC_SECRET_0|EXPORTER_SECRET) [0-9a-f]{64} [0-9a-f]{64,96}$' "$T/client.keys"
    assert_output 0
    run diff <(sort "$T/client.keys") <(grep -v '^#' "$T/server.keys" | sort)
    assert_success
    # keylog off: SSLKEYLOGFILE is ignored
    policy
    SSLKEYLOGFILE=$T/off.keys run client
    assert_output --partial hello
    [ ! -e "$T/off.keys" ]
}

@test "tlsshim -r writes the report of the program it runs" {
    policy "action = deny"
    run "$TLSSHIM" -f "$T/policy.conf" -r "$REPORT" -- "$PYTHON" -c "
import socket
try: socket.create_connection(('127.0.0.1', $PORT))
except OSError as e: print(e.errno)"
    assert_line --index 0 --partial "denied by policy"
    assert_line --index 1 13
    run check_line 1
    assert_output denied
}

@test "log level 3 shows each read and write with its size and the TLS state" {
    policy
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" --mode echo
    TLSSHIM_DEBUG=3 run client
    assert_output hello
    run grep -E "debug: fd [0-9]+: write 5 of 5 bytes \(open, TLS SSL negotiation finished successfully\)" "$T/shim.log"
    assert_success
    run grep -cE "debug: fd [0-9]+: read 5 of 100 bytes" "$T/shim.log"
    assert_output 1
    # level 2 has the call flow but not the data sizes
    : >"$T/shim.log"
    TLSSHIM_DEBUG=2 run client
    run grep -c "bytes (" "$T/shim.log"
    assert_output 0
}
