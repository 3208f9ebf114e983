#!/usr/bin/env bash
# test_netcheck.sh NATPEER NATBROKER: `natpeer netcheck` classifies every lab
# NAT as the NAT was built, and as coturn's turnutils_natdiscovery does,
# against coturn and against natbroker (both in RFC 5780 mode on srv).
# Conntrack is flushed before every run. Needs root (exit 77 otherwise).
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbn}
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_netcheck.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_netcheck.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
HOSTS="pub fc rc prc sym sym2 blk upnp lan1 hp1 cgn"

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
