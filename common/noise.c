/* common/noise.c - Noise_IK_25519_ChaChaPoly_SHA256 (Noise spec rev 34) and its 0xD1/0xD2 frames, over OpenSSL. */
#include "common/noise.h"
#include "common/mutant.h"

#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "common/bytes.h"
#include "common/keys.h"

/* 32 bytes: spec §5.2 InitializeSymmetric: "If protocol_name is less than or
 * equal to HASHLEN bytes in length, sets h equal to protocol_name with zero
 * bytes appended to make HASHLEN bytes." Exactly 32, so h = the name. */
_Static_assert(sizeof(NB_NOISE_PROTOCOL_NAME) - 1 == NB_NOISE_HASH_LEN, "protocol name is HASHLEN bytes");

const char *nb_noise_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case NB_NOISE_E_SHORT:
		return "handshake frame too short";
	case NB_NOISE_E_TYPE:
		return "not the expected handshake frame type";
	case NB_NOISE_E_STATE:
		return "handshake not in the state this step needs";
	case NB_NOISE_E_MAC:
		return "authentication failed";
	case NB_NOISE_E_INDEX:
		return "response is for another session index";
	case NB_NOISE_E_CRYPTO:
		return "libcrypto failure";
	case NB_NOISE_E_ZERO:
		return "all-zero DH result (low-order public key)";
	case NB_NOISE_E_NOSPACE:
		return "output buffer too small";
	case NB_NOISE_E_INVAL:
		return "invalid argument";
	case NB_NOISE_E_TOO_BIG:
		return "payload or frame too big";
	default:
		return "unknown error";
	}
}

/* ---- Algorithms, fetched once (explicit fetches: no per-call lookup) ---- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static EVP_MD *g_sha256;
static EVP_CIPHER *g_chachapoly;
static EVP_MAC *g_hmac;
static EVP_MAC_CTX *g_hmac_tpl; /* HMAC with SHA-256 set; only ever dup'ed */
static bool g_ready;

static void algs_fetch(void)
{
	OSSL_PARAM params[2];

	g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	g_chachapoly = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
	g_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!g_sha256 || !g_chachapoly || !g_hmac)
		goto fail;
	g_hmac_tpl = EVP_MAC_CTX_new(g_hmac);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!g_hmac_tpl || EVP_MAC_CTX_set_params(g_hmac_tpl, params) != 1)
		goto fail;
	g_ready = true;
	return;
fail:
	ERR_clear_error();
}

static bool algs_ready(void)
{
	return pthread_once(&g_once, algs_fetch) == 0 && g_ready;
}

/* The libcrypto contexts one handshake step uses, made once per step. */
struct kit {
	EVP_MD_CTX *md;
	EVP_MAC_CTX *mac;
	EVP_CIPHER_CTX *aead;
};

static int kit_open(struct kit *k)
{
	memset(k, 0, sizeof(*k));
	if (!algs_ready())
		return NB_NOISE_E_CRYPTO;
	k->md = EVP_MD_CTX_new();
	k->mac = EVP_MAC_CTX_dup(g_hmac_tpl);
	k->aead = EVP_CIPHER_CTX_new();
	if (!k->md || !k->mac || !k->aead)
		return NB_NOISE_E_CRYPTO;
	return 0;
}

static void kit_close(struct kit *k)
{
	EVP_MD_CTX_free(k->md);
	EVP_MAC_CTX_free(k->mac);
	EVP_CIPHER_CTX_free(k->aead);
	memset(k, 0, sizeof(*k));
}

/* ---- AEAD: ChaCha20-Poly1305, nonce = 4 zero bytes || LE64(n) ---- */

static void noise_nonce(uint64_t n, uint8_t iv[12])
{
	unsigned i;

	memset(iv, 0, 4);
	for (i = 0; i < 8; i++)
		iv[4 + i] = (uint8_t)(n >> (8 * i));
}

static int aead_seal(EVP_CIPHER_CTX *c, const uint8_t key[32], uint64_t n, const uint8_t *ad, size_t adlen,
		     const uint8_t *pt, size_t len, uint8_t *out)
{
	uint8_t iv[12];
	int outl = 0, fin = 0;

	/* spec §5.1: "the maximum n value (2^64-1) is reserved". */
	if (n == UINT64_MAX || len > INT_MAX - 16 || adlen > INT_MAX)
		return NB_NOISE_E_INVAL;
	noise_nonce(n, iv);
	if (EVP_EncryptInit_ex2(c, g_chachapoly, key, iv, NULL) != 1)
		goto fail;
	if (adlen && EVP_EncryptUpdate(c, NULL, &outl, ad, (int)adlen) != 1)
		goto fail;
	outl = 0; /* the AAD update reports adlen */
	if (len && EVP_EncryptUpdate(c, out, &outl, pt, (int)len) != 1)
		goto fail;
	if (EVP_EncryptFinal_ex(c, out + outl, &fin) != 1 || (size_t)outl + (size_t)fin != len)
		goto fail;
	if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, out + len) != 1)
		goto fail;
	return 0;
fail:
	ERR_clear_error();
	return NB_NOISE_E_CRYPTO;
}

/* len includes the tag. On any failure out (len - 16 bytes) is wiped. */
static int aead_open(EVP_CIPHER_CTX *c, const uint8_t key[32], uint64_t n, const uint8_t *ad, size_t adlen,
		     const uint8_t *ct, size_t len, uint8_t *out)
{
	uint8_t iv[12], tag[16];
	size_t plen;
	int outl = 0, fin = 0, rc = NB_NOISE_E_CRYPTO;

	if (len < 16)
		return NB_NOISE_E_SHORT;
	if (n == UINT64_MAX || len > INT_MAX || adlen > INT_MAX)
		return NB_NOISE_E_INVAL;
	plen = len - 16;
	memcpy(tag, ct + plen, 16); /* before an in-place decrypt */
	noise_nonce(n, iv);
	if (EVP_DecryptInit_ex2(c, g_chachapoly, key, iv, NULL) != 1)
		goto out;
	if (adlen && EVP_DecryptUpdate(c, NULL, &outl, ad, (int)adlen) != 1)
		goto out;
	outl = 0;
	if (plen && EVP_DecryptUpdate(c, out, &outl, ct, (int)plen) != 1)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, tag) != 1)
		goto out;
	/* The tag check happens here; its failure is the one MAC error. */
	if (!NB_MUTANT_TAG_OK(EVP_DecryptFinal_ex(c, out + outl, &fin) == 1)) {
		rc = NB_NOISE_E_MAC;
		goto out;
	}
	rc = (size_t)outl + (size_t)fin == plen ? 0 : NB_NOISE_E_CRYPTO;
out:
	if (rc) {
		ERR_clear_error();
		if (plen)
			OPENSSL_cleanse(out, plen);
	}
	return rc;
}

int nb_noise_aead_seal(const uint8_t key[32], uint64_t n, const uint8_t *ad, size_t adlen, const uint8_t *pt,
		       size_t len, uint8_t *out)
{
	EVP_CIPHER_CTX *c;
	int rc;

	if (!key || !out || (adlen && !ad) || (len && !pt))
		return NB_NOISE_E_INVAL;
	if (!algs_ready())
		return NB_NOISE_E_CRYPTO;
	c = EVP_CIPHER_CTX_new();
	if (!c)
		return NB_NOISE_E_CRYPTO;
	rc = aead_seal(c, key, n, ad, adlen, pt, len, out);
	EVP_CIPHER_CTX_free(c);
	return rc;
}

int nb_noise_aead_open(const uint8_t key[32], uint64_t n, const uint8_t *ad, size_t adlen, const uint8_t *ct,
		       size_t len, uint8_t *out)
{
	EVP_CIPHER_CTX *c;
	int rc;

	if (!key || !ct || (adlen && !ad) || (len > 16 && !out))
		return NB_NOISE_E_INVAL;
	if (!algs_ready())
		return NB_NOISE_E_CRYPTO;
	c = EVP_CIPHER_CTX_new();
	if (!c)
		return NB_NOISE_E_CRYPTO;
	rc = aead_open(c, key, n, ad, adlen, ct, len, out);
	EVP_CIPHER_CTX_free(c);
	return rc;
}

/* ---- SymmetricState (spec §5.2), on a stack copy ---- */

struct sym {
	uint8_t h[NB_NOISE_HASH_LEN];
	uint8_t ck[NB_NOISE_HASH_LEN];
	uint8_t k[NB_NOISE_KEY_LEN]; /* every k in IK encrypts exactly one thing: n is always 0 */
};

/* h = HASH(h || data) */
static int mix_hash(struct kit *kt, struct sym *st, const uint8_t *data, size_t len)
{
	unsigned int outl = 0;

	if (EVP_DigestInit_ex2(kt->md, g_sha256, NULL) != 1 || EVP_DigestUpdate(kt->md, st->h, 32) != 1 ||
	    (len && EVP_DigestUpdate(kt->md, data, len) != 1) || EVP_DigestFinal_ex(kt->md, st->h, &outl) != 1 ||
	    outl != 32) {
		ERR_clear_error();
		return NB_NOISE_E_CRYPTO;
	}
	return 0;
}

/* out = HMAC-SHA256(key, a || b) */
static int hmac2(struct kit *kt, const uint8_t key[32], const uint8_t *a, size_t alen, const uint8_t *b,
		 size_t blen, uint8_t out[32])
{
	size_t outl = 0;

	if (EVP_MAC_init(kt->mac, key, 32, NULL) != 1 || (alen && EVP_MAC_update(kt->mac, a, alen) != 1) ||
	    (blen && EVP_MAC_update(kt->mac, b, blen) != 1) || EVP_MAC_final(kt->mac, out, &outl, 32) != 1 ||
	    outl != 32) {
		ERR_clear_error();
		return NB_NOISE_E_CRYPTO;
	}
	return 0;
}

/* spec §4.3 HKDF(chaining_key, input_key_material, 2): out1, out2. */
static int hkdf2(struct kit *kt, const uint8_t ck[32], const uint8_t *ikm, size_t ikmlen, uint8_t out1[32],
		 uint8_t out2[32])
{
	static const uint8_t one = 0x01, two = 0x02;
	uint8_t temp_key[32], o1[32];
	int rc;

	rc = hmac2(kt, ck, ikm, ikmlen, NULL, 0, temp_key);
	if (rc == 0)
		rc = hmac2(kt, temp_key, &one, 1, NULL, 0, o1);
	if (rc == 0)
		rc = hmac2(kt, temp_key, o1, 32, &two, 1, out2);
	if (rc == 0)
		memcpy(out1, o1, 32);
	OPENSSL_cleanse(temp_key, sizeof(temp_key));
	OPENSSL_cleanse(o1, sizeof(o1));
	return rc;
}

/* MixKey(DH(priv, pub)): ck, k = HKDF(ck, dh, 2). HASHLEN 32 = key length,
 * so no truncation. The all-zero result is refused (NB_NOISE_E_ZERO). */
static int mix_dh(struct kit *kt, struct sym *st, const uint8_t priv[32], const uint8_t pub[32])
{
	uint8_t dh[32];
	int rc;

	rc = nb_key_dh(priv, pub, dh);
	if (rc == NB_KEY_E_ZERO)
		rc = NB_NOISE_E_ZERO;
	else if (rc)
		rc = NB_NOISE_E_CRYPTO;
	else
		rc = hkdf2(kt, st->ck, dh, sizeof(dh), st->ck, st->k);
	OPENSSL_cleanse(dh, sizeof(dh));
	return rc;
}

/* EncryptAndHash: out = ENCRYPT(k, 0, h, pt) (len + 16); MixHash(out). */
static int encrypt_and_hash(struct kit *kt, struct sym *st, const uint8_t *pt, size_t len, uint8_t *out)
{
	int rc = aead_seal(kt->aead, st->k, 0, st->h, sizeof(st->h), pt, len, out);

	return rc ? rc : mix_hash(kt, st, out, len + 16);
}

/* DecryptAndHash: out = DECRYPT(k, 0, h, ct) (len includes the tag);
 * MixHash(ct). */
static int decrypt_and_hash(struct kit *kt, struct sym *st, const uint8_t *ct, size_t len, uint8_t *out)
{
	int rc = aead_open(kt->aead, st->k, 0, st->h, sizeof(st->h), ct, len, out);

	return rc ? rc : mix_hash(kt, st, ct, len);
}

/* ---- HandshakeState ---- */

static void hs_fail(struct nb_noise_hs *hs)
{
	OPENSSL_cleanse(hs, sizeof(*hs));
	hs->state = NB_NOISE_HS_FAILED;
}

/* Initialize() (spec §5.3) up to and including the pre-message "<- s". */
static int hs_init(struct nb_noise_hs *hs, enum nb_noise_role role, const uint8_t s_priv[32],
		   const uint8_t s_pub[32], const uint8_t rs_pub[32], const uint8_t *prologue, size_t plen)
{
	struct nb_noise_hs tmp;
	struct kit kt;
	struct sym st;
	int rc;

	memset(&tmp, 0, sizeof(tmp));
	memset(&st, 0, sizeof(st));
	rc = kit_open(&kt);
	if (rc)
		goto out;
	/* InitializeSymmetric(protocol_name): h = name (32 bytes), ck = h. */
	memcpy(st.h, NB_NOISE_PROTOCOL_NAME, NB_NOISE_HASH_LEN);
	memcpy(st.ck, st.h, NB_NOISE_HASH_LEN);
	/* MixHash(prologue) */
	rc = mix_hash(&kt, &st, prologue, plen);
	if (rc)
		goto out;
	/* <- s: both sides MixHash(the responder's static public key). */
	rc = mix_hash(&kt, &st, role == NB_NOISE_INITIATOR ? rs_pub : s_pub, 32);
	if (rc)
		goto out;
	tmp.role = role;
	tmp.state = role == NB_NOISE_INITIATOR ? NB_NOISE_HS_INITIATOR_READY : NB_NOISE_HS_RESPONDER_READY;
	memcpy(tmp.h, st.h, 32);
	memcpy(tmp.ck, st.ck, 32);
	memcpy(tmp.s_priv, s_priv, 32);
	memcpy(tmp.s_pub, s_pub, 32);
	if (rs_pub)
		memcpy(tmp.rs, rs_pub, 32);
	memcpy(hs, &tmp, sizeof(tmp));
out:
	kit_close(&kt);
	OPENSSL_cleanse(&st, sizeof(st));
	OPENSSL_cleanse(&tmp, sizeof(tmp));
	return rc;
}

static int check_init_args(const struct nb_noise_hs *hs, const uint8_t *s_priv, const uint8_t *prologue,
			   size_t plen)
{
	if (!hs || !s_priv || (plen && !prologue))
		return NB_NOISE_E_INVAL;
	if (plen > NB_NOISE_MAX_PROLOGUE)
		return NB_NOISE_E_TOO_BIG;
	return 0;
}

int nb_noise_init_initiator(struct nb_noise_hs *hs, const uint8_t s_priv[32], const uint8_t rs_pub[32],
			    const uint8_t *prologue, size_t plen)
{
	uint8_t s_pub[32];
	int rc = check_init_args(hs, s_priv, prologue, plen);

	if (rc == 0 && !rs_pub)
		rc = NB_NOISE_E_INVAL;
	if (rc == 0 && nb_key_public(s_priv, s_pub) != 0)
		rc = NB_NOISE_E_CRYPTO;
	if (rc == 0)
		rc = hs_init(hs, NB_NOISE_INITIATOR, s_priv, s_pub, rs_pub, prologue, plen);
	if (rc && hs)
		hs_fail(hs);
	return rc;
}

int nb_noise_init_responder_with_public(struct nb_noise_hs *hs, const uint8_t s_priv[32],
					const uint8_t s_pub[32], const uint8_t *prologue, size_t plen)
{
	int rc = check_init_args(hs, s_priv, prologue, plen);

	if (rc == 0 && !s_pub)
		rc = NB_NOISE_E_INVAL;
	if (rc == 0)
		rc = hs_init(hs, NB_NOISE_RESPONDER, s_priv, s_pub, NULL, prologue, plen);
	if (rc && hs)
		hs_fail(hs);
	return rc;
}

int nb_noise_init_responder(struct nb_noise_hs *hs, const uint8_t s_priv[32], const uint8_t *prologue,
			    size_t plen)
{
	uint8_t s_pub[32];

	if (hs && s_priv && nb_key_public(s_priv, s_pub) != 0) {
		hs_fail(hs);
		return NB_NOISE_E_CRYPTO;
	}
	return nb_noise_init_responder_with_public(hs, s_priv, s_priv ? s_pub : NULL, prologue, plen);
}

int nb_noise_set_ephemeral_for_test(struct nb_noise_hs *hs, const uint8_t e_priv[32])
{
	uint8_t pub[32];

	if (!hs || !e_priv)
		return NB_NOISE_E_INVAL;
	if (hs->state != NB_NOISE_HS_INITIATOR_READY && hs->state != NB_NOISE_HS_CONSUMED_INITIATION) {
		hs_fail(hs);
		return NB_NOISE_E_STATE;
	}
	if (nb_key_public(e_priv, pub) != 0) {
		hs_fail(hs);
		return NB_NOISE_E_CRYPTO;
	}
	memcpy(hs->e_priv, e_priv, 32);
	memcpy(hs->e_pub, pub, 32);
	hs->fixed_e = true;
	return 0;
}

/* e: GENERATE_KEYPAIR() (or the test's fixed one). */
static int make_ephemeral(const struct nb_noise_hs *hs, uint8_t e_priv[32], uint8_t e_pub[32])
{
	if (hs->fixed_e) {
		memcpy(e_priv, hs->e_priv, 32);
		memcpy(e_pub, hs->e_pub, 32);
		return 0;
	}
	return nb_key_generate(e_priv, e_pub) == 0 ? 0 : NB_NOISE_E_CRYPTO;
}

/* What both readers set up once the frame passed the cheap checks: room
 * for its payload (n bytes), the digest contexts, and stack copies of h and
 * ck. 0, or the error to fail with. */
static int read_begin(const struct nb_noise_hs *hs, size_t n, const uint8_t *payload_out, size_t cap,
		      struct kit *kt, struct sym *st)
{
	int rc;

	if (n && (!payload_out || cap < n))
		return payload_out ? NB_NOISE_E_NOSPACE : NB_NOISE_E_INVAL;
	rc = kit_open(kt);
	if (rc)
		return rc;
	memcpy(st->h, hs->h, 32);
	memcpy(st->ck, hs->ck, 32);
	return 0;
}

/* What both writers check and set up first: the state they need, the
 * payload and output sizes (fixed: the frame's length without payload), the
 * digest contexts, and stack copies of h and ck (a step writes into hs only
 * once it has succeeded). 0, or the error to fail with. */
static int write_begin(const struct nb_noise_hs *hs, enum nb_noise_hs_state want, const uint8_t *payload,
		       size_t n, const uint8_t *out, size_t cap, size_t fixed, struct kit *kt, struct sym *st)
{
	int rc;

	if (!out || (n && !payload))
		return NB_NOISE_E_INVAL;
	if (hs->state != want)
		return NB_NOISE_E_STATE;
	if (n > NB_NOISE_MAX_PAYLOAD)
		return NB_NOISE_E_TOO_BIG;
	if (cap < fixed + n)
		return NB_NOISE_E_NOSPACE;
	rc = kit_open(kt);
	if (rc)
		return rc;
	memcpy(st->h, hs->h, 32);
	memcpy(st->ck, hs->ck, 32);
	return 0;
}

ssize_t nb_noise_write_init(struct nb_noise_hs *hs, uint32_t local_index, const uint8_t *payload, size_t n,
			    uint8_t *out, size_t cap)
{
	uint8_t frame[NB_NOISE_INIT_MAX];
	uint8_t e_priv[32], e_pub[32];
	uint8_t *msg = frame + NB_NOISE_INIT_HDR_LEN;
	struct kit kt;
	struct sym st;
	int rc;

	memset(&kt, 0, sizeof(kt));
	memset(&st, 0, sizeof(st));
	if (!hs)
		return NB_NOISE_E_INVAL;
	rc = write_begin(hs, NB_NOISE_HS_INITIATOR_READY, payload, n, out, cap, NB_NOISE_INIT_LEN(0), &kt, &st);
	if (rc)
		goto out;

	frame[0] = NB_NOISE_TYPE_INIT;
	nb_put_u32be(frame + 1, local_index);
	/* -> e: GENERATE_KEYPAIR(), append e.public_key, MixHash(e.public_key) */
	rc = make_ephemeral(hs, e_priv, e_pub);
	if (rc)
		goto out;
	memcpy(msg, e_pub, 32);
	rc = mix_hash(&kt, &st, e_pub, 32);
	if (rc)
		goto out;
	/* es: MixKey(DH(e, rs)) */
	rc = mix_dh(&kt, &st, e_priv, hs->rs);
	if (rc)
		goto out;
	/* s: append EncryptAndHash(s.public_key) */
	rc = encrypt_and_hash(&kt, &st, hs->s_pub, 32, msg + 32);
	if (rc)
		goto out;
	/* ss: MixKey(DH(s, rs)) */
	rc = mix_dh(&kt, &st, hs->s_priv, hs->rs);
	if (rc)
		goto out;
	/* payload: append EncryptAndHash(payload) */
	rc = encrypt_and_hash(&kt, &st, payload, n, msg + 80);
	if (rc)
		goto out;

	memcpy(out, frame, NB_NOISE_INIT_LEN(n));
	memcpy(hs->h, st.h, 32);
	memcpy(hs->ck, st.ck, 32);
	memcpy(hs->e_priv, e_priv, 32);
	memcpy(hs->e_pub, e_pub, 32);
	hs->local_index = local_index;
	hs->fixed_e = false;
	hs->state = NB_NOISE_HS_CREATED_INITIATION;
out:
	kit_close(&kt);
	OPENSSL_cleanse(&st, sizeof(st));
	OPENSSL_cleanse(e_priv, sizeof(e_priv));
	OPENSSL_cleanse(frame, sizeof(frame));
	if (rc) {
		hs_fail(hs);
		return rc;
	}
	return (ssize_t)NB_NOISE_INIT_LEN(n);
}

/* Length bounds and type byte, shared by the readers and frame_type. */
static int check_frame(const uint8_t *buf, size_t len, uint8_t type)
{
	size_t min = type == NB_NOISE_TYPE_INIT ? NB_NOISE_INIT_MIN : NB_NOISE_RESP_MIN;
	size_t max = type == NB_NOISE_TYPE_INIT ? NB_NOISE_INIT_MAX : NB_NOISE_RESP_MAX;

	if (len < 1 || !buf)
		return NB_NOISE_E_SHORT;
	if (buf[0] != type)
		return NB_NOISE_E_TYPE;
	if (len < min)
		return NB_NOISE_E_SHORT;
	if (len > max)
		return NB_NOISE_E_TOO_BIG;
	return 0;
}

int nb_noise_frame_type(const uint8_t *buf, size_t len)
{
	int rc;

	if (!buf || len < 1)
		return NB_NOISE_E_SHORT;
	if (buf[0] != NB_NOISE_TYPE_INIT && buf[0] != NB_NOISE_TYPE_RESP)
		return NB_NOISE_E_TYPE;
	rc = check_frame(buf, len, buf[0]);
	return rc ? rc : buf[0];
}

int nb_noise_peek_init(const uint8_t *buf, size_t len, uint32_t *ret_sender)
{
	if (!buf || len < NB_NOISE_INIT_HDR_LEN)
		return NB_NOISE_E_SHORT;
	if (buf[0] != NB_NOISE_TYPE_INIT)
		return NB_NOISE_E_TYPE;
	if (ret_sender)
		*ret_sender = nb_get_u32be(buf + 1);
	return 0;
}

int nb_noise_peek_resp(const uint8_t *buf, size_t len, uint32_t *ret_sender, uint32_t *ret_receiver)
{
	if (!buf || len < NB_NOISE_RESP_HDR_LEN)
		return NB_NOISE_E_SHORT;
	if (buf[0] != NB_NOISE_TYPE_RESP)
		return NB_NOISE_E_TYPE;
	if (ret_sender)
		*ret_sender = nb_get_u32be(buf + 1);
	if (ret_receiver)
		*ret_receiver = nb_get_u32be(buf + 5);
	return 0;
}

ssize_t nb_noise_read_init(struct nb_noise_hs *hs, const uint8_t *frame, size_t len, uint8_t *payload_out,
			   size_t cap)
{
	uint8_t rs[32], payload[NB_NOISE_MAX_PAYLOAD];
	const uint8_t *msg, *re;
	struct kit kt;
	struct sym st;
	size_t n = 0;
	int rc;

	memset(&kt, 0, sizeof(kt));
	memset(&st, 0, sizeof(st));
	if (!hs)
		return NB_NOISE_E_INVAL;
	/* Cheap checks first: length bounds and type, state, room. No DH yet. */
	rc = check_frame(frame, len, NB_NOISE_TYPE_INIT);
	if (rc)
		goto out;
	if (hs->state != NB_NOISE_HS_RESPONDER_READY) {
		rc = NB_NOISE_E_STATE;
		goto out;
	}
	n = len - NB_NOISE_INIT_MIN;
	rc = read_begin(hs, n, payload_out, cap, &kt, &st);
	if (rc)
		goto out;
	msg = frame + NB_NOISE_INIT_HDR_LEN;

	/* -> e: re = the first 32 bytes; MixHash(re) */
	re = msg;
	rc = mix_hash(&kt, &st, re, 32);
	if (rc)
		goto out;
	/* es: MixKey(DH(s, re)) */
	rc = mix_dh(&kt, &st, hs->s_priv, re);
	if (rc)
		goto out;
	/* s: rs = DecryptAndHash(the next 32 + 16 bytes) */
	rc = decrypt_and_hash(&kt, &st, msg + 32, 48, rs);
	if (rc)
		goto out;
	/* ss: MixKey(DH(s, rs)) */
	rc = mix_dh(&kt, &st, hs->s_priv, rs);
	if (rc)
		goto out;
	/* payload: DecryptAndHash(the rest) */
	rc = decrypt_and_hash(&kt, &st, msg + 80, n + 16, payload);
	if (rc)
		goto out;

	if (n)
		memcpy(payload_out, payload, n);
	memcpy(hs->h, st.h, 32);
	memcpy(hs->ck, st.ck, 32);
	memcpy(hs->re, re, 32);
	memcpy(hs->rs, rs, 32);
	hs->remote_index = nb_get_u32be(frame + 1);
	hs->state = NB_NOISE_HS_CONSUMED_INITIATION;
out:
	kit_close(&kt);
	OPENSSL_cleanse(&st, sizeof(st));
	OPENSSL_cleanse(payload, sizeof(payload));
	OPENSSL_cleanse(rs, sizeof(rs));
	if (rc) {
		hs_fail(hs);
		return rc;
	}
	return (ssize_t)n;
}

ssize_t nb_noise_write_resp(struct nb_noise_hs *hs, uint32_t local_index, const uint8_t *payload, size_t n,
			    uint8_t *out, size_t cap)
{
	uint8_t frame[NB_NOISE_RESP_MAX];
	uint8_t e_priv[32], e_pub[32];
	uint8_t *msg = frame + NB_NOISE_RESP_HDR_LEN;
	struct kit kt;
	struct sym st;
	int rc;

	memset(&kt, 0, sizeof(kt));
	memset(&st, 0, sizeof(st));
	if (!hs)
		return NB_NOISE_E_INVAL;
	rc = write_begin(hs, NB_NOISE_HS_CONSUMED_INITIATION, payload, n, out, cap, NB_NOISE_RESP_LEN(0), &kt, &st);
	if (rc)
		goto out;

	frame[0] = NB_NOISE_TYPE_RESP;
	nb_put_u32be(frame + 1, local_index);
	nb_put_u32be(frame + 5, hs->remote_index);
	/* <- e: GENERATE_KEYPAIR(), append e.public_key, MixHash(e.public_key) */
	rc = make_ephemeral(hs, e_priv, e_pub);
	if (rc)
		goto out;
	memcpy(msg, e_pub, 32);
	rc = mix_hash(&kt, &st, e_pub, 32);
	if (rc)
		goto out;
	/* ee: MixKey(DH(e, re)) */
	rc = mix_dh(&kt, &st, e_priv, hs->re);
	if (rc)
		goto out;
	/* se: MixKey(DH(e, rs)) - the responder's side of DH(initiator s, responder e) */
	rc = mix_dh(&kt, &st, e_priv, hs->rs);
	if (rc)
		goto out;
	/* payload: append EncryptAndHash(payload) */
	rc = encrypt_and_hash(&kt, &st, payload, n, msg + 32);
	if (rc)
		goto out;

	memcpy(out, frame, NB_NOISE_RESP_LEN(n));
	memcpy(hs->h, st.h, 32);
	memcpy(hs->ck, st.ck, 32);
	/* The ephemeral private key is not needed after se: forget it now. */
	OPENSSL_cleanse(hs->e_priv, 32);
	memcpy(hs->e_pub, e_pub, 32);
	hs->local_index = local_index;
	hs->fixed_e = false;
	hs->state = NB_NOISE_HS_CREATED_RESPONSE;
out:
	kit_close(&kt);
	OPENSSL_cleanse(&st, sizeof(st));
	OPENSSL_cleanse(e_priv, sizeof(e_priv));
	OPENSSL_cleanse(frame, sizeof(frame));
	if (rc) {
		hs_fail(hs);
		return rc;
	}
	return (ssize_t)NB_NOISE_RESP_LEN(n);
}

ssize_t nb_noise_read_resp(struct nb_noise_hs *hs, const uint8_t *frame, size_t len, uint8_t *payload_out,
			   size_t cap)
{
	uint8_t payload[NB_NOISE_MAX_PAYLOAD];
	const uint8_t *msg, *re;
	struct kit kt;
	struct sym st;
	size_t n = 0;
	int rc;

	memset(&kt, 0, sizeof(kt));
	memset(&st, 0, sizeof(st));
	if (!hs)
		return NB_NOISE_E_INVAL;
	/* Cheap checks first: length bounds and type, state, index, room. */
	rc = check_frame(frame, len, NB_NOISE_TYPE_RESP);
	if (rc)
		goto out;
	if (hs->state != NB_NOISE_HS_CREATED_INITIATION) {
		rc = NB_NOISE_E_STATE;
		goto out;
	}
	if (nb_get_u32be(frame + 5) != hs->local_index) {
		rc = NB_NOISE_E_INDEX;
		goto out;
	}
	n = len - NB_NOISE_RESP_MIN;
	rc = read_begin(hs, n, payload_out, cap, &kt, &st);
	if (rc)
		goto out;
	msg = frame + NB_NOISE_RESP_HDR_LEN;

	/* <- e: re = the first 32 bytes; MixHash(re) */
	re = msg;
	rc = mix_hash(&kt, &st, re, 32);
	if (rc)
		goto out;
	/* ee: MixKey(DH(e, re)) */
	rc = mix_dh(&kt, &st, hs->e_priv, re);
	if (rc)
		goto out;
	/* se: MixKey(DH(s, re)) */
	rc = mix_dh(&kt, &st, hs->s_priv, re);
	if (rc)
		goto out;
	/* payload: DecryptAndHash(the rest) */
	rc = decrypt_and_hash(&kt, &st, msg + 32, n + 16, payload);
	if (rc)
		goto out;

	if (n)
		memcpy(payload_out, payload, n);
	memcpy(hs->h, st.h, 32);
	memcpy(hs->ck, st.ck, 32);
	memcpy(hs->re, re, 32);
	OPENSSL_cleanse(hs->e_priv, 32);
	hs->remote_index = nb_get_u32be(frame + 1);
	hs->state = NB_NOISE_HS_CONSUMED_RESPONSE;
out:
	kit_close(&kt);
	OPENSSL_cleanse(&st, sizeof(st));
	OPENSSL_cleanse(payload, sizeof(payload));
	if (rc) {
		hs_fail(hs);
		return rc;
	}
	return (ssize_t)n;
}

const uint8_t *nb_noise_remote_static(const struct nb_noise_hs *hs)
{
	if (!hs || (hs->state != NB_NOISE_HS_CONSUMED_INITIATION && hs->state != NB_NOISE_HS_CREATED_RESPONSE &&
		    hs->state != NB_NOISE_HS_CREATED_INITIATION && hs->state != NB_NOISE_HS_CONSUMED_RESPONSE &&
		    hs->state != NB_NOISE_HS_INITIATOR_READY))
		return NULL;
	return hs->rs;
}

uint32_t nb_noise_remote_index(const struct nb_noise_hs *hs)
{
	if (!hs || (hs->state != NB_NOISE_HS_CONSUMED_INITIATION && hs->state != NB_NOISE_HS_CREATED_RESPONSE &&
		    hs->state != NB_NOISE_HS_CONSUMED_RESPONSE))
		return 0;
	return hs->remote_index;
}

enum nb_noise_hs_state nb_noise_state(const struct nb_noise_hs *hs)
{
	return hs ? hs->state : NB_NOISE_HS_ZEROED;
}

int nb_noise_split(struct nb_noise_hs *hs, struct nb_noise_keys *ret)
{
	struct nb_noise_keys keys;
	uint8_t k1[32], k2[32];
	struct kit kt;
	int rc;

	memset(&kt, 0, sizeof(kt));
	if (!hs)
		return NB_NOISE_E_INVAL;
	if (!ret) {
		rc = NB_NOISE_E_INVAL;
		goto out;
	}
	if (hs->state != NB_NOISE_HS_CONSUMED_RESPONSE && hs->state != NB_NOISE_HS_CREATED_RESPONSE) {
		rc = NB_NOISE_E_STATE;
		goto out;
	}
	rc = kit_open(&kt);
	if (rc)
		goto out;
	/* Split(): temp_k1, temp_k2 = HKDF(ck, zerolen, 2) */
	rc = hkdf2(&kt, hs->ck, NULL, 0, k1, k2);
	if (rc)
		goto out;
	memset(&keys, 0, sizeof(keys));
	/* The initiator sends with k1; the responder with k2. */
	memcpy(keys.send, hs->role == NB_NOISE_INITIATOR ? k1 : k2, 32);
	memcpy(keys.recv, hs->role == NB_NOISE_INITIATOR ? k2 : k1, 32);
	keys.local_index = hs->local_index;
	keys.remote_index = hs->remote_index;
	memcpy(keys.remote_static, hs->rs, 32);
	memcpy(keys.handshake_hash, hs->h, 32);
	memcpy(ret, &keys, sizeof(keys));
	OPENSSL_cleanse(&keys, sizeof(keys));
out:
	kit_close(&kt);
	OPENSSL_cleanse(k1, sizeof(k1));
	OPENSSL_cleanse(k2, sizeof(k2));
	if (rc) {
		hs_fail(hs);
		return rc;
	}
	OPENSSL_cleanse(hs, sizeof(*hs));
	hs->state = NB_NOISE_HS_SPLIT;
	return 0;
}

void nb_noise_wipe(struct nb_noise_hs *hs)
{
	if (!hs)
		return;
	OPENSSL_cleanse(hs, sizeof(*hs));
	hs->state = NB_NOISE_HS_ZEROED;
}
