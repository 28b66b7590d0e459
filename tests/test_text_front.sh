#!/bin/bash
# text_front: the code that nearly every process runs (marked hak_front in
# src/) lies in the library's first 64 KiB, so that the kernel's
# fault-around maps one window of our text, not all of it (internal.h).
# Nor does any process run code at the end of our text: the library has no
# DT_FINI (_fini) and no pthread_atfork stub (CMakeLists.txt, init.c).
# usage: test_text_front.sh NM LIBRARY SRCDIR READELF [RUN]
# (RUN 0, for the debug build: neither the run-time check nor the 64 KiB
# bound, which its invariant checks, inside the front functions, exceed;
# the release build holds both.)
set -u
nm=$1 lib=$2 src=$3 readelf=$4 run=${5:-1}
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
  if [ $end -gt $limit ] && [ "$run" = 1 ]; then
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
[ $bad = 0 ] && printf 'text_front: %d functions, the last ends at %#x (%s %#x)\n' $n $last \
  "$([ $last -le $limit ] && echo '<=' || echo 'debug build, not bounded by')" $limit
# And at run time: a process that mallocs a little (sleep) has one 64 KiB
# window of our text mapped (the kernel's fault-around), not two: one
# function outside hak_front, called at start-up, mapped a second one into
# every process (hak_os_note_main_thread: 112 KiB of text resident, 48 KiB
# of RSS more than needed).  The file's cached pages are dropped first: a
# file just written sits in the page cache in large folios, which the
# kernel maps whole whatever the layout.
[ "$run" = 1 ] || exit $bad
real=$(realpath "$lib")
dd if="$real" iflag=nocache count=0 status=none
LD_PRELOAD=$real sleep 30 &
pid=$!
# Measured once it sleeps (its start-up done): blocked in nanosleep (35)
# or clock_nanosleep (230); where /proc/PID/syscall cannot be read, after
# a second.
sc=
for _ in $(seq 1 500); do
  if ! read -r sc _ </proc/$pid/syscall 2>/dev/null; then
    sc=unreadable
    sleep 1
    break
  fi
  [ "$sc" = 35 ] || [ "$sc" = 230 ] && break
  sleep 0.01
done
rss=$(awk -v lib="$real" '/^[0-9a-f]+-[0-9a-f]+ / {m = ($6 == lib && $2 ~ /x/)} m && /^Rss:/ {s += $2; f = 1}
  END {if (f) print s}' /proc/$pid/smaps 2>/dev/null)
kill $pid
wait $pid 2>/dev/null
if [ -z "$rss" ]; then
  echo "text_front: no executable mapping of $real in the preloaded process"
  bad=1
elif [ "$rss" -gt 64 ]; then
  echo "text_front: $rss KiB of our text resident in a process that mallocs a little (one window: 64)"
  bad=1
else
  echo "text_front: $rss KiB of our text resident in a preloaded sleep (its system call: $sc)"
fi
exit $bad
