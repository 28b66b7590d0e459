#!/usr/bin/env bash
# Writes the option table (`hakmem-options --markdown`, generated from
# src/options.def) into README.md and docs/options.md, between the lines
# <!-- options:begin --> and <!-- options:end -->, so that neither can drift
# from the table the library reads.
#   tools/gen_options_docs.sh BUILD_DIR           rewrite both files
#   tools/gen_options_docs.sh --check BUILD_DIR   only compare; exit 1 and show
#                                                 the difference if they drift
# (The ctest `options_docs` runs the --check form.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
[ $# -eq 1 ] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
build=$1
tool="$build/hakmem-options"
[ -x "$tool" ] || { echo "gen_options_docs: $tool not found (build first)" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-options-docs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$tool" --markdown >"$tmp/table"
[ -s "$tmp/table" ] || { echo "gen_options_docs: $tool printed nothing" >&2; exit 1; }

status=0
# `hakmem options --markdown` must print the same table.
if [ -x "$build/hakmem" ]; then
  if ! "$build/hakmem" options --markdown >"$tmp/verb" 2>&1 || ! cmp -s "$tmp/table" "$tmp/verb"; then
    echo "gen_options_docs: '$build/hakmem options --markdown' differs from hakmem-options --markdown:" >&2
    diff -u "$tmp/table" "$tmp/verb" >&2 || true
    status=1
  fi
fi

# Prints FILE with the text between the markers replaced by the table.
splice() {
  awk -v table="$tmp/table" '
    /^<!-- options:begin -->$/ { print; while ((getline line < table) > 0) print line; skip = 1; begins++; next }
    /^<!-- options:end -->$/ { skip = 0; ends++ }
    !skip { print }
    END { if (begins != 1 || ends != 1) exit 3 }' "$1"
}

for rel in README.md docs/options.md; do
  f="$root/$rel"
  if [ ! -f "$f" ]; then
    echo "gen_options_docs: $rel is missing" >&2
    status=1
    continue
  fi
  if ! splice "$f" >"$tmp/new"; then
    echo "gen_options_docs: $rel needs exactly one '<!-- options:begin -->' and one '<!-- options:end -->' line" >&2
    status=1
    continue
  fi
  if cmp -s "$f" "$tmp/new"; then
    continue
  elif [ $check = 1 ]; then
    echo "gen_options_docs: the option table in $rel is out of date; run tools/gen_options_docs.sh $build" >&2
    diff -u "$f" "$tmp/new" >&2 || true
    status=1
  else
    cat "$tmp/new" >"$f" # keeps the file's mode and links
    echo "gen_options_docs: updated $rel"
  fi
done
exit $status
