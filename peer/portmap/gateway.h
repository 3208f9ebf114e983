/* peer/portmap/gateway.h - the default gateway, parsed from the text of
 * /proc/net/route (IPv4) or /proc/net/ipv6_route (IPv6); the shell reads the
 * file, this only parses. Pure.
 *
 * The kernel's format (net/ipv4/fib_trie.c fib_route_seq_show): a header
 * line, then one line per route, tab-separated, padded with spaces to 127
 * characters, each ending in '\n':
 *
 *   Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT   ...\n
 *   eth0\t00000000\t0106A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0   ...\n
 *        |         |         |                |         |
 *        |         |         |                |         +- %08X, like Destination
 *        |         |         |                +- Metric, %d of a u32
 *        |         |         +- %04X: RTF_UP 0x1 | RTF_GATEWAY 0x2
 *        |         +- %08X of the __be32 read as a host integer: on
 *        |            little-endian "0106A8C0" is 192.168.6.1
 *        +- Destination, same encoding */
#ifndef NB_PEER_GATEWAY_H
#define NB_PEER_GATEWAY_H

#include <stddef.h>

#include "common/addr.h"

#define NB_GATEWAY_IFNAME_MAX 16 /* IFNAMSIZ, with the NUL */
#define NB_GATEWAY_MAX_LINES 4096
#define NB_GATEWAY_MAX_LINE 512

/* The IPv4 default route with the lowest metric (the first of equals):
 * Destination 00000000, Mask 00000000, flags with RTF_UP|RTF_GATEWAY (0x3)
 * and without RTF_REJECT (0x200), gateway not 0.0.0.0. Fields are hex in
 * host byte order as the kernel prints them (little-endian on x86: "0106A8C0"
 * is 192.168.6.1); decoded on the host's own endianness.
 * Returns 0 and sets *gw (NB_AF_INET, port 0) and ifname (NUL-terminated,
 * < 16 bytes); -ENOENT no default route; -EINVAL malformed text: no "Iface"
 * header first, a NUL byte, a line not ending in '\n' (truncated), more than
 * 4096 lines, a line over 512 bytes, a route line with fewer than 8 fields or
 * more than 16, a hex field not of exactly its width (8, Flags 4), a decimal
 * field that is not one, an interface name of 16 bytes or more or with
 * control characters. Outputs untouched on failure. */
int nb_gateway_parse_proc_route(const char *text, size_t len, struct nb_addr *gw,
				char ifname[NB_GATEWAY_IFNAME_MAX]);

/* The IPv6 default route from /proc/net/ipv6_route (net/ipv6/route.c
 * rt6_info_seq_show): no header; one line per route, ten fields separated
 * by spaces (the device right-aligned by %8s), e.g. (one line):
 *
 *   00000000000000000000000000000000 00 00000000000000000000000000000000 00
 *   20010db8001300000000000000000001 00000400 00000001 00000000 00000003     eth0\n
 *
 *   field  1 destination  %pi6: 32 hex digits, the 16 bytes in network order
 *          2 its prefix length %02x
 *          3 source %pi6, 4 its prefix length %02x
 *          5 next hop %pi6 (here 2001:db8:13::1)
 *          6 metric, 7 refcnt, 8 use, 9 flags: %08x each
 *         10 device
 *
 * The route with destination ::/0, source ::/0, a non-zero next hop,
 * RTF_UP|RTF_GATEWAY and not RTF_REJECT (the kernel's "lo" reject default
 * is one), lowest metric (the first of equals). Returns 0 and sets *gw
 * (NB_AF_INET6, port 0; a link-local next hop is only meaningful with
 * `ifname`'s index as its scope) and ifname; -ENOENT none; -EINVAL
 * malformed: a NUL byte, a line not ending in '\n', more than 4096 lines or
 * one over 512 bytes, not exactly 10 fields, an address not of 32 hex
 * digits, a length not of 2 (or over 128), metric/refcnt/use/flags not of 8,
 * a device name empty, of 16 bytes or more, or with control characters.
 * Outputs untouched on failure. */
int nb_gateway_parse_ipv6_route(const char *text, size_t len, struct nb_addr *gw,
				char ifname[NB_GATEWAY_IFNAME_MAX]);

#endif
