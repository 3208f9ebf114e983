/* peer/natpeer_config.h - libnatpeer's configuration object (natpeer_config_* in
 * natpeer.h), shared by the setters (natpeer_api.c) and the agent
 * (natpeer_run.c). Private to the library. */
#ifndef NB_PEER_NATPEER_CONFIG_H
#define NB_PEER_NATPEER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "natpeer.h"
#include "common/addr.h"
#include "proto/ctrl.h"

/* The configuration (natpeer_config_*); an instance keeps its own copy. */
struct natpeer_config {
	struct nb_addr broker;               /* numeric, port set; family NONE: not set */
	bool has_broker2;                    /* the broker's address in the other family */
	struct nb_addr broker2;              /* (else learnt from `registered`) */
	uint16_t port;                       /* local UDP port; 0 = any */
	char id[NB_CTRL_ID_MAX + 1];         /* listen, connect */
	char token[NB_CTRL_TOKEN_MAX + 1];   /* "" = none */
	char peer[NB_CTRL_ID_MAX + 1];       /* connect */
	uint32_t timeout_ms; /* punch deadline; 0 = the plan's (the broker's default is 5 s) */
	bool upnp;           /* ask the router for a mapping (peer/portmap/portmap_run.h) */
	bool no_relay;       /* never relay (a relay plan fails) */
	bool one_family;     /* do not register the broker's other IP family */
	bool ipv6_temporary; /* listen may use a temporary IPv6 source address */
	uint32_t bday_sockets; /* at most this many spraying sockets; 0 = the plan's */
	uint32_t bday_rate;    /* at most this many probes per second; 0 = the plan's */
	unsigned upnp_flags; /* NB_SSDP_ANY_HOST: tests only */
	unsigned portmap_protocols; /* NB_PM_PCP | NB_PM_NATPMP | NB_PM_UPNP; 0: all */
	uint32_t upnp_check_s; /* look for the mapping this often; 0 = the default (60 s) */
	bool has_key;
	uint8_t priv[32], pub[32];
	char known_path[4096];     /* the known-peers file; "" = none */
	bool has_broker_key;       /* demand this key of the broker */
	uint8_t broker_key[32];
	bool has_peer_key;         /* connect: demand this key of the peer */
	uint8_t peer_key[32];
	size_t n_allow;            /* listen: accept only these names or keys */
	char allow[NATPEER_MAX_ALLOW][NB_CTRL_PUBKEY_LEN + 1];
	char admin[NB_CTRL_TOKEN_MAX + 1]; /* peers, matrix: the admin token */
	int log_level;
	natpeer_callbacks cb;
	void *cb_arg;
};

#endif
