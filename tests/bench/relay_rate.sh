#!/usr/bin/env bash
# tests/bench/relay_rate.sh - TURN relay rate, one core each: ChannelData
# datagrams relayed per second by natbroker vs coturn (--relay-threads 1),
# 1200 bytes of data each, the same load generator for both.
#
#   tests/bench/relay_rate.sh [-r ROUNDS] [-s SECONDS] [-a ALLOCS] [-w WINDOW]
#                             [-l LEN] [-k "natbroker coturn"] [-b BUILD_DIR]
#
# Runs in a private network namespace of its own (root needed), with 203.0.113.10 (server), .20 (sink = the peer) and .30
# (client): natbroker never relays to loopback peers, and nothing is added to
# the root namespace. Each server runs pinned to core 0 (taskset -c 0) on
# 203.0.113.10:3478 with REST credentials (a random secret, realm natbroker,
# relay ports 49152-49999). The load generator (relay_loadgen.c), pinned to
# core 1, makes ALLOCS allocations (default 4), binds channel 0x4000 of each
# to its sink and keeps WINDOW datagrams in flight (default 1024); it counts
# what the sink receives. The servers take turns within each round (ROUNDS x
# SECONDS each, default 3 x 5 s); medians, the ratio natbroker/coturn, and
# the same per second of the server's own CPU time are printed.
# Without -b it builds natbroker and relay_loadgen into build/bench (the
# project's default RelWithDebInfo, without sanitizers). -k picks the
# servers (e.g. -k coturn). It stops exactly the processes it started and
# deletes its namespace. Not a test: it prints figures and exits 0 unless
# something broke (a server that relays nothing is broken).
set -euo pipefail
export LC_ALL=C

top=$(cd "$(dirname "$0")/../.." && pwd)
rounds=3 secs=5 allocs=4 window=1024 len=1200 kinds="natbroker coturn" build=
while getopts "r:s:a:w:l:k:b:h" o; do
    case $o in
        r) rounds=$OPTARG ;;
        s) secs=$OPTARG ;;
        a) allocs=$OPTARG ;;
        w) window=$OPTARG ;;
        l) len=$OPTARG ;;
        k) kinds=$OPTARG ;;
        b) build=$OPTARG ;;
        *) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
for v in "$rounds" "$secs" "$allocs" "$window" "$len"; do
    [[ $v =~ ^[1-9][0-9]{0,3}$ ]] || { echo "relay_rate: expected a number, got '$v'" >&2; exit 2; }
done
for k in $kinds; do
    case $k in natbroker | coturn) ;; *) echo "relay_rate: -k: natbroker and/or coturn" >&2; exit 2 ;; esac
done
[ "$(id -u)" = 0 ] || { echo "relay_rate: needs root (a network namespace of its own)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "relay_rate: needs 2 cores (server on 0, load on 1)" >&2; exit 1; }
command -v turnserver >/dev/null || { echo "relay_rate: turnserver (coturn) is not installed" >&2; exit 1; }

if [ -z "$build" ]; then
    build=$top/build/bench
    echo "# building natbroker, relay_loadgen in $build (RelWithDebInfo)"
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNB_SANITIZE=OFF -DNB_BENCH=ON >/dev/null
    cmake --build "$build" -j"$(nproc)" --target natbroker relay_loadgen >/dev/null
fi
NB=$build/broker/natbroker
LG=$build/tests/bench/relay_loadgen
need=("$LG")
case " $kinds " in *" natbroker "*) need+=("$NB") ;; esac
for b in "${need[@]}"; do [ -x "$b" ] || { echo "relay_rate: missing $b" >&2; exit 1; }; done

SRV=203.0.113.10 SINK=203.0.113.20 CLIENT=203.0.113.30 PORT=3478
REALM=natbroker RELAY_LO=49152 RELAY_HI=49999
SECRET=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
NS=nbrelay$$
tmp=$(mktemp -d /tmp/relay_rate.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS"
nsx() { ip netns exec "$NS" "$@"; }
nsx ip link set lo up
# the addresses sit on the namespace's lo: local traffic, but not loopback addresses
for a in $SRV $SINK $CLIENT; do nsx ip addr add "$a/32" dev lo; done

# start NAME CMD...: CMD in the namespace pinned to core 0; PID in $last
# (ip netns exec and taskset exec: the PID is the server's)
start() {
    local name=$1; shift
    ip netns exec "$NS" taskset -c 0 "$@" </dev/null >>"$tmp/$name.log" 2>&1 &
    last=$!
    pids+=("$last")
}
# stop PID: SIGTERM, wait up to 5 s, then SIGKILL
stop() {
    local p=$1 _
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 50); do [ -d "/proc/$p" ] || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    local keep=() q
    for q in "${pids[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
    pids=("${keep[@]}")
}
loadgen() { nsx taskset -c 1 timeout $((secs + 30)) "$LG" "$SRV" "$PORT" "$SECRET" "$SINK" -c "$CLIENT" "$@"; }
# ready: the server relays one datagram per allocation (up to 5 s)
ready() {
    local _
    for _ in $(seq 10); do
        [ -d "/proc/$last" ] || return 1
        loadgen -a "$allocs" -p >>"$tmp/probe.log" 2>&1 && return 0
        sleep 0.5
    done
    return 1
}

server_start() { # kind
    case $1 in
        natbroker)
            # --rate-limit 0: the load comes from one source by design
            start natbroker "$NB" --listen "$SRV" --port "$PORT" --rate-limit 0 --log-level warn \
                --turn-secret "$SECRET" --realm "$REALM" --relay-ports "$RELAY_LO-$RELAY_HI" ;;
        coturn)
            start coturn turnserver -n --no-cli --no-tls --no-dtls \
                --use-auth-secret --static-auth-secret "$SECRET" --realm "$REALM" \
                --listening-ip "$SRV" --relay-ip "$SRV" --listening-port "$PORT" \
                --min-port "$RELAY_LO" --max-port "$RELAY_HI" --relay-threads 1 \
                --log-file stdout --simple-log --pidfile "$tmp/turnserver.pid" --userdb "$tmp/turndb" ;;
    esac
    if ! ready; then
        echo "relay_rate: $1 relays nothing; its log:" >&2
        tail -n 20 "$tmp/$1.log" >&2
        echo "relay_rate: the load generator said:" >&2
        tail -n 3 "$tmp/probe.log" >&2
        exit 1
    fi
}

load=$(cut -d' ' -f1 /proc/loadavg)
echo "# TURN ChannelData relayed/s ($len B data) in a private netns: server on core 0, load generator on core 1"
echo "# $rounds rounds x $secs s per server, $allocs allocations, window $window; load average before: $load"
awk -v l="$load" 'BEGIN { exit !(l > 0.5) }' &&
    echo "# WARNING: the machine is busy (load $load): figures will be low and noisy"

# CPU time (all threads) of a process, in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

declare -A rate percpu
for r in $(seq "$rounds"); do
    line="round $r:"
    for k in $kinds; do
        server_start "$k"
        c0=$(cpu_ticks "$last")
        out=$(loadgen -a "$allocs" -w "$window" -l "$len" -d "$secs")
        c1=$(cpu_ticks "$last")
        stop "$last"
        v=$(sed -n 's/.*relayed_per_sec=\([0-9]*\).*/\1/p' <<<"$out")
        n=$(sed -n 's/^relayed=\([0-9]*\) .*/\1/p' <<<"$out")
        if [ -z "$v" ] || [ -z "$n" ]; then
            echo "relay_rate: no figures from the load generator: $out" >&2; exit 1
        fi
        # shellcheck disable=SC2034 # read through the nameref in median()
        rate[$k.$r]=$v
        # relayed per second of the server's own CPU time (it includes the
        # warm-up's share, so it slightly understates): the same figure
        # whether or not the load generator held the server back
        percpu[$k.$r]=$(awk -v n="$n" -v t=$((c1 - c0)) -v hz="$hz" -v s="$secs" \
            'BEGIN { printf "%.0f", t ? n * hz / t * (s + 0.5) / s : 0 }')
        line+=$(printf ' %s %8s/s (%s per cpu-s)' "$k" "$v" "${percpu[$k.$r]}")
        echo "$k: $out" >>"$tmp/loadgen.log"
    done
    echo "$line"
done

median() { # kind [array]
    local k=$1 r
    local -n arr=${2:-rate}
    for r in $(seq "$rounds"); do echo "${arr[$k.$r]}"; done | sort -n |
        awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.0f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
for k in $kinds; do
    printf 'median relayed/s: %-9s %8s  (%s per server cpu-second; %.0f Mbit/s of data)\n' "$k" \
        "$(median "$k")" "$(median "$k" percpu)" "$(awk -v p="$(median "$k")" -v l="$len" 'BEGIN { print p * l * 8 / 1e6 }')"
done
case " $kinds " in
    *" natbroker "*" coturn "* | *" coturn "*" natbroker "*)
        awk -v a="$(median natbroker)" -v b="$(median coturn)" \
            'BEGIN { printf "ratio natbroker/coturn = %.2f\n", a / b }'
        awk -v a="$(median natbroker percpu)" -v b="$(median coturn percpu)" \
            'BEGIN { printf "per cpu-second: natbroker/coturn = %.2f\n", a / b }' ;;
esac
