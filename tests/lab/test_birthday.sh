#!/usr/bin/env bash
# test_birthday.sh NATPEER NATBROKER: birthday punching between a symmetric
# NAT and port-restricted ones, on the lab's real kernel NATs (issue 16).
#
# natbroker runs on srv in RFC 5780 mode with its relay and a birthday
# budget of 256 sockets, 2048 probes at 1000 per second. For each pair,
# NBB_TRIES times (default 1), after a conntrack flush: a fresh `natpeer
# listen` on B and, once registered, `natpeer connect` on A:
#  - sym->prc, prc->sym, sym->cgn (a double NAT on the easy side), sym->lan1:
#    both connected events say path "birthday"; the spraying side (sym) names
#    its winning socket (1..256 of 256) and port, the probing side the probes
#    it sent (<= 2048) at 1000/s and the same port; the probing side's remote
#    is that port of sym's public IP; data goes both ways; the spraying
#    natpeer holds no more than its own sockets and the winner once
#    connected (the other 255 closed at once);
#  - a third host (pub) blasts, during one sym->prc try, random ports of
#    prc's public IP (forged checks, forged answers, garbage, 2000/s) and,
#    spoofing sym's public IP from random ports, prc's mapped port: the pair
#    still connects on birthday to sym's IP;
#  - the budget runs out (r-sym2 drops everything from prc's IP, so no probe
#    arrives): sym2->prc falls back to the relay (path relay both sides);
#  - too few file descriptors (prlimit --nofile=100 on sym): natpeer says
#    what to raise, and sym->lan2 falls back to the relay;
#  - the broker's matrix shows predicted birthday for all of these, measured
#    birthday for the first four and relay for the two fallbacks.
# Prints successes out of tries, the median time and the median probes.
# Needs root (exit 77 otherwise). About 60-90 s.
set -u
export NATLAB_PREFIX=${NATLAB_PREFIX:-nbbd}
. "$(dirname "$0")/lib.sh"

NP=${1:?usage: test_birthday.sh PATH/TO/natpeer PATH/TO/natbroker}
NB=${2:?usage: test_birthday.sh PATH/TO/natpeer PATH/TO/natbroker}
TRIES=${NBB_TRIES:-1}
SRV1=203.0.113.10
SRV2=203.0.113.11
PAIRS=("sym prc" "prc sym" "sym cgn" "sym lan1")
BLAST=$(dirname "$0")/blast.py

lab_init $((240 + TRIES * 60))
for b in "$NP" "$NB"; do
    [ -x "$b" ] || { lab_fail "$b is not executable"; lab_summary; exit 1; }
done
lab_up || { lab_fail "lab up"; lab_summary; exit 1; }
"$NATLAB" stop-coturn
lab_check "coturn stopped" lab_wait 5 eval '! lab_udp_bound srv 3478'
NBLOG=$LAB_TMP/natbroker.log
lab_start srv "$NBLOG" "$NB" --public-list --listen "$SRV1" --listen "$SRV2" \
    --birthday-sockets 256 --birthday-probes 2048 --birthday-rate 1000
lab_check "natbroker is up" lab_wait 5 eval 'lab_udp_bound srv 3478 && lab_udp_bound srv 3479'

all_pages() { # peers|matrix -> every entry, one object per line
    timeout 10 ip netns exec "$(lab_ns pub)" env XDG_CONFIG_HOME="$(lab_xdg pub)" \
        "$NP" "$1" --broker "$SRV1" --json 2>/dev/null |
        grep -o '{"\(id\|a\)":[^{}]*\({[^{}]*}[^{}]*\)\{0,1\}}'
}
registered() { all_pages peers | grep -q "\"id\":\"$1\""; }
b64() { printf '%s' "$1" | base64 -w0; }
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" <<<"$2" | head -n 1; }
# bfield NAME LINE: a field of the event's "birthday" object
bfield() { sed -n "s/.*\"birthday\":{[^}]*\"$1\":\([0-9]*\).*/\1/p" <<<"$2" | head -n 1; }
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "-" }'; }
# udp_socks NODE: UDP sockets natpeer holds there (one natpeer runs in it)
udp_socks() { lab_exec "$1" ss -Huanp 2>/dev/null | grep -c '"natpeer"'; }

OK=0 TRIED=0
: >"$LAB_TMP/ms" ; : >"$LAB_TMP/probes"

# run_pair TAG A B WANT [PREFIX...]: A connects to B, both must say path WANT.
# PREFIX: a command A's natpeer runs under (prlimit ...). Sets PAIR_CEV,
# PAIR_LEV (the connected events), PAIR_CERR (A's stderr file).
run_pair() {
    local tag=$1 a=$2 b=$3 want=$4; shift 4
    local id="$tag$a-$b" lid="$tag$b-for-$a" name="$tag $a -> $b" lfd cfd lpid cpid out lout
    PAIR_CEV= PAIR_LEV= PAIR_CERR=$LAB_TMP/err-$id PAIR_CPID= PAIR_LPID=
    lab_flush
    lab_fifo "in-$lid"; lfd=$LAB_FIFO_FD
    lout=$LAB_TMP/out-$lid
    lab_spawn "$b" "$LAB_TMP/in-$lid" "$lout" "$LAB_TMP/err-$lid" \
        timeout 90 "$NP" listen --id "$lid" --broker "$SRV1" --json --no-portmap
    lpid=$LAB_LAST_PID
    if ! lab_wait 30 registered "$lid"; then
        lab_fail "$name: listener $lid did not register" "$(cat "$LAB_TMP/err-$lid")"
        lab_stop "$lpid"; exec {lfd}>&-
        return 1
    fi
    lab_fifo "in-$id"; cfd=$LAB_FIFO_FD
    out=$LAB_TMP/out-$id
    lab_spawn "$a" "$LAB_TMP/in-$id" "$out" "$PAIR_CERR" \
        "$@" timeout 90 "$NP" connect --id "$id" --broker "$SRV1" --json --no-portmap "$lid"
    cpid=$LAB_LAST_PID
    PAIR_CPID=$cpid PAIR_LPID=$lpid
    if [ -n "${ON_START:-}" ]; then "$ON_START"; fi
    if ! lab_wait 40 grep -qs '"event"' "$out" || ! grep -q '"event":"connected"' "$out" ||
       ! lab_wait 10 grep -q '"event":"connected"' "$lout"; then
        lab_fail "$name: no connection" "$(cat "$out" "$PAIR_CERR" "$lout" "$LAB_TMP/err-$lid")"
        lab_stop "$cpid" "$lpid"; exec {cfd}>&- {lfd}>&-
        return 1
    fi
    PAIR_CEV=$(grep '"event":"connected"' "$out" | head -n 1)
    PAIR_LEV=$(grep '"event":"connected"' "$lout" | head -n 1)
    local path lpath
    path=$(field path "$PAIR_CEV") lpath=$(field path "$PAIR_LEV")
    lab_check "$name: connected in $(field ms "$PAIR_CEV") ms, path $path / listener $lpath (want $want)" \
        eval '[ "$path" = "$want" ] && [ "$lpath" = "$want" ]'
    if [ -n "${CHECK_CONNECTED:-}" ]; then "$CHECK_CONNECTED" "$a" "$b"; fi
    echo "hello-from-$id" >&"$cfd"
    lab_check "$name: a line reaches the listener" \
        lab_wait 10 grep -qF "\"data\":\"$(b64 "hello-from-$id")\"" "$lout"
    echo "reply-from-$lid" >&"$lfd"
    lab_check "$name: a line comes back" \
        lab_wait 10 grep -qF "\"data\":\"$(b64 "reply-from-$lid")\"" "$out"
    exec {cfd}>&-
    lab_wait 10 _lab_all_gone "$cpid" || true
    lab_stop "$cpid" "$lpid"
    exec {lfd}>&- 2>/dev/null
    [ "$path" = "$want" ] && [ "$lpath" = "$want" ]
}

# The figures of a birthday connection: the spraying side's event names its
# socket and port, the probing side's its probes and the same port.
check_birthday() {
    local a=$1 b=$2 sev pev sym_ip
    if [ "$a" = sym ]; then sev=$PAIR_CEV pev=$PAIR_LEV
    else sev=$PAIR_LEV pev=$PAIR_CEV; fi
    sym_ip=$(lab_public sym)
    local socks sock sport probes rate pport premote
    socks=$(bfield sockets "$sev") sock=$(bfield socket "$sev") sport=$(bfield port "$sev")
    probes=$(bfield probes "$pev") rate=$(bfield rate "$pev") pport=$(bfield port "$pev")
    premote=$(field remote "$pev")
    lab_check "$a -> $b: sym sprayed from $socks sockets, socket $sock won (want 256, 1..256)" \
        eval '[ "$socks" = 256 ] && [ -n "$sock" ] && [ "$sock" -ge 1 ] && [ "$sock" -le 256 ]'
    lab_check "$a -> $b: the prober sent $probes probes at $rate/s (want <= 2048 at 1000)" \
        eval '[ -n "$probes" ] && [ "$probes" -ge 1 ] && [ "$probes" -le 2048 ] && [ "$rate" = 1000 ]'
    # the spraying side learns its port from an answer's XOR-MAPPED-ADDRESS;
    # when the prober's data confirmed the path first it has none yet
    lab_check "$a -> $b: the prober's remote is $premote, its port $pport (sym's: ${sport:-not known yet})" \
        eval '[ -n "$pport" ] && [ "$premote" = "$sym_ip:$pport" ] && { [ -z "$sport" ] || [ "$sport" = "$pport" ]; }'
    # the spraying natpeer: its main socket, its NAT check's, the winner
    local n
    n=$(udp_socks sym)
    lab_check "$a -> $b: the spraying natpeer holds $n UDP sockets once connected (<= 3: 255 closed)" \
        eval '[ "$n" -ge 1 ] && [ "$n" -le 3 ]'
    echo "$(field ms "$PAIR_CEV")" >>"$LAB_TMP/ms"
    echo "$probes" >>"$LAB_TMP/probes"
}

# ---- 1. the pairs
for t in $(seq 1 "$TRIES"); do
    for p in "${PAIRS[@]}"; do
        read -r a b <<<"$p"
        TRIED=$((TRIED + 1))
        if CHECK_CONNECTED=check_birthday run_pair "t$t" "$a" "$b" birthday; then OK=$((OK + 1)); fi
    done
done

# ---- 2. a third host blasts prc's IP during a sym -> prc attempt
blast() {
    local prc_ip port
    prc_ip=$(lab_public prc)
    port=$(sed -n 's/.*reflexive [0-9.]*:\([0-9]*\).*/\1/p' "$LAB_TMP/err-xprc-for-sym" | head -n 1)
    lab_exec pub /usr/bin/python3 "$BLAST" --dst "$prc_ip" --rate 2000 --seconds 4 \
        >"$LAB_TMP/blast1" 2>&1 &
    BLAST_PIDS=($!)
    if [ -n "$port" ]; then
        lab_exec pub /usr/bin/python3 "$BLAST" --dst "$prc_ip" --port "$port" --spoof "$(lab_public sym)" \
            --rate 2000 --seconds 4 >"$LAB_TMP/blast2" 2>&1 &
        BLAST_PIDS+=($!)
    fi
}
BLAST_PIDS=()
TRIED=$((TRIED + 1))
if ON_START=blast CHECK_CONNECTED=check_birthday run_pair x sym prc birthday; then OK=$((OK + 1)); fi
for p in "${BLAST_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
lab_check "the third host sent its datagrams ($(cat "$LAB_TMP/blast1" 2>/dev/null); spoofed: $(cat "$LAB_TMP/blast2" 2>/dev/null))" \
    eval 'grep -q "^sent [1-9]" "$LAB_TMP/blast1" && grep -q "^sent [1-9]" "$LAB_TMP/blast2"'

# ---- 3. the budget runs out: no probe reaches sym2; the relay takes over
prc_ip=$(lab_public prc)
h=$(lab_exec r-sym2 nft --echo --handle insert rule inet lab forward ip saddr "$prc_ip" drop |
    sed -n 's/.*# handle \([0-9]*\).*/\1/p')
run_pair f sym2 prc relay
lab_check "sym2 -> prc: the direct attempt said why it gave up" \
    grep -qE "no direct path \(birthday: (no probe reached|none of)" "$PAIR_CERR"
[ -n "$h" ] && lab_exec r-sym2 nft delete rule inet lab forward handle "$h"

# ---- 4. too few file descriptors for 256 sockets: a clear error, the relay
run_pair r sym lan2 relay prlimit --nofile=100:100
lab_check "sym -> lan2 under a 100-file limit: natpeer says what to raise" \
    grep -q "birthday needs 256 sockets, but the open-file limit is 100 (hard limit 100): raise it" "$PAIR_CERR"

# ---- 5. the broker's matrix
M=$(all_pages matrix)
mcheck() { # A B MEASURED
    local e
    e=$(grep -F "\"a\":\"$1\",\"b\":\"$2\"" <<<"$M" | head -n 1)
    if [ "$(field predicted "$e")" = birthday ] && [ "$(field measured "$e")" = "$3" ]; then
        lab_pass "matrix: $1 -> $2 predicted birthday, measured $3"
    else
        lab_fail "matrix: $1 -> $2: want predicted birthday, measured $3" "entry: $e"$'\n'"matrix: $M"
    fi
}
mcheck t1sym-prc t1prc-for-sym birthday
mcheck t1prc-sym t1sym-for-prc birthday
mcheck t1sym-cgn t1cgn-for-sym birthday
mcheck t1sym-lan1 t1lan1-for-sym birthday
mcheck xsym-prc xprc-for-sym birthday
mcheck fsym2-prc fprc-for-sym2 relay
mcheck rsym-lan2 rlan2-for-sym relay
# the matrix entry carries both sides' figures
e=$(grep -F '"a":"t1sym-prc","b":"t1prc-for-sym"' <<<"$M" | head -n 1)
lab_check "matrix: t1sym-prc's entry has both sides' birthday figures: $(grep -o '"birthday":{[^}]*}' <<<"$e")" \
    eval '[ "$(bfield sockets "$e")" = 256 ] && [ -n "$(bfield probes "$e")" ] && [ "$(bfield rate "$e")" = 1000 ] &&
          [ -n "$(bfield port "$e")" ]'

echo "# birthday: $OK of $TRIED tries connected directly; median $(median <"$LAB_TMP/ms") ms, median $(median <"$LAB_TMP/probes") probes"
[ "$LAB_FAIL" -eq 0 ] || { echo "# natbroker log:"; tail -n 30 "$NBLOG" | sed 's/^/#   /'; }
lab_summary
