/* peer/portmap/extip.h - is a router's external address any use to a peer
 * outside? Shared by every port-mapping protocol. Pure. */
#ifndef NB_PORTMAP_EXTIP_H
#define NB_PORTMAP_EXTIP_H

#include "common/addr.h"

/* NULL when `a` could be reached from the internet; else why not, in words
 * ("a private address (RFC 1918): double NAT", ...). IPv4, or IPv6 (a PCP
 * pinhole's address): unspecified, loopback, IPv4-mapped, link-local,
 * unique local (fc00::/7) and multicast are useless. */
const char *nb_extip_useless(const struct nb_addr *a);

#endif
