#!/usr/bin/env bash
# tests/bench/handshake_rate.sh - Noise IK handshakes per second on the
# broker's side, on one core, against raw X25519 (ours through nb_key_dh,
# and `openssl speed ecdhx25519` as the external baseline).
#
#   tests/bench/handshake_rate.sh [-s SECONDS] [-k KEYS] [-b BUILD_DIR]
#
# Runs handshake_rate.c pinned to core 0 (taskset -c 0): KEYS initiations
# (default 1024) from different initiator keys are prepared first, then each
# measurement runs SECONDS (default 3). Then `openssl speed -seconds 3
# ecdhx25519` on the same core. Without -b it builds handshake_rate into
# build/bench (RelWithDebInfo, no sanitizers). Not a test: it prints figures
# and exits 0 unless something broke.
set -euo pipefail
export LC_ALL=C

top=$(cd "$(dirname "$0")/../.." && pwd)
secs=3 keys=1024 build=
while getopts "s:k:b:h" o; do
    case $o in
        s) secs=$OPTARG ;;
        k) keys=$OPTARG ;;
        b) build=$OPTARG ;;
        *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
for v in "$secs" "$keys"; do
    [[ $v =~ ^[1-9][0-9]{0,5}$ ]] || { echo "handshake_rate: expected a number, got '$v'" >&2; exit 2; }
done
command -v openssl >/dev/null || { echo "handshake_rate: openssl (the command) is not installed" >&2; exit 1; }

if [ -z "$build" ]; then
    build=$top/build/bench
    echo "# building handshake_rate in $build (RelWithDebInfo)"
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNB_SANITIZE=OFF -DNB_BENCH=ON >/dev/null
    cmake --build "$build" -j"$(nproc)" --target handshake_rate >/dev/null
fi
HR=$build/tests/bench/handshake_rate
[ -x "$HR" ] || { echo "handshake_rate: missing $HR" >&2; exit 1; }
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)

echo "# $(openssl version); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
"${pin[@]}" "$HR" -s "$secs" -k "$keys"

echo "# external baseline: openssl speed -seconds 3 ecdhx25519 (one core)"
out=$("${pin[@]}" openssl speed -seconds 3 ecdhx25519 2>/dev/null)
line=$(printf '%s\n' "$out" | grep -E '^ *253 bits ecdh \(X25519\)' || true)
if [ -n "$line" ]; then
    ops=$(printf '%s\n' "$line" | awk '{ print $(NF) }')
    echo "openssl speed X25519 derives/s:      $ops"
    echo "  -> at 5 X25519 per handshake the ceiling is about $(awk -v o="$ops" 'BEGIN { printf "%.0f", o / 5 }') handshakes/s"
else
    printf '%s\n' "$out" | tail -3
fi
