#!/usr/bin/env bash
# test_forward.sh NATPEER NATBROKER: UDP port forwarding through the peer
# path (docs/forwarding.md) with real programs nobody here wrote.
#
# natbroker runs on srv (coturn stopped). Two pairs:
#  - direct: `natpeer listen` on prc (port-restricted NAT) exposes a real
#    dnsmasq (udp:127.0.0.1:5353) and a UDP echo service
#    (udp:127.0.0.1:7777, tests/lab/udp_tool.py); `natpeer connect` on fc
#    forwards udp:15353=5353 and udp:17777=7777. In fc: `dig @127.0.0.1 -p
#    15353 fwd.lab +short` prints dnsmasq's answer, five times; datagrams
#    of 1200 and 1366 bytes (the limit) with every byte value come back
#    through the echo unchanged; one of 1367 bytes is refused (no reply;
#    said on stderr); a datagram
#    for a port the listener does not expose (udp:19999=9999) is dropped
#    and said, and the listener still serves afterwards; stdin lines still
#    reach the listener (kind 0x00); a second --forward on a port in use
#    exits 1 with the reason; connect stays up after stdin EOF and exits 0
#    on SIGTERM.
#  - relayed: connector on sym, listener on sym2 (two symmetric NATs: the
#    broker plans the relay), dnsmasq and the echo exposed on sym2: the
#    same dig check and the 1200- and 1366-byte echoes through the relay.
# Needs root (exit 77 otherwise), dnsmasq (dnsmasq-base) and dig
# (bind9-dnsutils).
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbfw}
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_forward.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_forward.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
PY=/usr/bin/python3
TOOL=$LAB_DIR/udp_tool.py
ANSWER=198.51.100.77
REG_WAIT=30 CONN_WAIT=40

lab_init 300
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
for t in dnsmasq dig "$PY"; do
    command -v "$t" >/dev/null 2>&1 || {
        lab_fail "missing $t (apt-get install dnsmasq-base bind9-dnsutils python3)"; lab_summary; exit 1; }
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
# dnsmasq NODE: a real DNS server on 127.0.0.1:5353 in NODE, answering fwd.lab
dnsmasq_in() {
    lab_start "$1" "$LAB_TMP/dnsmasq-$1.log" dnsmasq --no-daemon --conf-file=/dev/null --no-resolv \
        --no-hosts --port=5353 --listen-address=127.0.0.1 --bind-interfaces \
        --address=/fwd.lab/$ANSWER --pid-file= --user=root --group=root
    lab_wait_udp "$1" 5353 5
}
dig_in() { # NODE PORT -> dig's short answer
    lab_exec "$1" dig @127.0.0.1 -p "$2" fwd.lab +short +time=2 +tries=2 2>&1
}
dig_ok() { [ "$(dig_in "$1" "$2")" = "$ANSWER" ]; }

# ---------------------------------------------------------------- direct pair
lab_flush
lab_check "prc: dnsmasq up on 127.0.0.1:5353" dnsmasq_in prc
lab_check "prc: dnsmasq answers there (no natpeer)" dig_ok prc 5353
lab_start prc "$LAB_TMP/echo.log" "$PY" "$TOOL" echo 127.0.0.1 7777
lab_check "prc: UDP echo up on 127.0.0.1:7777" lab_wait_udp prc 7777 5

L=fwd-l C=fwd-c
lab_fifo "in-$L"; lfd=$LAB_FIFO_FD
lab_spawn prc "$LAB_TMP/in-$L" "$LAB_TMP/out-$L" "$LAB_TMP/err-$L" \
    "$NP" listen --id "$L" --broker "$SRV1" --json \
    --expose udp:127.0.0.1:5353 --expose udp:localhost:7777
lpid=$LAB_LAST_PID
lab_check "listener says what it exposes" \
    lab_wait 5 grep -sqF "expose: udp 127.0.0.1:5353 (listen)" "$LAB_TMP/err-$L"
if ! lab_wait "$REG_WAIT" registered "$L"; then
    lab_fail "prc: listener $L did not register" "$(cat "$LAB_TMP/err-$L")"
fi
lab_fifo "in-$C"; cfd=$LAB_FIFO_FD
out=$LAB_TMP/out-$C err=$LAB_TMP/err-$C
lab_spawn fc "$LAB_TMP/in-$C" "$out" "$err" \
    "$NP" connect --id "$C" --broker "$SRV1" --json \
    --forward udp:15353=5353 --forward udp:127.0.0.1:17777=7777 --forward udp:19999=9999 "$L"
cpid=$LAB_LAST_PID
lab_check "fc: the forward port is bound before the connection" lab_wait_udp fc 15353 10
if lab_wait "$CONN_WAIT" grep -q '"event":"connected"' "$out"; then
    path=$(sed -n 's/.*"event":"connected".*"path":"\([a-z]*\)".*/\1/p' "$out" | head -n 1)
    lab_check "fc -> prc connected, path $path (want direct)" test "$path" = direct
else
    lab_fail "fc -> prc: no connection" "$(cat "$out" "$err")"
fi
lab_check "connector says where each forward goes" \
    lab_wait 5 grep -qF "forward: udp 127.0.0.1:15353 -> $L udp/5353" "$err"

ok=0
for i in 1 2 3 4 5; do dig_ok fc 15353 && ok=$((ok + 1)); done
lab_check "fc: dig @127.0.0.1 -p 15353 fwd.lab through natpeer: $ok of 5 answered $ANSWER" test "$ok" -eq 5

echo_ok() { # NODE LEN: a LEN-byte datagram with every byte value comes back unchanged
    "$PY" "$TOOL" pattern "$2" "$LAB_TMP/d$2"
    lab_exec "$1" "$PY" "$TOOL" send 127.0.0.1 17777 "$LAB_TMP/d$2" "$LAB_TMP/r$2-$1" 5 &&
        cmp -s "$LAB_TMP/d$2" "$LAB_TMP/r$2-$1"
}
lab_check "a 1200-byte datagram with every byte value comes back unchanged" echo_ok fc 1200
lab_check "a 1366-byte datagram (the limit) comes back unchanged" echo_ok fc 1366
"$PY" "$TOOL" pattern 1367 "$LAB_TMP/d1367"
lab_check "a 1367-byte datagram is refused (no reply within 1.5 s)" \
    eval '! lab_exec fc "$PY" "$TOOL" send 127.0.0.1 17777 "$LAB_TMP/d1367" "$LAB_TMP/r1367" 1.5'
lab_check "... and the connector says so (the 1366-byte limit)" \
    grep -qF "a datagram longer than 1366 bytes was dropped" "$err"

printf 'x' >"$LAB_TMP/d1"
lab_exec fc "$PY" "$TOOL" send 127.0.0.1 19999 "$LAB_TMP/d1" "$LAB_TMP/r1" 1 >/dev/null 2>&1
lab_check "a datagram for a port the listener does not expose is dropped and said" \
    lab_wait 5 grep -qF "udp port 9999, which is not exposed" "$LAB_TMP/err-$L"
lab_check "the listener is still running" test -d "/proc/$lpid"
lab_check "... and still serves: dig again" dig_ok fc 15353

echo "line-from-$C" >&"$cfd"
lab_check "stdin lines still reach the listener (kind 0x00) beside forwarding" \
    lab_wait 5 grep -qF "\"data\":\"$(printf '%s' "line-from-$C" | base64 -w0)\"" "$LAB_TMP/out-$L"

lab_exec fc timeout 20 "$NP" connect --id fwd-c2 --broker "$SRV1" --forward udp:15353 "$L" \
    </dev/null >/dev/null 2>"$LAB_TMP/err-busy"
rc=$?
lab_check "a --forward on a port in use exits 1 (got $rc) and says why" \
    eval '[ "$rc" -eq 1 ] && grep -qF "cannot bind" "$LAB_TMP/err-busy"'

exec {cfd}>&-   # EOF on stdin: with --forward, connect runs on
sleep 2
lab_check "connect --forward keeps running after stdin EOF" test -d "/proc/$cpid"
lab_check "... and dig still works" dig_ok fc 15353
lab_check_term "connect" "$cpid"
lab_check "the forward port is closed after exit" eval '! lab_udp_bound fc 15353'
lab_check_term "the listener (closing its flows)" "$lpid"
lab_stop "$cpid" "$lpid"
exec {lfd}>&- 2>/dev/null

# ---------------------------------------------------------------- relayed pair
lab_flush
lab_check "sym2: dnsmasq up on 127.0.0.1:5353" dnsmasq_in sym2
lab_start sym2 "$LAB_TMP/echo2.log" "$PY" "$TOOL" echo 127.0.0.1 7777
lab_check "sym2: UDP echo up on 127.0.0.1:7777" lab_wait_udp sym2 7777 5
L=fwd-rl C=fwd-rc
lab_fifo "in-$L"; lfd=$LAB_FIFO_FD
lab_spawn sym2 "$LAB_TMP/in-$L" "$LAB_TMP/out-$L" "$LAB_TMP/err-$L" \
    "$NP" listen --id "$L" --broker "$SRV1" --json --expose udp:127.0.0.1:5353 \
    --expose udp:127.0.0.1:7777
lpid=$LAB_LAST_PID
if ! lab_wait "$REG_WAIT" registered "$L"; then
    lab_fail "sym2: listener $L did not register" "$(cat "$LAB_TMP/err-$L")"
fi
lab_fifo "in-$C"; cfd=$LAB_FIFO_FD
out=$LAB_TMP/out-$C err=$LAB_TMP/err-$C
lab_spawn sym "$LAB_TMP/in-$C" "$out" "$err" \
    "$NP" connect --id "$C" --broker "$SRV1" --json --forward udp:15353=5353 \
    --forward udp:17777=7777 "$L"
cpid=$LAB_LAST_PID
if lab_wait "$CONN_WAIT" grep -q '"event":"connected"' "$out"; then
    path=$(sed -n 's/.*"event":"connected".*"path":"\([a-z]*\)".*/\1/p' "$out" | head -n 1)
    lab_check "sym -> sym2 connected, path $path (want relay)" test "$path" = relay
else
    lab_fail "sym -> sym2: no connection" "$(cat "$out" "$err")"
fi
lab_check "connector says where the forward goes" \
    lab_wait 5 grep -qF "forward: udp 127.0.0.1:15353 -> $L udp/5353" "$err"
ok=0
for i in 1 2 3 4 5; do dig_ok sym 15353 && ok=$((ok + 1)); done
lab_check "sym: dig through the relay: $ok of 5 answered $ANSWER" test "$ok" -eq 5
lab_check "through the relay: a 1200-byte datagram with every byte value comes back unchanged" \
    echo_ok sym 1200
lab_check "through the relay: a 1366-byte datagram comes back unchanged" echo_ok sym 1366
kill -TERM "$cpid" 2>/dev/null
lab_wait 5 _lab_all_gone "$cpid" || true
lab_stop "$cpid" "$lpid"
exec {cfd}>&- {lfd}>&- 2>/dev/null

[ "$LAB_FAIL" -eq 0 ] || {
    for f in "$LAB_TMP"/err-*; do echo "# $f:"; tail -n 15 "$f" | sed 's/^/#   /'; done
    echo "# natbroker log:"; tail -n 20 "$NBLOG" | sed 's/^/#   /'
}
lab_summary
