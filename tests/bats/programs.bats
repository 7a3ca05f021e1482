#!/usr/bin/env bats
# Real programs, unmodified, whose plain TCP client connections the shim
# turns into verified TLS (SPEC sections 3-5): event loops (asyncio, libuv,
# redis' ae), stream relays (socat), HTTP clients (curl, wget, Python's
# http.client and urllib) and redis' own tools.  Every peer speaks TLS only,
# so a program that reaches it in plaintext fails; each test checks the
# payload end to end (SHA-256 of what went each way) and what the TLS peer
# itself saw.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
    # An HTTP client must go straight to the test peer.
    unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
}

teardown() {
    common_teardown
}

# policy [key=value...]: a one-rule policy covering $PORT on loopback.
policy() {
    local f="$T/policy.conf" kv
    {
        echo "[lab]"
        echo "connect = 127.0.0.1:$PORT [::1]:$PORT localhost:$PORT"
        echo "ca_file = $PKI/ca.pem"
        for kv in "$@"; do echo "$kv"; done
    } >"$f"
    chmod 600 "$f"
    export TLSSHIM_CONF="$f"
}

# payload FILE BYTES: random bytes.
payload() {
    head -c "$2" /dev/urandom >"$1"
}

# echo_server [tls_server.py args...]: the TLS echo peer on $PORT, recording
# what it receives in $T/rec.bin and one JSON line per connection in
# $T/info.json.
echo_server() {
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode echo --record "$T/rec.bin" --info "$T/info.json" "$@"
}

# http_server BODY [HOST]: the HTTPS peer on $PORT serving BODY, one line per
# request in $T/http.log.
http_server() {
    local host=${2:-127.0.0.1}
    start_bg web "$PYTHON" "$PEERS/http_tls.py" --port "$PORT" --host "$host" \
        --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --body-file "$1" --log "$T/http.log"
    wait_port "$PORT" "$host"
}

# wait_lines FILE N: wait until FILE has at least N lines (the peers write
# a connection's line when it ends, which may be just after the client).
wait_lines() {
    local file=$1 n=$2 i
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        [[ -f $file ]] && (($(wc -l <"$file") >= n)) && return 0
        sleep 0.05
    done
    echo "wait_lines: $file has fewer than $n lines after ${WAIT_SECONDS}s" >&2
    [[ -f $file ]] && cat "$file" >&2
    return 1
}

# assert_echoed_over_tls SIZE: the echo peer had exactly one connection, a
# TLS 1.3 handshake with SNI absent or localhost, which carried SIZE bytes
# each way and ended with the client's close_notify.
assert_echoed_over_tls() {
    local size=$1
    wait_lines "$T/info.json" 1
    run wc -l <"$T/info.json"
    assert_output 1
    run json_field "$T/info.json" 1 handshake
    assert_output ok
    run json_field "$T/info.json" 1 version
    assert_output TLSv1.3
    run json_field "$T/info.json" 1 bytes_in
    assert_output "$size"
    run json_field "$T/info.json" 1 bytes_out
    assert_output "$size"
    run json_field "$T/info.json" 1 end
    assert_output close_notify
}

@test "python3 asyncio exchanges 1 MiB over TLS through its non-blocking epoll loop" {
    policy
    echo_server
    payload "$T/msg.bin" 1048576
    run -0 shim_run timeout 60 /usr/bin/python3 -c "
import asyncio

data = open('$T/msg.bin', 'rb').read()

async def main():
    loop = asyncio.get_running_loop()
    r, w = await asyncio.open_connection('127.0.0.1', $PORT)
    sock = w.get_extra_info('socket')

    async def send():
        for i in range(0, len(data), 16384):
            w.write(data[i:i + 16384])
            await w.drain()
        w.write_eof()

    async def receive():
        got = bytearray()
        while True:
            chunk = await r.read(65536)
            if not chunk:
                return bytes(got)
            got += chunk

    _, got = await asyncio.wait_for(asyncio.gather(send(), receive()), 50)
    w.close()
    await w.wait_closed()
    open('$T/out.bin', 'wb').write(got)
    print(type(loop._selector).__name__,
          'non-blocking' if sock.gettimeout() == 0 else 'blocking')

asyncio.run(main())
"
    # The loop waited in epoll on a non-blocking socket.
    assert_output "EpollSelector non-blocking"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/msg.bin")"
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$T/msg.bin")"
    assert_echoed_over_tls 1048576
}

@test "node net.connect exchanges 1 MiB over TLS through libuv" {
    policy
    echo_server
    payload "$T/msg.bin" 1048576
    cat >"$T/client.js" <<EOF
const net = require('net');
const fs = require('fs');
const data = fs.readFileSync('$T/msg.bin');
const chunks = [];
const timer = setTimeout(() => { console.error('timed out'); process.exit(4); }, 50000);
const s = net.connect({ host: '127.0.0.1', port: $PORT }, () => s.end(data));
s.on('data', (c) => chunks.push(c));
s.on('end', () => {
    fs.writeFileSync('$T/out.bin', Buffer.concat(chunks));
    clearTimeout(timer);
});
s.on('error', (e) => { console.error(e.message); process.exit(3); });
EOF
    run -0 shim_run timeout 60 node "$T/client.js"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/msg.bin")"
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$T/msg.bin")"
    assert_echoed_over_tls 1048576
}

@test "socat -u uploads 32 MiB over TLS and the server receives it intact" {
    policy
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode sink --record "$T/rec.bin" --info "$T/info.json"
    payload "$T/msg.bin" 33554432
    run -0 shim_run timeout 120 socat -u -b 65536 - "TCP:127.0.0.1:$PORT" <"$T/msg.bin"
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$T/msg.bin")"
    wait_lines "$T/info.json" 1
    run json_field "$T/info.json" 1 version
    assert_output TLSv1.3
    run json_field "$T/info.json" 1 bytes_in
    assert_output 33554432
    run json_field "$T/info.json" 1 end
    assert_output close_notify
}

@test "socat -u downloads 32 MiB over TLS from socat's own TLS server intact" {
    policy
    payload "$T/msg.bin" 33554432
    # The server end is socat's OpenSSL address: it only speaks TLS, and
    # -d -d makes it log the handshake.
    start_bg srv socat -d -d -u "OPEN:$T/msg.bin,rdonly" \
        "OPENSSL-LISTEN:$PORT,bind=127.0.0.1,reuseaddr,cert=$PKI/good.chain.pem,key=$PKI/good.key,verify=0"
    wait_port "$PORT" 127.0.0.1
    run -0 shim_run bash -c 'exec timeout 120 socat -u -b 65536 "TCP:127.0.0.1:$1" - >"$2"' \
        _ "$PORT" "$T/out.bin"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/msg.bin")"
    run grep -E 'SSL connection using TLS_' "$T/srv.log"
    assert_success
}

@test "bash /dev/tcp sends a request with printf and an external cat reads the 1 MiB answer over TLS" {
    policy
    payload "$T/body" 1048576
    http_server "$T/body"
    # The builtin printf writes fd 3 from the shell; cat, a new image that
    # knows nothing of TLS, reads the answer from it as its stdin.
    run -0 shim_run timeout 60 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1"
        printf "GET /devtcp HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n" "$1" >&3
        cat <&3 >"$2"' _ "$PORT" "$T/answer"
    run head -n 1 "$T/answer"
    assert_output --regexp $'^HTTP/1\\.[01] 200 OK\r$'
    run grep -c $'^Content-Length: 1048576\r$' "$T/answer"
    assert_output 1
    tail -c 1048576 "$T/answer" >"$T/out.bin"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/body")"
    run cat "$T/http.log"
    assert_output "GET /devtcp 127.0.0.1:$PORT"
}

# redis_server: redis-server with a plain port $RPORT and a TLS-only port
# $PORT (its own TLS, the test PKI's localhost certificate).
redis_server() {
    RPORT=$(free_port)
    start_bg redis redis-server --bind 127.0.0.1 --port "$RPORT" \
        --tls-port "$PORT" --tls-cert-file "$PKI/good.chain.pem" \
        --tls-key-file "$PKI/good.key" --tls-ca-cert-file "$PKI/ca.pem" \
        --tls-auth-clients no --save '' --appendonly no --dir "$T" \
        --daemonize no --logfile ''
    wait_port "$RPORT" 127.0.0.1
    wait_port "$PORT" 127.0.0.1
}

@test "redis-cli SETs and GETs a 100 KB value through redis's TLS-only port" {
    policy
    redis_server
    # The TLS port does not answer plain redis-cli: what works below is TLS.
    run timeout 20 redis-cli -p "$PORT" PING
    assert_failure
    refute_output --partial PONG
    # 100 KB of printable bytes: redis-cli --raw prints the value and "\n".
    head -c 76800 /dev/urandom | base64 -w0 >"$T/value"
    [ "$(stat -c %s "$T/value")" -eq 102400 ]
    run -0 shim_run timeout 20 redis-cli -p "$PORT" -x SET big <"$T/value"
    assert_output OK
    shim_run timeout 20 redis-cli -p "$PORT" --raw GET big >"$T/got"
    assert_equal "$(head -c -1 "$T/got" | sha256sum | cut -d' ' -f1)" "$(sha_of "$T/value")"
    # The server stored exactly those bytes (read back on the plain port).
    redis-cli -p "$RPORT" --raw GET big >"$T/stored"
    assert_equal "$(head -c -1 "$T/stored" | sha256sum | cut -d' ' -f1)" "$(sha_of "$T/value")"
}

@test "redis-benchmark with 50 clients runs SET and GET through redis's TLS-only port" {
    policy
    redis_server
    run -0 shim_run timeout 300 redis-benchmark -p "$PORT" -c 50 -n 20000 -t set,get -q
    run bash -c "tr '\r' '\n' <<<\"\$1\" | grep -E '^(SET|GET): [0-9.]+ requests per second'" _ "$output"
    assert_success
    assert_line --partial "SET: "
    assert_line --partial "GET: "
    # Every request reached the server: 20000 SETs and 20000 GETs.
    run -0 redis-cli -p "$RPORT" INFO commandstats
    assert_line --regexp '^cmdstat_set:calls=20000,'
    assert_line --regexp '^cmdstat_get:calls=20000,'
}

@test "curl fetches 1 MiB over http:// from a TLS-only server on 127.0.0.1" {
    policy
    payload "$T/body" 1048576
    http_server "$T/body"
    run -0 shim_run curl -sS --max-time 30 -o "$T/out.bin" "http://127.0.0.1:$PORT/curl4"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/body")"
    run cat "$T/http.log"
    assert_output "GET /curl4 127.0.0.1:$PORT"
}

@test "curl fetches 1 MiB over http:// from a TLS-only server on ::1" {
    policy
    payload "$T/body" 1048576
    http_server "$T/body" ::1
    run -0 shim_run curl -sS --max-time 30 -o "$T/out.bin" "http://[::1]:$PORT/curl6"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/body")"
    run cat "$T/http.log"
    assert_output "GET /curl6 [::1]:$PORT"
}

@test "wget fetches 1 MiB over http:// from a TLS-only server on 127.0.0.1" {
    policy
    payload "$T/body" 1048576
    http_server "$T/body"
    run -0 shim_run wget -q --tries=1 --timeout=30 -O "$T/out.bin" "http://127.0.0.1:$PORT/wget4"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/body")"
    run cat "$T/http.log"
    assert_output "GET /wget4 127.0.0.1:$PORT"
}

@test "wget fetches 1 MiB over http:// from a TLS-only server on ::1" {
    policy
    payload "$T/body" 1048576
    http_server "$T/body" ::1
    run -0 shim_run wget -q --tries=1 --timeout=30 -O "$T/out.bin" "http://[::1]:$PORT/wget6"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/body")"
    run cat "$T/http.log"
    assert_output "GET /wget6 [::1]:$PORT"
}

@test "python3 http.client fetches 1 MiB over http:// from a TLS-only server" {
    policy
    payload "$T/body" 1048576
    http_server "$T/body"
    run -0 shim_run timeout 60 /usr/bin/python3 -c "
import http.client
c = http.client.HTTPConnection('127.0.0.1', $PORT, timeout=30)
c.request('GET', '/httpclient')
r = c.getresponse()
body = r.read()
print(r.status, len(body))
open('$T/out.bin', 'wb').write(body)
"
    assert_output "200 1048576"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/body")"
    run cat "$T/http.log"
    assert_output "GET /httpclient 127.0.0.1:$PORT"
}

@test "python3 urllib fetches 1 MiB over http://localhost from a TLS-only server" {
    policy
    payload "$T/body" 1048576
    http_server "$T/body"
    run -0 shim_run timeout 60 /usr/bin/python3 -c "
import urllib.request
with urllib.request.urlopen('http://localhost:$PORT/urllib', timeout=30) as r:
    body = r.read()
    print(r.status, len(body))
open('$T/out.bin', 'wb').write(body)
"
    assert_output "200 1048576"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/body")"
    run cat "$T/http.log"
    assert_output "GET /urllib localhost:$PORT"
}
