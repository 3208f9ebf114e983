/* peer/portmap/gateway.c - the default gateway from /proc/net/route text
 * (IPv4) or /proc/net/ipv6_route text (IPv6).
 *
 * Pure: no I/O, no malloc. Choices made here (see also gateway.h):
 * - Fields are split on runs of tabs and spaces (the kernel pads lines with
 *   spaces and the header has "Mask\t\t"). Interface names cannot contain
 *   either (dev_valid_name refuses whitespace).
 * - The whole text is checked even after a candidate is found, so a
 *   truncated or corrupted file is refused instead of half-trusted.
 * - Hex fields are read into a uint32_t and copied into the address with
 *   memcpy: the kernel printed the __be32 as a host integer, so its host
 *   representation is the network-order bytes, on either endianness.
 * - Metric is a u32 printed with %d, so "-1" is 4294967295. */
#include "peer/portmap/gateway.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define RTF_UP_ 0x0001
#define RTF_GATEWAY_ 0x0002
#define RTF_REJECT_ 0x0200
#define ROUTE_MIN_FIELDS 8 /* Iface .. Mask */
#define ROUTE_MAX_FIELDS 16

enum { F_IFACE, F_DEST, F_GATEWAY, F_FLAGS, F_REFCNT, F_USE, F_METRIC, F_MASK };

struct field {
	const char *p;
	size_t len;
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* min..max hex digits (at most 8) into *v. */
static bool parse_hex(const struct field *f, size_t min, size_t max, uint32_t *v)
{
	uint32_t x = 0;

	if (f->len < min || f->len > max)
		return false;
	for (size_t i = 0; i < f->len; i++) {
		int d = hexval(f->p[i]);

		if (d < 0)
			return false;
		x = x << 4 | (uint32_t)d;
	}
	*v = x;
	return true;
}

/* %d or %u of a 32-bit value: optional '-', 1..10 digits, within 32 bits;
 * the two's-complement u32 into *v. */
static bool parse_dec(const struct field *f, uint32_t *v)
{
	size_t i = 0;
	uint64_t x = 0;
	bool neg = false;

	if (f->len > 0 && f->p[0] == '-') {
		neg = true;
		i = 1;
	}
	if (f->len - i < 1 || f->len - i > 10)
		return false;
	for (; i < f->len; i++) {
		if (f->p[i] < '0' || f->p[i] > '9')
			return false;
		x = x * 10 + (uint64_t)(f->p[i] - '0');
	}
	if (neg ? x > (uint64_t)INT32_MAX + 1 : x > UINT32_MAX)
		return false;
	*v = neg ? (uint32_t)(0 - x) : (uint32_t)x;
	return true;
}

/* Splits line into at most max fields; returns the count, or max + 1 if there
 * are more. */
static size_t split(const char *line, size_t len, struct field *f, size_t max)
{
	size_t n = 0, i = 0;

	for (;;) {
		size_t start;

		while (i < len && is_blank(line[i]))
			i++;
		if (i == len)
			return n;
		if (n == max)
			return max + 1;
		start = i;
		while (i < len && !is_blank(line[i]))
			i++;
		f[n].p = line + start;
		f[n].len = i - start;
		n++;
	}
}

/* The best default route so far (either family: IPv4 uses ip[0..3]). */
struct candidate {
	bool found;
	uint32_t metric;
	uint8_t ip[16];
	char ifname[NB_GATEWAY_IFNAME_MAX];
};

/* Feed each line of a /proc route table to parse_line (the first to
 * `header` instead, when given): -EINVAL on a malformed or truncated
 * table, an empty one, or over the limits; else 0. */
static int parse_lines(const char *text, size_t len, bool (*header)(const char *, size_t),
		       int (*parse_line)(const char *, size_t, struct candidate *), struct candidate *c)
{
	size_t off = 0, lines = 0;

	if (memchr(text, '\0', len) != NULL)
		return -EINVAL;
	while (off < len) {
		const char *line = text + off;
		const char *nl = memchr(line, '\n', len - off);
		size_t n;

		if (nl == NULL) /* truncated: the kernel ends every line */
			return -EINVAL;
		n = (size_t)(nl - line);
		if (n > NB_GATEWAY_MAX_LINE || ++lines > NB_GATEWAY_MAX_LINES)
			return -EINVAL;
		if (lines == 1 && header != NULL) {
			if (!header(line, n))
				return -EINVAL;
		} else if (parse_line(line, n, c) < 0) {
			return -EINVAL;
		}
		off += n + 1;
	}
	return lines == 0 && header != NULL ? -EINVAL : 0;
}

/* One route line: -EINVAL if malformed, else 0 (and *c updated if it is a
 * better default route). */
static int parse_route(const char *line, size_t len, struct candidate *c)
{
	struct field f[ROUTE_MAX_FIELDS];
	uint32_t dest, gw, flags, mask, metric, scratch;
	size_t n = split(line, len, f, ROUTE_MAX_FIELDS);

	if (n < ROUTE_MIN_FIELDS || n > ROUTE_MAX_FIELDS)
		return -EINVAL;
	if (f[F_IFACE].len >= NB_GATEWAY_IFNAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < f[F_IFACE].len; i++) {
		unsigned char ch = (unsigned char)f[F_IFACE].p[i];

		if (ch < 0x20 || ch == 0x7f)
			return -EINVAL;
	}
	if (!parse_hex(&f[F_DEST], 8, 8, &dest) || !parse_hex(&f[F_GATEWAY], 8, 8, &gw) ||
	    !parse_hex(&f[F_FLAGS], 4, 8, &flags) || !parse_hex(&f[F_MASK], 8, 8, &mask) ||
	    !parse_dec(&f[F_METRIC], &metric))
		return -EINVAL;
	if (!parse_dec(&f[F_REFCNT], &scratch) || !parse_dec(&f[F_USE], &scratch))
		return -EINVAL;
	for (size_t i = ROUTE_MIN_FIELDS; i < n; i++) /* MTU, Window, IRTT */
		if (!parse_dec(&f[i], &scratch))
			return -EINVAL;

	if (dest != 0 || mask != 0 || gw == 0)
		return 0;
	if ((flags & (RTF_UP_ | RTF_GATEWAY_)) != (RTF_UP_ | RTF_GATEWAY_) || (flags & RTF_REJECT_))
		return 0;
	if (c->found && metric >= c->metric)
		return 0;
	c->found = true;
	c->metric = metric;
	memcpy(c->ip, &gw, 4); /* host representation = network order (see top) */
	memcpy(c->ifname, f[F_IFACE].p, f[F_IFACE].len);
	c->ifname[f[F_IFACE].len] = '\0';
	return 0;
}

/* /proc/net/route's header, from its first byte. */
static bool route_header(const char *line, size_t n)
{
	return n >= 5 && memcmp(line, "Iface", 5) == 0 && (n == 5 || is_blank(line[5]));
}

/* A whole table -> the best default route of `family` (its address is
 * 4 or 16 bytes of c.ip). */
static int parse_table(const char *text, size_t len, enum nb_family family,
		       bool (*header)(const char *, size_t),
		       int (*parse_line)(const char *, size_t, struct candidate *), struct nb_addr *gw,
		       char ifname[NB_GATEWAY_IFNAME_MAX])
{
	struct candidate c;

	if (text == NULL || gw == NULL || ifname == NULL)
		return -EINVAL;
	memset(&c, 0, sizeof(c));
	if (parse_lines(text, len, header, parse_line, &c) < 0)
		return -EINVAL;
	if (!c.found)
		return -ENOENT;
	memset(gw, 0, sizeof(*gw));
	gw->family = (uint8_t)family;
	memcpy(gw->ip, c.ip, family == NB_AF_INET ? 4 : 16);
	memcpy(ifname, c.ifname, NB_GATEWAY_IFNAME_MAX);
	return 0;
}

int nb_gateway_parse_proc_route(const char *text, size_t len, struct nb_addr *gw,
				char ifname[NB_GATEWAY_IFNAME_MAX])
{
	return parse_table(text, len, NB_AF_INET, route_header, parse_route, gw, ifname);
}

/* ---- IPv6: /proc/net/ipv6_route ---------------------------------------------------- */

enum { G6_DEST, G6_DPLEN, G6_SRC, G6_SPLEN, G6_NEXTHOP, G6_METRIC, G6_REFCNT, G6_USE, G6_FLAGS, G6_IFACE,
       G6_FIELDS };

/* Exactly 32 hex digits: %pi6, the 16 address bytes in network order. */
static bool parse_hex128(const struct field *f, uint8_t ip[16])
{
	if (f->len != 32)
		return false;
	for (size_t i = 0; i < 16; i++) {
		int hi = hexval(f->p[2 * i]), lo = hexval(f->p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		ip[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static bool iface_ok(const struct field *f)
{
	if (f->len == 0 || f->len >= NB_GATEWAY_IFNAME_MAX)
		return false;
	for (size_t i = 0; i < f->len; i++) {
		unsigned char ch = (unsigned char)f->p[i];

		if (ch < 0x20 || ch == 0x7f)
			return false;
	}
	return true;
}

static int parse_route6(const char *line, size_t len, struct candidate *c)
{
	static const uint8_t zero[16];
	struct field f[G6_FIELDS];
	uint8_t dest[16], src[16], hop[16];
	uint32_t dplen, splen, metric, flags, scratch;
	size_t n = split(line, len, f, G6_FIELDS);

	if (n != G6_FIELDS || !iface_ok(&f[G6_IFACE]))
		return -EINVAL;
	if (!parse_hex128(&f[G6_DEST], dest) || !parse_hex128(&f[G6_SRC], src) ||
	    !parse_hex128(&f[G6_NEXTHOP], hop) || !parse_hex(&f[G6_DPLEN], 2, 2, &dplen) ||
	    !parse_hex(&f[G6_SPLEN], 2, 2, &splen) || !parse_hex(&f[G6_METRIC], 8, 8, &metric) ||
	    !parse_hex(&f[G6_REFCNT], 8, 8, &scratch) || !parse_hex(&f[G6_USE], 8, 8, &scratch) ||
	    !parse_hex(&f[G6_FLAGS], 8, 8, &flags))
		return -EINVAL;
	if (dplen > 128 || splen > 128)
		return -EINVAL;
	if (dplen != 0 || splen != 0 || memcmp(hop, zero, 16) == 0)
		return 0;
	if ((flags & (RTF_UP_ | RTF_GATEWAY_)) != (RTF_UP_ | RTF_GATEWAY_) || (flags & RTF_REJECT_))
		return 0;
	if (c->found && metric >= c->metric)
		return 0;
	c->found = true;
	c->metric = metric;
	memcpy(c->ip, hop, 16);
	memcpy(c->ifname, f[G6_IFACE].p, f[G6_IFACE].len);
	c->ifname[f[G6_IFACE].len] = '\0';
	return 0;
}

int nb_gateway_parse_ipv6_route(const char *text, size_t len, struct nb_addr *gw,
				char ifname[NB_GATEWAY_IFNAME_MAX])
{
	return parse_table(text, len, NB_AF_INET6, NULL, parse_route6, gw, ifname);
}
