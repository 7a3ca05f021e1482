#!/usr/bin/env bats
# The tools of the tlsshim command (SPEC sections 1, 4 and 8):
# --fingerprint, which shows a server's certificate, the policy's verdict
# on it and the line that pins it; --stats, which summarises a connection
# report; and the documentation checks: every key the policy parser
# accepts is in tlsshim.conf(5), and both man pages format without
# warnings.  The reports are written by hand with the fields of section 8.

bats_require_minimum_version 1.5.0

load ../lib/common

setup() {
    common_setup
    # The shim refuses policy files that others can write.
    umask 022
    PORT=$(free_port)
}

teardown() {
    common_teardown
}

# A policy file from standard input.
policy() {
    cat > "$1"
    chmod 644 "$1"
}

# The digest of a PEM certificate as openssl prints it, in the form the
# fingerprint key takes: lower case, no colons.
openssl_digest() {
    openssl x509 -in "$1" -noout -fingerprint "-$2" |
        sed 's/.*=//; s/://g' | tr 'A-F' 'a-f'
}

# The value of a "label: value" line of the last run's output.
field() {
    printf '%s\n' "$output" | sed -n "s/^$1: *//p"
}

# A TLS server on $PORT with certificate NAME of the test PKI.
cert_server() {
    local name=$1 cert
    shift
    cert="$PKI/$name.chain.pem"
    [ -e "$cert" ] || cert="$PKI/$name.pem"
    tls_server srv "$PORT" --cert "$cert" --key "$PKI/$name.key" \
        --mode echo --record "$T/rec.bin" --info "$T/info.json" "$@"
}

# --- --fingerprint ----------------------------------------------------------

@test "--fingerprint prints a self-signed certificate's sha256 as openssl computes it" {
    cert_server selfsigned
    run --separate-stderr "$TLSSHIM" --fingerprint "127.0.0.1:$PORT"
    assert_success
    want=$(openssl_digest "$PKI/selfsigned.pem" sha256)
    [ ${#want} -eq 64 ]
    assert_line "fingerprint = sha256\$$want"
    # the paste line is the last one
    assert_equal "$(printf '%s\n' "$output" | tail -n 1)" \
        "fingerprint = sha256\$$want"
    assert_equal "$(field subject)" "CN=localhost,O=tlsshim tests"
    assert_equal "$(field issuer)" "CN=localhost,O=tlsshim tests"
    assert_equal "$(field names)" "DNS:localhost, IP:127.0.0.1, IP:::1"
    end=$(openssl x509 -in "$PKI/selfsigned.pem" -noout -enddate | sed 's/.*=//')
    assert_equal "$(field 'not after' | cut -d' ' -f1)" \
        "$(date -u -d "$end" +%Y-%m-%dT%H:%M:%SZ)"
    assert_equal "$(field connect)" "127.0.0.1:$PORT"
    assert_equal "$(field verify)" "failed"
    assert_line --partial "reason:      certificate verify failed: self-signed certificate"
    assert_equal "$stderr" ""
}

@test "the printed fingerprint line, pasted into a rule, lets a shimmed client reach the self-signed server" {
    cert_server selfsigned
    policy "$T/lab.conf" <<EOF
[lab]
connect = 127.0.0.1:$PORT
ca_file = $PKI/ca.pem
EOF
    run --separate-stderr "$TLSSHIM" --fingerprint -f "$T/lab.conf" "127.0.0.1:$PORT"
    assert_success
    assert_equal "$(field rule)" "lab ($T/lab.conf:1), action = tls"
    assert_equal "$(field verify)" "failed"
    line=$(printf '%s\n' "$output" | grep '^fingerprint = ')
    assert_equal "$line" "fingerprint = sha256\$$(openssl_digest "$PKI/selfsigned.pem" sha256)"

    # without the line the shim refuses the server ...
    head -c 100000 /dev/urandom > "$T/msg.bin"
    run "$TLSSHIM" -f "$T/lab.conf" "$PROGS/blockclient" -t 127.0.0.1 "$PORT" < "$T/msg.bin"
    assert_failure 3
    assert_output --partial "self-signed certificate"

    # ... and with it pasted into the rule, the payload echoes back intact
    { cat "$T/lab.conf"; echo "$line"; } | policy "$T/pinned.conf"
    "$TLSSHIM" -f "$T/pinned.conf" "$PROGS/blockclient" -t 127.0.0.1 "$PORT" \
        < "$T/msg.bin" > "$T/out.bin"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/msg.bin")"
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$T/msg.bin")"

    run --separate-stderr "$TLSSHIM" --fingerprint -f "$T/pinned.conf" "127.0.0.1:$PORT"
    assert_success
    assert_equal "$(field verify)" "ok (fingerprint)"
}

@test "--fingerprint ALGO gives sha1, sha384 and sha512 digests the policy takes" {
    cert_server selfsigned
    for algo in sha1 sha384 sha512 SHA256; do
        lower=$(printf '%s' "$algo" | tr 'A-Z' 'a-z')
        run --separate-stderr "$TLSSHIM" --fingerprint "127.0.0.1:$PORT" "$algo"
        assert_success
        assert_line "fingerprint = $lower\$$(openssl_digest "$PKI/selfsigned.pem" "$lower")"
    done
    line=$(printf '%s\n' "$output" | tail -n 1)
    policy "$T/check.conf" <<EOF
[lab]
connect = 127.0.0.1:$PORT
$line
EOF
    run "$TLSSHIM" --check -f "$T/check.conf"
    assert_success
}

@test "a certificate from the rule's CA verifies, and a name is sent as SNI" {
    cert_server good
    policy "$T/lab.conf" <<EOF
[lab]
connect = localhost:$PORT
ca_file = $PKI/ca.pem
EOF
    run --separate-stderr "$TLSSHIM" --fingerprint -f "$T/lab.conf" "localhost:$PORT"
    assert_success
    assert_equal "$(field verify)" "ok"
    assert_equal "$(field 'verify name')" "localhost"
    assert_equal "$(field sni)" "localhost"
    assert_equal "$(field issuer)" "CN=tlsshim test intermediate,O=tlsshim tests"
    assert_equal "$(field 'chain sent')" "2"
    refute_line --partial "reason:"
    assert_equal "$(json_field "$T/info.json" 1 sni)" "localhost"
    assert_line "fingerprint = sha256\$$(openssl_digest "$PKI/good.pem" sha256)"
}

@test "a certificate for another name fails the rule's name check, and --fingerprint still exits 0" {
    cert_server wronghost
    policy "$T/lab.conf" <<EOF
[lab]
connect = 127.0.0.1:$PORT
ca_file = $PKI/ca.pem
verifycn_name = good.test
EOF
    run --separate-stderr "$TLSSHIM" --fingerprint -f "$T/lab.conf" "127.0.0.1:$PORT"
    assert_success
    assert_equal "$(field verify)" "failed"
    assert_equal "$(field 'verify name')" "good.test"
    assert_equal "$(field sni)" "good.test"
    assert_line "reason:      hostname mismatch (wanted good.test, certificate has wrong.test)"
    refute_line --partial "certificate verify failed"
    assert_equal "$(json_field "$T/info.json" 1 sni)" "good.test"
}

@test "an expired certificate is reported as expired" {
    cert_server expired
    policy "$T/lab.conf" <<EOF
[lab]
connect = 127.0.0.1:$PORT
ca_file = $PKI/ca.pem
EOF
    run --separate-stderr "$TLSSHIM" --fingerprint -f "$T/lab.conf" "127.0.0.1:$PORT"
    assert_success
    assert_equal "$(field verify)" "failed"
    assert_line --partial "reason:      certificate verify failed: certificate has expired"
    assert_equal "$(field 'not after' | cut -d' ' -f1)" "2020-02-01T00:00:00Z"
    assert_equal "$(field 'not after' | cut -d' ' -f2)" "(expired"
}

@test "under verify_mode = none the certificate is not checked, and what the checks find is a note" {
    cert_server selfsigned
    policy "$T/lab.conf" <<EOF
[lab]
connect = 127.0.0.1:$PORT
verify_mode = none
EOF
    run --separate-stderr "$TLSSHIM" --fingerprint -f "$T/lab.conf" "127.0.0.1:$PORT"
    assert_success
    assert_equal "$(field verify)" "not checked (the rule has verify_mode = none)"
    assert_line --partial "note:        certificate verify failed: self-signed certificate"
    refute_line --partial "reason:"
}

@test "with no rule for the destination, the system store and HOST decide" {
    cert_server good
    policy "$T/empty.conf" <<EOF
[global]
default_action = plain
EOF
    run --separate-stderr "$TLSSHIM" --fingerprint -f "$T/empty.conf" "127.0.0.1:$PORT"
    assert_success
    assert_equal "$(field rule)" "none (default_action = plain); checked against the system store"
    assert_equal "$(field verify)" "failed"
    assert_line --partial "unable to get local issuer certificate"
    # the system store as OpenSSL finds it, here pointed at the test CA
    SSL_CERT_FILE=$PKI/ca.pem run --separate-stderr "$TLSSHIM" --fingerprint \
        -f "$T/empty.conf" "127.0.0.1:$PORT"
    assert_success
    assert_equal "$(field verify)" "ok"
    assert_equal "$(field 'verify name')" "127.0.0.1"
    assert_equal "$(field sni)" "none"
}

@test "an IPv6 destination is written in brackets" {
    cert_server good --host ::1
    policy "$T/lab.conf" <<EOF
[lab]
connect = [::1]:$PORT
ca_file = $PKI/ca.pem
EOF
    run --separate-stderr "$TLSSHIM" --fingerprint -f "$T/lab.conf" "[::1]:$PORT"
    assert_success
    assert_equal "$(field connect)" "[::1]:$PORT"
    assert_equal "$(field verify)" "ok"
    assert_equal "$(field 'verify name')" "::1"
}

@test "--fingerprint on a port where nothing listens exits 1 and says why" {
    run --separate-stderr "$TLSSHIM" --fingerprint "127.0.0.1:$PORT"
    assert_failure 1
    assert_equal "$output" ""
    [[ "$stderr" == *"tlsshim: cannot connect to 127.0.0.1:$PORT: Connection refused"* ]]
    [[ "$stderr" == *"tlsshim: no certificate from 127.0.0.1:$PORT"* ]]
}

@test "--fingerprint on a plaintext service exits 1 and says it is not TLS" {
    start_bg banner "$PYTHON" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(5)
while True:
    c, _ = s.accept()
    c.sendall(b"220 mail.test ESMTP ready\r\n")
    c.recv(4096)
    c.close()
' "$PORT"
    wait_port "$PORT" 127.0.0.1
    run --separate-stderr "$TLSSHIM" --fingerprint "127.0.0.1:$PORT"
    assert_failure 1
    assert_equal "$output" ""
    [[ "$stderr" == *"no certificate from 127.0.0.1:$PORT: TLS handshake failed: wrong version number (is it a TLS server?"* ]]
}

@test "a server that never answers the handshake times out after the rule's handshake_timeout" {
    start_bg sink "$PYTHON" "$PEERS/raw_sink.py" --port "$PORT" --record "$T/raw.bin"
    wait_port "$PORT" 127.0.0.1
    policy "$T/lab.conf" <<EOF
[lab]
connect = 127.0.0.1:$PORT
handshake_timeout = 1
EOF
    start=$(date +%s)
    run --separate-stderr "$TLSSHIM" --fingerprint -f "$T/lab.conf" "127.0.0.1:$PORT"
    assert_failure 1
    [ $(($(date +%s) - start)) -lt 5 ]
    [[ "$stderr" == *"the TLS handshake did not finish within 1 s"* ]]
    # what the sink got is a ClientHello
    assert_equal "$(head -c 1 "$T/raw.bin" | od -An -tx1 | tr -d ' ')" "16"
}

@test "--fingerprint usage errors exit 2" {
    run "$TLSSHIM" --fingerprint
    assert_failure 2
    assert_output --partial "--fingerprint takes HOST:PORT and an optional ALGO"
    run "$TLSSHIM" --fingerprint 127.0.0.1:443 md5
    assert_failure 2
    assert_output --partial "unknown ALGO 'md5'"
    run "$TLSSHIM" --fingerprint 127.0.0.1
    assert_failure 2
    assert_output --partial "'127.0.0.1' is not HOST:PORT"
    run "$TLSSHIM" --fingerprint ::1:443
    assert_failure 2
    assert_output --partial "write an IPv6 address in brackets"
    run "$TLSSHIM" --fingerprint -d 1 127.0.0.1:443
    assert_failure 2
    assert_output --partial "-d does not apply to --fingerprint"
}

# --- --stats ----------------------------------------------------------------

# rfc3339 OFFSET: a time OFFSET from now ("+10 days") in RFC 3339.
rfc3339() {
    date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ
}

# A report with one connection of every outcome class, an open line whose
# close line follows, one whose close line never came, and certificates
# near and past their expiry.
write_report() {
    local soon later past
    soon=$(rfc3339 '+10 days +1 hour')
    later=$(rfc3339 '+200 days')
    past=$(rfc3339 '-3 days -1 hour')
    cat > "$T/report.jsonl" <<EOF
{"id":"1-a-0","event":"close","ts":"2026-01-01T00:00:00.000Z","duration_ms":5,"pid":1,"role":"client","rule":"api","action":"tls","peer":"10.0.0.1:443","host":"api.test","sni":"api.test","version":"TLSv1.3","starttls":null,"outcome":"ok","error":null,"cipher":"TLS_AES_256_GCM_SHA384","alpn":"","resumed":false,"verify":"ok","ocsp":"good","peer_cert":{"subject":"CN=api.test","issuer":"CN=ca","san":["api.test"],"not_before":"2026-01-01T00:00:00Z","not_after":"$soon","sha256":"aa01"},"bytes_in":1000,"bytes_out":200,"handshake_ms":3}
{"id":"1-a-1","event":"close","ts":"2026-01-01T00:00:01.000Z","duration_ms":5,"pid":1,"role":"client","rule":"api","action":"tls","peer":"10.0.0.1:443","host":"api.test","sni":"api.test","version":"TLSv1.3","starttls":null,"outcome":"ok","error":null,"cipher":"TLS_AES_256_GCM_SHA384","alpn":"","resumed":true,"verify":"ok","ocsp":"good","peer_cert":{"subject":"CN=api.test","issuer":"CN=ca","san":["api.test"],"not_before":"2026-01-01T00:00:00Z","not_after":"$soon","sha256":"aa01"},"bytes_in":10,"bytes_out":20,"handshake_ms":1}
{"id":"1-a-2","event":"close","ts":"2026-01-01T00:00:02.000Z","duration_ms":0,"pid":1,"role":"client","rule":"blocked","action":"deny","peer":"10.0.0.9:25","host":null,"sni":null,"version":null,"starttls":null,"outcome":"denied","error":"denied by rule blocked","cipher":null,"alpn":null,"resumed":false,"verify":null,"ocsp":"none","peer_cert":null,"bytes_in":0,"bytes_out":0,"handshake_ms":null}
{"id":"1-a-3","event":"close","ts":"2026-01-01T00:00:03.000Z","duration_ms":1,"pid":1,"role":"client","rule":"api","action":"tls","peer":"10.0.0.2:443","host":"api.test","sni":null,"version":null,"starttls":null,"outcome":"connect_failed","error":"Connection refused","cipher":null,"alpn":null,"resumed":false,"verify":null,"ocsp":"none","peer_cert":null,"bytes_in":0,"bytes_out":0,"handshake_ms":null}
{"id":"1-a-4","event":"close","ts":"2026-01-01T00:00:04.000Z","duration_ms":2,"pid":1,"role":"client","rule":"lab","action":"tls","peer":"10.0.0.3:8443","host":null,"sni":null,"version":null,"starttls":null,"outcome":"handshake_failed","error":"TLS handshake failed: wrong version number","cipher":null,"alpn":null,"resumed":false,"verify":null,"ocsp":"none","peer_cert":null,"bytes_in":0,"bytes_out":0,"handshake_ms":null}
{"id":"1-a-5","event":"close","ts":"2026-01-01T00:00:05.000Z","duration_ms":2,"pid":1,"role":"client","rule":"lab","action":"tls","peer":"10.0.0.3:8443","host":null,"sni":null,"version":null,"starttls":null,"outcome":"verify_failed","error":"certificate verify failed: certificate has expired (depth 0, /CN=old.test)","cipher":null,"alpn":null,"resumed":false,"verify":"certificate verify failed: certificate has expired (depth 0, /CN=old.test)","ocsp":"none","peer_cert":{"subject":"CN=old.test","issuer":"CN=ca","san":["old.test"],"not_before":"2019-01-01T00:00:00Z","not_after":"$past","sha256":"bb02"},"bytes_in":0,"bytes_out":0,"handshake_ms":null}
{"id":"1-a-6","event":"close","ts":"2026-01-01T00:00:06.000Z","duration_ms":2,"pid":1,"role":"client","rule":"lab","action":"tls","peer":"10.0.0.3:8443","host":null,"sni":null,"version":null,"starttls":null,"outcome":"verify_failed","error":"certificate verify failed: certificate has expired (depth 0, /CN=old.test)","cipher":null,"alpn":null,"resumed":false,"verify":"certificate verify failed: certificate has expired (depth 0, /CN=old.test)","ocsp":"none","peer_cert":{"subject":"CN=old.test","issuer":"CN=ca","san":["old.test"],"not_before":"2019-01-01T00:00:00Z","not_after":"$past","sha256":"bb02"},"bytes_in":0,"bytes_out":0,"handshake_ms":null}
{"id":"1-a-7","event":"close","ts":"2026-01-01T00:00:07.000Z","duration_ms":3,"pid":1,"role":"client","rule":"mail","action":"tls","peer":"10.0.0.4:25","host":"mx.test","sni":null,"version":null,"starttls":"smtp","outcome":"starttls_refused","error":"the server does not offer STARTTLS","cipher":null,"alpn":null,"resumed":false,"verify":null,"ocsp":"none","peer_cert":null,"bytes_in":0,"bytes_out":0,"handshake_ms":null}
{"id":"1-a-8","event":"close","ts":"2026-01-01T00:00:08.000Z","duration_ms":30000,"pid":1,"role":"client","rule":"lab","action":"tls","peer":"10.0.0.5:8443","host":null,"sni":null,"version":null,"starttls":null,"outcome":"timeout","error":"handshake timed out after 30 s","cipher":null,"alpn":null,"resumed":false,"verify":null,"ocsp":"none","peer_cert":null,"bytes_in":0,"bytes_out":0,"handshake_ms":null}
{"id":"1-a-9","event":"close","ts":"2026-01-01T00:00:09.000Z","duration_ms":9,"pid":1,"role":"client","rule":"web","action":"auto","peer":"10.0.0.6:443","host":"www.test","sni":null,"version":null,"starttls":null,"outcome":"passthrough","error":null,"cipher":null,"alpn":null,"resumed":false,"verify":null,"ocsp":"none","peer_cert":null,"bytes_in":300,"bytes_out":40,"handshake_ms":null}
{"id":"1-a-10","event":"close","ts":"2026-01-01T00:00:10.000Z","duration_ms":9,"pid":1,"role":"client","rule":null,"action":"audit","peer":"10.0.0.7:80","host":null,"sni":null,"version":null,"starttls":null,"outcome":"audit","error":null,"cipher":null,"alpn":null,"resumed":false,"verify":null,"ocsp":"none","peer_cert":null,"bytes_in":5,"bytes_out":5,"handshake_ms":null,"first_bytes":"http"}
{"id":"2-b-0","event":"open","ts":"2026-01-01T00:00:11.000Z","duration_ms":4,"pid":2,"role":"server","rule":"front","action":"tls","peer":"10.0.1.1:50000","host":null,"sni":"front.test","version":"TLSv1.2","starttls":null,"outcome":"ok","error":null,"cipher":"ECDHE-ECDSA-AES128-GCM-SHA256","alpn":"","resumed":false,"verify":"none","ocsp":"none","peer_cert":null,"bytes_in":0,"bytes_out":0,"handshake_ms":4}
{"id":"2-b-1","event":"open","ts":"2026-01-01T00:00:12.000Z","duration_ms":4,"pid":2,"role":"server","rule":"front","action":"tls","peer":"10.0.1.2:50001","host":null,"sni":"front.test","version":"TLSv1.2","starttls":null,"outcome":"ok","error":null,"cipher":"ECDHE-ECDSA-AES128-GCM-SHA256","alpn":"","resumed":false,"verify":"ok","ocsp":"none","peer_cert":{"subject":"CN=client.test","issuer":"CN=ca","san":[],"not_before":"2026-01-01T00:00:00Z","not_after":"$later","sha256":"cc03"},"bytes_in":0,"bytes_out":0,"handshake_ms":4}
{"id":"2-b-0","event":"close","ts":"2026-01-01T00:00:11.000Z","duration_ms":900,"pid":2,"role":"server","rule":"front","action":"tls","peer":"10.0.1.1:50000","host":null,"sni":"front.test","version":"TLSv1.2","starttls":null,"outcome":"ok","error":null,"cipher":"ECDHE-ECDSA-AES128-GCM-SHA256","alpn":"","resumed":false,"verify":"none","ocsp":"none","peer_cert":null,"bytes_in":4000,"bytes_out":6000,"handshake_ms":4}
EOF
}

@test "--stats counts connections by outcome, rule, role, version and cipher" {
    write_report
    run --separate-stderr "$TLSSHIM" --stats "$T/report.jsonl"
    assert_success
    assert_equal "$stderr" ""
    # 11 closed connections, one open and closed (counted once), one that
    # never closed
    assert_line --regexp '^connections +13$'
    assert_line --regexp '^unclosed +1$'
    assert_line --regexp '^bad_lines +0$'
    for o in ok:4 denied:1 connect_failed:1 handshake_failed:1 \
        verify_failed:2 starttls_refused:1 timeout:1 passthrough:1 audit:1; do
        assert_line --regexp "^outcome +${o#*:}  ${o%:*}\$"
    done
    assert_line --regexp '^rule +4  lab$'
    assert_line --regexp '^rule +3  api$'
    assert_line --regexp '^rule +2  front$'
    assert_line --regexp '^rule +1  -$'
    assert_line --regexp '^role +11  client$'
    assert_line --regexp '^role +2  server$'
    assert_line --regexp '^version +9  -$'
    assert_line --regexp '^version +2  TLSv1.3$'
    assert_line --regexp '^version +2  TLSv1.2$'
    assert_line --regexp '^cipher +2  TLS_AES_256_GCM_SHA384$'
    assert_line --regexp '^cipher +2  ECDHE-ECDSA-AES128-GCM-SHA256$'
    # most frequent first
    assert_equal "$(printf '%s\n' "$output" | grep '^rule ' | head -n 1)" \
        "$(printf '%-12s%10d  %s' rule 4 lab)"
}

@test "--stats totals the bytes, counting an open line only when no close line follows" {
    write_report
    run --separate-stderr "$TLSSHIM" --stats "$T/report.jsonl"
    assert_success
    # 1000+10+300+5+4000 (the close line of 2-b-0, not its open line) + 0
    assert_line "$(printf '%-12s%10d' bytes_in 5315)"
    assert_line "$(printf '%-12s%10d' bytes_out 6265)"
}

@test "--stats groups the failures by outcome and reason, with counts" {
    write_report
    run --separate-stderr "$TLSSHIM" --stats "$T/report.jsonl"
    assert_success
    assert_equal "$(printf '%s\n' "$output" | grep -c '^failure ')" 6
    assert_line "$(printf '%-12s%10d  %s' failure 2 'verify_failed  certificate verify failed: certificate has expired (depth 0, /CN=old.test)')"
    assert_line --regexp '^failure +1  denied  denied by rule blocked$'
    assert_line --regexp '^failure +1  connect_failed  Connection refused$'
    assert_line --regexp '^failure +1  handshake_failed  TLS handshake failed: wrong version number$'
    assert_line --regexp '^failure +1  starttls_refused  the server does not offer STARTTLS$'
    assert_line --regexp '^failure +1  timeout  handshake timed out after 30 s$'
    refute_line --regexp '^failure .*(passthrough|audit|  ok  )'
    # the largest group first
    assert_equal "$(printf '%s\n' "$output" | grep '^failure ' | head -n 1 | awk '{print $2, $3}')" \
        "2 verify_failed"
}

@test "--stats lists expired certificates and those expiring within 30 days, with host and subject" {
    write_report
    run --separate-stderr "$TLSSHIM" --stats "$T/report.jsonl"
    assert_success
    # the same certificate for the same host is one line, with the count
    assert_line --regexp '^expiring +2  [0-9T:-]+Z  10  api\.test  CN=api\.test$'
    # no host: the peer names it
    assert_line --regexp "^expired +2  [0-9T:-]+Z  3  10\.0\.0\.3:8443  CN=old\.test\$"
    # 200 days away is not worth a line
    refute_line --partial "client.test"
    assert_equal "$(printf '%s\n' "$output" | grep -c '^expir')" 2
}

@test "--stats reads standard input for -" {
    write_report
    run --separate-stderr "$TLSSHIM" --stats - < "$T/report.jsonl"
    assert_success
    assert_line --regexp '^connections +13$'
}

@test "an empty report has zero connections" {
    : > "$T/empty.jsonl"
    run --separate-stderr "$TLSSHIM" --stats "$T/empty.jsonl"
    assert_success
    assert_line --regexp '^connections +0$'
    assert_line --regexp '^outcome +0  ok$'
    refute_line --regexp '^(failure|expired|expiring) '
}

# Report lines the strict parser must refuse, each with the
# message it must give for it (after a unit separator, \x1f).
bad_rows=(
    $'{"id":"b","outcome":"ok",}\x1fbad JSON: trailing comma before \'}\' at column 26'
    $'{"x":[1,2,]}\x1fbad JSON: trailing comma before \']\' at column 11'
    $'{"bytes_in":01}\x1fbad JSON: leading zero in a number at column 14'
    $'{"a":1.}\x1fbad JSON: a fraction needs a digit after \'.\' at column 8'
    $'{"a":1e}\x1fbad JSON: an exponent needs a digit at column 8'
    $'{"a":-}\x1fbad JSON: a number needs a digit here at column 7'
    $'{"a":+1}\x1fbad JSON: expected a value, not \'+\' at column 6'
    $'{"error":"a\\qb"}\x1fbad JSON: unknown escape \\q'
    $'{"error":"\\u12"}\x1fbad JSON: \\u needs four hex digits'
    $'{"error":"\\ud800"}\x1fbad JSON: high surrogate \\uD800 without a low surrogate'
    $'{"error":"\\ud800\\u0041"}\x1fbad JSON: high surrogate \\uD800 without a low surrogate'
    $'{"error":"\\udc00"}\x1fbad JSON: lone low surrogate \\uDC00'
    $'{"error":"tab\there"}\x1fbad JSON: control character 0x09 in a string (escape it) at column 14'
    $'{"error":"\xff"}\x1fbad JSON: invalid UTF-8 in a string at column 11'
    $'{"error":"\xc0\xaf"}\x1fbad JSON: invalid UTF-8 in a string'
    $'{"error":"\xed\xa0\x80"}\x1fbad JSON: invalid UTF-8 in a string'
    $'{"id":"x","id":"y"}\x1fbad JSON: duplicate key "id" at column 11'
    $'{"outcome":"ok"} x\x1fbad JSON: trailing characters after the value (\'x\') at column 18'
    $'{"outcome":"ok"}{}\x1fbad JSON: trailing characters after the value'
    $'{"error":"abc\x1fbad JSON: unterminated string'
    $'{"outcome":"ok"\x1fbad JSON: expected \',\' or \'}\', not the end of the line'
    $'{\'a\':1}\x1fbad JSON: expected a string key, not \'\'\''
    $'{"a" 1}\x1fbad JSON: expected \':\' after the key, not \'1\''
    $'{"a":[1 2]}\x1fbad JSON: expected \',\' or \']\', not \'2\''
    $'nul\x1fbad JSON: unexpected characters (not null) at column 1'
    $'{"a":True}\x1fbad JSON: expected a value, not \'T\''
    $'\x1fbad JSON: expected a value, not the end of the line at column 1'
    $'[1,2]\x1fnot a connection record: an array, not an object'
    $'"ok"\x1fnot a connection record: a string, not an object'
    $'{"bytes_out":-5}\x1fbad field "bytes_out": want a non-negative integer or null'
    $'{"bytes_in":1.5}\x1fbad field "bytes_in": want a non-negative integer or null'
    $'{"bytes_in":"12"}\x1fbad field "bytes_in": want a non-negative integer or null'
    $'{"rule":7}\x1fbad field "rule": want a string or null'
    $'{"outcome":["ok"]}\x1fbad field "outcome": want a string or null'
    $'{"event":"opened"}\x1fbad field "event": want "open" or "close"'
    $'{"peer_cert":"CN=x"}\x1fbad field "peer_cert": want an object or null'
    $'{"peer_cert":{"not_after":"next week"}}\x1fbad field "peer_cert.not_after": not an RFC 3339 time'
    $'{"peer_cert":{"not_after":"2026-13-01T00:00:00Z"}}\x1fbad field "peer_cert.not_after": not an RFC 3339 time'
)

# Lines it must take: escapes, Unicode, numbers, nesting and whitespace
# that RFC 8259 allows.
good_rows=(
    '{"outcome":"ok","sni":"caf\u00e9 \u00E9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t"}'
    '{"outcome":"ok","host":"bücher.test 𝄞"}'
    '{"outcome":"ok","error":"\u0000 is allowed"}'
    '{"outcome":"ok","z":[true,false,null,-0.5e+3,0,-0,1E9,2.25e-2,10]}'
    '{"outcome":"ok","x":[[[]]],"y":{},"":""}'
    $' \t{ "outcome" : "ok" , "bytes_in" : 7 }\t \r'
    '{"outcome":"ok","peer_cert":null,"bytes_in":null}'
    '{"outcome":"ok","peer_cert":{"not_after":"2099-01-01t00:00:00.5+02:00"}}'
    "{\"outcome\":\"ok\",\"deep\":$(printf '[%.0s' {1..63})$(printf ']%.0s' {1..63})}"
    '{"outcome":"ok","bytes_out":9223372036854775807}'
)

@test "the report parser refuses malformed lines by file and line, skips them and exits 1" {
    local i n=0 msg want=()
    : > "$T/mixed.jsonl"
    for ((i = 0; i < ${#bad_rows[@]} || i < ${#good_rows[@]}; i++)); do
        if ((i < ${#good_rows[@]})); then
            printf '%s\n' "${good_rows[i]}" >> "$T/mixed.jsonl"
            n=$((n + 1))
        fi
        if ((i < ${#bad_rows[@]})); then
            printf '%s\n' "${bad_rows[i]%%$'\x1f'*}" >> "$T/mixed.jsonl"
            n=$((n + 1))
            want[n]=${bad_rows[i]#*$'\x1f'}
        fi
    done
    # nested one level too deep
    printf '{"a":%s%s}\n' "$(printf '[%.0s' {1..64})" "$(printf ']%.0s' {1..64})" >> "$T/mixed.jsonl"
    n=$((n + 1))
    want[n]='bad JSON: nested deeper than 64 levels at column 69'
    # a final line without its newline is still read
    printf '{"outcome":"ok","rule":"last"}' >> "$T/mixed.jsonl"

    run --separate-stderr "$TLSSHIM" --stats "$T/mixed.jsonl"
    assert_failure 1
    # every line that must pass was counted, and nothing else
    assert_line --regexp "^connections +$((${#good_rows[@]} + 1))\$"
    assert_line --regexp "^bad_lines +${#want[@]}\$"
    assert_line --regexp '^rule +1  last$'
    # one message per bad line, each naming its line
    assert_equal "$(printf '%s\n' "$stderr" | wc -l)" "${#want[@]}"
    for i in "${!want[@]}"; do
        msg="tlsshim: $T/mixed.jsonl:$i: ${want[i]}"
        if [[ "$stderr" != *"$msg"* ]]; then
            echo "line $i: want: $msg" >&2
            printf '%s\n' "$stderr" | grep ":$i: " >&2
            return 1
        fi
    done
}

@test "control characters in report strings are printed escaped" {
    printf '%s\n' '{"id":"e","outcome":"verify_failed","error":"bad \u001b[31mred\u001b[0m \u0085 name\u0007"}' > "$T/esc.jsonl"
    run --separate-stderr "$TLSSHIM" --stats "$T/esc.jsonl"
    assert_success
    assert_line --regexp '^failure +1  verify_failed  bad \\x1b\[31mred\\x1b\[0m \\u0085 name\\x07$'
    [[ "$output" != *$'\e'* ]]
}

@test "--stats on a missing report, or without one, exits 2" {
    run --separate-stderr "$TLSSHIM" --stats "$T/nothing.jsonl"
    assert_failure 2
    [[ "$stderr" == "tlsshim: cannot open $T/nothing.jsonl: No such file or directory" ]]
    run "$TLSSHIM" --stats
    assert_failure 2
    assert_output --partial "--stats takes one REPORT file"
    run "$TLSSHIM" --stats -f "$T/x.conf" "$T/nothing.jsonl"
    assert_failure 2
    assert_output --partial "-f does not apply to --stats"
}

# --- documentation ----------------------------------------------------------

# The keys of the policy parser's tables in src/policy.c, one per line:
# the rule keys (rule_keys[]) and the [global] keys (global_keys[]).
parser_keys() {
    local src=$SRCDIR/src/policy.c
    sed -n '/rule_keys\[PK__COUNT\] = {/,/^};/p' "$src" |
        grep -oE '\[PK_[A-Z0-9_]+\] = \{ "[a-z0-9_]+"' | sed 's/.*"\(.*\)"/\1/'
    sed -n '/global_keys\[GK__COUNT\] = {/,/^};/p' "$src" |
        grep -oE '\[GK_[A-Z0-9_]+\] = "[a-z0-9_]+"' | sed 's/.*"\(.*\)"/\1/'
}

@test "every key the policy parser accepts is documented in tlsshim.conf(5)" {
    local keys key missing=() rule_count global_count
    keys=$(parser_keys)
    # the extraction found every entry of both enums ...
    rule_count=$(sed -n '/^enum policy_key {/,/PK__COUNT/p' "$SRCDIR/src/policy.h" |
        grep -cE '^[[:space:]]*PK_[A-Z0-9_]+( = 0)?,')
    global_count=$(sed -n '/^enum global_key {/,/GK__COUNT/p' "$SRCDIR/src/policy.c" |
        grep -cE '^[[:space:]]*GK_[A-Z0-9_]+( = 0)?,')
    [ "$rule_count" -ge 30 ] && [ "$global_count" -ge 5 ]
    assert_equal "$(printf '%s\n' "$keys" | wc -l)" $((rule_count + global_count))
    # ... and the parser knows every name it found (a key it did not know
    # would be "unknown key"), which this probe does detect
    printf '[probe]\nconnect = 127.0.0.1:1\nno_such_key = 1\n' | policy "$T/probe.conf"
    run "$TLSSHIM" --check -f "$T/probe.conf"
    assert_failure 2
    assert_output --partial 'unknown key "no_such_key"'
    for key in $(sed -n '/rule_keys\[PK__COUNT\] = {/,/^};/p' "$SRCDIR/src/policy.c" |
        grep -oE '\{ "[a-z0-9_]+"' | tr -d '{" '); do
        printf '[probe]\nconnect = 127.0.0.1:1\n%s = x\n' "$key" | policy "$T/probe.conf"
        run "$TLSSHIM" --check -f "$T/probe.conf"
        refute_output --partial "unknown key"
    done
    for key in $(sed -n '/global_keys\[GK__COUNT\] = {/,/^};/p' "$SRCDIR/src/policy.c" |
        grep -oE '= "[a-z0-9_]+"' | tr -d '=" '); do
        printf '[global]\n%s = x\n' "$key" | policy "$T/probe.conf"
        run "$TLSSHIM" --check -f "$T/probe.conf"
        refute_output --partial "unknown key"
    done
    for key in $keys; do
        grep -qE "(^\\.|[[:space:]])Cm[[:space:]]+$key([[:space:]]|\$)" \
            "$SRCDIR/man/tlsshim.conf.5" || missing+=("$key")
    done
    if ((${#missing[@]} > 0)); then
        echo "not documented as .Cm KEY in man/tlsshim.conf.5: ${missing[*]}" >&2
        return 1
    fi
}

@test "mandoc -Tlint finds nothing to warn about in either man page" {
    command -v mandoc >/dev/null || skip "mandoc is not installed (apt-get install mandoc)"
    run mandoc -Tlint -Wwarning "$SRCDIR/man/tlsshim.1" "$SRCDIR/man/tlsshim.conf.5"
    assert_success
    assert_output ""
}

@test "man (groff) formats both man pages without warnings at 80 columns" {
    command -v man >/dev/null || skip "man is not installed (apt-get install man-db)"
    command -v groff >/dev/null || skip "groff is not installed (apt-get install groff-base)"
    local page
    for page in tlsshim.1 tlsshim.conf.5; do
        run --separate-stderr env LC_ALL=C.UTF-8 MANWIDTH=80 MANPAGER=cat PAGER=cat \
            man --warnings -E UTF-8 -l "$SRCDIR/man/$page"
        assert_success
        [ -n "$output" ]
        if [ -n "$stderr" ]; then
            echo "man --warnings on $page:" >&2
            printf '%s\n' "$stderr" >&2
            return 1
        fi
    done
}
