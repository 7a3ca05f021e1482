#!/usr/bin/env bats
# The tlsshim command (SPEC sections 1, 2 and 9): option parsing, exit
# statuses, the environment given to COMMAND, --check, --explain, --env,
# and the refusal of programs the shim cannot cover.  Every test asserts
# on tlsshim's own output, so a tlsshim that did nothing would fail it.

bats_require_minimum_version 1.5.0

load ../lib/common

setup() {
    common_setup
    # The shim refuses policy files that others can write.
    umask 022
}

teardown() {
    common_teardown
}

# A policy file from standard input.
policy() {
    cat > "$1"
    chmod 644 "$1"
}

# Build a program into $T/NAME that prints PROGRAM-RAN, and PRELOADED when
# LD_PRELOAD names the shim; extra arguments go to gcc.  Skips the test
# when gcc cannot build it (e.g. no libc.a for -static).
build_prog() {
    local name=$1
    shift
    command -v gcc >/dev/null || skip "gcc not found"
    if [ ! -e "$T/ran.c" ]; then
        cat > "$T/ran.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void)
{
    const char *p = getenv("LD_PRELOAD");
    printf("PROGRAM-RAN%s\n",
           p != NULL && strstr(p, "libtlsshim.so") ? " PRELOADED" : "");
    return 0;
}
EOF
    fi
    gcc -o "$T/$name" "$T/ran.c" "$@" 2>"$T/gcc.err" ||
        skip "gcc $* cannot build here: $(head -1 "$T/gcc.err")"
}

x86_64_only() {
    [ "$(uname -m)" = x86_64 ] || skip "the test binary is made for x86_64"
}

# assert_refused FILE REASON: the last run refused FILE for REASON.
assert_refused() {
    assert_equal "$status" 2
    assert_output --partial "tlsshim: $1 cannot be covered: $2"
}

# assert_ran_uncovered FILE REASON: the last run warned, then ran FILE.
assert_ran_uncovered() {
    refute_output --partial "cannot be covered"
    assert_output --partial "tlsshim: warning: running $1 uncovered: $2"
}

@test "an unknown option is a usage error with exit status 2" {
    run "$TLSSHIM" --no-such-option true
    assert_equal "$status" 2
    assert_output --partial "tlsshim: unknown option --no-such-option"
}

@test "a debug level outside 0-3 is a usage error" {
    run "$TLSSHIM" -d 4 true
    assert_equal "$status" 2
    assert_output --partial "tlsshim: -d LEVEL must be 0, 1, 2 or 3"
}

@test "a missing COMMAND is a usage error" {
    run "$TLSSHIM" -d 1
    assert_equal "$status" 2
    assert_output --partial "tlsshim: no COMMAND given"
}

@test "a policy error is reported as FILE:LINE and nothing is run" {
    policy "$T/bad.conf" <<'EOF'
[global]
default_action = plain
no_such_key = 1
EOF
    run "$TLSSHIM" -f "$T/bad.conf" touch "$T/created"
    assert_equal "$status" 2
    assert_output --partial "tlsshim: $T/bad.conf:3: "
    [ ! -e "$T/created" ]
}

@test "a policy named by TLSSHIM_CONF is validated before running" {
    policy "$T/bad.conf" <<'EOF'
[web]
action = tls
EOF
    TLSSHIM_CONF="$T/bad.conf" run "$TLSSHIM" touch "$T/created"
    assert_equal "$status" 2
    assert_output --partial "tlsshim: $T/bad.conf"
    [ ! -e "$T/created" ]
}

@test "a COMMAND that does not exist exits 127" {
    run -127 "$TLSSHIM" tlsshim-no-such-command-here
    assert_equal "$status" 127
    assert_output --partial \
        "tlsshim: tlsshim-no-such-command-here: command not found"
}

@test "a COMMAND that is not executable exits 126" {
    printf 'echo hi\n' > "$T/noexec"
    chmod 644 "$T/noexec"
    run "$TLSSHIM" "$T/noexec"
    assert_equal "$status" 126
    assert_output --partial "tlsshim: $T/noexec: Permission denied"
}

@test "COMMAND's exit status is passed through" {
    run "$TLSSHIM" sh -c 'exit 7'
    assert_equal "$status" 7
}

@test "COMMAND runs with the shim in LD_PRELOAD" {
    run --separate-stderr "$TLSSHIM" sh -c 'printf "%s\n" "$LD_PRELOAD"'
    assert_success
    assert_output --regexp '^/.*/libtlsshim\.so$'
}

@test "options after COMMAND are COMMAND's, not tlsshim's" {
    run --separate-stderr "$TLSSHIM" sh -c \
        'printf "%s\n" "$*"; printenv TLSSHIM_DEBUG TLSSHIM_CONF' \
        sh -d 1 -f nothing --check
    # Neither -d nor -f reached tlsshim: no TLSSHIM_ variables were set,
    # so printenv fails.
    assert_failure 1
    assert_output -- "-d 1 -f nothing --check"
}

@test "printenv -f under tlsshim is printenv's option" {
    run "$TLSSHIM" printenv -f
    refute_output --partial "tlsshim:"
    assert_output --partial "printenv"
}

@test "an argument after -- is COMMAND even if it looks like an option" {
    run -127 "$TLSSHIM" -d 1 -- --check
    assert_equal "$status" 127
    assert_output --partial "tlsshim: --check: command not found"
}

@test "-- ends tlsshim's options and runs COMMAND" {
    run --separate-stderr "$TLSSHIM" -d 2 -- printenv TLSSHIM_DEBUG
    assert_success
    assert_output "2"
}

@test "LD_PRELOAD gets the shim appended to an existing value" {
    printf 'int tlsshim_test_other;\n' > "$T/other.c"
    gcc -shared -fPIC -o "$T/libother.so" "$T/other.c" || skip "no gcc"
    run --separate-stderr env LD_PRELOAD="$T/libother.so" \
        "$TLSSHIM" printenv LD_PRELOAD
    assert_success
    output=$(strip_runtime "$output")
    [[ "$output" == "$T/libother.so:"*/libtlsshim.so ]]
    [ "${output#"$T/libother.so:"}" -ef "$SHIMLIB" ]
}

@test "the shim is not added to LD_PRELOAD twice" {
    run --separate-stderr "$TLSSHIM" printenv LD_PRELOAD
    assert_success
    local once=$output
    run --separate-stderr env LD_PRELOAD="$once" \
        "$TLSSHIM" printenv LD_PRELOAD
    assert_success
    assert_output "$once"
}

@test "TLSSHIM_CONF is the absolute path of -f" {
    policy "$T/good.conf" <<'EOF'
[web]
connect = :8443
EOF
    cd "$T"
    run --separate-stderr "$TLSSHIM" -f good.conf printenv TLSSHIM_CONF
    assert_success
    [[ "$output" == /*/good.conf ]]
    [ "$output" -ef "$T/good.conf" ]
}

@test "-d and -o are passed on in the environment" {
    run --separate-stderr "$TLSSHIM" -d 3 -o syslog \
        printenv TLSSHIM_DEBUG TLSSHIM_LOG
    assert_success
    assert_line --index 0 "3"
    assert_line --index 1 "syslog"
}

@test "-r passes the report on; a report that cannot be opened stops the run" {
    run --separate-stderr "$TLSSHIM" -r "$T/report.jsonl" -- sh -c 'echo "$TLSSHIM_REPORT"'
    assert_success
    assert_output "$T/report.jsonl"
    [ "$(stat -c %a "$T/report.jsonl")" = 600 ]
    run --separate-stderr "$TLSSHIM" -r "$T/no/such/dir/r.jsonl" touch "$T/ran"
    assert_failure 2
    assert_equal "$stderr" "tlsshim: -r: cannot open $T/no/such/dir/r.jsonl: No such file or directory"
    [ ! -e "$T/ran" ]
}

@test "--check with no policy anywhere prints the embedded default" {
    run --separate-stderr "$TLSSHIM" --check
    assert_success
    assert_output --partial "[implicit-tls]"
    assert_output --partial \
        "connect = :443 :465 :563 :636 :853 :990 :992 :993 :994 :995 :5671"
    assert_output --regexp "action = auto"
}

@test "--check lists the programs no policy can cover" {
    run --separate-stderr "$TLSSHIM" --check
    assert_success
    assert_output --partial "# Not covered by any policy"
    assert_output --partial "statically"
    assert_output --partial "uncovered = warn"
}

@test "--check output parses again to the same rules" {
    policy "$T/p.conf" <<'EOF'
[global]
default_action = deny

[defaults]
handshake_timeout = 10

[web]
connect = 127.0.0.1:8443, [::1]:8443
min_version = TLSv1_3
alpn_protocols = h2,http/1.1

[mail]
connect = :993
action = auto
EOF
    run --separate-stderr "$TLSSHIM" --check -f "$T/p.conf"
    assert_success
    printf '%s\n' "$output" > "$T/a.conf"
    chmod 644 "$T/a.conf"
    run --separate-stderr "$TLSSHIM" --check -f "$T/a.conf"
    assert_success
    printf '%s\n' "$output" > "$T/b.conf"
    # Comments (the file name, where a value came from) may differ; the
    # settings may not.
    strip='s/[[:space:]]*#.*$//;/^$/d'
    diff <(sed "$strip" "$T/a.conf") <(sed "$strip" "$T/b.conf")
    grep -q '^\[web\]' "$T/b.conf"
    grep -q '^default_action = deny' "$T/b.conf"
}

@test "--check fails with status 2 on a bad policy" {
    policy "$T/bad.conf" <<'EOF'
[web]
connect = :443
action = maybe
EOF
    run "$TLSSHIM" --check -f "$T/bad.conf"
    assert_equal "$status" 2
    assert_output --partial "tlsshim: $T/bad.conf:3: "
}

@test "--check warns about wildcard names when the catch-all is plain" {
    policy "$T/p.conf" <<'EOF'
[api]
connect = *.example.com:443
EOF
    run --separate-stderr "$TLSSHIM" --check -f "$T/p.conf"
    assert_success
    local want="tlsshim: warning: $T/p.conf:1: rule api: *.example.com"
    [[ "$stderr" == *"$want"* ]]
}

@test "--check does not warn about wildcard names when the catch-all is deny" {
    policy "$T/p.conf" <<'EOF'
[global]
default_action = deny

[api]
connect = *.example.com:443
EOF
    run --separate-stderr "$TLSSHIM" --check -f "$T/p.conf"
    assert_success
    [[ "$stderr" != *"warning"* ]]
}

@test "--check -r reads the report: nothing to say without plaintext, an error without a report" {
    printf '{"id": "1", "event": "close", "role": "client", "rule": null, "action": "auto", "peer": "127.0.0.1:443", "host": null, "outcome": "passthrough"}\n' >"$T/report.jsonl"
    run --separate-stderr "$TLSSHIM" --check -r "$T/report.jsonl"
    assert_success
    assert_equal "$stderr" ""
    run --separate-stderr "$TLSSHIM" --check -r "$T/missing.jsonl"
    assert_equal "$status" 2
    [[ "$stderr" == *"tlsshim: cannot open the report $T/missing.jsonl"* ]]
}

@test "--explain names the rule that matches a destination" {
    policy "$T/p.conf" <<'EOF'
[global]
default_action = plain

[lab]
connect = 127.0.0.1:8443
verify_mode = none
EOF
    run "$TLSSHIM" --explain -f "$T/p.conf" 127.0.0.1:8443
    assert_success
    assert_line --index 0 "connect 127.0.0.1:8443"
    assert_line --index 1 --partial "rule lab ($T/p.conf:4)"
    assert_output --regexp "verify_mode = none"
}

@test "--explain says when no rule matches" {
    policy "$T/p.conf" <<'EOF'
[lab]
connect = 127.0.0.1:8443
EOF
    run "$TLSSHIM" --explain -f "$T/p.conf" 127.0.0.1:9
    assert_success
    assert_output --partial "no rule matches: default_action = plain"
}

@test "--explain reports the deny catch-all" {
    policy "$T/p.conf" <<'EOF'
[global]
default_action = deny

[lab]
connect = 127.0.0.1:8443
EOF
    run "$TLSSHIM" --explain -f "$T/p.conf" 127.0.0.1:9
    assert_success
    assert_output --partial "no rule matches: default_action = deny"
}

@test "--explain takes an IPv6 address in brackets" {
    run "$TLSSHIM" --explain '[::1]:443'
    assert_success
    assert_line --index 0 "connect [::1]:443"
    assert_line --index 1 --partial "rule implicit-tls"
}

@test "--explain resolves a name and matches it as the program's lookup" {
    getent hosts localhost >/dev/null || skip "localhost does not resolve"
    policy "$T/p.conf" <<'EOF'
[named]
connect = localhost:9443
EOF
    run "$TLSSHIM" --explain -f "$T/p.conf" localhost:9443
    assert_success
    assert_line --index 0 --partial "(localhost)"
    assert_line --index 1 --partial \
        "rule named ($T/p.conf:1) matches the name localhost"
}

@test "--explain --listen matches listen rules only" {
    run "$TLSSHIM" --explain --listen 127.0.0.1:443
    assert_success
    assert_line --index 0 "listen 127.0.0.1:443"
    assert_output --partial "no rule matches: default_listen_action = plain"
}

@test "--explain refuses a destination that is not HOST:PORT" {
    run "$TLSSHIM" --explain 127.0.0.1
    assert_equal "$status" 2
    assert_output --partial "tlsshim: '127.0.0.1' is not HOST:PORT"
}

@test "--env prints export lines that sh evaluates to the same environment" {
    policy "$T/p.conf" <<'EOF'
[lab]
connect = 127.0.0.1:8443
EOF
    run "$TLSSHIM" --env -f "$T/p.conf" -d 2 -o "$T/it's a log"
    assert_success
    printf '%s\n' "$output" > "$T/env.sh"
    run --separate-stderr sh -c '. "$1"; printf "%s\n" "$TLSSHIM_CONF" \
        "$TLSSHIM_DEBUG" "$TLSSHIM_LOG" "$LD_PRELOAD"' sh "$T/env.sh"
    assert_success
    assert_line --index 0 "$T/p.conf"
    assert_line --index 1 "2"
    assert_line --index 2 "$T/it's a log"
    [ "$(strip_runtime "${lines[3]}")" -ef "$SHIMLIB" ]
}

@test "--version names tlsshim and OpenSSL" {
    run "$TLSSHIM" --version
    assert_success
    assert_line --index 0 --regexp '^tlsshim [0-9]+\.[0-9]+'
    assert_line --index 1 --regexp '^OpenSSL 3\.'
}

@test "--help lists every option" {
    run "$TLSSHIM" --help
    assert_success
    for opt in -f -d -o -r --allow-uncovered --check --explain --listen \
        --env --learn --probe --version --help; do
        assert_output --regexp "(^|[[:space:]])$opt[[:space:]]"
    done
}

@test "two modes cannot be combined" {
    run "$TLSSHIM" --check --env
    assert_equal "$status" 2
    assert_output --partial "tlsshim: --check and --env cannot be combined"
}

@test "a dynamically linked glibc program runs" {
    build_prog dyn
    run --separate-stderr "$TLSSHIM" "$T/dyn"
    assert_success
    assert_output "PROGRAM-RAN PRELOADED"
}

@test "a statically linked program is refused" {
    build_prog static -static
    run "$TLSSHIM" "$T/static"
    assert_refused "$T/static" \
        "statically linked (use --allow-uncovered to run it anyway)"
}

@test "a statically linked program runs with --allow-uncovered" {
    build_prog static -static
    run "$TLSSHIM" --allow-uncovered "$T/static"
    assert_success
    assert_line "PROGRAM-RAN PRELOADED"
    assert_ran_uncovered "$T/static" "statically linked"
}

# A program with the build ID note the Go linker writes (owner "Go", type
# 4) in a .note.go.buildid section, as Go binaries have.
build_fake_go() {
    command -v gcc >/dev/null || skip "gcc not found"
    build_prog ran-placeholder
    cat > "$T/go.c" <<'EOF'
__attribute__((section(".note.go.buildid"), used, aligned(4)))
static const char go_note[] = "\4\0\0\0\10\0\0\0\4\0\0\0Go\0\0fakebuil";
EOF
    gcc -o "$T/gobin" "$T/ran.c" "$T/go.c"
}

@test "a Go binary is refused" {
    build_fake_go
    run "$TLSSHIM" "$T/gobin"
    assert_refused "$T/gobin" "Go binary: makes raw system calls"
    refute_output --partial "PROGRAM-RAN"
}

@test "a Go binary runs with --allow-uncovered" {
    build_fake_go
    run "$TLSSHIM" --allow-uncovered "$T/gobin"
    assert_success
    assert_line "PROGRAM-RAN PRELOADED"
    assert_ran_uncovered "$T/gobin" "Go binary: makes raw system calls"
}

@test "a set-user-ID program is refused" {
    build_prog suid
    chmod u+s "$T/suid"
    run "$TLSSHIM" "$T/suid"
    assert_refused "$T/suid" "set-id: the loader ignores LD_PRELOAD"
    refute_output --partial "PROGRAM-RAN"
}

@test "a set-user-ID program runs with --allow-uncovered" {
    build_prog suid
    chmod u+s "$T/suid"
    run "$TLSSHIM" --allow-uncovered "$T/suid"
    assert_success
    assert_line "PROGRAM-RAN PRELOADED"
}

@test "a program with file capabilities is refused" {
    command -v setcap >/dev/null || skip "setcap (libcap2-bin) not installed"
    build_prog capprog
    setcap cap_net_bind_service+ep "$T/capprog" 2>/dev/null ||
        skip "cannot set file capabilities here"
    run "$TLSSHIM" "$T/capprog"
    assert_refused "$T/capprog" \
        "file capabilities: the loader ignores LD_PRELOAD"
}

@test "a program with file capabilities runs with --allow-uncovered" {
    command -v setcap >/dev/null || skip "setcap (libcap2-bin) not installed"
    build_prog capprog
    setcap cap_net_bind_service+ep "$T/capprog" 2>/dev/null ||
        skip "cannot set file capabilities here"
    run "$TLSSHIM" --allow-uncovered "$T/capprog"
    assert_success
    assert_line "PROGRAM-RAN PRELOADED"
}

@test "a program for another C library's loader is refused" {
    x86_64_only
    build_prog musl -Wl,--dynamic-linker=/lib/ld-musl-x86_64.so.1
    run "$TLSSHIM" "$T/musl"
    assert_refused "$T/musl" "not a glibc program"
}

@test "a program for another C library's loader is run with --allow-uncovered" {
    x86_64_only
    build_prog musl -Wl,--dynamic-linker=/lib/ld-musl-x86_64.so.1
    # Without a musl loader the exec itself fails: "not found".
    local want=127
    [ ! -e /lib/ld-musl-x86_64.so.1 ] || want=0
    run -"$want" "$TLSSHIM" --allow-uncovered "$T/musl"
    assert_ran_uncovered "$T/musl" "not a glibc program"
}

# A 32-bit i386 ELF header: class 1, little-endian, ET_EXEC, EM_386.
make_elf32() {
    {
        printf '\177ELF\001\001\001'
        head -c 9 /dev/zero
        printf '\002\000\003\000\001\000\000\000'
        head -c 32 /dev/zero
    } > "$1"
    chmod 755 "$1"
}

@test "a 32-bit program is refused as a foreign architecture" {
    x86_64_only
    make_elf32 "$T/elf32"
    run "$TLSSHIM" "$T/elf32"
    assert_refused "$T/elf32" "foreign architecture: 32-bit i386"
}

@test "a 32-bit program is tried with --allow-uncovered" {
    x86_64_only
    make_elf32 "$T/elf32"
    run "$TLSSHIM" --allow-uncovered "$T/elf32"
    assert_ran_uncovered "$T/elf32" "foreign architecture"
}

@test "a script whose interpreter is statically linked is refused" {
    build_prog static -static
    printf '#!%s\necho SCRIPT-RAN\n' "$T/static" > "$T/script"
    chmod 755 "$T/script"
    run "$TLSSHIM" "$T/script"
    assert_refused "$T/script" "interpreter $T/static: statically linked"
}

@test "a script run through env and a static interpreter is refused" {
    build_prog static-interp -static
    printf '#!/usr/bin/env static-interp\n' > "$T/script"
    chmod 755 "$T/script"
    PATH="$T:$PATH" run "$TLSSHIM" "$T/script"
    assert_equal "$status" 2
    assert_output --partial \
        "interpreter $T/static-interp (through /usr/bin/env): statically linked"
}

@test "a #!/usr/bin/env python3 script is covered and runs" {
    command -v python3 >/dev/null || skip "python3 not found"
    cat > "$T/script.py" <<'EOF'
#!/usr/bin/env python3
import os
print("PY-RAN", os.environ["LD_PRELOAD"].endswith("libtlsshim.so"))
EOF
    chmod 755 "$T/script.py"
    run --separate-stderr "$TLSSHIM" "$T/script.py"
    assert_success
    assert_output "PY-RAN True"
}

@test "python3 -c is covered and runs" {
    command -v python3 >/dev/null || skip "python3 not found"
    run --separate-stderr "$TLSSHIM" python3 -c 'import os
print(6 * 7, os.environ["LD_PRELOAD"].endswith("libtlsshim.so"))'
    assert_success
    assert_output "42 True"
}

@test "the library is taken from the build tree beside the executable" {
    head -c 4 "$TLSSHIM" | grep -q ELF || skip "tlsshim is a libtool wrapper"
    mkdir -p "$T/bin/.libs"
    cp "$TLSSHIM" "$T/bin/tlsshim"
    cp "$SHIMLIB" "$T/bin/.libs/libtlsshim.so"
    run --separate-stderr "$T/bin/tlsshim" printenv LD_PRELOAD
    assert_success
    [ "$(strip_runtime "$output")" -ef "$T/bin/.libs/libtlsshim.so" ]
}

@test "the installed tlsshim.conf gives the same effective rules as the embedded default" {
    cp "$SRCDIR/config/tlsshim.conf" "$T/installed.conf"
    chmod 644 "$T/installed.conf"
    run --separate-stderr "$TLSSHIM" --check -f "$T/installed.conf"
    assert_success
    from_file=$(printf '%s\n' "$output" | grep -v '^#' | sed 's/ *#.*//')
    run --separate-stderr env -u TLSSHIM_CONF "$TLSSHIM" --check
    assert_success
    embedded=$(printf '%s\n' "$output" | grep -v '^#' | sed 's/ *#.*//')
    assert_equal "$from_file" "$embedded"
    [[ $embedded == *"[implicit-tls]"* ]]
}

@test "--explain shows where each setting comes from: rule, [defaults], built-in" {
    policy "$T/p.conf" <<'EOF2'
[defaults]
handshake_timeout = 7
ca_file = /etc/ssl/certs/ca-certificates.crt

[web]
connect = 127.0.0.1:8443
handshake_timeout = 3
EOF2
    run "$TLSSHIM" --explain -f "$T/p.conf" 127.0.0.1:8443
    assert_success
    assert_output --regexp "handshake_timeout = 3 +\(rule web line 7\)"
    assert_output --regexp "ca_file = /etc/ssl/certs/ca-certificates.crt +\(\[defaults\] line 3\)"
    assert_output --regexp "session_cache_size = 64 +\(built-in default\)"
}
