/* peer/tcpconn_run.h - a libuv TCP client connection that carries frames: STUN
 * messages, TURN ChannelData and natbroker datagrams (proto/tcpframe.h).
 * A thin shell: it connects, writes frames (queued, bounded, while it
 * connects or the kernel is full), splits what it reads into whole frames
 * and hands each to a callback. No policy.
 *
 * Used by natpeer for the broker when UDP gets no answer, and for TURN over
 * TCP (RFC 8656 §3.1).
 */
#ifndef NB_PEER_TCPCONN_RUN_H
#define NB_PEER_TCPCONN_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/addr.h"
#include "proto/tcpframe.h"

#define NB_TCPCONN_FRAME_MAX 2048        /* a longer frame closes the connection */
#define NB_TCPCONN_QUEUE_MAX (256 * 1024) /* bytes queued for writing at most */

struct nb_tcpconn;

/* One whole frame (kind, bytes, len); bytes are valid during the call. */
typedef void (*nb_tcpconn_frame_fn)(struct nb_tcpconn *t, enum nb_tcpf_kind kind,
				    const uint8_t *bytes, size_t len, void *arg);
/* The connection is up (status 0) or gone (a libuv error, UV_EOF). After a
 * "gone" call the connection sends and reads nothing more; it may be
 * closed and reopened. */
typedef void (*nb_tcpconn_state_fn)(struct nb_tcpconn *t, int status, void *arg);

struct nb_tcpconn {
	uv_tcp_t h; /* first */
	uv_connect_t creq;
	uv_loop_t *loop;
	struct nb_addr peer;
	nb_tcpconn_frame_fn frame_cb;
	nb_tcpconn_state_fn state_cb;
	void *arg;
	bool open;      /* the handle is initialised (close it) */
	bool connected;
	bool dead;      /* failed or ended: nothing more */
	bool closing;
	size_t queued;  /* bytes in pending writes */
	size_t have;
	uint8_t rbuf[NB_TCPCONN_FRAME_MAX];
	/* Frames written before the connection is up. */
	uint8_t pre[8192];
	size_t pre_len;
	uint64_t dropped; /* frames not sent: queue full or dead */
};

/* Start connecting to `to`. 0 or a libuv error (nothing left open). */
int nb_tcpconn_open(struct nb_tcpconn *t, uv_loop_t *loop, const struct nb_addr *to,
		    nb_tcpconn_frame_fn frame_cb, nb_tcpconn_state_fn state_cb, void *arg);

/* Write one frame as it is (a STUN message or ChannelData, padded). 0, or
 * -ENOBUFS (queue full: dropped) / -ENOTCONN (dead). */
int nb_tcpconn_send(struct nb_tcpconn *t, const uint8_t *frame, size_t len);

/* Write a natbroker datagram behind its 0xDF header. */
int nb_tcpconn_send_dgram(struct nb_tcpconn *t, const uint8_t *dgram, size_t len);

/* Close; the memory must stay valid until the loop has run the close (one
 * more uv_run iteration). Safe to call twice. */
void nb_tcpconn_close(struct nb_tcpconn *t);

#endif
