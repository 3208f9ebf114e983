/* broker/registry.c - the peer registry: slots, a hash index by id, an LRU list by last_seen. */
#include "broker/registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/connectivity.h"

struct nb_registry {
	struct nb_registry_config cfg;
	uint64_t expires_ms;
	struct nb_registry_peer *peers; /* cfg.max_peers slots */
	uint64_t *hash;                 /* per slot: hash of its id */
	struct nb_slots slots;
	struct nb_hidx by_id;
	struct nb_rank rank;   /* used slots, for nb_registry_at() */
	struct nb_ilist lru;   /* oldest last_seen first */
};

static uint64_t id_hash(const struct nb_registry *r, const char *id)
{
	return nb_siphash(r->cfg.hash_key, id, strlen(id));
}

int nb_registry_new(const struct nb_registry_config *cfg, struct nb_registry **ret)
{
	struct nb_registry *r;

	if (cfg == NULL || ret == NULL || cfg->max_peers < 1 ||
	    cfg->max_peers > NB_REGISTRY_MAX_MAX || cfg->expires_s < NB_CTRL_EXPIRES_MIN_S ||
	    cfg->expires_s > NB_CTRL_EXPIRES_MAX_S)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	r->cfg = *cfg;
	r->expires_ms = (uint64_t)cfg->expires_s * 1000;
	r->peers = calloc(cfg->max_peers, sizeof(*r->peers));
	r->hash = calloc(cfg->max_peers, sizeof(*r->hash));
	if (r->peers == NULL || r->hash == NULL || nb_slots_init(&r->slots, cfg->max_peers) != 0 ||
	    nb_hidx_init(&r->by_id, cfg->max_peers) != 0 ||
	    nb_rank_init(&r->rank, cfg->max_peers) != 0 ||
	    nb_ilist_init(&r->lru, cfg->max_peers) != 0)
		goto fail;
	*ret = r;
	return 0;
fail:
	nb_registry_free(r);
	return -ENOMEM;
}

void nb_registry_free(struct nb_registry *r)
{
	if (r == NULL)
		return;
	free(r->peers);
	free(r->hash);
	nb_slots_free(&r->slots);
	nb_hidx_free(&r->by_id);
	nb_rank_free(&r->rank);
	nb_ilist_free(&r->lru);
	free(r);
}

static bool expired(const struct nb_registry *r, const struct nb_registry_peer *p, uint64_t now)
{
	return now >= p->last_seen_ms && now - p->last_seen_ms >= r->expires_ms;
}

/* The slot holding id (live or expired), or NB_SLOT_NONE. */
static uint32_t find(const struct nb_registry *r, const char *id, uint64_t h)
{
	for (uint32_t s = nb_hidx_first(&r->by_id, h); s != NB_SLOT_NONE; s = nb_hidx_next(&r->by_id, s))
		if (r->hash[s] == h && strcmp(r->peers[s].id, id) == 0)
			return s;
	return NB_SLOT_NONE;
}

static void fill(struct nb_registry_peer *p, const struct nb_ctrl_register *reg,
		 const struct nb_addr *from, uint64_t now)
{
	p->reflexive = *from;
	p->n_local = reg->n_local <= NB_CTRL_MAX_ADDRS ? reg->n_local : NB_CTRL_MAX_ADDRS;
	memset(p->local, 0, sizeof(p->local));
	memcpy(p->local, reg->local, p->n_local * sizeof(p->local[0]));
	p->mapping = reg->has_nat ? reg->mapping : NB_MAPPING_UNKNOWN;
	p->filtering = reg->has_nat ? reg->filtering : NB_FILTERING_UNKNOWN;
	p->has_hairpin = reg->has_nat && reg->has_hairpin;
	p->hairpin = p->has_hairpin && reg->hairpin;
	p->upnp = reg->has_upnp ? reg->upnp : NB_CTRL_UPNP_NONE;
	if (p->upnp == NB_CTRL_UPNP_MAPPED)
		p->upnp_external = reg->upnp_external;
	else
		memset(&p->upnp_external, 0, sizeof(p->upnp_external));
	p->udp_blocked = false;
	p->has_relayed = reg->has_relayed;
	if (p->has_relayed)
		p->relayed = reg->relayed;
	else
		memset(&p->relayed, 0, sizeof(p->relayed));
	p->last_seen_ms = now;
}

static void alt_clear(struct nb_registry_peer *p)
{
	p->has_alt = false;
	memset(&p->alt, 0, sizeof(p->alt));
	p->alt_mapping = NB_MAPPING_UNKNOWN;
	p->alt_filtering = NB_FILTERING_UNKNOWN;
	p->alt_seen_ms = 0;
}

static bool alt_live(const struct nb_registry *r, const struct nb_registry_peer *p, uint64_t now)
{
	return p->has_alt && !(now >= p->alt_seen_ms && now - p->alt_seen_ms >= r->expires_ms);
}

static void drop_slot(struct nb_registry *r, uint32_t s)
{
	nb_hidx_del(&r->by_id, r->hash[s], s);
	nb_rank_clear(&r->rank, s);
	nb_ilist_remove(&r->lru, s);
	nb_slots_give(&r->slots, s);
	memset(&r->peers[s], 0, sizeof(r->peers[s]));
}

int nb_registry_put(struct nb_registry *r, const struct nb_ctrl_register *reg,
		    const uint8_t *key, const struct nb_addr *from, uint64_t now,
		    enum nb_registry_change *ret_change, struct nb_addr *ret_old)
{
	uint64_t h = id_hash(r, reg->id);
	uint32_t s = find(r, reg->id, h);
	struct nb_registry_peer *p;
	enum nb_registry_change change;
	struct nb_addr old;

	if (s != NB_SLOT_NONE && expired(r, &r->peers[s], now)) {
		/* Gone in all but memory: the id is free for anyone. */
		drop_slot(r, s);
		s = NB_SLOT_NONE;
	}
	if (s == NB_SLOT_NONE) {
		s = nb_slots_take(&r->slots);
		if (s == NB_SLOT_NONE)
			return NB_REGISTRY_E_FULL;
		p = &r->peers[s];
		memset(p, 0, sizeof(*p));
		memcpy(p->id, reg->id, strnlen(reg->id, NB_CTRL_ID_MAX));
		memcpy(p->key, key, NB_KEY_LEN);
		p->registered_ms = now;
		r->hash[s] = h;
		nb_hidx_add(&r->by_id, h, s);
		nb_rank_set(&r->rank, s);
		nb_ilist_push_tail(&r->lru, s);
		fill(p, reg, from, now);
		if (ret_change != NULL)
			*ret_change = NB_REGISTRY_NEW;
		return 0;
	}
	p = &r->peers[s];
	/* A live name belongs to its key, from whatever address either side
	 * shows (an address is no proof; the key was, in the handshake). */
	if (!nb_key_equal(p->key, key))
		return NB_REGISTRY_E_CONFLICT;
	old = p->reflexive;
	change = nb_addr_equal(&old, from) ? NB_REGISTRY_REFRESHED : NB_REGISTRY_MOVED;
	fill(p, reg, from, now);
	if (change == NB_REGISTRY_MOVED) { /* another path: measured again */
		p->rtt_ms = 0;
		p->srtt8 = 0;
		if (p->has_alt && p->alt.family == from->family)
			alt_clear(p); /* moved into the alt's family: one address there */
	}
	nb_ilist_move_tail(&r->lru, s);
	if (ret_change != NULL)
		*ret_change = change;
	if (change == NB_REGISTRY_MOVED && ret_old != NULL)
		*ret_old = old;
	return 0;
}

int nb_registry_touch(struct nb_registry *r, const char *id, const uint8_t *key,
		      const struct nb_addr *from, uint64_t now)
{
	uint32_t s = find(r, id, id_hash(r, id));

	if (s == NB_SLOT_NONE || expired(r, &r->peers[s], now))
		return NB_REGISTRY_E_NOENT;
	if (!nb_key_equal(r->peers[s].key, key))
		return NB_REGISTRY_E_KEY;
	if (alt_live(r, &r->peers[s], now) && nb_addr_equal(&r->peers[s].alt, from)) {
		r->peers[s].alt_seen_ms = now; /* the alt only: the entry lives by its own */
		return 0;
	}
	if (!nb_addr_equal(&r->peers[s].reflexive, from))
		return NB_REGISTRY_E_ADDRESS;
	r->peers[s].last_seen_ms = now;
	nb_ilist_move_tail(&r->lru, s);
	return 0;
}

int nb_registry_put_alt(struct nb_registry *r, const struct nb_ctrl_register *reg,
			const uint8_t *key, const struct nb_addr *from, uint64_t now,
			enum nb_registry_change *ret_change, struct nb_addr *ret_old)
{
	uint32_t s = find(r, reg->id, id_hash(r, reg->id));
	struct nb_registry_peer *p;
	enum nb_registry_change change;

	if (s == NB_SLOT_NONE || expired(r, &r->peers[s], now))
		return NB_REGISTRY_E_NOENT;
	p = &r->peers[s];
	if (!nb_key_equal(p->key, key))
		return NB_REGISTRY_E_CONFLICT;
	if (from->family == p->reflexive.family ||
	    (from->family != NB_AF_INET && from->family != NB_AF_INET6))
		return NB_REGISTRY_E_FAMILY;
	if (!alt_live(r, p, now))
		change = NB_REGISTRY_NEW;
	else if (nb_addr_equal(&p->alt, from))
		change = NB_REGISTRY_REFRESHED;
	else
		change = NB_REGISTRY_MOVED;
	if (change == NB_REGISTRY_MOVED && ret_old != NULL)
		*ret_old = p->alt;
	p->has_alt = true;
	p->alt = *from;
	p->alt_mapping = reg->has_nat ? reg->mapping : NB_MAPPING_UNKNOWN;
	p->alt_filtering = reg->has_nat ? reg->filtering : NB_FILTERING_UNKNOWN;
	p->alt_seen_ms = now;
	if (ret_change != NULL)
		*ret_change = change;
	return 0;
}

const struct nb_addr *nb_registry_alt(const struct nb_registry *r, const struct nb_registry_peer *p,
				      uint64_t now)
{
	return alt_live(r, p, now) ? &p->alt : NULL;
}

int nb_registry_remove(struct nb_registry *r, const char *id, const uint8_t *key, uint64_t now,
		       struct nb_registry_peer *ret)
{
	uint32_t s = find(r, id, id_hash(r, id));

	if (s == NB_SLOT_NONE || expired(r, &r->peers[s], now))
		return NB_REGISTRY_E_NOENT;
	if (!nb_key_equal(r->peers[s].key, key))
		return NB_REGISTRY_E_KEY;
	if (ret != NULL)
		*ret = r->peers[s];
	drop_slot(r, s);
	return 0;
}

int nb_registry_set_udp_blocked(struct nb_registry *r, const char *id, const uint8_t *key,
				bool udp_blocked, uint64_t now)
{
	uint32_t s = find(r, id, id_hash(r, id));

	if (s == NB_SLOT_NONE || expired(r, &r->peers[s], now))
		return NB_REGISTRY_E_NOENT;
	if (!nb_key_equal(r->peers[s].key, key))
		return NB_REGISTRY_E_KEY;
	r->peers[s].udp_blocked = udp_blocked;
	return 0;
}

int nb_registry_rtt_sample(struct nb_registry *r, const char *id, const uint8_t *key,
			   uint32_t sample_ms, uint64_t now)
{
	uint32_t s;
	struct nb_registry_peer *p;

	if (sample_ms == 0)
		return -EINVAL;
	s = find(r, id, id_hash(r, id));
	if (s == NB_SLOT_NONE || expired(r, &r->peers[s], now))
		return NB_REGISTRY_E_NOENT;
	p = &r->peers[s];
	if (!nb_key_equal(p->key, key))
		return NB_REGISTRY_E_KEY;
	if (p->rtt_ms == 0)
		p->srtt8 = (uint64_t)sample_ms * 8; /* RFC 6298 (2.2): SRTT <- R */
	else /* (2.3), times 8: 8 SRTT <- 8 SRTT - SRTT + R' */
		p->srtt8 = p->srtt8 - p->srtt8 / 8 + sample_ms;
	p->rtt_ms = p->srtt8 >= 8 ? (uint32_t)(p->srtt8 / 8) : 1;
	return 0;
}

const struct nb_registry_peer *nb_registry_get(const struct nb_registry *r, const char *id,
					       uint64_t now)
{
	uint32_t s = find(r, id, id_hash(r, id));

	if (s == NB_SLOT_NONE || expired(r, &r->peers[s], now))
		return NULL;
	return &r->peers[s];
}

int nb_registry_expire(struct nb_registry *r, uint64_t now, struct nb_registry_peer *ret)
{
	uint32_t s = r->lru.head;

	if (s == NB_SLOT_NONE || !expired(r, &r->peers[s], now))
		return 0;
	if (ret != NULL)
		*ret = r->peers[s];
	drop_slot(r, s);
	return 1;
}

uint64_t nb_registry_next_expiry(const struct nb_registry *r)
{
	uint32_t s = r->lru.head;

	if (s == NB_SLOT_NONE)
		return UINT64_MAX;
	return r->peers[s].last_seen_ms + r->expires_ms;
}

size_t nb_registry_count(const struct nb_registry *r)
{
	return r->rank.count;
}

const struct nb_registry_peer *nb_registry_at(const struct nb_registry *r, size_t i)
{
	uint32_t s = nb_rank_find(&r->rank, i);

	return s == NB_SLOT_NONE ? NULL : &r->peers[s];
}

void nb_registry_peer_nat(const struct nb_registry_peer *p, struct nb_peer_nat *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->mapping = p->mapping;
	ret->filtering = p->filtering;
	ret->udp_blocked = p->udp_blocked;
	/* UPnP: the peer says "mapped" only after it has verified the mapping
	 * itself; the broker's own probe of the external port is a later
	 * issue, so for now "mapped" counts as verified. */
	ret->upnp_verified = p->upnp == NB_CTRL_UPNP_MAPPED;
	ret->reflexive = p->reflexive;
}

bool nb_registry_peer_nat_fam(const struct nb_registry *r, const struct nb_registry_peer *p,
			      enum nb_fam f, uint64_t now, struct nb_peer_nat *ret)
{
	if (nb_addr_fam(&p->reflexive) == f) {
		nb_registry_peer_nat(p, ret);
		return true;
	}
	if (!alt_live(r, p, now) || nb_addr_fam(&p->alt) != f)
		return false;
	memset(ret, 0, sizeof(*ret));
	ret->mapping = p->alt_mapping;
	ret->filtering = p->alt_filtering;
	ret->reflexive = p->alt;
	return true;
}
