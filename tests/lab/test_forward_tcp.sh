#!/usr/bin/env bash
# test_forward_tcp.sh NATPEER NATBROKER: TCP port forwarding through the
# peer path (docs/forwarding.md "TCP") with a real openssh server and client.
#
# natbroker runs on srv (coturn stopped). Two pairs:
#  - direct: `natpeer listen` on prc (port-restricted NAT) exposes a real
#    sshd (tcp:127.0.0.1:2222, a throwaway host key and authorized key in
#    LAB_TMP), an echo-until-EOF server (tcp:127.0.0.1:7777), a server that
#    accepts and never reads (tcp:127.0.0.1:7778, both tests/lab/tcp_tool.py)
#    and a port where nothing listens (tcp:127.0.0.1:2223); `natpeer connect`
#    on fc forwards tcp:12222=2222, 17777=7777, 17778=7778, 12223=2223.
#    Checks: `ssh -p 12222 root@127.0.0.1 'echo ok; uname -n'`; a 10 MB random
#    file copied up and down through ssh with matching sha256; a client that
#    sends 200 kB, shuts down its write side and still gets the whole echo
#    and then EOF; 50 MB pushed at the never-reading server for 8 s: the
#    writer blocks (not all accepted) and the listener's VmRSS grows by less
#    than 32 MB; the port where nothing listens closes the local connection
#    within 5 s (said once) and ssh still works after it (the never-reading
#    server is stopped first: its stream is reset); 64 + 4 connections
#    at once to the echo: 64 work, 4 are reset, said once, and the 64 still
#    work afterwards.
#  - relayed: connector on sym, listener on sym2 (two symmetric NATs: the
#    broker plans the relay), sshd on sym2 as the only exposed TCP service,
#    --forward tcp:12222 (RPORT 0): ssh runs a command and copies a 10 MB
#    file each way (RBIG=2 for a smaller one).
# Needs root (exit 77 otherwise), sshd and ssh (openssh-server,
# openssh-client; tests/setup.sh installs them).
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbft}
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_forward_tcp.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_forward_tcp.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
SRV2=203.0.113.11
PY=/usr/bin/python3
TOOL=$LAB_DIR/tcp_tool.py
SSHD=/usr/sbin/sshd
REG_WAIT=30 CONN_WAIT=40
BIG=${BIG:-10}   # MB, direct pair
RBIG=${RBIG:-10} # MB, relayed pair
MAXS=64          # NB_XPORT_MAX_ASSOCS

lab_init 240
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
for t in "$SSHD" ssh ssh-keygen sha256sum "$PY"; do
    command -v "$t" >/dev/null 2>&1 || {
        lab_fail "missing $t (apt-get install openssh-server openssh-client python3)"; lab_summary; exit 1; }
done
lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'
NBLOG=$LAB_TMP/natbroker.log
# The broker's default per-source rate limit stays on: relayed data must go
# as ChannelData (outside the limit), also to a peer-reflexive address (the
# symmetric NAT's new port towards the relay), or the 10 MB copies stall.
lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen "$SRV2"
lab_check "natbroker is up" lab_wait 5 eval 'lab_udp_bound srv 3478 && lab_udp_bound srv 3479'

# ssh: a throwaway host key and client key, a config that needs no PAM
mkdir -p /run/sshd   # sshd's privilege separation directory
ssh-keygen -q -t ed25519 -N '' -f "$LAB_TMP/hostkey" </dev/null
ssh-keygen -q -t ed25519 -N '' -f "$LAB_TMP/id" </dev/null
cp "$LAB_TMP/id.pub" "$LAB_TMP/authorized_keys"
cat >"$LAB_TMP/sshd_config" <<EOF
ListenAddress 127.0.0.1
HostKey $LAB_TMP/hostkey
AuthorizedKeysFile $LAB_TMP/authorized_keys
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
EOF
SSH=(ssh -F /dev/null -i "$LAB_TMP/id" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
     -o BatchMode=yes -o LogLevel=ERROR -o ConnectTimeout=10)
sshd_in() { # NODE: sshd on 127.0.0.1:2222 in NODE
    lab_start "$1" "$LAB_TMP/sshd-$1.log" "$SSHD" -D -e -f "$LAB_TMP/sshd_config" -p 2222
    lab_wait_tcp "$1" 2222 5
}
ssh_in() { # NODE PORT CMD...
    local n=$1 p=$2; shift 2
    lab_exec "$n" timeout 60 "${SSH[@]}" -p "$p" root@127.0.0.1 "$@"
}
registered() {
    timeout 10 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" \
        "$NP" peers --broker "$SRV1" --json 2>/dev/null | grep -q "\"id\":\"$1\""
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
sum() { sha256sum <"$1" | cut -d' ' -f1; }
# copy_both NODE PORT MB TAG: a random file up and another down through ssh;
# checks their sha256 and says how long each took.
copy_both() {
    local n=$1 p=$2 mb=$3 tag=$4 t0 t1 ms
    head -c "$((mb * 1000000))" /dev/urandom >"$LAB_TMP/up-$tag.src"
    head -c "$((mb * 1000000))" /dev/urandom >"$LAB_TMP/down-$tag.src"
    t0=$(lab_now_ms)
    ssh_in "$n" "$p" "cat > $LAB_TMP/up-$tag.dst" <"$LAB_TMP/up-$tag.src"
    t1=$(lab_now_ms); ms=$((t1 - t0))
    lab_check "$tag: $mb MB up through ssh in $ms ms, sha256 matches" \
        test "$(sum "$LAB_TMP/up-$tag.src")" = "$(sum "$LAB_TMP/up-$tag.dst" 2>/dev/null || echo none)"
    t0=$(lab_now_ms)
    ssh_in "$n" "$p" "cat $LAB_TMP/down-$tag.src" >"$LAB_TMP/down-$tag.dst"
    t1=$(lab_now_ms); ms=$((t1 - t0))
    lab_check "$tag: $mb MB down through ssh in $ms ms, sha256 matches" \
        test "$(sum "$LAB_TMP/down-$tag.src")" = "$(sum "$LAB_TMP/down-$tag.dst")"
    rm -f "$LAB_TMP"/up-"$tag".* "$LAB_TMP"/down-"$tag".*
}
connected_path() { # OUTFILE -> the path of the first "connected" event
    sed -n 's/.*"event":"connected".*"path":"\([a-z]*\)".*/\1/p' "$1" | head -n 1
}

# ---------------------------------------------------------------- direct pair
lab_flush
lab_check "prc: sshd up on 127.0.0.1:2222" sshd_in prc
lab_check "prc: ssh works there without natpeer" eval '[ "$(ssh_in prc 2222 echo ok)" = ok ]'
lab_start prc "$LAB_TMP/echo.log" "$PY" "$TOOL" echo 127.0.0.1 7777
lab_check "prc: echo-until-EOF server up on 127.0.0.1:7777" lab_wait_tcp prc 7777 5
lab_start prc "$LAB_TMP/sink.log" "$PY" "$TOOL" sink 127.0.0.1 7778
sinkpid=$LAB_LAST_PID
lab_check "prc: never-reading server up on 127.0.0.1:7778" lab_wait_tcp prc 7778 5

L=ftcp-l C=ftcp-c
lab_fifo "in-$L"; lfd=$LAB_FIFO_FD
# Under ASan freed memory waits in a quarantine (256 MB by default) that
# grows RSS with the bytes moved; a small one keeps the RSS check about
# our buffers. A build without ASan ignores it.
QASAN="ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"
lab_spawn prc "$LAB_TMP/in-$L" "$LAB_TMP/out-$L" "$LAB_TMP/err-$L" \
    env "$QASAN" "$NP" listen --id "$L" --broker "$SRV1" --json --expose tcp:127.0.0.1:2222 \
    --expose tcp:localhost:7777 --expose tcp:127.0.0.1:7778 --expose tcp:127.0.0.1:2223
lpid=$LAB_LAST_PID
lab_check "listener says what it exposes" \
    lab_wait 5 grep -sqF "expose: tcp 127.0.0.1:2222 (listen)" "$LAB_TMP/err-$L"
if ! lab_wait "$REG_WAIT" registered "$L"; then
    lab_fail "prc: listener $L did not register" "$(cat "$LAB_TMP/err-$L")"
fi
lab_fifo "in-$C"; cfd=$LAB_FIFO_FD
out=$LAB_TMP/out-$C err=$LAB_TMP/err-$C
lab_spawn fc "$LAB_TMP/in-$C" "$out" "$err" \
    "$NP" connect --id "$C" --broker "$SRV1" --json --forward tcp:12222=2222 \
    --forward tcp:17777=7777 --forward tcp:127.0.0.1:17778=7778 --forward tcp:12223=2223 "$L"
cpid=$LAB_LAST_PID
lab_check "fc: the forward port is bound before the connection" lab_wait_tcp fc 12222 10
if ! grep -q '"event":"connected"' "$out"; then
    # Before the peer is there a local connection is reset at once.
    if lab_exec fc "$PY" "$TOOL" closed 127.0.0.1 12222 3 >/dev/null 2>&1 &&
        ! grep -q '"event":"connected"' "$out"; then
        lab_check "before the peer is connected a local connection is reset and said" \
            lab_wait 2 grep -qF "not connected to the peer yet" "$err"
    fi
fi
if lab_wait "$CONN_WAIT" grep -q '"event":"connected"' "$out"; then
    path=$(connected_path "$out")
    lab_check "fc -> prc connected, path $path (want direct)" test "$path" = direct
else
    lab_fail "fc -> prc: no connection" "$(cat "$out" "$err")"
fi
lab_check "connector says where each forward goes" \
    lab_wait 5 grep -qF "forward: tcp 127.0.0.1:12222 -> $L tcp/2222" "$err"

got=$(ssh_in fc 12222 'echo ok; uname -n' 2>&1 | tr '\n' ' ')
lab_check "fc: ssh -p 12222 through natpeer runs a command: $got" eval '[ "${got%% *}" = ok ]'
copy_both fc 12222 "$BIG" direct

r=$(lab_exec fc "$PY" "$TOOL" halfclose 127.0.0.1 17777 200000 10 2>&1)
lab_check "half-close: 200 kB sent then SHUT_WR, the whole echo and EOF come back ($r)" \
    eval '[ "$r" = "got 200000 bytes, then EOF" ]'

rss0=$(rss_kb "$lpid")
r=$(lab_exec fc "$PY" "$TOOL" push 127.0.0.1 17778 50000000 8 2>&1)
rss1=$(rss_kb "$lpid")
acc=${r#accepted }
lab_check "never-reading service: the writer blocks ($acc of 50000000 bytes accepted in 8 s)" \
    eval '[ "$acc" -gt 0 ] 2>/dev/null && [ "$acc" -lt 50000000 ]'
lab_check "... the listener's VmRSS grows $((rss1 - rss0)) kB ($rss0 -> $rss1 kB; under 32 MB)" \
    test "$((rss1 - rss0))" -lt 32768
# The pusher closed (its FIN waits behind the unread bytes); the service
# going away resets the stream, which frees its slot.
lab_stop "$sinkpid"

r=$(lab_exec fc "$PY" "$TOOL" closed 127.0.0.1 12223 5 2>&1)
lab_check "a port where nothing listens: the local connection is closed within 5 s ($r)" \
    eval 'case "$r" in closed*) true ;; *) false ;; esac'
lab_check "... and the listener says why" lab_wait 5 grep -qF "tcp 127.0.0.1:2223: connect:" "$LAB_TMP/err-$L"
lab_exec fc "$PY" "$TOOL" closed 127.0.0.1 12223 5 >/dev/null 2>&1
lab_check "... once" test "$(grep -c "tcp 127.0.0.1:2223: connect:" "$LAB_TMP/err-$L")" -eq 1
lab_check "... and keeps serving: ssh again" eval '[ "$(ssh_in fc 12222 echo ok)" = ok ]'

r=$(lab_exec fc "$PY" "$TOOL" many 127.0.0.1 17777 $((MAXS + 4)) 15 2>&1 | tr '\n' ' ')
lab_check "$((MAXS + 4)) connections at once: $MAXS work, 4 are refused ($r)" \
    eval '[ "$r" = "ok $MAXS failed 4 again $MAXS " ]'
lab_check "... said once" test "$(grep -c "TCP connections to $L are open" "$err")" -eq 1
lab_check "... and afterwards a new connection works (the slots are free again)" \
    eval '[ "$(lab_exec fc "$PY" "$TOOL" halfclose 127.0.0.1 17777 1000 10)" = "got 1000 bytes, then EOF" ]'

lab_check_term "connect" "$cpid"
lab_check "the forward port is closed after exit" eval '! lab_tcp_bound fc 12222'
lab_check_term "the listener" "$lpid"
lab_stop "$cpid" "$lpid"
exec {cfd}>&- {lfd}>&- 2>/dev/null

# ---------------------------------------------------------------- relayed pair
lab_flush
lab_check "sym2: sshd up on 127.0.0.1:2222" sshd_in sym2
L=ftcp-rl C=ftcp-rc
lab_fifo "in-$L"; lfd=$LAB_FIFO_FD
lab_spawn sym2 "$LAB_TMP/in-$L" "$LAB_TMP/out-$L" "$LAB_TMP/err-$L" \
    "$NP" listen --id "$L" --broker "$SRV1" --json --expose tcp:127.0.0.1:2222
lpid=$LAB_LAST_PID
if ! lab_wait "$REG_WAIT" registered "$L"; then
    lab_fail "sym2: listener $L did not register" "$(cat "$LAB_TMP/err-$L")"
fi
lab_fifo "in-$C"; cfd=$LAB_FIFO_FD
out=$LAB_TMP/out-$C err=$LAB_TMP/err-$C
lab_spawn sym "$LAB_TMP/in-$C" "$out" "$err" \
    "$NP" connect --id "$C" --broker "$SRV1" --json --forward tcp:12222 "$L"
cpid=$LAB_LAST_PID
if lab_wait "$CONN_WAIT" grep -q '"event":"connected"' "$out"; then
    path=$(connected_path "$out")
    lab_check "sym -> sym2 connected, path $path (want relay)" test "$path" = relay
else
    lab_fail "sym -> sym2: no connection" "$(cat "$out" "$err")"
fi
lab_check "connector says where the forward goes (the only exposed TCP service)" \
    lab_wait 5 grep -qF "forward: tcp 127.0.0.1:12222 -> $L tcp (its only exposed TCP service)" "$err"
got=$(ssh_in sym 12222 'echo ok; uname -n' 2>&1 | tr '\n' ' ')
lab_check "sym: ssh through the relay runs a command: $got" eval '[ "${got%% *}" = ok ]'
copy_both sym 12222 "$RBIG" relayed
kill -TERM "$cpid" 2>/dev/null
lab_wait 5 _lab_all_gone "$cpid" || true
lab_stop "$cpid" "$lpid"
exec {cfd}>&- {lfd}>&- 2>/dev/null

[ "$LAB_FAIL" -eq 0 ] || {
    for f in "$LAB_TMP"/err-* "$LAB_TMP"/sshd-*.log; do echo "# $f:"; tail -n 15 "$f" | sed 's/^/#   /'; done
    echo "# natbroker log:"; tail -n 20 "$NBLOG" | sed 's/^/#   /'
}
lab_summary
