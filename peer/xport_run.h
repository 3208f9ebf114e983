/* peer/xport_run.h - the TCP transport shell: usrsctp (one association per
 * forwarded TCP connection, AF_CONN, one-to-one sockets) on one libuv loop.
 * docs/forwarding.md "TCP: the transport" is the design; peer/xport.h has
 * the stream-0 messages and the ID table.
 *
 *   caller                       struct nb_xport (one per peer session)
 *   nb_xport_input(0x02 body) ─► usrsctp_conninput(ID, ...)
 *   cbs.send(pkt <= 1370)     ◄─ conn_output(ID, ...)      (caller seals as kind 0x02)
 *   nb_xport_open/write/shutdown/reset/pause ─► usrsctp_*  cbs.event ◄─ uv_idle after upcalls
 *
 * usrsctp is one stack per process: the first nb_xport_new starts it
 * (usrsctp_init_nothreads: no timer or receive thread, one idle iterator
 * thread), the last nb_xport_free stops it. All xports of a process must
 * run on one loop thread. usrsctp sees only small integer IDs (the xport's
 * as sconn_addr, the connection's as the upcall argument), never pointers.
 * Upcalls only set flags; a uv_idle handle acts on them after usrsctp has
 * returned, so callbacks never re-enter usrsctp.
 */
#ifndef NB_PEER_XPORT_RUN_H
#define NB_PEER_XPORT_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "peer/xport.h"

#define NB_XPORT_MAX_PACKET 1370   /* every packet handed to cbs.send: 1371 - kind byte */
#define NB_XPORT_PATHMTU 1358      /* spp_pathmtu: chunk space = 1370 - 12 (common header) */
#define NB_XPORT_ACCEPT_PORT 5000  /* the acceptor listens here */
#define NB_XPORT_MAX_ASSOCS 64     /* associations per xport by default */
#define NB_XPORT_SOCKBUF (2 << 20) /* SO_SNDBUF = SO_RCVBUF per association */
#define NB_XPORT_TICK_MS 10        /* usrsctp_handle_timers period */

struct nb_xport;
struct nb_xconn;

enum nb_xport_event {
	NB_XPORT_EV_OPEN = 1, /* writes are allowed: the opener got "ok", the acceptor sent it */
	NB_XPORT_EV_DATA,     /* bytes (data, len) in order */
	NB_XPORT_EV_EOF,      /* the peer's "fin": no more bytes */
	NB_XPORT_EV_WRITABLE, /* after a short write: there is send space again */
	/* Final events: the connection is freed when the callback returns. */
	NB_XPORT_EV_REFUSED, /* opener: the acceptor said "refused" */
	NB_XPORT_EV_CLOSED,  /* both "fin"s sent, all acknowledged, SHUTDOWN complete */
	NB_XPORT_EV_RESET,   /* ABORT from the peer, association lost, or protocol error */
};

struct nb_xport_cbs {
	/* One SCTP packet (<= NB_XPORT_MAX_PACKET) for the peer: seal it as
	 * payload kind 0x02. Called synchronously from inside usrsctp calls:
	 * must not call back into nb_xport_*. */
	void (*send)(void *arg, const uint8_t *pkt, size_t len);
	/* Acceptor side: a connection asks for service (NUL-terminated, checked
	 * by nb_xport_msg_decode). Return true to answer "ok" (the connection is
	 * then the caller's, see nb_xconn_set_user), false for "refused". NULL:
	 * refuse everything. */
	bool (*accept)(void *arg, struct nb_xconn *c, const char *service);
	/* Connection events; data/len only for NB_XPORT_EV_DATA. The caller may
	 * call nb_xport_write/shutdown/reset/pause from here. */
	void (*event)(void *arg, struct nb_xconn *c, enum nb_xport_event ev, const uint8_t *data,
		      size_t len);
	void *arg;
};

struct nb_xport_config {
	bool listen;          /* accept connections on NB_XPORT_ACCEPT_PORT */
	unsigned max_assocs;  /* 0: NB_XPORT_MAX_ASSOCS */
};

struct nb_xport_stats {
	uint64_t pkts_in, pkts_out, bytes_in, bytes_out;
	uint64_t pkts_too_big;     /* conn_output above NB_XPORT_MAX_PACKET (dropped) */
	uint64_t max_pkt_out;      /* largest packet handed to cbs.send */
	uint64_t assocs_refused;   /* over max_assocs: opener got an error / acceptor aborted */
	uint64_t opens_refused;    /* "refused" answers sent */
	uint64_t protocol_errors;  /* bad stream-0 messages (association aborted) */
	uint64_t pkts_in_dropped;  /* nb_xport_input: empty or above NB_XPORT_MAX_PACKET */
	unsigned assocs;           /* associations now */
	bool ticking;              /* the usrsctp_handle_timers timer runs (only with assocs) */
};

/* Create a transport for one peer session (starts usrsctp for the first
 * one). 0 and *ret_x, or a negative enum nb_xport_err / libuv error. */
int nb_xport_new(uv_loop_t *loop, const struct nb_xport_config *cfg, const struct nb_xport_cbs *cbs,
		 struct nb_xport **ret_x);
/* Abort every association (no events), close the handles; the memory goes
 * in their close callback, and the usrsctp stack with the last xport
 * (usrsctp_finish; retried on later releases while it still has sockets).
 * NULL is fine. Not from inside cbs.event. */
void nb_xport_free(struct nb_xport *x);
/* A received 0x02 payload (without its kind byte). */
void nb_xport_input(struct nb_xport *x, const uint8_t *pkt, size_t len);

/* Connect a new association and ask for service. NB_XPORT_EV_OPEN,
 * _REFUSED or _RESET follows. 0 and *ret_c, or NB_XPORT_E_LIMIT (counted),
 * NB_XPORT_E_SERVICE, NB_XPORT_E_SCTP, ... (no callback then). */
int nb_xport_open(struct nb_xport *x, const char *service, void *user, struct nb_xconn **ret_c);
/* Queue bytes (only once open, before nb_xport_shutdown). Returns how many
 * were accepted (0: no send space now, NB_XPORT_EV_WRITABLE follows), or a
 * negative enum nb_xport_err. */
ssize_t nb_xport_write(struct nb_xconn *c, const uint8_t *buf, size_t len);
/* Half-close: send "fin" after the data. 0, NB_XPORT_E_STATE, or 0 with the
 * fin pending until send space opens. */
int nb_xport_shutdown(struct nb_xconn *c);
/* ABORT (SO_LINGER 0): the connection is gone at once, no more events for
 * it; its memory goes on the next idle run. */
void nb_xport_reset(struct nb_xconn *c);
/* Stop (true) / resume (false) reading: while paused usrsctp_recvv is not
 * called, the receive window fills and the peer's writes stop. */
void nb_xport_pause(struct nb_xconn *c, bool paused);

void *nb_xconn_user(const struct nb_xconn *c);
void nb_xconn_set_user(struct nb_xconn *c, void *user);
/* Bytes accepted by nb_xport_write so far. */
uint64_t nb_xconn_bytes_written(const struct nb_xconn *c);

void nb_xport_get_stats(const struct nb_xport *x, struct nb_xport_stats *ret);
/* Process-wide: xports alive, whether the usrsctp stack is up, and how many
 * usrsctp_finish calls failed (sockets remained). For tests. */
void nb_xport_stack_state(int *ret_users, bool *ret_up, unsigned *ret_finish_failures);

#endif
