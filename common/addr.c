/* common/addr.c - IPv4/IPv6 transport addresses. */
#include "common/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static int parse_port(const char *s, uint16_t *ret)
{
	unsigned v = 0;

	if (*s == '\0')
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(*s - '0');
		if (v > 65535)
			return -EINVAL;
	}
	*ret = (uint16_t)v;
	return 0;
}

int nb_addr_parse(const char *s, bool allow_no_port, struct nb_addr *ret)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port = NULL;
	struct nb_addr a;
	size_t hlen;

	if (s == NULL)
		return -EINVAL;
	memset(&a, 0, sizeof(a));
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL)
			return -EINVAL;
		hlen = (size_t)(end - s - 1);
		s++;
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -EINVAL;
	} else {
		const char *colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') == NULL) {
			hlen = (size_t)(colon - s);
			port = colon + 1;
		} else {
			hlen = strlen(s); /* bare IPv4, or bare IPv6 */
		}
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';

	if (inet_pton(AF_INET, host, a.ip) == 1)
		a.family = NB_AF_INET;
	else if (inet_pton(AF_INET6, host, a.ip) == 1)
		a.family = NB_AF_INET6;
	else
		return -EINVAL;

	if (port != NULL) {
		if (parse_port(port, &a.port) < 0)
			return -EINVAL;
	} else if (!allow_no_port) {
		return -EINVAL;
	}
	*ret = a;
	return 0;
}

char *nb_addr_format_ip(const struct nb_addr *a, char *buf, size_t len)
{
	char tmp[INET6_ADDRSTRLEN];

	if (len == 0)
		return buf;
	if (a->family == NB_AF_INET)
		inet_ntop(AF_INET, a->ip, tmp, sizeof(tmp));
	else if (a->family == NB_AF_INET6)
		inet_ntop(AF_INET6, a->ip, tmp, sizeof(tmp));
	else
		snprintf(tmp, sizeof(tmp), "-");
	snprintf(buf, len, "%s", tmp);
	return buf;
}

char *nb_addr_format(const struct nb_addr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	nb_addr_format_ip(a, ip, sizeof(ip));
	if (a->family == NB_AF_INET6)
		snprintf(buf, len, "[%s]:%u", ip, a->port);
	else
		snprintf(buf, len, "%s:%u", ip, a->port);
	return buf;
}

static size_t ip_len(const struct nb_addr *a)
{
	return a->family == NB_AF_INET ? 4 : a->family == NB_AF_INET6 ? 16 : 0;
}

bool nb_addr_ip_equal(const struct nb_addr *a, const struct nb_addr *b)
{
	return a->family == b->family && memcmp(a->ip, b->ip, ip_len(a)) == 0;
}

bool nb_addr_equal(const struct nb_addr *a, const struct nb_addr *b)
{
	return nb_addr_ip_equal(a, b) && a->port == b->port;
}

bool nb_addr_is_unspecified(const struct nb_addr *a)
{
	static const uint8_t zero[16];
	return a->family == NB_AF_NONE || memcmp(a->ip, zero, ip_len(a)) == 0;
}

bool nb_addr_is_loopback(const struct nb_addr *a)
{
	static const uint8_t one6[16] = { [15] = 1 };
	if (a->family == NB_AF_INET)
		return a->ip[0] == 127;
	return a->family == NB_AF_INET6 && memcmp(a->ip, one6, 16) == 0;
}

bool nb_addr_is_link_local(const struct nb_addr *a)
{
	if (a->family == NB_AF_INET)
		return a->ip[0] == 169 && a->ip[1] == 254;
	return a->family == NB_AF_INET6 && a->ip[0] == 0xfe && (a->ip[1] & 0xc0) == 0x80;
}

bool nb_addr_is_multicast(const struct nb_addr *a)
{
	if (a->family == NB_AF_INET)
		return (a->ip[0] & 0xf0) == 0xe0;
	return a->family == NB_AF_INET6 && a->ip[0] == 0xff;
}

bool nb_addr_is_private(const struct nb_addr *a)
{
	const uint8_t *p = a->ip;

	if (a->family == NB_AF_INET)
		return p[0] == 10 || (p[0] == 172 && (p[1] & 0xf0) == 16) ||
		       (p[0] == 192 && p[1] == 168) || (p[0] == 100 && (p[1] & 0xc0) == 64);
	return a->family == NB_AF_INET6 && (p[0] & 0xfe) == 0xfc;
}

int nb_addr_to_sockaddr(const struct nb_addr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == NB_AF_INET) {
		struct sockaddr_in sin;
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(a->port);
		memcpy(&sin.sin_addr, a->ip, 4);
		memcpy(ss, &sin, sizeof(sin));
		return (int)sizeof(sin);
	}
	if (a->family == NB_AF_INET6) {
		struct sockaddr_in6 sin6;
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons(a->port);
		memcpy(&sin6.sin6_addr, a->ip, 16);
		memcpy(ss, &sin6, sizeof(sin6));
		return (int)sizeof(sin6);
	}
	return -EAFNOSUPPORT;
}

int nb_addr_from_sockaddr(const struct sockaddr *sa, struct nb_addr *ret)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	struct nb_addr a;

	memset(&a, 0, sizeof(a));
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in sin;
		memcpy(&sin, sa, sizeof(sin));
		a.family = NB_AF_INET;
		a.port = ntohs(sin.sin_port);
		memcpy(a.ip, &sin.sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 sin6;
		memcpy(&sin6, sa, sizeof(sin6));
		a.port = ntohs(sin6.sin6_port);
		if (memcmp(&sin6.sin6_addr, v4mapped, 12) == 0) {
			a.family = NB_AF_INET;
			memcpy(a.ip, (const uint8_t *)&sin6.sin6_addr + 12, 4);
		} else {
			a.family = NB_AF_INET6;
			memcpy(a.ip, &sin6.sin6_addr, 16);
		}
	} else {
		return -EAFNOSUPPORT;
	}
	*ret = a;
	return 0;
}
