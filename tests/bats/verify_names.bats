#!/usr/bin/env bats
# Host name verification (SPEC section 4: verifycn_scheme, verifycn_name,
# verifycn_publicsuffix) compared with IO::Socket::SSL itself: thousands
# of generated certificates and identities (tests/verify/ioss_names.pl)
# answered by tlsshim's matcher (tests/unit/verify_cli) and by
# IO::Socket::SSL::verify_hostname_of_cert, under every scheme, with the
# public suffix check on and off.  The answers must be identical except
# for the cases tests/verify/divergences lists with their reasons.

bats_require_minimum_version 1.5.0

load ../lib/common

# One generation and both sets of answers per run of this file; the tests
# below look at them from different sides.
setup_file() {
    local builddir=${TLSSHIM_BUILDDIR:-$BATS_TEST_DIRNAME/../..}
    local srcdir=${TLSSHIM_SRCDIR:-$BATS_TEST_DIRNAME/../..}
    V=$BATS_FILE_TMPDIR/verify
    mkdir -p "$V"
    export V
    perl -MIO::Socket::SSL -e 1 2>/dev/null || return 0
    : >"$V/have_ioss"
    perl "$srcdir/tests/verify/ioss_names.pl" generate >"$V/cases" &&
        "$builddir/tests/unit/verify_cli" <"$V/cases" >"$V/shim" &&
        perl "$srcdir/tests/verify/ioss_names.pl" answer "$V/cases" "$V/shim" \
            >"$V/perl"
}

setup() {
    common_setup
    NAMES=$SRCDIR/tests/verify/ioss_names.pl
    DIVERGENCES=$SRCDIR/tests/verify/divergences
}

# The comparisons need IO::Socket::SSL's answers.
need_ioss() {
    [[ -e $V/have_ioss ]] ||
        skip "IO::Socket::SSL not installed (apt-get install libio-socket-ssl-perl, or sh .ci/deps)"
    [[ -s $V/perl ]] || fail "setup_file could not generate or answer the cases"
}

# shim_policy KEY=VALUE...: a one-rule client policy for 127.0.0.1:$PORT
# trusting the test CA.
shim_policy() {
    local kv
    {
        echo "[lab]"
        echo "connect = 127.0.0.1:$PORT"
        echo "ca_file = $PKI/ca.pem"
        for kv in "$@"; do echo "$kv"; done
    } >"$T/policy.conf"
    chmod 600 "$T/policy.conf"
    export TLSSHIM_CONF=$T/policy.conf
}

# leaf NAME SAN: a server certificate from the test intermediate, with the
# subjectAltName SAN, as $T/NAME.chain.pem and $T/NAME.key.
leaf() {
    local name=$1 san=$2
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$T/$name.key" -subj "/CN=$name" -out "$T/$name.csr" 2>/dev/null
    printf '%s\n' "basicConstraints = critical, CA:FALSE" \
        "keyUsage = critical, digitalSignature" \
        "extendedKeyUsage = serverAuth" "subjectAltName = $san" >"$T/$name.ext"
    openssl x509 -req -in "$T/$name.csr" -CA "$PKI/inter.pem" \
        -CAkey "$PKI/inter.key" -set_serial "$((RANDOM + 1000))" -days 2 \
        -extfile "$T/$name.ext" -out "$T/$name.pem" 2>/dev/null
    cat "$T/$name.pem" "$PKI/inter.pem" >"$T/$name.chain.pem"
}

# echo_through CERT_BASE: an echo server with CERT_BASE.chain.pem and
# CERT_BASE.key, and blockclient under the shim sending 100 kB to it.
echo_through() {
    PORT=$(free_port)
    head -c 100000 /dev/urandom >"$T/msg.bin"
    tls_server srv "$PORT" --cert "$1.chain.pem" --key "$1.key" \
        --mode echo --record "$T/rec.bin"
}

teardown() {
    common_teardown
}

@test "tlsshim and IO::Socket::SSL answer every generated case alike, except the listed divergences" {
    need_ioss
    run perl "$NAMES" compare "$V/cases" "$V/shim" "$V/perl" "$DIVERGENCES"
    assert_success
    assert_line --regexp '^[0-9]+ cases, [0-9]+ answers compared'
}

@test "the generator makes thousands of cases of every kind, deterministically" {
    need_ioss
    run perl "$NAMES" count "$V/cases"
    assert_success
    local kind_min n
    for kind_min in matrix:5000 psl:5000 random:1000 ip:300 idn:300 divergent:10; do
        n=$(awk -v k="${kind_min%:*}" '$1 == k { print $2 }' <<<"$output")
        ((${n:-0} >= ${kind_min#*:})) || fail "only ${n:-0} ${kind_min%:*} cases"
    done
    (($(wc -l <"$V/cases") >= 20000)) || fail "fewer than 20000 cases"
    perl "$NAMES" generate | cmp -s - "$V/cases" ||
        fail "a second generation differs from the first"
}

@test "every scheme answers yes somewhere and no somewhere, and the schemes differ" {
    need_ioss
    # Answers column by column: a scheme that always said the same, or two
    # schemes with different tables answering alike, would mean the
    # matcher ignores the table.
    run awk -F'\t' '
        FNR == NR { n = split($2, s, ","); next }
        {
            for (i = 1; i <= n; i++) {
                a = substr($2, 2 * i - 1, 1)
                col[s[i]] = col[s[i]] a
                yes[s[i]] += a
            }
        }
        END {
            for (i = 1; i <= n; i++) {
                if (s[i] == "none") { if (yes[s[i]] != length(col[s[i]])) print "none said no"; continue }
                if (yes[s[i]] == 0 || yes[s[i]] == length(col[s[i]])) print s[i] " is constant"
            }
            if (col["default"] == col["smtp"]) print "default = smtp"
            if (col["smtp"] == col["ldap"]) print "smtp = ldap"
            if (col["ldap"] == col["sip"]) print "ldap = sip"
            if (col["http"] == col["rfc2818"]) print "http = rfc2818"
            if (col["smtp"] == col["gist"]) print "smtp = gist"
            if (col["smtp"] != col["imap"]) print "smtp != imap"
            if (col["http"] != col["www"]) print "http != www"
        }' <(grep -m1 '^matrix' "$V/cases") <(grep '^matrix\|^ip' "$V/shim")
    assert_success
    assert_output ""
}

@test "a matcher that answers one case differently fails the comparison" {
    need_ioss
    # Flip the first answer of a case where both said yes, and of one
    # where both said no.
    local id
    id=$(awk -F'\t' '$2 ~ /^1/ { print $1; exit }' "$V/perl")
    awk -F'\t' -v OFS='\t' -v id="$id" \
        '$1 == id { $2 = "0" substr($2, 2) } { print }' "$V/shim" >"$T/shim.yes"
    run perl "$NAMES" compare "$V/cases" "$T/shim.yes" "$V/perl" "$DIVERGENCES"
    assert_failure
    assert_line --partial "unlisted divergence: case $id, scheme default, publicsuffix 1: tlsshim 0, IO::Socket::SSL 1"

    id=$(awk -F'\t' '$1 ~ /^matrix/ && $2 ~ /^0/ { print $1; exit }' "$V/perl")
    awk -F'\t' -v OFS='\t' -v id="$id" \
        '$1 == id { $2 = "1" substr($2, 2) } { print }' "$V/shim" >"$T/shim.no"
    run perl "$NAMES" compare "$V/cases" "$T/shim.no" "$V/perl" "$DIVERGENCES"
    assert_failure
    assert_line --partial "unlisted divergence: case $id, scheme default, publicsuffix 1: tlsshim 1, IO::Socket::SSL 0"
}

@test "a listed divergence that no longer differs, or differs the lax way, fails the comparison" {
    need_ioss
    # The leading-zero IPv4 case: make tlsshim agree with IO::Socket::SSL.
    local id
    id=$(awk -F'\t' '$3 == "01.2.3.4" && $4 == "ip:1.2.3.4" { print $1 }' "$V/cases")
    [[ -n $id ]]
    awk -F'\t' -v OFS='\t' 'FNR == NR { p[$1] = $2; next }
        $1 == id { $2 = p[$1] } { print }' id="$id" "$V/perl" "$V/shim" >"$T/shim.agree"
    run perl "$NAMES" compare "$V/cases" "$T/shim.agree" "$V/perl" "$DIVERGENCES"
    assert_failure
    assert_line --regexp 'divergences:[0-9]+: listed, but the answers agree'

    # A "stricter" reason where tlsshim says yes and IO::Socket::SSL no.
    awk -F'\t' -v OFS='\t' 'FNR == NR { s[$1] = $2; next }
        $1 == id { $2 = s[$1] } { print }' id="$id" "$V/perl" "$V/shim" >"$T/shim.swapped"
    awk -F'\t' -v OFS='\t' 'FNR == NR { s[$1] = $2; next }
        $1 == id { $2 = s[$1] } { print }' id="$id" "$V/shim" "$V/perl" >"$T/perl.swapped"
    run perl "$NAMES" compare "$V/cases" "$T/shim.swapped" "$T/perl.swapped" "$DIVERGENCES"
    assert_failure
    assert_line --partial "divergence in the wrong direction"
}

@test "an unknown reason or a case never generated in the divergence list fails the comparison" {
    need_ioss
    cp "$DIVERGENCES" "$T/div"
    printf 'psl-list\tdefault\t1\ta.nowhere.example\tdns:*.nowhere.example\n' >>"$T/div"
    run perl "$NAMES" compare "$V/cases" "$V/shim" "$V/perl" "$T/div"
    assert_failure
    assert_line --partial "no such case generated"

    printf 'because\t*\t*\t01.2.3.4\tip:1.2.3.4\n' >"$T/div2"
    run perl "$NAMES" compare "$V/cases" "$V/shim" "$V/perl" "$T/div2"
    assert_failure
    assert_output --partial 'unknown reason "because"'
}

@test "wildcards over public suffixes are refused with libpsl's list, and not without the check" {
    # Rows of the generated public suffix cases, answered by verify_cli.
    local line
    for line in \
        $'x\tdefault\texample.com\tdns:*.com\t01' \
        $'x\tdefault\texample.co.uk\tdns:*.co.uk\t01' \
        $'x\tdefault\twww.example.co.uk\tdns:*.example.co.uk\t11' \
        $'x\tdefault\ta.github.io\tdns:*.github.io\t11' \
        $'x\tdefault\ta.foo.kawasaki.jp\tdns:*.foo.kawasaki.jp\t01' \
        $'x\tdefault\twww.city.kawasaki.jp\tdns:*.city.kawasaki.jp\t11' \
        $'x\tdefault\tfoo.ck\tdns:*.ck\t01' \
        $'x\tdefault\ta.www.ck\tdns:*.www.ck\t11'; do
        local want=${line##*$'\t'}
        run "$BUILDDIR/tests/unit/verify_cli" <<<"${line%$'\t'*}"
        assert_success
        [[ $(cut -f2 <<<"$output") == "$want" ]] ||
            fail "$(cut -f3,4 <<<"$line"): got $(cut -f2 <<<"$output"), want $want"
    done
}

@test "the certificate's names in the mismatch message are escaped and bounded" {
    run "$BUILDDIR/tests/unit/verify_cli" -n <<<$'1\tdefault\tx\tdns:a%0Ab\tip:192.0.2.1\tip:2001:db8::1\tcn:ignored
2\tdefault\tx\tcn:evil%0Dforged
3\tdefault\tx\to:none'
    assert_success
    assert_line --index 0 $'1\ta\\x0ab, IP:192.0.2.1, IP:2001:db8::1'
    assert_line --index 1 $'2\tCN=evil\\x0dforged'
    assert_line --index 2 $'3\tno names'
}

@test "a program under the shim accepts a wildcard certificate for a name one label below it" {
    echo_through "$PKI/wildcard"
    shim_policy "verifycn_name = a.wild.test"
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT <$T/msg.bin >$T/out.bin"
    assert_success
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/msg.bin")"
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$T/msg.bin")"
}

@test "a program under the shim refuses a wildcard certificate for the name itself and two labels below" {
    local name
    echo_through "$PKI/wildcard"
    for name in wild.test a.b.wild.test; do
        shim_policy "verifycn_name = $name"
        run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT <$T/msg.bin"
        assert_failure 3
        assert_output --partial "errno=ECONNREFUSED"
        assert_output --partial "certificate verify failed: hostname mismatch (wanted $name, certificate has *.wild.test)"
    done
    [ ! -s "$T/rec.bin" ]
}

@test "a wildcard over a public suffix is refused under the shim unless verifycn_publicsuffix = no" {
    leaf couk "DNS:*.co.uk, IP:192.0.2.1"
    echo_through "$T/couk"
    shim_policy "verifycn_name = example.co.uk"
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT <$T/msg.bin"
    assert_failure 3
    assert_output --partial "hostname mismatch (wanted example.co.uk, certificate has *.co.uk, IP:192.0.2.1)"
    [ ! -s "$T/rec.bin" ]

    shim_policy "verifycn_name = example.co.uk" "verifycn_publicsuffix = no"
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT <$T/msg.bin >$T/out.bin"
    assert_success
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/msg.bin")"
}

@test "the scheme decides whether a partial wildcard matches under the shim" {
    leaf partial "DNS:f*.example.test"
    echo_through "$T/partial"
    shim_policy "verifycn_name = foo.example.test" "verifycn_scheme = smtp"
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT <$T/msg.bin"
    assert_failure 3
    assert_output --partial "hostname mismatch (wanted foo.example.test, certificate has f*.example.test)"

    shim_policy "verifycn_name = foo.example.test" "verifycn_scheme = http"
    run bash -c "LD_PRELOAD=$SHIM_PRELOAD $PROGS/blockclient 127.0.0.1 $PORT <$T/msg.bin >$T/out.bin"
    assert_success
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$T/msg.bin")"
}
