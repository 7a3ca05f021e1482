# Shared helpers of the bats end-to-end tests.  A test file does
#
#     load ../lib/common
#     setup() { common_setup; }
#     teardown() { common_teardown; }
#
# and then has: BUILDDIR, SRCDIR, TLSSHIM, SHIMLIB (the module's file),
# SHIM_PRELOAD (what LD_PRELOAD needs for it: in sanitizer builds the
# sanitizer runtime, TLSSHIM_TEST_PRELOAD, comes first, or last when it is
# given as TLSSHIM_TEST_PRELOAD_AFTER), SHIM_RUNTIME (that runtime, or
# empty), PROGS, PEERS, T (a fresh
# directory per test), PKI (certificates made once per bats run by
# tests/lib/pki.sh), bats-support and bats-assert, and the helpers below.
# Every process started with start_bg is stopped by its PID in teardown.

# Debian's interpreter: "python3" on PATH may be a version manager's shim.
PYTHON=/usr/bin/python3

# Seconds the wait_* helpers wait before they fail.
WAIT_SECONDS=10

# Tests may use "run -N" and "run --separate-stderr".
bats_require_minimum_version 1.5.0

load /usr/lib/bats/bats-support/load
load /usr/lib/bats/bats-assert/load

_common_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

common_setup() {
    local repo v
    repo=$(cd "$_common_lib_dir/../.." && pwd)
    BUILDDIR=${TLSSHIM_BUILDDIR:-$repo}
    SRCDIR=${TLSSHIM_SRCDIR:-$repo}
    TLSSHIM=$BUILDDIR/tlsshim
    SHIMLIB=$BUILDDIR/.libs/libtlsshim.so
    SHIM_RUNTIME=${TLSSHIM_TEST_PRELOAD:-}
    SHIM_PRELOAD=${SHIM_RUNTIME:+$SHIM_RUNTIME:}$SHIMLIB
    if [[ -z $SHIM_RUNTIME && -n ${TLSSHIM_TEST_PRELOAD_AFTER:-} ]]; then
        SHIM_RUNTIME=$TLSSHIM_TEST_PRELOAD_AFTER
        SHIM_PRELOAD=$SHIMLIB:$SHIM_RUNTIME
    fi
    PROGS=$BUILDDIR/tests/progs
    PEERS=$SRCDIR/tests/peers
    T=$BATS_TEST_TMPDIR
    PKI=$BATS_RUN_TMPDIR/pki
    export BUILDDIR SRCDIR SHIMLIB SHIM_RUNTIME SHIM_PRELOAD PROGS PEERS T PKI

    # Start clean: nothing the caller's environment says about tlsshim, nor
    # a preload or certificate locations, may leak into a test.
    for v in $(compgen -v TLSSHIM_); do
        unset "$v"
    done
    unset LD_PRELOAD SSL_CERT_FILE SSL_CERT_DIR SSLKEYLOGFILE

    _common_make_pki
}

# Generate the run's PKI once; concurrent test files wait on the lock.
_common_make_pki() {
    [[ -f $PKI/.complete ]] && return 0
    (
        flock -w 120 9 || {
            echo "common: timed out waiting for the PKI lock" >&2
            exit 1
        }
        if [[ ! -f $PKI/.complete ]]; then
            rm -rf "$PKI"
            sh "$SRCDIR/tests/lib/pki.sh" "$PKI" && : >"$PKI/.complete"
        fi
    ) 9>"$BATS_RUN_TMPDIR/pki.lock"
}

common_teardown() {
    local list=$T/.bg_pids pid i alive
    [[ -f $list ]] || return 0
    # TERM each process (and the process group start_bg gave it), then
    # KILL what is still there after a bounded wait.
    while read -r pid; do
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done <"$list"
    for ((i = 0; i < 50; i++)); do
        alive=0
        while read -r pid; do
            if kill -0 "$pid" 2>/dev/null || kill -0 -- "-$pid" 2>/dev/null; then
                alive=1
            fi
        done <"$list"
        ((alive)) || break
        sleep 0.1
    done
    while read -r pid; do
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done <"$list"
    rm -f "$list"
}

# start_bg NAME CMD...: run CMD in the background, output in $T/NAME.log,
# PID in $T/NAME.pid.  CMD gets its own process group (setsid), so teardown
# also reaches what it forks; its standard input is /dev/null.
start_bg() {
    local name=$1 pid
    shift
    [[ -n $name && $# -gt 0 ]] || {
        echo "usage: start_bg NAME CMD..." >&2
        return 2
    }
    # fd 3 is bats' own output: a background process holding it would make
    # bats wait for it.
    setsid "$@" >"$T/$name.log" 2>&1 </dev/null 3>&- &
    pid=$!
    echo "$pid" >"$T/$name.pid"
    echo "$pid" >>"$T/.bg_pids"
}

# free_port: print a TCP port that is free on both 127.0.0.1 and ::1.
free_port() {
    "$PYTHON" - <<'EOF'
import socket, sys
for _ in range(50):
    v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    v4.bind(("127.0.0.1", 0))
    port = v4.getsockname()[1]
    try:
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        v6.bind(("::1", port))
    except OSError:
        v4.close()
        continue
    v6.close()
    v4.close()
    print(port)
    sys.exit(0)
sys.exit("free_port: no port free on both 127.0.0.1 and ::1")
EOF
}

# Hex form of an address as /proc/net/tcp{,6} shows it; empty for "any".
_common_proc_addr() {
    local a b c d
    case $1 in
    ::1) echo 00000000000000000000000001000000 ;;
    ::) echo 00000000000000000000000000000000 ;;
    *.*.*.*)
        IFS=. read -r a b c d <<<"$1"
        printf '%02X%02X%02X%02X\n' "$d" "$c" "$b" "$a"
        ;;
    *) echo "" ;;
    esac
}

# True when something listens on PORT (at HOST, or at a wildcard address
# that covers it).  Reads /proc: connecting would be seen by the server.
_common_listening() {
    local port=$1 host=${2:-} want hexport
    hexport=$(printf '%04X' "$port")
    want=$(_common_proc_addr "$host")
    awk -v port="$hexport" -v want="$want" '
        FNR == 1 { next }
        $4 != "0A" { next }
        {
            split($2, a, ":")
            if (a[2] != port)
                next
            if (want == "" || a[1] == want || a[1] ~ /^0+$/)
                found = 1
        }
        END { exit !found }' /proc/net/tcp $([[ -r /proc/net/tcp6 ]] && echo /proc/net/tcp6)
}

# wait_port PORT [HOST]: wait until something listens on PORT.
wait_port() {
    local port=$1 host=${2:-} i
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        _common_listening "$port" "$host" && return 0
        sleep 0.05
    done
    echo "wait_port: nothing listens on ${host:-any address} port $port after ${WAIT_SECONDS}s" >&2
    return 1
}

# wait_file FILE [SECONDS]: wait until FILE exists and is not empty.
wait_file() {
    local file=$1 seconds=${2:-$WAIT_SECONDS} i
    for ((i = 0; i < seconds * 20; i++)); do
        [[ -s $file ]] && return 0
        sleep 0.05
    done
    echo "wait_file: $file still missing or empty after ${seconds}s" >&2
    return 1
}

# wait_grep FILE ERE [N]: wait until at least N lines of FILE (1 when
# not given) match ERE; a caller that wants N exactly then asserts it.
wait_grep() {
    local file=$1 ere=$2 want=${3:-1} i n
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        n=$(grep -cE -- "$ere" "$file" 2>/dev/null) || true
        ((${n:-0} >= want)) && return 0
        sleep 0.05
    done
    echo "wait_grep: ${n:-0} of $want lines match \"$ere\" in $file after ${WAIT_SECONDS}s:" >&2
    cat "$file" >&2
    return 1
}

# tls_server NAME PORT [ARGS...]: start tests/peers/tls_server.py and wait
# until it is listening.
tls_server() {
    local name=$1 port=$2 i pid
    shift 2
    # a log left by an earlier server of the same name would say READY
    # before the background job has truncated it
    rm -f "$T/$name.log"
    start_bg "$name" "$PYTHON" "$PEERS/tls_server.py" --port "$port" "$@"
    pid=$(<"$T/$name.pid")
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        grep -q '^READY' "$T/$name.log" 2>/dev/null && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "tls_server: $name exited before READY:" >&2
            cat "$T/$name.log" >&2
            return 1
        fi
        sleep 0.05
    done
    echo "tls_server: $name not READY after ${WAIT_SECONDS}s:" >&2
    cat "$T/$name.log" >&2
    return 1
}

# strip_runtime LIST: LIST (an LD_PRELOAD value) without the sanitizer
# runtime that tlsshim puts first in sanitizer builds.
strip_runtime() {
    printf '%s\n' "${1#"${SHIM_RUNTIME:+$SHIM_RUNTIME:}"}"
}

# shim_run CMD...: run CMD with the shim preloaded directly (no tlsshim
# command) and the TLSSHIM_* variables currently set in the test.
shim_run() {
    (
        local v
        for v in $(compgen -v TLSSHIM_); do
            export "$v"
        done
        export LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}$SHIM_PRELOAD"
        "$@"
    )
}

# json_field FILE LINE KEY: print KEY of the JSON object on line LINE of
# FILE (1-based; -1 is the last line), as tls_server.py --info and the
# tlsshim report write them.  Strings print bare, null/true/false as such,
# objects and lists as JSON.  Fails when the line or key does not exist.
json_field() {
    "$PYTHON" - "$@" <<'EOF'
import json, sys
path, line, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path) as f:
    lines = [l for l in f.read().splitlines() if l.strip()]
try:
    if line == 0:
        raise IndexError
    obj = json.loads(lines[line - 1 if line > 0 else line])
except IndexError:
    sys.exit("json_field: %s has no line %d" % (path, line))
if key not in obj:
    sys.exit("json_field: line %d of %s has no key %r" % (line, path, key))
v = obj[key]
print(v if isinstance(v, str) else json.dumps(v))
EOF
}

# sha_of FILE: print the SHA-256 of FILE in hex.
sha_of() {
    local sum
    sum=$(sha256sum <"$1") || return 1
    echo "${sum%% *}"
}
