/* peer/spray_run.h - the sockets of a birthday attempt's spraying side:
 * a bounded set of UDP sockets, opened for one attempt, each bound to
 * port 0 of one local address, each with a small receive buffer (one
 * datagram at a time: they carry checks, a handshake and the session's
 * data, not bulk). The punch machine numbers them 1..n (0 is the agent's
 * main socket); once one has won, nb_spray_keep() closes the others.
 *
 * Resource limits: nb_spray_open() needs n file descriptors beyond what
 * the process holds. It raises the soft RLIMIT_NOFILE toward the hard one
 * if it must, and fails with a message that says what to change when even
 * that is too low, or when a socket cannot be opened; then nothing is left
 * open. */
#ifndef NB_PEER_SPRAY_RUN_H
#define NB_PEER_SPRAY_RUN_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/addr.h"

#define NB_SPRAY_MAX 1024 /* sockets in one set (NB_CTRL_BDAY_SOCKETS_MAX) */
/* Descriptors left free for the rest of the process when checking the
 * limit: the agent's own sockets, files, and a second attempt's margin. */
#define NB_SPRAY_FD_HEADROOM 64

struct nb_spray;

/* A datagram on socket idx (1..n). */
typedef void (*nb_spray_recv_fn)(struct nb_spray *sp, uint32_t idx, const uint8_t *data, size_t len,
				 const struct nb_addr *from, void *arg);

/* Open n (1..NB_SPRAY_MAX) sockets on `local` (its port is ignored). 0 and
 * *ret, or a negative errno with why[] said (e.g. -EMFILE: "birthday needs
 * 256 sockets, but the open-file limit is 128 (hard limit 128): raise it,
 * e.g. ulimit -n 2048, or lower --birthday-sockets"). */
int nb_spray_open(uv_loop_t *loop, const struct nb_addr *local, uint32_t n, nb_spray_recv_fn cb,
		  void *arg, struct nb_spray **ret, char *why, size_t why_len);

/* Send from socket idx; 0, or a libuv -errno (a full socket buffer drops
 * the datagram: the punch machine retransmits). */
int nb_spray_send(struct nb_spray *sp, uint32_t idx, const uint8_t *data, size_t len,
		  const struct nb_addr *to);

/* Keep socket idx, close every other one. */
void nb_spray_keep(struct nb_spray *sp, uint32_t idx);

/* Sockets open now. */
uint32_t nb_spray_open_count(const struct nb_spray *sp);

/* Close all; the set frees itself once libuv has closed them. sp may be
 * NULL. No callback runs after this. */
void nb_spray_close(struct nb_spray *sp);

#endif
