/* proto/stun.c - STUN message codec: RFC 8489, the RFC 5780 attributes, RFC 3489 read-only.
 *
 * Pure: no I/O, no malloc of our own, no mutable globals. HMACs come from
 * OpenSSL libcrypto (EVP_MAC, streamed, so integrity is computed over a
 * copied header followed by the caller's bytes: nothing is patched in place).
 *
 * Choices made here (see also proto/stun.h):
 * - Sizes. nb_stun_decode() accepts any message whose length field matches
 *   len, i.e. up to 20 + 65532 bytes, so a TCP framer can hand it a whole
 *   frame (nb_stun_frame_len()). Datagram paths cap earlier: the broker's UDP
 *   shell only passes buffers of at most NB_STUN_MAX_MSG bytes. len larger
 *   than any length field can describe is NB_STUN_E_TOO_BIG.
 * - Padding. Every attribute value must be followed by its padding to a
 *   4-byte boundary inside the message; the padding bytes themselves are not
 *   checked. RFC 8489 §14: "The padding bits MUST be set to zero on sending
 *   and MUST be ignored by the receiver."
 *   (RFC 5769 §2.1 pads USERNAME with spaces). RFC 3489 required attribute
 *   lengths to be multiples of 4, so one rule covers classic messages too.
 * - Order. RFC 8489 §14.5: "With the exception of the MESSAGE-INTEGRITY-SHA256
 *   and FINGERPRINT attributes, which appear after MESSAGE-INTEGRITY, agents
 *   MUST ignore all other attributes that follow MESSAGE-INTEGRITY."
 *   §14.6 says the same of MESSAGE-INTEGRITY-SHA256 with only FINGERPRINT
 *   after it, and §14.7: "When present, the FINGERPRINT attribute MUST be the
 *   last attribute in the message". We read this strictly: such attributes are
 *   not ignored but make the message NB_STUN_E_ORDER. Allowed tails are
 *   [MI] [MI-SHA256] [FINGERPRINT], each at most once, in that order.
 * - Duplicates. RFC 8489 §14: "only the first occurrence needs to be
 *   processed by a receiver". Later copies are still validated, then ignored.
 * - Classic (RFC 3489) messages, recognised by the missing magic cookie: the
 *   same TLV rules apply. XOR-MAPPED-ADDRESS has no cookie to XOR with, so
 *   it is skipped (neither decoded nor reported as unknown), and the encoder
 *   refuses it. MESSAGE-INTEGRITY is computed the RFC 8489 way for them too
 *   (RFC 3489 §11.2.8's zero padding to 64 bytes is not implemented; we never
 *   authenticate classic clients).
 * - RESPONSE-PORT (RFC 5780 §7.5): value length 2 (stuntman) or 4 (coturn:
 *   port in the first 2 bytes, 2 bytes RFFU) are both accepted. Encode it as
 *   nb_stun_enc_u32(e, NB_STUN_ATTR_RESPONSE_PORT, (uint32_t)port << 16).
 * - RESPONSE-ADDRESS is recorded as present only, never parsed: we never
 *   honour it.
 */
#include "proto/stun.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "common/bytes.h"

#define STUN_ATTR_HDR_LEN 4
#define STUN_MI_LEN 20        /* RFC 8489 §14.5: HMAC-SHA1, 20 bytes */
#define STUN_MI256_MIN 16     /* RFC 8489 §14.6: "at least 16 bytes" */
#define STUN_MI256_MAX 32     /* "The value will be at most 32 bytes" */
#define STUN_FP_LEN 4         /* RFC 8489 §14.7: CRC-32, 32 bits */
#define STUN_MAX_BODY 0xFFFCu /* largest length field that is a multiple of 4 */
#define STUN_FAMILY_IPV4 0x01 /* RFC 8489 §14.1 */
#define STUN_FAMILY_IPV6 0x02
#define STUN_COMPREHENSION_OPTIONAL 0x8000u /* RFC 8489 §14: 0x8000-0xFFFF */

/* CRC-32 (ISO 3309 / ITU-T V.42, reflected polynomial 0xEDB88320), as
 * FINGERPRINT uses (RFC 8489 §14.7). Generated once; a literal, not state. */
static const uint32_t crc32_table[256] = {
	0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
	0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
	0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
	0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
	0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
	0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
	0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
	0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
	0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
	0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
	0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
	0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
	0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
	0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
	0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
	0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
	0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
	0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
	0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
	0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
	0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
	0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
	0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
	0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
	0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
	0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
	0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
	0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
	0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
	0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
	0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
	0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
	0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
	0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
	0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
	0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
	0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
	0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
	0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
	0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
	0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
	0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
	0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

static uint32_t crc32_update(uint32_t c, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		c = crc32_table[(c ^ buf[i]) & 0xFFu] ^ (c >> 8);
	return c;
}

uint32_t nb_crc32(const uint8_t *buf, size_t len)
{
	if (buf == NULL)
		len = 0;
	return crc32_update(0xFFFFFFFFu, buf, len) ^ 0xFFFFFFFFu;
}

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

/* HMAC over hdr (a 20-byte header copy) followed by body. digest is "SHA1"
 * or "SHA256"; out_len is the exact digest size. Returns 0 or -1. */
static int stun_hmac(const char *digest, const uint8_t *key, size_t key_len, const uint8_t *hdr,
		     const uint8_t *body, size_t body_len, uint8_t *out, size_t out_len)
{
	/* EVP_MAC_init() treats a NULL key as "keep the old one". */
	static const uint8_t empty_key[1];
	EVP_MAC *mac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	size_t n = 0;
	int rc = -1;

	mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
	if (mac == NULL)
		goto fail;
	ctx = EVP_MAC_CTX_new(mac);
	if (ctx == NULL)
		goto fail;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_init(ctx, key_len > 0 ? key : empty_key, key_len, params))
		goto fail;
	if (!EVP_MAC_update(ctx, hdr, NB_STUN_HDR_LEN))
		goto fail;
	if (body_len > 0 && !EVP_MAC_update(ctx, body, body_len))
		goto fail;
	if (!EVP_MAC_final(ctx, out, &n, out_len) || n != out_len)
		goto fail;
	rc = 0;
fail:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return rc;
}

/* ---- Decoder ------------------------------------------------------------ */

bool nb_stun_is_stun(const uint8_t *buf, size_t len)
{
	size_t body;

	if (buf == NULL || len < NB_STUN_HDR_LEN)
		return false;
	/* RFC 7983 §7: "If the value of the first byte is in between 0 and 3
	 * (inclusive), then the packet is STUN." */
	if (buf[0] > 3)
		return false;
	body = nb_get_u16be(buf + 2);
	return body % 4 == 0 && len - NB_STUN_HDR_LEN == body;
}

ssize_t nb_stun_frame_len(const uint8_t *buf, size_t len)
{
	size_t body;

	if (len < 4)
		return 0;
	if (buf == NULL || (buf[0] & 0xC0) != 0)
		return NB_STUN_E_NOT_STUN;
	body = nb_get_u16be(buf + 2);
	if (body % 4 != 0)
		return NB_STUN_E_NOT_STUN;
	return (ssize_t)(NB_STUN_HDR_LEN + body);
}

/* MAPPED-ADDRESS family of attributes (RFC 8489 §14.1, §14.2):
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |0 0 0 0 0 0 0 0|    Family     |         (X-)Port              |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |           (X-)Address (32 bits or 128 bits)                   |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * mask, when not NULL, is the 16 bytes cookie || transaction ID: "X-Port is
 * computed by XOR'ing the mapped port with the most significant 16 bits of
 * the magic cookie", IPv4 with the cookie, IPv6 with cookie || tid. */
static int parse_addr(struct nb_addr *ret, const uint8_t *v, size_t n, const uint8_t *mask)
{
	struct nb_addr a;
	size_t ip_len;

	if (n < 4)
		return NB_STUN_E_BAD_ATTR;
	if (v[1] == STUN_FAMILY_IPV4)
		ip_len = 4;
	else if (v[1] == STUN_FAMILY_IPV6)
		ip_len = 16;
	else
		return NB_STUN_E_BAD_ATTR;
	if (n - 4 != ip_len)
		return NB_STUN_E_BAD_ATTR;

	memset(&a, 0, sizeof(a));
	a.family = ip_len == 4 ? NB_AF_INET : NB_AF_INET6;
	a.port = nb_get_u16be(v + 2);
	memcpy(a.ip, v + 4, ip_len);
	if (mask != NULL) {
		a.port ^= nb_get_u16be(mask);
		for (size_t i = 0; i < ip_len; i++)
			a.ip[i] ^= mask[i];
	}
	*ret = a;
	return 0;
}

/* Parse an address attribute; keep it only if it is the first of its type. */
static int take_addr(struct nb_stun_msg *m, uint32_t bit, struct nb_addr *dst, const uint8_t *v,
		     size_t n, const uint8_t *mask)
{
	struct nb_addr a;
	int rc = parse_addr(&a, v, n, mask);

	if (rc < 0)
		return rc;
	if (!(m->present & bit)) {
		*dst = a;
		m->present |= bit;
	}
	return 0;
}

static void add_unknown_required(struct nb_stun_msg *m, uint16_t type)
{
	for (size_t i = 0; i < m->n_unknown_required; i++)
		if (m->unknown_required[i] == type)
			return;
	/* Report the first NB_STUN_MAX_UNKNOWN; the 420 needs no more. */
	if (m->n_unknown_required < NB_STUN_MAX_UNKNOWN)
		m->unknown_required[m->n_unknown_required++] = type;
}

/* One attribute: type, value v of n bytes, header at buf + off. */
static int decode_attr(struct nb_stun_msg *m, const uint8_t *buf, size_t off, uint16_t type,
		       const uint8_t *v, size_t n)
{
	switch (type) {
	case NB_STUN_ATTR_MAPPED_ADDRESS:
		return take_addr(m, NB_STUN_HAS_MAPPED, &m->mapped, v, n, NULL);
	case NB_STUN_ATTR_XOR_MAPPED_ADDRESS:
		if (m->classic)
			return 0; /* no cookie to XOR with: skipped, see top */
		return take_addr(m, NB_STUN_HAS_XOR_MAPPED, &m->xor_mapped, v, n, buf + 4);
	case NB_STUN_ATTR_SOURCE_ADDRESS:
		return take_addr(m, NB_STUN_HAS_SOURCE, &m->source, v, n, NULL);
	case NB_STUN_ATTR_CHANGED_ADDRESS:
		return take_addr(m, NB_STUN_HAS_CHANGED, &m->changed, v, n, NULL);
	case NB_STUN_ATTR_RESPONSE_ORIGIN:
		return take_addr(m, NB_STUN_HAS_RESPONSE_ORIGIN, &m->response_origin, v, n, NULL);
	case NB_STUN_ATTR_OTHER_ADDRESS:
		return take_addr(m, NB_STUN_HAS_OTHER_ADDRESS, &m->other_address, v, n, NULL);
	case NB_STUN_ATTR_RESPONSE_ADDRESS:
		m->present |= NB_STUN_HAS_RESPONSE_ADDRESS; /* never honoured, not parsed */
		return 0;
	case NB_STUN_ATTR_CHANGE_REQUEST:
		/* RFC 5780 §7.2: a 32-bit value, flags in bits 0x4 and 0x2. */
		if (n != 4)
			return NB_STUN_E_BAD_ATTR;
		if (!(m->present & NB_STUN_HAS_CHANGE_REQUEST)) {
			m->change_flags =
				nb_get_u32be(v) & (NB_STUN_CHANGE_IP | NB_STUN_CHANGE_PORT);
			m->present |= NB_STUN_HAS_CHANGE_REQUEST;
		}
		return 0;
	case NB_STUN_ATTR_RESPONSE_PORT:
		/* RFC 5780 §7.5: a 16-bit port followed by 2 bytes of padding;
		 * stuntman sends length 2, coturn length 4. */
		if (n != 2 && n != 4)
			return NB_STUN_E_BAD_ATTR;
		if (!(m->present & NB_STUN_HAS_RESPONSE_PORT)) {
			m->response_port = nb_get_u16be(v);
			m->present |= NB_STUN_HAS_RESPONSE_PORT;
		}
		return 0;
	case NB_STUN_ATTR_PADDING:
		if (!(m->present & NB_STUN_HAS_PADDING)) {
			m->padding_len = n;
			m->present |= NB_STUN_HAS_PADDING;
		}
		return 0;
	case NB_STUN_ATTR_USERNAME:
		if (n > NB_STUN_MAX_USERNAME)
			return NB_STUN_E_BAD_ATTR;
		if (!(m->present & NB_STUN_HAS_USERNAME)) {
			m->username = v;
			m->username_len = n;
			m->present |= NB_STUN_HAS_USERNAME;
		}
		return 0;
	case NB_STUN_ATTR_SOFTWARE:
		if (n > NB_STUN_MAX_SOFTWARE)
			return NB_STUN_E_BAD_ATTR;
		if (!(m->present & NB_STUN_HAS_SOFTWARE)) {
			m->software = v;
			m->software_len = n;
			m->present |= NB_STUN_HAS_SOFTWARE;
		}
		return 0;
	case NB_STUN_ATTR_ERROR_CODE: {
		/* RFC 8489 §14.8: 21 reserved bits, Class (3 bits), Number
		 * (8 bits), reason phrase. "The Class represents the hundreds
		 * digit of the error code. The value MUST be between 3 and 6.
		 * The Number represents the binary encoding of the error code
		 * modulo 100, and its value MUST be between 0 and 99." */
		unsigned cls, num;

		if (n < 4 || n - 4 > NB_STUN_MAX_REASON)
			return NB_STUN_E_BAD_ATTR;
		cls = v[2] & 0x7u;
		num = v[3];
		if (cls < 3 || cls > 6 || num > 99)
			return NB_STUN_E_BAD_ATTR;
		if (!(m->present & NB_STUN_HAS_ERROR_CODE)) {
			m->error_code = (uint16_t)(cls * 100 + num);
			m->reason = v + 4;
			m->reason_len = n - 4;
			m->present |= NB_STUN_HAS_ERROR_CODE;
		}
		return 0;
	}
	case NB_STUN_ATTR_UNKNOWN_ATTRIBUTES:
		/* RFC 8489 §14.9: a list of 16-bit values. */
		if (n % 2 != 0)
			return NB_STUN_E_BAD_ATTR;
		if (!(m->present & NB_STUN_HAS_UNKNOWN_ATTRS)) {
			size_t k = n / 2;
			if (k > NB_STUN_MAX_UNKNOWN)
				k = NB_STUN_MAX_UNKNOWN;
			for (size_t i = 0; i < k; i++)
				m->unknown_attrs[i] = nb_get_u16be(v + 2 * i);
			m->n_unknown_attrs = k;
			m->present |= NB_STUN_HAS_UNKNOWN_ATTRS;
		}
		return 0;
	case NB_STUN_ATTR_MESSAGE_INTEGRITY:
		if (n != STUN_MI_LEN)
			return NB_STUN_E_BAD_ATTR;
		m->integrity_off = off;
		m->present |= NB_STUN_HAS_INTEGRITY;
		return 0;
	case NB_STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
		/* RFC 8489 §14.6: "The value will be at most 32 bytes, but it
		 * MUST be at least 16 bytes and MUST be a multiple of 4 bytes." */
		if (n < STUN_MI256_MIN || n > STUN_MI256_MAX || n % 4 != 0)
			return NB_STUN_E_BAD_ATTR;
		m->integrity_sha256_off = off;
		m->integrity_sha256_len = n;
		m->present |= NB_STUN_HAS_INTEGRITY_SHA256;
		return 0;
	case NB_STUN_ATTR_FINGERPRINT:
		if (n != STUN_FP_LEN)
			return NB_STUN_E_BAD_ATTR;
		m->present |= NB_STUN_HAS_FINGERPRINT;
		return 0;
	case NB_STUN_ATTR_PASSWORD:       /* RFC 3489; known and ignored */
	case NB_STUN_ATTR_REFLECTED_FROM: /* RFC 3489; known and ignored */
		return 0;
	default:
		/* RFC 8489 §14: "Attributes with type values between 0x0000
		 * and 0x7FFF are comprehension-required attributes"; the caller
		 * answers 420 (§7.3.1). Comprehension-optional ones are skipped. */
		if (type < STUN_COMPREHENSION_OPTIONAL)
			add_unknown_required(m, type);
		return 0;
	}
}

ssize_t nb_stun_decode(struct nb_stun_msg *ret, const uint8_t *buf, size_t len)
{
	struct nb_stun_msg m;
	size_t body, off, fp_off = 0;
	uint16_t type;
	bool seen_mi = false, seen_mi256 = false, seen_fp = false;

	if (ret == NULL || (buf == NULL && len != 0))
		return NB_STUN_E_INVAL;
	if (len < NB_STUN_HDR_LEN)
		return NB_STUN_E_TRUNCATED;
	if (len - NB_STUN_HDR_LEN > 0xFFFFu)
		return NB_STUN_E_TOO_BIG;
	/* RFC 8489 §5: "The most significant 2 bits of every STUN message
	 * MUST be zeroes." */
	if ((buf[0] & 0xC0) != 0)
		return NB_STUN_E_NOT_STUN;
	/* "The message length MUST contain the size of the message in bytes,
	 * not including the 20-byte STUN header. Since all STUN attributes are
	 * padded to a multiple of 4 bytes, the last 2 bits of this field are
	 * always zero." */
	body = nb_get_u16be(buf + 2);
	if (body % 4 != 0)
		return NB_STUN_E_NOT_STUN;
	if (len - NB_STUN_HDR_LEN < body)
		return NB_STUN_E_TRUNCATED;
	if (len - NB_STUN_HDR_LEN > body)
		return NB_STUN_E_NOT_STUN; /* trailing bytes: not one STUN message */

	memset(&m, 0, sizeof(m));
	type = nb_get_u16be(buf);
	m.type = type;
	/* RFC 8489 §5: M11..M7 C1 M6..M4 C0 M3..M0. */
	m.method = (uint16_t)((type & 0x000Fu) | ((type & 0x00E0u) >> 1) | ((type & 0x3E00u) >> 2));
	m.cls = (uint16_t)(type & 0x0110u);
	m.length = (uint16_t)body;
	m.classic = nb_get_u32be(buf + 4) != NB_STUN_MAGIC_COOKIE;
	if (m.classic)
		memcpy(m.tid, buf + 4, 16);
	else
		memcpy(m.tid, buf + 8, NB_STUN_TID_LEN);

	for (off = NB_STUN_HDR_LEN; off < len;) {
		size_t n, step;
		uint16_t at;
		int rc;

		if (len - off < STUN_ATTR_HDR_LEN)
			return NB_STUN_E_BAD_ATTR;
		at = nb_get_u16be(buf + off);
		n = nb_get_u16be(buf + off + 2);
		step = STUN_ATTR_HDR_LEN + pad4(n); /* value and its padding */
		if (len - off < step)
			return NB_STUN_E_BAD_ATTR;

		if (seen_fp)
			return NB_STUN_E_ORDER;
		if (seen_mi256 && at != NB_STUN_ATTR_FINGERPRINT)
			return NB_STUN_E_ORDER;
		if (seen_mi && at != NB_STUN_ATTR_FINGERPRINT &&
		    at != NB_STUN_ATTR_MESSAGE_INTEGRITY_SHA256)
			return NB_STUN_E_ORDER;

		rc = decode_attr(&m, buf, off, at, buf + off + STUN_ATTR_HDR_LEN, n);
		if (rc < 0)
			return rc;
		if (at == NB_STUN_ATTR_MESSAGE_INTEGRITY) {
			seen_mi = true;
		} else if (at == NB_STUN_ATTR_MESSAGE_INTEGRITY_SHA256) {
			seen_mi256 = true;
		} else if (at == NB_STUN_ATTR_FINGERPRINT) {
			seen_fp = true;
			fp_off = off;
		}
		off += step;
	}

	/* RFC 8489 §14.7: "The value of the attribute is computed as the CRC-32
	 * of the STUN message up to (but excluding) the FINGERPRINT attribute
	 * as defined in ITU V.42, XOR'ed with the 32-bit value 0x5354554e".
	 * FINGERPRINT is last, so the length field needs no adjusting. */
	if (seen_fp) {
		uint32_t want = nb_crc32(buf, fp_off) ^ NB_STUN_FINGERPRINT_XOR;
		if (nb_get_u32be(buf + fp_off + STUN_ATTR_HDR_LEN) != want)
			return NB_STUN_E_FINGERPRINT;
	}

	*ret = m;
	return (ssize_t)len;
}

int nb_stun_check_integrity(const struct nb_stun_msg *msg, const uint8_t *buf, size_t len,
			    const uint8_t *key, size_t key_len)
{
	uint8_t hdr[NB_STUN_HDR_LEN];
	uint8_t mac[STUN_MI256_MAX];
	const char *digest;
	size_t off, mac_len, full_len, adj;
	uint16_t type;

	if (msg == NULL || buf == NULL || (key == NULL && key_len != 0))
		return NB_STUN_E_INTEGRITY;
	if (msg->present & NB_STUN_HAS_INTEGRITY_SHA256) {
		type = NB_STUN_ATTR_MESSAGE_INTEGRITY_SHA256;
		off = msg->integrity_sha256_off;
		mac_len = msg->integrity_sha256_len;
		full_len = 32;
		digest = "SHA256";
	} else if (msg->present & NB_STUN_HAS_INTEGRITY) {
		type = NB_STUN_ATTR_MESSAGE_INTEGRITY;
		off = msg->integrity_off;
		mac_len = STUN_MI_LEN;
		full_len = STUN_MI_LEN;
		digest = "SHA1";
	} else {
		return NB_STUN_E_INTEGRITY;
	}

	/* msg must describe this very buffer; re-check what we rely on. */
	if (mac_len < STUN_MI256_MIN || mac_len > full_len)
		return NB_STUN_E_INTEGRITY;
	if (len < NB_STUN_HDR_LEN || len - NB_STUN_HDR_LEN > 0xFFFFu || off < NB_STUN_HDR_LEN ||
	    off > len || len - off < STUN_ATTR_HDR_LEN + mac_len)
		return NB_STUN_E_INTEGRITY;
	if (nb_get_u16be(buf + off) != type || nb_get_u16be(buf + off + 2) != mac_len)
		return NB_STUN_E_INTEGRITY;

	/* RFC 8489 §14.5: "the Length field in the STUN header must be adjusted
	 * to point to the end of the MESSAGE-INTEGRITY attribute prior to
	 * calculating the HMAC over the STUN message, up to and including the
	 * attribute preceding the MESSAGE-INTEGRITY attribute." We adjust a copy. */
	adj = off - NB_STUN_HDR_LEN + STUN_ATTR_HDR_LEN + mac_len;
	memcpy(hdr, buf, NB_STUN_HDR_LEN);
	nb_put_u16be(hdr + 2, (uint16_t)adj);
	if (stun_hmac(digest, key, key_len, hdr, buf + NB_STUN_HDR_LEN, off - NB_STUN_HDR_LEN, mac,
		      full_len) < 0)
		return NB_STUN_E_INTEGRITY;
	if (CRYPTO_memcmp(mac, buf + off + STUN_ATTR_HDR_LEN, mac_len) != 0)
		return NB_STUN_E_INTEGRITY;
	return 0;
}

/* ---- Encoder ------------------------------------------------------------ */

enum {
	ENC_SEEN_MI = 1u << 0,
	ENC_SEEN_MI256 = 1u << 1,
	ENC_SEEN_FP = 1u << 2,
};

static bool enc_valid(const struct nb_stun_enc *e)
{
	return e != NULL && e->buf != NULL && e->len >= NB_STUN_HDR_LEN && e->len <= e->cap &&
	       e->len - NB_STUN_HDR_LEN <= STUN_MAX_BODY && e->len % 4 == 0;
}

/* Which of the trailing attributes are already in the message. */
static unsigned enc_seen(const struct nb_stun_enc *e)
{
	unsigned seen = 0;

	for (size_t off = NB_STUN_HDR_LEN; e->len - off >= STUN_ATTR_HDR_LEN;) {
		uint16_t t = nb_get_u16be(e->buf + off);
		size_t step = STUN_ATTR_HDR_LEN + pad4(nb_get_u16be(e->buf + off + 2));

		if (t == NB_STUN_ATTR_MESSAGE_INTEGRITY)
			seen |= ENC_SEEN_MI;
		else if (t == NB_STUN_ATTR_MESSAGE_INTEGRITY_SHA256)
			seen |= ENC_SEEN_MI256;
		else if (t == NB_STUN_ATTR_FINGERPRINT)
			seen |= ENC_SEEN_FP;
		if (e->len - off < step)
			break;
		off += step;
	}
	return seen;
}

/* Check that an attribute of type with a vlen-byte value may be appended and
 * fits. Writes nothing. */
static int enc_begin(const struct nb_stun_enc *e, uint16_t type, size_t vlen)
{
	size_t cap, need;
	unsigned seen;

	if (!enc_valid(e) || vlen > 0xFFFFu)
		return NB_STUN_E_INVAL;
	/* The order the decoder insists on (see the top of this file). */
	seen = enc_seen(e);
	if (seen & ENC_SEEN_FP)
		return NB_STUN_E_INVAL;
	if ((seen & ENC_SEEN_MI256) && type != NB_STUN_ATTR_FINGERPRINT)
		return NB_STUN_E_INVAL;
	if ((seen & ENC_SEEN_MI) && type != NB_STUN_ATTR_FINGERPRINT &&
	    type != NB_STUN_ATTR_MESSAGE_INTEGRITY_SHA256)
		return NB_STUN_E_INVAL;

	/* The caller's capacity, and what a 16-bit length field can describe. */
	cap = e->cap;
	if (cap > NB_STUN_HDR_LEN + STUN_MAX_BODY)
		cap = NB_STUN_HDR_LEN + STUN_MAX_BODY;
	need = STUN_ATTR_HDR_LEN + pad4(vlen);
	if (cap - e->len < need)
		return NB_STUN_E_NOSPACE;
	return 0;
}

/* The value area of the attribute enc_begin() accepted. */
static uint8_t *enc_value(struct nb_stun_enc *e)
{
	return e->buf + e->len + STUN_ATTR_HDR_LEN;
}

/* Write the attribute header and zero padding for a value already in place
 * at enc_value(), and grow the message and its length field. */
static void enc_commit(struct nb_stun_enc *e, uint16_t type, size_t vlen)
{
	uint8_t *p = e->buf + e->len;
	size_t padded = pad4(vlen);

	nb_put_u16be(p, type);
	nb_put_u16be(p + 2, (uint16_t)vlen);
	memset(p + STUN_ATTR_HDR_LEN + vlen, 0, padded - vlen);
	e->len += STUN_ATTR_HDR_LEN + padded;
	nb_put_u16be(e->buf + 2, (uint16_t)(e->len - NB_STUN_HDR_LEN));
}

int nb_stun_enc_init(struct nb_stun_enc *e, uint8_t *buf, size_t cap, uint16_t type,
		     const uint8_t *tid, bool classic)
{
	if (e == NULL || buf == NULL || tid == NULL || (type & 0xC000u) != 0)
		return NB_STUN_E_INVAL;
	/* A classic tid that starts with the cookie would read back as RFC 8489. */
	if (classic && nb_get_u32be(tid) == NB_STUN_MAGIC_COOKIE)
		return NB_STUN_E_INVAL;
	if (cap < NB_STUN_HDR_LEN)
		return NB_STUN_E_NOSPACE;
	nb_put_u16be(buf, type);
	nb_put_u16be(buf + 2, 0);
	if (classic) {
		memcpy(buf + 4, tid, 16);
	} else {
		nb_put_u32be(buf + 4, NB_STUN_MAGIC_COOKIE);
		memcpy(buf + 8, tid, NB_STUN_TID_LEN);
	}
	e->buf = buf;
	e->cap = cap;
	e->len = NB_STUN_HDR_LEN;
	e->classic = classic;
	return 0;
}

int nb_stun_enc_attr(struct nb_stun_enc *e, uint16_t type, const void *val, size_t len)
{
	int rc;

	if (val == NULL && len != 0)
		return NB_STUN_E_INVAL;
	rc = enc_begin(e, type, len);
	if (rc < 0)
		return rc;
	if (len > 0)
		memmove(enc_value(e), val, len); /* val may point into e->buf */
	enc_commit(e, type, len);
	return 0;
}

static int enc_addr_common(struct nb_stun_enc *e, uint16_t type, const struct nb_addr *a,
			   bool xor_it)
{
	uint8_t v[20];
	size_t ip_len;
	uint16_t port;

	if (a == NULL)
		return NB_STUN_E_INVAL;
	if (a->family == NB_AF_INET)
		ip_len = 4;
	else if (a->family == NB_AF_INET6)
		ip_len = 16;
	else
		return NB_STUN_E_INVAL;

	v[0] = 0;
	v[1] = ip_len == 4 ? STUN_FAMILY_IPV4 : STUN_FAMILY_IPV6;
	port = a->port;
	memcpy(v + 4, a->ip, ip_len);
	if (xor_it) {
		/* RFC 8489 §14.2: the mask is cookie || transaction ID, which
		 * is bytes 4..19 of the header we wrote. */
		if (!enc_valid(e))
			return NB_STUN_E_INVAL;
		port ^= (uint16_t)(NB_STUN_MAGIC_COOKIE >> 16);
		for (size_t i = 0; i < ip_len; i++)
			v[4 + i] ^= e->buf[4 + i];
	}
	nb_put_u16be(v + 2, port);
	return nb_stun_enc_attr(e, type, v, 4 + ip_len);
}

int nb_stun_enc_addr(struct nb_stun_enc *e, uint16_t type, const struct nb_addr *a)
{
	return enc_addr_common(e, type, a, false);
}

int nb_stun_enc_xor_addr(struct nb_stun_enc *e, uint16_t type, const struct nb_addr *a)
{
	if (e == NULL || e->classic)
		return NB_STUN_E_INVAL;
	return enc_addr_common(e, type, a, true);
}

int nb_stun_enc_u32(struct nb_stun_enc *e, uint16_t type, uint32_t v)
{
	uint8_t b[4];

	nb_put_u32be(b, v);
	return nb_stun_enc_attr(e, type, b, sizeof(b));
}

int nb_stun_enc_error(struct nb_stun_enc *e, uint16_t code, const char *reason)
{
	size_t rlen;
	uint8_t *v;
	int rc;

	if (code < 300 || code > 699)
		return NB_STUN_E_INVAL;
	if (reason == NULL)
		reason = "";
	rlen = strnlen(reason, NB_STUN_MAX_REASON + 1);
	if (rlen > NB_STUN_MAX_REASON)
		return NB_STUN_E_INVAL;
	rc = enc_begin(e, NB_STUN_ATTR_ERROR_CODE, 4 + rlen);
	if (rc < 0)
		return rc;
	v = enc_value(e);
	v[0] = 0;
	v[1] = 0;
	v[2] = (uint8_t)(code / 100);
	v[3] = (uint8_t)(code % 100);
	memcpy(v + 4, reason, rlen);
	enc_commit(e, NB_STUN_ATTR_ERROR_CODE, 4 + rlen);
	return 0;
}

int nb_stun_enc_unknown(struct nb_stun_enc *e, const uint16_t *types, size_t n)
{
	size_t count, vlen;
	uint8_t *v;
	int rc;

	if (types == NULL || n == 0 || n > 0xFFFFu / 2 - 1)
		return NB_STUN_E_INVAL;
	/* RFC 3489 §11.2.10: "In the event that the number of unknown
	 * attributes is an odd number, one of the attributes MUST be repeated
	 * in the list, so that the total length of the list is a multiple of 4
	 * bytes." RFC 8489 pads instead. */
	count = n;
	if (e != NULL && e->classic && n % 2 != 0)
		count++;
	vlen = 2 * count;
	rc = enc_begin(e, NB_STUN_ATTR_UNKNOWN_ATTRIBUTES, vlen);
	if (rc < 0)
		return rc;
	v = enc_value(e);
	for (size_t i = 0; i < count; i++)
		nb_put_u16be(v + 2 * i, types[i < n ? i : 0]);
	enc_commit(e, NB_STUN_ATTR_UNKNOWN_ATTRIBUTES, vlen);
	return 0;
}

static int enc_integrity_common(struct nb_stun_enc *e, uint16_t type, const char *digest,
				size_t mac_len, const uint8_t *key, size_t key_len)
{
	uint8_t hdr[NB_STUN_HDR_LEN];
	uint8_t mac[STUN_MI256_MAX];
	int rc;

	if (key == NULL && key_len != 0)
		return NB_STUN_E_INVAL;
	rc = enc_begin(e, type, mac_len);
	if (rc < 0)
		return rc;
	/* RFC 8489 §14.5: the length field covers the attribute being added;
	 * compute over a header copy, write only once the HMAC is known. */
	memcpy(hdr, e->buf, NB_STUN_HDR_LEN);
	nb_put_u16be(hdr + 2,
		     (uint16_t)(e->len - NB_STUN_HDR_LEN + STUN_ATTR_HDR_LEN + mac_len));
	if (stun_hmac(digest, key, key_len, hdr, e->buf + NB_STUN_HDR_LEN,
		      e->len - NB_STUN_HDR_LEN, mac, mac_len) < 0)
		return NB_STUN_E_INTEGRITY;
	memcpy(enc_value(e), mac, mac_len);
	enc_commit(e, type, mac_len);
	return 0;
}

int nb_stun_enc_integrity(struct nb_stun_enc *e, const uint8_t *key, size_t key_len)
{
	return enc_integrity_common(e, NB_STUN_ATTR_MESSAGE_INTEGRITY, "SHA1", STUN_MI_LEN, key,
				    key_len);
}

int nb_stun_enc_integrity_sha256(struct nb_stun_enc *e, const uint8_t *key, size_t key_len)
{
	/* Full 32 bytes: "The value must be the full 32 bytes unless the STUN
	 * Usage explicitly specifies that truncation is allowed." */
	return enc_integrity_common(e, NB_STUN_ATTR_MESSAGE_INTEGRITY_SHA256, "SHA256",
				    STUN_MI256_MAX, key, key_len);
}

int nb_stun_enc_fingerprint(struct nb_stun_enc *e)
{
	uint8_t hdr[NB_STUN_HDR_LEN];
	uint32_t crc;
	int rc;

	rc = enc_begin(e, NB_STUN_ATTR_FINGERPRINT, STUN_FP_LEN);
	if (rc < 0)
		return rc;
	memcpy(hdr, e->buf, NB_STUN_HDR_LEN);
	nb_put_u16be(hdr + 2,
		     (uint16_t)(e->len - NB_STUN_HDR_LEN + STUN_ATTR_HDR_LEN + STUN_FP_LEN));
	crc = crc32_update(0xFFFFFFFFu, hdr, NB_STUN_HDR_LEN);
	crc = crc32_update(crc, e->buf + NB_STUN_HDR_LEN, e->len - NB_STUN_HDR_LEN);
	crc ^= 0xFFFFFFFFu;
	nb_put_u32be(enc_value(e), crc ^ NB_STUN_FINGERPRINT_XOR);
	enc_commit(e, NB_STUN_ATTR_FINGERPRINT, STUN_FP_LEN);
	return 0;
}

const char *nb_stun_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case NB_STUN_E_TRUNCATED:
		return "truncated";
	case NB_STUN_E_NOT_STUN:
		return "not STUN";
	case NB_STUN_E_BAD_ATTR:
		return "bad attribute";
	case NB_STUN_E_ORDER:
		return "attribute order";
	case NB_STUN_E_FINGERPRINT:
		return "bad FINGERPRINT";
	case NB_STUN_E_NOSPACE:
		return "no space";
	case NB_STUN_E_INTEGRITY:
		return "integrity check failed";
	case NB_STUN_E_INVAL:
		return "invalid argument";
	case NB_STUN_E_TOO_BIG:
		return "message too big";
	default:
		return "unknown error";
	}
}
