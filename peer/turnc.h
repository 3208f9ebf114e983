/* peer/turnc.h - the TURN client (RFC 8656) as a pure state machine: one
 * allocation on one server, its refreshes, permissions and channels, and the
 * wrapping/unwrapping of the data relayed through it. Pure: the shell feeds
 * the server's datagrams (or TCP frames) and `now`, sends what
 * nb_turnc_poll() hands it to the server, and wakes up at
 * nb_turnc_deadline(). No I/O, no clock.
 *
 * States (one set_state()):
 *
 *   ALLOCATING --Allocate success-----------------------> ALLOCATED
 *       |   Allocate (no credentials)                       |   Refresh at L - 60 s
 *       |   <- 401 REALM NONCE                              |   (L/2 when L < 120 s),
 *       |   Allocate + USERNAME REALM NONCE M-I             |   CreatePermission every
 *       |   <- 438 NONCE: again with the new nonce (x3)     |   240 s, ChannelBind every
 *       |                                                   |   480 s per peer
 *       +--401 again, 486, 437, other error, no answer ---+ |
 *                                       (timeout_ms)      v v Refresh refused/lost,
 *                                                     FAILED  allocation expired
 *   ALLOCATED --nb_turnc_close()--> CLOSED (a Refresh with LIFETIME 0 was handed out)
 *
 * Requests (the long-term credential mechanism, RFC 8489 §9.2; key =
 * MD5(username ":" realm ":" password), HMAC-SHA1 MESSAGE-INTEGRITY):
 *
 *   Allocate          REQUESTED-TRANSPORT(UDP) LIFETIME [USERNAME REALM NONCE M-I] FINGERPRINT
 *   Refresh           LIFETIME                  USERNAME REALM NONCE M-I  FINGERPRINT
 *   CreatePermission  XOR-PEER-ADDRESS          USERNAME REALM NONCE M-I  FINGERPRINT
 *   ChannelBind       CHANNEL-NUMBER XOR-PEER-ADDRESS  USERNAME REALM NONCE M-I  FINGERPRINT
 *
 * Data to a peer: a Send indication (XOR-PEER-ADDRESS + DATA) until the
 * peer's ChannelBind succeeded, then ChannelData (proto/turn.h has its
 * diagram; padded to 4 bytes over TCP).
 *
 * Retransmission (RFC 8489 §6.2.1): over UDP a request is sent at 0, 250,
 * 750, 1750, ... ms (RTO 250 ms doubling), at most 7 times, and given up
 * 16 x 250 ms after the last send; over TCP it is sent once and given up
 * after the allocation timeout (Allocate) or 39.5 s (the others). The
 * whole allocation phase gives up after timeout_ms.
 *
 * Input is untrusted. The shell hands in only what came from the server's
 * address (and over TCP, one frame: nb_turn_frame_len()). Responses are
 * matched by transaction ID and method; once we have a key, a response
 * without a valid MESSAGE-INTEGRITY is dropped, except a 401 or 438 error
 * without one (servers send those unauthenticated; RFC 8489 §9.2.5). Data
 * indications and ChannelData are taken only while ALLOCATED and only from
 * peers we asked a permission (or channel) for. A dropped input changes
 * nothing but a drop counter.
 */
#ifndef NB_PEER_TURNC_H
#define NB_PEER_TURNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/addr.h"
#include "proto/stun.h"
#include "proto/turn.h"

#define NB_TURNC_MAX_PEERS 32         /* peers with a permission and channel at once: a listener
                                       * relays for up to its 16 sessions, each with a candidate
                                       * or two of the relayed family (the server: 16 by default,
                                       * per IP for permissions) */
#define NB_TURNC_RTO_MS 250           /* RFC 8489 §6.2.1 suggests 500; libjuice/libnatpmp use 250 */
#define NB_TURNC_MAX_SENDS 7          /* RFC 8489 §6.2.1: Rc = 7 */
#define NB_TURNC_RM 16                /* RFC 8489 §6.2.1: Rm = 16 */
#define NB_TURNC_TCP_TIMEOUT_MS 39500 /* RFC 8489 §6.2.2: Ti = 39.5 s */
#define NB_TURNC_TIMEOUT_MS 8000      /* default: give up allocating after this */
#define NB_TURNC_MAX_STALE 3          /* 438 answers followed per request */
/* RFC 8656 §9: permissions last 300 s; refresh before. §12: channels 600 s. */
#define NB_TURNC_PERM_REFRESH_S 240
#define NB_TURNC_CHAN_REFRESH_S 480
#define NB_TURNC_REFRESH_MARGIN_S 60  /* refresh the allocation this long before expiry */
#define NB_TURNC_USER_MAX 128
#define NB_TURNC_PASS_MAX 128
#define NB_TURNC_REASON_MAX 127
#define NB_TURNC_OUT_MAX 2048         /* the largest request we build (long realm and nonce) */

enum nb_turnc_state {
	NB_TURNC_ALLOCATING = 0,
	NB_TURNC_ALLOCATED,
	NB_TURNC_FAILED, /* final; nb_turnc_reason() says why */
	NB_TURNC_CLOSED, /* final: nb_turnc_close() freed the allocation */
};

/* Why an input was dropped (negative returns of nb_turnc_input()). */
enum nb_turnc_drop {
	NB_TURNC_DROP_NOT_TURN = -1,     /* neither a valid STUN message nor ChannelData */
	NB_TURNC_DROP_MALFORMED = -2,    /* TURN attributes bad, or required ones missing */
	NB_TURNC_DROP_UNKNOWN_TID = -3,  /* a response to no request of ours under way */
	NB_TURNC_DROP_INTEGRITY = -4,    /* MESSAGE-INTEGRITY absent or wrong */
	NB_TURNC_DROP_UNKNOWN_PEER = -5, /* data from a peer or channel we did not ask for */
	NB_TURNC_DROP_STATE = -6,        /* valid, but not now (not allocated, or over) */
	NB_TURNC_DROP_UNEXPECTED = -7,   /* a request, another indication, wrong method */
};
#define NB_TURNC_DROP_COUNT 7

/* Progress of one permission or channel binding. */
enum nb_turnc_grant {
	NB_TURNC_GRANT_NONE = 0, /* not asked yet (waiting for the allocation) */
	NB_TURNC_GRANT_PENDING,  /* asked, no answer yet */
	NB_TURNC_GRANT_OK,       /* granted (refreshes keep it) */
	NB_TURNC_GRANT_FAILED,   /* refused, or no answer */
};

struct nb_turnc_config {
	struct nb_addr server;
	char username[NB_TURNC_USER_MAX + 1]; /* NUL-terminated; "" = no credentials */
	char password[NB_TURNC_PASS_MAX + 1];
	uint32_t lifetime_s; /* requested; 0 = NB_TURN_DEFAULT_LIFETIME_S (600) */
	bool tcp;            /* TCP (or TLS) to the server: no retransmission, padded ChannelData */
	uint32_t timeout_ms; /* give up allocating after this; 0 = NB_TURNC_TIMEOUT_MS */
	/* The relayed address's family: NB_AF_INET6 sends REQUESTED-ADDRESS-
	 * FAMILY IPv6 (RFC 8656 §7.1); NB_AF_NONE or NB_AF_INET send none,
	 * which asks for IPv4. A success of another family fails. */
	uint8_t family;
};

/* One request transaction. */
struct nb_turnc_txn {
	bool active;
	bool once;      /* sent once, never retransmitted (the closing Refresh) */
	uint8_t tid[NB_STUN_TID_LEN];
	uint32_t sends; /* so far */
	uint32_t stale; /* 438 answers followed */
	uint32_t rto;
	uint64_t next_send; /* UINT64_MAX: no more sends */
	uint64_t give_up;   /* UINT64_MAX: not yet fixed */
};

struct nb_turnc_peer {
	struct nb_addr addr;
	uint16_t channel;
	enum nb_turnc_grant perm, chan;
	uint64_t perm_due, chan_due; /* when to (re)send the request */
	struct nb_turnc_txn perm_tx, chan_tx;
};

struct nb_turnc {
	struct nb_turnc_config cfg;
	enum nb_turnc_state state;
	char reason[NB_TURNC_REASON_MAX + 1];
	uint8_t seed[16];
	uint64_t tid_ctr;
	uint8_t ind_tid[NB_STUN_TID_LEN]; /* Send indications' base ID, unrelated to requests' */
	uint64_t alloc_deadline; /* ALLOCATING gives up at this time */

	bool have_key;
	uint8_t key[NB_TURN_KEY_LEN];
	uint8_t realm[NB_TURN_MAX_REALM];
	size_t realm_len;
	uint8_t nonce[NB_TURN_MAX_NONCE];
	size_t nonce_len;

	struct nb_turnc_txn alloc_tx;   /* Allocate, then Refresh */
	struct nb_turnc_txn close_tx;   /* Refresh LIFETIME 0 */
	struct nb_addr relayed, mapped;
	bool have_mapped;
	uint32_t lifetime;              /* granted, seconds */
	uint64_t expires, refresh_due;

	struct nb_turnc_peer peers[NB_TURNC_MAX_PEERS];
	size_t n_peers;
	uint16_t next_channel;

	uint64_t sent, drops[NB_TURNC_DROP_COUNT]; /* drops by -(enum nb_turnc_drop) - 1 */
	uint8_t out[NB_TURNC_OUT_MAX];
};

/* One datagram or TCP frame for the server; bytes point into the client and
 * are valid until the next call into it. */
struct nb_turnc_tx {
	struct nb_addr to; /* the server */
	const uint8_t *bytes;
	size_t len;
};

enum nb_turnc_rx_kind {
	NB_TURNC_RX_CONSUMED = 0, /* a response taken: nothing for the application */
	NB_TURNC_RX_DATA,         /* relayed data from a peer */
};

/* What one input was. For RX_DATA, data is a view into the caller's buffer. */
struct nb_turnc_rx {
	enum nb_turnc_rx_kind kind;
	struct nb_addr from; /* RX_DATA: the peer */
	const uint8_t *data;
	size_t len;
	bool channel;        /* RX_DATA: it came as ChannelData (else a Data indication) */
};

/* Set up an allocation attempt on cfg->server, starting at now (the
 * Allocate comes out of the first nb_turnc_poll()). seed: 16 random bytes
 * (the transaction IDs derive from it). An unusable configuration (no
 * server address, username or password too long) starts FAILED. */
void nb_turnc_init(struct nb_turnc *c, const struct nb_turnc_config *cfg, const uint8_t seed[16],
		   uint64_t now_ms);

/* The next datagram due for the server at now: 1 and *out, or 0. Call until
 * it returns 0. Also applies timeouts (it may move to FAILED). */
int nb_turnc_poll(struct nb_turnc *c, uint64_t now_ms, struct nb_turnc_tx *out);

/* When to call nb_turnc_poll() next (<= now: at once); UINT64_MAX when
 * nothing is pending (FAILED, CLOSED). */
uint64_t nb_turnc_deadline(const struct nb_turnc *c);

/* Ask for a permission for peer's IP and a channel for peer (0x4000 up).
 * Allowed while ALLOCATING (the requests go out once allocated) and while
 * ALLOCATED; asking again for a known peer is a no-op (or a new try if
 * it failed). Returns 0; -EINVAL (no usable address), -EAFNOSUPPORT
 * (family other than the relayed address's), -ENOSPC (table full),
 * -ENOTCONN (FAILED or CLOSED). */
int nb_turnc_permit(struct nb_turnc *c, const struct nb_addr *peer, uint64_t now_ms);

/* Forget peer: its slot is free for another (a listener relays for more
 * peers over an allocation's life than NB_TURNC_MAX_PEERS at once). Its
 * permission and channel at the server expire by themselves; its channel
 * number is never given to another peer (they only grow, up to
 * NB_TURN_CHANNEL_MAX: RFC 8656 §12 forbids rebinding a live channel).
 * A response still due for it is dropped as unmatched. 0, or -ENOENT. */
int nb_turnc_forget(struct nb_turnc *c, const struct nb_addr *peer);

/* One datagram (UDP) or one whole frame (TCP) from the server. Returns 0
 * and *ret (RX_DATA: data from a peer; RX_CONSUMED: a response was taken,
 * call nb_turnc_poll()), or a negative enum nb_turnc_drop with nothing
 * changed but a drop counter and *ret untouched. */
int nb_turnc_input(struct nb_turnc *c, const uint8_t *data, size_t len, uint64_t now_ms,
		   struct nb_turnc_rx *ret);

/* Wrap payload for peer into buf: ChannelData once the peer's channel is
 * bound, else a Send indication (also for an address never permitted whose
 * IP has a granted permission: permissions are per IP). Returns the bytes written (send them to the
 * server), or -ENOTCONN (not ALLOCATED), -ENOENT (peer never permitted),
 * -EAGAIN (permission not granted yet), -EACCES (permission refused or
 * lost), -EMSGSIZE (payload too long for TURN), -ENOSPC (cap too small). */
ssize_t nb_turnc_send(const struct nb_turnc *c, const struct nb_addr *peer, const uint8_t *payload,
		      size_t len, uint8_t *buf, size_t cap);

/* Free the allocation: 1 and *out (a Refresh with LIFETIME 0, best effort,
 * not retransmitted) when ALLOCATED, else 0. The client is CLOSED after
 * (also when still ALLOCATING; FAILED stays FAILED). Its answer, if any, is
 * consumed by nb_turnc_input(). */
int nb_turnc_close(struct nb_turnc *c, uint64_t now_ms, struct nb_turnc_tx *out);

static inline enum nb_turnc_state nb_turnc_state(const struct nb_turnc *c)
{
	return c->state;
}

/* Why FAILED (or how CLOSED): "wrong credentials (401)", "allocation quota
 * reached (486)", "no answer from the relay", ... ("" otherwise). */
const char *nb_turnc_reason(const struct nb_turnc *c);
/* XOR-RELAYED-ADDRESS, once ALLOCATED; else NULL. */
const struct nb_addr *nb_turnc_relayed(const struct nb_turnc *c);
/* XOR-MAPPED-ADDRESS of the Allocate response (our address as the server
 * saw it), once ALLOCATED and if it was there; else NULL. */
const struct nb_addr *nb_turnc_mapped(const struct nb_turnc *c);
/* The lifetime the server granted last, seconds (0 before). */
uint32_t nb_turnc_lifetime(const struct nb_turnc *c);
/* The permission's and channel's progress for peer (NONE for an unknown
 * peer); the channel number (0 when unknown). */
enum nb_turnc_grant nb_turnc_perm_state(const struct nb_turnc *c, const struct nb_addr *peer);
enum nb_turnc_grant nb_turnc_chan_state(const struct nb_turnc *c, const struct nb_addr *peer);
uint16_t nb_turnc_channel(const struct nb_turnc *c, const struct nb_addr *peer);

const char *nb_turnc_state_name(enum nb_turnc_state s);
const char *nb_turnc_drop_name(int drop);

#endif
