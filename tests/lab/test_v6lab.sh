#!/usr/bin/env bash
# test_v6lab.sh: the dual-stack lab (NATLAB_V6=1, docs/lab.md "IPv6"): srv
# and pub over IPv6 from the v6 hosts, each v6 firewall's filtering (APDF,
# open, no UDP), the v4 NATs of the dual-stack hosts (EIM vs symmetric, by a
# UDP echo), and the IPv4 lab unchanged beside it. Root only (exit 77).
#
#   sudo tests/lab/test_v6lab.sh     # prefix nbv6
set -uo pipefail
export LC_ALL=C
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbv6}
export NATLAB_V6=1
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lab_init 240

PY=/usr/bin/python3
SRV=203.0.113.10
PUB=203.0.113.20
SRV6=2001:db8::10
PUB6=2001:db8::20
ECHO=47100

# udpecho.py: "serve PORT" answers every datagram (v4 or v6) with the
# sender's address as "IP PORT"; "ask SPORT DST PORT [DST PORT...]" sends from
# SPORT to each destination and prints each answer (exit 1 if one is missing).
cat >"$LAB_TMP/udpecho.py" <<'EOF'
import socket, sys
if sys.argv[1] == "serve":
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", int(sys.argv[2])))
    while True:
        data, a = s.recvfrom(2048)
        ip = a[0][7:] if a[0].startswith("::ffff:") else a[0]
        s.sendto(("%s %d" % (ip, a[1])).encode(), a)
sport, args = int(sys.argv[2]), sys.argv[3:]
fam = socket.AF_INET6 if ":" in args[0] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", sport))
s.settimeout(0.3)
rc = 0
for i in range(0, len(args), 2):
    dst = (args[i], int(args[i + 1]))
    for _ in range(5):
        s.sendto(b"echo?", dst)
        try:
            print(s.recvfrom(2048)[0].decode()); break
        except socket.timeout:
            pass
    else:
        print("timeout"); rc = 1
sys.exit(rc)
EOF

# v6 probes (lib.sh's are IPv4)
udp6_listen() { # NODE PORT FILE
    : >"$3"
    lab_start "$1" "$LAB_TMP/socat.log" socat -u "UDP6-RECVFROM:$2,reuseaddr,fork" \
        "EXEC:$LAB_TMP/udprec $3"
    lab_wait_udp "$1" "$2" 5
}
udp6_send() { # NODE DST PORT MSG [SPORT]
    printf '%s' "$4" | timeout 3 ip netns exec "$(lab_ns "$1")" \
        socat -u - "UDP6-SENDTO:[$2]:$3${5:+,sourceport=$5,reuseaddr}" 2>/dev/null
}
udp6_reaches() { # NODE DST PORT MSG FILE [SPORT]: within 2 s
    local end=$(($(lab_now_ms) + 2000))
    while :; do
        udp6_send "$1" "$2" "$3" "$4" "${6:-}"
        lab_wait_ms 100 lab_udp_got "$5" "$4" && return 0
        [ "$(lab_now_ms)" -lt "$end" ] || return 1
    done
}
udp6_blocked() { # NODE DST PORT MSG FILE [SPORT]: 5 datagrams, none in 500 ms
    for _ in 1 2 3 4 5; do udp6_send "$1" "$2" "$3" "$4" "${6:-}"; sleep 0.05; done
    sleep 0.5
    ! lab_udp_got "$5" "$4"
}
tcp6_listen() { # NODE PORT FILE
    : >"$3"
    lab_start "$1" "$LAB_TMP/socat.log" socat -u "TCP6-LISTEN:$2,reuseaddr,fork" \
        "EXEC:$LAB_TMP/udprec $3"
    lab_wait_tcp "$1" "$2" 5
}
tcp6_send() { # NODE DST PORT MSG
    printf '%s' "$4" | timeout 5 ip netns exec "$(lab_ns "$1")" \
        socat -u - "TCP6:[$2]:$3,connect-timeout=2" 2>/dev/null
}
ask() { timeout 10 ip netns exec "$(lab_ns "$1")" "$PY" "$LAB_TMP/udpecho.py" ask "${@:2}"; }
addr6() { "$NATLAB" addr6 "$1"; }

# ------------------------------------------------------------------ bring up
if ! lab_up; then
    lab_fail "dual-stack lab comes up and gets ready" "$("$NATLAB" status 2>&1)"
    lab_summary
    exit 1
fi
lab_pass "dual-stack lab comes up and gets ready"
lab_check "status reports up and healthy" lab_quiet "$NATLAB" status
lab_check "the v6 nodes exist" lab_quiet "$NATLAB" exec v6o true
lab_check "v6o has no IPv4 address" \
    bash -c "! ip netns exec $(lab_ns v6o) ip -4 -o addr show scope global | grep -q ."
lab_check "IPv4-only fc keeps IPv6 off" \
    bash -c "[ \"\$(ip netns exec $(lab_ns fc) cat /proc/sys/net/ipv6/conf/all/disable_ipv6)\" = 1 ]"

lab_start srv "$LAB_TMP/echo-srv.log" "$PY" "$LAB_TMP/udpecho.py" serve $ECHO
lab_start pub "$LAB_TMP/echo-pub.log" "$PY" "$LAB_TMP/udpecho.py" serve $ECHO
lab_wait_udp srv $ECHO 5 || lab_fail "echo on srv:$ECHO"
lab_wait_udp pub $ECHO 5 || lab_fail "echo on pub:$ECHO"

# ------------------------------------------------------------------ 1. v6 reachability
# The echo reports the host's own v6 address: no translation on the way.
for h in d6 o6 s6 v6o; do
    a=$(addr6 "$h")
    out=$(ask "$h" 40100 "$SRV6" $ECHO "$PUB6" $ECHO 2>&1)
    want="$a 40100
$a 40100"
    if [ "$out" = "$want" ]; then
        lab_pass "$h -> srv and pub over IPv6: both see [$a]:40100 (no translation)"
    else
        lab_fail "$h -> srv and pub over IPv6" "$out"
    fi
done

# ------------------------------------------------------------------ 2. v6 filtering
# APDF (d6, s6, v6o): unsolicited inbound dropped; after the host sent from
# its port 45000 to pub:47001, pub:47001 gets in, pub:47002 does not.
for h in d6 s6 v6o; do
    a=$(addr6 "$h") f=$LAB_TMP/in6-$h.txt
    udp6_listen "$h" 45000 "$f" || lab_fail "listener on $h:45000"
    lab_check "$h: unsolicited pub -> [$a]:45000 is dropped" \
        udp6_blocked pub "$a" 45000 "unsol-$h" "$f" 47001
    udp6_send "$h" "$PUB6" 47001 "open-$h" 45000
    lab_check "$h: after $h:45000 -> pub:47001, pub:47001 -> $h:45000 passes" \
        udp6_reaches pub "$a" 45000 "sol-$h" "$f" 47001
    lab_check "$h: but pub:47002 -> $h:45000 is still dropped (port-dependent)" \
        udp6_blocked pub "$a" 45000 "other-$h" "$f" 47002
done
tcp6_listen d6 45100 "$LAB_TMP/tcp-d6.txt" || lab_fail "TCP listener on d6:45100"
tcp6_send pub "$(addr6 d6)" 45100 "tcp-in-d6"
lab_check "d6: unsolicited TCP from pub is dropped too" \
    bash -c "sleep 0.3; ! grep -qF tcp-in-d6 '$LAB_TMP/tcp-d6.txt'"

# open (o6): unsolicited UDP and TCP get in
a=$(addr6 o6)
udp6_listen o6 45000 "$LAB_TMP/in6-o6.txt" || lab_fail "listener on o6:45000"
lab_check "o6: unsolicited pub -> [$a]:45000 passes (endpoint-independent)" \
    udp6_reaches pub "$a" 45000 "unsol-o6" "$LAB_TMP/in6-o6.txt" 47003
tcp6_listen o6 45100 "$LAB_TMP/tcp-o6.txt" || lab_fail "TCP listener on o6:45100"
tcp6_send srv "$a" 45100 "tcp-in-o6"
lab_check "o6: unsolicited TCP from srv passes" lab_wait 3 lab_udp_got "$LAB_TMP/tcp-o6.txt" "tcp-in-o6"

# no UDP over v6 (b6), while v4 UDP and v6 TCP work
out=$(ask b6 40200 "$SRV6" $ECHO 2>&1)
lab_check "b6: UDP over IPv6 to srv gets no answer (got: $out)" [ "$out" = timeout ]
out=$(ask b6 40201 "$SRV" $ECHO 2>&1)
lab_check "b6: UDP over IPv4 to srv works, through its NAT (got: $out)" [ "$out" = "203.0.113.117 40201" ]
tcp6_listen srv 48000 "$LAB_TMP/tcp-srv.txt" || lab_fail "TCP listener on srv:48000"
tcp6_send b6 "$SRV6" 48000 "b6-tcp6"
lab_check "b6: TCP over IPv6 to srv works" lab_wait 3 lab_udp_got "$LAB_TMP/tcp-srv.txt" "b6-tcp6"

# ------------------------------------------------------------------ 3. v4 NATs of the dual-stack hosts
out=$(ask d6 40300 "$SRV" $ECHO "$PUB" $ECHO 2>&1)
p1=$(sed -n 1p <<<"$out") p2=$(sed -n 2p <<<"$out")
lab_check "d6 v4 (port-restricted): one mapping to srv and pub (got: ${out//$'\n'/, })" \
    [ "${p1%% *}" = 203.0.113.113 -a "$p1" = "$p2" ]
out=$(ask s6 40300 "$SRV" $ECHO "$PUB" $ECHO 2>&1)
p1=$(sed -n 1p <<<"$out") p2=$(sed -n 2p <<<"$out")
lab_check "s6 v4 (symmetric): a different mapping per destination (got: ${out//$'\n'/, })" \
    [ "${p1%% *}" = 203.0.113.114 -a "${p2%% *}" = 203.0.113.114 -a "$p1" != "$p2" ]
out=$(ask o6 40300 "$SRV" $ECHO 2>&1 | tail -n 1)
lab_check "o6 has no IPv4: UDP to srv's IPv4 fails (got: $out)" grep -q "Network is unreachable" <<<"$out"

# ------------------------------------------------------------------ 4. the IPv4 lab beside it
lab_udp_listen fc 44000 "$LAB_TMP/fc.txt" || lab_fail "listener on fc:44000"
lab_check "IPv4 lab: unsolicited pub -> fc's public :44000 reaches fc (full cone)" \
    lab_udp_reaches pub "$(lab_public fc)" 44000 "unsol-fc" "$LAB_TMP/fc.txt" 3
lab_udp_listen prc 44000 "$LAB_TMP/prc.txt" || lab_fail "listener on prc:44000"
lab_check "IPv4 lab: unsolicited pub -> prc's public :44000 does not reach prc" \
    lab_udp_blocked pub "$(lab_public prc)" 44000 "unsol-prc" "$LAB_TMP/prc.txt"
st=$(timeout 20 ip netns exec "$(lab_ns sym)" stun "$SRV" 2>&1)
lab_check "IPv4 lab: stun classifies sym as symmetric" \
    grep -q "^Primary: Dependent Mapping, random port" <<<"$st"

# ------------------------------------------------------------------ 5. down without NATLAB_V6
lab_stop "${LAB_PIDS[@]}"
NATLAB_V6='' "$NATLAB" down >/dev/null 2>&1
lab_check "down without NATLAB_V6 removes the v6 namespaces too" \
    bash -c "! ls /run/netns/ | grep -qx '$NATLAB_PREFIX-\(d6\|r-d6\|v6o\|r-b6\|srv\)'"

lab_summary
