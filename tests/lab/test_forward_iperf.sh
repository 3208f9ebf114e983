#!/usr/bin/env bash
# test_forward_iperf.sh NATPEER NATBROKER: a real iperf3 (UDP and TCP)
# through natpeer's --forward/--expose, beside the same iperf3 run without
# natpeer (docs/forwarding.md; the figures are tests/bench/forward.sh's job,
# this checks that it works and prints what it measured).
#
# natbroker runs on srv (coturn stopped). iperf3 needs both protocols on
# one port: its control connection is TCP even for a UDP test. Two pairs:
#  - direct: iperf3 -s and `natpeer listen` (--expose tcp: and udp:
#    127.0.0.1:5201) on pub, `natpeer connect` on fc (--forward tcp: and
#    udp:15201=5201). fc reaches pub without natpeer too, so each run is
#    made both ways: iperf3 -c PUB (direct) and iperf3 -c 127.0.0.1 -p 15201
#    (through natpeer); UDP with 1200-byte datagrams at 50 Mbit/s, TCP at
#    full speed, 2 s each. Through natpeer: the run completes, TCP moves
#    data, UDP loses under 5 % of its datagrams;
#  - relayed: the same through the relay (sym -> sym2, two symmetric NATs;
#    no direct baseline exists there).
# Needs root (exit 77 otherwise) and iperf3.
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbfi}
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_forward_iperf.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_forward_iperf.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
PY=/usr/bin/python3
REG_WAIT=30 CONN_WAIT=40 SECS=2

lab_init 200
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
for t in iperf3 "$PY"; do
    command -v "$t" >/dev/null 2>&1 || { lab_fail "missing $t (apt-get install iperf3 python3)"; lab_summary; exit 1; }
done
lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'
NBLOG=$LAB_TMP/natbroker.log
lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen "$SRV2"
lab_check "natbroker is up" lab_wait 5 eval 'lab_udp_bound srv 3478 && lab_udp_bound srv 3479'

registered() {
    timeout 10 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" \
        "$NP" peers --broker "$SRV1" --json 2>/dev/null | grep -q "\"id\":\"$1\""
}
# iperf3's JSON -> one line "Mbit/s lost% packets" (UDP) or "Mbit/s" (TCP)
cat >"$LAB_TMP/iperf.py" <<'EOF'
import json, sys
try:
    j = json.load(open(sys.argv[2]))
except Exception as e:
    sys.exit("no JSON from iperf3: %s" % e)
if "error" in j:
    sys.exit("iperf3: " + j["error"])
e = j["end"]
if sys.argv[1] == "udp":
    s = e.get("sum_received") or e["sum"]
    print("%.1f %.2f %d" % (s["bits_per_second"] / 1e6, s.get("lost_percent", 0), s["packets"]))
else:
    print("%.1f" % (e["sum_received"]["bits_per_second"] / 1e6))
EOF
# run NODE udp|tcp HOST PORT TAG: iperf3 -c, its figures in $LAB_TMP/fig-TAG
run() {
    local node=$1 mode=$2 host=$3 port=$4 tag=$5 args=()
    [ "$mode" = udp ] && args=(-u -b 50M -l 1200)
    lab_exec "$node" timeout $((SECS + 15)) iperf3 -c "$host" -p "$port" -t "$SECS" -J "${args[@]}" \
        >"$LAB_TMP/iperf-$tag.json" 2>&1
    "$PY" "$LAB_TMP/iperf.py" "$mode" "$LAB_TMP/iperf-$tag.json" >"$LAB_TMP/fig-$tag" 2>&1
}
udp_ok() { # TAG: the run completed and lost under 5 %
    awk '{ exit !($1 > 0 && $2 < 5) }' "$LAB_TMP/fig-$1" 2>/dev/null
}
tcp_ok() { awk '{ exit !($1 > 0) }' "$LAB_TMP/fig-$1" 2>/dev/null; }
fig() { cat "$LAB_TMP/fig-$1" 2>/dev/null | head -n 1; }

# pair NAME LNODE CNODE WANT_PATH DIRECT_HOST ("" = no direct baseline)
pair() {
    local name=$1 ln=$2 cn=$3 want=$4 direct=$5 L C lpid cpid out path
    L=ip-$name-l C=ip-$name-c
    lab_flush
    lab_start "$ln" "$LAB_TMP/iperf-s-$ln.log" iperf3 -s -p 5201
    lab_check "$name: iperf3 -s up on $ln" lab_wait_tcp "$ln" 5201 5
    lab_spawn "$ln" /dev/null "$LAB_TMP/out-$L" "$LAB_TMP/err-$L" \
        "$NP" listen --id "$L" --broker "$SRV1" --json --expose tcp:127.0.0.1:5201 --expose udp:127.0.0.1:5201
    lpid=$LAB_LAST_PID
    if ! lab_wait "$REG_WAIT" registered "$L"; then
        lab_fail "$name: listener $L did not register" "$(tail -n 5 "$LAB_TMP/err-$L")"
        lab_stop "$lpid"; return
    fi
    out=$LAB_TMP/out-$C
    lab_spawn "$cn" /dev/null "$out" "$LAB_TMP/err-$C" \
        "$NP" connect --id "$C" --broker "$SRV1" --json --forward tcp:15201=5201 --forward udp:15201=5201 "$L"
    cpid=$LAB_LAST_PID
    if lab_wait "$CONN_WAIT" grep -qs '"event":"connected"' "$out"; then
        path=$(sed -n 's/.*"event":"connected".*"path":"\([a-z]*\)".*/\1/p' "$out" | head -n 1)
        lab_check "$name: $cn -> $ln connected, path $path (want $want)" test "$path" = "$want"
    else
        lab_fail "$name: $cn -> $ln: no connection" "$(tail -n 5 "$out" "$LAB_TMP/err-$C")"
        lab_stop "$cpid" "$lpid"; return
    fi
    lab_check "$name: both forward ports bound" eval 'lab_tcp_bound '"$cn"' 15201 && lab_udp_bound '"$cn"' 15201'
    if [ -n "$direct" ]; then
        run "$cn" udp "$direct" 5201 "$name-udp-direct"
        run "$cn" tcp "$direct" 5201 "$name-tcp-direct"
    fi
    run "$cn" udp 127.0.0.1 15201 "$name-udp-fwd"
    lab_check "$name: iperf3 UDP (1200-byte datagrams, 50 Mbit/s) through natpeer: Mbit/s lost% datagrams = $(fig "$name-udp-fwd")$([ -n "$direct" ] && echo "; without natpeer: $(fig "$name-udp-direct")")" \
        udp_ok "$name-udp-fwd"
    run "$cn" tcp 127.0.0.1 15201 "$name-tcp-fwd"
    lab_check "$name: iperf3 TCP through natpeer: $(fig "$name-tcp-fwd") Mbit/s$([ -n "$direct" ] && echo "; without natpeer: $(fig "$name-tcp-direct") Mbit/s")" \
        tcp_ok "$name-tcp-fwd"
    lab_check "$name: the connector is still up" test -d "/proc/$cpid"
    lab_stop "$cpid" "$lpid"
}

pair direct pub fc direct "$(lab_addr pub)"
pair relayed sym2 sym relay ""

[ "$LAB_FAIL" -eq 0 ] || {
    for f in "$LAB_TMP"/err-* "$LAB_TMP"/fig-*; do echo "# $f:"; tail -n 15 "$f" | sed 's/^/#   /'; done
    echo "# natbroker log:"; tail -n 20 "$NBLOG" | sed 's/^/#   /'
}
lab_summary
