/* peer/portmap/url.h - the http URLs a UPnP gateway hands out (LOCATION, URLBase,
 * controlURL): parse, resolve, format. Pure.
 *
 * Only what an IGD on the LAN needs and nothing a forged SSDP reply could
 * turn into a request elsewhere (SSRF): scheme http (case-insensitive), a
 * numeric IPv4 host, an optional port (default 80), a path. No user info, no
 * host names (they would need DNS, and cannot be compared with the
 * responder's address), no IPv6, no fragment (dropped), no control
 * characters or spaces anywhere. */
#ifndef NB_PEER_URL_H
#define NB_PEER_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/addr.h"

/* Longest URL (and path) accepted, in bytes, NUL excluded. Longer is refused,
 * not truncated (miniupnpc silently truncated values at 127 characters). */
#define NB_URL_MAX 255

struct nb_url {
	struct nb_addr addr;       /* IPv4 host and port */
	char path[NB_URL_MAX + 1]; /* starts with '/'; query kept; "/" when absent */
};

/* Parse an absolute http URL of `len` bytes (no NUL needed). 0, or -EINVAL;
 * *ret untouched on failure. */
int nb_url_parse(const char *s, size_t len, struct nb_url *ret);

/* Resolve a reference against `base` (RFC 3986 §5.2, the cases that occur:
 * an absolute http URL; an absolute path "/x"; a relative path "x" or "./x"
 * merged with base's directory; ".." segments removed, never above the
 * root). 0, or -EINVAL (bad reference, or longer than NB_URL_MAX). */
int nb_url_resolve(const struct nb_url *base, const char *ref, size_t len, struct nb_url *ret);

/* "http://192.168.6.1:5000/ctl/IPConn" into buf; the length, or -ENOSPC. */
int nb_url_format(const struct nb_url *u, char *buf, size_t cap);

/* May a gateway live at this address? False for unspecified (0.0.0.0/8),
 * loopback (127/8), link-local (169.254/16), multicast (224/4) and the
 * limited broadcast address: a forged LOCATION must not aim requests at
 * this host or at nowhere. */
bool nb_url_host_ok(const struct nb_addr *a);

#endif
