/* broker/connectivity.c - the connectivity table as a predicate. */
#include "broker/connectivity.h"

#include <stdio.h>
#include <string.h>

/* Unknown behaviour is treated as the most restrictive: a plan is promised
 * only where it is known to work. No NAT maps endpoint-independently. */
static bool maps_ei(const struct nb_peer_nat *p)
{
	if (p->upnp_verified)
		return true; /* the router sends the mapped port's traffic out unchanged */
	return p->mapping == NB_MAPPING_NONE || p->mapping == NB_MAPPING_ENDPOINT_INDEPENDENT;
}

static enum nb_filtering filter_of(const struct nb_peer_nat *p)
{
	if (p->upnp_verified)
		return NB_FILTERING_ENDPOINT_INDEPENDENT; /* the mapped port admits anyone */
	return p->filtering == NB_FILTERING_UNKNOWN ? NB_FILTERING_ADDRESS_AND_PORT_DEPENDENT
						    : p->filtering;
}

/* Rule 2: the dialer `a` accepts the reply of `b`. */
static bool accepts_reply(const struct nb_peer_nat *a, const struct nb_peer_nat *b)
{
	return maps_ei(b) || filter_of(a) != NB_FILTERING_ADDRESS_AND_PORT_DEPENDENT;
}

/* Rule 1 without help: `b` admits an unsolicited first packet. */
static bool admits_unsolicited(const struct nb_peer_nat *b)
{
	return filter_of(b) == NB_FILTERING_ENDPOINT_INDEPENDENT;
}

/* Rule 1 with help: `b` can open its own filter toward dialer `a` first. */
static bool can_prime_for(const struct nb_peer_nat *b, const struct nb_peer_nat *a)
{
	if (!maps_ei(b))
		return false;
	switch (filter_of(b)) {
	case NB_FILTERING_ENDPOINT_INDEPENDENT:
	case NB_FILTERING_ADDRESS_DEPENDENT:
		return true; /* a packet to A's IP is enough */
	default:
		return maps_ei(a); /* needs A's exact endpoint to be predictable */
	}
}

/* A mapping that depends on the destination: each of many sockets gets
 * its own port toward one endpoint, but so would it under EIM; what makes
 * a side "hard" is that its reflexive port says nothing of the next one. */
static bool maps_dependent(const struct nb_peer_nat *p)
{
	return !p->upnp_verified && (p->mapping == NB_MAPPING_ADDRESS_DEPENDENT ||
				     p->mapping == NB_MAPPING_ADDRESS_AND_PORT_DEPENDENT);
}

double nb_birthday_success(uint32_t sockets, uint32_t probes)
{
	double miss = 1.0;

	if (sockets >= NB_BDAY_PORTS)
		return 1.0;
	if (probes > NB_BDAY_PORTS - sockets)
		return 1.0; /* more probes than closed ports */
	for (uint32_t i = 0; i < probes; i++)
		miss *= (double)(NB_BDAY_PORTS - sockets - i) / (double)(NB_BDAY_PORTS - i);
	return 1.0 - miss;
}

/* "99.97%", rounded down, so that it never says 100% of a chance. */
static void format_chance(double p, char *out, size_t size)
{
	unsigned hundredths = (unsigned)(p * 10000.0);

	if (hundredths >= 10000)
		hundredths = 9999;
	snprintf(out, size, "%u.%02u%%", hundredths / 100, hundredths % 100);
}

static void set(struct nb_plan *p, enum nb_path path, enum nb_role ra, enum nb_role rb,
		const char *reason)
{
	p->path = path;
	p->role_a = ra;
	p->role_b = rb;
	snprintf(p->reason, sizeof(p->reason), "%s", reason);
}

static const char *kind(const struct nb_peer_nat *p)
{
	const char *s = nb_nat_type_to_string(nb_nat_type_of(p->mapping, p->filtering, p->udp_blocked));
	return s ? s : "unknown";
}

void nb_connectivity_plan(const struct nb_peer_nat *a, const struct nb_peer_nat *b,
			  const struct nb_ctrl_birthday *bday, struct nb_plan *ret)
{
	char why[NB_PLAN_REASON_MAX];

	/* Who allocates: the side that cannot send UDP (over TCP); else the
	 * side whose mapping is not endpoint-independent (the one that needs a
	 * relay with many peers, and allocates in advance: docs/protocol.md
	 * "Relay"); else the asker. */
	if (a->udp_blocked != b->udp_blocked)
		ret->relay_by_a = a->udp_blocked;
	else if (maps_ei(a) != maps_ei(b))
		ret->relay_by_a = !maps_ei(a);
	else
		ret->relay_by_a = true;
	if (a->udp_blocked && b->udp_blocked) {
		set(ret, NB_PATH_NONE, NB_ROLE_NONE, NB_ROLE_NONE,
		    "both networks block UDP: a relay needs one side that can send UDP");
		return;
	}
	if (a->udp_blocked || b->udp_blocked) {
		snprintf(why, sizeof(why), "%s: %s allocates on the relay over TCP, %s sends to it",
			 a->udp_blocked ? "A's network blocks UDP" : "B's network blocks UDP",
			 a->udp_blocked ? "A" : "B", a->udp_blocked ? "B" : "A");
		if (a->udp_blocked)
			set(ret, NB_PATH_RELAY, NB_ROLE_RELAY, NB_ROLE_DIAL, why);
		else
			set(ret, NB_PATH_RELAY, NB_ROLE_DIAL, NB_ROLE_RELAY, why);
		return;
	}
	if (a->reflexive.family != NB_AF_NONE && nb_addr_ip_equal(&a->reflexive, &b->reflexive)) {
		set(ret, NB_PATH_LAN, NB_ROLE_PUNCH, NB_ROLE_PUNCH,
		    "same public IP: both send to each other's LAN addresses");
		return;
	}
	if (b->upnp_verified) {
		set(ret, NB_PATH_UPNP, NB_ROLE_DIAL, NB_ROLE_LISTEN,
		    "B listens on its verified port mapping; A dials it");
		return;
	}
	if (a->upnp_verified) {
		set(ret, NB_PATH_UPNP, NB_ROLE_LISTEN, NB_ROLE_DIAL,
		    "A listens on its verified port mapping; B dials it");
		return;
	}

	bool ab_open = admits_unsolicited(b) && accepts_reply(a, b);
	bool ba_open = admits_unsolicited(a) && accepts_reply(b, a);
	if (ab_open) {
		snprintf(why, sizeof(why), "B (%s) admits unsolicited packets: A dials, B listens", kind(b));
		set(ret, NB_PATH_DIRECT, NB_ROLE_DIAL, NB_ROLE_LISTEN, why);
		return;
	}
	if (ba_open) {
		snprintf(why, sizeof(why), "A (%s) admits unsolicited packets: B dials, A listens", kind(a));
		set(ret, NB_PATH_DIRECT, NB_ROLE_LISTEN, NB_ROLE_DIAL, why);
		return;
	}

	bool ab_primed = can_prime_for(b, a) && accepts_reply(a, b);
	bool ba_primed = can_prime_for(a, b) && accepts_reply(b, a);
	if (ab_primed && ba_primed) {
		set(ret, NB_PATH_DIRECT, NB_ROLE_PUNCH, NB_ROLE_PUNCH,
		    "both map endpoint-independently: simultaneous punch");
		return;
	}
	if (ab_primed) {
		snprintf(why, sizeof(why), "B (%s) primes its filter toward A's IP first, then A (%s) dials",
			 kind(b), kind(a));
		set(ret, NB_PATH_DIRECT, NB_ROLE_DIAL, NB_ROLE_PRIME, why);
		return;
	}
	if (ba_primed) {
		snprintf(why, sizeof(why), "A (%s) primes its filter toward B's IP first, then B (%s) dials",
			 kind(a), kind(b));
		set(ret, NB_PATH_DIRECT, NB_ROLE_PRIME, NB_ROLE_DIAL, why);
		return;
	}
	if (bday != NULL && bday->has && bday->sockets > 0 && bday->probes > 0 &&
	    ((maps_ei(a) && maps_dependent(b)) || (maps_ei(b) && maps_dependent(a)))) {
		bool a_hard = maps_dependent(a);
		char chance[16];
		format_chance(nb_birthday_success(bday->sockets, bday->probes), chance, sizeof(chance));
		snprintf(why, sizeof(why), "%s (%s) sprays from %u sockets, %s (%s) probes up to %u "
					   "ports of its IP: %s expected",
			 a_hard ? "A" : "B", kind(a_hard ? a : b), bday->sockets, a_hard ? "B" : "A",
			 kind(a_hard ? b : a), bday->probes, chance);
		if (a_hard)
			set(ret, NB_PATH_BIRTHDAY, NB_ROLE_SPRAY, NB_ROLE_PROBE, why);
		else
			set(ret, NB_PATH_BIRTHDAY, NB_ROLE_PROBE, NB_ROLE_SPRAY, why);
		return;
	}
	snprintf(why, sizeof(why), "%s vs %s: no direct path without port prediction; "
				   "%s allocates on the relay, %s sends to it",
		 kind(a), kind(b), ret->relay_by_a ? "A" : "B", ret->relay_by_a ? "B" : "A");
	if (ret->relay_by_a)
		set(ret, NB_PATH_RELAY, NB_ROLE_RELAY, NB_ROLE_DIAL, why);
	else
		set(ret, NB_PATH_RELAY, NB_ROLE_DIAL, NB_ROLE_RELAY, why);
}
