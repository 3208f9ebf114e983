/* tests/unit/test_rendezvous.c - the rendezvous engine, message flow by
 * message flow: register, re-register, names held by keys, tokens, expiry,
 * keepalive, bye, connect (both plans for each kind of pair, each side told
 * the other's key), the pushed plan's retransmission, results and the
 * matrix, forged results, unsealed requests, list access, paging, the reply
 * cache, limits, and garbage.
 *
 * Every request is sent as if it came out of a Noise session: with the
 * sender's static key, by default one derived from the request's "id" (so
 * "alice" always has alice's key), or for id-less messages the key of the
 * peer registered at the source; h_as() overrides it for the next send,
 * h_plain() sends the next one unsealed (key NULL). After every send the
 * harness checks how each datagram out is to be sealed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/rendezvous.h"
#include "common/keys.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

/* The number after the 5-character prefix of "peer-NN-xxx..." (NN), fully checked. */
static int id_index(const char *id)
{
	char *end;
	unsigned long v;

	assert_true(strlen(id) > 5);
	errno = 0;
	v = strtoul(id + 5, &end, 10);
	assert_int_equal(errno, 0);
	assert_true((*end == '-' || *end == '\0') && end != id + 5 && v < 100000);
	return (int)v;
}

#define E_MS 45000 /* default expiry: 3 x 15 s */

/* ---- Harness -------------------------------------------------------------- */

struct rec {
	enum nb_rendezvous_event_kind kind;
	enum nb_rendezvous_limit limit;
	enum nb_registry_change change;
	uint16_t code;
	char id[NB_CTRL_ID_MAX + 1], peer[NB_CTRL_ID_MAX + 1], session[NB_CTRL_SESSION_LEN + 1];
	char reason[NB_CTRL_REASON_MAX + 1];
	struct nb_addr addr, other_addr;
	enum nb_path path;
	enum nb_ctrl_outcome outcome;
	uint32_t ms;
	bool has_key;
	char key_text[NB_KEY_TEXT_LEN + 1];
	enum nb_ctrl_type request;
	uint32_t delay_a, delay_b, rtt_a, rtt_b;
	bool rtt_timed;
	struct nb_ctrl_birthday birthday;
};

#define MAX_REC 512
#define MAX_HOLDERS 256

/* Who registered what, as the harness saw it: the key each id was
 * registered with (the last REGISTERED reply wins). */
struct holder {
	char id[NB_CTRL_ID_MAX + 1];
	uint8_t key[NB_KEY_LEN];
	struct nb_addr addr;
};

struct h {
	struct nb_rendezvous *rv;
	struct rec ev[MAX_REC];
	size_t n_ev;
	uint64_t ctr;  /* for tx and random bytes */
	uint8_t rnd[NB_RENDEZVOUS_RANDOM_LEN];
	struct nb_rendezvous_out out;
	struct nb_ctrl_msg m[2]; /* out.d[] decoded */
	char tx[NB_CTRL_TX_LEN + 1]; /* of the last request built by the helpers */
	struct nb_ctrl_msg req;      /* the last datagram sent, decoded */
	struct holder holders[MAX_HOLDERS];
	size_t n_holders;
	bool as_set, plain;          /* one-shot overrides for the next send */
	uint8_t as_key[NB_KEY_LEN];
	uint8_t used_key[NB_KEY_LEN]; /* the key the last send carried ... */
	bool used_plain;              /* ... or none */
};

/* The static key of `name`: 32 bytes that depend on every byte of name. */
static void key_of(const char *name, uint8_t out[NB_KEY_LEN])
{
	uint64_t x = 1469598103934665603ULL;

	for (size_t i = 0; name[i] != '\0'; i++)
		x = (x ^ (unsigned char)name[i]) * 1099511628211ULL;
	for (unsigned i = 0; i < NB_KEY_LEN; i += 8) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		memcpy(out + i, &z, 8);
	}
}

/* The text form of name's key, in a rotating static buffer. */
static const char *key_text_of(const char *name)
{
	static char text[4][NB_KEY_TEXT_LEN + 1];
	static unsigned k;
	uint8_t key[NB_KEY_LEN];

	key_of(name, key);
	k = (k + 1) % 4;
	nb_key_to_text(key, text[k]);
	return text[k];
}

/* The next send carries name's key (an impostor, a second device ...). */
static void h_as(struct h *h, const char *name)
{
	key_of(name, h->as_key);
	h->as_set = true;
}

/* The next send arrives unsealed. */
static void h_plain(struct h *h)
{
	h->plain = true;
}

static const struct holder *holder_by_id(const struct h *h, const char *id)
{
	for (size_t i = 0; i < h->n_holders; i++)
		if (strcmp(h->holders[i].id, id) == 0)
			return &h->holders[i];
	return NULL;
}

static bool holder_key_at(const struct h *h, const struct nb_addr *a, const uint8_t *key)
{
	for (size_t i = 0; i < h->n_holders; i++)
		if (nb_addr_equal(&h->holders[i].addr, a) && memcmp(h->holders[i].key, key, NB_KEY_LEN) == 0)
			return true;
	return false;
}

static void on_event(void *arg, const struct nb_rendezvous_event *ev)
{
	struct h *h = arg;
	struct rec *r;

	assert_true(h->n_ev < MAX_REC);
	r = &h->ev[h->n_ev++];
	memset(r, 0, sizeof(*r));
	r->kind = ev->kind;
	r->limit = ev->limit;
	r->change = ev->change;
	r->code = ev->code;
	assert_non_null(ev->id);
	assert_non_null(ev->peer);
	assert_non_null(ev->session);
	assert_non_null(ev->reason);
	snprintf(r->id, sizeof(r->id), "%s", ev->id);
	snprintf(r->peer, sizeof(r->peer), "%s", ev->peer);
	snprintf(r->session, sizeof(r->session), "%s", ev->session);
	snprintf(r->reason, sizeof(r->reason), "%s", ev->reason);
	r->addr = ev->addr;
	r->other_addr = ev->other_addr;
	r->path = ev->path;
	r->outcome = ev->outcome;
	r->ms = ev->ms;
	assert_non_null(ev->key_text);
	r->has_key = ev->key != NULL;
	if (ev->key != NULL) {
		char t[NB_KEY_TEXT_LEN + 1];
		nb_key_to_text(ev->key, t);
		assert_string_equal(ev->key_text, t);
	} else {
		assert_string_equal(ev->key_text, "");
	}
	snprintf(r->key_text, sizeof(r->key_text), "%s", ev->key_text);
	r->request = ev->request;
	r->delay_a = ev->delay_a;
	r->delay_b = ev->delay_b;
	r->rtt_a = ev->rtt_a;
	r->rtt_b = ev->rtt_b;
	r->rtt_timed = ev->rtt_timed;
	r->birthday = ev->birthday;
}

/* Most tests are about what follows a register: they take registers
 * without the challenge round trip (test_register_cookie checks it). */
static bool h_cookies;
/* Most tests list freely; test_list_access checks the admin token. */
static bool h_private;
#define ADMIN "adm1n t0ken"

static struct h *h_new(const struct nb_rendezvous_config *cfg_in)
{
	struct nb_rendezvous_config cfg;
	struct h *h = calloc(1, sizeof(*h));

	assert_non_null(h);
	if (cfg_in != NULL)
		cfg = *cfg_in;
	else
		nb_rendezvous_config_default(&cfg);
	for (unsigned i = 0; i < sizeof(cfg.hash_key); i++)
		cfg.hash_key[i] = (uint8_t)(0xA5 ^ i);
	cfg.require_cookie = h_cookies;
	cfg.public_list = !h_private;
	snprintf(cfg.admin_token, sizeof(cfg.admin_token), "%s", ADMIN);
	cfg.event_cb = on_event;
	cfg.event_arg = h;
	assert_int_equal(nb_rendezvous_new(&cfg, &h->rv), 0);
	return h;
}

static void h_free(struct h *h)
{
	nb_rendezvous_free(h->rv);
	free(h);
}

static struct nb_addr A(const char *s)
{
	struct nb_addr a;

	memset(&a, 0, sizeof(a));
	assert_int_equal(nb_addr_parse(s, false, &a), 0);
	return a;
}

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static const char *next_tx(struct h *h)
{
	snprintf(h->tx, sizeof(h->tx), "%016llx", (unsigned long long)++h->ctr);
	return h->tx;
}

/* The id a request speaks for, or NULL. */
static const char *req_id(const struct nb_ctrl_msg *m)
{
	switch (m->type) {
	case NB_CTRL_REGISTER:
		return m->u.reg.id;
	case NB_CTRL_KEEPALIVE:
		return m->u.keepalive.id;
	case NB_CTRL_BYE:
		return m->u.bye.id;
	case NB_CTRL_CONNECT:
		return m->u.connect.id;
	case NB_CTRL_RESULT:
		return m->u.result.id;
	default:
		return NULL;
	}
}

/* Send raw bytes (sealed with the default or overriding key, or plain);
 * decode what comes out into h->m[] and check how each datagram is to be
 * sealed. Returns out.n. */
static size_t send_raw(struct h *h, const char *from, uint64_t now, const uint8_t *buf, size_t len)
{
	struct nb_addr f = A(from);
	uint64_t seed = ++h->ctr * 7919;
	bool decoded = nb_ctrl_decode(&h->req, buf, len) == (ssize_t)len;
	const char *id = decoded ? req_id(&h->req) : NULL;
	const struct holder *at = NULL;

	for (unsigned i = 0; i < NB_RENDEZVOUS_RANDOM_LEN; i += 8) {
		uint64_t v = splitmix(&seed);
		memcpy(h->rnd + i, &v, 8);
	}
	/* the key: override, the id's, the key registered at the source, the source's */
	for (size_t i = 0; i < h->n_holders; i++)
		if (nb_addr_equal(&h->holders[i].addr, &f))
			at = &h->holders[i];
	if (h->as_set)
		memcpy(h->used_key, h->as_key, NB_KEY_LEN);
	else if (id != NULL)
		key_of(id, h->used_key);
	else if (at != NULL)
		memcpy(h->used_key, at->key, NB_KEY_LEN);
	else
		key_of(from, h->used_key);
	h->used_plain = h->plain;
	h->as_set = h->plain = false;

	memset(&h->out, 0xEE, sizeof(h->out));
	assert_int_equal(nb_rendezvous_handle_keyed(h->rv, buf, len, &f, h->used_plain ? NULL : h->used_key,
						    now, h->rnd, sizeof(h->rnd), &h->out), 0);
	assert_true(h->out.n <= NB_RENDEZVOUS_MAX_OUT);
	for (size_t i = 0; i < h->out.n; i++) {
		assert_true(h->out.d[i].len > 0 && h->out.d[i].len <= NB_CTRL_MAX_DATAGRAM);
		assert_int_equal(nb_ctrl_decode(&h->m[i], h->out.d[i].data, h->out.d[i].len),
				 (ssize_t)h->out.d[i].len);
	}
	if (h->out.n >= 1 && (h->m[0].type != NB_CTRL_PROBE || h->out.tcp_probe)) {
		assert_true(nb_addr_equal(&h->out.d[0].to, &f)); /* d[0] answers the source */
		assert_false(h->out.d[0].from_alt_port);
		/* ... in the sender's session, or plain to a plain request */
		assert_int_equal(h->out.d[0].sealed, !h->used_plain);
		if (!h->used_plain)
			assert_memory_equal(h->out.d[0].key, h->used_key, NB_KEY_LEN);
	}
	if (h->out.n >= 1 && h->m[0].type == NB_CTRL_PROBE && !h->out.tcp_probe) { /* ... or probes the source's IP, plain */
		static const uint8_t zero[NB_KEY_LEN];
		assert_true(nb_addr_ip_equal(&h->out.d[0].to, &f) && h->out.d[0].from_alt_port);
		assert_false(h->out.d[0].sealed);
		assert_memory_equal(h->out.d[0].key, zero, NB_KEY_LEN);
	}
	if (h->used_plain)
		assert_true(h->out.n == 0 ||
			    (h->out.n == 1 && h->m[0].type == NB_CTRL_ERROR && h->out.d[0].len <= len));
	if (h->out.n == 2 && h->out.tcp_probe) {
		/* a TCP verify: the probe or a 504, both to the source in its session */
		assert_int_equal(h->m[1].type, NB_CTRL_ERROR);
		assert_true(nb_addr_equal(&h->out.d[1].to, &f) && h->out.d[1].sealed);
		assert_memory_equal(h->out.d[1].key, h->used_key, NB_KEY_LEN);
	} else if (h->out.n == 2) {
		/* a connect's pushed plan: to the other side's address, in its
		 * session; each plan names the other side's key */
		const struct holder *b = holder_by_id(h, h->req.u.connect.peer);
		char t[NB_KEY_TEXT_LEN + 1];
		assert_int_equal(h->req.type, NB_CTRL_CONNECT);
		assert_non_null(b);
		assert_true(h->out.d[1].sealed);
		assert_false(h->out.d[1].from_alt_port);
		assert_memory_equal(h->out.d[1].key, b->key, NB_KEY_LEN);
		assert_true(nb_addr_equal(&h->out.d[1].to, &b->addr));
		nb_key_to_text(b->key, t);
		assert_string_equal(h->m[0].u.plan.peer_key, t);
		nb_key_to_text(h->used_key, t);
		assert_string_equal(h->m[1].u.plan.peer_key, t);
	}
	if (h->out.n >= 1 && h->m[0].type == NB_CTRL_REGISTERED &&
	    !(h->req.type == NB_CTRL_REGISTER && h->req.u.reg.also)) { /* plans go to the first address */
		struct holder *x = (struct holder *)holder_by_id(h, h->m[0].u.registered.id);
		if (x == NULL) {
			assert_true(h->n_holders < MAX_HOLDERS);
			x = &h->holders[h->n_holders++];
		}
		snprintf(x->id, sizeof(x->id), "%s", h->m[0].u.registered.id);
		memcpy(x->key, h->used_key, NB_KEY_LEN);
		x->addr = f;
	}
	return h->out.n;
}

static size_t send_json(struct h *h, const char *from, uint64_t now, const char *json)
{
	return send_raw(h, from, now, (const uint8_t *)json, strlen(json));
}

__attribute__((format(printf, 4, 5))) static size_t sendf(struct h *h, const char *from,
							   uint64_t now, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	return send_json(h, from, now, buf);
}

#define HDR "{\"v\":1,\"type\":\"%s\",\"tx\":\"%s\""
/* A list query is answered with at most its own length: pad it (docs/protocol.md "peers"). */
#define D10 ".........."
#define D100 D10 D10 D10 D10 D10 D10 D10 D10 D10 D10
#define PAD ",\"pad\":\"" D100 D100 D100 D100 D100 D100 D100 D100 D100 D100 D100 "\""

/* Register with a NAT given as "mapping/filtering" words (NULL: no nat). */
static size_t reg_full(struct h *h, const char *id, const char *from, uint64_t now,
		       const char *mapping, const char *filtering, const char *locals,
		       const char *upnp_ext, const char *token)
{
	char nat[200] = "", upnp[160] = "", tok[100] = "";

	if (mapping != NULL)
		snprintf(nat, sizeof(nat), ",\"nat\":{\"mapping\":\"%s\",\"filtering\":\"%s\"}", mapping,
			 filtering);
	if (upnp_ext != NULL) { /* verified first: the broker's probe carries the proof */
		assert_int_equal(sendf(h, from, now, HDR ",\"external\":\"%s\"}", "verify", next_tx(h), upnp_ext), 1);
		assert_int_equal(h->m[0].type, NB_CTRL_PROBE);
		snprintf(upnp, sizeof(upnp), ",\"upnp\":{\"status\":\"mapped\",\"external\":\"%s\",\"proof\":\"%s\"}",
			 upnp_ext, h->m[0].u.probe.proof);
	}
	if (token != NULL)
		snprintf(tok, sizeof(tok), ",\"token\":\"%s\"", token);
	return sendf(h, from, now, HDR ",\"id\":\"%s\"%s,\"local\":[%s]%s%s}", "register", next_tx(h),
		     id, tok, locals != NULL ? locals : "", nat, upnp);
}

static void reg_ok(struct h *h, const char *id, const char *from, uint64_t now, const char *kind)
{
	const char *m = NULL, *f = NULL;

	if (kind == NULL) {
	} else if (strcmp(kind, "open") == 0) {
		m = "none", f = "endpoint-independent";
	} else if (strcmp(kind, "fc") == 0) {
		m = "endpoint-independent", f = "endpoint-independent";
	} else if (strcmp(kind, "rc") == 0) {
		m = "endpoint-independent", f = "address-dependent";
	} else if (strcmp(kind, "prc") == 0) {
		m = "endpoint-independent", f = "address-and-port-dependent";
	} else {
		m = "address-and-port-dependent", f = "address-and-port-dependent"; /* sym */
	}
	assert_int_equal(reg_full(h, id, from, now, m, f, NULL, NULL, NULL), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
}

static size_t connect_(struct h *h, const char *from, uint64_t now, const char *id, const char *peer)
{
	return sendf(h, from, now, HDR ",\"id\":\"%s\",\"peer\":\"%s\"}", "connect", next_tx(h), id, peer);
}

static void expect_error(struct h *h, uint16_t code, const char *reason)
{
	assert_int_equal(h->out.n, 1);
	assert_int_equal(h->m[0].type, NB_CTRL_ERROR);
	assert_int_equal(h->m[0].u.error.code, code);
	if (reason != NULL)
		assert_string_equal(h->m[0].u.error.reason, reason);
}

static size_t count_ev(const struct h *h, enum nb_rendezvous_event_kind k)
{
	size_t n = 0;

	for (size_t i = 0; i < h->n_ev; i++)
		n += h->ev[i].kind == k;
	return n;
}

static const struct rec *last_ev(const struct h *h)
{
	assert_true(h->n_ev > 0);
	return &h->ev[h->n_ev - 1];
}

static struct nb_rendezvous_stats stats(const struct h *h)
{
	struct nb_rendezvous_stats st;

	nb_rendezvous_get_stats(h->rv, &st);
	return st;
}

/* Poll at now; returns datagrams written (cap 8) and checks they decode. */
static size_t poll_(struct h *h, uint64_t now, struct nb_rendezvous_dgram *out)
{
	size_t n = 99;

	assert_int_equal(nb_rendezvous_poll(h->rv, now, out, 8, &n), 0);
	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++) {
		struct nb_ctrl_msg m;
		assert_int_equal(nb_ctrl_decode(&m, out[i].data, out[i].len), (ssize_t)out[i].len);
		assert_int_equal(m.type, NB_CTRL_PLAN);
		/* a retransmitted plan: sealed to the key registered at its destination */
		assert_true(out[i].sealed);
		assert_true(holder_key_at(h, &out[i].to, out[i].key));
	}
	return n;
}

/* ---- register ---------------------------------------------------------------- */

static void test_register(void **state)
{
	struct h *h = h_new(NULL);
	struct nb_addr old = A("203.0.113.1:4000"), now_at = A("203.0.113.1:4001");

	(void)state;
	assert_int_equal(reg_full(h, "alice", "203.0.113.1:4000", 0, "endpoint-independent",
				  "address-dependent", "\"192.168.1.10:4000\"", NULL, NULL), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	assert_string_equal(h->m[0].tx, h->tx);
	assert_string_equal(h->m[0].u.registered.id, "alice");
	assert_true(nb_addr_equal(&h->m[0].u.registered.reflexive, &old));
	assert_int_equal(h->m[0].u.registered.keepalive_s, 15);
	assert_int_equal(h->m[0].u.registered.expires_s, 45);
	assert_int_equal(last_ev(h)->kind, NB_RV_EVENT_REGISTERED);
	assert_int_equal(last_ev(h)->change, NB_REGISTRY_NEW);

	/* again from the same address: refreshed */
	reg_ok(h, "alice", "203.0.113.1:4000", 10, "rc");
	assert_int_equal(last_ev(h)->change, NB_REGISTRY_REFRESHED);
	/* from a new address (the NAT's mapping changed): moved */
	reg_ok(h, "alice", "203.0.113.1:4001", 20, "rc");
	assert_true(nb_addr_equal(&h->m[0].u.registered.reflexive, &now_at));
	assert_int_equal(last_ev(h)->change, NB_REGISTRY_MOVED);
	assert_true(nb_addr_equal(&last_ev(h)->other_addr, &old));

	assert_true(last_ev(h)->has_key);
	assert_string_equal(last_ev(h)->key_text, key_text_of("alice"));

	/* bob holds his id (with a token, which decides nothing); another key
	 * elsewhere, with the same token: 409 */
	assert_int_equal(reg_full(h, "bob", "198.51.100.2:1", 30, NULL, NULL, NULL, NULL, "x"), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	h_as(h, "mallory");
	assert_int_equal(reg_full(h, "bob", "198.51.100.3:1", 40, NULL, NULL, NULL, NULL, "x"), 1);
	expect_error(h, 409, "'bob' is held by another key");
	assert_string_equal(h->m[0].tx, h->tx);
	assert_int_equal(last_ev(h)->kind, NB_RV_EVENT_REFUSED);
	assert_int_equal(last_ev(h)->code, 409);
	assert_string_equal(last_ev(h)->key_text, key_text_of("mallory"));
	assert_int_equal(stats(h).key_conflicts, 1);
	/* bob's key from there, with another token: moved */
	assert_int_equal(reg_full(h, "bob", "198.51.100.3:1", 50, NULL, NULL, NULL, NULL, "y"), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	assert_int_equal(last_ev(h)->change, NB_REGISTRY_MOVED);
	assert_int_equal(stats(h).peers, 2);
	h_free(h);
}

static void test_token(void **state)
{
	struct nb_rendezvous_config cfg;
	struct h *h;

	(void)state;
	nb_rendezvous_config_default(&cfg);
	snprintf(cfg.token, sizeof(cfg.token), "s3cret");
	h = h_new(&cfg);
	reg_full(h, "alice", "203.0.113.1:1", 0, NULL, NULL, NULL, NULL, NULL);
	expect_error(h, 401, "token required");
	reg_full(h, "alice", "203.0.113.1:1", 0, NULL, NULL, NULL, NULL, "s3cre");
	expect_error(h, 401, "wrong token");
	reg_full(h, "alice", "203.0.113.1:1", 0, NULL, NULL, NULL, NULL, "s3cret!");
	expect_error(h, 401, "wrong token");
	assert_int_equal(stats(h).peers, 0);
	reg_full(h, "alice", "203.0.113.1:1", 0, NULL, NULL, NULL, NULL, "s3cret");
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	/* the holder's key moves ... */
	reg_full(h, "alice", "203.0.113.1:2", 1, NULL, NULL, NULL, NULL, "s3cret");
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	assert_int_equal(last_ev(h)->change, NB_REGISTRY_MOVED);
	/* ... another key with the broker's token does not take the name */
	h_as(h, "mallory");
	reg_full(h, "alice", "203.0.113.1:3", 2, NULL, NULL, NULL, NULL, "s3cret");
	expect_error(h, 409, "'alice' is held by another key");
	/* the token is checked first: a wrong one is 401 whoever holds the name */
	h_as(h, "mallory");
	reg_full(h, "alice", "203.0.113.1:3", 3, NULL, NULL, NULL, NULL, "nope");
	expect_error(h, 401, "wrong token");
	assert_int_equal(stats(h).peers, 1);
	h_free(h);
}

static void test_keepalive_expiry(void **state)
{
	struct h *h = h_new(NULL);
	struct nb_rendezvous_dgram out[8];

	(void)state;
	sendf(h, "203.0.113.1:1", 0, HDR ",\"id\":\"alice\"}", "keepalive", next_tx(h));
	expect_error(h, 404, "no peer 'alice'");
	reg_ok(h, "alice", "203.0.113.1:1", 0, "fc");
	assert_int_equal(nb_rendezvous_next_deadline(h->rv), E_MS);
	sendf(h, "203.0.113.1:1", 1000, HDR ",\"id\":\"alice\"}", "keepalive", next_tx(h));
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	assert_string_equal(h->m[0].tx, h->tx);
	assert_int_equal(nb_rendezvous_next_deadline(h->rv), 1000 + E_MS);
	/* a keepalive must come from the registered address ... */
	sendf(h, "203.0.113.1:2", 2000, HDR ",\"id\":\"alice\"}", "keepalive", next_tx(h));
	expect_error(h, 404, "'alice' is registered from another address");
	assert_int_equal(nb_rendezvous_next_deadline(h->rv), 1000 + E_MS);
	/* ... with the holder's key (from her very address too) */
	h_as(h, "mallory");
	sendf(h, "203.0.113.1:1", 2000, HDR ",\"id\":\"alice\"}", "keepalive", next_tx(h));
	expect_error(h, 404, "'alice' is not held by this key");
	assert_int_equal(nb_rendezvous_next_deadline(h->rv), 1000 + E_MS);
	assert_int_equal(stats(h).not_holder, 1);

	h->n_ev = 0;
	assert_int_equal(poll_(h, 1000 + E_MS - 1, out), 0);
	assert_int_equal(h->n_ev, 0);
	assert_int_equal(poll_(h, 1000 + E_MS, out), 0);
	assert_int_equal(h->n_ev, 1);
	assert_int_equal(h->ev[0].kind, NB_RV_EVENT_EXPIRED);
	assert_string_equal(h->ev[0].id, "alice");
	assert_int_equal(nb_rendezvous_next_deadline(h->rv), UINT64_MAX);
	sendf(h, "203.0.113.1:1", 1000 + E_MS, HDR ",\"id\":\"alice\"}", "keepalive", next_tx(h));
	expect_error(h, 404, "no peer 'alice'");
	assert_int_equal(stats(h).expired, 1);
	h_free(h);
}

/* Expiry also happens on the way into handle(): no timer needed for it to count. */
static void test_expired_on_handle(void **state)
{
	struct h *h = h_new(NULL);

	(void)state;
	reg_ok(h, "bob", "203.0.113.2:1", 0, "fc");
	reg_ok(h, "alice", "203.0.113.1:1", 30000, "fc");
	h->n_ev = 0;
	connect_(h, "203.0.113.1:1", E_MS, "alice", "bob");
	expect_error(h, 404, "no peer 'bob'");
	assert_int_equal(h->ev[0].kind, NB_RV_EVENT_EXPIRED);
	assert_string_equal(h->ev[0].id, "bob");
	assert_false(h->out.rnd_used);
	h_free(h);
}

static void test_full_registry(void **state)
{
	struct nb_rendezvous_config cfg;
	struct h *h;
	char carol[512];
	size_t len;

	(void)state;
	nb_rendezvous_config_default(&cfg);
	cfg.max_peers = 2;
	h = h_new(&cfg);
	reg_ok(h, "alice", "203.0.113.1:1", 0, "fc");
	reg_ok(h, "bob", "203.0.113.2:1", 1000, "fc");
	len = (size_t)snprintf(carol, sizeof(carol), HDR ",\"id\":\"carol\",\"local\":[]}", "register",
			       next_tx(h));
	send_raw(h, "203.0.113.3:1", 2000, (const uint8_t *)carol, len);
	expect_error(h, 503, "registry full (2 peers)");
	assert_int_equal(last_ev(h)->kind, NB_RV_EVENT_LIMIT);
	assert_int_equal(last_ev(h)->limit, NB_RV_LIMIT_PEERS);
	assert_int_equal(stats(h).full_peers, 1);
	/* existing ids still refresh */
	reg_ok(h, "alice", "203.0.113.1:1", 3000, "fc");
	/* 503 is not cached: the same datagram, once bob has expired, succeeds */
	send_raw(h, "203.0.113.3:1", 1000 + E_MS, (const uint8_t *)carol, len);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	h_free(h);
}

/* ---- connect: both plans ------------------------------------------------------ */

struct plan_case {
	const char *name;
	const char *kind_a, *kind_b;
	const char *addr_a, *addr_b;
	const char *locals_a, *locals_b; /* JSON array bodies */
	const char *upnp_b;              /* b's UPnP external, or NULL */
	enum nb_path path;
	enum nb_role role_a, role_b;
	uint32_t delay_a, delay_b;
	const char *cand_a[4]; /* what the asker gets: b's addresses, in order */
	const char *cand_b[4]; /* what b gets: a's addresses */
	const char *reason;    /* exact, or NULL */
};

#define D NB_ROLE_DIAL
#define L NB_ROLE_LISTEN
#define P NB_ROLE_PUNCH
#define R NB_ROLE_PRIME
#define N NB_ROLE_NONE

static const struct plan_case plan_cases[] = {
	{ "fc asks sym: fc listens", "fc", "sym", "203.0.113.1:1000", "198.51.100.2:2000", NULL, NULL,
	  NULL, NB_PATH_DIRECT, L, D, 0, 0, { "198.51.100.2:2000" }, { "203.0.113.1:1000" },
	  "alice (full-cone) admits unsolicited packets: bob dials, alice listens" },
	{ "sym asks fc: sym dials", "sym", "fc", "203.0.113.1:1000", "198.51.100.2:2000", NULL, NULL,
	  NULL, NB_PATH_DIRECT, D, L, 0, 0, { "198.51.100.2:2000" }, { "203.0.113.1:1000" },
	  "bob (full-cone) admits unsolicited packets: alice dials, bob listens" },
	{ "rc asks sym: rc primes, sym dials after the delay", "rc", "sym", "203.0.113.1:1000",
	  "198.51.100.2:2000", NULL, NULL, NULL, NB_PATH_DIRECT, R, D, 0, 100,
	  { "198.51.100.2:2000" }, { "203.0.113.1:1000" },
	  "alice (restricted-cone) primes its filter toward bob's IP first, then bob (symmetric) dials" },
	{ "sym asks rc: the asker dials after the delay", "sym", "rc", "203.0.113.1:1000",
	  "198.51.100.2:2000", NULL, NULL, NULL, NB_PATH_DIRECT, D, R, 100, 0,
	  { "198.51.100.2:2000" }, { "203.0.113.1:1000" }, NULL },
	{ "prc vs prc: simultaneous punch", "prc", "prc", "203.0.113.1:1000", "198.51.100.2:2000",
	  "\"10.0.0.5:1000\"", "\"10.0.0.6:2000\"", NULL, NB_PATH_DIRECT, P, P, 0, 0,
	  { "198.51.100.2:2000" }, { "203.0.113.1:1000" }, /* different public IPs: no LAN */
	  "both map endpoint-independently: simultaneous punch" },
	{ "sym vs sym: a relay, the asker allocates", "sym", "sym", "203.0.113.1:1000", "198.51.100.2:2000",
	  NULL, NULL, NULL, NB_PATH_RELAY, NB_ROLE_RELAY, D, 0, 0, { "198.51.100.2:2000" },
	  { "203.0.113.1:1000" },
	  "symmetric vs symmetric: no direct path without port prediction; alice allocates on the "
	  "relay, bob sends to it" },
	{ "same public IP: LAN addresses first", "sym", "sym", "203.0.113.1:1000", "203.0.113.1:2000",
	  "\"192.168.1.10:1000\",\"0.0.0.0:5\",\"[fe80::1]:1000\"", "\"192.168.1.20:2000\"", NULL,
	  NB_PATH_LAN, P, P, 0, 0, { "192.168.1.20:2000", "203.0.113.1:2000" },
	  { "192.168.1.10:1000", "[fe80::1]:1000", "203.0.113.1:1000" }, /* 0.0.0.0 left out */
	  "same public IP: both send to each other's LAN addresses" },
	{ "b has a UPnP mapping: external first", "sym", "prc", "203.0.113.1:1000",
	  "198.51.100.2:2000", NULL, "\"192.168.1.20:2000\"", "198.51.100.2:51000", NB_PATH_UPNP, D,
	  L, 0, 0, { "198.51.100.2:51000", "198.51.100.2:2000" }, { "203.0.113.1:1000" },
	  "bob listens on its verified port mapping; alice dials it" },
};

static void kind_words(const char *k, const char **m, const char **f)
{
	if (strcmp(k, "fc") == 0)
		*m = "endpoint-independent", *f = "endpoint-independent";
	else if (strcmp(k, "rc") == 0)
		*m = "endpoint-independent", *f = "address-dependent";
	else if (strcmp(k, "prc") == 0)
		*m = "endpoint-independent", *f = "address-and-port-dependent";
	else
		*m = "address-and-port-dependent", *f = "address-and-port-dependent";
}

static bool path_direct_or_lan(enum nb_path p)
{
	return p == NB_PATH_DIRECT || p == NB_PATH_LAN;
}

static void check_cands(const struct nb_ctrl_plan *p, const char *const *want)
{
	size_t n = 0;

	while (n < 4 && want[n] != NULL) {
		struct nb_addr w = A(want[n]);
		assert_true(n < p->n_candidates);
		assert_true(nb_addr_equal(&p->candidates[n], &w));
		n++;
	}
	assert_int_equal(p->n_candidates, n);
}

static void test_connect_plans(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(plan_cases) / sizeof(plan_cases[0]); i++) {
		const struct plan_case *c = &plan_cases[i];
		struct h *h = h_new(NULL);
		const char *m, *f;
		char session[17], ptx[17], user[80], req_tx[17];
		struct nb_addr aa = A(c->addr_a), ab = A(c->addr_b);
		const struct nb_ctrl_plan *pa, *pb;

		print_message("case: %s\n", c->name);
		kind_words(c->kind_a, &m, &f);
		assert_int_equal(reg_full(h, "alice", c->addr_a, 0, m, f, c->locals_a, NULL, NULL), 1);
		kind_words(c->kind_b, &m, &f);
		assert_int_equal(reg_full(h, "bob", c->addr_b, 0, m, f, c->locals_b, c->upnp_b, NULL), 1);
		assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
		h->n_ev = 0;
		assert_int_equal(connect_(h, c->addr_a, 100, "alice", "bob"), 2);
		snprintf(req_tx, sizeof(req_tx), "%s", h->tx);
		assert_true(h->out.rnd_used);
		nb_ctrl_hex(h->rnd, 8, session);
		nb_ctrl_hex(h->rnd + 40, 8, ptx);
		snprintf(user, sizeof(user), "%s:alice", session);

		/* d[0]: the asker's plan, the reply (same tx) */
		assert_int_equal(h->m[0].type, NB_CTRL_PLAN);
		assert_string_equal(h->m[0].tx, req_tx);
		assert_true(nb_addr_equal(&h->out.d[0].to, &aa));
		pa = &h->m[0].u.plan;
		assert_string_equal(pa->session, session);
		assert_string_equal(pa->peer, "bob");
		assert_int_equal(pa->path, c->path);
		assert_int_equal(pa->role, c->role_a);
		assert_int_equal(pa->delay_ms, c->delay_a);
		assert_int_equal(pa->deadline_ms, 5000);
		assert_string_equal(pa->username, user);
		assert_string_equal(pa->peer_key, key_text_of("bob")); /* whom to handshake with */
		assert_true(h->out.d[0].sealed);
		assert_string_equal(h->m[0].u.plan.peer_key, key_text_of("bob"));
		check_cands(pa, c->cand_a);
		if (c->reason != NULL)
			assert_string_equal(pa->reason, c->reason);

		/* d[1]: the other side's plan, a request of its own */
		assert_int_equal(h->m[1].type, NB_CTRL_PLAN);
		assert_string_equal(h->m[1].tx, ptx);
		assert_true(nb_addr_equal(&h->out.d[1].to, &ab));
		pb = &h->m[1].u.plan;
		assert_string_equal(pb->session, session);
		assert_string_equal(pb->peer, "alice");
		assert_int_equal(pb->path, c->path);
		assert_int_equal(pb->role, c->role_b);
		assert_int_equal(pb->delay_ms, c->delay_b);
		assert_string_equal(pb->username, user); /* one username for both sides */
		assert_string_equal(pb->peer_key, key_text_of("alice"));
		assert_true(h->out.d[1].sealed); /* in bob's session */
		{
			uint8_t kb[NB_KEY_LEN];
			key_of("bob", kb);
			assert_memory_equal(h->out.d[1].key, kb, NB_KEY_LEN);
		}
		assert_string_equal(pb->reason, pa->reason);
		check_cands(pb, c->cand_b);

		assert_int_equal(h->n_ev, 1);
		assert_int_equal(h->ev[0].kind, NB_RV_EVENT_CONNECT);
		assert_string_equal(h->ev[0].session, session);
		assert_string_equal(h->ev[0].id, "alice");
		assert_string_equal(h->ev[0].peer, "bob");
		assert_string_equal(h->ev[0].key_text, key_text_of("alice"));
		assert_int_equal(stats(h).sessions, 1);
		assert_int_equal(stats(h).pairs, 1);
		h_free(h);
	}
}


static void test_connect_errors(void **state)
{
	struct h *h = h_new(NULL);

	(void)state;
	reg_ok(h, "alice", "203.0.113.1:1", 0, "fc");
	connect_(h, "203.0.113.9:9", 10, "zed", "alice");
	expect_error(h, 404, "no peer 'zed'");
	connect_(h, "203.0.113.1:2", 10, "alice", "bob");
	expect_error(h, 404, "'alice' is registered from another address");
	h_as(h, "mallory"); /* from alice's address, under another key */
	connect_(h, "203.0.113.1:1", 10, "alice", "bob");
	expect_error(h, 404, "'alice' is not held by this key");
	connect_(h, "203.0.113.1:1", 10, "alice", "alice");
	expect_error(h, 400, "cannot connect to oneself");
	connect_(h, "203.0.113.1:1", 10, "alice", "nobody");
	expect_error(h, 404, "no peer 'nobody'");
	assert_false(h->out.rnd_used);
	assert_int_equal(stats(h).sessions, 0);
	assert_int_equal(stats(h).pairs, 0);
	assert_int_equal(count_ev(h, NB_RV_EVENT_REFUSED), 5);
	h_free(h);
}

/* ---- the pushed plan -------------------------------------------------------------- */

static void setup_pair(struct h *h, struct nb_rendezvous_dgram *push, char *ptx)
{
	reg_ok(h, "alice", "203.0.113.1:1", 0, "fc");
	reg_ok(h, "bob", "198.51.100.2:2", 0, "prc");
	assert_int_equal(connect_(h, "203.0.113.1:1", 0, "alice", "bob"), 2);
	*push = h->out.d[1];
	snprintf(ptx, NB_CTRL_TX_LEN + 1, "%s", h->m[1].tx);
}

static void test_push_until_ack(void **state)
{
	struct h *h = h_new(NULL);
	struct nb_rendezvous_dgram push, out[8];
	char ptx[17];

	(void)state;
	setup_pair(h, &push, ptx);
	assert_int_equal(nb_rendezvous_next_deadline(h->rv), 250);
	assert_int_equal(poll_(h, 249, out), 0);
	assert_int_equal(poll_(h, 250, out), 1);
	assert_int_equal(out[0].len, push.len); /* byte for byte the same */
	assert_memory_equal(out[0].data, push.data, push.len);
	assert_true(nb_addr_equal(&out[0].to, &push.to));
	assert_int_equal(nb_rendezvous_next_deadline(h->rv), 750);
	assert_int_equal(poll_(h, 749, out), 0);
	assert_int_equal(poll_(h, 750, out), 1);
	assert_memory_equal(out[0].data, push.data, push.len);
	/* bob acknowledges; the ack is not answered */
	h->n_ev = 0;
	assert_int_equal(sendf(h, "198.51.100.2:2", 800, HDR "}", "ack", ptx), 0);
	assert_int_equal(h->n_ev, 1);
	assert_int_equal(h->ev[0].kind, NB_RV_EVENT_PUSH_ACKED);
	assert_string_equal(h->ev[0].peer, "bob");
	assert_int_equal(poll_(h, 1750, out), 0);
	assert_int_equal(poll_(h, E_MS - 1, out), 0);
	assert_int_equal(nb_rendezvous_next_deadline(h->rv), E_MS); /* only the registry's */
	/* a second ack, or one with an unknown tx: ignored */
	assert_int_equal(sendf(h, "198.51.100.2:2", 900, HDR "}", "ack", ptx), 0);
	assert_int_equal(stats(h).ignored, 1);
	assert_int_equal(stats(h).push_acked, 1);
	assert_int_equal(stats(h).push_retransmits, 2);
	h_free(h);
}

static void test_push_gives_up(void **state)
{
	static const uint64_t at[] = { 250, 750, 1750, 3750, 7750 };
	struct h *h = h_new(NULL);
	struct nb_rendezvous_dgram push, out[8];
	char ptx[17];

	(void)state;
	setup_pair(h, &push, ptx);
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		assert_int_equal(nb_rendezvous_next_deadline(h->rv), at[i]);
		assert_int_equal(poll_(h, at[i] - 1, out), 0);
		assert_int_equal(poll_(h, at[i], out), 1);
		assert_memory_equal(out[0].data, push.data, push.len);
	}
	/* 6 sends in all; then a final wait of 16 x RTO */
	assert_int_equal(nb_rendezvous_next_deadline(h->rv), 11750);
	h->n_ev = 0;
	assert_int_equal(poll_(h, 11749, out), 0);
	assert_int_equal(h->n_ev, 0);
	assert_int_equal(poll_(h, 11750, out), 0);
	assert_int_equal(h->n_ev, 1);
	assert_int_equal(h->ev[0].kind, NB_RV_EVENT_PUSH_FAILED);
	assert_int_equal(h->ev[0].code, 0);
	assert_int_equal(poll_(h, 20000, out), 0);
	assert_int_equal(stats(h).pushes, 1);
	assert_int_equal(stats(h).push_retransmits, 5);
	assert_int_equal(stats(h).push_failed, 1);
	/* a late ack changes nothing */
	assert_int_equal(sendf(h, "198.51.100.2:2", 20001, HDR "}", "ack", ptx), 0);
	assert_int_equal(stats(h).push_acked, 0);
	h_free(h);
}

static void test_push_refused(void **state)
{
	struct h *h = h_new(NULL);
	struct nb_rendezvous_dgram push, out[8];
	char ptx[17];

	(void)state;
	setup_pair(h, &push, ptx);
	h->n_ev = 0;
	assert_int_equal(sendf(h, "198.51.100.2:2", 100, HDR ",\"code\":400,\"reason\":\"no\"}", "error",
			       ptx), 0);
	assert_int_equal(h->n_ev, 1);
	assert_int_equal(h->ev[0].kind, NB_RV_EVENT_PUSH_FAILED);
	assert_int_equal(h->ev[0].code, 400);
	assert_int_equal(poll_(h, 250, out), 0);
	h_free(h);
}

/* The poll output is bounded: a full out[] says "call again". */
static void test_poll_bounded(void **state)
{
	struct h *h = h_new(NULL);
	struct nb_rendezvous_dgram out[8];
	size_t n = 0;
	char id[8];

	(void)state;
	reg_ok(h, "hub", "203.0.113.1:1", 0, "fc");
	for (int i = 0; i < 5; i++) {
		char as[32];
		snprintf(id, sizeof(id), "p%d", i);
		snprintf(as, sizeof(as), "198.51.100.%d:1", i + 1);
		reg_ok(h, id, as, 0, "fc");
		assert_int_equal(connect_(h, "203.0.113.1:1", 0, "hub", id), 2);
	}
	assert_int_equal(nb_rendezvous_poll(h->rv, 250, out, 2, &n), 1);
	assert_int_equal(n, 2);
	assert_int_equal(nb_rendezvous_poll(h->rv, 250, out, 2, &n), 1);
	assert_int_equal(n, 2);
	assert_int_equal(nb_rendezvous_poll(h->rv, 250, out, 2, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(nb_rendezvous_poll(h->rv, 250, NULL, 0, &n), 0);
	assert_int_equal(n, 0);
	h_free(h);
}

/* ---- results and the matrix ---------------------------------------------------------- */

static void result(struct h *h, const char *from, uint64_t now, const char *session,
		   const char *id, const char *outcome, const char *path, uint32_t ms)
{
	sendf(h, from, now, HDR ",\"session\":\"%s\",\"id\":\"%s\",\"outcome\":\"%s\",\"path\":\"%s\","
			     "\"ms\":%u}",
	      "result", next_tx(h), session, id, outcome, path, ms);
}

/* The matrix entry of the pair {x, y} at now (asserts it exists). */
static struct nb_ctrl_pair matrix_pair(struct h *h, uint64_t now, const char *x, const char *y)
{
	uint32_t offset = 0;

	for (;;) {
		struct nb_ctrl_matrix_list *l;
		sendf(h, "192.0.2.200:1", now, HDR ",\"offset\":%u" PAD "}", "matrix", next_tx(h), offset);
		assert_int_equal(h->m[0].type, NB_CTRL_MATRIX_LIST);
		l = &h->m[0].u.matrix_list;
		for (size_t i = 0; i < l->n_pairs; i++)
			if ((strcmp(l->pairs[i].a, x) == 0 && strcmp(l->pairs[i].b, y) == 0) ||
			    (strcmp(l->pairs[i].a, y) == 0 && strcmp(l->pairs[i].b, x) == 0))
				return l->pairs[i];
		assert_true(l->n_pairs > 0);
		offset = l->offset + (uint32_t)l->n_pairs;
		assert_true(offset < l->total);
	}
}

/* ---- Two families (docs/protocol.md "IPv6") ------------------------------------------ */

/* register with "also" from `from`, with the NAT words (NULL: no nat) */
static size_t reg_also(struct h *h, const char *id, const char *from, uint64_t now, const char *mapping,
		       const char *filtering)
{
	char nat[200] = "";

	if (mapping != NULL)
		snprintf(nat, sizeof(nat), ",\"nat\":{\"mapping\":\"%s\",\"filtering\":\"%s\"}", mapping,
			 filtering);
	return sendf(h, from, now, HDR ",\"id\":\"%s\",\"local\":[]%s,\"also\":true}", "register",
		     next_tx(h), id, nat);
}

#define APDF "address-and-port-dependent"
#define SYM_M "address-and-port-dependent"

static void test_dual_family(void **state)
{
	struct nb_rendezvous_config cfg;
	struct nb_ctrl_pair pr;
	struct h *h;
	char session[17];
	const struct nb_ctrl_plan *pa, *pb;

	(void)state;
	nb_rendezvous_config_default(&cfg);
	cfg.self[NB_FAM_V4] = A("203.0.113.10:3478");
	cfg.self[NB_FAM_V6] = A("[2001:db8::10]:3478");
	h = h_new(&cfg);

	/* alice: symmetric over IPv4, a stateful firewall over IPv6 */
	assert_int_equal(reg_full(h, "alice", "203.0.113.1:1000", 0, SYM_M, APDF, NULL, NULL, NULL), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	assert_true(h->m[0].u.registered.has_alt); /* where to register the other family */
	assert_true(nb_addr_equal(&h->m[0].u.registered.alt, &(struct nb_addr){ 0 }) == false);
	{
		struct nb_addr w = A("[2001:db8::10]:3478");
		assert_true(nb_addr_equal(&h->m[0].u.registered.alt, &w));
	}
	assert_int_equal(reg_also(h, "alice", "[2001:db8:14::2]:4000", 10, "none", APDF), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	{
		struct nb_addr w = A("[2001:db8:14::2]:4000"), b4 = A("203.0.113.10:3478");
		assert_true(nb_addr_equal(&h->m[0].u.registered.reflexive, &w));
		assert_true(nb_addr_equal(&h->m[0].u.registered.alt, &b4));
	}
	assert_false(h->m[0].u.registered.relay.has_relay);
	assert_int_equal(last_ev(h)->kind, NB_RV_EVENT_REGISTERED);
	assert_int_equal(stats(h).registers_also, 1);

	/* refused: the same family again, an unknown id, another key */
	reg_also(h, "alice", "203.0.113.1:1001", 20, "none", APDF);
	expect_error(h, NB_CTRL_ERR_BAD_REQUEST, NULL);
	reg_also(h, "nobody", "[2001:db8:14::3]:4000", 20, "none", APDF);
	expect_error(h, NB_CTRL_ERR_UNKNOWN_PEER, NULL);
	h_as(h, "mallory");
	reg_also(h, "alice", "[2001:db8:66::6]:6666", 20, "none", APDF);
	expect_error(h, NB_CTRL_ERR_CONFLICT, NULL);
	assert_int_equal(stats(h).registers_also, 1);

	/* bob the same; carol IPv4 only (port-restricted); dave IPv6 only */
	assert_int_equal(reg_full(h, "bob", "198.51.100.2:2000", 30, SYM_M, APDF, NULL, NULL, NULL), 1);
	assert_int_equal(reg_also(h, "bob", "[2001:db8:18::2]:5000", 30, "none", APDF), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	reg_ok(h, "carol", "198.51.100.3:3000", 30, "prc");
	assert_int_equal(reg_full(h, "dave", "[2001:db8:15::2]:7000", 30, "none", "endpoint-independent",
				  NULL, NULL, NULL), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	{
		struct nb_addr w = A("203.0.113.10:3478");
		assert_true(h->m[0].u.registered.has_alt);
		assert_true(nb_addr_equal(&h->m[0].u.registered.alt, &w));
	}

	/* the peer list shows both of alice's registrations */
	sendf(h, "192.0.2.200:1", 40, HDR PAD "}", "peers", next_tx(h));
	assert_int_equal(h->m[0].type, NB_CTRL_PEER_LIST);
	{
		const struct nb_ctrl_peer_list *l = &h->m[0].u.peer_list;
		struct nb_addr w = A("[2001:db8:14::2]:4000");
		assert_int_equal(l->n_peers, 4);
		assert_string_equal(l->peers[0].id, "alice");
		assert_true(l->peers[0].has_alt);
		assert_true(nb_addr_equal(&l->peers[0].alt, &w));
		assert_int_equal(l->peers[0].alt_mapping, NB_MAPPING_NONE);
		assert_int_equal(l->peers[0].alt_filtering, NB_FILTERING_ADDRESS_AND_PORT_DEPENDENT);
		assert_false(l->peers[2].has_alt); /* carol */
	}

	/* alice -> bob: a relay over IPv4 (symmetric both), a punch over IPv6 */
	assert_int_equal(connect_(h, "203.0.113.1:1000", 100, "alice", "bob"), 2);
	nb_ctrl_hex(h->rnd, 8, session);
	pa = &h->m[0].u.plan;
	pb = &h->m[1].u.plan;
	assert_int_equal(pa->path, NB_PATH_DIRECT);
	assert_int_equal(pa->role, NB_ROLE_PUNCH);
	assert_int_equal(pb->role, NB_ROLE_PUNCH);
	{
		const char *ca[] = { "[2001:db8:18::2]:5000", NULL }, *cb[] = { "[2001:db8:14::2]:4000", NULL };
		check_cands(pa, ca);
		check_cands(pb, cb);
		struct nb_addr b4 = A("198.51.100.2:2000"); /* pushed over bob's first registration */
		assert_true(nb_addr_equal(&h->out.d[1].to, &b4));
	}
	assert_true(strncmp(pa->reason, "IPv6: ", 6) == 0);
	result(h, "203.0.113.1:1000", 200, session, "alice", "connected", "direct", 80);
	pr = matrix_pair(h, 300, "alice", "bob");
	assert_int_equal(pr.plan_family, 6);
	assert_true(pr.has_measured);
	assert_int_equal(pr.family, 0); /* the result named no remote */
	sendf(h, "198.51.100.2:2000", 310, HDR ",\"session\":\"%s\",\"id\":\"bob\",\"outcome\":\"connected\","
		 "\"path\":\"direct\",\"remote\":\"[2001:db8:14::2]:4000\",\"ms\":70}", "result", next_tx(h), session);
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	pr = matrix_pair(h, 320, "alice", "bob");
	assert_int_equal(pr.family, 6);

	/* alice -> carol: only IPv4 in common: birthday (symmetric vs port-restricted) */
	assert_int_equal(connect_(h, "203.0.113.1:1000", 400, "alice", "carol"), 2);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_BIRTHDAY);
	{
		const char *ca[] = { "198.51.100.3:3000", NULL };
		check_cands(&h->m[0].u.plan, ca);
	}
	assert_int_equal(matrix_pair(h, 410, "alice", "carol").plan_family, 4);

	/* dave -> carol: no family in common */
	assert_int_equal(connect_(h, "[2001:db8:15::2]:7000", 500, "dave", "carol"), 2);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_NONE);
	assert_string_equal(h->m[0].u.plan.reason, "dave and carol share no IP family, and no relay");

	/* dave -> alice: IPv6, open vs firewall: alice listens... whatever the
	 * table says, over IPv6 only */
	assert_int_equal(connect_(h, "[2001:db8:15::2]:7000", 600, "dave", "alice"), 2);
	assert_true(path_direct_or_lan(h->m[0].u.plan.path));
	{
		const char *ca[] = { "[2001:db8:14::2]:4000", NULL };
		check_cands(&h->m[0].u.plan, ca);
	}

	/* the second address lives by its own keepalives: alice keeps only
	 * her IPv4 one alive; after E_MS the plan to bob is IPv4's (relay) */
	for (uint64_t t = 10000; t <= 10 + E_MS + 1000; t += 10000) {
		sendf(h, "203.0.113.1:1000", t, HDR ",\"id\":\"alice\"}", "keepalive", next_tx(h));
		assert_int_equal(h->m[0].type, NB_CTRL_ACK);
		sendf(h, "198.51.100.2:2000", t, HDR ",\"id\":\"bob\"}", "keepalive", next_tx(h));
		assert_int_equal(h->m[0].type, NB_CTRL_ACK);
		sendf(h, "[2001:db8:18::2]:5000", t, HDR ",\"id\":\"bob\"}", "keepalive", next_tx(h));
		assert_int_equal(h->m[0].type, NB_CTRL_ACK); /* bob's second address is kept */
	}
	assert_int_equal(connect_(h, "203.0.113.1:1000", 10 + E_MS + 1000, "alice", "bob"), 2);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_RELAY);
	{
		const char *ca[] = { "198.51.100.2:2000", NULL };
		check_cands(&h->m[0].u.plan, ca);
	}
	/* a keepalive from the gone address is refused */
	sendf(h, "[2001:db8:14::2]:4000", 10 + E_MS + 2000, HDR ",\"id\":\"alice\"}", "keepalive", next_tx(h));
	expect_error(h, NB_CTRL_ERR_UNKNOWN_PEER, NULL);
	/* alice moves her registration into IPv6: the second address goes */
	assert_int_equal(reg_also(h, "alice", "[2001:db8:14::2]:4000", 10 + E_MS + 3000, "none", APDF), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	assert_int_equal(reg_full(h, "alice", "[2001:db8:14::9]:4000", 10 + E_MS + 4000, "none", APDF, NULL,
				  NULL, NULL), 1);
	sendf(h, "192.0.2.200:1", 10 + E_MS + 5000, HDR PAD "}", "peers", next_tx(h));
	assert_false(h->m[0].u.peer_list.peers[0].has_alt);
	h_free(h);
}

#define RELAY_SECRET "turn-s3cret"

/* IPv4 only and IPv6 only: the broker's own relay, reached by the IPv6-only
 * side over IPv6, relays to an IPv4 address the other side can send to. */
static void test_cross_family_relay(void **state)
{
	struct nb_rendezvous_config cfg;
	struct h *h;

	(void)state;
	nb_rendezvous_config_default(&cfg);
	cfg.self[NB_FAM_V4] = A("203.0.113.10:3478");
	cfg.self[NB_FAM_V6] = A("[2001:db8::10]:3478");
	cfg.n_relays = 1;
	cfg.relays[0] = A("203.0.113.10:3478");
	cfg.own_relay = true;
	memcpy(cfg.relay_secret, RELAY_SECRET, strlen(RELAY_SECRET));
	cfg.relay_secret_len = strlen(RELAY_SECRET);
	h = h_new(&cfg);
	reg_ok(h, "carol", "198.51.100.3:3000", 0, "prc");
	assert_int_equal(reg_full(h, "dave", "[2001:db8:15::2]:7000", 0, "none", "endpoint-independent",
				  NULL, NULL, NULL), 1);
	for (int dir = 0; dir < 2; dir++) {
		const struct nb_ctrl_plan *p6, *p4;
		struct nb_addr v6srv = A("[2001:db8::10]:3478");
		if (dir == 0)
			assert_int_equal(connect_(h, "198.51.100.3:3000", 100, "carol", "dave"), 2);
		else
			assert_int_equal(connect_(h, "[2001:db8:15::2]:7000", 200, "dave", "carol"), 2);
		p4 = dir == 0 ? &h->m[0].u.plan : &h->m[1].u.plan;
		p6 = dir == 0 ? &h->m[1].u.plan : &h->m[0].u.plan;
		assert_int_equal(p4->path, NB_PATH_RELAY);
		assert_int_equal(p6->role, NB_ROLE_RELAY); /* dave allocates ... */
		assert_true(p6->relay.alloc);
		assert_true(nb_addr_equal(&p6->relay.server, &v6srv)); /* ... over IPv6 */
		assert_int_equal(p4->role, NB_ROLE_DIAL);  /* carol sends to the relayed address */
		assert_false(p4->relay.alloc);
	}
	assert_string_equal(h->m[0].u.plan.reason,
			    "dave (IPv6 only) and carol (IPv4 only) share no IP family: dave allocates an IPv4 "
			    "address on the relay, carol sends to it");
	assert_int_equal(h->m[0].u.plan.relay.family, 0); /* IPv4: absent */
	/* an IPv4-only host whose UDP is blocked (registered over TCP) cannot
	 * send to the relayed address, and an IPv4-only relay has none that
	 * dave could send to: none, and why */
	nb_rendezvous_set_context(h->rv, 1700000000, true);
	reg_ok(h, "blk", "198.51.100.7:7000", 250, "prc");
	nb_rendezvous_set_context(h->rv, 1700000000, false);
	assert_int_equal(connect_(h, "198.51.100.7:7000", 260, "blk", "dave"), 2);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_NONE);
	assert_string_equal(h->m[0].u.plan.reason, "blk (IPv4 only) and dave (IPv6 only) share no IP family, "
						   "and the relay has no relayed address of the family the "
						   "sending side has");
	/* a relay-needing IPv6-only host (symmetric) is given its advance
	 * allocation on the relay's IPv6 address too, of an IPv4 relayed
	 * address: the only family this relay has */
	assert_int_equal(reg_full(h, "erin", "[2001:db8:16::2]:7000", 300, "address-and-port-dependent",
				  APDF, NULL, NULL, NULL), 1);
	{
		struct nb_addr v6srv = A("[2001:db8::10]:3478");
		assert_true(h->m[0].u.registered.relay.alloc);
		assert_true(nb_addr_equal(&h->m[0].u.registered.relay.server, &v6srv));
		assert_int_equal(h->m[0].u.registered.relay.family, 0);
	}
	h_free(h);
}

/* A relay with relayed addresses of both families (RFC 8656
 * REQUESTED-ADDRESS-FAMILY): the side that cannot send UDP allocates one of
 * the other side's family, whether they share a family or not. */
static void test_relay_families(void **state)
{
	struct nb_rendezvous_config cfg;
	struct nb_addr v6srv = A("[2001:db8::10]:3478"), v4srv = A("203.0.113.10:3478");
	struct h *h;

	(void)state;
	nb_rendezvous_config_default(&cfg);
	cfg.self[NB_FAM_V4] = v4srv;
	cfg.self[NB_FAM_V6] = v6srv;
	cfg.n_relays = 1;
	cfg.relays[0] = v4srv;
	cfg.own_relay = true;
	cfg.relay_fams = 1u << NB_FAM_V4 | 1u << NB_FAM_V6;
	memcpy(cfg.relay_secret, RELAY_SECRET, strlen(RELAY_SECRET));
	cfg.relay_secret_len = strlen(RELAY_SECRET);
	h = h_new(&cfg);
	reg_ok(h, "carol", "198.51.100.3:3000", 0, "prc");
	assert_int_equal(reg_full(h, "dave", "[2001:db8:15::2]:7000", 0, "none", "endpoint-independent",
				  NULL, NULL, NULL), 1);
	/* IPv6 only, UDP blocked (over TCP): allocates in advance an IPv6
	 * relayed address, over IPv6 */
	nb_rendezvous_set_context(h->rv, 1700000000, true);
	assert_int_equal(reg_full(h, "w6", "[2001:db8:20::2]:7000", 10, "none", APDF, NULL, NULL, NULL), 1);
	assert_true(h->m[0].u.registered.relay.alloc);
	assert_true(nb_addr_equal(&h->m[0].u.registered.relay.server, &v6srv));
	assert_int_equal(h->m[0].u.registered.relay.family, 6);
	/* IPv4 only, UDP blocked */
	reg_ok(h, "blk", "198.51.100.7:7000", 20, "prc");
	assert_int_equal(h->m[0].u.registered.relay.family, 0);
	nb_rendezvous_set_context(h->rv, 1700000000, false);

	/* blk and dave share no family: blk (UDP blocked) allocates an IPv6
	 * address, over TCP; dave sends to it */
	for (int dir = 0; dir < 2; dir++) {
		const struct nb_ctrl_plan *pb, *pd;
		if (dir == 0)
			assert_int_equal(connect_(h, "198.51.100.7:7000", 100 + dir, "blk", "dave"), 2);
		else
			assert_int_equal(connect_(h, "[2001:db8:15::2]:7000", 100 + dir, "dave", "blk"), 2);
		pb = &h->m[dir].u.plan;
		pd = &h->m[1 - dir].u.plan;
		assert_int_equal(pb->path, NB_PATH_RELAY);
		assert_int_equal(pb->role, NB_ROLE_RELAY);
		assert_true(pb->relay.alloc);
		assert_int_equal(pb->relay.family, 6);
		assert_true(nb_addr_equal(&pb->relay.server, &v4srv));
		assert_int_equal(pd->role, NB_ROLE_DIAL);
		assert_false(pd->relay.alloc);
		/* blk permits dave's address */
		assert_int_equal(pb->n_candidates, 1);
		struct nb_addr d6 = A("[2001:db8:15::2]:7000");
		assert_true(nb_addr_equal(&pb->candidates[0], &d6));
	}
	assert_string_equal(h->m[1].u.plan.reason,
			    "dave (IPv6 only) and blk (IPv4 only) share no IP family: blk allocates an IPv6 "
			    "address on the relay over TCP, dave sends to it");
	/* w6 and dave share IPv6: w6 allocates an IPv6 address */
	assert_int_equal(connect_(h, "[2001:db8:15::2]:7000", 200, "dave", "w6"), 2);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_RELAY);
	assert_int_equal(h->m[0].u.plan.role, NB_ROLE_DIAL);
	assert_int_equal(h->m[1].u.plan.role, NB_ROLE_RELAY);
	assert_int_equal(h->m[1].u.plan.relay.family, 6);
	assert_true(nb_addr_equal(&h->m[1].u.plan.relay.server, &v6srv));
	/* w6's relayed address registered: an IPv6 one goes in dave's plans,
	 * ... */
	nb_rendezvous_set_context(h->rv, 1700000000, true);
	assert_int_equal(sendf(h, "[2001:db8:20::2]:7000", 300,
			       HDR ",\"id\":\"w6\",\"local\":[],\"nat\":{\"mapping\":\"none\",\"filtering\":\"%s\"},"
			       "\"relayed\":\"[2001:db8::10]:50000\"}", "register", next_tx(h), APDF), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	nb_rendezvous_set_context(h->rv, 1700000000, false);
	assert_int_equal(connect_(h, "[2001:db8:15::2]:7000", 310, "dave", "w6"), 2);
	assert_true(h->m[0].u.plan.relay.has_relayed);
	{
		struct nb_addr rel = A("[2001:db8::10]:50000");
		assert_true(nb_addr_equal(&h->m[0].u.plan.relay.relayed, &rel));
	}
	/* ... but not in carol's, who needs an IPv4 one: w6 allocates that */
	assert_int_equal(connect_(h, "198.51.100.3:3000", 320, "carol", "w6"), 2);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_RELAY);
	assert_false(h->m[0].u.plan.relay.has_relayed);
	assert_int_equal(h->m[1].u.plan.relay.family, 0);
	/* w6 and blk: neither sends UDP */
	assert_int_equal(connect_(h, "198.51.100.3:3000", 330, "carol", "dave"), 2);
	assert_int_equal(connect_(h, "198.51.100.7:7000", 340, "blk", "w6"), 2);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_NONE);
	assert_string_equal(h->m[0].u.plan.reason, "blk (IPv4 only) and w6 (IPv6 only) share no IP family, "
						   "and neither can send UDP to a relay");
	h_free(h);

	/* An IPv4-only relay: two IPv6-only hosts that need it have none */
	cfg.relay_fams = 0;
	h = h_new(&cfg);
	assert_int_equal(reg_full(h, "dave", "[2001:db8:15::2]:7000", 0, "none", "endpoint-independent",
				  NULL, NULL, NULL), 1);
	nb_rendezvous_set_context(h->rv, 1700000000, true);
	assert_int_equal(reg_full(h, "w6", "[2001:db8:20::2]:7000", 10, "none", APDF, NULL, NULL, NULL), 1);
	nb_rendezvous_set_context(h->rv, 1700000000, false);
	assert_int_equal(connect_(h, "[2001:db8:15::2]:7000", 100, "dave", "w6"), 2);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_NONE);
	assert_false(h->m[0].u.plan.relay.has_relay);
	/* ... but a dual-stack one sends to an IPv4 relayed address */
	reg_ok(h, "erin", "198.51.100.9:9000", 200, "prc");
	assert_int_equal(reg_also(h, "erin", "[2001:db8:19::2]:9000", 200, "none", APDF), 1);
	assert_int_equal(connect_(h, "198.51.100.9:9000", 300, "erin", "w6"), 2);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_RELAY);
	assert_int_equal(h->m[0].u.plan.role, NB_ROLE_DIAL);
	assert_int_equal(h->m[1].u.plan.relay.family, 0);
	{
		const char *cw[] = { "198.51.100.9:9000", NULL }; /* w6 permits erin's IPv4 */
		check_cands(&h->m[1].u.plan, cw);
	}
	h_free(h);
}

/* The table is unsure over IPv6 (a side that did not say its filtering):
 * the families race when IPv4 asks the same of both sides. */
static void test_family_race(void **state)
{
	struct h *h = h_new(NULL);

	(void)state;
	reg_ok(h, "erin", "203.0.113.5:1000", 0, "prc");
	assert_int_equal(reg_also(h, "erin", "[2001:db8:5::2]:1000", 0, "none", "unknown"), 1);
	reg_ok(h, "frank", "198.51.100.6:2000", 0, "prc");
	assert_int_equal(reg_also(h, "frank", "[2001:db8:6::2]:2000", 0, "none", APDF), 1);
	assert_int_equal(connect_(h, "203.0.113.5:1000", 100, "erin", "frank"), 2);
	/* unknown IPv6 filtering: the table still punches (both send), as IPv4 does */
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_DIRECT);
	assert_int_equal(h->m[0].u.plan.role, NB_ROLE_PUNCH);
	{
		const char *ca[] = { "[2001:db8:6::2]:2000", "198.51.100.6:2000", NULL };
		const char *cb[] = { "[2001:db8:5::2]:1000", "203.0.113.5:1000", NULL };
		check_cands(&h->m[0].u.plan, ca);
		check_cands(&h->m[1].u.plan, cb);
	}
	assert_string_equal(h->m[0].u.plan.reason,
			    "IPv6 raced with IPv4: both map endpoint-independently: simultaneous punch");
	/* with both sides' IPv6 behaviour known, IPv6 alone */
	assert_int_equal(reg_also(h, "erin", "[2001:db8:5::2]:1000", 200, "none", APDF), 1);
	assert_int_equal(connect_(h, "203.0.113.5:1000", 300, "erin", "frank"), 2);
	{
		const char *ca[] = { "[2001:db8:6::2]:2000", NULL };
		check_cands(&h->m[0].u.plan, ca);
	}
	h_free(h);
}


/* UPnP mappings: the broker probes only the requester's own IP, from its
 * alternate port, and only a register that shows the probe's proof gets a
 * verified mapping (and the upnp path). */
/* A TCP verify: no datagram to the mapping; the shell connects. d[0] is the
 * probe and d[1] a 504, both to the requester in its session; the greeting
 * carries tx and proof. */
static void test_tcp_verify(void **state)
{
	struct h *h = h_new(NULL);
	struct nb_addr ext = A("198.51.100.2:8080"), from = A("198.51.100.2:2000");
	char want[128];

	(void)state;
	/* to another IP: refused, no connection */
	assert_int_equal(sendf(h, "198.51.100.2:2000", 0, HDR ",\"external\":\"198.51.100.9:8080\",\"tcp\":true}",
			       "verify", next_tx(h)), 1);
	assert_int_equal(h->m[0].u.error.code, 400);
	assert_false(h->out.tcp_probe);

	assert_int_equal(sendf(h, "198.51.100.2:2000", 0, HDR ",\"external\":\"198.51.100.2:8080\",\"tcp\":true}",
			       "verify", next_tx(h)), 2);
	assert_true(h->out.tcp_probe);
	assert_true(nb_addr_equal(&h->out.tcp_to, &ext));
	assert_int_equal(h->m[0].type, NB_CTRL_PROBE);
	assert_string_equal(h->m[0].tx, h->tx);
	assert_true(h->out.d[0].sealed && !h->out.d[0].from_alt_port);
	assert_true(nb_addr_equal(&h->out.d[0].to, &from));
	assert_int_equal(h->m[1].type, NB_CTRL_ERROR);
	assert_int_equal(h->m[1].u.error.code, NB_CTRL_ERR_UNREACHABLE);
	assert_string_equal(h->m[1].tx, h->tx);
	assert_true(h->out.d[1].sealed);
	assert_true(nb_addr_equal(&h->out.d[1].to, &from));
	assert_non_null(strstr(h->m[1].u.error.reason, "198.51.100.2:8080"));
	snprintf(want, sizeof(want), "NATBROKER-PROBE %s %s\r\n", h->tx, h->m[0].u.probe.proof);
	assert_string_equal(h->out.greeting, want);
	/* the proof is the UDP verify's for the same mapping and requester */
	char proof[NB_CTRL_PROOF_LEN + 1];
	snprintf(proof, sizeof(proof), "%s", h->m[0].u.probe.proof);
	assert_int_equal(sendf(h, "198.51.100.2:2000", 1, HDR ",\"external\":\"198.51.100.2:8080\"}", "verify",
			       next_tx(h)), 1);
	assert_false(h->out.tcp_probe);
	assert_string_equal(h->m[0].u.probe.proof, proof);
	h_free(h);
}

static void test_upnp_verify(void **state)
{
	struct h *h = h_new(NULL);
	char proof[NB_CTRL_PROOF_LEN + 1], req[256];
	static const char smallest[] = "{\"v\":1,\"type\":\"verify\",\"tx\":\"0123456789abcdef\",\"external\":\"1.2.3.4:5\"}";
	int n;

	(void)state;
	assert_int_equal(strlen(smallest), 70);
	/* to another IP: refused, nothing sent there */
	assert_int_equal(sendf(h, "198.51.100.2:2000", 0, HDR ",\"external\":\"198.51.100.9:51000\"}", "verify",
			       next_tx(h)), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_ERROR);
	assert_int_equal(h->m[0].u.error.code, 400);
	assert_false(h->out.d[0].from_alt_port);

	/* to its own IP: a probe there, from the alternate port, no bigger than the request */
	n = snprintf(req, sizeof(req), HDR ",\"external\":\"198.51.100.2:51000\"}", "verify", next_tx(h));
	assert_int_equal(send_json(h, "198.51.100.2:2000", 0, req), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_PROBE);
	assert_true(h->out.d[0].from_alt_port);
	assert_true(nb_addr_equal(&h->out.d[0].to, &(struct nb_addr){ 0 }) == false);
	struct nb_addr ext = A("198.51.100.2:51000");
	assert_true(nb_addr_equal(&h->out.d[0].to, &ext));
	/* amplification: 89 bytes for the smallest verify (70 bytes) is 1.27x, to the requester's IP */
	assert_int_equal(h->out.d[0].len, 89);
	assert_true(n >= 70 && h->out.d[0].len * 70 <= (size_t)n * 89);
	assert_int_equal(strlen(h->m[0].u.probe.proof), NB_CTRL_PROOF_LEN);
	snprintf(proof, sizeof(proof), "%s", h->m[0].u.probe.proof);
	/* the same request again: probed again (not answered from the reply cache) */
	assert_int_equal(send_json(h, "198.51.100.2:2000", 5, req), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_PROBE);
	assert_string_equal(h->m[0].u.probe.proof, proof);

	/* a wrong proof, or the right one from another port: unverified, no upnp path */
	static const char *const tries[][2] = {
		{ "198.51.100.2:2000", "00000000000000000000000000000000" },
		{ "198.51.100.2:2001", NULL },
	};
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(sendf(h, tries[i][0], 10, HDR ",\"id\":\"bob\",\"local\":[],\"nat\":{\"mapping\":"
				       "\"endpoint-independent\",\"filtering\":\"address-and-port-dependent\"},"
				       "\"upnp\":{\"status\":\"mapped\",\"external\":\"198.51.100.2:51000\","
				       "\"proof\":\"%s\"}}", "register", next_tx(h), tries[i][1] ? tries[i][1] : proof), 1);
		assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
		assert_true(h->m[0].u.registered.has_upnp);
		assert_false(h->m[0].u.registered.upnp_verified);
	}
	reg_ok(h, "alice", "203.0.113.1:1000", 10, "sym");
	connect_(h, "203.0.113.1:1000", 20, "alice", "bob");
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_BIRTHDAY); /* sym vs prc: no upnp path */

	/* the right proof from the verified address: verified, and bob listens on it */
	assert_int_equal(sendf(h, "198.51.100.2:2000", 30, HDR ",\"id\":\"bob\",\"local\":[],\"nat\":{\"mapping\":"
			       "\"endpoint-independent\",\"filtering\":\"address-and-port-dependent\"},"
			       "\"upnp\":{\"status\":\"mapped\",\"external\":\"198.51.100.2:51000\","
			       "\"proof\":\"%s\"}}", "register", next_tx(h), proof), 1);
	assert_true(h->m[0].u.registered.upnp_verified);
	connect_(h, "203.0.113.1:1000", 40, "alice", "bob");
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_UPNP);
	assert_int_equal(h->m[0].u.plan.role, NB_ROLE_DIAL);

	/* a probe sent to the broker is ignored */
	assert_int_equal(sendf(h, "198.51.100.2:2000", 50, HDR ",\"proof\":\"%s\"}", "probe", next_tx(h), proof), 0);

	/* verify_rate (100/s, a burst of one second's worth): the 101st at once is refused */
	size_t probes = 0, refused = 0;
	for (int i = 0; i < 150; i++) {
		assert_int_equal(sendf(h, "198.51.100.3:2000", 1000000, HDR ",\"external\":\"198.51.100.3:2000\"}",
				       "verify", next_tx(h)), 1);
		probes += h->m[0].type == NB_CTRL_PROBE;
		refused += h->m[0].type == NB_CTRL_ERROR && h->m[0].u.error.code == 429;
	}
	assert_int_equal(probes, 100);
	assert_int_equal(refused, 50);
	h_free(h);
}

/* Return routability: a register is taken only with the cookie of a
 * challenge sent to its source; the challenge is never longer than the
 * register, and nothing is kept until the cookie comes back. */
static void test_register_cookie(void **state)
{
	struct h *h;
	char req[512], cookie[NB_CTRL_COOKIE_LEN + 1];
	size_t len;

	(void)state;
	h_cookies = true;
	h = h_new(NULL);
	h_cookies = false;
	/* no cookie: a challenge, no longer than the register; nothing registered */
	len = (size_t)snprintf(req, sizeof(req),
			       HDR ",\"id\":\"alice\",\"local\":[\"192.168.1.2:4000\"],\"nat\":{\"mapping\":"
				   "\"endpoint-independent\",\"filtering\":\"endpoint-independent\"}}",
			       "register", next_tx(h));
	assert_int_equal(send_raw(h, "198.51.100.2:2000", 0, (const uint8_t *)req, len), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_CHALLENGE);
	assert_true(h->out.d[0].len <= len);
	assert_int_equal(stats(h).peers, 0);
	snprintf(cookie, sizeof(cookie), "%s", h->m[0].u.challenge.cookie);
	/* the smallest register would get a longer challenge: silence */
	len = (size_t)snprintf(req, sizeof(req), HDR ",\"id\":\"b\",\"local\":[]}", "register", next_tx(h));
	assert_int_equal(send_raw(h, "198.51.100.2:2000", 0, (const uint8_t *)req, len), 0);
	assert_int_equal(stats(h).challenges_suppressed, 1);
	/* the cookie from the same source: registered */
	assert_int_equal(sendf(h, "198.51.100.2:2000", 10, HDR ",\"id\":\"alice\",\"local\":[],\"cookie\":\"%s\"}",
			       "register", next_tx(h), cookie), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	assert_int_equal(stats(h).peers, 1);
	/* ... not from another port, nor for another id: challenged again */
	assert_int_equal(sendf(h, "198.51.100.2:2001", 20, HDR ",\"id\":\"alice\",\"local\":[],\"cookie\":\"%s\"}",
			       "register", next_tx(h), cookie), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_CHALLENGE);
	assert_int_equal(sendf(h, "198.51.100.2:2000", 20, HDR ",\"id\":\"alicia\",\"local\":[],\"cookie\":\"%s\"}",
			       "register", next_tx(h), cookie), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_CHALLENGE);
	assert_int_equal(stats(h).peers, 1);
	/* good in its 30-s window and the next; not after */
	assert_int_equal(sendf(h, "198.51.100.2:2000", 59999, HDR ",\"id\":\"alice\",\"local\":[],\"cookie\":\"%s\"}",
			       "register", next_tx(h), cookie), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	assert_int_equal(sendf(h, "198.51.100.2:2000", 60000, HDR ",\"id\":\"alice\",\"local\":[],\"cookie\":\"%s\"}",
			       "register", next_tx(h), cookie), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_CHALLENGE);
	h_free(h);
}

/* A list page is no longer than the query that asked for it. */
static void test_list_no_amplification(void **state)
{
	struct h *h = h_new(NULL);
	char req[1300], id[16];
	size_t len;

	(void)state;
	for (int i = 0; i < 30; i++) {
		snprintf(id, sizeof(id), "peer%02d", i);
		reg_ok(h, id, i % 2 ? "198.51.100.2:2000" : "203.0.113.5:3000", 0, "fc");
	}
	/* unpadded: even an empty page is longer than the query: silence */
	len = (size_t)snprintf(req, sizeof(req), HDR "}", "peers", next_tx(h));
	assert_int_equal(send_raw(h, "192.0.2.9:9", 10, (const uint8_t *)req, len), 0);
	for (size_t pad = 350; pad <= 1100; pad += 250) {
		char dots[1200];
		memset(dots, '.', pad);
		dots[pad] = '\0';
		len = (size_t)snprintf(req, sizeof(req), HDR ",\"pad\":\"%s\"}", "peers", next_tx(h), dots);
		assert_int_equal(send_raw(h, "192.0.2.9:9", 10, (const uint8_t *)req, len), 1);
		assert_int_equal(h->m[0].type, NB_CTRL_PEER_LIST);
		assert_true(h->out.d[0].len <= len);
		assert_true(h->m[0].u.peer_list.n_peers > 0);
	}
	h_free(h);
}

static void test_results_matrix(void **state)
{
	struct h *h = h_new(NULL);
	struct nb_ctrl_pair p;
	char s_bob[17], s_carol[17], s_dave[17], s_erin[17];

	(void)state;
	reg_ok(h, "alice", "203.0.113.1:1", 0, "fc");
	reg_ok(h, "bob", "198.51.100.2:1", 0, "prc");
	reg_ok(h, "carol", "198.51.100.3:1", 0, "sym");
	reg_ok(h, "dave", "198.51.100.4:1", 0, "rc");
	reg_ok(h, "erin", "198.51.100.5:1", 0, "sym");
	connect_(h, "203.0.113.1:1", 0, "alice", "bob");
	snprintf(s_bob, sizeof(s_bob), "%s", h->m[0].u.plan.session);
	connect_(h, "203.0.113.1:1", 0, "alice", "carol");
	snprintf(s_carol, sizeof(s_carol), "%s", h->m[0].u.plan.session);
	connect_(h, "203.0.113.1:1", 0, "alice", "dave");
	snprintf(s_dave, sizeof(s_dave), "%s", h->m[0].u.plan.session);
	connect_(h, "198.51.100.5:1", 0, "erin", "carol");
	snprintf(s_erin, sizeof(s_erin), "%s", h->m[0].u.plan.session);

	p = matrix_pair(h, 10, "alice", "bob");
	assert_string_equal(p.a, "alice");
	assert_int_equal(p.predicted, NB_PATH_DIRECT);
	assert_int_equal(p.role_a, NB_ROLE_LISTEN);
	assert_int_equal(p.role_b, NB_ROLE_DIAL);
	assert_false(p.has_measured);
	assert_non_null(strstr(p.reason, "bob dials, alice listens"));
	p = matrix_pair(h, 10, "erin", "carol");
	assert_int_equal(p.predicted, NB_PATH_RELAY);
	assert_int_equal(p.role_a, NB_ROLE_RELAY);
	assert_non_null(strstr(p.reason, "symmetric"));

	/* one side connected: measured at once */
	result(h, "203.0.113.1:1", 100, s_bob, "alice", "connected", "direct", 31);
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	assert_string_equal(last_ev(h)->session, s_bob);
	assert_int_equal(last_ev(h)->kind, NB_RV_EVENT_RESULT);
	p = matrix_pair(h, 100, "alice", "bob");
	assert_true(p.has_measured);
	assert_int_equal(p.measured, NB_PATH_DIRECT);
	assert_int_equal(p.ms, 31);
	/* the other side too: ms is the later of the two */
	result(h, "198.51.100.2:1", 110, s_bob, "bob", "connected", "direct", 40);
	p = matrix_pair(h, 110, "alice", "bob");
	assert_int_equal(p.ms, 40);

	/* both failed: none, at once */
	result(h, "203.0.113.1:1", 200, s_carol, "alice", "failed", "none", 5000);
	p = matrix_pair(h, 200, "alice", "carol");
	assert_false(p.has_measured); /* carol has not said yet */
	result(h, "198.51.100.3:1", 210, s_carol, "carol", "failed", "none", 5010);
	p = matrix_pair(h, 210, "alice", "carol");
	assert_true(p.has_measured);
	assert_int_equal(p.measured, NB_PATH_NONE);
	assert_int_equal(p.ms, 5010);

	/* nobody reports: none once the session's time is up (push window + deadline) */
	p = matrix_pair(h, 11750 + 5000 - 1, "alice", "dave");
	assert_false(p.has_measured);
	p = matrix_pair(h, 11750 + 5000, "alice", "dave");
	assert_true(p.has_measured);
	assert_int_equal(p.measured, NB_PATH_NONE);
	assert_int_equal(p.ms, 5000);
	/* a late success still counts */
	result(h, "198.51.100.4:1", 20000, s_dave, "dave", "connected", "direct", 900);
	p = matrix_pair(h, 20000, "alice", "dave");
	assert_int_equal(p.measured, NB_PATH_DIRECT);

	/* refusals */
	result(h, "203.0.113.1:1", 21000, "00000000000000ff", "alice", "failed", "none", 1);
	expect_error(h, 404, "no session '00000000000000ff'");
	result(h, "203.0.113.1:1", 21000, s_erin, "alice", "failed", "none", 1);
	expect_error(h, 400, NULL);
	result(h, "198.51.100.5:1", 21000, s_erin, "erin", "connected", "none", 1);
	expect_error(h, 400, "outcome 'connected' needs a path");
	p = matrix_pair(h, 21000, "erin", "carol");
	assert_int_equal(p.measured, NB_PATH_NONE); /* its time is up, nobody reported */

	/* the latest session of a pair wins: bob asks alice now */
	connect_(h, "198.51.100.2:1", 30000, "bob", "alice");
	p = matrix_pair(h, 30000, "alice", "bob");
	assert_string_equal(p.a, "bob");
	assert_string_equal(p.b, "alice");
	assert_false(p.has_measured);
	/* a result for the old session updates only the old session */
	result(h, "203.0.113.1:1", 30001, s_bob, "alice", "connected", "direct", 5);
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	p = matrix_pair(h, 30001, "alice", "bob");
	assert_false(p.has_measured);
	assert_int_equal(stats(h).pairs, 4);
	h_free(h);
}

/* ---- paging -------------------------------------------------------------------------- */

static void test_paging_peers(void **state)
{
	enum { NP = 40 };
	struct h *h = h_new(NULL);
	bool seen[NP] = { false };
	uint32_t offset = 0;
	size_t pages = 0, got = 0;
	char id[40];

	(void)state;
	for (int i = 0; i < NP; i++) {
		char as[40];
		/* 32-character ids and long IPv6 addresses: few fit a page */
		snprintf(id, sizeof(id), "peer-%02d-xxxxxxxxxxxxxxxxxxxxxxxx", i);
		snprintf(as, sizeof(as), "[2001:db8:1:2:3:4:5:%x]:65535", i + 1);
		reg_ok(h, id, as, 0, "prc");
	}
	for (;;) {
		const struct nb_ctrl_peer_list *l;
		sendf(h, "192.0.2.200:1", 10, HDR ",\"offset\":%u" PAD "}", "peers", next_tx(h), offset);
		assert_int_equal(h->m[0].type, NB_CTRL_PEER_LIST);
		l = &h->m[0].u.peer_list;
		assert_int_equal(l->total, NP);
		assert_int_equal(l->offset, offset);
		assert_true(l->n_peers > 0 && l->n_peers < NB_CTRL_MAX_PAGE);
		for (size_t i = 0; i < l->n_peers; i++) {
			int k = id_index(l->peers[i].id);
			assert_int_equal(k, (int)(offset + i)); /* registration (slot) order */
			assert_false(seen[k]);
			seen[k] = true;
			assert_int_equal(l->peers[i].nat, NB_NAT_PORT_RESTRICTED_CONE);
			got++;
		}
		pages++;
		offset += (uint32_t)l->n_peers;
		if (offset == l->total)
			break;
	}
	assert_int_equal(got, NP);
	assert_true(pages > 2);
	/* past the end: an empty page at offset = total */
	sendf(h, "192.0.2.200:1", 10, HDR ",\"offset\":1000" PAD "}", "peers", next_tx(h));
	assert_int_equal(h->m[0].u.peer_list.total, NP);
	assert_int_equal(h->m[0].u.peer_list.offset, NP);
	assert_int_equal(h->m[0].u.peer_list.n_peers, 0);
	h_free(h);
}

static void test_paging_matrix(void **state)
{
	enum { NP = 30 };
	struct h *h = h_new(NULL);
	bool seen[NP] = { false };
	uint32_t offset = 0;
	size_t got = 0;
	char id[40];

	(void)state;
	reg_ok(h, "hub-xxxxxxxxxxxxxxxxxxxxxxxxxxxx", "203.0.113.1:1", 0, "fc");
	for (int i = 0; i < NP; i++) {
		char as[40];
		snprintf(id, sizeof(id), "peer-%02d-xxxxxxxxxxxxxxxxxxxxxxxx", i);
		snprintf(as, sizeof(as), "198.51.100.%d:1", i + 1);
		reg_ok(h, id, as, 0, "sym");
		assert_int_equal(connect_(h, "203.0.113.1:1", 0, "hub-xxxxxxxxxxxxxxxxxxxxxxxxxxxx", id), 2);
	}
	for (;;) {
		const struct nb_ctrl_matrix_list *l;
		sendf(h, "192.0.2.200:1", 10, HDR ",\"offset\":%u" PAD "}", "matrix", next_tx(h), offset);
		assert_int_equal(h->m[0].type, NB_CTRL_MATRIX_LIST);
		l = &h->m[0].u.matrix_list;
		assert_int_equal(l->total, NP);
		assert_true(l->n_pairs > 0);
		for (size_t i = 0; i < l->n_pairs; i++) {
			int k = id_index(l->pairs[i].b);
			assert_false(seen[k]);
			seen[k] = true;
			got++;
		}
		offset += (uint32_t)l->n_pairs;
		if (offset == l->total)
			break;
	}
	assert_int_equal(got, NP);
	h_free(h);
}

/* ---- the reply cache ---------------------------------------------------------------------- */

static void test_reply_cache(void **state)
{
	struct h *h = h_new(NULL);
	struct nb_rendezvous_dgram first;
	char req[256];
	size_t len;

	(void)state;
	reg_ok(h, "alice", "203.0.113.1:1", 0, "fc");
	reg_ok(h, "bob", "198.51.100.2:1", 0, "sym");
	len = (size_t)snprintf(req, sizeof(req), HDR ",\"id\":\"alice\",\"peer\":\"bob\"}", "connect",
			       next_tx(h));
	assert_int_equal(send_raw(h, "203.0.113.1:1", 100, (const uint8_t *)req, len), 2);
	first = h->out.d[0];
	h->n_ev = 0;
	/* the retransmission: the same bytes back, no second session, no second push */
	assert_int_equal(send_raw(h, "203.0.113.1:1", 350, (const uint8_t *)req, len), 1);
	assert_int_equal(h->out.d[0].len, first.len);
	assert_memory_equal(h->out.d[0].data, first.data, first.len);
	assert_false(h->out.rnd_used);
	assert_int_equal(h->n_ev, 0);
	assert_int_equal(stats(h).sessions, 1);
	assert_int_equal(stats(h).connects, 1);
	assert_int_equal(stats(h).replayed, 1);
	/* still within 12 s */
	assert_int_equal(send_raw(h, "203.0.113.1:1", 100 + 11999, (const uint8_t *)req, len), 1);
	assert_memory_equal(h->out.d[0].data, first.data, first.len);
	/* errors are cached too: a refused keepalive replays its 404 even after
	 * the peer has registered meanwhile */
	len = (size_t)snprintf(req, sizeof(req), HDR ",\"id\":\"carol\"}", "keepalive", next_tx(h));
	send_raw(h, "198.51.100.3:1", 200, (const uint8_t *)req, len);
	expect_error(h, 404, "no peer 'carol'");
	reg_ok(h, "carol", "198.51.100.3:1", 300, "fc");
	send_raw(h, "198.51.100.3:1", 400, (const uint8_t *)req, len);
	expect_error(h, 404, "no peer 'carol'");
	/* the same tx from another source is another transaction */
	send_raw(h, "198.51.100.9:1", 400, (const uint8_t *)req, len);
	expect_error(h, 404, "'carol' is registered from another address");
	assert_int_equal(stats(h).replayed, 3);
	/* another request reusing a tx is not a retransmission: answered on its own */
	sendf(h, "192.0.2.7:1", 500, HDR PAD "}", "peers", "00000000000000aa");
	assert_int_equal(h->m[0].type, NB_CTRL_PEER_LIST);
	sendf(h, "192.0.2.7:1", 500, HDR PAD "}", "matrix", "00000000000000aa");
	assert_int_equal(h->m[0].type, NB_CTRL_MATRIX_LIST);
	assert_int_equal(stats(h).replayed, 3);
	h_free(h);
}

static void test_cache_full(void **state)
{
	struct nb_rendezvous_config cfg;
	struct h *h;
	char req[256];
	size_t len;

	(void)state;
	nb_rendezvous_config_default(&cfg);
	cfg.cache_entries = 2;
	h = h_new(&cfg);
	len = (size_t)snprintf(req, sizeof(req), HDR ",\"id\":\"alice\",\"local\":[]}", "register",
			       next_tx(h));
	send_raw(h, "203.0.113.1:1", 0, (const uint8_t *)req, len);
	reg_ok(h, "bob", "198.51.100.2:1", 0, "fc");
	h->n_ev = 0;
	reg_ok(h, "carol", "198.51.100.3:1", 0, "fc"); /* evicts alice's reply early */
	assert_int_equal(count_ev(h, NB_RV_EVENT_LIMIT), 1);
	assert_int_equal(last_ev(h)->limit, NB_RV_LIMIT_CACHE);
	assert_int_equal(stats(h).cache_evicted_early, 1);
	assert_int_equal(stats(h).cached, 2);
	/* alice's retransmission is acted on again (a harmless refresh here),
	 * and its reply pushes bob's out early */
	h->n_ev = 0;
	send_raw(h, "203.0.113.1:1", 10, (const uint8_t *)req, len);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	assert_int_equal(h->ev[0].kind, NB_RV_EVENT_REGISTERED);
	assert_int_equal(h->ev[0].change, NB_REGISTRY_REFRESHED);
	assert_int_equal(stats(h).cache_evicted_early, 2);
	/* expired replies make room without an early eviction */
	reg_ok(h, "dave", "198.51.100.4:1", 20000, "fc");
	assert_int_equal(stats(h).cache_evicted_early, 2);
	h_free(h);
}

/* ---- limits ------------------------------------------------------------------------- */

static void test_sessions_full(void **state)
{
	struct nb_rendezvous_config cfg;
	struct h *h;
	char s1[17], req[256];
	size_t len;

	(void)state;
	nb_rendezvous_config_default(&cfg);
	cfg.max_sessions = 1;
	h = h_new(&cfg);
	reg_ok(h, "alice", "203.0.113.1:1", 0, "fc");
	reg_ok(h, "bob", "198.51.100.2:1", 0, "fc");
	reg_ok(h, "carol", "198.51.100.3:1", 0, "fc");
	assert_int_equal(connect_(h, "203.0.113.1:1", 0, "alice", "bob"), 2);
	snprintf(s1, sizeof(s1), "%s", h->m[0].u.plan.session);
	/* bob has his plan */
	assert_int_equal(sendf(h, "198.51.100.2:1", 10, HDR "}", "ack", h->m[1].tx), 0);
	len = (size_t)snprintf(req, sizeof(req), HDR ",\"id\":\"alice\",\"peer\":\"carol\"}",
			       "connect", next_tx(h));
	send_raw(h, "203.0.113.1:1", 20, (const uint8_t *)req, len);
	expect_error(h, 503, "too many connections in progress (1)");
	assert_int_equal(last_ev(h)->kind, NB_RV_EVENT_LIMIT);
	assert_int_equal(last_ev(h)->limit, NB_RV_LIMIT_SESSIONS);
	assert_int_equal(stats(h).full_sessions, 1);
	/* both sides report: the session is finished, its slot can be reused;
	 * the 503 was not cached, so the retransmission gets a plan */
	result(h, "203.0.113.1:1", 30, s1, "alice", "connected", "direct", 10);
	result(h, "198.51.100.2:1", 30, s1, "bob", "connected", "direct", 12);
	assert_int_equal(send_raw(h, "203.0.113.1:1", 40, (const uint8_t *)req, len), 2);
	assert_int_equal(h->m[0].type, NB_CTRL_PLAN);
	assert_string_equal(h->m[0].u.plan.peer, "carol");
	/* the matrix keeps what the evicted session measured */
	assert_int_equal(matrix_pair(h, 50, "alice", "bob").measured, NB_PATH_DIRECT);
	h_free(h);
}

static void test_sessions_time_out(void **state)
{
	struct nb_rendezvous_config cfg;
	struct h *h;

	(void)state;
	nb_rendezvous_config_default(&cfg);
	cfg.max_sessions = 1;
	h = h_new(&cfg);
	reg_ok(h, "alice", "203.0.113.1:1", 0, "fc");
	reg_ok(h, "bob", "198.51.100.2:1", 0, "fc");
	assert_int_equal(connect_(h, "203.0.113.1:1", 0, "alice", "bob"), 2);
	/* nobody acks or reports: live until the push window and deadline pass */
	connect_(h, "203.0.113.1:1", 11750 + 5000 - 1, "alice", "bob");
	expect_error(h, 503, NULL);
	assert_int_equal(connect_(h, "203.0.113.1:1", 11750 + 5000, "alice", "bob"), 2);
	h_free(h);
}

static void test_list_rate(void **state)
{
	struct nb_rendezvous_config cfg;
	struct h *h;

	(void)state;
	nb_rendezvous_config_default(&cfg);
	cfg.list_rate = 2;
	h = h_new(&cfg);
	sendf(h, "192.0.2.1:1", 1000, HDR PAD "}", "peers", next_tx(h));
	assert_int_equal(h->m[0].type, NB_CTRL_PEER_LIST);
	sendf(h, "192.0.2.1:1", 1000, HDR PAD "}", "matrix", next_tx(h));
	assert_int_equal(h->m[0].type, NB_CTRL_MATRIX_LIST);
	sendf(h, "192.0.2.1:1", 1000, HDR PAD "}", "peers", next_tx(h));
	expect_error(h, 429, "too many list queries; try again later");
	assert_int_equal(last_ev(h)->kind, NB_RV_EVENT_LIMIT);
	assert_int_equal(last_ev(h)->limit, NB_RV_LIMIT_RATE);
	sendf(h, "192.0.2.1:1", 1500, HDR PAD "}", "peers", next_tx(h));
	assert_int_equal(h->m[0].type, NB_CTRL_PEER_LIST);
	assert_int_equal(stats(h).rate_limited, 1);
	h_free(h);
}

struct snap {
	size_t peers, sessions, pairs;
	uint64_t connects_ok;
};

static struct snap snap(const struct h *h)
{
	struct nb_rendezvous_stats st = stats(h);
	struct snap s = { st.peers, st.sessions, st.pairs, st.pushes };
	return s;
}

/* ---- names are keys ---------------------------------------------------------------- */

/* A live name stays with its key: another key gets 409 whatever token it
 * shows and from wherever, and connects keep reaching the holder. Once
 * the entry has expired, the name is anyone's. */
static void test_key_takeover(void **state)
{
	struct nb_rendezvous_config cfg;
	struct h *h;
	static const char *const tokens[] = { NULL, "s3cret", "other" };

	(void)state;
	nb_rendezvous_config_default(&cfg);
	snprintf(cfg.token, sizeof(cfg.token), "s3cret");
	h = h_new(&cfg);
	assert_int_equal(reg_full(h, "alice", "203.0.113.1:1", 0, NULL, NULL, NULL, NULL, "s3cret"), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	assert_int_equal(reg_full(h, "bob", "198.51.100.2:1", 0, NULL, NULL, NULL, NULL, "s3cret"), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	/* mallory, with the broker's token, from elsewhere or from alice's own address */
	h_as(h, "mallory");
	reg_full(h, "alice", "192.0.2.66:6", 10, NULL, NULL, NULL, NULL, "s3cret");
	expect_error(h, 409, "'alice' is held by another key");
	h_as(h, "mallory");
	reg_full(h, "alice", "203.0.113.1:1", 10, NULL, NULL, NULL, NULL, "s3cret");
	expect_error(h, 409, "'alice' is held by another key");
	assert_int_equal(stats(h).key_conflicts, 2);
	/* bob's connects still reach alice: her address, her key */
	assert_int_equal(connect_(h, "198.51.100.2:1", 20, "bob", "alice"), 2);
	assert_string_equal(h->m[0].u.plan.peer_key, key_text_of("alice"));
	assert_string_equal(h->m[1].u.plan.peer_key, key_text_of("bob"));
	struct nb_addr aa = A("203.0.113.1:1");
	assert_true(nb_addr_equal(&h->out.d[1].to, &aa));
	/* the holder refreshes; mallory still cannot take it right before expiry */
	sendf(h, "203.0.113.1:1", 1000, HDR ",\"id\":\"alice\"}", "keepalive", next_tx(h));
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	h_as(h, "mallory");
	reg_full(h, "alice", "192.0.2.66:6", 1000 + E_MS - 1, NULL, NULL, NULL, NULL, "s3cret");
	expect_error(h, 409, NULL);
	/* expired: the name is free for a new key */
	h_as(h, "mallory");
	reg_full(h, "alice", "192.0.2.66:6", 1000 + E_MS, NULL, NULL, NULL, NULL, "s3cret");
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	assert_int_equal(last_ev(h)->change, NB_REGISTRY_NEW);
	assert_string_equal(last_ev(h)->key_text, key_text_of("mallory"));
	/* ... and now alice's old key is the stranger, whatever its token */
	for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
		reg_full(h, "alice", "203.0.113.1:1", 1000 + E_MS + 1, NULL, NULL, NULL, NULL, tokens[i]);
		assert_int_equal(h->m[0].type, NB_CTRL_ERROR);
		assert_true(h->m[0].u.error.code == 409 || h->m[0].u.error.code == 401);
	}
	h_as(h, "mallory");
	sendf(h, "192.0.2.66:6", 1000 + E_MS + 2, HDR ",\"id\":\"alice\"}", "keepalive", next_tx(h));
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	h_free(h);
}

/* One key may hold several names; a connect between them is still one key
 * talking to itself under two names, which the engine allows. */
static void test_one_key_many_names(void **state)
{
	struct h *h = h_new(NULL);

	(void)state;
	h_as(h, "device");
	assert_int_equal(reg_full(h, "laptop", "203.0.113.1:1", 0, NULL, NULL, NULL, NULL, NULL), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	h_as(h, "device");
	assert_int_equal(reg_full(h, "lap2", "203.0.113.1:2", 0, NULL, NULL, NULL, NULL, NULL), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	assert_int_equal(stats(h).peers, 2);
	/* laptop's own default key (derived from "laptop") is not the holder */
	sendf(h, "203.0.113.1:1", 10, HDR ",\"id\":\"laptop\"}", "keepalive", next_tx(h));
	expect_error(h, 404, "'laptop' is not held by this key");
	h_as(h, "device");
	sendf(h, "203.0.113.1:1", 10, HDR ",\"id\":\"laptop\"}", "keepalive", next_tx(h));
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	h_free(h);
}

static size_t bye(struct h *h, const char *from, uint64_t now, const char *id)
{
	return sendf(h, from, now, HDR ",\"id\":\"%s\"}", "bye", next_tx(h), id);
}

static void test_bye(void **state)
{
	struct h *h = h_new(NULL);
	char req[256];
	size_t len;

	(void)state;
	reg_ok(h, "alice", "203.0.113.1:1", 0, "fc");
	reg_ok(h, "bob", "198.51.100.2:1", 0, "fc");
	/* not the holder, even from alice's own address: refused, the name stays */
	h_as(h, "mallory");
	bye(h, "203.0.113.1:1", 10, "alice");
	expect_error(h, 404, "'alice' is not held by this key");
	assert_int_equal(last_ev(h)->kind, NB_RV_EVENT_REFUSED);
	assert_int_equal(stats(h).peers, 2);
	h_as(h, "bob"); /* another registered peer is no holder either */
	bye(h, "198.51.100.2:1", 10, "alice");
	expect_error(h, 404, "'alice' is not held by this key");
	assert_int_equal(stats(h).not_holder, 2);
	assert_int_equal(connect_(h, "198.51.100.2:1", 20, "bob", "alice"), 2);
	assert_string_equal(h->m[0].u.plan.peer_key, key_text_of("alice"));
	bye(h, "203.0.113.9:9", 20, "nobody");
	expect_error(h, 404, "no peer 'nobody'");
	assert_int_equal(stats(h).byes, 0);

	/* the holder (from a new address: the key is the proof): ack, and gone */
	h->n_ev = 0;
	len = (size_t)snprintf(req, sizeof(req), HDR ",\"id\":\"alice\"}", "bye", next_tx(h));
	assert_int_equal(send_raw(h, "203.0.113.1:7", 30, (const uint8_t *)req, len), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	assert_string_equal(h->m[0].tx, h->tx);
	assert_int_equal(h->n_ev, 1);
	assert_int_equal(h->ev[0].kind, NB_RV_EVENT_BYE);
	assert_string_equal(h->ev[0].id, "alice");
	assert_string_equal(h->ev[0].key_text, key_text_of("alice"));
	assert_int_equal(stats(h).byes, 1);
	assert_int_equal(stats(h).peers, 1);
	/* its retransmission: the same ack (the reply cache), not a 404 */
	assert_int_equal(send_raw(h, "203.0.113.1:7", 40, (const uint8_t *)req, len), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	assert_int_equal(stats(h).byes, 1);
	/* a new bye: nobody there */
	bye(h, "203.0.113.1:7", 50, "alice");
	expect_error(h, 404, "no peer 'alice'");
	connect_(h, "198.51.100.2:1", 50, "bob", "alice");
	expect_error(h, 404, "no peer 'alice'");
	sendf(h, "203.0.113.1:1", 50, HDR ",\"id\":\"alice\"}", "keepalive", next_tx(h));
	expect_error(h, 404, "no peer 'alice'");
	/* the name is free: another key takes it at once (no expiry, no EXPIRED event) */
	h_as(h, "mallory");
	assert_int_equal(reg_full(h, "alice", "192.0.2.66:6", 60, NULL, NULL, NULL, NULL, NULL), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	assert_int_equal(last_ev(h)->change, NB_REGISTRY_NEW);
	assert_int_equal(connect_(h, "198.51.100.2:1", 70, "bob", "alice"), 2);
	assert_string_equal(h->m[0].u.plan.peer_key, key_text_of("mallory"));
	assert_int_equal(count_ev(h, NB_RV_EVENT_EXPIRED), 0);
	h_free(h);
}

/* A request that did not come through a Noise session: 401, plain, no
 * longer than itself, and nothing changes. */
static void test_unsealed(void **state)
{
	static const char why[] = "control messages must be sealed: Noise handshake first (docs/protocol.md)";
	struct h *h = h_new(NULL);
	char msgs[9][1300], sess[17], ptx[17];
	struct snap before, after;
	struct nb_rendezvous_dgram out[8];
	struct nb_rendezvous_stats st;

	(void)state;
	reg_ok(h, "alice", "203.0.113.1:1", 0, "fc");
	reg_ok(h, "bob", "198.51.100.2:1", 0, "prc");
	assert_int_equal(connect_(h, "203.0.113.1:1", 0, "alice", "bob"), 2);
	snprintf(sess, sizeof(sess), "%s", h->m[0].u.plan.session);
	snprintf(ptx, sizeof(ptx), "%s", h->m[1].tx);
	/* each long enough for the whole reason, so that it is not cut */
#define LONGPAD ",\"x\":\"" D100 "\""
	snprintf(msgs[0], sizeof(msgs[0]), HDR ",\"id\":\"carol\",\"local\":[]" LONGPAD "}", "register", next_tx(h));
	snprintf(msgs[1], sizeof(msgs[1]), HDR ",\"id\":\"alice\",\"local\":[]" LONGPAD "}", "register", next_tx(h));
	snprintf(msgs[2], sizeof(msgs[2]), HDR ",\"id\":\"alice\",\"peer\":\"bob\"" LONGPAD "}", "connect", next_tx(h));
	snprintf(msgs[3], sizeof(msgs[3]), HDR ",\"session\":\"%s\",\"id\":\"alice\",\"outcome\":"
		 "\"connected\",\"path\":\"direct\",\"ms\":3" LONGPAD "}", "result", next_tx(h), sess);
	snprintf(msgs[4], sizeof(msgs[4]), HDR ",\"id\":\"alice\"" LONGPAD "}", "keepalive", next_tx(h));
	snprintf(msgs[5], sizeof(msgs[5]), HDR ",\"id\":\"alice\"" LONGPAD "}", "bye", next_tx(h));
	snprintf(msgs[6], sizeof(msgs[6]), HDR PAD "}", "peers", next_tx(h));
	snprintf(msgs[7], sizeof(msgs[7]), HDR ",\"admin\":\"" ADMIN "\"" PAD "}", "matrix", next_tx(h));
	snprintf(msgs[8], sizeof(msgs[8]), HDR ",\"external\":\"203.0.113.1:5\"" LONGPAD "}", "verify", next_tx(h));
	before = snap(h);
	st = stats(h);
	for (size_t m = 0; m < 9; m++) {
		size_t len = strlen(msgs[m]);
		h->n_ev = 0;
		h_plain(h);
		assert_int_equal(send_raw(h, "203.0.113.1:1", 10, (const uint8_t *)msgs[m], len), 1);
		expect_error(h, 401, why);
		assert_false(h->out.d[0].sealed);
		assert_false(h->out.rnd_used);
		assert_true(h->out.d[0].len <= len);
		assert_int_equal(h->n_ev, 1);
		assert_int_equal(h->ev[0].kind, NB_RV_EVENT_REFUSED);
		assert_int_equal(h->ev[0].code, 401);
		assert_false(h->ev[0].has_key);
		assert_int_equal(h->ev[0].request, h->req.type);
		/* again: answered afresh (not cached), still 401 */
		h_plain(h);
		assert_int_equal(send_raw(h, "203.0.113.1:1", 10, (const uint8_t *)msgs[m], len), 1);
		expect_error(h, 401, why);
	}
	after = snap(h);
	assert_memory_equal(&after, &before, sizeof(before));
	assert_int_equal(stats(h).unsealed, 18);
	assert_int_equal(stats(h).registers, st.registers);
	assert_int_equal(stats(h).results, st.results);
	assert_int_equal(stats(h).lists, st.lists);
	assert_int_equal(stats(h).verifies, st.verifies);
	assert_int_equal(stats(h).replayed, st.replayed);
	assert_int_equal(stats(h).cached, st.cached);
	assert_int_equal(matrix_pair(h, 10, "alice", "bob").has_measured, false);
	/* alice's entry was not refreshed by the plain keepalive nor freed by the plain bye */
	assert_int_equal(nb_rendezvous_next_deadline(h->rv), 250); /* bob's push */
	/* a plain ack for bob's push is ignored: it is retransmitted */
	h_plain(h);
	assert_int_equal(sendf(h, "198.51.100.2:1", 20, HDR "}", "ack", ptx), 0);
	assert_int_equal(stats(h).push_acked, 0);
	assert_int_equal(poll_(h, 250, out), 1);
	/* ... and so is alice's ack for it: only the key it was sealed to acks it */
	h_as(h, "alice");
	assert_int_equal(sendf(h, "198.51.100.2:1", 260, HDR "}", "ack", ptx), 0);
	assert_int_equal(stats(h).push_acked, 0);
	assert_int_equal(sendf(h, "198.51.100.2:1", 270, HDR "}", "ack", ptx), 0); /* bob's key */
	assert_int_equal(stats(h).push_acked, 1);
	/* the 401's reason is cut to keep it no longer than a short request */
	{
		char req[128];
		size_t len = (size_t)snprintf(req, sizeof(req), HDR ",\"id\":\"alice\",\"local\":[]}", "register", next_tx(h));
		h_plain(h);
		assert_int_equal(send_raw(h, "203.0.113.1:1", 300, (const uint8_t *)req, len), 1);
		assert_int_equal(h->m[0].u.error.code, 401);
		assert_true(h->out.d[0].len <= len);
		assert_true(strlen(h->m[0].u.error.reason) < strlen(why));
		assert_memory_equal(h->m[0].u.error.reason, why, strlen(h->m[0].u.error.reason));
		/* the shortest: not even an empty reason fits: silence */
		len = (size_t)snprintf(req, sizeof(req), HDR ",\"id\":\"a\"}", "bye", next_tx(h));
		h_plain(h);
		assert_int_equal(send_raw(h, "203.0.113.1:1", 300, (const uint8_t *)req, len), 0);
	}
	assert_int_equal(stats(h).peers, 2);
	h_free(h);
}

/* Only the side a result names, by its key, may report it. */
static void test_forged_result(void **state)
{
	struct h *h = h_new(NULL);
	char sess[17];
	struct nb_ctrl_pair p;

	(void)state;
	reg_ok(h, "alice", "203.0.113.1:1", 0, "fc");
	reg_ok(h, "bob", "198.51.100.2:1", 0, "prc");
	reg_ok(h, "carol", "198.51.100.3:1", 0, "sym");
	connect_(h, "203.0.113.1:1", 0, "alice", "bob");
	snprintf(sess, sizeof(sess), "%s", h->m[0].u.plan.session);
	/* carol's key (a registered peer) reports for alice, from alice's address */
	h_as(h, "carol");
	result(h, "203.0.113.1:1", 10, sess, "alice", "connected", "direct", 7);
	expect_error(h, 404, "'alice' is not held by this key");
	assert_int_equal(last_ev(h)->kind, NB_RV_EVENT_REFUSED);
	/* alice's key reports for bob */
	h_as(h, "alice");
	result(h, "198.51.100.2:1", 10, sess, "bob", "failed", "none", 7);
	expect_error(h, 404, "'bob' is not held by this key");
	/* a stranger's key for either */
	h_as(h, "mallory");
	result(h, "192.0.2.66:6", 10, sess, "bob", "connected", "direct", 7);
	expect_error(h, 404, "'bob' is not held by this key");
	/* carol speaking for herself: not in the session */
	result(h, "198.51.100.3:1", 10, sess, "carol", "connected", "direct", 7);
	expect_error(h, 400, NULL);
	assert_int_equal(stats(h).forged_results, 3);
	p = matrix_pair(h, 20, "alice", "bob");
	assert_false(p.has_measured);
	/* the real one counts */
	result(h, "203.0.113.1:1", 30, sess, "alice", "connected", "direct", 9);
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	assert_string_equal(last_ev(h)->key_text, key_text_of("alice"));
	p = matrix_pair(h, 30, "alice", "bob");
	assert_true(p.has_measured);
	assert_int_equal(p.ms, 9);
	/* a later holder of a name is not the session's side: alice says bye,
	 * mallory takes the name, and cannot report for the old session */
	bye(h, "203.0.113.1:1", 40, "alice");
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	h_as(h, "mallory");
	reg_full(h, "alice", "192.0.2.66:6", 50, NULL, NULL, NULL, NULL, NULL);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	h_as(h, "mallory");
	result(h, "192.0.2.66:6", 60, sess, "alice", "failed", "none", 1);
	expect_error(h, 404, "'alice' is not held by this key");
	p = matrix_pair(h, 60, "alice", "bob");
	assert_int_equal(p.measured, NB_PATH_DIRECT);
	assert_int_equal(p.ms, 9);
	assert_int_equal(stats(h).forged_results, 4);
	h_free(h);
}

/* peers and matrix: the admin token, or a public broker. */
static void test_list_access(void **state)
{
	static const char *const types[] = { "peers", "matrix" };
	struct nb_rendezvous_config cfg;
	struct h *h;

	(void)state;
	h_private = true;
	h = h_new(NULL);
	h_private = false;
	reg_ok(h, "alice", "203.0.113.1:1", 0, "fc");
	for (size_t t = 0; t < 2; t++) {
		sendf(h, "203.0.113.1:1", 10, HDR PAD "}", types[t], next_tx(h));
		expect_error(h, 403, "listing needs the broker's admin token");
		assert_int_equal(last_ev(h)->kind, NB_RV_EVENT_REFUSED);
		assert_int_equal(last_ev(h)->code, 403);
		/* wrong, a prefix, longer, other case */
		sendf(h, "203.0.113.1:1", 10, HDR ",\"admin\":\"nope\"" PAD "}", types[t], next_tx(h));
		expect_error(h, 403, NULL);
		sendf(h, "203.0.113.1:1", 10, HDR ",\"admin\":\"adm1n t0ke\"" PAD "}", types[t], next_tx(h));
		expect_error(h, 403, NULL);
		sendf(h, "203.0.113.1:1", 10, HDR ",\"admin\":\"adm1n t0ken!\"" PAD "}", types[t], next_tx(h));
		expect_error(h, 403, NULL);
		sendf(h, "203.0.113.1:1", 10, HDR ",\"admin\":\"ADM1N T0KEN\"" PAD "}", types[t], next_tx(h));
		expect_error(h, 403, NULL);
		/* the right one */
		sendf(h, "203.0.113.1:1", 10, HDR ",\"admin\":\"" ADMIN "\"" PAD "}", types[t], next_tx(h));
		assert_int_equal(h->m[0].type, t == 0 ? NB_CTRL_PEER_LIST : NB_CTRL_MATRIX_LIST);
	}
	assert_int_equal(h->m[0].u.matrix_list.total, 0);
	sendf(h, "203.0.113.1:1", 10, HDR ",\"admin\":\"" ADMIN "\"" PAD "}", "peers", next_tx(h));
	assert_int_equal(h->m[0].u.peer_list.total, 1);
	assert_string_equal(h->m[0].u.peer_list.peers[0].id, "alice");
	assert_int_equal(stats(h).list_refused, 10);
	h_free(h);

	/* no admin token configured: nobody lists, not even with an empty "admin" */
	nb_rendezvous_config_default(&cfg);
	h_private = true;
	h = h_new(&cfg);
	h_private = false;
	nb_rendezvous_free(h->rv);
	for (unsigned i = 0; i < sizeof(cfg.hash_key); i++)
		cfg.hash_key[i] = (uint8_t)i;
	cfg.event_cb = on_event;
	cfg.event_arg = h;
	assert_int_equal(nb_rendezvous_new(&cfg, &h->rv), 0);
	sendf(h, "203.0.113.1:1", 10, HDR PAD "}", "peers", next_tx(h));
	expect_error(h, 403, NULL);
	sendf(h, "203.0.113.1:1", 10, HDR ",\"admin\":\"" ADMIN "\"" PAD "}", "matrix", next_tx(h));
	expect_error(h, 403, NULL);
	h_free(h);

	/* public_list: anyone with a session lists, admin or not */
	h = h_new(NULL);
	sendf(h, "203.0.113.1:1", 10, HDR PAD "}", "peers", next_tx(h));
	assert_int_equal(h->m[0].type, NB_CTRL_PEER_LIST);
	sendf(h, "203.0.113.1:1", 10, HDR ",\"admin\":\"wrong\"" PAD "}", "matrix", next_tx(h));
	assert_int_equal(h->m[0].type, NB_CTRL_MATRIX_LIST);
	assert_int_equal(stats(h).list_refused, 0);
	h_free(h);
}

/* How each datagram out is to be sealed, case by case (send_raw() and
 * poll_() check the general rule on every send as well). */
static void test_out_keys(void **state)
{
	struct h *h = h_new(NULL);
	struct nb_rendezvous_dgram out[8];
	uint8_t ka[NB_KEY_LEN], kb[NB_KEY_LEN], km[NB_KEY_LEN];
	char req[256], bad[600];
	size_t len;

	(void)state;
	key_of("alice", ka);
	key_of("bob", kb);
	key_of("mallory", km);
	reg_ok(h, "alice", "203.0.113.1:1", 0, "fc");
	assert_true(h->out.d[0].sealed);
	assert_memory_equal(h->out.d[0].key, ka, NB_KEY_LEN);
	reg_ok(h, "bob", "198.51.100.2:1", 0, "prc");
	assert_memory_equal(h->out.d[0].key, kb, NB_KEY_LEN);
	/* connect: the reply to alice's key, the push to bob's */
	len = (size_t)snprintf(req, sizeof(req), HDR ",\"id\":\"alice\",\"peer\":\"bob\"}", "connect", next_tx(h));
	assert_int_equal(send_raw(h, "203.0.113.1:1", 10, (const uint8_t *)req, len), 2);
	assert_true(h->out.d[0].sealed && h->out.d[1].sealed);
	assert_memory_equal(h->out.d[0].key, ka, NB_KEY_LEN);
	assert_memory_equal(h->out.d[1].key, kb, NB_KEY_LEN);
	/* its retransmission from the cache: to alice's key again */
	assert_int_equal(send_raw(h, "203.0.113.1:1", 20, (const uint8_t *)req, len), 1);
	assert_int_equal(stats(h).replayed, 1);
	assert_true(h->out.d[0].sealed);
	assert_memory_equal(h->out.d[0].key, ka, NB_KEY_LEN);
	/* the same bytes from the same source under another key are not a
	 * retransmission: mallory does not get alice's plan */
	h_as(h, "mallory");
	assert_int_equal(send_raw(h, "203.0.113.1:1", 30, (const uint8_t *)req, len), 1);
	expect_error(h, 404, "'alice' is not held by this key");
	assert_memory_equal(h->out.d[0].key, km, NB_KEY_LEN);
	assert_int_equal(stats(h).replayed, 1);
	/* the push's retransmission: to bob's key */
	assert_int_equal(poll_(h, 260, out), 1);
	assert_true(out[0].sealed);
	assert_memory_equal(out[0].key, kb, NB_KEY_LEN);
	/* errors to sealed requests are sealed; a 400 to an undecodable sealed
	 * datagram too, one to a plain datagram is plain */
	len = (size_t)snprintf(bad, sizeof(bad), HDR ",\"id\":\"%s\",\"pad\":\"%0300d\"}", "keepalive",
			       "0123456789abcdef", "this-id-is-far-too-long-for-the-protocol", 0);
	assert_int_equal(send_raw(h, "203.0.113.1:1", 300, (const uint8_t *)bad, len), 1);
	assert_int_equal(h->m[0].u.error.code, 400);
	assert_true(h->out.d[0].sealed);
	h_plain(h);
	assert_int_equal(send_raw(h, "203.0.113.1:1", 300, (const uint8_t *)bad, len), 1);
	assert_int_equal(h->m[0].u.error.code, 400);
	assert_false(h->out.d[0].sealed);
	/* a verify's probe goes plain to the mapping, from the alternate port */
	assert_int_equal(sendf(h, "198.51.100.2:1", 400, HDR ",\"external\":\"198.51.100.2:51000\"}", "verify",
			       next_tx(h)), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_PROBE);
	assert_false(h->out.d[0].sealed);
	/* ... and its refusal is a sealed reply */
	assert_int_equal(sendf(h, "198.51.100.2:1", 400, HDR ",\"external\":\"192.0.2.9:51000\"}", "verify",
			       next_tx(h)), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_ERROR);
	assert_true(h->out.d[0].sealed);
	assert_memory_equal(h->out.d[0].key, kb, NB_KEY_LEN);
	h_free(h);
}

/* ---- bad input ----------------------------------------------------------------------- */

static void test_garbage_changes_nothing(void **state)
{
	struct h *h = h_new(NULL);
	char msgs[5][512];
	struct snap before, after;
	char sess[17];

	(void)state;
	reg_ok(h, "alice", "203.0.113.1:1", 0, "fc");
	reg_ok(h, "bob", "198.51.100.2:1", 0, "prc");
	connect_(h, "203.0.113.1:1", 0, "alice", "bob");
	snprintf(sess, sizeof(sess), "%s", h->m[0].u.plan.session);
	snprintf(msgs[0], sizeof(msgs[0]), HDR ",\"id\":\"carol\",\"local\":[\"192.168.1.2:5\"],"
		 "\"nat\":{\"mapping\":\"none\",\"filtering\":\"endpoint-independent\"}}",
		 "register", "1111111111111111");
	snprintf(msgs[1], sizeof(msgs[1]), HDR ",\"id\":\"alice\",\"peer\":\"bob\"}", "connect",
		 "2222222222222222");
	snprintf(msgs[2], sizeof(msgs[2]), HDR ",\"session\":\"%s\",\"id\":\"alice\",\"outcome\":"
		 "\"connected\",\"path\":\"direct\",\"ms\":3}", "result", "3333333333333333", sess);
	snprintf(msgs[3], sizeof(msgs[3]), HDR ",\"id\":\"alice\"}", "keepalive", "4444444444444444");
	snprintf(msgs[4], sizeof(msgs[4]), HDR ",\"offset\":0}", "matrix", "5555555555555555");
	before = snap(h);
	for (size_t m = 0; m < 5; m++) {
		size_t len = strlen(msgs[m]);
		for (size_t cut = 0; cut < len; cut++) {
			/* an exact-size heap copy: a read past the end is caught by ASan */
			uint8_t *buf = malloc(cut ? cut : 1);
			assert_non_null(buf);
			memcpy(buf, msgs[m], cut);
			h->n_ev = 0;
			send_raw(h, "203.0.113.1:1", 10, buf, cut);
			free(buf);
			assert_true(h->out.n <= 1);
			if (h->out.n == 1) {
				assert_int_equal(h->m[0].type, NB_CTRL_ERROR);
				assert_int_equal(h->m[0].u.error.code, 400);
				assert_true(h->out.d[0].len <= cut); /* never amplified */
			}
			for (size_t e = 0; e < h->n_ev; e++)
				assert_int_equal(h->ev[e].kind, NB_RV_EVENT_REFUSED);
			after = snap(h);
			assert_memory_equal(&after, &before, sizeof(before));
		}
	}
	/* junk of every first byte */
	for (unsigned b = 0; b < 256; b++) {
		uint8_t junk[64];
		memset(junk, (int)b, sizeof(junk));
		junk[0] = (uint8_t)b;
		send_raw(h, "203.0.113.1:1", 10, junk, sizeof(junk));
		assert_int_equal(h->out.n, 0);
	}
	after = snap(h);
	assert_memory_equal(&after, &before, sizeof(before));
	h_free(h);
}

static void test_bad_request_replies(void **state)
{
	struct h *h = h_new(NULL);
	char why[NB_CTRL_REASON_MAX + 1], buf[600];
	size_t len;

	(void)state;
	/* short: even an error with an empty reason would be longer: nothing */
	assert_int_equal(send_json(h, "203.0.113.1:1", 0, "{\"tx\":\"0123456789abcdef\"}"), 0);
	snprintf(buf, sizeof(buf), HDR "}", "nope", "0123456789abcdef");
	assert_int_equal(send_json(h, "203.0.113.1:1", 0, buf), 0);
	assert_int_equal(stats(h).oversize_suppressed, 2);
	/* long enough: 400 with nb_ctrl_explain()'s words, echoing the tx */
	len = (size_t)snprintf(buf, sizeof(buf), HDR ",\"id\":\"%s\",\"pad\":\"%0300d\"}", "keepalive",
			       "0123456789abcdef", "this-id-is-far-too-long-for-the-protocol", 0);
	nb_ctrl_explain((const uint8_t *)buf, len, why, sizeof(why));
	assert_int_equal(send_json(h, "203.0.113.1:1", 0, buf), 1);
	expect_error(h, 400, why);
	assert_string_equal(h->m[0].tx, "0123456789abcdef");
	assert_true(h->out.d[0].len <= len);
	/* in between: the reason is cut to fit, never the size rule */
	len = (size_t)snprintf(buf, sizeof(buf), HDR ",\"id\":\"%s\"}", "keepalive", "0123456789abcdef",
			       "this-id-is-far-too-long-for-the-protocol");
	nb_ctrl_explain((const uint8_t *)buf, len, why, sizeof(why));
	assert_int_equal(send_json(h, "203.0.113.1:1", 0, buf), 1);
	assert_int_equal(h->m[0].u.error.code, 400);
	assert_true(h->out.d[0].len <= len);
	assert_true(strlen(h->m[0].u.error.reason) < strlen(why));
	assert_memory_equal(h->m[0].u.error.reason, why, strlen(h->m[0].u.error.reason));
	/* no tx to echo: nothing */
	len = (size_t)snprintf(buf, sizeof(buf), "{\"v\":1,\"type\":\"keepalive\",\"id\":\"a\",\"pad\":\"%0300d\"}", 0);
	assert_int_equal(send_json(h, "203.0.113.1:1", 0, buf), 0);
	h_free(h);
}

static void test_ignored(void **state)
{
	static const char *const replies[] = {
		"{\"v\":1,\"type\":\"registered\",\"tx\":\"0123456789abcdef\",\"id\":\"a\",\"reflexive\":"
		"\"203.0.113.9:4\",\"keepalive\":25,\"expires\":90}",
		"{\"v\":1,\"type\":\"plan\",\"tx\":\"0123456789abcdef\",\"session\":\"fedcba9876543210\","
		"\"peer\":\"bob\",\"role\":\"dial\",\"path\":\"direct\",\"reason\":\"\",\"candidates\":[],"
		"\"username\":\"u\",\"peer_key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\","
		"\"deadline_ms\":5000}",
		"{\"v\":1,\"type\":\"peer_list\",\"tx\":\"0123456789abcdef\",\"total\":0,\"offset\":0,"
		"\"peers\":[]}",
		"{\"v\":1,\"type\":\"matrix_list\",\"tx\":\"0123456789abcdef\",\"total\":0,\"offset\":0,"
		"\"pairs\":[]}",
		"{\"v\":1,\"type\":\"ack\",\"tx\":\"0123456789abcdef\"}",
		"{\"v\":1,\"type\":\"error\",\"tx\":\"0123456789abcdef\",\"code\":500,\"reason\":\"x\"}",
		"{\"v\":1,\"type\":\"challenge\",\"tx\":\"0123456789abcdef\",\"cookie\":"
		"\"00112233445566778899aabbccddeeff\"}",
		"{\"v\":1,\"type\":\"probe\",\"tx\":\"0123456789abcdef\",\"proof\":"
		"\"00112233445566778899aabbccddeeff\"}",
	};
	struct h *h = h_new(NULL);
	struct nb_addr zero;

	(void)state;
	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		size_t n = strlen(replies[i]);
		assert_int_equal(nb_ctrl_decode(&h->req, (const uint8_t *)replies[i], n), (ssize_t)n);
		assert_int_equal(send_json(h, "203.0.113.1:1", 0, replies[i]), 0);
		h_plain(h); /* sealed or not: never answered */
		assert_int_equal(send_json(h, "203.0.113.1:1", 0, replies[i]), 0);
	}
	assert_int_equal(stats(h).ignored, 16);
	assert_int_equal(stats(h).unsealed, 0);
	assert_int_equal(h->n_ev, 0);
	/* a source that cannot be answered */
	memset(&zero, 0, sizeof(zero));
	zero.family = NB_AF_INET;
	zero.ip[0] = 203;
	zero.port = 0;
	h->out.n = 5;
	assert_int_equal(nb_rendezvous_handle(h->rv, (const uint8_t *)replies[4], strlen(replies[4]),
					      &zero, 0, h->rnd, sizeof(h->rnd), &h->out), 0);
	assert_int_equal(h->out.n, 0);
	assert_int_equal(stats(h).bad_source, 1);
	h_free(h);
}

static void test_bad_args(void **state)
{
	struct nb_rendezvous_config cfg;
	struct nb_rendezvous *rv = (struct nb_rendezvous *)(uintptr_t)0x1;
	struct h *h = h_new(NULL);
	struct nb_addr f = A("203.0.113.1:1");
	const uint8_t b[] = "{}";
	size_t n = 77;

	(void)state;
	h->out.n = 77;
	assert_int_equal(nb_rendezvous_handle(NULL, b, 2, &f, 0, h->rnd, 48, &h->out), -EINVAL);
	assert_int_equal(nb_rendezvous_handle(h->rv, NULL, 2, &f, 0, h->rnd, 48, &h->out), -EINVAL);
	assert_int_equal(nb_rendezvous_handle(h->rv, b, 2, NULL, 0, h->rnd, 48, &h->out), -EINVAL);
	assert_int_equal(nb_rendezvous_handle(h->rv, b, 2, &f, 0, h->rnd, 47, &h->out), -EINVAL);
	assert_int_equal(nb_rendezvous_handle(h->rv, b, 2, &f, 0, NULL, 48, &h->out), -EINVAL);
	assert_int_equal(nb_rendezvous_handle(h->rv, b, 2, &f, 0, h->rnd, 48, NULL), -EINVAL);
	assert_int_equal(nb_rendezvous_handle_keyed(NULL, b, 2, &f, h->rnd, 0, h->rnd, 48, &h->out), -EINVAL);
	assert_int_equal(nb_rendezvous_handle_keyed(h->rv, NULL, 2, &f, h->rnd, 0, h->rnd, 48, &h->out), -EINVAL);
	assert_int_equal(nb_rendezvous_handle_keyed(h->rv, b, 2, NULL, h->rnd, 0, h->rnd, 48, &h->out), -EINVAL);
	assert_int_equal(nb_rendezvous_handle_keyed(h->rv, b, 2, &f, h->rnd, 0, h->rnd, 47, &h->out), -EINVAL);
	assert_int_equal(nb_rendezvous_handle_keyed(h->rv, b, 2, &f, h->rnd, 0, NULL, 48, &h->out), -EINVAL);
	assert_int_equal(nb_rendezvous_handle_keyed(h->rv, b, 2, &f, h->rnd, 0, h->rnd, 48, NULL), -EINVAL);
	assert_int_equal(h->out.n, 77); /* untouched */
	assert_int_equal(nb_rendezvous_poll(h->rv, 0, NULL, 1, &n), -EINVAL);
	assert_int_equal(nb_rendezvous_poll(h->rv, 0, NULL, 0, NULL), -EINVAL);
	assert_int_equal(n, 77);

	nb_rendezvous_config_default(&cfg);
	cfg.max_sessions = 0;
	assert_int_equal(nb_rendezvous_new(&cfg, &rv), -EINVAL);
	nb_rendezvous_config_default(&cfg);
	cfg.cache_ms = NB_RENDEZVOUS_CACHE_MS - 1;
	assert_int_equal(nb_rendezvous_new(&cfg, &rv), -EINVAL);
	nb_rendezvous_config_default(&cfg);
	cfg.keepalive_s = 3601;
	assert_int_equal(nb_rendezvous_new(&cfg, &rv), -EINVAL);
	nb_rendezvous_config_default(&cfg);
	cfg.token[0] = '\t';
	assert_int_equal(nb_rendezvous_new(&cfg, &rv), -EINVAL);
	nb_rendezvous_config_default(&cfg);
	memset(cfg.token, 'x', sizeof(cfg.token)); /* not terminated */
	assert_int_equal(nb_rendezvous_new(&cfg, &rv), -EINVAL);
	nb_rendezvous_config_default(&cfg);
	assert_false(cfg.require_cookie); /* sealed registers have shown they receive */
	assert_false(cfg.public_list);
	assert_string_equal(cfg.admin_token, "");
	cfg.admin_token[0] = '\n';
	assert_int_equal(nb_rendezvous_new(&cfg, &rv), -EINVAL);
	nb_rendezvous_config_default(&cfg);
	memset(cfg.admin_token, 'x', sizeof(cfg.admin_token)); /* not terminated */
	assert_int_equal(nb_rendezvous_new(&cfg, &rv), -EINVAL);
	nb_rendezvous_config_default(&cfg);
	cfg.admin_token[0] = (char)0x7F;
	assert_int_equal(nb_rendezvous_new(&cfg, &rv), -EINVAL);
	assert_ptr_equal(rv, (struct nb_rendezvous *)(uintptr_t)0x1); /* untouched */
	nb_rendezvous_free(NULL);
	h_free(h);
}

/* ---- Relay (TURN): credentials in the plans, relayed forwarded ------------------------ */

#define UNIX_S 1700000000ull
#define RELAY_SECRET "turn-s3cret"
#define CRED_S 600

/* A broker with n relays (203.0.113.10:3478, [2001:db8::10]:3478, ...),
 * credentials good for CRED_S, the wall clock at UNIX_S. */
static struct h *h_relay_bday(size_t n, bool birthday)
{
	struct nb_rendezvous_config cfg;
	static const char *const srv[] = { "203.0.113.10:3478", "[2001:db8::10]:3478", "192.0.2.30:3479" };
	struct h *h;

	nb_rendezvous_config_default(&cfg);
	cfg.birthday.has = birthday;
	assert_int_equal(cfg.n_relays, 0); /* no relay unless configured */
	assert_true(n <= sizeof(srv) / sizeof(srv[0]));
	for (size_t i = 0; i < n; i++)
		cfg.relays[i] = A(srv[i]);
	cfg.n_relays = n;
	memcpy(cfg.relay_secret, RELAY_SECRET, strlen(RELAY_SECRET));
	cfg.relay_secret_len = strlen(RELAY_SECRET);
	cfg.relay_cred_s = CRED_S;
	h = h_new(&cfg);
	nb_rendezvous_set_context(h->rv, UNIX_S, false);
	return h;
}

static struct h *h_relay(size_t n)
{
	return h_relay_bday(n, true);
}

/* The TURN REST password of user, computed here with OpenSSL's one-shot
 * HMAC() and EVP_EncodeBlock() (not with proto/turn.c). */
static void rest_pass(const char *user, char out[NB_CTRL_RELAY_PASS_MAX + 1])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	assert_non_null(HMAC(EVP_sha1(), RELAY_SECRET, (int)strlen(RELAY_SECRET), (const unsigned char *)user,
			     strlen(user), mac, &n));
	assert_int_equal(n, 20);
	assert_int_equal(EVP_EncodeBlock((unsigned char *)out, mac, (int)n), 28);
}

/* The relay object of a plan that allocates: server, user, pass. */
static void check_alloc(const struct nb_ctrl_plan *p, const char *session, size_t n_relays,
			uint64_t expiry, const char *holder)
{
	static const char *const srv[] = { "203.0.113.10:3478", "[2001:db8::10]:3478", "192.0.2.30:3479" };
	char user[NB_CTRL_RELAY_USER_MAX + 1], pass[NB_CTRL_RELAY_PASS_MAX + 1];
	uint8_t k[NB_KEY_LEN];
	struct nb_addr want;

	(void)session;
	/* The server is chosen by the allocating side's key (its allocation in
	 * advance and its plans name the same one). */
	assert_int_equal(nb_key_from_text(key_text_of(holder), NB_KEY_TEXT_LEN, k), 0);
	want = A(srv[k[0] % n_relays]);

	assert_true(p->relay.has_relay);
	assert_true(p->relay.alloc);
	assert_true(nb_addr_equal(&p->relay.server, &want));
	snprintf(user, sizeof(user), "%llu:%s", (unsigned long long)expiry, key_text_of(holder));
	assert_string_equal(p->relay.user, user);
	rest_pass(user, pass);
	assert_string_equal(p->relay.pass, pass);
}

static void check_no_alloc(const struct nb_ctrl_plan *p)
{
	static const struct nb_addr none;

	assert_true(p->relay.has_relay);
	assert_false(p->relay.alloc);
	assert_true(nb_addr_equal(&p->relay.server, &none));
	assert_string_equal(p->relay.user, "");
	assert_string_equal(p->relay.pass, "");
}

/* Does the datagram carry a "relay" object? */
static bool has_relay_field(const struct nb_rendezvous_dgram *d)
{
	char text[NB_CTRL_MAX_DATAGRAM + 1];

	memcpy(text, d->data, d->len);
	text[d->len] = '\0';
	return strstr(text, "\"relay\":{") != NULL;
}

/* Allocation in advance: a host that will need the relay gets credentials
 * in `registered`; once it registers its relayed address, the other side's
 * plans carry it, so checks start at once. */
static void test_relay_in_advance(void **state)
{
	struct h *h;
	char user[NB_CTRL_RELAY_USER_MAX + 1], pass[NB_CTRL_RELAY_PASS_MAX + 1];
	struct nb_addr rel = A("203.0.113.10:50123"), srv = A("203.0.113.10:3478");

	(void)state;
	h = h_relay_bday(1, false); /* sym vs prc: a relay plan, not birthday */
	/* a cone gets none; a symmetric NAT gets credentials for a day */
	reg_ok(h, "bob", "198.51.100.2:2000", 0, "prc");
	assert_false(h->m[0].u.registered.relay.has_relay);
	reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
	assert_true(h->m[0].u.registered.relay.has_relay);
	assert_true(h->m[0].u.registered.relay.alloc);
	assert_true(nb_addr_equal(&h->m[0].u.registered.relay.server, &srv));
	snprintf(user, sizeof(user), "%llu:%s", (unsigned long long)(UNIX_S + NB_RENDEZVOUS_REG_CRED_S),
		 key_text_of("alice"));
	assert_string_equal(h->m[0].u.registered.relay.user, user);
	rest_pass(user, pass);
	assert_string_equal(h->m[0].u.registered.relay.pass, pass);
	/* no relayed address yet: bob's plan (alice allocates) has none */
	assert_int_equal(connect_(h, "198.51.100.2:2000", 10, "bob", "alice"), 2);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_RELAY);
	assert_int_equal(h->m[0].u.plan.role, NB_ROLE_DIAL); /* the symmetric side allocates */
	assert_int_equal(h->m[1].u.plan.role, NB_ROLE_RELAY);
	assert_false(h->m[0].u.plan.relay.has_relayed);
	/* alice registers her relayed address: now bob's plans carry it, both
	 * when bob asks and when alice does */
	assert_int_equal(sendf(h, "203.0.113.1:1000", 20,
			       HDR ",\"id\":\"alice\",\"local\":[],\"nat\":{\"mapping\":"
			       "\"address-and-port-dependent\",\"filtering\":\"address-and-port-dependent\"},"
			       "\"relayed\":\"203.0.113.10:50123\"}",
			       "register", next_tx(h)),
			 1);
	assert_int_equal(h->m[0].type, NB_CTRL_REGISTERED);
	assert_int_equal(connect_(h, "198.51.100.2:2000", 30, "bob", "alice"), 2);
	assert_true(h->m[0].u.plan.relay.has_relayed);
	assert_true(nb_addr_equal(&h->m[0].u.plan.relay.relayed, &rel));
	assert_true(h->m[1].u.plan.relay.alloc);
	assert_false(h->m[1].u.plan.relay.has_relayed);
	assert_int_equal(connect_(h, "203.0.113.1:1000", 40, "alice", "bob"), 2);
	assert_int_equal(h->m[0].u.plan.role, NB_ROLE_RELAY);
	assert_true(h->m[1].u.plan.relay.has_relayed);
	assert_true(nb_addr_equal(&h->m[1].u.plan.relay.relayed, &rel));
	/* the relay object's server is the one of the credentials in advance */
	assert_true(nb_addr_equal(&h->m[0].u.plan.relay.server, &srv));
	h_free(h);
	/* without relays, no credentials */
	h = h_new(NULL);
	reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
	assert_false(h->m[0].u.registered.relay.has_relay);
	h_free(h);
}

static void test_relay_plans(void **state)
{
	char pass[NB_CTRL_RELAY_PASS_MAX + 1], session[17];
	struct h *h;

	(void)state;
	/* the independent computation agrees with
	 * `printf %s 1700000600:alice | openssl dgst -sha1 -hmac turn-s3cret -binary | base64` */
	rest_pass("1700000600:alice", pass);
	assert_string_equal(pass, "+neZNB2azV9ctVCtpoYv0LewyFU=");

	/* with relays, sym asks sym: a relay plan, the asker allocates */
	h = h_relay(2);
	reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
	reg_ok(h, "bob", "198.51.100.2:2000", 0, "sym");
	assert_int_equal(connect_(h, "203.0.113.1:1000", 100, "alice", "bob"), 2);
	snprintf(session, sizeof(session), "%s", h->m[0].u.plan.session);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_RELAY);
	assert_int_equal(h->m[0].u.plan.role, NB_ROLE_RELAY);
	assert_int_equal(h->m[1].u.plan.path, NB_PATH_RELAY);
	assert_int_equal(h->m[1].u.plan.role, NB_ROLE_DIAL);
	check_alloc(&h->m[0].u.plan, session, 2, UNIX_S + CRED_S, "alice");
	check_no_alloc(&h->m[1].u.plan);
	assert_true(has_relay_field(&h->out.d[0]) && has_relay_field(&h->out.d[1]));
	assert_int_equal(stats(h).relay_plans, 1);
	/* the pushed plan's retransmission carries the same relay object */
	{
		struct nb_rendezvous_dgram out[8], first = h->out.d[1];
		assert_int_equal(poll_(h, 350, out), 1);
		assert_int_equal(out[0].len, first.len);
		assert_memory_equal(out[0].data, first.data, first.len);
	}

	/* the clock moves: so does the expiry (the password with it) */
	nb_rendezvous_set_context(h->rv, UNIX_S + 1234, false);
	assert_int_equal(connect_(h, "203.0.113.1:1000", 400, "alice", "bob"), 2);
	snprintf(session, sizeof(session), "%s", h->m[0].u.plan.session);
	check_alloc(&h->m[0].u.plan, session, 2, UNIX_S + 1234 + CRED_S, "alice");
	check_no_alloc(&h->m[1].u.plan);
	/* bob asks: bob allocates, his key in the user */
	assert_int_equal(connect_(h, "198.51.100.2:2000", 500, "bob", "alice"), 2);
	snprintf(session, sizeof(session), "%s", h->m[0].u.plan.session);
	check_alloc(&h->m[0].u.plan, session, 2, UNIX_S + 1234 + CRED_S, "bob");
	check_no_alloc(&h->m[1].u.plan);
	/* a direct plan carries the relay too (the fallback): the asker allocates */
	reg_ok(h, "carol", "192.0.2.3:3000", 600, "fc");
	assert_int_equal(connect_(h, "203.0.113.1:1000", 700, "alice", "carol"), 2);
	snprintf(session, sizeof(session), "%s", h->m[0].u.plan.session);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_DIRECT);
	check_alloc(&h->m[0].u.plan, session, 2, UNIX_S + 1234 + CRED_S, "alice");
	check_no_alloc(&h->m[1].u.plan);
	assert_int_equal(stats(h).relay_plans, 3);
	h_free(h);

	/* relay_cred_s defaults to an hour; one relay: always it */
	{
		struct nb_rendezvous_config cfg;
		nb_rendezvous_config_default(&cfg);
		assert_int_equal(cfg.relay_cred_s, 3600);
		cfg.relays[0] = A("203.0.113.10:3478");
		cfg.n_relays = 1;
		memcpy(cfg.relay_secret, RELAY_SECRET, strlen(RELAY_SECRET));
		cfg.relay_secret_len = strlen(RELAY_SECRET);
		h = h_new(&cfg);
		nb_rendezvous_set_context(h->rv, UNIX_S, false);
		reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
		reg_ok(h, "bob", "198.51.100.2:2000", 0, "sym");
		assert_int_equal(connect_(h, "203.0.113.1:1000", 100, "alice", "bob"), 2);
		assert_true(h->m[0].u.plan.relay.alloc);
		{
			char user[NB_CTRL_RELAY_USER_MAX + 1];
			snprintf(user, sizeof(user), "%llu:%s", (unsigned long long)(UNIX_S + 3600),
				 key_text_of("alice"));
			assert_string_equal(h->m[0].u.plan.relay.user, user);
			rest_pass(user, pass);
			assert_string_equal(h->m[0].u.plan.relay.pass, pass);
		}
		h_free(h);
	}

	/* without relays: the same pair gets the relay path, but no "relay" */
	h = h_new(NULL);
	reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
	reg_ok(h, "bob", "198.51.100.2:2000", 0, "sym");
	assert_int_equal(connect_(h, "203.0.113.1:1000", 100, "alice", "bob"), 2);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_RELAY);
	assert_false(h->m[0].u.plan.relay.has_relay);
	assert_false(h->m[1].u.plan.relay.has_relay);
	assert_false(has_relay_field(&h->out.d[0]) || has_relay_field(&h->out.d[1]));
	h_free(h);
}

/* Relay settings out of range: nb_rendezvous_new() refuses them. */
static void test_relay_config(void **state)
{
	struct nb_rendezvous_config cfg, good;
	struct nb_rendezvous *rv = (struct nb_rendezvous *)&cfg; /* untouched on failure */

	(void)state;
	nb_rendezvous_config_default(&good);
	good.relays[0] = A("203.0.113.10:3478");
	good.n_relays = 1;
	good.relay_secret[0] = 'x';
	good.relay_secret_len = 1;
	cfg = good;
	assert_int_equal(nb_rendezvous_new(&cfg, &rv), 0);
	nb_rendezvous_free(rv);
	rv = (struct nb_rendezvous *)&cfg;
#define BAD(field, value)                                                       \
	do {                                                                    \
		cfg = good;                                                     \
		cfg.field = value;                                              \
		assert_int_equal(nb_rendezvous_new(&cfg, &rv), -EINVAL);        \
		assert_ptr_equal(rv, (struct nb_rendezvous *)&cfg);             \
	} while (0)
	BAD(n_relays, NB_RENDEZVOUS_MAX_RELAYS + 1);
	BAD(relay_secret_len, 0);
	BAD(relay_secret_len, NB_RENDEZVOUS_MAX_SECRET + 1);
	BAD(relay_cred_s, 59);
	BAD(relay_cred_s, 86401);
	BAD(relay_extra_ms, NB_CTRL_DEADLINE_MAX_MS + 1);
#undef BAD
	/* without relays the relay settings are not looked at */
	cfg = good;
	cfg.n_relays = 0;
	cfg.relay_secret_len = 0;
	assert_int_equal(nb_rendezvous_new(&cfg, &rv), 0);
	nb_rendezvous_free(rv);
}

/* Poll at now for pushes of any type; decode them into m[]. */
static size_t poll_any(struct h *h, uint64_t now, struct nb_rendezvous_dgram *out, struct nb_ctrl_msg *m)
{
	size_t n = 99;

	assert_int_equal(nb_rendezvous_poll(h->rv, now, out, 8, &n), 0);
	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(nb_ctrl_decode(&m[i], out[i].data, out[i].len), (ssize_t)out[i].len);
		assert_true(out[i].sealed);
		assert_false(out[i].from_alt_port);
		assert_true(holder_key_at(h, &out[i].to, out[i].key));
	}
	return n;
}

static size_t relayed(struct h *h, const char *from, uint64_t now, const char *as, const char *session,
		      const char *id, const char *addr)
{
	h_as(h, as);
	return sendf(h, from, now, HDR ",\"session\":\"%s\",\"id\":\"%s\",\"relayed\":\"%s\"}", "relayed",
		     next_tx(h), session, id, addr);
}

/* A relayed push: type, recipient, key, fields. */
static void check_relayed_push(const struct nb_rendezvous_dgram *d, const struct nb_ctrl_msg *m,
			       const char *to, const char *to_name, const char *session, const char *id,
			       const char *addr)
{
	struct nb_addr want_to = A(to), want_rel = A(addr);
	uint8_t k[NB_KEY_LEN];

	assert_int_equal(m->type, NB_CTRL_RELAYED);
	assert_true(nb_addr_equal(&d->to, &want_to));
	assert_true(d->sealed);
	key_of(to_name, k);
	assert_memory_equal(d->key, k, NB_KEY_LEN);
	assert_string_equal(m->u.relayed.session, session);
	assert_string_equal(m->u.relayed.id, id);
	assert_true(nb_addr_equal(&m->u.relayed.relayed, &want_rel));
}

/* Two sym peers with relays; alice asks. Gives the session and the plan push's tx. */
static struct h *relay_pair(char *session, char *ptx)
{
	struct h *h = h_relay(1);

	reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
	reg_ok(h, "bob", "198.51.100.2:2000", 0, "sym");
	reg_ok(h, "carol", "192.0.2.3:3000", 0, "sym");
	assert_int_equal(connect_(h, "203.0.113.1:1000", 0, "alice", "bob"), 2);
	snprintf(session, NB_CTRL_SESSION_LEN + 1, "%s", h->m[0].u.plan.session);
	snprintf(ptx, NB_CTRL_TX_LEN + 1, "%s", h->m[1].tx);
	assert_true(h->m[0].u.plan.relay.alloc);
	return h;
}

/* relayed after bob has his plan: acked, then pushed to bob until he acks. */
static void test_relayed_forward(void **state)
{
	static const uint64_t at[] = { 1000, 1250, 1750, 2750, 4750, 8750 };
	char session[17], ptx[17], rtx[17];
	struct nb_rendezvous_dgram out[8], first;
	struct nb_ctrl_msg m[8];
	struct h *h;

	(void)state;
	h = relay_pair(session, ptx);
	assert_int_equal(sendf(h, "198.51.100.2:2000", 500, HDR "}", "ack", ptx), 0);
	assert_int_equal(stats(h).push_acked, 1);
	assert_int_equal(poll_any(h, 999, out, m), 0);

	/* alice's relayed address: acked (same tx); nothing pushed in the reply */
	h->n_ev = 0;
	assert_int_equal(relayed(h, "203.0.113.1:1000", 1000, "alice", session, "alice",
				 "203.0.113.10:50000"), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	assert_string_equal(h->m[0].tx, h->tx);
	assert_int_equal(stats(h).relayed, 1);
	assert_int_equal(nb_rendezvous_next_deadline(h->rv), 1000);
	/* poll: the push, sealed to bob at his address, a tx of its own */
	assert_int_equal(poll_any(h, 1000, out, m), 1);
	check_relayed_push(&out[0], &m[0], "198.51.100.2:2000", "bob", session, "alice", "203.0.113.10:50000");
	snprintf(rtx, sizeof(rtx), "%s", m[0].tx);
	assert_string_not_equal(rtx, ptx);
	first = out[0];
	/* retransmitted on the push schedule, byte for byte */
	for (size_t i = 1; i < 4; i++) {
		assert_int_equal(nb_rendezvous_next_deadline(h->rv), at[i]);
		assert_int_equal(poll_any(h, at[i] - 1, out, m), 0);
		assert_int_equal(poll_any(h, at[i], out, m), 1);
		assert_int_equal(out[0].len, first.len);
		assert_memory_equal(out[0].data, first.data, first.len);
		assert_true(nb_addr_equal(&out[0].to, &first.to));
	}
	/* an ack under another key (alice's, carol's), or unsealed: ignored, the push goes on */
	h_as(h, "alice");
	assert_int_equal(sendf(h, "198.51.100.2:2000", 2800, HDR "}", "ack", rtx), 0);
	h_as(h, "carol");
	assert_int_equal(sendf(h, "198.51.100.2:2000", 2800, HDR "}", "ack", rtx), 0);
	h_plain(h);
	assert_int_equal(sendf(h, "198.51.100.2:2000", 2800, HDR "}", "ack", rtx), 0);
	/* the old plan's tx is no longer in flight */
	assert_int_equal(sendf(h, "198.51.100.2:2000", 2800, HDR "}", "ack", ptx), 0);
	assert_int_equal(stats(h).push_acked, 1);
	assert_int_equal(nb_rendezvous_next_deadline(h->rv), at[4]);
	/* bob acks: no more sends */
	h_as(h, "bob");
	assert_int_equal(sendf(h, "198.51.100.2:2000", 2900, HDR "}", "ack", rtx), 0);
	assert_int_equal(stats(h).push_acked, 2);
	assert_int_equal(count_ev(h, NB_RV_EVENT_PUSH_ACKED), 1);
	assert_int_equal(poll_any(h, at[4], out, m), 0);
	assert_int_equal(poll_any(h, 20000, out, m), 0);
	assert_true(nb_rendezvous_next_deadline(h->rv) >= E_MS);

	/* the same address again (alice did not see her ack): acked, not pushed again */
	{
		char req[256];
		uint64_t replayed = stats(h).replayed;
		snprintf(req, sizeof(req), HDR ",\"session\":\"%s\",\"id\":\"alice\",\"relayed\":"
					       "\"203.0.113.10:50000\"}", "relayed", next_tx(h), session);
		h_as(h, "alice");
		assert_int_equal(send_json(h, "203.0.113.1:1000", 21000, req), 1);
		assert_int_equal(h->m[0].type, NB_CTRL_ACK);
		assert_int_equal(poll_any(h, 21000, out, m), 0);
		assert_int_equal(stats(h).relayed, 1);
		/* the very datagram again: the cached ack */
		h_as(h, "alice");
		assert_int_equal(send_json(h, "203.0.113.1:1000", 21001, req), 1);
		assert_int_equal(h->m[0].type, NB_CTRL_ACK);
		assert_int_equal(stats(h).replayed, replayed + 1);
		assert_int_equal(poll_any(h, 21001, out, m), 0);
	}
	/* a new relayed address (a new allocation): pushed again, to bob's current address */
	reg_ok(h, "bob", "198.51.100.2:2001", 21500, "sym");
	assert_int_equal(relayed(h, "203.0.113.1:1000", 22000, "alice", session, "alice",
				 "[2001:db8::10]:50002"), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	assert_int_equal(poll_any(h, 22000, out, m), 1);
	check_relayed_push(&out[0], &m[0], "198.51.100.2:2001", "bob", session, "alice", "[2001:db8::10]:50002");
	assert_int_equal(stats(h).relayed, 2);
	h_free(h);
}

/* Nobody acks the relayed push: six sends, then given up. */
static void test_relayed_gives_up(void **state)
{
	static const uint64_t at[] = { 1000, 1250, 1750, 2750, 4750, 8750 };
	char session[17], ptx[17];
	struct nb_rendezvous_dgram out[8];
	struct nb_ctrl_msg m[8];
	struct h *h;

	(void)state;
	h = relay_pair(session, ptx);
	assert_int_equal(sendf(h, "198.51.100.2:2000", 500, HDR "}", "ack", ptx), 0);
	assert_int_equal(relayed(h, "203.0.113.1:1000", 1000, "alice", session, "alice", "203.0.113.10:50000"), 1);
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		assert_int_equal(nb_rendezvous_next_deadline(h->rv), at[i]);
		assert_int_equal(poll_any(h, at[i], out, m), 1);
		assert_int_equal(m[0].type, NB_CTRL_RELAYED);
	}
	assert_int_equal(nb_rendezvous_next_deadline(h->rv), 12750);
	h->n_ev = 0;
	assert_int_equal(poll_any(h, 12749, out, m), 0);
	assert_int_equal(count_ev(h, NB_RV_EVENT_PUSH_FAILED), 0);
	assert_int_equal(poll_any(h, 12750, out, m), 0);
	assert_int_equal(count_ev(h, NB_RV_EVENT_PUSH_FAILED), 1);
	assert_int_equal(poll_any(h, 30000, out, m), 0);
	/* the same address again after the give-up: pushed again */
	assert_int_equal(relayed(h, "203.0.113.1:1000", 30001, "alice", session, "alice", "203.0.113.10:50000"), 1);
	assert_int_equal(poll_any(h, 30001, out, m), 1);
	assert_int_equal(m[0].type, NB_CTRL_RELAYED);
	h_free(h);
}

/* relayed before bob has acked his plan: queued behind it. */
static void test_relayed_queued(void **state)
{
	char session[17], ptx[17], rtx[17];
	struct nb_rendezvous_dgram out[8];
	struct nb_ctrl_msg m[8];
	struct h *h;

	(void)state;
	h = relay_pair(session, ptx);
	assert_int_equal(relayed(h, "203.0.113.1:1000", 100, "alice", session, "alice", "203.0.113.10:50000"), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	/* nothing new now; the plan's retransmission is still the plan */
	assert_int_equal(nb_rendezvous_next_deadline(h->rv), 250);
	assert_int_equal(poll_any(h, 100, out, m), 0);
	assert_int_equal(poll_any(h, 250, out, m), 1);
	assert_int_equal(m[0].type, NB_CTRL_PLAN);
	assert_string_equal(m[0].tx, ptx);
	assert_false(m[0].u.plan.relay.alloc);
	/* alice repeats it meanwhile: still one queued push */
	assert_int_equal(relayed(h, "203.0.113.1:1000", 300, "alice", session, "alice", "203.0.113.10:50000"), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	assert_int_equal(poll_any(h, 300, out, m), 0);
	/* bob acks the plan: the relayed push starts */
	assert_int_equal(sendf(h, "198.51.100.2:2000", 400, HDR "}", "ack", ptx), 0);
	assert_int_equal(nb_rendezvous_next_deadline(h->rv), 400);
	assert_int_equal(poll_any(h, 400, out, m), 1);
	check_relayed_push(&out[0], &m[0], "198.51.100.2:2000", "bob", session, "alice", "203.0.113.10:50000");
	snprintf(rtx, sizeof(rtx), "%s", m[0].tx);
	assert_string_not_equal(rtx, ptx);
	assert_int_equal(poll_any(h, 649, out, m), 0);
	assert_int_equal(poll_any(h, 650, out, m), 1);
	assert_int_equal(m[0].type, NB_CTRL_RELAYED);
	assert_string_equal(m[0].tx, rtx);
	/* bob acks it */
	assert_int_equal(sendf(h, "198.51.100.2:2000", 700, HDR "}", "ack", rtx), 0);
	assert_int_equal(stats(h).push_acked, 2);
	assert_int_equal(poll_any(h, 1150, out, m), 0);
	assert_int_equal(poll_any(h, 20000, out, m), 0);
	h_free(h);
}

static void test_relayed_refused(void **state)
{
	char session[17], ptx[17], why[160];
	struct nb_rendezvous_dgram out[8];
	struct nb_ctrl_msg m[8];
	struct h *h;

	(void)state;
	h = relay_pair(session, ptx);
	assert_int_equal(sendf(h, "198.51.100.2:2000", 10, HDR "}", "ack", ptx), 0);
	h->n_ev = 0;
	/* unknown session */
	relayed(h, "203.0.113.1:1000", 20, "alice", "0123456789abcdef", "alice", "203.0.113.10:50000");
	expect_error(h, 404, "no session '0123456789abcdef'");
	assert_int_equal(last_ev(h)->kind, NB_RV_EVENT_REFUSED);
	/* a stranger's id (registered, in another session or none) */
	relayed(h, "192.0.2.3:3000", 20, "carol", session, "carol", "203.0.113.10:50000");
	snprintf(why, sizeof(why), "'carol' is not in session '%s'", session);
	expect_error(h, 400, why);
	/* a forged key: carol (registered) sends alice's relayed, from alice's address too */
	relayed(h, "192.0.2.3:3000", 20, "carol", session, "alice", "203.0.113.10:50000");
	expect_error(h, 404, "'alice' is not held by this key");
	relayed(h, "203.0.113.1:1000", 20, "carol", session, "alice", "203.0.113.10:50000");
	expect_error(h, 404, "'alice' is not held by this key");
	relayed(h, "203.0.113.1:1000", 20, "bob", session, "alice", "203.0.113.10:50000");
	expect_error(h, 404, "'alice' is not held by this key");
	assert_int_equal(stats(h).forged_results, 3);
	/* bob (the side that does not allocate), with his own key */
	relayed(h, "198.51.100.2:2000", 20, "bob", session, "bob", "198.51.100.99:50000");
	snprintf(why, sizeof(why), "'bob' does not relay in session '%s'", session);
	expect_error(h, 400, why);
	/* unsealed: refused before anything is looked at */
	h_plain(h);
	sendf(h, "203.0.113.1:1000", 20, HDR ",\"session\":\"%s\",\"id\":\"alice\",\"relayed\":\"203.0.113.10:50000\"}",
	      "relayed", next_tx(h), session);
	assert_true(h->out.n == 0 || h->m[0].type == NB_CTRL_ERROR);
	/* none of these forwarded anything */
	assert_int_equal(stats(h).relayed, 0);
	assert_int_equal(poll_any(h, 30000, out, m), 0);
	assert_int_equal(count_ev(h, NB_RV_EVENT_REFUSED), 7); /* the unsealed one too */
	/* the real one still goes through */
	assert_int_equal(relayed(h, "203.0.113.1:1000", 30000, "alice", session, "alice", "203.0.113.10:50000"), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	assert_int_equal(poll_any(h, 30000, out, m), 1);
	check_relayed_push(&out[0], &m[0], "198.51.100.2:2000", "bob", session, "alice", "203.0.113.10:50000");
	h_free(h);

	/* a broker without relays: nobody relays */
	h = h_new(NULL);
	reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
	reg_ok(h, "bob", "198.51.100.2:2000", 0, "sym");
	assert_int_equal(connect_(h, "203.0.113.1:1000", 0, "alice", "bob"), 2);
	snprintf(session, sizeof(session), "%s", h->m[0].u.plan.session);
	relayed(h, "203.0.113.1:1000", 10, "alice", session, "alice", "203.0.113.10:50000");
	snprintf(why, sizeof(why), "'alice' does not relay in session '%s'", session);
	expect_error(h, 400, why);
	assert_int_equal(stats(h).relayed, 0);
	h_free(h);
}

/* The nat type the peer list shows for id. */
static enum nb_nat_type listed_nat(struct h *h, uint64_t now, const char *id)
{
	sendf(h, "192.0.2.200:1", now, HDR PAD "}", "peers", next_tx(h));
	assert_int_equal(h->m[0].type, NB_CTRL_PEER_LIST);
	for (size_t i = 0; i < h->m[0].u.peer_list.n_peers; i++)
		if (strcmp(h->m[0].u.peer_list.peers[i].id, id) == 0)
			return h->m[0].u.peer_list.peers[i].nat;
	fail_msg("%s not listed", id);
	return NB_NAT_UNKNOWN;
}

/* A register over TCP marks the peer UDP-blocked: a relay plan, that side allocating. */
static void test_relay_via_tcp(void **state)
{
	char session[17], ptx[17];
	struct nb_rendezvous_dgram out[8];
	struct nb_ctrl_msg m[8];
	struct h *h = h_relay(1);

	(void)state;
	nb_rendezvous_set_context(h->rv, UNIX_S, true);
	reg_ok(h, "blk", "198.51.100.7:40000", 0, "fc"); /* over TCP: whatever it says of its NAT */
	nb_rendezvous_set_context(h->rv, UNIX_S, false);
	reg_ok(h, "fc", "203.0.113.1:1000", 0, "fc");
	assert_int_equal(listed_nat(h, 1, "blk"), NB_NAT_UDP_BLOCKED);
	assert_int_equal(listed_nat(h, 1, "fc"), NB_NAT_FULL_CONE);

	/* fc asks blk: relay_by_a false, blk (b) allocates, fc dials */
	assert_int_equal(connect_(h, "203.0.113.1:1000", 10, "fc", "blk"), 2);
	snprintf(session, sizeof(session), "%s", h->m[0].u.plan.session);
	snprintf(ptx, sizeof(ptx), "%s", h->m[1].tx);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_RELAY);
	assert_int_equal(h->m[0].u.plan.role, NB_ROLE_DIAL);
	assert_int_equal(h->m[1].u.plan.role, NB_ROLE_RELAY);
	check_no_alloc(&h->m[0].u.plan);
	check_alloc(&h->m[1].u.plan, session, 1, UNIX_S + CRED_S, "blk");
	assert_non_null(strstr(h->m[0].u.plan.reason, "blk allocates"));
	/* ... so fc may not send relayed, blk may: pushed to fc, sealed to fc's key */
	relayed(h, "203.0.113.1:1000", 20, "fc", session, "fc", "203.0.113.10:50000");
	expect_error(h, 400, NULL);
	assert_int_equal(sendf(h, "198.51.100.7:40000", 30, HDR "}", "ack", ptx), 0);
	assert_int_equal(relayed(h, "198.51.100.7:40000", 40, "blk", session, "blk", "203.0.113.10:50001"), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
	assert_int_equal(poll_any(h, 40, out, m), 1);
	check_relayed_push(&out[0], &m[0], "203.0.113.1:1000", "fc", session, "blk", "203.0.113.10:50001");
	/* blk's key cannot ack the push to fc; fc's can */
	h_as(h, "blk");
	assert_int_equal(sendf(h, "203.0.113.1:1000", 50, HDR "}", "ack", m[0].tx), 0);
	assert_int_equal(poll_any(h, 290, out, m), 1);
	h_as(h, "fc");
	assert_int_equal(sendf(h, "203.0.113.1:1000", 300, HDR "}", "ack", m[0].tx), 0);
	assert_int_equal(poll_any(h, 20000, out, m), 0);

	/* blk asks fc: relay_by_a true, blk (a) allocates */
	assert_int_equal(connect_(h, "198.51.100.7:40000", 20000, "blk", "fc"), 2);
	snprintf(session, sizeof(session), "%s", h->m[0].u.plan.session);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_RELAY);
	assert_int_equal(h->m[0].u.plan.role, NB_ROLE_RELAY);
	assert_int_equal(h->m[1].u.plan.role, NB_ROLE_DIAL);
	check_alloc(&h->m[0].u.plan, session, 1, UNIX_S + CRED_S, "blk");
	check_no_alloc(&h->m[1].u.plan);

	/* a second UDP-blocked host: no way between the two */
	nb_rendezvous_set_context(h->rv, UNIX_S, true);
	reg_ok(h, "blk2", "198.51.100.8:40000", 20000, "fc");
	nb_rendezvous_set_context(h->rv, UNIX_S, false);
	assert_int_equal(connect_(h, "198.51.100.7:40000", 20010, "blk", "blk2"), 2);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_NONE);
	assert_int_equal(h->m[0].u.plan.role, NB_ROLE_NONE);
	assert_int_equal(h->m[1].u.plan.role, NB_ROLE_NONE);
	/* ... and no credentials in either plan */
	assert_false(h->m[0].u.plan.relay.has_relay);
	assert_false(h->m[1].u.plan.relay.has_relay);

	/* blk registers over UDP again: no longer blocked, a direct plan */
	reg_ok(h, "blk", "198.51.100.7:40000", 20100, "fc");
	assert_int_equal(listed_nat(h, 20101, "blk"), NB_NAT_FULL_CONE);
	assert_int_equal(connect_(h, "203.0.113.1:1000", 20200, "fc", "blk"), 2);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_DIRECT);
	check_alloc(&h->m[0].u.plan, h->m[0].u.plan.session, 1, UNIX_S + CRED_S, "fc");
	check_no_alloc(&h->m[1].u.plan);
	/* a TCP register of another key under a held name changes nothing */
	nb_rendezvous_set_context(h->rv, UNIX_S, true);
	h_as(h, "mallory");
	reg_full(h, "fc", "192.0.2.66:6", 20300, NULL, NULL, NULL, NULL, NULL);
	expect_error(h, 409, NULL);
	nb_rendezvous_set_context(h->rv, UNIX_S, false);
	assert_int_equal(listed_nat(h, 20301, "fc"), NB_NAT_FULL_CONE);
	h_free(h);
}

/* ---- birthday punching and punch timing (issue 16) ------------------------------ */

static const struct rec *last_connect(const struct h *h)
{
	for (size_t i = h->n_ev; i > 0; i--)
		if (h->ev[i - 1].kind == NB_RV_EVENT_CONNECT)
			return &h->ev[i - 1];
	fail();
	return NULL;
}

static void check_budget(const struct nb_ctrl_birthday *b, uint32_t sockets, uint32_t probes,
			 uint32_t rate)
{
	assert_true(b->has);
	assert_int_equal(b->sockets, sockets);
	assert_int_equal(b->probes, probes);
	assert_int_equal(b->rate, rate);
	assert_int_equal(b->port, 0);
}

/* A keepalive from id carrying the shell's round-trip sample rtt (0: none). */
static void keepalive_rtt(struct h *h, const char *from, uint64_t now, const char *id, uint32_t rtt)
{
	if (rtt != 0)
		nb_rendezvous_set_rtt(h->rv, rtt);
	assert_int_equal(sendf(h, from, now, HDR ",\"id\":\"%s\"}", "keepalive", next_tx(h), id), 1);
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
}

/* The birthday plan of a symmetric and a port-restricted cone NAT: the
 * hard side sprays, the easy side probes, both plans carry the budget and
 * a deadline long enough to spend it; the switch off makes it a relay. */
static void test_birthday_plans(void **state)
{
	struct nb_rendezvous_config cfg;
	struct h *h = h_new(NULL);
	const struct nb_ctrl_plan *pa, *pb;
	struct nb_ctrl_pair p;
	/* every probe at the rate, the probing side's (fixed) delay, the slack */
	const uint32_t dl = 2048 * 1000 / 100 + 100 + 1500;

	(void)state;
	reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
	reg_ok(h, "bob", "198.51.100.2:2000", 0, "prc");
	h->n_ev = 0;
	assert_int_equal(connect_(h, "203.0.113.1:1000", 100, "alice", "bob"), 2);
	pa = &h->m[0].u.plan;
	pb = &h->m[1].u.plan;
	assert_int_equal(pa->path, NB_PATH_BIRTHDAY);
	assert_int_equal(pb->path, NB_PATH_BIRTHDAY);
	assert_int_equal(pa->role, NB_ROLE_SPRAY); /* the symmetric side */
	assert_int_equal(pb->role, NB_ROLE_PROBE);
	check_budget(&pa->birthday, 256, 2048, 100);
	check_budget(&pb->birthday, 256, 2048, 100);
	assert_int_equal(pa->delay_ms, 0);   /* the spraying side first ... */
	assert_int_equal(pb->delay_ms, 100); /* ... the probing side after the fixed delay */
	assert_int_equal(pa->deadline_ms, dl);
	assert_int_equal(pb->deadline_ms, dl);
	assert_non_null(strstr(pa->reason, "alice (symmetric) sprays from 256 sockets"));
	assert_non_null(strstr(pa->reason, "bob"));
	assert_non_null(strstr(pa->reason, "2048"));
	assert_string_equal(pb->reason, pa->reason);
	assert_int_equal(last_connect(h)->path, NB_PATH_BIRTHDAY);
	assert_int_equal(last_connect(h)->ms, dl);
	check_budget(&last_connect(h)->birthday, 256, 2048, 100);
	assert_int_equal(last_connect(h)->delay_a, 0);
	assert_int_equal(last_connect(h)->delay_b, 100);
	assert_false(last_connect(h)->rtt_timed);
	assert_int_equal(stats(h).birthday_plans, 1);
	assert_int_equal(stats(h).relay_plans, 0);
	/* the matrix predicts it; the session lasts push window + that deadline */
	p = matrix_pair(h, 200, "alice", "bob");
	assert_int_equal(p.predicted, NB_PATH_BIRTHDAY);
	assert_int_equal(p.role_a, NB_ROLE_SPRAY);
	assert_int_equal(p.role_b, NB_ROLE_PROBE);
	assert_false(p.birthday.has); /* nobody has reported figures */
	assert_false(matrix_pair(h, 100 + 11750 + dl - 1, "alice", "bob").has_measured);
	p = matrix_pair(h, 100 + 11750 + dl, "alice", "bob");
	assert_true(p.has_measured);
	assert_int_equal(p.measured, NB_PATH_NONE);
	assert_int_equal(p.ms, dl);
	/* the easy side asks: it probes, after the delay */
	h->n_ev = 0;
	assert_int_equal(connect_(h, "198.51.100.2:2000", 40000, "bob", "alice"), 2);
	assert_int_equal(h->m[0].u.plan.role, NB_ROLE_PROBE);
	assert_int_equal(h->m[1].u.plan.role, NB_ROLE_SPRAY);
	assert_int_equal(h->m[0].u.plan.delay_ms, 100);
	assert_int_equal(h->m[1].u.plan.delay_ms, 0);
	check_budget(&h->m[0].u.plan.birthday, 256, 2048, 100);
	check_budget(&h->m[1].u.plan.birthday, 256, 2048, 100);
	assert_int_equal(stats(h).birthday_plans, 2);
	/* the pushed plan's retransmission is the same bytes, budget included */
	{
		struct nb_rendezvous_dgram out[8], first = h->out.d[1];
		/* (the first session's push, never acked nor polled, comes first) */
		assert_int_equal(poll_(h, 40250, out), 2);
		assert_int_equal(out[1].len, first.len);
		assert_memory_equal(out[1].data, first.data, first.len);
	}
	/* two symmetric NATs stay a relay */
	reg_ok(h, "carol", "192.0.2.3:3000", 40500, "sym");
	assert_int_equal(connect_(h, "192.0.2.3:3000", 40500, "carol", "alice"), 2);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_RELAY);
	assert_false(h->m[0].u.plan.birthday.has);
	assert_int_equal(h->m[0].u.plan.deadline_ms, 5000);
	h_free(h);

	/* the lab's rate: the configured deadline is long enough already ... */
	nb_rendezvous_config_default(&cfg);
	cfg.birthday.rate = 1000;
	h = h_new(&cfg);
	reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
	reg_ok(h, "bob", "198.51.100.2:2000", 0, "prc");
	connect_(h, "203.0.113.1:1000", 0, "alice", "bob");
	check_budget(&h->m[1].u.plan.birthday, 256, 2048, 1000);
	assert_int_equal(h->m[0].u.plan.deadline_ms, 5000);
	assert_int_equal(h->m[1].u.plan.deadline_ms, 5000);
	h_free(h);
	/* ... a larger budget is not: rounded up to whole milliseconds */
	cfg.birthday.sockets = 1024;
	cfg.birthday.probes = 8001;
	cfg.birthday.rate = 3;
	h = h_new(&cfg);
	reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
	reg_ok(h, "bob", "198.51.100.2:2000", 0, "prc");
	connect_(h, "198.51.100.2:2000", 0, "bob", "alice");
	check_budget(&h->m[0].u.plan.birthday, 1024, 8001, 3);
	assert_int_equal(h->m[0].u.plan.deadline_ms, 600000); /* 2667000 + ...: capped */
	h_free(h);
	cfg.birthday.probes = 7;
	cfg.birthday.rate = 3;
	cfg.deadline_ms = 1;
	h = h_new(&cfg);
	reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
	reg_ok(h, "bob", "198.51.100.2:2000", 0, "prc");
	connect_(h, "198.51.100.2:2000", 0, "bob", "alice");
	assert_int_equal(h->m[0].u.plan.deadline_ms, 2334 + 100 + 1500);
	assert_int_equal(h->m[1].u.plan.deadline_ms, 2334 + 100 + 1500);
	h_free(h);

	/* switched off: those pairs get a relay, as before */
	nb_rendezvous_config_default(&cfg);
	cfg.birthday.has = false;
	cfg.birthday.sockets = cfg.birthday.probes = cfg.birthday.rate = 0; /* not looked at */
	h = h_new(&cfg);
	reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
	reg_ok(h, "bob", "198.51.100.2:2000", 0, "prc");
	assert_int_equal(connect_(h, "203.0.113.1:1000", 0, "alice", "bob"), 2);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_RELAY);
	assert_int_equal(h->m[1].u.plan.path, NB_PATH_RELAY);
	assert_false(h->m[0].u.plan.birthday.has);
	assert_false(h->m[1].u.plan.birthday.has);
	assert_int_equal(h->m[0].u.plan.deadline_ms, 5000);
	assert_false(last_connect(h)->birthday.has);
	assert_int_equal(stats(h).birthday_plans, 0);
	assert_int_equal(stats(h).relay_plans, 1);
	h_free(h);
}

/* The budget's bounds: nb_rendezvous_new() refuses what is out of range. */
static void test_birthday_config(void **state)
{
	struct nb_rendezvous_config cfg, good;
	struct nb_rendezvous *rv = NULL;
	static const struct {
		uint32_t sockets, probes, rate;
		bool ok;
	} cases[] = {
		{ 256, 2048, 100, true },    { 1, 1, 1, true },         { 1024, 64512, 10000, true },
		{ 0, 2048, 100, false },     { 1025, 2048, 100, false }, { 256, 0, 100, false },
		{ 256, 64513, 100, false },  { 256, 2048, 0, false },    { 256, 2048, 10001, false },
	};

	(void)state;
	nb_rendezvous_config_default(&good);
	assert_true(good.birthday.has);
	check_budget(&good.birthday, NB_RENDEZVOUS_DEFAULT_BDAY_SOCKETS, NB_RENDEZVOUS_DEFAULT_BDAY_PROBES,
		     NB_RENDEZVOUS_DEFAULT_BDAY_RATE);
	check_budget(&good.birthday, 256, 2048, 100);
	assert_true(good.rtt_timing);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cfg = good;
		cfg.birthday.sockets = cases[i].sockets;
		cfg.birthday.probes = cases[i].probes;
		cfg.birthday.rate = cases[i].rate;
		rv = NULL;
		assert_int_equal(nb_rendezvous_new(&cfg, &rv), cases[i].ok ? 0 : -EINVAL);
		assert_true(cases[i].ok ? rv != NULL : rv == NULL);
		nb_rendezvous_free(rv);
		/* switched off, the numbers are not looked at */
		cfg.birthday.has = false;
		rv = NULL;
		assert_int_equal(nb_rendezvous_new(&cfg, &rv), 0);
		nb_rendezvous_free(rv);
	}
}

static void bday_result(struct h *h, const char *from, uint64_t now, const char *session,
			const char *id, const char *outcome, const char *path, const char *figures)
{
	sendf(h, from, now, HDR ",\"session\":\"%s\",\"id\":\"%s\",\"outcome\":\"%s\",\"path\":\"%s\","
			     "\"ms\":2100%s%s%s}",
	      "result", next_tx(h), session, id, outcome, path, figures ? ",\"birthday\":{" : "",
	      figures ? figures : "", figures ? "}" : "");
	assert_int_equal(h->m[0].type, NB_CTRL_ACK);
}

/* Each side reports its part of a birthday attempt; the pair shows both. */
static void test_birthday_results(void **state)
{
	struct h *h = h_new(NULL);
	struct nb_ctrl_pair p;
	char session[17];

	(void)state;
	reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
	reg_ok(h, "bob", "198.51.100.2:2000", 0, "prc");
	connect_(h, "203.0.113.1:1000", 0, "alice", "bob");
	snprintf(session, sizeof(session), "%s", h->m[0].u.plan.session);
	/* the spraying side: its sockets */
	bday_result(h, "203.0.113.1:1000", 2200, session, "alice", "connected", "birthday",
		    "\"sockets\":256");
	assert_int_equal(last_ev(h)->kind, NB_RV_EVENT_RESULT);
	assert_true(last_ev(h)->birthday.has);
	assert_int_equal(last_ev(h)->birthday.sockets, 256);
	assert_int_equal(last_ev(h)->birthday.probes, 0);
	p = matrix_pair(h, 2200, "alice", "bob");
	assert_true(p.has_measured);
	assert_int_equal(p.measured, NB_PATH_BIRTHDAY);
	assert_true(p.birthday.has);
	assert_int_equal(p.birthday.sockets, 256);
	assert_int_equal(p.birthday.probes, 0);
	assert_int_equal(p.birthday.port, 0);
	/* the probing side: probes, rate and the port that answered */
	bday_result(h, "198.51.100.2:2000", 2300, session, "bob", "connected", "birthday",
		    "\"probes\":173,\"rate\":100,\"port\":40211");
	assert_int_equal(last_ev(h)->birthday.port, 40211);
	p = matrix_pair(h, 2300, "alice", "bob");
	assert_true(p.birthday.has);
	assert_int_equal(p.birthday.sockets, 256);
	assert_int_equal(p.birthday.probes, 173);
	assert_int_equal(p.birthday.rate, 100);
	assert_int_equal(p.birthday.port, 40211);
	/* a later report without figures changes none; one with some
	 * overwrites only those */
	bday_result(h, "203.0.113.1:1000", 2400, session, "alice", "connected", "birthday", NULL);
	assert_false(last_ev(h)->birthday.has);
	bday_result(h, "198.51.100.2:2000", 2500, session, "bob", "connected", "birthday", "\"probes\":180");
	p = matrix_pair(h, 2500, "alice", "bob");
	assert_int_equal(p.birthday.sockets, 256);
	assert_int_equal(p.birthday.probes, 180);
	assert_int_equal(p.birthday.rate, 100);
	assert_int_equal(p.birthday.port, 40211);
	/* the budget ran out: relay measured against birthday predicted */
	connect_(h, "203.0.113.1:1000", 30000, "alice", "bob");
	snprintf(session, sizeof(session), "%s", h->m[0].u.plan.session);
	p = matrix_pair(h, 30000, "alice", "bob");
	assert_false(p.birthday.has); /* a new session starts without figures */
	bday_result(h, "198.51.100.2:2000", 55000, session, "bob", "connected", "relay",
		    "\"probes\":2048,\"rate\":100");
	p = matrix_pair(h, 55000, "alice", "bob");
	assert_int_equal(p.predicted, NB_PATH_BIRTHDAY);
	assert_int_equal(p.measured, NB_PATH_RELAY);
	assert_int_equal(p.birthday.probes, 2048);
	assert_int_equal(p.birthday.port, 0);
	h_free(h);
}

/* One connect of `from`'s id to peer; checks the delays the plans carry
 * (and the event). */
static void expect_delays(struct h *h, const char *from, uint64_t now, const char *id,
			  const char *peer, uint32_t delay_a, uint32_t delay_b, bool timed)
{
	assert_int_equal(connect_(h, from, now, id, peer), 2);
	assert_int_equal(h->m[0].u.plan.delay_ms, delay_a);
	assert_int_equal(h->m[1].u.plan.delay_ms, delay_b);
	assert_int_equal(last_connect(h)->delay_a, delay_a);
	assert_int_equal(last_connect(h)->delay_b, delay_b);
	assert_int_equal(last_connect(h)->rtt_timed, timed);
}

/* Delays from the two round trips (docs/protocol.md "Punch timing"). */
static void test_rtt_timing(void **state)
{
	struct nb_rendezvous_config cfg;
	struct h *h = h_new(NULL);

	(void)state;
	reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
	reg_ok(h, "bob", "198.51.100.2:2000", 0, "rc");
	/* neither known: the fixed delay for the dialer whose peer primes */
	expect_delays(h, "203.0.113.1:1000", 10, "alice", "bob", 100, 0, false);
	assert_int_equal(last_connect(h)->rtt_a, 0);
	assert_int_equal(last_connect(h)->rtt_b, 0);
	/* one known: still fixed */
	keepalive_rtt(h, "203.0.113.1:1000", 20, "alice", 40);
	expect_delays(h, "203.0.113.1:1000", 30, "alice", "bob", 100, 0, false);
	assert_int_equal(last_connect(h)->rtt_a, 40);
	assert_int_equal(last_connect(h)->rtt_b, 0);
	assert_int_equal(stats(h).rtt_timed, 0);
	/* both: alice's plan arrives at 20, bob's at 50; alice (the dialer)
	 * waits the 30 ms between and a margin of 5 + 100 / 10 */
	keepalive_rtt(h, "198.51.100.2:2000", 40, "bob", 100);
	expect_delays(h, "203.0.113.1:1000", 50, "alice", "bob", 30 + 15, 0, true);
	assert_int_equal(last_connect(h)->rtt_a, 40);
	assert_int_equal(last_connect(h)->rtt_b, 100);
	assert_int_equal(last_connect(h)->path, NB_PATH_DIRECT);
	assert_int_equal(h->m[0].u.plan.role, NB_ROLE_DIAL);
	assert_int_equal(h->m[0].u.plan.deadline_ms, 5000);
	assert_int_equal(stats(h).rtt_timed, 1);
	/* bob asks: the dialer is the pushed side now; the same wait */
	expect_delays(h, "198.51.100.2:2000", 60, "bob", "alice", 0, 45, true);
	assert_int_equal(h->m[0].u.plan.role, NB_ROLE_PRIME);
	/* the asker's own connect carries a sample: it counts at once */
	nb_rendezvous_set_rtt(h->rv, 160); /* alice: 40 -> (7 * 40 + 160) / 8 = 55 */
	expect_delays(h, "203.0.113.1:1000", 70, "alice", "bob", 50 - 27 + 5 + 10, 0, true);
	assert_int_equal(last_connect(h)->rtt_a, 55);

	/* the dialer's plan arrives last: only the margin (5 + 200 / 10) */
	reg_ok(h, "carol", "192.0.2.3:3000", 100, "sym");
	reg_ok(h, "dave", "192.0.2.4:4000", 100, "rc");
	keepalive_rtt(h, "192.0.2.3:3000", 110, "carol", 200);
	keepalive_rtt(h, "192.0.2.4:4000", 110, "dave", 20);
	expect_delays(h, "192.0.2.3:3000", 120, "carol", "dave", 25, 0, true);
	expect_delays(h, "192.0.2.4:4000", 130, "dave", "carol", 0, 25, true);

	/* a simultaneous punch: the side whose plan arrives first waits the
	 * difference, no margin */
	reg_ok(h, "erin", "192.0.2.5:5000", 200, "prc");
	reg_ok(h, "frank", "192.0.2.6:6000", 200, "prc");
	expect_delays(h, "192.0.2.5:5000", 205, "erin", "frank", 0, 0, false); /* unknown: 0 */
	keepalive_rtt(h, "192.0.2.5:5000", 210, "erin", 30);
	keepalive_rtt(h, "192.0.2.6:6000", 210, "frank", 91);
	expect_delays(h, "192.0.2.5:5000", 220, "erin", "frank", 45 - 15, 0, true);
	assert_int_equal(h->m[0].u.plan.role, NB_ROLE_PUNCH);
	expect_delays(h, "192.0.2.6:6000", 230, "frank", "erin", 0, 30, true);
	keepalive_rtt(h, "192.0.2.6:6000", 240, "frank", 31); /* (7 * 91 + 31) / 8 = 83.5 */
	expect_delays(h, "192.0.2.6:6000", 250, "frank", "erin", 0, 41 - 15, true);

	/* birthday: the spraying side first, the probing side after it has
	 * its plan plus the margin; the deadline counts that delay */
	reg_ok(h, "gina", "192.0.2.7:7000", 300, "sym");
	reg_ok(h, "hugo", "192.0.2.8:8000", 300, "prc");
	expect_delays(h, "192.0.2.7:7000", 305, "gina", "hugo", 0, 100, false); /* unknown: fixed */
	keepalive_rtt(h, "192.0.2.7:7000", 310, "gina", 60);
	keepalive_rtt(h, "192.0.2.8:8000", 310, "hugo", 20);
	expect_delays(h, "192.0.2.7:7000", 320, "gina", "hugo", 0, 30 - 10 + 5 + 6, true);
	assert_int_equal(h->m[0].u.plan.path, NB_PATH_BIRTHDAY);
	assert_int_equal(h->m[0].u.plan.deadline_ms, 20480 + 31 + 1500);
	assert_int_equal(h->m[1].u.plan.deadline_ms, 20480 + 31 + 1500);
	expect_delays(h, "192.0.2.8:8000", 330, "hugo", "gina", 31, 0, true);
	/* the probing side farther away: the margin only */
	keepalive_rtt(h, "192.0.2.8:8000", 340, "hugo", 820); /* (7 * 20 + 820) / 8 = 120 */
	expect_delays(h, "192.0.2.8:8000", 350, "hugo", "gina", 5 + 12, 0, true);

	/* plans that need no timing: none, even with both round trips */
	reg_ok(h, "ivy", "192.0.2.9:9000", 400, "fc");
	keepalive_rtt(h, "192.0.2.9:9000", 410, "ivy", 10);
	expect_delays(h, "192.0.2.9:9000", 420, "ivy", "alice", 0, 0, false); /* listen / dial */
	h_free(h);

	/* punch_timing fixed: as before, whatever is known */
	nb_rendezvous_config_default(&cfg);
	cfg.rtt_timing = false;
	cfg.prime_delay_ms = 77;
	h = h_new(&cfg);
	reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
	reg_ok(h, "bob", "198.51.100.2:2000", 0, "rc");
	reg_ok(h, "erin", "192.0.2.5:5000", 0, "prc");
	keepalive_rtt(h, "203.0.113.1:1000", 10, "alice", 40);
	keepalive_rtt(h, "198.51.100.2:2000", 10, "bob", 100);
	keepalive_rtt(h, "192.0.2.5:5000", 10, "erin", 300);
	expect_delays(h, "203.0.113.1:1000", 20, "alice", "bob", 77, 0, false);
	assert_int_equal(last_connect(h)->rtt_a, 40); /* reported all the same */
	assert_int_equal(last_connect(h)->rtt_b, 100);
	expect_delays(h, "192.0.2.5:5000", 30, "erin", "alice", 77, 0, false); /* probe after spray */
	assert_int_equal(h->m[0].u.plan.role, NB_ROLE_PROBE);
	assert_int_equal(h->m[0].u.plan.deadline_ms, 20480 + 77 + 1500);
	reg_ok(h, "frank", "192.0.2.6:6000", 40, "prc");
	keepalive_rtt(h, "192.0.2.6:6000", 50, "frank", 20);
	expect_delays(h, "192.0.2.5:5000", 60, "erin", "frank", 0, 0, false); /* punch */
	assert_int_equal(stats(h).rtt_timed, 0);
	h_free(h);
}

/* Where the round trips come from: the shell's per-message sample
 * (register, keepalive, connect; that message only; not above the
 * maximum; not from a refused request), and the ack of a pushed plan sent
 * once (Karn: not after a retransmission). */
static void test_rtt_samples(void **state)
{
	struct h *h = h_new(NULL);
	struct nb_rendezvous_dgram out[8];
	char ptx[17];

	(void)state;
	/* a register's sample */
	nb_rendezvous_set_rtt(h->rv, 100);
	reg_ok(h, "alice", "203.0.113.1:1000", 0, "sym");
	reg_ok(h, "bob", "198.51.100.2:2000", 0, "rc");
	connect_(h, "203.0.113.1:1000", 10, "alice", "bob");
	assert_int_equal(last_connect(h)->rtt_a, 100);
	assert_int_equal(last_connect(h)->rtt_b, 0); /* bob's register had none: for one call only */
	assert_int_equal(stats(h).rtt_samples, 1);
	/* smoothed: 7/8 of the old, 1/8 of the new */
	keepalive_rtt(h, "203.0.113.1:1000", 20, "alice", 200);
	connect_(h, "203.0.113.1:1000", 30, "alice", "bob");
	assert_int_equal(last_connect(h)->rtt_a, 112);
	/* above the maximum: not taken; at it: taken */
	keepalive_rtt(h, "203.0.113.1:1000", 40, "alice", NB_RENDEZVOUS_RTT_MAX_MS + 1);
	connect_(h, "203.0.113.1:1000", 50, "alice", "bob");
	assert_int_equal(last_connect(h)->rtt_a, 112);
	assert_int_equal(stats(h).rtt_samples, 2);
	/* a refused request takes none, and the sample does not carry over */
	nb_rendezvous_set_rtt(h->rv, 5000);
	h_as(h, "mallory");
	sendf(h, "203.0.113.1:1000", 60, HDR ",\"id\":\"alice\"}", "keepalive", next_tx(h));
	expect_error(h, 404, NULL);
	keepalive_rtt(h, "203.0.113.1:1000", 70, "alice", 0);
	connect_(h, "203.0.113.1:1000", 80, "alice", "bob");
	assert_int_equal(last_connect(h)->rtt_a, 112);
	assert_int_equal(stats(h).rtt_samples, 2);
	/* nor does an unsealed one, or a failed call */
	nb_rendezvous_set_rtt(h->rv, 5000);
	h_plain(h);
	sendf(h, "203.0.113.1:1000", 90, HDR ",\"id\":\"alice\"}", "keepalive", next_tx(h));
	nb_rendezvous_set_rtt(h->rv, 5000);
	{
		struct nb_rendezvous_out o;
		struct nb_addr f = A("203.0.113.1:1000");
		assert_int_equal(nb_rendezvous_handle_keyed(h->rv, (const uint8_t *)"{", 1, &f, NULL, 95,
							    h->rnd, 1, &o),
				 -EINVAL);
	}
	keepalive_rtt(h, "203.0.113.1:1000", 100, "alice", 0);
	assert_int_equal(stats(h).rtt_samples, 2);

	/* Karn: bob acks his plan's first send 60 ms on: a sample */
	reg_ok(h, "carol", "192.0.2.3:3000", 1000, "prc");
	connect_(h, "203.0.113.1:1000", 1000, "alice", "carol");
	snprintf(ptx, sizeof(ptx), "%s", h->m[1].tx);
	assert_int_equal(sendf(h, "192.0.2.3:3000", 1060, HDR "}", "ack", ptx), 0);
	assert_int_equal(last_ev(h)->kind, NB_RV_EVENT_PUSH_ACKED);
	assert_int_equal(stats(h).rtt_samples, 3);
	connect_(h, "192.0.2.3:3000", 1100, "carol", "alice");
	assert_int_equal(last_connect(h)->rtt_a, 60);
	/* ... an ack after a retransmission answers either send: none */
	connect_(h, "203.0.113.1:1000", 2000, "alice", "carol");
	snprintf(ptx, sizeof(ptx), "%s", h->m[1].tx);
	assert_true(poll_(h, 2250, out) >= 1);
	assert_int_equal(sendf(h, "192.0.2.3:3000", 2260, HDR "}", "ack", ptx), 0);
	assert_int_equal(last_ev(h)->kind, NB_RV_EVENT_PUSH_ACKED);
	assert_int_equal(stats(h).rtt_samples, 3);
	connect_(h, "192.0.2.3:3000", 2300, "carol", "alice");
	assert_int_equal(last_connect(h)->rtt_a, 60);
	/* ... and an ack in the same millisecond counts as 1 ms */
	connect_(h, "203.0.113.1:1000", 3000, "alice", "carol");
	snprintf(ptx, sizeof(ptx), "%s", h->m[1].tx);
	assert_int_equal(sendf(h, "192.0.2.3:3000", 3000, HDR "}", "ack", ptx), 0);
	assert_int_equal(stats(h).rtt_samples, 4);
	connect_(h, "192.0.2.3:3000", 3100, "carol", "alice");
	assert_int_equal(last_connect(h)->rtt_a, 52); /* (7 * 60 + 1) / 8 = 52.6 */

	/* a move starts over */
	reg_ok(h, "alice", "203.0.113.1:1001", 4000, "sym");
	connect_(h, "192.0.2.3:3000", 4100, "carol", "alice");
	assert_int_equal(last_connect(h)->rtt_b, 0);
	h_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_keepalive_expiry),
		cmocka_unit_test(test_expired_on_handle),
		cmocka_unit_test(test_full_registry),
		cmocka_unit_test(test_connect_plans),
		cmocka_unit_test(test_connect_errors),
		cmocka_unit_test(test_push_until_ack),
		cmocka_unit_test(test_push_gives_up),
		cmocka_unit_test(test_push_refused),
		cmocka_unit_test(test_poll_bounded),
		cmocka_unit_test(test_results_matrix),
		cmocka_unit_test(test_upnp_verify),
		cmocka_unit_test(test_tcp_verify),
		cmocka_unit_test(test_register_cookie),
		cmocka_unit_test(test_list_no_amplification),
		cmocka_unit_test(test_paging_peers),
		cmocka_unit_test(test_paging_matrix),
		cmocka_unit_test(test_reply_cache),
		cmocka_unit_test(test_cache_full),
		cmocka_unit_test(test_sessions_full),
		cmocka_unit_test(test_sessions_time_out),
		cmocka_unit_test(test_list_rate),
		cmocka_unit_test(test_key_takeover),
		cmocka_unit_test(test_one_key_many_names),
		cmocka_unit_test(test_bye),
		cmocka_unit_test(test_unsealed),
		cmocka_unit_test(test_forged_result),
		cmocka_unit_test(test_list_access),
		cmocka_unit_test(test_out_keys),
		cmocka_unit_test(test_garbage_changes_nothing),
		cmocka_unit_test(test_bad_request_replies),
		cmocka_unit_test(test_ignored),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_relay_plans),
		cmocka_unit_test(test_relay_in_advance),
		cmocka_unit_test(test_relay_config),
		cmocka_unit_test(test_relayed_forward),
		cmocka_unit_test(test_relayed_gives_up),
		cmocka_unit_test(test_relayed_queued),
		cmocka_unit_test(test_relayed_refused),
		cmocka_unit_test(test_relay_via_tcp),
		cmocka_unit_test(test_birthday_plans),
		cmocka_unit_test(test_birthday_config),
		cmocka_unit_test(test_birthday_results),
		cmocka_unit_test(test_rtt_timing),
		cmocka_unit_test(test_rtt_samples),
		cmocka_unit_test(test_dual_family),
		cmocka_unit_test(test_family_race),
		cmocka_unit_test(test_cross_family_relay),
		cmocka_unit_test(test_relay_families),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
