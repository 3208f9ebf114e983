/* tests/unit/test_datachan.c - the data channel over the AEAD frames: round
 * trips, every-prefix truncation, every-byte tampering, wrong keys and
 * reflection, replay, limits, rekey, and the keepalive / confirm / expire
 * timing. (The frame format itself: tests/unit/test_seal.c.) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "peer/datachan.h"

static void keys_of(struct nb_seal_keys *a, struct nb_seal_keys *b, uint8_t salt)
{
	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	for (int i = 0; i < 32; i++) {
		a->send[i] = (uint8_t)(i ^ salt);
		a->recv[i] = (uint8_t)((0x80 + i) ^ salt);
	}
	memcpy(b->send, a->recv, 32);
	memcpy(b->recv, a->send, 32);
	a->local_index = b->remote_index = 0x100u + salt;
	b->local_index = a->remote_index = 0x200u + salt;
}

static void pair(struct nb_dc *alice, struct nb_dc *bob)
{
	struct nb_seal_keys ka, kb;

	keys_of(&ka, &kb, 0);
	assert_int_equal(nb_dc_init(alice, &ka, 1000), 0);
	assert_int_equal(nb_dc_init(bob, &kb, 1000), 0);
}

static void unpair(struct nb_dc *alice, struct nb_dc *bob)
{
	nb_dc_wipe(alice);
	nb_dc_wipe(bob);
}

static void test_round_trip(void **state)
{
	static const size_t sizes[] = { 0, 1, 2, 100, 1170, NB_DC_MAX_PAYLOAD };
	struct nb_dc a, b;
	uint8_t payload[NB_DC_MAX_PAYLOAD], frame[NB_DC_MAX_DATAGRAM], out[NB_DC_MAX_PAYLOAD];

	(void)state;
	assert_int_equal(NB_DC_MAX_PAYLOAD, 1371);
	pair(&a, &b);
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		ssize_t n = nb_dc_seal(&a, payload, sizes[i], frame, sizeof(frame), 2000 + i);
		assert_int_equal(n, (ssize_t)(NB_DC_OVERHEAD + sizes[i]));
		assert_true(n <= NB_DC_MAX_DATAGRAM);
		assert_int_equal(frame[0], NB_DC_TYPE);
		assert_int_equal(nb_dc_open(&b, frame, (size_t)n, out, sizeof(out), 3000 + i), (ssize_t)sizes[i]);
		assert_memory_equal(out, payload, sizes[i]);
		assert_int_equal(b.last_rx, 3000 + i);
	}
	assert_int_equal(a.tx_frames, 6);
	assert_int_equal(a.last_tx, 2005);
	assert_int_equal(b.rx_ok, 6);
	assert_int_equal(b.keepalives_rx, 1);
	/* And the other way. */
	{
		ssize_t n = nb_dc_seal(&b, (const uint8_t *)"pong", 4, frame, sizeof(frame), 4000);
		assert_int_equal(nb_dc_open(&a, frame, (size_t)n, out, sizeof(out), 4001), 4);
		assert_memory_equal(out, "pong", 4);
	}
	unpair(&a, &b);
}

static void test_truncation_loop(void **state)
{
	struct nb_dc a, b;
	uint8_t frame[NB_DC_MAX_DATAGRAM], out[NB_DC_MAX_DATAGRAM];
	ssize_t n;

	(void)state;
	pair(&a, &b);
	n = nb_dc_seal(&a, (const uint8_t *)"hello, world", 12, frame, sizeof(frame), 1);
	assert_true(n > 0);
	for (size_t len = 0; len < (size_t)n; len++) {
		ssize_t r = nb_dc_open(&b, frame, len, out, sizeof(out), 2);
		assert_true(r == NB_DC_E_SHORT || r == NB_DC_E_TAG);
	}
	assert_int_equal(b.rx_ok, 0);
	assert_false(b.rx_any);
	assert_int_equal(b.last_rx, 1000);
	frame[n] = 0;
	assert_int_equal(nb_dc_open(&b, frame, (size_t)n + 1, out, sizeof(out), 2), NB_DC_E_TAG);
	assert_int_equal(nb_dc_open(&b, frame, (size_t)n, out, sizeof(out), 2), 12);
	assert_true(b.rx_any);
	unpair(&a, &b);
}

static void test_bad_frame_every_byte(void **state)
{
	struct nb_dc a, b;
	uint8_t frame[64], out[64];
	ssize_t n;

	(void)state;
	pair(&a, &b);
	n = nb_dc_seal(&a, (const uint8_t *)"data", 4, frame, sizeof(frame), 1);
	for (size_t i = 0; i < (size_t)n; i++) {
		for (int bit = 0; bit < 8; bit++) {
			frame[i] ^= (uint8_t)(1u << bit);
			ssize_t r = nb_dc_open(&b, frame, (size_t)n, out, sizeof(out), 2);
			/* type, receiver index, counter + ciphertext + tag */
			assert_int_equal(r, i == 0 ? NB_DC_E_TYPE : i < 5 ? NB_DC_E_INDEX : NB_DC_E_TAG);
			frame[i] ^= (uint8_t)(1u << bit);
		}
	}
	assert_int_equal(b.rx_ok, 0);
	assert_int_equal(b.rx_bad, (uint64_t)n * 8);
	assert_false(b.rx_any);
	assert_int_equal(b.last_rx, 1000); /* untouched by bad frames */
	assert_int_equal(nb_dc_open(&b, frame, (size_t)n, out, sizeof(out), 2), 4);
	unpair(&a, &b);
}

static void test_wrong_key_and_reflection(void **state)
{
	struct nb_dc a, b, mallory;
	struct nb_seal_keys ka, kb;
	uint8_t frame[64], out[64];
	ssize_t n;

	(void)state;
	pair(&a, &b);
	keys_of(&ka, &kb, 0);
	ka.send[0] ^= 1; /* right indices, wrong key */
	assert_int_equal(nb_dc_init(&mallory, &ka, 0), 0);
	n = nb_dc_seal(&mallory, (const uint8_t *)"evil", 4, frame, sizeof(frame), 1);
	assert_int_equal(nb_dc_open(&b, frame, (size_t)n, out, sizeof(out), 2), NB_DC_E_TAG);
	nb_dc_wipe(&mallory);
	/* Alice's own frame reflected back to her does not open. */
	n = nb_dc_seal(&a, (const uint8_t *)"mine", 4, frame, sizeof(frame), 1);
	assert_true(nb_dc_open(&a, frame, (size_t)n, out, sizeof(out), 2) < 0);
	assert_int_equal(a.rx_bad, 1);
	assert_false(a.rx_any);
	assert_int_equal(nb_dc_open(&b, frame, (size_t)n, out, sizeof(out), 2), 4);
	unpair(&a, &b);
	/* Even when both sides drew the same index, the keys differ. */
	keys_of(&ka, &kb, 0);
	ka.local_index = ka.remote_index = kb.local_index = kb.remote_index = 9;
	assert_int_equal(nb_dc_init(&a, &ka, 0), 0);
	n = nb_dc_seal(&a, (const uint8_t *)"mine", 4, frame, sizeof(frame), 1);
	assert_int_equal(nb_dc_open(&a, frame, (size_t)n, out, sizeof(out), 2), NB_DC_E_TAG);
	nb_dc_wipe(&a);
}

static void test_replay(void **state)
{
	struct nb_dc a, b;
	uint8_t f1[64], f2[64], out[64];
	ssize_t n1, n2;

	(void)state;
	pair(&a, &b);
	n1 = nb_dc_seal(&a, NULL, 0, f1, sizeof(f1), 1); /* a keepalive, counter 0 */
	n2 = nb_dc_seal(&a, (const uint8_t *)"x", 1, f2, sizeof(f2), 1);
	assert_int_equal(n1, NB_DC_OVERHEAD);
	assert_int_equal(nb_dc_open(&b, f2, (size_t)n2, out, sizeof(out), 2), 1); /* reordered */
	assert_int_equal(nb_dc_open(&b, f1, (size_t)n1, out, sizeof(out), 3), 0);
	assert_int_equal(nb_dc_open(&b, f1, (size_t)n1, out, sizeof(out), 4), NB_DC_E_REPLAY);
	assert_int_equal(nb_dc_open(&b, f2, (size_t)n2, out, sizeof(out), 5), NB_DC_E_REPLAY);
	assert_int_equal(b.last_rx, 3); /* a replay does not keep the path alive */
	assert_int_equal(b.rx_ok, 2);
	assert_int_equal(b.keepalives_rx, 1);
	unpair(&a, &b);
}

static void test_limits(void **state)
{
	struct nb_dc a, b;
	struct nb_seal_keys ka, kb;
	uint8_t big[NB_DC_MAX_PAYLOAD + 1], f[NB_DC_MAX_DATAGRAM + 8], out[NB_DC_MAX_DATAGRAM];

	(void)state;
	memset(big, 'a', sizeof(big));
	pair(&a, &b);
	assert_int_equal(nb_dc_seal(&a, big, sizeof(big), f, sizeof(f), 1), NB_DC_E_TOO_BIG);
	assert_int_equal(nb_dc_seal(&a, big, 10, f, NB_DC_OVERHEAD + 9, 1), NB_DC_E_NOSPACE);
	assert_int_equal(nb_dc_seal(&a, big, 10, f, 3, 1), NB_DC_E_NOSPACE);
	assert_int_equal(a.tx_frames, 0); /* nothing consumed */
	assert_int_equal(a.seal.cur.tx_counter, 0);
	assert_int_equal(nb_dc_deadline(&a), 0);
	memset(f, 0, sizeof(f));
	f[0] = NB_DC_TYPE;
	assert_int_equal(nb_dc_open(&b, f, NB_DC_MAX_DATAGRAM + 1, out, sizeof(out), 1), NB_DC_E_TOO_BIG);
	f[0] = 0xD0; /* the old HMAC frame type */
	assert_int_equal(nb_dc_open(&b, f, 40, out, sizeof(out), 1), NB_DC_E_TYPE);
	/* The output must hold the payload. */
	{
		ssize_t n = nb_dc_seal(&a, big, 10, f, sizeof(f), 1);
		assert_int_equal(nb_dc_open(&b, f, (size_t)n, out, 9, 1), NB_DC_E_NOSPACE);
		assert_int_equal(nb_dc_open(&b, f, (size_t)n, out, 10, 1), 10);
	}
	/* Bad keys. */
	keys_of(&ka, &kb, 0);
	memcpy(ka.recv, ka.send, 32);
	assert_int_equal(nb_dc_init(&a, &ka, 0), NB_DC_E_INVAL); /* a untouched: still usable */
	assert_int_equal(nb_dc_init(&a, NULL, 0), NB_DC_E_INVAL);
	assert_true(nb_dc_seal(&a, big, 1, f, sizeof(f), 1) > 0);
	/* Counters end. */
	a.seal.cur.tx_counter = NB_SEAL_REJECT_AFTER_MESSAGES - 1;
	assert_true(nb_dc_seal(&a, big, 1, f, sizeof(f), 1) > 0);
	assert_int_equal(nb_dc_seal(&a, big, 1, f, sizeof(f), 1), NB_DC_E_EXHAUSTED);
	assert_true(nb_dc_expired(&a, 1)); /* can seal no more: the session is over */
	assert_string_equal(nb_dc_strerror(NB_DC_E_EXHAUSTED), nb_seal_strerror(NB_SEAL_E_EXHAUSTED));
	unpair(&a, &b);
	nb_dc_wipe(NULL);
}

static void test_rekey(void **state)
{
	struct nb_dc a, b;
	struct nb_seal_keys ka, kb;
	uint8_t old[64], f[64], out[64];
	ssize_t n_old, n;
	const uint64_t t = 1000 + NB_SEAL_REKEY_AFTER_TIME_MS;

	(void)state;
	pair(&a, &b);
	n_old = nb_dc_seal(&a, (const uint8_t *)"old", 3, old, sizeof(old), 1500);
	assert_false(nb_dc_wants_rekey(&a, t - 1));
	assert_true(nb_dc_wants_rekey(&a, t));
	assert_true(nb_dc_wants_rekey(&b, t));
	keys_of(&ka, &kb, 0x42);
	assert_int_equal(nb_dc_rekey(&a, &ka, t), 0);
	assert_int_equal(nb_dc_rekey(&b, &kb, t), 0);
	assert_false(nb_dc_wants_rekey(&a, t));
	assert_int_equal(a.tx_frames, 1); /* the keepalive timers go on */
	n = nb_dc_seal(&a, (const uint8_t *)"new", 3, f, sizeof(f), t + 1);
	assert_int_equal(nb_dc_open(&b, f, (size_t)n, out, sizeof(out), t + 1), 3);
	assert_int_equal(nb_dc_open(&b, old, (size_t)n_old, out, sizeof(out), t + 2), 3); /* grace */
	assert_memory_equal(out, "old", 3);
	assert_int_equal(nb_dc_rekey(&b, &kb, t + 3), NB_DC_E_INVAL); /* same index */
	unpair(&a, &b);
	/* Without a rekey the session dies at REJECT_AFTER_TIME, even while
	 * frames keep arriving. */
	pair(&a, &b);
	for (uint64_t now = 1000; now < 1000 + NB_SEAL_REJECT_AFTER_TIME_MS; now += 4000) {
		n = nb_dc_seal(&a, NULL, 0, f, sizeof(f), now);
		assert_int_equal(nb_dc_open(&b, f, (size_t)n, out, sizeof(out), now), 0);
		assert_false(nb_dc_expired(&b, now));
	}
	assert_true(nb_dc_expired(&b, 1000 + NB_SEAL_REJECT_AFTER_TIME_MS));
	assert_int_equal(nb_dc_seal(&a, NULL, 0, f, sizeof(f), 1000 + NB_SEAL_REJECT_AFTER_TIME_MS),
			 NB_DC_E_EXPIRED);
	unpair(&a, &b);
}

static void test_keepalive_timing(void **state)
{
	struct nb_dc a, b;
	uint8_t f[64], out[64];
	ssize_t n;

	(void)state;
	pair(&a, &b);
	assert_int_equal(nb_dc_deadline(&a), 0); /* due at once */
	n = nb_dc_seal(&a, NULL, 0, f, sizeof(f), 1500);
	assert_int_equal(n, NB_DC_OVERHEAD);
	/* Unconfirmed: again after 100, 200, 400, ... ms, capped at 5 s. */
	static const uint64_t iv[] = { 100, 200, 400, 800, 1600, 3200, 5000, 5000 };
	uint64_t t = 1500;
	for (size_t i = 0; i < sizeof(iv) / sizeof(iv[0]); i++) {
		assert_int_equal(nb_dc_deadline(&a), t + iv[i]);
		t += iv[i];
		assert_true(nb_dc_seal(&a, NULL, 0, f, sizeof(f), t) > 0);
	}
	/* A frame from the peer confirms: every 5 s from then on. */
	{
		uint8_t g[64];
		ssize_t m = nb_dc_seal(&b, NULL, 0, g, sizeof(g), t);
		assert_int_equal(nb_dc_open(&a, g, (size_t)m, out, sizeof(out), t), 0);
		assert_true(a.rx_any);
		assert_int_equal(nb_dc_deadline(&a), t + NB_DC_KEEPALIVE_MS);
	}
	n = nb_dc_seal(&a, NULL, 0, f, sizeof(f), 1500);
	assert_false(nb_dc_expired(&b, 1000 + NB_DC_EXPIRE_MS - 1));
	assert_true(nb_dc_expired(&b, 1000 + NB_DC_EXPIRE_MS));
	assert_int_equal(nb_dc_open(&b, f, (size_t)n, out, sizeof(out), 20000), 0);
	assert_false(nb_dc_expired(&b, 20000 + NB_DC_EXPIRE_MS - 1));
	/* A bad frame (or a replay) does not keep the path alive. */
	assert_int_equal(nb_dc_open(&b, f, (size_t)n, out, sizeof(out), 40000), NB_DC_E_REPLAY);
	n = nb_dc_seal(&a, NULL, 0, f, sizeof(f), 39000);
	f[20] ^= 1;
	assert_int_equal(nb_dc_open(&b, f, (size_t)n, out, sizeof(out), 40000), NB_DC_E_TAG);
	assert_true(nb_dc_expired(&b, 20000 + NB_DC_EXPIRE_MS));
	assert_int_equal(b.last_rx, 20000);
	unpair(&a, &b);
}

static void test_hmac(void **state)
{
	/* RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?" */
	static const uint8_t WANT[32] = {
		0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
		0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43,
	};
	uint8_t out[32];

	(void)state;
	assert_int_equal(nb_dc_hmac_sha256((const uint8_t *)"Jefe", 4,
					   (const uint8_t *)"what do ya want for nothing?", 28, out),
			 0);
	assert_memory_equal(out, WANT, 32);
	assert_int_equal(nb_dc_hmac_sha256(out, 2000, out, 1, out), NB_DC_E_INVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_truncation_loop),
		cmocka_unit_test(test_bad_frame_every_byte),
		cmocka_unit_test(test_wrong_key_and_reflection),
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_rekey),
		cmocka_unit_test(test_keepalive_timing),
		cmocka_unit_test(test_hmac),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
