/* broker/status_run.h - the status port: a UDP socket on 127.0.0.1 that
 * answers the datagram "status" with one JSON object (broker/status.h),
 * and a one-second timer that samples the answer counters for
 * answers_per_s. Part of the libuv shell; only nb_server_run() uses it.
 *
 * Only loopback is bound, so only processes on the host can ask; nothing
 * else is read from the datagram. One reply per request, sent at once
 * (uv_udp_try_send); a request the kernel cannot take a reply for is not
 * answered. docs/operations.md "Status port". */
#ifndef NB_BROKER_STATUS_RUN_H
#define NB_BROKER_STATUS_RUN_H

#include <stdint.h>
#include <uv.h>

#include "broker/server.h"

struct nb_status_server;

/* Bind 127.0.0.1:port on loop and serve the status of srv (whose limits
 * come from cfg; both must outlive the status server). 0, or a libuv
 * -errno with a log line; nothing stays open on failure (run the loop once
 * to finish closing). */
int nb_status_server_open(uv_loop_t *loop, const struct nb_server *srv,
			  const struct nb_server_config *cfg, uint16_t port,
			  struct nb_status_server **ret);

/* Close the socket and the timer; the memory goes in the last close
 * callback. Accepts NULL. */
void nb_status_server_close(struct nb_status_server *st);

#endif
