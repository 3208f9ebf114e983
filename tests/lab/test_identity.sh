#!/usr/bin/env bash
# test_identity.sh NATPEER NATBROKER: "peers are their keys", attacked in the lab.
#
# natbroker runs on srv (RFC 5780 mode, --public-list, --token SOMETOKEN123);
# every host has its own key (lab_xdg) and every natpeer gives the token.
# tcpdump records, for the whole test, srv's eth0, pub's port on the internet
# bridge (in inet), r-prc's LAN side (lan0) and prc's eth0. Each case
# flushes conntrack first and starts its own peers; every wait is for a
# condition, with a deadline. Each attack must fail for the attacker with
# nothing changed for the victims:
#
#  1. Name takeover. bob = `natpeer listen --id bob` on fc. rc (another key)
#     runs `natpeer listen --id bob`: the broker answers 409 ("held by another
#     key") and the impostor must exit non-zero; the broker never registers
#     bob with rc's key. Then 3 connects from pub each print connected with
#     key == fc's public key (`natpeer key` in fc), and their data reaches the
#     real bob (labelled with pub's key).
#  2. The holder leaves (SIGTERM: its bye frees the name at once) and rc
#     registers bob with its own key. pub, which met the real bob (its
#     known_peers has bob), runs connect bob again: exits non-zero with "key
#     for bob changed: expected FC, got RC" and no connected event; its
#     known_peers still holds fc's key. prc, which never met bob, connects to
#     the impostor (TOFU: documented) and records rc's key.
#  3. Forged and replayed plans. dave listens on prc (port-restricted: its
#     NAT admits only the broker's address:port), erin connects from pub. From
#     srv's capture, every sealed frame (0xD3) the broker sent to dave's
#     reflexive address is sent again, byte for byte, from pub with the
#     broker's address and port spoofed (raw IP_HDRINCL socket); then a plain
#     JSON plan (the codec's valid_plan shape, from "mallory") and a forged
#     0xD3 (dave's current receiver index, a counter ahead, random
#     ciphertext). prc's own capture proves they were delivered; dave
#     (--log-level debug) drops each replay as a replay (-4205, NB_SEAL_E_REPLAY)
#     and the forgery on its tag (-4204); no new "plan:" line, no event; its
#     session with erin still carries data both ways and a new connect from
#     fc still works.
#  4. What is on the wire (the captures of the whole test, read at the end):
#     no "PLAINTEXT-CANARY" (the data sent both ways in case 3), no token, no
#     64-hex-character string (the old plans' session keys) in any capture;
#     while the captures hold the spoofed plain plan's marker (the search
#     works), the erin<->dave data as 0xD3 frames (at least the lines sent,
#     each way, on pub's port and on prc's LAN side) after a 0xD1/0xD2
#     handshake between them, and sealed traffic with the broker. A connect
#     without --token gets 401: every registration that worked carried the
#     token, sealed.
#  5. listen --allow alice (gate, on fc) refuses mallory (rc): the connector
#     fails, gate's stderr says "refused mallory (key RC) is not on --allow",
#     no connected event; alice (pub) then connects, with data.
#  6. Forged result: right after alice -> gate (session id from the broker's
#     log, both real results in), tests/lab/noise_client.py (a third-party
#     Noise IK client, its own random key) sends sealed results for that
#     session naming alice and gate (404 "not held by this key" each) and
#     mallory (400 "not in session": the session is live, so the 404s are the
#     key check); `natpeer matrix --json` still shows alice/gate measured
#     direct.
# Needs root (exit 77 otherwise) and Debian's python3-dissononce.
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbi2}
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_identity.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_identity.sh PATH/TO/natpeer PATH/TO/natbroker}
PY=/usr/bin/python3
RAWUDP="$LAB_DIR/rawudp.py"
NOISE="$LAB_DIR/noise_client.py"
SRV1=203.0.113.10
SRV2=203.0.113.11
TOKEN=SOMETOKEN123
T0=$(date +%s%N)

lab_init 240
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
if ! $PY -c 'import dissononce' 2>/dev/null; then
    echo "FAIL: $PY cannot import dissononce (apt-get install python3-dissononce)"
    exit 1
fi
lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'

# ---- captures, for the whole test
CAPS=(srv inet rprc prc)
declare -A CAP_PID
cap_start() { # NAME NODE IFACE
    lab_start "$2" "$LAB_TMP/cap-$1.log" tcpdump -i "$3" --immediate-mode -U -n -w "$LAB_TMP/$1.pcap" udp
    CAP_PID[$1]=$LAB_LAST_PID
}
cap_start srv srv eth0
cap_start inet inet pub
cap_start rprc r-prc lan0
cap_start prc prc eth0
for c in "${CAPS[@]}"; do
    lab_check "tcpdump $c is listening" lab_wait 5 grep -qs "listening on" "$LAB_TMP/cap-$c.log"
done

NBLOG=$LAB_TMP/natbroker.log
lab_start srv "$NBLOG" "$NB" --public-list --token "$TOKEN" --listen "$SRV1" --listen "$SRV2"
lab_check "natbroker is up" lab_wait 5 eval 'lab_udp_bound srv 3478 && lab_udp_bound srv 3479'

# ---- helpers
np() { local n=$1; shift; lab_exec "$n" "$NP" "$@"; }
COMMON=(--broker "$SRV1" --token "$TOKEN" --json --no-upnp)
b64() { printf '%s' "$1" | base64 -w0; }
registered_as() { grep -qE "register $1 \(key $2\) from" "$NBLOG"; } # ID KEY
exited() { _lab_all_gone "$1"; }
# exit_of PID: its exit status (it must be gone)
exit_of() { local rc=0; wait "$1" || rc=$?; echo "$rc"; }
ev() { sed -n "s/.*\"event\":\"$2\".*\"$3\":\"\([^\"]*\)\".*/\1/p" "$1" | head -n 1; } # FILE EVENT FIELD
# listen NODE ID [ARGS...]: a listener with a FIFO stdin; L_PID, L_FD, L_OUT, L_ERR
listen() {
    local node=$1 id=$2; shift 2
    lab_fifo "in-$id-$node"; L_FD=$LAB_FIFO_FD
    L_OUT=$LAB_TMP/out-$id-$node L_ERR=$LAB_TMP/err-$id-$node
    lab_spawn "$node" "$LAB_TMP/in-$id-$node" "$L_OUT" "$L_ERR" "$NP" listen --id "$id" "${COMMON[@]}" "$@"
    L_PID=$LAB_LAST_PID
}
# dial NODE ID PEER [ARGS...]: a connector with a FIFO stdin, until its first
# event; D_PID, D_FD, D_OUT, D_ERR. 1 if no event within 15 s.
NDIAL=0
dial() {
    local node=$1 id=$2 peer=$3; shift 3
    NDIAL=$((NDIAL + 1))
    lab_fifo "in-d$NDIAL"; D_FD=$LAB_FIFO_FD
    D_OUT=$LAB_TMP/out-d$NDIAL-$id D_ERR=$LAB_TMP/err-d$NDIAL-$id
    lab_spawn "$node" "$LAB_TMP/in-d$NDIAL" "$D_OUT" "$D_ERR" "$NP" connect --id "$id" "${COMMON[@]}" "$@" "$peer"
    D_PID=$LAB_LAST_PID
    lab_wait 15 grep -qs '"event"' "$D_OUT"
}
# hangup FD PID NAME: EOF on the connector's stdin; it must exit 0
hangup() {
    eval "exec $1>&-"
    if lab_wait 5 exited "$2"; then
        local rc; rc=$(exit_of "$2")
        lab_check "$3: connect exits 0 at EOF (got $rc)" test "$rc" -eq 0
    else
        lab_fail "$3: connect still running 5 s after EOF"
        lab_stop "$2"
    fi
}
got_data() { grep -qF "\"data\":\"$(b64 "$2")\"" "$1"; } # FILE TEXT
count() { grep -c -- "$1" "$2" 2>/dev/null || true; }     # REGEX FILE
frames() { $PY "$RAWUDP" frames "$@"; }

FCKEY=$(np fc key 2>/dev/null) RCKEY=$(np rc key 2>/dev/null)
PUBKEY=$(np pub key 2>/dev/null) PRCKEY=$(np prc key 2>/dev/null)
lab_check "four hosts, four keys of 43 base64url characters" eval \
    '[ "$(printf "%s\n" "$FCKEY" "$RCKEY" "$PUBKEY" "$PRCKEY" | grep -xE "[A-Za-z0-9_-]{43}" | sort -u | wc -l)" -eq 4 ]'

# ======================================================================
lab_log "case 1: name takeover"
lab_flush
listen fc bob; BOB_PID=$L_PID BOB_FD=$L_FD BOB_OUT=$L_OUT BOB_ERR=$L_ERR
lab_check "1: bob registers on fc with fc's key" lab_wait 15 registered_as bob "$FCKEY"

lab_spawn rc /dev/null "$LAB_TMP/out-imp1" "$LAB_TMP/err-imp1" "$NP" listen --id bob "${COMMON[@]}"
IMP_PID=$LAB_LAST_PID
lab_check "1: impostor on rc gets 409 'bob' is held by another key" \
    lab_wait 15 grep -qs "409 'bob' is held by another key" "$LAB_TMP/err-imp1"
if lab_wait 3 exited "$IMP_PID"; then
    rc=$(exit_of "$IMP_PID")
    lab_check "1: impostor exits non-zero on the 409 (got $rc)" test "$rc" -ne 0
else
    lab_fail "1: impostor still running 3 s after its 409 (it should exit non-zero)" \
        "$(grep -c "409" "$LAB_TMP/err-imp1") x 409 on its stderr: $(tail -n 1 "$LAB_TMP/err-imp1")"
    lab_stop "$IMP_PID"
fi
lab_check "1: the broker never registered bob with rc's key" eval '! registered_as bob "$RCKEY"'

for i in 1 2 3; do
    if ! dial pub alice bob || ! grep -q '"event":"connected"' "$D_OUT"; then
        lab_fail "1.$i: pub -> bob: no connection" "$(cat "$D_OUT" "$D_ERR")"
        lab_stop "$D_PID"; continue
    fi
    k=$(ev "$D_OUT" connected key)
    lab_check "1.$i: pub -> bob connected to fc's key ($k)" test "$k" = "$FCKEY"
    msg="to-the-real-bob-$i-$RANDOM"
    echo "$msg" >&"$D_FD"
    lab_check "1.$i: the data reaches the real bob, from pub's key" eval \
        'lab_wait 5 got_data "$BOB_OUT" "$msg" && grep -F "$(b64 "$msg")" "$BOB_OUT" | grep -qF "\"peer\":\"alice\",\"key\":\"$PUBKEY\""'
    hangup "$D_FD" "$D_PID" "1.$i"
done
lab_check "1: pub's known_peers pins bob to fc's key" grep -qx "bob $FCKEY" "$(lab_xdg pub)/natpeer/known_peers"

# ======================================================================
lab_log "case 2: the holder leaves, an impostor takes the name"
lab_stop "$BOB_PID"
lab_check "2: bob's bye frees the name at once" lab_wait 5 grep -qs "bye bob (" "$NBLOG"
lab_flush
listen rc bob; IMP_PID=$L_PID IMP_FD=$L_FD IMP_OUT=$L_OUT
lab_check "2: the impostor registers bob with rc's key" lab_wait 15 registered_as bob "$RCKEY"

rc=0
timeout 20 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" \
    "$NP" connect --id alice "${COMMON[@]}" bob </dev/null >"$LAB_TMP/out-2pub" 2>"$LAB_TMP/err-2pub" || rc=$?
lab_check "2: pub (met the real bob) -> bob fails (exit $rc, not a timeout kill)" \
    eval "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
lab_check "2: ... with 'key for bob changed: expected <fc>, got <rc>'" \
    grep -qF "key for bob changed: expected $FCKEY, got $RCKEY; \`natpeer forget bob\`" "$LAB_TMP/err-2pub"
lab_check "2: ... a failed event, no connected event" eval \
    'grep -q "\"event\":\"failed\",\"peer\":\"bob\"" "$LAB_TMP/out-2pub" && ! grep -q "\"event\":\"connected\"" "$LAB_TMP/out-2pub"'
lab_check "2: pub's known_peers still pins bob to fc's key" grep -qx "bob $FCKEY" "$(lab_xdg pub)/natpeer/known_peers"

if dial prc carol bob && grep -q '"event":"connected"' "$D_OUT"; then
    k=$(ev "$D_OUT" connected key)
    lab_check "2: prc (never met bob) connects to the impostor, key rc's (TOFU, documented)" test "$k" = "$RCKEY"
    echo "carol-to-bob" >&"$D_FD"
    lab_check "2: ... and reaches it" lab_wait 5 got_data "$IMP_OUT" "carol-to-bob"
    lab_check "2: prc's known_peers records rc's key for bob" grep -qx "bob $RCKEY" "$(lab_xdg prc)/natpeer/known_peers"
    hangup "$D_FD" "$D_PID" "2 prc"
else
    lab_fail "2: prc -> bob (the impostor): no connection" "$(cat "$D_OUT" "$D_ERR")"
    lab_stop "$D_PID"
fi
lab_check "2: the impostor never connected with pub" eval '! grep -q "\"event\":\"connected\",\"peer\":\"alice\"" "$IMP_OUT"'
lab_stop "$IMP_PID"

# ======================================================================
lab_log "case 3: forged and replayed plans"
lab_flush
listen prc dave --log-level debug; DAVE_PID=$L_PID DAVE_FD=$L_FD DAVE_OUT=$L_OUT DAVE_ERR=$L_ERR
lab_check "3: dave registers on prc" lab_wait 15 registered_as dave "$PRCKEY"
DAVE_PUB=$(sed -n "s/.*register dave (key [^)]*) from \([0-9.]*:[0-9]*\):.*/\1/p" "$NBLOG" | tail -n 1)
CANARY="PLAINTEXT-CANARY-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
ERIN_UP=0
if dial pub erin dave && grep -q '"event":"connected"' "$D_OUT"; then
    ERIN_PID=$D_PID ERIN_FD=$D_FD ERIN_OUT=$D_OUT ERIN_UP=1
    lab_check "3: erin (pub) -> dave (prc) connected, key prc's" test "$(ev "$ERIN_OUT" connected key)" = "$PRCKEY"
    DAVE_AT=$(ev "$ERIN_OUT" connected remote)
    lab_check "3: dave's connected event" lab_wait 5 grep -qs '"event":"connected","peer":"erin"' "$DAVE_OUT"
    ERIN_AT=$(ev "$DAVE_OUT" connected remote)
    for i in 1 2 3; do
        echo "$CANARY-a2b-$i" >&"$ERIN_FD"
        echo "$CANARY-b2a-$i" >&"$DAVE_FD"
    done
    lab_check "3: canary lines erin -> dave arrive" eval \
        'lab_wait 5 got_data "$DAVE_OUT" "$CANARY-a2b-3" && got_data "$DAVE_OUT" "$CANARY-a2b-1" && got_data "$DAVE_OUT" "$CANARY-a2b-2"'
    lab_check "3: canary lines dave -> erin arrive" eval \
        'lab_wait 5 got_data "$ERIN_OUT" "$CANARY-b2a-3" && got_data "$ERIN_OUT" "$CANARY-b2a-1" && got_data "$ERIN_OUT" "$CANARY-b2a-2"'
else
    lab_fail "3: erin -> dave: no connection" "$(cat "$D_OUT" "$D_ERR")"
    lab_stop "$D_PID"
fi
plans0=$(count '^plan:' "$DAVE_ERR")
lab_check "3: dave took exactly one plan so far ($plans0)" test "$plans0" -eq 1

to_dave() { frames "$LAB_TMP/srv.pcap" --src "$SRV1:3478" --dst "$DAVE_PUB" --type d3 | awk '{print $4}'; }
lab_wait 3 eval '[ "$(to_dave | wc -l)" -ge 2 ]' # tcpdump writes each packet at once (-U, --immediate-mode)
mapfile -t SEALED < <(to_dave)
NS=${#SEALED[@]}
lab_check "3: srv's capture holds the broker's sealed frames to dave at $DAVE_PUB (registered, plan: $NS)" test "$NS" -ge 2
if [ "$NS" -ge 1 ]; then
    IDX=${SEALED[0]:2:8}
    maxc=0
    for f in "${SEALED[@]}"; do
        c=$((16#${f:10:16}))
        [ "$c" -gt "$maxc" ] && maxc=$c
        [ "${f:2:8}" = "$IDX" ] || lab_fail "3: the broker's frames to dave name two receiver indices"
    done
    FORGED="d3$IDX$(printf '%016x' $((maxc + 1000)))$(od -An -N64 -tx1 /dev/urandom | tr -d ' \n')"
    MARK="SPOOFED-PLAN-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    SESS=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
    PLAIN=$(printf '{"v":1,"type":"plan","tx":"%s","session":"%s","peer":"mallory","role":"dial","path":"direct","reason":"%s","candidates":["203.0.113.20:40000"],"username":"%s:dave","peer_key":"%s","deadline_ms":5000}' \
        "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" "$SESS" "$MARK" "$SESS" "$RCKEY")
    PLAINHEX=$(printf '%s' "$PLAIN" | od -An -v -tx1 | tr -d ' \n')
    replay0=$(count 'frame 0xd3 from the broker dropped: -4205' "$DAVE_ERR")
    tag0=$(count 'frame 0xd3 from the broker dropped: -4204' "$DAVE_ERR")
    # in order: the replays, the plain plan, then the forgery (its drop line
    # tells that dave has read everything before it)
    lab_exec pub $PY "$RAWUDP" send "$SRV1:3478" "$DAVE_PUB" "${SEALED[@]}" "$PLAINHEX" "$FORGED"
    lab_check "3: the spoofed datagrams reach prc (prc's capture: the plain plan's marker)" \
        lab_wait 5 grep -qsaF "$MARK" "$LAB_TMP/prc.pcap"
    lab_check "3: dave has read the forged 0xd3 and dropped it: bad tag (-4204)" \
        lab_wait 5 eval '[ "$(count "frame 0xd3 from the broker dropped: -4204" "$DAVE_ERR")" -eq $((tag0 + 1)) ]'
    replays=$(( $(count 'frame 0xd3 from the broker dropped: -4205' "$DAVE_ERR") - replay0 ))
    lab_check "3: dave dropped each of the $NS replayed frames as a replay (-4205): $replays" test "$replays" -eq "$NS"
    lab_check "3: no new plan on dave's stderr" test "$(count '^plan:' "$DAVE_ERR")" -eq "$plans0"
    lab_check "3: no event for mallory, no failed or lost event on dave's stdout" eval \
        '! grep -qE "\"peer\":\"mallory\"|\"event\":\"(failed|lost)\"" "$DAVE_OUT"'
fi
if [ "$ERIN_UP" = 1 ]; then
    echo "erin-after-the-spoofing" >&"$ERIN_FD"
    lab_check "3: dave's session still carries erin's data" lab_wait 5 got_data "$DAVE_OUT" "erin-after-the-spoofing"
    echo "dave-after-the-spoofing" >&"$DAVE_FD"
    lab_check "3: ... and dave's data to erin" lab_wait 5 got_data "$ERIN_OUT" "dave-after-the-spoofing"
fi
if dial fc frank dave && grep -q '"event":"connected"' "$D_OUT"; then
    lab_check "3: dave is still reachable: fc connects, key prc's" test "$(ev "$D_OUT" connected key)" = "$PRCKEY"
    hangup "$D_FD" "$D_PID" "3 fc"
else
    lab_fail "3: fc -> dave after the spoofing: no connection" "$(cat "$D_OUT" "$D_ERR")"
    lab_stop "$D_PID"
fi
[ "$ERIN_UP" = 1 ] && hangup "$ERIN_FD" "$ERIN_PID" "3 erin"
lab_stop "$DAVE_PID"

# ======================================================================
lab_log "case 5: listen --allow"
lab_flush
listen fc gate --allow alice; GATE_PID=$L_PID GATE_OUT=$L_OUT GATE_ERR=$L_ERR
lab_check "5: gate registers on fc" lab_wait 15 registered_as gate "$FCKEY"
rc=0
timeout 20 ip netns exec "$(lab_ns rc)" env XDG_CONFIG_HOME="$(lab_xdg rc)" \
    "$NP" connect --id mallory "${COMMON[@]}" --timeout 2 gate </dev/null >"$LAB_TMP/out-5m" 2>"$LAB_TMP/err-5m" || rc=$?
lab_check "5: mallory (rc) -> gate fails (exit $rc, not a timeout kill), failed event" \
    eval "[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q '\"event\":\"failed\",\"peer\":\"gate\"' '$LAB_TMP/out-5m'"
lab_check "5: gate's stderr: refused mallory (key rc's) is not on --allow" \
    grep -qF "natpeer: refused mallory (key $RCKEY) is not on --allow" "$GATE_ERR"
lab_check "5: gate's stdout has no connected event" eval '! grep -q "\"event\":\"connected\"" "$GATE_OUT"'
SESSION=
if dial pub alice gate && grep -q '"event":"connected"' "$D_OUT"; then
    lab_check "5: alice (pub) -> gate connected, key fc's" test "$(ev "$D_OUT" connected key)" = "$FCKEY"
    echo "alice-to-gate" >&"$D_FD"
    lab_check "5: ... with data, from pub's key" eval \
        'lab_wait 5 got_data "$GATE_OUT" "alice-to-gate" && grep -qF "\"event\":\"connected\",\"peer\":\"alice\"" "$GATE_OUT"'
    SESSION=$(sed -n 's/.*connect alice ([^)]*) -> gate ([^)]*): session \([0-9a-f]\{16\}\),.*/\1/p' "$NBLOG" | tail -n 1)
    hangup "$D_FD" "$D_PID" "5 alice"
else
    lab_fail "5: alice -> gate: no connection" "$(cat "$D_OUT" "$D_ERR")"
    lab_stop "$D_PID"
fi

# ======================================================================
lab_log "case 6: a forged result"
if [ -z "$SESSION" ]; then
    lab_fail "6: no session alice -> gate in the broker's log"
else
    lab_check "6: both real results of session $SESSION are in" lab_wait 5 eval \
        'grep -q "result $SESSION from alice (peer gate): connected, path direct" "$NBLOG" &&
         grep -q "result $SESSION from gate (peer alice): connected, path direct" "$NBLOG"'
    res() { printf '{"v":1,"type":"result","session":"%s","id":"%s","outcome":"failed","path":"none","ms":1}' "$SESSION" "$1"; }
    rc=0
    lab_exec rc $PY "$NOISE" --broker "$SRV1" --timeout 5 "$(res alice)" "$(res gate)" "$(res mallory)" \
        >"$LAB_TMP/out-6" 2>"$LAB_TMP/err-6" || rc=$?
    lab_check "6: the Noise client shook hands and got 3 sealed replies (exit $rc)" test "$rc" -eq 0
    lab_check "6: its key is its own (not alice's, not gate's)" eval \
        'k=$(sed -n "s/^noise_client: our key //p" "$LAB_TMP/out-6" "$LAB_TMP/err-6"); [ ${#k} -eq 43 ] && [ "$k" != "$PUBKEY" ] && [ "$k" != "$FCKEY" ]'
    lab_check "6: result as alice: 404 'alice' is not held by this key" \
        grep -qE "^\{\"v\":1,\"type\":\"error\",\"tx\":\"[0-9a-f]{16}\",\"code\":404,\"reason\":\"'alice' is not held by this key\"\}$" "$LAB_TMP/out-6"
    lab_check "6: result as gate: 404 'gate' is not held by this key" \
        grep -qF "\"code\":404,\"reason\":\"'gate' is not held by this key\"" "$LAB_TMP/out-6"
    lab_check "6: result as mallory: 400 not in session (the session is live: the 404s are the key check)" \
        grep -qF "\"code\":400,\"reason\":\"'mallory' is not in session '$SESSION'\"" "$LAB_TMP/out-6"
    lab_check "6: the broker logged the forged results as refused" eval \
        'grep -q "refused result .alice. from .*: 404" "$NBLOG" && grep -q "refused result .gate. from .*: 404" "$NBLOG"'
    entry=$(timeout 10 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" \
        "$NP" matrix --broker "$SRV1" --json 2>/dev/null | grep -o '{"a":"alice","b":"gate"[^}]*}' | head -n 1)
    lab_check "6: the matrix still shows alice -> gate measured direct" eval \
        '[ -n "$entry" ] && grep -q "\"measured\":\"direct\"" <<<"$entry"' 
    [ -n "$entry" ] && lab_log "matrix: $entry"
fi
lab_stop "$GATE_PID"

# ======================================================================
lab_log "case 4: what was on the wire"
rc=0
timeout 20 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" \
    "$NP" connect --id notoken --broker "$SRV1" --json --no-upnp gate </dev/null \
    >"$LAB_TMP/out-4t" 2>"$LAB_TMP/err-4t" || rc=$?
lab_check "4: without --token the broker refuses (401, exit $rc): the token is needed, so it was sent" \
    eval "[ $rc -ne 0 ] && grep -q '401' '$LAB_TMP/out-4t' '$LAB_TMP/err-4t'"
for c in "${CAPS[@]}"; do lab_stop "${CAP_PID[$c]}"; done
for c in "${CAPS[@]}"; do
    f=$LAB_TMP/$c.pcap
    n=$(frames "$f" | wc -l)
    lab_check "4: capture $c is not empty ($n UDP datagrams)" test "$n" -gt 20
    lab_check "4: capture $c: no PLAINTEXT-CANARY" eval '! grep -qaF PLAINTEXT-CANARY "$f"'
    lab_check "4: capture $c: no token" eval '! grep -qaF "$TOKEN" "$f"'
    lab_check "4: capture $c: no 64-hex-character string" eval '! grep -qaE "[0-9a-fA-F]{64}" "$f"'
done
lab_check "4: the search works: the spoofed plain plan's marker is in inet's capture" grep -qaF "${MARK:-none}" "$LAB_TMP/inet.pcap"
if [ -n "${ERIN_AT:-}" ] && [ -n "${DAVE_AT:-}" ]; then
    a2b=$(frames "$LAB_TMP/inet.pcap" --src "$ERIN_AT" --dst "$DAVE_AT" --type d3 | wc -l)
    b2a=$(frames "$LAB_TMP/inet.pcap" --src "$DAVE_AT" --dst "$ERIN_AT" --type d3 | wc -l)
    lab_check "4: pub's port: erin -> dave data as 0xd3 frames ($a2b, >= 4 lines)" test "$a2b" -ge 4
    lab_check "4: pub's port: dave -> erin data as 0xd3 frames ($b2a, >= 4 lines)" test "$b2a" -ge 4
    lab_check "4: pub's port: erin's 0xd1 to dave and dave's 0xd2 back" eval \
        '[ "$(frames "$LAB_TMP/inet.pcap" --src "$ERIN_AT" --dst "$DAVE_AT" --type d1 | wc -l)" -ge 1 ] &&
         [ "$(frames "$LAB_TMP/inet.pcap" --src "$DAVE_AT" --dst "$ERIN_AT" --type d2 | wc -l)" -ge 1 ]'
    a2b=$(frames "$LAB_TMP/rprc.pcap" --src "$ERIN_AT" --dst 192.168.3.2 --type d3 | wc -l)
    b2a=$(frames "$LAB_TMP/rprc.pcap" --src 192.168.3.2 --dst "$ERIN_AT" --type d3 | wc -l)
    lab_check "4: prc's LAN: erin -> dave 0xd3 frames ($a2b) and back ($b2a), >= 4 each" \
        eval "[ $a2b -ge 4 ] && [ $b2a -ge 4 ]"
    e=${ERIN_AT%:*}
    lab_check "4: srv: erin's handshake with the broker (0xd1) and sealed frames both ways" eval \
        '[ "$(frames "$LAB_TMP/srv.pcap" --src "$ERIN_AT" --dst "$SRV1:3478" --type d1 | wc -l)" -ge 1 ] &&
         [ "$(frames "$LAB_TMP/srv.pcap" --src "$ERIN_AT" --dst "$SRV1:3478" --type d3 | wc -l)" -ge 2 ] &&
         [ "$(frames "$LAB_TMP/srv.pcap" --src "$SRV1:3478" --dst "$ERIN_AT" --type d3 | wc -l)" -ge 2 ]'
else
    lab_fail "4: no erin <-> dave addresses (case 3 did not connect)"
fi

[ "$LAB_FAIL" -eq 0 ] || { echo "# natbroker log:"; tail -n 40 "$NBLOG" | sed 's/^/#   /'; }
lab_log "took $(( ($(date +%s%N) - T0) / 1000000 )) ms"
lab_summary
