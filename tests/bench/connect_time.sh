#!/usr/bin/env bash
# tests/bench/connect_time.sh - time from `natpeer connect` to an
# authenticated path, in the lab with emulated delay, against the round-trip
# floor.
#
#   tests/bench/connect_time.sh [-R] [-n RUNS] [-d DELAY] [-b BUILD_DIR]
#
# Brings up its own lab (NATLAB_PREFIX=nbk, NATLAB_DELAY=DELAY, default 20ms),
# runs natbroker on srv, and for each pair (fc->pub dial/listen, prc->rc
# simultaneous punch, sym->rc prime then dial) RUNS times (default 10): flush
# conntrack, start a fresh listener, connect, read the event's "ms" (from the
# connect request to the completed Noise handshake with the peer: the
# path is authenticated end to end). The floor is two round trips host<->srv
# measured with ping in the same run: one to get the plan from the broker,
# one for the check to cross to the peer (every path crosses the emulated
# internet the same way). The handshake may cost one more peer round trip:
# the goal is floor + 1 RTT + 10 ms for dial/listen and punch (a prime plan
# adds the broker's fixed 100 ms delay). Prints median, p95, median/floor
# and whether the goal is met, per pair. Needs root. Not a test: it prints
# figures.
#
# -R: relayed connects through natbroker's TURN relay (lab NATLAB_PREFIX=nbq)
# instead: prc->sym and fc->blk, where the listener (the side that
# allocates: symmetric NAT, UDP blocked) allocated in advance, as a running
# agent has (ICE's gathered relayed candidate); sym->prc and blk->fc, where
# the connector allocates while it asks for the plan (a one-shot `natpeer
# connect`; blk over TCP); and fc->pub (direct) beside them. Through the
# relay on srv, a peer-to-peer round trip is one host<->srv RTT as well, so
# the floor is the same; the goal (issue 14) is floor + 1 relay RTT + 20 ms.
# A run counts only if its path is the one wanted (relay, or direct).
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/../.." && pwd)
runs=10 delay=20ms build= relay=0
while getopts "Rn:d:b:h" o; do
    case $o in
        R) relay=1 ;;
        n) runs=$OPTARG ;;
        d) delay=$OPTARG ;;
        b) build=$OPTARG ;;
        *) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]?$ ]] || { echo "connect_time: -n expects 1..99" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "connect_time: needs root (network namespaces)" >&2; exit 1; }
if [ -z "$build" ]; then
    build=$top/build/bench
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j"$(nproc)" --target natpeer natbroker >/dev/null
fi
NP=$build/peer/natpeer NB=$build/broker/natbroker
if [ "$relay" = 1 ]; then
    export NATLAB_PREFIX=${NATLAB_PREFIX:-nbq}
    pairs=("prc sym relay-udp-advance" "fc blk relay-tcp-advance" "sym prc relay-udp" "blk fc relay-tcp"
           "fc pub direct")
    slack=20
else
    export NATLAB_PREFIX=${NATLAB_PREFIX:-nbk}
    pairs=("fc pub dial/listen" "prc rc punch/punch" "sym rc dial/prime")
    slack=10
fi
export NATLAB_DELAY=$delay
NATLAB=$top/tests/lab/natlab.sh
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    "$NATLAB" down >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
"$NATLAB" down >/dev/null 2>&1 || true
"$NATLAB" up >/dev/null
"$NATLAB" wait-ready 20 >/dev/null
"$NATLAB" stop-coturn >/dev/null
"$NATLAB" exec srv "$NB" --public-list --listen 203.0.113.10 --listen 203.0.113.11 --log-level warn 2>"$tmp/nb.log" &
pids+=($!)
for _ in $(seq 100); do "$NATLAB" exec srv ss -Hlun 'sport = :3478' | grep -q . && break; sleep 0.05; done

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
p95() { sort -n | awk '{ a[NR] = $1 } END { i = int(NR * 0.95 + 0.999); if (i < 1) i = 1; print a[i] }'; }

rtt=$("$NATLAB" exec fc ping -n -q -c 10 -i 0.05 203.0.113.10 | sed -n 's|.* = [0-9.]*/\([0-9.]*\)/.*|\1|p')
floor=$(awk -v r="$rtt" 'BEGIN { printf "%.0f", 2 * r }')
echo "# NATLAB_DELAY=$delay: ping fc->srv average RTT $rtt ms; floor = 2 RTT = $floor ms"
goal=$(awk -v r="$rtt" -v f="$floor" -v s="$slack" 'BEGIN { printf "%.0f", f + r + s }')
echo "# goal: median <= floor + 1 RTT + $slack ms = $goal ms"
printf '%-10s %-26s %8s %8s %12s %6s %6s\n' pair plan median p95 median/floor fails goal
for pair in "${pairs[@]}"; do
    read -r a b plan <<<"$pair"
    : >"$tmp/ms"; fails=0
    for i in $(seq "$runs"); do
        "$NATLAB" flush
        lid="$b-l$i" id="$a-c$i"
        "$NATLAB" exec "$b" "$NP" listen --id "$lid" --broker 203.0.113.10 --json \
            </dev/null >"$tmp/l.out" 2>"$tmp/l.err" &
        lp=$!; pids+=("$lp")
        for _ in $(seq 400); do grep -q "registered" "$tmp/l.err" 2>/dev/null && break; sleep 0.05; done
        case $plan in *-advance) # the listener's allocation in advance is registered
            for _ in $(seq 400); do grep -q "registered our relayed address" "$tmp/l.err" 2>/dev/null && break; sleep 0.05; done ;;
        esac
        "$NATLAB" exec "$a" timeout 20 "$NP" connect --id "$id" --broker 203.0.113.10 --json "$lid" \
            </dev/null >"$tmp/c.out" 2>/dev/null || true
        ms=$(sed -n 's/.*"event":"connected".*"ms":\([0-9]*\).*/\1/p' "$tmp/c.out")
        path=$(sed -n 's/.*"event":"connected".*"path":"\([a-z]*\)".*/\1/p' "$tmp/c.out")
        case $plan in relay-*) [ "$path" = relay ] || ms= ;; *) [ "$path" = direct ] || ms= ;; esac
        if [ -n "$ms" ]; then echo "$ms" >>"$tmp/ms"; else fails=$((fails + 1)); fi
        kill "$lp" 2>/dev/null || true; wait "$lp" 2>/dev/null || true
    done
    if [ -s "$tmp/ms" ]; then
        m=$(median <"$tmp/ms"); p=$(p95 <"$tmp/ms")
        met=-; case $plan in dial/prime) ;; *) met=$(awk -v m="$m" -v g="$goal" 'BEGIN { print (m <= g) ? "met" : "MISSED" }') ;; esac
        printf '%-10s %-26s %8s %8s %12s %6s %6s\n' "$a->$b" "$plan" "$m" "$p" \
            "$(awk -v m="$m" -v f="$floor" 'BEGIN { printf "%.2fx", m / f }')" "$fails" "$met"
    else
        printf '%-10s %-26s %8s %8s %12s %6s\n' "$a->$b" "$plan" - - - "$fails"
    fi
done
echo "# $runs runs per pair; ms from the connect request to the completed handshake with the peer"
