#!/usr/bin/env bash
# test_v6_netcheck.sh NATPEER NATBROKER: `natpeer netcheck` with two --broker
# (one IPv4, one IPv6) tests both families at once and reports each, in the
# dual-stack lab (NATLAB_V6=1, docs/lab.md "IPv6"). Two natbroker processes
# on srv, both RFC 5780: one on 203.0.113.10/.11, one on 2001:db8::10/::11.
# Per host the verdict of each family is checked in --json and in the text
# report: d6 (v4 port-restricted NAT + v6 APDF firewall), s6 (v4 symmetric
# + v6 APDF), o6 (no IPv4, v6 open), v6o (no IPv4, v6 APDF), b6 (v4
# port-restricted + v6 UDP dropped: "UDP blocked", a verdict, not "no IPv6":
# the host has IPv6 and a route, only UDP is dropped), prc (v4-only: "no
# IPv6"). Also: one --broker prints exactly the old report; the two
# families take about the time of the slower, not the sum; bad uses of a
# second --broker are refused. Conntrack is flushed before every run.
# Root only (exit 77).
#
#   sudo tests/lab/test_v6_netcheck.sh build/natpeer build/natbroker   # prefix nbv6n
set -u
export LC_ALL=C
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbv6n}
export NATLAB_V6=1
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NP=${1:?usage: test_v6_netcheck.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_v6_netcheck.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
SRV61=2001:db8::10
SRV62=2001:db8::11
B4=$SRV1
B6="[$SRV61]:3478"

lab_init 300
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done

# The expected verdict per host and family: "STATUS MAPPING FILTERING NAT",
# STATUS ok | udp-blocked | unavailable (then the rest is "-").
declare -A WANT4=(
    [d6]="ok ${LAB_EXPECT[prc]}"
    [s6]="ok ${LAB_EXPECT[sym]}"
    [o6]="unavailable - - -"
    [v6o]="unavailable - - -"
    [b6]="ok ${LAB_EXPECT[prc]}"
    [prc]="ok ${LAB_EXPECT[prc]}"
)
declare -A WANT6=(
    [d6]="ok none address-and-port-dependent firewall"
    [s6]="ok none address-and-port-dependent firewall"
    [o6]="ok none endpoint-independent open"
    [v6o]="ok none address-and-port-dependent firewall"
    [b6]="udp-blocked none unknown udp-blocked"
    [prc]="unavailable - - -"
)

# fam_words FILE FAM: one family's verdict from the --json report
fam_words() {
    jq -r --arg f "$2" '.families[$f] | if .status == "unavailable" then "unavailable - - -"
        else "\(.status) \(.mapping) \(.filtering) \(.nat)" end' "$1" 2>/dev/null
}
# text_words FILE FAM: the same from the text report's section ("IPv4: ..." /
# "IPv6: ...", up to the next section or "total:")
text_words() {
    awk -v fam="IPv$2" '
        /^IPv[46]: / { on = ($1 == fam ":") ; if (on && $2 == "no") { print "unavailable - - -"; exit } ; next }
        /^total:/ { on = 0 }
        on && $1 == "UDP:" { st = ($2 == "yes") ? "ok" : "udp-blocked" }
        on && $1 == "mapping:" { m = $2 }
        on && $1 == "filtering:" { f = $2 }
        on && $1 == "NAT:" { n = $2 }
        END { if (st != "") print st, m, f, n }' "$1"
}
# np HOST OUT ARGS...: run netcheck on HOST (conntrack flushed first), stdout
# to OUT, stderr to OUT.err, exit status to OUT.rc, wall time (ms) to OUT.ms
np() {
    local h=$1 out=$2 t0 rc
    shift 2
    lab_flush
    t0=$(lab_now_ms)
    lab_exec "$h" timeout 20 "$NP" netcheck "$@" >"$out" 2>"$out.err"
    rc=$?
    echo "$rc" >"$out.rc"
    echo $(($(lab_now_ms) - t0)) >"$out.ms"
    return 0
}
show() { for f in "$@"; do echo "== $f"; cat "$f"; done; }

# ------------------------------------------------------------------ bring up
if ! lab_up; then
    lab_fail "dual-stack lab comes up and gets ready" "$("$NATLAB" status 2>&1)"
    lab_summary
    exit 1
fi
lab_pass "dual-stack lab comes up and gets ready"

"$NATLAB" stop-coturn
lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'
lab_start srv "$LAB_TMP/nb4.log" "$NB" --public-list --key "$LAB_TMP/nb4.key" --listen "$SRV1" --listen "$SRV2"
NB4=$LAB_LAST_PID
lab_start srv "$LAB_TMP/nb6.log" "$NB" --public-list --key "$LAB_TMP/nb6.key" --listen "$SRV61" --listen "$SRV62"
NB6=$LAB_LAST_PID
# each pid's 2 addresses x 2 ports
bound() { # ADDR: bound on 3478 and 3479
    local s; s=$(ip netns exec "$(lab_ns srv)" ss -Hlun 2>/dev/null)
    grep -qF "$1:3478 " <<<"$s" && grep -qF "$1:3479 " <<<"$s"
}
for a in "$SRV1" "$SRV2" "[$SRV61]" "[$SRV62]"; do
    lab_check "natbroker binds $a:3478 and :3479" lab_wait 5 bound "$a"
done
lab_check "both natbroker processes run" bash -c "[ -d /proc/$NB4 ] && [ -d /proc/$NB6 ]"

# ------------------------------------------------------------------ 1. per host, both families
for h in d6 s6 o6 v6o b6 prc; do
    f=$LAB_TMP/$h
    np "$h" "$f.json" --broker "$B4" --broker "$B6" --json
    np "$h" "$f.txt" --broker "$B4" --broker "$B6"
    for fam in 4 6; do
        if [ "$fam" = 4 ]; then want=${WANT4[$h]}; else want=${WANT6[$h]}; fi
        got=$(fam_words "$f.json" "$fam")
        lab_check "$h IPv$fam (json): '$got' (want '$want')" [ "$got" = "$want" ]
        [ "$got" = "$want" ] || show "$f.json" "$f.json.err"
        got=$(text_words "$f.txt" "$fam")
        lab_check "$h IPv$fam (text): '$got'" [ "$got" = "$want" ]
        [ "$got" = "$want" ] || show "$f.txt" "$f.txt.err"
    done
    lab_check "$h: exit status 0 (json $(cat "$f.json.rc"), text $(cat "$f.txt.rc"))" \
        [ "$(cat "$f.json.rc")" = 0 -a "$(cat "$f.txt.rc")" = 0 ]
    # the top level is the first --broker's (the IPv4 one), as with one --broker
    top=$(jq -r '"\(.server) \(.mapping) \(.filtering) \(.nat)"' "$f.json" 2>/dev/null)
    w4=${WANT4[$h]#* }
    [ "${WANT4[$h]%% *}" = unavailable ] && w4="unknown unknown unknown"
    lab_check "$h: top-level fields are IPv4's ('$top')" [ "$top" = "$SRV1:3478 $w4" ]
    lab_log "$h: both families in $(jq -r .total_ms "$f.json") ms (v4 $(jq -r '.families["4"].ms // "-"' "$f.json"), v6 $(jq -r '.families["6"].ms // "-"' "$f.json"))"
done

# what the reports look like (information)
while IFS= read -r l; do lab_log "d6 text: $l"; done <"$LAB_TMP/d6.txt"
while IFS= read -r l; do lab_log "o6 text: $l"; done <"$LAB_TMP/o6.txt"
lab_log "d6 json: $(cat "$LAB_TMP/d6.json")"
lab_log "o6 json: $(cat "$LAB_TMP/o6.json")"

# reasons and details
lab_check "o6: IPv4 is unavailable for want of a route" \
    lab_quiet jq -e '.families["4"].reason | test("^no IPv4: no route to 203.0.113.10:3478")' "$LAB_TMP/o6.json"
lab_check "o6: the text says 'IPv4: no IPv4 (...)'" grep -q "^IPv4: no IPv4 (no route to " "$LAB_TMP/o6.txt"
lab_check "prc: the text says 'IPv6: no IPv6 (...)'" grep -q "^IPv6: no IPv6 (" "$LAB_TMP/prc.txt"
lab_check "d6: the IPv6 reflexive address is d6's own (no translation)" \
    lab_quiet jq -e --arg a "[$("$NATLAB" addr6 d6)]:" '.families["6"].reflexive | startswith($a)' "$LAB_TMP/d6.json"
lab_check "d6: the IPv4 reflexive address is r-d6's" \
    lab_quiet jq -e '.families["4"].reflexive | startswith("203.0.113.113:")' "$LAB_TMP/d6.json"
lab_check "d6: the port map is in the IPv4 section only" \
    bash -c "[ \$(grep -c '^  port map:' '$LAB_TMP/d6.txt') = 1 ] && awk '/^IPv6:/{s=1} s && /port map/{exit 1}' '$LAB_TMP/d6.txt'"
lab_check "o6: no IPv4, so no port mapping, and says why" \
    lab_quiet jq -e '.portmap.status == "unavailable" and (.portmap.reason | startswith("no IPv4"))' "$LAB_TMP/o6.json"

# ------------------------------------------------------------------ 2. IPv6 first
f=$LAB_TMP/d6-rev
np d6 "$f.json" --broker "$B6" --broker "$B4" --json
top=$(jq -r '"\(.server) \(.mapping) \(.filtering)"' "$f.json" 2>/dev/null)
lab_check "d6, IPv6 first: top-level fields are IPv6's ('$top')" \
    [ "$top" = "$B6 none address-and-port-dependent" ]
lab_check "d6, IPv6 first: both families" \
    [ "$(fam_words "$f.json" 4)/$(fam_words "$f.json" 6)" = "${WANT4[d6]}/${WANT6[d6]}" ]

# ------------------------------------------------------------------ 3. one --broker: as before
for fam in 4 6; do
    if [ "$fam" = 4 ]; then b=$B4 head="$SRV1:3478"; else b=$B6 head=$B6; fi
    f=$LAB_TMP/d6-one$fam
    np d6 "$f.json" --broker "$b" --json
    np d6 "$f.txt" --broker "$b"
    lab_check "d6, one --broker (IPv$fam): no 'families' and no 'total_ms' in the JSON" \
        lab_quiet jq -e 'has("families") or has("total_ms") | not' "$f.json"
    lab_check "d6, one --broker (IPv$fam): the text has no sections" \
        eval "[ \"\$(head -n 1 '$f.txt')\" = 'natpeer netcheck against $head' ] && ! grep -q '^IPv\|^total:' '$f.txt'"
done
lab_check "d6, one --broker IPv6: none + APDF (json)" \
    [ "$(jq -r '"\(.mapping) \(.filtering) \(.nat)"' "$LAB_TMP/d6-one6.json")" = "${WANT6[d6]#ok }" ]
lab_check "d6, one --broker IPv4: port-restricted (json)" \
    [ "$(jq -r '"\(.mapping) \(.filtering) \(.nat)"' "$LAB_TMP/d6-one4.json")" = "${LAB_EXPECT[prc]}" ]

# ------------------------------------------------------------------ 4. time: the slower, not the sum
# d6's families both end on a filtering give-up (APDF: 1.6 s + 2 RTT each).
one4=$(cat "$LAB_TMP/d6-one4.json.ms") one6=$(cat "$LAB_TMP/d6-one6.json.ms")
two=$(cat "$LAB_TMP/d6.json.ms")
max=$((one4 > one6 ? one4 : one6))
lab_log "d6 wall time: IPv4 alone $one4 ms, IPv6 alone $one6 ms, both at once $two ms"
lab_check "d6: both families at once ($two ms) take about the slower alone ($max ms), not the sum ($((one4 + one6)) ms)" \
    [ "$two" -le $((max + max / 4 + 300)) -a "$two" -lt $((one4 + one6 - 600)) ]
t4=$(jq -r .ms "$LAB_TMP/d6-one4.json") t6=$(jq -r .ms "$LAB_TMP/d6-one6.json")
tt=$(jq -r .total_ms "$LAB_TMP/d6.json")
lab_check "d6: the report's total ($tt ms) is about the slower family's alone ($t4, $t6 ms)" \
    [ "$tt" -le $(((t4 > t6 ? t4 : t6) + 700)) ]

# ------------------------------------------------------------------ 5. both families missing, bad uses
# in a network namespace of its own (only lo, down): no route for either family
f=$LAB_TMP/none
mkdir -p "$LAB_TMP/xdg-none"
timeout 20 unshare -n env XDG_CONFIG_HOME="$LAB_TMP/xdg-none" "$NP" netcheck --broker "$B4" --broker "$B6" \
    --json >"$f.json" 2>"$f.err"
rc=$?
lab_check "no route for either family: exit 1 ($rc)" [ "$rc" = 1 ]
lab_check "no route for either family: both 'unavailable' in the report" \
    lab_quiet jq -e '.families["4"].status == "unavailable" and .families["6"].status == "unavailable"' "$f.json"
lab_exec d6 "$NP" netcheck --broker "$B4" --broker 203.0.113.11 >/dev/null 2>"$LAB_TMP/bad1"
rc=$?
lab_check "two IPv4 --broker: exit 2 ($rc) and says why" \
    eval "[ $rc = 2 ] && grep -q 'must be of the other family' '$LAB_TMP/bad1'"
lab_exec d6 "$NP" netcheck --broker "$B4" --broker "$B6" --broker 203.0.113.11 >/dev/null 2>"$LAB_TMP/bad2"
rc=$?
lab_check "three --broker: exit 2 ($rc)" eval "[ $rc = 2 ] && grep -q 'at most two' '$LAB_TMP/bad2'"
lab_exec d6 "$NP" peers --broker "$B4" --broker "$B6" >/dev/null 2>"$LAB_TMP/bad3" </dev/null
rc=$?
lab_check "peers with two --broker: exit 2 ($rc)" eval "[ $rc = 2 ] && grep -q 'takes one --broker' '$LAB_TMP/bad3'"
lab_exec d6 "$NP" map udp 4000 --broker "$B4" --broker "$B6" >/dev/null 2>"$LAB_TMP/bad4" </dev/null
rc=$?
lab_check "map with two --broker: exit 2 ($rc)" eval "[ $rc = 2 ] && grep -q 'takes one --broker' '$LAB_TMP/bad4'"

lab_stop "$NB4" "$NB6"
lab_summary
