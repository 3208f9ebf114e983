/* common/keys.c - X25519 key pairs, Diffie-Hellman and their base64url text form (OpenSSL libcrypto). */
#include "common/keys.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/proverr.h>
#include <openssl/rand.h>

const char *nb_key_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case NB_KEY_E_INVAL:
		return "invalid key or argument";
	case NB_KEY_E_CRYPTO:
		return "libcrypto failure";
	case NB_KEY_E_ZERO:
		return "all-zero shared secret (low-order public key)";
	default:
		return "unknown error";
	}
}

/* X25519(priv, 9) (RFC 7748 §6.1: "Alice ... computes X25519(a, 9)"),
 * through the derive. OpenSSL 3.0's own private-to-public path
 * (EVP_PKEY_new_raw_private_key + get_raw_public_key) uses a generic
 * fixed-base multiplication that measured 2.5x slower than its X25519
 * ladder here; the result is the same (test_noise checks RFC 7748 §6.1 and
 * the plain import). */
int nb_key_public(const uint8_t priv[NB_KEY_LEN], uint8_t ret_pub[NB_KEY_LEN])
{
	static const uint8_t base[NB_KEY_LEN] = { 9 };
	int rc;

	if (!priv || !ret_pub)
		return NB_KEY_E_INVAL;
	rc = nb_key_dh(priv, base, ret_pub);
	/* 9 generates the prime-order subgroup: never zero. */
	return rc == 0 ? 0 : NB_KEY_E_CRYPTO;
}

int nb_key_generate(uint8_t ret_priv[NB_KEY_LEN], uint8_t ret_pub[NB_KEY_LEN])
{
	uint8_t priv[NB_KEY_LEN], pub[NB_KEY_LEN];
	int rc;

	if (!ret_priv || !ret_pub)
		return NB_KEY_E_INVAL;
	if (RAND_bytes(priv, NB_KEY_LEN) != 1) {
		ERR_clear_error();
		rc = NB_KEY_E_CRYPTO;
		goto out;
	}
	rc = nb_key_public(priv, pub);
	if (rc)
		goto out;
	memcpy(ret_priv, priv, NB_KEY_LEN);
	memcpy(ret_pub, pub, NB_KEY_LEN);
out:
	OPENSSL_cleanse(priv, sizeof(priv));
	return rc;
}

/* Import one raw X25519 key with an existing fromdata context. */
static EVP_PKEY *import_key(EVP_PKEY_CTX *fctx, const uint8_t *priv, const uint8_t *pub)
{
	OSSL_PARAM params[3];
	EVP_PKEY *k = NULL;
	size_t n = 0;

	if (priv)
		params[n++] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PRIV_KEY, (void *)priv,
								NB_KEY_LEN);
	params[n++] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub, NB_KEY_LEN);
	params[n] = OSSL_PARAM_construct_end();
	if (EVP_PKEY_fromdata(fctx, &k, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) != 1)
		return NULL;
	return k;
}

/* Why one scalar multiplication and not two: importing a private key alone
 * (EVP_PKEY_new_raw_private_key) makes OpenSSL compute its public key, a
 * second X25519 as costly as the derive itself (measured on OpenSSL 3.0:
 * 14k DH/s that way, 29k/s this way). X25519's derive reads only our
 * private scalar and the peer's public key, so our key is imported with a
 * placeholder public half (all zero) that nothing reads; the EVP_PKEY never
 * leaves this function. test_noise checks the result against RFC 7748 §6.1
 * and against the plain import. */
int nb_key_dh(const uint8_t priv[NB_KEY_LEN], const uint8_t pub[NB_KEY_LEN],
	      uint8_t ret_shared[NB_KEY_LEN])
{
	static const uint8_t placeholder[NB_KEY_LEN];
	static const uint8_t zero[NB_KEY_LEN];
	EVP_PKEY_CTX *fctx = NULL, *dctx = NULL;
	EVP_PKEY *ours = NULL, *theirs = NULL;
	uint8_t shared[NB_KEY_LEN];
	size_t len = sizeof(shared);
	int rc = NB_KEY_E_CRYPTO;

	if (!priv || !pub || !ret_shared)
		return NB_KEY_E_INVAL;
	fctx = EVP_PKEY_CTX_new_from_name(NULL, "X25519", NULL);
	if (!fctx || EVP_PKEY_fromdata_init(fctx) != 1)
		goto out;
	ours = import_key(fctx, priv, placeholder);
	theirs = import_key(fctx, NULL, pub);
	if (!ours || !theirs)
		goto out;
	dctx = EVP_PKEY_CTX_new(ours, NULL);
	/* validate_peer = 0: every 32-byte string is an X25519 public key
	 * (RFC 7748 §5); the low-order ones are caught by the zero check. */
	if (!dctx || EVP_PKEY_derive_init(dctx) != 1 || EVP_PKEY_derive_set_peer_ex(dctx, theirs, 0) != 1)
		goto out;
	if (EVP_PKEY_derive(dctx, shared, &len) != 1) {
		/* OpenSSL itself refuses an all-zero result (ossl_x25519 returns 0). */
		unsigned long e = ERR_peek_last_error();

		if (ERR_GET_LIB(e) == ERR_LIB_PROV && ERR_GET_REASON(e) == PROV_R_FAILED_DURING_DERIVATION)
			rc = NB_KEY_E_ZERO;
		goto out;
	}
	if (len != NB_KEY_LEN)
		goto out;
	if (CRYPTO_memcmp(shared, zero, NB_KEY_LEN) == 0) {
		rc = NB_KEY_E_ZERO;
		goto out;
	}
	memcpy(ret_shared, shared, NB_KEY_LEN);
	rc = 0;
out:
	if (rc)
		ERR_clear_error();
	OPENSSL_cleanse(shared, sizeof(shared));
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_free(ours);
	EVP_PKEY_free(theirs);
	EVP_PKEY_CTX_free(fctx);
	return rc;
}

/* base64url (RFC 4648 §5, Table 2) computed without a table or a branch
 * on the value, so a private key's text form leaks nothing through timing. */

/* All ones when v >= t, else 0 (v, t < 2^31). */
static unsigned mask_ge(unsigned v, unsigned t)
{
	return 0u - ((v - t) >> 31 ^ 1u);
}

/* All ones when lo <= c <= hi, else 0. */
static unsigned mask_in(unsigned c, unsigned lo, unsigned hi)
{
	return mask_ge(c, lo) & ~mask_ge(c, hi + 1);
}

static char b64_char(unsigned v)
{
	/* 0-25 'A'-'Z', 26-51 'a'-'z', 52-61 '0'-'9', 62 '-', 63 '_' */
	unsigned c = v + 'A';

	c += mask_ge(v, 26) & 6u;            /* 'a' - 'A' - 26 */
	c -= mask_ge(v, 52) & 75u;           /* 'a' + 26 - '0' */
	c -= mask_ge(v, 62) & 13u;           /* '0' + 10 - '-' */
	c += mask_ge(v, 63) & 49u;           /* '_' - '-' - 1 */
	return (char)(c & 0xffu);
}

/* The 6-bit value of c, or 0xff when c is not in the alphabet. */
static unsigned b64_value(unsigned char ch)
{
	unsigned c = ch, v = 0, ok;

	ok = mask_in(c, 'A', 'Z') | mask_in(c, 'a', 'z') | mask_in(c, '0', '9') | mask_in(c, '-', '-') |
	     mask_in(c, '_', '_');
	v |= mask_in(c, 'A', 'Z') & (c - 'A');
	v |= mask_in(c, 'a', 'z') & (c - 'a' + 26);
	v |= mask_in(c, '0', '9') & (c - '0' + 52);
	v |= mask_in(c, '-', '-') & 62u;
	v |= mask_in(c, '_', '_') & 63u;
	return (v & ok) | (0xffu & ~ok);
}

void nb_key_to_text(const uint8_t key[NB_KEY_LEN], char out[NB_KEY_TEXT_LEN + 1])
{
	size_t i, o = 0;
	unsigned acc = 0, bits = 0;

	for (i = 0; i < NB_KEY_LEN; i++) {
		acc = (acc << 8 | key[i]) & 0xfffu;
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = b64_char((acc >> bits) & 63u);
		}
	}
	/* 256 = 42 * 6 + 4: the last character holds 4 bits and two zeros. */
	out[o++] = b64_char((acc << (6 - bits)) & 63u);
	out[o] = '\0';
}

int nb_key_from_text(const char *s, size_t len, uint8_t ret_key[NB_KEY_LEN])
{
	uint8_t key[NB_KEY_LEN];
	unsigned acc = 0, bits = 0, bad = 0, v;
	size_t i, o = 0;

	if (!s || !ret_key || len != NB_KEY_TEXT_LEN)
		return NB_KEY_E_INVAL;
	for (i = 0; i < NB_KEY_TEXT_LEN; i++) {
		v = b64_value((unsigned char)s[i]);
		bad |= v >> 6; /* 0xff: not in the alphabet */
		acc = (acc << 6 | (v & 63u)) & 0xfffu;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			key[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* 2 bits are left over; canonical text has them zero (RFC 4648 §3.5). */
	bad |= acc & ((1u << bits) - 1u);
	if (bad) {
		OPENSSL_cleanse(key, sizeof(key));
		return NB_KEY_E_INVAL;
	}
	memcpy(ret_key, key, NB_KEY_LEN);
	OPENSSL_cleanse(key, sizeof(key));
	return 0;
}

bool nb_key_equal(const uint8_t a[NB_KEY_LEN], const uint8_t b[NB_KEY_LEN])
{
	return CRYPTO_memcmp(a, b, NB_KEY_LEN) == 0;
}
