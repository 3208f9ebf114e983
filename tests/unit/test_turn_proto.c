/* tests/unit/test_turn_proto.c - TURN codec: attribute round trips and wrong lengths,
 * ChannelData framing (truncation, padding, channel range, guard page), TCP frame lengths,
 * long-term key and TURN REST credentials against independently computed vectors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/bytes.h"
#include "proto/stun.h"
#include "proto/turn.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const uint8_t tid[NB_STUN_TID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

/* RFC 5769 §2.4 (request with long-term authentication), as in test_stun.c. */
static const uint8_t rfc5769_req_lt[] = {
	0x00, 0x01, 0x00, 0x60, 0x21, 0x12, 0xa4, 0x42, 0x78, 0xad, 0x34, 0x33, 0xc6, 0xad,
	0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e, 0x00, 0x06, 0x00, 0x12, 0xe3, 0x83, 0x9e, 0xe3,
	0x83, 0x88, 0xe3, 0x83, 0xaa, 0xe3, 0x83, 0x83, 0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9,
	0x00, 0x00, 0x00, 0x15, 0x00, 0x1c, 0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39,
	0x35, 0x34, 0x64, 0x36, 0x4f, 0x4c, 0x33, 0x34, 0x6f, 0x4c, 0x39, 0x46, 0x53, 0x54,
	0x76, 0x79, 0x36, 0x34, 0x73, 0x41, 0x00, 0x14, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d,
	0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72, 0x67, 0x00, 0x00, 0x08, 0x00, 0x14, 0xf6, 0x70,
	0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e, 0x02, 0xb8, 0xe0, 0x71, 0x2e, 0x85, 0xc9, 0xa2,
	0x8c, 0xa8, 0x96, 0x66,
};
/* U+30DE U+30C8 U+30EA U+30C3 U+30AF U+30B9 in UTF-8. */
static const uint8_t rfc5769_lt_user[] = { 0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88, 0xe3, 0x83, 0xaa,
					   0xe3, 0x83, 0x83, 0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9 };
static const char rfc5769_lt_nonce[] = "f//499k954d6OL34oL9FSTvy64sA";
static const char rfc5769_lt_realm[] = "example.org";
static const char rfc5769_lt_pwd[] = "TheMatrIX"; /* "The\u00ADM\u00AAtr\u2168" after SASLprep */

/* printf '%s' 'マトリックス:example.org:TheMatrIX' | md5sum */
static const uint8_t rfc5769_lt_key[16] = { 0xe8, 0xca, 0x7a, 0xd5, 0x9d, 0x5e, 0xb0, 0x51,
					    0x8e, 0x31, 0x29, 0x11, 0xd2, 0xda, 0xb2, 0xa9 };
/* printf 'user:realm:pass' | md5sum */
static const uint8_t urp_key[16] = { 0x84, 0x93, 0xfb, 0xc5, 0x3b, 0xa5, 0x82, 0xfb,
				     0x4c, 0x04, 0x4c, 0x45, 0x6b, 0xdc, 0x40, 0xeb };
/* printf '%s' 1700000000:alice | openssl dgst -sha1 -hmac north-secret -binary | base64 */
static const char rest_user[] = "1700000000:alice";
static const char rest_secret[] = "north-secret";
static const char rest_pwd[] = "g+jb180fcj+xlpA/2mP60OdIgU0=";

/* An authenticated Allocate request captured (tcpdump -i lo) from
 * `turnutils_uclient -W north-secret -u alice` against coturn 4.x run as
 * `turnserver --use-auth-secret --static-auth-secret=north-secret
 * --realm=natbroker`: REQUESTED-TRANSPORT, LIFETIME, EVEN-PORT, USERNAME
 * "1796717833:alice", NONCE, REALM, MESSAGE-INTEGRITY, FINGERPRINT. Its
 * MESSAGE-INTEGRITY was computed by coturn's client with the key
 * MD5(user ":" realm ":" base64(HMAC-SHA1(secret, user))). */
static const uint8_t coturn_alloc[] = {
	0x00, 0x03, 0x00, 0x70, 0x21, 0x12, 0xa4, 0x42, 0xd1, 0x2a, 0xb9, 0xeb,
	0x21, 0x16, 0x85, 0x5a, 0x33, 0xe9, 0xac, 0x8c, 0x00, 0x19, 0x00, 0x04,
	0x11, 0x00, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x00, 0x03, 0x09,
	0x00, 0x18, 0x00, 0x01, 0x80, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x10,
	0x31, 0x37, 0x39, 0x36, 0x37, 0x31, 0x37, 0x38, 0x33, 0x33, 0x3a, 0x61,
	0x6c, 0x69, 0x63, 0x65, 0x00, 0x15, 0x00, 0x10, 0x33, 0x32, 0x33, 0x30,
	0x31, 0x38, 0x61, 0x63, 0x35, 0x37, 0x39, 0x30, 0x39, 0x61, 0x32, 0x61,
	0x00, 0x14, 0x00, 0x09, 0x6e, 0x61, 0x74, 0x62, 0x72, 0x6f, 0x6b, 0x65,
	0x72, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x14, 0x2e, 0x4a, 0x68, 0x59,
	0x1d, 0x5e, 0x97, 0xfd, 0x29, 0x6f, 0xdd, 0x6f, 0xcb, 0xe5, 0x48, 0x54,
	0x32, 0xe5, 0x0f, 0x39, 0x80, 0x28, 0x00, 0x04, 0xdd, 0x29, 0xdf, 0x25,
};

static struct nb_addr addr(const char *s)
{
	struct nb_addr a;
	assert_int_equal(nb_addr_parse(s, false, &a), 0);
	return a;
}

/* Start an Allocate request into buf. */
static void start(struct nb_stun_enc *e, uint8_t *buf, size_t cap)
{
	assert_int_equal(nb_stun_enc_init(e, buf, cap, NB_TURN_METHOD_ALLOCATE, tid, false), 0);
}

/* Decode with STUN and parse the TURN attributes; returns the parse result. */
static int decode_parse(const uint8_t *buf, size_t len, struct nb_stun_msg *m,
			struct nb_turn_attrs *t)
{
	ssize_t n = nb_stun_decode(m, buf, len);
	assert_int_equal(n, (ssize_t)len);
	return nb_turn_attrs_parse(m, buf, len, t);
}

/* A message holding one attribute with the raw value val of n bytes. */
static int parse_one(uint16_t type, const uint8_t *val, size_t n, struct nb_turn_attrs *t)
{
	uint8_t buf[1024];
	struct nb_stun_enc e;
	struct nb_stun_msg m;

	start(&e, buf, sizeof(buf));
	assert_int_equal(nb_stun_enc_attr(&e, type, val, n), 0);
	return decode_parse(buf, nb_stun_enc_len(&e), &m, t);
}

/* ---- Attributes ----------------------------------------------------------- */

static void test_attrs_roundtrip(void **state)
{
	static const uint8_t data[] = { 'h', 'e', 'l', 'l', 'o', 0, 0xff };
	static const uint8_t token[8] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4 };
	static const uint8_t even[1] = { 0x80 };
	static const uint8_t addr_err[] = { 0x02, 0x00, 0x04, 0x40, 'n', 'o', 'p', 'e' };
	static const uint8_t icmp[8] = { 0, 0, 3, 1, 0, 0, 0, 0 };
	uint8_t buf[1024], key[16];
	struct nb_stun_enc e;
	struct nb_stun_msg m;
	struct nb_turn_attrs t;
	struct nb_addr p4 = addr("192.0.2.1:1"), p6 = addr("[2001:db8::1:2]:65535"),
		       p4b = addr("203.0.113.9:49152"), rel = addr("[2001:db8:ffff::9]:50000");
	uint16_t unk[NB_STUN_MAX_UNKNOWN];

	(void)state;
	assert_int_equal(nb_turn_long_term_key((const uint8_t *)"u", 1, (const uint8_t *)"r", 1,
					       (const uint8_t *)"p", 1, key),
			 0);
	start(&e, buf, sizeof(buf));
	assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_CHANNEL_NUMBER, 0x4ABC0000u), 0);
	assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, 0xFFFFFFFFu), 0);
	assert_int_equal(nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_PEER_ADDRESS, &p4), 0);
	assert_int_equal(nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_PEER_ADDRESS, &p6), 0);
	assert_int_equal(nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_PEER_ADDRESS, &p4b), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_DATA, data, sizeof(data)), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_REALM, "natbroker", 9), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_NONCE, "0123456789abcdef", 16), 0);
	assert_int_equal(nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_RELAYED_ADDRESS, &rel), 0);
	assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, 0x02000000u),
			 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_EVEN_PORT, even, 1), 0);
	assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_REQUESTED_TRANSPORT, 17u << 24), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_DONT_FRAGMENT, NULL, 0), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_RESERVATION_TOKEN, token, 8), 0);
	assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY, 0x02000000u),
			 0);
	assert_int_equal(
	    nb_stun_enc_attr(&e, NB_TURN_ATTR_ADDRESS_ERROR_CODE, addr_err, sizeof(addr_err)), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_ICMP, icmp, sizeof(icmp)), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, "u", 1), 0);
	assert_int_equal(nb_stun_enc_integrity(&e, key, 16), 0);
	assert_int_equal(nb_stun_enc_fingerprint(&e), 0);

	assert_int_equal(decode_parse(buf, nb_stun_enc_len(&e), &m, &t), 0);
	assert_int_equal(nb_stun_check_integrity(&m, buf, nb_stun_enc_len(&e), key, 16), 0);
	assert_int_equal(m.method, NB_TURN_METHOD_ALLOCATE);
	assert_int_equal(t.present, 0x7FFFu); /* all fifteen */
	assert_int_equal(t.channel, 0x4ABC);
	assert_int_equal(t.lifetime, 0xFFFFFFFFu);
	assert_int_equal(t.n_peers, 3);
	assert_true(nb_addr_equal(&t.peers[0], &p4));
	assert_true(nb_addr_equal(&t.peers[1], &p6));
	assert_true(nb_addr_equal(&t.peers[2], &p4b));
	assert_int_equal(t.data_len, sizeof(data));
	assert_memory_equal(t.data, data, sizeof(data));
	assert_true(t.data > buf && t.data < buf + nb_stun_enc_len(&e));
	assert_int_equal(t.realm_len, 9);
	assert_memory_equal(t.realm, "natbroker", 9);
	assert_int_equal(t.nonce_len, 16);
	assert_memory_equal(t.nonce, "0123456789abcdef", 16);
	assert_true(nb_addr_equal(&t.relayed, &rel));
	assert_int_equal(t.requested_family, NB_TURN_FAMILY_IPV6);
	assert_true(t.even_port_reserve);
	assert_int_equal(t.requested_transport, NB_TURN_TRANSPORT_UDP);
	assert_memory_equal(t.reservation_token, token, 8);
	assert_int_equal(t.additional_family, NB_TURN_FAMILY_IPV6);

	/* STUN reported the comprehension-required TURN types; TURN knows them. */
	assert_true(m.n_unknown_required > 0);
	assert_int_equal(nb_turn_unknown_required(&m, unk, ARRAY_LEN(unk)), 0);
}

static void test_attrs_xor_wire(void **state)
{
	/* XOR-PEER-ADDRESS with the RFC 5769 §2.2 XOR-MAPPED-ADDRESS value:
	 * 192.0.2.1:32853 under cookie 0x2112A442. */
	static const uint8_t v4[] = { 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43 };
	struct nb_turn_attrs t;
	struct nb_addr want = addr("192.0.2.1:32853");

	(void)state;
	assert_int_equal(parse_one(NB_TURN_ATTR_XOR_PEER_ADDRESS, v4, sizeof(v4), &t), 0);
	assert_int_equal(t.n_peers, 1);
	assert_true(nb_addr_equal(&t.peers[0], &want));
	assert_int_equal(parse_one(NB_TURN_ATTR_XOR_RELAYED_ADDRESS, v4, sizeof(v4), &t), 0);
	assert_true(nb_addr_equal(&t.relayed, &want));
	assert_int_equal(t.present, NB_TURN_HAS_RELAYED);
}

static void test_attrs_edges_accepted(void **state)
{
	static uint8_t big[NB_TURN_MAX_REALM];
	static const uint8_t chan_rffu[] = { 0x40, 0x00, 0xff, 0xff };
	static const uint8_t chan_low[] = { 0x00, 0x01, 0x00, 0x00 };
	static const uint8_t even0[] = { 0x7f };
	static const uint8_t tcp_tr[] = { 6, 0xff, 0xff, 0xff };
	static const uint8_t fam3[] = { 3, 0, 0, 0 };
	struct nb_turn_attrs t;

	(void)state;
	memset(big, 'x', sizeof(big));
	assert_int_equal(parse_one(NB_TURN_ATTR_REALM, big, NB_TURN_MAX_REALM, &t), 0);
	assert_int_equal(t.realm_len, NB_TURN_MAX_REALM);
	assert_int_equal(parse_one(NB_TURN_ATTR_NONCE, big, NB_TURN_MAX_NONCE, &t), 0);
	assert_int_equal(t.nonce_len, NB_TURN_MAX_NONCE);
	assert_int_equal(parse_one(NB_TURN_ATTR_REALM, big, 0, &t), 0);
	assert_int_equal(t.realm_len, 0);
	assert_int_equal(parse_one(NB_TURN_ATTR_DATA, NULL, 0, &t), 0);
	assert_int_equal(t.present, NB_TURN_HAS_DATA);
	assert_int_equal(t.data_len, 0);
	assert_int_equal(parse_one(NB_TURN_ATTR_DATA, big, sizeof(big), &t), 0);
	assert_int_equal(t.data_len, sizeof(big));
	/* RFFU is ignored; out-of-range channels and transports are the
	 * server's to answer (400 / 442 / 440). */
	assert_int_equal(parse_one(NB_TURN_ATTR_CHANNEL_NUMBER, chan_rffu, 4, &t), 0);
	assert_int_equal(t.channel, 0x4000);
	assert_int_equal(parse_one(NB_TURN_ATTR_CHANNEL_NUMBER, chan_low, 4, &t), 0);
	assert_int_equal(t.channel, 0x0001);
	assert_int_equal(parse_one(NB_TURN_ATTR_EVEN_PORT, even0, 1, &t), 0);
	assert_false(t.even_port_reserve);
	assert_int_equal(parse_one(NB_TURN_ATTR_REQUESTED_TRANSPORT, tcp_tr, 4, &t), 0);
	assert_int_equal(t.requested_transport, 6);
	assert_int_equal(parse_one(NB_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, fam3, 4, &t), 0);
	assert_int_equal(t.requested_family, 3);
	/* Unknown and STUN-only attributes are skipped. */
	assert_int_equal(parse_one(0x7ABC, big, 5, &t), 0);
	assert_int_equal(t.present, 0);
	assert_int_equal(parse_one(NB_STUN_ATTR_SOFTWARE, big, 5, &t), 0);
	assert_int_equal(t.present, 0);
}

struct bad_case {
	const char *name;
	uint16_t type;
	uint8_t val[32];
	size_t len;
};

static const struct bad_case bad_cases[] = {
	{ "channel 0", NB_TURN_ATTR_CHANNEL_NUMBER, { 0 }, 0 },
	{ "channel 2", NB_TURN_ATTR_CHANNEL_NUMBER, { 0x40, 0 }, 2 },
	{ "channel 3", NB_TURN_ATTR_CHANNEL_NUMBER, { 0x40, 0, 0 }, 3 },
	{ "channel 5", NB_TURN_ATTR_CHANNEL_NUMBER, { 0x40, 0, 0, 0, 0 }, 5 },
	{ "channel 8", NB_TURN_ATTR_CHANNEL_NUMBER, { 0x40 }, 8 },
	{ "lifetime 0", NB_TURN_ATTR_LIFETIME, { 0 }, 0 },
	{ "lifetime 3", NB_TURN_ATTR_LIFETIME, { 0 }, 3 },
	{ "lifetime 5", NB_TURN_ATTR_LIFETIME, { 0 }, 5 },
	{ "lifetime 8", NB_TURN_ATTR_LIFETIME, { 0 }, 8 },
	{ "peer 0", NB_TURN_ATTR_XOR_PEER_ADDRESS, { 0 }, 0 },
	{ "peer 3", NB_TURN_ATTR_XOR_PEER_ADDRESS, { 0, 1, 0 }, 3 },
	{ "peer 4", NB_TURN_ATTR_XOR_PEER_ADDRESS, { 0, 1, 0, 0 }, 4 },
	{ "peer v4 7", NB_TURN_ATTR_XOR_PEER_ADDRESS, { 0, 1 }, 7 },
	{ "peer v4 9", NB_TURN_ATTR_XOR_PEER_ADDRESS, { 0, 1 }, 9 },
	{ "peer v4 20", NB_TURN_ATTR_XOR_PEER_ADDRESS, { 0, 1 }, 20 },
	{ "peer v6 8", NB_TURN_ATTR_XOR_PEER_ADDRESS, { 0, 2 }, 8 },
	{ "peer v6 19", NB_TURN_ATTR_XOR_PEER_ADDRESS, { 0, 2 }, 19 },
	{ "peer v6 21", NB_TURN_ATTR_XOR_PEER_ADDRESS, { 0, 2 }, 21 },
	{ "peer family 0", NB_TURN_ATTR_XOR_PEER_ADDRESS, { 0, 0 }, 8 },
	{ "peer family 3", NB_TURN_ATTR_XOR_PEER_ADDRESS, { 0, 3 }, 8 },
	{ "peer family 3 len 20", NB_TURN_ATTR_XOR_PEER_ADDRESS, { 0, 3 }, 20 },
	{ "relayed 0", NB_TURN_ATTR_XOR_RELAYED_ADDRESS, { 0 }, 0 },
	{ "relayed v4 12", NB_TURN_ATTR_XOR_RELAYED_ADDRESS, { 0, 1 }, 12 },
	{ "relayed v6 8", NB_TURN_ATTR_XOR_RELAYED_ADDRESS, { 0, 2 }, 8 },
	{ "relayed family 4", NB_TURN_ATTR_XOR_RELAYED_ADDRESS, { 0, 4 }, 8 },
	{ "req family 0", NB_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, { 1 }, 0 },
	{ "req family 1", NB_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, { 1 }, 1 },
	{ "req family 3", NB_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, { 1 }, 3 },
	{ "req family 5", NB_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, { 1 }, 5 },
	{ "add family 0", NB_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY, { 2 }, 0 },
	{ "add family 2", NB_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY, { 2 }, 2 },
	{ "add family 8", NB_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY, { 2 }, 8 },
	{ "even port 0", NB_TURN_ATTR_EVEN_PORT, { 0 }, 0 },
	{ "even port 2", NB_TURN_ATTR_EVEN_PORT, { 0x80 }, 2 },
	{ "even port 4", NB_TURN_ATTR_EVEN_PORT, { 0x80 }, 4 },
	{ "transport 0", NB_TURN_ATTR_REQUESTED_TRANSPORT, { 17 }, 0 },
	{ "transport 1", NB_TURN_ATTR_REQUESTED_TRANSPORT, { 17 }, 1 },
	{ "transport 3", NB_TURN_ATTR_REQUESTED_TRANSPORT, { 17 }, 3 },
	{ "transport 5", NB_TURN_ATTR_REQUESTED_TRANSPORT, { 17 }, 5 },
	{ "dont fragment 1", NB_TURN_ATTR_DONT_FRAGMENT, { 0 }, 1 },
	{ "dont fragment 4", NB_TURN_ATTR_DONT_FRAGMENT, { 0 }, 4 },
	{ "token 0", NB_TURN_ATTR_RESERVATION_TOKEN, { 0 }, 0 },
	{ "token 4", NB_TURN_ATTR_RESERVATION_TOKEN, { 0 }, 4 },
	{ "token 7", NB_TURN_ATTR_RESERVATION_TOKEN, { 0 }, 7 },
	{ "token 9", NB_TURN_ATTR_RESERVATION_TOKEN, { 0 }, 9 },
	{ "token 16", NB_TURN_ATTR_RESERVATION_TOKEN, { 0 }, 16 },
	{ "address error 0", NB_TURN_ATTR_ADDRESS_ERROR_CODE, { 0 }, 0 },
	{ "address error 3", NB_TURN_ATTR_ADDRESS_ERROR_CODE, { 1, 0, 4 }, 3 },
	{ "address error class 2", NB_TURN_ATTR_ADDRESS_ERROR_CODE, { 1, 0, 2, 0 }, 4 },
	{ "address error class 7", NB_TURN_ATTR_ADDRESS_ERROR_CODE, { 1, 0, 7, 0 }, 4 },
	{ "address error number 100", NB_TURN_ATTR_ADDRESS_ERROR_CODE, { 1, 0, 4, 100 }, 4 },
	{ "icmp 0", NB_TURN_ATTR_ICMP, { 0 }, 0 },
	{ "icmp 4", NB_TURN_ATTR_ICMP, { 0 }, 4 },
	{ "icmp 12", NB_TURN_ATTR_ICMP, { 0 }, 12 },
};

static void test_attrs_wrong_length(void **state)
{
	static uint8_t big[NB_TURN_MAX_REALM + 1];
	struct nb_turn_attrs t, sentinel;

	(void)state;
	memset(&sentinel, 0xA5, sizeof(sentinel));
	for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		int rc;

		memcpy(&t, &sentinel, sizeof(t));
		rc = parse_one(c->type, c->val, c->len, &t);
		if (rc != NB_TURN_E_BAD_ATTR)
			fail_msg("%s: got %d", c->name, rc);
		assert_memory_equal(&t, &sentinel, sizeof(t)); /* untouched */
	}
	memset(big, 'x', sizeof(big));
	assert_int_equal(parse_one(NB_TURN_ATTR_REALM, big, sizeof(big), &t), NB_TURN_E_BAD_ATTR);
	assert_int_equal(parse_one(NB_TURN_ATTR_NONCE, big, sizeof(big), &t), NB_TURN_E_BAD_ATTR);

	/* A later duplicate is validated too. */
	{
		uint8_t buf[128];
		struct nb_stun_enc e;
		struct nb_stun_msg m;

		start(&e, buf, sizeof(buf));
		assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, 600), 0);
		assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_LIFETIME, "ab", 2), 0);
		assert_int_equal(decode_parse(buf, nb_stun_enc_len(&e), &m, &t),
				 NB_TURN_E_BAD_ATTR);
	}
}

static void test_attrs_duplicates_first_wins(void **state)
{
	uint8_t buf[256];
	struct nb_stun_enc e;
	struct nb_stun_msg m;
	struct nb_turn_attrs t;
	struct nb_addr r1 = addr("192.0.2.7:1000"), r2 = addr("[2001:db8::7]:1001");

	(void)state;
	start(&e, buf, sizeof(buf));
	assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, 600), 0);
	assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, 0), 0);
	assert_int_equal(nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_RELAYED_ADDRESS, &r1), 0);
	assert_int_equal(nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_RELAYED_ADDRESS, &r2), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_REALM, "one", 3), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_REALM, "two!", 4), 0);
	assert_int_equal(decode_parse(buf, nb_stun_enc_len(&e), &m, &t), 0);
	assert_int_equal(t.lifetime, 600);
	assert_true(nb_addr_equal(&t.relayed, &r1));
	assert_int_equal(t.realm_len, 3);
	assert_memory_equal(t.realm, "one", 3);
}

static void test_attrs_too_many_peers(void **state)
{
	uint8_t buf[512];
	struct nb_stun_enc e;
	struct nb_stun_msg m;
	struct nb_turn_attrs t, sentinel;
	struct nb_addr p = addr("198.51.100.1:4000");

	(void)state;
	memset(&sentinel, 0x5A, sizeof(sentinel));
	start(&e, buf, sizeof(buf));
	for (size_t i = 0; i < NB_TURN_MAX_PEER_ATTRS; i++) {
		p.ip[3] = (uint8_t)(i + 1);
		assert_int_equal(nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_PEER_ADDRESS, &p), 0);
	}
	assert_int_equal(decode_parse(buf, nb_stun_enc_len(&e), &m, &t), 0);
	assert_int_equal(t.n_peers, NB_TURN_MAX_PEER_ATTRS);
	for (size_t i = 0; i < NB_TURN_MAX_PEER_ATTRS; i++)
		assert_int_equal(t.peers[i].ip[3], i + 1);

	p.ip[3] = 99;
	assert_int_equal(nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_PEER_ADDRESS, &p), 0);
	memcpy(&t, &sentinel, sizeof(t));
	assert_int_equal(decode_parse(buf, nb_stun_enc_len(&e), &m, &t), NB_TURN_E_TOO_MANY);
	assert_memory_equal(&t, &sentinel, sizeof(t));
}

static void test_attrs_stop_at_integrity(void **state)
{
	uint8_t buf[256];
	struct nb_stun_enc e;
	struct nb_stun_msg m;
	struct nb_turn_attrs t;
	size_t lifetime_off;

	(void)state;
	start(&e, buf, sizeof(buf));
	assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_CHANNEL_NUMBER, 0x40000000u), 0);
	lifetime_off = nb_stun_enc_len(&e);
	assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, 77), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_LIFETIME, "bad", 3), 0);
	assert_int_equal(nb_stun_decode(&m, buf, nb_stun_enc_len(&e)), (ssize_t)nb_stun_enc_len(&e));
	assert_int_equal(nb_turn_attrs_parse(&m, buf, nb_stun_enc_len(&e), &t), NB_TURN_E_BAD_ATTR);

	/* The STUN decoder refuses attributes after MESSAGE-INTEGRITY, so
	 * pretend one sits where LIFETIME is: nothing from there is read. */
	m.integrity_off = lifetime_off;
	assert_int_equal(nb_turn_attrs_parse(&m, buf, nb_stun_enc_len(&e), &t), 0);
	assert_int_equal(t.present, NB_TURN_HAS_CHANNEL);
	m.integrity_off = 0;
	m.integrity_sha256_off = lifetime_off;
	assert_int_equal(nb_turn_attrs_parse(&m, buf, nb_stun_enc_len(&e), &t), 0);
	assert_int_equal(t.present, NB_TURN_HAS_CHANNEL);
	m.integrity_sha256_off = lifetime_off + 8;
	assert_int_equal(nb_turn_attrs_parse(&m, buf, nb_stun_enc_len(&e), &t), 0);
	assert_int_equal(t.present, NB_TURN_HAS_CHANNEL | NB_TURN_HAS_LIFETIME);
	assert_int_equal(t.lifetime, 77);
	/* An offset that splits an attribute is refused, not over-read. */
	m.integrity_sha256_off = lifetime_off + 2;
	assert_int_equal(nb_turn_attrs_parse(&m, buf, nb_stun_enc_len(&e), &t),
			 NB_TURN_E_TRUNCATED);
}

static void test_attrs_inval(void **state)
{
	static const uint8_t classic[] = { 0x00, 0x03, 0x00, 0x08, 0x5c, 0x1f, 0x30, 0x9a, 0x0b, 0x6d,
					   0x2e, 0x41, 0x91, 0x77, 0xc8, 0x02, 0xd3, 0x4a, 0x10, 0xee,
					   0x00, 0x0d, 0x00, 0x04, 0x00, 0x00, 0x02, 0x58 };
	uint8_t buf[64];
	struct nb_stun_enc e;
	struct nb_stun_msg m;
	struct nb_turn_attrs t;

	(void)state;
	assert_int_equal(nb_stun_decode(&m, classic, sizeof(classic)), (ssize_t)sizeof(classic));
	assert_true(m.classic);
	assert_int_equal(nb_turn_attrs_parse(&m, classic, sizeof(classic), &t), NB_TURN_E_INVAL);

	start(&e, buf, sizeof(buf));
	assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, 5), 0);
	assert_int_equal(nb_stun_decode(&m, buf, nb_stun_enc_len(&e)), 28);
	assert_int_equal(nb_turn_attrs_parse(NULL, buf, 28, &t), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_attrs_parse(&m, NULL, 28, &t), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_attrs_parse(&m, buf, 28, NULL), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_attrs_parse(&m, buf, 19, &t), NB_TURN_E_TRUNCATED);
	assert_int_equal(nb_turn_attrs_parse(&m, buf, 24, &t), NB_TURN_E_INVAL); /* msg != buf */
	assert_int_equal(nb_turn_attrs_parse(&m, buf, 32, &t), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_attrs_parse(&m, buf, 28, &t), 0);
	assert_int_equal(t.lifetime, 5);
}

static void test_unknown_required(void **state)
{
	uint8_t buf[256];
	struct nb_stun_enc e;
	struct nb_stun_msg m;
	uint16_t unk[NB_STUN_MAX_UNKNOWN];
	static const uint16_t turn_types[] = {
		NB_TURN_ATTR_CHANNEL_NUMBER,	     NB_TURN_ATTR_LIFETIME,
		NB_TURN_ATTR_DATA,		     NB_TURN_ATTR_REALM,
		NB_TURN_ATTR_NONCE,		     NB_TURN_ATTR_EVEN_PORT,
		NB_TURN_ATTR_DONT_FRAGMENT,
	};

	(void)state;
	start(&e, buf, sizeof(buf));
	assert_int_equal(nb_stun_enc_attr(&e, 0x7001, NULL, 0), 0);
	assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, 1), 0);
	assert_int_equal(nb_stun_enc_attr(&e, 0x0030, NULL, 0), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_DONT_FRAGMENT, NULL, 0), 0);
	assert_int_equal(nb_stun_enc_attr(&e, 0x8555, NULL, 0), 0); /* optional: not reported */
	assert_int_equal(nb_stun_decode(&m, buf, nb_stun_enc_len(&e)), (ssize_t)nb_stun_enc_len(&e));
	assert_int_equal(m.n_unknown_required, 4);
	memset(unk, 0, sizeof(unk));
	assert_int_equal(nb_turn_unknown_required(&m, unk, ARRAY_LEN(unk)), 2);
	assert_int_equal(unk[0], 0x7001);
	assert_int_equal(unk[1], 0x0030);
	/* max bounds the copy, not the count. */
	memset(unk, 0, sizeof(unk));
	assert_int_equal(nb_turn_unknown_required(&m, unk, 1), 2);
	assert_int_equal(unk[0], 0x7001);
	assert_int_equal(unk[1], 0);
	assert_int_equal(nb_turn_unknown_required(&m, NULL, 0), 2);
	assert_int_equal(nb_turn_unknown_required(NULL, unk, 1), 0);

	/* Every TURN type, then a truly unknown one: still reported. */
	start(&e, buf, sizeof(buf));
	for (size_t i = 0; i < ARRAY_LEN(turn_types); i++)
		assert_int_equal(nb_stun_enc_attr(&e, turn_types[i], NULL, 0), 0);
	assert_int_equal(nb_stun_enc_attr(&e, 0x7FFF, NULL, 0), 0);
	assert_int_equal(nb_stun_decode(&m, buf, nb_stun_enc_len(&e)), (ssize_t)nb_stun_enc_len(&e));
	assert_int_equal(nb_turn_unknown_required(&m, unk, ARRAY_LEN(unk)), 1);
	assert_int_equal(unk[0], 0x7FFF);
}

/* ---- RFC 5769 and credentials --------------------------------------------- */

static void test_rfc5769_long_term(void **state)
{
	uint8_t key[NB_TURN_KEY_LEN];
	struct nb_stun_msg m;
	struct nb_turn_attrs t;
	uint16_t unk[4];

	(void)state;
	assert_int_equal(nb_turn_long_term_key(rfc5769_lt_user, sizeof(rfc5769_lt_user),
					       (const uint8_t *)rfc5769_lt_realm,
					       strlen(rfc5769_lt_realm),
					       (const uint8_t *)rfc5769_lt_pwd,
					       strlen(rfc5769_lt_pwd), key),
			 0);
	assert_memory_equal(key, rfc5769_lt_key, 16);

	assert_int_equal(decode_parse(rfc5769_req_lt, sizeof(rfc5769_req_lt), &m, &t), 0);
	assert_int_equal(t.present, NB_TURN_HAS_REALM | NB_TURN_HAS_NONCE);
	assert_int_equal(t.realm_len, strlen(rfc5769_lt_realm));
	assert_memory_equal(t.realm, rfc5769_lt_realm, t.realm_len);
	assert_int_equal(t.nonce_len, strlen(rfc5769_lt_nonce));
	assert_memory_equal(t.nonce, rfc5769_lt_nonce, t.nonce_len);
	assert_int_equal(m.n_unknown_required, 2); /* REALM, NONCE: not STUN's */
	assert_int_equal(nb_turn_unknown_required(&m, unk, ARRAY_LEN(unk)), 0);

	/* The key we derive checks the RFC's MESSAGE-INTEGRITY; a wrong
	 * password does not. */
	assert_int_equal(nb_stun_check_integrity(&m, rfc5769_req_lt, sizeof(rfc5769_req_lt), key,
						 sizeof(key)),
			 0);
	assert_int_equal(nb_turn_long_term_key(rfc5769_lt_user, sizeof(rfc5769_lt_user),
					       (const uint8_t *)rfc5769_lt_realm,
					       strlen(rfc5769_lt_realm),
					       (const uint8_t *)"TheMatrix", 9, key),
			 0);
	assert_int_equal(nb_stun_check_integrity(&m, rfc5769_req_lt, sizeof(rfc5769_req_lt), key,
						 sizeof(key)),
			 NB_STUN_E_INTEGRITY);
}

static void test_long_term_key(void **state)
{
	uint8_t key[NB_TURN_KEY_LEN], sentinel[NB_TURN_KEY_LEN];

	(void)state;
	assert_int_equal(nb_turn_long_term_key((const uint8_t *)"user", 4,
					       (const uint8_t *)"realm", 5,
					       (const uint8_t *)"pass", 4, key),
			 0);
	assert_memory_equal(key, urp_key, 16);
	/* Field boundaries matter only through the colons. */
	assert_int_equal(nb_turn_long_term_key((const uint8_t *)"user:realm", 10, NULL, 0,
					       (const uint8_t *)"pass", 4, key),
			 0);
	assert_memory_not_equal(key, urp_key, 16);
	assert_int_equal(nb_turn_long_term_key(NULL, 0, NULL, 0, NULL, 0, key), 0);
	memset(sentinel, 0x33, sizeof(sentinel));
	memcpy(key, sentinel, sizeof(key));
	assert_int_equal(nb_turn_long_term_key(NULL, 1, NULL, 0, NULL, 0, key), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_long_term_key(NULL, 0, NULL, 1, NULL, 0, key), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_long_term_key(NULL, 0, NULL, 0, NULL, 1, key), NB_TURN_E_INVAL);
	assert_memory_equal(key, sentinel, sizeof(key));
	assert_int_equal(nb_turn_long_term_key(NULL, 0, NULL, 0, NULL, 0, NULL), NB_TURN_E_INVAL);
}

static void test_rest_password(void **state)
{
	char pwd[NB_TURN_REST_PASSWORD_LEN + 1];

	(void)state;
	assert_int_equal(nb_turn_rest_password((const uint8_t *)rest_secret, strlen(rest_secret),
					       (const uint8_t *)rest_user, strlen(rest_user), pwd),
			 0);
	assert_int_equal(strlen(pwd), NB_TURN_REST_PASSWORD_LEN);
	assert_string_equal(pwd, rest_pwd);
	/* Wrong secret, wrong user, one byte shorter: all differ. */
	assert_int_equal(nb_turn_rest_password((const uint8_t *)rest_secret,
					       strlen(rest_secret) - 1,
					       (const uint8_t *)rest_user, strlen(rest_user), pwd),
			 0);
	assert_string_not_equal(pwd, rest_pwd);
	assert_int_equal(nb_turn_rest_password((const uint8_t *)rest_secret, strlen(rest_secret),
					       (const uint8_t *)rest_user, strlen(rest_user) - 1,
					       pwd),
			 0);
	assert_string_not_equal(pwd, rest_pwd);
	/* Empty secret and username are legal HMAC inputs. */
	assert_int_equal(nb_turn_rest_password(NULL, 0, NULL, 0, pwd), 0);
	assert_int_equal(strlen(pwd), NB_TURN_REST_PASSWORD_LEN);
	assert_int_equal(nb_turn_rest_password(NULL, 3, NULL, 0, pwd), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_rest_password(NULL, 0, NULL, 3, pwd), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_rest_password(NULL, 0, NULL, 0, NULL), NB_TURN_E_INVAL);
}

static void test_rest_username(void **state)
{
	char out[NB_TURN_REST_USER_MAX + 1], big[NB_TURN_REST_USER_MAX + 2];
	uint64_t exp;
	const uint8_t *u;
	size_t ulen;

	(void)state;
	assert_int_equal(nb_turn_rest_username(1700000000u, "alice", out, sizeof(out)), 16);
	assert_string_equal(out, rest_user);
	assert_int_equal(nb_turn_rest_username(0, "a", out, sizeof(out)), 3);
	assert_string_equal(out, "0:a");
	assert_int_equal(nb_turn_rest_username(UINT64_MAX, "a:b", out, sizeof(out)), 24);
	assert_string_equal(out, "18446744073709551615:a:b");
	assert_int_equal(nb_turn_rest_split((const uint8_t *)out, strlen(out), &exp, &u, &ulen), 0);
	assert_true(exp == UINT64_MAX);
	assert_int_equal(ulen, 3);
	assert_memory_equal(u, "a:b", 3);

	/* Capacity: exactly length + NUL fits, one less does not. */
	memset(out, 'Z', sizeof(out));
	assert_int_equal(nb_turn_rest_username(12, "bob", out, 7), 6);
	assert_string_equal(out, "12:bob");
	memset(out, 'Z', sizeof(out));
	assert_int_equal(nb_turn_rest_username(12, "bob", out, 6), NB_TURN_E_NOSPACE);
	assert_int_equal(out[0], 'Z');
	assert_int_equal(nb_turn_rest_username(12, "bob", out, 0), NB_TURN_E_NOSPACE);

	assert_int_equal(nb_turn_rest_username(1, "", out, sizeof(out)), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_rest_username(1, "a\nb", out, sizeof(out)), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_rest_username(1, "a\x7f", out, sizeof(out)), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_rest_username(1, "\x1f", out, sizeof(out)), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_rest_username(1, NULL, out, sizeof(out)), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_rest_username(1, "a", NULL, 10), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_rest_username(1, "caf\xc3\xa9", out, sizeof(out)), 7);

	/* The whole username is at most NB_TURN_REST_USER_MAX bytes. */
	memset(big, 'u', sizeof(big));
	big[NB_TURN_REST_USER_MAX - 2] = '\0'; /* "1:" + 126 = 128 */
	assert_int_equal(nb_turn_rest_username(1, big, out, sizeof(out)), NB_TURN_REST_USER_MAX);
	big[NB_TURN_REST_USER_MAX - 2] = 'u';
	big[NB_TURN_REST_USER_MAX - 1] = '\0';
	assert_int_equal(nb_turn_rest_username(1, big, out, sizeof(out)), NB_TURN_E_INVAL);
	big[NB_TURN_REST_USER_MAX - 1] = 'u';
	big[NB_TURN_REST_USER_MAX + 1] = '\0';
	assert_int_equal(nb_turn_rest_username(1, big, out, sizeof(out)), NB_TURN_E_INVAL);
}

struct split_case {
	const char *in;
	int rc;
	uint64_t expiry;
	const char *user;
};

static const struct split_case split_cases[] = {
	{ "", NB_TURN_E_CREDENTIALS, 0, NULL },
	{ ":", NB_TURN_E_CREDENTIALS, 0, NULL },
	{ ":alice", NB_TURN_E_CREDENTIALS, 0, NULL },
	{ "1700000000", NB_TURN_E_CREDENTIALS, 0, NULL },        /* no colon */
	{ "alice", NB_TURN_E_CREDENTIALS, 0, NULL },
	{ "alice:1700000000", NB_TURN_E_CREDENTIALS, 0, NULL }, /* coturn's other order: no */
	{ "+1:a", NB_TURN_E_CREDENTIALS, 0, NULL },
	{ "-1:a", NB_TURN_E_CREDENTIALS, 0, NULL },
	{ " 1:a", NB_TURN_E_CREDENTIALS, 0, NULL },
	{ "1 :a", NB_TURN_E_CREDENTIALS, 0, NULL },
	{ "0x10:a", NB_TURN_E_CREDENTIALS, 0, NULL },
	{ "12a:a", NB_TURN_E_CREDENTIALS, 0, NULL },
	{ "18446744073709551616:a", NB_TURN_E_CREDENTIALS, 0, NULL }, /* 2^64 */
	{ "99999999999999999999:a", NB_TURN_E_CREDENTIALS, 0, NULL }, /* 20 digits, overflows */
	{ "000000000000000000001:a", NB_TURN_E_CREDENTIALS, 0, NULL }, /* 21 digits */
	{ "184467440737095516150:a", NB_TURN_E_CREDENTIALS, 0, NULL },
	{ "18446744073709551615:a", 0, UINT64_MAX, "a" },
	{ "00000000000000000001:", 0, 1, "" }, /* 20 digits, empty user */
	{ "0:x", 0, 0, "x" },
	{ "1700000000:alice", 0, 1700000000u, "alice" },
	{ "1:a:b:c", 0, 1, "a:b:c" },
};

static void test_rest_split(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(split_cases); i++) {
		const struct split_case *c = &split_cases[i];
		uint64_t exp = 0x1234;
		const uint8_t *u = (const uint8_t *)"sentinel";
		size_t ulen = 999;
		int rc = nb_turn_rest_split((const uint8_t *)c->in, strlen(c->in), &exp, &u, &ulen);

		if (rc != c->rc)
			fail_msg("%s: got %d want %d", c->in, rc, c->rc);
		if (rc != 0) {
			assert_true(exp == 0x1234);
			assert_int_equal(ulen, 999);
			assert_memory_equal(u, "sentinel", 8);
			continue;
		}
		assert_true(exp == c->expiry);
		assert_int_equal(ulen, strlen(c->user));
		assert_memory_equal(u, c->user, ulen);
		assert_true(u >= (const uint8_t *)c->in && u <= (const uint8_t *)c->in + strlen(c->in));
	}
	/* The length is honoured: a colon past len does not count. */
	assert_int_equal(nb_turn_rest_split((const uint8_t *)"12:ab", 2, NULL, NULL, NULL),
			 NB_TURN_E_CREDENTIALS);
	assert_int_equal(nb_turn_rest_split((const uint8_t *)"12:ab", 3, NULL, NULL, NULL), 0);
	assert_int_equal(nb_turn_rest_split(NULL, 0, NULL, NULL, NULL), NB_TURN_E_CREDENTIALS);
	/* A NUL in the user part is just a byte. */
	assert_int_equal(nb_turn_rest_split((const uint8_t *)"5:a\0b", 5, NULL, NULL, NULL), 0);
}

/* Our REST password and long-term key reproduce coturn's: the captured
 * request's MESSAGE-INTEGRITY verifies; any other secret does not. */
static void test_coturn_interop(void **state)
{
	char pwd[NB_TURN_REST_PASSWORD_LEN + 1];
	uint8_t key[NB_TURN_KEY_LEN];
	struct nb_stun_msg m;
	struct nb_turn_attrs t;
	uint64_t exp;
	const uint8_t *u;
	size_t ulen;

	(void)state;
	assert_int_equal(decode_parse(coturn_alloc, sizeof(coturn_alloc), &m, &t), 0);
	assert_int_equal(m.method, NB_TURN_METHOD_ALLOCATE);
	assert_int_equal(t.present, NB_TURN_HAS_REQUESTED_TRANSPORT | NB_TURN_HAS_LIFETIME |
					    NB_TURN_HAS_EVEN_PORT | NB_TURN_HAS_REALM |
					    NB_TURN_HAS_NONCE);
	assert_int_equal(t.requested_transport, NB_TURN_TRANSPORT_UDP);
	assert_int_equal(t.lifetime, 777);
	assert_true(t.even_port_reserve);
	assert_int_equal(t.realm_len, 9);
	assert_memory_equal(t.realm, "natbroker", 9);
	assert_int_equal(nb_turn_unknown_required(&m, NULL, 0), 0);
	assert_int_equal(nb_turn_rest_split(m.username, m.username_len, &exp, &u, &ulen), 0);
	assert_true(exp == 1796717833u);
	assert_int_equal(ulen, 5);
	assert_memory_equal(u, "alice", 5);

	for (int wrong = 0; wrong < 2; wrong++) {
		assert_int_equal(nb_turn_rest_password((const uint8_t *)rest_secret,
						       strlen(rest_secret) - (size_t)wrong,
						       m.username, m.username_len, pwd),
				 0);
		assert_int_equal(nb_turn_long_term_key(m.username, m.username_len, t.realm,
						       t.realm_len, (const uint8_t *)pwd,
						       strlen(pwd), key),
				 0);
		assert_int_equal(nb_stun_check_integrity(&m, coturn_alloc, sizeof(coturn_alloc),
							 key, sizeof(key)),
				 wrong ? NB_STUN_E_INTEGRITY : 0);
	}
}

/* Mutation: an Allocate request authenticated with a long-term key; every
 * single-byte change is refused by one of decode, parse or integrity. */
static void test_mutation_refused(void **state)
{
	uint8_t buf[256], key[NB_TURN_KEY_LEN];
	struct nb_stun_enc e;
	struct nb_stun_msg m;
	struct nb_turn_attrs t;
	size_t len;

	(void)state;
	assert_int_equal(nb_turn_long_term_key((const uint8_t *)rest_user, strlen(rest_user),
					       (const uint8_t *)"natbroker", 9,
					       (const uint8_t *)rest_pwd, strlen(rest_pwd), key),
			 0);
	start(&e, buf, sizeof(buf));
	assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_REQUESTED_TRANSPORT, 17u << 24), 0);
	assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, 600), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, rest_user, strlen(rest_user)),
			 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_REALM, "natbroker", 9), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_NONCE, "abcdefgh", 8), 0);
	assert_int_equal(nb_stun_enc_integrity(&e, key, sizeof(key)), 0);
	len = nb_stun_enc_len(&e);
	assert_int_equal(decode_parse(buf, len, &m, &t), 0);
	assert_int_equal(nb_stun_check_integrity(&m, buf, len, key, sizeof(key)), 0);

	for (size_t i = 0; i < len; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			bool ok;

			buf[i] ^= (uint8_t)(1u << bit);
			ok = nb_stun_decode(&m, buf, len) == (ssize_t)len &&
			     nb_turn_attrs_parse(&m, buf, len, &t) == 0 &&
			     nb_stun_check_integrity(&m, buf, len, key, sizeof(key)) == 0;
			buf[i] ^= (uint8_t)(1u << bit);
			/* Padding and RFFU bytes are ignored by the parsers, but
			 * MESSAGE-INTEGRITY covers them. */
			if (ok)
				fail_msg("flip byte %zu bit %u accepted", i, bit);
		}
	}
	/* Every prefix is refused. */
	for (size_t n = 0; n < len; n++)
		assert_true(nb_stun_decode(&m, buf, n) < 0);
}

/* ---- ChannelData ---------------------------------------------------------- */

static void test_chandata_roundtrip(void **state)
{
	uint8_t data[16], buf[32];

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(0xA0 + i);
	for (int tcp = 0; tcp < 2; tcp++) {
		for (size_t dlen = 0; dlen <= sizeof(data); dlen++) {
			size_t frame = 4 + (tcp ? (dlen + 3) / 4 * 4 : dlen);
			uint16_t ch = 0;
			const uint8_t *d = NULL;
			size_t dl = 0;

			memset(buf, 0xEE, sizeof(buf));
			assert_int_equal(nb_turn_chandata_encode(buf, sizeof(buf), 0x4001, data, dlen,
								 tcp != 0),
					 (ssize_t)frame);
			assert_int_equal(buf[0], 0x40);
			assert_int_equal(buf[1], 0x01);
			assert_int_equal(nb_get_u16be(buf + 2), dlen);
			for (size_t k = 4 + dlen; k < frame; k++)
				assert_int_equal(buf[k], 0); /* zero padding */
			assert_int_equal(buf[frame], 0xEE);
			assert_true(nb_turn_is_chandata(buf, frame));
			assert_int_equal(nb_turn_chandata_decode(buf, frame, tcp != 0, &ch, &d, &dl),
					 (ssize_t)(tcp ? frame : 4 + dlen));
			assert_int_equal(ch, 0x4001);
			assert_ptr_equal(d, buf + 4);
			assert_int_equal(dl, dlen);
			assert_memory_equal(d, data, dlen);
			assert_int_equal(nb_turn_frame_len(buf, frame), (ssize_t)(4 + (dlen + 3) / 4 * 4));

			/* Every prefix is truncated; outputs untouched. */
			for (size_t n = 0; n < (tcp ? frame : 4 + dlen); n++) {
				ch = 7;
				d = NULL;
				dl = 7;
				assert_int_equal(
				    nb_turn_chandata_decode(buf, n, tcp != 0, &ch, &d, &dl),
				    NB_TURN_E_TRUNCATED);
				assert_int_equal(ch, 7);
				assert_null(d);
				assert_int_equal(dl, 7);
			}
		}
	}
	/* In place: data already at buf + 4. */
	memcpy(buf + 4, "abc", 3);
	assert_int_equal(nb_turn_chandata_encode(buf, sizeof(buf), 0x4FFF, buf + 4, 3, true), 8);
	assert_memory_equal(buf, "\x4f\xff\x00\x03" "abc\0", 8);
}

static void test_chandata_padding(void **state)
{
	uint8_t buf[32];
	const uint8_t *d;
	size_t dl;
	uint16_t ch;

	(void)state;
	/* 5 data bytes: UDP takes 9..12 bytes (up to 3 padding), not 13. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(nb_turn_chandata_encode(buf, sizeof(buf), 0x4000, (const uint8_t *)"hello",
						 5, false),
			 9);
	for (size_t n = 9; n <= 12; n++) {
		assert_int_equal(nb_turn_chandata_decode(buf, n, false, &ch, &d, &dl), 9);
		assert_int_equal(dl, 5);
	}
	assert_int_equal(nb_turn_chandata_decode(buf, 13, false, &ch, &d, &dl),
			 NB_TURN_E_NOT_CHANDATA);
	/* TCP requires the padding: 9..11 bytes are truncated, 12 is a frame,
	 * and a longer stream yields the first frame. */
	for (size_t n = 9; n < 12; n++)
		assert_int_equal(nb_turn_chandata_decode(buf, n, true, &ch, &d, &dl),
				 NB_TURN_E_TRUNCATED);
	assert_int_equal(nb_turn_chandata_decode(buf, 12, true, &ch, &d, &dl), 12);
	assert_int_equal(nb_turn_chandata_decode(buf, 30, true, &ch, &d, &dl), 12);
	assert_int_equal(dl, 5);
	/* An aligned length admits no trailing byte over UDP. */
	assert_int_equal(nb_turn_chandata_encode(buf, sizeof(buf), 0x4000, (const uint8_t *)"abcd",
						 4, false),
			 8);
	assert_int_equal(nb_turn_chandata_decode(buf, 8, false, &ch, &d, &dl), 8);
	assert_int_equal(nb_turn_chandata_decode(buf, 9, false, &ch, &d, &dl),
			 NB_TURN_E_NOT_CHANDATA);
	/* Empty data: header only. */
	assert_int_equal(nb_turn_chandata_encode(buf, sizeof(buf), 0x4000, NULL, 0, false), 4);
	assert_int_equal(nb_turn_chandata_decode(buf, 4, false, &ch, &d, &dl), 4);
	assert_int_equal(dl, 0);
	assert_int_equal(nb_turn_chandata_decode(buf, 5, false, &ch, &d, &dl),
			 NB_TURN_E_NOT_CHANDATA);
	assert_int_equal(nb_turn_chandata_decode(buf, 4, true, NULL, NULL, NULL), 4);
}

static void test_chandata_channel_range(void **state)
{
	static const struct {
		uint16_t ch;
		bool ok;
	} cases[] = { { 0x0000, false }, { 0x3FFF, false }, { 0x4000, true },
		      { 0x4ABC, true },  { 0x4FFF, true },  { 0x5000, true },
		      { 0x7FFF, true },  { 0x8000, false }, { 0xFFFF, false } };
	uint8_t buf[16];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		uint16_t ch = 1;
		ssize_t want = cases[i].ok ? 6 : NB_TURN_E_INVAL;

		assert_int_equal(nb_turn_chandata_encode(buf, sizeof(buf), cases[i].ch,
							 (const uint8_t *)"hi", 2, false),
				 want);
		nb_put_u16be(buf, cases[i].ch);
		nb_put_u16be(buf + 2, 2);
		buf[4] = 'h';
		buf[5] = 'i';
		for (int tcp = 0; tcp < 2; tcp++) {
			ssize_t rc = nb_turn_chandata_decode(buf, tcp ? 8 : 6, tcp != 0, &ch, NULL,
							     NULL);
			if (cases[i].ok) {
				assert_int_equal(rc, tcp ? 8 : 6);
				assert_int_equal(ch, cases[i].ch);
			} else {
				assert_int_equal(rc, NB_TURN_E_NOT_CHANDATA);
				assert_int_equal(ch, 1);
			}
		}
		assert_true(nb_turn_is_chandata(buf, 6) == cases[i].ok);
	}
	buf[0] = 0x3F;
	assert_false(nb_turn_is_chandata(buf, 1));
	buf[0] = 0x40;
	assert_true(nb_turn_is_chandata(buf, 1));
	buf[0] = 0x4F;
	assert_true(nb_turn_is_chandata(buf, 1));
	buf[0] = 0x7F; /* RFC 5766's range, coturn's */
	assert_true(nb_turn_is_chandata(buf, 1));
	buf[0] = 0x80;
	assert_false(nb_turn_is_chandata(buf, 1));
	assert_false(nb_turn_is_chandata(buf, 0));
	assert_false(nb_turn_is_chandata(NULL, 4));
}

static void test_chandata_encode_errors(void **state)
{
	static uint8_t big[70000];
	uint8_t buf[16];

	(void)state;
	memset(buf, 0x77, sizeof(buf));
	assert_int_equal(nb_turn_chandata_encode(buf, 8, 0x4000, (const uint8_t *)"hello", 5, false),
			 NB_TURN_E_NOSPACE);
	assert_int_equal(nb_turn_chandata_encode(buf, 9, 0x4000, (const uint8_t *)"hello", 5, false),
			 9);
	memset(buf, 0x77, sizeof(buf));
	assert_int_equal(nb_turn_chandata_encode(buf, 11, 0x4000, (const uint8_t *)"hello", 5, true),
			 NB_TURN_E_NOSPACE);
	assert_int_equal(buf[0], 0x77); /* untouched */
	assert_int_equal(nb_turn_chandata_encode(buf, 12, 0x4000, (const uint8_t *)"hello", 5, true),
			 12);
	assert_int_equal(nb_turn_chandata_encode(NULL, 12, 0x4000, NULL, 0, true), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_chandata_encode(buf, 12, 0x4000, NULL, 1, true), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_chandata_encode(big, sizeof(big), 0x4000, big, 65536, false),
			 NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_chandata_encode(big, sizeof(big), 0x4000, big + 4, 65535, true),
			 65540);
	assert_int_equal(nb_turn_chandata_decode(big, 65540, true, NULL, NULL, NULL), 65540);
	assert_int_equal(nb_turn_chandata_decode(big, 65539, false, NULL, NULL, NULL), 65539);
	assert_int_equal(nb_turn_chandata_decode(NULL, 4, false, NULL, NULL, NULL), NB_TURN_E_INVAL);
	assert_int_equal(nb_turn_chandata_decode(NULL, 0, false, NULL, NULL, NULL),
			 NB_TURN_E_TRUNCATED);
}

/* Inputs that end exactly at an unmapped page: no read past len. */
static void test_chandata_guard_page(void **state)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *map;

	(void)state;
	assert_true(pg > 0);
	map = mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		   0);
	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);
	for (size_t n = 0; n <= 12; n++) {
		uint8_t *p = map + pg - n;

		memset(p, 0, n);
		if (n >= 1)
			p[0] = 0x40;
		if (n >= 4)
			p[3] = (uint8_t)(n - 4);
		(void)nb_turn_chandata_decode(p, n, false, NULL, NULL, NULL);
		(void)nb_turn_chandata_decode(p, n, true, NULL, NULL, NULL);
		(void)nb_turn_frame_len(p, n);
		(void)nb_turn_is_chandata(p, n);
		(void)nb_turn_rest_split(p, n, NULL, NULL, NULL);
	}
	assert_int_equal(munmap(map, 2 * (size_t)pg), 0);
}

static void test_frame_len(void **state)
{
	uint8_t stream[256];
	struct nb_stun_enc e;
	size_t off = 0, stun_len, frames = 0;
	ssize_t n;

	(void)state;
	/* A TCP stream: STUN, ChannelData (5 bytes, padded), STUN, ChannelData (0). */
	start(&e, stream, sizeof(stream));
	assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, 600), 0);
	stun_len = nb_stun_enc_len(&e);
	off = stun_len;
	n = nb_turn_chandata_encode(stream + off, sizeof(stream) - off, 0x4002,
				    (const uint8_t *)"hello", 5, true);
	assert_int_equal(n, 12);
	off += (size_t)n;
	memcpy(stream + off, stream, stun_len);
	off += stun_len;
	n = nb_turn_chandata_encode(stream + off, sizeof(stream) - off, 0x4FFF, NULL, 0, true);
	assert_int_equal(n, 4);
	off += (size_t)n;

	for (size_t at = 0; at < off; frames++) {
		n = nb_turn_frame_len(stream + at, off - at);
		assert_true(n > 0);
		assert_true((size_t)n <= off - at);
		if (nb_turn_is_chandata(stream + at, off - at))
			assert_int_equal(nb_turn_chandata_decode(stream + at, off - at, true, NULL,
								 NULL, NULL),
					 n);
		else
			assert_int_equal(nb_stun_decode(&(struct nb_stun_msg){ 0 }, stream + at,
							(size_t)n),
					 n);
		at += (size_t)n;
	}
	assert_int_equal(frames, 4);

	assert_int_equal(nb_turn_frame_len(stream, 0), 0);
	assert_int_equal(nb_turn_frame_len(stream, 3), 0);
	assert_int_equal(nb_turn_frame_len(stream, 4), (ssize_t)stun_len);
	assert_int_equal(nb_turn_frame_len(stream + stun_len, 4), 12);
	/* ChannelData length field 0xFFFF -> 4 + 65536. */
	memcpy(stream + 200, "\x40\x00\xff\xff", 4);
	assert_int_equal(nb_turn_frame_len(stream + 200, 4), 65540);
	/* Neither: 0x80-0xFF first byte, or a STUN length not a multiple of 4. */
	memcpy(stream + 200, "\x7f\x00\x00\x04", 4);
	assert_int_equal(nb_turn_frame_len(stream + 200, 4), 8);
	memcpy(stream + 200, "\x80\x00\x00\x04", 4);
	assert_int_equal(nb_turn_frame_len(stream + 200, 4), NB_TURN_E_NOT_CHANDATA);
	memcpy(stream + 200, "\x00\x01\x00\x05", 4);
	assert_int_equal(nb_turn_frame_len(stream + 200, 4), NB_TURN_E_NOT_CHANDATA);
	memcpy(stream + 200, "\x3f\xff\xff\xfc", 4);
	assert_int_equal(nb_turn_frame_len(stream + 200, 4), 20 + 0xFFFC);
	assert_int_equal(nb_turn_frame_len(NULL, 4), NB_TURN_E_INVAL);
}

static void test_strerror(void **state)
{
	static const int errs[] = { NB_TURN_E_TRUNCATED, NB_TURN_E_NOT_CHANDATA, NB_TURN_E_BAD_ATTR,
				    NB_TURN_E_TOO_MANY,	 NB_TURN_E_NOSPACE,	 NB_TURN_E_INVAL,
				    NB_TURN_E_CRYPTO,	 NB_TURN_E_CREDENTIALS };

	(void)state;
	assert_string_equal(nb_turn_strerror(0), "ok");
	for (size_t i = 0; i < ARRAY_LEN(errs); i++)
		assert_string_not_equal(nb_turn_strerror(errs[i]), "unknown error");
	assert_string_equal(nb_turn_strerror(-1), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_attrs_roundtrip),
		cmocka_unit_test(test_attrs_xor_wire),
		cmocka_unit_test(test_attrs_edges_accepted),
		cmocka_unit_test(test_attrs_wrong_length),
		cmocka_unit_test(test_attrs_duplicates_first_wins),
		cmocka_unit_test(test_attrs_too_many_peers),
		cmocka_unit_test(test_attrs_stop_at_integrity),
		cmocka_unit_test(test_attrs_inval),
		cmocka_unit_test(test_unknown_required),
		cmocka_unit_test(test_rfc5769_long_term),
		cmocka_unit_test(test_long_term_key),
		cmocka_unit_test(test_rest_password),
		cmocka_unit_test(test_rest_username),
		cmocka_unit_test(test_rest_split),
		cmocka_unit_test(test_coturn_interop),
		cmocka_unit_test(test_mutation_refused),
		cmocka_unit_test(test_chandata_roundtrip),
		cmocka_unit_test(test_chandata_padding),
		cmocka_unit_test(test_chandata_channel_range),
		cmocka_unit_test(test_chandata_encode_errors),
		cmocka_unit_test(test_chandata_guard_page),
		cmocka_unit_test(test_frame_len),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
