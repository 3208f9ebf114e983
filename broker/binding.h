/* broker/binding.h - the STUN Binding service: one request in, at most one
 * response out. Pure and stateless: no sockets, no clock, no allocation.
 *
 * The server owns up to four UDP sockets, one per (IP, port) pair:
 *
 *                  port[0] (primary, 3478)   port[1] (alternate, 3479)
 *   ip[0] primary       socket (0,0)              socket (0,1)
 *   ip[1] alternate     socket (1,0)              socket (1,1)
 *
 * RFC 5780 mode needs all four. Single-address mode uses only (0,0).
 * The shell says which socket received a request; the handler says which
 * socket the response leaves from (CHANGE-REQUEST picks another one) and to
 * whom (the source address, with RESPONSE-PORT the source IP and that port:
 * never any other IP - RESPONSE-ADDRESS is never honoured).
 *
 * What is answered (docs/broker.md has the whole table):
 *   - a Binding request, RFC 8489 or classic RFC 3489 (no magic cookie);
 *   - everything else is dropped without a word: not STUN, malformed,
 *     longer than NB_STUN_MAX_MSG (1200) bytes,
 *     responses, indications, other methods, bad FINGERPRINT, an unusable
 *     source address. A public stateless server must not become a reflector
 *     of error messages for traffic it does not serve.
 *   - 420 + UNKNOWN-ATTRIBUTES for unknown comprehension-required
 *     attributes, and for CHANGE-REQUEST with a flag set in single-address
 *     mode (RFC 5780 §6); 400 for RESPONSE-PORT with PADDING (RFC 5780
 *     §7.5), RESPONSE-PORT 0, and for CHANGE-REQUEST (flag set),
 *     RESPONSE-PORT or PADDING over TCP (as coturn does).
 */
#ifndef NB_BROKER_BINDING_H
#define NB_BROKER_BINDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "proto/stun.h"

/* No response is ever longer than this (a UDP datagram of the project). */
#define NB_BINDING_MAX_RESPONSE NB_STUN_MAX_MSG

/* Longest SOFTWARE value we send. RFC 8489 §14.14: "fewer than 128
 * characters"; we count bytes, which is stricter. */
#define NB_BINDING_MAX_SOFTWARE 127

enum nb_binding_transport {
	NB_BINDING_UDP = 0,
	NB_BINDING_TCP = 1,
};

struct nb_binding_config {
	/* false: single address (only ip[0], port[0]; ip[0] may be the
	 * unspecified address). true: RFC 5780, two IPs x two ports. */
	bool rfc5780;
	struct nb_addr ip[2]; /* the port field is ignored */
	uint16_t port[2];
	/* SOFTWARE attribute value, or NULL (the default: smaller responses,
	 * nothing for a scanner to fingerprint). Not NUL-terminated. */
	const uint8_t *software;
	size_t software_len;
};

struct nb_binding_request {
	const uint8_t *data; /* one datagram, or one TCP frame */
	size_t len;
	struct nb_addr from; /* the requester's transport address */
	uint8_t ip_idx;      /* the socket that received it */
	uint8_t port_idx;
	uint8_t transport; /* enum nb_binding_transport */
};

struct nb_binding_reply {
	size_t len;          /* bytes written to the caller's buffer */
	uint8_t ip_idx;      /* send from this socket (UDP; TCP: the connection) */
	uint8_t port_idx;
	struct nb_addr to;   /* destination; its IP is always the requester's */
	uint16_t error_code; /* 0 for a success response, else 400 or 420 */
};

/* Why nothing was sent: negative returns of nb_binding_handle(), in a range
 * of their own (clear of -errno and of enum nb_stun_err). */
enum nb_binding_drop {
	NB_BINDING_DROP_NOT_STUN = -2001,    /* first bits, length or framing wrong */
	NB_BINDING_DROP_MALFORMED = -2002,   /* looked like STUN; the decoder refused it */
	NB_BINDING_DROP_NOT_REQUEST = -2003, /* a response or an indication */
	NB_BINDING_DROP_METHOD = -2004,      /* a request, but not Binding */
	NB_BINDING_DROP_SOURCE = -2005,      /* source port 0, unspecified, multicast, broadcast */
	NB_BINDING_DROP_SOCKET = -2006,      /* the receiving socket does not exist in this mode */
	NB_BINDING_DROP_NOSPACE = -2007,     /* caller's buffer too small for the response */
	NB_BINDING_DROP_TOO_BIG = -2008,     /* longer than NB_STUN_MAX_MSG */
};
#define NB_BINDING_DROP_COUNT 8
/* 0 .. NB_BINDING_DROP_COUNT-1 for a drop code, for counter arrays. */
static inline unsigned nb_binding_drop_index(int drop)
{
	return (unsigned)(NB_BINDING_DROP_NOT_STUN - drop);
}

/* Check a configuration: 0, or -EINVAL. RFC 5780 mode needs two distinct,
 * specified IPs of one family and two distinct non-zero ports; single mode
 * needs a non-zero port[0]. */
int nb_binding_config_check(const struct nb_binding_config *cfg);

/* The local transport address of socket (ip_idx, port_idx). */
struct nb_addr nb_binding_local(const struct nb_binding_config *cfg, unsigned ip_idx,
				unsigned port_idx);

/* Handle one request. On success returns 0, writes ret->len (<= cap and <=
 * NB_BINDING_MAX_RESPONSE) bytes to buf and fills *ret. Otherwise returns a
 * negative enum nb_binding_drop: send nothing; *ret is untouched (buf may
 * hold a partial message). The request bytes are never modified. */
int nb_binding_handle(const struct nb_binding_config *cfg, const struct nb_binding_request *req,
		      uint8_t *buf, size_t cap, struct nb_binding_reply *ret);

/* Short name of a drop code, for logs and counters ("not-stun", ...). */
const char *nb_binding_drop_name(int drop);

#endif
