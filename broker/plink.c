/* broker/plink.c - the broker's sealed control sessions (see plink.h). */
#include "broker/plink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/bytes.h"
#include "common/noise.h"
#include "common/seal.h"

struct sess {
	bool used, confirmed, linked; /* linked: THE session of its key (in by_key) */
	uint32_t index;               /* ours: frames to us carry it */
	uint64_t index_hash, key_hash, eph_hash;
	uint8_t key[NB_KEY_LEN];      /* the peer's static */
	uint8_t eph[32];              /* the initiation's ephemeral: retransmissions */
	struct nb_addr addr;          /* last authenticated source */
	struct nb_seal seal;
	uint64_t created, last_rx;
	size_t resp_len;
	uint8_t resp[NB_NOISE_RESP_LEN(0)];
};

struct nb_plink {
	struct nb_plink_config cfg;
	uint8_t pub[NB_KEY_LEN];
	struct sess *s;
	struct nb_slots slots;
	struct nb_hidx by_index, by_key, by_eph;
	struct nb_ilist unconfirmed, confirmed; /* oldest first / least recently heard first */
	uint64_t counter;
	struct nb_plink_stats st;
	uint8_t plain[NB_SEAL_MAX_DATAGRAM];
};

static uint64_t h64(const struct nb_plink *pl, uint8_t tag, const void *p, size_t n)
{
	uint8_t b[1 + 32];

	b[0] = tag;
	memcpy(b + 1, p, n);
	return nb_siphash(pl->cfg.hash_key, b, 1 + n);
}

int nb_plink_new(const struct nb_plink_config *cfg, struct nb_plink **ret)
{
	struct nb_plink *pl;

	if (cfg == NULL || ret == NULL || cfg->max_sessions < 1 || cfg->max_sessions > NB_PLINK_MAX_MAX ||
	    cfg->idle_ms < 1000)
		return NB_PLINK_E_INVAL;
	pl = calloc(1, sizeof(*pl));
	if (pl == NULL)
		return NB_PLINK_E_NOMEM;
	pl->cfg = *cfg;
	if (nb_key_public(cfg->priv, pl->pub) != 0) {
		OPENSSL_cleanse(pl, sizeof(*pl));
		free(pl);
		return NB_PLINK_E_INVAL;
	}
	pl->s = calloc(cfg->max_sessions, sizeof(*pl->s));
	if (pl->s == NULL || nb_slots_init(&pl->slots, cfg->max_sessions) != 0 ||
	    nb_hidx_init(&pl->by_index, cfg->max_sessions) != 0 ||
	    nb_hidx_init(&pl->by_key, cfg->max_sessions) != 0 ||
	    nb_hidx_init(&pl->by_eph, cfg->max_sessions) != 0 ||
	    nb_ilist_init(&pl->unconfirmed, cfg->max_sessions) != 0 ||
	    nb_ilist_init(&pl->confirmed, cfg->max_sessions) != 0) {
		nb_plink_free(pl);
		return NB_PLINK_E_NOMEM;
	}
	*ret = pl;
	return 0;
}

static void sess_free(struct nb_plink *pl, uint32_t slot)
{
	struct sess *x = &pl->s[slot];

	nb_hidx_del(&pl->by_index, x->index_hash, slot);
	if (x->linked)
		nb_hidx_del(&pl->by_key, x->key_hash, slot);
	if (!x->confirmed)
		nb_hidx_del(&pl->by_eph, x->eph_hash, slot);
	nb_ilist_remove(x->confirmed ? &pl->confirmed : &pl->unconfirmed, slot);
	nb_seal_wipe(&x->seal);
	OPENSSL_cleanse(x, sizeof(*x));
	nb_slots_give(&pl->slots, slot);
	pl->st.sessions--;
}

void nb_plink_free(struct nb_plink *pl)
{
	if (pl == NULL)
		return;
	if (pl->s != NULL) {
		for (size_t i = 0; i < pl->cfg.max_sessions; i++)
			if (pl->s[i].used)
				nb_seal_wipe(&pl->s[i].seal);
		OPENSSL_cleanse(pl->s, pl->cfg.max_sessions * sizeof(*pl->s));
		free(pl->s);
	}
	nb_slots_free(&pl->slots);
	nb_hidx_free(&pl->by_index);
	nb_hidx_free(&pl->by_key);
	nb_hidx_free(&pl->by_eph);
	nb_ilist_free(&pl->unconfirmed);
	nb_ilist_free(&pl->confirmed);
	OPENSSL_cleanse(pl, sizeof(*pl));
	free(pl);
}

static uint32_t find_index(const struct nb_plink *pl, uint32_t index, uint64_t hash)
{
	for (uint32_t s = nb_hidx_first(&pl->by_index, hash); s != NB_SLOT_NONE;
	     s = nb_hidx_next(&pl->by_index, s))
		if (pl->s[s].used && pl->s[s].index == index)
			return s;
	return NB_SLOT_NONE;
}

/* The session to reach the holder of `key` at `to`: one process per
 * socket, and one key may run several (a listener and a connector on one
 * host), so the session whose peer sends from `to`; else the key's most
 * recently heard one. NULL `to`: the latter. */
static uint32_t find_key(const struct nb_plink *pl, const uint8_t key[NB_KEY_LEN], const struct nb_addr *to)
{
	uint64_t h = h64(pl, 'k', key, NB_KEY_LEN);
	uint32_t best = NB_SLOT_NONE, best_at = NB_SLOT_NONE;

	for (uint32_t s = nb_hidx_first(&pl->by_key, h); s != NB_SLOT_NONE;
	     s = nb_hidx_next(&pl->by_key, s)) {
		const struct sess *x = &pl->s[s];
		if (!x->linked || !nb_key_equal(x->key, key))
			continue;
		if (best == NB_SLOT_NONE || x->last_rx > pl->s[best].last_rx)
			best = s;
		if (to != NULL && nb_addr_equal(&x->addr, to) &&
		    (best_at == NB_SLOT_NONE || x->last_rx > pl->s[best_at].last_rx))
			best_at = s;
	}
	return best_at != NB_SLOT_NONE ? best_at : best;
}

/* A fresh receiver index: unpredictable to outsiders and unused here. */
static uint32_t new_index(struct nb_plink *pl, uint64_t *ret_hash)
{
	for (;;) {
		uint64_t c = ++pl->counter;
		uint32_t idx = (uint32_t)nb_siphash(pl->cfg.hash_key, &c, sizeof(c));
		uint64_t h = h64(pl, 'i', &idx, sizeof(idx));
		if (find_index(pl, idx, h) == NB_SLOT_NONE) {
			*ret_hash = h;
			return idx;
		}
	}
}

ssize_t nb_plink_handshake(struct nb_plink *pl, const uint8_t *frame, size_t len,
			   const struct nb_addr *from, uint64_t now, uint8_t *out, size_t cap)
{
	struct nb_noise_hs hs;
	struct nb_noise_keys keys;
	struct nb_seal_keys sk;
	struct sess *x;
	uint64_t eh;
	uint32_t slot;
	ssize_t n;
	uint8_t payload[NB_NOISE_MAX_PAYLOAD];

	if (pl == NULL || frame == NULL || from == NULL || out == NULL)
		return NB_PLINK_E_INVAL;
	if (len < NB_NOISE_INIT_LEN(0) || frame[0] != NB_NOISE_TYPE_INIT)
		return NB_NOISE_E_SHORT;
	/* A retransmission: the same ephemeral key as a session not yet
	 * confirmed. Its response again (the first one may have been lost);
	 * no DH at all. The ephemeral key sits right after type and index. */
	eh = h64(pl, 'e', frame + 5, 32);
	for (uint32_t s = nb_hidx_first(&pl->by_eph, eh); s != NB_SLOT_NONE;
	     s = nb_hidx_next(&pl->by_eph, s)) {
		x = &pl->s[s];
		if (x->used && !x->confirmed && CRYPTO_memcmp(x->eph, frame + 5, 32) == 0 &&
		    nb_addr_equal(&x->addr, from)) {
			if (cap < x->resp_len)
				return NB_NOISE_E_NOSPACE;
			memcpy(out, x->resp, x->resp_len);
			pl->st.handshake_repeats++;
			return (ssize_t)x->resp_len;
		}
	}
	if (nb_noise_init_responder_with_public(&hs, pl->cfg.priv, pl->pub,
						(const uint8_t *)NB_PLINK_PROLOGUE,
						sizeof(NB_PLINK_PROLOGUE) - 1) != 0)
		return NB_PLINK_E_INVAL;
	n = nb_noise_read_init(&hs, frame, len, payload, sizeof(payload));
	if (n < 0) {
		pl->st.handshake_fail++;
		nb_noise_wipe(&hs);
		return n;
	}
	/* Room: take a free slot, else push out the oldest unconfirmed one. */
	slot = nb_slots_take(&pl->slots);
	if (slot == NB_SLOT_NONE) {
		uint32_t old = pl->unconfirmed.head;
		if (old == NB_SLOT_NONE) {
			pl->st.full++;
			nb_noise_wipe(&hs);
			return NB_PLINK_E_FULL;
		}
		sess_free(pl, old);
		pl->st.evicted++;
		slot = nb_slots_take(&pl->slots);
	}
	x = &pl->s[slot];
	memset(x, 0, sizeof(*x));
	x->index = new_index(pl, &x->index_hash);
	n = nb_noise_write_resp(&hs, x->index, NULL, 0, x->resp, sizeof(x->resp));
	if (n < 0 || nb_noise_split(&hs, &keys) != 0) {
		nb_noise_wipe(&hs);
		OPENSSL_cleanse(x, sizeof(*x));
		nb_slots_give(&pl->slots, slot);
		pl->st.handshake_fail++;
		return n < 0 ? n : NB_PLINK_E_INVAL;
	}
	memcpy(sk.send, keys.send, sizeof(sk.send));
	memcpy(sk.recv, keys.recv, sizeof(sk.recv));
	sk.local_index = keys.local_index;
	sk.remote_index = keys.remote_index;
	if (cap < (size_t)n || nb_seal_init(&x->seal, &sk, now) != 0) { /* cap first: nothing to free */
		OPENSSL_cleanse(&sk, sizeof(sk));
		OPENSSL_cleanse(&keys, sizeof(keys));
		OPENSSL_cleanse(x, sizeof(*x));
		nb_slots_give(&pl->slots, slot);
		return cap < (size_t)n ? NB_NOISE_E_NOSPACE : NB_PLINK_E_INVAL;
	}
	x->used = true;
	x->resp_len = (size_t)n;
	memcpy(x->key, keys.remote_static, NB_KEY_LEN);
	memcpy(x->eph, frame + 5, 32);
	x->eph_hash = eh;
	x->key_hash = h64(pl, 'k', x->key, NB_KEY_LEN);
	x->addr = *from;
	x->created = x->last_rx = now;
	OPENSSL_cleanse(&sk, sizeof(sk));
	OPENSSL_cleanse(&keys, sizeof(keys));
	nb_hidx_add(&pl->by_index, x->index_hash, slot);
	nb_hidx_add(&pl->by_eph, x->eph_hash, slot);
	nb_ilist_push_tail(&pl->unconfirmed, slot);
	pl->st.sessions++;
	pl->st.handshakes++;
	memcpy(out, x->resp, x->resp_len);
	return (ssize_t)x->resp_len;
}

ssize_t nb_plink_open(struct nb_plink *pl, const uint8_t *frame, size_t len,
		      const struct nb_addr *from, uint64_t now, uint8_t *out, size_t cap,
		      const uint8_t **ret_key)
{
	uint32_t index, slot;
	struct sess *x;
	ssize_t n;

	if (pl == NULL || frame == NULL || from == NULL || out == NULL || ret_key == NULL)
		return NB_PLINK_E_INVAL;
	if ((n = nb_seal_peek_index(frame, len, &index)) != 0)
		return n;
	slot = find_index(pl, index, h64(pl, 'i', &index, sizeof(index)));
	if (slot == NB_SLOT_NONE) {
		pl->st.unknown_index++;
		return NB_PLINK_E_UNKNOWN;
	}
	x = &pl->s[slot];
	n = nb_seal_open(&x->seal, frame, len, out, cap, now);
	if (n < 0) {
		pl->st.open_fail++;
		return n;
	}
	pl->st.opened++;
	x->last_rx = now;
	x->addr = *from; /* roaming: the peer's NAT may have moved it */
	if (!x->confirmed) {
		/* Key confirmation: only the holder of the initiation's secrets
		 * could seal this. The session now speaks for its key at this
		 * address (a rekey replaces the one before it). */
		uint32_t old;
		while ((old = find_key(pl, x->key, from)) != NB_SLOT_NONE &&
		       nb_addr_equal(&pl->s[old].addr, from)) {
			pl->s[old].linked = false;
			nb_hidx_del(&pl->by_key, pl->s[old].key_hash, old);
			pl->st.live_keys--;
		}
		nb_hidx_del(&pl->by_eph, x->eph_hash, slot);
		nb_ilist_remove(&pl->unconfirmed, slot);
		x->confirmed = true;
		x->linked = true;
		nb_hidx_add(&pl->by_key, x->key_hash, slot);
		nb_ilist_push_tail(&pl->confirmed, slot);
		pl->st.live_keys++;
		pl->st.confirmed++;
	} else {
		nb_ilist_move_tail(&pl->confirmed, slot);
	}
	*ret_key = x->key;
	return n;
}

ssize_t nb_plink_seal(struct nb_plink *pl, const uint8_t key[NB_KEY_LEN], const struct nb_addr *to,
		      const uint8_t *pt, size_t n, uint8_t *out, size_t cap, uint64_t now)
{
	uint32_t slot;
	ssize_t r;

	if (pl == NULL || key == NULL || (pt == NULL && n > 0) || out == NULL)
		return NB_PLINK_E_INVAL;
	slot = find_key(pl, key, to);
	if (slot == NB_SLOT_NONE) {
		pl->st.seal_nokey++;
		return NB_PLINK_E_NOKEY;
	}
	r = nb_seal_seal(&pl->s[slot].seal, pt, n, out, cap, now);
	if (r > 0)
		pl->st.sealed++;
	return r;
}

ssize_t nb_plink_unknown_hint(const uint8_t *frame, size_t len, uint8_t out[NB_PLINK_UNKNOWN_LEN])
{
	uint32_t index;
	int rc = nb_seal_peek_index(frame, len, &index);

	if (rc != 0)
		return rc;
	out[0] = NB_PLINK_UNKNOWN_TYPE;
	nb_put_u32be(out + 1, index);
	return NB_PLINK_UNKNOWN_LEN;
}

static bool sess_done(const struct nb_plink *pl, const struct sess *x, uint64_t now)
{
	return now - x->last_rx >= pl->cfg.idle_ms || nb_seal_dead(&x->seal, now);
}

size_t nb_plink_expire(struct nb_plink *pl, uint64_t now, size_t budget)
{
	size_t freed = 0;

	if (pl == NULL)
		return 0;
	/* Both lists are in order of last_rx (unconfirmed: of creation, and
	 * nothing was heard since), so their heads are the first to go. A
	 * confirmed session whose keys died (180 s after the handshake) is
	 * found as the peer has long since rekeyed and left it idle. */
	while (freed < budget) {
		uint32_t u = pl->unconfirmed.head, c = pl->confirmed.head;
		if (u != NB_SLOT_NONE && sess_done(pl, &pl->s[u], now))
			sess_free(pl, u);
		else if (c != NB_SLOT_NONE && sess_done(pl, &pl->s[c], now)) {
			if (pl->s[c].linked)
				pl->st.live_keys--;
			sess_free(pl, c);
		} else
			break;
		freed++;
		pl->st.expired++;
	}
	return freed;
}

uint64_t nb_plink_next_deadline(const struct nb_plink *pl)
{
	uint64_t d = UINT64_MAX;
	uint32_t u, c;

	if (pl == NULL)
		return d;
	u = pl->unconfirmed.head;
	c = pl->confirmed.head;
	if (u != NB_SLOT_NONE) { /* unconfirmed keys die too (sess_done) */
		uint64_t k = pl->s[u].created + NB_SEAL_REJECT_AFTER_TIME_MS;
		d = pl->s[u].last_rx + pl->cfg.idle_ms;
		if (k < d)
			d = k;
	}
	if (c != NB_SLOT_NONE) {
		uint64_t e = pl->s[c].last_rx + pl->cfg.idle_ms;
		uint64_t k = pl->s[c].created + NB_SEAL_REJECT_AFTER_TIME_MS;
		if (k < e)
			e = k;
		if (e < d)
			d = e;
	}
	return d;
}

void nb_plink_get_stats(const struct nb_plink *pl, struct nb_plink_stats *ret)
{
	if (pl != NULL && ret != NULL)
		*ret = pl->st;
}

void nb_plink_public_key(const struct nb_plink *pl, uint8_t ret[NB_KEY_LEN])
{
	memcpy(ret, pl->pub, NB_KEY_LEN);
}
