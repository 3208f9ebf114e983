/* broker/connectivity.h - the connectivity table: from two peers' NAT
 * behaviour, the plan for connecting them (who dials, who listens, who primes,
 * or why it cannot work). Pure: no I/O, no clock, no allocation.
 *
 * The rule (docs/connectivity.md). A sends to B's reflexive address; B replies
 * to the source it sees. That works without port prediction when
 *   1. B accepts A's first packet: B filters endpoint-independently, or B maps
 *      endpoint-independently and has already sent toward A (address-dependent
 *      filter: to A's IP; address-and-port-dependent: to A's exact endpoint,
 *      which needs A's mapping to be endpoint-independent); and
 *   2. A accepts B's reply: B maps endpoint-independently, or A's filter
 *      admits B's IP (endpoint-independent or address-dependent filtering).
 * Both directions are tried; a simultaneous punch does both.
 *
 * Birthday punching, when only one side maps endpoint-independently (the
 * "easy" side E) and the other's mapping depends on the destination (the
 * "hard" side H, address- or address-and-port-dependent): H sends checks
 * toward E's reflexive address from `sockets` sockets of its own (role
 * spray), which opens as many mappings on H's NAT, at random ports; E
 * sends checks to up to `probes` distinct random ports of H's IP (role
 * probe). A probe that lands on one of those ports passes H's filter (H
 * sent to E's one mapped endpoint from it), and H's answer passes E's
 * (E sent to that very port). With s open mappings among the P = 64512
 * ports 1024..65535, n probes find none with probability
 * C(P-s, n) / C(P, n); 256 sockets and 2048 probes: 0.03%.
 *
 * Where no direct path works, the plan is a relay (RFC 8656 TURN): one side
 * allocates (role relay), the other sends to its relayed address (role
 * dial). Relaying needs one side that can send UDP: two UDP-blocked hosts
 * would need two allocations relaying to each other, which the relay
 * refuses (its own addresses are forbidden peers), so that pair is none.
 */
#ifndef NB_BROKER_CONNECTIVITY_H
#define NB_BROKER_CONNECTIVITY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/addr.h"
#include "proto/ctrl.h"
#include "proto/nat.h"

/* What the broker knows of one peer's NAT. */
struct nb_peer_nat {
	enum nb_mapping mapping;     /* NB_MAPPING_NONE: no NAT */
	enum nb_filtering filtering;
	bool udp_blocked;
	bool upnp_verified;         /* a port mapping the broker has probed */
	struct nb_addr reflexive;   /* as the broker saw it */
};

#define NB_PLAN_REASON_MAX 160

struct nb_plan {
	enum nb_path path;          /* NB_PATH_RELAY: only through a relay; NB_PATH_NONE: no way */
	enum nb_role role_a, role_b; /* relay: the allocating side "relay", the other "dial" */
	/* Which side allocates on the relay: for a relay plan, and for the
	 * fallback when a direct plan has not worked by its deadline. The side
	 * that cannot send UDP, else the side whose mapping is not
	 * endpoint-independent, else A. Meaningless for NB_PATH_NONE. */
	bool relay_by_a;
	char reason[NB_PLAN_REASON_MAX]; /* in words, for people and the matrix */
};

/* Plan for A (the side asking to connect) and B. bday: the birthday budget
 * (sockets, probes; rate is not looked at), or NULL or !has for no birthday
 * plans (those pairs get a relay). Always fills *ret. */
void nb_connectivity_plan(const struct nb_peer_nat *a, const struct nb_peer_nat *b,
			  const struct nb_ctrl_birthday *bday, struct nb_plan *ret);

/* The probability that `probes` distinct random ports out of
 * NB_BDAY_PORTS hit at least one of `sockets` open ones. */
double nb_birthday_success(uint32_t sockets, uint32_t probes);


#endif
