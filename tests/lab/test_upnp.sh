#!/usr/bin/env bash
# test_upnp.sh NATPEER NATBROKER: natpeer's UPnP port mapping against Debian's
# real miniupnpd on the lab's `upnp` router (and the double NAT behind `cgn`).
#
#  - netcheck on upnp maps a port, has natbroker probe it (upnp "mapped"),
#    and leaves no mapping behind (upnpc -l);
#  - listen on upnp: upnpc -l shows the mapping while it runs; an unsolicited
#    datagram from pub to the external address reaches natpeer's socket; sym
#    (symmetric NAT, which punching cannot pair with upnp's port-restricted
#    cone) connects by dialling the verified mapping (path upnp), data both
#    ways; after SIGTERM the mapping is gone;
#  - the same mapping with miniupnpd describing itself as IGD v1;
#  - cgn: miniupnpd behind a carrier NAT refuses the mapping (501): netcheck
#    says so, and a connect still works by punching.
# Needs root (exit 77 otherwise).
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbg}
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_upnp.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_upnp.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
UPNP_WAN=203.0.113.106

lab_init 300
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'
lab_start srv "$LAB_TMP/natbroker.log" "$NB" --public-list --listen "$SRV1" --listen "$SRV2"
lab_check "natbroker is up" lab_wait 5 eval 'lab_udp_bound srv 3478 && lab_udp_bound srv 3479'

# natpeer's UDP mappings on the upnp router, as upnpc lists them: "PORT->INTERNAL"
mappings() {
    lab_exec upnp timeout 10 upnpc -i -l 2>/dev/null | sed -n "s/^ *[0-9]* UDP *\([0-9]*\)->\([0-9.:]*\) *'natpeer'.*/\1->\2/p"
}
no_mappings() { [ -z "$(mappings)" ]; }
json() { sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\).*/\1/p" "$1" | head -n 1; }   # FILE KEY
upnp_json() { sed -n 's/.*"upnp":{\([^}]*\)}.*/\1/p' "$1"; }

# ---- netcheck: a verified mapping, removed on exit
netcheck_upnp() { # TAG: netcheck on upnp; checks upnp.status mapped on the router's WAN
    local f=$LAB_TMP/netcheck-$1
    lab_flush
    lab_exec upnp timeout 20 "$NP" netcheck --broker "$SRV1" --json --portmap upnp --log-level debug >"$f" 2>"$f.err"
    local up ext
    up=$(upnp_json "$f")
    ext=$(sed -n 's/.*"external":"\([^"]*\)".*/\1/p' <<<"$up")
    if grep -q '"status":"mapped"' <<<"$up" && [ "${ext%:*}" = "$UPNP_WAN" ] &&
       grep -q '"lease":3600' <<<"$up"; then
        lab_pass "$1: netcheck on upnp: mapped $ext, lease 3600 s, verified by natbroker's probe"
    else
        lab_fail "$1: netcheck on upnp: want upnp mapped on $UPNP_WAN" "$(cat "$f" "$f.err")"
    fi
    lab_check "$1: the mapping is gone after netcheck" no_mappings
}
netcheck_upnp "IGD v2"
lab_check "IGD v2: the service was WANIPConnection:2" \
    grep -q "WANIPConnection:2, control" "$LAB_TMP/netcheck-IGD v2.err"

# ---- listen: an unsolicited datagram reaches it; sym connects through the mapping
lab_flush
lab_fifo in-up; lfd=$LAB_FIFO_FD
lab_spawn upnp "$LAB_TMP/in-up" "$LAB_TMP/out-up" "$LAB_TMP/err-up" \
    "$NP" listen --id up --broker "$SRV1" --json --portmap upnp --log-level debug
lpid=$LAB_LAST_PID
if lab_wait 15 grep -q "verified by the broker" "$LAB_TMP/err-up" &&
   lab_wait 5 grep -q "^listening as up" "$LAB_TMP/err-up"; then
    ext=$(sed -n 's/^upnp: mapped UDP \([0-9]*\) -> \([0-9.:]*\) .*/\2/p' "$LAB_TMP/err-up" | head -n 1)
    iport=$(sed -n 's/^upnp: mapped UDP \([0-9]*\) -> .*/\1/p' "$LAB_TMP/err-up" | head -n 1)
    lab_pass "listen on upnp: mapped UDP $iport -> $ext, verified by the broker"
    lab_check "upnpc -l lists it: ${ext#*:} -> 192.168.6.2:$iport" \
        eval "mappings | grep -qx '${ext#*:}->192.168.6.2:$iport'"
    # unsolicited, from a host that never heard of it
    printf 'unsolicited-from-pub' | lab_exec pub timeout 2 socat -u - "UDP4:$ext,sourceport=47999" || true
    lab_check "a datagram from pub to $ext reaches natpeer's socket" \
        lab_wait 5 grep -q "bytes from 203.0.113.20:47999 dropped" "$LAB_TMP/err-up"
    # sym <-> upnp: no punch works (port-restricted vs symmetric); the mapping does
    lab_fifo in-sym; cfd=$LAB_FIFO_FD
    lab_spawn sym "$LAB_TMP/in-sym" "$LAB_TMP/out-sym" "$LAB_TMP/err-sym" \
        "$NP" connect --id s1 up --broker "$SRV1" --json
    cpid=$LAB_LAST_PID
    if lab_wait 15 grep -q '"event"' "$LAB_TMP/out-sym" &&
       grep -q '"event":"connected","peer":"up","path":"upnp"' "$LAB_TMP/out-sym"; then
        lab_pass "sym -> upnp connected through the verified mapping: $(head -n 1 "$LAB_TMP/out-sym")"
        echo "hello-from-sym" >&"$cfd"
        lab_check "sym -> upnp: data reaches the listener (base64 in --json)" \
            lab_wait 5 grep -qF "\"data\":\"$(printf hello-from-sym | base64 -w0)\"" "$LAB_TMP/out-up"
        echo "hello-from-upnp" >&"$lfd"
        lab_check "upnp -> sym: data reaches the connector (base64 in --json)" \
            lab_wait 5 grep -qF "\"data\":\"$(printf hello-from-upnp | base64 -w0)\"" "$LAB_TMP/out-sym"
    else
        lab_fail "sym -> upnp: want path upnp" "$(cat "$LAB_TMP/out-sym" "$LAB_TMP/err-sym" "$LAB_TMP/err-up")"
    fi
    exec {cfd}>&-
    lab_stop "$cpid"
else
    lab_fail "listen on upnp: no verified mapping" "$(cat "$LAB_TMP/err-up")"
fi
lab_stop "$lpid"   # SIGTERM: the mapping is deleted on the way out
exec {lfd}>&-
lab_check "after SIGTERM the listener removed its mapping" no_mappings
lab_check "... and said so" grep -q "removing the mapping" "$LAB_TMP/err-up"

# ---- IGD v1: the same, with miniupnpd describing itself as v1
lab_check "miniupnpd restarted as IGD v1" lab_quiet "$NATLAB" restart-upnp v1
netcheck_upnp "IGD v1"
lab_check "IGD v1: the service was WANIPConnection:1" \
    grep -q "WANIPConnection:1, control" "$LAB_TMP/netcheck-IGD v1.err"
lab_check "miniupnpd back to IGD v2" lab_quiet "$NATLAB" restart-upnp v2

# ---- cgn: a UPnP router behind a carrier NAT; the mapping is refused, punching works
f=$LAB_TMP/netcheck-cgn
lab_flush
lab_exec cgn timeout 20 "$NP" netcheck --broker "$SRV1" --json --portmap upnp >"$f" 2>"$f.err"
st=$(upnp_json "$f")
if grep -qE '"status":"(refused|unusable)"' <<<"$st" && grep -q '"reason":"[^"]' <<<"$st"; then
    lab_pass "cgn: netcheck says the mapping is no use: {$st}"
else
    lab_fail "cgn: want upnp refused or unusable, with a reason" "$(cat "$f" "$f.err")"
fi
lab_flush
lab_fifo in-pub; pfd=$LAB_FIFO_FD
lab_spawn pub "$LAB_TMP/in-pub" "$LAB_TMP/out-pub" "$LAB_TMP/err-pub" "$NP" listen --id p --broker "$SRV1" --json
ppid=$LAB_LAST_PID
lab_check "pub is listening" lab_wait 15 grep -q "^listening as p" "$LAB_TMP/err-pub"
rc=0
timeout 20 ip netns exec "$(lab_ns cgn)" env XDG_CONFIG_HOME="$(lab_xdg cgn)" "$NP" connect --id c1 p --broker "$SRV1" --json \
    </dev/null >"$LAB_TMP/out-cgn" 2>"$LAB_TMP/err-cgn" || rc=$?
lab_check "cgn -> pub connects by punching (path direct), exit $rc" \
    eval "[ $rc -eq 0 ] && grep -q '\"path\":\"direct\"' '$LAB_TMP/out-cgn'"
lab_check "cgn: connect says the mapping was refused and it punches instead" \
    grep -q "501.*using hole punching" "$LAB_TMP/err-cgn"
lab_stop "$ppid"
exec {pfd}>&-

lab_summary
