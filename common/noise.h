/* common/noise.h - the Noise_IK_25519_ChaChaPoly_SHA256 handshake (Noise spec rev 34) and its 0xD1/0xD2 frames.
 *
 * Pattern (spec §7.5, notation of §7.1); the responder's static key is
 * known to the initiator beforehand:
 *
 *    IK:
 *      <- s
 *      ...
 *      -> e, es, s, ss
 *      <- e, ee, se
 *
 * Primitives, all from OpenSSL's libcrypto: DH = X25519 (common/keys.h),
 * HASH = SHA-256, HKDF = the spec's §4.3 HKDF over HMAC-SHA256, cipher =
 * ChaCha20-Poly1305 (RFC 8439) with the 96-bit nonce 32 zero bits || the
 * 64-bit counter n, little-endian (spec §12.3). The protocol name
 * "Noise_IK_25519_ChaChaPoly_SHA256" is exactly HASHLEN = 32 bytes, so the
 * initial h is the name itself, not its hash (spec §5.2 InitializeSymmetric).
 * The prologue is the caller's (both sides must pass the same bytes).
 *
 * Raw Noise messages (what the spec defines; the interop test uses these):
 *
 *    msg1  +-------------+---------------------+--------------------------+
 *          | e, 32 bytes | enc(s), 32 + 16 tag | enc(payload), n + 16 tag |
 *          +-------------+---------------------+--------------------------+
 *    msg2  +-------------+--------------------------+
 *          | e, 32 bytes | enc(payload), n + 16 tag |
 *          +-------------+--------------------------+
 *
 * The project's frames (one UDP datagram each) put a type and the session
 * indices in front (indices big-endian):
 *
 *    0xD1 initiation:
 *     0      1                 5
 *    +------+-----------------+---------------- ... -+
 *    | 0xD1 | sender_index    | msg1 (96 + n bytes)  |
 *    +------+-----------------+---------------- ... -+
 *
 *    0xD2 response:
 *     0      1                 5                 9
 *    +------+-----------------+-----------------+------------ ... -+
 *    | 0xD2 | sender_index    | receiver_index  | msg2 (48 + n)    |
 *    +------+-----------------+-----------------+------------ ... -+
 *
 * sender_index is the index the sender picked for this session; the
 * response's receiver_index echoes the initiation's sender_index. The
 * indices are routing hints, as in WireGuard: they are NOT covered by the
 * Noise transcript (the raw messages stay plain Noise_IK). Changing the
 * initiation's sender_index makes the initiator refuse the response (wrong
 * receiver_index); changing the response's sender_index makes the
 * initiator address its transport frames to a session the responder does
 * not have. Either way the session never carries data; bind them into the
 * payloads if that is ever not enough.
 *
 * Transport frames (0xD3, common/seal.c) use the keys from nb_noise_split()
 * with nb_noise_aead_seal/open (n = the frame's counter).
 *
 * State machine, one explicit state per handshake (WireGuard style):
 *
 *   initiator: ZEROED -init-> INITIATOR_READY -write_init-> CREATED_INITIATION
 *                        -read_resp-> CONSUMED_RESPONSE -split-> SPLIT
 *   responder: ZEROED -init-> RESPONDER_READY -read_init-> CONSUMED_INITIATION
 *                        -write_resp-> CREATED_RESPONSE -split-> SPLIT
 *
 * Each step checks the state it needs, computes into stack copies and
 * writes the struct only on success. Any error after init makes the state
 * FAILED for good (noise-c's rule): start a new handshake. (A caller that
 * wants a forged response not to kill its pending initiation can copy the
 * struct before nb_noise_read_resp and put the copy back on failure.)
 * Secrets on the stack are wiped on every exit; nb_noise_split() and
 * nb_noise_wipe() wipe the struct.
 *
 * Not thread-safe per handshake; different handshakes may run on different
 * threads. Pure: no I/O, no clock (randomness only for the ephemeral key).
 */
#ifndef NB_COMMON_NOISE_H
#define NB_COMMON_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NB_NOISE_PROTOCOL_NAME "Noise_IK_25519_ChaChaPoly_SHA256"
#define NB_NOISE_KEY_LEN 32
#define NB_NOISE_HASH_LEN 32
#define NB_NOISE_TAG_LEN 16
#define NB_NOISE_MAX_PAYLOAD 256  /* handshake payloads, each way */
#define NB_NOISE_MAX_PROLOGUE 256

#define NB_NOISE_TYPE_INIT 0xD1
#define NB_NOISE_TYPE_RESP 0xD2
#define NB_NOISE_INIT_HDR_LEN 5   /* type + sender_index */
#define NB_NOISE_RESP_HDR_LEN 9   /* type + sender_index + receiver_index */

/* Raw Noise message lengths for an n-byte payload. */
#define NB_NOISE_MSG1_LEN(n) (32 + 48 + (n) + 16)
#define NB_NOISE_MSG2_LEN(n) (32 + (n) + 16)
/* Frame lengths for an n-byte payload. */
#define NB_NOISE_INIT_LEN(n) (NB_NOISE_INIT_HDR_LEN + NB_NOISE_MSG1_LEN(n))
#define NB_NOISE_RESP_LEN(n) (NB_NOISE_RESP_HDR_LEN + NB_NOISE_MSG2_LEN(n))
#define NB_NOISE_INIT_MIN NB_NOISE_INIT_LEN(0) /* 101 */
#define NB_NOISE_INIT_MAX NB_NOISE_INIT_LEN(NB_NOISE_MAX_PAYLOAD)
#define NB_NOISE_RESP_MIN NB_NOISE_RESP_LEN(0) /* 57 */
#define NB_NOISE_RESP_MAX NB_NOISE_RESP_LEN(NB_NOISE_MAX_PAYLOAD)

enum nb_noise_err {
	NB_NOISE_E_SHORT = -4101,   /* frame shorter than its type's minimum */
	NB_NOISE_E_TYPE = -4102,    /* first byte is not the expected frame type */
	NB_NOISE_E_STATE = -4103,   /* the handshake is not in the state this step needs */
	NB_NOISE_E_MAC = -4104,     /* a Poly1305 tag did not verify */
	NB_NOISE_E_INDEX = -4105,   /* response's receiver_index is not our index */
	NB_NOISE_E_CRYPTO = -4106,  /* libcrypto failed (not an authentication failure) */
	NB_NOISE_E_ZERO = -4107,    /* a DH gave all zeros: low-order public key */
	NB_NOISE_E_NOSPACE = -4108, /* output buffer too small */
	NB_NOISE_E_INVAL = -4109,   /* bad argument */
	NB_NOISE_E_TOO_BIG = -4110, /* payload or frame longer than the maximum */
};

const char *nb_noise_strerror(int err);

enum nb_noise_role { NB_NOISE_INITIATOR = 1, NB_NOISE_RESPONDER };

enum nb_noise_hs_state {
	NB_NOISE_HS_ZEROED = 0,
	NB_NOISE_HS_INITIATOR_READY,
	NB_NOISE_HS_RESPONDER_READY,
	NB_NOISE_HS_CREATED_INITIATION,
	NB_NOISE_HS_CONSUMED_INITIATION,
	NB_NOISE_HS_CREATED_RESPONSE,
	NB_NOISE_HS_CONSUMED_RESPONSE,
	NB_NOISE_HS_SPLIT,
	NB_NOISE_HS_FAILED,
};

/* split() result for one side. */
struct nb_noise_keys {
	uint8_t send[NB_NOISE_KEY_LEN], recv[NB_NOISE_KEY_LEN];
	uint32_t local_index, remote_index;
	uint8_t remote_static[NB_NOISE_KEY_LEN];
	uint8_t handshake_hash[NB_NOISE_HASH_LEN]; /* h at split: channel binding (spec §11.2) */
};

/* One handshake. Plain data (no heap pointers): stack-allocatable and
 * copyable; read it through the accessors below. */
struct nb_noise_hs {
	enum nb_noise_hs_state state;
	enum nb_noise_role role;
	uint8_t h[NB_NOISE_HASH_LEN];  /* handshake hash */
	uint8_t ck[NB_NOISE_HASH_LEN]; /* chaining key */
	uint8_t s_priv[32], s_pub[32]; /* our static pair */
	uint8_t e_priv[32], e_pub[32]; /* our ephemeral pair */
	uint8_t rs[32], re[32];        /* their static, their ephemeral */
	uint32_t local_index, remote_index;
	bool fixed_e; /* nb_noise_set_ephemeral_for_test() */
};

/* ---- Initiator ---- */

/* s_priv: our static private key; rs_pub: the responder's static public
 * key; prologue: 0..NB_NOISE_MAX_PROLOGUE bytes (NULL when plen is 0).
 * 0, NB_NOISE_E_INVAL, NB_NOISE_E_TOO_BIG or NB_NOISE_E_CRYPTO. */
int nb_noise_init_initiator(struct nb_noise_hs *hs, const uint8_t s_priv[32], const uint8_t rs_pub[32],
			    const uint8_t *prologue, size_t plen);

/* -> e, es, s, ss, then the payload; writes the 0xD1 frame
 * (NB_NOISE_INIT_LEN(n) bytes) into out. Needs INITIATOR_READY. Returns the
 * frame length, or NB_NOISE_E_STATE, _INVAL, _TOO_BIG (n >
 * NB_NOISE_MAX_PAYLOAD), _NOSPACE, _ZERO (rs is a low-order point), _CRYPTO. */
ssize_t nb_noise_write_init(struct nb_noise_hs *hs, uint32_t local_index, const uint8_t *payload, size_t n,
			    uint8_t *out, size_t cap);

/* <- e, ee, se, then the payload: reads a 0xD2 frame whose receiver_index
 * is our local_index. Needs CREATED_INITIATION. Returns the payload length
 * (copied into payload_out), or NB_NOISE_E_SHORT, _TOO_BIG, _TYPE, _STATE,
 * _INDEX, _NOSPACE, _ZERO, _MAC, _CRYPTO. */
ssize_t nb_noise_read_resp(struct nb_noise_hs *hs, const uint8_t *frame, size_t len, uint8_t *payload_out,
			   size_t cap);

/* ---- Responder ---- */

/* s_priv: our static private key. Computes our public key (one X25519);
 * a broker should use nb_noise_init_responder_with_public() instead.
 * 0, NB_NOISE_E_INVAL, _TOO_BIG or _CRYPTO. */
int nb_noise_init_responder(struct nb_noise_hs *hs, const uint8_t s_priv[32], const uint8_t *prologue,
			    size_t plen);

/* The same with our public key given (computed once, e.g. with
 * nb_key_public()), which saves one X25519 per handshake. s_pub must be
 * s_priv's public key: with any other value every initiation fails with
 * NB_NOISE_E_MAC. */
int nb_noise_init_responder_with_public(struct nb_noise_hs *hs, const uint8_t s_priv[32],
					const uint8_t s_pub[32], const uint8_t *prologue, size_t plen);

/* -> e, es, s, ss, then the payload: reads a 0xD1 frame. Needs
 * RESPONDER_READY. Returns the payload length, or NB_NOISE_E_SHORT,
 * _TOO_BIG, _TYPE, _STATE, _NOSPACE, _ZERO, _MAC, _CRYPTO. Afterwards
 * nb_noise_remote_static() and nb_noise_remote_index() tell who it is:
 * the caller decides whether it accepts that key before writing a response. */
ssize_t nb_noise_read_init(struct nb_noise_hs *hs, const uint8_t *frame, size_t len, uint8_t *payload_out,
			   size_t cap);

/* <- e, ee, se, then the payload; writes the 0xD2 frame
 * (NB_NOISE_RESP_LEN(n) bytes). Needs CONSUMED_INITIATION. Returns the
 * frame length, or NB_NOISE_E_STATE, _INVAL, _TOO_BIG, _NOSPACE, _ZERO,
 * _CRYPTO. */
ssize_t nb_noise_write_resp(struct nb_noise_hs *hs, uint32_t local_index, const uint8_t *payload, size_t n,
			    uint8_t *out, size_t cap);

/* The initiator's static public key / sender index once the initiation has
 * been read (NULL / 0 before). */
const uint8_t *nb_noise_remote_static(const struct nb_noise_hs *hs);
uint32_t nb_noise_remote_index(const struct nb_noise_hs *hs);

/* ---- Both ---- */

/* Split() (spec §5.2) after the last message (CONSUMED_RESPONSE on the
 * initiator, CREATED_RESPONSE on the responder): the initiator sends with
 * the first key, the responder with the second. Fills *ret and wipes hs
 * (state SPLIT). 0, NB_NOISE_E_STATE, _INVAL or _CRYPTO. */
int nb_noise_split(struct nb_noise_hs *hs, struct nb_noise_keys *ret);

/* Wipe every secret; the state becomes ZEROED. NULL is fine. */
void nb_noise_wipe(struct nb_noise_hs *hs);

enum nb_noise_hs_state nb_noise_state(const struct nb_noise_hs *hs);

/* Type byte of a frame, without crypto, for demultiplexing:
 * NB_NOISE_TYPE_INIT or NB_NOISE_TYPE_RESP when len is within that type's
 * bounds; NB_NOISE_E_SHORT / _TOO_BIG / _TYPE otherwise. */
int nb_noise_frame_type(const uint8_t *buf, size_t len);

/* Indices without crypto: an initiation's sender_index; a response's
 * sender_index and receiver_index. 0 or NB_NOISE_E_SHORT / _TYPE. */
int nb_noise_peek_init(const uint8_t *buf, size_t len, uint32_t *ret_sender);
int nb_noise_peek_resp(const uint8_t *buf, size_t len, uint32_t *ret_sender, uint32_t *ret_receiver);

/* ChaCha20-Poly1305 with Noise's nonce (4 zero bytes || n, 64-bit
 * little-endian). n = 2^64-1 is reserved (spec §5.1) and refused.
 * seal: out gets len + 16 bytes (ciphertext || tag); 0, NB_NOISE_E_INVAL or
 * _CRYPTO. open: len includes the tag (>= 16), out gets len - 16 bytes;
 * 0, NB_NOISE_E_MAC (tag), NB_NOISE_E_SHORT, _INVAL or _CRYPTO. out may
 * equal pt/ct (in place); otherwise they must not overlap. */
int nb_noise_aead_seal(const uint8_t key[32], uint64_t n, const uint8_t *ad, size_t adlen, const uint8_t *pt,
		       size_t len, uint8_t *out);
int nb_noise_aead_open(const uint8_t key[32], uint64_t n, const uint8_t *ad, size_t adlen, const uint8_t *ct,
		       size_t len, uint8_t *out);

/* TEST ONLY: the next write_init / write_resp uses this ephemeral private
 * key instead of a random one (for the published vectors). Call after
 * init. 0, NB_NOISE_E_STATE or _CRYPTO. */
int nb_noise_set_ephemeral_for_test(struct nb_noise_hs *hs, const uint8_t e_priv[32]);

#endif
