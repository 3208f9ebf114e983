/* peer/agent_run.h - the peer agent's libuv shell: one UDP socket shared by the
 * NAT check, the broker client, the punch machines and the data channel;
 * stdin/stdout as a datagram pipe; signals. It only moves bytes and time
 * between the world and the pure cores (netcheck, client, punch, datachan).
 *
 *   listen   netcheck -> register -> keep alive, accept pushed plans; each
 *            attempt prints one event line; confirmed peers' datagrams go to
 *            stdout, stdin lines go to every confirmed peer. Runs until
 *            SIGINT/SIGTERM (exit 0), or until the broker refuses the
 *            registration (400/401: exit 1).
 *   connect  netcheck -> register -> connect -> punch; prints exactly one
 *            event line (connected or failed), then pipes stdin <-> the
 *            peer until EOF on stdin (with --forward: until SIGINT/SIGTERM
 *            or the peer is lost). Exit 0 when connected, 1 otherwise.
 *            --expose / --forward: UDP port forwarding (peer/fwd_run.h).
 *   peers    the broker's peer list (all pages): a table, or one JSON array.
 *
 * Events go to stdout (one line each, JSON with --json); progress and
 * errors to stderr.
 */
#ifndef NB_PEER_AGENT_RUN_H
#define NB_PEER_AGENT_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/addr.h"
#include "peer/fwd.h"
#include "proto/ctrl.h"

enum nb_agent_cmd {
	NB_AGENT_LISTEN = 0,
	NB_AGENT_CONNECT,
	NB_AGENT_PEERS,
	NB_AGENT_MATRIX,
};

struct nb_agent_opts {
	enum nb_agent_cmd cmd;
	struct nb_addr broker;               /* numeric, port set */
	bool has_broker2;                    /* listen, connect: the broker's address in the */
	struct nb_addr broker2;              /* other family (else learnt from `registered`) */
	uint16_t port;                       /* local UDP port; 0 = any */
	char id[NB_CTRL_ID_MAX + 1];         /* listen, connect */
	char token[NB_CTRL_TOKEN_MAX + 1];   /* "" = none */
	char peer[NB_CTRL_ID_MAX + 1];       /* connect */
	bool json;
	uint32_t timeout_ms; /* punch deadline; 0 = the plan's (the broker's default is 5 s) */
	bool upnp;           /* listen, connect: ask the router for a mapping (peer/portmap/portmap_run.h) */
	bool no_relay;       /* --no-relay: never relay (a relay plan fails) */
	bool one_family;     /* --one-family: do not register the broker's other IP family */
	bool ipv6_temporary; /* --ipv6-temporary: listen may use a temporary IPv6 source address */
	uint32_t bday_sockets; /* --birthday-sockets: at most this many spraying sockets; 0 = the plan's */
	uint32_t bday_rate;    /* --birthday-rate: at most this many probes per second; 0 = the plan's */
	unsigned upnp_flags; /* NB_SSDP_ANY_HOST: tests only */
	unsigned portmap_protocols; /* NB_PM_PCP | NB_PM_NATPMP | NB_PM_UPNP; 0: all */
	uint32_t upnp_check_s; /* look for the mapping this often; 0 = the default (60 s) */
	/* Identity (docs/security.md): our key pair, loaded by main from --key. */
	uint8_t priv[32], pub[32];
	char known_path[4096];     /* the known-peers file */
	bool has_broker_key;       /* --broker-key: demand this key of the broker */
	uint8_t broker_key[32];
	bool has_peer_key;         /* connect --peer-key: demand this key of the peer */
	uint8_t peer_key[32];
	size_t n_allow;            /* listen --allow: accept only these names or keys */
	char allow[64][NB_CTRL_PUBKEY_LEN + 1];
	char admin[NB_CTRL_TOKEN_MAX + 1]; /* peers, matrix: --admin-token */
	/* Port forwarding (docs/forwarding.md, peer/fwd_run.h). */
	struct nb_fwd_spec expose[NB_FWD_MAX_SPECS];  /* listen --expose */
	size_t n_expose;
	struct nb_fwd_spec forward[NB_FWD_MAX_SPECS]; /* connect --forward */
	size_t n_forward;
};

/* Runs the command to completion on its own loop. Returns the exit status. */
int nb_agent_run(const struct nb_agent_opts *o);

#endif
