/* broker/turn.h - the TURN relay server (RFC 8656), UDP relaying, as a pure
 * core: bytes, tuples and an explicit `now` in; at most one output per call
 * and a next deadline out. No sockets, no clock, no libuv.
 *
 * The shell owns the sockets. It passes the core what arrives and carries
 * out what the core asks for:
 *
 *   client datagram / TCP frame --> nb_turn_handle_client() --+
 *   datagram on a relay socket  --> nb_turn_handle_peer()   --+--> struct nb_turn_out
 *   result of an OPEN           --> nb_turn_opened()        --+     NONE   nothing to do
 *   a TCP connection ended      --> nb_turn_client_closed() --+     CLIENT send data to `client`
 *   timer (next_deadline)       --> nb_turn_poll()          --+     PEER   send data from alloc's
 *                                                                         relay socket to `to`
 *                                                                  OPEN   bind UDP `to` (the
 *                                                                         relay IP of alloc's family,
 *                                                                         port) for alloc, then call
 *                                                                         nb_turn_opened()
 *                                                                  CLOSE  close alloc's socket
 *
 * An Allocate takes two steps: the authenticated request yields OPEN (no
 * answer yet); nb_turn_opened(status 0) yields the success response, a
 * failure yields another OPEN on another port (NB_TURN_OPEN_TRIES in all)
 * and then a 508. A deleted allocation (Refresh with LIFETIME 0) is
 * answered at once; its CLOSE comes from the next nb_turn_poll() (the next
 * deadline is then `now`). The shell calls nb_turn_poll() until it returns 0
 * whenever nb_turn_next_deadline() has passed.
 *
 * Credentials: the long-term mechanism (RFC 8489 §9.2) with TURN REST
 * passwords (proto/turn.h): username "<unix expiry>:<user>", password
 * base64(HMAC-SHA1(secret, username)), key MD5(username:realm:password).
 * The NONCE is stateless (coturn's scheme):
 *
 *   +----------------+--------------------------------------------+
 *   | expiry, 8 hex  | HMAC-SHA256(nonce_key, "nbturn1" | expiry   |
 *   | (monotonic s)  |   | client 5-tuple)[0..11], 24 hex           |
 *   +----------------+--------------------------------------------+
 *
 * What is dropped without a word (negative returns, enum nb_turn_drop):
 * anything not a well-formed STUN message or ChannelData, responses,
 * indications other than Send, methods other than TURN's (the shell routes
 * Binding to broker/binding), data without an allocation, permission or
 * channel, over the bandwidth cap, or to a forbidden peer.
 *
 * Families (RFC 8656 §7.2, §8): the server relays IPv4, IPv6 or both - each
 * family it has a relay IP for (nb_turn_config.relay_ip[enum nb_fam]). An
 * allocation relays one family, fixed when it is made: IPv4 when the
 * Allocate has no REQUESTED-ADDRESS-FAMILY, else the family it names; a
 * family without a relay IP is 440 (Address Family not Supported). Dual
 * allocations (ADDITIONAL-ADDRESS-FAMILY) are not offered: 440 (400 with
 * REQUESTED-ADDRESS-FAMILY too). A Refresh naming another family than the
 * allocation's, and CreatePermission / ChannelBind with a peer of another
 * family, are 443 (Peer Address Family Mismatch); such Send data and such
 * peer datagrams are dropped. One relay port pool serves both families: a
 * port number is taken once, whatever the family.
 *
 * Every output is at most NB_TURN_MAX_RESPONSE bytes; application data
 * longer than NB_TURN_MAX_DATA is dropped.
 */
#ifndef NB_BROKER_TURN_H
#define NB_BROKER_TURN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

/* Relayed application data: at most this many bytes each way (a Data
 * indication of it, IPv6 peer: 20 + 24 + 4 + 1500 = 1548 bytes). */
#define NB_TURN_MAX_DATA 1500
/* No output (response, indication, ChannelData, relayed datagram) is longer. */
#define NB_TURN_MAX_RESPONSE 1600

#define NB_TURN_MAX_SECRET 256
#define NB_TURN_MAX_OWN 8
#define NB_TURN_MAX_REALM_LEN 127    /* RFC 8489 §14.9: < 128 characters */
#define NB_TURN_MAX_SOFTWARE_LEN 127 /* RFC 8489 §14.14 */
#define NB_TURN_NONCE_KEY_LEN 32
#define NB_TURN_NONCE_LEN 32 /* 8 hex expiry + 24 hex MAC */
/* Hard limits of the configuration. */
#define NB_TURN_ALLOCS_LIMIT 65535
#define NB_TURN_PERMS_LIMIT 256
#define NB_TURN_CHANNELS_LIMIT 256
/* Ports tried for one Allocate before answering 508. */
#define NB_TURN_OPEN_TRIES 5

/* Defaults (nb_turn_config_default). */
#define NB_TURN_DEFAULT_REALM "natbroker"
#define NB_TURN_DEFAULT_MAX_ALLOCS 1024
#define NB_TURN_DEFAULT_MAX_ALLOCS_PER_USER 8
#define NB_TURN_DEFAULT_MAX_PERMS 64
#define NB_TURN_DEFAULT_MAX_CHANNELS 64
#define NB_TURN_DEFAULT_NONCE_LIFETIME_S 600
#define NB_TURN_DEFAULT_MAX_CREDENTIAL_S 86400
#define NB_TURN_DEFAULT_PORT_LO 49152
#define NB_TURN_DEFAULT_PORT_HI 65535

/* The client's transport (nb_turn_client.transport). */
enum nb_turn_client_transport {
	NB_TURN_CLIENT_UDP = 0,
	NB_TURN_CLIENT_TCP = 1,
};

/* The client's 5-tuple, as far as the shell knows it. */
struct nb_turn_client {
	struct nb_addr addr; /* the client's transport address */
	uint8_t transport;   /* enum nb_turn_client_transport */
	uint8_t sock;        /* server socket index (which listening socket) */
	uint64_t conn;       /* TCP connection id; 0 for UDP */
};

enum nb_turn_out_kind {
	NB_TURN_OUT_NONE = 0,
	NB_TURN_OUT_CLIENT, /* send data/len to `client` */
	NB_TURN_OUT_PEER,   /* send data/len from alloc's relay socket to `to` */
	NB_TURN_OUT_OPEN,   /* bind UDP `to` (relay IP of alloc's family:port); then nb_turn_opened() */
	NB_TURN_OUT_CLOSE,  /* close alloc's relay socket; the handle is dead */
};

struct nb_turn_out {
	uint8_t kind; /* enum nb_turn_out_kind */
	struct nb_turn_client client;
	uint32_t alloc; /* allocation handle (never 0) */
	uint16_t port;  /* OPEN: the relay port */
	struct nb_addr to; /* PEER: the peer; OPEN: relay_ip[alloc's family]:port */
	/* View: into the core's buffer or the caller's input; valid until the
	 * next call into the core (and as long as the input). */
	const uint8_t *data;
	size_t len;
};

/* Refusals: requests answered with an error, by reason (stats and events). */
enum nb_turn_refusal {
	NB_TURN_REFUSE_CHALLENGE = 0,    /* 401: no credentials (the normal first round trip) */
	NB_TURN_REFUSE_UNAUTHORIZED,     /* 401: bad MESSAGE-INTEGRITY, malformed username, realm */
	NB_TURN_REFUSE_EXPIRED_CREDENTIALS, /* 401: REST expiry past, or beyond now + max_credential_s */
	NB_TURN_REFUSE_STALE_NONCE,      /* 438 */
	NB_TURN_REFUSE_WRONG_CREDENTIALS, /* 441: another username than the allocation's */
	NB_TURN_REFUSE_MISMATCH,         /* 437 */
	NB_TURN_REFUSE_QUOTA_USER,       /* 486 */
	NB_TURN_REFUSE_QUOTA_TOTAL,      /* 508: max_allocs */
	NB_TURN_REFUSE_CAPACITY,         /* 508: no port, binds failed, EVEN-PORT, RESERVATION-TOKEN */
	NB_TURN_REFUSE_FORBIDDEN_PEER,   /* 403 */
	NB_TURN_REFUSE_PERMS_FULL,       /* 508 */
	NB_TURN_REFUSE_CHANNELS_FULL,    /* 508 */
	NB_TURN_REFUSE_BAD_REQUEST,      /* 400 */
	NB_TURN_REFUSE_UNKNOWN_ATTRIBUTE, /* 420 */
	NB_TURN_REFUSE_TRANSPORT,        /* 442 */
	NB_TURN_REFUSE_FAMILY,           /* 440 */
	NB_TURN_REFUSE_PEER_FAMILY,      /* 443 */
	NB_TURN_REFUSE_COUNT
};

/* Why nothing was sent: negative returns, a range of their own. */
enum nb_turn_drop {
	NB_TURN_DROP_MALFORMED = -3101,     /* not STUN / ChannelData, or the decoders refused it */
	NB_TURN_DROP_NOT_REQUEST = -3102,   /* a response, or an indication other than Send */
	NB_TURN_DROP_METHOD = -3103,        /* not a TURN method (Binding goes to broker/binding) */
	NB_TURN_DROP_NO_ALLOCATION = -3104, /* none on this 5-tuple / handle unknown or closing */
	NB_TURN_DROP_NO_PERMISSION = -3105,
	NB_TURN_DROP_NO_CHANNEL = -3106,    /* ChannelData on an unbound channel */
	NB_TURN_DROP_FORBIDDEN = -3107,     /* Send to a forbidden peer */
	NB_TURN_DROP_BANDWIDTH = -3108,     /* over the allocation's bandwidth cap */
	NB_TURN_DROP_TOO_BIG = -3109,       /* data longer than NB_TURN_MAX_DATA */
	NB_TURN_DROP_BAD_SEND = -3110,      /* Send without DATA or XOR-PEER-ADDRESS */
	NB_TURN_DROP_SOURCE = -3111,        /* client address unusable (port 0, multicast...) */
	NB_TURN_DROP_INVAL = -3112,         /* bad argument (transport, status, handle state) */
	NB_TURN_DROP_NOSPACE = -3113,       /* an answer did not fit (a bug: never expected) */
	NB_TURN_DROP_RETRANSMIT = -3114,    /* Allocate retransmitted while its OPEN is pending */
};
#define NB_TURN_DROP_COUNT 14
static inline unsigned nb_turn_drop_index(int drop)
{
	return (unsigned)(NB_TURN_DROP_MALFORMED - drop);
}

enum nb_turn_event_kind {
	NB_TURN_EV_REFUSED = 0,   /* reason, code, method, client[, username] */
	NB_TURN_EV_ALLOC_CREATED, /* alloc, client, port, username, lifetime_s */
	NB_TURN_EV_ALLOC_DELETED, /* alloc, client, port, username; expired: by timeout */
};

struct nb_turn_event {
	uint8_t kind;   /* enum nb_turn_event_kind */
	uint8_t reason; /* enum nb_turn_refusal (REFUSED) */
	uint16_t code;  /* error code sent (REFUSED) */
	uint16_t method; /* request method (REFUSED) */
	bool expired;   /* ALLOC_DELETED: lifetime ran out (else: refresh 0 / TCP close / failed) */
	const struct nb_turn_client *client;
	uint32_t alloc;
	uint16_t port;
	uint32_t lifetime_s;
	const struct nb_addr *peer; /* FORBIDDEN_PEER: the refused peer; else NULL */
	const uint8_t *username;    /* view, not NUL-terminated; NULL when unknown */
	size_t username_len;
};

typedef void (*nb_turn_event_cb)(void *arg, const struct nb_turn_event *ev);

struct nb_turn_config {
	uint8_t secret[NB_TURN_MAX_SECRET]; /* REST shared secret (copied) */
	size_t secret_len;                  /* 1..NB_TURN_MAX_SECRET */
	char realm[NB_TURN_MAX_REALM_LEN + 1]; /* NUL-terminated, printable ASCII, non-empty */
	uint32_t default_lifetime_s; /* 600 (RFC 8656 §3.9); >= 1 */
	uint32_t max_lifetime_s;     /* 3600; requests above are capped; >= default */
	uint32_t max_allocs;         /* total, 1..NB_TURN_ALLOCS_LIMIT */
	uint32_t max_allocs_per_user; /* "user": the REST username after the first ':'; >= 1 */
	uint32_t max_perms;          /* per allocation, 1..NB_TURN_PERMS_LIMIT */
	uint32_t max_channels;       /* per allocation, 1..NB_TURN_CHANNELS_LIMIT */
	uint64_t bandwidth_Bps;      /* per allocation, both directions; 0 = unlimited; burst 1 s */
	bool allow_private;          /* relay to RFC 1918, 100.64/10, fc00::/7 */
	struct nb_addr own[NB_TURN_MAX_OWN]; /* the broker's own IPs: never peers (port ignored) */
	size_t n_own;
	/* The relayed IPs by enum nb_fam (port ignored): [NB_FAM_V4] IPv4 or
	 * NB_AF_NONE, [NB_FAM_V6] IPv6 or NB_AF_NONE; at least one set; each
	 * set one specific (not unspecified). A family with none is 440. */
	struct nb_addr relay_ip[NB_FAM_COUNT];
	uint16_t port_lo, port_hi;   /* relay port range, 1 <= lo <= hi */
	uint8_t nonce_key[NB_TURN_NONCE_KEY_LEN]; /* random, from the shell */
	uint32_t nonce_lifetime_s;   /* 600; >= 1 */
	uint32_t max_credential_s;   /* REST expiry at most unix now + this; 86400 */
	char software[NB_TURN_MAX_SOFTWARE_LEN + 1]; /* "" = no SOFTWARE (the default) */
	nb_turn_event_cb cb;         /* may be NULL; called inside the nb_turn_* calls */
	void *cb_arg;
};

struct nb_turn_stats {
	uint64_t allocs_now, allocs_created, allocs_expired, allocs_deleted;
	uint64_t refused[NB_TURN_REFUSE_COUNT];
	uint64_t drops[NB_TURN_DROP_COUNT]; /* by nb_turn_drop_index() */
	uint64_t bytes_to_peer, pkts_to_peer;     /* application data client -> peer */
	uint64_t bytes_from_peer, pkts_from_peer; /* application data peer -> client */
	uint64_t responses;                       /* STUN responses sent (success and error) */
};

struct nb_turn;

/* Defaults; secret empty, nonce_key zero, relay_ip[] none: set them. */
void nb_turn_config_default(struct nb_turn_config *cfg);
/* 0, -EINVAL (a value out of range: see the fields) or -ENOMEM; *ret
 * untouched on failure. The configuration is copied. */
int nb_turn_new(const struct nb_turn_config *cfg, struct nb_turn **ret);
void nb_turn_free(struct nb_turn *t); /* accepts NULL; wipes the secrets */

/* One message from a client: a STUN TURN request (Allocate, Refresh,
 * CreatePermission, ChannelBind), a Send indication, or a ChannelData
 * message (over TCP exactly one frame, padding included). now_ms:
 * monotonic; unix_s: wall clock, for REST expiries. Returns 0 with *out set
 * (kind NONE is possible), or a negative enum nb_turn_drop (*out is NONE). */
int nb_turn_handle_client(struct nb_turn *t, const struct nb_turn_client *c, const uint8_t *data,
			  size_t len, uint64_t now_ms, uint64_t unix_s, struct nb_turn_out *out);

/* One datagram that arrived on allocation alloc's relay socket from `from`.
 * Returns 0 with a CLIENT output (ChannelData if a channel is bound to
 * `from`, else a Data indication), or a negative enum nb_turn_drop. */
int nb_turn_handle_peer(struct nb_turn *t, uint32_t alloc, const struct nb_addr *from,
			const uint8_t *data, size_t len, uint64_t now_ms, struct nb_turn_out *out);

/* The shell's OPEN for alloc is done: status 0 (bound) or -errno. (If the
 * lifetime ran out first, nb_turn_poll() already gave its CLOSE, and this
 * returns NB_TURN_DROP_NO_ALLOCATION: close what was bound.) Returns 0
 * with *out: CLIENT (the Allocate success, or its 508 after
 * NB_TURN_OPEN_TRIES failures), OPEN (try another port), CLOSE (the
 * allocation died meanwhile: close the socket just bound) or NONE; or a
 * negative enum nb_turn_drop (unknown handle, not waiting for an OPEN). */
int nb_turn_opened(struct nb_turn *t, uint32_t alloc, int status, uint64_t now_ms,
		   struct nb_turn_out *out);

/* A TCP connection ended: the allocation on it goes. Returns 0 with *out
 * CLOSE (or NONE: no allocation, or its OPEN is still pending). */
int nb_turn_client_closed(struct nb_turn *t, const struct nb_turn_client *c, uint64_t now_ms,
			  struct nb_turn_out *out);

/* Expire what is due: one CLOSE per call. Returns 1 with *out set, 0 when
 * nothing more is due. */
int nb_turn_poll(struct nb_turn *t, uint64_t now_ms, struct nb_turn_out *out);
/* When nb_turn_poll() next has work; UINT64_MAX: never (no allocation). */
uint64_t nb_turn_next_deadline(const struct nb_turn *t);

const struct nb_turn_stats *nb_turn_get_stats(const struct nb_turn *t);

/* Short names for logs and counters ("stale-nonce", "no-permission", ...). */
const char *nb_turn_refusal_name(unsigned reason);
const char *nb_turn_drop_name(int drop);

/* True if the core would never relay to a (the peer policy of cfg): no
 * family, unspecified, loopback, link-local, multicast, 0/8, 240/4 (with
 * 255.255.255.255), ::/96, fec0::/10, the private ranges unless
 * allow_private, and the broker's own IPs (both relay_ip[] and own[]) -
 * except a relay IP (either family) with a port in [port_lo, port_hi]:
 * another allocation of this server (relay-to-relay). IPv4-mapped IPv6 addresses are judged as IPv4.
 * The port matters only for that exception. */
bool nb_turn_peer_forbidden(const struct nb_turn_config *cfg, const struct nb_addr *a);

#endif
