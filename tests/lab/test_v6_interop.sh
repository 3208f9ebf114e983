#!/usr/bin/env bash
# test_v6_interop.sh NATPEER NATBROKER: one natbroker serves IPv4 and IPv6 at
# once (dual stack, RFC 5780 in each family), and third-party STUN clients
# over IPv6 classify each v6 host the same through it as through coturn.
#
# In the dual-stack lab (NATLAB_V6=1, docs/lab.md "IPv6"), on srv:
#   1. coturn (the reference) on 2001:db8::10 and ::11, ports 3478/3479 (the
#      lab's own coturn is IPv4-only: it is stopped first, as natbroker then
#      takes the IPv4 ports too); turnutils_natdiscovery -m -f over IPv6
#      from pub, o6, v6o, d6, s6 and b6; coturn stopped (by its PID).
#   2. natbroker --listen 203.0.113.10 --listen 203.0.113.11
#      --listen 2001:db8::10 --listen 2001:db8::11: 16 sockets; the same
#      natdiscovery runs must give the same verdicts, and the ones each
#      firewall was built to show; `natpeer netcheck` over IPv6 from each v6
#      host and over IPv4 from d6 and s6 (their v4 NATs) through the same
#      process; the broker-key request (0xD5) answered on each family's
#      primary socket and only there; TCP Binding over IPv6; natpeer listen
#      registering over IPv6 (o6) and IPv4 (d6) into one registry.
#   3. TURN with IPv6 relayed addresses (RFC 8656 REQUESTED-ADDRESS-FAMILY)
#      from the same process (relay IPs 203.0.113.10 and 2001:db8::10):
#      coturn's turnutils_uclient -x ("IPv6 relay address requested") from
#      o6 (UDP channels, UDP Send indications, TCP channels), v6o (behind
#      its v6 firewall) and d6 (over IPv4: an IPv6 relay for an IPv4
#      client) relays through natbroker to turnutils_peer (a UDP echo) on
#      pub's [2001:db8::20]:3480. A case passes when uclient exits 0, every
#      relayed address it prints is 2001:db8::10 with a port in
#      49152-49999, and every message came back ("Total lost packets 0").
#      Without -x (IPv4 peer 203.0.113.20) o6 gets an IPv4 relayed address.
#      Negative: natbroker on IPv4 only (--listen 203.0.113.10): -x from d6
#      gets 440 and no relayed address.
#      (uclient 4.6 also takes the relay family from the peer's: -x with an
#      IPv4 peer asks for IPv4, so it cannot provoke 443; its -Z dual
#      allocation uses the pre-RFC attribute 0x8032, not RFC 8656's 0x8000.)
# conntrack is flushed before every classification.
#
# Third-party clients over IPv6:
#   - turnutils_natdiscovery (coturn 4.6) takes an IPv6 server address and
#     runs its RFC 5780 tests over IPv6: used here.
#   - Debian's `stun` (stun-client 0.97, Vovida's RFC 3489 client) cannot:
#     its addresses are StunAddress4 (a 32-bit IPv4 address and a port), the
#     server name goes through gethostbyname() (no getaddrinfo in the
#     binary), and "2001:db8::10" is cut at its first ':' into host "2001"
#     (0.0.7.209) and a port, so it sends to 0.0.7.209 over IPv4 ("err 101
#     Network is unreachable in send"); "[2001:db8::10]" is "not a valid host
#     name". It is run over IPv4 only (from d6, through the dual-stack broker).
#
#   sudo tests/lab/test_v6_interop.sh build/peer/natpeer build/broker/natbroker   # prefix nbv6i
set -u
export LC_ALL=C
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbv6i}
export NATLAB_V6=1
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NP=${1:?usage: test_v6_interop.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_v6_interop.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
SRV6A=2001:db8::10
SRV6B=2001:db8::11
V6HOSTS="pub o6 v6o d6 s6 b6"

# What each v6 firewall was built to show (docs/lab.md "IPv6"), in
# netcheck's words "MAPPING FILTERING NAT" and in natdiscovery's. No
# translation: mapping none (natdiscovery cannot tell none from
# endpoint-independent).
declare -A WANT_NP=(
    [pub]="none endpoint-independent open"
    [o6]="none endpoint-independent open"
    [v6o]="none address-and-port-dependent firewall"
    [d6]="none address-and-port-dependent firewall"
    [s6]="none address-and-port-dependent firewall"
    [b6]="none unknown udp-blocked"
)
EI="Endpoint Independent"
APD="Address and Port Dependent"
declare -A WANT_ND=(
    [pub]="$EI Mapping; $EI Filtering"
    [o6]="$EI Mapping; $EI Filtering"
    [v6o]="$EI Mapping; $APD Filtering"
    [d6]="$EI Mapping; $APD Filtering"
    [s6]="$EI Mapping; $APD Filtering"
    [b6]="no verdict"
)
# The v4 NATs of the dual-stack hosts (like prc and sym).
declare -A WANT_NP4=(
    [d6]="endpoint-independent address-and-port-dependent port-restricted-cone"
    [s6]="address-and-port-dependent address-and-port-dependent symmetric"
)
declare -A ND

lab_init 300
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
command -v turnutils_natdiscovery >/dev/null || { lab_fail "turnutils_natdiscovery missing"; lab_summary; exit 1; }
command -v turnserver >/dev/null || { lab_fail "turnserver (coturn) missing"; lab_summary; exit 1; }
for t in turnutils_uclient turnutils_peer; do
    command -v "$t" >/dev/null || { lab_fail "$t missing (package coturn)"; lab_summary; exit 1; }
done

# "NAT with X Mapping!" / "NAT with Y Filtering!" -> "X Mapping; Y Filtering"
nd_verdict() {
    local v
    v=$(sed -n 's/^NAT with \(.*\(Mapping\|Filtering\)\)!$/\1/p' "$1" | paste -sd';' | sed 's/;/; /g')
    echo "${v:-no verdict}"
}
# natpeer netcheck --json -> "MAPPING FILTERING NAT"
np_words() {
    sed -n 's/.*"mapping":"\([^"]*\)".*"filtering":"\([^"]*\)".*"nat":"\([^"]*\)".*/\1 \2 \3/p' "$1"
}
# every ADDR:PORT given (ss's form: [v6]:port) has a socket of PROTO (u/t) in srv
srv_bound() { # u|t ADDR:PORT...
    local s a p=$1; shift
    s=$(lab_exec srv ss -Hl"$p"n 2>/dev/null) || return 1
    for a in "$@"; do grep -qF "$a " <<<"$s" || return 1; done
}
TURN_SECRET=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
PEER4=203.0.113.20
PEER6=2001:db8::20
PEER_PORT=3480
RELAY_LO=49152
RELAY_HI=49999
TURN_MSGS=${TURN_MSGS:-20}
# every ADDR:PORT given has a UDP socket in NODE
srv_bound_on() { # NODE ADDR:PORT...
    local s a n=$1; shift
    s=$(lab_exec "$n" ss -Hlun 2>/dev/null) || return 1
    for a in "$@"; do grep -qF "$a " <<<"$s" || return 1; done
}
V6SOCKS=("[$SRV6A]:3478" "[$SRV6A]:3479" "[$SRV6B]:3478" "[$SRV6B]:3479")
V4SOCKS=("$SRV1:3478" "$SRV1:3479" "$SRV2:3478" "$SRV2:3479")

# natdiscovery over IPv6 from every v6 host, into ND[SERVER.host]
classify_nd() { # SERVER
    local h f
    for h in $V6HOSTS; do
        f=$LAB_TMP/$1-$h.nd
        lab_flush
        lab_exec "$h" timeout 40 turnutils_natdiscovery -m -f "$SRV6A" >"$f" 2>&1
        ND[$1.$h]=$(nd_verdict "$f")
        lab_log "$1 $h: natdiscovery over IPv6: ${ND[$1.$h]}"
    done
}

# netcheck HOST SERVER WANT LABEL
netcheck() {
    local h=$1 f=$LAB_TMP/np-$1-${4// /_} got
    lab_flush
    lab_exec "$h" timeout 20 "$NP" netcheck --no-portmap --broker "$2" --json >"$f" 2>"$f.err"
    got=$(np_words "$f")
    if [ "$got" = "$3" ]; then
        lab_pass "$h over $4: netcheck says $got"
    else
        lab_fail "$h over $4: netcheck says '$got', want '$3'" "$(cat "$f" "$f.err")"
    fi
}

# The broker-key request (docs/protocol.md "Broker key": 0xD5 and 63 more
# bytes) from NODE to ADDR PORT (socat address type UDP4/UDP6): bytes back.
KEYQ='\xd5'$(printf '\\x00%.0s' $(seq 63))
keyq_len() { # NODE UDP4|UDP6 ADDR PORT
    printf "$KEYQ" | timeout 3 ip netns exec "$(lab_ns "$1")" socat -T 1 - "$2:$3:$4" 2>/dev/null | wc -c
}
BINDING='\x00\x01\x00\x00\x21\x12\xa4\x42\x76\x36\x2d\x69\x6e\x74\x65\x72\x6f\x70\x21\x21'
tcp6_answers() { # NODE ADDR PORT
    local n
    n=$(printf "$BINDING" | timeout 3 ip netns exec "$(lab_ns "$1")" socat -T 1 - "TCP6:[$2]:$3" 2>/dev/null | wc -c)
    [ "$n" -ge 32 ]
}

# turn6 HOST TAG WANT_IP SERVER FLAGS...: one turnutils_uclient run (user
# TAG: each case its own quota); passes when it exits 0, every relayed
# address is WANT_IP with a port in RELAY_LO-RELAY_HI, and every message
# came back through the relay.
turn6() {
    local host=$1 tag=$2 want=$3 server=$4
    shift 4
    local f=$LAB_TMP/turn-$host-$tag.log rc=0 why="" sent recv lost relays bad r p
    lab_flush
    lab_exec "$host" timeout 40 turnutils_uclient -v -W "$TURN_SECRET" -u "$tag" \
        -r "$PEER_PORT" -n "$TURN_MSGS" -m 1 -l 1200 -p 3478 -c "$@" "$server" >"$f" 2>&1 || rc=$?
    read -r sent recv < <(sed -n 's/.*start_mclient: tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\)$/\1 \2/p' "$f" | tail -n 1)
    lost=$(sed -n 's/.*Total lost packets \([0-9]*\) .*/\1/p' "$f" | tail -n 1)
    # "IPv6. Received relay addr: 2001:db8::10:49388" (no brackets)
    relays=$(sed -n 's/.*IPv[46]\. Received relay addr: \([0-9a-f.:]*\)$/\1/p' "$f" | sort -u | paste -sd' ')
    bad=$(for r in $relays; do
        p=${r##*:}
        [ "${r%:*}" = "$want" ] && [ "$p" -ge "$RELAY_LO" ] && [ "$p" -le "$RELAY_HI" ] || echo "$r"
    done | paste -sd' ')
    [ "$rc" = 0 ] || why+="exit $rc; "
    [ -n "$relays" ] || why+="no relayed address; "
    [ -z "$bad" ] || why+="relayed address not $want:$RELAY_LO-$RELAY_HI: $bad; "
    [ "${sent:-0}" = "$TURN_MSGS" ] || why+="sent ${sent:-none} of $TURN_MSGS; "
    [ "${recv:-x}" = "${sent:-y}" ] || why+="received ${recv:-none} of ${sent:-none}; "
    [ "${lost:-x}" = 0 ] || why+="lost ${lost:-unknown}; "
    if [ -z "$why" ]; then
        lab_pass "TURN $host $tag: relayed ${relays// /, }; $recv/$sent messages back, 0 lost"
    else
        lab_fail "TURN $host $tag: ${why%; }" "$(grep -vE 'start_mclient: msz=|^[0-9]+: : *$' "$f" | tail -n 15)"
    fi
}

T0=$(lab_now_ms)
if ! lab_up; then
    lab_fail "dual-stack lab comes up" "$("$NATLAB" status 2>&1)"
    lab_summary
    exit 1
fi

# ------------------------------------------------------------------ 1. coturn over IPv6
"$NATLAB" stop-coturn
lab_check "the lab's coturn (IPv4) stopped: its ports are free" lab_wait 5 eval '! lab_udp_bound srv 3478'
lab_start srv "$LAB_TMP/coturn6.log" turnserver -n --no-cli --no-tls --no-dtls --stun-only --no-auth \
    --listening-ip "$SRV6A" --listening-ip "$SRV6B" --listening-port 3478 --alt-listening-port 3479 \
    --log-file stdout --simple-log --pidfile "$LAB_TMP/turnserver6.pid" --userdb "$LAB_TMP/turndb"
CT_PID=$LAB_LAST_PID
if lab_wait 5 srv_bound u "${V6SOCKS[@]}"; then
    lab_pass "coturn binds 2 IPv6 addresses x 2 ports"
    classify_nd coturn
else
    lab_fail "coturn binds 2 IPv6 addresses x 2 ports" "$(tail -n 20 "$LAB_TMP/coturn6.log")"
fi
lab_stop "$CT_PID"
lab_check "coturn stopped: the IPv6 ports are free" lab_wait 5 eval '! lab_udp_bound srv 3478'

# ------------------------------------------------------------------ 2. natbroker, both families
NBLOG=$LAB_TMP/natbroker.log
lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen "$SRV2" \
    --listen "$SRV6A" --listen "$SRV6B" --log-level info \
    --turn-secret "$TURN_SECRET" --relay-ports "$RELAY_LO-$RELAY_HI"
NB_PID=$LAB_LAST_PID
lab_check "natbroker binds 4 IPs (2 per family) x 2 ports, UDP and TCP" lab_wait 5 eval \
    'srv_bound u "${V4SOCKS[@]}" "${V6SOCKS[@]}" && srv_bound t "${V4SOCKS[@]}" "${V6SOCKS[@]}"'
for a in "${V4SOCKS[@]}" "${V6SOCKS[@]}"; do
    lab_check "natbroker logs 'listening on udp $a' and tcp" \
        eval 'grep -qF "listening on udp $a" "$NBLOG" && grep -qF "listening on tcp $a" "$NBLOG"'
done
lab_check "natbroker: RFC 5780 mode in each family" \
    eval 'grep -q "IPv4: RFC 5780 mode" "$NBLOG" && grep -q "IPv6: RFC 5780 mode" "$NBLOG"'
lab_check "natbroker: control messages on both primaries" \
    grep -qF "control messages on udp $SRV1:3478 and [$SRV6A]:3478" "$NBLOG"

# Each family's primary socket takes the key request; no other socket does.
n=$(keyq_len o6 UDP6 "[$SRV6A]" 3478)
lab_check "key request over IPv6 (o6 -> [$SRV6A]:3478): 33 bytes back (got $n)" [ "$n" -eq 33 ]
n=$(keyq_len d6 UDP4 "$SRV1" 3478)
lab_check "key request over IPv4 (d6 -> $SRV1:3478): 33 bytes back (got $n)" [ "$n" -eq 33 ]
n=$(keyq_len o6 UDP6 "[$SRV6B]" 3478)
lab_check "key request to the IPv6 alternate address [$SRV6B]:3478: no answer (got $n)" [ "$n" -eq 0 ]
n=$(keyq_len pub UDP6 "[$SRV6A]" 3479)
lab_check "key request to the IPv6 alternate port [$SRV6A]:3479: no answer (got $n)" [ "$n" -eq 0 ]
lab_check "TCP Binding over IPv6 answered (o6 -> [$SRV6A]:3478)" tcp6_answers o6 "$SRV6A" 3478
lab_check "TCP Binding over IPv6 answered (pub -> [$SRV6B]:3479)" tcp6_answers pub "$SRV6B" 3479

classify_nd natbroker
for h in $V6HOSTS; do
    if [ -n "${ND[coturn.$h]:-}" ] && [ "${ND[natbroker.$h]}" = "${ND[coturn.$h]}" ]; then
        lab_pass "$h over IPv6: natdiscovery verdict same as coturn (${ND[natbroker.$h]})"
    else
        lab_fail "$h over IPv6: natdiscovery verdict differs" \
            "natbroker: ${ND[natbroker.$h]}"$'\n'"coturn:    ${ND[coturn.$h]:-(not run)}"
    fi
    if [ "${ND[natbroker.$h]}" = "${WANT_ND[$h]}" ]; then
        lab_pass "$h over IPv6: natdiscovery through natbroker says ${WANT_ND[$h]}"
    else
        lab_fail "$h over IPv6: natdiscovery through natbroker: want '${WANT_ND[$h]}'" \
            "$(tail -n 30 "$LAB_TMP/natbroker-$h.nd")"
    fi
done

for h in $V6HOSTS; do
    netcheck "$h" "[$SRV6A]:3478" "${WANT_NP[$h]}" "IPv6"
done
for h in d6 s6; do
    netcheck "$h" "$SRV1:3478" "${WANT_NP4[$h]}" "IPv4"
done
# Debian's stun is IPv4-only (see the top): over IPv4, through the same process.
lab_flush
rc=0
lab_exec d6 timeout 40 stun "$SRV1" >"$LAB_TMP/stun-d6" 2>&1 || rc=$?
lab_check "d6 over IPv4: stun says Independent Mapping, Port Dependent Filter (exit $rc)" \
    grep -q "^Primary: Independent Mapping, Port Dependent Filter" "$LAB_TMP/stun-d6"

# Control over both families at once, into one registry: o6 (IPv6 only)
# registers over IPv6, d6 over IPv4 (sealed handshakes, replies from each
# family's primary); pub lists both, asking over either family.
lab_start o6 "$LAB_TMP/listen-o6.err" "$NP" listen --id o6 --no-portmap --broker "[$SRV6A]:3478" --json
lab_start d6 "$LAB_TMP/listen-d6.err" "$NP" listen --id d6 --no-portmap --broker "$SRV1:3478" --json
LISTEN_PIDS=("${LAB_PIDS[@]: -2}")
lab_check "o6 registers over IPv6, d6 over IPv4 (the broker logs both, each peer has its answer)" \
    lab_wait 15 eval 'grep -qF "register o6 (key" "$NBLOG" && grep -qF "register d6 (key" "$NBLOG" &&
        grep -qF "registered as o6 with [$SRV6A]:3478" "$LAB_TMP/listen-o6.err" &&
        grep -qF "registered as d6 with $SRV1:3478" "$LAB_TMP/listen-d6.err"'
O6=$("$NATLAB" addr6 o6)
for b in "[$SRV6A]:3478" "$SRV1:3478"; do
    out=$(lab_exec pub timeout 10 "$NP" peers --broker "$b" --json 2>"$LAB_TMP/peers.err")
    lab_check "peers asked over $b lists o6 at [$O6] and d6 at 203.0.113.113" eval \
        'grep -qF "{\"id\":\"o6\",\"nat\":\"open\",\"mapping\":\"none\"" <<<"$out" &&
         grep -qF "\"reflexive\":\"[$O6]:" <<<"$out" &&
         grep -qF "{\"id\":\"d6\",\"nat\":\"port-restricted-cone\"" <<<"$out" &&
         grep -qF "\"reflexive\":\"203.0.113.113:" <<<"$out"'
done
lab_stop "${LISTEN_PIDS[@]}"

# TURN: IPv6 relayed addresses from the dual-stack broker (3. at the top).
lab_check "natbroker relays both families (its log names both relay IPs)" \
    grep -qF "relaying from IPv4 $SRV1, IPv6 $SRV6A, ports $RELAY_LO-$RELAY_HI" "$NBLOG"
lab_start pub "$LAB_TMP/peer6.log" turnutils_peer -L "$PEER6" -p "$PEER_PORT"
lab_start pub "$LAB_TMP/peer4.log" turnutils_peer -L "$PEER4" -p "$PEER_PORT"
PEER_PIDS=("${LAB_PIDS[@]: -2}")
lab_check "turnutils_peer listens on [$PEER6]:$PEER_PORT and $PEER4:$PEER_PORT" lab_wait 5 \
    srv_bound_on pub "[$PEER6]:$PEER_PORT" "$PEER4:$PEER_PORT"
turn6 o6 v6-udp-channel "$SRV6A" "$SRV6A" -x -e "$PEER6"
turn6 o6 v6-udp-send "$SRV6A" "$SRV6A" -x -s -e "$PEER6"
turn6 o6 v6-tcp-channel "$SRV6A" "$SRV6A" -x -t -e "$PEER6"
turn6 v6o v6-udp-channel "$SRV6A" "$SRV6A" -x -e "$PEER6"
turn6 d6 v6-relay-over-v4 "$SRV6A" "$SRV1" -x -e "$PEER6"
turn6 o6 v4-relay-default "$SRV1" "$SRV6A" -e "$PEER4"

lab_check "natbroker still runs (pid $NB_PID) after both families' tests" kill -0 "$NB_PID"
lab_check "natbroker dropped nothing for want of a socket of a family" \
    eval '! grep -q "no IPv[46] socket" "$NBLOG"'

# ------------------------------------------------------------------ 3. clean stop
kill -TERM "$NB_PID" 2>/dev/null
if lab_wait 5 _lab_all_gone "$NB_PID"; then
    rc=0
    wait "$NB_PID" || rc=$?
    lab_check "natbroker exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0
else
    lab_fail "natbroker still running 5 s after SIGTERM"
fi
lab_check "natbroker logs its shutdown" grep -q "stopped" "$NBLOG"

# Negative: natbroker on IPv4 only relays IPv4 only: -x gets 440, no
# relayed address (d6 reaches it over IPv4).
NB4LOG=$LAB_TMP/natbroker-v4only.log
lab_start srv "$NB4LOG" "$NB" --listen "$SRV1" --log-level info \
    --turn-secret "$TURN_SECRET" --relay-ports "$RELAY_LO-$RELAY_HI"
NB4_PID=$LAB_LAST_PID
if lab_wait 5 srv_bound u "$SRV1:3478"; then
    f=$LAB_TMP/turn-d6-v6-refused.log
    rc=0
    lab_flush
    lab_exec d6 timeout 15 turnutils_uclient -v -W "$TURN_SECRET" -u v6-refused -r "$PEER_PORT" \
        -n 5 -m 1 -l 1200 -p 3478 -c -x -e "$PEER6" "$SRV1" >"$f" 2>&1 || rc=$?
    if [ "$rc" != 0 ] && grep -q "error 440" "$f" && ! grep -q "Received relay addr" "$f"; then
        lab_pass "TURN d6 -x on an IPv4-only natbroker: 440, no relayed address (exit $rc)"
    else
        lab_fail "TURN d6 -x on an IPv4-only natbroker: want 440 and no relayed address (exit $rc)" \
            "$(tail -n 15 "$f")"
    fi
    lab_check "the IPv4-only natbroker logs its 440 refusals" grep -q ": 440 family" "$NB4LOG"
else
    lab_fail "IPv4-only natbroker binds $SRV1:3478" "$(tail -n 20 "$NB4LOG")"
fi
lab_stop "$NB4_PID" "${PEER_PIDS[@]}"
[ "$LAB_FAIL" -eq 0 ] || { echo "# natbroker log:"; sed 's/^/#   /' "$NBLOG"; }
lab_log "test_v6_interop took $(($(lab_now_ms) - T0)) ms (lab up included)"

lab_summary
