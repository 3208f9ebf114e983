/* peer/datachan.c - the authenticated peer-to-peer data channel. */
#include "peer/datachan.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/bytes.h"

const char *nb_dc_strerror(int err)
{
	switch (err) {
	case NB_DC_E_SHORT: return "frame too short";
	case NB_DC_E_TYPE: return "not a data frame";
	case NB_DC_E_TOO_BIG: return "frame or payload too long";
	case NB_DC_E_TAG: return "bad tag";
	case NB_DC_E_REPLAY: return "replayed or too old";
	case NB_DC_E_NOSPACE: return "no space";
	case NB_DC_E_INVAL: return "invalid argument";
	case NB_DC_E_SEQ: return "sequence numbers exhausted";
	default: return err >= 0 ? "ok" : "unknown error";
	}
}

int nb_dc_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
		      uint8_t out[32])
{
	static const uint8_t empty[1];
	unsigned int n = 0;

	if (key_len > 1024)
		return NB_DC_E_INVAL;
	/* HMAC() is OpenSSL's one-shot interface (not deprecated in 3.0). */
	if (HMAC(EVP_sha256(), key_len ? key : empty, (int)key_len, len ? data : empty, len, out, &n) ==
		    NULL ||
	    n != 32)
		return NB_DC_E_INVAL;
	return 0;
}

static bool is_session_key(const char *k)
{
	size_t i;

	if (k == NULL)
		return false;
	for (i = 0; i < NB_DC_SESSION_KEY_LEN; i++)
		if (!((k[i] >= '0' && k[i] <= '9') || (k[i] >= 'a' && k[i] <= 'f')))
			return false;
	return k[i] == '\0';
}

int nb_dc_derive_key(const char *session_key, const char *sender_id, uint8_t ret[NB_DC_KEY_LEN])
{
	uint8_t msg[sizeof(NB_DC_LABEL) + 32];
	size_t label = sizeof(NB_DC_LABEL) - 1, id_len;
	uint8_t out[32];

	if (!is_session_key(session_key) || sender_id == NULL)
		return NB_DC_E_INVAL;
	id_len = strnlen(sender_id, 33);
	if (id_len == 0 || id_len > 32)
		return NB_DC_E_INVAL;
	memcpy(msg, NB_DC_LABEL, label);
	memcpy(msg + label, sender_id, id_len);
	if (nb_dc_hmac_sha256((const uint8_t *)session_key, NB_DC_SESSION_KEY_LEN, msg, label + id_len,
			      out) != 0)
		return NB_DC_E_INVAL;
	memcpy(ret, out, NB_DC_KEY_LEN);
	return 0;
}

static void put_u64be(uint8_t *p, uint64_t v)
{
	nb_put_u32be(p, (uint32_t)(v >> 32));
	nb_put_u32be(p + 4, (uint32_t)v);
}

static uint64_t get_u64be(const uint8_t *p)
{
	return (uint64_t)nb_get_u32be(p) << 32 | nb_get_u32be(p + 4);
}

ssize_t nb_dc_encode(const uint8_t key[NB_DC_KEY_LEN], uint64_t seq, const uint8_t *payload,
		     size_t n, uint8_t *out, size_t cap)
{
	uint8_t tag[32];

	if (key == NULL || out == NULL || (n > 0 && payload == NULL))
		return NB_DC_E_INVAL;
	if (n > NB_DC_MAX_PAYLOAD)
		return NB_DC_E_TOO_BIG;
	if (cap < NB_DC_OVERHEAD || cap - NB_DC_OVERHEAD < n)
		return NB_DC_E_NOSPACE;
	out[0] = NB_DC_TYPE;
	put_u64be(out + 1, seq);
	if (n > 0)
		memmove(out + NB_DC_HDR_LEN, payload, n);
	if (nb_dc_hmac_sha256(key, NB_DC_KEY_LEN, out, NB_DC_HDR_LEN + n, tag) != 0)
		return NB_DC_E_INVAL;
	memcpy(out + NB_DC_HDR_LEN + n, tag, NB_DC_TAG_LEN);
	return (ssize_t)(NB_DC_OVERHEAD + n);
}

ssize_t nb_dc_decode(const uint8_t key[NB_DC_KEY_LEN], const uint8_t *buf, size_t len,
		     uint64_t *ret_seq, const uint8_t **ret_payload)
{
	uint8_t tag[32];
	size_t n;

	if (key == NULL || buf == NULL)
		return NB_DC_E_INVAL;
	if (len < NB_DC_OVERHEAD)
		return NB_DC_E_SHORT;
	if (buf[0] != NB_DC_TYPE)
		return NB_DC_E_TYPE;
	if (len > NB_DC_MAX_DATAGRAM)
		return NB_DC_E_TOO_BIG;
	n = len - NB_DC_OVERHEAD;
	if (nb_dc_hmac_sha256(key, NB_DC_KEY_LEN, buf, NB_DC_HDR_LEN + n, tag) != 0)
		return NB_DC_E_INVAL;
	if (CRYPTO_memcmp(tag, buf + NB_DC_HDR_LEN + n, NB_DC_TAG_LEN) != 0)
		return NB_DC_E_TAG;
	*ret_seq = get_u64be(buf + 1);
	*ret_payload = buf + NB_DC_HDR_LEN;
	return (ssize_t)n;
}

int nb_dc_init(struct nb_dc *dc, const char *session_key, const char *self_id,
	       const char *peer_id, uint64_t now)
{
	uint8_t ks[NB_DC_KEY_LEN], kr[NB_DC_KEY_LEN];

	if (dc == NULL || nb_dc_derive_key(session_key, self_id, ks) != 0 ||
	    nb_dc_derive_key(session_key, peer_id, kr) != 0)
		return NB_DC_E_INVAL;
	memset(dc, 0, sizeof(*dc));
	memcpy(dc->k_send, ks, sizeof(ks));
	memcpy(dc->k_recv, kr, sizeof(kr));
	dc->last_rx = now;
	return 0;
}

ssize_t nb_dc_seal(struct nb_dc *dc, const uint8_t *payload, size_t n, uint8_t *out, size_t cap,
		   uint64_t now)
{
	ssize_t r;

	if (dc->seq_exhausted)
		return NB_DC_E_SEQ;
	r = nb_dc_encode(dc->k_send, dc->next_seq, payload, n, out, cap);
	if (r < 0)
		return r;
	if (dc->next_seq == UINT64_MAX)
		dc->seq_exhausted = true;
	else
		dc->next_seq++;
	dc->last_tx = now;
	return r;
}

/* RFC 4303 §3.4.3: the right edge is the highest number accepted; a number
 * left of the window, or marked in it, is a replay. */
static bool window_check(const struct nb_dc *dc, uint64_t seq)
{
	uint64_t back;

	if (!dc->rx_any || seq > dc->rx_top)
		return true;
	back = dc->rx_top - seq;
	if (back >= NB_DC_WINDOW)
		return false;
	return !(dc->rx_bitmap & ((uint64_t)1 << back));
}

static void window_update(struct nb_dc *dc, uint64_t seq)
{
	if (!dc->rx_any) {
		dc->rx_any = true;
		dc->rx_top = seq;
		dc->rx_bitmap = 1;
		return;
	}
	if (seq > dc->rx_top) {
		uint64_t shift = seq - dc->rx_top;
		dc->rx_bitmap = shift >= NB_DC_WINDOW ? 0 : dc->rx_bitmap << shift;
		dc->rx_bitmap |= 1;
		dc->rx_top = seq;
		return;
	}
	dc->rx_bitmap |= (uint64_t)1 << (dc->rx_top - seq);
}

ssize_t nb_dc_open(struct nb_dc *dc, const uint8_t *buf, size_t len, const uint8_t **ret_payload,
		   uint64_t now)
{
	const uint8_t *p = NULL;
	uint64_t seq = 0;
	ssize_t n = nb_dc_decode(dc->k_recv, buf, len, &seq, &p);

	if (n < 0) {
		if (n == NB_DC_E_TAG)
			dc->rx_bad_tag++;
		return n;
	}
	if (!window_check(dc, seq)) {
		dc->rx_replay++;
		return NB_DC_E_REPLAY;
	}
	window_update(dc, seq);
	dc->last_rx = now;
	dc->rx_ok++;
	if (n == 0)
		dc->keepalives_rx++;
	*ret_payload = p;
	return n;
}

uint64_t nb_dc_deadline(const struct nb_dc *dc)
{
	uint64_t iv = NB_DC_KEEPALIVE_MS;

	if (dc->next_seq == 0 && !dc->seq_exhausted)
		return 0; /* nothing sent yet: the first keepalive is due at once */
	if (!dc->rx_any) {
		/* Unconfirmed: the peer may not have had our answer when our
		 * first keepalive arrived (it drops frames until it is
		 * connected itself). Again after 100, 200, 400 ... ms. */
		uint64_t shift = dc->next_seq - 1 > 6 ? 6 : dc->next_seq - 1;
		iv = (uint64_t)NB_DC_CONFIRM_MS << shift;
		if (iv > NB_DC_KEEPALIVE_MS)
			iv = NB_DC_KEEPALIVE_MS;
	}
	return dc->last_tx + iv;
}

bool nb_dc_expired(const struct nb_dc *dc, uint64_t now)
{
	return now >= dc->last_rx && now - dc->last_rx >= NB_DC_EXPIRE_MS;
}
