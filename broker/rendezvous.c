/* broker/rendezvous.c - the control-message engine: keyed requests in, replies, pushed plans and events out. */
#include "broker/rendezvous.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "broker/connectivity.h"
#include "proto/nat.h"
#include "proto/turn.h"

/* ---- State ------------------------------------------------------------------ */

/* One side's report (result message). Side 0 is the asker (a), 1 the other (b). */
struct rv_side {
	bool reported;
	enum nb_ctrl_outcome outcome;
	enum nb_path path;
	uint32_t ms;
	uint8_t family; /* connected: of the address that answered (4, 6; 0 unknown) */
};

/* What the matrix needs of a session's end. */
struct rv_outcome {
	struct rv_side side[2];
	uint64_t ends_at;     /* no report by now counts as failed */
	uint32_t deadline_ms; /* the plans' deadline */
	uint8_t plan_family;  /* of the plans' first candidates (4, 6) */
	struct nb_ctrl_birthday birthday; /* figures the sides reported (merged) */
};

/* The push of the other side's plan: one state machine per session,
 * changed only by push_set_state(). */
enum rv_push {
	PUSH_IDLE = 0, /* not started (a slot being filled) */
	PUSH_PENDING,  /* sent; retransmitted until ack or give-up */
	PUSH_ACKED,
	PUSH_REFUSED, /* the peer answered with an error */
	PUSH_GAVE_UP, /* no answer after NB_CTRL_MAX_TRIES sends */
};

struct rv_session {
	char id[NB_CTRL_SESSION_LEN + 1];
	uint64_t id_hash, tx_hash;
	char a[NB_CTRL_ID_MAX + 1], b[NB_CTRL_ID_MAX + 1];
	uint8_t key_a[NB_KEY_LEN], key_b[NB_KEY_LEN]; /* the holders' keys when it began */
	enum nb_path predicted;
	enum nb_role role_a, role_b;
	uint64_t created;
	struct rv_outcome out;
	enum rv_push push;
	unsigned tries; /* sends of the pushed plan so far */
	uint64_t next_at;
	struct nb_addr push_to;
	char push_tx[NB_CTRL_TX_LEN + 1];
	struct nb_ctrl_plan plan_b; /* re-encoded for each retransmission: same bytes */
	uint32_t pair;              /* its matrix entry (check pair's session before use) */
	/* The push in flight: b's plan first; later, perhaps, the relayed
	 * address of the side that allocated, to the other side. */
	enum nb_ctrl_type push_type; /* NB_CTRL_PLAN or NB_CTRL_RELAYED */
	bool push_to_a;              /* the push goes to a (else b) */
	bool relay_by_a;             /* a allocates on the relay (else b) */
	bool relayed_queued;         /* relayed waits for the plan's push to end */
	struct nb_ctrl_relayed relayed;
};

/* One matrix entry: an unordered pair, as its latest session left it. */
struct rv_pair {
	char a[NB_CTRL_ID_MAX + 1], b[NB_CTRL_ID_MAX + 1]; /* a asked */
	char session[NB_CTRL_SESSION_LEN + 1];
	uint64_t hash;
	enum nb_path predicted;
	enum nb_role role_a, role_b;
	char reason[NB_CTRL_REASON_MAX + 1]; /* the plan's */
	struct rv_outcome out;
};

/* One remembered reply. The cache is a ring in arrival order: with one
 * lifetime for all, the oldest entry is also the first to expire. A
 * retransmission is the same bytes from the same source (docs/protocol.md),
 * so a hit needs the request's hash too: another request reusing a tx is
 * not answered with the first one's reply, and another key at the same
 * address (two peers behind one socket, or a replayed frame under another
 * session) is not either. Only sealed requests are cached. */
struct rv_cached {
	struct nb_addr from;
	uint8_t key[NB_KEY_LEN]; /* the requester's */
	char tx[NB_CTRL_TX_LEN + 1];
	uint64_t hash;    /* of (from, tx): the index key */
	uint64_t request; /* of the request's bytes */
	uint64_t expires;
	uint16_t len;
	uint8_t *data; /* len bytes, malloc'd */
};

struct nb_rendezvous {
	struct nb_rendezvous_config cfg;
	struct nb_registry *reg;

	struct rv_session *sess;
	struct nb_slots sess_slots;
	struct nb_hidx sess_by_id;
	struct nb_hidx sess_by_tx; /* pending pushes only */
	struct nb_ilist sess_age;  /* creation order */
	struct nb_ilist pushing;   /* sessions whose push is pending */

	struct rv_pair *pairs;
	struct nb_slots pair_slots;
	struct nb_hidx pair_by_key;
	struct nb_rank pair_rank; /* paging order */
	struct nb_ilist pair_lru; /* least recently tried first */

	struct rv_cached *cache;
	size_t cache_head, cache_n;
	struct nb_hidx cache_by_key;

	uint64_t list_tat_us;   /* GCRA: theoretical arrival time of the next list query */
	uint64_t verify_tat_us; /* ... and of the next probe */

	struct nb_rendezvous_stats st;
	uint64_t unix_s; /* nb_rendezvous_set_context() */
	bool via_tcp;
	uint32_t rtt_next; /* nb_rendezvous_set_rtt(): for the next handle_keyed() only */
	struct nb_ctrl_msg in, rep, push; /* large: kept off the stack */
	char key_text[NB_KEY_TEXT_LEN + 1]; /* emit()'s scratch */
};

/* ---- Configuration ---------------------------------------------------------- */

void nb_rendezvous_config_default(struct nb_rendezvous_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_peers = NB_REGISTRY_DEFAULT_MAX;
	cfg->max_sessions = NB_RENDEZVOUS_DEFAULT_MAX_SESSIONS;
	cfg->max_pairs = NB_RENDEZVOUS_DEFAULT_MAX_PAIRS;
	cfg->cache_entries = NB_RENDEZVOUS_DEFAULT_CACHE_ENTRIES;
	cfg->cache_ms = NB_RENDEZVOUS_CACHE_MS;
	cfg->keepalive_s = NB_RENDEZVOUS_DEFAULT_KEEPALIVE_S;
	cfg->deadline_ms = NB_RENDEZVOUS_DEFAULT_DEADLINE_MS;
	cfg->prime_delay_ms = NB_RENDEZVOUS_DEFAULT_PRIME_DELAY_MS;
	cfg->list_rate = NB_RENDEZVOUS_DEFAULT_LIST_RATE;
	cfg->verify_rate = NB_RENDEZVOUS_DEFAULT_VERIFY_RATE;
	cfg->require_cookie = false;
	cfg->public_list = false;
	cfg->relay_cred_s = NB_RENDEZVOUS_DEFAULT_RELAY_CRED_S;
	cfg->relay_extra_ms = NB_RENDEZVOUS_DEFAULT_RELAY_EXTRA_MS;
	cfg->birthday.has = true;
	cfg->birthday.sockets = NB_RENDEZVOUS_DEFAULT_BDAY_SOCKETS;
	cfg->birthday.probes = NB_RENDEZVOUS_DEFAULT_BDAY_PROBES;
	cfg->birthday.rate = NB_RENDEZVOUS_DEFAULT_BDAY_RATE;
	cfg->rtt_timing = true;
}

/* "" or 1..NB_CTRL_TOKEN_MAX printable ASCII, NUL-terminated in its buffer. */
static bool token_ok(const char *t)
{
	size_t tl = strnlen(t, NB_CTRL_TOKEN_MAX + 1);

	if (tl == NB_CTRL_TOKEN_MAX + 1)
		return false; /* not NUL-terminated */
	for (size_t i = 0; i < tl; i++)
		if (t[i] < 0x20 || t[i] > 0x7E)
			return false;
	return true;
}

static bool config_ok(const struct nb_rendezvous_config *c)
{
	if (!token_ok(c->token) || !token_ok(c->admin_token))
		return false;
	if (c->n_relays > NB_RENDEZVOUS_MAX_RELAYS ||
	    (c->n_relays > 0 && (c->relay_secret_len < 1 ||
				 c->relay_secret_len > NB_RENDEZVOUS_MAX_SECRET ||
				 c->relay_cred_s < 60 || c->relay_cred_s > 86400 ||
				 c->relay_extra_ms > NB_CTRL_DEADLINE_MAX_MS)))
		return false;
	if (c->birthday.has &&
	    (c->birthday.sockets < 1 || c->birthday.sockets > NB_CTRL_BDAY_SOCKETS_MAX ||
	     c->birthday.probes < 1 || c->birthday.probes > NB_CTRL_BDAY_PROBES_MAX ||
	     c->birthday.rate < 1 || c->birthday.rate > NB_CTRL_BDAY_RATE_MAX))
		return false;
	return c->max_peers >= 1 && c->max_peers <= NB_REGISTRY_MAX_MAX && c->max_sessions >= 1 &&
	       c->max_sessions <= NB_RENDEZVOUS_MAX_SESSIONS_MAX && c->max_pairs >= 1 &&
	       c->max_pairs <= NB_RENDEZVOUS_MAX_SESSIONS_MAX && c->cache_entries >= 1 &&
	       c->cache_entries <= NB_RENDEZVOUS_CACHE_ENTRIES_MAX &&
	       c->cache_ms >= NB_RENDEZVOUS_CACHE_MS && c->keepalive_s >= NB_CTRL_KEEPALIVE_MIN_S &&
	       c->keepalive_s <= NB_CTRL_KEEPALIVE_MAX_S &&
	       c->deadline_ms >= NB_CTRL_DEADLINE_MIN_MS && c->deadline_ms <= NB_CTRL_DEADLINE_MAX_MS &&
	       c->prime_delay_ms <= NB_CTRL_DELAY_MAX_MS && c->list_rate <= 1000000 &&
	       c->verify_rate <= 1000000;
}

int nb_rendezvous_new(const struct nb_rendezvous_config *cfg, struct nb_rendezvous **ret)
{
	struct nb_registry_config rc;
	struct nb_rendezvous *rv;

	if (cfg == NULL || ret == NULL || !config_ok(cfg))
		return -EINVAL;
	rv = calloc(1, sizeof(*rv));
	if (rv == NULL)
		return -ENOMEM;
	rv->cfg = *cfg;
	memset(&rc, 0, sizeof(rc));
	rc.max_peers = cfg->max_peers;
	rc.expires_s = cfg->keepalive_s * NB_RENDEZVOUS_EXPIRES_FACTOR;
	memcpy(rc.hash_key, cfg->hash_key, sizeof(rc.hash_key));
	if (nb_registry_new(&rc, &rv->reg) != 0)
		goto fail;
	rv->sess = calloc(cfg->max_sessions, sizeof(*rv->sess));
	rv->pairs = calloc(cfg->max_pairs, sizeof(*rv->pairs));
	rv->cache = calloc(cfg->cache_entries, sizeof(*rv->cache));
	if (rv->sess == NULL || rv->pairs == NULL || rv->cache == NULL ||
	    nb_slots_init(&rv->sess_slots, cfg->max_sessions) != 0 ||
	    nb_hidx_init(&rv->sess_by_id, cfg->max_sessions) != 0 ||
	    nb_hidx_init(&rv->sess_by_tx, cfg->max_sessions) != 0 ||
	    nb_ilist_init(&rv->sess_age, cfg->max_sessions) != 0 ||
	    nb_ilist_init(&rv->pushing, cfg->max_sessions) != 0 ||
	    nb_slots_init(&rv->pair_slots, cfg->max_pairs) != 0 ||
	    nb_hidx_init(&rv->pair_by_key, cfg->max_pairs) != 0 ||
	    nb_rank_init(&rv->pair_rank, cfg->max_pairs) != 0 ||
	    nb_ilist_init(&rv->pair_lru, cfg->max_pairs) != 0 ||
	    nb_hidx_init(&rv->cache_by_key, cfg->cache_entries) != 0)
		goto fail;
	*ret = rv;
	return 0;
fail:
	nb_rendezvous_free(rv);
	return -ENOMEM;
}

void nb_rendezvous_free(struct nb_rendezvous *rv)
{
	if (rv == NULL)
		return;
	nb_registry_free(rv->reg);
	if (rv->cache != NULL)
		for (size_t i = 0; i < rv->cache_n; i++)
			free(rv->cache[(rv->cache_head + i) % rv->cfg.cache_entries].data);
	free(rv->cache);
	free(rv->sess);
	free(rv->pairs);
	nb_slots_free(&rv->sess_slots);
	nb_hidx_free(&rv->sess_by_id);
	nb_hidx_free(&rv->sess_by_tx);
	nb_ilist_free(&rv->sess_age);
	nb_ilist_free(&rv->pushing);
	nb_slots_free(&rv->pair_slots);
	nb_hidx_free(&rv->pair_by_key);
	nb_rank_free(&rv->pair_rank);
	nb_ilist_free(&rv->pair_lru);
	nb_hidx_free(&rv->cache_by_key);
	free(rv);
}

/* ---- Small helpers ------------------------------------------------------------ */

static void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}
#define COPY(dst, src) copy_str((dst), sizeof(dst), (src))

static void emit(struct nb_rendezvous *rv, struct nb_rendezvous_event *ev)
{
	if (ev->id == NULL)
		ev->id = "";
	if (ev->peer == NULL)
		ev->peer = "";
	if (ev->session == NULL)
		ev->session = "";
	if (ev->reason == NULL)
		ev->reason = "";
	if (ev->key != NULL) {
		nb_key_to_text(ev->key, rv->key_text);
		ev->key_text = rv->key_text;
	} else {
		ev->key_text = "";
	}
	if (rv->cfg.event_cb != NULL)
		rv->cfg.event_cb(rv->cfg.event_arg, ev);
}

/* Constant-time equality of two NUL-terminated strings of at most max bytes. */
static bool secret_equal(const char *a, const char *b, size_t max)
{
	size_t la = strnlen(a, max), lb = strnlen(b, max);
	unsigned char d = (unsigned char)(la != lb);

	for (size_t i = 0; i < max; i++) {
		unsigned char x = i < la ? (unsigned char)a[i] : 0;
		unsigned char y = i < lb ? (unsigned char)b[i] : 0;
		d |= (unsigned char)(x ^ y);
	}
	return d == 0;
}

/* A source we can answer: not port 0, unspecified or multicast. */
static bool source_ok(const struct nb_addr *a)
{
	return (a->family == NB_AF_INET || a->family == NB_AF_INET6) && a->port != 0 &&
	       !nb_addr_is_unspecified(a) && !nb_addr_is_multicast(a);
}

static void set_header(struct nb_ctrl_msg *m, enum nb_ctrl_type t, const char *tx)
{
	memset(m, 0, sizeof(*m));
	m->type = t;
	COPY(m->tx, tx);
}

__attribute__((format(printf, 4, 5))) static void set_error(struct nb_ctrl_msg *m, const char *tx,
							    uint16_t code, const char *fmt, ...)
{
	va_list ap;

	set_header(m, NB_CTRL_ERROR, tx);
	m->u.error.code = code;
	va_start(ap, fmt);
	vsnprintf(m->u.error.reason, sizeof(m->u.error.reason), fmt, ap);
	va_end(ap);
}

/* ---- Reply cache ----------------------------------------------------------------- */

static uint64_t cache_hash(const struct nb_rendezvous *rv, const struct nb_addr *from,
			   const char *tx)
{
	uint8_t key[1 + 2 + 16 + NB_CTRL_TX_LEN];

	key[0] = from->family;
	key[1] = (uint8_t)(from->port >> 8);
	key[2] = (uint8_t)from->port;
	memcpy(key + 3, from->ip, 16);
	memcpy(key + 19, tx, NB_CTRL_TX_LEN);
	return nb_siphash(rv->cfg.hash_key, key, sizeof(key));
}

static void cache_pop(struct nb_rendezvous *rv)
{
	struct rv_cached *c = &rv->cache[rv->cache_head];

	nb_hidx_del(&rv->cache_by_key, c->hash, (uint32_t)rv->cache_head);
	free(c->data);
	memset(c, 0, sizeof(*c));
	rv->cache_head = (rv->cache_head + 1) % rv->cfg.cache_entries;
	rv->cache_n--;
}

static const struct rv_cached *cache_find(const struct nb_rendezvous *rv,
					  const struct nb_addr *from, const uint8_t *key,
					  const char *tx, uint64_t request, uint64_t now)
{
	uint64_t h = cache_hash(rv, from, tx);

	for (uint32_t s = nb_hidx_first(&rv->cache_by_key, h); s != NB_SLOT_NONE;
	     s = nb_hidx_next(&rv->cache_by_key, s)) {
		const struct rv_cached *c = &rv->cache[s];
		if (c->hash == h && c->request == request && c->expires > now &&
		    nb_addr_equal(&c->from, from) && memcmp(c->tx, tx, NB_CTRL_TX_LEN) == 0 &&
		    nb_key_equal(c->key, key))
			return c;
	}
	return NULL;
}

static void cache_put(struct nb_rendezvous *rv, const struct nb_addr *from, const uint8_t *key,
		      const char *tx, uint64_t request, uint64_t now, const uint8_t *data, size_t len)
{
	struct rv_cached *c;
	uint8_t *copy;
	size_t slot;

	while (rv->cache_n > 0 && rv->cache[rv->cache_head].expires <= now)
		cache_pop(rv);
	if (rv->cache_n == rv->cfg.cache_entries) {
		struct nb_rendezvous_event ev = {
			.kind = NB_RV_EVENT_LIMIT, .limit = NB_RV_LIMIT_CACHE,
			.limit_value = rv->cfg.cache_entries,
		};
		rv->st.cache_evicted_early++;
		cache_pop(rv);
		emit(rv, &ev);
	}
	copy = malloc(len);
	if (copy == NULL) {
		rv->st.cache_nomem++;
		return;
	}
	memcpy(copy, data, len);
	slot = (rv->cache_head + rv->cache_n) % rv->cfg.cache_entries;
	c = &rv->cache[slot];
	c->from = *from;
	memcpy(c->key, key, NB_KEY_LEN);
	COPY(c->tx, tx);
	c->hash = cache_hash(rv, from, tx);
	c->request = request;
	c->expires = now + rv->cfg.cache_ms;
	c->len = (uint16_t)len;
	c->data = copy;
	nb_hidx_add(&rv->cache_by_key, c->hash, (uint32_t)slot);
	rv->cache_n++;
}

/* ---- Sessions ------------------------------------------------------------------ */

static uint64_t str_hash(const struct nb_rendezvous *rv, const char *s)
{
	return nb_siphash(rv->cfg.hash_key, s, strlen(s));
}

static uint32_t session_find(const struct nb_rendezvous *rv, const char *id)
{
	uint64_t h = str_hash(rv, id);

	for (uint32_t s = nb_hidx_first(&rv->sess_by_id, h); s != NB_SLOT_NONE;
	     s = nb_hidx_next(&rv->sess_by_id, s))
		if (rv->sess[s].id_hash == h && strcmp(rv->sess[s].id, id) == 0)
			return s;
	return NB_SLOT_NONE;
}

static uint32_t session_by_tx(const struct nb_rendezvous *rv, const char *tx)
{
	uint64_t h = str_hash(rv, tx);

	for (uint32_t s = nb_hidx_first(&rv->sess_by_tx, h); s != NB_SLOT_NONE;
	     s = nb_hidx_next(&rv->sess_by_tx, s))
		if (rv->sess[s].tx_hash == h && strcmp(rv->sess[s].push_tx, tx) == 0)
			return s;
	return NB_SLOT_NONE;
}

/* The one place the push state changes: leaving PENDING takes the session
 * off the retransmission list and the tx index; entry actions report. */
static void push_set_state(struct nb_rendezvous *rv, uint32_t s, enum rv_push state, uint16_t code)
{
	struct rv_session *x = &rv->sess[s];
	struct nb_rendezvous_event ev = {
		.session = x->id, .peer = x->push_to_a ? x->a : x->b, .code = code,
	};

	if (x->push == state)
		return;
	if (x->push == PUSH_PENDING) {
		nb_ilist_remove(&rv->pushing, s);
		nb_hidx_del(&rv->sess_by_tx, x->tx_hash, s);
	}
	x->push = state;
	switch (state) {
	case PUSH_PENDING:
		nb_ilist_push_tail(&rv->pushing, s);
		nb_hidx_add(&rv->sess_by_tx, x->tx_hash, s);
		break;
	case PUSH_ACKED:
		rv->st.push_acked++;
		ev.kind = NB_RV_EVENT_PUSH_ACKED;
		emit(rv, &ev);
		break;
	case PUSH_REFUSED:
	case PUSH_GAVE_UP:
		rv->st.push_failed++;
		ev.kind = NB_RV_EVENT_PUSH_FAILED;
		emit(rv, &ev);
		break;
	case PUSH_IDLE:
		break;
	}
}

/* Done: both sides have reported, or its time is up (ends_at lies after
 * the push's give-up time, so a push still pending then was never polled). */
static bool session_finished(const struct rv_session *x, uint64_t now)
{
	return (x->out.side[0].reported && x->out.side[1].reported) || now >= x->out.ends_at;
}

static void session_drop(struct nb_rendezvous *rv, uint32_t s)
{
	push_set_state(rv, s, PUSH_IDLE, 0); /* no-op unless pending */
	nb_hidx_del(&rv->sess_by_id, rv->sess[s].id_hash, s);
	nb_ilist_remove(&rv->sess_age, s);
	nb_slots_give(&rv->sess_slots, s);
	memset(&rv->sess[s], 0, sizeof(rv->sess[s]));
}

/* A free session slot: a never-used or freed one, else the oldest finished
 * session's. NB_SLOT_NONE when every session is live. */
static uint32_t session_alloc(struct nb_rendezvous *rv, uint64_t now)
{
	uint32_t s = nb_slots_take(&rv->sess_slots);

	if (s != NB_SLOT_NONE)
		return s;
	for (s = rv->sess_age.head; s != NB_SLOT_NONE; s = nb_ilist_next(&rv->sess_age, s)) {
		if (session_finished(&rv->sess[s], now)) {
			session_drop(rv, s);
			return nb_slots_take(&rv->sess_slots);
		}
	}
	return NB_SLOT_NONE;
}

/* ---- The matrix ---------------------------------------------------------------- */

/* Key of an unordered pair: the two ids in byte order, NUL between. */
static uint64_t pair_hash(const struct nb_rendezvous *rv, const char *x, const char *y)
{
	char key[2 * (NB_CTRL_ID_MAX + 1)];
	const char *lo = strcmp(x, y) <= 0 ? x : y, *hi = lo == x ? y : x;
	size_t nl = strlen(lo), nh = strlen(hi);

	memcpy(key, lo, nl);
	key[nl] = '\0';
	memcpy(key + nl + 1, hi, nh);
	return nb_siphash(rv->cfg.hash_key, key, nl + 1 + nh);
}

static uint32_t pair_find(const struct nb_rendezvous *rv, const char *x, const char *y, uint64_t h)
{
	for (uint32_t s = nb_hidx_first(&rv->pair_by_key, h); s != NB_SLOT_NONE;
	     s = nb_hidx_next(&rv->pair_by_key, s)) {
		const struct rv_pair *p = &rv->pairs[s];
		if (p->hash == h && ((strcmp(p->a, x) == 0 && strcmp(p->b, y) == 0) ||
				     (strcmp(p->a, y) == 0 && strcmp(p->b, x) == 0)))
			return s;
	}
	return NB_SLOT_NONE;
}

static void pair_drop(struct nb_rendezvous *rv, uint32_t s)
{
	nb_hidx_del(&rv->pair_by_key, rv->pairs[s].hash, s);
	nb_rank_clear(&rv->pair_rank, s);
	nb_ilist_remove(&rv->pair_lru, s);
	nb_slots_give(&rv->pair_slots, s);
	memset(&rv->pairs[s], 0, sizeof(rv->pairs[s]));
}

/* The latest session of a pair replaces what the matrix knew of it. */
static uint32_t pair_update(struct nb_rendezvous *rv, const struct rv_session *x)
{
	uint64_t h = pair_hash(rv, x->a, x->b);
	uint32_t s = pair_find(rv, x->a, x->b, h);
	struct rv_pair *p;

	if (s == NB_SLOT_NONE) {
		s = nb_slots_take(&rv->pair_slots);
		if (s == NB_SLOT_NONE) {
			pair_drop(rv, rv->pair_lru.head); /* max_pairs >= 1: never empty here */
			s = nb_slots_take(&rv->pair_slots);
		}
		rv->pairs[s].hash = h;
		nb_hidx_add(&rv->pair_by_key, h, s);
		nb_rank_set(&rv->pair_rank, s);
		nb_ilist_push_tail(&rv->pair_lru, s);
	} else {
		nb_ilist_move_tail(&rv->pair_lru, s);
	}
	p = &rv->pairs[s];
	COPY(p->a, x->a);
	COPY(p->b, x->b);
	COPY(p->session, x->id);
	p->predicted = x->predicted;
	p->role_a = x->role_a;
	p->role_b = x->role_b;
	COPY(p->reason, x->plan_b.reason);
	p->out = x->out;
	return s;
}

/* measured and ms of a pair at `now`; false while it is still open.
 * Any side connected: the path it reports (the asker's first), ms the
 * larger of the connected sides'. Else none, once both have reported
 * failure or the session's time is up; ms the larger reported, or the
 * deadline when neither reported. */
static bool outcome_measured(const struct rv_outcome *o, uint64_t now, enum nb_path *ret_path,
			     uint32_t *ret_ms)
{
	const struct rv_side *s0 = &o->side[0], *s1 = &o->side[1];
	bool c0 = s0->reported && s0->outcome == NB_CTRL_OUTCOME_CONNECTED;
	bool c1 = s1->reported && s1->outcome == NB_CTRL_OUTCOME_CONNECTED;
	uint32_t ms = 0;

	if (c0 || c1) {
		*ret_path = c0 ? s0->path : s1->path;
		if (c0)
			ms = s0->ms;
		if (c1 && s1->ms > ms)
			ms = s1->ms;
		*ret_ms = ms;
		return true;
	}
	if (!(s0->reported && s1->reported) && now < o->ends_at)
		return false;
	*ret_path = NB_PATH_NONE;
	if (!s0->reported && !s1->reported) {
		*ret_ms = o->deadline_ms;
		return true;
	}
	if (s0->reported)
		ms = s0->ms;
	if (s1->reported && s1->ms > ms)
		ms = s1->ms;
	*ret_ms = ms;
	return true;
}

/* The family of a connected pair's path: the asker's report's first, as
 * outcome_measured() takes its path (0: not known). */
static uint8_t measured_family(const struct rv_outcome *o)
{
	const struct rv_side *s0 = &o->side[0], *s1 = &o->side[1];

	if (s0->reported && s0->outcome == NB_CTRL_OUTCOME_CONNECTED && s0->family != 0)
		return s0->family;
	if (s1->reported && s1->outcome == NB_CTRL_OUTCOME_CONNECTED)
		return s1->family;
	return 0;
}

/* ---- Plans ----------------------------------------------------------------------- */

static bool is_word_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

/* The connectivity table says "A" for the asker and "B" for the other
 * side; in a plan those become their ids. Cut at cap - 1 bytes (all
 * ASCII: the table's words and ids are). */
static void reason_name(const char *in, const char *a, const char *b, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; in[i] != '\0' && o + 1 < cap; i++) {
		const char *sub = NULL;
		if ((in[i] == 'A' || in[i] == 'B') && (i == 0 || !is_word_char(in[i - 1])) &&
		    !is_word_char(in[i + 1]))
			sub = in[i] == 'A' ? a : b;
		if (sub == NULL) {
			out[o++] = in[i];
			continue;
		}
		for (size_t k = 0; sub[k] != '\0' && o + 1 < cap; k++)
			out[o++] = sub[k];
	}
	out[o] = '\0';
}

static bool candidate_usable(const struct nb_addr *x)
{
	return (x->family == NB_AF_INET || x->family == NB_AF_INET6) && x->port != 0 &&
	       !nb_addr_is_unspecified(x) && !nb_addr_is_multicast(x);
}

static void candidate_add(struct nb_addr *list, size_t *n, const struct nb_addr *x)
{
	if (!candidate_usable(x) || *n >= NB_CTRL_MAX_ADDRS)
		return;
	for (size_t i = 0; i < *n; i++)
		if (nb_addr_equal(&list[i], x))
			return;
	list[(*n)++] = *x;
}

/* Where to reach peer p over the plan's family (the address of p's
 * registration in it: `refl`), in the order to try: its LAN addresses (of
 * either family) when both sides share a public IP (path lan), its UPnP external address when
 * it has one in that family, `refl` last; then, when the plan races the
 * families (`also` not NULL: the other family's address), that one. The
 * reflexive ones always fit. */
static size_t candidates_of(const struct nb_registry_peer *p, const struct nb_addr *refl,
			    bool same_public_ip, const struct nb_addr *also, struct nb_addr *ret)
{
	bool ext = p->upnp == NB_CTRL_UPNP_MAPPED && p->upnp_external.family == refl->family;
	size_t n = 0, room = NB_CTRL_MAX_ADDRS - 1u - (ext ? 1u : 0u) - (also != NULL ? 1u : 0u);

	if (same_public_ip)
		for (size_t i = 0; i < p->n_local && n < room; i++)
			candidate_add(ret, &n, &p->local[i]);
	if (ext)
		candidate_add(ret, &n, &p->upnp_external);
	candidate_add(ret, &n, refl);
	if (also != NULL)
		candidate_add(ret, &n, also);
	return n;
}

/* Which family a pair's plan takes (docs/protocol.md "IPv6"), and what
 * each side dials there. */
struct rv_fam_choice {
	enum nb_fam fam;
	struct nb_addr refl_a, refl_b;   /* each side's address in it */
	bool race;                       /* the other family's too, as a candidate */
	struct nb_addr also_a, also_b;   /* ... these */
};

static bool path_is_direct(enum nb_path p)
{
	return p == NB_PATH_DIRECT || p == NB_PATH_LAN || p == NB_PATH_UPNP;
}

static bool nat_unsure(const struct nb_peer_nat *n)
{
	return n->mapping == NB_MAPPING_UNKNOWN || n->filtering == NB_FILTERING_UNKNOWN;
}

/* Plan pa -> pb per family and choose: IPv6 when both sides have it and the
 * table says direct there (no translation: the common case is two stateful
 * firewalls, which punch); else IPv4 when both have it; else IPv6. When
 * the chosen family's table is unsure (a behaviour unknown) and the other
 * family's plan asks the same of both sides, its addresses go in as well
 * and the first to answer wins (RFC 8305's race, without its head start:
 * the checks of both go out together, so the race costs no round trip).
 * Returns false when the two share no family (the plan is none). */
static bool plan_family(const struct nb_rendezvous *rv, const struct nb_registry_peer *pa,
			const struct nb_registry_peer *pb, uint64_t now, struct nb_plan *ret_plan,
			struct rv_fam_choice *ret)
{
	const struct nb_ctrl_birthday *bday = rv->cfg.birthday.has ? &rv->cfg.birthday : NULL;
	struct nb_peer_nat na[NB_FAM_COUNT], nb[NB_FAM_COUNT];
	struct nb_plan plan[NB_FAM_COUNT];
	bool both[NB_FAM_COUNT];
	enum nb_fam f, o;

	for (int i = 0; i < NB_FAM_COUNT; i++) {
		both[i] = nb_registry_peer_nat_fam(rv->reg, pa, (enum nb_fam)i, now, &na[i]) &&
			  nb_registry_peer_nat_fam(rv->reg, pb, (enum nb_fam)i, now, &nb[i]);
		if (both[i])
			nb_connectivity_plan(&na[i], &nb[i], bday, &plan[i]);
	}
	if (both[NB_FAM_V6] && path_is_direct(plan[NB_FAM_V6].path))
		f = NB_FAM_V6;
	else if (both[NB_FAM_V4])
		f = NB_FAM_V4;
	else if (both[NB_FAM_V6])
		f = NB_FAM_V6;
	else
		return false;
	o = f == NB_FAM_V6 ? NB_FAM_V4 : NB_FAM_V6;
	memset(ret, 0, sizeof(*ret));
	ret->fam = f;
	ret->refl_a = na[f].reflexive;
	ret->refl_b = nb[f].reflexive;
	if (both[o] && (nat_unsure(&na[f]) || nat_unsure(&nb[f])) && plan[o].path == plan[f].path &&
	    plan[o].role_a == plan[f].role_a && plan[o].role_b == plan[f].role_b) {
		ret->race = true;
		ret->also_a = na[o].reflexive;
		ret->also_b = nb[o].reflexive;
	}
	*ret_plan = plan[f];
	return true;
}

static void plan_fill(struct nb_ctrl_plan *pl, const char *session, const char *peer,
		      enum nb_role role, enum nb_path path, const char *reason,
		      const struct nb_registry_peer *other, const struct nb_addr *refl,
		      const struct nb_addr *also, bool same_ip, const char *username,
		      uint32_t deadline_ms, uint32_t delay_ms)
{
	memset(pl, 0, sizeof(*pl));
	COPY(pl->session, session);
	COPY(pl->peer, peer);
	pl->role = role;
	pl->path = path;
	COPY(pl->reason, reason);
	pl->n_candidates = candidates_of(other, refl, same_ip, also, pl->candidates);
	COPY(pl->username, username);
	nb_key_to_text(other->key, pl->peer_key); /* whom the Noise handshake must reach */
	pl->deadline_ms = deadline_ms;
	pl->delay_ms = delay_ms;
}

/* Did p register a relayed address of family fam (allocated in advance)? */
static bool relayed_known(const struct nb_registry_peer *p, int fam)
{
	return fam >= 0 && p->has_relayed && nb_addr_fam(&p->relayed) == (enum nb_fam)fam;
}

/* Does the relay hand out relayed addresses of family f? */
static bool relay_has(const struct nb_rendezvous *rv, enum nb_fam f)
{
	if (rv->cfg.n_relays == 0)
		return false;
	return rv->cfg.relay_fams == 0 ? f == NB_FAM_V4 : (rv->cfg.relay_fams & (1u << f)) != 0;
}

/* The family of the relayed address that `dialer` sends to: `pref` (the
 * plan's) if the relay has it and the dialer can send UDP in it, else the
 * other family on the same terms; -1 when neither works. */
static int relay_family(const struct nb_rendezvous *rv, const struct nb_registry_peer *dialer,
			enum nb_fam pref, uint64_t now)
{
	enum nb_fam order[2] = { pref, pref == NB_FAM_V6 ? NB_FAM_V4 : NB_FAM_V6 };
	struct nb_peer_nat n;

	for (int i = 0; i < 2; i++)
		if (relay_has(rv, order[i]) && nb_registry_peer_nat_fam(rv->reg, dialer, order[i], now, &n) &&
		    !n.udp_blocked)
			return (int)order[i];
	return -1;
}

/* The "relay" of a plan (or of a registered) for the side holding `key`:
 * with alloc, a relay server (chosen by the key, so that a host's
 * allocation in advance and its plans name the same one) and credentials
 * for it, good for cred_s; else only the word that the other side
 * allocates, and its relayed address if it registered one (`other`) and
 * it is of family `fam`: the relayed address's (enum nb_fam; -1: no relay
 * works for the pair, so none is named). */
static void relay_fill(const struct nb_rendezvous *rv, struct nb_ctrl_relay *r, bool alloc,
		       const uint8_t *key, uint32_t cred_s, const struct nb_registry_peer *other,
		       const struct nb_addr *alloc_from, int fam)
{
	char kt[NB_KEY_TEXT_LEN + 1];

	memset(r, 0, sizeof(*r));
	if (rv->cfg.n_relays == 0 || fam < 0)
		return;
	r->has_relay = true;
	if (!alloc) {
		if (other != NULL && other->has_relayed && nb_addr_fam(&other->relayed) == (enum nb_fam)fam) {
			r->has_relayed = true;
			r->relayed = other->relayed;
		}
		return;
	}
	nb_key_to_text(key, kt);
	if (nb_turn_rest_username(rv->unix_s + cred_s, kt, r->user, sizeof(r->user)) < 0 ||
	    nb_turn_rest_password(rv->cfg.relay_secret, rv->cfg.relay_secret_len,
				  (const uint8_t *)r->user, strlen(r->user), r->pass) < 0) {
		memset(r, 0, sizeof(*r)); /* cannot happen: the user fits; no relay then */
		return;
	}
	r->alloc = true;
	r->family = fam == NB_FAM_V6 ? 6 : 0; /* absent: IPv4, RFC 8656's default */
	r->server = rv->cfg.relays[key[0] % rv->cfg.n_relays];
	/* Our own relay listens on every family we do: an allocating side
	 * reaches it over its own, whatever the relayed address's family. */
	if (rv->cfg.own_relay && alloc_from != NULL && alloc_from->family != r->server.family) {
		const struct nb_addr *a = &rv->cfg.self[nb_addr_fam(alloc_from)];
		if (a->family == alloc_from->family)
			r->server = *a;
	}
}

/* A relay for two sides that share no family (docs/protocol.md "IPv6"):
 * one allocates, over its own family, a relayed address of the other's,
 * and the other sends to it. The side whose network blocks UDP must be the
 * one that allocates (over TCP); else the side not of relays[0]'s family,
 * as before the relay knew two families, then the other. Returns the
 * relayed address's family, or -1 (the plan is "none"). */
static int plan_cross_family(const struct nb_rendezvous *rv, const struct nb_registry_peer *pa,
			     const struct nb_registry_peer *pb, struct nb_plan *ret)
{
	const struct nb_addr *relay = &rv->cfg.relays[pa->key[0] % rv->cfg.n_relays];
	char fa = pa->reflexive.family == NB_AF_INET6 ? '6' : '4';
	char fb = pb->reflexive.family == NB_AF_INET6 ? '6' : '4';
	bool first = pa->reflexive.family != relay->family;
	int fam = -1;

	memset(ret, 0, sizeof(*ret));
	for (int i = 0; i < 2 && fam < 0; i++) {
		bool by_a = i == 0 ? first : !first;
		const struct nb_registry_peer *dialer = by_a ? pb : pa;
		enum nb_fam f = nb_addr_fam(&dialer->reflexive);

		if (dialer->udp_blocked || !relay_has(rv, f))
			continue;
		fam = (int)f;
		ret->relay_by_a = by_a;
	}
	if (fam < 0) {
		ret->path = NB_PATH_NONE;
		ret->role_a = ret->role_b = NB_ROLE_NONE;
		if (pa->udp_blocked && pb->udp_blocked)
			snprintf(ret->reason, sizeof(ret->reason),
				 "A (IPv%c only) and B (IPv%c only) share no IP family, and neither can send "
				 "UDP to a relay", fa, fb);
		else
			snprintf(ret->reason, sizeof(ret->reason),
				 "A (IPv%c only) and B (IPv%c only) share no IP family, and the relay has no "
				 "relayed address of the family the sending side has", fa, fb);
		return -1;
	}
	ret->path = NB_PATH_RELAY;
	ret->role_a = ret->relay_by_a ? NB_ROLE_RELAY : NB_ROLE_DIAL;
	ret->role_b = ret->relay_by_a ? NB_ROLE_DIAL : NB_ROLE_RELAY;
	snprintf(ret->reason, sizeof(ret->reason),
		 "A (IPv%c only) and B (IPv%c only) share no IP family: %s allocates an IPv%c address on "
		 "the relay%s, %s sends to it", fa, fb, ret->relay_by_a ? "A" : "B",
		 fam == NB_FAM_V6 ? '6' : '4', (ret->relay_by_a ? pa : pb)->udp_blocked ? " over TCP" : "",
		 ret->relay_by_a ? "B" : "A");
	return fam;
}

static ssize_t push_encode(struct nb_rendezvous *rv, const struct rv_session *x,
			   struct nb_rendezvous_dgram *d)
{
	struct nb_ctrl_msg *m = &rv->push;
	ssize_t n;

	set_header(m, x->push_type, x->push_tx);
	if (x->push_type == NB_CTRL_RELAYED)
		m->u.relayed = x->relayed;
	else
		m->u.plan = x->plan_b;
	n = nb_ctrl_encode(m, d->data, sizeof(d->data));
	if (n > 0) {
		d->len = (size_t)n;
		d->to = x->push_to;
		d->from_alt_port = false;
		d->sealed = true; /* to its recipient, in its session */
		memcpy(d->key, x->push_to_a ? x->key_a : x->key_b, NB_KEY_LEN);
	}
	return n;
}

/* ---- Requests ----------------------------------------------------------------------- */

/* What a request handler decided, besides rv->rep. */
static void upnp_proof(const struct nb_rendezvous *rv, const struct nb_addr *from,
		       const struct nb_addr *external, char out[NB_CTRL_PROOF_LEN + 1]);
static void keyed_hex(const struct nb_rendezvous *rv, const char *msg, size_t n, char *out, size_t hexlen);

/* The register cookie of (from, id) in `window`. */
static void register_cookie(const struct nb_rendezvous *rv, const struct nb_addr *from, const char *id,
			    uint64_t window, char out[NB_CTRL_COOKIE_LEN + 1])
{
	char a[NB_ADDR_STRLEN], msg[NB_ADDR_STRLEN + NB_CTRL_ID_MAX + 64];
	int n = snprintf(msg, sizeof(msg), "natbroker register cookie\n%s\n%s\n%llu",
			 nb_addr_format(from, a, sizeof(a)), id, (unsigned long long)window);

	keyed_hex(rv, msg, n < 0 ? 0 : (size_t)n, out, NB_CTRL_COOKIE_LEN);
}

struct reply_ctx {
	const struct nb_addr *from;
	const uint8_t *key; /* the sender's static key: never NULL in a handler */
	uint64_t now;
	uint32_t rtt; /* the shell's round-trip sample for this message (0: none) */
	const uint8_t *rnd;
	bool cacheable; /* false for transient refusals: 429, 500, 503 */
	bool is_list;
	bool is_probe; /* rep is a probe, for probe_to */
	bool tcp_probe; /* ... of a TCP mapping: the shell connects */
	struct nb_addr probe_to;
	bool no_longer; /* send rep only if it is no longer than the request */
	size_t req_len;
	struct nb_rendezvous_out *out;
};

static void refuse(struct nb_rendezvous *rv, struct reply_ctx *c, uint16_t code, const char *id)
{
	struct nb_rendezvous_event ev = {
		.kind = NB_RV_EVENT_REFUSED, .code = code, .reason = rv->rep.u.error.reason,
		.id = id, .addr = *c->from, .request = rv->in.type, .key = c->key,
	};

	if (code == NB_CTRL_ERR_FULL || code == NB_CTRL_ERR_RATE_LIMITED) {
		ev.kind = NB_RV_EVENT_LIMIT;
		if (code == NB_CTRL_ERR_RATE_LIMITED) {
			ev.limit = NB_RV_LIMIT_RATE;
			ev.limit_value = rv->in.type == NB_CTRL_VERIFY ? rv->cfg.verify_rate : rv->cfg.list_rate;
		} else if (rv->in.type == NB_CTRL_REGISTER) {
			ev.limit = NB_RV_LIMIT_PEERS;
			ev.limit_value = rv->cfg.max_peers;
		} else {
			ev.limit = NB_RV_LIMIT_SESSIONS;
			ev.limit_value = rv->cfg.max_sessions;
		}
	}
	if (code == NB_CTRL_ERR_FULL || code == NB_CTRL_ERR_RATE_LIMITED || code == NB_CTRL_ERR_SERVER)
		c->cacheable = false;
	emit(rv, &ev);
}

/* A round-trip sample for id (held by key), if it is one to take. */
static void rtt_sample(struct nb_rendezvous *rv, const char *id, const uint8_t *key, uint64_t sample,
		       uint64_t now)
{
	if (sample == 0 || sample > NB_RENDEZVOUS_RTT_MAX_MS)
		return;
	if (nb_registry_rtt_sample(rv->reg, id, key, (uint32_t)sample, now) == 0)
		rv->st.rtt_samples++;
}

/* registered.alt: the broker's address in the family `from` is not of. */
static void registered_alt(struct nb_rendezvous *rv, const struct nb_addr *from)
{
	const struct nb_addr *a = &rv->cfg.self[nb_addr_fam(from) == NB_FAM_V6 ? NB_FAM_V4 : NB_FAM_V6];

	if (a->family != NB_AF_NONE && a->family != from->family) {
		rv->rep.u.registered.has_alt = true;
		rv->rep.u.registered.alt = *a;
	}
}

/* A register with "also": the id's second address, in the other family
 * (docs/protocol.md "IPv6"). No UPnP, relay or round trip here: those
 * belong to the registration the plans are pushed to. */
static void on_register_also(struct nb_rendezvous *rv, struct reply_ctx *c,
			     struct nb_rendezvous_event *ev)
{
	const struct nb_ctrl_register *r = &rv->in.u.reg;
	enum nb_registry_change change = NB_REGISTRY_NEW;
	struct nb_addr old;
	int rc;

	memset(&old, 0, sizeof(old));
	rc = nb_registry_put_alt(rv->reg, r, c->key, c->from, c->now, &change, &old);
	if (rc == NB_REGISTRY_E_NOENT) {
		set_error(&rv->rep, rv->in.tx, NB_CTRL_ERR_UNKNOWN_PEER,
			  "no peer '%s' to add an address to: register it first", r->id);
		refuse(rv, c, NB_CTRL_ERR_UNKNOWN_PEER, r->id);
		return;
	}
	if (rc == NB_REGISTRY_E_CONFLICT) {
		rv->st.key_conflicts++;
		set_error(&rv->rep, rv->in.tx, NB_CTRL_ERR_CONFLICT, "'%s' is held by another key", r->id);
		refuse(rv, c, NB_CTRL_ERR_CONFLICT, r->id);
		return;
	}
	if (rc < 0) {
		set_error(&rv->rep, rv->in.tx, NB_CTRL_ERR_BAD_REQUEST,
			  "'also' must come over the other IP family than '%s' is registered in", r->id);
		refuse(rv, c, NB_CTRL_ERR_BAD_REQUEST, r->id);
		return;
	}
	rv->st.registers_also++;
	set_header(&rv->rep, NB_CTRL_REGISTERED, rv->in.tx);
	COPY(rv->rep.u.registered.id, r->id);
	rv->rep.u.registered.reflexive = *c->from;
	rv->rep.u.registered.keepalive_s = rv->cfg.keepalive_s;
	rv->rep.u.registered.expires_s = rv->cfg.keepalive_s * NB_RENDEZVOUS_EXPIRES_FACTOR;
	registered_alt(rv, c->from);
	ev->change = change;
	ev->other_addr = old;
	ev->also = true;
	ev->entry = nb_registry_get(rv->reg, r->id, c->now);
	emit(rv, ev);
}

static void on_register(struct nb_rendezvous *rv, struct reply_ctx *c)
{
	const struct nb_ctrl_register *r = &rv->in.u.reg;
	const char *tx = rv->in.tx;
	struct nb_rendezvous_event ev = {
		.kind = NB_RV_EVENT_REGISTERED, .id = r->id, .addr = *c->from, .key = c->key,
	};
	enum nb_registry_change change = NB_REGISTRY_NEW;
	struct nb_addr old;
	int rc;

	rv->st.registers++;
	/* Return routability: the sealed session has shown it (its first
	 * transport frame needs our handshake response). With require_cookie
	 * a source must also show a cookie: a challenge (no longer than its
	 * register) and nothing else until then. */
	if (rv->cfg.require_cookie) {
		uint64_t w = c->now / NB_RENDEZVOUS_COOKIE_WINDOW_MS;
		char now_cookie[NB_CTRL_COOKIE_LEN + 1], prev_cookie[NB_CTRL_COOKIE_LEN + 1];
		register_cookie(rv, c->from, r->id, w, now_cookie);
		register_cookie(rv, c->from, r->id, w > 0 ? w - 1 : w, prev_cookie);
		if (r->cookie[0] == '\0' || (!secret_equal(r->cookie, now_cookie, NB_CTRL_COOKIE_LEN) &&
					     !secret_equal(r->cookie, prev_cookie, NB_CTRL_COOKIE_LEN))) {
			set_header(&rv->rep, NB_CTRL_CHALLENGE, tx);
			COPY(rv->rep.u.challenge.cookie, now_cookie);
			c->cacheable = false;
			c->no_longer = true;
			rv->st.challenges++;
			return;
		}
	}
	/* A mapping counts as verified only with the proof of our probe. */
	bool upnp_claimed = r->has_upnp && r->upnp == NB_CTRL_UPNP_MAPPED, upnp_ok = false;
	if (upnp_claimed) {
		char want[NB_CTRL_PROOF_LEN + 1];
		upnp_proof(rv, c->from, &r->upnp_external, want);
		upnp_ok = r->upnp_proof[0] != '\0' && secret_equal(r->upnp_proof, want, NB_CTRL_PROOF_LEN);
		if (upnp_ok)
			rv->st.proofs_good++;
		else
			rv->st.proofs_bad++;
		if (!upnp_ok) /* stored as a gateway without a verified mapping */
			rv->in.u.reg.upnp = NB_CTRL_UPNP_FAILED;
	}
	if (rv->cfg.token[0] != '\0' &&
	    !secret_equal(r->token, rv->cfg.token, NB_CTRL_TOKEN_MAX)) {
		set_error(&rv->rep, tx, NB_CTRL_ERR_UNAUTHORIZED, "%s",
			  r->token[0] == '\0' ? "token required" : "wrong token");
		refuse(rv, c, NB_CTRL_ERR_UNAUTHORIZED, r->id);
		return;
	}
	memset(&old, 0, sizeof(old));
	if (r->also) {
		on_register_also(rv, c, &ev);
		return;
	}
	rc = nb_registry_put(rv->reg, r, c->key, c->from, c->now, &change, &old);
	if (rc == NB_REGISTRY_E_FULL) {
		rv->st.full_peers++;
		set_error(&rv->rep, tx, NB_CTRL_ERR_FULL, "registry full (%zu peers)", rv->cfg.max_peers);
		refuse(rv, c, NB_CTRL_ERR_FULL, r->id);
		return;
	}
	if (rc == NB_REGISTRY_E_CONFLICT) {
		rv->st.key_conflicts++;
		set_error(&rv->rep, tx, NB_CTRL_ERR_CONFLICT, "'%s' is held by another key", r->id);
		refuse(rv, c, NB_CTRL_ERR_CONFLICT, r->id);
		return;
	}
	(void)nb_registry_set_udp_blocked(rv->reg, r->id, c->key, rv->via_tcp, c->now);
	rtt_sample(rv, r->id, c->key, c->rtt, c->now);
	set_header(&rv->rep, NB_CTRL_REGISTERED, tx);
	COPY(rv->rep.u.registered.id, r->id);
	rv->rep.u.registered.reflexive = *c->from;
	rv->rep.u.registered.keepalive_s = rv->cfg.keepalive_s;
	rv->rep.u.registered.expires_s = rv->cfg.keepalive_s * NB_RENDEZVOUS_EXPIRES_FACTOR;
	rv->rep.u.registered.has_upnp = upnp_claimed;
	rv->rep.u.registered.upnp_verified = upnp_ok;
	registered_alt(rv, c->from);
	/* A host that will need the relay (UDP blocked, or a mapping that is
	 * not endpoint-independent) gets credentials to allocate in advance,
	 * as ICE gathers its relayed candidate before it is needed: its plans
	 * then carry its relayed address to the other side. */
	if (rv->via_tcp || (r->has_nat && r->mapping != NB_MAPPING_NONE &&
			    r->mapping != NB_MAPPING_ENDPOINT_INDEPENDENT))
		relay_fill(rv, &rv->rep.u.registered.relay, true, c->key, NB_RENDEZVOUS_REG_CRED_S, NULL,
			   c->from, relay_has(rv, nb_addr_fam(c->from)) ? (int)nb_addr_fam(c->from)
			   : relay_has(rv, NB_FAM_V4) ? (int)NB_FAM_V4 : -1);
	ev.change = change;
	ev.other_addr = old;
	ev.entry = nb_registry_get(rv->reg, r->id, c->now);
	emit(rv, &ev);
}

static void on_keepalive(struct nb_rendezvous *rv, struct reply_ctx *c)
{
	const char *id = rv->in.u.keepalive.id;
	int rc;

	rv->st.keepalives++;
	rc = nb_registry_touch(rv->reg, id, c->key, c->from, c->now);
	if (rc == 0) {
		rtt_sample(rv, id, c->key, c->rtt, c->now);
		set_header(&rv->rep, NB_CTRL_ACK, rv->in.tx);
		return;
	}
	if (rc == NB_REGISTRY_E_KEY) {
		rv->st.not_holder++;
		set_error(&rv->rep, rv->in.tx, NB_CTRL_ERR_UNKNOWN_PEER, "'%s' is not held by this key", id);
	} else if (rc == NB_REGISTRY_E_ADDRESS)
		set_error(&rv->rep, rv->in.tx, NB_CTRL_ERR_UNKNOWN_PEER,
			  "'%s' is registered from another address", id);
	else
		set_error(&rv->rep, rv->in.tx, NB_CTRL_ERR_UNKNOWN_PEER, "no peer '%s'", id);
	refuse(rv, c, NB_CTRL_ERR_UNKNOWN_PEER, id);
}

/* When each side starts (its plan's delay_ms), docs/protocol.md "Punch
 * timing". A's plan (the reply) and B's (the push) leave together and
 * arrive about ra/2 and rb/2 later. The side that must go second - the
 * dialer whose peer primes, the probing side of a birthday plan - waits
 * until the other side has its plan, plus a margin; of two punching sides
 * the one whose plan arrives first waits the difference. Without both
 * round trips (or with rtt_timing off): the fixed prime_delay_ms for the
 * side that goes second, 0 for punching. relay_a / relay_b: that side
 * dials a relayed address the other side registered in advance. */
struct rv_timing {
	uint32_t delay_a, delay_b;
	bool rtt_timed;
};

static uint32_t delay_cap(uint64_t v)
{
	return v > NB_CTRL_DELAY_MAX_MS ? NB_CTRL_DELAY_MAX_MS : (uint32_t)v;
}

static void plan_timing(const struct nb_rendezvous_config *cfg, const struct nb_plan *plan,
			bool relay_a, bool relay_b, uint32_t ra, uint32_t rb, struct rv_timing *ret)
{
	enum nb_role a = plan->role_a, b = plan->role_b;
	bool second_a = (a == NB_ROLE_DIAL && b == NB_ROLE_PRIME) ||
			(a == NB_ROLE_PROBE && b == NB_ROLE_SPRAY);
	bool second_b = (b == NB_ROLE_DIAL && a == NB_ROLE_PRIME) ||
			(b == NB_ROLE_PROBE && a == NB_ROLE_SPRAY);
	bool punch = a == NB_ROLE_PUNCH && b == NB_ROLE_PUNCH;

	memset(ret, 0, sizeof(*ret));
	if (plan->path == NB_PATH_RELAY) {
		ret->delay_a = relay_a ? NB_RENDEZVOUS_RELAY_DIAL_DELAY_MS : 0;
		ret->delay_b = relay_b ? NB_RENDEZVOUS_RELAY_DIAL_DELAY_MS : 0;
		return;
	}
	if (cfg->rtt_timing && ra > 0 && rb > 0 && (second_a || second_b || punch)) {
		uint64_t arr_a = ra / 2, arr_b = rb / 2;
		uint64_t margin = NB_RENDEZVOUS_TIMING_MARGIN_MS +
				  (ra > rb ? ra : rb) / NB_RENDEZVOUS_TIMING_MARGIN_DIV;
		ret->rtt_timed = true;
		if (second_a)
			ret->delay_a = delay_cap((arr_b > arr_a ? arr_b - arr_a : 0) + margin);
		else if (second_b)
			ret->delay_b = delay_cap((arr_a > arr_b ? arr_a - arr_b : 0) + margin);
		else if (arr_a < arr_b)
			ret->delay_a = delay_cap(arr_b - arr_a);
		else
			ret->delay_b = delay_cap(arr_a - arr_b);
		return;
	}
	if (second_a)
		ret->delay_a = cfg->prime_delay_ms;
	if (second_b)
		ret->delay_b = cfg->prime_delay_ms;
}

/* A plan's deadline: the configured one, or for a birthday plan long
 * enough to send every probe at the rate after the later start. */
static uint32_t plan_deadline(const struct nb_rendezvous_config *cfg, const struct nb_plan *plan,
			      const struct rv_timing *t)
{
	const struct nb_ctrl_birthday *b = &cfg->birthday;
	uint64_t need;

	if (plan->path != NB_PATH_BIRTHDAY || b->rate == 0)
		return cfg->deadline_ms;
	need = ((uint64_t)b->probes * 1000 + b->rate - 1) / b->rate +
	       (t->delay_a > t->delay_b ? t->delay_a : t->delay_b) + NB_RENDEZVOUS_BDAY_SLACK_MS;
	if (need < cfg->deadline_ms)
		need = cfg->deadline_ms;
	return need > NB_CTRL_DEADLINE_MAX_MS ? NB_CTRL_DEADLINE_MAX_MS : (uint32_t)need;
}

static void on_connect(struct nb_rendezvous *rv, struct reply_ctx *c)
{
	const struct nb_ctrl_connect *q = &rv->in.u.connect;
	const char *tx = rv->in.tx;
	const struct nb_registry_peer *pa, *pb;
	struct rv_fam_choice fc;
	struct nb_plan plan;
	char session[NB_CTRL_SESSION_LEN + 1], push_tx[NB_CTRL_TX_LEN + 1];
	char username[NB_CTRL_USERNAME_MAX + 1];
	char reason[NB_CTRL_REASON_MAX + 1];
	struct rv_session *x;
	struct rv_timing t;
	uint32_t deadline_ms;
	bool same_ip;
	uint32_t s;

	rv->st.connects++;
	pa = nb_registry_get(rv->reg, q->id, c->now);
	if (pa == NULL) {
		set_error(&rv->rep, tx, NB_CTRL_ERR_UNKNOWN_PEER, "no peer '%s'", q->id);
		refuse(rv, c, NB_CTRL_ERR_UNKNOWN_PEER, q->id);
		return;
	}
	if (!nb_key_equal(pa->key, c->key)) {
		rv->st.not_holder++;
		set_error(&rv->rep, tx, NB_CTRL_ERR_UNKNOWN_PEER, "'%s' is not held by this key", q->id);
		refuse(rv, c, NB_CTRL_ERR_UNKNOWN_PEER, q->id);
		return;
	}
	if (!nb_addr_equal(&pa->reflexive, c->from)) {
		set_error(&rv->rep, tx, NB_CTRL_ERR_UNKNOWN_PEER,
			  "'%s' is registered from another address", q->id);
		refuse(rv, c, NB_CTRL_ERR_UNKNOWN_PEER, q->id);
		return;
	}
	rtt_sample(rv, q->id, c->key, c->rtt, c->now); /* pa's entry: the pointer holds */
	if (strcmp(q->id, q->peer) == 0) {
		set_error(&rv->rep, tx, NB_CTRL_ERR_BAD_REQUEST, "cannot connect to oneself");
		refuse(rv, c, NB_CTRL_ERR_BAD_REQUEST, q->id);
		return;
	}
	pb = nb_registry_get(rv->reg, q->peer, c->now);
	if (pb == NULL) {
		set_error(&rv->rep, tx, NB_CTRL_ERR_UNKNOWN_PEER, "no peer '%s'", q->peer);
		refuse(rv, c, NB_CTRL_ERR_UNKNOWN_PEER, q->id);
		return;
	}

	nb_ctrl_hex(c->rnd, 8, session);
	nb_ctrl_hex(c->rnd + 40, 8, push_tx); /* bytes 8..39: unused (see rendezvous.h) */
	c->out->rnd_used = true;
	if (session_find(rv, session) != NB_SLOT_NONE || session_by_tx(rv, push_tx) != NB_SLOT_NONE ||
	    strcmp(push_tx, tx) == 0) {
		/* 2^-64 with real randomness; a shell that repeats its bytes, or
		 * an asker that guessed them (found by fuzz_rendezvous, whose
		 * random bytes are predictable): the pushed plan must not share
		 * the request's tx. */
		set_error(&rv->rep, tx, NB_CTRL_ERR_SERVER, "session id collision; try again");
		refuse(rv, c, NB_CTRL_ERR_SERVER, q->id);
		return;
	}
	s = session_alloc(rv, c->now);
	if (s == NB_SLOT_NONE) {
		rv->st.full_sessions++;
		set_error(&rv->rep, tx, NB_CTRL_ERR_FULL, "too many connections in progress (%zu)",
			  rv->cfg.max_sessions);
		refuse(rv, c, NB_CTRL_ERR_FULL, q->id);
		return;
	}
	/* session_alloc() changes no registry entry: pa and pb still hold. */

	bool shared = plan_family(rv, pa, pb, c->now, &plan, &fc);
	int relay_fam = -1; /* the relayed address's family (-1: no relay for the pair) */
	if (shared) {
		relay_fam = relay_family(rv, plan.relay_by_a ? pb : pa, fc.fam, c->now);
		if (plan.path == NB_PATH_RELAY && relay_fam >= 0 && relay_fam != (int)fc.fam) {
			/* The relay has no address of the plan's family, the
			 * other one does and the sending side has that too: the
			 * path is of that family, and the allocating side permits
			 * the sender's address in it. */
			struct nb_peer_nat n;
			const struct nb_registry_peer *dialer = plan.relay_by_a ? pb : pa;
			(void)nb_registry_peer_nat_fam(rv->reg, dialer, (enum nb_fam)relay_fam, c->now, &n);
			*(plan.relay_by_a ? &fc.refl_b : &fc.refl_a) = n.reflexive;
			fc.fam = (enum nb_fam)relay_fam;
			fc.race = false;
		}
		if (plan.path == NB_PATH_RELAY && relay_fam < 0 && rv->cfg.n_relays > 0) {
			/* (With no relay at all the plan still says relay, and
			 * the peers say that there is none.) */
			plan.path = NB_PATH_NONE;
			plan.role_a = plan.role_b = NB_ROLE_NONE;
			snprintf(plan.reason, sizeof(plan.reason),
				 "only a relay connects A and B, and it has no relayed address of a family "
				 "the sending side has");
		}
	} else {
		/* One has only IPv4, the other only IPv6: nothing direct; a
		 * relay if there is one. */
		if (rv->cfg.n_relays > 0) {
			relay_fam = plan_cross_family(rv, pa, pb, &plan);
		} else {
			memset(&plan, 0, sizeof(plan));
			plan.path = NB_PATH_NONE;
			plan.role_a = plan.role_b = NB_ROLE_NONE;
			snprintf(plan.reason, sizeof(plan.reason), "A and B share no IP family, and no relay");
		}
		memset(&fc, 0, sizeof(fc));
		fc.refl_a = pa->reflexive;
		fc.refl_b = pb->reflexive;
		/* the path's family: the relayed address's, the dialing side's */
		fc.fam = nb_addr_fam(plan.relay_by_a ? &pb->reflexive : &pa->reflexive);
	}
	plan_timing(&rv->cfg, &plan, !plan.relay_by_a && relayed_known(pb, relay_fam),
		    plan.relay_by_a && relayed_known(pa, relay_fam), pa->rtt_ms, pb->rtt_ms, &t);
	deadline_ms = plan_deadline(&rv->cfg, &plan, &t);
	if (shared && (fc.fam == NB_FAM_V6 || fc.race)) {
		char r2[NB_PLAN_REASON_MAX];
		const char *pre = fc.race ? (fc.fam == NB_FAM_V6 ? "IPv6 raced with IPv4: "
								 : "IPv4 raced with IPv6: ")
					  : "IPv6: ";
		size_t np = strlen(pre), nr = strnlen(plan.reason, sizeof(plan.reason) - 1);
		if (np + nr >= sizeof(r2)) /* cut the reason, keep the family */
			nr = sizeof(r2) - 1 - np;
		memcpy(r2, pre, np);
		memcpy(r2 + np, plan.reason, nr);
		r2[np + nr] = '\0';
		memcpy(plan.reason, r2, sizeof(r2));
	}
	reason_name(plan.reason, pa->id, pb->id, reason, sizeof(reason));
	same_ip = fc.fam == NB_FAM_V4 && nb_addr_ip_equal(&fc.refl_a, &fc.refl_b);
	/* One USERNAME for both directions of the session's checks. */
	snprintf(username, sizeof(username), "%s:%s", session, pa->id);

	x = &rv->sess[s];
	memset(x, 0, sizeof(*x));
	COPY(x->id, session);
	x->id_hash = str_hash(rv, session);
	COPY(x->a, pa->id);
	COPY(x->b, pb->id);
	memcpy(x->key_a, pa->key, NB_KEY_LEN);
	memcpy(x->key_b, pb->key, NB_KEY_LEN);
	x->predicted = plan.path;
	x->role_a = plan.role_a;
	x->role_b = plan.role_b;
	x->created = c->now;
	x->out.deadline_ms = deadline_ms;
	x->out.plan_family = fc.fam == NB_FAM_V6 ? 6 : 4;
	x->out.ends_at = c->now + NB_RENDEZVOUS_PUSH_WINDOW_MS + deadline_ms;
	if (rv->cfg.n_relays > 0) /* a relay may follow the direct attempt */
		x->out.ends_at += rv->cfg.relay_extra_ms;
	x->relay_by_a = plan.relay_by_a;
	x->push_type = NB_CTRL_PLAN;
	x->push_to = pb->reflexive;
	COPY(x->push_tx, push_tx);
	x->tx_hash = str_hash(rv, push_tx);
	plan_fill(&x->plan_b, session, pa->id, plan.role_b, plan.path, reason, pa, &fc.refl_a,
		  fc.race ? &fc.also_a : NULL, same_ip, username, deadline_ms, t.delay_b);
	if (plan.path != NB_PATH_NONE)
		relay_fill(rv, &x->plan_b.relay, !plan.relay_by_a, pb->key, rv->cfg.relay_cred_s, pa,
			   &pb->reflexive, relay_fam);
	if (plan.path == NB_PATH_BIRTHDAY) {
		x->plan_b.birthday = rv->cfg.birthday;
		x->plan_b.birthday.has = true;
		x->plan_b.birthday.port = 0;
	}

	/* The asker's plan is the reply. */
	set_header(&rv->rep, NB_CTRL_PLAN, tx);
	plan_fill(&rv->rep.u.plan, session, pb->id, plan.role_a, plan.path, reason, pb, &fc.refl_b,
		  fc.race ? &fc.also_b : NULL, same_ip, username, deadline_ms, t.delay_a);
	if (plan.path != NB_PATH_NONE)
		relay_fill(rv, &rv->rep.u.plan.relay, plan.relay_by_a, pa->key, rv->cfg.relay_cred_s, pb,
			   &pa->reflexive, relay_fam);
	rv->rep.u.plan.birthday = x->plan_b.birthday;
	/* The other side's plan is a request of the broker's own (d[1]). */
	if (push_encode(rv, x, &c->out->d[1]) <= 0) {
		/* Cannot happen: every field comes from decoded messages. */
		memset(x, 0, sizeof(*x));
		nb_slots_give(&rv->sess_slots, s);
		set_error(&rv->rep, tx, NB_CTRL_ERR_SERVER, "cannot encode the plan");
		refuse(rv, c, NB_CTRL_ERR_SERVER, q->id);
		return;
	}
	nb_hidx_add(&rv->sess_by_id, x->id_hash, s);
	nb_ilist_push_tail(&rv->sess_age, s);
	x->tries = 1;
	x->next_at = c->now + NB_CTRL_RTO_MS;
	push_set_state(rv, s, PUSH_PENDING, 0);
	x->pair = pair_update(rv, x);
	rv->st.pushes++;
	if (plan.path == NB_PATH_RELAY)
		rv->st.relay_plans++;
	if (plan.path == NB_PATH_BIRTHDAY)
		rv->st.birthday_plans++;
	if (t.rtt_timed)
		rv->st.rtt_timed++;

	struct nb_rendezvous_event ev = {
		.kind = NB_RV_EVENT_CONNECT, .session = x->id, .id = x->a, .peer = x->b,
		.addr = *c->from, .other_addr = x->push_to, .path = plan.path,
		.role_a = plan.role_a, .role_b = plan.role_b, .reason = reason, .key = c->key,
		.ms = deadline_ms, .delay_a = t.delay_a, .delay_b = t.delay_b, .rtt_a = pa->rtt_ms,
		.rtt_b = pb->rtt_ms, .rtt_timed = t.rtt_timed, .birthday = x->plan_b.birthday,
	};
	emit(rv, &ev);
}

/* A session member's request (result, relayed) about `session`, on behalf
 * of `id`: the session must exist, id be one of its two sides, and the
 * sender's key the one that held id when the session began (a later holder
 * of the name took no part). Returns the side (0: a, 1: b) with *ret_s the
 * slot, or -1 with the refusal set and counted. */
static int session_side(struct nb_rendezvous *rv, struct reply_ctx *c, const char *session,
			const char *id, uint32_t *ret_s)
{
	const char *tx = rv->in.tx;
	uint32_t s = session_find(rv, session);
	struct rv_session *x;
	int k;

	if (s == NB_SLOT_NONE) {
		set_error(&rv->rep, tx, NB_CTRL_ERR_UNKNOWN_PEER, "no session '%s'", session);
		refuse(rv, c, NB_CTRL_ERR_UNKNOWN_PEER, id);
		return -1;
	}
	x = &rv->sess[s];
	k = strcmp(id, x->a) == 0 ? 0 : strcmp(id, x->b) == 0 ? 1 : -1;
	if (k < 0) {
		set_error(&rv->rep, tx, NB_CTRL_ERR_BAD_REQUEST, "'%s' is not in session '%s'", id, session);
		refuse(rv, c, NB_CTRL_ERR_BAD_REQUEST, id);
		return -1;
	}
	if (!nb_key_equal(k == 0 ? x->key_a : x->key_b, c->key)) {
		rv->st.forged_results++;
		set_error(&rv->rep, tx, NB_CTRL_ERR_UNKNOWN_PEER, "'%s' is not held by this key", id);
		refuse(rv, c, NB_CTRL_ERR_UNKNOWN_PEER, id);
		return -1;
	}
	*ret_s = s;
	return k;
}

static void on_result(struct nb_rendezvous *rv, struct reply_ctx *c)
{
	const struct nb_ctrl_result *r = &rv->in.u.result;
	const char *tx = rv->in.tx;
	uint32_t s = NB_SLOT_NONE;
	struct rv_session *x;
	struct rv_side *side;
	int k;

	rv->st.results++;
	k = session_side(rv, c, r->session, r->id, &s);
	if (k < 0)
		return;
	x = &rv->sess[s];
	if (r->outcome == NB_CTRL_OUTCOME_CONNECTED && r->path == NB_PATH_NONE) {
		set_error(&rv->rep, tx, NB_CTRL_ERR_BAD_REQUEST, "outcome 'connected' needs a path");
		refuse(rv, c, NB_CTRL_ERR_BAD_REQUEST, r->id);
		return;
	}
	side = &x->out.side[k];
	side->reported = true;
	side->outcome = r->outcome;
	side->path = r->outcome == NB_CTRL_OUTCOME_CONNECTED ? r->path : NB_PATH_NONE;
	side->ms = r->ms;
	side->family = r->outcome == NB_CTRL_OUTCOME_CONNECTED && r->has_remote
			       ? (r->remote.family == NB_AF_INET6 ? 6 : 4)
			       : 0;
	if (r->birthday.has) {
		/* Each side reports its part: the spraying side its sockets,
		 * the probing side its probes, rate and the port that answered. */
		struct nb_ctrl_birthday *b = &x->out.birthday;
		b->has = true;
		if (r->birthday.sockets != 0)
			b->sockets = r->birthday.sockets;
		if (r->birthday.probes != 0)
			b->probes = r->birthday.probes;
		if (r->birthday.rate != 0)
			b->rate = r->birthday.rate;
		if (r->birthday.port != 0)
			b->port = r->birthday.port;
	}
	if (x->pair < rv->cfg.max_pairs && strcmp(rv->pairs[x->pair].session, x->id) == 0)
		rv->pairs[x->pair].out = x->out;
	set_header(&rv->rep, NB_CTRL_ACK, tx);

	struct nb_rendezvous_event ev = {
		.kind = NB_RV_EVENT_RESULT, .session = x->id, .id = r->id,
		.peer = k == 0 ? x->b : x->a, .addr = *c->from, .outcome = r->outcome,
		.path = side->path, .ms = r->ms, .reason = r->reason, .key = c->key,
		.birthday = r->birthday,
	};
	emit(rv, &ev);
}

static void relayed_push_start(struct nb_rendezvous *rv, uint32_t s, uint64_t now);

/* relayed: the side that allocated on the relay gives its relayed address;
 * the broker forwards it to the other side (docs/protocol.md "Relay"). */
static void on_relayed(struct nb_rendezvous *rv, struct reply_ctx *c)
{
	const struct nb_ctrl_relayed *r = &rv->in.u.relayed;
	const char *tx = rv->in.tx;
	uint32_t s = NB_SLOT_NONE;
	struct rv_session *x;
	int k = session_side(rv, c, r->session, r->id, &s);

	if (k < 0)
		return;
	x = &rv->sess[s];
	if ((k == 0) != x->relay_by_a || rv->cfg.n_relays == 0 || x->predicted == NB_PATH_NONE) {
		set_error(&rv->rep, tx, NB_CTRL_ERR_BAD_REQUEST,
			  "'%s' does not relay in session '%s'", r->id, r->session);
		refuse(rv, c, NB_CTRL_ERR_BAD_REQUEST, r->id);
		return;
	}
	set_header(&rv->rep, NB_CTRL_ACK, tx);
	if (x->push_type == NB_CTRL_RELAYED && (x->push == PUSH_PENDING || x->push == PUSH_ACKED) &&
	    nb_addr_equal(&x->relayed.relayed, &r->relayed))
		return; /* already forwarded, or being forwarded */
	rv->st.relayed++;
	x->relayed = *r;
	if (x->push_type == NB_CTRL_PLAN && x->push == PUSH_PENDING) {
		x->relayed_queued = true; /* after the plan: the other side needs it first */
		return;
	}
	relayed_push_start(rv, s, c->now);
}

/* bye: the holder frees its name at once (instead of letting it expire). */
static void on_bye(struct nb_rendezvous *rv, struct reply_ctx *c)
{
	const char *id = rv->in.u.bye.id;
	struct nb_registry_peer gone;
	int rc;

	rc = nb_registry_remove(rv->reg, id, c->key, c->now, &gone);
	if (rc == 0) {
		struct nb_rendezvous_event ev = {
			.kind = NB_RV_EVENT_BYE, .id = gone.id, .addr = *c->from, .key = gone.key,
		};
		rv->st.byes++;
		set_header(&rv->rep, NB_CTRL_ACK, rv->in.tx);
		emit(rv, &ev);
		return;
	}
	if (rc == NB_REGISTRY_E_KEY) {
		rv->st.not_holder++;
		set_error(&rv->rep, rv->in.tx, NB_CTRL_ERR_UNKNOWN_PEER, "'%s' is not held by this key", id);
	} else {
		set_error(&rv->rep, rv->in.tx, NB_CTRL_ERR_UNKNOWN_PEER, "no peer '%s'", id);
	}
	refuse(rv, c, NB_CTRL_ERR_UNKNOWN_PEER, id);
}

/* GCRA: rate per second with a burst of one second's worth. */
static bool gcra_allowed(uint64_t *tat_us, uint32_t rate, uint64_t now)
{
	uint64_t t = now * 1000, interval, tat;

	if (rate == 0)
		return true;
	interval = 1000000 / rate;
	tat = *tat_us > t ? *tat_us : t;
	if (tat - t > 1000000 - interval)
		return false;
	*tat_us = tat + interval;
	return true;
}

static bool list_allowed(struct nb_rendezvous *rv, uint64_t now)
{
	return gcra_allowed(&rv->list_tat_us, rv->cfg.list_rate, now);
}

/* The proof of a mapping: the first 16 bytes of HMAC-SHA256(probe_key,
 * "natbroker upnp proof" LF requester LF external), in hex. It binds the
 * mapping to the requester's address: from another address, or for another
 * external address, it does not verify. */
/* The first hexlen/2 bytes of HMAC-SHA256(probe_key, msg), in hex; "" if
 * that cannot be computed (an empty value never matches). */
static void keyed_hex(const struct nb_rendezvous *rv, const char *msg, size_t n, char *out, size_t hexlen)
{
	static const char hexd[] = "0123456789abcdef";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	if (n == 0 ||
	    HMAC(EVP_sha256(), rv->cfg.probe_key, (int)sizeof(rv->cfg.probe_key), (const unsigned char *)msg, n,
		 mac, &maclen) == NULL ||
	    maclen < hexlen / 2) {
		memset(out, 0, hexlen + 1);
		return;
	}
	for (size_t i = 0; i < hexlen / 2; i++) {
		out[2 * i] = hexd[mac[i] >> 4];
		out[2 * i + 1] = hexd[mac[i] & 15];
	}
	out[hexlen] = '\0';
}

static void upnp_proof(const struct nb_rendezvous *rv, const struct nb_addr *from,
		       const struct nb_addr *external, char out[NB_CTRL_PROOF_LEN + 1])
{
	char a[NB_ADDR_STRLEN], b[NB_ADDR_STRLEN], msg[2 * NB_ADDR_STRLEN + 32];
	int n = snprintf(msg, sizeof(msg), "natbroker upnp proof\n%s\n%s", nb_addr_format(from, a, sizeof(a)),
			 nb_addr_format(external, b, sizeof(b)));

	keyed_hex(rv, msg, n < 0 || (size_t)n >= sizeof(msg) ? 0 : (size_t)n, out, NB_CTRL_PROOF_LEN);
}

/* verify: probe the external address from a source the peer's socket has
 * not sent to. Only to the requester's own IP: the broker sends nothing
 * unauthenticated to a third party. */
static void on_verify(struct nb_rendezvous *rv, struct reply_ctx *c)
{
	const struct nb_addr *ext = &rv->in.u.verify.external;
	const char *tx = rv->in.tx;

	rv->st.verifies++;
	c->cacheable = false; /* a retransmitted verify is probed again */
	if (!nb_addr_ip_equal(ext, c->from) || !source_ok(ext)) {
		rv->st.verify_refused++;
		set_error(&rv->rep, tx, NB_CTRL_ERR_BAD_REQUEST, "external is not on your address");
		refuse(rv, c, NB_CTRL_ERR_BAD_REQUEST, "");
		return;
	}
	if (!gcra_allowed(&rv->verify_tat_us, rv->cfg.verify_rate, c->now)) {
		rv->st.verify_refused++;
		rv->st.rate_limited++;
		set_error(&rv->rep, tx, NB_CTRL_ERR_RATE_LIMITED, "too many verify requests");
		refuse(rv, c, NB_CTRL_ERR_RATE_LIMITED, "");
		return;
	}
	set_header(&rv->rep, NB_CTRL_PROBE, tx);
	upnp_proof(rv, c->from, ext, rv->rep.u.probe.proof);
	c->is_probe = true;
	c->tcp_probe = rv->in.u.verify.tcp;
	c->probe_to = *ext;
	rv->st.probes++;
}

static void on_list(struct nb_rendezvous *rv, struct reply_ctx *c)
{
	const char *tx = rv->in.tx;
	uint32_t offset = rv->in.u.query.offset;
	bool peers = rv->in.type == NB_CTRL_PEERS;
	size_t total;

	rv->st.lists++;
	/* Who is registered, from where, and who tried to reach whom is the
	 * operator's to see, unless the operator made it public. */
	if (!rv->cfg.public_list &&
	    (rv->cfg.admin_token[0] == '\0' ||
	     !secret_equal(rv->in.u.query.admin, rv->cfg.admin_token, NB_CTRL_TOKEN_MAX))) {
		rv->st.list_refused++;
		set_error(&rv->rep, tx, NB_CTRL_ERR_FORBIDDEN, "listing needs the broker's admin token");
		refuse(rv, c, NB_CTRL_ERR_FORBIDDEN, "");
		return;
	}
	if (!list_allowed(rv, c->now)) {
		rv->st.rate_limited++;
		set_error(&rv->rep, tx, NB_CTRL_ERR_RATE_LIMITED, "too many list queries; try again later");
		refuse(rv, c, NB_CTRL_ERR_RATE_LIMITED, "");
		return;
	}
	c->is_list = true;
	if (peers) {
		struct nb_ctrl_peer_list *l = &rv->rep.u.peer_list;
		set_header(&rv->rep, NB_CTRL_PEER_LIST, tx);
		memset(l, 0, sizeof(*l));
		total = nb_registry_count(rv->reg);
		l->total = (uint32_t)total;
		l->offset = offset < total ? offset : (uint32_t)total; /* past the end: an empty last page */
		for (size_t i = 0; i < NB_CTRL_MAX_PAGE && l->offset + i < total; i++) {
			const struct nb_registry_peer *p = nb_registry_at(rv->reg, l->offset + i);
			struct nb_ctrl_peer_info *e = &l->peers[l->n_peers++];
			COPY(e->id, p->id);
			e->nat = nb_nat_type_of(p->mapping, p->filtering, p->udp_blocked);
			e->mapping = p->mapping;
			e->filtering = p->filtering;
			e->reflexive = p->reflexive;
			const struct nb_addr *alt = nb_registry_alt(rv->reg, p, c->now);
			if (alt != NULL) {
				e->has_alt = true;
				e->alt = *alt;
				e->alt_mapping = p->alt_mapping;
				e->alt_filtering = p->alt_filtering;
			}
		}
	} else {
		struct nb_ctrl_matrix_list *l = &rv->rep.u.matrix_list;
		set_header(&rv->rep, NB_CTRL_MATRIX_LIST, tx);
		memset(l, 0, sizeof(*l));
		total = rv->pair_rank.count;
		l->total = (uint32_t)total;
		l->offset = offset < total ? offset : (uint32_t)total;
		for (size_t i = 0; i < NB_CTRL_MAX_PAGE && l->offset + i < total; i++) {
			const struct rv_pair *p = &rv->pairs[nb_rank_find(&rv->pair_rank, l->offset + i)];
			struct nb_ctrl_pair *e = &l->pairs[l->n_pairs++];
			COPY(e->a, p->a);
			COPY(e->b, p->b);
			e->predicted = p->predicted;
			e->role_a = p->role_a;
			e->role_b = p->role_b;
			COPY(e->reason, p->reason);
			e->has_measured = outcome_measured(&p->out, c->now, &e->measured, &e->ms);
			e->birthday = p->out.birthday;
			e->plan_family = p->out.plan_family;
			if (e->has_measured && e->measured != NB_PATH_NONE)
				e->family = measured_family(&p->out);
		}
	}
}

/* An ack or error answering a pushed plan: from the key it was sealed to. */
/* Start pushing x->relayed to the side that does not allocate (polled out
 * at once: nb_rendezvous_poll() sends it). Its tx is derived from the
 * session id under the secret hash key: fresh, and the same if it starts
 * again. */
static void relayed_push_start(struct nb_rendezvous *rv, uint32_t s, uint64_t now)
{
	struct rv_session *x = &rv->sess[s];
	const struct nb_registry_peer *p;
	uint8_t h[8];
	uint64_t v;

	x->relayed_queued = false;
	push_set_state(rv, s, PUSH_IDLE, 0);
	x->push_type = NB_CTRL_RELAYED;
	x->push_to_a = !x->relay_by_a;
	p = nb_registry_get(rv->reg, x->push_to_a ? x->a : x->b, now);
	if (p == NULL || !nb_key_equal(p->key, x->push_to_a ? x->key_a : x->key_b))
		return; /* gone, or the name changed hands: nobody to tell */
	x->push_to = p->reflexive;
	{
		/* The session and the address: a new address is a new push. */
		uint8_t in[NB_CTRL_SESSION_LEN + 2 + 16];
		size_t n = strlen(x->id);
		memcpy(in, x->id, n);
		in[n] = (uint8_t)(x->relayed.relayed.port >> 8);
		in[n + 1] = (uint8_t)x->relayed.relayed.port;
		memcpy(in + n + 2, x->relayed.relayed.ip, 16);
		v = nb_siphash(rv->cfg.hash_key, in, n + 2 + 16) ^ 0x72656c61796564ull;
	}
	for (size_t i = 0; i < 8; i++)
		h[i] = (uint8_t)(v >> (8 * i));
	nb_ctrl_hex(h, 8, x->push_tx);
	x->tx_hash = str_hash(rv, x->push_tx);
	x->tries = 0;
	x->next_at = now;
	push_set_state(rv, s, PUSH_PENDING, 0);
}

static void on_push_reply(struct nb_rendezvous *rv, const uint8_t *key, uint64_t now)
{
	uint32_t s = session_by_tx(rv, rv->in.tx);

	if (s == NB_SLOT_NONE || key == NULL ||
	    !nb_key_equal(rv->sess[s].push_to_a ? rv->sess[s].key_a : rv->sess[s].key_b, key)) {
		rv->st.ignored++;
		return;
	}
	if (rv->in.type == NB_CTRL_ACK) {
		const struct rv_session *x = &rv->sess[s];
		/* Karn: only an ack of the plan's one and only send so far
		 * times the round trip (it went out when the session began). */
		if (x->push_type == NB_CTRL_PLAN && x->tries == 1 && now >= x->created)
			rtt_sample(rv, x->push_to_a ? x->a : x->b, key,
				   now - x->created > 0 ? now - x->created : 1, now);
		push_set_state(rv, s, PUSH_ACKED, 0);
	} else {
		push_set_state(rv, s, PUSH_REFUSED, rv->in.u.error.code);
	}
	if (rv->sess[s].relayed_queued)
		relayed_push_start(rv, s, now);
}

/* Encode an error (code, reason why) answering a request of len bytes into
 * d, no longer than the request (docs/protocol.md "Errors": no
 * amplification; an unsealed datagram may come from a spoofed source): the
 * reason is cut back to a character start until it fits. Returns the
 * length, or 0 when even an empty reason is too long. why is cut in place. */
static size_t encode_error_fit(struct nb_rendezvous *rv, const char *tx, uint16_t code, char *why,
			       size_t len, struct nb_rendezvous_dgram *d)
{
	ssize_t n;

	for (;;) {
		size_t rl;
		set_error(&rv->rep, tx, code, "%s", why);
		n = nb_ctrl_encode(&rv->rep, d->data, sizeof(d->data));
		if (n > 0 && (size_t)n <= len)
			return (size_t)n;
		rl = strlen(why);
		if (n <= 0 || rl == 0)
			return 0;
		/* Cut the excess (at least a byte) back to a character start. */
		rl = (size_t)n - len < rl ? rl - ((size_t)n - len) : 0;
		while (rl > 0 && ((unsigned char)why[rl] & 0xC0) == 0x80)
			rl--;
		why[rl] = '\0';
	}
}

/* A datagram nb_ctrl_decode() refused: 400 with the reason, when its tx can
 * be read and the answer is no longer than the datagram. Sealed back to
 * the sender's key when it came sealed. */
static void on_undecodable(struct nb_rendezvous *rv, const uint8_t *buf, size_t len,
			   const struct nb_addr *from, const uint8_t *key,
			   struct nb_rendezvous_out *out)
{
	char tx[NB_CTRL_TX_LEN + 1];
	char why[NB_CTRL_REASON_MAX + 1];
	struct nb_rendezvous_dgram *d = &out->d[0];
	size_t n;

	rv->st.undecodable++;
	if (nb_ctrl_peek_tx(buf, len, tx) < 0)
		return;
	nb_ctrl_explain(buf, len, why, sizeof(why));
	n = encode_error_fit(rv, tx, NB_CTRL_ERR_BAD_REQUEST, why, len, d);
	if (n == 0) {
		rv->st.oversize_suppressed++;
		return;
	}
	d->len = n;
	d->to = *from;
	d->sealed = key != NULL;
	if (key != NULL)
		memcpy(d->key, key, NB_KEY_LEN);
	out->n = 1;
	rv->st.replies++;
	rv->st.errors++;
	struct nb_rendezvous_event ev = {
		.kind = NB_RV_EVENT_REFUSED, .code = NB_CTRL_ERR_BAD_REQUEST, .reason = why,
		.addr = *from, .key = key,
	};
	emit(rv, &ev);
}

/* A request that arrived unsealed: 401, no longer than the request, plain
 * (there is no session to seal it in); nothing else happens. */
static void on_unsealed(struct nb_rendezvous *rv, size_t len, const struct nb_addr *from,
			struct nb_rendezvous_out *out)
{
	char why[NB_CTRL_REASON_MAX + 1] =
		"control messages must be sealed: Noise handshake first (docs/protocol.md)";
	struct nb_rendezvous_dgram *d = &out->d[0];
	const char *id = "";
	size_t n;

	rv->st.unsealed++;
	switch (rv->in.type) {
	case NB_CTRL_REGISTER:
		id = rv->in.u.reg.id;
		break;
	case NB_CTRL_KEEPALIVE:
		id = rv->in.u.keepalive.id;
		break;
	case NB_CTRL_BYE:
		id = rv->in.u.bye.id;
		break;
	case NB_CTRL_CONNECT:
		id = rv->in.u.connect.id;
		break;
	case NB_CTRL_RESULT:
		id = rv->in.u.result.id;
		break;
	default:
		break;
	}
	n = encode_error_fit(rv, rv->in.tx, NB_CTRL_ERR_UNAUTHORIZED, why, len, d);
	if (n == 0) {
		rv->st.oversize_suppressed++;
	} else {
		d->len = n;
		d->to = *from;
		out->n = 1;
		rv->st.replies++;
		rv->st.errors++;
	}
	struct nb_rendezvous_event ev = {
		.kind = NB_RV_EVENT_REFUSED, .code = NB_CTRL_ERR_UNAUTHORIZED, .reason = why,
		.id = id, .addr = *from, .request = rv->in.type,
	};
	emit(rv, &ev);
}

/* ---- Entry points -------------------------------------------------------------- */

static void housekeeping(struct nb_rendezvous *rv, uint64_t now)
{
	struct nb_registry_peer gone;

	while (nb_registry_expire(rv->reg, now, &gone) == 1) {
		struct nb_rendezvous_event ev = {
			.kind = NB_RV_EVENT_EXPIRED, .id = gone.id, .addr = gone.reflexive,
			.key = gone.key,
		};
		rv->st.expired++;
		emit(rv, &ev);
	}
}

int nb_rendezvous_handle(struct nb_rendezvous *rv, const uint8_t *buf, size_t len,
			 const struct nb_addr *from, uint64_t now, const uint8_t *rnd,
			 size_t rnd_len, struct nb_rendezvous_out *ret)
{
	return nb_rendezvous_handle_keyed(rv, buf, len, from, NULL, now, rnd, rnd_len, ret);
}

void nb_rendezvous_set_context(struct nb_rendezvous *rv, uint64_t unix_s, bool via_tcp)
{
	rv->unix_s = unix_s;
	rv->via_tcp = via_tcp;
}

void nb_rendezvous_set_rtt(struct nb_rendezvous *rv, uint32_t rtt_ms)
{
	rv->rtt_next = rtt_ms;
}

int nb_rendezvous_handle_keyed(struct nb_rendezvous *rv, const uint8_t *buf, size_t len,
			       const struct nb_addr *from, const uint8_t *key, uint64_t now,
			       const uint8_t *rnd, size_t rnd_len, struct nb_rendezvous_out *ret)
{
	struct reply_ctx c;
	const struct rv_cached *hit;
	struct nb_rendezvous_dgram *d;
	uint64_t request;
	ssize_t n;
	size_t k = 0;

	if (rv == NULL || buf == NULL || from == NULL || ret == NULL || rnd == NULL ||
	    rnd_len < NB_RENDEZVOUS_RANDOM_LEN) {
		if (rv != NULL)
			rv->rtt_next = 0; /* for this call only, even a failed one */
		return -EINVAL;
	}
	memset(&c, 0, sizeof(c));
	c.rtt = rv->rtt_next;
	rv->rtt_next = 0;
	ret->n = 0;
	ret->rnd_used = false;
	ret->tcp_probe = false;
	for (size_t i = 0; i < NB_RENDEZVOUS_MAX_OUT; i++) {
		ret->d[i].from_alt_port = false;
		ret->d[i].sealed = false;
		memset(ret->d[i].key, 0, sizeof(ret->d[i].key));
	}
	housekeeping(rv, now);
	rv->st.rx++;
	if (!source_ok(from)) {
		rv->st.bad_source++;
		return 0;
	}
	if (nb_ctrl_decode(&rv->in, buf, len) < 0) {
		on_undecodable(rv, buf, len, from, key, ret);
		return 0;
	}
	switch (rv->in.type) {
	case NB_CTRL_ACK:
	case NB_CTRL_ERROR:
		on_push_reply(rv, key, now);
		return 0;
	case NB_CTRL_REGISTERED:
	case NB_CTRL_PLAN:
	case NB_CTRL_PEER_LIST:
	case NB_CTRL_MATRIX_LIST:
	case NB_CTRL_PROBE:
	case NB_CTRL_CHALLENGE:
		/* Replies (or a broker's request) sent to the broker: nobody
		 * asked; answering could start a loop. */
		rv->st.ignored++;
		return 0;
	default:
		break;
	}
	if (key == NULL) {
		on_unsealed(rv, len, from, ret);
		return 0;
	}

	request = nb_siphash(rv->cfg.hash_key, buf, len);
	hit = cache_find(rv, from, key, rv->in.tx, request, now);
	if (hit != NULL) {
		d = &ret->d[0];
		memcpy(d->data, hit->data, hit->len);
		d->len = hit->len;
		d->to = *from;
		d->sealed = true;
		memcpy(d->key, key, NB_KEY_LEN);
		ret->n = 1;
		rv->st.replayed++;
		return 0;
	}

	c.from = from;
	c.key = key;
	c.now = now;
	c.rnd = rnd;
	c.cacheable = true;
	c.out = ret;
	switch (rv->in.type) {
	case NB_CTRL_REGISTER:
		on_register(rv, &c);
		break;
	case NB_CTRL_KEEPALIVE:
		on_keepalive(rv, &c);
		break;
	case NB_CTRL_CONNECT:
		on_connect(rv, &c);
		break;
	case NB_CTRL_RESULT:
		on_result(rv, &c);
		break;
	case NB_CTRL_BYE:
		on_bye(rv, &c);
		break;
	case NB_CTRL_RELAYED:
		on_relayed(rv, &c);
		break;
	case NB_CTRL_VERIFY:
		on_verify(rv, &c);
		break;
	case NB_CTRL_PEERS:
	case NB_CTRL_MATRIX:
		on_list(rv, &c);
		break;
	default: /* every other type returned above */
		rv->st.ignored++;
		return 0;
	}

	d = &ret->d[0];
	if (c.is_list && rv->rep.type != NB_CTRL_ERROR) {
		/* A page is no longer than its query (the asker pads it). */
		n = nb_ctrl_encode_page(&rv->rep, d->data, len < sizeof(d->data) ? len : sizeof(d->data), &k);
		if (n == NB_CTRL_E_NOSPACE) {
			rv->st.oversize_suppressed++;
			return 0; /* too short a query even for an empty page: silence */
		}
	} else {
		n = nb_ctrl_encode(&rv->rep, d->data, sizeof(d->data));
	}
	if (n <= 0) {
		/* Cannot happen with decoded input; say so rather than go silent. */
		set_error(&rv->rep, rv->in.tx, NB_CTRL_ERR_SERVER, "broker failure");
		n = nb_ctrl_encode(&rv->rep, d->data, sizeof(d->data));
		c.cacheable = false;
		if (n <= 0)
			return 0;
	}
	d->len = (size_t)n;
	d->to = *from;
	d->from_alt_port = false;
	d->sealed = true; /* back to the requester, in its session */
	memcpy(d->key, key, NB_KEY_LEN);
	if (c.no_longer && d->len > len) {
		rv->st.challenges_suppressed++;
		return 0;
	}
	ret->n = 1;
	if (c.tcp_probe) {
		/* d[0], the probe, goes to the requester in its session once the
		 * shell's connection to the mapping worked; d[1] if it did not. */
		struct nb_rendezvous_dgram *f = &ret->d[1];
		char a[NB_ADDR_STRLEN];

		snprintf(ret->greeting, sizeof(ret->greeting), "NATBROKER-PROBE %s %s\r\n", rv->in.tx,
			 rv->rep.u.probe.proof);
		set_error(&rv->rep, rv->in.tx, NB_CTRL_ERR_UNREACHABLE, "the broker's TCP connection to %s failed",
			  nb_addr_format(&c.probe_to, a, sizeof(a)));
		n = nb_ctrl_encode(&rv->rep, f->data, sizeof(f->data));
		if (n <= 0)
			return 0;
		f->len = (size_t)n;
		f->to = *from;
		f->from_alt_port = false;
		f->sealed = true;
		memcpy(f->key, key, NB_KEY_LEN);
		ret->tcp_probe = true;
		ret->tcp_to = c.probe_to;
		ret->n = 2;
		return 0;
	}
	if (c.is_probe) { /* not a reply: to the mapping, from the alternate port, plain */
		d->to = c.probe_to;
		d->from_alt_port = true;
		d->sealed = false;
		memset(d->key, 0, sizeof(d->key));
		return 0;
	}
	rv->st.replies++;
	if (rv->rep.type == NB_CTRL_ERROR)
		rv->st.errors++;
	/* The pushed plan of a connect is d[1] (its own transaction). */
	if (rv->in.type == NB_CTRL_CONNECT && rv->rep.type == NB_CTRL_PLAN)
		ret->n = 2;
	if (c.cacheable)
		cache_put(rv, from, key, rv->in.tx, request, now, d->data, d->len);
	return 0;
}

int nb_rendezvous_poll(struct nb_rendezvous *rv, uint64_t now, struct nb_rendezvous_dgram *out,
		       size_t cap, size_t *ret_n)
{
	size_t n = 0;
	uint32_t s, next;

	if (rv == NULL || ret_n == NULL || (out == NULL && cap > 0))
		return -EINVAL;
	housekeeping(rv, now);
	for (s = rv->pushing.head; s != NB_SLOT_NONE; s = next) {
		struct rv_session *x = &rv->sess[s];

		next = nb_ilist_next(&rv->pushing, s);
		if (x->next_at > now)
			continue;
		if (x->tries >= NB_CTRL_MAX_TRIES) {
			push_set_state(rv, s, PUSH_GAVE_UP, 0);
			if (x->relayed_queued) /* as after a refusal: try the relayed one */
				relayed_push_start(rv, s, now);
			continue;
		}
		if (n == cap) {
			*ret_n = n;
			return 1;
		}
		if (push_encode(rv, x, &out[n]) <= 0) {
			push_set_state(rv, s, PUSH_GAVE_UP, 0); /* cannot happen: it encoded before */
			continue;
		}
		n++;
		x->tries++;
		rv->st.push_retransmits++;
		/* RTO doubles after each send; after the last, a final wait. */
		x->next_at = now + (x->tries < NB_CTRL_MAX_TRIES
					    ? (uint64_t)NB_CTRL_RTO_MS << (x->tries - 1)
					    : (uint64_t)NB_CTRL_FINAL_WAIT_MS);
	}
	*ret_n = n;
	return 0;
}

uint64_t nb_rendezvous_next_deadline(const struct nb_rendezvous *rv)
{
	uint64_t t = nb_registry_next_expiry(rv->reg);

	for (uint32_t s = rv->pushing.head; s != NB_SLOT_NONE; s = nb_ilist_next(&rv->pushing, s))
		if (rv->sess[s].next_at < t)
			t = rv->sess[s].next_at;
	return t;
}

void nb_rendezvous_get_stats(const struct nb_rendezvous *rv, struct nb_rendezvous_stats *ret)
{
	*ret = rv->st;
	ret->peers = nb_registry_count(rv->reg);
	ret->sessions = nb_slots_used(&rv->sess_slots);
	ret->pairs = rv->pair_rank.count;
	ret->cached = rv->cache_n;
}
