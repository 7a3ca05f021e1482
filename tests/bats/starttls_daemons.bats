#!/usr/bin/env bats
# starttls against real daemons from Debian packages (SPEC section 4): a
# plaintext client under tlsshim talks to vsftpd, dovecot, slapd,
# PostgreSQL, MariaDB and an SMTP server that each insist on TLS, started by the
# test on loopback ports in $T with the test PKI.  Each test checks the
# payload end to end and that the daemon itself saw an encrypted session
# (its own log or statistics), so a shim that sent plaintext fails.

load ../lib/common

setup() {
    common_setup
    PORT=$(free_port)
}

teardown() {
    common_teardown
}

# cpolicy PROTO [LINE...]: a client rule [d] for 127.0.0.1:$PORT with
# starttls = PROTO, trusting the test CA
cpolicy() {
    local proto=$1 line
    shift
    {
        echo "[d]"
        echo "connect = 127.0.0.1:$PORT"
        echo "starttls = $proto"
        echo "ca_file = $PKI/ca.pem"
        for line in "$@"; do echo "$line"; done
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
}

# shimmed CMD...: CMD under tlsshim with the policy, log and report
shimmed() {
    timeout 60 "$TLSSHIM" -f "$T/policy.conf" -d 1 -o "$T/shim.log" \
        -r "$T/report.jsonl" -- "$@"
}

need() {
    local p
    for p in "$@"; do
        [[ -x $p ]] || command -v "$p" >/dev/null ||
            fail "$p is missing: install the packages in .ci/deps"
    done
}

# --- vsftpd: FTP with TLS data connections -----------------------------------

# vsftpd_start: anonymous FTP over $T/pub on $PORT that requires TLS for
# logins and data, and the reuse of the control session on data
# connections (require_ssl_reuse); its log (debug_ssl) in $T/vsftpd.log
vsftpd_start() {
    need /usr/sbin/vsftpd
    mkdir -p "$T/pub/up" "$T/empty"
    chmod 777 "$T/pub/up"
    head -c 300000 /dev/urandom >"$T/pub/file.bin"
    cat >"$T/vsftpd.conf" <<EOF
listen=YES
listen_address=127.0.0.1
listen_port=$PORT
background=NO
run_as_launching_user=YES
seccomp_sandbox=NO
anonymous_enable=YES
local_enable=NO
anon_root=$T/pub
secure_chroot_dir=$T/empty
write_enable=YES
anon_upload_enable=YES
anon_umask=022
pasv_enable=YES
port_enable=YES
connect_from_port_20=NO
ssl_enable=YES
allow_anon_ssl=YES
force_anon_logins_ssl=YES
force_anon_data_ssl=YES
require_ssl_reuse=YES
rsa_cert_file=$PKI/good.chain.pem
rsa_private_key_file=$PKI/good.key
vsftpd_log_file=$T/vsftpd.log
dual_log_enable=YES
xferlog_file=$T/xfer.log
log_ftp_protocol=YES
debug_ssl=YES
EOF
    start_bg vsftpd /usr/sbin/vsftpd "$T/vsftpd.conf"
    wait_port "$PORT" 127.0.0.1
}

@test "vsftpd: curl ftp:// without TLS lists and downloads over TLS data connections (PASV, session reused)" {
    vsftpd_start
    cpolicy ftp
    # without tlsshim vsftpd refuses the plaintext login
    run timeout 20 curl -sS "ftp://127.0.0.1:$PORT/"
    assert_failure
    assert_output --partial "530"
    run shimmed curl -sS "ftp://127.0.0.1:$PORT/"
    assert_success
    assert_output --partial " file.bin"
    run shimmed curl -sS -o "$T/got" "ftp://127.0.0.1:$PORT/file.bin"
    assert_success
    assert_equal "$(sha_of "$T/got")" "$(sha_of "$T/pub/file.bin")"
    # vsftpd saw a TLS control connection and data connections that
    # resumed its session, and the download complete
    run grep -c 'SSL version: TLSv1.3, .*, not reused' "$T/vsftpd.log"
    assert_output 2
    run grep -c 'SSL version: TLSv1.3, .*, reused' "$T/vsftpd.log"
    assert_output 2
    run grep -c "OK DOWNLOAD: Client \"127.0.0.1\", \"$T/pub/file.bin\", 300000 bytes" "$T/vsftpd.log"
    assert_output 1
    run grep -c "info: connect 127.0.0.1:[0-9]* rule=d starttls=ftp tls=TLSv1.3 .* verify=ok .*resumed=yes" "$T/shim.log"
    assert_output 2
}

@test "vsftpd: curl -T uploads over a TLS data connection, checksum intact" {
    vsftpd_start
    cpolicy ftp
    head -c 150000 /dev/urandom >"$T/upload.bin"
    run shimmed curl -sS -T "$T/upload.bin" "ftp://127.0.0.1:$PORT/up/u.bin"
    assert_success
    assert_equal "$(sha_of "$T/pub/up/u.bin")" "$(sha_of "$T/upload.bin")"
    run grep -c "OK UPLOAD: Client \"127.0.0.1\", \"$T/pub/up/u.bin\", 150000 bytes" "$T/vsftpd.log"
    assert_output 1
    run grep -c 'SSL version: TLSv1.3, .*, reused' "$T/vsftpd.log"
    assert_output 1
}

@test "vsftpd: active mode (PORT/EPRT): the accepted data connection is a TLS client that resumes the session" {
    vsftpd_start
    cpolicy ftp
    run shimmed curl -sS -P 127.0.0.1 -o "$T/got" "ftp://127.0.0.1:$PORT/file.bin"
    assert_success
    assert_equal "$(sha_of "$T/got")" "$(sha_of "$T/pub/file.bin")"
    run grep -cE 'FTP command: Client "127.0.0.1", "(EPRT|PORT) ' "$T/vsftpd.log"
    assert_output 1
    run grep -c 'SSL version: TLSv1.3, .*, reused' "$T/vsftpd.log"
    assert_output 1
    run grep -c "OK DOWNLOAD: Client \"127.0.0.1\", \"$T/pub/file.bin\", 300000 bytes" "$T/vsftpd.log"
    assert_output 1
}

# --- dovecot: IMAP and POP3 ----------------------------------------------------

# daemon_user [USER]: the user a daemon that refuses root runs its
# processes as: USER when the tests run as root, else the tests' user.
# As root, the directories above $T (made 0700 by bats) get o+x so that
# USER can reach its files in $T; nothing is made readable.
daemon_user() {
    local d
    if [[ $(id -u) -ne 0 ]]; then
        id -un
        return
    fi
    d=$T
    while [[ $d != / && $d != /tmp ]]; do
        chmod o+x "$d"
        d=$(dirname "$d")
    done
    echo "$1"
}

# dovecot_start: IMAP on $PORT and POP3 on $PORT2 with ssl = required
# (plaintext logins refused), one user "user" with password "secret"
# whose INBOX holds $T/message; log (verbose_ssl) in $T/dovecot.log
dovecot_start() {
    local user login
    need /usr/sbin/dovecot
    PORT2=$(free_port)
    user=$(daemon_user dovecot)
    login=$user
    [[ $(id -u) -ne 0 ]] || login=dovenull
    {
        printf 'Subject: starttls test\r\n\r\n'
        head -c 3000 /dev/urandom | base64 -w 76 | sed 's/$/\r/'
    } >"$T/message"
    mkdir -p "$T/home/user/Maildir/new" "$T/home/user/Maildir/cur" \
        "$T/home/user/Maildir/tmp" "$T/dovecot"
    cp "$T/message" "$T/home/user/Maildir/new/1.test:2,"
    chown -R "$user" "$T/home"
    cat >"$T/dovecot.conf" <<EOF
base_dir = $T/dovecot/run
state_dir = $T/dovecot/state
log_path = $T/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = required
ssl_cert = <$PKI/good.chain.pem
ssl_key = <$PKI/good.key
disable_plaintext_auth = yes
auth_mechanisms = plain login
first_valid_uid = $(id -u "$user")
default_login_user = $login
default_internal_user = $user
mail_location = maildir:~/Maildir
verbose_ssl = yes
passdb {
  driver = static
  args = password=secret
}
userdb {
  driver = static
  args = uid=$user gid=$(id -gn "$user") home=$T/home/%u
}
service imap-login {
  inet_listener imap {
    port = $PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = $PORT2
  }
  inet_listener pop3s {
    port = 0
  }
}
EOF
    start_bg dovecot /usr/sbin/dovecot -F -c "$T/dovecot.conf"
    wait_port "$PORT" 127.0.0.1 && wait_port "$PORT2" 127.0.0.1
}

@test "dovecot imap: curl imap:// without TLS fetches a message; dovecot logs the login as TLS" {
    dovecot_start
    cpolicy imap
    run shimmed curl -sS -u user:secret -o "$T/got" "imap://127.0.0.1:$PORT/INBOX;MAILINDEX=1"
    assert_success
    assert_equal "$(sha_of "$T/got")" "$(sha_of "$T/message")"
    # dovecot ends its login line with TLS for an encrypted session
    # (a plaintext one from loopback would say "secured")
    run grep "imap-login: Info: Login: user=<user>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1" "$T/dovecot.log"
    assert_success
    assert_output --regexp ', TLS, session=<'
    refute_output --partial "secured"
    run json_field "$T/report.jsonl" -1 version
    assert_output TLSv1.3
}

@test "dovecot pop3: curl pop3:// without TLS retrieves a message; dovecot logs the login as TLS" {
    dovecot_start
    PORT=$PORT2 cpolicy pop3
    run shimmed curl -sS -u user:secret -o "$T/got" "pop3://127.0.0.1:$PORT2/1"
    assert_success
    assert_equal "$(sha_of "$T/got")" "$(sha_of "$T/message")"
    run grep "pop3-login: Info: Login: user=<user>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1" "$T/dovecot.log"
    assert_success
    assert_output --regexp ', TLS, session=<'
    refute_output --partial "secured"
    run json_field "$T/report.jsonl" -1 starttls
    assert_output pop3
}

# --- PostgreSQL ------------------------------------------------------------------

# postgres_start: a cluster in $T/pg on $PORT whose pg_hba.conf admits
# only SSL connections (hostssl), ssl = on with the test certificate
postgres_start() {
    local user bin=/usr/lib/postgresql/15/bin run=()
    need "$bin/initdb" "$bin/postgres" psql
    user=$(daemon_user postgres)
    mkdir -p "$T/pg" "$T/pgsock"
    chown "$user" "$T/pg" "$T/pgsock"
    # initdb and postgres refuse to run as root
    [[ $(id -u) -ne 0 ]] || run=(runuser -u "$user" --)
    "${run[@]}" "$bin/initdb" -D "$T/pg/data" -A trust -U postgres >"$T/initdb.log" 2>&1 ||
        { cat "$T/initdb.log"; return 1; }
    cp "$PKI/good.chain.pem" "$T/pg/data/server.crt"
    cp "$PKI/good.key" "$T/pg/data/server.key"
    chown "$user" "$T/pg/data/server.crt" "$T/pg/data/server.key"
    chmod 600 "$T/pg/data/server.key"
    # SSL connections only: a plaintext one finds no pg_hba.conf entry
    printf 'local all all trust\nhostssl all all 127.0.0.1/32 trust\n' >"$T/pg/data/pg_hba.conf"
    start_bg postgres "${run[@]}" "$bin/postgres" -D "$T/pg/data" -p "$PORT" \
        -k "$T/pgsock" -c listen_addresses=127.0.0.1 -c ssl=on \
        -c log_connections=on
    wait_port "$PORT" 127.0.0.1
}

@test "postgres: psql sslmode=disable under tlsshim; pg_stat_ssl shows the session encrypted" {
    postgres_start
    cpolicy postgres
    local conn="host=127.0.0.1 port=$PORT user=postgres dbname=postgres sslmode=disable gssencmode=disable"
    # without tlsshim the server refuses the plaintext connection
    run timeout 20 psql "$conn" -c 'select 1'
    assert_failure
    assert_output --partial "no encryption"
    run shimmed psql "$conn" -At -c "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()" \
        -c "select md5(repeat('tlsshim', 1000))"
    assert_success
    assert_line --index 0 "t|TLSv1.3"
    assert_line --index 1 "$(printf 'tlsshim%.0s' $(seq 1000) | md5sum | cut -d' ' -f1)"
    run json_field "$T/report.jsonl" -1 starttls
    assert_output postgres
}

# --- MariaDB ---------------------------------------------------------------------

# mariadb_start: a MariaDB server with its data in $T/mdb, on $PORT (and a
# socket in $T/mdb for setting it up), that refuses every TCP login without
# TLS (require_secure_transport) and has the test certificate; users
# t@localhost (password pw, mysql_native_password) and e@localhost
# (password ed, ed25519: its login needs an auth switch).  Not the
# system's MariaDB: nothing here touches /etc/mysql, /var/lib/mysql or
# port 3306.
mariadb_start() {
    local user run=() as=()
    need /usr/sbin/mariadbd mariadb-install-db mariadb
    user=$(daemon_user mysql)
    mkdir -p "$T/mdb"
    cp "$PKI/good.chain.pem" "$PKI/good.key" "$PKI/ca.pem" "$T/mdb/"
    chown -R "$user" "$T/mdb"
    chmod 600 "$T/mdb/good.key"
    # mariadbd will not run as root
    [[ $(id -u) -ne 0 ]] || { run=(runuser -u "$user" --); as=(--user="$user"); }
    mariadb-install-db --no-defaults --datadir="$T/mdb/data" "${as[@]}" \
        --auth-root-authentication-method=normal >"$T/install.log" 2>&1 ||
        { cat "$T/install.log"; return 1; }
    start_bg mariadb "${run[@]}" /usr/sbin/mariadbd --no-defaults \
        --datadir="$T/mdb/data" --socket="$T/mdb/sock" \
        --pid-file="$T/mdb/mariadbd.pid" --port="$PORT" \
        --bind-address=127.0.0.1 --skip-name-resolve=0 \
        --ssl-cert="$T/mdb/good.chain.pem" --ssl-key="$T/mdb/good.key" \
        --ssl-ca="$T/mdb/ca.pem" --require-secure-transport=ON \
        --max-allowed-packet=64M --plugin-load-add=auth_ed25519
    wait_port "$PORT" 127.0.0.1
    # root through the socket, which require_secure_transport allows
    mariadb --no-defaults -S "$T/mdb/sock" -u root -e "
        CREATE USER t@localhost IDENTIFIED BY 'pw';
        CREATE USER e@localhost IDENTIFIED VIA ed25519 USING PASSWORD('ed');
        GRANT SELECT ON *.* TO t@localhost;
        GRANT SELECT ON *.* TO e@localhost;" ||
        { cat "$T/mariadb.log"; return 1; }
}

@test "mariadb: the mariadb client with --ssl=0 under tlsshim; the server reports its session TLSv1.3" {
    mariadb_start
    cpolicy mysql
    local sql="SHOW STATUS LIKE 'Ssl_version'; SELECT md5(repeat('tlsshim', 1000))"
    # without tlsshim require_secure_transport refuses the plaintext login
    run timeout 20 mariadb --no-defaults -h 127.0.0.1 -P "$PORT" -u t -ppw --ssl=0 -N -B -e "$sql"
    assert_failure
    assert_output --partial "ERROR 1045 (28000): Access denied for user 't'@'localhost'"
    run shimmed mariadb --no-defaults -h 127.0.0.1 -P "$PORT" -u t -ppw --ssl=0 -N -B -e "$sql"
    assert_success
    assert_line --index 0 "Ssl_version	TLSv1.3"
    assert_line --index 1 "$(printf 'tlsshim%.0s' $(seq 1000) | md5sum | cut -d' ' -f1)"
    run json_field "$T/report.jsonl" -1 starttls
    assert_output mysql
    run json_field "$T/report.jsonl" -1 outcome
    assert_output ok
    run json_field "$T/report.jsonl" -1 version
    assert_output TLSv1.3
    run grep -c "info: connect 127.0.0.1:$PORT rule=d starttls=mysql tls=TLSv1.3 .* verify=ok" "$T/shim.log"
    assert_output 1
}

@test "mariadb: a 20 MB row (packets split at 16 MB), --compress, a database and an ed25519 login (auth switch) through the translated ids" {
    mariadb_start
    cpolicy mysql
    local want
    want=$({ head -c 20000000 /dev/zero | tr '\0' x; echo; } | md5sum)
    run shimmed mariadb --no-defaults -h 127.0.0.1 -P "$PORT" -u t -ppw --ssl=0 \
        --max-allowed-packet=64M -N -B -e "SELECT repeat('x', 20000000)"
    assert_success
    assert_equal "$(printf '%s\n' "$output" | md5sum)" "$want"
    run shimmed mariadb --no-defaults -h 127.0.0.1 -P "$PORT" -u t -ppw --ssl=0 \
        --compress -D mysql -N -B -e "SHOW STATUS LIKE 'Ssl_version'; SHOW STATUS LIKE 'Compression'; SELECT database()"
    assert_success
    assert_output "$(printf 'Ssl_version\tTLSv1.3\nCompression\tON\nmysql')"
    # e's account needs the ed25519 plugin: the server answers the login
    # with an auth switch, one more round of the connection phase
    run shimmed mariadb --no-defaults -h 127.0.0.1 -P "$PORT" -u e -ped --ssl=0 -N -B \
        -e "SELECT current_user(), plugin FROM mysql.user WHERE user = 'e'; SHOW STATUS LIKE 'Ssl_version'"
    assert_success
    assert_line --index 0 "e@localhost	ed25519"
    assert_line --index 1 "Ssl_version	TLSv1.3"
    # a wrong password is the server's answer, over TLS too
    run shimmed mariadb --no-defaults -h 127.0.0.1 -P "$PORT" -u e -pwrong --ssl=0 -e "SELECT 1"
    assert_failure
    assert_output --partial "ERROR 1045 (28000): Access denied for user 'e'@'localhost'"
    run grep -c "rule=d starttls=mysql tls=TLSv1.3 .* verify=ok" "$T/shim.log"
    assert_output 4
}

# --- SMTP ----------------------------------------------------------------------
#
# No real SMTP daemon here: postfix runs as root with its queue and
# configuration under fixed system paths (an alternate configuration
# directory must be declared in the system's main.cf, and the master
# needs root to set up its queue), so it cannot be started per test in $T
# on an unprivileged port.  The real SMTP program is swaks, a plaintext
# client, against tests/peers/starttls_server.py (which records every byte
# it received, before and after its TLS handshake); and swaks --tls, a
# real STARTTLS client, against a plain server given STARTTLS by a listen
# rule.

@test "smtp: swaks without TLS under tlsshim delivers a message over STARTTLS, checksum intact" {
    need swaks
    start_bg srv "$PYTHON" "$PEERS/starttls_server.py" --proto smtp \
        --port "$PORT" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --record "$T/srv.json"
    wait_port "$PORT" 127.0.0.1
    cpolicy smtp
    printf 'line %s of the body\r\n' $(seq 200) >"$T/body"
    run shimmed swaks --server 127.0.0.1 --port "$PORT" --from a@client.test \
        --to b@real.server --body "@$T/body" --h-Subject starttls --suppress-data
    assert_success
    wait_file "$T/srv.json"
    run "$PYTHON" -c 'import json,sys; r = json.loads(open(sys.argv[1]).read().splitlines()[-1]); print(r["tls"], r["version"], r["pre"] == "EHLO [127.0.0.1]\r\nSTARTTLS\r\n", "STARTTLS" in r["post"], len(r["data_sha256"]))' "$T/srv.json"
    assert_output "True TLSv1.3 True False 1"
    # the body arrived whole over TLS
    run grep -c 'line 200 of the body' <("$PYTHON" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["post"])' "$T/srv.json")
    assert_output 1
}

@test "smtp: swaks --tls, a real STARTTLS client, against a plain server given STARTTLS by a listen rule" {
    need swaks
    {
        echo "[mail]"
        echo "listen = 127.0.0.1:$PORT"
        echo "cert_file = $PKI/good.chain.pem"
        echo "key_file = $PKI/good.key"
        echo "starttls = smtp"
        echo "starttls_required = yes"
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
    start_bg srv "$TLSSHIM" -f "$T/policy.conf" -d 1 -o "$T/shim.log" -- \
        "$PYTHON" "$PEERS/plain_mail_server.py" --proto smtp --port "$PORT" \
        --record "$T/rec.json"
    wait_port "$PORT" 127.0.0.1
    printf 'line %s of the body\r\n' $(seq 200) >"$T/body"
    run timeout 30 swaks --server 127.0.0.1 --port "$PORT" --from a@client.test \
        --to b@plain.server --body "@$T/body" --tls --tls-verify \
        --tls-ca-path "$PKI/ca.pem" --tls-sni localhost
    assert_success
    assert_output --partial "<-  220 2.0.0 Ready to start TLS"
    assert_output --partial "=== TLS started with cipher TLSv1.3"
    wait_file "$T/rec.json"
    run grep -c '"data_sha256": \["[0-9a-f]\{64\}"\]' "$T/rec.json"
    assert_output 1
    run grep -c STARTTLS "$T/rec.json"
    assert_output 0
}

# --- slapd: LDAP StartTLS -------------------------------------------------------

# slapd_start: an LDAP server on $PORT for dc=test that requires TLS for
# every operation (security tls=1), with one entry loaded by slapadd;
# its log (loglevel stats) in $T/slapd.log
slapd_start() {
    need /usr/sbin/slapd /usr/sbin/slapadd ldapsearch
    mkdir -p "$T/ldapdb"
    cat >"$T/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
pidfile $T/slapd.pid
argsfile $T/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCertificateFile $PKI/good.chain.pem
TLSCertificateKeyFile $PKI/good.key
security tls=1
database mdb
suffix "dc=test"
rootdn "cn=admin,dc=test"
rootpw secret
directory $T/ldapdb
EOF
    printf 'dn: dc=test\nobjectClass: dcObject\nobjectClass: organization\no: tlsshim\ndc: test\n\ndn: cn=probe,dc=test\nobjectClass: person\ncn: probe\nsn: %s\n' \
        "$LDAP_VALUE" >"$T/data.ldif"
    /usr/sbin/slapadd -f "$T/slapd.conf" -l "$T/data.ldif" >"$T/slapadd.log" 2>&1 ||
        { cat "$T/slapadd.log"; return 1; }
    start_bg slapd /usr/sbin/slapd -f "$T/slapd.conf" \
        -h "ldap://127.0.0.1:$PORT/" -d stats
    wait_port "$PORT" 127.0.0.1
}

@test "slapd: ldapsearch without -Z under tlsshim reads an entry; slapd logs StartTLS and the TLS strength" {
    LDAP_VALUE=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    slapd_start
    cpolicy ldap
    # without tlsshim slapd refuses the search (security tls=1)
    run timeout 20 ldapsearch -x -LLL -H "ldap://127.0.0.1:$PORT" -b cn=probe,dc=test sn
    assert_failure
    assert_output --partial "Confidentiality required"
    run shimmed ldapsearch -x -LLL -H "ldap://127.0.0.1:$PORT" -b cn=probe,dc=test sn
    assert_success
    assert_line "sn: $LDAP_VALUE"
    run grep -c 'op=0 STARTTLS$' "$T/slapd.log"
    assert_output 1
    run grep -cE 'conn=[0-9]+ fd=[0-9]+ TLS established tls_ssf=[0-9]+ ssf=[0-9]+' "$T/slapd.log"
    assert_output 1
    run json_field "$T/report.jsonl" -1 starttls
    assert_output ldap
}
