# shellcheck shell=bash
# lib.sh: helpers shared by the NAT lab tests. Source it, then call lab_init.
#
#   . "$(dirname "$0")/lib.sh"
#   lab_init 170                 # root check (exit 77), traps, 170 s guard
#   lab_up                       # natlab.sh down + up + wait-ready
#   lab_check "name" cmd ...     # counted case
#   lab_summary; exit $?         # prints "N passed, N failed"
#
# Every wait has a deadline; teardown (trap on EXIT) kills only the PIDs this
# test started and runs `natlab.sh down` (set LAB_KEEP=1 to keep the lab up).

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NATLAB="$LAB_DIR/natlab.sh"
export NATLAB_PREFIX=${NATLAB_PREFIX:-nl}
# shellcheck disable=SC2034  # for tests: the lab's run dir (logs, PID files)
LAB_RUN=/run/natlab-$NATLAB_PREFIX
LAB_PASS=0
LAB_FAIL=0
LAB_PIDS=()
LAB_LAST_PID=
LAB_TMP=
LAB_WATCHDOG=
LAB_TORN_DOWN=0
LAB_SUMMARY_DONE=0

# What each host's NAT was built to be (docs/lab.md), in the project's words:
# "MAPPING FILTERING NAT". The one table every lab test checks against.
declare -A LAB_EXPECT=(
    [pub]="none endpoint-independent open"
    [fc]="endpoint-independent endpoint-independent full-cone"
    [rc]="endpoint-independent address-dependent restricted-cone"
    [prc]="endpoint-independent address-and-port-dependent port-restricted-cone"
    [sym]="address-and-port-dependent address-and-port-dependent symmetric"
    [sym2]="address-and-port-dependent address-and-port-dependent symmetric"
    [blk]="none unknown udp-blocked"
    [upnp]="endpoint-independent address-and-port-dependent port-restricted-cone"
    [lan1]="endpoint-independent address-and-port-dependent port-restricted-cone"
    [lan2]="endpoint-independent address-and-port-dependent port-restricted-cone"
    [hp1]="endpoint-independent endpoint-independent full-cone"
    [hp2]="endpoint-independent endpoint-independent full-cone"
    [cgn]="endpoint-independent address-and-port-dependent port-restricted-cone"
    [hr]="endpoint-independent address-dependent restricted-cone"
)

# lab_expect_nd HOST: the verdict turnutils_natdiscovery -m -f prints for HOST,
# as "X Mapping; Y Filtering" ("no verdict" without UDP). It cannot tell no
# NAT from endpoint-independent mapping, and r-hr's filter (keyed on the
# remote IP alone) fools it: its mapping tests open the filter for the
# alternate IP before its filtering test.
lab_expect_nd() {
    local m f n
    read -r m f n <<<"${LAB_EXPECT[$1]}"
    [ "$1" = hr ] && f=endpoint-independent
    [ "$n" = udp-blocked ] && { echo "no verdict"; return; }
    words() { case $1 in
        none | endpoint-independent) echo "Endpoint Independent" ;;
        address-dependent) echo "Address Dependent" ;;
        *) echo "Address and Port Dependent" ;; esac; }
    echo "$(words "$m") Mapping; $(words "$f") Filtering"
}

lab_log() { echo "# $*"; }

# ---------------------------------------------------------------- root / skip
lab_require_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "SKIP: $(basename "$0") needs root (network namespaces, nftables); run it as root"
        exit 77
    fi
}

lab_require_tools() {
    local t missing=()
    for t in ip nft iptables conntrack ss socat turnserver turnutils_natdiscovery stun \
             upnpc natpmpc miniupnpd ping timeout flock cc; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "FAIL: missing tools: ${missing[*]} (install them with: $NATLAB deps)"
        exit 1
    fi
}

# ---------------------------------------------------------------- counting
lab_pass() { LAB_PASS=$((LAB_PASS + 1)); echo "ok   - $1"; }
lab_fail() {
    LAB_FAIL=$((LAB_FAIL + 1)); echo "FAIL - $1"
    [ $# -lt 2 ] || printf '%s\n' "$2" | sed 's/^/       | /'
}
# lab_check NAME CMD...: pass if CMD succeeds
lab_check() {
    local name=$1; shift
    if "$@"; then lab_pass "$name"; else lab_fail "$name"; fi
}
# lab_quiet CMD...: CMD with its output discarded (for lab_check)
lab_quiet() { "$@" >/dev/null 2>&1; }
lab_summary() {
    LAB_SUMMARY_DONE=1
    echo "$LAB_PASS passed, $LAB_FAIL failed"
    [ "$LAB_FAIL" -eq 0 ] && [ "$LAB_PASS" -gt 0 ]
}

# ---------------------------------------------------------------- time / waits
lab_now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

# lab_wait SECS CMD...: poll CMD every 50 ms until it succeeds; 1 on deadline
lab_wait() { local secs=$1; shift; lab_wait_ms $((secs * 1000)) "$@"; }
# lab_wait_ms MS CMD...: the same with a deadline in milliseconds
lab_wait_ms() {
    local ms=$1; shift
    local end=$(($(lab_now_ms) + ms))
    while :; do
        "$@" && return 0
        [ "$(lab_now_ms)" -lt "$end" ] || return 1
        sleep 0.05
    done
}
lab_udp_bound() { ip netns exec "$(lab_ns "$1")" env XDG_CONFIG_HOME="$(lab_xdg "$1")" ss -Hlun "sport = :$2" 2>/dev/null | grep -q .; }
lab_tcp_bound() { ip netns exec "$(lab_ns "$1")" env XDG_CONFIG_HOME="$(lab_xdg "$1")" ss -Hltn "sport = :$2" 2>/dev/null | grep -q .; }
# lab_wait_udp NODE PORT [SECS]: a UDP socket is bound to PORT in NODE
lab_wait_udp() { lab_wait "${3:-5}" lab_udp_bound "$1" "$2"; }
# lab_wait_tcp NODE PORT [SECS]: a TCP socket listens on PORT in NODE
lab_wait_tcp() { lab_wait "${3:-5}" lab_tcp_bound "$1" "$2"; }
# lab_wait_log FILE REGEX [SECS]: an (extended) regex appears in FILE
lab_wait_log() { lab_wait "${3:-5}" grep -qE -- "$2" "$1"; }

# ---------------------------------------------------------------- nodes
lab_ns() { echo "$NATLAB_PREFIX-$1"; }
# lab_xdg NODE: NODE's own config directory. The namespaces share one file
# system, so every command run in a node gets XDG_CONFIG_HOME=$(lab_xdg
# NODE): natpeer's key and known peers, and natbroker's key, are per host
# (docs/security.md: a peer is its key).
lab_xdg() {
    local d=${LAB_XDG_ROOT:-${LAB_TMP:-${TMPDIR:-/tmp}/natlab-xdg-$$}/xdg}/$1
    mkdir -p -m 0700 "$d" && echo "$d"
}
lab_exec() { local n=$1; shift; ip netns exec "$(lab_ns "$n")" env XDG_CONFIG_HOME="$(lab_xdg "$n")" "$@"; }
lab_addr() { "$NATLAB" addr "$1"; }
# lab_data FILE: the payloads of natpeer --json data events in FILE, decoded
# (base64), one per line. lab_data_has FILE STRING: one of them contains STRING.
lab_data() {
    sed -n 's/.*"event":"data".*"data":"\([A-Za-z0-9+\/=]*\)".*/\1/p' "$1" 2>/dev/null |
        while read -r b; do printf '%s' "$b" | base64 -d 2>/dev/null; echo; done
}
lab_data_has() { lab_data "$1" | grep -qF -- "$2"; }
# lab_data_both_ways A B ID CFD LFD OUT LOUT: a line written to connector
# ID's stdin (fd CFD; it runs on A with --json, stdout in OUT) reaches the
# listener on B (--json stdout in LOUT), and a line written to the
# listener's stdin (fd LFD) comes back to the connector.
lab_data_both_ways() {
    local a=$1 b=$2 id=$3 cfd=$4 lfd=$5 out=$6 lout=$7
    echo "hello-from-$id" >&"$cfd"
    lab_check "$a -> $b: data reaches the listener" \
        lab_wait 5 grep -qF "\"data\":\"$(printf '%s' "hello-from-$id" | base64 -w0)\"" "$lout"
    echo "reply-to-$id" >&"$lfd"
    lab_check "$b -> $a: data reaches the connector" \
        lab_wait 5 grep -qF "\"data\":\"$(printf '%s' "reply-to-$id" | base64 -w0)\"" "$out"
}
lab_public() { "$NATLAB" public "$1"; }
lab_flush() { "$NATLAB" flush; }

# lab_start NODE LOGFILE CMD...: start CMD in NODE in the background, record
# its real PID (ip netns exec execs CMD) in LAB_LAST_PID and for teardown.
lab_start() {
    local node=$1 logf=$2; shift 2
    ip netns exec "$(lab_ns "$node")" env XDG_CONFIG_HOME="$(lab_xdg "$node")" "$@" </dev/null >>"$logf" 2>&1 &
    LAB_LAST_PID=$!
    LAB_PIDS+=("$LAB_LAST_PID")
}
# lab_stop PID...: stop processes this test started (others are ignored)
lab_stop() {
    local p q mine=()
    for p in "$@"; do
        for q in "${LAB_PIDS[@]}"; do [ "$p" = "$q" ] && mine+=("$p"); done
    done
    [ ${#mine[@]} -gt 0 ] || return 0
    kill -TERM "${mine[@]}" 2>/dev/null || true
    lab_wait 3 _lab_all_gone "${mine[@]}" || kill -KILL "${mine[@]}" 2>/dev/null || true
    for p in "${mine[@]}"; do wait "$p" 2>/dev/null || true; done
    local keep=()
    for q in "${LAB_PIDS[@]}"; do
        case " ${mine[*]} " in *" $q "*) ;; *) keep+=("$q") ;; esac
    done
    LAB_PIDS=("${keep[@]}")
}
_lab_all_gone() { local p; for p in "$@"; do [ -d "/proc/$p" ] && return 1; done; return 0; }
# lab_check_term WHAT PID [SECS]: SIGTERM to PID (one this test started);
# it must be gone within SECS (default 5) with exit status 0.
lab_check_term() {
    local what=$1 pid=$2 secs=${3:-5} rc=0
    kill -TERM "$pid" 2>/dev/null
    if lab_wait "$secs" _lab_all_gone "$pid"; then
        wait "$pid" || rc=$?
        lab_check "$what exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0
    else
        lab_fail "$what still running $secs s after SIGTERM"
    fi
}

# lab_spawn NODE IN OUT ERR CMD...: CMD in NODE with stdin from IN (a FIFO
# from lab_fifo), stdout to OUT, stderr to ERR; its PID in LAB_LAST_PID and
# for teardown. The FIFOs this shell holds open are closed in the child, so
# closing one here is EOF there.
declare -a LAB_HELD=()
lab_spawn() {
    local node=$1 in=$2 out=$3 err=$4; shift 4
    (
        for f in "${LAB_HELD[@]}"; do eval "exec $f>&-"; done
        exec ip netns exec "$(lab_ns "$node")" env XDG_CONFIG_HOME="$(lab_xdg "$node")" "$@" <"$in" >"$out" 2>"$err"
    ) &
    LAB_LAST_PID=$!
    LAB_PIDS+=("$LAB_LAST_PID")
}
# lab_fifo NAME: a FIFO in LAB_TMP held open read-write by this shell; its fd
# in LAB_FIFO_FD (write a line to it: the spawned command reads it).
lab_fifo() {
    mkfifo "$LAB_TMP/$1"
    exec {LAB_FIFO_FD}<>"$LAB_TMP/$1"
    LAB_HELD+=("$LAB_FIFO_FD")
}

# ---------------------------------------------------------------- UDP probes
# lab_udp_listen NODE PORT FILE: record each datagram to PORT in NODE as a
# line "from IP:PORT PAYLOAD" in FILE; returns once the port is bound.
lab_udp_listen() {
    local node=$1 port=$2 file=$3
    : >"$file"
    lab_start "$node" "$LAB_TMP/socat.log" socat -u "UDP4-RECVFROM:$port,reuseaddr,fork" \
        "EXEC:$LAB_TMP/udprec $file"
    lab_wait_udp "$node" "$port" 5
}
# lab_udp_send NODE DST PORT MSG [SPORT]: one datagram
lab_udp_send() {
    local node=$1 dst=$2 port=$3 msg=$4 sp=${5:-}
    printf '%s' "$msg" | timeout 3 ip netns exec "$(lab_ns "$node")" env XDG_CONFIG_HOME="$(lab_xdg "$node")" \
        socat -u - "UDP4-SENDTO:$dst:$port${sp:+,sourceport=$sp}" 2>/dev/null
}
# lab_tcp_listen NODE PORT FILE: the same for TCP connections (one line per
# connection with everything it sent)
lab_tcp_listen() {
    local node=$1 port=$2 file=$3
    : >"$file"
    lab_start "$node" "$LAB_TMP/socat.log" socat -u "TCP4-LISTEN:$port,reuseaddr,fork" \
        "EXEC:$LAB_TMP/udprec $file"
    lab_wait_tcp "$node" "$port" 5
}
# lab_tcp_send NODE DST PORT MSG: one connection carrying MSG (5 s bound)
lab_tcp_send() {
    printf '%s' "$4" | timeout 5 ip netns exec "$(lab_ns "$1")" env XDG_CONFIG_HOME="$(lab_xdg "$1")" \
        socat -u - "TCP4:$2:$3,connect-timeout=3" 2>/dev/null
}
lab_udp_got() { grep -qF -- " $2" "$1" 2>/dev/null; }   # FILE MSG
# lab_udp_reaches NODE DST PORT MSG FILE [SECS] [SPORT]: send every 100 ms
# until FILE shows MSG; 1 on deadline
lab_udp_reaches() {
    local node=$1 dst=$2 port=$3 msg=$4 file=$5 secs=${6:-3} sp=${7:-}
    local end=$(($(lab_now_ms) + secs * 1000))
    while :; do
        lab_udp_send "$node" "$dst" "$port" "$msg" "$sp"
        lab_wait_ms 100 lab_udp_got "$file" "$msg" && return 0
        [ "$(lab_now_ms)" -lt "$end" ] || return 1
    done
}
# lab_udp_blocked NODE DST PORT MSG FILE [WINDOW_MS] [SPORT]: send 5 datagrams
# over the window (plus twice any NATLAB_DELAY); 0 if none arrived
lab_udp_blocked() {
    local node=$1 dst=$2 port=$3 msg=$4 file=$5 win=${6:-500} sp=${7:-} end
    win=$((win + 4 * $(lab_delay_ms)))
    end=$(($(lab_now_ms) + win))
    for _ in 1 2 3 4 5; do
        lab_udp_send "$node" "$dst" "$port" "$msg" "$sp"
        sleep 0.05
    done
    while [ "$(lab_now_ms)" -lt "$end" ]; do
        lab_udp_got "$file" "$msg" && return 1
        sleep 0.05
    done
    ! lab_udp_got "$file" "$msg"
}
# NATLAB_DELAY in whole milliseconds (0 if unset)
lab_delay_ms() {
    awk -v v="${NATLAB_DELAY:-0}" 'BEGIN { n = v + 0;
        if (v ~ /us$/) n = n / 1000; else if (v ~ /[0-9]s$/) n = n * 1000;
        printf "%d\n", n }'
}

# ---------------------------------------------------------------- lab
lab_up() {
    "$NATLAB" down >/dev/null 2>&1 || true   # leftovers of an earlier run
    local t0; t0=$(lab_now_ms)
    "$NATLAB" up || return 1
    lab_log "natlab up took $(($(lab_now_ms) - t0)) ms"
    t0=$(lab_now_ms)
    "$NATLAB" wait-ready 30 || return 1
    lab_log "wait-ready took $(($(lab_now_ms) - t0)) ms"
}

# ---------------------------------------------------------------- teardown
lab_teardown() {
    [ "$LAB_TORN_DOWN" = 1 ] && return 0
    LAB_TORN_DOWN=1
    if [ ${#LAB_PIDS[@]} -gt 0 ]; then lab_stop "${LAB_PIDS[@]}"; fi
    if [ "${LAB_KEEP:-0}" = 1 ]; then
        lab_log "LAB_KEEP=1: leaving lab $NATLAB_PREFIX up"
    else
        "$NATLAB" down >/dev/null 2>&1 || echo "# natlab down failed" >&2
    fi
    [ -n "$LAB_TMP" ] && rm -rf "$LAB_TMP"
    if [ -n "$LAB_WATCHDOG" ]; then
        kill -TERM "$LAB_WATCHDOG" 2>/dev/null || true
        wait "$LAB_WATCHDOG" 2>/dev/null || true
    fi
}
_lab_on_exit() {
    local rc=$?
    trap - EXIT
    lab_teardown
    exit "$rc"
}
_lab_on_timeout() {
    trap - USR1
    lab_fail "global timeout (${LAB_TIMEOUT}s) reached"
    [ "$LAB_SUMMARY_DONE" = 1 ] || lab_summary
    exit 1
}
_lab_on_signal() {
    trap - INT TERM HUP
    lab_fail "interrupted by a signal"
    [ "$LAB_SUMMARY_DONE" = 1 ] || lab_summary
    exit 130
}

# lab_init [TIMEOUT_SECS]: root check (exit 77), tools, scratch dir, traps and
# a global timeout guard that fails the test and tears down when it expires.
lab_init() {
    LAB_TIMEOUT=${1:-170}
    lab_require_root
    lab_require_tools
    # one test at a time per lab prefix (tests that run in parallel must use
    # different NATLAB_PREFIXes); the lock goes when this shell exits
    exec 8>"/run/natlab-$NATLAB_PREFIX.test.lock"
    if ! flock -w 60 8; then
        echo "FAIL: lab $NATLAB_PREFIX is in use by another test for 60 s (/run/natlab-$NATLAB_PREFIX.test.lock); use another NATLAB_PREFIX"
        exit 1
    fi
    LAB_TMP=$(mktemp -d "/tmp/natlab-test.XXXXXX")
    cat >"$LAB_TMP/udprec" <<'EOF'
#!/bin/sh
# one datagram on stdin (socat EXEC, fork per datagram) -> one line in $1
printf 'from %s:%s %s\n' "$SOCAT_PEERADDR" "$SOCAT_PEERPORT" "$(cat)" >>"$1"
EOF
    chmod +x "$LAB_TMP/udprec"
    trap _lab_on_exit EXIT
    trap _lab_on_signal INT TERM HUP
    trap _lab_on_timeout USR1
    local main=$$
    (
        trap 'kill "$sp" 2>/dev/null; exit 0' TERM
        sleep "$LAB_TIMEOUT" & sp=$!
        wait "$sp" || exit 0
        kill -USR1 "$main" 2>/dev/null || exit 0
        # bash runs the USR1 trap only once its foreground command returns:
        # end the test shell's other children (all started by this test)
        local c
        for c in $(pgrep -P "$main"); do
            [ "$c" = "$BASHPID" ] || kill -TERM "$c" 2>/dev/null
        done
    ) &
    LAB_WATCHDOG=$!
}
