#!/usr/bin/env bash
# test_faults.sh NATPEER NATBROKER: natpeer and natbroker through faults, in
# the lab (loss has its own lab: test_loss.sh). natbroker runs on srv in
# RFC 5780 mode with its defaults (keepalive 15 s, registrations expire after
# 45 s). Each case flushes conntrack and starts its own peers after the flush;
# every wait is for a condition, with a deadline; nothing is tried twice.
#
#  1. Broker restart. Listeners on prc and fc are registered; natbroker is
#     stopped by PID and started again on the same addresses, with an empty
#     registry. Each listener's next keepalive gets 404 and it registers
#     again by itself: both are listed within 30 s, and a connect to each
#     works (data both ways).
#  2. Lost NAT mapping, mid-session: conntrack -F on both routers of a
#     connected pair.
#     a. prc listener, fc connector: both NATs keep the source port when the
#        old entry is gone (nf_nat keeps a port that is free), so the mapping
#        comes back the same with the next outbound datagram (data channel
#        keepalive: 5 s; broker keepalive: 15 s). Promised: the session
#        continues (data both ways once both routers have the flow again)
#        and the registration goes on unchanged (same reflexive address, no
#        re-registration).
#     b. sym connector, fc listener: r-sym maps fully at random, so the flows
#        come back on new ports. Promised: the connector's next keepalive
#        comes from a new address, gets 404 and it registers again (broker
#        sees the new reflexive address); the session cannot follow (the data
#        channel only takes frames from the address that was punched): both
#        sides report it lost after 30 s without a frame, the listener with a
#        "lost" event and its reason; then a new connect works. (Should the
#        random port be the old one again, about 1 in 64000, the test
#        sees it in conntrack and asserts the continuing session instead.)
#  3. Router restart. A listener on upnp (--upnp-check 5) has a verified
#     mapping; the router reboots: its conntrack table and miniupnpd's nft
#     chains are flushed, then `natlab.sh restart-upnp` restarts miniupnpd
#     without its lease file. (restart-upnp alone is not a reboot: the
#     kernel keeps miniupnpd's rules, and the new miniupnpd lists them as
#     its own mappings, so nothing would be lost.) At its next check
#     the listener finds it gone (714), adds it again (same external port) and
#     has the broker probe it again: listed by upnpc -l within check + 5 s,
#     verified a second time, reachable from pub, and sym connects through it
#     (path upnp, data both ways).
#  4. Clean shutdown. `natpeer connect` on upnp toward a peer that is still
#     registered but gone (its listener was stopped), so it keeps punching
#     (--timeout 30): SIGTERM (a) as soon as stderr says "upnp: mapped" and
#     (b) once the plan is there. It exits within 3 s, says "interrupted",
#     removes the mapping, and upnpc -l lists no natpeer mapping.
# Needs root (exit 77 otherwise).
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbx}
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_faults.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_faults.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
UPNP_CHECK_S=5

lab_init 420
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'
NBLOG=$LAB_TMP/natbroker.log
broker_start() {
    lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen "$SRV2"
    NB_PID=$LAB_LAST_PID
    lab_wait 5 eval 'lab_udp_bound srv 3478 && lab_udp_bound srv 3479'
}
lab_check "natbroker is up" broker_start

# ---- helpers
reflexive_of() { # ID -> its reflexive address as the broker lists it (natpeer peers, from pub); 1 if not listed
    local j
    j=$(lab_exec pub timeout 15 "$NP" peers --broker "$SRV1" --json 2>/dev/null) || return 1
    grep -o "{\"id\":\"$1\",[^}]*}" <<<"$j" | sed -n 's/.*"reflexive":"\([^"]*\)".*/\1/p' | grep .
}
registered() { reflexive_of "$1" >/dev/null; }
field() { sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p" "$1" | head -n 1; }   # FILE KEY (first line that has it)
conntrack_has() { # ROUTER EGREP: a flow in ROUTER's conntrack table matches
    lab_exec "$1" conntrack -L -p udp 2>/dev/null | grep -qE -- "$2"
}
conntrack_replied() { # ROUTER EGREP: ... and it has seen traffic both ways
    lab_exec "$1" conntrack -L -p udp 2>/dev/null | grep -E -- "$2" | grep -qv UNREPLIED
}
# conntrack -F exits 1 on an empty table: not an error
ct_flush() { lab_exec "$1" sh -c 'conntrack -F >/dev/null 2>&1; exit 0'; }
mappings() { # natpeer's UDP mappings on r-upnp, as upnpc lists them: "PORT->INTERNAL"
    lab_exec upnp timeout 10 upnpc -i -l 2>/dev/null |
        sed -n "s/^ *[0-9]* UDP *\([0-9]*\)->\([0-9.:]*\) *'natpeer'.*/\1->\2/p"
}
no_mappings() { [ -z "$(mappings)" ]; }
elapsed() { echo $(( $(lab_now_ms) - $1 )); }

# listen NODE ID [ARGS...]: a listener with a FIFO on stdin; sets L_PID, L_FD,
# L_OUT, L_ERR; returns once it is registered (peers list), 1 after 15 s
listen() {
    local node=$1 id=$2; shift 2
    lab_fifo "in-$id"; L_FD=$LAB_FIFO_FD
    L_OUT=$LAB_TMP/out-$id L_ERR=$LAB_TMP/err-$id
    : >"$L_OUT"; : >"$L_ERR"
    lab_spawn "$node" "$LAB_TMP/in-$id" "$L_OUT" "$L_ERR" \
        "$NP" listen --id "$id" --broker "$SRV1" --json "$@"
    L_PID=$LAB_LAST_PID
    lab_wait 15 registered "$id"
}
N_FIFO=0
# connect NODE ID PEER [ARGS...]: a connector with a FIFO on stdin; sets C_PID,
# C_FD, C_OUT, C_ERR; returns 0 once it printed "connected", 1 otherwise (15 s)
connect() {
    local node=$1 id=$2 peer=$3; shift 3
    N_FIFO=$((N_FIFO + 1))
    lab_fifo "in-$id-$N_FIFO"; C_FD=$LAB_FIFO_FD
    C_OUT=$LAB_TMP/out-$id C_ERR=$LAB_TMP/err-$id
    : >"$C_OUT"; : >"$C_ERR"
    lab_spawn "$node" "$LAB_TMP/in-$id-$N_FIFO" "$C_OUT" "$C_ERR" \
        "$NP" connect --id "$id" --broker "$SRV1" --json "$@" "$peer"
    C_PID=$LAB_LAST_PID
    lab_wait 15 grep -q '"event"' "$C_OUT" && grep -q '"event":"connected"' "$C_OUT"
}
# both_ways TAG LFD LOUT CFD COUT: a line each way arrives (5 s each)
both_ways() {
    local tag=$1 lfd=$2 lout=$3 cfd=$4 cout=$5
    echo "to-listener-$tag" >&"$cfd"
    lab_wait 5 lab_data_has "$lout" "to-listener-$tag" || return 1
    echo "to-connector-$tag" >&"$lfd"
    lab_wait 5 lab_data_has "$cout" "to-connector-$tag"
}
dump() { local f; for f in "$@"; do echo "== ${f##*/}"; tail -n 25 "$f"; done; }

# =========================================================== 1. broker restart
lab_flush
listen prc br-prc; r1=$?; lp1=$L_PID lfd1=$L_FD lout1=$L_OUT lerr1=$L_ERR
listen fc br-fc; r2=$?; lp2=$L_PID lfd2=$L_FD lout2=$L_OUT lerr2=$L_ERR
if [ $r1 -ne 0 ] || [ $r2 -ne 0 ]; then
    lab_fail "broker restart: listeners on prc and fc register" "$(dump "$lerr1" "$lerr2")"
else
    lab_pass "broker restart: listeners br-prc and br-fc registered"
    lab_stop "$NB_PID"
    lab_check "broker restart: natbroker stopped (by PID), its ports free" \
        lab_wait 5 eval '! lab_udp_bound srv 3478'
    lab_check "broker restart: natbroker started again on the same addresses" broker_start
    t0=$(lab_now_ms)
    if lab_wait 30 eval 'registered br-prc && registered br-fc'; then
        lab_pass "broker restart: both listeners registered again by themselves in $(elapsed "$t0") ms (limit 30 s)"
    else
        lab_fail "broker restart: not both registered again within 30 s" "$(dump "$lerr1" "$lerr2")"
    fi
    lab_check "broker restart: they said so (\"registered again\")" \
        eval "grep -q '^registered again as br-prc' '$lerr1' && grep -q '^registered again as br-fc' '$lerr2'"
    # a connect to each (the table: pub -> prc and rc -> fc are direct)
    for p in "pub br-prc $lfd1 $lout1" "rc br-fc $lfd2 $lout2"; do
        read -r node peer lfd lout <<<"$p"
        if connect "$node" "br-$node" "$peer"; then
            lab_pass "broker restart: $node -> $peer connected: $(head -n 1 "$C_OUT")"
            lab_check "broker restart: $node <-> $peer data both ways" \
                both_ways "br-$node" "$lfd" "$lout" "$C_FD" "$C_OUT"
        else
            lab_fail "broker restart: $node -> $peer does not connect" "$(dump "$C_OUT" "$C_ERR")"
        fi
        exec {C_FD}>&-
        lab_stop "$C_PID"
    done
fi
lab_stop "$lp1" "$lp2"
exec {lfd1}>&- {lfd2}>&-

# ============================================ 2a. lost mapping, same ports back
lab_flush
if ! listen prc lm-prc; then
    lab_fail "lost mapping (a): listener on prc registers" "$(dump "$L_ERR")"
elif ! connect fc lm-fc lm-prc; then
    lab_fail "lost mapping (a): fc -> prc connects" "$(dump "$C_OUT" "$C_ERR" "$L_ERR")"
else
    lpid=$L_PID lfd=$L_FD lout=$L_OUT lerr=$L_ERR
    lab_pass "lost mapping (a): fc -> prc connected: $(head -n 1 "$C_OUT")"
    lab_check "lost mapping (a): data both ways before the flush" both_ways a0 "$lfd" "$lout" "$C_FD" "$C_OUT"
    refl0=$(reflexive_of lm-prc)
    prc_pub=$(field "$C_OUT" remote)   # prc's mapping toward fc, as fc sees it
    fc_pub=$(field "$lout" remote)     # fc's mapping toward prc
    ct_flush r-prc; ct_flush r-fc
    t0=$(lab_now_ms)
    # readiness: each side's data-channel keepalive (when idle for 5 s)
    # re-creates its flow; r-prc's must have seen fc's frames come back
    # through it (at most 10 s: fc's frames before prc's are dropped)
    if lab_wait 15 conntrack_replied r-prc "src=192\.168\.3\.2 dst=203\.0\.113\.101 .* src=203\.0\.113\.101 dst=203\.0\.113\.103 sport=${fc_pub##*:} dport=${prc_pub##*:} "; then
        lab_pass "lost mapping (a): r-prc has the flow again, same port ${prc_pub##*:}, answered ($(elapsed "$t0") ms)"
        lab_check "lost mapping (a): data both ways after the flush" both_ways a1 "$lfd" "$lout" "$C_FD" "$C_OUT"
    else
        lab_fail "lost mapping (a): the flow prc <-> fc did not come back on ${prc_pub##*:} within 15 s" \
            "$(lab_exec r-prc conntrack -L -p udp 2>&1)"
    fi
    # registration: the listener's keepalive (every 15 s) re-creates its flow
    # to the broker, on the same port, and the broker answers it
    if lab_wait 20 conntrack_replied r-prc "src=192\.168\.3\.2 dst=203\.0\.113\.10 .* src=203\.0\.113\.10 dst=203\.0\.113\.103 sport=3478 dport=${refl0##*:} "; then
        lab_pass "lost mapping (a): the listener's keepalive went through again ($(elapsed "$t0") ms)"
    else
        lab_fail "lost mapping (a): no answered keepalive from prc within 20 s" \
            "$(lab_exec r-prc conntrack -L -p udp 2>&1; dump "$lerr")"
    fi
    lab_check "lost mapping (a): still registered as $refl0, not registered again" \
        eval "[ \"\$(reflexive_of lm-prc)\" = '$refl0' ] && ! grep -q 'registered again' '$lerr'"
    lab_check "lost mapping (a): neither side reported the session lost" \
        eval "! grep -q lost '$lout' '$C_OUT' '$C_ERR'"
    exec {C_FD}>&-
    lab_check "lost mapping (a): connect exits 0 at EOF" eval "lab_wait 5 _lab_all_gone $C_PID && wait $C_PID"
    lab_stop "$C_PID" "$lpid"
    exec {lfd}>&-
fi

# ======================================= 2b. lost mapping, new ports (symmetric)
lab_flush
if ! listen fc lm-fc2; then
    lab_fail "lost mapping (b): listener on fc registers" "$(dump "$L_ERR")"
elif ! connect sym lm-sym lm-fc2; then
    lab_fail "lost mapping (b): sym -> fc connects" "$(dump "$C_OUT" "$C_ERR" "$L_ERR")"
else
    lpid=$L_PID lfd=$L_FD lout=$L_OUT lerr=$L_ERR cpid=$C_PID cfd=$C_FD cout=$C_OUT cerr=$C_ERR
    lab_pass "lost mapping (b): sym -> fc connected: $(head -n 1 "$cout")"
    lab_check "lost mapping (b): data both ways before the flush" both_ways b0 "$lfd" "$lout" "$cfd" "$cout"
    refl0=$(sed -n 's/^registered as lm-sym with [^;]*; reflexive \([0-9.:]*\),.*/\1/p' "$cerr")
    sym_pub=$(field "$lout" remote)   # sym's mapping toward fc, as fc sees it
    fc_pub=$(field "$cout" remote)
    ct_flush r-sym; ct_flush r-fc
    t0=$(lab_now_ms)
    # the connector's next data-channel keepalive opens a new flow to fc
    if lab_wait 12 conntrack_has r-sym "src=192\.168\.4\.2 dst=203\.0\.113\.101 .*dport=${fc_pub##*:} "; then
        new=$(lab_exec r-sym conntrack -L -p udp 2>/dev/null |
              sed -n "s/.*src=192\.168\.4\.2 dst=203\.0\.113\.101 .* src=203\.0\.113\.101 dst=203\.0\.113\.104 sport=${fc_pub##*:} dport=\([0-9]*\).*/\1/p" | head -n 1)
        lab_pass "lost mapping (b): r-sym maps sym -> fc again: port ${sym_pub##*:} before, ${new:-?} now"
    else
        new=""
        lab_fail "lost mapping (b): no new flow sym -> fc within 12 s" "$(lab_exec r-sym conntrack -L -p udp 2>&1)"
    fi
    # registration: the next keepalive (15 s) comes from a new address: 404, register again
    if lab_wait 20 grep -q '^registered again as lm-sym' "$cerr"; then
        refl1=$(sed -n 's/^registered again as lm-sym (reflexive \([0-9.:]*\)).*/\1/p' "$cerr" | head -n 1)
        lab_pass "lost mapping (b): the connector registered again by itself: $refl0 -> $refl1 ($(elapsed "$t0") ms)"
        lab_check "lost mapping (b): ... after a 404 for its keepalive" grep -q 'registration lost (404' "$cerr"
        lab_check "lost mapping (b): the broker lists lm-sym at $refl1" eval "[ \"\$(reflexive_of lm-sym)\" = '$refl1' ]"
    else
        lab_fail "lost mapping (b): the connector did not register again within 20 s" "$(dump "$cerr")"
    fi
    if [ -n "$new" ] && [ "$new" != "${sym_pub##*:}" ]; then
        # nothing authenticated crosses any more: 30 s after the last frame, both give up
        if lab_wait 40 grep -q '"event":"lost"' "$lout"; then
            lab_pass "lost mapping (b): the listener reports it, $(elapsed "$t0") ms after the flush: $(grep '"event":"lost"' "$lout")"
            lab_check "lost mapping (b): ... with the reason" \
                grep -q '"event":"lost","peer":"lm-sym","remote":"'"$sym_pub"'","reason":"nothing from the peer for 30 s"' "$lout"
        else
            lab_fail "lost mapping (b): no lost event from the listener within 40 s" "$(dump "$lout" "$lerr")"
        fi
        rc=0
        if lab_wait 10 _lab_all_gone "$cpid"; then
            wait "$cpid" || rc=$?
            lab_check "lost mapping (b): the connector exits 1 and says why (exit $rc)" \
                eval "[ $rc -eq 1 ] && grep -q '^natpeer: lost lm-fc2: nothing from it for 30 s' '$cerr'"
        else
            lab_fail "lost mapping (b): the connector still runs 10 s after the listener gave up"
        fi
        lab_stop "$cpid"; exec {cfd}>&-
        # recovered: the same id connects again from a new socket
        if connect sym lm-sym lm-fc2; then
            lab_pass "lost mapping (b): a new connect sym -> fc works: $(head -n 1 "$C_OUT")"
            lab_check "lost mapping (b): data both ways on the new session" \
                both_ways b2 "$lfd" "$lout" "$C_FD" "$C_OUT"
        else
            lab_fail "lost mapping (b): a new connect sym -> fc fails" "$(dump "$C_OUT" "$C_ERR" "$lerr")"
        fi
        exec {C_FD}>&-
        lab_stop "$C_PID"
    elif [ -n "$new" ]; then
        lab_log "lost mapping (b): r-sym drew the old port again (about 1 in 64000): the session must go on"
        lab_check "lost mapping (b): data both ways after the flush" both_ways b1 "$lfd" "$lout" "$cfd" "$cout"
        lab_stop "$cpid"; exec {cfd}>&-
    else
        lab_stop "$cpid"; exec {cfd}>&-
    fi
    lab_stop "$lpid"
    exec {lfd}>&-
fi

# =========================================================== 3. router restart
lab_flush
lab_fifo in-up; lfd=$LAB_FIFO_FD
lout=$LAB_TMP/out-up lerr=$LAB_TMP/err-up
: >"$lout"; : >"$lerr"
lab_spawn upnp "$LAB_TMP/in-up" "$lout" "$lerr" \
    "$NP" listen --id up --broker "$SRV1" --json --portmap upnp --portmap-check "$UPNP_CHECK_S" --log-level debug
lpid=$LAB_LAST_PID
if lab_wait 15 grep -q "verified by the broker" "$lerr" && lab_wait 5 grep -q "^listening as up" "$lerr"; then
    ext=$(sed -n 's/^upnp: mapped UDP \([0-9]*\) -> \([0-9.:]*\) .*/\2/p' "$lerr" | head -n 1)
    iport=$(sed -n 's/^upnp: mapped UDP \([0-9]*\) -> .*/\1/p' "$lerr" | head -n 1)
    want="${ext#*:}->192.168.6.2:$iport"
    lab_check "router restart: upnp listener mapped $ext and verified; upnpc -l lists $want" \
        eval "mappings | grep -qx '$want'"
    # what a reboot clears in the kernel, then in miniupnpd
    ct_flush r-upnp
    printf 'flush chain inet filter %s\n' miniupnpd prerouting_miniupnpd postrouting_miniupnpd |
        lab_exec r-upnp nft -f -
    lab_check "router restart: miniupnpd restarted (rules, conntrack and lease file cleared)" \
        lab_quiet "$NATLAB" restart-upnp
    t0=$(lab_now_ms)
    if lab_wait $((UPNP_CHECK_S + 5)) eval "mappings | grep -qx '$want'"; then
        lab_pass "router restart: the mapping is back, same port, $(elapsed "$t0") ms after the restart (check every $UPNP_CHECK_S s)"
    else
        lab_fail "router restart: the mapping is not back within $((UPNP_CHECK_S + 5)) s" \
            "$(mappings; dump "$lerr")"
    fi
    lab_check "router restart: the listener found it gone and added it again" \
        grep -q "^upnp: mapping was gone; mapped again UDP $iport -> $ext " "$lerr"
    lab_check "router restart: the broker verified it a second time" \
        lab_wait 5 eval "[ \$(grep -c 'verified by the broker' '$lerr') -ge 2 ]"
    printf 'unsolicited-from-pub' | lab_exec pub timeout 2 socat -u - "UDP4:$ext,sourceport=47998" || true
    lab_check "router restart: a datagram from pub to $ext reaches natpeer's socket" \
        lab_wait 5 grep -q "bytes from 203.0.113.20:47998 dropped" "$lerr"
    if connect sym rr-sym up; then
        if grep -q '"event":"connected","peer":"up","path":"upnp"' "$C_OUT"; then
            lab_pass "router restart: sym -> upnp connected through the mapping: $(head -n 1 "$C_OUT")"
        else
            lab_fail "router restart: sym -> upnp: want path upnp" "$(cat "$C_OUT")"
        fi
        lab_check "router restart: sym <-> upnp data both ways" both_ways rr "$lfd" "$lout" "$C_FD" "$C_OUT"
    else
        lab_fail "router restart: sym -> upnp does not connect" "$(dump "$C_OUT" "$C_ERR" "$lerr")"
    fi
    exec {C_FD}>&-
    lab_stop "$C_PID"
else
    lab_fail "router restart: listener on upnp has no verified mapping" "$(dump "$lerr")"
fi
lab_stop "$lpid"
exec {lfd}>&-
lab_check "router restart: the mapping is gone after the listener's SIGTERM" no_mappings

# =========================================================== 4. clean shutdown
lab_flush
lab_check "clean shutdown: no natpeer mapping to begin with" no_mappings
# a peer that is registered (45 s) but gone: the connect keeps punching.
# Killed, so that it sends no bye (a bye would free its name at once).
if listen pub ghost; then
    kill -KILL "$L_PID" 2>/dev/null; lab_stop "$L_PID"; exec {L_FD}>&-
    for when in "upnp: mapped" "plan: "; do
        tag=${when%%:*}
        out=$LAB_TMP/out-cs-$tag err=$LAB_TMP/err-cs-$tag
        : >"$err"
        lab_spawn upnp /dev/null "$out" "$err" \
            "$NP" connect --id "cs-$tag" --broker "$SRV1" --json --portmap upnp --timeout 30 ghost
        cpid=$LAB_LAST_PID
        if lab_wait 15 grep -q "^$when" "$err"; then
            lab_check "clean shutdown ($when): it is still running" test -d "/proc/$cpid"
            kill -TERM "$cpid"
            t0=$(lab_now_ms)
            if lab_wait 3 _lab_all_gone "$cpid"; then
                rc=0; wait "$cpid" || rc=$?
                lab_check "clean shutdown ($when): exited $(elapsed "$t0") ms after SIGTERM, status 1 (got $rc)" \
                    test "$rc" -eq 1
                lab_check "clean shutdown ($when): one event, failed: interrupted" \
                    grep -qx '{"event":"failed","peer":"ghost","reason":"interrupted"}' "$out"
                lab_check "clean shutdown ($when): it removed its mapping on the way out" \
                    grep -q "^upnp: removing the mapping" "$err"
            else
                lab_fail "clean shutdown ($when): still running 3 s after SIGTERM" "$(dump "$err")"
            fi
        else
            lab_fail "clean shutdown: no '$when' line within 15 s" "$(dump "$out" "$err")"
        fi
        lab_stop "$cpid"
        lab_check "clean shutdown ($when): upnpc -l lists no natpeer mapping" no_mappings
    done
else
    lab_fail "clean shutdown: a listener on pub registers" "$(dump "$L_ERR")"
    lab_stop "$L_PID"
fi

[ "$LAB_FAIL" -eq 0 ] || { echo "# natbroker log:"; tail -n 40 "$NBLOG" | sed 's/^/#   /'; }
lab_summary
