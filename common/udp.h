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
 * Batched send: nb_udp_queue() copies a datagram into the endpoint's
 * fixed queue (NB_UDP_TXQ slots of NB_UDP_TXQ_SLOT bytes, allocated once
 * at open) and nb_udp_flush() sends the whole queue with sendmmsg. The
 * endpoint flushes by itself when the queue is full and at the end of
 * every receive batch, right after the recv callback has seen the batch's
 * last datagram - so a responder that queues its answers from the recv
 * callback makes one sendmmsg per recvmmsg. Same drop rule as nb_udp_send:
 * what the kernel does not take at once is dropped and counted.
 * nb_udp_send() flushes the queue first, so datagrams keep their order.
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
/* Send queue: datagrams per sendmmsg, and the largest datagram it takes
 * (a larger one goes out through nb_udp_send). */
#define NB_UDP_TXQ 32
#define NB_UDP_TXQ_SLOT 1500

struct nb_udp_txq; /* private to udp.c */

struct nb_udp {
	uv_udp_t handle; /* first: the handle's data points back here */
	struct nb_addr local;
	nb_udp_recv_fn recv_cb;
	nb_udp_close_fn close_cb;
	/* Optional (set after open): called at the end of every receive
	 * batch, before the endpoint's own flush: for an owner that queues
	 * datagrams of its own elsewhere while it handles a batch. */
	void (*batch_cb)(struct nb_udp *u, void *arg);
	void *arg;
	uint8_t *rbuf; /* NB_UDP_BATCH * NB_UDP_SLOT bytes, owned */
	int rbuf_busy;
	struct nb_udp_txq *txq; /* owned */
	/* counters */
	uint64_t rx, tx, tx_dropped, rx_truncated;
	uint64_t tx_batches; /* sendmmsg calls that sent at least one datagram */
};

/* Bind to `local` (port 0 picks one; nb_udp.local gets the real one) and
 * start receiving. flags: UV_UDP_REUSEADDR, UV_UDP_IPV6ONLY, or 0. Returns 0
 * or a libuv -errno. The socket is bound before libuv gets it, so a failure
 * to bind (in use, not a local address, permission) leaves nothing behind
 * and `u` may be freed at once; on failure nothing is left open. */
int nb_udp_open(struct nb_udp *u, uv_loop_t *loop, const struct nb_addr *local, unsigned flags,
		nb_udp_recv_fn recv_cb, void *arg);
/* Send one datagram now; 0, or a libuv -errno (UV_EAGAIN counted as dropped). */
int nb_udp_send(struct nb_udp *u, const uint8_t *data, size_t len, const struct nb_addr *to);
/* Queue one datagram for the next flush; 0, or a libuv -errno (the
 * datagram was not queued, and if it was sent directly, as nb_udp_send). */
int nb_udp_queue(struct nb_udp *u, const uint8_t *data, size_t len, const struct nb_addr *to);
/* Send everything queued (sendmmsg); what the kernel refuses is dropped
 * and counted. No-op when the queue is empty. */
void nb_udp_flush(struct nb_udp *u);
/* Read, now and without blocking, what is already waiting in the socket
 * (at most `max` datagrams) and hand each to the recv callback, as the loop
 * would. For a timer that is about to decide "no answer": libuv runs due
 * timers before it polls for I/O, so without this a datagram that arrived
 * before the deadline could lose the race against it. Returns the number
 * of datagrams handed on. Not to be called from inside the recv callback. */
int nb_udp_drain(struct nb_udp *u, int max);
/* Stop and close (queued datagrams are flushed first). close_cb (may be
 * NULL) runs from the loop once closed. */
void nb_udp_close(struct nb_udp *u, nb_udp_close_fn close_cb);

#endif
