#!/bin/sh
# A two-minute demonstration of tlsshim, offline: make a throwaway CA and
# server certificate, start `openssl s_server` on 127.0.0.1, and run a
# plaintext client (nc) under tlsshim with a one-rule policy that turns
# its connection into verified TLS.  Shows what the client sent and got
# back, tlsshim's log line, then the embedded default policy.  Exits
# non-zero if the exchange did not happen over TLS.
#
# usage: sh tests/demo.sh [PREFIX]     (PREFIX of the installation; ./_inst)
set -eu

prefix=${1:-$PWD/_inst}
tlsshim=$prefix/bin/tlsshim
if [ ! -x "$tlsshim" ]; then
    echo "demo: $tlsshim not found; run 'make install' first" >&2
    exit 1
fi
for tool in openssl nc; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "demo: $tool is needed" >&2
        exit 1
    }
done

# Only this script's policy counts, whatever the caller's environment says.
unset TLSSHIM_CONF TLSSHIM_DEBUG TLSSHIM_LOG TLSSHIM_REPORT
umask 077
work=$(mktemp -d "${TMPDIR:-/tmp}/tlsshim-demo.XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

quiet() {
    "$@" >"$work/cmd.out" 2>&1 || {
        cat "$work/cmd.out" >&2
        echo "demo: failed: $*" >&2
        exit 1
    }
}

# True when something listens on TCP port $1 of 127.0.0.1 (from /proc, so
# that probing does not open a connection to the server).
listening() {
    hex=$(printf '%04X' "$1")
    awk -v p="0100007F:$hex" 'NR > 1 && $2 == p && $4 == "0A" { f = 1 }
        END { exit !f }' /proc/net/tcp
}

echo "== 1. a throwaway CA and a certificate for 127.0.0.1"
quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$work/ca.key" -out "$work/ca.pem" -days 1 \
    -subj "/CN=tlsshim demo CA"
quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$work/server.key" -out "$work/server.csr" \
    -subj "/CN=localhost"
printf 'subjectAltName = IP:127.0.0.1, DNS:localhost\n' >"$work/ext.cnf"
quiet openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" \
    -CAkey "$work/ca.key" -set_serial 1 -days 1 \
    -extfile "$work/ext.cnf" -out "$work/server.pem"
echo "   $work/ca.pem"

echo "== 2. a TLS server: openssl s_server -rev (answers each line reversed)"
# Pick a free port: try random ones until s_server listens on one.
port=
tries=0
while [ -z "$port" ] && [ $tries -lt 20 ]; do
    tries=$((tries + 1))
    candidate=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
    listening "$candidate" && continue
    openssl s_server -accept "127.0.0.1:$candidate" -cert "$work/server.pem" \
        -key "$work/server.key" -rev -naccept 1 \
        >"$work/server.log" 2>&1 </dev/null &
    server_pid=$!
    i=0
    while [ $i -lt 50 ] && kill -0 "$server_pid" 2>/dev/null; do
        if listening "$candidate"; then
            port=$candidate
            break
        fi
        sleep 0.1
        i=$((i + 1))
    done
    if [ -z "$port" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
done
if [ -z "$port" ]; then
    cat "$work/server.log" >&2
    echo "demo: could not start openssl s_server" >&2
    exit 1
fi
echo "   listening on 127.0.0.1:$port (pid $server_pid)"

echo "== 3. the policy: one rule"
cat >"$work/policy.conf" <<EOF
[demo]
connect = 127.0.0.1:$port
ca_file = $work/ca.pem
EOF
sed 's/^/   /' "$work/policy.conf"

echo "== 4. a plaintext client under tlsshim:"
printf '   %s\n' \
    "printf 'hello\\n' | $tlsshim -d 1 -f policy.conf nc -q 1 127.0.0.1 $port"
status=0
bound=
command -v timeout >/dev/null 2>&1 && bound="timeout 30"
printf 'hello\n' | $bound "$tlsshim" -d 1 -f "$work/policy.conf" \
    nc -q 1 127.0.0.1 "$port" >"$work/client.out" 2>"$work/client.err" ||
    status=$?
echo "   the client sent:      hello"
echo "   the client received:  $(cat "$work/client.out")"
echo "   tlsshim logged:"
sed 's/^/     /' "$work/client.err"
# s_server -naccept 1 exits after the connection; give it a moment.
i=0
while [ $i -lt 50 ] && kill -0 "$server_pid" 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
done
kill "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
server_pid=
echo "   the server saw:"
grep -E 'CONNECTION ESTABLISHED|Protocol version|Ciphersuite|CONNECTION CLOSED' \
    "$work/server.log" | sed 's/^/     /' || true

echo "== 5. the default policy (what applies without -f; the installed"
echo "   $prefix/etc/tlsshim.conf is the embedded default): tlsshim --check"
"$tlsshim" --check | sed 's/^/   /'

if [ "$status" -ne 0 ] || [ "$(cat "$work/client.out")" != "olleh" ]; then
    echo "demo: FAILED: the client did not get its line back reversed over TLS" >&2
    exit 1
fi
echo "== OK: nc spoke plaintext, the wire carried verified TLS."
