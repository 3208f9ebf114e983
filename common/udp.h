/* common/udp.h - a libuv UDP endpoint: one bound socket, batch receive with
 * recvmmsg (libuv's UV_UDP_RECVMMSG), and send without allocation.
 *
 * Receive: the callback gets each datagram as (bytes, len, source) and must
 * be done with the bytes when it returns; they live in the endpoint's own
 * buffer, which the next batch overwrites. Truncated datagrams
 * (UV_UDP_PARTIAL) and libuv's "buffer returned" calls are never passed on.
 *
 * Send: nb_udp_send() tries a direct sendmsg (uv_udp_try_send). If the
 * socket buffer is full the datagram is dropped and counted: a stateless
 * responder must not queue unboundedly.
 *
 * Lifetime: nb_udp_close() closes the handle; the endpoint memory must stay
 * valid until close_cb runs (libuv handle rules). */
#ifndef NB_COMMON_UDP_H
#define NB_COMMON_UDP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/addr.h"

struct nb_udp;

typedef void (*nb_udp_recv_fn)(struct nb_udp *u, const uint8_t *data, size_t len,
			       const struct nb_addr *from, void *arg);
typedef void (*nb_udp_close_fn)(struct nb_udp *u);

/* Datagrams per recvmmsg batch; libuv caps a batch at 20 (UV__MMSG_MAXWIDTH). */
#define NB_UDP_BATCH 20
/* libuv carves the receive buffer into 64 KiB slots (UV__UDP_DGRAM_MAXSIZE). */
#define NB_UDP_SLOT (64 * 1024)

struct nb_udp {
	uv_udp_t handle; /* first: the handle's data points back here */
	struct nb_addr local;
	nb_udp_recv_fn recv_cb;
	nb_udp_close_fn close_cb;
	void *arg;
	uint8_t *rbuf; /* NB_UDP_BATCH * NB_UDP_SLOT bytes, owned */
	int rbuf_busy;
	/* counters */
	uint64_t rx, tx, tx_dropped, rx_truncated;
};

/* Bind to `local` (port 0 picks one; nb_udp.local gets the real one) and
 * start receiving. flags: UV_UDP_REUSEADDR or 0. Returns 0 or a libuv -errno;
 * on failure nothing is left open. */
int nb_udp_open(struct nb_udp *u, uv_loop_t *loop, const struct nb_addr *local, unsigned flags,
		nb_udp_recv_fn recv_cb, void *arg);
/* Send one datagram now; 0, or a libuv -errno (UV_EAGAIN counted as dropped). */
int nb_udp_send(struct nb_udp *u, const uint8_t *data, size_t len, const struct nb_addr *to);
/* Stop and close. close_cb (may be NULL) runs from the loop once closed. */
void nb_udp_close(struct nb_udp *u, nb_udp_close_fn close_cb);

#endif
