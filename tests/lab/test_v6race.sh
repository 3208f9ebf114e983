#!/usr/bin/env bash
# test_v6race.sh NATPEER NATBROKER: the families race when the table is
# unsure (issue 17; docs/protocol.md "IPv6", "Racing").
#
# natbroker on srv listens on both IPv4 addresses (RFC 5780 mode) but on one
# IPv6 address only, so no peer can test its IPv6 filtering: every IPv6
# registration says filtering "unknown", and the table is unsure there.
#  - e6 -> d6 (port-restricted NATs on IPv4, firewalls on IPv6): the IPv6
#    plan punches, and so does the IPv4 one, with the same roles: the plan
#    races the families ("IPv6 raced with IPv4: ..."), with both families'
#    candidates; the pair connects directly over one of them, and data
#    crosses both ways;
#  - s6 -> t6 (symmetric NATs on IPv4, firewalls on IPv6): IPv4 would need
#    the relay, so nothing races: IPv6 alone ("IPv6: ..."), one candidate,
#    direct over IPv6.
# The broker's matrix agrees on the path of both, and on the family of the
# pair that did not race.
# Needs root (exit 77 otherwise).
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbv6r} NATLAB_V6=1
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_v6race.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_v6race.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
SRV61=2001:db8::10
REG_WAIT=30 CONN_WAIT=30

lab_init 200
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'
NBLOG=$LAB_TMP/natbroker.log
lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen "$SRV2" --listen "$SRV61"
lab_check "natbroker is up: two IPv4 addresses, one IPv6" lab_wait 5 eval \
    "ip netns exec $(lab_ns srv) ss -Hlun | grep -q '$SRV61\]:3478' && lab_udp_bound srv 3479"

all_pages() { # peers|matrix -> every entry, one object per line
    timeout 10 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" \
        "$NP" "$1" --broker "$SRV1" --json 2>/dev/null | grep -o '{"\(id\|a\)":.*}' |
        sed 's/},{"\(id\|a\)":/}\n{"\1":/g'
}
has_alt() { all_pages peers | grep "\"id\":\"$1\"" | grep -q '"alt":'; }

# DIALER LISTENER WHAT: race (either family) or v6 (IPv6 alone)
for p in "e6 d6 race" "s6 t6 v6"; do
    read -r a b what <<<"$p"
    id="$a-to-$b" lid="$b-for-$a"
    lab_flush
    lab_fifo "in-$lid"; lfd=$LAB_FIFO_FD
    lab_spawn "$b" "$LAB_TMP/in-$lid" "$LAB_TMP/out-$lid" "$LAB_TMP/err-$lid" \
        "$NP" listen --id "$lid" --broker "$SRV1" --no-portmap --json
    lpid=$LAB_LAST_PID
    if ! lab_wait "$REG_WAIT" has_alt "$lid"; then
        lab_fail "$b: listener $lid did not register both families" "$(cat "$LAB_TMP/err-$lid")"
        lab_stop "$lpid"
        continue
    fi
    lab_check "$b: its IPv6 filtering cannot be tested (one broker address): unknown" \
        grep -q '^NAT (IPv6): none (public address .*), unknown filtering' "$LAB_TMP/err-$lid"
    lab_fifo "in-$id"; cfd=$LAB_FIFO_FD
    out=$LAB_TMP/out-$id err=$LAB_TMP/err-$id
    lab_spawn "$a" "$LAB_TMP/in-$id" "$out" "$err" \
        "$NP" connect --id "$id" --broker "$SRV1" --no-portmap --json "$lid"
    cpid=$LAB_LAST_PID
    if ! lab_wait "$CONN_WAIT" grep -qs '"event"' "$out" || ! grep -q '"event":"connected"' "$out"; then
        lab_fail "$a -> $b: no connection" "$(cat "$out" "$err")"
    else
        plan=$(grep -m1 '^plan: ' "$err")
        ev=$(grep '"event":"connected"' "$out" | head -n 1)
        path=$(sed -n 's/.*"path":"\([a-z]*\)".*/\1/p' <<<"$ev")
        got=$(sed -n 's/.*"family":\([46]\).*/\1/p' <<<"$ev")
        ms=$(sed -n 's/.*"ms":\([0-9]*\).*/\1/p' <<<"$ev")
        if [ "$what" = race ]; then
            if grep -q 'IPv6 raced with IPv4: ' <<<"$plan" &&
                grep -q 'candidates \[2001:db8:13::2\]:[0-9]* 203\.0\.113\.113:[0-9]*;' <<<"$plan"; then
                lab_pass "$a -> $b: the plan races the families, both in its candidates"
            else
                lab_fail "$a -> $b: the plan races the families, both in its candidates" "$plan"
            fi
            lab_check "$a -> $b connected: $path over IPv$got (want direct over either), $ms ms" \
                eval "[ '$path' = direct ] && { [ '$got' = 4 ] || [ '$got' = 6 ]; }"
        else
            lab_check "$a -> $b: IPv6 alone (IPv4 would need the relay): one candidate" eval \
                "grep -q 'IPv6: ' <<<'$plan' && ! grep -q 'raced' <<<'$plan' &&
                 grep -q 'candidates \[2001:db8:18::2\]:[0-9]*;' <<<'$plan'"
            lab_check "$a -> $b connected: $path over IPv$got (want direct over IPv6), $ms ms" \
                test "$path/$got" = direct/6
        fi
        lab_data_both_ways "$a" "$b" "$id" "$cfd" "$lfd" "$out" "$LAB_TMP/out-$lid"
        exec {cfd}>&-
        lab_wait 5 _lab_all_gone "$cpid"
    fi
    lab_stop "$cpid" "$lpid"
    exec {cfd}>&- {lfd}>&- 2>/dev/null
done

# the broker's matrix: the path as predicted; the family too where no race
matrix=$(all_pages matrix)
e=$(grep '"a":"e6-to-d6","b":"d6-for-e6"' <<<"$matrix" | head -n 1)
lab_check "matrix e6 -> d6: predicted direct, planned over IPv6, measured direct" eval \
    "grep -q '\"predicted\":\"direct\"' <<<'$e' && grep -q '\"plan_family\":6' <<<'$e' &&
     grep -q '\"measured\":\"direct\"' <<<'$e'"
e=$(grep '"a":"s6-to-t6","b":"t6-for-s6"' <<<"$matrix" | head -n 1)
lab_check "matrix s6 -> t6: predicted direct over IPv6, measured direct over IPv6" eval \
    "grep -q '\"predicted\":\"direct\"' <<<'$e' && grep -q '\"plan_family\":6' <<<'$e' &&
     grep -q '\"measured\":\"direct\"' <<<'$e' && grep -q '\"family\":6' <<<'$e'"

[ "$LAB_FAIL" -eq 0 ] || { echo "# natbroker log:"; tail -n 40 "$NBLOG" | sed 's/^/#   /'; }
lab_summary
