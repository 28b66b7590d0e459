#!/usr/bin/env bash
# The whole test suite: build hakmem and run every test with ctest, then the
# minimal build (statistics compiled out: the API tests), the debug build
# (internal invariants checked: the whole suite again), then the sanitizer
# builds (UBSan over the whole suite, TSan over the threaded tests through
# the hak_* API), then a bounded libFuzzer run of fuzz_api (clang, ASan).
#   scripts/test.sh [--no-sanitizers] [--no-fuzz]
# --no-sanitizers skips the sanitizer builds and the fuzzing (ASan).
# Build folders: build-test, build-minimal, build-debug, build-ubsan,
# build-tsan, build-fuzz (under the repository).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sanitizers=1
fuzz=1
for arg in "$@"; do
  case $arg in
    --no-sanitizers) sanitizers=0; fuzz=0 ;;
    --no-fuzz) fuzz=0 ;;
    *) echo "usage: scripts/test.sh [--no-sanitizers] [--no-fuzz]" >&2; exit 2 ;;
  esac
done
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
if [ $fuzz = 1 ]; then
  # fuzz_api_short: a fixed number of inputs from tests/fuzz_corpus with a
  # fixed seed (docs/security.md tells how to fuzz for longer).  Only the
  # fuzz target is built: the rest of the suite ran above.
  echo "== fuzz build (clang, libFuzzer): a bounded run"
  hak_need_packages clang libclang-rt-dev
  cmake -S "$root" -B "$root/build-fuzz" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DHAKMEM_BUILD_BENCH=OFF >/dev/null
  cmake --build "$root/build-fuzz" -j"$jobs" --target fuzz_api >/dev/null
  (cd "$root/build-fuzz" && ctest --output-on-failure -R '^fuzz_api_short$' --no-tests=error)
fi
