/* tests/fuzz/fuzz_gateway.c - libFuzzer target for /proc/net/route text.
 *
 * Parses the input; a success must name an IPv4 gateway other than 0.0.0.0
 * and a NUL-terminated interface name of 1..15 bytes without blanks or
 * control characters that appears in the text; the text must start with
 * "Iface", end in '\n' and hold no NUL. A failure is -EINVAL or -ENOENT and
 * leaves the outputs untouched. The same input also goes to the IPv6 parser
 * (/proc/net/ipv6_route text): a success names a non-zero IPv6 next hop, an
 * interface name as above, and the text ends in '\n' without NUL. Any
 * inconsistency traps. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "peer/portmap/gateway.h"

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ifname(const char *text, size_t size, const char *ifname)
{
	size_t n;

	CHECK(memchr(ifname, '\0', NB_GATEWAY_IFNAME_MAX) != NULL);
	n = strlen(ifname);
	CHECK(n >= 1 && n < NB_GATEWAY_IFNAME_MAX);
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)ifname[i] > 0x20 && ifname[i] != 0x7f);
	CHECK(memmem(text, size, ifname, n) != NULL);
}

static void fuzz_ipv6(const char *text, size_t size)
{
	static const uint8_t zero[16];
	struct nb_addr gw, gw_sentinel;
	char ifname[NB_GATEWAY_IFNAME_MAX], if_sentinel[NB_GATEWAY_IFNAME_MAX];
	int rc;

	memset(&gw, 0xA5, sizeof(gw));
	memset(ifname, 0x5A, sizeof(ifname));
	gw_sentinel = gw;
	memcpy(if_sentinel, ifname, sizeof(ifname));
	rc = nb_gateway_parse_ipv6_route(text, size, &gw, ifname);
	if (rc != 0) {
		CHECK(rc == -EINVAL || rc == -ENOENT);
		CHECK(memcmp(&gw, &gw_sentinel, sizeof(gw)) == 0);
		CHECK(memcmp(ifname, if_sentinel, sizeof(ifname)) == 0);
		return;
	}
	CHECK(size > 0 && text[size - 1] == '\n' && memchr(text, '\0', size) == NULL);
	CHECK(gw.family == NB_AF_INET6 && gw.port == 0 && memcmp(gw.ip, zero, 16) != 0);
	check_ifname(text, size, ifname);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct nb_addr gw, gw_sentinel;
	char ifname[NB_GATEWAY_IFNAME_MAX], if_sentinel[NB_GATEWAY_IFNAME_MAX];
	size_t n;
	int rc;

	memset(&gw, 0xA5, sizeof(gw));
	memset(ifname, 0x5A, sizeof(ifname));
	gw_sentinel = gw;
	memcpy(if_sentinel, ifname, sizeof(ifname));
	fuzz_ipv6(text, size);
	rc = nb_gateway_parse_proc_route(text, size, &gw, ifname);
	if (rc != 0) {
		CHECK(rc == -EINVAL || rc == -ENOENT);
		CHECK(memcmp(&gw, &gw_sentinel, sizeof(gw)) == 0);
		CHECK(memcmp(ifname, if_sentinel, sizeof(ifname)) == 0);
		return 0;
	}
	CHECK(size > 5 && memcmp(text, "Iface", 5) == 0 && text[size - 1] == '\n');
	CHECK(memchr(text, '\0', size) == NULL);
	CHECK(gw.family == NB_AF_INET && gw.port == 0);
	CHECK(gw.ip[0] != 0 || gw.ip[1] != 0 || gw.ip[2] != 0 || gw.ip[3] != 0);
	CHECK(memchr(ifname, '\0', sizeof(ifname)) != NULL);
	n = strlen(ifname);
	CHECK(n >= 1 && n < NB_GATEWAY_IFNAME_MAX);
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)ifname[i] > 0x20 && ifname[i] != 0x7f);
	CHECK(memmem(text, size, ifname, n) != NULL);
	return 0;
}
