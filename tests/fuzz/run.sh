#!/usr/bin/env bash
# tests/fuzz/run.sh TARGET SECONDS - fuzz one target with libFuzzer for SECONDS.
# Builds build/fuzz with clang if needed. New interesting inputs go to a
# scratch folder; copy the ones worth keeping into tests/fuzz/corpus/TARGET.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
target=${1:?usage: run.sh TARGET SECONDS (targets: see tests/fuzz/fuzz_*.c)}
secs=${2:?usage: run.sh TARGET SECONDS}
build=${NB_FUZZ_BUILD:-$top/build/fuzz}
if [ ! -x "$build/tests/fuzz/fuzz_$target" ]; then
  CC=clang cmake -S "$top" -B "$build" -DNB_FUZZ=ON -DNB_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j"$(nproc)" --target "fuzz_$target"
fi
work=${NB_FUZZ_WORK:-$top/build/fuzz-work/$target}
mkdir -p "$work"
exec "$build/tests/fuzz/fuzz_$target" -max_total_time="$secs" -print_final_stats=1 \
  -max_len=4096 "$work" "$top/tests/fuzz/corpus/$target"
