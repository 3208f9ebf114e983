/* peer/fwd_tcp_run.h - TCP port forwarding's libuv shell: local TCP
 * connections <-> streams of the TCP transport (peer/xport_run.h, one SCTP
 * association per connection) over the peers' data channels. Part of
 * peer/fwd_run.c, which owns it; docs/forwarding.md "TCP" is what the user
 * sees.
 *
 *   connect --forward tcp:[BIND:]LPORT[=RPORT]: one listening socket per
 *     option, bound at open. Each accepted connection opens a stream asking
 *     for service "tcp:RPORT" (peer/fwd.h) on the connected session's
 *     transport. Before the peer is connected (and at the limit) accepted
 *     connections are reset at once and counted.
 *   listen --expose tcp:HOST:PORT: per session, a transport that accepts
 *     (made on the session's first 0x02 payload). A stream naming an
 *     exposed port connects to HOST:PORT; otherwise it is refused.
 *
 *   local socket ──read──► nb_xport_write   (short write: read stops until WRITABLE)
 *   local socket ◄─write── NB_XPORT_EV_DATA (queue > NB_FWD_TCP_WQ_MAX: the stream pauses)
 *   local EOF ──► nb_xport_shutdown;  EV_EOF ──► uv_shutdown;  EV_CLOSED / both done ──► close
 *   local error ──► nb_xport_reset;   EV_RESET / _REFUSED ──► RST on the local socket
 *
 * Limits: NB_XPORT_MAX_ASSOCS streams per session; NB_FWD_TCP_IDLE_MS
 * without a byte either way resets a stream; a session's end resets all of
 * its streams and frees its transport. One loop thread.
 */
#ifndef NB_PEER_FWD_TCP_RUN_H
#define NB_PEER_FWD_TCP_RUN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "peer/fwd.h"

#define NB_FWD_TCP_MAX_SESS 16 /* = NB_FWD_RUN_MAX_SESS */

struct nb_fwd_tcp_counters {
	uint64_t opened;    /* streams that carried a connection (both local ends up) */
	uint64_t refused;   /* local connections refused: no peer yet, limit; peer streams not exposed */
	uint64_t reset;     /* streams ended by a reset (either side, a failed connect, idle) */
	uint64_t closed;    /* streams closed cleanly (both directions done) */
	uint64_t idle;      /* of the resets: idle for NB_FWD_TCP_IDLE_MS */
	uint64_t to_peer;   /* bytes from local sockets the transport accepted */
	uint64_t from_peer; /* bytes the transport delivered */
	uint64_t dropped;   /* 0x02 payloads with no transport to take them */
};

struct nb_fwd_tcp_cfg {
	uv_loop_t *loop;
	const struct nb_fwd_spec *expose; /* all of them; the TCP ones count */
	size_t n_expose;
	const struct nb_fwd_spec *forward;
	size_t n_forward;
	/* As nb_fwd_send_fn (peer/fwd_run.h): one payload (kind byte included). */
	void (*send)(void *arg, uint32_t sess, const uint8_t *payload, size_t n);
	void *arg;
};

struct nb_fwd_tcp;

/* Bind the --forward tcp sockets. 0 and *ret, or a libuv -errno with a
 * sentence in err (nothing left open). */
int nb_fwd_tcp_open(const struct nb_fwd_tcp_cfg *cfg, struct nb_fwd_tcp **ret, char *err, size_t err_len);
/* Connector: session sess is connected to `peer`: local connections are taken. */
void nb_fwd_tcp_up(struct nb_fwd_tcp *t, uint32_t sess, const char *peer);
/* Session sess is over: its streams are reset, its transport freed. */
void nb_fwd_tcp_down(struct nb_fwd_tcp *t, uint32_t sess);
/* A 0x02 body (one SCTP packet) from session sess. */
void nb_fwd_tcp_input(struct nb_fwd_tcp *t, uint32_t sess, const uint8_t *pkt, size_t len);
void nb_fwd_tcp_counters(const struct nb_fwd_tcp *t, struct nb_fwd_tcp_counters *ret);
/* Reset every stream, close every socket; the memory goes with the last
 * close callback. NULL is fine. */
void nb_fwd_tcp_close(struct nb_fwd_tcp *t);

#endif
