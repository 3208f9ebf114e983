/* peer/client.h - the broker client: registration, keepalive, connect,
 * broker-pushed plans, results and the peers listing, over the control
 * messages of docs/protocol.md. Pure: the shell feeds control datagrams from
 * the broker and `now`, sends what nb_client_poll() hands it, reads what
 * happened from nb_client_next_event(), and wakes up at nb_client_deadline().
 *
 * Registration (one set_state(); entry actions there):
 *
 *            register()                 registered
 *   IDLE ---------------> REGISTERING --------------> REGISTERED --+
 *                           ^    |  error 4xx/5xx (not 400/401),   |
 *                           |    |  or no answer in 11750 ms       | every `keepalive` s:
 *               backoff     |    v                                 | keepalive -> ack
 *               over        +- BACKOFF (1 s, doubling to 30 s)     |
 *                           |                                      |
 *                           +--------------------------------------+
 *                              keepalive answered 404 (expired, e.g. the broker
 *                              restarted): register again at once; keepalive
 *                              unanswered (broker silent): register again, and
 *                              keep trying with backoff
 *   REGISTERING --error 400, 401 or 409--> REFUSED (final: the token or the
 *                                     request is wrong, or the name is held by
 *                                     another key; retrying would not help)
 *
 * Every request is a transaction (docs/protocol.md "Transactions"): sent
 * byte for byte again at 250, 750, 1750, 3750, 7750 ms, failed at 11750 ms
 * without a reply. A connect that got no reply at all is asked once more
 * as a new transaction (connect_tries) before CONNECT_FAILED: at 20% loss
 * each way one transaction fails with (1 - 0.8^2)^6 = 2.2e-3, two in a row
 * with 4.7e-6. A broker-pushed plan is acknowledged (a retransmitted one
 * again, without a second event). Only datagrams from the broker's address
 * are read.
 */
#ifndef NB_PEER_CLIENT_H
#define NB_PEER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "proto/ctrl.h"

#define NB_CLIENT_MAX_TXN 8        /* requests in flight */
/* The longest message: what fits a sealed frame (common/seal.h). */
#define NB_CLIENT_MAX_MSG 1171
#define NB_CLIENT_MAX_REPLIES 8    /* acks waiting to be sent */
#define NB_CLIENT_MAX_EVENTS 8     /* events waiting for the shell */
#define NB_CLIENT_PLAN_MEMORY 16   /* pushed plans' tx remembered, to re-ack */
#define NB_CLIENT_MAX_PAGES 4096   /* peers listing: pages before giving up */
#define NB_CLIENT_BACKOFF_MIN_MS 1000
#define NB_CLIENT_BACKOFF_MAX_MS 30000
#define NB_CLIENT_DEFAULT_KEEPALIVE_S 15
#define NB_CLIENT_CONNECT_TRIES 2  /* connect transactions without any reply before failing */
/* A transaction fails this long after its first send. */
#define NB_CLIENT_TXN_TIMEOUT_MS \
	(NB_CTRL_RTO_MS * ((1u << (NB_CTRL_MAX_TRIES - 1)) - 1) + NB_CTRL_FINAL_WAIT_MS) /* 11750 */

enum nb_client_state {
	NB_CLIENT_IDLE = 0,
	NB_CLIENT_REGISTERING,
	NB_CLIENT_REGISTERED,
	NB_CLIENT_BACKOFF,
	NB_CLIENT_REFUSED,
};

enum nb_client_event_type {
	NB_CLIENT_EV_REGISTERED = 1, /* u.registered; also after each re-registration */
	NB_CLIENT_EV_REGISTER_FAILED, /* code (0: no answer), reason; retrying unless REFUSED */
	NB_CLIENT_EV_LOST,           /* the registration is gone (code 404, or 0: broker silent) */
	NB_CLIENT_EV_PLAN,           /* u.plan; pushed: broker-initiated (already acked) */
	NB_CLIENT_EV_CONNECT_FAILED, /* code (0: no answer), reason; peer */
	NB_CLIENT_EV_RESULT_DONE,    /* code: 0 acked, else the error (or -1: no answer); session */
	NB_CLIENT_EV_PEERS_PAGE,     /* u.page: one page of the peers listing */
	NB_CLIENT_EV_PEERS_DONE,     /* the listing (peers or matrix) is complete */
	NB_CLIENT_EV_PEERS_FAILED,   /* the listing (peers or matrix) failed: code (0: no answer), reason */
	NB_CLIENT_EV_MATRIX_PAGE,    /* u.matrix: one page of the matrix listing */
	NB_CLIENT_EV_VERIFIED,       /* the broker's probe of the mapping arrived: proof */
	NB_CLIENT_EV_VERIFY_FAILED,  /* code (0: no probe arrived), reason */
	NB_CLIENT_EV_RELAYED,        /* u.relayed: the other side's relayed address (pushed, acked) */
	NB_CLIENT_EV_RELAYED_DONE,   /* our relayed message: code 0 acked, else the error, -1 no answer; session */
};

struct nb_client_event {
	enum nb_client_event_type type;
	int code;
	bool pushed;
	char reason[NB_CTRL_REASON_MAX + 1];
	char peer[NB_CTRL_ID_MAX + 1];             /* CONNECT_FAILED */
	char session[NB_CTRL_SESSION_LEN + 1];     /* RESULT_DONE */
	char proof[NB_CTRL_PROOF_LEN + 1];         /* VERIFIED */
	struct nb_addr from;                       /* VERIFIED: where the probe came from */
	union {
		struct nb_ctrl_registered registered;
		struct nb_ctrl_plan plan;
		struct nb_ctrl_peer_list page;
		struct nb_ctrl_matrix_list matrix;
		struct nb_ctrl_relayed relayed;
	} u;
};

struct nb_client_params {
	uint32_t backoff_min_ms; /* default NB_CLIENT_BACKOFF_MIN_MS */
	uint32_t backoff_max_ms; /* default NB_CLIENT_BACKOFF_MAX_MS */
	uint32_t connect_tries;  /* default NB_CLIENT_CONNECT_TRIES */
};

/* One datagram for the broker. bytes points into the client; valid until the
 * next call into it. */
struct nb_client_tx {
	struct nb_addr to;
	const uint8_t *bytes;
	size_t len;
};

enum nb_client_txn_kind {
	NB_CLIENT_TXN_NONE = 0,
	NB_CLIENT_TXN_REGISTER,
	NB_CLIENT_TXN_KEEPALIVE,
	NB_CLIENT_TXN_CONNECT,
	NB_CLIENT_TXN_RESULT,
	NB_CLIENT_TXN_PEERS,
	NB_CLIENT_TXN_MATRIX,
	NB_CLIENT_TXN_VERIFY,
	NB_CLIENT_TXN_RELAYED,
};

/* A register answered by this many challenges in a row is a failure. */
#define NB_CLIENT_MAX_CHALLENGES 3

/* verify: sent at 0, 250 and 750 ms; no probe by 1750 ms is a failure. */
#define NB_CLIENT_VERIFY_TRIES 3
#define NB_CLIENT_VERIFY_TIMEOUT_MS 1750

struct nb_client_txn {
	enum nb_client_txn_kind kind;
	char tx[NB_CTRL_TX_LEN + 1];
	uint8_t sends;
	uint8_t attempt;               /* connect: 0 for the first transaction, then 1, ... */
	uint32_t rto;
	uint64_t next_send, give_up;
	char what[NB_CTRL_ID_MAX + 1]; /* connect: the peer; result: the session */
	uint32_t offset;               /* peers: the offset asked for */
	size_t len;
	uint8_t bytes[NB_CTRL_MAX_DATAGRAM];
};

struct nb_client {
	struct nb_client_params p;
	struct nb_addr broker;
	enum nb_client_state state;
	struct nb_ctrl_register reg;  /* what register() sends, again after a loss */
	bool have_reg;
	struct nb_ctrl_registered registered;
	uint32_t keepalive_ms;
	uint64_t next_keepalive;      /* REGISTERED */
	uint64_t retry_at;            /* BACKOFF */
	uint32_t backoff_ms;          /* the next backoff */
	uint32_t registrations;       /* successful ones */

	struct nb_client_txn txn[NB_CLIENT_MAX_TXN];

	struct {
		char tx[NB_CTRL_TX_LEN + 1];
	} reply[NB_CLIENT_MAX_REPLIES]; /* acks to send */
	size_t n_reply;
	char plan_tx[NB_CLIENT_PLAN_MEMORY][NB_CTRL_TX_LEN + 1];
	size_t plan_tx_next;

	struct nb_client_event ev[NB_CLIENT_MAX_EVENTS];
	size_t ev_head, n_ev;
	uint64_t events_dropped;

	uint32_t peers_pages;
	char cookie[NB_CTRL_COOKIE_LEN + 1]; /* the broker's last challenge: sent with every register */
	char admin[NB_CTRL_TOKEN_MAX + 1];   /* peers, matrix: the broker's admin token; "" = none */
	uint8_t challenges;                  /* challenges in a row without getting registered */
	uint8_t seed[32];
	uint64_t tx_counter;
	uint8_t out[64];
	uint64_t rx_dropped; /* datagrams not from the broker, undecodable, or unexpected */
};

/* Set up. broker: its primary address (IP1:3478). seed: 32 random bytes; the
 * transaction IDs derive from it. p may be NULL (defaults). */
void nb_client_init(struct nb_client *c, const struct nb_client_params *p,
		    const struct nb_addr *broker, const uint8_t seed[32], uint64_t now);

/* Register with reg (its id and fields; copied, and sent again whenever the
 * registration must be renewed). 0, or -EINVAL (reg not encodable; nothing
 * changed). */
int nb_client_register(struct nb_client *c, const struct nb_ctrl_register *reg, uint64_t now);

/* Ask for a path to `peer`. Needs REGISTERED (-EAGAIN otherwise). The plan
 * or the refusal comes as an event; without any reply the request is made
 * again (a new tx) up to connect_tries times, so CONNECT_FAILED with code 0
 * comes after connect_tries x 11750 ms. 0, or -EAGAIN / -EINVAL / -ENOBUFS. */
int nb_client_connect(struct nb_client *c, const char *peer, uint64_t now);

/* Report how an attempt ended. 0, or -EINVAL / -ENOBUFS. */
int nb_client_result(struct nb_client *c, const struct nb_ctrl_result *r, uint64_t now);

/* List every registered peer, page by page (PEERS_PAGE events, then
 * PEERS_DONE or PEERS_FAILED). Needs no registration. 0, or -EBUSY (a
 * listing is running) / -ENOBUFS. */
int nb_client_peers(struct nb_client *c, uint64_t now);

/* Tell the broker our relayed address for a session (docs/protocol.md
 * "Relay"); the outcome comes as NB_CLIENT_EV_RELAYED_DONE. 0, -ENOBUFS. */
int nb_client_relayed(struct nb_client *c, const struct nb_ctrl_relayed *r, uint64_t now);

/* The same for the broker's who-can-reach-whom matrix: MATRIX_PAGE events,
 * then PEERS_DONE or PEERS_FAILED. One listing (peers or matrix) at a time. */
int nb_client_matrix(struct nb_client *c, uint64_t now);

/* Ask the broker to probe our port mapping `external` (docs/protocol.md
 * "verify"). The probe may come from any address: it is matched by tx.
 * UDP: the probe is sent to the mapping. TCP: the broker connects to it,
 * writes its greeting, and sends the probe to us in our session (a 504
 * if it could not connect). VERIFIED (with the proof for register) or
 * VERIFY_FAILED follows. One at a time: -EBUSY; else 0, -EINVAL or
 * -ENOBUFS. Needs no registration. */
int nb_client_verify(struct nb_client *c, const struct nb_addr *external, bool tcp, uint64_t now);
/* nb_client_verify() as a portmap verify hook (peer/portmap/portmap_run.h):
 * arg is the struct nb_client; UDP. */
int nb_client_verify_hook(void *arg, const struct nb_addr *external, uint64_t now, char *why, size_t why_len);

/* A control datagram from `from`. 0 when it was the broker's and was taken,
 * -1 when dropped (nothing changed). Events may follow. */
int nb_client_input(struct nb_client *c, const uint8_t *buf, size_t len, const struct nb_addr *from,
		    uint64_t now);

/* Next datagram due at `now`: 1 and *out, or 0. Call until 0. */
int nb_client_poll(struct nb_client *c, uint64_t now, struct nb_client_tx *out);

/* Next event: 1 and *ret, or 0 when none is waiting. */
int nb_client_next_event(struct nb_client *c, struct nb_client_event *ret);

/* When to call nb_client_poll() next (<= now: at once); UINT64_MAX if never. */
uint64_t nb_client_deadline(const struct nb_client *c);

/* Requests still waiting for their reply, of one kind (NONE: any). */
size_t nb_client_pending(const struct nb_client *c, enum nb_client_txn_kind kind);

static inline enum nb_client_state nb_client_state(const struct nb_client *c)
{
	return c->state;
}

const char *nb_client_state_name(enum nb_client_state s);

#endif
