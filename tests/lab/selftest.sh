#!/usr/bin/env bash
# selftest.sh: check that the NAT lab behaves as documented (docs/lab.md):
# every NAT type classified by two third-party tools, unsolicited inbound,
# hairpinning, miniupnpd/NAT-PMP mappings and the double NAT, and the delay
# and loss options when set. Root only (exit 77 otherwise); < 3 min.
#
#   sudo tests/lab/selftest.sh               # prefix nlst
#   NATLAB_DELAY=20ms tests/lab/selftest.sh  # plus the delay case
set -uo pipefail
export LC_ALL=C
export NATLAB_PREFIX=${NATLAB_SELFTEST_PREFIX:-${NATLAB_PREFIX:-nlst}}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lab_init 170

SRV=203.0.113.10
PUB=203.0.113.20

# ------------------------------------------------------------------ bring up
if ! lab_up; then
    lab_fail "lab comes up and gets ready" "$("$NATLAB" status 2>&1)"
    lab_summary
    exit 1
fi
lab_pass "lab comes up and gets ready"
lab_check "status reports up and healthy" lab_quiet "$NATLAB" status

# ------------------------------------------------------------------ 1. classification
# host : natdiscovery mapping : natdiscovery filtering : `stun` verdict prefix
# ("-" = no verdict expected: UDP blocked)
EIM="Endpoint Independent Mapping"
APDM="Address and Port Dependent Mapping"
EIF="Endpoint Independent Filtering"
ADF="Address Dependent Filtering"
APDF="Address and Port Dependent Filtering"
CLASSES=(
    "pub|$EIM|$EIF|Open"
    "fc|$EIM|$EIF|Independent Mapping, Independent Filter"
    "rc|$EIM|$ADF|Independent Mapping, Address Dependent Filter"
    "prc|$EIM|$APDF|Independent Mapping, Port Dependent Filter"
    "sym|$APDM|$APDF|Dependent Mapping, random port"
    "sym2|$APDM|$APDF|Dependent Mapping, random port"
    "blk|-|-|Blocked or could not reach STUN server"
    "upnp|$EIM|$APDF|Independent Mapping, Port Dependent Filter"
    "lan1|$EIM|$APDF|Independent Mapping, Port Dependent Filter"
    "hp1|$EIM|$EIF|Independent Mapping, Independent Filter, preserves ports, will hairpin"
    "cgn|$EIM|$APDF|Independent Mapping, Port Dependent Filter"
    # hr filters on the remote IP alone (address-dependent, section 2b), but
    # both tools send to the alternate IP before their "change IP and port"
    # test, which opens the filter: they are fooled, and must stay fooled
    "hr|$EIM|$EIF|Independent Mapping, Independent Filter"
)

classify_host() { # host: both tools, one after the other, each bounded
    local h=$1 d=$LAB_TMP/class
    timeout 20 ip netns exec "$(lab_ns "$h")" env XDG_CONFIG_HOME="$(lab_xdg "$h")" turnutils_natdiscovery -m -f "$SRV" \
        >"$d/nd-$h.txt" 2>&1
    echo $? >"$d/nd-$h.rc"
    timeout 20 ip netns exec "$(lab_ns "$h")" env XDG_CONFIG_HOME="$(lab_xdg "$h")" stun "$SRV" >"$d/stun-$h.txt" 2>&1
    echo $? >"$d/stun-$h.rc"   # stun's exit code is its result bits, not an error
}

# class_problems HOST: empty when both tools gave the expected verdict
class_problems() {
    local h=$1 entry map filt verdict pubip d=$LAB_TMP/class nd st why="" ips
    for entry in "${CLASSES[@]}"; do
        [ "${entry%%|*}" = "$h" ] && IFS='|' read -r h map filt verdict <<<"$entry"
    done
    pubip=$(lab_public "$h")
    nd=$d/nd-$h.txt st=$d/stun-$h.txt
    if [ "$map" = - ]; then
        grep -q "STUN receive timeout" "$nd" || why+="natdiscovery: no timeout; "
        ! grep -q "^NAT with" "$nd" || why+="natdiscovery gave a verdict; "
    else
        [ "$(cat "$d/nd-$h.rc")" = 0 ] || why+="natdiscovery exit $(cat "$d/nd-$h.rc"); "
        grep -qx "NAT with $map!" "$nd" || why+="natdiscovery: no '$map'; "
        grep -qx "NAT with $filt!" "$nd" || why+="natdiscovery: no '$filt'; "
        ips=$(sed -n 's/.*UDP reflexive addr: \([0-9.]*\):.*/\1/p' "$nd" | sort -u | tr '\n' ' ')
        [ "$ips" = "$pubip " ] || why+="reflexive IPs '$ips', want $pubip; "
    fi
    grep -q "^Primary: $verdict" "$st" || why+="stun: want 'Primary: $verdict'; "
    echo "$why"
}

# classify HOST...: run both tools on every host at once (they sit behind
# different NATs), each tool bounded by timeout
classify() {
    local h p cpids=()
    lab_flush
    for h in "$@"; do classify_host "$h" & cpids+=($!); done
    for p in "${cpids[@]}"; do wait "$p"; done
}

mkdir -p "$LAB_TMP/class"
HOSTS=()
for entry in "${CLASSES[@]}"; do HOSTS+=("${entry%%|*}"); done
# Both tools are single-shot: under NATLAB_LOSS one lost datagram changes
# their verdict, so their verdicts are not asserted then (no retrying an
# assertion until it passes). Loss itself is measured further down.
if [ -n "${NATLAB_LOSS:-}" ]; then
    lab_log "NATLAB_LOSS=$NATLAB_LOSS: classification by the third-party tools is not asserted under loss"
else
    t0=$(lab_now_ms)
    classify "${HOSTS[@]}"
    lab_log "classification of ${#HOSTS[@]} hosts took $(($(lab_now_ms) - t0)) ms"
    for entry in "${CLASSES[@]}"; do
        IFS='|' read -r h map filt verdict <<<"$entry"
        why=$(class_problems "$h")
        if [ -z "$why" ]; then
            lab_pass "classify $h: natdiscovery [$map / $filt], stun [$verdict] (exit $(cat "$LAB_TMP/class/stun-$h.rc"))"
        else
            lab_fail "classify $h" "$why
$(grep -E '^NAT with|receive timeout|reflexive' "$LAB_TMP/class/nd-$h.txt" | head -8)
$(grep -E '^Primary|^Return' "$LAB_TMP/class/stun-$h.txt")"
        fi
    done
fi

# blk drops UDP only: TCP to srv goes through its NAT
lab_tcp_listen srv 48000 "$LAB_TMP/tcp.txt" || lab_fail "TCP listener on srv:48000"
tcp_pid=$LAB_LAST_PID
lab_tcp_send blk "$SRV" 48000 "blk-tcp"
if lab_wait 3 lab_udp_got "$LAB_TMP/tcp.txt" "blk-tcp" &&
   grep -q "^from $(lab_public blk):[0-9]* blk-tcp" "$LAB_TMP/tcp.txt"; then
    lab_pass "blk: TCP to srv:48000 works, NATed to $(lab_public blk)"
else
    lab_fail "blk: TCP to srv:48000" "$(cat "$LAB_TMP/tcp.txt")"
fi
lab_stop "$tcp_pid"

# ------------------------------------------------------------------ 2. unsolicited inbound
# pub -> each NAT's public address: reaches the host only through the full
# cone (fc) and the 1:1 hairpin NAT (hp1); then a control datagram from the
# router to the host's LAN address proves the listener was listening.
lab_flush
PORT=45000
INBOUND=(fc:yes hp1:yes rc:no prc:no sym:no sym2:no blk:no upnp:no lan1:no cgn:no hr:no)
lpids=()
for e in "${INBOUND[@]}"; do
    h=${e%%:*}
    lab_udp_listen "$h" $PORT "$LAB_TMP/in-$h.txt" || lab_fail "listener on $h:$PORT"
    lpids+=("$LAB_LAST_PID")
done
for e in "${INBOUND[@]}"; do
    h=${e%%:*} want=${e##*:}
    wan=$(lab_public "$h")
    if [ "$want" = yes ]; then
        lab_check "unsolicited pub -> $wan:$PORT reaches $h (endpoint-independent filter)" \
            lab_udp_reaches pub "$wan" $PORT "unsol-$h" "$LAB_TMP/in-$h.txt" 3
    else
        lab_check "unsolicited pub -> $wan:$PORT does not reach $h" \
            lab_udp_blocked pub "$wan" $PORT "unsol-$h" "$LAB_TMP/in-$h.txt"
    fi
done
for e in "${INBOUND[@]}"; do
    h=${e%%:*} want=${e##*:}
    [ "$want" = no ] || continue
    r=$("$NATLAB" router "$h")
    lab_check "control: $r -> $h:$PORT (LAN) reaches the listener" \
        lab_udp_reaches "$r" "$(lab_addr "$h")" $PORT "ctl-$h" "$LAB_TMP/in-$h.txt" 3
done
lab_stop "${lpids[@]}"

# ------------------------------------------------------------------ 2b. host-keyed filter
# r-hr admits any port of a remote IP that hr sent anything to, from any of
# its own ports: after hr -> pub:47009 from port 45001, pub reaches hr's port
# 45000 from another port; srv, never contacted, does not.
lab_flush
HR_PUB=$(lab_public hr)   # 203.0.113.112
lab_udp_listen hr 45000 "$LAB_TMP/hr.txt" || lab_fail "listener on hr:45000"
hr_pid=$LAB_LAST_PID
lab_udp_send hr "$PUB" 47009 "open-host" 45001
lab_check "host-keyed: after hr -> pub from port 45001, pub:47001 -> $HR_PUB:45000 reaches hr" \
    lab_udp_reaches pub "$HR_PUB" 45000 "hr-pub" "$LAB_TMP/hr.txt" 3 47001
lab_check "host-keyed: srv (never contacted) -> $HR_PUB:45000 does not reach hr" \
    lab_udp_blocked srv "$HR_PUB" 45000 "hr-srv" "$LAB_TMP/hr.txt"
lab_stop "$hr_pid"

# ------------------------------------------------------------------ 3. hairpin
lab_flush
HP2_PUB=$(lab_public hp2)   # 203.0.113.208
HP1_PUB=$(lab_public hp1)   # 203.0.113.108
lab_udp_listen hp2 46000 "$LAB_TMP/hp2.txt" || lab_fail "listener on hp2:46000"
hp_pid=$LAB_LAST_PID
if lab_udp_reaches hp1 "$HP2_PUB" 46000 "hairpin" "$LAB_TMP/hp2.txt" 3 41000; then
    if grep -q "^from $HP1_PUB:41000 hairpin" "$LAB_TMP/hp2.txt"; then
        lab_pass "hairpin: hp1 -> $HP2_PUB:46000 reaches hp2, from hp1's public $HP1_PUB:41000"
    else
        lab_fail "hairpin: source seen by hp2 is not $HP1_PUB:41000" "$(cat "$LAB_TMP/hp2.txt")"
    fi
else
    lab_fail "hairpin: hp1 -> $HP2_PUB:46000 reaches hp2"
fi
lab_stop "$hp_pid"

# lan2 gets a public mapping by sending to pub from port 47000; pub's answer
# through it arrives (control); lan1 sending to the same public address does not
lab_flush
LAN_PUB=$(lab_public lan2)  # 203.0.113.109
lab_udp_send lan2 "$PUB" 47001 "open-mapping" 47000
lab_udp_listen lan2 47000 "$LAB_TMP/lan2.txt" || lab_fail "listener on lan2:47000"
lan_pid=$LAB_LAST_PID
lab_check "control: pub:47001 -> lan2's mapping $LAN_PUB:47000 reaches lan2" \
    lab_udp_reaches pub "$LAN_PUB" 47000 "via-mapping" "$LAB_TMP/lan2.txt" 3 47001
lab_check "no hairpin: lan1 -> lan2's public mapping $LAN_PUB:47000 does not reach lan2" \
    lab_udp_blocked lan1 "$LAN_PUB" 47000 "lan1-hairpin" "$LAB_TMP/lan2.txt"
lab_check "lan1 -> lan2's LAN address $(lab_addr lan2):47000 reaches lan2" \
    lab_udp_reaches lan1 "$(lab_addr lan2)" 47000 "lan1-direct" "$LAB_TMP/lan2.txt" 3
lab_stop "$lan_pid"

# ------------------------------------------------------------------ 4. UPnP / NAT-PMP
lab_flush
UPNP_IP=$(lab_addr upnp)      # 192.168.6.2
UPNP_PUB=$(lab_public upnp)   # 203.0.113.106
lab_udp_listen upnp 40000 "$LAB_TMP/upnp.txt" || lab_fail "listener on upnp:40000"
up_pid=$LAB_LAST_PID
lab_check "before mapping: pub -> $UPNP_PUB:40000 does not reach upnp" \
    lab_udp_blocked pub "$UPNP_PUB" 40000 "pre-map" "$LAB_TMP/upnp.txt"
out=$(lab_exec upnp timeout 20 upnpc -i -a "$UPNP_IP" 40000 40000 UDP 2>&1)
if grep -q "external $UPNP_PUB:40000 UDP is redirected to internal $UPNP_IP:40000" <<<"$out"; then
    lab_pass "upnpc -i -a $UPNP_IP 40000 40000 UDP maps $UPNP_PUB:40000"
else
    lab_fail "upnpc -i -a maps 40000/UDP" "$(tail -4 <<<"$out")"
fi
lab_check "mapped: pub -> $UPNP_PUB:40000 reaches upnp" \
    lab_udp_reaches pub "$UPNP_PUB" 40000 "mapped" "$LAB_TMP/upnp.txt" 3
out=$(lab_exec upnp timeout 20 upnpc -i -d 40000 UDP 2>&1)
rc=$?
if [ $rc -eq 0 ] && ! grep -qi "failed" <<<"$out"; then
    lab_pass "upnpc -i -d 40000 UDP removes the mapping"
else
    lab_fail "upnpc -i -d 40000 UDP (exit $rc)" "$(tail -4 <<<"$out")"
fi
lab_flush   # conntrack outlives the deleted mapping (NOTES gotcha 2)
lab_check "after delete: pub -> $UPNP_PUB:40000 does not reach upnp" \
    lab_udp_blocked pub "$UPNP_PUB" 40000 "post-unmap" "$LAB_TMP/upnp.txt"
lab_stop "$up_pid"

lab_udp_listen upnp 41000 "$LAB_TMP/pmp.txt" || lab_fail "listener on upnp:41000"
pmp_pid=$LAB_LAST_PID
out=$(lab_exec upnp timeout 10 natpmpc -a 41000 41000 udp 120 2>&1)
if grep -q "Mapped public port 41000 protocol UDP to local port 41000" <<<"$out"; then
    lab_pass "natpmpc -a 41000 41000 udp 120 maps $UPNP_PUB:41000"
else
    lab_fail "natpmpc -a maps 41000/UDP" "$(tail -4 <<<"$out")"
fi
lab_check "NAT-PMP mapped: pub -> $UPNP_PUB:41000 reaches upnp" \
    lab_udp_reaches pub "$UPNP_PUB" 41000 "pmp-mapped" "$LAB_TMP/pmp.txt" 3
lab_exec upnp timeout 10 natpmpc -a 41000 41000 udp 0 >/dev/null 2>&1
lab_flush
lab_check "NAT-PMP lifetime 0 deletes: pub -> $UPNP_PUB:41000 does not reach upnp" \
    lab_udp_blocked pub "$UPNP_PUB" 41000 "pmp-unmapped" "$LAB_TMP/pmp.txt"
lab_stop "$pmp_pid"

CGN_IP=$(lab_addr cgn)
out=$(lab_exec cgn timeout 20 upnpc -i -a "$CGN_IP" 40000 40000 UDP 2>&1)
if grep -q "failed with code 501" <<<"$out" &&
   grep -q "ExternalIPAddress = $(lab_public cgn)" <<<"$out"; then
    lab_pass "double NAT: miniupnpd on r-cgn reports $(lab_public cgn) and refuses upnpc -a with 501"
else
    lab_fail "double NAT: upnpc -i -a refused with 501" "$(tail -4 <<<"$out")"
fi

# ------------------------------------------------------------------ 5. delay / loss
if [ -n "${NATLAB_DELAY:-}" ]; then
    d=$(lab_delay_ms)
    out=$(lab_exec fc timeout 20 ping -n -c 40 -i 0.05 "$SRV" 2>&1)
    med=$(sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' <<<"$out" | sort -n |
          awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    lo=$((2 * d)) hi=$((2 * d + 10))
    if [ -n "$med" ] && awk -v m="$med" -v lo=$lo -v hi=$hi 'BEGIN { exit !(m >= lo && m <= hi) }'; then
        lab_pass "delay: fc <-> srv ping RTT median ${med} ms, want [$lo, $hi] (2 x NATLAB_DELAY=$NATLAB_DELAY)"
    else
        lab_fail "delay: RTT median '${med}' ms not in [$lo, $hi]" "$(tail -2 <<<"$out")"
    fi
fi
if [ -n "${NATLAB_LOSS:-}" ]; then
    p=$(awk -v v="$NATLAB_LOSS" 'BEGIN { if (v ~ /%$/) { sub(/%$/, "", v); v /= 100 }; print v + 0 }')
    n=1000
    out=$(lab_exec fc timeout 60 ping -n -q -c $n -i 0.005 -W 2 "$SRV" 2>&1)
    got=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' <<<"$out")
    # a round trip crosses the internet bridge twice: success (1-p)^2; allow 5 sigma
    if awk -v g="${got:-0}" -v n=$n -v p="$p" 'BEGIN { q = (1 - p) ^ 2; e = n * q;
            s = sqrt(n * q * (1 - q)); if (s < 1) s = 1; exit !(g >= e - 5 * s && g <= e + 5 * s) }'; then
        lab_pass "loss: $got/$n round trips fc <-> srv with NATLAB_LOSS=$NATLAB_LOSS (expect ~$(awk -v n=$n -v p="$p" 'BEGIN { printf "%d", n * (1 - p) ^ 2 }'))"
    else
        lab_fail "loss: $got/$n round trips with NATLAB_LOSS=$NATLAB_LOSS" "$(tail -2 <<<"$out")"
    fi
fi

lab_summary
