/* peer/datachan.c - the peer-to-peer data channel: AEAD frames and the path keepalive. */
#include "peer/datachan.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

const char *nb_dc_strerror(int err)
{
	return nb_seal_strerror(err);
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
	    n != 32) {
		ERR_clear_error();
		return NB_DC_E_INVAL;
	}
	return 0;
}

int nb_dc_init(struct nb_dc *dc, const struct nb_seal_keys *k, uint64_t now)
{
	struct nb_seal seal;
	int rc;

	if (dc == NULL)
		return NB_DC_E_INVAL;
	rc = nb_seal_init(&seal, k, now);
	if (rc != 0)
		return rc;
	memset(dc, 0, sizeof(*dc));
	dc->seal = seal; /* moves the contexts; seal is not used again */
	dc->last_rx = now;
	return 0;
}

ssize_t nb_dc_seal(struct nb_dc *dc, const uint8_t *payload, size_t n, uint8_t *out, size_t cap,
		   uint64_t now)
{
	ssize_t r;

	if (dc == NULL)
		return NB_DC_E_INVAL;
	r = nb_seal_seal(&dc->seal, payload, n, out, cap, now);
	if (r < 0)
		return r;
	dc->tx_frames++;
	dc->last_tx = now;
	return r;
}

ssize_t nb_dc_open(struct nb_dc *dc, const uint8_t *buf, size_t len, uint8_t *out, size_t cap,
		   uint64_t now)
{
	ssize_t n;

	if (dc == NULL)
		return NB_DC_E_INVAL;
	n = nb_seal_open(&dc->seal, buf, len, out, cap, now);
	if (n < 0) {
		dc->rx_bad++;
		return n;
	}
	dc->rx_any = true;
	dc->last_rx = now;
	dc->rx_ok++;
	if (n == 0)
		dc->keepalives_rx++;
	return n;
}

uint64_t nb_dc_deadline(const struct nb_dc *dc)
{
	uint64_t iv = NB_DC_KEEPALIVE_MS;

	if (dc->tx_frames == 0)
		return 0; /* nothing sent yet: the first keepalive is due at once */
	if (!dc->rx_any) {
		/* Unconfirmed: the peer may not have had our answer when our
		 * first keepalive arrived (it drops frames until it is
		 * connected itself). Again after 100, 200, 400 ... ms. */
		uint64_t shift = dc->tx_frames - 1 > 6 ? 6 : dc->tx_frames - 1;
		iv = (uint64_t)NB_DC_CONFIRM_MS << shift;
		if (iv > NB_DC_KEEPALIVE_MS)
			iv = NB_DC_KEEPALIVE_MS;
	}
	return dc->last_tx + iv;
}

bool nb_dc_expired(const struct nb_dc *dc, uint64_t now)
{
	if (nb_seal_dead(&dc->seal, now))
		return true;
	return now >= dc->last_rx && now - dc->last_rx >= NB_DC_EXPIRE_MS;
}

bool nb_dc_wants_rekey(const struct nb_dc *dc, uint64_t now)
{
	return nb_seal_wants_rekey(&dc->seal, now);
}

int nb_dc_rekey(struct nb_dc *dc, const struct nb_seal_keys *k, uint64_t now)
{
	if (dc == NULL)
		return NB_DC_E_INVAL;
	return nb_seal_rekey(&dc->seal, k, now);
}

void nb_dc_wipe(struct nb_dc *dc)
{
	if (dc == NULL)
		return;
	nb_seal_wipe(&dc->seal);
	OPENSSL_cleanse(dc, sizeof(*dc));
}
