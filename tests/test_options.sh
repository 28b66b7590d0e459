#!/usr/bin/env bash
# test_options.sh — HAKMEM_* options: parsing of every kind with good and bad
# values, the reports (exactly once, exact text) and the fallback to the
# default, unknown variables (the closest-name suggestion), mode presets and
# explicit overrides.
#
# usage: test_options.sh LIBHAKMEM.so PROGRAM HAKMEM-OPTIONS
#   PROGRAM (test_options_prog) runs under LD_PRELOAD=LIBHAKMEM.so; with
#   HAKMEM_VERBOSE=1 hakmem prints `hakmem: NAME VALUE` for every option,
#   which is how the effective values are read.  HAKMEM-OPTIONS gives the
#   table (names and defaults) to compare the defaults with.
set -u
lib=$(readlink -f "${1:?usage: test_options.sh LIBHAKMEM.so PROGRAM HAKMEM-OPTIONS}")
prog=${2:?}
tool=${3:?}
while read -r var; do unset "$var"; done < <(compgen -e | grep '^HAKMEM_')
unset LD_PRELOAD

work=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-options.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

err=""    # stderr of the last run
what=""   # its settings, for messages
# run VAR=VALUE...: runs the program with these settings; stderr -> $err.
run() {
  what="$*"
  err=$(env "$@" LD_PRELOAD="$lib" "$prog" 2>&1 >/dev/null)
  local rc=$?
  [[ $rc == 0 ]] || fail "[$what] program exited with $rc; stderr:"$'\n'"$err"
}

# The value hakmem reports for NAME (needs HAKMEM_VERBOSE=1); exactly one line.
value_of() {
  awk -v n="$1" '$1 == "hakmem:" && $2 == n && NF == 3 { print $3 }' <<<"$err"
}
expect_value() { # NAME VALUE
  local got
  got=$(value_of "$1")
  [[ $got == "$2" ]] || fail "[$what] $1 is '${got//$'\n'/ | }', expected '$2'"
}
# MESSAGE must be a whole line of stderr, exactly once.
expect_once() {
  local n
  n=$(grep -cxF -- "$1" <<<"$err")
  [[ $n == 1 ]] || fail "[$what] expected once (seen $n times): $1"$'\n'"stderr was:"$'\n'"$err"
}
# Every stderr line is a configuration line (`hakmem: HAKMEM_X VALUE`) or
# one of the given messages: nothing else was reported.
expect_only() {
  local line ok m
  while IFS= read -r line; do
    [[ -z $line ]] && continue
    [[ $line =~ ^hakmem:\ HAKMEM_[A-Z0-9_]+\ +[^\ ]+$ ]] && continue
    [[ $line =~ ^hakmem:\ policy\  ]] && continue # the effective policy, after the options
    ok=0
    for m in "$@"; do [[ $line == "$m" ]] && ok=1; done
    [[ $ok == 1 ]] || fail "[$what] unexpected on stderr: $line"
  done <<<"$err"
}
# The configuration was printed (once) / not at all.
expect_config() {
  local n
  n=$(grep -c '^hakmem: HAKMEM_MODE ' <<<"$err")
  [[ $n == 1 ]] || fail "[$what] the configuration was printed $n times (expected once)"
}
expect_silent() {
  [[ -z $err ]] || fail "[$what] expected no output on stderr, got:"$'\n'"$err"
}
# A good value: VAR=VALUE takes effect as EFFECTIVE, without a report.
good() { # VAR VALUE EFFECTIVE
  run HAKMEM_VERBOSE=1 "$1=$2"
  expect_config
  expect_value "$1" "$3"
  expect_only
}
# A bad value: reported once with MESSAGE, and EFFECTIVE (the default) used.
bad() { # VAR VALUE EFFECTIVE MESSAGE
  run HAKMEM_VERBOSE=1 "$1=$2"
  expect_config
  expect_once "$4"
  expect_value "$1" "$3"
  expect_only "$4"
}

# ------------------------------------------------------------ the defaults
# Without settings hakmem says nothing; with HAKMEM_VERBOSE=1 it prints every
# option of the table (hakmem-options --markdown) with its default.
run
expect_silent
table=$("$tool" --markdown) || fail "$tool --markdown failed"
run HAKMEM_VERBOSE=1
expect_config
expect_only
n_table=0
while IFS='|' read -r _ name kind def _; do
  name=${name//[\` ]/}
  kind=${kind// /}
  def=${def// /}
  [[ $name == HAKMEM_* ]] || continue
  n_table=$((n_table + 1))
  case $def in
    *K) def=$((${def%K} << 10)) ;;
    *M) def=$((${def%M} << 20)) ;;
    *G) def=$((${def%G} << 30)) ;;
  esac
  [[ $name == HAKMEM_VERBOSE ]] && def=1 # set for this run
  expect_value "$name" "$def"
done <<<"$table"
n_config=$(grep -c '^hakmem: HAKMEM_' <<<"$err")
[[ $n_table -gt 10 && $n_table == "$n_config" ]] ||
  fail "hakmem-options lists $n_table options, HAKMEM_VERBOSE=1 prints $n_config"

# ------------------------------------------------------------------- bool
for v in 0 off no false; do good HAKMEM_THP "$v" 0; done
for v in 0 off no false; do good HAKMEM_REPORT_ERRORS "$v" 0; done
bad HAKMEM_THP maybe 1 "hakmem: HAKMEM_THP=maybe is not a boolean (use 0 or 1); using 1"
bad HAKMEM_THP 2 1 "hakmem: HAKMEM_THP=2 is not a boolean (use 0 or 1); using 1"
bad HAKMEM_REPORT_ERRORS "" 1 "hakmem: HAKMEM_REPORT_ERRORS= is not a boolean (use 0 or 1); using 1"
bad HAKMEM_STATS TRUE 0 "hakmem: HAKMEM_STATS=TRUE is not a boolean (use 0 or 1); using 0"

# ------------------------------------------------------------------- size
good HAKMEM_BIGCACHE 12345 12345
good HAKMEM_BIGCACHE 0 0
good HAKMEM_BIGCACHE 16M $((16 << 20))
good HAKMEM_BIGCACHE 4k 4096
good HAKMEM_BIGCACHE 4KB 4096
good HAKMEM_BIGCACHE 4KiB 4096
good HAKMEM_LARGE_CACHE 1g $((1 << 30))
good HAKMEM_LARGE_CACHE 1024G $((1 << 40))
good HAKMEM_BIG_THRESHOLD 64K 65536
good HAKMEM_BIG_THRESHOLD 1M 1048576
size_msg() { # VAR VALUE LO HI DEFAULT
  echo "hakmem: $1=$2 is not a number in [$3, $4] (K/M/G suffixes allowed); using $5"
}
bad HAKMEM_BIGCACHE lots 134217728 "$(size_msg HAKMEM_BIGCACHE lots 0 1099511627776 134217728)"
bad HAKMEM_BIGCACHE 12Q 134217728 "$(size_msg HAKMEM_BIGCACHE 12Q 0 1099511627776 134217728)"
bad HAKMEM_BIGCACHE 16MM 134217728 "$(size_msg HAKMEM_BIGCACHE 16MM 0 1099511627776 134217728)"
bad HAKMEM_BIGCACHE -1 134217728 "$(size_msg HAKMEM_BIGCACHE -1 0 1099511627776 134217728)"
bad HAKMEM_BIGCACHE 2048G 134217728 "$(size_msg HAKMEM_BIGCACHE 2048G 0 1099511627776 134217728)"
bad HAKMEM_BIGCACHE 99999999999999999999 134217728 \
  "$(size_msg HAKMEM_BIGCACHE 99999999999999999999 0 1099511627776 134217728)"
bad HAKMEM_LARGE_CACHE "" 0 "$(size_msg HAKMEM_LARGE_CACHE "" 0 1099511627776 0)"
# Out of range, above and below.
bad HAKMEM_BIG_THRESHOLD 4M 2097152 "$(size_msg HAKMEM_BIG_THRESHOLD 4M 65536 2097152 2097152)"
bad HAKMEM_BIG_THRESHOLD 32K 2097152 "$(size_msg HAKMEM_BIG_THRESHOLD 32K 65536 2097152 2097152)"

# -------------------------------------------------------------------- int
good HAKMEM_SEGMENT_CACHE 16 16
good HAKMEM_SEGMENT_CACHE 0 0
good HAKMEM_SEGMENT_CACHE 1024 1024
good HAKMEM_PURGE_DELAY_MS 3600000 3600000
int_msg() { # VAR VALUE LO HI DEFAULT
  echo "hakmem: $1=$2 is not a number in [$3, $4]; using $5"
}
bad HAKMEM_SEGMENT_CACHE abc 8 "$(int_msg HAKMEM_SEGMENT_CACHE abc 0 1024 8)"
bad HAKMEM_SEGMENT_CACHE 2000 8 "$(int_msg HAKMEM_SEGMENT_CACHE 2000 0 1024 8)"
bad HAKMEM_SEGMENT_CACHE -1 8 "$(int_msg HAKMEM_SEGMENT_CACHE -1 0 1024 8)"
bad HAKMEM_SEGMENT_CACHE 16K 8 "$(int_msg HAKMEM_SEGMENT_CACHE 16K 0 1024 8)" # no suffixes for ints
bad HAKMEM_SEGMENT_CACHE "8 " 8 "$(int_msg HAKMEM_SEGMENT_CACHE "8 " 0 1024 8)"
bad HAKMEM_PURGE_DELAY_MS 3600001 1000 "$(int_msg HAKMEM_PURGE_DELAY_MS 3600001 0 3600000 1000)"
bad HAKMEM_PROF_SAMPLE 0 64 "$(int_msg HAKMEM_PROF_SAMPLE 0 1 1000000 64)"

# ------------------------------------------------------------------- mode
for m in minimal fast balanced learning research; do good HAKMEM_MODE "$m" "$m"; done
mode_msg() { # VALUE
  echo "hakmem: HAKMEM_MODE=$1 is not a mode (minimal, fast, balanced, learning, research); using balanced"
}
bad HAKMEM_MODE turbo balanced "$(mode_msg turbo)"
bad HAKMEM_MODE FAST balanced "$(mode_msg FAST)"
bad HAKMEM_MODE "" balanced "$(mode_msg "")"
# An unknown mode falls back to balanced: its presets do not apply.
run HAKMEM_MODE=turbo
expect_once "$(mode_msg turbo)"
expect_only "$(mode_msg turbo)"
run HAKMEM_MODE=turbo HAKMEM_VERBOSE=1
expect_value HAKMEM_BIGCACHE 134217728

# ----------------------------------------------------------------- choice
good HAKMEM_ON_ERROR abort abort
good HAKMEM_ON_ERROR report report
bad HAKMEM_ON_ERROR stop report "hakmem: HAKMEM_ON_ERROR=stop is not one of (report, abort); using report"
# Numbers may be written in hex (a fill byte reads better so).
good HAKMEM_FILL 0xA5 165
bad HAKMEM_FILL 0x1FF 0 "$(int_msg HAKMEM_FILL 0x1FF 0 255 0)"

# ------------------------------------------------------------------- path
good HAKMEM_STATS_FILE "$work/stats.txt" "$work/stats.txt"
bad HAKMEM_STATS_FILE "" - "hakmem: HAKMEM_STATS_FILE is empty; ignored"
# The path is used: the exit summary goes to the file, not to stderr.
run HAKMEM_STATS=1 HAKMEM_STATS_FILE="$work/summary.txt"
expect_silent
if [[ -s $work/summary.txt ]] && grep -q '^hakmem: --- ' "$work/summary.txt"; then :; else
  fail "[$what] no summary in the stats file"
fi
# ... once per process: the forked child adds its own, nothing more.
n=$(grep -c '^hakmem: --- ' "$work/summary.txt")
[[ $n == 2 ]] || fail "[$what] $n summaries in the stats file (expected 2: the program and its child)"
# An empty HAKMEM_STATS_FILE: the summary goes to stderr.
run HAKMEM_STATS=1 HAKMEM_STATS_FILE=
expect_once "hakmem: HAKMEM_STATS_FILE is empty; ignored"
n=$(grep -c '^hakmem: --- ' <<<"$err")
[[ $n == 2 ]] || fail "[$what] $n summaries on stderr (expected 2)"

# ------------------------------------------------------- unknown variables
unknown_msg() { echo "hakmem: unknown option $1 ignored; did you mean $2?"; }
run HAKMEM_STAT=1
expect_once "$(unknown_msg HAKMEM_STAT HAKMEM_STATS)"
expect_only "$(unknown_msg HAKMEM_STAT HAKMEM_STATS)"
run HAKMEM_BIGCACH=1M
expect_once "$(unknown_msg HAKMEM_BIGCACH HAKMEM_BIGCACHE)"
expect_only "$(unknown_msg HAKMEM_BIGCACH HAKMEM_BIGCACHE)"
run HAKMEM_VERBSE=1 HAKMEM_TPH=1
expect_once "$(unknown_msg HAKMEM_VERBSE HAKMEM_VERBOSE)"
expect_once "$(unknown_msg HAKMEM_TPH HAKMEM_THP)"
expect_only "$(unknown_msg HAKMEM_VERBSE HAKMEM_VERBOSE)" "$(unknown_msg HAKMEM_TPH HAKMEM_THP)"
# Nothing close: no suggestion.
run HAKMEM_XYZZY_PLUGH=1
n=$(grep -c '^hakmem: unknown option HAKMEM_XYZZY_PLUGH ignored' <<<"$err")
[[ $n == 1 ]] || fail "[$what] unknown variable reported $n times; stderr:"$'\n'"$err"
grep -q 'did you mean' <<<"$err" && fail "[$what] a suggestion for a name nothing is close to: $err"
[[ $(wc -l <<<"$err") == 1 ]] || fail "[$what] more than one line on stderr:"$'\n'"$err"
# Known variables are not reported as unknown, whatever their value; other
# prefixes are not ours.
run HAKMEM_STATS=0 HAKMEM_MODE=balanced HAKMEM_STATS_SIGNAL=0 HAKMEMX=1 XHAKMEM_STATS=1
expect_silent
# A name that starts with another's sets only itself (the environment is
# read in one pass, matched by whole names).
run HAKMEM_VERBOSE=1 HAKMEM_STATS_SIGNAL=12 HAKMEM_PROFILE_SAMPLE=4096
expect_value HAKMEM_STATS 0
expect_value HAKMEM_STATS_SIGNAL 12
expect_value HAKMEM_PROFILE -
expect_value HAKMEM_PROFILE_SAMPLE 4096

# ------------------------------------------------------- several at once
run HAKMEM_VERBOSE=1 HAKMEM_THP=maybe HAKMEM_SEGMENT_CACHE=abc HAKMEM_MODE=turbo HAKMEM_STAT=1 \
  HAKMEM_BIGCACHE=1M
m1="hakmem: HAKMEM_THP=maybe is not a boolean (use 0 or 1); using 1"
m2=$(int_msg HAKMEM_SEGMENT_CACHE abc 0 1024 8)
m3=$(mode_msg turbo)
m4=$(unknown_msg HAKMEM_STAT HAKMEM_STATS)
for m in "$m1" "$m2" "$m3" "$m4"; do expect_once "$m"; done
expect_only "$m1" "$m2" "$m3" "$m4"
expect_config
expect_value HAKMEM_THP 1
expect_value HAKMEM_SEGMENT_CACHE 8
expect_value HAKMEM_MODE balanced
expect_value HAKMEM_BIGCACHE 1048576

# ---------------------------------------------------------------- presets
# balanced (the default), fast and learning: the table's defaults, Big
# blocks on huge pages ...
for m in balanced fast learning; do
  run HAKMEM_MODE=$m HAKMEM_VERBOSE=1
  expect_value HAKMEM_MODE $m
  expect_value HAKMEM_BIGCACHE 134217728
  expect_value HAKMEM_LARGE_CACHE 0
  expect_value HAKMEM_THP 1
done
# ... which an explicit HAKMEM_THP overrides.
run HAKMEM_MODE=fast HAKMEM_THP=0 HAKMEM_VERBOSE=1
expect_value HAKMEM_THP 0
# research: the configuration is printed without HAKMEM_VERBOSE ...
run HAKMEM_MODE=research
expect_config
expect_value HAKMEM_VERBOSE 1
expect_value HAKMEM_MODE research
expect_only
# ... unless HAKMEM_VERBOSE says otherwise.
run HAKMEM_MODE=research HAKMEM_VERBOSE=0
expect_silent
# minimal: no Big, Large or segment cache, no huge pages (memory first) ...
run HAKMEM_MODE=minimal HAKMEM_VERBOSE=1
expect_value HAKMEM_MODE minimal
expect_value HAKMEM_BIGCACHE 0
expect_value HAKMEM_LARGE_CACHE 0
expect_value HAKMEM_SEGMENT_CACHE 0
expect_value HAKMEM_THP 0
expect_only
# ... each of which an explicit setting overrides.
run HAKMEM_MODE=minimal HAKMEM_VERBOSE=1 HAKMEM_BIGCACHE=1M HAKMEM_THP=1
expect_value HAKMEM_BIGCACHE 1048576
expect_value HAKMEM_LARGE_CACHE 0
expect_value HAKMEM_THP 1
run HAKMEM_MODE=minimal HAKMEM_VERBOSE=1 HAKMEM_LARGE_CACHE=2M HAKMEM_BIGCACHE=0
expect_value HAKMEM_BIGCACHE 0
expect_value HAKMEM_LARGE_CACHE 2097152
# The learner's options: a choice, decimals and percentages.
good HAKMEM_LEARN_ALGO elo elo
good HAKMEM_LEARN_ALGO ucb1 ucb1
bad HAKMEM_LEARN_ALGO UCB1 ucb1 "hakmem: HAKMEM_LEARN_ALGO=UCB1 is not one of (ucb1, elo); using ucb1"
good HAKMEM_CANARY_FRAC 0.1 0.1
good HAKMEM_CANARY_FRAC 10% 0.1
good HAKMEM_CANARY_FRAC 0 0
good HAKMEM_W_MAX 1.125 1.125
bad HAKMEM_CANARY_FRAC 0.9 0.05 "hakmem: HAKMEM_CANARY_FRAC=0.9 is not a number in [0, 0.5] (decimals or a percentage); using 0.05"
bad HAKMEM_CANARY_FRAC .5x 0.05 "hakmem: HAKMEM_CANARY_FRAC=.5x is not a number in [0, 0.5] (decimals or a percentage); using 0.05"
bad HAKMEM_W_MAX 0.5 1.25 "hakmem: HAKMEM_W_MAX=0.5 is not a number in [1, 2] (decimals or a percentage); using 1.25"
bad HAKMEM_LEARN_WINDOW_MS 5 50 "$(int_msg HAKMEM_LEARN_WINDOW_MS 5 10 60000 50)"
# Order in the environment does not matter.
run HAKMEM_BIGCACHE=1M HAKMEM_VERBOSE=1 HAKMEM_MODE=minimal
expect_value HAKMEM_BIGCACHE 1048576
expect_value HAKMEM_LARGE_CACHE 0

if [[ $failures -gt 0 ]]; then
  echo "options: FAILED ($failures)"
  exit 1
fi
echo "options: all checks passed"
