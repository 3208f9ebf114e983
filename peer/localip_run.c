/* peer/localip_run.c - the local IP the kernel would send from toward an address (a routing-table lookup). */
#include "peer/localip_run.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

/* The local IP the kernel picks toward `server`: a connected UDP socket
 * sends nothing and only asks the routing table. */
#ifndef IPV6_PREFER_SRC_PUBLIC
#define IPV6_PREFER_SRC_PUBLIC 0x0002 /* RFC 5014 §5: linux/in6.h has it, glibc's headers not */
#endif

int nb_local_ip_toward(const struct nb_addr *server, struct nb_addr *ret)
{
	return nb_local_ip_toward_pref(server, false, ret);
}

int nb_local_ip_toward_pref(const struct nb_addr *server, bool prefer_public, struct nb_addr *ret)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int salen = nb_addr_to_sockaddr(server, &ss);
	int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int rc = -errno;

	if (fd < 0)
		return rc;
#if defined(IPV6_ADDR_PREFERENCES)
	if (prefer_public && server->family == NB_AF_INET6) {
		int v = IPV6_PREFER_SRC_PUBLIC;
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_ADDR_PREFERENCES, &v, sizeof(v)) != 0)
			nb_log_info("netcheck", "IPv6: cannot prefer a public source address: %s", strerror(errno));
	}
#endif
	if (connect(fd, (struct sockaddr *)&ss, (socklen_t)salen) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	close(fd);
	return nb_addr_from_sockaddr((struct sockaddr *)&ss, ret);
}
