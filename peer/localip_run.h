/* peer/localip_run.h - the local IP the kernel would send from toward an
 * address: a UDP socket connected to it sends nothing and only asks the
 * routing table. */
#ifndef NB_PEER_LOCALIP_RUN_H
#define NB_PEER_LOCALIP_RUN_H

#include <stdbool.h>

#include "common/addr.h"

/* The local IP (port 0) the kernel would send from toward `server` (a
 * routing-table lookup; nothing is sent). 0, or a negative errno. */
int nb_local_ip_toward(const struct nb_addr *server, struct nb_addr *ret);
/* The same; prefer_public: on IPv6, a public (stable) source address over a
 * temporary (RFC 4941 privacy) one, as RFC 5014's IPV6_PREFER_SRC_PUBLIC
 * asks (else the system's choice). */
int nb_local_ip_toward_pref(const struct nb_addr *server, bool prefer_public, struct nb_addr *ret);

#endif
