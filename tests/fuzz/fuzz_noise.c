/* tests/fuzz/fuzz_noise.c - libFuzzer target for the Noise IK handshake frames.
 *
 * Fixed keys. Every input is fed
 *  - as an initiation (0xD1) to a fresh responder, and
 *  - as a response (0xD2) to a copy of one pending initiation (made once,
 *    with a fixed ephemeral key, so the seed corpus holds a valid response).
 * Promises, broken ones are __builtin_trap():
 *  - never crash; every error is one of ours, and then the handshake is FAILED;
 *  - nb_noise_frame_type agrees with what the readers accept (a frame the
 *    reader got past the cheap checks has the right type and length);
 *  - an accepted initiation carries our initiator's static key, and can be
 *    answered and split; an accepted response splits into keys that match
 *    the responder's (when the input is the seed response). */
#include <stdint.h>
#include <string.h>

#include "common/keys.h"
#include "common/noise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

/* Fixed, deterministic keys (the seed corpus depends on them). */
static const uint8_t FZ_INIT_STATIC[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
					    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
static const uint8_t FZ_RESP_STATIC[32] = { 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a,
					    0x4b, 0x4c, 0x4d, 0x4e, 0x4f, 0x50, 0x51, 0x52, 0x53, 0x54, 0x55,
					    0x56, 0x57, 0x58, 0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f };
static const uint8_t FZ_INIT_E[32] = { 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a,
				       0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35,
				       0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f };
static const uint8_t FZ_RESP_E[32] = { 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a,
				       0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0x73, 0x74, 0x75,
				       0x76, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7c, 0x7d, 0x7e, 0x7f };
#define FZ_PROLOGUE ((const uint8_t *)"natbroker fuzz")
#define FZ_PLEN 14
#define FZ_INIT_INDEX 0x01020304u

static struct {
	bool ready;
	uint8_t init_pub[32], resp_pub[32];
	struct nb_noise_hs pending; /* initiator after write_init */
	uint8_t init_frame[NB_NOISE_INIT_MAX];
	size_t init_len;
} fz;

static void fz_setup(void)
{
	ssize_t n;

	if (fz.ready)
		return;
	CHECK(nb_key_public(FZ_INIT_STATIC, fz.init_pub) == 0);
	CHECK(nb_key_public(FZ_RESP_STATIC, fz.resp_pub) == 0);
	CHECK(nb_noise_init_initiator(&fz.pending, FZ_INIT_STATIC, fz.resp_pub, FZ_PROLOGUE, FZ_PLEN) == 0);
	CHECK(nb_noise_set_ephemeral_for_test(&fz.pending, FZ_INIT_E) == 0);
	n = nb_noise_write_init(&fz.pending, FZ_INIT_INDEX, (const uint8_t *)"seed", 4, fz.init_frame,
				sizeof(fz.init_frame));
	CHECK(n > 0);
	fz.init_len = (size_t)n;
	fz.ready = true;
}

static bool our_error(ssize_t rc)
{
	return rc >= NB_NOISE_E_TOO_BIG && rc <= NB_NOISE_E_SHORT;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nb_noise_hs rsp, ini;
	struct nb_noise_keys kr, ki;
	uint8_t payload[NB_NOISE_MAX_PAYLOAD], out[NB_NOISE_RESP_MAX];
	int type;
	ssize_t n;

	fz_setup();
	type = nb_noise_frame_type(data, size);
	CHECK(type == NB_NOISE_TYPE_INIT || type == NB_NOISE_TYPE_RESP || our_error(type));

	/* As an initiation. */
	CHECK(nb_noise_init_responder_with_public(&rsp, FZ_RESP_STATIC, fz.resp_pub, FZ_PROLOGUE, FZ_PLEN) == 0);
	n = nb_noise_read_init(&rsp, data, size, payload, sizeof(payload));
	if (n < 0) {
		CHECK(our_error(n));
		CHECK(nb_noise_state(&rsp) == NB_NOISE_HS_FAILED);
		if (type == NB_NOISE_TYPE_INIT)
			CHECK(n != NB_NOISE_E_SHORT && n != NB_NOISE_E_TYPE && n != NB_NOISE_E_TOO_BIG);
	} else {
		CHECK(type == NB_NOISE_TYPE_INIT && (size_t)n == size - NB_NOISE_INIT_MIN);
		/* Only our initiator's key can produce a valid s. */
		CHECK(nb_key_equal(nb_noise_remote_static(&rsp), fz.init_pub));
		CHECK(nb_noise_set_ephemeral_for_test(&rsp, FZ_RESP_E) == 0);
		CHECK(nb_noise_write_resp(&rsp, 0x0a0b0c0d, payload, (size_t)n, out, sizeof(out)) > 0);
		CHECK(nb_noise_split(&rsp, &kr) == 0);
	}

	/* As a response to the pending initiation. */
	ini = fz.pending;
	n = nb_noise_read_resp(&ini, data, size, payload, sizeof(payload));
	if (n < 0) {
		CHECK(our_error(n));
		CHECK(nb_noise_state(&ini) == NB_NOISE_HS_FAILED);
		if (type == NB_NOISE_TYPE_RESP)
			CHECK(n != NB_NOISE_E_SHORT && n != NB_NOISE_E_TYPE && n != NB_NOISE_E_TOO_BIG);
	} else {
		CHECK(type == NB_NOISE_TYPE_RESP && (size_t)n == size - NB_NOISE_RESP_MIN);
		CHECK(nb_noise_split(&ini, &ki) == 0);
		CHECK(ki.local_index == FZ_INIT_INDEX);
		CHECK(nb_key_equal(ki.remote_static, fz.resp_pub));
	}
	return 0;
}

#ifdef NB_FUZZ_NOISE_SEEDS
/* Seed writer (not part of the build): prints the valid initiation, and
 * the valid response to the pending one, as files in the folder argv[1]. */
#include <stdio.h>

static void put(const char *dir, const char *name, const uint8_t *p, size_t len)
{
	char path[512];
	FILE *f;

	CHECK(snprintf(path, sizeof(path), "%s/%s", dir, name) < (int)sizeof(path));
	f = fopen(path, "wb");
	CHECK(f && fwrite(p, 1, len, f) == len && fclose(f) == 0);
}

int main(int argc, char **argv)
{
	struct nb_noise_hs rsp;
	uint8_t payload[NB_NOISE_MAX_PAYLOAD], out[NB_NOISE_RESP_MAX], big[NB_NOISE_INIT_MAX];
	struct nb_noise_hs ini;
	ssize_t n;

	CHECK(argc == 2);
	fz_setup();
	put(argv[1], "init-valid", fz.init_frame, fz.init_len);
	CHECK(nb_noise_init_responder_with_public(&rsp, FZ_RESP_STATIC, fz.resp_pub, FZ_PROLOGUE, FZ_PLEN) == 0);
	CHECK(nb_noise_read_init(&rsp, fz.init_frame, fz.init_len, payload, sizeof(payload)) == 4);
	CHECK(nb_noise_set_ephemeral_for_test(&rsp, FZ_RESP_E) == 0);
	n = nb_noise_write_resp(&rsp, 0x0a0b0c0d, (const uint8_t *)"answer", 6, out, sizeof(out));
	CHECK(n > 0);
	put(argv[1], "resp-valid", out, (size_t)n);
	/* An initiation with an empty payload and one with the largest. */
	CHECK(nb_noise_init_initiator(&ini, FZ_INIT_STATIC, fz.resp_pub, FZ_PROLOGUE, FZ_PLEN) == 0);
	n = nb_noise_write_init(&ini, 7, NULL, 0, big, sizeof(big));
	CHECK(n > 0);
	put(argv[1], "init-empty", big, (size_t)n);
	memset(payload, 'p', sizeof(payload));
	CHECK(nb_noise_init_initiator(&ini, FZ_INIT_STATIC, fz.resp_pub, FZ_PROLOGUE, FZ_PLEN) == 0);
	n = nb_noise_write_init(&ini, 8, payload, NB_NOISE_MAX_PAYLOAD, big, sizeof(big));
	CHECK(n > 0);
	put(argv[1], "init-max", big, (size_t)n);
	/* Right type, wrong lengths; wrong type; low-order e. */
	put(argv[1], "init-short", fz.init_frame, NB_NOISE_INIT_MIN - 1);
	put(argv[1], "resp-short", out, NB_NOISE_RESP_MIN - 1);
	big[0] = 0xD3;
	put(argv[1], "type-d3", big, 60);
	memcpy(big, fz.init_frame, fz.init_len);
	memset(big + 5, 0, 32);
	put(argv[1], "init-zero-e", big, fz.init_len);
	return 0;
}
#endif
