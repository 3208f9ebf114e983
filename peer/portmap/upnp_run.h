/* peer/portmap/upnp_run.h - the libuv shell around peer/upnp: an SSDP socket
 * (multicast TTL 2), the HTTP client (peer/portmap/http_run.h), a timer. It carries out
 * what the state machine asks and reports its progress events. */
#ifndef NB_PEER_UPNP_RUN_H
#define NB_PEER_UPNP_RUN_H

#include <uv.h>

#include "peer/portmap/upnp.h"

struct nb_upnp_run;

/* Called for each progress event, with the state machine's info after it. */
typedef void (*nb_upnp_run_event_fn)(struct nb_upnp_run *r, const struct nb_upnp_event *ev,
				     const struct nb_upnp_info *info, void *arg);
typedef void (*nb_upnp_run_closed_fn)(void *arg);

/* Open the SSDP socket and the HTTP client and start discovery. 0, or a
 * libuv -errno (nothing is left open then); *ret set only on success. */
int nb_upnp_run_open(struct nb_upnp_run **ret, uv_loop_t *loop, const struct nb_upnp_params *p,
		     nb_upnp_run_event_fn cb, void *arg);
void nb_upnp_run_set_reflexive(struct nb_upnp_run *r, const struct nb_addr *reflexive);
void nb_upnp_run_check_now(struct nb_upnp_run *r);
const struct nb_upnp_info *nb_upnp_run_info(const struct nb_upnp_run *r);
/* Delete the mapping (bounded by the params' stop_ms), close everything and
 * free; `closed` runs from the loop afterwards. No event after this call. */
void nb_upnp_run_stop(struct nb_upnp_run *r, nb_upnp_run_closed_fn closed, void *arg);

#endif
