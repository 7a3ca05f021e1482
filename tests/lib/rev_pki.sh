#!/bin/sh
# Generate the revocation test PKI in DIR with the openssl CLI and its CA
# databases: a root, an intermediate whose certificates name an OCSP
# responder at http://127.0.0.1:LEAF_PORT/, and a second intermediate,
# revoked by the root, whose own status is served at INTER_PORT.  Leaves
# (NAME.pem, NAME.key, NAME.chain.pem): good, revoked, unknown (never
# entered in the database), muststaple (TLS feature status_request),
# noaia (no responder named), clientonly (EKU clientAuth), weak (RSA 1024),
# future (not valid yet), sub (under the revoked intermediate), pathlen
# (under a CA the intermediate's pathlen:0 forbids), sha1 (signed with
# SHA-1) and ku (keyUsage keyAgreement only).  CRLs of
# the intermediate: crl.pem (current, lists "revoked") and crl-expired.pem.
# Prints nothing on success.
#
# usage: rev_pki.sh DIR LEAF_PORT INTER_PORT
set -eu

[ $# -eq 3 ] || { echo "usage: rev_pki.sh DIR LEAF_PORT INTER_PORT" >&2; exit 2; }
dir=$1 lport=$2 iport=$3
openssl=${OPENSSL:-openssl}
umask 077
mkdir -p "$dir"
cd "$dir"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

q() {
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        echo "rev_pki.sh: failed: $*" >&2
        exit 1
    fi
}

for ca in root inter inter2 deep; do
    mkdir -p "db-$ca"
    : >"db-$ca/index.txt"
    echo "unique_subject = no" >"db-$ca/index.txt.attr"
    "$openssl" rand -hex 8 >"db-$ca/serial"
done

# ca_section NAME DIR: an "openssl ca" section for the CA in DIR
ca_section() {
    printf '[%s]\n' "$1"
    printf 'database = db-%s/index.txt\n' "$2"
    printf 'serial = db-%s/serial\n' "$2"
    printf 'new_certs_dir = db-%s\n' "$2"
    printf 'certificate = %s.pem\nprivate_key = %s.key\n' "$2" "$2"
    printf 'default_md = sha256\ndefault_days = 30\npolicy = any\n'
    printf 'email_in_dn = no\ncopy_extensions = none\ndefault_crl_days = 7\n'
}

# ext NAME EKU TLSFEATURE AIA: a leaf's extension section
ext() {
    printf '[%s]\n' "$1"
    printf 'basicConstraints = critical, CA:FALSE\n'
    printf 'keyUsage = critical, digitalSignature, keyEncipherment\n'
    printf 'extendedKeyUsage = %s\n' "$2"
    printf 'subjectAltName = DNS:localhost, IP:127.0.0.1\n'
    printf 'subjectKeyIdentifier = hash\n'
    printf 'authorityKeyIdentifier = keyid:always\n'
    [ -z "$3" ] || printf 'tlsfeature = %s\n' "$3"
    [ -z "$4" ] || printf 'authorityInfoAccess = OCSP;URI:%s\n' "$4"
}

{
    printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n'
    printf '[any]\ncommonName = supplied\n'
    ca_section CA_root root
    ca_section CA_inter inter
    ca_section CA_inter2 inter2
    ca_section CA_deep deep
    printf '[root_ext]\nbasicConstraints = critical, CA:TRUE\n'
    printf 'keyUsage = critical, keyCertSign, cRLSign\n'
    printf 'subjectKeyIdentifier = hash\n'
    printf '[inter_ext]\nbasicConstraints = critical, CA:TRUE, pathlen:0\n'
    printf 'keyUsage = critical, keyCertSign, cRLSign\n'
    printf 'subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n'
    printf 'authorityInfoAccess = OCSP;URI:http://127.0.0.1:%s/\n' "$iport"
    ext leaf_ext serverAuth "" "http://127.0.0.1:$lport/"
    ext muststaple_ext serverAuth status_request "http://127.0.0.1:$lport/"
    ext noaia_ext serverAuth "" ""
    ext clientonly_ext clientAuth "" "http://127.0.0.1:$lport/"
    ext sub_ext serverAuth "" ""
    printf '[ku_ext]\nbasicConstraints = critical, CA:FALSE\n'
    printf 'keyUsage = critical, keyAgreement\nextendedKeyUsage = serverAuth\n'
    printf 'subjectAltName = DNS:localhost, IP:127.0.0.1\n'
    printf '[deep_ext]\nbasicConstraints = critical, CA:TRUE\n'
    printf 'keyUsage = critical, keyCertSign, cRLSign\n'
    printf 'subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n'
} >ca.cnf

eckey() {
    q "$openssl" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

# sign CA NAME SUBJECT EXT [openssl ca options...]
sign() {
    ca=$1 name=$2 subj=$3 ext=$4
    shift 4
    q "$openssl" req -new -config ca.cnf -key "$name.key" -subj "$subj" \
        -out "$name.csr"
    q "$openssl" ca -batch -config ca.cnf -name "CA_$ca" -extensions "$ext" \
        -in "$name.csr" -out "$name.pem" -notext "$@"
    rm -f "$name.csr"
}

eckey root.key
q "$openssl" req -new -x509 -config ca.cnf -key root.key -days 3650 \
    -subj "/CN=revocation test root" -extensions root_ext -out root.pem
cp root.pem ca.pem
eckey inter.key
sign root inter "/CN=revocation test intermediate" inter_ext -days 3650
eckey inter2.key
sign root inter2 "/CN=revoked intermediate" inter_ext -days 3650
q "$openssl" ca -config ca.cnf -name CA_root -revoke inter2.pem \
    -crl_reason keyCompromise

for name in good revoked muststaple noaia clientonly future unknown sub; do
    eckey "$name.key"
done
q "$openssl" genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out weak.key

sign inter good "/CN=good" leaf_ext
sign inter revoked "/CN=revoked" leaf_ext
sign inter muststaple "/CN=muststaple" muststaple_ext
sign inter noaia "/CN=noaia" noaia_ext
sign inter clientonly "/CN=clientonly" clientonly_ext
sign inter weak "/CN=weak" leaf_ext
sign inter future "/CN=future" leaf_ext -startdate 20991231000000Z \
    -enddate 21001231000000Z
sign inter2 sub "/CN=under a revoked intermediate" sub_ext
# a CA below the intermediate, whose pathlen:0 forbids it
eckey deep.key
sign inter deep "/CN=too deep a CA" deep_ext
eckey pathlen.key
sign deep pathlen "/CN=pathlen" sub_ext
# a key that may only agree keys, never sign a handshake
eckey ku.key
sign inter ku "/CN=keyusage" ku_ext
# signed with SHA-1, which security level 1 and up refuse
eckey sha1.key
sign inter sha1 "/CN=sha1" leaf_ext -md sha1
# signed outside the database: the responder does not know it
q "$openssl" req -new -config ca.cnf -key unknown.key -subj "/CN=unknown" \
    -out unknown.csr
q "$openssl" x509 -req -in unknown.csr -CA inter.pem -CAkey inter.key \
    -set_serial 0x7e57 -days 30 -sha256 -extfile ca.cnf -extensions leaf_ext \
    -out unknown.pem
rm -f unknown.csr

q "$openssl" ca -config ca.cnf -name CA_inter -revoke revoked.pem \
    -crl_reason keyCompromise
q "$openssl" ca -config ca.cnf -name CA_inter -gencrl -out crl.pem
q "$openssl" ca -config ca.cnf -name CA_inter -gencrl \
    -crl_lastupdate 20200101000000Z -crl_nextupdate 20200102000000Z \
    -out crl-expired.pem

for name in good revoked muststaple noaia clientonly weak future unknown sha1 ku; do
    cat "$name.pem" inter.pem >"$name.chain.pem"
done
cat pathlen.pem deep.pem inter.pem >pathlen.chain.pem
cat sub.pem inter2.pem >sub.chain.pem
