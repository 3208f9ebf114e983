#!/usr/bin/env bash
# test_relay_abuse.sh NATPEER NATBROKER: one TURN user tries to exceed its
# allocation and bandwidth caps while a legitimate relayed pair keeps flowing
# (issue 14).
#
# natbroker on srv: --turn-secret SECRET --max-allocations-per-user 2
# --relay-bandwidth 200000 --status-port 9999 (its status JSON, asked inside
# srv, gives the relay counters). turnutils_peer (a UDP echo) on pub:3480.
#  - A legitimate pair: natpeer listen on prc, natpeer connect from sym (the
#    plan is path "relay"). Both send a numbered line every 100 ms through
#    their stdin FIFOs for the whole abuse; at the end every line must have
#    arrived on the other side (--json data events, decoded), neither side
#    saw a "lost" or "failed" event, and connect is still running (then it
#    exits 0 at EOF).
#  - The abuser, on fc, holds REST credentials for ONE user ("abuser"):
#    (a) 5 allocations from 5 source ports (a small python TURN client
#        embedded below): exactly 2 granted, 3 refused with 486; while it
#        holds them, 3 parallel turnutils_uclient runs as the same user
#        are each refused with 486 and get no relayed address; the broker's
#        quota_user counter and its "486 quota-user" log line agree.
#    (b) then one uclient blasts 2000 x 1200 B over a channel with no pacing
#        (-z 1), about 6x the cap: it gets back under half of what it sent,
#        and the bytes relayed (status counters, sampled every 100 ms, and
#        the bytes pub's firewall counted for the peer) stay within
#        cap x (window + 1 s of burst).
#    (c) an Allocate asking LIFETIME 7200 is granted at most 3600 (so is a
#        Refresh asking 7200);
#    (d) REST credentials whose expiry is in the past are refused with 401
#        (the broker counts expired_credentials), so are ones that claim to
#        live 30 days; the same client with a fresh expiry is granted.
# Conntrack: the whole lab is flushed before the pair starts; between abuse
# cases only r-fc (the abuser's router) is flushed, since flushing r-sym
# while the pair runs would move sym's fully random mapping off the 5-tuple
# its allocation belongs to.
# Needs root (exit 77 otherwise) and /usr/bin/python3. About 60 s.
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbra}
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_relay_abuse.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_relay_abuse.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
PORT=3478
PEER=203.0.113.20
PEER_PORT=3480
STATUS_PORT=9999
SECRET=SECRET
CAP=200000          # --relay-bandwidth, bytes/s per allocation, both ways
PER_USER=2          # --max-allocations-per-user
BLAST_N=2000
BLAST_LEN=1200
PY=/usr/bin/python3

lab_init 240
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
for t in turnutils_uclient turnutils_peer "$PY"; do
    command -v "$t" >/dev/null || { lab_fail "$t missing (packages coturn, python3)"; lab_summary; exit 1; }
done
T0=$(lab_now_ms)

# ---------------------------------------------------------------- python
# A minimal TURN client (RFC 8656 over UDP, long-term credentials, TURN REST
# usernames) and a status poller. Modes:
#   quota SERVER SECRET NAME N STOPFILE   N allocations from N sockets; hold
#                                         them until STOPFILE, then delete
#   lifetime SERVER SECRET NAME LT        Allocate and Refresh asking LT
#   creds SERVER SECRET USERNAME          one Allocate with this exact username
#   poll PORT OUT STOPFILE                status counters every 100 ms
#   status PORT                           the counters once
cat >"$LAB_TMP/turn.py" <<'EOF'
import base64, hashlib, hmac, json, os, socket, struct, sys, time
MAGIC = 0x2112A442
def attr(t, v):
    return struct.pack('!HH', t, len(v)) + v + b'\0' * (-len(v) % 4)
def build(mtype, tid, attrs, key=None):
    body = b''.join(attrs)
    if key:
        hdr = struct.pack('!HHI', mtype, len(body) + 24, MAGIC) + tid
        body += attr(0x0008, hmac.new(key, hdr + body, hashlib.sha1).digest())
    return struct.pack('!HHI', mtype, len(body), MAGIC) + tid + body
def parse(d):
    mtype, mlen, _ = struct.unpack_from('!HHI', d)
    a, off = {}, 20
    while off + 4 <= min(len(d), 20 + mlen):
        t, l = struct.unpack_from('!HH', d, off)
        a.setdefault(t, d[off + 4:off + 4 + l])
        off += 4 + l + (-l % 4)
    return mtype, d[8:20], a
def code_of(mtype, a):
    if mtype & 0x0110 == 0x0100:
        return 200
    e = a.get(0x0009, b'\0\0\0\0')
    return (e[2] & 7) * 100 + e[3]
def xact(s, srv, mtype, attrs, key=None):
    tid = os.urandom(12)
    m = build(mtype, tid, attrs, key)
    for _ in range(4):
        s.sendto(m, srv)
        end = time.time() + 0.5
        while time.time() < end:
            s.settimeout(max(0.01, end - time.time()))
            try:
                d, _ = s.recvfrom(2048)
            except socket.timeout:
                break
            if len(d) >= 20 and d[8:20] == tid:
                mt, _, a = parse(d)
                return code_of(mt, a), a
    return 0, {}
class Alloc:
    def __init__(self, srv, username, password):
        self.srv, self.user, self.pw = srv, username.encode(), password.encode()
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(('0.0.0.0', 0))
        self.key = None
    def auth(self):
        return [attr(0x0006, self.user), attr(0x0014, self.realm), attr(0x0015, self.nonce)]
    def allocate(self, lifetime=None):
        base = [attr(0x0019, bytes([17, 0, 0, 0]))]
        if lifetime is not None:
            base.append(attr(0x000D, struct.pack('!I', lifetime)))
        c, a = xact(self.s, self.srv, 0x0003, base)
        if c != 401:
            return c, a
        self.realm, self.nonce = a.get(0x0014, b''), a.get(0x0015, b'')
        self.key = hashlib.md5(self.user + b':' + self.realm + b':' + self.pw).digest()
        return xact(self.s, self.srv, 0x0003, self.auth() + base, self.key)
    def refresh(self, lifetime):
        return xact(self.s, self.srv, 0x0004,
                    self.auth() + [attr(0x000D, struct.pack('!I', lifetime))], self.key)
def rest(secret, username):
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
def relay_of(a):
    v = a.get(0x0016)
    if not v or len(v) < 8:
        return '-'
    port = struct.unpack('!H', v[2:4])[0] ^ (MAGIC >> 16)
    ip = struct.unpack('!I', v[4:8])[0] ^ MAGIC
    return '%s:%d' % (socket.inet_ntoa(struct.pack('!I', ip)), port)
def lifetime_of(a):
    v = a.get(0x000D)
    return struct.unpack('!I', v)[0] if v and len(v) == 4 else -1
def counters(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        s.sendto(b'status', ('127.0.0.1', port))
        r = json.loads(s.recvfrom(65536)[0])['relay']
        return [r['bytes_to_peer'], r['bytes_from_peer'], r['dropped']['bandwidth'],
                r['refused']['quota_user'], r['refused']['expired_credentials'], r['allocations']]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    finally:
        s.close()
mode, args = sys.argv[1], sys.argv[2:]
if mode in ('status', 'poll'):
    port = int(args[0])
    if mode == 'status':
        c = counters(port)
        print(' '.join(map(str, c)) if c else 'none')
        sys.exit(0)
    out, stop, end = open(args[1], 'a'), args[2], time.time() + 200
    while not os.path.exists(stop) and time.time() < end:
        c = counters(port)
        if c:
            out.write('%d %s\n' % (time.time() * 1000, ' '.join(map(str, c))))
            out.flush()
        time.sleep(0.1)
    sys.exit(0)
srv, secret = (args[0], 3478), args[1]
if mode == 'quota':
    name, n, stop = args[2], int(args[3]), args[4]
    username = '%d:%s' % (time.time() + 3600, name)
    held = []
    for i in range(n):
        al = Alloc(srv, username, rest(secret, username))
        c, a = al.allocate()
        print('alloc %d code=%d relay=%s' % (i, c, relay_of(a)), flush=True)
        if c == 200:
            held.append(al)
    print('holding %d' % len(held), flush=True)
    end = time.time() + 60
    while not os.path.exists(stop) and time.time() < end:
        time.sleep(0.05)
    for i, al in enumerate(held):
        print('released %d code=%d' % (i, al.refresh(0)[0]), flush=True)
elif mode == 'lifetime':
    name, lt = args[2], int(args[3])
    username = '%d:%s' % (time.time() + 3600, name)
    al = Alloc(srv, username, rest(secret, username))
    c, a = al.allocate(lt)
    print('allocate code=%d lifetime=%d relay=%s' % (c, lifetime_of(a), relay_of(a)))
    if c == 200:
        c, a = al.refresh(lt)
        print('refresh code=%d lifetime=%d' % (c, lifetime_of(a)))
        print('delete code=%d' % al.refresh(0)[0])
elif mode == 'creds':
    username = args[2]
    al = Alloc(srv, username, rest(secret, username))
    c, a = al.allocate()
    print('code=%d relay=%s' % (c, relay_of(a)))
    if c == 200:
        al.refresh(0)
EOF

# ---------------------------------------------------------------- helpers
pyc() { local n=$1; shift; lab_exec "$n" timeout 30 "$PY" "$LAB_TMP/turn.py" "$@"; }
# status: the relay counters "to from bw quota expired allocs" (or "none")
status() { lab_exec srv timeout 5 "$PY" "$LAB_TMP/turn.py" status "$STATUS_PORT"; }
st_field() { local -a f; read -r -a f <<<"$1"; echo "${f[$2]:-0}"; }   # LINE INDEX
flush_fc() { ip netns exec "$(lab_ns r-fc)" conntrack -F >/dev/null 2>&1 || true; }
peer_pkts() {   # "packets bytes" pub's INPUT counted for udp dport PEER_PORT
    ip netns exec "$(lab_ns pub)" iptables -w -nvxL INPUT 2>/dev/null |
        awk -v p="dpt:$PEER_PORT" '$0 ~ p { print $1, $2; exit }'
}
server_ready() { lab_udp_bound srv "$PORT" && lab_udp_bound srv 3479 && [ "$(status)" != none ]; }

lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_check "lab's coturn stopped: srv:3478 free" lab_wait 5 eval '! lab_udp_bound srv 3478'

NBLOG=$LAB_TMP/natbroker.log
lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen "$SRV2" --log-level info \
    --turn-secret "$SECRET" --max-allocations-per-user "$PER_USER" \
    --relay-bandwidth "$CAP" --status-port "$STATUS_PORT" --birthday off
NB_PID=$LAB_LAST_PID
if ! lab_wait 10 server_ready; then
    lab_fail "natbroker up with relay counters on status port $STATUS_PORT" \
        "$(tail -n 20 "$NBLOG"; echo "status: $(status)")"
    lab_summary; exit 1
fi
lab_pass "natbroker up (2 allocations per user, $CAP B/s per allocation), status has relay counters"

lab_start pub "$LAB_TMP/peer.log" turnutils_peer -L "$PEER" -p "$PEER_PORT"
lab_check "turnutils_peer (echo) on $PEER:$PEER_PORT" lab_wait_udp pub "$PEER_PORT" 5
ip netns exec "$(lab_ns pub)" iptables -w -I INPUT -p udp --dport "$PEER_PORT"   # a counter only

# ---------------------------------------------------------------- the pair
lab_flush
LOUT=$LAB_TMP/out-legit-l COUT=$LAB_TMP/out-legit-c
lab_fifo in-l; LFD=$LAB_FIFO_FD
lab_spawn prc "$LAB_TMP/in-l" "$LOUT" "$LAB_TMP/err-legit-l" \
    "$NP" listen --id legit-l --broker "$SRV1" --json --no-upnp
LPID=$LAB_LAST_PID
if ! lab_wait 15 grep -qs "registered as legit-l" "$LAB_TMP/err-legit-l"; then
    lab_fail "prc: listener did not register" "$(cat "$LAB_TMP/err-legit-l")"
    lab_summary; exit 1
fi
lab_fifo in-c; CFD=$LAB_FIFO_FD
lab_spawn sym "$LAB_TMP/in-c" "$COUT" "$LAB_TMP/err-legit-c" \
    "$NP" connect --id legit-c --broker "$SRV1" --json --no-upnp legit-l
CPID=$LAB_LAST_PID
if ! lab_wait 15 grep -qs '"event"' "$COUT" || ! grep -q '"event":"connected".*"path":"relay"' "$COUT"; then
    lab_fail "sym -> prc: no relayed connection" "$(cat "$COUT" "$LAB_TMP/err-legit-c")"
    lab_summary; exit 1
fi
lab_pass "sym -> prc connected, path relay ($(sed -n 's/.*"relay":"\([^"]*\)".*/\1/p' "$COUT" | head -n 1))"

# one numbered line every 100 ms each way until $LAB_TMP/stop-writers
writer() {   # FD TAG: writes TAG-1, TAG-2, ...; the count goes to $LAB_TMP/TAG.n
    local fd=$1 tag=$2 i=0
    while [ ! -e "$LAB_TMP/stop-writers" ] && [ $i -lt 2000 ]; do
        i=$((i + 1))
        echo "$tag-$i" >&"$fd"
        sleep 0.1
    done
    echo "$i" >"$LAB_TMP/$tag.n"
}
writer "$CFD" c2l & LAB_PIDS+=("$!"); W1=$!
writer "$LFD" l2c & LAB_PIDS+=("$!"); W2=$!
lab_wait 5 lab_data_has "$LOUT" c2l-3 && lab_wait 5 lab_data_has "$COUT" l2c-3
lab_check "the pair's numbered lines flow both ways before the abuse" \
    eval 'lab_data_has "$LOUT" c2l-3 && lab_data_has "$COUT" l2c-3'

# status poller (100 ms) for the whole abuse
POLL=$LAB_TMP/poll.txt
lab_start srv "$LAB_TMP/poll.log" "$PY" "$LAB_TMP/turn.py" poll "$STATUS_PORT" "$POLL" "$LAB_TMP/stop-poll"
POLL_PID=$LAB_LAST_PID

# ---------------------------------------------------------------- (a) quota
flush_fc
S0=$(status)
QOUT=$LAB_TMP/quota.out
lab_start fc "$QOUT" "$PY" "$LAB_TMP/turn.py" quota "$SRV1" "$SECRET" abuser 5 "$LAB_TMP/stop-quota"
QPID=$LAB_LAST_PID
if lab_wait 15 grep -qs '^holding' "$QOUT"; then
    granted=$(grep -c '^alloc .* code=200 ' "$QOUT")
    q486=$(grep -c '^alloc .* code=486 ' "$QOUT")
    lab_check "(a) abuser asks 5 allocations as one user: $granted granted (want $PER_USER), $q486 refused 486 (want 3)" \
        test "$granted" -eq "$PER_USER" -a "$q486" -eq 3
    # while it holds them: coturn's client, 3 at once, same user
    upids=()
    for k in 1 2 3; do
        lab_start fc "$LAB_TMP/uc-quota-$k.log" timeout 20 turnutils_uclient -v -W "$SECRET" -u abuser \
            -e "$PEER" -r "$PEER_PORT" -n 5 -m 1 -l 100 -c "$SRV1"
        upids+=("$LAB_LAST_PID")
    done
    lab_wait 25 _lab_all_gone "${upids[@]}"
    for k in 1 2 3; do
        rc=0; wait "${upids[$((k - 1))]}" || rc=$?
        ulog=$LAB_TMP/uc-quota-$k.log
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q 'error 486' "$ulog" && ! grep -q 'Received relay addr' "$ulog"; then
            lab_pass "(a) turnutils_uclient #$k as the same user: 486, no relayed address (exit $rc)"
        else
            lab_fail "(a) turnutils_uclient #$k as the same user: want 486 and no allocation (exit $rc)" \
                "$(grep -v 'msz=' "$ulog" | tail -n 12)"
        fi
    done
else
    lab_fail "(a) the quota client did not finish its allocations" "$(cat "$QOUT")"
fi
touch "$LAB_TMP/stop-quota"
lab_wait 10 _lab_all_gone "$QPID"
lab_check "(a) the 2 granted allocations are deleted again (Refresh 0: 200)" \
    test "$(grep -c '^released .* code=200' "$QOUT")" -eq "$PER_USER"
S1=$(status)
dq=$(($(st_field "$S1" 3) - $(st_field "$S0" 3)))
lab_check "(a) broker status: quota_user refusals +$dq (want >= 6)" test "$dq" -ge 6
lab_check "(a) broker log: 'relay: refused ... user ...:abuser: 486 quota-user'" \
    grep -qE 'relay: refused .* user [0-9]+:abuser: 486 quota-user' "$NBLOG"

# ---------------------------------------------------------------- (b) bandwidth
flush_fc
read -r pk0 pb0 <<<"$(peer_pkts)"
BT0=$(lab_now_ms)
rc=0
lab_exec fc timeout 60 turnutils_uclient -v -W "$SECRET" -u abuser -e "$PEER" -r "$PEER_PORT" \
    -n "$BLAST_N" -m 1 -l "$BLAST_LEN" -c -z 1 "$SRV1" >"$LAB_TMP/uc-blast.log" 2>&1 || rc=$?
BT1=$(lab_now_ms)
read -r pk1 pb1 <<<"$(peer_pkts)"
read -r sent recv < <(sed -n 's/.*start_mclient: tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\)$/\1 \2/p' \
    "$LAB_TMP/uc-blast.log" | tail -n 1)
sent=${sent:-0} recv=${recv:-0}
if [ "$rc" -eq 0 ] && [ "$sent" -eq "$BLAST_N" ] && grep -q 'Received relay addr' "$LAB_TMP/uc-blast.log"; then
    lab_pass "(b) abuser blast: $sent x $BLAST_LEN B sent over a channel in $((BT1 - BT0)) ms (exit 0)"
else
    lab_fail "(b) abuser blast did not run: exit $rc, sent $sent of $BLAST_N" \
        "$(grep -v 'msz=' "$LAB_TMP/uc-blast.log" | tail -n 12)"
fi
lab_check "(b) it got back $recv of $sent ($((recv * 100 / (sent > 0 ? sent : 1)))%; want < 50%)" \
    test "$sent" -gt 0 -a $((recv * 2)) -lt "$sent"
# From the 100 ms status samples (ms to_peer from_peer bw_drops ...): the
# base before the run, the first and the last sample in which the
# bandwidth-drop counter rose. At both the bucket is empty, so between them
# what is relayed (both ways) must come at the cap's rate; from the first
# byte of the blast to its last drop at most cap x (time + 1 s of burst).
read -r s_ms s_x s_d e_ms e_x e_d st_ms b_x b_d < <(awk -v t0="$BT0" -v t1="$BT1" '
    $1 <= t0 { b_x = $2 + $3; b_d = $4; prev = $4; pt = $1; next }
    b_x == "" || $1 > t1 + 200 { next }
    st == "" && $2 + $3 > b_x + 20000 { st = pt }
    $4 > prev { if (s_t == "") { s_t = $1; s_x = $2 + $3; s_d = $4 } e_t = $1; e_x = $2 + $3; e_d = $4 }
    { prev = $4; pt = $1 }
    END { if (e_t == "" || st == "") print "0 0 0 0 0 0 0 0 0";
          else print s_t, s_x, s_d, e_t, e_x, e_d, st, b_x, b_d }' "$POLL")
w_ms=$((e_ms - s_ms)) relayed=$((e_x - b_x)) bw_drops=$((e_d - b_d))
rate=$((w_ms > 0 ? (e_x - s_x) * 1000 / w_ms : 0))
offered=$((w_ms > 0 ? ((e_d - s_d) * BLAST_LEN + e_x - s_x) * 1000 / w_ms : 0))
span=$((e_ms - st_ms))
allowed=$((CAP * (span + 1000) / 1000 + 20000))   # + 20 kB for the pair and the sampling
lab_log "blast: over the cap for ${w_ms} ms, offered ${offered} B/s and relayed ${rate} B/s there;" \
    "${relayed} B relayed both ways in ${span} ms from its first byte (cap x (that + 1 s) = $((allowed - 20000)) B);" \
    "${bw_drops} datagrams dropped for bandwidth; the peer got $((pk1 - pk0)) datagrams, $((pb1 - pb0)) B with IP/UDP headers"
lab_check "(b) the relay dropped $bw_drops of the abuser's datagrams for bandwidth (want >= $((BLAST_N / 2)))" \
    test "$bw_drops" -ge $((BLAST_N / 2))
lab_check "(b) offered ${offered} B/s both ways while over the cap: >= 2x the cap (it had something to hold)" \
    test "$w_ms" -ge 500 -a "$offered" -ge $((2 * CAP))
lab_check "(b) relayed ${rate} B/s both ways while over the cap: <= cap + 10%" \
    test "$rate" -gt 0 -a "$rate" -le $((CAP * 11 / 10))
lab_check "(b) relayed $relayed B both ways in ${span} ms: <= cap x (${span} ms + 1 s) + 20 kB = $allowed B" \
    test "$relayed" -gt 0 -a "$relayed" -le "$allowed"
peer_payload=$(((pk1 - pk0) * BLAST_LEN))
lab_check "(b) peer side: pub got $((pk1 - pk0)) datagrams ($peer_payload B) + $recv echoed back <= $allowed B" \
    test $((peer_payload + recv * BLAST_LEN)) -le "$allowed"

# ---------------------------------------------------------------- (c) lifetime
flush_fc
LT=$(pyc fc lifetime "$SRV1" "$SECRET" lifer 7200 2>&1)
lt_a=$(sed -n 's/^allocate code=200 lifetime=\([0-9]*\).*/\1/p' <<<"$LT")
lt_r=$(sed -n 's/^refresh code=200 lifetime=\([0-9]*\).*/\1/p' <<<"$LT")
lab_check "(c) Allocate asking LIFETIME 7200 granted ${lt_a:-nothing} s (want 1..3600)" \
    test "${lt_a:-0}" -ge 1 -a "${lt_a:-0}" -le 3600
lab_check "(c) Refresh asking LIFETIME 7200 granted ${lt_r:-nothing} s (want 1..3600)" \
    test "${lt_r:-0}" -ge 1 -a "${lt_r:-0}" -le 3600
lab_check "(c) the lifetime allocation deleted (Refresh 0: 200)" grep -q '^delete code=200' <<<"$LT"
[ "$LAB_FAIL" -eq 0 ] || lab_log "lifetime client: $(paste -sd' ' <<<"$LT")"

# ---------------------------------------------------------------- (d) credentials
flush_fc
S2=$(status)
now=$(date +%s)
late=$(pyc fc creds "$SRV1" "$SECRET" "$((now - 60)):late" 2>&1)
lab_check "(d) REST username expired 60 s ago: $late (want 401)" grep -q '^code=401 ' <<<"$late"
S3=$(status)
de=$(($(st_field "$S3" 4) - $(st_field "$S2" 4)))
lab_check "(d) ... counted as expired_credentials by the broker (+$de)" test "$de" -ge 1
far=$(pyc fc creds "$SRV1" "$SECRET" "$((now + 30 * 86400)):far" 2>&1)
lab_check "(d) REST username valid for 30 days: $far (want 401)" grep -q '^code=401 ' <<<"$far"
fresh=$(pyc fc creds "$SRV1" "$SECRET" "$((now + 600)):fresh" 2>&1)
lab_check "(d) control: the same client with an expiry 10 min ahead: $fresh (want 200)" \
    grep -q '^code=200 ' <<<"$fresh"
bad=$(pyc fc creds "$SRV1" "not-$SECRET" "$((now + 600)):fresh" 2>&1)
lab_check "(d) control: a password from the wrong secret: $bad (want 401)" grep -q '^code=401 ' <<<"$bad"

# ---------------------------------------------------------------- the pair, after
sleep 1   # a second more of lines after the abuse
touch "$LAB_TMP/stop-writers"
lab_wait 5 _lab_all_gone "$W1" "$W2"
n_c2l=$(cat "$LAB_TMP/c2l.n" 2>/dev/null || echo 0)
n_l2c=$(cat "$LAB_TMP/l2c.n" 2>/dev/null || echo 0)
got() {   # FILE TAG N: how many of TAG-1..TAG-N arrived (distinct)
    lab_data "$1" | grep -E "^$2-[0-9]+$" | sort -u | awk -F- -v n="$3" '$2 >= 1 && $2 <= n' | wc -l
}
lab_wait 5 eval '[ "$(got "$LOUT" c2l "$n_c2l")" -eq "$n_c2l" ] && [ "$(got "$COUT" l2c "$n_l2c")" -eq "$n_l2c" ]'
g_c2l=$(got "$LOUT" c2l "$n_c2l")
g_l2c=$(got "$COUT" l2c "$n_l2c")
lab_check "pair: all $n_c2l lines sym -> prc arrived through the relay during the abuse (got $g_c2l)" \
    test "$n_c2l" -ge 100 -a "$g_c2l" -eq "$n_c2l"
lab_check "pair: all $n_l2c lines prc -> sym arrived through the relay during the abuse (got $g_l2c)" \
    test "$n_l2c" -ge 100 -a "$g_l2c" -eq "$n_l2c"
lab_check "pair: no lost/failed event on either side" \
    eval '! grep -qE "\"event\":\"(lost|failed)\"" "$LOUT" "$COUT"'
lab_check "pair: connect still running after the abuse" test -d "/proc/$CPID"
touch "$LAB_TMP/stop-poll"   # the poller holds the FIFOs open too
lab_wait 3 _lab_all_gone "$POLL_PID"
exec {CFD}>&-   # EOF: connect exits 0
if lab_wait 5 _lab_all_gone "$CPID"; then
    rc=0; wait "$CPID" || rc=$?
    lab_check "pair: connect exits 0 at EOF (got $rc)" test "$rc" -eq 0
else
    lab_fail "pair: connect still running 5 s after EOF"
fi

lab_check "natbroker still running" test -d "/proc/$NB_PID"
lab_log "relay counters at the end (to_peer from_peer bw_drops quota_user expired_creds allocations): $(status)"
lab_stop "$LPID" "$POLL_PID"
lab_log "took $(($(lab_now_ms) - T0)) ms"
[ "$LAB_FAIL" -eq 0 ] || { echo "# natbroker log (relay lines, last 30):"; grep 'relay' "$NBLOG" | tail -n 30 | sed 's/^/#   /'; }
lab_summary
