#!/usr/bin/env bash
# tests/bench/netcheck_time.sh - how long NAT classification takes:
# `natpeer netcheck` vs coturn's `turnutils_natdiscovery -m -f`, on the same
# NATs, against the same coturn on the lab's srv, in one run.
#
#   tests/bench/netcheck_time.sh [-n RUNS] [-b BUILD_DIR] [HOST...]
#
# Default hosts: fc hp1 rc prc sym (each filtering verdict path, and a NAT
# that hairpins); 5 runs each, the two tools alternating, conntrack flushed
# before each run. Each command runs under plain `ip netns exec`, whose own
# cost (`true`) is measured in the same run and printed. Prints per-host
# medians and the ratio netcheck/natdiscovery. NATLAB_DELAY=20ms (say) adds
# the lab's one-way delay to every router's WAN, for realistic round trips.
# netcheck runs with --no-upnp: natdiscovery does no UPnP, and netcheck's
# UPnP discovery waits up to 0.5 s for a gateway on a LAN without one.
# Needs root; builds natpeer into build/bench unless -b is given; brings up
# its own lab (NATLAB_PREFIX=nbt) and tears it down. Prints figures; not a test.
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/../.." && pwd)
runs=5 build=
while getopts "n:b:h" o; do
    case $o in
        n) runs=$OPTARG ;;
        b) build=$OPTARG ;;
        *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
hosts=${*:-fc hp1 rc prc sym}
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

# Milliseconds, to 0.1 ms.
ms() { local t; t=$(date +%s%N); echo "$((t / 1000000)).$((t / 100000 % 10))"; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# Wall time of one command in host $1's namespace, appended to file $2.
timed() {
    local h=$1 f=$2 t0 t1; shift 2
    t0=$(ms); ip netns exec "$NATLAB_PREFIX-$h" "$@" >/dev/null 2>&1 || true; t1=$(ms)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", b - a }' >>"$f"
}

tmp=$(mktemp -d /tmp/nbt-bench.XXXXXX)
trap '"$NATLAB" down >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
printf '%-6s %12s %16s %8s %10s\n' host "netcheck ms" "natdiscovery ms" ratio "exec ms"
for h in $hosts; do
    : >"$tmp/np" ; : >"$tmp/nd" ; : >"$tmp/ex"
    for _ in $(seq "$runs"); do
        "$NATLAB" flush
        timed "$h" "$tmp/np" timeout 20 "$NP" netcheck --broker 203.0.113.10 --json --no-upnp
        "$NATLAB" flush
        timed "$h" "$tmp/nd" timeout 60 turnutils_natdiscovery -m -f 203.0.113.10
        timed "$h" "$tmp/ex" true
    done
    a=$(median <"$tmp/np"); b=$(median <"$tmp/nd"); e=$(median <"$tmp/ex")
    printf '%-6s %12s %16s %8s %10s\n' "$h" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2fx", a / b }')" "$e"
done
echo "# medians of $runs runs per tool and host; wall time of the whole command under"
echo "# 'ip netns exec' (its own cost is the exec column); NATLAB_DELAY=${NATLAB_DELAY:-none}"
