/* peer/portmap/natpmp.c - NAT-PMP (RFC 6886) requests and responses.
 *
 * Pure: no I/O, no malloc. Choices made here (see also natpmp.h):
 * - A response shorter than 8 bytes is refused; an error response may stop
 *   after the epoch (the 8-byte UNSUPPORTED_VERSION reply of §3.5), a
 *   SUCCESS must carry its whole body. Bytes past the body are ignored
 *   (the RFC defines none; refusing them would gain nothing).
 * - Unknown result codes are decoded and left to the caller; only the
 *   framing (version, opcode, length) is refused here.
 * - The source address check (§3.1: "MUST ... silently discard the packet if
 *   the address is not the address of the gateway") and the epoch check
 *   (§3.6) need state and belong to the caller. */
#include "peer/portmap/natpmp.h"

#include <errno.h>
#include <string.h>

#include "common/bytes.h"

#define NATPMP_VERSION 0
#define NATPMP_RESPONSE_BIT 128 /* §3.2: "OP = 128 + x" */
#define NATPMP_HDR_LEN 8        /* version, op, result, epoch */
#define NATPMP_EXTADDR_LEN 12
#define NATPMP_MAP_LEN 16

size_t nb_natpmp_encode_extaddr(uint8_t out[NB_NATPMP_REQ_MAX])
{
	out[0] = NATPMP_VERSION;
	out[1] = NB_NATPMP_OP_EXTADDR;
	return 2;
}

size_t nb_natpmp_encode_map(uint8_t out[NB_NATPMP_REQ_MAX], bool tcp, uint16_t internal_port,
			    uint16_t suggested_ext, uint32_t lifetime)
{
	out[0] = NATPMP_VERSION;
	out[1] = tcp ? NB_NATPMP_OP_MAP_TCP : NB_NATPMP_OP_MAP_UDP;
	nb_put_u16be(out + 2, 0); /* §3.3: "Reserved: MUST be set to zero" */
	nb_put_u16be(out + 4, internal_port);
	nb_put_u16be(out + 6, suggested_ext);
	nb_put_u32be(out + 8, lifetime);
	return NB_NATPMP_REQ_MAX;
}

int nb_natpmp_decode(const uint8_t *buf, size_t len, struct nb_natpmp_response *r)
{
	struct nb_natpmp_response out;
	size_t body;

	if (buf == NULL || r == NULL || len < NATPMP_HDR_LEN)
		return -EINVAL;
	if (buf[0] != NATPMP_VERSION)
		return -EINVAL;
	if (buf[1] < NATPMP_RESPONSE_BIT + NB_NATPMP_OP_EXTADDR ||
	    buf[1] > NATPMP_RESPONSE_BIT + NB_NATPMP_OP_MAP_TCP)
		return -EINVAL;
	memset(&out, 0, sizeof(out));
	out.op = (uint8_t)(buf[1] - NATPMP_RESPONSE_BIT);
	out.result = nb_get_u16be(buf + 2);
	out.epoch = nb_get_u32be(buf + 4);
	out.external.family = NB_AF_NONE;
	body = out.op == NB_NATPMP_OP_EXTADDR ? NATPMP_EXTADDR_LEN : NATPMP_MAP_LEN;
	if (len < body) {
		if (out.result == NB_NATPMP_SUCCESS)
			return -EINVAL;
		goto out;
	}
	if (out.op == NB_NATPMP_OP_EXTADDR) {
		/* §3.2: on error the address "MUST be ignored on reception" */
		if (out.result == NB_NATPMP_SUCCESS) {
			out.external.family = NB_AF_INET;
			memcpy(out.external.ip, buf + 8, 4);
		}
	} else {
		out.internal_port = nb_get_u16be(buf + 8);
		if (out.result == NB_NATPMP_SUCCESS) {
			out.external_port = nb_get_u16be(buf + 10);
			out.lifetime = nb_get_u32be(buf + 12);
		}
	}
	out.full = out.result == NB_NATPMP_SUCCESS;
out:
	*r = out;
	return 0;
}

const char *nb_natpmp_result_string(uint16_t result)
{
	switch (result) {
	case NB_NATPMP_SUCCESS:
		return "success";
	case NB_NATPMP_UNSUPP_VERSION:
		return "unsupported version (the gateway does not speak this protocol version)";
	case NB_NATPMP_NOT_AUTHORIZED:
		return "not authorized or refused (the router's NAT-PMP is off, or this host may not map)";
	case NB_NATPMP_NETWORK_FAILURE:
		return "network failure (the router has no external address yet, e.g. no DHCP lease)";
	case NB_NATPMP_NO_RESOURCES:
		return "out of resources (the router cannot create more mappings now)";
	case NB_NATPMP_UNSUPP_OPCODE:
		return "unsupported opcode (the router does not implement this request)";
	default:
		return "unknown result code";
	}
}
