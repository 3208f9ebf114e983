/* tests/unit/test_ratelimit.c - the per-source-IP limiter on a fake clock:
 * burst then steady rate (exact for rates that do not divide 1000 ms),
 * refusals cost nothing, IPv6 /64 grouping, the table full, the penalty,
 * independent budgets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/ratelimit.h"

#define ALLOW NB_RATELIMIT_ALLOW
#define RATE NB_RATELIMIT_DENY_RATE
#define PENALTY NB_RATELIMIT_DENY_PENALTY

static struct nb_addr addr(const char *s)
{
	struct nb_addr a;

	memset(&a, 0, sizeof(a));
	assert_int_equal(nb_addr_parse(s, true, &a), 0);
	return a;
}

static struct nb_ratelimit *rl_new(uint32_t rate, uint32_t burst, size_t entries, uint32_t penalty_s)
{
	struct nb_ratelimit_config cfg;
	struct nb_ratelimit *rl = NULL;

	nb_ratelimit_config_default(&cfg);
	cfg.rate = rate;
	cfg.burst = burst;
	cfg.entries = entries;
	cfg.penalty_s = penalty_s;
	for (unsigned i = 0; i < sizeof(cfg.hash_key); i++)
		cfg.hash_key[i] = (uint8_t)(i * 11 + 3);
	assert_int_equal(nb_ratelimit_new(&cfg, &rl), 0);
	assert_non_null(rl);
	return rl;
}

static enum nb_ratelimit_verdict check_b(struct nb_ratelimit *rl, const char *from, unsigned budget,
				       uint64_t now)
{
	struct nb_addr a = addr(from);

	return nb_ratelimit_check(rl, &a, budget, now);
}

static enum nb_ratelimit_verdict check(struct nb_ratelimit *rl, const char *from, uint64_t now)
{
	return check_b(rl, from, 0, now);
}

/* ---- configuration ------------------------------------------------------- */

static void test_config(void **state)
{
	static const struct {
		uint32_t rate, burst;
		size_t entries;
		uint32_t penalty_s;
		int want;
	} cases[] = {
		{ 50, 500, 25000, 0, 0 },
		{ 1, 1, 1, 0, 0 },
		{ NB_RATELIMIT_RATE_MAX, NB_RATELIMIT_BURST_MAX, 1, NB_RATELIMIT_PENALTY_MAX_S, 0 },
		{ 0, 500, 25000, 0, -EINVAL },
		{ NB_RATELIMIT_RATE_MAX + 1, 500, 25000, 0, -EINVAL },
		{ 50, 0, 25000, 0, -EINVAL },
		{ 50, NB_RATELIMIT_BURST_MAX + 1, 25000, 0, -EINVAL },
		{ 50, 500, 0, 0, -EINVAL },
		{ 50, 500, NB_RATELIMIT_ENTRIES_MAX + 1, 0, -EINVAL },
		{ 50, 500, 25000, NB_RATELIMIT_PENALTY_MAX_S + 1, -EINVAL },
	};
	struct nb_ratelimit_config cfg;
	struct nb_ratelimit *rl;

	(void)state;
	nb_ratelimit_config_default(&cfg);
	assert_int_equal(cfg.rate, 50);
	assert_int_equal(cfg.burst, 500);
	assert_int_equal(cfg.entries, 25000);
	assert_int_equal(cfg.penalty_s, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cfg.rate = cases[i].rate;
		cfg.burst = cases[i].burst;
		cfg.entries = cases[i].entries;
		cfg.penalty_s = cases[i].penalty_s;
		rl = (struct nb_ratelimit *)&cfg; /* untouched on failure */
		assert_int_equal(nb_ratelimit_new(&cfg, &rl), cases[i].want);
		if (cases[i].want == 0) {
			assert_int_equal(nb_ratelimit_get_stats(rl)->entries, cases[i].entries);
			assert_int_equal(nb_ratelimit_get_stats(rl)->used, 0);
			nb_ratelimit_free(rl);
		} else {
			assert_ptr_equal(rl, (struct nb_ratelimit *)&cfg);
		}
	}
	assert_int_equal(nb_ratelimit_new(NULL, &rl), -EINVAL);
	nb_ratelimit_free(NULL);
	assert_string_equal(nb_ratelimit_verdict_name(ALLOW), "allow");
	assert_string_equal(nb_ratelimit_verdict_name(RATE), "rate");
	assert_string_equal(nb_ratelimit_verdict_name(PENALTY), "penalty");
	assert_null(nb_ratelimit_verdict_name((enum nb_ratelimit_verdict)7));
}

/* ---- burst, then exactly `rate` per second --------------------------------- */

/* A request every ms for 20 s: by time t (ms after the first), exactly
 * min(t + 1, burst + floor(t * rate / 1000)) are allowed, whatever the
 * rate (3/s and 7/s do not divide a second into whole ms): the limiter
 * keeps fractions of a request, so none is lost to rounding. */
static void test_burst_then_rate_exact(void **state)
{
	static const struct {
		uint32_t rate, burst;
	} cases[] = { { 50, 500 }, { 3, 10 }, { 7, 2 }, { 1000, 1 }, { 999, 20 }, { 2000, 5 } };
	const uint64_t t0 = 123456;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct nb_ratelimit *rl = rl_new(cases[i].rate, cases[i].burst, 16, 0);
		/* 2000/s: two requests a ms, to reach the rate */
		unsigned per_ms = cases[i].rate > 1000 ? 2 : 1;
		uint64_t allowed = 0;

		for (uint64_t t = 0; t < 20000; t++) {
			uint64_t want = cases[i].burst + t * cases[i].rate / 1000;
			for (unsigned k = 0; k < per_ms; k++)
				if (check(rl, "198.51.100.7:1000", t0 + t) == ALLOW)
					allowed++;
			if (want > (t + 1) * per_ms)
				want = (t + 1) * per_ms;
			if (allowed != want)
				fail_msg("rate %u burst %u: at +%llu ms %llu allowed, want %llu",
					 cases[i].rate, cases[i].burst, (unsigned long long)t,
					 (unsigned long long)allowed, (unsigned long long)want);
		}
		assert_int_equal(nb_ratelimit_get_stats(rl)->allowed, allowed);
		assert_int_equal(nb_ratelimit_get_stats(rl)->denied_rate, 20000 * per_ms - allowed);
		/* Never idle long enough to refill: one episode at most. */
		assert_int_equal(nb_ratelimit_get_stats(rl)->episodes, allowed < 20000 * per_ms ? 1 : 0);
		assert_int_equal(nb_ratelimit_get_stats(rl)->used, 1);
		nb_ratelimit_free(rl);
	}
	/* A burst of 1 holds no fraction of a request: with requests on whole
	 * ms, 7/s allows one every ceil(1000 / 7) = 143 ms. */
	{
		struct nb_ratelimit *rl = rl_new(7, 1, 16, 0);
		uint64_t allowed = 0;
		for (uint64_t t = 0; t < 10000; t++)
			if (check(rl, "198.51.100.7:1000", t0 + t) == ALLOW) {
				assert_int_equal(t % 143, 0);
				allowed++;
			}
		assert_int_equal(allowed, 9999 / 143 + 1);
		nb_ratelimit_free(rl);
	}
}

/* Refused requests do not cost the source anything more: after any number
 * of them, the next one is allowed 1/rate s after the last allowed one, and
 * an idle source gets its whole burst back after burst/rate s, not sooner. */
static void test_refusals_free_and_refill(void **state)
{
	struct nb_ratelimit *rl = rl_new(10, 5, 4, 0); /* one per 100 ms */
	uint64_t t = 1000;

	(void)state;
	for (int i = 0; i < 5; i++)
		assert_int_equal(check(rl, "192.0.2.1:1", t), ALLOW);
	for (int i = 0; i < 100000; i++)
		assert_int_equal(check(rl, "192.0.2.1:1", t + 99), RATE);
	assert_int_equal(nb_ratelimit_get_stats(rl)->episodes, 1);
	assert_int_equal(check(rl, "192.0.2.1:1", t + 100), ALLOW);
	assert_int_equal(check(rl, "192.0.2.1:1", t + 100), RATE);
	assert_int_equal(nb_ratelimit_get_stats(rl)->episodes, 1); /* not refilled in between */
	/* Idle: at +100 the bucket was empty; it is full again 500 ms later,
	 * and 499 ms later it holds 4. */
	t += 100;
	for (int i = 0; i < 4; i++)
		assert_int_equal(check(rl, "192.0.2.1:1", t + 499), ALLOW);
	assert_int_equal(check(rl, "192.0.2.1:1", t + 499), RATE);
	t += 10000;
	for (int i = 0; i < 5; i++)
		assert_int_equal(check(rl, "192.0.2.1:1", t), ALLOW);
	assert_int_equal(check(rl, "192.0.2.1:1", t), RATE);
	assert_int_equal(nb_ratelimit_get_stats(rl)->episodes, 2); /* refilled, then over again */
	/* The clock going backwards refuses, never allows more. */
	assert_int_equal(check(rl, "192.0.2.1:1", t - 5000), RATE);
	nb_ratelimit_free(rl);
}

/* ---- keys: IPv4 per address, IPv6 per /64, ports ignored ------------------- */

static void test_keys(void **state)
{
	static const struct {
		const char *a, *b;
		int same;
	} cases[] = {
		{ "192.0.2.1:1000", "192.0.2.1:2000", 1 },
		{ "192.0.2.1:1000", "192.0.2.2:1000", 0 },
		{ "192.0.2.1:1000", "[::ffff:192.0.2.1]:5", 1 },   /* IPv4-mapped */
		{ "[2001:db8:1:2::1]:1", "[2001:db8:1:2:ffff:ffff:ffff:ffff]:9", 1 },
		{ "[2001:db8:1:2::1]:1", "[2001:db8:1:3::1]:1", 0 },
		{ "[2001:db8:1:2::1]:1", "[2001:db9:1:2::1]:1", 0 },
		{ "[::c000:201]:1", "192.0.2.1:1", 0 },              /* IPv4-compatible is IPv6 */
		{ "0.0.0.0:1", "[::]:1", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct nb_ratelimit *rl = rl_new(1, 3, 8, 0);
		for (int k = 0; k < 3; k++)
			assert_int_equal(check(rl, cases[i].a, 5000), ALLOW);
		assert_int_equal(check(rl, cases[i].a, 5000), RATE);
		if (check(rl, cases[i].b, 5000) != (cases[i].same ? RATE : ALLOW))
			fail_msg("%s and %s: want %s budget", cases[i].a, cases[i].b,
				 cases[i].same ? "one" : "separate");
		assert_int_equal(nb_ratelimit_get_stats(rl)->used, cases[i].same ? 1 : 2);
		nb_ratelimit_free(rl);
	}
	/* No address at all: one key of its own. */
	{
		struct nb_ratelimit *rl = rl_new(1, 1, 8, 0);
		struct nb_addr none;
		memset(&none, 0, sizeof(none));
		assert_int_equal(nb_ratelimit_check(rl, &none, 0, 0), ALLOW);
		assert_int_equal(nb_ratelimit_check(rl, &none, 0, 0), RATE);
		assert_int_equal(check(rl, "0.0.0.0:0", 0), ALLOW);
		nb_ratelimit_free(rl);
	}
}

/* ---- the table full: least recently seen recycled, active ones counted ---- */

static void test_table_full(void **state)
{
	struct nb_ratelimit *rl = rl_new(10, 2, 3, 0); /* refill: 2 / 10 = 200 ms */
	const struct nb_ratelimit_stats *st = nb_ratelimit_get_stats(rl);
	uint64_t t = 1000;

	(void)state;
	/* A, B, C each spend their burst: the table is full of active sources. */
	for (int k = 0; k < 2; k++) {
		assert_int_equal(check(rl, "10.0.0.1:1", t), ALLOW);
		assert_int_equal(check(rl, "10.0.0.2:1", t), ALLOW);
		assert_int_equal(check(rl, "10.0.0.3:1", t), ALLOW);
	}
	assert_int_equal(check(rl, "10.0.0.1:1", t), RATE); /* A is the most recent now */
	assert_int_equal(st->used, 3);
	assert_int_equal(st->recycled, 0);
	/* D takes the least recently seen slot, B's, which was active. */
	assert_int_equal(check(rl, "10.0.0.4:1", t), ALLOW);
	assert_int_equal(st->used, 3);
	assert_int_equal(st->recycled, 1);
	assert_int_equal(st->recycled_active, 1);
	/* A is still remembered and still limited; C too. */
	assert_int_equal(check(rl, "10.0.0.1:1", t), RATE);
	assert_int_equal(check(rl, "10.0.0.3:1", t), RATE);
	/* B was forgotten: it gets a fresh burst, and takes D's slot (the least
	 * recently seen now: D, then A, then C). */
	assert_int_equal(check(rl, "10.0.0.2:1", t), ALLOW);
	assert_int_equal(check(rl, "10.0.0.2:1", t), ALLOW);
	assert_int_equal(check(rl, "10.0.0.2:1", t), RATE);
	assert_int_equal(st->recycled, 2);
	assert_int_equal(st->recycled_active, 2);
	/* After the refill time every bucket is full again: recycling loses
	 * nothing and is not counted as active. A source seen exactly at the
	 * refill time with a full bucket is not active either. */
	t += 200;
	assert_int_equal(check(rl, "10.0.0.5:1", t), ALLOW);
	assert_int_equal(check(rl, "10.0.0.6:1", t), ALLOW);
	assert_int_equal(st->recycled, 4);
	assert_int_equal(st->recycled_active, 2);
	/* One request less than the refill: still active. */
	assert_int_equal(check(rl, "10.0.0.7:1", t + 99), ALLOW); /* recycles the slot of the one left (B) */
	assert_int_equal(st->recycled, 5);
	assert_int_equal(st->recycled_active, 2);
	assert_int_equal(check(rl, "10.0.0.8:1", t + 99), ALLOW); /* recycles 5, seen at t, spent 1 of 2 */
	assert_int_equal(st->recycled_active, 3);
	assert_int_equal(st->used, 3);
	nb_ratelimit_free(rl);
}

/* Many sources through a small table: it never holds more than its size,
 * and a source that keeps sending stays remembered (it is always the most
 * recently seen). */
static void test_table_churn(void **state)
{
	struct nb_ratelimit *rl = rl_new(1, 2, 64, 0);
	const struct nb_ratelimit_stats *st = nb_ratelimit_get_stats(rl);
	char a[32];

	(void)state;
	assert_int_equal(check(rl, "203.0.113.99:1", 0), ALLOW);
	assert_int_equal(check(rl, "203.0.113.99:1", 0), ALLOW);
	for (unsigned i = 0; i < 100000; i++) {
		snprintf(a, sizeof(a), "10.%u.%u.%u:7", i >> 16, (i >> 8) & 255, i & 255);
		assert_int_equal(check(rl, a, 0), ALLOW);
		assert_int_equal(check(rl, "203.0.113.99:1", 0), RATE);
		assert_true(st->used <= 64);
	}
	assert_int_equal(st->used, 64);
	assert_int_equal(st->recycled, 100000 - 63);
	assert_int_equal(st->denied_rate, 100000);
	assert_int_equal(st->episodes, 1);
	nb_ratelimit_free(rl);
}

/* ---- the penalty ----------------------------------------------------------- */

static void test_penalty(void **state)
{
	struct nb_ratelimit *rl = rl_new(1, 2, 8, 60);
	const struct nb_ratelimit_stats *st = nb_ratelimit_get_stats(rl);
	uint64_t t = 7;

	(void)state;
	assert_int_equal(check(rl, "[2001:db8::1]:1", t), ALLOW);
	assert_int_equal(check(rl, "[2001:db8::1]:1", t), ALLOW);
	assert_int_equal(check(rl, "[2001:db8::1]:1", t), RATE); /* starts the penalty */
	assert_int_equal(st->penalties, 1);
	/* Refused for 60 s although the bucket refills in 2 s; requests during
	 * the penalty do not extend it; other sources are not affected. */
	assert_int_equal(check(rl, "[2001:db8::1]:1", t + 2000), PENALTY);
	assert_int_equal(check(rl, "[2001:db8::2]:1", t + 30000), PENALTY); /* same /64 */
	assert_int_equal(check(rl, "[2001:db8:0:1::1]:1", t + 30000), ALLOW);
	assert_int_equal(check(rl, "[2001:db8::1]:1", t + 59999), PENALTY);
	assert_int_equal(st->denied_penalty, 3);
	/* Over: a full bucket again. */
	assert_int_equal(check(rl, "[2001:db8::1]:1", t + 60000), ALLOW);
	assert_int_equal(check(rl, "[2001:db8::1]:1", t + 60000), ALLOW);
	assert_int_equal(check(rl, "[2001:db8::1]:1", t + 60000), RATE); /* and again */
	assert_int_equal(st->penalties, 2);
	assert_int_equal(st->episodes, 2);
	assert_int_equal(check(rl, "[2001:db8::1]:1", t + 119999), PENALTY);
	assert_int_equal(check(rl, "[2001:db8::1]:1", t + 120000), ALLOW);
	assert_int_equal(st->denied_rate, 2);
	nb_ratelimit_free(rl);

	/* Without a penalty the same source is allowed as soon as it refills. */
	rl = rl_new(1, 2, 8, 0);
	assert_int_equal(check(rl, "[2001:db8::1]:1", t), ALLOW);
	assert_int_equal(check(rl, "[2001:db8::1]:1", t), ALLOW);
	assert_int_equal(check(rl, "[2001:db8::1]:1", t), RATE);
	assert_int_equal(check(rl, "[2001:db8::1]:1", t + 999), RATE);
	assert_int_equal(check(rl, "[2001:db8::1]:1", t + 1000), ALLOW);
	assert_int_equal(nb_ratelimit_get_stats(rl)->penalties, 0);
	nb_ratelimit_free(rl);
}

/* A source in its penalty is active: recycling it is counted. */
static void test_penalty_recycled_active(void **state)
{
	struct nb_ratelimit *rl = rl_new(1000, 1, 1, 10);
	const struct nb_ratelimit_stats *st = nb_ratelimit_get_stats(rl);

	(void)state;
	assert_int_equal(check(rl, "192.0.2.1:1", 0), ALLOW);
	assert_int_equal(check(rl, "192.0.2.1:1", 0), RATE);
	/* bucket refilled after 1 ms, penalty runs to 10 s */
	assert_int_equal(check(rl, "192.0.2.2:1", 5000), ALLOW);
	assert_int_equal(st->recycled_active, 1);
	assert_int_equal(check(rl, "192.0.2.3:1", 5000), ALLOW);
	assert_int_equal(st->recycled_active, 2); /* .2 spent its one-request bucket at 5000 */
	assert_int_equal(check(rl, "192.0.2.4:1", 5001), ALLOW);
	assert_int_equal(st->recycled_active, 2);
	nb_ratelimit_free(rl);
}

/* ---- budgets: independent buckets, one penalty, one slot ------------------- */

static void test_budgets(void **state)
{
	struct nb_ratelimit *rl = rl_new(10, 3, 1, 0);
	const struct nb_ratelimit_stats *st = nb_ratelimit_get_stats(rl);

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(check_b(rl, "192.0.2.1:1", 0, 0), ALLOW);
	assert_int_equal(check_b(rl, "192.0.2.1:1", 0, 0), RATE);
	/* Budget 1 is untouched by budget 0's use, and the other way round. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(check_b(rl, "192.0.2.1:2", 1, 0), ALLOW);
	assert_int_equal(check_b(rl, "192.0.2.1:2", 1, 0), RATE);
	assert_int_equal(check_b(rl, "192.0.2.1:2", 0, 99), RATE);
	assert_int_equal(check_b(rl, "192.0.2.1:2", 0, 100), ALLOW);
	/* A budget out of range counts as the last one. */
	assert_int_equal(check_b(rl, "192.0.2.1:2", NB_RATELIMIT_BUDGETS, 99), RATE);
	assert_int_equal(check_b(rl, "192.0.2.1:2", 1000, 100), ALLOW);
	assert_int_equal(check_b(rl, "192.0.2.1:2", 1, 100), RATE);
	assert_int_equal(st->used, 1);
	assert_int_equal(st->episodes, 2); /* budget 0 and budget 1, each at 0 */
	/* Both budgets are full again at 400. A source with budget 0 full and
	 * budget 1 not is active. */
	assert_int_equal(check_b(rl, "192.0.2.1:2", 1, 500), ALLOW); /* budget 1 full at 600 */
	assert_int_equal(check_b(rl, "192.0.2.2:2", 0, 550), ALLOW);
	assert_int_equal(st->recycled, 1);
	assert_int_equal(st->recycled_active, 1);
	assert_int_equal(check_b(rl, "192.0.2.3:2", 1, 650), ALLOW); /* .2's budget 0 full at 650 */
	assert_int_equal(st->recycled, 2);
	assert_int_equal(st->recycled_active, 1);
	nb_ratelimit_free(rl);

	/* The penalty is the source's: going over one budget refuses both. */
	rl = rl_new(10, 1, 4, 5);
	assert_int_equal(check_b(rl, "192.0.2.1:1", 1, 0), ALLOW);
	assert_int_equal(check_b(rl, "192.0.2.1:1", 1, 0), RATE);
	assert_int_equal(check_b(rl, "192.0.2.1:1", 0, 0), PENALTY);
	assert_int_equal(check_b(rl, "192.0.2.1:1", 0, 4999), PENALTY);
	assert_int_equal(check_b(rl, "192.0.2.1:1", 0, 5000), ALLOW);
	assert_int_equal(check_b(rl, "192.0.2.1:1", 1, 5000), ALLOW);
	nb_ratelimit_free(rl);
}

/* ---- the clock: large values are clamped, never overflow ------------------ */

static void test_clock_clamp(void **state)
{
	struct nb_ratelimit *rl = rl_new(NB_RATELIMIT_RATE_MAX, 2, 4, 0);

	(void)state;
	assert_int_equal(check(rl, "192.0.2.1:1", UINT64_MAX), ALLOW);
	assert_int_equal(check(rl, "192.0.2.1:1", UINT64_MAX), ALLOW);
	assert_int_equal(check(rl, "192.0.2.1:1", UINT64_MAX), RATE);
	assert_int_equal(check(rl, "192.0.2.1:1", NB_RATELIMIT_NOW_MAX - 1), RATE);
	assert_int_equal(check(rl, "192.0.2.2:1", NB_RATELIMIT_NOW_MAX), ALLOW);
	nb_ratelimit_free(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_burst_then_rate_exact),
		cmocka_unit_test(test_refusals_free_and_refill),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_table_full),
		cmocka_unit_test(test_table_churn),
		cmocka_unit_test(test_penalty),
		cmocka_unit_test(test_penalty_recycled_active),
		cmocka_unit_test(test_budgets),
		cmocka_unit_test(test_clock_clamp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
