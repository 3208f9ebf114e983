/* tests/unit/test_registry.c - the peer registry (names bound to keys) and the
 * index helpers under it (SipHash vectors, hash index, rank index, slot list). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/connectivity.h"
#include "broker/registry.h"
#include "broker/table.h"

#define E_MS 45000 /* expires_s 45 */

static struct nb_addr addr(const char *s)
{
	struct nb_addr a;

	memset(&a, 0, sizeof(a));
	assert_int_equal(nb_addr_parse(s, false, &a), 0);
	return a;
}

static struct nb_registry *reg_new(size_t max)
{
	struct nb_registry_config cfg;
	struct nb_registry *r = NULL;

	memset(&cfg, 0, sizeof(cfg));
	cfg.max_peers = max;
	cfg.expires_s = E_MS / 1000;
	for (unsigned i = 0; i < sizeof(cfg.hash_key); i++)
		cfg.hash_key[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(nb_registry_new(&cfg, &r), 0);
	assert_non_null(r);
	return r;
}

/* Three holders' static keys: KA, KB, KC (KB differs from KA in one bit). */
enum { KA = 0, KB, KC, NKEYS };
static const uint8_t *key(int k)
{
	static uint8_t keys[NKEYS][NB_KEY_LEN];

	for (unsigned i = 0; i < NB_KEY_LEN; i++) {
		keys[KA][i] = (uint8_t)(0x10 + i);
		keys[KB][i] = keys[KA][i];
		keys[KC][i] = (uint8_t)(0xC0 ^ i);
	}
	keys[KB][NB_KEY_LEN - 1] ^= 0x80;
	return keys[k];
}

static struct nb_ctrl_register reg_msg(const char *id, const char *token)
{
	struct nb_ctrl_register m;

	memset(&m, 0, sizeof(m));
	snprintf(m.id, sizeof(m.id), "%s", id);
	snprintf(m.token, sizeof(m.token), "%s", token);
	return m;
}

/* ---- SipHash-2-4: the reference vectors (key 00..0f, message 00..n-1) ---- */

static void test_siphash_vectors(void **state)
{
	static const struct {
		size_t len;
		uint64_t want;
	} cases[] = {
		{ 0, 0x726fdb47dd0e0e31ULL }, /* vectors.h, first entry */
		{ 15, 0xa129ca6149be45e5ULL }, /* the paper's appendix A example */
	};
	uint8_t key[16], msg[64];

	(void)state;
	for (unsigned i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (unsigned i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_true(nb_siphash(key, msg, cases[i].len) == cases[i].want);
	/* Keyed: another key, another hash. */
	key[0] ^= 1;
	assert_true(nb_siphash(key, msg, 15) != 0xa129ca6149be45e5ULL);
}

/* ---- Index helpers against naive models ---------------------------------- */

static void test_rank_model(void **state)
{
	enum { CAP = 1000 };
	struct nb_rank r;
	bool used[CAP] = { false };
	uint32_t x = 12345;

	(void)state;
	assert_int_equal(nb_rank_init(&r, 0), -EINVAL);
	assert_int_equal(nb_rank_init(&r, CAP), 0);
	for (int step = 0; step < 20000; step++) {
		x = x * 1103515245u + 12345u;
		uint32_t s = (x >> 8) % CAP;
		if (used[s])
			nb_rank_clear(&r, s);
		else
			nb_rank_set(&r, s);
		used[s] = !used[s];
		if (step % 97 == 0) {
			size_t k = 0;
			for (uint32_t i = 0; i < CAP; i++)
				if (used[i])
					assert_int_equal(nb_rank_find(&r, k++), i);
			assert_int_equal(r.count, k);
			assert_int_equal(nb_rank_find(&r, k), NB_SLOT_NONE);
		}
	}
	nb_rank_free(&r);
	nb_rank_free(NULL);
	/* Every capacity around powers of two. */
	for (size_t cap = 1; cap <= 70; cap++) {
		assert_int_equal(nb_rank_init(&r, cap), 0);
		for (uint32_t i = 0; i < cap; i++)
			nb_rank_set(&r, i);
		for (uint32_t i = 0; i < cap; i++)
			assert_int_equal(nb_rank_find(&r, i), i);
		nb_rank_clear(&r, 0);
		for (uint32_t i = 0; i + 1 < cap; i++)
			assert_int_equal(nb_rank_find(&r, i), i + 1);
		nb_rank_free(&r);
	}
}

static void test_hidx_chains(void **state)
{
	struct nb_hidx h;
	bool seen[100];

	(void)state;
	assert_int_equal(nb_hidx_init(&h, 100), 0);
	/* All under one hash: one long chain; delete from its middle, ends. */
	for (uint32_t s = 0; s < 100; s++)
		nb_hidx_add(&h, 7, s);
	nb_hidx_del(&h, 7, 50);
	nb_hidx_del(&h, 7, 99); /* the head (added last) */
	nb_hidx_del(&h, 7, 0);  /* the tail */
	memset(seen, 0, sizeof(seen));
	for (uint32_t s = nb_hidx_first(&h, 7); s != NB_SLOT_NONE; s = nb_hidx_next(&h, s))
		seen[s] = true;
	for (uint32_t s = 0; s < 100; s++)
		assert_int_equal(seen[s], !(s == 50 || s == 99 || s == 0));
	assert_int_equal(nb_hidx_first(&h, 8), NB_SLOT_NONE);
	nb_hidx_free(&h);
	nb_hidx_free(&h); /* idempotent on a freed struct */
}

static void test_ilist_slots(void **state)
{
	struct nb_ilist l;
	struct nb_slots s;

	(void)state;
	assert_int_equal(nb_ilist_init(&l, 4), 0);
	nb_ilist_push_tail(&l, 2);
	nb_ilist_push_tail(&l, 0);
	nb_ilist_push_tail(&l, 3);
	nb_ilist_move_tail(&l, 2); /* 0 3 2 */
	assert_int_equal(l.head, 0);
	assert_int_equal(nb_ilist_next(&l, 0), 3);
	assert_int_equal(l.tail, 2);
	nb_ilist_remove(&l, 3);
	assert_int_equal(nb_ilist_next(&l, 0), 2);
	nb_ilist_remove(&l, 0);
	nb_ilist_remove(&l, 2);
	assert_int_equal(l.head, NB_SLOT_NONE);
	assert_int_equal(l.n, 0);
	nb_ilist_free(&l);

	assert_int_equal(nb_slots_init(&s, 3), 0);
	assert_int_equal(nb_slots_take(&s), 0);
	assert_int_equal(nb_slots_take(&s), 1);
	assert_int_equal(nb_slots_take(&s), 2);
	assert_int_equal(nb_slots_take(&s), NB_SLOT_NONE);
	nb_slots_give(&s, 1);
	assert_int_equal(nb_slots_used(&s), 2);
	assert_int_equal(nb_slots_take(&s), 1);
	nb_slots_free(&s);
}

/* ---- Registry ------------------------------------------------------------ */

static void test_config(void **state)
{
	struct nb_registry_config cfg;
	struct nb_registry *r = (struct nb_registry *)(uintptr_t)0x1;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.expires_s = 45;
	assert_int_equal(nb_registry_new(&cfg, &r), -EINVAL); /* max_peers 0 */
	cfg.max_peers = NB_REGISTRY_MAX_MAX + 1;
	assert_int_equal(nb_registry_new(&cfg, &r), -EINVAL);
	cfg.max_peers = 10;
	cfg.expires_s = 0;
	assert_int_equal(nb_registry_new(&cfg, &r), -EINVAL);
	cfg.expires_s = NB_CTRL_EXPIRES_MAX_S + 1;
	assert_int_equal(nb_registry_new(&cfg, &r), -EINVAL);
	assert_ptr_equal(r, (struct nb_registry *)(uintptr_t)0x1); /* untouched */
	nb_registry_free(NULL);
}

/* One step of a registration table: who registers, with what key, from
 * where, with what token, at what time, and what the registry must say. */
struct put_case {
	const char *id;
	int key;
	const char *from, *token;
	uint64_t now;
	int rc;                         /* 0 or an NB_REGISTRY_E_* */
	enum nb_registry_change change; /* when rc == 0 */
	const char *old;                /* MOVED: the old address */
	const char *reflexive_after;    /* what get(id) says afterwards (NULL: absent) */
};

static const struct put_case put_cases[] = {
	/* new, then the same key from the same address again */
	{ "alice", KA, "203.0.113.1:4000", "", 0, 0, NB_REGISTRY_NEW, NULL, "203.0.113.1:4000" },
	{ "alice", KA, "203.0.113.1:4000", "", 10, 0, NB_REGISTRY_REFRESHED, NULL, "203.0.113.1:4000" },
	/* the NAT's mapping changed: same key, new address: moved */
	{ "alice", KA, "203.0.113.1:4001", "", 20, 0, NB_REGISTRY_MOVED, "203.0.113.1:4000",
	  "203.0.113.1:4001" },
	/* another key claims alice: conflict, nothing changes; from elsewhere ... */
	{ "alice", KB, "198.51.100.9:5000", "", 30, NB_REGISTRY_E_CONFLICT, 0, NULL,
	  "203.0.113.1:4001" },
	/* ... from the very address alice is at (an address proves nothing) ... */
	{ "alice", KB, "203.0.113.1:4001", "", 35, NB_REGISTRY_E_CONFLICT, 0, NULL,
	  "203.0.113.1:4001" },
	/* the holder shows a token now: refreshed (tokens decide nothing) */
	{ "alice", KA, "203.0.113.1:4001", "t0ken", 40, 0, NB_REGISTRY_REFRESHED, NULL,
	  "203.0.113.1:4001" },
	/* ... so another key with the very same token still conflicts ... */
	{ "alice", KB, "198.51.100.9:5000", "t0ken", 50, NB_REGISTRY_E_CONFLICT, 0, NULL,
	  "203.0.113.1:4001" },
	/* ... as does one with no token, or a third key */
	{ "alice", KC, "198.51.100.9:5000", "", 55, NB_REGISTRY_E_CONFLICT, 0, NULL,
	  "203.0.113.1:4001" },
	/* the holder moves, whatever token it shows */
	{ "alice", KA, "198.51.100.9:5000", "other", 60, 0, NB_REGISTRY_MOVED, "203.0.113.1:4001",
	  "198.51.100.9:5000" },
	/* IPv6, another id, another key */
	{ "bob", KB, "[2001:db8::7]:9", "", 70, 0, NB_REGISTRY_NEW, NULL, "[2001:db8::7]:9" },
	/* one key may hold several names; the registry holds 3: carol fits, dave does not */
	{ "carol", KA, "203.0.113.3:1", "", 80, 0, NB_REGISTRY_NEW, NULL, "203.0.113.3:1" },
	{ "dave", KC, "203.0.113.4:1", "", 90, NB_REGISTRY_E_FULL, 0, NULL, NULL },
	/* a full registry still refreshes and moves existing ids */
	{ "carol", KA, "203.0.113.3:2", "", 100, 0, NB_REGISTRY_MOVED, "203.0.113.3:1", "203.0.113.3:2" },
	/* ... and still refuses a taker with another key */
	{ "carol", KB, "203.0.113.3:2", "", 110, NB_REGISTRY_E_CONFLICT, 0, NULL, "203.0.113.3:2" },
	/* one ms before alice expires (last seen 60) she is still hers */
	{ "alice", KC, "192.0.2.1:1", "", 60 + E_MS - 1, NB_REGISTRY_E_CONFLICT, 0, NULL,
	  "198.51.100.9:5000" },
	/* after alice expired, her id is anyone's, even full */
	{ "alice", KC, "192.0.2.1:1", "other", 60 + E_MS, 0, NB_REGISTRY_NEW, NULL, "192.0.2.1:1" },
	/* ... and from then on the old key is the stranger */
	{ "alice", KA, "198.51.100.9:5000", "", 60 + E_MS + 1, NB_REGISTRY_E_CONFLICT, 0, NULL,
	  "192.0.2.1:1" },
};

static void test_put_table(void **state)
{
	struct nb_registry *r = reg_new(3);

	(void)state;
	for (size_t i = 0; i < sizeof(put_cases) / sizeof(put_cases[0]); i++) {
		const struct put_case *c = &put_cases[i];
		struct nb_ctrl_register m = reg_msg(c->id, c->token);
		struct nb_addr from = addr(c->from), old, sentinel = addr("192.0.2.99:99");
		enum nb_registry_change change = (enum nb_registry_change)99;
		const struct nb_registry_peer *p;
		int rc;

		old = sentinel;
		rc = nb_registry_put(r, &m, key(c->key), &from, c->now, &change, &old);
		if (rc != c->rc)
			fail_msg("case %zu (%s from %s): rc %d, want %d", i, c->id, c->from, rc, c->rc);
		if (rc == 0) {
			assert_int_equal(change, c->change);
			if (c->old != NULL) {
				struct nb_addr want = addr(c->old);
				assert_true(nb_addr_equal(&old, &want));
			} else {
				assert_true(nb_addr_equal(&old, &sentinel)); /* untouched */
			}
		} else {
			assert_int_equal(change, 99); /* untouched on failure */
			assert_true(nb_addr_equal(&old, &sentinel));
		}
		p = nb_registry_get(r, c->id, c->now);
		if (c->reflexive_after == NULL) {
			assert_null(p);
		} else {
			struct nb_addr want = addr(c->reflexive_after);
			assert_non_null(p);
			assert_true(nb_addr_equal(&p->reflexive, &want));
			assert_string_equal(p->id, c->id);
			if (rc == 0) /* the entry holds the key that put it */
				assert_memory_equal(p->key, key(c->key), NB_KEY_LEN);
		}
	}
	nb_registry_free(r);
}

static void test_fields_replaced(void **state)
{
	struct nb_registry *r = reg_new(4);
	struct nb_ctrl_register m = reg_msg("alice", "");
	struct nb_addr from = addr("203.0.113.1:4000");
	struct nb_peer_nat nat;
	const struct nb_registry_peer *p;

	(void)state;
	m.n_local = 2;
	m.local[0] = addr("192.168.1.10:4000");
	m.local[1] = addr("[fe80::1]:4000");
	m.has_nat = true;
	m.mapping = NB_MAPPING_ENDPOINT_INDEPENDENT;
	m.filtering = NB_FILTERING_ADDRESS_DEPENDENT;
	m.has_hairpin = true;
	m.hairpin = true;
	m.has_upnp = true;
	m.upnp = NB_CTRL_UPNP_MAPPED;
	m.upnp_external = addr("203.0.113.1:51000");
	assert_int_equal(nb_registry_put(r, &m, key(KA), &from, 5, NULL, NULL), 0);
	p = nb_registry_get(r, "alice", 5);
	assert_non_null(p);
	assert_int_equal(p->n_local, 2);
	assert_int_equal(p->mapping, NB_MAPPING_ENDPOINT_INDEPENDENT);
	assert_int_equal(p->filtering, NB_FILTERING_ADDRESS_DEPENDENT);
	assert_true(p->has_hairpin && p->hairpin);
	assert_int_equal(p->upnp, NB_CTRL_UPNP_MAPPED);
	assert_false(p->udp_blocked);
	assert_int_equal(p->registered_ms, 5);
	nb_registry_peer_nat(p, &nat);
	assert_true(nat.upnp_verified); /* "mapped" counts as verified (for now) */
	assert_true(nb_addr_equal(&nat.reflexive, &from));

	/* A re-register without nat/upnp resets them: every field replaced. */
	m = reg_msg("alice", "");
	assert_int_equal(nb_registry_put(r, &m, key(KA), &from, 9, NULL, NULL), 0);
	p = nb_registry_get(r, "alice", 9);
	assert_int_equal(p->n_local, 0);
	assert_int_equal(p->mapping, NB_MAPPING_UNKNOWN);
	assert_int_equal(p->filtering, NB_FILTERING_UNKNOWN);
	assert_false(p->has_hairpin);
	assert_int_equal(p->upnp, NB_CTRL_UPNP_NONE);
	assert_int_equal(p->registered_ms, 5); /* first registration kept */
	assert_int_equal(p->last_seen_ms, 9);
	nb_registry_peer_nat(p, &nat);
	assert_false(nat.upnp_verified);
	nb_registry_free(r);
}

static void test_expiry(void **state)
{
	struct nb_registry *r = reg_new(8);
	struct nb_ctrl_register a = reg_msg("a", ""), b = reg_msg("b", "");
	struct nb_addr fa = addr("203.0.113.1:1"), fb = addr("203.0.113.2:1");
	struct nb_addr other = addr("203.0.113.1:2");
	struct nb_registry_peer gone;

	(void)state;
	assert_int_equal(nb_registry_next_expiry(r), UINT64_MAX);
	assert_int_equal(nb_registry_expire(r, 1000000, &gone), 0);
	assert_int_equal(nb_registry_put(r, &a, key(KA), &fa, 0, NULL, NULL), 0);
	assert_int_equal(nb_registry_put(r, &b, key(KB), &fb, 10, NULL, NULL), 0);
	assert_int_equal(nb_registry_next_expiry(r), E_MS);
	/* keepalive: from the holder's key, at the registered address only */
	assert_int_equal(nb_registry_touch(r, "a", key(KA), &other, 20), NB_REGISTRY_E_ADDRESS);
	assert_int_equal(nb_registry_touch(r, "a", key(KB), &fa, 20), NB_REGISTRY_E_KEY);
	assert_int_equal(nb_registry_touch(r, "a", key(KC), &other, 20), NB_REGISTRY_E_KEY);
	assert_int_equal(nb_registry_touch(r, "zz", key(KA), &fa, 20), NB_REGISTRY_E_NOENT);
	assert_int_equal(nb_registry_next_expiry(r), E_MS); /* none of these refreshed a */
	assert_int_equal(nb_registry_touch(r, "a", key(KA), &fa, 20), 0);
	/* b is now the oldest */
	assert_int_equal(nb_registry_next_expiry(r), 10 + E_MS);
	assert_non_null(nb_registry_get(r, "b", 10 + E_MS - 1));
	assert_null(nb_registry_get(r, "b", 10 + E_MS));
	assert_int_equal(nb_registry_touch(r, "b", key(KB), &fb, 10 + E_MS), NB_REGISTRY_E_NOENT);
	assert_int_equal(nb_registry_expire(r, 10 + E_MS - 1, &gone), 0);
	assert_int_equal(nb_registry_count(r), 2); /* still in memory until taken out */
	assert_int_equal(nb_registry_expire(r, 10 + E_MS, &gone), 1);
	assert_string_equal(gone.id, "b");
	assert_true(nb_addr_equal(&gone.reflexive, &fb));
	assert_int_equal(nb_registry_expire(r, 10 + E_MS, NULL), 0);
	assert_int_equal(nb_registry_count(r), 1);
	assert_int_equal(nb_registry_next_expiry(r), 20 + E_MS);
	assert_int_equal(nb_registry_expire(r, 20 + E_MS, NULL), 1);
	assert_int_equal(nb_registry_count(r), 0);
	assert_int_equal(nb_registry_next_expiry(r), UINT64_MAX);
	nb_registry_free(r);
}

/* bye: only the holder's key takes a name out, at once, from any address. */
static void test_remove(void **state)
{
	struct nb_registry *r = reg_new(2);
	struct nb_ctrl_register a = reg_msg("a", "tok"), b = reg_msg("b", "");
	struct nb_addr fa = addr("203.0.113.1:1"), fb = addr("203.0.113.2:1");
	struct nb_registry_peer gone;

	(void)state;
	assert_int_equal(nb_registry_put(r, &a, key(KA), &fa, 0, NULL, NULL), 0);
	assert_int_equal(nb_registry_put(r, &b, key(KA), &fb, 0, NULL, NULL), 0); /* two names, one key */
	memset(&gone, 0x5A, sizeof(gone));
	/* not the holder: refused, the name stays, *ret untouched */
	assert_int_equal(nb_registry_remove(r, "a", key(KB), 10, &gone), NB_REGISTRY_E_KEY);
	assert_int_equal(nb_registry_remove(r, "a", key(KC), 10, &gone), NB_REGISTRY_E_KEY);
	assert_int_equal(nb_registry_remove(r, "zz", key(KA), 10, &gone), NB_REGISTRY_E_NOENT);
	assert_int_equal(gone.id[0], 0x5A);
	assert_non_null(nb_registry_get(r, "a", 10));
	assert_int_equal(nb_registry_count(r), 2);
	/* the holder: gone at once (the full registry has room again) */
	assert_int_equal(nb_registry_remove(r, "a", key(KA), 10, &gone), 0);
	assert_string_equal(gone.id, "a");
	assert_memory_equal(gone.key, key(KA), NB_KEY_LEN);
	assert_true(nb_addr_equal(&gone.reflexive, &fa));
	assert_null(nb_registry_get(r, "a", 10));
	assert_int_equal(nb_registry_count(r), 1);
	assert_non_null(nb_registry_get(r, "b", 10)); /* the key's other name stays */
	assert_int_equal(nb_registry_remove(r, "a", key(KA), 11, NULL), NB_REGISTRY_E_NOENT);
	assert_int_equal(nb_registry_touch(r, "a", key(KA), &fa, 11), NB_REGISTRY_E_NOENT);
	/* the name is free: another key takes it */
	assert_int_equal(nb_registry_put(r, &a, key(KB), &fa, 20, NULL, NULL), 0);
	assert_memory_equal(nb_registry_get(r, "a", 20)->key, key(KB), NB_KEY_LEN);
	assert_int_equal(nb_registry_remove(r, "a", key(KA), 30, NULL), NB_REGISTRY_E_KEY);
	/* an expired entry cannot be removed (it is gone already) */
	assert_int_equal(nb_registry_remove(r, "b", key(KA), E_MS, NULL), NB_REGISTRY_E_NOENT);
	assert_int_equal(nb_registry_expire(r, E_MS, &gone), 1);
	assert_string_equal(gone.id, "b");
	assert_int_equal(nb_registry_next_expiry(r), 20 + E_MS);
	assert_int_equal(nb_registry_remove(r, "a", key(KB), 30, NULL), 0);
	assert_int_equal(nb_registry_next_expiry(r), UINT64_MAX);
	nb_registry_free(r);
}

/* Expired entries count against the limit until taken out. */
static void test_full_until_expired(void **state)
{
	struct nb_registry *r = reg_new(1);
	struct nb_ctrl_register a = reg_msg("a", ""), b = reg_msg("b", "");
	struct nb_addr fa = addr("203.0.113.1:1"), fb = addr("203.0.113.2:1");

	(void)state;
	assert_int_equal(nb_registry_put(r, &a, key(KA), &fa, 0, NULL, NULL), 0);
	assert_int_equal(nb_registry_put(r, &b, key(KB), &fb, E_MS, NULL, NULL), NB_REGISTRY_E_FULL);
	assert_int_equal(nb_registry_expire(r, E_MS, NULL), 1);
	assert_int_equal(nb_registry_put(r, &b, key(KB), &fb, E_MS, NULL, NULL), 0);
	nb_registry_free(r);
}

/* Slot order: stable while entries live; pages see every live entry once. */
static void test_order(void **state)
{
	struct nb_registry *r = reg_new(64);
	char id[16];

	(void)state;
	for (int i = 0; i < 50; i++) {
		char as[32];
		struct nb_ctrl_register m;
		struct nb_addr f;
		snprintf(id, sizeof(id), "p%02d", i);
		snprintf(as, sizeof(as), "203.0.113.%d:%d", i + 1, 1000 + i);
		m = reg_msg(id, "");
		f = addr(as);
		/* p00..p24 at time 0, the rest at time 1000 */
		assert_int_equal(nb_registry_put(r, &m, key(i % 2 ? KA : KB), &f, i < 25 ? 0 : 1000, NULL, NULL), 0);
	}
	for (int i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "p%02d", i);
		assert_string_equal(nb_registry_at(r, (size_t)i)->id, id);
	}
	assert_null(nb_registry_at(r, 50));
	/* the first 25 expire; the rest keep their order */
	for (int i = 0; i < 25; i++)
		assert_int_equal(nb_registry_expire(r, E_MS, NULL), 1);
	assert_int_equal(nb_registry_expire(r, E_MS, NULL), 0);
	assert_int_equal(nb_registry_count(r), 25);
	for (int i = 0; i < 25; i++) {
		snprintf(id, sizeof(id), "p%02d", i + 25);
		assert_string_equal(nb_registry_at(r, (size_t)i)->id, id);
	}
	nb_registry_free(r);
}

/* Registered over TCP: only the live holder's key marks an entry
 * UDP-blocked; the connectivity view sees it; a new put() clears it. */
static void test_udp_blocked(void **state)
{
	struct nb_registry *r = reg_new(4);
	struct nb_ctrl_register a = reg_msg("a", "");
	struct nb_addr fa = addr("203.0.113.1:1"), fa2 = addr("203.0.113.1:2");
	struct nb_peer_nat nat;

	(void)state;
	/* no such entry */
	assert_int_equal(nb_registry_set_udp_blocked(r, "a", key(KA), true, 0), NB_REGISTRY_E_NOENT);
	assert_int_equal(nb_registry_put(r, &a, key(KA), &fa, 0, NULL, NULL), 0);
	assert_false(nb_registry_get(r, "a", 0)->udp_blocked); /* a put starts unblocked */
	assert_int_equal(nb_registry_set_udp_blocked(r, "zz", key(KA), true, 0), NB_REGISTRY_E_NOENT);
	/* another key (KB differs from KA in one bit), or an unrelated one: refused, unchanged */
	assert_int_equal(nb_registry_set_udp_blocked(r, "a", key(KB), true, 1), NB_REGISTRY_E_KEY);
	assert_int_equal(nb_registry_set_udp_blocked(r, "a", key(KC), true, 1), NB_REGISTRY_E_KEY);
	assert_false(nb_registry_get(r, "a", 1)->udp_blocked);
	/* the holder: set, and seen by the connectivity table */
	assert_int_equal(nb_registry_set_udp_blocked(r, "a", key(KA), true, 2), 0);
	assert_true(nb_registry_get(r, "a", 2)->udp_blocked);
	nb_registry_peer_nat(nb_registry_get(r, "a", 2), &nat);
	assert_true(nat.udp_blocked);
	/* a key that is not the holder's cannot clear it either */
	assert_int_equal(nb_registry_set_udp_blocked(r, "a", key(KC), false, 3), NB_REGISTRY_E_KEY);
	assert_true(nb_registry_get(r, "a", 3)->udp_blocked);
	/* it does not refresh the entry: the expiry is the put's */
	assert_int_equal(nb_registry_next_expiry(r), E_MS);
	/* the holder clears it, and sets it again */
	assert_int_equal(nb_registry_set_udp_blocked(r, "a", key(KA), false, 4), 0);
	assert_false(nb_registry_get(r, "a", 4)->udp_blocked);
	assert_int_equal(nb_registry_set_udp_blocked(r, "a", key(KA), true, 5), 0);
	/* a re-register (same address: refreshed) clears it ... */
	assert_int_equal(nb_registry_put(r, &a, key(KA), &fa, 6, NULL, NULL), 0);
	assert_false(nb_registry_get(r, "a", 6)->udp_blocked);
	nb_registry_peer_nat(nb_registry_get(r, "a", 6), &nat);
	assert_false(nat.udp_blocked);
	/* ... as does a move */
	assert_int_equal(nb_registry_set_udp_blocked(r, "a", key(KA), true, 7), 0);
	assert_int_equal(nb_registry_put(r, &a, key(KA), &fa2, 8, NULL, NULL), 0);
	assert_false(nb_registry_get(r, "a", 8)->udp_blocked);
	/* a refused put (another key: conflict) leaves it as it was */
	assert_int_equal(nb_registry_set_udp_blocked(r, "a", key(KA), true, 9), 0);
	assert_int_equal(nb_registry_put(r, &a, key(KC), &fa, 10, NULL, NULL), NB_REGISTRY_E_CONFLICT);
	assert_true(nb_registry_get(r, "a", 10)->udp_blocked);
	/* an expired entry cannot be marked (even before it is taken out) */
	assert_int_equal(nb_registry_set_udp_blocked(r, "a", key(KA), false, 8 + E_MS), NB_REGISTRY_E_NOENT);
	assert_int_equal(nb_registry_count(r), 1);
	assert_int_equal(nb_registry_expire(r, 8 + E_MS, NULL), 1);
	assert_int_equal(nb_registry_set_udp_blocked(r, "a", key(KA), true, 8 + E_MS), NB_REGISTRY_E_NOENT);
	/* a new entry under the freed name starts unblocked */
	assert_int_equal(nb_registry_put(r, &a, key(KC), &fa, 9 + E_MS, NULL, NULL), 0);
	assert_false(nb_registry_get(r, "a", 9 + E_MS)->udp_blocked);
	nb_registry_free(r);
}

/* Round trips: the first sample sets it, later ones smooth it by 1/8
 * (RFC 6298 SRTT); only the holder's key; a move starts over. */
static void test_rtt(void **state)
{
	struct nb_registry *r = reg_new(4);
	struct nb_ctrl_register a = reg_msg("a", "");
	struct nb_addr fa = addr("203.0.113.1:1"), fa2 = addr("203.0.113.1:2");

	(void)state;
	assert_int_equal(nb_registry_rtt_sample(r, "a", key(KA), 10, 0), NB_REGISTRY_E_NOENT);
	assert_int_equal(nb_registry_put(r, &a, key(KA), &fa, 0, NULL, NULL), 0);
	assert_int_equal(nb_registry_get(r, "a", 0)->rtt_ms, 0); /* unmeasured */
	assert_int_equal(nb_registry_rtt_sample(r, "a", key(KA), 0, 1), -EINVAL);
	assert_int_equal(nb_registry_rtt_sample(r, "zz", key(KA), 10, 1), NB_REGISTRY_E_NOENT);
	/* another key (one bit off), or an unrelated one: refused, unchanged */
	assert_int_equal(nb_registry_rtt_sample(r, "a", key(KB), 10, 1), NB_REGISTRY_E_KEY);
	assert_int_equal(nb_registry_rtt_sample(r, "a", key(KC), 10, 1), NB_REGISTRY_E_KEY);
	assert_int_equal(nb_registry_get(r, "a", 1)->rtt_ms, 0);
	/* first: SRTT = R; then SRTT = 7/8 SRTT + 1/8 R' (in 1/8 ms, rounded down) */
	assert_int_equal(nb_registry_rtt_sample(r, "a", key(KA), 100, 2), 0);
	assert_int_equal(nb_registry_get(r, "a", 2)->rtt_ms, 100);
	assert_int_equal(nb_registry_rtt_sample(r, "a", key(KA), 200, 3), 0);
	assert_int_equal(nb_registry_get(r, "a", 3)->rtt_ms, 112); /* 112.5 */
	assert_int_equal(nb_registry_rtt_sample(r, "a", key(KA), 50, 4), 0);
	assert_int_equal(nb_registry_get(r, "a", 4)->rtt_ms, 104); /* 104.7 */
	/* one odd sample moves it by an eighth of the difference only */
	assert_int_equal(nb_registry_rtt_sample(r, "a", key(KA), 904, 5), 0);
	assert_int_equal(nb_registry_get(r, "a", 5)->rtt_ms, 204);
	/* steady samples: it settles on them exactly, from above and from below */
	for (int i = 0; i < 100; i++)
		assert_int_equal(nb_registry_rtt_sample(r, "a", key(KA), 40, 6), 0);
	assert_int_equal(nb_registry_get(r, "a", 6)->rtt_ms, 40);
	for (int i = 0; i < 100; i++)
		assert_int_equal(nb_registry_rtt_sample(r, "a", key(KA), 61, 7), 0);
	assert_int_equal(nb_registry_get(r, "a", 7)->rtt_ms, 61);
	/* the largest samples do not overflow */
	for (int i = 0; i < 300; i++)
		assert_int_equal(nb_registry_rtt_sample(r, "a", key(KA), UINT32_MAX, 8), 0);
	assert_int_equal(nb_registry_get(r, "a", 8)->rtt_ms, UINT32_MAX);
	assert_int_equal(nb_registry_rtt_sample(r, "a", key(KA), 1, 9), 0);
	assert_true(nb_registry_get(r, "a", 9)->rtt_ms < UINT32_MAX);
	/* a sample does not refresh the entry */
	assert_int_equal(nb_registry_next_expiry(r), E_MS);
	for (int i = 0; i < 300; i++)
		assert_int_equal(nb_registry_rtt_sample(r, "a", key(KA), 1, 10), 0);
	assert_int_equal(nb_registry_get(r, "a", 10)->rtt_ms, 1); /* never 0 once measured */
	/* a refresh (same address) keeps it; a move starts over */
	assert_int_equal(nb_registry_rtt_sample(r, "a", key(KA), 33, 11), 0);
	assert_int_equal(nb_registry_get(r, "a", 11)->rtt_ms, 5); /* (7 + 33) / 8 */
	assert_int_equal(nb_registry_put(r, &a, key(KA), &fa, 12, NULL, NULL), 0);
	assert_int_equal(nb_registry_get(r, "a", 12)->rtt_ms, 5);
	assert_int_equal(nb_registry_put(r, &a, key(KA), &fa2, 13, NULL, NULL), 0);
	assert_int_equal(nb_registry_get(r, "a", 13)->rtt_ms, 0);
	assert_int_equal(nb_registry_rtt_sample(r, "a", key(KA), 70, 14), 0);
	assert_int_equal(nb_registry_get(r, "a", 14)->rtt_ms, 70); /* a first sample again */
	/* expired: no sample */
	assert_int_equal(nb_registry_rtt_sample(r, "a", key(KA), 70, 13 + E_MS), NB_REGISTRY_E_NOENT);
	nb_registry_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_siphash_vectors),
		cmocka_unit_test(test_rank_model),
		cmocka_unit_test(test_hidx_chains),
		cmocka_unit_test(test_ilist_slots),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_put_table),
		cmocka_unit_test(test_fields_replaced),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_full_until_expired),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_udp_blocked),
		cmocka_unit_test(test_rtt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
