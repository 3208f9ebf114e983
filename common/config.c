/* common/config.c - the config file parser: bytes in, (key, value, line) entries out. */
#include "common/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Bytes of a key or value quoted in an error message. */
#define QUOTE_MAX 40

static bool is_blank(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static __attribute__((format(printf, 3, 4))) int fail(struct nb_config_error *err, unsigned line,
						      const char *fmt, ...)
{
	va_list ap;

	err->line = line;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Up to QUOTE_MAX bytes of p, printable ASCII only (others become '?'), for
 * an error message; "..." when cut. */
static const char *quote(const uint8_t *p, size_t n, char *buf, size_t len)
{
	size_t i, k = n < QUOTE_MAX ? n : QUOTE_MAX;

	if (len < QUOTE_MAX + 4)
		return "";
	for (i = 0; i < k; i++)
		buf[i] = p[i] >= 0x20 && p[i] < 0x7F ? (char)p[i] : '?';
	if (k < n) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

int nb_config_parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	if (s == NULL)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int find_key(const struct nb_config_key *keys, size_t n_keys, const uint8_t *p, size_t n)
{
	for (size_t k = 0; k < n_keys; k++)
		if (keys[k].name != NULL && strlen(keys[k].name) == n && memcmp(keys[k].name, p, n) == 0)
			return (int)k;
	return -1;
}

/* One line of n bytes (no line end; no control bytes but tab). */
static int parse_line(const uint8_t *p, size_t n, unsigned line, const struct nb_config_key *keys,
		      size_t n_keys, struct nb_config_error *err, struct nb_config *ret)
{
	char q[QUOTE_MAX + 4];
	size_t i = 0, ks, klen, vs, ve, vlen;
	const struct nb_config_key *key;
	struct nb_config_entry *e;
	unsigned seen = 0, first = 0, max;
	bool has_eq = false, flag = true;
	char value[NB_CONFIG_VALUE_MAX + 1];
	int k;

	while (i < n && is_blank(p[i]))
		i++;
	if (i == n || p[i] == '#')
		return 0; /* blank line or comment */
	ks = i;
	while (i < n && !is_blank(p[i]) && p[i] != '=')
		i++;
	klen = i - ks;
	if (klen == 0)
		return fail(err, line, "expected 'key = value', got '%s'", quote(p, n, q, sizeof(q)));
	k = find_key(keys, n_keys, p + ks, klen);
	if (k < 0)
		return fail(err, line, "unknown key '%s'", quote(p + ks, klen, q, sizeof(q)));
	key = &keys[k];

	while (i < n && is_blank(p[i]))
		i++;
	if (i < n && p[i] == '=') {
		has_eq = true;
		i++;
		while (i < n && is_blank(p[i]))
			i++;
	}
	vs = i;
	ve = n;
	while (ve > vs && is_blank(p[ve - 1]))
		ve--;
	value[0] = '\0';
	if (ve == vs) {
		if (has_eq)
			return fail(err, line, "'%s =' without a value", key->name);
		if (key->kind == NB_CONFIG_VALUE)
			return fail(err, line, "'%s' needs a value", key->name);
	} else {
		if (p[vs] == '"') {
			if (ve - vs < 2 || p[ve - 1] != '"')
				return fail(err, line, "'%s': unterminated quote", key->name);
			vs++;
			ve--;
		}
		vlen = ve - vs;
		if (vlen > NB_CONFIG_VALUE_MAX)
			return fail(err, line, "'%s': value longer than %d bytes", key->name,
				    NB_CONFIG_VALUE_MAX);
		memcpy(value, p + vs, vlen);
		value[vlen] = '\0';
		if (key->kind == NB_CONFIG_FLAG) {
			if (nb_config_parse_bool(value, &flag) != 0)
				return fail(err, line, "'%s' takes no value, or yes or no; got '%s'",
					    key->name, quote(p + vs, vlen, q, sizeof(q)));
			value[0] = '\0';
		}
	}

	for (size_t j = 0; j < ret->n; j++) {
		if (ret->e[j].key == (unsigned)k) {
			if (seen++ == 0)
				first = ret->e[j].line;
		}
	}
	max = key->max > 0 ? key->max : 1;
	if (seen >= max) {
		if (max == 1)
			return fail(err, line, "'%s' already set on line %u", key->name, first);
		return fail(err, line, "'%s' given more than %u times (first on line %u)", key->name,
			    max, first);
	}
	if (ret->n == NB_CONFIG_MAX_ENTRIES)
		return fail(err, line, "more than %d settings", NB_CONFIG_MAX_ENTRIES);
	e = &ret->e[ret->n++];
	memset(e, 0, sizeof(*e)); /* no stale bytes after the value's NUL */
	e->key = (unsigned)k;
	e->line = line;
	e->flag = key->kind == NB_CONFIG_FLAG ? flag : false;
	memcpy(e->value, value, strlen(value) + 1);
	return 0;
}

int nb_config_parse(const uint8_t *buf, size_t len, const struct nb_config_key *keys,
		    size_t n_keys, struct nb_config_error *err, struct nb_config *ret)
{
	size_t off = 0;
	unsigned line = 0;
	int rc;

	ret->n = 0;
	if (buf == NULL && len > 0)
		return fail(err, 0, "no data");
	if (len > NB_CONFIG_MAX_BYTES)
		return fail(err, 0, "larger than %d bytes", NB_CONFIG_MAX_BYTES);
	if (len >= 3 && buf[0] == 0xEF && buf[1] == 0xBB && buf[2] == 0xBF)
		off = 3; /* UTF-8 byte-order mark */
	while (off < len) {
		const uint8_t *nl = memchr(buf + off, '\n', len - off);
		size_t eol = nl != NULL ? (size_t)(nl - buf) : len;
		size_t end = eol;

		line++;
		if (end > off && buf[end - 1] == '\r')
			end--; /* CRLF */
		if (end - off > NB_CONFIG_LINE_MAX) {
			rc = fail(err, line, "line longer than %d bytes", NB_CONFIG_LINE_MAX);
			goto fail;
		}
		for (size_t i = off; i < end; i++) {
			uint8_t c = buf[i];
			if (c == 0) {
				rc = fail(err, line, "NUL byte at column %zu", i - off + 1);
				goto fail;
			}
			if ((c < 0x20 && c != '\t') || c == 0x7F) {
				rc = fail(err, line, "control character 0x%02x at column %zu", c,
					  i - off + 1);
				goto fail;
			}
		}
		rc = parse_line(buf + off, end - off, line, keys, n_keys, err, ret);
		if (rc < 0)
			goto fail;
		off = nl != NULL ? eol + 1 : len;
	}
	return 0;
fail:
	ret->n = 0;
	return rc;
}
