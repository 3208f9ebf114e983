#!/usr/bin/env bash
# tests/bench/birthday.sh - birthday punching in the lab: success rate, time
# to connected and probes used, sym <-> prc; and the primed plan's connect
# time with the round-trip timing against the fixed delay, in one run.
#
#   tests/bench/birthday.sh [-n RUNS] [-d DELAY] [-r RATE] [-p RUNS] [-b BUILD_DIR]
#
# Brings up its own lab (NATLAB_PREFIX=nbbb, NATLAB_DELAY=DELAY, default
# 20ms), runs natbroker on srv with a birthday budget of 256 sockets, 2048
# probes at RATE per second (default 1000), and RUNS times (default 50),
# alternating sym->prc and prc->sym: flush conntrack, a fresh listener,
# connect, and read the connected event: its path (birthday counts as a
# success; a fallback to the relay does not), "ms" (from the connect request
# to the completed Noise handshake with the peer) and the probing side's
# probes. Prints successes out of tries, median and p90 time, median and p90
# probes, against the issue's goals (>= 95% direct, median <= 3 s, median
# probes <= 400) and the formula's expected median probes.
#
# Then the primed plan (sym->rc, rc primes, sym dials), -p RUNS times each
# (default 20), with natbroker --punch-timing fixed (the old fixed 100 ms
# delay) and --punch-timing rtt (a delay from the round trips the broker
# measured), against the floor: two round trips host<->srv (ping, in the same
# run). Goal: rtt timing <= 1.2x the floor. Needs root. Not a test: it
# prints figures.
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/../.." && pwd)
runs=50 delay=20ms build= rate=1000 pruns=20
while getopts "n:d:r:p:b:h" o; do
    case $o in
        n) runs=$OPTARG ;;
        d) delay=$OPTARG ;;
        r) rate=$OPTARG ;;
        p) pruns=$OPTARG ;;
        b) build=$OPTARG ;;
        *) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
[[ $runs =~ ^[0-9]{1,3}$ ]] || { echo "birthday: -n expects 0..999" >&2; exit 2; }
[[ $pruns =~ ^[0-9]{1,3}$ ]] || { echo "birthday: -p expects 0..999" >&2; exit 2; }
[[ $rate =~ ^[1-9][0-9]{0,4}$ ]] || { echo "birthday: -r expects 1..10000" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "birthday: needs root (network namespaces)" >&2; exit 1; }
if [ -z "$build" ]; then
    build=$top/build/bench
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j"$(nproc)" --target natpeer natbroker >/dev/null
fi
NP=$build/peer/natpeer NB=$build/broker/natbroker
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbbb}
export NATLAB_DELAY=$delay
NATLAB=$top/tests/lab/natlab.sh
tmp=$(mktemp -d)
nbpid=
cleanup() {
    [ -n "$nbpid" ] && kill "$nbpid" 2>/dev/null
    "$NATLAB" down >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
"$NATLAB" down >/dev/null 2>&1 || true
"$NATLAB" up >/dev/null
"$NATLAB" wait-ready 30 >/dev/null
"$NATLAB" stop-coturn >/dev/null

broker() { # extra natbroker options
    if [ -n "$nbpid" ]; then kill "$nbpid" 2>/dev/null || true; wait "$nbpid" 2>/dev/null || true; fi
    for _ in $(seq 100); do "$NATLAB" exec srv ss -Hlun 'sport = :3478' | grep -q . || break; sleep 0.05; done
    "$NATLAB" exec srv "$NB" --public-list --listen 203.0.113.10 --listen 203.0.113.11 --log-level warn \
        --birthday-sockets 256 --birthday-probes 2048 --birthday-rate "$rate" "$@" 2>>"$tmp/nb.log" &
    nbpid=$!
    for _ in $(seq 100); do "$NATLAB" exec srv ss -Hlun 'sport = :3478' | grep -q . && break; sleep 0.05; done
}
median() { sort -n | awk '{ a[NR] = $1 } END { if (!NR) { print "-"; exit } print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
p90() { sort -n | awk '{ a[NR] = $1 } END { if (!NR) { print "-"; exit } i = int(NR * 0.9 + 0.999); if (i < 1) i = 1; print a[i] }'; }

# one A B: a fresh listener on B, connect from A; prints "PATH MS PROBES"
one() {
    local a=$1 b=$2 i=$3 lp lid id out path ms probes ev lev
    "$NATLAB" flush
    lid="$b-l$i" id="$a-c$i"
    "$NATLAB" exec "$b" "$NP" listen --id "$lid" --broker 203.0.113.10 --json --no-portmap \
        </dev/null >"$tmp/l.out" 2>"$tmp/l.err" &
    lp=$!
    for _ in $(seq 400); do grep -q "^registered" "$tmp/l.err" 2>/dev/null && break; sleep 0.05; done
    "$NATLAB" exec "$a" timeout 40 "$NP" connect --id "$id" --broker 203.0.113.10 --json --no-portmap "$lid" \
        </dev/null >"$tmp/c.out" 2>"$tmp/c.err" || true
    for _ in $(seq 40); do grep -q '"event":"connected"' "$tmp/l.out" 2>/dev/null && break; sleep 0.05; done
    kill "$lp" 2>/dev/null || true; wait "$lp" 2>/dev/null || true
    ev=$(grep '"event":"connected"' "$tmp/c.out" | head -n 1 || true)
    lev=$(grep '"event":"connected"' "$tmp/l.out" | head -n 1 || true)
    path=$(sed -n 's/.*"path":"\([a-z]*\)".*/\1/p' <<<"$ev")
    ms=$(sed -n 's/.*"ms":\([0-9]*\).*/\1/p' <<<"$ev")
    probes=$(sed -n 's/.*"birthday":{[^}]*"probes":\([0-9]*\).*/\1/p' <<<"$ev$lev" | head -n 1)
    echo "${path:-failed} ${ms:--} ${probes:--}"
}

rtt=$("$NATLAB" exec prc ping -n -q -c 10 -i 0.05 203.0.113.10 | sed -n 's|.* = [0-9.]*/\([0-9.]*\)/.*|\1|p')
floor=$(awk -v r="$rtt" 'BEGIN { printf "%.0f", 2 * r }')
echo "# natbroker $("$NB" --version | cut -d' ' -f2); NATLAB_DELAY=$delay: ping prc->srv average RTT $rtt ms; floor = 2 RTT = $floor ms"

if [ "$runs" -gt 0 ]; then
    broker
    : >"$tmp/ok.ms"; : >"$tmp/ok.probes"; : >"$tmp/all"
    ok=0
    for i in $(seq "$runs"); do
        if [ $((i % 2)) = 1 ]; then a=sym b=prc; else a=prc b=sym; fi
        read -r path ms probes < <(one "$a" "$b" "$i")
        echo "$a->$b $path $ms $probes" >>"$tmp/all"
        if [ "$path" = birthday ]; then
            ok=$((ok + 1)); echo "$ms" >>"$tmp/ok.ms"; echo "$probes" >>"$tmp/ok.probes"
        fi
    done
    exp=$(awk 'BEGIN { P = 64512; s = 256; m = 1; for (n = 1; n <= 2048; n++) { m *= (P - s - n + 1) / (P - n + 1); if (m <= 0.5) { print n; exit } } }')
    echo "# birthday, sym <-> prc, 256 sockets, 2048 probes at $rate/s, $runs tries"
    printf '%-28s %10s %10s\n' "" measured goal
    printf '%-28s %10s %10s\n' "connected directly" "$ok/$runs" ">= 95%"
    printf '%-28s %10s %10s\n' "success rate" "$(awk -v o="$ok" -v n="$runs" 'BEGIN { printf "%.0f%%", 100 * o / n }')" ">= 95%"
    printf '%-28s %10s %10s\n' "median ms to connected" "$(median <"$tmp/ok.ms")" "<= 3000"
    printf '%-28s %10s %10s\n' "p90 ms" "$(p90 <"$tmp/ok.ms")" ""
    printf '%-28s %10s %10s\n' "median probes" "$(median <"$tmp/ok.probes")" "<= 400"
    printf '%-28s %10s %10s\n' "p90 probes" "$(p90 <"$tmp/ok.probes")" ""
    printf '%-28s %10s %10s\n' "formula's median probes" "$exp" ""
    grep -v ' birthday ' "$tmp/all" | sed 's/^/# not birthday: /' || true
fi

if [ "$pruns" -gt 0 ]; then
    echo "# the primed plan sym->rc (rc primes, sym dials), $pruns runs each"
    printf '%-8s %8s %8s %12s %6s\n' timing median p90 median/floor fails
    for timing in fixed rtt; do
        broker --punch-timing "$timing"
        : >"$tmp/p.ms"; fails=0
        for i in $(seq "$pruns"); do
            read -r path ms _ < <(one sym rc "p$timing$i")
            if [ "$path" = direct ]; then echo "$ms" >>"$tmp/p.ms"; else fails=$((fails + 1)); fi
        done
        m=$(median <"$tmp/p.ms")
        printf '%-8s %8s %8s %12s %6s\n' "$timing" "$m" "$(p90 <"$tmp/p.ms")" \
            "$(awk -v m="$m" -v f="$floor" 'BEGIN { if (m == "-") print "-"; else printf "%.2fx", m / f }')" "$fails"
    done
    echo "# goal: rtt <= 1.2x floor ($(awk -v f="$floor" 'BEGIN { printf "%.0f", 1.2 * f }') ms)"
fi
