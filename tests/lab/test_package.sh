#!/usr/bin/env bash
# test_package.sh SOURCE_DIR: the .deb, installed on this machine, runs as its
# systemd unit says, and a lab peer registers with it.
#
#  1. build natbroker, natpeer and the man pages in a fresh release tree
#     (prefix /usr) and `cpack` the .deb; check its control data and files;
#  2. `apt-get install ./natbroker_*.deb`; check the installed programs'
#     --version, `man -l` on both pages, `systemd-analyze verify` and the
#     exposure score of the installed unit, and --check-config on the shipped
#     /etc/natbroker/natbroker.conf;
#  3. take the ExecStart line from the installed unit, unchanged, and run it
#     in the lab's srv namespace. Two things are added around it, nothing is
#     substituted in it: a private mount namespace in which a lab config
#     (listen 203.0.113.10 and .11, status port) is bind-mounted over
#     /etc/natbroker/natbroker.conf, and setpriv to run it as nobody with no
#     new privileges, as the unit's DynamicUser= and NoNewPrivileges= would
#     (systemd is not PID 1 here). A `natpeer listen` behind a lab NAT must
#     register: `natpeer peers` from pub lists it, and the status port
#     counts it. SIGHUP reloads, SIGTERM stops with status 0;
#  4. `dpkg --purge natbroker`: the machine is left as found.
# Teardown (trap) stops what it started by PID, takes the lab down and
# purges the package even on failure. Skips (77) when not root, or when a
# natbroker package or /etc/natbroker/natbroker.conf is already there.
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbp}
. "$(dirname "$0")/lib.sh"

SRC=${1:?usage: test_package.sh SOURCE_DIR}
SRV1=203.0.113.10
SRV2=203.0.113.11
STATUS_PORT=3480
UNIT=/usr/lib/systemd/system/natbroker.service
CONF=/etc/natbroker/natbroker.conf
PKG_INSTALLED=0

lab_require_root
if dpkg-query -W -f='${Status}' natbroker 2>/dev/null | grep -qv 'not-installed'; then
    echo "SKIP: a natbroker package is already on this machine ($(dpkg-query -W -f='${Status}' natbroker)); not touching it"
    exit 77
fi
if [ -e "$CONF" ]; then
    echo "SKIP: $CONF exists (an earlier cmake --install?); not touching it"
    exit 77
fi

lab_init 900
for t in cmake cpack scdoc dpkg-deb apt-get man systemd-analyze setpriv unshare; do
    command -v "$t" >/dev/null || { lab_fail "missing tool: $t (bash tests/setup.sh --deps)"; lab_summary; exit 1; }
done

pkg_purge() {
    [ "$PKG_INSTALLED" = 1 ] || return 0
    PKG_INSTALLED=0
    DEBIAN_FRONTEND=noninteractive dpkg --purge natbroker >"$LAB_TMP/purge.log" 2>&1
}
_pkg_on_exit() {
    local rc=$?
    trap - EXIT
    if [ ${#LAB_PIDS[@]} -gt 0 ]; then lab_stop "${LAB_PIDS[@]}"; fi
    pkg_purge || echo "# dpkg --purge natbroker failed" >&2
    lab_teardown
    exit "$rc"
}
trap _pkg_on_exit EXIT

# ---- 1. build and package
B=$LAB_TMP/build
t0=$(lab_now_ms)
# cpack would build every target first (tests included); only the packaged ones are needed.
if ! cmake -S "$SRC" -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
        -DNB_BENCH=OFF -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON >"$LAB_TMP/configure.log" 2>&1; then
    lab_fail "configure" "$(tail -n 30 "$LAB_TMP/configure.log")"; lab_summary; exit 1
fi
if ! cmake --build "$B" -j"$(nproc)" --target natbroker natpeer natpeer_static man >"$LAB_TMP/build.log" 2>&1; then
    lab_fail "build natbroker natpeer natpeer_static man" "$(tail -n 30 "$LAB_TMP/build.log")"; lab_summary; exit 1
fi
if ! (cd "$B" && cpack -G DEB) >"$LAB_TMP/cpack.log" 2>&1; then
    lab_fail "cpack -G DEB" "$(tail -n 30 "$LAB_TMP/cpack.log")"; lab_summary; exit 1
fi
lab_log "build and cpack took $(($(lab_now_ms) - t0)) ms"
debs=("$B"/natbroker_*.deb)
lab_check "cpack made one natbroker_*.deb" test ${#debs[@]} -eq 1 -a -f "${debs[0]}"
DEB=${debs[0]}
lab_log "$(basename "$DEB"): $(stat -c %s "$DEB") bytes"
dpkg-deb -I "$DEB" >"$LAB_TMP/control" 2>&1
dpkg-deb -c "$DEB" >"$LAB_TMP/contents" 2>&1
lab_check "control: Package: natbroker" grep -qx ' Package: natbroker' "$LAB_TMP/control"
lab_check "control: Depends computed by dpkg-shlibdeps (libuv1, libc6)" \
    grep -qE '^ Depends: .*libc6.*' "$LAB_TMP/control"
lab_check "control: Depends names libuv1" grep -qE '^ Depends: .*libuv1' "$LAB_TMP/control"
lab_check "control: Maintainer set" grep -qE '^ Maintainer: .+' "$LAB_TMP/control"
lab_check "control: the config file is a conffile" grep -q 'conffiles' "$LAB_TMP/control"
for f in ./usr/bin/natbroker ./usr/bin/natpeer ./usr/share/man/man8/natbroker.8 \
         ./usr/share/man/man1/natpeer.1 ./etc/natbroker/natbroker.conf \
         ./usr/share/doc/natbroker/examples/natbroker.conf ./usr/lib/systemd/system/natbroker.service \
         ./usr/share/doc/natbroker/operations.md ./usr/include/natpeer.h \
         "./usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/libnatpeer.so.0" \
         "./usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/libnatpeer.a" \
         "./usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/pkgconfig/natpeer.pc"; do
    lab_check "package holds $f" grep -qE " $f(\\.gz)?( -> .*)?\$" "$LAB_TMP/contents"
done
[ "$LAB_FAIL" -eq 0 ] || { echo "# control:"; sed 's/^/#   /' "$LAB_TMP/control"; echo "# contents:"; sed 's/^/#   /' "$LAB_TMP/contents"; }

# ---- 2. install and check what was installed
PKG_INSTALLED=1
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$DEB" \
        >"$LAB_TMP/install.log" 2>&1; then
    lab_fail "apt-get install $(basename "$DEB")" "$(tail -n 30 "$LAB_TMP/install.log")"
    lab_summary; exit 1
fi
lab_pass "apt-get install $(basename "$DEB")"
lab_check "dpkg: natbroker installed" eval \
    "dpkg-query -W -f='\${Status}' natbroker | grep -qx 'install ok installed'"
v=$(/usr/bin/natbroker --version 2>&1)
lab_check "/usr/bin/natbroker --version: $v" eval '[[ $v =~ ^natbroker\ [0-9]+\.[0-9]+\.[0-9]+$ ]]'
v=$(/usr/bin/natpeer --version 2>&1)
lab_check "/usr/bin/natpeer --version: $v" eval '[[ $v =~ ^natpeer\ [0-9]+\.[0-9]+\.[0-9]+$ ]]'
for page in /usr/share/man/man8/natbroker.8.gz /usr/share/man/man1/natpeer.1.gz; do
    n=$(MANWIDTH=80 man -l "$page" 2>"$LAB_TMP/man.err" | wc -c)
    rc=${PIPESTATUS[0]}
    lab_check "man -l $page renders ($n bytes)" eval "[ $rc -eq 0 ] && [ $n -gt 1000 ]"
    [ ! -s "$LAB_TMP/man.err" ] || sed 's/^/#   man: /' "$LAB_TMP/man.err"
done
lab_check "man natbroker finds the installed page" eval 'man -w natbroker | grep -q /usr/share/man/man8/natbroker.8'
out=$(systemd-analyze verify "$UNIT" 2>&1); rc=$?
lab_check "systemd-analyze verify $UNIT (exit $rc, nothing about natbroker)" \
    eval "[ $rc -eq 0 ] && ! grep -q natbroker <<<\"\$out\""
[ -z "$out" ] || echo "$out" | sed 's/^/#   verify: /'
score=$(systemd-analyze security --offline=yes "$UNIT" 2>&1 | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
lab_check "systemd-analyze security: exposure $score <= 1.5" \
    lab_quiet systemd-analyze security --offline=yes --threshold=15 "$UNIT"
lab_check "the shipped $CONF is valid" lab_quiet /usr/bin/natbroker --config "$CONF" --check-config

# ---- 3. the unit's ExecStart, in the lab
execstart=$(sed -n 's/^ExecStart=//p' "$UNIT")
lab_log "ExecStart=$execstart"
lab_check "the unit has one ExecStart line" test "$(grep -c '^ExecStart=' "$UNIT")" -eq 1
# Word-split like systemd would; it holds no quotes, specifiers or variables.
case $execstart in *[\"\'%\$\\]*) lab_fail "ExecStart has quotes, specifiers or variables: this test cannot run it as is" ;; esac
read -r -a cmd <<<"$execstart"
lab_check "ExecStart runs /usr/bin/natbroker --config $CONF" \
    test "${cmd[0]}" = /usr/bin/natbroker -a "${cmd[*]}" = "/usr/bin/natbroker --config $CONF"

lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_check "coturn stopped: its ports are free" lab_wait 5 eval '! lab_udp_bound srv 3478'

# The broker's key, in a directory of its own that nobody may write (the
# unit's StateDirectory= does this under systemd).
chmod 0711 "$LAB_TMP" # nobody passes through to state/, reads nothing else
install -d -m 0700 -o nobody -g nogroup "$LAB_TMP/state"
cat >"$LAB_TMP/lab.conf" <<EOF
# test_package.sh: the lab's broker, in place of $CONF
listen = $SRV1
listen = $SRV2
status-port = $STATUS_PORT
log-level = info
key = $LAB_TMP/state/key
public-list
EOF
chmod 0644 "$LAB_TMP/lab.conf"
NBLOG=$LAB_TMP/natbroker.log
# unshare and setpriv exec, so the PID recorded is natbroker's.
lab_start srv "$NBLOG" unshare --mount --propagation private -- sh -c \
    'mount --bind "$1" "$2" && shift 2 && exec setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs -- "$@"' \
    sh "$LAB_TMP/lab.conf" "$CONF" "${cmd[@]}"
NB_PID=$LAB_LAST_PID
lab_check "natbroker binds 2 IPs x 2 ports" lab_wait 5 eval \
    'lab_udp_bound srv 3478 && lab_udp_bound srv 3479 && lab_tcp_bound srv 3478 && lab_tcp_bound srv 3479'
lab_check "natbroker binds the status port on 127.0.0.1" lab_wait 5 lab_udp_bound srv "$STATUS_PORT"
lab_check "natbroker read $CONF (the lab config)" grep -qF "settings from $CONF" "$NBLOG"
lab_check "natbroker created its key, mode 0600, owned by nobody" lab_wait 5 eval \
    "[ \"\$(stat -c '%a %U' '$LAB_TMP/state/key' 2>/dev/null)\" = '600 nobody' ]"
lab_check "natbroker logs its public key" grep -qE "created key .*; public key [A-Za-z0-9_-]{43}" "$NBLOG"
lab_check "natbroker runs as nobody (uid 65534)" eval \
    "awk '/^Uid:/ { exit !(\$2 == 65534 && \$3 == 65534) }' /proc/$NB_PID/status"
lab_check "natbroker has no capabilities" eval \
    "awk '/^CapEff:/ { exit !(\$2 == \"0000000000000000\") }' /proc/$NB_PID/status"
lab_check "natbroker runs with no_new_privs" eval "grep -qE '^NoNewPrivs:[[:space:]]+1' /proc/$NB_PID/status"
lab_check "$CONF outside the test's mount namespace is untouched" \
    cmp -s "$CONF" /usr/share/doc/natbroker/examples/natbroker.conf

# A peer behind a NAT (prc: port-restricted cone) registers.
PEER_ID=pkg-test
lab_start prc "$LAB_TMP/listen.log" /usr/bin/natpeer listen --id "$PEER_ID" --broker "$SRV1" --json
LPID=$LAB_LAST_PID
listed() {
    timeout 5 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" /usr/bin/natpeer peers --broker "$SRV1" --json \
        >"$LAB_TMP/peers.out" 2>"$LAB_TMP/peers.err" &&
        grep -qF "\"id\":\"$PEER_ID\"" "$LAB_TMP/peers.out"
}
status() {
    printf status | timeout 3 ip netns exec "$(lab_ns srv)" env XDG_CONFIG_HOME="$(lab_xdg srv)" socat -T 1 - "UDP4:127.0.0.1:$STATUS_PORT" 2>/dev/null
}
if lab_wait 20 listed; then
    lab_pass "natpeer listen on prc registered: natpeer peers from pub lists '$PEER_ID'"
else
    lab_fail "natpeer listen on prc did not register" \
        "$(cat "$LAB_TMP/listen.log" "$LAB_TMP/peers.out" "$LAB_TMP/peers.err" 2>/dev/null | tail -n 20)"
fi
st=$(status)
lab_log "status: $st"
lab_check "status port: one peer registered" grep -q '"peers":1,' <<<"$st"
lab_check "status port: version $(/usr/bin/natbroker --version | cut -d' ' -f2)" \
    grep -qF "\"version\":\"$(/usr/bin/natbroker --version | cut -d' ' -f2)\"" <<<"$st"
lab_check "status port: registers counted" grep -qE '"registers":[1-9]' <<<"$st"
lab_check "status port: answers_per_s present" grep -qE '"answers_per_s":[0-9]+\.[0-9]{3},' <<<"$st"
lab_check "status port: refusals by reason present" grep -qE '"refusals":\{"bad_request":[0-9]+,' <<<"$st"
lab_stop "$LPID"

# ExecReload sends SIGHUP: the file is re-read, the broker keeps running.
kill -HUP "$NB_PID"
lab_check "SIGHUP: $CONF reloaded" lab_wait_log "$NBLOG" "SIGHUP: $CONF reloaded"
lab_check "SIGHUP: still running" test -d "/proc/$NB_PID"

kill -TERM "$NB_PID" 2>/dev/null
if lab_wait 5 _lab_all_gone "$NB_PID"; then
    rc=0
    wait "$NB_PID" || rc=$?
    lab_check "natbroker exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0
else
    lab_fail "natbroker still running 5 s after SIGTERM"
fi
lab_check "natbroker logs its shutdown" grep -q "stopped" "$NBLOG"
[ "$LAB_FAIL" -eq 0 ] || { echo "# natbroker log:"; sed 's/^/#   /' "$NBLOG"; }

# ---- 4. remove: the machine as found
pkg_purge
lab_check "dpkg --purge natbroker" eval "! dpkg-query -W -f='\${Status}' natbroker 2>/dev/null | grep -q 'ok installed\|config-files'"
lab_check "purged: no /usr/bin/natbroker, /usr/bin/natpeer, $UNIT, /etc/natbroker" \
    eval "[ ! -e /usr/bin/natbroker ] && [ ! -e /usr/bin/natpeer ] && [ ! -e $UNIT ] && [ ! -e /etc/natbroker ]"

lab_summary
