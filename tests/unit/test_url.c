/* tests/unit/test_url.c - gateway URLs: parse (accepted and refused forms,
 * SSRF shapes, length limits), RFC 3986 reference resolution, format and
 * round trip, the host check, and inputs that end at a guard page. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "peer/portmap/url.h"
#include "upnp_test_util.h"

/* Formats, parses back, and comes out the same. */
static void assert_round_trip(const struct nb_url *u)
{
	char buf[NB_URL_MAX + 1];
	struct nb_url back;
	int n = nb_url_format(u, buf, sizeof(buf));

	assert_true(n > 0 && n <= NB_URL_MAX);
	assert_int_equal(nb_url_parse(buf, (size_t)n, &back), 0);
	assert_true(nb_addr_equal(&back.addr, &u->addr));
	assert_string_equal(back.path, u->path);
}

struct parse_case {
	const char *in;
	int rc;
	const char *ip;   /* expected, when rc == 0 */
	uint16_t port;
	const char *path;
};

static const struct parse_case parse_cases[] = {
	{ "http://192.168.6.1:5000/rootDesc.xml", 0, "192.168.6.1", 5000, "/rootDesc.xml" },
	{ "HTTP://10.0.0.1/", 0, "10.0.0.1", 80, "/" },
	{ "hTtP://10.0.0.1:1/x", 0, "10.0.0.1", 1, "/x" },
	{ "http://10.0.0.1", 0, "10.0.0.1", 80, "/" },
	{ "http://10.0.0.1:65535", 0, "10.0.0.1", 65535, "/" },
	{ "http://10.0.0.1?x=1", 0, "10.0.0.1", 80, "/?x=1" },
	{ "http://10.0.0.1#frag", 0, "10.0.0.1", 80, "/" },
	{ "http://10.0.0.1/a/b?c=d&e=f#g", 0, "10.0.0.1", 80, "/a/b?c=d&e=f" },
	{ "http://10.0.0.1:00080/a%20b", 0, "10.0.0.1", 80, "/a%20b" },
	{ "http://10.0.0.1/../x", 0, "10.0.0.1", 80, "/../x" }, /* as sent */
	{ "http://10.0.0.1//x", 0, "10.0.0.1", 80, "//x" },
	{ "http://127.0.0.1/", 0, "127.0.0.1", 80, "/" }, /* host_ok's job */
	/* refused */
	{ "", -EINVAL, NULL, 0, NULL },
	{ "http://", -EINVAL, NULL, 0, NULL },
	{ "http:///x", -EINVAL, NULL, 0, NULL },
	{ "http:/10.0.0.1/", -EINVAL, NULL, 0, NULL },
	{ "http:\\\\10.0.0.1\\", -EINVAL, NULL, 0, NULL },
	{ "https://10.0.0.1/", -EINVAL, NULL, 0, NULL },
	{ "ftp://10.0.0.1/", -EINVAL, NULL, 0, NULL },
	{ "file:///etc/passwd", -EINVAL, NULL, 0, NULL },
	{ "httpx://10.0.0.1/", -EINVAL, NULL, 0, NULL },
	{ "//10.0.0.1/", -EINVAL, NULL, 0, NULL },
	{ "/rootDesc.xml", -EINVAL, NULL, 0, NULL },
	{ "http://router.local/", -EINVAL, NULL, 0, NULL },
	{ "http://localhost:5000/", -EINVAL, NULL, 0, NULL },
	{ "http://a@10.0.0.1/", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1@10.0.0.2/", -EINVAL, NULL, 0, NULL },
	{ "http://user:pass@10.0.0.1/", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1:80@evil/", -EINVAL, NULL, 0, NULL },
	{ "http://[::1]/", -EINVAL, NULL, 0, NULL },
	{ "http://[fe80::1]:5000/", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1:0/", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1:65536/", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1:123456/", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1:/", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1:80a/", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1:-1/", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1:+80/", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1:80:81/", -EINVAL, NULL, 0, NULL },
	{ "http://010.0.0.1/", -EINVAL, NULL, 0, NULL },
	{ "http://10.1/", -EINVAL, NULL, 0, NULL },
	{ "http://167772161/", -EINVAL, NULL, 0, NULL },
	{ "http://0x7f.0.0.1/", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1./", -EINVAL, NULL, 0, NULL },
	{ "http://256.0.0.1/", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1.evil.com/", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1 /", -EINVAL, NULL, 0, NULL },
	{ " http://10.0.0.1/", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1/ ", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1/a b", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1/a\tb", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1/a\r\nHost: evil", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1/\x7f", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1/caf\xc3\xa9", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1/a\\b", -EINVAL, NULL, 0, NULL },
	{ "http://10.0.0.1/#a b", -EINVAL, NULL, 0, NULL }, /* even in the fragment */
};

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct nb_url u, sentinel;
		char ip[NB_ADDR_STRLEN];

		memset(&u, 0xA5, sizeof(u));
		sentinel = u;
		int rc = nb_url_parse(c->in, strlen(c->in), &u);
		if (rc != c->rc)
			fail_msg("case %zu \"%s\": rc %d, want %d", i, c->in, rc, c->rc);
		if (rc != 0) {
			assert_memory_equal(&u, &sentinel, sizeof(u));
			continue;
		}
		assert_int_equal(u.addr.family, NB_AF_INET);
		nb_addr_format_ip(&u.addr, ip, sizeof(ip));
		assert_string_equal(ip, c->ip);
		assert_int_equal(u.addr.port, c->port);
		assert_string_equal(u.path, c->path);
		assert_round_trip(&u);
	}
}

/* len counts bytes, not up to a NUL: a NUL inside is refused, and bytes past
 * len are never looked at. */
static void test_parse_len(void **state)
{
	struct nb_url u;

	(void)state;
	assert_int_equal(nb_url_parse("http://10.0.0.1/a\0b", 19, &u), -EINVAL);
	assert_int_equal(nb_url_parse("http://10.0.0.1/abc", 17, &u), 0);
	assert_string_equal(u.path, "/a");
	assert_int_equal(nb_url_parse("http://10.0.0.1:5000", 18, &u), 0);
	assert_int_equal(u.addr.port, 50);
	assert_int_equal(nb_url_parse(NULL, 0, &u), -EINVAL);
}

/* Longest accepted: NB_URL_MAX bytes; one more is refused, not truncated. */
static void test_parse_max(void **state)
{
	char s[NB_URL_MAX + 2];
	struct nb_url u;
	size_t pre = strlen("http://192.168.100.100:5000/");

	(void)state;
	memcpy(s, "http://192.168.100.100:5000/", pre);
	memset(s + pre, 'a', sizeof(s) - pre);
	assert_int_equal(nb_url_parse(s, NB_URL_MAX, &u), 0);
	assert_int_equal(strlen(u.path), NB_URL_MAX - pre + 1);
	assert_round_trip(&u);
	assert_int_equal(nb_url_parse(s, NB_URL_MAX + 1, &u), -EINVAL);
	/* "http://h?q" formats one byte longer ("http://h/?q"): refused at 255. */
	memcpy(s, "http://192.168.100.100:5000?", pre);
	assert_int_equal(nb_url_parse(s, NB_URL_MAX, &u), -EINVAL);
	assert_int_equal(nb_url_parse(s, NB_URL_MAX - 1, &u), 0);
	assert_round_trip(&u);
}

struct resolve_case {
	const char *base;
	const char *ref;
	int rc;
	const char *want; /* formatted */
};

#define B1 "http://192.168.1.1:5000/desc/root.xml?q=1"

static const struct resolve_case resolve_cases[] = {
	{ B1, "/ctl/IPConn", 0, "http://192.168.1.1:5000/ctl/IPConn" },
	{ B1, "ctl/IPConn", 0, "http://192.168.1.1:5000/desc/ctl/IPConn" },
	{ B1, "./ctl", 0, "http://192.168.1.1:5000/desc/ctl" },
	{ B1, "../ctl", 0, "http://192.168.1.1:5000/ctl" },
	{ B1, "../../../../ctl", 0, "http://192.168.1.1:5000/ctl" },
	{ B1, "/a/b/../c/./d", 0, "http://192.168.1.1:5000/a/c/d" },
	{ B1, "/a/b/..", 0, "http://192.168.1.1:5000/a/" },
	{ B1, "/a/b/.", 0, "http://192.168.1.1:5000/a/b/" },
	{ B1, "/a//../b", 0, "http://192.168.1.1:5000/a/b" },
	{ B1, "/..", 0, "http://192.168.1.1:5000/" },
	{ B1, ".", 0, "http://192.168.1.1:5000/desc/" },
	{ B1, "..", 0, "http://192.168.1.1:5000/" },
	{ B1, "./", 0, "http://192.168.1.1:5000/desc/" },
	{ B1, "a/..b/c", 0, "http://192.168.1.1:5000/desc/a/..b/c" },
	{ B1, "?x=2", 0, "http://192.168.1.1:5000/desc/root.xml?x=2" },
	{ B1, "ctl?a=../b", 0, "http://192.168.1.1:5000/desc/ctl?a=../b" },
	{ B1, "ctl#frag", 0, "http://192.168.1.1:5000/desc/ctl" },
	{ B1, "#frag", 0, B1 },
	{ B1, "", 0, B1 },
	{ B1, "192.168.1.1:5000/x", 0, "http://192.168.1.1:5000/desc/192.168.1.1:5000/x" },
	{ B1, "http://192.168.1.1:5431/x/../y", 0, "http://192.168.1.1:5431/y" },
	{ B1, "HTTP://192.168.1.1/x", 0, "http://192.168.1.1/x" },
	{ B1, "http://192.168.1.1:80/x", 0, "http://192.168.1.1/x" },
	{ B1, "//192.168.1.2:8080/z", 0, "http://192.168.1.2:8080/z" },
	{ "http://192.168.1.1:49152/", "upnp/control/WANIPConn1", 0,
	  "http://192.168.1.1:49152/upnp/control/WANIPConn1" },
	{ "http://192.168.1.1:49152", "upnp/control/WANIPConn1", 0,
	  "http://192.168.1.1:49152/upnp/control/WANIPConn1" },
	{ "http://192.168.1.1/a/b/", "../../../c", 0, "http://192.168.1.1/c" },
	/* refused */
	{ B1, "https://192.168.1.1/x", -EINVAL, NULL },
	{ B1, "javascript:alert(1)", -EINVAL, NULL },
	{ B1, "file:/etc/passwd", -EINVAL, NULL },
	{ B1, "a:b", -EINVAL, NULL },
	{ B1, "http://evil.example/x", -EINVAL, NULL },
	{ B1, "http://a@192.168.1.1/x", -EINVAL, NULL },
	{ B1, "//evil.example/x", -EINVAL, NULL },
	{ B1, "//a@192.168.1.1/x", -EINVAL, NULL },
	{ B1, "/a b", -EINVAL, NULL },
	{ B1, "/a\r\n", -EINVAL, NULL },
	{ B1, "\\\\evil\\x", -EINVAL, NULL },
	{ B1, "/caf\xc3\xa9", -EINVAL, NULL },
};

static void test_resolve_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(resolve_cases); i++) {
		const struct resolve_case *c = &resolve_cases[i];
		struct nb_url base, u, sentinel;
		char buf[NB_URL_MAX + 1];

		assert_int_equal(nb_url_parse(c->base, strlen(c->base), &base), 0);
		memset(&u, 0x5A, sizeof(u));
		sentinel = u;
		int rc = nb_url_resolve(&base, c->ref, strlen(c->ref), &u);
		if (rc != c->rc)
			fail_msg("case %zu \"%s\": rc %d, want %d", i, c->ref, rc, c->rc);
		if (rc != 0) {
			assert_memory_equal(&u, &sentinel, sizeof(u));
			continue;
		}
		assert_true(nb_url_format(&u, buf, sizeof(buf)) > 0);
		if (strcmp(buf, c->want) != 0)
			fail_msg("case %zu \"%s\": got %s, want %s", i, c->ref, buf, c->want);
		assert_round_trip(&u);
	}
}

/* A result longer than NB_URL_MAX is refused, never cut. */
static void test_resolve_too_long(void **state)
{
	char ref[NB_URL_MAX + 2];
	char base_s[NB_URL_MAX + 1];
	struct nb_url base, u;
	const char *pre = "http://192.168.100.100:5000/";
	size_t plen = strlen(pre);
	size_t room = NB_URL_MAX - plen; /* bytes of path after the first '/' */

	(void)state;
	assert_int_equal(nb_url_parse(pre, plen, &base), 0);
	memset(ref, 'r', sizeof(ref));
	assert_int_equal(nb_url_resolve(&base, ref, room, &u), 0);
	assert_round_trip(&u);
	assert_int_equal(nb_url_resolve(&base, ref, room + 1, &u), -EINVAL);
	assert_int_equal(nb_url_resolve(&base, ref, NB_URL_MAX + 1, &u), -EINVAL);
	/* base directory + a relative reference that each fit but not together */
	memcpy(base_s, pre, plen);
	memset(base_s + plen, 'd', 150);
	memcpy(base_s + plen + 150, "/x", 3);
	assert_int_equal(nb_url_parse(base_s, strlen(base_s), &base), 0);
	assert_int_equal(nb_url_resolve(&base, ref, 60, &u), 0);
	assert_round_trip(&u);
	assert_int_equal(nb_url_resolve(&base, ref, 120, &u), -EINVAL);
	/* ".." shrinking an over-long merge back under the limit is fine */
	memcpy(ref, "../../", 6);
	assert_int_equal(nb_url_resolve(&base, ref, 200, &u), 0);
	assert_int_equal(strlen(u.path), 195);
	assert_round_trip(&u);
	assert_int_equal(nb_url_resolve(NULL, "x", 1, &u), -EINVAL);
	assert_int_equal(nb_url_resolve(&base, NULL, 0, &u), -EINVAL);
}

static void test_format(void **state)
{
	struct nb_url u;
	char buf[64];
	const char *want = "http://192.168.6.1:5000/ctl/IPConn";
	size_t n = strlen(want);

	(void)state;
	assert_int_equal(nb_url_parse(want, n, &u), 0);
	assert_int_equal(nb_url_format(&u, buf, sizeof(buf)), (int)n);
	assert_string_equal(buf, want);
	/* every capacity too small for the text and its NUL */
	for (size_t cap = 0; cap <= n; cap++)
		assert_int_equal(nb_url_format(&u, buf, cap), -ENOSPC);
	assert_int_equal(nb_url_format(&u, buf, n + 1), (int)n);
	assert_string_equal(buf, want);
	/* port 80 is left out */
	assert_int_equal(nb_url_parse("http://10.1.2.3:80/x", 20, &u), 0);
	assert_int_equal(nb_url_format(&u, buf, sizeof(buf)), 17);
	assert_string_equal(buf, "http://10.1.2.3/x");
	/* not IPv4 */
	memset(&u, 0, sizeof(u));
	assert_int_equal(nb_url_format(&u, buf, sizeof(buf)), -EINVAL);
}

static void test_host_ok(void **state)
{
	static const struct {
		const char *ip;
		bool ok;
	} cases[] = {
		{ "192.168.6.1", true },    { "10.0.0.1", true },         { "172.16.0.1", true },
		{ "100.64.0.1", true },     { "203.0.113.1", true },      { "1.1.1.1", true },
		{ "223.255.255.254", true },
		{ "0.0.0.0", false },       { "0.1.2.3", false },         { "127.0.0.1", false },
		{ "127.255.255.254", false }, { "169.254.0.1", false },   { "169.254.255.255", false },
		{ "224.0.0.1", false },     { "239.255.255.250", false }, { "255.255.255.255", false },
		{ "::1", false },           { "fe80::1", false },         { "2001:db8::1", false },
	};
	struct nb_addr a;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		assert_int_equal(nb_addr_parse(cases[i].ip, true, &a), 0);
		if (nb_url_host_ok(&a) != cases[i].ok)
			fail_msg("%s: want %d", cases[i].ip, cases[i].ok);
	}
	memset(&a, 0, sizeof(a));
	assert_false(nb_url_host_ok(&a));
	assert_false(nb_url_host_ok(NULL));
}

/* Every prefix of accepted URLs, each ending at a PROT_NONE page. */
static void test_guard_page(void **state)
{
	struct nb_test_guard gp;

	(void)state;
	nb_test_guard_open(&gp);
	for (size_t i = 0; i < ARRAY_LEN(parse_cases); i++) {
		const char *s = parse_cases[i].in;
		size_t len = strlen(s);
		struct nb_url base, u;

		assert_int_equal(nb_url_parse("http://10.0.0.1/a/b", 19, &base), 0);
		for (size_t k = 0; k <= len; k++) {
			const char *p = (const char *)nb_test_guard_place(&gp, s, k);
			int rc = nb_url_parse(p, k, &u);
			assert_true(rc == 0 || rc == -EINVAL);
			if (rc == 0)
				assert_round_trip(&u);
			rc = nb_url_resolve(&base, p, k, &u);
			assert_true(rc == 0 || rc == -EINVAL);
			if (rc == 0)
				assert_round_trip(&u);
		}
	}
	nb_test_guard_close(&gp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_len),
		cmocka_unit_test(test_parse_max),
		cmocka_unit_test(test_resolve_table),
		cmocka_unit_test(test_resolve_too_long),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_host_ok),
		cmocka_unit_test(test_guard_page),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
