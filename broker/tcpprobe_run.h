/* broker/tcpprobe_run.h - the broker's probe of a peer's TCP port mapping
 * (docs/protocol.md "verify" with "tcp"): connect to it, write a one-line
 * greeting, give the far end a moment to close, report. A libuv shell;
 * bounded in number (NB_TCPPROBE_MAX at once) and in time.
 *
 *   connect ----------- NB_TCPPROBE_CONNECT_MS ---> failed ("timed out")
 *      | connected
 *   write greeting, read until EOF --- NB_TCPPROBE_LINGER_MS ---> ok
 *      | EOF (natpeer's listener answers and closes)
 *   ok */
#ifndef NB_BROKER_TCPPROBE_RUN_H
#define NB_BROKER_TCPPROBE_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "common/addr.h"

#define NB_TCPPROBE_MAX 32
#define NB_TCPPROBE_CONNECT_MS 1200
#define NB_TCPPROBE_LINGER_MS 300
#define NB_TCPPROBE_PAYLOAD_MAX 4096

struct nb_tcpprobes;

/* ok: the connection was made (and the greeting written); else `why`. */
typedef void (*nb_tcpprobe_fn)(void *ctx, const void *payload, size_t len, bool ok, const char *why);

int nb_tcpprobes_new(uv_loop_t *loop, struct nb_tcpprobes **ret);
/* Probe `to`. The payload (at most NB_TCPPROBE_PAYLOAD_MAX bytes) is
 * copied and handed back to fn, which runs once, from the loop. 0,
 * -ENOBUFS when NB_TCPPROBE_MAX are in flight, -EINVAL, or a libuv error
 * (fn does not run then). */
int nb_tcpprobe_start(struct nb_tcpprobes *s, const struct nb_addr *to, const char *greeting, const void *payload,
		      size_t len, nb_tcpprobe_fn fn, void *ctx);
unsigned nb_tcpprobes_active(const struct nb_tcpprobes *s);
/* Abort every probe (fn does not run), free everything; `done` runs from
 * the loop once all handles are closed. */
void nb_tcpprobes_close(struct nb_tcpprobes *s, void (*done)(void *arg), void *arg);

#endif
