/* peer/datachan.h - the peer-to-peer data channel: AEAD transport frames
 * (common/seal.h) under the keys of the Noise handshake, and the path
 * keepalive. Pure: bytes, keys and `now` in, bytes and a next deadline out.
 * docs/protocol.md "Data channel" is the specification.
 *
 * One frame = one UDP datagram on the peer's shared socket, the 0xD3
 * transport frame of common/seal.h:
 *
 *    0        1                5                     13          13+n      13+n+16
 *   +--------+----------------+---------------------+-----------+---------+
 *   |  0xD3  | receiver index | counter, 64 bits BE | ciphertext|  tag    |
 *   +--------+----------------+---------------------+-----------+---------+
 *    ChaCha20-Poly1305, nonce = 0^32 || LE64(counter), AD = bytes 0..12;
 *    n = 0..1371 (NB_DC_MAX_PAYLOAD); n = 0 is the keepalive.
 *
 * Each direction has its own key (the two halves of the Noise split), so a
 * frame reflected back to its sender does not verify. A frame with an
 * empty payload is the path keepalive: each side sends one as soon as it is
 * connected (it tells the other side that its answer arrived), again after
 * 100, 200, 400, ... ms until a frame from the peer arrives, and then
 * whenever it has sent nothing for NB_DC_KEEPALIVE_MS. Replay protection,
 * the rekey and reject limits and the previous keypair's grace period are
 * common/seal.h's.
 *
 * struct nb_dc owns cipher contexts: nb_dc_init, then nb_dc_wipe when the
 * session ends; never copy it.
 */
#ifndef NB_PEER_DATACHAN_H
#define NB_PEER_DATACHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/seal.h"

#define NB_DC_TYPE NB_SEAL_TYPE          /* 0xD3; 0xD0-0xDF are the data range */
#define NB_DC_OVERHEAD NB_SEAL_OVERHEAD  /* 29 */
#define NB_DC_MAX_DATAGRAM NB_SEAL_MAX_DATAGRAM /* 1400 (common/seal.h says why) */
#define NB_DC_MAX_PAYLOAD NB_SEAL_MAX_PAYLOAD   /* 1371 */
/* Keepalive interval while connected. RFC 7675 (consent freshness) sends
 * every 5 s; NATs forget idle UDP mappings after 20-30 s in practice. */
#define NB_DC_KEEPALIVE_MS 5000
/* Until the first frame from the peer arrives, keepalives repeat after
 * 100, 200, 400, ... ms (up to NB_DC_KEEPALIVE_MS): the peer drops frames
 * until its own check has been answered. */
#define NB_DC_CONFIRM_MS 100
/* Nothing authenticated from the peer for this long: the path is gone
 * (RFC 7675 §5.1: consent expires after 30 s). */
#define NB_DC_EXPIRE_MS 30000

/* The channel's errors are common/seal.h's; these names stay for callers. */
enum nb_dc_err {
	NB_DC_E_SHORT = NB_SEAL_E_SHORT,
	NB_DC_E_TYPE = NB_SEAL_E_TYPE,
	NB_DC_E_INDEX = NB_SEAL_E_INDEX,
	NB_DC_E_TAG = NB_SEAL_E_TAG,
	NB_DC_E_REPLAY = NB_SEAL_E_REPLAY,
	NB_DC_E_NOSPACE = NB_SEAL_E_NOSPACE,
	NB_DC_E_TOO_BIG = NB_SEAL_E_TOO_BIG,
	NB_DC_E_EXHAUSTED = NB_SEAL_E_EXHAUSTED,
	NB_DC_E_EXPIRED = NB_SEAL_E_EXPIRED,
	NB_DC_E_INVAL = NB_SEAL_E_INVAL,
	NB_DC_E_CRYPTO = NB_SEAL_E_CRYPTO,
};

const char *nb_dc_strerror(int err);

/* HMAC-SHA256(key, data) into out (32 bytes). 0, or NB_DC_E_INVAL. (Not
 * used by the channel any more; peer/client.c makes transaction ids.) */
int nb_dc_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
		      uint8_t out[32]);

struct nb_dc {
	struct nb_seal seal;
	uint64_t tx_frames;        /* frames sent (all keypairs) */
	bool rx_any;               /* a frame has been accepted */
	uint64_t last_tx, last_rx; /* times of the last frame sent / accepted */
	uint64_t rx_ok, rx_bad, keepalives_rx;
};

/* Set up a session with the keys of the handshake (copied). last_rx starts
 * at now (the punch just proved the path); the first keepalive is due at
 * once. 0, or a negative enum nb_dc_err (*dc untouched). */
int nb_dc_init(struct nb_dc *dc, const struct nb_seal_keys *k, uint64_t now);

/* Seal a payload (n == 0: a keepalive) as the next frame. Returns the frame
 * length or a negative enum nb_dc_err (nothing consumed on failure). */
ssize_t nb_dc_seal(struct nb_dc *dc, const uint8_t *payload, size_t n, uint8_t *out, size_t cap,
		   uint64_t now);

/* Open a received frame into out (cap >= len - NB_DC_OVERHEAD; out must
 * not overlap buf). Returns the payload length (0 for a keepalive; the
 * caller delivers nothing then), or a negative enum nb_dc_err. Only a frame
 * that verifies and passes the window changes the session (window, last_rx,
 * rx_any). */
ssize_t nb_dc_open(struct nb_dc *dc, const uint8_t *buf, size_t len, uint8_t *out, size_t cap,
		   uint64_t now);

/* When the next keepalive is due: 0 (at once) before the first frame;
 * last_tx + 100, 200, 400, ... ms while nothing came from the peer; then
 * last_tx + NB_DC_KEEPALIVE_MS. */
uint64_t nb_dc_deadline(const struct nb_dc *dc);
/* The session is over: nothing authenticated from the peer for
 * NB_DC_EXPIRE_MS, or the keys can seal no more (nb_seal_dead: no rekey
 * within REJECT_AFTER_TIME). */
bool nb_dc_expired(const struct nb_dc *dc, uint64_t now);

/* Time for a new handshake (nb_seal_wants_rekey). */
bool nb_dc_wants_rekey(const struct nb_dc *dc, uint64_t now);
/* Install a new handshake's keys (nb_seal_rekey): frames under the old ones
 * are still opened for NB_SEAL_PREV_GRACE_MS. Timers and rx_any stay: the
 * path is the same. 0, or a negative enum nb_dc_err. */
int nb_dc_rekey(struct nb_dc *dc, const struct nb_seal_keys *k, uint64_t now);

/* Release the keys (NULL is fine). */
void nb_dc_wipe(struct nb_dc *dc);

#endif
