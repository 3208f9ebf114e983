#!/usr/bin/env bash
# tests/bench/datachan_rate.sh - data-channel throughput in the lab: sealed
# 0xD3 frames vs plain UDP datagrams of the same size between the same two
# hosts, sender and receiver on one core each.
#
#   tests/bench/datachan_rate.sh [-r ROUNDS] [-s SECONDS] [-p "SENDER RECEIVER"] [-b BUILD_DIR]
#
# Brings up its own lab (NATLAB_PREFIX, default nbq; no delay, no loss) and
# runs tests/bench/datachan_rate.c: the receiver in RECEIVER's namespace
# pinned to core 1 (taskset -c 1), the sender in SENDER's pinned to core 0,
# to RECEIVER's public address. Default pair "pub srv": two hosts on the
# lab internet with no NAT between them, so each datagram crosses the
# internet bridge and nothing else; the kernel's per-packet work is the
# least of any pair, which makes the crypto's share the largest (the
# hardest case for the ratio). "pub fc" goes through r-fc's full-cone NAT
# (its DNAT of everything on wan0 is a port forward) as well.
# Each round runs plain then sealed (SECONDS each, default 3, plus 0.5 s of
# warm-up and tail), ROUNDS rounds (default 3), alternating. Datagrams are
# 1200 bytes both ways: plain = 1200-byte UDP payload, sealed = a 1171-byte
# payload in a 1200-byte frame (nb_dc_seal; 29 bytes of overhead); the
# receiver counts only frames that nb_dc_open verifies. Both sides use the
# same fixed keys (from a seed), no handshake: this measures the data path;
# tests/bench/handshake_rate.sh measures the handshake.
# Prints per round and median: received packets/s (what got through and
# verified), the sender's offered packets/s, CPU time per packet on each
# side (getrusage; the sender's includes the kernel's forwarding, which runs
# on its core; "filling" is the wall time spent writing or sealing the
# datagrams), and drops (sent - received; of which the receiver's socket
# buffer, 64 MiB, from Udp RcvbufErrors in its namespace); then the ratios
# sealed/plain (goal: received >= 0.7x), also per CPU time of each side
# (steadier on a busy machine). Needs root. Not a test: it prints
# figures and exits 0 unless something broke. Tears its lab down.
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/../.." && pwd)
rounds=3 secs=3 pair="pub srv" build=
while getopts "r:s:p:b:h" o; do
    case $o in
        r) rounds=$OPTARG ;;
        s) secs=$OPTARG ;;
        p) pair=$OPTARG ;;
        b) build=$OPTARG ;;
        *) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
for v in "$rounds" "$secs"; do
    [[ $v =~ ^[1-9][0-9]?$ ]] || { echo "datachan_rate: expected a number 1..99, got '$v'" >&2; exit 2; }
done
read -r tx rx extra <<<"$pair"
if [ -z "${rx:-}" ] || [ -n "${extra:-}" ] || [ "$tx" = "$rx" ]; then
    echo "datachan_rate: -p expects two different lab hosts, e.g. \"pub srv\"" >&2; exit 2
fi
[ "$(id -u)" -eq 0 ] || { echo "datachan_rate: needs root (network namespaces)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "datachan_rate: needs 2 cores (sender on 0, receiver on 1)" >&2; exit 1; }

if [ -z "$build" ]; then
    build=$top/build/bench
    echo "# building datachan_rate in $build (RelWithDebInfo)"
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNB_SANITIZE=OFF -DNB_BENCH=ON >/dev/null
    cmake --build "$build" -j"$(nproc)" --target datachan_rate >/dev/null
fi
DCR=$build/tests/bench/datachan_rate
[ -x "$DCR" ] || { echo "datachan_rate: missing $DCR" >&2; exit 1; }

export NATLAB_PREFIX=${NATLAB_PREFIX:-nbq}
unset NATLAB_DELAY NATLAB_LOSS
NATLAB=$top/tests/lab/natlab.sh
PORT=47000
tmp=$(mktemp -d /tmp/datachan_rate.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "${LAB_KEEP:-}" ] || "$NATLAB" down >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NATLAB_QUIET=1 "$NATLAB" down >/dev/null 2>&1 || true
NATLAB_QUIET=1 "$NATLAB" up >/dev/null || { echo "datachan_rate: lab up failed" >&2; exit 1; }
ns() { echo "$NATLAB_PREFIX-$1"; }
for h in "$tx" "$rx"; do
    ip netns list | grep -qw "$(ns "$h")" || { echo "datachan_rate: no lab host '$h'" >&2; exit 2; }
done
dst=$("$NATLAB" public "$rx")
[[ $dst =~ ^[0-9.]+$ ]] || { echo "datachan_rate: no public address for $rx" >&2; exit 1; }

# Udp RcvbufErrors in a host's namespace (/proc/net/snmp is per namespace)
rcvbuf_errors() { # shellcheck disable=SC2016 # awk's own $
    ip netns exec "$(ns "$1")" awk '$1 == "Udp:" { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1 }
        else print $c["RcvbufErrors"] }' /proc/net/snmp
}
kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

# one MODE ROUND: a receiver and a sender run; results in the r_* arrays
declare -A r_pps s_pps r_cpu s_cpu s_fill drops sockdrops
one() {
    local mode=$1 r=$2 flag=() e0 e1 rpid sout rout _ sent total
    [ "$mode" = sealed ] && flag=(--seal)
    e0=$(rcvbuf_errors "$rx")
    : >"$tmp/r.err"
    timeout $((secs + 30)) ip netns exec "$(ns "$rx")" taskset -c 1 \
        "$DCR" recv 0.0.0.0 "$PORT" -s "$secs" -w 10 -r $((64 << 20)) "${flag[@]}" \
        </dev/null >"$tmp/r.out" 2>"$tmp/r.err" &
    rpid=$!
    pids+=("$rpid")
    for _ in $(seq 100); do grep -q listening "$tmp/r.err" && break; sleep 0.05; done
    grep -q listening "$tmp/r.err" || { echo "datachan_rate: receiver did not start: $(cat "$tmp/r.err")" >&2; exit 1; }
    sout=$(timeout $((secs + 10)) ip netns exec "$(ns "$tx")" taskset -c 0 \
        "$DCR" send "$dst" "$PORT" -s "$secs" "${flag[@]}" </dev/null) ||
        { echo "datachan_rate: sender failed" >&2; exit 1; }
    wait "$rpid" || { echo "datachan_rate: receiver failed: $(cat "$tmp/r.err")" >&2; exit 1; }
    local keep=() q
    for q in "${pids[@]}"; do [ "$q" = "$rpid" ] || keep+=("$q"); done
    pids=("${keep[@]}")
    rout=$(cat "$tmp/r.out")
    e1=$(rcvbuf_errors "$rx")
    echo "$sout" >>"$tmp/all.log"; echo "$rout" >>"$tmp/all.log"
    sent=$(kv sent "$sout") total=$(kv total "$rout")
    r_pps[$mode.$r]=$(kv pps "$rout")
    s_pps[$mode.$r]=$(kv pps "$sout")
    r_cpu[$mode.$r]=$(kv cpu_ns_per_pkt "$rout")
    s_cpu[$mode.$r]=$(kv cpu_ns_per_pkt "$sout")
    s_fill[$mode.$r]=$(kv fill_ns_per_pkt "$sout")
    drops[$mode.$r]=$((sent - total))
    sockdrops[$mode.$r]=$((e1 - e0))
    printf '  %-6s received %7s pps (%6s Mbit/s payload, bad %s)  offered %7s pps  cpu/pkt: recv %5s ns, send %5s ns (filling %4s)  dropped %s of %s (socket buffer %s)\n' \
        "$mode" "${r_pps[$mode.$r]}" "$(kv payload_mbps "$rout")" "$(kv bad "$rout")" \
        "${s_pps[$mode.$r]}" "${r_cpu[$mode.$r]}" "${s_cpu[$mode.$r]}" "${s_fill[$mode.$r]}" \
        "${drops[$mode.$r]}" "$sent" "${sockdrops[$mode.$r]}"
}

median() { # ARRAY MODE
    local -n arr=$1
    local r
    for r in $(seq "$rounds"); do echo "${arr[$2.$r]}"; done | sort -n |
        awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.0f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

load=$(cut -d' ' -f1 /proc/loadavg)
echo "# data channel vs plain UDP, 1200-byte datagrams: $tx -> $rx ($dst:$PORT), lab $NATLAB_PREFIX"
echo "# sender on core 0, receiver on core 1; $rounds rounds x (plain, sealed) x $secs s; load average before: $load"
awk -v l="$load" 'BEGIN { exit !(l > 0.5) }' &&
    echo "# WARNING: the machine is busy (load $load): figures will be low and noisy"
for r in $(seq "$rounds"); do
    echo "round $r:"
    one plain "$r"
    one sealed "$r"
done

m_rp=$(median r_pps plain) m_rs=$(median r_pps sealed)
m_sp=$(median s_pps plain) m_ss=$(median s_pps sealed)
m_cp=$(median r_cpu plain) m_cs=$(median r_cpu sealed)
echo "median received pps: plain $m_rp, sealed $m_rs"
echo "median offered pps:  plain $m_sp, sealed $m_ss"
echo "median receiver cpu per packet: plain $m_cp ns, sealed $m_cs ns ($(printf %+d $((m_cs - m_cp))) ns: opening a frame)"
m_xp=$(median s_cpu plain) m_xs=$(median s_cpu sealed) m_fs=$(median s_fill sealed)
echo "median sender cpu per packet: plain $m_xp ns, sealed $m_xs ns ($(printf %+d $((m_xs - m_xp))) ns; nb_dc_seal's wall time $m_fs ns)"
awk -v a="$m_rs" -v b="$m_rp" 'BEGIN { printf "ratio sealed/plain, received (got through and verified) = %.2f (goal >= 0.7)\n", a / b }'
awk -v a="$m_ss" -v b="$m_sp" 'BEGIN { printf "ratio sealed/plain, offered by the sender             = %.2f\n", a / b }'
# Per CPU time: the rate each side could reach on a core of its own, which
# a busy machine (other processes on the same cores) disturbs much less.
awk -v a="$m_xp" -v b="$m_xs" -v c="$m_cp" -v d="$m_cs" 'BEGIN { printf "ratio sealed/plain, packets per cpu-second: sender %.2f, receiver %.2f\n", a / b, c / d }'
awk -v p="$m_rp" -v s="$m_rs" 'BEGIN { printf "payload Mbit/s at the median: plain %.0f (1200 B), sealed %.0f (1171 B): %.2f\n", p * 9600 / 1e6, s * 9368 / 1e6, s * 1171 / (p * 1200) }'
