/* broker/turn.c - the TURN relay server core (RFC 8656, UDP relaying, REST credentials). Pure.
 *
 * Tables (all sized once, in nb_turn_new):
 * - allocations: max_allocs slots (nb_slots), indexed by client 5-tuple and
 *   by REST user (nb_hidx, SipHash under a key derived from nonce_key), and
 *   a min-heap of deadlines for nb_turn_poll();
 * - permissions and channels: max_perms / max_channels entries per
 *   allocation, in flat arrays, scanned linearly (16 by default). They
 *   expire lazily: an entry past its expiry is ignored and its slot reused.
 * - relay ports: a bitmap of the ports our allocations hold.
 * A handle is (generation << 16) | slot: stable while the allocation
 * lives, never 0, and stale once the slot is reused.
 */
#include "broker/turn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "broker/table.h"
#include "common/bytes.h"
#include "proto/stun.h"
#include "proto/turn.h"

#define NONCE_HEX_EXPIRY 8
#define NONCE_MAC_BYTES 12
#define NONCE_LABEL "nbturn1"
#define HASH_LABEL "nbturn hash"
#define SHA256_LEN 32
#define BANDWIDTH_MAX (UINT64_C(1) << 40) /* bytes per second */
#define PERM_MS ((uint64_t)NB_TURN_PERMISSION_LIFETIME_S * 1000)
#define CHANNEL_MS ((uint64_t)NB_TURN_CHANNEL_LIFETIME_S * 1000)

enum alloc_state {
	A_FREE = 0,
	A_OPENING, /* OPEN sent, waiting for nb_turn_opened() */
	A_LIVE,
	A_CLOSING, /* deleted; its CLOSE is due at the next poll */
	A_ORPHAN,  /* its TCP client went while the OPEN was pending */
};

struct perm {
	uint64_t expiry_ms; /* 0: never used */
	uint8_t ip[16];
};

struct chan {
	uint64_t expiry_ms; /* 0: never used */
	struct nb_addr peer;
	uint16_t number;
};

struct alloc {
	uint8_t state; /* enum alloc_state */
	uint8_t tries; /* OPENs sent for this Allocate */
	bool indexed;  /* in by_tuple and by_user */
	bool fp;       /* the Allocate request had FINGERPRINT */
	uint8_t fam;   /* enum nb_fam: the relayed family */
	uint16_t gen;
	uint16_t port;
	uint32_t lifetime_s; /* last granted */
	uint32_t heap_pos;
	struct nb_turn_client client;
	uint64_t tuple_hash, user_hash;
	uint64_t deadline_ms;
	uint64_t tokens; /* bandwidth bucket, byte-milliseconds */
	uint64_t tokens_ms;
	uint8_t tid[NB_STUN_TID_LEN]; /* of the Allocate */
	uint8_t key[NB_TURN_KEY_LEN]; /* of the Allocate */
	uint8_t username[NB_TURN_REST_USER_MAX];
	size_t username_len;
	size_t user_off; /* the REST "user" starts here */
	bool has_token;  /* EVEN-PORT with R: the success carries RESERVATION-TOKEN */
	uint8_t token[NB_TURN_TOKEN_LEN];
};

/* A port kept for a later Allocate with RESERVATION-TOKEN (RFC 8656 §7.2:
 * EVEN-PORT with R reserves the next port, for about 30 s). */
#define RESV_MAX 64
#define RESV_MS 30000
struct resv {
	bool used;
	uint16_t port;
	uint64_t expires_ms;
	uint8_t token[NB_TURN_TOKEN_LEN];
};

struct nb_turn {
	struct nb_turn_config cfg;
	size_t realm_len, software_len;
	uint8_t hash_key[NB_SIPHASH_KEY_LEN];
	uint64_t counter; /* for transaction IDs of indications and port picks */
	struct alloc *a;
	struct perm *perms;  /* max_allocs * max_perms */
	struct chan *chans;  /* max_allocs * max_channels */
	uint32_t *heap;      /* slots by deadline */
	size_t heap_n;
	struct nb_slots slots;
	struct nb_hidx by_tuple, by_user;
	uint8_t port_used[65536 / 8];
	size_t ports_used;
	struct resv resv[RESV_MAX];
	struct nb_turn_stats st;
	uint8_t buf[NB_TURN_MAX_RESPONSE];
};

/* What one authenticated (or not) request carries, once decoded. */
struct req {
	const struct nb_turn_client *c;
	const uint8_t *data;
	size_t len;
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
	bool authed;
	uint8_t key[NB_TURN_KEY_LEN];
	const uint8_t *user; /* REST user part (view into the request) */
	size_t user_len;
	uint64_t now_ms, unix_s;
};

/* ---- Names ---------------------------------------------------------------- */

static const char *const refusal_names[NB_TURN_REFUSE_COUNT] = {
	"challenge",    "unauthorized", "expired-credentials", "stale-nonce", "wrong-credentials",
	"mismatch",     "quota-user",   "quota-total",         "capacity",    "forbidden-peer",
	"perms-full",   "channels-full", "bad-request",        "unknown-attribute", "transport",
	"family",       "peer-family",
};

static const char *const drop_names[NB_TURN_DROP_COUNT] = {
	"malformed", "not-request", "method",   "no-allocation", "no-permission",
	"no-channel", "forbidden",  "bandwidth", "too-big",       "bad-send",
	"source",    "inval",       "nospace",   "retransmit",
};

const char *nb_turn_refusal_name(unsigned reason)
{
	return reason < NB_TURN_REFUSE_COUNT ? refusal_names[reason] : "unknown";
}

const char *nb_turn_drop_name(int drop)
{
	unsigned i = nb_turn_drop_index(drop);

	return i < NB_TURN_DROP_COUNT ? drop_names[i] : "unknown";
}

static const char *reason_phrase(uint16_t code)
{
	switch (code) {
	case NB_TURN_ERR_BAD_REQUEST: return "Bad Request";
	case NB_TURN_ERR_UNAUTHORIZED: return "Unauthorized";
	case NB_TURN_ERR_FORBIDDEN: return "Forbidden";
	case NB_TURN_ERR_UNKNOWN_ATTRIBUTE: return "Unknown Attribute";
	case NB_TURN_ERR_ALLOCATION_MISMATCH: return "Allocation Mismatch";
	case NB_TURN_ERR_STALE_NONCE: return "Stale Nonce";
	case NB_TURN_ERR_AF_NOT_SUPPORTED: return "Address Family not Supported";
	case NB_TURN_ERR_WRONG_CREDENTIALS: return "Wrong Credentials";
	case NB_TURN_ERR_UNSUPPORTED_TRANSPORT: return "Unsupported Transport Protocol";
	case NB_TURN_ERR_PEER_AF_MISMATCH: return "Peer Address Family Mismatch";
	case NB_TURN_ERR_QUOTA: return "Allocation Quota Reached";
	case NB_TURN_ERR_CAPACITY: return "Insufficient Capacity";
	default: return "Server Error";
	}
}

static uint16_t refusal_code(enum nb_turn_refusal r)
{
	switch (r) {
	case NB_TURN_REFUSE_CHALLENGE:
	case NB_TURN_REFUSE_UNAUTHORIZED:
	case NB_TURN_REFUSE_EXPIRED_CREDENTIALS: return NB_TURN_ERR_UNAUTHORIZED;
	case NB_TURN_REFUSE_STALE_NONCE: return NB_TURN_ERR_STALE_NONCE;
	case NB_TURN_REFUSE_WRONG_CREDENTIALS: return NB_TURN_ERR_WRONG_CREDENTIALS;
	case NB_TURN_REFUSE_MISMATCH: return NB_TURN_ERR_ALLOCATION_MISMATCH;
	case NB_TURN_REFUSE_QUOTA_USER: return NB_TURN_ERR_QUOTA;
	case NB_TURN_REFUSE_FORBIDDEN_PEER: return NB_TURN_ERR_FORBIDDEN;
	case NB_TURN_REFUSE_BAD_REQUEST: return NB_TURN_ERR_BAD_REQUEST;
	case NB_TURN_REFUSE_UNKNOWN_ATTRIBUTE: return NB_TURN_ERR_UNKNOWN_ATTRIBUTE;
	case NB_TURN_REFUSE_TRANSPORT: return NB_TURN_ERR_UNSUPPORTED_TRANSPORT;
	case NB_TURN_REFUSE_FAMILY: return NB_TURN_ERR_AF_NOT_SUPPORTED;
	case NB_TURN_REFUSE_PEER_FAMILY: return NB_TURN_ERR_PEER_AF_MISMATCH;
	case NB_TURN_REFUSE_QUOTA_TOTAL:
	case NB_TURN_REFUSE_CAPACITY:
	case NB_TURN_REFUSE_PERMS_FULL:
	case NB_TURN_REFUSE_CHANNELS_FULL:
	case NB_TURN_REFUSE_COUNT: break;
	}
	return NB_TURN_ERR_CAPACITY;
}

/* ---- Configuration -------------------------------------------------------- */

void nb_turn_config_default(struct nb_turn_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	memcpy(cfg->realm, NB_TURN_DEFAULT_REALM, sizeof(NB_TURN_DEFAULT_REALM));
	cfg->default_lifetime_s = NB_TURN_DEFAULT_LIFETIME_S;
	cfg->max_lifetime_s = NB_TURN_MAX_LIFETIME_S;
	cfg->max_allocs = NB_TURN_DEFAULT_MAX_ALLOCS;
	cfg->max_allocs_per_user = NB_TURN_DEFAULT_MAX_ALLOCS_PER_USER;
	cfg->max_perms = NB_TURN_DEFAULT_MAX_PERMS;
	cfg->max_channels = NB_TURN_DEFAULT_MAX_CHANNELS;
	cfg->port_lo = NB_TURN_DEFAULT_PORT_LO;
	cfg->port_hi = NB_TURN_DEFAULT_PORT_HI;
	cfg->nonce_lifetime_s = NB_TURN_DEFAULT_NONCE_LIFETIME_S;
	cfg->max_credential_s = NB_TURN_DEFAULT_MAX_CREDENTIAL_S;
}

static bool printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

static int config_check(const struct nb_turn_config *c, size_t *ret_realm, size_t *ret_sw)
{
	size_t rl = strnlen(c->realm, sizeof(c->realm));
	size_t sl = strnlen(c->software, sizeof(c->software));

	if (c->secret_len < 1 || c->secret_len > NB_TURN_MAX_SECRET)
		return -EINVAL;
	if (rl == 0 || rl == sizeof(c->realm) || !printable(c->realm, rl))
		return -EINVAL;
	if (sl == sizeof(c->software) || !printable(c->software, sl))
		return -EINVAL;
	if (c->default_lifetime_s < 1 || c->max_lifetime_s < c->default_lifetime_s ||
	    c->max_lifetime_s > 86400 * 7)
		return -EINVAL;
	if (c->max_allocs < 1 || c->max_allocs > NB_TURN_ALLOCS_LIMIT || c->max_allocs_per_user < 1)
		return -EINVAL;
	if (c->max_perms < 1 || c->max_perms > NB_TURN_PERMS_LIMIT || c->max_channels < 1 ||
	    c->max_channels > NB_TURN_CHANNELS_LIMIT)
		return -EINVAL;
	if (c->bandwidth_Bps > BANDWIDTH_MAX || c->n_own > NB_TURN_MAX_OWN)
		return -EINVAL;
	/* relay_ip[NB_FAM_V4] IPv4 or none, [NB_FAM_V6] IPv6 or none; at
	 * least one; a set one specific. */
	if (c->relay_ip[NB_FAM_V4].family == NB_AF_NONE && c->relay_ip[NB_FAM_V6].family == NB_AF_NONE)
		return -EINVAL;
	for (unsigned f = 0; f < NB_FAM_COUNT; f++) {
		const struct nb_addr *ip = &c->relay_ip[f];
		uint8_t want = f == NB_FAM_V4 ? NB_AF_INET : NB_AF_INET6;

		if (ip->family == NB_AF_NONE)
			continue;
		if (ip->family != want || nb_addr_is_unspecified(ip))
			return -EINVAL;
	}
	if (c->port_lo < 1 || c->port_hi < c->port_lo)
		return -EINVAL;
	if (c->nonce_lifetime_s < 1 || c->nonce_lifetime_s > 86400 || c->max_credential_s < 1)
		return -EINVAL;
	*ret_realm = rl;
	*ret_sw = sl;
	return 0;
}

static int hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
		       uint8_t out[SHA256_LEN])
{
	unsigned int out_len = 0;

	if (HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &out_len) == NULL ||
	    out_len != SHA256_LEN) {
		ERR_clear_error();
		return -EIO;
	}
	return 0;
}

int nb_turn_new(const struct nb_turn_config *cfg, struct nb_turn **ret)
{
	struct nb_turn *t;
	uint8_t h[SHA256_LEN];
	size_t rl, sl, n;

	if (cfg == NULL || ret == NULL || config_check(cfg, &rl, &sl) != 0)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	t->cfg = *cfg;
	t->realm_len = rl;
	t->software_len = sl;
	n = cfg->max_allocs;
	t->a = calloc(n, sizeof(*t->a));
	t->perms = calloc(n * cfg->max_perms, sizeof(*t->perms));
	t->chans = calloc(n * cfg->max_channels, sizeof(*t->chans));
	t->heap = calloc(n, sizeof(*t->heap));
	if (t->a == NULL || t->perms == NULL || t->chans == NULL || t->heap == NULL ||
	    nb_slots_init(&t->slots, n) != 0 || nb_hidx_init(&t->by_tuple, n) != 0 ||
	    nb_hidx_init(&t->by_user, n) != 0)
		goto fail;
	if (hmac_sha256(cfg->nonce_key, sizeof(cfg->nonce_key), (const uint8_t *)HASH_LABEL,
			sizeof(HASH_LABEL) - 1, h) != 0)
		goto fail;
	memcpy(t->hash_key, h, sizeof(t->hash_key));
	OPENSSL_cleanse(h, sizeof(h));
	*ret = t;
	return 0;
fail:
	nb_turn_free(t);
	return -ENOMEM;
}

void nb_turn_free(struct nb_turn *t)
{
	if (t == NULL)
		return;
	if (t->a != NULL) {
		OPENSSL_cleanse(t->a, sizeof(*t->a) * t->cfg.max_allocs);
		free(t->a);
	}
	free(t->perms);
	free(t->chans);
	free(t->heap);
	nb_slots_free(&t->slots);
	nb_hidx_free(&t->by_tuple);
	nb_hidx_free(&t->by_user);
	OPENSSL_cleanse(&t->cfg, sizeof(t->cfg));
	OPENSSL_cleanse(t->hash_key, sizeof(t->hash_key));
	free(t);
}

const struct nb_turn_stats *nb_turn_get_stats(const struct nb_turn *t)
{
	return &t->st;
}

/* ---- Peer policy ---------------------------------------------------------- */

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged as the IPv4 one. */
static struct nb_addr unmap(const struct nb_addr *a)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	struct nb_addr r = *a;

	if (a->family == NB_AF_INET6 && memcmp(a->ip, v4mapped, 12) == 0) {
		memset(&r, 0, sizeof(r));
		r.family = NB_AF_INET;
		r.port = a->port;
		memcpy(r.ip, a->ip + 12, 4);
	}
	return r;
}

bool nb_turn_peer_forbidden(const struct nb_turn_config *cfg, const struct nb_addr *peer)
{
	struct nb_addr a = unmap(peer);

	if (a.family != NB_AF_INET && a.family != NB_AF_INET6)
		return true;
	if (nb_addr_is_unspecified(&a) || nb_addr_is_loopback(&a) || nb_addr_is_link_local(&a) ||
	    nb_addr_is_multicast(&a))
		return true;
	if (!cfg->allow_private && nb_addr_is_private(&a))
		return true;
	if (a.family == NB_AF_INET) {
		/* 0/8 "this network" (RFC 1122 §3.2.1.3); 240/4 reserved,
		 * which holds the limited broadcast 255.255.255.255. */
		if (a.ip[0] == 0 || (a.ip[0] & 0xf0) == 0xf0)
			return true;
	} else {
		/* ::/96 (IPv4-compatible, deprecated) and fec0::/10 site-local. */
		static const uint8_t zero12[12];

		if (memcmp(a.ip, zero12, 12) == 0)
			return true;
		if (a.ip[0] == 0xfe && (a.ip[1] & 0xc0) == 0xc0)
			return true;
	}
	/* The broker's own addresses: a peer there would reach the broker's
	 * services (STUN, TURN, control) from the relay's address. One
	 * exception: the relay ports of a relay IP (either family), which
	 * are other allocations - two clients both behind relays of this
	 * server must reach each other (ICE relay-to-relay pairs). Such a
	 * socket only ever hands what it receives to its own client, so this
	 * loops nothing back into the server. */
	for (unsigned f = 0; f < NB_FAM_COUNT; f++) {
		const struct nb_addr *ip = &cfg->relay_ip[f];

		if (ip->family == NB_AF_NONE || !nb_addr_ip_equal(&a, ip))
			continue;
		return !(a.port >= cfg->port_lo && a.port <= cfg->port_hi);
	}
	for (size_t i = 0; i < cfg->n_own && i < NB_TURN_MAX_OWN; i++) {
		struct nb_addr o = unmap(&cfg->own[i]);

		if (nb_addr_ip_equal(&a, &o))
			return true;
	}
	return false;
}

/* ---- Small helpers -------------------------------------------------------- */

static int drop(struct nb_turn *t, int code)
{
	unsigned i = nb_turn_drop_index(code);

	if (i < NB_TURN_DROP_COUNT)
		t->st.drops[i]++;
	return code;
}

static void emit(struct nb_turn *t, const struct nb_turn_event *ev)
{
	if (t->cfg.cb != NULL)
		t->cfg.cb(t->cfg.cb_arg, ev);
}

static uint32_t handle_of(const struct nb_turn *t, uint32_t slot)
{
	return (uint32_t)t->a[slot].gen << 16 | slot;
}

static struct alloc *alloc_of(struct nb_turn *t, uint32_t handle, uint32_t *ret_slot)
{
	uint32_t slot = handle & 0xffffu;

	if (slot >= t->cfg.max_allocs || t->a[slot].state == A_FREE || t->a[slot].gen != handle >> 16)
		return NULL;
	*ret_slot = slot;
	return &t->a[slot];
}

static bool source_ok(const struct nb_addr *a)
{
	if (a->family != NB_AF_INET && a->family != NB_AF_INET6)
		return false;
	if (a->port == 0 || nb_addr_is_unspecified(a) || nb_addr_is_multicast(a))
		return false;
	return !(a->family == NB_AF_INET && a->ip[0] == 255 && a->ip[1] == 255 && a->ip[2] == 255 &&
		 a->ip[3] == 255);
}

static uint64_t tuple_hash(const struct nb_turn *t, const struct nb_turn_client *c)
{
	uint8_t k[1 + 1 + 1 + 2 + 16 + 8];

	k[0] = c->transport;
	k[1] = c->sock;
	k[2] = c->addr.family;
	nb_put_u16be(k + 3, c->addr.port);
	memcpy(k + 5, c->addr.ip, 16);
	nb_put_u32be(k + 21, (uint32_t)(c->conn >> 32));
	nb_put_u32be(k + 25, (uint32_t)c->conn);
	return nb_siphash(t->hash_key, k, sizeof(k));
}

static bool tuple_equal(const struct nb_turn_client *a, const struct nb_turn_client *b)
{
	return a->transport == b->transport && a->sock == b->sock && a->conn == b->conn &&
	       nb_addr_equal(&a->addr, &b->addr);
}

/* The allocation (OPENING or LIVE) on this 5-tuple, or NULL. */
static struct alloc *find_tuple(struct nb_turn *t, const struct nb_turn_client *c, uint32_t *ret_slot)
{
	uint64_t h = tuple_hash(t, c);

	for (uint32_t s = nb_hidx_first(&t->by_tuple, h); s != NB_SLOT_NONE;
	     s = nb_hidx_next(&t->by_tuple, s))
		if (t->a[s].tuple_hash == h && tuple_equal(&t->a[s].client, c)) {
			*ret_slot = s;
			return &t->a[s];
		}
	return NULL;
}

static struct alloc *find_live(struct nb_turn *t, const struct nb_turn_client *c, uint32_t *ret_slot)
{
	struct alloc *a = find_tuple(t, c, ret_slot);

	return a != NULL && a->state == A_LIVE ? a : NULL;
}

static size_t user_count(struct nb_turn *t, uint64_t h, const uint8_t *user, size_t n)
{
	size_t k = 0;

	for (uint32_t s = nb_hidx_first(&t->by_user, h); s != NB_SLOT_NONE;
	     s = nb_hidx_next(&t->by_user, s)) {
		const struct alloc *a = &t->a[s];

		if (a->user_hash == h && a->username_len - a->user_off == n &&
		    memcmp(a->username + a->user_off, user, n) == 0)
			k++;
	}
	return k;
}

static void make_tid(struct nb_turn *t, uint8_t tid[NB_STUN_TID_LEN])
{
	uint64_t c = t->counter++;
	uint64_t x = nb_siphash(t->hash_key, &c, sizeof(c));
	uint64_t y = nb_siphash(t->hash_key, &x, sizeof(x));

	nb_put_u32be(tid, (uint32_t)(x >> 32));
	nb_put_u32be(tid + 4, (uint32_t)x);
	nb_put_u32be(tid + 8, (uint32_t)y);
}

/* ---- Deadline heap -------------------------------------------------------- */

static void heap_set(struct nb_turn *t, size_t i, uint32_t slot)
{
	t->heap[i] = slot;
	t->a[slot].heap_pos = (uint32_t)i;
}

static bool heap_less(const struct nb_turn *t, size_t i, size_t j)
{
	return t->a[t->heap[i]].deadline_ms < t->a[t->heap[j]].deadline_ms;
}

static void heap_swap(struct nb_turn *t, size_t i, size_t j)
{
	uint32_t si = t->heap[i], sj = t->heap[j];

	heap_set(t, i, sj);
	heap_set(t, j, si);
}

static void heap_fix(struct nb_turn *t, size_t i)
{
	while (i > 0 && heap_less(t, i, (i - 1) / 2)) {
		heap_swap(t, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < t->heap_n && heap_less(t, l, m))
			m = l;
		if (r < t->heap_n && heap_less(t, r, m))
			m = r;
		if (m == i)
			break;
		heap_swap(t, i, m);
		i = m;
	}
}

static void heap_push(struct nb_turn *t, uint32_t slot)
{
	heap_set(t, t->heap_n, slot);
	t->heap_n++;
	heap_fix(t, t->heap_n - 1);
}

static void heap_remove(struct nb_turn *t, uint32_t slot)
{
	size_t i = t->a[slot].heap_pos;

	t->heap_n--;
	if (i != t->heap_n) {
		heap_set(t, i, t->heap[t->heap_n]);
		heap_fix(t, i);
	}
}

static void set_deadline(struct nb_turn *t, uint32_t slot, uint64_t when)
{
	t->a[slot].deadline_ms = when;
	heap_fix(t, t->a[slot].heap_pos);
}

uint64_t nb_turn_next_deadline(const struct nb_turn *t)
{
	return t->heap_n > 0 ? t->a[t->heap[0]].deadline_ms : UINT64_MAX;
}

/* ---- Ports ---------------------------------------------------------------- */

static bool port_is_used(const struct nb_turn *t, uint16_t p)
{
	return (t->port_used[p >> 3] >> (p & 7)) & 1;
}

static void port_mark(struct nb_turn *t, uint16_t p, bool used)
{
	if (used)
		t->port_used[p >> 3] = (uint8_t)(t->port_used[p >> 3] | (1u << (p & 7)));
	else
		t->port_used[p >> 3] = (uint8_t)(t->port_used[p >> 3] & ~(1u << (p & 7)));
}

/* A free port of the range, from a keyed pseudo-random start (RFC 8656
 * §7.2: relayed ports should be hard to guess); 0 when all are taken. */
static uint16_t port_take(struct nb_turn *t)
{
	uint32_t range = (uint32_t)t->cfg.port_hi - t->cfg.port_lo + 1;
	uint64_t c = t->counter++;
	uint32_t start = (uint32_t)(nb_siphash(t->hash_key, &c, sizeof(c)) % range);

	if (t->ports_used >= range)
		return 0;
	for (uint32_t i = 0; i < range; i++) {
		uint16_t p = (uint16_t)(t->cfg.port_lo + (start + i) % range);

		if (!port_is_used(t, p)) {
			port_mark(t, p, true);
			t->ports_used++;
			return p;
		}
	}
	return 0;
}

static void port_give(struct nb_turn *t, uint16_t p)
{
	if (p != 0 && port_is_used(t, p)) {
		port_mark(t, p, false);
		t->ports_used--;
	}
}

/* EVEN-PORT (RFC 8656 §14.6): a free even port, and with `pair` the port
 * above it free too (both taken); 0 when there is none. */
static uint16_t port_take_even(struct nb_turn *t, bool pair)
{
	uint32_t lo = (t->cfg.port_lo + 1u) & ~1u, hi = t->cfg.port_hi;
	uint32_t n, start;
	uint64_t c = t->counter++;

	if (lo > hi || (pair && lo + 1 > hi))
		return 0;
	n = (hi - lo) / 2 + 1;
	start = (uint32_t)(nb_siphash(t->hash_key, &c, sizeof(c)) % n);
	for (uint32_t i = 0; i < n; i++) {
		uint16_t p = (uint16_t)(lo + 2 * ((start + i) % n));
		if (port_is_used(t, p) || (pair && (p + 1u > hi || port_is_used(t, (uint16_t)(p + 1)))))
			continue;
		port_mark(t, p, true);
		t->ports_used++;
		if (pair) {
			port_mark(t, (uint16_t)(p + 1), true);
			t->ports_used++;
		}
		return p;
	}
	return 0;
}

/* Give back the ports of reservations that ran out. */
static void resv_sweep(struct nb_turn *t, uint64_t now)
{
	for (size_t i = 0; i < RESV_MAX; i++)
		if (t->resv[i].used && now >= t->resv[i].expires_ms) {
			port_give(t, t->resv[i].port);
			t->resv[i].used = false;
		}
}

/* ---- Allocation lifecycle ------------------------------------------------- */

static struct perm *perms_of(struct nb_turn *t, uint32_t slot)
{
	return &t->perms[(size_t)slot * t->cfg.max_perms];
}

static struct chan *chans_of(struct nb_turn *t, uint32_t slot)
{
	return &t->chans[(size_t)slot * t->cfg.max_channels];
}

static void unindex(struct nb_turn *t, uint32_t slot)
{
	struct alloc *a = &t->a[slot];

	if (!a->indexed)
		return;
	nb_hidx_del(&t->by_tuple, a->tuple_hash, slot);
	nb_hidx_del(&t->by_user, a->user_hash, slot);
	a->indexed = false;
}

static void alloc_event(struct nb_turn *t, uint32_t slot, uint8_t kind, bool expired)
{
	struct alloc *a = &t->a[slot];
	struct nb_turn_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = kind;
	ev.expired = expired;
	ev.client = &a->client;
	ev.alloc = handle_of(t, slot);
	ev.port = a->port;
	ev.lifetime_s = a->lifetime_s;
	ev.username = a->username;
	ev.username_len = a->username_len;
	emit(t, &ev);
}

/* A LIVE allocation ends (not its socket: that is CLOSE's job). */
static void alloc_end(struct nb_turn *t, uint32_t slot, bool expired)
{
	alloc_event(t, slot, NB_TURN_EV_ALLOC_DELETED, expired);
	if (expired)
		t->st.allocs_expired++;
	else
		t->st.allocs_deleted++;
	t->st.allocs_now--;
}

static void alloc_free(struct nb_turn *t, uint32_t slot)
{
	struct alloc *a = &t->a[slot];
	uint16_t gen = a->gen;

	unindex(t, slot);
	heap_remove(t, slot);
	port_give(t, a->port);
	OPENSSL_cleanse(a, sizeof(*a));
	a->gen = gen;
	nb_slots_give(&t->slots, slot);
}

static void out_close(struct nb_turn *t, uint32_t slot, struct nb_turn_out *out)
{
	out->kind = NB_TURN_OUT_CLOSE;
	out->alloc = handle_of(t, slot);
	out->client = t->a[slot].client;
	out->port = t->a[slot].port;
}

static void out_open(struct nb_turn *t, uint32_t slot, struct nb_turn_out *out)
{
	out->kind = NB_TURN_OUT_OPEN;
	out->alloc = handle_of(t, slot);
	out->client = t->a[slot].client;
	out->port = t->a[slot].port;
	out->to = t->cfg.relay_ip[t->a[slot].fam];
	out->to.port = t->a[slot].port;
}

/* ---- Bandwidth ------------------------------------------------------------ */

/* Token bucket in byte-milliseconds: bandwidth_Bps per second, one second
 * of burst. Refusals cost nothing. */
static bool bucket_take(struct nb_turn *t, struct alloc *a, size_t len, uint64_t now)
{
	uint64_t bps = t->cfg.bandwidth_Bps, full = bps * 1000, el;

	if (bps == 0)
		return true;
	el = now > a->tokens_ms ? now - a->tokens_ms : 0;
	if (el > 1000)
		el = 1000;
	a->tokens += el * bps;
	if (a->tokens > full)
		a->tokens = full;
	if (now > a->tokens_ms)
		a->tokens_ms = now;
	if (a->tokens < (uint64_t)len * 1000)
		return false;
	a->tokens -= (uint64_t)len * 1000;
	return true;
}

/* ---- Permissions and channels --------------------------------------------- */

static struct perm *perm_find(struct nb_turn *t, uint32_t slot, const struct nb_addr *peer,
			      uint64_t now)
{
	struct perm *p = perms_of(t, slot);

	for (uint32_t i = 0; i < t->cfg.max_perms; i++)
		if (p[i].expiry_ms > now && memcmp(p[i].ip, peer->ip, 16) == 0)
			return &p[i];
	return NULL;
}

static struct perm *perm_free_slot(struct nb_turn *t, uint32_t slot, uint64_t now)
{
	struct perm *p = perms_of(t, slot);

	for (uint32_t i = 0; i < t->cfg.max_perms; i++)
		if (p[i].expiry_ms <= now)
			return &p[i];
	return NULL;
}

static size_t perm_free_count(struct nb_turn *t, uint32_t slot, uint64_t now)
{
	struct perm *p = perms_of(t, slot);
	size_t n = 0;

	for (uint32_t i = 0; i < t->cfg.max_perms; i++)
		if (p[i].expiry_ms <= now)
			n++;
	return n;
}

/* Install or refresh; the caller made sure there is room. */
static void perm_install(struct nb_turn *t, uint32_t slot, const struct nb_addr *peer, uint64_t now)
{
	struct perm *p = perm_find(t, slot, peer, now);

	if (p == NULL)
		p = perm_free_slot(t, slot, now);
	if (p == NULL)
		return;
	memcpy(p->ip, peer->ip, 16);
	p->expiry_ms = now + PERM_MS;
}

static struct chan *chan_by_number(struct nb_turn *t, uint32_t slot, uint16_t number, uint64_t now)
{
	struct chan *ch = chans_of(t, slot);

	for (uint32_t i = 0; i < t->cfg.max_channels; i++)
		if (ch[i].expiry_ms > now && ch[i].number == number)
			return &ch[i];
	return NULL;
}

static struct chan *chan_by_peer(struct nb_turn *t, uint32_t slot, const struct nb_addr *peer,
				 uint64_t now)
{
	struct chan *ch = chans_of(t, slot);

	for (uint32_t i = 0; i < t->cfg.max_channels; i++)
		if (ch[i].expiry_ms > now && nb_addr_equal(&ch[i].peer, peer))
			return &ch[i];
	return NULL;
}

static struct chan *chan_free_slot(struct nb_turn *t, uint32_t slot, uint64_t now)
{
	struct chan *ch = chans_of(t, slot);

	for (uint32_t i = 0; i < t->cfg.max_channels; i++)
		if (ch[i].expiry_ms <= now)
			return &ch[i];
	return NULL;
}

/* ---- Nonces --------------------------------------------------------------- */

static const char hexd[] = "0123456789abcdef";

/* The NONCE for client c expiring at `expiry` (monotonic seconds). */
static int nonce_make(const struct nb_turn *t, const struct nb_turn_client *c, uint32_t expiry,
		      uint8_t out[NB_TURN_NONCE_LEN])
{
	uint8_t msg[sizeof(NONCE_LABEL) - 1 + 4 + 3 + 2 + 16 + 8];
	uint8_t mac[SHA256_LEN];
	size_t o = sizeof(NONCE_LABEL) - 1;

	memcpy(msg, NONCE_LABEL, o);
	nb_put_u32be(msg + o, expiry);
	msg[o + 4] = c->transport;
	msg[o + 5] = c->sock;
	msg[o + 6] = c->addr.family;
	nb_put_u16be(msg + o + 7, c->addr.port);
	memcpy(msg + o + 9, c->addr.ip, 16);
	nb_put_u32be(msg + o + 25, (uint32_t)(c->conn >> 32));
	nb_put_u32be(msg + o + 29, (uint32_t)c->conn);
	if (hmac_sha256(t->cfg.nonce_key, sizeof(t->cfg.nonce_key), msg, sizeof(msg), mac) != 0)
		return -EIO;
	for (unsigned i = 0; i < NONCE_HEX_EXPIRY; i++)
		out[i] = (uint8_t)hexd[(expiry >> (28 - 4 * i)) & 0xf];
	for (unsigned i = 0; i < NONCE_MAC_BYTES; i++) {
		out[NONCE_HEX_EXPIRY + 2 * i] = (uint8_t)hexd[mac[i] >> 4];
		out[NONCE_HEX_EXPIRY + 2 * i + 1] = (uint8_t)hexd[mac[i] & 0xf];
	}
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

static uint32_t now_s32(uint64_t now_ms)
{
	uint64_t s = now_ms / 1000;

	return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

static int nonce_new(const struct nb_turn *t, const struct nb_turn_client *c, uint64_t now_ms,
		     uint8_t out[NB_TURN_NONCE_LEN])
{
	uint64_t e = (uint64_t)now_s32(now_ms) + t->cfg.nonce_lifetime_s;

	return nonce_make(t, c, e > UINT32_MAX ? UINT32_MAX : (uint32_t)e, out);
}

/* True if n is a NONCE we made for c and it has not expired. */
static bool nonce_ok(const struct nb_turn *t, const struct nb_turn_client *c, const uint8_t *n,
		     size_t len, uint64_t now_ms)
{
	uint8_t want[NB_TURN_NONCE_LEN];
	uint32_t expiry = 0, now = now_s32(now_ms);

	if (len != NB_TURN_NONCE_LEN)
		return false;
	for (unsigned i = 0; i < NONCE_HEX_EXPIRY; i++) {
		const char *d = memchr(hexd, n[i], 16);

		if (n[i] == 0 || d == NULL)
			return false;
		expiry = expiry << 4 | (uint32_t)(d - hexd);
	}
	if (nonce_make(t, c, expiry, want) != 0)
		return false;
	/* Compared in constant time: a byte-by-byte compare would let a client
	 * find a valid MAC for any expiry one byte at a time. */
	if (CRYPTO_memcmp(want, n, NB_TURN_NONCE_LEN) != 0)
		return false;
	return expiry >= now && expiry - now <= t->cfg.nonce_lifetime_s;
}

/* ---- Responses ------------------------------------------------------------ */

static uint16_t stun_type(uint16_t method, uint16_t cls)
{
	return (uint16_t)(((method & 0x0F80u) << 2) | ((method & 0x0070u) << 1) | (method & 0x000Fu) |
			  cls);
}

static int resp_begin(struct nb_turn *t, struct nb_stun_enc *e, uint16_t method, uint16_t cls,
		      const uint8_t *tid)
{
	return nb_stun_enc_init(e, t->buf, sizeof(t->buf), stun_type(method, cls), tid, false);
}

/* SOFTWARE (authenticated answers only), MESSAGE-INTEGRITY (with key), then
 * FINGERPRINT when the request had one; sets out. */
static int resp_finish(struct nb_turn *t, struct nb_stun_enc *e, const uint8_t *key, bool fp,
		       const struct nb_turn_client *c, struct nb_turn_out *out)
{
	int rc = 0;

	if (key != NULL && t->software_len > 0)
		rc = nb_stun_enc_attr(e, NB_STUN_ATTR_SOFTWARE, t->cfg.software, t->software_len);
	if (rc == 0 && key != NULL)
		rc = nb_stun_enc_integrity(e, key, NB_TURN_KEY_LEN);
	if (rc == 0 && fp)
		rc = nb_stun_enc_fingerprint(e);
	if (rc < 0 || nb_stun_enc_len(e) > NB_TURN_MAX_RESPONSE)
		return NB_TURN_DROP_NOSPACE;
	out->kind = NB_TURN_OUT_CLIENT;
	out->client = *c;
	out->data = t->buf;
	out->len = nb_stun_enc_len(e);
	t->st.responses++;
	return 0;
}

/* An error response. Before authentication (key NULL) it carries no
 * SOFTWARE and no MESSAGE-INTEGRITY; 401 and 438 carry REALM and a fresh
 * NONCE (RFC 8489 §9.2.4). */
static int refuse(struct nb_turn *t, const struct req *r, enum nb_turn_refusal why,
		  const struct nb_addr *peer, struct nb_turn_out *out)
{
	struct nb_stun_enc e;
	uint16_t code = refusal_code(why);
	const uint8_t *key = r->authed ? r->key : NULL;
	struct nb_turn_event ev;
	int rc;

	t->st.refused[why]++;
	memset(&ev, 0, sizeof(ev));
	ev.kind = NB_TURN_EV_REFUSED;
	ev.reason = (uint8_t)why;
	ev.code = code;
	ev.method = r->m.method;
	ev.client = r->c;
	ev.peer = peer;
	if (r->m.present & NB_STUN_HAS_USERNAME) {
		ev.username = r->m.username;
		ev.username_len = r->m.username_len;
	}
	emit(t, &ev);

	rc = resp_begin(t, &e, r->m.method, NB_STUN_CLASS_ERROR, r->m.tid);
	if (rc == 0)
		rc = nb_stun_enc_error(&e, code, reason_phrase(code));
	if (rc == 0 && why == NB_TURN_REFUSE_UNKNOWN_ATTRIBUTE) {
		uint16_t types[NB_STUN_MAX_UNKNOWN];
		size_t n = nb_turn_unknown_required(&r->m, types, NB_STUN_MAX_UNKNOWN);

		if (n > NB_STUN_MAX_UNKNOWN)
			n = NB_STUN_MAX_UNKNOWN;
		rc = nb_stun_enc_unknown(&e, types, n);
	}
	if (rc == 0 && (code == NB_TURN_ERR_UNAUTHORIZED || code == NB_TURN_ERR_STALE_NONCE)) {
		uint8_t nonce[NB_TURN_NONCE_LEN];

		rc = nb_stun_enc_attr(&e, NB_TURN_ATTR_REALM, t->cfg.realm, t->realm_len);
		if (rc == 0)
			rc = nonce_new(t, r->c, r->now_ms, nonce) == 0 ? 0 : -EIO;
		if (rc == 0)
			rc = nb_stun_enc_attr(&e, NB_TURN_ATTR_NONCE, nonce, sizeof(nonce));
	}
	if (rc < 0)
		return drop(t, NB_TURN_DROP_NOSPACE);
	rc = resp_finish(t, &e, key, (r->m.present & NB_STUN_HAS_FINGERPRINT) != 0, r->c, out);
	return rc < 0 ? drop(t, rc) : 0;
}

/* The Allocate success response of slot (RFC 8656 §7.3). */
static int allocate_success(struct nb_turn *t, uint32_t slot, uint64_t now, struct nb_turn_out *out)
{
	struct alloc *a = &t->a[slot];
	struct nb_stun_enc e;
	struct nb_addr relayed = t->cfg.relay_ip[a->fam];
	uint64_t left = a->deadline_ms > now ? (a->deadline_ms - now) / 1000 : 0;
	int rc;

	relayed.port = a->port;
	rc = resp_begin(t, &e, NB_TURN_METHOD_ALLOCATE, NB_STUN_CLASS_SUCCESS, a->tid);
	if (rc == 0)
		rc = nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_RELAYED_ADDRESS, &relayed);
	if (rc == 0)
		rc = nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, (uint32_t)left);
	if (rc == 0)
		rc = nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &a->client.addr);
	if (rc == 0 && a->has_token)
		rc = nb_stun_enc_attr(&e, NB_TURN_ATTR_RESERVATION_TOKEN, a->token, NB_TURN_TOKEN_LEN);
	if (rc < 0)
		return drop(t, NB_TURN_DROP_NOSPACE);
	rc = resp_finish(t, &e, a->key, a->fp, &a->client, out);
	return rc < 0 ? drop(t, rc) : 0;
}

/* A success response with at most a LIFETIME. */
static int plain_success(struct nb_turn *t, const struct req *r, bool lifetime, uint32_t lt,
			 struct nb_turn_out *out)
{
	struct nb_stun_enc e;
	int rc = resp_begin(t, &e, r->m.method, NB_STUN_CLASS_SUCCESS, r->m.tid);

	if (rc == 0 && lifetime)
		rc = nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, lt);
	if (rc < 0)
		return drop(t, NB_TURN_DROP_NOSPACE);
	rc = resp_finish(t, &e, r->key, (r->m.present & NB_STUN_HAS_FINGERPRINT) != 0, r->c, out);
	return rc < 0 ? drop(t, rc) : 0;
}

/* ---- Authentication (RFC 8489 §9.2.4) -------------------------------------- */

/* 0: authenticated (r->key, r->user set); 1: answered with an error in out;
 * negative: dropped. */
static int authenticate(struct nb_turn *t, struct req *r, struct nb_turn_out *out)
{
	const struct nb_stun_msg *m = &r->m;
	char password[NB_TURN_REST_PASSWORD_LEN + 1];
	uint64_t expiry = 0;
	const uint8_t *user = NULL;
	size_t user_len = 0;
	int rc;

	/* "If the message does not contain a MESSAGE-INTEGRITY or a
	 * MESSAGE-INTEGRITY-SHA256 attribute, the server MUST generate an
	 * error response with an error code of 401 (Unauthenticated)". */
	if (!(m->present & (NB_STUN_HAS_INTEGRITY | NB_STUN_HAS_INTEGRITY_SHA256))) {
		rc = refuse(t, r, NB_TURN_REFUSE_CHALLENGE, NULL, out);
		return rc < 0 ? rc : 1;
	}
	/* "If the message contains a MESSAGE-INTEGRITY or a
	 * MESSAGE-INTEGRITY-SHA256 attribute, but is missing either the
	 * USERNAME or USERHASH, REALM, or NONCE attribute, the server MUST
	 * generate an error response with an error code of 400 (Bad Request)." */
	if (!(m->present & NB_STUN_HAS_USERNAME) || !(r->ta.present & NB_TURN_HAS_REALM) ||
	    !(r->ta.present & NB_TURN_HAS_NONCE)) {
		rc = refuse(t, r, NB_TURN_REFUSE_BAD_REQUEST, NULL, out);
		return rc < 0 ? rc : 1;
	}
	/* "If the NONCE is no longer valid, the server MUST generate an error
	 * response with an error code of 438 (Stale Nonce)" - checked before
	 * the credentials, as libjuice does: no key work for a stale client. */
	if (!nonce_ok(t, r->c, r->ta.nonce, r->ta.nonce_len, r->now_ms)) {
		rc = refuse(t, r, NB_TURN_REFUSE_STALE_NONCE, NULL, out);
		return rc < 0 ? rc : 1;
	}
	if (r->ta.realm_len != t->realm_len || memcmp(r->ta.realm, t->cfg.realm, t->realm_len) != 0 ||
	    m->username_len > NB_TURN_REST_USER_MAX ||
	    nb_turn_rest_split(m->username, m->username_len, &expiry, &user, &user_len) != 0) {
		rc = refuse(t, r, NB_TURN_REFUSE_UNAUTHORIZED, NULL, out);
		return rc < 0 ? rc : 1;
	}
	if (nb_turn_rest_password(t->cfg.secret, t->cfg.secret_len, m->username, m->username_len,
				  password) != 0 ||
	    nb_turn_long_term_key(m->username, m->username_len, (const uint8_t *)t->cfg.realm,
				  t->realm_len, (const uint8_t *)password, NB_TURN_REST_PASSWORD_LEN,
				  r->key) != 0) {
		OPENSSL_cleanse(password, sizeof(password));
		return drop(t, NB_TURN_DROP_INVAL);
	}
	OPENSSL_cleanse(password, sizeof(password));
	if (nb_stun_check_integrity(m, r->data, r->len, r->key, NB_TURN_KEY_LEN) != 0) {
		OPENSSL_cleanse(r->key, sizeof(r->key));
		rc = refuse(t, r, NB_TURN_REFUSE_UNAUTHORIZED, NULL, out);
		return rc < 0 ? rc : 1;
	}
	/* TURN REST: the credential is good until its expiry, and we refuse
	 * one that claims to live longer than max_credential_s. */
	if (expiry < r->unix_s || expiry - r->unix_s > t->cfg.max_credential_s) {
		OPENSSL_cleanse(r->key, sizeof(r->key));
		rc = refuse(t, r, NB_TURN_REFUSE_EXPIRED_CREDENTIALS, NULL, out);
		return rc < 0 ? rc : 1;
	}
	r->authed = true;
	r->user = user;
	r->user_len = user_len;
	return 0;
}

/* ---- Methods --------------------------------------------------------------- */

/* RFC 8656 §7.2: "min(client's proposed lifetime, server's maximum allowed
 * lifetime). If this computed value is greater than the default lifetime,
 * then the server uses the computed lifetime ... Otherwise, the server uses
 * the default lifetime." */
static uint32_t lifetime_of(const struct nb_turn *t, const struct req *r)
{
	uint32_t lt;

	if (!(r->ta.present & NB_TURN_HAS_LIFETIME))
		return t->cfg.default_lifetime_s;
	lt = r->ta.lifetime < t->cfg.max_lifetime_s ? r->ta.lifetime : t->cfg.max_lifetime_s;
	return lt > t->cfg.default_lifetime_s ? lt : t->cfg.default_lifetime_s;
}

/* The REQUESTED-ADDRESS-FAMILY code of a relayed family. */
static uint8_t family_code(unsigned fam)
{
	return fam == NB_FAM_V4 ? NB_TURN_FAMILY_IPV4 : NB_TURN_FAMILY_IPV6;
}

/* The family slot an Allocate asks for: none -> IPv4 (RFC 8656 §7.2: "If
 * the REQUESTED-ADDRESS-FAMILY attribute is absent ..., the server MUST
 * allocate an IPv4-relayed transport address"). -1: a family we do not
 * know or have no relay IP for (440). */
static int requested_fam(const struct nb_turn *t, const struct nb_turn_attrs *ta)
{
	int fam = NB_FAM_V4;

	if (ta->present & NB_TURN_HAS_REQUESTED_FAMILY) {
		if (ta->requested_family == NB_TURN_FAMILY_IPV4)
			fam = NB_FAM_V4;
		else if (ta->requested_family == NB_TURN_FAMILY_IPV6)
			fam = NB_FAM_V6;
		else
			return -1;
	}
	return t->cfg.relay_ip[fam].family == NB_AF_NONE ? -1 : fam;
}

static int do_allocate(struct nb_turn *t, struct req *r, struct alloc *existing, uint32_t eslot,
		       struct nb_turn_out *out)
{
	const struct nb_turn_attrs *ta = &r->ta;
	uint64_t uh;
	uint32_t slot;
	uint16_t port;
	struct alloc *a;
	int fam;

	/* RFC 8656 §7.2 step 2: a 5-tuple in use gets 437, unless this is a
	 * retransmission of the request that made it (same transaction ID):
	 * then the success response again. */
	if (existing != NULL) {
		if (memcmp(existing->tid, r->m.tid, NB_STUN_TID_LEN) != 0)
			return refuse(t, r, NB_TURN_REFUSE_MISMATCH, NULL, out);
		if (existing->state != A_LIVE)
			return drop(t, NB_TURN_DROP_RETRANSMIT);
		return allocate_success(t, eslot, r->now_ms, out);
	}
	/* Step 3: "If the request does not contain a REQUESTED-TRANSPORT
	 * attribute, ... 400"; step 4: a transport we do not support, 442. */
	if (!(ta->present & NB_TURN_HAS_REQUESTED_TRANSPORT))
		return refuse(t, r, NB_TURN_REFUSE_BAD_REQUEST, NULL, out);
	if (ta->requested_transport != NB_TURN_TRANSPORT_UDP)
		return refuse(t, r, NB_TURN_REFUSE_TRANSPORT, NULL, out);
	/* RFC 8656 §7.2: REQUESTED-ADDRESS-FAMILY with ADDITIONAL-ADDRESS-
	 * FAMILY is 400; a family we have no relay IP for is 440. An
	 * allocation relays one family: a dual allocation (ADDITIONAL-
	 * ADDRESS-FAMILY) is refused with 440 as well. */
	if ((ta->present & NB_TURN_HAS_REQUESTED_FAMILY) && (ta->present & NB_TURN_HAS_ADDITIONAL_FAMILY))
		return refuse(t, r, NB_TURN_REFUSE_BAD_REQUEST, NULL, out);
	fam = requested_fam(t, ta);
	if (fam < 0)
		return refuse(t, r, NB_TURN_REFUSE_FAMILY, NULL, out);
	if (ta->present & NB_TURN_HAS_ADDITIONAL_FAMILY)
		return refuse(t, r, NB_TURN_REFUSE_FAMILY, NULL, out);
	/* Step 5: EVEN-PORT and RESERVATION-TOKEN together are 400. */
	if ((ta->present & NB_TURN_HAS_EVEN_PORT) && (ta->present & NB_TURN_HAS_RESERVATION_TOKEN))
		return refuse(t, r, NB_TURN_REFUSE_BAD_REQUEST, NULL, out);
	/* Step 7: "The server checks if the request is within quota (486)". */
	uh = nb_siphash(t->hash_key, r->user, r->user_len);
	if (user_count(t, uh, r->user, r->user_len) >= t->cfg.max_allocs_per_user)
		return refuse(t, r, NB_TURN_REFUSE_QUOTA_USER, NULL, out);
	if (nb_slots_used(&t->slots) >= t->cfg.max_allocs)
		return refuse(t, r, NB_TURN_REFUSE_QUOTA_TOTAL, NULL, out);
	resv_sweep(t, r->now_ms);
	if (ta->present & NB_TURN_HAS_RESERVATION_TOKEN) {
		/* Step 6: the port a reservation kept; unknown or expired: 508. */
		port = 0;
		for (size_t i = 0; i < RESV_MAX && port == 0; i++)
			if (t->resv[i].used &&
			    CRYPTO_memcmp(t->resv[i].token, ta->reservation_token, NB_TURN_TOKEN_LEN) == 0) {
				port = t->resv[i].port; /* stays taken: the allocation's now */
				t->resv[i].used = false;
			}
	} else if (ta->present & NB_TURN_HAS_EVEN_PORT) {
		size_t k = RESV_MAX;
		if (ta->even_port_reserve)
			for (k = 0; k < RESV_MAX && t->resv[k].used; k++)
				;
		port = k == RESV_MAX && ta->even_port_reserve ? 0 : port_take_even(t, ta->even_port_reserve);
		if (port != 0 && ta->even_port_reserve) {
			uint64_t c = t->counter++, v = nb_siphash(t->hash_key, &c, sizeof(c)) ^ 0x5245535600ull;
			t->resv[k].used = true;
			t->resv[k].port = (uint16_t)(port + 1);
			t->resv[k].expires_ms = r->now_ms + RESV_MS;
			for (size_t i = 0; i < NB_TURN_TOKEN_LEN; i++)
				t->resv[k].token[i] = (uint8_t)(v >> (8 * i));
		}
	} else {
		port = port_take(t);
	}
	if (port == 0)
		return refuse(t, r, NB_TURN_REFUSE_CAPACITY, NULL, out);
	slot = nb_slots_take(&t->slots);
	if (slot == NB_SLOT_NONE) { /* not reached: checked above */
		port_give(t, port);
		return refuse(t, r, NB_TURN_REFUSE_QUOTA_TOTAL, NULL, out);
	}
	a = &t->a[slot];
	{
		uint16_t gen = (uint16_t)(a->gen + 1);

		memset(a, 0, sizeof(*a));
		a->gen = gen == 0 ? 1 : gen;
	}
	memset(perms_of(t, slot), 0, sizeof(struct perm) * t->cfg.max_perms);
	memset(chans_of(t, slot), 0, sizeof(struct chan) * t->cfg.max_channels);
	a->state = A_OPENING;
	a->tries = 1;
	a->fam = (uint8_t)fam;
	if ((ta->present & NB_TURN_HAS_EVEN_PORT) && ta->even_port_reserve) {
		for (size_t i = 0; i < RESV_MAX; i++)
			if (t->resv[i].used && t->resv[i].port == port + 1u) {
				a->has_token = true;
				memcpy(a->token, t->resv[i].token, NB_TURN_TOKEN_LEN);
			}
	}
	a->fp = (r->m.present & NB_STUN_HAS_FINGERPRINT) != 0;
	a->port = port;
	a->lifetime_s = lifetime_of(t, r);
	a->client = *r->c;
	a->tuple_hash = tuple_hash(t, r->c);
	a->user_hash = uh;
	memcpy(a->tid, r->m.tid, NB_STUN_TID_LEN);
	memcpy(a->key, r->key, NB_TURN_KEY_LEN);
	memcpy(a->username, r->m.username, r->m.username_len);
	a->username_len = r->m.username_len;
	a->user_off = (size_t)(r->user - r->m.username);
	a->deadline_ms = r->now_ms + (uint64_t)a->lifetime_s * 1000;
	nb_hidx_add(&t->by_tuple, a->tuple_hash, slot);
	nb_hidx_add(&t->by_user, a->user_hash, slot);
	a->indexed = true;
	heap_push(t, slot);
	out_open(t, slot, out);
	return 0;
}

static int do_refresh(struct nb_turn *t, struct req *r, struct alloc *a, uint32_t slot,
		      struct nb_turn_out *out)
{
	uint32_t lt;

	/* RFC 8656 §8: no allocation on this 5-tuple -> 437. */
	if (a == NULL)
		return refuse(t, r, NB_TURN_REFUSE_MISMATCH, NULL, out);
	/* RFC 8656 §8: "If the server receives a Refresh Request with a
	 * REQUESTED-ADDRESS-FAMILY attribute and the attribute value does not
	 * match the address family of the allocation, the server MUST reply
	 * with a 443 (Peer Address Family Mismatch) Refresh error response." */
	if ((r->ta.present & NB_TURN_HAS_REQUESTED_FAMILY) &&
	    r->ta.requested_family != family_code(a->fam))
		return refuse(t, r, NB_TURN_REFUSE_PEER_FAMILY, NULL, out);
	/* "If the requested lifetime is zero, then the server MUST
	 * immediately delete the allocation." Its CLOSE comes from poll. */
	if ((r->ta.present & NB_TURN_HAS_LIFETIME) && r->ta.lifetime == 0) {
		alloc_end(t, slot, false);
		unindex(t, slot);
		a->state = A_CLOSING;
		set_deadline(t, slot, r->now_ms);
		return plain_success(t, r, true, 0, out);
	}
	lt = lifetime_of(t, r);
	a->lifetime_s = lt;
	set_deadline(t, slot, r->now_ms + (uint64_t)lt * 1000);
	return plain_success(t, r, true, lt, out);
}

/* The IP family (enum nb_family) an allocation relays. */
static uint8_t alloc_family(const struct alloc *a)
{
	return a->fam == NB_FAM_V4 ? NB_AF_INET : NB_AF_INET6;
}

/* A peer address a request on allocation a may name: its family, not
 * forbidden. */
static int check_peer(struct nb_turn *t, struct req *r, const struct alloc *a,
		      const struct nb_addr *p, struct nb_turn_out *out)
{
	if (p->family != alloc_family(a))
		return refuse(t, r, NB_TURN_REFUSE_PEER_FAMILY, p, out);
	if (nb_turn_peer_forbidden(&t->cfg, p))
		return refuse(t, r, NB_TURN_REFUSE_FORBIDDEN_PEER, p, out);
	return 1;
}

static int do_create_permission(struct nb_turn *t, struct req *r, struct alloc *a, uint32_t slot,
				struct nb_turn_out *out)
{
	const struct nb_turn_attrs *ta = &r->ta;
	size_t need = 0;
	int rc;

	if (a == NULL)
		return refuse(t, r, NB_TURN_REFUSE_MISMATCH, NULL, out);
	/* RFC 8656 §9.2: at least one XOR-PEER-ADDRESS, each checked; "the
	 * server MUST NOT install any permission" when one fails. */
	if (ta->n_peers == 0)
		return refuse(t, r, NB_TURN_REFUSE_BAD_REQUEST, NULL, out);
	for (size_t i = 0; i < ta->n_peers; i++) {
		bool dup = false;

		rc = check_peer(t, r, a, &ta->peers[i], out);
		if (rc != 1)
			return rc;
		for (size_t j = 0; j < i && !dup; j++)
			dup = memcmp(ta->peers[j].ip, ta->peers[i].ip, 16) == 0;
		if (!dup && perm_find(t, slot, &ta->peers[i], r->now_ms) == NULL)
			need++;
	}
	if (need > perm_free_count(t, slot, r->now_ms))
		return refuse(t, r, NB_TURN_REFUSE_PERMS_FULL, NULL, out);
	for (size_t i = 0; i < ta->n_peers; i++)
		perm_install(t, slot, &ta->peers[i], r->now_ms);
	return plain_success(t, r, false, 0, out);
}

static int do_channel_bind(struct nb_turn *t, struct req *r, struct alloc *a, uint32_t slot,
			   struct nb_turn_out *out)
{
	const struct nb_turn_attrs *ta = &r->ta;
	const struct nb_addr *peer;
	struct chan *by_num, *by_peer, *ch;
	uint64_t now = r->now_ms;
	int rc;

	if (a == NULL)
		return refuse(t, r, NB_TURN_REFUSE_MISMATCH, NULL, out);
	/* RFC 8656 §11.2: "The request contains both a CHANNEL-NUMBER and an
	 * XOR-PEER-ADDRESS attribute"; "The channel number is in the range
	 * 0x4000 through 0x4FFF (inclusive)"; we take RFC 5766's 0x4000-0x7FFF
	 * too, as coturn does (NB_TURN_CHANNEL_MAX). */
	if (!(ta->present & NB_TURN_HAS_CHANNEL) || ta->n_peers != 1 ||
	    ta->channel < NB_TURN_CHANNEL_MIN || ta->channel > NB_TURN_CHANNEL_MAX)
		return refuse(t, r, NB_TURN_REFUSE_BAD_REQUEST, NULL, out);
	peer = &ta->peers[0];
	if (peer->port == 0)
		return refuse(t, r, NB_TURN_REFUSE_BAD_REQUEST, NULL, out);
	rc = check_peer(t, r, a, peer, out);
	if (rc != 1)
		return rc;
	/* "The channel number is not currently bound to a different transport
	 * address (same transport address is OK)"; "The transport address is
	 * not currently bound to a different channel number." */
	by_num = chan_by_number(t, slot, ta->channel, now);
	by_peer = chan_by_peer(t, slot, peer, now);
	if ((by_num != NULL && !nb_addr_equal(&by_num->peer, peer)) ||
	    (by_peer != NULL && by_peer->number != ta->channel))
		return refuse(t, r, NB_TURN_REFUSE_BAD_REQUEST, NULL, out);
	ch = by_num != NULL ? by_num : chan_free_slot(t, slot, now);
	if (ch == NULL)
		return refuse(t, r, NB_TURN_REFUSE_CHANNELS_FULL, NULL, out);
	if (perm_find(t, slot, peer, now) == NULL && perm_free_slot(t, slot, now) == NULL)
		return refuse(t, r, NB_TURN_REFUSE_PERMS_FULL, NULL, out);
	/* §11.2: binding or refreshing the channel (10 minutes) also installs
	 * or refreshes the permission for the peer's IP (5 minutes). */
	ch->number = ta->channel;
	ch->peer = *peer;
	ch->expiry_ms = now + CHANNEL_MS;
	perm_install(t, slot, peer, now);
	return plain_success(t, r, false, 0, out);
}

/* Data from the client bound for peer: the checks every path shares. */
static int relay_to_peer(struct nb_turn *t, uint32_t slot, const struct nb_addr *peer,
			 const uint8_t *data, size_t len, uint64_t now, struct nb_turn_out *out)
{
	struct alloc *a = &t->a[slot];

	if (len > NB_TURN_MAX_DATA)
		return drop(t, NB_TURN_DROP_TOO_BIG);
	if (peer->family != alloc_family(a) || peer->port == 0 ||
	    nb_turn_peer_forbidden(&t->cfg, peer))
		return drop(t, NB_TURN_DROP_FORBIDDEN);
	/* RFC 8656 §10.2: "If no such permission exists, the server silently
	 * discards the Send indication". */
	if (perm_find(t, slot, peer, now) == NULL)
		return drop(t, NB_TURN_DROP_NO_PERMISSION);
	if (!bucket_take(t, a, len, now))
		return drop(t, NB_TURN_DROP_BANDWIDTH);
	out->kind = NB_TURN_OUT_PEER;
	out->client = a->client;
	out->alloc = handle_of(t, slot);
	out->port = a->port;
	out->to = *peer;
	out->data = data;
	out->len = len;
	t->st.bytes_to_peer += len;
	t->st.pkts_to_peer++;
	return 0;
}

static int do_send(struct nb_turn *t, struct req *r, struct nb_turn_out *out)
{
	uint32_t slot = 0;
	struct alloc *a;
	uint16_t unknown[1];

	/* RFC 8489 §6.3.2: an indication with unknown comprehension-required
	 * attributes is discarded. */
	if (nb_turn_unknown_required(&r->m, unknown, 1) > 0)
		return drop(t, NB_TURN_DROP_MALFORMED);
	a = find_live(t, r->c, &slot);
	if (a == NULL)
		return drop(t, NB_TURN_DROP_NO_ALLOCATION);
	if (!(r->ta.present & NB_TURN_HAS_DATA) || r->ta.n_peers < 1)
		return drop(t, NB_TURN_DROP_BAD_SEND);
	return relay_to_peer(t, slot, &r->ta.peers[0], r->ta.data, r->ta.data_len, r->now_ms, out);
}

static int client_chandata(struct nb_turn *t, const struct nb_turn_client *c, const uint8_t *data,
			   size_t len, uint64_t now, struct nb_turn_out *out)
{
	bool tcp = c->transport == NB_TURN_CLIENT_TCP;
	uint16_t number = 0;
	const uint8_t *d = NULL;
	size_t dl = 0;
	uint32_t slot = 0;
	struct alloc *a;
	struct chan *ch;
	ssize_t n = nb_turn_chandata_decode(data, len, tcp, &number, &d, &dl);

	if (n < 0 || (tcp && (size_t)n != len))
		return drop(t, NB_TURN_DROP_MALFORMED);
	a = find_live(t, c, &slot);
	if (a == NULL)
		return drop(t, NB_TURN_DROP_NO_ALLOCATION);
	ch = chan_by_number(t, slot, number, now);
	if (ch == NULL)
		return drop(t, NB_TURN_DROP_NO_CHANNEL);
	return relay_to_peer(t, slot, &ch->peer, d, dl, now, out);
}

int nb_turn_handle_client(struct nb_turn *t, const struct nb_turn_client *c, const uint8_t *data,
			  size_t len, uint64_t now_ms, uint64_t unix_s, struct nb_turn_out *out)
{
	struct req r;
	struct alloc *a;
	uint32_t slot = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (c->transport != NB_TURN_CLIENT_UDP && c->transport != NB_TURN_CLIENT_TCP)
		return drop(t, NB_TURN_DROP_INVAL);
	if (!source_ok(&c->addr))
		return drop(t, NB_TURN_DROP_SOURCE);
	if (nb_turn_is_chandata(data, len))
		return client_chandata(t, c, data, len, now_ms, out);

	memset(&r, 0, sizeof(r));
	r.c = c;
	r.data = data;
	r.len = len;
	r.now_ms = now_ms;
	r.unix_s = unix_s;
	if (!nb_stun_is_stun(data, len) || nb_stun_decode(&r.m, data, len) != (ssize_t)len ||
	    r.m.classic)
		return drop(t, NB_TURN_DROP_MALFORMED);
	if (r.m.cls == NB_STUN_CLASS_INDICATION) {
		if (r.m.method != NB_TURN_METHOD_SEND)
			return drop(t, NB_TURN_DROP_NOT_REQUEST);
		if (nb_turn_attrs_parse(&r.m, data, len, &r.ta) != 0)
			return drop(t, NB_TURN_DROP_MALFORMED);
		return do_send(t, &r, out);
	}
	if (r.m.cls != NB_STUN_CLASS_REQUEST)
		return drop(t, NB_TURN_DROP_NOT_REQUEST);
	switch (r.m.method) {
	case NB_TURN_METHOD_ALLOCATE:
	case NB_TURN_METHOD_REFRESH:
	case NB_TURN_METHOD_CREATE_PERMISSION:
	case NB_TURN_METHOD_CHANNEL_BIND: break;
	default: return drop(t, NB_TURN_DROP_METHOD);
	}
	/* A TURN attribute that does not parse makes the request malformed:
	 * 400, unauthenticated (RFC 8489 §6.3.1). */
	if (nb_turn_attrs_parse(&r.m, data, len, &r.ta) != 0)
		return refuse(t, &r, NB_TURN_REFUSE_BAD_REQUEST, NULL, out);

	rc = authenticate(t, &r, out);
	if (rc != 0)
		goto out;

	/* RFC 8656 §5: requests on an allocation must use the username that
	 * created it: "441 (Wrong Credentials)". */
	a = find_tuple(t, c, &slot);
	if (a != NULL && (a->username_len != r.m.username_len ||
			  memcmp(a->username, r.m.username, a->username_len) != 0)) {
		rc = refuse(t, &r, NB_TURN_REFUSE_WRONG_CREDENTIALS, NULL, out);
		goto out;
	}
	/* RFC 8489 §6.3.1: unknown comprehension-required attributes -> 420. */
	{
		uint16_t unknown[1];

		if (nb_turn_unknown_required(&r.m, unknown, 1) > 0) {
			rc = refuse(t, &r, NB_TURN_REFUSE_UNKNOWN_ATTRIBUTE, NULL, out);
			goto out;
		}
	}
	if (r.m.method == NB_TURN_METHOD_ALLOCATE) {
		rc = do_allocate(t, &r, a, slot, out);
		goto out;
	}
	if (a != NULL && a->state != A_LIVE)
		a = NULL;
	switch (r.m.method) {
	case NB_TURN_METHOD_REFRESH: rc = do_refresh(t, &r, a, slot, out); break;
	case NB_TURN_METHOD_CREATE_PERMISSION: rc = do_create_permission(t, &r, a, slot, out); break;
	default: rc = do_channel_bind(t, &r, a, slot, out); break;
	}
out:
	OPENSSL_cleanse(r.key, sizeof(r.key));
	if (rc < 0) {
		memset(out, 0, sizeof(*out));
		return rc;
	}
	return 0;
}

/* ---- Peer side ------------------------------------------------------------- */

int nb_turn_handle_peer(struct nb_turn *t, uint32_t alloc, const struct nb_addr *from,
			const uint8_t *data, size_t len, uint64_t now_ms, struct nb_turn_out *out)
{
	uint32_t slot = 0;
	struct alloc *a;
	struct chan *ch;
	bool tcp;

	memset(out, 0, sizeof(*out));
	a = alloc_of(t, alloc, &slot);
	if (a == NULL || a->state != A_LIVE)
		return drop(t, NB_TURN_DROP_NO_ALLOCATION);
	if (len > NB_TURN_MAX_DATA)
		return drop(t, NB_TURN_DROP_TOO_BIG);
	/* RFC 8656 §10.3: "the server checks if there is a permission ... for
	 * the source IP address; if none, the UDP datagram is silently
	 * discarded." */
	if (from->family != alloc_family(a) || perm_find(t, slot, from, now_ms) == NULL)
		return drop(t, NB_TURN_DROP_NO_PERMISSION);
	if (!bucket_take(t, a, len, now_ms))
		return drop(t, NB_TURN_DROP_BANDWIDTH);
	tcp = a->client.transport == NB_TURN_CLIENT_TCP;
	ch = chan_by_peer(t, slot, from, now_ms);
	if (ch != NULL) {
		/* §12.5: "If the server has a channel bound to the peer's
		 * transport address, ... ChannelData"; padded over TCP. */
		ssize_t n = nb_turn_chandata_encode(t->buf, sizeof(t->buf), ch->number, data, len, tcp);

		if (n < 0)
			return drop(t, NB_TURN_DROP_NOSPACE);
		out->len = (size_t)n;
	} else {
		/* §10.3: a Data indication with XOR-PEER-ADDRESS and DATA. */
		struct nb_stun_enc e;
		uint8_t tid[NB_STUN_TID_LEN];
		int rc;

		make_tid(t, tid);
		rc = resp_begin(t, &e, NB_TURN_METHOD_DATA, NB_STUN_CLASS_INDICATION, tid);
		if (rc == 0)
			rc = nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_PEER_ADDRESS, from);
		if (rc == 0)
			rc = nb_stun_enc_attr(&e, NB_TURN_ATTR_DATA, data, len);
		if (rc < 0 || nb_stun_enc_len(&e) > NB_TURN_MAX_RESPONSE)
			return drop(t, NB_TURN_DROP_NOSPACE);
		out->len = nb_stun_enc_len(&e);
	}
	out->kind = NB_TURN_OUT_CLIENT;
	out->client = a->client;
	out->alloc = alloc;
	out->port = a->port;
	out->to = a->client.addr;
	out->data = t->buf;
	t->st.bytes_from_peer += len;
	t->st.pkts_from_peer++;
	return 0;
}

/* ---- Shell callbacks ------------------------------------------------------- */

int nb_turn_opened(struct nb_turn *t, uint32_t alloc, int status, uint64_t now_ms,
		   struct nb_turn_out *out)
{
	uint32_t slot = 0;
	struct alloc *a;

	memset(out, 0, sizeof(*out));
	a = alloc_of(t, alloc, &slot);
	if (a == NULL)
		return drop(t, NB_TURN_DROP_NO_ALLOCATION);
	if (status > 0)
		return drop(t, NB_TURN_DROP_INVAL);
	if (a->state == A_ORPHAN) {
		/* The client left while the socket was being bound. */
		if (status == 0)
			out_close(t, slot, out);
		alloc_free(t, slot);
		return 0;
	}
	if (a->state != A_OPENING)
		return drop(t, NB_TURN_DROP_INVAL);
	if (status == 0) {
		a->state = A_LIVE;
		a->tokens = t->cfg.bandwidth_Bps * 1000;
		a->tokens_ms = now_ms;
		set_deadline(t, slot, now_ms + (uint64_t)a->lifetime_s * 1000);
		t->st.allocs_created++;
		t->st.allocs_now++;
		alloc_event(t, slot, NB_TURN_EV_ALLOC_CREATED, false);
		return allocate_success(t, slot, now_ms, out);
	}
	/* The port was taken by someone else: it is not ours to mark. */
	port_give(t, a->port);
	a->port = 0;
	if (a->tries < NB_TURN_OPEN_TRIES) {
		uint16_t p = port_take(t);

		if (p != 0) {
			a->port = p;
			a->tries++;
			out_open(t, slot, out);
			return 0;
		}
	}
	/* RFC 8656 §7.2: "If the server cannot allocate a relayed transport
	 * address ... 508 (Insufficient Capacity)". */
	{
		struct req r;
		int rc;

		memset(&r, 0, sizeof(r));
		r.c = &a->client;
		r.now_ms = now_ms;
		r.authed = true;
		memcpy(r.key, a->key, sizeof(r.key));
		r.m.method = NB_TURN_METHOD_ALLOCATE;
		memcpy(r.m.tid, a->tid, NB_STUN_TID_LEN);
		if (a->fp)
			r.m.present |= NB_STUN_HAS_FINGERPRINT;
		r.m.username = a->username;
		r.m.username_len = a->username_len;
		r.m.present |= NB_STUN_HAS_USERNAME;
		rc = refuse(t, &r, NB_TURN_REFUSE_CAPACITY, NULL, out);
		OPENSSL_cleanse(r.key, sizeof(r.key));
		alloc_free(t, slot); /* out->data is t->buf: not touched by this */
		return rc < 0 ? rc : 0;
	}
}

int nb_turn_client_closed(struct nb_turn *t, const struct nb_turn_client *c, uint64_t now_ms,
			  struct nb_turn_out *out)
{
	uint32_t slot = 0;
	struct alloc *a;

	(void)now_ms;
	memset(out, 0, sizeof(*out));
	a = find_tuple(t, c, &slot);
	if (a == NULL)
		return 0;
	unindex(t, slot);
	if (a->state == A_OPENING) {
		a->state = A_ORPHAN;
		return 0;
	}
	alloc_end(t, slot, false);
	out_close(t, slot, out);
	alloc_free(t, slot);
	return 0;
}

int nb_turn_poll(struct nb_turn *t, uint64_t now_ms, struct nb_turn_out *out)
{
	uint32_t slot;
	struct alloc *a;

	memset(out, 0, sizeof(*out));
	if (t->heap_n == 0 || t->a[t->heap[0]].deadline_ms > now_ms)
		return 0;
	slot = t->heap[0];
	a = &t->a[slot];
	/* RFC 8656 §7: "When the timer expires, the server deletes the
	 * allocation"; a pending OPEN past its deadline is given up too. */
	if (a->state == A_LIVE)
		alloc_end(t, slot, true);
	out_close(t, slot, out);
	alloc_free(t, slot);
	return 1;
}
