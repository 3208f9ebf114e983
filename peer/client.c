/* peer/client.c - the broker client (see client.h). */
#include "peer/client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "peer/datachan.h"

static const struct nb_client_params default_params = {
	.backoff_min_ms = NB_CLIENT_BACKOFF_MIN_MS,
	.backoff_max_ms = NB_CLIENT_BACKOFF_MAX_MS,
	.connect_tries = NB_CLIENT_CONNECT_TRIES,
};

const char *nb_client_state_name(enum nb_client_state s)
{
	switch (s) {
	case NB_CLIENT_IDLE: return "idle";
	case NB_CLIENT_REGISTERING: return "registering";
	case NB_CLIENT_REGISTERED: return "registered";
	case NB_CLIENT_BACKOFF: return "backoff";
	case NB_CLIENT_REFUSED: return "refused";
	}
	return "?";
}

void nb_client_init(struct nb_client *c, const struct nb_client_params *p,
		    const struct nb_addr *broker, const uint8_t seed[32], uint64_t now)
{
	(void)now;
	memset(c, 0, sizeof(*c));
	c->p = p ? *p : default_params;
	if (c->p.backoff_min_ms == 0)
		c->p.backoff_min_ms = NB_CLIENT_BACKOFF_MIN_MS;
	if (c->p.backoff_max_ms < c->p.backoff_min_ms)
		c->p.backoff_max_ms = c->p.backoff_min_ms;
	if (c->p.connect_tries == 0)
		c->p.connect_tries = NB_CLIENT_CONNECT_TRIES;
	c->broker = *broker;
	c->backoff_ms = c->p.backoff_min_ms;
	memcpy(c->seed, seed, sizeof(c->seed));
}

/* Copy a string into a fixed array, cut to fit, always NUL-terminated. */
static void scopy(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* ---- Events ------------------------------------------------------------- */

static struct nb_client_event *push_event(struct nb_client *c, enum nb_client_event_type type,
					  int code, const char *reason)
{
	struct nb_client_event *e;

	if (c->n_ev >= NB_CLIENT_MAX_EVENTS) {
		c->events_dropped++;
		return NULL;
	}
	e = &c->ev[(c->ev_head + c->n_ev) % NB_CLIENT_MAX_EVENTS];
	c->n_ev++;
	memset(e, 0, sizeof(*e));
	e->type = type;
	e->code = code;
	if (reason != NULL)
		snprintf(e->reason, sizeof(e->reason), "%s", reason);
	return e;
}

int nb_client_next_event(struct nb_client *c, struct nb_client_event *ret)
{
	if (c->n_ev == 0)
		return 0;
	*ret = c->ev[c->ev_head];
	c->ev_head = (c->ev_head + 1) % NB_CLIENT_MAX_EVENTS;
	c->n_ev--;
	return 1;
}

/* ---- Transactions ------------------------------------------------------- */

/* A fresh tx: 64 bits of HMAC-SHA256(seed, counter), so tx values cannot be
 * predicted from the ones seen. */
static void new_tx(struct nb_client *c, char ret[NB_CTRL_TX_LEN + 1])
{
	uint8_t ctr[8], mac[32];

	for (int i = 0; i < 8; i++)
		ctr[i] = (uint8_t)(c->tx_counter >> (8 * i));
	c->tx_counter++;
	if (nb_dc_hmac_sha256(c->seed, sizeof(c->seed), ctr, sizeof(ctr), mac) != 0) {
		/* Cannot happen with a working libcrypto; stay unique anyway. */
		memset(mac, 0, sizeof(mac));
		memcpy(mac, ctr, sizeof(ctr));
	}
	nb_ctrl_hex(mac, NB_CTRL_TX_LEN / 2, ret);
}

static size_t free_txns(const struct nb_client *c)
{
	size_t n = 0;

	for (size_t i = 0; i < NB_CLIENT_MAX_TXN; i++)
		n += c->txn[i].kind == NB_CLIENT_TXN_NONE;
	return n;
}

size_t nb_client_pending(const struct nb_client *c, enum nb_client_txn_kind kind)
{
	size_t n = 0;

	for (size_t i = 0; i < NB_CLIENT_MAX_TXN; i++)
		if (c->txn[i].kind != NB_CLIENT_TXN_NONE && (kind == NB_CLIENT_TXN_NONE || c->txn[i].kind == kind))
			n++;
	return n;
}

static void cancel(struct nb_client *c, enum nb_client_txn_kind kind)
{
	for (size_t i = 0; i < NB_CLIENT_MAX_TXN; i++)
		if (c->txn[i].kind == kind)
			c->txn[i].kind = NB_CLIENT_TXN_NONE;
}

/* Encode m (its tx is set here) into a free slot. 0, -EINVAL, -ENOBUFS. */
static int txn_start(struct nb_client *c, enum nb_client_txn_kind kind, struct nb_ctrl_msg *m,
		     uint64_t now, struct nb_client_txn **ret)
{
	struct nb_client_txn *t = NULL;
	ssize_t n;

	for (size_t i = 0; i < NB_CLIENT_MAX_TXN && t == NULL; i++)
		if (c->txn[i].kind == NB_CLIENT_TXN_NONE)
			t = &c->txn[i];
	if (t == NULL)
		return -ENOBUFS;
	new_tx(c, m->tx);
	n = nb_ctrl_encode(m, t->bytes, sizeof(t->bytes));
	if (n <= 0)
		return -EINVAL;
	t->kind = kind;
	t->len = (size_t)n;
	memcpy(t->tx, m->tx, sizeof(t->tx));
	t->sends = 0;
	t->attempt = 0;
	t->rto = NB_CTRL_RTO_MS;
	t->next_send = now;
	t->give_up = now + NB_CLIENT_TXN_TIMEOUT_MS;
	t->what[0] = '\0';
	t->offset = 0;
	if (ret != NULL)
		*ret = t;
	return 0;
}

static struct nb_client_txn *find_txn(struct nb_client *c, const char *tx)
{
	for (size_t i = 0; i < NB_CLIENT_MAX_TXN; i++)
		if (c->txn[i].kind != NB_CLIENT_TXN_NONE && strcmp(c->txn[i].tx, tx) == 0)
			return &c->txn[i];
	return NULL;
}

/* ---- Registration state ------------------------------------------------- */

static int start_register(struct nb_client *c, uint64_t now)
{
	struct nb_ctrl_msg m;

	cancel(c, NB_CLIENT_TXN_REGISTER);
	cancel(c, NB_CLIENT_TXN_KEEPALIVE);
	memset(&m, 0, sizeof(m));
	m.type = NB_CTRL_REGISTER;
	m.u.reg = c->reg;
	memcpy(m.u.reg.cookie, c->cookie, sizeof(m.u.reg.cookie)); /* docs/protocol.md "challenge" */
	return txn_start(c, NB_CLIENT_TXN_REGISTER, &m, now, NULL);
}

static void set_state(struct nb_client *c, enum nb_client_state s, uint64_t now)
{
	if (c->state == s)
		return;
	nb_log_debug("client", "%s -> %s", nb_client_state_name(c->state), nb_client_state_name(s));
	c->state = s;
	switch (s) {
	case NB_CLIENT_REGISTERING:
		/* register/keepalive never run together, and are cancelled
		 * here, so a slot is free: nb_client_result()/connect()/peers()
		 * always leave one. */
		start_register(c, now);
		break;
	case NB_CLIENT_REGISTERED:
		c->next_keepalive = now + c->keepalive_ms;
		c->backoff_ms = c->p.backoff_min_ms;
		c->registrations++;
		break;
	case NB_CLIENT_BACKOFF:
		cancel(c, NB_CLIENT_TXN_REGISTER);
		cancel(c, NB_CLIENT_TXN_KEEPALIVE);
		c->retry_at = now + c->backoff_ms;
		c->backoff_ms = c->backoff_ms * 2 > c->p.backoff_max_ms ? c->p.backoff_max_ms
									: c->backoff_ms * 2;
		break;
	case NB_CLIENT_REFUSED:
	case NB_CLIENT_IDLE:
		cancel(c, NB_CLIENT_TXN_REGISTER);
		cancel(c, NB_CLIENT_TXN_KEEPALIVE);
		break;
	}
}

int nb_client_register(struct nb_client *c, const struct nb_ctrl_register *reg, uint64_t now)
{
	struct nb_ctrl_msg m;
	uint8_t tmp[NB_CTRL_MAX_DATAGRAM];

	memset(&m, 0, sizeof(m));
	m.type = NB_CTRL_REGISTER;
	memset(m.tx, '0', NB_CTRL_TX_LEN);
	m.u.reg = *reg;
	if (nb_ctrl_encode(&m, tmp, sizeof(tmp)) <= 0)
		return -EINVAL;
	c->reg = *reg;
	c->have_reg = true;
	if (c->state == NB_CLIENT_REGISTERING)
		start_register(c, now); /* new contents: a new transaction */
	else
		set_state(c, NB_CLIENT_REGISTERING, now);
	return 0; /* if no slot was free, nb_client_poll() starts it later */
}

/* ---- Requests ------------------------------------------------------------ */

static int connect_start(struct nb_client *c, const char *peer, uint8_t attempt, uint64_t now)
{
	struct nb_client_txn *t;
	struct nb_ctrl_msg m;
	int rc;

	memset(&m, 0, sizeof(m));
	m.type = NB_CTRL_CONNECT;
	snprintf(m.u.connect.id, sizeof(m.u.connect.id), "%s", c->reg.id);
	snprintf(m.u.connect.peer, sizeof(m.u.connect.peer), "%s", peer);
	rc = txn_start(c, NB_CLIENT_TXN_CONNECT, &m, now, &t);
	if (rc == 0) {
		snprintf(t->what, sizeof(t->what), "%s", peer);
		t->attempt = attempt;
	}
	return rc;
}

int nb_client_connect(struct nb_client *c, const char *peer, uint64_t now)
{
	if (c->state != NB_CLIENT_REGISTERED)
		return -EAGAIN;
	if (peer == NULL || strlen(peer) > NB_CTRL_ID_MAX)
		return -EINVAL;
	if (free_txns(c) <= 1)
		return -ENOBUFS; /* one slot stays free for register/keepalive */
	return connect_start(c, peer, 0, now);
}

/* A request about a session (result, relayed): m filled but for its tx;
 * the transaction remembers the session for its outcome event. */
static int session_request(struct nb_client *c, enum nb_client_txn_kind kind, struct nb_ctrl_msg *m,
			   const char *session, uint64_t now)
{
	struct nb_client_txn *t;
	int rc;

	if (free_txns(c) <= 1)
		return -ENOBUFS; /* one slot stays free for register/keepalive */
	rc = txn_start(c, kind, m, now, &t);
	if (rc == 0)
		snprintf(t->what, sizeof(t->what), "%s", session);
	return rc;
}

int nb_client_result(struct nb_client *c, const struct nb_ctrl_result *r, uint64_t now)
{
	struct nb_ctrl_msg m;

	memset(&m, 0, sizeof(m));
	m.type = NB_CTRL_RESULT;
	m.u.result = *r;
	return session_request(c, NB_CLIENT_TXN_RESULT, &m, r->session, now);
}

int nb_client_relayed(struct nb_client *c, const struct nb_ctrl_relayed *r, uint64_t now)
{
	struct nb_ctrl_msg m;

	memset(&m, 0, sizeof(m));
	m.type = NB_CTRL_RELAYED;
	m.u.relayed = *r;
	return session_request(c, NB_CLIENT_TXN_RELAYED, &m, r->session, now);
}

static int start_list(struct nb_client *c, enum nb_client_txn_kind kind, uint32_t offset, uint64_t now)
{
	struct nb_client_txn *t;
	struct nb_ctrl_msg m;
	int rc;

	memset(&m, 0, sizeof(m));
	m.type = kind == NB_CLIENT_TXN_MATRIX ? NB_CTRL_MATRIX : NB_CTRL_PEERS;
	m.u.query.offset = offset;
	memcpy(m.u.query.admin, c->admin, sizeof(m.u.query.admin));
	/* The broker answers with a page no longer than the query: pad it to
	 * the largest message that fits a sealed frame (docs/protocol.md
	 * "peers"). The tx is drawn by txn_start, always 16 hex, so the length
	 * is known here. */
	{
		uint8_t tmp[NB_CTRL_MAX_DATAGRAM];
		ssize_t n;
		snprintf(m.tx, sizeof(m.tx), "%s", "0000000000000000");
		n = nb_ctrl_encode(&m, tmp, sizeof(tmp));
		if (n > 0 && (size_t)n + 9 < NB_CLIENT_MAX_MSG) /* 9: ,"pad":"" */
			m.u.query.pad = (uint16_t)(NB_CLIENT_MAX_MSG - (size_t)n - 9);
	}
	rc = txn_start(c, kind, &m, now, &t);
	if (rc == 0)
		t->offset = offset;
	return rc;
}

static int list_begin(struct nb_client *c, enum nb_client_txn_kind kind, uint64_t now)
{
	if (nb_client_pending(c, NB_CLIENT_TXN_PEERS) > 0 || nb_client_pending(c, NB_CLIENT_TXN_MATRIX) > 0)
		return -EBUSY;
	if (free_txns(c) <= 1)
		return -ENOBUFS;
	c->peers_pages = 0;
	return start_list(c, kind, 0, now);
}

int nb_client_peers(struct nb_client *c, uint64_t now)
{
	return list_begin(c, NB_CLIENT_TXN_PEERS, now);
}

int nb_client_matrix(struct nb_client *c, uint64_t now)
{
	return list_begin(c, NB_CLIENT_TXN_MATRIX, now);
}

int nb_client_verify(struct nb_client *c, const struct nb_addr *external, bool tcp, uint64_t now)
{
	struct nb_client_txn *t;
	struct nb_ctrl_msg m;
	int rc;

	if (external == NULL || external->family == NB_AF_NONE || external->port == 0)
		return -EINVAL;
	if (nb_client_pending(c, NB_CLIENT_TXN_VERIFY) > 0)
		return -EBUSY;
	memset(&m, 0, sizeof(m));
	m.type = NB_CTRL_VERIFY;
	m.u.verify.external = *external;
	m.u.verify.tcp = tcp;
	rc = txn_start(c, NB_CLIENT_TXN_VERIFY, &m, now, &t);
	if (rc == 0)
		t->give_up = now + NB_CLIENT_VERIFY_TIMEOUT_MS;
	return rc;
}

int nb_client_verify_hook(void *arg, const struct nb_addr *external, uint64_t now, char *why, size_t why_len)
{
	int rc = nb_client_verify(arg, external, false, now);

	if (rc != 0 && rc != -EBUSY)
		snprintf(why, why_len, "could not ask the broker to probe the mapping");
	return rc;
}

/* ---- Timers ---------------------------------------------------------------- */

static void txn_failed(struct nb_client *c, struct nb_client_txn *t, uint64_t now)
{
	struct nb_client_event *e;
	char why[96];
	enum nb_client_txn_kind kind = t->kind;

	snprintf(why, sizeof(why), "no answer from the broker within %u ms",
		 (unsigned)NB_CLIENT_TXN_TIMEOUT_MS);
	t->kind = NB_CLIENT_TXN_NONE;
	switch (kind) {
	case NB_CLIENT_TXN_REGISTER:
		push_event(c, NB_CLIENT_EV_REGISTER_FAILED, 0, why);
		set_state(c, NB_CLIENT_BACKOFF, now);
		break;
	case NB_CLIENT_TXN_KEEPALIVE:
		push_event(c, NB_CLIENT_EV_LOST, 0, "the broker did not answer a keepalive");
		set_state(c, NB_CLIENT_REGISTERING, now);
		break;
	case NB_CLIENT_TXN_CONNECT: {
		/* No reply at all, not a refusal: ask again, as a new request (the
		 * broker's reply cache has forgotten the old one by now). The slot
		 * just freed takes it, so the one for register/keepalive stays. */
		char peer[NB_CTRL_ID_MAX + 1];
		scopy(peer, sizeof(peer), t->what);
		if (t->attempt + 1u < c->p.connect_tries &&
		    connect_start(c, peer, (uint8_t)(t->attempt + 1), now) == 0) {
			nb_log_debug("client", "connect %s: no reply; asking again", peer);
			break;
		}
		snprintf(why, sizeof(why), "no answer from the broker to %u requests of %u ms each",
			 (unsigned)t->attempt + 1u, (unsigned)NB_CLIENT_TXN_TIMEOUT_MS);
		e = push_event(c, NB_CLIENT_EV_CONNECT_FAILED, 0, why);
		if (e != NULL)
			scopy(e->peer, sizeof(e->peer), peer);
		break;
	}
	case NB_CLIENT_TXN_RESULT:
	case NB_CLIENT_TXN_RELAYED:
		e = push_event(c, kind == NB_CLIENT_TXN_RESULT ? NB_CLIENT_EV_RESULT_DONE
							      : NB_CLIENT_EV_RELAYED_DONE,
			       -1, why);
		if (e != NULL)
			scopy(e->session, sizeof(e->session), t->what);
		break;
	case NB_CLIENT_TXN_PEERS:
	case NB_CLIENT_TXN_MATRIX:
		push_event(c, NB_CLIENT_EV_PEERS_FAILED, 0, why);
		break;
	case NB_CLIENT_TXN_VERIFY:
		snprintf(why, sizeof(why), "no probe from the broker within %u ms",
			 (unsigned)NB_CLIENT_VERIFY_TIMEOUT_MS);
		push_event(c, NB_CLIENT_EV_VERIFY_FAILED, 0, why);
		break;
	case NB_CLIENT_TXN_NONE:
		break;
	}
}

static int emit(struct nb_client *c, const uint8_t *bytes, size_t len, struct nb_client_tx *out)
{
	out->to = c->broker;
	out->bytes = bytes;
	out->len = len;
	return 1;
}

int nb_client_poll(struct nb_client *c, uint64_t now, struct nb_client_tx *out)
{
	for (size_t i = 0; i < NB_CLIENT_MAX_TXN; i++)
		if (c->txn[i].kind != NB_CLIENT_TXN_NONE && now >= c->txn[i].give_up)
			txn_failed(c, &c->txn[i], now);
	if (c->state == NB_CLIENT_BACKOFF && now >= c->retry_at)
		set_state(c, NB_CLIENT_REGISTERING, now);
	if (c->state == NB_CLIENT_REGISTERING && nb_client_pending(c, NB_CLIENT_TXN_REGISTER) == 0)
		start_register(c, now); /* set_state() found no free slot */
	if (c->state == NB_CLIENT_REGISTERED && now >= c->next_keepalive &&
	    nb_client_pending(c, NB_CLIENT_TXN_KEEPALIVE) == 0) {
		struct nb_ctrl_msg m;
		memset(&m, 0, sizeof(m));
		m.type = NB_CTRL_KEEPALIVE;
		snprintf(m.u.keepalive.id, sizeof(m.u.keepalive.id), "%s", c->reg.id);
		if (txn_start(c, NB_CLIENT_TXN_KEEPALIVE, &m, now, NULL) == 0)
			c->next_keepalive = UINT64_MAX; /* set again by the ack */
		else
			c->next_keepalive = now + NB_CTRL_RTO_MS; /* no slot: try again soon */
	}
	if (c->n_reply > 0) {
		struct nb_ctrl_msg m;
		ssize_t n;
		memset(&m, 0, sizeof(m));
		m.type = NB_CTRL_ACK;
		memcpy(m.tx, c->reply[0].tx, sizeof(m.tx));
		c->n_reply--;
		memmove(&c->reply[0], &c->reply[1], c->n_reply * sizeof(c->reply[0]));
		n = nb_ctrl_encode(&m, c->out, sizeof(c->out));
		if (n > 0)
			return emit(c, c->out, (size_t)n, out);
	}
	for (size_t i = 0; i < NB_CLIENT_MAX_TXN; i++) {
		struct nb_client_txn *t = &c->txn[i];
		unsigned tries = t->kind == NB_CLIENT_TXN_VERIFY ? NB_CLIENT_VERIFY_TRIES : NB_CTRL_MAX_TRIES;
		if (t->kind == NB_CLIENT_TXN_NONE || t->sends >= tries || now < t->next_send)
			continue;
		if (t->sends == 0)
			t->give_up = now + (t->kind == NB_CLIENT_TXN_VERIFY ? NB_CLIENT_VERIFY_TIMEOUT_MS
									   : NB_CLIENT_TXN_TIMEOUT_MS);
		t->sends++;
		/* RFC 8489 §6.2.1: the RTO doubles after each retransmission;
		 * after the last one only the final wait (the give-up) is left. */
		t->next_send = t->sends >= tries ? UINT64_MAX : now + t->rto;
		t->rto *= 2;
		return emit(c, t->bytes, t->len, out);
	}
	return 0;
}

uint64_t nb_client_deadline(const struct nb_client *c)
{
	uint64_t d = UINT64_MAX;

	if (c->n_reply > 0)
		return 0;
	if (c->state == NB_CLIENT_BACKOFF)
		d = c->retry_at;
	if (c->state == NB_CLIENT_REGISTERING && nb_client_pending(c, NB_CLIENT_TXN_REGISTER) == 0)
		return 0;
	if (c->state == NB_CLIENT_REGISTERED && nb_client_pending(c, NB_CLIENT_TXN_KEEPALIVE) == 0 &&
	    c->next_keepalive < d)
		d = c->next_keepalive;
	for (size_t i = 0; i < NB_CLIENT_MAX_TXN; i++) {
		const struct nb_client_txn *t = &c->txn[i];
		if (t->kind == NB_CLIENT_TXN_NONE)
			continue;
		if (t->sends < NB_CTRL_MAX_TRIES && t->next_send < d)
			d = t->next_send;
		if (t->give_up < d)
			d = t->give_up;
	}
	return d;
}

/* ---- Input ------------------------------------------------------------------ */

static bool plan_seen(struct nb_client *c, const char *tx)
{
	for (size_t i = 0; i < NB_CLIENT_PLAN_MEMORY; i++)
		if (strcmp(c->plan_tx[i], tx) == 0)
			return true;
	return false;
}

/* A request the broker pushed (a plan, a relayed address): acknowledged
 * every time (our ack may have been lost), reported once (by its tx).
 * Returns the event to fill, or NULL for a copy already reported. */
static struct nb_client_event *on_pushed(struct nb_client *c, const struct nb_ctrl_msg *m,
					 enum nb_client_event_type type)
{
	struct nb_client_event *e;

	if (c->n_reply < NB_CLIENT_MAX_REPLIES) {
		memcpy(c->reply[c->n_reply].tx, m->tx, sizeof(m->tx));
		c->n_reply++;
	}
	if (plan_seen(c, m->tx))
		return NULL;
	memcpy(c->plan_tx[c->plan_tx_next], m->tx, sizeof(m->tx));
	c->plan_tx_next = (c->plan_tx_next + 1) % NB_CLIENT_PLAN_MEMORY;
	e = push_event(c, type, 0, NULL);
	if (e != NULL)
		e->pushed = true;
	return e;
}

static void on_pushed_plan(struct nb_client *c, const struct nb_ctrl_msg *m)
{
	struct nb_client_event *e = on_pushed(c, m, NB_CLIENT_EV_PLAN);

	if (e != NULL)
		e->u.plan = m->u.plan;
}

/* The other side's relayed address (the plans' tx memory serves for both). */
static void on_pushed_relayed(struct nb_client *c, const struct nb_ctrl_msg *m)
{
	struct nb_client_event *e = on_pushed(c, m, NB_CLIENT_EV_RELAYED);

	if (e != NULL)
		e->u.relayed = m->u.relayed;
}

static int on_reply(struct nb_client *c, struct nb_client_txn *t, const struct nb_ctrl_msg *m,
		    uint64_t now)
{
	struct nb_client_event *e;
	const char *reason = m->type == NB_CTRL_ERROR ? m->u.error.reason : NULL;
	int code = m->type == NB_CTRL_ERROR ? m->u.error.code : 0;
	enum nb_client_txn_kind kind = t->kind;

	switch (kind) {
	case NB_CLIENT_TXN_REGISTER:
		if (m->type == NB_CTRL_REGISTERED) {
			t->kind = NB_CLIENT_TXN_NONE;
			c->challenges = 0;
			c->registered = m->u.registered;
			c->keepalive_ms = (m->u.registered.keepalive_s ? m->u.registered.keepalive_s
								       : NB_CLIENT_DEFAULT_KEEPALIVE_S) *
					  1000u;
			set_state(c, NB_CLIENT_REGISTERED, now);
			e = push_event(c, NB_CLIENT_EV_REGISTERED, 0, NULL);
			if (e != NULL)
				e->u.registered = m->u.registered;
			return 0;
		}
		if (m->type == NB_CTRL_CHALLENGE) {
			/* Show we receive: the same register again, with the cookie. */
			t->kind = NB_CLIENT_TXN_NONE;
			scopy(c->cookie, sizeof(c->cookie), m->u.challenge.cookie);
			if (++c->challenges <= NB_CLIENT_MAX_CHALLENGES) {
				start_register(c, now);
				return 0;
			}
			c->challenges = 0;
			push_event(c, NB_CLIENT_EV_REGISTER_FAILED, 0, "the broker keeps challenging the register");
			set_state(c, NB_CLIENT_BACKOFF, now);
			return 0;
		}
		if (m->type != NB_CTRL_ERROR)
			break;
		t->kind = NB_CLIENT_TXN_NONE;
		push_event(c, NB_CLIENT_EV_REGISTER_FAILED, code, reason);
		/* 400, 401: retrying would not help. 409: the name is held by
		 * another key; waiting to grab it the moment its holder leaves
		 * would be the takeover the binding prevents. */
		if (code == NB_CTRL_ERR_BAD_REQUEST || code == NB_CTRL_ERR_UNAUTHORIZED ||
		    code == NB_CTRL_ERR_CONFLICT)
			set_state(c, NB_CLIENT_REFUSED, now);
		else
			set_state(c, NB_CLIENT_BACKOFF, now);
		return 0;
	case NB_CLIENT_TXN_KEEPALIVE:
		if (m->type == NB_CTRL_ACK) {
			t->kind = NB_CLIENT_TXN_NONE;
			c->next_keepalive = now + c->keepalive_ms;
			return 0;
		}
		if (m->type != NB_CTRL_ERROR)
			break;
		/* 404: the registration expired (or the broker restarted and
		 * forgot it); any other refusal: the same cure. */
		t->kind = NB_CLIENT_TXN_NONE;
		push_event(c, NB_CLIENT_EV_LOST, code, reason);
		set_state(c, NB_CLIENT_REGISTERING, now);
		return 0;
	case NB_CLIENT_TXN_CONNECT:
		if (m->type == NB_CTRL_PLAN) {
			t->kind = NB_CLIENT_TXN_NONE;
			e = push_event(c, NB_CLIENT_EV_PLAN, 0, NULL);
			if (e != NULL)
				e->u.plan = m->u.plan;
			return 0;
		}
		if (m->type != NB_CTRL_ERROR)
			break;
		t->kind = NB_CLIENT_TXN_NONE;
		e = push_event(c, NB_CLIENT_EV_CONNECT_FAILED, code, reason);
		if (e != NULL)
			scopy(e->peer, sizeof(e->peer), t->what);
		return 0;
	case NB_CLIENT_TXN_RESULT:
	case NB_CLIENT_TXN_RELAYED:
		if (m->type != NB_CTRL_ACK && m->type != NB_CTRL_ERROR)
			break;
		t->kind = NB_CLIENT_TXN_NONE;
		e = push_event(c, kind == NB_CLIENT_TXN_RESULT ? NB_CLIENT_EV_RESULT_DONE
							       : NB_CLIENT_EV_RELAYED_DONE,
			       code, reason);
		if (e != NULL)
			scopy(e->session, sizeof(e->session), t->what);
		return 0;
	case NB_CLIENT_TXN_PEERS:
	case NB_CLIENT_TXN_MATRIX: {
		bool matrix = kind == NB_CLIENT_TXN_MATRIX;
		uint32_t total, offset;
		size_t n;
		if (m->type == NB_CTRL_ERROR) {
			t->kind = NB_CLIENT_TXN_NONE;
			push_event(c, NB_CLIENT_EV_PEERS_FAILED, code, reason);
			return 0;
		}
		if (m->type != (matrix ? NB_CTRL_MATRIX_LIST : NB_CTRL_PEER_LIST))
			break;
		total = matrix ? m->u.matrix_list.total : m->u.peer_list.total;
		offset = matrix ? m->u.matrix_list.offset : m->u.peer_list.offset;
		n = matrix ? m->u.matrix_list.n_pairs : m->u.peer_list.n_peers;
		if (offset != t->offset)
			break;
		t->kind = NB_CLIENT_TXN_NONE;
		c->peers_pages++;
		e = push_event(c, matrix ? NB_CLIENT_EV_MATRIX_PAGE : NB_CLIENT_EV_PEERS_PAGE, 0, NULL);
		if (e != NULL && matrix)
			e->u.matrix = m->u.matrix_list;
		else if (e != NULL)
			e->u.page = m->u.peer_list;
		if ((uint64_t)offset + n >= total) {
			push_event(c, NB_CLIENT_EV_PEERS_DONE, 0, NULL);
		} else if (n == 0) {
			push_event(c, NB_CLIENT_EV_PEERS_FAILED, 0, "the broker sent an empty page");
		} else if (c->peers_pages >= NB_CLIENT_MAX_PAGES) {
			push_event(c, NB_CLIENT_EV_PEERS_FAILED, 0, "too many pages");
		} else if (start_list(c, kind, offset + (uint32_t)n, now) != 0) {
			push_event(c, NB_CLIENT_EV_PEERS_FAILED, 0, "no free transaction");
		}
		return 0;
	}
	case NB_CLIENT_TXN_VERIFY:
		if (m->type != NB_CTRL_ERROR)
			break;
		t->kind = NB_CLIENT_TXN_NONE;
		push_event(c, NB_CLIENT_EV_VERIFY_FAILED, code, reason);
		return 0;
	case NB_CLIENT_TXN_NONE:
		break;
	}
	c->rx_dropped++; /* a reply of the wrong type: wait for the right one */
	return -1;
}

int nb_client_input(struct nb_client *c, const uint8_t *buf, size_t len, const struct nb_addr *from,
		    uint64_t now)
{
	struct nb_ctrl_msg m;
	struct nb_client_txn *t;

	if (nb_ctrl_decode(&m, buf, len) < 0) {
		c->rx_dropped++;
		return -1;
	}
	t = find_txn(c, m.tx);
	/* The broker's probe of our mapping comes from another of its
	 * addresses; the unguessable tx of our verify is what matches it. */
	if (m.type == NB_CTRL_PROBE && t != NULL && t->kind == NB_CLIENT_TXN_VERIFY) {
		struct nb_client_event *e;
		t->kind = NB_CLIENT_TXN_NONE;
		e = push_event(c, NB_CLIENT_EV_VERIFIED, 0, NULL);
		if (e != NULL) {
			scopy(e->proof, sizeof(e->proof), m.u.probe.proof);
			e->from = *from;
		}
		return 0;
	}
	if (!nb_addr_equal(from, &c->broker)) {
		c->rx_dropped++;
		return -1;
	}
	switch (m.type) {
	case NB_CTRL_PLAN:
		if (t != NULL && t->kind == NB_CLIENT_TXN_CONNECT)
			return on_reply(c, t, &m, now);
		on_pushed_plan(c, &m);
		return 0;
	case NB_CTRL_RELAYED:
		on_pushed_relayed(c, &m);
		return 0;
	case NB_CTRL_REGISTERED:
	case NB_CTRL_ACK:
	case NB_CTRL_ERROR:
	case NB_CTRL_PEER_LIST:
	case NB_CTRL_MATRIX_LIST:
	case NB_CTRL_CHALLENGE:
		if (t != NULL)
			return on_reply(c, t, &m, now);
		break;
	default:
		break;
	}
	c->rx_dropped++;
	return -1;
}
