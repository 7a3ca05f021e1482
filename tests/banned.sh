#!/bin/sh
# The calls STYLE.md says tlsshim never uses, searched for as calls in the
# sources of the library, the module and the command (src/, shim/; not
# tests/).  Comments and string literals are skipped.  A line that must
# use one anyway (the hook that interposes libc's system(), say) carries a
# marker comment with the reason:
#
#     system(const char *cmd)   /* banned-ok: the hook of system(3) */
#
# Prints FILE:LINE: CALL for each use and fails when there is any.
# make check runs it; by hand: sh tests/banned.sh [SRCDIR].
set -u

srcdir=${1:-${TLSSHIM_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}}
cd "$srcdir" || exit 99
[ -d src ] && [ -d shim ] || {
    echo "banned: no src/ and shim/ in $srcdir" >&2
    exit 99
}

# strcpy/strcat/sprintf/vsprintf/gets: unbounded writes; system: a shell;
# atoi and friends: no error checking (util_parse_int and strtol instead).
banned='strcpy|strcat|stpcpy|sprintf|vsprintf|gets|system|atoi|atol|atoll|tmpnam|tempnam|mktemp'

files=$(find src shim -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)
[ -n "$files" ] || {
    echo "banned: no sources found under $srcdir" >&2
    exit 99
}

# shellcheck disable=SC2086 # file names have no spaces
LC_ALL=C awk -v banned="$banned" '
FNR == 1 { incomment = 0 }
{
    raw = $0
    line = $0
    out = ""
    # Drop comments (also those spanning lines), string and character
    # literals; what is left is code.
    while (line != "") {
        if (incomment) {
            i = index(line, "*/")
            if (i == 0) { line = ""; break }
            line = substr(line, i + 2)
            incomment = 0
            continue
        }
        c = substr(line, 1, 1)
        two = substr(line, 1, 2)
        if (two == "/*") { incomment = 1; line = substr(line, 3); out = out " "; continue }
        if (two == "//") { line = ""; break }
        if (c == "\"" || c == "\047") {
            q = c
            j = 2
            while (j <= length(line)) {
                d = substr(line, j, 1)
                if (d == "\\") { j += 2; continue }
                if (d == q) break
                j++
            }
            line = substr(line, j + 1)
            out = out " \"\" "
            continue
        }
        out = out c
        line = substr(line, 2)
    }
    # A call: the name as a whole word, not a member (x.system, p->gets),
    # followed by "(".
    rest = " " out
    re = "(^|[^A-Za-z0-9_.>])(" banned ")[ \t]*\\("
    while (match(rest, re)) {
        hit = substr(rest, RSTART, RLENGTH)
        sub(/^[^A-Za-z_]/, "", hit)
        sub(/[ \t]*\($/, "", hit)
        if (raw ~ /banned-ok: *[^ *]/) {
            allowed++
        } else {
            printf "%s:%d: %s() is banned (STYLE.md)\n", FILENAME, FNR, hit
            found++
        }
        rest = substr(rest, RSTART + RLENGTH)
    }
}
END {
    if (found) {
        printf "banned: %d use(s) of banned calls\n", found
        exit 1
    }
    printf "banned: no banned calls (%d allowed by a banned-ok marker)\n", allowed + 0
}' $files
