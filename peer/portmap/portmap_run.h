/* peer/portmap/portmap_run.h - a port mapping on the home router, end to
 * end: PCP, NAT-PMP (peer/portmap/pmp_run.h) and UPnP IGD
 * (peer/portmap/upnp_run.h) are asked at once; the best that answers is
 * kept (peer/portmap/pick.h: PCP > NAT-PMP > UPnP) and the others are
 * stopped (a mapping they made is deleted). The broker then probes the
 * mapping through the caller's `verify` hook, and the result is one status
 * a peer can register and a report can print. A shell: it owns the runs and
 * prints progress lines on stderr unless quiet.
 *
 *   router                 broker                    status
 *   ------                 ------                    ------
 *   discovering...                                   working
 *   no gateway / refused / useless IP                unavailable / refused / unusable
 *   mapped ext  ------>    verify ext (own IP only)  verifying
 *                          probe from IP1:alt-port   verified   (register shows the proof)
 *                          no probe within 1.75 s    unverified
 *
 * The status words are netcheck --json's portmap.status: "mapped"
 * (verified), "unverified", "unavailable", "refused", "unusable",
 * "disabled". */
#ifndef NB_PEER_PORTMAP_RUN_H
#define NB_PEER_PORTMAP_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "proto/ctrl.h"
#include "peer/portmap/pmp.h"
#include "peer/portmap/upnp.h"

enum nb_portmap_state {
	NB_PM_DISABLED = 0, /* not asked for (--no-portmap) */
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

/* Which protocols to ask (nb_portmap_opts.protocols). */
#define NB_PM_PCP 1u
#define NB_PM_NATPMP 2u
#define NB_PM_UPNP 4u
#define NB_PM_ALL (NB_PM_PCP | NB_PM_NATPMP | NB_PM_UPNP)

/* Ask the broker to probe `external` (UDP: the broker's `verify`; TCP: its
 * TCP probe). 0: asked, the answer comes through
 * nb_portmap_verify_result(); -EBUSY: one is in flight (asked again when it
 * is answered); anything else: it cannot be asked (reason in `why`). */
typedef int (*nb_portmap_verify_fn)(void *arg, const struct nb_addr *external, uint64_t now, char *why,
				    size_t why_len);

struct nb_portmap_opts {
	uint16_t internal_port;  /* the port to map */
	bool tcp;                /* TCP instead of UDP */
	uint16_t external_port;  /* suggested; 0: the internal port */
	uint32_t lease_s;        /* 0: each protocol's default (PCP, NAT-PMP 7200 s; UPnP 3600 s) */
	unsigned protocols;      /* NB_PM_*; 0: all */
	unsigned ssdp_flags;     /* NB_SSDP_ANY_HOST: tests only */
	bool quiet;              /* no progress lines */
	/* Where progress lines go, one line each without a newline (NULL:
	 * nowhere). */
	void (*log)(void *arg, const char *line);
	void *log_arg;
	bool no_fallback;        /* natpeer map: no "; using hole punching" after a failure */
	uint32_t check_s;        /* look for the mapping this often (0: the protocols' default, 60 s) */
	struct nb_addr gateway;  /* NAT-PMP/PCP's gateway; family NONE: the default route */
	struct nb_addr client6;  /* INET6: map over IPv6 for this address of the host (a PCP firewall
				  * pinhole, suggested external = itself; the IPv6 default router is the
				  * PCP server; NAT-PMP and UPnP are skipped with a line); NONE: IPv4 */
	nb_portmap_verify_fn verify; /* required */
	void *verify_arg;
};

/* 0, or a libuv -errno (then nothing is open): neither UPnP nor
 * NAT-PMP/PCP could start. */
int nb_portmap_open(struct nb_portmap **ret, uv_loop_t *loop, const struct nb_portmap_opts *o, nb_portmap_fn cb,
		    void *arg);
/* The reflexive address the broker saw (netcheck's test I); NULL or family
 * NONE: the NAT tests ended without one (no mapping can be verified then).
 * Only the first call counts. */
void nb_portmap_set_reflexive(struct nb_portmap *pm, const struct nb_addr *reflexive, uint64_t now);
/* The broker's answer to the last verify: ok (with the proof for register,
 * "" for TCP), or not: `code` the broker's error code (0: no probe came
 * through), `reason` in words. Ignored when stale. */
void nb_portmap_verify_result(struct nb_portmap *pm, bool ok, const char *proof, int code, const char *reason,
			      uint64_t now);
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

/* What a report shows. */
struct nb_portmap_report {
	enum nb_portmap_state state;
	const char *protocol;     /* "pcp", "nat-pmp", "upnp"; "" before one is chosen */
	bool tcp;
	uint16_t internal_port;
	struct nb_addr external;  /* family NONE unless mapped */
	uint32_t lease_s;
	struct nb_addr gateway;   /* family NONE if none answered */
	const char *server;       /* UPnP's SERVER header, or "" */
	int64_t ms;               /* nb_portmap_ms() */
	const char *reason;       /* "" when none */
	uint32_t renewals, readds;
};
void nb_portmap_get_report(const struct nb_portmap *pm, struct nb_portmap_report *r);
/* Delete the mapping (bounded), close and free; `closed` runs afterwards.
 * Accepts NULL (then `closed` is not called). */
void nb_portmap_stop(struct nb_portmap *pm, void (*closed)(void *arg), void *arg);

#endif
