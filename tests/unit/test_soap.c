/* tests/unit/test_soap.c - SOAP: the AddPortMapping body against the capture,
 * every action's body and headers, escaping, argument checks; responses and
 * faults (miniupnpd, MikroTik, -911, non-numeric codes, no detail), namespace
 * prefixes, split text, status rules, values that do not fit, hostile XML
 * (HTML, DOCTYPE, billion laughs, depth and element caps, 10 MB), every-prefix
 * truncation and a body that ends at a guard page. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <expat.h>

#include "peer/portmap/soap.h"
#include "upnp_test_util.h"

#define WANIP2 "urn:schemas-upnp-org:service:WANIPConnection:2"

static struct nb_soap_args capture_args(void)
{
	struct nb_soap_args a;

	memset(&a, 0, sizeof(a));
	a.external_port = 40000;
	a.tcp = false;
	a.internal_port = 40000;
	snprintf(a.internal_client, sizeof(a.internal_client), "%s", "192.168.6.2");
	snprintf(a.description, sizeof(a.description), "%s", "natlab-udp");
	a.lease_s = 3600;
	return a;
}

/* ---- Building ------------------------------------------------------------ */

static void test_action_names(void **state)
{
	static const char *const want[NB_SOAP_ACTION_COUNT] = {
		"GetExternalIPAddress", "AddPortMapping", "AddAnyPortMapping", "DeletePortMapping",
		"GetSpecificPortMappingEntry",
	};

	(void)state;
	for (int i = 0; i < NB_SOAP_ACTION_COUNT; i++)
		assert_string_equal(nb_soap_action_name((enum nb_soap_action)i), want[i]);
	assert_null(nb_soap_action_name(NB_SOAP_ACTION_COUNT));
	assert_null(nb_soap_action_name((enum nb_soap_action)-1));
}

/* Same arguments as miniupnpc in natlab/captures/soap-AddPortMapping.txt:
 * the same 596 bytes. */
static void test_build_golden(void **state)
{
	struct nb_soap_args a = capture_args();
	struct nb_soap_request r;
	size_t len;
	uint8_t *want = nb_test_load("soap-AddPortMapping-request.xml", &len);

	(void)state;
	assert_int_equal(len, 596);
	assert_int_equal(nb_soap_build(NB_SOAP_ADD_PORT_MAPPING, WANIP2, &a, &r), 0);
	assert_int_equal(r.body_len, len);
	assert_memory_equal(r.body, want, len);
	assert_int_equal(r.body[r.body_len], '\0');
	assert_string_equal(r.headers[0], "SOAPAction: \"" WANIP2 "#AddPortMapping\"");
	assert_string_equal(r.headers[1], "Content-Type: text/xml; charset=\"utf-8\"");
	assert_string_equal(r.headers[2], "Expect:");
	free(want);
}

#define ENV_OPEN                                                                                   \
	"<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" " \
	"s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>"
#define ENV_CLOSE "</s:Body></s:Envelope>\r\n"
#define MAP_ARGS(port, proto)                                                                      \
	"<NewRemoteHost></NewRemoteHost><NewExternalPort>" port "</NewExternalPort><NewProtocol>"   \
	proto "</NewProtocol>"

struct build_case {
	enum nb_soap_action a;
	bool tcp;
	const char *body;
};

static const struct build_case build_cases[] = {
	{ NB_SOAP_GET_EXTERNAL_IP, false,
	  ENV_OPEN "<u:GetExternalIPAddress xmlns:u=\"" WANIP2 "\"></u:GetExternalIPAddress>" ENV_CLOSE },
	{ NB_SOAP_ADD_ANY_PORT_MAPPING, true,
	  ENV_OPEN "<u:AddAnyPortMapping xmlns:u=\"" WANIP2 "\">" MAP_ARGS("40000", "TCP")
		   "<NewInternalPort>40000</NewInternalPort><NewInternalClient>192.168.6.2</NewInternalClient>"
		   "<NewEnabled>1</NewEnabled><NewPortMappingDescription>natlab-udp</NewPortMappingDescription>"
		   "<NewLeaseDuration>3600</NewLeaseDuration></u:AddAnyPortMapping>" ENV_CLOSE },
	{ NB_SOAP_DELETE_PORT_MAPPING, false,
	  ENV_OPEN "<u:DeletePortMapping xmlns:u=\"" WANIP2 "\">" MAP_ARGS("40000", "UDP")
		   "</u:DeletePortMapping>" ENV_CLOSE },
	{ NB_SOAP_GET_SPECIFIC_ENTRY, true,
	  ENV_OPEN "<u:GetSpecificPortMappingEntry xmlns:u=\"" WANIP2 "\">" MAP_ARGS("40000", "TCP")
		   "</u:GetSpecificPortMappingEntry>" ENV_CLOSE },
};

/* The body is well-formed XML (expat reads it to the end). */
static void assert_well_formed(const char *body, size_t len)
{
	XML_Parser p = XML_ParserCreate(NULL);
	assert_non_null(p);
	if (XML_Parse(p, body, (int)len, XML_TRUE) != XML_STATUS_OK)
		fail_msg("not well-formed: %s", XML_ErrorString(XML_GetErrorCode(p)));
	XML_ParserFree(p);
}

static void test_build_actions(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(build_cases); i++) {
		const struct build_case *c = &build_cases[i];
		struct nb_soap_args a = capture_args();
		struct nb_soap_request r;
		char hdr[192];

		a.tcp = c->tcp;
		assert_int_equal(nb_soap_build(c->a, WANIP2, &a, &r), 0);
		if (strcmp(r.body, c->body) != 0)
			fail_msg("%s:\n got %s\nwant %s", nb_soap_action_name(c->a), r.body, c->body);
		assert_int_equal(r.body_len, strlen(c->body));
		snprintf(hdr, sizeof(hdr), "SOAPAction: \"%s#%s\"", WANIP2, nb_soap_action_name(c->a));
		assert_string_equal(r.headers[0], hdr);
		assert_string_equal(r.headers[2], "Expect:");
		assert_well_formed(r.body, r.body_len);
	}
	/* GetExternalIPAddress needs no arguments */
	struct nb_soap_request r;
	assert_int_equal(nb_soap_build(NB_SOAP_GET_EXTERNAL_IP, WANIP2, NULL, &r), 0);
	assert_string_equal(r.body, build_cases[0].body);
}

static void test_build_escaping(void **state)
{
	struct nb_soap_args a = capture_args();
	struct nb_soap_request r;

	(void)state;
	snprintf(a.description, sizeof(a.description), "%s", "a&b<c>\"d'e</NewPortMappingDescription>caf\xc3\xa9");
	assert_int_equal(nb_soap_build(NB_SOAP_ADD_PORT_MAPPING, WANIP2, &a, &r), 0);
	assert_non_null(strstr(r.body, "<NewPortMappingDescription>a&amp;b&lt;c&gt;&quot;d&apos;e"
					"&lt;/NewPortMappingDescription&gt;caf\xc3\xa9"
					"</NewPortMappingDescription>"));
	assert_well_formed(r.body, r.body_len);
	/* extremes: all of it escaped, the longest service type, the largest numbers */
	char st[129];
	memset(st, 'x', 128);
	st[128] = '\0';
	memset(a.description, '\'', sizeof(a.description) - 1);
	a.description[sizeof(a.description) - 1] = '\0';
	a.external_port = 65535;
	a.internal_port = 65535;
	snprintf(a.internal_client, sizeof(a.internal_client), "%s", "255.255.255.255");
	a.lease_s = UINT32_MAX;
	for (int i = 0; i < NB_SOAP_ACTION_COUNT; i++) {
		assert_int_equal(nb_soap_build((enum nb_soap_action)i, st, &a, &r), 0);
		assert_true(r.body_len < NB_SOAP_REQ_BODY_MAX);
		assert_true(strlen(r.headers[0]) < sizeof(r.headers[0]));
		assert_well_formed(r.body, r.body_len);
	}
	assert_non_null(strstr(r.body, "<NewExternalPort>65535</NewExternalPort>"));
	assert_int_equal(nb_soap_build(NB_SOAP_ADD_PORT_MAPPING, st, &a, &r), 0);
	assert_non_null(strstr(r.body, "<NewLeaseDuration>4294967295</NewLeaseDuration>"));
	a.lease_s = 0;
	assert_int_equal(nb_soap_build(NB_SOAP_ADD_PORT_MAPPING, st, &a, &r), 0);
	assert_non_null(strstr(r.body, "<NewLeaseDuration>0</NewLeaseDuration>"));
}

static void test_build_invalid(void **state)
{
	struct nb_soap_args a;
	struct nb_soap_request r, sentinel;
	char st[200];

	(void)state;
	memset(&r, 0xA5, sizeof(r));
	sentinel = r;
#define BAD(action, type, args)                                                              \
	do {                                                                                 \
		assert_int_equal(nb_soap_build(action, type, args, &r), -EINVAL);           \
		assert_memory_equal(&r, &sentinel, sizeof(r));                               \
	} while (0)
	a = capture_args();
	BAD(NB_SOAP_ACTION_COUNT, WANIP2, &a);
	BAD((enum nb_soap_action)-1, WANIP2, &a);
	BAD(NB_SOAP_ADD_PORT_MAPPING, NULL, &a);
	BAD(NB_SOAP_ADD_PORT_MAPPING, "", &a);
	memset(st, 'x', sizeof(st));
	st[129] = '\0';
	BAD(NB_SOAP_ADD_PORT_MAPPING, st, &a);
	BAD(NB_SOAP_ADD_PORT_MAPPING, "urn:x\"y", &a);
	BAD(NB_SOAP_ADD_PORT_MAPPING, "urn:x\r\nX-Evil: 1", &a);
	BAD(NB_SOAP_ADD_PORT_MAPPING, "urn:x y", &a);
	BAD(NB_SOAP_ADD_PORT_MAPPING, "urn:x<y", &a);
	BAD(NB_SOAP_ADD_PORT_MAPPING, "urn:x&y", &a);
	BAD(NB_SOAP_ADD_PORT_MAPPING, "urn:caf\xc3\xa9", &a);
	BAD(NB_SOAP_ADD_PORT_MAPPING, WANIP2, NULL);
	BAD(NB_SOAP_DELETE_PORT_MAPPING, WANIP2, NULL);
	for (int i = NB_SOAP_ADD_PORT_MAPPING; i < NB_SOAP_ACTION_COUNT; i++) {
		a = capture_args();
		a.external_port = 0;
		BAD((enum nb_soap_action)i, WANIP2, &a);
	}
	for (int i = NB_SOAP_ADD_PORT_MAPPING; i <= NB_SOAP_ADD_ANY_PORT_MAPPING; i++) {
		enum nb_soap_action act = (enum nb_soap_action)i;
		static const char *const clients[] = { "", "192.168.6", "192.168.6.2x", "0.0.0.0",
						       "192.168.006.2", "::1", "host" };
		a = capture_args();
		a.internal_port = 0;
		BAD(act, WANIP2, &a);
		a = capture_args();
		a.description[0] = '\0';
		BAD(act, WANIP2, &a);
		snprintf(a.description, sizeof(a.description), "%s", "tab\there");
		BAD(act, WANIP2, &a);
		snprintf(a.description, sizeof(a.description), "%s", "new\nline");
		BAD(act, WANIP2, &a);
		snprintf(a.description, sizeof(a.description), "%s", "del\x7f");
		BAD(act, WANIP2, &a);
		snprintf(a.description, sizeof(a.description), "%s", "bad \xc3");
		BAD(act, WANIP2, &a);
		snprintf(a.description, sizeof(a.description), "%s", "overlong \xc0\xaf");
		BAD(act, WANIP2, &a);
		snprintf(a.description, sizeof(a.description), "%s", "surrogate \xed\xa0\x80");
		BAD(act, WANIP2, &a);
		snprintf(a.description, sizeof(a.description), "%s", "too big \xf4\x90\x80\x80");
		BAD(act, WANIP2, &a);
		memset(a.description, 'd', sizeof(a.description)); /* no NUL */
		BAD(act, WANIP2, &a);
		for (size_t k = 0; k < ARRAY_LEN(clients); k++) {
			a = capture_args();
			snprintf(a.internal_client, sizeof(a.internal_client), "%s", clients[k]);
			BAD(act, WANIP2, &a);
		}
		a = capture_args();
		memset(a.internal_client, '1', sizeof(a.internal_client)); /* no NUL */
		BAD(act, WANIP2, &a);
	}
#undef BAD
	/* Delete and GetSpecific do not look at the mapping-only fields */
	memset(&a, 0, sizeof(a));
	a.external_port = 1;
	assert_int_equal(nb_soap_build(NB_SOAP_DELETE_PORT_MAPPING, WANIP2, &a, &r), 0);
	assert_int_equal(nb_soap_build(NB_SOAP_GET_SPECIFIC_ENTRY, WANIP2, &a, &r), 0);
	assert_int_equal(nb_soap_build(NB_SOAP_GET_EXTERNAL_IP, WANIP2, &a, NULL), -EINVAL);
}

/* ---- Parsing: golden files ----------------------------------------------- */

struct golden {
	const char *file;
	enum nb_soap_action a;
	int status;
	bool fault;
	bool code_known;
	int code;
	const char *description;
	const char *external_ip;
	uint16_t reserved_port;
	uint16_t internal_port;
	const char *internal_client;
	bool enabled;
	uint32_t lease_s;
};

static const struct golden goldens[] = {
	{ "soap-AddPortMapping-response.xml", NB_SOAP_ADD_PORT_MAPPING, 200, false, false, 0, "", "", 0, 0, "", false, 0 },
	{ "soap-DeletePortMapping.xml", NB_SOAP_DELETE_PORT_MAPPING, 200, false, false, 0, "", "", 0, 0, "", false, 0 },
	{ "soap-GetExternalIPAddress.xml", NB_SOAP_GET_EXTERNAL_IP, 200, false, false, 0, "", "203.0.113.106", 0, 0, "", false, 0 },
	{ "soap-GetExternalIPAddress-empty.xml", NB_SOAP_GET_EXTERNAL_IP, 200, false, false, 0, "", "", 0, 0, "", false, 0 },
	{ "soap-GetExternalIPAddress-ws.xml", NB_SOAP_GET_EXTERNAL_IP, 200, false, false, 0, "", "198.51.100.7", 0, 0, "", false, 0 },
	{ "soap-AddAnyPortMapping.xml", NB_SOAP_ADD_ANY_PORT_MAPPING, 200, false, false, 0, "", "", 40001, 0, "", false, 0 },
	{ "soap-GetSpecificPortMappingEntry.xml", NB_SOAP_GET_SPECIFIC_ENTRY, 200, false, false, 0, "", "", 0, 40000, "192.168.6.2", true, 3584 },
	{ "soap-fault-718.xml", NB_SOAP_ADD_PORT_MAPPING, 500, true, true, 718, "ConflictInMappingEntry", "", 0, 0, "", false, 0 },
	{ "soap-fault-714.xml", NB_SOAP_GET_SPECIFIC_ENTRY, 500, true, true, 714, "NoSuchEntryInArray", "", 0, 0, "", false, 0 },
	{ "soap-fault-mikrotik.xml", NB_SOAP_ADD_PORT_MAPPING, 500, true, true, 725, "OnlyPermanentLeasesSupported", "", 0, 0, "", false, 0 },
	{ "soap-fault-911.xml", NB_SOAP_ADD_PORT_MAPPING, 500, true, true, -911, "Internal error", "", 0, 0, "", false, 0 },
	{ "soap-fault-nonnumeric.xml", NB_SOAP_ADD_PORT_MAPPING, 500, true, false, 0, "Conflict", "", 0, 0, "", false, 0 },
	{ "soap-fault-nodetail.xml", NB_SOAP_GET_EXTERNAL_IP, 500, true, false, 0, "Internal Server Error", "", 0, 0, "", false, 0 },
	/* a fault is a fault whatever the status */
	{ "soap-fault-718.xml", NB_SOAP_ADD_PORT_MAPPING, 200, true, true, 718, "ConflictInMappingEntry", "", 0, 0, "", false, 0 },
	{ "soap-fault-718.xml", NB_SOAP_ADD_PORT_MAPPING, 401, true, true, 718, "ConflictInMappingEntry", "", 0, 0, "", false, 0 },
};

static void check_golden(const struct golden *c, const struct nb_soap_response *r)
{
	assert_int_equal(r->fault, c->fault);
	assert_int_equal(r->code_known, c->code_known);
	assert_int_equal(r->code, c->code);
	assert_string_equal(r->description, c->description);
	assert_string_equal(r->external_ip, c->external_ip);
	assert_int_equal(r->reserved_port, c->reserved_port);
	assert_int_equal(r->internal_port, c->internal_port);
	assert_string_equal(r->internal_client, c->internal_client);
	assert_int_equal(r->enabled, c->enabled);
	assert_int_equal(r->lease_s, c->lease_s);
}

static void test_parse_golden(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(goldens); i++) {
		const struct golden *c = &goldens[i];
		size_t len;
		uint8_t *body = nb_test_load(c->file, &len);
		struct nb_soap_response r;
		const char *why = NULL;

		if (nb_soap_parse(c->a, c->status, body, len, &r, &why) != 0)
			fail_msg("%s: refused: %s", c->file, why);
		check_golden(c, &r);
		free(body);
	}
}

struct bad_file {
	const char *file;
	enum nb_soap_action a;
	int status;
	const char *why;
};

static const struct bad_file bad_files[] = {
	{ "soap-html.html", NB_SOAP_ADD_PORT_MAPPING, 500, "not a SOAP envelope" },
	{ "soap-html.html", NB_SOAP_ADD_PORT_MAPPING, 200, "not a SOAP envelope" },
	{ "soap-billion-laughs.xml", NB_SOAP_ADD_PORT_MAPPING, 500, "DOCTYPE" },
	{ "igd-html-doctype.html", NB_SOAP_GET_EXTERNAL_IP, 200, "DOCTYPE" },
	{ "igd-xxe.xml", NB_SOAP_GET_EXTERNAL_IP, 200, "DOCTYPE" },
	{ "rootDesc-miniupnpd.xml", NB_SOAP_GET_EXTERNAL_IP, 200, "not a SOAP envelope" },
	/* the answer to another action */
	{ "soap-AddPortMapping-response.xml", NB_SOAP_GET_EXTERNAL_IP, 200, "no <ActionResponse>" },
	{ "soap-AddPortMapping-response.xml", NB_SOAP_ADD_ANY_PORT_MAPPING, 200, "no <ActionResponse>" },
	{ "soap-GetExternalIPAddress.xml", NB_SOAP_ADD_PORT_MAPPING, 200, "no <ActionResponse>" },
	/* a response, but not with 200 */
	{ "soap-AddPortMapping-response.xml", NB_SOAP_ADD_PORT_MAPPING, 500, "without a SOAP Fault" },
	{ "soap-AddPortMapping-response.xml", NB_SOAP_ADD_PORT_MAPPING, 404, "without a SOAP Fault" },
	{ "soap-AddPortMapping-response.xml", NB_SOAP_ADD_PORT_MAPPING, 0, "without a SOAP Fault" },
};

static void test_parse_bad_files(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad_files); i++) {
		const struct bad_file *c = &bad_files[i];
		size_t len;
		uint8_t *body = nb_test_load(c->file, &len);
		struct nb_soap_response r, sentinel;
		const char *why = NULL;
		char name[128];

		memset(&r, 0xA5, sizeof(r));
		sentinel = r;
		snprintf(name, sizeof(name), "%s (%d)", c->file, c->status);
		int rc = nb_soap_parse(c->a, c->status, body, len, &r, &why);
		nb_test_assert_refused_for(name, rc, why, c->why, &r, &sentinel, sizeof(r));
		free(body);
	}
}

/* ---- Parsing: inline cases ----------------------------------------------- */

#define ENV(x)                                                                                     \
	"<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">" \
	"<s:Body>" x "</s:Body></s:Envelope>"
#define EXTIP(v)                                                                                   \
	ENV("<u:GetExternalIPAddressResponse xmlns:u=\"" WANIP2 "\"><NewExternalIPAddress>" v       \
	    "</NewExternalIPAddress></u:GetExternalIPAddressResponse>")
#define RESERVED(v)                                                                                \
	ENV("<u:AddAnyPortMappingResponse xmlns:u=\"" WANIP2 "\"><NewReservedPort>" v               \
	    "</NewReservedPort></u:AddAnyPortMappingResponse>")
#define SPECIFIC(x)                                                                                \
	ENV("<u:GetSpecificPortMappingEntryResponse xmlns:u=\"" WANIP2 "\">" x                      \
	    "</u:GetSpecificPortMappingEntryResponse>")
#define FAULT(code, desc)                                                                          \
	ENV("<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>"  \
	    "<UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>" code "</errorCode>"   \
	    "<errorDescription>" desc "</errorDescription></UPnPError></detail></s:Fault>")

struct inline_case {
	const char *name;
	enum nb_soap_action a;
	int status;
	const char *body;
	const char *why; /* NULL: accepted */
	/* accepted: */
	bool fault;
	bool code_known;
	int code;
	const char *text; /* external_ip, or the fault's description */
	uint32_t number;  /* reserved_port, or internal_port */
};

static const struct inline_case inline_cases[] = {
	/* external IP */
	{ "ip", NB_SOAP_GET_EXTERNAL_IP, 200, EXTIP("203.0.113.5"), NULL, false, false, 0, "203.0.113.5", 0 },
	{ "ip split by a character reference", NB_SOAP_GET_EXTERNAL_IP, 200, EXTIP("203.0.&#49;13.5"), NULL, false, false, 0, "203.0.113.5", 0 },
	{ "ip in CDATA", NB_SOAP_GET_EXTERNAL_IP, 200, EXTIP("<![CDATA[203.0]]>.113.5"), NULL, false, false, 0, "203.0.113.5", 0 },
	{ "ip 0.0.0.0 is dotted IPv4", NB_SOAP_GET_EXTERNAL_IP, 200, EXTIP("0.0.0.0"), NULL, false, false, 0, "0.0.0.0", 0 },
	{ "ip whitespace only", NB_SOAP_GET_EXTERNAL_IP, 200, EXTIP(" \r\n\t "), NULL, false, false, 0, "", 0 },
	{ "ip self-closing", NB_SOAP_GET_EXTERNAL_IP, 200,
	  ENV("<u:GetExternalIPAddressResponse><NewExternalIPAddress/></u:GetExternalIPAddressResponse>"), NULL, false, false, 0, "", 0 },
	{ "ip prefixed argument", NB_SOAP_GET_EXTERNAL_IP, 200,
	  ENV("<m:GetExternalIPAddressResponse xmlns:m=\"x\"><m:NewExternalIPAddress>10.1.1.1</m:NewExternalIPAddress></m:GetExternalIPAddressResponse>"),
	  NULL, false, false, 0, "10.1.1.1", 0 },
	{ "ip no prefixes at all", NB_SOAP_GET_EXTERNAL_IP, 200,
	  "<Envelope><Body><GetExternalIPAddressResponse><NewExternalIPAddress>10.1.1.1</NewExternalIPAddress></GetExternalIPAddressResponse></Body></Envelope>",
	  NULL, false, false, 0, "10.1.1.1", 0 },
	{ "ip SOAP Header first", NB_SOAP_GET_EXTERNAL_IP, 200,
	  "<s:Envelope xmlns:s=\"x\"><s:Header><x/></s:Header><s:Body><u:GetExternalIPAddressResponse><NewExternalIPAddress>10.1.1.1</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>",
	  NULL, false, false, 0, "10.1.1.1", 0 },
	{ "ip the first of two", NB_SOAP_GET_EXTERNAL_IP, 200,
	  ENV("<u:GetExternalIPAddressResponse><NewExternalIPAddress>10.1.1.1</NewExternalIPAddress><NewExternalIPAddress>10.2.2.2</NewExternalIPAddress></u:GetExternalIPAddressResponse>"),
	  NULL, false, false, 0, "10.1.1.1", 0 },
	{ "ip three parts", NB_SOAP_GET_EXTERNAL_IP, 200, EXTIP("203.0.113"), "NewExternalIPAddress is neither", false, false, 0, NULL, 0 },
	{ "ip leading zero", NB_SOAP_GET_EXTERNAL_IP, 200, EXTIP("203.0.113.05"), "NewExternalIPAddress is neither", false, false, 0, NULL, 0 },
	{ "ip 16 bytes", NB_SOAP_GET_EXTERNAL_IP, 200, EXTIP("203.0.113.1055"), "NewExternalIPAddress is neither", false, false, 0, NULL, 0 },
	{ "ip inner space", NB_SOAP_GET_EXTERNAL_IP, 200, EXTIP("203.0. 113.5"), "NewExternalIPAddress is neither", false, false, 0, NULL, 0 },
	{ "ip host name", NB_SOAP_GET_EXTERNAL_IP, 200, EXTIP("router.example"), "NewExternalIPAddress is neither", false, false, 0, NULL, 0 },
	{ "ip IPv6", NB_SOAP_GET_EXTERNAL_IP, 200, EXTIP("2001:db8::1"), "NewExternalIPAddress is neither", false, false, 0, NULL, 0 },
	{ "ip missing", NB_SOAP_GET_EXTERNAL_IP, 200,
	  ENV("<u:GetExternalIPAddressResponse></u:GetExternalIPAddressResponse>"), "no NewExternalIPAddress", false, false, 0, NULL, 0 },
	{ "ip one level too deep", NB_SOAP_GET_EXTERNAL_IP, 200,
	  ENV("<u:GetExternalIPAddressResponse><x><NewExternalIPAddress>10.1.1.1</NewExternalIPAddress></x></u:GetExternalIPAddressResponse>"),
	  "no NewExternalIPAddress", false, false, 0, NULL, 0 },
	{ "response outside Body", NB_SOAP_GET_EXTERNAL_IP, 200,
	  "<s:Envelope><u:GetExternalIPAddressResponse><NewExternalIPAddress>10.1.1.1</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Envelope>",
	  "no <ActionResponse>", false, false, 0, NULL, 0 },
	{ "response name with a suffix", NB_SOAP_GET_EXTERNAL_IP, 200,
	  ENV("<u:GetExternalIPAddressResponseX><NewExternalIPAddress>10.1.1.1</NewExternalIPAddress></u:GetExternalIPAddressResponseX>"),
	  "no <ActionResponse>", false, false, 0, NULL, 0 },
	{ "response name without Response", NB_SOAP_GET_EXTERNAL_IP, 200,
	  ENV("<u:GetExternalIPAddress><NewExternalIPAddress>10.1.1.1</NewExternalIPAddress></u:GetExternalIPAddress>"),
	  "no <ActionResponse>", false, false, 0, NULL, 0 },
	/* AddAnyPortMapping */
	{ "reserved", NB_SOAP_ADD_ANY_PORT_MAPPING, 200, RESERVED(" 40002 "), NULL, false, false, 0, "", 40002 },
	{ "reserved 65535", NB_SOAP_ADD_ANY_PORT_MAPPING, 200, RESERVED("65535"), NULL, false, false, 0, "", 65535 },
	{ "reserved 0", NB_SOAP_ADD_ANY_PORT_MAPPING, 200, RESERVED("0"), "NewReservedPort is not", false, false, 0, NULL, 0 },
	{ "reserved 65536", NB_SOAP_ADD_ANY_PORT_MAPPING, 200, RESERVED("65536"), "NewReservedPort is not", false, false, 0, NULL, 0 },
	{ "reserved negative", NB_SOAP_ADD_ANY_PORT_MAPPING, 200, RESERVED("-1"), "NewReservedPort is not", false, false, 0, NULL, 0 },
	{ "reserved text", NB_SOAP_ADD_ANY_PORT_MAPPING, 200, RESERVED("abc"), "NewReservedPort is not", false, false, 0, NULL, 0 },
	{ "reserved empty", NB_SOAP_ADD_ANY_PORT_MAPPING, 200, RESERVED(""), "NewReservedPort is not", false, false, 0, NULL, 0 },
	{ "reserved huge", NB_SOAP_ADD_ANY_PORT_MAPPING, 200, RESERVED("99999999999999999999"), "NewReservedPort is not", false, false, 0, NULL, 0 },
	{ "reserved missing", NB_SOAP_ADD_ANY_PORT_MAPPING, 200, ENV("<u:AddAnyPortMappingResponse/>"), "no NewReservedPort", false, false, 0, NULL, 0 },
	/* GetSpecificPortMappingEntry */
	{ "specific minimal", NB_SOAP_GET_SPECIFIC_ENTRY, 200,
	  SPECIFIC("<NewInternalClient>192.168.6.2</NewInternalClient><NewInternalPort>1</NewInternalPort>"), NULL, false, false, 0, "", 1 },
	{ "specific no client", NB_SOAP_GET_SPECIFIC_ENTRY, 200, SPECIFIC("<NewInternalPort>1</NewInternalPort>"), "no NewInternalPort or NewInternalClient", false, false, 0, NULL, 0 },
	{ "specific no port", NB_SOAP_GET_SPECIFIC_ENTRY, 200, SPECIFIC("<NewInternalClient>192.168.6.2</NewInternalClient>"), "no NewInternalPort or NewInternalClient", false, false, 0, NULL, 0 },
	{ "specific empty client", NB_SOAP_GET_SPECIFIC_ENTRY, 200,
	  SPECIFIC("<NewInternalClient></NewInternalClient><NewInternalPort>1</NewInternalPort>"), "NewInternalClient is not", false, false, 0, NULL, 0 },
	{ "specific enabled maybe", NB_SOAP_GET_SPECIFIC_ENTRY, 200,
	  SPECIFIC("<NewInternalClient>192.168.6.2</NewInternalClient><NewInternalPort>1</NewInternalPort><NewEnabled>maybe</NewEnabled>"),
	  "NewEnabled is not", false, false, 0, NULL, 0 },
	{ "specific lease negative", NB_SOAP_GET_SPECIFIC_ENTRY, 200,
	  SPECIFIC("<NewInternalClient>192.168.6.2</NewInternalClient><NewInternalPort>1</NewInternalPort><NewLeaseDuration>-1</NewLeaseDuration>"),
	  "NewLeaseDuration is not", false, false, 0, NULL, 0 },
	{ "specific lease 2^32", NB_SOAP_GET_SPECIFIC_ENTRY, 200,
	  SPECIFIC("<NewInternalClient>192.168.6.2</NewInternalClient><NewInternalPort>1</NewInternalPort><NewLeaseDuration>4294967296</NewLeaseDuration>"),
	  "NewLeaseDuration is not", false, false, 0, NULL, 0 },
	/* faults */
	{ "fault code with blanks", NB_SOAP_ADD_PORT_MAPPING, 500, FAULT("\r\n  402\t\r\n", "Invalid Args"), NULL, true, true, 402, "Invalid Args", 0 },
	{ "fault code +718", NB_SOAP_ADD_PORT_MAPPING, 500, FAULT("+718", ""), NULL, true, true, 718, "", 0 },
	{ "fault code 9 digits", NB_SOAP_ADD_PORT_MAPPING, 500, FAULT("-999999999", ""), NULL, true, true, -999999999, "", 0 },
	{ "fault code 10 digits", NB_SOAP_ADD_PORT_MAPPING, 500, FAULT("1000000000", ""), NULL, true, false, 0, "", 0 },
	{ "fault code empty", NB_SOAP_ADD_PORT_MAPPING, 500, FAULT("", "x"), NULL, true, false, 0, "x", 0 },
	{ "fault code inner space", NB_SOAP_ADD_PORT_MAPPING, 500, FAULT("7 18", ""), NULL, true, false, 0, "", 0 },
	{ "fault code hex", NB_SOAP_ADD_PORT_MAPPING, 500, FAULT("0x2CE", ""), NULL, true, false, 0, "", 0 },
	{ "fault code sign only", NB_SOAP_ADD_PORT_MAPPING, 500, FAULT("-", ""), NULL, true, false, 0, "", 0 },
	{ "fault code split", NB_SOAP_ADD_PORT_MAPPING, 500, FAULT("7&#49;8", ""), NULL, true, true, 718, "", 0 },
	{ "fault description controls", NB_SOAP_ADD_PORT_MAPPING, 500, FAULT("718", "a&#x9;b\r\nc"), NULL, true, true, 718, "a b c", 0 },
	{ "fault, no errorCode", NB_SOAP_ADD_PORT_MAPPING, 500,
	  ENV("<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError><errorDescription>d</errorDescription></UPnPError></detail></s:Fault>"),
	  NULL, true, false, 0, "d", 0 },
	{ "fault capitalised everything", NB_SOAP_ADD_PORT_MAPPING, 500,
	  ENV("<SOAP-ENV:FAULT><FAULTCODE>x</FAULTCODE><FAULTSTRING>y</FAULTSTRING><DETAIL><UPNPERROR><ERRORCODE>606</ERRORCODE></UPNPERROR></DETAIL></SOAP-ENV:FAULT>"),
	  NULL, true, true, 606, "y", 0 },
	{ "fault at 200 with the action's name", NB_SOAP_GET_EXTERNAL_IP, 200, FAULT("501", "ActionFailed"), NULL, true, true, 501, "ActionFailed", 0 },
	{ "fault outside Body", NB_SOAP_ADD_PORT_MAPPING, 500,
	  "<s:Envelope><s:Fault><detail><errorCode>718</errorCode></detail></s:Fault></s:Envelope>", "without a SOAP Fault", false, false, 0, NULL, 0 },
	{ "errorCode outside the Fault", NB_SOAP_ADD_PORT_MAPPING, 500,
	  ENV("<errorCode>718</errorCode><s:Fault></s:Fault>"), NULL, true, false, 0, "", 0 },
	{ "first errorCode wins", NB_SOAP_ADD_PORT_MAPPING, 500,
	  ENV("<s:Fault><detail><errorCode>718</errorCode><errorCode>402</errorCode></detail></s:Fault>"), NULL, true, true, 718, "", 0 },
	{ "both response and fault", NB_SOAP_ADD_PORT_MAPPING, 200,
	  ENV("<u:AddPortMappingResponse/><s:Fault><detail><errorCode>718</errorCode></detail></s:Fault>"), "both", false, false, 0, NULL, 0 },
	{ "both fault and response", NB_SOAP_ADD_PORT_MAPPING, 500,
	  ENV("<s:Fault><detail><errorCode>718</errorCode></detail></s:Fault><u:AddPortMappingResponse/>"), "both", false, false, 0, NULL, 0 },
	{ "500 with an empty Body", NB_SOAP_ADD_PORT_MAPPING, 500, ENV(""), "without a SOAP Fault", false, false, 0, NULL, 0 },
	/* XML shape */
	{ "empty body", NB_SOAP_ADD_PORT_MAPPING, 200, "", "malformed", false, false, 0, NULL, 0 },
	{ "plain text", NB_SOAP_ADD_PORT_MAPPING, 500, "Internal Server Error\r\n", "malformed", false, false, 0, NULL, 0 },
	{ "unclosed", NB_SOAP_ADD_PORT_MAPPING, 200, "<s:Envelope><s:Body><u:AddPortMappingResponse/>", "malformed", false, false, 0, NULL, 0 },
	{ "DOCTYPE", NB_SOAP_ADD_PORT_MAPPING, 200, "<!DOCTYPE s:Envelope><s:Envelope/>", "DOCTYPE", false, false, 0, NULL, 0 },
	{ "undefined entity", NB_SOAP_GET_EXTERNAL_IP, 200, EXTIP("&ip;"), "malformed", false, false, 0, NULL, 0 },
	{ "root is not Envelope", NB_SOAP_ADD_PORT_MAPPING, 200, "<Body><u:AddPortMappingResponse/></Body>", "not a SOAP envelope", false, false, 0, NULL, 0 },
};

static void test_parse_inline(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(inline_cases); i++) {
		const struct inline_case *c = &inline_cases[i];
		struct nb_soap_response r, sentinel;
		const char *why = NULL;

		memset(&r, 0x5A, sizeof(r));
		sentinel = r;
		int rc = nb_soap_parse(c->a, c->status, (const uint8_t *)c->body, strlen(c->body), &r, &why);
		if (c->why != NULL) {
			nb_test_assert_refused_for(c->name, rc, why, c->why, &r, &sentinel, sizeof(r));
			continue;
		}
		if (rc != 0)
			fail_msg("%s: refused: %s", c->name, why);
		assert_int_equal(r.fault, c->fault);
		assert_int_equal(r.code_known, c->code_known);
		assert_int_equal(r.code, c->code);
		if (c->fault) {
			assert_string_equal(r.description, c->text);
		} else if (c->a == NB_SOAP_GET_EXTERNAL_IP) {
			assert_string_equal(r.external_ip, c->text);
		} else if (c->a == NB_SOAP_ADD_ANY_PORT_MAPPING) {
			assert_int_equal(r.reserved_port, c->number);
		} else if (c->a == NB_SOAP_GET_SPECIFIC_ENTRY) {
			assert_int_equal(r.internal_port, c->number);
			assert_true(r.enabled); /* absent: true */
			assert_int_equal(r.lease_s, 0);
		}
	}
}

static void test_parse_enabled(void **state)
{
	static const struct {
		const char *v;
		bool want;
	} cases[] = { { "1", true }, { "0", false }, { "true", true }, { "FALSE", false },
		      { " yes ", true }, { "No", false } };
	char body[1024];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct nb_soap_response r;
		const char *why = NULL;
		int n = snprintf(body, sizeof(body),
				 SPECIFIC("<NewInternalPort>5</NewInternalPort><NewInternalClient>10.0.0.2</NewInternalClient>"
					  "<NewEnabled>%s</NewEnabled><NewLeaseDuration>4294967295</NewLeaseDuration>"),
				 cases[i].v);
		assert_int_equal(nb_soap_parse(NB_SOAP_GET_SPECIFIC_ENTRY, 200, (uint8_t *)body, (size_t)n, &r, &why), 0);
		assert_int_equal(r.enabled, cases[i].want);
		assert_int_equal(r.lease_s, UINT32_MAX);
		assert_string_equal(r.internal_client, "10.0.0.2");
	}
}

/* A value longer than its field: the external IP is refused, the fault's
 * description is cut for display on a UTF-8 boundary. */
static void test_parse_lengths(void **state)
{
	char *body = malloc(4096);
	char val[1024];
	struct nb_soap_response r;
	const char *why = NULL;
	int n;

	(void)state;
	assert_non_null(body);
	memset(val, '1', 300);
	val[300] = '\0';
	n = snprintf(body, 4096, EXTIP("%s"), val);
	assert_int_equal(nb_soap_parse(NB_SOAP_GET_EXTERNAL_IP, 200, (uint8_t *)body, (size_t)n, &r, &why), -EINVAL);
	assert_non_null(strstr(why, "NewExternalIPAddress is neither"));
	/* 203.0.113.106 then 300 spaces: fine, whitespace is trimmed */
	memset(val, ' ', 300);
	n = snprintf(body, 4096, EXTIP("203.0.113.106%s"), val);
	assert_int_equal(nb_soap_parse(NB_SOAP_GET_EXTERNAL_IP, 200, (uint8_t *)body, (size_t)n, &r, &why), 0);
	assert_string_equal(r.external_ip, "203.0.113.106");

	memset(val, 'd', 127);
	memcpy(val + 127, "\xc3\xa9", 2);
	memset(val + 129, 'e', 400);
	val[529] = '\0';
	n = snprintf(body, 4096, FAULT("718", "%s"), val);
	assert_int_equal(nb_soap_parse(NB_SOAP_ADD_PORT_MAPPING, 500, (uint8_t *)body, (size_t)n, &r, &why), 0);
	assert_true(r.fault && r.code_known && r.code == 718);
	assert_int_equal(strlen(r.description), 127);
	/* an errorCode too long to hold is not known */
	memset(val, '7', 400);
	val[400] = '\0';
	n = snprintf(body, 4096, FAULT("%s", "x"), val);
	assert_int_equal(nb_soap_parse(NB_SOAP_ADD_PORT_MAPPING, 500, (uint8_t *)body, (size_t)n, &r, &why), 0);
	assert_true(r.fault && !r.code_known && r.code == 0);
	free(body);
}

/* ---- Caps ---------------------------------------------------------------- */

static void test_caps(void **state)
{
	static const char head[] = "<s:Envelope><s:Body><u:AddPortMappingResponse>";
	static const char tail[] = "</u:AddPortMappingResponse></s:Body></s:Envelope>";
	size_t big = 10u << 20;
	char *body = malloc(big);
	struct nb_soap_response r;
	const char *why = NULL;
	struct timespec t0, t1;
	size_t off;

	(void)state;
	assert_non_null(body);
	/* exactly NB_SOAP_RESPONSE_MAX bytes (whitespace padding), then one more */
	memcpy(body, head, sizeof(head) - 1);
	memset(body + sizeof(head) - 1, ' ', big - (sizeof(head) - 1));
	memcpy(body + NB_SOAP_RESPONSE_MAX - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
	assert_int_equal(nb_soap_parse(NB_SOAP_ADD_PORT_MAPPING, 200, (uint8_t *)body, NB_SOAP_RESPONSE_MAX, &r, &why), 0);
	assert_int_equal(nb_soap_parse(NB_SOAP_ADD_PORT_MAPPING, 200, (uint8_t *)body, NB_SOAP_RESPONSE_MAX + 1, &r, &why), -EINVAL);
	assert_non_null(strstr(why, "NB_SOAP_RESPONSE_MAX"));
	/* 10 MB: refused by the cap at once */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(nb_soap_parse(NB_SOAP_ADD_PORT_MAPPING, 500, (uint8_t *)body, big, &r, &why), -EINVAL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_non_null(strstr(why, "NB_SOAP_RESPONSE_MAX"));
	assert_true((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 100000000L);

	/* deep nesting inside the fault */
	off = 0;
	off += (size_t)snprintf(body + off, big - off, "<s:Envelope><s:Body><s:Fault>");
	for (int i = 0; i < 5000; i++)
		off += (size_t)snprintf(body + off, big - off, "<d>");
	assert_int_equal(nb_soap_parse(NB_SOAP_ADD_PORT_MAPPING, 500, (uint8_t *)body, off, &r, &why), -EINVAL);
	assert_non_null(strstr(why, "nested deeper"));
	/* many elements */
	off = 0;
	off += (size_t)snprintf(body + off, big - off, "<s:Envelope><s:Body><s:Fault>");
	for (int i = 0; i < 3000; i++)
		off += (size_t)snprintf(body + off, big - off, "<d/>");
	off += (size_t)snprintf(body + off, big - off, "</s:Fault></s:Body></s:Envelope>");
	assert_true(off <= NB_SOAP_RESPONSE_MAX);
	assert_int_equal(nb_soap_parse(NB_SOAP_ADD_PORT_MAPPING, 500, (uint8_t *)body, off, &r, &why), -EINVAL);
	assert_non_null(strstr(why, "more elements"));
	free(body);

	assert_int_equal(nb_soap_parse(NB_SOAP_ACTION_COUNT, 200, (const uint8_t *)"<a/>", 4, &r, &why), -EINVAL);
	assert_int_equal(nb_soap_parse(NB_SOAP_ADD_PORT_MAPPING, 200, NULL, 0, &r, &why), -EINVAL);
	assert_int_equal(nb_soap_parse(NB_SOAP_ADD_PORT_MAPPING, 200, (const uint8_t *)"<a/>", 4, NULL, &why), -EINVAL);
	assert_int_equal(nb_soap_parse(NB_SOAP_ADD_PORT_MAPPING, 200, (const uint8_t *)"<a/>", 4, &r, NULL), -EINVAL);
}

/* ---- Truncation and guard page ------------------------------------------- */

static void test_truncation(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(goldens); i++) {
		const struct golden *c = &goldens[i];
		size_t len;
		uint8_t *body = nb_test_load(c->file, &len);

		for (size_t k = 0; k < len; k++) {
			uint8_t *p = nb_test_copy(body, k);
			struct nb_soap_response r, sentinel;
			const char *why = NULL;

			memset(&r, 0xA5, sizeof(r));
			sentinel = r;
			int rc = nb_soap_parse(c->a, c->status, p, k, &r, &why);
			if (rc == 0) {
				nb_test_assert_only(body + k, len - k, "\n\r");
				check_golden(c, &r);
			} else {
				nb_test_assert_refused(rc, why, &r, &sentinel, sizeof(r));
			}
			free(p);
		}
		free(body);
	}
}

static void test_guard_page(void **state)
{
	struct nb_test_guard gp;

	(void)state;
	nb_test_guard_open(&gp);
	for (size_t i = 0; i < ARRAY_LEN(goldens); i++) {
		const struct golden *c = &goldens[i];
		size_t len;
		uint8_t *body = nb_test_load(c->file, &len);

		assert_true(len <= gp.pg);
		for (size_t k = 0; k <= len; k++) {
			struct nb_soap_response r;
			const char *why;
			int rc = nb_soap_parse(c->a, c->status, nb_test_guard_place(&gp, body, k), k, &r,
					       &why);
			if (k == len)
				assert_int_equal(rc, 0);
			else
				assert_true(rc == 0 || rc == -EINVAL);
		}
		free(body);
	}
	nb_test_guard_close(&gp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_action_names),
		cmocka_unit_test(test_build_golden),
		cmocka_unit_test(test_build_actions),
		cmocka_unit_test(test_build_escaping),
		cmocka_unit_test(test_build_invalid),
		cmocka_unit_test(test_parse_golden),
		cmocka_unit_test(test_parse_bad_files),
		cmocka_unit_test(test_parse_inline),
		cmocka_unit_test(test_parse_enabled),
		cmocka_unit_test(test_parse_lengths),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_guard_page),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
