#!/usr/bin/env bats
# Hardening: secure execution, files writable by others, the bounds on
# untrusted input, and key material wiped before it is freed.
#
# Secure execution: the loader ignores LD_PRELOAD for set-id programs, so
# the module is preloaded through /etc/ld.so.preload, and the test policy
# put in place of the system policy ($(sysconfdir)/tlsshim.conf), both
# inside a private mount namespace made by the test (unshare -m): the real
# /etc and sysconfdir are never changed.  A setuid-root copy of
# tests/progs/blockclient is then run by the user nobody with every
# variable of SPEC section 2 (and SSL_CERT_FILE) pointing at files the
# "attacker" chose; a copy without the setuid bit, run the same way, is
# the control that shows the variables are honoured otherwise.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
    # bats' directories may be 0700: nobody must reach the programs, the
    # module, the CA and the policies
    PUB=$(mktemp -d /tmp/tlsshim-secure.XXXXXX)
    chmod 755 "$PUB"
    export PUB
}

teardown() {
    common_teardown
    [[ -z ${PUB:-} || ! -d $PUB ]] || rm -rf "$PUB"
}

# Secure execution needs root (setuid-root files, mount namespaces, a
# switch to nobody): elsewhere the test cannot be made, and says so.
needs_root_ns() {
    [[ $(id -u) == 0 ]] || skip "needs root: setuid files, mount namespaces"
    unshare -m --propagation private true 2>/dev/null ||
        skip "cannot make a mount namespace here (unshare -m)"
}

# The system policy's path, as the module was built with it.
sysconf_policy() {
    local prefix sysconfdir
    prefix=$(sed -n 's/^prefix = //p' "$BUILDDIR/Makefile")
    sysconfdir=$(sed -n 's/^sysconfdir = //p' "$BUILDDIR/Makefile")
    sysconfdir=${sysconfdir//\$\{prefix\}/$prefix}
    sysconfdir=${sysconfdir//\$(prefix)/$prefix}
    echo "$sysconfdir/tlsshim.conf"
}

# Set up $PUB: the module, the client setuid root ($PUB/suid) and not
# ($PUB/plain), the CA, the payload, the system policy (SYSTEM_RULE lines
# go into its rule), an attacker's policy that denies everything, and an
# attacker's directory (owned by nobody) where the variables point.
prepare() {
    local line
    install -m 0755 "$SHIMLIB" "$PUB/libtlsshim.so"
    install -o root -g root -m 4755 "$PROGS/blockclient" "$PUB/suid"
    install -o root -g root -m 0755 "$PROGS/blockclient" "$PUB/plain"
    install -m 0644 "$PKI/ca.pem" "$PUB/ca.pem"
    head -c 50000 /dev/urandom | base64 >"$PUB/payload"
    chmod 644 "$PUB/payload"
    {
        echo "[global]"
        echo "debug = 1"
        echo "keylog = yes"
        echo "[sec]"
        echo "connect = 127.0.0.1:$PORT"
        echo "verifycn_name = localhost"
        for line in "$@"; do echo "$line"; done
    } >"$PUB/system.conf"
    chmod 644 "$PUB/system.conf"
    mkdir -m 0755 "$PUB/att"
    {
        echo "[evil]"
        echo "connect = 127.0.0.1:$PORT"
        echo "action = deny"
    } >"$PUB/att/evil.conf"
    chmod 644 "$PUB/att/evil.conf"
    chown -R nobody:nogroup "$PUB/att"
}

# in_ns PROG [VAR=VALUE...]: run $PUB/PROG 127.0.0.1 $PORT as nobody, in
# a private mount namespace where /etc/ld.so.preload names the module and
# the system policy is $PUB/system.conf; the payload on its standard
# input.  The variables are given to that program alone (env -i): the
# shimmed setpriv and env before it never see them.  Sets status, output
# (standard output) and stderr as run does.
in_ns() {
    local prog=$1 sys dir top=
    shift
    sys=$(sysconf_policy)
    # A prefix not installed yet (make distcheck's): its sysconfdir is
    # made for the run, and what was made removed after it.
    dir=${sys%/*}
    while [[ ! -d $dir ]]; do
        top=$dir
        dir=${dir%/*}
    done
    [[ -z $top ]] || mkdir -p "${sys%/*}"
    run --separate-stderr unshare -m --propagation private -- \
        bash -c '
        set -e
        pub=$1 sys=$2 prog=$3 port=$4
        shift 4
        # a copy of /etc with ld.so.preload (which may not exist to be
        # mounted over) in place of /etc, in this namespace only
        cp -a /etc "$pub/etc"
        printf "%s\n" ${SHIM_RUNTIME:+"$SHIM_RUNTIME"} "$pub/libtlsshim.so" >"$pub/etc/ld.so.preload"
        mount --bind "$pub/etc" /etc
        if [[ -f $sys ]]; then
            mount --bind "$pub/system.conf" "$sys"
        elif [[ -d ${sys%/*} ]]; then
            mount -t tmpfs -o mode=0755 tmpfs "${sys%/*}"
            install -m 0644 "$pub/system.conf" "$sys"
        else
            echo "in_ns: ${sys%/*} does not exist to mount over" >&2
            exit 99
        fi
        exec setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
            env -i PATH=/usr/bin:/bin "$@" "$pub/$prog" 127.0.0.1 "$port" <"$pub/payload"
        ' in_ns "$PUB" "$sys" "$prog" "$PORT" "$@"
    [[ -z $top ]] || find "$top" -depth -type d -empty -delete
}

# The attacker's variables: a policy that denies, a log, a report, a key
# log, the highest debug level and a trust store of its own.
attacker_env() {
    echo "TLSSHIM_CONF=$PUB/att/evil.conf"
    echo "TLSSHIM_LOG=$PUB/att/log"
    echo "TLSSHIM_REPORT=$PUB/att/report"
    echo "TLSSHIM_DEBUG=3"
    echo "SSLKEYLOGFILE=$PUB/att/keylog"
    echo "SSL_CERT_FILE=$PUB/att/cert.pem"
}

@test "secure execution: a setuid program ignores TLSSHIM_CONF, TLSSHIM_LOG, TLSSHIM_REPORT, TLSSHIM_DEBUG and SSLKEYLOGFILE" {
    needs_root_ns
    prepare "ca_file = $PUB/ca.pem"
    install -o nobody -m 0644 "$PKI/other-root.pem" "$PUB/att/cert.pem"
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --info "$T/srv.json"
    mapfile -t vars < <(attacker_env)

    # setuid root, run by nobody: the system policy applies, TLS with the
    # echo intact, and nothing written where the variables point
    in_ns suid "${vars[@]}"
    assert_success
    assert_equal "$(printf '%s\n' "$output" | sha256sum)" "$(sha256sum <"$PUB/payload")"
    assert_equal "$(json_field "$T/srv.json" 1 handshake)" ok
    assert_equal "$(json_field "$T/srv.json" 1 version)" TLSv1.3
    # the system policy's debug = 1 summary line, on stderr
    [[ $stderr == *"info: connect 127.0.0.1:$PORT"*"rule=sec tls=TLSv1.3"*"verify=ok"* ]]
    [[ $stderr != *"rule=evil"* && $stderr != *denied* ]]
    run ls -A "$PUB/att"
    assert_output "$(printf 'cert.pem\nevil.conf')"

    # the control: the same program and variables without the setuid bit
    # read the attacker's policy (denied: nothing reaches the server) and
    # log and report where it says
    in_ns plain "${vars[@]}"
    assert_equal "$status" 3
    [[ $stderr == *"errno=EACCES"* ]]
    run cat "$PUB/att/log"
    assert_output --partial "rule=evil"
    assert_equal "$(json_field "$PUB/att/report" 1 outcome)" denied
    assert_equal "$(json_field "$PUB/att/report" 1 rule)" evil
    assert_equal "$(wc -l <"$T/srv.json")" 1
}

@test "secure execution: SSLKEYLOGFILE is ignored even where the system policy allows a key log" {
    needs_root_ns
    prepare "ca_file = $PUB/ca.pem"
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --info "$T/srv.json"
    in_ns suid "SSLKEYLOGFILE=$PUB/att/keylog" "TLSSHIM_LOG=$PUB/att/log"
    assert_success
    assert_equal "$(json_field "$T/srv.json" 1 handshake)" ok
    [[ ! -e $PUB/att/keylog && ! -e $PUB/att/log ]]
    # the control: without the setuid bit the system policy's keylog = yes
    # lets SSLKEYLOGFILE through, and the log goes to TLSSHIM_LOG
    in_ns plain "SSLKEYLOGFILE=$PUB/att/keylog" "TLSSHIM_LOG=$PUB/att/log"
    assert_success
    assert_equal "$(json_field "$T/srv.json" 2 handshake)" ok
    run grep -c '^CLIENT_HANDSHAKE_TRAFFIC_SECRET ' "$PUB/att/keylog"
    assert_output 1
    run cat "$PUB/att/log"
    assert_output --partial "keylog = yes: TLS session keys are written to $PUB/att/keylog"
}

@test "secure execution: SSL_CERT_FILE cannot add a trusted CA to ca_file = system" {
    needs_root_ns
    prepare "ca_file = system"
    install -o nobody -m 0644 "$PKI/ca.pem" "$PUB/att/cert.pem"
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --info "$T/srv.json"
    # setuid: the test CA is not in the system store, so verification fails
    in_ns suid "SSL_CERT_FILE=$PUB/att/cert.pem"
    assert_equal "$status" 3
    [[ $stderr == *"errno=ECONNREFUSED"* ]]
    [[ $stderr == *"rule=sec: certificate verify failed"* ]]
    [[ $output == "" ]]
    # the control: OpenSSL honours SSL_CERT_FILE and the same CA verifies
    in_ns plain "SSL_CERT_FILE=$PUB/att/cert.pem"
    assert_success
    assert_equal "$(printf '%s\n' "$output" | sha256sum)" "$(sha256sum <"$PUB/payload")"
    [[ $stderr == *"rule=sec tls="*"verify=ok"* ]]
}

# sink: a plain TCP sink on $PORT recording what reaches it; the test
# ends with a control connection made without the shim, so an empty
# record proves the shimmed program sent nothing, not that the sink was
# deaf.
sink() {
    rm -f "$T/sink.log"
    start_bg sink "$PYTHON" "$PEERS/raw_sink.py" --port "$PORT" \
        --record "$T/sink.wire" --info "$T/sink.json" --idle-timeout 5
    wait_port "$PORT" 127.0.0.1
}

# refused_by_shim FILE MESSAGE: a shimmed blockclient under policy FILE
# is refused (EACCES) with MESSAGE on stderr, and nothing reached the
# sink, which a later unshimmed connection does reach.
refused_by_shim() {
    local policy=$1 message=$2
    echo "tlsshim-leak-marker" >"$T/payload"
    TLSSHIM_CONF=$policy run --separate-stderr shim_run "$PROGS/blockclient" \
        127.0.0.1 "$PORT" <"$T/payload"
    assert_equal "$status" 3
    [[ $stderr == *"errno=EACCES"* ]]
    [[ $stderr == *"refusing TCP connections: $message"* ]]
    [[ ! -s $T/sink.wire ]]
    "$PROGS/blockclient" 127.0.0.1 "$PORT" <"$T/payload" >/dev/null
    wait_file "$T/sink.wire"
    assert_equal "$(cat "$T/sink.wire")" "tlsshim-leak-marker"
    run grep -c . "$T/sink.json"
    assert_output 1
}

@test "a policy file writable by others is refused by tlsshim --check and by the shim, naming the file and its mode" {
    printf '[r]\nconnect = 127.0.0.1:%s\naction = plain\n' "$PORT" >"$T/p.conf"
    chmod 600 "$T/p.conf"
    run "$TLSSHIM" --check -f "$T/p.conf"
    assert_success
    chmod 666 "$T/p.conf"
    run "$TLSSHIM" --check -f "$T/p.conf"
    assert_equal "$status" 2
    assert_output "tlsshim: $T/p.conf: policy file is writable by others (mode 0666)"
    # group-writable with a group other than root's counts as others (a
    # file of root's group is not: only root can be in it for sure)
    chmod 620 "$T/p.conf"
    chgrp "$(id -g nobody)" "$T/p.conf" 2>/dev/null || chgrp "$(id -G | tr ' ' '\n' | grep -vx 0 | head -1)" "$T/p.conf"
    [[ $(stat -c %g "$T/p.conf") != 0 ]] || fail "no group other than root's to test with"
    run "$TLSSHIM" --check -f "$T/p.conf"
    assert_equal "$status" 2
    assert_output "tlsshim: $T/p.conf: policy file is writable by others (mode 0620)"
    sink
    refused_by_shim "$T/p.conf" "$T/p.conf: policy file is writable by others (mode 0620)"
}

@test "a key or passphrase file writable by others, or a key readable by all, is refused by --check and the shim" {
    install -m 0606 "$PKI/client.key" "$T/client.key"
    {
        echo "[r]"
        echo "connect = 127.0.0.1:$PORT"
        echo "ca_file = $PKI/ca.pem"
        echo "cert_file = $PKI/client.pem"
        echo "key_file = $T/client.key"
    } >"$T/p.conf"
    chmod 600 "$T/p.conf"
    run "$TLSSHIM" --check -f "$T/p.conf"
    assert_equal "$status" 2
    assert_output "tlsshim: $T/p.conf:5: key file $T/client.key is writable by others (mode 0606)"
    sink
    refused_by_shim "$T/p.conf" "$T/p.conf:5: key file $T/client.key is writable by others (mode 0606)"
    chmod 644 "$T/client.key"
    run "$TLSSHIM" --check -f "$T/p.conf"
    assert_equal "$status" 2
    assert_output "tlsshim: $T/p.conf:5: key file $T/client.key is readable by every user (mode 0644)"
    chmod 600 "$T/client.key"
    echo "pass" >"$T/pass.txt"
    chmod 622 "$T/pass.txt"
    echo "passwd_file = $T/pass.txt" >>"$T/p.conf"
    run "$TLSSHIM" --check -f "$T/p.conf"
    assert_equal "$status" 2
    assert_output "tlsshim: $T/p.conf:6: passphrase file $T/pass.txt is writable by others (mode 0622)"
}

@test "a key file that appears writable by others after the policy was loaded is refused when it is loaded" {
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --verify optional --ca "$PKI/ca.pem" --info "$T/srv.json"
    {
        echo "[r]"
        echo "connect = 127.0.0.1:$PORT"
        echo "ca_file = $PKI/ca.pem"
        echo "verifycn_name = localhost"
        echo "cert_file = $PKI/client.chain.pem"
        echo "key_file = $T/late.key"
    } >"$T/p.conf"
    chmod 600 "$T/p.conf"
    # the key does not exist when bash loads the policy; bash makes it
    # (mode 0666) and then connects: the rule's files are loaded then
    export TLSSHIM_CONF=$T/p.conf KEY=$PKI/client.key LATE=$T/late.key
    run --separate-stderr shim_run bash -c \
        'install -m 0666 "$KEY" "$LATE" && exec 3<>/dev/tcp/127.0.0.1/'"$PORT"' && echo connected'
    assert_failure
    refute_output connected
    [[ $stderr == *"rule=r: $T/late.key is writable by others (mode 0666)"* ]]
    # whatever reached the server was no completed handshake
    sleep 0.5
    before=$(grep -c . "$T/srv.json" 2>/dev/null || true)
    ! grep -q '"handshake": "ok"' "$T/srv.json" 2>/dev/null
    # the control: the same with mode 0600 connects, with the client
    # certificate
    rm -f "$T/late.key"
    run --separate-stderr shim_run bash -c \
        'install -m 0600 "$KEY" "$LATE" && exec 3<>/dev/tcp/127.0.0.1/'"$PORT"' && echo connected'
    assert_success
    assert_output connected
    for ((i = 0; i < 100; i++)); do
        [[ $(grep -c . "$T/srv.json" 2>/dev/null) -gt ${before:-0} ]] && break
        sleep 0.1
    done
    assert_equal "$(grep -c . "$T/srv.json")" $((before + 1))
    assert_equal "$(json_field "$T/srv.json" -1 handshake)" ok
    assert_equal "$(json_field "$T/srv.json" -1 peer_cert)" "O=tlsshim tests,CN=client.test"
}

# Bounds on untrusted input (man tlsshim.conf.5, LIMITS).

@test "a policy larger than 1 MiB is refused by --check and by the shim" {
    {
        printf '[r]\nconnect = 127.0.0.1:%s\naction = plain\n' "$PORT"
        head -c 1048576 /dev/zero | tr '\0' '#' | fold -w 100
    } >"$T/big.conf"
    chmod 600 "$T/big.conf"
    run "$TLSSHIM" --check -f "$T/big.conf"
    assert_equal "$status" 2
    assert_output "tlsshim: $T/big.conf: policy file is larger than 1 MiB"
    sink
    refused_by_shim "$T/big.conf" "$T/big.conf: policy file is larger than 1 MiB"
}

@test "a policy line longer than 4096 bytes is refused by --check and by the shim, naming the line" {
    {
        printf '[r]\nconnect = 127.0.0.1:%s\naction = plain\n' "$PORT"
        printf 'hostname = %s\n' "$(head -c 4090 /dev/zero | tr '\0' a)"
    } >"$T/long.conf"
    chmod 600 "$T/long.conf"
    run "$TLSSHIM" --check -f "$T/long.conf"
    assert_equal "$status" 2
    assert_output "tlsshim: $T/long.conf:4: line is longer than 4096 bytes"
    sink
    refused_by_shim "$T/long.conf" "$T/long.conf:4: line is longer than 4096 bytes"
    # 4096 bytes exactly is a line like any other (the value is then judged)
    printf '[r]\nconnect = 127.0.0.1:%s\naction = plain\n# %s\n' "$PORT" \
        "$(head -c 4094 /dev/zero | tr '\0' a)" >"$T/long.conf"
    run "$TLSSHIM" --check -f "$T/long.conf"
    assert_success
}

@test "more than 4096 rules are refused by --check and by the shim, naming the line of the rule too many" {
    local i
    for ((i = 1; i <= 4097; i++)); do
        printf '[r%d]\nconnect = 10.0.%d.%d:%d\naction = plain\n' "$i" $((i / 256)) $((i % 256)) "$PORT"
    done >"$T/many.conf"
    chmod 600 "$T/many.conf"
    run "$TLSSHIM" --check -f "$T/many.conf"
    assert_equal "$status" 2
    assert_output "tlsshim: $T/many.conf:$((4096 * 3 + 1)): too many rules (at most 4096)"
    sink
    refused_by_shim "$T/many.conf" "$T/many.conf:12289: too many rules (at most 4096)"
    # 4096 rules are fine
    head -n $((4096 * 3)) "$T/many.conf" >"$T/max.conf"
    chmod 600 "$T/max.conf"
    run "$TLSSHIM" --check -f "$T/max.conf"
    assert_success
}

@test "a report line stays bounded for a certificate with a long subject and 150 names" {
    local i ou="" sans="DNS:localhost" long
    long=$(printf 'x%.0s' {1..50})
    for ((i = 1; i <= 12; i++)); do
        ou+="/OU=unit-$i-$long"
    done
    for ((i = 1; i <= 150; i++)); do
        sans+=",DNS:host-$i-$long.example.test"
    done
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$T/big.key" -subj "/O=tlsshim tests$ou/CN=localhost" \
        -out "$T/big.csr" 2>/dev/null
    printf 'subjectAltName = %s\nbasicConstraints = CA:FALSE\n' "$sans" >"$T/ext.cnf"
    openssl x509 -req -in "$T/big.csr" -CA "$PKI/inter.pem" -CAkey "$PKI/inter.key" \
        -set_serial 4242 -days 2 -extfile "$T/ext.cnf" -out "$T/big.pem" 2>/dev/null
    cat "$T/big.pem" "$PKI/inter.pem" >"$T/big.chain.pem"
    # the certificate really is that big: 151 names, a subject of ~800 bytes
    run openssl x509 -in "$T/big.pem" -noout -ext subjectAltName
    assert_equal "$(grep -o 'DNS:' <<<"$output" | wc -l)" 151
    tls_server srv "$PORT" --cert "$T/big.chain.pem" --key "$T/big.key"
    printf '[r]\nconnect = 127.0.0.1:%s\nca_file = %s\nverifycn_name = localhost\n' \
        "$PORT" "$PKI/ca.pem" >"$T/p.conf"
    chmod 600 "$T/p.conf"
    echo hello >"$T/payload"
    TLSSHIM_CONF=$T/p.conf TLSSHIM_REPORT=$T/report.jsonl run shim_run \
        "$PROGS/blockclient" 127.0.0.1 "$PORT" <"$T/payload"
    assert_success
    assert_output hello
    assert_equal "$(grep -c . "$T/report.jsonl")" 1
    (($(wc -c <"$T/report.jsonl") <= 32768))
    assert_equal "$(json_field "$T/report.jsonl" 1 outcome)" ok
    "$PYTHON" - "$T/report.jsonl" <<'PY'
import json, sys
line = json.loads(open(sys.argv[1]).readline())
pc = line["peer_cert"]
assert pc["san"][0] == "localhost", pc["san"][:2]
assert len(pc["san"]) == 64, len(pc["san"])
assert pc["san"][1].startswith("host-1-"), pc["san"][1]
assert pc["san_omitted"] == 151 - 64, pc.get("san_omitted")
# the subject is cut at 511 bytes, from its start
assert len(pc["subject"].encode()) == 511, len(pc["subject"])
assert pc["subject"].startswith("CN=localhost,OU=unit-12-"), pc["subject"][:40]
PY
}

# Key material is wiped before its memory is freed: tests/progs/freescan.so
# searches every freed block for a passphrase or a line of a key's PEM.

# freescan_client CERT_LINES NEEDLE...: blockclient with a client
# certificate (the policy lines CERT_LINES, one per line) under the shim
# and freescan.so watching NEEDLEs; the exchange must work.
freescan_client() {
    local lines=$1 i=1 n
    shift
    printf '[r]\nconnect = 127.0.0.1:%s\nca_file = %s\nverifycn_name = localhost\n%s\n' \
        "$PORT" "$PKI/ca.pem" "$lines" >"$T/fs.conf"
    chmod 600 "$T/fs.conf"
    local env=(TLSSHIM_CONF="$T/fs.conf"
        LD_PRELOAD="$PROGS/.libs/freescan.so:$SHIMLIB")
    for n in "$@"; do
        env+=(FREESCAN_NEEDLE$i="$n")
        i=$((i + 1))
    done
    echo "key material" >"$T/payload"
    run --separate-stderr env "${env[@]}" "$PROGS/blockclient" 127.0.0.1 "$PORT" <"$T/payload"
    assert_success
    assert_output "key material"
    [[ $stderr == *"freescan: watching $# needles"* ]]
    [[ $stderr =~ freescan:\ ([0-9]+)\ blocks\ freed,\ 0\ holding\ a\ needle ]] ||
        fail "freed key material: $stderr"
    ((BASH_REMATCH[1] > 1000)) || fail "too few frees seen: $stderr"
    FS_N=$((${FS_N:-0} + 1))
    for ((n = 0; n < 50; n++)); do
        (($(grep -c . "$T/srv.json" 2>/dev/null || echo 0) >= FS_N)) && break
        sleep 0.1
    done
    run json_field "$T/srv.json" "$FS_N" peer_cert
    assert_output "O=tlsshim tests,CN=client.test"
}

@test "key material is wiped before it is freed: a key in the certificate file, an encrypted key and its passphrase, a PKCS#12" {
    # a sanitizer runtime, first in LD_PRELOAD, owns free(): no frees to see
    [[ -z $SHIM_RUNTIME ]] || skip "the sanitizer runtime replaces free()"
    tls_server srv "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --verify require --ca "$PKI/ca.pem" --info "$T/srv.json"
    local pass="pw-$RANDOM$RANDOM-wipe-me"
    printf '%s\nsecond line, also wiped\n' "$pass" >"$T/pass.txt"
    cat "$PKI/client.chain.pem" "$PKI/client.key" >"$T/combined.pem"
    openssl pkey -in "$PKI/client.key" -aes256 -passout "pass:$pass" -out "$T/enc.key"
    openssl pkcs12 -export -in "$PKI/client.pem" -inkey "$PKI/client.key" \
        -certfile "$PKI/inter.pem" -passout "pass:$pass" -out "$T/client.p12"
    chmod 600 "$T/pass.txt" "$T/combined.pem" "$T/enc.key" "$T/client.p12"

    # the key's PEM in the certificate file (no key_file)
    freescan_client "cert_file = $T/combined.pem" "$(sed -n 2p "$PKI/client.key")"
    # an encrypted key with its passphrase file: the passphrase, the rest
    # of that file, and the encrypted PEM
    freescan_client "cert_file = $PKI/client.chain.pem
key_file = $T/enc.key
passwd_file = $T/pass.txt" "$pass" "second line, also wiped" "$(sed -n 3p "$T/enc.key")"
    # a PKCS#12 and its passphrase
    freescan_client "cert_file = $T/client.p12
passwd_file = $T/pass.txt" "$pass" "second line, also wiped"
}
