/* tests/unit/test_client.c - the broker client against a fake clock and a
 * fake broker: registration, retransmission timers, keepalive, 404 and
 * silence (re-registration), refusal, pushed plans and their acks, connect,
 * results, the paged peers listing, and what it must ignore. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "peer/client.h"

#define MAX_SENT 256

struct fake {
	struct nb_client c;
	uint64_t now;
	struct nb_addr broker;
	struct nb_ctrl_msg sent[MAX_SENT];
	uint64_t sent_at[MAX_SENT];
	size_t sent_len[MAX_SENT];
	int n_sent;
	struct nb_client_event ev[64];
	int n_ev;
};

static struct nb_addr A(const char *s)
{
	struct nb_addr a;
	assert_int_equal(nb_addr_parse(s, false, &a), 0);
	return a;
}

static void events(struct fake *f)
{
	struct nb_client_event e;

	while (nb_client_next_event(&f->c, &e) == 1) {
		assert_true(f->n_ev < 64);
		f->ev[f->n_ev++] = e;
	}
}

static void drain(struct fake *f)
{
	struct nb_client_tx tx;

	while (nb_client_poll(&f->c, f->now, &tx) == 1) {
		assert_true(f->n_sent < MAX_SENT);
		assert_true(nb_addr_equal(&tx.to, &f->broker));
		assert_true(nb_ctrl_decode(&f->sent[f->n_sent], tx.bytes, tx.len) > 0);
		f->sent_len[f->n_sent] = tx.len;
		f->sent_at[f->n_sent++] = f->now;
	}
	events(f);
	assert_true(nb_client_deadline(&f->c) > f->now);
}

/* Move the clock to `to`, waking at every deadline on the way. */
static void advance_to(struct fake *f, uint64_t to)
{
	for (int guard = 0; guard < 10000; guard++) {
		uint64_t d = nb_client_deadline(&f->c);
		if (d > to)
			break;
		if (d > f->now)
			f->now = d;
		drain(f);
	}
	f->now = to;
	drain(f);
}

static void setup(struct fake *f)
{
	uint8_t seed[32];

	memset(f, 0, sizeof(*f));
	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)i;
	f->broker = A("203.0.113.10:3478");
	f->now = 100000;
	nb_client_init(&f->c, NULL, &f->broker, seed, f->now);
}

static struct nb_ctrl_register reg_of(const char *id)
{
	struct nb_ctrl_register r;

	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "%s", id);
	r.local[0] = A("192.168.1.2:5000");
	r.n_local = 1;
	r.has_nat = true;
	r.mapping = NB_MAPPING_ENDPOINT_INDEPENDENT;
	r.filtering = NB_FILTERING_ADDRESS_AND_PORT_DEPENDENT;
	r.has_upnp = true;
	r.upnp = NB_CTRL_UPNP_NONE;
	return r;
}

static int reply_from(struct fake *f, const struct nb_addr *from, const struct nb_ctrl_msg *m)
{
	uint8_t b[NB_CTRL_MAX_DATAGRAM];
	ssize_t n = nb_ctrl_encode(m, b, sizeof(b));
	int r;

	assert_true(n > 0);
	r = nb_client_input(&f->c, b, (size_t)n, from, f->now);
	drain(f);
	return r;
}

static int reply(struct fake *f, const struct nb_ctrl_msg *m)
{
	return reply_from(f, &f->broker, m);
}

static const struct nb_ctrl_msg *last(struct fake *f)
{
	assert_true(f->n_sent > 0);
	return &f->sent[f->n_sent - 1];
}

static struct nb_ctrl_msg registered_for(const struct nb_ctrl_msg *req, uint32_t keepalive_s)
{
	struct nb_ctrl_msg m;

	memset(&m, 0, sizeof(m));
	m.type = NB_CTRL_REGISTERED;
	memcpy(m.tx, req->tx, sizeof(m.tx));
	snprintf(m.u.registered.id, sizeof(m.u.registered.id), "%s", req->u.reg.id);
	m.u.registered.reflexive = A("203.0.113.101:40000");
	m.u.registered.keepalive_s = keepalive_s;
	m.u.registered.expires_s = 90;
	return m;
}

static struct nb_ctrl_msg simple(enum nb_ctrl_type type, const char *tx)
{
	struct nb_ctrl_msg m;

	memset(&m, 0, sizeof(m));
	m.type = type;
	snprintf(m.tx, sizeof(m.tx), "%s", tx);
	return m;
}

static struct nb_ctrl_msg error_for(const char *tx, uint16_t code, const char *reason)
{
	struct nb_ctrl_msg m = simple(NB_CTRL_ERROR, tx);

	m.u.error.code = code;
	snprintf(m.u.error.reason, sizeof(m.u.error.reason), "%s", reason);
	return m;
}

static void do_register(struct fake *f, uint32_t keepalive_s)
{
	struct nb_ctrl_register r = reg_of("alice");
	struct nb_ctrl_msg m;

	assert_int_equal(nb_client_register(&f->c, &r, f->now), 0);
	drain(f);
	assert_int_equal(last(f)->type, NB_CTRL_REGISTER);
	m = registered_for(last(f), keepalive_s);
	assert_int_equal(reply(f, &m), 0);
	assert_int_equal(nb_client_state(&f->c), NB_CLIENT_REGISTERED);
}

static void test_register(void **state)
{
	static struct fake f;
	struct nb_ctrl_register r = reg_of("alice");

	(void)state;
	setup(&f);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_IDLE);
	assert_int_equal(nb_client_deadline(&f.c), UINT64_MAX);
	assert_int_equal(nb_client_register(&f.c, &r, f.now), 0);
	assert_int_equal(nb_client_deadline(&f.c), f.now);
	drain(&f);
	assert_int_equal(f.n_sent, 1);
	assert_int_equal(f.sent[0].type, NB_CTRL_REGISTER);
	assert_string_equal(f.sent[0].u.reg.id, "alice");
	assert_true(f.sent[0].u.reg.has_nat);
	assert_int_equal(f.sent[0].u.reg.mapping, NB_MAPPING_ENDPOINT_INDEPENDENT);
	assert_int_equal(f.sent[0].u.reg.upnp, NB_CTRL_UPNP_NONE);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_REGISTERING);

	struct nb_ctrl_msg m = registered_for(&f.sent[0], 15);
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_REGISTERED);
	assert_int_equal(f.n_ev, 1);
	assert_int_equal(f.ev[0].type, NB_CLIENT_EV_REGISTERED);
	assert_true(nb_addr_equal(&f.ev[0].u.registered.reflexive, &m.u.registered.reflexive));
	/* The same reply again is not a second registration. */
	assert_int_equal(reply(&f, &m), -1);
	assert_int_equal(f.n_ev, 1);
	/* An invalid registration is refused up front. */
	r.id[0] = '\0';
	assert_int_equal(nb_client_register(&f.c, &r, f.now), -EINVAL);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_REGISTERED);
}

static void test_retransmission_and_backoff(void **state)
{
	static struct fake f;
	struct nb_ctrl_register r = reg_of("alice");
	uint64_t t0;

	(void)state;
	setup(&f);
	t0 = f.now;
	assert_int_equal(nb_client_register(&f.c, &r, f.now), 0);
	advance_to(&f, t0 + 11749);
	/* RFC 8489 timers, scaled: 0, 250, 750, 1750, 3750, 7750 ms; byte for byte. */
	static const uint64_t at[] = { 0, 250, 750, 1750, 3750, 7750 };
	assert_int_equal(f.n_sent, 6);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(f.sent_at[i] - t0, at[i]);
		assert_true(nb_ctrl_msg_equal(&f.sent[i], &f.sent[0]));
	}
	assert_int_equal(f.n_ev, 0);
	advance_to(&f, t0 + 11750);
	assert_int_equal(f.n_ev, 1);
	assert_int_equal(f.ev[0].type, NB_CLIENT_EV_REGISTER_FAILED);
	assert_int_equal(f.ev[0].code, 0);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_BACKOFF);
	/* Backoff: 1 s, 2 s, 4 s, ... up to 30 s between failed attempts. */
	uint64_t fail_at = t0 + 11750;
	static const uint64_t backoff[] = { 1000, 2000, 4000, 8000, 16000, 30000, 30000 };
	for (int i = 0; i < 7; i++) {
		int before = f.n_sent;
		advance_to(&f, fail_at + backoff[i] - 1);
		assert_int_equal(f.n_sent, before);
		advance_to(&f, fail_at + backoff[i]);
		assert_int_equal(f.n_sent, before + 1);
		assert_int_equal(last(&f)->type, NB_CTRL_REGISTER);
		assert_string_not_equal(last(&f)->tx, f.sent[0].tx); /* a new transaction */
		fail_at += backoff[i] + NB_CLIENT_TXN_TIMEOUT_MS;
		advance_to(&f, fail_at);
		assert_int_equal(nb_client_state(&f.c), NB_CLIENT_BACKOFF);
	}
	/* The broker comes back: registered, backoff reset. */
	advance_to(&f, fail_at + 30000);
	struct nb_ctrl_msg m = registered_for(last(&f), 20);
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_REGISTERED);
	assert_int_equal(f.c.backoff_ms, 1000);
}

static void test_keepalive(void **state)
{
	static struct fake f;
	uint64_t t0;

	(void)state;
	setup(&f);
	do_register(&f, 15);
	t0 = f.now;
	int before = f.n_sent;
	advance_to(&f, t0 + 14999);
	assert_int_equal(f.n_sent, before);
	advance_to(&f, t0 + 15000);
	assert_int_equal(f.n_sent, before + 1);
	assert_int_equal(last(&f)->type, NB_CTRL_KEEPALIVE);
	assert_string_equal(last(&f)->u.keepalive.id, "alice");
	/* Answered after one retransmission: the next keepalive is 15 s after the ack. */
	advance_to(&f, t0 + 15300);
	assert_int_equal(f.n_sent, before + 2);
	struct nb_ctrl_msg ack = simple(NB_CTRL_ACK, last(&f)->tx);
	assert_int_equal(reply(&f, &ack), 0);
	advance_to(&f, t0 + 30299);
	assert_int_equal(f.n_sent, before + 2);
	advance_to(&f, t0 + 30300);
	assert_int_equal(f.n_sent, before + 3);
	assert_int_equal(last(&f)->type, NB_CTRL_KEEPALIVE);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_REGISTERED);
	assert_int_equal(f.n_ev, 1); /* only the registration */
}

/* docs/protocol.md "challenge": the same register again with the cookie;
 * the cookie stays for later registers; endless challenges end in backoff. */
static void test_register_challenge(void **state)
{
	static struct fake f;
	struct nb_ctrl_register r = reg_of("alice");
	struct nb_ctrl_msg m;

	(void)state;
	setup(&f);
	assert_int_equal(nb_client_register(&f.c, &r, f.now), 0);
	drain(&f);
	assert_string_equal(last(&f)->u.reg.cookie, "");
	m = simple(NB_CTRL_CHALLENGE, last(&f)->tx);
	snprintf(m.u.challenge.cookie, sizeof(m.u.challenge.cookie), "%s", "00112233445566778899aabbccddeeff");
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(f.n_sent, 2); /* at once */
	assert_int_equal(last(&f)->type, NB_CTRL_REGISTER);
	assert_string_equal(last(&f)->u.reg.cookie, "00112233445566778899aabbccddeeff");
	assert_string_not_equal(last(&f)->tx, f.sent[0].tx);
	assert_int_equal(f.n_ev, 0);
	m = registered_for(last(&f), 15);
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_REGISTERED);
	/* a challenge from elsewhere is not the broker's */
	m = simple(NB_CTRL_CHALLENGE, last(&f)->tx);
	snprintf(m.u.challenge.cookie, sizeof(m.u.challenge.cookie), "%s", "ffffffffffffffffffffffffffffffff");
	struct nb_addr other = A("203.0.113.99:3478");
	assert_int_equal(reply_from(&f, &other, &m), -1);
	/* registering again (new contents) carries the cookie */
	r.hairpin = !r.hairpin;
	assert_int_equal(nb_client_register(&f.c, &r, f.now), 0);
	drain(&f);
	assert_string_equal(last(&f)->u.reg.cookie, "00112233445566778899aabbccddeeff");
	/* challenged over and over: failure and backoff, not a loop */
	for (int i = 0; i <= NB_CLIENT_MAX_CHALLENGES; i++) {
		m = simple(NB_CTRL_CHALLENGE, last(&f)->tx);
		snprintf(m.u.challenge.cookie, sizeof(m.u.challenge.cookie), "%032x", i);
		assert_int_equal(reply(&f, &m), 0);
	}
	assert_int_equal(f.ev[f.n_ev - 1].type, NB_CLIENT_EV_REGISTER_FAILED);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_BACKOFF);
}

static void test_keepalive_404_registers_again(void **state)
{
	static struct fake f;

	(void)state;
	setup(&f);
	do_register(&f, 15);
	advance_to(&f, f.now + 15000);
	assert_int_equal(last(&f)->type, NB_CTRL_KEEPALIVE);
	struct nb_ctrl_msg err = error_for(last(&f)->tx, 404, "no peer 'alice'");
	int before = f.n_sent;
	assert_int_equal(reply(&f, &err), 0);
	/* At once, a new register. */
	assert_int_equal(f.n_sent, before + 1);
	assert_int_equal(last(&f)->type, NB_CTRL_REGISTER);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_REGISTERING);
	assert_int_equal(f.ev[f.n_ev - 1].type, NB_CLIENT_EV_LOST);
	assert_int_equal(f.ev[f.n_ev - 1].code, 404);
	assert_string_equal(f.ev[f.n_ev - 1].reason, "no peer 'alice'");
	struct nb_ctrl_msg m = registered_for(last(&f), 15);
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_REGISTERED);
	assert_int_equal(f.c.registrations, 2);
}

static void test_broker_silent_then_restarted(void **state)
{
	static struct fake f;
	uint64_t t;

	(void)state;
	setup(&f);
	do_register(&f, 15);
	t = f.now + 15000;
	advance_to(&f, t);
	assert_int_equal(last(&f)->type, NB_CTRL_KEEPALIVE);
	/* The broker is gone: six keepalives, then give up and register. */
	advance_to(&f, t + NB_CLIENT_TXN_TIMEOUT_MS);
	assert_int_equal(f.ev[f.n_ev - 1].type, NB_CLIENT_EV_LOST);
	assert_int_equal(f.ev[f.n_ev - 1].code, 0);
	assert_int_equal(last(&f)->type, NB_CTRL_REGISTER);
	int keepalives = 0;
	for (int i = 0; i < f.n_sent; i++)
		keepalives += f.sent[i].type == NB_CTRL_KEEPALIVE;
	assert_int_equal(keepalives, 6);
	/* Still gone: the register fails, back off, try again... */
	t += NB_CLIENT_TXN_TIMEOUT_MS;
	advance_to(&f, t + NB_CLIENT_TXN_TIMEOUT_MS);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_BACKOFF);
	advance_to(&f, t + NB_CLIENT_TXN_TIMEOUT_MS + 1000);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_REGISTERING);
	/* ...and the restarted broker answers: registered again, keepalives resume. */
	struct nb_ctrl_msg m = registered_for(last(&f), 15);
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_REGISTERED);
	assert_int_equal(f.ev[f.n_ev - 1].type, NB_CLIENT_EV_REGISTERED);
	advance_to(&f, f.now + 15000);
	assert_int_equal(last(&f)->type, NB_CTRL_KEEPALIVE);
}

static void test_register_refused(void **state)
{
	static struct fake f;
	struct nb_ctrl_register r = reg_of("alice");

	(void)state;
	setup(&f);
	assert_int_equal(nb_client_register(&f.c, &r, f.now), 0);
	drain(&f);
	struct nb_ctrl_msg err = error_for(last(&f)->tx, 401, "wrong token");
	assert_int_equal(reply(&f, &err), 0);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_REFUSED);
	assert_int_equal(f.ev[0].type, NB_CLIENT_EV_REGISTER_FAILED);
	assert_int_equal(f.ev[0].code, 401);
	int before = f.n_sent;
	advance_to(&f, f.now + 120000);
	assert_int_equal(f.n_sent, before); /* nothing more */
	assert_int_equal(nb_client_deadline(&f.c), UINT64_MAX);

	/* 503 (full) is worth retrying; 409 (the name is held by another key)
	 * is final: waiting for the holder to leave would be a takeover. */
	setup(&f);
	assert_int_equal(nb_client_register(&f.c, &r, f.now), 0);
	drain(&f);
	err = error_for(last(&f)->tx, 503, "broker full");
	assert_int_equal(reply(&f, &err), 0);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_BACKOFF);
	advance_to(&f, f.now + 1000);
	assert_int_equal(last(&f)->type, NB_CTRL_REGISTER);
	err = error_for(last(&f)->tx, 503, "broker full");
	assert_int_equal(reply(&f, &err), 0);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_BACKOFF);
	assert_int_equal(f.c.retry_at, f.now + 2000);
	advance_to(&f, f.now + 2000);
	assert_int_equal(last(&f)->type, NB_CTRL_REGISTER);
	err = error_for(last(&f)->tx, 409, "'alice' is held by another key");
	assert_int_equal(reply(&f, &err), 0);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_REFUSED);
	before = f.n_sent;
	advance_to(&f, f.now + 120000);
	assert_int_equal(f.n_sent, before); /* it does not wait to take the name */
}

static struct nb_ctrl_msg plan_msg(const char *tx, enum nb_role role)
{
	struct nb_ctrl_msg m = simple(NB_CTRL_PLAN, tx);
	struct nb_ctrl_plan *p = &m.u.plan;

	snprintf(p->session, sizeof(p->session), "fedcba9876543210");
	snprintf(p->peer, sizeof(p->peer), "bob");
	p->role = role;
	p->path = NB_PATH_DIRECT;
	snprintf(p->reason, sizeof(p->reason), "cones punch");
	p->candidates[0] = A("203.0.113.102:40000");
	p->n_candidates = 1;
	snprintf(p->username, sizeof(p->username), "fedcba9876543210:bob");
	snprintf(p->peer_key, sizeof(p->peer_key), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
	p->deadline_ms = 5000;
	return m;
}

static void test_pushed_plan_acked(void **state)
{
	static struct fake f;

	(void)state;
	setup(&f);
	do_register(&f, 15);
	int before = f.n_sent, ev = f.n_ev;
	struct nb_ctrl_msg plan = plan_msg("00000000000000aa", NB_ROLE_PUNCH);
	assert_int_equal(reply(&f, &plan), 0);
	assert_int_equal(f.n_sent, before + 1);
	assert_int_equal(last(&f)->type, NB_CTRL_ACK);
	assert_string_equal(last(&f)->tx, "00000000000000aa");
	assert_int_equal(f.n_ev, ev + 1);
	assert_int_equal(f.ev[ev].type, NB_CLIENT_EV_PLAN);
	assert_true(f.ev[ev].pushed);
	assert_int_equal(f.ev[ev].u.plan.role, NB_ROLE_PUNCH);
	assert_string_equal(f.ev[ev].u.plan.session, "fedcba9876543210");
	/* The broker did not get the ack and sends the plan again: ack again,
	 * no second event. */
	assert_int_equal(reply(&f, &plan), 0);
	assert_int_equal(f.n_sent, before + 2);
	assert_int_equal(last(&f)->type, NB_CTRL_ACK);
	assert_int_equal(f.n_ev, ev + 1);
	/* A plan from anyone but the broker is ignored, unacknowledged. */
	struct nb_addr evil = A("203.0.113.66:3478");
	struct nb_ctrl_msg p2 = plan_msg("00000000000000bb", NB_ROLE_DIAL);
	assert_int_equal(reply_from(&f, &evil, &p2), -1);
	assert_int_equal(f.n_sent, before + 2);
	assert_int_equal(f.n_ev, ev + 1);
}

static void test_connect(void **state)
{
	static struct fake f;
	struct nb_ctrl_msg m;

	(void)state;
	setup(&f);
	assert_int_equal(nb_client_connect(&f.c, "bob", f.now), -EAGAIN); /* not registered */
	do_register(&f, 15);
	/* Success: the plan is the reply. */
	assert_int_equal(nb_client_connect(&f.c, "bob", f.now), 0);
	drain(&f);
	assert_int_equal(last(&f)->type, NB_CTRL_CONNECT);
	assert_string_equal(last(&f)->u.connect.id, "alice");
	assert_string_equal(last(&f)->u.connect.peer, "bob");
	int before = f.n_sent, ev = f.n_ev;
	m = plan_msg(last(&f)->tx, NB_ROLE_DIAL);
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(f.n_sent, before); /* a reply is not acked */
	assert_int_equal(f.ev[ev].type, NB_CLIENT_EV_PLAN);
	assert_false(f.ev[ev].pushed);
	assert_int_equal(f.ev[ev].u.plan.role, NB_ROLE_DIAL);
	assert_int_equal(nb_client_pending(&f.c, NB_CLIENT_TXN_CONNECT), 0);

	/* Refused. */
	assert_int_equal(nb_client_connect(&f.c, "carol", f.now), 0);
	drain(&f);
	m = error_for(last(&f)->tx, 404, "no peer 'carol'");
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(f.ev[f.n_ev - 1].type, NB_CLIENT_EV_CONNECT_FAILED);
	assert_int_equal(f.ev[f.n_ev - 1].code, 404);
	assert_string_equal(f.ev[f.n_ev - 1].peer, "carol");
	assert_string_equal(f.ev[f.n_ev - 1].reason, "no peer 'carol'");

	/* Unanswered: asked again once, as a new transaction, then failed. */
	assert_int_equal(nb_client_connect(&f.c, "dave", f.now), 0);
	uint64_t t = f.now;
	ev = f.n_ev;
	before = f.n_sent;
	advance_to(&f, t + NB_CLIENT_TXN_TIMEOUT_MS - 1);
	assert_int_equal(f.n_ev, ev);
	assert_int_equal(f.n_sent, before + 6);
	char first_tx[NB_CTRL_TX_LEN + 1];
	memcpy(first_tx, f.sent[before].tx, sizeof(first_tx));
	advance_to(&f, t + NB_CLIENT_TXN_TIMEOUT_MS);
	assert_int_equal(f.n_ev, ev); /* no event: a second request instead */
	assert_int_equal(f.n_sent, before + 7);
	assert_int_equal(last(&f)->type, NB_CTRL_CONNECT);
	assert_string_equal(last(&f)->u.connect.peer, "dave");
	assert_string_not_equal(last(&f)->tx, first_tx);
	assert_int_equal(nb_client_pending(&f.c, NB_CLIENT_TXN_CONNECT), 1);
	advance_to(&f, t + 2 * NB_CLIENT_TXN_TIMEOUT_MS - 1);
	assert_int_equal(f.n_ev, ev);
	advance_to(&f, t + 2 * NB_CLIENT_TXN_TIMEOUT_MS);
	assert_int_equal(f.n_ev, ev + 1);
	assert_int_equal(f.ev[f.n_ev - 1].type, NB_CLIENT_EV_CONNECT_FAILED);
	assert_int_equal(f.ev[f.n_ev - 1].code, 0);
	assert_string_equal(f.ev[f.n_ev - 1].peer, "dave");
	assert_non_null(strstr(f.ev[f.n_ev - 1].reason, "2 requests"));
	assert_int_equal(nb_client_pending(&f.c, NB_CLIENT_TXN_CONNECT), 0);
}

/* 20% loss each way: every reply to the first connect is lost (probability
 * 0.36^6 = 2.2e-3); the second request's reply arrives: a plan, no failure. */
static void test_connect_unanswered_then_answered(void **state)
{
	static struct fake f;
	struct nb_ctrl_msg m;

	(void)state;
	setup(&f);
	do_register(&f, 3600);
	assert_int_equal(nb_client_connect(&f.c, "bob", f.now), 0);
	uint64_t t = f.now;
	drain(&f);
	struct nb_ctrl_msg first = *last(&f);
	int ev = f.n_ev;
	advance_to(&f, t + NB_CLIENT_TXN_TIMEOUT_MS);
	assert_int_equal(last(&f)->type, NB_CTRL_CONNECT);
	assert_string_not_equal(last(&f)->tx, first.tx);
	struct nb_ctrl_msg second = *last(&f);
	/* A late reply to the first transaction no longer matches it: it is
	 * taken as a plan pushed by the broker (acked, flagged `pushed`), and
	 * the second request still waits for its own reply. */
	m = plan_msg(first.tx, NB_ROLE_DIAL);
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(f.n_ev, ev + 1);
	assert_true(f.ev[ev].pushed);
	assert_int_equal(nb_client_pending(&f.c, NB_CLIENT_TXN_CONNECT), 1);
	m = plan_msg(second.tx, NB_ROLE_DIAL);
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(f.n_ev, ev + 2);
	assert_int_equal(f.ev[ev + 1].type, NB_CLIENT_EV_PLAN);
	assert_false(f.ev[ev + 1].pushed);
	assert_int_equal(nb_client_pending(&f.c, NB_CLIENT_TXN_CONNECT), 0);
	/* A refusal is final: not asked again. */
	assert_int_equal(nb_client_connect(&f.c, "carol", f.now), 0);
	drain(&f);
	int sent = f.n_sent;
	m = error_for(last(&f)->tx, 404, "no peer 'carol'");
	assert_int_equal(reply(&f, &m), 0);
	advance_to(&f, f.now + 3 * NB_CLIENT_TXN_TIMEOUT_MS);
	assert_int_equal(f.n_sent, sent);
	assert_int_equal(f.ev[f.n_ev - 1].type, NB_CLIENT_EV_CONNECT_FAILED);
	assert_int_equal(f.ev[f.n_ev - 1].code, 404);
}

static void test_result(void **state)
{
	static struct fake f;
	struct nb_ctrl_result r;

	(void)state;
	setup(&f);
	do_register(&f, 15);
	memset(&r, 0, sizeof(r));
	snprintf(r.session, sizeof(r.session), "fedcba9876543210");
	snprintf(r.id, sizeof(r.id), "alice");
	r.outcome = NB_CTRL_OUTCOME_CONNECTED;
	r.path = NB_PATH_DIRECT;
	r.has_remote = true;
	r.remote = A("203.0.113.102:40000");
	r.ms = 42;
	assert_int_equal(nb_client_result(&f.c, &r, f.now), 0);
	drain(&f);
	assert_int_equal(last(&f)->type, NB_CTRL_RESULT);
	assert_int_equal(last(&f)->u.result.ms, 42);
	assert_int_equal(nb_client_pending(&f.c, NB_CLIENT_TXN_RESULT), 1);
	struct nb_ctrl_msg ack = simple(NB_CTRL_ACK, last(&f)->tx);
	assert_int_equal(reply(&f, &ack), 0);
	assert_int_equal(f.ev[f.n_ev - 1].type, NB_CLIENT_EV_RESULT_DONE);
	assert_int_equal(f.ev[f.n_ev - 1].code, 0);
	assert_string_equal(f.ev[f.n_ev - 1].session, "fedcba9876543210");
	assert_int_equal(nb_client_pending(&f.c, NB_CLIENT_TXN_NONE), 0);
	/* Bounded: the table keeps one slot for register/keepalive. */
	int ok = 0;
	for (int i = 0; i < 20; i++)
		ok += nb_client_result(&f.c, &r, f.now) == 0;
	assert_int_equal(ok, NB_CLIENT_MAX_TXN - 1);
	assert_int_equal(nb_client_result(&f.c, &r, f.now), -ENOBUFS);
	/* ... so the keepalive still goes out. */
	advance_to(&f, f.now + 15000);
	assert_int_equal(nb_client_pending(&f.c, NB_CLIENT_TXN_KEEPALIVE), 1);
}

static struct nb_ctrl_msg page(const char *tx, uint32_t total, uint32_t offset, size_t n)
{
	struct nb_ctrl_msg m = simple(NB_CTRL_PEER_LIST, tx);

	m.u.peer_list.total = total;
	m.u.peer_list.offset = offset;
	m.u.peer_list.n_peers = n;
	for (size_t i = 0; i < n; i++) {
		struct nb_ctrl_peer_info *p = &m.u.peer_list.peers[i];
		snprintf(p->id, sizeof(p->id), "peer%u", (unsigned)(offset + i));
		p->nat = NB_NAT_FULL_CONE;
		p->mapping = NB_MAPPING_ENDPOINT_INDEPENDENT;
		p->filtering = NB_FILTERING_ENDPOINT_INDEPENDENT;
		p->reflexive = A("203.0.113.5:1000");
	}
	return m;
}

static void test_peers_paging(void **state)
{
	static struct fake f;
	struct nb_ctrl_msg m;

	(void)state;
	setup(&f); /* no registration needed */
	assert_int_equal(nb_client_peers(&f.c, f.now), 0);
	assert_int_equal(nb_client_peers(&f.c, f.now), -EBUSY);
	drain(&f);
	assert_int_equal(last(&f)->type, NB_CTRL_PEERS);
	assert_int_equal(last(&f)->u.query.offset, 0);
	m = page(last(&f)->tx, 20, 0, 8);
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(last(&f)->type, NB_CTRL_PEERS);
	assert_int_equal(last(&f)->u.query.offset, 8);
	/* A page for another offset under the right tx is not taken. */
	m = page(last(&f)->tx, 20, 0, 8);
	assert_int_equal(reply(&f, &m), -1);
	m = page(last(&f)->tx, 20, 8, 8);
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(last(&f)->u.query.offset, 16);
	m = page(last(&f)->tx, 20, 16, 4);
	assert_int_equal(reply(&f, &m), 0);
	int pages = 0, done = 0;
	size_t entries = 0;
	for (int i = 0; i < f.n_ev; i++) {
		if (f.ev[i].type == NB_CLIENT_EV_PEERS_PAGE) {
			pages++;
			entries += f.ev[i].u.page.n_peers;
		}
		done += f.ev[i].type == NB_CLIENT_EV_PEERS_DONE;
	}
	assert_int_equal(pages, 3);
	assert_int_equal(entries, 20);
	assert_int_equal(done, 1);
	assert_int_equal(f.ev[f.n_ev - 1].type, NB_CLIENT_EV_PEERS_DONE);

	/* An empty page before the end stops the listing (no endless loop). */
	setup(&f);
	assert_int_equal(nb_client_peers(&f.c, f.now), 0);
	drain(&f);
	m = page(last(&f)->tx, 5, 0, 0);
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(f.ev[f.n_ev - 1].type, NB_CLIENT_EV_PEERS_FAILED);
	/* An empty registry is one empty page. */
	setup(&f);
	assert_int_equal(nb_client_peers(&f.c, f.now), 0);
	drain(&f);
	m = page(last(&f)->tx, 0, 0, 0);
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(f.ev[f.n_ev - 1].type, NB_CLIENT_EV_PEERS_DONE);
}

static void test_matrix_paging(void **state)
{
	static struct fake f;
	struct nb_ctrl_msg m;

	(void)state;
	setup(&f);
	assert_int_equal(nb_client_matrix(&f.c, f.now), 0);
	/* one listing at a time, of either kind */
	assert_int_equal(nb_client_peers(&f.c, f.now), -EBUSY);
	drain(&f);
	assert_int_equal(last(&f)->type, NB_CTRL_MATRIX);
	/* padded to the largest message a sealed frame carries: the broker's page is no longer than the query */
	assert_int_equal(f.sent_len[f.n_sent - 1], NB_CLIENT_MAX_MSG);
	/* a peers page is not a matrix page */
	m = page(last(&f)->tx, 3, 0, 2);
	assert_int_equal(reply(&f, &m), -1);
	for (uint32_t off = 0; off < 3; off += 2) {
		m = simple(NB_CTRL_MATRIX_LIST, last(&f)->tx);
		m.u.matrix_list.total = 3;
		m.u.matrix_list.offset = off;
		m.u.matrix_list.n_pairs = off == 0 ? 2 : 1;
		for (size_t i = 0; i < m.u.matrix_list.n_pairs; i++) {
			struct nb_ctrl_pair *p = &m.u.matrix_list.pairs[i];
			snprintf(p->a, sizeof(p->a), "a%u", (unsigned)(off + i));
			snprintf(p->b, sizeof(p->b), "b%u", (unsigned)(off + i));
			p->predicted = NB_PATH_DIRECT;
			p->role_a = NB_ROLE_DIAL;
			p->role_b = NB_ROLE_LISTEN;
			snprintf(p->reason, sizeof(p->reason), "b is open: a dials");
		}
		assert_int_equal(reply(&f, &m), 0);
	}
	int pages = 0;
	size_t entries = 0;
	for (int i = 0; i < f.n_ev; i++)
		if (f.ev[i].type == NB_CLIENT_EV_MATRIX_PAGE) {
			pages++;
			entries += f.ev[i].u.matrix.n_pairs;
			assert_string_equal(f.ev[i].u.matrix.pairs[0].reason, "b is open: a dials");
		}
	assert_int_equal(pages, 2);
	assert_int_equal(entries, 3);
	assert_int_equal(f.ev[f.n_ev - 1].type, NB_CLIENT_EV_PEERS_DONE);
}

static void test_verify(void **state)
{
	static struct fake f;
	struct nb_ctrl_msg m;
	struct nb_addr ext = A("203.0.113.106:40001"), alt = A("203.0.113.10:3479");

	(void)state;
	setup(&f);
	assert_int_equal(nb_client_verify(&f.c, &ext, false, f.now), 0);
	assert_int_equal(nb_client_verify(&f.c, &ext, false, f.now), -EBUSY);
	drain(&f);
	assert_int_equal(last(&f)->type, NB_CTRL_VERIFY);
	assert_true(nb_addr_equal(&last(&f)->u.verify.external, &ext));
	/* sent at 0, 250, 750 ms, then nothing more */
	advance_to(&f, f.now + 1700);
	assert_int_equal(f.n_sent, 3);
	assert_int_equal(f.sent_at[1] - f.sent_at[0], 250);
	assert_int_equal(f.sent_at[2] - f.sent_at[0], 750);
	/* a probe with another tx is not ours */
	m = simple(NB_CTRL_PROBE, "00000000000000aa");
	snprintf(m.u.probe.proof, sizeof(m.u.probe.proof), "%s", "0123456789abcdef0123456789abcdef");
	assert_int_equal(reply_from(&f, &alt, &m), -1);
	/* ours, from the broker's other port: VERIFIED with the proof */
	snprintf(m.tx, sizeof(m.tx), "%s", last(&f)->tx);
	assert_int_equal(reply_from(&f, &alt, &m), 0);
	assert_int_equal(f.ev[f.n_ev - 1].type, NB_CLIENT_EV_VERIFIED);
	assert_string_equal(f.ev[f.n_ev - 1].proof, "0123456789abcdef0123456789abcdef");
	assert_true(nb_addr_equal(&f.ev[f.n_ev - 1].from, &alt));
	/* twice: the transaction is over */
	assert_int_equal(reply_from(&f, &alt, &m), -1);
	assert_int_equal(nb_client_pending(&f.c, NB_CLIENT_TXN_VERIFY), 0);

	/* no probe: VERIFY_FAILED at 1750 ms */
	setup(&f);
	uint64_t t0 = f.now;
	assert_int_equal(nb_client_verify(&f.c, &ext, false, f.now), 0);
	advance_to(&f, t0 + 1749);
	assert_int_equal(f.n_ev, 0);
	advance_to(&f, t0 + 1750);
	assert_int_equal(f.ev[f.n_ev - 1].type, NB_CLIENT_EV_VERIFY_FAILED);
	assert_int_equal(f.ev[f.n_ev - 1].code, 0);

	/* refused by the broker: VERIFY_FAILED with the code */
	setup(&f);
	assert_int_equal(nb_client_verify(&f.c, &ext, false, f.now), 0);
	drain(&f);
	m = error_for(last(&f)->tx, 400, "external is not on your address");
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(f.ev[f.n_ev - 1].type, NB_CLIENT_EV_VERIFY_FAILED);
	assert_int_equal(f.ev[f.n_ev - 1].code, 400);
	/* ... and an error for it from anywhere else is not taken */
	setup(&f);
	assert_int_equal(nb_client_verify(&f.c, &ext, false, f.now), 0);
	drain(&f);
	m = error_for(last(&f)->tx, 400, "forged");
	assert_int_equal(reply_from(&f, &alt, &m), -1);
}

static void test_ignores(void **state)
{
	static struct fake f;
	struct nb_addr other = A("203.0.113.11:3478");

	(void)state;
	setup(&f);
	struct nb_ctrl_register r = reg_of("alice");
	assert_int_equal(nb_client_register(&f.c, &r, f.now), 0);
	drain(&f);
	struct nb_ctrl_msg m = registered_for(last(&f), 15);
	/* From another address (even the broker's second IP), garbage, an
	 * unknown tx, a request type the peer does not serve. */
	assert_int_equal(reply_from(&f, &other, &m), -1);
	assert_int_equal(nb_client_input(&f.c, (const uint8_t *)"{}", 2, &f.broker, f.now), -1);
	assert_int_equal(nb_client_input(&f.c, (const uint8_t *)"\x00\x01", 2, &f.broker, f.now), -1);
	struct nb_ctrl_msg wrong = registered_for(last(&f), 15);
	snprintf(wrong.tx, sizeof(wrong.tx), "ffffffffffffffff");
	assert_int_equal(reply(&f, &wrong), -1);
	struct nb_ctrl_msg ack = simple(NB_CTRL_ACK, last(&f)->tx); /* wrong reply type */
	assert_int_equal(reply(&f, &ack), -1);
	struct nb_ctrl_msg ka = simple(NB_CTRL_KEEPALIVE, "0123456789abcdef");
	snprintf(ka.u.keepalive.id, sizeof(ka.u.keepalive.id), "x");
	assert_int_equal(reply(&f, &ka), -1);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_REGISTERING);
	assert_int_equal(f.n_ev, 0);
	assert_int_equal(reply(&f, &m), 0);
	assert_int_equal(nb_client_state(&f.c), NB_CLIENT_REGISTERED);
	/* Transaction IDs are distinct. */
	for (int i = 0; i < f.n_sent; i++)
		for (int j = i + 1; j < f.n_sent; j++)
			if (!nb_ctrl_msg_equal(&f.sent[i], &f.sent[j]))
				assert_string_not_equal(f.sent[i].tx, f.sent[j].tx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register),
		cmocka_unit_test(test_retransmission_and_backoff),
		cmocka_unit_test(test_keepalive),
		cmocka_unit_test(test_register_challenge),
		cmocka_unit_test(test_keepalive_404_registers_again),
		cmocka_unit_test(test_broker_silent_then_restarted),
		cmocka_unit_test(test_register_refused),
		cmocka_unit_test(test_pushed_plan_acked),
		cmocka_unit_test(test_connect),
		cmocka_unit_test(test_connect_unanswered_then_answered),
		cmocka_unit_test(test_result),
		cmocka_unit_test(test_peers_paging),
		cmocka_unit_test(test_matrix_paging),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_ignores),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
