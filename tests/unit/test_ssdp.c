/* tests/unit/test_ssdp.c - SSDP: the M-SEARCH against the capture, argument
 * checks, the miniupnpd reply (golden), header matching, forged and
 * malformed replies (SSRF LOCATIONs, bare CR, NUL, repeats), every-prefix
 * truncation and a reply that ends at a guard page. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer/portmap/ssdp.h"
#include "upnp_test_util.h"

static struct nb_addr addr(const char *s)
{
	struct nb_addr a;
	assert_int_equal(nb_addr_parse(s, true, &a), 0);
	return a;
}

/* ---- M-SEARCH ------------------------------------------------------------ */

/* Byte for byte the request miniupnpc sent (natlab/captures/ssdp-msearch.txt). */
static void test_msearch_golden(void **state)
{
	static const char want[] = "M-SEARCH * HTTP/1.1\r\n"
				   "HOST: 239.255.255.250:1900\r\n"
				   "MAN: \"ssdp:discover\"\r\n"
				   "MX: 1\r\n"
				   "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
				   "\r\n";
	char buf[512];
	size_t n = sizeof(want) - 1;

	(void)state;
	assert_int_equal(nb_ssdp_build_msearch(nb_ssdp_targets[1], 1, buf, sizeof(buf)), (int)n);
	assert_memory_equal(buf, want, n + 1);
	for (size_t cap = 0; cap <= n; cap++)
		assert_int_equal(nb_ssdp_build_msearch(nb_ssdp_targets[1], 1, buf, cap), -ENOSPC);
	assert_int_equal(nb_ssdp_build_msearch(nb_ssdp_targets[1], 1, buf, n + 1), (int)n);
	assert_int_equal(nb_ssdp_build_msearch(nb_ssdp_targets[1], 2, buf, sizeof(buf)), (int)n);
	assert_non_null(strstr(buf, "\r\nMX: 2\r\n"));
}

static void test_msearch_targets(void **state)
{
	static const char *const want[NB_SSDP_TARGET_COUNT] = {
		"urn:schemas-upnp-org:device:InternetGatewayDevice:2",
		"urn:schemas-upnp-org:device:InternetGatewayDevice:1",
		"urn:schemas-upnp-org:service:WANIPConnection:2",
		"urn:schemas-upnp-org:service:WANIPConnection:1",
		"urn:schemas-upnp-org:service:WANPPPConnection:1",
	};
	char buf[512], line[160];

	(void)state;
	for (size_t i = 0; i < NB_SSDP_TARGET_COUNT; i++) {
		assert_string_equal(nb_ssdp_targets[i], want[i]);
		assert_true(nb_ssdp_build_msearch(nb_ssdp_targets[i], 2, buf, sizeof(buf)) > 0);
		snprintf(line, sizeof(line), "\r\nST: %s\r\n\r\n", want[i]);
		assert_non_null(strstr(buf, line));
	}
}

static void test_msearch_invalid(void **state)
{
	char st[200], buf[512];

	(void)state;
	memset(st, 'a', sizeof(st));
	st[128] = '\0';
	assert_int_equal(nb_ssdp_build_msearch(st, 2, buf, sizeof(buf)), 86 + 128);
	st[128] = 'a';
	st[129] = '\0';
	assert_int_equal(nb_ssdp_build_msearch(st, 2, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(nb_ssdp_build_msearch("", 2, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(nb_ssdp_build_msearch(NULL, 2, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(nb_ssdp_build_msearch("ssdp:all\r\nX: y", 2, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(nb_ssdp_build_msearch("ssdp:all\n", 2, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(nb_ssdp_build_msearch("ssdp:all\r", 2, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(nb_ssdp_build_msearch("ssdp:all", 0, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(nb_ssdp_build_msearch("ssdp:all", 6, buf, sizeof(buf)), -EINVAL);
	assert_true(nb_ssdp_build_msearch("ssdp:all", 5, buf, sizeof(buf)) > 0);
	assert_int_equal(nb_ssdp_build_msearch("ssdp:all", 2, NULL, 0), -EINVAL);
}

/* ---- Replies ------------------------------------------------------------- */

static void test_reply_golden(void **state)
{
	size_t len;
	uint8_t *buf = nb_test_load("ssdp-reply-miniupnpd.txt", &len);
	struct nb_addr from = addr("192.168.6.1:1900");
	struct nb_ssdp_reply r;
	const char *why = NULL;
	char url[NB_URL_MAX + 1];

	(void)state;
	assert_int_equal(nb_ssdp_parse_reply(buf, len, &from, 0, &r, &why), 0);
	assert_true(nb_url_format(&r.location, url, sizeof(url)) > 0);
	assert_string_equal(url, "http://192.168.6.1:5000/rootDesc.xml");
	assert_string_equal(r.st, "urn:schemas-upnp-org:device:InternetGatewayDevice:1");
	assert_string_equal(r.usn, "uuid:3d3f0e6c-5a1b-4c2d-9e8f-000000000006::"
				   "urn:schemas-upnp-org:device:InternetGatewayDevice:1");
	assert_string_equal(r.server, "Debian/6.18.44-fc-v657 UPnP/1.1 MiniUPnPd/2.3.1");
	/* the port of the responder does not matter, its IP does */
	from = addr("192.168.6.1:51234");
	assert_int_equal(nb_ssdp_parse_reply(buf, len, &from, 0, &r, &why), 0);
	from = addr("192.168.6.2:1900");
	assert_int_equal(nb_ssdp_parse_reply(buf, len, &from, 0, &r, &why), -EINVAL);
	assert_non_null(strstr(why, "not the address the reply came from"));
	assert_int_equal(nb_ssdp_parse_reply(buf, len, &from, NB_SSDP_ANY_HOST, &r, &why), 0);
	assert_int_equal(nb_ssdp_parse_reply(buf, len, NULL, 0, &r, &why), -EINVAL);
	assert_int_equal(nb_ssdp_parse_reply(buf, len, NULL, NB_SSDP_ANY_HOST, &r, &why), 0);
	free(buf);
}

struct reply_case {
	const char *name;
	const char *msg;
	unsigned flags;
	const char *why; /* substring of *why; NULL: accepted */
	const char *location; /* expected, formatted, when accepted */
};

#define OK200 "HTTP/1.1 200 OK\r\n"
#define ST_IGD1 "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
#define LOC "LOCATION: http://192.168.6.1:5000/rootDesc.xml\r\n"
#define LOC_URL "http://192.168.6.1:5000/rootDesc.xml"

static const struct reply_case reply_cases[] = {
	{ "minimal", OK200 ST_IGD1 LOC "\r\n", 0, NULL, LOC_URL },
	{ "no final empty line", OK200 ST_IGD1 LOC, 0, NULL, LOC_URL },
	{ "lower case, no space after colon, LF only",
	  "HTTP/1.1 200 OK\nst:urn:schemas-upnp-org:device:InternetGatewayDevice:2\n"
	  "location:http://192.168.6.1:49152/desc.xml\n\n",
	  0, NULL, "http://192.168.6.1:49152/desc.xml" },
	{ "mixed case, tabs and trailing blanks",
	  "HTTP/1.1 200 OK\r\nSt:\turn:schemas-upnp-org:service:WANIPConnection:2 \t\r\n"
	  "Location:   http://192.168.6.1/d.xml  \r\n\r\n",
	  0, NULL, "http://192.168.6.1/d.xml" },
	{ "status without reason", "HTTP/1.1 200\r\n" ST_IGD1 LOC "\r\n", 0, NULL, LOC_URL },
	{ "rootdevice", OK200 "ST: upnp:rootdevice\r\n" LOC "\r\n", 0, NULL, LOC_URL },
	{ "WANPPPConnection:1",
	  OK200 "ST: urn:schemas-upnp-org:service:WANPPPConnection:1\r\n" LOC "\r\n", 0, NULL,
	  LOC_URL },
	{ "body after the headers is ignored", OK200 ST_IGD1 LOC "\r\nLOCATION: http://10.9.9.9/\r\n",
	  0, NULL, LOC_URL },
	{ "folded line is not a header",
	  OK200 ST_IGD1 LOC " LOCATION: http://192.168.6.1:1/x\r\n\tST: ssdp:all\r\n\r\n", 0, NULL,
	  LOC_URL },
	{ "names must match exactly",
	  OK200 ST_IGD1 "X-LOCATION: http://10.0.0.9/\r\nLOCATIONS: http://10.0.0.9/\r\n" LOC
		"SERVER: x LOCATION: http://10.0.0.9/\r\n\r\n",
	  0, NULL, LOC_URL },
	{ "any host flag", OK200 ST_IGD1 "LOCATION: http://10.0.0.5:5000/d.xml\r\n\r\n",
	  NB_SSDP_ANY_HOST, NULL, "http://10.0.0.5:5000/d.xml" },
	/* status line */
	{ "NOTIFY", "NOTIFY * HTTP/1.1\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n" LOC "\r\n", 0,
	  "not an HTTP/1.1 200", NULL },
	{ "M-SEARCH", "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n" ST_IGD1 "\r\n", 0,
	  "not an HTTP/1.1 200", NULL },
	{ "404", "HTTP/1.1 404 Not Found\r\n" ST_IGD1 LOC "\r\n", 0, "not an HTTP/1.1 200", NULL },
	{ "HTTP/1.0", "HTTP/1.0 200 OK\r\n" ST_IGD1 LOC "\r\n", 0, "not an HTTP/1.1 200", NULL },
	{ "2000", "HTTP/1.1 2000 OK\r\n" ST_IGD1 LOC "\r\n", 0, "not an HTTP/1.1 200", NULL },
	{ "leading blank line", "\r\n" OK200 ST_IGD1 LOC "\r\n", 0, "not an HTTP/1.1 200", NULL },
	{ "empty", "", 0, "empty", NULL },
	/* ST */
	{ "no ST", OK200 LOC "\r\n", 0, "no ST", NULL },
	{ "ST media renderer",
	  OK200 "ST: urn:schemas-upnp-org:device:MediaRenderer:1\r\n" LOC "\r\n", 0, "ST names no",
	  NULL },
	{ "ST ssdp:all", OK200 "ST: ssdp:all\r\n" LOC "\r\n", 0, "ST names no", NULL },
	{ "ST without version",
	  OK200 "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:\r\n" LOC "\r\n", 0,
	  "ST names no", NULL },
	{ "ST version 0",
	  OK200 "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:0\r\n" LOC "\r\n", 0,
	  "ST names no", NULL },
	{ "ST version junk",
	  OK200 "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1x\r\n" LOC "\r\n", 0,
	  "ST names no", NULL },
	{ "ST twice", OK200 ST_IGD1 ST_IGD1 LOC "\r\n", 0, "repeated", NULL },
	/* LOCATION: SSRF and shape */
	{ "no LOCATION", OK200 ST_IGD1 "\r\n", 0, "no LOCATION", NULL },
	{ "LOCATION twice", OK200 ST_IGD1 LOC LOC "\r\n", 0, "repeated", NULL },
	{ "LOCATION twice, second elsewhere",
	  OK200 ST_IGD1 LOC "Location: http://10.0.0.1/x\r\n\r\n", 0, "repeated", NULL },
	{ "https", OK200 ST_IGD1 "LOCATION: https://192.168.6.1:5000/rootDesc.xml\r\n\r\n", 0,
	  "LOCATION is not", NULL },
	{ "host name", OK200 ST_IGD1 "LOCATION: http://router.lan:5000/rootDesc.xml\r\n\r\n", 0,
	  "LOCATION is not", NULL },
	{ "user info", OK200 ST_IGD1 "LOCATION: http://a@192.168.6.1:5000/rootDesc.xml\r\n\r\n", 0,
	  "LOCATION is not", NULL },
	{ "user info 2", OK200 ST_IGD1 "LOCATION: http://192.168.6.1@10.0.0.1/x\r\n\r\n", 0,
	  "LOCATION is not", NULL },
	{ "IPv6", OK200 ST_IGD1 "LOCATION: http://[fe80::1]:5000/x\r\n\r\n", 0, "LOCATION is not",
	  NULL },
	{ "empty LOCATION", OK200 ST_IGD1 "LOCATION:\r\n\r\n", 0, "LOCATION is not", NULL },
	{ "loopback", OK200 ST_IGD1 "LOCATION: http://127.0.0.1:5000/x\r\n\r\n", NB_SSDP_ANY_HOST,
	  "loopback", NULL },
	{ "link-local", OK200 ST_IGD1 "LOCATION: http://169.254.169.254/latest/meta-data/\r\n\r\n",
	  NB_SSDP_ANY_HOST, "link-local", NULL },
	{ "multicast", OK200 ST_IGD1 "LOCATION: http://224.0.0.1/x\r\n\r\n", NB_SSDP_ANY_HOST,
	  "multicast", NULL },
	{ "unspecified", OK200 ST_IGD1 "LOCATION: http://0.0.0.0:5000/x\r\n\r\n", NB_SSDP_ANY_HOST,
	  "unspecified", NULL },
	{ "broadcast", OK200 ST_IGD1 "LOCATION: http://255.255.255.255/x\r\n\r\n", NB_SSDP_ANY_HOST,
	  "broadcast", NULL },
	{ "another LAN host", OK200 ST_IGD1 "LOCATION: http://192.168.6.7:80/admin\r\n\r\n", 0,
	  "not the address", NULL },
	{ "public host", OK200 ST_IGD1 "LOCATION: http://198.51.100.1/x\r\n\r\n", 0,
	  "not the address", NULL },
	/* framing */
	{ "bare CR", OK200 ST_IGD1 "LOCATION: http://192.168.6.1:5000/x\rST: ssdp:all\r\n\r\n", 0,
	  "bare CR", NULL },
	{ "CR CR LF", OK200 ST_IGD1 LOC "\r\r\n", 0, "bare CR", NULL },
	{ "unterminated last line", OK200 ST_IGD1 "LOCATION: http://192.168.6.1:5000/x", 0,
	  "past the end", NULL },
	{ "unterminated status line", "HTTP/1.1 200 OK", 0, "past the end", NULL },
};

static void test_reply_table(void **state)
{
	struct nb_addr from = addr("192.168.6.1:1900");

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(reply_cases); i++) {
		const struct reply_case *c = &reply_cases[i];
		struct nb_ssdp_reply r, sentinel;
		const char *why = NULL;
		char url[NB_URL_MAX + 1];

		memset(&r, 0xA5, sizeof(r));
		sentinel = r;
		int rc = nb_ssdp_parse_reply((const uint8_t *)c->msg, strlen(c->msg), &from, c->flags,
					     &r, &why);
		if (c->why == NULL) {
			if (rc != 0)
				fail_msg("%s: refused (%s)", c->name, why);
			assert_true(nb_url_format(&r.location, url, sizeof(url)) > 0);
			assert_string_equal(url, c->location);
			continue;
		}
		nb_test_assert_refused_for(c->name, rc, why, c->why, &r, &sentinel, sizeof(r));
	}
}

static void test_reply_nul(void **state)
{
	static const char msg[] = OK200 ST_IGD1 "LOCATION: http://192.168.6.1:5000/x\0.xml\r\n\r\n";
	struct nb_addr from = addr("192.168.6.1:1900");
	struct nb_ssdp_reply r;
	const char *why = NULL;

	(void)state;
	assert_int_equal(nb_ssdp_parse_reply((const uint8_t *)msg, sizeof(msg) - 1, &from, 0, &r, &why),
			 -EINVAL);
	assert_non_null(strstr(why, "NUL"));
}

/* Field sizes: USN longer than its field refuses; SERVER is cut for display
 * (at a UTF-8 boundary, controls replaced); LOCATION longer than
 * NB_URL_MAX refuses; the datagram cap. */
static void test_reply_sizes(void **state)
{
	char msg[NB_SSDP_REPLY_MAX + 64], val[600];
	struct nb_addr from = addr("192.168.6.1:1900");
	struct nb_ssdp_reply r;
	const char *why = NULL;
	int n;

	(void)state;
	memset(val, 'u', sizeof(val));
	val[256] = '\0';
	n = snprintf(msg, sizeof(msg), OK200 ST_IGD1 LOC "USN: %s\r\n\r\n", val);
	assert_int_equal(nb_ssdp_parse_reply((uint8_t *)msg, (size_t)n, &from, 0, &r, &why), 0);
	assert_int_equal(strlen(r.usn), 256);
	val[256] = 'u';
	val[257] = '\0';
	n = snprintf(msg, sizeof(msg), OK200 ST_IGD1 LOC "USN: %s\r\n\r\n", val);
	assert_int_equal(nb_ssdp_parse_reply((uint8_t *)msg, (size_t)n, &from, 0, &r, &why), -EINVAL);
	assert_non_null(strstr(why, "USN"));

	/* SERVER: 127 ASCII bytes then a 2-byte character straddling byte 128 */
	memset(val, 's', 127);
	memcpy(val + 127, "\xc3\xa9 tail\x01", 8);
	val[135] = '\0';
	n = snprintf(msg, sizeof(msg), OK200 ST_IGD1 LOC "SERVER: %s\r\n\r\n", val);
	assert_int_equal(nb_ssdp_parse_reply((uint8_t *)msg, (size_t)n, &from, 0, &r, &why), 0);
	assert_int_equal(strlen(r.server), 127);
	n = snprintf(msg, sizeof(msg), OK200 ST_IGD1 LOC "SERVER: a\x01" "b\x7f\r\n\r\n");
	assert_int_equal(nb_ssdp_parse_reply((uint8_t *)msg, (size_t)n, &from, 0, &r, &why), 0);
	assert_string_equal(r.server, "a?b?");

	/* LOCATION of exactly NB_URL_MAX bytes, then one more */
	memcpy(val, "http://192.168.6.1:5000/", 24);
	memset(val + 24, 'p', NB_URL_MAX - 24);
	val[NB_URL_MAX] = '\0';
	n = snprintf(msg, sizeof(msg), OK200 ST_IGD1 "LOCATION: %s\r\n\r\n", val);
	assert_int_equal(nb_ssdp_parse_reply((uint8_t *)msg, (size_t)n, &from, 0, &r, &why), 0);
	val[NB_URL_MAX] = 'p';
	val[NB_URL_MAX + 1] = '\0';
	n = snprintf(msg, sizeof(msg), OK200 ST_IGD1 "LOCATION: %s\r\n\r\n", val);
	assert_int_equal(nb_ssdp_parse_reply((uint8_t *)msg, (size_t)n, &from, 0, &r, &why), -EINVAL);
	assert_non_null(strstr(why, "LOCATION is not"));

	/* ST of 129 bytes */
	memset(val, '1', sizeof(val));
	val[129 - 50] = '\0'; /* the prefix is 50 bytes */
	n = snprintf(msg, sizeof(msg), OK200 "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:%s\r\n" LOC "\r\n", val);
	assert_int_equal(nb_ssdp_parse_reply((uint8_t *)msg, (size_t)n, &from, 0, &r, &why), -EINVAL);
	assert_non_null(strstr(why, "ST longer"));

	/* a padded reply of exactly NB_SSDP_REPLY_MAX bytes, then one more */
	n = snprintf(msg, sizeof(msg), OK200 ST_IGD1 LOC "X-PAD: ");
	memset(msg + n, 'x', NB_SSDP_REPLY_MAX - (size_t)n - 4);
	memcpy(msg + NB_SSDP_REPLY_MAX - 4, "\r\n\r\n", 4);
	assert_int_equal(nb_ssdp_parse_reply((uint8_t *)msg, NB_SSDP_REPLY_MAX, &from, 0, &r, &why), 0);
	memmove(msg + n + 1, msg + n, NB_SSDP_REPLY_MAX - (size_t)n);
	assert_int_equal(nb_ssdp_parse_reply((uint8_t *)msg, NB_SSDP_REPLY_MAX + 1, &from, 0, &r, &why),
			 -EINVAL);
	assert_non_null(strstr(why, "NB_SSDP_REPLY_MAX"));
	assert_int_equal(nb_ssdp_parse_reply(NULL, 0, &from, 0, &r, &why), -EINVAL);
}

/* Every prefix of the golden reply, from an exact-size heap copy: accepted
 * or refused cleanly, *ret untouched when refused. */
static void test_truncation(void **state)
{
	size_t len;
	uint8_t *buf = nb_test_load("ssdp-reply-miniupnpd.txt", &len);
	struct nb_addr from = addr("192.168.6.1:1900");
	size_t accepted = 0;

	(void)state;
	for (size_t k = 0; k <= len; k++) {
		uint8_t *p = nb_test_copy(buf, k);
		struct nb_ssdp_reply r, sentinel;
		const char *why = NULL;

		memset(&r, 0x5A, sizeof(r));
		sentinel = r;
		int rc = nb_ssdp_parse_reply(p, k, &from, 0, &r, &why);
		if (rc == 0)
			accepted++;
		else
			nb_test_assert_refused(rc, why, &r, &sentinel, sizeof(r));
		free(p);
	}
	/* Only whole lines after LOCATION's can be accepted. */
	assert_true(accepted >= 1 && accepted <= 6);
	free(buf);
}

static void test_guard_page(void **state)
{
	size_t len;
	uint8_t *buf = nb_test_load("ssdp-reply-miniupnpd.txt", &len);
	struct nb_addr from = addr("192.168.6.1:1900");
	struct nb_test_guard gp;

	(void)state;
	nb_test_guard_open(&gp);
	assert_true(gp.pg >= len);
	for (size_t k = 0; k <= len; k++) {
		struct nb_ssdp_reply r;
		const char *why;
		int rc = nb_ssdp_parse_reply(nb_test_guard_place(&gp, buf, k), k, &from, 0, &r, &why);
		if (k == len)
			assert_int_equal(rc, 0);
		else
			assert_true(rc == 0 || rc == -EINVAL);
	}
	for (size_t i = 0; i < ARRAY_LEN(reply_cases); i++) {
		const char *m = reply_cases[i].msg;
		size_t n = strlen(m);
		struct nb_ssdp_reply r;
		const char *why;
		int rc = nb_ssdp_parse_reply(nb_test_guard_place(&gp, m, n), n, &from, reply_cases[i].flags,
					     &r, &why);
		assert_int_equal(rc, reply_cases[i].why == NULL ? 0 : -EINVAL);
	}
	nb_test_guard_close(&gp);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msearch_golden),
		cmocka_unit_test(test_msearch_targets),
		cmocka_unit_test(test_msearch_invalid),
		cmocka_unit_test(test_reply_golden),
		cmocka_unit_test(test_reply_table),
		cmocka_unit_test(test_reply_nul),
		cmocka_unit_test(test_reply_sizes),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_guard_page),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
