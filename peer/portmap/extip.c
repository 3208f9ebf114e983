/* peer/portmap/extip.c - is a router's external address usable? Pure. */
#include "peer/portmap/extip.h"

const char *nb_extip_useless(const struct nb_addr *a)
{
	const uint8_t *p = a->ip;

	if (a->family == NB_AF_NONE)
		return "unspecified: the router has no WAN address";
	if (a->family != NB_AF_INET)
		return "not an IPv4 address";
	if (p[0] == 0)
		return "unspecified: the router has no WAN address";
	if (p[0] == 10 || (p[0] == 172 && (p[1] & 0xf0) == 16) || (p[0] == 192 && p[1] == 168))
		return "a private address (RFC 1918): double NAT";
	if (p[0] == 100 && (p[1] & 0xc0) == 64)
		return "a CGNAT address: double NAT";
	if (p[0] == 127)
		return "a loopback address";
	if (p[0] == 169 && p[1] == 254)
		return "a link-local address: the router has no WAN lease";
	if (p[0] >= 224)
		return "not a unicast address";
	return NULL;
}
