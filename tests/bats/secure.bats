#!/usr/bin/env bats
# Hardening: secure execution, files writable by others, and the bounds on
# untrusted input.
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
    local prog=$1 sys
    shift
    sys=$(sysconf_policy)
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
