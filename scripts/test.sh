#!/usr/bin/env bash
# The whole test suite: build hakmem and run every test with ctest, then the
# minimal build (statistics compiled out: the API tests), the debug build
# (internal invariants checked: the whole suite again), then the sanitizer
# builds (UBSan over the whole suite, TSan over the threaded tests through
# the hak_* API).
#   scripts/test.sh [--no-sanitizers]
# Build folders: build-test, build-minimal, build-debug, build-ubsan,
# build-tsan (under the repository).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sanitizers=1
[ "${1:-}" = "--no-sanitizers" ] && sanitizers=0
. "$root/scripts/deps.sh"
hak_need_packages "${HAK_BUILD_PACKAGES[@]}" perl git coreutils valgrind

jobs=$(nproc)
run_suite() { # DIR CMAKE_ARGS...
  local dir=$1; shift
  cmake -S "$root" -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
  (cd "$dir" && ctest --output-on-failure -j"$jobs")
}

echo "== release build: the whole suite"
run_suite "$root/build-test" -DCMAKE_BUILD_TYPE=Release
echo "== minimal build (-DHAKMEM_BENCH_MINIMAL=ON): the API tests"
cmake -S "$root" -B "$root/build-minimal" -DCMAKE_BUILD_TYPE=Release -DHAKMEM_BENCH_MINIMAL=ON \
  -DHAKMEM_BUILD_BENCH=OFF >/dev/null
cmake --build "$root/build-minimal" -j"$jobs" >/dev/null
(cd "$root/build-minimal" && ctest --output-on-failure -j"$jobs" -R '^api_')
# Every test, the bench-labelled ones included (they take seconds here).
echo "== debug build (-DHAKMEM_DEBUG=ON): the whole suite"
run_suite "$root/build-debug" -DCMAKE_BUILD_TYPE=Release -DHAKMEM_DEBUG=ON
if [ $sanitizers = 1 ]; then
  echo "== UBSan build: the whole suite"
  run_suite "$root/build-ubsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHAKMEM_SANITIZE=undefined
  echo "== TSan build: threaded tests through the hak_* API"
  run_suite "$root/build-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHAKMEM_SANITIZE=thread
fi
