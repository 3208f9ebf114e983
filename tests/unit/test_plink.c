/* tests/unit/test_plink.c - the broker's sealed control sessions, driven by
 * real peers (peer/blink.c) in process with a fake clock: handshake,
 * retransmission, wrong broker key, key confirmation, sealing by key and
 * address, rekey, the unknown-session hint, tampering / truncation / replay
 * / reflection, the bounded table (eviction, full) and expiry. */
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

static uint8_t broker_priv[NB_KEY_LEN], broker_pub[NB_KEY_LEN];

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

static struct nb_plink *plink_make(size_t max, uint32_t idle_ms)
{
	static unsigned made;
	struct nb_plink_config cfg;
	struct nb_plink *pl = NULL;

	memset(&cfg, 0, sizeof(cfg));
	cfg.max_sessions = max;
	cfg.idle_ms = idle_ms;
	key_of(0xB0, broker_priv, broker_pub);
	memcpy(cfg.priv, broker_priv, NB_KEY_LEN);
	/* Each broker its own hash key (a restarted one picks new indices). */
	made++;
	for (int i = 0; i < NB_SIPHASH_KEY_LEN; i++)
		cfg.hash_key[i] = (uint8_t)(0x50 + i + made);
	assert_int_equal(nb_plink_new(&cfg, &pl), 0);
	assert_non_null(pl);
	OPENSSL_cleanse(&cfg, sizeof(cfg));
	return pl;
}

/* A peer whose key is key_of(key_salt), with the broker's key (or another). */
static struct nb_blink *blink_make(uint8_t key_salt, uint8_t seed_salt, const uint8_t *bkey)
{
	struct nb_blink *bl = calloc(1, sizeof(*bl));
	uint8_t priv[NB_KEY_LEN], pub[NB_KEY_LEN], seed[16];
	struct nb_addr b = broker_addr();

	assert_non_null(bl);
	key_of(key_salt, priv, pub);
	memset(seed, seed_salt, sizeof(seed));
	nb_blink_init(bl, priv, pub, bkey != NULL ? bkey : broker_pub, &b, seed);
	return bl;
}

static void blink_free(struct nb_blink *bl)
{
	if (bl != NULL)
		nb_blink_wipe(bl);
	free(bl);
}

static struct nb_plink_stats stats_of(const struct nb_plink *pl)
{
	struct nb_plink_stats st;

	memset(&st, 0xAA, sizeof(st));
	nb_plink_get_stats(pl, &st);
	return st;
}

/* The next frame from bl at now (must exist), copied into buf. */
static size_t next_frame(struct nb_blink *bl, uint64_t now, uint8_t *buf)
{
	struct nb_blink_tx tx;

	assert_int_equal(nb_blink_poll(bl, now, &tx), 1);
	assert_true(tx.len > 0 && tx.len <= NB_SEAL_MAX_DATAGRAM);
	memcpy(buf, tx.bytes, tx.len);
	return tx.len;
}

/* Start bl's handshake (or rekey) and take its initiation. */
static size_t init_of(struct nb_blink *bl, uint64_t now, uint8_t *buf)
{
	size_t n;

	assert_int_equal(nb_blink_start(bl, now), 0);
	n = next_frame(bl, now, buf);
	assert_int_equal(n, NB_NOISE_INIT_MIN);
	assert_int_equal(buf[0], NB_NOISE_TYPE_INIT);
	return n;
}

/* The whole handshake: bl at `from` with pl; bl is UP afterwards. */
static void shake(struct nb_plink *pl, struct nb_blink *bl, const struct nb_addr *from, uint64_t now)
{
	uint8_t init[NB_SEAL_MAX_DATAGRAM], resp[NB_SEAL_MAX_DATAGRAM], out[64];
	struct nb_addr b = broker_addr();
	size_t n = init_of(bl, now, init);
	ssize_t r = nb_plink_handshake(pl, init, n, from, now, resp, sizeof(resp));

	assert_int_equal(r, NB_NOISE_RESP_MIN);
	assert_int_equal(nb_blink_input(bl, resp, (size_t)r, &b, now, out, sizeof(out)), 0);
	assert_int_equal(bl->state, NB_BLINK_UP);
}

/* A message from bl through pl: it must open to msg, from bl's key. */
static void say(struct nb_plink *pl, struct nb_blink *bl, const struct nb_addr *from, const char *msg,
		uint64_t now)
{
	uint8_t frame[NB_SEAL_MAX_DATAGRAM], out[NB_SEAL_MAX_DATAGRAM];
	const uint8_t *key = NULL;
	size_t n;
	ssize_t r;

	assert_int_equal(nb_blink_send(bl, (const uint8_t *)msg, strlen(msg), now), 0);
	n = next_frame(bl, now, frame);
	assert_int_equal(frame[0], NB_SEAL_TYPE);
	r = nb_plink_open(pl, frame, n, from, now, out, sizeof(out), &key);
	assert_int_equal(r, (ssize_t)strlen(msg));
	assert_memory_equal(out, msg, strlen(msg));
	assert_non_null(key);
	assert_memory_equal(key, bl->pub, NB_KEY_LEN);
}

/* A message from pl to key at `to`, sealed into frame; its length. */
static size_t tell(struct nb_plink *pl, const uint8_t *key, const struct nb_addr *to, const char *msg,
		   uint64_t now, uint8_t *frame)
{
	ssize_t n = nb_plink_seal(pl, key, to, (const uint8_t *)msg, strlen(msg), frame, NB_SEAL_MAX_DATAGRAM, now);

	assert_int_equal(n, (ssize_t)(NB_SEAL_OVERHEAD + strlen(msg)));
	assert_int_equal(frame[0], NB_SEAL_TYPE);
	return (size_t)n;
}

static void hears(struct nb_blink *bl, const uint8_t *frame, size_t n, const char *msg, uint64_t now)
{
	uint8_t out[NB_SEAL_MAX_DATAGRAM];
	struct nb_addr b = broker_addr();

	assert_true(nb_blink_owns(bl, frame, n));
	assert_int_equal(nb_blink_input(bl, frame, n, &b, now, out, sizeof(out)), (ssize_t)strlen(msg));
	assert_memory_equal(out, msg, strlen(msg));
}

/* ---- handshake ----------------------------------------------------------- */

static void test_handshake_response(void **state)
{
	struct nb_plink *pl = plink_make(16, 10000);
	struct nb_blink *bl = blink_make(1, 1, NULL);
	struct nb_addr a = peer_addr(4001), b = broker_addr();
	uint8_t init[NB_SEAL_MAX_DATAGRAM], resp[NB_SEAL_MAX_DATAGRAM], out[64];
	struct nb_plink_stats st;
	uint8_t pub[NB_KEY_LEN];
	size_t n;
	ssize_t r;

	(void)state;
	nb_plink_public_key(pl, pub);
	assert_memory_equal(pub, broker_pub, NB_KEY_LEN);
	n = init_of(bl, T0, init);
	/* Not an initiation, or too short: nothing. */
	assert_true(nb_plink_handshake(pl, init, n - 1, &a, T0, resp, sizeof(resp)) < 0);
	assert_true(nb_plink_handshake(pl, init, 0, &a, T0, resp, sizeof(resp)) < 0);
	init[0] = NB_NOISE_TYPE_RESP;
	assert_true(nb_plink_handshake(pl, init, n, &a, T0, resp, sizeof(resp)) < 0);
	init[0] = NB_NOISE_TYPE_INIT;
	assert_int_equal(nb_plink_handshake(NULL, init, n, &a, T0, resp, sizeof(resp)), NB_PLINK_E_INVAL);
	assert_int_equal(nb_plink_handshake(pl, init, n, NULL, T0, resp, sizeof(resp)), NB_PLINK_E_INVAL);
	/* No room for the response: an error, no session, nothing leaked. */
	assert_int_equal(nb_plink_handshake(pl, init, n, &a, T0, resp, NB_NOISE_RESP_MIN - 1), NB_NOISE_E_NOSPACE);
	st = stats_of(pl);
	assert_int_equal(st.sessions, 0);
	assert_int_equal(st.handshakes, 0);

	r = nb_plink_handshake(pl, init, n, &a, T0, resp, sizeof(resp));
	assert_int_equal(r, 57);
	assert_int_equal(resp[0], NB_NOISE_TYPE_RESP);
	{
		uint32_t snd, rcv;
		assert_int_equal(nb_noise_peek_resp(resp, (size_t)r, &snd, &rcv), 0);
		assert_int_equal(rcv, bl->index); /* echoes the initiation's sender index */
	}
	st = stats_of(pl);
	assert_int_equal(st.handshakes, 1);
	assert_int_equal(st.sessions, 1);
	assert_int_equal(st.confirmed, 0);
	assert_int_equal(st.live_keys, 0);
	assert_int_equal(st.handshake_fail, 0);
	assert_int_equal(nb_blink_input(bl, resp, (size_t)r, &b, T0 + 5, out, sizeof(out)), 0);
	assert_int_equal(bl->state, NB_BLINK_UP);
	assert_int_equal(bl->seal.cur.remote_index, nb_get_u32be(resp + 1));
	blink_free(bl);
	nb_plink_free(pl);
}

static void test_retransmitted_init(void **state)
{
	struct nb_plink *pl = plink_make(16, 10000);
	struct nb_blink *bl = blink_make(1, 1, NULL);
	struct nb_addr a = peer_addr(4001);
	uint8_t i1[NB_SEAL_MAX_DATAGRAM], i2[NB_SEAL_MAX_DATAGRAM];
	uint8_t r1[NB_SEAL_MAX_DATAGRAM], r2[NB_SEAL_MAX_DATAGRAM];
	struct nb_plink_stats st;
	size_t n1, n2;
	ssize_t k1, k2;

	(void)state;
	n1 = init_of(bl, T0, i1);
	n2 = next_frame(bl, T0 + NB_BLINK_RTO_MS, i2); /* the retransmission */
	assert_int_equal(n1, n2);
	assert_memory_equal(i1, i2, n1);
	k1 = nb_plink_handshake(pl, i1, n1, &a, T0 + 10, r1, sizeof(r1));
	k2 = nb_plink_handshake(pl, i2, n2, &a, T0 + 260, r2, sizeof(r2));
	assert_int_equal(k1, NB_NOISE_RESP_MIN);
	assert_int_equal(k2, k1);
	assert_memory_equal(r1, r2, (size_t)k1);
	/* The stored answer, too, needs room. */
	assert_int_equal(nb_plink_handshake(pl, i2, n2, &a, T0 + 261, r2, 10), NB_NOISE_E_NOSPACE);
	st = stats_of(pl);
	assert_int_equal(st.handshakes, 1);
	assert_int_equal(st.handshake_repeats, 1);
	assert_int_equal(st.sessions, 1);
	blink_free(bl);
	nb_plink_free(pl);
}

/* After confirmation the same initiation (a replay) makes a new, unconfirmed
 * session that never takes the real one's place. */
static void test_replayed_init_after_confirm(void **state)
{
	struct nb_plink *pl = plink_make(16, 10000);
	struct nb_blink *bl = blink_make(1, 1, NULL);
	struct nb_addr a = peer_addr(4001), b = broker_addr();
	uint8_t init[NB_SEAL_MAX_DATAGRAM], resp[NB_SEAL_MAX_DATAGRAM], frame[NB_SEAL_MAX_DATAGRAM], out[64];
	struct nb_plink_stats st;
	size_t n;
	ssize_t r;

	(void)state;
	n = init_of(bl, T0, init);
	r = nb_plink_handshake(pl, init, n, &a, T0, resp, sizeof(resp));
	assert_int_equal(nb_blink_input(bl, resp, (size_t)r, &b, T0, out, sizeof(out)), 0);
	say(pl, bl, &a, "register", T0 + 1);
	r = nb_plink_handshake(pl, init, n, &a, T0 + 2, resp, sizeof(resp));
	assert_int_equal(r, NB_NOISE_RESP_MIN);
	/* The blink ignores a response once up. */
	assert_int_equal(nb_blink_input(bl, resp, (size_t)r, &b, T0 + 3, out, sizeof(out)), NB_NOISE_E_STATE);
	st = stats_of(pl);
	assert_int_equal(st.sessions, 2);
	assert_int_equal(st.confirmed, 1);
	assert_int_equal(st.live_keys, 1);
	n = tell(pl, bl->pub, &a, "still you", T0 + 4, frame);
	hears(bl, frame, n, "still you", T0 + 5);
	blink_free(bl);
	nb_plink_free(pl);
}

static void test_wrong_broker_key(void **state)
{
	struct nb_plink *pl = plink_make(16, 10000);
	uint8_t opriv[NB_KEY_LEN], opub[NB_KEY_LEN];
	struct nb_blink *bl, *good;
	struct nb_addr a = peer_addr(4001);
	uint8_t init[NB_SEAL_MAX_DATAGRAM], bad[NB_SEAL_MAX_DATAGRAM], resp[NB_SEAL_MAX_DATAGRAM];
	struct nb_plink_stats st;
	size_t n;

	(void)state;
	key_of(0xB1, opriv, opub);
	bl = blink_make(1, 1, opub);
	n = init_of(bl, T0, init);
	assert_int_equal(nb_plink_handshake(pl, init, n, &a, T0, resp, sizeof(resp)), NB_NOISE_E_MAC);
	st = stats_of(pl);
	assert_int_equal(st.handshake_fail, 1);
	assert_int_equal(st.sessions, 0);
	assert_int_equal(st.handshakes, 0);

	/* Every byte of a good initiation flipped, but the sender index (a
	 * routing hint outside the transcript, common/noise.h): refused. */
	good = blink_make(2, 2, NULL);
	n = init_of(good, T0, init);
	for (size_t i = 0; i < n; i++) {
		if (i >= 1 && i < NB_NOISE_INIT_HDR_LEN)
			continue;
		memcpy(bad, init, n);
		bad[i] ^= 0x01;
		assert_true(nb_plink_handshake(pl, bad, n, &a, T0, resp, sizeof(resp)) < 0);
		bad[i] ^= 0x81;
		assert_true(nb_plink_handshake(pl, bad, n, &a, T0, resp, sizeof(resp)) < 0);
	}
	st = stats_of(pl);
	assert_int_equal(st.sessions, 0);
	assert_int_equal(st.handshakes, 0);
	assert_int_equal(nb_plink_handshake(pl, init, n, &a, T0, resp, sizeof(resp)), NB_NOISE_RESP_MIN);
	blink_free(good);
	blink_free(bl);
	nb_plink_free(pl);
}

/* ---- confirmation and sealing --------------------------------------------- */

static void test_confirm_then_seal(void **state)
{
	struct nb_plink *pl = plink_make(16, 10000);
	struct nb_blink *bl = blink_make(1, 1, NULL);
	struct nb_addr a = peer_addr(4001);
	uint8_t frame[NB_SEAL_MAX_DATAGRAM];
	struct nb_plink_stats st;
	size_t n;

	(void)state;
	shake(pl, bl, &a, T0);
	/* Not confirmed yet: nothing to seal with. */
	assert_int_equal(nb_plink_seal(pl, bl->pub, &a, (const uint8_t *)"x", 1, frame, sizeof(frame), T0),
			 NB_PLINK_E_NOKEY);
	assert_int_equal(nb_plink_seal(pl, bl->pub, NULL, (const uint8_t *)"x", 1, frame, sizeof(frame), T0),
			 NB_PLINK_E_NOKEY);
	st = stats_of(pl);
	assert_int_equal(st.seal_nokey, 2);
	assert_int_equal(st.sealed, 0);
	say(pl, bl, &a, "hello", T0 + 10);
	st = stats_of(pl);
	assert_int_equal(st.confirmed, 1);
	assert_int_equal(st.live_keys, 1);
	assert_int_equal(st.opened, 1);
	n = tell(pl, bl->pub, &a, "world", T0 + 20, frame);
	hears(bl, frame, n, "world", T0 + 21);
	/* No `to`: the key's most recently heard session. */
	n = tell(pl, bl->pub, NULL, "again", T0 + 22, frame);
	hears(bl, frame, n, "again", T0 + 23);
	/* Another key: nothing. */
	{
		uint8_t priv[NB_KEY_LEN], pub[NB_KEY_LEN];
		key_of(9, priv, pub);
		assert_int_equal(nb_plink_seal(pl, pub, &a, (const uint8_t *)"x", 1, frame, sizeof(frame), T0 + 24),
				 NB_PLINK_E_NOKEY);
	}
	st = stats_of(pl);
	assert_int_equal(st.sealed, 2);
	blink_free(bl);
	nb_plink_free(pl);
}

/* One key, two processes at two addresses: each gets its own session. */
static void test_one_key_two_addresses(void **state)
{
	struct nb_plink *pl = plink_make(16, 10000);
	struct nb_blink *p1 = blink_make(1, 1, NULL), *p2 = blink_make(1, 2, NULL);
	struct nb_addr a1 = peer_addr(4001), a2 = peer_addr(4002), a3 = peer_addr(4003), b = broker_addr();
	uint8_t frame[NB_SEAL_MAX_DATAGRAM], out[64];
	struct nb_plink_stats st;
	size_t n;

	(void)state;
	shake(pl, p1, &a1, T0);
	shake(pl, p2, &a2, T0 + 1);
	say(pl, p1, &a1, "one", T0 + 2);
	say(pl, p2, &a2, "two", T0 + 3); /* must not unlink p1's session */
	st = stats_of(pl);
	assert_int_equal(st.sessions, 2);
	assert_int_equal(st.live_keys, 2);
	for (int round = 0; round < 2; round++) {
		uint64_t t = T0 + 10 + (uint64_t)round * 10;
		n = tell(pl, p1->pub, &a1, "to one", t, frame);
		assert_false(nb_blink_owns(p2, frame, n));
		assert_int_equal(nb_blink_input(p2, frame, n, &b, t, out, sizeof(out)), NB_SEAL_E_INDEX);
		hears(p1, frame, n, "to one", t);
		n = tell(pl, p2->pub, &a2, "to two", t + 1, frame);
		assert_false(nb_blink_owns(p1, frame, n));
		assert_int_equal(nb_blink_input(p1, frame, n, &b, t + 1, out, sizeof(out)), NB_SEAL_E_INDEX);
		hears(p2, frame, n, "to two", t + 1);
	}
	/* An address neither sends from: the most recently heard one. */
	say(pl, p1, &a1, "latest", T0 + 40);
	n = tell(pl, p1->pub, &a3, "whoever", T0 + 41, frame);
	assert_false(nb_blink_owns(p2, frame, n));
	hears(p1, frame, n, "whoever", T0 + 41);
	blink_free(p1);
	blink_free(p2);
	nb_plink_free(pl);
}

/* The peer's NAT moves it: its session follows its authenticated frames,
 * never forged ones, and sealing by address finds it where it is now. */
static void test_roaming(void **state)
{
	struct nb_plink *pl = plink_make(16, 10000);
	struct nb_blink *p1 = blink_make(1, 1, NULL), *p2 = blink_make(1, 2, NULL);
	struct nb_addr a1 = peer_addr(4001), a2 = peer_addr(4002), a3 = peer_addr(4003);
	uint8_t f[NB_SEAL_MAX_DATAGRAM], s[NB_SEAL_MAX_DATAGRAM], out[64];
	const uint8_t *key;
	size_t n, ns;

	(void)state;
	shake(pl, p1, &a1, T0);
	shake(pl, p2, &a2, T0);
	say(pl, p2, &a2, "two", T0 + 1);
	say(pl, p1, &a1, "one", T0 + 2); /* p1 heard last */
	assert_int_equal(nb_blink_send(p1, (const uint8_t *)"moved", 5, T0 + 3), 0);
	n = next_frame(p1, T0 + 3, f);
	/* A forged copy from p2's address does not move p1's session there. */
	f[n - 1] ^= 1;
	assert_int_equal(nb_plink_open(pl, f, n, &a2, T0 + 3, out, sizeof(out), &key), NB_SEAL_E_TAG);
	f[n - 1] ^= 1;
	ns = tell(pl, p1->pub, &a2, "for two", T0 + 4, s);
	assert_false(nb_blink_owns(p1, s, ns));
	hears(p2, s, ns, "for two", T0 + 4);
	/* The real one, from a new address: p1 is there now. */
	assert_int_equal(nb_plink_open(pl, f, n, &a3, T0 + 5, out, sizeof(out), &key), 5);
	say(pl, p2, &a2, "two again", T0 + 6); /* p2 heard last */
	ns = tell(pl, p1->pub, &a3, "for one at 3", T0 + 7, s);
	assert_false(nb_blink_owns(p2, s, ns));
	hears(p1, s, ns, "for one at 3", T0 + 7);
	/* Nobody at the old address: the most recently heard. */
	ns = tell(pl, p1->pub, &a1, "whoever", T0 + 8, s);
	hears(p2, s, ns, "whoever", T0 + 8);
	blink_free(p1);
	blink_free(p2);
	nb_plink_free(pl);
}

/* A rekey: a new handshake from the same key and address replaces the old
 * session for sealing once confirmed; the old one still receives. */
static void test_rekey_replaces(void **state)
{
	struct nb_plink *pl = plink_make(16, 100000);
	struct nb_blink *bl = blink_make(1, 1, NULL);
	struct nb_addr a = peer_addr(4001), b = broker_addr();
	uint8_t init[NB_SEAL_MAX_DATAGRAM], resp[NB_SEAL_MAX_DATAGRAM], old[NB_SEAL_MAX_DATAGRAM];
	uint8_t frame[NB_SEAL_MAX_DATAGRAM], out[64];
	const uint8_t *key = NULL;
	struct nb_plink_stats st;
	uint32_t old_local;
	size_t n, nold;
	ssize_t r;

	(void)state;
	shake(pl, bl, &a, T0);
	say(pl, bl, &a, "first", T0 + 1);
	old_local = bl->seal.cur.local_index;
	/* Rekey; a message sealed under the old keys, held back. */
	n = init_of(bl, T0 + 5000, init);
	assert_int_equal(nb_blink_send(bl, (const uint8_t *)"old keys", 8, T0 + 5000), 0);
	nold = next_frame(bl, T0 + 5000, old);
	assert_int_equal(nb_get_u32be(old + 1), bl->seal.cur.remote_index);
	r = nb_plink_handshake(pl, init, n, &a, T0 + 5001, resp, sizeof(resp));
	assert_int_equal(r, NB_NOISE_RESP_MIN);
	/* Not confirmed yet: the broker still seals in the old session. */
	n = tell(pl, bl->pub, &a, "before", T0 + 5002, frame);
	assert_int_equal(nb_get_u32be(frame + 1), old_local);
	assert_int_equal(nb_blink_input(bl, resp, (size_t)r, &b, T0 + 5003, out, sizeof(out)), 0);
	assert_int_not_equal(bl->seal.cur.local_index, old_local);
	hears(bl, frame, n, "before", T0 + 5004); /* the blink's previous keys */
	assert_int_equal(bl->seal.stats.rx_prev, 1);
	say(pl, bl, &a, "new keys", T0 + 5005); /* confirms the new session */
	st = stats_of(pl);
	assert_int_equal(st.sessions, 2);
	assert_int_equal(st.confirmed, 2);
	assert_int_equal(st.live_keys, 1);
	n = tell(pl, bl->pub, &a, "after", T0 + 5006, frame);
	assert_int_equal(nb_get_u32be(frame + 1), bl->seal.cur.local_index);
	hears(bl, frame, n, "after", T0 + 5007);
	assert_int_equal(bl->seal.stats.rx_prev, 1);
	/* The old session still receives what was in flight... */
	r = nb_plink_open(pl, old, nold, &a, T0 + 5008, out, sizeof(out), &key);
	assert_int_equal(r, 8);
	assert_memory_equal(out, "old keys", 8);
	assert_memory_equal(key, bl->pub, NB_KEY_LEN);
	/* ...and that does not make it the one to seal with again. */
	n = tell(pl, bl->pub, &a, "still new", T0 + 5009, frame);
	assert_int_equal(nb_get_u32be(frame + 1), bl->seal.cur.local_index);
	hears(bl, frame, n, "still new", T0 + 5010);
	st = stats_of(pl);
	assert_int_equal(st.live_keys, 1);
	blink_free(bl);
	nb_plink_free(pl);
}

/* ---- the unknown-session hint --------------------------------------------- */

static void test_unknown_index_hint(void **state)
{
	struct nb_plink *pl = plink_make(16, 10000), *pl2;
	struct nb_blink *bl = blink_make(1, 1, NULL);
	struct nb_addr a = peer_addr(4001), b = broker_addr();
	uint8_t frame[NB_SEAL_MAX_DATAGRAM], hint[NB_PLINK_UNKNOWN_LEN], out[64];
	const uint8_t *key = NULL;
	struct nb_plink_stats st;
	size_t n;

	(void)state;
	shake(pl, bl, &a, T0);
	say(pl, bl, &a, "hi", T0 + 1);
	/* The broker restarts: same key, no sessions. */
	nb_plink_free(pl);
	pl2 = plink_make(16, 10000);
	assert_int_equal(nb_blink_send(bl, (const uint8_t *)"are you there", 13, T0 + 2000), 0);
	n = next_frame(bl, T0 + 2000, frame);
	assert_int_equal(nb_plink_open(pl2, frame, n, &a, T0 + 2001, out, sizeof(out), &key), NB_PLINK_E_UNKNOWN);
	assert_null(key);
	st = stats_of(pl2);
	assert_int_equal(st.unknown_index, 1);
	assert_int_equal(st.open_fail, 0);
	assert_int_equal(nb_plink_unknown_hint(frame, n, hint), NB_PLINK_UNKNOWN_LEN);
	assert_int_equal(hint[0], NB_PLINK_UNKNOWN_TYPE);
	assert_memory_equal(hint + 1, frame + 1, 4);
	assert_int_equal(nb_get_u32be(hint + 1), bl->seal.cur.remote_index);
	/* Not a sealed frame: no hint. */
	assert_true(nb_plink_unknown_hint(frame, NB_SEAL_OVERHEAD - 1, hint) < 0);
	frame[0] = NB_NOISE_TYPE_INIT;
	assert_true(nb_plink_unknown_hint(frame, n, hint) < 0);
	frame[0] = NB_SEAL_TYPE;
	/* The hint makes the blink shake hands with the new broker. */
	assert_int_equal(nb_blink_input(bl, hint, sizeof(hint), &b, T0 + 2002, out, sizeof(out)), 0);
	assert_int_equal(bl->state, NB_BLINK_HANDSHAKE);
	{
		uint8_t init[NB_SEAL_MAX_DATAGRAM], resp[NB_SEAL_MAX_DATAGRAM];
		size_t ni = next_frame(bl, T0 + 2002, init);
		ssize_t r = nb_plink_handshake(pl2, init, ni, &a, T0 + 2003, resp, sizeof(resp));
		assert_int_equal(r, NB_NOISE_RESP_MIN);
		assert_int_equal(nb_blink_input(bl, resp, (size_t)r, &b, T0 + 2004, out, sizeof(out)), 0);
	}
	say(pl2, bl, &a, "back", T0 + 2005);
	blink_free(bl);
	nb_plink_free(pl2);
}

/* ---- hostile frames ------------------------------------------------------- */

/* Every byte of the first sealed frame flipped, every prefix: refused, and
 * nothing changes (no confirmation, the window does not move). */
static void test_tamper_and_truncate(void **state)
{
	struct nb_plink *pl = plink_make(16, 10000);
	struct nb_blink *bl = blink_make(1, 1, NULL);
	struct nb_addr a = peer_addr(4001), evil = peer_addr(6666);
	uint8_t frame[NB_SEAL_MAX_DATAGRAM], bad[NB_SEAL_MAX_DATAGRAM], out[NB_SEAL_MAX_DATAGRAM];
	const uint8_t *key;
	struct nb_plink_stats st0, st;
	size_t n;
	ssize_t r;

	(void)state;
	shake(pl, bl, &a, T0);
	assert_int_equal(nb_blink_send(bl, (const uint8_t *)"register me", 11, T0), 0);
	n = next_frame(bl, T0, frame);
	st0 = stats_of(pl);
	for (size_t i = 0; i < n; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(bad, frame, n);
			bad[i] ^= (uint8_t)(1u << bit);
			key = NULL;
			r = nb_plink_open(pl, bad, n, &evil, T0 + 1, out, sizeof(out), &key);
			assert_true(r < 0);
			assert_null(key);
			if (i == 0)
				assert_int_equal(r, NB_SEAL_E_TYPE);
			else if (i < 5)
				assert_int_equal(r, NB_PLINK_E_UNKNOWN);
			else
				assert_int_equal(r, NB_SEAL_E_TAG);
		}
	}
	for (size_t len = 0; len < n; len++) {
		key = NULL;
		r = nb_plink_open(pl, frame, len, &evil, T0 + 1, out, sizeof(out), &key);
		assert_true(r < 0);
		assert_null(key);
	}
	frame[n] = 0; /* one byte too many */
	assert_int_equal(nb_plink_open(pl, frame, n + 1, &evil, T0 + 1, out, sizeof(out), &key), NB_SEAL_E_TAG);
	st = stats_of(pl);
	assert_int_equal(st.opened, st0.opened);
	assert_int_equal(st.confirmed, 0);
	assert_int_equal(st.live_keys, 0);
	/* 8 flips of each byte past the index, the prefixes long enough to
	 * reach the AEAD, the one too long. */
	assert_int_equal(st.open_fail, st0.open_fail + (n - 5) * 8 + (n - NB_SEAL_OVERHEAD) + 1);
	assert_int_equal(st.unknown_index, st0.unknown_index + 4 * 8);
	assert_int_equal(nb_plink_seal(pl, bl->pub, NULL, (const uint8_t *)"x", 1, bad, sizeof(bad), T0 + 1),
			 NB_PLINK_E_NOKEY);
	/* The original (counter 0) still opens: the window did not move. */
	r = nb_plink_open(pl, frame, n, &a, T0 + 2, out, sizeof(out), &key);
	assert_int_equal(r, 11);
	st = stats_of(pl);
	assert_int_equal(st.confirmed, 1);
	/* The bad frames from `evil` did not move the session there. */
	n = tell(pl, bl->pub, &a, "ok", T0 + 3, bad);
	hears(bl, bad, n, "ok", T0 + 3);
	blink_free(bl);
	nb_plink_free(pl);
}

static void test_replay_and_reflection(void **state)
{
	struct nb_plink *pl = plink_make(16, 10000);
	struct nb_blink *bl = blink_make(1, 1, NULL);
	struct nb_addr a = peer_addr(4001), b = broker_addr();
	uint8_t f1[NB_SEAL_MAX_DATAGRAM], f2[NB_SEAL_MAX_DATAGRAM], s[NB_SEAL_MAX_DATAGRAM], out[64];
	const uint8_t *key = NULL;
	struct nb_plink_stats st;
	size_t n1, n2, ns;

	(void)state;
	shake(pl, bl, &a, T0);
	assert_int_equal(nb_blink_send(bl, (const uint8_t *)"one", 3, T0), 0);
	assert_int_equal(nb_blink_send(bl, (const uint8_t *)"two", 3, T0), 0);
	n1 = next_frame(bl, T0, f1);
	n2 = next_frame(bl, T0, f2);
	/* Out of order is fine; twice is not. */
	assert_int_equal(nb_plink_open(pl, f2, n2, &a, T0 + 1, out, sizeof(out), &key), 3);
	assert_int_equal(nb_plink_open(pl, f1, n1, &a, T0 + 2, out, sizeof(out), &key), 3);
	assert_memory_equal(out, "one", 3);
	assert_int_equal(nb_plink_open(pl, f1, n1, &a, T0 + 3, out, sizeof(out), &key), NB_SEAL_E_REPLAY);
	assert_int_equal(nb_plink_open(pl, f2, n2, &a, T0 + 3, out, sizeof(out), &key), NB_SEAL_E_REPLAY);
	/* Reflection: what the broker sealed, sent back to it. */
	ns = tell(pl, bl->pub, &a, "reply", T0 + 4, s);
	assert_true(nb_plink_open(pl, s, ns, &a, T0 + 5, out, sizeof(out), &key) < 0);
	/* ...and to the blink, its own frame. */
	assert_true(nb_blink_input(bl, f1, n1, &b, T0 + 5, out, sizeof(out)) < 0);
	assert_false(nb_blink_owns(bl, f1, n1));
	st = stats_of(pl);
	assert_int_equal(st.opened, 2);
	hears(bl, s, ns, "reply", T0 + 6);
	assert_true(nb_blink_input(bl, s, ns, &b, T0 + 7, out, sizeof(out)) == NB_SEAL_E_REPLAY);
	blink_free(bl);
	nb_plink_free(pl);
}

/* ---- the bounded table ---------------------------------------------------- */

#define TN 3

static void test_table_full(void **state)
{
	struct nb_plink *pl = plink_make(TN, 10000);
	struct nb_blink *bl[TN + 2];
	struct nb_addr addr[TN + 2];
	uint8_t init[NB_SEAL_MAX_DATAGRAM], resp[NB_SEAL_MAX_DATAGRAM], frame[NB_SEAL_MAX_DATAGRAM], out[64];
	const uint8_t *key = NULL;
	struct nb_plink_stats st;
	size_t n, ni;
	ssize_t r;

	(void)state;
	for (int i = 0; i < TN + 2; i++) {
		bl[i] = blink_make((uint8_t)(10 + i), (uint8_t)(10 + i), NULL);
		addr[i] = peer_addr(5000u + (unsigned)i);
	}
	/* N + 1 unconfirmed handshakes: the oldest is pushed out. */
	for (int i = 0; i < TN + 1; i++)
		shake(pl, bl[i], &addr[i], T0 + (uint64_t)i);
	st = stats_of(pl);
	assert_int_equal(st.sessions, TN);
	assert_int_equal(st.handshakes, TN + 1);
	assert_int_equal(st.evicted, 1);
	assert_int_equal(st.full, 0);
	/* The evicted one (bl[0]) is unknown; the others confirm. */
	assert_int_equal(nb_blink_send(bl[0], (const uint8_t *)"me?", 3, T0 + 10), 0);
	n = next_frame(bl[0], T0 + 10, frame);
	assert_int_equal(nb_plink_open(pl, frame, n, &addr[0], T0 + 10, out, sizeof(out), &key), NB_PLINK_E_UNKNOWN);
	for (int i = 1; i < TN + 1; i++)
		say(pl, bl[i], &addr[i], "here", T0 + 11);
	st = stats_of(pl);
	assert_int_equal(st.confirmed, TN);
	assert_int_equal(st.live_keys, TN);
	/* Every session confirmed: a new handshake is refused. */
	ni = init_of(bl[TN + 1], T0 + 20, init);
	r = nb_plink_handshake(pl, init, ni, &addr[TN + 1], T0 + 20, resp, sizeof(resp));
	assert_int_equal(r, NB_PLINK_E_FULL);
	st = stats_of(pl);
	assert_int_equal(st.full, 1);
	assert_int_equal(st.sessions, TN);
	assert_int_equal(st.evicted, 1);
	/* The confirmed ones are untouched. */
	for (int i = 1; i < TN + 1; i++) {
		n = tell(pl, bl[i]->pub, &addr[i], "still", T0 + 21, frame);
		hears(bl[i], frame, n, "still", T0 + 21);
	}
	/* One idles out: room again. */
	say(pl, bl[2], &addr[2], "keep", T0 + 5000);
	say(pl, bl[3], &addr[3], "keep", T0 + 5000);
	assert_int_equal(nb_plink_expire(pl, T0 + 11 + 10000, 100), 1);
	r = nb_plink_handshake(pl, init, ni, &addr[TN + 1], T0 + 11 + 10000, resp, sizeof(resp));
	assert_int_equal(r, NB_NOISE_RESP_MIN);
	for (int i = 0; i < TN + 2; i++)
		blink_free(bl[i]);
	nb_plink_free(pl);
}

/* ---- expiry --------------------------------------------------------------- */

static void test_expire_idle(void **state)
{
	struct nb_plink *pl = plink_make(16, 5000);
	struct nb_blink *p1 = blink_make(1, 1, NULL), *p2 = blink_make(2, 2, NULL);
	struct nb_addr a1 = peer_addr(4001), a2 = peer_addr(4002);
	struct nb_plink_stats st;
	uint8_t frame[NB_SEAL_MAX_DATAGRAM];

	(void)state;
	assert_int_equal(nb_plink_next_deadline(pl), UINT64_MAX);
	assert_int_equal(nb_plink_expire(pl, UINT64_MAX / 2, 100), 0);
	shake(pl, p1, &a1, 1000);             /* unconfirmed */
	assert_int_equal(nb_plink_next_deadline(pl), 6000);
	shake(pl, p2, &a2, 2000);
	say(pl, p2, &a2, "x", 3000);          /* confirmed, heard at 3000 */
	assert_int_equal(nb_plink_next_deadline(pl), 6000);
	assert_int_equal(nb_plink_expire(pl, 5999, 100), 0);
	assert_int_equal(nb_plink_expire(pl, 6000, 100), 1);
	st = stats_of(pl);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.sessions, 1);
	assert_int_equal(nb_plink_next_deadline(pl), 8000);
	say(pl, p2, &a2, "y", 7000);          /* heard again: later */
	assert_int_equal(nb_plink_next_deadline(pl), 12000);
	assert_int_equal(nb_plink_expire(pl, 11999, 100), 0);
	assert_int_equal(nb_plink_expire(pl, 12000, 0), 0); /* budget */
	assert_int_equal(nb_plink_expire(pl, 12000, 100), 1);
	st = stats_of(pl);
	assert_int_equal(st.sessions, 0);
	assert_int_equal(st.live_keys, 0);
	assert_int_equal(st.expired, 2);
	assert_int_equal(nb_plink_next_deadline(pl), UINT64_MAX);
	assert_int_equal(nb_plink_seal(pl, p2->pub, &a2, (const uint8_t *)"z", 1, frame, sizeof(frame), 12001),
			 NB_PLINK_E_NOKEY);
	blink_free(p1);
	blink_free(p2);
	nb_plink_free(pl);
}

/* Sessions expire in the order they were last heard, not confirmed. */
static void test_expire_order(void **state)
{
	struct nb_plink *pl = plink_make(16, 5000);
	struct nb_blink *p1 = blink_make(1, 1, NULL), *p2 = blink_make(2, 2, NULL);
	struct nb_addr a1 = peer_addr(4001), a2 = peer_addr(4002);
	uint8_t frame[NB_SEAL_MAX_DATAGRAM];

	(void)state;
	shake(pl, p1, &a1, 1000);
	say(pl, p1, &a1, "a", 1000);
	shake(pl, p2, &a2, 2000);
	say(pl, p2, &a2, "b", 2000);
	say(pl, p1, &a1, "c", 4000); /* p1 now heard after p2 */
	assert_int_equal(nb_plink_next_deadline(pl), 7000);
	assert_int_equal(nb_plink_expire(pl, 6999, 100), 0);
	assert_int_equal(nb_plink_expire(pl, 7000, 100), 1);
	assert_int_equal(nb_plink_seal(pl, p2->pub, &a2, (const uint8_t *)"z", 1, frame, sizeof(frame), 7000),
			 NB_PLINK_E_NOKEY);
	(void)tell(pl, p1->pub, &a1, "alive", 7000, frame);
	assert_int_equal(nb_plink_next_deadline(pl), 9000);
	blink_free(p1);
	blink_free(p2);
	nb_plink_free(pl);
}

static void test_expire_budget(void **state)
{
	struct nb_plink *pl = plink_make(16, 5000);
	struct nb_blink *p[3];
	struct nb_addr a[3];

	(void)state;
	for (int i = 0; i < 3; i++) {
		p[i] = blink_make((uint8_t)(20 + i), (uint8_t)i, NULL);
		a[i] = peer_addr(4100u + (unsigned)i);
		shake(pl, p[i], &a[i], 1000 + (uint64_t)i);
	}
	assert_int_equal(nb_plink_expire(pl, 10000, 2), 2);
	assert_int_equal(nb_plink_next_deadline(pl), 6002);
	assert_int_equal(nb_plink_expire(pl, 10000, 2), 1);
	for (int i = 0; i < 3; i++)
		blink_free(p[i]);
	nb_plink_free(pl);
}

/* Keys die NB_SEAL_REJECT_AFTER_TIME_MS after the handshake, however busy
 * the session, confirmed or not. */
static void test_expire_dead_keys(void **state)
{
	struct nb_plink *pl = plink_make(16, NB_PLINK_DEFAULT_IDLE_MS);
	struct nb_blink *p1 = blink_make(1, 1, NULL), *p2 = blink_make(2, 2, NULL);
	struct nb_addr a1 = peer_addr(4001), a2 = peer_addr(4002);
	struct nb_plink_stats st;

	(void)state;
	assert_true(NB_PLINK_DEFAULT_IDLE_MS > NB_SEAL_REJECT_AFTER_TIME_MS);
	shake(pl, p1, &a1, 1000);
	say(pl, p1, &a1, "a", 1000);
	say(pl, p1, &a1, "b", 110000);
	assert_int_equal(nb_plink_next_deadline(pl), 1000 + NB_SEAL_REJECT_AFTER_TIME_MS);
	/* An unconfirmed one (its keys die just the same). */
	shake(pl, p2, &a2, 2000);
	assert_int_equal(nb_plink_next_deadline(pl), 1000 + NB_SEAL_REJECT_AFTER_TIME_MS);
	assert_int_equal(nb_plink_expire(pl, 1000 + NB_SEAL_REJECT_AFTER_TIME_MS - 1, 100), 0);
	assert_int_equal(nb_plink_expire(pl, 1000 + NB_SEAL_REJECT_AFTER_TIME_MS, 100), 1);
	st = stats_of(pl);
	assert_int_equal(st.live_keys, 0);
	assert_int_equal(st.sessions, 1);
	/* What remains dies with its keys too, and the deadline says so. */
	assert_int_equal(nb_plink_next_deadline(pl), 2000 + NB_SEAL_REJECT_AFTER_TIME_MS);
	assert_int_equal(nb_plink_expire(pl, 2000 + NB_SEAL_REJECT_AFTER_TIME_MS - 1, 100), 0);
	assert_int_equal(nb_plink_expire(pl, 2000 + NB_SEAL_REJECT_AFTER_TIME_MS, 100), 1);
	assert_int_equal(nb_plink_next_deadline(pl), UINT64_MAX);
	blink_free(p1);
	blink_free(p2);
	nb_plink_free(pl);
}

/* ---- configuration -------------------------------------------------------- */

static void test_config(void **state)
{
	struct nb_plink_config cfg;
	struct nb_plink *pl = (struct nb_plink *)&cfg; /* a sentinel: untouched on failure */
	struct nb_plink_stats st;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	key_of(0xB0, cfg.priv, broker_pub);
	cfg.max_sessions = 0;
	cfg.idle_ms = 1000;
	assert_int_equal(nb_plink_new(&cfg, &pl), NB_PLINK_E_INVAL);
	cfg.max_sessions = NB_PLINK_MAX_MAX + 1;
	assert_int_equal(nb_plink_new(&cfg, &pl), NB_PLINK_E_INVAL);
	cfg.max_sessions = 1;
	cfg.idle_ms = 999;
	assert_int_equal(nb_plink_new(&cfg, &pl), NB_PLINK_E_INVAL);
	cfg.idle_ms = 0;
	assert_int_equal(nb_plink_new(&cfg, &pl), NB_PLINK_E_INVAL);
	assert_int_equal(nb_plink_new(NULL, &pl), NB_PLINK_E_INVAL);
	assert_int_equal(nb_plink_new(&cfg, NULL), NB_PLINK_E_INVAL);
	assert_ptr_equal(pl, (struct nb_plink *)&cfg);
	cfg.idle_ms = 1000;
	assert_int_equal(nb_plink_new(&cfg, &pl), 0);
	st = stats_of(pl);
	assert_int_equal(st.sessions, 0);
	assert_int_equal(st.handshakes, 0);
	nb_plink_free(pl);
	nb_plink_free(NULL);
	assert_int_equal(nb_plink_next_deadline(NULL), UINT64_MAX);
	assert_int_equal(nb_plink_expire(NULL, 0, 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_response),
		cmocka_unit_test(test_retransmitted_init),
		cmocka_unit_test(test_replayed_init_after_confirm),
		cmocka_unit_test(test_wrong_broker_key),
		cmocka_unit_test(test_confirm_then_seal),
		cmocka_unit_test(test_one_key_two_addresses),
		cmocka_unit_test(test_roaming),
		cmocka_unit_test(test_rekey_replaces),
		cmocka_unit_test(test_unknown_index_hint),
		cmocka_unit_test(test_tamper_and_truncate),
		cmocka_unit_test(test_replay_and_reflection),
		cmocka_unit_test(test_table_full),
		cmocka_unit_test(test_expire_idle),
		cmocka_unit_test(test_expire_order),
		cmocka_unit_test(test_expire_budget),
		cmocka_unit_test(test_expire_dead_keys),
		cmocka_unit_test(test_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
