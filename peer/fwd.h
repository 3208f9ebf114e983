/* peer/fwd.h - port forwarding's pure core: the data channel's payload kinds,
 * the --expose/--forward specs and the bounded flow table. No I/O, no libuv,
 * no clock (`now` comes in). docs/forwarding.md and docs/protocol.md
 * "Payload kinds" are the specification.
 *
 * Every non-empty data-channel payload (peer/datachan.h, 1..1371 bytes)
 * starts with a kind byte:
 *
 *   kind 0x00, a natpeer pipe line (stdin/stdout):
 *    0        1                      n
 *   +--------+----------------------+
 *   |  0x00  | line (0..1370 bytes) |
 *   +--------+----------------------+
 *
 *   kind 0x01, a forwarded UDP datagram:
 *    0        1        3        5                          n
 *   +--------+--------+--------+--------------------------+
 *   |  0x01  |  port  |  flow  | datagram (0..1366 bytes) |
 *   +--------+--------+--------+--------------------------+
 *    port: u16 BE, the exposed service's port on the listener, 0 = "the
 *          listener's only exposed UDP service";
 *    flow: u16 BE, 1..65535, the connector's id for one local source
 *          (address:port). The listener answers with the same port and flow.
 *
 *   kind 0x02, a transport packet (forwarded TCP, docs/forwarding.md "TCP"):
 *    0        1                                    n
 *   +--------+------------------------------------+
 *   |  0x02  | one SCTP packet (1..1370 bytes)    |
 *   +--------+------------------------------------+
 *    handed as it is to the session's transport (peer/xport_run.h), which
 *    checks it. The stream's "open" message names the service (below).
 *
 *   Any other kind: refused (NB_FWD_E_KIND).
 *
 * Decoders hand back views into the caller's buffer (data, len): they live
 * as long as that buffer.
 */
#ifndef NB_PEER_FWD_H
#define NB_PEER_FWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/addr.h"

#define NB_FWD_KIND_PIPE 0x00
#define NB_FWD_KIND_UDP 0x01
#define NB_FWD_KIND_TCP 0x02
#define NB_FWD_PIPE_HDR 1
#define NB_FWD_UDP_HDR 5
#define NB_FWD_TCP_HDR 1
/* The data channel's payload (NB_DC_MAX_PAYLOAD, 1371) less the header. */
#define NB_FWD_MAX_PAYLOAD 1371
#define NB_FWD_MAX_LINE (NB_FWD_MAX_PAYLOAD - NB_FWD_PIPE_HDR)     /* 1370 */
#define NB_FWD_MAX_DATAGRAM (NB_FWD_MAX_PAYLOAD - NB_FWD_UDP_HDR) /* 1366 */
#define NB_FWD_MAX_TPACKET (NB_FWD_MAX_PAYLOAD - NB_FWD_TCP_HDR)  /* 1370: a transport packet */
#define NB_FWD_MAX_SPECS 8     /* --expose / --forward options per process */
#define NB_FWD_MAX_FLOWS 64    /* flows per table (the connector's; each listener peer's) */
#define NB_FWD_IDLE_MS 60000   /* a flow with no datagram either way for this long expires */
#define NB_FWD_TCP_IDLE_MS (2u * 3600u * 1000u) /* a TCP stream with no byte either way: reset */
#define NB_FWD_TCP_WQ_MAX (256u * 1024u) /* a local TCP socket's write queue: above it the stream pauses */

enum nb_fwd_err {
	NB_FWD_E_SHORT = -6001,   /* empty, or shorter than its kind's header */
	NB_FWD_E_KIND = -6002,    /* a kind byte this version does not know */
	NB_FWD_E_TOO_BIG = -6003, /* over NB_FWD_MAX_PAYLOAD (or a datagram over 1366) */
	NB_FWD_E_FLOW = -6004,    /* flow id 0 */
	NB_FWD_E_NOSPACE = -6005, /* encoder: buffer too small */
	NB_FWD_E_INVAL = -6006,   /* bad argument, or a bad spec */
	NB_FWD_E_NOENT = -6007,   /* flow table: no such flow */
	NB_FWD_E_FULL = -6008,    /* flow table: NB_FWD_MAX_FLOWS live flows, none idle */
	NB_FWD_E_SERVICE = -6009, /* a transport service name that is not "tcp:PORT" */
};

const char *nb_fwd_strerror(int err);

/* ---- Payload kinds -------------------------------------------------------- */

struct nb_fwd_hdr {
	uint8_t kind;  /* NB_FWD_KIND_PIPE, _UDP or _TCP */
	uint16_t port; /* UDP only */
	uint16_t flow; /* UDP only, 1..65535 */
};

/* Write h's header for a body of body_len bytes into out (cap bytes).
 * Returns the header length (1 or 5), or NB_FWD_E_KIND, NB_FWD_E_FLOW,
 * NB_FWD_E_TOO_BIG (body over NB_FWD_MAX_LINE / _DATAGRAM / _TPACKET),
 * NB_FWD_E_SHORT (a TCP body of 0 bytes),
 * NB_FWD_E_NOSPACE; out untouched on failure. */
ssize_t nb_fwd_hdr_put(const struct nb_fwd_hdr *h, size_t body_len, uint8_t *out, size_t cap);

/* Decode a payload (len >= 1). 0 and *ret_hdr, *ret_body (a view into p),
 * *ret_len (for kind 0x02 at least 1); or NB_FWD_E_SHORT, NB_FWD_E_KIND,
 * NB_FWD_E_TOO_BIG, NB_FWD_E_FLOW (outputs untouched). */
int nb_fwd_decode(const uint8_t *p, size_t len, struct nb_fwd_hdr *ret_hdr, const uint8_t **ret_body,
		  size_t *ret_len);

/* ---- Specs ----------------------------------------------------------------- */

/* One --expose or --forward option. UDP and TCP ports are separate
 * namespaces: udp 5353 and tcp 5353 may both be exposed. */
struct nb_fwd_spec {
	uint8_t proto;       /* NB_FWD_KIND_UDP or NB_FWD_KIND_TCP */
	struct nb_addr addr; /* expose: the service HOST:PORT; forward: BIND:LPORT */
	uint16_t rport;      /* forward: the listener's port to ask for (0 = its only one) */
};

/* "udp:HOST:PORT" or "tcp:HOST:PORT": HOST an IPv4 literal, a bracketed
 * IPv6 literal, or `localhost` (127.0.0.1); PORT 1..65535. 0, or
 * NB_FWD_E_INVAL with a sentence in err (*ret untouched). */
int nb_fwd_expose_parse(const char *s, struct nb_fwd_spec *ret, char *err, size_t err_len);
/* "udp:[BIND:]LPORT[=RPORT]" or "tcp:...": BIND as HOST above (default 127.0.0.1);
 * LPORT 1..65535; RPORT 0..65535 (default 0). Same returns. */
int nb_fwd_forward_parse(const char *s, struct nb_fwd_spec *ret, char *err, size_t err_len);
/* Append s to list[*n] (NB_FWD_MAX_SPECS at most; an exposed PORT or a
 * forward's LPORT only once per protocol). 0, or NB_FWD_E_INVAL with err. */
int nb_fwd_spec_add(struct nb_fwd_spec *list, size_t *n, const struct nb_fwd_spec *s, char *err,
		    size_t err_len);
/* The exposed service of protocol proto (NB_FWD_KIND_UDP/_TCP) that `port`
 * names: port 0 = the only one of that protocol. Its index, or
 * NB_FWD_E_NOENT (none, or 0 and several). */
int nb_fwd_expose_find(const struct nb_fwd_spec *list, size_t n, uint8_t proto, uint16_t port);

/* ---- Transport service names ---------------------------------------------- */

/* A forwarded TCP connection's "open" message (peer/xport.h) names the
 * listener's port it wants as "tcp:PORT", PORT decimal 0..65535 without
 * leading zeros; "tcp:0" = the listener's only exposed TCP service. */
#define NB_FWD_SERVICE_MAX 10 /* "tcp:65535" + NUL */

/* Write port's service name into out (cap >= NB_FWD_SERVICE_MAX). 0, or
 * NB_FWD_E_NOSPACE / NB_FWD_E_INVAL (out untouched). */
int nb_fwd_service_put(uint16_t port, char *out, size_t cap);
/* Parse a NUL-terminated service name. 0 and *ret_port, or
 * NB_FWD_E_SERVICE (*ret_port untouched). */
int nb_fwd_service_parse(const char *s, uint16_t *ret_port);

/* ---- Flow table ------------------------------------------------------------- */

/* The connector keys a flow by its local source (src); the listener by
 * (sess, port, flow). The shell keeps per-slot state (a socket) in an array
 * indexed like f[]. */
struct nb_fwd_flow {
	bool used;
	struct nb_addr src; /* connector */
	uint32_t sess;      /* listener: the session; connector: the forward socket */
	uint16_t port;      /* listener: the requested port */
	uint16_t flow;      /* the flow id (connector: chosen here) */
	uint64_t last;      /* last datagram either way */
};

struct nb_fwd_table {
	struct nb_fwd_flow f[NB_FWD_MAX_FLOWS];
	size_t n;             /* live flows */
	uint16_t next_flow;   /* connector: the next id to try */
	uint64_t refused;     /* creations refused: full, none idle */
	uint64_t expired;     /* flows expired */
};

void nb_fwd_table_init(struct nb_fwd_table *t);
/* Connector: the flow of local source src on forward socket `sock` (kept in
 * the entry's sess field; one table for all the connector's sockets, so a
 * flow id names one socket and source). Returns 0 (found; touched) or 1
 * (created: a fresh flow id, 1..65535, none in use) with *ret_slot; or, with
 * create false, NB_FWD_E_NOENT; or NB_FWD_E_FULL (counted). A full table
 * never replaces an entry: the shell first reaps the idle ones
 * (nb_fwd_table_expire), which it must close. */
int nb_fwd_table_src(struct nb_fwd_table *t, uint32_t sock, const struct nb_addr *src, bool create,
		     uint64_t now, size_t *ret_slot);
/* Connector: the flow with id `flow` (a reply). 0 and *ret_slot (touched),
 * or NB_FWD_E_NOENT. */
int nb_fwd_table_flow(struct nb_fwd_table *t, uint16_t flow, uint64_t now, size_t *ret_slot);
/* Listener: the flow (sess, port, flow). Returns as nb_fwd_table_src. */
int nb_fwd_table_key(struct nb_fwd_table *t, uint32_t sess, uint16_t port, uint16_t flow, bool create,
		     uint64_t now, size_t *ret_slot);
/* Touch a slot (a datagram went through it). */
void nb_fwd_table_touch(struct nb_fwd_table *t, size_t slot, uint64_t now);
/* Remove one flow idle for NB_FWD_IDLE_MS (now - last >= it): 1 and
 * *ret_slot (now free; counted), or 0 when none. Call until 0. */
int nb_fwd_table_expire(struct nb_fwd_table *t, uint64_t now, size_t *ret_slot);
/* Remove a slot (the session ended). */
void nb_fwd_table_remove(struct nb_fwd_table *t, size_t slot);
/* When the next flow expires; UINT64_MAX when empty. */
uint64_t nb_fwd_table_deadline(const struct nb_fwd_table *t);

#endif
