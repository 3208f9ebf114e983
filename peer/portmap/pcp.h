/* peer/portmap/pcp.h - Port Control Protocol version 2 (RFC 6887) messages:
 * build ANNOUNCE and MAP requests, decode responses. Only what a client that
 * maps ports needs. Pure: no I/O, no clock.
 *
 * Addresses are 128-bit fields; IPv4 is IPv4-mapped (::ffff:a.b.c.d, §5).
 *
 * Request header (§7.1), 24 bytes:
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Version = 2  |R|   Opcode    |         Reserved (0)          |  R = 0
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                 Requested Lifetime (32 bits)                  |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |            PCP Client's IP Address (128 bits)                 |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Response header (§7.2), 24 bytes:
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Version = 2  |R|   Opcode    |   Reserved    |  Result Code  |  R = 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                      Lifetime (32 bits)                       |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                     Epoch Time (32 bits)                      |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                      Reserved (96 bits)                       |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * MAP opcode payload (§11.1), 36 bytes after either header; in a response
 * the port and address are the assigned ones:
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                 Mapping Nonce (96 bits)                       |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |   Protocol    |          Reserved (24 bits)                   |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |        Internal Port          |    Suggested External Port    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |           Suggested External IP Address (128 bits)            |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Options (§7.3) follow the opcode payload, each padded to 4 bytes:
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Option Code  |  Reserved     |       Option Length           |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   :                   data (Option Length bytes, then 0-3 pad)    :
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ */
#ifndef NB_PEER_PCP_H
#define NB_PEER_PCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

#define NB_PCP_PORT 5351
#define NB_PCP_VERSION 2
#define NB_PCP_MAX 1100 /* §7: "maximum UDP payload length of 1100 octets" */
#define NB_PCP_NONCE_LEN 12
#define NB_PCP_PROTO_TCP 6
#define NB_PCP_PROTO_UDP 17

#define NB_PCP_HEADER_LEN 24
#define NB_PCP_MAP_LEN 60 /* header + MAP payload */

enum nb_pcp_opcode { NB_PCP_OP_ANNOUNCE = 0, NB_PCP_OP_MAP = 1, NB_PCP_OP_PEER = 2 };

/* §7.4 */
enum nb_pcp_result {
	NB_PCP_SUCCESS = 0,
	NB_PCP_UNSUPP_VERSION = 1,
	NB_PCP_NOT_AUTHORIZED = 2,
	NB_PCP_MALFORMED_REQUEST = 3,
	NB_PCP_UNSUPP_OPCODE = 4,
	NB_PCP_UNSUPP_OPTION = 5,
	NB_PCP_MALFORMED_OPTION = 6,
	NB_PCP_NETWORK_FAILURE = 7,
	NB_PCP_NO_RESOURCES = 8,
	NB_PCP_UNSUPP_PROTOCOL = 9,
	NB_PCP_USER_EX_QUOTA = 10,
	NB_PCP_CANNOT_PROVIDE_EXTERNAL = 11,
	NB_PCP_ADDRESS_MISMATCH = 12,
	NB_PCP_EXCESSIVE_REMOTE_PEERS = 13
};

struct nb_pcp_map {
	uint8_t nonce[NB_PCP_NONCE_LEN];
	uint8_t protocol;           /* NB_PCP_PROTO_UDP/TCP */
	uint16_t internal_port;
	uint16_t external_port;     /* suggested (request) / assigned (response) */
	struct nb_addr external_ip; /* IPv4-mapped on the wire <-> NB_AF_INET here; NB_AF_NONE = no preference
				     * (encoded as ::ffff:0.0.0.0 when the client is IPv4, :: when IPv6).
				     * Decoding gives NB_AF_NONE for both all-zero forms. Its port is
				     * ignored on encode and 0 on decode (see external_port). */
};

/* ANNOUNCE request: the 24-byte header, lifetime 0. client = the client's own IP
 * (v4 -> ::ffff:a.b.c.d; its port is ignored). Returns the length written, or 0
 * on bad args (NULL, client not INET/INET6) or cap < 24. */
size_t nb_pcp_encode_announce(uint8_t *out, size_t cap, const struct nb_addr *client);

/* MAP request: 60 bytes. lifetime 0 = delete (RFC 6887 15). Returns 60, or 0 on
 * bad args: NULL, client not INET/INET6, protocol not UDP/TCP, internal_port 0
 * (§11.1: port 0 means "all ports" and needs protocol 0), external_ip family
 * not NONE/INET/INET6; or cap < 60. */
size_t nb_pcp_encode_map(uint8_t *out, size_t cap, const struct nb_addr *client, uint32_t lifetime,
			 const struct nb_pcp_map *m);

struct nb_pcp_response {
	uint8_t version;   /* 2; or what an UNSUPP_VERSION response carried */
	uint8_t opcode;    /* without the R bit */
	uint8_t result;
	uint32_t lifetime; /* success: granted; error: how long the error holds */
	uint32_t epoch;
	bool has_map;      /* a MAP response with its 36-byte payload */
	struct nb_pcp_map map;
};

/* 0, or -EINVAL for: shorter than the 24-byte header, longer than NB_PCP_MAX,
 * length not a multiple of 4 (§8.3), R bit clear, version 0 (that is NAT-PMP:
 * the caller decodes it with nb_natpmp_decode), version != 2 unless result is
 * UNSUPP_VERSION (then only the header is decoded), a MAP (or PEER) response
 * whose payload is cut short (a SUCCESS always needs it; an error response may
 * come header-only, has_map false), an option TLV that overruns the datagram.
 * Options are skipped (§7.3: a client ignores options it does not understand,
 * even mandatory ones); reserved fields are ignored. An opcode other than
 * ANNOUNCE/MAP/PEER is decoded (header only) for the caller to drop.
 * Does not check the source address, opcode, nonce or epoch: the caller's job.
 * *r untouched on failure. */
int nb_pcp_decode(const uint8_t *buf, size_t len, struct nb_pcp_response *r);

/* One distinct, user-meaningful phrase per code 0..13; "unknown result code"
 * otherwise (callers print the number). Never NULL. */
const char *nb_pcp_result_string(uint8_t result);

/* §7.4 "short lifetime" errors: NETWORK_FAILURE, NO_RESOURCES, USER_EX_QUOTA,
 * CANNOT_PROVIDE_EXTERNAL. Every other code (SUCCESS and unknown ones
 * included) is false: long lifetime errors (UNSUPP_*, NOT_AUTHORIZED,
 * MALFORMED_*, ADDRESS_MISMATCH, EXCESSIVE_REMOTE_PEERS) are not retried
 * before the response's lifetime passes. */
bool nb_pcp_result_is_transient(uint8_t result);

#endif
