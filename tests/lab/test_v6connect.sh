#!/usr/bin/env bash
# test_v6connect.sh NATPEER NATBROKER: two IP families in the lab (issue 17).
#
# The IPv6 lab (NATLAB_V6=1). natbroker on srv listens on both families, in
# RFC 5780 mode on each (203.0.113.10/.11, 2001:db8::10/::11). Dual-stack
# hosts are told the broker's IPv4 address; the broker's `registered` names
# its IPv6 one, where natpeer tests its IPv6 firewall and registers a second
# address ("also"). IPv6-only hosts are told the IPv6 address. For each pair,
# after a conntrack flush, a fresh `natpeer listen`, then `natpeer connect`:
#  - s6 <-> t6: symmetric NATs on IPv4 (a relay there), stateful firewalls
#    on IPv6: they connect directly over IPv6 by simultaneous punch;
#  - d6 -> s6 and v6o -> s6 over IPv6, o6 -> v6o (IPv6 only both);
#  - b6, whose IPv6 firewall drops UDP: natpeer gives its IPv6 up, and the
#    pair connects over IPv4 (b6 and d6: port-restricted both);
#  - prc (IPv4 only) and o6, v6o (IPv6 only): no family in common: a relay,
#    natbroker's own TURN server, which the IPv6-only side reaches over IPv6
#    and allocates an IPv4 relayed address on, where prc sends;
#  - w6 (IPv6 only, its UDP dropped: it reaches the broker over TCP) and o6:
#    a relay over IPv6: w6 allocates an IPv6 relayed address (RFC 8656
#    REQUESTED-ADDRESS-FAMILY) over TCP, where o6 sends; w6 -> prc: w6
#    allocates an IPv4 one; blk (IPv4 only, UDP blocked) -> o6: blk
#    allocates an IPv6 one over TCP;
#  - every connection carries data both ways, says its family, and the
#    broker's matrix shows measured == predicted, path and family;
#  - e6 gets a temporary (privacy) IPv6 address, which the system prefers
#    as a source: a listener still registers its stable address, one with
#    --ipv6-temporary the temporary one, and d6 reaches the stable one.
# Needs root (exit 77 otherwise).
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbv6c} NATLAB_V6=1
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_v6connect.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_v6connect.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
SRV61=2001:db8::10
SRV62=2001:db8::11

# DIALER LISTENER PATH FAMILY ("none -": must fail)
PAIRS=(
    "s6 t6 direct 6" "t6 s6 direct 6"
    "d6 s6 direct 6" "v6o s6 direct 6" "o6 v6o direct 6"
    "b6 d6 direct 4"
    "prc o6 relay 4" "v6o prc relay 4"
    "o6 w6 relay 6" "w6 prc relay 4" "blk o6 relay 6"
)
REG_WAIT=30 CONN_WAIT=30

# HOST -> how natpeer is told of the broker: dual-stack hosts its IPv4
# address (they learn the IPv6 one from `registered`), t6 both (its IPv6
# NAT tests start at once), IPv6-only hosts the IPv6 one; d6 also goes
# without port mapping (no portmap timers keep natpeer's loop busy)
broker_args() {
    case $1 in
    o6 | v6o | w6) echo "--broker [$SRV61]:3478" ;;
    t6) echo "--broker $SRV1 --broker [$SRV61]:3478" ;;
    d6) echo "--broker $SRV1 --no-portmap" ;;
    *) echo "--broker $SRV1" ;;
    esac
}

lab_init 400
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'
NBLOG=$LAB_TMP/natbroker.log
lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen "$SRV2" \
    --listen "$SRV61" --listen "$SRV62"
lab_check "natbroker is up on both families" lab_wait 5 eval \
    "ip netns exec $(lab_ns srv) ss -Hlun | grep -q '$SRV61\]:3479' && lab_udp_bound srv 3479"

all_pages() { # peers|matrix -> every entry, one object per line
    timeout 10 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" \
        "$NP" "$1" --broker "$SRV1" --json 2>/dev/null | grep -o '{"\(id\|a\)":.*}' |
        sed 's/},{"\(id\|a\)":/}\n{"\1":/g'
}
registered() { all_pages peers | grep -q "\"id\":\"$1\""; }
# a dual-stack listener is ready once its second address is registered too
ready() { # ID HOST
    case $2 in
    o6 | v6o | w6 | prc | b6 | blk) registered "$1" ;;
    *) all_pages peers | grep "\"id\":\"$1\"" | grep -q '"alt":' ;;
    esac
}

for p in "${PAIRS[@]}"; do
    read -r a b want fam <<<"$p"
    id="$a-to-$b" lid="$b-for-$a"
    lab_flush
    lab_fifo "in-$lid"; lfd=$LAB_FIFO_FD
    lab_spawn "$b" "$LAB_TMP/in-$lid" "$LAB_TMP/out-$lid" "$LAB_TMP/err-$lid" \
        "$NP" listen --id "$lid" $(broker_args "$b") --json
    lpid=$LAB_LAST_PID
    if ! lab_wait "$REG_WAIT" ready "$lid" "$b"; then
        lab_fail "$b: listener $lid did not register" "$(cat "$LAB_TMP/err-$lid")"
        lab_stop "$lpid"
        continue
    fi
    lab_fifo "in-$id"; cfd=$LAB_FIFO_FD
    out=$LAB_TMP/out-$id
    lab_spawn "$a" "$LAB_TMP/in-$id" "$out" "$LAB_TMP/err-$id" \
        "$NP" connect --id "$id" $(broker_args "$a") --json "$lid"
    cpid=$LAB_LAST_PID
    if [ "$want" = none ]; then
        if lab_wait "$CONN_WAIT" _lab_all_gone "$cpid"; then
            rc=0; wait "$cpid" || rc=$?
            lab_check "$a -> $b fails: no IP family in common (exit $rc)" eval \
                "[ $rc -ne 0 ] && grep -q 'share no IP family' '$out'"
        else
            lab_fail "$a -> $b: still running $CONN_WAIT s after connect"
        fi
    elif ! lab_wait "$CONN_WAIT" grep -qs '"event"' "$out" || ! grep -q '"event":"connected"' "$out"; then
        lab_fail "$a -> $b: no connection" "$(cat "$out" "$LAB_TMP/err-$id")"
    else
        ev=$(grep '"event":"connected"' "$out" | head -n 1)
        path=$(sed -n 's/.*"path":"\([a-z]*\)".*/\1/p' <<<"$ev")
        got=$(sed -n 's/.*"family":\([46]\).*/\1/p' <<<"$ev")
        ms=$(sed -n 's/.*"ms":\([0-9]*\).*/\1/p' <<<"$ev")
        lab_check "$a -> $b connected: $path over IPv$got (want $want over IPv$fam), $ms ms" \
            test "$path/$got" = "$want/$fam"
        lab_data_both_ways "$a" "$b" "$id" "$cfd" "$lfd" "$out" "$LAB_TMP/out-$lid"
        exec {cfd}>&-
        lab_wait 5 _lab_all_gone "$cpid"
    fi
    lab_stop "$cpid" "$lpid"
    exec {cfd}>&- {lfd}>&- 2>/dev/null
done

# ---- a listener keeps its stable IPv6 address when the host also has a
# temporary (RFC 4941 privacy) one, which the system prefers as a source
lab_exec e6 sysctl -qw net.ipv6.conf.eth0.use_tempaddr=2
lab_exec e6 ip -6 addr change 2001:db8:19::2/64 dev eth0 nodad mngtmpaddr
tmp_ready() {
    lab_exec e6 ip -6 -o addr show dev eth0 temporary | grep -q inet6 &&
        ! lab_exec e6 ip -6 -o addr show dev eth0 tentative | grep -q inet6
}
lab_check "e6 has a temporary IPv6 address" lab_wait 10 tmp_ready
TMP=$(lab_exec e6 ip -6 -o addr show dev eth0 temporary | awk '{print $4}' | cut -d/ -f1 | head -n 1)
SRC=$(lab_exec e6 ip -6 route get "$SRV61" | sed -n 's/.* src \([^ ]*\).*/\1/p')
lab_check "e6: the system's source toward srv is the temporary $TMP (got $SRC)" test "$SRC" = "$TMP"
alt_of() { all_pages peers | grep "\"id\":\"$1\"" | sed -n 's/.*"alt":"\([^"]*\)".*/\1/p'; }
has_alt() { [ -n "$(alt_of "$1")" ]; }
lab_flush
lab_spawn e6 /dev/null "$LAB_TMP/out-e6-stable" "$LAB_TMP/err-e6-stable" \
    "$NP" listen --id e6-stable --broker "$SRV1" --json
p1=$LAB_LAST_PID
lab_spawn e6 /dev/null "$LAB_TMP/out-e6-temp" "$LAB_TMP/err-e6-temp" \
    "$NP" listen --id e6-temp --broker "$SRV1" --json --ipv6-temporary
p2=$LAB_LAST_PID
if lab_wait "$REG_WAIT" has_alt e6-stable && lab_wait "$REG_WAIT" has_alt e6-temp; then
    a1=$(alt_of e6-stable) a2=$(alt_of e6-temp)
    lab_check "listen registers the stable address ($a1)" eval "[[ '$a1' == '[2001:db8:19::2]:'* ]]"
    lab_check "listen --ipv6-temporary registers the temporary one ($a2)" eval "[[ '$a2' == '[$TMP]:'* ]]"
    lab_fifo "in-d6-e6"; cfd=$LAB_FIFO_FD
    lab_spawn d6 "$LAB_TMP/in-d6-e6" "$LAB_TMP/out-d6-e6" "$LAB_TMP/err-d6-e6" \
        "$NP" connect --id d6-to-e6 --broker "$SRV1" --json e6-stable
    cpid=$LAB_LAST_PID
    lab_check "d6 -> e6 reaches the stable address over IPv6" eval \
        "lab_wait $CONN_WAIT grep -qs '\"event\":\"connected\".*\"remote\":\"\\[2001:db8:19::2\\]:[0-9]*\",\"family\":6' '$LAB_TMP/out-d6-e6'"
    exec {cfd}>&-
    lab_stop "$cpid"
else
    lab_fail "e6 listeners did not register both families" "$(cat "$LAB_TMP/err-e6-stable" "$LAB_TMP/err-e6-temp")"
fi
lab_stop "$p1" "$p2"

# what each host's natpeer said of its second family
lab_check "s6: IPv6 firewall tested and registered" eval \
    "grep -q '^NAT (IPv6): none (public address \[2001:db8:14::2\]:[0-9]*), address-and-port-dependent filtering' '$LAB_TMP/err-s6-to-t6' &&
     grep -q '^registered IPv6 \[2001:db8:14::2\]:[0-9]* with \[$SRV61\]:3478 too' '$LAB_TMP/err-s6-to-t6'"
lab_check "t6 (both addresses given): its IPv6 tests start before it registers" eval \
    "grep -n '' '$LAB_TMP/err-t6-to-s6' | grep -E '^[0-9]+:(IPv6: the broker is also at|registered as)' | head -n 1 | grep -q 'IPv6: the broker'"
lab_check "b6: IPv6 given up (UDP dropped), IPv4 used" \
    grep -q '^IPv6: no answer from the broker over UDP (UDP blocked); using IPv4 only' "$LAB_TMP/err-b6-to-d6"
lab_check "o6 (IPv6 only): the broker's IPv4 is unreachable, said once" \
    grep -q '^IPv4: no route to the broker' "$LAB_TMP/err-o6-to-v6o"

lab_check "o6 (IPv6 only) allocated on natbroker's relay over IPv6, an IPv4 relayed address" \
    grep -q "^relay: allocated $SRV1:[0-9]* (UDP, .*the relay sees us at \[2001:db8:15::2\]" \
    "$LAB_TMP/err-o6-for-prc"

lab_check "w6 (IPv6 only, UDP blocked) allocated an IPv6 relayed address over TCP for o6" \
    grep -q "^relay: allocated \[$SRV61\]:[0-9]* (TCP, .*the relay sees us at \[2001:db8:20::2\]" \
    "$LAB_TMP/err-w6-for-o6"
lab_check "w6 allocated an IPv4 relayed address over TCP for prc" \
    grep -q "^relay: allocated $SRV1:[0-9]* (TCP, " "$LAB_TMP/err-w6-to-prc"
lab_check "blk (IPv4 only, UDP blocked) allocated an IPv6 relayed address over TCP for o6" \
    grep -q "^relay: allocated \[$SRV61\]:[0-9]* (TCP, " "$LAB_TMP/err-blk-to-o6"

# the broker's matrix: measured == predicted, path and family
matrix=$(all_pages matrix)
for p in "${PAIRS[@]}"; do
    read -r a b want fam <<<"$p"
    entry=$(grep "\"a\":\"$a-to-$b\",\"b\":\"$b-for-$a\"" <<<"$matrix" | head -n 1)
    pred=$(sed -n 's/.*"predicted":"\([a-z]*\)".*/\1/p' <<<"$entry")
    meas=$(sed -n 's/.*"measured":"\([a-z]*\)".*/\1/p' <<<"$entry")
    pf=$(sed -n 's/.*"plan_family":\([46]\).*/\1/p' <<<"$entry")
    mf=$(sed -n 's/.*"family":\([46]\).*/\1/p' <<<"$entry")
    if [ "$want" = none ]; then
        lab_check "matrix $a -> $b: predicted none, measured none" \
            test "$pred/$meas" = "none/none"
    else
        lab_check "matrix $a -> $b: predicted $pred over IPv$pf, measured $meas over IPv$mf" \
            test "$pred/$pf/$meas/$mf" = "$want/$fam/$want/$fam"
    fi
done

[ "$LAB_FAIL" -eq 0 ] || { echo "# natbroker log:"; tail -n 40 "$NBLOG" | sed 's/^/#   /'; }
lab_summary
