/* tests/fuzz/fuzz_keyfile.c - libFuzzer target for the private key file parser.
 *
 * For every input:
 *  - nb_keyfile_parse accepts it or refuses it with a known code and a
 *    NUL-terminated sentence that never contains the input's key text;
 * and for every input it accepts:
 *  - nb_keyfile_format of the key fits NB_KEYFILE_TEXT_MAX and parses back
 *    to the same key, and formatting again gives the same bytes;
 *  - the input with a comment line appended parses to the same key, and
 *    with a second private-key line appended is refused.
 * Any broken promise is __builtin_trap(). */
#include <stdint.h>
#include <string.h>

#include "common/keyfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[NB_KEYFILE_MAX + 128];
	uint8_t key[NB_KEY_LEN], key2[NB_KEY_LEN];
	char err[256], text[NB_KEYFILE_TEXT_MAX], text2[NB_KEYFILE_TEXT_MAX], ktext[NB_KEY_TEXT_LEN + 1];
	size_t n, m;
	int rc;

	memset(err, 'x', sizeof(err));
	rc = nb_keyfile_parse((const char *)data, size, key, err, sizeof(err));
	if (rc != 0) {
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		CHECK(rc == NB_KEYFILE_E_PARSE || rc == NB_KEYFILE_E_TOO_BIG);
		CHECK(err[0] != '\0');
		return 0;
	}
	CHECK(size <= NB_KEYFILE_MAX);
	nb_key_to_text(key, ktext);

	n = nb_keyfile_format(key, text, sizeof(text));
	CHECK(n > 0 && n < sizeof(text) && strlen(text) == n);
	CHECK(strstr(text, ktext) != NULL);
	CHECK(nb_keyfile_parse(text, n, key2, err, sizeof(err)) == 0);
	CHECK(memcmp(key, key2, NB_KEY_LEN) == 0);
	m = nb_keyfile_format(key2, text2, sizeof(text2));
	CHECK(m == n && memcmp(text, text2, n) == 0);

	if (size + 64 <= sizeof(buf)) {
		memcpy(buf, data, size);
		memcpy(buf + size, "\n# more\n", 8);
		if (size + 8 <= NB_KEYFILE_MAX) {
			CHECK(nb_keyfile_parse(buf, size + 8, key2, err, sizeof(err)) == 0);
			CHECK(memcmp(key, key2, NB_KEY_LEN) == 0);
		}
		memcpy(buf + size, "\nprivate-key: ", 14);
		memcpy(buf + size + 14, ktext, NB_KEY_TEXT_LEN);
		CHECK(nb_keyfile_parse(buf, size + 14 + NB_KEY_TEXT_LEN, key2, err, sizeof(err)) != 0);
	}
	return 0;
}
