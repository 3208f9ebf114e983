/* tests/unit/test_turn_server.c - the TURN server core on a fake clock: the
 * allocate round trips, lifetimes, permissions, channels, relaying both
 * ways, the peer policy, quotas, the bandwidth cap, REST credentials and
 * nonces, the error cases of RFC 8656, TCP close, bind failures, IPv6 and
 * dual-stack relaying (REQUESTED-ADDRESS-FAMILY, 440 / 443), and mutated /
 * truncated authenticated requests that must never succeed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/turn.h"
#include "common/bytes.h"
#include "proto/stun.h"
#include "proto/turn.h"

#define SECRET "test-secret-0123"
#define UNIX0 UINT64_C(1700000000)
#define NOW0 UINT64_C(5000000)
#define PORT_LO 50000
#define PORT_HI 50019
#define RELAY "203.0.113.10"
#define OWN2 "203.0.113.11"
#define RELAY6 "2001:db8::10"
#define PEER6 "[2001:db8:5::20]:5000"
#define PEER "198.51.100.20:5000"
#define PEER2 "198.51.100.21:6000"
#define NOVAL (-1)

/* ---- Fixture ---------------------------------------------------------------- */

struct ctx {
	struct nb_turn *t;
	struct nb_turn_config cfg;
	uint64_t now, unix_s;
	uint8_t nonce[64];
	size_t nonce_len;
	uint32_t tid_counter;
	/* events seen */
	unsigned n_created, n_deleted, n_refused;
	int last_reason;
	struct nb_turn_out out;
	uint8_t in[2048]; /* the last request sent */
};

static void on_event(void *arg, const struct nb_turn_event *ev)
{
	struct ctx *x = arg;

	assert_non_null(ev->client);
	switch (ev->kind) {
	case NB_TURN_EV_ALLOC_CREATED: x->n_created++; break;
	case NB_TURN_EV_ALLOC_DELETED: x->n_deleted++; break;
	case NB_TURN_EV_REFUSED:
		x->n_refused++;
		x->last_reason = ev->reason;
		assert_string_not_equal(nb_turn_refusal_name(ev->reason), "unknown");
		break;
	default: fail();
	}
}

static struct nb_addr A(const char *s)
{
	struct nb_addr a;

	memset(&a, 0, sizeof(a));
	assert_int_equal(nb_addr_parse(s, true, &a), 0);
	return a;
}

static bool addr_is(const struct nb_addr *a, const char *s)
{
	struct nb_addr b = A(s);

	return nb_addr_equal(a, &b);
}

static void base_config(struct ctx *x)
{
	nb_turn_config_default(&x->cfg);
	memcpy(x->cfg.secret, SECRET, strlen(SECRET));
	x->cfg.secret_len = strlen(SECRET);
	x->cfg.relay_ip[NB_FAM_V4] = A(RELAY);
	x->cfg.own[0] = A(RELAY);
	x->cfg.own[1] = A(OWN2);
	x->cfg.n_own = 2;
	x->cfg.port_lo = PORT_LO;
	x->cfg.port_hi = PORT_HI;
	for (unsigned i = 0; i < sizeof(x->cfg.nonce_key); i++)
		x->cfg.nonce_key[i] = (uint8_t)(i * 7 + 1);
	memcpy(x->cfg.software, "natbroker test", sizeof("natbroker test"));
	x->cfg.cb = on_event;
	x->cfg.cb_arg = x;
}

static void start(struct ctx *x)
{
	x->now = NOW0;
	x->unix_s = UNIX0;
	assert_int_equal(nb_turn_new(&x->cfg, &x->t), 0);
}

/* The families relayed: IPv4 (base_config), both, or IPv6 only (the
 * IPv6 relay IP an own IP too). */
enum relay_fams { FAMS_V4, FAMS_DUAL, FAMS_V6 };

static int setup_fams(void **state, enum relay_fams fams)
{
	struct ctx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	base_config(x);
	if (fams == FAMS_DUAL) {
		x->cfg.relay_ip[NB_FAM_V6] = A(RELAY6);
		x->cfg.own[x->cfg.n_own++] = A(RELAY6);
	} else if (fams == FAMS_V6) {
		memset(&x->cfg.relay_ip[NB_FAM_V4], 0, sizeof(x->cfg.relay_ip[NB_FAM_V4]));
		x->cfg.relay_ip[NB_FAM_V6] = A(RELAY6);
		x->cfg.own[0] = A(RELAY6);
	}
	start(x);
	*state = x;
	return 0;
}

static int setup(void **state)
{
	return setup_fams(state, FAMS_V4);
}

static int setup_dual(void **state)
{
	return setup_fams(state, FAMS_DUAL);
}

static int setup_v6only(void **state)
{
	return setup_fams(state, FAMS_V6);
}

static int teardown(void **state)
{
	struct ctx *x = *state;

	nb_turn_free(x->t);
	free(x);
	return 0;
}

static struct nb_turn_client udp_client(const char *addr)
{
	struct nb_turn_client c;

	memset(&c, 0, sizeof(c));
	c.addr = A(addr);
	c.transport = NB_TURN_CLIENT_UDP;
	return c;
}

static struct nb_turn_client tcp_client(const char *addr, uint64_t conn)
{
	struct nb_turn_client c = udp_client(addr);

	c.transport = NB_TURN_CLIENT_TCP;
	c.conn = conn;
	return c;
}

/* ---- Building requests -------------------------------------------------------- */

struct rq {
	uint16_t method;
	uint16_t cls; /* default: request */
	uint8_t tid[NB_STUN_TID_LEN];
	const char *username; /* NULL: none */
	const char *secret;   /* for the password; default SECRET */
	const char *realm;    /* default "natbroker"; "" none */
	bool no_nonce, no_mi, fp;
	const uint8_t *nonce; /* default: x->nonce */
	size_t nonce_len;
	long lifetime;  /* NOVAL: none */
	int transport;  /* NOVAL: none; Allocate default 17 via alloc_rq */
	int family;     /* REQUESTED-ADDRESS-FAMILY or NOVAL */
	int additional; /* ADDITIONAL-ADDRESS-FAMILY or NOVAL */
	bool even_port;
	bool even_no_reserve; /* EVEN-PORT without its R bit */
	const uint8_t *token; /* RESERVATION-TOKEN (8 bytes) or NULL */
	uint16_t unknown_attr; /* 0: none */
	struct nb_addr peers[4];
	size_t n_peers;
	long channel; /* NOVAL: none */
	const uint8_t *data;
	size_t data_len;
	bool has_data;
};

static void rq_init(struct ctx *x, struct rq *q, uint16_t method, const char *username)
{
	memset(q, 0, sizeof(*q));
	q->method = method;
	q->cls = NB_STUN_CLASS_REQUEST;
	x->tid_counter++;
	for (unsigned i = 0; i < NB_STUN_TID_LEN; i++)
		q->tid[i] = (uint8_t)(x->tid_counter * 31 + i);
	q->username = username;
	q->lifetime = NOVAL;
	q->transport = method == NB_TURN_METHOD_ALLOCATE ? NB_TURN_TRANSPORT_UDP : NOVAL;
	q->family = NOVAL;
	q->additional = NOVAL;
	q->channel = NOVAL;
}

static size_t build(struct ctx *x, const struct rq *q, uint8_t *buf, size_t cap)
{
	struct nb_stun_enc e;
	uint16_t type = (uint16_t)(q->method | q->cls);
	uint8_t v4[4] = { 0 };

	assert_int_equal(nb_stun_enc_init(&e, buf, cap, type, q->tid, false), 0);
	if (q->transport != NOVAL) {
		v4[0] = (uint8_t)q->transport;
		assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_REQUESTED_TRANSPORT, v4, 4), 0);
	}
	if (q->family != NOVAL) {
		uint8_t f[4] = { (uint8_t)q->family, 0, 0, 0 };
		assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, f, 4), 0);
	}
	if (q->additional != NOVAL) {
		uint8_t f[4] = { (uint8_t)q->additional, 0, 0, 0 };
		assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY, f, 4), 0);
	}
	if (q->even_port) {
		uint8_t ep = q->even_no_reserve ? 0x00 : 0x80;
		assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_EVEN_PORT, &ep, 1), 0);
	}
	if (q->token != NULL)
		assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_RESERVATION_TOKEN, q->token, 8), 0);
	if (q->lifetime != NOVAL)
		assert_int_equal(nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, (uint32_t)q->lifetime), 0);
	if (q->channel != NOVAL) {
		uint8_t ch[4] = { (uint8_t)(q->channel >> 8), (uint8_t)q->channel, 0, 0 };
		assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_CHANNEL_NUMBER, ch, 4), 0);
	}
	for (size_t i = 0; i < q->n_peers; i++)
		assert_int_equal(nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_PEER_ADDRESS, &q->peers[i]), 0);
	if (q->has_data)
		assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_DATA, q->data, q->data_len), 0);
	if (q->unknown_attr != 0)
		assert_int_equal(nb_stun_enc_attr(&e, q->unknown_attr, "abcd", 4), 0);
	if (q->username != NULL) {
		const char *realm = q->realm != NULL ? q->realm : NB_TURN_DEFAULT_REALM;
		const char *secret = q->secret != NULL ? q->secret : SECRET;
		const uint8_t *nonce = q->nonce != NULL ? q->nonce : x->nonce;
		size_t nonce_len = q->nonce != NULL ? q->nonce_len : x->nonce_len;
		char pw[NB_TURN_REST_PASSWORD_LEN + 1];
		uint8_t key[NB_TURN_KEY_LEN];

		assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, q->username,
						  strlen(q->username)), 0);
		if (realm[0] != 0)
			assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_REALM, realm, strlen(realm)), 0);
		if (!q->no_nonce)
			assert_int_equal(nb_stun_enc_attr(&e, NB_TURN_ATTR_NONCE, nonce, nonce_len), 0);
		if (!q->no_mi) {
			assert_int_equal(nb_turn_rest_password((const uint8_t *)secret, strlen(secret),
							       (const uint8_t *)q->username,
							       strlen(q->username), pw), 0);
			assert_int_equal(nb_turn_long_term_key((const uint8_t *)q->username,
							       strlen(q->username), (const uint8_t *)realm,
							       strlen(realm), (const uint8_t *)pw,
							       strlen(pw), key), 0);
			assert_int_equal(nb_stun_enc_integrity(&e, key, sizeof(key)), 0);
		}
	}
	if (q->fp)
		assert_int_equal(nb_stun_enc_fingerprint(&e), 0);
	return nb_stun_enc_len(&e);
}

/* The key a username's requests are signed with. */
static void key_of(const char *username, uint8_t key[NB_TURN_KEY_LEN])
{
	char pw[NB_TURN_REST_PASSWORD_LEN + 1];

	assert_int_equal(nb_turn_rest_password((const uint8_t *)SECRET, strlen(SECRET),
					       (const uint8_t *)username, strlen(username), pw), 0);
	assert_int_equal(nb_turn_long_term_key((const uint8_t *)username, strlen(username),
					       (const uint8_t *)NB_TURN_DEFAULT_REALM,
					       strlen(NB_TURN_DEFAULT_REALM), (const uint8_t *)pw,
					       strlen(pw), key), 0);
}

static const char *user_name(struct ctx *x, const char *who, long delta, char *buf, size_t cap)
{
	assert_true(nb_turn_rest_username((uint64_t)((long)x->unix_s + delta), who, buf, cap) > 0);
	return buf;
}

/* Every output the core gives is bounded; run a client message. */
static int client(struct ctx *x, const struct nb_turn_client *c, const uint8_t *buf, size_t len)
{
	int rc = nb_turn_handle_client(x->t, c, buf, len, x->now, x->unix_s, &x->out);

	if (rc < 0) {
		assert_true(rc <= NB_TURN_DROP_MALFORMED && rc > NB_TURN_DROP_MALFORMED - NB_TURN_DROP_COUNT);
		assert_int_equal(x->out.kind, NB_TURN_OUT_NONE);
	}
	assert_true(x->out.len <= NB_TURN_MAX_RESPONSE);
	return rc;
}

/* The request lives in x->in: a PEER output is a view into it. */
static int send_rq(struct ctx *x, const struct nb_turn_client *c, const struct rq *q)
{
	size_t n = build(x, q, x->in, sizeof(x->in));

	return client(x, c, x->in, n);
}

/* Decode the CLIENT output as a STUN message. */
static void decode_out(struct ctx *x, struct nb_stun_msg *m, struct nb_turn_attrs *ta)
{
	assert_int_equal(x->out.kind, NB_TURN_OUT_CLIENT);
	assert_int_equal(nb_stun_decode(m, x->out.data, x->out.len), (ssize_t)x->out.len);
	assert_int_equal(nb_turn_attrs_parse(m, x->out.data, x->out.len, ta), 0);
}

/* The CLIENT output is an error response with this code; returns it. */
static void expect_error(struct ctx *x, uint16_t method, uint16_t code)
{
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;

	decode_out(x, &m, &ta);
	assert_int_equal(m.cls, NB_STUN_CLASS_ERROR);
	assert_int_equal(m.method, method);
	assert_int_equal(m.error_code, code);
	if (code == 401 || code == 438) {
		assert_true(ta.present & NB_TURN_HAS_REALM);
		assert_true(ta.present & NB_TURN_HAS_NONCE);
		assert_memory_equal(ta.realm, NB_TURN_DEFAULT_REALM, ta.realm_len);
		assert_false(m.present & NB_STUN_HAS_INTEGRITY);
		assert_false(m.present & NB_STUN_HAS_SOFTWARE);
		assert_true(ta.nonce_len <= sizeof(x->nonce));
		memcpy(x->nonce, ta.nonce, ta.nonce_len);
		x->nonce_len = ta.nonce_len;
	}
}

static void expect_success(struct ctx *x, uint16_t method, const char *username,
			   struct nb_stun_msg *m, struct nb_turn_attrs *ta)
{
	uint8_t key[NB_TURN_KEY_LEN];

	decode_out(x, m, ta);
	assert_int_equal(m->cls, NB_STUN_CLASS_SUCCESS);
	assert_int_equal(m->method, method);
	key_of(username, key);
	assert_int_equal(nb_stun_check_integrity(m, x->out.data, x->out.len, key, sizeof(key)), 0);
}

/* The 401 round trip: leaves the nonce in x. */
static void challenge(struct ctx *x, const struct nb_turn_client *c)
{
	struct rq q;

	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, NULL);
	assert_int_equal(send_rq(x, c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 401);
}

/* A full allocation of a family (REQUESTED-ADDRESS-FAMILY, or NOVAL: none,
 * so IPv4); returns its handle, *ret_port its relay port. */
static uint32_t allocate_fam(struct ctx *x, const struct nb_turn_client *c, const char *user,
			     long lifetime, int family, uint32_t *ret_lifetime, uint16_t *ret_port)
{
	const struct nb_addr *relay_ip =
		&x->cfg.relay_ip[family == NB_TURN_FAMILY_IPV6 ? NB_FAM_V6 : NB_FAM_V4];
	struct rq q;
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
	uint32_t h;
	uint16_t port;

	challenge(x, c);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, user);
	q.lifetime = lifetime;
	q.family = family;
	assert_int_equal(send_rq(x, c, &q), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_OPEN);
	assert_true(x->out.port >= PORT_LO && x->out.port <= PORT_HI);
	assert_int_not_equal(relay_ip->family, NB_AF_NONE);
	assert_true(nb_addr_ip_equal(&x->out.to, relay_ip));
	assert_int_equal(x->out.to.port, x->out.port);
	assert_int_not_equal(x->out.alloc, 0);
	h = x->out.alloc;
	port = x->out.port;
	assert_int_equal(nb_turn_opened(x->t, h, 0, x->now, &x->out), 0);
	expect_success(x, NB_TURN_METHOD_ALLOCATE, user, &m, &ta);
	assert_memory_equal(m.tid, q.tid, NB_STUN_TID_LEN);
	assert_true(ta.present & NB_TURN_HAS_RELAYED);
	assert_true(nb_addr_ip_equal(&ta.relayed, relay_ip));
	assert_int_equal(ta.relayed.port, port);
	assert_true(m.present & NB_STUN_HAS_XOR_MAPPED);
	assert_true(nb_addr_equal(&m.xor_mapped, &c->addr));
	assert_true(ta.present & NB_TURN_HAS_LIFETIME);
	if (ret_lifetime != NULL)
		*ret_lifetime = ta.lifetime;
	if (ret_port != NULL)
		*ret_port = port;
	return h;
}

static uint32_t allocate_lt(struct ctx *x, const struct nb_turn_client *c, const char *user,
			    long lifetime, uint32_t *ret_lifetime, uint16_t *ret_port)
{
	return allocate_fam(x, c, user, lifetime, NOVAL, ret_lifetime, ret_port);
}

static uint32_t allocate(struct ctx *x, const struct nb_turn_client *c, const char *user)
{
	return allocate_lt(x, c, user, NOVAL, NULL, NULL);
}

/* CreatePermission for peers; returns the handler's rc (out holds the answer). */
static int permit(struct ctx *x, const struct nb_turn_client *c, const char *user,
		  const char *const *peers, size_t n)
{
	struct rq q;

	rq_init(x, &q, NB_TURN_METHOD_CREATE_PERMISSION, user);
	for (size_t i = 0; i < n; i++)
		q.peers[i] = A(peers[i]);
	q.n_peers = n;
	return send_rq(x, c, &q);
}

static void permit_ok(struct ctx *x, const struct nb_turn_client *c, const char *user,
		      const char *peer)
{
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;

	assert_int_equal(permit(x, c, user, &peer, 1), 0);
	expect_success(x, NB_TURN_METHOD_CREATE_PERMISSION, user, &m, &ta);
}

static int channel_bind(struct ctx *x, const struct nb_turn_client *c, const char *user,
			long channel, const char *peer)
{
	struct rq q;

	rq_init(x, &q, NB_TURN_METHOD_CHANNEL_BIND, user);
	q.channel = channel;
	q.peers[0] = A(peer);
	q.n_peers = 1;
	return send_rq(x, c, &q);
}

static int send_ind(struct ctx *x, const struct nb_turn_client *c, const char *peer,
		    const uint8_t *data, size_t len)
{
	struct rq q;

	rq_init(x, &q, NB_TURN_METHOD_SEND, NULL);
	q.cls = NB_STUN_CLASS_INDICATION;
	q.transport = NOVAL;
	q.peers[0] = A(peer);
	q.n_peers = 1;
	q.data = data;
	q.data_len = len;
	q.has_data = true;
	return send_rq(x, c, &q);
}

static int refresh(struct ctx *x, const struct nb_turn_client *c, const char *user, long lifetime)
{
	struct rq q;

	rq_init(x, &q, NB_TURN_METHOD_REFRESH, user);
	q.lifetime = lifetime;
	return send_rq(x, c, &q);
}

static int peer(struct ctx *x, uint32_t h, const char *from, const uint8_t *data, size_t len)
{
	struct nb_addr f = A(from);
	int rc = nb_turn_handle_peer(x->t, h, &f, data, len, x->now, &x->out);

	if (rc < 0)
		assert_int_equal(x->out.kind, NB_TURN_OUT_NONE);
	assert_true(x->out.len <= NB_TURN_MAX_RESPONSE);
	return rc;
}

static const struct nb_turn_stats *stats(struct ctx *x)
{
	return nb_turn_get_stats(x->t);
}

#define DROPS(x, code) (stats(x)->drops[nb_turn_drop_index(code)])

/* ---- Tests ------------------------------------------------------------------- */

static void test_config(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_config c = x->cfg;
	struct nb_turn *t = NULL;

	c.secret_len = 0;
	assert_int_equal(nb_turn_new(&c, &t), -EINVAL);
	c = x->cfg;
	c.relay_ip[NB_FAM_V4] = A("0.0.0.0");
	assert_int_equal(nb_turn_new(&c, &t), -EINVAL);
	/* relay_ip[]: each slot its own family or none, at least one set,
	 * none unspecified. */
	c = x->cfg;
	c.relay_ip[NB_FAM_V4] = A(RELAY6);
	assert_int_equal(nb_turn_new(&c, &t), -EINVAL);
	c = x->cfg;
	c.relay_ip[NB_FAM_V6] = A(RELAY);
	assert_int_equal(nb_turn_new(&c, &t), -EINVAL);
	c = x->cfg;
	c.relay_ip[NB_FAM_V6] = A("::");
	assert_int_equal(nb_turn_new(&c, &t), -EINVAL);
	c = x->cfg;
	c.relay_ip[NB_FAM_V6] = A(RELAY6);
	c.relay_ip[NB_FAM_V6].family = 5; /* neither family */
	assert_int_equal(nb_turn_new(&c, &t), -EINVAL);
	c = x->cfg;
	memset(c.relay_ip, 0, sizeof(c.relay_ip));
	assert_int_equal(nb_turn_new(&c, &t), -EINVAL);
	assert_null(t);
	/* Either family alone, or both, is fine. */
	c = x->cfg;
	c.relay_ip[NB_FAM_V6] = A(RELAY6);
	assert_int_equal(nb_turn_new(&c, &t), 0);
	nb_turn_free(t);
	t = NULL;
	memset(&c.relay_ip[NB_FAM_V4], 0, sizeof(c.relay_ip[NB_FAM_V4]));
	assert_int_equal(nb_turn_new(&c, &t), 0);
	nb_turn_free(t);
	t = NULL;
	c = x->cfg;
	c.port_lo = 2000;
	c.port_hi = 1999;
	assert_int_equal(nb_turn_new(&c, &t), -EINVAL);
	c = x->cfg;
	c.max_allocs = NB_TURN_ALLOCS_LIMIT + 1;
	assert_int_equal(nb_turn_new(&c, &t), -EINVAL);
	c = x->cfg;
	c.realm[0] = 0;
	assert_int_equal(nb_turn_new(&c, &t), -EINVAL);
	c = x->cfg;
	c.max_lifetime_s = 10;
	assert_int_equal(nb_turn_new(&c, &t), -EINVAL);
	assert_null(t);
	nb_turn_free(NULL);
	assert_string_equal(nb_turn_drop_name(NB_TURN_DROP_NO_PERMISSION), "no-permission");
	assert_string_equal(nb_turn_drop_name(NB_TURN_DROP_RETRANSMIT), "retransmit");
	assert_string_equal(nb_turn_refusal_name(NB_TURN_REFUSE_STALE_NONCE), "stale-nonce");
	assert_string_equal(nb_turn_refusal_name(NB_TURN_REFUSE_PEER_FAMILY), "peer-family");
	assert_int_equal(nb_turn_next_deadline(x->t), UINT64_MAX);
}

static void test_allocate_flow(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	char u[64];
	struct rq q;
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
	uint8_t buf[512];
	size_t n;
	uint32_t h, h2;

	user_name(x, "alice", 3600, u, sizeof(u));
	/* 401 without FINGERPRINT, then with: FINGERPRINT only if asked. */
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, NULL);
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 401);
	assert_false(nb_stun_decode(&m, x->out.data, x->out.len) < 0);
	assert_false(m.present & NB_STUN_HAS_FINGERPRINT);
	assert_true(x->out.len <= 120); /* small: no SOFTWARE, short nonce */
	assert_int_equal(x->nonce_len, NB_TURN_NONCE_LEN);
	q.fp = true;
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 401);
	assert_int_equal(nb_stun_decode(&m, x->out.data, x->out.len), (ssize_t)x->out.len);
	assert_true(m.present & NB_STUN_HAS_FINGERPRINT);
	assert_int_equal(stats(x)->refused[NB_TURN_REFUSE_CHALLENGE], 2);

	/* Authenticated, with FINGERPRINT: OPEN, opened, success. */
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.fp = true;
	n = build(x, &q, buf, sizeof(buf));
	assert_int_equal(client(x, &c, buf, n), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_OPEN);
	h = x->out.alloc;
	assert_true(x->out.port >= PORT_LO && x->out.port <= PORT_HI);
	assert_true(nb_addr_equal(&x->out.client.addr, &c.addr));
	/* A retransmission while the socket is being bound is ignored. */
	assert_int_equal(client(x, &c, buf, n), NB_TURN_DROP_RETRANSMIT);
	assert_int_equal(nb_turn_opened(x->t, h, 0, x->now, &x->out), 0);
	expect_success(x, NB_TURN_METHOD_ALLOCATE, u, &m, &ta);
	assert_true(m.present & NB_STUN_HAS_FINGERPRINT);
	assert_true(m.present & NB_STUN_HAS_SOFTWARE);
	assert_int_equal(ta.lifetime, 600);
	assert_true(nb_addr_equal(&m.xor_mapped, &c.addr));
	assert_int_equal(stats(x)->allocs_now, 1);
	assert_int_equal(stats(x)->allocs_created, 1);
	assert_int_equal(x->n_created, 1);
	assert_int_equal(nb_turn_next_deadline(x->t), x->now + 600000);
	/* opened() again for the same handle: not waiting. */
	assert_int_equal(nb_turn_opened(x->t, h, 0, x->now, &x->out), NB_TURN_DROP_INVAL);
	assert_int_equal(nb_turn_opened(x->t, h ^ 0x10000u, 0, x->now, &x->out),
			 NB_TURN_DROP_NO_ALLOCATION);

	/* Retransmission (same transaction ID): the same success again. */
	x->now += 1000;
	assert_int_equal(client(x, &c, buf, n), 0);
	expect_success(x, NB_TURN_METHOD_ALLOCATE, u, &m, &ta);
	assert_memory_equal(m.tid, q.tid, NB_STUN_TID_LEN);
	assert_true(ta.lifetime >= 598 && ta.lifetime <= 600);
	/* Another transaction on the same 5-tuple: 437. */
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 437);
	assert_int_equal(nb_stun_decode(&m, x->out.data, x->out.len), (ssize_t)x->out.len);
	assert_true(m.present & NB_STUN_HAS_INTEGRITY); /* authenticated errors are signed */
	assert_int_equal(stats(x)->refused[NB_TURN_REFUSE_MISMATCH], 1);

	/* Another client gets another port and handle. */
	{
		struct nb_turn_client c2 = udp_client("198.51.100.7:40001");
		uint16_t p1 = 0, p2 = 0;

		h2 = allocate_lt(x, &c2, u, NOVAL, NULL, &p2);
		assert_int_not_equal(h2, h);
		(void)p1;
	}
	assert_int_equal(stats(x)->allocs_now, 2);
}

/* EVEN-PORT (RFC 8656 §7.2 step 5, §14.6) and RESERVATION-TOKEN (step 6),
 * as RTP/RTCP clients (coturn's turnutils_uclient) use them. */
static void test_even_port_reservation(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c1 = udp_client("203.0.113.7:4000"), c2 = udp_client("203.0.113.7:4001");
	struct nb_turn_client c3 = udp_client("203.0.113.7:4002"), c4 = udp_client("203.0.113.7:4003");
	char u[64];
	struct rq q;
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
	uint8_t token[8];
	uint16_t port;

	user_name(x, "rtp", 600, u, sizeof(u));
	/* EVEN-PORT with R: an even port, and a token for the next one. */
	challenge(x, &c1);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.even_port = true;
	assert_int_equal(send_rq(x, &c1, &q), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_OPEN);
	port = x->out.port;
	assert_int_equal(port % 2, 0);
	assert_int_equal(nb_turn_opened(x->t, x->out.alloc, 0, x->now, &x->out), 0);
	expect_success(x, NB_TURN_METHOD_ALLOCATE, u, &m, &ta);
	assert_true(ta.present & NB_TURN_HAS_RESERVATION_TOKEN);
	assert_int_equal(ta.relayed.port, port);
	memcpy(token, ta.reservation_token, sizeof(token));
	/* The token gets the reserved port, once. */
	challenge(x, &c2);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.token = token;
	assert_int_equal(send_rq(x, &c2, &q), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_OPEN);
	assert_int_equal(x->out.port, port + 1);
	assert_int_equal(nb_turn_opened(x->t, x->out.alloc, 0, x->now, &x->out), 0);
	expect_success(x, NB_TURN_METHOD_ALLOCATE, u, &m, &ta);
	assert_false(ta.present & NB_TURN_HAS_RESERVATION_TOKEN);
	challenge(x, &c3);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.token = token;
	assert_int_equal(send_rq(x, &c3, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 508);
	/* Without R: an even port, no token. */
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.even_port = true;
	q.even_no_reserve = true;
	assert_int_equal(send_rq(x, &c3, &q), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_OPEN);
	assert_int_equal(x->out.port % 2, 0);
	assert_int_equal(nb_turn_opened(x->t, x->out.alloc, 0, x->now, &x->out), 0);
	expect_success(x, NB_TURN_METHOD_ALLOCATE, u, &m, &ta);
	assert_false(ta.present & NB_TURN_HAS_RESERVATION_TOKEN);
	/* A reservation runs out after 30 s: its token is refused then. */
	challenge(x, &c4);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.even_port = true;
	assert_int_equal(send_rq(x, &c4, &q), 0);
	assert_int_equal(nb_turn_opened(x->t, x->out.alloc, 0, x->now, &x->out), 0);
	expect_success(x, NB_TURN_METHOD_ALLOCATE, u, &m, &ta);
	memcpy(token, ta.reservation_token, sizeof(token));
	x->now += 30001;
	{
		struct nb_turn_client c5 = udp_client("203.0.113.7:4004");
		challenge(x, &c5);
		rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
		q.token = token;
		assert_int_equal(send_rq(x, &c5, &q), 0);
		expect_error(x, NB_TURN_METHOD_ALLOCATE, 508);
	}
}

static void test_lifetimes(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
	char u[64];
	uint32_t lt = 0, h;

	user_name(x, "alice", 3600, u, sizeof(u));
	h = allocate_lt(x, &c, u, 7200, &lt, NULL);
	assert_int_equal(lt, 3600); /* capped at max_lifetime_s */
	assert_int_equal(nb_turn_next_deadline(x->t), x->now + 3600000);

	/* Refresh: 1000 s; below the default -> the default; 0 deletes. */
	assert_int_equal(refresh(x, &c, u, 1000), 0);
	expect_success(x, NB_TURN_METHOD_REFRESH, u, &m, &ta);
	assert_int_equal(ta.lifetime, 1000);
	assert_int_equal(refresh(x, &c, u, 10), 0);
	expect_success(x, NB_TURN_METHOD_REFRESH, u, &m, &ta);
	assert_int_equal(ta.lifetime, 600);
	assert_int_equal(refresh(x, &c, u, NOVAL), 0);
	expect_success(x, NB_TURN_METHOD_REFRESH, u, &m, &ta);
	assert_int_equal(ta.lifetime, 600);
	assert_int_equal(nb_turn_next_deadline(x->t), x->now + 600000);

	/* Expiry via poll: nothing before, one CLOSE at the deadline. */
	x->now += 599999;
	assert_int_equal(nb_turn_poll(x->t, x->now, &x->out), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_NONE);
	x->now += 1;
	assert_int_equal(nb_turn_poll(x->t, x->now, &x->out), 1);
	assert_int_equal(x->out.kind, NB_TURN_OUT_CLOSE);
	assert_int_equal(x->out.alloc, h);
	assert_int_equal(nb_turn_poll(x->t, x->now, &x->out), 0);
	assert_int_equal(stats(x)->allocs_expired, 1);
	assert_int_equal(stats(x)->allocs_now, 0);
	assert_int_equal(x->n_deleted, 1);
	assert_int_equal(nb_turn_next_deadline(x->t), UINT64_MAX);
	/* Gone: the peer side and Refresh see no allocation. */
	assert_int_equal(peer(x, h, PEER, (const uint8_t *)"x", 1), NB_TURN_DROP_NO_ALLOCATION);
	assert_int_equal(refresh(x, &c, u, 600), 0);
	expect_error(x, NB_TURN_METHOD_REFRESH, 437);
}

static void test_delete(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
	char u[64];
	uint32_t h;

	user_name(x, "alice", 3600, u, sizeof(u));
	h = allocate(x, &c, u);
	assert_int_equal(refresh(x, &c, u, 0), 0);
	expect_success(x, NB_TURN_METHOD_REFRESH, u, &m, &ta);
	assert_int_equal(ta.lifetime, 0);
	assert_int_equal(stats(x)->allocs_now, 0);
	assert_int_equal(stats(x)->allocs_deleted, 1);
	assert_int_equal(nb_turn_next_deadline(x->t), x->now);
	assert_int_equal(peer(x, h, PEER, (const uint8_t *)"x", 1), NB_TURN_DROP_NO_ALLOCATION);
	assert_int_equal(nb_turn_poll(x->t, x->now, &x->out), 1);
	assert_int_equal(x->out.kind, NB_TURN_OUT_CLOSE);
	assert_int_equal(x->out.alloc, h);
	assert_int_equal(nb_turn_poll(x->t, x->now, &x->out), 0);
	/* A second delete (retransmitted) finds nothing: 437. */
	assert_int_equal(refresh(x, &c, u, 0), 0);
	expect_error(x, NB_TURN_METHOD_REFRESH, 437);
	/* The 5-tuple is free again. */
	assert_int_not_equal(allocate(x, &c, u), h);
	assert_int_equal(stats(x)->allocs_now, 1);
}

static void test_permission_send_data(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
	const uint8_t payload[] = "hello peer";
	char u[64];
	uint32_t h;
	uint16_t port = 0;

	user_name(x, "alice", 3600, u, sizeof(u));
	/* Send before any allocation: dropped. */
	assert_int_equal(send_ind(x, &c, PEER, payload, sizeof(payload)), NB_TURN_DROP_NO_ALLOCATION);
	h = allocate_lt(x, &c, u, NOVAL, NULL, &port);
	/* No permission yet: both directions dropped. */
	assert_int_equal(send_ind(x, &c, PEER, payload, sizeof(payload)), NB_TURN_DROP_NO_PERMISSION);
	assert_int_equal(peer(x, h, PEER, payload, sizeof(payload)), NB_TURN_DROP_NO_PERMISSION);
	permit_ok(x, &c, u, PEER);

	assert_int_equal(send_ind(x, &c, PEER, payload, sizeof(payload)), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_PEER);
	assert_int_equal(x->out.alloc, h);
	assert_true(addr_is(&x->out.to, PEER));
	assert_int_equal(x->out.len, sizeof(payload));
	assert_memory_equal(x->out.data, payload, sizeof(payload));
	/* The permission is per IP: another port of the peer's IP is fine;
	 * another IP is not. */
	assert_int_equal(send_ind(x, &c, "198.51.100.20:7777", payload, 3), 0);
	assert_int_equal(send_ind(x, &c, PEER2, payload, 3), NB_TURN_DROP_NO_PERMISSION);

	/* From the peer: a Data indication with XOR-PEER-ADDRESS and DATA. */
	assert_int_equal(peer(x, h, "198.51.100.20:7777", payload, sizeof(payload)), 0);
	decode_out(x, &m, &ta);
	assert_true(nb_addr_equal(&x->out.client.addr, &c.addr));
	assert_int_equal(m.cls, NB_STUN_CLASS_INDICATION);
	assert_int_equal(m.method, NB_TURN_METHOD_DATA);
	assert_true(addr_is(&ta.peers[0], "198.51.100.20:7777"));
	assert_int_equal(ta.data_len, sizeof(payload));
	assert_memory_equal(ta.data, payload, sizeof(payload));
	assert_int_equal(peer(x, h, PEER2, payload, sizeof(payload)), NB_TURN_DROP_NO_PERMISSION);
	assert_int_equal(stats(x)->pkts_to_peer, 2);
	assert_int_equal(stats(x)->pkts_from_peer, 1);
	assert_int_equal(stats(x)->bytes_from_peer, sizeof(payload));

	/* Too big either way. */
	{
		static uint8_t big[NB_TURN_MAX_DATA + 1];

		assert_int_equal(peer(x, h, PEER, big, sizeof(big)), NB_TURN_DROP_TOO_BIG);
		assert_int_equal(send_ind(x, &c, PEER, big, sizeof(big)), NB_TURN_DROP_TOO_BIG);
		assert_int_equal(peer(x, h, PEER, big, NB_TURN_MAX_DATA), 0);
		assert_true(x->out.len <= NB_TURN_MAX_RESPONSE);
	}
	/* Permissions last 300 s; CreatePermission refreshes them. */
	x->now += 299000;
	permit_ok(x, &c, u, PEER);
	x->now += 299000;
	assert_int_equal(peer(x, h, PEER, payload, 3), 0);
	x->now += 1000;
	assert_int_equal(peer(x, h, PEER, payload, 3), NB_TURN_DROP_NO_PERMISSION);
	assert_int_equal(send_ind(x, &c, PEER, payload, 3), NB_TURN_DROP_NO_PERMISSION);
	/* A Send without DATA is dropped; a response class message too. */
	{
		struct rq q;

		rq_init(x, &q, NB_TURN_METHOD_SEND, NULL);
		q.cls = NB_STUN_CLASS_INDICATION;
		q.transport = NOVAL;
		q.peers[0] = A(PEER);
		q.n_peers = 1;
		assert_int_equal(send_rq(x, &c, &q), NB_TURN_DROP_BAD_SEND);
		rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, NULL);
		q.cls = NB_STUN_CLASS_SUCCESS;
		assert_int_equal(send_rq(x, &c, &q), NB_TURN_DROP_NOT_REQUEST);
	}
	assert_true(DROPS(x, NB_TURN_DROP_NO_PERMISSION) >= 5);
}

static void test_channels(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
	const uint8_t payload[] = "chan";
	uint8_t cd[64];
	char u[64];
	uint32_t h;
	ssize_t n;

	user_name(x, "alice", 3600, u, sizeof(u));
	h = allocate(x, &c, u);
	/* ChannelData before the bind: dropped. */
	n = nb_turn_chandata_encode(cd, sizeof(cd), 0x4001, payload, 4, false);
	assert_true(n > 0);
	assert_int_equal(client(x, &c, cd, (size_t)n), NB_TURN_DROP_NO_CHANNEL);

	assert_int_equal(channel_bind(x, &c, u, 0x4001, PEER), 0);
	expect_success(x, NB_TURN_METHOD_CHANNEL_BIND, u, &m, &ta);
	/* Client -> peer. */
	assert_int_equal(client(x, &c, cd, (size_t)n), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_PEER);
	assert_int_equal(x->out.alloc, h);
	assert_true(addr_is(&x->out.to, PEER));
	assert_int_equal(x->out.len, 4);
	assert_memory_equal(x->out.data, payload, 4);
	/* Peer -> client: ChannelData from the bound address (the bind
	 * installed the permission), a Data indication from another port. */
	assert_int_equal(peer(x, h, PEER, payload, 5), 0);
	{
		uint16_t ch = 0;
		const uint8_t *d = NULL;
		size_t dl = 0;

		assert_int_equal(nb_turn_chandata_decode(x->out.data, x->out.len, false, &ch, &d, &dl),
				 (ssize_t)x->out.len);
		assert_int_equal(ch, 0x4001);
		assert_int_equal(dl, 5);
		assert_memory_equal(d, payload, 5);
	}
	assert_int_equal(peer(x, h, "198.51.100.20:5001", payload, 5), 0);
	decode_out(x, &m, &ta);
	assert_int_equal(m.method, NB_TURN_METHOD_DATA);

	/* RFC 8656 §11.2 rules: the same binding again refreshes; the channel
	 * to another peer, or the peer to another channel, is 400; numbers
	 * out of range are 400. */
	assert_int_equal(channel_bind(x, &c, u, 0x4001, PEER), 0);
	expect_success(x, NB_TURN_METHOD_CHANNEL_BIND, u, &m, &ta);
	assert_int_equal(channel_bind(x, &c, u, 0x4001, PEER2), 0);
	expect_error(x, NB_TURN_METHOD_CHANNEL_BIND, 400);
	assert_int_equal(channel_bind(x, &c, u, 0x4002, PEER), 0);
	expect_error(x, NB_TURN_METHOD_CHANNEL_BIND, 400);
	assert_int_equal(channel_bind(x, &c, u, 0x3FFF, PEER2), 0);
	expect_error(x, NB_TURN_METHOD_CHANNEL_BIND, 400);
	assert_int_equal(channel_bind(x, &c, u, 0x8000, PEER2), 0);
	expect_error(x, NB_TURN_METHOD_CHANNEL_BIND, 400);
	assert_int_equal(channel_bind(x, &c, u, 0x4FFF, PEER2), 0);
	expect_success(x, NB_TURN_METHOD_CHANNEL_BIND, u, &m, &ta);
	assert_int_equal(channel_bind(x, &c, u, 0x4003, "127.0.0.1:5000"), 0);
	expect_error(x, NB_TURN_METHOD_CHANNEL_BIND, 403);
	assert_int_equal(channel_bind(x, &c, u, 0x4003, "[2001:db8::1]:5000"), 0);
	expect_error(x, NB_TURN_METHOD_CHANNEL_BIND, 443);

	/* Channels last 600 s: after that ChannelData is dropped (the
	 * permission, 300 s, went first). */
	x->now += 600000;
	assert_int_equal(client(x, &c, cd, (size_t)n), NB_TURN_DROP_NO_CHANNEL);
	/* Not a whole ChannelData message. */
	assert_int_equal(client(x, &c, cd, 3), NB_TURN_DROP_MALFORMED);
}

static void test_tcp(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = tcp_client("198.51.100.7:40000", 77);
	struct nb_turn_client c_other_conn = tcp_client("198.51.100.7:40000", 78);
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
	const uint8_t payload[] = "abcde";
	uint8_t cd[64];
	char u[64];
	uint32_t h;
	ssize_t n;

	user_name(x, "alice", 3600, u, sizeof(u));
	h = allocate(x, &c, u);
	assert_int_equal(channel_bind(x, &c, u, 0x4005, PEER), 0);
	expect_success(x, NB_TURN_METHOD_CHANNEL_BIND, u, &m, &ta);
	/* Over TCP ChannelData is padded, both ways. */
	n = nb_turn_chandata_encode(cd, sizeof(cd), 0x4005, payload, 5, true);
	assert_int_equal(n, 12);
	assert_int_equal(client(x, &c, cd, (size_t)n), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_PEER);
	assert_int_equal(x->out.len, 5);
	assert_int_equal(client(x, &c, cd, 9), NB_TURN_DROP_MALFORMED); /* unpadded */
	assert_int_equal(peer(x, h, PEER, payload, 5), 0);
	assert_int_equal(x->out.len, 12);
	assert_int_equal(x->out.client.conn, 77);
	/* Another connection from the same address is another 5-tuple. */
	assert_int_equal(client(x, &c_other_conn, cd, (size_t)n), NB_TURN_DROP_NO_ALLOCATION);
	assert_int_equal(nb_turn_client_closed(x->t, &c_other_conn, x->now, &x->out), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_NONE);
	/* The connection ends: CLOSE, and the allocation is gone. */
	assert_int_equal(nb_turn_client_closed(x->t, &c, x->now, &x->out), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_CLOSE);
	assert_int_equal(x->out.alloc, h);
	assert_int_equal(stats(x)->allocs_now, 0);
	assert_int_equal(x->n_deleted, 1);
	assert_int_equal(peer(x, h, PEER, payload, 5), NB_TURN_DROP_NO_ALLOCATION);
	assert_int_equal(nb_turn_next_deadline(x->t), UINT64_MAX);

	/* Closed while its OPEN is pending: CLOSE comes with opened(). */
	{
		struct rq q;

		challenge(x, &c);
		rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
		assert_int_equal(send_rq(x, &c, &q), 0);
		assert_int_equal(x->out.kind, NB_TURN_OUT_OPEN);
		h = x->out.alloc;
		assert_int_equal(nb_turn_client_closed(x->t, &c, x->now, &x->out), 0);
		assert_int_equal(x->out.kind, NB_TURN_OUT_NONE);
		assert_int_equal(nb_turn_opened(x->t, h, 0, x->now, &x->out), 0);
		assert_int_equal(x->out.kind, NB_TURN_OUT_CLOSE);
		assert_int_equal(x->out.alloc, h);
		assert_int_equal(nb_turn_next_deadline(x->t), UINT64_MAX);
		assert_int_equal(stats(x)->allocs_now, 0);
	}
}

static void test_forbidden_peers(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	static const char *const v4_bad[] = {
		"127.0.0.1:1",   "10.1.2.3:1",      "172.16.5.5:1",   "172.31.255.1:1", "192.168.1.1:1",
		"100.64.0.1:1",  "169.254.1.1:1",   "224.0.0.1:1",    "239.255.255.250:1",
		"0.0.0.0:1",     "0.1.2.3:1",       "255.255.255.255:1", "240.0.0.1:1",
		RELAY ":1",      RELAY ":3478",     RELAY ":50020",   RELAY ":49999",   OWN2 ":9",
		OWN2 ":50005",
	};
	static const char *const v6_bad[] = {
		"[::]:1", "[::1]:1", "[fe80::1]:1", "[ff02::1]:1", "[fc00::1]:1", "[fd12::1]:1",
		"[::ffff:127.0.0.1]:1", "[::ffff:10.0.0.1]:1", "[fec0::1]:1",
	};
	static const char *const good[] = { "198.51.100.20:1", "8.8.8.8:53", "172.32.0.1:1",
					    "[2001:db8::1]:1", "100.128.0.1:1", RELAY ":50000",
					    RELAY ":50019" };
	char u[64];
	uint32_t h;

	for (size_t i = 0; i < sizeof(v4_bad) / sizeof(v4_bad[0]); i++) {
		struct nb_addr a = A(v4_bad[i]);
		assert_true(nb_turn_peer_forbidden(&x->cfg, &a));
	}
	for (size_t i = 0; i < sizeof(v6_bad) / sizeof(v6_bad[0]); i++) {
		struct nb_addr a = A(v6_bad[i]);
		assert_true(nb_turn_peer_forbidden(&x->cfg, &a));
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct nb_addr a = A(good[i]);
		assert_false(nb_turn_peer_forbidden(&x->cfg, &a));
	}

	/* Through the server: 403 for each class, nothing installed; a Send
	 * there is dropped; an IPv6 peer on an IPv4 relay is 443. */
	user_name(x, "alice", 3600, u, sizeof(u));
	h = allocate(x, &c, u);
	for (size_t i = 0; i < sizeof(v4_bad) / sizeof(v4_bad[0]); i++) {
		assert_int_equal(permit(x, &c, u, &v4_bad[i], 1), 0);
		expect_error(x, NB_TURN_METHOD_CREATE_PERMISSION, 403);
		assert_int_equal(x->last_reason, NB_TURN_REFUSE_FORBIDDEN_PEER);
		assert_int_equal(send_ind(x, &c, v4_bad[i], (const uint8_t *)"x", 1),
				 NB_TURN_DROP_FORBIDDEN);
	}
	assert_int_equal(stats(x)->refused[NB_TURN_REFUSE_FORBIDDEN_PEER],
			 sizeof(v4_bad) / sizeof(v4_bad[0]));
	{
		const char *mix[2] = { PEER, "10.0.0.1:1" };

		/* One bad peer: none installed. */
		assert_int_equal(permit(x, &c, u, mix, 2), 0);
		expect_error(x, NB_TURN_METHOD_CREATE_PERMISSION, 403);
		assert_int_equal(peer(x, h, PEER, (const uint8_t *)"x", 1), NB_TURN_DROP_NO_PERMISSION);
	}
	{
		const char *p6 = "[2001:db8::1]:1";

		assert_int_equal(permit(x, &c, u, &p6, 1), 0);
		expect_error(x, NB_TURN_METHOD_CREATE_PERMISSION, 443);
	}
}

/* Clients at a_addr and b_addr, each behind an allocation of this server
 * (of `family`: NOVAL is IPv4) on relay_host ("192.0.2.1" or "[::]" text),
 * reach each other relay to relay; the relay IP's other ports stay
 * forbidden. */
static void relay_pair_check(struct ctx *x, const char *a_addr, const char *b_addr, int family,
			     const char *relay_host)
{
	struct nb_turn_client ca = udp_client(a_addr);
	struct nb_turn_client cb = udp_client(b_addr);
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
	char u[64], ra[64], rb[64], rsrv[64];
	uint16_t pa = 0, pb = 0;
	uint32_t ha, hb;

	user_name(x, "alice", 3600, u, sizeof(u));
	ha = allocate_fam(x, &ca, u, NOVAL, family, NULL, &pa);
	hb = allocate_fam(x, &cb, u, NOVAL, family, NULL, &pb);
	snprintf(ra, sizeof(ra), "%s:%u", relay_host, pa);
	snprintf(rb, sizeof(rb), "%s:%u", relay_host, pb);
	snprintf(rsrv, sizeof(rsrv), "%s:3478", relay_host);
	challenge(x, &ca);
	permit_ok(x, &ca, u, rb);
	challenge(x, &cb);
	permit_ok(x, &cb, u, ra);
	assert_int_equal(send_ind(x, &ca, rb, (const uint8_t *)"ping", 4), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_PEER);
	assert_int_equal(x->out.alloc, ha);
	assert_true(addr_is(&x->out.to, rb));
	/* The shell delivers it to B's relay socket, from A's. */
	assert_int_equal(peer(x, hb, ra, (const uint8_t *)"ping", 4), 0);
	decode_out(x, &m, &ta);
	assert_true(nb_addr_equal(&x->out.client.addr, &cb.addr));
	assert_true(addr_is(&ta.peers[0], ra));
	/* The relay IP's permission does not open its other ports. */
	assert_int_equal(send_ind(x, &ca, rsrv, (const uint8_t *)"x", 1), NB_TURN_DROP_FORBIDDEN);
	challenge(x, &ca);
	assert_int_equal(channel_bind(x, &ca, u, 0x4000, rsrv), 0);
	expect_error(x, NB_TURN_METHOD_CHANNEL_BIND, 403);
}

static void test_relay_to_relay(void **state)
{
	relay_pair_check(*state, "198.51.100.7:40000", "192.0.2.9:40000", NOVAL, RELAY);
}

static void test_allow_private(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("10.9.9.9:40000");
	const char *priv = "10.1.2.3:4000";
	struct nb_addr a;
	char u[64];

	nb_turn_free(x->t);
	x->cfg.allow_private = true;
	start(x);
	a = A("192.168.7.7:1");
	assert_false(nb_turn_peer_forbidden(&x->cfg, &a));
	a = A("127.0.0.1:1");
	assert_true(nb_turn_peer_forbidden(&x->cfg, &a));
	a = A("169.254.0.1:1");
	assert_true(nb_turn_peer_forbidden(&x->cfg, &a));
	user_name(x, "alice", 3600, u, sizeof(u));
	allocate(x, &c, u);
	permit_ok(x, &c, u, priv);
	assert_int_equal(send_ind(x, &c, priv, (const uint8_t *)"x", 1), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_PEER);
	{
		const char *lo = "127.0.0.1:1";

		assert_int_equal(permit(x, &c, u, &lo, 1), 0);
		expect_error(x, NB_TURN_METHOD_CREATE_PERMISSION, 403);
	}
}

static void test_quotas(void **state)
{
	struct ctx *x = *state;
	char alice[64], alice2[64], bob[64], carol[64];
	struct nb_turn_client c1 = udp_client("198.51.100.7:40001");
	struct nb_turn_client c2 = udp_client("198.51.100.7:40002");
	struct nb_turn_client c3 = udp_client("198.51.100.7:40003");
	struct nb_turn_client c4 = udp_client("198.51.100.7:40004");
	struct nb_turn_client c5 = udp_client("198.51.100.7:40005");
	struct rq q;

	nb_turn_free(x->t);
	x->cfg.max_allocs_per_user = 2;
	x->cfg.max_allocs = 3;
	start(x);
	user_name(x, "alice", 3600, alice, sizeof(alice));
	user_name(x, "alice", 7200, alice2, sizeof(alice2)); /* same user, other expiry */
	user_name(x, "bob", 3600, bob, sizeof(bob));
	user_name(x, "carol", 3600, carol, sizeof(carol));
	allocate(x, &c1, alice);
	allocate(x, &c2, alice2);
	/* A third for alice: 486. */
	challenge(x, &c3);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, alice);
	assert_int_equal(send_rq(x, &c3, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 486);
	assert_int_equal(stats(x)->refused[NB_TURN_REFUSE_QUOTA_USER], 1);
	/* Bob may; then the total is reached: 508 for carol. */
	allocate(x, &c3, bob);
	challenge(x, &c4);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, carol);
	assert_int_equal(send_rq(x, &c4, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 508);
	assert_int_equal(stats(x)->refused[NB_TURN_REFUSE_QUOTA_TOTAL], 1);
	/* Alice deletes one: she may allocate again (after its CLOSE). */
	challenge(x, &c1); /* nonces are bound to the client */
	assert_int_equal(refresh(x, &c1, alice, 0), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_CLIENT);
	assert_int_equal(nb_turn_poll(x->t, x->now, &x->out), 1);
	allocate(x, &c5, alice);
	assert_int_equal(stats(x)->allocs_now, 3);
}

static void test_bandwidth(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	static uint8_t data[600];
	char u[64];
	uint32_t h;

	nb_turn_free(x->t);
	x->cfg.bandwidth_Bps = 1000;
	start(x);
	user_name(x, "alice", 3600, u, sizeof(u));
	h = allocate(x, &c, u);
	permit_ok(x, &c, u, PEER);
	/* 1 s of burst: 1000 bytes, both directions together. */
	assert_int_equal(send_ind(x, &c, PEER, data, 600), 0);
	assert_int_equal(peer(x, h, PEER, data, 600), NB_TURN_DROP_BANDWIDTH);
	assert_int_equal(peer(x, h, PEER, data, 400), 0);
	assert_int_equal(send_ind(x, &c, PEER, data, 1), NB_TURN_DROP_BANDWIDTH);
	/* Refills at 1000 B/s. */
	x->now += 300;
	assert_int_equal(send_ind(x, &c, PEER, data, 300), 0);
	assert_int_equal(send_ind(x, &c, PEER, data, 1), NB_TURN_DROP_BANDWIDTH);
	x->now += 10000; /* never more than the burst */
	assert_int_equal(peer(x, h, PEER, data, 600), 0);
	assert_int_equal(peer(x, h, PEER, data, 400), 0);
	assert_int_equal(peer(x, h, PEER, data, 1), NB_TURN_DROP_BANDWIDTH);
	assert_int_equal(DROPS(x, NB_TURN_DROP_BANDWIDTH), 4);
}

static void test_rest_checks(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	struct rq q;
	char u[64];
	static const char *const malformed[] = { "alice", ":alice", "12a:bob", "-5:bob",
						 "123456789012345678901:x" };

	challenge(x, &c);
	/* Expired (one second ago), and beyond now + max_credential_s. */
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, user_name(x, "alice", -1, u, sizeof(u)));
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 401);
	assert_int_equal(stats(x)->refused[NB_TURN_REFUSE_EXPIRED_CREDENTIALS], 1);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, user_name(x, "alice", 86401, u, sizeof(u)));
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 401);
	assert_int_equal(stats(x)->refused[NB_TURN_REFUSE_EXPIRED_CREDENTIALS], 2);
	/* Exactly now and exactly at the cap are fine. */
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, user_name(x, "alice", 86400, u, sizeof(u)));
	assert_int_equal(send_rq(x, &c, &q), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_OPEN);
	{
		uint32_t h = x->out.alloc;

		/* orphan it: the bind failing then ends it quietly */
		assert_int_equal(nb_turn_client_closed(x->t, &c, x->now, &x->out), 0);
		assert_int_equal(nb_turn_opened(x->t, h, -EADDRINUSE, x->now, &x->out), 0);
		assert_int_equal(x->out.kind, NB_TURN_OUT_NONE);
		assert_int_equal(nb_turn_opened(x->t, h, 0, x->now, &x->out), NB_TURN_DROP_NO_ALLOCATION);
	}
	/* Wrong HMAC (another secret). */
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, user_name(x, "mallory", 3600, u, sizeof(u)));
	q.secret = "not-the-secret";
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 401);
	assert_int_equal(stats(x)->refused[NB_TURN_REFUSE_UNAUTHORIZED], 1);
	/* Another realm. */
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, user_name(x, "alice", 3600, u, sizeof(u)));
	q.realm = "elsewhere";
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 401);
	/* Malformed REST usernames (signed with the right secret). */
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, malformed[i]);
		assert_int_equal(send_rq(x, &c, &q), 0);
		expect_error(x, NB_TURN_METHOD_ALLOCATE, 401);
	}
	assert_int_equal(stats(x)->refused[NB_TURN_REFUSE_UNAUTHORIZED], 2 + 5);
	/* MESSAGE-INTEGRITY without NONCE: 400. */
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, user_name(x, "alice", 3600, u, sizeof(u)));
	q.no_nonce = true;
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 400);
	/* USERNAME without MESSAGE-INTEGRITY: a challenge. */
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.no_mi = true;
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 401);
	assert_int_equal(stats(x)->allocs_now, 0);
}

static void test_stale_nonce(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	struct nb_turn_client other = udp_client("198.51.100.8:40000");
	struct rq q;
	char u[64];
	uint8_t old[64];
	size_t old_len;

	user_name(x, "alice", 3600, u, sizeof(u));
	challenge(x, &c);
	memcpy(old, x->nonce, x->nonce_len);
	old_len = x->nonce_len;
	/* Another client may not use this client's nonce. */
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	assert_int_equal(send_rq(x, &other, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 438);
	/* Garbage nonces. */
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.nonce = (const uint8_t *)"00000000000000000000000000000000";
	q.nonce_len = 32;
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 438);
	q.nonce = (const uint8_t *)"short";
	q.nonce_len = 5;
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 438);
	/* The old nonce, past nonce_lifetime_s: 438 with a new one that works. */
	x->now += 601000;
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.nonce = old;
	q.nonce_len = old_len;
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 438);
	assert_memory_not_equal(x->nonce, old, 32);
	assert_int_equal(stats(x)->refused[NB_TURN_REFUSE_STALE_NONCE], 4);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	assert_int_equal(send_rq(x, &c, &q), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_OPEN);
}

static void test_mismatch_wrong_user(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	struct nb_turn_client c2 = udp_client("198.51.100.7:40009");
	const char *p = PEER;
	char alice[64], bob[64];

	user_name(x, "alice", 3600, alice, sizeof(alice));
	user_name(x, "bob", 3600, bob, sizeof(bob));
	/* No allocation: Refresh, CreatePermission, ChannelBind get 437. */
	challenge(x, &c2);
	assert_int_equal(refresh(x, &c2, alice, 600), 0);
	expect_error(x, NB_TURN_METHOD_REFRESH, 437);
	assert_int_equal(permit(x, &c2, alice, &p, 1), 0);
	expect_error(x, NB_TURN_METHOD_CREATE_PERMISSION, 437);
	assert_int_equal(channel_bind(x, &c2, alice, 0x4000, PEER), 0);
	expect_error(x, NB_TURN_METHOD_CHANNEL_BIND, 437);
	/* Bob on alice's allocation: 441, for every method. */
	allocate(x, &c, alice);
	assert_int_equal(refresh(x, &c, bob, 600), 0);
	expect_error(x, NB_TURN_METHOD_REFRESH, 441);
	assert_int_equal(permit(x, &c, bob, &p, 1), 0);
	expect_error(x, NB_TURN_METHOD_CREATE_PERMISSION, 441);
	{
		struct rq q;

		rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, bob);
		assert_int_equal(send_rq(x, &c, &q), 0);
		expect_error(x, NB_TURN_METHOD_ALLOCATE, 441);
	}
	assert_int_equal(stats(x)->refused[NB_TURN_REFUSE_WRONG_CREDENTIALS], 3);
	/* ... and the allocation is untouched. */
	assert_int_equal(refresh(x, &c, alice, 600), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_CLIENT);
}

static void test_allocate_errors(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	struct rq q;
	char u[64];

	user_name(x, "alice", 3600, u, sizeof(u));
	challenge(x, &c);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.transport = 6; /* TCP */
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 442);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.transport = NOVAL;
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 400);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.family = NB_TURN_FAMILY_IPV6;
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 440);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.even_port = true;
	q.token = (const uint8_t *)"12345678"; /* both: 400 (RFC 8656 §7.2 step 5) */
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 400);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.token = (const uint8_t *)"12345678"; /* a token we never gave: 508 */
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 508);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.unknown_attr = 0x7ff1;
	assert_int_equal(send_rq(x, &c, &q), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 420);
	{
		struct nb_stun_msg m;

		assert_int_equal(nb_stun_decode(&m, x->out.data, x->out.len), (ssize_t)x->out.len);
		assert_int_equal(m.n_unknown_attrs, 1);
		assert_int_equal(m.unknown_attrs[0], 0x7ff1);
	}
	/* Family IPv4 explicitly is fine. */
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.family = NB_TURN_FAMILY_IPV4;
	assert_int_equal(send_rq(x, &c, &q), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_OPEN);
	/* Not ours: Binding, garbage, a classic-looking message. */
	rq_init(x, &q, NB_STUN_METHOD_BINDING, NULL);
	q.transport = NOVAL;
	assert_int_equal(send_rq(x, &c, &q), NB_TURN_DROP_METHOD);
	assert_int_equal(client(x, &c, (const uint8_t *)"hello world!", 12), NB_TURN_DROP_MALFORMED);
	assert_int_equal(client(x, &c, NULL, 0), NB_TURN_DROP_MALFORMED);
	{
		struct nb_turn_client bad = udp_client("198.51.100.7:0");

		assert_int_equal(client(x, &bad, (const uint8_t *)"x", 1), NB_TURN_DROP_SOURCE);
		bad = udp_client("224.0.0.1:5");
		assert_int_equal(client(x, &bad, (const uint8_t *)"x", 1), NB_TURN_DROP_SOURCE);
	}
}

static void test_tables_full(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	const char *three[3] = { "198.51.100.30:1", "198.51.100.31:1", "198.51.100.32:1" };
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
	char u[64];
	uint32_t h;

	nb_turn_free(x->t);
	x->cfg.max_perms = 2;
	x->cfg.max_channels = 1;
	start(x);
	user_name(x, "alice", 3600, u, sizeof(u));
	h = allocate(x, &c, u);
	/* Three new IPs in one request do not fit in two: none installed. */
	assert_int_equal(permit(x, &c, u, three, 3), 0);
	expect_error(x, NB_TURN_METHOD_CREATE_PERMISSION, 508);
	assert_int_equal(stats(x)->refused[NB_TURN_REFUSE_PERMS_FULL], 1);
	assert_int_equal(peer(x, h, three[0], (const uint8_t *)"x", 1), NB_TURN_DROP_NO_PERMISSION);
	/* Two fit (a duplicate counts once); a third does not; a refresh does. */
	{
		const char *dup[3] = { three[0], three[1], "198.51.100.30:9" };

		assert_int_equal(permit(x, &c, u, dup, 3), 0);
		expect_success(x, NB_TURN_METHOD_CREATE_PERMISSION, u, &m, &ta);
	}
	assert_int_equal(permit(x, &c, u, &three[2], 1), 0);
	expect_error(x, NB_TURN_METHOD_CREATE_PERMISSION, 508);
	permit_ok(x, &c, u, three[1]);
	/* Expired permissions free their slots. */
	x->now += 300000;
	permit_ok(x, &c, u, three[2]);
	/* Channels: one; a second is 508. */
	assert_int_equal(channel_bind(x, &c, u, 0x4000, three[2]), 0);
	expect_success(x, NB_TURN_METHOD_CHANNEL_BIND, u, &m, &ta);
	assert_int_equal(channel_bind(x, &c, u, 0x4001, "198.51.100.32:2"), 0);
	expect_error(x, NB_TURN_METHOD_CHANNEL_BIND, 508);
	assert_int_equal(stats(x)->refused[NB_TURN_REFUSE_CHANNELS_FULL], 1);
}

static void test_bind_failure(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	struct rq q;
	char u[64];
	uint16_t ports[NB_TURN_OPEN_TRIES];
	uint32_t h;

	user_name(x, "alice", 3600, u, sizeof(u));
	challenge(x, &c);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.fp = true;
	assert_int_equal(send_rq(x, &c, &q), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_OPEN);
	h = x->out.alloc;
	ports[0] = x->out.port;
	for (unsigned i = 1; i < NB_TURN_OPEN_TRIES; i++) {
		assert_int_equal(nb_turn_opened(x->t, h, -EADDRINUSE, x->now, &x->out), 0);
		assert_int_equal(x->out.kind, NB_TURN_OUT_OPEN);
		assert_int_equal(x->out.alloc, h);
		ports[i] = x->out.port;
		for (unsigned j = 0; j < i; j++)
			assert_int_not_equal(ports[i], ports[j]);
	}
	assert_int_equal(nb_turn_opened(x->t, h, -EADDRINUSE, x->now, &x->out), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 508);
	{
		struct nb_stun_msg m;
		uint8_t key[NB_TURN_KEY_LEN];

		assert_int_equal(nb_stun_decode(&m, x->out.data, x->out.len), (ssize_t)x->out.len);
		assert_memory_equal(m.tid, q.tid, NB_STUN_TID_LEN);
		assert_true(m.present & NB_STUN_HAS_FINGERPRINT);
		key_of(u, key);
		assert_int_equal(nb_stun_check_integrity(&m, x->out.data, x->out.len, key, 16), 0);
	}
	assert_int_equal(stats(x)->refused[NB_TURN_REFUSE_CAPACITY], 1);
	assert_int_equal(nb_turn_opened(x->t, h, 0, x->now, &x->out), NB_TURN_DROP_NO_ALLOCATION);
	assert_int_equal(nb_turn_next_deadline(x->t), UINT64_MAX);
	/* The 5-tuple is free: a new Allocate works. */
	allocate(x, &c, u);
	assert_int_equal(stats(x)->allocs_now, 1);

	/* Every port taken: 508 at once. */
	nb_turn_free(x->t);
	x->cfg.port_lo = 50000;
	x->cfg.port_hi = 50001;
	start(x);
	allocate(x, &c, u);
	allocate(x, &(struct nb_turn_client){ .addr = A("198.51.100.7:40001") }, u);
	{
		struct nb_turn_client c3 = udp_client("198.51.100.7:40002");

		challenge(x, &c3);
		rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
		assert_int_equal(send_rq(x, &c3, &q), 0);
		expect_error(x, NB_TURN_METHOD_ALLOCATE, 508);
	}
}

/* Flip bits of every byte of an authenticated request: never a success,
 * never an OPEN; and no prefix of it is one either. */
static void mutate_all(struct ctx *x, const struct nb_turn_client *c, const uint8_t *good, size_t n,
		       bool has_alloc)
{
	uint8_t buf[512];
	static const uint8_t flips[] = { 0x01, 0x80, 0xff };

	assert_true(n <= sizeof(buf));
	for (size_t i = 0; i < n; i++)
		for (size_t f = 0; f < sizeof(flips); f++) {
			struct nb_stun_msg m;
			int rc;

			memcpy(buf, good, n);
			buf[i] ^= flips[f];
			rc = client(x, c, buf, n);
			if (rc < 0)
				continue;
			assert_int_not_equal(x->out.kind, NB_TURN_OUT_OPEN);
			assert_int_not_equal(x->out.kind, NB_TURN_OUT_PEER);
			if (x->out.kind == NB_TURN_OUT_NONE)
				continue;
			assert_int_equal(nb_stun_decode(&m, x->out.data, x->out.len), (ssize_t)x->out.len);
			if (m.cls != NB_STUN_CLASS_ERROR)
				fail_msg("byte %zu ^ 0x%02x: class 0x%x", i, flips[f], m.cls);
		}
	for (size_t k = 0; k < n; k++) {
		int rc = client(x, c, good, k);
		struct nb_stun_msg m;

		if (rc < 0 || x->out.kind == NB_TURN_OUT_NONE)
			continue;
		assert_int_equal(x->out.kind, NB_TURN_OUT_CLIENT);
		assert_int_equal(nb_stun_decode(&m, x->out.data, x->out.len), (ssize_t)x->out.len);
		assert_int_equal(m.cls, NB_STUN_CLASS_ERROR);
	}
	(void)has_alloc;
}

static void test_mutation(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	struct nb_turn_client c2 = udp_client("198.51.100.7:40002");
	struct rq q;
	uint8_t buf[512];
	size_t n;
	char u[64];
	int fp;

	user_name(x, "alice", 3600, u, sizeof(u));
	for (fp = 0; fp < 2; fp++) {
		/* Allocate, authenticated: the original would succeed (OPEN). */
		challenge(x, &c);
		rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
		q.fp = fp != 0;
		q.lifetime = 1200;
		n = build(x, &q, buf, sizeof(buf));
		mutate_all(x, &c, buf, n, false);
		assert_int_equal(stats(x)->allocs_now, 0);
		assert_int_equal(nb_turn_next_deadline(x->t), UINT64_MAX);
		assert_int_equal(client(x, &c, buf, n), 0);
		assert_int_equal(x->out.kind, NB_TURN_OUT_OPEN);
		assert_int_equal(nb_turn_opened(x->t, x->out.alloc, 0, x->now, &x->out), 0);
		/* Refresh and CreatePermission on the live allocation. */
		rq_init(x, &q, NB_TURN_METHOD_REFRESH, u);
		q.fp = fp != 0;
		q.lifetime = 0;
		n = build(x, &q, buf, sizeof(buf));
		mutate_all(x, &c, buf, n, true);
		assert_int_equal(stats(x)->allocs_now, 1);
		rq_init(x, &q, NB_TURN_METHOD_CREATE_PERMISSION, u);
		q.fp = fp != 0;
		q.peers[0] = A(PEER);
		q.n_peers = 1;
		n = build(x, &q, buf, sizeof(buf));
		mutate_all(x, &c, buf, n, true);
		/* No mutation installed a permission. */
		assert_int_equal(send_ind(x, &c, PEER, (const uint8_t *)"x", 1), NB_TURN_DROP_NO_PERMISSION);
		assert_int_equal(client(x, &c, buf, n), 0);
		assert_int_equal(send_ind(x, &c, PEER, (const uint8_t *)"x", 1), 0);
		/* Delete it for the next round. */
		assert_int_equal(refresh(x, &c, u, 0), 0);
		assert_int_equal(nb_turn_poll(x->t, x->now, &x->out), 1);
		x->now += 1000;
	}
	/* A request signed for one 5-tuple replayed from another: the nonce
	 * is bound to the client address. */
	challenge(x, &c);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	n = build(x, &q, buf, sizeof(buf));
	assert_int_equal(client(x, &c2, buf, n), 0);
	expect_error(x, NB_TURN_METHOD_ALLOCATE, 438);
}

/* ---- IPv6 and dual stack -------------------------------------------------------- */

/* An Allocate with this family (NOVAL: none) and additional family;
 * returns the error code, or 0 when it asked for an OPEN. */
static int allocate_code(struct ctx *x, const struct nb_turn_client *c, const char *u, int family,
			 int additional)
{
	struct rq q;
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;

	challenge(x, c);
	rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
	q.family = family;
	q.additional = additional;
	assert_int_equal(send_rq(x, c, &q), 0);
	if (x->out.kind == NB_TURN_OUT_OPEN)
		return 0;
	decode_out(x, &m, &ta);
	assert_int_equal(m.cls, NB_STUN_CLASS_ERROR);
	return m.error_code;
}

/* Dual stack: IPv6 when asked, IPv4 by default; one port pool; each
 * allocation keeps to its family (443 for the other one's peers, Refresh
 * naming the other family; data of the other family dropped). */
static void test_v6_allocation(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c6 = udp_client("[2001:db8:1::7]:40000");
	struct nb_turn_client c4 = udp_client("198.51.100.7:40000");
	struct nb_turn_client cx = udp_client("198.51.100.8:40000"); /* v4 client, v6 relay */
	const char *p4 = PEER;
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
	char u[64];
	uint16_t port6 = 0, port4 = 0, portx = 0;
	uint32_t h6, h4, hx;

	user_name(x, "alice", 3600, u, sizeof(u));
	h6 = allocate_fam(x, &c6, u, NOVAL, NB_TURN_FAMILY_IPV6, NULL, &port6);
	h4 = allocate_fam(x, &c4, u, NOVAL, NOVAL, NULL, &port4);
	hx = allocate_fam(x, &cx, u, NOVAL, NB_TURN_FAMILY_IPV6, NULL, &portx);
	assert_int_not_equal(port6, port4); /* one pool for both families */
	assert_int_not_equal(port6, portx);
	assert_int_not_equal(port4, portx);
	assert_int_equal(stats(x)->allocs_now, 3);
	/* A retransmitted IPv6 Allocate gets the same IPv6 relayed address. */
	{
		struct rq q;

		x->tid_counter--; /* the same transaction ID as the last Allocate */
		rq_init(x, &q, NB_TURN_METHOD_ALLOCATE, u);
		q.family = NB_TURN_FAMILY_IPV6;
		assert_int_equal(send_rq(x, &cx, &q), 0);
		expect_success(x, NB_TURN_METHOD_ALLOCATE, u, &m, &ta);
		assert_true(nb_addr_ip_equal(&ta.relayed, &x->cfg.relay_ip[NB_FAM_V6]));
		assert_int_equal(ta.relayed.port, portx);
	}

	/* The IPv6 allocation: IPv6 peers only. */
	challenge(x, &c6);
	assert_int_equal(permit(x, &c6, u, &p4, 1), 0);
	expect_error(x, NB_TURN_METHOD_CREATE_PERMISSION, 443);
	assert_int_equal(x->last_reason, NB_TURN_REFUSE_PEER_FAMILY);
	assert_int_equal(channel_bind(x, &c6, u, 0x4001, PEER), 0);
	expect_error(x, NB_TURN_METHOD_CHANNEL_BIND, 443);
	permit_ok(x, &c6, u, PEER6);
	assert_int_equal(send_ind(x, &c6, PEER6, (const uint8_t *)"six", 3), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_PEER);
	assert_int_equal(x->out.alloc, h6);
	assert_true(addr_is(&x->out.to, PEER6));
	assert_int_equal(send_ind(x, &c6, PEER, (const uint8_t *)"x", 1), NB_TURN_DROP_FORBIDDEN);
	assert_int_equal(peer(x, h6, PEER6, (const uint8_t *)"back", 4), 0);
	decode_out(x, &m, &ta);
	assert_true(nb_addr_equal(&x->out.client.addr, &c6.addr));
	assert_true(addr_is(&ta.peers[0], PEER6));
	/* Data from an IPv4 source never reaches an IPv6 allocation. */
	assert_int_equal(peer(x, h6, PEER, (const uint8_t *)"x", 1), NB_TURN_DROP_NO_PERMISSION);
	/* The IPv6 relay IP from the IPv4 client works the same. */
	challenge(x, &cx);
	permit_ok(x, &cx, u, PEER6);
	assert_int_equal(peer(x, hx, PEER6, (const uint8_t *)"y", 1), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_CLIENT);
	assert_true(nb_addr_equal(&x->out.client.addr, &cx.addr));

	/* The IPv4 allocation: IPv4 peers only. */
	{
		const char *p6 = PEER6;

		challenge(x, &c4);
		assert_int_equal(permit(x, &c4, u, &p6, 1), 0);
		expect_error(x, NB_TURN_METHOD_CREATE_PERMISSION, 443);
		assert_int_equal(channel_bind(x, &c4, u, 0x4001, PEER6), 0);
		expect_error(x, NB_TURN_METHOD_CHANNEL_BIND, 443);
		permit_ok(x, &c4, u, PEER);
		assert_int_equal(peer(x, h4, PEER6, (const uint8_t *)"x", 1),
				 NB_TURN_DROP_NO_PERMISSION);
		assert_int_equal(peer(x, h4, PEER, (const uint8_t *)"x", 1), 0);
	}

	/* RFC 8656 §8: Refresh naming another family than the allocation's:
	 * 443; naming its own family: fine. */
	{
		struct rq q;

		challenge(x, &c6);
		rq_init(x, &q, NB_TURN_METHOD_REFRESH, u);
		q.family = NB_TURN_FAMILY_IPV4;
		assert_int_equal(send_rq(x, &c6, &q), 0);
		expect_error(x, NB_TURN_METHOD_REFRESH, 443);
		rq_init(x, &q, NB_TURN_METHOD_REFRESH, u);
		q.family = NB_TURN_FAMILY_IPV6;
		assert_int_equal(send_rq(x, &c6, &q), 0);
		expect_success(x, NB_TURN_METHOD_REFRESH, u, &m, &ta);
		challenge(x, &c4);
		rq_init(x, &q, NB_TURN_METHOD_REFRESH, u);
		q.family = NB_TURN_FAMILY_IPV6;
		assert_int_equal(send_rq(x, &c4, &q), 0);
		expect_error(x, NB_TURN_METHOD_REFRESH, 443);
		rq_init(x, &q, NB_TURN_METHOD_REFRESH, u);
		q.family = NB_TURN_FAMILY_IPV4;
		assert_int_equal(send_rq(x, &c4, &q), 0);
		expect_success(x, NB_TURN_METHOD_REFRESH, u, &m, &ta);
	}
	/* Deleting an IPv6 allocation gives back its port. */
	challenge(x, &c6);
	assert_int_equal(refresh(x, &c6, u, 0), 0);
	expect_success(x, NB_TURN_METHOD_REFRESH, u, &m, &ta);
	assert_int_equal(nb_turn_poll(x->t, x->now, &x->out), 1);
	assert_int_equal(x->out.kind, NB_TURN_OUT_CLOSE);
	assert_int_equal(x->out.alloc, h6);
	assert_int_equal(x->out.port, port6);
}

/* 440 for a family without a relay IP, whichever way it is asked; dual
 * allocations refused. */
static void test_family_unsupported(void **state)
{
	struct ctx *x = *state; /* IPv4 only */
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	char u[64];

	user_name(x, "alice", 3600, u, sizeof(u));
	assert_int_equal(allocate_code(x, &c, u, NB_TURN_FAMILY_IPV6, NOVAL), 440);
	assert_int_equal(x->last_reason, NB_TURN_REFUSE_FAMILY);
	assert_int_equal(allocate_code(x, &c, u, 0x03, NOVAL), 440); /* no such family */
	/* RFC 8656 §7.2: both attributes: 400; ADDITIONAL alone: we make
	 * no dual allocations, 440. */
	assert_int_equal(allocate_code(x, &c, u, NB_TURN_FAMILY_IPV4, NB_TURN_FAMILY_IPV6), 400);
	assert_int_equal(allocate_code(x, &c, u, NOVAL, NB_TURN_FAMILY_IPV6), 440);
	assert_int_equal(stats(x)->allocs_now, 0);
	assert_int_equal(stats(x)->refused[NB_TURN_REFUSE_FAMILY], 3);

	/* IPv6 only: no attribute (that is IPv4) and IPv4 are 440. */
	nb_turn_free(x->t);
	x->t = NULL;
	memset(&x->cfg.relay_ip[NB_FAM_V4], 0, sizeof(x->cfg.relay_ip[NB_FAM_V4]));
	x->cfg.relay_ip[NB_FAM_V6] = A(RELAY6);
	start(x);
	assert_int_equal(allocate_code(x, &c, u, NOVAL, NOVAL), 440);
	assert_int_equal(allocate_code(x, &c, u, NB_TURN_FAMILY_IPV4, NOVAL), 440);
	assert_int_equal(allocate_code(x, &c, u, NOVAL, NB_TURN_FAMILY_IPV6), 440);
	assert_int_equal(stats(x)->allocs_now, 0);
	assert_int_equal(allocate_code(x, &c, u, NB_TURN_FAMILY_IPV6, NOVAL), 0);
	assert_true(nb_addr_ip_equal(&x->out.to, &x->cfg.relay_ip[NB_FAM_V6]));
}

/* Dual stack, in both families: dual allocation still refused. */
static void test_dual_no_additional(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("198.51.100.7:40000");
	char u[64];

	user_name(x, "alice", 3600, u, sizeof(u));
	assert_int_equal(allocate_code(x, &c, u, NOVAL, NB_TURN_FAMILY_IPV6), 440);
	assert_int_equal(allocate_code(x, &c, u, NB_TURN_FAMILY_IPV4, NB_TURN_FAMILY_IPV6), 400);
	assert_int_equal(allocate_code(x, &c, u, 0x00, NOVAL), 440);
	assert_int_equal(stats(x)->allocs_now, 0);
}

/* The peer policy with both relay IPs: each one's relay ports are other
 * allocations (reachable), its other ports forbidden; two IPv6 clients
 * reach each other relay to relay. */
static void test_relay_to_relay_v6(void **state)
{
	struct ctx *x = *state;
	static const char *const bad[] = {
		"[" RELAY6 "]:1", "[" RELAY6 "]:3478", "[" RELAY6 "]:49999", "[" RELAY6 "]:50020",
		RELAY ":3478",    RELAY ":50020",
	};
	static const char *const good[] = {
		"[" RELAY6 "]:50000", "[" RELAY6 "]:50019", RELAY ":50000", RELAY ":50019",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct nb_addr a = A(bad[i]);
		assert_true(nb_turn_peer_forbidden(&x->cfg, &a));
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct nb_addr a = A(good[i]);
		assert_false(nb_turn_peer_forbidden(&x->cfg, &a));
	}
	/* The IPv6 relay IP is forbidden as such even when it is not in own[]. */
	{
		struct nb_turn_config c = x->cfg;
		struct nb_addr a = A("[" RELAY6 "]:3478");

		c.n_own = 0;
		assert_true(nb_turn_peer_forbidden(&c, &a));
		a.port = 50001;
		assert_false(nb_turn_peer_forbidden(&c, &a));
	}

	relay_pair_check(x, "[2001:db8:1::7]:40000", "[2001:db8:2::9]:40000", NB_TURN_FAMILY_IPV6,
			 "[" RELAY6 "]");
}

/* An IPv6-only server: the whole flow over IPv6. */
static void test_v6_only(void **state)
{
	struct ctx *x = *state;
	struct nb_turn_client c = udp_client("[2001:db8:1::7]:40000");
	char u[64];
	uint16_t port = 0;
	uint32_t h;

	user_name(x, "alice", 3600, u, sizeof(u));
	h = allocate_fam(x, &c, u, NOVAL, NB_TURN_FAMILY_IPV6, NULL, &port);
	challenge(x, &c);
	assert_int_equal(channel_bind(x, &c, u, 0x4002, PEER6), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_CLIENT);
	assert_int_equal(peer(x, h, PEER6, (const uint8_t *)"abcd", 4), 0);
	assert_int_equal(x->out.kind, NB_TURN_OUT_CLIENT);
	assert_int_equal(x->out.len, 8); /* ChannelData: 4 + 4 */
	assert_int_equal(nb_get_u16be(x->out.data), 0x4002);
	{
		struct nb_addr own6 = A("[" RELAY6 "]:3478");
		assert_true(nb_turn_peer_forbidden(&x->cfg, &own6));
	}
}

static void test_poll_order(void **state)
{
	struct ctx *x = *state;
	char u[64];
	uint32_t h[6];
	long lts[6] = { 3000, 700, NOVAL, 1500, 900, 2500 };
	uint32_t seen = 0;
	uint64_t t0;

	user_name(x, "u", 3600, u, sizeof(u));
	nb_turn_free(x->t);
	x->cfg.max_allocs_per_user = 100;
	start(x);
	t0 = x->now;
	for (unsigned i = 0; i < 6; i++) {
		char a[32];
		struct nb_turn_client c;

		snprintf(a, sizeof(a), "198.51.100.7:%u", 41000 + i);
		c = udp_client(a);
		h[i] = allocate_lt(x, &c, u, lts[i], NULL, NULL);
	}
	/* CLOSEs come in deadline order, one per poll. */
	{
		static const unsigned order[6] = { 2, 1, 4, 3, 5, 0 };

		for (unsigned k = 0; k < 6; k++) {
			uint64_t d = nb_turn_next_deadline(x->t);

			assert_true(d >= t0);
			assert_int_equal(nb_turn_poll(x->t, d - 1, &x->out), 0);
			assert_int_equal(nb_turn_poll(x->t, d, &x->out), 1);
			assert_int_equal(x->out.alloc, h[order[k]]);
			seen++;
		}
	}
	assert_int_equal(seen, 6);
	assert_int_equal(stats(x)->allocs_expired, 6);
	assert_int_equal(nb_turn_next_deadline(x->t), UINT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allocate_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lifetimes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_even_port_reservation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_permission_send_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_channels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forbidden_peers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_to_relay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_private, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quotas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bandwidth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rest_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_nonce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mismatch_wrong_user, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allocate_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tables_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mutation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v6_allocation, setup_dual, teardown),
		cmocka_unit_test_setup_teardown(test_family_unsupported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dual_no_additional, setup_dual, teardown),
		cmocka_unit_test_setup_teardown(test_relay_to_relay_v6, setup_dual, teardown),
		cmocka_unit_test_setup_teardown(test_v6_only, setup_v6only, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
