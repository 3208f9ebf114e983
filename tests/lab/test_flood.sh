#!/usr/bin/env bash
# test_flood.sh NATPEER NATBROKER: one host floods the broker with ten times
# its normal load of valid and junk requests; the per-source rate limit
# (docs/broker.md "Per-source rate limit", at its defaults) keeps everyone
# else served.
#
# Normal load, for this test: what a broker with 100 registered peers sees,
# about 100 requests/s - keepalives every 15 s (7/s), 5 netchecks a second
# of about 15 Binding requests each (75/s), and some 15 control requests/s
# (registers, connects, results, acks, peers pages). Ten times that, 1000
# datagrams/s, comes from one host, pub (203.0.113.20), from 8 sockets, for
# at least FLOOD_S s, in this mix (tests/lab/test_flood.sh's flood.py,
# fixed seed):
#   50% valid Binding requests (40% to 203.0.113.10:3478, 10% to the other
#       three RFC 5780 sockets)
#   25% junk: 10% random bytes (1-1200), 5% truncated STUN, 5% bad JSON,
#       5% oversized (1300-1400 bytes, STUN or control)
#   25% valid control messages: 15% register with a random id, 10% peers
#       queries (padded to 1200 bytes, as natpeer pads them)
# natbroker runs on srv in RFC 5780 mode with --keepalive 2 (a registration
# expires after 6 s without a keepalive) and its status port. Before the
# flood, listeners on fc and rc register. During the flood (checked to be
# still running when each check has finished):
#   - a third-party STUN client (Debian's `stun`) on hp1 and
#     turnutils_natdiscovery on lan1 get their usual verdicts;
#   - `natpeer peers` from hp1 lists both listeners;
#   - `natpeer connect` from prc to fc and from sym to rc connect and carry
#     a line of data;
#   - TCP Binding from hp1 is answered; a TCP burst of 600 requests from pub
#     gets at most the burst answered before natbroker closes it.
# After it: both listeners are still registered and never lost their
# registration, their keepalives were acknowledged throughout, natbroker
# still answers and stops cleanly, and its counters (status port, and the
# stop lines) show what it sustained. The figures are printed as "# ..."
# lines. Needs root (exit 77 otherwise).
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbf}
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_flood.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_flood.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
STATUS_PORT=3480
KEEPALIVE=2
FLOOD_PPS=${FLOOD_PPS:-1000} # 10 x the normal load above (override to explore)
FLOOD_S=20       # at least; it runs on until the checks are done
FLOOD_MAX_S=90   # at most: the checks must be done by then
# natbroker's defaults (broker/ratelimit.h), which this test is about
RATE=50
BURST=500

lab_init 300
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
command -v python3 >/dev/null || { lab_fail "python3 missing (the flood generator)"; lab_summary; exit 1; }

# ---------------------------------------------------------------- the flood generator
cat >"$LAB_TMP/flood.py" <<'EOF'
# flood.py DST1 DST2 PPS MIN_S MAX_S STOPFILE OUT: send PPS datagrams/s in the
# mix described in test_flood.sh, from 8 sockets, for at least MIN_S s and
# until STOPFILE exists (at most MAX_S s); count the answers; write a JSON
# summary to OUT. Payloads come from a fixed seed.
import json, os, random, select, socket, sys, time

dst1, dst2 = sys.argv[1], sys.argv[2]
pps, min_s, max_s = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
stopfile, out = sys.argv[6], sys.argv[7]
rng = random.Random(5780)
HDR = b'\x00\x01\x00\x00\x21\x12\xa4\x42'

def rb(n):
    return bytes(rng.getrandbits(8) for _ in range(n))

def tx():
    return '%016x' % rng.getrandbits(64)

def binding():
    return (dst1, 3478), HDR + rb(12)

def binding_alt():
    return rng.choice([(dst1, 3479), (dst2, 3478), (dst2, 3479)]), HDR + rb(12)

def random_bytes():
    return (dst1, 3478), rb(rng.randint(1, 1200))

def truncated():  # says 8 bytes of attributes, carries 4
    return (dst1, 3478), b'\x00\x01\x00\x08\x21\x12\xa4\x42' + rb(12) + b'\x00\x03\x00\x04'

def bad_json():
    return (dst1, 3478), ('{"v":1,"type":"register","tx":"%s","id":' % tx()).encode()

def oversized():
    if rng.random() < 0.5:
        n = rng.randint(1300, 1400) // 4 * 4
        return (dst1, 3478), b'\x00\x01' + (n - 20).to_bytes(2, 'big') + HDR[4:] + rb(n - 8)
    m = '{"v":1,"type":"peers","tx":"%s","pad":"%s"}' % (tx(), 'x' * rng.randint(1260, 1350))
    return (dst1, 3478), m.encode()

def register():
    m = '{"v":1,"type":"register","tx":"%s","id":"flood-%08x","local":[]}' % (tx(), rng.getrandbits(32))
    return (dst1, 3478), m.encode()

def peers():  # padded to 1200 bytes, as natpeer pads them (a page is no longer than its query)
    m = '{"v":1,"type":"peers","tx":"%s","offset":%d' % (tx(), rng.choice([0, 0, 24, 48]))
    m += ',"pad":"%s"}' % ('.' * (1200 - len(m) - len(',"pad":""}')))
    return (dst1, 3478), m.encode()

MIX = ([binding] * 8 + [binding_alt] * 2 + [random_bytes] * 2 + [truncated, bad_json, oversized] +
       [register] * 3 + [peers] * 2)
socks = []
for _ in range(8):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(('0.0.0.0', 0))
    s.setblocking(False)
    socks.append(s)
sent = {f.__name__: 0 for f in MIX}
got = {}
late = 0

def count(k):
    got[k] = got.get(k, 0) + 1

def drain(timeout):
    r, _, _ = select.select(socks, [], [], timeout)
    for s in r:
        while True:
            try:
                d = s.recv(4096)
            except BlockingIOError:
                break
            if d[:2] == b'\x01\x01':
                count('stun_success')
            elif d[:2] == b'\x01\x11':
                count('stun_error')
            elif d[:1] == b'{':
                try:
                    j = json.loads(d)
                    k = j.get('type', '?')
                    if k == 'error':
                        k = 'error_%s' % j.get('code')
                except ValueError:
                    k = 'undecodable'
                count(k)
            else:
                count('other')

t0 = time.monotonic()
i = 0
while True:
    now = time.monotonic() - t0
    if now >= max_s or (now >= min_s and os.path.exists(stopfile)):
        break
    due = int(now * pps)
    if due - i > pps:  # more than a second behind: skip, never burst it
        late += due - i - pps
        i = due - pps
    while i < due:
        # drawn at random (seeded), not in a fixed cycle: a cycle of 20 at
        # 1000/s would line up with the limiter's one-in-20 and let one kind through
        f = rng.choice(MIX)
        to, data = f()
        try:
            socks[i % len(socks)].sendto(data, to)
            sent[f.__name__] += 1
        except OSError:
            count('send_error')
        i += 1
    drain(0.002)
duration = time.monotonic() - t0
end = time.monotonic() + 0.5
while time.monotonic() < end:
    drain(0.05)
total = sum(sent.values())
answers = sum(v for k, v in got.items() if k != 'send_error')
json.dump({'duration_s': round(duration, 3), 'pps': pps, 'sent_total': total, 'sent': sent,
           'late_skipped': late, 'answers_total': answers, 'answers': got}, open(out, 'w'))
EOF

# ---------------------------------------------------------------- helpers
BINDING='\x00\x01\x00\x00\x21\x12\xa4\x42\x66\x6c\x6f\x6f\x64\x2d\x74\x65\x73\x74\x2d\x31'
udp_answers() { # node ip port: a Binding over UDP gets >= 32 bytes back
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
broker_alive() { [ -d "/proc/$NB_PID" ]; }
all_alive() { local p; for p in "$@"; do [ -d "/proc/$p" ] || return 1; done; }
flood_running() { [ -d "/proc/$FLOOD_PID" ]; }
# status FILE: the status port's JSON into FILE (and valid JSON)
status() {
    printf status | timeout 3 ip netns exec "$(lab_ns srv)" env XDG_CONFIG_HOME="$(lab_xdg srv)" \
        socat -T 1 - "UDP4:127.0.0.1:$STATUS_PORT" >"$1" 2>/dev/null && jq -e . "$1" >/dev/null 2>&1
}
# peers NODE FILE: `natpeer peers --json` from NODE into FILE
peers() {
    timeout 20 ip netns exec "$(lab_ns "$1")" env XDG_CONFIG_HOME="$(lab_xdg "$1")" "$NP" peers --broker "$SRV1" --json >"$2" 2>"$2.err"
}
listed() { grep -q "\"id\":\"$2\"" "$1"; } # FILE ID
registered_both() { peers pub "$LAB_TMP/peers-pre" && listed "$LAB_TMP/peers-pre" fc-l &&
    listed "$LAB_TMP/peers-pre" rc-l; }
# d BEFORE AFTER JQ-PATH: the difference of a counter between two status files
d() { echo $(($(jq "$3" "$2") - $(jq "$3" "$1"))); }

# ---------------------------------------------------------------- lab, broker, listeners
lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478 && ! lab_udp_bound srv 3479'
lab_flush
NBLOG=$LAB_TMP/natbroker.log
lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen "$SRV2" --keepalive "$KEEPALIVE" \
    --status-port "$STATUS_PORT"
NB_PID=$LAB_LAST_PID
lab_check "natbroker is up" lab_wait 5 eval \
    'lab_udp_bound srv 3478 && lab_udp_bound srv 3479 && lab_udp_bound srv '"$STATUS_PORT"
lab_check "natbroker logs its rate limit (the defaults: $RATE/s, burst $BURST)" \
    grep -qF "rate limit: $RATE requests/s per source IP (IPv6: per /64), burst $BURST" "$NBLOG"

lab_start fc "$LAB_TMP/listen-fc.log" "$NP" listen --id fc-l --broker "$SRV1" --json
LFC=$LAB_LAST_PID
lab_start rc "$LAB_TMP/listen-rc.log" "$NP" listen --id rc-l --broker "$SRV1" --json
LRC=$LAB_LAST_PID
if ! lab_wait 30 registered_both; then
    lab_fail "the listeners on fc and rc did not register" \
        "$(cat "$LAB_TMP/listen-fc.log" "$LAB_TMP/listen-rc.log")"
    lab_summary
    exit 1
fi
lab_pass "listeners fc-l (fc) and rc-l (rc) registered"
lab_check "status port answers before the flood" status "$LAB_TMP/status-0.json"

# ---------------------------------------------------------------- the flood
STOP=$LAB_TMP/flood.stop
FLOOD_OUT=$LAB_TMP/flood.json
lab_start pub "$LAB_TMP/flood.log" python3 "$LAB_TMP/flood.py" "$SRV1" "$SRV2" "$FLOOD_PPS" \
    "$FLOOD_S" "$FLOOD_MAX_S" "$STOP" "$FLOOD_OUT"
FLOOD_PID=$LAB_LAST_PID
lab_check "natbroker limits pub (log: 'rate limit: 203.0.113.20 over $RATE requests/s')" \
    lab_wait_log "$NBLOG" "rate limit: 203\\.0\\.113\\.20 over $RATE requests/s \\(burst $BURST" 10

# ---- third-party STUN clients on other hosts
rc=0
lab_exec hp1 timeout 40 stun "$SRV1" >"$LAB_TMP/stun-hp1.txt" 2>&1 || rc=$?
v=$(sed -n 's/^Primary: *//p' "$LAB_TMP/stun-hp1.txt" | sed 's/[[:space:]]*$//')
lab_check "during the flood: stun on hp1 gets its verdict ($v, exit $rc)" \
    eval '[[ "$v" == "Independent Mapping, Independent Filter"* ]]'
lab_exec lan1 timeout 40 turnutils_natdiscovery -m -f "$SRV1" >"$LAB_TMP/nd-lan1.txt" 2>&1
v=$(sed -n 's/^NAT with \(.*\(Mapping\|Filtering\)\)!$/\1/p' "$LAB_TMP/nd-lan1.txt" | paste -sd';' | sed 's/;/; /g')
lab_check "during the flood: turnutils_natdiscovery on lan1 gets its verdict (${v:-none})" \
    test "$v" = "$(lab_expect_nd lan1)"
lab_check "during the flood: UDP and TCP Binding from hp1 answered" \
    eval 'udp_answers hp1 "$SRV1" 3478 && tcp_answers hp1 "$SRV1" 3478'

# ---- the registry as another host sees it
peers hp1 "$LAB_TMP/peers-during"
lab_check "during the flood: natpeer peers from hp1 lists fc-l and rc-l" \
    eval 'listed "$LAB_TMP/peers-during" fc-l && listed "$LAB_TMP/peers-during" rc-l'

# ---- two connections, at once
printf 'hello-from-prc\n' >"$LAB_TMP/in-prc"
printf 'hello-from-sym\n' >"$LAB_TMP/in-sym"
lab_spawn prc "$LAB_TMP/in-prc" "$LAB_TMP/out-prc" "$LAB_TMP/err-prc" \
    "$NP" connect --id prc-c --broker "$SRV1" --json fc-l
CPRC=$LAB_LAST_PID
lab_spawn sym "$LAB_TMP/in-sym" "$LAB_TMP/out-sym" "$LAB_TMP/err-sym" \
    "$NP" connect --id sym-c --broker "$SRV1" --json rc-l
CSYM=$LAB_LAST_PID
lab_wait 40 _lab_all_gone "$CPRC" "$CSYM" || lab_stop "$CPRC" "$CSYM"
for c in "prc fc $CPRC" "sym rc $CSYM"; do
    read -r a b pid <<<"$c"
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    out=$LAB_TMP/out-$a
    if grep -q '"event":"connected"' "$out"; then
        path=$(sed -n 's/.*"event":"connected".*"path":"\([a-z]*\)".*/\1/p' "$out" | head -n 1)
        ms=$(sed -n 's/.*"event":"connected".*"ms":\([0-9]*\).*/\1/p' "$out" | head -n 1)
        lab_pass "during the flood: $a -> $b connected, path $path, $ms ms (exit $rc)"
    else
        lab_fail "during the flood: $a -> $b did not connect (exit $rc)" \
            "$(cat "$out" "$LAB_TMP/err-$a")"
    fi
    lab_check "during the flood: $a's line reached the listener on $b" \
        lab_wait 5 lab_data_has "$LAB_TMP/listen-$b.log" "hello-from-$a"
done

# ---- TCP: its own budget; a burst beyond it is cut off. (natbroker closes
# with requests unread, so the kernel may reset the connection before every
# answer is out: only the upper bound is exact.)
for _ in $(seq 600); do printf "$BINDING"; done >"$LAB_TMP/tcp-burst"
t0=$(lab_now_ms)
n=$(timeout 15 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" socat -T 5 -t 5 - "TCP4:$SRV1:3478" \
    <"$LAB_TMP/tcp-burst" 2>/dev/null | wc -c)
dt=$(($(lab_now_ms) - t0))
n=$((n / 68)) # RFC 5780 mode: 68-byte answers
lab_check "during the flood: 600 TCP requests from pub: at most $((BURST + 10)) answered (got $n)" \
    test "$n" -le $((BURST + 10))
lab_check "during the flood: natbroker closed that connection at the limit (after $dt ms)" \
    test "$dt" -lt 4000

lab_check "every check above ran while the flood was still on" flood_running
lab_check "status port answers during the flood" status "$LAB_TMP/status-mid.json"

# ---- stop the flood (it has run at least FLOOD_S s by the time it stops)
: >"$STOP"
lab_check "the flood generator ends" lab_wait $((FLOOD_MAX_S + 10)) _lab_all_gone "$FLOOD_PID"
wait "$FLOOD_PID" 2>/dev/null
lab_check "the flood generator wrote its summary" lab_quiet jq -e .sent_total "$FLOOD_OUT"
lab_check "status port answers after the flood" status "$LAB_TMP/status-1.json"

# ---------------------------------------------------------------- after the flood
lab_check "natbroker still running" broker_alive
# (0.5 s since pub stopped: its bucket holds RATE / 2 again)
lab_check "natbroker answers pub again once pub is back under its rate" udp_answers pub "$SRV1" 3478
peers hp1 "$LAB_TMP/peers-after"
lab_check "after the flood: natpeer peers from hp1 lists fc-l and rc-l" \
    eval 'listed "$LAB_TMP/peers-after" fc-l && listed "$LAB_TMP/peers-after" rc-l'
lab_check "both listeners still running" all_alive "$LFC" "$LRC"
for h in fc rc; do
    lab_check "the listener on $h never lost its registration" \
        eval '! grep -qE "registration lost|registered again" "$LAB_TMP/listen-$h.log"'
    lab_check "natbroker never expired $h-l" eval '! grep -qE "expire $h-l " "$NBLOG"'
done

S0=$LAB_TMP/status-0.json S1=$LAB_TMP/status-1.json
dur=$(jq .duration_s "$FLOOD_OUT")
dur_s=${dur%.*}
sent=$(jq .sent_total "$FLOOD_OUT")
late=$(jq .late_skipped "$FLOOD_OUT")
to_pub=$(jq .answers_total "$FLOOD_OUT")
ka=$(d "$S0" "$S1" .control.keepalives)
want_ka=$((2 * (dur_s / KEEPALIVE - 1)))
lab_check "keepalives acknowledged throughout: $ka during the $dur s flood (want >= $want_ka)" \
    test "$ka" -ge "$want_ka"
lab_check "the flood ran >= $FLOOD_S s at $FLOOD_PPS/s ($sent datagrams in $dur s, $late skipped)" \
    eval '[ "$dur_s" -ge "$FLOOD_S" ] && [ "$sent" -ge $((FLOOD_PPS * FLOOD_S * 9 / 10)) ]'
# pub may have at most its burst plus RATE per second answered (UDP), and is
# not cut off: at least a quarter of RATE per second.
max_pub=$((BURST + RATE * (dur_s + 2)))
min_pub=$((RATE * dur_s / 4))
lab_check "pub got $to_pub answers over UDP: at most $max_pub (burst + rate x time), at least $min_pub" \
    eval '[ "$to_pub" -le "$max_pub" ] && [ "$to_pub" -ge "$min_pub" ]'
limited=$(d "$S0" "$S1" .refusals.rate_limited)
lab_check "natbroker's status port counts the rate refusals ($limited, >= half of the $sent sent)" \
    test "$limited" -ge $((sent / 2))

# ---- natbroker stops cleanly and logs what it did
kill -TERM "$NB_PID" 2>/dev/null
if lab_wait 10 _lab_all_gone "$NB_PID"; then
    rc=0
    wait "$NB_PID" || rc=$?
    lab_check "natbroker exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0
else
    lab_fail "natbroker still running 10 s after SIGTERM"
fi
RL=$(grep -m1 'info broker: rate limit: [0-9]* requests allowed' "$NBLOG")
lab_check "natbroker logs its rate limit counters at stop" test -n "$RL"
tcp_limited=$(sed -n 's/.* \([0-9]*\) stun tcp,.*/\1/p' <<<"$RL")
lab_check "TCP requests over the limit were counted (${tcp_limited:-none})" test "${tcp_limited:-0}" -ge 1
lab_check "no sanitizer report in natbroker's log" eval '! grep -q "Sanitizer" "$NBLOG"'

# ---------------------------------------------------------------- the figures
rate() { awk -v n="$1" -v d="$dur" 'BEGIN { printf "%.0f/s", n / d }'; }
udp_rx=$(d "$S0" "$S1" .stun.udp_received)
udp_ans=$(d "$S0" "$S1" .stun.udp_answered)
udp_err=$(d "$S0" "$S1" .stun.udp_errors)
drops=$(jq '[.stun.dropped[]] | add' "$S1")
drops0=$(jq '[.stun.dropped[]] | add' "$S0")
ctl_rx=$(d "$S0" "$S1" .control.received)
ctl_rep=$(d "$S0" "$S1" .control.replies)
lab_log "flood from pub: $sent datagrams in $dur s ($(rate "$sent")), mix: $(jq -c .sent "$FLOOD_OUT")"
lab_log "pub got back: $to_pub ($(rate "$to_pub")): $(jq -c .answers "$FLOOD_OUT")"
lab_log "natbroker during the flood (status port; all hosts, pub's share is nearly all):"
lab_log "  STUN over UDP: $udp_rx received ($(rate "$udp_rx")), $udp_ans answered + $udp_err errors ($(rate $((udp_ans + udp_err)))), $((drops - drops0)) dropped as junk"
lab_log "  control: $ctl_rx handled ($(rate "$ctl_rx")), $ctl_rep replies ($(rate "$ctl_rep"))"
lab_log "  dropped by the rate limit: $limited ($(rate "$limited")), no answer, no other work"
lab_log "  answers per second over the last 10 s, mid-flood: $(jq .answers_per_s "$LAB_TMP/status-mid.json")"
lab_log "  peers: $(jq .peers "$S1") registered at the end (fc-l, rc-l, and those of pub's random ids not yet expired)"
lab_log "at stop: ${RL#*broker: }"
lab_log "natbroker's rate-limit warnings:"
grep 'warn broker: rate limit' "$NBLOG" | head -n 5 | sed 's/^/#   /'
[ "$LAB_FAIL" -eq 0 ] || { echo "# natbroker log:"; sed 's/^/#   /' "$NBLOG" | tail -n 40; }
lab_summary
