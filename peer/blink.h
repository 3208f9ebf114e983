/* peer/blink.h - the peer's sealed channel to the broker: the initiator side
 * of Noise IK with the broker's pinned key, and the AEAD frames that carry
 * the control messages (docs/protocol.md "Sealed control channel"). Pure:
 * bytes and `now` in, frames and a deadline out.
 *
 *            start()                      response (0xD2)
 *   DOWN ---------------> HANDSHAKE ----------------------> UP
 *                           |  ^  init (0xD1) again at         |
 *                           |  |  250, 750, 1750 ... ms        | rekey due (120 s), the
 *                           +--+  (the same bytes)             | broker's "unknown
 *                                                              | session" hint, or
 *          messages handed to send() while not UP wait in      | restart(): a new
 *          a queue (NB_BLINK_QUEUE) and go out sealed once UP  | handshake; the old
 *                                                              | keys keep working
 *                                                              v until it completes
 *
 * Only frames from the broker's address are read. A hint (0xD4) is an
 * unauthenticated suggestion: it can only make us shake hands again, at
 * most once per NB_BLINK_HINT_MIN_MS.
 *
 * Without a pinned key for the broker, start() first asks it for its key
 * (ASKING; 0xD5 -> 0xD6 || key) and trusts the first answer from the
 * broker's address, as ssh trusts a host key on first use; the shell pins
 * it (nb_blink_learned()) so that every later run demands the same key.
 */
#ifndef NB_PEER_BLINK_H
#define NB_PEER_BLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/addr.h"
#include "common/keys.h"
#include "common/noise.h"
#include "common/seal.h"

#define NB_BLINK_PROLOGUE "natbroker v2 broker" /* as broker/plink.h */
#define NB_BLINK_QUEUE 8           /* messages waiting for the handshake */
#define NB_BLINK_RTO_MS 250        /* first retransmission of the initiation */
#define NB_BLINK_RTO_MAX_MS 4000
#define NB_BLINK_HINT_MIN_MS 1000  /* hints are heeded at most this often */
#define NB_BLINK_HINT_TYPE 0xD4
#define NB_BLINK_HINT_LEN 5
/* The broker's key, when none is pinned (first use): a request of
 * NB_BLINK_KEYQ_LEN bytes (0xD5 and zeros: no shorter one is answered, so
 * the 33-byte answer 0xD6 || key is never the larger), sent at 0, 250,
 * 750, ... ms, NB_BLINK_KEYQ_TRIES times. */
#define NB_BLINK_KEYQ_TYPE 0xD5
#define NB_BLINK_KEYR_TYPE 0xD6
#define NB_BLINK_KEYQ_LEN 64
#define NB_BLINK_KEYQ_TRIES 6

enum nb_blink_state {
	NB_BLINK_DOWN = 0, /* not started */
	NB_BLINK_ASKING,   /* asking the broker for its key (first use) */
	NB_BLINK_HANDSHAKE,
	NB_BLINK_UP,
	NB_BLINK_NO_KEY,   /* the broker never told its key: final */
};

struct nb_blink_stats {
	uint64_t handshakes, inits_sent, hints, sealed, opened, open_fail, queue_dropped, key_requests;
};

struct nb_blink {
	enum nb_blink_state state;
	bool have_seal;     /* keys from a completed handshake (UP, or rekeying) */
	bool have_key;      /* broker_key is known (pinned, given, or learned) */
	bool learned;       /* the broker's key came from its answer: the shell pins it */
	unsigned keyq_tries;
	uint8_t priv[NB_KEY_LEN], pub[NB_KEY_LEN], broker_key[NB_KEY_LEN];
	struct nb_addr broker;
	struct nb_noise_hs hs;
	uint32_t index;     /* our index in the handshake under way */
	uint8_t init[NB_NOISE_INIT_MIN];
	size_t init_len;
	uint32_t rto;
	uint64_t next_send, last_hint;
	struct nb_seal seal;
	struct {
		size_t len;
		uint8_t b[NB_SEAL_MAX_PAYLOAD];
	} q[NB_BLINK_QUEUE];
	size_t q_head, q_n;
	uint64_t index_ctr;
	uint8_t index_seed[16];
	struct nb_blink_stats st;
	uint8_t out[NB_SEAL_MAX_DATAGRAM];
};

/* One frame for the broker; bytes valid until the next call. */
struct nb_blink_tx {
	const uint8_t *bytes;
	size_t len;
};

/* Set up with our key pair, the broker's pinned key (NULL: not known; start()
 * asks for it) and address. seed: 16 random bytes (our handshake indices
 * derive from it). Starts DOWN. */
void nb_blink_init(struct nb_blink *bl, const uint8_t priv[NB_KEY_LEN],
		   const uint8_t pub[NB_KEY_LEN], const uint8_t *broker_key,
		   const struct nb_addr *broker, const uint8_t seed[16]);

/* Start a handshake now (DOWN: the first, after asking for the broker's key
 * if it is not known; UP: a rekey, the old keys stay in use until it
 * completes). 0, or a negative noise error. */
int nb_blink_start(struct nb_blink *bl, uint64_t now);

/* The broker's key learned from its answer, once: 1 and *ret (pin it), or 0. */
int nb_blink_learned(struct nb_blink *bl, uint8_t ret[NB_KEY_LEN]);

static inline enum nb_blink_state nb_blink_state(const struct nb_blink *bl)
{
	return bl->state;
}

/* A control message (plaintext JSON) for the broker: sealed at once when
 * keys exist, else queued (the oldest is dropped when the queue is full).
 * The frame comes out of nb_blink_poll(). 0, or NB_SEAL_E_TOO_BIG. */
int nb_blink_send(struct nb_blink *bl, const uint8_t *msg, size_t len, uint64_t now);

/* A datagram from `from` whose first byte is 0xD2, 0xD3, 0xD4 or 0xD6. Returns
 * the plaintext length (> 0: a control message for the client, in out), 0
 * when it was taken with nothing to deliver (a handshake response, a
 * hint), or a negative error when it is not ours / does not verify
 * (nothing changed). */
ssize_t nb_blink_input(struct nb_blink *bl, const uint8_t *buf, size_t len,
		       const struct nb_addr *from, uint64_t now, uint8_t *out, size_t cap);

/* The next frame due at `now`: 1 and *tx, or 0. Call until 0. */
int nb_blink_poll(struct nb_blink *bl, uint64_t now, struct nb_blink_tx *tx);

/* When to call nb_blink_poll() next, or UINT64_MAX. */
uint64_t nb_blink_deadline(const struct nb_blink *bl);

/* Does a 0xD3 frame carry our index (ours to open)? */
bool nb_blink_owns(const struct nb_blink *bl, const uint8_t *buf, size_t len);

void nb_blink_wipe(struct nb_blink *bl);

#endif
