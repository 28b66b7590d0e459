#!/bin/bash
# learn_pure: the learning layer's objects (src/learn/ and src/fmath.c)
# call nothing but the compiler's mem* helpers and fabs — no allocation, no stdio, no clock,
# nothing of the allocator — so the controller can run them anywhere.
# usage: test_learn_pure.sh NM OBJECT...
set -u
nm=$1; shift
[ $# -gt 0 ] || { echo "learn_pure: no objects given"; exit 1; }
defined=$("$nm" --defined-only "$@" | awk 'NF == 3 {print $3}' | sort -u)
bad=0
for sym in $("$nm" -u "$@" | awk '{print $NF}' | grep -v ':$' | sort -u); do
  grep -qxF "$sym" <<<"$defined" && continue
  case $sym in
    fabs | memset | memcpy | memmove | __stack_chk_fail) ;;
    __ubsan_* | __tsan_* | __asan_* | __sanitizer_* | _GLOBAL_OFFSET_TABLE_) ;;
    *) echo "learn_pure: src/learn calls $sym"; bad=1 ;;
  esac
done
[ $bad = 0 ] && echo "learn_pure: only mem* and fabs called"
exit $bad
