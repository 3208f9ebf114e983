#!/usr/bin/env bash
# natlab.sh: build, inspect and tear down the natbroker NAT lab (Linux network
# namespaces, nftables NATs, miniupnpd, coturn). See docs/lab.md.
#
# Runs as root, needs no terminal. Everything lives in namespaces named
# "$NATLAB_PREFIX-NODE" and in the run dir /run/natlab-$NATLAB_PREFIX; nothing
# is added to the root namespace.
set -euo pipefail
export LC_ALL=C

PREFIX=${NATLAB_PREFIX:-nl}
# no "-" in the prefix: "nl-r" + "fc" would collide with "nl" + "r-fc"
[[ $PREFIX =~ ^[A-Za-z0-9_]{1,24}$ ]] ||
    { echo "natlab: NATLAB_PREFIX must be 1-24 of [A-Za-z0-9_]" >&2; exit 2; }
RUN=/run/natlab-$PREFIX
SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$SELF_DIR/$(basename "${BASH_SOURCE[0]}")"

# ---------------------------------------------------------------- topology
# Router number N: WAN 203.0.113.(100+N), LAN 192.168.N.0/24 (router .1,
# hosts .2 and .3). r-cgn is the home router behind the carrier r-isp.
#   node:router:N:nat-type:hosts
ROUTERS=(
    "r-fc:1:fullcone:fc"
    "r-rc:2:restricted:rc"
    "r-prc:3:portrestricted:prc"
    "r-sym:4:symmetric:sym"
    "r-sym2:5:symmetric:sym2"
    "r-upnp:6:upnp:upnp"
    "r-blk:7:udpblocked:blk"
    "r-hp:8:hairpin:hp1 hp2"
    "r-lan:9:portrestricted:lan1 lan2"
    "r-cgn:11:upnp-cgn:cgn"
    "r-hr:12:hostrestricted:hr"
)
# NATLAB_V6=1 only: an IPv6 internet 2001:db8::/64 on the same bridge, and
# stateful IPv6 firewalls (no translation). Router N: v6 WAN 2001:db8::1:N,
# routed LAN 2001:db8:N::/64 (router ::1, host ::2); N written as in v4, so
# r-d6 (13) has 203.0.113.113 and 2001:db8::1:13. The type is V4+V6: the v4
# NAT (as above; "none": no IPv4 at all) plus the v6 firewall: apdf
# (address-and-port-dependent), open (endpoint-independent), noudp (no UDP).
ROUTERS_V6=(
    "r-d6:13:portrestricted+apdf:d6"
    "r-s6:14:symmetric+apdf:s6"
    "r-o6:15:none+open:o6"
    "r-v6:16:none+apdf:v6o"
    "r-b6:17:portrestricted+noudp:b6"
    "r-t6:18:symmetric+apdf:t6"
    "r-e6:19:portrestricted+apdf:e6"
    "r-w6:20:none+noudp:w6"
)
# NATLAB_V6=1 only: the v6 router that runs miniupnpd as an IPv6 PCP server
# (firewall pinholes, RFC 6887 MAP with an IPv6 internal address); on IPv4 it
# stays as it was: nothing answers PCP/NAT-PMP there (see router6_nft).
PCP6_ROUTER=r-d6
LAB_V6=0
if [ "${NATLAB_V6:-0}" = 1 ]; then
    LAB_V6=1
    ROUTERS+=("${ROUTERS_V6[@]}")
fi
SRV_IP1=203.0.113.10
SRV_IP2=203.0.113.11
PUB_IP=203.0.113.20
ISP_WAN=203.0.113.111   # carrier router (r-isp) on the internet
ISP_IN=100.64.11.1      # carrier router inside (cgn0 bridge)
CGN_WAN=100.64.11.2     # home router r-cgn's WAN
HP_WAN2=203.0.113.208   # r-hp's second public address (hp2's, 1:1)
SRV6_IP1=2001:db8::10   # NATLAB_V6=1 only
SRV6_IP2=2001:db8::11
PUB6_IP=2001:db8::20
STUN_PORT=3478
STUN_ALT_PORT=3479
UPNP_HTTP_PORT=5000
PMP_PORT=5351

all_nodes() {
    local r name n typ hosts
    echo inet srv pub r-isp
    for r in "${ROUTERS[@]}"; do
        IFS=: read -r name n typ hosts <<<"$r"
        echo "$name $hosts"
    done
}
ALL_NODES=$(all_nodes | tr '\n' ' ')
# every node either kind of lab may have (down and up's leftover check)
ANY_NODES="$ALL_NODES $(for r in "${ROUTERS_V6[@]}"; do
    IFS=: read -r _n _N _t _h <<<"$r"
    case " $ALL_NODES " in *" $_n "*) ;; *) echo -n "$_n $_h " ;; esac
done)"
ROUTER_NODES="r-isp $(for r in "${ROUTERS[@]}"; do echo -n "${r%%:*} "; done)"

ns() { echo "$PREFIX-$1"; }

die() { echo "natlab: $*" >&2; exit 1; }
log() { [ -n "${NATLAB_QUIET:-}" ] || echo "natlab[$PREFIX]: $*" >&2; }

router_of_host() { # host -> "router N type index" (index 0 => .2, 1 => .3)
    local r name n typ hosts i h
    for r in "${ROUTERS[@]}"; do
        IFS=: read -r name n typ hosts <<<"$r"
        i=0
        for h in $hosts; do
            [ "$h" = "$1" ] && { echo "$name $n $typ $i"; return 0; }
            i=$((i + 1))
        done
    done
    return 1
}
router_info() { # router -> "N type hosts"
    local r name n typ hosts
    for r in "${ROUTERS[@]}"; do
        IFS=: read -r name n typ hosts <<<"$r"
        [ "$name" = "$1" ] && { echo "$n $typ $hosts"; return 0; }
    done
    return 1
}

# Address of a node: hosts -> LAN address, routers -> WAN address.
node_addr() {
    local info
    case $1 in
        inet) echo "" ;;
        srv) echo "$SRV_IP1" ;;
        pub) echo "$PUB_IP" ;;
        r-isp) echo "$ISP_WAN" ;;
        r-cgn) echo "$CGN_WAN" ;;
        r-*) info=$(router_info "$1") || return 1
             case ${info#* } in none+*) node_addr6 "$1"; return ;; esac
             echo "203.0.113.$((100 + ${info%% *}))" ;;
        *) info=$(router_of_host "$1") || return 1
           local _r n _t idx; read -r _r n _t idx <<<"$info"
           case $_t in none+*) node_addr6 "$1"; return ;; esac
           echo "192.168.$n.$((2 + idx))" ;;
    esac
}
# IPv6 address of a node (NATLAB_V6=1): hosts -> LAN, routers -> WAN; none
# for IPv4-only nodes. There is no translation: it is also the public one.
node_addr6() {
    local info
    case $1 in
        srv) echo "$SRV6_IP1" ;;
        pub) echo "$PUB6_IP" ;;
        r-*) info=$(router_info "$1") || return 1
             case ${info#* } in *+*) echo "2001:db8::1:${info%% *}" ;; *) return 1 ;; esac ;;
        *) info=$(router_of_host "$1") || return 1
           local _r n _t idx; read -r _r n _t idx <<<"$info"
           case $_t in *+*) echo "2001:db8:$n::$((2 + idx))" ;; *) return 1 ;; esac ;;
    esac
}
# Public address a node's traffic appears from on the internet.
node_public() {
    local info
    case $1 in
        srv|pub|r-isp) node_addr "$1" ;;
        r-cgn|cgn) echo "$ISP_WAN" ;;
        hp2) echo "$HP_WAN2" ;;
        r-*) node_addr "$1" ;;
        *) info=$(router_of_host "$1") || return 1
           local _r n _t _i; read -r _r n _t _i <<<"$info"
           case $_t in none+*) node_addr6 "$1"; return ;; esac
           echo "203.0.113.$((100 + n))" ;;
    esac
}

is_node() { case " $ALL_NODES " in *" $1 "*) return 0 ;; esac; return 1; }

# ---------------------------------------------------------------- helpers
need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }
nsx() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

# Poll "$@" every 50 ms until it succeeds or SECS pass. Returns 1 on timeout.
poll() {
    local secs=$1; shift
    local end=$(($(now_ms) + secs * 1000))
    while :; do
        "$@" && return 0
        [ "$(now_ms)" -lt "$end" ] || return 1
        sleep 0.05
    done
}

pid_alive() { # pidfile-name -> 0 if recorded pid is alive and still ours
    local f=$RUN/pid/$1.pid pid want
    [ -s "$f" ] || return 1
    read -r pid want <"$f" || return 1
    [ -d "/proc/$pid" ] || return 1
    # guard against pid reuse: the process must still live in our namespace
    [ "$(ip netns identify "$pid" 2>/dev/null)" = "$(ns "$want")" ]
}
pid_of() { local f=$RUN/pid/$1.pid pid want; read -r pid want <"$f" 2>/dev/null && echo "$pid"; }

# Start a daemon in NODE, detached (own session), stdout+stderr to a log in
# the run dir; record the daemon's real PID (ip netns exec execs, so $! is
# the daemon itself).
start_daemon() {
    local name=$1 node=$2; shift 2
    # the daemon keeps only fds 0-2: no inherited lock fds (the bash -c execs,
    # so the PID stays the daemon's)
    # shellcheck disable=SC2016
    setsid ip netns exec "$(ns "$node")" bash -c '
        for fd in /proc/$$/fd/*; do
            fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"
        done
        exec "$@"' natlab-daemon "$@" </dev/null >>"$RUN/log/$name.log" 2>&1 &
    echo "$! $node" >"$RUN/pid/$name.pid"
}

# Send SIGTERM to the listed pids, wait up to SECS for them, then SIGKILL.
kill_pids() {
    local secs=$1; shift
    local p alive end
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null || true
    end=$(($(now_ms) + secs * 1000))
    while :; do
        alive=()
        for p in "$@"; do [ -d "/proc/$p" ] && alive+=("$p"); done
        [ ${#alive[@]} -gt 0 ] || return 0
        if [ "$(now_ms)" -ge "$end" ]; then
            kill -KILL "${alive[@]}" 2>/dev/null || true
            return 0
        fi
        sleep 0.05
    done
}

stop_daemon() {
    local name=$1 secs=${2:-3}
    if pid_alive "$name"; then kill_pids "$secs" "$(pid_of "$name")"; fi
    rm -f "$RUN/pid/$name.pid"
}

# ---------------------------------------------------------------- deps
DEPS_PKGS="iproute2 iptables nftables conntrack tcpdump procps iputils-ping
coreutils util-linux socat python3 miniupnpd miniupnpd-nftables miniupnpc natpmpc
coturn stun-client libnetfilter-queue-dev libnfnetlink-dev gcc libc6-dev"

cmd_deps() {
    need_root
    local missing=() p st
    for p in $DEPS_PKGS; do
        st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [ "$st" = "install ok installed" ] || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "deps: all present"
        return 0
    fi
    log "deps: installing ${missing[*]}"
    local prc=/usr/sbin/policy-rc.d backup=""
    if [ -e "$prc" ]; then backup=$(mktemp); cp -p "$prc" "$backup"; fi
    # keep coturn/miniupnpd from starting as system services during install
    printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod 755 "$prc"
    local rc=0
    (
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q &&
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    ) || rc=$?
    if [ -n "$backup" ]; then mv -f "$backup" "$prc"; else rm -f "$prc"; fi
    [ $rc -eq 0 ] || die "deps: apt-get failed ($rc)"
    log "deps: done"
}

# ---------------------------------------------------------------- build
# The build runs in phases; within a phase every namespace is handled by one
# process (an `ip -b` batch or one `ip netns exec`), all in parallel:
#   1. ip netns add (one batch)      2. sysctls, lo up, nft rule set
#   3. create veths and bridges      4. addresses, bridge ports, routes
# Commands are queued per namespace in $RUN/ip/NODE.{create,conf}.

q_create() { echo "$2" >>"$RUN/ip/$1.create"; }
q_conf() { echo "$2" >>"$RUN/ip/$1.conf"; }

# veth A:ifA <-> B:ifB, created directly inside the namespaces
veth() { q_create "$1" "link add name $2 type veth peer name $4 netns $(ns "$3")"; }
bridge_add() { # node brname
    q_create "$1" "link add name $2 type bridge mcast_snooping 0"
    q_conf "$1" "link set $2 up"
}
port_up() { q_conf "$1" "link set $2 master $3 up"; }   # node ifname bridge

# run "$@" once per listed node in parallel ("{}" is replaced by the node);
# fails if any of them failed
par_nodes() {
    local nodes=$1; shift
    local node pids=() p rc=0 a args
    for node in $nodes; do
        args=()
        for a in "$@"; do args+=("${a//\{\}/$node}"); done
        "${args[@]}" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    return $rc
}

# phase 2 for one node: sysctls (before its links exist, so "default"
# applies to them), lo up, and its nft rule set if it has one
ns_init() {
    local node=$1 fwd=0 bnf=0 v6=""
    case " $ROUTER_NODES " in *" $node "*) fwd=1 ;; esac
    # NATLAB_V6: IPv6 on in srv, pub and the v6 routers and hosts, without
    # DAD (addresses usable at once), RA or autoconf; forwarding on routers
    if [ "$LAB_V6" = 1 ] && { [ "$node" = srv ] || [ "$node" = pub ] || node_addr6 "$node" >/dev/null; }; then
        v6="for c in all default; do
            echo 0 >ipv6/conf/\$c/accept_dad; echo 0 >ipv6/conf/\$c/accept_ra
            echo 0 >ipv6/conf/\$c/autoconf; echo 0 >ipv6/conf/\$c/disable_ipv6
            echo $fwd >ipv6/conf/\$c/forwarding
        done"
    fi
    nsx "$node" sh -c "
        cd /proc/sys/net || exit 1
        echo 1 >ipv6/conf/all/disable_ipv6; echo 1 >ipv6/conf/default/disable_ipv6
        $v6
        for c in all default; do
            echo 0 >ipv4/conf/\$c/rp_filter
            echo 0 >ipv4/conf/\$c/send_redirects
            echo 0 >ipv4/conf/\$c/accept_redirects
        done
        echo $fwd >ipv4/ip_forward
        for b in bridge/bridge-nf-call-iptables bridge/bridge-nf-call-ip6tables bridge/bridge-nf-call-arptables; do
            [ -e \$b ] && echo $bnf >\$b
        done
        ip link set lo up || exit 1
        if [ -f '$RUN/nft-$node.nft' ]; then nft -f '$RUN/nft-$node.nft' || exit 1; fi
        exit 0
    " || { echo "natlab: init of $(ns "$node") failed" >&2; return 1; }
}
ip_batch() { # node kind
    local f=$RUN/ip/$1.$2
    [ -s "$f" ] || return 0
    ip -n "$(ns "$1")" -b "$f" || { echo "natlab: ip batch $f failed" >&2; return 1; }
}

# Common base rule set of a NAT router (NOTES "Common base").
nft_base() {
    cat <<EOF
flush ruleset
table inet lab {
  chain input { type filter hook input priority 0; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" drop
  }
  chain pre_forward { }
  chain post_forward { }
  chain forward { type filter hook forward priority 0; policy drop;
    jump pre_forward
    ct state established,related accept
    iifname "lan0" oifname "wan0" accept
    jump post_forward
  }
}
table ip lab_nat {
  chain prerouting { type nat hook prerouting priority dstnat; policy accept; }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept; }
}
EOF
}

# nft rules per router type. args: typ wan n [name]
router_nft() {
    local typ=$1 wan=$2 n=$3 h1=192.168.$3.2 h2=192.168.$3.3
    case $typ in
    fullcone)
        nft_base
        cat <<EOF
add rule ip lab_nat prerouting iifname "wan0" ip daddr $wan dnat to $h1
add rule ip lab_nat postrouting oifname "wan0" ip saddr $h1 snat to $wan
add rule inet lab post_forward iifname "wan0" oifname "lan0" ip daddr $h1 accept
EOF
        ;;
    restricted)
        nft_base
        cat <<EOF
add set inet lab peers { type ipv4_addr . inet_proto . inet_service; flags dynamic,timeout; timeout 300s; }
add rule ip lab_nat prerouting iifname "wan0" ip daddr $wan dnat to $h1
add rule ip lab_nat postrouting oifname "wan0" ip saddr $h1 snat to $wan
add rule inet lab pre_forward iifname "lan0" oifname "wan0" meta l4proto { tcp, udp } update @peers { ip daddr . meta l4proto . th sport }
add rule inet lab post_forward iifname "wan0" oifname "lan0" meta l4proto { tcp, udp } ip saddr . meta l4proto . th dport @peers accept
EOF
        ;;
    portrestricted)
        nft_base
        echo "add rule ip lab_nat postrouting oifname \"wan0\" snat to $wan"
        ;;
    hostrestricted)
        # The filter keys on the remote IP alone, across all internal ports
        # and protocols: once the host sent anything to IP X, X may send to
        # any of its ports. Address-dependent filtering that fools a
        # classifier which contacts the alternate IP before its filtering
        # test II.
        nft_base
        cat <<EOF
add set inet lab remotes { type ipv4_addr; flags dynamic,timeout; timeout 300s; }
add rule ip lab_nat prerouting iifname "wan0" ip daddr $wan dnat to $h1
add rule ip lab_nat postrouting oifname "wan0" snat to $wan
add rule inet lab pre_forward iifname "lan0" oifname "wan0" update @remotes { ip daddr }
add rule inet lab post_forward iifname "wan0" oifname "lan0" ip saddr @remotes accept
EOF
        ;;
    symmetric)
        nft_base
        echo "add rule ip lab_nat postrouting oifname \"wan0\" snat to $wan fully-random"
        ;;
    udpblocked)
        nft_base
        echo "add rule ip lab_nat postrouting oifname \"wan0\" snat to $wan"
        echo "add rule inet lab pre_forward meta l4proto udp drop"
        ;;
    hairpin)
        local wan2=$HP_WAN2
        nft_base
        cat <<EOF
add rule ip lab_nat prerouting ip daddr $wan dnat to $h1
add rule ip lab_nat prerouting ip daddr $wan2 dnat to $h2
add rule ip lab_nat postrouting oifname "wan0" ip saddr $h1 snat to $wan
add rule ip lab_nat postrouting oifname "wan0" ip saddr $h2 snat to $wan2
add rule ip lab_nat postrouting oifname "lan0" ct status dnat ip saddr $h1 snat to $wan
add rule ip lab_nat postrouting oifname "lan0" ct status dnat ip saddr $h2 snat to $wan2
add rule inet lab post_forward iifname "wan0" oifname "lan0" accept
add rule inet lab post_forward iifname "lan0" oifname "lan0" accept
EOF
        ;;
    upnp|upnp-cgn)
        # the table miniupnpd-nftables expects (NOTES: UPnP router)
        cat <<EOF
flush ruleset
table inet filter {
  chain input { type filter hook input priority 0; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" ip saddr { $SRV_IP1, $SRV_IP2 } udp sport { $STUN_PORT, $STUN_ALT_PORT } accept
    iifname "wan0" drop
  }
  chain miniupnpd { }
  chain forward { type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "wan0" accept
    jump miniupnpd
  }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
  chain prerouting { type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting { type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
    oifname "wan0" snat ip to $wan
  }
}
EOF
        ;;
    *+*) router6_nft "${typ%%+*}" "${typ#*+}" "$wan" "$n" "${4:-}" ;;
    *) die "unknown router type $typ" ;;
    esac
}

# NATLAB_V6 routers: the v4 NAT (or the bare base for "none"), whose inet
# table is already a stateful v6 firewall: established,related in, LAN->WAN
# out, everything else dropped (address-and-port-dependent filtering), plus
# neighbour discovery on wan0 and the firewall's own rule. args: v4 fw6 wan n
# name. On $PCP6_ROUTER also what its miniupnpd needs (see miniupnpd6_conf):
# chain inet lab miniupnpd, jumped to last from forward, where miniupnpd adds
# its IPv6 pinholes (iifname wan0, ip6 daddr H, dport P: accept); an inet
# table miniupnpd_nat with the two (unhooked, never used: IPv4 mappings are
# denied) nat chains it insists on; and IPv4 UDP to 5351 from the LAN
# rejected, so that IPv4 clients see what they saw before (port unreachable).
router6_nft() {
    local v4=$1 fw=$2 wan=$3 n=$4 name=${5:-} h6=2001:db8:$4::2
    case $v4 in
        none) nft_base ;;
        portrestricted|symmetric) router_nft "$v4" "$wan" "$n" ;;
        *) die "unknown v4 type $v4 for a v6 router" ;;
    esac
    echo "insert rule inet lab input iifname \"wan0\" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept"
    case $fw in
        apdf) ;;
        open) echo "add rule inet lab post_forward iifname \"wan0\" oifname \"lan0\" ip6 daddr $h6 accept" ;;
        noudp) echo "add rule inet lab pre_forward meta nfproto ipv6 meta l4proto udp drop" ;;
        *) die "unknown v6 firewall $fw" ;;
    esac
    if [ "$name" = "$PCP6_ROUTER" ]; then
        cat <<EOF
add chain inet lab miniupnpd
add rule inet lab forward jump miniupnpd
insert rule inet lab input iifname "lan0" meta nfproto ipv4 udp dport $PMP_PORT reject
add table inet miniupnpd_nat
add chain inet miniupnpd_nat prerouting_miniupnpd
add chain inet miniupnpd_nat postrouting_miniupnpd
EOF
    fi
}

isp_nft() {
    cat <<EOF
flush ruleset
table inet lab {
  chain input { type filter hook input priority 0; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" drop
  }
  chain forward { type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "cgn0" oifname "wan0" ip saddr 100.64.0.0/10 accept
  }
}
table ip lab_nat {
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" ip saddr 100.64.0.0/10 snat to $ISP_WAN
  }
}
EOF
}

# NATLAB_PORTMAP: which port-mapping protocols the miniupnpds speak.
#   all  UPnP IGD (HTTP 5000 + SSDP) and NAT-PMP/PCP (UDP 5351)
#   pmp  NAT-PMP/PCP only: no HTTP, no SSDP
#   upnp UPnP only: nothing listens on UDP 5351
portmap_valid() { case $1 in all|pmp|upnp) return 0 ;; esac; return 1; }
portmap_env() {
    local m=${NATLAB_PORTMAP:-all}
    portmap_valid "$m" || die "bad NATLAB_PORTMAP=$m (all, pmp or upnp)"
    echo "$m"
}
# the mode a router's miniupnpd runs in now (set by up, restart-upnp, portmap)
portmap_of() {
    local m
    m=$(cat "$RUN/portmap-$1" 2>/dev/null) && portmap_valid "$m" && { echo "$m"; return 0; }
    portmap_env
}

miniupnpd_conf() { # router n portmap-mode
    local r=$1 n=$2 mode=${3:-all} v1=no upnp=yes pmp=yes
    [ "${NATLAB_IGD_V1:-0}" = 1 ] && v1=yes
    case $mode in
        pmp) upnp=no ;;
        upnp) pmp=no ;;
    esac
    cat <<EOF
# generated by natlab.sh for $r
ext_ifname=wan0
listening_ip=lan0
http_port=$UPNP_HTTP_PORT
# NATLAB_PORTMAP=$mode
enable_upnp=$upnp
enable_natpmp=$pmp
ipv6_disable=yes
# 203.0.113.0/24 is "reserved" for miniupnpd: it learns its address by STUN
# from the lab's coturn on srv instead (see docs/lab.md).
ext_perform_stun=yes
ext_stun_host=$SRV_IP1
ext_stun_port=$STUN_PORT
secure_mode=yes
system_uptime=no
notify_interval=60
clean_ruleset_interval=600
uuid=3d3f0e6c-5a1b-4c2d-9e8f-$(printf '%012d' "$n")
friendly_name=natlab $r IGD
force_igd_desc_v1=$v1
min_lifetime=120
max_lifetime=86400
lease_file=$RUN/miniupnpd-$r.leases
minissdpdsocket=$RUN/minissdpd-none.sock
allow 1024-65535 192.168.$n.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
}

# miniupnpd on $PCP6_ROUTER (NATLAB_V6=1): PCP only (enable_upnp=no: no HTTP,
# no SSDP), IPv6 on, its pinholes in table inet lab chain miniupnpd (it
# always uses the inet family). Every IPv4 mapping is denied (and IPv4 5351
# is rejected by the router anyway); it has no public IPv4 address (no STUN),
# which only disables IPv4 port forwarding: an IPv6 PCP MAP opens a pinhole
# for the client's own address (miniupnpd's CreatePCPMap_FW; the external
# address is the internal one, the external port the internal one).
miniupnpd6_conf() { # router n
    local r=$1 n=$2
    cat <<EOF
# generated by natlab.sh for $r (IPv6 PCP firewall)
ext_ifname=wan0
listening_ip=lan0
enable_upnp=no
enable_natpmp=yes
ipv6_disable=no
upnp_table_name=lab
upnp_forward_chain=miniupnpd
upnp_nat_table_name=miniupnpd_nat
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
secure_mode=yes
system_uptime=no
clean_ruleset_interval=600
uuid=3d3f0e6c-5a1b-4c2d-9e8f-$(printf '%012d' "$n")
friendly_name=natlab $r firewall
min_lifetime=120
max_lifetime=86400
lease_file=$RUN/miniupnpd-$r.leases
minissdpdsocket=$RUN/minissdpd-none.sock
deny 0-65535 0.0.0.0/0 0-65535
EOF
}
start_miniupnpd6() { # router n
    local r=$1 n=$2
    miniupnpd6_conf "$r" "$n" >"$RUN/miniupnpd-$r.conf"
    start_daemon "miniupnpd-$r" "$r" miniupnpd -f "$RUN/miniupnpd-$r.conf" -d \
        -P "$RUN/miniupnpd-$r.daemon.pid"
}
# its IPv6 PCP socket ([::]:5351) is bound: requests queue from then on
pcp6_bound() { # router
    ip netns exec "$(ns "$1")" ss -Hlun 2>/dev/null | grep -qF "[::]:$PMP_PORT "
}

# Options that change the built lab; `up` rebuilds when they differ.
config_line() {
    echo "delay=${NATLAB_DELAY:-} loss=${NATLAB_LOSS:-} igd_v1=${NATLAB_IGD_V1:-0} portmap=${NATLAB_PORTMAP:-all}$([ "$LAB_V6" = 1 ] && echo " v6=1")"
}

# "20ms" / "20" (ms) / "1.5s" / "500us" -> microseconds
parse_delay_us() {
    local v=$1
    awk -v v="$v" 'BEGIN {
        if (match(v, /^[0-9]+(\.[0-9]+)?/) == 0) exit 1
        num = substr(v, 1, RLENGTH); unit = substr(v, RLENGTH + 1)
        if (unit == "" || unit == "ms") m = 1000
        else if (unit == "s") m = 1000000
        else if (unit == "us") m = 1
        else exit 1
        printf "%d\n", num * m }'
}
# "5%" / "0.05" -> probability
parse_loss_p() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /%$/) { sub(/%$/, "", v); p = v / 100 } else p = v + 0
        if (p < 0 || p > 1) exit 1
        printf "%.6f\n", p }'
}

coturn_ready() {
    # a real STUN Binding request from pub must get an answer from coturn
    local req='\x00\x01\x00\x00\x21\x12\xa4\x42\x6e\x61\x74\x6c\x61\x62\x72\x65\x61\x64\x79\x31'
    local n
    n=$(printf '%b' "$req" | timeout 2 ip netns exec "$(ns pub)" \
        socat -T 0.3 - "UDP4:$SRV_IP1:$STUN_PORT" 2>/dev/null | wc -c) || return 1
    [ "$n" -ge 20 ]
}
coturn_bound() {
    # all four listening sockets (2 IPs x 2 ports) are bound in srv
    local s
    s=$(ip netns exec "$(ns srv)" ss -Hlun 2>/dev/null) || return 1
    local a
    for a in "$SRV_IP1:$STUN_PORT" "$SRV_IP1:$STUN_ALT_PORT" "$SRV_IP2:$STUN_PORT" "$SRV_IP2:$STUN_ALT_PORT"; do
        grep -qF "$a " <<<"$s" || return 1
    done
}

start_coturn() {
    [ -d "$RUN" ] || die "lab $PREFIX is not up"
    if pid_alive coturn; then return 0; fi
    # -n: do not read Debian's /etc/turnserver.conf (it sets no-rfc5780)
    start_daemon coturn srv turnserver -n --no-cli --no-tls --no-dtls \
        --stun-only --no-auth --listening-ip "$SRV_IP1" --listening-ip "$SRV_IP2" \
        --listening-port "$STUN_PORT" --alt-listening-port "$STUN_ALT_PORT" \
        --log-file stdout --simple-log --pidfile "$RUN/turnserver.pid" \
        --userdb "$RUN/turndb"
    touch "$RUN/coturn.wanted"
    poll 5 coturn_bound || die "coturn did not bind its ports (log: $RUN/log/coturn.log)"
}

start_miniupnpd() { # router n mode
    local r=$1 n=$2 mode=$3
    echo "$mode" >"$RUN/portmap-$r"
    miniupnpd_conf "$r" "$n" "$mode" >"$RUN/miniupnpd-$r.conf"
    start_daemon "miniupnpd-$r" "$r" miniupnpd -f "$RUN/miniupnpd-$r.conf" -d \
        -P "$RUN/miniupnpd-$r.daemon.pid"
}

# Restart the UPnP router's miniupnpd, as a router reboot would: its
# mappings and lease file are gone. v1|v2 picks the IGD version it describes
# (default: NATLAB_IGD_V1), all|pmp|upnp the protocols it speaks (default:
# the mode it runs in now, i.e. NATLAB_PORTMAP at `up` or the last
# `portmap`). Waits until it answers again (HTTP, or NAT-PMP in pmp mode); it
# learns its external address by STUN from whatever answers on srv:3478
# (coturn or natbroker).
cmd_restart_upnp() {
    need_root
    [ -d "$RUN" ] || die "lab $PREFIX is not up"
    local a mode
    mode=$(portmap_of r-upnp)
    for a in "$@"; do
        case $a in
            v1) NATLAB_IGD_V1=1 ;;
            v2) NATLAB_IGD_V1=0 ;;
            all|pmp|upnp) mode=$a ;;
            *) die "usage: restart-upnp [v1|v2] [all|pmp|upnp]" ;;
        esac
    done
    stop_daemon miniupnpd-r-upnp 5
    # a reboot loses the forwarding rules and the flows too (miniupnpd would
    # otherwise adopt the rules it finds as its own, with lease 0)
    local c
    for c in miniupnpd prerouting_miniupnpd postrouting_miniupnpd; do
        ip netns exec "$(ns r-upnp)" nft flush chain inet filter "$c" 2>/dev/null || true
    done
    ip netns exec "$(ns r-upnp)" conntrack -F >/dev/null 2>&1 || true
    rm -f "$RUN/miniupnpd-r-upnp.leases"
    start_miniupnpd r-upnp 6 "$mode"
    poll 20 miniupnpd_ready upnp 192.168.6.1 "$mode" ||
        die "miniupnpd on r-upnp does not answer ($(portmap_what "$mode")) after the restart"
    log "miniupnpd on r-upnp restarted (IGD v$([ "${NATLAB_IGD_V1:-0}" = 1 ] && echo 1 || echo 2), portmap $mode)"
}

# Switch r-upnp's miniupnpd to MODE (all|pmp|upnp) at runtime: a restart as
# above, so every mapping is gone.
cmd_portmap() {
    { [ $# -eq 1 ] && portmap_valid "$1"; } || die "usage: portmap all|pmp|upnp"
    cmd_restart_upnp "$1"
}

setup_shaping() {
    local delay=${NATLAB_DELAY:-} loss=${NATLAB_LOSS:-} us=0 p=0.000000 port
    [ -n "$delay" ] && { us=$(parse_delay_us "$delay") || die "bad NATLAB_DELAY=$delay"; }
    [ -n "$loss" ] && { p=$(parse_loss_p "$loss") || die "bad NATLAB_LOSS=$loss"; }
    [ "$us" -gt 0 ] || [ "$p" != 0.000000 ] || return 0
    if [ "$us" -gt 0 ]; then
        local src=$SELF_DIR/nfq_delay.c bin=$RUN/nfq_delay
        [ -f "$src" ] || die "missing $src"
        cc -O2 -Wall -Wextra -o "$bin" "$src" -lnetfilter_queue -lnfnetlink ||
            die "cannot build nfq_delay (run: $SELF deps)"
        start_daemon nfq_delay inet "$bin" -q 0 -d "$us"
        poll 3 grep -q "ready" "$RUN/log/nfq_delay.log" ||
            die "nfq_delay did not start (log: $RUN/log/nfq_delay.log)"
    fi
    nsx inet sh -c 'echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables'
    shape_rules "$us" >"$RUN/shape.rules"
    nsx inet iptables-restore --noflush <"$RUN/shape.rules"
    # NATLAB_V6: the same chain in ip6tables, into the same queue (nfq_delay
    # copies metadata only: it never looks at a header, so it holds either
    # family alike); neighbour discovery passes unshaped, as ARP does
    if [ "$LAB_V6" = 1 ]; then
        nsx inet sh -c 'echo 1 >/proc/sys/net/bridge/bridge-nf-call-ip6tables'
        shape_rules "$us" 6 >"$RUN/shape6.rules"
        nsx inet ip6tables-restore --noflush <"$RUN/shape6.rules"
    fi
    # The loss starts at wait-ready's "ready" (start_loss): the miniupnpds'
    # STUN at start (r-cgn's crosses the bridge some six times) would
    # otherwise fail and stall them past wait-ready's budget.
    [ "$p" != 0.000000 ] &&
        printf '*filter\n-I lab_shape 1 -m statistic --mode random --probability %s -j DROP\nCOMMIT\n' "$p" \
            >"$RUN/shape-loss.rules"
    log "shaping: delay ${us}us per crossing, loss p=$p per crossing (the loss from wait-ready on)$([ "$LAB_V6" = 1 ] && echo ", IPv4 and IPv6")"
}

# The shaping chain for iptables-restore (args: delay-us [6]): every packet
# entering the internet bridge at one of its ports goes through lab_shape
# once. With 6 (ip6tables): neighbour solicitations and advertisements are
# accepted first, unshaped, as ARP is (ebtables-level, never seen here).
shape_rules() {
    local us=$1 fam=${2:-4} port
    echo "*filter"
    echo ":lab_shape - [0:0]"
    if [ "$fam" = 6 ]; then
        echo "-A FORWARD -p ipv6-icmp --icmpv6-type neighbour-solicitation -j ACCEPT"
        echo "-A FORWARD -p ipv6-icmp --icmpv6-type neighbour-advertisement -j ACCEPT"
    fi
    for port in $(inet_ports); do
        echo "-A FORWARD -m physdev --physdev-in $port -j lab_shape"
    done
    [ "$us" -gt 0 ] && echo "-A lab_shape -j NFQUEUE --queue-num 0 --queue-bypass"
    echo "COMMIT"
}

# The loss NATLAB_LOSS asks for, once the routers are ready (setup_shaping).
start_loss() {
    [ -f "$RUN/shape-loss.rules" ] && [ ! -f "$RUN/shape-loss.on" ] || return 0
    nsx inet iptables-restore --noflush <"$RUN/shape-loss.rules" || die "cannot start the loss"
    if [ "$LAB_V6" = 1 ]; then
        nsx inet ip6tables-restore --noflush <"$RUN/shape-loss.rules" || die "cannot start the IPv6 loss"
    fi
    : >"$RUN/shape-loss.on"
    log "shaping: loss on"
}

inet_ports() {
    echo srv pub r-isp
    local r; for r in "${ROUTERS[@]}"; do
        [ "${r%%:*}" = r-cgn ] || echo "${r%%:*}"
    done
}

# NATLAB_V6: routes from an internet node (srv, pub, a v6 router) to every
# other v6 router's LAN 2001:db8:N::/64, via that router's WAN 2001:db8::1:N
v6_routes() {
    local node=$1 r name n typ hosts
    for r in "${ROUTERS[@]}"; do
        IFS=: read -r name n typ hosts <<<"$r"
        case $typ in *+*) [ "$name" = "$node" ] ||
            q_conf "$node" "route add 2001:db8:$n::/64 via 2001:db8::1:$n" ;;
        esac
    done
}

build() {
    local t0 node r name n typ hosts h i wan
    t0=$(now_ms)
    mkdir -p "$RUN/pid" "$RUN/log" "$RUN/ip"
    config_line >"$RUN/config"

    # queue the topology
    bridge_add inet br0
    veth srv eth0 inet srv
    q_conf srv "addr add $SRV_IP1/24 dev eth0"
    q_conf srv "addr add $SRV_IP2/24 dev eth0"
    q_conf srv "link set eth0 up"
    port_up inet srv br0
    veth pub eth0 inet pub
    q_conf pub "addr add $PUB_IP/24 dev eth0"
    q_conf pub "link set eth0 up"
    port_up inet pub br0
    if [ "$LAB_V6" = 1 ]; then
        q_conf srv "addr add $SRV6_IP1/64 dev eth0 nodad"
        # deprecated (preferred_lft 0), like a v4 secondary: never picked as
        # a source, so a wildcard socket on srv answers from ::10 (else the
        # kernel picks ::11, the newer); binding to ::11 works as usual
        q_conf srv "addr add $SRV6_IP2/64 dev eth0 nodad preferred_lft 0"
        q_conf pub "addr add $PUB6_IP/64 dev eth0 nodad"
        v6_routes srv
        v6_routes pub
    fi
    # carrier router r-isp: WAN on the internet, inside bridge cgn0
    veth r-isp wan0 inet r-isp
    q_conf r-isp "addr add $ISP_WAN/24 dev wan0"
    q_conf r-isp "link set wan0 up"
    port_up inet r-isp br0
    bridge_add r-isp cgn0
    q_conf r-isp "addr add $ISP_IN/24 dev cgn0"
    isp_nft >"$RUN/nft-r-isp.nft"

    for r in "${ROUTERS[@]}"; do
        IFS=: read -r name n typ hosts <<<"$r"
        if [ "$name" = r-cgn ]; then
            wan=$CGN_WAN
            veth r-cgn wan0 r-isp r-cgn
            q_conf r-cgn "addr add $wan/24 dev wan0"
            q_conf r-cgn "link set wan0 up"
            q_conf r-cgn "route add default via $ISP_IN"
            port_up r-isp r-cgn cgn0
        else
            wan=203.0.113.$((100 + n))
            veth "$name" wan0 inet "$name"
            case $typ in none+*) ;; *) q_conf "$name" "addr add $wan/24 dev wan0" ;; esac
            [ "$typ" = hairpin ] && q_conf "$name" "addr add $HP_WAN2/24 dev wan0"
            q_conf "$name" "link set wan0 up"
            port_up inet "$name" br0
        fi
        bridge_add "$name" lan0
        case $typ in none+*) ;; *) q_conf "$name" "addr add 192.168.$n.1/24 dev lan0" ;; esac
        case $typ in *+*) # NATLAB_V6: v6 WAN and routed LAN, routes to the other v6 LANs
            q_conf "$name" "addr add 2001:db8::1:$n/64 dev wan0 nodad"
            q_conf "$name" "addr add 2001:db8:$n::1/64 dev lan0 nodad"
            v6_routes "$name" ;;
        esac
        i=2
        for h in $hosts; do
            veth "$name" "$h" "$h" eth0
            port_up "$name" "$h" lan0
            case $typ in none+*) ;; *)
                q_conf "$h" "addr add 192.168.$n.$i/24 dev eth0" ;;
            esac
            q_conf "$h" "link set eth0 up"
            case $typ in none+*) ;; *)
                q_conf "$h" "route add default via 192.168.$n.1"
                # SSDP (239.255.255.250) needs an explicit multicast route
                q_conf "$h" "route add 224.0.0.0/4 dev eth0" ;;
            esac
            case $typ in *+*)
                q_conf "$h" "addr add 2001:db8:$n::$i/64 dev eth0 nodad"
                q_conf "$h" "route add ::/0 via 2001:db8:$n::1" ;;
            esac
            i=$((i + 1))
        done
        router_nft "$typ" "$wan" "$n" "$name" >"$RUN/nft-$name.nft"
    done

    # build it
    for node in $ALL_NODES; do echo "netns add $(ns "$node")"; done >"$RUN/ip/netns"
    ip -b "$RUN/ip/netns" || { echo "natlab: ip netns add failed" >&2; return 1; }
    par_nodes "$ALL_NODES" ns_init {} || return 1
    par_nodes "$ALL_NODES" ip_batch {} create || return 1
    par_nodes "$ALL_NODES" ip_batch {} conf || return 1

    setup_shaping
    start_coturn
    for r in "${ROUTERS[@]}"; do
        IFS=: read -r name n typ hosts <<<"$r"
        case $typ in upnp|upnp-cgn) start_miniupnpd "$name" "$n" "$(portmap_env)" ;; esac
        if [ "$name" = "$PCP6_ROUTER" ]; then start_miniupnpd6 "$name" "$n"; fi
    done
    if [ "$LAB_V6" = 1 ]; then
        poll 5 pcp6_bound "$PCP6_ROUTER" ||
            die "miniupnpd on $PCP6_ROUTER did not bind [::]:$PMP_PORT (log: $RUN/log/miniupnpd-$PCP6_ROUTER.log)"
    fi
    date +%s >"$RUN/up"
    log "up in $(($(now_ms) - t0)) ms (miniupnpd on r-cgn needs ~9 s more: use wait-ready)"
}

# ---------------------------------------------------------------- state
ns_present() { [ -e "/run/netns/$(ns "$1")" ]; }
any_present() {
    [ -d "$RUN" ] && return 0
    local node
    for node in $ANY_NODES; do ns_present "$node" && return 0; done
    return 1
}

# health: prints problems, returns 0 when up & healthy
check_health() {
    local bad=0 node d
    [ -f "$RUN/up" ] || { echo "not fully built (no $RUN/up)"; bad=1; }
    for node in $ALL_NODES; do
        ns_present "$node" || { echo "namespace $(ns "$node") missing"; bad=1; }
    done
    for d in $(expected_daemons); do
        pid_alive "$d" || { echo "daemon $d not running"; bad=1; }
    done
    return $bad
}
expected_daemons() {
    [ -f "$RUN/coturn.wanted" ] && echo coturn
    echo miniupnpd-r-upnp miniupnpd-r-cgn
    if [ "$LAB_V6" = 1 ]; then echo "miniupnpd-$PCP6_ROUTER"; fi
    [ -f "$RUN/pid/nfq_delay.pid" ] && echo nfq_delay
    return 0
}

cmd_up() {
    need_root
    portmap_env >/dev/null
    if any_present; then
        if [ -f "$RUN/config" ] && [ "$(cat "$RUN/config")" != "$(config_line)" ]; then
            log "up with other options ($(cat "$RUN/config")): rebuilding"
            cmd_down
        elif check_health >/dev/null 2>&1; then
            log "already up"
            return 0
        else
            log "half-built or unhealthy lab found: tearing it down first"
            cmd_down
        fi
    fi
    # not in an `if`, so that set -e stays in force inside build; a failed
    # build leaves the half-built lab for inspection (logs in $RUN/log):
    # `down` removes it and the next `up` rebuilds it
    trap 'rc=$?; [ $rc -eq 0 ] || echo "natlab: up failed (exit $rc); see $RUN/log, then run: $SELF down" >&2' EXIT
    build
    trap - EXIT
}

cmd_down() {
    need_root
    local t0 f pid want pids=() node p
    t0=$(now_ms)
    # 1. processes we started, by recorded PID (only if still in our netns)
    if [ -d "$RUN/pid" ]; then
        for f in "$RUN"/pid/*.pid; do
            [ -e "$f" ] || continue
            read -r pid want <"$f" || continue
            [ -d "/proc/$pid" ] || continue
            [ "$(ip netns identify "$pid" 2>/dev/null)" = "$(ns "$want")" ] && pids+=("$pid")
        done
    fi
    # 2. whatever else runs inside our namespaces (one `ip -b` for all)
    local present=""
    for node in $ANY_NODES; do
        ns_present "$node" && present+="$(ns "$node") "
    done
    if [ -n "$present" ]; then
        for p in $(for node in $present; do echo "netns pids $node"; done |
                   ip -force -b - 2>/dev/null); do
            [ "$p" = "$$" ] || pids+=("$p")
        done
    fi
    kill_pids 3 "${pids[@]}"
    # 3. our namespaces only
    if [ -n "$present" ]; then
        for node in $present; do echo "netns del $node"; done | ip -force -b - ||
            echo "natlab: some namespaces could not be deleted" >&2
    fi
    rm -rf "$RUN"
    log "down in $(($(now_ms) - t0)) ms"
}

cmd_status() {
    need_root
    local node present=0 total=0 d problems
    for node in $ALL_NODES; do
        total=$((total + 1)); ns_present "$node" && present=$((present + 1))
    done
    echo "lab:        $PREFIX (run dir $RUN)"
    echo "namespaces: $present/$total present"
    if [ -d "$RUN" ]; then
        [ -f "$RUN/config" ] && echo "options:    $(cat "$RUN/config")"
        for d in coturn miniupnpd-r-upnp miniupnpd-r-cgn "miniupnpd-$PCP6_ROUTER" nfq_delay; do
            if [ -f "$RUN/pid/$d.pid" ]; then
                if pid_alive "$d"; then echo "daemon:     $d pid $(pid_of "$d") alive"
                else echo "daemon:     $d pid $(pid_of "$d") DEAD"; fi
            fi
        done
    fi
    if [ $present -eq 0 ] && [ ! -d "$RUN" ]; then
        echo "state:      down"; return 1
    fi
    if problems=$(check_health); then
        echo "state:      up"
        return 0
    fi
    echo "state:      unhealthy"
    sed 's/^/  - /' <<<"$problems"
    return 1
}

flush_router() {
    # conntrack -F exits 1 on an empty table: not an error
    nsx "$1" sh -c 'conntrack -F >/dev/null 2>&1; exit 0'
}
cmd_flush() {
    need_root
    local r
    for r in $ROUTER_NODES; do
        ns_present "$r" || die "lab $PREFIX is not up"
    done
    par_nodes "$ROUTER_NODES" flush_router {}
    nsx r-rc nft flush set inet lab peers
    nsx r-hr nft flush set inet lab remotes
}

http_ok() { # node host port: GET /rootDesc.xml answers 200
    # shellcheck disable=SC2016
    timeout 2 ip netns exec "$(ns "$1")" bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "GET /rootDesc.xml HTTP/1.0\r\nHost: %s:%s\r\n\r\n" "$0" "$1" >&3
        IFS= read -r line <&3 && [[ $line == "HTTP/1."?" 200"* ]]' "$2" "$3" 2>/dev/null
}

# A NAT-PMP public-address request (00 00) gets a 12-byte answer, whatever
# its result (r-cgn answers 3, network failure).
pmp_ok() { # node gateway
    timeout 3 ip netns exec "$(ns "$1")" /usr/bin/python3 "$SELF_DIR/pcp_probe.py" \
        --timeout 0.5 --tries 1 "$2" pmp-addr >/dev/null 2>&1
    case $? in 0|3) return 0 ;; esac
    return 1
}
# miniupnpd answers as its mode says: HTTP (all, upnp) or NAT-PMP (pmp)
miniupnpd_ready() { # host-node gateway mode
    case $3 in
        pmp) pmp_ok "$1" "$2" ;;
        *) http_ok "$1" "$2" "$UPNP_HTTP_PORT" ;;
    esac
}
portmap_what() {
    case $1 in pmp) echo "NAT-PMP on $PMP_PORT" ;; *) echo "HTTP on $UPNP_HTTP_PORT" ;; esac
}

cmd_wait_ready() {
    need_root
    local secs=${1:-30} end
    end=$(($(now_ms) + secs * 1000))
    left() { local l=$(((end - $(now_ms) + 999) / 1000)); [ $l -gt 0 ] && echo $l || echo 1; }
    check_health >/dev/null || die "lab $PREFIX is not up and healthy"
    if [ -f "$RUN/coturn.wanted" ]; then
        poll "$(left)" coturn_ready || die "coturn on srv does not answer STUN"
    fi
    local m
    m=$(portmap_of r-upnp)
    poll "$(left)" miniupnpd_ready upnp 192.168.6.1 "$m" ||
        die "miniupnpd on r-upnp does not answer ($(portmap_what "$m"))"
    m=$(portmap_of r-cgn)
    poll "$(left)" miniupnpd_ready cgn 192.168.11.1 "$m" ||
        die "miniupnpd on r-cgn does not answer ($(portmap_what "$m"))"
    start_loss
    log "ready"
}

usage() {
    cat <<EOF
usage: natlab.sh CMD [ARGS]   (root; NATLAB_PREFIX=$PREFIX)
  deps               install the packages the lab needs (apt)
  up                 build the lab (idempotent; rebuilds a half-built one)
  down               stop its processes, delete its namespaces and run dir
  status             report state; exit 0 if up and healthy
  wait-ready [SECS]  wait (default 30 s) until coturn answers STUN and both
                     miniupnpds answer: HTTP on port $UPNP_HTTP_PORT, or NAT-PMP
                     on UDP $PMP_PORT in portmap mode pmp
  flush              flush conntrack in all routers and the dynamic nft sets
  exec NODE CMD...   run CMD inside NODE's namespace
  addr NODE          the node's address (host: LAN, router: WAN)
  public NODE        the address the node appears from on the internet
                     (v6-only nodes: their IPv6 address)
  addr6 NODE         NATLAB_V6=1: the node's IPv6 address (no translation:
                     also its public one)
  router HOST        the router node a LAN host sits behind (e.g. fc -> r-fc)
  nodes              list node names
  start-coturn | stop-coturn   coturn on srv ($SRV_IP1/$SRV_IP2 : $STUN_PORT/$STUN_ALT_PORT)
  restart-upnp [v1|v2] [all|pmp|upnp]
                              restart miniupnpd on r-upnp like a router reboot
                              (mappings gone), optionally as IGD v1 or v2, or
                              in another portmap mode (default: its current one)
  portmap all|pmp|upnp        switch r-upnp's miniupnpd to that mode now (a
                              restart: mappings, its nft chains and conntrack
                              flushed); r-cgn keeps NATLAB_PORTMAP
options (environment, read by up):
  NATLAB_PREFIX=nl   namespace/run-dir prefix: two labs can run side by side
  NATLAB_DELAY=20ms  one-way delay per crossing of the internet bridge (IPv6 too)
  NATLAB_LOSS=5%     loss per crossing of the internet bridge, from wait-ready's
                     "ready" on (the routers start without it)
  NATLAB_IGD_V1=1    miniupnpd describes itself as IGD v1
  NATLAB_PORTMAP=all protocols both miniupnpds speak: all (UPnP + NAT-PMP/PCP),
                     pmp (NAT-PMP/PCP only, no HTTP/SSDP), upnp (UPnP only,
                     nothing on UDP $PMP_PORT)
  NATLAB_V6=1        also an IPv6 internet 2001:db8::/64 and the dual-stack and
                     v6-only routers r-d6 r-s6 r-o6 r-v6 r-b6 r-t6 r-e6 r-w6 (docs/lab.md); set
                     it for every command on such a lab (down removes either)
nodes: $ALL_NODES
EOF
}

# Serialize commands that change a lab: one lock file per prefix, kept in
# /run (outside the run dir, which `down` removes).
lock_lab() {
    exec 9>"/run/natlab-$PREFIX.lock"
    flock -w 60 9 || die "lab $PREFIX is busy (another natlab.sh holds /run/natlab-$PREFIX.lock)"
}

main() {
    local cmd=${1:-}
    [ $# -gt 0 ] && shift
    case $cmd in
        up|down|flush|start-coturn|stop-coturn|restart-upnp|portmap) need_root; lock_lab ;;
    esac
    case $cmd in
        deps) cmd_deps ;;
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        flush) cmd_flush ;;
        wait-ready) cmd_wait_ready "$@" ;;
        exec)
            [ $# -ge 2 ] || die "usage: exec NODE CMD..."
            is_node "$1" || die "unknown node $1"
            local node=$1; shift
            # The node's own config directory (natpeer's key and known
            # peers): the namespaces share one file system.
            local xdg=${LAB_XDG_ROOT:-$RUN/xdg}/$node
            mkdir -p -m 0700 "$xdg"
            exec ip netns exec "$(ns "$node")" env XDG_CONFIG_HOME="$xdg" "$@" ;;
        addr) { [ $# -eq 1 ] && is_node "$1"; } || die "usage: addr NODE"; node_addr "$1" ;;
        public) { [ $# -eq 1 ] && is_node "$1"; } || die "usage: public NODE"; node_public "$1" ;;
        addr6) { [ $# -eq 1 ] && is_node "$1" && [ "$LAB_V6" = 1 ]; } ||
                   die "usage: NATLAB_V6=1 natlab.sh addr6 NODE"
               node_addr6 "$1" || die "$1 has no IPv6 address" ;;
        router) { [ $# -eq 1 ] && is_node "$1"; } || die "usage: router HOST"
                local info; info=$(router_of_host "$1") || die "$1 is not behind a router"
                echo "${info%% *}" ;;
        nodes) echo "$ALL_NODES" ;;
        start-coturn) need_root; start_coturn ;;
        stop-coturn) need_root; rm -f "$RUN/coturn.wanted"; stop_daemon coturn 5 ;;
        restart-upnp) cmd_restart_upnp "$@" ;;
        portmap) cmd_portmap "$@" ;;
        -h|--help|help) usage ;;
        "") usage >&2; exit 2 ;;
        *) echo "natlab: unknown command $cmd" >&2; usage >&2; exit 2 ;;
    esac
}
main "$@"
