/* peer/portmap/pick.c - which port-mapping protocol to keep. Pure; see pick.h. */
#include "peer/portmap/pick.h"

static bool pmp_busy(enum nb_pmp_status s)
{
	return s == NB_PMP_IDLE || s == NB_PMP_WORKING;
}

static bool upnp_busy(enum nb_upnp_status s)
{
	return s == NB_UPNP_IDLE || s == NB_UPNP_WORKING;
}

enum nb_pick nb_portmap_pick(const struct nb_pick_in *in, uint64_t now, uint64_t *wake)
{
	bool upnp_mapped = in->upnp_on && in->upnp == NB_UPNP_MAPPED;
	uint64_t w = UINT64_MAX;
	enum nb_pick p;

	if (in->pmp_on && in->pmp == NB_PMP_MAPPED) {
		p = NB_PICK_PMP;
	} else if (in->pmp_on && pmp_busy(in->pmp)) {
		uint64_t grace = in->started + in->grace_ms;

		if (upnp_mapped && !in->pmp_answered && now >= grace) {
			p = NB_PICK_UPNP;
		} else {
			p = NB_PICK_WAIT;
			if (upnp_mapped && !in->pmp_answered)
				w = grace;
		}
	} else if (upnp_mapped) {
		p = NB_PICK_UPNP;
	} else if (in->upnp_on && upnp_busy(in->upnp)) {
		p = NB_PICK_WAIT;
	} else {
		p = NB_PICK_NONE;
	}
	if (wake != NULL)
		*wake = w;
	return p;
}
