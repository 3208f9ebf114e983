#!/usr/bin/env bash
# tests/bench/stun_rate.sh - STUN Binding answers per second on loopback, one
# core each: natbroker vs coturn vs a bare recvmmsg/sendmmsg responder
# (stun_bare.c), and the amplification factor of a plain Binding.
#
#   tests/bench/stun_rate.sh [-r ROUNDS] [-s SECONDS] [-w WINDOW] [-b BUILD_DIR]
#
# Each server runs pinned to core 0 (taskset -c 0), the load generator
# (stun_loadgen.c: a window of Binding requests with distinct transaction
# IDs kept in flight with sendmmsg/recvmmsg) pinned to core 1. The servers
# take turns within each round (ROUNDS x SECONDS each, default 3 x 5 s); the
# medians and the ratios natbroker/coturn and natbroker/bare are printed.
# Without -b it builds natbroker and the helpers into build/bench (the
# project's default RelWithDebInfo, without sanitizers).
# It starts its servers itself and stops exactly those, by PID; it stops by
# itself. Not a test: it prints figures and exits 0 unless something broke.
set -euo pipefail
export LC_ALL=C

top=$(cd "$(dirname "$0")/../.." && pwd)
rounds=3 secs=5 window=256 build=
while getopts "r:s:w:b:h" o; do
    case $o in
        r) rounds=$OPTARG ;;
        s) secs=$OPTARG ;;
        w) window=$OPTARG ;;
        b) build=$OPTARG ;;
        *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
for v in "$rounds" "$secs" "$window"; do
    [[ $v =~ ^[1-9][0-9]{0,3}$ ]] || { echo "stun_rate: expected a number, got '$v'" >&2; exit 2; }
done
[ "$(nproc)" -ge 2 ] || { echo "stun_rate: needs 2 cores (server on 0, load on 1)" >&2; exit 1; }
command -v turnserver >/dev/null || { echo "stun_rate: turnserver (coturn) is not installed" >&2; exit 1; }

if [ -z "$build" ]; then
    build=$top/build/bench
    echo "# building natbroker, stun_loadgen, stun_bare in $build (RelWithDebInfo)"
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNB_SANITIZE=OFF -DNB_BENCH=ON >/dev/null
    cmake --build "$build" -j"$(nproc)" --target natbroker stun_loadgen stun_bare >/dev/null
fi
NB=$build/broker/natbroker
LG=$build/tests/bench/stun_loadgen
BARE=$build/tests/bench/stun_bare
for b in "$NB" "$LG" "$BARE"; do [ -x "$b" ] || { echo "stun_rate: missing $b" >&2; exit 1; }; done

tmp=$(mktemp -d /tmp/stun_rate.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free UDP port pair on 127.0.0.1/127.0.0.2.
port_free() { ! ss -Hlun "( sport = :$1 or sport = :$(($1 + 1)) )" | grep -q .; }
port=34780
while ! port_free "$port"; do port=$((port + 2)); done

# start NAME CMD...: run CMD pinned to core 0; PID in $last
start() {
    local name=$1; shift
    taskset -c 0 "$@" </dev/null >>"$tmp/$name.log" 2>&1 &
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
# ready IP: the server at IP:$port answers (up to 5 s)
ready() {
    local _
    for _ in $(seq 25); do
        taskset -c 1 "$LG" "$1" "$port" -p >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

coturn_cmd() { # IPs...
    local args=() ip
    for ip in "$@"; do args+=(--listening-ip "$ip"); done
    echo turnserver -n --no-cli --no-tls --no-dtls --no-tcp --stun-only --no-auth \
        "${args[@]}" --listening-port "$port" --alt-listening-port $((port + 1)) \
        --relay-threads 1 --log-file stdout --simple-log \
        --pidfile "$tmp/turnserver.pid" --userdb "$tmp/turndb"
}
server_start() { # kind mode(single|5780)
    local ips=(127.0.0.1)
    [ "$2" = 5780 ] && ips=(127.0.0.1 127.0.0.2)
    case $1 in
        natbroker)
            local args=() ip
            for ip in "${ips[@]}"; do args+=(--listen "$ip"); done
            # --rate-limit 0: the load comes from one source by design
            start natbroker "$NB" "${args[@]}" --port "$port" --alt-port $((port + 1)) \
                --no-tcp --rate-limit 0 --log-level warn ;;
        coturn) # shellcheck disable=SC2046
            start coturn $(coturn_cmd "${ips[@]}") ;;
        bare) start bare "$BARE" 127.0.0.1 "$port" ;;
    esac
    ready 127.0.0.1 || { echo "stun_rate: $1 ($2) does not answer; log:" >&2; cat "$tmp/$1.log" >&2; exit 1; }
}

load=$(cut -d' ' -f1 /proc/loadavg)
echo "# STUN Binding answers/s on loopback: server on core 0, load generator on core 1"
echo "# $rounds rounds x $secs s per server, window $window, port $port; load average before: $load"
awk -v l="$load" 'BEGIN { exit !(l > 0.5) }' &&
    echo "# WARNING: the machine is busy (load $load): figures will be low and noisy"

# CPU time (all threads) of a process, in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

declare -A rate percpu
kinds="natbroker coturn bare"
for r in $(seq "$rounds"); do
    line="round $r:"
    for k in $kinds; do
        server_start "$k" single
        c0=$(cpu_ticks "$last")
        out=$(taskset -c 1 "$LG" 127.0.0.1 "$port" -d "$secs" -w "$window")
        c1=$(cpu_ticks "$last")
        stop "$last"
        v=$(sed -n 's/.*answers_per_sec=\([0-9]*\).*/\1/p' <<<"$out")
        n=$(sed -n 's/.* answered=\([0-9]*\).*/\1/p' <<<"$out")
        # shellcheck disable=SC2034 # read through the nameref in median()
        rate[$k.$r]=$v
        # answers per second of the server's own CPU time: the same figure
        # whether or not the load generator or a busy machine held it back
        percpu[$k.$r]=$(awk -v n="$n" -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN { printf "%.0f", t ? n * hz / t : 0 }')
        line+=$(printf ' %s %8s (%s per cpu-s)' "$k" "$v" "${percpu[$k.$r]}")
        echo "$out" >>"$tmp/loadgen.log"
    done
    echo "$line"
done

median() { # kind [array]
    local k=$1 r
    local -n arr=${2:-rate}
    for r in $(seq "$rounds"); do echo "${arr[$k.$r]}"; done | sort -n |
        awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.0f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
m_nb=$(median natbroker) m_co=$(median coturn) m_bare=$(median bare)
printf 'median answers/s: natbroker %s, coturn %s, bare %s\n' "$m_nb" "$m_co" "$m_bare"
awk -v a="$m_nb" -v b="$m_co" 'BEGIN { printf "ratio natbroker/coturn = %.2f (goal >= 1.5)\n", a / b }'
awk -v a="$m_nb" -v b="$m_bare" 'BEGIN { printf "ratio natbroker/bare   = %.2f (goal >= 0.8)\n", a / b }'
c_nb=$(median natbroker percpu) c_co=$(median coturn percpu) c_bare=$(median bare percpu)
printf 'median answers per server cpu-second: natbroker %s, coturn %s, bare %s\n' "$c_nb" "$c_co" "$c_bare"
awk -v a="$c_nb" -v b="$c_co" -v c="$c_bare" \
    'BEGIN { printf "per cpu-second: natbroker/coturn = %.2f, natbroker/bare = %.2f\n", a / b, a / c }'

# Amplification: response bytes / request bytes for a plain 20-byte Binding.
amp() { # kind mode
    local out n
    server_start "$1" "$2"
    out=$(taskset -c 1 "$LG" 127.0.0.1 "$port" -p)
    stop "$last"
    n=$(sed -n 's/.*response_bytes=\([0-9]*\).*/\1/p' <<<"$out")
    awk -v n="$n" 'BEGIN { printf "%3d B (%.2fx)", n, n / 20 }'
}
echo "amplification of a plain Binding (20-byte request):"
echo "  single address: natbroker $(amp natbroker single)   coturn $(amp coturn single)"
if ip -4 addr show dev lo | grep -q '127.0.0.1/8'; then
    echo "  RFC 5780 (127.0.0.1 + 127.0.0.2): natbroker $(amp natbroker 5780)   coturn $(amp coturn 5780)"
fi
