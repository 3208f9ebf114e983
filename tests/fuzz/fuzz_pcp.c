/* tests/fuzz/fuzz_pcp.c - libFuzzer target for PCP responses.
 *
 * Decodes the input as a PCP response; an accepted one must satisfy the
 * header's promises (§8.3 framing: 24..1100 bytes, a multiple of 4, R set,
 * version 2 or an UNSUPP_VERSION of another non-zero version; a MAP success
 * has its payload; fields read back from the bytes); a refused one leaves
 * *r untouched. An accepted MAP is then re-encoded as our request, turned
 * into a response (R set, SUCCESS) and decoded again: the mapping must come
 * back the same. Any inconsistency traps. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/bytes.h"
#include "peer/portmap/pcp.h"

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const struct nb_pcp_map *m, uint32_t lifetime)
{
	struct nb_addr client;
	struct nb_pcp_response back;
	uint8_t req[NB_PCP_MAP_LEN];

	if ((m->protocol != NB_PCP_PROTO_UDP && m->protocol != NB_PCP_PROTO_TCP) || m->internal_port == 0)
		return;
	CHECK(nb_addr_parse("192.168.1.20", true, &client) == 0);
	CHECK(nb_pcp_encode_map(req, sizeof(req), &client, lifetime, m) == NB_PCP_MAP_LEN);
	CHECK(nb_pcp_decode(req, sizeof(req), &back) == -EINVAL); /* R clear */
	req[1] |= 0x80;
	req[3] = NB_PCP_SUCCESS;
	CHECK(nb_pcp_decode(req, sizeof(req), &back) == 0);
	CHECK(back.has_map && back.lifetime == lifetime);
	CHECK(memcmp(back.map.nonce, m->nonce, NB_PCP_NONCE_LEN) == 0);
	CHECK(back.map.protocol == m->protocol && back.map.internal_port == m->internal_port &&
	      back.map.external_port == m->external_port);
	CHECK(back.map.external_ip.family == m->external_ip.family);
	if (m->external_ip.family != NB_AF_NONE)
		CHECK(nb_addr_ip_equal(&back.map.external_ip, &m->external_ip));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nb_pcp_response r, sentinel;
	int rc;

	memset(&r, 0xA5, sizeof(r));
	sentinel = r;
	rc = nb_pcp_decode(data, size, &r);
	if (rc != 0) {
		CHECK(rc == -EINVAL && memcmp(&r, &sentinel, sizeof(r)) == 0);
		return 0;
	}
	CHECK(size >= NB_PCP_HEADER_LEN && size <= NB_PCP_MAX && size % 4 == 0);
	CHECK((data[1] & 0x80) && data[0] != 0);
	CHECK(r.version == data[0] && r.opcode == (data[1] & 0x7f) && r.result == data[3]);
	CHECK(r.lifetime == nb_get_u32be(data + 4) && r.epoch == nb_get_u32be(data + 8));
	if (r.version != NB_PCP_VERSION)
		CHECK(r.result == NB_PCP_UNSUPP_VERSION && !r.has_map);
	if (r.has_map) {
		CHECK(r.version == NB_PCP_VERSION && r.opcode == NB_PCP_OP_MAP && size >= NB_PCP_MAP_LEN);
		CHECK(memcmp(r.map.nonce, data + 24, NB_PCP_NONCE_LEN) == 0);
		CHECK(r.map.protocol == data[36] && r.map.internal_port == nb_get_u16be(data + 40) &&
		      r.map.external_port == nb_get_u16be(data + 42));
		CHECK(r.map.external_ip.port == 0);
		CHECK(r.map.external_ip.family == NB_AF_NONE || r.map.external_ip.family == NB_AF_INET ||
		      r.map.external_ip.family == NB_AF_INET6);
		round_trip(&r.map, r.lifetime);
	} else if (r.version == NB_PCP_VERSION && r.opcode == NB_PCP_OP_MAP) {
		CHECK(r.result != NB_PCP_SUCCESS && size == NB_PCP_HEADER_LEN);
	}
	CHECK(nb_pcp_result_string(r.result) != NULL);
	(void)nb_pcp_result_is_transient(r.result);
	return 0;
}
