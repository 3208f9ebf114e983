#!/usr/bin/env bash
# tests/bench/relay_natpeer_rate.sh - datagrams through natpeer over a
# relayed pair against the same traffic over a direct pair, in the lab.
#
#   tests/bench/relay_natpeer_rate.sh [-r ROUNDS] [-n LINES] [-l BYTES] [-b BUILD_DIR]
#
# Brings up its own lab (NATLAB_PREFIX=nbp; no delay, no loss), runs
# natbroker on srv (its own TURN relay), and per round, for each pair: a
# fresh `natpeer listen --json` on the listener, `natpeer connect --json`
# on the connector; once connected, LINES lines of BYTES bytes (default
# 20000 x 1000) are written to the connector's stdin at once; each is one
# sealed datagram (0xD3, end to end). The receiver's data events are counted
# every 50 ms until the count stops growing for a second. Pairs: fc->pub
# (direct: a full cone to a public host) and prc->sym (relay: sym
# allocated in advance, prc sends to its relayed address; every datagram
# crosses natbroker's relay as ChannelData or a Send indication). Prints
# per round and median: datagrams/s received (first to last), and lines
# lost; then the ratio relay/direct. natpeer's own pipeline (stdin, JSON,
# sealing, one process per side) is the same for both, so the ratio is the
# relay's cost. Needs root. Not a test: it prints figures.
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/../.." && pwd)
rounds=3 lines=20000 bytes=1000 build=
while getopts "r:n:l:b:h" o; do
    case $o in
        r) rounds=$OPTARG ;;
        n) lines=$OPTARG ;;
        l) bytes=$OPTARG ;;
        b) build=$OPTARG ;;
        *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
[[ $rounds =~ ^[1-9]$ ]] || { echo "relay_natpeer_rate: -r expects 1..9" >&2; exit 2; }
[[ $lines =~ ^[1-9][0-9]{0,5}$ ]] || { echo "relay_natpeer_rate: -n expects 1..999999" >&2; exit 2; }
[[ $bytes =~ ^[1-9][0-9]{0,2}$|^1000$|^1[01][0-9][0-9]$ ]] || { echo "relay_natpeer_rate: -l expects 1..1170" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "relay_natpeer_rate: needs root (network namespaces)" >&2; exit 1; }
if [ -z "$build" ]; then
    build=$top/build/bench
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j"$(nproc)" --target natpeer natbroker >/dev/null
fi
NP=$build/peer/natpeer NB=$build/broker/natbroker
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbp}
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
"$NATLAB" exec srv "$NB" --public-list --listen 203.0.113.10 --listen 203.0.113.11 --log-level warn --birthday off \
    2>"$tmp/nb.log" &
pids+=($!)
for _ in $(seq 100); do "$NATLAB" exec srv ss -Hlun 'sport = :3478' | grep -q . && break; sleep 0.05; done
payload=$(head -c "$bytes" /dev/zero | tr '\0' x)
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

# run A B TAG: one round of A -> B; prints "rate lost"
run() {
    local a=$1 b=$2 tag=$3 lid cid lp cp fd n last t0 t1 same=0
    lid="$b-$tag-l$RANDOM" cid="$a-$tag-c$RANDOM"
    "$NATLAB" flush
    "$NATLAB" exec "$b" env XDG_CONFIG_HOME="$tmp/x-$b" "$NP" listen --id "$lid" --broker 203.0.113.10 \
        --json </dev/null >"$tmp/l.out" 2>"$tmp/l.err" &
    lp=$!; pids+=("$lp")
    for _ in $(seq 400); do grep -q "registered" "$tmp/l.err" 2>/dev/null && break; sleep 0.05; done
    case $b in sym) for _ in $(seq 400); do grep -q "registered our relayed address" "$tmp/l.err" && break; sleep 0.05; done ;; esac
    rm -f "$tmp/in"; mkfifo "$tmp/in"
    "$NATLAB" exec "$a" env XDG_CONFIG_HOME="$tmp/x-$a" "$NP" connect --id "$cid" --broker 203.0.113.10 \
        --json "$lid" <"$tmp/in" >"$tmp/c.out" 2>"$tmp/c.err" &
    cp=$!; pids+=("$cp")
    exec {fd}>"$tmp/in"
    for _ in $(seq 400); do grep -q '"event":"connected"' "$tmp/c.out" 2>/dev/null && break; sleep 0.05; done
    grep -q '"event":"connected"' "$tmp/c.out" || { echo "0 $lines"; kill "$cp" "$lp" 2>/dev/null; exec {fd}>&-; return; }
    sed -n 's/.*"path":"\([a-z]*\)".*/\1/p' "$tmp/c.out" | head -n 1 >"$tmp/path-$tag"
    # the listener's first data event after this point starts the clock
    n=0 last=-1 t0=0 t1=0
    (for _ in $(seq "$lines"); do echo "$payload"; done >&"$fd") &
    local wp=$!
    while :; do
        n=$(grep -c '"event":"data"' "$tmp/l.out" || true)
        if [ "$n" -gt 0 ] && [ "$t0" = 0 ]; then t0=$(now_ms); fi
        if [ "$n" = "$last" ]; then same=$((same + 1)); else same=0; t1=$(now_ms); fi
        last=$n
        [ "$same" -ge 20 ] && [ "$n" -gt 0 ] && break
        [ "$same" -ge 200 ] && break
        sleep 0.05
    done
    wait "$wp" 2>/dev/null || true
    exec {fd}>&-
    kill "$cp" "$lp" 2>/dev/null || true
    wait "$cp" "$lp" 2>/dev/null || true
    awk -v n="$n" -v t0="$t0" -v t1="$t1" -v l="$lines" \
        'BEGIN { d = t1 - t0; if (d < 50) d = 50; printf "%.0f %d\n", n * 1000 / d, l - n }'
}

printf '%-8s %-18s %12s %8s\n' round pair datagrams/s lost
: >"$tmp/direct" ; : >"$tmp/relay"
for r in $(seq "$rounds"); do
    read -r rate lost < <(run fc pub direct)
    echo "$rate" >>"$tmp/direct"
    printf '%-8s %-18s %12s %8s\n' "$r" "fc->pub ($(cat "$tmp/path-direct"))" "$rate" "$lost"
    read -r rate lost < <(run prc sym relay)
    echo "$rate" >>"$tmp/relay"
    printf '%-8s %-18s %12s %8s\n' "$r" "prc->sym ($(cat "$tmp/path-relay"))" "$rate" "$lost"
done
md=$(median <"$tmp/direct") mr=$(median <"$tmp/relay")
echo "# median: direct $md/s, relay $mr/s; relay/direct = $(awk -v a="$mr" -v b="$md" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')"
echo "# $lines lines of $bytes bytes per run, one sealed datagram each; natpeer $("$NP" --version 2>/dev/null | cut -d' ' -f2)"
