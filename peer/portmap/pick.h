/* peer/portmap/pick.h - which port-mapping protocol to keep when several are
 * asked at once: PCP > NAT-PMP (the pmp machine chooses between those two)
 * > UPnP. Pure.
 *
 *   pmp mapped                                    -> PMP
 *   pmp working, upnp mapped, pmp silent past
 *     the grace (portmap_run.c uses 0: a UPnP
 *     mapping made before pmp said a word wins)   -> UPNP
 *   pmp working                                   -> WAIT (wake at the grace)
 *   pmp failed or off, upnp mapped                -> UPNP
 *   pmp failed or off, upnp working               -> WAIT
 *   both failed or off                            -> NONE */
#ifndef NB_PORTMAP_PICK_H
#define NB_PORTMAP_PICK_H

#include <stdbool.h>
#include <stdint.h>

#include "peer/portmap/pmp.h"
#include "peer/portmap/upnp.h"

enum nb_pick { NB_PICK_WAIT = 0, NB_PICK_PMP, NB_PICK_UPNP, NB_PICK_NONE };

struct nb_pick_in {
	bool pmp_on, upnp_on;       /* was it asked at all */
	enum nb_pmp_status pmp;
	bool pmp_answered;          /* the gateway answered NAT-PMP or PCP */
	enum nb_upnp_status upnp;
	uint64_t started;           /* when both began */
	uint32_t grace_ms;          /* how long a silent pmp holds up a UPnP mapping */
};

/* The choice now; on WAIT, *wake (may be NULL) is when to ask again
 * without any event (UINT64_MAX: only on an event). */
enum nb_pick nb_portmap_pick(const struct nb_pick_in *in, uint64_t now, uint64_t *wake);

#endif
