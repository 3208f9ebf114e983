/* broker/ratelimit.c - per-source-IP limiter: GCRA per IPv4 address or IPv6 /64, a fixed table, least recently seen recycled. */
#include "broker/ratelimit.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The emission interval, in time units of 1/(1000 * rate) s: 1/rate s. */
#define T_UNITS 1000u
/* The key: the family, then 4 bytes (IPv4) or 8 bytes (the IPv6 /64),
 * zero-padded. All zero: a source without an address. */
#define KEY_LEN 9

struct entry {
	uint64_t hash;                      /* of key */
	uint64_t tat[NB_RATELIMIT_BUDGETS]; /* GCRA theoretical arrival times, in time units */
	uint64_t penalty_end;               /* ms; 0: none */
	uint8_t key[KEY_LEN];
	bool over[NB_RATELIMIT_BUDGETS];    /* refused since the bucket was last full */
};

struct nb_ratelimit {
	struct nb_ratelimit_config cfg;
	uint64_t tau;       /* burst tolerance: (burst - 1) * T_UNITS */
	struct entry *e;    /* cfg.entries slots; [0, st.used) in use */
	struct nb_hidx idx; /* key hash -> slots */
	struct nb_ilist lru; /* slots in use, least recently seen first */
	struct nb_ratelimit_stats st;
};

void nb_ratelimit_config_default(struct nb_ratelimit_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->rate = NB_RATELIMIT_DEFAULT_RATE;
	cfg->burst = NB_RATELIMIT_DEFAULT_BURST;
	cfg->entries = NB_RATELIMIT_DEFAULT_ENTRIES;
	cfg->penalty_s = NB_RATELIMIT_DEFAULT_PENALTY_S;
}

int nb_ratelimit_new(const struct nb_ratelimit_config *cfg, struct nb_ratelimit **ret)
{
	struct nb_ratelimit *rl;

	if (cfg == NULL || ret == NULL || cfg->rate < 1 || cfg->rate > NB_RATELIMIT_RATE_MAX ||
	    cfg->burst < 1 || cfg->burst > NB_RATELIMIT_BURST_MAX || cfg->entries < 1 ||
	    cfg->entries > NB_RATELIMIT_ENTRIES_MAX || cfg->penalty_s > NB_RATELIMIT_PENALTY_MAX_S)
		return -EINVAL;
	rl = calloc(1, sizeof(*rl));
	if (rl == NULL)
		return -ENOMEM;
	rl->cfg = *cfg;
	rl->tau = (uint64_t)(cfg->burst - 1) * T_UNITS;
	rl->st.entries = cfg->entries;
	rl->e = calloc(cfg->entries, sizeof(*rl->e));
	if (rl->e == NULL || nb_hidx_init(&rl->idx, cfg->entries) != 0 ||
	    nb_ilist_init(&rl->lru, cfg->entries) != 0)
		goto fail;
	*ret = rl;
	return 0;
fail:
	nb_ratelimit_free(rl);
	return -ENOMEM;
}

void nb_ratelimit_free(struct nb_ratelimit *rl)
{
	if (rl == NULL)
		return;
	free(rl->e);
	nb_hidx_free(&rl->idx);
	nb_ilist_free(&rl->lru);
	memset(rl->cfg.hash_key, 0, sizeof(rl->cfg.hash_key));
	free(rl);
}

const struct nb_ratelimit_stats *nb_ratelimit_get_stats(const struct nb_ratelimit *rl)
{
	return &rl->st;
}

const char *nb_ratelimit_verdict_name(enum nb_ratelimit_verdict v)
{
	switch (v) {
	case NB_RATELIMIT_ALLOW: return "allow";
	case NB_RATELIMIT_DENY_RATE: return "rate";
	case NB_RATELIMIT_DENY_PENALTY: return "penalty";
	}
	return NULL;
}

static void make_key(const struct nb_addr *a, uint8_t key[KEY_LEN])
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(key, 0, KEY_LEN);
	if (a->family == NB_AF_INET || (a->family == NB_AF_INET6 && memcmp(a->ip, v4mapped, 12) == 0)) {
		key[0] = NB_AF_INET;
		memcpy(key + 1, a->family == NB_AF_INET ? a->ip : a->ip + 12, 4);
	} else if (a->family == NB_AF_INET6) {
		key[0] = NB_AF_INET6;
		memcpy(key + 1, a->ip, 8); /* the /64 */
	}
}

static uint32_t find(const struct nb_ratelimit *rl, const uint8_t key[KEY_LEN], uint64_t h)
{
	for (uint32_t s = nb_hidx_first(&rl->idx, h); s != NB_SLOT_NONE; s = nb_hidx_next(&rl->idx, s))
		if (rl->e[s].hash == h && memcmp(rl->e[s].key, key, KEY_LEN) == 0)
			return s;
	return NB_SLOT_NONE;
}

/* True if forgetting e loses anything: a budget not full, or a penalty. */
static bool active(const struct entry *e, uint64_t now, uint64_t t_now)
{
	for (unsigned b = 0; b < NB_RATELIMIT_BUDGETS; b++)
		if (e->tat[b] > t_now)
			return true;
	return e->penalty_end != 0 && now < e->penalty_end;
}

/* A slot for a new source: a never used one, else the least recently seen
 * source's (counted; "active" if forgetting it loses anything). */
static uint32_t take_slot(struct nb_ratelimit *rl, uint64_t now, uint64_t t_now)
{
	uint32_t s;
	const struct entry *old;

	if (rl->st.used < rl->cfg.entries)
		return (uint32_t)rl->st.used++;
	s = rl->lru.head; /* entries >= 1 and all used: never empty */
	old = &rl->e[s];
	rl->st.recycled++;
	if (active(old, now, t_now))
		rl->st.recycled_active++;
	nb_hidx_del(&rl->idx, old->hash, s);
	nb_ilist_remove(&rl->lru, s);
	return s;
}

enum nb_ratelimit_verdict nb_ratelimit_check(struct nb_ratelimit *rl, const struct nb_addr *from,
					     unsigned budget, uint64_t now)
{
	uint8_t key[KEY_LEN];
	uint64_t h, t_now, tat;
	uint32_t s;
	struct entry *e;

	if (budget >= NB_RATELIMIT_BUDGETS)
		budget = NB_RATELIMIT_BUDGETS - 1;
	if (now > NB_RATELIMIT_NOW_MAX)
		now = NB_RATELIMIT_NOW_MAX;
	t_now = now * rl->cfg.rate; /* ms * rate = units of 1/(1000 * rate) s */
	make_key(from, key);
	h = nb_siphash(rl->cfg.hash_key, key, KEY_LEN);
	s = find(rl, key, h);
	if (s == NB_SLOT_NONE) {
		s = take_slot(rl, now, t_now);
		e = &rl->e[s];
		memset(e, 0, sizeof(*e));
		e->hash = h;
		memcpy(e->key, key, KEY_LEN);
		for (unsigned b = 0; b < NB_RATELIMIT_BUDGETS; b++)
			e->tat[b] = t_now; /* full buckets */
		nb_hidx_add(&rl->idx, h, s);
		nb_ilist_push_tail(&rl->lru, s);
	} else {
		e = &rl->e[s];
		nb_ilist_move_tail(&rl->lru, s);
	}

	if (e->penalty_end != 0) {
		if (now < e->penalty_end) {
			rl->st.denied_penalty++;
			return NB_RATELIMIT_DENY_PENALTY;
		}
		e->penalty_end = 0;
	}
	tat = e->tat[budget] > t_now ? e->tat[budget] : t_now;
	if (tat - t_now > rl->tau) {
		/* Refused: tat stays, so refusals do not push the source's
		 * next allowed request further out. */
		if (!e->over[budget])
			rl->st.episodes++;
		e->over[budget] = true;
		rl->st.denied_rate++;
		if (rl->cfg.penalty_s > 0) {
			e->penalty_end = now + (uint64_t)rl->cfg.penalty_s * 1000;
			rl->st.penalties++;
		}
		return NB_RATELIMIT_DENY_RATE;
	}
	if (e->tat[budget] <= t_now)
		e->over[budget] = false; /* a full bucket: back under the limit */
	e->tat[budget] = tat + T_UNITS;
	rl->st.allowed++;
	return NB_RATELIMIT_ALLOW;
}
