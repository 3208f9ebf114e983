#!/usr/bin/env bash
# test_broker_badinput.sh NATBROKER: natbroker on the lab's `srv` takes
# truncated, oversized, random and non-request datagrams, TCP garbage,
# oversized TCP frames, a TCP byte flood and more slowloris connections than
# its cap - and keeps answering valid Binding requests over UDP and TCP,
# never answers the garbage, and stops cleanly. Every loop is bounded and
# every wait has a deadline. Needs root (exit 77 otherwise).
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbb}
. "$(dirname "$0")/lib.sh"

NB=${1:?usage: test_broker_badinput.sh PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
MAX_TCP=8
IDLE=2
MAX_BYTES=4096
SLOW=16 # slowloris connections: twice the cap

lab_init 240
[ -x "$NB" ] || { lab_fail "natbroker binary $NB is not executable"; lab_summary; exit 1; }

# A valid RFC 8489 Binding request (20 bytes, printf escapes).
BINDING='\x00\x01\x00\x00\x21\x12\xa4\x42\x62\x61\x64\x2d\x69\x6e\x70\x75\x74\x2d\x30\x31'

udp_answers() { # node ip port: a Binding over UDP gets >= 32 bytes back
    local n
    n=$(printf "$BINDING" | timeout 3 ip netns exec "$(lab_ns "$1")" env XDG_CONFIG_HOME="$(lab_xdg "$1")" \
        socat -T 1 - "UDP4:$2:$3" 2>/dev/null | wc -c)
    [ "$n" -ge 32 ]
}
tcp_answers() { # node ip port [secs]: a Binding over TCP gets >= 32 bytes back
    local n t=${4:-1}
    n=$(printf "$BINDING" | timeout $((t + 2)) ip netns exec "$(lab_ns "$1")" env XDG_CONFIG_HOME="$(lab_xdg "$1")" \
        socat -T "$t" -t "$t" - "TCP4:$2:$3" 2>/dev/null | wc -c)
    [ "$n" -ge 32 ]
}
broker_alive() { [ -d "/proc/$NB_PID" ]; }
still_serving() { broker_alive && udp_answers pub "$SRV1" 3478 && tcp_answers pub "$SRV1" 3478; }
# established TCP connections to srv:3478, as srv sees them
tcp_conns() { lab_exec srv ss -Htn state established '( sport = :3478 )' 2>/dev/null | wc -l; }
no_tcp_conns() { [ "$(tcp_conns)" -eq 0 ]; }

# udp_replies NODE SCRIPT: run SCRIPT (bash) in NODE with fd 3 a UDP socket
# connected to srv:3478; print how many bytes came back within 1 s after it.
udp_replies() {
    lab_exec "$1" timeout 30 bash -c "exec 3<>/dev/udp/$SRV1/3478 || exit 1
        $2
        timeout 1 cat <&3 | wc -c" 2>/dev/null
}

lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_wait 5 eval '! lab_udp_bound srv 3478' || { lab_fail "coturn did not free its ports"; lab_summary; exit 1; }

NBLOG=$LAB_TMP/natbroker.log
lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen "$SRV2" --max-tcp "$MAX_TCP" \
    --tcp-idle-timeout "$IDLE" --tcp-max-bytes "$MAX_BYTES"
NB_PID=$LAB_LAST_PID
lab_check "natbroker listens" lab_wait 5 eval 'lab_udp_bound srv 3478 && lab_tcp_bound srv 3478'
lab_check "baseline: UDP and TCP Binding answered" lab_wait 5 still_serving

# Payloads, written here and sent from inside the lab (one write = one datagram).
P=$LAB_TMP/payload
mkdir -p "$P/rnd" "$P/stunrnd"
printf "$BINDING" >"$P/binding"
printf '\x00\x01\x00\x08\x21\x12\xa4\x42tid-truncat1\x00\x03\x00\x04' >"$P/short"   # length 8, 4 there
printf '\x00\x01\x00\x03\x21\x12\xa4\x42tid-badlen-1\x00\x00\x00' >"$P/badlen"       # length not 4n
printf '\x01\x01\x00\x00\x21\x12\xa4\x42tid-response' >"$P/response"                   # success response
printf '\x01\x11\x00\x00\x21\x12\xa4\x42tid-errorrsp' >"$P/error"                      # error response
printf '\x00\x11\x00\x00\x21\x12\xa4\x42tid-indicatn' >"$P/indication"                 # indication
printf '\x00\x03\x00\x00\x21\x12\xa4\x42tid-allocate' >"$P/allocate"                   # TURN Allocate
printf '\x00\x02\x00\x00\x21\x12\xa4\x42tid-sharedsc' >"$P/othermethod"                # method 0x002 (RFC 3489 Shared Secret)
printf '\x00\x01\x00\x08\x21\x12\xa4\x42tid-badfprnt\x80\x28\x00\x04\xde\xad\xbe\xef' >"$P/badfp"
printf 'GET / HTTP/1.1\r\n\r\n' >"$P/http"
printf '{"v":1,"type":"register","tx":"0123456789abcdef","id":"plain","local":[],"nat":{"mapping":"none","filtering":"endpoint-independent"}}' >"$P/plain-register"
head -c 65000 /dev/urandom >"$P/huge"
{ printf '\x00\x01\x04\xb4\x21\x12\xa4\x42tid-oversize'; head -c 1204 /dev/zero; } >"$P/big-stun"
for i in $(seq 500); do head -c $((RANDOM % 1400 + 1)) /dev/urandom >"$P/rnd/$i"; done
# The first bytes the broker does answer from strangers, each by design and
# no longer than the question (docs/protocol.md): 0xD3 (a sealed frame for
# an unknown session: the 5-byte hint) and 0xD5 (the key request: 33
# bytes). The random datagrams avoid them; the cases below test them.
for f in "$P"/rnd/*; do
    case $(head -c 1 "$f" | od -An -tx1 | tr -d ' ') in
        d3|d5) { printf '\x00'; tail -c +2 "$f"; } >"$f.x" && mv "$f.x" "$f" ;;
    esac
done
mkdir -p "$P/d1" "$P/d3"
for i in $(seq 20); do
    { printf '\xd1'; head -c $((100 + RANDOM % 300)) /dev/urandom; } >"$P/d1/$i"   # a forged initiation
    { printf '\xd3'; head -c $((28 + RANDOM % 1100)) /dev/urandom; } >"$P/d3/$i"   # unknown session
done
{ printf '\xd5'; head -c 63 /dev/zero; } >"$P/keyq"
{ printf '\xd5'; head -c 62 /dev/zero; } >"$P/keyq-short"
for i in $(seq 300); do
    len=$(((RANDOM % 64) * 4))
    { printf "\x00\x01\x$(printf %02x $((len >> 8)))\x$(printf %02x $((len & 255)))\x21\x12\xa4\x42"
      head -c $((12 + len)) /dev/urandom; } >"$P/stunrnd/$i"
done
send() { echo "for f in $*; do dd if=\$f bs=70000 count=1 status=none >&3; done"; }

# ---- UDP: truncated requests, non-requests, other methods: no reply at all
n=$(udp_replies pub "for i in \$(seq 19); do head -c \$i $P/binding >&3; done
    $(send "$P/short $P/badlen $P/response $P/error $P/indication $P/othermethod $P/badfp $P/http")")
lab_check "truncated / non-request / bad-fingerprint datagrams: no reply (got ${n:-?} bytes)" test "${n:-1}" -eq 0
# A TURN Allocate without credentials: the relay's 401 challenge (REALM,
# NONCE, ERROR-CODE), one datagram of at most 100 bytes (docs/security.md
# "Amplification": no larger than coturn's)
n=$(udp_replies pub "$(send "$P/allocate")")
lab_check "TURN Allocate without credentials: one 401 of at most 100 bytes (got ${n:-?} bytes)" \
    eval '[ "${n:-0}" -gt 0 ] && [ "${n:-0}" -le 100 ]'
lab_check "still serving after truncated datagrams" still_serving

# ---- UDP: oversized datagrams (65000 random bytes; 1224 bytes of valid STUN)
n=$(udp_replies pub "$(send "$P/huge $P/big-stun")")
lab_check "oversized datagrams: no reply (got ${n:-?} bytes)" test "${n:-1}" -eq 0
lab_check "still serving after oversized datagrams" still_serving

# ---- UDP: the sealed channel's surfaces (docs/protocol.md "Sealed control channel")
n=$(udp_replies pub "$(send "$P/d1/*")")
lab_check "20 forged handshake initiations: no reply (got ${n:-?} bytes)" test "${n:-1}" -eq 0
n=$(udp_replies pub "$(send "$P/d3/*")")
lab_check "20 sealed frames for unknown sessions: one 5-byte hint each (got ${n:-?} of 100 bytes)" \
    test "${n:-1}" -eq 100
n=$(udp_replies pub "$(send "$P/keyq")")
lab_check "key request (64 bytes): the 33-byte key (got ${n:-?} bytes)" test "${n:-1}" -eq 33
n=$(udp_replies pub "$(send "$P/keyq-short")")
lab_check "key request of 63 bytes: no reply (got ${n:-?} bytes)" test "${n:-1}" -eq 0
n=$(udp_replies pub "$(send "$P/plain-register")")
lab_check "an unsealed register: at most a 401 no longer than itself (got ${n:-?} of $(stat -c %s "$P/plain-register") bytes)" \
    eval "[ ${n:-9999} -le $(stat -c %s "$P/plain-register") ] && [ ${n:-0} -gt 0 ]"
lab_check "still serving after the sealed-channel cases" still_serving

# ---- UDP: 500 random datagrams (1..1400 bytes), none answered
n=$(udp_replies pub "$(send "$P/rnd/*")")
lab_check "500 random datagrams: no reply (got ${n:-?} bytes)" test "${n:-1}" -eq 0
# ... and 300 with a valid header and random attributes: dropped or answered
# (a random comprehension-required type gets 420), never a crash
udp_replies pub "$(send "$P/stunrnd/*")" >/dev/null
lab_check "still serving after random datagrams" still_serving

# ---- TCP: garbage, an oversized frame, a byte flood
for i in $(seq 10); do
    head -c 4096 /dev/urandom | timeout 5 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" socat -u - "TCP4:$SRV1:3478" 2>/dev/null
done
printf '\x00\x01\x07\xd0\x21\x12\xa4\x42tid-hugeframe' | timeout 5 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" \
    socat -T 2 - "TCP4:$SRV1:3478" >/dev/null 2>&1
lab_check "garbage TCP connections are closed by natbroker" lab_wait 5 no_tcp_conns
lab_check "still serving after TCP garbage" still_serving

# Exactly the cap in whole requests and a partial one: every whole request
# is answered, then natbroker closes (a clean FIN: nothing is left unread).
full=$((MAX_BYTES / 20))
{ for i in $(seq "$full"); do printf "$BINDING"; done; head -c $((MAX_BYTES - full * 20)) "$P/binding"; } >"$LAB_TMP/cap"
t0=$(lab_now_ms)
n=$(timeout 10 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" socat -T 5 -t 5 - "TCP4:$SRV1:3478" <"$LAB_TMP/cap" 2>/dev/null | wc -c)
dt=$(($(lab_now_ms) - t0))
# (RFC 5780 mode: each answer is 68 bytes)
lab_check "TCP byte cap: $full whole requests in $MAX_BYTES bytes, $full answers (got $n bytes, want $((full * 68)))" \
    test "$n" -eq $((full * 68))
lab_check "TCP byte cap: natbroker closed the connection (after $dt ms)" test "$dt" -lt 4000
# More than the cap: cut off, never more answers than the cap allows.
for i in $(seq 300); do printf "$BINDING"; done >"$LAB_TMP/flood"
n=$(timeout 10 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" socat -T 3 -t 3 - "TCP4:$SRV1:3478" <"$LAB_TMP/flood" 2>/dev/null | wc -c)
lab_check "TCP flood of 6000 bytes: at most $((full * 68)) bytes of answers (got $n)" test "$n" -le $((full * 68))
lab_check "TCP flood: the connection is closed" lab_wait 5 no_tcp_conns

# ---- TCP: slowloris, twice the connection cap, one byte every 0.5 s
for i in $(seq "$SLOW"); do
    lab_start pub "$LAB_TMP/slow.log" timeout 12 bash -c \
        "for k in \$(seq 20); do printf '\\x00'; sleep 0.5; done | socat -t 1 - TCP4:$SRV1:3478"
done
SLOW_PIDS=("${LAB_PIDS[@]: -$SLOW}")
lab_check "slowloris: natbroker reports its connection limit" \
    lab_wait_log "$NBLOG" "connection limit \\($MAX_TCP\\) reached" 5
lab_check "slowloris: UDP still answered at once" udp_answers pub "$SRV1" 3478
# Each slot frees after IDLE s; the request waits behind SLOW/MAX_TCP rounds.
bound=$((IDLE * (SLOW / MAX_TCP + 1) * 1000 + 1000))
t0=$(lab_now_ms)
if tcp_answers pub "$SRV1" 3478 10; then
    dt=$(($(lab_now_ms) - t0))
    lab_check "slowloris: a TCP Binding is answered within $bound ms (took $dt ms)" test "$dt" -le "$bound"
else
    lab_fail "slowloris: no TCP answer within 10 s"
fi
lab_stop "${SLOW_PIDS[@]}"
lab_check "slowloris gone: TCP answered at once" tcp_answers pub "$SRV1" 3478
lab_check "every TCP connection closed again" lab_wait $((IDLE + 3)) no_tcp_conns

# ---- natbroker survived it all and stops cleanly with its counters
lab_check "natbroker still running" broker_alive
lab_check "still serving at the end" still_serving
kill -TERM "$NB_PID" 2>/dev/null
if lab_wait 5 _lab_all_gone "$NB_PID"; then
    rc=0
    wait "$NB_PID" || rc=$?
    lab_check "natbroker exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0
else
    lab_fail "natbroker still running 5 s after SIGTERM"
fi
nb_counter() { sed -n "s/.*[ ,]$1 \\([0-9][0-9]*\\).*/\\1/p" "$NBLOG" | head -n 1; }
for c in not-stun malformed not-request method too-big; do
    v=$(nb_counter "$c")
    lab_check "counter $c > 0 (${v:-none})" test "${v:-0}" -gt 0
done
lab_check "TCP closes counted (idle, byte cap, garbage all > 0)" grep -qE \
    'closed: [1-9][0-9]* idle, [1-9][0-9]* byte cap, [1-9][0-9]* garbage' "$NBLOG"
lab_check "no sanitizer report in natbroker's log" eval '! grep -q "Sanitizer" "$NBLOG"'
[ "$LAB_FAIL" -eq 0 ] || { echo "# natbroker log:"; sed 's/^/#   /' "$NBLOG" | tail -n 40; }

lab_summary
