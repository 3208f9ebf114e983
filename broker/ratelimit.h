/* broker/ratelimit.h - per-source-IP request limiter: a GCRA bucket per IPv4
 * address or IPv6 /64 in a fixed table; when full, the least recently seen
 * source is forgotten.
 *
 * Pure: no I/O, no clock. Every call takes `now` in milliseconds of a
 * monotonic clock (values above NB_RATELIMIT_NOW_MAX count as that).
 *
 * The shell asks once per request, before any other work, and drops what
 * is refused without an answer (stuntman's --ddp does the same):
 *
 *   request from IP --> nb_ratelimit_check(rl, from, budget, now)
 *                         | ALLOW        -> handle it
 *                         | DENY_RATE    -> drop, count, log
 *                         | DENY_PENALTY -> drop, count
 *
 * Each source has NB_RATELIMIT_BUDGETS independent budgets of the same
 * rate and burst; the shell says which one a request draws on (the broker:
 * 0 for every UDP datagram, 1 for TCP requests). The penalty, and the
 * slot, are the source's.
 *
 * Per source and budget, GCRA (the Generic Cell Rate Algorithm, ITU-T I.371; a token
 * bucket in one number): `burst` requests at once, then one more every
 * 1/`rate` s. Exact in integers: time is kept in units of 1/(1000 * rate)
 * s, so the emission interval is exactly 1000 units whatever the rate.
 *
 *   tat = max(tat, now)          theoretical arrival time of the next one
 *   tat - now > (burst - 1) * T  -> refuse (tat unchanged: a refused
 *                                   request costs the source nothing more)
 *   else                         -> allow, tat += T
 *
 * Penalty (penalty_s > 0): the first refusal for rate also refuses every
 * request from that source for penalty_s seconds (the bucket keeps
 * refilling meanwhile). A request during the penalty does not extend it.
 *
 * Keys: an IPv4 address; for IPv6 the /64 (one subscriber's prefix: a host
 * picks any address in it). An IPv4-mapped IPv6 address counts as the IPv4
 * address. Ports are ignored.
 *
 * The table: `entries` slots allocated once. A source not in it takes a
 * fresh slot, or, when all are used, the least recently seen source's
 * slot. A source seen less recently than its buckets take to refill
 * (burst / rate s) and not in a penalty carries no information, so
 * forgetting it changes nothing; forgetting one that does ("active") is
 * counted in recycled_active: the table is too small for the sources
 * being limited, and they get a fresh burst.
 */
#ifndef NB_BROKER_RATELIMIT_H
#define NB_BROKER_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "broker/table.h"
#include "common/addr.h"

/* Defaults (docs/broker.md "Per-source rate limit" says why). */
#define NB_RATELIMIT_DEFAULT_RATE 50        /* requests per second per source */
#define NB_RATELIMIT_DEFAULT_BURST 500      /* requests at once */
#define NB_RATELIMIT_DEFAULT_ENTRIES 25000  /* sources remembered (stuntman's table size) */
#define NB_RATELIMIT_DEFAULT_PENALTY_S 0    /* off */
/* Budgets per source. */
#define NB_RATELIMIT_BUDGETS 2
/* Largest values accepted. */
#define NB_RATELIMIT_RATE_MAX 1000000
#define NB_RATELIMIT_BURST_MAX 1000000
#define NB_RATELIMIT_ENTRIES_MAX 10000000
#define NB_RATELIMIT_PENALTY_MAX_S 86400
/* now (ms) is clamped to this: now * rate stays below 2^63. 2^43 ms is
 * 278 years of uptime. */
#define NB_RATELIMIT_NOW_MAX (UINT64_C(1) << 43)

struct nb_ratelimit_config {
	uint32_t rate;      /* 1..NB_RATELIMIT_RATE_MAX requests per second */
	uint32_t burst;     /* 1..NB_RATELIMIT_BURST_MAX */
	size_t entries;     /* 1..NB_RATELIMIT_ENTRIES_MAX */
	uint32_t penalty_s; /* 0 (off)..NB_RATELIMIT_PENALTY_MAX_S */
	uint8_t hash_key[NB_SIPHASH_KEY_LEN]; /* secret, random: see table.h */
};

enum nb_ratelimit_verdict {
	NB_RATELIMIT_ALLOW = 0,
	NB_RATELIMIT_DENY_RATE,    /* over the rate and the burst */
	NB_RATELIMIT_DENY_PENALTY, /* in the penalty that followed a DENY_RATE */
};

struct nb_ratelimit_stats {
	uint64_t allowed, denied_rate, denied_penalty;
	uint64_t episodes;  /* times a source went over: a DENY_RATE, the first since its bucket was full */
	uint64_t penalties; /* penalties started */
	uint64_t recycled;  /* slots taken from the least recently seen source (table full) */
	uint64_t recycled_active; /* ... with a budget not full, or in a penalty */
	size_t used, entries;     /* slots in use, slots in all */
};

struct nb_ratelimit;

void nb_ratelimit_config_default(struct nb_ratelimit_config *cfg); /* hash_key all zero */

/* 0, -EINVAL (a value out of range) or -ENOMEM; *ret untouched on failure. */
int nb_ratelimit_new(const struct nb_ratelimit_config *cfg, struct nb_ratelimit **ret);
void nb_ratelimit_free(struct nb_ratelimit *rl); /* accepts NULL */

/* One request from `from`, drawing on `budget` (0..NB_RATELIMIT_BUDGETS-1;
 * anything larger counts as the last), at `now`. A source of family
 * NB_AF_NONE is one key of its own (always the same). */
enum nb_ratelimit_verdict nb_ratelimit_check(struct nb_ratelimit *rl, const struct nb_addr *from,
					     unsigned budget, uint64_t now);

const struct nb_ratelimit_stats *nb_ratelimit_get_stats(const struct nb_ratelimit *rl);

/* "allow", "rate", "penalty"; NULL for anything else. */
const char *nb_ratelimit_verdict_name(enum nb_ratelimit_verdict v);

#endif
