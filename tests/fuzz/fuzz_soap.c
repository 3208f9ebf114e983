/* tests/fuzz/fuzz_soap.c - libFuzzer target for SOAP responses and requests.
 *
 * Parses the input as the answer to every action, with HTTP 200 and 500.
 * Accepted answers must keep the header's promises (a non-fault only at 200;
 * the action's out values valid, the others zero; terminated, printable
 * display text; code 0 when unknown). A refusal must leave *ret untouched
 * and say why. Then the input's first bytes become the
 * NewPortMappingDescription of an AddPortMapping: a request that builds must
 * be well-formed XML that carries the description back unchanged. Any
 * inconsistency traps. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <expat.h>

#include "peer/portmap/soap.h"

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool ipv4(const char *s, size_t cap)
{
	uint8_t ip[4];
	return memchr(s, '\0', cap) != NULL && inet_pton(AF_INET, s, ip) == 1;
}

static void check_response(enum nb_soap_action a, int status, const struct nb_soap_response *r)
{
	CHECK(memchr(r->description, '\0', sizeof(r->description)) != NULL);
	for (const char *p = r->description; *p != '\0'; p++)
		CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
	if (r->fault) {
		if (!r->code_known)
			CHECK(r->code == 0);
		CHECK(r->external_ip[0] == '\0' && r->reserved_port == 0 && r->internal_port == 0 &&
		      r->internal_client[0] == '\0' && !r->enabled && r->lease_s == 0);
		return;
	}
	CHECK(status == 200);
	CHECK(!r->code_known && r->code == 0 && r->description[0] == '\0');
	if (a == NB_SOAP_GET_EXTERNAL_IP)
		CHECK(r->external_ip[0] == '\0' || ipv4(r->external_ip, sizeof(r->external_ip)));
	else
		CHECK(r->external_ip[0] == '\0');
	CHECK((a == NB_SOAP_ADD_ANY_PORT_MAPPING) == (r->reserved_port != 0));
	if (a == NB_SOAP_GET_SPECIFIC_ENTRY) {
		CHECK(r->internal_port != 0);
		CHECK(ipv4(r->internal_client, sizeof(r->internal_client)));
	} else {
		CHECK(r->internal_port == 0 && r->internal_client[0] == '\0' && !r->enabled &&
		      r->lease_s == 0);
	}
}

/* Text of <NewPortMappingDescription>, gathered by expat. */
struct desc_grab {
	bool in;
	size_t len;
	bool over;
	char s[128];
};

static void XMLCALL grab_start(void *arg, const XML_Char *name, const XML_Char **atts)
{
	struct desc_grab *g = arg;
	(void)atts;
	g->in = strcmp(name, "NewPortMappingDescription") == 0;
}

static void XMLCALL grab_end(void *arg, const XML_Char *name)
{
	struct desc_grab *g = arg;
	(void)name;
	g->in = false;
}

static void XMLCALL grab_text(void *arg, const XML_Char *s, int len)
{
	struct desc_grab *g = arg;
	if (!g->in || len <= 0)
		return;
	if (sizeof(g->s) - g->len <= (size_t)len) {
		g->over = true;
		return;
	}
	memcpy(g->s + g->len, s, (size_t)len);
	g->len += (size_t)len;
	g->s[g->len] = '\0';
}

static void fuzz_build(const uint8_t *data, size_t size)
{
	struct nb_soap_args a;
	struct nb_soap_request req;
	struct desc_grab g;
	XML_Parser p;
	size_t n = size < sizeof(a.description) - 1 ? size : sizeof(a.description) - 1;
	const uint8_t *nul = memchr(data, '\0', n);

	if (nul != NULL)
		n = (size_t)(nul - data);
	memset(&a, 0, sizeof(a));
	a.external_port = 40000;
	a.internal_port = 40000;
	memcpy(a.internal_client, "192.168.6.2", 12);
	memcpy(a.description, data, n);
	a.lease_s = 3600;
	if (nb_soap_build(NB_SOAP_ADD_PORT_MAPPING, "urn:schemas-upnp-org:service:WANIPConnection:2",
			  &a, &req) != 0)
		return;
	CHECK(req.body_len < sizeof(req.body) && strlen(req.body) == req.body_len);
	memset(&g, 0, sizeof(g));
	p = XML_ParserCreate(NULL);
	if (p == NULL)
		return;
	XML_SetUserData(p, &g);
	XML_SetElementHandler(p, grab_start, grab_end);
	XML_SetCharacterDataHandler(p, grab_text);
	CHECK(XML_Parse(p, req.body, (int)req.body_len, XML_TRUE) == XML_STATUS_OK);
	XML_ParserFree(p);
	CHECK(!g.over && g.len == n && memcmp(g.s, a.description, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int statuses[] = { 200, 500 };

	for (int a = 0; a < NB_SOAP_ACTION_COUNT; a++) {
		for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
			struct nb_soap_response r, sentinel;
			const char *why = NULL;
			int rc;

			memset(&r, 0xA5, sizeof(r));
			sentinel = r;
			rc = nb_soap_parse((enum nb_soap_action)a, statuses[i], data, size, &r, &why);
			if (rc != 0) {
				CHECK((rc == -EINVAL || rc == -ENOMEM) && why != NULL && why[0] != '\0');
				CHECK(memcmp(&r, &sentinel, sizeof(r)) == 0);
				continue;
			}
			CHECK(size <= NB_SOAP_RESPONSE_MAX);
			check_response((enum nb_soap_action)a, statuses[i], &r);
		}
	}
	fuzz_build(data, size);
	return 0;
}
