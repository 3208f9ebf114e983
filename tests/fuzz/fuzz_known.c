/* tests/fuzz/fuzz_known.c - libFuzzer target for the known-peers file parser.
 *
 * For every input:
 *  - nb_known_parse accepts it or refuses it with a known code and a
 *    sentence, leaving the previous list untouched;
 * and for every input it accepts:
 *  - at most NB_KNOWN_MAX entries, each name valid and unique, each
 *    lookup finding its own key;
 *  - nb_known_format's text parses back to the same list, and formats to
 *    the same bytes;
 *  - forgetting the first entry and setting it again gives the same set.
 * Any broken promise is __builtin_trap(). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "peer/known.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

static char *text_of(const struct nb_known *k, size_t *ret_n)
{
	size_t n = nb_known_format(k, NULL, 0);
	char *s = malloc(n + 1);

	CHECK(s != NULL);
	CHECK(nb_known_format(k, s, n + 1) == n && strlen(s) == n);
	*ret_n = n;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nb_known k, k2;
	char err[256];
	char *t1, *t2;
	size_t n1, n2;
	int rc;

	nb_known_init(&k);
	nb_known_init(&k2);
	/* A list to be left alone by a refusal. */
	CHECK(nb_known_set(&k, "sentinel", (const uint8_t *)"0123456789abcdef0123456789abcdef") == 0);
	memset(err, 'x', sizeof(err));
	rc = nb_known_parse(&k, (const char *)data, size, err, sizeof(err));
	if (rc != 0) {
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		CHECK(rc == NB_KNOWN_E_PARSE || rc == NB_KNOWN_E_TOO_BIG);
		CHECK(err[0] != '\0');
		CHECK(k.n == 1 && strcmp(k.e[0].name, "sentinel") == 0);
		nb_known_free(&k);
		return 0;
	}
	CHECK(k.n <= NB_KNOWN_MAX);
	for (size_t i = 0; i < k.n; i++) {
		CHECK(nb_known_name_ok(k.e[i].name));
		CHECK(nb_known_lookup(&k, k.e[i].name) == k.e[i].key); /* unique: finds itself */
	}
	t1 = text_of(&k, &n1);
	CHECK(nb_known_parse(&k2, t1, n1, err, sizeof(err)) == 0);
	t2 = text_of(&k2, &n2);
	CHECK(n1 == n2 && memcmp(t1, t2, n1) == 0);
	free(t2);
	if (k.n > 0) {
		struct nb_known_entry first = k.e[0];
		CHECK(nb_known_forget(&k2, first.name) == 0);
		CHECK(nb_known_lookup(&k2, first.name) == NULL);
		CHECK(nb_known_forget(&k2, first.name) == -ENOENT);
		CHECK(nb_known_set(&k2, first.name, first.key) == 0);
		CHECK(k2.n == k.n);
		for (size_t i = 0; i < k.n; i++)
			CHECK(memcmp(nb_known_lookup(&k2, k.e[i].name), k.e[i].key, NB_KEY_LEN) == 0);
	}
	free(t1);
	nb_known_free(&k);
	nb_known_free(&k2);
	return 0;
}
