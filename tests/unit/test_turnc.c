/* tests/unit/test_turnc.c - the TURN client state machine against a fake
 * server written here with the STUN encoder and its own long-term key
 * (MD5 computed here, not with nb_turn_long_term_key()): the 401 dance,
 * retransmission and give-up, 438, 401 twice, 486, refresh timing,
 * permissions and channels, Send indication vs ChannelData (padded over
 * TCP), data in, and bad input (wrong integrity, unknown transactions,
 * every byte flipped, every prefix) that must change nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "peer/turnc.h"

#define USER "1700000000:alice"
#define PASS "s3cr3t-password"
#define REALM "natbroker"
#define NONCE1 "nonce-one-0123456789"
#define NONCE2 "nonce-two-abcdefghij"
#define T0 1000000u

static const uint8_t SEED[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static struct nb_addr addr(const char *s)
{
	struct nb_addr a;
	assert_int_equal(nb_addr_parse(s, false, &a), 0);
	return a;
}

static void test_key(const char *realm, uint8_t key[16])
{
	char in[256];
	unsigned int n = 0;
	int len = snprintf(in, sizeof(in), "%s:%s:%s", USER, realm, PASS);
	assert_int_equal(EVP_Digest(in, (size_t)len, key, &n, EVP_md5(), NULL), 1);
	assert_int_equal(n, 16);
}

static struct nb_turnc_config config(bool tcp)
{
	struct nb_turnc_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.server = addr("192.0.2.1:3478");
	snprintf(cfg.username, sizeof(cfg.username), "%s", USER);
	snprintf(cfg.password, sizeof(cfg.password), "%s", PASS);
	cfg.tcp = tcp;
	return cfg;
}

/* A request the client sent, copied out of the client (views point into b). */
struct req {
	uint8_t b[NB_TURNC_OUT_MAX];
	size_t len;
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
};

/* Poll once at now: must give a request of `method`; authenticated or not. */
static void poll_req(struct nb_turnc *c, uint64_t now, uint16_t method, bool auth, const char *nonce,
		     struct req *r)
{
	struct nb_turnc_tx tx;
	uint8_t key[16];

	assert_int_equal(nb_turnc_poll(c, now, &tx), 1);
	assert_true(nb_addr_equal(&tx.to, &c->cfg.server));
	assert_true(tx.len <= sizeof(r->b));
	memcpy(r->b, tx.bytes, tx.len);
	r->len = tx.len;
	assert_int_equal(nb_stun_decode(&r->m, r->b, r->len), (ssize_t)r->len);
	assert_int_equal(r->m.method, method);
	assert_int_equal(r->m.cls, NB_STUN_CLASS_REQUEST);
	assert_false(r->m.classic);
	assert_true(r->m.present & NB_STUN_HAS_FINGERPRINT);
	assert_int_equal(nb_turn_attrs_parse(&r->m, r->b, r->len, &r->ta), 0);
	if (auth) {
		test_key(REALM, key);
		assert_true(r->m.present & NB_STUN_HAS_INTEGRITY);
		assert_int_equal(nb_stun_check_integrity(&r->m, r->b, r->len, key, 16), 0);
		assert_int_equal(r->m.username_len, strlen(USER));
		assert_memory_equal(r->m.username, USER, strlen(USER));
		assert_int_equal(r->ta.realm_len, strlen(REALM));
		assert_memory_equal(r->ta.realm, REALM, strlen(REALM));
		assert_int_equal(r->ta.nonce_len, strlen(nonce));
		assert_memory_equal(r->ta.nonce, nonce, strlen(nonce));
		key[0] ^= 1;
		assert_int_not_equal(nb_stun_check_integrity(&r->m, r->b, r->len, key, 16), 0);
	} else {
		assert_false(r->m.present & NB_STUN_HAS_INTEGRITY);
		assert_false(r->m.present & NB_STUN_HAS_USERNAME);
	}
}

/* A response from the fake server. */
struct rspec {
	uint16_t method, cls, code;
	const char *realm, *nonce;
	const struct nb_addr *relayed, *mapped, *peer;
	bool lifetime_set;
	uint32_t lifetime;
	bool mi;           /* MESSAGE-INTEGRITY with the right key */
	bool wrong_key;    /* ... or with a wrong one */
	const uint8_t *data;
	size_t data_len;
};

static size_t build(const struct rspec *s, const uint8_t *tid, uint8_t *buf, size_t cap)
{
	struct nb_stun_enc e;
	uint8_t key[16];

	assert_int_equal(nb_stun_enc_init(&e, buf, cap, (uint16_t)(s->method | s->cls), tid, false), 0);
	if (s->code)
		assert_int_equal(nb_stun_enc_error(&e, s->code, "test says no"), 0);
	if (s->realm)
		assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_REALM, s->realm, strlen(s->realm)), 0);
	if (s->nonce)
		assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_NONCE, s->nonce, strlen(s->nonce)), 0);
	if (s->relayed)
		assert_int_equal(nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_RELAYED_ADDRESS, s->relayed), 0);
	if (s->mapped)
		assert_int_equal(nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, s->mapped), 0);
	if (s->peer)
		assert_int_equal(nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_PEER_ADDRESS, s->peer), 0);
	if (s->data)
		assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_DATA, s->data, s->data_len), 0);
	if (s->lifetime_set)
		assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, s->lifetime), 0);
	if (s->mi || s->wrong_key) {
		test_key(REALM, key);
		if (s->wrong_key)
			key[15] ^= 0x80;
		assert_int_equal(nb_stun_enc_integrity(&e, key, 16), 0);
	}
	assert_int_equal(nb_stun_enc_fingerprint(&e), 0);
	return nb_stun_enc_len(&e);
}

static int feed(struct nb_turnc *c, const struct rspec *s, const uint8_t *tid, uint64_t now,
		struct nb_turnc_rx *rx)
{
	uint8_t buf[1500];
	size_t n = build(s, tid, buf, sizeof(buf));
	return nb_turnc_input(c, buf, n, now, rx);
}

static struct nb_addr RELAYED, MAPPED, PEER, PEER2;

static int setup(void **state)
{
	(void)state;
	RELAYED = addr("192.0.2.1:50000");
	MAPPED = addr("198.51.100.7:40000");
	PEER = addr("203.0.113.5:7000");
	PEER2 = addr("203.0.113.6:7001");
	return 0;
}

static const struct rspec R401 = {.method = NB_TURN_METHOD_ALLOCATE, .cls = NB_STUN_CLASS_ERROR,
				   .code = 401, .realm = REALM, .nonce = NONCE1};

/* init, Allocate, 401, authenticated Allocate: returns that request. */
static void to_auth(struct nb_turnc *c, bool tcp, struct req *r)
{
	struct nb_turnc_config cfg = config(tcp);
	struct nb_turnc_rx rx;

	nb_turnc_init(c, &cfg, SEED, T0);
	assert_int_equal(nb_turnc_state(c), NB_TURNC_ALLOCATING);
	poll_req(c, T0, NB_TURN_METHOD_ALLOCATE, false, NULL, r);
	assert_int_equal(feed(c, &R401, r->m.tid, T0 + 10, &rx), 0);
	assert_int_equal(rx.kind, NB_TURNC_RX_CONSUMED);
	poll_req(c, T0 + 10, NB_TURN_METHOD_ALLOCATE, true, NONCE1, r);
}

static size_t alloc_ok(const uint8_t *tid, uint32_t life, uint8_t *buf, size_t cap)
{
	struct rspec s = {.method = NB_TURN_METHOD_ALLOCATE, .cls = NB_STUN_CLASS_SUCCESS,
			  .relayed = &RELAYED, .mapped = &MAPPED, .lifetime_set = true,
			  .lifetime = life, .mi = true};
	return build(&s, tid, buf, cap);
}

static void allocated(struct nb_turnc *c, bool tcp)
{
	struct req r;
	struct nb_turnc_rx rx;
	struct nb_turnc_tx tx;
	uint8_t buf[512];
	size_t n;

	to_auth(c, tcp, &r);
	n = alloc_ok(r.m.tid, 600, buf, sizeof(buf));
	assert_int_equal(nb_turnc_input(c, buf, n, T0 + 20, &rx), 0);
	assert_int_equal(nb_turnc_state(c), NB_TURNC_ALLOCATED);
	assert_int_equal(nb_turnc_poll(c, T0 + 20, &tx), 0);
}

/* ---- Tests ------------------------------------------------------------------ */

/* An IPv6 relayed address: REQUESTED-ADDRESS-FAMILY IPv6 in both Allocates
 * (none for IPv4, the default); a success of the other family fails. */
static void test_family(void **state)
{
	static struct nb_turnc c;
	struct nb_turnc_config cfg = config(false);
	struct nb_addr r6 = addr("[2001:db8::10]:50000");
	struct nb_turnc_rx rx;
	struct req r;
	uint8_t buf[512];
	size_t n;

	(void)state;
	/* IPv4 (the default): no REQUESTED-ADDRESS-FAMILY. */
	to_auth(&c, false, &r);
	assert_false(r.ta.present & NB_TURN_HAS_REQUESTED_FAMILY);
	/* ... and an IPv6 relayed address for it fails. */
	{
		struct rspec s = {.method = NB_TURN_METHOD_ALLOCATE, .cls = NB_STUN_CLASS_SUCCESS,
				  .relayed = &r6, .mapped = &MAPPED, .lifetime_set = true,
				  .lifetime = 600, .mi = true};
		n = build(&s, r.m.tid, buf, sizeof(buf));
		assert_int_equal(nb_turnc_input(&c, buf, n, T0 + 20, &rx), 0);
		assert_int_equal(nb_turnc_state(&c), NB_TURNC_FAILED);
		assert_non_null(strstr(nb_turnc_reason(&c), "IPv6 address"));
		assert_null(nb_turnc_relayed(&c));
	}

	/* IPv6: the attribute in the first and the authenticated Allocate. */
	cfg.family = NB_AF_INET6;
	nb_turnc_init(&c, &cfg, SEED, T0);
	poll_req(&c, T0, NB_TURN_METHOD_ALLOCATE, false, NULL, &r);
	assert_true(r.ta.present & NB_TURN_HAS_REQUESTED_FAMILY);
	assert_int_equal(r.ta.requested_family, NB_TURN_FAMILY_IPV6);
	assert_int_equal(feed(&c, &R401, r.m.tid, T0 + 10, &rx), 0);
	poll_req(&c, T0 + 10, NB_TURN_METHOD_ALLOCATE, true, NONCE1, &r);
	assert_true(r.ta.present & NB_TURN_HAS_REQUESTED_FAMILY);
	assert_int_equal(r.ta.requested_family, NB_TURN_FAMILY_IPV6);
	/* An IPv4 relayed address for it fails... */
	{
		struct nb_turnc c2 = c;
		n = alloc_ok(r.m.tid, 600, buf, sizeof(buf));
		assert_int_equal(nb_turnc_input(&c2, buf, n, T0 + 20, &rx), 0);
		assert_int_equal(nb_turnc_state(&c2), NB_TURNC_FAILED);
		assert_non_null(strstr(nb_turnc_reason(&c2), "IPv4 address"));
	}
	/* ... 440 fails with the code... */
	{
		struct nb_turnc c2 = c;
		struct rspec s = {.method = NB_TURN_METHOD_ALLOCATE, .cls = NB_STUN_CLASS_ERROR,
				  .code = 440, .mi = true};
		n = build(&s, r.m.tid, buf, sizeof(buf));
		assert_int_equal(nb_turnc_input(&c2, buf, n, T0 + 20, &rx), 0);
		assert_int_equal(nb_turnc_state(&c2), NB_TURNC_FAILED);
		assert_non_null(strstr(nb_turnc_reason(&c2), "440"));
	}
	/* ... and an IPv6 one is ours; peers of IPv4 are refused. */
	{
		struct rspec s = {.method = NB_TURN_METHOD_ALLOCATE, .cls = NB_STUN_CLASS_SUCCESS,
				  .relayed = &r6, .mapped = &MAPPED, .lifetime_set = true,
				  .lifetime = 600, .mi = true};
		struct nb_addr p6 = addr("[2001:db8::20]:7000");
		n = build(&s, r.m.tid, buf, sizeof(buf));
		assert_int_equal(nb_turnc_input(&c, buf, n, T0 + 20, &rx), 0);
		assert_int_equal(nb_turnc_state(&c), NB_TURNC_ALLOCATED);
		assert_true(nb_addr_equal(nb_turnc_relayed(&c), &r6));
		assert_int_equal(nb_turnc_permit(&c, &PEER, T0 + 30), -EAFNOSUPPORT);
		assert_int_equal(nb_turnc_permit(&c, &p6, T0 + 30), 0);
	}
}


static void test_allocate_flow(void **state)
{
	static struct nb_turnc c;
	struct nb_turnc_config cfg = config(false);
	struct nb_turnc_rx rx;
	struct nb_turnc_tx tx;
	struct req r, r2;
	uint8_t first_tid[12], buf[512];
	size_t n;

	(void)state;
	nb_turnc_init(&c, &cfg, SEED, T0);
	assert_null(nb_turnc_relayed(&c));
	assert_true(nb_turnc_deadline(&c) <= T0);
	/* The first Allocate: no credentials, UDP, the default lifetime. */
	poll_req(&c, T0, NB_TURN_METHOD_ALLOCATE, false, NULL, &r);
	assert_true(r.ta.present & NB_TURN_HAS_REQUESTED_TRANSPORT);
	assert_int_equal(r.ta.requested_transport, NB_TURN_TRANSPORT_UDP);
	assert_true(r.ta.present & NB_TURN_HAS_LIFETIME);
	assert_int_equal(r.ta.lifetime, 600);
	memcpy(first_tid, r.m.tid, 12);
	assert_int_equal(nb_turnc_poll(&c, T0, &tx), 0);
	assert_int_equal(nb_turnc_deadline(&c), T0 + 250);

	/* 401 with REALM and NONCE: an authenticated Allocate, new tid. */
	assert_int_equal(feed(&c, &R401, first_tid, T0 + 10, &rx), 0);
	assert_int_equal(rx.kind, NB_TURNC_RX_CONSUMED);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_ALLOCATING);
	poll_req(&c, T0 + 10, NB_TURN_METHOD_ALLOCATE, true, NONCE1, &r2);
	assert_memory_not_equal(first_tid, r2.m.tid, 12);
	assert_int_equal(r2.ta.requested_transport, NB_TURN_TRANSPORT_UDP);
	/* The old transaction is over. */
	assert_int_equal(feed(&c, &R401, first_tid, T0 + 11, &rx), NB_TURNC_DROP_UNKNOWN_TID);

	n = alloc_ok(r2.m.tid, 600, buf, sizeof(buf));
	assert_int_equal(nb_turnc_input(&c, buf, n, T0 + 20, &rx), 0);
	assert_int_equal(rx.kind, NB_TURNC_RX_CONSUMED);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_ALLOCATED);
	assert_non_null(nb_turnc_relayed(&c));
	assert_true(nb_addr_equal(nb_turnc_relayed(&c), &RELAYED));
	assert_non_null(nb_turnc_mapped(&c));
	assert_true(nb_addr_equal(nb_turnc_mapped(&c), &MAPPED));
	assert_int_equal(nb_turnc_lifetime(&c), 600);
	assert_int_equal(nb_turnc_poll(&c, T0 + 20, &tx), 0);
	/* The success again (a duplicate): its transaction is over. */
	assert_int_equal(nb_turnc_input(&c, buf, n, T0 + 21, &rx), NB_TURNC_DROP_UNKNOWN_TID);
	/* Next: the Refresh, 60 s before the 600 s run out. */
	assert_int_equal(nb_turnc_deadline(&c), T0 + 20 + 540000);

	/* Close: a Refresh with LIFETIME 0, then nothing. */
	assert_int_equal(nb_turnc_close(&c, T0 + 30, &tx), 1);
	memcpy(r.b, tx.bytes, tx.len);
	assert_int_equal(nb_stun_decode(&r.m, r.b, tx.len), (ssize_t)tx.len);
	assert_int_equal(r.m.method, NB_TURN_METHOD_REFRESH);
	assert_int_equal(nb_turn_attrs_parse(&r.m, r.b, tx.len, &r.ta), 0);
	assert_int_equal(r.ta.lifetime, 0);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_CLOSED);
	assert_int_equal(nb_turnc_poll(&c, T0 + 10000000, &tx), 0);
	assert_int_equal(nb_turnc_deadline(&c), UINT64_MAX);
	assert_int_equal(nb_turnc_close(&c, T0 + 31, &tx), 0);
}

static void test_retransmission(void **state)
{
	static struct nb_turnc c;
	struct nb_turnc_config cfg = config(false);
	struct nb_turnc_tx tx;
	static const uint64_t want[7] = {0, 250, 750, 1750, 3750, 7750, 15750};
	uint8_t first[NB_TURNC_OUT_MAX];
	size_t first_len = 0;
	uint64_t at[16];
	size_t k = 0;

	(void)state;
	/* A long overall timeout: the 7 sends and Rm x RTO after the last. */
	cfg.timeout_ms = 60000;
	nb_turnc_init(&c, &cfg, SEED, T0);
	for (uint64_t now = T0; now <= T0 + 30000; now++) {
		while (nb_turnc_poll(&c, now, &tx) == 1) {
			assert_true(k < 16);
			if (k == 0) {
				memcpy(first, tx.bytes, tx.len);
				first_len = tx.len;
			} else {
				/* A retransmission is the same message. */
				assert_int_equal(tx.len, first_len);
				assert_memory_equal(tx.bytes, first, first_len);
			}
			at[k++] = now - T0;
		}
		if (nb_turnc_state(&c) == NB_TURNC_FAILED) {
			assert_int_equal(now - T0, 15750 + 16 * 250);
			break;
		}
		/* The deadline never lies: nothing happens before it. */
		if (now + 1 < nb_turnc_deadline(&c))
			now = nb_turnc_deadline(&c) - 1;
	}
	assert_int_equal(k, 7);
	for (size_t i = 0; i < 7; i++)
		assert_int_equal(at[i], want[i]);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_FAILED);
	assert_string_equal(nb_turnc_reason(&c), "no answer from the relay");
	assert_int_equal(nb_turnc_deadline(&c), UINT64_MAX);

	/* The default overall timeout (8 s) cuts in after 6 sends. */
	cfg.timeout_ms = 0;
	nb_turnc_init(&c, &cfg, SEED, T0);
	k = 0;
	for (uint64_t now = T0; now <= T0 + 8000; now++)
		while (nb_turnc_poll(&c, now, &tx) == 1)
			k++;
	assert_int_equal(k, 6);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_FAILED);

	/* TCP: one send, then the timeout. */
	cfg = config(true);
	cfg.timeout_ms = 5000;
	nb_turnc_init(&c, &cfg, SEED, T0);
	k = 0;
	for (uint64_t now = T0; now < T0 + 5000; now += 10) {
		while (nb_turnc_poll(&c, now, &tx) == 1)
			k++;
		assert_int_equal(nb_turnc_state(&c), NB_TURNC_ALLOCATING);
	}
	assert_int_equal(k, 1);
	assert_int_equal(nb_turnc_deadline(&c), T0 + 5000);
	assert_int_equal(nb_turnc_poll(&c, T0 + 5000, &tx), 0);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_FAILED);
}

static void test_stale_nonce(void **state)
{
	static struct nb_turnc c;
	struct req r, r2;
	struct nb_turnc_rx rx;
	uint8_t buf[512];
	size_t n;
	struct rspec s438 = {.method = NB_TURN_METHOD_ALLOCATE, .cls = NB_STUN_CLASS_ERROR,
			     .code = 438, .realm = REALM, .nonce = NONCE2};

	(void)state;
	to_auth(&c, false, &r);
	assert_int_equal(feed(&c, &s438, r.m.tid, T0 + 15, &rx), 0);
	poll_req(&c, T0 + 15, NB_TURN_METHOD_ALLOCATE, true, NONCE2, &r2);
	assert_memory_not_equal(r.m.tid, r2.m.tid, 12);
	n = alloc_ok(r2.m.tid, 600, buf, sizeof(buf));
	assert_int_equal(nb_turnc_input(&c, buf, n, T0 + 20, &rx), 0);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_ALLOCATED);

	/* 438 again and again: followed NB_TURNC_MAX_STALE times, then FAILED. */
	to_auth(&c, false, &r);
	for (int i = 0; i < NB_TURNC_MAX_STALE; i++) {
		s438.nonce = (i % 2) ? NONCE1 : NONCE2;
		assert_int_equal(feed(&c, &s438, r.m.tid, T0 + 15, &rx), 0);
		assert_int_equal(nb_turnc_state(&c), NB_TURNC_ALLOCATING);
		poll_req(&c, T0 + 15, NB_TURN_METHOD_ALLOCATE, true, s438.nonce, &r);
	}
	assert_int_equal(feed(&c, &s438, r.m.tid, T0 + 16, &rx), 0);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_FAILED);
	assert_string_equal(nb_turnc_reason(&c), "stale nonce again and again (438)");
}

static void test_errors(void **state)
{
	static struct nb_turnc c;
	struct req r;
	struct nb_turnc_rx rx;
	struct nb_turnc_tx tx;
	struct rspec s = {.method = NB_TURN_METHOD_ALLOCATE, .cls = NB_STUN_CLASS_ERROR, .code = 401,
			  .realm = REALM, .nonce = NONCE2};
	struct nb_turnc_config cfg;

	(void)state;
	/* 401 to the authenticated Allocate: wrong credentials. */
	to_auth(&c, false, &r);
	assert_int_equal(feed(&c, &s, r.m.tid, T0 + 15, &rx), 0);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_FAILED);
	assert_string_equal(nb_turnc_reason(&c), "wrong credentials (401)");
	assert_int_equal(nb_turnc_poll(&c, T0 + 100000, &tx), 0);
	assert_int_equal(nb_turnc_permit(&c, &PEER, T0), -ENOTCONN);

	/* 486, authenticated. */
	to_auth(&c, false, &r);
	s.code = 486;
	s.realm = s.nonce = NULL;
	s.mi = true;
	assert_int_equal(feed(&c, &s, r.m.tid, T0 + 15, &rx), 0);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_FAILED);
	assert_string_equal(nb_turnc_reason(&c), "allocation quota reached (486)");

	/* 486 without MESSAGE-INTEGRITY once we have a key: dropped. */
	to_auth(&c, false, &r);
	s.mi = false;
	assert_int_equal(feed(&c, &s, r.m.tid, T0 + 15, &rx), NB_TURNC_DROP_INTEGRITY);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_ALLOCATING);

	/* Another code: said with the server's phrase. */
	s.code = 442;
	s.mi = true;
	assert_int_equal(feed(&c, &s, r.m.tid, T0 + 15, &rx), 0);
	assert_string_equal(nb_turnc_reason(&c), "the relay refused the allocation (442 test says no)");

	/* No credentials configured, and the server wants some. */
	cfg = config(false);
	cfg.username[0] = '\0';
	nb_turnc_init(&c, &cfg, SEED, T0);
	poll_req(&c, T0, NB_TURN_METHOD_ALLOCATE, false, NULL, &r);
	assert_int_equal(feed(&c, &R401, r.m.tid, T0 + 15, &rx), 0);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_FAILED);

	/* 401 without REALM/NONCE. */
	nb_turnc_init(&c, &(struct nb_turnc_config){0}, SEED, T0);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_FAILED); /* no server */
	cfg = config(false);
	nb_turnc_init(&c, &cfg, SEED, T0);
	poll_req(&c, T0, NB_TURN_METHOD_ALLOCATE, false, NULL, &r);
	s = (struct rspec){.method = NB_TURN_METHOD_ALLOCATE, .cls = NB_STUN_CLASS_ERROR, .code = 401};
	assert_int_equal(feed(&c, &s, r.m.tid, T0 + 15, &rx), 0);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_FAILED);
}

static void test_refresh(void **state)
{
	static struct nb_turnc c;
	struct req r;
	struct nb_turnc_rx rx;
	struct nb_turnc_tx tx;
	struct rspec ok = {.method = NB_TURN_METHOD_REFRESH, .cls = NB_STUN_CLASS_SUCCESS,
			   .lifetime_set = true, .lifetime = 300, .mi = true};
	uint64_t t;

	(void)state;
	allocated(&c, false);
	t = T0 + 20 + 540000; /* granted at T0 + 20, 600 s */
	assert_int_equal(nb_turnc_poll(&c, t - 1, &tx), 0);
	poll_req(&c, t, NB_TURN_METHOD_REFRESH, true, NONCE1, &r);
	assert_int_equal(r.ta.lifetime, 600);
	assert_int_equal(nb_turnc_deadline(&c), t + 250); /* its retransmission */
	/* 438 on the Refresh: again with the new nonce. */
	{
		struct rspec s438 = {.method = NB_TURN_METHOD_REFRESH, .cls = NB_STUN_CLASS_ERROR,
				     .code = 438, .nonce = NONCE2};
		assert_int_equal(feed(&c, &s438, r.m.tid, t + 5, &rx), 0);
		poll_req(&c, t + 5, NB_TURN_METHOD_REFRESH, true, NONCE2, &r);
	}
	/* Granted 300 s: next at 240 s. */
	assert_int_equal(feed(&c, &ok, r.m.tid, t + 10, &rx), 0);
	assert_int_equal(nb_turnc_lifetime(&c), 300);
	assert_int_equal(nb_turnc_deadline(&c), t + 10 + 240000);
	/* A short lifetime: refresh half way. */
	poll_req(&c, t + 10 + 240000, NB_TURN_METHOD_REFRESH, true, NONCE2, &r);
	ok.lifetime = 100;
	assert_int_equal(feed(&c, &ok, r.m.tid, t + 240020, &rx), 0);
	assert_int_equal(nb_turnc_deadline(&c), t + 240020 + 50000);

	/* A Refresh nobody answers: retried until the allocation expires. */
	t = t + 240020 + 50000;
	for (uint64_t now = t; now < t + 60000; now += 50)
		while (nb_turnc_poll(&c, now, &tx) == 1)
			;
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_FAILED);
	assert_string_equal(nb_turnc_reason(&c), "allocation expired: no answer to Refresh");

	/* 437 on a Refresh: the allocation is gone. */
	allocated(&c, false);
	t = T0 + 20 + 540000;
	poll_req(&c, t, NB_TURN_METHOD_REFRESH, true, NONCE1, &r);
	ok = (struct rspec){.method = NB_TURN_METHOD_REFRESH, .cls = NB_STUN_CLASS_ERROR, .code = 437,
			    .mi = true};
	assert_int_equal(feed(&c, &ok, r.m.tid, t + 10, &rx), 0);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_FAILED);
	assert_string_equal(nb_turnc_reason(&c), "allocation lost (437)");
}

/* Poll the CreatePermission and ChannelBind for a peer, in either order. */
static void poll_perm_chan(struct nb_turnc *c, uint64_t now, const struct nb_addr *peer,
			   struct req *perm, struct req *chan)
{
	struct nb_turnc_tx tx;
	bool got_perm = false, got_chan = false;

	for (int i = 0; i < 2; i++) {
		struct nb_stun_msg m;
		struct req *dst;
		uint16_t method;
		assert_int_equal(nb_turnc_poll(c, now, &tx), 1);
		assert_int_equal(nb_stun_decode(&m, tx.bytes, tx.len), (ssize_t)tx.len);
		method = m.method;
		dst = method == NB_TURN_METHOD_CREATE_PERMISSION ? perm : chan;
		memcpy(dst->b, tx.bytes, tx.len);
		dst->len = tx.len;
		assert_int_equal(nb_stun_decode(&dst->m, dst->b, dst->len), (ssize_t)dst->len);
		assert_int_equal(nb_turn_attrs_parse(&dst->m, dst->b, dst->len, &dst->ta), 0);
		assert_true(dst->m.present & NB_STUN_HAS_INTEGRITY);
		assert_int_equal(dst->ta.n_peers, 1);
		assert_true(nb_addr_equal(&dst->ta.peers[0], peer));
		if (method == NB_TURN_METHOD_CREATE_PERMISSION) {
			assert_false(got_perm);
			got_perm = true;
		} else {
			assert_int_equal(method, NB_TURN_METHOD_CHANNEL_BIND);
			assert_false(got_chan);
			got_chan = true;
		}
	}
	assert_true(got_perm && got_chan);
}

static void test_permission_channel(void **state)
{
	static struct nb_turnc c;
	struct req perm, chan;
	struct nb_turnc_rx rx;
	struct nb_turnc_tx tx;
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
	uint8_t out[256];
	const uint8_t payload[] = "hello peer";
	ssize_t n;
	struct rspec ok = {.cls = NB_STUN_CLASS_SUCCESS, .mi = true};
	uint64_t t = T0 + 100;

	(void)state;
	allocated(&c, false);
	assert_int_equal(nb_turnc_send(&c, &PEER, payload, sizeof(payload), out, sizeof(out)), -ENOENT);
	assert_int_equal(nb_turnc_permit(&c, &PEER, t), 0);
	assert_int_equal(nb_turnc_permit(&c, &PEER, t), 0); /* no-op */
	assert_int_equal(nb_turnc_channel(&c, &PEER), 0x4000);
	assert_true(nb_turnc_deadline(&c) <= t);
	poll_perm_chan(&c, t, &PEER, &perm, &chan);
	assert_int_equal(chan.ta.channel, 0x4000);
	assert_int_equal(nb_turnc_poll(&c, t, &tx), 0);
	assert_int_equal(nb_turnc_perm_state(&c, &PEER), NB_TURNC_GRANT_PENDING);
	/* Pending: nothing may be sent yet. */
	assert_int_equal(nb_turnc_send(&c, &PEER, payload, sizeof(payload), out, sizeof(out)), -EAGAIN);

	/* Permission granted: a Send indication. */
	ok.method = NB_TURN_METHOD_CREATE_PERMISSION;
	assert_int_equal(feed(&c, &ok, perm.m.tid, t + 10, &rx), 0);
	assert_int_equal(nb_turnc_perm_state(&c, &PEER), NB_TURNC_GRANT_OK);
	n = nb_turnc_send(&c, &PEER, payload, sizeof(payload), out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal(nb_stun_decode(&m, out, (size_t)n), n);
	assert_int_equal(m.method, NB_TURN_METHOD_SEND);
	assert_int_equal(m.cls, NB_STUN_CLASS_INDICATION);
	assert_int_equal(nb_turn_attrs_parse(&m, out, (size_t)n, &ta), 0);
	assert_true(nb_addr_equal(&ta.peers[0], &PEER));
	assert_int_equal(ta.data_len, sizeof(payload));
	assert_memory_equal(ta.data, payload, sizeof(payload));
	assert_int_equal(nb_turnc_send(&c, &PEER, payload, sizeof(payload), out, 20), -ENOSPC);
	/* Another port of the permitted IP (a peer-reflexive address, as a
	 * symmetric NAT gives): a Send indication to it under the IP's
	 * permission. Another IP: never permitted. */
	{
		struct nb_addr other_port = PEER, other_ip = PEER;
		other_port.port = (uint16_t)(PEER.port + 7);
		other_ip.ip[15] ^= 1;
		other_ip.ip[3] ^= 1;
		n = nb_turnc_send(&c, &other_port, payload, sizeof(payload), out, sizeof(out));
		assert_true(n > 0);
		assert_int_equal(nb_stun_decode(&m, out, (size_t)n), n);
		assert_int_equal(m.method, NB_TURN_METHOD_SEND);
		assert_int_equal(nb_turn_attrs_parse(&m, out, (size_t)n, &ta), 0);
		assert_true(nb_addr_equal(&ta.peers[0], &other_port));
		assert_int_equal(nb_turnc_send(&c, &other_ip, payload, sizeof(payload), out, sizeof(out)),
				 -ENOENT);
	}

	/* Channel bound: ChannelData, unpadded over UDP. */
	ok.method = NB_TURN_METHOD_CHANNEL_BIND;
	assert_int_equal(feed(&c, &ok, perm.m.tid, t + 11, &rx), NB_TURNC_DROP_UNKNOWN_TID);
	assert_int_equal(feed(&c, &ok, chan.m.tid, t + 11, &rx), 0);
	assert_int_equal(nb_turnc_chan_state(&c, &PEER), NB_TURNC_GRANT_OK);
	n = nb_turnc_send(&c, &PEER, payload, sizeof(payload), out, sizeof(out));
	assert_int_equal(n, 4 + (ssize_t)sizeof(payload));
	assert_int_equal(out[0], 0x40);
	assert_int_equal(out[1], 0x00);
	assert_int_equal(out[3], sizeof(payload));
	assert_memory_equal(out + 4, payload, sizeof(payload));

	/* Refreshes: the permission at 240 s, the channel at 480 s. */
	assert_int_equal(nb_turnc_poll(&c, t + 10 + 240000 - 1, &tx), 0);
	assert_int_equal(nb_turnc_poll(&c, t + 10 + 240000, &tx), 1);
	assert_int_equal(nb_stun_decode(&m, tx.bytes, tx.len), (ssize_t)tx.len);
	assert_int_equal(m.method, NB_TURN_METHOD_CREATE_PERMISSION);
	memcpy(perm.b, tx.bytes, tx.len);
	ok.method = NB_TURN_METHOD_CREATE_PERMISSION;
	assert_int_equal(feed(&c, &ok, m.tid, t + 240020, &rx), 0);
	assert_int_equal(nb_turnc_poll(&c, t + 11 + 480000 - 1, &tx), 0);
	assert_int_equal(nb_turnc_poll(&c, t + 11 + 480000, &tx), 1);
	assert_int_equal(nb_stun_decode(&m, tx.bytes, tx.len), (ssize_t)tx.len);
	assert_int_equal(m.method, NB_TURN_METHOD_CHANNEL_BIND);

	/* A refused permission: sends refused. */
	assert_int_equal(nb_turnc_permit(&c, &PEER2, t), 0);
	assert_int_equal(nb_turnc_channel(&c, &PEER2), 0x4001);
	poll_perm_chan(&c, t + 480012, &PEER2, &perm, &chan);
	{
		struct rspec no = {.method = NB_TURN_METHOD_CREATE_PERMISSION,
				   .cls = NB_STUN_CLASS_ERROR, .code = 403, .mi = true};
		assert_int_equal(feed(&c, &no, perm.m.tid, t + 480013, &rx), 0);
	}
	assert_int_equal(nb_turnc_perm_state(&c, &PEER2), NB_TURNC_GRANT_FAILED);
	assert_int_equal(nb_turnc_send(&c, &PEER2, payload, 3, out, sizeof(out)), -EACCES);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_ALLOCATED);

	/* Bounded table; bad peers. */
	for (int i = 2; i < NB_TURNC_MAX_PEERS; i++) {
		struct nb_addr p = PEER;
		p.port = (uint16_t)(8000 + i);
		assert_int_equal(nb_turnc_permit(&c, &p, t), 0);
	}
	{
		struct nb_addr p = PEER, v6 = addr("[2001:db8::1]:5");
		p.port = 9999;
		assert_int_equal(nb_turnc_permit(&c, &p, t), -ENOSPC);
		assert_int_equal(nb_turnc_permit(&c, &v6, t), -EAFNOSUPPORT);
		p.port = 0;
		assert_int_equal(nb_turnc_permit(&c, &p, t), -EINVAL);
	}

	/* Forgetting a peer frees its slot; the next peer gets a new channel
	 * number, never the forgotten one's (RFC 8656 §12: no rebinding). */
	{
		struct nb_addr p = PEER, gone = PEER;
		gone.port = 8003;
		p.port = 9999;
		assert_int_equal(nb_turnc_channel(&c, &gone), 0x4003);
		assert_int_equal(nb_turnc_forget(&c, &gone), 0);
		assert_int_equal(nb_turnc_forget(&c, &gone), -ENOENT);
		assert_int_equal(nb_turnc_permit(&c, &p, t), 0);
		assert_int_equal(nb_turnc_channel(&c, &p), 0x4000 + NB_TURNC_MAX_PEERS);
		assert_int_equal(nb_turnc_channel(&c, &PEER2), 0x4001); /* the others keep theirs */
		p.port = 9998;
		assert_int_equal(nb_turnc_permit(&c, &p, t), -ENOSPC); /* still bounded */
		assert_int_equal(nb_turnc_forget(&c, NULL), -ENOENT);
	}
}

static void test_tcp_chandata(void **state)
{
	static struct nb_turnc c;
	struct req perm, chan;
	struct nb_turnc_rx rx;
	uint8_t out[64], in[64];
	struct rspec ok = {.cls = NB_STUN_CLASS_SUCCESS, .mi = true};
	ssize_t n;

	(void)state;
	allocated(&c, true);
	assert_int_equal(nb_turnc_permit(&c, &PEER, T0 + 30), 0);
	poll_perm_chan(&c, T0 + 30, &PEER, &perm, &chan);
	ok.method = NB_TURN_METHOD_CREATE_PERMISSION;
	assert_int_equal(feed(&c, &ok, perm.m.tid, T0 + 40, &rx), 0);
	ok.method = NB_TURN_METHOD_CHANNEL_BIND;
	assert_int_equal(feed(&c, &ok, chan.m.tid, T0 + 40, &rx), 0);
	n = nb_turnc_send(&c, &PEER, (const uint8_t *)"abcde", 5, out, sizeof(out));
	assert_int_equal(n, 12); /* 4 + 5 + 3 bytes of padding */
	assert_int_equal(out[3], 5);
	assert_memory_equal(out + 9, "\0\0\0", 3);

	/* In: a padded frame is data; an unpadded one is not a TCP frame. */
	memcpy(in, "\x40\x00\x00\x03xyz\0", 8);
	assert_int_equal(nb_turnc_input(&c, in, 8, T0 + 50, &rx), 0);
	assert_int_equal(rx.kind, NB_TURNC_RX_DATA);
	assert_true(rx.channel);
	assert_true(nb_addr_equal(&rx.from, &PEER));
	assert_int_equal(rx.len, 3);
	assert_memory_equal(rx.data, "xyz", 3);
	assert_int_equal(nb_turnc_input(&c, in, 7, T0 + 50, &rx), NB_TURNC_DROP_NOT_TURN);
}

static void test_data_in(void **state)
{
	static struct nb_turnc c;
	struct req perm, chan;
	struct nb_turnc_rx rx;
	struct rspec ok = {.cls = NB_STUN_CLASS_SUCCESS, .mi = true};
	struct nb_addr other_port = PEER, stranger = addr("203.0.113.99:7000");
	struct rspec ind = {.method = NB_TURN_METHOD_DATA, .cls = NB_STUN_CLASS_INDICATION,
			    .data = (const uint8_t *)"payload", .data_len = 7};
	uint8_t in[32];

	(void)state;
	allocated(&c, false);
	/* Before any permission: no data from anyone. */
	ind.peer = &PEER;
	assert_int_equal(feed(&c, &ind, SEED, T0 + 25, &rx), NB_TURNC_DROP_UNKNOWN_PEER);
	assert_int_equal(nb_turnc_permit(&c, &PEER, T0 + 30), 0);
	poll_perm_chan(&c, T0 + 30, &PEER, &perm, &chan);
	ok.method = NB_TURN_METHOD_CREATE_PERMISSION;
	assert_int_equal(feed(&c, &ok, perm.m.tid, T0 + 40, &rx), 0);

	/* Data indication from the peer, and from another port of its IP
	 * (permissions are per IP): RX_DATA with that address. */
	memset(&rx, 0, sizeof(rx));
	assert_int_equal(feed(&c, &ind, SEED, T0 + 45, &rx), 0);
	assert_int_equal(rx.kind, NB_TURNC_RX_DATA);
	assert_false(rx.channel);
	assert_true(nb_addr_equal(&rx.from, &PEER));
	assert_int_equal(rx.len, 7);
	other_port.port = 7777;
	ind.peer = &other_port;
	assert_int_equal(feed(&c, &ind, SEED, T0 + 45, &rx), 0);
	assert_true(nb_addr_equal(&rx.from, &other_port));
	ind.peer = &stranger;
	assert_int_equal(feed(&c, &ind, SEED, T0 + 45, &rx), NB_TURNC_DROP_UNKNOWN_PEER);
	ind.peer = NULL;
	assert_int_equal(feed(&c, &ind, SEED, T0 + 45, &rx), NB_TURNC_DROP_MALFORMED);

	/* ChannelData on our channel (pending, then bound); on another. */
	memcpy(in, "\x40\x00\x00\x02hi", 6);
	assert_int_equal(nb_turnc_input(&c, in, 6, T0 + 46, &rx), 0);
	assert_int_equal(rx.kind, NB_TURNC_RX_DATA);
	assert_true(rx.channel);
	assert_true(nb_addr_equal(&rx.from, &PEER));
	assert_ptr_equal(rx.data, in + 4);
	assert_int_equal(rx.len, 2);
	ok.method = NB_TURN_METHOD_CHANNEL_BIND;
	assert_int_equal(feed(&c, &ok, chan.m.tid, T0 + 47, &rx), 0);
	memcpy(in, "\x40\x00\x00\x02hi\0\0", 8); /* UDP may carry padding */
	assert_int_equal(nb_turnc_input(&c, in, 8, T0 + 48, &rx), 0);
	assert_int_equal(rx.len, 2);
	in[1] = 0x01;
	assert_int_equal(nb_turnc_input(&c, in, 6, T0 + 48, &rx), NB_TURNC_DROP_UNKNOWN_PEER);
	assert_int_equal(nb_turnc_input(&c, in, 3, T0 + 48, &rx), NB_TURNC_DROP_NOT_TURN);
	/* A request or a Send indication from the server: not for a client. */
	{
		struct rspec rq = {.method = NB_TURN_METHOD_ALLOCATE, .cls = NB_STUN_CLASS_REQUEST};
		assert_int_equal(feed(&c, &rq, SEED, T0 + 49, &rx), NB_TURNC_DROP_UNEXPECTED);
		rq = ind;
		rq.method = NB_TURN_METHOD_SEND;
		rq.peer = &PEER;
		assert_int_equal(feed(&c, &rq, SEED, T0 + 49, &rx), NB_TURNC_DROP_UNEXPECTED);
	}

	/* Nothing while not allocated. */
	{
		struct req r;
		to_auth(&c, false, &r);
		memcpy(in, "\x40\x00\x00\x02hi", 6);
		assert_int_equal(nb_turnc_input(&c, in, 6, T0 + 46, &rx), NB_TURNC_DROP_STATE);
		ind.peer = &PEER;
		assert_int_equal(feed(&c, &ind, SEED, T0 + 45, &rx), NB_TURNC_DROP_STATE);
	}
}

/* Nothing but the drop counters may change. */
static void assert_unchanged(const struct nb_turnc *before, const struct nb_turnc *after)
{
	static struct nb_turnc tmp;
	tmp = *before;
	memcpy(tmp.drops, after->drops, sizeof(tmp.drops));
	assert_memory_equal(&tmp, after, sizeof(tmp));
}

static void test_bad_integrity_and_tid(void **state)
{
	static struct nb_turnc c, before;
	struct req r;
	struct nb_turnc_rx rx;
	uint8_t buf[512], bad[512];
	size_t n;
	struct rspec s = {.method = NB_TURN_METHOD_ALLOCATE, .cls = NB_STUN_CLASS_SUCCESS,
			  .relayed = &RELAYED, .lifetime_set = true, .lifetime = 600,
			  .wrong_key = true};

	(void)state;
	to_auth(&c, false, &r);
	/* Wrong key; no MESSAGE-INTEGRITY at all. */
	before = c;
	assert_int_equal(feed(&c, &s, r.m.tid, T0 + 20, &rx), NB_TURNC_DROP_INTEGRITY);
	s.wrong_key = false;
	assert_int_equal(feed(&c, &s, r.m.tid, T0 + 20, &rx), NB_TURNC_DROP_INTEGRITY);
	/* Right key, unknown transaction; another method. */
	s.mi = true;
	assert_int_equal(feed(&c, &s, SEED, T0 + 20, &rx), NB_TURNC_DROP_UNKNOWN_TID);
	s.method = NB_TURN_METHOD_REFRESH;
	assert_int_equal(feed(&c, &s, r.m.tid, T0 + 20, &rx), NB_TURNC_DROP_UNEXPECTED);
	/* Success without XOR-RELAYED-ADDRESS. */
	s.method = NB_TURN_METHOD_ALLOCATE;
	s.relayed = NULL;
	assert_int_equal(feed(&c, &s, r.m.tid, T0 + 20, &rx), NB_TURNC_DROP_MALFORMED);
	assert_unchanged(&before, &c);
	assert_int_equal(c.drops[-NB_TURNC_DROP_INTEGRITY - 1], 2);

	/* Every byte of a valid success flipped: refused, nothing changed. */
	n = alloc_ok(r.m.tid, 600, buf, sizeof(buf));
	for (size_t i = 0; i < n; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			memcpy(bad, buf, n);
			bad[i] ^= (uint8_t)(1u << bit);
			before = c;
			assert_true(nb_turnc_input(&c, bad, n, T0 + 20, &rx) < 0);
			assert_unchanged(&before, &c);
		}
	}
	/* Every prefix: refused, nothing changed. */
	for (size_t len = 0; len < n; len++) {
		memcpy(bad, buf, len);
		before = c;
		assert_true(nb_turnc_input(&c, bad, len, T0 + 20, &rx) < 0);
		assert_unchanged(&before, &c);
	}
	/* And a trailing byte too many. */
	memcpy(bad, buf, n);
	bad[n] = 0;
	assert_true(nb_turnc_input(&c, bad, n + 1, T0 + 20, &rx) < 0);
	/* The intact one still works. */
	assert_int_equal(nb_turnc_input(&c, buf, n, T0 + 20, &rx), 0);
	assert_int_equal(nb_turnc_state(&c), NB_TURNC_ALLOCATED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_allocate_flow, setup),
		cmocka_unit_test_setup(test_retransmission, setup),
		cmocka_unit_test_setup(test_stale_nonce, setup),
		cmocka_unit_test_setup(test_errors, setup),
		cmocka_unit_test_setup(test_refresh, setup),
		cmocka_unit_test_setup(test_permission_channel, setup),
		cmocka_unit_test_setup(test_tcp_chandata, setup),
		cmocka_unit_test_setup(test_data_in, setup),
		cmocka_unit_test_setup(test_bad_integrity_and_tid, setup),
		cmocka_unit_test_setup(test_family, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
