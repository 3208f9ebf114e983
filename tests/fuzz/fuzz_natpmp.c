/* tests/fuzz/fuzz_natpmp.c - libFuzzer target for NAT-PMP responses.
 *
 * Decodes the input as a NAT-PMP response; an accepted one must satisfy the
 * header's promises (version 0, opcode 128..130, at least 8 bytes, a SUCCESS
 * with its whole body, the fields read back from the bytes); a refused one
 * leaves *r untouched. The same bytes must be refused by the PCP decoder
 * (version 0 is not PCP). The first bytes also drive a MAP request whose
 * encoding is checked field by field. Any inconsistency traps. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/bytes.h"
#include "peer/portmap/natpmp.h"
#include "peer/portmap/pcp.h"

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nb_natpmp_response r, sentinel;
	struct nb_pcp_response pr;
	uint8_t req[NB_NATPMP_REQ_MAX];
	int rc;

	memset(&r, 0xA5, sizeof(r));
	sentinel = r;
	rc = nb_natpmp_decode(data, size, &r);
	if (rc != 0) {
		CHECK(rc == -EINVAL && memcmp(&r, &sentinel, sizeof(r)) == 0);
	} else {
		size_t body = r.op == 0 ? 12 : 16;

		CHECK(size >= 8 && data[0] == 0 && data[1] >= 128 && data[1] <= 130);
		CHECK(r.op == data[1] - 128);
		CHECK(r.result == nb_get_u16be(data + 2) && r.epoch == nb_get_u32be(data + 4));
		CHECK(r.full == (r.result == NB_NATPMP_SUCCESS));
		if (r.full)
			CHECK(size >= body);
		if (r.op == 0 && r.full) {
			CHECK(r.external.family == NB_AF_INET && r.external.port == 0);
			CHECK(memcmp(r.external.ip, data + 8, 4) == 0);
		} else {
			CHECK(r.external.family == NB_AF_NONE);
		}
		if (r.op != 0 && size >= body) {
			CHECK(r.internal_port == nb_get_u16be(data + 8));
			if (r.full)
				CHECK(r.external_port == nb_get_u16be(data + 10) &&
				      r.lifetime == nb_get_u32be(data + 12));
		} else {
			CHECK(r.internal_port == 0 && r.external_port == 0 && r.lifetime == 0);
		}
		CHECK(nb_natpmp_result_string(r.result) != NULL);
		CHECK(nb_pcp_decode(data, size, &pr) == -EINVAL);
	}
	if (size >= 9) {
		bool tcp = data[0] & 1;
		uint16_t in = nb_get_u16be(data + 1), ext = nb_get_u16be(data + 3);
		uint32_t life = nb_get_u32be(data + 5);

		CHECK(nb_natpmp_encode_map(req, tcp, in, ext, life) == 12);
		CHECK(req[0] == 0 && req[1] == (tcp ? 2 : 1) && req[2] == 0 && req[3] == 0);
		CHECK(nb_get_u16be(req + 4) == in && nb_get_u16be(req + 6) == ext);
		CHECK(nb_get_u32be(req + 8) == life);
		/* our request is never taken for a response */
		CHECK(nb_natpmp_decode(req, 12, &r) == -EINVAL);
	}
	return 0;
}
