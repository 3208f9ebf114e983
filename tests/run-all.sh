#!/usr/bin/env bash
# tests/run-all.sh - set up and run the whole test suite (the README's test command).
#
# Stages, each a ctest run whose summary is added to the total:
#   1. gcc, ASan+UBSan: unit tests, corpus replays, and (as root) the lab tests
#   2. gcc, no sanitizer: the unit tests under valgrind
#   3. clang, libFuzzer: each fuzz target replays its corpus
# Ends with one line "N passed, N failed[, N skipped]" and exits non-zero on any failure.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc)
root=OFF; [ "$(id -u)" -eq 0 ] && root=ON

bash tests/setup.sh --deps || { echo "run-all: installing dependencies failed"; exit 1; }

total_pass=0 total_fail=0 total_skip=0 stage_fail=0

# run_ctest NAME BUILD_DIR CTEST_ARGS... : runs ctest, adds its counts to the totals.
run_ctest() {
  local name=$1 dir=$2; shift 2
  local log="$dir/ctest-$name.log"
  echo "=== $name"
  ctest --test-dir "$dir" --output-on-failure "$@" 2>&1 | tee "$log"
  local line n_total n_fail n_skip
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "run-all: $name: ctest printed no summary (no tests, or it crashed)"
    stage_fail=1
    return
  fi
  n_fail=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
  n_total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
  n_skip=$(grep -c '\*\*\*Skipped' "$log" || true)
  total_fail=$((total_fail + n_fail))
  total_skip=$((total_skip + n_skip))
  total_pass=$((total_pass + n_total - n_fail - n_skip))
}

build() { # build NAME DIR CMAKE_ARGS...
  local name=$1 dir=$2; shift 2
  echo "=== build $name"
  if ! cmake -S "$top" -B "$dir" "$@" >"$dir.configure.log" 2>&1; then
    cat "$dir.configure.log"; echo "run-all: configure $name failed"; stage_fail=1; return 1
  fi
  if ! cmake --build "$dir" -j"$jobs" >"$dir.build.log" 2>&1; then
    tail -n 60 "$dir.build.log"; echo "run-all: build $name failed"; stage_fail=1; return 1
  fi
}
mkdir -p build

# 1. gcc + ASan/UBSan, everything.
if CC=gcc build asan build/asan -DCMAKE_BUILD_TYPE=Debug -DNB_SANITIZE=ON -DNB_LAB_TESTS=$root; then
  [ "$root" = OFF ] && echo "run-all: not root: the lab tests are not registered (they need network namespaces)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest asan build/asan -j"$jobs"
fi

# 2. gcc, plain: unit tests under valgrind (cheap, and catches what ASan does not: uninitialised reads).
if CC=gcc build valgrind build/valgrind -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNB_BENCH=OFF -DNB_VALGRIND=ON; then
  run_ctest valgrind build/valgrind -L unit -j"$jobs"
fi

# 3. clang + libFuzzer: replay each corpus through the real fuzz binaries.
if CC=clang build fuzz build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNB_FUZZ=ON -DNB_BENCH=OFF; then
  run_ctest fuzz build/fuzz -L fuzz -j"$jobs"
fi

[ "$stage_fail" -ne 0 ] && total_fail=$((total_fail + 1)) && echo "run-all: a stage failed to build or run (counted as one failure)"
summary="$total_pass passed, $total_fail failed"
[ "$total_skip" -gt 0 ] && summary="$summary, $total_skip skipped"
echo "$summary"
[ "$total_fail" -eq 0 ]
