/* tests/fuzz/fuzz_config.c - libFuzzer target for the config file parser.
 *
 * For every input, against natbroker's own key table:
 *  - nb_config_parse returns 0 or -EINVAL and never reads past the input;
 *  - on failure: no entries, a NUL-terminated message, a line number no
 *    larger than the input's line count (0 only for an oversized input);
 *  - on success: every entry names a known key, lines never go back, each
 *    value is NUL-terminated and within NB_CONFIG_VALUE_MAX, flags carry
 *    no value, and no key appears more often than allowed;
 *  - parsing is deterministic.
 * Any broken promise is __builtin_trap(). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

/* natbroker's settings (broker/main.c). */
static const struct nb_config_key keys[] = {
	{ "listen", NB_CONFIG_VALUE, 2 },     { "port", NB_CONFIG_VALUE, 1 },
	{ "alt-port", NB_CONFIG_VALUE, 1 },   { "no-tcp", NB_CONFIG_FLAG, 1 },
	{ "max-tcp", NB_CONFIG_VALUE, 1 },    { "tcp-idle-timeout", NB_CONFIG_VALUE, 1 },
	{ "tcp-max-bytes", NB_CONFIG_VALUE, 1 }, { "software", NB_CONFIG_VALUE, 1 },
	{ "max-peers", NB_CONFIG_VALUE, 1 },  { "max-sessions", NB_CONFIG_VALUE, 1 },
	{ "token", NB_CONFIG_VALUE, 1 },      { "keepalive", NB_CONFIG_VALUE, 1 },
	{ "status-port", NB_CONFIG_VALUE, 1 }, { "log-level", NB_CONFIG_VALUE, 1 },
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct nb_config c, c2; /* large: keep off the stack */
	struct nb_config_error err, err2;
	unsigned count[N_KEYS], lines = 1, last = 0;
	int rc, rc2;

	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	memset(&err, 0, sizeof(err));
	rc = nb_config_parse(data, size, keys, N_KEYS, &err, &c);
	CHECK(rc == 0 || rc == -EINVAL);
	if (rc != 0) {
		CHECK(c.n == 0);
		CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL && err.msg[0] != '\0');
		CHECK(err.line <= lines);
		CHECK(err.line > 0 || size > NB_CONFIG_MAX_BYTES);
	} else {
		CHECK(c.n <= NB_CONFIG_MAX_ENTRIES);
		memset(count, 0, sizeof(count));
		for (size_t i = 0; i < c.n; i++) {
			const struct nb_config_entry *e = &c.e[i];
			CHECK(e->key < N_KEYS);
			CHECK(e->line > last && e->line <= lines);
			last = e->line;
			CHECK(memchr(e->value, '\0', sizeof(e->value)) != NULL);
			if (keys[e->key].kind == NB_CONFIG_FLAG)
				CHECK(e->value[0] == '\0');
			else
				CHECK(!e->flag);
			CHECK(++count[e->key] <= keys[e->key].max);
		}
	}
	rc2 = nb_config_parse(data, size, keys, N_KEYS, &err2, &c2);
	CHECK(rc2 == rc);
	if (rc == 0)
		CHECK(c2.n == c.n && memcmp(c.e, c2.e, c.n * sizeof(c.e[0])) == 0);
	else
		CHECK(err2.line == err.line && strcmp(err2.msg, err.msg) == 0);
	return 0;
}
