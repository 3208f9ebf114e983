/* proto/turn.h - TURN (RFC 8656) on the wire: the methods' attributes, the
 * ChannelData framing, and the credentials (the long-term mechanism of RFC
 * 8489 §9.2 and the TURN REST API scheme that coturn's use-auth-secret
 * implements). Pure: bytes in, structs out; no I/O, no clock.
 *
 * TURN messages are STUN messages (proto/stun.h decodes and builds them);
 * this module reads the TURN attributes of a message nb_stun_decode()
 * accepted, and says which of its comprehension-required attributes are
 * still unknown once TURN's are counted.
 *
 * ChannelData (RFC 8656 §12.4):
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |         Channel Number        |            Length             |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                                                               |
 *  /                       Application Data                        /
 *  |                               +-------------------------------+
 *  |                               |  padding to 4 bytes (TCP only)|
 *  +-------------------------------+
 *  Channel numbers 0x4000-0x7FFF (RFC 5766's range, see
 *  NB_TURN_CHANNEL_MAX); first byte 0x40-0x7F.
 *  Over UDP the datagram may carry up to 3 padding bytes after Length
 *  (they are ignored); over TCP the padding is always there (§12.5).
 *
 * XOR-PEER-ADDRESS and XOR-RELAYED-ADDRESS have the XOR-MAPPED-ADDRESS
 * format (build them with nb_stun_enc_xor_addr()).
 */
#ifndef NB_PROTO_TURN_H
#define NB_PROTO_TURN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/addr.h"
#include "proto/stun.h"

/* Methods (RFC 8656 §18). */
#define NB_TURN_METHOD_ALLOCATE 0x003
#define NB_TURN_METHOD_REFRESH 0x004
#define NB_TURN_METHOD_SEND 0x006 /* indication only */
#define NB_TURN_METHOD_DATA 0x007 /* indication only */
#define NB_TURN_METHOD_CREATE_PERMISSION 0x008
#define NB_TURN_METHOD_CHANNEL_BIND 0x009

/* Attributes (RFC 8656 §18). */
#define NB_TURN_ATTR_CHANNEL_NUMBER 0x000C
#define NB_TURN_ATTR_LIFETIME 0x000D
#define NB_TURN_ATTR_XOR_PEER_ADDRESS 0x0012
#define NB_TURN_ATTR_DATA 0x0013
#define NB_TURN_ATTR_REALM 0x0014 /* RFC 8489 §14.9 */
#define NB_TURN_ATTR_NONCE 0x0015 /* RFC 8489 §14.10 */
#define NB_TURN_ATTR_XOR_RELAYED_ADDRESS 0x0016
#define NB_TURN_ATTR_REQUESTED_ADDRESS_FAMILY 0x0017
#define NB_TURN_ATTR_EVEN_PORT 0x0018
#define NB_TURN_ATTR_REQUESTED_TRANSPORT 0x0019
#define NB_TURN_ATTR_DONT_FRAGMENT 0x001A
#define NB_TURN_ATTR_RESERVATION_TOKEN 0x0022
#define NB_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY 0x8000
#define NB_TURN_ATTR_ADDRESS_ERROR_CODE 0x8001
#define NB_TURN_ATTR_ICMP 0x8004

/* Error codes (RFC 8656 §19, RFC 8489 §14.8). */
#define NB_TURN_ERR_TRY_ALTERNATE 300
#define NB_TURN_ERR_BAD_REQUEST 400
#define NB_TURN_ERR_UNAUTHORIZED 401
#define NB_TURN_ERR_FORBIDDEN 403
#define NB_TURN_ERR_UNKNOWN_ATTRIBUTE 420
#define NB_TURN_ERR_ALLOCATION_MISMATCH 437
#define NB_TURN_ERR_STALE_NONCE 438
#define NB_TURN_ERR_AF_NOT_SUPPORTED 440
#define NB_TURN_ERR_WRONG_CREDENTIALS 441
#define NB_TURN_ERR_UNSUPPORTED_TRANSPORT 442
#define NB_TURN_ERR_PEER_AF_MISMATCH 443
#define NB_TURN_ERR_QUOTA 486
#define NB_TURN_ERR_SERVER 500
#define NB_TURN_ERR_CAPACITY 508

#define NB_TURN_TRANSPORT_UDP 17 /* REQUESTED-TRANSPORT: IANA protocol number */
#define NB_TURN_FAMILY_IPV4 0x01 /* REQUESTED-ADDRESS-FAMILY */
#define NB_TURN_FAMILY_IPV6 0x02

/* RFC 8656 §12 allows 0x4000-0x4FFF; RFC 5766 allowed 0x4000-0x7FFF, and
 * coturn (and its turnutils_uclient, which picks channels up to 0x7FFF)
 * still does. We accept the older range for interoperability; our own
 * client binds from 0x4000 up and stays inside RFC 8656's. */
#define NB_TURN_CHANNEL_MIN 0x4000
#define NB_TURN_CHANNEL_MAX 0x7FFF
#define NB_TURN_CHANDATA_HDR 4

/* RFC 8656 §3.9 / §7.2: default and capped lifetimes; permissions last 300 s
 * (§9), channel bindings 600 s (§12). */
#define NB_TURN_DEFAULT_LIFETIME_S 600
#define NB_TURN_MAX_LIFETIME_S 3600
#define NB_TURN_PERMISSION_LIFETIME_S 300
#define NB_TURN_CHANNEL_LIFETIME_S 600

/* Limits of what we read. */
#define NB_TURN_MAX_PEER_ATTRS 8  /* XOR-PEER-ADDRESS attributes in one request */
#define NB_TURN_MAX_REALM 763     /* RFC 8489 §14.9: < 128 chars, <= 763 bytes */
#define NB_TURN_MAX_NONCE 763     /* RFC 8489 §14.10 */
#define NB_TURN_TOKEN_LEN 8       /* RESERVATION-TOKEN (RFC 8656 §18.10) */

/* Error returns (negative), our own range (stun.h: -1001.., ctrl.h: -2001..). */
enum nb_turn_err {
	NB_TURN_E_TRUNCATED = -3001, /* shorter than its header or its length says */
	NB_TURN_E_NOT_CHANDATA = -3002, /* channel number outside 0x4000-0x4FFF */
	NB_TURN_E_BAD_ATTR = -3003,  /* a TURN attribute with a wrong length or value */
	NB_TURN_E_TOO_MANY = -3004,  /* more XOR-PEER-ADDRESS than NB_TURN_MAX_PEER_ATTRS */
	NB_TURN_E_NOSPACE = -3005,   /* encoder: caller's buffer too small */
	NB_TURN_E_INVAL = -3006,     /* invalid argument */
	NB_TURN_E_CRYPTO = -3007,    /* libcrypto failed */
	NB_TURN_E_CREDENTIALS = -3008, /* REST username malformed */
};

/* Which TURN attributes were present, for nb_turn_attrs.present. */
enum nb_turn_has {
	NB_TURN_HAS_CHANNEL = 1u << 0,
	NB_TURN_HAS_LIFETIME = 1u << 1,
	NB_TURN_HAS_PEER = 1u << 2,
	NB_TURN_HAS_DATA = 1u << 3,
	NB_TURN_HAS_REALM = 1u << 4,
	NB_TURN_HAS_NONCE = 1u << 5,
	NB_TURN_HAS_RELAYED = 1u << 6,
	NB_TURN_HAS_REQUESTED_FAMILY = 1u << 7,
	NB_TURN_HAS_EVEN_PORT = 1u << 8,
	NB_TURN_HAS_REQUESTED_TRANSPORT = 1u << 9,
	NB_TURN_HAS_DONT_FRAGMENT = 1u << 10,
	NB_TURN_HAS_RESERVATION_TOKEN = 1u << 11,
	NB_TURN_HAS_ADDITIONAL_FAMILY = 1u << 12,
	NB_TURN_HAS_ADDRESS_ERROR = 1u << 13,
	NB_TURN_HAS_ICMP = 1u << 14,
};

/* The TURN attributes of one message. Views point into the caller's buffer. */
struct nb_turn_attrs {
	uint32_t present;                /* enum nb_turn_has bits */
	uint16_t channel;                /* CHANNEL-NUMBER (any value; callers check the range) */
	uint32_t lifetime;               /* LIFETIME, seconds */
	struct nb_addr peers[NB_TURN_MAX_PEER_ATTRS]; /* XOR-PEER-ADDRESS, in order */
	size_t n_peers;
	const uint8_t *data;             /* DATA value (view), data_len bytes */
	size_t data_len;
	const uint8_t *realm;            /* REALM (view) */
	size_t realm_len;
	const uint8_t *nonce;            /* NONCE (view) */
	size_t nonce_len;
	struct nb_addr relayed;          /* XOR-RELAYED-ADDRESS (the first one) */
	uint8_t requested_transport;     /* REQUESTED-TRANSPORT protocol byte */
	uint8_t requested_family;        /* REQUESTED-ADDRESS-FAMILY */
	uint8_t additional_family;       /* ADDITIONAL-ADDRESS-FAMILY */
	bool even_port_reserve;          /* EVEN-PORT's R bit */
	uint8_t reservation_token[NB_TURN_TOKEN_LEN]; /* RESERVATION-TOKEN */
};

/* Read the TURN attributes of a message nb_stun_decode() accepted (msg is
 * its result over buf, len). Attributes after MESSAGE-INTEGRITY are not
 * read (RFC 8489 §14.5). Unknown attributes are skipped. Returns 0 or a
 * negative enum nb_turn_err (NB_TURN_E_INVAL for a classic RFC 3489
 * message, or when msg does not describe buf); *ret is untouched on failure. */
int nb_turn_attrs_parse(const struct nb_stun_msg *msg, const uint8_t *buf, size_t len,
			struct nb_turn_attrs *ret);

/* The comprehension-required attribute types of msg that neither STUN nor
 * TURN knows (for a 420 answer): copies at most max of them into ret and
 * returns how many there are (at most NB_STUN_MAX_UNKNOWN). */
size_t nb_turn_unknown_required(const struct nb_stun_msg *msg, uint16_t *ret, size_t max);

/* ---- ChannelData ---------------------------------------------------------- */

/* True when the first byte says ChannelData (0x40-0x7F). */
bool nb_turn_is_chandata(const uint8_t *buf, size_t len);

/* Decode one ChannelData message at the start of buf. tcp: the frame
 * includes padding to 4 bytes. Returns the frame's length in bytes
 * (header + data [+ padding over TCP]; over UDP that is at most len), or a
 * negative enum nb_turn_err. The outputs are untouched on failure. */
ssize_t nb_turn_chandata_decode(const uint8_t *buf, size_t len, bool tcp, uint16_t *ret_channel,
				const uint8_t **ret_data, size_t *ret_len);

/* Encode a ChannelData message (tcp: with padding, zero bytes). Returns the
 * bytes written or NB_TURN_E_NOSPACE / NB_TURN_E_INVAL (channel out of
 * range, len > 65535). */
ssize_t nb_turn_chandata_encode(uint8_t *buf, size_t cap, uint16_t channel, const uint8_t *data,
				size_t len, bool tcp);

/* TCP framing (RFC 8656 §12.5 with RFC 8489 §6.2.2): given the start of a
 * stream that carries STUN messages and ChannelData, the length of the
 * first frame (ChannelData padded to 4), 0 when fewer than 4 bytes are
 * there, or NB_TURN_E_NOT_CHANDATA when it is neither (first byte not
 * 0x00-0x3F / 0x40-0x4F, or a STUN length not a multiple of 4). */
ssize_t nb_turn_frame_len(const uint8_t *buf, size_t len);

/* ---- Credentials ---------------------------------------------------------- */

/* The long-term credential key (RFC 8489 §9.2.2, MD5 algorithm):
 * MD5(username ":" realm ":" password), 16 bytes. Returns 0 or
 * NB_TURN_E_CRYPTO / NB_TURN_E_INVAL. */
#define NB_TURN_KEY_LEN 16
int nb_turn_long_term_key(const uint8_t *username, size_t username_len, const uint8_t *realm,
			  size_t realm_len, const uint8_t *password, size_t password_len,
			  uint8_t ret[NB_TURN_KEY_LEN]);

/* TURN REST API (coturn use-auth-secret): username "<expiry>:<user>",
 * password base64(HMAC-SHA1(secret, username)), 28 characters. */
#define NB_TURN_REST_PASSWORD_LEN 28
#define NB_TURN_REST_USER_MAX 128 /* the whole username */

/* Build "<expiry>:<user>" into ret (NUL-terminated). Returns its length or
 * NB_TURN_E_NOSPACE / NB_TURN_E_INVAL (user empty or with a control byte,
 * or the whole username longer than NB_TURN_REST_USER_MAX). */
ssize_t nb_turn_rest_username(uint64_t expiry, const char *user, char *ret, size_t cap);

/* The password for a username (any bytes), base64 with padding, NUL-terminated
 * into ret (NB_TURN_REST_PASSWORD_LEN + 1 bytes). 0 or NB_TURN_E_CRYPTO
 * (NB_TURN_E_INVAL for NULL pointers with a length). */
int nb_turn_rest_password(const uint8_t *secret, size_t secret_len, const uint8_t *username,
			  size_t username_len, char ret[NB_TURN_REST_PASSWORD_LEN + 1]);

/* Split a REST username: the decimal expiry before the first ':' (1 to 20
 * digits, no sign, fits in 64 bits) and a view of the rest (may be empty).
 * 0 or NB_TURN_E_CREDENTIALS. */
int nb_turn_rest_split(const uint8_t *username, size_t len, uint64_t *ret_expiry,
		       const uint8_t **ret_user, size_t *ret_user_len);

/* A short name for an error return, for logs. */
const char *nb_turn_strerror(int err);

#endif
