/* peer/portmap/igd.h - the device description of an Internet Gateway Device
 * (rootDesc.xml): find the WAN connection service and its control URL.
 * Pure: bytes in, struct out; the XML goes through expat.
 *
 * What real descriptions do, and this accepts: namespace prefixes on element
 * names (<s:serviceType>), values wrapped in whitespace, text split across
 * expat callbacks, URLBase absent or with a trailing slash, controlURL
 * relative or absolute, the service several devices deep (IGD ->
 * WANDevice -> WANConnectionDevice), IGD v1 and v2, WANIPConnection and
 * WANPPPConnection.
 *
 * What it refuses (-EINVAL, with *why): more than NB_IGD_XML_MAX bytes,
 * nesting deeper than NB_IGD_DEPTH_MAX, more than NB_IGD_ELEMENTS_MAX
 * elements, any DOCTYPE or entity declaration (billion laughs), malformed
 * XML, HTML, a value of interest longer than its field (refused, not
 * truncated), and a description with no usable connection service. */
#ifndef NB_PEER_IGD_H
#define NB_PEER_IGD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peer/portmap/url.h"

#define NB_IGD_XML_MAX (64 * 1024)
#define NB_IGD_DEPTH_MAX 24
#define NB_IGD_ELEMENTS_MAX 4096

struct nb_igd {
	int device_version;     /* N of urn:schemas-upnp-org:device:InternetGatewayDevice:N; 0 if none */
	int service_version;    /* N of the chosen service's type */
	bool ppp;               /* WANPPPConnection, not WANIPConnection */
	char service_type[129]; /* e.g. "urn:schemas-upnp-org:service:WANIPConnection:2" */
	struct nb_url control;  /* controlURL resolved against URLBase, else LOCATION */
	char friendly_name[129];/* may be empty: for progress lines */
	char manufacturer[129];
	char model_name[129];
};

/* Parse the description fetched from `location`. The service chosen is the
 * first WANIPConnection in document order (highest version first), else the
 * first WANPPPConnection. 0, or -EINVAL with *why a static sentence; *ret
 * untouched on failure. */
int nb_igd_parse(const uint8_t *xml, size_t len, const struct nb_url *location, struct nb_igd *ret,
		 const char **why);

#endif
