/* tests/unit/upnp_test_util.h - helpers shared by the UPnP codec tests
 * (test_url, test_ssdp, test_igd, test_soap): golden files, exact-size heap
 * copies, refusal checks and inputs that end at a guard page.
 *
 * Header-only (static inline), cmocka assertions. A failed assertion in here
 * reports this file's line; the table helpers print the case's name. */
#ifndef NB_TESTS_UPNP_TEST_UTIL_H
#define NB_TESTS_UPNP_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef ARRAY_LEN
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#endif

#ifdef NB_TEST_DATA
/* The golden file NB_TEST_DATA/name, whole, in a malloc'd buffer (1 byte
 * allocated when empty); the caller frees it. */
static inline uint8_t *nb_test_load(const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	long n;
	uint8_t *buf;

	snprintf(path, sizeof(path), "%s/%s", NB_TEST_DATA, name);
	f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	assert_int_equal(fseek(f, 0, SEEK_SET), 0);
	buf = malloc(n > 0 ? (size_t)n : 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}
#endif

/* An exact-size heap copy of the first len bytes of buf (1 byte allocated
 * for 0), so that ASan catches a read one byte past the end; free it. */
static inline uint8_t *nb_test_copy(const void *buf, size_t len)
{
	uint8_t *p = malloc(len > 0 ? len : 1);

	assert_non_null(p);
	memcpy(p, buf, len);
	return p;
}

/* Each of the n bytes at s is one of the characters of set. */
static inline void nb_test_assert_only(const uint8_t *s, size_t n, const char *set)
{
	for (size_t i = 0; i < n; i++)
		assert_non_null(memchr(set, s[i], strlen(set)));
}

/* Refused cleanly: -EINVAL, a reason, and *ret as it was before the call
 * (sentinel is a copy of it). */
static inline void nb_test_assert_refused(int rc, const char *why, const void *ret,
					  const void *sentinel, size_t size)
{
	assert_int_equal(rc, -EINVAL);
	assert_non_null(why);
	assert_memory_equal(ret, sentinel, size);
}

/* The same for the table case `name`, and the reason contains want. */
static inline void nb_test_assert_refused_for(const char *name, int rc, const char *why,
					      const char *want, const void *ret,
					      const void *sentinel, size_t size)
{
	if (rc != -EINVAL)
		fail_msg("%s: accepted", name);
	if (why == NULL || strstr(why, want) == NULL)
		fail_msg("%s: why \"%s\", want \"%s\"", name, why, want);
	assert_memory_equal(ret, sentinel, size);
}

/* Two pages, the second PROT_NONE: an input placed at the end of the first
 * ends exactly at the guard page (picohttpparser test.c). */
struct nb_test_guard {
	uint8_t *map;
	size_t pg;
};

static inline void nb_test_guard_open(struct nb_test_guard *g)
{
	long pg = sysconf(_SC_PAGESIZE);

	assert_true(pg > 0);
	g->pg = (size_t)pg;
	g->map = mmap(NULL, g->pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(g->map != MAP_FAILED);
	assert_int_equal(mprotect(g->map + g->pg, g->pg, PROT_NONE), 0);
}

/* A read-only copy of the first len bytes of buf whose last byte is the
 * last before the guard page. Valid until the next call. */
static inline const uint8_t *nb_test_guard_place(struct nb_test_guard *g, const void *buf,
						 size_t len)
{
	assert_true(len <= g->pg);
	assert_int_equal(mprotect(g->map, g->pg, PROT_READ | PROT_WRITE), 0);
	memcpy(g->map + g->pg - len, buf, len);
	assert_int_equal(mprotect(g->map, g->pg, PROT_READ), 0);
	return g->map + g->pg - len;
}

static inline void nb_test_guard_close(struct nb_test_guard *g)
{
	munmap(g->map, g->pg * 2);
}

#endif
