#!/usr/bin/env bash
# tests/bench/netcheck_time.sh - how long NAT classification takes:
# `natpeer netcheck` vs coturn's `turnutils_natdiscovery -m -f`, on the same
# NATs, against the same coturn on the lab's srv, in one run.
#
#   tests/bench/netcheck_time.sh [-n RUNS] [-b BUILD_DIR] [HOST...]
#
# Default hosts: fc prc sym (one per kind of filtering verdict path); 5 runs
# each, the two tools alternating, conntrack flushed before each run. Prints
# per-host medians and the ratio netcheck/natdiscovery. Needs root; builds
# natpeer into build/bench unless -b is given; brings up its own lab
# (NATLAB_PREFIX=nbt) and tears it down. Not a test: it prints figures.
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/../.." && pwd)
runs=5 build=
while getopts "n:b:h" o; do
    case $o in
        n) runs=$OPTARG ;;
        b) build=$OPTARG ;;
        *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
hosts=${*:-fc prc sym}
[[ $runs =~ ^[1-9][0-9]?$ ]] || { echo "netcheck_time: -n expects 1..99" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "netcheck_time: needs root (network namespaces)" >&2; exit 1; }

if [ -z "$build" ]; then
    build=$top/build/bench
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j"$(nproc)" --target natpeer >/dev/null
fi
NP=$build/peer/natpeer
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbt}
NATLAB=$top/tests/lab/natlab.sh
trap '"$NATLAB" down >/dev/null 2>&1 || true' EXIT
"$NATLAB" down >/dev/null 2>&1 || true
"$NATLAB" up >/dev/null
"$NATLAB" wait-ready 20 >/dev/null

ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

printf '%-6s %14s %20s %8s\n' host "netcheck ms" "natdiscovery ms" ratio
for h in $hosts; do
    : >"/tmp/nbt-np-$h" ; : >"/tmp/nbt-nd-$h"
    for _ in $(seq "$runs"); do
        "$NATLAB" flush
        t0=$(ms); "$NATLAB" exec "$h" timeout 20 "$NP" netcheck --broker 203.0.113.10 --json >/dev/null; t1=$(ms)
        echo $((t1 - t0)) >>"/tmp/nbt-np-$h"
        "$NATLAB" flush
        t0=$(ms); "$NATLAB" exec "$h" timeout 60 turnutils_natdiscovery -m -f 203.0.113.10 >/dev/null 2>&1 || true; t1=$(ms)
        echo $((t1 - t0)) >>"/tmp/nbt-nd-$h"
    done
    a=$(median <"/tmp/nbt-np-$h"); b=$(median <"/tmp/nbt-nd-$h")
    printf '%-6s %14s %20s %8s\n' "$h" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2fx", a / b }')"
    rm -f "/tmp/nbt-np-$h" "/tmp/nbt-nd-$h"
done
echo "# wall time of each command, including 'ip netns exec'; $runs runs per tool and host"
