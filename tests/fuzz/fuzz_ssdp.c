/* tests/fuzz/fuzz_ssdp.c - libFuzzer target for SSDP replies and gateway URLs.
 *
 * Parses the input as an SSDP reply from 192.168.6.1, with and without
 * NB_SSDP_ANY_HOST; an accepted reply must satisfy the header's promises
 * (LOCATION on an allowed host, the responder's unless the flag says
 * otherwise, formatting and parsing back to itself; ST usable in an
 * M-SEARCH). The same bytes are then tried as a URL and as a reference
 * resolved against a fixed base: whatever is accepted formats and parses
 * back. A refusal must leave *ret untouched and say why. Any inconsistency
 * traps. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "peer/portmap/ssdp.h"
#include "peer/portmap/url.h"

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

static void check_url(const struct nb_url *u)
{
	char buf[NB_URL_MAX + 1];
	struct nb_url back;
	int n;

	CHECK(u->addr.family == NB_AF_INET);
	CHECK(terminated(u->path, sizeof(u->path)) && u->path[0] == '/');
	CHECK(strchr(u->path, '#') == NULL);
	n = nb_url_format(u, buf, sizeof(buf));
	CHECK(n > 0 && n <= NB_URL_MAX && (size_t)n == strlen(buf));
	CHECK(nb_url_parse(buf, (size_t)n, &back) == 0);
	CHECK(nb_addr_equal(&back.addr, &u->addr));
	CHECK(strcmp(back.path, u->path) == 0);
}

static void fuzz_reply(const uint8_t *data, size_t size, const struct nb_addr *from, unsigned flags,
		       int *ret_rc)
{
	struct nb_ssdp_reply r, sentinel;
	const char *why = NULL;
	char msg[512];
	int rc;

	memset(&r, 0xA5, sizeof(r));
	sentinel = r;
	rc = nb_ssdp_parse_reply(data, size, from, flags, &r, &why);
	*ret_rc = rc;
	if (rc != 0) {
		CHECK(rc == -EINVAL && why != NULL && why[0] != '\0');
		CHECK(memcmp(&r, &sentinel, sizeof(r)) == 0);
		return;
	}
	CHECK(size <= NB_SSDP_REPLY_MAX && size >= 12 && memcmp(data, "HTTP/1.1 200", 12) == 0);
	CHECK(memchr(data, '\0', size) == NULL);
	check_url(&r.location);
	CHECK(nb_url_host_ok(&r.location.addr));
	if (!(flags & NB_SSDP_ANY_HOST))
		CHECK(nb_addr_ip_equal(&r.location.addr, from));
	CHECK(terminated(r.st, sizeof(r.st)) && r.st[0] != '\0');
	CHECK(terminated(r.usn, sizeof(r.usn)));
	CHECK(terminated(r.server, sizeof(r.server)));
	for (const char *p = r.server; *p != '\0'; p++)
		CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
	for (const char *p = r.usn; *p != '\0'; p++)
		CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
	CHECK(nb_ssdp_build_msearch(r.st, 2, msg, sizeof(msg)) > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char base_s[] = "http://192.168.6.1:5000/dir/rootDesc.xml?q=1";
	struct nb_addr from;
	struct nb_url u, base, sentinel;
	int rc_strict, rc_any, rc;

	CHECK(nb_addr_parse("192.168.6.1:1900", false, &from) == 0);
	fuzz_reply(data, size, &from, 0, &rc_strict);
	fuzz_reply(data, size, &from, NB_SSDP_ANY_HOST, &rc_any);
	if (rc_strict == 0)
		CHECK(rc_any == 0);

	/* The bytes as a URL and as a reference. */
	memset(&u, 0x5A, sizeof(u));
	sentinel = u;
	rc = nb_url_parse((const char *)data, size, &u);
	if (rc == 0) {
		CHECK(size <= NB_URL_MAX);
		check_url(&u);
	} else {
		CHECK(rc == -EINVAL && memcmp(&u, &sentinel, sizeof(u)) == 0);
	}
	CHECK(nb_url_parse(base_s, sizeof(base_s) - 1, &base) == 0);
	rc = nb_url_resolve(&base, (const char *)data, size, &u);
	if (rc == 0) {
		check_url(&u);
		/* without a scheme or an authority, the host stays the base's */
		if (size > 0 && data[0] != '/' && memchr(data, ':', size) == NULL)
			CHECK(nb_addr_equal(&u.addr, &base.addr));
		if (size > 1 && data[0] == '/' && data[1] != '/')
			CHECK(nb_addr_equal(&u.addr, &base.addr));
	} else {
		CHECK(rc == -EINVAL && memcmp(&u, &sentinel, sizeof(u)) == 0);
	}
	return 0;
}
