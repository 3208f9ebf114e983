#!/usr/bin/env bash
# tests/bench/amplification.sh - the amplification factor (response bytes /
# request bytes) of every unauthenticated request natbroker answers, and of
# the same STUN requests to coturn, measured in the NAT lab; and where every
# response went.
#
#   tests/bench/amplification.sh [-b BUILD_DIR]      (root)
#
# Brings up its own lab (NATLAB_PREFIX, default nba), and on `srv`
# (203.0.113.10/.11) runs in turn: coturn in the lab's RFC 5780 setup
# (natlab.sh start-coturn), coturn on one address, natbroker on one address
# (--listen 203.0.113.10) and natbroker in RFC 5780 mode (two --listen).
# From `pub` (203.0.113.20, no NAT) tests/bench/amplification.py sends each
# request type from fresh sockets and collects what comes back; a sniffer in
# `srv` records every packet the server sends, so the table counts all
# response datagrams and shows where they went. natbroker only: control
# messages are refused unless sealed, so plain ones (a register as natpeer
# would send it, list queries padded to 1200 B, malformed ones) get at most
# a 401/400 no longer than themselves; then the sealed channel's
# unauthenticated surfaces (docs/protocol.md "Sizes: no amplification"): the
# key request 0xD5 (short and long), real Noise initiations 0xD1 made with
# python3-dissononce to the key the 0xD5 answer gave (one 57-byte response
# each), a retransmitted one, initiations that do not verify (random, cut,
# for another key), 0xD3 frames with an unknown index (the 5-byte hint),
# with a bad tag, one real sealed register (authenticated, for the record)
# and its replay, and the broker's own answer types sent back to it; and
# some of these with a forged source (203.0.113.111, r-isp) to show what
# the broker sends to a third party. natbroker runs with its defaults, rate
# limiter included: pub sends it fewer UDP requests than the limiter's
# burst (500), and the script stops if natbroker logs pub as over the
# limit; one last case sends 600 Binding requests at once from a second
# address of pub (203.0.113.21, used for nothing else) to show the limiter
# cutting a burst. Needs Debian's python3-dissononce (run with
# /usr/bin/python3). Without -b it builds natbroker into build/bench. Not a
# test: it prints the tables and exits 0, or 1 if natbroker sent something
# to an address a case does not allow, or if something broke. It tears its
# lab down (LAB_KEEP=1 keeps it).
set -u
export LC_ALL=C
export NATLAB_PREFIX=${NATLAB_PREFIX:-nba}
top=$(cd "$(dirname "$0")/../.." && pwd)
HELPER=$top/tests/bench/amplification.py
PY=/usr/bin/python3 # Debian's: the natbroker cases need python3-dissononce
build=
while getopts "b:h" o; do
    case $o in
        b) build=$OPTARG ;;
        *) sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "amplification: needs root (network namespaces)" >&2; exit 1; }
if [ -z "$build" ]; then
    build=$top/build/bench
    echo "# building natbroker in $build (RelWithDebInfo)"
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNB_SANITIZE=OFF >/dev/null &&
        cmake --build "$build" -j2 --target natbroker >/dev/null || exit 1
fi
$PY -c 'import dissononce' 2>/dev/null ||
    { echo "amplification: needs Debian's python3-dissononce (apt-get install python3-dissononce)" >&2; exit 1; }
NB=$build/broker/natbroker
[ -x "$NB" ] || { echo "amplification: missing $NB" >&2; exit 1; }

. "$top/tests/lab/lib.sh"
SRV1=203.0.113.10
SRV2=203.0.113.11
PUB=203.0.113.20
THIRD=203.0.113.111 # r-isp's WAN address: a bystander on the internet
BURST=203.0.113.21  # a second address of pub, for the rate limiter's case only
lab_init 900
CASES=$LAB_TMP/cases.jsonl
EGRESS=$LAB_TMP/egress.jsonl

die() { echo "amplification: $*" >&2; exit 1; }
# shellcheck disable=SC2317 # called through lab_wait
answers() { lab_exec pub "$PY" "$HELPER" ping "$SRV1"; }
# shellcheck disable=SC2317
port_free() { ! lab_udp_bound srv 3478 && ! lab_udp_bound srv 3479; }
run() { # NAME ARGS...: the client's cases against what listens on srv now
    local name=$1; shift
    echo "# $name"
    lab_exec pub "$PY" "$HELPER" run --server "$name" --ip1 "$SRV1" --client-ip "$PUB" \
        --third-ip "$THIRD" --cases "$CASES" "$@" || die "the client failed against $name"
}

lab_up >/dev/null || die "lab up failed"
lab_exec pub ip addr add "$BURST/24" dev eth0 || die "cannot add $BURST to pub"
# niced: it stamps packets with the kernel's time, so lagging costs nothing,
# while taking a core from natbroker would (the rate limiter's case)
lab_start srv "$LAB_TMP/sniff.log" nice -n 10 "$PY" "$HELPER" sniff eth0 "$EGRESS"
SNIFF_PID=$LAB_LAST_PID
lab_wait 10 test -e "$EGRESS.ready" || die "the sniffer in srv did not start: $(cat "$LAB_TMP/sniff.log")"

# 1. coturn as the lab runs it: two addresses, RFC 5780 (natlab.sh start-coturn)
"$NATLAB" start-coturn
lab_wait 10 answers || die "coturn (RFC 5780) does not answer"
run "coturn 5780" --stun --tcp
"$NATLAB" stop-coturn
lab_wait 10 port_free || die "coturn did not free its ports"

# 2. coturn on one address (no RFC 5780: it needs two), as a TURN server with
# REST credentials, as natbroker's relay runs: its 401s are the ones to match
lab_start srv "$LAB_TMP/coturn1.log" turnserver -n --no-cli --no-tls --no-dtls \
    --use-auth-secret --static-auth-secret "amp-$$" --realm natbroker \
    --listening-ip "$SRV1" --listening-port 3478 --log-file stdout --simple-log \
    --pidfile "$LAB_TMP/turnserver1.pid" --userdb "$LAB_TMP/turndb1"
pid=$LAB_LAST_PID
lab_wait 10 answers || die "coturn (one address) does not answer: $(tail -5 "$LAB_TMP/coturn1.log")"
run "coturn single" --stun --tcp
lab_stop "$pid"
lab_wait 10 port_free || die "coturn did not free its ports"

# 3. natbroker on one address, 4. natbroker in RFC 5780 mode
for mode in single 5780; do
    args=(--listen "$SRV1")
    [ "$mode" = 5780 ] && args+=(--listen "$SRV2")
    lab_start srv "$LAB_TMP/natbroker-$mode.log" "$NB" "${args[@]}" --log-level warn
    pid=$LAB_LAST_PID
    lab_wait 10 answers || die "natbroker ($mode) does not answer: $(cat "$LAB_TMP/natbroker-$mode.log")"
    run "natbroker $mode" --stun --tcp --control --spoof-ip "$THIRD" --burst-ip "$BURST"
    lab_stop "$pid"
    lab_wait 10 port_free || die "natbroker did not free its ports"
    # The limiter must have cut only the burst's source, never pub's cases.
    grep -F 'rate limit:' "$LAB_TMP/natbroker-$mode.log" | sed "s/^/# natbroker $mode: /"
    ! grep -qF "rate limit: $PUB over" "$LAB_TMP/natbroker-$mode.log" ||
        die "natbroker ($mode) rate-limited $PUB: the table is distorted"
done

sleep 0.3
lab_stop "$SNIFF_PID"
echo "# natbroker $("$NB" --version | cut -d' ' -f2), $(turnserver --version 2>/dev/null | head -1 | sed 's/^/coturn /'); client $PUB, third party $THIRD"
"$PY" "$HELPER" report --strict natbroker "$CASES" "$EGRESS" "$PUB,$BURST"
rc=$?
LAB_SUMMARY_DONE=1
exit $rc
