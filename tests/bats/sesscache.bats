#!/usr/bin/env bats
# The persistent client session cache (session_cache_dir, man page
# tlsshim.conf(5)): short-lived programs, one connection each, resume the
# session an earlier process stored; untrusted or expired files are never
# used; concurrent processes never see a torn file; a session is bound to
# the rule's verification settings.  Resumption is counted on the server
# side (tls_server.py --info, session_reused).

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
    CACHE=$T/cache
}

teardown() {
    common_teardown
}

# policy [key=value...]: rule "lab" for 127.0.0.1:$PORT
policy() {
    local kv
    {
        echo "[lab]"
        echo "connect = 127.0.0.1:$PORT"
        echo "ca_file = ${CA:-$PKI/ca.pem}"
        for kv in "$@"; do echo "$kv"; done
    } > "$T/policy.conf"
    chmod 600 "$T/policy.conf"
    export TLSSHIM_CONF="$T/policy.conf"
}

echo_server() {
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode echo --info "$T/info.json" "$@"
}

# once N: one short-lived client process sending "hello N"; its stderr
# (the shim's log) goes to $T/once.N.err
once() {
    echo "hello $1" | TLSSHIM_DEBUG=${DEBUG:-1} shim_run "$PROGS/blockclient" \
        127.0.0.1 "$PORT" > "$T/once.$1.out" 2> "$T/once.$1.err" || {
        cat "$T/once.$1.err" >&2
        return 1
    }
    [ "$(cat "$T/once.$1.out")" = "hello $1" ]
}

# reused: the server's session_reused of every connection, one a line
reused() {
    "$PYTHON" -c 'import json,sys
for l in open(sys.argv[1]): print(str(json.loads(l)["session_reused"]).lower())' "$T/info.json"
}

# cache_files DIR: the session files of DIR (temporary files excluded)
cache_files() {
    find "$1" -maxdepth 1 -type f -name '[0-9a-f]*' | sort
}

@test "later processes resume the session stored by the first one" {
    policy "session_cache_dir = $CACHE"
    echo_server
    once 1
    once 2
    once 3
    run reused
    assert_output $'false\ntrue\ntrue'
    run cache_files "$CACHE"
    assert_equal "${#lines[@]}" 1
    run stat -c '%a %u' "${lines[0]}" "$CACHE"
    assert_line --index 0 "600 $(id -u)"
    assert_line --index 1 "700 $(id -u)"
    grep -q "resumed=yes" "$T/once.3.err"
}

@test "without session_cache_dir no process resumes" {
    policy
    echo_server
    once 1
    once 2
    once 3
    run reused
    assert_output $'false\nfalse\nfalse'
    [ ! -e "$CACHE" ]
}

@test "session_cache_dir = off in a rule overrides [defaults]" {
    {
        echo "[defaults]"
        echo "session_cache_dir = $CACHE"
        echo "[lab]"
        echo "connect = 127.0.0.1:$PORT"
        echo "ca_file = $PKI/ca.pem"
        echo "session_cache_dir = off"
    } > "$T/policy.conf"
    chmod 600 "$T/policy.conf"
    export TLSSHIM_CONF="$T/policy.conf"
    echo_server
    once 1
    once 2
    run reused
    assert_output $'false\nfalse'
    [ ! -e "$CACHE" ]
}

@test "TLS 1.2 sessions are stored and resumed too" {
    policy "session_cache_dir = $CACHE"
    echo_server --max-version TLSv1_2
    once 1
    once 2
    run reused
    assert_output $'false\ntrue'
    run json_field "$T/info.json" 2 version
    assert_output "TLSv1.2"
}

@test "auto uses XDG_RUNTIME_DIR/tlsshim when it is private, else is off" {
    policy "session_cache_dir = auto"
    echo_server
    mkdir -m 700 "$T/xdg"
    XDG_RUNTIME_DIR=$T/xdg once 1
    XDG_RUNTIME_DIR=$T/xdg once 2
    run cache_files "$T/xdg/tlsshim"
    assert_equal "${#lines[@]}" 1
    # a runtime directory others may enter is not one
    mkdir -m 755 "$T/xdg2"
    XDG_RUNTIME_DIR=$T/xdg2 once 3
    XDG_RUNTIME_DIR=$T/xdg2 once 4
    [ ! -e "$T/xdg2/tlsshim" ]
    grep -q "session_cache_dir = auto is off: XDG_RUNTIME_DIR $T/xdg2 has mode 0755 (want 0700)" "$T/once.3.err"
    run reused
    assert_output $'false\ntrue\nfalse\nfalse'
}

@test "a session file with mode 0644 is ignored and logged" {
    policy "session_cache_dir = $CACHE"
    echo_server
    once 1
    f=$(cache_files "$CACHE")
    chmod 644 "$f"
    once 2
    grep -q "session file $f has owner uid $(id -u) and mode 0644 (want uid $(id -u), 0600): ignored" "$T/once.2.err"
    run reused
    assert_output $'false\nfalse'
}

@test "a session file that is a symbolic link is ignored and logged" {
    policy "session_cache_dir = $CACHE"
    echo_server
    once 1
    f=$(cache_files "$CACHE")
    mv "$f" "$T/planted"
    ln -s "$T/planted" "$f"
    once 2
    grep -q "session file $f is a symbolic link: ignored" "$T/once.2.err"
    run reused
    assert_output $'false\nfalse'
}

@test "a session file owned by another user is ignored and logged" {
    [ "$(id -u)" = 0 ] || skip "needs root to give a file to another user"
    policy "session_cache_dir = $CACHE"
    echo_server
    once 1
    f=$(cache_files "$CACHE")
    chown 65534 "$f"
    once 2
    grep -q "session file $f has owner uid 65534 and mode 0600 (want uid 0, 0600): ignored" "$T/once.2.err"
    run reused
    assert_output $'false\nfalse'
}

@test "a cache directory others may write is refused and logged" {
    policy "session_cache_dir = $CACHE"
    echo_server
    once 1
    chmod 777 "$CACHE"
    once 2
    grep -q "session_cache_dir refused: $CACHE has mode 0777 (writable by group or others)" "$T/once.2.err"
    run reused
    assert_output $'false\nfalse'
}

@test "an expired session file is not used; the stored expiry is the server's ticket lifetime" {
    policy "session_cache_dir = $CACHE"
    echo_server
    once 1
    f=$(cache_files "$CACHE")
    # header: magic (8), name hash (32), expiry (8, big-endian), length (4)
    run "$PYTHON" -c 'import sys,time,struct
d=open(sys.argv[1],"rb").read()
assert d[:8]==b"TLSSHSC1", d[:8]
print(struct.unpack(">q", d[40:48])[0]-int(time.time()))' "$f"
    assert_success
    # Python's server (OpenSSL) gives TLS 1.3 tickets a lifetime of 7200 s
    (( output > 7100 && output <= 7200 ))
    "$PYTHON" -c 'import sys,time,struct
p=sys.argv[1]; d=bytearray(open(p,"rb").read())
d[40:48]=struct.pack(">q", int(time.time())-1)
open(p,"wb").write(d)' "$f"
    DEBUG=2 once 2
    grep -q "session file $f expired: not used" "$T/once.2.err"
    run reused
    assert_output $'false\nfalse'
}

@test "a file whose content was swapped with another session's is refused" {
    policy "session_cache_dir = $CACHE"
    echo_server
    once 1
    f=$(cache_files "$CACHE")
    # the name hash inside the file must match its name
    "$PYTHON" -c 'import sys
p=sys.argv[1]; d=bytearray(open(p,"rb").read()); d[8]^=1
open(p,"wb").write(d)' "$f"
    once 2
    grep -q "session file $f is malformed: ignored" "$T/once.2.err"
    run reused
    assert_output $'false\nfalse'
}

@test "a session stored under another ca_file is not used" {
    cp "$PKI/ca.pem" "$T/ca-copy.pem"
    CA=$PKI/ca.pem policy "session_cache_dir = $CACHE"
    echo_server
    once 1
    CA=$T/ca-copy.pem policy "session_cache_dir = $CACHE"
    once 2
    CA=$PKI/ca.pem policy "session_cache_dir = $CACHE"
    once 3
    run reused
    assert_output $'false\nfalse\ntrue'
    run cache_files "$CACHE"
    assert_equal "${#lines[@]}" 2
}

@test "20 concurrent processes never read a torn session file" {
    policy "session_cache_dir = $CACHE"
    echo_server
    local round i pid pids
    for round in 1 2; do
        pids=()
        for ((i = 0; i < 20; i++)); do
            start_bg "c$round.$i" bash -c "echo r$round.$i | \
                TLSSHIM_CONF=$TLSSHIM_CONF LD_PRELOAD=$SHIM_PRELOAD \
                $PROGS/blockclient -w 20 127.0.0.1 $PORT"
            pids+=("$(<"$T/c$round.$i.pid")")
        done
        for ((i = 0; i < 20; i++)); do
            wait "${pids[i]}" || {
                cat "$T/c$round.$i.log" >&2
                false
            }
            grep -qx "r$round.$i" "$T/c$round.$i.log"
            ! grep -q "tlsshim" "$T/c$round.$i.log"
        done
    done
    run "$PYTHON" -c 'import json,sys
ls=[json.loads(l) for l in open(sys.argv[1])]
print(len(ls), sum(l["handshake"]=="ok" for l in ls), sum(bool(l["session_reused"]) for l in ls[20:]))' "$T/info.json"
    # every handshake succeeded; the second round found a whole session
    assert_output "40 40 20"
    run cache_files "$CACHE"
    assert_equal "${#lines[@]}" 1
    # no temporary file left behind
    run find "$CACHE" -name '.*' -type f
    assert_output ""
}
