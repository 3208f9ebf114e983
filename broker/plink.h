/* broker/plink.h - the broker's sealed control sessions: the responder side
 * of Noise IK for every peer, and the AEAD frames that carry the control
 * messages (docs/protocol.md "Sealed control channel"). Pure: no sockets, no
 * clock (every call takes `now`); the only randomness is Noise's ephemeral
 * key, drawn by common/noise.c.
 *
 *   peer                                     broker (this module)
 *   ----                                     --------------------
 *   0xD1 init  (e, es, s, ss)          ->    nb_plink_handshake(): a new
 *                                            session, not yet confirmed;
 *                                       <-   0xD2 resp (e, ee, se)
 *   0xD3 sealed control message        ->    nb_plink_open(): the first frame
 *                                            that opens confirms the session:
 *                                            it now speaks for the peer's key
 *                                            at its address (replacing an
 *                                            older one there: a rekey)
 *                                       <-   0xD3 sealed reply: nb_plink_seal()
 *                                            to the peer's key
 *
 * A session counts for its key only once confirmed: a replayed or forged
 * initiation makes an unconfirmed session that nobody can use, and that
 * never takes the place of the real one. A retransmitted initiation (the
 * same ephemeral key) gets the same response again, not a second session.
 *
 * Limits: at most max_sessions sessions. When full, the oldest unconfirmed
 * session makes room; when every one is confirmed, a new handshake is
 * refused (NB_PLINK_E_FULL, counted). A session idle for idle_ms, or whose
 * keys are past their lifetime (common/seal.h), is freed by
 * nb_plink_expire().
 */
#ifndef NB_BROKER_PLINK_H
#define NB_BROKER_PLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker/table.h"
#include "common/addr.h"
#include "common/keys.h"

/* Mixed into every handshake with the broker, so that a handshake made for
 * a peer-to-peer session can never be taken for one with a broker. */
#define NB_PLINK_PROLOGUE "natbroker v2 broker"
#define NB_PLINK_DEFAULT_MAX 20000
#define NB_PLINK_MAX_MAX 10000000
/* Longer than a registration lives without keepalives (3 x 3600 s at most
 * would be too long to hold a session; the peer rekeys every 120 s). */
#define NB_PLINK_DEFAULT_IDLE_MS 200000u
/* The hint that a frame's session is unknown here: type + receiver index. */
#define NB_PLINK_UNKNOWN_TYPE 0xD4
#define NB_PLINK_UNKNOWN_LEN 5

enum nb_plink_err {
	NB_PLINK_E_FULL = -4301,    /* every session is confirmed and live */
	NB_PLINK_E_UNKNOWN = -4302, /* no session has this receiver index */
	NB_PLINK_E_NOKEY = -4303,   /* seal: no confirmed session for this key */
	NB_PLINK_E_INVAL = -4304,
	NB_PLINK_E_NOMEM = -4305,
};

struct nb_plink_config {
	size_t max_sessions;     /* 1..NB_PLINK_MAX_MAX */
	uint32_t idle_ms;        /* >= 1000 */
	uint8_t priv[NB_KEY_LEN]; /* the broker's static private key */
	uint8_t hash_key[NB_SIPHASH_KEY_LEN];
};

struct nb_plink_stats {
	uint64_t handshakes;       /* responses sent for new initiations */
	uint64_t handshake_repeats; /* retransmitted initiations answered again */
	uint64_t handshake_fail;   /* initiations that did not verify */
	uint64_t full;             /* refused: every session confirmed */
	uint64_t evicted;          /* unconfirmed sessions pushed out by new ones */
	uint64_t confirmed;        /* sessions confirmed */
	uint64_t opened, open_fail, unknown_index;
	uint64_t sealed, seal_nokey;
	uint64_t expired;
	size_t sessions, live_keys; /* gauges */
};

struct nb_plink;

/* 0, NB_PLINK_E_INVAL or NB_PLINK_E_NOMEM; *ret untouched on failure. */
int nb_plink_new(const struct nb_plink_config *cfg, struct nb_plink **ret);
void nb_plink_free(struct nb_plink *pl); /* accepts NULL; wipes every key */

/* An initiation (first byte 0xD1) of len bytes from `from`. Writes the
 * response to send back to `from` into out and returns its length, or a
 * negative error (send nothing). */
ssize_t nb_plink_handshake(struct nb_plink *pl, const uint8_t *frame, size_t len,
			   const struct nb_addr *from, uint64_t now, uint8_t *out, size_t cap);

/* A sealed frame (first byte 0xD3). Returns the plaintext length, written
 * to out, and points *ret_key at the sender's static key (valid until the
 * next call); or a negative error: NB_PLINK_E_UNKNOWN (the shell may send
 * the unknown-session hint, nb_plink_unknown_hint()), or the seal's error. */
ssize_t nb_plink_open(struct nb_plink *pl, const uint8_t *frame, size_t len,
		      const struct nb_addr *from, uint64_t now, uint8_t *out, size_t cap,
		      const uint8_t **ret_key);

/* Seal n bytes to the peer whose static key is `key`, at `to`: in the
 * confirmed session of that key whose peer sends from `to` (one key may
 * run several processes, each with its own socket and session), else the
 * key's most recently heard one. Returns the frame length, or
 * NB_PLINK_E_NOKEY / a seal error. */
ssize_t nb_plink_seal(struct nb_plink *pl, const uint8_t key[NB_KEY_LEN], const struct nb_addr *to,
		      const uint8_t *pt, size_t n, uint8_t *out, size_t cap, uint64_t now);

/* The hint for a frame whose index is unknown: 0xD4 || the frame's
 * receiver index (5 bytes, shorter than any sealed frame: no
 * amplification). Returns NB_PLINK_UNKNOWN_LEN, or a negative error. */
ssize_t nb_plink_unknown_hint(const uint8_t *frame, size_t len, uint8_t out[NB_PLINK_UNKNOWN_LEN]);

/* Free what is idle or dead at `now`, at most `budget` sessions. Returns how
 * many were freed. */
size_t nb_plink_expire(struct nb_plink *pl, uint64_t now, size_t budget);
/* When nb_plink_expire() next has something to do, or UINT64_MAX. */
uint64_t nb_plink_next_deadline(const struct nb_plink *pl);

void nb_plink_get_stats(const struct nb_plink *pl, struct nb_plink_stats *ret);

/* The broker's public key (from its private key). */
void nb_plink_public_key(const struct nb_plink *pl, uint8_t ret[NB_KEY_LEN]);

#endif
