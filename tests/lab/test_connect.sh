#!/usr/bin/env bash
# test_connect.sh NATPEER NATBROKER: rendezvous and hole punching in the lab.
#
# natbroker runs on srv in RFC 5780 mode. For each pair the issue names, after
# a conntrack flush, a fresh `natpeer listen` starts on one host and, once it
# is registered, `natpeer connect` on the other:
#  - every pair must connect on the path the connectivity table gives it,
#    with data both ways (a line from the connector reaches the listener's
#    stdout, and a line written to the listener's stdin reaches the
#    connector's stdout): direct, lan, birthday for sym<->prc (the broker's
#    birthday rate is 1000/s here), or relay (natbroker's own TURN
#    server) for sym<->sym2 and blk, whose UDP is blocked: blk
#    registers over TCP and is relayed both as connector and as listener;
#  - a relayed connection names its relayed address ("relay":"IP:PORT",
#    on srv) and its connector allocated it ("relay: allocated" on stderr);
#  - a pair wanted "none" (none today) must fail with the broker's reason;
#  - then the broker's own matrix (the `matrix` query, over the wire) must
#    show measured == predicted for every pair tried.
# Needs root (exit 77 otherwise).
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbc}
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_connect.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_connect.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11

# DIALER LISTENER EXPECTED-PATH ("none": must fail)
PAIRS=(
    "fc pub direct" "rc pub direct" "prc pub direct"
    "rc fc direct" "prc fc direct" "prc rc direct" "pub prc direct" "fc rc direct"
    "sym pub direct" "sym fc direct" "sym rc direct"
    "lan1 lan2 lan" "hp1 hp2 direct"
    "sym prc birthday" "prc sym birthday" "sym sym2 relay"
    "blk pub relay" "pub blk relay"
)
# a NAT check that waits out UDP (blk) and a busy machine: generous limits
REG_WAIT=30 CONN_WAIT=40

lab_init 440
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'
NBLOG=$LAB_TMP/natbroker.log
lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen "$SRV2" --birthday-rate 1000
lab_check "natbroker is up" lab_wait 5 eval 'lab_udp_bound srv 3478 && lab_udp_bound srv 3479'

# ---- the broker's views, asked from pub with natpeer (sealed; the broker
# runs with --public-list)
all_pages() { # peers|matrix -> every entry, one object per line
    timeout 10 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" \
        "$NP" "$1" --broker "$SRV1" --json 2>/dev/null | grep -o '{"\(id\|a\)":[^}]*}'
}
b64() { printf '%s' "$1" | base64 -w0; }
registered() { all_pages peers | grep -q "\"id\":\"$1\""; }


# ---- pairs: a fresh listener for each, after a conntrack flush
for p in "${PAIRS[@]}"; do
    read -r a b want <<<"$p"
    id="$a-to-$b" lid="$b-for-$a"
    lab_flush
    lab_fifo "in-$lid"; lfd=$LAB_FIFO_FD
    lab_spawn "$b" "$LAB_TMP/in-$lid" "$LAB_TMP/out-$lid" "$LAB_TMP/err-$lid" \
        "$NP" listen --id "$lid" --broker "$SRV1" --json
    lpid=$LAB_LAST_PID
    if ! lab_wait "$REG_WAIT" registered "$lid"; then
        lab_fail "$b: listener $lid did not register" "$(cat "$LAB_TMP/err-$lid")"
        lab_stop "$lpid"
        continue
    fi
    lab_fifo "in-$id"; cfd=$LAB_FIFO_FD
    out=$LAB_TMP/out-$id
    lab_spawn "$a" "$LAB_TMP/in-$id" "$out" "$LAB_TMP/err-$id" \
        "$NP" connect --id "$id" --broker "$SRV1" --json "$lid"
    cpid=$LAB_LAST_PID
    if [ "$want" = none ]; then
        if lab_wait "$CONN_WAIT" _lab_all_gone "$cpid"; then
            rc=0; wait "$cpid" || rc=$?
            if [ "$rc" -ne 0 ] && grep -q '"event":"failed"' "$out" &&
               grep -q 'no direct path' "$out"; then
                lab_pass "$a -> $b fails as predicted: $(sed -n 's/.*"reason":"\([^"]*\)".*/\1/p' "$out")"
            else
                lab_fail "$a -> $b: want a failure with the broker's reason (exit $rc)" \
                    "$(cat "$out" "$LAB_TMP/err-$id")"
            fi
        else
            lab_fail "$a -> $b: still running $CONN_WAIT s after connect (deadline is 5 s)"
        fi
    elif ! lab_wait "$CONN_WAIT" grep -q '"event"' "$out" || ! grep -q '"event":"connected"' "$out"; then
        lab_fail "$a -> $b: no connection" "$(cat "$out" "$LAB_TMP/err-$id")"
    else
        path=$(sed -n 's/.*"event":"connected".*"path":"\([a-z]*\)".*/\1/p' "$out" | head -n 1)
        ms=$(sed -n 's/.*"event":"connected".*"ms":\([0-9]*\).*/\1/p' "$out" | head -n 1)
        lab_check "$a -> $b connected, path $path (want $want), $ms ms" test "$path" = "$want"
        if [ "$want" = relay ]; then
            raddr=$(sed -n 's/.*"event":"connected".*"relay":"\([^"]*\)".*/\1/p' "$out" | head -n 1)
            lab_check "$a -> $b: relayed through srv's TURN server (relay $raddr)" \
                eval "[[ '$raddr' == $SRV1:* ]]"
            lab_check "$a -> $b: one side allocated on the relay (\"relay: allocated\")" \
                grep -q '^relay: allocated ' "$LAB_TMP/err-$id" "$LAB_TMP/err-$lid"
            lab_check "$a -> $b: the listener reports the relay path too" \
                lab_wait 5 grep -qF "\"event\":\"connected\",\"peer\":\"$id\",\"path\":\"relay\"" "$LAB_TMP/out-$lid"
        fi
        echo "hello-from-$id" >&"$cfd"
        lab_check "$a -> $b: data reaches the listener, labelled with the connector's name" \
            lab_wait 5 grep -qF "\"peer\":\"$id\",\"key\":" "$LAB_TMP/out-$lid"
        lab_check "$a -> $b: ... and its payload, base64 (--json)" \
            grep -qF "\"data\":\"$(b64 "hello-from-$id")\"" "$LAB_TMP/out-$lid"
        # binary-safe: a payload with a newline and a NUL, as --json input
        bin=$(printf 'bin\n\000-%s' "$id" | base64 -w0)
        echo "{\"data\":\"$bin\"}" >&"$cfd"
        lab_check "$a -> $b: a binary payload ({\"data\":BASE64} in, the same bytes out)" \
            lab_wait 5 grep -qF "\"data\":\"$bin\"" "$LAB_TMP/out-$lid"
        echo "reply-from-$lid" >&"$lfd"
        lab_check "$b -> $a: data reaches the connector" \
            lab_wait 5 grep -qF "\"data\":\"$(b64 "reply-from-$lid")\"" "$out"
        exec {cfd}>&-   # EOF: the connector exits 0
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

# ---- blk: UDP is blocked; its natpeer reached the broker over TCP, both ways
lab_check "blk (connector) reached the broker over TCP" \
    grep -q '^broker: connected over TCP' "$LAB_TMP/err-blk-to-pub"
lab_check "blk (listener) registered over TCP" \
    grep -q '^broker: connected over TCP' "$LAB_TMP/err-blk-for-pub"

# ---- the broker's matrix: measured == predicted for every pair tried
matrix=$(all_pages matrix)
for p in "${PAIRS[@]}"; do
    read -r a b want <<<"$p"
    entry=$(grep "\"a\":\"$a-to-$b\",\"b\":\"$b-for-$a\"" <<<"$matrix" | head -n 1)
    pred=$(sed -n 's/.*"predicted":"\([a-z]*\)".*/\1/p' <<<"$entry")
    meas=$(sed -n 's/.*"measured":"\([a-z]*\)".*/\1/p' <<<"$entry")
    if [ -n "$entry" ] && [ "$pred" = "$want" ] && [ "$meas" = "$pred" ]; then
        lab_pass "matrix $a -> $b: predicted $pred, measured $meas"
    else
        lab_fail "matrix $a -> $b: predicted '$pred', measured '$meas', want $want" "$entry"
    fi
done

[ "$LAB_FAIL" -eq 0 ] || { echo "# natbroker log:"; tail -n 40 "$NBLOG" | sed 's/^/#   /'; }
lab_summary
