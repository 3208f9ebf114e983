/* broker/registry.h - the peer registry: who is registered, from where, with
 * what NAT behaviour; bounded, expiring, pageable. Pure: no I/O, no clock
 * (every call takes `now`, in milliseconds of any monotonic clock; it must
 * not go backwards).
 *
 * One entry per peer id. An entry lives `expires_s` seconds after the last
 * register or keepalive from its address (docs/protocol.md: `registered.
 * expires`, 3 x keepalive by default). Expired entries stay in memory, and
 * count against max_peers, until nb_registry_expire() takes them out, one
 * per call, oldest first (the caller logs each); lookups never return them.
 *
 * A name is bound to its holder's key: the static public key (X25519, 32
 * bytes) the peer proved in its Noise handshake with the broker. Tokens
 * decide nothing here. Re-registration (docs/protocol.md "register"):
 *   same id, same key, same address  -> refreshed (every field replaced)
 *   same id, same key, new address   -> moved: the NAT's mapping changed,
 *                                       or the peer moved
 *   same id live under another key   -> NB_REGISTRY_E_CONFLICT (409),
 *                                       from any address
 *   same id, expired                 -> the name is free: a new entry,
 *                                       whatever key held it before
 *   new id, registry full            -> NB_REGISTRY_E_FULL (503)
 * One key may hold several names. A keepalive (touch) and a bye (remove)
 * are taken only from the holder's key.
 *
 * Two families (docs/protocol.md "IPv6"): a register with "also" from the
 * holder's key, over the family the entry's address is not of, adds that
 * source as the entry's second address (`alt`), with that family's NAT
 * behaviour. It lives expires_s after its own last register or keepalive,
 * never longer than the entry; a plain register that moves the entry into
 * the alt's family drops the alt.
 *
 * Order: entries are listed in slot order, which does not change while an
 * entry lives (a new entry may take the slot of a gone one). A page of a
 * list is a snapshot (docs/protocol.md "Pagination").
 */
#ifndef NB_BROKER_REGISTRY_H
#define NB_BROKER_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/table.h"
#include "common/addr.h"
#include "common/keys.h"
#include "proto/ctrl.h"

#define NB_REGISTRY_DEFAULT_MAX 10000
#define NB_REGISTRY_MAX_MAX 10000000 /* the largest max_peers accepted */

/* Our own error range (ctrl.h uses -2001.., binding.h -2001.. too). */
enum nb_registry_err {
	NB_REGISTRY_E_FULL = -2101,     /* max_peers live entries: 503 */
	NB_REGISTRY_E_CONFLICT = -2102, /* register: id live under another key: 409 */
	NB_REGISTRY_E_NOENT = -2103,    /* no live entry with that id: 404 */
	NB_REGISTRY_E_ADDRESS = -2104,  /* the id is registered from another address: 404 */
	NB_REGISTRY_E_KEY = -2105,      /* touch, remove: id live under another key: 404 */
	NB_REGISTRY_E_FAMILY = -2106,   /* also: from the family the entry is registered in: 400 */
};

struct nb_registry_config {
	size_t max_peers;   /* 1..NB_REGISTRY_MAX_MAX */
	uint32_t expires_s; /* NB_CTRL_EXPIRES_MIN_S..MAX_S */
	uint8_t hash_key[NB_SIPHASH_KEY_LEN]; /* secret, random: see table.h */
};

struct nb_registry_peer {
	char id[NB_CTRL_ID_MAX + 1];
	uint8_t key[NB_KEY_LEN];  /* the holder's static public key */
	struct nb_addr reflexive; /* the source the broker saw */
	struct nb_addr local[NB_CTRL_MAX_ADDRS];
	size_t n_local;
	enum nb_mapping mapping;     /* NB_MAPPING_UNKNOWN when "nat" was absent */
	enum nb_filtering filtering; /* NB_FILTERING_UNKNOWN when "nat" was absent */
	bool has_hairpin, hairpin;
	enum nb_ctrl_upnp_status upnp; /* NB_CTRL_UPNP_NONE when "upnp" was absent */
	struct nb_addr upnp_external;  /* when upnp == NB_CTRL_UPNP_MAPPED */
	/* The entry was registered over TCP (nb_registry_set_udp_blocked()):
	 * its network does not let UDP reach the broker. put() clears it. */
	bool udp_blocked;
	bool has_relayed;          /* the register's "relayed": its allocation in advance */
	struct nb_addr relayed;
	/* The smoothed round trip between the broker and the peer (ms; 0 =
	 * not measured yet), from nb_registry_rtt_sample(); srtt8 is the same
	 * in 1/8 ms (kept so that the smoothing converges on the samples, as
	 * Linux keeps tp->srtt_us << 3). A new entry and a move start
	 * unmeasured; a refresh keeps it. */
	uint32_t rtt_ms;
	uint64_t srtt8;
	uint64_t registered_ms; /* first registration of this entry */
	uint64_t last_seen_ms;  /* last register or keepalive */
	/* The second address, in the other family (a register with "also"):
	 * read it with nb_registry_alt(), which knows whether it still lives. */
	bool has_alt;
	struct nb_addr alt;               /* the source the broker saw */
	enum nb_mapping alt_mapping;      /* that family's behaviour, as registered */
	enum nb_filtering alt_filtering;
	uint64_t alt_seen_ms;             /* its last register or keepalive */
};

enum nb_registry_change {
	NB_REGISTRY_NEW = 0,   /* a new entry */
	NB_REGISTRY_REFRESHED, /* same id, same address */
	NB_REGISTRY_MOVED,     /* same id, same key, new address */
};

struct nb_registry;

/* Allocate a registry for cfg (copied). 0, -EINVAL (cfg out of range) or
 * -ENOMEM; *ret untouched on failure. */
int nb_registry_new(const struct nb_registry_config *cfg, struct nb_registry **ret);
void nb_registry_free(struct nb_registry *r); /* accepts NULL */

/* Register or re-register reg->id for the holder of `key` (NB_KEY_LEN
 * bytes) from `from` at `now`. Returns 0 and sets *ret_change (and
 * *ret_old, the previous address, for MOVED; either pointer may be NULL),
 * or NB_REGISTRY_E_FULL / NB_REGISTRY_E_CONFLICT with nothing changed. Keys
 * are compared in constant time. reg->token is not stored. */
int nb_registry_put(struct nb_registry *r, const struct nb_ctrl_register *reg,
		    const uint8_t *key, const struct nb_addr *from, uint64_t now,
		    enum nb_registry_change *ret_change, struct nb_addr *ret_old);

/* A register with "also": set reg->id's second address to `from`, with
 * reg's NAT behaviour. The id must be live and held by key, and `from` of
 * the other family than the entry's address. Returns 0 and sets
 * *ret_change (NEW: the entry had no live alt; REFRESHED: same address;
 * MOVED: another one, *ret_old the previous), or NB_REGISTRY_E_NOENT,
 * NB_REGISTRY_E_CONFLICT (another key holds it) or NB_REGISTRY_E_FAMILY
 * with nothing changed. The entry's own life is not extended. */
int nb_registry_put_alt(struct nb_registry *r, const struct nb_ctrl_register *reg,
			const uint8_t *key, const struct nb_addr *from, uint64_t now,
			enum nb_registry_change *ret_change, struct nb_addr *ret_old);

/* A keepalive: refresh id if it is live, held by `key` and registered from
 * `from` (the entry, or its live alt: then only the alt). 0,
 * NB_REGISTRY_E_NOENT, NB_REGISTRY_E_KEY or NB_REGISTRY_E_ADDRESS (checked
 * in that order). */
int nb_registry_touch(struct nb_registry *r, const char *id, const uint8_t *key,
		      const struct nb_addr *from, uint64_t now);

/* A bye: take id out at once if it is live and held by `key` (from any
 * address: the key is the proof). Returns 0 and copies the entry to *ret
 * (if not NULL), or NB_REGISTRY_E_NOENT / NB_REGISTRY_E_KEY with nothing
 * changed and *ret untouched. */
int nb_registry_remove(struct nb_registry *r, const char *id, const uint8_t *key, uint64_t now,
		       struct nb_registry_peer *ret);

/* Mark the live entry id (held by key) as registered over TCP, or not.
 * 0 or NB_REGISTRY_E_NOENT / NB_REGISTRY_E_KEY. */
int nb_registry_set_udp_blocked(struct nb_registry *r, const char *id, const uint8_t *key,
				bool udp_blocked, uint64_t now);

/* A round-trip sample (ms, >= 1) for the live entry id (held by key):
 * the first sets rtt_ms, later ones smooth it as RFC 6298 §2 does SRTT,
 * "SRTT <- (1 - alpha) * SRTT + alpha * R'" with alpha = 1/8, in 1/8 ms
 * (rtt_ms is that, rounded down, never below 1). 0, -EINVAL (sample 0),
 * NB_REGISTRY_E_NOENT or NB_REGISTRY_E_KEY. */
int nb_registry_rtt_sample(struct nb_registry *r, const char *id, const uint8_t *key,
			   uint32_t sample_ms, uint64_t now);

/* The live entry for id, or NULL. The pointer is valid until the next call
 * that changes the registry. */
const struct nb_registry_peer *nb_registry_get(const struct nb_registry *r, const char *id,
					       uint64_t now);

/* Take out the oldest entry if it has expired at `now`: returns 1 and
 * copies it to *ret (if not NULL), or 0 when none is due. */
int nb_registry_expire(struct nb_registry *r, uint64_t now, struct nb_registry_peer *ret);

/* When the oldest entry expires (ms), or UINT64_MAX when empty. */
uint64_t nb_registry_next_expiry(const struct nb_registry *r);

/* Entries in memory (live, and expired ones not yet taken out). */
size_t nb_registry_count(const struct nb_registry *r);

/* The i-th entry in slot order (0 <= i < count), or NULL. O(log max_peers).
 * Valid until the next call that changes the registry. */
const struct nb_registry_peer *nb_registry_at(const struct nb_registry *r, size_t i);

/* The entry's live second address at `now`, or NULL. */
const struct nb_addr *nb_registry_alt(const struct nb_registry *r, const struct nb_registry_peer *p,
				      uint64_t now);

/* What the connectivity table needs from an entry. */
struct nb_peer_nat;
void nb_registry_peer_nat(const struct nb_registry_peer *p, struct nb_peer_nat *ret);

/* The same for the entry's registration in family f: its address when that
 * is of f, else its live alt. Returns false (and *ret untouched) when the
 * entry has no live registration in f. */
bool nb_registry_peer_nat_fam(const struct nb_registry *r, const struct nb_registry_peer *p,
			      enum nb_fam f, uint64_t now, struct nb_peer_nat *ret);

#endif
