/* tests/unit/test_blink.c - the peer's sealed channel to the broker, driven
 * against a real broker side (broker/plink.c) in process with a fake clock:
 * the queue while shaking hands, the retransmission schedule, forged and
 * garbled responses, the source address check, the unknown-session hint,
 * the time-driven rekey with its grace period, and nb_blink_owns. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "broker/plink.h"
#include "common/bytes.h"
#include "peer/blink.h"

#define T0 1000u

static uint8_t broker_pub[NB_KEY_LEN];

static struct nb_addr addr_of(const char *s)
{
	struct nb_addr a;

	assert_int_equal(nb_addr_parse(s, false, &a), 0);
	return a;
}

static struct nb_addr broker_addr(void)
{
	return addr_of("198.51.100.1:3478");
}

static struct nb_addr peer_addr(unsigned port)
{
	char s[48];

	snprintf(s, sizeof(s), "192.0.2.7:%u", port);
	return addr_of(s);
}

static void key_of(uint8_t salt, uint8_t priv[NB_KEY_LEN], uint8_t pub[NB_KEY_LEN])
{
	for (int i = 0; i < NB_KEY_LEN; i++)
		priv[i] = (uint8_t)(salt * 31 + i * 7 + 1);
	assert_int_equal(nb_key_public(priv, pub), 0);
}

static struct nb_plink *plink_make(uint8_t key_salt)
{
	static unsigned made;
	struct nb_plink_config cfg;
	struct nb_plink *pl = NULL;
	uint8_t pub[NB_KEY_LEN];

	memset(&cfg, 0, sizeof(cfg));
	cfg.max_sessions = 16;
	cfg.idle_ms = NB_PLINK_DEFAULT_IDLE_MS;
	key_of(key_salt, cfg.priv, pub);
	if (key_salt == 0xB0) /* the broker the peers pin */
		memcpy(broker_pub, pub, NB_KEY_LEN);
	/* Each broker its own hash key (a restarted one picks new indices). */
	made++;
	for (int i = 0; i < NB_SIPHASH_KEY_LEN; i++)
		cfg.hash_key[i] = (uint8_t)(0x50 + i + made);
	assert_int_equal(nb_plink_new(&cfg, &pl), 0);
	OPENSSL_cleanse(&cfg, sizeof(cfg));
	return pl;
}

static struct nb_blink *blink_make(uint8_t key_salt, uint8_t seed_salt)
{
	struct nb_blink *bl = calloc(1, sizeof(*bl));
	uint8_t priv[NB_KEY_LEN], pub[NB_KEY_LEN], seed[16];
	struct nb_addr b = broker_addr();

	assert_non_null(bl);
	key_of(key_salt, priv, pub);
	memset(seed, seed_salt, sizeof(seed));
	nb_blink_init(bl, priv, pub, broker_pub, &b, seed);
	assert_int_equal(bl->state, NB_BLINK_DOWN);
	return bl;
}

static void blink_free(struct nb_blink *bl)
{
	if (bl != NULL)
		nb_blink_wipe(bl);
	free(bl);
}

static size_t next_frame(struct nb_blink *bl, uint64_t now, uint8_t *buf)
{
	struct nb_blink_tx tx;

	assert_int_equal(nb_blink_poll(bl, now, &tx), 1);
	assert_true(tx.len > 0 && tx.len <= NB_SEAL_MAX_DATAGRAM);
	memcpy(buf, tx.bytes, tx.len);
	return tx.len;
}

static void no_frame(struct nb_blink *bl, uint64_t now)
{
	struct nb_blink_tx tx;

	assert_int_equal(nb_blink_poll(bl, now, &tx), 0);
}

static ssize_t input(struct nb_blink *bl, const uint8_t *buf, size_t n, uint64_t now, uint8_t *out, size_t cap)
{
	struct nb_addr b = broker_addr();

	return nb_blink_input(bl, buf, n, &b, now, out, cap);
}

/* The broker's answer to bl's initiation at now (the first poll). */
static ssize_t answer(struct nb_plink *pl, const uint8_t *init, size_t n, const struct nb_addr *from,
		      uint64_t now, uint8_t *resp)
{
	ssize_t r = nb_plink_handshake(pl, init, n, from, now, resp, NB_SEAL_MAX_DATAGRAM);

	assert_int_equal(r, NB_NOISE_RESP_MIN);
	return r;
}

static void shake(struct nb_plink *pl, struct nb_blink *bl, const struct nb_addr *from, uint64_t now)
{
	uint8_t init[NB_SEAL_MAX_DATAGRAM], resp[NB_SEAL_MAX_DATAGRAM], out[64];
	size_t n;
	ssize_t r;

	assert_int_equal(nb_blink_start(bl, now), 0);
	n = next_frame(bl, now, init);
	assert_int_equal(init[0], NB_NOISE_TYPE_INIT);
	r = answer(pl, init, n, from, now, resp);
	assert_int_equal(input(bl, resp, (size_t)r, now, out, sizeof(out)), 0);
	assert_int_equal(bl->state, NB_BLINK_UP);
}

/* bl's next frame must be a sealed msg that the broker opens (under the
 * session of index `want_index` when it is not 0). */
static void expect_msg(struct nb_plink *pl, struct nb_blink *bl, const struct nb_addr *from, const char *msg,
		       uint64_t now, uint32_t want_index)
{
	uint8_t frame[NB_SEAL_MAX_DATAGRAM], out[NB_SEAL_MAX_DATAGRAM];
	const uint8_t *key = NULL;
	size_t n = next_frame(bl, now, frame);

	assert_int_equal(frame[0], NB_SEAL_TYPE);
	if (want_index != 0)
		assert_int_equal(nb_get_u32be(frame + 1), want_index);
	assert_int_equal(nb_plink_open(pl, frame, n, from, now, out, sizeof(out), &key), (ssize_t)strlen(msg));
	assert_memory_equal(out, msg, strlen(msg));
	assert_memory_equal(key, bl->pub, NB_KEY_LEN);
}

static void say(struct nb_plink *pl, struct nb_blink *bl, const struct nb_addr *from, const char *msg,
		uint64_t now)
{
	assert_int_equal(nb_blink_send(bl, (const uint8_t *)msg, strlen(msg), now), 0);
	expect_msg(pl, bl, from, msg, now, 0);
}

static size_t tell(struct nb_plink *pl, const uint8_t *key, const struct nb_addr *to, const char *msg,
		   uint64_t now, uint8_t *frame)
{
	ssize_t n = nb_plink_seal(pl, key, to, (const uint8_t *)msg, strlen(msg), frame, NB_SEAL_MAX_DATAGRAM, now);

	assert_int_equal(n, (ssize_t)(NB_SEAL_OVERHEAD + strlen(msg)));
	return (size_t)n;
}

/* ---- the queue ------------------------------------------------------------ */

static void test_queue_until_up(void **state)
{
	struct nb_plink *pl = plink_make(0xB0);
	struct nb_blink *bl = blink_make(1, 1);
	struct nb_addr a = peer_addr(4001);
	uint8_t init[NB_SEAL_MAX_DATAGRAM], resp[NB_SEAL_MAX_DATAGRAM], out[64];
	size_t n;
	ssize_t r;

	(void)state;
	assert_int_equal(nb_blink_deadline(bl), UINT64_MAX);
	no_frame(bl, T0);
	/* Sent while DOWN and while shaking hands: queued, nothing out. */
	assert_int_equal(nb_blink_send(bl, (const uint8_t *)"m0", 2, T0), 0);
	no_frame(bl, T0);
	assert_int_equal(nb_blink_deadline(bl), UINT64_MAX);
	assert_int_equal(nb_blink_start(bl, T0), 0);
	assert_int_equal(bl->state, NB_BLINK_HANDSHAKE);
	assert_int_equal(nb_blink_deadline(bl), T0);
	assert_int_equal(nb_blink_send(bl, (const uint8_t *)"m1", 2, T0), 0);
	n = next_frame(bl, T0, init);
	assert_int_equal(init[0], NB_NOISE_TYPE_INIT);
	assert_int_equal(nb_blink_send(bl, (const uint8_t *)"m2", 2, T0 + 1), 0);
	no_frame(bl, T0 + 1);
	assert_int_equal(nb_blink_deadline(bl), T0 + NB_BLINK_RTO_MS);
	assert_int_equal(bl->st.sealed, 0);
	r = answer(pl, init, n, &a, T0 + 2, resp);
	assert_int_equal(input(bl, resp, (size_t)r, T0 + 3, out, sizeof(out)), 0);
	assert_int_equal(bl->state, NB_BLINK_UP);
	assert_int_equal(bl->st.handshakes, 1);
	assert_int_equal(nb_blink_deadline(bl), 0); /* the queue is due */
	/* In order, sealed, to the broker's session. */
	expect_msg(pl, bl, &a, "m0", T0 + 4, bl->seal.cur.remote_index);
	expect_msg(pl, bl, &a, "m1", T0 + 4, bl->seal.cur.remote_index);
	expect_msg(pl, bl, &a, "m2", T0 + 4, bl->seal.cur.remote_index);
	no_frame(bl, T0 + 4);
	assert_int_equal(bl->st.sealed, 3);
	assert_int_equal(nb_blink_deadline(bl), T0 + 3 + NB_SEAL_REKEY_AFTER_TIME_MS);
	/* Once up: out at the next poll. */
	say(pl, bl, &a, "m3", T0 + 5);
	no_frame(bl, T0 + 5);
	blink_free(bl);
	nb_plink_free(pl);
}

static void test_queue_drops_oldest(void **state)
{
	struct nb_plink *pl = plink_make(0xB0);
	struct nb_blink *bl = blink_make(1, 1);
	struct nb_addr a = peer_addr(4001);
	static uint8_t big[NB_SEAL_MAX_PAYLOAD + 1];
	char msg[16];

	(void)state;
	for (int i = 0; i < NB_BLINK_QUEUE + 3; i++) {
		snprintf(msg, sizeof(msg), "msg %d", i);
		assert_int_equal(nb_blink_send(bl, (const uint8_t *)msg, strlen(msg), T0), 0);
	}
	assert_int_equal(bl->st.queue_dropped, 3);
	/* Too big: refused, nothing dropped. */
	assert_int_equal(nb_blink_send(bl, big, sizeof(big), T0), NB_SEAL_E_TOO_BIG);
	assert_int_equal(bl->st.queue_dropped, 3);
	shake(pl, bl, &a, T0);
	for (int i = 3; i < NB_BLINK_QUEUE + 3; i++) {
		snprintf(msg, sizeof(msg), "msg %d", i);
		expect_msg(pl, bl, &a, msg, T0 + 1, 0);
	}
	no_frame(bl, T0 + 1);
	/* The largest payload goes through. */
	memset(big, 'x', sizeof(big));
	assert_int_equal(nb_blink_send(bl, big, NB_SEAL_MAX_PAYLOAD, T0 + 2), 0);
	{
		uint8_t frame[NB_SEAL_MAX_DATAGRAM], out[NB_SEAL_MAX_DATAGRAM];
		const uint8_t *key;
		size_t n = next_frame(bl, T0 + 2, frame);
		assert_int_equal(n, NB_SEAL_MAX_DATAGRAM);
		assert_int_equal(nb_plink_open(pl, frame, n, &a, T0 + 2, out, sizeof(out), &key),
				 NB_SEAL_MAX_PAYLOAD);
	}
	blink_free(bl);
	nb_plink_free(pl);
}

/* ---- retransmission ------------------------------------------------------- */

static void test_retransmit_schedule(void **state)
{
	static const uint64_t when[] = { 0, 250, 750, 1750, 3750, 7750, 11750, 15750, 19750 };
	const size_t nw = sizeof(when) / sizeof(when[0]);
	struct nb_plink *pl = plink_make(0xB0);
	struct nb_blink *bl = blink_make(1, 1);
	struct nb_addr a = peer_addr(4001);
	uint8_t first[NB_SEAL_MAX_DATAGRAM], again[NB_SEAL_MAX_DATAGRAM], resp[NB_SEAL_MAX_DATAGRAM];
	uint8_t r1[NB_SEAL_MAX_DATAGRAM], out[64];
	size_t n1 = 0;
	ssize_t k1 = 0;

	(void)state;
	assert_int_equal(nb_blink_start(bl, T0), 0);
	assert_int_equal(nb_blink_start(bl, T0 + 1), 0); /* one at a time */
	for (size_t i = 0; i < nw; i++) {
		assert_int_equal(nb_blink_deadline(bl), T0 + when[i]);
		if (i > 0) {
			no_frame(bl, T0 + when[i] - 1);
			assert_true(when[i] - when[i - 1] <= NB_BLINK_RTO_MAX_MS);
		}
		if (i == 0) {
			n1 = next_frame(bl, T0 + when[i], first);
			k1 = answer(pl, first, n1, &a, T0 + when[i], r1);
		} else {
			size_t n = next_frame(bl, T0 + when[i], again);
			ssize_t k;
			assert_int_equal(n, n1);
			assert_memory_equal(again, first, n1);
			/* The broker answers a retransmission with the same bytes. */
			k = answer(pl, again, n, &a, T0 + when[i], resp);
			assert_int_equal(k, k1);
			assert_memory_equal(resp, r1, (size_t)k1);
		}
		no_frame(bl, T0 + when[i]);
	}
	assert_int_equal(when[nw - 1] - when[nw - 2], NB_BLINK_RTO_MAX_MS); /* capped */
	assert_int_equal(bl->st.inits_sent, nw);
	assert_int_equal(bl->state, NB_BLINK_HANDSHAKE);
	/* The answer to the first one still completes the handshake. */
	assert_int_equal(input(bl, r1, (size_t)k1, T0 + 20000, out, sizeof(out)), 0);
	assert_int_equal(bl->state, NB_BLINK_UP);
	no_frame(bl, T0 + 30000);
	{
		struct nb_plink_stats st;
		nb_plink_get_stats(pl, &st);
		assert_int_equal(st.sessions, 1);
		assert_int_equal(st.handshake_repeats, nw - 1);
	}
	say(pl, bl, &a, "up", T0 + 30001);
	blink_free(bl);
	nb_plink_free(pl);
}

/* ---- forged responses ----------------------------------------------------- */

static void test_forged_response(void **state)
{
	struct nb_plink *pl = plink_make(0xB0), *other;
	struct nb_blink *bl = blink_make(1, 1), *bl2;
	struct nb_addr a = peer_addr(4001);
	uint8_t init[NB_SEAL_MAX_DATAGRAM], init2[NB_SEAL_MAX_DATAGRAM];
	uint8_t resp[NB_SEAL_MAX_DATAGRAM], resp2[NB_SEAL_MAX_DATAGRAM], bad[NB_SEAL_MAX_DATAGRAM], out[64];
	size_t n, n2;
	ssize_t r, r2;

	(void)state;
	assert_int_equal(nb_blink_start(bl, T0), 0);
	n = next_frame(bl, T0, init);
	r = answer(pl, init, n, &a, T0, resp);
	/* Every byte of the real response flipped (but its sender index: a
	 * routing hint outside the Noise transcript, see common/noise.h). */
	for (size_t i = 0; i < (size_t)r; i++) {
		if (i >= 1 && i < 5)
			continue;
		for (int bit = 0; bit < 8; bit++) {
			memcpy(bad, resp, (size_t)r);
			bad[i] ^= (uint8_t)(1u << bit);
			ssize_t e = input(bl, bad, (size_t)r, T0 + 1, out, sizeof(out));
			assert_true(e < 0);
			if (i >= 5 && i < 9)
				assert_int_equal(e, NB_NOISE_E_INDEX);
			else if (i >= 9)
				assert_int_equal(e, NB_NOISE_E_MAC);
			assert_int_equal(bl->state, NB_BLINK_HANDSHAKE);
		}
	}
	/* Every prefix, and one byte too many. */
	for (size_t len = 0; len < (size_t)r; len++) {
		assert_true(input(bl, resp, len, T0 + 1, out, sizeof(out)) < 0);
		assert_int_equal(bl->state, NB_BLINK_HANDSHAKE);
	}
	memcpy(bad, resp, (size_t)r);
	bad[r] = 0;
	assert_true(input(bl, bad, (size_t)r + 1, T0 + 1, out, sizeof(out)) < 0);
	/* A genuine response to another peer's initiation, with our index. */
	bl2 = blink_make(2, 2);
	assert_int_equal(nb_blink_start(bl2, T0), 0);
	n2 = next_frame(bl2, T0, init2);
	r2 = answer(pl, init2, n2, &a, T0, resp2);
	assert_int_equal(input(bl, resp2, (size_t)r2, T0 + 1, out, sizeof(out)), NB_NOISE_E_INDEX);
	nb_put_u32be(resp2 + 5, bl->index);
	assert_int_equal(input(bl, resp2, (size_t)r2, T0 + 1, out, sizeof(out)), NB_NOISE_E_MAC);
	/* From a broker with another key (the same initiation, re-aimed). */
	other = plink_make(0xB1);
	assert_int_equal(nb_plink_handshake(other, init, n, &a, T0, bad, sizeof(bad)), NB_NOISE_E_MAC);
	nb_plink_free(other);
	assert_int_equal(bl->state, NB_BLINK_HANDSHAKE);
	assert_int_equal(bl->st.handshakes, 0);
	assert_false(bl->have_seal);
	assert_int_equal(nb_blink_deadline(bl), T0 + NB_BLINK_RTO_MS);
	/* The real one still completes the handshake. */
	assert_int_equal(input(bl, resp, (size_t)r, T0 + 2, out, sizeof(out)), 0);
	assert_int_equal(bl->state, NB_BLINK_UP);
	say(pl, bl, &a, "real", T0 + 3);
	blink_free(bl2);
	blink_free(bl);
	nb_plink_free(pl);
}

/* ---- the source address --------------------------------------------------- */

static void test_only_the_broker_address(void **state)
{
	struct nb_plink *pl = plink_make(0xB0);
	struct nb_blink *bl = blink_make(1, 1);
	struct nb_addr a = peer_addr(4001), wrong = addr_of("198.51.100.1:3479"), wrong_ip = addr_of("198.51.100.2:3478");
	uint8_t init[NB_SEAL_MAX_DATAGRAM], resp[NB_SEAL_MAX_DATAGRAM], frame[NB_SEAL_MAX_DATAGRAM], out[64];
	uint8_t hint[NB_BLINK_HINT_LEN];
	size_t n;
	ssize_t r;

	(void)state;
	assert_int_equal(nb_blink_start(bl, T0), 0);
	n = next_frame(bl, T0, init);
	r = answer(pl, init, n, &a, T0, resp);
	assert_true(nb_blink_input(bl, resp, (size_t)r, &wrong, T0, out, sizeof(out)) < 0);
	assert_true(nb_blink_input(bl, resp, (size_t)r, &wrong_ip, T0, out, sizeof(out)) < 0);
	assert_int_equal(bl->state, NB_BLINK_HANDSHAKE);
	assert_int_equal(input(bl, resp, (size_t)r, T0, out, sizeof(out)), 0);
	say(pl, bl, &a, "hello", T0 + 1);
	n = tell(pl, bl->pub, &a, "reply", T0 + 2, frame);
	assert_true(nb_blink_input(bl, frame, n, &wrong, T0 + 2, out, sizeof(out)) < 0);
	assert_int_equal(bl->st.opened, 0);
	hint[0] = NB_BLINK_HINT_TYPE;
	nb_put_u32be(hint + 1, bl->seal.cur.remote_index);
	assert_true(nb_blink_input(bl, hint, sizeof(hint), &wrong, T0 + 3, out, sizeof(out)) < 0);
	assert_int_equal(bl->state, NB_BLINK_UP);
	assert_int_equal(bl->st.hints, 0);
	/* From the broker: fine (and only once). */
	assert_int_equal(input(bl, frame, n, T0 + 4, out, sizeof(out)), 5);
	assert_memory_equal(out, "reply", 5);
	assert_int_equal(input(bl, frame, n, T0 + 4, out, sizeof(out)), NB_SEAL_E_REPLAY);
	assert_int_equal(bl->st.opened, 1);
	assert_int_equal(bl->st.open_fail, 1);
	/* Nothing at all, or an unknown type. */
	assert_true(input(bl, frame, 0, T0 + 5, out, sizeof(out)) < 0);
	frame[0] = 0x42;
	assert_int_equal(input(bl, frame, n, T0 + 5, out, sizeof(out)), NB_SEAL_E_TYPE);
	blink_free(bl);
	nb_plink_free(pl);
}

/* ---- the hint ------------------------------------------------------------- */

static void test_hint(void **state)
{
	struct nb_plink *pl = plink_make(0xB0), *pl2;
	struct nb_blink *bl = blink_make(1, 1);
	struct nb_addr a = peer_addr(4001);
	uint8_t frame[NB_SEAL_MAX_DATAGRAM], hint[NB_PLINK_UNKNOWN_LEN + 1], out[64];
	uint8_t old_init[NB_SEAL_MAX_DATAGRAM], init[NB_SEAL_MAX_DATAGRAM], resp[NB_SEAL_MAX_DATAGRAM];
	const uint8_t *key = NULL;
	uint32_t old_index, old_remote;
	size_t n;
	ssize_t r;

	(void)state;
	/* Before any keys: a hint means nothing. */
	hint[0] = NB_BLINK_HINT_TYPE;
	nb_put_u32be(hint + 1, 0);
	assert_true(input(bl, hint, NB_BLINK_HINT_LEN, T0, out, sizeof(out)) < 0);
	assert_int_equal(bl->state, NB_BLINK_DOWN);
	shake(pl, bl, &a, T0);
	memcpy(old_init, bl->init, bl->init_len);
	old_index = bl->index;
	old_remote = bl->seal.cur.remote_index;
	say(pl, bl, &a, "register", T0 + 1);
	/* The broker restarts (same key, no sessions): our next frame is
	 * unknown there and its hint comes back. */
	nb_plink_free(pl);
	pl2 = plink_make(0xB0);
	assert_int_equal(nb_blink_send(bl, (const uint8_t *)"keepalive", 9, T0 + 5000), 0);
	n = next_frame(bl, T0 + 5000, frame);
	assert_int_equal(nb_plink_open(pl2, frame, n, &a, T0 + 5000, out, sizeof(out), &key), NB_PLINK_E_UNKNOWN);
	assert_int_equal(nb_plink_unknown_hint(frame, n, hint), NB_PLINK_UNKNOWN_LEN);
	/* Wrong length, another index: ignored. */
	hint[NB_BLINK_HINT_LEN] = 0;
	assert_true(input(bl, hint, NB_BLINK_HINT_LEN + 1, T0 + 5000, out, sizeof(out)) < 0);
	assert_true(input(bl, hint, NB_BLINK_HINT_LEN - 1, T0 + 5000, out, sizeof(out)) < 0);
	hint[4] ^= 1;
	assert_true(input(bl, hint, NB_BLINK_HINT_LEN, T0 + 5000, out, sizeof(out)) < 0);
	nb_put_u32be(hint + 1, bl->seal.cur.local_index); /* our own index is not theirs */
	assert_true(input(bl, hint, NB_BLINK_HINT_LEN, T0 + 5000, out, sizeof(out)) < 0);
	assert_int_equal(bl->state, NB_BLINK_UP);
	assert_int_equal(bl->st.hints, 0);
	/* The real one: a new handshake, with a new initiation. */
	assert_int_equal(nb_plink_unknown_hint(frame, n, hint), NB_PLINK_UNKNOWN_LEN);
	assert_int_equal(input(bl, hint, NB_BLINK_HINT_LEN, T0 + 5000, out, sizeof(out)), 0);
	assert_int_equal(bl->state, NB_BLINK_HANDSHAKE);
	assert_int_equal(bl->st.hints, 1);
	assert_int_equal(nb_blink_deadline(bl), T0 + 5000);
	n = next_frame(bl, T0 + 5000, init);
	assert_int_equal(init[0], NB_NOISE_TYPE_INIT);
	assert_int_not_equal(bl->index, old_index);
	assert_true(memcmp(init + 5, old_init + 5, 32) != 0); /* a fresh ephemeral */
	/* More hints while it runs: ignored. */
	assert_true(input(bl, hint, NB_BLINK_HINT_LEN, T0 + 5001, out, sizeof(out)) < 0);
	assert_int_equal(bl->st.hints, 1);
	r = answer(pl2, init, n, &a, T0 + 5002, resp);
	assert_int_equal(input(bl, resp, (size_t)r, T0 + 5003, out, sizeof(out)), 0);
	assert_int_equal(bl->state, NB_BLINK_UP);
	say(pl2, bl, &a, "register again", T0 + 5004);
	/* A hint for the new index within NB_BLINK_HINT_MIN_MS: ignored. */
	hint[0] = NB_BLINK_HINT_TYPE;
	nb_put_u32be(hint + 1, bl->seal.cur.remote_index);
	assert_true(input(bl, hint, NB_BLINK_HINT_LEN, T0 + 5000 + NB_BLINK_HINT_MIN_MS - 1, out, sizeof(out)) < 0);
	assert_int_equal(bl->state, NB_BLINK_UP);
	assert_int_equal(bl->st.hints, 1);
	/* The old index: ignored. */
	nb_put_u32be(hint + 1, old_remote);
	assert_true(input(bl, hint, NB_BLINK_HINT_LEN, T0 + 5000 + NB_BLINK_HINT_MIN_MS, out, sizeof(out)) < 0);
	assert_int_equal(bl->state, NB_BLINK_UP);
	/* The new index, late enough: heeded. */
	nb_put_u32be(hint + 1, bl->seal.cur.remote_index);
	assert_int_equal(input(bl, hint, NB_BLINK_HINT_LEN, T0 + 5000 + NB_BLINK_HINT_MIN_MS, out, sizeof(out)), 0);
	assert_int_equal(bl->state, NB_BLINK_HANDSHAKE);
	assert_int_equal(bl->st.hints, 2);
	blink_free(bl);
	nb_plink_free(pl2);
}

/* ---- rekey ---------------------------------------------------------------- */

static void test_rekey_by_time(void **state)
{
	const uint64_t t1 = T0 + NB_SEAL_REKEY_AFTER_TIME_MS; /* rekey due */
	struct nb_plink *pl = plink_make(0xB0);
	struct nb_blink *bl = blink_make(1, 1);
	struct nb_addr a = peer_addr(4001);
	uint8_t init[NB_SEAL_MAX_DATAGRAM], resp[NB_SEAL_MAX_DATAGRAM], out[64];
	uint8_t old1[NB_SEAL_MAX_DATAGRAM], old2[NB_SEAL_MAX_DATAGRAM], frame[NB_SEAL_MAX_DATAGRAM];
	uint32_t old_local, old_remote, new_remote;
	struct nb_plink_stats st;
	size_t n, n1, n2;
	ssize_t r;

	(void)state;
	shake(pl, bl, &a, T0);
	say(pl, bl, &a, "register", T0);
	old_local = bl->seal.cur.local_index;
	old_remote = bl->seal.cur.remote_index;
	assert_int_equal(nb_blink_deadline(bl), t1);
	no_frame(bl, t1 - 1);
	assert_int_equal(bl->state, NB_BLINK_UP);
	/* Due: the poll starts the new handshake... */
	n = next_frame(bl, t1, init);
	assert_int_equal(init[0], NB_NOISE_TYPE_INIT);
	assert_int_equal(bl->state, NB_BLINK_HANDSHAKE);
	assert_true(bl->have_seal);
	assert_int_equal(nb_blink_deadline(bl), t1 + NB_BLINK_RTO_MS);
	/* ...while the old keys keep sealing. */
	assert_int_equal(nb_blink_send(bl, (const uint8_t *)"during", 6, t1), 0);
	assert_int_equal(nb_blink_deadline(bl), 0);
	expect_msg(pl, bl, &a, "during", t1, old_remote);
	/* The broker's replies in the old session, two held back. */
	n1 = tell(pl, bl->pub, &a, "old one", t1 + 1, old1);
	n2 = tell(pl, bl->pub, &a, "old two", t1 + 1, old2);
	assert_int_equal(nb_get_u32be(old1 + 1), old_local);
	r = answer(pl, init, n, &a, t1 + 2, resp);
	assert_int_equal(input(bl, resp, (size_t)r, t1 + 3, out, sizeof(out)), 0);
	assert_int_equal(bl->state, NB_BLINK_UP);
	assert_int_equal(bl->st.handshakes, 2);
	assert_int_not_equal(bl->seal.cur.local_index, old_local);
	new_remote = bl->seal.cur.remote_index;
	assert_int_not_equal(new_remote, old_remote);
	assert_int_equal(nb_blink_deadline(bl), t1 + 3 + NB_SEAL_REKEY_AFTER_TIME_MS);
	/* New messages use the new keys; the broker opens them in the new
	 * session, which confirms it. */
	assert_int_equal(nb_blink_send(bl, (const uint8_t *)"after", 5, t1 + 4), 0);
	expect_msg(pl, bl, &a, "after", t1 + 4, new_remote);
	nb_plink_get_stats(pl, &st);
	assert_int_equal(st.confirmed, 2);
	assert_int_equal(st.live_keys, 1);
	n = tell(pl, bl->pub, &a, "new", t1 + 5, frame);
	assert_int_equal(nb_get_u32be(frame + 1), bl->seal.cur.local_index);
	assert_true(nb_blink_owns(bl, frame, n));
	assert_int_equal(input(bl, frame, n, t1 + 5, out, sizeof(out)), 3);
	assert_int_equal(bl->seal.stats.rx_prev, 0);
	/* Old-key frames from the broker: opened for the grace period... */
	assert_true(nb_blink_owns(bl, old1, n1));
	assert_int_equal(input(bl, old1, n1, t1 + 3 + NB_SEAL_PREV_GRACE_MS - 1, out, sizeof(out)), 7);
	assert_memory_equal(out, "old one", 7);
	assert_int_equal(bl->seal.stats.rx_prev, 1);
	/* ...and not after. */
	assert_int_equal(input(bl, old2, n2, t1 + 3 + NB_SEAL_PREV_GRACE_MS, out, sizeof(out)), NB_SEAL_E_EXPIRED);
	blink_free(bl);
	nb_plink_free(pl);
}

/* A rekey started by hand (nb_blink_start while UP) whose response is lost:
 * the old keys keep sealing and the initiation is retransmitted. */
static void test_rekey_response_lost(void **state)
{
	struct nb_plink *pl = plink_make(0xB0);
	struct nb_blink *bl = blink_make(1, 1);
	struct nb_addr a = peer_addr(4001);
	uint8_t i1[NB_SEAL_MAX_DATAGRAM], i2[NB_SEAL_MAX_DATAGRAM], resp[NB_SEAL_MAX_DATAGRAM], out[64];
	uint32_t old_remote;
	size_t n1, n2;
	ssize_t r;

	(void)state;
	shake(pl, bl, &a, T0);
	say(pl, bl, &a, "hi", T0);
	old_remote = bl->seal.cur.remote_index;
	assert_int_equal(nb_blink_start(bl, T0 + 10), 0);
	n1 = next_frame(bl, T0 + 10, i1);
	(void)answer(pl, i1, n1, &a, T0 + 10, resp); /* lost */
	assert_int_equal(nb_blink_send(bl, (const uint8_t *)"still", 5, T0 + 11), 0);
	expect_msg(pl, bl, &a, "still", T0 + 11, old_remote);
	n2 = next_frame(bl, T0 + 10 + NB_BLINK_RTO_MS, i2);
	assert_int_equal(n1, n2);
	assert_memory_equal(i1, i2, n1);
	r = answer(pl, i2, n2, &a, T0 + 300, resp);
	assert_int_equal(input(bl, resp, (size_t)r, T0 + 301, out, sizeof(out)), 0);
	say(pl, bl, &a, "new", T0 + 302);
	assert_int_not_equal(bl->seal.cur.remote_index, old_remote);
	blink_free(bl);
	nb_plink_free(pl);
}

/* ---- owns ----------------------------------------------------------------- */

static void test_owns(void **state)
{
	struct nb_plink *pl = plink_make(0xB0);
	struct nb_blink *bl = blink_make(1, 1), *bl2 = blink_make(2, 2);
	struct nb_addr a = peer_addr(4001), a2 = peer_addr(4002);
	uint8_t f[NB_SEAL_MAX_DATAGRAM], f2[NB_SEAL_MAX_DATAGRAM], mine[NB_SEAL_MAX_DATAGRAM];
	size_t n, n2, nm;

	(void)state;
	memset(f, 0, sizeof(f));
	f[0] = NB_SEAL_TYPE;
	assert_false(nb_blink_owns(bl, f, NB_SEAL_OVERHEAD)); /* no keys yet */
	shake(pl, bl, &a, T0);
	shake(pl, bl2, &a2, T0);
	say(pl, bl, &a, "1", T0);
	say(pl, bl2, &a2, "2", T0);
	n = tell(pl, bl->pub, &a, "for one", T0 + 1, f);
	n2 = tell(pl, bl2->pub, &a2, "for two", T0 + 1, f2);
	assert_true(nb_blink_owns(bl, f, n));
	assert_false(nb_blink_owns(bl, f2, n2));
	assert_true(nb_blink_owns(bl2, f2, n2));
	assert_false(nb_blink_owns(bl2, f, n));
	/* Only sealed frames of a sane length. */
	assert_false(nb_blink_owns(bl, f, NB_SEAL_OVERHEAD - 1));
	assert_false(nb_blink_owns(bl, f, NB_SEAL_MAX_DATAGRAM + 1));
	f[0] = NB_NOISE_TYPE_RESP;
	assert_false(nb_blink_owns(bl, f, n));
	f[0] = NB_SEAL_TYPE;
	/* Our own frame carries the broker's index, not ours. */
	assert_int_equal(nb_blink_send(bl, (const uint8_t *)"x", 1, T0 + 2), 0);
	nm = next_frame(bl, T0 + 2, mine);
	assert_false(nb_blink_owns(bl, mine, nm));
	/* After a rekey: the previous index is still ours, and the new one. */
	shake(pl, bl, &a, T0 + 3);
	assert_true(nb_blink_owns(bl, f, n));
	say(pl, bl, &a, "confirm", T0 + 4);
	n2 = tell(pl, bl->pub, &a, "new", T0 + 5, f2);
	assert_true(nb_blink_owns(bl, f2, n2));
	assert_int_not_equal(nb_get_u32be(f + 1), nb_get_u32be(f2 + 1));
	nb_blink_wipe(bl);
	assert_false(nb_blink_owns(bl, f2, n2));
	free(bl);
	blink_free(bl2);
	nb_plink_free(pl);
}

/* First use: no pinned key. The blink asks (0xD5, padded to 64 bytes), at
 * 0, 250, 750, ... ms; an answer from another address, or of the wrong
 * length, is not taken; the broker's answer is taken once, reported for
 * pinning, and the handshake with that key starts at once. Six requests
 * unanswered: NO_KEY, and start() asks again. */
static void test_first_use_asks_for_the_key(void **state)
{
	struct nb_plink *pl = plink_make(0xB0);
	struct nb_blink *bl = calloc(1, sizeof(*bl));
	uint8_t priv[NB_KEY_LEN], pub[NB_KEY_LEN], seed[16], buf[NB_SEAL_MAX_DATAGRAM], out[64];
	uint8_t answer[1 + NB_KEY_LEN], learned[NB_KEY_LEN];
	struct nb_addr b = broker_addr(), other = addr_of("198.51.100.2:3478");
	uint64_t t = T0;
	size_t n;

	(void)state;
	assert_non_null(bl);
	key_of(0x21, priv, pub);
	memset(seed, 7, sizeof(seed));
	nb_blink_init(bl, priv, pub, NULL, &b, seed);
	assert_int_equal(nb_blink_start(bl, t), 0);
	assert_int_equal(nb_blink_state(bl), NB_BLINK_ASKING);
	n = next_frame(bl, t, buf);
	assert_int_equal(n, NB_BLINK_KEYQ_LEN);
	assert_int_equal(buf[0], NB_BLINK_KEYQ_TYPE);
	for (size_t i = 1; i < n; i++)
		assert_int_equal(buf[i], 0);
	no_frame(bl, t + 249);
	assert_int_equal(nb_blink_deadline(bl), t + 250);
	assert_int_equal(next_frame(bl, t + 250, buf), NB_BLINK_KEYQ_LEN);
	assert_int_equal(nb_blink_deadline(bl), t + 750);
	/* Not from the broker's address, or not 33 bytes: nothing learned. */
	answer[0] = NB_BLINK_KEYR_TYPE;
	memcpy(answer + 1, broker_pub, NB_KEY_LEN);
	assert_true(nb_blink_input(bl, answer, sizeof(answer), &other, t + 300, out, sizeof(out)) < 0);
	assert_true(input(bl, answer, sizeof(answer) - 1, t + 300, out, sizeof(out)) < 0);
	assert_int_equal(nb_blink_learned(bl, learned), 0);
	assert_int_equal(nb_blink_state(bl), NB_BLINK_ASKING);
	/* The broker's answer: learned once, and the handshake goes out. */
	assert_int_equal(input(bl, answer, sizeof(answer), t + 300, out, sizeof(out)), 0);
	assert_int_equal(nb_blink_learned(bl, learned), 1);
	assert_memory_equal(learned, broker_pub, NB_KEY_LEN);
	assert_int_equal(nb_blink_learned(bl, learned), 0);
	assert_int_equal(nb_blink_state(bl), NB_BLINK_HANDSHAKE);
	n = next_frame(bl, t + 300, buf);
	assert_int_equal(buf[0], NB_NOISE_TYPE_INIT);
	/* ... which the real broker answers: the key was the right one. */
	{
		uint8_t resp[NB_SEAL_MAX_DATAGRAM];
		struct nb_addr me = peer_addr(40001);
		ssize_t r = nb_plink_handshake(pl, buf, n, &me, t + 300, resp, sizeof(resp));
		assert_int_equal(r, NB_NOISE_RESP_MIN);
		assert_int_equal(input(bl, resp, (size_t)r, t + 301, out, sizeof(out)), 0);
		assert_int_equal(nb_blink_state(bl), NB_BLINK_UP);
	}
	/* A second answer changes nothing now. */
	answer[1] ^= 1;
	assert_true(input(bl, answer, sizeof(answer), t + 302, out, sizeof(out)) < 0);
	assert_int_equal(nb_blink_learned(bl, learned), 0);
	blink_free(bl);

	/* Nobody answers: six requests, then NO_KEY; start() asks again. */
	bl = calloc(1, sizeof(*bl));
	assert_non_null(bl);
	nb_blink_init(bl, priv, pub, NULL, &b, seed);
	assert_int_equal(nb_blink_start(bl, t), 0);
	for (int i = 0; i < NB_BLINK_KEYQ_TRIES; i++) {
		t = nb_blink_deadline(bl) > t ? nb_blink_deadline(bl) : t;
		assert_int_equal(next_frame(bl, t, buf), NB_BLINK_KEYQ_LEN);
	}
	t = nb_blink_deadline(bl);
	no_frame(bl, t);
	assert_int_equal(nb_blink_state(bl), NB_BLINK_NO_KEY);
	assert_int_equal(nb_blink_start(bl, t), 0);
	assert_int_equal(nb_blink_state(bl), NB_BLINK_ASKING);
	assert_int_equal(next_frame(bl, t, buf), NB_BLINK_KEYQ_LEN);
	blink_free(bl);
	nb_plink_free(pl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_until_up),
		cmocka_unit_test(test_queue_drops_oldest),
		cmocka_unit_test(test_retransmit_schedule),
		cmocka_unit_test(test_forged_response),
		cmocka_unit_test(test_only_the_broker_address),
		cmocka_unit_test(test_hint),
		cmocka_unit_test(test_rekey_by_time),
		cmocka_unit_test(test_rekey_response_lost),
		cmocka_unit_test(test_owns),
		cmocka_unit_test(test_first_use_asks_for_the_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
