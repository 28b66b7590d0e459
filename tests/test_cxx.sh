#!/bin/bash
# cxx: test_cxx (a C++ program) preloaded with the library and with the
# secure one; with the first, a call-site profile too, which must name
# the function whose `new`s it sampled, not operator new (src/cxx.c).
# usage: test_cxx.sh PROG LIBRARY SECURE_LIBRARY [MINIMAL]
# (MINIMAL 1: profiles are compiled out; the program alone is run.)
set -u
prog=$1 lib=$2 secure=$3 minimal=${4:-0}
if [ "$minimal" = 1 ]; then
  LD_PRELOAD="$lib" "$prog" && LD_PRELOAD="$secure" "$prog"
  exit
fi
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
if ! HAKMEM_PROFILE="$dir/prof" LD_PRELOAD="$lib" "$prog" 2>"$dir/err"; then
  echo "cxx: test_cxx failed under $lib"; cat "$dir/err"; exit 1
fi
# The profile's own summary is all that may be on stderr.
if grep -v -e '^hakmem:  *[0-9][0-9]*\. ' -e '^hakmem: wrote ' -e '^hakmem: leaks at exit' \
     -e '^hakmem: profile of ' "$dir/err" | grep -q .; then
  echo "cxx: unexpected output under $lib:"; cat "$dir/err"; exit 1
fi
if ! grep -q 'cxx_site_make' "$dir/prof"; then
  echo "cxx: the profile does not name cxx_site_make"; cat "$dir/prof"; exit 1
fi
if grep -q 'operator new' "$dir/prof"; then
  echo "cxx: the profile names operator new as a call site"; cat "$dir/prof"; exit 1
fi
LD_PRELOAD="$secure" "$prog" || { echo "cxx: test_cxx failed under $secure"; exit 1; }
echo "cxx: ok (the profile names cxx_site_make)"
