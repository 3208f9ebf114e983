#!/usr/bin/env bash
# tests/bench/forward.sh - iperf3 through natpeer's port forwarding against
# iperf3 without it, on the same hosts in the same run (issue 18).
#
#   tests/bench/forward.sh [-t SECONDS] [-r REPS] [-d "DELAYS"] [-b BUILD_DIR]
#
# For each delay in DELAYS (default "0 10ms": NATLAB_DELAY is the one-way
# delay per crossing of the lab's internet bridge, so 10ms gives a 20 ms
# round trip; the measured ping RTT is printed), it brings up its own lab
# (NATLAB_PREFIX=nbfwb), runs natbroker on srv and a real iperf3 server on
# pub (port 5201, every address), then:
#   - natpeer listen on pub --expose tcp:127.0.0.1:5201 --expose
#     udp:127.0.0.1:5201;
#   - natpeer connect on fc (a full-cone NAT: pub is reachable from it
#     without natpeer) --forward tcp:15201=5201 --forward udp:15201=5201;
#     the path must be direct;
#   - REPS rounds (default 3), each: iperf3 UDP (-u -b 0 -l 1200, so
#     1200-byte datagrams as fast as the sender can) direct to pub:5201,
#     the same to 127.0.0.1:15201 (through natpeer), then iperf3 TCP the
#     same two ways; -t SECONDS each (default 5). conntrack is flushed
#     only before the pair connects (flushing would cut the path).
# UDP figure: datagrams the server received per second (packets - lost) /
# seconds. TCP figure: the receiver's bits per second. Ratios are natpeer /
# direct of the medians. CPU: user + system seconds of both natpeer
# processes over each forwarded run (/proc/PID/stat), per gigabit moved.
# Goals (issue 18): UDP >= 0.7 x direct packets/s at 1200 bytes; TCP >=
# 0.5 x direct at 20 ms RTT. Needs root and iperf3. Not a test: it prints
# figures, and the verdict of each goal.
#
# Binaries: -b BUILD_DIR (BUILD_DIR/peer/natpeer, BUILD_DIR/broker/natbroker),
# or NATPEER=... NATBROKER=... in the environment; default: build
# RelWithDebInfo into build/bench.
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=5 reps=3 delays="0 10ms" build=
while getopts "t:r:d:b:h" o; do
    case $o in
        t) secs=$OPTARG ;;
        r) reps=$OPTARG ;;
        d) delays=$OPTARG ;;
        b) build=$OPTARG ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 2 ;;
    esac
done
[[ $secs =~ ^[1-9][0-9]?$ ]] || { echo "forward: -t expects 1..99 seconds" >&2; exit 2; }
[[ $reps =~ ^[1-9]$ ]] || { echo "forward: -r expects 1..9" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "forward: needs root (network namespaces)" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "forward: needs iperf3 (apt-get install iperf3)" >&2; exit 1; }
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
for b in "$NP" "$NB"; do [ -x "$b" ] || { echo "forward: $b is not executable" >&2; exit 1; }; done
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbfwb}
unset NATLAB_LOSS NATLAB_V6
NATLAB=$top/tests/lab/natlab.sh
PY=/usr/bin/python3
SRV=203.0.113.10
A=fc B=pub   # connector, listener (and the iperf3 server)
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    "$NATLAB" down >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "-"; exit } print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# UDP datagrams the kernel dropped for full receive buffers, both hosts
rcvbuf_errors() {
    local n t=0
    for n in $A $B; do
        t=$((t + $("$NATLAB" exec $n cat /proc/net/snmp | awk '$1 == "Udp:" && $2 ~ /^[0-9]/ { print $6 }')))
    done
    echo "$t"
}
wait_for() { # tries cmd...: 0.1 s apart
    local n=$1; shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
# iperf3 JSON on stdin -> "pps bps" (UDP: received datagrams/s and bits/s) or "bps" (TCP)
cat >"$tmp/iperf.py" <<'EOF'
import json, sys
j = json.load(sys.stdin)
if "error" in j:
    sys.exit("iperf3: " + j["error"])
e = j["end"]
if sys.argv[1] == "udp":
    s = e.get("sum_received") or e["sum"]
    got = s["packets"] - s.get("lost_packets", 0)
    print("%.0f %.0f" % (got / s["seconds"], got * 1200 * 8 / s["seconds"]))
else:
    print("%.0f" % e["sum_received"]["bits_per_second"])
EOF
iperf() { # udp|tcp host port -> figures on stdout
    local mode=$1 host=$2 port=$3 args=()
    [ "$mode" = udp ] && args=(-u -b 0 -l 1200)
    "$NATLAB" exec $A timeout $((secs + 20)) iperf3 -c "$host" -p "$port" -t "$secs" -J "${args[@]}" \
        >"$tmp/iperf.json" 2>"$tmp/iperf.err" || true
    "$PY" "$tmp/iperf.py" "$mode" <"$tmp/iperf.json"
}

printf '| NATLAB_DELAY | ping RTT ms | what | direct | natpeer | natpeer/direct | natpeer CPU s/Gbit |\n'
printf '|---|---|---|---|---|---|---|\n'
verdicts=()
for delay in $delays; do
    [ "$delay" = 0 ] && unset NATLAB_DELAY || export NATLAB_DELAY=$delay
    "$NATLAB" down >/dev/null 2>&1 || true
    "$NATLAB" up >/dev/null 2>&1
    "$NATLAB" wait-ready 20 >/dev/null 2>&1
    "$NATLAB" stop-coturn >/dev/null 2>&1
    PUB=$("$NATLAB" addr $B)
    "$NATLAB" exec srv "$NB" --public-list --listen $SRV --listen 203.0.113.11 --log-level warn \
        2>"$tmp/nb.log" &
    pids+=($!)
    wait_for 100 sh -c "'$NATLAB' exec srv ss -Hlun 'sport = :3479' | grep -q ." ||
        { echo "forward: natbroker did not start" >&2; exit 1; }
    "$NATLAB" exec $B iperf3 -s -p 5201 >"$tmp/iperf-s.log" 2>&1 &
    pids+=($!)
    wait_for 50 sh -c "'$NATLAB' exec $B ss -Hltn 'sport = :5201' | grep -q ." ||
        { echo "forward: iperf3 -s did not start" >&2; exit 1; }
    rtt=$("$NATLAB" exec $A ping -n -q -c 10 -i 0.05 -W 2 "$PUB" 2>/dev/null |
        sed -n 's|.* = [0-9.]*/\([0-9.]*\)/.*|\1|p')
    "$NATLAB" flush
    "$NATLAB" exec $B "$NP" listen --id bench-l --broker $SRV --json --no-portmap \
        --expose tcp:127.0.0.1:5201 --expose udp:127.0.0.1:5201 </dev/null >"$tmp/l.out" 2>"$tmp/l.err" &
    lpid=$!; pids+=($lpid)
    wait_for 300 grep -q '^registered as' "$tmp/l.err" ||
        { echo "forward: the listener did not register: $(tail -n 5 "$tmp/l.err")" >&2; exit 1; }
    "$NATLAB" exec $A "$NP" connect --id bench-c --broker $SRV --json --no-portmap \
        --forward tcp:15201=5201 --forward udp:15201=5201 bench-l </dev/null >"$tmp/c.out" 2>"$tmp/c.err" &
    cpid=$!; pids+=($cpid)
    wait_for 300 grep -q '"event":"connected"' "$tmp/c.out" ||
        { echo "forward: no connection: $(tail -n 5 "$tmp/c.out" "$tmp/c.err")" >&2; exit 1; }
    grep -q '"path":"direct"' "$tmp/c.out" || { echo "forward: the path is not direct" >&2; exit 1; }
    # natpeer's pids in the namespaces: ip netns exec execs, so $! is natpeer
    : >"$tmp/notes" >"$tmp/udp-d" >"$tmp/udp-f" >"$tmp/tcp-d" >"$tmp/tcp-f" >"$tmp/cpu-udp" >"$tmp/cpu-tcp"
    hz=$(getconf CLK_TCK)
    for _ in $(seq "$reps"); do
        iperf udp "$PUB" 5201 | awk '{ print $1 }' >>"$tmp/udp-d"
        c0=$(($(cpu_ticks $lpid) + $(cpu_ticks $cpid))) e0=$(rcvbuf_errors)
        read -r pps bps < <(iperf udp 127.0.0.1 15201)
        c1=$(($(cpu_ticks $lpid) + $(cpu_ticks $cpid))) e1=$(rcvbuf_errors)
        echo "# UDP through natpeer: $pps datagrams/s; $((e1 - e0)) dropped by full UDP receive buffers" >>"$tmp/notes"
        echo "$pps" >>"$tmp/udp-f"
        awk -v c=$((c1 - c0)) -v hz="$hz" -v b="$bps" -v t="$secs" \
            'BEGIN { if (b > 0) printf "%.2f\n", c / hz / (b * t / 1e9) }' >>"$tmp/cpu-udp"
        iperf tcp "$PUB" 5201 >>"$tmp/tcp-d"
        c0=$(($(cpu_ticks $lpid) + $(cpu_ticks $cpid))) e0=$(rcvbuf_errors)
        bps=$(iperf tcp 127.0.0.1 15201)
        c1=$(($(cpu_ticks $lpid) + $(cpu_ticks $cpid))) e1=$(rcvbuf_errors)
        echo "# TCP through natpeer: $bps bit/s; $((e1 - e0)) UDP datagrams dropped by full receive buffers" >>"$tmp/notes"
        echo "$bps" >>"$tmp/tcp-f"
        awk -v c=$((c1 - c0)) -v hz="$hz" -v b="$bps" -v t="$secs" \
            'BEGIN { if (b > 0) printf "%.2f\n", c / hz / (b * t / 1e9) }' >>"$tmp/cpu-tcp"
    done
    [ -d "/proc/$cpid" ] || { echo "forward: natpeer connect died: $(tail -n 5 "$tmp/c.err")" >&2; exit 1; }
    ud=$(median <"$tmp/udp-d") uf=$(median <"$tmp/udp-f") td=$(median <"$tmp/tcp-d") tf=$(median <"$tmp/tcp-f")
    ur=$(awk -v a="$uf" -v b="$ud" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
    tr=$(awk -v a="$tf" -v b="$td" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
    printf '| %s | %s | UDP 1200 B, datagrams/s received | %s | %s | %s | %s |\n' "$delay" "${rtt:--}" \
        "$ud" "$uf" "$ur" "$(median <"$tmp/cpu-udp")"
    printf '| %s | %s | TCP, Mbit/s | %.0f | %.0f | %s | %s |\n' "$delay" "${rtt:--}" \
        "$(awk -v b="$td" 'BEGIN { print b / 1e6 }')" "$(awk -v b="$tf" 'BEGIN { print b / 1e6 }')" \
        "$tr" "$(median <"$tmp/cpu-tcp")"
    sed "s/^# /# $delay: /" "$tmp/notes"
    echo "# $delay: each run (direct | natpeer): UDP $(paste -sd, "$tmp/udp-d") | $(paste -sd, "$tmp/udp-f");" \
        "TCP $(paste -sd, "$tmp/tcp-d") | $(paste -sd, "$tmp/tcp-f")"
    verdicts+=("UDP at NATLAB_DELAY=$delay: $ur x direct (goal >= 0.7): $(awk -v r="$ur" 'BEGIN { print (r >= 0.7) ? "met" : "NOT met" }')")
    goal=
    [ "$delay" = 10ms ] &&
        goal=$(awk -v r="$tr" 'BEGIN { printf " (goal >= 0.5 at 20 ms RTT): %s", (r >= 0.5) ? "met" : "NOT met" }')
    verdicts+=("TCP at NATLAB_DELAY=$delay (RTT ${rtt:--} ms): $tr x direct$goal")
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
done
printf '# %s\n' "${verdicts[@]}"
