#!/usr/bin/env bash
# test_library.sh NATPEER NATBROKER: libnatpeer embedded in a program that
# is not natpeer, between lab hosts (issue 18, docs/library.md).
#
# The program is docs/examples/natpeer-echo.c, built by
# tests/layout/example_build.sh against the library INSTALLED (cmake --install)
# into a scratch prefix, through pkg-config: once on libnatpeer.so, once on
# libnatpeer.a. natbroker runs on srv (coturn stopped).
#  - direct: the shared build listens on prc (libuv mode); the static build
#    connects from fc in --pump mode (no libuv in the program: poll on
#    natpeer_pump_fd) and sends 200 binary datagrams, every byte value,
#    sizes up to NATPEER_MAX_DATAGRAM, one at a time with retransmission:
#    all 200 must come back byte for byte, the path direct;
#  - relayed: the static build listens on sym2 in --pump mode, the shared
#    build connects from sym (two symmetric NATs: the relay), 100 datagrams;
#  - the CLI talks to the library: `natpeer connect` (kind-0x00 pipe lines)
#    to the echo listener on prc gets its own line back;
#  - each listener exits 0 on SIGTERM.
# Needs root (exit 77 otherwise), cc and pkg-config.
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nblib}
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_library.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_library.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
REG_WAIT=30 RUN_WAIT=60

lab_init 240
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
BUILD=$(cd "$(dirname "$NP")/.." && pwd)
EX=$LAB_TMP/example
if ! "$LAB_DIR/../layout/example_build.sh" "$BUILD" "$EX" >"$LAB_TMP/example.log" 2>&1; then
    lab_fail "build natpeer-echo against the installed libnatpeer" "$(tail -n 10 "$LAB_TMP/example.log")"
    lab_summary; exit 1
fi
lab_pass "natpeer-echo built against the installed library, shared and static ($(sed -n 's/^example_build: natpeer \([^,]*\),.*/\1/p' "$LAB_TMP/example.log"))"
SHARED=$EX/natpeer-echo STATIC=$EX/natpeer-echo-static

lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'
NBLOG=$LAB_TMP/natbroker.log
lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen 203.0.113.11
lab_check "natbroker is up" lab_wait 5 eval 'lab_udp_bound srv 3478 && lab_udp_bound srv 3479'

registered() {
    timeout 10 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" \
        "$NP" peers --broker "$SRV1" --json 2>/dev/null | grep -q "\"id\":\"$1\""
}
# pair NAME LNODE LPROG LMODE CNODE CPROG CMODE COUNT WANT_PATH
pair() {
    local name=$1 ln=$2 lp=$3 lm=$4 cn=$5 cp=$6 cm=$7 count=$8 want=$9 L C lpid cpid rc out
    L=$name-l C=$name-c
    lab_flush
    lab_spawn "$ln" /dev/null "$LAB_TMP/out-$L" "$LAB_TMP/err-$L" \
        "$lp" --broker "$SRV1" --id "$L" --key "$LAB_TMP/key-$L" $lm listen
    lpid=$LAB_LAST_PID
    if ! lab_wait "$REG_WAIT" registered "$L"; then
        lab_fail "$name: listener $L on $ln did not register" "$(tail -n 5 "$LAB_TMP/err-$L")"
        lab_stop "$lpid"; return
    fi
    out=$LAB_TMP/out-$C
    lab_spawn "$cn" /dev/null "$out" "$LAB_TMP/err-$C" \
        "$cp" --broker "$SRV1" --id "$C" --key "$LAB_TMP/key-$C" $cm connect "$L" "$count"
    cpid=$LAB_LAST_PID
    if lab_wait "$RUN_WAIT" _lab_all_gone "$cpid"; then
        rc=0; wait "$cpid" || rc=$?
        lab_check "$name: $cn -> $ln: the program exits 0 (got $rc)" test "$rc" -eq 0
    else
        lab_fail "$name: $cn -> $ln: still running after ${RUN_WAIT} s" "$(tail -n 5 "$out" "$LAB_TMP/err-$C")"
    fi
    lab_check "$name: connected over path $want" grep -qE "^connected to $L .* path $want over IPv4" "$out"
    lab_check "$name: echo: $count of $count datagrams came back unchanged" \
        grep -qE "^echo: $count of $count datagrams \([0-9]+ bytes\) came back unchanged" "$out"
    lab_check "$name: the listener saw $C connect" lab_wait 5 grep -qF "connected to $C " "$LAB_TMP/out-$L"
    if [ "$name" = direct ]; then
        # the CLI against the library: a pipe line (kind 0x00) comes back as it went
        lab_exec fc timeout 30 "$NP" connect --id lib-cli --broker "$SRV1" --json "$L" \
            < <(echo "hello-from-the-cli"; sleep 3) >"$LAB_TMP/out-cli" 2>"$LAB_TMP/err-cli" || true
        lab_check "natpeer connect -> natpeer-echo: the line comes back" \
            grep -qF "\"data\":\"$(printf '%s' "hello-from-the-cli" | base64 -w0)\"" "$LAB_TMP/out-cli"
    fi
    lab_check_term "$name: the listener" "$lpid" 10
    lab_stop "$cpid" "$lpid"
}

pair direct prc "$SHARED" "" fc "$STATIC" --pump 200 direct
pair relayed sym2 "$STATIC" --pump sym "$SHARED" "" 100 relay

[ "$LAB_FAIL" -eq 0 ] || {
    for f in "$LAB_TMP"/err-*; do echo "# $f:"; tail -n 15 "$f" | sed 's/^/#   /'; done
    echo "# natbroker log:"; tail -n 20 "$NBLOG" | sed 's/^/#   /'
}
lab_summary
