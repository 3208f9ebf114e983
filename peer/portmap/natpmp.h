/* peer/portmap/natpmp.h - NAT-PMP (RFC 6886) messages: build the requests,
 * decode the responses. Pure: no I/O, no clock.
 *
 * Requests (client -> gateway:5351, UDP):
 *
 *   external address (§3.2), 2 bytes:
 *    0               1
 *   +---------------+---------------+
 *   | Vers = 0      | OP = 0        |
 *   +---------------+---------------+
 *
 *   map (§3.3), 12 bytes; OP 1 = UDP, 2 = TCP:
 *    0                   1                   2                   3
 *   +---------------+---------------+-------------------------------+
 *   | Vers = 0      | OP = 1 or 2   | Reserved (MUST be 0)          |
 *   +---------------+---------------+-------------------------------+
 *   | Internal Port                 | Suggested External Port       |
 *   +-------------------------------+-------------------------------+
 *   | Requested Port Mapping Lifetime in Seconds                    |
 *   +---------------------------------------------------------------+
 *
 * Responses (gateway -> client); OP = 128 + the request's OP:
 *
 *   common part (every response, errors included), 8 bytes:
 *   +---------------+---------------+-------------------------------+
 *   | Vers = 0      | OP = 128 + op | Result Code                   |
 *   +---------------+---------------+-------------------------------+
 *   | Seconds Since Start of Epoch                                  |
 *   +---------------------------------------------------------------+
 *   then for OP 128 (12 bytes in all):
 *   | External IPv4 Address (a.b.c.d)                               |
 *   or for OP 129/130 (16 bytes in all):
 *   | Internal Port                 | Mapped External Port          |
 *   | Port Mapping Lifetime in Seconds                              |
 *
 * Errors: a gateway that speaks only NAT-PMP answers a PCP (version 2)
 * request with an 8-byte version-0 response, OP = 128 + the PCP opcode,
 * result 1 (UNSUPPORTED_VERSION) (RFC 6886 §3.5, RFC 6887 §9). */
#ifndef NB_PEER_NATPMP_H
#define NB_PEER_NATPMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

#define NB_NATPMP_PORT 5351
#define NB_NATPMP_REQ_MAX 12

enum nb_natpmp_op { NB_NATPMP_OP_EXTADDR = 0, NB_NATPMP_OP_MAP_UDP = 1, NB_NATPMP_OP_MAP_TCP = 2 };

/* RFC 6886 §3.5 */
enum nb_natpmp_result {
	NB_NATPMP_SUCCESS = 0,
	NB_NATPMP_UNSUPP_VERSION = 1,
	NB_NATPMP_NOT_AUTHORIZED = 2,
	NB_NATPMP_NETWORK_FAILURE = 3,
	NB_NATPMP_NO_RESOURCES = 4,
	NB_NATPMP_UNSUPP_OPCODE = 5
};

/* 2 bytes: version 0, opcode 0. Returns the length written. */
size_t nb_natpmp_encode_extaddr(uint8_t out[NB_NATPMP_REQ_MAX]);

/* 12 bytes. lifetime 0 + suggested_ext 0 = delete (RFC 6886 3.4).
 * Returns the length written. */
size_t nb_natpmp_encode_map(uint8_t out[NB_NATPMP_REQ_MAX], bool tcp, uint16_t internal_port,
			    uint16_t suggested_ext, uint32_t lifetime);

struct nb_natpmp_response {
	uint8_t op;              /* the request's opcode (response opcode - 128): 0, 1 or 2 */
	uint16_t result;         /* any value; unknown ones are decoded, not refused */
	uint32_t epoch;          /* seconds since start of epoch */
	bool full;               /* result SUCCESS and the whole body was present */
	struct nb_addr external; /* EXTADDR success: the IPv4 address, port 0;
				  * NB_AF_NONE otherwise (RFC 6886 §3.2: ignored on error).
				  * May be 0.0.0.0 or private (double NAT): the caller judges. */
	uint16_t internal_port, external_port; /* MAP success. internal_port is also set
						* from an error response that carries
						* the 16-byte body, to match it to its
						* request; 0 when absent. */
	uint32_t lifetime;       /* MAP success */
};

/* 0, or -EINVAL: not version 0, opcode not 128..130, shorter than 8 bytes
 * (an error response carries version, op, result, epoch), or a SUCCESS
 * shorter than its body (12 for EXTADDR, 16 for MAP). Longer is accepted.
 * *r untouched on failure. */
int nb_natpmp_decode(const uint8_t *buf, size_t len, struct nb_natpmp_response *r);

/* One distinct, user-meaningful phrase per code 0..5; "unknown result code"
 * for any other (callers print the number). Never NULL. */
const char *nb_natpmp_result_string(uint16_t result);

#endif
