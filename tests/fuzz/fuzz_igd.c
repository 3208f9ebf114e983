/* tests/fuzz/fuzz_igd.c - libFuzzer target for device descriptions.
 *
 * Parses the input as the description fetched from a fixed LOCATION. An
 * accepted one must name a WANIPConnection or WANPPPConnection service of a
 * sane version whose control URL sits on LOCATION's host, formats and parses
 * back; display strings are terminated and free of control characters. A
 * refusal must leave *ret untouched and say why. Parsing twice gives the
 * same answer. Any inconsistency traps. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "peer/portmap/igd.h"

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_display(const char *s, size_t cap)
{
	CHECK(memchr(s, '\0', cap) != NULL);
	for (; *s != '\0'; s++)
		CHECK((unsigned char)*s >= 0x20 && *s != 0x7f);
}

static void check_igd(const struct nb_igd *g, const struct nb_url *loc)
{
	static const char ip[] = "urn:schemas-upnp-org:service:WANIPConnection:";
	static const char ppp[] = "urn:schemas-upnp-org:service:WANPPPConnection:";
	const char *prefix = g->ppp ? ppp : ip;
	size_t plen = strlen(prefix);
	char buf[NB_URL_MAX + 1];
	struct nb_url back;
	int n;

	CHECK(g->device_version >= 0 && g->device_version <= 999);
	CHECK(g->service_version >= 1 && g->service_version <= 999);
	CHECK(memchr(g->service_type, '\0', sizeof(g->service_type)) != NULL);
	CHECK(strlen(g->service_type) > plen && strncasecmp(g->service_type, prefix, plen) == 0);
	for (const char *p = g->service_type + plen; *p != '\0'; p++)
		CHECK(*p >= '0' && *p <= '9');
	CHECK(g->control.addr.family == NB_AF_INET);
	CHECK(nb_addr_ip_equal(&g->control.addr, &loc->addr));
	CHECK(nb_url_host_ok(&g->control.addr));
	CHECK(memchr(g->control.path, '\0', sizeof(g->control.path)) != NULL);
	CHECK(g->control.path[0] == '/');
	n = nb_url_format(&g->control, buf, sizeof(buf));
	CHECK(n > 0 && n <= NB_URL_MAX);
	CHECK(nb_url_parse(buf, (size_t)n, &back) == 0);
	CHECK(nb_addr_equal(&back.addr, &g->control.addr) && strcmp(back.path, g->control.path) == 0);
	check_display(g->friendly_name, sizeof(g->friendly_name));
	check_display(g->manufacturer, sizeof(g->manufacturer));
	check_display(g->model_name, sizeof(g->model_name));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char loc_s[] = "http://192.168.1.1:5000/desc/rootDesc.xml";
	struct nb_url loc;
	struct nb_igd g, g2, sentinel;
	const char *why = NULL;
	int rc, rc2;

	CHECK(nb_url_parse(loc_s, sizeof(loc_s) - 1, &loc) == 0);
	memset(&g, 0xA5, sizeof(g));
	sentinel = g;
	rc = nb_igd_parse(data, size, &loc, &g, &why);
	if (rc != 0) {
		CHECK((rc == -EINVAL || rc == -ENOMEM) && why != NULL && why[0] != '\0');
		CHECK(memcmp(&g, &sentinel, sizeof(g)) == 0);
	} else {
		CHECK(size <= NB_IGD_XML_MAX);
		check_igd(&g, &loc);
	}
	memset(&g2, 0xA5, sizeof(g2));
	rc2 = nb_igd_parse(data, size, &loc, &g2, NULL);
	CHECK(rc2 == rc || rc2 == -ENOMEM || rc == -ENOMEM);
	if (rc == 0 && rc2 == 0)
		CHECK(memcmp(&g, &g2, sizeof(g)) == 0);
	return 0;
}
