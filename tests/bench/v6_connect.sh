#!/usr/bin/env bash
# tests/bench/v6_connect.sh - connect time over IPv6 against IPv4 on the same
# dual-stack pair, in the lab with emulated delay (issue 17).
#
#   tests/bench/v6_connect.sh [-n RUNS] [-d DELAY] [-b BUILD_DIR]
#
# Brings up its own IPv6 lab (NATLAB_PREFIX=nbv6t, NATLAB_V6=1,
# NATLAB_DELAY=DELAY, default 20ms; NATLAB_DELAY shapes IPv6 as IPv4, see
# docs/lab.md), runs natbroker on srv listening on both families
# (203.0.113.10/.11, 2001:db8::10/::11), and connects e6 -> d6 (each behind a
# port-restricted v4 NAT and an APDF v6 firewall: direct over either family)
# RUNS times (default 20) each way, alternating, conntrack flushed before
# every run, a fresh listener each time:
#   v6: default natpeer on both sides (both families registered; the plan
#       prefers IPv6); the connection must say "family":6;
#   v6b: as v6, with the broker's IPv6 address given too (a second
#       --broker): the IPv6 NAT tests start at once, beside the IPv4 ones;
#   v4: both sides --one-family with --broker 203.0.113.10 (IPv4 only); the
#       connection must say "family":4.
# All kinds run natpeer's defaults otherwise (port mapping asked too). Per
# run it records the connected event's "ms"
# (from the connect request, sent once the second family is settled, to the
# completed Noise handshake with the peer), the time from the connector's
# "plan:" line to that event (stderr and stdout timestamped as read), and the
# wall time from starting `natpeer connect` (its NAT tests and registration
# included: for v6 both families'). The floor, per family, measured in the
# same run: 2 round trips host<->srv (ping: one for the plan, one for the
# check to cross to the peer), and the host<->host RTT (a UDP echo e6<->d6
# through the punched NAT/firewall). Goal (issue 17): the same floor, with no
# extra round trip from racing the families: median(v6) - median(v4) < RTT/2.
# First a sanity line: IPv6 must be shaped like IPv4 (ping RTT in
# [2D, 2D+10 ms] for both). One untimed warm-up of each kind. Prints median,
# p90, ratio v6/v4. Needs root. Not a test: it prints figures.
#
# Binaries: -b BUILD_DIR (BUILD_DIR/peer/natpeer, BUILD_DIR/broker/natbroker),
# or NATPEER=... NATBROKER=... in the environment; default: build
# RelWithDebInfo into build/bench as connect_time.sh does.
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/../.." && pwd)
runs=20 delay=20ms build=
while getopts "n:d:b:h" o; do
    case $o in
        n) runs=$OPTARG ;;
        d) delay=$OPTARG ;;
        b) build=$OPTARG ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 2 ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]?$ ]] || { echo "v6_connect: -n expects 1..99" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "v6_connect: needs root (network namespaces)" >&2; exit 1; }
if [ -n "${NATPEER:-}" ] && [ -n "${NATBROKER:-}" ] && [ -z "$build" ]; then
    NP=$NATPEER NB=$NATBROKER
else
    if [ -z "$build" ]; then
        build=$top/build/bench
        cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
        cmake --build "$build" -j"$(nproc)" --target natpeer natbroker >/dev/null
    fi
    NP=$build/peer/natpeer NB=$build/broker/natbroker
fi
for b in "$NP" "$NB"; do [ -x "$b" ] || { echo "v6_connect: $b is not executable" >&2; exit 1; }; done
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbv6t} NATLAB_V6=1 NATLAB_DELAY=$delay
unset NATLAB_LOSS
NATLAB=$top/tests/lab/natlab.sh
SRV4=203.0.113.10 SRV6=2001:db8::10
A=e6 B=d6   # connector, listener
CONN_WAIT=20 REG_WAIT=20
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    "$NATLAB" down >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
"$NATLAB" down >/dev/null 2>&1 || true
"$NATLAB" up >/dev/null 2>&1
"$NATLAB" wait-ready 20 >/dev/null 2>&1
"$NATLAB" stop-coturn >/dev/null 2>&1
"$NATLAB" exec srv "$NB" --public-list --listen $SRV4 --listen 203.0.113.11 \
    --listen $SRV6 --listen 2001:db8::11 --log-level warn 2>"$tmp/nb.log" &
pids+=($!)
for _ in $(seq 100); do
    "$NATLAB" exec srv ss -Hlun 'sport = :3479' | grep -qF "[$SRV6]" && break
    sleep 0.05
done

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) { print "-"; exit } print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
p90() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) { print "-"; exit } i = int(NR * 0.90 + 0.999); if (i < 1) i = 1; print a[i] }'; }
ping_avg() { # node family dst -> average RTT ms ("" if none answered)
    "$NATLAB" exec "$1" ping "-$2" -n -q -c 20 -i 0.05 -W 2 "$3" 2>/dev/null |
        sed -n 's|.* = [0-9.]*/\([0-9.]*\)/.*|\1|p'
}
delay_ms=$(awk -v v="$delay" 'BEGIN { match(v, /^[0-9.]+/); n = substr(v, 1, RLENGTH); u = substr(v, RLENGTH + 1)
    if (u == "s") n *= 1000; else if (u == "us") n /= 1000; print n }')

# ---- sanity: IPv6 is shaped like IPv4 (2 crossings per round trip)
rtt4=$(ping_avg $A 4 $SRV4) rtt6=$(ping_avg $A 6 $SRV6)
shaped() { awk -v r="$1" -v d="$delay_ms" 'BEGIN { exit !(r != "" && r >= 2 * d && r <= 2 * d + 10) }'; }
if shaped "$rtt4" && shaped "$rtt6"; then ok=ok; else ok=BAD; fi
echo "# sanity: ping $A->srv RTT IPv4 ${rtt4:-none} ms, IPv6 ${rtt6:-none} ms; 2 x NATLAB_DELAY = $(awk -v d="$delay_ms" 'BEGIN { print 2 * d }') ms: $ok"
[ "$ok" = ok ] || { echo "v6_connect: IPv6 not shaped like IPv4; stopping" >&2; exit 1; }

# ---- host<->host RTT per family: a UDP echo through the punched NAT/firewall
cat >"$tmp/udprtt.py" <<'EOF'
import socket, sys, time
mode, fam, peer, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
af = socket.AF_INET6 if fam == 6 else socket.AF_INET
s = socket.socket(af, socket.SOCK_DGRAM)
s.bind(("::" if fam == 6 else "0.0.0.0", port))
if mode == "echo":          # open our NAT/firewall towards the peer, then echo
    for _ in range(3):
        s.sendto(b"open", (peer, port))
    s.settimeout(10)
    try:
        while True:
            d, a = s.recvfrom(64)
            s.sendto(d, a)
    except socket.timeout:
        pass
else:                       # ping: COUNT probes, one at a time
    s.settimeout(1)
    rtts = []
    for i in range(int(sys.argv[5])):
        t = time.monotonic()
        s.sendto(str(i).encode(), (peer, port))
        try:
            while s.recvfrom(64)[0] != str(i).encode():
                pass
            rtts.append((time.monotonic() - t) * 1000)
        except socket.timeout:
            pass
        time.sleep(0.05)
    print("%.1f" % (sum(rtts) / len(rtts)) if rtts else "")
EOF
hostrtt() { # family listener-addr connector-addr port
    "$NATLAB" flush
    "$NATLAB" exec $B timeout 12 /usr/bin/python3 "$tmp/udprtt.py" echo "$1" "$3" "$4" &
    local ep=$!
    sleep 0.3
    "$NATLAB" exec $A timeout 12 /usr/bin/python3 "$tmp/udprtt.py" ping "$1" "$2" "$4" 20 || true
    kill "$ep" 2>/dev/null || true; wait "$ep" 2>/dev/null || true
}
hh4=$(hostrtt 4 "$("$NATLAB" public $B)" "$("$NATLAB" public $A)" 40404)
hh6=$(hostrtt 6 "$("$NATLAB" addr6 $B)" "$("$NATLAB" addr6 $A)" 40406)
floor4=$(awk -v r="$rtt4" 'BEGIN { printf "%.0f", 2 * r }')
floor6=$(awk -v r="$rtt6" 'BEGIN { printf "%.0f", 2 * r }')
echo "# NATLAB_DELAY=$delay; $A -> $B; natpeer $NP"
echo "# floor IPv4: RTT $A<->srv $rtt4 ms, $A<->$B ${hh4:-?} ms (UDP echo); floor = 2 RTT(srv) = $floor4 ms"
echo "# floor IPv6: RTT $A<->srv $rtt6 ms, $A<->$B ${hh6:-?} ms (UDP echo); floor = 2 RTT(srv) = $floor6 ms"

# ---- the runs
# Timestamp each line as it is read (ms since the epoch).
stamp() { local l; while IFS= read -r l; do printf '%s %s\n' "${EPOCHREALTIME/./}" "$l"; done; }
now_us() { echo "${EPOCHREALTIME/./}"; }
one_run() { # kind(v6|v4) index: appends "ms plan2conn wall" to $tmp/KIND, or counts a fail
    local kind=$1 i=$2 fam=() want=6 lid cid lp t0 ev ms got tc tp tconn
    [ "$kind" = v4 ] && { fam=(--one-family); want=4; }
    [ "$kind" = v6b ] && fam=(--broker "[2001:db8::10]:3478")
    lid="$B-$kind-$i" cid="$A-$kind-$i"
    "$NATLAB" flush
    "$NATLAB" exec $B timeout $((REG_WAIT + CONN_WAIT + 5)) "$NP" listen --id "$lid" --broker $SRV4 \
        "${fam[@]}" --json </dev/null >"$tmp/l.out" 2>"$tmp/l.err" &
    lp=$!; pids+=("$lp")
    local ready="registered IPv6"; [ "$kind" = v4 ] && ready="registered as"
    for _ in $(seq $((REG_WAIT * 20))); do grep -q "$ready" "$tmp/l.err" 2>/dev/null && break; sleep 0.05; done
    t0=$(now_us)
    "$NATLAB" exec $A timeout $CONN_WAIT "$NP" connect --id "$cid" --broker $SRV4 \
        "${fam[@]}" --json "$lid" </dev/null > >(stamp >"$tmp/c.out") 2> >(stamp >"$tmp/c.err") || true
    sleep 0.1 # the stampers drain
    kill "$lp" 2>/dev/null || true; wait "$lp" 2>/dev/null || true
    ev=$(grep '"event":"connected"' "$tmp/c.out" | head -n 1 || true)
    ms=$(sed -n 's/.*"ms":\([0-9]*\).*/\1/p' <<<"$ev")
    got=$(sed -n 's/.*"family":\([46]\).*/\1/p' <<<"$ev")
    if [ -z "$ms" ] || [ "$got" != "$want" ] || ! grep -q '"path":"direct"' <<<"$ev"; then
        echo "fail $kind#$i: ${ev:-no connected event} $(grep -v '^[0-9]* {' "$tmp/c.err" | tail -n 1 | cut -d' ' -f2-)" >>"$tmp/fails"
        return 0
    fi
    tconn=${ev%% *}
    tp=$(grep -m1 '^[0-9]* plan: ' "$tmp/c.err" | cut -d' ' -f1 || true)
    tc=$(( (tconn - t0) / 1000 ))
    if [ -n "$tp" ]; then tp=$(( (tconn - tp) / 1000 )); else tp=-; fi
    echo "$ms $tp $tc" >>"$tmp/$kind"
    [ -z "${V6C_VERBOSE:-}" ] || echo "# $kind#$i: ms $ms plan->connected $tp wall $tc" >&2
}
one_run v6 0; one_run v6b 0; one_run v4 0; rm -f "$tmp/v6" "$tmp/v6b" "$tmp/v4" "$tmp/fails" # warm-up
for i in $(seq "$runs"); do
    if [ $((i % 2)) -eq 1 ]; then one_run v6 "$i"; one_run v6b "$i"; one_run v4 "$i"
    else one_run v4 "$i"; one_run v6b "$i"; one_run v6 "$i"; fi
done

col() { [ ! -s "$tmp/$1" ] || awk -v c="$2" '$c != "-" { print $c }' "$tmp/$1"; }
stat() { col "$1" "$2" | "$3"; }
printf '%-6s %4s %6s %8s %6s %12s %8s %6s %9s\n' family runs fails median p90 median/floor plan2con p90 wall
for k in v6 v6b v4; do
    n=0; [ -s "$tmp/$k" ] && n=$(wc -l <"$tmp/$k")
    f=$(grep -c "^fail $k#" "$tmp/fails" 2>/dev/null || true)
    fl=$floor4; [ $k != v4 ] && fl=$floor6
    m=$(stat $k 1 median)
    printf '%-6s %4s %6s %8s %6s %12s %8s %6s %9s\n' "IPv${k#v}" "$n" "${f:-0}" "$m" "$(stat $k 1 p90)" \
        "$(awk -v m="$m" -v f="$fl" 'BEGIN { if (m == "-") print "-"; else printf "%.2fx", m / f }')" \
        "$(stat $k 2 median)" "$(stat $k 2 p90)" "$(stat $k 3 median)"
done
m6=$(stat v6 1 median) m4=$(stat v4 1 median)
if [ "$m6" != - ] && [ "$m4" != - ]; then
    awk -v a="$m6" -v b="$m4" -v r="$rtt4" -v pa="$(stat v6 2 median)" -v pb="$(stat v4 2 median)" \
        -v wa="$(stat v6 3 median)" -v wb="$(stat v4 3 median)" 'BEGIN {
        printf "# ratio v6/v4: ms %.2f (%+.0f ms), plan->connected %.2f, wall %.2f (%+.0f ms)\n",
            a / b, a - b, pa / pb, wa / wb, wa - wb
        printf "# goal (same floor, no extra round trip): median(v6) - median(v4) = %+.0f ms < RTT/2 = %.0f ms: %s\n",
            a - b, r / 2, (a - b < r / 2) ? "met" : "MISSED" }'
fi
[ ! -s "$tmp/fails" ] || sed 's/^/# /' "$tmp/fails"
echo "# $runs runs each, alternating, after one untimed warm-up each; ms: connect request -> handshake done;"
echo "# plan2con: the connector's plan line -> connected event; wall: start of natpeer connect -> connected (NAT tests, registration: v6 both families)"
