#!/usr/bin/env bats
# Packaging and deployment: tlsshim --unit-dropin (SPEC section 1) against
# fake systemd units in a directory named by TLSSHIM_SYSTEMD_DIR, make
# install and make uninstall into a DESTDIR, the bash completion, and an
# unchanged program in a chroot (a container without an image registry)
# given verified TLS by a library and a policy mounted into it.
#
# The Debian package build (dpkg-buildpackage and lintian on the release
# tarball) takes minutes: it runs only when TLSSHIM_TEST_DEB=1.

bats_require_minimum_version 1.5.0

load ../lib/common

setup() {
    # common_setup clears every TLSSHIM_ variable
    TEST_DEB=${TLSSHIM_TEST_DEB:-0}
    common_setup
    # The shim refuses policy files that others can write.
    umask 022
    SD=$T/systemd
    mkdir -p "$SD"
    export TLSSHIM_SYSTEMD_DIR=$SD
    POLICY=$T/policy.conf
    printf '[lab]\nconnect = lab.internal:443\n' > "$POLICY"
    chmod 644 "$POLICY"
}

teardown() {
    common_teardown
}

# unit NAME: a service unit from standard input, in $SD.
unit() {
    cat > "$SD/$1"
}

# dropin UNIT FILE: a drop-in of UNIT from standard input.
dropin() {
    mkdir -p "$SD/$1.d"
    cat > "$SD/$1.d/$2"
}

# A plain service that runs a program tlsshim can cover.
plain_unit() {
    unit "${1:-fake.service}" <<'EOF'
[Unit]
Description=a plain daemon

[Service]
ExecStart=/bin/sleep infinity
EOF
}

# The value of Environment="NAME=..." in the drop-in on standard output.
dropin_env() {
    sed -n "s/^Environment=\"$1=\\(.*\\)\"\$/\\1/p" <<<"$output"
}

# --- tlsshim --unit-dropin ---------------------------------------------------

@test "--unit-dropin appends the shim to the LD_PRELOAD the unit sets" {
    unit fake.service <<'EOF'
[Service]
ExecStart=/bin/sleep infinity
Environment="LD_PRELOAD=/usr/lib/libfakealloc.so" OTHER=1
EOF
    run --separate-stderr "$TLSSHIM" --unit-dropin fake -f "$POLICY"
    assert_success
    assert_equal "$(dropin_env LD_PRELOAD)" "/usr/lib/libfakealloc.so:$SHIMLIB"
    assert_equal "$(dropin_env TLSSHIM_CONF)" "$POLICY"
    assert_equal "$(dropin_env TLSSHIM_REPORT)" \
        "/var/log/tlsshim/fake.service/connections.jsonl"
    assert_line "LogsDirectory=tlsshim/fake.service"
    assert_line "AssertPathExists=$SHIMLIB"
    assert_line "AssertPathExists=$POLICY"
    assert_line "# LD_PRELOAD of $SD/fake.service, with tlsshim appended"
    # nothing is written without --write
    [ ! -e "$SD/fake.service.d" ]
}

@test "--unit-dropin takes LD_PRELOAD from the unit's drop-ins in systemd's order" {
    unit fake.service <<'EOF'
[Service]
ExecStart=/bin/sleep infinity
Environment=LD_PRELOAD=/usr/lib/from-unit.so
EOF
    dropin fake.service 10-alloc.conf <<'EOF'
[Service]
Environment=LD_PRELOAD=/usr/lib/from-10.so
EOF
    dropin fake.service 20-more.conf <<'EOF'
[Service]
# a continued line, and a value with a space
Environment="LD_PRELOAD=/usr/lib/from-20.so /usr/lib/two.so" \
    FOO=bar
EOF
    run --separate-stderr "$TLSSHIM" --unit-dropin fake.service -f "$POLICY"
    assert_success
    assert_equal "$(dropin_env LD_PRELOAD)" \
        "/usr/lib/from-20.so /usr/lib/two.so:$SHIMLIB"
    assert_line "# LD_PRELOAD of $SD/fake.service.d/20-more.conf, with tlsshim appended"
}

@test "--unit-dropin sets LD_PRELOAD to the shim alone when the unit sets none" {
    plain_unit
    dropin fake.service 10-reset.conf <<'EOF'
[Service]
Environment=
EOF
    run --separate-stderr "$TLSSHIM" --unit-dropin fake -f "$POLICY"
    assert_success
    assert_equal "$(dropin_env LD_PRELOAD)" "$SHIMLIB"
    refute_output --partial "# LD_PRELOAD of"
}

@test "--unit-dropin keeps the unit's specifiers and escapes its own paths" {
    mkdir "$T/50%"
    cp "$POLICY" "$T/50%/policy.conf"
    unit fake.service <<'EOF'
[Service]
ExecStart=/bin/sleep infinity
Environment="LD_PRELOAD=%h/lib/a\x2db\101\u00e9.so"
EOF
    run --separate-stderr "$TLSSHIM" --unit-dropin fake -f "$T/50%/policy.conf"
    assert_success
    # the unit's value as systemd decodes it, its %h still a specifier
    assert_line "Environment=\"LD_PRELOAD=%h/lib/a-bAé.so:$SHIMLIB\""
    assert_line "Environment=\"TLSSHIM_CONF=$T/50%%/policy.conf\""
    assert_line "AssertPathExists=$T/50%%/policy.conf"
}

@test "systemd-analyze verify accepts the drop-in" {
    command -v systemd-analyze >/dev/null || skip "systemd-analyze not found"
    mkdir "$T/50%"
    cp "$POLICY" "$T/50%/policy.conf"
    unit fake.service <<'EOF'
[Service]
ExecStart=/bin/sleep infinity
Environment="LD_PRELOAD=/usr/lib/x\"y.so"
EOF
    run "$TLSSHIM" --unit-dropin fake -f "$T/50%/policy.conf" --write
    assert_success
    run env SYSTEMD_UNIT_PATH="$SD:" systemd-analyze verify fake.service
    refute_output --partial "tlsshim.conf"
    grep -q '^Environment="LD_PRELOAD=/usr/lib/x\\"y.so:' \
        "$SD/fake.service.d/tlsshim.conf"
}

@test "--write installs the drop-in and writing it again gives the same file" {
    unit fake.service <<'EOF'
[Service]
ExecStart=/bin/sleep infinity
Environment=LD_PRELOAD=/usr/lib/libfakealloc.so
EOF
    run --separate-stderr "$TLSSHIM" --unit-dropin fake -f "$POLICY"
    assert_success
    printf '%s\n' "$output" > "$T/printed"
    run --separate-stderr "$TLSSHIM" --unit-dropin fake -f "$POLICY" --write
    assert_success
    assert_output ""
    [[ "$stderr" == *"tlsshim: wrote $SD/fake.service.d/tlsshim.conf"* ]]
    [[ "$stderr" == *"systemctl daemon-reload && systemctl restart fake.service"* ]]
    cmp "$T/printed" "$SD/fake.service.d/tlsshim.conf"
    assert_equal "$(stat -c %a "$SD/fake.service.d/tlsshim.conf")" 644
    # the drop-in of the first run is not read as the unit's own
    run "$TLSSHIM" --unit-dropin fake -f "$POLICY" --write
    assert_success
    cmp "$T/printed" "$SD/fake.service.d/tlsshim.conf"
    run ls -A "$SD/fake.service.d"
    assert_output tlsshim.conf
}

@test "--unit-dropin puts -d, -o and -r into the drop-in" {
    plain_unit
    run --separate-stderr "$TLSSHIM" --unit-dropin fake -f "$POLICY" -d 1 \
        -o syslog -r /srv/reports/fake.jsonl
    assert_success
    assert_equal "$(dropin_env TLSSHIM_DEBUG)" 1
    assert_equal "$(dropin_env TLSSHIM_LOG)" syslog
    assert_equal "$(dropin_env TLSSHIM_REPORT)" /srv/reports/fake.jsonl
    refute_output --partial "LogsDirectory="
}

@test "--unit-dropin with the embedded default policy sets no TLSSHIM_CONF" {
    plain_unit
    [ ! -e "$(make_var sysconfdir)/tlsshim.conf" ] ||
        skip "a system policy is installed"
    run --separate-stderr env TLSSHIM_CONF= "$TLSSHIM" --unit-dropin fake
    assert_success
    refute_output --partial "TLSSHIM_CONF="
    assert_line "# No policy file: the embedded default policy applies (tlsshim --check)."
}

@test "--unit-dropin follows an alias and reads a template's unit file" {
    unit real.service <<'EOF'
[Service]
ExecStart=/bin/sleep infinity
Environment=LD_PRELOAD=/usr/lib/real.so
EOF
    ln -s real.service "$SD/nick.service"
    run --separate-stderr "$TLSSHIM" --unit-dropin nick -f "$POLICY" --write
    assert_success
    [[ "$stderr" == *"tlsshim: nick.service is an alias of real.service"* ]]
    grep -qF "Environment=\"LD_PRELOAD=/usr/lib/real.so:$SHIMLIB\"" \
        "$SD/real.service.d/tlsshim.conf"
    [ ! -e "$SD/nick.service.d" ]

    unit worker@.service <<'EOF'
[Service]
ExecStart=/bin/sleep infinity
Environment=LD_PRELOAD=/usr/lib/template.so
EOF
    run --separate-stderr "$TLSSHIM" --unit-dropin worker@3 -f "$POLICY"
    assert_success
    assert_equal "$(dropin_env LD_PRELOAD)" "/usr/lib/template.so:$SHIMLIB"
    assert_line "LogsDirectory=tlsshim/worker@3.service"
}

@test "--unit-dropin warns when it cannot find the unit" {
    run --separate-stderr "$TLSSHIM" --unit-dropin nowhere -f "$POLICY"
    assert_success
    [[ "$stderr" == *"tlsshim: warning: cannot find nowhere.service in $SD: an LD_PRELOAD it sets elsewhere would be replaced"* ]]
    assert_equal "$(dropin_env LD_PRELOAD)" "$SHIMLIB"
}

@test "a bad policy makes --unit-dropin exit 2 and write nothing" {
    plain_unit
    printf '[x]\nconnect = a:1\nno_such_key = 1\n' > "$T/bad.conf"
    chmod 644 "$T/bad.conf"
    run "$TLSSHIM" --unit-dropin fake -f "$T/bad.conf" --write
    assert_equal "$status" 2
    assert_output --partial "bad.conf:3:"
    [ ! -e "$SD/fake.service.d" ]
}

@test "unit names that are paths or that systemd refuses exit 2" {
    local name
    for name in ../../etc/passwd a/b /etc/systemd/system/x.service '' \
        'two words' 'x;y' '@x' 'a@b@c' .service foo.socket foo.timer; do
        run "$TLSSHIM" --unit-dropin "$name" -f "$POLICY" --write
        assert_equal "$status" 2
        assert_output --regexp "tlsshim: --unit-dropin: .*(not a unit name|is empty|not a service)"
    done
    run find "$SD" -mindepth 1
    assert_output ""
}

@test "an EnvironmentFile= that sets LD_PRELOAD is refused" {
    printf '# env\nexport LD_PRELOAD=/usr/lib/x.so\n' > "$T/env"
    unit fake.service <<EOF
[Service]
ExecStart=/bin/sleep infinity
EnvironmentFile=-/nonexistent/optional
EnvironmentFile=$T/env
EOF
    run "$TLSSHIM" --unit-dropin fake -f "$POLICY" --write
    assert_equal "$status" 2
    assert_output --partial "tlsshim: $T/env sets LD_PRELOAD for fake.service, and an EnvironmentFile= overrides Environment="
    [ ! -e "$SD/fake.service.d/tlsshim.conf" ]

    # an optional file that does not exist is no reason to warn
    sed -i "/^EnvironmentFile=\\//d" "$SD/fake.service"
    run "$TLSSHIM" --unit-dropin fake -f "$POLICY"
    assert_success
    refute_output --partial "EnvironmentFile"
}

@test "a later drop-in that sets LD_PRELOAD, or UnsetEnvironment=, is refused" {
    plain_unit
    dropin fake.service zz-local.conf <<'EOF'
[Service]
Environment=LD_PRELOAD=/usr/lib/late.so
EOF
    run "$TLSSHIM" --unit-dropin fake -f "$POLICY"
    assert_equal "$status" 2
    assert_output --partial "tlsshim: $SD/fake.service.d/zz-local.conf sets LD_PRELOAD of fake.service after this drop-in would"

    rm "$SD/fake.service.d/zz-local.conf"
    dropin fake.service 05-unset.conf <<'EOF'
[Service]
UnsetEnvironment=TLSSHIM_CONF
EOF
    run "$TLSSHIM" --unit-dropin fake -f "$POLICY"
    assert_equal "$status" 2
    assert_output --partial "UnsetEnvironment= of fake.service removes LD_PRELOAD or a TLSSHIM_ variable"
}

@test "a service whose program tlsshim cannot cover is refused unless --allow-uncovered" {
    cp /bin/true "$T/setid-true"
    chmod 4755 "$T/setid-true"
    unit fake.service <<EOF
[Service]
ExecStart=-$T/setid-true --flag
EOF
    run "$TLSSHIM" --unit-dropin fake -f "$POLICY" --write
    assert_equal "$status" 2
    assert_output --partial "tlsshim: fake.service cannot be covered: $T/setid-true: set-id"
    assert_output --partial "(use --allow-uncovered to make the drop-in anyway)"
    [ ! -e "$SD/fake.service.d" ]

    run "$TLSSHIM" --unit-dropin fake -f "$POLICY" --allow-uncovered --write
    assert_success
    assert_output --partial "tlsshim: warning: fake.service is not covered: $T/setid-true: set-id"
    [ -s "$SD/fake.service.d/tlsshim.conf" ]
}

@test "a sandbox that hides the library or the policy from the service is refused" {
    local libdir
    libdir=$(dirname "$(readlink -f "$SHIMLIB")")
    plain_unit
    dropin fake.service 10-sandbox.conf <<EOF
[Service]
NoExecPaths=/
ExecPaths=/usr/bin /usr/lib
EOF
    run "$TLSSHIM" --unit-dropin fake -f "$POLICY"
    assert_equal "$status" 2
    assert_output --partial "NoExecPaths= keeps it from loading $SHIMLIB"

    # ExecPaths= for the library's directory lets it load
    echo "ExecPaths=$libdir" >> "$SD/fake.service.d/10-sandbox.conf"
    run "$TLSSHIM" --unit-dropin fake -f "$POLICY"
    assert_success

    echo "InaccessiblePaths=-$libdir" >> "$SD/fake.service.d/10-sandbox.conf"
    run "$TLSSHIM" --unit-dropin fake -f "$POLICY"
    assert_equal "$status" 2
    assert_output --partial "InaccessiblePaths= hides $SHIMLIB from it"

    # PrivateTmp= gives the service its own /tmp: a policy there is lost
    rm "$SD/fake.service.d/10-sandbox.conf"
    mkdir -p /tmp/tlsshim-packaging.$$
    cp "$POLICY" /tmp/tlsshim-packaging.$$/policy.conf
    printf '[Service]\nPrivateTmp=yes\n' > "$SD/fake.service.d/10-tmp.conf"
    run "$TLSSHIM" --unit-dropin fake --allow-uncovered \
        -f /tmp/tlsshim-packaging.$$/policy.conf
    rm -rf /tmp/tlsshim-packaging.$$
    assert_equal "$status" 2
    assert_output --partial "PrivateTmp= hides the policy /tmp/tlsshim-packaging.$$/policy.conf from fake.service"
}

@test "--unit-dropin warns when the service's user cannot read the policy" {
    unit fake.service <<'EOF'
[Service]
ExecStart=/bin/sleep infinity
User=nobody
EOF
    chmod 600 "$POLICY"
    run "$TLSSHIM" --unit-dropin fake -f "$POLICY"
    assert_success
    assert_output --partial "tlsshim: warning: fake.service runs as nobody, and other users cannot read $POLICY"
}

@test "--write needs --unit-dropin, which takes one UNIT" {
    run "$TLSSHIM" --write --check
    assert_equal "$status" 2
    assert_output --partial "--write does not apply to --check"
    run "$TLSSHIM" --write true
    assert_equal "$status" 2
    assert_output --partial "--write needs --unit-dropin"
    run "$TLSSHIM" --unit-dropin
    assert_equal "$status" 2
    assert_output --partial "--unit-dropin takes one UNIT"
    run "$TLSSHIM" --unit-dropin a b
    assert_equal "$status" 2
    run "$TLSSHIM" --unit-dropin a --listen
    assert_equal "$status" 2
    assert_output --partial "--listen does not apply to --unit-dropin"
}

@test "--help shows --unit-dropin and --write" {
    run "$TLSSHIM" --help
    assert_success
    assert_output --partial "tlsshim --unit-dropin UNIT [-f POLICY]"
    assert_output --regexp "(^|[[:space:]])--write[[:space:]]"
}

@test "every example policy passes tlsshim --check" {
    local f n=0
    for f in "$SRCDIR"/examples/*.conf; do
        cp "$f" "$T/example.conf"
        chmod 644 "$T/example.conf"
        run "$TLSSHIM" --check -f "$T/example.conf"
        assert_success
        n=$((n + 1))
    done
    ((n >= 3))
}

# --- make install / make uninstall -------------------------------------------

# make_var NAME: the value make gives NAME in the build tree.
make_var() {
    printf 'print-%%:\n\t@echo $($*)\n' > "$T/vars.mk"
    make -s -C "$BUILDDIR" -f Makefile -f "$T/vars.mk" "print-$1"
}

@test "make install honours DESTDIR and make uninstall removes every file it installed" {
    [ -f "$BUILDDIR/Makefile" ] || skip "no configured build tree"
    command -v make >/dev/null || skip "make not found"
    # not the jobserver of a make check that runs this
    unset MAKEFLAGS MFLAGS MAKELEVEL
    local dest=$T/dest bindir pkglibdir sysconfdir mandir docdir bashcompdir
    bindir=$(make_var bindir)
    pkglibdir=$(make_var pkglibdir)
    sysconfdir=$(make_var sysconfdir)
    mandir=$(make_var mandir)
    docdir=$(make_var docdir)
    bashcompdir=$(make_var bashcompdir)
    [[ $pkglibdir == /* && $sysconfdir == /* ]]

    run make -C "$BUILDDIR" install DESTDIR="$dest"
    assert_success
    [ -x "$dest$bindir/tlsshim" ]
    [ -f "$dest$pkglibdir/libtlsshim.so" ]
    cmp "$SRCDIR/config/tlsshim.conf" "$dest$sysconfdir/tlsshim.conf"
    [ -f "$dest$mandir/man1/tlsshim.1" ]
    [ -f "$dest$mandir/man5/tlsshim.conf.5" ]
    [ -f "$dest$docdir/README.md" ]
    [ -f "$dest$docdir/examples/redis-server.conf" ]
    if [ -n "$bashcompdir" ]; then
        cmp "$SRCDIR/completion/tlsshim" "$dest$bashcompdir/tlsshim"
    fi
    # the command looks for its library where it was installed, not in
    # DESTDIR (which is only a staging area)
    grep -qaF "$pkglibdir" "$dest$bindir/tlsshim"
    run grep -caF "$dest" "$dest$bindir/tlsshim"
    assert_output 0
    run make -C "$BUILDDIR" uninstall DESTDIR="$dest"
    assert_success
    run find "$dest" ! -type d
    assert_output ""
}

# --- bash completion ---------------------------------------------------------

# complete_words WORD...: the completions of the last word, as bash would
# ask for them with the cursor at the end of the line.
complete_words() {
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMP_LINE="$*"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _tlsshim tlsshim "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    printf '%s\n' "${COMPREPLY[@]}"
}

@test "the bash completion completes options, policy files, levels and services" {
    source "$SRCDIR/completion/tlsshim"
    run complete -p tlsshim
    assert_output "complete -F _tlsshim tlsshim"

    run complete_words tlsshim --ch
    assert_output -- --check
    run complete_words tlsshim --unit
    assert_output -- --unit-dropin
    run complete_words tlsshim --check -
    assert_line -- -f
    assert_line -- -r
    run complete_words tlsshim -d ''
    assert_output "$(printf '0\n1\n2\n3')"
    run complete_words tlsshim -o sys
    assert_output syslog

    mkdir "$T/policies"
    touch "$T/policies/lab.conf" "$T/policies/lan.conf" "$T/policies/web.conf"
    assert_equal "$(complete_words tlsshim -f "$T/policies/la" | sort)" \
        "$(printf '%s\n' "$T/policies/lab.conf" "$T/policies/lan.conf")"
    run complete_words tlsshim --check -f "$T/policies/w"
    assert_output "$T/policies/web.conf"

    plain_unit fake-daemon.service
    plain_unit fake-other.service
    run complete_words tlsshim --unit-dropin fake-d
    assert_output fake-daemon.service

    # the first word that is not an option is COMMAND
    run complete_words tlsshim -f x bas
    assert_line bash
    refute_line -- --check
}

@test "with bash-completion loaded, COMMAND's own arguments are completed" {
    [ -f /usr/share/bash-completion/bash_completion ] ||
        skip "bash-completion is not installed"
    source /usr/share/bash-completion/bash_completion
    source "$SRCDIR/completion/tlsshim"
    mkdir "$T/policies"
    touch "$T/policies/lab.conf"
    run complete_words tlsshim -f "$T/policies/l"
    assert_output "$T/policies/lab.conf"
    run complete_words tlsshim -f x -- ls --colo
    assert_line --partial -- --color
}

# --- containers ---------------------------------------------------------------

# copy_libs ROOT FILE...: the shared objects FILE needs, at their paths
# under ROOT.
copy_libs() {
    local root=$1 f
    shift
    for f in $(ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }
                              $1 ~ /^\// && $1 !~ /:$/ { print $1 }' |
        sort -u); do
        mkdir -p "$root$(dirname "$f")"
        cp -L "$f" "$root$f"
    done
}

@test "an unchanged program in a chroot gets verified TLS from a mounted library and policy" {
    command -v unshare >/dev/null || skip "unshare not found"
    local ns=(unshare -m --propagation private)
    if ! "${ns[@]}" true 2>/dev/null; then
        ns=(unshare -r -m --propagation private)
        "${ns[@]}" true 2>/dev/null || skip "no mount namespaces here"
    fi
    local port root=$T/root msg=$T/msg.bin
    port=$(free_port)
    head -c 100000 /dev/urandom > "$msg"
    tls_server srv "$port" --cert "$PKI/good.chain.pem" --key "$PKI/good.key" \
        --mode echo --record "$T/rec.bin" --info "$T/info.json"

    # The "image": a program that knows nothing of TLS, its libraries and
    # what name resolution needs; no tlsshim in it.
    mkdir -p "$root/etc/tlsshim" "$root/opt/tlsshim" "$root/usr/bin"
    cp "$PROGS/blockclient" "$root/usr/bin/plainclient"
    cp "$(command -v env)" "$root/usr/bin/env"
    copy_libs "$root" "$PROGS/blockclient" "$(command -v env)"
    echo "127.0.0.1 localhost" > "$root/etc/hosts"
    echo "hosts: files" > "$root/etc/nsswitch.conf"
    # libtlsshim.so's own libraries (OpenSSL, libpsl) must be in the
    # image: the library is mounted, its dependencies are not
    copy_libs "$root" "$SHIMLIB"
    # a sanitizer build's runtime goes first (tests/lib/common.bash), with
    # its options, which env -i would drop (leak checking off, as
    # .ci/sanitize runs it, and the reports directory, log_path, at its own
    # path in the image), and /proc: the runtime reads its options from
    # /proc/self/environ before the program starts
    local san_env=() san_dir=
    if [[ -n $SHIM_RUNTIME ]]; then
        mkdir -p "$root$(dirname "$SHIM_RUNTIME")"
        cp -L "$SHIM_RUNTIME" "$root$SHIM_RUNTIME"
        san_env=("ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")
        [[ -z ${UBSAN_OPTIONS:-} ]] || san_env+=("UBSAN_OPTIONS=$UBSAN_OPTIONS")
        san_dir=$(printf '%s\n' "${ASAN_OPTIONS:-}" | tr ':' '\n' |
            sed -n 's/^log_path=//p' | tail -n 1)
        san_dir=${san_dir%/*}
        [[ -z $san_dir ]] || mkdir -p "$root$san_dir"
        mkdir -p "$root/proc"
    fi
    # mount points for what the host lends the container
    : > "$root/opt/tlsshim/libtlsshim.so"
    : > "$root/etc/tlsshim/app.conf"
    : > "$root/etc/tlsshim/ca.pem"

    cat > "$T/app.conf" <<EOF
[app]
connect = localhost:$port
ca_file = /etc/tlsshim/ca.pem
EOF
    chmod 644 "$T/app.conf"
    run "${ns[@]}" sh -c '
        root=$1 port=$5 in=$6 out=$7 runtime=$8 san_dir=$9
        mount --bind -o ro "$2" "$root/opt/tlsshim/libtlsshim.so" &&
        mount --bind -o ro "$3" "$root/etc/tlsshim/app.conf" &&
        mount --bind -o ro "$4" "$root/etc/tlsshim/ca.pem" &&
        { [ -z "$runtime" ] || mount -t proc proc "$root/proc"; } &&
        { [ -z "$san_dir" ] || mount --bind "$san_dir" "$root$san_dir"; } &&
        shift 9 &&
        exec chroot "$root" /usr/bin/env -i "$@" \
            LD_PRELOAD=${runtime:+$runtime:}/opt/tlsshim/libtlsshim.so \
            TLSSHIM_CONF=/etc/tlsshim/app.conf TLSSHIM_DEBUG=1 \
            /usr/bin/plainclient localhost "$port" <"$in" >"$out"' \
        sh "$root" "$SHIMLIB" "$T/app.conf" "$PKI/ca.pem" "$port" "$msg" \
        "$T/out.bin" "$SHIM_RUNTIME" "$san_dir" "${san_env[@]}"
    assert_success
    assert_output --partial "info: connect localhost:$port (127.0.0.1) rule=app tls=TLSv1.3"
    assert_output --partial "verify=ok"
    assert_equal "$(sha_of "$T/out.bin")" "$(sha_of "$msg")"
    assert_equal "$(sha_of "$T/rec.bin")" "$(sha_of "$msg")"
    # the mounts went with the namespace: the image still has no library
    [ ! -s "$root/opt/tlsshim/libtlsshim.so" ]
}

# --- the Debian package ------------------------------------------------------

@test "dpkg-buildpackage builds the package from the tarball and lintian finds nothing (TLSSHIM_TEST_DEB=1)" {
    [ "$TEST_DEB" = 1 ] || skip "set TLSSHIM_TEST_DEB=1 to build the Debian package"
    command -v dpkg-buildpackage >/dev/null || skip "dpkg-buildpackage not found"
    command -v lintian >/dev/null || skip "lintian not found"
    unset MAKEFLAGS MFLAGS MAKELEVEL
    local version tarball
    version=$(make_var VERSION)
    run make -C "$BUILDDIR" dist-gzip
    assert_success
    tarball=$T/tlsshim-$version.tar.gz
    mv "$BUILDDIR/tlsshim-$version.tar.gz" "$tarball"
    mkdir "$T/deb"
    tar -C "$T/deb" -xzf "$tarball"
    cp "$tarball" "$T/deb/tlsshim_$version.orig.tar.gz"
    run bash -c "cd '$T/deb/tlsshim-$version' && dpkg-buildpackage -us -uc -b 2>&1"
    assert_success
    run bash -c "lintian --fail-on error,warning $T/deb/tlsshim_*.changes 2>&1"
    assert_success
    run dpkg-deb -c "$T"/deb/tlsshim_*.deb
    assert_output --partial "./usr/bin/tlsshim"
    assert_output --regexp "\./usr/lib/[a-z0-9_-]+/tlsshim/libtlsshim\.so"
    assert_output --partial "./etc/tlsshim.conf"
    assert_output --partial "./usr/share/bash-completion/completions/tlsshim"
    assert_output --partial "./usr/share/doc/tlsshim/examples/redis-server.conf"
    run dpkg-deb -I "$T"/deb/tlsshim_*.deb conffiles
    assert_output "/etc/tlsshim.conf"
}
