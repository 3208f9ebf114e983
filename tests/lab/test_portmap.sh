#!/usr/bin/env bash
# test_portmap.sh NATPEER NATBROKER: `natpeer map` (PCP > NAT-PMP > UPnP)
# against Debian's real miniupnpd on r-upnp, the double NAT behind r-cgn, and
# the strict fake NAT-PMP/PCP server (fake_pmp.py) on r-upnp.
#
#  A. miniupnpd on r-upnp in each portmap mode (natlab.sh portmap all|pmp|upnp):
#     - map udp: the protocol chosen (all, pmp -> pcp; upnp -> upnp), verified
#       by natbroker, on the router while it runs (nft; upnpc -l in all/upnp),
#       gone after SIGTERM (exit 0, "removed"); in pmp mode a datagram from
#       pub to the external port no longer arrives;
#     - map tcp forced to each protocol the mode speaks, a socat server on the
#       port (natpeer connect-only): pub's socat reaches it through the
#       external address; gone after SIGTERM;
#     - (all) map tcp on a free port: natpeer's own listener got the broker's
#       greeting; listen on upnp + connect from sym: path "upnp", data both
#       ways, mapping gone after SIGTERM.
#  B. cgn (miniupnpd behind the carrier NAT): map exits 1 "refused" (PCP
#     result 8, UPnP 501: the router knows it is behind a NAT), nothing on
#     r-cgn; netcheck's portmap is not "mapped".
#  C. fake_pmp.py on 192.168.6.1:5351 (miniupnpd in upnp mode, natpeer
#     --portmap pcp,nat-pmp): normal (--nft: verified), natpmp-only (nat-pmp),
#     pcp-only ("verified: no" text), PCP results 2, 8, 12 and NAT-PMP results
#     2, 3 (exit 1, each its own reason), short-lifetime=4 (renewed within 3 s,
#     same nonce and port), epoch-reset-after=4 (router restart seen, mapped
#     again), other-port (the fake's port reported), silent and wrong-source
#     (unavailable, bounded). No request of natpeer's fails the strict checks.
# Needs root (exit 77 otherwise).
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbpm}
export NATLAB_PORTMAP=all
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_portmap.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_portmap.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
WAN=203.0.113.106      # r-upnp's WAN address
GW=192.168.6.1         # r-upnp's LAN address
HOST_IP=192.168.6.2    # upnp
ALT_GW=192.168.6.254   # wrong-source: the address the fake answers from
FAKE=$LAB_DIR/fake_pmp.py

lab_init 200
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
command -v python3 >/dev/null || { lab_fail "python3 not found"; lab_summary; exit 1; }
lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'
lab_start srv "$LAB_TMP/natbroker.log" "$NB" --public-list --listen "$SRV1" --listen "$SRV2"
lab_check "natbroker is up" lab_wait 5 eval 'lab_udp_bound srv 3478 && lab_udp_bound srv 3479'

# check.py OUT LOG EXPR: EXPR (Python) over natpeer's stdout OUT and a fake's
# log LOG: e = the first "mapped"/"failed" event, E = all JSON objects of OUT,
# L = the log's entries; create()/renew()/delete() pick MAP entries by action.
cat >"$LAB_TMP/check.py" <<'EOF'
import json, os, sys
out, log, expr = sys.argv[1:4]
E, L = [], []
for line in open(out, errors="replace"):
    try:
        E.append(json.loads(line))
    except ValueError:
        pass
e = next((x for x in E if isinstance(x, dict) and x.get("event") in ("mapped", "failed")), {})
if os.path.exists(log):
    for line in open(log):
        try:
            L.append(json.loads(line))
        except ValueError:
            pass
def acts(a, kind=None):
    return [x for x in L if x.get("action") == a and (kind is None or x.get("kind") == kind)]
create = lambda kind=None: acts("create", kind)
renew = lambda kind=None: acts("renew", kind)
delete = lambda kind=None: acts("delete", kind)
# natpeer asks PCP and NAT-PMP at once: a single-protocol fake rejects the other one
EXPECTED = ("PCP to a NAT-PMP-only server", "NAT-PMP to a PCP-only server")
strict = all(x.get("rejected") is None or x.get("rejected") in EXPECTED for x in L)
if eval(expr):
    sys.exit(0)
print("natpeer: %s" % json.dumps(E))
for x in L:
    print("fake: %s" % json.dumps({k: x.get(k) for k in ("t", "kind", "action", "opcode", "lifetime",
          "internal_port", "suggested_port", "external_port", "nonce", "result", "granted_lifetime",
          "epoch", "answer_from", "rejected", "error") if x.get(k) is not None}))
sys.exit(1)
EOF
# expect NAME EXPR: a counted case over the current map's stdout and fake log
expect() {
    local why
    if why=$(python3 "$LAB_TMP/check.py" "$M.out" "$M.fake.log" "$2" 2>&1); then
        lab_pass "$CASE: $1"
    else
        lab_fail "$CASE: $1" "$why
$(head -c 2000 "$M.err")"
    fi
}

# run_map NODE TAG ARGS...: `natpeer map ARGS --broker SRV1` in NODE, in the
# background: files $M.out, $M.err; PID in MAP_PID.
run_map() {
    local node=$1; CASE=$2; shift 2
    M=$LAB_TMP/${CASE//[^A-Za-z0-9=_-]/_}
    : >"$M.out"
    lab_spawn "$node" /dev/null "$M.out" "$M.err" "$NP" map "$@" --broker "$SRV1"
    MAP_PID=$LAB_LAST_PID
    MAP_T0=$(lab_now_ms)
}
# map_event [SECS]: natpeer printed its mapped/failed line (or exited)
map_event() {
    lab_wait "${1:-15}" eval "grep -qE '^(\\{\"event\":\"(mapped|failed)\"|mapped )' '$M.out' || _lab_all_gone $MAP_PID"
}
# map_reap: wait for natpeer's exit (SIGTERM first if it runs): MAP_RC, MAP_MS
map_reap() {
    local sig=${1:-TERM}
    [ "$sig" = none ] || kill -"$sig" "$MAP_PID" 2>/dev/null
    lab_wait 5 _lab_all_gone "$MAP_PID" || kill -KILL "$MAP_PID" 2>/dev/null
    MAP_MS=$(($(lab_now_ms) - MAP_T0))
    wait "$MAP_PID"
    MAP_RC=$?
    local keep=() q
    for q in "${LAB_PIDS[@]}"; do [ "$q" = "$MAP_PID" ] || keep+=("$q"); done
    LAB_PIDS=("${keep[@]}")
}
# map_stop: SIGTERM; natpeer must exit 0 having said it removed the mapping
map_stop() {
    map_reap TERM
    if [ "$MAP_RC" -eq 0 ] && grep -qE '^(\{"event":"removed"\}|removed the mapping)$' "$M.out"; then
        lab_pass "$CASE: SIGTERM: exit 0, removed"
    else
        lab_fail "$CASE: SIGTERM: want exit 0 and removed, exit $MAP_RC" "$(cat "$M.out" "$M.err")"
    fi
}

# the router's forward rule for a mapping (miniupnpd's chain): PROTO(6|17) PORT
nft_rules() { lab_exec r-upnp nft list chain inet filter miniupnpd 2>/dev/null; }
nft_has() { nft_rules | grep -E "th dport $2 " | grep -q "@nh,72,8 0x$(printf %x "$1") "; }
# ... and its absence, in a chain that could be listed
nft_lacks() {
    local l
    l=$(nft_rules) && grep -q "chain miniupnpd" <<<"$l" &&
        ! grep -E "th dport $2 " <<<"$l" | grep -q "@nh,72,8 0x$(printf %x "$1") "
}
# upnpc -l on upnp lists PROTO EXT -> HOST_IP:PORT (any description: PCP,
# NAT-PMP and UPnP mappings all show)
upnpc_has() {
    upnpc_l | grep -qE "^ *[0-9]+ $1 +$2->$HOST_IP:$3 "
}
# upnpc -l with miniupnpd's root description URL: no 2 s SSDP discovery
upnpc_l() { lab_exec upnp timeout 10 upnpc -u "http://$GW:5000/rootDesc.xml" -l 2>/dev/null; }
upnpc_ok() { upnpc_l | grep -q "^ExternalIPAddress = $WAN"; }
# upnpc answered and does not list PROTO EXT -> HOST_IP:PORT (EXT may be a regex)
upnpc_lacks() {
    local l
    l=$(upnpc_l) && grep -q "^ExternalIPAddress = $WAN" <<<"$l" &&
        ! grep -qE "^ *[0-9]+ $1 +$2->$HOST_IP:$3 " <<<"$l"
}

# ============================================================ A. miniupnpd
declare -A WANT_UDP=([all]=pcp [pmp]=pcp [upnp]=upnp)
declare -A OFFERS=([all]="pcp nat-pmp upnp" [pmp]="pcp nat-pmp" [upnp]="upnp")
port=40100
for mode in all pmp upnp; do
    if [ "$mode" != all ]; then
        lab_check "[$mode] miniupnpd switched (natlab.sh portmap $mode)" lab_quiet "$NATLAB" portmap "$mode"
    fi
    [ "$mode" = pmp ] || lab_check "[$mode] upnpc talks to miniupnpd" upnpc_ok

    # ---- map udp, default protocols
    port=$((port + 1))
    lab_flush
    run_map upnp "[$mode] map udp $port" udp "$port" --json
    map_event
    p=${WANT_UDP[$mode]}
    expect "protocol $p, verified, external $WAN:$port, gateway $GW" \
        "e.get('event') == 'mapped' and e.get('protocol') == '$p' and e.get('verified') is True and e.get('transport') == 'udp' and e.get('internal') == $port and e.get('external') == '$WAN:$port' and e.get('gateway') == '$GW'"
    lab_check "$CASE: the router forwards UDP $port (nft)" nft_has 17 "$port"
    [ "$mode" = pmp ] || lab_check "$CASE: upnpc -l lists UDP $port" upnpc_has UDP "$port" "$port"
    map_stop
    lab_check "$CASE: after SIGTERM the router's rule is gone (nft)" nft_lacks 17 "$port"
    if [ "$mode" = pmp ]; then
        lab_udp_listen upnp "$port" "$LAB_TMP/udp-$port" ||
            lab_fail "$CASE: a UDP listener on upnp:$port"
        lab_flush
        lab_check "$CASE: after SIGTERM a datagram from pub to $WAN:$port does not arrive" \
            lab_udp_blocked pub "$WAN" "$port" "after-$port" "$LAB_TMP/udp-$port"
    else
        lab_check "$CASE: after SIGTERM upnpc -l no longer lists it" upnpc_lacks UDP "$port" "$port"
    fi

    # ---- map tcp with each protocol, a socat server on the port (connect-only)
    for proto in ${OFFERS[$mode]}; do
        port=$((port + 1))
        lab_flush
        if ! lab_tcp_listen upnp "$port" "$LAB_TMP/tcp-$port"; then
            lab_fail "[$mode] socat listens on upnp TCP $port"
            continue
        fi
        spid=$LAB_LAST_PID
        run_map upnp "[$mode] map tcp $port --portmap $proto (socat server)" tcp "$port" --json --portmap "$proto"
        map_event
        expect "protocol $proto, verified, external $WAN:$port" \
            "e.get('event') == 'mapped' and e.get('protocol') == '$proto' and e.get('transport') == 'tcp' and e.get('verified') is True and e.get('external') == '$WAN:$port'"
        lab_tcp_send pub "$WAN" "$port" "hello-$mode-$proto"
        lab_check "$CASE: pub's socat reaches upnp's server through $WAN:$port" \
            lab_wait 5 grep -qE "^from 203\.0\.113\.20:[0-9]+ hello-$mode-$proto\$" "$LAB_TMP/tcp-$port"
        lab_check "$CASE: the router forwards TCP $port (nft)" nft_has 6 "$port"
        map_stop
        lab_check "$CASE: after SIGTERM the rule is gone (nft)" nft_lacks 6 "$port"
        [ "$mode" = pmp ] ||
            lab_check "$CASE: after SIGTERM upnpc -l no longer lists it" upnpc_lacks TCP "$port" "$port"
        lab_stop "$spid"
    done

    [ "$mode" = all ] || continue
    # ---- map tcp on a free port: natpeer's own listener gets the broker's greeting
    port=$((port + 1))
    lab_flush
    run_map upnp "[$mode] map tcp $port (natpeer's listener)" tcp "$port" --json --log-level debug
    map_event
    expect "protocol pcp, verified, external $WAN:$port" \
        "e.get('event') == 'mapped' and e.get('protocol') == 'pcp' and e.get('transport') == 'tcp' and e.get('verified') is True and e.get('external') == '$WAN:$port'"
    lab_check "$CASE: the broker's greeting reached natpeer's listener" \
        grep -q "the broker's greeting arrived on TCP $port" "$M.err"
    map_stop
    lab_check "$CASE: after SIGTERM upnpc -l no longer lists it" upnpc_lacks TCP "$port" "$port"

    # ---- listen on upnp, connect from sym (symmetric: only the mapping works)
    lab_flush
    lab_fifo in-up; lfd=$LAB_FIFO_FD
    lab_spawn upnp "$LAB_TMP/in-up" "$LAB_TMP/out-up" "$LAB_TMP/err-up" \
        "$NP" listen --id up --broker "$SRV1" --json
    lpid=$LAB_LAST_PID
    if lab_wait 15 grep -q "verified by the broker" "$LAB_TMP/err-up" &&
       lab_wait 5 grep -q "^listening as up" "$LAB_TMP/err-up"; then
        lport=$(sed -n 's/^[a-z-]*: mapped UDP \([0-9]*\) -> .*/\1/p' "$LAB_TMP/err-up" | head -n 1)
        lproto=$(sed -n 's/^\([a-z-]*\): mapped UDP [0-9]* -> .*/\1/p' "$LAB_TMP/err-up" | head -n 1)
        if [ "$lproto" = pcp ] && [ -n "$lport" ]; then
            lab_pass "[all] listen on upnp: mapped UDP $lport over pcp, verified by the broker"
        else
            lab_fail "[all] listen on upnp: want a pcp mapping" "$(cat "$LAB_TMP/err-up")"
        fi
        lab_fifo in-sym; cfd=$LAB_FIFO_FD
        lab_spawn sym "$LAB_TMP/in-sym" "$LAB_TMP/out-sym" "$LAB_TMP/err-sym" \
            "$NP" connect --id s1 up --broker "$SRV1" --json
        cpid=$LAB_LAST_PID
        if lab_wait 15 grep -q '"event"' "$LAB_TMP/out-sym" &&
           grep -q '"event":"connected","peer":"up","path":"upnp"' "$LAB_TMP/out-sym"; then
            lab_pass "[all] sym -> upnp connected on path upnp: $(head -n 1 "$LAB_TMP/out-sym")"
            echo "hello-from-sym" >&"$cfd"
            lab_check "[all] sym -> upnp: data reaches the listener" \
                lab_wait 5 lab_data_has "$LAB_TMP/out-up" hello-from-sym
            echo "hello-from-upnp" >&"$lfd"
            lab_check "[all] upnp -> sym: data reaches the connector" \
                lab_wait 5 lab_data_has "$LAB_TMP/out-sym" hello-from-upnp
        else
            lab_fail "[all] sym -> upnp: want path upnp" \
                "$(cat "$LAB_TMP/out-sym" "$LAB_TMP/err-sym" "$LAB_TMP/err-up")"
        fi
        exec {cfd}>&-
        lab_stop "$cpid"
        lab_stop "$lpid"
        [ -z "$lport" ] || lab_check "[all] after the listener's SIGTERM upnpc -l no longer lists UDP $lport" \
            upnpc_lacks UDP "[0-9]+" "$lport"
    else
        lab_fail "[all] listen on upnp: no verified mapping" "$(cat "$LAB_TMP/err-up")"
        lab_stop "$lpid"
    fi
    exec {lfd}>&-
done

# ============================================================ B. double NAT
lab_flush
run_map cgn "[cgn] map udp 40301" udp 40301 --json
map_event 10
map_reap none
expect "exit 1: failed, status refused: PCP result 8 and UPnP 501" \
    "$MAP_RC == 1 and e.get('event') == 'failed' and e.get('status') == 'refused' and '(result 8)' in e.get('reason', '') and '501' in e.get('reason', '')"
lab_check "$CASE: stderr says natpeer: map: refused: ..." grep -q "^natpeer: map: refused: " "$M.err"
lab_check "$CASE: no forward rule on r-cgn" \
    eval "! lab_exec r-cgn nft list chain inet filter miniupnpd 2>/dev/null | grep -q 'dport 40301'"
f=$LAB_TMP/netcheck-cgn
lab_flush
lab_exec cgn timeout 20 "$NP" netcheck --broker "$SRV1" --json >"$f" 2>"$f.err"
pm=$(jq -c .portmap "$f" 2>/dev/null)
if [ -n "$pm" ] && [ "$(jq -r .portmap.status "$f")" = refused ] && [ "$(jq -r .upnp.status "$f")" = refused ]; then
    lab_pass "[cgn] netcheck: portmap (and upnp) refused, not mapped: $pm"
else
    lab_fail "[cgn] netcheck: want portmap.status refused" "$(cat "$f" "$f.err")"
fi

# ============================================================ C. the strict fake
lab_check "[fake] miniupnpd in upnp mode: UDP 5351 is free on r-upnp" \
    eval "[ \"\$(cat $LAB_RUN/portmap-r-upnp)\" = upnp ] && ! lab_udp_bound r-upnp 5351"
FAKE_PID=
# fake_start MODE [FAKE OPTIONS...]: a fresh fake on GW:5351, its log $FLOG
fake_start() {
    local mode=$1; shift
    FAKE_N=$((${FAKE_N:-0} + 1)) # a fresh log per start: a mode may run twice
    FLOG=$LAB_TMP/fake-$FAKE_N-${mode//[^A-Za-z0-9=_-]/_}
    lab_flush
    lab_start r-upnp "$FLOG.out" python3 "$FAKE" --listen "$GW" --external-ip "$WAN" \
        --mode "$mode" --log "$FLOG.log" --max-seconds 60 "$@"
    FAKE_PID=$LAB_LAST_PID
    lab_wait 10 grep -qs '^ready' "$FLOG.out" || { lab_fail "[fake $mode] starts" "$(cat "$FLOG.out")"; return 1; }
}
fake_stop() { lab_stop "$FAKE_PID"; cp "$FLOG.log" "$M.fake.log" 2>/dev/null || :; }
# fake_map TAG ARGS...: run_map on upnp with the fake's log as $M.fake.log
# (natpeer takes the last --portmap: ARGS may narrow it further)
fake_map() { local tag=$1; shift; run_map upnp "[fake] $tag" "$1" "$2" --portmap pcp,nat-pmp "${@:3}"; }
# (the fake's log is copied to $M.fake.log when it stops; expect reads it)
fake_expect_strict() { expect "the fake refused none of natpeer's requests" "strict and L"; }

# ---- normal, with real DNATs: verified; deleted on SIGTERM
port=40401
if fake_start normal --nft; then
    fake_map "normal" udp "$port" --json
    map_event
    map_stop
    fake_stop
    expect "pcp, verified, external $WAN:$port" \
        "e.get('protocol') == 'pcp' and e.get('verified') is True and e.get('external') == '$WAN:$port'"
    expect "the PCP MAP asked internal $port, suggested $port, lifetime 7200, client $HOST_IP" \
        "len(create('pcp')) == 1 and create('pcp')[0]['internal_port'] == $port and create('pcp')[0]['suggested_port'] == $port and create('pcp')[0]['lifetime'] == 7200 and create('pcp')[0]['client_ip'] == '$HOST_IP'"
    expect "deleted on SIGTERM (same nonce, lifetime 0)" \
        "len(delete('pcp')) == 1 and delete('pcp')[0]['nonce'] == create('pcp')[0]['nonce'] and delete('pcp')[0]['lifetime'] == 0"
    fake_expect_strict
fi

# ---- natpmp-only: falls back to NAT-PMP
port=40402
if fake_start natpmp-only --nft; then
    fake_map "natpmp-only" udp "$port" --json
    map_event
    map_stop
    fake_stop
    expect "nat-pmp, verified, external $WAN:$port" \
        "e.get('protocol') == 'nat-pmp' and e.get('verified') is True and e.get('external') == '$WAN:$port'"
    expect "a NAT-PMP map request, then its delete" \
        "len(create('natpmp')) == 1 and len(delete('natpmp')) == 1 and delete('natpmp')[0]['internal_port'] == $port"
    fake_expect_strict
fi

# ---- pcp-only, no DNAT: mapped over PCP, but the broker cannot verify it (text)
port=40403
if fake_start pcp-only; then
    fake_map "pcp-only" udp "$port"
    map_event
    map_stop
    fake_stop
    lab_check "$CASE: stdout: mapped ... via pcp; verified: no (...)" \
        grep -qE "^mapped UDP $port -> $WAN:$port via pcp \(lease 7200 s\); verified: no \(.+\)\$" "$M.out"
    expect "no NAT-PMP mapping asked" "len(create('pcp')) == 1 and not create('natpmp')"
    fake_expect_strict
fi

# ---- refusals: exit 1, each with its own reason
declare -A REASONS=()
refusal() { # FAKEMODE STATUS REASON-SUBSTRING [natpeer args]
    local mode=$1 st=$2 sub=$3; shift 3
    port=$((port + 1))
    fake_start "$mode" || return
    fake_map "$mode" udp "$port" --json "$@"
    map_event 10
    map_reap none
    fake_stop
    expect "exit 1, failed: $st, reason has '$sub'" \
        "$MAP_RC == 1 and e.get('event') == 'failed' and e.get('status') == '$st' and '$sub' in e.get('reason', '')"
    lab_check "$CASE: stderr: natpeer: map: $st: ..." grep -q "^natpeer: map: $st: .*$sub" "$M.err"
    REASONS[$mode]=$(jq -r 'select(.event == "failed") | .reason' "$M.out" 2>/dev/null)
    fake_expect_strict
}
refusal result=2 refused "(result 2)"
refusal result=8 refused "(result 8)"
refusal result=12 unusable "ADDRESS_MISMATCH"
refusal natpmp-result=2 refused "over NAT-PMP" --portmap nat-pmp
refusal natpmp-result=3 refused "over NAT-PMP" --portmap nat-pmp
n_distinct=$(printf '%s\n' "${REASONS[@]}" | sort -u | grep -c .)
if [ "$n_distinct" -eq 5 ]; then
    lab_pass "[fake] the five refusals give five distinct reasons"
else
    lab_fail "[fake] want five distinct reasons, got $n_distinct" "$(printf '%s\n' "${REASONS[@]}")"
fi
# shellcheck disable=SC2016  # expanded by eval
lab_check "[fake] natpmp-result=2 says (result 2), natpmp-result=3 (result 3)" \
    eval '[[ ${REASONS[natpmp-result=2]} == *"(result 2)"* && ${REASONS[natpmp-result=3]} == *"(result 3)"* ]]'

# ---- short-lifetime=4: renewed at half the lease, same nonce and port
port=40431
if fake_start short-lifetime=4 --nft; then
    fake_map "short-lifetime=4" udp "$port" --json
    map_event
    cp "$FLOG.log" "$M.fake.log"
    lab_wait 5 eval "cp '$FLOG.log' '$M.fake.log'; python3 '$LAB_TMP/check.py' '$M.out' '$M.fake.log' 'renew(\"pcp\")' >/dev/null"
    map_stop
    fake_stop
    expect "lease 4, verified" "e.get('lease') == 4 and e.get('verified') is True"
    expect "a renewal within 3 s of the create, same nonce, external port $port asked" \
        "renew('pcp') and 0 < renew('pcp')[0]['t'] - create('pcp')[0]['t'] <= 3.0 and renew('pcp')[0]['nonce'] == create('pcp')[0]['nonce'] and renew('pcp')[0]['suggested_port'] == $port and renew('pcp')[0]['external_port'] == $port"
    fake_expect_strict
fi

# ---- epoch-reset-after=4: the router "reboots"; natpeer maps again
port=40432
if fake_start epoch-reset-after=4 --nft; then
    fake_map "epoch-reset-after=4" udp "$port" --portmap-check 1
    map_event
    lab_check "$CASE: stderr: the router restarted; mapped again" \
        lab_wait 8 grep -qE "^pcp: the router restarted; mapped again UDP $port -> $WAN:$port" "$M.err"
    map_stop
    fake_stop
    lab_check "$CASE: stdout: mapped ... via pcp, verified by the broker" \
        grep -qE "^mapped UDP $port -> $WAN:$port via pcp \(lease 7200 s\), verified by the broker\$" "$M.out"
    expect "the fake's log: create, reset, create again" \
        "[x.get('action') or x['kind'] for x in L if x['kind'] == 'reset' or x.get('action') == 'create'] == ['create', 'reset', 'create']"
    fake_expect_strict
fi

# ---- other-port: the granted port, not the suggested one
port=40433
if fake_start other-port --nft; then
    fake_map "other-port" udp "$port" --json
    map_event
    map_stop
    fake_stop
    expect "external $WAN:$((port + 1000)) (the fake's), verified" \
        "e.get('external') == '$WAN:$((port + 1000))' and e.get('verified') is True"
    expect "suggested $port, granted $((port + 1000))" \
        "create('pcp')[0]['suggested_port'] == $port and create('pcp')[0]['external_port'] == $((port + 1000))"
    fake_expect_strict
fi

# ---- a CGNAT external address (a double NAT, as natpeer sees it): unusable,
# the mapping deleted, nothing advertised
port=40440
if fake_start normal --external-ip 100.64.0.2; then
    fake_map "cgnat-external" udp "$port" --json
    map_event 10
    map_reap none
    fake_stop
    expect "exit 1, failed: unusable, the reason says CGNAT: double NAT" \
        "$MAP_RC == 1 and e.get('event') == 'failed' and e.get('status') == 'unusable' and 'CGNAT address: double NAT' in e.get('reason', '')"
    expect "the mapping the router granted was deleted (same nonce, lifetime 0)" \
        "len(create('pcp')) == 1 and len(delete('pcp')) == 1 and delete('pcp')[0]['nonce'] == create('pcp')[0]['nonce'] and delete('pcp')[0]['lifetime'] == 0"
    lab_check "$CASE: no mapped event" eval "! grep -q '\"event\":\"mapped\"' '$M.out'"
    fake_expect_strict
fi

# ---- silent: unavailable, bounded
port=40434
if fake_start silent; then
    fake_map "silent" udp "$port" --json --timeout 3
    map_event 6
    map_reap none
    fake_stop
    expect "exit 1 in $MAP_MS ms (< 4000), unavailable" \
        "$MAP_RC == 1 and $MAP_MS < 4000 and e.get('status') == 'unavailable'"
    expect "the fake got requests and answered none" "L and not [x for x in L if x.get('answered')]"
fi

# ---- wrong-source: answers from another address are ignored
port=40435
if ! lab_exec r-upnp ip addr add "$ALT_GW/24" dev lan0; then
    lab_fail "[fake] wrong-source: add $ALT_GW to r-upnp's lan0"
elif fake_start wrong-source --answer-from "$ALT_GW"; then
    fake_map "wrong-source" udp "$port" --json --timeout 3
    map_event 6
    map_reap none
    fake_stop
    expect "exit 1 in $MAP_MS ms (< 4000), unavailable" \
        "$MAP_RC == 1 and $MAP_MS < 4000 and e.get('status') == 'unavailable'"
    expect "the fake answered from $ALT_GW:5351" \
        "[x for x in L if x.get('answered') and x.get('answer_from') == '$ALT_GW:5351']"
fi
lab_exec r-upnp ip addr del "$ALT_GW/24" dev lan0 2>/dev/null

lab_summary
