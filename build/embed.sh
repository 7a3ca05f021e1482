#!/bin/sh
# Turn standard input into a C string named $1 (the embedded default policy).
name=$1
printf '/* Generated from config/tlsshim.conf; do not edit. */\n'
printf 'const char %s[] =\n' "$name"
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/'
printf '    ;\n'
