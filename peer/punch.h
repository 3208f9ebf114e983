/* peer/punch.h - the punch state machine: connectivity checks toward the
 * other peer's candidates, as the broker's plan says, until an authenticated
 * answer proves a path both ways. Pure: the shell feeds datagrams and `now`,
 * sends what nb_punch_poll() hands it, and wakes up at nb_punch_deadline().
 *
 * Checks and answers are STUN (docs/protocol.md "Punch checks"):
 *   check  = Binding request  + USERNAME (plan.username)
 *                             + MESSAGE-INTEGRITY (key: the 64 ASCII bytes of the derived punch key)
 *                             + FINGERPRINT
 *   answer = Binding success  + XOR-MAPPED-ADDRESS (the source the check came from)
 *                             + MESSAGE-INTEGRITY + FINGERPRINT
 *
 * States (one set_state(), entry actions there):
 *
 *     init --role none/relay-------------------------------------> FAILED
 *       |                                                            ^
 *       v                                                            | now >= deadline
 *    WAITING --now >= start + delay_ms--> CHECKING ------------------+
 *       |                                    |
 *       +--authenticated answer to one of our checks--> CONNECTED
 *       +--authenticated data frame from a checked source (nb_punch_confirm)--^
 *
 *   WAITING    answers checks (and sends triggered checks), sends none of
 *              its own: the side that dials waits for the side that primes.
 *   CHECKING   sends checks, one every Ta (50 ms, RFC 8445 §14.2 pacing),
 *              round-robin over its targets; each target is retransmitted
 *              with its own RTO (100 ms doubling to 400 ms) until the
 *              deadline. Which targets, by role:
 *                dial, punch  every plan candidate, from the start
 *                prime        each plan candidate prime_checks times (3):
 *                             that opens our own filter toward the peer;
 *                             after that only triggered targets
 *                listen       none of the plan's: only triggered targets
 *              Every role answers authenticated checks, to the source
 *              actually seen (peer-reflexive, RFC 8445 §7.3.1.3), and
 *              having answered, checks that source too (a "triggered
 *              check", RFC 8445 §7.3.1.4): so both sides get an answer.
 *   CONNECTED  an authenticated success response came back, from the very
 *              address its check was sent to (RFC 8445 §7.2.5.2.1: source
 *              and destination symmetric), to a check of ours: our packet
 *              reached the peer and its answer reached us, so the path
 *              works both ways. remote = that address. Still answers
 *              checks (the peer may not have its answer yet); sends no
 *              checks of its own.
 *   FAILED     the deadline passed first; reason says what was seen.
 *              Final: answers nothing.
 *
 * Birthday (roles spray and probe; docs/connectivity.md "Birthday"):
 *   spray      in CHECKING, one check from each of the budget's sockets
 *              (tx.sock 1..sockets; 0 is the shell's main socket) to the
 *              peer's first public candidate, NB_PUNCH_SPRAY_PER_MS per
 *              millisecond, again every NB_PUNCH_SPRAY_REFRESH_MS (the
 *              mappings they open must not expire). Checks that arrive on
 *              socket j are answered from socket j, and checked back from
 *              it (a triggered check with sock j).
 *   probe      in CHECKING, checks from the main socket to distinct random
 *              ports of NB_BDAY_PORT_MIN..65535 on the peer's public IP,
 *              `rate` per second, at most `probes` of them; a port is
 *              never probed twice. Then only answers and triggered checks.
 *   The first authenticated answer to any of these checks wins, as above:
 *   CONNECTED with remote and remote_sock; every other socket may close.
 *   Their transaction IDs encode the socket or the port, so an answer is
 *   matched without a table: bytes 0..7 are the seed's, byte 8 marks the
 *   kind (0x40 spray, 0x80 probe, as XOR with the seed), 9..10 the socket or
 *   the port.
 *
 * A datagram that fails authentication never changes state and is never
 * answered: not STUN, not Binding, no FINGERPRINT or a wrong one, no
 * MESSAGE-INTEGRITY or a wrong one, a request with another USERNAME, a
 * request carrying a transaction ID we sent (our own check reflected back),
 * a request that repeats a transaction ID already seen from another source
 * (a replay), a response to a transaction we never sent or from an address
 * we did not send it to.
 */
#ifndef NB_PEER_PUNCH_H
#define NB_PEER_PUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "proto/ctrl.h"
#include "proto/stun.h"

/* The checks' short-term password: 64 lower-case hex characters. */
#define NB_PUNCH_KEY_LEN 64
#define NB_PUNCH_KEY_LABEL "natbroker punch v2 "
#define NB_PUNCH_TA_MS 50       /* pacing between two checks; libjuice uses 50 ms */
#define NB_PUNCH_RTO_MS 100     /* first retransmission of one target's check */
#define NB_PUNCH_RTO_MAX_MS 400 /* cap of its doubling */
#define NB_PUNCH_PRIME_CHECKS 3 /* checks per candidate a `prime` side sends */
/* Plan candidates (NB_CTRL_MAX_ADDRS) plus as many learned addresses. */
#define NB_PUNCH_MAX_TARGETS (2 * NB_CTRL_MAX_ADDRS)
#define NB_PUNCH_MAX_ANSWERS 8  /* answers waiting to be sent */
#define NB_PUNCH_MAX_SEEN 32    /* transaction IDs of checks received, for replays */
#define NB_PUNCH_SPRAY_PER_MS 8 /* spray: checks per millisecond (256 sockets: 32 ms) */
#define NB_PUNCH_SPRAY_REFRESH_MS 5000 /* spray: every socket checks again this often */

enum nb_punch_state {
	NB_PUNCH_WAITING = 0,
	NB_PUNCH_CHECKING,
	NB_PUNCH_CONNECTED,
	NB_PUNCH_FAILED,
};

/* Why a datagram was dropped (negative returns of nb_punch_input()). */
enum nb_punch_drop {
	NB_PUNCH_DROP_NOT_STUN = -1,     /* not a valid STUN message */
	NB_PUNCH_DROP_NOT_CHECK = -2,    /* not a Binding request or success response */
	NB_PUNCH_DROP_FINGERPRINT = -3,  /* FINGERPRINT absent (a wrong one is NOT_STUN) */
	NB_PUNCH_DROP_USERNAME = -4,     /* request: USERNAME absent or not the session's */
	NB_PUNCH_DROP_INTEGRITY = -5,    /* MESSAGE-INTEGRITY absent or wrong */
	NB_PUNCH_DROP_REFLECTED = -6,    /* request with a transaction ID of ours */
	NB_PUNCH_DROP_REPLAYED = -7,     /* request ID already seen from another source */
	NB_PUNCH_DROP_UNKNOWN_TID = -8,  /* response to nothing we sent */
	NB_PUNCH_DROP_ASYMMETRIC = -9,   /* response from elsewhere than its check went */
	NB_PUNCH_DROP_STATE = -10,       /* valid, but the attempt is over (FAILED) */
};
#define NB_PUNCH_DROP_COUNT 10

struct nb_punch_params {
	uint32_t ta_ms;       /* default NB_PUNCH_TA_MS */
	uint32_t rto_ms;      /* default NB_PUNCH_RTO_MS */
	uint32_t rto_max_ms;  /* default NB_PUNCH_RTO_MAX_MS */
	uint32_t prime_checks; /* default NB_PUNCH_PRIME_CHECKS */
};

struct nb_punch_target {
	struct nb_addr addr;
	uint8_t tid[NB_STUN_TID_LEN]; /* one transaction per target; retransmissions reuse it */
	bool from_plan;  /* a plan candidate (else learned from a check: peer-reflexive) */
	bool heard;      /* an authenticated check came from this address */
	bool triggered;  /* check it at the next tick, before the round robin */
	uint32_t sends;
	uint32_t rto;
	uint64_t next_send;
	uint32_t sock;   /* which socket checks it: 0 the main one, 1.. a spray socket */
};

/* One datagram to send. bytes points into the machine; valid until the next
 * call into it. */
struct nb_punch_tx {
	struct nb_addr to;
	const uint8_t *bytes;
	size_t len;
	bool is_check; /* else an answer */
	bool first;    /* a check: the first one to this plan candidate */
	uint32_t sock; /* send from: 0 the main socket, 1..sockets a spray socket */
};

struct nb_punch {
	struct nb_punch_params p;
	enum nb_role role;
	enum nb_punch_state state;
	char username[NB_CTRL_USERNAME_MAX + 1];
	size_t username_len;
	uint8_t key[NB_PUNCH_KEY_LEN];
	uint64_t start, go, deadline, end;
	uint32_t deadline_ms;

	struct nb_punch_target t[NB_PUNCH_MAX_TARGETS];
	size_t n_targets;
	size_t n_plan; /* the first n_plan targets are the plan's candidates */
	size_t rr;     /* round-robin cursor */
	uint64_t next_tick;
	uint8_t seed[NB_STUN_TID_LEN];

	struct {
		struct nb_addr to;
		uint8_t tid[NB_STUN_TID_LEN];
		uint32_t sock;
	} ans[NB_PUNCH_MAX_ANSWERS];
	size_t n_ans;

	struct {
		struct nb_addr from;
		uint8_t tid[NB_STUN_TID_LEN];
	} seen[NB_PUNCH_MAX_SEEN];
	size_t n_seen, seen_next;

	/* Birthday (roles spray and probe). */
	struct {
		uint32_t sockets, probes, rate; /* the budget */
		struct nb_addr to;    /* spray: the checks' target; probe: the IP probed (port 0) */
		uint32_t sprayed;     /* spray: checks sent in this round */
		uint64_t round_at;    /* spray: when this round began */
		uint32_t rounds;      /* spray: rounds begun */
		uint32_t sent;        /* probe: probes sent */
		uint64_t rng;         /* probe: the port picker's state */
		uint16_t port;        /* the winning port: the spraying side's, as the prober saw it */
		uint8_t probed[65536 / 8]; /* probe: ports probed */
	} bd;

	struct nb_addr remote;  /* CONNECTED: where the answer came from */
	uint32_t remote_sock;   /* CONNECTED: the socket it came in on (0: the main one) */
	struct nb_addr mapped;  /* our address as the peer saw it (its XOR-MAPPED-ADDRESS) */
	bool got_check;         /* an authenticated check arrived */
	struct nb_addr check_from;
	char reason[NB_CTRL_REASON_MAX + 1]; /* FAILED: why; CONNECTED: how */

	uint8_t out[256];
	uint64_t checks_sent, answers_sent, answers_dropped;
	uint64_t drops[NB_PUNCH_DROP_COUNT]; /* by -(enum nb_punch_drop) - 1 */
};

/* Start an attempt from a plan received at `now`. plan->deadline_ms counts
 * from now (the shell may lower it before calling). seed: 12 random bytes;
 * the transaction IDs derive from it. p may be NULL (defaults). Role none or
 * relay fails at once with the plan's reason. key: the checks' short-term
 * password, NB_PUNCH_KEY_LEN lower-case hex characters; natpeer derives it
 * from the two peers' static keys (nb_punch_derive_key()), so the broker
 * never knows it. Returns 0, or -EINVAL (the key is not 64 hex characters,
 * or the username is empty) with *pu untouched. */
int nb_punch_init(struct nb_punch *pu, const struct nb_punch_params *p,
		  const struct nb_ctrl_plan *plan, const char *key,
		  const uint8_t seed[NB_STUN_TID_LEN], uint64_t now);

/* The punch key of a session: hex(HMAC-SHA256(key = dh, msg =
 * NB_PUNCH_KEY_LABEL || session)), where dh is X25519(our static private
 * key, the peer's static public key), the same on both sides. Only the two
 * peers can compute it: the broker hands out public keys and the session id
 * only. 0, or -EINVAL (crypto failure); out is NUL-terminated. */
int nb_punch_derive_key(const uint8_t dh[32], const char *session, char out[NB_PUNCH_KEY_LEN + 1]);

/* Next datagram due at `now`: 1 and *out filled, or 0. Call until 0. */
int nb_punch_poll(struct nb_punch *pu, uint64_t now, struct nb_punch_tx *out);

/* A STUN datagram that arrived from `from`. 0 when it was authenticated and
 * taken (it may have queued an answer and changed state: call
 * nb_punch_poll()), else a negative enum nb_punch_drop and nothing changed
 * but a drop counter. */
int nb_punch_input(struct nb_punch *pu, const uint8_t *buf, size_t len, const struct nb_addr *from,
		   uint64_t now);

/* nb_punch_input() for a datagram that arrived on socket `sock` (0 the main
 * one, 1..bd.sockets a spray socket). A spray socket of no spraying
 * machine: NB_PUNCH_DROP_NOT_CHECK. */
int nb_punch_input_on(struct nb_punch *pu, uint32_t sock, const uint8_t *buf, size_t len,
		      const struct nb_addr *from, uint64_t now);

/* Has an authenticated check come from `from` (a learned target)? */
bool nb_punch_heard(const struct nb_punch *pu, const struct nb_addr *from);
bool nb_punch_heard_on(const struct nb_punch *pu, uint32_t sock, const struct nb_addr *from);

/* The shell verified an authenticated data frame (peer/datachan.h) from
 * `from`. The peer sends frames only once it is connected, i.e. once our
 * answer to its check reached it; we sent that answer to the check's
 * source. So if `from` is such a source (nb_punch_heard()), the path works
 * both ways: WAITING/CHECKING -> CONNECTED with remote = from. 0 when that
 * happened, -1 otherwise (nothing changed). This saves the side that
 * connects second the wait for its own answer, and the peer's first frames
 * from being dropped. */
int nb_punch_confirm(struct nb_punch *pu, const struct nb_addr *from, uint64_t now);

/* Has a check of ours gone to `to` from socket `sock`? */
bool nb_punch_sent_to(const struct nb_punch *pu, uint32_t sock, const struct nb_addr *to);

/* The shell verified an authenticated reply (the peer's Noise handshake
 * response, docs/protocol.md "Peer-to-peer handshake") from `from`, to a
 * message it sent there right behind a check of ours: our packet reached
 * the peer and its answer reached us, as a check's answer would prove.
 * If a check of ours went to `from` from socket `sock` (nb_punch_sent_to()):
 * WAITING/CHECKING -> CONNECTED with remote = from, 0; else -1, nothing
 * changed. This saves the dialer a round trip: its handshake goes out with
 * its first check, and the answer and the handshake response come back
 * together, in either order. */
int nb_punch_confirm_sent(struct nb_punch *pu, uint32_t sock, const struct nb_addr *from,
			  uint64_t now);
int nb_punch_confirm_on(struct nb_punch *pu, uint32_t sock, const struct nb_addr *from, uint64_t now);

/* When to call nb_punch_poll() next (<= now: at once); UINT64_MAX when
 * nothing is pending. */
uint64_t nb_punch_deadline(const struct nb_punch *pu);

static inline enum nb_punch_state nb_punch_state(const struct nb_punch *pu)
{
	return pu->state;
}

const char *nb_punch_state_name(enum nb_punch_state s);
const char *nb_punch_drop_name(int drop);

#endif
