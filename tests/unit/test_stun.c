/* tests/unit/test_stun.c - STUN codec: RFC 5769 vectors, round trips, truncation, guard pages,
 * malformed messages, encoder capacity, no mutation of input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/addr.h"
#include "common/bytes.h"
#include "proto/stun.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- RFC 5769 test vectors ------------------------------------------------
 * Transcribed from RFC 5769 §2.1-2.4 (the same bytes as coturn
 * rfc5769check.c and libjuice test/stun.c). Padding is as published: 2.1 pads
 * USERNAME with spaces and 2.2/2.3 pad SOFTWARE with a space (RFC 5389 let
 * padding be any value; receivers ignore it). The 2.1 password is
 * "VOkJxbRl1RmTxUk/WvJxBt". */
static const uint8_t rfc5769_req[] = {
	0x00, 0x01, 0x00, 0x58, /* Request type and message length */
	0x21, 0x12, 0xa4, 0x42, /* Magic cookie */
	0xb7, 0xe7, 0xa7, 0x01, /* } */
	0xbc, 0x34, 0xd6, 0x86, /* }  Transaction ID */
	0xfa, 0x87, 0xdf, 0xae, /* } */
	0x80, 0x22, 0x00, 0x10, /* SOFTWARE attribute header */
	0x53, 0x54, 0x55, 0x4e, /* } */
	0x20, 0x74, 0x65, 0x73, /* }  User-agent... */
	0x74, 0x20, 0x63, 0x6c, /* }  ...name */
	0x69, 0x65, 0x6e, 0x74, /* } */
	0x00, 0x24, 0x00, 0x04, /* PRIORITY attribute header */
	0x6e, 0x00, 0x01, 0xff, /* ICE priority value */
	0x80, 0x29, 0x00, 0x08, /* ICE-CONTROLLED attribute header */
	0x93, 0x2f, 0xf9, 0xb1, /* }  Pseudo-random tie breaker... */
	0x51, 0x26, 0x3b, 0x36, /* }   ...for ICE control */
	0x00, 0x06, 0x00, 0x09, /* USERNAME attribute header */
	0x65, 0x76, 0x74, 0x6a, /* } */
	0x3a, 0x68, 0x36, 0x76, /* }  Username (9 bytes) and padding (3 bytes) */
	0x59, 0x20, 0x20, 0x20, /* } */
	0x00, 0x08, 0x00, 0x14, /* MESSAGE-INTEGRITY attribute header */
	0x9a, 0xea, 0xa7, 0x0c, /* } */
	0xbf, 0xd8, 0xcb, 0x56, /* } */
	0x78, 0x1e, 0xf2, 0xb5, /* }  HMAC-SHA1 fingerprint */
	0xb2, 0xd3, 0xf2, 0x49, /* } */
	0xc1, 0xb5, 0x71, 0xa2, /* } */
	0x80, 0x28, 0x00, 0x04, /* FINGERPRINT attribute header */
	0xe5, 0x7a, 0x3b, 0xcf, /* CRC32 fingerprint */
};

static const uint8_t rfc5769_resp4[] = {
	0x01, 0x01, 0x00, 0x3c, /* Response type and message length */
	0x21, 0x12, 0xa4, 0x42, /* Magic cookie */
	0xb7, 0xe7, 0xa7, 0x01, /* } */
	0xbc, 0x34, 0xd6, 0x86, /* }  Transaction ID */
	0xfa, 0x87, 0xdf, 0xae, /* } */
	0x80, 0x22, 0x00, 0x0b, /* SOFTWARE attribute header */
	0x74, 0x65, 0x73, 0x74, /* } */
	0x20, 0x76, 0x65, 0x63, /* }  UTF-8 server name */
	0x74, 0x6f, 0x72, 0x20, /* } */
	0x00, 0x20, 0x00, 0x08, /* XOR-MAPPED-ADDRESS attribute header */
	0x00, 0x01, 0xa1, 0x47, /* Address family (IPv4) and xor'd mapped port number */
	0xe1, 0x12, 0xa6, 0x43, /* Xor'd mapped IPv4 address */
	0x00, 0x08, 0x00, 0x14, /* MESSAGE-INTEGRITY attribute header */
	0x2b, 0x91, 0xf5, 0x99, /* } */
	0xfd, 0x9e, 0x90, 0xc3, /* } */
	0x8c, 0x74, 0x89, 0xf9, /* }  HMAC-SHA1 fingerprint */
	0x2a, 0xf9, 0xba, 0x53, /* } */
	0xf0, 0x6b, 0xe7, 0xd7, /* } */
	0x80, 0x28, 0x00, 0x04, /* FINGERPRINT attribute header */
	0xc0, 0x7d, 0x4c, 0x96, /* CRC32 fingerprint */
};

static const uint8_t rfc5769_resp6[] = {
	0x01, 0x01, 0x00, 0x48, /* Response type and message length */
	0x21, 0x12, 0xa4, 0x42, /* Magic cookie */
	0xb7, 0xe7, 0xa7, 0x01, /* } */
	0xbc, 0x34, 0xd6, 0x86, /* }  Transaction ID */
	0xfa, 0x87, 0xdf, 0xae, /* } */
	0x80, 0x22, 0x00, 0x0b, /* SOFTWARE attribute header */
	0x74, 0x65, 0x73, 0x74, /* } */
	0x20, 0x76, 0x65, 0x63, /* }  UTF-8 server name */
	0x74, 0x6f, 0x72, 0x20, /* } */
	0x00, 0x20, 0x00, 0x14, /* XOR-MAPPED-ADDRESS attribute header */
	0x00, 0x02, 0xa1, 0x47, /* Address family (IPv6) and xor'd mapped port number */
	0x01, 0x13, 0xa9, 0xfa, /* } */
	0xa5, 0xd3, 0xf1, 0x79, /* }  Xor'd mapped IPv6 address */
	0xbc, 0x25, 0xf4, 0xb5, /* } */
	0xbe, 0xd2, 0xb9, 0xd9, /* } */
	0x00, 0x08, 0x00, 0x14, /* MESSAGE-INTEGRITY attribute header */
	0xa3, 0x82, 0x95, 0x4e, /* } */
	0x4b, 0xe6, 0x7b, 0xf1, /* } */
	0x17, 0x84, 0xc9, 0x7c, /* }  HMAC-SHA1 fingerprint */
	0x82, 0x92, 0xc2, 0x75, /* } */
	0xbf, 0xe3, 0xed, 0x41, /* } */
	0x80, 0x28, 0x00, 0x04, /* FINGERPRINT attribute header */
	0xc8, 0xfb, 0x0b, 0x4c, /* CRC32 fingerprint */
};

static const uint8_t rfc5769_req_lt[] = {
	0x00, 0x01, 0x00, 0x60, /* Request type and message length */
	0x21, 0x12, 0xa4, 0x42, /* Magic cookie */
	0x78, 0xad, 0x34, 0x33, /* } */
	0xc6, 0xad, 0x72, 0xc0, /* }  Transaction ID */
	0x29, 0xda, 0x41, 0x2e, /* } */
	0x00, 0x06, 0x00, 0x12, /* USERNAME attribute header */
	0xe3, 0x83, 0x9e, 0xe3, /* } */
	0x83, 0x88, 0xe3, 0x83, /* } */
	0xaa, 0xe3, 0x83, 0x83, /* }  Username value (18 bytes) and padding (2 bytes) */
	0xe3, 0x82, 0xaf, 0xe3, /* } */
	0x82, 0xb9, 0x00, 0x00, /* } */
	0x00, 0x15, 0x00, 0x1c, /* NONCE attribute header */
	0x66, 0x2f, 0x2f, 0x34, /* } */
	0x39, 0x39, 0x6b, 0x39, /* } */
	0x35, 0x34, 0x64, 0x36, /* } */
	0x4f, 0x4c, 0x33, 0x34, /* }  Nonce value */
	0x6f, 0x4c, 0x39, 0x46, /* } */
	0x53, 0x54, 0x76, 0x79, /* } */
	0x36, 0x34, 0x73, 0x41, /* } */
	0x00, 0x14, 0x00, 0x0b, /* REALM attribute header */
	0x65, 0x78, 0x61, 0x6d, /* } */
	0x70, 0x6c, 0x65, 0x2e, /* }  Realm value (11 bytes) and padding (1 byte) */
	0x6f, 0x72, 0x67, 0x00, /* } */
	0x00, 0x08, 0x00, 0x14, /* MESSAGE-INTEGRITY attribute header */
	0xf6, 0x70, 0x24, 0x65, /* } */
	0x6d, 0xd6, 0x4a, 0x3e, /* } */
	0x02, 0xb8, 0xe0, 0x71, /* }  HMAC-SHA1 fingerprint */
	0x2e, 0x85, 0xc9, 0xa2, /* } */
	0x8c, 0xa8, 0x96, 0x66, /* } */
};

static const char rfc5769_pwd[] = "VOkJxbRl1RmTxUk/WvJxBt";
/* U+30DE U+30C8 U+30EA U+30C3 U+30AF U+30B9 in UTF-8. */
static const uint8_t rfc5769_lt_user[] = { 0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88, 0xe3, 0x83, 0xaa,
					   0xe3, 0x83, 0x83, 0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9 };
static const char rfc5769_lt_nonce[] = "f//499k954d6OL34oL9FSTvy64sA";
static const char rfc5769_lt_realm[] = "example.org";
/* "The<U+00AD>M<U+00AA>tr<U+2168>" after SASLprep. */
static const char rfc5769_lt_pwd[] = "TheMatrIX";

/* A classic RFC 3489 Binding Request as the Debian `stun` client (Vovida
 * stund) sends it for test II: no cookie, 128-bit tid, CHANGE-REQUEST with
 * change IP and change port. */
static const uint8_t classic_req[] = {
	0x00, 0x01, 0x00, 0x08, 0x5c, 0x1f, 0x30, 0x9a, 0x0b, 0x6d, 0x2e, 0x41,
	0x91, 0x77, 0xc8, 0x02, 0xd3, 0x4a, 0x10, 0xee, 0x00, 0x03, 0x00, 0x04,
	0x00, 0x00, 0x00, 0x06,
};

/* A classic Binding Response as stund sends it: MAPPED, SOURCE, CHANGED,
 * the pre-RFC 5389 XOR-MAPPED-ADDRESS 0x8020 (comprehension-optional, so
 * skipped) and SERVER (0x8022, SOFTWARE's ancestor). */
static const uint8_t classic_resp[] = {
	0x01, 0x01, 0x00, 0x44, 0x5c, 0x1f, 0x30, 0x9a, 0x0b, 0x6d, 0x2e, 0x41, 0x91, 0x77,
	0xc8, 0x02, 0xd3, 0x4a, 0x10, 0xee,
	/* MAPPED-ADDRESS 198.51.100.7:32853 */
	0x00, 0x01, 0x00, 0x08, 0x00, 0x01, 0x80, 0x55, 0xc6, 0x33, 0x64, 0x07,
	/* SOURCE-ADDRESS 192.0.2.10:3478 */
	0x00, 0x04, 0x00, 0x08, 0x00, 0x01, 0x0d, 0x96, 0xc0, 0x00, 0x02, 0x0a,
	/* CHANGED-ADDRESS 192.0.2.11:3479 */
	0x00, 0x05, 0x00, 0x08, 0x00, 0x01, 0x0d, 0x97, 0xc0, 0x00, 0x02, 0x0b,
	0x80, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe7, 0x21, 0xc0, 0x45, /* old XOR-MAPPED */
	0x80, 0x22, 0x00, 0x10, 'V', 'o', 'v', 'i', 'd', 'a', '.', 'o', 'r', 'g', ' ', '0',
	'.', '9', '7', ' ',
};

struct vec {
	const char *name;
	const uint8_t *buf;
	size_t len;
};

static const struct vec rfc_vectors[] = {
	{ "rfc5769 2.1 request", rfc5769_req, sizeof(rfc5769_req) },
	{ "rfc5769 2.2 ipv4 response", rfc5769_resp4, sizeof(rfc5769_resp4) },
	{ "rfc5769 2.3 ipv6 response", rfc5769_resp6, sizeof(rfc5769_resp6) },
	{ "rfc5769 2.4 long-term request", rfc5769_req_lt, sizeof(rfc5769_req_lt) },
	{ "classic request", classic_req, sizeof(classic_req) },
	{ "classic response", classic_resp, sizeof(classic_resp) },
};

static const uint8_t tid12[NB_STUN_TID_LEN] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
						0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c };
static const uint8_t tid16[16] = { 0xde, 0xad, 0xbe, 0xef, 0x10, 0x20, 0x30, 0x40,
				   0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0 };
static const uint8_t test_key[] = "natbroker-test-key";
static void lt_key(uint8_t out[16])
{
	uint8_t in[128];
	size_t n = 0;
	unsigned out_len = 0;

	memcpy(in + n, rfc5769_lt_user, sizeof(rfc5769_lt_user));
	n += sizeof(rfc5769_lt_user);
	in[n++] = ':';
	memcpy(in + n, rfc5769_lt_realm, strlen(rfc5769_lt_realm));
	n += strlen(rfc5769_lt_realm);
	in[n++] = ':';
	memcpy(in + n, rfc5769_lt_pwd, strlen(rfc5769_lt_pwd));
	n += strlen(rfc5769_lt_pwd);
	/* RFC 8489 §9.2.2: key = MD5(username ":" OpaqueString(realm) ":"
	 * OpaqueString(password)). */
	assert_int_equal(EVP_Digest(in, n, out, &out_len, EVP_md5(), NULL), 1);
	assert_int_equal(out_len, 16);
}

static struct nb_addr addr(const char *s)
{
	struct nb_addr a;
	assert_int_equal(nb_addr_parse(s, false, &a), 0);
	return a;
}

static void assert_addr(const struct nb_addr *got, const char *want)
{
	struct nb_addr w = addr(want);
	char b1[NB_ADDR_STRLEN], b2[NB_ADDR_STRLEN];

	if (!nb_addr_equal(got, &w))
		fail_msg("address %s, want %s", nb_addr_format(got, b1, sizeof(b1)),
			 nb_addr_format(&w, b2, sizeof(b2)));
}

static void assert_view(const uint8_t *p, size_t n, const void *want, size_t want_len)
{
	assert_int_equal(n, want_len);
	assert_memory_equal(p, want, want_len);
}

/* Decode a heap copy of exactly len bytes (so ASan sees a read past the end). */
static ssize_t decode_copy(struct nb_stun_msg *m, const uint8_t *buf, size_t len)
{
	uint8_t *c = malloc(len ? len : 1);
	ssize_t rc;

	assert_non_null(c);
	if (len)
		memcpy(c, buf, len);
	rc = nb_stun_decode(m, c, len);
	if (rc > 0) {
		/* Views must point into c; rebase them into buf for the caller. */
		if (m->username)
			m->username = buf + (m->username - c);
		if (m->software)
			m->software = buf + (m->software - c);
		if (m->reason)
			m->reason = buf + (m->reason - c);
	}
	free(c);
	return rc;
}

/* ---- RFC 5769 ------------------------------------------------------------ */

static void test_rfc5769_request(void **state)
{
	struct nb_stun_msg m;

	(void)state;
	assert_int_equal(sizeof(rfc5769_req), 108);
	assert_int_equal(nb_stun_decode(&m, rfc5769_req, sizeof(rfc5769_req)), 108);
	assert_true(nb_stun_is_stun(rfc5769_req, sizeof(rfc5769_req)));
	assert_int_equal(m.type, NB_STUN_BINDING_REQUEST);
	assert_int_equal(m.method, NB_STUN_METHOD_BINDING);
	assert_int_equal(m.cls, NB_STUN_CLASS_REQUEST);
	assert_int_equal(m.length, 0x58);
	assert_false(m.classic);
	assert_memory_equal(m.tid, rfc5769_req + 8, 12);
	assert_view(m.software, m.software_len, "STUN test client", 16);
	assert_view(m.username, m.username_len, "evtj:h6vY", 9);
	assert_true(m.present & NB_STUN_HAS_INTEGRITY);
	assert_true(m.present & NB_STUN_HAS_FINGERPRINT);
	assert_false(m.present & NB_STUN_HAS_INTEGRITY_SHA256);
	assert_int_equal(m.integrity_off, 76);
	/* PRIORITY (0x0024) is comprehension-required and not ours. */
	assert_int_equal(m.n_unknown_required, 1);
	assert_int_equal(m.unknown_required[0], 0x0024);

	assert_int_equal(nb_stun_check_integrity(&m, rfc5769_req, sizeof(rfc5769_req),
						 (const uint8_t *)rfc5769_pwd, strlen(rfc5769_pwd)),
			 0);
	assert_int_equal(nb_stun_check_integrity(&m, rfc5769_req, sizeof(rfc5769_req),
						 (const uint8_t *)"VOkJxbRl1RmTxUk/WvJxBu", 22),
			 NB_STUN_E_INTEGRITY);
	assert_int_equal(nb_stun_check_integrity(&m, rfc5769_req, sizeof(rfc5769_req), NULL, 0),
			 NB_STUN_E_INTEGRITY);
}

static void test_rfc5769_ipv4_response(void **state)
{
	struct nb_stun_msg m;

	(void)state;
	assert_int_equal(nb_stun_decode(&m, rfc5769_resp4, sizeof(rfc5769_resp4)), 80);
	assert_int_equal(m.type, NB_STUN_BINDING_SUCCESS);
	assert_int_equal(m.cls, NB_STUN_CLASS_SUCCESS);
	assert_int_equal(m.method, NB_STUN_METHOD_BINDING);
	assert_view(m.software, m.software_len, "test vector", 11);
	assert_true(m.present & NB_STUN_HAS_XOR_MAPPED);
	assert_false(m.present & NB_STUN_HAS_MAPPED);
	assert_addr(&m.xor_mapped, "192.0.2.1:32853");
	assert_int_equal(m.n_unknown_required, 0);
	assert_int_equal(nb_stun_check_integrity(&m, rfc5769_resp4, sizeof(rfc5769_resp4),
						 (const uint8_t *)rfc5769_pwd, strlen(rfc5769_pwd)),
			 0);
	assert_int_equal(nb_stun_check_integrity(&m, rfc5769_resp4, sizeof(rfc5769_resp4),
						 (const uint8_t *)rfc5769_pwd,
						 strlen(rfc5769_pwd) - 1),
			 NB_STUN_E_INTEGRITY);
}

static void test_rfc5769_ipv6_response(void **state)
{
	struct nb_stun_msg m;

	(void)state;
	assert_int_equal(nb_stun_decode(&m, rfc5769_resp6, sizeof(rfc5769_resp6)), 92);
	assert_int_equal(m.type, NB_STUN_BINDING_SUCCESS);
	assert_view(m.software, m.software_len, "test vector", 11);
	assert_addr(&m.xor_mapped, "[2001:db8:1234:5678:11:2233:4455:6677]:32853");
	assert_int_equal(nb_stun_check_integrity(&m, rfc5769_resp6, sizeof(rfc5769_resp6),
						 (const uint8_t *)rfc5769_pwd, strlen(rfc5769_pwd)),
			 0);
}

static void test_rfc5769_long_term(void **state)
{
	struct nb_stun_msg m;
	uint8_t key[16], out[256];
	struct nb_stun_enc e;

	(void)state;
	lt_key(key);
	assert_int_equal(nb_stun_decode(&m, rfc5769_req_lt, sizeof(rfc5769_req_lt)), 116);
	assert_view(m.username, m.username_len, rfc5769_lt_user, sizeof(rfc5769_lt_user));
	assert_false(m.present & NB_STUN_HAS_FINGERPRINT);
	/* NONCE and REALM are comprehension-required and not ours. */
	assert_int_equal(m.n_unknown_required, 2);
	assert_int_equal(m.unknown_required[0], 0x0015);
	assert_int_equal(m.unknown_required[1], 0x0014);
	assert_int_equal(
	    nb_stun_check_integrity(&m, rfc5769_req_lt, sizeof(rfc5769_req_lt), key, 16), 0);
	key[0] ^= 1;
	assert_int_equal(
	    nb_stun_check_integrity(&m, rfc5769_req_lt, sizeof(rfc5769_req_lt), key, 16),
	    NB_STUN_E_INTEGRITY);
	key[0] ^= 1;

	/* The encoder reproduces this vector byte for byte: its padding is zero. */
	assert_int_equal(nb_stun_enc_init(&e, out, sizeof(out), NB_STUN_BINDING_REQUEST,
					  rfc5769_req_lt + 8, false),
			 0);
	assert_int_equal(
	    nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, rfc5769_lt_user, sizeof(rfc5769_lt_user)),
	    0);
	assert_int_equal(nb_stun_enc_attr(&e, 0x0015, rfc5769_lt_nonce, strlen(rfc5769_lt_nonce)),
			 0);
	assert_int_equal(nb_stun_enc_attr(&e, 0x0014, rfc5769_lt_realm, strlen(rfc5769_lt_realm)),
			 0);
	assert_int_equal(nb_stun_enc_integrity(&e, key, 16), 0);
	assert_int_equal(nb_stun_enc_len(&e), sizeof(rfc5769_req_lt));
	assert_memory_equal(out, rfc5769_req_lt, sizeof(rfc5769_req_lt));
}

/* Re-encode 2.1-2.3 with our encoder. Our padding is zero; patching in the
 * vectors' space padding before MESSAGE-INTEGRITY (the caller owns the
 * buffer) must then reproduce every byte, MI and FINGERPRINT included. */
static void test_rfc5769_reencode(void **state)
{
	static const uint8_t ice_controlled[8] = { 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36 };
	const uint8_t *pwd = (const uint8_t *)rfc5769_pwd;
	size_t pwd_len = strlen(rfc5769_pwd);
	uint8_t out[256];
	struct nb_stun_enc e;
	struct nb_stun_msg m;

	(void)state;
	/* 2.1 */
	assert_int_equal(
	    nb_stun_enc_init(&e, out, sizeof(out), NB_STUN_BINDING_REQUEST, rfc5769_req + 8, false),
	    0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_SOFTWARE, "STUN test client", 16), 0);
	assert_int_equal(nb_stun_enc_u32(&e, 0x0024, 0x6e0001ff), 0);
	assert_int_equal(nb_stun_enc_attr(&e, 0x8029, ice_controlled, 8), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, "evtj:h6vY", 9), 0);
	assert_memory_equal(out + 73, "\0\0\0", 3); /* zero padding */
	memset(out + 73, 0x20, 3);
	assert_int_equal(nb_stun_enc_integrity(&e, pwd, pwd_len), 0);
	assert_int_equal(nb_stun_enc_fingerprint(&e), 0);
	assert_int_equal(e.len, sizeof(rfc5769_req));
	assert_memory_equal(out, rfc5769_req, sizeof(rfc5769_req));
	assert_int_equal(nb_stun_decode(&m, out, e.len), (ssize_t)e.len);
	assert_int_equal(nb_stun_check_integrity(&m, out, e.len, pwd, pwd_len), 0);

	/* 2.2 */
	assert_int_equal(nb_stun_enc_init(&e, out, sizeof(out), NB_STUN_BINDING_SUCCESS,
					  rfc5769_resp4 + 8, false),
			 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_SOFTWARE, "test vector", 11), 0);
	{
		struct nb_addr a = addr("192.0.2.1:32853");
		assert_int_equal(nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &a), 0);
	}
	assert_int_equal(out[35], 0);
	out[35] = 0x20;
	assert_int_equal(nb_stun_enc_integrity(&e, pwd, pwd_len), 0);
	assert_int_equal(nb_stun_enc_fingerprint(&e), 0);
	assert_int_equal(e.len, sizeof(rfc5769_resp4));
	assert_memory_equal(out, rfc5769_resp4, sizeof(rfc5769_resp4));

	/* 2.3 */
	assert_int_equal(nb_stun_enc_init(&e, out, sizeof(out), NB_STUN_BINDING_SUCCESS,
					  rfc5769_resp6 + 8, false),
			 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_SOFTWARE, "test vector", 11), 0);
	{
		struct nb_addr a = addr("[2001:db8:1234:5678:11:2233:4455:6677]:32853");
		assert_int_equal(nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &a), 0);
	}
	out[35] = 0x20;
	assert_int_equal(nb_stun_enc_integrity(&e, pwd, pwd_len), 0);
	assert_int_equal(nb_stun_enc_fingerprint(&e), 0);
	assert_int_equal(e.len, sizeof(rfc5769_resp6));
	assert_memory_equal(out, rfc5769_resp6, sizeof(rfc5769_resp6));
}

/* Any single bit flipped in a message with FINGERPRINT is rejected by decode,
 * unless the flip removed the FINGERPRINT attribute from the walk. */
static void test_bitflip_fingerprint(void **state)
{
	const struct vec *v[] = { &rfc_vectors[0], &rfc_vectors[1], &rfc_vectors[2] };

	(void)state;
	for (size_t k = 0; k < ARRAY_LEN(v); k++) {
		uint8_t buf[128];
		size_t len = v[k]->len, swallowed = 0;
		struct nb_stun_msg m;

		memcpy(buf, v[k]->buf, len);
		for (size_t bit = 0; bit < len * 8; bit++) {
			buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			ssize_t rc = nb_stun_decode(&m, buf, len);
			/* Accepted only if the flip made an earlier length
			 * swallow the FINGERPRINT attribute itself (2.1 bit
			 * 509: USERNAME length 9 -> 41 runs to the end). */
			if (rc >= 0 && (m.present & NB_STUN_HAS_FINGERPRINT))
				fail_msg("%s: bit %zu flipped, accepted", v[k]->name, bit);
			if (rc >= 0)
				swallowed++;
			/* Flips inside the attribute area that keep the
			 * structure valid are FINGERPRINT failures. */
			if (rc < 0 && bit / 8 >= 24 && bit / 8 < len - 8 &&
			    rc != NB_STUN_E_FINGERPRINT && rc != NB_STUN_E_BAD_ATTR &&
			    rc != NB_STUN_E_ORDER)
				fail_msg("%s: bit %zu: %s", v[k]->name, bit,
					 nb_stun_strerror((int)rc));
			buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		assert_true(swallowed <= 2);
		/* Flip in the CRC value itself. */
		buf[len - 1] ^= 0x80;
		assert_int_equal(nb_stun_decode(&m, buf, len), NB_STUN_E_FINGERPRINT);
	}
}

/* Any single bit flipped in a message without FINGERPRINT fails decode or
 * MESSAGE-INTEGRITY. */
static void test_bitflip_integrity(void **state)
{
	uint8_t buf[sizeof(rfc5769_req_lt)], key[16];
	size_t len = sizeof(rfc5769_req_lt);
	unsigned integrity_failures = 0;

	(void)state;
	lt_key(key);
	memcpy(buf, rfc5769_req_lt, len);
	for (size_t bit = 0; bit < len * 8; bit++) {
		struct nb_stun_msg m;

		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (nb_stun_decode(&m, buf, len) > 0) {
			if (nb_stun_check_integrity(&m, buf, len, key, sizeof(key)) == 0)
				fail_msg("bit %zu flipped, integrity passed", bit);
			integrity_failures++;
		}
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_true(integrity_failures > 600); /* most flips leave the structure valid */
}

/* ---- Round trips --------------------------------------------------------- */

struct rt_case {
	const char *a[6]; /* mapped, xor, source, changed, origin, other */
};

static const struct rt_case rt_v4 = { { "198.51.100.7:32853", "203.0.113.9:1", "192.0.2.10:3478",
					"192.0.2.11:3479", "192.0.2.10:3478", "192.0.2.11:3479" } };
static const struct rt_case rt_v6 = { { "[2001:db8::7]:32853",
					"[2001:db8:1234:5678:11:2233:4455:6677]:65535",
					"[2001:db8::10]:3478", "[2001:db8::11]:3479", "[::1]:0",
					"[fe80::1]:443" } };

static const uint16_t rt_unknown[3] = { 0x7F01, 0x7F02, 0x7F03 };
static const char rt_software[] = "natbroker test";
static const char rt_user[] = "alice:bob";
static const char rt_reason[] = "Unknown Attribute";
/* Build a message with every attribute the codec knows. */
static size_t build_all(uint8_t *out, size_t cap, const struct rt_case *c, bool classic)
{
	struct nb_stun_enc e;
	struct nb_addr a[6];
	static const uint8_t pad[7] = "xxxxxxx";
	static const uint8_t raw_xor[8] = { 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43 };

	for (size_t i = 0; i < 6; i++)
		a[i] = addr(c->a[i]);
	assert_int_equal(
	    nb_stun_enc_init(&e, out, cap, NB_STUN_BINDING_ERROR, classic ? tid16 : tid12, classic),
	    0);
	assert_int_equal(nb_stun_enc_addr(&e, NB_STUN_ATTR_MAPPED_ADDRESS, &a[0]), 0);
	if (classic) {
		assert_int_equal(nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &a[1]),
				 NB_STUN_E_INVAL);
		/* Put one in raw: the decoder must skip it in a classic message. */
		assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, raw_xor, 8),
				 0);
	} else {
		assert_int_equal(nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &a[1]),
				 0);
	}
	assert_int_equal(nb_stun_enc_addr(&e, NB_STUN_ATTR_SOURCE_ADDRESS, &a[2]), 0);
	assert_int_equal(nb_stun_enc_addr(&e, NB_STUN_ATTR_CHANGED_ADDRESS, &a[3]), 0);
	assert_int_equal(nb_stun_enc_addr(&e, NB_STUN_ATTR_RESPONSE_ORIGIN, &a[4]), 0);
	assert_int_equal(nb_stun_enc_addr(&e, NB_STUN_ATTR_OTHER_ADDRESS, &a[5]), 0);
	/* Second copies: only the first counts. */
	assert_int_equal(nb_stun_enc_addr(&e, NB_STUN_ATTR_MAPPED_ADDRESS, &a[5]), 0);
	assert_int_equal(nb_stun_enc_u32(&e, NB_STUN_ATTR_CHANGE_REQUEST,
					 NB_STUN_CHANGE_IP | NB_STUN_CHANGE_PORT | 0x1),
			 0);
	assert_int_equal(nb_stun_enc_u32(&e, NB_STUN_ATTR_RESPONSE_PORT, (uint32_t)4242 << 16), 0);
	assert_int_equal(nb_stun_enc_addr(&e, NB_STUN_ATTR_RESPONSE_ADDRESS, &a[0]), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_PADDING, pad, sizeof(pad)), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, rt_user, strlen(rt_user)), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_PASSWORD, "secret", 6), 0);
	assert_int_equal(nb_stun_enc_addr(&e, NB_STUN_ATTR_REFLECTED_FROM, &a[2]), 0);
	assert_int_equal(
	    nb_stun_enc_attr(&e, NB_STUN_ATTR_SOFTWARE, rt_software, strlen(rt_software)), 0);
	assert_int_equal(nb_stun_enc_error(&e, NB_STUN_ERR_UNKNOWN_ATTRIBUTE, rt_reason), 0);
	assert_int_equal(nb_stun_enc_unknown(&e, rt_unknown, ARRAY_LEN(rt_unknown)), 0);
	assert_int_equal(nb_stun_enc_attr(&e, 0x8055, "zz", 2), 0);  /* unknown optional */
	assert_int_equal(nb_stun_enc_attr(&e, 0x7F01, NULL, 0), 0);  /* unknown required */
	assert_int_equal(nb_stun_enc_attr(&e, 0x7F02, "abc", 3), 0); /* unknown required */
	assert_int_equal(nb_stun_enc_attr(&e, 0x7F01, "d", 1), 0);   /* reported once */
	assert_int_equal(nb_stun_enc_integrity(&e, test_key, sizeof(test_key) - 1), 0);
	assert_int_equal(nb_stun_enc_integrity_sha256(&e, test_key, sizeof(test_key) - 1), 0);
	assert_int_equal(nb_stun_enc_fingerprint(&e), 0);
	/* Nothing after FINGERPRINT. */
	assert_int_equal(nb_stun_enc_fingerprint(&e), NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_u32(&e, NB_STUN_ATTR_CHANGE_REQUEST, 0), NB_STUN_E_INVAL);
	return nb_stun_enc_len(&e);
}

static void check_all(const uint8_t *buf, size_t len, const struct rt_case *c, bool classic)
{
	struct nb_stun_msg m;

	assert_int_equal(nb_stun_decode(&m, buf, len), (ssize_t)len);
	assert_int_equal(m.type, NB_STUN_BINDING_ERROR);
	assert_int_equal(m.cls, NB_STUN_CLASS_ERROR);
	assert_int_equal(m.method, NB_STUN_METHOD_BINDING);
	assert_int_equal(m.length, len - NB_STUN_HDR_LEN);
	assert_int_equal(m.classic, classic);
	if (classic) {
		assert_memory_equal(m.tid, tid16, 16);
		assert_false(m.present & NB_STUN_HAS_XOR_MAPPED);
	} else {
		assert_memory_equal(m.tid, tid12, 12);
		assert_true(m.present & NB_STUN_HAS_XOR_MAPPED);
		assert_addr(&m.xor_mapped, c->a[1]);
	}
	assert_addr(&m.mapped, c->a[0]);
	assert_addr(&m.source, c->a[2]);
	assert_addr(&m.changed, c->a[3]);
	assert_addr(&m.response_origin, c->a[4]);
	assert_addr(&m.other_address, c->a[5]);
	assert_int_equal(m.change_flags, NB_STUN_CHANGE_IP | NB_STUN_CHANGE_PORT);
	assert_int_equal(m.response_port, 4242);
	assert_int_equal(m.padding_len, 7);
	assert_view(m.username, m.username_len, rt_user, strlen(rt_user));
	assert_view(m.software, m.software_len, rt_software, strlen(rt_software));
	assert_int_equal(m.error_code, 420);
	assert_view(m.reason, m.reason_len, rt_reason, strlen(rt_reason));
	if (classic) {
		/* RFC 3489: odd list, first one repeated. */
		assert_int_equal(m.n_unknown_attrs, 4);
		assert_int_equal(m.unknown_attrs[3], rt_unknown[0]);
	} else {
		assert_int_equal(m.n_unknown_attrs, 3);
	}
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(m.unknown_attrs[i], rt_unknown[i]);
	assert_int_equal(m.n_unknown_required, 2);
	assert_int_equal(m.unknown_required[0], 0x7F01);
	assert_int_equal(m.unknown_required[1], 0x7F02);
	assert_int_equal(
	    m.present,
	    NB_STUN_HAS_MAPPED | (classic ? 0 : NB_STUN_HAS_XOR_MAPPED) |
		NB_STUN_HAS_CHANGE_REQUEST | NB_STUN_HAS_SOURCE | NB_STUN_HAS_CHANGED |
		NB_STUN_HAS_USERNAME | NB_STUN_HAS_INTEGRITY | NB_STUN_HAS_INTEGRITY_SHA256 |
		NB_STUN_HAS_ERROR_CODE | NB_STUN_HAS_UNKNOWN_ATTRS | NB_STUN_HAS_SOFTWARE |
		NB_STUN_HAS_FINGERPRINT | NB_STUN_HAS_RESPONSE_ORIGIN | NB_STUN_HAS_OTHER_ADDRESS |
		NB_STUN_HAS_PADDING | NB_STUN_HAS_RESPONSE_PORT | NB_STUN_HAS_RESPONSE_ADDRESS);
	assert_int_equal(m.integrity_sha256_len, 32);
	assert_true(m.integrity_off > 0 && m.integrity_sha256_off == m.integrity_off + 24);
	/* MI-SHA256 is the one checked when present. */
	assert_int_equal(nb_stun_check_integrity(&m, buf, len, test_key, sizeof(test_key) - 1), 0);
	assert_int_equal(nb_stun_check_integrity(&m, buf, len, test_key, sizeof(test_key) - 2),
			 NB_STUN_E_INTEGRITY);
	/* And the SHA-1 one is right too. */
	m.present &= ~(uint32_t)NB_STUN_HAS_INTEGRITY_SHA256;
	assert_int_equal(nb_stun_check_integrity(&m, buf, len, test_key, sizeof(test_key) - 1), 0);
	assert_int_equal(nb_stun_check_integrity(&m, buf, len, (const uint8_t *)"x", 1),
			 NB_STUN_E_INTEGRITY);
	m.present &= ~(uint32_t)NB_STUN_HAS_INTEGRITY;
	assert_int_equal(nb_stun_check_integrity(&m, buf, len, test_key, sizeof(test_key) - 1),
			 NB_STUN_E_INTEGRITY);
}

static void test_round_trip_all(void **state)
{
	const struct rt_case *cases[] = { &rt_v4, &rt_v6 };
	uint8_t buf[NB_STUN_MAX_MSG];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		for (int classic = 0; classic <= 1; classic++) {
			size_t len = build_all(buf, sizeof(buf), cases[i], classic);
			check_all(buf, len, cases[i], classic);
		}
	}
}

/* Smaller round trips: each attribute alone, and the trailer variants. */
static void test_round_trip_each(void **state)
{
	static const char *addrs[] = { "0.0.0.0:0", "255.255.255.255:65535", "[::]:0",
				       "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
				       "[::ffff:1.2.3.4]:5" };
	static const uint16_t addr_types[] = {
		NB_STUN_ATTR_MAPPED_ADDRESS,  NB_STUN_ATTR_XOR_MAPPED_ADDRESS,
		NB_STUN_ATTR_SOURCE_ADDRESS,  NB_STUN_ATTR_CHANGED_ADDRESS,
		NB_STUN_ATTR_RESPONSE_ORIGIN, NB_STUN_ATTR_OTHER_ADDRESS
	};
	uint8_t buf[256];
	struct nb_stun_enc e;
	struct nb_stun_msg m;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(addrs); i++) {
		for (size_t t = 0; t < ARRAY_LEN(addr_types); t++) {
			for (int classic = 0; classic <= 1; classic++) {
				struct nb_addr a = addr(addrs[i]);
				const struct nb_addr *got;
				int rc;

				assert_int_equal(nb_stun_enc_init(&e, buf, sizeof(buf),
								  NB_STUN_BINDING_SUCCESS,
								  classic ? tid16 : tid12, classic),
						 0);
				if (addr_types[t] == NB_STUN_ATTR_XOR_MAPPED_ADDRESS)
					rc = nb_stun_enc_xor_addr(&e, addr_types[t], &a);
				else
					rc = nb_stun_enc_addr(&e, addr_types[t], &a);
				if (classic && addr_types[t] == NB_STUN_ATTR_XOR_MAPPED_ADDRESS) {
					assert_int_equal(rc, NB_STUN_E_INVAL);
					continue;
				}
				assert_int_equal(rc, 0);
				assert_int_equal(e.len, NB_STUN_HDR_LEN + 4 +
							    (a.family == NB_AF_INET ? 8 : 20));
				assert_int_equal(nb_stun_decode(&m, buf, e.len), (ssize_t)e.len);
				switch (addr_types[t]) {
				case NB_STUN_ATTR_MAPPED_ADDRESS: got = &m.mapped; break;
				case NB_STUN_ATTR_XOR_MAPPED_ADDRESS: got = &m.xor_mapped; break;
				case NB_STUN_ATTR_SOURCE_ADDRESS: got = &m.source; break;
				case NB_STUN_ATTR_CHANGED_ADDRESS: got = &m.changed; break;
				case NB_STUN_ATTR_RESPONSE_ORIGIN: got = &m.response_origin; break;
				default: got = &m.other_address; break;
				}
				assert_addr(got, addrs[i]);
				assert_int_equal(__builtin_popcount(m.present), 1);
			}
		}
	}

	/* RESPONSE-PORT: 2-byte value (stuntman) and 4-byte value (coturn). */
	assert_int_equal(
	    nb_stun_enc_init(&e, buf, sizeof(buf), NB_STUN_BINDING_REQUEST, tid12, false), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_RESPONSE_PORT, "\xbe\xef", 2), 0);
	assert_int_equal(e.len, 28);
	assert_int_equal(nb_stun_decode(&m, buf, e.len), 28);
	assert_int_equal(m.response_port, 0xbeef);
	assert_int_equal(
	    nb_stun_enc_init(&e, buf, sizeof(buf), NB_STUN_BINDING_REQUEST, tid12, false), 0);
	assert_int_equal(nb_stun_enc_u32(&e, NB_STUN_ATTR_RESPONSE_PORT, 0xbeef0000u), 0);
	assert_int_equal(nb_stun_decode(&m, buf, e.len), 28);
	assert_int_equal(m.response_port, 0xbeef);
	assert_int_equal(m.present, NB_STUN_HAS_RESPONSE_PORT);

	/* ERROR-CODE: every class, edge numbers, empty and NULL reason. */
	{
		static const uint16_t codes[] = { 300, 399, 400, 401, 420, 487, 500, 600, 699 };
		for (size_t i = 0; i < ARRAY_LEN(codes); i++) {
			assert_int_equal(nb_stun_enc_init(&e, buf, sizeof(buf),
							  NB_STUN_BINDING_ERROR, tid12, false),
					 0);
			assert_int_equal(nb_stun_enc_error(&e, codes[i], i % 2 ? NULL : "x"), 0);
			assert_int_equal(nb_stun_decode(&m, buf, e.len), (ssize_t)e.len);
			assert_int_equal(m.error_code, codes[i]);
			assert_int_equal(m.reason_len, i % 2 ? 0 : 1);
		}
	}

	/* UNKNOWN-ATTRIBUTES: even and odd counts, RFC 8489 pads. */
	for (size_t n = 1; n <= 4; n++) {
		assert_int_equal(
		    nb_stun_enc_init(&e, buf, sizeof(buf), NB_STUN_BINDING_ERROR, tid12, false), 0);
		assert_int_equal(nb_stun_enc_unknown(&e, rt_unknown, n > 3 ? 3 : n), 0);
		assert_int_equal(nb_stun_decode(&m, buf, e.len), (ssize_t)e.len);
		assert_int_equal(m.n_unknown_attrs, n > 3 ? 3 : n);
	}

	/* Trailers: MI alone, MI-SHA256 alone, FINGERPRINT alone, MI + FP. */
	for (int variant = 0; variant < 4; variant++) {
		assert_int_equal(
		    nb_stun_enc_init(&e, buf, sizeof(buf), NB_STUN_BINDING_REQUEST, tid12, false),
		    0);
		assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, "u", 1), 0);
		if (variant == 0 || variant == 3)
			assert_int_equal(nb_stun_enc_integrity(&e, test_key, 5), 0);
		if (variant == 1)
			assert_int_equal(nb_stun_enc_integrity_sha256(&e, test_key, 5), 0);
		if (variant >= 2)
			assert_int_equal(nb_stun_enc_fingerprint(&e), 0);
		assert_int_equal(nb_stun_decode(&m, buf, e.len), (ssize_t)e.len);
		assert_int_equal(nb_stun_check_integrity(&m, buf, e.len, test_key, 5),
				 variant == 2 ? NB_STUN_E_INTEGRITY : 0);
	}

	/* Empty key: works, and differs from a one-byte key. */
	assert_int_equal(
	    nb_stun_enc_init(&e, buf, sizeof(buf), NB_STUN_BINDING_REQUEST, tid12, false), 0);
	assert_int_equal(nb_stun_enc_integrity(&e, NULL, 0), 0);
	assert_int_equal(nb_stun_decode(&m, buf, e.len), (ssize_t)e.len);
	assert_int_equal(nb_stun_check_integrity(&m, buf, e.len, NULL, 0), 0);
	assert_int_equal(nb_stun_check_integrity(&m, buf, e.len, (const uint8_t *)"", 0), 0);
	assert_int_equal(nb_stun_check_integrity(&m, buf, e.len, (const uint8_t *)"a", 1),
			 NB_STUN_E_INTEGRITY);

	/* Long key (longer than the hash block: hashed first, RFC 2104). */
	{
		uint8_t key[200];
		memset(key, 0x5a, sizeof(key));
		assert_int_equal(
		    nb_stun_enc_init(&e, buf, sizeof(buf), NB_STUN_BINDING_REQUEST, tid12, false),
		    0);
		assert_int_equal(nb_stun_enc_integrity(&e, key, sizeof(key)), 0);
		assert_int_equal(nb_stun_enc_integrity_sha256(&e, key, sizeof(key)), 0);
		assert_int_equal(nb_stun_decode(&m, buf, e.len), (ssize_t)e.len);
		assert_int_equal(nb_stun_check_integrity(&m, buf, e.len, key, sizeof(key)), 0);
	}

	/* Method and class bits (RFC 8489 §5). */
	assert_int_equal(nb_stun_enc_init(&e, buf, sizeof(buf), 0x3FFF, tid12, false), 0);
	assert_int_equal(nb_stun_decode(&m, buf, e.len), 20);
	assert_int_equal(m.method, 0xFFF);
	assert_int_equal(m.cls, NB_STUN_CLASS_ERROR);
	assert_int_equal(nb_stun_enc_init(&e, buf, sizeof(buf), 0x0011, tid12, false), 0);
	assert_int_equal(nb_stun_decode(&m, buf, e.len), 20);
	assert_int_equal(m.method, 0x001);
	assert_int_equal(m.cls, NB_STUN_CLASS_INDICATION);
}

static void test_classic_vectors(void **state)
{
	struct nb_stun_msg m;

	(void)state;
	assert_int_equal(nb_stun_decode(&m, classic_req, sizeof(classic_req)), 28);
	assert_true(m.classic);
	assert_int_equal(m.type, NB_STUN_BINDING_REQUEST);
	assert_memory_equal(m.tid, classic_req + 4, 16);
	assert_int_equal(m.present, NB_STUN_HAS_CHANGE_REQUEST);
	assert_int_equal(m.change_flags, NB_STUN_CHANGE_IP | NB_STUN_CHANGE_PORT);
	assert_true(nb_stun_is_stun(classic_req, sizeof(classic_req)));

	assert_int_equal(nb_stun_decode(&m, classic_resp, sizeof(classic_resp)), 88);
	assert_true(m.classic);
	assert_int_equal(m.present, NB_STUN_HAS_MAPPED | NB_STUN_HAS_SOURCE | NB_STUN_HAS_CHANGED |
					NB_STUN_HAS_SOFTWARE);
	assert_addr(&m.mapped, "198.51.100.7:32853");
	assert_addr(&m.source, "192.0.2.10:3478");
	assert_addr(&m.changed, "192.0.2.11:3479");
	assert_view(m.software, m.software_len, "Vovida.org 0.97 ", 16);
	assert_int_equal(m.n_unknown_required, 0);
	assert_int_equal(
	    nb_stun_check_integrity(&m, classic_resp, sizeof(classic_resp), test_key, 3),
	    NB_STUN_E_INTEGRITY);
}

/* ---- Truncation and guard pages ---------------------------------------- */

struct vecset {
	struct vec v[16];
	uint8_t store[8][NB_STUN_MAX_MSG];
	size_t n;
};

static void vecset_fill(struct vecset *s)
{
	s->n = 0;
	for (size_t i = 0; i < ARRAY_LEN(rfc_vectors); i++)
		s->v[s->n++] = rfc_vectors[i];
	for (int k = 0; k < 4; k++) {
		size_t len =
		    build_all(s->store[k], sizeof(s->store[k]), k & 1 ? &rt_v6 : &rt_v4, k >= 2);
		s->v[s->n++] = (struct vec){ "round trip", s->store[k], len };
	}
}

/* Decode one input; any accepted message must be self-consistent. */
static void decode_checked(const char *name, const uint8_t *buf, size_t len)
{
	struct nb_stun_msg m;
	ssize_t rc = nb_stun_decode(&m, buf, len);
	ssize_t fl;

	if (rc > 0) {
		if ((size_t)rc != len || m.length != len - NB_STUN_HDR_LEN)
			fail_msg("%s len %zu: accepted with rc %zd, length %u", name, len, rc,
				 m.length);
		(void)nb_stun_check_integrity(&m, buf, len, test_key, sizeof(test_key) - 1);
	} else if (rc != NB_STUN_E_TRUNCATED && rc != NB_STUN_E_NOT_STUN &&
		   rc != NB_STUN_E_BAD_ATTR && rc != NB_STUN_E_ORDER &&
		   rc != NB_STUN_E_FINGERPRINT) {
		fail_msg("%s len %zu: unexpected %zd", name, len, rc);
	}
	(void)nb_stun_is_stun(buf, len);
	fl = nb_stun_frame_len(buf, len);
	if (len < 4)
		assert_int_equal(fl, 0);
}

static void test_every_prefix(void **state)
{
	struct vecset *s = malloc(sizeof(*s));

	(void)state;
	assert_non_null(s);
	vecset_fill(s);
	for (size_t k = 0; k < s->n; k++) {
		const struct vec *v = &s->v[k];

		for (size_t p = 0; p < v->len; p++) {
			uint8_t *c = malloc(p ? p : 1);
			struct nb_stun_msg m;

			assert_non_null(c);
			memcpy(c, v->buf, p);
			/* A plain prefix disagrees with its length field. */
			ssize_t rc = nb_stun_decode(&m, c, p);
			if (rc != NB_STUN_E_TRUNCATED)
				fail_msg("%s prefix %zu: %zd", v->name, p, rc);
			decode_checked(v->name, c, p);
			/* With the length field patched to match, the walk
			 * runs into the cut attribute (or the prefix is a
			 * valid message on its own). */
			if (p >= NB_STUN_HDR_LEN && (p - NB_STUN_HDR_LEN) % 4 == 0) {
				nb_put_u16be(c + 2, (uint16_t)(p - NB_STUN_HDR_LEN));
				decode_checked(v->name, c, p);
			}
			free(c);
		}
		decode_checked(v->name, v->buf, v->len);
	}
	free(s);
}

static void test_guard_page(void **state)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct vecset *s = malloc(sizeof(*s));
	uint8_t *map;

	(void)state;
	assert_non_null(s);
	assert_true(pg >= 4096);
	map =
	    mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);
	vecset_fill(s);
	for (size_t k = 0; k < s->n; k++) {
		const struct vec *v = &s->v[k];

		for (size_t p = 0; p <= v->len; p++) {
			/* The last byte of the input is the last byte of the
			 * readable page. Read-only too: the decoder never writes. */
			uint8_t *at = map + pg - p;

			assert_int_equal(mprotect(map, (size_t)pg, PROT_READ | PROT_WRITE), 0);
			memcpy(at, v->buf, p);
			if (p >= NB_STUN_HDR_LEN && (p - NB_STUN_HDR_LEN) % 4 == 0)
				nb_put_u16be(at + 2, (uint16_t)(p - NB_STUN_HDR_LEN));
			assert_int_equal(mprotect(map, (size_t)pg, PROT_READ), 0);
			decode_checked(v->name, at, p);
		}
		/* The whole message, unpatched, with integrity. */
		{
			uint8_t *at = map + pg - v->len;
			struct nb_stun_msg m;

			assert_int_equal(mprotect(map, (size_t)pg, PROT_READ | PROT_WRITE), 0);
			memcpy(at, v->buf, v->len);
			assert_int_equal(mprotect(map, (size_t)pg, PROT_READ), 0);
			assert_int_equal(nb_stun_decode(&m, at, v->len), (ssize_t)v->len);
			if (k == 0)
				assert_int_equal(nb_stun_check_integrity(
						     &m, at, v->len, (const uint8_t *)rfc5769_pwd,
						     strlen(rfc5769_pwd)),
						 0);
			if (k >= ARRAY_LEN(rfc_vectors))
				assert_int_equal(nb_stun_check_integrity(&m, at, v->len, test_key,
									 sizeof(test_key) - 1),
						 0);
		}
	}
	assert_int_equal(munmap(map, 2 * (size_t)pg), 0);
	free(s);
}

/* The decoder never writes its input: decode from a read-only mapping, and
 * compare a copy before and after. */
static void test_no_mutation(void **state)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct vecset *s = malloc(sizeof(*s));

	(void)state;
	assert_non_null(s);
	vecset_fill(s);
	for (size_t k = 0; k < s->n; k++) {
		const struct vec *v = &s->v[k];
		uint8_t *ro = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uint8_t before[NB_STUN_MAX_MSG];
		struct nb_stun_msg m;
		uint32_t sum;

		assert_true(ro != MAP_FAILED);
		memcpy(ro, v->buf, v->len);
		memcpy(before, v->buf, v->len);
		assert_int_equal(mprotect(ro, (size_t)pg, PROT_READ), 0);
		sum = nb_crc32(ro, v->len);
		assert_int_equal(nb_stun_decode(&m, ro, v->len), (ssize_t)v->len);
		(void)nb_stun_check_integrity(&m, ro, v->len, test_key, sizeof(test_key) - 1);
		(void)nb_stun_check_integrity(&m, ro, v->len, (const uint8_t *)rfc5769_pwd,
					      strlen(rfc5769_pwd));
		assert_memory_equal(ro, before, v->len);
		assert_int_equal(nb_crc32(ro, v->len), sum);
		assert_int_equal(munmap(ro, (size_t)pg), 0);
	}
	free(s);
}

/* ---- Malformed messages ------------------------------------------------- */

/* Header with the magic cookie and a fixed tid; t and l are the type and
 * the length field. */
#define H(t, l)                                                                                  \
	(uint8_t)((t) >> 8), (uint8_t)(t), (uint8_t)((l) >> 8), (uint8_t)(l), 0x21, 0x12, 0xa4, \
		0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
/* Attribute header. */
#define A(t, l) (uint8_t)((t) >> 8), (uint8_t)(t), (uint8_t)((l) >> 8), (uint8_t)(l)
#define Z16 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
#define MI_VAL Z16, 0, 0, 0, 0

static const uint8_t m_short[] = { H(0x0001, 0) };
static const uint8_t m_top01[] = { H(0x4001, 0) };
static const uint8_t m_top10[] = { H(0x8001, 0) };
static const uint8_t m_len_odd[] = { H(0x0001, 2), 0, 0 };
static const uint8_t m_len_big[] = { H(0x0001, 8), A(0x8022, 0) };
static const uint8_t m_len_small[] = { H(0x0001, 4), A(0x8022, 4), 'a', 'b', 'c', 'd' };
static const uint8_t m_attr_over[] = { H(0x0001, 8), A(0x8022, 8), 'a', 'b', 'c', 'd' };
static const uint8_t m_attr_over_big[] = { H(0x0001, 4), A(0x8022, 0xffff) };
static const uint8_t m_pad_over[] = { H(0x0001, 12), A(0x8022, 1), 'a', 0, 0, 0, A(0x8022, 1) };
static const uint8_t m_pad_over2[] = { H(0x0001, 8), A(0x0006, 5), 'a', 'b', 'c', 'd' };
static const uint8_t m_fam0[] = { H(0x0101, 12), A(0x0001, 8), 0, 0, 0, 1, 1, 2, 3, 4 };
static const uint8_t m_fam3[] = { H(0x0101, 12), A(0x0001, 8), 0, 3, 0, 1, 1, 2, 3, 4 };
static const uint8_t m_v4_long[] = { H(0x0101, 16), A(0x0001, 12), 0, 1, 0, 1, 1, 2, 3, 4,
				     5, 6, 7, 8 };
static const uint8_t m_v4_short[] = { H(0x0101, 8), A(0x0001, 3), 0, 1, 0, 0 };
static const uint8_t m_addr_empty[] = { H(0x0101, 4), A(0x0004, 0) };
static const uint8_t m_xor_short[] = { H(0x0101, 8), A(0x0020, 4), 0, 1, 0, 1 };
static const uint8_t m_xor_v6_as_v4[] = { H(0x0101, 12), A(0x0020, 8), 0, 2, 0, 1, 1, 2, 3, 4 };
static const uint8_t m_v6_short[] = { H(0x0101, 20), A(0x802c, 16), 0, 2, 0, 1, 1, 2, 3, 4,
				      5, 6, 7, 8, 9, 10, 11, 12 };
static const uint8_t m_v6_long[] = { H(0x0101, 28), A(0x802b, 24), 0, 2, 0, 1, 1, 2, 3, 4, 5, 6,
				     7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0, 0, 0, 0 };
static const uint8_t m_v4_as_v6[] = { H(0x0101, 24), A(0x0005, 20), 0, 1, 0, 1, 1, 2, 3, 4,
				      5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
static const uint8_t m_dup_bad[] = { H(0x0101, 24), A(0x0001, 8), 0, 1, 0, 1, 1, 2, 3, 4,
				     A(0x0001, 8), 0, 9, 0, 1, 1, 2, 3, 4 };
static const uint8_t m_err_cls2[] = { H(0x0111, 8), A(0x0009, 4), 0, 0, 2, 99 };
static const uint8_t m_err_cls7[] = { H(0x0111, 8), A(0x0009, 4), 0, 0, 7, 0 };
static const uint8_t m_err_cls0[] = { H(0x0111, 8), A(0x0009, 4), 0, 0, 0, 0 };
static const uint8_t m_err_num100[] = { H(0x0111, 8), A(0x0009, 4), 0, 0, 4, 100 };
static const uint8_t m_err_short[] = { H(0x0111, 8), A(0x0009, 3), 0, 0, 4, 0 };
static const uint8_t m_after_fp[] = { H(0x0001, 16), A(0x8028, 4), 0, 0, 0, 0,
				      A(0x8022, 0), A(0x8022, 0) };
static const uint8_t m_fp_after_fp[] = { H(0x0001, 16), A(0x8028, 4), 0, 0, 0, 0,
					 A(0x8028, 4), 0, 0, 0, 0 };
static const uint8_t m_after_mi[] = { H(0x0001, 32), A(0x0008, 20), MI_VAL,
				      A(0x8022, 4), 'a', 'b', 'c', 'd' };
static const uint8_t m_unknown_after_mi[] = { H(0x0001, 28), A(0x0008, 20), MI_VAL, A(0xc001, 0) };
static const uint8_t m_mi_after_mi[] = { H(0x0001, 48), A(0x0008, 20), MI_VAL,
					 A(0x0008, 20), MI_VAL };
static const uint8_t m_mi_after_mi256[] = { H(0x0001, 48), A(0x001c, 20), MI_VAL,
					    A(0x0008, 20), MI_VAL };
static const uint8_t m_mi256_twice[] = { H(0x0001, 48), A(0x001c, 20), MI_VAL,
					 A(0x001c, 20), MI_VAL };
static const uint8_t m_user_after_mi256[] = { H(0x0001, 24), A(0x001c, 16), 0, 0, 0, 0, 0, 0, 0, 0,
					      0, 0, 0, 0, 0, 0, 0, 0, A(0x0006, 0) };
static const uint8_t m_mi_short[] = { H(0x0001, 20), A(0x0008, 16), Z16 };
static const uint8_t m_mi_long[] = { H(0x0001, 28), A(0x0008, 24), MI_VAL, 0, 0, 0, 0 };
static const uint8_t m_mi256_12[] = { H(0x0001, 16), A(0x001c, 12), 0, 0, 0, 0, 0, 0, 0, 0,
				      0, 0, 0, 0 };
static const uint8_t m_mi256_18[] = { H(0x0001, 28), A(0x001c, 18), MI_VAL, 0, 0, 0, 0 };
static const uint8_t m_mi256_36[] = { H(0x0001, 40), A(0x001c, 36), MI_VAL, 0, 0, 0, 0, 0, 0, 0, 0,
				      0, 0, 0, 0, 0, 0, 0, 0 };
static const uint8_t m_fp_long[] = { H(0x0001, 12), A(0x8028, 8), 0, 0, 0, 0, 0, 0, 0, 0 };
static const uint8_t m_fp_short[] = { H(0x0001, 8), A(0x8028, 2), 0, 0, 0, 0 };
static const uint8_t m_fp_wrong[] = { H(0x0001, 8), A(0x8028, 4), 0, 0, 0, 0 };
static const uint8_t m_chreq_2[] = { H(0x0001, 8), A(0x0003, 2), 0, 6, 0, 0 };
static const uint8_t m_chreq_8[] = { H(0x0001, 12), A(0x0003, 8), 0, 0, 0, 6, 0, 0, 0, 0 };
static const uint8_t m_chreq_0[] = { H(0x0001, 4), A(0x0003, 0) };
static const uint8_t m_unk_odd[] = { H(0x0111, 8), A(0x000a, 3), 0, 1, 0, 0 };
static const uint8_t m_unk_one[] = { H(0x0111, 8), A(0x000a, 1), 0, 0, 0, 0 };
static const uint8_t m_rport_3[] = { H(0x0001, 8), A(0x0027, 3), 1, 2, 3, 0 };
static const uint8_t m_rport_1[] = { H(0x0001, 8), A(0x0027, 1), 1, 0, 0, 0 };
static const uint8_t m_rport_8[] = { H(0x0001, 12), A(0x0027, 8), 1, 2, 0, 0, 0, 0, 0, 0 };
/* Classic messages get the same per-attribute length checks. */
static const uint8_t m_classic_bad_attr[] = { 0x00, 0x01, 0x00, 0x08, 0xde, 0xad, 0xbe, 0xef,
					      1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
					      A(0x0003, 3), 0, 0, 6, 0 };

static const struct {
	const char *name;
	const uint8_t *buf;
	size_t len;
	int err;
} bad_cases[] = {
#define C(name, arr, err) { name, arr, sizeof(arr), err }
#define CL(name, arr, len, err) { name, arr, len, err }
	CL("empty", m_short, 0, NB_STUN_E_TRUNCATED),
	CL("19 bytes", m_short, 19, NB_STUN_E_TRUNCATED),
	C("top bits 01", m_top01, NB_STUN_E_NOT_STUN),
	C("top bits 10", m_top10, NB_STUN_E_NOT_STUN),
	C("length not multiple of 4", m_len_odd, NB_STUN_E_NOT_STUN),
	C("length field larger than buffer", m_len_big, NB_STUN_E_TRUNCATED),
	C("length field smaller than buffer", m_len_small, NB_STUN_E_NOT_STUN),
	C("attribute length overruns", m_attr_over, NB_STUN_E_BAD_ATTR),
	C("attribute length 0xffff", m_attr_over_big, NB_STUN_E_BAD_ATTR),
	C("padding region overruns", m_pad_over, NB_STUN_E_BAD_ATTR),
	C("value fits, padding does not", m_pad_over2, NB_STUN_E_BAD_ATTR),
	C("address family 0", m_fam0, NB_STUN_E_BAD_ATTR),
	C("address family 3", m_fam3, NB_STUN_E_BAD_ATTR),
	C("IPv4 address too long", m_v4_long, NB_STUN_E_BAD_ATTR),
	C("IPv4 address too short", m_v4_short, NB_STUN_E_BAD_ATTR),
	C("empty SOURCE-ADDRESS", m_addr_empty, NB_STUN_E_BAD_ATTR),
	C("XOR-MAPPED wrong length", m_xor_short, NB_STUN_E_BAD_ATTR),
	C("XOR-MAPPED IPv6 with 8 bytes", m_xor_v6_as_v4, NB_STUN_E_BAD_ATTR),
	C("IPv6 OTHER-ADDRESS too short", m_v6_short, NB_STUN_E_BAD_ATTR),
	C("IPv6 RESPONSE-ORIGIN too long", m_v6_long, NB_STUN_E_BAD_ATTR),
	C("IPv4 family with 20 bytes", m_v4_as_v6, NB_STUN_E_BAD_ATTR),
	C("bad duplicate MAPPED-ADDRESS", m_dup_bad, NB_STUN_E_BAD_ATTR),
	C("ERROR-CODE class 2", m_err_cls2, NB_STUN_E_BAD_ATTR),
	C("ERROR-CODE class 7", m_err_cls7, NB_STUN_E_BAD_ATTR),
	C("ERROR-CODE class 0", m_err_cls0, NB_STUN_E_BAD_ATTR),
	C("ERROR-CODE number 100", m_err_num100, NB_STUN_E_BAD_ATTR),
	C("ERROR-CODE 3 bytes", m_err_short, NB_STUN_E_BAD_ATTR),
	C("attribute after FINGERPRINT", m_after_fp, NB_STUN_E_ORDER),
	C("FINGERPRINT twice", m_fp_after_fp, NB_STUN_E_ORDER),
	C("SOFTWARE after MESSAGE-INTEGRITY", m_after_mi, NB_STUN_E_ORDER),
	C("optional attribute after MESSAGE-INTEGRITY", m_unknown_after_mi, NB_STUN_E_ORDER),
	C("MESSAGE-INTEGRITY twice", m_mi_after_mi, NB_STUN_E_ORDER),
	C("MI after MI-SHA256", m_mi_after_mi256, NB_STUN_E_ORDER),
	C("MI-SHA256 twice", m_mi256_twice, NB_STUN_E_ORDER),
	C("USERNAME after MI-SHA256", m_user_after_mi256, NB_STUN_E_ORDER),
	C("MESSAGE-INTEGRITY 16 bytes", m_mi_short, NB_STUN_E_BAD_ATTR),
	C("MESSAGE-INTEGRITY 24 bytes", m_mi_long, NB_STUN_E_BAD_ATTR),
	C("MI-SHA256 12 bytes", m_mi256_12, NB_STUN_E_BAD_ATTR),
	C("MI-SHA256 18 bytes", m_mi256_18, NB_STUN_E_BAD_ATTR),
	C("MI-SHA256 36 bytes", m_mi256_36, NB_STUN_E_BAD_ATTR),
	C("FINGERPRINT 8 bytes", m_fp_long, NB_STUN_E_BAD_ATTR),
	C("FINGERPRINT 2 bytes", m_fp_short, NB_STUN_E_BAD_ATTR),
	C("FINGERPRINT wrong", m_fp_wrong, NB_STUN_E_FINGERPRINT),
	C("CHANGE-REQUEST 2 bytes", m_chreq_2, NB_STUN_E_BAD_ATTR),
	C("CHANGE-REQUEST 8 bytes", m_chreq_8, NB_STUN_E_BAD_ATTR),
	C("CHANGE-REQUEST empty", m_chreq_0, NB_STUN_E_BAD_ATTR),
	C("UNKNOWN-ATTRIBUTES odd length 3", m_unk_odd, NB_STUN_E_BAD_ATTR),
	C("UNKNOWN-ATTRIBUTES odd length 1", m_unk_one, NB_STUN_E_BAD_ATTR),
	C("RESPONSE-PORT 3 bytes", m_rport_3, NB_STUN_E_BAD_ATTR),
	C("RESPONSE-PORT 1 byte", m_rport_1, NB_STUN_E_BAD_ATTR),
	C("RESPONSE-PORT 8 bytes", m_rport_8, NB_STUN_E_BAD_ATTR),
	C("classic CHANGE-REQUEST 3 bytes", m_classic_bad_attr, NB_STUN_E_BAD_ATTR),
#undef C
#undef CL
};
static void test_malformed_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++) {
		struct nb_stun_msg m, sentinel;
		ssize_t rc;

		memset(&m, 0xAB, sizeof(m));
		memcpy(&sentinel, &m, sizeof(m));
		rc = decode_copy(&m, bad_cases[i].buf, bad_cases[i].len);
		if (rc != bad_cases[i].err)
			fail_msg("case %zu '%s': %zd (%s), want %d (%s)", i, bad_cases[i].name, rc,
				 nb_stun_strerror((int)rc), bad_cases[i].err,
				 nb_stun_strerror(bad_cases[i].err));
		if (memcmp(&m, &sentinel, sizeof(m)) != 0)
			fail_msg("case %zu '%s': output written on failure", i, bad_cases[i].name);
	}
}

/* Legal corner cases next to the malformed ones. */
static const uint8_t ok_mi256_after_mi[] = { H(0x0001, 48), A(0x0008, 20), MI_VAL,
					     A(0x001c, 20), MI_VAL };
static const uint8_t ok_mi256_16[] = { H(0x0001, 20), A(0x001c, 16), Z16 };
static const uint8_t ok_first_byte_63[] = { H(0x3fff, 0) };
static const uint8_t ok_empty_attrs[] = { H(0x0001, 16), A(0x8022, 0), A(0x0006, 0), A(0x0026, 0),
					  A(0x000a, 0) };
static const uint8_t ok_nonzero_padding[] = { H(0x0001, 8), A(0x0006, 1), 'u', 0xff, 0xff, 0xff };
static const uint8_t ok_ignored[] = { H(0x0001, 24), A(0x0007, 4), 'p', 'w', 'd', '!',
				      A(0x000b, 4), 0xde, 0xad, 0xbe, 0xef, A(0x0002, 0), A(0xffff, 0) };

static void test_legal_corners(void **state)
{
	struct nb_stun_msg m;

	(void)state;
	assert_int_equal(decode_copy(&m, ok_mi256_after_mi, sizeof(ok_mi256_after_mi)), 68);
	assert_int_equal(m.integrity_off, 20);
	assert_int_equal(m.integrity_sha256_off, 44);
	assert_int_equal(m.integrity_sha256_len, 20);
	assert_int_equal(decode_copy(&m, ok_mi256_16, sizeof(ok_mi256_16)), 40);
	assert_int_equal(m.integrity_sha256_len, 16);
	assert_int_equal(nb_stun_check_integrity(&m, ok_mi256_16, sizeof(ok_mi256_16), test_key, 4),
			 NB_STUN_E_INTEGRITY);
	/* A tampered msg is refused before any read past what it claims. */
	m.integrity_sha256_len = 40;
	assert_int_equal(nb_stun_check_integrity(&m, ok_mi256_16, sizeof(ok_mi256_16), test_key, 4),
			 NB_STUN_E_INTEGRITY);
	m.integrity_sha256_len = 12;
	assert_int_equal(nb_stun_check_integrity(&m, ok_mi256_16, sizeof(ok_mi256_16), test_key, 4),
			 NB_STUN_E_INTEGRITY);
	/* Decode takes the top two bits; demultiplexing (RFC 7983) is stricter. */
	assert_int_equal(decode_copy(&m, ok_first_byte_63, sizeof(ok_first_byte_63)), 20);
	assert_false(nb_stun_is_stun(ok_first_byte_63, sizeof(ok_first_byte_63)));
	assert_int_equal(decode_copy(&m, ok_empty_attrs, sizeof(ok_empty_attrs)), 36);
	assert_int_equal(m.present, NB_STUN_HAS_SOFTWARE | NB_STUN_HAS_USERNAME |
					NB_STUN_HAS_PADDING | NB_STUN_HAS_UNKNOWN_ATTRS);
	assert_int_equal(m.username_len, 0);
	assert_int_equal(m.n_unknown_attrs, 0);
	assert_int_equal(decode_copy(&m, ok_nonzero_padding, sizeof(ok_nonzero_padding)), 28);
	assert_int_equal(m.username_len, 1);
	assert_int_equal(decode_copy(&m, ok_ignored, sizeof(ok_ignored)), 44);
	assert_int_equal(m.present, NB_STUN_HAS_RESPONSE_ADDRESS);
	assert_int_equal(m.n_unknown_required, 0);
}

/* Over-long variable attributes, and the exact maxima. */
static void test_limits(void **state)
{
	static const struct {
		uint16_t type;
		size_t max;
		size_t extra; /* fixed bytes before the text */
	} lim[] = {
		{ NB_STUN_ATTR_USERNAME, NB_STUN_MAX_USERNAME, 0 },
		{ NB_STUN_ATTR_SOFTWARE, NB_STUN_MAX_SOFTWARE, 0 },
		{ NB_STUN_ATTR_ERROR_CODE, NB_STUN_MAX_REASON, 4 },
	};
	uint8_t *buf = malloc(2048);
	struct nb_stun_msg m;

	(void)state;
	assert_non_null(buf);
	for (size_t i = 0; i < ARRAY_LEN(lim); i++) {
		for (size_t n = lim[i].max; n <= lim[i].max + 1; n++) {
			size_t vlen = lim[i].extra + n;
			size_t len = NB_STUN_HDR_LEN + 4 + ((vlen + 3) & ~(size_t)3);

			memset(buf, 'a', len);
			memcpy(buf, (const uint8_t[]){ H(0x0111, 0) }, NB_STUN_HDR_LEN);
			nb_put_u16be(buf + 2, (uint16_t)(len - NB_STUN_HDR_LEN));
			nb_put_u16be(buf + 20, lim[i].type);
			nb_put_u16be(buf + 22, (uint16_t)vlen);
			if (lim[i].extra)
				memcpy(buf + 24, (const uint8_t[]){ 0, 0, 4, 0 }, 4);
			ssize_t rc = decode_copy(&m, buf, len);
			if (n == lim[i].max) {
				assert_int_equal(rc, (ssize_t)len);
			} else {
				assert_int_equal(rc, NB_STUN_E_BAD_ATTR);
			}
		}
	}

	/* Bigger than any length field can describe. */
	{
		size_t big = NB_STUN_HDR_LEN + 0x10000;
		uint8_t *b = calloc(1, big);
		assert_non_null(b);
		nb_put_u16be(b + 2, 0xfffc);
		assert_int_equal(nb_stun_decode(&m, b, big), NB_STUN_E_TOO_BIG);
		/* The largest message: one PADDING attribute filling 65532 bytes. */
		nb_put_u16be(b + 20, NB_STUN_ATTR_PADDING);
		nb_put_u16be(b + 22, 0xfff8);
		assert_int_equal(nb_stun_decode(&m, b, NB_STUN_HDR_LEN + 0xfffc),
				 NB_STUN_HDR_LEN + 0xfffc);
		assert_int_equal(m.padding_len, 0xfff8);
		assert_true(m.classic);
		assert_int_equal(nb_stun_frame_len(b, 4), NB_STUN_HDR_LEN + 0xfffc);
		free(b);
	}
	free(buf);
}

/* More unknown comprehension-required types than we report: the first
 * NB_STUN_MAX_UNKNOWN, deduplicated, nothing overflows. Same for a long
 * UNKNOWN-ATTRIBUTES list. */
static void test_unknown_overflow(void **state)
{
	uint8_t buf[NB_STUN_MAX_MSG];
	uint16_t list[40];
	struct nb_stun_enc e;
	struct nb_stun_msg m;

	(void)state;
	assert_int_equal(
	    nb_stun_enc_init(&e, buf, sizeof(buf), NB_STUN_BINDING_REQUEST, tid12, false), 0);
	for (uint16_t t = 0; t < 40; t++) {
		assert_int_equal(nb_stun_enc_attr(&e, (uint16_t)(0x7F00 + t), NULL, 0), 0);
		assert_int_equal(nb_stun_enc_attr(&e, (uint16_t)(0x7F00 + t), "dup", 3), 0);
		assert_int_equal(nb_stun_enc_attr(&e, (uint16_t)(0xFF00 + t), NULL, 0),
				 0); /* optional */
		list[t] = (uint16_t)(0x7F00 + t);
	}
	assert_int_equal(nb_stun_enc_unknown(&e, list, 40), 0);
	assert_int_equal(nb_stun_decode(&m, buf, e.len), (ssize_t)e.len);
	assert_int_equal(m.n_unknown_required, NB_STUN_MAX_UNKNOWN);
	assert_int_equal(m.n_unknown_attrs, NB_STUN_MAX_UNKNOWN);
	for (size_t i = 0; i < NB_STUN_MAX_UNKNOWN; i++) {
		assert_int_equal(m.unknown_required[i], 0x7F00 + i);
		assert_int_equal(m.unknown_attrs[i], 0x7F00 + i);
	}
}

/* ---- Encoder ------------------------------------------------------------ */

enum add_kind {
	ADD_ATTR,
	ADD_ATTR_EMPTY,
	ADD_ADDR4,
	ADD_ADDR6,
	ADD_XOR4,
	ADD_XOR6,
	ADD_U32,
	ADD_ERROR,
	ADD_UNKNOWN,
	ADD_MI,
	ADD_MI256,
	ADD_FP,
	ADD_KINDS,
};

static int do_add(struct nb_stun_enc *e, enum add_kind k)
{
	struct nb_addr a4 = addr("192.0.2.1:1"), a6 = addr("[2001:db8::1]:2");

	switch (k) {
	case ADD_ATTR: return nb_stun_enc_attr(e, NB_STUN_ATTR_SOFTWARE, "hello", 5);
	case ADD_ATTR_EMPTY: return nb_stun_enc_attr(e, NB_STUN_ATTR_SOFTWARE, NULL, 0);
	case ADD_ADDR4: return nb_stun_enc_addr(e, NB_STUN_ATTR_MAPPED_ADDRESS, &a4);
	case ADD_ADDR6: return nb_stun_enc_addr(e, NB_STUN_ATTR_OTHER_ADDRESS, &a6);
	case ADD_XOR4: return nb_stun_enc_xor_addr(e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &a4);
	case ADD_XOR6: return nb_stun_enc_xor_addr(e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &a6);
	case ADD_U32: return nb_stun_enc_u32(e, NB_STUN_ATTR_CHANGE_REQUEST, NB_STUN_CHANGE_PORT);
	case ADD_ERROR: return nb_stun_enc_error(e, 401, "Unauthorized");
	case ADD_UNKNOWN: return nb_stun_enc_unknown(e, rt_unknown, 3);
	case ADD_MI: return nb_stun_enc_integrity(e, test_key, 8);
	case ADD_MI256: return nb_stun_enc_integrity_sha256(e, test_key, 8);
	case ADD_FP: return nb_stun_enc_fingerprint(e);
	default: return -1;
	}
}

/* Each add with a buffer one byte too small fails with NOSPACE and leaves
 * the encoder and the buffer as they were; with the exact size it fits. */
static void assert_enc_equal(const struct nb_stun_enc *a, const struct nb_stun_enc *b)
{
	assert_ptr_equal(a->buf, b->buf);
	assert_int_equal(a->cap, b->cap);
	assert_int_equal(a->len, b->len);
	assert_int_equal(a->classic, b->classic);
}

static void test_encoder_capacity(void **state)
{
	(void)state;
	for (int k = 0; k < ADD_KINDS; k++) {
		uint8_t ref[256], buf[256], snap[256];
		struct nb_stun_enc e, before;
		size_t need, base;

		/* Reference: a USERNAME, then the add, with room to spare. */
		assert_int_equal(
		    nb_stun_enc_init(&e, ref, sizeof(ref), NB_STUN_BINDING_SUCCESS, tid12, false),
		    0);
		assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, "user", 4), 0);
		base = e.len;
		assert_int_equal(do_add(&e, (enum add_kind)k), 0);
		need = e.len;
		assert_true(need > base);

		for (size_t cap = base; cap <= need; cap++) {
			memset(buf, 0xEE, sizeof(buf));
			assert_int_equal(
			    nb_stun_enc_init(&e, buf, cap, NB_STUN_BINDING_SUCCESS, tid12, false),
			    0);
			assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, "user", 4), 0);
			before = e;
			memcpy(snap, buf, sizeof(buf));
			int rc = do_add(&e, (enum add_kind)k);
			if (cap < need) {
				if (rc != NB_STUN_E_NOSPACE)
					fail_msg("kind %d cap %zu: %d", k, cap, rc);
				assert_enc_equal(&e, &before);
				assert_memory_equal(buf, snap, sizeof(buf));
				assert_int_equal(nb_get_u16be(buf + 2), base - NB_STUN_HDR_LEN);
			} else {
				assert_int_equal(rc, 0);
				assert_int_equal(e.len, need);
				assert_memory_equal(buf, ref, need);
				assert_int_equal(buf[need], 0xEE); /* nothing past the end */
			}
		}
	}

	/* enc_init: too small a buffer, and *e untouched on failure. */
	{
		uint8_t buf[20];
		struct nb_stun_enc e, before;

		e = (struct nb_stun_enc){ .buf = buf + 1, .cap = 7, .len = 3, .classic = true };
		before = e;
		assert_int_equal(
		    nb_stun_enc_init(&e, buf, 19, NB_STUN_BINDING_REQUEST, tid12, false),
		    NB_STUN_E_NOSPACE);
		assert_enc_equal(&e, &before);
		assert_int_equal(
		    nb_stun_enc_init(&e, buf, 20, NB_STUN_BINDING_REQUEST, tid12, false), 0);
		assert_int_equal(nb_stun_enc_fingerprint(&e), NB_STUN_E_NOSPACE);
		assert_int_equal(e.len, 20);
	}
}

static void test_encoder_invalid(void **state)
{
	uint8_t buf[2048];
	struct nb_stun_enc e;
	struct nb_addr none = { 0 };
	struct nb_addr a4 = addr("192.0.2.1:1");
	char reason[NB_STUN_MAX_REASON + 2];

	(void)state;
	assert_int_equal(nb_stun_enc_init(NULL, buf, sizeof(buf), 1, tid12, false),
			 NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_init(&e, NULL, sizeof(buf), 1, tid12, false), NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_init(&e, buf, sizeof(buf), 1, NULL, false), NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_init(&e, buf, sizeof(buf), 0x4001, tid12, false),
			 NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_init(&e, buf, sizeof(buf), 1,
					  (const uint8_t[16]){ 0x21, 0x12, 0xa4, 0x42 }, true),
			 NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_attr(NULL, 1, NULL, 0), NB_STUN_E_INVAL);

	assert_int_equal(
	    nb_stun_enc_init(&e, buf, sizeof(buf), NB_STUN_BINDING_SUCCESS, tid12, false), 0);
	assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_SOFTWARE, NULL, 3), NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_PADDING, buf, 0x10000), NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_addr(&e, NB_STUN_ATTR_MAPPED_ADDRESS, &none), NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_addr(&e, NB_STUN_ATTR_MAPPED_ADDRESS, NULL), NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &none),
			 NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_error(&e, 299, "x"), NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_error(&e, 700, "x"), NB_STUN_E_INVAL);
	memset(reason, 'r', sizeof(reason));
	reason[NB_STUN_MAX_REASON + 1] = '\0';
	assert_int_equal(nb_stun_enc_error(&e, 400, reason), NB_STUN_E_INVAL);
	reason[NB_STUN_MAX_REASON] = '\0';
	assert_int_equal(nb_stun_enc_unknown(&e, rt_unknown, 0), NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_unknown(&e, NULL, 1), NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_integrity(&e, NULL, 3), NB_STUN_E_INVAL);
	assert_int_equal(e.len, 20); /* none of the above wrote anything */
	assert_int_equal(nb_stun_enc_error(&e, 400, reason), 0);

	/* Order: only MI-SHA256 or FINGERPRINT after MI, only FP after
	 * MI-SHA256, nothing after FP. */
	assert_int_equal(nb_stun_enc_integrity(&e, test_key, 3), 0);
	assert_int_equal(nb_stun_enc_addr(&e, NB_STUN_ATTR_MAPPED_ADDRESS, &a4), NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_integrity(&e, test_key, 3), NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_integrity_sha256(&e, test_key, 3), 0);
	assert_int_equal(nb_stun_enc_integrity_sha256(&e, test_key, 3), NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_integrity(&e, test_key, 3), NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, "u", 1), NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_fingerprint(&e), 0);
	assert_int_equal(nb_stun_enc_attr(&e, 0x8055, NULL, 0), NB_STUN_E_INVAL);

	/* A corrupted encoder is refused, not trusted. */
	e.len = e.cap + 4;
	assert_int_equal(nb_stun_enc_u32(&e, NB_STUN_ATTR_CHANGE_REQUEST, 0), NB_STUN_E_INVAL);
	e.len = 10;
	assert_int_equal(nb_stun_enc_fingerprint(&e), NB_STUN_E_INVAL);

	/* Classic: XOR refused, odd UNKNOWN-ATTRIBUTES repeated. */
	assert_int_equal(nb_stun_enc_init(&e, buf, sizeof(buf), NB_STUN_BINDING_ERROR, tid16, true),
			 0);
	assert_int_equal(nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &a4),
			 NB_STUN_E_INVAL);
	assert_int_equal(nb_stun_enc_unknown(&e, rt_unknown, 1), 0);
	assert_int_equal(e.len, 28);
	assert_int_equal(nb_get_u16be(buf + 22), 4);
	assert_int_equal(nb_get_u16be(buf + 26), rt_unknown[0]);

	/* The encoder stops at what a length field can describe, even when
	 * the caller's buffer is larger. */
	{
		size_t cap = NB_STUN_HDR_LEN + 0x10000 + 64;
		uint8_t *big = malloc(cap);
		assert_non_null(big);
		assert_int_equal(
		    nb_stun_enc_init(&e, big, cap, NB_STUN_BINDING_REQUEST, tid12, false), 0);
		assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_PADDING, big, 0xfff8), 0);
		assert_int_equal(e.len, NB_STUN_HDR_LEN + 0xfffc);
		assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_PADDING, NULL, 0),
				 NB_STUN_E_NOSPACE);
		struct nb_stun_msg m;
		assert_int_equal(nb_stun_decode(&m, big, e.len), (ssize_t)e.len);
		free(big);
	}
}

/* ---- Small functions ---------------------------------------------------- */

static void test_is_stun_frame_len(void **state)
{
	static const uint8_t dtls[] = { 0x16, 0xfe, 0xfd, 0x00, 0, 0, 0, 0, 0, 0,
					0,    0,    0,    0,    0, 0, 0, 0, 0, 0 };
	static const uint8_t json[] = "{\"type\":\"hello\",\"x\":1}";
	uint8_t b[24];

	(void)state;
	assert_false(nb_stun_is_stun(NULL, 20));
	assert_false(nb_stun_is_stun(rfc5769_req, 19));
	assert_false(nb_stun_is_stun(rfc5769_req, sizeof(rfc5769_req) - 4));
	assert_false(nb_stun_is_stun(dtls, sizeof(dtls)));
	assert_false(nb_stun_is_stun(json, sizeof(json) - 1));
	memcpy(b, (const uint8_t[]){ H(0x0401, 4) }, 20);
	assert_false(nb_stun_is_stun(b, 24)); /* first byte 4: not STUN per RFC 7983 */
	b[0] = 0x03;
	assert_true(nb_stun_is_stun(b, 24));
	nb_put_u16be(b + 2, 2);
	assert_false(nb_stun_is_stun(b, 22));

	assert_int_equal(nb_stun_frame_len(NULL, 0), 0);
	assert_int_equal(nb_stun_frame_len(rfc5769_req, 3), 0);
	assert_int_equal(nb_stun_frame_len(rfc5769_req, 4), 108);
	assert_int_equal(nb_stun_frame_len(rfc5769_req, 108), 108);
	/* frame_len only checks what a STUN stream can rule out: 0x16 has its
	 * top two bits clear and 0xfd00 is a multiple of 4. */
	assert_int_equal(nb_stun_frame_len(dtls, sizeof(dtls)), 20 + 0xfd00);
	assert_int_equal(nb_stun_frame_len(json, sizeof(json) - 1), NB_STUN_E_NOT_STUN);
	assert_int_equal(nb_stun_frame_len(b, 4), NB_STUN_E_NOT_STUN); /* length 2 */
	assert_int_equal(nb_stun_frame_len((const uint8_t *)"\x00\x01\xff\xfc", 4), 20 + 0xfffc);

	/* decode argument checks */
	{
		struct nb_stun_msg m;
		assert_int_equal(nb_stun_decode(NULL, rfc5769_req, sizeof(rfc5769_req)),
				 NB_STUN_E_INVAL);
		assert_int_equal(nb_stun_decode(&m, NULL, 20), NB_STUN_E_INVAL);
		assert_int_equal(nb_stun_decode(&m, NULL, 0), NB_STUN_E_TRUNCATED);
		assert_int_equal(nb_stun_check_integrity(NULL, rfc5769_req, 108, test_key, 1),
				 NB_STUN_E_INTEGRITY);
		/* A msg that does not describe buf is refused, not trusted. */
		assert_int_equal(nb_stun_decode(&m, rfc5769_req, sizeof(rfc5769_req)), 108);
		assert_int_equal(nb_stun_check_integrity(&m, rfc5769_req, 90, test_key, 1),
				 NB_STUN_E_INTEGRITY);
		assert_int_equal(
		    nb_stun_check_integrity(&m, rfc5769_resp4, sizeof(rfc5769_resp4), test_key, 1),
		    NB_STUN_E_INTEGRITY);
		m.integrity_off = 1000;
		assert_int_equal(nb_stun_check_integrity(&m, rfc5769_req, 108, test_key, 1),
				 NB_STUN_E_INTEGRITY);
		m.integrity_off = 4;
		assert_int_equal(nb_stun_check_integrity(&m, rfc5769_req, 108, test_key, 1),
				 NB_STUN_E_INTEGRITY);
	}
}

static void test_crc32(void **state)
{
	(void)state;
	/* The CRC-32 check value (ITU-T V.42 / ISO 3309). */
	assert_int_equal(nb_crc32((const uint8_t *)"123456789", 9), 0xCBF43926u);
	assert_int_equal(nb_crc32((const uint8_t *)"", 0), 0);
	assert_int_equal(nb_crc32(NULL, 0), 0);
	assert_int_equal(nb_crc32(rfc5769_req, 100) ^ NB_STUN_FINGERPRINT_XOR, 0xe57a3bcfu);
}

static void test_strerror(void **state)
{
	static const int codes[] = {
		NB_STUN_E_TRUNCATED, NB_STUN_E_NOT_STUN,    NB_STUN_E_BAD_ATTR,
		NB_STUN_E_ORDER,     NB_STUN_E_FINGERPRINT, NB_STUN_E_NOSPACE,
		NB_STUN_E_INTEGRITY, NB_STUN_E_INVAL,       NB_STUN_E_TOO_BIG
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(codes); i++) {
		assert_non_null(nb_stun_strerror(codes[i]));
		assert_string_not_equal(nb_stun_strerror(codes[i]), "unknown error");
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(nb_stun_strerror(codes[i]),
						nb_stun_strerror(codes[j]));
	}
	assert_string_equal(nb_stun_strerror(-1), "unknown error");
	assert_string_equal(nb_stun_strerror(0), "ok");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc5769_request),
		cmocka_unit_test(test_rfc5769_ipv4_response),
		cmocka_unit_test(test_rfc5769_ipv6_response),
		cmocka_unit_test(test_rfc5769_long_term),
		cmocka_unit_test(test_rfc5769_reencode),
		cmocka_unit_test(test_bitflip_fingerprint),
		cmocka_unit_test(test_bitflip_integrity),
		cmocka_unit_test(test_round_trip_all),
		cmocka_unit_test(test_round_trip_each),
		cmocka_unit_test(test_classic_vectors),
		cmocka_unit_test(test_every_prefix),
		cmocka_unit_test(test_guard_page),
		cmocka_unit_test(test_no_mutation),
		cmocka_unit_test(test_malformed_table),
		cmocka_unit_test(test_legal_corners),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_unknown_overflow),
		cmocka_unit_test(test_encoder_capacity),
		cmocka_unit_test(test_encoder_invalid),
		cmocka_unit_test(test_is_stun_frame_len),
		cmocka_unit_test(test_crc32),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
