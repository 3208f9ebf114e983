/* common/addr.h - IPv4/IPv6 transport addresses: parse, format, compare, sockaddr conversion.
 *
 * Pure: no I/O. An nb_addr is a value type (copy it freely). */
#ifndef NB_COMMON_ADDR_H
#define NB_COMMON_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;
struct sockaddr_storage;

enum nb_family {
	NB_AF_NONE = 0,
	NB_AF_INET = 4,
	NB_AF_INET6 = 6,
};

struct nb_addr {
	uint8_t family; /* enum nb_family */
	uint16_t port;  /* host byte order */
	uint8_t ip[16]; /* network byte order; IPv4 uses ip[0..3] */
};

/* Index of a family in per-family arrays (a peer's two registrations, the
 * broker's listen sets): nb_addr_fam() of an IPv6 address is NB_FAM_V6,
 * of anything else NB_FAM_V4. */
enum nb_fam {
	NB_FAM_V4 = 0,
	NB_FAM_V6 = 1,
};
#define NB_FAM_COUNT 2
static inline enum nb_fam nb_addr_fam(const struct nb_addr *a)
{
	return a->family == NB_AF_INET6 ? NB_FAM_V6 : NB_FAM_V4;
}

/* "1.2.3.4:5", "[::1]:5", and, when allow_no_port is true, "1.2.3.4" / "::1"
 * (port 0). Returns 0, or -EINVAL; *ret untouched on failure. */
int nb_addr_parse(const char *s, bool allow_no_port, struct nb_addr *ret);

/* Longest string nb_addr_format can write, with its NUL. */
#define NB_ADDR_STRLEN 48

/* "1.2.3.4:5" or "[::1]:5"; always NUL-terminates; returns buf. */
char *nb_addr_format(const struct nb_addr *a, char *buf, size_t len);
/* The IP alone: "1.2.3.4" or "::1". */
char *nb_addr_format_ip(const struct nb_addr *a, char *buf, size_t len);

bool nb_addr_equal(const struct nb_addr *a, const struct nb_addr *b);    /* ip and port */
bool nb_addr_ip_equal(const struct nb_addr *a, const struct nb_addr *b); /* ip only */

/* Classification of the IP, used to refuse useless or dangerous addresses. */
bool nb_addr_is_unspecified(const struct nb_addr *a);
bool nb_addr_is_loopback(const struct nb_addr *a);
bool nb_addr_is_link_local(const struct nb_addr *a);
bool nb_addr_is_multicast(const struct nb_addr *a);
bool nb_addr_is_private(const struct nb_addr *a); /* RFC 1918, RFC 6598 (100.64/10), fc00::/7 */

/* Returns the sockaddr length written, or -EAFNOSUPPORT. */
int nb_addr_to_sockaddr(const struct nb_addr *a, struct sockaddr_storage *ss);
/* Returns 0, or -EAFNOSUPPORT. IPv4-mapped IPv6 addresses become IPv4. */
int nb_addr_from_sockaddr(const struct sockaddr *sa, struct nb_addr *ret);

#endif
