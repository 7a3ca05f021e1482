#!/usr/bin/env bats
# FTP data connections of a starttls = ftp session that must fail closed
# (SPEC section 4, tlsshim.conf(5) starttls): the program is a plain FTP
# client (tests/peers/ftp_client.py, Python's ftplib) under tlsshim, the
# server a scripted FTP server with AUTH TLS
# (tests/peers/ftp_tls_server.py) that plays the hostile or unlucky part
# each test needs.  Each test checks what the server side received and
# tlsshim's log line, so a shim that let the data go plain fails it.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
    head -c 100000 /dev/urandom >"$T/upload.bin"
    WANT_SHA=$(sha256sum "$T/upload.bin" | cut -d' ' -f1)
}

teardown() {
    common_teardown
}

# fpolicy [LINE...]: a client rule [ftp] for the server with starttls =
# ftp, trusting the test CA, then LINEs (more rules)
fpolicy() {
    local line
    {
        echo "[ftp]"
        echo "connect = 127.0.0.1:$PORT"
        echo "starttls = ftp"
        echo "ca_file = $PKI/ca.pem"
        for line in "$@"; do echo "$line"; done
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
}

# ftp_server [ARGS...]: the scripted server on $PORT, its record in
# $T/rec.json
ftp_server() {
    local i pid
    start_bg srv "$PYTHON" "$PEERS/ftp_tls_server.py" --port "$PORT" \
        --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --record "$T/rec.json" "$@"
    pid=$(<"$T/srv.pid")
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        grep -q '^READY' "$T/srv.log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "ftp_server: the server did not start:" >&2
    cat "$T/srv.log" >&2
    return 1
}

# client ACTION [ARGS...]: ftp_client.py under tlsshim
client() {
    timeout 60 "$TLSSHIM" -f "$T/policy.conf" -d 2 -o "$T/shim.log" \
        -- "$PYTHON" "$PEERS/ftp_client.py" "$PORT" "$@"
}

# rec KEY: a field of the server's record
rec() {
    wait_file "$T/rec.json" || return 1
    json_field "$T/rec.json" -1 "$1"
}

@test "active mode: a stranger that connects to the PORT address first is refused; the upload goes to the server over TLS" {
    fpolicy
    ftp_server --steal --steal-from 127.0.0.2
    run client stor-active "$T/upload.bin"
    assert_success
    assert_output "STORED 226 transfer complete"
    # the stranger got nothing and was closed by tlsshim
    run rec stolen
    assert_output ""
    run rec stolen_eof
    assert_output true
    run rec data_sha256
    assert_output "$WANT_SHA"
    run grep -c "error: accept 127.0.0.1:[0-9]* from 127.0.0.2:[0-9]* refused: an ftp data connection (active) is expected on this port from the control connection's server, not from this peer (port stealing?)" "$T/shim.log"
    assert_output 1
    run grep -c "ftp data connection from 127.0.0.1:[0-9]* (active) rule=ftp" "$T/shim.log"
    assert_output 1
}

@test "passive mode: a 227 answer naming another host does not override the rule that denies it" {
    fpolicy "[bank]" "connect = 127.0.0.3" "action = deny"
    ftp_server --pasv-ip 127.0.0.3
    run client pasv-connect
    assert_success
    assert_output "ERROR EACCES"
    run grep -c "connect 127.0.0.3:[0-9]* rule=bank: denied by policy" "$T/shim.log"
    assert_output 1
    run grep -c "warning: fd [0-9]*: the ftp server named another address than its own in its passive answer; the data connection is expected at 127.0.0.1:$PORT" "$T/shim.log"
    assert_output 1
}

@test "passive mode: a connection to another host a 227 answer named, with no rule of its own, is refused" {
    fpolicy
    ftp_server --pasv-ip 127.0.0.3
    run client pasv-connect
    assert_success
    assert_output "ERROR EACCES"
    run grep -c "error: connect 127.0.0.3:[0-9]* refused: an ftp server named this address for a data connection, not its own; only a data connection to the control connection's server is trusted" "$T/shim.log"
    assert_output 1
}

@test "passive mode: the upload goes to the control connection's server over TLS" {
    fpolicy
    ftp_server
    run client stor-passive "$T/upload.bin"
    assert_success
    assert_output "STORED 226 transfer complete"
    run rec data_sha256
    assert_output "$WANT_SHA"
    run grep -c "info: connect 127.0.0.1:[0-9]* rule=ftp starttls=ftp tls=TLSv1.3 .*verify=ok" "$T/shim.log"
    assert_output 2
}

@test "passive mode: a 227 answer longer than a line buffer is still found; the upload goes over TLS" {
    fpolicy
    ftp_server --pasv-pad 400
    run client stor-passive "$T/upload.bin"
    assert_success
    assert_output "STORED 226 transfer complete"
    run rec data_sha256
    assert_output "$WANT_SHA"
    run rec error
    assert_output null
    run grep -c "ftp data connection expected (passive) on port [0-9]* of the address named" "$T/shim.log"
    assert_output 1
}

@test "passive mode: a data connection whose expectation could not be recorded is refused, never plain" {
    fpolicy
    ftp_server
    # 16 expectations wait (never used): the 17th PASV finds no room
    run client pasv-flood 16 "$T/upload.bin"
    assert_success
    assert_output "ERROR EACCES"
    run grep -c "error: fd [0-9]*: ftp data connection (passive) on port [0-9]* not recorded: too many expected at once" "$T/shim.log"
    assert_output 1
    run grep -c "error: fd [0-9]*: ftp data connection not found (too many expected at once): connections to 127.0.0.1 on ports no rule names are refused until the transfer ends" "$T/shim.log"
    assert_output 1
    run grep -c "error: connect 127.0.0.1:[0-9]* refused: the data connection an ftp session with this server asked for was not found; no rule names this port, and it could carry the transfer in plaintext" "$T/shim.log"
    assert_output 1
    # the server never got the upload command
    run rec data_sha256
    assert_output null
}
