/* peer/fwd_run.h - port forwarding's libuv shell: the local UDP sockets of
 * --forward (connect) and --expose (listen), moving datagrams between them
 * and the peers' data channels, and the TCP ones (peer/fwd_tcp_run.h, kind
 * 0x02). The wire and the tables are peer/fwd.h's; docs/forwarding.md
 * describes what the user sees.
 *
 *   connect --forward udp:[BIND:]LPORT[=RPORT]: one socket bound to
 *     BIND:LPORT per option. Each local source (address:port) is a flow
 *     (a flow id); its datagrams go to the connected peer as kind 0x01
 *     (port RPORT), the peer's answers go back to that source. Before the
 *     peer is connected datagrams are dropped and counted (no queue).
 *   listen --expose udp:HOST:PORT: per peer and flow, one local UDP
 *     socket (ephemeral port, connected to HOST:PORT: only its replies
 *     come in) that sends the peer's datagrams to the service and its
 *     replies back with the same port and flow. At most NB_FWD_MAX_FLOWS
 *     flows per peer; idle ones close after NB_FWD_IDLE_MS; all of a
 *     peer's close when its session ends.
 *
 * Sessions are the agent's session indexes (0..NB_FWD_RUN_MAX_SESS-1).
 * One loop thread. Progress and errors go to stderr, once each.
 */
#ifndef NB_PEER_FWD_RUN_H
#define NB_PEER_FWD_RUN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "peer/fwd.h"
#include "peer/fwd_tcp_run.h"

#define NB_FWD_RUN_MAX_SESS 16

/* Send one data-channel payload (header included, 1..NB_FWD_MAX_PAYLOAD
 * bytes) to session sess, if it is connected. */
typedef void (*nb_fwd_send_fn)(void *arg, uint32_t sess, const uint8_t *payload, size_t n);

struct nb_fwd_run_cfg {
	uv_loop_t *loop;
	const struct nb_fwd_spec *expose; /* listen */
	size_t n_expose;
	const struct nb_fwd_spec *forward; /* connect */
	size_t n_forward;
	nb_fwd_send_fn send;
	void *arg;
};

/* The figures a test or a status line reads. */
struct nb_fwd_counters {
	uint64_t to_peer, from_peer;   /* datagrams forwarded each way */
	uint64_t too_big;              /* local datagrams over NB_FWD_MAX_DATAGRAM: dropped */
	uint64_t not_connected;        /* connector: no peer yet: dropped */
	uint64_t unexposed;            /* listener: a port not exposed: dropped */
	uint64_t no_flow;              /* a reply for no (more) flow: dropped */
	uint64_t full;                 /* a new flow refused: the table is full */
	uint64_t send_failed;          /* the local socket refused a datagram */
	uint64_t expired;              /* flows closed after NB_FWD_IDLE_MS */
	struct nb_fwd_tcp_counters tcp; /* TCP streams and bytes (peer/fwd_tcp_run.h) */
};

struct nb_fwd_run;

/* Bind the --forward sockets and print one "expose:"/"forward:" line per
 * option on stderr. 0 and *ret; or a libuv -errno with a sentence in err
 * (nothing left open). */
int nb_fwd_run_open(const struct nb_fwd_run_cfg *cfg, struct nb_fwd_run **ret, char *err, size_t err_len);
/* Connector: session sess is connected to `peer`: datagrams flow now. */
void nb_fwd_run_up(struct nb_fwd_run *r, uint32_t sess, const char *peer);
/* Session sess is over: its flows close (listener); nothing goes to it. */
void nb_fwd_run_down(struct nb_fwd_run *r, uint32_t sess);
/* A kind-0x01 or 0x02 payload from session sess (decoded by nb_fwd_decode). */
void nb_fwd_run_input(struct nb_fwd_run *r, uint32_t sess, const struct nb_fwd_hdr *h, const uint8_t *body,
		      size_t len);
void nb_fwd_run_counters(const struct nb_fwd_run *r, struct nb_fwd_counters *ret);
/* Close every socket and timer; the memory goes with the last close
 * callback. NULL is fine. Logs the counters at info. */
void nb_fwd_run_close(struct nb_fwd_run *r);

#endif
