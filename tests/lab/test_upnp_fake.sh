#!/usr/bin/env bash
# test_upnp_fake.sh NATPEER [NATBROKER]: natpeer netcheck's UPnP client
# against a STRICT fake IGD (fake_igd.py) run in the router namespace of the
# `lan` router (r-lan, LAN 192.168.9.1; SSDP on its lan0, HTTP on :5000).
#
# For each behaviour of the fake router, `natpeer netcheck --broker SRV
# --port 40001 --json` runs on lan1, and its "upnp" object (status,
# external, lease, reason) must say:
#   success                  "unverified" (with a reason: the fake cannot
#                            forward, so the broker's probe cannot arrive)
#                            or "mapped"; external 203.0.113.109:40001
#   718,718 then success     mapped/unverified, external port != 40001
#   725 then success         lease 0 accepted
#   606, 501                 "refused", the code in the reason
#   external IP 100.64.0.5   "unusable", and no mapping asked for
#   --hang                   netcheck still ends, in bounded time,
#                            "unavailable" or "refused" with a reason
#   --html                   "unavailable"
# and, from the fake IGD's log, that the client sent a quoted SOAPAction
# naming the body's action, "UDP" in upper case, NewInternalClient
# 192.168.9.2, nothing the strict checks refused, and a DeletePortMapping of
# the mapping when netcheck exited.
#
# With NATBROKER, coturn is replaced by natbroker on srv (the broker whose
# probe cannot arrive); without it, coturn answers the STUN part.
# Needs root (exit 77 otherwise).
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbu}
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_upnp_fake.sh PATH/TO/natpeer [PATH/TO/natbroker]}
NB=${2:-}
FAKE=$LAB_DIR/fake_igd.py
SRV1=203.0.113.10
SRV2=203.0.113.11
HOST=lan1
IPORT=40001

lab_init 300
[ -x "$NP" ] || { lab_fail "$NP is not executable"; lab_summary; exit 1; }
[ -z "$NB" ] || [ -x "$NB" ] || { lab_fail "$NB is not executable"; lab_summary; exit 1; }
command -v python3 >/dev/null || { lab_fail "python3 not found (fake_igd.py needs it)"; lab_summary; exit 1; }

ROUTER=$("$NATLAB" router "$HOST")
HOST_IP=$(lab_addr "$HOST")       # 192.168.9.2
GW=${HOST_IP%.*}.1                # the router's LAN address
WAN=$(lab_public "$HOST")         # 203.0.113.109: what the broker sees

lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
if [ -n "$NB" ]; then
    "$NATLAB" stop-coturn
    lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'
    lab_start srv "$LAB_TMP/natbroker.log" "$NB" --public-list --listen "$SRV1" --listen "$SRV2"
    lab_check "natbroker is up" lab_wait 5 eval 'lab_udp_bound srv 3478 && lab_udp_bound srv 3479'
fi

# check.py OUT IGDLOG EXPR: EXPR (Python) over the netcheck JSON's "upnp"
# object `u` and the fake IGD's log: H (HTTP requests), S (SOAP POSTs),
# M (SSDP M-SEARCHes). Exit 0 if true; else print what was seen.
cat >"$LAB_TMP/check.py" <<'EOF'
import json, os, re, sys
out, log, expr = sys.argv[1:4]
u, j = {}, None
for line in open(out, errors="replace"):
    line = line.strip()
    if line.startswith("{"):
        try:
            j = json.loads(line)
        except ValueError:
            pass
if isinstance(j, dict) and isinstance(j.get("upnp"), dict):
    u = j["upnp"]
L = []
if os.path.exists(log):
    for line in open(log):
        try:
            L.append(json.loads(line))
        except ValueError:
            pass
H = [e for e in L if e.get("kind") == "http"]
S = [e for e in H if e.get("method") == "POST"]
M = [e for e in L if e.get("kind") == "ssdp"]
def port(x):
    if isinstance(x, dict):
        x = x.get("port")
    if isinstance(x, int):
        return x
    if isinstance(x, str) and re.fullmatch(r".*:[0-9]+", x):
        return int(x.rsplit(":", 1)[1])
    return None
def ip(x):
    if isinstance(x, dict):
        return x.get("ip")
    if isinstance(x, str):
        return x.rsplit(":", 1)[0]
    return None
def adds(ok=None):
    return [e for e in S if e.get("action") in ("AddPortMapping", "AddAnyPortMapping")
            and (ok is None or (e.get("status") == 200) == ok)]
def deletes():
    return [e for e in S if e.get("action") == "DeletePortMapping"]
def quoted(e):
    return e.get("soapaction") == '"%s#%s"' % (
        "urn:schemas-upnp-org:service:WANIPConnection:2", e.get("action"))
if eval(expr):
    sys.exit(0)
print("upnp: %s" % json.dumps(u))
for e in L:
    a = e.get("args") or {}
    print("igd: %s %s %s %s status=%s fault=%s rejected=%s args=%s" % (
        e.get("kind"), e.get("method", ""), e.get("path") or e.get("st"), e.get("action") or "",
        e.get("status"), e.get("fault"), e.get("rejected"), json.dumps(a)))
sys.exit(1)
EOF

# expect NAME EXPR: a counted case over the current run's files
expect() {
    local name=$1 expr=$2 why
    if why=$(python3 "$LAB_TMP/check.py" "$CASE.out" "$CASE.igd.log" "$expr" 2>&1); then
        lab_pass "$CASE_NAME: $name"
    else
        lab_fail "$CASE_NAME: $name" "$why
$(head -c 2000 "$CASE.err")"
    fi
}

# run_case NAME FAKE-OPTIONS...: a fresh fake IGD on r-lan, one netcheck on lan1.
run_case() {
    local t0 pid
    CASE_NAME=$1; shift
    CASE=$LAB_TMP/case-${CASE_NAME//[^A-Za-z0-9]/_}
    : >"$CASE.out"
    lab_flush
    lab_start "$ROUTER" "$CASE.igd.out" python3 "$FAKE" --http "$GW:5000" --ssdp "$GW" \
        --external-ip "$WAN" --log "$CASE.igd.log" "$@"
    pid=$LAB_LAST_PID
    if ! lab_wait 10 grep -q '^ready' "$CASE.igd.out"; then
        lab_fail "$CASE_NAME: fake IGD starts" "$(cat "$CASE.igd.out")"
        lab_stop "$pid"
        return 1
    fi
    t0=$(lab_now_ms)
    lab_exec "$HOST" timeout 40 "$NP" netcheck --broker "$SRV1" --port "$IPORT" --json --portmap upnp \
        >"$CASE.out" 2>"$CASE.err"
    CASE_RC=$?
    CASE_MS=$(($(lab_now_ms) - t0))
    lab_stop "$pid"
    lab_log "$CASE_NAME: netcheck exit $CASE_RC after $CASE_MS ms: $(grep -o '"upnp":{[^}]*}' "$CASE.out")"
    if [ "$CASE_RC" -ne 0 ]; then
        lab_fail "$CASE_NAME: netcheck exits 0" "$(cat "$CASE.out" "$CASE.err")"
    fi
}

# What every run must have sent, whatever the router answered.
common_checks() {
    expect "M-SEARCH with MAN quoted, answered" \
        'M and all(e["man"] == "\"ssdp:discover\"" for e in M) and any(e["answered"] for e in M)'
    expect "nothing refused by the strict checks" 'H and all(e.get("rejected") is None for e in H)'
    expect "SOAPAction quoted, naming the body's action" 'all(quoted(e) for e in S)'
    expect "NewProtocol UDP (upper case)" \
        'all(e["args"]["NewProtocol"] == "UDP" for e in S if "NewProtocol" in (e.get("args") or {}))'
}
# A mapping was granted: its deletion on exit, and the client it named.
mapped_checks() {
    expect "NewInternalClient $HOST_IP" \
        "adds() and all(e['args']['NewInternalClient'] == '$HOST_IP' for e in adds())"
    expect "NewInternalPort $IPORT" "all(e['args']['NewInternalPort'] == '$IPORT' for e in adds())"
    expect "external port is the one granted" \
        'port(u.get("external")) == int(adds(True)[-1]["args"]["NewExternalPort"])'
    expect "DeletePortMapping of it on exit" \
        'deletes() and deletes()[-1]["args"]["NewExternalPort"] == adds(True)[-1]["args"]["NewExternalPort"] and deletes()[-1]["status"] == 200 and S.index(deletes()[-1]) > S.index(adds(True)[-1])'
}

# ---- 1. success
run_case "success"
if grep -q '"upnp":{"status":"disabled"' "$CASE.out"; then
    lab_fail "natpeer netcheck runs UPnP" "$(cat "$CASE.out")"
    lab_summary
    exit 1
fi
expect "status unverified (with a reason) or mapped" \
    '(u.get("status") == "unverified" and u.get("reason")) or u.get("status") == "mapped"'
expect "external $WAN:$IPORT" "ip(u.get('external')) == '$WAN' and port(u.get('external')) == $IPORT"
expect "lease 3600" 'u.get("lease") == 3600'
common_checks
mapped_checks

# ---- 2. conflicts, then success on another port
run_case "718,718" --faults 718,718
expect "mapped or unverified" 'u.get("status") in ("mapped", "unverified")'
expect "external port differs from $IPORT" "port(u.get('external')) not in (None, $IPORT)"
expect "three adds: two refused with 718, one granted" \
    '[e.get("fault") for e in adds()] == [718, 718, None] and len(adds(True)) == 1'
common_checks
mapped_checks

# ---- 3. only permanent leases
run_case "725" --faults 725
expect "mapped or unverified" 'u.get("status") in ("mapped", "unverified")'
expect "lease 0 accepted" 'u.get("lease") == 0 and adds(True)[-1]["args"]["NewLeaseDuration"] == "0"'
common_checks
mapped_checks

# ---- 4, 5. refusals
for code in 606 501; do
    run_case "$code" --faults "$code"
    expect "refused, $code in the reason" "u.get('status') == 'refused' and '$code' in (u.get('reason') or '')"
    expect "no delete (nothing was mapped)" 'not deletes()'
    common_checks
done

# ---- 6. a CGNAT external address
run_case "external 100.64.0.5" --external-ip 100.64.0.5
expect "unusable, with a reason" 'u.get("status") == "unusable" and u.get("reason")'
expect "no mapping asked for" 'not adds()'
common_checks

# ---- 7. a router that never answers HTTP
run_case "hang" --hang
expect "unavailable or refused, with a reason" \
    'u.get("status") in ("unavailable", "refused") and u.get("reason")'
if [ "$CASE_MS" -lt 15000 ]; then
    lab_pass "hang: netcheck finished in $CASE_MS ms (< 15000)"
else
    lab_fail "hang: netcheck took $CASE_MS ms (>= 15000)"
fi
common_checks

# ---- 8. HTML instead of XML
run_case "html" --html
expect "unavailable, with a reason" 'u.get("status") == "unavailable" and u.get("reason")'
common_checks

lab_summary
