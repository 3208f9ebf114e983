/* tests/unit/test_gateway.c - the default gateway from /proc/net/route text:
 * a capture from a real host, several defaults with metrics, routes that are
 * not candidates (not UP, no GATEWAY, REJECT, non-zero mask), header-only,
 * garbage, every-prefix truncation, every byte of the capture changed, the
 * line and count limits, interface name lengths, and the byte order; and the
 * IPv6 default from /proc/net/ipv6_route text (a lab capture, link-local and
 * global next hops, metrics, non-candidates, prefixes, mutations, limits). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer/portmap/gateway.h"

#define HEADER                                                                                   \
	"Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT" \
	"                                                       \n"
#define PAD "                                                                               \n"

/* /proc/net/route of the build host (Debian 12 container, x86_64), verbatim:
 * default via 192.0.2.1 dev eth0, and the on-link 192.0.2.0/24. */
static const char captured[] = HEADER
	"eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0" PAD
	"eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0" PAD;

/* parse from an exact-size heap copy; outputs untouched on failure */
static int parse(const char *text, size_t len, struct nb_addr *gw, char ifname[16])
{
	struct nb_addr gw_sentinel;
	char if_sentinel[16];
	char *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	if (len)
		memcpy(copy, text, len);
	memset(gw, 0xA5, sizeof(*gw));
	memset(ifname, 0x5A, 16);
	memcpy(&gw_sentinel, gw, sizeof(gw_sentinel));
	memcpy(if_sentinel, ifname, 16);
	rc = nb_gateway_parse_proc_route(copy, len, gw, ifname);
	free(copy);
	if (rc != 0) {
		assert_true(rc == -EINVAL || rc == -ENOENT);
		assert_memory_equal(gw, &gw_sentinel, sizeof(*gw));
		assert_memory_equal(ifname, if_sentinel, 16);
	} else {
		assert_int_equal(gw->family, NB_AF_INET);
		assert_int_equal(gw->port, 0);
		assert_non_null(memchr(ifname, '\0', 16));
	}
	return rc;
}

static int parse_str(const char *text, struct nb_addr *gw, char ifname[16])
{
	return parse(text, strlen(text), gw, ifname);
}

/* The kernel's %08X of a __be32: the address's bytes read as a host integer. */
static void hex_of(const char *ip, char out[9])
{
	struct nb_addr a;
	uint32_t v;

	assert_int_equal(nb_addr_parse(ip, true, &a), 0);
	memcpy(&v, a.ip, 4);
	snprintf(out, 9, "%08X", v);
}

/* One route line as the kernel prints it. */
static void route(char *buf, size_t cap, const char *ifname, const char *dest, const char *gw,
		  unsigned flags, const char *metric, const char *mask)
{
	char d[9], g[9], m[9];
	size_t n = strlen(buf);

	hex_of(dest, d);
	hex_of(gw, g);
	hex_of(mask, m);
	snprintf(buf + n, cap - n, "%s\t%s\t%s\t%04X\t0\t0\t%s\t%s\t0\t0\t0%-80s\n", ifname, d, g, flags,
		 metric, m, "");
}

static void assert_gw(const struct nb_addr *gw, const char *ip)
{
	char buf[NB_ADDR_STRLEN];

	assert_string_equal(nb_addr_format_ip(gw, buf, sizeof(buf)), ip);
}

static void test_captured(void **state)
{
	struct nb_addr gw;
	char ifname[16];

	(void)state;
	assert_int_equal(parse(captured, sizeof(captured) - 1, &gw, ifname), 0);
	assert_gw(&gw, "192.0.2.1");
	assert_string_equal(ifname, "eth0");
}

static void test_byte_order(void **state)
{
	char hex[9], text[512] = HEADER;
	struct nb_addr gw;
	char ifname[16];

	(void)state;
	hex_of("192.168.6.1", hex);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	assert_string_equal(hex, "0106A8C0"); /* as the header's example says */
#else
	assert_string_equal(hex, "C0A80601");
#endif
	route(text, sizeof(text), "wlp2s0", "0.0.0.0", "192.168.6.1", 0x3, "600", "0.0.0.0");
	assert_int_equal(parse_str(text, &gw, ifname), 0);
	assert_gw(&gw, "192.168.6.1");
	assert_string_equal(ifname, "wlp2s0");
}

static void test_metrics(void **state)
{
	char text[2048] = HEADER;
	struct nb_addr gw;
	char ifname[16];

	(void)state;
	route(text, sizeof(text), "wlan0", "0.0.0.0", "192.168.1.1", 0x3, "600", "0.0.0.0");
	route(text, sizeof(text), "eth0", "0.0.0.0", "10.0.0.1", 0x3, "100", "0.0.0.0");
	route(text, sizeof(text), "eth1", "0.0.0.0", "10.1.0.1", 0x3, "100", "0.0.0.0"); /* tie: first */
	route(text, sizeof(text), "vpn0", "0.0.0.0", "10.9.0.1", 0x3, "-1", "0.0.0.0"); /* 2^32-1 */
	route(text, sizeof(text), "eth0", "10.0.0.0", "0.0.0.0", 0x1, "100", "255.255.255.0");
	assert_int_equal(parse_str(text, &gw, ifname), 0);
	assert_gw(&gw, "10.0.0.1");
	assert_string_equal(ifname, "eth0");
	route(text, sizeof(text), "usb0", "0.0.0.0", "172.20.10.1", 0x3, "0", "0.0.0.0");
	assert_int_equal(parse_str(text, &gw, ifname), 0);
	assert_gw(&gw, "172.20.10.1");
	assert_string_equal(ifname, "usb0");
}

static void test_not_candidates(void **state)
{
	static const struct {
		unsigned flags;
		const char *dest, *gw, *mask;
	} cases[] = {
		{ 0x0002, "0.0.0.0", "192.168.1.1", "0.0.0.0" },   /* not UP */
		{ 0x0001, "0.0.0.0", "192.168.1.1", "0.0.0.0" },   /* no GATEWAY flag */
		{ 0x0000, "0.0.0.0", "192.168.1.1", "0.0.0.0" },
		{ 0x0203, "0.0.0.0", "192.168.1.1", "0.0.0.0" },   /* REJECT */
		{ 0x0003, "0.0.0.0", "0.0.0.0", "0.0.0.0" },       /* no gateway address */
		{ 0x0003, "10.0.0.0", "192.168.1.1", "0.0.0.0" },  /* not a default */
		{ 0x0003, "0.0.0.0", "192.168.1.1", "128.0.0.0" }, /* 0/1, the VPN trick */
	};
	struct nb_addr gw;
	char ifname[16];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[1024] = HEADER;

		route(text, sizeof(text), "eth0", cases[i].dest, cases[i].gw, cases[i].flags, "0",
		      cases[i].mask);
		assert_int_equal(parse_str(text, &gw, ifname), -ENOENT);
		/* with extra flags (DYNAMIC 0x10, MODIFIED 0x20) a real one still counts */
		route(text, sizeof(text), "eth9", "0.0.0.0", "192.0.2.254", 0x33, "5000", "0.0.0.0");
		assert_int_equal(parse_str(text, &gw, ifname), 0);
		assert_gw(&gw, "192.0.2.254");
		assert_string_equal(ifname, "eth9");
	}
}

static void test_header_only_and_garbage(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"garbage\n",
		"Iface",                                           /* no newline */
		"iface\tDestination\n",                            /* case matters */
		"Ifacex\tDestination\n",
		"\tIface\tDestination\n",                         /* not from the first byte */
		" Iface\n",
		HEADER "eth0\n",                                   /* too few fields */
		HEADER "eth0\t00000000\t010200C0\t0003\t0\t0\t0\n", /* 7 fields */
		HEADER "eth0\t0000000\t010200C0\t0003\t0\t0\t0\t00000000\n",  /* 7 hex digits */
		HEADER "eth0\t000000000\t010200C0\t0003\t0\t0\t0\t00000000\n", /* 9 */
		HEADER "eth0\t00000000\t010200CG\t0003\t0\t0\t0\t00000000\n",  /* not hex */
		HEADER "eth0\t00000000\t010200C0\t003\t0\t0\t0\t00000000\n",   /* flags 3 digits */
		HEADER "eth0\t00000000\t010200C0\t0003\t0\t0\tx\t00000000\n",  /* metric */
		HEADER "eth0\t00000000\t010200C0\t0003\t0\t0\t-\t00000000\n",
		HEADER "eth0\t00000000\t010200C0\t0003\t0\t0\t4294967296\t00000000\n",
		HEADER "eth0\t00000000\t010200C0\t0003\t0\t0\t-2147483649\t00000000\n",
		HEADER "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\tz\n", /* IRTT */
		HEADER "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\t0\t0\t0\t0\t0\t0\n",
		HEADER "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\n", /* empty line */
		HEADER "eth\x01\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n",
		HEADER "abcdefghijklmnop\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n", /* 16 */
	};
	struct nb_addr gw;
	char ifname[16];

	(void)state;
	assert_int_equal(parse_str(HEADER, &gw, ifname), -ENOENT);
	assert_int_equal(parse_str("Iface\n", &gw, ifname), -ENOENT);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse_str(bad[i], &gw, ifname), -EINVAL);
	/* 15 bytes is the longest name; 8 fields (no MTU/Window/IRTT) suffice */
	assert_int_equal(parse_str(HEADER "abcdefghijklmno\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n",
				   &gw, ifname),
			 0);
	assert_string_equal(ifname, "abcdefghijklmno");
	/* a NUL inside the text */
	assert_int_equal(parse(captured, sizeof(captured), &gw, ifname), -EINVAL);
	assert_int_equal(nb_gateway_parse_proc_route(NULL, 0, &gw, ifname), -EINVAL);
	assert_int_equal(nb_gateway_parse_proc_route(captured, 10, NULL, ifname), -EINVAL);
	assert_int_equal(nb_gateway_parse_proc_route(captured, 10, &gw, NULL), -EINVAL);
}

/* Every prefix of the capture: whole lines only; the default route is the
 * first route line. */
static void test_truncation(void **state)
{
	size_t len = sizeof(captured) - 1;
	size_t end1 = (size_t)(strchr(captured, '\n') - captured) + 1;
	size_t end2 = (size_t)(strchr(captured + end1, '\n') - captured) + 1;
	struct nb_addr gw;
	char ifname[16];

	(void)state;
	for (size_t n = 0; n <= len; n++) {
		int want = -EINVAL;

		if (n == end1)
			want = -ENOENT;
		else if (n == end2 || n == len)
			want = 0;
		assert_int_equal(parse(captured, n, &gw, ifname), want);
	}
}

/* Every byte of the capture replaced by a few others: no crash, and a
 * success always names a gateway; the route fields are all checked. */
static void test_mutations(void **state)
{
	static const char subst[] = { '\0', '\n', '\t', ' ', 'G', '0', 'F', '-', '\x7f', '\xff' };
	size_t len = sizeof(captured) - 1;
	char *buf = malloc(len);
	struct nb_addr gw;
	char ifname[16];

	(void)state;
	assert_non_null(buf);
	for (size_t i = 0; i < len; i++) {
		for (size_t k = 0; k < sizeof(subst); k++) {
			int rc;

			memcpy(buf, captured, len);
			if (buf[i] == subst[k])
				continue;
			buf[i] = subst[k];
			rc = parse(buf, len, &gw, ifname);
			if (rc == 0)
				assert_true(gw.ip[0] != 0 || gw.ip[1] != 0 || gw.ip[2] != 0 || gw.ip[3] != 0);
		}
	}
	free(buf);
}

/* appends s (no strcat in this tree) */
static void app(char *text, size_t cap, const char *s)
{
	size_t n = strlen(text);

	snprintf(text + n, cap - n, "%s", s);
}

/* ---- IPv6: /proc/net/ipv6_route ----------------------------------------------- */

/* /proc/net/ipv6_route of host d6 in the lab (NATLAB_V6=1), verbatim: the
 * on-link 2001:db8:13::/64 and fe80::/64, the default via 2001:db8:13::1
 * (metric 0x400), then the local and multicast routes and the kernel's
 * "lo" reject default (flags 0x00200200, no next hop). */
#define R6(d, dl, h, m, f, dev) \
	d " " dl " 00000000000000000000000000000000 00 " h " " m " 00000001 00000000 " f " " dev "\n"
#define Z32 "00000000000000000000000000000000"
static const char captured6[] =
	R6("20010db8001300000000000000000000", "40", Z32, "00000100", "00000001", "    eth0")
	R6("fe800000000000000000000000000000", "40", Z32, "00000100", "00000001", "    eth0")
	R6(Z32, "00", "20010db8001300000000000000000001", "00000400", "00000003", "    eth0")
	R6("00000000000000000000000000000001", "80", Z32, "00000000", "80200001", "      lo")
	R6("20010db8001300000000000000000002", "80", Z32, "00000000", "80200001", "    eth0")
	R6("ff000000000000000000000000000000", "08", Z32, "00000100", "00000001", "    eth0")
	R6(Z32, "00", Z32, "ffffffff", "00200200", "      lo");

static int parse6(const char *text, size_t len, struct nb_addr *gw, char ifname[16])
{
	struct nb_addr gw_sentinel;
	char if_sentinel[16];
	char *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	if (len)
		memcpy(copy, text, len);
	memset(gw, 0xA5, sizeof(*gw));
	memset(ifname, 0x5A, 16);
	memcpy(&gw_sentinel, gw, sizeof(gw_sentinel));
	memcpy(if_sentinel, ifname, 16);
	rc = nb_gateway_parse_ipv6_route(copy, len, gw, ifname);
	free(copy);
	if (rc != 0) {
		assert_true(rc == -EINVAL || rc == -ENOENT);
		assert_memory_equal(gw, &gw_sentinel, sizeof(*gw));
		assert_memory_equal(ifname, if_sentinel, 16);
	} else {
		assert_int_equal(gw->family, NB_AF_INET6);
		assert_int_equal(gw->port, 0);
		assert_non_null(memchr(ifname, '\0', 16));
	}
	return rc;
}

static void test_ipv6(void **state)
{
	static const uint8_t want[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0x13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	static const uint8_t ll[16] = { 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	/* a router advertisement's default: link-local next hop, flags with
	 * RTF_ADDRCONF|RTF_DEFAULT, metric 1024; and a better one by metric */
	static const char ra[] =
		R6(Z32, "00", "fe800000000000000000000000000001", "00000400", "00450003", "   wlan0")
		R6(Z32, "00", "20010db8001300000000000000000001", "00000064", "00000003", "    eth0")
		R6(Z32, "00", "20010db8001300000000000000000009", "00000064", "00000003", "    eth1");
	/* not candidates: not UP, no GATEWAY, REJECT, a prefix, a source prefix */
	static const char none[] =
		R6(Z32, "00", "20010db8001300000000000000000001", "00000001", "00000002", "    eth0")
		R6(Z32, "00", "20010db8001300000000000000000001", "00000001", "00000001", "    eth0")
		R6(Z32, "00", "20010db8001300000000000000000001", "00000001", "00000203", "    eth0")
		R6(Z32, "01", "20010db8001300000000000000000001", "00000001", "00000003", "    eth0")
		"00000000000000000000000000000000 00 20010db8000000000000000000000000 30 "
		"20010db8001300000000000000000001 00000001 00000001 00000000 00000003     eth0\n";
	size_t len = sizeof(captured6) - 1;
	char *buf = malloc(len);
	struct nb_addr gw;
	char ifname[16];

	(void)state;
	assert_non_null(buf);
	assert_int_equal(parse6(captured6, len, &gw, ifname), 0);
	assert_memory_equal(gw.ip, want, 16);
	assert_string_equal(ifname, "eth0");
	assert_int_equal(parse6(ra, sizeof(ra) - 1, &gw, ifname), 0);
	assert_memory_equal(gw.ip, want, 16); /* metric 0x64 < 0x400; the first of equals */
	assert_int_equal(parse6(ra, strlen(R6(Z32, "00", Z32, "00000400", "00450003", "   wlan0")), &gw, ifname), 0);
	assert_memory_equal(gw.ip, ll, 16);
	assert_string_equal(ifname, "wlan0");
	assert_int_equal(parse6(none, sizeof(none) - 1, &gw, ifname), -ENOENT);
	assert_int_equal(parse6("", 0, &gw, ifname), -ENOENT); /* no routes at all */
	assert_int_equal(nb_gateway_parse_ipv6_route(NULL, 0, &gw, ifname), -EINVAL);
	assert_int_equal(nb_gateway_parse_ipv6_route(captured6, len, NULL, ifname), -EINVAL);
	assert_int_equal(nb_gateway_parse_ipv6_route(captured6, len, &gw, NULL), -EINVAL);
	/* the IPv4 file is not the IPv6 one, nor the other way round */
	assert_int_equal(parse6(captured, sizeof(captured) - 1, &gw, ifname), -EINVAL);
	assert_int_equal(parse(captured6, len, &gw, ifname), -EINVAL);
	/* every prefix: 0 only once the default's line is complete (and later
	 * line ends), -ENOENT at the line ends before it, else -EINVAL */
	for (size_t n = 0, lines = 0; n <= len; n++) {
		int rc = parse6(captured6, n, &gw, ifname);

		if (n > 0 && captured6[n - 1] == '\n')
			lines++;
		if (n == 0 || (n > 0 && captured6[n - 1] == '\n'))
			assert_int_equal(rc, lines >= 3 ? 0 : -ENOENT);
		else
			assert_int_equal(rc, -EINVAL);
	}
	/* every byte changed: no crash; a success names a non-zero gateway */
	for (size_t i = 0; i < len; i++) {
		static const char subst[] = { '\0', '\n', ' ', 'G', '0', 'F', '\x7f', '\xff' };

		for (size_t k = 0; k < sizeof(subst); k++) {
			static const uint8_t zero[16];

			memcpy(buf, captured6, len);
			if (buf[i] == subst[k])
				continue;
			buf[i] = subst[k];
			if (parse6(buf, len, &gw, ifname) == 0)
				assert_memory_not_equal(gw.ip, zero, 16);
		}
	}
	free(buf);
	/* a length over 128, a short address, an 11th field, a long device name */
	assert_int_equal(parse6(R6(Z32, "81", Z32, "00000001", "00000001", "eth0"),
				strlen(R6(Z32, "81", Z32, "00000001", "00000001", "eth0")), &gw, ifname),
			 -EINVAL);
	assert_int_equal(parse6(R6(Z32, "00", "0000", "00000001", "00000003", "eth0"),
				strlen(R6(Z32, "00", "0000", "00000001", "00000003", "eth0")), &gw, ifname),
			 -EINVAL);
	assert_int_equal(parse6(R6(Z32, "00", Z32, "00000001", "00000003", "eth0 x"),
				strlen(R6(Z32, "00", Z32, "00000001", "00000003", "eth0 x")), &gw, ifname),
			 -EINVAL);
	assert_int_equal(parse6(R6(Z32, "00", Z32, "00000001", "00000003", "abcdefghijklmnop"),
				strlen(R6(Z32, "00", Z32, "00000001", "00000003", "abcdefghijklmnop")), &gw, ifname),
			 -EINVAL);
}

static void test_limits(void **state)
{
	size_t cap = 4200 * 130;
	char *text = malloc(cap);
	struct nb_addr gw;
	char ifname[16];
	size_t n;

	(void)state;
	assert_non_null(text);
	/* 4096 lines (header + 4095 routes) pass; 4097 do not */
	text[0] = '\0';
	app(text, cap, HEADER);
	for (int i = 0; i < 4094; i++) {
		n = strlen(text);
		snprintf(text + n, cap - n, "eth0\t0A000000\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
	}
	n = strlen(text);
	snprintf(text + n, cap - n, "eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n");
	assert_int_equal(parse_str(text, &gw, ifname), 0);
	n = strlen(text);
	snprintf(text + n, cap - n, "eth0\t0A000000\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
	assert_int_equal(parse_str(text, &gw, ifname), -EINVAL);

	/* a line of 512 bytes passes; 513 does not */
	text[0] = '\0';
	app(text, cap, HEADER);
	n = strlen(text);
	snprintf(text + n, cap - n, "eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0");
	while (strlen(text) - n < 512)
		app(text, cap, " ");
	app(text, cap, "\n");
	assert_int_equal(parse_str(text, &gw, ifname), 0);
	text[strlen(text) - 1] = ' ';
	app(text, cap, "\n");
	assert_int_equal(parse_str(text, &gw, ifname), -EINVAL);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_captured),
		cmocka_unit_test(test_byte_order),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_not_candidates),
		cmocka_unit_test(test_header_only_and_garbage),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_ipv6),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
