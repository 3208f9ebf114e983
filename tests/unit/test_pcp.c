/* tests/unit/test_pcp.c - PCP version 2 (RFC 6887): ANNOUNCE and MAP requests
 * against hand-written layouts (IPv4 and IPv6 clients, the all-zeros
 * external address forms), argument checks, every opcode and result code
 * decoded, header-only error responses, every-prefix truncation, the §8.3
 * framing drops (length, multiple of 4, R bit), version negotiation (0 is
 * NAT-PMP, UNSUPP_VERSION in another version), options skipped or refused,
 * every bit of a response flipped, result strings and the short/long
 * lifetime split. Inputs live in exact-size heap copies (ASan). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "peer/portmap/natpmp.h"
#include "peer/portmap/pcp.h"

static struct nb_addr addr(const char *s)
{
	struct nb_addr a;

	assert_int_equal(nb_addr_parse(s, true, &a), 0);
	return a;
}

static int decode(const uint8_t *buf, size_t len, struct nb_pcp_response *r)
{
	struct nb_pcp_response sentinel;
	uint8_t *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	if (len)
		memcpy(copy, buf, len);
	memset(r, 0xA5, sizeof(*r));
	memcpy(&sentinel, r, sizeof(sentinel));
	rc = nb_pcp_decode(copy, len, r);
	free(copy);
	if (rc != 0) {
		assert_int_equal(rc, -EINVAL);
		assert_memory_equal(r, &sentinel, sizeof(*r));
	}
	return rc;
}

static const uint8_t nonce[NB_PCP_NONCE_LEN] = { 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5,
						  0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB };

static struct nb_pcp_map map_of(uint8_t proto, uint16_t in, uint16_t ext, const char *ip)
{
	struct nb_pcp_map m;

	memset(&m, 0, sizeof(m));
	memcpy(m.nonce, nonce, sizeof(nonce));
	m.protocol = proto;
	m.internal_port = in;
	m.external_port = ext;
	if (ip != NULL)
		m.external_ip = addr(ip);
	return m;
}

/* ---- requests ------------------------------------------------------------ */

static void test_encode_announce(void **state)
{
	static const uint8_t v4[24] = { 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					0, 0, 0xff, 0xff, 192, 168, 1, 10 };
	static const uint8_t v6[24] = { 2, 0, 0, 0, 0, 0, 0, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
					0, 0, 0, 0, 0, 0, 0, 1 };
	struct nb_addr c4 = addr("192.168.1.10:4000"), c6 = addr("2001:db8::1"), none;
	uint8_t out[64];

	(void)state;
	assert_int_equal(nb_pcp_encode_announce(out, sizeof(out), &c4), 24);
	assert_memory_equal(out, v4, 24);
	assert_int_equal(nb_pcp_encode_announce(out, 24, &c6), 24);
	assert_memory_equal(out, v6, 24);
	for (size_t cap = 0; cap < 24; cap++)
		assert_int_equal(nb_pcp_encode_announce(out, cap, &c4), 0);
	memset(&none, 0, sizeof(none));
	assert_int_equal(nb_pcp_encode_announce(out, sizeof(out), &none), 0);
	none.family = 5;
	assert_int_equal(nb_pcp_encode_announce(out, sizeof(out), &none), 0);
	assert_int_equal(nb_pcp_encode_announce(NULL, sizeof(out), &c4), 0);
	assert_int_equal(nb_pcp_encode_announce(out, sizeof(out), NULL), 0);
}

static void test_encode_map_v4(void **state)
{
	/* §7.1 header + §11.1 MAP payload, written out by hand */
	static const uint8_t want[60] = {
		2,    1,    0,    0,                                     /* version, R=0|MAP, reserved */
		0,    0,    0x1c, 0x20,                                  /* lifetime 7200 */
		0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 0xff, 0xff,    /* client ::ffff: */
		192,  168,  1,    10,                                    /* 192.168.1.10 */
		0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB, /* nonce */
		17,   0,    0,    0,                                     /* UDP, reserved */
		0x12, 0x34, 0x56, 0x78,                                  /* internal, suggested ext */
		0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, /* ::ffff:0.0.0.0 */
	};
	struct nb_addr c4 = addr("192.168.1.10");
	struct nb_pcp_map m = map_of(NB_PCP_PROTO_UDP, 0x1234, 0x5678, NULL);
	uint8_t out[NB_PCP_MAX];

	(void)state;
	assert_int_equal(nb_pcp_encode_map(out, sizeof(out), &c4, 7200, &m), 60);
	assert_memory_equal(out, want, 60);
	for (size_t cap = 0; cap < 60; cap++)
		assert_int_equal(nb_pcp_encode_map(out, cap, &c4, 7200, &m), 0);
	assert_int_equal(nb_pcp_encode_map(out, 60, &c4, 7200, &m), 60);

	/* suggested IPv4 external address, TCP, delete (lifetime 0) */
	m = map_of(NB_PCP_PROTO_TCP, 22, 2222, "198.51.100.9");
	assert_int_equal(nb_pcp_encode_map(out, sizeof(out), &c4, 0, &m), 60);
	assert_memory_equal(out + 4, ((const uint8_t[]){ 0, 0, 0, 0 }), 4);
	assert_int_equal(out[36], 6);
	assert_memory_equal(out + 40, ((const uint8_t[]){ 0, 22, 0x08, 0xAE }), 4);
	assert_memory_equal(out + 44, ((const uint8_t[]){ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
							   198, 51, 100, 9 }),
			    16);
}

static void test_encode_map_v6(void **state)
{
	struct nb_addr c6 = addr("2001:db8::1");
	struct nb_pcp_map m = map_of(NB_PCP_PROTO_UDP, 4000, 0, NULL);
	uint8_t out[64], zero[16];

	(void)state;
	memset(zero, 0, sizeof(zero));
	assert_int_equal(nb_pcp_encode_map(out, sizeof(out), &c6, 3600, &m), 60);
	assert_memory_equal(out + 8, c6.ip, 16);
	assert_memory_equal(out + 44, zero, 16); /* "::" for no preference */
	m = map_of(NB_PCP_PROTO_UDP, 4000, 0, "2001:db8::99");
	assert_int_equal(nb_pcp_encode_map(out, sizeof(out), &c6, 3600, &m), 60);
	assert_memory_equal(out + 44, m.external_ip.ip, 16);
}

static void test_encode_map_invalid(void **state)
{
	struct nb_addr c4 = addr("192.168.1.10"), bad;
	struct nb_pcp_map m;
	uint8_t out[64];

	(void)state;
	memset(&bad, 0, sizeof(bad));
	m = map_of(NB_PCP_PROTO_UDP, 1, 1, NULL);
	assert_int_equal(nb_pcp_encode_map(out, sizeof(out), &c4, 1, &m), 60);
	assert_int_equal(nb_pcp_encode_map(out, sizeof(out), &bad, 1, &m), 0);
	assert_int_equal(nb_pcp_encode_map(NULL, sizeof(out), &c4, 1, &m), 0);
	assert_int_equal(nb_pcp_encode_map(out, sizeof(out), NULL, 1, &m), 0);
	assert_int_equal(nb_pcp_encode_map(out, sizeof(out), &c4, 1, NULL), 0);
	for (unsigned p = 0; p < 256; p++) {
		m = map_of((uint8_t)p, 1, 1, NULL);
		assert_int_equal(nb_pcp_encode_map(out, sizeof(out), &c4, 1, &m),
				 (p == 6 || p == 17) ? 60 : 0);
	}
	m = map_of(NB_PCP_PROTO_UDP, 0, 1, NULL); /* port 0 = all ports */
	assert_int_equal(nb_pcp_encode_map(out, sizeof(out), &c4, 1, &m), 0);
	m = map_of(NB_PCP_PROTO_UDP, 1, 1, NULL);
	m.external_ip.family = 5;
	assert_int_equal(nb_pcp_encode_map(out, sizeof(out), &c4, 1, &m), 0);
}

/* ---- responses ----------------------------------------------------------- */

/* A MAP response: header (§7.2) + payload (§11.1); ip16 the raw field. */
static size_t map_response(uint8_t *b, uint8_t result, uint32_t lifetime, uint32_t epoch,
			   const uint8_t ip16[16])
{
	memset(b, 0, 60);
	b[0] = 2;
	b[1] = 0x80 | NB_PCP_OP_MAP;
	b[3] = result;
	b[4] = (uint8_t)(lifetime >> 24), b[5] = (uint8_t)(lifetime >> 16);
	b[6] = (uint8_t)(lifetime >> 8), b[7] = (uint8_t)lifetime;
	b[8] = (uint8_t)(epoch >> 24), b[9] = (uint8_t)(epoch >> 16);
	b[10] = (uint8_t)(epoch >> 8), b[11] = (uint8_t)epoch;
	memcpy(b + 24, nonce, 12);
	b[36] = 17;
	b[40] = 0x12, b[41] = 0x34; /* internal 4660 */
	b[42] = 0xC3, b[43] = 0x50; /* assigned 50000 */
	memcpy(b + 44, ip16, 16);
	return 60;
}

static const uint8_t ip_203[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7 };

static void test_decode_map_success(void **state)
{
	static const uint8_t ip6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42 };
	static const uint8_t zero4[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0 };
	static const uint8_t zero6[16] = { 0 };
	/* looks mapped in bits 81-96 only: §5 says check all 96 */
	static const uint8_t almost[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 1, 2, 3, 4 };
	uint8_t b[60];
	struct nb_pcp_response r;

	(void)state;
	assert_int_equal(decode(b, map_response(b, 0, 7200, 99, ip_203), &r), 0);
	assert_int_equal(r.version, 2);
	assert_int_equal(r.opcode, NB_PCP_OP_MAP);
	assert_int_equal(r.result, NB_PCP_SUCCESS);
	assert_int_equal(r.lifetime, 7200);
	assert_int_equal(r.epoch, 99);
	assert_true(r.has_map);
	assert_memory_equal(r.map.nonce, nonce, 12);
	assert_int_equal(r.map.protocol, 17);
	assert_int_equal(r.map.internal_port, 4660);
	assert_int_equal(r.map.external_port, 50000);
	assert_int_equal(r.map.external_ip.family, NB_AF_INET);
	assert_int_equal(r.map.external_ip.port, 0);
	assert_memory_equal(r.map.external_ip.ip, ((const uint8_t[]){ 203, 0, 113, 7 }), 4);

	assert_int_equal(decode(b, map_response(b, 0, 1, 2, ip6), &r), 0);
	assert_int_equal(r.map.external_ip.family, NB_AF_INET6);
	assert_memory_equal(r.map.external_ip.ip, ip6, 16);
	assert_int_equal(decode(b, map_response(b, 0, 1, 2, zero4), &r), 0);
	assert_int_equal(r.map.external_ip.family, NB_AF_NONE);
	assert_int_equal(decode(b, map_response(b, 0, 1, 2, zero6), &r), 0);
	assert_int_equal(r.map.external_ip.family, NB_AF_NONE);
	assert_int_equal(decode(b, map_response(b, 0, 1, 2, almost), &r), 0);
	assert_int_equal(r.map.external_ip.family, NB_AF_INET6);
}

/* IPv6 firewall pinhole (RFC 6887 §11.1 with an IPv6 internal address): the
 * request natpeer sends and the answer Debian's miniupnpd 2.3.1 gave it in
 * the lab (r-d6, tests/lab/test_pcp6.sh), byte for byte. */
static void test_miniupnpd_v6_pinhole(void **state)
{
	static const uint8_t req[60] = {
		2,    1,    0,    0,    0,    0,    0x02, 0x58,                   /* MAP, lifetime 600 */
		0x20, 0x01, 0x0d, 0xb8, 0,    0x13, 0,    0,    0, 0, 0, 0, 0, 0, 0, 2, /* client 2001:db8:13::2 */
		0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, /* nonce */
		17,   0,    0,    0,    0x9c, 0x40, 0x9c, 0x40,                   /* UDP, 40000 -> 40000 */
		0x20, 0x01, 0x0d, 0xb8, 0,    0x13, 0,    0,    0, 0, 0, 0, 0, 0, 0, 2, /* suggested: itself */
	};
	static const uint8_t resp[60] = {
		2,    0x81, 0,    0,    0,    0,    0x02, 0x58,                   /* R|MAP, SUCCESS, 600 s */
		0,    0,    0,    6,    0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 0, 0, /* epoch 6, reserved */
		0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
		17,   0,    0,    0,    0x9c, 0x40, 0x9c, 0x40,
		0x20, 0x01, 0x0d, 0xb8, 0,    0x13, 0,    0,    0, 0, 0, 0, 0, 0, 0, 2, /* assigned: itself */
	};
	struct nb_addr c6 = addr("2001:db8:13::2");
	struct nb_pcp_map m = map_of(NB_PCP_PROTO_UDP, 40000, 40000, "2001:db8:13::2");
	struct nb_pcp_response r;
	uint8_t out[NB_PCP_MAX], b[60];

	(void)state;
	memcpy(m.nonce, req + 24, 12);
	assert_int_equal(nb_pcp_encode_map(out, sizeof(out), &c6, 600, &m), 60);
	assert_memory_equal(out, req, 60);
	assert_int_equal(nb_pcp_decode(resp, sizeof(resp), &r), 0);
	assert_int_equal(r.result, NB_PCP_SUCCESS);
	assert_int_equal(r.lifetime, 600);
	assert_int_equal(r.epoch, 6);
	assert_true(r.has_map);
	assert_memory_equal(r.map.nonce, req + 24, 12);
	assert_int_equal(r.map.internal_port, 40000);
	assert_int_equal(r.map.external_port, 40000);
	assert_int_equal(r.map.external_ip.family, NB_AF_INET6);
	assert_memory_equal(r.map.external_ip.ip, req + 8, 16);
	/* every prefix is refused, *r untouched */
	for (size_t n = 0; n < sizeof(resp); n++) {
		memset(&r, 0x5a, sizeof(r));
		memcpy(b, resp, sizeof(resp));
		assert_int_equal(nb_pcp_decode(b, n, &r), -EINVAL);
		assert_int_equal(r.result, 0x5a);
	}
	/* the same answer for an IPv4 client (::ffff:0.0.0.0 -> NONE) and an
	 * IPv4-mapped address decode as their own family: the caller compares it
	 * with its client's (pmp.c refuses the other family) */
	memcpy(b, resp, sizeof(resp));
	memset(b + 44, 0, 16);
	b[54] = b[55] = 0xff;
	b[56] = 203, b[57] = 0, b[58] = 113, b[59] = 13;
	assert_int_equal(nb_pcp_decode(b, sizeof(b), &r), 0);
	assert_int_equal(r.map.external_ip.family, NB_AF_INET);
	/* the delete: lifetime 0, the same nonce */
	assert_int_equal(nb_pcp_encode_map(out, sizeof(out), &c6, 0, &m), 60);
	assert_memory_equal(out + 4, ((const uint8_t[]){ 0, 0, 0, 0 }), 4);
	assert_memory_equal(out + 8, req + 8, 52);
}

/* Round trip: our request, answered by echoing it with R set. */
static void test_round_trip(void **state)
{
	const char *ips[] = { NULL, "198.51.100.1", "2001:db8::7" };
	const char *clients[] = { "10.0.0.2", "2001:db8::2" };
	uint8_t b[64];
	struct nb_pcp_response r;

	(void)state;
	for (size_t c = 0; c < 2; c++) {
		for (size_t i = 0; i < 3; i++) {
			struct nb_addr client = addr(clients[c]);
			struct nb_pcp_map m = map_of(NB_PCP_PROTO_TCP, 8080, 9090, ips[i]);

			assert_int_equal(nb_pcp_encode_map(b, sizeof(b), &client, 600, &m), 60);
			assert_int_equal(decode(b, 60, &r), -EINVAL); /* a request: R clear */
			b[1] |= 0x80;
			memset(b + 8, 0, 16); /* the response's epoch and reserved */
			assert_int_equal(decode(b, 60, &r), 0);
			assert_int_equal(r.lifetime, 600);
			assert_true(r.has_map);
			assert_memory_equal(r.map.nonce, m.nonce, 12);
			assert_int_equal(r.map.protocol, m.protocol);
			assert_int_equal(r.map.internal_port, m.internal_port);
			assert_int_equal(r.map.external_port, m.external_port);
			assert_true(r.map.external_ip.family == m.external_ip.family);
			if (m.external_ip.family != NB_AF_NONE)
				assert_true(nb_addr_ip_equal(&r.map.external_ip, &m.external_ip));
		}
	}
}

static void test_decode_announce_and_peer(void **state)
{
	uint8_t b[24 + 56 + 8];
	struct nb_pcp_response r;

	(void)state;
	memset(b, 0, sizeof(b));
	b[0] = 2;
	b[1] = 0x80 | NB_PCP_OP_ANNOUNCE;
	b[11] = 7;
	assert_int_equal(decode(b, 24, &r), 0);
	assert_int_equal(r.opcode, NB_PCP_OP_ANNOUNCE);
	assert_int_equal(r.epoch, 7);
	assert_false(r.has_map);
	/* PEER (§12.2): 56-byte payload; decoded as a header only */
	b[1] = 0x80 | NB_PCP_OP_PEER;
	assert_int_equal(decode(b, 24 + 56, &r), 0);
	assert_int_equal(r.opcode, NB_PCP_OP_PEER);
	assert_false(r.has_map);
	assert_int_equal(decode(b, 24 + 36, &r), -EINVAL); /* short payload */
	b[3] = NB_PCP_NO_RESOURCES;
	assert_int_equal(decode(b, 24, &r), 0); /* header-only error */
	/* an opcode we never send: the header, for the caller to drop */
	b[1] = 0x80 | 0x55;
	b[3] = 0;
	assert_int_equal(decode(b, sizeof(b), &r), 0);
	assert_int_equal(r.opcode, 0x55);
	assert_false(r.has_map);
}

/* Every result code on a MAP response, with and without the payload. */
static void test_decode_result_codes(void **state)
{
	uint8_t b[60];
	struct nb_pcp_response r;

	(void)state;
	for (unsigned code = 0; code < 256; code++) {
		map_response(b, (uint8_t)code, 1800, 5, ip_203);
		assert_int_equal(decode(b, 60, &r), 0);
		assert_int_equal(r.result, code);
		assert_int_equal(r.lifetime, 1800); /* on error: how long it holds */
		assert_true(r.has_map);
		assert_int_equal(r.map.internal_port, 4660);
		if (code == NB_PCP_SUCCESS) {
			assert_int_equal(decode(b, 24, &r), -EINVAL);
		} else {
			assert_int_equal(decode(b, 24, &r), 0);
			assert_int_equal(r.result, code);
			assert_false(r.has_map);
		}
	}
}

static size_t add_option(uint8_t *b, size_t off, uint8_t code, uint16_t len, uint8_t fill)
{
	size_t padded = (len + 3u) & ~3u;

	b[off] = code;
	b[off + 1] = 0;
	b[off + 2] = (uint8_t)(len >> 8);
	b[off + 3] = (uint8_t)len;
	memset(b + off + 4, fill, len);
	memset(b + off + 4 + len, 0, padded - len);
	return off + 4 + padded;
}

static void test_options(void **state)
{
	uint8_t b[NB_PCP_MAX + 8];
	struct nb_pcp_response r;
	size_t n;

	(void)state;
	map_response(b, 0, 100, 1, ip_203);
	n = add_option(b, 60, 1, 16, 0x11);    /* THIRD_PARTY: mandatory, still ignored */
	n = add_option(b, n, 0, 0, 0);         /* zero length */
	n = add_option(b, n, 0x80, 5, 0x22);   /* optional, padded 5 -> 8 */
	n = add_option(b, n, 0xFF, 1, 0x33);
	assert_int_equal(n, 60 + 20 + 4 + 12 + 8);
	assert_int_equal(decode(b, n, &r), 0);
	assert_true(r.has_map);
	assert_int_equal(r.map.external_port, 50000);

	/* an option longer than what is left */
	map_response(b, 0, 100, 1, ip_203);
	n = add_option(b, 60, 0x80, 8, 0);
	b[62] = 0, b[63] = 12;
	assert_int_equal(decode(b, n, &r), -EINVAL);
	b[62] = 0xFF, b[63] = 0xFF;
	assert_int_equal(decode(b, n, &r), -EINVAL);
	b[62] = 0, b[63] = 9; /* 9 pads to 12: past the end */
	assert_int_equal(decode(b, n, &r), -EINVAL);
	b[63] = 8;
	assert_int_equal(decode(b, n, &r), 0);

	/* on an ANNOUNCE response, options start right after the header */
	memset(b, 0, 24);
	b[0] = 2, b[1] = 0x80;
	n = add_option(b, 24, 0x80, 3, 1);
	assert_int_equal(decode(b, n, &r), 0);
	b[27] = 5;
	assert_int_equal(decode(b, n, &r), -EINVAL);

	/* exactly 1100 bytes with one big option; 1104 is too long */
	map_response(b, 0, 100, 1, ip_203);
	n = add_option(b, 60, 0x80, NB_PCP_MAX - 60 - 4, 0x44);
	assert_int_equal(n, NB_PCP_MAX);
	assert_int_equal(decode(b, n, &r), 0);
	map_response(b, 0, 100, 1, ip_203);
	n = add_option(b, 60, 0x80, NB_PCP_MAX - 60, 0x44);
	assert_int_equal(n, NB_PCP_MAX + 4);
	assert_int_equal(decode(b, n, &r), -EINVAL);
}

/* §8.3 framing: too short, too long, not a multiple of 4, R bit clear. */
static void test_framing(void **state)
{
	uint8_t b[72];
	struct nb_pcp_response r;
	size_t n;

	(void)state;
	map_response(b, 0, 100, 1, ip_203);
	n = add_option(b, 60, 0x80, 4, 9);
	assert_int_equal(n, 68);
	/* every prefix: only the two whole messages (without/with the option) */
	for (size_t len = 0; len <= n; len++)
		assert_int_equal(decode(b, len, &r), (len == 60 || len == 68) ? 0 : -EINVAL);
	/* an error response: also the header alone */
	b[3] = NB_PCP_NOT_AUTHORIZED;
	for (size_t len = 0; len <= n; len++)
		assert_int_equal(decode(b, len, &r), (len == 24 || len == 60 || len == 68) ? 0 : -EINVAL);
	/* trailing bytes that do not make a multiple of 4 */
	b[3] = 0;
	memset(b + 60, 0, 12);
	assert_int_equal(decode(b, 61, &r), -EINVAL);
	assert_int_equal(decode(b, 62, &r), -EINVAL);
	assert_int_equal(decode(b, 63, &r), -EINVAL);
	assert_int_equal(decode(b, 64, &r), 0); /* one empty option, code 0 */
	/* where no option walk runs: an unknown opcode, another version */
	b[1] = 0x80 | 0x55;
	for (size_t len = 24; len <= 64; len++)
		assert_int_equal(decode(b, len, &r), len % 4 ? -EINVAL : 0);
	b[0] = 1, b[1] = 0x81, b[3] = NB_PCP_UNSUPP_VERSION;
	for (size_t len = 24; len <= 64; len++)
		assert_int_equal(decode(b, len, &r), len % 4 ? -EINVAL : 0);
	b[0] = 2, b[3] = 0;
	/* R bit */
	b[1] = NB_PCP_OP_MAP;
	assert_int_equal(decode(b, 60, &r), -EINVAL);
	assert_int_equal(nb_pcp_decode(NULL, 60, &r), -EINVAL);
	b[1] = 0x81;
	assert_int_equal(nb_pcp_decode(b, 60, NULL), -EINVAL);
}

/* §9: version 0 is NAT-PMP (nb_natpmp_decode takes it); another version
 * only as UNSUPP_VERSION, and then only the header is read. */
static void test_versions(void **state)
{
	static const uint8_t natpmp_unsupp[8] = { 0, 129, 0, 1, 0, 0, 0, 3 };
	uint8_t b[64];
	struct nb_pcp_response r;
	struct nb_natpmp_response nr;

	(void)state;
	for (unsigned v = 0; v < 256; v++) {
		map_response(b, 0, 100, 1, ip_203);
		b[0] = (uint8_t)v;
		assert_int_equal(decode(b, 60, &r), v == 2 ? 0 : -EINVAL);
		b[3] = NB_PCP_UNSUPP_VERSION;
		assert_int_equal(decode(b, 60, &r), v == 0 ? -EINVAL : 0);
		if (v != 0) {
			assert_int_equal(r.version, v);
			assert_int_equal(r.result, NB_PCP_UNSUPP_VERSION);
			assert_int_equal(r.has_map, v == 2);
			assert_int_equal(decode(b, 24, &r), 0);
			assert_false(r.has_map);
		}
	}
	/* a NAT-PMP-only gateway's answer to our MAP: 8 bytes, version 0 */
	assert_int_equal(decode(natpmp_unsupp, 8, &r), -EINVAL);
	assert_int_equal(nb_natpmp_decode(natpmp_unsupp, 8, &nr), 0);
	assert_int_equal(nr.result, NB_NATPMP_UNSUPP_VERSION);
	/* even padded to a PCP header's length */
	memset(b, 0, 24);
	memcpy(b, natpmp_unsupp, 8);
	assert_int_equal(decode(b, 24, &r), -EINVAL);
}

static bool same(const struct nb_pcp_response *a, const struct nb_pcp_response *b)
{
	return a->version == b->version && a->opcode == b->opcode && a->result == b->result &&
	       a->lifetime == b->lifetime && a->epoch == b->epoch && a->has_map == b->has_map &&
	       memcmp(a->map.nonce, b->map.nonce, 12) == 0 && a->map.protocol == b->map.protocol &&
	       a->map.internal_port == b->map.internal_port &&
	       a->map.external_port == b->map.external_port &&
	       a->map.external_ip.family == b->map.external_ip.family &&
	       memcmp(a->map.external_ip.ip, b->map.external_ip.ip, 16) == 0;
}

/* Every bit of a MAP success flipped: reserved bits (byte 2, 12..23, 37..39)
 * change nothing; version and R are refused; every other flip is refused or
 * shows in the decoded response. */
static void test_bit_flips(void **state)
{
	uint8_t b[60], orig_b[60];
	struct nb_pcp_response orig, r;

	(void)state;
	map_response(orig_b, 0, 7200, 1234, ip_203);
	assert_int_equal(decode(orig_b, 60, &orig), 0);
	for (size_t i = 0; i < 60; i++) {
		bool reserved = i == 2 || (i >= 12 && i < 24) || (i >= 37 && i < 40);

		for (unsigned bit = 0; bit < 8; bit++) {
			int rc;

			memcpy(b, orig_b, 60);
			b[i] ^= (uint8_t)(1u << bit);
			rc = decode(b, 60, &r);
			if (i == 0 || (i == 1 && bit == 7)) {
				assert_int_equal(rc, -EINVAL);
			} else if (reserved) {
				assert_int_equal(rc, 0);
				assert_true(same(&r, &orig));
			} else if (rc == 0) {
				assert_false(same(&r, &orig));
			}
		}
	}
}

static void test_result_strings(void **state)
{
	const char *unknown = nb_pcp_result_string(14);

	(void)state;
	assert_string_equal(unknown, "unknown result code");
	assert_string_equal(nb_pcp_result_string(255), unknown);
	for (unsigned a = 0; a <= 13; a++) {
		const char *s = nb_pcp_result_string((uint8_t)a);

		assert_non_null(s);
		assert_true(strlen(s) > 5);
		assert_string_not_equal(s, unknown);
		for (unsigned b = 0; b < a; b++)
			assert_string_not_equal(s, nb_pcp_result_string((uint8_t)b));
	}
}

/* §7.4: "This is a short lifetime error" on 7, 8, 10, 11; long on the rest. */
static void test_transient(void **state)
{
	(void)state;
	for (unsigned c = 0; c < 256; c++)
		assert_int_equal(nb_pcp_result_is_transient((uint8_t)c),
				 c == NB_PCP_NETWORK_FAILURE || c == NB_PCP_NO_RESOURCES ||
					 c == NB_PCP_USER_EX_QUOTA || c == NB_PCP_CANNOT_PROVIDE_EXTERNAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_announce),
		cmocka_unit_test(test_encode_map_v4),
		cmocka_unit_test(test_encode_map_v6),
		cmocka_unit_test(test_encode_map_invalid),
		cmocka_unit_test(test_decode_map_success),
		cmocka_unit_test(test_miniupnpd_v6_pinhole),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_decode_announce_and_peer),
		cmocka_unit_test(test_decode_result_codes),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_result_strings),
		cmocka_unit_test(test_transient),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
