#!/usr/bin/env bash
# test_relay.sh NATPEER NATBROKER: the pairs that need a relay connect through
# it, the others do not, and the relay sees no plaintext (issue 14).
#
# Part 1: natbroker on srv (RFC 5780 mode, its own TURN on 203.0.113.10:3478,
# a random secret drawn at start). For each pair, after a conntrack flush, a
# fresh `natpeer listen` on B and, once it is registered, `natpeer connect` on A:
#  - relay pairs (sym->prc, prc->sym, sym->sym2, blk->fc, fc->blk, blk->sym):
#    both connected events say "path":"relay" and name the same
#    "relay":"203.0.113.10:PORT" (PORT in the relay range), the broker logged
#    that allocation from one of the two peers' public addresses, and data
#    goes both ways (text lines and {"data":BASE64} binary lines);
#  - direct pairs (fc->sym, rc->sym, prc->rc, prc->fc): "path":"direct" on
#    both sides, no "relay" field, data both ways, and the broker logged no
#    allocation from either peer's public address during the pair;
#  - the broker's matrix (natpeer matrix --json from pub) shows measured ==
#    predicted (relay or direct) for every pair.
# Meanwhile tcpdump on srv records every UDP and TCP packet: a 40-character
# random marker that the relay pairs send several times each way (and that
# reaches the other side) never appears in it, raw or base64, while a control
# marker sent in clear from pub to srv's UDP port 9 does (the method can see
# plaintext), and the capture holds packets of every relayed port.
# Part 2: coturn on srv as the TURN server (REST secret, 203.0.113.11:3480,
# relays on 203.0.113.11:49152-49999), natbroker restarted on both addresses
# (3478/3479, RFC 5780 as in part 1) issuing credentials for it (--relay
# turn:203.0.113.11:3480 --turn-secret S): the peers are classified as in
# part 1, sym->prc and blk->fc connect with "path":"relay" and
# "relay":"203.0.113.11:PORT", data both ways, natbroker allocates nothing,
# and coturn's log (-v) shows each allocation ("Local relay addr: IP:PORT",
# "ALLOCATE processed, success").
# NBR_COTURN_ONE=1: natbroker on 203.0.113.10 alone and coturn on
# 203.0.113.11:3478 instead. Without a second address natbroker classifies
# every UDP host "unknown" (even fc), so the classification checks fail
# there; the relay pairs still connect ("unknown vs unknown" plans a relay).
# NBR_SAVE=DIR copies the logs, outputs and the capture to DIR at the end.
# Needs root (exit 77 otherwise). About 80-110 s.
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbrl}
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_relay.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_relay.sh PATH/TO/natpeer PATH/TO/natbroker}
SRV1=203.0.113.10
PUB_IP=203.0.113.20
SRV2=203.0.113.11

# DIALER LISTENER
RELAY_PAIRS=("sym prc" "prc sym" "sym sym2" "blk fc" "fc blk" "blk sym")
DIRECT_PAIRS=("fc sym" "rc sym" "prc rc" "prc fc")
COTURN_PAIRS=("sym prc" "blk fc")

lab_init 300
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
for t in tcpdump turnserver; do
    command -v "$t" >/dev/null || { lab_fail "$t missing"; lab_summary; exit 1; }
done
T0=$(lab_now_ms)

b64() { printf '%s' "$1" | base64 -w0; }
rnd() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
MARKER=relaymarker-$(rnd 14)      # 40 characters, never sent in clear
CONTROL=clearmarker-$(rnd 14)     # 40 characters, sent in clear on purpose

# the broker's views, asked from pub with natpeer (the broker runs with --public-list)
all_pages() { # peers|matrix -> every entry, one object per line
    timeout 10 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" \
        "$NP" "$1" --broker "$SRV1" --json 2>/dev/null | grep -o '{"\(id\|a\)":[^}]*}'
}
registered() { all_pages peers | grep -q "\"id\":\"$1\""; }
# field NAME LINE: the value of a string or number field of a JSON line
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" <<<"$2" | head -n 1; }
has_field() { grep -q "\"$1\":" <<<"$2"; }
# new_lines FILE FROM: FILE's lines after line FROM
new_lines() { tail -n +"$(($2 + 1))" "$1" 2>/dev/null; }
# bound_at udp|tcp IP PORT: a socket of srv is bound (listens) on IP:PORT
bound_at() { lab_exec srv ss -Hln"${1:0:1}" "src $2:$3" 2>/dev/null | grep -q .; }
# data_count FILE STR N: at least N data events of FILE carry STR
data_count() { [ "$(lab_data "$1" | grep -cF -- "$2")" -ge "$3" ]; }
nlines() { wc -l <"$1" 2>/dev/null || echo 0; }
# relayed_packets: datagrams natbroker's relay carried so far, both ways (its status port)
relayed_packets() {
    lab_exec srv timeout 5 bash -c "exec 3<>/dev/udp/127.0.0.1/$STATUS_PORT; printf status >&3; timeout 1 cat <&3" |
        sed -n 's/.*"packets_to_peer":\([0-9]*\),"bytes_from_peer":[0-9]*,"packets_from_peer":\([0-9]*\).*/\1 \2/p' |
        awk '{ print $1 + $2 }'
}
STATUS_PORT=9999
# allocs_from LOGLINES IP: natbroker's "relay: allocation for IP:PORT (udp|tcp) on port N" lines
allocs_from() { grep -E "relay: allocation for ${2//./\\.}:[0-9]+ \((udp|tcp)\) on port" <<<"$1"; }

# run_pair TAG A B WANT RELAY_IP LO HI: one pair; WANT relay|direct. A relay
# pair must name RELAY_IP:PORT with LO <= PORT <= HI (in PAIR_RELAY after).
run_pair() {
    local tag=$1 a=$2 b=$3 want=$4 rip=$5 lo=$6 hi=$7
    local id="$tag$a-to-$b" lid="$tag$b-for-$a" name="$tag: $a -> $b"
    local lfd cfd lpid cpid out lout cev lev p0 n0 rc path lpath rel lrel port i bin
    PAIR_RELAY=
    n0=$(nlines "$NBLOG")
    relayed0=$(relayed_packets)
    lab_flush
    lab_fifo "in-$lid"; lfd=$LAB_FIFO_FD
    lout=$LAB_TMP/out-$lid
    lab_spawn "$b" "$LAB_TMP/in-$lid" "$lout" "$LAB_TMP/err-$lid" \
        timeout 90 "$NP" listen --id "$lid" --broker "$SRV1" --json
    lpid=$LAB_LAST_PID
    if ! lab_wait 30 registered "$lid"; then
        lab_fail "$name: listener $lid did not register" "$(cat "$LAB_TMP/err-$lid")"
        lab_stop "$lpid"
        exec {lfd}>&-
        return
    fi
    lab_fifo "in-$id"; cfd=$LAB_FIFO_FD
    out=$LAB_TMP/out-$id
    lab_spawn "$a" "$LAB_TMP/in-$id" "$out" "$LAB_TMP/err-$id" \
        timeout 90 "$NP" connect --id "$id" --broker "$SRV1" --json "$lid"
    cpid=$LAB_LAST_PID
    if ! lab_wait 40 grep -qs '"event"' "$out" || ! grep -q '"event":"connected"' "$out" ||
       ! lab_wait 10 grep -q '"event":"connected"' "$lout"; then
        lab_fail "$name: no connection" "$(cat "$out" "$LAB_TMP/err-$id" "$lout" "$LAB_TMP/err-$lid")"
        lab_stop "$cpid" "$lpid"
        exec {cfd}>&- {lfd}>&-
        return
    fi
    cev=$(grep '"event":"connected"' "$out" | head -n 1)
    lev=$(grep '"event":"connected"' "$lout" | head -n 1)
    path=$(field path "$cev") lpath=$(field path "$lev")
    rel=$(field relay "$cev") lrel=$(field relay "$lev")
    lab_check "$name connected in $(field ms "$cev") ms, path $path / listener $lpath (want $want)" \
        eval '[ "$path" = "$want" ] && [ "$lpath" = "$want" ]'
    if [ "$want" = relay ]; then
        port=${rel##*:}
        if [ "${rel%:*}" = "$rip" ] && [[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge "$lo" ] &&
           [ "$port" -le "$hi" ] && [ "$lrel" = "$rel" ]; then
            lab_pass "$name: both sides name the relay $rel"
            PAIR_RELAY=$rel
        else
            lab_fail "$name: relay '$rel' (listener '$lrel'), want both $rip:$lo-$hi" "$cev"$'\n'"$lev"
        fi
    else
        lab_check "$name: no \"relay\" field in either connected event" \
            eval '! has_field relay "$cev" && ! has_field relay "$lev"'
    fi
    # data both ways: a text line, a binary line ({"data":BASE64} in)
    echo "hello-from-$id" >&"$cfd"
    lab_check "$name: a text line reaches the listener" \
        lab_wait 10 grep -qF "\"data\":\"$(b64 "hello-from-$id")\"" "$lout"
    bin=$(printf 'bin\n\000\377-%s' "$id" | base64 -w0)
    echo "{\"data\":\"$bin\"}" >&"$cfd"
    lab_check "$name: a binary payload reaches the listener, the same bytes" \
        lab_wait 10 grep -qF "\"data\":\"$bin\"" "$lout"
    echo "reply-from-$lid" >&"$lfd"
    lab_check "$b -> $a ($tag): a text line reaches the connector" \
        lab_wait 10 grep -qF "\"data\":\"$(b64 "reply-from-$lid")\"" "$out"
    bin=$(printf 'bin\r\n\000\001-%s' "$lid" | base64 -w0)
    echo "{\"data\":\"$bin\"}" >&"$lfd"
    lab_check "$b -> $a ($tag): a binary payload reaches the connector, the same bytes" \
        lab_wait 10 grep -qF "\"data\":\"$bin\"" "$out"
    if [ -n "${SEND_MARKER:-}" ]; then
        for i in 1 2 3; do
            echo "$MARKER $i" >&"$cfd"
            echo "$MARKER $i" >&"$lfd"
        done
        lab_check "$name: the marker arrives, 3 times each way" eval \
            'lab_wait 10 data_count "$lout" "$MARKER" 3 && lab_wait 10 data_count "$out" "$MARKER" 3'
    fi
    exec {cfd}>&-   # EOF: the connector exits 0
    if lab_wait 10 _lab_all_gone "$cpid"; then
        rc=0; wait "$cpid" || rc=$?
        lab_check "$name: connect exits 0 at EOF (got $rc)" test "$rc" -eq 0
    else
        lab_fail "$name: connect still running 10 s after EOF"
    fi
    lab_stop "$cpid" "$lpid"
    exec {lfd}>&- 2>/dev/null
    # what natbroker logged during the pair
    local lines pa pb
    lines=$(new_lines "$NBLOG" "$n0")
    pa=$(lab_public "$a") pb=$(lab_public "$b")
    if [ "$want" = direct ]; then
        # A symmetric host allocates in advance (docs/protocol.md "Relay"):
        # what matters is that nothing of this pair crossed the relay.
        relayed1=$(relayed_packets)
        lab_check "$name: the relay carried nothing during the pair ($relayed0 -> $relayed1 datagrams)" \
            eval '[ -n "$relayed0" ] && [ "$relayed1" = "$relayed0" ]'
        case " $a $b " in *" sym "*) ;; *)
            lab_check "$name: natbroker logged no allocation from $pa or $pb (no symmetric side)" \
                eval '! allocs_from "$lines" "$pa" && ! allocs_from "$lines" "$pb"' ;;
        esac
    elif [ -n "$PAIR_RELAY" ] && [ "$rip" = "$SRV1" ]; then
        lab_check "$name: natbroker logged the allocation of port ${PAIR_RELAY##*:} for $pa or $pb" \
            eval '{ allocs_from "$lines" "$pa"; allocs_from "$lines" "$pb"; } |
                  grep -q "on port ${PAIR_RELAY##*:},"'
    fi
}

# check_matrix TAG WANT PAIRS...: measured == predicted == WANT in the broker's matrix
check_matrix() {
    local tag=$1 want=$2 p a b entry pred meas matrix
    shift 2
    matrix=$(all_pages matrix)
    for p in "$@"; do
        read -r a b <<<"$p"
        entry=$(grep "\"a\":\"$tag$a-to-$b\",\"b\":\"$tag$b-for-$a\"" <<<"$matrix" | head -n 1)
        pred=$(field predicted "$entry") meas=$(field measured "$entry")
        if [ -n "$entry" ] && [ "$pred" = "$want" ] && [ "$meas" = "$pred" ]; then
            lab_pass "matrix $tag: $a -> $b: predicted $pred, measured $meas"
        else
            lab_fail "matrix $tag: $a -> $b: predicted '$pred', measured '$meas', want $want" "$entry"
        fi
    done
}

lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_check "the lab's coturn stopped" lab_wait 10 eval '! lab_udp_bound srv 3478 && ! lab_udp_bound srv 3479'

# ================================================================ part 1: natbroker's own relay
NBLOG=$LAB_TMP/natbroker.log
# --birthday off: this test is about the relay; sym <-> prc would punch (test_birthday.sh)
lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen "$SRV2" --status-port "$STATUS_PORT" \
    --birthday off
NB_PID=$LAB_LAST_PID
lab_check "natbroker is up (STUN/TURN on udp+tcp 3478, 3479)" \
    lab_wait 15 eval 'lab_udp_bound srv 3478 && lab_udp_bound srv 3479 && lab_tcp_bound srv 3478'

PCAP=$LAB_TMP/srv.pcap
TDLOG=$LAB_TMP/tcpdump.log
lab_start srv "$TDLOG" tcpdump -ni any -U -s 0 -w "$PCAP" udp or tcp
TD_PID=$LAB_LAST_PID
lab_check "tcpdump records on srv" lab_wait 15 grep -qs 'listening on' "$TDLOG"

declare -a RELAYS=()
SEND_MARKER=1
for p in "${RELAY_PAIRS[@]}"; do
    read -r a b <<<"$p"
    run_pair nb- "$a" "$b" relay "$SRV1" 49152 65535
    [ -z "$PAIR_RELAY" ] || RELAYS+=("$PAIR_RELAY")
done
SEND_MARKER=

# the control: a datagram in clear, from pub to srv's UDP port 9 (nobody
# listens; tcpdump sees it all the same), several times
for i in 1 2 3; do lab_udp_send pub "$SRV1" 9 "$CONTROL $i"; done
lab_wait 5 eval "[ \$(grep -ac -- '$CONTROL' '$PCAP') -ge 3 ]"
lab_stop "$TD_PID"
ctl=$(grep -ac -- "$CONTROL" "$PCAP")
lab_check "control: the capture sees the clear marker ($ctl packets of 3)" test "$ctl" -ge 3
for r in "${RELAYS[@]}"; do
    n=$(timeout 20 tcpdump -nr "$PCAP" "udp port ${r##*:}" 2>/dev/null | wc -l)
    lab_check "the capture holds $n packets of the relayed port $r" test "$n" -gt 0
done
lab_check "the capture holds every relay pair's relayed port (${#RELAYS[@]} of ${#RELAY_PAIRS[@]})" \
    test "${#RELAYS[@]}" -eq "${#RELAY_PAIRS[@]}"
raw=$(grep -ac -- "$MARKER" "$PCAP")
enc=$(grep -ac -- "$(b64 "$MARKER" | cut -c 1-40)" "$PCAP")
hex=$(timeout 30 tcpdump -nr "$PCAP" -A 2>/dev/null | grep -c -- "${MARKER:0:20}")
lab_check "no plaintext at the relay: the marker is in no packet (raw $raw, base64 $enc, tcpdump -A $hex)" \
    eval '[ "$raw" -eq 0 ] && [ "$enc" -eq 0 ] && [ "$hex" -eq 0 ]'
lab_log "capture: $(stat -c %s "$PCAP") bytes, $(timeout 30 tcpdump -nr "$PCAP" 2>/dev/null | wc -l) packets"

for p in "${DIRECT_PAIRS[@]}"; do
    read -r a b <<<"$p"
    run_pair nb- "$a" "$b" direct "" 0 0
done

check_matrix nb- relay "${RELAY_PAIRS[@]}"
check_matrix nb- direct "${DIRECT_PAIRS[@]}"

# ---- the fallback: fc -> pub is planned direct, but r-fc now drops what fc
# and pub send each other (not what goes to the broker and relay, .10): the
# direct attempt fails at its deadline, both sides move to the relay (fc
# allocates: both map endpoint-independently, so the asker), and the matrix
# records the disagreement, predicted direct, measured relay.
# (a table of its own, before the lab's forward chain; "fwd" is an nft keyword)
printf 'table inet nbrfb {\n chain block {\n  type filter hook forward priority -10; policy accept;\n  ip daddr %s drop\n  ip saddr %s drop\n }\n}\n' \
    "$PUB_IP" "$PUB_IP" >"$LAB_TMP/block.nft"
lab_check "fallback: r-fc drops what fc and pub send each other" lab_exec r-fc nft -f "$LAB_TMP/block.nft"
run_pair fb- fc pub relay "$SRV1" 49152 65535
lab_check "fallback: fc said it tried the relay after the direct path failed" \
    grep -q "no direct path (.*); trying the relay" "$LAB_TMP/err-fb-fc-to-pub"
entry=$(all_pages matrix | grep '"a":"fb-fc-to-pub","b":"fb-pub-for-fc"' | head -n 1)
lab_check "fallback: the matrix shows predicted direct, measured relay (a disagreement)" \
    eval '[ "$(field predicted "$entry")" = direct ] && [ "$(field measured "$entry")" = relay ]'
lab_exec r-fc nft delete table inet nbrfb

# ---- --no-relay: a pair only the relay connects fails, and says why
lab_flush
lab_fifo "in-nr-l"; nrl=$LAB_FIFO_FD
lab_spawn prc "$LAB_TMP/in-nr-l" "$LAB_TMP/out-nr-l" "$LAB_TMP/err-nr-l" \
    timeout 60 "$NP" listen --id nr-prc --broker "$SRV1" --json
nrpid=$LAB_LAST_PID
lab_wait 30 registered nr-prc || lab_fail "--no-relay: the listener did not register"
rc=0
timeout 30 ip netns exec "$(lab_ns sym)" env XDG_CONFIG_HOME="$(lab_xdg sym)" "$NP" connect \
    --no-relay --id nr-sym --broker "$SRV1" --json nr-prc </dev/null >"$LAB_TMP/out-nr" \
    2>"$LAB_TMP/err-nr" || rc=$?
lab_check "--no-relay: sym -> prc fails (exit $rc) saying only a relay could connect them" \
    eval '[ "$rc" -eq 1 ] && grep -q "only a relay can connect us, and --no-relay is set" "$LAB_TMP/out-nr"'
lab_stop "$nrpid"
exec {nrl}>&-
[ "$LAB_FAIL" -eq 0 ] || { echo "# natbroker log:"; tail -n 40 "$NBLOG" | sed 's/^/#   /'; }

lab_stop "$NB_PID"
lab_check "natbroker stopped: its ports are free" \
    lab_wait 10 eval '! lab_udp_bound srv 3478 && ! lab_udp_bound srv 3479 && ! lab_tcp_bound srv 3478'
lab_log "part 1 took $(($(lab_now_ms) - T0)) ms"

# ================================================================ part 2: coturn as the relay
if [ "${NBR_COTURN_ONE:-0}" = 1 ]; then
    CO_PORT=3478; NB2_LISTEN=(--listen "$SRV1")
else
    CO_PORT=3480; NB2_LISTEN=(--listen "$SRV1" --listen "$SRV2")
fi
SECRET=$(rnd 16)
COLOG=$LAB_TMP/coturn.log
lab_start srv "$LAB_TMP/coturn.out" turnserver -n -v --no-cli --no-tls --no-dtls \
    --use-auth-secret --static-auth-secret "$SECRET" --realm natbroker \
    --listening-ip "$SRV2" --listening-port "$CO_PORT" --relay-ip "$SRV2" \
    --min-port 49152 --max-port 49999 --log-file "$COLOG" --simple-log \
    --pidfile "$LAB_TMP/turnserver.pid" --userdb "$LAB_TMP/turndb"
CO_PID=$LAB_LAST_PID
lab_check "coturn (TURN, REST secret) listens on $SRV2:$CO_PORT udp+tcp" \
    lab_wait 15 eval "bound_at udp $SRV2 $CO_PORT && bound_at tcp $SRV2 $CO_PORT"
NBLOG=$LAB_TMP/natbroker2.log
lab_start srv "$NBLOG" "$NB" --public-list "${NB2_LISTEN[@]}" \
    --relay "turn:$SRV2:$CO_PORT" --turn-secret "$SECRET" --birthday off
NB_PID=$LAB_LAST_PID
lab_check "natbroker is up again (${NB2_LISTEN[*]}), with --relay turn:$SRV2:$CO_PORT" \
    lab_wait 15 eval "bound_at udp $SRV1 3478 && bound_at tcp $SRV1 3478"

for p in "${COTURN_PAIRS[@]}"; do
    read -r a b <<<"$p"
    c0=$(grep -c 'ALLOCATE processed, success' "$COLOG" 2>/dev/null)
    run_pair co- "$a" "$b" relay "$SRV2" 49152 49999
    if [ -n "$PAIR_RELAY" ]; then
        lab_check "co-: $a -> $b: coturn logged the allocation ($PAIR_RELAY)" \
            lab_wait 5 eval "[ \$(grep -c 'ALLOCATE processed, success' '$COLOG') -gt ${c0:-0} ] &&
                             grep -qF -- 'Local relay addr: $PAIR_RELAY' '$COLOG'"
    fi
done
check_matrix co- relay "${COTURN_PAIRS[@]}"

# ---- TURN over TCP when UDP to the relay gets no answer: r-sym drops sym's
# UDP to coturn (not to the broker), so sym's Allocate over UDP times out
# and it allocates over TCP on the same port; the pair still connects.
printf 'table inet nbrtcp {\n chain block {\n  type filter hook forward priority -10; policy accept;\n  ip daddr %s udp dport %s drop\n }\n}\n' \
    "$SRV2" "$CO_PORT" >"$LAB_TMP/block-turn-udp.nft"
lab_check "tcp fallback: r-sym drops UDP to $SRV2:$CO_PORT" lab_exec r-sym nft -f "$LAB_TMP/block-turn-udp.nft"
run_pair ct- sym prc relay "$SRV2" 49152 49999
lab_check "tcp fallback: sym gave up on UDP and allocated over TCP" \
    eval 'grep -q "relay: no answer over UDP; trying TCP" "$LAB_TMP/err-ct-sym-to-prc" &&
          grep -q "relay: allocated .* (TCP" "$LAB_TMP/err-ct-sym-to-prc"'
lab_exec r-sym nft delete table inet nbrtcp
# natbroker (${NB2_LISTEN[*]}) classified the peers as the lab built them
for p in "${COTURN_PAIRS[@]}"; do
    read -r a b <<<"$p"
    for x in "$a co-$a-to-$b" "$b co-$b-for-$a"; do
        read -r h pid <<<"$x"
        read -r _ _ want <<<"${LAB_EXPECT[$h]}"
        got=$(sed -n "s/.*register $pid (.*: \([a-z-]*\) (mapping.*/\1/p" "$NBLOG" | head -n 1)
        lab_check "co-: $pid registered as $got (want $want)" test "$got" = "$want"
    done
done
lab_check "natbroker itself allocated nothing with --relay" eval '! grep -q "relay: allocation for" "$NBLOG"'

if [ "$LAB_FAIL" -gt 0 ]; then
    echo "# natbroker log (part 2):"; tail -n 30 "$NBLOG" | sed 's/^/#   /'
    echo "# coturn log:"; tail -n 30 "$COLOG" 2>/dev/null | sed 's/^/#   /'
fi
lab_stop "$NB_PID" "$CO_PID"
[ -z "${NBR_SAVE:-}" ] || { mkdir -p "$NBR_SAVE" && cp -r "$LAB_TMP"/. "$NBR_SAVE"/; }
lab_log "took $(($(lab_now_ms) - T0)) ms"
lab_summary
