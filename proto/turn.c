/* proto/turn.c - TURN (RFC 8656) attributes, ChannelData framing, and credentials.
 *
 * Pure: no I/O, no clock, no malloc of our own, no mutable globals. MD5 and
 * HMAC-SHA1 come from OpenSSL libcrypto (EVP_MD / EVP_MAC); base64 from
 * EVP_EncodeBlock.
 *
 * Choices made here (see also proto/turn.h):
 * - TURN attributes are read from a message nb_stun_decode() accepted, so the
 *   TLV walk cannot overrun; it still checks every length (`len - off < n`)
 *   because msg and buf come from the caller separately.
 * - RFC 8489 §14.5: "agents MUST ignore all other attributes that follow
 *   MESSAGE-INTEGRITY". The walk stops at MESSAGE-INTEGRITY or
 *   MESSAGE-INTEGRITY-SHA256, whichever comes first.
 * - Duplicates. RFC 8489 §14: "only the first occurrence needs to be
 *   processed by a receiver". Later copies are validated, then ignored,
 *   except XOR-PEER-ADDRESS, which RFC 8656 §9.1/§11 allows several times
 *   (CreatePermission): all are kept, in order, up to NB_TURN_MAX_PEER_ATTRS.
 * - Values that are well-formed but not what we serve (REQUESTED-TRANSPORT
 *   other than UDP, a REQUESTED-ADDRESS-FAMILY other than 1/2, a
 *   CHANNEL-NUMBER outside NB_TURN_CHANNEL_MIN-MAX) are returned as read: the server
 *   answers them with 442 / 440 / 400, which a parse error could not do.
 * - RFFU bits (CHANNEL-NUMBER, REQUESTED-TRANSPORT, the address-family
 *   attributes, EVEN-PORT's low 7 bits) are ignored: RFC 8656 §18 "RFFU"
 *   fields are "Reserved For Future Use" and we do not refuse on them.
 * - A classic (RFC 3489) message has no magic cookie; TURN needs it (the XOR
 *   addresses are masked with it), so nb_turn_attrs_parse() refuses one with
 *   NB_TURN_E_INVAL.
 * - ChannelData over UDP: RFC 8656 §12.5 "Over UDP, the padding is not
 *   required but MAY be included." Trailing bytes are accepted up to the next
 *   4-byte boundary after the data and no further (a longer datagram is not
 *   one ChannelData message: NB_TURN_E_TRUNCATED is for short ones,
 *   NB_TURN_E_NOT_CHANDATA for these). Over TCP: "the ChannelData message
 *   MUST be padded to a multiple of four bytes", so the frame is always
 *   4 + pad4(length) and a shorter buffer is NB_TURN_E_TRUNCATED.
 */
#include "proto/turn.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "common/bytes.h"

#define TURN_ATTR_HDR_LEN 4
#define TURN_FAMILY_IPV4 0x01 /* RFC 8489 §14.1 address family values */
#define TURN_FAMILY_IPV6 0x02
#define TURN_SHA1_LEN 20
#define TURN_EVEN_PORT_R 0x80u /* RFC 8656 §18.8: "R: If 1, the server is requested to reserve..." */
#define TURN_MAX_REASON 763    /* RFC 8489 §14.8: reason phrase <= 763 bytes */
#define TURN_MAX_DIGITS 20     /* UINT64_MAX has 20 decimal digits */

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

/* ---- Attributes ----------------------------------------------------------- */

/* XOR-PEER-ADDRESS / XOR-RELAYED-ADDRESS, the XOR-MAPPED-ADDRESS format
 * (RFC 8489 §14.2, drawn in proto/stun.c): "X-Port is computed by XOR'ing
 * the mapped port with the most significant 16 bits of the magic cookie";
 * an IPv4 address is XOR'd with the cookie, an IPv6 one with cookie || tid.
 * mask is those 16 bytes (bytes 4..19 of the header). */
static int parse_xor_addr(struct nb_addr *ret, const uint8_t *v, size_t n, const uint8_t *mask)
{
	struct nb_addr a;
	size_t ip_len;

	if (n < 4)
		return NB_TURN_E_BAD_ATTR;
	if (v[1] == TURN_FAMILY_IPV4)
		ip_len = 4;
	else if (v[1] == TURN_FAMILY_IPV6)
		ip_len = 16;
	else
		return NB_TURN_E_BAD_ATTR;
	if (n - 4 != ip_len)
		return NB_TURN_E_BAD_ATTR;

	memset(&a, 0, sizeof(a));
	a.family = ip_len == 4 ? NB_AF_INET : NB_AF_INET6;
	a.port = (uint16_t)(nb_get_u16be(v + 2) ^ nb_get_u16be(mask));
	for (size_t i = 0; i < ip_len; i++)
		a.ip[i] = (uint8_t)(v[4 + i] ^ mask[i]);
	*ret = a;
	return 0;
}

/* One attribute: type, value v of n bytes; mask as for parse_xor_addr(). */
static int turn_attr(struct nb_turn_attrs *t, uint16_t type, const uint8_t *v, size_t n,
		     const uint8_t *mask)
{
	struct nb_addr a;
	int rc;

	switch (type) {
	case NB_TURN_ATTR_CHANNEL_NUMBER:
		/* RFC 8656 §18.1: "a 16-bit unsigned integer followed by a
		 * two-octet RFFU field". */
		if (n != 4)
			return NB_TURN_E_BAD_ATTR;
		if (!(t->present & NB_TURN_HAS_CHANNEL)) {
			t->channel = nb_get_u16be(v);
			t->present |= NB_TURN_HAS_CHANNEL;
		}
		return 0;
	case NB_TURN_ATTR_LIFETIME:
		/* §18.2: "a 32-bit unsigned integral value representing the
		 * number of seconds remaining until expiration". */
		if (n != 4)
			return NB_TURN_E_BAD_ATTR;
		if (!(t->present & NB_TURN_HAS_LIFETIME)) {
			t->lifetime = nb_get_u32be(v);
			t->present |= NB_TURN_HAS_LIFETIME;
		}
		return 0;
	case NB_TURN_ATTR_XOR_PEER_ADDRESS:
		rc = parse_xor_addr(&a, v, n, mask);
		if (rc < 0)
			return rc;
		if (t->n_peers >= NB_TURN_MAX_PEER_ATTRS)
			return NB_TURN_E_TOO_MANY;
		t->peers[t->n_peers++] = a;
		t->present |= NB_TURN_HAS_PEER;
		return 0;
	case NB_TURN_ATTR_DATA:
		/* §18.4: any length. */
		if (!(t->present & NB_TURN_HAS_DATA)) {
			t->data = v;
			t->data_len = n;
			t->present |= NB_TURN_HAS_DATA;
		}
		return 0;
	case NB_TURN_ATTR_REALM:
		/* RFC 8489 §14.9: "MUST be fewer than 128 characters (which can
		 * be as long as 763 bytes)". */
		if (n > NB_TURN_MAX_REALM)
			return NB_TURN_E_BAD_ATTR;
		if (!(t->present & NB_TURN_HAS_REALM)) {
			t->realm = v;
			t->realm_len = n;
			t->present |= NB_TURN_HAS_REALM;
		}
		return 0;
	case NB_TURN_ATTR_NONCE:
		/* RFC 8489 §14.10: "MUST be fewer than 128 characters (which
		 * can be as long as 763 bytes)". */
		if (n > NB_TURN_MAX_NONCE)
			return NB_TURN_E_BAD_ATTR;
		if (!(t->present & NB_TURN_HAS_NONCE)) {
			t->nonce = v;
			t->nonce_len = n;
			t->present |= NB_TURN_HAS_NONCE;
		}
		return 0;
	case NB_TURN_ATTR_XOR_RELAYED_ADDRESS:
		rc = parse_xor_addr(&a, v, n, mask);
		if (rc < 0)
			return rc;
		if (!(t->present & NB_TURN_HAS_RELAYED)) {
			t->relayed = a;
			t->present |= NB_TURN_HAS_RELAYED;
		}
		return 0;
	case NB_TURN_ATTR_REQUESTED_ADDRESS_FAMILY:
	case NB_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY: {
		/* §18.6 / §18.11: "Family" (8 bits) then 24 bits RFFU. */
		uint32_t bit = type == NB_TURN_ATTR_REQUESTED_ADDRESS_FAMILY
				       ? NB_TURN_HAS_REQUESTED_FAMILY
				       : NB_TURN_HAS_ADDITIONAL_FAMILY;
		uint8_t *dst = type == NB_TURN_ATTR_REQUESTED_ADDRESS_FAMILY
				       ? &t->requested_family
				       : &t->additional_family;

		if (n != 4)
			return NB_TURN_E_BAD_ATTR;
		if (!(t->present & bit)) {
			*dst = v[0];
			t->present |= bit;
		}
		return 0;
	}
	case NB_TURN_ATTR_EVEN_PORT:
		/* §18.7: "The value portion of this attribute is 1 byte long." */
		if (n != 1)
			return NB_TURN_E_BAD_ATTR;
		if (!(t->present & NB_TURN_HAS_EVEN_PORT)) {
			t->even_port_reserve = (v[0] & TURN_EVEN_PORT_R) != 0;
			t->present |= NB_TURN_HAS_EVEN_PORT;
		}
		return 0;
	case NB_TURN_ATTR_REQUESTED_TRANSPORT:
		/* §18.8: "Protocol" (8 bits) then 24 bits RFFU. */
		if (n != 4)
			return NB_TURN_E_BAD_ATTR;
		if (!(t->present & NB_TURN_HAS_REQUESTED_TRANSPORT)) {
			t->requested_transport = v[0];
			t->present |= NB_TURN_HAS_REQUESTED_TRANSPORT;
		}
		return 0;
	case NB_TURN_ATTR_DONT_FRAGMENT:
		/* §18.9: "This attribute has no value part, and thus, the
		 * attribute length field is 0." */
		if (n != 0)
			return NB_TURN_E_BAD_ATTR;
		t->present |= NB_TURN_HAS_DONT_FRAGMENT;
		return 0;
	case NB_TURN_ATTR_RESERVATION_TOKEN:
		/* §18.10: "The attribute value is 8 bytes". */
		if (n != NB_TURN_TOKEN_LEN)
			return NB_TURN_E_BAD_ATTR;
		if (!(t->present & NB_TURN_HAS_RESERVATION_TOKEN)) {
			memcpy(t->reservation_token, v, NB_TURN_TOKEN_LEN);
			t->present |= NB_TURN_HAS_RESERVATION_TOKEN;
		}
		return 0;
	case NB_TURN_ATTR_ADDRESS_ERROR_CODE: {
		/* §18.12: Family (8), Rsvd (13), Class (3), Number (8), reason;
		 * Class and Number as in ERROR-CODE (RFC 8489 §14.8). */
		unsigned cls, num;

		if (n < 4 || n - 4 > TURN_MAX_REASON)
			return NB_TURN_E_BAD_ATTR;
		cls = v[2] & 0x7u;
		num = v[3];
		if (cls < 3 || cls > 6 || num > 99)
			return NB_TURN_E_BAD_ATTR;
		t->present |= NB_TURN_HAS_ADDRESS_ERROR;
		return 0;
	}
	case NB_TURN_ATTR_ICMP:
		/* §18.13: Reserved (16), ICMP Type (8), ICMP Code (8), Error
		 * Data (32): 8 bytes. */
		if (n != 8)
			return NB_TURN_E_BAD_ATTR;
		t->present |= NB_TURN_HAS_ICMP;
		return 0;
	default:
		return 0; /* STUN's, or unknown: not ours */
	}
}

int nb_turn_attrs_parse(const struct nb_stun_msg *msg, const uint8_t *buf, size_t len,
			struct nb_turn_attrs *ret)
{
	struct nb_turn_attrs t;
	size_t end, off;

	if (msg == NULL || buf == NULL || ret == NULL)
		return NB_TURN_E_INVAL;
	if (len < NB_STUN_HDR_LEN)
		return NB_TURN_E_TRUNCATED;
	/* msg must describe this buffer. */
	if (len - NB_STUN_HDR_LEN != msg->length || nb_get_u16be(buf + 2) != msg->length)
		return NB_TURN_E_INVAL;
	if (msg->classic || nb_get_u32be(buf + 4) != NB_STUN_MAGIC_COOKIE)
		return NB_TURN_E_INVAL;

	end = len;
	if (msg->integrity_off != 0 && msg->integrity_off < end)
		end = msg->integrity_off;
	if (msg->integrity_sha256_off != 0 && msg->integrity_sha256_off < end)
		end = msg->integrity_sha256_off;
	if (end < NB_STUN_HDR_LEN)
		return NB_TURN_E_INVAL;

	memset(&t, 0, sizeof(t));
	for (off = NB_STUN_HDR_LEN; off < end;) {
		size_t n, step;
		uint16_t at;
		int rc;

		if (end - off < TURN_ATTR_HDR_LEN)
			return NB_TURN_E_TRUNCATED;
		at = nb_get_u16be(buf + off);
		n = nb_get_u16be(buf + off + 2);
		step = TURN_ATTR_HDR_LEN + pad4(n);
		if (end - off < step)
			return NB_TURN_E_TRUNCATED;
		rc = turn_attr(&t, at, buf + off + TURN_ATTR_HDR_LEN, n, buf + 4);
		if (rc < 0)
			return rc;
		off += step;
	}
	*ret = t;
	return 0;
}

/* Comprehension-required types this module reads (RFC 8656 §18; REALM and
 * NONCE are RFC 8489's, which proto/stun.c leaves to us). */
static bool turn_knows(uint16_t type)
{
	switch (type) {
	case NB_TURN_ATTR_CHANNEL_NUMBER:
	case NB_TURN_ATTR_LIFETIME:
	case NB_TURN_ATTR_XOR_PEER_ADDRESS:
	case NB_TURN_ATTR_DATA:
	case NB_TURN_ATTR_REALM:
	case NB_TURN_ATTR_NONCE:
	case NB_TURN_ATTR_XOR_RELAYED_ADDRESS:
	case NB_TURN_ATTR_REQUESTED_ADDRESS_FAMILY:
	case NB_TURN_ATTR_EVEN_PORT:
	case NB_TURN_ATTR_REQUESTED_TRANSPORT:
	case NB_TURN_ATTR_DONT_FRAGMENT:
	case NB_TURN_ATTR_RESERVATION_TOKEN:
		return true;
	default:
		return false;
	}
}

/* proto/stun.c records at most NB_STUN_MAX_UNKNOWN distinct types; TURN's
 * are 12, so when a message holds any type neither knows, at least one of
 * them is recorded and this returns non-zero: the 420 decision is exact even
 * when the list it carries is not complete. */
size_t nb_turn_unknown_required(const struct nb_stun_msg *msg, uint16_t *ret, size_t max)
{
	size_t count = 0, n;

	if (msg == NULL)
		return 0;
	n = msg->n_unknown_required;
	if (n > NB_STUN_MAX_UNKNOWN)
		n = NB_STUN_MAX_UNKNOWN;
	for (size_t i = 0; i < n; i++) {
		uint16_t type = msg->unknown_required[i];

		if (turn_knows(type))
			continue;
		if (ret != NULL && count < max)
			ret[count] = type;
		count++;
	}
	return count;
}

/* ---- ChannelData ---------------------------------------------------------- */

static bool channel_ok(uint16_t channel)
{
	/* RFC 8656 §12: "Channel numbers 0x4000 through 0x4FFF: These values
	 * are the allowed channel numbers (4096 possible values)." */
	return channel >= NB_TURN_CHANNEL_MIN && channel <= NB_TURN_CHANNEL_MAX;
}

bool nb_turn_is_chandata(const uint8_t *buf, size_t len)
{
	/* RFC 7983 §7: "If the value of the first byte is in between 64 and
	 * 79 (inclusive), then the packet is TURN Channel." */
	return buf != NULL && len >= 1 && buf[0] >= 0x40 && buf[0] <= 0x7F;
}

ssize_t nb_turn_chandata_decode(const uint8_t *buf, size_t len, bool tcp, uint16_t *ret_channel,
				const uint8_t **ret_data, size_t *ret_len)
{
	uint16_t channel;
	size_t dlen, frame;

	if (buf == NULL && len != 0)
		return NB_TURN_E_INVAL;
	if (len < NB_TURN_CHANDATA_HDR)
		return NB_TURN_E_TRUNCATED;
	channel = nb_get_u16be(buf);
	if (!channel_ok(channel))
		return NB_TURN_E_NOT_CHANDATA;
	/* §12.4: "The Length field specifies the length in bytes of the
	 * application data field (i.e., it does not include the size of the
	 * ChannelData header)." */
	dlen = nb_get_u16be(buf + 2);
	if (tcp) {
		frame = NB_TURN_CHANDATA_HDR + pad4(dlen);
		if (len < frame)
			return NB_TURN_E_TRUNCATED;
	} else {
		if (len - NB_TURN_CHANDATA_HDR < dlen)
			return NB_TURN_E_TRUNCATED;
		if (len - NB_TURN_CHANDATA_HDR > pad4(dlen))
			return NB_TURN_E_NOT_CHANDATA; /* more than padding after it */
		frame = NB_TURN_CHANDATA_HDR + dlen;
	}
	if (ret_channel != NULL)
		*ret_channel = channel;
	if (ret_data != NULL)
		*ret_data = buf + NB_TURN_CHANDATA_HDR;
	if (ret_len != NULL)
		*ret_len = dlen;
	return (ssize_t)frame;
}

ssize_t nb_turn_chandata_encode(uint8_t *buf, size_t cap, uint16_t channel, const uint8_t *data,
				size_t len, bool tcp)
{
	size_t frame;

	if (buf == NULL || (data == NULL && len != 0) || !channel_ok(channel) || len > 0xFFFFu)
		return NB_TURN_E_INVAL;
	frame = NB_TURN_CHANDATA_HDR + (tcp ? pad4(len) : len);
	if (cap < frame)
		return NB_TURN_E_NOSPACE;
	if (len > 0)
		memmove(buf + NB_TURN_CHANDATA_HDR, data, len); /* data may be in buf */
	nb_put_u16be(buf, channel);
	nb_put_u16be(buf + 2, (uint16_t)len);
	memset(buf + NB_TURN_CHANDATA_HDR + len, 0, frame - NB_TURN_CHANDATA_HDR - len);
	return (ssize_t)frame;
}

ssize_t nb_turn_frame_len(const uint8_t *buf, size_t len)
{
	ssize_t n;

	if (len < 4)
		return 0;
	if (buf == NULL)
		return NB_TURN_E_INVAL;
	if (nb_turn_is_chandata(buf, len)) {
		/* §12.5: "over TCP and TLS-over-TCP, the ChannelData message
		 * MUST be padded to a multiple of four bytes". */
		return (ssize_t)(NB_TURN_CHANDATA_HDR + pad4(nb_get_u16be(buf + 2)));
	}
	n = nb_stun_frame_len(buf, len);
	return n < 0 ? NB_TURN_E_NOT_CHANDATA : n;
}

/* ---- Credentials ---------------------------------------------------------- */

int nb_turn_long_term_key(const uint8_t *username, size_t username_len, const uint8_t *realm,
			  size_t realm_len, const uint8_t *password, size_t password_len,
			  uint8_t ret[NB_TURN_KEY_LEN])
{
	static const uint8_t colon = ':';
	uint8_t key[EVP_MAX_MD_SIZE];
	unsigned int key_len = 0;
	EVP_MD *md = NULL;
	EVP_MD_CTX *ctx = NULL;
	int rc = NB_TURN_E_CRYPTO;

	if (ret == NULL || (username == NULL && username_len != 0) ||
	    (realm == NULL && realm_len != 0) || (password == NULL && password_len != 0))
		return NB_TURN_E_INVAL;
	/* RFC 8489 §9.2.2: "key = MD5(username ":" OpaqueString(realm) ":"
	 * OpaqueString(password))". The caller passes the prepared strings. */
	md = EVP_MD_fetch(NULL, "MD5", NULL);
	if (md == NULL)
		goto fail;
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		goto fail;
	if (!EVP_DigestInit_ex2(ctx, md, NULL))
		goto fail;
	if ((username_len > 0 && !EVP_DigestUpdate(ctx, username, username_len)) ||
	    !EVP_DigestUpdate(ctx, &colon, 1) ||
	    (realm_len > 0 && !EVP_DigestUpdate(ctx, realm, realm_len)) ||
	    !EVP_DigestUpdate(ctx, &colon, 1) ||
	    (password_len > 0 && !EVP_DigestUpdate(ctx, password, password_len)))
		goto fail;
	if (!EVP_DigestFinal_ex(ctx, key, &key_len) || key_len != NB_TURN_KEY_LEN)
		goto fail;
	memcpy(ret, key, NB_TURN_KEY_LEN);
	rc = 0;
fail:
	if (rc != 0)
		ERR_clear_error();
	OPENSSL_cleanse(key, sizeof(key));
	EVP_MD_CTX_free(ctx);
	EVP_MD_free(md);
	return rc;
}

ssize_t nb_turn_rest_username(uint64_t expiry, const char *user, char *ret, size_t cap)
{
	char digits[TURN_MAX_DIGITS];
	size_t nd = 0, ulen, total;

	if (user == NULL || ret == NULL)
		return NB_TURN_E_INVAL;
	ulen = strnlen(user, NB_TURN_REST_USER_MAX + 1);
	if (ulen == 0)
		return NB_TURN_E_INVAL;
	for (size_t i = 0; i < ulen; i++) {
		unsigned char c = (unsigned char)user[i];
		if (c < 0x20 || c == 0x7F)
			return NB_TURN_E_INVAL;
	}
	do {
		digits[nd++] = (char)('0' + expiry % 10);
		expiry /= 10;
	} while (expiry != 0);
	if (ulen > NB_TURN_REST_USER_MAX || NB_TURN_REST_USER_MAX - ulen < nd + 1)
		return NB_TURN_E_INVAL;
	total = nd + 1 + ulen;
	if (cap <= total)
		return NB_TURN_E_NOSPACE;
	for (size_t i = 0; i < nd; i++)
		ret[i] = digits[nd - 1 - i];
	ret[nd] = ':';
	memcpy(ret + nd + 1, user, ulen);
	ret[total] = '\0';
	return (ssize_t)total;
}

int nb_turn_rest_password(const uint8_t *secret, size_t secret_len, const uint8_t *username,
			  size_t username_len, char ret[NB_TURN_REST_PASSWORD_LEN + 1])
{
	/* EVP_MAC_init() treats a NULL key as "keep the old one". */
	static const uint8_t empty[1];
	uint8_t mac[TURN_SHA1_LEN];
	unsigned char b64[NB_TURN_REST_PASSWORD_LEN + 1];
	EVP_MAC *hmac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	size_t n = 0;
	int rc = NB_TURN_E_CRYPTO;

	if (ret == NULL || (secret == NULL && secret_len != 0) ||
	    (username == NULL && username_len != 0))
		return NB_TURN_E_INVAL;
	/* coturn (use-auth-secret): "password = base64(hmac-sha1(secret,
	 * username))". */
	hmac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
	if (hmac == NULL)
		goto fail;
	ctx = EVP_MAC_CTX_new(hmac);
	if (ctx == NULL)
		goto fail;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA1", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_init(ctx, secret_len > 0 ? secret : empty, secret_len, params))
		goto fail;
	if (username_len > 0 && !EVP_MAC_update(ctx, username, username_len))
		goto fail;
	if (!EVP_MAC_final(ctx, mac, &n, sizeof(mac)) || n != sizeof(mac))
		goto fail;
	if (EVP_EncodeBlock(b64, mac, (int)sizeof(mac)) != NB_TURN_REST_PASSWORD_LEN)
		goto fail;
	memcpy(ret, b64, NB_TURN_REST_PASSWORD_LEN);
	ret[NB_TURN_REST_PASSWORD_LEN] = '\0';
	rc = 0;
fail:
	if (rc != 0)
		ERR_clear_error();
	OPENSSL_cleanse(mac, sizeof(mac));
	OPENSSL_cleanse(b64, sizeof(b64));
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(hmac);
	return rc;
}

int nb_turn_rest_split(const uint8_t *username, size_t len, uint64_t *ret_expiry,
		       const uint8_t **ret_user, size_t *ret_user_len)
{
	uint64_t v = 0;
	size_t i;

	if (username == NULL)
		return NB_TURN_E_CREDENTIALS;
	for (i = 0; i < len && username[i] != ':'; i++) {
		unsigned d;

		if (username[i] < '0' || username[i] > '9' || i >= TURN_MAX_DIGITS)
			return NB_TURN_E_CREDENTIALS;
		d = (unsigned)(username[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return NB_TURN_E_CREDENTIALS;
		v = v * 10 + d;
	}
	if (i == 0 || i == len)
		return NB_TURN_E_CREDENTIALS; /* no digits, or no ':' */
	if (ret_expiry != NULL)
		*ret_expiry = v;
	if (ret_user != NULL)
		*ret_user = username + i + 1;
	if (ret_user_len != NULL)
		*ret_user_len = len - i - 1;
	return 0;
}

const char *nb_turn_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case NB_TURN_E_TRUNCATED:
		return "truncated";
	case NB_TURN_E_NOT_CHANDATA:
		return "not ChannelData";
	case NB_TURN_E_BAD_ATTR:
		return "bad TURN attribute";
	case NB_TURN_E_TOO_MANY:
		return "too many XOR-PEER-ADDRESS";
	case NB_TURN_E_NOSPACE:
		return "no space";
	case NB_TURN_E_INVAL:
		return "invalid argument";
	case NB_TURN_E_CRYPTO:
		return "crypto failure";
	case NB_TURN_E_CREDENTIALS:
		return "malformed REST username";
	default:
		return "unknown error";
	}
}
