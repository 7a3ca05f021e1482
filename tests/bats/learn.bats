#!/usr/bin/env bats
# tlsshim --learn and the report analysis of tlsshim --check (SPEC section
# 1): a program runs in audit mode; the policy written afterwards keeps the
# given one as it was and adds one rule per destination the program used in
# plaintext, with the evidence in comments; --probe asks those destinations
# (and nothing else) whether TLS answers and verifies; running the program
# again under the result gets TLS where the probe found it.  --check -r
# warns about plaintext use a report shows, and --check about rules that an
# earlier rule shadows entirely.
#
# The program is tests/peers/learn_client.py (plain HTTP and a small redis
# protocol); the servers are tests/peers/learn_server.py, which can also
# speak TLS on the same port, and http_tls.py.  The test of the HTTPS port
# (80 -> 443) runs in a network namespace of its own (unshare -rn), where
# those ports are free to bind.

bats_require_minimum_version 1.5.0

load ../lib/common

setup() {
    common_setup
    # the shim refuses policy files that others can write
    umask 022
    HTTP_PORT=$(free_port)
    REDIS_PORT=$(free_port)
    while [ "$REDIS_PORT" = "$HTTP_PORT" ]; do REDIS_PORT=$(free_port); done
    head -c 150000 /dev/urandom >"$T/blob"
    head -c 300000 /dev/urandom >"$T/payload"
    BLOB_SHA=$(sha_of "$T/blob")
    PAYLOAD_SHA=$(sha_of "$T/payload")
    CLIENT=("$PYTHON" "$PEERS/learn_client.py")
}

teardown() {
    common_teardown
}

# policy FILE: a policy file from standard input.
policy() {
    cat >"$1"
    chmod 644 "$1"
}

# learn_server NAME ARGS...: start tests/peers/learn_server.py, wait for READY.
learn_server() {
    local name=$1 i
    shift
    start_bg "$name" "$PYTHON" "$PEERS/learn_server.py" --info "$T/$name.info" "$@"
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        grep -q '^READY' "$T/$name.log" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "learn_server: $name not READY:" >&2
    cat "$T/$name.log" >&2
    return 1
}

# The plain HTTP server on $HTTP_PORT and the redis server on $REDIS_PORT
# (both address families, for a client that looks up "localhost"); with
# "tls", the redis server also speaks TLS on its port.
servers() {
    learn_server web --proto http --port "$HTTP_PORT" --body-file "$T/blob"
    if [ "${1:-}" = tls ]; then
        learn_server kv --proto redis --port "$REDIS_PORT" --dual \
            --tls-cert "$PKI/good.chain.pem" --tls-key "$PKI/good.key"
    else
        learn_server kv --proto redis --port "$REDIS_PORT" --dual
    fi
}

# The given policy: a comment, [global], and [defaults] trusting the test CA.
given_policy() {
    policy "$T/given.conf" <<EOF
# The lab's policy, kept as it is by tlsshim --learn.
[global]
default_action = plain   # nothing is made TLS unless a rule says so

[defaults]
ca_file = $PKI/ca.pem
EOF
}

# rule_block FILE NAME: the lines of FILE from the comments above rule NAME
# to its last key, each wrapped comment joined back into one line.
rule_block() {
    awk -v name="[$2]" '
        /^$/ { if (found) exit; n = 0; next }
        found && (/^\[/ || /^#/) { exit }
        /^#   / && n > 0 { line[n] = line[n] " " substr($0, 5); next }
        { line[++n] = $0 }
        $0 == name { found = 1 }
        END { if (found) for (i = 1; i <= n; i++) print line[i] }' "$1"
}

# listen_block FILE: the commented-out listen proposal of FILE, from its
# evidence to its key_file line, each wrapped comment joined into one line.
listen_block() {
    sed -n "/^# accepted connections on/,/^#key_file/p" "$1" | awk '
        /^#   / && n > 0 { line[n] = line[n] " " substr($0, 5); next }
        { line[++n] = $0 }
        END { for (i = 1; i <= n; i++) print line[i] }'
}

# info_field FILE KEY: KEY of each JSON line of a learn_server --info file,
# sorted (connections end in an order the test does not choose).
info_field() {
    "$PYTHON" -c '
import json, sys
out = []
for line in open(sys.argv[1]):
    v = json.loads(line)[sys.argv[2]]
    out.append(v if isinstance(v, str) else json.dumps(v))
print("\n".join(sorted(out)))' "$1" "$2"
}

@test "--learn writes the given policy plus a rule per plaintext destination, with the evidence above it" {
    servers
    given_policy
    run --separate-stderr "$TLSSHIM" --learn "$T/out.conf" -f "$T/given.conf" -- \
        "${CLIENT[@]}" --http "127.0.0.1:$HTTP_PORT" \
        --redis "localhost:$REDIS_PORT" --payload "$T/payload" --exit 3
    # COMMAND's exit status is tlsshim's
    assert_failure 3
    assert_line "http $BLOB_SHA"
    assert_line "redis $PAYLOAD_SHA"
    assert_equal "$(printf '%s\n' "$stderr" | tail -n 1)" \
        "tlsshim: $T/out.conf: 2 rules proposed (2 tls, 0 plain) from 2 connections"

    # the given policy comes first, byte for byte
    head -c "$(stat -c %s "$T/given.conf")" "$T/out.conf" | cmp - "$T/given.conf"

    # the address the program connected to, with what it sent
    run rule_block "$T/out.conf" "learned-127.0.0.1-$HTTP_PORT"
    assert_line "# 127.0.0.1:$HTTP_PORT: 1 connection, 1 in plaintext: http (method=GET) x1"
    assert_line "# the program connected to the address 127.0.0.1 without looking up a name"
    assert_line "# no rule matched it (default_action)"
    assert_line --partial "# not probed"
    assert_line "connect = 127.0.0.1:$HTTP_PORT"
    assert_line "action = tls"

    # the name the program looked up
    run rule_block "$T/out.conf" "learned-localhost-$REDIS_PORT"
    assert_line "# localhost:$REDIS_PORT: 1 connection, 1 in plaintext: redis x1"
    assert_line --regexp "^# the program looked up the name localhost \\(address (127\\.0\\.0\\.1|::1)\\)$"
    assert_line "connect = localhost:$REDIS_PORT"
    assert_line "action = tls"

    # nothing was probed: each server saw the program's connection only
    run info_field "$T/web.info" requests
    assert_output '["GET"]'
    run info_field "$T/kv.info" requests
    assert_output '["SET", "GET", "QUIT"]'

    # the file is a policy that tlsshim accepts, and each rule takes effect
    run --separate-stderr "$TLSSHIM" --check -f "$T/out.conf"
    assert_success
    assert_equal "$stderr" ""
    run "$TLSSHIM" --explain -f "$T/out.conf" "127.0.0.1:$HTTP_PORT"
    assert_line --partial "rule learned-127.0.0.1-$HTTP_PORT ("
}

@test "--learn --probe proposes TLS where it verifies on the same port, plain with the reason where there is none, and the program then gets TLS end to end" {
    servers tls
    given_policy
    # a port the program does not use: the probe must not touch it
    SINK_PORT=$(free_port)
    start_bg sink "$PYTHON" "$PEERS/raw_sink.py" --port "$SINK_PORT" \
        --record "$T/sink.bin" --info "$T/sink.info"
    wait_port "$SINK_PORT"

    run --separate-stderr "$TLSSHIM" --learn "$T/out.conf" --probe -f "$T/given.conf" -- \
        "${CLIENT[@]}" --http "127.0.0.1:$HTTP_PORT" \
        --redis "localhost:$REDIS_PORT" --payload "$T/payload"
    assert_success
    assert_line "http $BLOB_SHA"
    assert_line "redis $PAYLOAD_SHA"

    # the redis port answers TLS with a certificate the test CA verifies
    # for the name the program used
    run rule_block "$T/out.conf" "learned-localhost-$REDIS_PORT"
    assert_line --regexp "^# probe (127\\.0\\.0\\.1|\\[::1\\]):$REDIS_PORT \\(the same port\\): TLS verified \\(TLSv1\\.3, name localhost\\)$"
    assert_line "# proposed: TLS on the same port, verified"
    assert_line "action = tls"
    refute_line --partial "redirect"

    # the HTTP port has no TLS, nor has the https port: plain, with why
    run rule_block "$T/out.conf" "learned-127.0.0.1-$HTTP_PORT"
    assert_line "# probe 127.0.0.1:$HTTP_PORT (the same port): no TLS: wrong version number"
    assert_line --regexp "^# probe 127\\.0\\.0\\.1:443 \\(the https port\\): "
    assert_line "# proposed: plain, as no verified TLS was found"
    assert_line "action = plain"

    # the probes reached only what the program used: one more connection
    # to each server, none to the sink
    run info_field "$T/kv.info" tls
    assert_output $'false\ntrue'
    run info_field "$T/kv.info" requests
    assert_output $'["SET", "GET", "QUIT"]\n[]'
    run info_field "$T/web.info" requests
    assert_output $'["GET"]\n[]'
    [ ! -s "$T/sink.info" ] && [ ! -s "$T/sink.bin" ]

    run "$TLSSHIM" --check -f "$T/out.conf"
    assert_success

    # the program again, under the learned policy: redis over verified
    # TLS, the payload intact both ways; HTTP as before
    rm -f "$T/kv.info" "$T/web.info"
    run --separate-stderr "$TLSSHIM" -f "$T/out.conf" -r "$T/again.jsonl" -- \
        "${CLIENT[@]}" --http "127.0.0.1:$HTTP_PORT" \
        --redis "localhost:$REDIS_PORT" --payload "$T/payload"
    assert_success
    assert_line "http $BLOB_SHA"
    assert_line "redis $PAYLOAD_SHA"
    run info_field "$T/kv.info" tls
    assert_output true
    run info_field "$T/kv.info" set_sha256
    assert_output "$PAYLOAD_SHA"
    run info_field "$T/web.info" tls
    assert_output false
    run json_field "$T/again.jsonl" 1 rule
    assert_output "learned-localhost-$REDIS_PORT"
    run json_field "$T/again.jsonl" 1 outcome
    assert_output ok
    run json_field "$T/again.jsonl" 1 verify
    assert_output ok
}

# smtp_server NAME PORT MODE CERT: tests/peers/starttls_server.py speaking
# SMTP on 127.0.0.1:PORT in MODE with the certificate CERT (good,
# wronghost), recording each connection in $T/NAME.jsonl.
smtp_server() {
    start_bg "$1" "$PYTHON" "$PEERS/starttls_server.py" --proto smtp \
        --port "$2" --mode "$3" --cert "$PKI/$4.chain.pem" --key "$PKI/$4.key" \
        --record "$T/$1.jsonl"
    wait_port "$2"
}

# smtp_records FILE: "tls pre data" of each connection a starttls_server.py
# recorded, in order: whether TLS came up, what it received in plaintext
# (as a JSON string), and the hashes of the mails it received.
smtp_records() {
    "$PYTHON" -c '
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    print(o["tls"], json.dumps(o["pre"]), " ".join(o["data_sha256"]) or "-")' "$1"
}

@test "--learn --probe asks SMTP servers for STARTTLS: starttls = smtp where it verifies, and why not where it is not offered, refused, or the certificate fails" {
    given_policy
    local ok=$(free_port) none=$(free_port) refused=$(free_port) wrong=$(free_port)
    smtp_server ok "$ok" normal good
    smtp_server none "$none" nostarttls good
    smtp_server refused "$refused" refuse good
    smtp_server wrong "$wrong" normal wronghost
    MAIL_SHA=$(base64 -w 76 "$T/payload" | sed 's/$/\r/' | sha256sum)
    MAIL_SHA=${MAIL_SHA%% *}

    run --separate-stderr "$TLSSHIM" --learn "$T/out.conf" --probe -f "$T/given.conf" -- \
        "${CLIENT[@]}" --payload "$T/payload" --smtp "127.0.0.1:$ok" \
        --smtp "127.0.0.1:$none" --smtp "127.0.0.1:$refused" --smtp "127.0.0.1:$wrong"
    assert_success
    assert_equal "$output" "$(printf "smtp $MAIL_SHA\n%.0s" 1 2 3 4)"
    assert_equal "$(printf '%s\n' "$stderr" | tail -n 1)" \
        "tlsshim: $T/out.conf: 4 rules proposed (1 tls, 3 plain) from 4 connections"

    run rule_block "$T/out.conf" "learned-127.0.0.1-$ok"
    assert_line "# 127.0.0.1:$ok: 1 connection, 1 in plaintext: smtp x1"
    assert_line "# probe 127.0.0.1:$ok (the same port): no TLS: wrong version number"
    assert_line "# probe 127.0.0.1:$ok (STARTTLS smtp on the same port): STARTTLS accepted; TLS verified (TLSv1.3, name 127.0.0.1)"
    assert_line --regexp "^# probe 127\\.0\\.0\\.1:465 \\(the smtps port\\): "
    assert_line --partial "# proposed: STARTTLS (smtp) on the same port, verified"
    assert_line "action = tls"
    assert_line "starttls = smtp"
    refute_line --partial "redirect"

    run rule_block "$T/out.conf" "learned-127.0.0.1-$none"
    assert_line "# probe 127.0.0.1:$none (STARTTLS smtp on the same port): no STARTTLS: the server does not offer STARTTLS (not in its EHLO answer)"
    assert_line "# proposed: plain, as no verified TLS was found"
    assert_line "action = plain"
    refute_line --partial "starttls ="

    run rule_block "$T/out.conf" "learned-127.0.0.1-$refused"
    assert_line "# probe 127.0.0.1:$refused (STARTTLS smtp on the same port): no STARTTLS: STARTTLS refused: \"454 4.7.0 TLS not available\""
    assert_line "action = plain"

    run rule_block "$T/out.conf" "learned-127.0.0.1-$wrong"
    assert_line "# probe 127.0.0.1:$wrong (STARTTLS smtp on the same port): STARTTLS accepted; TLS, but certificate verify failed: hostname mismatch (wanted 127.0.0.1, certificate has wrong.test)"
    assert_line "# proposed: plain, as no verified TLS was found"
    # what to write once it verifies (rule_block joins the indented lines)
    assert_line --partial "prints), use: action = tls starttls = smtp"
    assert_line "action = plain"
    run grep -c -x -e "#   action = tls" -e "#   starttls = smtp" "$T/out.conf"
    assert_output 2

    # the probes spoke the dialogue and nothing of the program's: on the
    # good server, the program's mail in plaintext, a ClientHello that
    # SMTP cannot read, then EHLO and STARTTLS and a handshake, no mail
    run smtp_records "$T/ok.jsonl"
    assert_line --index 0 --partial 'False "EHLO client.test\r\nMAIL FROM:'
    assert_line --index 0 --partial " $MAIL_SHA"
    assert_line --index 1 --regexp '^False "\\u0016\\u0003'
    assert_line --index 2 'True "EHLO [127.0.0.1]\r\nSTARTTLS\r\n" -'
    assert_equal "${#lines[@]}" 3

    # fed back: the mail goes over verified TLS, nothing of it in plaintext
    run --separate-stderr "$TLSSHIM" -f "$T/out.conf" -r "$T/again.jsonl" -- \
        "${CLIENT[@]}" --payload "$T/payload" --smtp "127.0.0.1:$ok" --smtp "127.0.0.1:$none"
    assert_success
    assert_equal "$output" "$(printf "smtp $MAIL_SHA\n%.0s" 1 2)"
    run smtp_records "$T/ok.jsonl"
    assert_line --index 3 'True "EHLO [127.0.0.1]\r\nSTARTTLS\r\n" '"$MAIL_SHA"
    assert_equal "${#lines[@]}" 4
    run smtp_records "$T/none.jsonl"
    assert_line --index 3 --partial 'False "EHLO client.test\r\nMAIL FROM:'
    run json_field "$T/again.jsonl" 1 starttls
    assert_output smtp
    run json_field "$T/again.jsonl" 1 verify
    assert_output ok
}

# mysql_server NAME PORT MODE: tests/peers/starttls_server.py speaking
# MySQL on 127.0.0.1:PORT in MODE with the good certificate, recording each
# connection in $T/NAME.jsonl.
mysql_server() {
    start_bg "$1" "$PYTHON" "$PEERS/starttls_server.py" --proto mysql \
        --port "$2" --mode "$3" --cert "$PKI/good.chain.pem" \
        --key "$PKI/good.key" --record "$T/$1.jsonl"
    wait_port "$2"
}

# mysql_record FILE CONN EXPR: EXPR (Python, over the record r) holds for
# connection CONN of a starttls_server.py record file.
mysql_record() {
    "$PYTHON" -c '
import json, sys
recs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    recs[r["conn"]] = r
r = recs.get(int(sys.argv[2]))
if r is None or not eval(sys.argv[3]):
    sys.exit("mysql_record: %s\n  is false for %s" % (sys.argv[3], json.dumps(r)))' "$@"
}

@test "--learn --probe asks a MySQL server for TLS with an SSLRequest: starttls = mysql where it verifies, plain where the greeting offers no SSL; fed back, the login goes over TLS" {
    given_policy
    local ok=$(free_port) nossl=$(free_port)
    while [ "$nossl" = "$ok" ]; do nossl=$(free_port); done
    mysql_server myok "$ok" normal
    mysql_server mynossl "$nossl" nostarttls
    local row="S: row $(printf '%s' "SELECT 'tlsshim'" | sha256sum | cut -d' ' -f1)"

    run --separate-stderr "$TLSSHIM" --learn "$T/out.conf" --probe -f "$T/given.conf" -- \
        "$BASH" -c '"$1" "$2" --proto mysql --port "$3" &&
                    "$1" "$2" --proto mysql --port "$4"' - \
        "$PYTHON" "$PEERS/proto_client.py" "$ok" "$nossl"
    assert_success
    # the program logged in twice in plaintext, the greetings as the
    # servers sent them (one offering SSL, one not)
    assert_equal "$(grep -c -x "$row" <<<"$output")" 2
    assert_line --index 0 "S: greeting seq=0 version=5.5.5-10.11.0-MariaDB-fake ssl=yes"
    assert_line "S: greeting seq=0 version=5.5.5-10.11.0-MariaDB-fake ssl=no"
    assert_equal "$(printf '%s\n' "$stderr" | tail -n 1)" \
        "tlsshim: $T/out.conf: 2 rules proposed (1 tls, 1 plain) from 2 connections"

    run rule_block "$T/out.conf" "learned-127.0.0.1-$ok"
    assert_line "# 127.0.0.1:$ok: 1 connection, 1 in plaintext: mysql x1"
    assert_line --regexp "^# probe 127\\.0\\.0\\.1:$ok \\(the same port\\): no TLS"
    assert_line "# probe 127.0.0.1:$ok (STARTTLS mysql on the same port): STARTTLS accepted; TLS verified (TLSv1.3, name 127.0.0.1)"
    assert_line --partial "# proposed: STARTTLS (mysql) on the same port, verified"
    assert_line "action = tls"
    assert_line "starttls = mysql"

    run rule_block "$T/out.conf" "learned-127.0.0.1-$nossl"
    assert_line "# 127.0.0.1:$nossl: 1 connection, 1 in plaintext: mysql x1"
    assert_line "# probe 127.0.0.1:$nossl (STARTTLS mysql on the same port): no STARTTLS: the server does not offer SSL (no CLIENT_SSL in its greeting's capability flags)"
    assert_line "# proposed: plain, as no verified TLS was found"
    assert_line "action = plain"
    refute_line "starttls = mysql"

    # the STARTTLS probe (the third connection, after the program's and
    # the same-port probe's) sent only an SSLRequest of fixed flags
    # (0x000aa205 and CLIENT_SSL) and a handshake: no login, no user
    mysql_record "$T/myok.jsonl" 1 "not r['tls'] and r['mysql']['user'] == 'user'"
    mysql_record "$T/myok.jsonl" 3 "r['tls'] and r['pre'] == ' \x00\x00\x01\x05\xaa\x0a\x00\x00\x00\x00\x01!' + '\x00' * 23"
    mysql_record "$T/myok.jsonl" 3 "r['mysql']['ssl_caps'] == 0x000aaa05 and r['post'] == '' and r['mysql']['user'] is None"
    # the server without SSL saw nothing of the STARTTLS probe: it read the
    # greeting and closed
    mysql_record "$T/mynossl.jsonl" 3 "not r['tls'] and r['pre'] == '' and r['mysql']['user'] is None"

    # fed back: the login and the query go over verified TLS
    run --separate-stderr "$TLSSHIM" -f "$T/out.conf" -r "$T/again.jsonl" -- \
        "$PYTHON" "$PEERS/proto_client.py" --proto mysql --port "$ok"
    assert_success
    assert_line --index 0 "S: greeting seq=0 version=5.5.5-10.11.0-MariaDB-fake ssl=no"
    assert_line "$row"
    mysql_record "$T/myok.jsonl" 4 "r['tls'] and r['mysql']['logged_in'] and r['mysql']['user'] == 'user' and 'user' not in r['pre']"
    run json_field "$T/again.jsonl" 1 starttls
    assert_output mysql
    run json_field "$T/again.jsonl" 1 verify
    assert_output ok
}

@test "a plaintext HTTP, SMTP and redis client: --learn --probe proposes redirect = :443, starttls = smtp and plain, which fed back give verified TLS to the first two (own network namespace)" {
    unshare -rn true 2>/dev/null || skip "no user and network namespaces (unshare -rn)"
    command -v ip >/dev/null || skip "ip (iproute2) is not installed"
    given_policy
    policy "$T/audit.conf" <<'EOF'
[global]
default_action = audit
EOF
    MAIL_SHA=$(base64 -w 76 "$T/payload" | sed 's/$/\r/' | sha256sum)
    MAIL_SHA=${MAIL_SHA%% *}
    # Everything below runs in a fresh network namespace, where only this
    # test's servers listen on 127.0.0.1's usual ports; their PIDs go to
    # the list teardown stops.  HTTP has TLS on a second port (443), SMTP
    # offers STARTTLS, redis has no TLS at all.
    cat >"$T/ns.sh" <<'EOF'
set -u
ip link set lo up
bg() {
    local name=$1 i
    shift
    setsid "$@" >"$T/$name.log" 2>&1 </dev/null &
    echo $! >>"$T/.bg_pids"
    for ((i = 0; i < 200; i++)); do
        grep -q '^READY' "$T/$name.log" && return 0
        sleep 0.05
    done
    echo "$name not READY" >&2
    return 1
}
bg web "$PYTHON" "$PEERS/learn_server.py" --proto http --port 80 \
    --body-file "$T/blob" --info "$T/web.info" || exit 1
bg web443 "$PYTHON" "$PEERS/http_tls.py" --port 443 \
    --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
    --body-file "$T/blob" --log "$T/web443.requests" || exit 1
bg mail "$PYTHON" "$PEERS/starttls_server.py" --proto smtp --port 25 \
    --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
    --record "$T/mail.jsonl" || exit 1
bg kv "$PYTHON" "$PEERS/learn_server.py" --proto redis --port 6379 \
    --info "$T/kv.info" || exit 1
# an HTTPS port the program never used: nothing may probe it
bg sink "$PYTHON" "$PEERS/raw_sink.py" --port 8443 \
    --record "$T/sink.bin" --info "$T/sink.info" || exit 1
client=("$PYTHON" "$PEERS/learn_client.py" --http 127.0.0.1:80
    --smtp 127.0.0.1:25 --redis 127.0.0.1:6379 --payload "$T/payload")
"$TLSSHIM" -f "$T/audit.conf" -r "$T/audit.jsonl" -- "${client[@]}" \
    >"$T/audit.out" 2>"$T/audit.err"
echo "audit=$?"
"$TLSSHIM" --learn "$T/out.conf" --probe -f "$T/given.conf" -- "${client[@]}" \
    >"$T/learn.out" 2>"$T/learn.err"
echo "learn=$?"
"$TLSSHIM" -f "$T/out.conf" -r "$T/again.jsonl" -- "${client[@]}" \
    >"$T/again.out" 2>"$T/again.err"
echo "again=$?"
EOF
    run env T="$T" PEERS="$PEERS" PKI="$PKI" PYTHON="$PYTHON" \
        TLSSHIM="$TLSSHIM" timeout 120 unshare -rn bash "$T/ns.sh"
    common_teardown
    assert_line audit=0
    assert_line learn=0
    assert_line again=0
    for run_name in audit learn again; do
        assert_equal "$(cat "$T/$run_name.out")" \
            "$(printf 'http %s\nsmtp %s\nredis %s' "$BLOB_SHA" "$MAIL_SHA" "$PAYLOAD_SHA")"
    done

    # the audit run's report: every field of SPEC section 8, of the right
    # type; no rule matched, so rule and host are null; the first bytes
    # name each protocol
    run "$PYTHON" - "$T/audit.jsonl" <<'EOF'
import json, sys
want = {
    "id": str, "event": str, "ts": str, "duration_ms": int, "pid": int,
    "role": str, "rule": type(None), "action": str, "peer": str,
    "host": type(None), "sni": type(None), "version": type(None),
    "starttls": type(None), "outcome": str, "error": type(None),
    "cipher": type(None), "alpn": (str, type(None)), "resumed": bool,
    "verify": type(None), "ocsp": str, "peer_cert": type(None),
    "bytes_in": int, "bytes_out": int, "handshake_ms": type(None),
    "first_bytes": str, "first_detail": (str, type(None)),
}
for line in open(sys.argv[1]):
    o = json.loads(line)
    for k, t in want.items():
        assert k in o, "missing %s in %s" % (k, o)
        assert isinstance(o[k], t), "%s: %r in %s" % (k, o[k], o)
    assert (o["event"], o["role"], o["action"], o["outcome"]) == \
        ("close", "client", "audit", "audit"), o
    print(o["peer"], o["first_bytes"], o["first_detail"] or "-")
EOF
    assert_success
    assert_line "127.0.0.1:80 http method=GET"
    assert_line "127.0.0.1:25 smtp -"
    assert_line "127.0.0.1:6379 redis -"
    assert_equal "${#lines[@]}" 3

    # the proposals, each with the evidence of its probes
    run rule_block "$T/out.conf" "learned-127.0.0.1-80"
    assert_line "# probe 127.0.0.1:80 (the same port): no TLS: wrong version number"
    assert_line "# probe 127.0.0.1:443 (the https port): TLS verified (TLSv1.3, name 127.0.0.1)"
    assert_line "# proposed: TLS on port 443 (https), verified"
    assert_line "connect = 127.0.0.1:80"
    assert_line "action = tls"
    assert_line "redirect = :443"
    run rule_block "$T/out.conf" "learned-127.0.0.1-25"
    assert_line "# probe 127.0.0.1:25 (the same port): no TLS: wrong version number"
    assert_line "# probe 127.0.0.1:25 (STARTTLS smtp on the same port): STARTTLS accepted; TLS verified (TLSv1.3, name 127.0.0.1)"
    assert_line "# probe 127.0.0.1:465 (the smtps port): no TCP connection: Connection refused"
    assert_line "connect = 127.0.0.1:25"
    assert_line "action = tls"
    assert_line "starttls = smtp"
    refute_line --partial "redirect ="
    run rule_block "$T/out.conf" "learned-127.0.0.1-6379"
    assert_line --regexp "^# probe 127\\.0\\.0\\.1:6379 \\(the same port\\): no TLS: "
    assert_line "# proposed: plain, as no verified TLS was found"
    assert_line "connect = 127.0.0.1:6379"
    assert_line "action = plain"
    assert_equal "$(tail -n 1 "$T/learn.err")" \
        "tlsshim: $T/out.conf: 3 rules proposed (2 tls, 1 plain) from 3 connections"

    # fed back: verified TLS to 443 for the HTTP the program sent to port
    # 80, the mail over STARTTLS, redis as the proposal says: plain
    run "$PYTHON" - "$T/again.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    print(o["rule"], o["peer"], o["outcome"], o["verify"], o["version"],
          o["starttls"])
EOF
    assert_line "learned-127.0.0.1-80 127.0.0.1:80 ok ok TLSv1.3 None"
    assert_line "learned-127.0.0.1-25 127.0.0.1:25 ok ok TLSv1.3 smtp"
    assert_equal "${#lines[@]}" 2
    run cat "$T/web443.requests"
    assert_output "GET /blob 127.0.0.1:80"
    run info_field "$T/web.info" requests
    # port 80 saw the audit and learning runs and the probe, nothing after
    assert_output $'["GET"]\n["GET"]\n[]'
    # the mail server: the mail in plaintext twice (audit, learning), the
    # two probes, then the mail over TLS with nothing of it in plaintext
    run smtp_records "$T/mail.jsonl"
    assert_line --index 0 --partial 'False "EHLO client.test\r\nMAIL FROM:'
    assert_line --index 1 --partial 'False "EHLO client.test\r\nMAIL FROM:'
    assert_line --index 2 --regexp '^False "\\u0016\\u0003'
    assert_line --index 3 'True "EHLO [127.0.0.1]\r\nSTARTTLS\r\n" -'
    assert_line --index 4 'True "EHLO [127.0.0.1]\r\nSTARTTLS\r\n" '"$MAIL_SHA"
    assert_equal "${#lines[@]}" 5
    # redis: plaintext every time, the payload intact; the probe's
    # ClientHello was answered with an error and nothing stored
    run info_field "$T/kv.info" tls
    assert_output $'false\nfalse\nfalse\nfalse'
    run info_field "$T/kv.info" requests
    assert_output $'["SET", "GET", "QUIT"]\n["SET", "GET", "QUIT"]\n["SET", "GET", "QUIT"]\n[]'
    run info_field "$T/kv.info" set_sha256
    assert_output "$(printf '%s\n%s\n%s\nnull' "$PAYLOAD_SHA" "$PAYLOAD_SHA" "$PAYLOAD_SHA")"
    [ ! -s "$T/sink.info" ] && [ ! -s "$T/sink.bin" ]
}

@test "--learn puts the proposals before the catch-all rule that let them through, and keeps the policy's text" {
    learn_server web --proto http --port "$HTTP_PORT" --body-file "$T/blob"
    policy "$T/given.conf" <<EOF
[global]
default_action = deny

[defaults]
ca_file = $PKI/ca.pem

[internal]
connect = 10.0.0.0/8
action = tls

# everything else stays plaintext for now
[rest]
connect = *
action = plain
EOF
    run --separate-stderr "$TLSSHIM" --learn "$T/out.conf" -f "$T/given.conf" -- \
        "${CLIENT[@]}" --http "127.0.0.1:$HTTP_PORT"
    assert_success
    assert_output "http $BLOB_SHA"

    # the catch-all was audited during the run
    run rule_block "$T/out.conf" "learned-127.0.0.1-$HTTP_PORT"
    assert_line "# let through by rule rest"

    # the block sits right above the catch-all's comment; without it, the
    # file is the given one
    run grep -n -e '^\[learned-' -e '^# everything else' -e '^\[rest\]' "$T/out.conf"
    assert_line --index 0 --regexp "^[0-9]+:\\[learned-127\\.0\\.0\\.1-$HTTP_PORT\\]$"
    assert_line --index 1 --regexp "^[0-9]+:# everything else stays plaintext for now$"
    assert_line --index 2 --regexp "^[0-9]+:\\[rest\\]$"
    sed '/^# Proposed by tlsshim --learn/,/^# End of the rules proposed by tlsshim --learn/d' \
        "$T/out.conf" | cat -s >"$T/stripped"
    cat -s "$T/given.conf" | cmp - "$T/stripped"

    # the proposal takes effect: it comes before the catch-all
    run "$TLSSHIM" --explain -f "$T/out.conf" "127.0.0.1:$HTTP_PORT"
    assert_line --partial "rule learned-127.0.0.1-$HTTP_PORT ("
    run "$TLSSHIM" --explain -f "$T/out.conf" "127.0.0.1:1"
    assert_line --partial "rule rest ("
}

@test "--learn proposes a listen rule, commented out, for the local addresses that accepted plaintext; completed, it serves verified TLS there" {
    given_policy
    PORT=$(free_port)
    # the program is a plain server on both address families; tlsshim
    # --learn is stopped by a signal, which it passes on, and still writes
    start_bg learner "$TLSSHIM" --learn "$T/out.conf" -f "$T/given.conf" -- \
        "$PYTHON" "$PEERS/plain_server.py" --host :: --port "$PORT" \
        --mode upper --log "$T/conns.log"
    wait_port "$PORT"
    run "$PYTHON" -c "
import socket
for host in ('127.0.0.1', '::1'):
    s = socket.create_connection((host, $PORT))
    s.sendall(b'*1\r\n\$4\r\nping\r\n')
    print(host, s.recv(100).decode().split()[-1]); s.close()"
    assert_line "127.0.0.1 PING"
    assert_line "::1 PING"
    for ((i = 0; i < 50; i++)); do
        [ "$(wc -l <"$T/conns.log" 2>/dev/null)" = 2 ] && break
        sleep 0.1
    done
    kill -TERM "$(cat "$T/learner.pid")"
    for ((i = 0; i < 100; i++)); do [ -e "$T/out.conf" ] && break; sleep 0.1; done
    run cat "$T/learner.log"
    assert_line "tlsshim: $T/out.conf: 0 rules proposed (0 tls, 0 plain) and 1 listen rule to complete (commented out) from 2 connections"

    # the evidence and the rule, every line of it commented out
    run listen_block "$T/out.conf"
    assert_line "# accepted connections on 127.0.0.1:$PORT, [::1]:$PORT: 2 connections, 2 in plaintext: redis x2"
    assert_line "# from 127.0.0.1, ::1"
    assert_line "# no rule matched it (default_listen_action)"
    assert_line --partial "# proposed, commented out: TLS on the program's listening address. tlsshim cannot know the certificate and key this server should offer"
    assert_line "#[learned-listen-127.0.0.1-$PORT]"
    assert_line "#listen = 127.0.0.1:$PORT [::1]:$PORT"
    assert_line "#action = tls"
    assert_line "#cert_file = /path/to/certificate.pem"
    assert_line "#key_file = /path/to/private-key.pem"
    refute_line --regexp '^[^#]'
    # as written, the file changes nothing for the server
    run "$TLSSHIM" --explain -f "$T/out.conf" --listen "127.0.0.1:$PORT"
    refute_output --partial "learned-listen"
    run "$TLSSHIM" --check -f "$T/out.conf"
    assert_success

    # completed as the comment says, the rule serves verified TLS on both
    # addresses, and the report names them
    sed -e "/^#\\[learned-listen-/,/^#key_file/s/^#//" \
        -e "s|^cert_file = /path/to/certificate.pem|cert_file = $PKI/good.chain.pem|" \
        -e "s|^key_file = /path/to/private-key.pem|key_file = $PKI/good.key|" \
        "$T/out.conf" >"$T/done.conf"
    chmod 644 "$T/done.conf"
    common_teardown
    start_bg srv "$TLSSHIM" -f "$T/done.conf" -r "$T/served.jsonl" -- \
        "$PYTHON" "$PEERS/plain_server.py" --host :: --port "$PORT" --mode upper
    wait_port "$PORT"
    run "$PYTHON" -c "
import socket, ssl
ctx = ssl.create_default_context(cafile='$PKI/ca.pem')
for host in ('127.0.0.1', '::1'):
    s = ctx.wrap_socket(socket.create_connection((host, $PORT)), server_hostname='localhost')
    s.sendall(b'over tls'); print(host, s.version(), s.recv(100).decode()); s.close()"
    assert_line "127.0.0.1 TLSv1.3 OVER TLS"
    assert_line "::1 TLSv1.3 OVER TLS"
    for ((i = 0; i < 50; i++)); do
        [ "$(wc -l <"$T/served.jsonl" 2>/dev/null)" = 2 ] && break
        sleep 0.1
    done
    run "$PYTHON" -c "
import json
for l in open('$T/served.jsonl'):
    o = json.loads(l); print(o['role'], o['rule'], o['local'], o['outcome'])"
    assert_line "server learned-listen-127.0.0.1-$PORT 127.0.0.1:$PORT ok"
    assert_line "server learned-listen-127.0.0.1-$PORT [::1]:$PORT ok"
}

@test "--learn writes nothing when COMMAND cannot run, and refuses what it does not take" {
    run -127 "$TLSSHIM" --learn "$T/out.conf" -- "$T/no-such-command"
    [ ! -e "$T/out.conf" ]
    run "$TLSSHIM" --learn "$T/out.conf"
    assert_failure 2
    assert_output --partial "no COMMAND given"
    run "$TLSSHIM" --probe -- true
    assert_failure 2
    assert_output --partial "--probe needs --learn"
    run "$TLSSHIM" --learn "$T/out.conf" -r "$T/r.jsonl" -- true
    assert_failure 2
    assert_output --partial "-r does not apply to --learn"
    run "$TLSSHIM" --learn "$T/no-dir/out.conf" -- true
    assert_failure 2
    [ ! -e "$T/no-dir" ]
    # a program that talks to nobody: the given policy, and a note
    run "$TLSSHIM" --learn "$T/out.conf" -- true
    assert_success
    run "$TLSSHIM" --check -f "$T/out.conf"
    assert_success
    run grep -c "No destination was reached in plaintext" "$T/out.conf"
    assert_output 1
}

@test "--check -r warns about the destinations a report shows were used in plaintext, naming the rule or catch-all" {
    policy "$T/p.conf" <<'EOF'
[global]
default_action = audit

[watch]
connect = 10.0.0.0/8
action = audit
EOF
    # audit lines in plaintext, the program's own TLS, a passthrough, an ok
    # TLS connection, and a name with control characters
    line() {
        printf '{"id": "%s", "event": "close", "ts": "2026-11-24T10:00:00Z", "duration_ms": 1, "pid": 1, "role": "%s", "rule": %s, "action": "%s", "peer": "%s", "host": %s, "sni": null, "version": null, "starttls": null, "outcome": "%s", "error": null, "cipher": null, "alpn": null, "resumed": false, "verify": null, "ocsp": "none", "peer_cert": null, "bytes_in": 0, "bytes_out": 0, "handshake_ms": null, "first_bytes": "%s", "first_detail": "%s"}\n' "$@"
    }
    {
        line 1 client '"watch"' audit 10.1.2.3:6379 null audit redis ""
        line 2 client '"watch"' audit 10.1.2.3:6379 null audit redis ""
        line 3 client null audit 127.0.0.1:8080 '"web.test"' audit http "method=GET"
        line 4 client null audit 127.0.0.1:8443 null audit tls "sni=x versions=TLSv1.3"
        line 5 client '"https"' auto 127.0.0.1:443 null passthrough "" ""
        line 6 client '"https"' tls 127.0.0.1:443 null ok "" ""
        line 7 client null audit 127.0.0.1:25 '"evil\u001b[31m.test"' audit smtp ""
        echo 'not json'
    } >"$T/report.jsonl"

    run --separate-stderr "$TLSSHIM" --check -f "$T/p.conf" -r "$T/report.jsonl"
    assert_success
    run printf '%s\n' "$stderr"
    assert_line "tlsshim: warning: $T/report.jsonl:8: skipped: bad JSON: unexpected characters (not null) at column 1"
    assert_line "tlsshim: warning: $T/report.jsonl: 10.1.2.3:6379 was used in plaintext (2 connections: redis x2), let through by rule watch"
    assert_line "tlsshim: warning: $T/report.jsonl: web.test:8080 (127.0.0.1) was used in plaintext (1 connection: http (method=GET) x1), let through by the catch-all (default_action = audit)"
    assert_line "tlsshim: warning: $T/report.jsonl: evil\\x1b[31m.test:25 (127.0.0.1) was used in plaintext (1 connection: smtp x1), let through by the catch-all (default_action = audit)"
    refute_line --partial ":8443"
    refute_line --partial ":443"
    assert_equal "${#lines[@]}" 4

    # a policy that now makes one TLS and decides another: the rest only
    policy "$T/fixed.conf" <<'EOF'
[defaults]
ca_file = /dev/null

[kv]
connect = 10.1.2.3:6379

[mail]
connect = 127.0.0.1:25
action = plain
EOF
    run --separate-stderr "$TLSSHIM" --check -f "$T/fixed.conf" -r "$T/report.jsonl"
    assert_success
    run printf '%s\n' "$stderr"
    assert_line "tlsshim: warning: $T/report.jsonl: web.test:8080 (127.0.0.1) was used in plaintext (1 connection: http (method=GET) x1), let through by the catch-all (default_action = audit); in this policy default_action = plain lets it through"
    refute_line --partial "10.1.2.3"
    refute_line --partial "evil"

    run "$TLSSHIM" --check -f "$T/p.conf" -r "$T/missing.jsonl"
    assert_failure 2
    assert_output --partial "cannot open the report $T/missing.jsonl"
}

@test "--check -r judges accepted plaintext by the report's local address: warned about until a listen rule there decides" {
    policy "$T/p.conf" <<'EOF'
[global]
default_listen_action = audit
EOF
    # two local addresses of one port, one other port with TLS only
    srv() {
        printf '{"id": "%s", "event": "close", "ts": "2026-11-24T10:00:00Z", "duration_ms": 1, "pid": 1, "role": "server", "rule": null, "action": "audit", "peer": "%s", "host": null, "local": "%s", "sni": null, "version": null, "starttls": null, "outcome": "audit", "error": null, "cipher": null, "alpn": null, "resumed": false, "verify": null, "ocsp": "none", "peer_cert": null, "bytes_in": 0, "bytes_out": 0, "handshake_ms": null, "first_bytes": "%s", "first_detail": ""}\n' "$@"
    }
    {
        srv 1 10.9.9.9:40000 127.0.0.1:8025 smtp
        srv 2 10.9.9.8:40001 "[::1]:8025" smtp
        srv 3 10.9.9.9:40002 127.0.0.1:8443 tls
    } >"$T/report.jsonl"
    run --separate-stderr "$TLSSHIM" --check -f "$T/p.conf" -r "$T/report.jsonl"
    assert_success
    run printf '%s\n' "$stderr"
    assert_line "tlsshim: warning: $T/report.jsonl: accepted connections on 127.0.0.1:8025, [::1]:8025 from 10.9.9.9, 10.9.9.8 were plaintext (2 of 2: smtp x2), let through by the catch-all (default_listen_action = audit)"
    assert_equal "${#lines[@]}" 1

    # a listen rule on another port changes nothing; one on the address does
    policy "$T/other.conf" <<EOF
[elsewhere]
listen = 127.0.0.1:9025
cert_file = $PKI/good.chain.pem
key_file = $PKI/good.key
EOF
    run --separate-stderr "$TLSSHIM" --check -f "$T/other.conf" -r "$T/report.jsonl"
    assert_success
    run printf '%s\n' "$stderr"
    assert_line "tlsshim: warning: $T/report.jsonl: accepted connections on 127.0.0.1:8025, [::1]:8025 from 10.9.9.9, 10.9.9.8 were plaintext (2 of 2: smtp x2), let through by the catch-all (default_listen_action = audit); in this policy default_listen_action = plain lets it through"
    policy "$T/fixed.conf" <<EOF
[mail]
listen = 127.0.0.1:8025 [::1]:8025
cert_file = $PKI/good.chain.pem
key_file = $PKI/good.key
EOF
    run --separate-stderr "$TLSSHIM" --check -f "$T/fixed.conf" -r "$T/report.jsonl"
    assert_success
    assert_equal "$stderr" ""
}

@test "--check warns about a rule an earlier rule shadows entirely, and not about partial overlaps" {
    policy "$T/p.conf" <<'EOF'
[global]
default_action = deny

[lab]
connect = 10.0.0.0/8

[db]
connect = 10.1.2.3:5432

[two]
connect = 10.0.0.1:80 192.168.1.1:80

[sites]
connect = *.example.com:443

[api]
connect = api.example.com:443

[deep]
connect = *.eu.example.com:443

[any-tls]
connect = :443

[web]
connect = 192.168.1.1:443

[serve]
listen = :8443
action = plain

[serve-local]
listen = 127.0.0.1:8443
action = plain
EOF
    run --separate-stderr "$TLSSHIM" --check -f "$T/p.conf"
    assert_success
    run printf '%s\n' "$stderr"
    assert_line "tlsshim: warning: $T/p.conf:7: rule db can never match: rule lab (line 4) matches every destination it names first"
    assert_line "tlsshim: warning: $T/p.conf:19: rule deep can never match: rule sites (line 13) matches every destination it names first"
    assert_line "tlsshim: warning: $T/p.conf:25: rule web can never match: rule any-tls (line 22) matches every destination it names first"
    assert_line "tlsshim: warning: $T/p.conf:32: rule serve-local can never match: rule serve (line 28) matches every local address it names first"
    # [two] is only partly covered; a name without a wildcard can also
    # match by tlsshim's own lookup, which *.example.com never does
    refute_line --partial "rule two"
    refute_line --partial "rule api"
    assert_equal "${#lines[@]}" 4
}
