/* proto/stun.h - STUN message codec: RFC 8489, the RFC 5780 attributes, and the
 * RFC 3489 ("classic") attributes read-only. Pure: bytes in, structs out; no I/O.
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |0 0|     STUN Message Type     |         Message Length        |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                         Magic Cookie                          |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                     Transaction ID (96 bits)                  |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  RFC 8489 §5. A classic RFC 3489 message has no magic cookie: its
 *  transaction ID is the 128 bits from offset 4.
 *
 *  Attributes are TLVs (type 16, length 16, value padded to 4 bytes).
 *
 * Views: nb_stun_decode() stores pointers into the caller's buffer (USERNAME,
 * SOFTWARE, reason phrase). They are valid as long as that buffer is.
 * The decoder never writes to its input.
 */
#ifndef NB_PROTO_STUN_H
#define NB_PROTO_STUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/addr.h"

#define NB_STUN_HDR_LEN 20
#define NB_STUN_MAGIC_COOKIE 0x2112A442u
#define NB_STUN_TID_LEN 12
/* RFC 8489 §5: FINGERPRINT is CRC-32 of the message XOR 0x5354554e. */
#define NB_STUN_FINGERPRINT_XOR 0x5354554eu
/* A message we build or accept over UDP never exceeds this (RFC 8489 §6.1:
 * path MTU unknown -> keep under 576 for IPv4; we allow up to our own
 * datagram cap, 1200). The UDP callers refuse larger datagrams before
 * decoding; nb_stun_decode() itself accepts up to 20 + 65532 bytes, for TCP
 * framing. */
#define NB_STUN_MAX_MSG 1200

/* Methods and classes (RFC 8489 §5, §18.2). */
#define NB_STUN_METHOD_BINDING 0x001
#define NB_STUN_CLASS_REQUEST 0x000
#define NB_STUN_CLASS_INDICATION 0x010
#define NB_STUN_CLASS_SUCCESS 0x100
#define NB_STUN_CLASS_ERROR 0x110

#define NB_STUN_BINDING_REQUEST 0x0001
#define NB_STUN_BINDING_SUCCESS 0x0101
#define NB_STUN_BINDING_ERROR 0x0111

/* Attribute types. Comprehension-required: 0x0000-0x7FFF. */
#define NB_STUN_ATTR_MAPPED_ADDRESS 0x0001
#define NB_STUN_ATTR_RESPONSE_ADDRESS 0x0002 /* RFC 3489; never honoured */
#define NB_STUN_ATTR_CHANGE_REQUEST 0x0003   /* RFC 5780 §7.2 */
#define NB_STUN_ATTR_SOURCE_ADDRESS 0x0004   /* RFC 3489, read only */
#define NB_STUN_ATTR_CHANGED_ADDRESS 0x0005  /* RFC 3489, read only */
#define NB_STUN_ATTR_USERNAME 0x0006
#define NB_STUN_ATTR_PASSWORD 0x0007 /* RFC 3489; ignored */
#define NB_STUN_ATTR_MESSAGE_INTEGRITY 0x0008
#define NB_STUN_ATTR_ERROR_CODE 0x0009
#define NB_STUN_ATTR_UNKNOWN_ATTRIBUTES 0x000A
#define NB_STUN_ATTR_REFLECTED_FROM 0x000B /* RFC 3489; ignored */
#define NB_STUN_ATTR_MESSAGE_INTEGRITY_SHA256 0x001C
#define NB_STUN_ATTR_XOR_MAPPED_ADDRESS 0x0020
#define NB_STUN_ATTR_PADDING 0x0026       /* RFC 5780 §7.6 */
#define NB_STUN_ATTR_RESPONSE_PORT 0x0027 /* RFC 5780 §7.5 */
#define NB_STUN_ATTR_SOFTWARE 0x8022
#define NB_STUN_ATTR_FINGERPRINT 0x8028
#define NB_STUN_ATTR_RESPONSE_ORIGIN 0x802B /* RFC 5780 §7.3 */
#define NB_STUN_ATTR_OTHER_ADDRESS 0x802C   /* RFC 5780 §7.4 */

/* CHANGE-REQUEST flags (RFC 5780 §7.2). */
#define NB_STUN_CHANGE_IP 0x4
#define NB_STUN_CHANGE_PORT 0x2

/* Error codes used here (RFC 8489 §14.8, RFC 5780). */
#define NB_STUN_ERR_BAD_REQUEST 400
#define NB_STUN_ERR_UNAUTHORIZED 401
#define NB_STUN_ERR_UNKNOWN_ATTRIBUTE 420
#define NB_STUN_ERR_SERVER_ERROR 500

/* Limits. */
#define NB_STUN_MAX_UNKNOWN 16   /* unknown comprehension-required types reported */
#define NB_STUN_MAX_USERNAME 513 /* RFC 8489 §14.3: < 509 bytes; we allow a bit */
#define NB_STUN_MAX_SOFTWARE 763 /* RFC 8489 §14.14: < 128 chars, <= 763 bytes */
#define NB_STUN_MAX_REASON 763

/* Error returns (negative). Our own range, clear of -errno values. */
enum nb_stun_err {
	NB_STUN_E_TRUNCATED = -1001,   /* shorter than the header or its length field says */
	NB_STUN_E_NOT_STUN = -1002,    /* first two bits not 0, or length not a multiple of 4 */
	NB_STUN_E_BAD_ATTR = -1003,    /* attribute length wrong for its type, or bad padding */
	NB_STUN_E_ORDER = -1004,       /* attribute after FINGERPRINT, or non-FP after M-I */
	NB_STUN_E_FINGERPRINT = -1005, /* FINGERPRINT present and wrong */
	NB_STUN_E_NOSPACE = -1006,     /* encoder: caller's buffer too small */
	NB_STUN_E_INTEGRITY = -1007,   /* MESSAGE-INTEGRITY(-SHA256) absent or wrong */
	NB_STUN_E_INVAL = -1008,       /* encoder: invalid argument */
	NB_STUN_E_TOO_BIG = -1009,     /* larger than the cap we accept */
};

/* Which attributes were present, for nb_stun_msg.present. */
enum nb_stun_has {
	NB_STUN_HAS_MAPPED = 1u << 0,
	NB_STUN_HAS_XOR_MAPPED = 1u << 1,
	NB_STUN_HAS_CHANGE_REQUEST = 1u << 2,
	NB_STUN_HAS_SOURCE = 1u << 3,
	NB_STUN_HAS_CHANGED = 1u << 4,
	NB_STUN_HAS_USERNAME = 1u << 5,
	NB_STUN_HAS_INTEGRITY = 1u << 6,
	NB_STUN_HAS_INTEGRITY_SHA256 = 1u << 7,
	NB_STUN_HAS_ERROR_CODE = 1u << 8,
	NB_STUN_HAS_UNKNOWN_ATTRS = 1u << 9,
	NB_STUN_HAS_SOFTWARE = 1u << 10,
	NB_STUN_HAS_FINGERPRINT = 1u << 11,
	NB_STUN_HAS_RESPONSE_ORIGIN = 1u << 12,
	NB_STUN_HAS_OTHER_ADDRESS = 1u << 13,
	NB_STUN_HAS_PADDING = 1u << 14,
	NB_STUN_HAS_RESPONSE_PORT = 1u << 15,
	NB_STUN_HAS_RESPONSE_ADDRESS = 1u << 16,
};

struct nb_stun_msg {
	uint16_t type;   /* method | class bits, as on the wire */
	uint16_t method; /* NB_STUN_METHOD_* */
	uint16_t cls;    /* NB_STUN_CLASS_* */
	uint16_t length; /* header length field: bytes of attributes */
	bool classic;    /* RFC 3489: no magic cookie */
	uint8_t tid[16]; /* RFC 8489: bytes 8..19 in tid[0..11]; classic: bytes 4..19 */

	uint32_t present; /* enum nb_stun_has bits */
	struct nb_addr mapped, xor_mapped, source, changed, response_origin, other_address;
	uint32_t change_flags;  /* NB_STUN_CHANGE_* */
	uint16_t response_port; /* RESPONSE-PORT */
	size_t padding_len;     /* PADDING value length */

	const uint8_t *username; /* view; username_len bytes, not NUL-terminated */
	size_t username_len;
	const uint8_t *software; /* view */
	size_t software_len;

	uint16_t error_code; /* 300..699 */
	const uint8_t *reason; /* view */
	size_t reason_len;

	uint16_t unknown_attrs[NB_STUN_MAX_UNKNOWN]; /* values of UNKNOWN-ATTRIBUTES */
	size_t n_unknown_attrs;

	/* Comprehension-required attribute types in this message that the
	 * decoder does not understand (RFC 8489 §7.3.1: answer 420). */
	uint16_t unknown_required[NB_STUN_MAX_UNKNOWN];
	size_t n_unknown_required;

	/* Offsets of the integrity attributes' headers from the message start,
	 * for nb_stun_check_integrity(); 0 when absent. */
	size_t integrity_off;
	size_t integrity_sha256_off;
	size_t integrity_sha256_len; /* 16..32 */
};

/* Cheap test for demultiplexing (RFC 7983 first byte 0..3, length multiple
 * of 4, and the length field matches len). Does not require the cookie. */
bool nb_stun_is_stun(const uint8_t *buf, size_t len);

/* Decode and validate a whole message of exactly len bytes (a datagram, or a
 * TCP frame). Checks lengths, padding, ordering rules and FINGERPRINT (when
 * present). Returns the message length (> 0) or a negative enum nb_stun_err.
 * *ret is untouched on failure. */
ssize_t nb_stun_decode(struct nb_stun_msg *ret, const uint8_t *buf, size_t len);

/* For TCP framing: given the first bytes of a stream, how long is the whole
 * message? Returns the length, 0 when fewer than 4 bytes are available, or
 * NB_STUN_E_NOT_STUN. */
ssize_t nb_stun_frame_len(const uint8_t *buf, size_t len);

/* Verify MESSAGE-INTEGRITY (HMAC-SHA1) or, if present,
 * MESSAGE-INTEGRITY-SHA256 of a message that nb_stun_decode() accepted, with
 * the given key (short-term: the password bytes). Works over a copy of the
 * header; never modifies buf. Returns 0 or NB_STUN_E_INTEGRITY. */
int nb_stun_check_integrity(const struct nb_stun_msg *msg, const uint8_t *buf, size_t len,
			    const uint8_t *key, size_t key_len);

/* ---- Encoder ------------------------------------------------------------
 * Writes into a caller buffer with a hard capacity. Each add function fails
 * with NB_STUN_E_NOSPACE (and leaves the encoder as it was) if the attribute
 * does not fit. Integrity and fingerprint must come last, in that order.
 */
struct nb_stun_enc {
	uint8_t *buf;
	size_t cap;
	size_t len;
	bool classic; /* RFC 3489 framing: tid is 16 bytes, no cookie */
};

/* Start a message. tid is 12 bytes (RFC 8489) or 16 bytes when classic. */
int nb_stun_enc_init(struct nb_stun_enc *e, uint8_t *buf, size_t cap, uint16_t type,
		     const uint8_t *tid, bool classic);
int nb_stun_enc_attr(struct nb_stun_enc *e, uint16_t type, const void *val, size_t len);
/* MAPPED-ADDRESS-style attribute (also SOURCE/CHANGED/RESPONSE-ORIGIN/OTHER-ADDRESS). */
int nb_stun_enc_addr(struct nb_stun_enc *e, uint16_t type, const struct nb_addr *a);
/* XOR-MAPPED-ADDRESS (RFC 8489 §14.2). Not valid for classic messages. */
int nb_stun_enc_xor_addr(struct nb_stun_enc *e, uint16_t type, const struct nb_addr *a);
int nb_stun_enc_u32(struct nb_stun_enc *e, uint16_t type, uint32_t v);
/* ERROR-CODE (RFC 8489 §14.8); reason is a NUL-terminated UTF-8 string. */
int nb_stun_enc_error(struct nb_stun_enc *e, uint16_t code, const char *reason);
int nb_stun_enc_unknown(struct nb_stun_enc *e, const uint16_t *types, size_t n);
int nb_stun_enc_integrity(struct nb_stun_enc *e, const uint8_t *key, size_t key_len);
int nb_stun_enc_integrity_sha256(struct nb_stun_enc *e, const uint8_t *key, size_t key_len);
int nb_stun_enc_fingerprint(struct nb_stun_enc *e);
/* Total length of the message so far (header included). */
static inline size_t nb_stun_enc_len(const struct nb_stun_enc *e)
{
	return e->len;
}

/* CRC-32 (ISO 3309 / ITU-T V.42, as FINGERPRINT uses). */
uint32_t nb_crc32(const uint8_t *buf, size_t len);

/* A short name for an error return, for logs. */
const char *nb_stun_strerror(int err);

#endif
