/* peer/portmap/pmp_run.h - the libuv shell around peer/portmap/pmp: one UDP
 * socket connected to the gateway's port 5351, a timer. It reads the default
 * gateway from /proc/net/route (peer/portmap/gateway.h) unless given one,
 * carries out what the state machine asks and reports its progress events. */
#ifndef NB_PORTMAP_PMP_RUN_H
#define NB_PORTMAP_PMP_RUN_H

#include <uv.h>

#include "peer/portmap/pmp.h"

struct nb_pmp_run;

typedef void (*nb_pmp_run_event_fn)(struct nb_pmp_run *r, const struct nb_pmp_event *ev,
				    const struct nb_pmp_info *info, void *arg);
typedef void (*nb_pmp_run_closed_fn)(void *arg);

/* Find the gateway (`gateway` NULL or family NONE: the default route), open
 * the socket, start probing. 0, or a libuv -errno (nothing is left open);
 * UV_ENOENT: no default route, UV_ENETUNREACH: the gateway cannot be
 * reached. `why` (may be NULL) gets the failure in words. */
/* client6 NULL (or not INET6): IPv4, the gateway `gateway` if INET, else the
 * default route's (/proc/net/route). client6 INET6: PCP over IPv6 for that
 * address of this host (the socket is bound to it): the gateway `gateway` if
 * INET6, else the IPv6 default route's next hop (/proc/net/ipv6_route; a
 * link-local one with its interface as scope). */
int nb_pmp_run_open(struct nb_pmp_run **ret, uv_loop_t *loop, const struct nb_pmp_params *p,
		    const struct nb_addr *gateway, const struct nb_addr *client6, nb_pmp_run_event_fn cb, void *arg,
		    char *why, size_t why_len);
void nb_pmp_run_set_reflexive(struct nb_pmp_run *r, const struct nb_addr *reflexive);
void nb_pmp_run_check_now(struct nb_pmp_run *r);
const struct nb_pmp_info *nb_pmp_run_info(const struct nb_pmp_run *r);
bool nb_pmp_run_answered(const struct nb_pmp_run *r);
/* Delete the mapping (bounded by stop_ms), close and free; `closed` runs
 * from the loop afterwards. No event after this call. */
void nb_pmp_run_stop(struct nb_pmp_run *r, nb_pmp_run_closed_fn closed, void *arg);

#endif
