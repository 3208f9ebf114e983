/* tests/unit/test_addr.c - address parse/format/classify/sockaddr round trips. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "common/addr.h"
#include "common/bytes.h"

static const struct {
	const char *in;
	bool allow_no_port;
	int rc;
	const char *out; /* formatted back, NULL = same as in */
} parse_cases[] = {
	{ "1.2.3.4:5", false, 0, NULL },
	{ "203.0.113.10:3478", false, 0, NULL },
	{ "0.0.0.0:0", false, 0, NULL },
	{ "255.255.255.255:65535", false, 0, NULL },
	{ "[::1]:3478", false, 0, NULL },
	{ "[2001:db8::1]:1", false, 0, NULL },
	{ "1.2.3.4", true, 0, "1.2.3.4:0" },
	{ "::1", true, 0, "[::1]:0" },
	{ "[::1]", true, 0, "[::1]:0" },
	{ "1.2.3.4", false, -EINVAL, NULL },
	{ "1.2.3.4:65536", false, -EINVAL, NULL },
	{ "1.2.3.4:", false, -EINVAL, NULL },
	{ "1.2.3.4:-1", false, -EINVAL, NULL },
	{ "1.2.3.4:1x", false, -EINVAL, NULL },
	{ "1.2.3:4", false, -EINVAL, NULL },
	{ "1.2.3.256:4", false, -EINVAL, NULL },
	{ ":4", false, -EINVAL, NULL },
	{ "", true, -EINVAL, NULL },
	{ "[::1", true, -EINVAL, NULL },
	{ "[::1]x", true, -EINVAL, NULL },
	{ "[1.2.3.4]:5", false, 0, "1.2.3.4:5" },
	{ "host.example:80", false, -EINVAL, NULL },
	{ "[0123456789012345678901234567890123456789012345678901234567890]:1", false, -EINVAL, NULL },
};

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		struct nb_addr a, sentinel;
		char buf[NB_ADDR_STRLEN];

		memset(&a, 0xAB, sizeof(a));
		memcpy(&sentinel, &a, sizeof(a));
		int rc = nb_addr_parse(parse_cases[i].in, parse_cases[i].allow_no_port, &a);
		if (rc != parse_cases[i].rc)
			fail_msg("case %zu '%s': rc %d, want %d", i, parse_cases[i].in, rc, parse_cases[i].rc);
		if (rc != 0) {
			/* Output untouched on failure. */
			assert_memory_equal(&a, &sentinel, sizeof(a));
			continue;
		}
		const char *want = parse_cases[i].out ? parse_cases[i].out : parse_cases[i].in;
		assert_string_equal(nb_addr_format(&a, buf, sizeof(buf)), want);
	}
	assert_int_equal(nb_addr_parse(NULL, true, &(struct nb_addr){ 0 }), -EINVAL);
}

static void test_format_small_buffer(void **state)
{
	struct nb_addr a;
	char buf[6];

	(void)state;
	assert_int_equal(nb_addr_parse("203.0.113.10:3478", false, &a), 0);
	nb_addr_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "203.0"); /* truncated, NUL-terminated */
	struct nb_addr none = { 0 };
	char b2[NB_ADDR_STRLEN];
	assert_string_equal(nb_addr_format_ip(&none, b2, sizeof(b2)), "-");
}

static void test_equal(void **state)
{
	struct nb_addr a, b, c, d;

	(void)state;
	nb_addr_parse("1.2.3.4:5", false, &a);
	nb_addr_parse("1.2.3.4:6", false, &b);
	nb_addr_parse("1.2.3.5:5", false, &c);
	nb_addr_parse("[::ffff:1.2.3.4]:5", false, &d);
	assert_true(nb_addr_equal(&a, &a));
	assert_false(nb_addr_equal(&a, &b));
	assert_true(nb_addr_ip_equal(&a, &b));
	assert_false(nb_addr_ip_equal(&a, &c));
	assert_false(nb_addr_ip_equal(&a, &d)); /* different family as parsed */
}

static void test_classify(void **state)
{
	static const struct {
		const char *ip;
		bool unspec, loop, ll, mcast, priv;
	} cases[] = {
		{ "0.0.0.0", 1, 0, 0, 0, 0 },
		{ "127.0.0.1", 0, 1, 0, 0, 0 },
		{ "169.254.1.1", 0, 0, 1, 0, 0 },
		{ "239.255.255.250", 0, 0, 0, 1, 0 },
		{ "10.1.2.3", 0, 0, 0, 0, 1 },
		{ "172.16.0.1", 0, 0, 0, 0, 1 },
		{ "172.31.255.255", 0, 0, 0, 0, 1 },
		{ "172.32.0.1", 0, 0, 0, 0, 0 },
		{ "192.168.6.1", 0, 0, 0, 0, 1 },
		{ "100.64.11.2", 0, 0, 0, 0, 1 },
		{ "100.128.0.1", 0, 0, 0, 0, 0 },
		{ "203.0.113.106", 0, 0, 0, 0, 0 }, /* documentation range: not rejected */
		{ "::", 1, 0, 0, 0, 0 },
		{ "::1", 0, 1, 0, 0, 0 },
		{ "fe80::1", 0, 0, 1, 0, 0 },
		{ "ff02::c", 0, 0, 0, 1, 0 },
		{ "fd00::1", 0, 0, 0, 0, 1 },
		{ "2001:db8::1", 0, 0, 0, 0, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct nb_addr a;
		assert_int_equal(nb_addr_parse(cases[i].ip, true, &a), 0);
		if (nb_addr_is_unspecified(&a) != cases[i].unspec || nb_addr_is_loopback(&a) != cases[i].loop ||
		    nb_addr_is_link_local(&a) != cases[i].ll || nb_addr_is_multicast(&a) != cases[i].mcast ||
		    nb_addr_is_private(&a) != cases[i].priv)
			fail_msg("classification of %s", cases[i].ip);
	}
}

static void test_sockaddr_round_trip(void **state)
{
	static const char *const in[] = { "1.2.3.4:5", "[2001:db8::7]:65535", "0.0.0.0:0" };
	(void)state;
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct nb_addr a, b;
		struct sockaddr_storage ss;
		char buf[NB_ADDR_STRLEN];
		assert_int_equal(nb_addr_parse(in[i], false, &a), 0);
		assert_true(nb_addr_to_sockaddr(&a, &ss) > 0);
		assert_int_equal(nb_addr_from_sockaddr((struct sockaddr *)&ss, &b), 0);
		assert_true(nb_addr_equal(&a, &b));
		assert_string_equal(nb_addr_format(&b, buf, sizeof(buf)), in[i]);
	}
}

static void test_sockaddr_v4mapped_and_bad_family(void **state)
{
	struct sockaddr_in6 s6;
	struct nb_addr a, none = { 0 };
	struct sockaddr_storage ss;
	char buf[NB_ADDR_STRLEN];

	(void)state;
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	s6.sin6_port = htons(3478);
	uint8_t mapped[16] = { [10] = 0xff, [11] = 0xff, [12] = 203, [13] = 0, [14] = 113, [15] = 10 };
	memcpy(&s6.sin6_addr, mapped, 16);
	assert_int_equal(nb_addr_from_sockaddr((struct sockaddr *)&s6, &a), 0);
	assert_int_equal(a.family, NB_AF_INET);
	assert_string_equal(nb_addr_format(&a, buf, sizeof(buf)), "203.0.113.10:3478");

	struct sockaddr sa = { .sa_family = AF_UNIX };
	assert_int_equal(nb_addr_from_sockaddr(&sa, &a), -EAFNOSUPPORT);
	assert_int_equal(nb_addr_to_sockaddr(&none, &ss), -EAFNOSUPPORT);
}

static void test_bytes(void **state)
{
	uint8_t b[6] = { 0 };

	(void)state;
	nb_put_u16be(b + 1, 0xA1B2); /* unaligned on purpose */
	assert_int_equal(b[1], 0xA1);
	assert_int_equal(b[2], 0xB2);
	assert_int_equal(nb_get_u16be(b + 1), 0xA1B2);
	nb_put_u32be(b + 1, 0x2112A442u);
	assert_int_equal(nb_get_u32be(b + 1), 0x2112A442u);
	assert_int_equal(b[1], 0x21);
	assert_int_equal(b[4], 0x42);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_format_small_buffer),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_sockaddr_round_trip),
		cmocka_unit_test(test_sockaddr_v4mapped_and_bad_family),
		cmocka_unit_test(test_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
