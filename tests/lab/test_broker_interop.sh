#!/usr/bin/env bash
# test_broker_interop.sh NATBROKER: third-party STUN clients classify every
# lab NAT the same through natbroker as through coturn.
#
# On `srv` (203.0.113.10 and .11), first coturn (the lab's reference, up from
# `natlab.sh up`: miniupnpd needs it at start), then natbroker in RFC 5780
# mode on the same ports. From each host, `turnutils_natdiscovery -m -f` (RFC
# 5780) and `stun` (Debian's RFC 3489 client; its exit code is the result
# bits, not a failure) run against each server, with conntrack flushed before
# every run. Per host: the verdicts must be equal, and natbroker's must be
# the one the NAT was built to show. Needs root (exit 77 otherwise).
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbi}
. "$(dirname "$0")/lib.sh"

NB=${1:?usage: test_broker_interop.sh PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
HOSTS="pub fc rc prc sym sym2 blk upnp"

# What Debian's stun client says for each host (natdiscovery's words come from
# lab_expect_nd, over the one table in lib.sh).
declare -A WANT_STUN=(
    [pub]="Open"
    [fc]="Independent Mapping, Independent Filter"
    [rc]="Independent Mapping, Address Dependent Filter"
    [prc]="Independent Mapping, Port Dependent Filter"
    [sym]="Dependent Mapping"
    [sym2]="Dependent Mapping"
    [blk]="Blocked or could not reach STUN server"
    [upnp]="Independent Mapping, Port Dependent Filter"
)
declare -A ND STUN

lab_init 400
[ -x "$NB" ] || { lab_fail "natbroker binary $NB is not executable"; lab_summary; exit 1; }
command -v turnutils_natdiscovery >/dev/null || { lab_fail "turnutils_natdiscovery missing"; lab_summary; exit 1; }

# "NAT with X Mapping!" / "NAT with Y Filtering!" -> "X Mapping; Y Filtering"
nd_verdict() {
    local v
    v=$(sed -n 's/^NAT with \(.*\(Mapping\|Filtering\)\)!$/\1/p' "$1" | paste -sd';' | sed 's/;/; /g')
    echo "${v:-no verdict}"
}
# "Primary: ..." (trailing blanks cut) and the exit code
stun_verdict() {
    local v
    v=$(sed -n 's/^Primary: *//p' "$1" | sed 's/[[:space:]]*$//')
    echo "${v:-no verdict} (exit $2)"
}

# classify SERVER: run both clients from every host, fill ND/STUN[SERVER.host]
classify() {
    local server=$1 h f rc
    for h in $HOSTS; do
        f=$LAB_TMP/$server-$h
        lab_flush
        lab_exec "$h" timeout 40 turnutils_natdiscovery -m -f "$SRV1" >"$f.nd" 2>&1
        ND[$server.$h]=$(nd_verdict "$f.nd")
        lab_flush
        rc=0
        lab_exec "$h" timeout 40 stun "$SRV1" >"$f.stun" 2>&1 || rc=$?
        STUN[$server.$h]=$(stun_verdict "$f.stun" "$rc")
        lab_log "$server $h: natdiscovery: ${ND[$server.$h]} | stun: ${STUN[$server.$h]}"
    done
}

# A Binding request over UDP and over TCP from NODE gets an answer.
BINDING='\x00\x01\x00\x00\x21\x12\xa4\x42\x62\x72\x6f\x6b\x65\x72\x2d\x69\x6e\x74\x65\x72'
udp_answers() { # node ip port
    local n
    n=$(printf "$BINDING" | timeout 3 ip netns exec "$(lab_ns "$1")" env XDG_CONFIG_HOME="$(lab_xdg "$1")" \
        socat -T 1 - "UDP4:$2:$3" 2>/dev/null | wc -c)
    [ "$n" -ge 32 ]
}
tcp_answers() { # node ip port
    local n
    n=$(printf "$BINDING" | timeout 3 ip netns exec "$(lab_ns "$1")" env XDG_CONFIG_HOME="$(lab_xdg "$1")" \
        socat -T 1 - "TCP4:$2:$3" 2>/dev/null | wc -c)
    [ "$n" -ge 32 ]
}

lab_up || { lab_fail "lab up"; lab_summary; exit 1; }

# ---- coturn, the reference
classify coturn

# ---- natbroker on the same addresses and ports
"$NATLAB" stop-coturn
lab_check "coturn stopped: its ports are free" lab_wait 5 eval '! lab_udp_bound srv 3478'
NBLOG=$LAB_TMP/natbroker.log
lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen "$SRV2" --log-level info
NB_PID=$LAB_LAST_PID
lab_check "natbroker binds 2 IPs x 2 ports" lab_wait 5 eval \
    'lab_udp_bound srv 3478 && lab_udp_bound srv 3479 && lab_tcp_bound srv 3478 && lab_tcp_bound srv 3479'
lab_check "natbroker answers UDP Binding" lab_wait 5 udp_answers pub "$SRV1" 3478
for a in "$SRV1:3478" "$SRV1:3479" "$SRV2:3478" "$SRV2:3479"; do
    lab_check "natbroker logs 'listening on udp $a'" grep -qF "listening on udp $a" "$NBLOG"
    lab_check "natbroker answers TCP Binding on $a" tcp_answers pub "${a%:*}" "${a#*:}"
done
lab_check "natbroker answers TCP Binding from behind a NAT (prc)" tcp_answers prc "$SRV1" 3478

classify natbroker

for h in $HOSTS; do
    if [ "${ND[natbroker.$h]}" = "${ND[coturn.$h]}" ]; then
        lab_pass "$h: natdiscovery verdict same as coturn (${ND[natbroker.$h]})"
    else
        lab_fail "$h: natdiscovery verdict differs" \
            "natbroker: ${ND[natbroker.$h]}"$'\n'"coturn:    ${ND[coturn.$h]}"
    fi
    if [ "${ND[natbroker.$h]}" = "$(lab_expect_nd "$h")" ]; then
        lab_pass "$h: natdiscovery through natbroker says $(lab_expect_nd "$h")"
    else
        lab_fail "$h: natdiscovery through natbroker: want '$(lab_expect_nd "$h")'" \
            "$(cat "$LAB_TMP/natbroker-$h.nd")"
    fi
    if [ "${STUN[natbroker.$h]}" = "${STUN[coturn.$h]}" ]; then
        lab_pass "$h: stun verdict same as coturn (${STUN[natbroker.$h]})"
    else
        lab_fail "$h: stun verdict differs" \
            "natbroker: ${STUN[natbroker.$h]}"$'\n'"coturn:    ${STUN[coturn.$h]}"
    fi
    case ${STUN[natbroker.$h]} in
        "${WANT_STUN[$h]}"*) lab_pass "$h: stun through natbroker says ${WANT_STUN[$h]}" ;;
        *) lab_fail "$h: stun through natbroker: want '${WANT_STUN[$h]}...'" \
               "$(tail -n 12 "$LAB_TMP/natbroker-$h.stun")" ;;
    esac
done

# ---- clean stop
kill -TERM "$NB_PID" 2>/dev/null
if lab_wait 5 _lab_all_gone "$NB_PID"; then
    rc=0
    wait "$NB_PID" || rc=$?
    lab_check "natbroker exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0
else
    lab_fail "natbroker still running 5 s after SIGTERM"
fi
lab_check "natbroker logs its shutdown" grep -q "stopped" "$NBLOG"
[ "$LAB_FAIL" -eq 0 ] || { echo "# natbroker log:"; sed 's/^/#   /' "$NBLOG"; }

lab_summary
