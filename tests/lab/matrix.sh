#!/usr/bin/env bash
# matrix.sh: the who-can-reach-whom demo (docs/demo.md).
#
# One command: install what is missing, build natpeer and natbroker, bring the
# dual-stack NAT lab up (NATLAB_V6=1), start natbroker on srv (RFC 5780 mode,
# on both families) and one `natpeer listen` on each of the 21 lab hosts (the
# 14 IPv4 ones and the 7 of the IPv6 internet), connect every unordered pair,
# and show the broker's prediction beside what happened: a matrix on the
# terminal, plus matrix.json and matrix.html in --out. Then tear the lab down.
# --no-v6: the IPv4 lab alone (14 hosts, 91 pairs), as before issue 17.
#
# Exit status: 0 only when every pair's measured path equals the broker's
# prediction, and so does the IP family the pair connected over where the
# broker's plan names one (and every host's NAT verdict, in each family, is
# the one the lab was built for); 1 otherwise; 77 when not root (the lab
# needs network namespaces); 2 on bad usage.
#
# Who connects to whom: for each pair a fresh `natpeer connect` process (id
# "A.B", a new random port, its own NAT check) on host A asks the broker to
# connect it to B's listener; A is the host listed first. A host whose UDP is
# blocked (blk) reaches the broker over TCP and is relayed, as connector and
# as listener. A dual-stack host (d6 s6 t6 e6 b6) is given the broker's IPv4
# address and registers its IPv6 address too ("also"; b6's IPv6 drops UDP, so
# it stays on IPv4); an IPv6-only host (o6 v6o w6) is given the broker's IPv6
# address (w6's network blocks UDP: it reaches the broker over TCP). The
# broker plans each pair in one family: IPv6 when both have it and it is
# direct there, else IPv4, else (an IPv4-only and an IPv6-only host) the
# relay, where one side allocates a relayed address of the other's family
# (the side whose UDP is blocked, else the IPv6-only side); the connect's
# event says the family it connected over. The
# prediction is the broker's own (`natpeer matrix --json`):
# direct, lan, upnp, birthday or relay (its TURN server); a direct plan that
# fails at its deadline falls back to the relay, which shows as a
# disagreement.
#
# Birthday punching (a symmetric NAT against an endpoint-independent mapping:
# the symmetric side sprays from 256 sockets, the other probes random ports of
# its IP): natbroker runs with --birthday-rate 1000, the lab's probe rate
# (its default, 100/s, is the safer one for the internet). A budget of 2048
# probes then lasts about 2 s. The progress line of such a pair gives the
# probes the probing side sent and the port that answered, from both sides'
# connected events.
#
# Parallelism: a host takes part in at most one pair at a time (as connector
# or as listener), so at most 10 pairs run at once (7 with --no-v6). conntrack is flushed once,
# before the listeners start, never between pairs (pairs on one router run in
# parallel). No stale entry can match a pair: every connector has a fresh
# random port, and a listener keeps one mapping for all its pairs, as a real
# listening peer does.
# shellcheck disable=SC2317  # trap handlers and lab_wait callbacks are called indirectly
set -uo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbm}
export NATLAB_QUIET=1

usage() {
    cat <<EOF
usage: tests/lab/matrix.sh [options]     (as root; Debian 12)

Builds the dual-stack NAT lab, connects every pair of its 22 hosts (14 IPv4,
8 on the IPv6 internet) through natbroker, and shows the broker's prediction
beside what actually happened, path and IP family.

  --out DIR       write matrix.json, matrix.html and logs/ there
                  (default: build/matrix in the source tree)
  --build DIR     take natpeer and natbroker from DIR (a CMake build dir, or
                  a dir holding both binaries) instead of building them in
                  build/release
  --keep          leave the lab up afterwards (natlab.sh down to remove it)
  --no-color      plain symbols even on a terminal (also: NO_COLOR=1)
  --timeout S     punch deadline of each connect (default: the broker's plan)
  --jobs N        pairs at once, 1..10 (default: every host in one pair, 10;
                  7 with --no-v6)
  --no-v6         the IPv4 lab only (14 hosts, 91 pairs; no NATLAB_V6)
  -h, --help      this text

Environment: NATLAB_PREFIX (default nbm) names the lab's namespaces.
Exit status: 0 when every pair agrees with the prediction, 1 otherwise,
77 when not root.
EOF
}

OUT=$TOP/build/matrix
BUILD=
KEEP=0
COLOR=auto
PUNCH=
JOBS=
V6=1
while [ $# -gt 0 ]; do
    case $1 in
        --out) OUT=${2:?--out needs a directory}; shift ;;
        --build) BUILD=${2:?--build needs a directory}; shift ;;
        --keep) KEEP=1 ;;
        --no-color) COLOR=never ;;
        --timeout) PUNCH=${2:?--timeout needs seconds}; shift
                   [[ $PUNCH =~ ^[1-9][0-9]?$ ]] || { echo "matrix.sh: --timeout: expected 1..99 seconds, got '$PUNCH'" >&2; exit 2; } ;;
        --jobs) JOBS=${2:?--jobs needs a number}; shift
                [[ $JOBS =~ ^([1-9]|10)$ ]] || { echo "matrix.sh: --jobs: expected 1..10, got '$JOBS'" >&2; exit 2; } ;;
        --no-v6) V6=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "matrix.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[ -n "${NO_COLOR:-}" ] && COLOR=never
if [ "$V6" = 1 ]; then export NATLAB_V6=1; else unset NATLAB_V6; fi
if [ "$COLOR" = auto ]; then
    if [ -t 1 ] && [ "${TERM:-dumb}" != dumb ]; then COLOR=always; else COLOR=never; fi
fi

if [ "$(id -u)" != 0 ]; then
    echo "matrix.sh: needs root: the lab is built from network namespaces and nftables."
    echo "Run it as root, e.g.: sudo tests/lab/matrix.sh"
    exit 77
fi

# ---------------------------------------------------------------- output helpers
if [ "$COLOR" = always ]; then
    C_B=$'\e[1m' C_G=$'\e[32m' C_R=$'\e[31m' C_D=$'\e[2m' C_0=$'\e[0m'
else
    C_B='' C_G='' C_R='' C_D='' C_0=''
fi
say() { printf '%s\n' "$*"; }
step() { printf '%s==>%s %s\n' "$C_B" "$C_0" "$*"; }
die() { printf '%smatrix.sh: %s%s\n' "$C_R" "$*" "$C_0"; exit 1; }
T_START=$(($(date +%s%N) / 1000000))
secs_since() { local t; t=$(($(date +%s%N) / 1000000 - $1)); printf '%d.%d' $((t / 1000)) $((t % 1000 / 100)); }

# ---------------------------------------------------------------- dependencies
# Only when something is missing: tests/setup.sh --deps installs the build and
# lab packages (apt-get; idempotent).
deps_missing() {
    local t p
    for t in ip nft iptables conntrack ss socat turnserver turnutils_natdiscovery stun \
             upnpc natpmpc miniupnpd ping timeout flock cc python3; do
        command -v "$t" >/dev/null 2>&1 || return 0
    done
    [ -n "$BUILD" ] && return 1
    command -v cmake >/dev/null 2>&1 || return 0
    command -v pkg-config >/dev/null 2>&1 || return 0
    for p in libuv1-dev libcjson-dev libcurl4-openssl-dev libexpat1-dev libssl-dev; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 0
    done
    return 1
}
if deps_missing; then
    step "installing missing packages (tests/setup.sh --deps)"
    bash "$TOP/tests/setup.sh" --deps || die "installing the dependencies failed"
fi

# ---------------------------------------------------------------- binaries
find_bin() { # DIR NAME -> path of NAME in DIR or DIR/{peer,broker}
    local d
    for d in "$1" "$1/peer" "$1/broker"; do
        [ -x "$d/$2" ] && { echo "$d/$2"; return 0; }
    done
    return 1
}
if [ -z "$BUILD" ]; then
    BUILD=$TOP/build/release
    step "building natpeer and natbroker in ${BUILD#"$TOP"/}"
    mkdir -p "$BUILD"
    if ! { cmake -S "$TOP" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
           cmake --build "$BUILD" -j"$(nproc)" --target natpeer natbroker; } >"$BUILD/matrix-build.log" 2>&1; then
        tail -n 40 "$BUILD/matrix-build.log"
        die "build failed (log: $BUILD/matrix-build.log)"
    fi
fi
NP=$(find_bin "$BUILD" natpeer) || die "no natpeer in $BUILD"
NB=$(find_bin "$BUILD" natbroker) || die "no natbroker in $BUILD"
NP=$(realpath "$NP") NB=$(realpath "$NB")

# ---------------------------------------------------------------- lab helpers
# shellcheck source=tests/lab/lib.sh
. "$TOP/tests/lab/lib.sh"
LAB_KEEP=$KEEP
SRV1=203.0.113.10
SRV2=203.0.113.11
SRV61=2001:db8::10
SRV62=2001:db8::11
HOSTS=(pub fc rc prc sym sym2 blk upnp cgn lan1 lan2 hp1 hp2 hr)
# the IPv6 internet's hosts (docs/lab.md "IPv6"): dual-stack d6 s6 t6 e6 b6,
# IPv6-only o6 v6o, and w6: IPv6-only, UDP blocked
HOSTS6=(d6 s6 t6 e6 o6 v6o b6 w6)
[ "$V6" = 1 ] && HOSTS+=("${HOSTS6[@]}")
MAXJOBS=$((${#HOSTS[@]} / 2))
[ -n "$JOBS" ] || JOBS=$MAXJOBS
[ "$JOBS" -le "$MAXJOBS" ] || { echo "matrix.sh: --jobs: at most $MAXJOBS with ${#HOSTS[@]} hosts" >&2; exit 2; }
# What each host's NAT check must find, per family: "MAPPING FILTERING NAT",
# or "-" when the host has no such family. IPv4: LAB_EXPECT (lib.sh) for the
# IPv4 lab; the IPv6 hosts' are here (docs/lab.md "IPv6"): no NAT on IPv6,
# a stateful firewall. pub is on the IPv6 internet too (2001:db8::20): open.
V6_FW="none address-and-port-dependent firewall"
declare -A EXPECT4=() EXPECT6=()
for h in "${HOSTS[@]}"; do EXPECT4[$h]=${LAB_EXPECT[$h]:-} EXPECT6[$h]=-; done
if [ "$V6" = 1 ]; then
    EXPECT4+=([d6]=${LAB_EXPECT[prc]} [e6]=${LAB_EXPECT[prc]} [b6]=${LAB_EXPECT[prc]}
              [s6]=${LAB_EXPECT[sym]} [t6]=${LAB_EXPECT[sym]} [o6]=- [v6o]=- [w6]=-)
    EXPECT6+=([d6]=$V6_FW [e6]=$V6_FW [s6]=$V6_FW [t6]=$V6_FW [v6o]=$V6_FW
              [o6]="none endpoint-independent open" [b6]="none unknown udp-blocked" [w6]="none unknown udp-blocked"
              [pub]="none endpoint-independent open")
fi
# broker_of HOST: the --broker its natpeer is given: the IPv4 address, or for
# an IPv6-only host the IPv6 one
broker_of() {
    case $1 in
        o6 | v6o | w6) echo "[$SRV61]:3478" ;;
        *) echo "$SRV1" ;;
    esac
}
RENDER=$TOP/tests/lab/matrix_render.py

mkdir -p "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
LOGS=$OUT/logs
rm -rf "$LOGS" "$OUT/matrix.json" "$OUT/matrix.html"
mkdir -p "$LOGS"
# Each host's own key and known peers (lab_xdg); the broker's key too.
export LAB_XDG_ROOT=$LOGS/xdg

FINISHED=0
declare -A RUNNING=()   # connector PID -> pair index
declare -A BUSY=()      # host -> 1 while it takes part in a pair

# Teardown on every exit (Ctrl-C, failure, success): the connectors still
# running, then the listeners and natbroker (lab_teardown stops LAB_PIDS, all
# started here), then the lab unless --keep.
on_exit() {
    local rc=$? p
    trap - EXIT INT TERM HUP
    for p in "${!RUNNING[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${!RUNNING[@]}"; do wait "$p" 2>/dev/null; done
    if [ "$LAB_TORN_DOWN" = 0 ]; then
        if [ "$KEEP" = 1 ]; then step "stopping natbroker and the peers; --keep: lab $NATLAB_PREFIX stays up"
        else step "tearing the lab down"; fi
        lab_teardown
    fi
    [ "$FINISHED" = 1 ] && say "done in $(secs_since "$T_START") s"
    exit "$rc"
}
on_signal() { printf '\n%sinterrupted%s\n' "$C_R" "$C_0"; exit 130; }

# one demo per lab prefix at a time (the lab tests use the same lock); the
# traps come after it, so that a second demo never tears down the first's lab
exec 8>"/run/natlab-$NATLAB_PREFIX.test.lock"
flock -w 60 8 || die "lab $NATLAB_PREFIX is in use (/run/natlab-$NATLAB_PREFIX.test.lock); set another NATLAB_PREFIX"
trap on_exit EXIT
trap on_signal INT TERM HUP
lab_require_tools

# start_in NODE OUT ERR CMD...: CMD in NODE, stdout and stderr apart; its PID
# (ip netns exec execs CMD) in LAB_LAST_PID and in LAB_PIDS for teardown
start_in() {
    local node=$1 o=$2 e=$3; shift 3
    ip netns exec "$(lab_ns "$node")" env XDG_CONFIG_HOME="$(lab_xdg "$node")" "$@" </dev/null >"$o" 2>"$e" &
    LAB_LAST_PID=$!
    LAB_PIDS+=("$LAB_LAST_PID")
}
np_pub() { timeout 10 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" "$NP" "$@" --broker "$SRV1" 2>/dev/null; }

# ---------------------------------------------------------------- the lab
step "bringing the lab up (prefix $NATLAB_PREFIX)"
T_LAB=$(lab_now_ms)
"$NATLAB" down >/dev/null 2>&1 || true
"$NATLAB" up >"$LOGS/natlab.log" 2>&1 || { cat "$LOGS/natlab.log"; die "natlab.sh up failed"; }
say "    up in $(secs_since "$T_LAB") s: ${#HOSTS[@]} hosts, $([ "$V6" = 1 ] && echo "20 routers (12 IPv4 NATs, 8 on the IPv6 internet)" || echo "12 NAT routers"); waiting for the UPnP routers (about 9 s)"
"$NATLAB" wait-ready 30 >>"$LOGS/natlab.log" 2>&1 || { cat "$LOGS/natlab.log"; die "the lab did not get ready"; }
"$NATLAB" stop-coturn >>"$LOGS/natlab.log" 2>&1 || die "natlab.sh stop-coturn failed"
lab_wait 5 eval '! lab_udp_bound srv 3478 && ! lab_udp_bound srv 3479' || die "coturn still holds srv's ports"
lab_flush >>"$LOGS/natlab.log" 2>&1 || die "natlab.sh flush failed"
say "    ready in $(secs_since "$T_LAB") s"

LISTEN=(--listen "$SRV1" --listen "$SRV2")
[ "$V6" = 1 ] && LISTEN+=(--listen "$SRV61" --listen "$SRV62")
step "starting natbroker on srv ($SRV1 and $SRV2$([ "$V6" = 1 ] && echo ", $SRV61 and $SRV62"), RFC 5780 mode)"
# --birthday-rate 1000: the lab's probe rate (the default, 100/s, is for the internet)
start_in srv "$LOGS/natbroker.log" "$LOGS/natbroker.log" "$NB" --public-list "${LISTEN[@]}" \
    --birthday-rate 1000
NB_PID=$LAB_LAST_PID
nb_bound() {
    local s
    s=$(ip netns exec "$(lab_ns srv)" ss -Hlun 2>/dev/null) || return 1
    grep -q "$SRV1:3478 " <<<"$s" && grep -q "$SRV2:3479 " <<<"$s" || return 1
    [ "$V6" = 0 ] || { grep -q "\[$SRV61\]:3478 " <<<"$s" && grep -q "\[$SRV62\]:3479 " <<<"$s"; }
}
lab_wait 5 nb_bound || { cat "$LOGS/natbroker.log"; die "natbroker does not listen on srv"; }

# ---------------------------------------------------------------- listeners
step "starting natpeer listen on ${#HOSTS[@]} hosts; each checks its NAT first"
declare -A LPID=() VERDICT=()
for h in "${HOSTS[@]}"; do
    start_in "$h" "$LOGS/listen-$h.out" "$LOGS/listen-$h.err" "$NP" listen --id "$h" --broker "$(broker_of "$h")" --json
    LPID[$h]=$LAB_LAST_PID
done
# alive PID: the process runs (an exited child of this shell stays a zombie,
# which kill -0 does not tell apart)
alive() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null); [ -n "$st" ] && [ "$st" != Z ]; }
# parse_nat LINE: a "NAT: ..." or "NAT (IPv6): ..." line's verdict (without
# its "NAT...: " head) -> "MAPPING FILTERING NAT|DETAIL"
parse_nat() {
    local line=$1
    case $line in
        "no answer from "*)
            echo "none unknown udp-blocked|no answer from the broker over UDP" ;;
        "none (public address "*)
            sed -E 's/^none \(public address ([^)]*)\), ([a-z-]+) filtering \(([a-z-]+)\).*/none \2 \3|no NAT, \2 filtering/' <<<"$line" ;;
        *" mapping, "*)
            sed -E 's/^([a-z-]+) mapping, ([a-z-]+) filtering \(([a-z-]+)\).*/\1 \2 \3|\1 mapping, \2 filtering/' <<<"$line" ;;
        *) echo "unknown unknown unknown|$line" ;;
    esac
}
# verdicts HOST: the host's NAT verdict in each family, from its listener's
# stderr: "V4|DETAIL4|V6|DETAIL6" (V: "MAPPING FILTERING NAT", or "-" for a
# family the host has not got); 1 until both families have one. The family
# natpeer was given the broker in says "NAT: ..."; the other one "NAT (IPvN):
# ..." or "IPvN: WHY; using IPvM only" (no route: "-"; no UDP: udp-blocked);
# a host that reaches the broker over TCP (blk) tries no second family: "-".
verdicts() {
    local f=$LOGS/listen-$1.err first other l v1 v2 o
    first=4 other=6
    [[ $(broker_of "$1") == "["* ]] && { first=6 other=4; }
    l=$(grep -m1 '^NAT: ' "$f" 2>/dev/null) || return 1
    v1=$(parse_nat "${l#NAT: }")
    if [ "$V6" = 0 ]; then
        v2="-|no IPv6 in this lab"
    elif l=$(grep -m1 "^NAT (IPv$other): " "$f" 2>/dev/null); then
        v2=$(parse_nat "${l#"NAT (IPv$other): "}")
    elif l=$(grep -m1 "^IPv$other: .*; using IPv$first only\$" "$f" 2>/dev/null); then
        o=${l#"IPv$other: "} o=${o%"; using IPv$first only"}
        case $o in
            "no route to "*) v2="-|$o" ;;
            "no answer from the broker over UDP"*) v2="none unknown udp-blocked|$o" ;;
            *) v2="unknown unknown unknown|$o" ;;
        esac
    elif grep -q '^broker: connected over TCP' "$f" 2>/dev/null; then
        v2="-|the broker over TCP: no second family"   # blk: natpeer tries no other family over TCP
    else
        return 1
    fi
    if [ "$first" = 4 ]; then echo "$v1|$v2"; else echo "$v2|$v1"; fi
}
# upnp_word HOST: what natpeer said about its router port mapping (PCP,
# NAT-PMP or UPnP) before its NAT line, if anything
upnp_word() {
    local f=$LOGS/listen-$1.err l
    l=$(sed -En 's/^(upnp|pcp|nat-pmp): ([^ ]*) verified by the broker$/\1 mapping \2 verified/p' "$f" | head -n 1)
    [ -n "$l" ] || l=$(sed -En 's/^(upnp|pcp|nat-pmp|portmap): (.*); using hole punching$/no port mapping: \2/p' "$f" | head -n 1)
    [[ $l == *"no UPnP gateway answered"* || $l == *"no NAT-PMP or PCP answer"* ]] && l=
    echo "$l"
}
VERDICT_BAD=0
: >"$LOGS/verdicts.tsv"
# verdicts.tsv, one line per host: HOST, then for IPv4 and then IPv6 each
# MAPPING FILTERING NAT OK DETAIL ("-" "-" "-" for a family it has not got;
# OK 1 when the verdict is the one the lab was built for)
end=$(($(lab_now_ms) + 20000))
while [ ${#VERDICT[@]} -lt ${#HOSTS[@]} ] && [ "$(lab_now_ms)" -lt "$end" ]; do
    for h in "${HOSTS[@]}"; do
        [ -n "${VERDICT[$h]:-}" ] && continue
        v=$(verdicts "$h") || continue
        VERDICT[$h]=$v
        IFS='|' read -r v4 dt4 v6 dt6 <<<"$v"
        mark="${C_G}ok${C_0}" ok4=1 ok6=1
        [ "$v4" = "${EXPECT4[$h]}" ] || ok4=0
        [ "$v6" = "${EXPECT6[$h]}" ] || ok6=0
        if [ $ok4 = 0 ] || [ $ok6 = 0 ]; then
            mark="${C_R}the lab was built as: IPv4 ${EXPECT4[$h]:-?}, IPv6 ${EXPECT6[$h]:-?}${C_0}"
            VERDICT_BAD=$((VERDICT_BAD + 1))
        fi
        up=$(upnp_word "$h")
        if [ "$V6" = 1 ]; then
            n4=${v4##* } n6=${v6##* }
            printf '    %-5s IPv4 %s%-20s%s IPv6 %s%-9s%s (%s; %s)%s  %s\n' "$h" "$C_B" "${n4/#-/no IPv4}" "$C_0" \
                "$C_B" "${n6/#-/no IPv6}" "$C_0" "$dt4" "$dt6" "${up:+, $up}" "$mark"
        else
            printf '    %-5s %s%-20s%s (%s)%s  %s\n' "$h" "$C_B" "${v4##* }" "$C_0" "$dt4" "${up:+, $up}" "$mark"
        fi
        read -r m4 f4 n4 <<<"$v4"
        read -r m6 f6 n6 <<<"$v6"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$h" "$m4" "${f4:--}" "${n4:--}" "$ok4" "$dt4" \
            "$m6" "${f6:--}" "${n6:--}" "$ok6" "$dt6" >>"$LOGS/verdicts.tsv"
    done
    sleep 0.1
done
for h in "${HOSTS[@]}"; do
    if [ -z "${VERDICT[$h]:-}" ]; then
        printf '    %-5s %sno NAT verdict within 20 s%s\n' "$h" "$C_R" "$C_0"
        VERDICT_BAD=$((VERDICT_BAD + 1))
        printf '%s\tunknown\tunknown\tunknown\t0\tno verdict\tunknown\tunknown\tunknown\t0\tno verdict\n' "$h" >>"$LOGS/verdicts.tsv"
    fi
done

# every listener is registered before any pair starts; one whose UDP is
# blocked registers over TCP once its NAT check has given up on UDP. A host
# with both families (an IPv4 and an IPv6 verdict) is ready for IPv6 plans
# once the broker has its second address too (its "alt").
peer_entries() { # one JSON object a line
    np_pub peers --json | grep -o '{"id":.*}' | sed 's/},{"id":/}\n{"id":/g'
}
dual_stack() {
    local x4 x6
    IFS='|' read -r x4 _ x6 _ <<<"${VERDICT[$1]:-}"
    [ -n "$x4" ] && [ "$x4" != - ] && [ -n "$x6" ] && [ "$x6" != - ] && [ "${x6##* }" != udp-blocked ]
}
registered_ok() { # HOST ENTRIES
    local e
    e=$(grep "\"id\":\"$1\"" <<<"$2") || return 1
    dual_stack "$1" || return 0
    grep -q '"alt":' <<<"$e"
}
all_registered() {
    local list h
    list=$(peer_entries) || return 1
    for h in "${HOSTS[@]}"; do
        registered_ok "$h" "$list" || return 1
    done
}
if ! lab_wait 30 all_registered; then
    list=$(peer_entries)
    for h in "${HOSTS[@]}"; do
        registered_ok "$h" "$list" && continue
        gone=
        alive "${LPID[$h]}" || gone=" (its listener is no longer running)"
        say "${C_R}    $h is not registered (in both its families)$gone; its listener's stderr:${C_0}"
        tail -n 5 "$LOGS/listen-$h.err" | sed 's/^/      /'
    done
    die "not every listener registered with the broker within 30 s (logs: $LOGS)"
fi
tcp_hosts=()
for h in "${HOSTS[@]}"; do
    grep -q '^broker: connected over TCP' "$LOGS/listen-$h.err" 2>/dev/null && tcp_hosts+=("$h")
done
say "    ${#HOSTS[@]} hosts registered with the broker${tcp_hosts[*]:+; ${tcp_hosts[*]} over TCP (UDP blocked)}"

# ---------------------------------------------------------------- pairs
# PA[k] connects to PB[k]: the host listed first (blk, 7th, is listener for
# the six before it and connector for the seven after it)
PA=() PB=()
for ((i = 0; i < ${#HOSTS[@]}; i++)); do
    for ((j = i + 1; j < ${#HOSTS[@]}; j++)); do
        PA+=("${HOSTS[i]}") PB+=("${HOSTS[j]}")
    done
done
NPAIRS=${#PA[@]}
declare -A REM=()   # host -> pairs left
for h in "${HOSTS[@]}"; do REM[$h]=0; done
for ((k = 0; k < NPAIRS; k++)); do
    REM[${PA[k]}]=$((REM[${PA[k]}] + 1)) REM[${PB[k]}]=$((REM[${PB[k]}] + 1))
done
# netcheck (<= 10 s; a blocked host then reaches the broker over TCP) + register
# + punch + the relay fallback after a failed punch, with room for a busy machine
CONNECT_TIMEOUT=$((${PUNCH:-5} + 40))
declare -A T0=()
PENDING=()
for ((k = 0; k < NPAIRS; k++)); do PENDING+=("$k"); done
DONE=0
DISAGREE_LIVE=0
declare -A NPATH=()   # measured path -> pairs
declare -A NFAM=()    # family of the connected path -> pairs
: >"$LOGS/runs.tsv"

start_pair() {
    local k=$1 a=${PA[$1]} b=${PB[$1]}
    T0[$k]=$(lab_now_ms)
    ip netns exec "$(lab_ns "$a")" env XDG_CONFIG_HOME="$(lab_xdg "$a")" timeout -k 2 "$CONNECT_TIMEOUT" \
        "$NP" connect --id "$a.$b" --broker "$(broker_of "$a")" --json ${PUNCH:+--timeout "$PUNCH"} "$b" \
        </dev/null >"$LOGS/$a.$b.out" 2>"$LOGS/$a.$b.err" &
    RUNNING[$!]=$k
    BUSY[$a]=1 BUSY[$b]=1
}
# next_pair: the pending pair whose hosts are both free and have the most
# pairs left between them (keeps the busiest hosts busy); its index in NEXT
next_pair() {
    local i k best=-1 score bscore=-1
    for i in "${!PENDING[@]}"; do
        k=${PENDING[i]}
        [ -n "${BUSY[${PA[k]}]:-}" ] || [ -n "${BUSY[${PB[k]}]:-}" ] && continue
        score=$((REM[${PA[k]}] + REM[${PB[k]}]))
        [ "$score" -gt "$bscore" ] && { best=$i bscore=$score; }
    done
    [ "$best" -ge 0 ] || return 1
    NEXT=$best
}
# bday_field NAME LINE: a number in the "birthday" object of an event line
bday_field() { sed -n "s/.*\"birthday\":{[^}]*\"$1\":\([0-9]*\).*/\1/p" <<<"$2" | head -n 1; }
# bday_words CONNECTOR-LINE LISTENER-LINE: the figures of a birthday
# connection, from both sides' connected events (the probing side has probes
# and rate, the spraying side sockets and its winning socket; both the port),
# e.g. "173 probes at 1000/s, socket 17 of 256, port 40211"
bday_words() {
    local l probes='' rate='' socks='' sock='' port='' w=''
    for l in "$1" "$2"; do
        [[ $l == *'"birthday":{'* ]] || continue
        [ -n "$probes" ] || probes=$(bday_field probes "$l")
        [ -n "$rate" ] || rate=$(bday_field rate "$l")
        [ -n "$socks" ] || socks=$(bday_field sockets "$l")
        [ -n "$sock" ] || sock=$(bday_field socket "$l")
        [ -n "$port" ] || port=$(bday_field port "$l")
    done
    [ -n "$probes" ] && w="$probes probes${rate:+ at $rate/s}"
    if [ -n "$sock" ] && [ -n "$socks" ]; then w+="${w:+, }socket $sock of $socks"
    elif [ -n "$socks" ]; then w+="${w:+, }$socks sockets"; fi
    [ -n "$port" ] && w+="${w:+, }port $port"
    printf '%s' "$w"
}
finish_pair() { # PID STATUS
    local k=${RUNNING[$1]} rc=$2 a b ms wall ev path reason pred out err line relay lline bd pf mf fw
    unset "RUNNING[$1]"
    a=${PA[k]} b=${PB[k]}
    unset "BUSY[$a]" "BUSY[$b]"
    REM[$a]=$((REM[$a] - 1)) REM[$b]=$((REM[$b] - 1))
    wall=$(($(lab_now_ms) - T0[$k]))
    DONE=$((DONE + 1))
    out=$LOGS/$a.$b.out err=$LOGS/$a.$b.err
    printf '%s\t%s\t%s\t%s\t%s\n' "$a" "$b" "$rc" "$wall" "$a.$b" >>"$LOGS/runs.tsv"
    # the broker's plan as natpeer printed it: "plan: ROLE PEER (PATH path, key K), ..."
    pred=$(sed -n 's/^plan: [a-z]* [^ ]* (\([a-z]*\) path[,)].*/\1/p' "$err" | head -n 1)
    # the plan's family: that of its first candidate ("[v6]:port" or v4:port;
    # none for a plan without candidates); the broker's plan_family decides
    # in matrix_render.py, this is for the progress line
    pf=$(sed -n 's/^plan: .*), candidates \([^ ;]*\).*/\1/p' "$err" | head -n 1)
    case $pf in "["*) pf=6 ;; none | "") pf= ;; *) pf=4 ;; esac
    # a relay's family is its relayed address's, not the candidates' (an
    # IPv4-only and an IPv6-only host): left to the broker's plan_family
    [ "$pred" = relay ] && pf=""
    mf=
    line=$(grep -m1 '"event":' "$out")
    ev=$(sed -n 's/.*"event":"\([a-z]*\)".*/\1/p' <<<"$line")
    if [ "$ev" = connected ]; then
        path=$(sed -n 's/.*"path":"\([a-z]*\)".*/\1/p' <<<"$line")
        ms=$(sed -n 's/.*"ms":\([0-9]*\).*/\1/p' <<<"$line")
        mf=$(sed -n 's/.*"family":\([46]\).*/\1/p' <<<"$line")
        what="connected $path in $ms ms"
        if [ "$path" = birthday ]; then
            # the listener's event for this pair (it may print it a moment after the connector)
            lline=$(grep -m1 -F "\"event\":\"connected\",\"peer\":\"$a.$b\"" "$LOGS/listen-$b.out" 2>/dev/null)
            bd=$(bday_words "$line" "$lline")
            [ -n "$bd" ] && what="$what ($bd)"
        fi
        if [ "$path" = relay ]; then
            relay=$(sed -n 's/.*"relay":"\([^"]*\)".*/\1/p' <<<"$line")
            what="connected relay (${relay:-?}) in $ms ms"
            reason=$(sed -n 's/^.*: no direct path (\(.*\)); trying the relay$/\1/p' "$err" | head -n 1)
            [ -n "$reason" ] && what="$what, after the $pred plan failed ($reason)"
        fi
    else
        path=none
        reason=$(sed -n 's/.*"reason":"\(.*\)"}.*/\1/p' <<<"$line")
        [ -n "$reason" ] || reason="no event (exit status $rc after $wall ms)"
        what="no connection"
        if [ -z "$pred" ] && [[ $reason == "broker: "* ]]; then
            pred=none what="no connection: $reason"
        fi
    fi
    NPATH[$path]=$((${NPATH[$path]:-0} + 1))
    [ -n "$mf" ] && NFAM[$mf]=$((${NFAM[$mf]:-0} + 1))
    [ -n "$mf" ] && [ "$V6" = 1 ] && what="$what over IPv$mf"
    fw=
    [ "$V6" = 1 ] && [ -n "$pf" ] && [ "$pred" != none ] && fw=" over IPv$pf"
    if [ "$pred" = "$path" ] && { [ -z "$pf" ] || [ -z "$mf" ] || [ "$pf" = "$mf" ]; }; then
        printf '[%*d/%d] %-4s -> %-4s: %s %s(predicted %s%s)%s\n' "${#NPAIRS}" "$DONE" "$NPAIRS" "$a" "$b" "$what" "$C_D" "${pred:-?}" "$fw" "$C_0"
    else
        DISAGREE_LIVE=$((DISAGREE_LIVE + 1))
        printf '[%*d/%d] %-4s -> %-4s: %s %s(predicted %s%s) DISAGREES%s\n' "${#NPAIRS}" "$DONE" "$NPAIRS" "$a" "$b" "$what" "$C_R" "${pred:-?}" "$fw" "$C_0"
    fi
}

step "connecting $NPAIRS pairs, up to $JOBS at once (one pair per host at a time)"
T_PAIRS=$(lab_now_ms)
while [ ${#PENDING[@]} -gt 0 ] || [ ${#RUNNING[@]} -gt 0 ]; do
    while [ ${#RUNNING[@]} -lt "$JOBS" ] && next_pair; do
        start_pair "${PENDING[NEXT]}"
        unset "PENDING[NEXT]"
    done
    [ ${#RUNNING[@]} -gt 0 ] || die "no pair can start (scheduler bug)"
    wpid=
    wait -n -p wpid "${!RUNNING[@]}"
    st=$?
    if [ -n "$wpid" ] && [ -n "${RUNNING[$wpid]:-}" ]; then
        finish_pair "$wpid" "$st"
    fi
done
T_PAIRS_S=$(secs_since "$T_PAIRS")
n_conn=$((NPAIRS - ${NPATH[none]:-0}))
split=
for p in direct lan upnp birthday relay; do split+="${split:+, }${NPATH[$p]:-0} $p"; done
[ "$V6" = 1 ] && split+="; ${NFAM[4]:-0} over IPv4, ${NFAM[6]:-0} over IPv6"
say "    $NPAIRS pairs in $T_PAIRS_S s: $n_conn connected ($split)"
kill -0 "$NB_PID" 2>/dev/null || say "${C_R}    natbroker is no longer running (log: $LOGS/natbroker.log)${C_0}"
for h in "${HOSTS[@]}"; do
    alive "${LPID[$h]}" || say "${C_R}    the listener on $h exited (log: $LOGS/listen-$h.err)${C_0}"
done

# ---------------------------------------------------------------- the broker's view
step "asking the broker for its matrix and its peers"
np_pub matrix --json >"$LOGS/broker-matrix.json" || die "natpeer matrix failed"
np_pub peers --json >"$LOGS/broker-peers.json" || die "natpeer peers failed"

say
rc=0
python3 "$RENDER" --hosts "${HOSTS[*]}" --verdicts "$LOGS/verdicts.tsv" \
    --peers "$LOGS/broker-peers.json" --matrix "$LOGS/broker-matrix.json" \
    --runs "$LOGS/runs.tsv" --logs "$LOGS" --out "$OUT" --color "$COLOR" \
    --broker "$SRV1" --pairs-seconds "$T_PAIRS_S" || rc=$?
say
say "matrix.json and matrix.html in $OUT (logs in $LOGS)"
if [ "$VERDICT_BAD" -gt 0 ]; then
    say "${C_R}$VERDICT_BAD host(s) got a NAT verdict other than the one the lab was built for${C_0}"
    rc=1
fi
[ "$rc" -eq 0 ] || [ "$rc" -eq 1 ] || { say "${C_R}matrix_render.py failed ($rc)${C_0}"; rc=1; }
FINISHED=1
exit "$rc"
