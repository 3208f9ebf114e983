/* broker/table.c - bounded index helpers: SipHash, hash index, rank index, slot lists. */
#include "broker/table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- SipHash-2-4 ----------------------------------------------------------- */

static uint64_t get_u64le(const uint8_t *p)
{
	uint8_t b[8];
	uint64_t v = 0;

	memcpy(b, p, 8);
	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static uint64_t rotl(uint64_t x, unsigned b)
{
	return x << b | x >> (64 - b);
}

#define SIPROUND                                                             \
	do {                                                                 \
		v0 += v1;                                                    \
		v1 = rotl(v1, 13);                                           \
		v1 ^= v0;                                                    \
		v0 = rotl(v0, 32);                                           \
		v2 += v3;                                                    \
		v3 = rotl(v3, 16);                                           \
		v3 ^= v2;                                                    \
		v0 += v3;                                                    \
		v3 = rotl(v3, 21);                                           \
		v3 ^= v0;                                                    \
		v2 += v1;                                                    \
		v1 = rotl(v1, 17);                                           \
		v1 ^= v2;                                                    \
		v2 = rotl(v2, 32);                                           \
	} while (0)

uint64_t nb_siphash(const uint8_t key[NB_SIPHASH_KEY_LEN], const void *data, size_t len)
{
	const uint8_t *in = data;
	uint64_t k0 = get_u64le(key), k1 = get_u64le(key + 8);
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t v3 = 0x7465646279746573ULL ^ k1;
	uint64_t b = (uint64_t)len << 56, m;
	size_t off = 0;

	while (len - off >= 8) {
		m = get_u64le(in + off);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
		off += 8;
	}
	for (size_t i = 0; i < len - off; i++)
		b |= (uint64_t)in[off + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- Hash index ------------------------------------------------------------ */

static bool cap_ok(size_t cap)
{
	return cap >= 1 && cap <= NB_SLOT_MAX;
}

int nb_hidx_init(struct nb_hidx *h, size_t cap)
{
	uint64_t buckets = 16;
	uint32_t *head, *next;

	if (!cap_ok(cap))
		return -EINVAL;
	while (buckets < cap)
		buckets <<= 1;
	head = calloc((size_t)buckets, sizeof(*head));
	next = calloc(cap, sizeof(*next));
	if (head == NULL || next == NULL) {
		free(head);
		free(next);
		return -ENOMEM;
	}
	h->head = head;
	h->next = next;
	h->mask = buckets - 1;
	h->cap = cap;
	return 0;
}

void nb_hidx_free(struct nb_hidx *h)
{
	if (h == NULL)
		return;
	free(h->head);
	free(h->next);
	memset(h, 0, sizeof(*h));
}

void nb_hidx_add(struct nb_hidx *h, uint64_t hash, uint32_t slot)
{
	size_t b = (size_t)(hash & h->mask);

	h->next[slot] = h->head[b];
	h->head[b] = slot + 1;
}

void nb_hidx_del(struct nb_hidx *h, uint64_t hash, uint32_t slot)
{
	uint32_t *link = &h->head[(size_t)(hash & h->mask)];

	while (*link != 0) {
		if (*link == slot + 1) {
			*link = h->next[slot];
			h->next[slot] = 0;
			return;
		}
		link = &h->next[*link - 1];
	}
}

uint32_t nb_hidx_first(const struct nb_hidx *h, uint64_t hash)
{
	uint32_t v = h->head[(size_t)(hash & h->mask)];

	return v == 0 ? NB_SLOT_NONE : v - 1;
}

uint32_t nb_hidx_next(const struct nb_hidx *h, uint32_t slot)
{
	uint32_t v = h->next[slot];

	return v == 0 ? NB_SLOT_NONE : v - 1;
}

/* ---- Rank index (Fenwick tree) -------------------------------------------- */

int nb_rank_init(struct nb_rank *r, size_t cap)
{
	uint32_t *t;
	size_t top = 1;

	if (!cap_ok(cap))
		return -EINVAL;
	t = calloc(cap + 1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	while (top <= cap / 2)
		top <<= 1;
	r->tree = t;
	r->cap = cap;
	r->count = 0;
	r->top = top;
	return 0;
}

void nb_rank_free(struct nb_rank *r)
{
	if (r == NULL)
		return;
	free(r->tree);
	memset(r, 0, sizeof(*r));
}

static void rank_add(struct nb_rank *r, uint32_t slot, int delta)
{
	for (size_t i = (size_t)slot + 1; i <= r->cap; i += i & (~i + 1))
		r->tree[i] = (uint32_t)((int64_t)r->tree[i] + delta);
}

void nb_rank_set(struct nb_rank *r, uint32_t slot)
{
	rank_add(r, slot, 1);
	r->count++;
}

void nb_rank_clear(struct nb_rank *r, uint32_t slot)
{
	rank_add(r, slot, -1);
	r->count--;
}

uint32_t nb_rank_find(const struct nb_rank *r, size_t k)
{
	size_t pos = 0;

	if (k >= r->count)
		return NB_SLOT_NONE;
	/* Binary lifting: the largest pos with prefix(pos) <= k; the answer
	 * is the slot at 1-based position pos + 1. */
	for (size_t step = r->top; step > 0; step >>= 1) {
		if (pos + step <= r->cap && r->tree[pos + step] <= k) {
			pos += step;
			k -= r->tree[pos];
		}
	}
	return (uint32_t)pos;
}

/* ---- Intrusive list ---------------------------------------------------------- */

int nb_ilist_init(struct nb_ilist *l, size_t cap)
{
	uint32_t *p, *n;

	if (!cap_ok(cap))
		return -EINVAL;
	p = calloc(cap, sizeof(*p));
	n = calloc(cap, sizeof(*n));
	if (p == NULL || n == NULL) {
		free(p);
		free(n);
		return -ENOMEM;
	}
	l->prev = p;
	l->next = n;
	l->head = l->tail = NB_SLOT_NONE;
	l->n = 0;
	return 0;
}

void nb_ilist_free(struct nb_ilist *l)
{
	if (l == NULL)
		return;
	free(l->prev);
	free(l->next);
	memset(l, 0, sizeof(*l));
}

void nb_ilist_push_tail(struct nb_ilist *l, uint32_t slot)
{
	l->prev[slot] = l->tail;
	l->next[slot] = NB_SLOT_NONE;
	if (l->tail != NB_SLOT_NONE)
		l->next[l->tail] = slot;
	else
		l->head = slot;
	l->tail = slot;
	l->n++;
}

void nb_ilist_remove(struct nb_ilist *l, uint32_t slot)
{
	uint32_t p = l->prev[slot], n = l->next[slot];

	if (p != NB_SLOT_NONE)
		l->next[p] = n;
	else
		l->head = n;
	if (n != NB_SLOT_NONE)
		l->prev[n] = p;
	else
		l->tail = p;
	l->n--;
}

void nb_ilist_move_tail(struct nb_ilist *l, uint32_t slot)
{
	if (l->tail == slot)
		return;
	nb_ilist_remove(l, slot);
	nb_ilist_push_tail(l, slot);
}

/* ---- Slot allocator ------------------------------------------------------------ */

int nb_slots_init(struct nb_slots *s, size_t cap)
{
	uint32_t *f;

	if (!cap_ok(cap))
		return -EINVAL;
	f = calloc(cap, sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	s->free = f;
	s->n_free = 0;
	s->high = 0;
	s->cap = cap;
	return 0;
}

void nb_slots_free(struct nb_slots *s)
{
	if (s == NULL)
		return;
	free(s->free);
	memset(s, 0, sizeof(*s));
}

uint32_t nb_slots_take(struct nb_slots *s)
{
	if (s->n_free > 0)
		return s->free[--s->n_free];
	if (s->high < s->cap)
		return (uint32_t)s->high++;
	return NB_SLOT_NONE;
}

void nb_slots_give(struct nb_slots *s, uint32_t slot)
{
	s->free[s->n_free++] = slot;
}
