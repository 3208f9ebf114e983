/* tests/fuzz/fuzz_stun.c - libFuzzer target for the STUN codec.
 *
 * Decodes the input; when accepted, checks its invariants and integrity with a
 * fixed key, then encodes a response echoing what was decoded into a
 * datagram-sized buffer and decodes that back, which must succeed and agree.
 * Any inconsistency traps. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/bytes.h"
#include "proto/stun.h"

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_key[] = { 'f', 'u', 'z', 'z', '-', 'k', 'e', 'y' };

static bool view_inside(const uint8_t *p, size_t n, const uint8_t *buf, size_t len)
{
	return p != NULL && p >= buf && (size_t)(p - buf) <= len && len - (size_t)(p - buf) >= n;
}

static bool addr_ok(const struct nb_addr *a)
{
	return a->family == NB_AF_INET || a->family == NB_AF_INET6;
}

static void check_decoded(const struct nb_stun_msg *m, const uint8_t *buf, size_t len)
{
	CHECK(len >= NB_STUN_HDR_LEN);
	CHECK(m->length == len - NB_STUN_HDR_LEN);
	CHECK(m->length % 4 == 0);
	CHECK(m->type == nb_get_u16be(buf));
	CHECK((m->type & 0xC000) == 0);
	CHECK(m->classic == (nb_get_u32be(buf + 4) != NB_STUN_MAGIC_COOKIE));
	CHECK(memcmp(m->tid, buf + (m->classic ? 4 : 8), m->classic ? 16 : NB_STUN_TID_LEN) == 0);
	CHECK(m->n_unknown_required <= NB_STUN_MAX_UNKNOWN);
	CHECK(m->n_unknown_attrs <= NB_STUN_MAX_UNKNOWN);
	for (size_t i = 0; i < m->n_unknown_required; i++)
		CHECK(m->unknown_required[i] < 0x8000);
	if (m->present & NB_STUN_HAS_USERNAME)
		CHECK(view_inside(m->username, m->username_len, buf, len) &&
		      m->username_len <= NB_STUN_MAX_USERNAME);
	if (m->present & NB_STUN_HAS_SOFTWARE)
		CHECK(view_inside(m->software, m->software_len, buf, len) &&
		      m->software_len <= NB_STUN_MAX_SOFTWARE);
	if (m->present & NB_STUN_HAS_ERROR_CODE) {
		CHECK(view_inside(m->reason, m->reason_len, buf, len) &&
		      m->reason_len <= NB_STUN_MAX_REASON);
		CHECK(m->error_code >= 300 && m->error_code <= 699);
	}
	if (m->present & NB_STUN_HAS_INTEGRITY)
		CHECK(m->integrity_off >= NB_STUN_HDR_LEN && m->integrity_off <= len - 24 &&
		      nb_get_u16be(buf + m->integrity_off) == NB_STUN_ATTR_MESSAGE_INTEGRITY);
	if (m->present & NB_STUN_HAS_INTEGRITY_SHA256) {
		CHECK(m->integrity_sha256_len >= 16 && m->integrity_sha256_len <= 32);
		CHECK(m->integrity_sha256_off >= NB_STUN_HDR_LEN &&
		      m->integrity_sha256_off <= len - 4 - m->integrity_sha256_len);
		if (m->present & NB_STUN_HAS_INTEGRITY)
			CHECK(m->integrity_sha256_off > m->integrity_off);
	}
	if (m->present & NB_STUN_HAS_FINGERPRINT)
		CHECK(nb_get_u16be(buf + len - 8) == NB_STUN_ATTR_FINGERPRINT);
	if (m->present & NB_STUN_HAS_XOR_MAPPED)
		CHECK(!m->classic && addr_ok(&m->xor_mapped));
	if (m->present & NB_STUN_HAS_MAPPED)
		CHECK(addr_ok(&m->mapped));
	if (m->present & NB_STUN_HAS_CHANGE_REQUEST)
		CHECK((m->change_flags & ~(uint32_t)(NB_STUN_CHANGE_IP | NB_STUN_CHANGE_PORT)) == 0u);
	CHECK(nb_stun_is_stun(buf, len) == (buf[0] <= 3));
	CHECK(nb_stun_frame_len(buf, len) == (ssize_t)len);
}

/* Add an attribute to the echo; NOSPACE is fine (1200 bytes cannot hold
 * every maximum-size text), anything else is a bug. */
static bool added(int rc)
{
	CHECK(rc == 0 || rc == NB_STUN_E_NOSPACE);
	return rc == 0;
}

struct echo_addr {
	uint16_t type;
	uint32_t bit;
	size_t field;
};

static const struct echo_addr echo_addrs[] = {
	{ NB_STUN_ATTR_MAPPED_ADDRESS, NB_STUN_HAS_MAPPED, offsetof(struct nb_stun_msg, mapped) },
	{ NB_STUN_ATTR_XOR_MAPPED_ADDRESS, NB_STUN_HAS_XOR_MAPPED,
	  offsetof(struct nb_stun_msg, xor_mapped) },
	{ NB_STUN_ATTR_SOURCE_ADDRESS, NB_STUN_HAS_SOURCE, offsetof(struct nb_stun_msg, source) },
	{ NB_STUN_ATTR_CHANGED_ADDRESS, NB_STUN_HAS_CHANGED,
	  offsetof(struct nb_stun_msg, changed) },
	{ NB_STUN_ATTR_RESPONSE_ORIGIN, NB_STUN_HAS_RESPONSE_ORIGIN,
	  offsetof(struct nb_stun_msg, response_origin) },
	{ NB_STUN_ATTR_OTHER_ADDRESS, NB_STUN_HAS_OTHER_ADDRESS,
	  offsetof(struct nb_stun_msg, other_address) },
};

static const struct nb_addr *field_addr(const struct nb_stun_msg *m, size_t off)
{
	return (const struct nb_addr *)(const void *)((const char *)m + off);
}

static void echo(const struct nb_stun_msg *in)
{
	uint8_t out[NB_STUN_MAX_MSG];
	char reason[NB_STUN_MAX_REASON + 1];
	struct nb_stun_enc e;
	struct nb_stun_msg back;
	uint32_t want = 0;
	bool has_mi = false;
	size_t reason_len = 0;
	uint16_t type = (in->present & NB_STUN_HAS_ERROR_CODE) ? NB_STUN_BINDING_ERROR
							       : NB_STUN_BINDING_SUCCESS;

	CHECK(nb_stun_enc_init(&e, out, sizeof(out), type, in->tid, in->classic) == 0);
	for (size_t i = 0; i < sizeof(echo_addrs) / sizeof(echo_addrs[0]); i++) {
		const struct echo_addr *ea = &echo_addrs[i];
		const struct nb_addr *a = field_addr(in, ea->field);
		if (!(in->present & ea->bit))
			continue;
		if (ea->type == NB_STUN_ATTR_XOR_MAPPED_ADDRESS) {
			if (added(nb_stun_enc_xor_addr(&e, ea->type, a)))
				want |= ea->bit;
		} else if (added(nb_stun_enc_addr(&e, ea->type, a))) {
			want |= ea->bit;
		}
	}
	if ((in->present & NB_STUN_HAS_CHANGE_REQUEST) &&
	    added(nb_stun_enc_u32(&e, NB_STUN_ATTR_CHANGE_REQUEST, in->change_flags)))
		want |= NB_STUN_HAS_CHANGE_REQUEST;
	if ((in->present & NB_STUN_HAS_RESPONSE_PORT) &&
	    added(nb_stun_enc_u32(&e, NB_STUN_ATTR_RESPONSE_PORT,
				  (uint32_t)in->response_port << 16)))
		want |= NB_STUN_HAS_RESPONSE_PORT;
	if ((in->present & NB_STUN_HAS_UNKNOWN_ATTRS) && in->n_unknown_attrs > 0 &&
	    added(nb_stun_enc_unknown(&e, in->unknown_attrs, in->n_unknown_attrs)))
		want |= NB_STUN_HAS_UNKNOWN_ATTRS;
	if (in->present & NB_STUN_HAS_ERROR_CODE) {
		memcpy(reason, in->reason, in->reason_len);
		reason[in->reason_len] = '\0';
		reason_len = strlen(reason);
		if (added(nb_stun_enc_error(&e, in->error_code, reason)))
			want |= NB_STUN_HAS_ERROR_CODE;
	}
	if ((in->present & NB_STUN_HAS_USERNAME) &&
	    added(nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, in->username, in->username_len)))
		want |= NB_STUN_HAS_USERNAME;
	if ((in->present & NB_STUN_HAS_SOFTWARE) &&
	    added(nb_stun_enc_attr(&e, NB_STUN_ATTR_SOFTWARE, in->software, in->software_len)))
		want |= NB_STUN_HAS_SOFTWARE;
	/* Unknown required types go back as attributes of their own. */
	for (size_t i = 0; i < in->n_unknown_required; i++)
		(void)added(nb_stun_enc_attr(&e, in->unknown_required[i], NULL, 0));
	if (added(nb_stun_enc_integrity(&e, fuzz_key, sizeof(fuzz_key)))) {
		want |= NB_STUN_HAS_INTEGRITY;
		has_mi = true;
	}
	if (added(nb_stun_enc_fingerprint(&e)))
		want |= NB_STUN_HAS_FINGERPRINT;

	CHECK(e.len <= sizeof(out));
	CHECK(nb_stun_decode(&back, out, e.len) == (ssize_t)e.len);
	check_decoded(&back, out, e.len);
	CHECK(back.present == want);
	CHECK(back.type == type && back.classic == in->classic);
	CHECK(memcmp(back.tid, in->tid, sizeof(in->tid)) == 0);
	for (size_t i = 0; i < sizeof(echo_addrs) / sizeof(echo_addrs[0]); i++)
		if (want & echo_addrs[i].bit)
			CHECK(nb_addr_equal(field_addr(&back, echo_addrs[i].field),
					    field_addr(in, echo_addrs[i].field)));
	if (want & NB_STUN_HAS_CHANGE_REQUEST)
		CHECK(back.change_flags == in->change_flags);
	if (want & NB_STUN_HAS_RESPONSE_PORT)
		CHECK(back.response_port == in->response_port);
	if (want & NB_STUN_HAS_UNKNOWN_ATTRS) {
		/* Classic messages may repeat one entry to even the list. */
		CHECK(back.n_unknown_attrs >= in->n_unknown_attrs);
		CHECK(memcmp(back.unknown_attrs, in->unknown_attrs,
			     in->n_unknown_attrs * sizeof(uint16_t)) == 0);
	}
	if (want & NB_STUN_HAS_ERROR_CODE)
		CHECK(back.error_code == in->error_code && back.reason_len == reason_len &&
		      memcmp(back.reason, reason, reason_len) == 0);
	if (want & NB_STUN_HAS_USERNAME)
		CHECK(back.username_len == in->username_len &&
		      (in->username_len == 0 ||
		       memcmp(back.username, in->username, in->username_len) == 0));
	if (want & NB_STUN_HAS_SOFTWARE)
		CHECK(back.software_len == in->software_len &&
		      (in->software_len == 0 ||
		       memcmp(back.software, in->software, in->software_len) == 0));
	if (has_mi) {
		CHECK(nb_stun_check_integrity(&back, out, e.len, fuzz_key, sizeof(fuzz_key)) == 0);
		CHECK(nb_stun_check_integrity(&back, out, e.len, fuzz_key, sizeof(fuzz_key) - 1) ==
		      NB_STUN_E_INTEGRITY);
	}
}

static void fuzz_one(const uint8_t *data, size_t size)
{
	struct nb_stun_msg m;
	ssize_t rc, fl;
	int irc;

	fl = nb_stun_frame_len(data, size);
	CHECK(size < 4 ? fl == 0 : (fl == NB_STUN_E_NOT_STUN || fl >= NB_STUN_HDR_LEN));
	(void)nb_stun_is_stun(data, size);

	rc = nb_stun_decode(&m, data, size);
	if (rc < 0) {
		CHECK(rc == NB_STUN_E_TRUNCATED || rc == NB_STUN_E_NOT_STUN ||
		      rc == NB_STUN_E_BAD_ATTR || rc == NB_STUN_E_ORDER ||
		      rc == NB_STUN_E_FINGERPRINT || rc == NB_STUN_E_TOO_BIG);
		return;
	}
	CHECK(rc > 0 && (size_t)rc == size);
	check_decoded(&m, data, size);

	irc = nb_stun_check_integrity(&m, data, size, fuzz_key, sizeof(fuzz_key));
	CHECK(irc == 0 || irc == NB_STUN_E_INTEGRITY);
	if (!(m.present & (NB_STUN_HAS_INTEGRITY | NB_STUN_HAS_INTEGRITY_SHA256)))
		CHECK(irc == NB_STUN_E_INTEGRITY);

	echo(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_one(data, size);

	/* Almost every mutation of a message with FINGERPRINT breaks the CRC.
	 * Decode a copy with the trailing FINGERPRINT recomputed as well, so
	 * the fuzzer gets past that check. An exact-size heap copy keeps
	 * ASan's view of the end of the input. */
	if (size >= NB_STUN_HDR_LEN + 8 &&
	    nb_get_u16be(data + size - 8) == NB_STUN_ATTR_FINGERPRINT &&
	    nb_get_u16be(data + size - 6) == 4) {
		uint8_t *fixed = malloc(size);
		if (fixed == NULL)
			return 0;
		memcpy(fixed, data, size);
		nb_put_u32be(fixed + size - 4, nb_crc32(fixed, size - 8) ^ NB_STUN_FINGERPRINT_XOR);
		fuzz_one(fixed, size);
		free(fixed);
	}
	return 0;
}
