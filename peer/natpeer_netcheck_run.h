/* peer/natpeer_netcheck_run.h - libnatpeer's netcheck and map (natpeer_netcheck,
 * natpeer_map): the NAT tests of peer/netcheck against one broker or two (one
 * per family), the port mapping of peer/portmap, and the broker's probe of
 * it, on the application's loop. Private to the library: natpeer_run.c
 * drives it; what it finds goes to hooks, never to stdout or stderr.
 *
 *   natpeer_run.c                 this                        broker / router
 *    nb_npnc_start() ----------> NAT tests (2 sockets/family) <--> broker
 *                                port mapping  <--------------> router
 *    <--- report / mapped        probe of the mapping <-------- broker
 *    nb_npnc_stop() ----------> delete the mapping, close
 *    <--- done(status)           (every handle closed, memory freed)
 */
#ifndef NB_PEER_NATPEER_NETCHECK_RUN_H
#define NB_PEER_NATPEER_NETCHECK_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "natpeer.h"
#include "common/addr.h"
#include "peer/localip_run.h"

struct nb_npnc_opts {
	struct nb_addr server; /* numeric address and port */
	/* netcheck: a second server, of the other address family: both
	 * families are tested at once, each with its own two sockets; the port
	 * mapping and the broker's probe go with the IPv4 one. */
	bool has_server2;
	struct nb_addr server2;
	uint16_t port;         /* local port of the agent socket; 0 = random */
	uint32_t timeout_ms;   /* hard cap on the whole run (map: to the mapping); 0: 10 s */
	bool upnp;             /* also ask the router for a mapping, and have the broker probe it */
	unsigned upnp_flags;   /* NB_SSDP_ANY_HOST: tests only */
	unsigned portmap_protocols; /* NB_PM_*; 0: all */
	/* The broker's probe of a mapping is asked for over the sealed channel
	 * (peer/blink.h): our key pair, and the broker's key when pinned
	 * (known_path) or given. Without an identity there is no probe. */
	bool has_identity;
	uint8_t priv[32], pub[32];
	bool has_broker_key;
	uint8_t broker_key[32];
	char known_path[4096];
	/* map: map `port` (UDP or TCP) on the router, have the broker verify
	 * it, report it, keep it until nb_npnc_stop(), delete it. The NAT tests
	 * run too, for the reflexive address; no report. */
	struct {
		bool on;
		bool tcp;
		uint16_t port;      /* the local port to map (required) */
		uint16_t external;  /* suggested external port; 0: the same */
		uint32_t lease_s;   /* 0: the protocol's default */
		uint32_t check_s;   /* 0: 60 */
	} map;
};

/* Any may be NULL but done. Pointers are valid during the call only. */
struct nb_npnc_hooks {
	void *arg;
	void (*line)(void *arg, int level, const char *line); /* NATPEER_LOG_INFO: progress */
	void (*report)(void *arg, const natpeer_netcheck_report *rep);
	void (*mapped)(void *arg, const natpeer_map_info *info);
	void (*map_failed)(void *arg, const char *status, const char *reason);
	/* The end: 0, or NATPEER_E_SYSTEM (no verdict / could not run),
	 * NATPEER_E_TIMEOUT, NATPEER_E_PORTMAP (map: no mapping). The run is
	 * freed before the call. */
	void (*done)(void *arg, int status);
};

struct nb_npnc;

/* 0 with *ret (then `done` comes, from the loop), or a NATPEER_E_* code
 * with a line and nothing started. */
int nb_npnc_start(uv_loop_t *loop, const struct nb_npnc_opts *o, const struct nb_npnc_hooks *h,
		  struct nb_npnc **ret);
/* Stop: no report; map: the mapping is deleted (bounded). `done` follows. */
void nb_npnc_stop(struct nb_npnc *r);

#endif
