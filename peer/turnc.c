/* peer/turnc.c - the TURN client state machine (see turnc.h). */
#include "peer/turnc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "common/bytes.h"
#include "common/log.h"

/* Request kinds, for building and for the response handlers. */
enum kind {
	K_ALLOCATE,
	K_REFRESH,
	K_CLOSE,
	K_PERM,
	K_CHAN,
};

const char *nb_turnc_state_name(enum nb_turnc_state s)
{
	switch (s) {
	case NB_TURNC_ALLOCATING: return "allocating";
	case NB_TURNC_ALLOCATED: return "allocated";
	case NB_TURNC_FAILED: return "failed";
	case NB_TURNC_CLOSED: return "closed";
	}
	return "?";
}

const char *nb_turnc_drop_name(int drop)
{
	switch (drop) {
	case NB_TURNC_DROP_NOT_TURN: return "not STUN or ChannelData";
	case NB_TURNC_DROP_MALFORMED: return "malformed TURN message";
	case NB_TURNC_DROP_UNKNOWN_TID: return "response to nothing we sent";
	case NB_TURNC_DROP_INTEGRITY: return "bad MESSAGE-INTEGRITY";
	case NB_TURNC_DROP_UNKNOWN_PEER: return "data from an unknown peer";
	case NB_TURNC_DROP_STATE: return "not now";
	case NB_TURNC_DROP_UNEXPECTED: return "unexpected message";
	default: return drop >= 0 ? "ok" : "?";
	}
}

static int drop(struct nb_turnc *c, enum nb_turnc_drop why)
{
	c->drops[-(int)why - 1]++;
	return (int)why;
}

/* The one place the state changes. */
static void set_state(struct nb_turnc *c, enum nb_turnc_state s)
{
	if (c->state == s)
		return;
	nb_log_debug("turnc", "%s -> %s", nb_turnc_state_name(c->state), nb_turnc_state_name(s));
	c->state = s;
	if (s == NB_TURNC_FAILED || s == NB_TURNC_CLOSED) {
		c->alloc_tx.active = false;
		for (size_t i = 0; i < c->n_peers; i++) {
			c->peers[i].perm_tx.active = false;
			c->peers[i].chan_tx.active = false;
		}
		OPENSSL_cleanse(c->key, sizeof(c->key));
		c->have_key = false;
	}
}

static void fail(struct nb_turnc *c, const char *why)
{
	snprintf(c->reason, sizeof(c->reason), "%s", why);
	set_state(c, NB_TURNC_FAILED);
}

/* A server's reason phrase, printable ASCII only, cut to fit. */
static void fail_code(struct nb_turnc *c, const char *what, const struct nb_stun_msg *m)
{
	char phrase[48];
	size_t n = 0;

	for (size_t i = 0; i < m->reason_len && n < sizeof(phrase) - 1; i++) {
		uint8_t ch = m->reason[i];
		phrase[n++] = (ch >= 0x20 && ch < 0x7F) ? (char)ch : '?';
	}
	phrase[n] = '\0';
	snprintf(c->reason, sizeof(c->reason), "%s (%u%s%s)", what, (unsigned)m->error_code,
		 n ? " " : "", phrase);
	set_state(c, NB_TURNC_FAILED);
}

/* Transaction IDs: the first 12 bytes of SHA-256(seed || counter), so one
 * ID says nothing about the next. */
static void new_tid(struct nb_turnc *c, uint8_t tid[NB_STUN_TID_LEN])
{
	uint8_t in[24], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	memcpy(in, c->seed, 16);
	nb_put_u32be(in + 16, (uint32_t)(c->tid_ctr >> 32));
	nb_put_u32be(in + 20, (uint32_t)c->tid_ctr);
	c->tid_ctr++;
	if (EVP_Digest(in, sizeof(in), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < NB_STUN_TID_LEN) {
		ERR_clear_error();
		memcpy(md, in, 12); /* still distinct: the counter is in bytes 8..11 ^ seed */
		for (size_t i = 0; i < 8; i++)
			md[4 + i] ^= in[16 + i];
	}
	memcpy(tid, md, NB_STUN_TID_LEN);
}

static void txn_start(struct nb_turnc *c, struct nb_turnc_txn *t, uint64_t now, bool once)
{
	memset(t, 0, sizeof(*t));
	t->active = true;
	t->once = once;
	new_tid(c, t->tid);
	t->rto = NB_TURNC_RTO_MS;
	t->next_send = now;
	t->give_up = UINT64_MAX;
}

/* The same request again with a new transaction ID (after 401/438). */
static void txn_restart(struct nb_turnc *c, struct nb_turnc_txn *t, uint64_t now)
{
	uint32_t stale = t->stale;

	txn_start(c, t, now, t->once);
	t->stale = stale;
}

/* Bookkeeping after one send of t. */
static void txn_sent(const struct nb_turnc *c, struct nb_turnc_txn *t, enum kind k, uint64_t now)
{
	t->sends++;
	if (t->once) {
		t->next_send = UINT64_MAX;
		t->give_up = now + (uint64_t)NB_TURNC_RM * NB_TURNC_RTO_MS;
	} else if (c->cfg.tcp) {
		/* RFC 8489 §6.2.2: reliable transport: no retransmission; Ti. */
		t->next_send = UINT64_MAX;
		t->give_up = now + (k == K_ALLOCATE ? c->cfg.timeout_ms : NB_TURNC_TCP_TIMEOUT_MS);
	} else if (t->sends >= NB_TURNC_MAX_SENDS) {
		/* RFC 8489 §6.2.1: "If, after the last request, a duration equal
		 * to Rm times the RTO has passed without a response ... the client
		 * SHOULD consider the transaction to have failed". */
		t->next_send = UINT64_MAX;
		t->give_up = now + (uint64_t)NB_TURNC_RM * NB_TURNC_RTO_MS;
	} else {
		t->next_send = now + t->rto;
		t->rto *= 2;
	}
}

static uint64_t add_s(uint64_t now, uint32_t s)
{
	return now + (uint64_t)s * 1000u;
}

/* Build the request of kind k for txn t (peer p for PERM/CHAN) into c->out. */
static int build(struct nb_turnc *c, enum kind k, const struct nb_turnc_txn *t,
		 const struct nb_turnc_peer *p, size_t *ret_len)
{
	struct nb_stun_enc e;
	uint16_t method;
	int rc;

	switch (k) {
	case K_ALLOCATE: method = NB_TURN_METHOD_ALLOCATE; break;
	case K_REFRESH:
	case K_CLOSE: method = NB_TURN_METHOD_REFRESH; break;
	case K_PERM: method = NB_TURN_METHOD_CREATE_PERMISSION; break;
	case K_CHAN: method = NB_TURN_METHOD_CHANNEL_BIND; break;
	default: return -EINVAL;
	}
	/* Requests: the method with the class bits 0 (RFC 8489 §5). */
	rc = nb_stun_enc_init(&e, c->out, sizeof(c->out),
			      (uint16_t)((method & 0x000F) | ((method & 0x0070) << 1) |
					 ((method & 0x0F80) << 2)),
			      t->tid, false);
	if (rc == 0 && k == K_ALLOCATE) {
		/* RFC 8656 §7.1: "The client MUST include a REQUESTED-TRANSPORT
		 * attribute in the request"; the value is UDP (17) in the
		 * protocol byte followed by three RFFU bytes. */
		uint8_t rt[4] = {NB_TURN_TRANSPORT_UDP, 0, 0, 0};
		rc = nb_stun_enc_attr(&e, NB_TURN_ATTR_REQUESTED_TRANSPORT, rt, sizeof(rt));
		if (rc == 0 && c->cfg.family == NB_AF_INET6) {
			/* §14.6: the family byte, then three RFFU bytes. */
			uint8_t af[4] = {NB_TURN_FAMILY_IPV6, 0, 0, 0};
			rc = nb_stun_enc_attr(&e, NB_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, af, sizeof(af));
		}
	}
	if (rc == 0 && (k == K_ALLOCATE || k == K_REFRESH))
		rc = nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, c->cfg.lifetime_s);
	if (rc == 0 && k == K_CLOSE)
		rc = nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, 0); /* RFC 8656 §7.2: delete */
	if (rc == 0 && k == K_CHAN) {
		uint8_t ch[4] = {(uint8_t)(p->channel >> 8), (uint8_t)p->channel, 0, 0};
		rc = nb_stun_enc_attr(&e, NB_TURN_ATTR_CHANNEL_NUMBER, ch, sizeof(ch));
	}
	if (rc == 0 && (k == K_PERM || k == K_CHAN))
		rc = nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_PEER_ADDRESS, &p->addr);
	if (rc == 0 && c->have_key) {
		rc = nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, c->cfg.username, strlen(c->cfg.username));
		if (rc == 0)
			rc = nb_stun_enc_attr(&e, NB_TURN_ATTR_REALM, c->realm, c->realm_len);
		if (rc == 0)
			rc = nb_stun_enc_attr(&e, NB_TURN_ATTR_NONCE, c->nonce, c->nonce_len);
		if (rc == 0)
			rc = nb_stun_enc_integrity(&e, c->key, sizeof(c->key));
	}
	if (rc == 0)
		rc = nb_stun_enc_fingerprint(&e);
	if (rc != 0)
		return rc;
	*ret_len = nb_stun_enc_len(&e);
	return 0;
}

void nb_turnc_init(struct nb_turnc *c, const struct nb_turnc_config *cfg, const uint8_t seed[16],
		   uint64_t now_ms)
{
	memset(c, 0, sizeof(*c));
	c->cfg = *cfg;
	memcpy(c->seed, seed, 16);
	/* The indications' base ID: from the top of the counter space, which
	 * requests never reach; what a Send indication shows reveals nothing
	 * of the requests' IDs. */
	c->tid_ctr = UINT64_MAX;
	new_tid(c, c->ind_tid);
	c->tid_ctr = 0;
	c->state = NB_TURNC_ALLOCATING;
	c->next_channel = NB_TURN_CHANNEL_MIN;
	if (c->cfg.lifetime_s == 0)
		c->cfg.lifetime_s = NB_TURN_DEFAULT_LIFETIME_S;
	if (c->cfg.timeout_ms == 0)
		c->cfg.timeout_ms = NB_TURNC_TIMEOUT_MS;
	c->alloc_deadline = now_ms + c->cfg.timeout_ms;
	if (memchr(cfg->username, '\0', sizeof(cfg->username)) == NULL ||
	    memchr(cfg->password, '\0', sizeof(cfg->password)) == NULL) {
		c->cfg.username[0] = c->cfg.password[0] = '\0';
		fail(c, "bad configuration: username or password too long");
		return;
	}
	if ((cfg->server.family != NB_AF_INET && cfg->server.family != NB_AF_INET6) ||
	    cfg->server.port == 0) {
		fail(c, "bad configuration: no server address");
		return;
	}
	txn_start(c, &c->alloc_tx, now_ms, false);
}

/* ---- Timeouts and scheduling ---------------------------------------------- */

static void start_refresh(struct nb_turnc *c, uint64_t now)
{
	txn_start(c, &c->alloc_tx, now, false);
	c->refresh_due = UINT64_MAX;
}

static void timeouts(struct nb_turnc *c, uint64_t now)
{
	if (c->state == NB_TURNC_ALLOCATING) {
		if (now >= c->alloc_deadline || (c->alloc_tx.active && now >= c->alloc_tx.give_up))
			fail(c, "no answer from the relay");
		return;
	}
	if (c->close_tx.active && now >= c->close_tx.give_up)
		c->close_tx.active = false;
	if (c->state != NB_TURNC_ALLOCATED)
		return;
	if (now >= c->expires) {
		fail(c, "allocation expired: no answer to Refresh");
		return;
	}
	if (c->alloc_tx.active && now >= c->alloc_tx.give_up)
		start_refresh(c, now); /* try again while the allocation lives */
	for (size_t i = 0; i < c->n_peers; i++) {
		struct nb_turnc_peer *p = &c->peers[i];
		if (p->perm_tx.active && now >= p->perm_tx.give_up) {
			p->perm_tx.active = false;
			p->perm = NB_TURNC_GRANT_FAILED;
			p->perm_due = UINT64_MAX;
		}
		if (p->chan_tx.active && now >= p->chan_tx.give_up) {
			p->chan_tx.active = false;
			p->chan = NB_TURNC_GRANT_FAILED;
			p->chan_due = UINT64_MAX;
		}
	}
}

static void schedule(struct nb_turnc *c, uint64_t now)
{
	if (c->state != NB_TURNC_ALLOCATED)
		return;
	if (!c->alloc_tx.active && now >= c->refresh_due)
		start_refresh(c, now);
	for (size_t i = 0; i < c->n_peers; i++) {
		struct nb_turnc_peer *p = &c->peers[i];
		if (!p->perm_tx.active && now >= p->perm_due) {
			txn_start(c, &p->perm_tx, now, false);
			p->perm_due = UINT64_MAX;
			if (p->perm != NB_TURNC_GRANT_OK)
				p->perm = NB_TURNC_GRANT_PENDING;
		}
		if (!p->chan_tx.active && now >= p->chan_due) {
			txn_start(c, &p->chan_tx, now, false);
			p->chan_due = UINT64_MAX;
			if (p->chan != NB_TURNC_GRANT_OK)
				p->chan = NB_TURNC_GRANT_PENDING;
		}
	}
}

static int emit(struct nb_turnc *c, struct nb_turnc_txn *t, enum kind k,
		const struct nb_turnc_peer *p, uint64_t now, struct nb_turnc_tx *out)
{
	size_t len = 0;

	if (build(c, k, t, p, &len) != 0) {
		/* Cannot happen with our bounded fields; do not spin on it. */
		t->next_send = UINT64_MAX;
		t->give_up = now;
		return 0;
	}
	txn_sent(c, t, k, now);
	c->sent++;
	out->to = c->cfg.server;
	out->bytes = c->out;
	out->len = len;
	return 1;
}

int nb_turnc_poll(struct nb_turnc *c, uint64_t now_ms, struct nb_turnc_tx *out)
{
	if (c->state != NB_TURNC_ALLOCATING && c->state != NB_TURNC_ALLOCATED)
		return 0;
	timeouts(c, now_ms);
	schedule(c, now_ms);
	if (c->state != NB_TURNC_ALLOCATING && c->state != NB_TURNC_ALLOCATED)
		return 0;
	if (c->alloc_tx.active && now_ms >= c->alloc_tx.next_send)
		return emit(c, &c->alloc_tx,
			    c->state == NB_TURNC_ALLOCATING ? K_ALLOCATE : K_REFRESH, NULL, now_ms, out);
	for (size_t i = 0; i < c->n_peers; i++) {
		struct nb_turnc_peer *p = &c->peers[i];
		if (p->perm_tx.active && now_ms >= p->perm_tx.next_send)
			return emit(c, &p->perm_tx, K_PERM, p, now_ms, out);
		if (p->chan_tx.active && now_ms >= p->chan_tx.next_send)
			return emit(c, &p->chan_tx, K_CHAN, p, now_ms, out);
	}
	return 0;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t txn_deadline(const struct nb_turnc_txn *t)
{
	return t->active ? min_u64(t->next_send, t->give_up) : UINT64_MAX;
}

uint64_t nb_turnc_deadline(const struct nb_turnc *c)
{
	uint64_t d = UINT64_MAX;

	if (c->state == NB_TURNC_ALLOCATING)
		return min_u64(c->alloc_deadline, txn_deadline(&c->alloc_tx));
	if (c->state != NB_TURNC_ALLOCATED)
		return UINT64_MAX;
	d = min_u64(c->expires, txn_deadline(&c->alloc_tx));
	d = min_u64(d, txn_deadline(&c->close_tx));
	if (!c->alloc_tx.active)
		d = min_u64(d, c->refresh_due);
	for (size_t i = 0; i < c->n_peers; i++) {
		const struct nb_turnc_peer *p = &c->peers[i];
		d = min_u64(d, p->perm_tx.active ? txn_deadline(&p->perm_tx) : p->perm_due);
		d = min_u64(d, p->chan_tx.active ? txn_deadline(&p->chan_tx) : p->chan_due);
	}
	return d;
}

/* ---- Peers ------------------------------------------------------------------ */

static struct nb_turnc_peer *find_peer(const struct nb_turnc *c, const struct nb_addr *a)
{
	for (size_t i = 0; i < c->n_peers; i++)
		if (nb_addr_equal(&c->peers[i].addr, a))
			return (struct nb_turnc_peer *)&c->peers[i];
	return NULL;
}

int nb_turnc_forget(struct nb_turnc *c, const struct nb_addr *peer)
{
	struct nb_turnc_peer *p = peer != NULL ? find_peer(c, peer) : NULL;

	if (p == NULL)
		return -ENOENT;
	*p = c->peers[--c->n_peers]; /* the last takes its place (order does not matter) */
	memset(&c->peers[c->n_peers], 0, sizeof(c->peers[0]));
	return 0;
}

int nb_turnc_permit(struct nb_turnc *c, const struct nb_addr *peer, uint64_t now_ms)
{
	struct nb_turnc_peer *p;

	(void)now_ms; /* requests go out at the next poll */
	if (c->state != NB_TURNC_ALLOCATING && c->state != NB_TURNC_ALLOCATED)
		return -ENOTCONN;
	if (peer == NULL || (peer->family != NB_AF_INET && peer->family != NB_AF_INET6) ||
	    peer->port == 0 || nb_addr_is_unspecified(peer) || nb_addr_is_multicast(peer))
		return -EINVAL;
	/* RFC 8656 §9.1/§12: a peer of another family than the relayed address
	 * gets 443 (Peer Address Family Mismatch): do not ask. */
	if (c->state == NB_TURNC_ALLOCATED && peer->family != c->relayed.family)
		return -EAFNOSUPPORT;
	p = find_peer(c, peer);
	if (p != NULL) {
		if (p->perm == NB_TURNC_GRANT_FAILED && !p->perm_tx.active) {
			p->perm = NB_TURNC_GRANT_NONE;
			p->perm_due = 0;
		}
		if (p->chan == NB_TURNC_GRANT_FAILED && !p->chan_tx.active) {
			p->chan = NB_TURNC_GRANT_NONE;
			p->chan_due = 0;
		}
		return 0;
	}
	/* Our channels: 0x4000 up (RFC 8656 §12), never one number twice. */
	if (c->n_peers >= NB_TURNC_MAX_PEERS || c->next_channel > NB_TURN_CHANNEL_MAX)
		return -ENOSPC;
	p = &c->peers[c->n_peers++];
	memset(p, 0, sizeof(*p));
	p->addr = *peer;
	p->channel = c->next_channel++;
	p->perm_due = 0; /* at once (once allocated) */
	p->chan_due = 0;
	return 0;
}

/* ---- Sending data ----------------------------------------------------------- */

ssize_t nb_turnc_send(const struct nb_turnc *c, const struct nb_addr *peer, const uint8_t *payload,
		      size_t len, uint8_t *buf, size_t cap)
{
	const struct nb_turnc_peer *p;
	struct nb_stun_enc e;
	/* Send indication: class 01 (indication), method 0x006 (RFC 8656 §18). */
	const uint16_t type = (uint16_t)(NB_TURN_METHOD_SEND | NB_STUN_CLASS_INDICATION);
	uint8_t tid[NB_STUN_TID_LEN];
	ssize_t n;
	int rc;

	if (c->state != NB_TURNC_ALLOCATED)
		return -ENOTCONN;
	if (peer == NULL || (payload == NULL && len != 0) || buf == NULL)
		return -EINVAL;
	p = find_peer(c, peer);
	if (p == NULL || p->perm != NB_TURNC_GRANT_OK) {
		/* Permissions are per IP (RFC 8656 §9): another port of a
		 * permitted IP (a peer-reflexive address) goes as a Send
		 * indication under that permission. */
		bool ip_ok = false;
		for (size_t i = 0; i < c->n_peers && !ip_ok; i++)
			ip_ok = c->peers[i].perm == NB_TURNC_GRANT_OK &&
				nb_addr_ip_equal(&c->peers[i].addr, peer);
		if (!ip_ok) {
			if (p == NULL)
				return -ENOENT;
			return p->perm == NB_TURNC_GRANT_FAILED ? -EACCES : -EAGAIN;
		}
	}
	if (len > 0xFFFFu - 64u)
		return -EMSGSIZE;
	if (p != NULL && p->perm == NB_TURNC_GRANT_OK && p->chan == NB_TURNC_GRANT_OK) {
		n = nb_turn_chandata_encode(buf, cap, p->channel, payload, len, c->cfg.tcp);
		return n >= 0 ? n : -ENOSPC;
	}
	/* Indications are never answered, so nothing matches on their ID;
	 * vary it with the payload so that two messages rarely share one. */
	memcpy(tid, c->ind_tid, NB_STUN_TID_LEN);
	for (size_t i = 0; i < len && i < 64; i++)
		tid[i % NB_STUN_TID_LEN] ^= payload[i];
	rc = nb_stun_enc_init(&e, buf, cap, type, tid, false);
	if (rc == 0)
		rc = nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_PEER_ADDRESS, peer);
	if (rc == 0)
		rc = nb_stun_enc_attr(&e, NB_TURN_ATTR_DATA, payload, len);
	if (rc != 0)
		return -ENOSPC;
	return (ssize_t)nb_stun_enc_len(&e);
}

int nb_turnc_close(struct nb_turnc *c, uint64_t now_ms, struct nb_turnc_tx *out)
{
	int rc;

	if (c->state == NB_TURNC_ALLOCATING) {
		/* Nothing to free that we know of (an Allocate in flight may
		 * still create one: it expires after its lifetime). */
		snprintf(c->reason, sizeof(c->reason), "closed before the allocation");
		set_state(c, NB_TURNC_CLOSED);
		return 0;
	}
	if (c->state != NB_TURNC_ALLOCATED)
		return 0;
	c->alloc_tx.active = false;
	txn_start(c, &c->close_tx, now_ms, true);
	rc = emit(c, &c->close_tx, K_CLOSE, NULL, now_ms, out);
	snprintf(c->reason, sizeof(c->reason), "closed");
	set_state(c, NB_TURNC_CLOSED);
	return rc;
}

/* ---- Input ------------------------------------------------------------------- */

static int input_chandata(struct nb_turnc *c, const uint8_t *data, size_t len,
			  struct nb_turnc_rx *ret)
{
	uint16_t ch = 0;
	const uint8_t *d = NULL;
	size_t dl = 0;
	ssize_t n = nb_turn_chandata_decode(data, len, c->cfg.tcp, &ch, &d, &dl);

	if (n < 0 || (c->cfg.tcp && (size_t)n != len))
		return drop(c, NB_TURNC_DROP_NOT_TURN);
	if (c->state != NB_TURNC_ALLOCATED)
		return drop(c, NB_TURNC_DROP_STATE);
	for (size_t i = 0; i < c->n_peers; i++) {
		const struct nb_turnc_peer *p = &c->peers[i];
		/* Pending too: the server's data may overtake its answer. */
		if (p->channel == ch &&
		    (p->chan == NB_TURNC_GRANT_OK || p->chan == NB_TURNC_GRANT_PENDING)) {
			ret->kind = NB_TURNC_RX_DATA;
			ret->from = p->addr;
			ret->data = d;
			ret->len = dl;
			ret->channel = true;
			return 0;
		}
	}
	return drop(c, NB_TURNC_DROP_UNKNOWN_PEER);
}

static int input_data_ind(struct nb_turnc *c, const struct nb_turn_attrs *ta,
			  struct nb_turnc_rx *ret)
{
	if (!(ta->present & NB_TURN_HAS_PEER) || !(ta->present & NB_TURN_HAS_DATA) || ta->n_peers < 1)
		return drop(c, NB_TURNC_DROP_MALFORMED);
	if (c->state != NB_TURNC_ALLOCATED)
		return drop(c, NB_TURNC_DROP_STATE);
	/* RFC 8656 §11.4: the client SHOULD check that XOR-PEER-ADDRESS is a
	 * peer it has a permission toward (permissions are per IP). */
	for (size_t i = 0; i < c->n_peers; i++) {
		const struct nb_turnc_peer *p = &c->peers[i];
		if (nb_addr_ip_equal(&p->addr, &ta->peers[0]) &&
		    (p->perm == NB_TURNC_GRANT_OK || p->perm == NB_TURNC_GRANT_PENDING)) {
			ret->kind = NB_TURNC_RX_DATA;
			ret->from = ta->peers[0];
			ret->data = ta->data;
			ret->len = ta->data_len;
			ret->channel = false;
			return 0;
		}
	}
	return drop(c, NB_TURNC_DROP_UNKNOWN_PEER);
}

/* The transaction a response answers, with its kind and peer. */
static struct nb_turnc_txn *find_txn(struct nb_turnc *c, const uint8_t *tid, enum kind *ret_k,
				     struct nb_turnc_peer **ret_p)
{
	*ret_p = NULL;
	if (c->alloc_tx.active && memcmp(c->alloc_tx.tid, tid, NB_STUN_TID_LEN) == 0) {
		*ret_k = c->state == NB_TURNC_ALLOCATING ? K_ALLOCATE : K_REFRESH;
		return &c->alloc_tx;
	}
	if (c->close_tx.active && memcmp(c->close_tx.tid, tid, NB_STUN_TID_LEN) == 0) {
		*ret_k = K_CLOSE;
		return &c->close_tx;
	}
	for (size_t i = 0; i < c->n_peers; i++) {
		struct nb_turnc_peer *p = &c->peers[i];
		if (p->perm_tx.active && memcmp(p->perm_tx.tid, tid, NB_STUN_TID_LEN) == 0) {
			*ret_k = K_PERM;
			*ret_p = p;
			return &p->perm_tx;
		}
		if (p->chan_tx.active && memcmp(p->chan_tx.tid, tid, NB_STUN_TID_LEN) == 0) {
			*ret_k = K_CHAN;
			*ret_p = p;
			return &p->chan_tx;
		}
	}
	return NULL;
}

static uint16_t kind_method(enum kind k)
{
	switch (k) {
	case K_ALLOCATE: return NB_TURN_METHOD_ALLOCATE;
	case K_REFRESH:
	case K_CLOSE: return NB_TURN_METHOD_REFRESH;
	case K_PERM: return NB_TURN_METHOD_CREATE_PERMISSION;
	case K_CHAN: return NB_TURN_METHOD_CHANNEL_BIND;
	}
	return 0;
}

/* Take REALM (when given) and NONCE from a 401/438 and derive the key.
 * Nothing changes on failure. */
static int take_realm_nonce(struct nb_turnc *c, const struct nb_turn_attrs *ta)
{
	const uint8_t *realm = c->realm;
	size_t realm_len = c->realm_len;
	uint8_t key[NB_TURN_KEY_LEN];

	if (ta->present & NB_TURN_HAS_REALM) {
		realm = ta->realm;
		realm_len = ta->realm_len;
	}
	if (!(ta->present & NB_TURN_HAS_NONCE) || ta->nonce_len == 0 ||
	    ta->nonce_len > sizeof(c->nonce) || realm_len == 0 || realm_len > sizeof(c->realm))
		return -EINVAL;
	if (nb_turn_long_term_key((const uint8_t *)c->cfg.username, strlen(c->cfg.username), realm,
				  realm_len, (const uint8_t *)c->cfg.password,
				  strlen(c->cfg.password), key) != 0)
		return -EINVAL;
	if (realm != c->realm)
		memmove(c->realm, realm, realm_len);
	c->realm_len = realm_len;
	memcpy(c->nonce, ta->nonce, ta->nonce_len);
	c->nonce_len = ta->nonce_len;
	memcpy(c->key, key, sizeof(key));
	OPENSSL_cleanse(key, sizeof(key));
	c->have_key = true;
	return 0;
}

static void on_success(struct nb_turnc *c, struct nb_turnc_txn *t, enum kind k,
		       struct nb_turnc_peer *p, const struct nb_stun_msg *m,
		       const struct nb_turn_attrs *ta, uint64_t now)
{
	uint32_t life;

	t->active = false;
	switch (k) {
	case K_ALLOCATE:
	case K_REFRESH:
		life = (ta->present & NB_TURN_HAS_LIFETIME) ? ta->lifetime : NB_TURN_DEFAULT_LIFETIME_S;
		if (k == K_ALLOCATE) {
			if (ta->relayed.family != (c->cfg.family == NB_AF_INET6 ? NB_AF_INET6 : NB_AF_INET)) {
				fail(c, c->cfg.family == NB_AF_INET6
						? "the relay answered an IPv6 request with an IPv4 address"
						: "the relay answered an IPv4 request with an IPv6 address");
				return;
			}
			c->relayed = ta->relayed;
			c->have_mapped = (m->present & NB_STUN_HAS_XOR_MAPPED) != 0;
			if (c->have_mapped)
				c->mapped = m->xor_mapped;
			/* Peers of the other family were asked for before we knew. */
			for (size_t i = 0; i < c->n_peers; i++)
				if (c->peers[i].addr.family != c->relayed.family) {
					c->peers[i].perm = c->peers[i].chan = NB_TURNC_GRANT_FAILED;
					c->peers[i].perm_due = c->peers[i].chan_due = UINT64_MAX;
				}
			set_state(c, NB_TURNC_ALLOCATED);
		}
		c->lifetime = life;
		c->expires = add_s(now, life);
		/* RFC 8656 §8: refresh before expiry: a minute before, or half way
		 * for short lifetimes. */
		c->refresh_due = life >= 2 * NB_TURNC_REFRESH_MARGIN_S
					 ? add_s(now, life - NB_TURNC_REFRESH_MARGIN_S)
					 : now + (uint64_t)life * 500u;
		break;
	case K_CLOSE:
		break;
	case K_PERM:
		p->perm = NB_TURNC_GRANT_OK;
		p->perm_due = add_s(now, NB_TURNC_PERM_REFRESH_S);
		break;
	case K_CHAN:
		p->chan = NB_TURNC_GRANT_OK;
		p->chan_due = add_s(now, NB_TURNC_CHAN_REFRESH_S);
		break;
	}
}

static void on_error(struct nb_turnc *c, struct nb_turnc_txn *t, enum kind k,
		     struct nb_turnc_peer *p, const struct nb_stun_msg *m,
		     const struct nb_turn_attrs *ta, uint64_t now)
{
	uint16_t code = m->error_code;

	/* RFC 8489 §9.2.5: 401 to a request without credentials: retry with
	 * them, using the REALM and NONCE the server gave. Once. */
	if (code == NB_TURN_ERR_UNAUTHORIZED && k == K_ALLOCATE && !c->have_key) {
		if (c->cfg.username[0] == '\0') {
			fail(c, "the relay wants credentials and we have none (401)");
			return;
		}
		if (!(ta->present & NB_TURN_HAS_REALM) || take_realm_nonce(c, ta) != 0) {
			fail(c, "401 without a usable REALM and NONCE");
			return;
		}
		txn_restart(c, t, now);
		return;
	}
	if (code == NB_TURN_ERR_UNAUTHORIZED) {
		fail(c, k == K_ALLOCATE ? "wrong credentials (401)" : "credentials refused (401)");
		return;
	}
	/* RFC 8489 §9.2.5: 438: retry with the new NONCE (bounded). */
	if (code == NB_TURN_ERR_STALE_NONCE && c->have_key && t->stale < NB_TURNC_MAX_STALE &&
	    take_realm_nonce(c, ta) == 0) {
		t->stale++;
		txn_restart(c, t, now);
		return;
	}
	t->active = false;
	switch (k) {
	case K_ALLOCATE:
		if (code == NB_TURN_ERR_QUOTA)
			fail(c, "allocation quota reached (486)");
		else if (code == NB_TURN_ERR_STALE_NONCE)
			fail(c, "stale nonce again and again (438)");
		else if (code == NB_TURN_ERR_ALLOCATION_MISMATCH)
			fail(c, "allocation mismatch (437)");
		else if (code == NB_TURN_ERR_CAPACITY)
			fail(c, "the relay is out of capacity (508)");
		else
			fail_code(c, "the relay refused the allocation", m);
		break;
	case K_REFRESH:
		if (code == NB_TURN_ERR_ALLOCATION_MISMATCH)
			fail(c, "allocation lost (437)");
		else
			fail_code(c, "the relay refused the Refresh", m);
		break;
	case K_CLOSE:
		break;
	case K_PERM:
		p->perm = NB_TURNC_GRANT_FAILED;
		p->perm_due = UINT64_MAX;
		break;
	case K_CHAN:
		p->chan = NB_TURNC_GRANT_FAILED;
		p->chan_due = UINT64_MAX;
		break;
	}
}

int nb_turnc_input(struct nb_turnc *c, const uint8_t *data, size_t len, uint64_t now_ms,
		   struct nb_turnc_rx *ret)
{
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
	struct nb_turnc_txn *t;
	struct nb_turnc_peer *p;
	enum kind k;

	if (data == NULL || ret == NULL || len == 0)
		return drop(c, NB_TURNC_DROP_NOT_TURN);
	if (nb_turn_is_chandata(data, len))
		return input_chandata(c, data, len, ret);
	if (nb_stun_decode(&m, data, len) < 0 || m.classic)
		return drop(c, NB_TURNC_DROP_NOT_TURN);
	if (nb_turn_attrs_parse(&m, data, len, &ta) != 0)
		return drop(c, NB_TURNC_DROP_MALFORMED);

	if (m.cls == NB_STUN_CLASS_INDICATION && m.method == NB_TURN_METHOD_DATA)
		return input_data_ind(c, &ta, ret);
	if (m.cls != NB_STUN_CLASS_SUCCESS && m.cls != NB_STUN_CLASS_ERROR)
		return drop(c, NB_TURNC_DROP_UNEXPECTED);
	if (c->state != NB_TURNC_ALLOCATING && c->state != NB_TURNC_ALLOCATED &&
	    !c->close_tx.active)
		return drop(c, NB_TURNC_DROP_STATE);

	t = find_txn(c, m.tid, &k, &p);
	if (t == NULL)
		return drop(c, NB_TURNC_DROP_UNKNOWN_TID);
	if (m.method != kind_method(k))
		return drop(c, NB_TURNC_DROP_UNEXPECTED);
	/* RFC 8489 §9.2.5: with a key, a response must carry a valid
	 * MESSAGE-INTEGRITY; if present it must verify. A 401 or 438 error
	 * comes without one (the server cannot know the key is right). */
	if (m.present & (NB_STUN_HAS_INTEGRITY | NB_STUN_HAS_INTEGRITY_SHA256)) {
		if (!c->have_key || nb_stun_check_integrity(&m, data, len, c->key, sizeof(c->key)) != 0) {
			if (c->have_key)
				return drop(c, NB_TURNC_DROP_INTEGRITY);
			/* No key yet (the first Allocate): we cannot check it. */
		}
	} else if (c->have_key &&
		   !(m.cls == NB_STUN_CLASS_ERROR && (m.error_code == NB_TURN_ERR_UNAUTHORIZED ||
						      m.error_code == NB_TURN_ERR_STALE_NONCE))) {
		return drop(c, NB_TURNC_DROP_INTEGRITY);
	}
	if (m.cls == NB_STUN_CLASS_ERROR && !(m.present & NB_STUN_HAS_ERROR_CODE))
		return drop(c, NB_TURNC_DROP_MALFORMED);
	/* RFC 8656 §7.3: a success must carry XOR-RELAYED-ADDRESS. */
	if (m.cls == NB_STUN_CLASS_SUCCESS && k == K_ALLOCATE &&
	    (!(ta.present & NB_TURN_HAS_RELAYED) ||
	     (ta.relayed.family != NB_AF_INET && ta.relayed.family != NB_AF_INET6) ||
	     ((ta.present & NB_TURN_HAS_LIFETIME) && ta.lifetime == 0)))
		return drop(c, NB_TURNC_DROP_MALFORMED);
	if (m.cls == NB_STUN_CLASS_SUCCESS && k == K_REFRESH && (ta.present & NB_TURN_HAS_LIFETIME) &&
	    ta.lifetime == 0)
		return drop(c, NB_TURNC_DROP_MALFORMED);

	if (m.cls == NB_STUN_CLASS_SUCCESS)
		on_success(c, t, k, p, &m, &ta, now_ms);
	else
		on_error(c, t, k, p, &m, &ta, now_ms);
	ret->kind = NB_TURNC_RX_CONSUMED;
	ret->from = c->cfg.server;
	ret->data = NULL;
	ret->len = 0;
	ret->channel = false;
	return 0;
}

/* ---- Accessors ----------------------------------------------------------------- */

const char *nb_turnc_reason(const struct nb_turnc *c)
{
	return c->reason;
}

const struct nb_addr *nb_turnc_relayed(const struct nb_turnc *c)
{
	return c->state == NB_TURNC_ALLOCATED ? &c->relayed : NULL;
}

const struct nb_addr *nb_turnc_mapped(const struct nb_turnc *c)
{
	return c->state == NB_TURNC_ALLOCATED && c->have_mapped ? &c->mapped : NULL;
}

uint32_t nb_turnc_lifetime(const struct nb_turnc *c)
{
	return c->lifetime;
}

enum nb_turnc_grant nb_turnc_perm_state(const struct nb_turnc *c, const struct nb_addr *peer)
{
	const struct nb_turnc_peer *p = find_peer(c, peer);
	return p ? p->perm : NB_TURNC_GRANT_NONE;
}

enum nb_turnc_grant nb_turnc_chan_state(const struct nb_turnc *c, const struct nb_addr *peer)
{
	const struct nb_turnc_peer *p = find_peer(c, peer);
	return p ? p->chan : NB_TURNC_GRANT_NONE;
}

uint16_t nb_turnc_channel(const struct nb_turnc *c, const struct nb_addr *peer)
{
	const struct nb_turnc_peer *p = find_peer(c, peer);
	return p ? p->channel : 0;
}
