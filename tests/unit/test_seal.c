/* tests/unit/test_seal.c - the AEAD transport frames: known answers (RFC 8439
 * and frames computed independently), round trips, the RFC 6479 window as a
 * numbered table (WireGuard selftest/counter.c style), every-bit tampering,
 * truncation, wrong index / key, reflection, rekey grace, the rekey and
 * reject limits, a frame at a guard page, and the data-path speed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/seal.h"

#define IDX_A 0x0a0b0c0du /* alice's local index: bob writes it */
#define IDX_B 0xa1b2c3d4u /* bob's local index: alice writes it */

/* Alice's send key (= bob's recv) is 00 01 .. 1f; bob's is 20 21 .. 3f. */
static void keys_of(struct nb_seal_keys *a, struct nb_seal_keys *b)
{
	memset(a, 0, sizeof(*a));
	for (int i = 0; i < 32; i++) {
		a->send[i] = (uint8_t)i;
		a->recv[i] = (uint8_t)(32 + i);
	}
	a->local_index = IDX_A;
	a->remote_index = IDX_B;
	memcpy(b->send, a->recv, 32);
	memcpy(b->recv, a->send, 32);
	b->local_index = IDX_B;
	b->remote_index = IDX_A;
}

static void pair(struct nb_seal *a, struct nb_seal *b, uint64_t now)
{
	struct nb_seal_keys ka, kb;

	keys_of(&ka, &kb);
	assert_int_equal(nb_seal_init(a, &ka, now), 0);
	assert_int_equal(nb_seal_init(b, &kb, now), 0);
}

/* A frame built without nb_seal_seal: header by hand, nonce by hand, the
 * bare primitive. Lets the tests send any counter, even ones seal refuses. */
static size_t forge(const uint8_t key[32], uint32_t idx, uint64_t ctr, const uint8_t *pt, size_t n,
		    uint8_t *out)
{
	uint8_t nonce[12] = { 0 };

	out[0] = 0xD3;
	for (int i = 0; i < 4; i++)
		out[1 + i] = (uint8_t)(idx >> (24 - 8 * i));
	for (int i = 0; i < 8; i++) {
		out[5 + i] = (uint8_t)(ctr >> (56 - 8 * i));
		nonce[4 + i] = (uint8_t)(ctr >> (8 * i));
	}
	assert_int_equal(nb_seal_chachapoly(key, nonce, out, 13, pt, n, out + 13, out + 13 + n), 0);
	return 13 + n + 16;
}

/* ---- Known answers -------------------------------------------------------- */

/* RFC 8439 §2.8.2. Its nonce is 07000000 || 4041424344454647: the constant
 * is not zero, so this checks the primitive, not the Noise nonce. */
static void test_kat_rfc8439(void **state)
{
	static const char PT[] = "Ladies and Gentlemen of the class of '99: If I could offer you only "
				 "one tip for the future, sunscreen would be it.";
	static const uint8_t AD[] = { 0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7 };
	static const uint8_t NONCE[] = { 0x07, 0x00, 0x00, 0x00, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47 };
	static const uint8_t CT[114] = {
		0xd3, 0x1a, 0x8d, 0x34, 0x64, 0x8e, 0x60, 0xdb, 0x7b, 0x86, 0xaf, 0xbc, 0x53, 0xef, 0x7e, 0xc2,
		0xa4, 0xad, 0xed, 0x51, 0x29, 0x6e, 0x08, 0xfe, 0xa9, 0xe2, 0xb5, 0xa7, 0x36, 0xee, 0x62, 0xd6,
		0x3d, 0xbe, 0xa4, 0x5e, 0x8c, 0xa9, 0x67, 0x12, 0x82, 0xfa, 0xfb, 0x69, 0xda, 0x92, 0x72, 0x8b,
		0x1a, 0x71, 0xde, 0x0a, 0x9e, 0x06, 0x0b, 0x29, 0x05, 0xd6, 0xa5, 0xb6, 0x7e, 0xcd, 0x3b, 0x36,
		0x92, 0xdd, 0xbd, 0x7f, 0x2d, 0x77, 0x8b, 0x8c, 0x98, 0x03, 0xae, 0xe3, 0x28, 0x09, 0x1b, 0x58,
		0xfa, 0xb3, 0x24, 0xe4, 0xfa, 0xd6, 0x75, 0x94, 0x55, 0x85, 0x80, 0x8b, 0x48, 0x31, 0xd7, 0xbc,
		0x3f, 0xf4, 0xde, 0xf0, 0x8e, 0x4b, 0x7a, 0x9d, 0xe5, 0x76, 0xd2, 0x65, 0x86, 0xce, 0xc6, 0x4b,
		0x61, 0x16,
	};
	static const uint8_t TAG[16] = { 0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a,
					 0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60, 0x06, 0x91 };
	uint8_t key[32], out[114], tag[16];

	(void)state;
	assert_int_equal(sizeof(PT) - 1, 114);
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(0x80 + i);
	assert_int_equal(nb_seal_chachapoly(key, NONCE, AD, sizeof(AD), (const uint8_t *)PT, 114, out, tag), 0);
	assert_memory_equal(out, CT, 114);
	assert_memory_equal(tag, TAG, 16);
}

/* Frames computed independently (/usr/bin/python3, the `cryptography`
 * module: ChaCha20Poly1305(bytes(range(32))).encrypt(b"\0"*4 +
 * struct.pack("<Q", ctr), pt, hdr) with hdr = d3 || BE32 a1b2c3d4 || BE64
 * ctr). */
static const uint8_t KAT0[] = { /* counter 0, "hi" */
	0xd3, 0xa1, 0xb2, 0xc3, 0xd4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x70, 0xd1, 0xc3,
	0x5c, 0x41, 0xcf, 0x70, 0xd1, 0x84, 0xff, 0xaa, 0x7e, 0x31, 0x37, 0xac, 0x34, 0x71, 0x83,
};
static const uint8_t KAT1[] = { /* counter 1, keepalive */
	0xd3, 0xa1, 0xb2, 0xc3, 0xd4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x6a, 0x98,
	0x35, 0x09, 0xc6, 0xe6, 0x7c, 0x30, 0x50, 0xc7, 0xff, 0xb4, 0xdc, 0x2a, 0xa0, 0x34,
};
static const uint8_t KAT2[] = { /* counter 0x0102030405060708, "natbroker seal!!" */
	0xd3, 0xa1, 0xb2, 0xc3, 0xd4, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x9e, 0x28,
	0xd9, 0x86, 0xd9, 0x56, 0x81, 0x7d, 0x16, 0x8b, 0x59, 0xa9, 0x12, 0x14, 0x40, 0x99, 0x8c,
	0x6a, 0xf1, 0x64, 0x6a, 0x5b, 0xd6, 0x34, 0xc4, 0xfc, 0xa1, 0x2f, 0xcc, 0xe0, 0xb9, 0x85,
};

static void test_kat_frames(void **state)
{
	struct nb_seal a, b;
	struct nb_seal_keys ka, kb;
	uint8_t f[64], pt[64];

	(void)state;
	pair(&a, &b, 0);
	/* One context, several frames in a row: the per-frame nonce reset
	 * must leave nothing of the previous frame behind. */
	assert_int_equal(nb_seal_seal(&a, (const uint8_t *)"hi", 2, f, sizeof(f), 1), sizeof(KAT0));
	assert_memory_equal(f, KAT0, sizeof(KAT0));
	assert_int_equal(nb_seal_seal(&a, NULL, 0, f, sizeof(f), 1), sizeof(KAT1));
	assert_memory_equal(f, KAT1, sizeof(KAT1));
	a.cur.tx_counter = 0x0102030405060708u;
	assert_int_equal(nb_seal_seal(&a, (const uint8_t *)"natbroker seal!!", 16, f, sizeof(f), 1),
			 sizeof(KAT2));
	assert_memory_equal(f, KAT2, sizeof(KAT2));
	assert_int_equal(a.cur.tx_counter, 0x0102030405060709u);
	/* Bob opens them, out of order. */
	assert_int_equal(nb_seal_open(&b, KAT2, sizeof(KAT2), pt, sizeof(pt), 2), 16);
	assert_memory_equal(pt, "natbroker seal!!", 16);
	assert_int_equal(nb_seal_open(&b, KAT1, sizeof(KAT1), pt, sizeof(pt), 2), NB_SEAL_E_REPLAY);
	nb_seal_wipe(&a);
	nb_seal_wipe(&b);
	pair(&a, &b, 0);
	assert_int_equal(nb_seal_open(&b, KAT1, sizeof(KAT1), pt, sizeof(pt), 2), 0);
	assert_int_equal(nb_seal_open(&b, KAT0, sizeof(KAT0), pt, sizeof(pt), 2), 2);
	assert_memory_equal(pt, "hi", 2);
	/* forge() agrees with the vector too. */
	keys_of(&ka, &kb);
	assert_int_equal(forge(ka.send, IDX_B, 0, (const uint8_t *)"hi", 2, f), sizeof(KAT0));
	assert_memory_equal(f, KAT0, sizeof(KAT0));
	nb_seal_wipe(&a);
	nb_seal_wipe(&b);
}

/* ---- Round trips ---------------------------------------------------------- */

static void test_round_trip(void **state)
{
	static const size_t sizes[] = { 0, 1, 2, 15, 16, 17, 100, 1170, NB_SEAL_MAX_PAYLOAD };
	struct nb_seal a, b;
	uint8_t payload[NB_SEAL_MAX_PAYLOAD], frame[NB_SEAL_MAX_DATAGRAM], pt[NB_SEAL_MAX_PAYLOAD];

	(void)state;
	pair(&a, &b, 0);
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint32_t idx = 0;
		ssize_t n = nb_seal_seal(&a, payload, sizes[i], frame, sizeof(frame), 10);
		assert_int_equal(n, (ssize_t)(NB_SEAL_OVERHEAD + sizes[i]));
		assert_true(n <= NB_SEAL_MAX_DATAGRAM);
		assert_int_equal(frame[0], NB_SEAL_TYPE);
		assert_int_equal(nb_seal_peek_index(frame, (size_t)n, &idx), 0);
		assert_int_equal(idx, IDX_B);
		if (sizes[i] >= 16) /* it is encrypted */
			assert_memory_not_equal(frame + NB_SEAL_HDR_LEN, payload, sizes[i]);
		assert_int_equal(nb_seal_open(&b, frame, (size_t)n, pt, sizes[i], 11), (ssize_t)sizes[i]);
		assert_memory_equal(pt, payload, sizes[i]);
	}
	assert_int_equal(a.cur.tx_counter, 9);
	assert_int_equal(a.stats.tx, 9);
	assert_int_equal(b.stats.rx, 9);
	/* In place: the payload already sits at out + NB_SEAL_HDR_LEN. */
	memcpy(frame + NB_SEAL_HDR_LEN, "pong", 4);
	assert_int_equal(nb_seal_seal(&b, frame + NB_SEAL_HDR_LEN, 4, frame, sizeof(frame), 12),
			 NB_SEAL_OVERHEAD + 4);
	assert_int_equal(nb_seal_open(&a, frame, NB_SEAL_OVERHEAD + 4, pt, sizeof(pt), 13), 4);
	assert_memory_equal(pt, "pong", 4);
	/* Any other overlap is refused. */
	assert_int_equal(nb_seal_seal(&b, frame + 1, 4, frame, sizeof(frame), 12), NB_SEAL_E_INVAL);
	assert_int_equal(nb_seal_open(&a, frame, NB_SEAL_OVERHEAD + 4, frame + 2, 100, 13), NB_SEAL_E_INVAL);
	nb_seal_wipe(&a);
	nb_seal_wipe(&b);
}

/* ---- RFC 6479 window ------------------------------------------------------ */

struct window_ctx {
	struct nb_seal b;
	uint8_t ka[32];
};

static void window_init(struct window_ctx *w)
{
	struct nb_seal_keys ka, kb;

	keys_of(&ka, &kb);
	memcpy(w->ka, ka.send, 32);
	assert_int_equal(nb_seal_init(&w->b, &kb, 0), 0);
}

static ssize_t window_try(struct window_ctx *w, uint64_t ctr)
{
	uint8_t f[64], pt[8];
	size_t n = forge(w->ka, IDX_B, ctr, (const uint8_t *)"x", 1, f);

	return nb_seal_open(&w->b, f, n, pt, sizeof(pt), 1);
}

#define W NB_SEAL_WINDOW
#define T_LIM (W + 1)
#define REJ NB_SEAL_REJECT_AFTER_MESSAGES
#define OK 1
#define RP NB_SEAL_E_REPLAY
#define EX NB_SEAL_E_EXHAUSTED

/* WireGuard's drivers/net/wireguard/selftest/counter.c, case for case, with
 * our window (T_LIM = NB_SEAL_WINDOW + 1) and error codes. */
static const struct {
	uint64_t ctr;
	ssize_t want;
} WINDOW_CASES[] = {
	/*  1 */ { 0, OK },                    /* counter 0 is a counter like any */
	/*  2 */ { 1, OK },                    /* in order */
	/*  3 */ { 1, RP },                    /* duplicate */
	/*  4 */ { 9, OK },                    /* a gap */
	/*  5 */ { 8, OK },                    /* reordered within the window */
	/*  6 */ { 7, OK },
	/*  7 */ { 7, RP },
	/*  8 */ { T_LIM, OK },                /* jump ahead by the window */
	/*  9 */ { T_LIM - 1, OK },
	/* 10 */ { T_LIM - 1, RP },
	/* 11 */ { T_LIM - 2, OK },
	/* 12 */ { 2, OK },                    /* top - W + 1: inside, unseen */
	/* 13 */ { 2, RP },
	/* 14 */ { T_LIM + 16, OK },
	/* 15 */ { 3, RP },                    /* fell off the left edge */
	/* 16 */ { T_LIM + 16, RP },
	/* 17 */ { T_LIM * 4, OK },            /* jump far ahead: the ring is cleared */
	/* 18 */ { T_LIM * 4 - (T_LIM - 1), OK }, /* top - W: still inside */
	/* 19 */ { 10, RP },
	/* 20 */ { T_LIM * 4 - T_LIM, RP },    /* top - W - 1: too old */
	/* 21 */ { T_LIM * 4 - (T_LIM + 1), RP },
	/* 22 */ { T_LIM * 4 - (T_LIM - 2), OK },
	/* 23 */ { T_LIM * 4 + 1 - T_LIM, RP }, /* = case 18: duplicate at the edge */
	/* 24 */ { 0, RP },
	/* 25 */ { REJ, EX },                  /* at the reject limit: never */
	/* 26 */ { REJ - 1, OK },              /* the last counter there is */
	/* 27 */ { REJ, EX },
	/* 28 */ { REJ - 1, RP },
	/* 29 */ { REJ - 2, OK },
	/* 30 */ { REJ + 1, EX },
	/* 31 */ { REJ + 2, EX },
	/* 32 */ { REJ - 2, RP },
	/* 33 */ { REJ - 3, OK },
	/* 34 */ { 0, RP },
	/* 35 */ { UINT64_MAX, EX },           /* counter + 1 would wrap */
};

static void test_window_table(void **state)
{
	struct window_ctx w;

	(void)state;
	window_init(&w);
	for (size_t i = 0; i < sizeof(WINDOW_CASES) / sizeof(WINDOW_CASES[0]); i++) {
		ssize_t r = window_try(&w, WINDOW_CASES[i].ctr);
		if (r != WINDOW_CASES[i].want)
			fail_msg("window case %zu (counter %llu): got %zd, want %zd", i + 1,
				 (unsigned long long)WINDOW_CASES[i].ctr, r, WINDOW_CASES[i].want);
	}
	nb_seal_wipe(&w.b);
}

/* The bitmap loops of the same selftest: fill the window forwards and
 * backwards, and step past its edges. */
static void test_window_bitmap(void **state)
{
	struct window_ctx w;
	uint64_t i;

	(void)state;
#define T(c, want) assert_int_equal(window_try(&w, (c)), (want))
	window_init(&w);
	for (i = 1; i <= W; i++)
		T(i, OK);
	T(0, OK);
	T(0, RP);
	nb_seal_wipe(&w.b);

	window_init(&w);
	for (i = 2; i <= W + 1; i++)
		T(i, OK);
	T(1, OK);
	T(0, RP); /* W + 1 - 0 > W */
	nb_seal_wipe(&w.b);

	window_init(&w);
	for (i = W + 1; i-- > 0;)
		T(i, OK);
	nb_seal_wipe(&w.b);

	window_init(&w);
	for (i = W + 2; i-- > 1;)
		T(i, OK);
	T(0, RP);
	nb_seal_wipe(&w.b);

	window_init(&w);
	for (i = W + 1; i-- > 1;)
		T(i, OK);
	T(W + 1, OK);
	T(0, RP);
	nb_seal_wipe(&w.b);

	window_init(&w);
	for (i = W + 1; i-- > 1;)
		T(i, OK);
	T(0, OK);
	T(W + 1, OK);
	nb_seal_wipe(&w.b);

	/* Every second counter over several ring turns, then the gaps:
	 * exactly those within W of the top are still accepted. */
	window_init(&w);
	for (i = 0; i < 3 * NB_SEAL_WINDOW_BITS; i += 2)
		T(i, OK);
	{
		uint64_t top = 3 * NB_SEAL_WINDOW_BITS - 2;
		for (i = 1; i < top; i += 2)
			T(i, top - i <= W ? OK : RP);
		for (i = 0; i <= top; i += 2)
			T(i, RP);
	}
	nb_seal_wipe(&w.b);
#undef T
}

/* ---- Tampering, truncation, keys ----------------------------------------- */

/* Everything about the receive side but the stats. */
static bool same_state(const struct nb_seal *x, const struct nb_seal *y)
{
	return memcmp(&x->cur, &y->cur, sizeof(x->cur)) == 0 &&
	       memcmp(&x->prev, &y->prev, sizeof(x->prev)) == 0 && x->prev_until_ms == y->prev_until_ms;
}

static void test_every_bit_flipped(void **state)
{
	static const char MSG[] = "attack at dawn";
	struct nb_seal a, b, snap;
	uint8_t f[64], pt[64];
	ssize_t n;

	(void)state;
	pair(&a, &b, 0);
	/* Something in the window already, so a flipped counter lands both
	 * left of it and right of it. */
	a.cur.tx_counter = 3000;
	n = nb_seal_seal(&a, (const uint8_t *)"w", 1, f, sizeof(f), 1);
	assert_int_equal(nb_seal_open(&b, f, (size_t)n, pt, sizeof(pt), 1), 1);
	n = nb_seal_seal(&a, (const uint8_t *)MSG, 14, f, sizeof(f), 1);
	memcpy(&snap, &b, sizeof(b));
	for (size_t i = 0; i < (size_t)n; i++) {
		for (int bit = 0; bit < 8; bit++) {
			ssize_t r, want;

			f[i] ^= (uint8_t)(1u << bit);
			memset(pt, 0xee, sizeof(pt));
			r = nb_seal_open(&b, f, (size_t)n, pt, sizeof(pt), 2);
			f[i] ^= (uint8_t)(1u << bit);
			want = i == 0 ? NB_SEAL_E_TYPE : i < 5 ? NB_SEAL_E_INDEX : NB_SEAL_E_TAG;
			if (i >= 5 && i < 13 && r == NB_SEAL_E_REPLAY)
				want = r; /* a counter flipped into the past */
			if (r != want)
				fail_msg("byte %zu bit %d: got %zd, want %zd", i, bit, r, want);
			assert_true(same_state(&b, &snap));
			/* No unauthenticated plaintext is left in out. */
			assert_memory_not_equal(pt, MSG, 14);
		}
	}
	assert_int_equal(b.stats.rx, 1);
	assert_true(b.stats.rx_bad_tag > 0 && b.stats.rx_bad_index == 32 && b.stats.rx_malformed == 8);
	assert_int_equal(nb_seal_open(&b, f, (size_t)n, pt, sizeof(pt), 2), 14);
	assert_memory_equal(pt, MSG, 14);
	nb_seal_wipe(&a);
	nb_seal_wipe(&b);
}

static void test_truncation(void **state)
{
	struct nb_seal a, b, snap;
	uint8_t f[NB_SEAL_MAX_DATAGRAM + 8], pt[NB_SEAL_MAX_DATAGRAM];
	ssize_t n;

	(void)state;
	pair(&a, &b, 0);
	n = nb_seal_seal(&a, (const uint8_t *)"hello, world", 12, f, sizeof(f), 1);
	memcpy(&snap, &b, sizeof(b));
	for (size_t len = 0; len < (size_t)n; len++) {
		ssize_t r = nb_seal_open(&b, f, len, pt, sizeof(pt), 2);
		assert_int_equal(r, len < NB_SEAL_OVERHEAD ? NB_SEAL_E_SHORT : NB_SEAL_E_TAG);
		assert_true(same_state(&b, &snap));
	}
	/* One byte too many is a different frame with a wrong tag. */
	f[n] = 0;
	assert_int_equal(nb_seal_open(&b, f, (size_t)n + 1, pt, sizeof(pt), 2), NB_SEAL_E_TAG);
	assert_int_equal(nb_seal_open(&b, f, (size_t)n, pt, sizeof(pt), 2), 12);
	nb_seal_wipe(&a);
	nb_seal_wipe(&b);
}

static void test_wrong_index_and_key(void **state)
{
	struct nb_seal a, b, mallory;
	struct nb_seal_keys ka, kb;
	uint8_t f[64], pt[64];
	ssize_t n;

	(void)state;
	pair(&a, &b, 0);
	/* Bob expects another index (an older session, another peer). */
	keys_of(&ka, &kb);
	kb.local_index = IDX_B + 1;
	nb_seal_wipe(&b);
	assert_int_equal(nb_seal_init(&b, &kb, 0), 0);
	n = nb_seal_seal(&a, (const uint8_t *)"data", 4, f, sizeof(f), 1);
	assert_int_equal(nb_seal_open(&b, f, (size_t)n, pt, sizeof(pt), 1), NB_SEAL_E_INDEX);
	assert_int_equal(b.stats.rx_bad_index, 1);
	/* Right index, wrong key. */
	nb_seal_wipe(&b);
	keys_of(&ka, &kb);
	assert_int_equal(nb_seal_init(&b, &kb, 0), 0);
	ka.send[7] ^= 0x40;
	assert_int_equal(nb_seal_init(&mallory, &ka, 0), 0);
	n = nb_seal_seal(&mallory, (const uint8_t *)"evil", 4, f, sizeof(f), 1);
	assert_int_equal(nb_seal_open(&b, f, (size_t)n, pt, sizeof(pt), 1), NB_SEAL_E_TAG);
	/* The forgery's counter 0 was not recorded: the real one opens. */
	a.cur.tx_counter = 0;
	n = nb_seal_seal(&a, (const uint8_t *)"good", 4, f, sizeof(f), 1);
	assert_int_equal(nb_seal_open(&b, f, (size_t)n, pt, sizeof(pt), 1), 4);
	nb_seal_wipe(&a);
	nb_seal_wipe(&b);
	nb_seal_wipe(&mallory);
}

/* Our own frame fed back to us must not open: the send and receive keys
 * differ. With distinct indices it stops at the index; with equal ones
 * (both sides may draw the same random index) at the tag. */
static void test_reflection(void **state)
{
	struct nb_seal a, b;
	struct nb_seal_keys ka, kb;
	uint8_t f[64], pt[64];
	ssize_t n;

	(void)state;
	pair(&a, &b, 0);
	n = nb_seal_seal(&a, (const uint8_t *)"mine", 4, f, sizeof(f), 1);
	assert_int_equal(nb_seal_open(&a, f, (size_t)n, pt, sizeof(pt), 1), NB_SEAL_E_INDEX);
	assert_int_equal(nb_seal_open(&b, f, (size_t)n, pt, sizeof(pt), 1), 4);
	nb_seal_wipe(&a);
	nb_seal_wipe(&b);

	keys_of(&ka, &kb);
	ka.local_index = ka.remote_index = kb.local_index = kb.remote_index = 7;
	assert_int_equal(nb_seal_init(&a, &ka, 0), 0);
	assert_int_equal(nb_seal_init(&b, &kb, 0), 0);
	n = nb_seal_seal(&a, (const uint8_t *)"mine", 4, f, sizeof(f), 1);
	assert_int_equal(nb_seal_open(&a, f, (size_t)n, pt, sizeof(pt), 1), NB_SEAL_E_TAG);
	assert_int_equal(nb_seal_open(&b, f, (size_t)n, pt, sizeof(pt), 1), 4);
	nb_seal_wipe(&a);
	nb_seal_wipe(&b);

	/* One key for both directions is refused outright. */
	keys_of(&ka, &kb);
	memcpy(ka.recv, ka.send, 32);
	assert_int_equal(nb_seal_init(&a, &ka, 0), NB_SEAL_E_INVAL);
}

/* ---- Rekey, limits --------------------------------------------------------- */

static void keys2(struct nb_seal_keys *a, struct nb_seal_keys *b, uint8_t salt)
{
	keys_of(a, b);
	for (int i = 0; i < 32; i++) {
		a->send[i] ^= salt;
		a->recv[i] ^= salt;
	}
	memcpy(b->send, a->recv, 32);
	memcpy(b->recv, a->send, 32);
	a->local_index = b->remote_index = 0x1000u + salt;
	b->local_index = a->remote_index = 0x2000u + salt;
}

static void test_rekey(void **state)
{
	struct nb_seal a, b;
	struct nb_seal_keys ka, kb;
	uint8_t old1[64], old2[64], f[64], pt[64];
	ssize_t n1, n2, n;
	const uint64_t t = 100000;

	(void)state;
	pair(&a, &b, 0);
	n1 = nb_seal_seal(&a, (const uint8_t *)"old1", 4, old1, sizeof(old1), 10);
	n2 = nb_seal_seal(&a, (const uint8_t *)"old2", 4, old2, sizeof(old2), 10);
	assert_int_equal(nb_seal_open(&b, old1, (size_t)n1, pt, sizeof(pt), 11), 4);

	keys2(&ka, &kb, 0x5a);
	assert_int_equal(nb_seal_rekey(&a, &ka, t), 0);
	assert_int_equal(nb_seal_rekey(&b, &kb, t), 0);
	assert_int_equal(a.cur.tx_counter, 0);
	assert_null(a.prev.enc); /* the previous keypair never seals */
	/* New frames carry the new index and keys. */
	n = nb_seal_seal(&a, (const uint8_t *)"new", 3, f, sizeof(f), t + 1);
	assert_int_equal(f[4], 0x5a);
	assert_int_equal(nb_seal_open(&b, f, (size_t)n, pt, sizeof(pt), t + 1), 3);
	/* A frame under the old keys, delayed: accepted in the grace period,
	 * once; the old window is kept. */
	assert_int_equal(nb_seal_open(&b, old1, (size_t)n1, pt, sizeof(pt), t + 2), NB_SEAL_E_REPLAY);
	assert_int_equal(nb_seal_open(&b, old2, (size_t)n2, pt, sizeof(pt), t + 2), 4);
	assert_memory_equal(pt, "old2", 4);
	assert_int_equal(nb_seal_open(&b, old2, (size_t)n2, pt, sizeof(pt), t + 2), NB_SEAL_E_REPLAY);
	assert_int_equal(b.stats.rx_prev, 1);
	/* ... and not after it. */
	nb_seal_wipe(&a);
	nb_seal_wipe(&b);
	pair(&a, &b, 0);
	n1 = nb_seal_seal(&a, (const uint8_t *)"old1", 4, old1, sizeof(old1), 10);
	n2 = nb_seal_seal(&a, (const uint8_t *)"old2", 4, old2, sizeof(old2), 10);
	assert_int_equal(nb_seal_rekey(&b, &kb, t), 0);
	assert_int_equal(nb_seal_open(&b, old1, (size_t)n1, pt, sizeof(pt), t + NB_SEAL_PREV_GRACE_MS - 1), 4);
	assert_int_equal(nb_seal_open(&b, old2, (size_t)n2, pt, sizeof(pt), t + NB_SEAL_PREV_GRACE_MS),
			 NB_SEAL_E_EXPIRED);
	/* A second rekey drops the first keypair altogether. */
	keys2(&ka, &kb, 0x33);
	assert_int_equal(nb_seal_rekey(&b, &kb, t + 1000), 0);
	assert_int_equal(nb_seal_open(&b, old2, (size_t)n2, pt, sizeof(pt), t + 1001), NB_SEAL_E_INDEX);
	/* The same local index again would be ambiguous; send == recv never. */
	assert_int_equal(nb_seal_rekey(&b, &kb, t + 2000), NB_SEAL_E_INVAL);
	keys2(&ka, &kb, 0x44);
	memcpy(kb.send, kb.recv, 32);
	assert_int_equal(nb_seal_rekey(&b, &kb, t + 2000), NB_SEAL_E_INVAL);
	nb_seal_wipe(&a);
	nb_seal_wipe(&b);

	/* The grace period never outlives the keypair's REJECT_AFTER_TIME. */
	pair(&a, &b, 0);
	n1 = nb_seal_seal(&a, (const uint8_t *)"late", 4, old1, sizeof(old1), 10);
	n2 = nb_seal_seal(&a, (const uint8_t *)"late", 4, old2, sizeof(old2), 10);
	keys2(&ka, &kb, 0x77);
	assert_int_equal(nb_seal_rekey(&b, &kb, NB_SEAL_REJECT_AFTER_TIME_MS - 10000), 0);
	assert_int_equal(nb_seal_open(&b, old1, (size_t)n1, pt, sizeof(pt), NB_SEAL_REJECT_AFTER_TIME_MS - 1), 4);
	assert_int_equal(nb_seal_open(&b, old2, (size_t)n2, pt, sizeof(pt), NB_SEAL_REJECT_AFTER_TIME_MS),
			 NB_SEAL_E_EXPIRED);
	nb_seal_wipe(&a);
	nb_seal_wipe(&b);
}

static void test_limits_time(void **state)
{
	struct nb_seal a, b;
	uint8_t f[64], pt[64];
	ssize_t n;
	const uint64_t t0 = 5000;

	(void)state;
	pair(&a, &b, t0);
	assert_false(nb_seal_wants_rekey(&a, t0));
	assert_false(nb_seal_wants_rekey(&a, t0 + NB_SEAL_REKEY_AFTER_TIME_MS - 1));
	assert_true(nb_seal_wants_rekey(&a, t0 + NB_SEAL_REKEY_AFTER_TIME_MS));
	assert_false(nb_seal_dead(&a, t0 + NB_SEAL_REJECT_AFTER_TIME_MS - 1));
	assert_true(nb_seal_dead(&a, t0 + NB_SEAL_REJECT_AFTER_TIME_MS));
	assert_false(nb_seal_dead(&a, 0)); /* a clock before created: age 0 */
	/* Seal and open stop at REJECT_AFTER_TIME. */
	n = nb_seal_seal(&a, (const uint8_t *)"x", 1, f, sizeof(f), t0 + NB_SEAL_REJECT_AFTER_TIME_MS - 1);
	assert_int_equal(n, NB_SEAL_OVERHEAD + 1);
	assert_int_equal(nb_seal_seal(&a, (const uint8_t *)"x", 1, f + 32, 32, t0 + NB_SEAL_REJECT_AFTER_TIME_MS),
			 NB_SEAL_E_EXPIRED);
	assert_int_equal(a.cur.tx_counter, 1);
	assert_int_equal(nb_seal_open(&b, f, (size_t)n, pt, sizeof(pt), t0 + NB_SEAL_REJECT_AFTER_TIME_MS),
			 NB_SEAL_E_EXPIRED);
	assert_int_equal(nb_seal_open(&b, f, (size_t)n, pt, sizeof(pt), t0 + NB_SEAL_REJECT_AFTER_TIME_MS - 1), 1);
	/* A rekey revives it. */
	{
		struct nb_seal_keys ka, kb;
		keys2(&ka, &kb, 1);
		assert_int_equal(nb_seal_rekey(&a, &ka, t0 + NB_SEAL_REJECT_AFTER_TIME_MS + 5), 0);
		assert_false(nb_seal_dead(&a, t0 + NB_SEAL_REJECT_AFTER_TIME_MS + 5));
		assert_false(nb_seal_wants_rekey(&a, t0 + NB_SEAL_REJECT_AFTER_TIME_MS + 5));
	}
	nb_seal_wipe(&a);
	nb_seal_wipe(&b);
}

static void test_limits_count(void **state)
{
	struct nb_seal a, b;
	uint8_t f[64], pt[64];
	ssize_t n;

	(void)state;
	pair(&a, &b, 0);
	a.cur.tx_counter = NB_SEAL_REKEY_AFTER_MESSAGES - 1;
	assert_false(nb_seal_wants_rekey(&a, 1));
	assert_true(nb_seal_seal(&a, NULL, 0, f, sizeof(f), 1) > 0);
	assert_true(nb_seal_wants_rekey(&a, 1));
	assert_false(nb_seal_dead(&a, 1));

	a.cur.tx_counter = NB_SEAL_REJECT_AFTER_MESSAGES - 1;
	n = nb_seal_seal(&a, (const uint8_t *)"last", 4, f, sizeof(f), 1);
	assert_int_equal(n, NB_SEAL_OVERHEAD + 4);
	assert_true(nb_seal_dead(&a, 1));
	assert_int_equal(nb_seal_seal(&a, (const uint8_t *)"more", 4, pt, sizeof(pt), 1), NB_SEAL_E_EXHAUSTED);
	assert_int_equal(a.cur.tx_counter, NB_SEAL_REJECT_AFTER_MESSAGES);
	/* The last counter there is opens. */
	assert_int_equal(nb_seal_open(&b, f, (size_t)n, pt, sizeof(pt), 1), 4);
	nb_seal_wipe(&a);
	nb_seal_wipe(&b);
}

static void test_args(void **state)
{
	static const int codes[] = { NB_SEAL_E_SHORT,   NB_SEAL_E_TYPE,      NB_SEAL_E_INDEX,
				     NB_SEAL_E_TAG,     NB_SEAL_E_REPLAY,    NB_SEAL_E_NOSPACE,
				     NB_SEAL_E_TOO_BIG, NB_SEAL_E_EXHAUSTED, NB_SEAL_E_EXPIRED,
				     NB_SEAL_E_INVAL,   NB_SEAL_E_CRYPTO };
	struct nb_seal a, b;
	uint8_t big[NB_SEAL_MAX_PAYLOAD + 1], f[NB_SEAL_MAX_DATAGRAM + 8], pt[NB_SEAL_MAX_DATAGRAM];
	uint32_t idx = 99;
	ssize_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		assert_int_equal(codes[i], -4201 - (int)i);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(nb_seal_strerror(codes[i]), nb_seal_strerror(codes[j]));
	}
	memset(big, 'a', sizeof(big));
	pair(&a, &b, 0);
	assert_int_equal(nb_seal_seal(&a, big, sizeof(big), f, sizeof(f), 1), NB_SEAL_E_TOO_BIG);
	assert_int_equal(nb_seal_seal(&a, big, 10, f, NB_SEAL_OVERHEAD + 9, 1), NB_SEAL_E_NOSPACE);
	assert_int_equal(nb_seal_seal(&a, big, 10, f, 3, 1), NB_SEAL_E_NOSPACE);
	assert_int_equal(nb_seal_seal(&a, NULL, 10, f, sizeof(f), 1), NB_SEAL_E_INVAL);
	assert_int_equal(nb_seal_seal(NULL, big, 10, f, sizeof(f), 1), NB_SEAL_E_INVAL);
	assert_int_equal(a.cur.tx_counter, 0); /* nothing consumed */
	/* Open: the output must hold the plaintext; checked before any crypto. */
	n = nb_seal_seal(&a, big, 10, f, sizeof(f), 1);
	assert_int_equal(nb_seal_open(&b, f, (size_t)n, pt, 9, 1), NB_SEAL_E_NOSPACE);
	assert_int_equal(nb_seal_open(&b, f, (size_t)n, pt, 10, 1), 10);
	/* A keepalive opens with no output buffer at all. */
	n = nb_seal_seal(&a, NULL, 0, f, sizeof(f), 1);
	assert_int_equal(nb_seal_open(&b, f, (size_t)n, NULL, 0, 1), 0);
	/* Longer than a datagram: refused before any crypto. */
	memset(f, 0, sizeof(f));
	f[0] = NB_SEAL_TYPE;
	assert_int_equal(nb_seal_open(&b, f, NB_SEAL_MAX_DATAGRAM + 1, pt, sizeof(pt), 1), NB_SEAL_E_TOO_BIG);
	assert_int_equal(nb_seal_peek_index(f, NB_SEAL_MAX_DATAGRAM + 1, &idx), NB_SEAL_E_TOO_BIG);
	f[0] = 0xD0; /* the old HMAC frames */
	assert_int_equal(nb_seal_open(&b, f, 40, pt, sizeof(pt), 1), NB_SEAL_E_TYPE);
	assert_int_equal(nb_seal_peek_index(f, 40, &idx), NB_SEAL_E_TYPE);
	assert_int_equal(nb_seal_peek_index(f, 3, &idx), NB_SEAL_E_SHORT);
	assert_int_equal(idx, 99); /* untouched */
	f[0] = NB_SEAL_TYPE;
	f[1] = 0xde, f[2] = 0xad, f[3] = 0xbe, f[4] = 0xef;
	assert_int_equal(nb_seal_peek_index(f, NB_SEAL_OVERHEAD, &idx), 0);
	assert_int_equal(idx, 0xdeadbeefu);
	assert_int_equal(nb_seal_init(&a, NULL, 0), NB_SEAL_E_INVAL);
	/* A wiped state refuses everything; wiping twice or NULL is fine. */
	nb_seal_wipe(&a);
	nb_seal_wipe(&a);
	nb_seal_wipe(NULL);
	assert_int_equal(nb_seal_seal(&a, big, 1, f, sizeof(f), 1), NB_SEAL_E_INVAL);
	assert_int_equal(nb_seal_open(&a, f, 40, pt, sizeof(pt), 1), NB_SEAL_E_INVAL);
	assert_true(nb_seal_dead(&a, 1));
	nb_seal_wipe(&b);
}

/* A frame that ends at the last byte before a PROT_NONE page. */
static void test_guard_page(void **state)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *mem, f[64], pt[64];
	struct nb_seal a, b;
	ssize_t n;

	(void)state;
	mem = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);
	assert_int_equal(mprotect(mem + pg, (size_t)pg, PROT_NONE), 0);
	pair(&a, &b, 0);
	n = nb_seal_seal(&a, (const uint8_t *)"edge", 4, f, sizeof(f), 1);
	for (size_t len = 0; len <= (size_t)n; len++) {
		uint8_t *at = mem + pg - len;
		memcpy(at, f, len);
		ssize_t r = nb_seal_open(&b, at, len, pt, sizeof(pt), 2);
		if (len == (size_t)n)
			assert_int_equal(r, 4);
		else
			assert_true(r < 0);
	}
	munmap(mem, (size_t)pg * 2);
	nb_seal_wipe(&a);
	nb_seal_wipe(&b);
}

/* ---- Speed ------------------------------------------------------------------ */

static double secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seal + open of full 1371-byte payloads in a tight loop, for about 0.5 s.
 * Prints packets/s; asserts only correctness (speed varies by machine and
 * under valgrind). */
static void test_speed(void **state)
{
	static uint8_t payload[NB_SEAL_MAX_PAYLOAD], frame[NB_SEAL_MAX_DATAGRAM], pt[NB_SEAL_MAX_PAYLOAD];
	struct nb_seal a, b;
	uint64_t count = 0;
	double t0, t;

	(void)state;
	memset(payload, 0x5c, sizeof(payload));
	pair(&a, &b, 0);
	t0 = secs();
	do {
		for (int i = 0; i < 256; i++, count++) {
			ssize_t n = nb_seal_seal(&a, payload, sizeof(payload), frame, sizeof(frame), 1);
			if (n != NB_SEAL_MAX_DATAGRAM ||
			    nb_seal_open(&b, frame, (size_t)n, pt, sizeof(pt), 1) != NB_SEAL_MAX_PAYLOAD)
				fail_msg("packet %llu failed", (unsigned long long)count);
		}
		t = secs() - t0;
	} while (t < 0.5);
	assert_memory_equal(pt, payload, sizeof(payload));
	print_message("seal+open of %u-byte payloads (%u-byte datagrams): %.0f packets/s (%.1f MB/s)\n",
		      (unsigned)NB_SEAL_MAX_PAYLOAD, (unsigned)NB_SEAL_MAX_DATAGRAM, (double)count / t,
		      (double)count * NB_SEAL_MAX_PAYLOAD / t / 1e6);
	nb_seal_wipe(&a);
	nb_seal_wipe(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kat_rfc8439),
		cmocka_unit_test(test_kat_frames),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_window_table),
		cmocka_unit_test(test_window_bitmap),
		cmocka_unit_test(test_every_bit_flipped),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_wrong_index_and_key),
		cmocka_unit_test(test_reflection),
		cmocka_unit_test(test_rekey),
		cmocka_unit_test(test_limits_time),
		cmocka_unit_test(test_limits_count),
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_guard_page),
		cmocka_unit_test(test_speed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
