/* peer/datachan.h - the authenticated peer-to-peer data channel: frames with
 * a sequence number and a truncated HMAC-SHA256 tag, a replay window, and the
 * path keepalive. Pure: bytes, keys and `now` in, bytes and a next deadline
 * out. docs/protocol.md "Data channel" is the specification.
 *
 * One frame = one UDP datagram on the peer's shared socket:
 *
 *    0        1                                9            9+n          9+n+16
 *   +--------+--------------------------------+------------+-------------+
 *   |  0xD0  |  sequence number, 64 bits, BE  |  payload   |  tag, 16 B  |
 *   +--------+--------------------------------+------------+-------------+
 *    type      first frame 0, +1 per frame      n bytes,     HMAC-SHA256(K_sender,
 *                                               0..1175      bytes 0 .. 9+n-1),
 *                                                            first 16 bytes
 *
 *   K_sender = HMAC-SHA256(key = the 64 ASCII hex bytes of plan.key,
 *                          msg = "natbroker data v1 " || sender's peer id)
 *
 * Each direction has its own key, derived from the session key and the id of
 * the side that sends, so a frame reflected back to its sender does not
 * verify. A frame with an empty payload is the path keepalive: each side
 * sends one as soon as it is connected (it tells the other side that its
 * answer arrived), again after 100, 200, 400, ... ms until a frame from the
 * peer arrives, and then whenever it has sent nothing for
 * NB_DC_KEEPALIVE_MS.
 *
 * The receiver checks the tag (constant time), then the sequence number
 * against a sliding window of NB_DC_WINDOW (RFC 4303 §3.4.3 style): older
 * than the window or already seen is a replay, dropped.
 */
#ifndef NB_PEER_DATACHAN_H
#define NB_PEER_DATACHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NB_DC_TYPE 0xD0           /* first byte; 0xD1-0xDF stay reserved */
#define NB_DC_HDR_LEN 9           /* type + sequence number */
#define NB_DC_TAG_LEN 16          /* truncated HMAC-SHA256 (RFC 2104 §5: >= half the output) */
#define NB_DC_OVERHEAD (NB_DC_HDR_LEN + NB_DC_TAG_LEN)
#define NB_DC_MAX_DATAGRAM 1200   /* every datagram of the project */
#define NB_DC_MAX_PAYLOAD (NB_DC_MAX_DATAGRAM - NB_DC_OVERHEAD) /* 1175 */
#define NB_DC_KEY_LEN 32          /* a derived direction key */
#define NB_DC_SESSION_KEY_LEN 64  /* plan.key: 64 lower-case hex characters */
#define NB_DC_WINDOW 64           /* replay window, in sequence numbers */
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
#define NB_DC_LABEL "natbroker data v1 "

enum nb_dc_err {
	NB_DC_E_SHORT = -3001,   /* shorter than NB_DC_OVERHEAD */
	NB_DC_E_TYPE = -3002,    /* first byte is not NB_DC_TYPE */
	NB_DC_E_TOO_BIG = -3003, /* longer than NB_DC_MAX_DATAGRAM, or payload too long */
	NB_DC_E_TAG = -3004,     /* the tag does not verify */
	NB_DC_E_REPLAY = -3005,  /* sequence number seen already, or older than the window */
	NB_DC_E_NOSPACE = -3006, /* encoder: output buffer too small */
	NB_DC_E_INVAL = -3007,   /* bad argument (key not 64 hex, id empty, crypto failure) */
	NB_DC_E_SEQ = -3008,     /* sequence numbers exhausted (2^64 frames) */
};

const char *nb_dc_strerror(int err);

/* HMAC-SHA256(key, data) into out (32 bytes). 0, or NB_DC_E_INVAL. */
int nb_dc_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
		      uint8_t out[32]);

/* K_sender for one direction. session_key: the 64 hex characters of
 * plan.key (exactly NB_DC_SESSION_KEY_LEN bytes, lower-case hex); sender_id:
 * NUL-terminated, 1..32 bytes. 0, or NB_DC_E_INVAL (*ret untouched). */
int nb_dc_derive_key(const char *session_key, const char *sender_id, uint8_t ret[NB_DC_KEY_LEN]);

/* ---- Stateless frames --------------------------------------------------- */

/* Write one frame into out. Returns its length (NB_DC_OVERHEAD + n), or
 * NB_DC_E_TOO_BIG (n > NB_DC_MAX_PAYLOAD) / NB_DC_E_NOSPACE / NB_DC_E_INVAL. */
ssize_t nb_dc_encode(const uint8_t key[NB_DC_KEY_LEN], uint64_t seq, const uint8_t *payload,
		     size_t n, uint8_t *out, size_t cap);

/* Check one frame of exactly len bytes. Returns the payload length (>= 0)
 * and sets *ret_seq and *ret_payload (a view into buf), or a negative
 * enum nb_dc_err with the outputs untouched. No replay check: that needs the
 * window (struct nb_dc). Never writes to buf. */
ssize_t nb_dc_decode(const uint8_t key[NB_DC_KEY_LEN], const uint8_t *buf, size_t len,
		     uint64_t *ret_seq, const uint8_t **ret_payload);

/* ---- One session: keys, counters, window, timers ------------------------ */

struct nb_dc {
	uint8_t k_send[NB_DC_KEY_LEN]; /* K_self */
	uint8_t k_recv[NB_DC_KEY_LEN]; /* K_peer */
	uint64_t next_seq;             /* next sequence number to send */
	bool seq_exhausted;
	bool rx_any;                   /* a frame has been accepted */
	uint64_t rx_top;               /* highest sequence number accepted */
	uint64_t rx_bitmap;            /* bit i: rx_top - i accepted */
	uint64_t last_tx, last_rx;     /* times of the last frame sent / accepted */
	uint64_t rx_ok, rx_bad_tag, rx_replay, keepalives_rx;
};

/* Set up a session. self_id / peer_id: the ids of this side and of the
 * other side. 0, or NB_DC_E_INVAL (*dc untouched). last_rx starts at now
 * (the punch just proved the path); the first keepalive is due at once. */
int nb_dc_init(struct nb_dc *dc, const char *session_key, const char *self_id,
	       const char *peer_id, uint64_t now);

/* Seal a payload (n == 0: a keepalive) as the next frame. Returns the frame
 * length or a negative enum nb_dc_err (nothing consumed on failure). */
ssize_t nb_dc_seal(struct nb_dc *dc, const uint8_t *payload, size_t n, uint8_t *out, size_t cap,
		   uint64_t now);

/* Open a received frame: tag, then the replay window. Returns the payload
 * length (0 for a keepalive; the caller delivers nothing then) and sets
 * *ret_payload, or a negative enum nb_dc_err. Only a frame that verifies
 * changes the session (window, last_rx). */
ssize_t nb_dc_open(struct nb_dc *dc, const uint8_t *buf, size_t len, const uint8_t **ret_payload,
		   uint64_t now);

/* When the next keepalive is due: 0 (at once) before the first frame;
 * last_tx + 100, 200, 400, ... ms while nothing came from the peer; then
 * last_tx + NB_DC_KEEPALIVE_MS. */
uint64_t nb_dc_deadline(const struct nb_dc *dc);
/* Nothing authenticated from the peer for NB_DC_EXPIRE_MS. */
bool nb_dc_expired(const struct nb_dc *dc, uint64_t now);

#endif
