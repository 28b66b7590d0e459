#!/bin/bash
# text_front: the code that nearly every process runs (marked hak_front in
# src/) lies in the library's first 64 KiB, so that the kernel's
# fault-around maps one window of our text, not all of it (internal.h).
# Nor does any process run code at the end of our text: the library has no
# DT_FINI (_fini) and no pthread_atfork stub (CMakeLists.txt, init.c).
# usage: test_text_front.sh NM LIBRARY SRCDIR READELF
set -u
nm=$1 lib=$2 src=$3 readelf=$4
limit=$((64 * 1024))
names=$(grep -rhoE '^(HAK_EXPORT )?hak_front [^(]*\(' "$src" | sed -E 's/.*[ *]([A-Za-z_0-9]+)\($/\1/' | sort -u)
[ -n "$names" ] || { echo "text_front: no hak_front function found in $src"; exit 1; }
syms=$("$nm" -S --defined-only "$lib") || exit 1
bad=0 n=0 last=0
for f in $names; do
  # The function, or the compiler's clones of it (f.constprop.0, f.isra.0).
  line=$(awk -v f="$f" 'NF == 4 && ($4 == f || index($4, f ".") == 1) {print $1, $2; exit}' <<<"$syms")
  [ -n "$line" ] || continue # inlined everywhere, or not in this library
  read -r addr size <<<"$line"
  end=$((16#$addr + 16#$size))
  n=$((n + 1))
  [ $end -gt $last ] && last=$end
  if [ $end -gt $limit ]; then
    echo "text_front: $f ends at $(printf %#x $end), beyond the first 64 KiB"
    bad=1
  fi
done
[ $n -gt 20 ] || { echo "text_front: only $n hak_front functions found in $lib"; exit 1; }
dyn=$("$readelf" -dW "$lib") || exit 1
grep -q '(INIT_ARRAY)' <<<"$dyn" || { echo "text_front: no dynamic section read from $lib"; exit 1; }
if grep -q '(FINI)' <<<"$dyn"; then
  echo "text_front: the library has a DT_FINI: its _fini, at the end of the text, runs at every exit"
  bad=1
fi
if awk '$NF == "pthread_atfork" {f = 1} END {exit !f}' <<<"$syms"; then
  echo "text_front: pthread_atfork's stub is linked in, at the end of the text (init.c calls __register_atfork)"
  bad=1
fi
[ $bad = 0 ] && printf 'text_front: %d functions, the last ends at %#x (< %#x)\n' $n $last $limit
exit $bad
