#!/usr/bin/env bash
# test_pcp6.sh NATPEER NATBROKER: `natpeer map udp PORT` over IPv6 opens a
# firewall pinhole (RFC 6887 MAP with an IPv6 internal address) in r-d6's
# stateful v6 firewall, through Debian's real miniupnpd 2.3.1 that natlab.sh
# runs there with NATLAB_V6=1 (docs/lab.md "IPv6", docs/portmap.md).
#
#  0. r-d6's miniupnpd listens on [::]:5351; over IPv4 nothing answers
#     PCP/NAT-PMP on 192.168.13.1:5351 (port unreachable), as before it ran.
#  A. map udp P1 --broker [2001:db8::10]:3478: the NAT-PMP and UPnP skip
#     lines, "mapped UDP P1 -> [d6]:P1 via pcp ..., verified by the broker"
#     (natbroker's probe from its other address came through the pinhole);
#     the pinhole is in r-d6's nft chain inet lab miniupnpd and in
#     miniupnpd's log; after SIGINT: "removed the mapping", exit 0, the rule
#     is gone, and a datagram from pub to d6:P1 is dropped.
#  B. a UDP listener on d6:P2: unsolicited datagrams from pub are dropped;
#     map udp P2 (natpeer cannot verify: the listener has the port, it says
#     so) opens the pinhole and pub's datagrams arrive; after SIGINT the
#     pinhole is deleted and they are dropped again.
#  C. `natpeer listen` on d6 opens a pinhole for its IPv6 socket once that
#     socket's NAT tests are done: C1 with the IPv6 broker (the main socket
#     is IPv6), C2 with a dual-stack natbroker reached over IPv4 (the second
#     family's socket; coturn is stopped for it). Each: the line "IPv6:
#     pinhole UDP [d6]:P via PCP (lifetime 7200 s), verified by the broker",
#     the rule in r-d6's chain, an unsolicited datagram from pub reaches the
#     agent's socket (its debug log: "... from [pub]:... dropped: not STUN,
#     control or data"); after SIGINT "IPv6: removing the pinhole...", exit
#     0, the rule is gone and pub's datagram to P is dropped again.
# Needs root (exit 77 otherwise).
set -uo pipefail
export LC_ALL=C
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbp6}
export NATLAB_V6=1
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NP=${1:?usage: test_pcp6.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_pcp6.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV6=2001:db8::10
SRV6B=2001:db8::11
SRV4=203.0.113.10
SRV4B=203.0.113.11
PUB6=2001:db8::20
D6=2001:db8:13::2
GW6=2001:db8:13::1
P1=40611
P2=40612

lab_init 240
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
T0=$(lab_now_ms)
lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
RUN=/run/natlab-$NATLAB_PREFIX
MLOG=$RUN/log/miniupnpd-r-d6.log

# natbroker on srv's IPv6 addresses only (coturn keeps the IPv4 ones)
lab_start srv "$LAB_TMP/natbroker.log" "$NB" --public-list --listen "$SRV6" --listen "$SRV6B"
NB_PID=$LAB_LAST_PID
lab_check "natbroker is up on [$SRV6]:3478 and [$SRV6B]:3478" \
    lab_wait 5 eval "lab_exec srv ss -Hlun | grep -qF '[$SRV6]:3478' && lab_exec srv ss -Hlun | grep -qF '[$SRV6B]:3478'"

udp6_listen() { # NODE PORT FILE
    : >"$3"
    lab_start "$1" "$LAB_TMP/socat.log" socat -u "UDP6-RECVFROM:$2,reuseaddr,fork" \
        "EXEC:$LAB_TMP/udprec $3"
    lab_wait_udp "$1" "$2" 5
}
udp6_send() { # NODE DST PORT MSG
    printf '%s' "$4" | timeout 3 ip netns exec "$(lab_ns "$1")" socat -u - "UDP6-SENDTO:[$2]:$3" 2>/dev/null
}
udp6_reaches() { # NODE DST PORT MSG FILE: within 3 s
    local end=$(($(lab_now_ms) + 3000))
    while :; do
        udp6_send "$1" "$2" "$3" "$4"
        lab_wait_ms 100 lab_udp_got "$5" "$4" && return 0
        [ "$(lab_now_ms)" -lt "$end" ] || return 1
    done
}
udp6_blocked() { # NODE DST PORT MSG FILE: 5 datagrams, none in 500 ms
    for _ in 1 2 3 4 5; do udp6_send "$1" "$2" "$3" "$4"; sleep 0.05; done
    sleep 0.3
    ! lab_udp_got "$5" "$4"
}
# the pinhole rule miniupnpd put in r-d6's forward path (nft prints the IPv6
# destination as a raw payload match: @nh,192,128 = 2001:db8:13::2)
# (the listing is read whole first: with pipefail, grep -q quitting early
# could fail the pipeline on nft's SIGPIPE)
pinhole_has() {
    local t
    t=$(lab_exec r-d6 nft list chain inet lab miniupnpd 2>/dev/null)
    grep -q "dport $1 .*0x20010db8001300000000000000000002" <<<"$t"
}
pinhole_lacks() { ! pinhole_has "$1"; }

# map PORT LOG: natpeer map udp PORT over IPv6 in d6, in the background
MAP_PID=
map_start() {
    : >"$2"
    lab_start d6 "$2" "$NP" map udp "$1" --broker "[$SRV6]:3478"
    MAP_PID=$LAB_LAST_PID
}
# map_int: SIGINT, as ^C would; MAP_RC its exit status (bounded: 5 s)
map_int() {
    kill -INT "$MAP_PID" 2>/dev/null
    if lab_wait 5 eval "[ ! -d /proc/$MAP_PID ]"; then
        wait "$MAP_PID" 2>/dev/null
        MAP_RC=$?
    else
        MAP_RC=timeout
        lab_stop "$MAP_PID"
    fi
}

# ------------------------------------------------------------------ 0.
lab_check "miniupnpd on r-d6 listens on [::]:5351" \
    eval "lab_exec r-d6 ss -Hlun | grep -qF '[::]:5351 '"
lab_exec d6 timeout 5 /usr/bin/python3 "$LAB_DIR/pcp_probe.py" --timeout 0.5 --tries 1 "192.168.13.1" pmp-addr \
    >"$LAB_TMP/v4probe" 2>&1
rc=$?
lab_check "over IPv4, 192.168.13.1:5351 is closed as before (port unreachable: exit 4, got $rc)" \
    eval "[ $rc = 4 ]"

# ------------------------------------------------------------------ A.
lab_flush
L=$LAB_TMP/map1.out
map_start "$P1" "$L"
lab_check "A: natpeer prints the mapping, verified by the broker" \
    lab_wait 10 grep -qF "mapped UDP $P1 -> [$D6]:$P1 via pcp (lease 7200 s), verified by the broker" "$L"
lab_log "natpeer: $(tr '\n' '|' <"$L")"
lab_check "A: NAT-PMP is skipped with a line (IPv4-only)" \
    grep -qF "nat-pmp: skipped: NAT-PMP is IPv4-only (RFC 6886)" "$L"
lab_check "A: UPnP is skipped with a line" grep -qF "upnp: skipped: IPv6 pinholes over UPnP" "$L"
lab_check "A: PCP went to the IPv6 default router [$GW6]:5351" \
    grep -qF "pcp: the gateway [$GW6]:5351 answers" "$L"
lab_check "A: r-d6's nft chain miniupnpd has the pinhole for [$D6]:$P1" pinhole_has "$P1"
lab_log "r-d6: $(lab_exec r-d6 nft list chain inet lab miniupnpd | grep dport)"
lab_check "A: miniupnpd logged the pinhole" \
    grep -qF "PCP MAP: added mapping UDP $P1->$D6:$P1" "$MLOG"
map_int
lab_check "A: after SIGINT natpeer removed the mapping and exited 0 (rc $MAP_RC)" \
    eval "[ '$MAP_RC' = 0 ] && grep -qF 'removed the mapping' '$L'"
lab_check "A: the pinhole is gone from r-d6" pinhole_lacks "$P1"
udp6_listen d6 "$P1" "$LAB_TMP/in-$P1" || lab_fail "A: a listener on d6:$P1"
lab_flush
lab_check "A: then a datagram from pub to [$D6]:$P1 is dropped" \
    udp6_blocked pub "$D6" "$P1" "after-$P1" "$LAB_TMP/in-$P1"

# ------------------------------------------------------------------ B.
F=$LAB_TMP/in-$P2
udp6_listen d6 "$P2" "$F" || lab_fail "B: a listener on d6:$P2"
lab_flush
lab_check "B: before the map, unsolicited UDP from pub to [$D6]:$P2 is dropped" \
    udp6_blocked pub "$D6" "$P2" "before-$P2" "$F"
L=$LAB_TMP/map2.out
map_start "$P2" "$L"
lab_check "B: natpeer maps it (not verified: the listener has the port, and it says so)" \
    lab_wait 10 grep -qE "^mapped UDP $P2 -> \[$D6\]:$P2 via pcp \(lease 7200 s\); verified: no \(UDP $P2 is in use" "$L"
lab_check "B: the pinhole is on r-d6" pinhole_has "$P2"
lab_check "B: now UDP from pub to [$D6]:$P2 arrives" udp6_reaches pub "$D6" "$P2" "during-$P2" "$F"
map_int
lab_check "B: after SIGINT natpeer exited 0 (rc $MAP_RC) and removed the mapping" \
    eval "[ '$MAP_RC' = 0 ] && grep -qF 'removed the mapping' '$L'"
lab_check "B: the pinhole is deleted" pinhole_lacks "$P2"
lab_check "B: miniupnpd logged the removal" grep -qF "PCP: UDP port" "$MLOG"
lab_flush
lab_check "B: UDP from pub to [$D6]:$P2 is dropped again" \
    udp6_blocked pub "$D6" "$P2" "after-$P2" "$F"

# ------------------------------------------------------------------ C.
# agent_heard_pub PORT MSG LOG: one datagram from pub to d6:PORT; has the
# agent (--log-level debug) logged one from pub? It drops what is not STUN,
# control or data, and says so.
agent_heard_pub() {
    udp6_send pub "$D6" "$1" "$2"
    grep -qE "[0-9]+ bytes from \[$PUB6\]:[0-9]+ dropped: not STUN, control or data" "$3"
}
# listen_pinhole TAG BROKER-ARGS...: natpeer listen on d6 and its pinhole
listen_pinhole() {
    local tag=$1 L=$LAB_TMP/listen-$1.err port msg
    shift
    lab_flush
    : >"$L"
    lab_start d6 "$L" "$NP" listen --id "d6-$tag" "$@" --log-level debug
    MAP_PID=$LAB_LAST_PID
    lab_check "$tag: listen prints its IPv6 pinhole, verified by the broker" \
        lab_wait 20 grep -qE "^IPv6: pinhole UDP \[$D6\]:[0-9]+ via PCP \(lifetime 7200 s\), verified by the broker" "$L"
    lab_log "natpeer: $(grep -E '^(IPv6|NAT|registered|portmap|pcp|nat-pmp|upnp)' "$L" | tr '\n' '|')"
    port=$(sed -n "s/^IPv6: pinhole UDP \[$D6\]:\([0-9]*\) via PCP.*/\1/p" "$L" | head -n 1)
    [ -n "$port" ] || { lab_fail "$tag: no pinhole port"; lab_stop "$MAP_PID"; return; }
    lab_check "$tag: the pinhole is for the agent's IPv6 socket, tested before it: APDF ($port)" \
        grep -qE "^NAT( \(IPv6\))?: none \(public address \[$D6\]:$port\), address-and-port-dependent filtering" "$L"
    if lab_wait 3 pinhole_has "$port"; then
        lab_pass "$tag: r-d6's nft chain has the pinhole for [$D6]:$port"
    else
        lab_fail "$tag: r-d6's nft chain has the pinhole for [$D6]:$port" \
            "$(lab_exec r-d6 nft list chain inet lab miniupnpd 2>&1)"
    fi
    msg="unsolicited-$tag"
    lab_check "$tag: unsolicited UDP from pub to [$D6]:$port reaches the agent" \
        lab_wait 3 agent_heard_pub "$port" "$msg" "$L"
    map_int
    lab_check "$tag: after SIGINT it removed the pinhole and exited 0 (rc $MAP_RC)" \
        eval "[ '$MAP_RC' = 0 ] && grep -qF 'IPv6: removing the pinhole...' '$L'"
    lab_check "$tag: the pinhole is gone from r-d6" lab_wait 3 pinhole_lacks "$port"
    udp6_listen d6 "$port" "$LAB_TMP/in-$port" || lab_fail "$tag: a listener on d6:$port"
    lab_flush
    lab_check "$tag: then UDP from pub to [$D6]:$port is dropped" \
        udp6_blocked pub "$D6" "$port" "after-$port" "$LAB_TMP/in-$port"
}

# C1: the IPv6 broker; the main socket is IPv6
listen_pinhole C1 --broker "[$SRV6]:3478"

# C2: one natbroker on both families, reached over IPv4: the pinhole is for
# the second family's socket, verified over that family's session
lab_stop "$NB_PID"
"$NATLAB" stop-coturn
lab_check "C2: coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'
lab_start srv "$LAB_TMP/natbroker2.log" "$NB" --public-list --listen "$SRV4" --listen "$SRV4B" \
    --listen "$SRV6" --listen "$SRV6B"
lab_check "C2: natbroker is up on both families" lab_wait 5 eval \
    "lab_exec srv ss -Hlun | grep -qF '[$SRV6]:3478' && lab_exec srv ss -Hlun | grep -qF '$SRV4:3478'"
listen_pinhole C2 --broker "$SRV4:3478"

lab_log "test_pcp6 took $(($(lab_now_ms) - T0)) ms"
lab_summary
