/* tests/unit/test_log.c - log level parsing and filtering. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static void test_parse_level(void **state)
{
	enum nb_log_level l = NB_LOG_INFO;

	(void)state;
	assert_int_equal(nb_log_parse_level("debug", &l), 0);
	assert_int_equal(l, NB_LOG_DEBUG);
	assert_int_equal(nb_log_parse_level("error", &l), 0);
	assert_int_equal(l, NB_LOG_ERROR);
	assert_int_equal(nb_log_parse_level("DEBUG", &l), -EINVAL);
	assert_int_equal(nb_log_parse_level("", &l), -EINVAL);
	assert_int_equal(nb_log_parse_level(NULL, &l), -EINVAL);
	assert_int_equal(l, NB_LOG_ERROR); /* untouched on failure */
}

/* Capture stderr into a pipe while logging, and return what was written. */
static size_t capture(char *out, size_t cap, void (*fn)(void))
{
	int p[2], saved;
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	fflush(stderr);
	saved = dup(2);
	dup2(p[1], 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(p[1]);
	n = read(p[0], out, cap - 1);
	close(p[0]);
	out[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

static void log_some(void)
{
	nb_log_info("test", "hello %d", 42);
	nb_log_debug("test", "hidden");
	nb_log_error("test", "bad %s", "thing");
}

static void log_long(void)
{
	char big[4096];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	nb_log_warn("test", "%s", big);
}

static void test_filter_and_format(void **state)
{
	char out[2048];

	(void)state;
	nb_log_set_level(NB_LOG_INFO);
	capture(out, sizeof(out), log_some);
	assert_string_equal(out, "info test: hello 42\nerror test: bad thing\n");
	nb_log_set_level(NB_LOG_ERROR);
	capture(out, sizeof(out), log_some);
	assert_string_equal(out, "error test: bad thing\n");
}

static void test_journal_prefix(void **state)
{
	char out[2048];

	(void)state;
	nb_log_set_level(NB_LOG_INFO);
	nb_log_set_journal(1);
	capture(out, sizeof(out), log_some);
	assert_string_equal(out, "<6>info test: hello 42\n<3>error test: bad thing\n");
	nb_log_set_journal(0);
	capture(out, sizeof(out), log_some);
	assert_string_equal(out, "info test: hello 42\nerror test: bad thing\n");
}

static void test_long_line_truncated(void **state)
{
	char out[8192];

	(void)state;
	nb_log_set_level(NB_LOG_DEBUG);
	size_t n = capture(out, sizeof(out), log_long);
	assert_true(n <= 1024); /* one bounded line */
	assert_int_equal(out[n - 1], '\n');
	assert_memory_equal(out, "warn test: xxx", 14);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_level),
		cmocka_unit_test(test_filter_and_format),
		cmocka_unit_test(test_journal_prefix),
		cmocka_unit_test(test_long_line_truncated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
