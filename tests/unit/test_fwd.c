/* tests/unit/test_fwd.c - port forwarding's pure core: the payload kinds
 * (round trips, every truncation, every kind byte, the length limits), the
 * --expose/--forward specs (a table of good and bad ones, udp: and tcp:),
 * the transport service names ("tcp:PORT") and the flow table (bounds,
 * ids, expiry, refusal). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer/datachan.h"
#include "peer/fwd.h"

static void test_sizes(void **state)
{
	(void)state;
	assert_int_equal(NB_FWD_MAX_PAYLOAD, NB_DC_MAX_PAYLOAD);
	assert_int_equal(NB_FWD_MAX_DATAGRAM, 1366);
	assert_int_equal(NB_FWD_MAX_LINE, 1370);
	assert_int_equal(NB_FWD_MAX_TPACKET, NB_FWD_MAX_PAYLOAD - 1);
}

/* Kind 0x02: one byte, then a transport packet of 1..NB_FWD_MAX_TPACKET. */
static void test_tcp_round_trip(void **state)
{
	static const size_t lens[] = { 1, 2, 12, 1000, NB_FWD_MAX_TPACKET };
	uint8_t buf[NB_FWD_MAX_PAYLOAD];
	struct nb_fwd_hdr h = { .kind = NB_FWD_KIND_TCP }, d;
	const uint8_t *body;
	size_t blen;

	(void)state;
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		size_t n = lens[k];
		assert_int_equal(nb_fwd_hdr_put(&h, n, buf, sizeof(buf)), NB_FWD_TCP_HDR);
		assert_int_equal(buf[0], 0x02);
		memset(buf + 1, 0xC3, n);
		memset(&d, 0xAA, sizeof(d));
		assert_int_equal(nb_fwd_decode(buf, 1 + n, &d, &body, &blen), 0);
		assert_int_equal(d.kind, NB_FWD_KIND_TCP);
		assert_int_equal(blen, n);
		assert_ptr_equal(body, buf + 1);
	}
	/* Empty and one byte too long are refused both ways. */
	assert_int_equal(nb_fwd_hdr_put(&h, 0, buf, sizeof(buf)), NB_FWD_E_SHORT);
	assert_int_equal(nb_fwd_hdr_put(&h, NB_FWD_MAX_TPACKET + 1, buf, sizeof(buf)), NB_FWD_E_TOO_BIG);
	assert_int_equal(nb_fwd_hdr_put(&h, 1, buf, 0), NB_FWD_E_NOSPACE);
	buf[0] = 0x02;
	d.kind = 0x77;
	assert_int_equal(nb_fwd_decode(buf, 1, &d, &body, &blen), NB_FWD_E_SHORT);
	assert_int_equal(d.kind, 0x77);
	assert_int_equal(nb_fwd_decode(buf, NB_FWD_MAX_PAYLOAD + 1, &d, &body, &blen), NB_FWD_E_TOO_BIG);
}

/* "tcp:PORT": the names a forwarded connection asks for. */
static void test_service(void **state)
{
	static const struct {
		const char *s;
		int port; /* -1: refused */
	} cases[] = {
		{ "tcp:0", 0 },	    { "tcp:22", 22 },	  { "tcp:65535", 65535 }, { "tcp:65536", -1 },
		{ "tcp:", -1 },	    { "tcp:022", -1 },	  { "tcp:00", -1 },	  { "tcp:-1", -1 },
		{ "tcp:+1", -1 },   { "tcp:1x", -1 },	  { "udp:22", -1 },	  { "TCP:22", -1 },
		{ "tcp/22", -1 },   { "tcp:123456", -1 }, { "", -1 },		  { "tcp:22 ", -1 },
	};
	char out[NB_FWD_SERVICE_MAX];
	uint16_t p;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		p = 4242;
		int rc = nb_fwd_service_parse(cases[i].s, &p);
		if (cases[i].port < 0) {
			if (rc != NB_FWD_E_SERVICE || p != 4242)
				fail_msg("%s: accepted (%d, %u)", cases[i].s, rc, p);
			continue;
		}
		if (rc != 0 || p != cases[i].port)
			fail_msg("%s: rc %d port %u", cases[i].s, rc, p);
		/* and back */
		assert_int_equal(nb_fwd_service_put(p, out, sizeof(out)), 0);
		assert_string_equal(out, cases[i].s);
	}
	assert_int_equal(nb_fwd_service_parse(NULL, &p), NB_FWD_E_SERVICE);
	memset(out, 'z', sizeof(out));
	assert_int_equal(nb_fwd_service_put(65535, out, 9), NB_FWD_E_NOSPACE);
	assert_int_equal(out[0], 'z');
	assert_int_equal(nb_fwd_service_put(65535, out, 10), 0);
	assert_int_equal(nb_fwd_service_put(1, NULL, 10), NB_FWD_E_INVAL);
}

static void test_udp_round_trip(void **state)
{
	static const size_t lens[] = { 0, 1, 2, 100, 1200, 1365, 1366 };
	uint8_t buf[NB_FWD_MAX_PAYLOAD];
	struct nb_fwd_hdr h = { .kind = NB_FWD_KIND_UDP, .port = 5353, .flow = 0xBEEF }, d;
	const uint8_t *body;
	size_t blen;

	(void)state;
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		size_t n = lens[k];
		ssize_t hl = nb_fwd_hdr_put(&h, n, buf, sizeof(buf));
		assert_int_equal(hl, NB_FWD_UDP_HDR);
		for (size_t i = 0; i < n; i++)
			buf[hl + (ssize_t)i] = (uint8_t)i;
		assert_int_equal(buf[0], 0x01);
		assert_int_equal(buf[1], 0x14);
		assert_int_equal(buf[2], 0xE9);
		assert_int_equal(buf[3], 0xBE);
		assert_int_equal(buf[4], 0xEF);
		memset(&d, 0xAA, sizeof(d));
		assert_int_equal(nb_fwd_decode(buf, (size_t)hl + n, &d, &body, &blen), 0);
		assert_int_equal(d.kind, NB_FWD_KIND_UDP);
		assert_int_equal(d.port, 5353);
		assert_int_equal(d.flow, 0xBEEF);
		assert_int_equal(blen, n);
		assert_ptr_equal(body, buf + NB_FWD_UDP_HDR);
	}
	/* 1367 bytes of datagram do not fit. */
	assert_int_equal(nb_fwd_hdr_put(&h, 1367, buf, sizeof(buf)), NB_FWD_E_TOO_BIG);
	h.flow = 0;
	assert_int_equal(nb_fwd_hdr_put(&h, 1, buf, sizeof(buf)), NB_FWD_E_FLOW);
	h.flow = 1;
	assert_int_equal(nb_fwd_hdr_put(&h, 1, buf, 4), NB_FWD_E_NOSPACE);
	assert_int_equal(nb_fwd_hdr_put(NULL, 1, buf, 4), NB_FWD_E_INVAL);
}

static void test_pipe_round_trip(void **state)
{
	uint8_t buf[NB_FWD_MAX_PAYLOAD] = { 0 };
	struct nb_fwd_hdr h = { .kind = NB_FWD_KIND_PIPE }, d;
	const uint8_t *body;
	size_t blen;

	(void)state;
	assert_int_equal(nb_fwd_hdr_put(&h, 5, buf, sizeof(buf)), 1);
	memcpy(buf + 1, "hello", 5);
	assert_int_equal(nb_fwd_decode(buf, 6, &d, &body, &blen), 0);
	assert_int_equal(d.kind, NB_FWD_KIND_PIPE);
	assert_int_equal(blen, 5);
	assert_memory_equal(body, "hello", 5);
	/* An empty line is one byte. */
	assert_int_equal(nb_fwd_decode(buf, 1, &d, &body, &blen), 0);
	assert_int_equal(blen, 0);
	assert_int_equal(nb_fwd_hdr_put(&h, NB_FWD_MAX_LINE, buf, sizeof(buf)), 1);
	assert_int_equal(nb_fwd_hdr_put(&h, NB_FWD_MAX_LINE + 1, buf, sizeof(buf)), NB_FWD_E_TOO_BIG);
	assert_int_equal(nb_fwd_hdr_put(&h, 0, buf, 0), NB_FWD_E_NOSPACE);
}

/* Every prefix of a UDP payload's header is refused; outputs untouched. */
static void test_truncation(void **state)
{
	uint8_t buf[16] = { 0x01, 0x00, 0x35, 0x00, 0x07, 'x' };
	struct nb_fwd_hdr d = { .kind = 0x77, .port = 9, .flow = 9 };
	const uint8_t *body = (const uint8_t *)"sentinel";
	size_t blen = 4242;

	(void)state;
	for (size_t n = 0; n < NB_FWD_UDP_HDR; n++) {
		assert_int_equal(nb_fwd_decode(buf, n, &d, &body, &blen), NB_FWD_E_SHORT);
		assert_int_equal(d.kind, 0x77);
		assert_int_equal(blen, 4242);
	}
	assert_int_equal(nb_fwd_decode(NULL, 5, &d, &body, &blen), NB_FWD_E_SHORT);
	assert_int_equal(nb_fwd_decode(buf, 5, &d, &body, &blen), 0);
	assert_int_equal(blen, 0);
	assert_int_equal(nb_fwd_decode(buf, 6, &d, &body, &blen), 0);
	assert_int_equal(blen, 1);
	/* Flow 0 is refused. */
	buf[3] = buf[4] = 0;
	assert_int_equal(nb_fwd_decode(buf, 6, &d, &body, &blen), NB_FWD_E_FLOW);
}

/* Only kinds 0x00, 0x01 and 0x02; anything over 1371 bytes is refused. */
static void test_kinds(void **state)
{
	uint8_t buf[NB_FWD_MAX_PAYLOAD + 1];
	struct nb_fwd_hdr d, h = { 0 };
	const uint8_t *body;
	size_t blen;

	(void)state;
	memset(buf, 0x01, sizeof(buf));
	for (unsigned k = 0; k < 256; k++) {
		int rc;
		buf[0] = (uint8_t)k;
		rc = nb_fwd_decode(buf, 8, &d, &body, &blen);
		if (k <= 2)
			assert_int_equal(rc, 0);
		else
			assert_int_equal(rc, NB_FWD_E_KIND);
		h.kind = (uint8_t)k;
		h.flow = 1;
		rc = (int)nb_fwd_hdr_put(&h, 3, buf + 100, 16);
		if (k > 2)
			assert_int_equal(rc, NB_FWD_E_KIND);
	}
	buf[0] = 1;
	assert_int_equal(nb_fwd_decode(buf, NB_FWD_MAX_PAYLOAD, &d, &body, &blen), 0);
	assert_int_equal(blen, NB_FWD_MAX_DATAGRAM);
	assert_int_equal(nb_fwd_decode(buf, NB_FWD_MAX_PAYLOAD + 1, &d, &body, &blen), NB_FWD_E_TOO_BIG);
	for (unsigned e = 6001; e <= 6009; e++)
		assert_string_not_equal(nb_fwd_strerror(-(int)e), "unknown error");
	assert_string_equal(nb_fwd_strerror(-1), "unknown error");
}

struct good_case {
	bool expose;
	const char *s;
	const char *addr; /* nb_addr_format */
	uint16_t rport;
};

static uint8_t proto_of(const char *s)
{
	return strncmp(s, "tcp:", 4) == 0 ? NB_FWD_KIND_TCP : NB_FWD_KIND_UDP;
}

static const struct good_case goods[] = {
	{ true, "udp:127.0.0.1:5353", "127.0.0.1:5353", 0 },
	{ true, "udp:localhost:53", "127.0.0.1:53", 0 },
	{ true, "udp:[::1]:5353", "[::1]:5353", 0 },
	{ true, "udp:10.1.2.3:65535", "10.1.2.3:65535", 0 },
	{ false, "udp:15353", "127.0.0.1:15353", 0 },
	{ false, "udp:15353=5353", "127.0.0.1:15353", 5353 },
	{ false, "udp:0.0.0.0:15353", "0.0.0.0:15353", 0 },
	{ false, "udp:[::1]:15353=53", "[::1]:15353", 53 },
	{ false, "udp:localhost:1", "127.0.0.1:1", 0 },
	{ false, "udp:15353=0", "127.0.0.1:15353", 0 },
	{ true, "tcp:127.0.0.1:22", "127.0.0.1:22", 0 },
	{ true, "tcp:localhost:2222", "127.0.0.1:2222", 0 },
	{ true, "tcp:[::1]:22", "[::1]:22", 0 },
	{ false, "tcp:2222", "127.0.0.1:2222", 0 },
	{ false, "tcp:2222=22", "127.0.0.1:2222", 22 },
	{ false, "tcp:0.0.0.0:2222=0", "0.0.0.0:2222", 0 },
	{ false, "tcp:[::1]:2222=22", "[::1]:2222", 22 },
};

struct bad_case {
	bool expose;
	const char *s;
	int rc;
	const char *says; /* a part of the error text */
};

static const struct bad_case bads[] = {
	{ true, "tcp:127.0.0.1:0", NB_FWD_E_INVAL, "1..65535" },
	{ true, "tcp:0.0.0.0:22", NB_FWD_E_INVAL, "not 0.0.0.0" },
	{ true, "tcp:22", NB_FWD_E_INVAL, "tcp:HOST:PORT" },
	{ true, "tcp:", NB_FWD_E_INVAL, "tcp:HOST:PORT" },
	{ true, "sctp:127.0.0.1:22", NB_FWD_E_INVAL, "tcp:HOST:PORT" },
	{ false, "tcp:0", NB_FWD_E_INVAL, "1..65535" },
	{ false, "tcp:2222=70000", NB_FWD_E_INVAL, "only TCP service" },
	{ false, "tcp:::1:2222", NB_FWD_E_INVAL, "brackets" },
	{ false, "tcp:", NB_FWD_E_INVAL, "tcp:[BIND:]LPORT" },
	{ false, "TCP:2222", NB_FWD_E_INVAL, "tcp:[BIND:]LPORT" },
	{ true, "", NB_FWD_E_INVAL, "udp:HOST:PORT" },
	{ true, "udp:", NB_FWD_E_INVAL, "udp:HOST:PORT" },
	{ true, "127.0.0.1:53", NB_FWD_E_INVAL, "udp:HOST:PORT" },
	{ true, "UDP:127.0.0.1:53", NB_FWD_E_INVAL, "udp:HOST:PORT" },
	{ true, "udp:127.0.0.1", NB_FWD_E_INVAL, "udp:HOST:PORT" },
	{ true, "udp:127.0.0.1:", NB_FWD_E_INVAL, "udp:HOST:PORT" },
	{ true, "udp:127.0.0.1:0", NB_FWD_E_INVAL, "1..65535" },
	{ true, "udp:127.0.0.1:65536", NB_FWD_E_INVAL, "udp:HOST:PORT" },
	{ true, "udp:127.0.0.1:-1", NB_FWD_E_INVAL, "udp:HOST:PORT" },
	{ true, "udp:127.0.0.1:53x", NB_FWD_E_INVAL, "udp:HOST:PORT" },
	{ true, "udp:example.com:53", NB_FWD_E_INVAL, "udp:HOST:PORT" },
	{ true, "udp:0.0.0.0:53", NB_FWD_E_INVAL, "not 0.0.0.0" },
	{ true, "udp:[::]:53", NB_FWD_E_INVAL, "not 0.0.0.0" },
	{ true, "udp:224.0.0.251:5353", NB_FWD_E_INVAL, "multicast" },
	{ true, "udp:::1:53", NB_FWD_E_INVAL, "udp:HOST:PORT" },
	{ true, "udp:[::1:53", NB_FWD_E_INVAL, "udp:HOST:PORT" },
	{ true, "udp:53", NB_FWD_E_INVAL, "udp:HOST:PORT" },
	{ false, "", NB_FWD_E_INVAL, "udp:[BIND:]LPORT" },
	{ false, "udp:", NB_FWD_E_INVAL, "udp:[BIND:]LPORT" },
	{ false, "15353", NB_FWD_E_INVAL, "udp:[BIND:]LPORT" },
	{ false, "udp:0", NB_FWD_E_INVAL, "1..65535" },
	{ false, "udp:65536", NB_FWD_E_INVAL, "udp:[BIND:]LPORT" },
	{ false, "udp:+53", NB_FWD_E_INVAL, "udp:[BIND:]LPORT" },
	{ false, "udp:15353=", NB_FWD_E_INVAL, "RPORT" },
	{ false, "udp:15353=70000", NB_FWD_E_INVAL, "RPORT" },
	{ false, "udp:15353=53=54", NB_FWD_E_INVAL, "RPORT" },
	{ false, "udp:=53", NB_FWD_E_INVAL, "udp:[BIND:]LPORT" },
	{ false, "udp:127.0.0.1:", NB_FWD_E_INVAL, "udp:[BIND:]LPORT" },
	{ false, "udp:127.0.0.1:0", NB_FWD_E_INVAL, "1..65535" },
	{ false, "udp:::1:15353", NB_FWD_E_INVAL, "brackets" },
	{ false, "udp:host:15353", NB_FWD_E_INVAL, "udp:[BIND:]LPORT" },
	{ false, "udp:239.1.1.1:15353", NB_FWD_E_INVAL, "multicast" },
	{ false, "udp:1234567", NB_FWD_E_INVAL, "udp:[BIND:]LPORT" },
};

static void test_specs(void **state)
{
	char err[256], a[NB_ADDR_STRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		struct nb_fwd_spec sp;
		int rc = goods[i].expose ? nb_fwd_expose_parse(goods[i].s, &sp, err, sizeof(err))
					 : nb_fwd_forward_parse(goods[i].s, &sp, err, sizeof(err));
		if (rc != 0)
			fail_msg("%s: %s", goods[i].s, err);
		assert_int_equal(sp.proto, proto_of(goods[i].s));
		assert_string_equal(nb_addr_format(&sp.addr, a, sizeof(a)), goods[i].addr);
		assert_int_equal(sp.rport, goods[i].rport);
	}
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct nb_fwd_spec sp;
		int rc;
		memset(&sp, 0x5A, sizeof(sp));
		err[0] = '\0';
		rc = bads[i].expose ? nb_fwd_expose_parse(bads[i].s, &sp, err, sizeof(err))
				    : nb_fwd_forward_parse(bads[i].s, &sp, err, sizeof(err));
		if (rc != bads[i].rc || strstr(err, bads[i].says) == NULL)
			fail_msg("case %zu %s %s: rc %d, \"%s\"", i, bads[i].expose ? "expose" : "forward",
				 bads[i].s, rc, err);
		assert_int_equal(sp.proto, 0x5A); /* untouched */
	}
	/* Too long, and NULL. */
	{
		char longs[400];
		struct nb_fwd_spec sp;
		memset(longs, '1', sizeof(longs) - 1);
		longs[sizeof(longs) - 1] = '\0';
		memcpy(longs, "udp:", 4);
		assert_int_equal(nb_fwd_forward_parse(longs, &sp, err, sizeof(err)), NB_FWD_E_INVAL);
		assert_int_equal(nb_fwd_expose_parse(NULL, &sp, NULL, 0), NB_FWD_E_INVAL);
	}
}

static void test_spec_list(void **state)
{
	struct nb_fwd_spec list[NB_FWD_MAX_SPECS] = { 0 }, sp;
	size_t n = 0;
	char err[128], text[32];

	(void)state;
	assert_int_equal(nb_fwd_expose_find(list, 0, NB_FWD_KIND_UDP, 0), NB_FWD_E_NOENT);
	for (unsigned i = 0; i < NB_FWD_MAX_SPECS; i++) {
		snprintf(text, sizeof(text), "udp:127.0.0.1:%u", 5000 + i);
		assert_int_equal(nb_fwd_expose_parse(text, &sp, err, sizeof(err)), 0);
		assert_int_equal(nb_fwd_spec_add(list, &n, &sp, err, sizeof(err)), 0);
		if (i == 0) {
			assert_int_equal(nb_fwd_expose_find(list, n, NB_FWD_KIND_UDP, 0), 0); /* the only one */
			/* the same port twice is refused, even on another host */
			assert_int_equal(nb_fwd_expose_parse("udp:10.0.0.1:5000", &sp, err, sizeof(err)), 0);
			assert_int_equal(nb_fwd_spec_add(list, &n, &sp, err, sizeof(err)), NB_FWD_E_INVAL);
			assert_non_null(strstr(err, "twice"));
			assert_int_equal(n, 1);
		}
	}
	assert_int_equal(n, NB_FWD_MAX_SPECS);
	assert_int_equal(nb_fwd_expose_parse("udp:127.0.0.1:9999", &sp, err, sizeof(err)), 0);
	assert_int_equal(nb_fwd_spec_add(list, &n, &sp, err, sizeof(err)), NB_FWD_E_INVAL);
	assert_non_null(strstr(err, "at most 8"));
	assert_int_equal(n, NB_FWD_MAX_SPECS);
	assert_int_equal(nb_fwd_expose_find(list, n, NB_FWD_KIND_UDP, 5003), 3);
	assert_int_equal(nb_fwd_expose_find(list, n, NB_FWD_KIND_UDP, 5008), NB_FWD_E_NOENT);
	assert_int_equal(nb_fwd_expose_find(list, n, NB_FWD_KIND_UDP, 0), NB_FWD_E_NOENT); /* ambiguous */
	assert_int_equal(nb_fwd_expose_find(list, n, NB_FWD_KIND_TCP, 5003), NB_FWD_E_NOENT);
}

/* UDP and TCP ports are separate namespaces; port 0 is "the only one of
 * this protocol". */
static void test_spec_protocols(void **state)
{
	struct nb_fwd_spec list[NB_FWD_MAX_SPECS], sp;
	size_t n = 0;
	char err[128];

	(void)state;
	assert_int_equal(nb_fwd_expose_parse("udp:127.0.0.1:5353", &sp, err, sizeof(err)), 0);
	assert_int_equal(nb_fwd_spec_add(list, &n, &sp, err, sizeof(err)), 0);
	assert_int_equal(nb_fwd_expose_find(list, n, NB_FWD_KIND_TCP, 0), NB_FWD_E_NOENT);
	assert_int_equal(nb_fwd_expose_find(list, n, NB_FWD_KIND_TCP, 5353), NB_FWD_E_NOENT);
	assert_int_equal(nb_fwd_expose_parse("tcp:127.0.0.1:5353", &sp, err, sizeof(err)), 0);
	assert_int_equal(nb_fwd_spec_add(list, &n, &sp, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_int_equal(nb_fwd_expose_find(list, n, NB_FWD_KIND_UDP, 0), 0);
	assert_int_equal(nb_fwd_expose_find(list, n, NB_FWD_KIND_TCP, 0), 1);
	assert_int_equal(nb_fwd_expose_find(list, n, NB_FWD_KIND_TCP, 5353), 1);
	assert_int_equal(nb_fwd_expose_find(list, n, NB_FWD_KIND_UDP, 5353), 0);
	/* tcp 5353 again is refused, naming the protocol */
	assert_int_equal(nb_fwd_expose_parse("tcp:10.0.0.1:5353", &sp, err, sizeof(err)), 0);
	assert_int_equal(nb_fwd_spec_add(list, &n, &sp, err, sizeof(err)), NB_FWD_E_INVAL);
	assert_non_null(strstr(err, "tcp port 5353 given twice"));
	assert_int_equal(nb_fwd_expose_parse("tcp:127.0.0.1:22", &sp, err, sizeof(err)), 0);
	assert_int_equal(nb_fwd_spec_add(list, &n, &sp, err, sizeof(err)), 0);
	assert_int_equal(nb_fwd_expose_find(list, n, NB_FWD_KIND_TCP, 0), NB_FWD_E_NOENT); /* two now */
	assert_int_equal(nb_fwd_expose_find(list, n, NB_FWD_KIND_TCP, 22), 2);
	assert_int_equal(nb_fwd_expose_find(list, n, NB_FWD_KIND_UDP, 0), 0);
}

static void src_of(struct nb_addr *a, unsigned i)
{
	memset(a, 0, sizeof(*a));
	a->family = NB_AF_INET;
	a->ip[0] = 127;
	a->ip[3] = 1;
	a->port = (uint16_t)(40000 + i);
}

static void test_table_connector(void **state)
{
	struct nb_fwd_table *t = malloc(sizeof(*t));
	struct nb_addr src;
	size_t slot, slots[NB_FWD_MAX_FLOWS];
	uint16_t ids[NB_FWD_MAX_FLOWS];

	(void)state;
	assert_non_null(t);
	nb_fwd_table_init(t);
	assert_int_equal(nb_fwd_table_deadline(t), UINT64_MAX);
	src_of(&src, 0);
	assert_int_equal(nb_fwd_table_src(t, 0, &src, false, 1000, &slot), NB_FWD_E_NOENT);
	for (unsigned i = 0; i < NB_FWD_MAX_FLOWS; i++) {
		src_of(&src, i);
		assert_int_equal(nb_fwd_table_src(t, 0, &src, true, 1000 + i, &slots[i]), 1);
		ids[i] = t->f[slots[i]].flow;
		assert_int_not_equal(ids[i], 0);
		for (unsigned j = 0; j < i; j++)
			assert_int_not_equal(ids[i], ids[j]);
		/* found again, same slot */
		assert_int_equal(nb_fwd_table_src(t, 0, &src, true, 1000 + i, &slot), 0);
		assert_int_equal(slot, slots[i]);
	}
	assert_int_equal(t->n, NB_FWD_MAX_FLOWS);
	/* Full, nothing idle: refused and counted. */
	src_of(&src, 999);
	slot = 4242;
	assert_int_equal(nb_fwd_table_src(t, 0, &src, true, 2000, &slot), NB_FWD_E_FULL);
	assert_int_equal(slot, 4242);
	assert_int_equal(t->refused, 1);
	assert_int_equal(nb_fwd_table_expire(t, 2000, &slot), 0);
	/* Replies find their flow by id, and touch it. */
	assert_int_equal(nb_fwd_table_flow(t, ids[0], 30000, &slot), 0);
	assert_int_equal(slot, slots[0]);
	assert_int_equal(nb_fwd_table_flow(t, 0, 30000, &slot), NB_FWD_E_NOENT);
	assert_int_equal(nb_fwd_table_deadline(t), 1001 + NB_FWD_IDLE_MS);
	/* 60 s later all but flow 0 (touched at 30 s) expire, one at a time. */
	{
		unsigned n = 0;
		while (nb_fwd_table_expire(t, 1000 + NB_FWD_IDLE_MS + 100, &slot) == 1) {
			assert_int_not_equal(slot, slots[0]);
			n++;
		}
		assert_int_equal(n, NB_FWD_MAX_FLOWS - 1);
		assert_int_equal(t->expired, NB_FWD_MAX_FLOWS - 1);
		assert_int_equal(t->n, 1);
	}
	assert_int_equal(nb_fwd_table_deadline(t), 30000 + NB_FWD_IDLE_MS);
	/* Just before its deadline it stays; at it, it goes. */
	assert_int_equal(nb_fwd_table_expire(t, 30000 + NB_FWD_IDLE_MS - 1, &slot), 0);
	assert_int_equal(nb_fwd_table_expire(t, 30000 + NB_FWD_IDLE_MS, &slot), 1);
	assert_int_equal(t->n, 0);
	/* A new source gets a fresh id, not one just used. */
	src_of(&src, 500);
	assert_int_equal(nb_fwd_table_src(t, 0, &src, true, 200000, &slot), 1);
	for (unsigned j = 0; j < NB_FWD_MAX_FLOWS; j++)
		assert_int_not_equal(t->f[slot].flow, ids[j]);
	/* Ids wrap past 65535 to 1, never 0, skipping ids in use. */
	t->next_flow = 65535;
	src_of(&src, 501);
	assert_int_equal(nb_fwd_table_src(t, 0, &src, true, 200000, &slot), 1);
	assert_int_equal(t->f[slot].flow, 65535);
	src_of(&src, 502);
	assert_int_equal(nb_fwd_table_src(t, 0, &src, true, 200000, &slot), 1);
	assert_int_equal(t->f[slot].flow, 1);
	/* The same source on another forward socket is another flow. */
	{
		size_t other;
		assert_int_equal(nb_fwd_table_src(t, 1, &src, true, 200000, &other), 1);
		assert_int_not_equal(other, slot);
		assert_int_not_equal(t->f[other].flow, t->f[slot].flow);
		assert_int_equal(t->f[other].sess, 1);
		nb_fwd_table_remove(t, other);
	}
	nb_fwd_table_remove(t, slot);
	nb_fwd_table_remove(t, slot); /* twice: no-op */
	assert_int_equal(t->n, 2);
	nb_fwd_table_remove(t, NB_FWD_MAX_FLOWS); /* out of range: no-op */
	free(t);
}

static void test_table_listener(void **state)
{
	struct nb_fwd_table *t = malloc(sizeof(*t));
	size_t slot, s0;

	(void)state;
	assert_non_null(t);
	nb_fwd_table_init(t);
	assert_int_equal(nb_fwd_table_key(t, 3, 5353, 0, true, 0, &slot), NB_FWD_E_FLOW);
	assert_int_equal(nb_fwd_table_key(t, 3, 5353, 7, false, 0, &slot), NB_FWD_E_NOENT);
	assert_int_equal(nb_fwd_table_key(t, 3, 5353, 7, true, 10, &s0), 1);
	assert_int_equal(nb_fwd_table_key(t, 3, 5353, 7, true, 20, &slot), 0);
	assert_int_equal(slot, s0);
	/* Another port, session or flow is another entry. */
	assert_int_equal(nb_fwd_table_key(t, 3, 0, 7, true, 20, &slot), 1);
	assert_int_equal(nb_fwd_table_key(t, 4, 5353, 7, true, 20, &slot), 1);
	assert_int_equal(nb_fwd_table_key(t, 3, 5353, 8, true, 20, &slot), 1);
	for (uint16_t f = 100; t->n < NB_FWD_MAX_FLOWS; f++)
		assert_int_equal(nb_fwd_table_key(t, 3, 5353, f, true, 30, &slot), 1);
	assert_int_equal(nb_fwd_table_key(t, 3, 5353, 9999, true, 40, &slot), NB_FWD_E_FULL);
	assert_int_equal(t->refused, 1);
	/* The idle one is reaped; then there is room. */
	assert_int_equal(nb_fwd_table_expire(t, 20 + NB_FWD_IDLE_MS, &slot), 1);
	assert_int_equal(nb_fwd_table_key(t, 3, 5353, 9999, true, 40 + NB_FWD_IDLE_MS, &slot), 1);
	nb_fwd_table_touch(t, slot, 50 + NB_FWD_IDLE_MS);
	assert_int_equal(t->f[slot].last, 50 + NB_FWD_IDLE_MS);
	/* A clock that went back never expires anything. */
	assert_int_equal(nb_fwd_table_expire(t, 5, &slot), 0);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_udp_round_trip),
		cmocka_unit_test(test_pipe_round_trip),
		cmocka_unit_test(test_tcp_round_trip),
		cmocka_unit_test(test_service),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_specs),
		cmocka_unit_test(test_spec_list),
		cmocka_unit_test(test_spec_protocols),
		cmocka_unit_test(test_table_connector),
		cmocka_unit_test(test_table_listener),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
