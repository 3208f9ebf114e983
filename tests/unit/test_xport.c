/* tests/unit/test_xport.c - the TCP transport's pure parts (peer/xport.h):
 * the stream-0 message codec (round trips, every prefix refused, every
 * flipped byte and every PPID bit flip refused) and the ID table (bounds,
 * stale and unknown IDs, no aliasing of reused slots). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "peer/xport.h"

static const enum nb_xport_msg_type ctrl_types[] = { NB_XPORT_MSG_OPEN, NB_XPORT_MSG_OK,
						     NB_XPORT_MSG_REFUSED, NB_XPORT_MSG_FIN };
#define N_CTRL (sizeof(ctrl_types) / sizeof(ctrl_types[0]))

static size_t encode(enum nb_xport_msg_type t, const char *svc, uint8_t *out, size_t cap)
{
	ssize_t n = nb_xport_msg_encode(t, svc, out, cap);

	assert_true(n > 0);
	return (size_t)n;
}

static void test_round_trip(void **state)
{
	static const char *services[] = { "tcp:22", "x", "tcp:65535", "ssh.example-1_a:B",
					  "0123456789012345678901234567890123456789012345678901234567890123" };
	uint8_t buf[NB_XPORT_MSG_MAX];
	struct nb_xport_msg m;

	(void)state;
	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
		size_t n = encode(NB_XPORT_MSG_OPEN, services[i], buf, sizeof(buf));

		assert_int_equal(n, 2 + strlen(services[i]));
		assert_int_equal(nb_xport_msg_decode(NB_XPORT_PPID_OPEN, buf, n, &m), 0);
		assert_int_equal(m.type, NB_XPORT_MSG_OPEN);
		assert_int_equal(m.len, strlen(services[i]));
		assert_memory_equal(m.body, services[i], m.len);
		assert_ptr_equal(m.body, buf + 2); /* a view into the buffer */
	}
	for (size_t i = 1; i < N_CTRL; i++) {
		size_t n = encode(ctrl_types[i], NULL, buf, sizeof(buf));

		assert_int_equal(n, 1);
		assert_int_equal(nb_xport_msg_decode(nb_xport_msg_ppid(ctrl_types[i]), buf, n, &m), 0);
		assert_int_equal(m.type, ctrl_types[i]);
		assert_int_equal(m.len, 0);
	}
	buf[0] = 0;
	assert_int_equal(nb_xport_msg_decode(NB_XPORT_PPID_DATA, buf, 1, &m), 0);
	assert_int_equal(m.type, NB_XPORT_MSG_DATA);
	assert_int_equal(m.len, 1);
}

static void test_encode_refuses(void **state)
{
	static const char *bad[] = { "", "tcp 22", "tcp:22\n", "caf\xc3\xa9", "a/b",
				     "01234567890123456789012345678901234567890123456789012345678901234" };
	uint8_t buf[NB_XPORT_MSG_MAX];

	(void)state;
	memset(buf, 0xAA, sizeof(buf));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(nb_xport_msg_encode(NB_XPORT_MSG_OPEN, bad[i], buf, sizeof(buf)),
				 NB_XPORT_E_SERVICE);
	assert_int_equal(nb_xport_msg_encode(NB_XPORT_MSG_OPEN, NULL, buf, sizeof(buf)), NB_XPORT_E_INVAL);
	assert_int_equal(nb_xport_msg_encode(NB_XPORT_MSG_OPEN, "tcp:22", buf, 7), NB_XPORT_E_NOSPACE);
	assert_int_equal(nb_xport_msg_encode(NB_XPORT_MSG_FIN, NULL, buf, 0), NB_XPORT_E_NOSPACE);
	assert_int_equal(nb_xport_msg_encode(NB_XPORT_MSG_DATA, NULL, buf, sizeof(buf)), NB_XPORT_E_INVAL);
	assert_int_equal(nb_xport_msg_encode((enum nb_xport_msg_type)99, NULL, buf, sizeof(buf)),
			 NB_XPORT_E_INVAL);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xAA); /* untouched on failure */
}

/* Every strict prefix of every control message is refused, and *ret is
 * left alone. */
static void test_every_prefix_refused(void **state)
{
	uint8_t buf[NB_XPORT_MSG_MAX];
	struct nb_xport_msg m, keep;

	(void)state;
	for (size_t t = 0; t < N_CTRL; t++) {
		size_t n = encode(ctrl_types[t], "tcp:8080", buf, sizeof(buf));
		uint32_t ppid = nb_xport_msg_ppid(ctrl_types[t]);

		for (size_t k = 0; k < n; k++) {
			memset(&m, 0x5C, sizeof(m));
			keep = m;
			assert_true(nb_xport_msg_decode(ppid, buf, k, &m) < 0);
			assert_memory_equal(&m, &keep, sizeof(m));
		}
		/* and one byte too many */
		buf[n] = 'x';
		assert_true(nb_xport_msg_decode(ppid, buf, n + 1, &m) < 0);
	}
	assert_int_equal(nb_xport_msg_decode(NB_XPORT_PPID_DATA, buf, 0, &m), NB_XPORT_E_SHORT);
}

/* Flip each byte (XOR 0xFF, and each single bit of the header bytes) of
 * every control message: refused. */
static void test_every_flipped_byte_refused(void **state)
{
	uint8_t buf[NB_XPORT_MSG_MAX];
	struct nb_xport_msg m;

	(void)state;
	for (size_t t = 0; t < N_CTRL; t++) {
		size_t n = encode(ctrl_types[t], "tcp:22", buf, sizeof(buf));
		uint32_t ppid = nb_xport_msg_ppid(ctrl_types[t]);

		for (size_t i = 0; i < n; i++) {
			buf[i] ^= 0xFF;
			assert_true(nb_xport_msg_decode(ppid, buf, n, &m) < 0);
			buf[i] ^= 0xFF;
			if (ctrl_types[t] == NB_XPORT_MSG_OPEN && i >= 2)
				continue; /* a service bit flip can be another valid name */
			for (int b = 0; b < 8; b++) {
				buf[i] ^= (uint8_t)(1u << b);
				assert_true(nb_xport_msg_decode(ppid, buf, n, &m) < 0);
				buf[i] ^= (uint8_t)(1u << b);
			}
		}
		assert_int_equal(nb_xport_msg_decode(ppid, buf, n, &m), 0);
	}
}

/* No single bit flip of a PPID is another PPID (nor DATA, which takes any
 * bytes). */
static void test_ppid_bit_flips_refused(void **state)
{
	static const uint32_t ppids[] = { NB_XPORT_PPID_OPEN, NB_XPORT_PPID_OK, NB_XPORT_PPID_REFUSED,
					  NB_XPORT_PPID_DATA, NB_XPORT_PPID_FIN };
	uint8_t buf[NB_XPORT_MSG_MAX];
	struct nb_xport_msg m;

	(void)state;
	for (size_t i = 0; i < 5; i++)
		for (int b = 0; b < 32; b++)
			assert_int_equal(nb_xport_msg_decode(ppids[i] ^ (1u << b), (const uint8_t *)"K", 1, &m),
					 NB_XPORT_E_PPID);
	for (size_t t = 0; t < N_CTRL; t++) {
		size_t n = encode(ctrl_types[t], "tcp:22", buf, sizeof(buf));

		for (size_t u = 0; u < N_CTRL; u++)
			if (u != t)
				assert_true(nb_xport_msg_decode(nb_xport_msg_ppid(ctrl_types[u]), buf, n, &m) < 0);
	}
	assert_int_equal(nb_xport_msg_decode(0, buf, 1, &m), NB_XPORT_E_PPID);
}

static void test_data_bounds(void **state)
{
	static uint8_t big[NB_XPORT_DATA_MAX + 1];
	struct nb_xport_msg m;

	(void)state;
	assert_int_equal(nb_xport_msg_decode(NB_XPORT_PPID_DATA, big, NB_XPORT_DATA_MAX, &m), 0);
	assert_int_equal(m.len, NB_XPORT_DATA_MAX);
	assert_int_equal(nb_xport_msg_decode(NB_XPORT_PPID_DATA, big, sizeof(big), &m), NB_XPORT_E_FORMAT);
	assert_int_equal(nb_xport_msg_decode(NB_XPORT_PPID_DATA, NULL, 1, &m), NB_XPORT_E_INVAL);
	assert_int_equal(nb_xport_msg_decode(NB_XPORT_PPID_DATA, big, 1, NULL), NB_XPORT_E_INVAL);
}

static void test_ids_bounds(void **state)
{
	struct nb_xport_id_slot slots[8];
	struct nb_xport_ids t;
	int objs[9];
	uint32_t ids[9], keep = 0xDEADBEEF;

	(void)state;
	assert_int_equal(nb_xport_ids_init(&t, slots, 0), NB_XPORT_E_INVAL);
	assert_int_equal(nb_xport_ids_init(&t, slots, NB_XPORT_IDS_MAX + 1), NB_XPORT_E_INVAL);
	assert_int_equal(nb_xport_ids_init(&t, slots, 8), 0);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(nb_xport_ids_add(&t, &objs[i], &ids[i]), 0);
		assert_int_not_equal(ids[i], 0);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(ids[i], ids[j]);
	}
	assert_int_equal(nb_xport_ids_add(&t, &objs[8], &keep), NB_XPORT_E_FULL);
	assert_int_equal(keep, 0xDEADBEEF);
	assert_int_equal(nb_xport_ids_add(&t, NULL, &keep), NB_XPORT_E_INVAL);
	for (int i = 0; i < 8; i++)
		assert_ptr_equal(nb_xport_ids_get(&t, ids[i]), &objs[i]);
	assert_null(nb_xport_ids_get(&t, 0));
	assert_null(nb_xport_ids_get(&t, 8)); /* slot 8 of 8: out of range */
	assert_null(nb_xport_ids_get(&t, ids[0] + 8));
	assert_null(nb_xport_ids_get(&t, 0xFFFFFFFFu));
	assert_null(nb_xport_ids_get(NULL, ids[0]));
	assert_int_equal(nb_xport_ids_del(&t, ids[3]), 0);
	assert_int_equal(nb_xport_ids_del(&t, ids[3]), NB_XPORT_E_UNKNOWN);
	assert_null(nb_xport_ids_get(&t, ids[3]));
	assert_int_equal(nb_xport_ids_add(&t, &objs[8], &ids[8]), 0);
	assert_int_equal(t.used, 8);
}

/* A slot reused many times never gives an old ID back its object. */
static void test_ids_no_aliasing(void **state)
{
	struct nb_xport_id_slot slots[1];
	struct nb_xport_ids t;
	static uint32_t seen[5000];
	int a, b;

	(void)state;
	assert_int_equal(nb_xport_ids_init(&t, slots, 1), 0);
	for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++) {
		int *o = (i & 1) ? &a : &b;

		assert_int_equal(nb_xport_ids_add(&t, o, &seen[i]), 0);
		assert_ptr_equal(nb_xport_ids_get(&t, seen[i]), o);
		if (i > 0) {
			assert_int_not_equal(seen[i], seen[i - 1]);
			assert_null(nb_xport_ids_get(&t, seen[i - 1]));
			assert_int_equal(nb_xport_ids_del(&t, seen[i - 1]), NB_XPORT_E_UNKNOWN);
		}
		assert_int_equal(nb_xport_ids_del(&t, seen[i]), 0);
		assert_null(nb_xport_ids_get(&t, seen[i]));
	}
	for (size_t i = 1; i < sizeof(seen) / sizeof(seen[0]); i++)
		assert_true(seen[i] > seen[i - 1]); /* generations only grow here */
	/* Wrap: the generation after the last skips 0, so ID 0 is never issued. */
	slots[0].gen = (1u << 20) - 1;
	assert_int_equal(nb_xport_ids_add(&t, &a, &seen[0]), 0);
	assert_int_equal(seen[0] >> 12, 1);
	assert_int_not_equal(seen[0], 0);
}

/* Released slots are the last to be reused: with free slots ahead, a new
 * add does not take the one just released. */
static void test_ids_round_robin(void **state)
{
	struct nb_xport_id_slot slots[4];
	struct nb_xport_ids t;
	uint32_t a, b;
	int o;

	(void)state;
	assert_int_equal(nb_xport_ids_init(&t, slots, 4), 0);
	assert_int_equal(nb_xport_ids_add(&t, &o, &a), 0);
	assert_int_equal(nb_xport_ids_del(&t, a), 0);
	assert_int_equal(nb_xport_ids_add(&t, &o, &b), 0);
	assert_int_not_equal(a & 0xFFF, b & 0xFFF);
	assert_null(nb_xport_ids_get(&t, a));
}

static void test_strerror(void **state)
{
	(void)state;
	for (int e = NB_XPORT_E_SHORT; e >= NB_XPORT_E_NOMEM; e--)
		assert_string_not_equal(nb_xport_strerror(e), "unknown error");
	assert_string_equal(nb_xport_strerror(-1), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_every_prefix_refused),
		cmocka_unit_test(test_every_flipped_byte_refused),
		cmocka_unit_test(test_ppid_bit_flips_refused),
		cmocka_unit_test(test_data_bounds),
		cmocka_unit_test(test_ids_bounds),
		cmocka_unit_test(test_ids_no_aliasing),
		cmocka_unit_test(test_ids_round_robin),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
