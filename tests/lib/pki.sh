#!/bin/sh
# Generate the throwaway PKI of one test run in DIR with the openssl CLI:
# a root CA, an intermediate CA signed by it, server leaves for every
# verification case the tests exercise (good, IP-only, wrong host, expired,
# wildcard, RSA, self-signed), a client certificate (PEM, PKCS#12 and
# encrypted-key forms) and an unrelated CA.  Leaves are signed by the
# intermediate; NAME.pem is the leaf alone, NAME.chain.pem the leaf plus the
# intermediate.  Prints nothing on success; on failure prints what openssl
# said and exits non-zero.
#
# usage: pki.sh DIR
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: pki.sh DIR" >&2
    exit 2
fi
dir=$1
openssl=${OPENSSL:-openssl}

umask 077
mkdir -p "$dir"
chmod 700 "$dir"
dir=$(cd "$dir" && pwd)
cd "$dir"
work=$(mktemp -d "$dir/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Run a command quietly; on failure show its output and stop.
q() {
    if ! "$@" >"$work/out" 2>&1; then
        cat "$work/out" >&2
        echo "pki.sh: failed: $*" >&2
        exit 1
    fi
}

serial() {
    echo "0x$("$openssl" rand -hex 8)"
}

eckey() {
    q "$openssl" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$1"
}

# A server leaf's extension section: NAME KEY_USAGE SUBJECT_ALT_NAME
server_section() {
    printf '[%s]\n' "$1"
    printf 'basicConstraints = critical, CA:FALSE\n'
    printf 'keyUsage = critical, %s\n' "$2"
    printf 'extendedKeyUsage = serverAuth\n'
    printf 'subjectAltName = %s\n' "$3"
    printf 'subjectKeyIdentifier = hash\n'
    printf 'authorityKeyIdentifier = keyid:always\n'
}

{
    cat <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused

[v3_root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[v3_inter]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:client.test
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

# No keyUsage: OpenSSL would not take a self-signed certificate without
# keyCertSign as its own issuer.
[selfsigned]
basicConstraints = critical, CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
EOF
    ec=digitalSignature
    server_section good "$ec" \
        "DNS:localhost, DNS:good.test, IP:127.0.0.1, IP:::1"
    server_section ipsan "$ec" "IP:127.0.0.1, IP:::1"
    server_section wronghost "$ec" "DNS:wrong.test"
    server_section expired "$ec" "DNS:localhost, IP:127.0.0.1, IP:::1"
    server_section wildcard "$ec" "DNS:*.wild.test"
    server_section rsa "digitalSignature, keyEncipherment" \
        "DNS:localhost, IP:127.0.0.1"
} >"$work/x509.cnf"

# Self-signed CA certificate: KEY SUBJECT OUT
selfsigned_ca() {
    q "$openssl" req -new -x509 -config "$work/x509.cnf" -key "$1" \
        -subj "$2" -days 3650 -sha256 -set_serial "$(serial)" \
        -extensions v3_root -out "$3"
}

# Certificate signed by a CA: NAME SUBJECT SECTION CA_CERT CA_KEY DAYS
issue() {
    q "$openssl" req -new -config "$work/x509.cnf" -key "$1.key" \
        -subj "$2" -out "$work/$1.csr"
    q "$openssl" x509 -req -in "$work/$1.csr" -CA "$4" -CAkey "$5" \
        -set_serial "$(serial)" -days "$6" -sha256 \
        -extfile "$work/x509.cnf" -extensions "$3" -out "$1.pem"
}

leaf() {
    issue "$1" "$2" "$1" inter.pem inter.key 60
    cat "$1.pem" inter.pem >"$1.chain.pem"
}

# --- certificate authorities -------------------------------------------------
eckey root.key
selfsigned_ca root.key "/O=tlsshim tests/CN=tlsshim test root" root.pem
cp root.pem ca.pem

eckey inter.key
issue inter "/O=tlsshim tests/CN=tlsshim test intermediate" v3_inter \
    root.pem root.key 3650

eckey other-root.key
selfsigned_ca other-root.key "/O=unrelated/CN=unrelated test root" \
    other-root.pem

# --- server leaves -----------------------------------------------------------
eckey good.key
leaf good "/O=tlsshim tests/CN=localhost"

# A subject that names no host: only the IP SANs can match.
eckey ipsan.key
leaf ipsan "/O=tlsshim tests/CN=IP SAN only"

eckey wronghost.key
leaf wronghost "/O=tlsshim tests/CN=wrong.test"

eckey wildcard.key
leaf wildcard "/O=tlsshim tests/CN=*.wild.test"

q "$openssl" genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key
leaf rsa "/O=tlsshim tests/CN=localhost"

# OpenSSL 3.0's "x509 -req" cannot set a validity period in the past, but
# "ca" can (-startdate/-enddate).
eckey expired.key
q "$openssl" req -new -config "$work/x509.cnf" -key expired.key \
    -subj "/O=tlsshim tests/CN=localhost" -out "$work/expired.csr"
mkdir "$work/ca"
: >"$work/ca/index.txt"
cat >"$work/ca.cnf" <<EOF
[ca]
default_ca = inter_ca
[inter_ca]
database = $work/ca/index.txt
new_certs_dir = $work/ca
serial = $work/ca/serial
certificate = inter.pem
private_key = inter.key
default_md = sha256
policy = any_name
unique_subject = no
email_in_dn = no
copy_extensions = none
[any_name]
organizationName = optional
commonName = supplied
EOF
"$openssl" rand -hex 8 >"$work/ca/serial"
q "$openssl" ca -batch -notext -config "$work/ca.cnf" -in "$work/expired.csr" \
    -startdate 20200101000000Z -enddate 20200201000000Z \
    -extfile "$work/x509.cnf" -extensions expired -out expired.pem
cat expired.pem inter.pem >expired.chain.pem

# --- client certificate ------------------------------------------------------
eckey client.key
leaf client "/O=tlsshim tests/CN=client.test"
printf 'secret\n' >p12pass.txt
q "$openssl" pkcs12 -export -inkey client.key -in client.pem \
    -certfile inter.pem -name client.test -passout file:p12pass.txt \
    -out client.p12
q "$openssl" pkey -in client.key -aes256 -passout file:p12pass.txt \
    -out client-enc.key

# --- self-signed leaf --------------------------------------------------------
eckey selfsigned.key
q "$openssl" req -new -x509 -config "$work/x509.cnf" -key selfsigned.key \
    -subj "/O=tlsshim tests/CN=localhost" -days 60 -sha256 \
    -set_serial "$(serial)" -extensions selfsigned -out selfsigned.pem

chmod 600 ./*.key p12pass.txt client.p12
chmod 644 ./*.pem
