#!/usr/bin/env bash
# test_loss.sh NATPEER NATBROKER: natpeer and natbroker with NATLAB_LOSS=20%:
# every datagram that crosses the internet bridge is dropped with p = 0.2
# (each way; a round trip is lost with q = 1 - 0.8^2 = 0.36). Nothing is
# tried twice by the test: natpeer and natbroker retransmit, and the test
# asserts what their retransmission makes (nearly) certain.
#
#  1. netcheck on every lab host classifies its NAT as it was built
#     (lib.sh LAB_EXPECT), and hairpinning for hp1 (yes) and lan1 (no).
#  2. connect, for pairs the connectivity table calls direct, one of each
#     plan: fc -> pub (dial/listen), prc -> rc (punch/punch), sym -> rc
#     (dial/prime), lan1 -> lan2 (lan); path as predicted, then data both
#     ways: of 10 lines sent each way at least one arrives (the data channel
#     is datagrams: lines are not retransmitted).
#
# Why it does not flake (p = 0.2 per crossing, q = 0.36 per round trip):
#  - netcheck: a test whose answer never comes gives a wrong verdict. It is
#    sent every 100 ms for 1.6 s: 16 sends, all lost with q^16 = 8.0e-8 (the
#    old 6 sends: q^6 = 2.2e-3, about 1% of runs wrong; tests/unit/test_netcheck).
#    At most 5 such tests per run, 19 runs (11 here, 8 in the connects):
#    < 1e-5.
#  - control requests: a transaction (6 sends, 11.75 s) gets no reply with
#    q^6 = 2.2e-3. A registration takes one or two (with the broker's
#    challenge): an attempt fails with <= 4.4e-3. A listener keeps trying
#    (backoff 1 s, 2 s; the test waits 40 s); a connector gives up after two
#    failed attempts: <= 2e-5. The connect request: 2 transactions, q^12 =
#    4.7e-6 (peer/client.h).
#  - the listener's plan, pushed by the broker at 0, 0.25, 0.75, 1.75, 3.75
#    and 7.75 s until acked: all 6 lost with 0.2^6 = 6.4e-5 per connect. Both
#    sides run with --timeout 12 (punch deadline 12 s), so that the last push
#    still leaves 4 s; with the default 5 s, the 6th push is always too late
#    and the 5th leaves 1.25 s: about 0.2^5 = 3.2e-4. THIS IS THE FLOOR of
#    this test: 4 connects x 6.4e-5 = 2.6e-4 per run. Lowering it needs more
#    (or denser) pushes from natbroker; see the report of this test's commit.
#  - punch: a dialer checks each target every 100-400 ms for 12 s (> 30
#    checks), each answered with 0.64: negligible. Data channel: the first
#    frame of each side repeats at 0, 0.1, 0.3, ... s (up to every 5 s): 9 in
#    the 20 s the test waits, all lost with 0.2^9 = 5e-7 per direction; then
#    10 lines, all lost with 0.2^10 = 1e-7.
#  - handshakes: the peer's with the broker repeats its initiation at 0.25,
#    0.75, 1.75, 3.75 s and then every 4 s until answered (the register
#    transaction waits for it); the peers' own one (after the punch) 10 times
#    in 8 s, all round trips lost with 0.36^10 = 3.7e-5 per connect.
#  Total: about 4e-4 per run, 2.6e-4 of it the plan push; the rest < 2e-4.
# Needs root (exit 77 otherwise).
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbl}
export NATLAB_LOSS=20%   # the arithmetic above is for this value
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_loss.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_loss.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
HOSTS="pub fc rc prc sym sym2 blk upnp lan1 hp1 cgn"
# DIALER LISTENER PATH
PAIRS=("fc pub direct" "prc rc direct" "sym rc direct" "lan1 lan2 lan")
PUNCH_S=12   # punch deadline, both sides (see above)
LINES=10

lab_init 420
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
lab_check "the lab drops 20% per crossing" grep -q "loss=20%" "$LAB_RUN/config"
"$NATLAB" stop-coturn
lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'
NBLOG=$LAB_TMP/natbroker.log
lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen "$SRV2"
lab_check "natbroker is up" lab_wait 5 eval 'lab_udp_bound srv 3478 && lab_udp_bound srv 3479'

dump() { local f; for f in "$@"; do echo "== ${f##*/}"; tail -n 25 "$f"; done; }
json() { sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\).*/\1/p" "$1" | head -n 1; }   # FILE KEY

# ---- 1. netcheck
for h in $HOSTS; do
    f=$LAB_TMP/netcheck-$h
    lab_flush
    lab_exec "$h" timeout 20 "$NP" netcheck --broker "$SRV1" --json >"$f" 2>"$f.err"
    got=$(sed -n 's/.*"mapping":"\([^"]*\)".*"filtering":"\([^"]*\)".*"nat":"\([^"]*\)".*/\1 \2 \3/p' "$f")
    if [ "$got" = "${LAB_EXPECT[$h]}" ]; then
        lab_pass "netcheck $h: $got ($(json "$f" ms) ms)"
    else
        lab_fail "netcheck $h: '$got', want '${LAB_EXPECT[$h]}'" "$(cat "$f" "$f.err")"
    fi
    case $h in
        hp1) lab_check "netcheck $h: hairpin" grep -q '"hairpin":true' "$f" ;;
        lan1) lab_check "netcheck $h: no hairpin" grep -q '"hairpin":false' "$f" ;;
    esac
done

# ---- 2. connect, data both ways
n_fifo=0
fifo() { n_fifo=$((n_fifo + 1)); lab_fifo "in-$n_fifo"; FIFO=$LAB_TMP/in-$n_fifo; }
for p in "${PAIRS[@]}"; do
    read -r a b want <<<"$p"
    id="$a-to-$b" lid="$b-for-$a"
    lab_flush
    fifo; lfd=$LAB_FIFO_FD
    lout=$LAB_TMP/out-$lid lerr=$LAB_TMP/err-$lid
    : >"$lout"; : >"$lerr"
    lab_spawn "$b" "$FIFO" "$lout" "$lerr" \
        "$NP" listen --id "$lid" --broker "$SRV1" --json --timeout "$PUNCH_S"
    lpid=$LAB_LAST_PID
    if ! lab_wait 40 grep -q "^listening as $lid" "$lerr"; then
        lab_fail "$b: listener $lid did not register within 40 s" "$(dump "$lerr")"
        lab_stop "$lpid"; exec {lfd}>&-
        continue
    fi
    fifo; cfd=$LAB_FIFO_FD
    out=$LAB_TMP/out-$id err=$LAB_TMP/err-$id
    : >"$out"; : >"$err"
    t0=$(lab_now_ms)
    lab_spawn "$a" "$FIFO" "$out" "$err" \
        "$NP" connect --id "$id" --broker "$SRV1" --json --timeout "$PUNCH_S" "$lid"
    cpid=$LAB_LAST_PID
    # bound, the worst case the arithmetic allows: netcheck 3.2 s, register
    # (challenge) 11.75 + 1 s backoff + 2 x 11.75, connect 2 x 11.75, punch 12 s
    if ! lab_wait 90 grep -q '"event"' "$out" || ! grep -q '"event":"connected"' "$out"; then
        lab_fail "$a -> $b: no connection" "$(dump "$out" "$err" "$lerr")"
    else
        path=$(json "$out" path)
        lab_check "$a -> $b connected, path $path (want $want), $(json "$out" ms) ms after connect, $(( $(lab_now_ms) - t0 )) ms in all" \
            test "$path" = "$want"
        for i in $(seq $LINES); do echo "c2l-$id-$i" >&"$cfd"; done
        for i in $(seq $LINES); do echo "l2c-$id-$i" >&"$lfd"; done
        if lab_wait 20 lab_data_has "$LAB_TMP/out-$lid" "c2l-$id-"; then
            lab_pass "$a -> $b: data reaches the listener ($(lab_data "$lout" | grep -c "c2l-$id-") of $LINES lines so far)"
        else
            lab_fail "$a -> $b: none of $LINES lines reached the listener in 20 s" "$(dump "$err" "$lerr")"
        fi
        if lab_wait 20 lab_data_has "$out" "l2c-$id-"; then
            lab_pass "$b -> $a: data reaches the connector ($(lab_data "$out" | grep -c "l2c-$id-") of $LINES lines so far)"
        else
            lab_fail "$b -> $a: none of $LINES lines reached the connector in 20 s" "$(dump "$err" "$lerr")"
        fi
        exec {cfd}>&-   # EOF: the connector exits 0 (it waits at most 2 s for its result's ack)
        if lab_wait 5 _lab_all_gone "$cpid"; then
            rc=0; wait "$cpid" || rc=$?
            lab_check "$a -> $b: connect exits 0 at EOF (got $rc)" test "$rc" -eq 0
        else
            lab_fail "$a -> $b: connect still running 5 s after EOF"
        fi
    fi
    lab_stop "$cpid" "$lpid"
    exec {cfd}>&- {lfd}>&- 2>/dev/null
done

[ "$LAB_FAIL" -eq 0 ] || { echo "# natbroker log:"; tail -n 40 "$NBLOG" | sed 's/^/#   /'; }
lab_summary
