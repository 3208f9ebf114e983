/* peer/netcheck_run.h - the libuv shell around peer/netcheck: two UDP
 * sockets, a timer, and the report. */
#ifndef NB_PEER_NETCHECK_RUN_H
#define NB_PEER_NETCHECK_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/addr.h"
#include "peer/localip_run.h"

struct nb_netcheck_opts {
	struct nb_addr server; /* numeric address and port */
	/* netcheck: a second server, of the other address family: both
	 * families are tested at once, each with its own two sockets; the port
	 * mapping and the broker's probe go with the IPv4 one. */
	bool has_server2;
	struct nb_addr server2;
	uint16_t port;         /* local port of the agent socket; 0 = random */
	bool json;
	uint32_t timeout_ms;   /* hard cap on the whole run */
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
	/* natpeer map: map `port` (UDP or TCP) on the router, have the broker
	 * verify it, print it, keep it until SIGINT/SIGTERM, delete it. The NAT
	 * tests run too, for the reflexive address; no report is printed. */
	struct {
		bool on;
		bool tcp;
		uint16_t port;      /* the local port to map (required) */
		uint16_t external;  /* suggested external port; 0: the same */
		uint32_t lease_s;   /* 0: the protocol's default */
		uint32_t check_s;   /* 0: 60 */
	} map;
};

/* Runs to completion on its own loop; prints the report on stdout and
 * progress/errors on stderr. Returns the exit status: 0 when a verdict was
 * reached (even "UDP blocked"; with two servers, for at least one family:
 * a family without a route, a socket or a sent datagram is reported as
 * "no IPv4"/"no IPv6"), 1 on failure to run. With map.on: 0 when
 * the mapping was made and removed at the end, 1 when none was made. */
int nb_netcheck_run(const struct nb_netcheck_opts *o);

/* nb_local_ip_toward(), nb_local_ip_toward_pref(): peer/localip_run.h. */

#endif
