/* broker/table.h - bounded index helpers for the broker's tables: a keyed
 * hash (SipHash-2-4), a chained hash index, a rank index for paging, and an
 * intrusive list, all over slot numbers 0..cap-1 of a caller's array.
 *
 * Pure: no I/O, no clock. Each structure allocates its arrays once, at
 * init, sized for `cap` slots, with calloc: pages no slot has touched stay
 * untouched, so a large hard maximum costs address space, not memory,
 * until it is used. Nothing here grows or shrinks afterwards.
 *
 * The caller keeps the keys; the hash index only chains slots by hash, and
 * the caller compares keys while walking a chain:
 *
 *   for (uint32_t s = nb_hidx_first(&h, hash); s != NB_SLOT_NONE; s = nb_hidx_next(&h, s))
 *           if (key_of(s) == key) ...
 *
 * Hashes come from nb_siphash() under a secret key the shell supplies, so
 * an attacker who picks ids or transaction IDs cannot aim them all at one
 * chain (hash flooding).
 */
#ifndef NB_BROKER_TABLE_H
#define NB_BROKER_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NB_SLOT_NONE UINT32_MAX
/* Slots are uint32_t; NB_SLOT_NONE is reserved. */
#define NB_SLOT_MAX (UINT32_MAX - 1)

#define NB_SIPHASH_KEY_LEN 16

/* SipHash-2-4 (Aumasson and Bernstein, 2012) of data under key. */
uint64_t nb_siphash(const uint8_t key[NB_SIPHASH_KEY_LEN], const void *data, size_t len);

/* ---- Hash index: hash -> chain of slots ---------------------------------- */

struct nb_hidx {
	uint32_t *head; /* bucket -> slot + 1 (0: empty) */
	uint32_t *next; /* slot -> next slot + 1 in its chain (0: end) */
	uint64_t mask;  /* buckets - 1; buckets = smallest power of 2 >= cap, >= 16 */
	size_t cap;
};

/* 0, -EINVAL (cap 0 or > NB_SLOT_MAX) or -ENOMEM; *h untouched on failure. */
int nb_hidx_init(struct nb_hidx *h, size_t cap);
void nb_hidx_free(struct nb_hidx *h); /* accepts an all-zero struct */
/* Add slot (not in the index) under hash. */
void nb_hidx_add(struct nb_hidx *h, uint64_t hash, uint32_t slot);
/* Remove slot, which must be in the index under hash. */
void nb_hidx_del(struct nb_hidx *h, uint64_t hash, uint32_t slot);
uint32_t nb_hidx_first(const struct nb_hidx *h, uint64_t hash);
uint32_t nb_hidx_next(const struct nb_hidx *h, uint32_t slot);

/* ---- Rank index: the k-th used slot, for paging -------------------------- */

/* A Fenwick tree over "slot i is used" (Fenwick 1994): mark and unmark in
 * O(log cap), find the k-th used slot in slot order in O(log cap). Slot
 * order is the stable order the broker pages lists in. */
struct nb_rank {
	uint32_t *tree; /* 1-based, cap + 1 entries */
	size_t cap;
	size_t count; /* used slots */
	size_t top;   /* largest power of 2 <= cap */
};

int nb_rank_init(struct nb_rank *r, size_t cap); /* as nb_hidx_init */
void nb_rank_free(struct nb_rank *r);
void nb_rank_set(struct nb_rank *r, uint32_t slot);   /* slot must be unused */
void nb_rank_clear(struct nb_rank *r, uint32_t slot); /* slot must be used */
/* The k-th (0-based) used slot, or NB_SLOT_NONE when k >= count. */
uint32_t nb_rank_find(const struct nb_rank *r, size_t k);

/* ---- Intrusive doubly linked list of slots (LRU / FIFO order) ------------ */

struct nb_ilist {
	uint32_t *prev, *next; /* per slot, meaningful only while the slot is in the list */
	uint32_t head, tail;   /* NB_SLOT_NONE when empty */
	size_t n;
};

int nb_ilist_init(struct nb_ilist *l, size_t cap); /* as nb_hidx_init */
void nb_ilist_free(struct nb_ilist *l);
void nb_ilist_push_tail(struct nb_ilist *l, uint32_t slot); /* slot must not be in the list */
void nb_ilist_remove(struct nb_ilist *l, uint32_t slot);    /* slot must be in the list */
void nb_ilist_move_tail(struct nb_ilist *l, uint32_t slot); /* slot must be in the list */
static inline uint32_t nb_ilist_next(const struct nb_ilist *l, uint32_t slot)
{
	return l->next[slot];
}

/* ---- Slot allocator: a free list over slots, touched only as they are used */

struct nb_slots {
	uint32_t *free; /* stack of freed slots */
	size_t n_free;
	size_t high; /* slots [high, cap) were never used */
	size_t cap;
};

int nb_slots_init(struct nb_slots *s, size_t cap); /* as nb_hidx_init */
void nb_slots_free(struct nb_slots *s);
/* A free slot, or NB_SLOT_NONE when all cap are in use. */
uint32_t nb_slots_take(struct nb_slots *s);
void nb_slots_give(struct nb_slots *s, uint32_t slot);
static inline size_t nb_slots_used(const struct nb_slots *s)
{
	return s->high - s->n_free;
}

#endif
