#!/usr/bin/env bash
# tests/bench/upnp_time.sh - time to a port mapping on the lab's real
# miniupnpd: natpeer (discovery, description, GetExternalIPAddress,
# AddAnyPortMapping, and natbroker's probe of the mapping: a *verified*
# mapping) against miniupnpc's `upnpc -i -a` (discovery, description,
# AddPortMapping: an unverified one), on the same router, in one run.
#
#   tests/bench/upnp_time.sh [-n RUNS] [-b BUILD_DIR]
#
# natpeer's time is its own count from the start of discovery to the
# broker's probe arriving (netcheck --json: upnp.ms); upnpc's is the wall
# time of the command minus the median cost of `ip netns exec true`,
# measured in the same run. Each run starts from a router without the
# mapping. Needs root; builds into build/bench unless -b is given; brings
# up its own lab (NATLAB_PREFIX=nbt) and tears it down. Prints figures.
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/../.." && pwd)
runs=9 build=
while getopts "n:b:h" o; do
    case $o in
        n) runs=$OPTARG ;;
        b) build=$OPTARG ;;
        *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]?$ ]] || { echo "upnp_time: -n expects 1..99" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "upnp_time: needs root (network namespaces)" >&2; exit 1; }
if [ -z "$build" ]; then
    build=$top/build/bench
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j"$(nproc)" --target natpeer natbroker >/dev/null
fi
NP=$build/peer/natpeer NB=$build/broker/natbroker
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbt}
NATLAB=$top/tests/lab/natlab.sh
tmp=$(mktemp -d /tmp/nbt-upnp.XXXXXX)
nbpid=
cleanup() {
    [ -n "$nbpid" ] && kill "$nbpid" 2>/dev/null && wait "$nbpid" 2>/dev/null
    "$NATLAB" down >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
"$NATLAB" down >/dev/null 2>&1 || true
"$NATLAB" up >/dev/null
"$NATLAB" wait-ready 20 >/dev/null
"$NATLAB" stop-coturn >/dev/null
"$NATLAB" exec srv "$NB" --public-list --listen 203.0.113.10 --listen 203.0.113.11 >"$tmp/nb.log" 2>&1 &
nbpid=$!
for _ in $(seq 50); do ip netns exec "$NATLAB_PREFIX-srv" ss -Hlun 'sport = :3479' | grep -q . && break; sleep 0.1; done

ms() { local t; t=$(date +%s%N); echo "$((t / 1000000)).$((t / 100000 % 10))"; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
p95() { sort -n | awk '{ a[NR] = $1 } END { i = int(NR * 0.95 + 0.999); if (i < 1) i = 1; print a[i] }'; }
in_upnp() { ip netns exec "$NATLAB_PREFIX-upnp" "$@"; }

: >"$tmp/np"; : >"$tmp/pc"; : >"$tmp/ex"
for i in $(seq "$runs"); do
    port=$((41000 + i))
    # natpeer: a verified mapping, then it deletes it on exit
    "$NATLAB" flush
    in_upnp "$NP" netcheck --broker 203.0.113.10 --port "$port" --json >"$tmp/out" 2>/dev/null || true
    v=$(sed -n 's/.*"upnp":{"status":"mapped"[^}]*"ms":\([0-9]*\).*/\1/p' "$tmp/out")
    [ -n "$v" ] || { echo "natpeer run $i: no verified mapping: $(cat "$tmp/out")" >&2; exit 1; }
    echo "$v" >>"$tmp/np"
    # upnpc: the same router, another port
    port=$((42000 + i))
    t0=$(ms); in_upnp upnpc -i -a 192.168.6.2 "$port" "$port" UDP >"$tmp/pc.out" 2>&1 || true; t1=$(ms)
    grep -q "is redirected to internal" "$tmp/pc.out" || { echo "upnpc run $i failed: $(cat "$tmp/pc.out")" >&2; exit 1; }
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", b - a }' >>"$tmp/pc"
    in_upnp upnpc -i -d "$port" UDP >/dev/null 2>&1 || true
    t0=$(ms); in_upnp true; t1=$(ms)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", b - a }' >>"$tmp/ex"
done
e=$(median <"$tmp/ex")
a=$(median <"$tmp/np"); a95=$(p95 <"$tmp/np")
b=$(awk -v e="$e" '{ printf "%.1f\n", $1 - e }' "$tmp/pc" | median)
b95=$(awk -v e="$e" '{ printf "%.1f\n", $1 - e }' "$tmp/pc" | p95)
printf '%-38s %10s %8s\n' "" "median ms" "p95 ms"
printf '%-38s %10s %8s\n' "natpeer: to a broker-verified mapping" "$a" "$a95"
printf '%-38s %10s %8s\n' "upnpc -i -a: to a mapping" "$b" "$b95"
printf 'ratio natpeer/upnpc (medians): %s\n' "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2fx", a / b }')"
echo "# $runs runs each on r-upnp (miniupnpd $(in_upnp dpkg-query -W -f='${Version}' miniupnpd 2>/dev/null || echo '?'));" \
     "ip netns exec costs $e ms (subtracted from upnpc's wall time)"
