/* tests/fuzz/fuzz_turn_proto.c - libFuzzer target for the TURN codec.
 *
 * The input is read three ways: as one STUN message whose TURN attributes
 * are parsed (and re-encoded, re-decoded and compared when accepted), as
 * ChannelData over UDP and over TCP (accepted frames re-encoded byte for
 * byte), and as a TCP stream walked frame by frame. The first two bytes
 * also feed the REST username splitter. Any inconsistency traps. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/bytes.h"
#include "proto/stun.h"
#include "proto/turn.h"

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool view_inside(const uint8_t *p, size_t n, const uint8_t *buf, size_t len)
{
	return p != NULL && p >= buf && (size_t)(p - buf) <= len && len - (size_t)(p - buf) >= n;
}

static bool addr_ok(const struct nb_addr *a)
{
	return a->family == NB_AF_INET || a->family == NB_AF_INET6;
}

static bool added(int rc)
{
	CHECK(rc == 0 || rc == NB_STUN_E_NOSPACE);
	return rc == 0;
}

/* Re-encode what was parsed and parse it back: the same values. */
static void echo(const struct nb_stun_msg *m, const struct nb_turn_attrs *t)
{
	static uint8_t out[4096];
	struct nb_stun_enc e;
	struct nb_stun_msg bm;
	struct nb_turn_attrs b;
	uint32_t want = 0;
	uint8_t v[4] = { 0 };

	CHECK(nb_stun_enc_init(&e, out, sizeof(out), m->type, m->tid, false) == 0);
	if ((t->present & NB_TURN_HAS_CHANNEL) &&
	    added(nb_stun_enc_u32(&e, NB_TURN_ATTR_CHANNEL_NUMBER, (uint32_t)t->channel << 16)))
		want |= NB_TURN_HAS_CHANNEL;
	if ((t->present & NB_TURN_HAS_LIFETIME) &&
	    added(nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, t->lifetime)))
		want |= NB_TURN_HAS_LIFETIME;
	for (size_t i = 0; i < t->n_peers; i++)
		CHECK(added(nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_PEER_ADDRESS, &t->peers[i])));
	if (t->n_peers > 0)
		want |= NB_TURN_HAS_PEER;
	if ((t->present & NB_TURN_HAS_DATA) &&
	    added(nb_stun_enc_attr(&e, NB_TURN_ATTR_DATA, t->data, t->data_len)))
		want |= NB_TURN_HAS_DATA;
	if ((t->present & NB_TURN_HAS_REALM) &&
	    added(nb_stun_enc_attr(&e, NB_TURN_ATTR_REALM, t->realm, t->realm_len)))
		want |= NB_TURN_HAS_REALM;
	if ((t->present & NB_TURN_HAS_NONCE) &&
	    added(nb_stun_enc_attr(&e, NB_TURN_ATTR_NONCE, t->nonce, t->nonce_len)))
		want |= NB_TURN_HAS_NONCE;
	if ((t->present & NB_TURN_HAS_RELAYED) &&
	    added(nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_RELAYED_ADDRESS, &t->relayed)))
		want |= NB_TURN_HAS_RELAYED;
	if ((t->present & NB_TURN_HAS_REQUESTED_FAMILY) &&
	    added(nb_stun_enc_u32(&e, NB_TURN_ATTR_REQUESTED_ADDRESS_FAMILY,
				  (uint32_t)t->requested_family << 24)))
		want |= NB_TURN_HAS_REQUESTED_FAMILY;
	v[0] = t->even_port_reserve ? 0x80 : 0;
	if ((t->present & NB_TURN_HAS_EVEN_PORT) &&
	    added(nb_stun_enc_attr(&e, NB_TURN_ATTR_EVEN_PORT, v, 1)))
		want |= NB_TURN_HAS_EVEN_PORT;
	if ((t->present & NB_TURN_HAS_REQUESTED_TRANSPORT) &&
	    added(nb_stun_enc_u32(&e, NB_TURN_ATTR_REQUESTED_TRANSPORT,
				  (uint32_t)t->requested_transport << 24)))
		want |= NB_TURN_HAS_REQUESTED_TRANSPORT;
	if ((t->present & NB_TURN_HAS_DONT_FRAGMENT) &&
	    added(nb_stun_enc_attr(&e, NB_TURN_ATTR_DONT_FRAGMENT, NULL, 0)))
		want |= NB_TURN_HAS_DONT_FRAGMENT;
	if ((t->present & NB_TURN_HAS_RESERVATION_TOKEN) &&
	    added(nb_stun_enc_attr(&e, NB_TURN_ATTR_RESERVATION_TOKEN, t->reservation_token,
				   NB_TURN_TOKEN_LEN)))
		want |= NB_TURN_HAS_RESERVATION_TOKEN;
	if ((t->present & NB_TURN_HAS_ADDITIONAL_FAMILY) &&
	    added(nb_stun_enc_u32(&e, NB_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY,
				  (uint32_t)t->additional_family << 24)))
		want |= NB_TURN_HAS_ADDITIONAL_FAMILY;

	CHECK(nb_stun_decode(&bm, out, e.len) == (ssize_t)e.len);
	CHECK(nb_turn_attrs_parse(&bm, out, e.len, &b) == 0);
	CHECK(b.present == want);
	CHECK(nb_turn_unknown_required(&bm, NULL, 0) == 0);
	CHECK(b.n_peers == t->n_peers);
	for (size_t i = 0; i < t->n_peers; i++)
		CHECK(nb_addr_equal(&b.peers[i], &t->peers[i]));
	if (want & NB_TURN_HAS_CHANNEL)
		CHECK(b.channel == t->channel);
	if (want & NB_TURN_HAS_LIFETIME)
		CHECK(b.lifetime == t->lifetime);
	if (want & NB_TURN_HAS_DATA)
		CHECK(b.data_len == t->data_len &&
		      (t->data_len == 0 || memcmp(b.data, t->data, t->data_len) == 0));
	if (want & NB_TURN_HAS_REALM)
		CHECK(b.realm_len == t->realm_len &&
		      (t->realm_len == 0 || memcmp(b.realm, t->realm, t->realm_len) == 0));
	if (want & NB_TURN_HAS_NONCE)
		CHECK(b.nonce_len == t->nonce_len &&
		      (t->nonce_len == 0 || memcmp(b.nonce, t->nonce, t->nonce_len) == 0));
	if (want & NB_TURN_HAS_RELAYED)
		CHECK(nb_addr_equal(&b.relayed, &t->relayed));
	if (want & NB_TURN_HAS_REQUESTED_FAMILY)
		CHECK(b.requested_family == t->requested_family);
	if (want & NB_TURN_HAS_EVEN_PORT)
		CHECK(b.even_port_reserve == t->even_port_reserve);
	if (want & NB_TURN_HAS_REQUESTED_TRANSPORT)
		CHECK(b.requested_transport == t->requested_transport);
	if (want & NB_TURN_HAS_RESERVATION_TOKEN)
		CHECK(memcmp(b.reservation_token, t->reservation_token, NB_TURN_TOKEN_LEN) == 0);
	if (want & NB_TURN_HAS_ADDITIONAL_FAMILY)
		CHECK(b.additional_family == t->additional_family);
}

static void fuzz_stun(const uint8_t *data, size_t size)
{
	struct nb_stun_msg m;
	struct nb_turn_attrs t;
	uint16_t unk[NB_STUN_MAX_UNKNOWN];
	size_t nu, end;
	int rc;

	if (nb_stun_decode(&m, data, size) < 0)
		return;
	nu = nb_turn_unknown_required(&m, unk, NB_STUN_MAX_UNKNOWN);
	CHECK(nu <= m.n_unknown_required);
	for (size_t i = 0; i < nu; i++)
		CHECK(unk[i] < 0x8000);

	memset(&t, 0xA5, sizeof(t));
	rc = nb_turn_attrs_parse(&m, data, size, &t);
	if (rc < 0) {
		CHECK(rc == NB_TURN_E_BAD_ATTR || rc == NB_TURN_E_TOO_MANY ||
		      (rc == NB_TURN_E_INVAL && m.classic));
		return;
	}
	CHECK(!m.classic);
	end = size;
	if (m.integrity_off != 0 && m.integrity_off < end)
		end = m.integrity_off;
	if (m.integrity_sha256_off != 0 && m.integrity_sha256_off < end)
		end = m.integrity_sha256_off;
	CHECK(t.n_peers <= NB_TURN_MAX_PEER_ATTRS);
	CHECK((t.n_peers > 0) == ((t.present & NB_TURN_HAS_PEER) != 0));
	CHECK((t.present & ~0x7FFFu) == 0);
	for (size_t i = 0; i < t.n_peers; i++)
		CHECK(addr_ok(&t.peers[i]));
	if (t.present & NB_TURN_HAS_RELAYED)
		CHECK(addr_ok(&t.relayed));
	/* Views lie before MESSAGE-INTEGRITY. */
	if (t.present & NB_TURN_HAS_DATA)
		CHECK(view_inside(t.data, t.data_len, data, end));
	if (t.present & NB_TURN_HAS_REALM)
		CHECK(view_inside(t.realm, t.realm_len, data, end) &&
		      t.realm_len <= NB_TURN_MAX_REALM);
	if (t.present & NB_TURN_HAS_NONCE)
		CHECK(view_inside(t.nonce, t.nonce_len, data, end) &&
		      t.nonce_len <= NB_TURN_MAX_NONCE);
	echo(&m, &t);
}

static void fuzz_chandata(const uint8_t *data, size_t size, bool tcp)
{
	uint16_t ch = 0x1234;
	const uint8_t *d = NULL;
	size_t dl = 77;
	ssize_t n = nb_turn_chandata_decode(data, size, tcp, &ch, &d, &dl);
	uint8_t *out;

	if (n < 0) {
		CHECK(n == NB_TURN_E_TRUNCATED || n == NB_TURN_E_NOT_CHANDATA);
		CHECK(ch == 0x1234 && d == NULL && dl == 77);
		if (size >= 1 && !nb_turn_is_chandata(data, size))
			CHECK(n == NB_TURN_E_NOT_CHANDATA || size < NB_TURN_CHANDATA_HDR);
		return;
	}
	CHECK((size_t)n <= size);
	CHECK(nb_turn_is_chandata(data, size));
	CHECK(ch >= NB_TURN_CHANNEL_MIN && ch <= NB_TURN_CHANNEL_MAX);
	CHECK(d == data + NB_TURN_CHANDATA_HDR && view_inside(d, dl, data, size));
	CHECK((size_t)n == NB_TURN_CHANDATA_HDR + (tcp ? (dl + 3) / 4 * 4 : dl));
	if (tcp)
		CHECK(nb_turn_frame_len(data, size) == n);
	else
		CHECK(size - (size_t)n <= 3);

	/* Encoding it back gives the same header and data. */
	out = malloc((size_t)n);
	if (out == NULL)
		return;
	CHECK(nb_turn_chandata_encode(out, (size_t)n, ch, d, dl, tcp) == n);
	CHECK(memcmp(out, data, NB_TURN_CHANDATA_HDR + dl) == 0);
	if ((size_t)n > 0)
		CHECK(nb_turn_chandata_encode(out, (size_t)n - 1, ch, d, dl, tcp) ==
		      NB_TURN_E_NOSPACE);
	free(out);
}

/* Walk the input as a TCP stream of STUN and ChannelData frames. */
static void fuzz_stream(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		ssize_t n = nb_turn_frame_len(data + off, size - off);

		if (size - off < 4) {
			CHECK(n == 0);
			return;
		}
		if (n < 0) {
			CHECK(n == NB_TURN_E_NOT_CHANDATA);
			return;
		}
		CHECK(n >= NB_TURN_CHANDATA_HDR);
		CHECK(n % 4 == 0);
		if ((size_t)n > size - off)
			return; /* needs more bytes */
		if (nb_turn_is_chandata(data + off, size - off))
			CHECK(nb_turn_chandata_decode(data + off, (size_t)n, true, NULL, NULL,
						      NULL) == n);
		else
			CHECK(n >= NB_STUN_HDR_LEN);
		off += (size_t)n;
	}
}

static void fuzz_rest(const uint8_t *data, size_t size)
{
	uint64_t exp = 0;
	const uint8_t *u = NULL;
	size_t ul = 0;

	if (nb_turn_rest_split(data, size, &exp, &u, &ul) == 0) {
		char name[NB_TURN_REST_USER_MAX + 1];
		size_t digits = (size_t)(u - data) - 1;

		CHECK(u > data && view_inside(u, ul, data, size));
		CHECK(u[-1] == ':' && digits >= 1 && digits <= 20);
		for (size_t i = 0; i < digits; i++)
			CHECK(data[i] >= '0' && data[i] <= '9');
		/* Build the canonical form back when the user part is a
		 * printable string; it splits to the same values. */
		if (ul > 0 && ul <= 64 && memchr(u, 0, ul) == NULL) {
			char user[65];
			ssize_t n;
			uint64_t exp2;
			const uint8_t *u2;
			size_t ul2;

			memcpy(user, u, ul);
			user[ul] = '\0';
			n = nb_turn_rest_username(exp, user, name, sizeof(name));
			if (n >= 0) {
				CHECK(nb_turn_rest_split((const uint8_t *)name, (size_t)n, &exp2,
							 &u2, &ul2) == 0);
				CHECK(exp2 == exp && ul2 == ul && memcmp(u2, u, ul) == 0);
			} else {
				CHECK(n == NB_TURN_E_INVAL);
			}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	fuzz_stun(data, size);
	fuzz_chandata(data, size, false);
	fuzz_chandata(data, size, true);
	fuzz_stream(data, size);
	fuzz_rest(data, size);

	/* As stun_fuzz does: most mutations of a message with FINGERPRINT
	 * break the CRC, so also try a copy with it recomputed. */
	if (size >= NB_STUN_HDR_LEN + 8 &&
	    nb_get_u16be(data + size - 8) == NB_STUN_ATTR_FINGERPRINT &&
	    nb_get_u16be(data + size - 6) == 4) {
		copy = malloc(size);
		if (copy == NULL)
			return 0;
		memcpy(copy, data, size);
		nb_put_u32be(copy + size - 4, nb_crc32(copy, size - 8) ^ NB_STUN_FINGERPRINT_XOR);
		fuzz_stun(copy, size);
		free(copy);
	}
	return 0;
}
