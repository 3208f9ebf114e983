/* peer/portmap/extip.c - is a router's external address usable? Pure. */
#include "peer/portmap/extip.h"

#include <string.h>

/* IPv6 (a PCP firewall pinhole: the external address is the host's own):
 * only a global unicast address is reachable from the internet. */
static const char *useless6(const uint8_t *p)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	uint8_t any = 0;

	for (int i = 0; i < 15; i++)
		any |= p[i];
	if (any == 0 && (p[15] == 0 || p[15] == 1))
		return p[15] == 0 ? "unspecified: the router has no WAN address" : "a loopback address";
	if (memcmp(p, mapped, sizeof(mapped)) == 0)
		return "an IPv4-mapped address, not an IPv6 one";
	if (p[0] == 0xfe && (p[1] & 0xc0) == 0x80)
		return "a link-local address";
	if ((p[0] & 0xfe) == 0xfc)
		return "a unique local address (fc00::/7): not reachable from the internet";
	if (p[0] == 0xff)
		return "not a unicast address";
	return NULL;
}

const char *nb_extip_useless(const struct nb_addr *a)
{
	const uint8_t *p = a->ip;

	if (a->family == NB_AF_NONE)
		return "unspecified: the router has no WAN address";
	if (a->family == NB_AF_INET6)
		return useless6(p);
	if (a->family != NB_AF_INET)
		return "not an IP address";
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
