/* tests/unit/test_config.c - the config file parser: every syntax, every refusal with its line, every prefix. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"

enum { K_LISTEN, K_PORT, K_NO_TCP, K_SOFTWARE, K_TOKEN, K_COUNT };

static const struct nb_config_key keys[K_COUNT] = {
	[K_LISTEN] = { "listen", NB_CONFIG_VALUE, 2 },
	[K_PORT] = { "port", NB_CONFIG_VALUE, 1 },
	[K_NO_TCP] = { "no-tcp", NB_CONFIG_FLAG, 1 },
	[K_SOFTWARE] = { "software", NB_CONFIG_VALUE, 1 },
	[K_TOKEN] = { "token", NB_CONFIG_VALUE, 1 },
};

static struct nb_config cfg; /* large: keep off the stack */

/* Parse from an exact-size heap copy, so ASan sees a read past the end. */
static int parse(const void *data, size_t len, struct nb_config_error *err)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, data, len);
	rc = nb_config_parse(copy, len, keys, K_COUNT, err, &cfg);
	free(copy);
	return rc;
}

static int parse_str(const char *s, struct nb_config_error *err)
{
	return parse(s, strlen(s), err);
}

static void expect(size_t i, unsigned key, unsigned line, const char *value, bool flag)
{
	assert_true(i < cfg.n);
	assert_int_equal(cfg.e[i].key, key);
	assert_int_equal(cfg.e[i].line, line);
	assert_string_equal(cfg.e[i].value, value);
	assert_int_equal(cfg.e[i].flag, flag);
}

static void test_syntax(void **state)
{
	struct nb_config_error err;
	const char *text = "# natbroker\n"
			   "\n"
			   "   # indented comment\n"
			   "listen = 203.0.113.10\n"
			   "listen\t203.0.113.11   \n"
			   "port=3478\n"
			   "no-tcp\n"
			   "software = a # b is not a comment  \n"
			   "token \"  two  blanks \"\n";

	(void)state;
	assert_int_equal(parse_str(text, &err), 0);
	assert_int_equal(cfg.n, 6);
	expect(0, K_LISTEN, 4, "203.0.113.10", false);
	expect(1, K_LISTEN, 5, "203.0.113.11", false);
	expect(2, K_PORT, 6, "3478", false);
	expect(3, K_NO_TCP, 7, "", true);
	expect(4, K_SOFTWARE, 8, "a # b is not a comment", false);
	expect(5, K_TOKEN, 9, "  two  blanks ", false);
}

static void test_flags(void **state)
{
	struct nb_config_error err;
	bool b = false;

	(void)state;
	assert_int_equal(parse_str("no-tcp = no\n", &err), 0);
	expect(0, K_NO_TCP, 1, "", false);
	assert_int_equal(parse_str("no-tcp yes", &err), 0);
	expect(0, K_NO_TCP, 1, "", true);
	assert_int_equal(parse_str("no-tcp = \"off\"", &err), 0);
	expect(0, K_NO_TCP, 1, "", false);
	assert_int_equal(nb_config_parse_bool("true", &b), 0);
	assert_true(b);
	assert_int_equal(nb_config_parse_bool("0", &b), 0);
	assert_false(b);
	assert_int_equal(nb_config_parse_bool("Yes", &b), -EINVAL);
	assert_int_equal(nb_config_parse_bool("", &b), -EINVAL);
	assert_int_equal(nb_config_parse_bool(NULL, &b), -EINVAL);
	assert_false(b); /* untouched on failure */
}

static void test_line_ends(void **state)
{
	struct nb_config_error err;
	static const uint8_t bom[] = "\xEF\xBB\xBFport 1\r\nlisten ::1\r\n\r\nlisten ::2";

	(void)state;
	/* CRLF, a BOM, and a last line without a line end. */
	assert_int_equal(parse(bom, sizeof(bom) - 1, &err), 0);
	assert_int_equal(cfg.n, 3);
	expect(0, K_PORT, 1, "1", false);
	expect(1, K_LISTEN, 2, "::1", false);
	expect(2, K_LISTEN, 4, "::2", false);
	/* Empty input, and blank lines only. */
	assert_int_equal(parse("", 0, &err), 0);
	assert_int_equal(cfg.n, 0);
	assert_int_equal(parse_str("\n \n\t\n", &err), 0);
	assert_int_equal(cfg.n, 0);
	/* A quoted empty value is a value (its meaning is the caller's to check). */
	assert_int_equal(parse_str("token \"\"", &err), 0);
	expect(0, K_TOKEN, 1, "", false);
}

struct bad_case {
	const char *in;
	size_t len; /* 0: strlen(in) */
	unsigned line;
	const char *msg;
};

static const struct bad_case bad_cases[] = {
	{ "port 1\nprot 2\n", 0, 2, "unknown key 'prot'" },
	{ "config /etc/x\n", 0, 1, "unknown key 'config'" },
	{ "PORT 1\n", 0, 1, "unknown key 'PORT'" },
	{ "= 1\n", 0, 1, "expected 'key = value'" },
	{ "port 1\n\nport 2\n", 0, 3, "'port' already set on line 1" },
	{ "listen ::1\nlisten ::2\nlisten ::3\n", 0, 3, "'listen' given more than 2 times (first on line 1)" },
	{ "no-tcp\nno-tcp no\n", 0, 2, "'no-tcp' already set on line 1" },
	{ "port\n", 0, 1, "'port' needs a value" },
	{ "port =\n", 0, 1, "'port =' without a value" },
	{ "no-tcp =   \n", 0, 1, "'no-tcp =' without a value" },
	{ "no-tcp maybe\n", 0, 1, "'no-tcp' takes no value, or yes or no; got 'maybe'" },
	{ "token \"abc\n", 0, 1, "'token': unterminated quote" },
	{ "token \"\n", 0, 1, "'token': unterminated quote" },
	{ "port 1\nport\0 2\n", 15, 2, "NUL byte at column 5" },
	{ "port 1\x01\n", 0, 1, "control character 0x01 at column 7" },
	{ "port 1\x7f\n", 0, 1, "control character 0x7f at column 7" },
	{ "port 1\rlisten ::1\n", 0, 1, "control character 0x0d at column 7" },
	{ "port 1\r\r\n", 0, 1, "control character 0x0d at column 7" },
	{ "\xEF\xBBport 1\n", 0, 1, "unknown key '??port'" },
};

static void test_bad_lines(void **state)
{
	struct nb_config_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->in);

		memset(&err, 0, sizeof(err));
		cfg.n = 99;
		if (parse(c->in, len, &err) != -EINVAL)
			fail_msg("case %zu: accepted", i);
		assert_int_equal(cfg.n, 0); /* nothing half-parsed is left */
		if (err.line != c->line || strstr(err.msg, c->msg) == NULL)
			fail_msg("case %zu: got line %u '%s', want line %u '%s'", i, err.line, err.msg,
				 c->line, c->msg);
	}
}

static void test_limits(void **state)
{
	static char buf[NB_CONFIG_MAX_BYTES + 16];
	struct nb_config_error err;
	size_t off;

	(void)state;
	/* A line of exactly NB_CONFIG_LINE_MAX bytes is fine, one more is not. */
	memset(buf, ' ', NB_CONFIG_LINE_MAX + 1);
	memcpy(buf, "port 1", 6);
	assert_int_equal(parse(buf, NB_CONFIG_LINE_MAX, &err), 0);
	assert_int_equal(parse(buf, NB_CONFIG_LINE_MAX + 1, &err), -EINVAL);
	assert_int_equal(err.line, 1);
	assert_non_null(strstr(err.msg, "line longer than 1024 bytes"));
	/* The CR of a CRLF does not count. */
	buf[NB_CONFIG_LINE_MAX] = '\r';
	buf[NB_CONFIG_LINE_MAX + 1] = '\n';
	assert_int_equal(parse(buf, NB_CONFIG_LINE_MAX + 2, &err), 0);

	/* A value of NB_CONFIG_VALUE_MAX bytes is fine, one more is not. */
	memcpy(buf, "software ", 9);
	memset(buf + 9, 'x', NB_CONFIG_VALUE_MAX + 1);
	assert_int_equal(parse(buf, 9 + NB_CONFIG_VALUE_MAX, &err), 0);
	assert_int_equal(strlen(cfg.e[0].value), NB_CONFIG_VALUE_MAX);
	assert_int_equal(parse(buf, 9 + NB_CONFIG_VALUE_MAX + 1, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "value longer than 255 bytes"));

	/* More than NB_CONFIG_MAX_ENTRIES settings. */
	{
		static const struct nb_config_key many[] = { { "k", NB_CONFIG_VALUE, 1000 } };
		off = 0;
		for (int i = 0; i < NB_CONFIG_MAX_ENTRIES + 1; i++)
			off += (size_t)snprintf(buf + off, sizeof(buf) - off, "k %d\n", i);
		assert_int_equal(nb_config_parse((const uint8_t *)buf, off, many, 1, &err, &cfg), -EINVAL);
		assert_int_equal(err.line, NB_CONFIG_MAX_ENTRIES + 1);
		assert_non_null(strstr(err.msg, "more than 64 settings"));
	}

	/* The whole file: NB_CONFIG_MAX_BYTES of comments is fine, a byte more is not. */
	memset(buf, '\n', sizeof(buf));
	assert_int_equal(parse(buf, NB_CONFIG_MAX_BYTES, &err), 0);
	assert_int_equal(parse(buf, NB_CONFIG_MAX_BYTES + 1, &err), -EINVAL);
	assert_int_equal(err.line, 0);
	assert_non_null(strstr(err.msg, "larger than 65536 bytes"));
}

/* Every prefix of a file that uses every syntax parses, or fails with a
 * line inside the prefix, and never reads past its end. */
static void test_truncation(void **state)
{
	static const char text[] = "\xEF\xBB\xBF# natbroker\r\n"
				   "listen = 203.0.113.10\r\n"
				   "  listen\t203.0.113.11\n"
				   "port=3478\n"
				   "no-tcp no\n"
				   "software \"natbroker \"\"\n"
				   "token = s3cret\n";
	struct nb_config_error err;
	unsigned lines;

	(void)state;
	assert_int_equal(parse(text, sizeof(text) - 1, &err), 0);
	assert_int_equal(cfg.n, 6);
	for (size_t n = 0; n <= sizeof(text) - 1; n++) {
		int rc = parse(text, n, &err);
		lines = 1;
		for (size_t i = 0; i < n; i++)
			lines += text[i] == '\n';
		if (rc != 0) {
			assert_int_equal(rc, -EINVAL);
			assert_true(err.line >= 1 && err.line <= lines);
			assert_int_equal(cfg.n, 0);
		} else {
			assert_true(cfg.n <= 6);
		}
	}
}

/* A table without NULL names and with max 0 (treated as 1) still works. */
static void test_odd_tables(void **state)
{
	static const struct nb_config_key odd[] = { { NULL, NB_CONFIG_VALUE, 1 }, { "a", NB_CONFIG_VALUE, 0 } };
	struct nb_config_error err;

	(void)state;
	assert_int_equal(nb_config_parse((const uint8_t *)"a 1\n", 4, odd, 2, &err, &cfg), 0);
	expect(0, 1, 1, "1", false);
	assert_int_equal(nb_config_parse((const uint8_t *)"a 1\na 2\n", 8, odd, 2, &err, &cfg), -EINVAL);
	assert_int_equal(err.line, 2);
	assert_int_equal(nb_config_parse(NULL, 0, odd, 2, &err, &cfg), 0);
	assert_int_equal(nb_config_parse(NULL, 1, odd, 2, &err, &cfg), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syntax),     cmocka_unit_test(test_flags),
		cmocka_unit_test(test_line_ends),  cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_limits),     cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_odd_tables),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
