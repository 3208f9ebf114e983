/* tests/unit/test_noise.c - X25519 keys and the Noise IK handshake: RFC 7748
 * and the published Noise vectors (read from flynn/noise's vectors.txt at
 * test time) in both roles, round trips, every-byte tampering, every-prefix
 * truncation, wrong keys, reflection, replay, low-order points, state misuse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/keys.h"
#include "common/noise.h"

#ifndef NB_NOISE_VECTORS
#error "NB_NOISE_VECTORS: path of flynn/noise's vectors.txt"
#endif

static const char PROLOGUE[] = "natbroker test prologue";

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = strlen(s), i;

	assert_true(n % 2 == 0 && n / 2 <= cap);
	for (i = 0; i < n / 2; i++) {
		unsigned v;
		char b[3] = { s[2 * i], s[2 * i + 1], 0 };
		char *end = NULL;

		v = (unsigned)strtoul(b, &end, 16);
		assert_true(end == b + 2);
		out[i] = (uint8_t)v;
	}
	return n / 2;
}

static void rand_key(uint8_t k[32])
{
	assert_int_equal(RAND_bytes(k, 32), 1);
}

/* ---- keys ---- */

static void test_rfc7748(void **state)
{
	uint8_t a[32], ap[32], b[32], bp[32], want[32], k[32], got[32];

	(void)state;
	/* RFC 7748 §6.1 */
	unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", a, 32);
	unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", ap, 32);
	unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", b, 32);
	unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", bp, 32);
	unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", want, 32);
	assert_int_equal(nb_key_public(a, k), 0);
	assert_memory_equal(k, ap, 32);
	assert_int_equal(nb_key_public(b, k), 0);
	assert_memory_equal(k, bp, 32);
	assert_int_equal(nb_key_dh(a, bp, got), 0);
	assert_memory_equal(got, want, 32);
	assert_int_equal(nb_key_dh(b, ap, got), 0);
	assert_memory_equal(got, want, 32);
}

/* nb_key_dh imports our key with a placeholder public half and nb_key_public
 * goes through the derive (keys.c): check both against OpenSSL's plain path. */
static void test_dh_matches_plain_import(void **state)
{
	(void)state;
	for (int i = 0; i < 16; i++) {
		uint8_t a[32], ap[32], b[32], bp[32], s1[32], s2[32], s3[32];
		size_t len = 32;
		EVP_PKEY *ka, *kb;
		EVP_PKEY_CTX *c;

		assert_int_equal(nb_key_generate(a, ap), 0);
		assert_int_equal(nb_key_generate(b, bp), 0);
		assert_int_equal(nb_key_dh(a, bp, s1), 0);
		assert_int_equal(nb_key_dh(b, ap, s2), 0);
		assert_memory_equal(s1, s2, 32);
		ka = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, a, 32);
		kb = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, bp, 32);
		c = EVP_PKEY_CTX_new(ka, NULL);
		assert_non_null(c);
		assert_int_equal(EVP_PKEY_derive_init(c), 1);
		assert_int_equal(EVP_PKEY_derive_set_peer(c, kb), 1);
		assert_int_equal(EVP_PKEY_derive(c, s3, &len), 1);
		assert_memory_equal(s1, s3, 32);
		/* nb_key_public = X25519(a, 9) = OpenSSL's own public key. */
		len = 32;
		assert_int_equal(EVP_PKEY_get_raw_public_key(ka, s3, &len), 1);
		assert_memory_equal(ap, s3, 32);
		EVP_PKEY_CTX_free(c);
		EVP_PKEY_free(ka);
		EVP_PKEY_free(kb);
	}
}

/* Points of small order (and their non-canonical encodings): libsodium's
 * blocklist, RFC 7748 §6.1's "all-zero value" case. */
static const char *const LOW_ORDER[] = {
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0100000000000000000000000000000000000000000000000000000000000000",
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"0000000000000000000000000000000000000000000000000000000000000080",
	"0100000000000000000000000000000000000000000000000000000000000080",
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
};
#define N_LOW_ORDER (sizeof(LOW_ORDER) / sizeof(LOW_ORDER[0]))

static void test_dh_low_order(void **state)
{
	uint8_t priv[32], pub[32], out[32], keep[32];

	(void)state;
	memset(out, 0xAA, sizeof(out));
	memcpy(keep, out, 32);
	assert_int_equal(nb_key_generate(priv, pub), 0);
	for (size_t i = 0; i < N_LOW_ORDER; i++) {
		unhex(LOW_ORDER[i], pub, 32);
		assert_int_equal(nb_key_dh(priv, pub, out), NB_KEY_E_ZERO);
		assert_memory_equal(out, keep, 32); /* untouched */
	}
	assert_string_equal(nb_key_strerror(NB_KEY_E_ZERO), "all-zero shared secret (low-order public key)");
}

static void test_key_text(void **state)
{
	uint8_t k[32], k2[32];
	char t[NB_KEY_TEXT_LEN + 1], bad[NB_KEY_TEXT_LEN + 2];
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

	(void)state;
	for (int i = 0; i < 200; i++) {
		rand_key(k);
		if (i == 0)
			memset(k, 0, 32);
		if (i == 1)
			memset(k, 0xff, 32);
		nb_key_to_text(k, t);
		assert_int_equal(strlen(t), NB_KEY_TEXT_LEN);
		assert_int_equal(nb_key_from_text(t, strlen(t), k2), 0);
		assert_memory_equal(k, k2, 32);
		assert_true(nb_key_equal(k, k2));
		k2[31] ^= 1;
		assert_false(nb_key_equal(k, k2));
	}
	/* RFC 4648 §5 by another hand (Python base64.urlsafe_b64encode). */
	for (int i = 0; i < 32; i++)
		k[i] = (uint8_t)(i * 37 + 5);
	nb_key_to_text(k, t);
	assert_string_equal(t, "BSpPdJm-4wgtUnecweYLMFV6n8TpDjNYfaLH7BE2W4A");

	/* Every character of the alphabet in every position decodes (when the
	 * last one is canonical); every other byte value is refused. */
	for (int c = 0; c < 256; c++) {
		bool ok = c != 0 && strchr(alphabet, c) != NULL;

		memcpy(bad, t, sizeof(t));
		bad[10] = (char)c;
		assert_int_equal(nb_key_from_text(bad, NB_KEY_TEXT_LEN, k2), ok ? 0 : NB_KEY_E_INVAL);
	}
	/* Non-canonical: the last character's two unused bits set. */
	memcpy(bad, t, sizeof(t));
	for (const char *p = alphabet; *p; p++) {
		int v = (int)(p - alphabet);

		bad[42] = *p;
		assert_int_equal(nb_key_from_text(bad, NB_KEY_TEXT_LEN, k2), (v & 3) ? NB_KEY_E_INVAL : 0);
	}
	/* Wrong lengths, padding, standard base64's characters. */
	memset(k2, 0x5A, 32);
	memcpy(k, k2, 32);
	assert_int_equal(nb_key_from_text(t, 0, k2), NB_KEY_E_INVAL);
	assert_int_equal(nb_key_from_text(t, 42, k2), NB_KEY_E_INVAL);
	memcpy(bad, t, sizeof(t));
	bad[43] = '=';
	bad[44] = 0;
	assert_int_equal(nb_key_from_text(bad, 44, k2), NB_KEY_E_INVAL);
	bad[43] = 'A';
	assert_int_equal(nb_key_from_text(bad, 44, k2), NB_KEY_E_INVAL);
	memcpy(bad, t, sizeof(t));
	bad[5] = '+';
	assert_int_equal(nb_key_from_text(bad, 43, k2), NB_KEY_E_INVAL);
	bad[5] = '/';
	assert_int_equal(nb_key_from_text(bad, 43, k2), NB_KEY_E_INVAL);
	assert_int_equal(nb_key_from_text(NULL, 43, k2), NB_KEY_E_INVAL);
	assert_memory_equal(k, k2, 32); /* untouched by every failure */
}

/* ---- AEAD ---- */

static void test_aead(void **state)
{
	uint8_t key[32], pt[100], ct[116], out[100];
	static const uint8_t ad[] = "header";

	(void)state;
	/* Known answer for a counter whose bytes all differ, computed with
	 * Python's cryptography: ChaCha20Poly1305(key 00..1f).encrypt(
	 * 00000000 || LE64(0x0102030405060708), "noise", AD "natbroker"). */
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	unhex("9e26c497ce4837c0d160435f46e21e4cd236309082", out, sizeof(out));
	assert_int_equal(nb_noise_aead_seal(key, 0x0102030405060708u, (const uint8_t *)"natbroker", 9,
					    (const uint8_t *)"noise", 5, ct),
			 0);
	assert_memory_equal(ct, out, 21);
	assert_int_equal(nb_noise_aead_open(key, 0x0102030405060708u, (const uint8_t *)"natbroker", 9, out, 21, pt), 0);
	assert_memory_equal(pt, "noise", 5);

	rand_key(key);
	for (size_t i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)i;
	assert_int_equal(nb_noise_aead_seal(key, 7, ad, sizeof(ad), pt, sizeof(pt), ct), 0);
	assert_int_equal(nb_noise_aead_open(key, 7, ad, sizeof(ad), ct, sizeof(ct), out), 0);
	assert_memory_equal(out, pt, sizeof(pt));
	assert_int_equal(nb_noise_aead_open(key, 8, ad, sizeof(ad), ct, sizeof(ct), out), NB_NOISE_E_MAC);
	assert_int_equal(nb_noise_aead_open(key, 7, ad, sizeof(ad) - 1, ct, sizeof(ct), out), NB_NOISE_E_MAC);
	for (size_t i = 0; i < sizeof(ct); i++) {
		ct[i] ^= 0x80;
		assert_int_equal(nb_noise_aead_open(key, 7, ad, sizeof(ad), ct, sizeof(ct), out), NB_NOISE_E_MAC);
		ct[i] ^= 0x80;
	}
	assert_int_equal(nb_noise_aead_open(key, 7, ad, sizeof(ad), ct, 15, out), NB_NOISE_E_SHORT);
	/* n = 2^64 - 1 is reserved (Noise §5.1). */
	assert_int_equal(nb_noise_aead_seal(key, UINT64_MAX, NULL, 0, pt, 1, ct), NB_NOISE_E_INVAL);
	/* In place, empty plaintext. */
	memcpy(ct, pt, sizeof(pt));
	assert_int_equal(nb_noise_aead_seal(key, 0, NULL, 0, ct, sizeof(pt), ct), 0);
	assert_int_equal(nb_noise_aead_open(key, 0, NULL, 0, ct, sizeof(ct), ct), 0);
	assert_memory_equal(ct, pt, sizeof(pt));
	assert_int_equal(nb_noise_aead_seal(key, 1, NULL, 0, NULL, 0, ct), 0);
	assert_int_equal(nb_noise_aead_open(key, 1, NULL, 0, ct, 16, NULL), 0);
}

/* ---- Published vectors ---- */

struct vec {
	char handshake[64];
	uint8_t init_static[32], resp_static[32], init_e[32], resp_e[32];
	uint8_t prologue[64];
	size_t plen;
	int nmsg;
	uint8_t payload[8][300], ct[8][400];
	size_t payload_len[8], ct_len[8];
};

static bool parse_line(struct vec *v, char *line)
{
	char *eq = strchr(line, '=');
	const char *val;
	int i;

	if (!eq)
		return false;
	*eq = 0;
	val = eq + 1;
	if (strcmp(line, "handshake") == 0) {
		assert_true(strlen(val) < sizeof(v->handshake));
		memcpy(v->handshake, val, strlen(val) + 1);
	} else if (strcmp(line, "init_static") == 0) {
		unhex(val, v->init_static, 32);
	} else if (strcmp(line, "resp_static") == 0) {
		unhex(val, v->resp_static, 32);
	} else if (strcmp(line, "gen_init_ephemeral") == 0) {
		unhex(val, v->init_e, 32);
	} else if (strcmp(line, "gen_resp_ephemeral") == 0) {
		unhex(val, v->resp_e, 32);
	} else if (strcmp(line, "prologue") == 0) {
		v->plen = unhex(val, v->prologue, sizeof(v->prologue));
	} else if (strncmp(line, "msg_", 4) == 0 && line[4] >= '0' && line[4] <= '7' && line[5] == '_') {
		i = line[4] - '0';
		if (strstr(line, "_payload"))
			v->payload_len[i] = unhex(val, v->payload[i], sizeof(v->payload[i]));
		else if (strstr(line, "_ciphertext"))
			v->ct_len[i] = unhex(val, v->ct[i], sizeof(v->ct[i]));
		if (i + 1 > v->nmsg)
			v->nmsg = i + 1;
	} else {
		/* A field this runner does not know (psk, remote keys...):
		 * not expected in the plain IK blocks. */
		return strcmp(v->handshake, "Noise_IK_25519_ChaChaPoly_SHA256") != 0 ? true : false;
	}
	return true;
}

static void run_vector(const struct vec *v)
{
	struct nb_noise_hs ini, rsp;
	struct nb_noise_keys ki, kr;
	uint8_t resp_pub[32], init_pub[32], frame[600], buf[600], payload[NB_NOISE_MAX_PAYLOAD];
	ssize_t n;
	uint64_t ni = 0, nr = 0;

	assert_true(v->nmsg >= 2);
	assert_int_equal(nb_key_public(v->resp_static, resp_pub), 0);
	assert_int_equal(nb_key_public(v->init_static, init_pub), 0);

	/* msg_0, initiator role: our bytes = the published bytes. */
	assert_int_equal(nb_noise_init_initiator(&ini, v->init_static, resp_pub, v->prologue, v->plen), 0);
	assert_int_equal(nb_noise_set_ephemeral_for_test(&ini, v->init_e), 0);
	n = nb_noise_write_init(&ini, 0x01020304, v->payload[0], v->payload_len[0], frame, sizeof(frame));
	assert_int_equal(n, (ssize_t)(NB_NOISE_INIT_HDR_LEN + v->ct_len[0]));
	assert_int_equal(frame[0], 0xD1);
	assert_memory_equal(frame + 1, "\x01\x02\x03\x04", 4);
	assert_memory_equal(frame + NB_NOISE_INIT_HDR_LEN, v->ct[0], v->ct_len[0]);

	/* msg_0, responder role: read the published bytes. */
	buf[0] = 0xD1;
	memcpy(buf + 1, "\x0a\x0b\x0c\x0d", 4);
	memcpy(buf + 5, v->ct[0], v->ct_len[0]);
	assert_int_equal(nb_noise_init_responder(&rsp, v->resp_static, v->prologue, v->plen), 0);
	n = nb_noise_read_init(&rsp, buf, 5 + v->ct_len[0], payload, sizeof(payload));
	assert_int_equal(n, (ssize_t)v->payload_len[0]);
	assert_memory_equal(payload, v->payload[0], v->payload_len[0]);
	assert_memory_equal(nb_noise_remote_static(&rsp), init_pub, 32);
	assert_int_equal(nb_noise_remote_index(&rsp), 0x0a0b0c0d);

	/* msg_1, responder role. */
	assert_int_equal(nb_noise_set_ephemeral_for_test(&rsp, v->resp_e), 0);
	n = nb_noise_write_resp(&rsp, 0x11223344, v->payload[1], v->payload_len[1], frame, sizeof(frame));
	assert_int_equal(n, (ssize_t)(NB_NOISE_RESP_HDR_LEN + v->ct_len[1]));
	assert_memory_equal(frame, "\xD2\x11\x22\x33\x44\x0a\x0b\x0c\x0d", 9);
	assert_memory_equal(frame + NB_NOISE_RESP_HDR_LEN, v->ct[1], v->ct_len[1]);

	/* msg_1, initiator role: read the published bytes. */
	memcpy(buf, "\xD2\x11\x22\x33\x44\x01\x02\x03\x04", 9);
	memcpy(buf + 9, v->ct[1], v->ct_len[1]);
	n = nb_noise_read_resp(&ini, buf, 9 + v->ct_len[1], payload, sizeof(payload));
	assert_int_equal(n, (ssize_t)v->payload_len[1]);
	assert_memory_equal(payload, v->payload[1], v->payload_len[1]);

	assert_int_equal(nb_noise_split(&ini, &ki), 0);
	assert_int_equal(nb_noise_split(&rsp, &kr), 0);
	assert_memory_equal(ki.send, kr.recv, 32);
	assert_memory_equal(ki.recv, kr.send, 32);
	assert_memory_equal(ki.handshake_hash, kr.handshake_hash, 32);
	assert_memory_equal(ki.remote_static, resp_pub, 32);
	assert_int_equal(ki.remote_index, 0x11223344);
	assert_int_equal(kr.remote_index, 0x0a0b0c0d);

	/* msg_2..: transport messages, alternating initiator -> responder
	 * (even) and responder -> initiator (odd), each sender's n from 0,
	 * empty AD. */
	for (int i = 2; i < v->nmsg; i++) {
		bool from_init = i % 2 == 0;
		const uint8_t *sk = from_init ? ki.send : kr.send, *rk = from_init ? kr.recv : ki.recv;
		uint64_t *ctr = from_init ? &ni : &nr;

		assert_int_equal(v->ct_len[i], v->payload_len[i] + 16);
		assert_int_equal(nb_noise_aead_seal(sk, *ctr, NULL, 0, v->payload[i], v->payload_len[i], frame), 0);
		assert_memory_equal(frame, v->ct[i], v->ct_len[i]);
		assert_int_equal(nb_noise_aead_open(rk, *ctr, NULL, 0, v->ct[i], v->ct_len[i], buf), 0);
		assert_memory_equal(buf, v->payload[i], v->payload_len[i]);
		(*ctr)++;
	}
}

static void test_vectors(void **state)
{
	FILE *f = fopen(NB_NOISE_VECTORS, "r");
	static struct vec v;
	char line[4096];
	int blocks = 0, with_payload = 0, with_prologue = 0;
	bool in = false;

	(void)state;
	if (!f) {
		fail_msg("cannot open %s: the Noise test vectors come from Debian's golang-github-flynn-noise-dev "
			 "(tests/setup.sh installs it)",
			 NB_NOISE_VECTORS);
	}
	memset(&v, 0, sizeof(v));
	for (;;) {
		char *got = fgets(line, sizeof(line), f);
		size_t l = got ? strlen(line) : 0;

		while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
			line[--l] = 0;
		if (!got || l == 0) {
			if (in && strcmp(v.handshake, "Noise_IK_25519_ChaChaPoly_SHA256") == 0) {
				run_vector(&v);
				blocks++;
				with_payload += v.payload_len[0] > 0;
				with_prologue += v.plen > 0;
			}
			memset(&v, 0, sizeof(v));
			in = false;
			if (!got)
				break;
			continue;
		}
		assert_true(l < sizeof(line) - 1);
		in = true;
		assert_true(parse_line(&v, line));
	}
	fclose(f);
	print_message("Noise_IK_25519_ChaChaPoly_SHA256: %d published vectors reproduced (%d with payloads, "
		      "%d with a prologue)\n",
		      blocks, with_payload, with_prologue);
	assert_true(blocks >= 4);
	assert_true(with_payload >= 1 && with_prologue >= 1);
}

/* ---- Round trips and attacks ---- */

struct pairkeys {
	uint8_t ip[32], iP[32], rp[32], rP[32];
};

static void make_keys(struct pairkeys *k)
{
	assert_int_equal(nb_key_generate(k->ip, k->iP), 0);
	assert_int_equal(nb_key_generate(k->rp, k->rP), 0);
}

/* One initiation + response; returns both frames. */
static void handshake(const struct pairkeys *k, struct nb_noise_hs *ini, struct nb_noise_hs *rsp, uint8_t *m1,
		      size_t *l1, uint8_t *m2, size_t *l2, size_t plen)
{
	uint8_t payload[NB_NOISE_MAX_PAYLOAD], got[NB_NOISE_MAX_PAYLOAD];
	ssize_t n;

	for (size_t i = 0; i < plen; i++)
		payload[i] = (uint8_t)(i ^ 0x5c);
	assert_int_equal(nb_noise_init_initiator(ini, k->ip, k->rP, (const uint8_t *)PROLOGUE, sizeof(PROLOGUE)), 0);
	n = nb_noise_write_init(ini, 111, payload, plen, m1, NB_NOISE_INIT_MAX);
	assert_int_equal(n, (ssize_t)NB_NOISE_INIT_LEN(plen));
	*l1 = (size_t)n;
	assert_int_equal(nb_noise_frame_type(m1, *l1), NB_NOISE_TYPE_INIT);
	assert_int_equal(nb_noise_init_responder_with_public(rsp, k->rp, k->rP, (const uint8_t *)PROLOGUE,
							     sizeof(PROLOGUE)),
			 0);
	n = nb_noise_read_init(rsp, m1, *l1, got, sizeof(got));
	assert_int_equal(n, (ssize_t)plen);
	assert_memory_equal(got, payload, plen);
	assert_memory_equal(nb_noise_remote_static(rsp), k->iP, 32);
	assert_int_equal(nb_noise_remote_index(rsp), 111);
	n = nb_noise_write_resp(rsp, 222, payload, plen, m2, NB_NOISE_RESP_MAX);
	assert_int_equal(n, (ssize_t)NB_NOISE_RESP_LEN(plen));
	*l2 = (size_t)n;
	assert_int_equal(nb_noise_frame_type(m2, *l2), NB_NOISE_TYPE_RESP);
}

static void test_round_trip(void **state)
{
	struct pairkeys k;
	struct nb_noise_hs ini, rsp;
	struct nb_noise_keys ki, kr;
	uint8_t m1[NB_NOISE_INIT_MAX], m2[NB_NOISE_RESP_MAX], got[NB_NOISE_MAX_PAYLOAD], ct[64], pt[64];
	size_t l1, l2;

	(void)state;
	for (size_t plen = 0; plen <= NB_NOISE_MAX_PAYLOAD; plen += (plen < 20 ? 1 : 37)) {
		make_keys(&k);
		handshake(&k, &ini, &rsp, m1, &l1, m2, &l2, plen);
		assert_int_equal(nb_noise_read_resp(&ini, m2, l2, got, sizeof(got)), (ssize_t)plen);
		for (size_t i = 0; i < plen; i++)
			assert_int_equal(got[i], (uint8_t)(i ^ 0x5c));
		assert_int_equal(nb_noise_state(&ini), NB_NOISE_HS_CONSUMED_RESPONSE);
		assert_int_equal(nb_noise_state(&rsp), NB_NOISE_HS_CREATED_RESPONSE);
		assert_int_equal(nb_noise_split(&ini, &ki), 0);
		assert_int_equal(nb_noise_split(&rsp, &kr), 0);
		assert_int_equal(nb_noise_state(&ini), NB_NOISE_HS_SPLIT);
		assert_memory_equal(ki.send, kr.recv, 32);
		assert_memory_equal(ki.recv, kr.send, 32);
		assert_memory_not_equal(ki.send, ki.recv, 32);
		assert_memory_equal(ki.handshake_hash, kr.handshake_hash, 32);
		assert_memory_equal(ki.remote_static, k.rP, 32);
		assert_memory_equal(kr.remote_static, k.iP, 32);
		assert_int_equal(ki.local_index, 111);
		assert_int_equal(ki.remote_index, 222);
		assert_int_equal(kr.local_index, 222);
		assert_int_equal(kr.remote_index, 111);
		/* A transport message each way. */
		assert_int_equal(nb_noise_aead_seal(ki.send, 0, NULL, 0, (const uint8_t *)"ping", 4, ct), 0);
		assert_int_equal(nb_noise_aead_open(kr.recv, 0, NULL, 0, ct, 20, pt), 0);
		assert_memory_equal(pt, "ping", 4);
		assert_int_equal(nb_noise_aead_seal(kr.send, 0, NULL, 0, (const uint8_t *)"pong", 4, ct), 0);
		assert_int_equal(nb_noise_aead_open(kr.recv, 0, NULL, 0, ct, 20, pt), NB_NOISE_E_MAC); /* reflected */
		assert_int_equal(nb_noise_aead_open(ki.recv, 0, NULL, 0, ct, 20, pt), 0);
	}
	/* The plain nb_noise_init_responder (computes its public key) agrees. */
	make_keys(&k);
	assert_int_equal(nb_noise_init_initiator(&ini, k.ip, k.rP, NULL, 0), 0);
	assert_int_equal(nb_noise_write_init(&ini, 1, NULL, 0, m1, sizeof(m1)), NB_NOISE_INIT_MIN);
	assert_int_equal(nb_noise_init_responder(&rsp, k.rp, NULL, 0), 0);
	assert_int_equal(nb_noise_read_init(&rsp, m1, NB_NOISE_INIT_MIN, NULL, 0), 0);
	/* A different prologue on one side: refused. */
	assert_int_equal(nb_noise_init_initiator(&ini, k.ip, k.rP, (const uint8_t *)"a", 1), 0);
	assert_int_equal(nb_noise_write_init(&ini, 1, NULL, 0, m1, sizeof(m1)), NB_NOISE_INIT_MIN);
	assert_int_equal(nb_noise_init_responder(&rsp, k.rp, (const uint8_t *)"b", 1), 0);
	assert_int_equal(nb_noise_read_init(&rsp, m1, NB_NOISE_INIT_MIN, NULL, 0), NB_NOISE_E_MAC);
}

static void test_wrong_keys(void **state)
{
	struct pairkeys k, other;
	struct nb_noise_hs ini, rsp;
	uint8_t m1[NB_NOISE_INIT_MAX], got[16];
	ssize_t n;

	(void)state;
	make_keys(&k);
	make_keys(&other);
	/* The initiator thinks the responder is someone else. */
	assert_int_equal(nb_noise_init_initiator(&ini, k.ip, other.rP, NULL, 0), 0);
	n = nb_noise_write_init(&ini, 1, (const uint8_t *)"x", 1, m1, sizeof(m1));
	assert_true(n > 0);
	assert_int_equal(nb_noise_init_responder_with_public(&rsp, k.rp, k.rP, NULL, 0), 0);
	assert_int_equal(nb_noise_read_init(&rsp, m1, (size_t)n, got, sizeof(got)), NB_NOISE_E_MAC);
	assert_int_equal(nb_noise_state(&rsp), NB_NOISE_HS_FAILED);
	assert_null(nb_noise_remote_static(&rsp));
	/* The responder given a public key that is not its own. */
	assert_int_equal(nb_noise_init_initiator(&ini, k.ip, k.rP, NULL, 0), 0);
	n = nb_noise_write_init(&ini, 1, NULL, 0, m1, sizeof(m1));
	assert_int_equal(nb_noise_init_responder_with_public(&rsp, k.rp, other.rP, NULL, 0), 0);
	assert_int_equal(nb_noise_read_init(&rsp, m1, (size_t)n, NULL, 0), NB_NOISE_E_MAC);
}

static void test_flip_every_byte(void **state)
{
	struct pairkeys k;
	struct nb_noise_hs ini, rsp, r2, i2;
	struct nb_noise_keys ki;
	uint8_t m1[NB_NOISE_INIT_MAX], m2[NB_NOISE_RESP_MAX], r2m[NB_NOISE_RESP_MAX], got[NB_NOISE_MAX_PAYLOAD];
	size_t l1, l2;
	ssize_t n;

	(void)state;
	make_keys(&k);
	handshake(&k, &ini, &rsp, m1, &l1, m2, &l2, 5);
	/* msg1: every byte of the Noise message, the type byte: refused.
	 * The sender_index bytes are not authenticated (noise.h): the
	 * responder answers to the changed index, and the initiator then
	 * refuses that response. */
	for (size_t i = 0; i < l1; i++) {
		m1[i] ^= 0x01;
		assert_int_equal(nb_noise_init_responder_with_public(&r2, k.rp, k.rP, (const uint8_t *)PROLOGUE,
								     sizeof(PROLOGUE)),
				 0);
		n = nb_noise_read_init(&r2, m1, l1, got, sizeof(got));
		if (i >= 1 && i < 5) {
			assert_int_equal(n, 5);
			n = nb_noise_write_resp(&r2, 9, NULL, 0, r2m, sizeof(r2m));
			assert_true(n > 0);
			i2 = ini; /* a copy of the pending initiation */
			assert_int_equal(nb_noise_read_resp(&i2, r2m, (size_t)n, NULL, 0), NB_NOISE_E_INDEX);
			assert_int_equal(nb_noise_state(&i2), NB_NOISE_HS_FAILED);
		} else {
			assert_true(n < 0);
			assert_int_equal(n, i == 0 ? NB_NOISE_E_TYPE
						   : (i < 5 + 32 ? (n == NB_NOISE_E_ZERO ? n : NB_NOISE_E_MAC)
								 : NB_NOISE_E_MAC));
			assert_int_equal(nb_noise_state(&r2), NB_NOISE_HS_FAILED);
			/* FAILED is for good: the intact frame is refused too. */
			m1[i] ^= 0x01;
			assert_int_equal(nb_noise_read_init(&r2, m1, l1, got, sizeof(got)), NB_NOISE_E_STATE);
			m1[i] ^= 0x01;
		}
		m1[i] ^= 0x01;
	}
	/* msg2: every byte refused, except the responder's sender_index
	 * (bytes 1-4), which the initiator takes as the remote index. */
	for (size_t i = 0; i < l2; i++) {
		i2 = ini;
		m2[i] ^= 0x80;
		n = nb_noise_read_resp(&i2, m2, l2, got, sizeof(got));
		if (i >= 1 && i < 5) {
			assert_int_equal(n, 5);
			assert_int_equal(nb_noise_split(&i2, &ki), 0);
			assert_int_not_equal(ki.remote_index, 222);
		} else {
			assert_int_equal(n, i == 0 ? NB_NOISE_E_TYPE : i < 9 ? NB_NOISE_E_INDEX : NB_NOISE_E_MAC);
			assert_int_equal(nb_noise_state(&i2), NB_NOISE_HS_FAILED);
		}
		m2[i] ^= 0x80;
	}
	/* The intact response still completes the original. */
	assert_int_equal(nb_noise_read_resp(&ini, m2, l2, got, sizeof(got)), 5);
}

static void test_truncation_loop(void **state)
{
	struct pairkeys k;
	struct nb_noise_hs ini, rsp, r2, i2;
	uint8_t m1[NB_NOISE_INIT_MAX + 1], m2[NB_NOISE_RESP_MAX + 1], got[NB_NOISE_MAX_PAYLOAD];
	size_t l1, l2;
	ssize_t n;

	(void)state;
	make_keys(&k);
	handshake(&k, &ini, &rsp, m1, &l1, m2, &l2, 3);
	for (size_t len = 0; len < l1; len++) {
		assert_int_equal(nb_noise_init_responder_with_public(&r2, k.rp, k.rP, (const uint8_t *)PROLOGUE,
								     sizeof(PROLOGUE)),
				 0);
		n = nb_noise_read_init(&r2, m1, len, got, sizeof(got));
		assert_true(n == (len < NB_NOISE_INIT_MIN ? NB_NOISE_E_SHORT : NB_NOISE_E_MAC));
		assert_int_equal(nb_noise_state(&r2), NB_NOISE_HS_FAILED);
		assert_true(nb_noise_frame_type(m1, len) < 0 || len >= NB_NOISE_INIT_MIN);
	}
	/* One byte too many: the payload is one longer, and its tag fails. */
	m1[l1] = 0;
	assert_int_equal(nb_noise_init_responder_with_public(&r2, k.rp, k.rP, (const uint8_t *)PROLOGUE,
							     sizeof(PROLOGUE)),
			 0);
	assert_int_equal(nb_noise_read_init(&r2, m1, l1 + 1, got, sizeof(got)), NB_NOISE_E_MAC);
	for (size_t len = 0; len < l2; len++) {
		i2 = ini;
		n = nb_noise_read_resp(&i2, m2, len, got, sizeof(got));
		assert_true(n == (len < NB_NOISE_RESP_MIN ? NB_NOISE_E_SHORT : NB_NOISE_E_MAC));
		assert_int_equal(nb_noise_state(&i2), NB_NOISE_HS_FAILED);
	}
	i2 = ini;
	m2[l2] = 0;
	assert_int_equal(nb_noise_read_resp(&i2, m2, l2 + 1, got, sizeof(got)), NB_NOISE_E_MAC);
	/* Too long for any payload, too little room for the payload. */
	assert_int_equal(nb_noise_init_responder_with_public(&r2, k.rp, k.rP, NULL, 0), 0);
	assert_int_equal(nb_noise_read_init(&r2, m1, NB_NOISE_INIT_MAX + 1, got, sizeof(got)), NB_NOISE_E_TOO_BIG);
	assert_int_equal(nb_noise_frame_type(m1, NB_NOISE_INIT_MAX + 1), NB_NOISE_E_TOO_BIG);
	assert_int_equal(nb_noise_init_responder_with_public(&r2, k.rp, k.rP, (const uint8_t *)PROLOGUE,
							     sizeof(PROLOGUE)),
			 0);
	assert_int_equal(nb_noise_read_init(&r2, m1, l1, got, 2), NB_NOISE_E_NOSPACE);
	i2 = ini;
	assert_int_equal(nb_noise_read_resp(&i2, m2, l2, got, 2), NB_NOISE_E_NOSPACE);
	/* The original still works. */
	assert_int_equal(nb_noise_read_resp(&ini, m2, l2, got, sizeof(got)), 3);
}

static void test_reflection_and_replay(void **state)
{
	struct pairkeys k;
	struct nb_noise_hs ini, rsp, r2, i2;
	struct nb_noise_keys ki, kr, kr2;
	uint8_t m1[NB_NOISE_INIT_MAX], m2[NB_NOISE_RESP_MAX], m2b[NB_NOISE_RESP_MAX], got[NB_NOISE_MAX_PAYLOAD];
	size_t l1, l2;
	ssize_t n;

	(void)state;
	make_keys(&k);
	handshake(&k, &ini, &rsp, m1, &l1, m2, &l2, 4);
	/* Our initiation back to us as a response, our response back as an
	 * initiation: wrong type, no crypto. */
	i2 = ini;
	assert_int_equal(nb_noise_read_resp(&i2, m1, l1, got, sizeof(got)), NB_NOISE_E_TYPE);
	assert_int_equal(nb_noise_init_responder_with_public(&r2, k.rp, k.rP, (const uint8_t *)PROLOGUE,
							     sizeof(PROLOGUE)),
			 0);
	assert_int_equal(nb_noise_read_init(&r2, m2, l2, got, sizeof(got)), NB_NOISE_E_TYPE);
	/* Our initiation reflected to our own responder (our static key): the
	 * es DH differs, the tag on s fails. */
	assert_int_equal(nb_noise_init_responder_with_public(&r2, k.ip, k.iP, (const uint8_t *)PROLOGUE,
							     sizeof(PROLOGUE)),
			 0);
	assert_int_equal(nb_noise_read_init(&r2, m1, l1, got, sizeof(got)), NB_NOISE_E_MAC);

	assert_int_equal(nb_noise_read_resp(&ini, m2, l2, got, sizeof(got)), 4);
	assert_int_equal(nb_noise_split(&ini, &ki), 0);
	assert_int_equal(nb_noise_split(&rsp, &kr), 0);
	/* Replaying the response after split: refused (state), and a split
	 * handshake cannot split again. */
	assert_int_equal(nb_noise_read_resp(&ini, m2, l2, got, sizeof(got)), NB_NOISE_E_STATE);
	assert_int_equal(nb_noise_split(&ini, &ki), NB_NOISE_E_STATE);
	/* Replaying it to a new initiation from the same keys and index: a
	 * new ephemeral, so the tag fails. */
	assert_int_equal(nb_noise_init_initiator(&i2, k.ip, k.rP, (const uint8_t *)PROLOGUE, sizeof(PROLOGUE)), 0);
	assert_true(nb_noise_write_init(&i2, 111, NULL, 0, m2b, sizeof(m2b)) > 0);
	assert_int_equal(nb_noise_read_resp(&i2, m2, l2, got, sizeof(got)), NB_NOISE_E_MAC);
	/* A replayed initiation IS accepted by a fresh responder: Noise IK
	 * alone has no replay protection for message 1 (WireGuard adds a
	 * timestamp in the payload). The replayer cannot finish it, and the
	 * new session's keys differ (new responder ephemeral). */
	assert_int_equal(nb_noise_init_responder_with_public(&r2, k.rp, k.rP, (const uint8_t *)PROLOGUE,
							     sizeof(PROLOGUE)),
			 0);
	assert_int_equal(nb_noise_read_init(&r2, m1, l1, got, sizeof(got)), 4);
	n = nb_noise_write_resp(&r2, 333, NULL, 0, m2b, sizeof(m2b));
	assert_true(n > 0);
	assert_int_equal(nb_noise_split(&r2, &kr2), 0);
	assert_memory_not_equal(kr2.recv, kr.recv, 32);
	assert_memory_not_equal(kr2.send, kr.send, 32);
}

static void test_low_order_in_handshake(void **state)
{
	struct pairkeys k;
	struct nb_noise_hs ini, rsp, r2, i2;
	uint8_t m1[NB_NOISE_INIT_MAX], m2[NB_NOISE_RESP_MAX], bad[32], got[NB_NOISE_MAX_PAYLOAD];
	size_t l1, l2;

	(void)state;
	make_keys(&k);
	handshake(&k, &ini, &rsp, m1, &l1, m2, &l2, 0);
	for (size_t i = 0; i < N_LOW_ORDER; i++) {
		unhex(LOW_ORDER[i], bad, 32);
		/* Initiator told to talk to a low-order "static key". */
		assert_int_equal(nb_noise_init_initiator(&i2, k.ip, bad, NULL, 0), 0);
		assert_int_equal(nb_noise_write_init(&i2, 1, NULL, 0, m2, sizeof(m2)), NB_NOISE_E_ZERO);
		assert_int_equal(nb_noise_state(&i2), NB_NOISE_HS_FAILED);
		/* A low-order e in msg1: es is zero. */
		memcpy(m1 + 5, bad, 32);
		assert_int_equal(nb_noise_init_responder_with_public(&r2, k.rp, k.rP, (const uint8_t *)PROLOGUE,
								     sizeof(PROLOGUE)),
				 0);
		assert_int_equal(nb_noise_read_init(&r2, m1, l1, got, sizeof(got)), NB_NOISE_E_ZERO);
		assert_int_equal(nb_noise_state(&r2), NB_NOISE_HS_FAILED);
	}
	/* A low-order e in msg2: ee is zero. */
	assert_int_equal(nb_noise_init_initiator(&ini, k.ip, k.rP, (const uint8_t *)PROLOGUE, sizeof(PROLOGUE)), 0);
	assert_true(nb_noise_write_init(&ini, 7, NULL, 0, m1, sizeof(m1)) > 0);
	assert_int_equal(nb_noise_init_responder_with_public(&rsp, k.rp, k.rP, (const uint8_t *)PROLOGUE,
							     sizeof(PROLOGUE)),
			 0);
	assert_int_equal(nb_noise_read_init(&rsp, m1, NB_NOISE_INIT_MIN, NULL, 0), 0);
	l2 = (size_t)nb_noise_write_resp(&rsp, 8, NULL, 0, m2, sizeof(m2));
	for (size_t i = 0; i < N_LOW_ORDER; i++) {
		unhex(LOW_ORDER[i], m2 + 9, 32);
		i2 = ini;
		assert_int_equal(nb_noise_read_resp(&i2, m2, l2, NULL, 0), NB_NOISE_E_ZERO);
	}
}

static void test_state_misuse(void **state)
{
	struct pairkeys k;
	struct nb_noise_hs ini, rsp, z;
	struct nb_noise_keys kk;
	uint8_t m1[NB_NOISE_INIT_MAX], m2[NB_NOISE_RESP_MAX], e[32];
	size_t l1, l2;

	(void)state;
	make_keys(&k);
	memset(&z, 0, sizeof(z));
	assert_int_equal(nb_noise_state(&z), NB_NOISE_HS_ZEROED);
	assert_int_equal(nb_noise_write_init(&z, 1, NULL, 0, m1, sizeof(m1)), NB_NOISE_E_STATE);
	assert_int_equal(nb_noise_state(&z), NB_NOISE_HS_FAILED);
	memset(&z, 0, sizeof(z));
	assert_int_equal(nb_noise_split(&z, &kk), NB_NOISE_E_STATE);

	handshake(&k, &ini, &rsp, m1, &l1, m2, &l2, 0);
	{
		struct nb_noise_hs a = ini, b = rsp, c = ini, d = rsp;

		/* Initiator steps on a responder and the reverse. */
		assert_int_equal(nb_noise_write_init(&a, 1, NULL, 0, m1, sizeof(m1)), NB_NOISE_E_STATE);
		assert_int_equal(nb_noise_write_init(&b, 1, NULL, 0, m1, sizeof(m1)), NB_NOISE_E_STATE);
		assert_int_equal(nb_noise_read_init(&c, m1, l1, NULL, 0), NB_NOISE_E_STATE);
		assert_int_equal(nb_noise_read_resp(&d, m2, l2, NULL, 0), NB_NOISE_E_STATE);
		assert_int_equal(nb_noise_state(&d), NB_NOISE_HS_FAILED);
	}
	{
		struct nb_noise_hs a = ini, b = rsp;

		/* Split before the last message; write the response twice. */
		assert_int_equal(nb_noise_split(&a, &kk), NB_NOISE_E_STATE);
		assert_int_equal(nb_noise_write_resp(&b, 1, NULL, 0, m2, sizeof(m2)), NB_NOISE_E_STATE);
	}
	/* The test hook only right before a write. */
	rand_key(e);
	{
		struct nb_noise_hs a = ini;

		assert_int_equal(nb_noise_set_ephemeral_for_test(&a, e), NB_NOISE_E_STATE);
	}
	/* Bad arguments. */
	assert_int_equal(nb_noise_init_initiator(NULL, k.ip, k.rP, NULL, 0), NB_NOISE_E_INVAL);
	assert_int_equal(nb_noise_init_initiator(&z, k.ip, NULL, NULL, 0), NB_NOISE_E_INVAL);
	assert_int_equal(nb_noise_init_initiator(&z, k.ip, k.rP, NULL, 1), NB_NOISE_E_INVAL);
	assert_int_equal(nb_noise_init_initiator(&z, k.ip, k.rP, m1, NB_NOISE_MAX_PROLOGUE + 1), NB_NOISE_E_TOO_BIG);
	assert_int_equal(nb_noise_init_initiator(&z, k.ip, k.rP, NULL, 0), 0);
	assert_int_equal(nb_noise_write_init(&z, 1, m1, NB_NOISE_MAX_PAYLOAD + 1, m2, sizeof(m2)), NB_NOISE_E_TOO_BIG);
	assert_int_equal(nb_noise_init_initiator(&z, k.ip, k.rP, NULL, 0), 0);
	assert_int_equal(nb_noise_write_init(&z, 1, NULL, 0, m1, NB_NOISE_INIT_MIN - 1), NB_NOISE_E_NOSPACE);
	assert_int_equal(nb_noise_init_initiator(&z, k.ip, k.rP, NULL, 0), 0);
	assert_int_equal(nb_noise_write_init(&z, 1, NULL, 3, m1, sizeof(m1)), NB_NOISE_E_INVAL);
	nb_noise_wipe(&z);
	nb_noise_wipe(NULL);
	assert_int_equal(nb_noise_state(&z), NB_NOISE_HS_ZEROED);
	/* Frame peeks. */
	{
		uint32_t s = 0, r = 0;

		assert_int_equal(nb_noise_peek_init(m1, l1, &s), 0);
		assert_int_equal(s, 111);
		assert_int_equal(nb_noise_peek_resp(m2, l2, &s, &r), 0);
		assert_int_equal(s, 222);
		assert_int_equal(r, 111);
		assert_int_equal(nb_noise_peek_resp(m1, l1, &s, &r), NB_NOISE_E_TYPE);
		assert_int_equal(nb_noise_peek_init(m1, 4, &s), NB_NOISE_E_SHORT);
		assert_int_equal(nb_noise_frame_type(m1, 0), NB_NOISE_E_SHORT);
		m1[0] = 0xD3;
		assert_int_equal(nb_noise_frame_type(m1, l1), NB_NOISE_E_TYPE);
	}
	for (int e2 = NB_NOISE_E_TOO_BIG; e2 <= NB_NOISE_E_SHORT; e2++)
		assert_string_not_equal(nb_noise_strerror(e2), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7748),
		cmocka_unit_test(test_dh_matches_plain_import),
		cmocka_unit_test(test_dh_low_order),
		cmocka_unit_test(test_key_text),
		cmocka_unit_test(test_aead),
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_wrong_keys),
		cmocka_unit_test(test_flip_every_byte),
		cmocka_unit_test(test_truncation_loop),
		cmocka_unit_test(test_reflection_and_replay),
		cmocka_unit_test(test_low_order_in_handshake),
		cmocka_unit_test(test_state_misuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
