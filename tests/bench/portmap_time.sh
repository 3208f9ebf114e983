#!/usr/bin/env bash
# tests/bench/portmap_time.sh - time to a port mapping on the lab's real
# miniupnpd (r-upnp), per protocol: `natpeer map udp PORT` over PCP,
# NAT-PMP, UPnP and all three (a mapping the broker has *verified*), against
# natpmpc -a and upnpc -i -a (unverified mappings), in one run.
#
#   tests/bench/portmap_time.sh [-n ROUNDS] [-b BUILD_DIR]
#
# natpeer's time is the wall time from its start to the line
# {"event":"mapped",...,"verified":true} (its own "ms" is shown too); it is
# then sent SIGTERM and its exit (the delete) is timed. natpmpc's and
# upnpc's are the wall times of the commands; their mappings are deleted
# afterwards (natpmpc lifetime 0, upnpc -d), untimed. All wall times have
# the median cost of `ip netns exec true`, measured in the same run,
# subtracted. Each round runs every method once, in a rotated order, on
# ports no other run used; conntrack is flushed lab-wide between rounds and
# on r-upnp before each run. Then r-upnp is switched to UPnP only
# (natlab portmap upnp) and natpeer with all three protocols is timed
# against natpeer --portmap upnp (what natpeer did before PCP/NAT-PMP).
# NATLAB_DELAY=20ms (say) adds the lab's one-way delay to every router's WAN
# (the broker's probe crosses it; the gateway is on the LAN).
# Needs root; builds into build/bench unless -b is given; brings up its own
# lab (NATLAB_PREFIX, default nbt) and tears it down. Prints figures and a
# verdict line per goal (PCP/NAT-PMP: verified in <= 100 ms, median; UPnP:
# no slower than natpeer --portmap upnp and than upnpc); not a test.
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/../.." && pwd)
runs=20 build=
while getopts "n:b:h" o; do
    case $o in
        n) runs=$OPTARG ;;
        b) build=$OPTARG ;;
        *) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]?$ ]] || { echo "portmap_time: -n expects 1..99" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "portmap_time: needs root (network namespaces)" >&2; exit 1; }
if [ -z "$build" ]; then
    build=$top/build/bench
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j"$(nproc)" --target natpeer natbroker >/dev/null
fi
NP=$build/peer/natpeer NB=$build/broker/natbroker
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbt}
NATLAB=$top/tests/lab/natlab.sh
GW=192.168.6.1 HOST=192.168.6.2
tmp=$(mktemp -d /tmp/nbt-portmap.XXXXXX)
nbpid=
cleanup() {
    [ -n "$nbpid" ] && kill "$nbpid" 2>/dev/null && wait "$nbpid" 2>/dev/null
    "$NATLAB" down >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
"$NATLAB" down >/dev/null 2>&1 || true
"$NATLAB" up >/dev/null
"$NATLAB" wait-ready 20 >/dev/null
"$NATLAB" stop-coturn >/dev/null
"$NATLAB" exec srv "$NB" --public-list --listen 203.0.113.10 --listen 203.0.113.11 >"$tmp/nb.log" 2>&1 &
nbpid=$!
for _ in $(seq 50); do ip netns exec "$NATLAB_PREFIX-srv" ss -Hlun 'sport = :3479' | grep -q . && break; sleep 0.1; done

# Microseconds now (no fork), and a difference in ms to 0.1 ms.
us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
dms() { local d=$(($2 - $1)); printf '%d.%d\n' $((d / 1000)) $((d / 100 % 10)); }
median() { sort -n | awk '{ a[NR] = $1 } END { if (!NR) { print "-"; exit } printf "%.1f\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
p90() { sort -n | awk '{ a[NR] = $1 } END { if (!NR) { print "-"; exit } i = int(NR * 0.9 + 0.999); if (i < 1) i = 1; print a[i] }'; }
in_upnp() { ip netns exec "$NATLAB_PREFIX-upnp" "$@"; }
mkfifo "$tmp/fifo"

# natpeer map over protocols $2 ("" = natpeer's default, all three) on port
# $3; results of method $1 go to $tmp/$1.{wall,ms,exit,fail}.
np_map() {
    local m=$1 protos=$2 port=$3 pid wd t0 t1="" t2 t3 l v
    local -a pm=()
    [ -n "$protos" ] && pm=(--portmap "$protos")
    t0=$(us)
    ip netns exec "$NATLAB_PREFIX-upnp" "$NP" map udp "$port" --broker 203.0.113.10 --json "${pm[@]}" \
        --key "$tmp/key" --known-peers "$tmp/known" >"$tmp/fifo" 2>"$tmp/np.err" &
    pid=$!
    exec 3<"$tmp/fifo"
    while IFS= read -r -t 10 l <&3; do
        case $l in *'"event":"mapped"'*'"verified":true'*) t1=$(us); break ;; esac
    done
    ( trap 'kill "$s" 2>/dev/null; exit 0' TERM; sleep 5 & s=$!; wait "$s"; kill -KILL "$pid" 2>/dev/null ) &
    wd=$!
    t2=$(us)
    kill -TERM "$pid" 2>/dev/null || true
    cat <&3 >/dev/null   # until natpeer closes its stdout (it exits)
    wait "$pid" 2>/dev/null || true
    t3=$(us)
    exec 3<&-
    kill "$wd" 2>/dev/null || true; wait "$wd" 2>/dev/null || true
    if [ -z "$t1" ]; then
        echo "round $r: $m on port $port: no verified mapping: $(tail -n 3 "$tmp/np.err" | tr '\n' ' ')" >>"$tmp/$m.fail"
        return 0
    fi
    dms "$t0" "$t1" >>"$tmp/$m.wall"
    v=${l##*\"ms\":}; v=${v%%[!0-9]*}
    echo "${v:--}" >>"$tmp/$m.ms"
    dms "$t2" "$t3" >>"$tmp/$m.exit"
}
natpmpc_map() {
    local port=$1 t0 t1
    t0=$(us); in_upnp natpmpc -g "$GW" -a "$port" "$port" udp 7200 >"$tmp/pc.out" 2>&1 || true; t1=$(us)
    if grep -q "Mapped public port $port protocol UDP to local port $port" "$tmp/pc.out"; then
        dms "$t0" "$t1" >>"$tmp/natpmpc.wall"
    else
        echo "round $r: natpmpc on port $port failed: $(tail -n 2 "$tmp/pc.out" | tr '\n' ' ')" >>"$tmp/natpmpc.fail"
    fi
    in_upnp natpmpc -g "$GW" -a "$port" 0 udp 0 >/dev/null 2>&1 || true
}
upnpc_map() {
    local port=$1 t0 t1
    t0=$(us); in_upnp upnpc -i -a "$HOST" "$port" "$port" UDP >"$tmp/pc.out" 2>&1 || true; t1=$(us)
    if grep -q "is redirected to internal" "$tmp/pc.out"; then
        dms "$t0" "$t1" >>"$tmp/upnpc.wall"
    else
        echo "round $r: upnpc on port $port failed: $(tail -n 2 "$tmp/pc.out" | tr '\n' ' ')" >>"$tmp/upnpc.fail"
    fi
    in_upnp upnpc -i -d "$port" UDP >/dev/null 2>&1 || true
}
run() { # method port
    ip netns exec "$NATLAB_PREFIX-r-upnp" sh -c 'conntrack -F >/dev/null 2>&1; exit 0'
    case $1 in
        pcp) np_map pcp pcp "$2" ;;
        pmp) np_map pmp nat-pmp "$2" ;;
        upnp) np_map upnp upnp "$2" ;;
        all) np_map all "" "$2" ;;
        natpmpc) natpmpc_map "$2" ;;
        upnpc) upnpc_map "$2" ;;
        B-all) np_map B-all "" "$2" ;;
        B-upnp) np_map B-upnp upnp "$2" ;;
    esac
    local t0 t1
    t0=$(us); in_upnp true; t1=$(us); dms "$t0" "$t1" >>"$tmp/ex"
}
# Rounds of METHOD...: every method once per round, the order rotated by
# one each round; ports 20000 + 16 * round + the method's index (+8 in the
# UPnP-only phase): never reused, never 80.
rounds() { # port-offset method...
    local off=$1 j k n; shift
    local -a meths=("$@")
    n=${#meths[@]}
    for r in $(seq "$runs"); do
        "$NATLAB" flush
        for j in $(seq 0 $((n - 1))); do
            k=$(((j + r) % n))
            run "${meths[k]}" $((20000 + 16 * r + off + k))
        done
    done
}

: >"$tmp/ex"
for m in pcp pmp upnp all natpmpc upnpc B-all B-upnp; do : >"$tmp/$m.wall"; : >"$tmp/$m.ms"; : >"$tmp/$m.exit"; : >"$tmp/$m.fail"; done
rounds 0 pcp pmp upnp all natpmpc upnpc
"$NATLAB" portmap upnp >/dev/null
rounds 8 B-all B-upnp

e=$(median <"$tmp/ex")
net() { awk -v e="$e" '{ printf "%.1f\n", $1 - e }' "$tmp/$1.wall"; }
med() { net "$1" | median; }
row() { # method label
    local ok=$(($(wc -l <"$tmp/$1.wall"))) nf=$(($(wc -l <"$tmp/$1.fail")))
    printf '%-44s %9s %7s %8s %8s %6s\n' "$2" "$(med "$1")" "$(net "$1" | p90)" \
        "$(median <"$tmp/$1.ms")" "$(median <"$tmp/$1.exit")" "$ok/$((ok + nf))"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b <= 0) print "-"; else printf "%.2fx", a / b }'; }
printf '%-44s %9s %7s %8s %8s %6s\n' "router speaks UPnP, NAT-PMP, PCP" "median ms" "p90 ms" "own ms" "exit ms" ok
row pcp "natpeer map --portmap pcp: verified"
row pmp "natpeer map --portmap nat-pmp: verified"
row upnp "natpeer map --portmap upnp: verified"
row all "natpeer map (all three): verified"
row natpmpc "natpmpc -a: unverified"
row upnpc "upnpc -i -a: unverified"
echo "router speaks UPnP only (natlab portmap upnp)"
row B-all "natpeer map (all three): verified"
row B-upnp "natpeer map --portmap upnp: verified"
a=$(med pcp) b=$(med pmp) c=$(med upnp) d=$(med natpmpc) f=$(med upnpc) g=$(med B-all) h=$(med B-upnp)
printf 'ratios (medians): natpeer-pcp/natpmpc %s, natpeer-nat-pmp/natpmpc %s, natpeer-upnp/upnpc %s,\n' \
    "$(ratio "$a" "$d")" "$(ratio "$b" "$d")" "$(ratio "$c" "$f")"
printf '  UPnP-only router: natpeer-all/natpeer-upnp %s\n' "$(ratio "$g" "$h")"
verdict() { if [ "$1" = 1 ]; then echo PASS; else echo FAIL; fi; }
ok=$(awk -v a="$a" -v b="$b" 'BEGIN { print (a != "-" && b != "-" && a <= 100 && b <= 100) ? 1 : 0 }')
echo "verdict PCP/NAT-PMP, verified mapping in <= 100 ms (median): $(verdict "$ok") (pcp $a ms, nat-pmp $b ms)"
# "no slower": within 10% (noise) of natpeer --portmap upnp, and not above upnpc
ok=$(awk -v c="$c" -v f="$f" -v g="$g" -v h="$h" 'BEGIN { print (c != "-" && f != "-" && g != "-" && h != "-" && c <= f && g <= 1.10 * h) ? 1 : 0 }')
echo "verdict UPnP, no slower than today (median): $(verdict "$ok") (UPnP-only router: all three $g ms vs --portmap upnp $h ms; natpeer-upnp $c ms vs upnpc $f ms)"
# shellcheck disable=SC2016
echo "# $runs rounds per method on r-upnp (miniupnpd $(in_upnp dpkg-query -W -f='${Version}' miniupnpd 2>/dev/null || echo '?'));" \
     "ip netns exec costs $e ms (subtracted from every wall time); NATLAB_DELAY=${NATLAB_DELAY:-none}"
echo "# own ms: natpeer's \"ms\" field; exit ms: SIGTERM to exit (natpeer deletes the mapping)"
if cat "$tmp"/*.fail | grep -q .; then
    echo "# failures:"; cat "$tmp"/*.fail | sed 's/^/#   /'
fi
