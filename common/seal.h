/* common/seal.h - the AEAD transport frames: ChaCha20-Poly1305 under the keys
 * of a Noise split, a receiver index, a 64-bit counter, a replay window and
 * the rekey / reject limits. Pure: keys, bytes and `now` (ms) in, bytes out;
 * no clock, no I/O. WireGuard's transport data message (its messages.h
 * limits, receive.c checks and RFC 6479 counter) is the model.
 *
 * One frame = one UDP datagram:
 *
 *    0        1                  5                              13           13+n       13+n+16
 *   +--------+------------------+------------------------------+------------+-----------+
 *   |  0xD3  | receiver index   |  counter, 64 bits, BE        | ciphertext |  tag, 16  |
 *   +--------+------------------+------------------------------+------------+-----------+
 *    type     32 bits, BE: the   0 for the first frame under    n bytes,     Poly1305
 *             index the receiver a keypair, then +1 per frame   0..1371
 *             chose for this
 *             keypair
 *   \_______________ AD: the 13 header bytes ______________________/
 *
 *   AEAD  = ChaCha20-Poly1305 (RFC 8439), key = the sender's 32-byte key from
 *           the Noise split (our `send` is the peer's `recv`)
 *   nonce = 00 00 00 00 || counter as 64-bit LITTLE-endian (the Noise
 *           ChaChaPoly nonce for n = counter; Noise spec §5.1 / §12.3)
 *   A frame is at most NB_SEAL_MAX_DATAGRAM = 1400 bytes, so n <= 1400 - 13 -
 *   16 = 1371. 1400 fits a 1500-byte path over IPv6 even through a TURN Send
 *   indication: 1400 + 48 (STUN header 20, XOR-PEER-ADDRESS 24, DATA 4) + 8
 *   (UDP) + 40 (IPv6) = 1496. Control messages stay within their own 1200
 *   bytes (NB_CTRL_MAX_DATAGRAM); only the data channel uses the rest.
 *
 * The receiver (nb_seal_open) checks, in this order: length and type; the
 * receiver index names the current keypair or the previous one (kept,
 * receive-only, for NB_SEAL_PREV_GRACE_MS after a rekey); the keypair is not
 * older than NB_SEAL_REJECT_AFTER_TIME_MS; the counter is below
 * NB_SEAL_REJECT_AFTER_MESSAGES and not obviously replayed (a read-only look
 * at the window); the tag (AEAD decryption); and only THEN records the
 * counter in the window (RFC 6479 §2: "the window is updated only after the
 * packet passes the integrity check"). A frame that fails changes nothing
 * but an error counter in stats.
 *
 * A struct nb_seal owns OpenSSL cipher contexts (one per key, set up once so
 * the data path only sets the nonce): set it up with nb_seal_init, release
 * it with nb_seal_wipe, never copy it.
 */
#ifndef NB_COMMON_SEAL_H
#define NB_COMMON_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/types.h>

#define NB_SEAL_TYPE 0xD3
#define NB_SEAL_HDR_LEN 13  /* type + receiver index + counter: the AD */
#define NB_SEAL_TAG_LEN 16  /* Poly1305 */
#define NB_SEAL_OVERHEAD (NB_SEAL_HDR_LEN + NB_SEAL_TAG_LEN) /* 29 */
#define NB_SEAL_KEY_LEN 32
#define NB_SEAL_MAX_DATAGRAM 1400 /* a sealed frame, header and tag included */
#define NB_SEAL_MAX_PAYLOAD (NB_SEAL_MAX_DATAGRAM - NB_SEAL_OVERHEAD) /* 1371 */

/* ---- Limits (WireGuard drivers/net/wireguard/messages.h) ---------------- */

/* Ask for a new handshake after this many frames sent under one keypair
 * (WireGuard REKEY_AFTER_MESSAGES = 2^60). */
#define NB_SEAL_REKEY_AFTER_MESSAGES (UINT64_C(1) << 60)
/* Never send, and never accept, a counter >= this (WireGuard
 * REJECT_AFTER_MESSAGES = 2^64 - 2^13 - 1): far below the point where the
 * 64-bit counter or the window arithmetic (counter + 1 + window) wraps. */
#define NB_SEAL_REJECT_AFTER_MESSAGES (UINT64_MAX - (UINT64_C(1) << 13))
/* Ask for a new handshake once the current keypair is this old (WireGuard
 * REKEY_AFTER_TIME = 120 s). */
#define NB_SEAL_REKEY_AFTER_TIME_MS 120000u
/* A keypair this old neither seals nor opens (WireGuard REJECT_AFTER_TIME =
 * 180 s): a late rekey costs the session, never the keys' age bound. */
#define NB_SEAL_REJECT_AFTER_TIME_MS 180000u
/* After a rekey, frames under the previous keypair are still accepted for
 * this long (and never past its REJECT_AFTER_TIME): frames in flight and
 * frames the peer sends before it has the new keys (until our handshake
 * answer reaches it, with retransmissions: WireGuard REKEY_TIMEOUT is 5 s).
 * The previous keypair never seals. */
#define NB_SEAL_PREV_GRACE_MS 30000u

/* Replay window, RFC 6479 style as in WireGuard's receive counter: a ring
 * of NB_SEAL_WINDOW_BITS bits in 64-bit words; the word at the leading edge
 * is cleared as the edge moves, so NB_SEAL_WINDOW counters behind the
 * highest one accepted are always tracked (older ones are refused). */
#define NB_SEAL_WINDOW_BITS 2048
#define NB_SEAL_WINDOW_WORDS (NB_SEAL_WINDOW_BITS / 64)
#define NB_SEAL_WINDOW (NB_SEAL_WINDOW_BITS - 64) /* 1984 */

enum nb_seal_err {
	NB_SEAL_E_SHORT = -4201,     /* shorter than NB_SEAL_OVERHEAD */
	NB_SEAL_E_TYPE = -4202,      /* first byte is not NB_SEAL_TYPE */
	NB_SEAL_E_INDEX = -4203,     /* receiver index names no keypair of ours */
	NB_SEAL_E_TAG = -4204,       /* the AEAD tag does not verify */
	NB_SEAL_E_REPLAY = -4205,    /* counter seen already, or older than the window */
	NB_SEAL_E_NOSPACE = -4206,   /* output buffer too small */
	NB_SEAL_E_TOO_BIG = -4207,   /* datagram > 1400 bytes or payload > 1371 */
	NB_SEAL_E_EXHAUSTED = -4208, /* counter at NB_SEAL_REJECT_AFTER_MESSAGES */
	NB_SEAL_E_EXPIRED = -4209,   /* keypair older than REJECT_AFTER_TIME, or past its grace */
	NB_SEAL_E_INVAL = -4210,     /* bad argument */
	NB_SEAL_E_CRYPTO = -4211,    /* the crypto library failed (not a bad tag) */
};

const char *nb_seal_strerror(int err);

/* The output of a Noise split, plus the two indices of this keypair.
 * local_index: chosen by us, the peer writes it into its frames;
 * remote_index: chosen by the peer, we write it into ours. send != recv. */
struct nb_seal_keys {
	uint8_t send[NB_SEAL_KEY_LEN], recv[NB_SEAL_KEY_LEN];
	uint32_t local_index, remote_index;
};

/* RFC 6479 receive window: `counter` = 1 + the highest counter accepted
 * (0: none yet); bit (c + 1) % NB_SEAL_WINDOW_BITS: counter c accepted. */
struct nb_seal_replay {
	uint64_t counter;
	uint64_t backtrack[NB_SEAL_WINDOW_WORDS];
};

struct nb_seal_keypair {
	bool valid;
	EVP_CIPHER_CTX *enc, *dec; /* keyed once; per frame only the nonce is set */
	uint32_t local_index, remote_index;
	uint64_t tx_counter;      /* next counter to send */
	struct nb_seal_replay rx; /* counters received */
	uint64_t created_ms;
};

struct nb_seal_stats {
	uint64_t tx, rx;                 /* frames sealed / accepted */
	uint64_t rx_prev;                /* of rx: under the previous keypair */
	uint64_t rx_bad_tag, rx_replay, rx_bad_index, rx_expired, rx_malformed;
};

struct nb_seal {
	struct nb_seal_keypair cur;  /* seals and opens */
	struct nb_seal_keypair prev; /* opens only, until prev_until_ms */
	uint64_t prev_until_ms;
	struct nb_seal_stats stats;
};

/* Key a fresh state with k (copied; the caller wipes its copy). 0, or
 * NB_SEAL_E_INVAL (send == recv, NULL) / NB_SEAL_E_CRYPTO, *s untouched. */
int nb_seal_init(struct nb_seal *s, const struct nb_seal_keys *k, uint64_t now);

/* Seal n bytes of pt (n == 0 allowed) as the next frame into out. pt may be
 * out + NB_SEAL_HDR_LEN (in place) but must not otherwise overlap out.
 * Returns the frame length (NB_SEAL_OVERHEAD + n), or NB_SEAL_E_TOO_BIG /
 * NOSPACE / INVAL / EXHAUSTED / EXPIRED / CRYPTO; the counter is consumed
 * only on success. */
ssize_t nb_seal_seal(struct nb_seal *s, const uint8_t *pt, size_t n, uint8_t *out, size_t cap,
		     uint64_t now);

/* Open one frame of exactly len bytes into out (must not overlap frame).
 * Returns the plaintext length (0..1371), or a negative enum nb_seal_err;
 * the order of checks is above. On failure the state is unchanged (but for
 * stats) and out's first len - NB_SEAL_OVERHEAD bytes may have been
 * overwritten with zeros (OpenSSL decrypts before it verifies; a frame that
 * fails is wiped, never left readable). */
ssize_t nb_seal_open(struct nb_seal *s, const uint8_t *frame, size_t len, uint8_t *out, size_t cap,
		     uint64_t now);

/* A new handshake's keys: they become current (counter 0, empty window);
 * the old current becomes previous (receive only) for NB_SEAL_PREV_GRACE_MS;
 * the old previous is wiped. 0, or NB_SEAL_E_INVAL (send == recv, or
 * k->local_index equals the current one: it would be ambiguous) /
 * NB_SEAL_E_CRYPTO, *s untouched. */
int nb_seal_rekey(struct nb_seal *s, const struct nb_seal_keys *k, uint64_t now);

/* Time for a new handshake: NB_SEAL_REKEY_AFTER_MESSAGES sent or the
 * current keypair NB_SEAL_REKEY_AFTER_TIME_MS old. */
bool nb_seal_wants_rekey(const struct nb_seal *s, uint64_t now);
/* The current keypair can seal no more: REJECT_AFTER_TIME reached or the
 * counter at REJECT_AFTER_MESSAGES. */
bool nb_seal_dead(const struct nb_seal *s, uint64_t now);

/* The receiver index of a frame (to find its session), without any crypto.
 * 0, or NB_SEAL_E_SHORT / TYPE / TOO_BIG / INVAL (*ret_index untouched). */
int nb_seal_peek_index(const uint8_t *frame, size_t len, uint32_t *ret_index);

/* Free the cipher contexts and cleanse everything. NULL is fine; a wiped
 * state refuses everything (NB_SEAL_E_INVAL) until nb_seal_init. */
void nb_seal_wipe(struct nb_seal *s);

/* The bare primitive, for known-answer tests: ChaCha20-Poly1305 encryption
 * of n bytes of in under key, a full 12-byte nonce and ad, into out (n
 * bytes) and tag. Allocates a context per call: not for the data path.
 * 0, or NB_SEAL_E_INVAL / NB_SEAL_E_CRYPTO. */
int nb_seal_chachapoly(const uint8_t key[NB_SEAL_KEY_LEN], const uint8_t nonce[12],
		       const uint8_t *ad, size_t ad_len, const uint8_t *in, size_t n, uint8_t *out,
		       uint8_t tag[NB_SEAL_TAG_LEN]);

#endif
