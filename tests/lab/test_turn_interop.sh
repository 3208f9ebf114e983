#!/usr/bin/env bash
# test_turn_interop.sh NATBROKER: coturn's own TURN client relays through
# natbroker's TURN server exactly as it does through coturn's, in the same run.
#
# On `srv` (203.0.113.10), first coturn as a TURN server (REST credentials:
# --use-auth-secret, realm "natbroker", relay ports 49152-49999), then
# natbroker with --turn-secret/--realm/--relay-ports on the same address and
# port (3478, UDP and TCP). `turnutils_peer` (a UDP echo) runs on `pub`
# (203.0.113.20:3480). For each server the same cases run, each with
# conntrack flushed first and a bounded `timeout`:
#   fc  (full cone)       UDP + channels, UDP + Send indications,
#                         TCP + channels, TCP + Send indications,
#                         UDP RTP/RTCP pair (EVEN-PORT + RESERVATION-TOKEN)
#   prc (port-restricted) UDP + channels, TCP + channels
#   blk (UDP blocked)     TCP + channels, TCP + Send indications; over UDP it
#                         gets no allocation (proves the TCP cases use TCP)
#   fc, wrong secret      the allocation is refused
# A case passes when turnutils_uclient exits 0, its relayed address is
# 203.0.113.10 with a port in 49152-49999, it sent every message
# (MSGS per allocation, 1200 bytes each) and got every one back from the
# peer through the relay, "Total lost packets 0". Every failure is named
# "coturn: ..." or "natbroker: ...", so a coturn failure means the lab or
# the client, a natbroker-only failure means us.
# Needs root (exit 77 otherwise). TURN_MSGS=N changes the message count.
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbt}
. "$(dirname "$0")/lib.sh"

NB=${1:?usage: test_turn_interop.sh PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
PORT=3478
PEER=203.0.113.20
PEER_PORT=3480
REALM=natbroker
RELAY_LO=49152
RELAY_HI=49999
MSGS=${TURN_MSGS:-50}
LEN=1200
USER_NAME=nbtest
SECRET=
declare -A OKS BADS   # per server: cases passed / failed

lab_init 420
[ -x "$NB" ] || { lab_fail "natbroker binary $NB is not executable"; lab_summary; exit 1; }
for t in turnutils_uclient turnutils_peer turnserver; do
    command -v "$t" >/dev/null || { lab_fail "$t missing (package coturn)"; lab_summary; exit 1; }
done
SECRET=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')

# ---------------------------------------------------------------- cases
# count SERVER ok|bad NAME [DETAIL]: a case result, named after its server
count() {
    local server=$1 res=$2 name=$3
    shift 3
    if [ "$res" = ok ]; then
        OKS[$server]=$((${OKS[$server]:-0} + 1))
        lab_pass "$server: $name"
    else
        BADS[$server]=$((${BADS[$server]:-0} + 1))
        lab_fail "$server: $name" "$@"
    fi
}

# uclient SERVER HOST TAG ALLOCS FLAGS...: one turnutils_uclient run from HOST
# (conntrack flushed first); checks its exit code, relayed addresses and counts
uclient() {
    local server=$1 host=$2 tag=$3 allocs=$4
    shift 4
    local f=$LAB_TMP/$server-$host-$tag.log rc=0 want=$((MSGS * allocs)) why=""
    local sent recv lost relays bad_relays
    lab_flush
    lab_exec "$host" timeout 40 turnutils_uclient -v -W "$SECRET" -u "$USER_NAME" \
        -e "$PEER" -r "$PEER_PORT" -n "$MSGS" -m 1 -l "$LEN" -p "$PORT" "$@" "$SRV1" \
        >"$f" 2>&1 || rc=$?
    # the last summary line: "N: : start_mclient: tot_send_msgs=50, tot_recv_msgs=50"
    read -r sent recv < <(sed -n 's/.*start_mclient: tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\)$/\1 \2/p' "$f" | tail -n 1)
    lost=$(sed -n 's/.*Total lost packets \([0-9]*\) .*/\1/p' "$f" | tail -n 1)
    # "IPv4. Received relay addr: 203.0.113.10:49388"
    relays=$(sed -n 's/.*Received relay addr: \([0-9.]*:[0-9]*\).*/\1/p' "$f" | sort -u | paste -sd' ')
    bad_relays=$(for r in $relays; do
        p=${r##*:}
        [ "${r%:*}" = "$SRV1" ] && [ "$p" -ge "$RELAY_LO" ] && [ "$p" -le "$RELAY_HI" ] || echo "$r"
    done | paste -sd' ')
    [ "$rc" = 0 ] || why+="exit $rc; "
    [ "$(wc -w <<<"$relays")" -ge "$allocs" ] || why+="$allocs relayed address(es) wanted, got '${relays}'; "
    [ -z "$bad_relays" ] || why+="relayed address outside $SRV1:$RELAY_LO-$RELAY_HI: $bad_relays; "
    [ "${sent:-0}" = "$want" ] || why+="sent ${sent:-none} of $want; "
    [ -n "${recv:-}" ] && [ "${recv:-0}" = "${sent:-x}" ] || why+="received ${recv:-none} of ${sent:-none}; "
    [ "${lost:-x}" = 0 ] || why+="lost ${lost:-unknown}; "
    if [ -z "$why" ]; then
        count "$server" ok "$host $tag: $recv/$sent messages of $LEN B relayed both ways, 0 lost (relay ${relays// /, })"
    else
        count "$server" bad "$host $tag: ${why%; }" "$(grep -vE 'start_mclient: msz=|^[0-9]+: : *$' "$f" | tail -n 15)"
    fi
}

# uclient_refused SERVER HOST TAG SECS FLAGS...: the client must NOT complete
# an allocation (wrong credentials, UDP from blk)
uclient_refused() {
    local server=$1 host=$2 tag=$3 secs=$4
    shift 4
    local f=$LAB_TMP/$server-$host-$tag.log rc=0
    lab_flush
    lab_exec "$host" timeout "$secs" turnutils_uclient -v -u "$USER_NAME" \
        -e "$PEER" -r "$PEER_PORT" -n 5 -m 1 -l "$LEN" -p "$PORT" "$@" "$SRV1" \
        >"$f" 2>&1 || rc=$?
    if [ "$rc" != 0 ] && ! grep -q 'Received relay addr' "$f"; then
        count "$server" ok "$host $tag: no allocation (exit $rc)"
    else
        count "$server" bad "$host $tag: got an allocation (exit $rc)" "$(tail -n 15 "$f")"
    fi
}

# run_cases SERVER: every case against the server now on srv
run_cases() {
    local s=$1
    uclient "$s" fc "udp channel" 1 -c
    uclient "$s" fc "udp send-indication" 1 -c -s
    uclient "$s" fc "tcp channel" 1 -c -t
    uclient "$s" fc "tcp send-indication" 1 -c -t -s
    uclient "$s" fc "udp rtp+rtcp pair (EVEN-PORT, RESERVATION-TOKEN)" 2
    uclient "$s" prc "udp channel" 1 -c
    uclient "$s" prc "tcp channel" 1 -c -t
    uclient "$s" blk "tcp channel" 1 -c -t
    uclient "$s" blk "tcp send-indication" 1 -c -t -s
    uclient_refused "$s" blk "udp (blocked)" 12 -c -W "$SECRET"
    uclient_refused "$s" fc "wrong secret" 20 -c -W "not-$SECRET"
}

# server_ready: UDP and TCP bound on srv:PORT
server_ready() { lab_udp_bound srv "$PORT" && lab_tcp_bound srv "$PORT"; }
# fail_all SERVER WHY: the server could not run; every case of it fails
fail_all() { count "$1" bad "no case ran: $2" "$(tail -n 20 "$3" 2>/dev/null)"; }

lab_up || { lab_fail "lab up"; lab_summary; exit 1; }

# the lab's STUN-only coturn frees srv's ports
"$NATLAB" stop-coturn
lab_check "lab's STUN-only coturn stopped: its ports are free" lab_wait 5 eval \
    '! lab_udp_bound srv 3478 && ! lab_tcp_bound srv 3478'

PEERLOG=$LAB_TMP/turnutils_peer.log
lab_start pub "$PEERLOG" turnutils_peer -L "$PEER" -p "$PEER_PORT"
PEER_PID=$LAB_LAST_PID
lab_check "turnutils_peer listens on $PEER:$PEER_PORT" lab_wait_udp pub "$PEER_PORT" 5

# ---- coturn, the reference TURN server
COLOG=$LAB_TMP/coturn.log
lab_start srv "$COLOG" turnserver -n --no-cli --no-tls --no-dtls \
    --use-auth-secret --static-auth-secret "$SECRET" --realm "$REALM" \
    --listening-ip "$SRV1" --relay-ip "$SRV1" --listening-port "$PORT" \
    --min-port "$RELAY_LO" --max-port "$RELAY_HI" \
    --log-file stdout --simple-log --pidfile "$LAB_TMP/turnserver.pid" --userdb "$LAB_TMP/turndb"
CO_PID=$LAB_LAST_PID
if lab_wait 10 server_ready; then
    lab_pass "coturn (TURN, REST secret) listens on $SRV1:$PORT udp+tcp"
    run_cases coturn
else
    fail_all coturn "coturn did not bind $SRV1:$PORT" "$COLOG"
fi
lab_stop "$CO_PID"
lab_check "coturn stopped: its ports are free" lab_wait 5 eval \
    '! lab_udp_bound srv 3478 && ! lab_tcp_bound srv 3478'

# ---- natbroker on the same address and port
NBLOG=$LAB_TMP/natbroker.log
NB_ARGS=(--public-list --listen "$SRV1" --listen "$SRV2" --log-level info
         --turn-secret "$SECRET" --realm "$REALM" --relay-ports "$RELAY_LO-$RELAY_HI")
lab_log "natbroker ${NB_ARGS[*]}"
lab_start srv "$NBLOG" "$NB" "${NB_ARGS[@]}"
NB_PID=$LAB_LAST_PID
if lab_wait 10 server_ready && [ -d "/proc/$NB_PID" ]; then
    lab_pass "natbroker listens on $SRV1:$PORT udp+tcp"
    run_cases natbroker
    kill -TERM "$NB_PID" 2>/dev/null
    if lab_wait 5 _lab_all_gone "$NB_PID"; then
        rc=0
        wait "$NB_PID" || rc=$?
        lab_check "natbroker exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0
    else
        lab_fail "natbroker still running 5 s after SIGTERM"
    fi
else
    fail_all natbroker "natbroker did not start or bind $SRV1:$PORT with its TURN flags" "$NBLOG"
fi
lab_stop "$NB_PID" "$PEER_PID"

for s in coturn natbroker; do
    lab_log "$s: ${OKS[$s]:-0} TURN cases passed, ${BADS[$s]:-0} failed"
done
if [ "${BADS[natbroker]:-0}" -gt 0 ]; then
    echo "# natbroker log (last 60 lines):"
    tail -n 60 "$NBLOG" | sed 's/^/#   /'
fi
if [ "${BADS[coturn]:-0}" -gt 0 ]; then
    echo "# coturn failed too: suspect the lab or the client, not natbroker. coturn log (last 40 lines):"
    tail -n 40 "$COLOG" | sed 's/^/#   /'
fi

lab_summary
