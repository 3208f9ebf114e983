/* peer/portmap/ssdp.h - SSDP discovery of an Internet Gateway Device (UPnP Device
 * Architecture 1.1 §1.3): build M-SEARCH, parse the unicast 200 OK replies.
 * Pure.
 *
 *   M-SEARCH * HTTP/1.1\r\n
 *   HOST: 239.255.255.250:1900\r\n
 *   MAN: "ssdp:discover"\r\n         <- quoted, or routers ignore it
 *   MX: 2\r\n
 *   ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n
 *   \r\n                             <- the empty line ends the message
 *
 * Routers differ in which ST they answer (miniupnpc tries IGD:1, WANIP:1,
 * WANPPP:1; syncthing IGD:2 then IGD:1), so a client sends all of
 * nb_ssdp_targets and takes the first good reply. */
#ifndef NB_PEER_SSDP_H
#define NB_PEER_SSDP_H

#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "peer/portmap/url.h"

#define NB_SSDP_GROUP "239.255.255.250"
#define NB_SSDP_PORT 1900
/* Multicast TTL for M-SEARCH (UDA 1.1: "SHOULD default to 2"). */
#define NB_SSDP_TTL 2
/* Largest reply looked at; a longer datagram is refused. */
#define NB_SSDP_REPLY_MAX 2048

/* IGD:2, IGD:1, WANIPConnection:2, WANIPConnection:1, WANPPPConnection:1 */
#define NB_SSDP_TARGET_COUNT 5
extern const char *const nb_ssdp_targets[NB_SSDP_TARGET_COUNT];

/* The M-SEARCH for `st` with MX `mx` (1..5) into buf. The length, or -ENOSPC
 * / -EINVAL (st empty, longer than 128 bytes or with CR/LF; mx out of range). */
int nb_ssdp_build_msearch(const char *st, unsigned mx, char *buf, size_t cap);

struct nb_ssdp_reply {
	struct nb_url location; /* validated; see nb_ssdp_parse_reply */
	char st[129];           /* the ST header, as sent */
	char usn[257];          /* USN, may be empty */
	char server[129];       /* SERVER, may be empty: for progress lines */
};

/* Test-only: accept a LOCATION host other than the responder's address (the
 * lab's fake IGD answers SSDP from one namespace for HTTP in another). */
#define NB_SSDP_ANY_HOST 0x1

/* Parse one datagram received from `from`. Accepted only when:
 *   - the status line is "HTTP/1.1 200" (NOTIFY and M-SEARCH are ignored);
 *   - headers are matched case-insensitively, at line starts only, with or
 *     without a space after the colon; a header line longer than the datagram
 *     allows, a bare CR or a NUL refuses the whole reply;
 *   - ST names an InternetGatewayDevice (any version), WANIPConnection or
 *     WANPPPConnection URN, or is upnp:rootdevice;
 *   - LOCATION parses with nb_url_parse, its host passes nb_url_host_ok and,
 *     unless NB_SSDP_ANY_HOST, equals from's IP (UDA 2.0: "SHOULD" match).
 * 0, or -EINVAL with *why set to a static sentence; *ret untouched on failure. */
int nb_ssdp_parse_reply(const uint8_t *buf, size_t len, const struct nb_addr *from, unsigned flags,
			struct nb_ssdp_reply *ret, const char **why);

#endif
