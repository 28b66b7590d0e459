#!/usr/bin/env bash
# The main job: build hakmem, run a real program (a Python workload and a C
# compile) under it, print what hakmem did, and compare the same run under
# glibc, jemalloc, mimalloc and tcmalloc.
#   scripts/main.sh [BUILD_DIR]      (default: build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
. "$root/scripts/deps.sh"
hak_need_packages "${HAK_BUILD_PACKAGES[@]}" "${HAK_COMPARE_PACKAGES[@]}" time

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
echo "== built $build/libhakmem.so and $build/hakmem"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# PYTHONMALLOC=malloc: Python's objects then come from the allocator under
# test instead of Python's own pools.
export PYTHONMALLOC=malloc
# The interpreter itself, not a launcher such as pyenv's shim (a bash
# script that runs dozens of processes, which would be timed instead).
py=$(python3 -c 'import sys; print(sys.executable)')
prog=("$py" "$root/scripts/workload.py")

echo
echo "== hakmem run --stats -- ${prog[*]}"
"$build/hakmem" run --stats -- "${prog[@]}"

echo
echo "== a C compile under hakmem (gcc and its children all use it)"
"$build/hakmem" run --stats -- gcc -O2 -c "$root/src/large.c" -I"$root/include" -o "$work/large.o"
echo "compiled: $(stat -c %s "$work/large.o") bytes of object code"

echo
echo "== the same Python workload under each allocator (wall seconds, peak RSS; best of 3)"
libdir=/usr/lib/x86_64-linux-gnu
printf '%-10s %10s %12s\n' allocator seconds "peak RSS"
for a in glibc jemalloc mimalloc tcmalloc hakmem; do
  case $a in
    glibc) lib= ;;
    jemalloc) lib=$libdir/libjemalloc.so.2 ;;
    mimalloc) lib=$libdir/libmimalloc.so.2 ;;
    tcmalloc) lib=$libdir/libtcmalloc_minimal.so.4 ;;
    hakmem) lib=$build/libhakmem.so ;;
  esac
  [ -z "$lib" ] || [ -e "$lib" ] || { printf '%-10s %s\n' $a "(not installed)"; continue; }
  best=
  for i in 1 2 3; do
    /usr/bin/time -f '%e %M' -o "$work/t" env LD_PRELOAD="$lib" "${prog[@]}" >/dev/null
    read -r s kb <"$work/t"
    if [ -z "$best" ] || awk -v a="$s" -v b="${best% *}" 'BEGIN{exit !(a<b)}'; then best="$s $kb"; fi
  done
  printf '%-10s %10s %9s MiB\n' $a "${best% *}" $(( ${best#* } / 1024 ))
done
