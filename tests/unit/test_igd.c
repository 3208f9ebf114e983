/* tests/unit/test_igd.c - device descriptions: golden files (miniupnpd, IGD v1
 * with WANPPPConnection, URLBase with a trailing slash, absolute controlURL,
 * namespace prefixes and split text), the service choice, SSRF in the
 * description, values longer than fields, hostile XML (DOCTYPE, billion
 * laughs, XXE, HTML, deep nesting, element and byte caps, 10 MB), every-prefix
 * truncation and a description that ends at a guard page. */
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

#include "peer/portmap/igd.h"
#include "upnp_test_util.h"

static struct nb_url url(const char *s)
{
	struct nb_url u;
	assert_int_equal(nb_url_parse(s, strlen(s), &u), 0);
	return u;
}

static void assert_control(const struct nb_igd *g, const char *want)
{
	char buf[NB_URL_MAX + 1];
	assert_true(nb_url_format(&g->control, buf, sizeof(buf)) > 0);
	if (strcmp(buf, want) != 0)
		fail_msg("control URL %s, want %s", buf, want);
}

/* ---- Golden files -------------------------------------------------------- */

struct golden {
	const char *file;
	const char *location;
	int device_version;
	int service_version;
	bool ppp;
	const char *service_type;
	const char *control;
	const char *friendly_name;
	const char *manufacturer;
	const char *model_name;
};

static const struct golden goldens[] = {
	{ "rootDesc-miniupnpd.xml", "http://192.168.6.1:5000/rootDesc.xml", 2, 2, false,
	  "urn:schemas-upnp-org:service:WANIPConnection:2", "http://192.168.6.1:5000/ctl/IPConn",
	  "natlab r6 IGD", "Debian", "Debian router" },
	{ "igd-v1-ppp.xml", "http://192.168.1.1:1900/igd.xml", 1, 1, true,
	  "urn:schemas-upnp-org:service:WANPPPConnection:1",
	  "http://192.168.1.1:1900/upnp/control/WANPPPConn1", "DSL Router", "ACME", "DSL-1000" },
	{ "igd-urlbase-slash.xml", "http://192.168.1.1:1900/rootDesc.xml", 1, 1, false,
	  "urn:schemas-upnp-org:service:WANIPConnection:1",
	  "http://192.168.1.1:49152/upnp/control/WANIPConn1", "Home Gateway", "Example", "HG-1" },
	{ "igd-absolute-control.xml", "http://192.168.1.1:5431/dyndev/uuid:0011", 1, 1, false,
	  "urn:schemas-upnp-org:service:WANIPConnection:1",
	  "http://192.168.1.1:5432/uuid:0011-2233/WANIPConnection:1", "Broadcom ADSL Router", "", "" },
	{ "igd-ns-prefix.xml", "http://192.168.0.1:49000/igddesc.xml", 2, 2, false,
	  "urn:schemas-upnp-org:service:WANIPConnection:2", "http://192.168.0.1:49000/ctl/IP&Conn?x=1",
	  "Caf\xc3\xa9 & Bar   router", "", "" },
};

static void test_golden(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(goldens); i++) {
		const struct golden *c = &goldens[i];
		struct nb_url loc = url(c->location);
		size_t len;
		uint8_t *xml = nb_test_load(c->file, &len);
		struct nb_igd g;
		const char *why = NULL;

		if (nb_igd_parse(xml, len, &loc, &g, &why) != 0)
			fail_msg("%s: refused: %s", c->file, why);
		assert_int_equal(g.device_version, c->device_version);
		assert_int_equal(g.service_version, c->service_version);
		assert_int_equal(g.ppp, c->ppp);
		assert_string_equal(g.service_type, c->service_type);
		assert_control(&g, c->control);
		assert_string_equal(g.friendly_name, c->friendly_name);
		assert_string_equal(g.manufacturer, c->manufacturer);
		assert_string_equal(g.model_name, c->model_name);
		free(xml);
	}
}

struct bad_file {
	const char *file;
	const char *why;
};

static const struct bad_file bad_files[] = {
	{ "igd-html.html", "not a UPnP device description" },
	{ "igd-html-doctype.html", "DOCTYPE" },
	{ "igd-html-malformed.html", "not a UPnP device description" },
	{ "igd-billion-laughs.xml", "DOCTYPE" },
	{ "igd-xxe.xml", "DOCTYPE" },
	{ "igd-deep.xml", "deeper than NB_IGD_DEPTH_MAX" },
	{ "igd-scpd-WANIPCn.xml", "not a UPnP device description" },
	{ "soap-fault-718.xml", "not a UPnP device description" },
};

static void test_bad_files(void **state)
{
	struct nb_url loc = url("http://192.168.6.1:5000/rootDesc.xml");

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad_files); i++) {
		size_t len;
		uint8_t *xml = nb_test_load(bad_files[i].file, &len);
		struct nb_igd g, sentinel;
		const char *why = NULL;

		memset(&g, 0xA5, sizeof(g));
		sentinel = g;
		int rc = nb_igd_parse(xml, len, &loc, &g, &why);
		nb_test_assert_refused_for(bad_files[i].file, rc, why, bad_files[i].why, &g, &sentinel,
					   sizeof(g));
		free(xml);
	}
}

/* ---- Inline cases -------------------------------------------------------- */

#define HEAD "<?xml version=\"1.0\"?>\n<root xmlns=\"urn:schemas-upnp-org:device-1-0\">"
#define DEV(services)                                                                              \
	"<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>"     \
	"<friendlyName>T</friendlyName><serviceList>" services "</serviceList></device>"
#define SVC(type, ctl)                                                                             \
	"<service><serviceType>" type "</serviceType><controlURL>" ctl "</controlURL></service>"
#define IP1 "urn:schemas-upnp-org:service:WANIPConnection:1"
#define IP2 "urn:schemas-upnp-org:service:WANIPConnection:2"
#define PPP1 "urn:schemas-upnp-org:service:WANPPPConnection:1"
#define L3F "urn:schemas-upnp-org:service:Layer3Forwarding:1"
#define LOC "http://192.168.1.1:5000/desc/root.xml"

struct inline_case {
	const char *name;
	const char *xml;
	const char *why; /* NULL: accepted */
	const char *control;
	const char *service_type;
};

static const struct inline_case inline_cases[] = {
	{ "no URLBase, relative to LOCATION's directory", HEAD DEV(SVC(IP1, "ctl/ip")) "</root>", NULL,
	  "http://192.168.1.1:5000/desc/ctl/ip", IP1 },
	{ "URLBase without slash", HEAD "<URLBase>http://192.168.1.1:6000</URLBase>" DEV(SVC(IP1, "ctl")) "</root>",
	  NULL, "http://192.168.1.1:6000/ctl", IP1 },
	{ "URLBase with a path", HEAD "<URLBase>http://192.168.1.1:6000/a/b</URLBase>" DEV(SVC(IP1, "../ctl")) "</root>",
	  NULL, "http://192.168.1.1:6000/ctl", IP1 },
	{ "whitespace URLBase is no URLBase", HEAD "<URLBase> \n </URLBase>" DEV(SVC(IP1, "/c")) "</root>",
	  NULL, "http://192.168.1.1:5000/c", IP1 },
	{ "higher version first", HEAD DEV(SVC(IP1, "/one") SVC(IP2, "/two")) "</root>", NULL,
	  "http://192.168.1.1:5000/two", IP2 },
	{ "same version: document order", HEAD DEV(SVC(IP1, "/one") SVC(IP1, "/two")) "</root>", NULL,
	  "http://192.168.1.1:5000/one", IP1 },
	{ "IP before PPP", HEAD DEV(SVC(PPP1, "/ppp") SVC(IP1, "/ip")) "</root>", NULL,
	  "http://192.168.1.1:5000/ip", IP1 },
	{ "PPP when the IP one is unusable",
	  HEAD DEV(SVC(IP2, "http://127.0.0.1/ip") SVC(PPP1, "/ppp")) "</root>", NULL,
	  "http://192.168.1.1:5000/ppp", PPP1 },
	{ "PPP when the IP one has no controlURL",
	  HEAD DEV("<service><serviceType>" IP1 "</serviceType></service>" SVC(PPP1, "/ppp")) "</root>",
	  NULL, "http://192.168.1.1:5000/ppp", PPP1 },
	{ "controlURL before serviceType, comments, PI",
	  HEAD "<!-- c --><?pi x?>" DEV("<service><controlURL>/c<!-- x -->d</controlURL><serviceType>" IP1
				     "</serviceType></service>") "</root>",
	  NULL, "http://192.168.1.1:5000/cd", IP1 },
	{ "service type case", HEAD DEV(SVC("URN:schemas-upnp-org:service:wanipconnection:1", "/c")) "</root>",
	  NULL, "http://192.168.1.1:5000/c", "URN:schemas-upnp-org:service:wanipconnection:1" },
	{ "element names case", HEAD "<DEVICE><SERVICELIST><Service><SERVICETYPE>" IP1 "</SERVICETYPE>"
	  "<CONTROLURL>/c</CONTROLURL></Service></SERVICELIST></DEVICE></root>",
	  NULL, "http://192.168.1.1:5000/c", IP1 },
	{ "UTF-16 declared, UTF-8 sent", "<?xml version=\"1.0\" encoding=\"UTF-16\"?><root/>", "malformed", NULL, NULL },
	{ "ISO-8859-1 text", "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><root>" DEV(SVC(IP1, "/c\xe9")) "</root>",
	  "does not resolve", NULL, NULL },
	/* no usable service */
	{ "no services", HEAD DEV("") "</root>", "no WANIPConnection", NULL, NULL },
	{ "only Layer3Forwarding", HEAD DEV(SVC(L3F, "/l3f")) "</root>", "no WANIPConnection", NULL, NULL },
	{ "version 0", HEAD DEV(SVC("urn:schemas-upnp-org:service:WANIPConnection:0", "/c")) "</root>",
	  "no WANIPConnection", NULL, NULL },
	{ "version junk", HEAD DEV(SVC("urn:schemas-upnp-org:service:WANIPConnection:1a", "/c")) "</root>",
	  "no WANIPConnection", NULL, NULL },
	{ "service outside a serviceList", HEAD "<device><service><serviceType>" IP1 "</serviceType>"
	  "<controlURL>/c</controlURL></service></device></root>", "no WANIPConnection", NULL, NULL },
	{ "serviceType nested deeper", HEAD DEV("<service><x><serviceType>" IP1 "</serviceType></x>"
	  "<controlURL>/c</controlURL></service>") "</root>", "no WANIPConnection", NULL, NULL },
	{ "no controlURL", HEAD DEV("<service><serviceType>" IP1 "</serviceType></service>") "</root>",
	  "no controlURL", NULL, NULL },
	{ "empty controlURL", HEAD DEV(SVC(IP1, "  ")) "</root>", "no controlURL", NULL, NULL },
	/* SSRF in the description */
	{ "controlURL on loopback", HEAD DEV(SVC(IP1, "http://127.0.0.1:5000/ctl")) "</root>", "another host", NULL, NULL },
	{ "controlURL on another LAN host", HEAD DEV(SVC(IP1, "http://192.168.1.99/ctl")) "</root>", "another host", NULL, NULL },
	{ "controlURL on link-local", HEAD DEV(SVC(IP1, "http://169.254.169.254/")) "</root>", "another host", NULL, NULL },
	{ "URLBase on another host", HEAD "<URLBase>http://10.0.0.1:80/</URLBase>" DEV(SVC(IP1, "/ctl")) "</root>",
	  "another host", NULL, NULL },
	{ "bad URLBase, absolute controlURL", HEAD "<URLBase>http://router.lan/</URLBase>" DEV(SVC(IP1, "HTTP://192.168.1.1:5001/ctl")) "</root>",
	  NULL, "http://192.168.1.1:5001/ctl", IP1 },
	{ "URLBase with a host name", HEAD "<URLBase>http://router.lan/</URLBase>" DEV(SVC(IP1, "/ctl")) "</root>",
	  "URLBase is not", NULL, NULL },
	{ "URLBase https", HEAD "<URLBase>https://192.168.1.1/</URLBase>" DEV(SVC(IP1, "/ctl")) "</root>",
	  "URLBase is not", NULL, NULL },
	{ "controlURL https", HEAD DEV(SVC(IP1, "https://192.168.1.1/ctl")) "</root>", "does not resolve", NULL, NULL },
	{ "controlURL user info", HEAD DEV(SVC(IP1, "http://x@192.168.1.1/ctl")) "</root>", "does not resolve", NULL, NULL },
	{ "controlURL network path elsewhere", HEAD DEV(SVC(IP1, "//10.1.1.1/ctl")) "</root>", "another host", NULL, NULL },
	{ "controlURL with a space", HEAD DEV(SVC(IP1, "/a b")) "</root>", "does not resolve", NULL, NULL },
	/* XML shape */
	{ "root is not root", "<?xml version=\"1.0\"?><scpd>" DEV(SVC(IP1, "/c")) "</scpd>", "not a UPnP", NULL, NULL },
	{ "DOCTYPE without entities", "<?xml version=\"1.0\"?><!DOCTYPE root><root>" DEV(SVC(IP1, "/c")) "</root>",
	  "DOCTYPE", NULL, NULL },
	{ "DOCTYPE with a system id", "<!DOCTYPE root SYSTEM \"http://192.168.1.1/x.dtd\"><root/>", "DOCTYPE", NULL, NULL },
	{ "undefined entity", HEAD DEV(SVC(IP1, "/c&foo;")) "</root>", "malformed", NULL, NULL },
	{ "two roots", HEAD DEV(SVC(IP1, "/c")) "</root><root/>", "malformed", NULL, NULL },
	{ "unclosed", HEAD DEV(SVC(IP1, "/c")), "malformed", NULL, NULL },
	{ "empty", "", "malformed", NULL, NULL },
	{ "text only", "hello", "malformed", NULL, NULL },
	{ "NUL character reference", HEAD DEV(SVC(IP1, "/c&#0;")) "</root>", "malformed", NULL, NULL },
};

static void test_inline(void **state)
{
	struct nb_url loc = url(LOC);

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(inline_cases); i++) {
		const struct inline_case *c = &inline_cases[i];
		struct nb_igd g, sentinel;
		const char *why = NULL;

		memset(&g, 0x5A, sizeof(g));
		sentinel = g;
		int rc = nb_igd_parse((const uint8_t *)c->xml, strlen(c->xml), &loc, &g, &why);
		if (c->why == NULL) {
			if (rc != 0)
				fail_msg("%s: refused: %s", c->name, why);
			assert_control(&g, c->control);
			assert_string_equal(g.service_type, c->service_type);
			continue;
		}
		nb_test_assert_refused_for(c->name, rc, why, c->why, &g, &sentinel, sizeof(g));
	}
}

/* ---- Lengths ------------------------------------------------------------- */

static int parse_str(const char *xml, struct nb_igd *g, const char **why)
{
	struct nb_url loc = url(LOC);
	return nb_igd_parse((const uint8_t *)xml, strlen(xml), &loc, g, why);
}

/* Values that matter are refused when longer than their field, never cut;
 * display values are cut. */
static void test_lengths(void **state)
{
	char *xml = malloc(8192);
	char val[1024];
	struct nb_igd g;
	const char *why = NULL;

	(void)state;
	assert_non_null(xml);
	/* controlURL of NB_URL_MAX bytes: the resolved URL is longer: refused */
	val[0] = '/';
	memset(val + 1, 'c', NB_URL_MAX - 1);
	val[NB_URL_MAX] = '\0';
	snprintf(xml, 8192, HEAD DEV("<service><serviceType>" IP1 "</serviceType><controlURL>%s</controlURL></service>") "</root>", val);
	assert_int_equal(parse_str(xml, &g, &why), -EINVAL);
	assert_non_null(strstr(why, "does not resolve"));
	/* the longest that fits: "http://192.168.1.1:5000" is 23 bytes */
	val[NB_URL_MAX - 23] = '\0';
	snprintf(xml, 8192, HEAD DEV("<service><serviceType>" IP1 "</serviceType><controlURL>%s</controlURL></service>") "</root>", val);
	assert_int_equal(parse_str(xml, &g, &why), 0);
	assert_int_equal(strlen(g.control.path), NB_URL_MAX - 23);
	/* one more byte than the text field: refused as too long */
	memset(val + 1, 'c', NB_URL_MAX);
	val[NB_URL_MAX + 1] = '\0';
	snprintf(xml, 8192, HEAD DEV("<service><serviceType>" IP1 "</serviceType><controlURL>%s</controlURL></service>") "</root>", val);
	assert_int_equal(parse_str(xml, &g, &why), -EINVAL);
	assert_non_null(strstr(why, "controlURL is longer"));
	/* the same length on a service we do not use is ignored */
	snprintf(xml, 8192, HEAD DEV("<service><serviceType>" L3F "</serviceType><controlURL>%s</controlURL></service>" SVC(IP1, "/c")) "</root>", val);
	assert_int_equal(parse_str(xml, &g, &why), 0);
	/* whitespace around a value does not count towards its length */
	memset(val, ' ', 600);
	val[600] = '\0';
	snprintf(xml, 8192, HEAD DEV("<service><serviceType>" IP1 "</serviceType><controlURL>%s/c%s</controlURL></service>") "</root>", val, val);
	assert_int_equal(parse_str(xml, &g, &why), 0);
	assert_string_equal(g.control.path, "/c");

	/* serviceType: a WAN connection type of 129 bytes refuses, another
	 * service's is ignored */
	memset(val, 'a', 129);
	memcpy(val, IP1, strlen(IP1) - 1);
	val[129] = '\0';
	snprintf(xml, 8192, HEAD DEV("<service><serviceType>%s</serviceType><controlURL>/c</controlURL></service>") "</root>", val);
	assert_int_equal(parse_str(xml, &g, &why), -EINVAL);
	assert_non_null(strstr(why, "serviceType is longer"));
	memcpy(val, L3F, strlen(L3F) - 1);
	snprintf(xml, 8192, HEAD DEV("<service><serviceType>%s</serviceType><controlURL>/c</controlURL></service>" SVC(PPP1, "/p")) "</root>", val);
	assert_int_equal(parse_str(xml, &g, &why), 0);
	assert_string_equal(g.service_type, PPP1);
	/* a version of 4 digits is no version */
	snprintf(xml, 8192, HEAD DEV(SVC(IP1 "000", "/c")) "</root>");
	assert_int_equal(parse_str(xml, &g, &why), -EINVAL);
	snprintf(xml, 8192, HEAD DEV(SVC(IP1 "00", "/c")) "</root>");
	assert_int_equal(parse_str(xml, &g, &why), 0);
	assert_int_equal(g.service_version, 100);

	/* URLBase of NB_URL_MAX + 1 bytes */
	memcpy(val, "http://192.168.1.1/", 19);
	memset(val + 19, 'b', NB_URL_MAX + 1 - 19);
	val[NB_URL_MAX + 1] = '\0';
	snprintf(xml, 8192, HEAD "<URLBase>%s</URLBase>" DEV(SVC(IP1, "/c")) "</root>", val);
	assert_int_equal(parse_str(xml, &g, &why), -EINVAL);
	assert_non_null(strstr(why, "URLBase is longer"));

	/* friendlyName of 300 bytes: cut to 128 for display, at a UTF-8 boundary */
	memset(val, 'f', 127);
	memcpy(val + 127, "\xc3\xa9", 2);
	memset(val + 129, 'g', 171);
	val[300] = '\0';
	snprintf(xml, 8192, HEAD "<device><friendlyName>%s</friendlyName><manufacturer>M\tN</manufacturer>"
		 "<serviceList>" SVC(IP1, "/c") "</serviceList></device></root>", val);
	assert_int_equal(parse_str(xml, &g, &why), 0);
	assert_int_equal(strlen(g.friendly_name), 127);
	assert_string_equal(g.manufacturer, "M N");
	assert_int_equal(g.device_version, 0);
	free(xml);
}

/* ---- Caps ---------------------------------------------------------------- */

/* A valid description padded with whitespace to exactly n bytes. */
static char *padded(size_t n)
{
	static const char doc[] = HEAD DEV(SVC(IP1, "/c")) "</root>";
	char *xml = malloc(n);

	assert_non_null(xml);
	assert_true(n >= sizeof(doc) - 1);
	memcpy(xml, doc, sizeof(doc) - 1);
	memset(xml + sizeof(doc) - 1, ' ', n - (sizeof(doc) - 1));
	return xml;
}

static void test_byte_cap(void **state)
{
	struct nb_url loc = url(LOC);
	struct nb_igd g;
	const char *why = NULL;
	char *xml = padded(NB_IGD_XML_MAX + 1);
	size_t big = 10u << 20;
	struct timespec t0, t1;

	(void)state;
	assert_int_equal(nb_igd_parse((uint8_t *)xml, NB_IGD_XML_MAX, &loc, &g, &why), 0);
	assert_int_equal(nb_igd_parse((uint8_t *)xml, NB_IGD_XML_MAX + 1, &loc, &g, &why), -EINVAL);
	assert_non_null(strstr(why, "NB_IGD_XML_MAX"));
	free(xml);

	/* 10 MB: refused by the cap before expat sees a byte */
	xml = padded(big);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(nb_igd_parse((uint8_t *)xml, big, &loc, &g, &why), -EINVAL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_non_null(strstr(why, "NB_IGD_XML_MAX"));
	assert_true((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 100000000L);
	free(xml);
}

/* n elements in all: <root>, the 5 of the service, and fillers. */
static char *with_elements(size_t n, size_t *len)
{
	static const char head[] = "<root><device><serviceList>" SVC(IP1, "/c") "</serviceList>";
	static const char tail[] = "</device></root>";
	size_t fillers = n - 6;
	char *xml = malloc(sizeof(head) + fillers * 4 + sizeof(tail));
	size_t off = 0;

	assert_non_null(xml);
	memcpy(xml, head, sizeof(head) - 1);
	off = sizeof(head) - 1;
	for (size_t i = 0; i < fillers; i++) {
		memcpy(xml + off, "<x/>", 4);
		off += 4;
	}
	memcpy(xml + off, tail, sizeof(tail) - 1);
	*len = off + sizeof(tail) - 1;
	return xml;
}

static void test_element_cap(void **state)
{
	struct nb_url loc = url(LOC);
	struct nb_igd g;
	const char *why = NULL;
	size_t len;
	char *xml;

	(void)state;
	xml = with_elements(NB_IGD_ELEMENTS_MAX, &len);
	assert_true(len <= NB_IGD_XML_MAX);
	assert_int_equal(nb_igd_parse((uint8_t *)xml, len, &loc, &g, &why), 0);
	free(xml);
	xml = with_elements(NB_IGD_ELEMENTS_MAX + 1, &len);
	assert_int_equal(nb_igd_parse((uint8_t *)xml, len, &loc, &g, &why), -EINVAL);
	assert_non_null(strstr(why, "NB_IGD_ELEMENTS_MAX"));
	free(xml);
}

/* The service at depth 6 and a branch of <x> nested to `depth` in all. */
static void test_depth_cap(void **state)
{
	struct nb_url loc = url(LOC);
	char xml[4096];

	(void)state;
	for (int depth = NB_IGD_DEPTH_MAX - 1; depth <= NB_IGD_DEPTH_MAX + 1; depth++) {
		struct nb_igd g;
		const char *why = NULL;
		size_t off = 0;
		int n = depth - 2; /* <root><device> then the <x>s */

		off += (size_t)snprintf(xml + off, sizeof(xml) - off,
					"<root><device><serviceList>" SVC(IP1, "/c") "</serviceList>");
		for (int i = 0; i < n; i++)
			off += (size_t)snprintf(xml + off, sizeof(xml) - off, "<x>");
		for (int i = 0; i < n; i++)
			off += (size_t)snprintf(xml + off, sizeof(xml) - off, "</x>");
		off += (size_t)snprintf(xml + off, sizeof(xml) - off, "</device></root>");
		int rc = nb_igd_parse((uint8_t *)xml, off, &loc, &g, &why);
		if (depth <= NB_IGD_DEPTH_MAX) {
			assert_int_equal(rc, 0);
		} else {
			assert_int_equal(rc, -EINVAL);
			assert_non_null(strstr(why, "NB_IGD_DEPTH_MAX"));
		}
	}
}

/* Thousands of nested elements: stopped at the cap, not a stack overflow. */
static void test_very_deep(void **state)
{
	struct nb_url loc = url(LOC);
	size_t n = 8000, len = 6 + n * 7 + 7; /* under NB_IGD_XML_MAX */
	char *xml = malloc(len);
	struct nb_igd g;
	const char *why = NULL;
	size_t off = 0;

	(void)state;
	assert_non_null(xml);
	memcpy(xml, "<root>", 6);
	off = 6;
	for (size_t i = 0; i < n; i++, off += 3)
		memcpy(xml + off, "<a>", 3);
	for (size_t i = 0; i < n; i++, off += 4)
		memcpy(xml + off, "</a>", 4);
	memcpy(xml + off, "</root>", 7);
	off += 7;
	assert_true(off <= len);
	assert_int_equal(nb_igd_parse((uint8_t *)xml, off, &loc, &g, &why), -EINVAL);
	if (strstr(why, "NB_IGD_DEPTH_MAX") == NULL)
		fail_msg("why: %s", why);
	free(xml);
}

static void test_args(void **state)
{
	struct nb_url loc = url(LOC);
	struct nb_igd g;
	const char *why = NULL;
	static const char doc[] = HEAD DEV(SVC(IP1, "/c")) "</root>";

	(void)state;
	assert_int_equal(nb_igd_parse(NULL, 0, &loc, &g, &why), -EINVAL);
	assert_int_equal(nb_igd_parse((const uint8_t *)doc, sizeof(doc) - 1, NULL, &g, &why), -EINVAL);
	assert_int_equal(nb_igd_parse((const uint8_t *)doc, sizeof(doc) - 1, &loc, NULL, &why), -EINVAL);
	assert_int_equal(nb_igd_parse((const uint8_t *)doc, sizeof(doc) - 1, &loc, &g, NULL), 0);
	assert_int_equal(nb_igd_parse((const uint8_t *)doc, 10, &loc, &g, NULL), -EINVAL);
}

/* ---- Truncation and guard page ------------------------------------------- */

static void test_truncation(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(goldens); i++) {
		struct nb_url loc = url(goldens[i].location);
		size_t len;
		uint8_t *xml = nb_test_load(goldens[i].file, &len);

		for (size_t k = 0; k < len; k++) {
			uint8_t *p = nb_test_copy(xml, k);
			struct nb_igd g, sentinel;
			const char *why = NULL;

			memset(&g, 0xA5, sizeof(g));
			sentinel = g;
			int rc = nb_igd_parse(p, k, &loc, &g, &why);
			if (rc == 0) /* only a cut in the trailing whitespace can still parse */
				nb_test_assert_only(xml + k, len - k, "\n\r ");
			else
				nb_test_assert_refused(rc, why, &g, &sentinel, sizeof(g));
			free(p);
		}
		free(xml);
	}
}

static void test_guard_page(void **state)
{
	struct nb_test_guard gp;

	(void)state;
	nb_test_guard_open(&gp);
	for (size_t i = 0; i < ARRAY_LEN(goldens); i++) {
		struct nb_url loc = url(goldens[i].location);
		size_t len;
		uint8_t *xml = nb_test_load(goldens[i].file, &len);

		assert_true(len <= gp.pg);
		for (size_t k = len > 64 ? len - 64 : 0; k <= len; k++) {
			struct nb_igd g;
			const char *why;
			int rc = nb_igd_parse(nb_test_guard_place(&gp, xml, k), k, &loc, &g, &why);
			if (k == len)
				assert_int_equal(rc, 0);
			else
				assert_true(rc == 0 || rc == -EINVAL);
		}
		free(xml);
	}
	nb_test_guard_close(&gp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_inline),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_byte_cap),
		cmocka_unit_test(test_element_cap),
		cmocka_unit_test(test_depth_cap),
		cmocka_unit_test(test_very_deep),
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_guard_page),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
