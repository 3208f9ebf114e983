/* tests/fuzz/fuzz_seal.c - libFuzzer target for the AEAD transport frames.
 *
 * Byte 0 picks the mode:
 *  - even: raw. The rest is a sequence of records (2-byte BE length, mod
 *    1300, then that many bytes), each fed to nb_seal_open of one state with
 *    fixed keys. Promises: never crashes; nb_seal_peek_index agrees with
 *    open on the frame-shape errors; a frame that opens (only the ones the
 *    fuzzer got right by luck, or a keepalive seeded from seal) has length
 *    len - 29 and never opens twice.
 *  - odd: window. Bytes 1..8 are a base counter; then 3-byte records (op,
 *    16-bit magnitude) move the counter up or down; each counter is sealed
 *    under the peer's key (by hand, with the bare primitive) and opened.
 *    Promise: the result matches a plain model of the replay window
 *    (accepted iff below the reject limit, not seen before, and no more
 *    than NB_SEAL_WINDOW behind the highest counter accepted), and a frame
 *    with one bit flipped never opens.
 * Any broken promise is __builtin_trap(). */
#include <stdint.h>
#include <string.h>

#include "common/seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

#define IDX_A 0x01020304u
#define IDX_B 0x0a0b0c0du
#define MAX_RECORDS 512

static void keys(struct nb_seal_keys *b, uint8_t ka_send[32])
{
	memset(b, 0, sizeof(*b));
	for (int i = 0; i < 32; i++) {
		ka_send[i] = (uint8_t)i;
		b->recv[i] = (uint8_t)i;
		b->send[i] = (uint8_t)(0x40 + i);
	}
	b->local_index = IDX_B;
	b->remote_index = IDX_A;
}

static size_t forge(const uint8_t key[32], uint64_t ctr, const uint8_t *pt, size_t n, uint8_t *out)
{
	uint8_t nonce[12] = { 0 };

	out[0] = NB_SEAL_TYPE;
	for (int i = 0; i < 4; i++)
		out[1 + i] = (uint8_t)(IDX_B >> (24 - 8 * i));
	for (int i = 0; i < 8; i++) {
		out[5 + i] = (uint8_t)(ctr >> (56 - 8 * i));
		nonce[4 + i] = (uint8_t)(ctr >> (8 * i));
	}
	CHECK(nb_seal_chachapoly(key, nonce, out, NB_SEAL_HDR_LEN, pt, n, out + NB_SEAL_HDR_LEN,
				 out + NB_SEAL_HDR_LEN + n) == 0);
	return NB_SEAL_OVERHEAD + n;
}

static void raw(struct nb_seal *b, const uint8_t *data, size_t size)
{
	static uint8_t out[NB_SEAL_MAX_DATAGRAM];
	size_t off = 0;
	uint64_t now = 1;

	while (size - off >= 2) {
		size_t len = (size_t)((unsigned)data[off] << 8 | data[off + 1]) % 1300;
		const uint8_t *f = data + off + 2;
		uint32_t idx = 0;
		ssize_t r;
		int pr;

		off += 2;
		if (size - off < len)
			len = size - off;
		off += len;
		pr = nb_seal_peek_index(f, len, &idx);
		r = nb_seal_open(b, f, len, out, sizeof(out), now++);
		if (pr != 0)
			CHECK(r == pr);
		else
			CHECK(r >= 0 || (r <= NB_SEAL_E_SHORT && r >= NB_SEAL_E_CRYPTO && r != NB_SEAL_E_CRYPTO));
		if (r >= 0) {
			CHECK((size_t)r == len - NB_SEAL_OVERHEAD);
			CHECK(nb_seal_open(b, f, len, out, sizeof(out), now) == NB_SEAL_E_REPLAY);
		}
	}
}

static void window(struct nb_seal *b, const uint8_t ka[32], const uint8_t *data, size_t size)
{
	static uint64_t seen[MAX_RECORDS];
	size_t n_seen = 0, off = 8;
	uint64_t c = 0, top = 0;
	bool any = false;
	uint8_t f[64], out[64];

	if (size < 8)
		return;
	for (int i = 0; i < 8; i++)
		c = c << 8 | data[i];
	for (size_t rec = 0; rec < MAX_RECORDS && size - off >= 3; rec++, off += 3) {
		uint64_t mag = (uint64_t)data[off + 1] << 8 | data[off + 2];
		uint8_t op = data[off];
		bool dup = false, want;
		size_t len;
		ssize_t r;

		if (op & 2)
			mag <<= 6; /* jumps of up to ~4 M: past the window */
		c = op & 1 ? c - mag : c + mag; /* wraps on purpose */
		for (size_t i = 0; i < n_seen && !dup; i++)
			dup = seen[i] == c;
		want = c < NB_SEAL_REJECT_AFTER_MESSAGES && !dup &&
		       (!any || c > top || top - c <= NB_SEAL_WINDOW);
		len = forge(ka, c, (const uint8_t *)&op, 1, f);
		if (op & 4) { /* a flipped bit: never opens, changes nothing */
			f[(size_t)data[off + 2] % len] ^= (uint8_t)(1u << (data[off + 1] & 7));
			CHECK(nb_seal_open(b, f, len, out, sizeof(out), 1) < 0);
			f[(size_t)data[off + 2] % len] ^= (uint8_t)(1u << (data[off + 1] & 7));
		}
		r = nb_seal_open(b, f, len, out, sizeof(out), 1);
		CHECK(want ? r == 1 && out[0] == op
			   : r == (c >= NB_SEAL_REJECT_AFTER_MESSAGES ? NB_SEAL_E_EXHAUSTED : NB_SEAL_E_REPLAY));
		if (r == 1) {
			seen[n_seen++] = c;
			if (!any || c > top)
				top = c;
			any = true;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nb_seal b;
	struct nb_seal_keys kb;
	uint8_t ka[32];

	if (size < 1)
		return 0;
	keys(&kb, ka);
	CHECK(nb_seal_init(&b, &kb, 0) == 0);
	if (data[0] & 1)
		window(&b, ka, data + 1, size - 1);
	else
		raw(&b, data + 1, size - 1);
	nb_seal_wipe(&b);
	return 0;
}
