/* common/seal.c - the AEAD transport frames (ChaCha20-Poly1305), replay window and rekey limits. */
#include "common/seal.h"
#include "common/mutant.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "common/bytes.h"

const char *nb_seal_strerror(int err)
{
	switch (err) {
	case NB_SEAL_E_SHORT: return "frame too short";
	case NB_SEAL_E_TYPE: return "not a transport frame";
	case NB_SEAL_E_INDEX: return "unknown receiver index";
	case NB_SEAL_E_TAG: return "bad tag";
	case NB_SEAL_E_REPLAY: return "replayed or too old";
	case NB_SEAL_E_NOSPACE: return "no space";
	case NB_SEAL_E_TOO_BIG: return "frame or payload too long";
	case NB_SEAL_E_EXHAUSTED: return "counter exhausted";
	case NB_SEAL_E_EXPIRED: return "keys expired";
	case NB_SEAL_E_INVAL: return "invalid argument";
	case NB_SEAL_E_CRYPTO: return "crypto library failure";
	default: return err >= 0 ? "ok" : "unknown error";
	}
}

/* ---- Small helpers ------------------------------------------------------- */

static void put_u64be(uint8_t *p, uint64_t v)
{
	nb_put_u32be(p, (uint32_t)(v >> 32));
	nb_put_u32be(p + 4, (uint32_t)v);
}

static uint64_t get_u64be(const uint8_t *p)
{
	return (uint64_t)nb_get_u32be(p) << 32 | nb_get_u32be(p + 4);
}

/* Noise §5.1 ChaChaPoly: "32 bits of zeros followed by little-endian
 * encoding of n". */
static void noise_nonce(uint8_t nonce[12], uint64_t counter)
{
	uint8_t b[12] = { 0 };

	for (int i = 0; i < 8; i++)
		b[4 + i] = (uint8_t)(counter >> (8 * i));
	memcpy(nonce, b, sizeof(b));
}

static bool overlaps(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;

	if (an == 0 || bn == 0)
		return false;
	return x < y ? y - x < an : x - y < bn;
}

static uint64_t age(uint64_t created, uint64_t now)
{
	return now > created ? now - created : 0;
}

static int crypto_fail(void)
{
	ERR_clear_error();
	return NB_SEAL_E_CRYPTO;
}

/* A context keyed once with key, for encryption (enc = 1) or decryption. */
static EVP_CIPHER_CTX *ctx_new(const uint8_t key[NB_SEAL_KEY_LEN], int enc)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

	if (c == NULL)
		goto fail;
	if (EVP_CipherInit_ex(c, EVP_chacha20_poly1305(), NULL, key, NULL, enc) != 1)
		goto fail;
	return c;
fail:
	EVP_CIPHER_CTX_free(c);
	ERR_clear_error();
	return NULL;
}

/* ---- RFC 6479 window (WireGuard receive.c counter_validate, split in two:
 * a read-only check before the tag, the update after it). --------------- */

static bool replay_check(const struct nb_seal_replay *r, uint64_t c)
{
	uint64_t c1;

	if (c >= NB_SEAL_REJECT_AFTER_MESSAGES)
		return false;
	c1 = c + 1;
	if (c1 > r->counter)
		return true; /* ahead of everything seen */
	if (r->counter - c1 > NB_SEAL_WINDOW)
		return false; /* left of the window */
	return !(r->backtrack[(c1 / 64) % NB_SEAL_WINDOW_WORDS] & (UINT64_C(1) << (c1 % 64)));
}

/* Only after replay_check(r, c) and the tag: mark c. */
static void replay_update(struct nb_seal_replay *r, uint64_t c)
{
	uint64_t c1 = c + 1, index = c1 / 64;

	if (c1 > r->counter) {
		uint64_t cur = r->counter / 64, top = index - cur;

		if (top > NB_SEAL_WINDOW_WORDS)
			top = NB_SEAL_WINDOW_WORDS;
		for (uint64_t i = 1; i <= top; i++)
			r->backtrack[(cur + i) % NB_SEAL_WINDOW_WORDS] = 0;
		r->counter = c1;
	}
	r->backtrack[index % NB_SEAL_WINDOW_WORDS] |= UINT64_C(1) << (c1 % 64);
}

/* ---- Keypairs ------------------------------------------------------------ */

static void keypair_wipe(struct nb_seal_keypair *kp)
{
	EVP_CIPHER_CTX_free(kp->enc); /* frees clear the key schedule */
	EVP_CIPHER_CTX_free(kp->dec);
	OPENSSL_cleanse(kp, sizeof(*kp));
}

static int keypair_make(struct nb_seal_keypair *ret, const struct nb_seal_keys *k, uint64_t now)
{
	struct nb_seal_keypair kp;

	if (k == NULL || CRYPTO_memcmp(k->send, k->recv, NB_SEAL_KEY_LEN) == 0)
		return NB_SEAL_E_INVAL;
	memset(&kp, 0, sizeof(kp));
	kp.enc = ctx_new(k->send, 1);
	kp.dec = ctx_new(k->recv, 0);
	if (kp.enc == NULL || kp.dec == NULL) {
		keypair_wipe(&kp);
		return NB_SEAL_E_CRYPTO;
	}
	kp.valid = true;
	kp.local_index = k->local_index;
	kp.remote_index = k->remote_index;
	kp.created_ms = now;
	*ret = kp;
	return 0;
}

int nb_seal_init(struct nb_seal *s, const struct nb_seal_keys *k, uint64_t now)
{
	struct nb_seal_keypair kp;
	int rc;

	if (s == NULL)
		return NB_SEAL_E_INVAL;
	rc = keypair_make(&kp, k, now);
	if (rc != 0)
		return rc;
	memset(s, 0, sizeof(*s));
	s->cur = kp;
	return 0;
}

int nb_seal_rekey(struct nb_seal *s, const struct nb_seal_keys *k, uint64_t now)
{
	struct nb_seal_keypair kp;
	int rc;

	if (s == NULL || k == NULL || !s->cur.valid || k->local_index == s->cur.local_index)
		return NB_SEAL_E_INVAL;
	rc = keypair_make(&kp, k, now);
	if (rc != 0)
		return rc;
	keypair_wipe(&s->prev);
	s->prev = s->cur;
	EVP_CIPHER_CTX_free(s->prev.enc); /* the previous keypair never seals */
	s->prev.enc = NULL;
	s->prev_until_ms = now + NB_SEAL_PREV_GRACE_MS;
	s->cur = kp;
	return 0;
}

void nb_seal_wipe(struct nb_seal *s)
{
	if (s == NULL)
		return;
	keypair_wipe(&s->cur);
	keypair_wipe(&s->prev);
	OPENSSL_cleanse(s, sizeof(*s));
}

bool nb_seal_wants_rekey(const struct nb_seal *s, uint64_t now)
{
	return s->cur.tx_counter >= NB_SEAL_REKEY_AFTER_MESSAGES ||
	       age(s->cur.created_ms, now) >= NB_SEAL_REKEY_AFTER_TIME_MS;
}

bool nb_seal_dead(const struct nb_seal *s, uint64_t now)
{
	return !s->cur.valid || s->cur.tx_counter >= NB_SEAL_REJECT_AFTER_MESSAGES ||
	       age(s->cur.created_ms, now) >= NB_SEAL_REJECT_AFTER_TIME_MS;
}

/* ---- The data path -------------------------------------------------------- */

ssize_t nb_seal_seal(struct nb_seal *s, const uint8_t *pt, size_t n, uint8_t *out, size_t cap,
		     uint64_t now)
{
	struct nb_seal_keypair *kp;
	uint8_t nonce[12];
	int len = 0, fin = 0;

	if (s == NULL || out == NULL || (n > 0 && pt == NULL) || !s->cur.valid)
		return NB_SEAL_E_INVAL;
	if (n > NB_SEAL_MAX_PAYLOAD)
		return NB_SEAL_E_TOO_BIG;
	if (cap < NB_SEAL_OVERHEAD || cap - NB_SEAL_OVERHEAD < n)
		return NB_SEAL_E_NOSPACE;
	if (pt != out + NB_SEAL_HDR_LEN && overlaps(pt, n, out, NB_SEAL_OVERHEAD + n))
		return NB_SEAL_E_INVAL;
	kp = &s->cur;
	if (kp->tx_counter >= NB_SEAL_REJECT_AFTER_MESSAGES)
		return NB_SEAL_E_EXHAUSTED;
	if (age(kp->created_ms, now) >= NB_SEAL_REJECT_AFTER_TIME_MS)
		return NB_SEAL_E_EXPIRED;

	out[0] = NB_SEAL_TYPE;
	nb_put_u32be(out + 1, kp->remote_index);
	put_u64be(out + 5, kp->tx_counter);
	noise_nonce(nonce, kp->tx_counter);
	if (EVP_EncryptInit_ex(kp->enc, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(kp->enc, NULL, &len, out, NB_SEAL_HDR_LEN) != 1)
		return crypto_fail();
	if (n > 0 && (EVP_EncryptUpdate(kp->enc, out + NB_SEAL_HDR_LEN, &len, pt, (int)n) != 1 ||
		      len != (int)n))
		return crypto_fail();
	if (EVP_EncryptFinal_ex(kp->enc, out + NB_SEAL_HDR_LEN + n, &fin) != 1 || fin != 0 || /* writes nothing */
	    EVP_CIPHER_CTX_ctrl(kp->enc, EVP_CTRL_AEAD_GET_TAG, NB_SEAL_TAG_LEN,
				out + NB_SEAL_HDR_LEN + n) != 1)
		return crypto_fail();
	kp->tx_counter++;
	s->stats.tx++;
	return (ssize_t)(NB_SEAL_OVERHEAD + n);
}

int nb_seal_peek_index(const uint8_t *frame, size_t len, uint32_t *ret_index)
{
	if (frame == NULL || ret_index == NULL)
		return NB_SEAL_E_INVAL;
	if (len < NB_SEAL_OVERHEAD)
		return NB_SEAL_E_SHORT;
	if (frame[0] != NB_SEAL_TYPE)
		return NB_SEAL_E_TYPE;
	if (len > NB_SEAL_MAX_DATAGRAM)
		return NB_SEAL_E_TOO_BIG;
	*ret_index = nb_get_u32be(frame + 1);
	return 0;
}

/* The tag check: decrypt ct (n bytes) into out under kp. 0, NB_SEAL_E_TAG
 * (out wiped) or NB_SEAL_E_CRYPTO. */
static int aead_open(struct nb_seal_keypair *kp, uint64_t counter, const uint8_t *frame, size_t n,
		     uint8_t *out)
{
	const uint8_t *ct = frame + NB_SEAL_HDR_LEN;
	uint8_t nonce[12], tag[NB_SEAL_TAG_LEN], none[16];
	int len = 0, fin = 0, rc;

	memcpy(tag, ct + n, NB_SEAL_TAG_LEN); /* the ctrl takes a non-const pointer */
	noise_nonce(nonce, counter);
	if (EVP_DecryptInit_ex(kp->dec, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_DecryptUpdate(kp->dec, NULL, &len, frame, NB_SEAL_HDR_LEN) != 1 ||
	    (n > 0 && (EVP_DecryptUpdate(kp->dec, out, &len, ct, (int)n) != 1 || len != (int)n)) ||
	    EVP_CIPHER_CTX_ctrl(kp->dec, EVP_CTRL_AEAD_SET_TAG, NB_SEAL_TAG_LEN, tag) != 1) {
		rc = crypto_fail();
		goto fail;
	}
	/* EVP_DecryptFinal_ex: "returns 0 if the decrypt failed", which for
	 * an AEAD cipher is the tag (libcrypto keeps no other error then). */
	if (!NB_MUTANT_TAG_OK(EVP_DecryptFinal_ex(kp->dec, none, &fin) == 1)) { /* writes nothing */
		ERR_clear_error();
		rc = NB_SEAL_E_TAG;
		goto fail;
	}
	return 0;
fail:
	if (n > 0)
		OPENSSL_cleanse(out, n);
	return rc;
}

ssize_t nb_seal_open(struct nb_seal *s, const uint8_t *frame, size_t len, uint8_t *out, size_t cap,
		     uint64_t now)
{
	struct nb_seal_keypair *kp;
	uint32_t index;
	uint64_t counter;
	size_t n;
	int rc;

	if (s == NULL || frame == NULL || (out == NULL && cap > 0) || !s->cur.valid)
		return NB_SEAL_E_INVAL;
	rc = nb_seal_peek_index(frame, len, &index);
	if (rc != 0) {
		s->stats.rx_malformed++;
		return rc;
	}
	n = len - NB_SEAL_OVERHEAD;
	if (cap < n)
		return NB_SEAL_E_NOSPACE;
	if (n > 0 && overlaps(out, n, frame, len))
		return NB_SEAL_E_INVAL;

	if (index == s->cur.local_index) {
		kp = &s->cur;
	} else if (s->prev.valid && index == s->prev.local_index) {
		kp = &s->prev;
		if (now >= s->prev_until_ms) {
			s->stats.rx_expired++;
			return NB_SEAL_E_EXPIRED;
		}
	} else {
		s->stats.rx_bad_index++;
		return NB_SEAL_E_INDEX;
	}
	if (age(kp->created_ms, now) >= NB_SEAL_REJECT_AFTER_TIME_MS) {
		s->stats.rx_expired++;
		return NB_SEAL_E_EXPIRED;
	}
	counter = get_u64be(frame + 5);
	if (counter >= NB_SEAL_REJECT_AFTER_MESSAGES) {
		s->stats.rx_replay++;
		return NB_SEAL_E_EXHAUSTED;
	}
	if (!replay_check(&kp->rx, counter)) { /* the cheap pre-check */
		s->stats.rx_replay++;
		return NB_SEAL_E_REPLAY;
	}
	rc = aead_open(kp, counter, frame, n, out);
	if (rc != 0) {
		if (rc == NB_SEAL_E_TAG)
			s->stats.rx_bad_tag++;
		return rc;
	}
	/* RFC 6479: the window moves only for a frame whose tag verified. */
	replay_update(&kp->rx, counter);
	s->stats.rx++;
	if (kp == &s->prev)
		s->stats.rx_prev++;
	return (ssize_t)n;
}

int nb_seal_chachapoly(const uint8_t key[NB_SEAL_KEY_LEN], const uint8_t nonce[12],
		       const uint8_t *ad, size_t ad_len, const uint8_t *in, size_t n, uint8_t *out,
		       uint8_t tag[NB_SEAL_TAG_LEN])
{
	EVP_CIPHER_CTX *c = NULL;
	int len = 0, rc = NB_SEAL_E_CRYPTO;

	if (key == NULL || nonce == NULL || tag == NULL || (ad_len > 0 && ad == NULL) ||
	    (n > 0 && (in == NULL || out == NULL)) || ad_len > 65536 || n > 65536)
		return NB_SEAL_E_INVAL;
	c = ctx_new(key, 1);
	if (c == NULL)
		goto out;
	if (EVP_EncryptInit_ex(c, NULL, NULL, NULL, nonce) != 1 ||
	    (ad_len > 0 && EVP_EncryptUpdate(c, NULL, &len, ad, (int)ad_len) != 1) ||
	    (n > 0 && EVP_EncryptUpdate(c, out, &len, in, (int)n) != 1) ||
	    EVP_EncryptFinal_ex(c, tag, &len) != 1 || /* writes nothing */
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, NB_SEAL_TAG_LEN, tag) != 1) {
		ERR_clear_error();
		goto out;
	}
	rc = 0;
out:
	EVP_CIPHER_CTX_free(c);
	return rc;
}
