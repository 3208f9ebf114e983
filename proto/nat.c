/* proto/nat.c - derived NAT names. */
#include "proto/nat.h"

enum nb_nat_type nb_nat_type_of(enum nb_mapping m, enum nb_filtering f, bool udp_blocked)
{
	if (udp_blocked)
		return NB_NAT_UDP_BLOCKED;
	if (m == NB_MAPPING_NONE)
		return f == NB_FILTERING_ENDPOINT_INDEPENDENT ? NB_NAT_OPEN : NB_NAT_FIREWALL;
	if (m == NB_MAPPING_ADDRESS_DEPENDENT || m == NB_MAPPING_ADDRESS_AND_PORT_DEPENDENT)
		return NB_NAT_SYMMETRIC;
	if (m != NB_MAPPING_ENDPOINT_INDEPENDENT)
		return NB_NAT_UNKNOWN;
	switch (f) {
	case NB_FILTERING_ENDPOINT_INDEPENDENT:
		return NB_NAT_FULL_CONE;
	case NB_FILTERING_ADDRESS_DEPENDENT:
		return NB_NAT_RESTRICTED_CONE;
	case NB_FILTERING_ADDRESS_AND_PORT_DEPENDENT:
		return NB_NAT_PORT_RESTRICTED_CONE;
	default:
		return NB_NAT_UNKNOWN;
	}
}
