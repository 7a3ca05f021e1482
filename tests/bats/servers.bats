#!/usr/bin/env bats
# Real server programs, unmodified, whose accepted connections a listen rule
# turns into TLS (SPEC sections 3-5 and 9): Python's http.server and a
# forking socketserver, node's http module, nginx with privilege-dropping
# workers, redis-server driven by redis-benchmark, an inetd-style server
# that execs its handler on the connection, session tickets shared through
# ticket_key_file, and cert_file = auto.  The clients speak TLS only and
# verify the server (curl --cacert, openssl s_client, Python's ssl), so a
# server left in plaintext fails them; each test checks the payload end to
# end and that a plain-text client gets no plaintext answer.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
    # curl must go straight to the server under test.
    unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
}

teardown() {
    stop_nginx
    common_teardown
    if [[ -n ${WWW:-} && -d $WWW ]]; then
        rm -rf "$WWW"
    fi
}

# spolicy: $T/policy.conf with one listen rule [web] for $PORT on 127.0.0.1
# and ::1 offering the "good" certificate (CN=localhost).
spolicy() {
    {
        echo "[web]"
        echo "listen = 127.0.0.1:$PORT [::1]:$PORT"
        echo "cert_file = $PKI/good.chain.pem"
        echo "key_file = $PKI/good.key"
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
}

# payload FILE BYTES: random bytes.
payload() {
    head -c "$2" /dev/urandom >"$1"
}

# wait_ready NAME: wait until the program started with start_bg NAME
# printed READY; fail (showing its output) if it exits first.
wait_ready() {
    local name=$1 pid i
    pid=$(<"$T/$name.pid")
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        grep -q '^READY' "$T/$name.log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "wait_ready: $name did not start:" >&2
    cat "$T/$name.log" >&2
    return 1
}

# wait_pids NAME...: wait for the processes start_bg started under NAMEs
# (bounded by their own timeouts); fail when one of them failed.
wait_pids() {
    local name rc=0
    for name in "$@"; do
        wait "$(<"$T/$name.pid")" || {
            echo "wait_pids: $name failed:" >&2
            cat "$T/$name.log" >&2
            rc=1
        }
    done
    return "$rc"
}

# fetch URL OUT: curl over verified TLS, trusting only the test root.
fetch() {
    curl -sS --max-time 20 --cacert "$PKI/ca.pem" -o "$2" "$1"
}

# refute_plain_http PORT: a plain-text HTTP client gets no HTTP answer.
refute_plain_http() {
    run curl -sS -i --max-time 5 "http://127.0.0.1:$1/index.html"
    assert_failure
    refute_output --partial "HTTP/1"
}

# shim_accepts LOG: the PIDs of the "info: accept" lines in LOG, one a line.
shim_accepts() {
    sed -n 's/^tlsshim\[\([0-9]*\)\]: info: accept .*/\1/p' "$1"
}

# session_out PORT FILE [ARGS...]: one s_client connection to PORT that
# saves the session in FILE.  Its standard input stays open until FILE is
# written (TLS 1.3 tickets arrive after the handshake; s_client writes each
# as it arrives), at most 5 seconds.
session_out() {
    local port=$1 file=$2 i
    shift 2
    rm -f "$file"
    {
        printf 'hello\n'
        for ((i = 0; i < 100; i++)); do
            [[ -s $file ]] && break
            sleep 0.05
        done
    } | timeout 10 openssl s_client -connect "127.0.0.1:$port" \
        -servername localhost -CAfile "$PKI/ca.pem" -verify_return_error \
        -sess_out "$file" "$@" >/dev/null 2>&1
    [[ -s $file ]] || {
        echo "session_out: no session from port $port" >&2
        return 1
    }
}

# session_in PORT FILE [ARGS...]: connect with the session in FILE; print
# s_client's "New, ..." or "Reused, ..." line.
session_in() {
    local port=$1 file=$2
    shift 2
    printf 'hello\n' | timeout 10 openssl s_client -connect "127.0.0.1:$port" \
        -servername localhost -CAfile "$PKI/ca.pem" -verify_return_error \
        -sess_in "$file" "$@" 2>/dev/null | grep -aE '^(New|Reused), '
}

# http_server NAME PYTHON: "PYTHON -m http.server" (ThreadingHTTPServer)
# under tlsshim serving $T/www on 127.0.0.1:$PORT, shim log in $T/shim.log.
http_server() {
    start_bg "$1" "$TLSSHIM" -f "$T/policy.conf" -d 1 -o "$T/shim.log" -- \
        "$2" -m http.server --bind 127.0.0.1 --directory "$T/www" "$PORT"
    wait_port "$PORT" 127.0.0.1
}

# assert_http_server_over_tls: four concurrent curl fetches of the 1 MiB
# file from http_server arrive intact over verified TLS; a plain-text
# client gets nothing.
assert_http_server_over_tls() {
    local i
    for i in 1 2 3 4; do
        start_bg "curl$i" curl -sS --max-time 20 --cacert "$PKI/ca.pem" \
            -o "$T/out$i.bin" "https://localhost:$PORT/big.bin"
    done
    wait_pids curl1 curl2 curl3 curl4
    for i in 1 2 3 4; do
        assert_equal "$(sha_of "$T/out$i.bin")" "$(sha_of "$T/www/big.bin")"
    done
    run grep -c "info: accept 127.0.0.1:$PORT from 127.0.0.1:[0-9]* rule=web tls=TLSv1.3 .* sni=localhost" "$T/shim.log"
    assert_output 4
    refute_plain_http "$PORT"
    run grep "rule=web: TLS handshake failed: http request" "$T/shim.log"
    assert_success
}

@test "python3 -m http.server (python3 on PATH) serves 1 MiB over TLS to concurrent curl clients" {
    command -v python3 >/dev/null || skip "no python3 on PATH"
    spolicy
    mkdir "$T/www"
    payload "$T/www/big.bin" 1048576
    http_server web python3
    assert_http_server_over_tls
}

@test "/usr/bin/python3 -m http.server serves 1 MiB over TLS to concurrent curl clients" {
    spolicy
    mkdir "$T/www"
    payload "$T/www/big.bin" 1048576
    http_server web /usr/bin/python3
    assert_http_server_over_tls
}

@test "a forking socketserver handshakes in each child and answers sequential and concurrent clients" {
    spolicy
    cat >"$T/forking.py" <<'EOF'
import os, socketserver, sys

class Upper(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline()
        with open(sys.argv[2], "a") as f:
            f.write("%d\n" % os.getpid())
        self.wfile.write(line.upper())

class Server(socketserver.ForkingTCPServer):
    allow_reuse_address = True

srv = Server(("127.0.0.1", int(sys.argv[1])), Upper)
print("READY", os.getpid(), flush=True)
srv.serve_forever()
EOF
    start_bg fork "$TLSSHIM" -f "$T/policy.conf" -d 1 -o "$T/shim.log" -- \
        "$PYTHON" "$T/forking.py" "$PORT" "$T/handlers"
    wait_ready fork
    master=$(<"$T/fork.pid")
    # Sequential: each answer is exact and the child's close ends s_client.
    # (not "i": bats 1.8's "run -N" sets it)
    for k in 1 2 3; do
        run -0 bash -c 'printf "hello %s\n" "$1" | timeout 10 openssl s_client -quiet \
            -connect "127.0.0.1:$2" -servername localhost -CAfile "$3" \
            -verify_return_error 2>/dev/null' _ "$k" "$PORT" "$PKI/ca.pem"
        assert_output "HELLO $k"
    done
    # Concurrent: six verifying Python clients at once.
    for k in 1 2 3 4 5 6; do
        start_bg "c$k" "$PYTHON" "$PEERS/tls_client.py" --port "$PORT" \
            --cafile "$PKI/ca.pem" --send "concurrent client $k"$'\n'
    done
    wait_pids c1 c2 c3 c4 c5 c6
    for k in 1 2 3 4 5 6; do
        run json_field "$T/c$k.log" 1 reply
        assert_output "CONCURRENT CLIENT $k"
        run json_field "$T/c$k.log" 1 ok
        assert_output true
    done
    # Every handshake ran in the child that handled the connection, never
    # in the server that accepted it.
    [ "$(wc -l <"$T/handlers")" -eq 9 ]
    assert_equal "$(shim_accepts "$T/shim.log" | sort -n)" "$(sort -n "$T/handlers")"
    run grep -c "^tlsshim\[$master\]: info: accept" "$T/shim.log"
    assert_output 0
    # A plain-text client gets no answer.
    run "$PYTHON" -c "
import socket
s = socket.create_connection(('127.0.0.1', $PORT), timeout=5)
s.sendall(b'hello plain\n')
got = b''
try:
    while True:
        b = s.recv(4096)
        if not b: break
        got += b
except (ConnectionResetError, TimeoutError):
    pass
print(repr(got))
"
    assert_success
    refute_output --partial "HELLO"
}

@test "a node http server serves 1 MiB over TLS to curl, twice on one keep-alive connection" {
    spolicy
    payload "$T/body" 1048576
    cat >"$T/server.js" <<EOF
const http = require('http');
const fs = require('fs');
const body = fs.readFileSync('$T/body');
http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream',
                         'Content-Length': body.length,
                         'X-Path': req.url });
    res.end(body);
}).listen($PORT, '127.0.0.1', () => console.log('READY'));
EOF
    start_bg node "$TLSSHIM" -f "$T/policy.conf" -d 1 -o "$T/shim.log" -- node "$T/server.js"
    wait_ready node
    run -0 curl -sS --max-time 20 --cacert "$PKI/ca.pem" -D "$T/headers" \
        -o "$T/out1.bin" "https://localhost:$PORT/one" \
        -o "$T/out2.bin" "https://localhost:$PORT/two"
    assert_equal "$(sha_of "$T/out1.bin")" "$(sha_of "$T/body")"
    assert_equal "$(sha_of "$T/out2.bin")" "$(sha_of "$T/body")"
    run grep -c $'^X-Path: /\\(one\\|two\\)\r$' "$T/headers"
    assert_output 2
    # both requests went over one TLS connection
    run grep -c "info: accept 127.0.0.1:$PORT .* rule=web tls=TLSv1.3" "$T/shim.log"
    assert_output 1
    refute_plain_http "$PORT"
}

# start_nginx: nginx as a daemon under tlsshim (-d 1: the shim's lines go
# to nginx's stderr, which is its error_log), epoll, two workers running as
# nobody, accept_mutex off, sendfile on, serving $WWW on 127.0.0.1:$PORT
# with the key file root-only.  Its files are in $T/nginx.
start_nginx() {
    local n=$T/nginx
    mkdir -p "$n/tmp"
    install -m 600 "$PKI/good.key" "$n/server.key"
    {
        echo "[web]"
        echo "listen = 127.0.0.1:$PORT"
        echo "cert_file = $PKI/good.chain.pem"
        echo "key_file = $n/server.key"
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
    cat >"$n/nginx.conf" <<EOF
daemon on;
master_process on;
user nobody nogroup;
worker_processes 2;
pid $n/nginx.pid;
error_log $n/error.log info;
events {
    use epoll;
    accept_mutex off;
    worker_connections 64;
}
http {
    access_log $n/access.log;
    client_body_temp_path $n/tmp/body;
    proxy_temp_path $n/tmp/proxy;
    fastcgi_temp_path $n/tmp/fastcgi;
    uwsgi_temp_path $n/tmp/uwsgi;
    scgi_temp_path $n/tmp/scgi;
    sendfile on;
    keepalive_timeout 5;
    server {
        listen 127.0.0.1:$PORT;
        root $WWW;
    }
}
EOF
    # (fd 3 is bats' own: the daemon must not keep it)
    run -0 "$TLSSHIM" -f "$T/policy.conf" -d 1 -- /usr/sbin/nginx -p "$n" \
        -c "$n/nginx.conf" -e "$n/error.log" 3>&-
    wait_file "$n/nginx.pid"
    wait_port "$PORT" 127.0.0.1
    # the master's "start worker process PID" notices
    local i
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        (($(grep -c 'start worker process' "$n/error.log") >= 2)) && break
        sleep 0.05
    done
    WORKERS=$(sed -n 's/.*start worker process \([0-9]*\)$/\1/p' "$n/error.log")
    [ "$(echo "$WORKERS" | wc -l)" -eq 2 ]
}

# pid_running PID: PID exists and is not a zombie.
pid_running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# stop_nginx: TERM the master named by the pid file (it stops the
# workers); KILL what is left after 5 seconds.
stop_nginx() {
    local f=$T/nginx/nginx.pid master pid i alive
    [[ -s $f ]] || return 0
    master=$(<"$f")
    kill -TERM "$master" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive=0
        for pid in $master ${WORKERS:-}; do
            pid_running "$pid" && alive=1
        done
        ((alive)) || return 0
        sleep 0.05
    done
    for pid in $master ${WORKERS:-}; do
        pid_running "$pid" && kill -KILL "$pid" 2>/dev/null
    done
    return 0
}

# nginx_accepts_by PID: how many "info: accept" lines worker PID logged
nginx_accepts_by() {
    grep -c "^tlsshim\[$1\]: info: accept 127.0.0.1:$PORT " "$T/nginx/error.log" || true
}

@test "nginx: two unprivileged workers serve 1 MiB with sendfile over TLS from a root-only key and resume each other's sessions" {
    [[ $(id -u) -eq 0 ]] || skip "needs root: nginx drops its workers to nobody only when started as root"
    [[ -x /usr/sbin/nginx ]] || skip "nginx is not installed"
    getent group nogroup >/dev/null || skip "no group nogroup"
    # The workers (nobody) must reach the files: not under the 0700 test
    # directories.
    WWW=$(mktemp -d /tmp/tlsshim-servers.XXXXXX)
    chmod 755 "$WWW"
    payload "$WWW/big.bin" 1048576
    printf 'small file\n' >"$WWW/small.txt"
    chmod 644 "$WWW/big.bin" "$WWW/small.txt"
    start_nginx
    # The key is root's alone: the master loaded it at listen(), the
    # workers that serve the connections could not read it.
    run stat -c '%U %a' "$T/nginx/server.key"
    assert_output "root 600"
    for pid in $WORKERS; do
        run awk '/^Uid:/ { print $2 }' "/proc/$pid/status"
        assert_output "$(id -u nobody)"
    done

    # Batches of four concurrent fetches until both workers have served
    # (accept_mutex off: the kernel picks the worker).
    local round k both=0 w1 w2
    w1=$(echo "$WORKERS" | head -n 1)
    w2=$(echo "$WORKERS" | tail -n 1)
    for ((round = 1; round <= 10 && !both; round++)); do
        for k in 1 2 3 4; do
            start_bg "curl$round-$k" curl -sS --max-time 20 --cacert "$PKI/ca.pem" \
                -o "$T/out$round-$k.bin" "https://localhost:$PORT/big.bin"
        done
        wait_pids "curl$round-1" "curl$round-2" "curl$round-3" "curl$round-4"
        for k in 1 2 3 4; do
            assert_equal "$(sha_of "$T/out$round-$k.bin")" "$(sha_of "$WWW/big.bin")"
        done
        (($(nginx_accepts_by "$w1") > 0 && $(nginx_accepts_by "$w2") > 0)) && both=1
    done
    ((both)) || {
        echo "one worker served everything:" >&2
        grep 'info: accept' "$T/nginx/error.log" >&2
        false
    }
    # only the workers handshake, never the master
    master=$(<"$T/nginx/nginx.pid")
    run grep -c "^tlsshim\[$master\]: info: accept" "$T/nginx/error.log"
    assert_output 0

    # TLS 1.3 resumption: a session from one worker resumes on both.
    run -0 bash -c 'printf "GET /small.txt HTTP/1.0\r\nHost: localhost\r\n\r\n" |
        timeout 10 openssl s_client -connect "127.0.0.1:$1" -servername localhost \
            -CAfile "$2" -verify_return_error -tls1_3 -ign_eof -sess_out "$3" 2>/dev/null' \
        _ "$PORT" "$PKI/ca.pem" "$T/sess.pem"
    assert_output --partial "small file"
    assert_output --partial "New, TLSv1.3"
    local resumed_by_both=0 n1 n2
    for ((round = 1; round <= 10 && !resumed_by_both; round++)); do
        for k in 1 2 3 4; do
            start_bg "res$round-$k" bash -c 'printf "GET /big.bin HTTP/1.0\r\nHost: localhost\r\n\r\n" |
                timeout 10 openssl s_client -connect "127.0.0.1:$1" -servername localhost \
                    -CAfile "$2" -verify_return_error -tls1_3 -ign_eof -sess_in "$3" 2>/dev/null |
                grep -aE "^(New|Reused), "' _ "$PORT" "$PKI/ca.pem" "$T/sess.pem"
        done
        wait_pids "res$round-1" "res$round-2" "res$round-3" "res$round-4"
        for k in 1 2 3 4; do
            run cat "$T/res$round-$k.log"
            assert_output --partial "Reused, TLSv1.3"
        done
        n1=$(grep -c "^tlsshim\[$w1\]: info: accept .* resumed=yes" "$T/nginx/error.log" || true)
        n2=$(grep -c "^tlsshim\[$w2\]: info: accept .* resumed=yes" "$T/nginx/error.log" || true)
        ((n1 > 0 && n2 > 0)) && resumed_by_both=1
    done
    ((resumed_by_both)) || {
        echo "the session did not resume on both workers:" >&2
        grep 'info: accept' "$T/nginx/error.log" >&2
        false
    }
    run grep -E 'tlsshim\[[0-9]+\]: (error|warning)' "$T/nginx/error.log"
    assert_failure
    # a plain-text client gets nothing, and the worker says why
    refute_plain_http "$PORT"
    run grep -E 'tlsshim\[[0-9]+\]: (error|warning)' "$T/nginx/error.log"
    assert_output --regexp "^tlsshim\[($w1|$w2)\]: error: accept 127.0.0.1:$PORT from 127.0.0.1:[0-9]+ rule=web: TLS handshake failed: http request$"
}

@test "redis-server serves shimmed redis-benchmark and redis-cli over verified TLS, and not plain redis-cli" {
    {
        echo "[redis-server]"
        echo "listen = 127.0.0.1:$PORT"
        echo "cert_file = $PKI/good.chain.pem"
        echo "key_file = $PKI/good.key"
        echo "[redis-client]"
        echo "connect = 127.0.0.1:$PORT"
        echo "ca_file = $PKI/ca.pem"
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
    start_bg redis "$TLSSHIM" -f "$T/policy.conf" -d 1 -o "$T/server.log" -- \
        redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no \
        --dir "$T" --daemonize no --logfile ''
    wait_port "$PORT" 127.0.0.1
    # Without the shim, redis-cli speaks plaintext to a TLS server.
    run timeout 10 redis-cli -h 127.0.0.1 -p "$PORT" PING
    assert_failure
    refute_output --partial PONG
    run -0 "$TLSSHIM" -f "$T/policy.conf" -d 1 -o "$T/client.log" -- timeout 60 \
        redis-benchmark -h 127.0.0.1 -p "$PORT" -c 50 -n 20000 -t set,get -q
    run bash -c "tr '\r' '\n' <<<\"\$1\" | grep -E '^(SET|GET): [0-9.]+ requests per second'" _ "$output"
    assert_success
    assert_line --partial "SET: "
    assert_line --partial "GET: "
    # Every request reached the server: 20000 SETs and 20000 GETs.
    run -0 "$TLSSHIM" -f "$T/policy.conf" -- redis-cli -h 127.0.0.1 -p "$PORT" INFO commandstats
    assert_line --regexp $'^cmdstat_set:calls=20000,'
    assert_line --regexp $'^cmdstat_get:calls=20000,'
    # 100 KB of printable bytes: redis-cli --raw prints the value and "\n".
    head -c 76800 /dev/urandom | base64 -w0 >"$T/value"
    [ "$(stat -c %s "$T/value")" -eq 102400 ]
    run -0 "$TLSSHIM" -f "$T/policy.conf" -- redis-cli -h 127.0.0.1 -p "$PORT" -x SET big <"$T/value"
    assert_output OK
    "$TLSSHIM" -f "$T/policy.conf" -- redis-cli -h 127.0.0.1 -p "$PORT" --raw GET big >"$T/got"
    assert_equal "$(head -c -1 "$T/got" | sha256sum | cut -d' ' -f1)" "$(sha_of "$T/value")"
    # Every benchmark connection (50 per test, and one for its CONFIG GET)
    # was TLS on both sides and verified by the client; only the plain
    # redis-cli failed.
    run grep -c "info: connect 127.0.0.1:$PORT rule=redis-client tls=TLSv1.3 .* verify=ok" "$T/client.log"
    [ "$output" -ge 100 ]
    clients=$output
    run grep -c "info: accept 127.0.0.1:$PORT from 127.0.0.1:[0-9]* rule=redis-server tls=TLSv1.3" "$T/server.log"
    assert_output "$((clients + 3))"
    run grep -c "error: " "$T/client.log"
    assert_output 0
    run grep "error: " "$T/server.log"
    assert_output --regexp "^tlsshim\[[0-9]+\]: error: accept 127.0.0.1:$PORT from 127.0.0.1:[0-9]+ rule=redis-server: TLS handshake failed"
}

@test "an inetd-style server execs its handler on the accepted connection: the handler speaks plaintext, the client TLS" {
    spolicy
    start_bg inetd "$TLSSHIM" -f "$T/policy.conf" -d 1 -o "$T/shim.log" -- \
        "$PROGS/inetd" 127.0.0.1 "$PORT" /bin/sh -c 'read -r line; echo "got $line"'
    wait_ready inetd
    # Three clients in turn: each gets the exact answer, then the end of
    # the connection (s_client -quiet only stops when the server closes).
    for k in 1 2 3; do
        run -0 bash -c 'printf "hello inetd %s\n" "$1" | timeout 10 openssl s_client -quiet \
            -connect "127.0.0.1:$2" -servername localhost -CAfile "$3" \
            -verify_return_error 2>/dev/null' _ "$k" "$PORT" "$PKI/ca.pem"
        assert_output "got hello inetd $k"
    done
    run grep -c "info: accept 127.0.0.1:$PORT from 127.0.0.1:[0-9]* rule=web tls=TLSv1.3" "$T/shim.log"
    assert_output 3
    # A plain-text client reaches no handler.
    run bash -c 'printf "hello plain\n" | timeout 10 socat -T 5 - "TCP:127.0.0.1:$1"' _ "$PORT"
    refute_output --partial "got hello"
}

@test "an inetd-style server execs cat on the accepted connection: 1 MiB echoed through the relay over TLS" {
    spolicy
    start_bg inetd "$TLSSHIM" -f "$T/policy.conf" -d 1 -o "$T/shim.log" -- \
        "$PROGS/inetd" 127.0.0.1 "$PORT" cat
    wait_ready inetd
    payload "$T/msg.bin" 1048576
    run -0 "$PYTHON" - "$PORT" "$PKI/ca.pem" "$T/msg.bin" "$T/out.bin" <<'EOF'
import socket, ssl, sys
port, ca, src, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                    server_hostname="localhost")
data = open(src, "rb").read()
got = bytearray()

def receive(upto):
    while len(got) < upto:
        b = s.recv(65536)
        if not b:
            break
        got.extend(b)

# at most 128 KiB in flight: cat's echo never fills every buffer on the way
for off in range(0, len(data), 32768):
    s.sendall(data[off:off + 32768])
    receive(off - 131072)
receive(len(data))
version = s.version()
# close_notify: cat reads EOF and exits, and the relay ends the connection
# with its own close_notify, which unwrap() waits for
try:
    s.unwrap()
    end = "close_notify"
except (ssl.SSLError, OSError) as e:
    end = "error: %s" % e
open(dst, "wb").write(got)
print(version, len(got), end)
EOF
    assert_output "TLSv1.3 1048576 close_notify"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/msg.bin")"
}

# tpolicy FILE KEYFILE PORT...: a policy with one listen rule [tickets] for
# the PORTs on 127.0.0.1, offering the "good" certificate, ticket keys from
# KEYFILE.  Policies that differ only in KEYFILE.
tpolicy() {
    local f=$1 keys=$2 port
    shift 2
    {
        echo "[tickets]"
        for port in "$@"; do echo "listen = 127.0.0.1:$port"; done
        echo "cert_file = $PKI/good.chain.pem"
        echo "key_file = $PKI/good.key"
        echo "ticket_key_file = $keys"
    } >"$f"
    chmod 600 "$f"
}

# echo_server NAME POLICY PORT: plain_server.py (echo) under tlsshim on
# 127.0.0.1:PORT, shim log in $T/NAME.shim.log.
echo_server() {
    start_bg "$1" "$TLSSHIM" -f "$2" -d 1 -o "$T/$1.shim.log" -- \
        "$PYTHON" "$PEERS/plain_server.py" --port "$3"
    wait_ready "$1"
}

@test "ticket_key_file: servers sharing the file resume each other's sessions, another file does not, and rotation is picked up" {
    local pa=$PORT pb pc
    pb=$(free_port)
    pc=$(free_port)
    (
        umask 077
        head -c 80 /dev/urandom >"$T/k1"
        head -c 80 /dev/urandom >"$T/k2"
        head -c 80 /dev/urandom >"$T/k3"
        cp "$T/k1" "$T/shared.keys"
        cp "$T/k2" "$T/other.keys"
    )
    # A and B share a key file; C has its own, and differs in nothing else.
    tpolicy "$T/shared.conf" "$T/shared.keys" "$pa" "$pb"
    tpolicy "$T/other.conf" "$T/other.keys" "$pc"
    echo_server a "$T/shared.conf" "$pa"
    echo_server b "$T/shared.conf" "$pb"
    echo_server c "$T/other.conf" "$pc"

    for v in -tls1_3 -tls1_2; do
        session_out "$pa" "$T/sess$v.pem" "$v"
        # resumed on A itself and on B, not on C
        run session_in "$pa" "$T/sess$v.pem" "$v"
        assert_output --partial "Reused, "
        run session_in "$pb" "$T/sess$v.pem" "$v"
        assert_output --partial "Reused, "
        run session_in "$pc" "$T/sess$v.pem" "$v"
        assert_output --partial "New, "
    done
    run grep -c "info: accept 127.0.0.1:$pb .* rule=tickets .* resumed=yes" "$T/b.shim.log"
    assert_output 2
    run grep -c "info: accept 127.0.0.1:$pc .* rule=tickets .* resumed=no" "$T/c.shim.log"
    assert_output 2

    # Rotation: a new key is prepended to the shared file (a new file
    # renamed over it, as a rotation job does) and C's file is replaced by
    # that new key alone.  After the 1 s re-check interval, B (started
    # before) still resumes the session issued under the old key, and
    # issues tickets under the new key, which C now accepts.
    session_out "$pa" "$T/old.pem" -tls1_3
    (
        umask 077
        cat "$T/k3" "$T/k1" >"$T/shared.keys.new"
        mv "$T/shared.keys.new" "$T/shared.keys"
        cp "$T/k3" "$T/other.keys.new"
        mv "$T/other.keys.new" "$T/other.keys"
    )
    sleep 1.2
    run session_in "$pb" "$T/old.pem" -tls1_3
    assert_output --partial "Reused, TLSv1.3"
    session_out "$pb" "$T/new.pem" -tls1_3
    run session_in "$pc" "$T/new.pem" -tls1_3
    assert_output --partial "Reused, TLSv1.3"
    # and the old key is gone from C
    run session_in "$pc" "$T/old.pem" -tls1_3
    assert_output --partial "New, TLSv1.3"
}

@test "cert_file = auto: python3 http.server gets a certificate from auto_ca_dir's CA, which the next run reuses" {
    {
        echo "[auto]"
        echo "listen = 127.0.0.1:$PORT [::1]:$PORT"
        echo "cert_file = auto"
        echo "auto_ca_dir = $T/autoca"
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
    mkdir "$T/www"
    payload "$T/www/big.bin" 1048576
    [ ! -e "$T/autoca" ]
    http_server web "$PYTHON"
    run stat -c %a "$T/autoca"
    assert_output 700
    run -0 curl -sS --max-time 20 --cacert "$T/autoca/ca.pem" -o "$T/out1.bin" \
        "https://localhost:$PORT/big.bin"
    assert_equal "$(sha_of "$T/out1.bin")" "$(sha_of "$T/www/big.bin")"
    # by address too: the certificate has the IP SAN
    run -0 curl -sS --max-time 20 --cacert "$T/autoca/ca.pem" -o "$T/out2.bin" \
        "https://127.0.0.1:$PORT/big.bin"
    assert_equal "$(sha_of "$T/out2.bin")" "$(sha_of "$T/www/big.bin")"
    # the test PKI's root does not vouch for it, and plain text gets nothing
    run curl -sS --max-time 20 --cacert "$PKI/ca.pem" -o /dev/null "https://localhost:$PORT/big.bin"
    assert_failure
    refute_plain_http "$PORT"
    sum=$(sha_of "$T/autoca/ca.pem")

    # A second run keeps the CA: the same ca.pem still verifies the server.
    common_teardown
    http_server web2 "$PYTHON"
    run -0 curl -sS --max-time 20 --cacert "$T/autoca/ca.pem" -o "$T/out3.bin" \
        "https://localhost:$PORT/big.bin"
    assert_equal "$(sha_of "$T/out3.bin")" "$(sha_of "$T/www/big.bin")"
    assert_equal "$(sha_of "$T/autoca/ca.pem")" "$sum"
    run stat -c %a "$T/autoca"
    assert_output 700
}
