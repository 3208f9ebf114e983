/* peer/portmap.h - a port mapping for the agent's socket, end to end: the
 * UPnP client (peer/upnp_run.h) gets it from the router, the broker probes
 * it (nb_client_verify), and the result is one status a peer can register
 * and a report can print. A shell: it owns the UPnP run, borrows the
 * caller's broker client (whose datagrams the caller sends and receives),
 * and prints progress lines on stderr unless quiet.
 *
 *   router                 broker                    status
 *   ------                 ------                    ------
 *   discovering...                                   working
 *   no gateway / refused / useless IP                unavailable / refused / unusable
 *   mapped ext  ------>    verify ext (own IP only)  verifying
 *                          probe from IP1:alt-port   verified   (register shows the proof)
 *                          no probe within 1.75 s    unverified
 *
 * The status words are netcheck --json's upnp.status: "mapped" (verified),
 * "unverified", "unavailable", "refused", "unusable", "disabled". */
#ifndef NB_PEER_PORTMAP_H
#define NB_PEER_PORTMAP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "peer/client.h"
#include "peer/upnp.h"
#include "peer/upnp_run.h"

enum nb_portmap_state {
	NB_PM_DISABLED = 0, /* not asked for (--no-upnp) */
	NB_PM_WORKING,      /* the router is being asked */
	NB_PM_VERIFYING,    /* the router mapped it; waiting for the reflexive IP or the probe */
	NB_PM_VERIFIED,     /* the broker's probe came through: plans may use it */
	NB_PM_UNVERIFIED,   /* mapped, but the probe did not come through */
	NB_PM_UNAVAILABLE,  /* no gateway, or none that works */
	NB_PM_REFUSED,      /* the router said no */
	NB_PM_UNUSABLE,     /* mapped or mappable, but useless (double NAT, ...) */
};

struct nb_portmap;

/* Called when the state changes (and after renewals that change nothing the
 * broker needs: then `changed` is false). */
typedef void (*nb_portmap_fn)(struct nb_portmap *pm, bool changed, void *arg);

struct nb_portmap_opts {
	uint16_t internal_port;  /* the agent's socket */
	unsigned ssdp_flags;     /* NB_SSDP_ANY_HOST: tests only */
	bool quiet;              /* no progress lines */
	uint32_t check_s;        /* look for the mapping this often (0: nb_upnp_params' default) */
};

/* 0, or a libuv -errno (then nothing is open). `client` must outlive the
 * portmap; the caller feeds its VERIFIED/VERIFY_FAILED events to
 * nb_portmap_client_event() and sends what nb_client_poll() yields. */
int nb_portmap_open(struct nb_portmap **ret, uv_loop_t *loop, const struct nb_portmap_opts *o,
		    struct nb_client *client, nb_portmap_fn cb, void *arg);
/* The reflexive address the broker saw (netcheck's test I); NULL or family
 * NONE: the NAT tests ended without one (no mapping can be verified then).
 * Only the first call counts. */
void nb_portmap_set_reflexive(struct nb_portmap *pm, const struct nb_addr *reflexive, uint64_t now);
/* A broker client event; others are ignored. */
void nb_portmap_client_event(struct nb_portmap *pm, const struct nb_client_event *e, uint64_t now);
/* Has it come to a conclusion worth waiting for? True once the state is
 * final (verified, unverified, unavailable, refused, unusable), or when no
 * gateway has answered within `grace_ms` of the start: a connect does not
 * wait the whole discovery window on a network without a gateway. */
bool nb_portmap_settled(const struct nb_portmap *pm, uint64_t now, uint32_t grace_ms);
enum nb_portmap_state nb_portmap_state(const struct nb_portmap *pm);
/* The register's upnp part (status, external, proof). */
void nb_portmap_fill_register(const struct nb_portmap *pm, struct nb_ctrl_register *reg);
/* "mapped", "unverified", ... and the details, for reports. */
const char *nb_portmap_status_word(enum nb_portmap_state s);
const char *nb_portmap_reason(const struct nb_portmap *pm); /* "" when none */
/* Milliseconds from the start to the first conclusion (e.g. a verified
 * mapping); -1 while there is none. */
int64_t nb_portmap_ms(const struct nb_portmap *pm);
const struct nb_upnp_info *nb_portmap_info(const struct nb_portmap *pm);
/* Delete the mapping (bounded), close and free; `closed` runs afterwards.
 * Accepts NULL (then `closed` is not called). */
void nb_portmap_stop(struct nb_portmap *pm, void (*closed)(void *arg), void *arg);

#endif
