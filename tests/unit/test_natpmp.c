/* tests/unit/test_natpmp.c - NAT-PMP (RFC 6886): the requests byte for byte
 * (hand-written layouts and natpmpc's captured datagrams), every opcode and
 * result code decoded, error-response lengths, every-prefix truncation,
 * wrong version / opcode (reflection of our own request), every bit of a
 * response flipped, and the result strings. Inputs live in exact-size heap
 * copies so ASan catches a read past the end. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "peer/portmap/natpmp.h"

/* decode from an exact-size heap copy; on failure *r must stay untouched */
static int decode(const uint8_t *buf, size_t len, struct nb_natpmp_response *r)
{
	struct nb_natpmp_response sentinel;
	uint8_t *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	if (len)
		memcpy(copy, buf, len);
	memset(r, 0xA5, sizeof(*r));
	memcpy(&sentinel, r, sizeof(sentinel));
	rc = nb_natpmp_decode(copy, len, r);
	free(copy);
	if (rc != 0) {
		assert_int_equal(rc, -EINVAL);
		assert_memory_equal(r, &sentinel, sizeof(*r));
	}
	return rc;
}

/* ---- requests ------------------------------------------------------------ */

static void test_encode_extaddr(void **state)
{
	uint8_t out[NB_NATPMP_REQ_MAX];

	(void)state;
	memset(out, 0xEE, sizeof(out));
	assert_int_equal(nb_natpmp_encode_extaddr(out), 2);
	assert_int_equal(out[0], 0); /* version */
	assert_int_equal(out[1], 0); /* OP = 0 */
	assert_int_equal(out[2], 0xEE);
}

static void test_encode_map_layout(void **state)
{
	/* §3.3: version, OP, reserved(16), internal, suggested external, lifetime */
	static const uint8_t udp[12] = { 0, 1, 0, 0, 0xAB, 0xCD, 0x01, 0x02, 0x00, 0x00, 0x1C, 0x20 };
	static const uint8_t tcp[12] = { 0, 2, 0, 0, 0x00, 0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
	static const uint8_t del[12] = { 0, 1, 0, 0, 0xAB, 0xCD, 0, 0, 0, 0, 0, 0 };
	uint8_t out[NB_NATPMP_REQ_MAX];

	(void)state;
	assert_int_equal(nb_natpmp_encode_map(out, false, 0xABCD, 0x0102, 7200), 12);
	assert_memory_equal(out, udp, 12);
	assert_int_equal(nb_natpmp_encode_map(out, true, 22, 0xFFFF, 0xFFFFFFFFu), 12);
	assert_memory_equal(out, tcp, 12);
	/* §3.4: delete = lifetime 0 and suggested external port 0 */
	assert_int_equal(nb_natpmp_encode_map(out, false, 0xABCD, 0, 0), 12);
	assert_memory_equal(out, del, 12);
}

/* Byte for byte what natpmpc (libnatpmp 20150609) sent to a listener on
 * 127.0.0.1:5351 for "natpmpc -g 127.0.0.1 -a 4660 22136 udp 7200" and
 * "-a 4660 0 tcp 0" (public port first on its command line). */
static void test_encode_natpmpc_capture(void **state)
{
	static const uint8_t ext[2] = { 0x00, 0x00 };
	static const uint8_t map_udp[12] = { 0x00, 0x01, 0x00, 0x00, 0x56, 0x78,
					     0x12, 0x34, 0x00, 0x00, 0x1c, 0x20 };
	static const uint8_t map_tcp0[12] = { 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
					      0x12, 0x34, 0x00, 0x00, 0x00, 0x00 };
	uint8_t out[NB_NATPMP_REQ_MAX];

	(void)state;
	assert_int_equal(nb_natpmp_encode_extaddr(out), sizeof(ext));
	assert_memory_equal(out, ext, sizeof(ext));
	assert_int_equal(nb_natpmp_encode_map(out, false, 22136, 4660, 7200), sizeof(map_udp));
	assert_memory_equal(out, map_udp, sizeof(map_udp));
	assert_int_equal(nb_natpmp_encode_map(out, true, 0, 4660, 0), sizeof(map_tcp0));
	assert_memory_equal(out, map_tcp0, sizeof(map_tcp0));
}

/* ---- responses ----------------------------------------------------------- */

static const uint8_t ext_ok[12] = { 0, 128, 0, 0, 0x00, 0x01, 0xE2, 0x40, 203, 0, 113, 7 };
static const uint8_t map_udp_ok[16] = { 0,    129,  0,    0,    0x00, 0x00, 0x0E, 0x10,
					0x56, 0x78, 0x9A, 0xBC, 0x00, 0x00, 0x0E, 0x10 };
static const uint8_t map_tcp_ok[16] = { 0,    130,  0,    0,    0x12, 0x34, 0x56, 0x78,
					0x00, 0x16, 0x00, 0x17, 0x00, 0x01, 0x51, 0x80 };

static void test_decode_extaddr(void **state)
{
	struct nb_natpmp_response r;

	(void)state;
	assert_int_equal(decode(ext_ok, sizeof(ext_ok), &r), 0);
	assert_int_equal(r.op, NB_NATPMP_OP_EXTADDR);
	assert_int_equal(r.result, NB_NATPMP_SUCCESS);
	assert_int_equal(r.epoch, 123456);
	assert_true(r.full);
	assert_int_equal(r.external.family, NB_AF_INET);
	assert_int_equal(r.external.port, 0);
	assert_memory_equal(r.external.ip, ((const uint8_t[]){ 203, 0, 113, 7 }), 4);
	assert_int_equal(r.internal_port, 0);
	assert_int_equal(r.external_port, 0);
	assert_int_equal(r.lifetime, 0);
}

static void test_decode_map(void **state)
{
	struct nb_natpmp_response r;

	(void)state;
	assert_int_equal(decode(map_udp_ok, sizeof(map_udp_ok), &r), 0);
	assert_int_equal(r.op, NB_NATPMP_OP_MAP_UDP);
	assert_int_equal(r.result, 0);
	assert_int_equal(r.epoch, 3600);
	assert_true(r.full);
	assert_int_equal(r.internal_port, 0x5678);
	assert_int_equal(r.external_port, 0x9ABC);
	assert_int_equal(r.lifetime, 3600);
	assert_int_equal(r.external.family, NB_AF_NONE);

	assert_int_equal(decode(map_tcp_ok, sizeof(map_tcp_ok), &r), 0);
	assert_int_equal(r.op, NB_NATPMP_OP_MAP_TCP);
	assert_int_equal(r.epoch, 0x12345678u);
	assert_true(r.full);
	assert_int_equal(r.internal_port, 22);
	assert_int_equal(r.external_port, 23);
	assert_int_equal(r.lifetime, 86400);
}

/* Every result code, 0..5 and unknown ones, on every opcode, in the short
 * (8-byte) and the full error forms. */
static void test_decode_result_codes(void **state)
{
	static const uint16_t codes[] = { 0, 1, 2, 3, 4, 5, 6, 127, 128, 0x0100, 0xFFFF };
	uint8_t buf[16];
	struct nb_natpmp_response r;

	(void)state;
	for (unsigned op = 0; op <= 2; op++) {
		size_t body = op == 0 ? 12 : 16;

		for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
			memcpy(buf, op == 0 ? ext_ok : map_udp_ok, body);
			buf[1] = (uint8_t)(128 + op);
			buf[2] = (uint8_t)(codes[i] >> 8);
			buf[3] = (uint8_t)codes[i];
			/* full form */
			assert_int_equal(decode(buf, body, &r), 0);
			assert_int_equal(r.op, op);
			assert_int_equal(r.result, codes[i]);
			assert_int_equal(r.full, codes[i] == 0);
			if (op == 0) {
				assert_int_equal(r.external.family, codes[i] == 0 ? NB_AF_INET : NB_AF_NONE);
			} else {
				assert_int_equal(r.internal_port, 0x5678); /* to match the request */
				assert_int_equal(r.external_port, codes[i] == 0 ? 0x9ABC : 0);
				assert_int_equal(r.lifetime, codes[i] == 0 ? 3600 : 0);
			}
			/* 8-byte form: only errors */
			if (codes[i] == 0) {
				assert_int_equal(decode(buf, 8, &r), -EINVAL);
			} else {
				assert_int_equal(decode(buf, 8, &r), 0);
				assert_int_equal(r.result, codes[i]);
				assert_false(r.full);
				assert_int_equal(r.external.family, NB_AF_NONE);
				assert_int_equal(r.internal_port, 0);
				assert_int_equal(r.epoch, op == 0 ? 123456 : 3600);
			}
		}
	}
}

/* The answer of a NAT-PMP-only gateway to a PCP MAP request (RFC 6887 §9,
 * RFC 6886 §3.5): version 0, OP 128 + 1, UNSUPPORTED_VERSION, 8 bytes. */
static void test_decode_unsupp_version_to_pcp(void **state)
{
	static const uint8_t buf[8] = { 0, 129, 0, 1, 0, 0, 0, 42 };
	struct nb_natpmp_response r;

	(void)state;
	assert_int_equal(decode(buf, sizeof(buf), &r), 0);
	assert_int_equal(r.op, 1);
	assert_int_equal(r.result, NB_NATPMP_UNSUPP_VERSION);
	assert_int_equal(r.epoch, 42);
	assert_false(r.full);
}

/* Every prefix: < 8 refused; a success needs its whole body; an error may
 * stop at 8. Longer is accepted with the same fields. */
static void test_truncation(void **state)
{
	const struct {
		const uint8_t *p;
		size_t len;
	} ok[] = { { ext_ok, sizeof(ext_ok) }, { map_udp_ok, sizeof(map_udp_ok) }, { map_tcp_ok, sizeof(map_tcp_ok) } };
	uint8_t buf[64];
	struct nb_natpmp_response r, full;

	(void)state;
	for (size_t k = 0; k < sizeof(ok) / sizeof(ok[0]); k++) {
		for (size_t n = 0; n < ok[k].len; n++)
			assert_int_equal(decode(ok[k].p, n, &r), -EINVAL);
		assert_int_equal(decode(ok[k].p, ok[k].len, &full), 0);
		/* an error version of it: every prefix from 8 on is accepted */
		memcpy(buf, ok[k].p, ok[k].len);
		buf[3] = NB_NATPMP_NO_RESOURCES;
		for (size_t n = 0; n <= ok[k].len; n++)
			assert_int_equal(decode(buf, n, &r), n < 8 ? -EINVAL : 0);
		/* longer: trailing bytes ignored */
		memcpy(buf, ok[k].p, ok[k].len);
		memset(buf + ok[k].len, 0xCC, sizeof(buf) - ok[k].len);
		for (size_t n = ok[k].len; n <= sizeof(buf); n++) {
			assert_int_equal(decode(buf, n, &r), 0);
			assert_int_equal(r.op, full.op);
			assert_int_equal(r.epoch, full.epoch);
			assert_int_equal(r.internal_port, full.internal_port);
			assert_int_equal(r.external_port, full.external_port);
			assert_int_equal(r.lifetime, full.lifetime);
			assert_memory_equal(r.external.ip, full.external.ip, 4);
		}
	}
}

static void test_wrong_version_and_opcode(void **state)
{
	uint8_t buf[16], req[NB_NATPMP_REQ_MAX];
	struct nb_natpmp_response r;

	(void)state;
	for (unsigned v = 1; v < 256; v++) {
		memcpy(buf, map_udp_ok, 16);
		buf[0] = (uint8_t)v; /* 2 = PCP: not for this decoder */
		assert_int_equal(decode(buf, 16, &r), -EINVAL);
	}
	for (unsigned op = 0; op < 256; op++) {
		memcpy(buf, map_udp_ok, 16);
		buf[1] = (uint8_t)op;
		assert_int_equal(decode(buf, 16, &r), (op >= 128 && op <= 130) ? 0 : -EINVAL);
	}
	/* our own requests, reflected back, are not responses */
	assert_int_equal(nb_natpmp_encode_map(req, false, 1000, 1000, 7200), 12);
	assert_int_equal(decode(req, 12, &r), -EINVAL);
	assert_int_equal(nb_natpmp_encode_map(req, true, 1000, 1000, 7200), 12);
	assert_int_equal(decode(req, 12, &r), -EINVAL);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(nb_natpmp_encode_extaddr(buf), 2);
	assert_int_equal(decode(buf, 12, &r), -EINVAL);
	assert_int_equal(nb_natpmp_decode(NULL, 12, &r), -EINVAL);
	assert_int_equal(nb_natpmp_decode(ext_ok, 12, NULL), -EINVAL);
}

static bool same(const struct nb_natpmp_response *a, const struct nb_natpmp_response *b)
{
	return a->op == b->op && a->result == b->result && a->epoch == b->epoch && a->full == b->full &&
	       a->external.family == b->external.family && memcmp(a->external.ip, b->external.ip, 4) == 0 &&
	       a->internal_port == b->internal_port && a->external_port == b->external_port &&
	       a->lifetime == b->lifetime;
}

/* Every bit of every byte flipped: never a crash; a change in version or
 * opcode is refused or shows; reserved bytes do not exist in responses, so
 * every other flip changes the decoded response. */
static void test_bit_flips(void **state)
{
	const struct {
		const uint8_t *p;
		size_t len;
	} ok[] = { { ext_ok, sizeof(ext_ok) }, { map_udp_ok, sizeof(map_udp_ok) }, { map_tcp_ok, sizeof(map_tcp_ok) } };
	uint8_t buf[16];
	struct nb_natpmp_response orig, r;

	(void)state;
	for (size_t k = 0; k < sizeof(ok) / sizeof(ok[0]); k++) {
		assert_int_equal(decode(ok[k].p, ok[k].len, &orig), 0);
		for (size_t i = 0; i < ok[k].len; i++) {
			for (unsigned bit = 0; bit < 8; bit++) {
				int rc;

				memcpy(buf, ok[k].p, ok[k].len);
				buf[i] ^= (uint8_t)(1u << bit);
				rc = decode(buf, ok[k].len, &r);
				if (i == 0) {
					assert_int_equal(rc, -EINVAL);
				} else if (rc == 0) {
					assert_false(same(&r, &orig));
					if (i == 1)
						assert_int_not_equal(r.op, orig.op);
					else if (i < 4)
						assert_int_not_equal(r.result, orig.result);
					else if (i < 8)
						assert_int_not_equal(r.epoch, orig.epoch);
				} else {
					/* op changed to EXTADDR/MAP needs a 16-byte body,
					 * or left 128..130 */
					assert_int_equal(i, 1);
				}
			}
		}
	}
}

static void test_result_strings(void **state)
{
	const char *unknown = nb_natpmp_result_string(6);

	(void)state;
	assert_non_null(unknown);
	assert_string_equal(unknown, "unknown result code");
	assert_string_equal(nb_natpmp_result_string(0xFFFF), unknown);
	assert_string_equal(nb_natpmp_result_string(255), unknown);
	for (uint16_t a = 0; a <= 5; a++) {
		const char *s = nb_natpmp_result_string(a);

		assert_non_null(s);
		assert_true(strlen(s) > 5);
		assert_string_not_equal(s, unknown);
		for (uint16_t b = 0; b < a; b++)
			assert_string_not_equal(s, nb_natpmp_result_string(b));
	}
	assert_non_null(strstr(nb_natpmp_result_string(NB_NATPMP_NOT_AUTHORIZED), "not authorized"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_extaddr),
		cmocka_unit_test(test_encode_map_layout),
		cmocka_unit_test(test_encode_natpmpc_capture),
		cmocka_unit_test(test_decode_extaddr),
		cmocka_unit_test(test_decode_map),
		cmocka_unit_test(test_decode_result_codes),
		cmocka_unit_test(test_decode_unsupp_version_to_pcp),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_wrong_version_and_opcode),
		cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_result_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
