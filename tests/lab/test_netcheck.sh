#!/usr/bin/env bash
# test_netcheck.sh NATPEER NATBROKER: `natpeer netcheck` classifies every lab
# NAT as the NAT was built, and as coturn's turnutils_natdiscovery does,
# against coturn and against natbroker (both in RFC 5780 mode on srv).
# Conntrack is flushed before every run. Needs root (exit 77 otherwise).
#
# hr sits behind r-hr, whose filter keys on the remote IP alone, across all
# internal ports: anything sent to the server's alternate IP, from any port,
# opens the filter for the "change IP and port" test. netcheck must still say
# address-dependent (it sends nothing to the alternate IP before that test is
# decided); the third-party tools are fooled, which is printed, not asserted.
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbn}
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_netcheck.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_netcheck.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
HOSTS="pub fc rc prc sym sym2 blk upnp lan1 hp1 cgn hr"

lab_init 300
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done

# turnutils_natdiscovery's verdict in netcheck's words: "MAPPING FILTERING".
nd_words() {
    local m f
    m=$(sed -n 's/^NAT with \(.*\) Mapping!$/\1/p' "$1" | head -n 1)
    f=$(sed -n 's/^NAT with \(.*\) Filtering!$/\1/p' "$1" | head -n 1)
    w() { case $1 in
        "Endpoint Independent") echo endpoint-independent ;;
        "Address Dependent") echo address-dependent ;;
        "Address and Port Dependent") echo address-and-port-dependent ;;
        *) echo unknown ;; esac; }
    echo "$(w "$m") $(w "$f")"
}
# natpeer netcheck --json -> "MAPPING FILTERING NAT"
np_words() {
    sed -n 's/.*"mapping":"\([^"]*\)".*"filtering":"\([^"]*\)".*"nat":"\([^"]*\)".*/\1 \2 \3/p' "$1"
}

run_host() { # SERVER-NAME HOST
    local server=$1 h=$2 f=$LAB_TMP/$1-$2 want got nd
    want=${LAB_EXPECT[$h]}
    lab_flush
    lab_exec "$h" timeout 15 "$NP" netcheck --broker "$SRV1:3478" --json >"$f.np" 2>"$f.np.err"
    got=$(np_words "$f.np")
    if [ "$got" = "$want" ]; then
        lab_pass "$h via $server: netcheck says $got ($(sed -n 's/.*"ms":\([0-9]*\).*/\1/p' "$f.np") ms)"
    else
        lab_fail "$h via $server: netcheck says '$got', want '$want'" "$(cat "$f.np" "$f.np.err")"
    fi
    [ "$h" = blk ] && return   # natdiscovery has no verdict without UDP
    [ "$h" = hr ] && { hr_info "$server"; return; }
    lab_flush
    lab_exec "$h" timeout 40 turnutils_natdiscovery -m -f "$SRV1" >"$f.nd" 2>&1
    nd=$(nd_words "$f.nd")
    # natdiscovery cannot tell "no NAT" from endpoint-independent mapping.
    local ours=${got% *}
    [ "${ours%% *}" = none ] && ours="endpoint-independent ${ours#* }"
    if [ "$nd" = "$ours" ]; then
        lab_pass "$h via $server: same as turnutils_natdiscovery ($nd)"
    else
        lab_fail "$h via $server: turnutils_natdiscovery says '$nd', netcheck '$ours'" "$(cat "$f.nd")"
    fi
}

# hr_info SERVER-NAME: what the classifiers that contact the alternate IP
# first make of r-hr's filter (information only: they are fooled). Each run
# after a flush; stun (Debian's stun-client) and netcheck also after hr sent
# one datagram to the alternate IP from another port, as any earlier contact
# within the filter's timeout would (the filter is then open: no classifier
# can see through that, netcheck included).
hr_info() {
    local server=$1 f=$LAB_TMP/$1-hr
    lab_flush
    lab_exec hr timeout 40 turnutils_natdiscovery -m -f "$SRV1" >"$f.nd" 2>&1
    lab_log "hr via $server (info): turnutils_natdiscovery says '$(nd_words "$f.nd")' (truth: endpoint-independent address-dependent)"
    lab_flush
    lab_exec hr timeout 20 stun "$SRV1" >"$f.stun" 2>&1
    lab_log "hr via $server (info): stun says '$(sed -n 's/^Primary: //p' "$f.stun" | tr -d '\t')'"
    lab_flush
    lab_udp_send hr "$SRV2" 9 "contact" 45123
    lab_exec hr timeout 20 stun "$SRV1" >"$f.stun2" 2>&1
    lab_log "hr via $server (info): after hr -> $SRV2, stun says '$(sed -n 's/^Primary: //p' "$f.stun2" | tr -d '\t')'"
    lab_flush
    lab_udp_send hr "$SRV2" 9 "contact" 45123
    lab_exec hr timeout 15 "$NP" netcheck --broker "$SRV1:3478" --json >"$f.np2" 2>/dev/null
    lab_log "hr via $server (info): after hr -> $SRV2, netcheck says '$(np_words "$f.np2")' (the filter is open for $SRV2)"
}

lab_up || { lab_fail "lab up"; lab_summary; exit 1; }

# ---- against coturn, the reference (started by natlab.sh up)
for h in $HOSTS; do run_host coturn "$h"; done

# ---- against natbroker on the same addresses and ports
"$NATLAB" stop-coturn
lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'
NBLOG=$LAB_TMP/natbroker.log
lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen "$SRV2"
NB_PID=$LAB_LAST_PID
lab_check "natbroker binds 2 IPs x 2 ports" lab_wait 5 eval \
    'lab_udp_bound srv 3478 && lab_udp_bound srv 3479'
for h in $HOSTS; do run_host natbroker "$h"; done
lab_stop "$NB_PID"

lab_summary
