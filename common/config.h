/* common/config.h - a pure parser for natbroker's config file: bytes in, a
 * list of (key, value, line) out, or an error naming the line.
 *
 * Pure: no files, no allocation. The caller reads the file (at most
 * NB_CONFIG_MAX_BYTES) and gives the bytes and a table of the keys it
 * knows; the parser checks the syntax, that every key is known, that a key
 * appears no more often than its table entry allows, and the hard limits
 * below. What a value means (a port, an address) is the caller's to check:
 * each entry carries its line number for that error.
 *
 * Format (docs/operations.md "The config file"):
 *
 *   # a comment: '#' as the first non-blank character of a line
 *   key = value          # NOT a comment: the value runs to the line end
 *   key value            # '=' is optional
 *   flag                 # a flag key alone means yes
 *   flag = no            # yes/no, true/false, on/off, 1/0
 *   key = "  value  "    # quotes keep blanks (no escapes; the value may
 *                        # contain '"' and '#')
 *
 * Keys are the long command-line option names without "--". Blanks are
 * spaces and tabs. Lines end with LF or CRLF; the last may lack one. A UTF-8
 * byte-order mark at the start is skipped. Refused, each with the line:
 * a NUL or other control byte, a line longer than NB_CONFIG_LINE_MAX, a
 * value longer than NB_CONFIG_VALUE_MAX, an unknown key, a key given more
 * often than allowed, a value key without a value, a flag with a value
 * that is not a yes/no word, an unterminated quote.
 */
#ifndef NB_COMMON_CONFIG_H
#define NB_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NB_CONFIG_MAX_BYTES (64 * 1024) /* whole file */
#define NB_CONFIG_LINE_MAX 1024         /* bytes in one line, without its line end */
#define NB_CONFIG_VALUE_MAX 255         /* bytes in one value (after unquoting) */
#define NB_CONFIG_MAX_ENTRIES 64        /* settings in one file */
#define NB_CONFIG_ERR_MAX 160

enum nb_config_kind {
	NB_CONFIG_VALUE = 0, /* "key value": a value is required */
	NB_CONFIG_FLAG = 1,  /* "key", or "key = yes|no" */
};

/* One key the caller knows. */
struct nb_config_key {
	const char *name;         /* the long option name without "--" */
	enum nb_config_kind kind;
	unsigned max;             /* how often it may appear: 1, or more for a
				   * repeating option (--listen: 2) */
};

struct nb_config_entry {
	unsigned key;  /* index into the caller's key table */
	unsigned line; /* 1-based */
	bool flag;     /* NB_CONFIG_FLAG keys: the value (a bare flag is true) */
	char value[NB_CONFIG_VALUE_MAX + 1]; /* NB_CONFIG_VALUE keys; "" for flags */
};

/* The settings, in file order. */
struct nb_config {
	size_t n;
	struct nb_config_entry e[NB_CONFIG_MAX_ENTRIES];
};

struct nb_config_error {
	unsigned line; /* 1-based; 0 for the whole file (too large) */
	char msg[NB_CONFIG_ERR_MAX]; /* e.g. "unknown key 'prot'" */
};

/* Parse len bytes of buf against keys[0..n_keys). Returns 0 and fills *ret,
 * or -EINVAL (a bad line, or a file over NB_CONFIG_MAX_BYTES) with *err
 * filled and *ret left empty (n = 0). Never reads past buf + len; the
 * bytes are not modified. */
int nb_config_parse(const uint8_t *buf, size_t len, const struct nb_config_key *keys,
		    size_t n_keys, struct nb_config_error *err, struct nb_config *ret);

/* "yes", "true", "on", "1" -> true; "no", "false", "off", "0" -> false;
 * 0 and *ret, else -EINVAL with *ret untouched. */
int nb_config_parse_bool(const char *s, bool *ret);

#endif
