/* proto/ctrl.c - control-message codec (JSON datagrams via cJSON). */
#include "proto/ctrl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- Demultiplexing ------------------------------------------------------ */

enum nb_wire_kind nb_wire_classify(const uint8_t *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return NB_WIRE_DROP;
	/* RFC 7983 §7: "If the value of the first byte is in the range 0 to
	 * 3 (inclusive), then the packet is STUN." */
	if (buf[0] <= 3)
		return NB_WIRE_STUN;
	if (buf[0] == NB_CTRL_FIRST_BYTE)
		return NB_WIRE_CTRL;
	if (buf[0] >= NB_WIRE_DATA_FIRST && buf[0] <= NB_WIRE_DATA_LAST)
		return NB_WIRE_DATA;
	return NB_WIRE_DROP;
}

/* ---- Vocabulary ------------------------------------------------------------ */

struct vocab {
	const char *const *words;
	size_t n;
};

static const char *const mapping_words[NB_MAPPING_COUNT] = {
	"unknown", "none", "endpoint-independent", "address-dependent",
	"address-and-port-dependent",
};
static const char *const filtering_words[NB_FILTERING_COUNT] = {
	"unknown", "endpoint-independent", "address-dependent", "address-and-port-dependent",
};
static const char *const nat_words[NB_NAT_COUNT] = {
	"unknown",   "open",        "full-cone", "restricted-cone", "port-restricted-cone",
	"symmetric", "udp-blocked", "firewall",
};
static const char *const role_words[NB_ROLE_COUNT] = {
	"dial", "listen", "punch", "prime", "relay", "none", "spray", "probe",
};
static const char *const path_words[NB_PATH_COUNT] = {
	"direct", "lan", "upnp", "relay", "none", "birthday",
};
static const char *const upnp_words[] = { "none", "failed", "mapped" };
static const char *const outcome_words[] = { "connected", "failed" };
/* Indexed by enum nb_ctrl_type. */
static const char *const type_words[NB_CTRL_TYPE_MAX + 1] = {
	[NB_CTRL_REGISTER] = "register",   [NB_CTRL_REGISTERED] = "registered",
	[NB_CTRL_KEEPALIVE] = "keepalive", [NB_CTRL_CONNECT] = "connect",
	[NB_CTRL_PLAN] = "plan",           [NB_CTRL_RESULT] = "result",
	[NB_CTRL_ERROR] = "error",         [NB_CTRL_ACK] = "ack",
	[NB_CTRL_PEERS] = "peers",         [NB_CTRL_PEER_LIST] = "peer_list",
	[NB_CTRL_MATRIX] = "matrix",       [NB_CTRL_MATRIX_LIST] = "matrix_list",
	[NB_CTRL_VERIFY] = "verify",       [NB_CTRL_PROBE] = "probe",
	[NB_CTRL_CHALLENGE] = "challenge", [NB_CTRL_BYE] = "bye",
	[NB_CTRL_RELAYED] = "relayed",
};
static const char *const verified_words[] = { "unverified", "verified" };

#define VOCAB(w) { w, sizeof(w) / sizeof((w)[0]) }
static const struct vocab v_mapping = VOCAB(mapping_words);
static const struct vocab v_filtering = VOCAB(filtering_words);
static const struct vocab v_nat = VOCAB(nat_words);
static const struct vocab v_role = VOCAB(role_words);
static const struct vocab v_path = VOCAB(path_words);
static const struct vocab v_upnp = VOCAB(upnp_words);
static const struct vocab v_outcome = VOCAB(outcome_words);
static const struct vocab v_verified = VOCAB(verified_words);

static const char *vocab_word(const struct vocab *v, int i)
{
	if (i < 0 || (size_t)i >= v->n)
		return NULL;
	return v->words[i];
}

static int vocab_index(const struct vocab *v, const char *s)
{
	if (s == NULL)
		return -1;
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->words[i], s) == 0)
			return (int)i;
	return -1;
}

#define VOCAB_FUNCS(name, type, v)                                  \
	const char *name##_to_string(type val)                      \
	{                                                           \
		return vocab_word(&(v), (int)val);                  \
	}                                                           \
	int name##_from_string(const char *s, type *ret)            \
	{                                                           \
		int i = vocab_index(&(v), s);                       \
		if (i < 0)                                          \
			return -EINVAL;                             \
		*ret = (type)i;                                     \
		return 0;                                           \
	}

VOCAB_FUNCS(nb_mapping, enum nb_mapping, v_mapping)
VOCAB_FUNCS(nb_filtering, enum nb_filtering, v_filtering)
VOCAB_FUNCS(nb_nat_type, enum nb_nat_type, v_nat)
VOCAB_FUNCS(nb_role, enum nb_role, v_role)
VOCAB_FUNCS(nb_path, enum nb_path, v_path)

const char *nb_ctrl_type_to_string(enum nb_ctrl_type t)
{
	if ((int)t < NB_CTRL_REGISTER || (int)t > NB_CTRL_TYPE_MAX)
		return NULL;
	return type_words[t];
}

static int type_from_string(const char *s)
{
	for (int t = NB_CTRL_REGISTER; t <= NB_CTRL_TYPE_MAX; t++)
		if (strcmp(type_words[t], s) == 0)
			return t;
	return -1;
}

/* ---- Errors ---------------------------------------------------------------- */

const char *nb_ctrl_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case NB_CTRL_E_TOO_BIG:
		return "datagram longer than 1200 bytes";
	case NB_CTRL_E_NOT_OBJECT:
		return "not a JSON object (first byte is not '{')";
	case NB_CTRL_E_UTF8:
		return "invalid UTF-8";
	case NB_CTRL_E_CONTROL:
		return "control character";
	case NB_CTRL_E_DEPTH:
		return "nested too deeply";
	case NB_CTRL_E_SYNTAX:
		return "JSON syntax error";
	case NB_CTRL_E_TRAILING:
		return "bytes after the object";
	case NB_CTRL_E_DUPLICATE:
		return "duplicate key";
	case NB_CTRL_E_VERSION:
		return "unsupported protocol version";
	case NB_CTRL_E_TYPE:
		return "unknown message type";
	case NB_CTRL_E_MISSING:
		return "required field missing";
	case NB_CTRL_E_WRONG_TYPE:
		return "field has the wrong JSON type";
	case NB_CTRL_E_RANGE:
		return "number not an integer or out of range";
	case NB_CTRL_E_LENGTH:
		return "string too long or too short";
	case NB_CTRL_E_TOO_MANY:
		return "array too long";
	case NB_CTRL_E_FORMAT:
		return "string not in the required format";
	case NB_CTRL_E_ENUM:
		return "word not in the field's vocabulary";
	case NB_CTRL_E_NOMEM:
		return "out of memory";
	case NB_CTRL_E_NOSPACE:
		return "message does not fit";
	case NB_CTRL_E_INVAL:
		return "invalid argument";
	default:
		return "unknown error";
	}
}

/* Where we are, and where to say what went wrong (why == NULL: don't). */
struct ctx {
	char *why;
	size_t why_len;
	char prefix[32]; /* "peers[12]." while inside a list entry */
};

__attribute__((format(printf, 3, 4))) static int fail(struct ctx *c, int err, const char *fmt, ...)
{
	va_list ap;

	if (c->why == NULL || c->why_len == 0)
		return err;
	va_start(ap, fmt);
	vsnprintf(c->why, c->why_len, fmt, ap);
	va_end(ap);
	return err;
}

/* "field 'prefix+name': detail" */
__attribute__((format(printf, 4, 5))) static int ffail(struct ctx *c, int err, const char *name,
						       const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->why == NULL || c->why_len == 0)
		return err;
	n = snprintf(c->why, c->why_len, "field '%s%s': ", c->prefix, name);
	if (n < 0 || (size_t)n >= c->why_len)
		return err;
	va_start(ap, fmt);
	vsnprintf(c->why + n, c->why_len - (size_t)n, fmt, ap);
	va_end(ap);
	return err;
}

/* ---- UTF-8 and text -------------------------------------------------------- */

/* The length (1..4) of the well-formed UTF-8 character at p (RFC 3629 §4:
 * no overlongs, no surrogates D800-DFFF, nothing above U+10FFFF), with its
 * code point in *ret_cp; 0 if ill-formed or cut short by n. */
static size_t utf8_char(const uint8_t *p, size_t n, uint32_t *ret_cp)
{
	uint8_t b = p[0];
	uint8_t lo = 0x80, hi = 0xBF;
	size_t need;
	uint32_t cp;

	if (b < 0x80) {
		*ret_cp = b;
		return 1;
	}
	if (b >= 0xC2 && b <= 0xDF) {
		need = 1;
		cp = b & 0x1Fu;
	} else if (b >= 0xE0 && b <= 0xEF) {
		need = 2;
		cp = b & 0x0Fu;
		if (b == 0xE0)
			lo = 0xA0; /* overlong */
		else if (b == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (b >= 0xF0 && b <= 0xF4) {
		need = 3;
		cp = b & 0x07u;
		if (b == 0xF0)
			lo = 0x90; /* overlong */
		else if (b == 0xF4)
			hi = 0x8F; /* > U+10FFFF */
	} else {
		return 0; /* continuation byte, C0/C1 (overlong), F5-FF */
	}
	if (n - 1 < need)
		return 0;
	for (size_t i = 1; i <= need; i++) {
		uint8_t cb = p[i];
		if (cb < lo || cb > hi)
			return 0;
		lo = 0x80;
		hi = 0xBF;
		cp = cp << 6 | (cb & 0x3Fu);
	}
	*ret_cp = cp;
	return need + 1;
}

/* C0, DEL and C1. */
static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

/* At most size - 1 bytes of s, cut at a character boundary: for quoting a
 * piece of the input in an explanation without splitting a character. */
static const char *clip(const char *s, char *buf, size_t size)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = strlen(s), i = 0;

	while (i < n) {
		uint32_t cp;
		size_t k = utf8_char(p + i, n - i, &cp);
		if (k == 0 || k > size - 1 - i)
			break;
		i += k;
	}
	memcpy(buf, s, i);
	buf[i] = '\0';
	return buf;
}
#define CLIP_LEN 41

/* Bytes of s, reading at most max + 1 (so a too-long or unterminated field of
 * a caller's struct is caught without reading past max + 1 bytes). */
static size_t bounded_len(const char *s, size_t max)
{
	return strnlen(s, max + 1);
}

static int check_len(struct ctx *c, const char *name, const char *s, size_t min, size_t max,
		     size_t *ret_len)
{
	size_t n = bounded_len(s, max);

	if (n > max)
		return ffail(c, NB_CTRL_E_LENGTH, name, "too long (> %zu bytes)", max);
	if (n < min)
		return ffail(c, NB_CTRL_E_LENGTH, name, "too short (%zu < %zu bytes)", n, min);
	*ret_len = n;
	return 0;
}

/* Free text: UTF-8, no control characters, min..max bytes. */
static int check_text(struct ctx *c, const char *name, const char *s, size_t min, size_t max)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = 0, i = 0;
	int rc = check_len(c, name, s, min, max, &n);

	if (rc < 0)
		return rc;
	while (i < n) {
		uint32_t cp;
		size_t k = utf8_char(p + i, n - i, &cp);
		if (k == 0)
			return ffail(c, NB_CTRL_E_UTF8, name, "invalid UTF-8 at byte %zu", i);
		if (is_control(cp))
			return ffail(c, NB_CTRL_E_CONTROL, name, "control character U+%04X", cp);
		i += k;
	}
	return 0;
}

/* ASCII from [lo, hi], min..max bytes. */
static int check_ascii(struct ctx *c, const char *name, const char *s, size_t min, size_t max,
		       char lo, char hi)
{
	size_t n = 0;
	int rc = check_len(c, name, s, min, max, &n);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (s[i] < lo || s[i] > hi)
			return ffail(c, NB_CTRL_E_FORMAT, name, "byte %zu is not allowed", i);
	return 0;
}

static bool is_id_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

/* Peer ids: 1..32 of [A-Za-z0-9._-]. */
static int check_id(struct ctx *c, const char *name, const char *s)
{
	size_t n = 0;
	int rc = check_len(c, name, s, 1, NB_CTRL_ID_MAX, &n);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (!is_id_char(s[i]))
			return ffail(c, NB_CTRL_E_FORMAT, name,
				     "byte %zu: ids use only A-Z a-z 0-9 . _ -", i);
	return 0;
}

/* Exactly n lower-case hex digits. */
static int check_hex(struct ctx *c, const char *name, const char *s, size_t n)
{
	size_t len;
	int rc = check_len(c, name, s, n, n, &len);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return ffail(c, NB_CTRL_E_FORMAT, name,
				     "not %zu lower-case hex digits (byte %zu)", n, i);
	return 0;
}

/* A public key as text (common/keys.h): exactly NB_CTRL_PUBKEY_LEN
 * base64url characters. Whether it is canonical is for the key code. */
static int check_pubkey(struct ctx *c, const char *name, const char *s)
{
	size_t len;
	int rc = check_len(c, name, s, NB_CTRL_PUBKEY_LEN, NB_CTRL_PUBKEY_LEN, &len);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < NB_CTRL_PUBKEY_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-' || s[i] == '_'))
			return ffail(c, NB_CTRL_E_FORMAT, name, "not a base64url key (byte %zu)", i);
	return 0;
}

static int check_token(struct ctx *c, const char *name, const char *s)
{
	return check_ascii(c, name, s, 1, NB_CTRL_TOKEN_MAX, 0x20, 0x7E);
}

static int check_username(struct ctx *c, const char *name, const char *s)
{
	return check_ascii(c, name, s, 1, NB_CTRL_USERNAME_MAX, 0x21, 0x7E);
}

static int check_reason(struct ctx *c, const char *name, const char *s)
{
	return check_text(c, name, s, 0, NB_CTRL_REASON_MAX);
}

static int check_u32(struct ctx *c, const char *name, uint32_t v, uint32_t min, uint32_t max)
{
	if (v < min || v > max)
		return ffail(c, NB_CTRL_E_RANGE, name, "%u not in %u..%u", v, min, max);
	return 0;
}

static int check_word(struct ctx *c, const char *name, const struct vocab *v, int val)
{
	if (vocab_word(v, val) == NULL)
		return ffail(c, NB_CTRL_E_ENUM, name, "value %d is not in the vocabulary", val);
	return 0;
}

/* An address we are about to encode: a family, and a port. */
static int check_addr(struct ctx *c, const char *name, const struct nb_addr *a)
{
	if (a->family != NB_AF_INET && a->family != NB_AF_INET6)
		return ffail(c, NB_CTRL_E_FORMAT, name, "no address family");
	if (a->port == 0)
		return ffail(c, NB_CTRL_E_FORMAT, name, "port 0");
	return 0;
}

static void copy_str(char *dst, const char *src)
{
	memcpy(dst, src, strlen(src) + 1); /* length checked against dst's size already */
}

/* ---- Raw pre-scan ------------------------------------------------------------
 * Before cJSON sees the bytes: the whole datagram is well-formed UTF-8; no
 * control characters anywhere except JSON whitespace between tokens (cJSON
 * itself skips any byte <= 0x20 as whitespace, NUL included); strings hold
 * no control character, raw or escaped, and only the escapes JSON defines
 * (cJSON reads "\uZZZZ" as U+0000); surrogate escapes come in pairs;
 * numbers are plain integers of at most 15 digits; objects and arrays nest
 * at most NB_CTRL_MAX_DEPTH deep (cJSON's own limit is 1000).
 */

static int hex4(const uint8_t *p)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		uint8_t b = p[i];
		int d;
		if (b >= '0' && b <= '9')
			d = b - '0';
		else if (b >= 'a' && b <= 'f')
			d = b - 'a' + 10;
		else if (b >= 'A' && b <= 'F')
			d = b - 'A' + 10;
		else
			return -1;
		v = v << 4 | d;
	}
	return v;
}

static bool is_digit(uint8_t b)
{
	return b >= '0' && b <= '9';
}

#define NB_CTRL_MAX_DIGITS 15 /* integers stay exact in a double */

/* A number at p[0] ('-' or a digit): -?(0|[1-9][0-9]*), no fraction or
 * exponent. Sets *ret_len. */
static int scan_number(struct ctx *c, const uint8_t *p, size_t n, size_t off, size_t *ret_len)
{
	size_t i = 0, digits;

	if (p[0] == '-')
		i++;
	if (i == n || !is_digit(p[i]))
		return fail(c, NB_CTRL_E_SYNTAX, "'-' without digits at offset %zu", off);
	if (p[i] == '0') {
		i++;
		if (i < n && is_digit(p[i]))
			return fail(c, NB_CTRL_E_SYNTAX, "number with a leading zero at offset %zu",
				    off);
	} else {
		while (i < n && is_digit(p[i]))
			i++;
	}
	digits = i - (p[0] == '-' ? 1u : 0u);
	if (i < n && (p[i] == '.' || p[i] == 'e' || p[i] == 'E'))
		return fail(c, NB_CTRL_E_RANGE,
			    "number at offset %zu is not a plain integer (fraction or exponent)",
			    off);
	if (digits > NB_CTRL_MAX_DIGITS)
		return fail(c, NB_CTRL_E_RANGE, "number at offset %zu has more than %d digits", off,
			    NB_CTRL_MAX_DIGITS);
	*ret_len = i;
	return 0;
}

/* One string body, from just after its opening quote; sets *ret_len to the
 * bytes up to and including the closing quote. */
static int scan_string(struct ctx *c, const uint8_t *buf, size_t len, size_t start,
		       size_t *ret_len)
{
	size_t i = start;

	while (i < len) {
		uint8_t b = buf[i];
		uint32_t cp;
		size_t k;

		if (b == '"') {
			*ret_len = i + 1 - start;
			return 0;
		}
		if (b == '\\') {
			if (len - i < 2)
				break;
			switch (buf[i + 1]) {
			case '"':
			case '\\':
			case '/':
				i += 2;
				continue;
			case 'b':
			case 'f':
			case 'n':
			case 'r':
			case 't':
				return fail(c, NB_CTRL_E_CONTROL,
					    "escaped control character at offset %zu", i);
			case 'u':
				break;
			default:
				return fail(c, NB_CTRL_E_SYNTAX, "bad escape at offset %zu", i);
			}
			int u;
			if (len - i < 6 || (u = hex4(buf + i + 2)) < 0)
				return fail(c, NB_CTRL_E_SYNTAX, "bad \\u escape at offset %zu", i);
			if (u >= 0xDC00 && u <= 0xDFFF)
				return fail(c, NB_CTRL_E_UTF8, "unpaired surrogate at offset %zu",
					    i);
			if (u >= 0xD800 && u <= 0xDBFF) {
				int lo2;
				/* RFC 8259 §7: a pair is "\uD834\uDD1E" */
				if (len - i < 12 || buf[i + 6] != '\\' || buf[i + 7] != 'u' ||
				    (lo2 = hex4(buf + i + 8)) < 0xDC00 || lo2 > 0xDFFF)
					return fail(c, NB_CTRL_E_UTF8,
						    "unpaired surrogate at offset %zu", i);
				i += 12;
				continue;
			}
			if (is_control((uint32_t)u))
				return fail(c, NB_CTRL_E_CONTROL,
					    "escaped control character at offset %zu", i);
			i += 6;
			continue;
		}
		k = utf8_char(buf + i, len - i, &cp);
		if (k == 0)
			return fail(c, NB_CTRL_E_UTF8, "invalid UTF-8 at offset %zu", i);
		if (is_control(cp))
			return fail(c, NB_CTRL_E_CONTROL, "control character 0x%02X at offset %zu",
				    cp, i);
		i += k;
	}
	return fail(c, NB_CTRL_E_SYNTAX, "unterminated string");
}

static int scan(struct ctx *c, const uint8_t *buf, size_t len)
{
	size_t i = 0;
	int depth = 0;

	while (i < len) {
		uint8_t b = buf[i];
		size_t k = 0;
		uint32_t cp;
		int rc;

		switch (b) {
		case '"':
			rc = scan_string(c, buf, len, i + 1, &k);
			if (rc < 0)
				return rc;
			i += 1 + k;
			continue;
		case '{':
		case '[':
			if (++depth > NB_CTRL_MAX_DEPTH)
				return fail(c, NB_CTRL_E_DEPTH, "nested over %d deep at offset %zu",
					    NB_CTRL_MAX_DEPTH, i);
			i++;
			continue;
		case '}':
		case ']':
			if (depth > 0)
				depth--;
			i++;
			continue;
		case ' ':
		case '\t':
		case '\n':
		case '\r':
		case ':':
		case ',':
			i++;
			continue;
		default:
			break;
		}
		if (b == '-' || is_digit(b)) {
			rc = scan_number(c, buf + i, len - i, i, &k);
			if (rc < 0)
				return rc;
			i += k;
			continue;
		}
		if (b >= 'a' && b <= 'z') { /* true, false, null: cJSON checks the words */
			i++;
			continue;
		}
		if (b == 0)
			return fail(c, NB_CTRL_E_CONTROL, "NUL byte at offset %zu", i);
		if (b < 0x20 || b == 0x7F)
			return fail(c, NB_CTRL_E_CONTROL, "control byte 0x%02X at offset %zu", b,
				    i);
		if (b >= 0x80 && utf8_char(buf + i, len - i, &cp) == 0)
			return fail(c, NB_CTRL_E_UTF8, "invalid UTF-8 at offset %zu", i);
		return fail(c, NB_CTRL_E_SYNTAX, "unexpected byte 0x%02X at offset %zu", b, i);
	}
	return 0;
}

/* RFC 8259 §4: "The names within an object SHOULD be unique." We make it a
 * MUST: cJSON keeps both and its getters return the first, so two parsers
 * could disagree about one message. Quadratic per object, bounded by the
 * datagram size (at most ~200 keys in 1200 bytes). */
static int check_dups(struct ctx *c, const cJSON *node)
{
	for (const cJSON *a = node->child; a != NULL; a = a->next) {
		if (cJSON_IsObject(node))
			for (const cJSON *b = node->child; b != a; b = b->next)
				if (strcmp(a->string, b->string) == 0) {
					char q[CLIP_LEN];
					return fail(c, NB_CTRL_E_DUPLICATE,
						    "key '%s' appears twice in one object",
						    clip(a->string, q, sizeof(q)));
				}
		if (a->child != NULL) {
			int rc = check_dups(c, a);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* Everything before fields are read: size, first byte, the raw scan, cJSON,
 * nothing after the object, no duplicate keys. *ret_root is the caller's to
 * cJSON_Delete() on success. */
static int parse(struct ctx *c, const uint8_t *buf, size_t len, cJSON **ret_root)
{
	char tmp[NB_CTRL_MAX_DATAGRAM + 1];
	const char *end = NULL;
	cJSON *root;
	int rc;

	if (len > NB_CTRL_MAX_DATAGRAM)
		return fail(c, NB_CTRL_E_TOO_BIG, "%zu bytes: longer than %d", len,
			    NB_CTRL_MAX_DATAGRAM);
	if (buf == NULL || len == 0 || buf[0] != NB_CTRL_FIRST_BYTE)
		return fail(c, NB_CTRL_E_NOT_OBJECT, "first byte is not '{'");
	rc = scan(c, buf, len);
	if (rc < 0)
		return rc;
	/* A NUL-terminated private copy: cJSON never reads the caller's bytes,
	 * so it can neither modify them nor read one past their end. */
	memcpy(tmp, buf, len);
	tmp[len] = '\0';
	root = cJSON_ParseWithLengthOpts(tmp, len, &end, false);
	if (root == NULL)
		return fail(c, NB_CTRL_E_SYNTAX, "not valid JSON (near offset %zu)",
			    end != NULL ? (size_t)(end - tmp) : (size_t)0);
	if (end != tmp + len) {
		cJSON_Delete(root);
		return fail(c, NB_CTRL_E_TRAILING, "%zu byte(s) after the object",
			    len - (size_t)(end - tmp));
	}
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return fail(c, NB_CTRL_E_NOT_OBJECT, "top level is not an object");
	}
	rc = check_dups(c, root);
	if (rc < 0) {
		cJSON_Delete(root);
		return rc;
	}
	*ret_root = root;
	return 0;
}

/* ---- Field getters (decode) -------------------------------------------------
 * Each returns 0 when the field was present and valid, 1 when it was absent
 * and optional, or a negative error. Outputs are written only on 0. */

static const cJSON *get(const cJSON *obj, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(obj, name);
}

static int get_str(struct ctx *c, const cJSON *obj, const char *name, bool required,
		   const char **ret)
{
	const cJSON *it = get(obj, name);

	if (it == NULL)
		return required ? ffail(c, NB_CTRL_E_MISSING, name, "missing") : 1;
	if (!cJSON_IsString(it) || it->valuestring == NULL)
		return ffail(c, NB_CTRL_E_WRONG_TYPE, name, "not a string");
	*ret = it->valuestring;
	return 0;
}

static int get_id(struct ctx *c, const cJSON *obj, const char *name, char *out)
{
	const char *s = NULL;
	int rc = get_str(c, obj, name, true, &s);

	if (rc == 0 && (rc = check_id(c, name, s)) == 0)
		copy_str(out, s);
	return rc;
}

static int get_hex(struct ctx *c, const cJSON *obj, const char *name, size_t n, char *out)
{
	const char *s = NULL;
	int rc = get_str(c, obj, name, true, &s);

	if (rc == 0 && (rc = check_hex(c, name, s, n)) == 0)
		copy_str(out, s);
	return rc;
}

static int get_reason(struct ctx *c, const cJSON *obj, const char *name, bool required, char *out)
{
	const char *s = NULL;
	int rc = get_str(c, obj, name, required, &s);

	if (rc == 0 && (rc = check_reason(c, name, s)) == 0)
		copy_str(out, s);
	return rc;
}

static int get_u32(struct ctx *c, const cJSON *obj, const char *name, bool required,
		   uint32_t min, uint32_t max, uint32_t *ret)
{
	const cJSON *it = get(obj, name);
	double d;
	uint32_t v;

	if (it == NULL)
		return required ? ffail(c, NB_CTRL_E_MISSING, name, "missing") : 1;
	if (!cJSON_IsNumber(it))
		return ffail(c, NB_CTRL_E_WRONG_TYPE, name, "not a number");
	d = it->valuedouble;
	if (!(d >= (double)min && d <= (double)max)) /* also NaN */
		return ffail(c, NB_CTRL_E_RANGE, name, "%.0f not in %u..%u", d, min, max);
	v = (uint32_t)d;
	if ((double)v != d)
		return ffail(c, NB_CTRL_E_RANGE, name, "not an integer");
	*ret = v;
	return 0;
}

static int get_bool(struct ctx *c, const cJSON *obj, const char *name, bool *ret)
{
	const cJSON *it = get(obj, name);

	if (it == NULL)
		return 1;
	if (!cJSON_IsBool(it))
		return ffail(c, NB_CTRL_E_WRONG_TYPE, name, "not true or false");
	*ret = cJSON_IsTrue(it);
	return 0;
}

static int get_word(struct ctx *c, const cJSON *obj, const char *name, bool required,
		    const struct vocab *v, int *ret)
{
	const char *s = NULL;
	int rc = get_str(c, obj, name, required, &s);
	int i;

	if (rc != 0)
		return rc;
	i = vocab_index(v, s);
	if (i < 0) {
		char q[CLIP_LEN];
		return ffail(c, NB_CTRL_E_ENUM, name, "'%s' is not one of its words",
			     clip(s, q, sizeof(q)));
	}
	*ret = i;
	return 0;
}

static int get_obj(struct ctx *c, const cJSON *obj, const char *name, bool required,
		   const cJSON **ret)
{
	const cJSON *it = get(obj, name);

	if (it == NULL)
		return required ? ffail(c, NB_CTRL_E_MISSING, name, "missing") : 1;
	if (!cJSON_IsObject(it))
		return ffail(c, NB_CTRL_E_WRONG_TYPE, name, "not an object");
	*ret = it;
	return 0;
}

static int get_arr(struct ctx *c, const cJSON *obj, const char *name, size_t max,
		   const cJSON **ret, size_t *ret_n)
{
	const cJSON *it = get(obj, name);
	size_t n = 0;

	if (it == NULL)
		return ffail(c, NB_CTRL_E_MISSING, name, "missing");
	if (!cJSON_IsArray(it))
		return ffail(c, NB_CTRL_E_WRONG_TYPE, name, "not an array");
	for (const cJSON *e = it->child; e != NULL; e = e->next)
		if (++n > max)
			return ffail(c, NB_CTRL_E_TOO_MANY, name, "more than %zu elements", max);
	*ret = it;
	*ret_n = n;
	return 0;
}

/* "ip:port" in the form nb_addr_format() writes (so it re-encodes to the
 * same bytes and never grows), port not 0. */
static int parse_addr(struct ctx *c, const char *name, const char *s, struct nb_addr *ret)
{
	char canon[NB_ADDR_STRLEN];
	struct nb_addr a;
	size_t n = 0;
	int rc = check_len(c, name, s, 1, NB_ADDR_STRLEN - 1, &n);

	if (rc < 0)
		return rc;
	if (nb_addr_parse(s, false, &a) < 0)
		return ffail(c, NB_CTRL_E_FORMAT, name, "not ip:port");
	if (a.port == 0)
		return ffail(c, NB_CTRL_E_FORMAT, name, "port 0");
	nb_addr_format(&a, canon, sizeof(canon));
	if (strcmp(canon, s) != 0)
		return ffail(c, NB_CTRL_E_FORMAT, name, "not in canonical form (%s)", canon);
	*ret = a;
	return 0;
}

static int get_addr(struct ctx *c, const cJSON *obj, const char *name, bool required,
		    struct nb_addr *ret)
{
	const char *s = NULL;
	int rc = get_str(c, obj, name, required, &s);

	if (rc != 0)
		return rc;
	return parse_addr(c, name, s, ret);
}

static int get_addrs(struct ctx *c, const cJSON *obj, const char *name, struct nb_addr *out,
		     size_t *ret_n)
{
	const cJSON *arr;
	size_t n = 0, i = 0;
	int rc = get_arr(c, obj, name, NB_CTRL_MAX_ADDRS, &arr, &n);

	if (rc < 0)
		return rc;
	for (const cJSON *e = arr->child; e != NULL; e = e->next, i++) {
		char el[48];
		snprintf(el, sizeof(el), "%s[%zu]", name, i);
		if (!cJSON_IsString(e) || e->valuestring == NULL)
			return ffail(c, NB_CTRL_E_WRONG_TYPE, el, "not a string");
		rc = parse_addr(c, el, e->valuestring, &out[i]);
		if (rc < 0)
			return rc;
	}
	*ret_n = n;
	return 0;
}

static void set_prefix(struct ctx *c, const char *name, size_t idx, bool indexed)
{
	if (name == NULL)
		c->prefix[0] = '\0';
	else if (indexed)
		snprintf(c->prefix, sizeof(c->prefix), "%s[%zu].", name, idx);
	else
		snprintf(c->prefix, sizeof(c->prefix), "%s.", name);
}

/* ---- Per-type decoders ------------------------------------------------------ */

static int dec_register(struct ctx *c, const cJSON *o, struct nb_ctrl_register *r)
{
	const cJSON *sub = NULL;
	const char *s = NULL;
	int rc, w;

	if ((rc = get_id(c, o, "id", r->id)) < 0)
		return rc;
	rc = get_str(c, o, "token", false, &s);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		if ((rc = check_token(c, "token", s)) < 0)
			return rc;
		copy_str(r->token, s);
	}
	if ((rc = get_addrs(c, o, "local", r->local, &r->n_local)) < 0)
		return rc;
	if (get(o, "cookie") != NULL && (rc = get_hex(c, o, "cookie", NB_CTRL_COOKIE_LEN, r->cookie)) < 0)
		return rc;

	rc = get_obj(c, o, "nat", false, &sub);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		r->has_nat = true;
		set_prefix(c, "nat", 0, false);
		if ((rc = get_word(c, sub, "mapping", true, &v_mapping, &w)) < 0)
			return rc;
		r->mapping = (enum nb_mapping)w;
		if ((rc = get_word(c, sub, "filtering", true, &v_filtering, &w)) < 0)
			return rc;
		r->filtering = (enum nb_filtering)w;
		rc = get_bool(c, sub, "hairpin", &r->hairpin);
		if (rc < 0)
			return rc;
		r->has_hairpin = rc == 0;
		set_prefix(c, NULL, 0, false);
	}

	rc = get_obj(c, o, "upnp", false, &sub);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		r->has_upnp = true;
		set_prefix(c, "upnp", 0, false);
		if ((rc = get_word(c, sub, "status", true, &v_upnp, &w)) < 0)
			return rc;
		r->upnp = (enum nb_ctrl_upnp_status)w;
		if (r->upnp == NB_CTRL_UPNP_MAPPED) {
			if ((rc = get_addr(c, sub, "external", true, &r->upnp_external)) < 0)
				return rc;
			if (get(sub, "proof") != NULL &&
			    (rc = get_hex(c, sub, "proof", NB_CTRL_PROOF_LEN, r->upnp_proof)) < 0)
				return rc;
		} else if (get(sub, "external") != NULL) {
			return ffail(c, NB_CTRL_E_FORMAT, "external", "only with status 'mapped'");
		} else if (get(sub, "proof") != NULL) {
			return ffail(c, NB_CTRL_E_FORMAT, "proof", "only with status 'mapped'");
		}
		set_prefix(c, NULL, 0, false);
	}
	rc = get_addr(c, o, "relayed", false, &r->relayed);
	if (rc < 0)
		return rc;
	r->has_relayed = rc == 0;
	rc = get_bool(c, o, "also", &r->also);
	return rc < 0 ? rc : 0;
}

static int dec_relay(struct ctx *c, const cJSON *o, struct nb_ctrl_relay *r);

static int dec_registered(struct ctx *c, const cJSON *o, struct nb_ctrl_registered *r)
{
	int rc, w = 0;

	if ((rc = get_id(c, o, "id", r->id)) < 0 ||
	    (rc = get_addr(c, o, "reflexive", true, &r->reflexive)) < 0 ||
	    (rc = get_u32(c, o, "keepalive", true, NB_CTRL_KEEPALIVE_MIN_S, NB_CTRL_KEEPALIVE_MAX_S,
			  &r->keepalive_s)) < 0 ||
	    (rc = get_u32(c, o, "expires", true, NB_CTRL_EXPIRES_MIN_S, NB_CTRL_EXPIRES_MAX_S,
			  &r->expires_s)) < 0)
		return rc;
	rc = get_word(c, o, "upnp", false, &v_verified, &w);
	if (rc < 0)
		return rc;
	r->has_upnp = rc == 0;
	r->upnp_verified = r->has_upnp && w == 1;
	if ((rc = dec_relay(c, o, &r->relay)) < 0)
		return rc;
	if (r->relay.has_relay && !r->relay.alloc)
		return ffail(c, NB_CTRL_E_FORMAT, "relay", "registered carries credentials (alloc)");
	rc = get_addr(c, o, "alt", false, &r->alt);
	if (rc < 0)
		return rc;
	r->has_alt = rc == 0;
	return 0;
}

static int dec_family(struct ctx *c, const cJSON *o, const char *name, uint8_t *ret);
static int enc_family(struct ctx *c, cJSON *o, const char *name, uint8_t v);

/* "relay":{"alloc":bool[,"server":addr,"user":str,"pass":str,"family":4|6]}:
 * server, user and pass are required with alloc true, and these and family
 * refused without. */
static int check_relay_str(struct ctx *c, const char *name, const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n < 1 || n > max)
		return ffail(c, NB_CTRL_E_LENGTH, name, "1 to %zu bytes", max);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7E)
			return ffail(c, NB_CTRL_E_FORMAT, name, "printable ASCII without spaces only");
	return 0;
}

static int dec_relay(struct ctx *c, const cJSON *o, struct nb_ctrl_relay *r)
{
	const cJSON *ro = NULL;
	const char *s = NULL;
	int rc = get_obj(c, o, "relay", false, &ro);

	if (rc != 0)
		return rc < 0 ? rc : 0;
	r->has_relay = true;
	if ((rc = get_bool(c, ro, "alloc", &r->alloc)) < 0)
		return rc;
	if (rc > 0)
		return ffail(c, NB_CTRL_E_MISSING, "relay.alloc", "missing");
	if (!r->alloc) {
		if (get(ro, "server") != NULL || get(ro, "user") != NULL || get(ro, "pass") != NULL ||
		    get(ro, "family") != NULL)
			return ffail(c, NB_CTRL_E_FORMAT, "relay", "server, credentials and family only with alloc");
		rc = get_addr(c, ro, "relayed", false, &r->relayed);
		if (rc < 0)
			return rc;
		r->has_relayed = rc == 0;
		return 0;
	}
	if (get(ro, "relayed") != NULL)
		return ffail(c, NB_CTRL_E_FORMAT, "relay", "relayed only without alloc");
	if ((rc = get_addr(c, ro, "server", true, &r->server)) < 0)
		return rc;
	if ((rc = get_str(c, ro, "user", true, &s)) < 0 ||
	    (rc = check_relay_str(c, "relay.user", s, NB_CTRL_RELAY_USER_MAX)) < 0)
		return rc;
	copy_str(r->user, s);
	if ((rc = get_str(c, ro, "pass", true, &s)) < 0 ||
	    (rc = check_relay_str(c, "relay.pass", s, NB_CTRL_RELAY_PASS_MAX)) < 0)
		return rc;
	copy_str(r->pass, s);
	return dec_family(c, ro, "family", &r->family);
}

/* "birthday": in a plan every field is required and at least 1; in a
 * result or a pair each is optional (0 = absent) and one must be there. */
static int dec_birthday(struct ctx *c, const cJSON *o, bool plan, struct nb_ctrl_birthday *b)
{
	const cJSON *bo = NULL;
	uint32_t port = 0;
	int rc = get_obj(c, o, "birthday", false, &bo);

	if (rc != 0)
		return rc < 0 ? rc : 0;
	if ((rc = get_u32(c, bo, "sockets", plan, plan ? 1 : 0, NB_CTRL_BDAY_SOCKETS_MAX,
			  &b->sockets)) < 0 ||
	    (rc = get_u32(c, bo, "probes", plan, plan ? 1 : 0, NB_CTRL_BDAY_PROBES_MAX,
			  &b->probes)) < 0 ||
	    (rc = get_u32(c, bo, "rate", plan, plan ? 1 : 0, NB_CTRL_BDAY_RATE_MAX, &b->rate)) < 0)
		return rc;
	if (plan && get(bo, "port") != NULL)
		return ffail(c, NB_CTRL_E_FORMAT, "birthday.port", "not in a plan");
	if (!plan && (rc = get_u32(c, bo, "port", false, 0, 65535, &port)) < 0)
		return rc;
	b->port = (uint16_t)port;
	if (!plan && b->sockets == 0 && b->probes == 0 && b->rate == 0 && b->port == 0)
		return ffail(c, NB_CTRL_E_FORMAT, "birthday", "empty");
	b->has = true;
	return 0;
}

static int dec_plan(struct ctx *c, const cJSON *o, struct nb_ctrl_plan *p)
{
	const char *s = NULL;
	int rc, w;

	if ((rc = get_hex(c, o, "session", NB_CTRL_SESSION_LEN, p->session)) < 0 ||
	    (rc = get_id(c, o, "peer", p->peer)) < 0)
		return rc;
	if ((rc = get_word(c, o, "role", true, &v_role, &w)) < 0)
		return rc;
	p->role = (enum nb_role)w;
	if ((rc = get_word(c, o, "path", true, &v_path, &w)) < 0)
		return rc;
	p->path = (enum nb_path)w;
	if ((rc = get_reason(c, o, "reason", true, p->reason)) < 0 ||
	    (rc = get_addrs(c, o, "candidates", p->candidates, &p->n_candidates)) < 0)
		return rc;
	if ((rc = get_str(c, o, "username", true, &s)) < 0 ||
	    (rc = check_username(c, "username", s)) < 0)
		return rc;
	copy_str(p->username, s);
	if ((rc = get_str(c, o, "peer_key", true, &s)) < 0 || (rc = check_pubkey(c, "peer_key", s)) < 0)
		return rc;
	copy_str(p->peer_key, s);
	if ((rc = get_u32(c, o, "deadline_ms", true, NB_CTRL_DEADLINE_MIN_MS,
			  NB_CTRL_DEADLINE_MAX_MS, &p->deadline_ms)) < 0 ||
	    (rc = get_u32(c, o, "delay_ms", false, 0, NB_CTRL_DELAY_MAX_MS, &p->delay_ms)) < 0 ||
	    (rc = dec_birthday(c, o, true, &p->birthday)) < 0)
		return rc;
	if (p->birthday.has != (p->path == NB_PATH_BIRTHDAY))
		return ffail(c, NB_CTRL_E_FORMAT, "birthday", "exactly with path 'birthday'");
	if ((p->role == NB_ROLE_SPRAY || p->role == NB_ROLE_PROBE) != (p->path == NB_PATH_BIRTHDAY))
		return ffail(c, NB_CTRL_E_FORMAT, "role", "spray and probe exactly with path 'birthday'");
	return dec_relay(c, o, &p->relay);
}

static int dec_result(struct ctx *c, const cJSON *o, struct nb_ctrl_result *r)
{
	int rc, w;

	if ((rc = get_hex(c, o, "session", NB_CTRL_SESSION_LEN, r->session)) < 0 ||
	    (rc = get_id(c, o, "id", r->id)) < 0)
		return rc;
	if ((rc = get_word(c, o, "outcome", true, &v_outcome, &w)) < 0)
		return rc;
	r->outcome = (enum nb_ctrl_outcome)w;
	if ((rc = get_word(c, o, "path", true, &v_path, &w)) < 0)
		return rc;
	r->path = (enum nb_path)w;
	rc = get_addr(c, o, "remote", false, &r->remote);
	if (rc < 0)
		return rc;
	r->has_remote = rc == 0;
	if ((rc = get_u32(c, o, "ms", true, 0, UINT32_MAX, &r->ms)) < 0 ||
	    (rc = get_reason(c, o, "reason", false, r->reason)) < 0 ||
	    (rc = dec_birthday(c, o, false, &r->birthday)) < 0)
		return rc;
	return 0;
}

static int dec_error(struct ctx *c, const cJSON *o, struct nb_ctrl_error *e)
{
	uint32_t code;
	int rc;

	if ((rc = get_u32(c, o, "code", true, NB_CTRL_CODE_MIN, NB_CTRL_CODE_MAX, &code)) < 0 ||
	    (rc = get_reason(c, o, "reason", true, e->reason)) < 0)
		return rc;
	e->code = (uint16_t)code;
	return 0;
}

/* offset + n <= total, in 64 bits. */
static int check_page(struct ctx *c, const char *name, uint32_t total, uint32_t offset, size_t n)
{
	if ((uint64_t)offset + n > total)
		return ffail(c, NB_CTRL_E_RANGE, name, "offset %u + %zu entries > total %u", offset,
			     n, total);
	return 0;
}

static int dec_peer_info(struct ctx *c, const cJSON *o, struct nb_ctrl_peer_info *p)
{
	const cJSON *sub = NULL;
	char saved[sizeof(c->prefix)];
	int rc, w;

	if ((rc = get_id(c, o, "id", p->id)) < 0)
		return rc;
	if ((rc = get_word(c, o, "nat", true, &v_nat, &w)) < 0)
		return rc;
	p->nat = (enum nb_nat_type)w;
	if ((rc = get_word(c, o, "mapping", true, &v_mapping, &w)) < 0)
		return rc;
	p->mapping = (enum nb_mapping)w;
	if ((rc = get_word(c, o, "filtering", true, &v_filtering, &w)) < 0)
		return rc;
	p->filtering = (enum nb_filtering)w;
	if ((rc = get_addr(c, o, "reflexive", true, &p->reflexive)) < 0)
		return rc;
	rc = get_obj(c, o, "alt", false, &sub);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	p->has_alt = true;
	/* "peers[2]." -> "peers[2].alt." for the messages, then back */
	memcpy(saved, c->prefix, sizeof(saved));
	if (strlen(saved) + 4 < sizeof(c->prefix))
		memcpy(c->prefix + strlen(saved), "alt.", 5);
	if ((rc = get_addr(c, sub, "reflexive", true, &p->alt)) < 0)
		return rc;
	if ((rc = get_word(c, sub, "mapping", true, &v_mapping, &w)) < 0)
		return rc;
	p->alt_mapping = (enum nb_mapping)w;
	if ((rc = get_word(c, sub, "filtering", true, &v_filtering, &w)) < 0)
		return rc;
	p->alt_filtering = (enum nb_filtering)w;
	memcpy(c->prefix, saved, sizeof(saved));
	return 0;
}

/* An IP family field: 4 or 6 (absent: 0). */
static int dec_family(struct ctx *c, const cJSON *o, const char *name, uint8_t *ret)
{
	uint32_t v = 0;
	int rc = get_u32(c, o, name, false, 4, 6, &v);

	if (rc < 0)
		return rc;
	if (rc == 0 && v == 5)
		return ffail(c, NB_CTRL_E_RANGE, name, "4 or 6");
	*ret = (uint8_t)v;
	return 0;
}

static int dec_pair(struct ctx *c, const cJSON *o, struct nb_ctrl_pair *p)
{
	int rc, w;

	if ((rc = get_id(c, o, "a", p->a)) < 0 || (rc = get_id(c, o, "b", p->b)) < 0)
		return rc;
	if ((rc = get_word(c, o, "predicted", true, &v_path, &w)) < 0)
		return rc;
	p->predicted = (enum nb_path)w;
	if ((rc = get_word(c, o, "role_a", true, &v_role, &w)) < 0)
		return rc;
	p->role_a = (enum nb_role)w;
	if ((rc = get_word(c, o, "role_b", true, &v_role, &w)) < 0)
		return rc;
	p->role_b = (enum nb_role)w;
	if ((rc = get_reason(c, o, "reason", false, p->reason)) < 0 ||
	    (rc = dec_birthday(c, o, false, &p->birthday)) < 0)
		return rc;
	rc = get_word(c, o, "measured", false, &v_path, &w);
	if (rc < 0)
		return rc;
	p->has_measured = rc == 0;
	if ((rc = dec_family(c, o, "plan_family", &p->plan_family)) < 0 ||
	    (rc = dec_family(c, o, "family", &p->family)) < 0)
		return rc;
	if (p->family != 0 && (!p->has_measured || w == NB_PATH_NONE))
		return ffail(c, NB_CTRL_E_FORMAT, "family", "only with a measured path");
	if (p->has_measured) {
		p->measured = (enum nb_path)w;
		return get_u32(c, o, "ms", true, 0, UINT32_MAX, &p->ms);
	}
	if (get(o, "ms") != NULL)
		return ffail(c, NB_CTRL_E_FORMAT, "ms", "only with 'measured'");
	return 0;
}

/* peer_list and matrix_list share the page shape. */
static int dec_list(struct ctx *c, const cJSON *o, const char *name, uint32_t *total,
		    uint32_t *offset, size_t *ret_n, void *entries, size_t entry_size,
		    int (*dec_entry)(struct ctx *, const cJSON *, void *))
{
	const cJSON *arr;
	size_t n = 0, i = 0;
	int rc;

	if ((rc = get_u32(c, o, "total", true, 0, UINT32_MAX, total)) < 0 ||
	    (rc = get_u32(c, o, "offset", true, 0, UINT32_MAX, offset)) < 0 ||
	    (rc = get_arr(c, o, name, NB_CTRL_MAX_PAGE, &arr, &n)) < 0 ||
	    (rc = check_page(c, name, *total, *offset, n)) < 0)
		return rc;
	for (const cJSON *e = arr->child; e != NULL; e = e->next, i++) {
		if (!cJSON_IsObject(e)) {
			char el[48];
			snprintf(el, sizeof(el), "%s[%zu]", name, i);
			return ffail(c, NB_CTRL_E_WRONG_TYPE, el, "not an object");
		}
		set_prefix(c, name, i, true);
		rc = dec_entry(c, e, (char *)entries + i * entry_size);
		if (rc < 0)
			return rc;
		set_prefix(c, NULL, 0, false);
	}
	*ret_n = n;
	return 0;
}

static int dec_peer_entry(struct ctx *c, const cJSON *o, void *p)
{
	return dec_peer_info(c, o, p);
}

static int dec_pair_entry(struct ctx *c, const cJSON *o, void *p)
{
	return dec_pair(c, o, p);
}

static int dec_body(struct ctx *c, const cJSON *o, struct nb_ctrl_msg *m)
{
	int rc;

	switch (m->type) {
	case NB_CTRL_REGISTER:
		return dec_register(c, o, &m->u.reg);
	case NB_CTRL_REGISTERED:
		return dec_registered(c, o, &m->u.registered);
	case NB_CTRL_KEEPALIVE:
		return get_id(c, o, "id", m->u.keepalive.id);
	case NB_CTRL_BYE:
		return get_id(c, o, "id", m->u.bye.id);
	case NB_CTRL_RELAYED:
		if ((rc = get_hex(c, o, "session", NB_CTRL_SESSION_LEN, m->u.relayed.session)) < 0 ||
		    (rc = get_id(c, o, "id", m->u.relayed.id)) < 0)
			return rc;
		return get_addr(c, o, "relayed", true, &m->u.relayed.relayed);
	case NB_CTRL_CONNECT:
		if ((rc = get_id(c, o, "id", m->u.connect.id)) < 0)
			return rc;
		return get_id(c, o, "peer", m->u.connect.peer);
	case NB_CTRL_PLAN:
		return dec_plan(c, o, &m->u.plan);
	case NB_CTRL_RESULT:
		return dec_result(c, o, &m->u.result);
	case NB_CTRL_ERROR:
		return dec_error(c, o, &m->u.error);
	case NB_CTRL_ACK:
		return 0;
	case NB_CTRL_PEERS:
	case NB_CTRL_MATRIX: {
		const char *pad = NULL;
		rc = get_u32(c, o, "offset", false, 0, UINT32_MAX, &m->u.query.offset);
		if (rc < 0)
			return rc;
		rc = get_str(c, o, "pad", false, &pad);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			size_t n = strlen(pad);
			if (n > NB_CTRL_PAD_MAX)
				return ffail(c, NB_CTRL_E_LENGTH, "pad", "longer than %d", NB_CTRL_PAD_MAX);
			m->u.query.pad = (uint16_t)n;
		}
		rc = get_str(c, o, "admin", false, &pad);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			if ((rc = check_token(c, "admin", pad)) < 0)
				return rc;
			copy_str(m->u.query.admin, pad);
		}
		return 0;
	}
	case NB_CTRL_CHALLENGE:
		return get_hex(c, o, "cookie", NB_CTRL_COOKIE_LEN, m->u.challenge.cookie);
	case NB_CTRL_PEER_LIST:
		return dec_list(c, o, "peers", &m->u.peer_list.total, &m->u.peer_list.offset,
				&m->u.peer_list.n_peers, m->u.peer_list.peers,
				sizeof(m->u.peer_list.peers[0]), dec_peer_entry);
	case NB_CTRL_VERIFY: {
		int vr = get_addr(c, o, "external", true, &m->u.verify.external);

		if (vr < 0 || (vr = get_bool(c, o, "tcp", &m->u.verify.tcp)) < 0)
			return vr;
		return 0;
	}
	case NB_CTRL_PROBE:
		return get_hex(c, o, "proof", NB_CTRL_PROOF_LEN, m->u.probe.proof);
	case NB_CTRL_MATRIX_LIST:
		return dec_list(c, o, "pairs", &m->u.matrix_list.total, &m->u.matrix_list.offset,
				&m->u.matrix_list.n_pairs, m->u.matrix_list.pairs,
				sizeof(m->u.matrix_list.pairs[0]), dec_pair_entry);
	}
	return fail(c, NB_CTRL_E_TYPE, "unknown type");
}

/* "v", then "type", then "tx". */
static int dec_header(struct ctx *c, const cJSON *root, struct nb_ctrl_msg *m)
{
	const cJSON *v = get(root, "v");
	const char *s = NULL;
	int rc, t;

	if (v == NULL)
		return ffail(c, NB_CTRL_E_MISSING, "v", "missing");
	if (!cJSON_IsNumber(v))
		return ffail(c, NB_CTRL_E_WRONG_TYPE, "v", "not a number");
	if (v->valuedouble != (double)NB_CTRL_VERSION)
		return ffail(c, NB_CTRL_E_VERSION, "v", "version %.0f not supported (only %d)",
			     v->valuedouble, NB_CTRL_VERSION);
	if ((rc = get_str(c, root, "type", true, &s)) < 0)
		return rc;
	t = type_from_string(s);
	if (t < 0) {
		char q[CLIP_LEN];
		return ffail(c, NB_CTRL_E_TYPE, "type", "unknown type '%s'", clip(s, q, sizeof(q)));
	}
	m->type = (enum nb_ctrl_type)t;
	return get_hex(c, root, "tx", NB_CTRL_TX_LEN, m->tx);
}

static int decode(struct ctx *c, struct nb_ctrl_msg *ret, const uint8_t *buf, size_t len)
{
	struct nb_ctrl_msg m;
	cJSON *root = NULL;
	int rc;

	rc = parse(c, buf, len, &root);
	if (rc < 0)
		return rc;
	memset(&m, 0, sizeof(m));
	rc = dec_header(c, root, &m);
	if (rc == 0)
		rc = dec_body(c, root, &m);
	cJSON_Delete(root);
	if (rc < 0)
		return rc;
	if (ret != NULL)
		*ret = m;
	return 0;
}

ssize_t nb_ctrl_decode(struct nb_ctrl_msg *ret, const uint8_t *buf, size_t len)
{
	struct ctx c = { 0 };
	int rc;

	if (ret == NULL)
		return NB_CTRL_E_INVAL;
	rc = decode(&c, ret, buf, len);
	return rc < 0 ? rc : (ssize_t)len;
}

/* Cut s back to whole UTF-8 characters (vsnprintf may have cut one). */
static void trim_utf8(char *s)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = strlen(s), i = 0;

	while (i < n) {
		uint32_t cp;
		size_t k = utf8_char(p + i, n - i, &cp);
		if (k == 0 || is_control(cp))
			break;
		i += k;
	}
	s[i] = '\0';
}

int nb_ctrl_explain(const uint8_t *buf, size_t len, char *why, size_t why_len)
{
	struct ctx c = { .why = why, .why_len = why_len };
	int rc;

	if (why != NULL && why_len > 0)
		why[0] = '\0';
	rc = decode(&c, NULL, buf, len);
	if (why != NULL && why_len > 0) {
		if (rc == 0)
			snprintf(why, why_len, "ok");
		else if (why[0] == '\0')
			snprintf(why, why_len, "%s", nb_ctrl_strerror(rc));
		trim_utf8(why);
	}
	return rc;
}

int nb_ctrl_peek_tx(const uint8_t *buf, size_t len, char *ret_tx)
{
	struct ctx c = { 0 };
	char tx[NB_CTRL_TX_LEN + 1];
	cJSON *root = NULL;
	int rc;

	if (ret_tx == NULL)
		return NB_CTRL_E_INVAL;
	rc = parse(&c, buf, len, &root);
	if (rc < 0)
		return rc;
	rc = get_hex(&c, root, "tx", NB_CTRL_TX_LEN, tx);
	cJSON_Delete(root);
	if (rc < 0)
		return rc;
	memcpy(ret_tx, tx, sizeof(tx));
	return 0;
}

/* ---- Encoder ------------------------------------------------------------------
 * Validate each field with the decoder's own checks, add it to a cJSON
 * tree, print the tree unformatted into a stack buffer, check the length,
 * copy out. */

/* cJSON_PrintPreallocated may want a few bytes beyond the output ("to be
 * safe allocate 5 bytes more than you actually need", cJSON.h). */
#define PRINT_SLACK 64
#define PRINT_BUF (NB_CTRL_MAX_DATAGRAM + PRINT_SLACK)

static int put_str(cJSON *o, const char *name, const char *s)
{
	return cJSON_AddStringToObject(o, name, s) != NULL ? 0 : NB_CTRL_E_NOMEM;
}

static int put_u32(cJSON *o, const char *name, uint32_t v)
{
	return cJSON_AddNumberToObject(o, name, (double)v) != NULL ? 0 : NB_CTRL_E_NOMEM;
}

static int put_bool(cJSON *o, const char *name, bool v)
{
	return cJSON_AddBoolToObject(o, name, v) != NULL ? 0 : NB_CTRL_E_NOMEM;
}

static int put_word(struct ctx *c, cJSON *o, const char *name, const struct vocab *v, int val)
{
	int rc = check_word(c, name, v, val);

	return rc < 0 ? rc : put_str(o, name, vocab_word(v, val));
}

static int put_addr(struct ctx *c, cJSON *o, const char *name, const struct nb_addr *a)
{
	char s[NB_ADDR_STRLEN];
	int rc = check_addr(c, name, a);

	if (rc < 0)
		return rc;
	nb_addr_format(a, s, sizeof(s));
	return put_str(o, name, s);
}

static int put_addrs(struct ctx *c, cJSON *o, const char *name, const struct nb_addr *a,
		     size_t n)
{
	cJSON *arr;

	if (n > NB_CTRL_MAX_ADDRS)
		return ffail(c, NB_CTRL_E_TOO_MANY, name, "more than %d elements",
			     NB_CTRL_MAX_ADDRS);
	arr = cJSON_AddArrayToObject(o, name);
	if (arr == NULL)
		return NB_CTRL_E_NOMEM;
	for (size_t i = 0; i < n; i++) {
		char s[NB_ADDR_STRLEN];
		cJSON *e;
		int rc = check_addr(c, name, &a[i]);
		if (rc < 0)
			return rc;
		nb_addr_format(&a[i], s, sizeof(s));
		e = cJSON_CreateString(s);
		if (e == NULL || !cJSON_AddItemToArray(arr, e)) {
			cJSON_Delete(e);
			return NB_CTRL_E_NOMEM;
		}
	}
	return 0;
}

static int put_id(struct ctx *c, cJSON *o, const char *name, const char *s)
{
	int rc = check_id(c, name, s);

	return rc < 0 ? rc : put_str(o, name, s);
}

static int put_hex(struct ctx *c, cJSON *o, const char *name, const char *s, size_t n)
{
	int rc = check_hex(c, name, s, n);

	return rc < 0 ? rc : put_str(o, name, s);
}

static int put_reason(struct ctx *c, cJSON *o, const char *name, const char *s, bool required)
{
	int rc = check_reason(c, name, s);

	if (rc < 0)
		return rc;
	if (!required && s[0] == '\0')
		return 0;
	return put_str(o, name, s);
}

static int put_range(struct ctx *c, cJSON *o, const char *name, uint32_t v, uint32_t min,
		     uint32_t max)
{
	int rc = check_u32(c, name, v, min, max);

	return rc < 0 ? rc : put_u32(o, name, v);
}

static int enc_register(struct ctx *c, cJSON *o, const struct nb_ctrl_register *r)
{
	cJSON *sub;
	int rc;

	if ((rc = put_id(c, o, "id", r->id)) < 0)
		return rc;
	if (bounded_len(r->token, NB_CTRL_TOKEN_MAX) != 0) {
		if ((rc = check_token(c, "token", r->token)) < 0 ||
		    (rc = put_str(o, "token", r->token)) < 0)
			return rc;
	}
	if ((rc = put_addrs(c, o, "local", r->local, r->n_local)) < 0)
		return rc;
	if (r->cookie[0] != '\0' && ((rc = check_hex(c, "cookie", r->cookie, NB_CTRL_COOKIE_LEN)) < 0 ||
				     (rc = put_str(o, "cookie", r->cookie)) < 0))
		return rc;
	if (r->has_nat) {
		if ((sub = cJSON_AddObjectToObject(o, "nat")) == NULL)
			return NB_CTRL_E_NOMEM;
		if ((rc = put_word(c, sub, "mapping", &v_mapping, (int)r->mapping)) < 0 ||
		    (rc = put_word(c, sub, "filtering", &v_filtering, (int)r->filtering)) < 0)
			return rc;
		if (r->has_hairpin && (rc = put_bool(sub, "hairpin", r->hairpin)) < 0)
			return rc;
	}
	if (r->has_upnp) {
		if ((sub = cJSON_AddObjectToObject(o, "upnp")) == NULL)
			return NB_CTRL_E_NOMEM;
		if ((rc = put_word(c, sub, "status", &v_upnp, (int)r->upnp)) < 0)
			return rc;
		if (r->upnp == NB_CTRL_UPNP_MAPPED &&
		    (rc = put_addr(c, sub, "external", &r->upnp_external)) < 0)
			return rc;
		if (r->upnp_proof[0] != '\0') {
			if (r->upnp != NB_CTRL_UPNP_MAPPED)
				return ffail(c, NB_CTRL_E_FORMAT, "proof", "only with status 'mapped'");
			if ((rc = check_hex(c, "proof", r->upnp_proof, NB_CTRL_PROOF_LEN)) < 0 ||
			    (rc = put_str(sub, "proof", r->upnp_proof)) < 0)
				return rc;
		}
	}
	if (r->has_relayed && (rc = put_addr(c, o, "relayed", &r->relayed)) < 0)
		return rc;
	if (r->also && (rc = put_bool(o, "also", true)) < 0)
		return rc;
	return 0;
}

static int enc_relay(struct ctx *c, cJSON *o, const struct nb_ctrl_relay *r);

static int enc_registered(struct ctx *c, cJSON *o, const struct nb_ctrl_registered *r)
{
	int rc;

	if ((rc = put_id(c, o, "id", r->id)) < 0 ||
	    (rc = put_addr(c, o, "reflexive", &r->reflexive)) < 0 ||
	    (rc = put_range(c, o, "keepalive", r->keepalive_s, NB_CTRL_KEEPALIVE_MIN_S,
			    NB_CTRL_KEEPALIVE_MAX_S)) < 0 ||
	    (rc = put_range(c, o, "expires", r->expires_s, NB_CTRL_EXPIRES_MIN_S,
			    NB_CTRL_EXPIRES_MAX_S)) < 0)
		return rc;
	if (r->has_upnp && (rc = put_word(c, o, "upnp", &v_verified, r->upnp_verified ? 1 : 0)) < 0)
		return rc;
	if (r->relay.has_relay && !r->relay.alloc)
		return ffail(c, NB_CTRL_E_FORMAT, "relay", "registered carries credentials (alloc)");
	if ((rc = enc_relay(c, o, &r->relay)) < 0)
		return rc;
	return r->has_alt ? put_addr(c, o, "alt", &r->alt) : 0;
}

static int enc_relay(struct ctx *c, cJSON *o, const struct nb_ctrl_relay *r)
{
	cJSON *ro;
	int rc;

	if (!r->has_relay)
		return 0;
	ro = cJSON_AddObjectToObject(o, "relay");
	if (ro == NULL)
		return NB_CTRL_E_NOMEM;
	if ((rc = put_bool(ro, "alloc", r->alloc)) < 0)
		return rc;
	if (!r->alloc)
		return r->has_relayed ? put_addr(c, ro, "relayed", &r->relayed) : 0;
	if ((rc = put_addr(c, ro, "server", &r->server)) < 0 ||
	    (rc = check_relay_str(c, "relay.user", r->user, NB_CTRL_RELAY_USER_MAX)) < 0 ||
	    (rc = put_str(ro, "user", r->user)) < 0 ||
	    (rc = check_relay_str(c, "relay.pass", r->pass, NB_CTRL_RELAY_PASS_MAX)) < 0 ||
	    (rc = put_str(ro, "pass", r->pass)) < 0)
		return rc;
	return enc_family(c, ro, "family", r->family);
}

static int enc_birthday(struct ctx *c, cJSON *o, bool plan, const struct nb_ctrl_birthday *b)
{
	uint32_t lo = plan ? 1 : 0;
	cJSON *bo;
	int rc;

	if (!b->has)
		return 0;
	if ((rc = check_u32(c, "birthday.sockets", b->sockets, lo, NB_CTRL_BDAY_SOCKETS_MAX)) < 0 ||
	    (rc = check_u32(c, "birthday.probes", b->probes, lo, NB_CTRL_BDAY_PROBES_MAX)) < 0 ||
	    (rc = check_u32(c, "birthday.rate", b->rate, lo, NB_CTRL_BDAY_RATE_MAX)) < 0)
		return rc;
	if (plan && b->port != 0)
		return ffail(c, NB_CTRL_E_FORMAT, "birthday.port", "not in a plan");
	if (!plan && b->sockets == 0 && b->probes == 0 && b->rate == 0 && b->port == 0)
		return ffail(c, NB_CTRL_E_FORMAT, "birthday", "empty");
	bo = cJSON_AddObjectToObject(o, "birthday");
	if (bo == NULL)
		return NB_CTRL_E_NOMEM;
	if ((b->sockets != 0 && (rc = put_u32(bo, "sockets", b->sockets)) < 0) ||
	    (b->probes != 0 && (rc = put_u32(bo, "probes", b->probes)) < 0) ||
	    (b->rate != 0 && (rc = put_u32(bo, "rate", b->rate)) < 0) ||
	    (b->port != 0 && (rc = put_u32(bo, "port", b->port)) < 0))
		return rc;
	return 0;
}

static int enc_plan(struct ctx *c, cJSON *o, const struct nb_ctrl_plan *p)
{
	int rc;

	if ((rc = put_hex(c, o, "session", p->session, NB_CTRL_SESSION_LEN)) < 0 ||
	    (rc = put_id(c, o, "peer", p->peer)) < 0 ||
	    (rc = put_word(c, o, "role", &v_role, (int)p->role)) < 0 ||
	    (rc = put_word(c, o, "path", &v_path, (int)p->path)) < 0 ||
	    (rc = put_reason(c, o, "reason", p->reason, true)) < 0 ||
	    (rc = put_addrs(c, o, "candidates", p->candidates, p->n_candidates)) < 0 ||
	    (rc = check_username(c, "username", p->username)) < 0 ||
	    (rc = put_str(o, "username", p->username)) < 0 ||
	    (rc = check_pubkey(c, "peer_key", p->peer_key)) < 0 ||
	    (rc = put_str(o, "peer_key", p->peer_key)) < 0 ||
	    (rc = put_range(c, o, "deadline_ms", p->deadline_ms, NB_CTRL_DEADLINE_MIN_MS,
			    NB_CTRL_DEADLINE_MAX_MS)) < 0)
		return rc;
	if (p->delay_ms != 0 &&
	    (rc = put_range(c, o, "delay_ms", p->delay_ms, 0, NB_CTRL_DELAY_MAX_MS)) < 0)
		return rc;
	if (p->birthday.has != (p->path == NB_PATH_BIRTHDAY))
		return ffail(c, NB_CTRL_E_FORMAT, "birthday", "exactly with path 'birthday'");
	if ((p->role == NB_ROLE_SPRAY || p->role == NB_ROLE_PROBE) != (p->path == NB_PATH_BIRTHDAY))
		return ffail(c, NB_CTRL_E_FORMAT, "role", "spray and probe exactly with path 'birthday'");
	if ((rc = enc_birthday(c, o, true, &p->birthday)) < 0)
		return rc;
	return enc_relay(c, o, &p->relay);
}

static int enc_result(struct ctx *c, cJSON *o, const struct nb_ctrl_result *r)
{
	int rc;

	if ((rc = put_hex(c, o, "session", r->session, NB_CTRL_SESSION_LEN)) < 0 ||
	    (rc = put_id(c, o, "id", r->id)) < 0 ||
	    (rc = put_word(c, o, "outcome", &v_outcome, (int)r->outcome)) < 0 ||
	    (rc = put_word(c, o, "path", &v_path, (int)r->path)) < 0)
		return rc;
	if (r->has_remote && (rc = put_addr(c, o, "remote", &r->remote)) < 0)
		return rc;
	if ((rc = put_u32(o, "ms", r->ms)) < 0 ||
	    (rc = put_reason(c, o, "reason", r->reason, false)) < 0 ||
	    (rc = enc_birthday(c, o, false, &r->birthday)) < 0)
		return rc;
	return 0;
}

static int enc_error(struct ctx *c, cJSON *o, const struct nb_ctrl_error *e)
{
	int rc;

	if ((rc = put_range(c, o, "code", e->code, NB_CTRL_CODE_MIN, NB_CTRL_CODE_MAX)) < 0 ||
	    (rc = put_reason(c, o, "reason", e->reason, true)) < 0)
		return rc;
	return 0;
}

static int enc_peer_entry(struct ctx *c, cJSON *o, const void *v)
{
	const struct nb_ctrl_peer_info *p = v;
	int rc;

	if ((rc = put_id(c, o, "id", p->id)) < 0 ||
	    (rc = put_word(c, o, "nat", &v_nat, (int)p->nat)) < 0 ||
	    (rc = put_word(c, o, "mapping", &v_mapping, (int)p->mapping)) < 0 ||
	    (rc = put_word(c, o, "filtering", &v_filtering, (int)p->filtering)) < 0 ||
	    (rc = put_addr(c, o, "reflexive", &p->reflexive)) < 0)
		return rc;
	if (p->has_alt) {
		cJSON *sub = cJSON_AddObjectToObject(o, "alt");
		if (sub == NULL)
			return NB_CTRL_E_NOMEM;
		if ((rc = put_addr(c, sub, "reflexive", &p->alt)) < 0 ||
		    (rc = put_word(c, sub, "mapping", &v_mapping, (int)p->alt_mapping)) < 0 ||
		    (rc = put_word(c, sub, "filtering", &v_filtering, (int)p->alt_filtering)) < 0)
			return rc;
	}
	return 0;
}

/* An IP family field: 4 or 6, or nothing for 0. */
static int enc_family(struct ctx *c, cJSON *o, const char *name, uint8_t v)
{
	if (v == 0)
		return 0;
	if (v != 4 && v != 6)
		return ffail(c, NB_CTRL_E_RANGE, name, "4 or 6");
	return put_u32(o, name, v);
}

static int enc_pair_entry(struct ctx *c, cJSON *o, const void *v)
{
	const struct nb_ctrl_pair *p = v;
	int rc;

	if ((rc = put_id(c, o, "a", p->a)) < 0 || (rc = put_id(c, o, "b", p->b)) < 0 ||
	    (rc = put_word(c, o, "predicted", &v_path, (int)p->predicted)) < 0 ||
	    (rc = put_word(c, o, "role_a", &v_role, (int)p->role_a)) < 0 ||
	    (rc = put_word(c, o, "role_b", &v_role, (int)p->role_b)) < 0 ||
	    (rc = put_reason(c, o, "reason", p->reason, false)) < 0)
		return rc;
	if (p->has_measured) {
		if ((rc = put_word(c, o, "measured", &v_path, (int)p->measured)) < 0 ||
		    (rc = put_u32(o, "ms", p->ms)) < 0)
			return rc;
	}
	if (p->family != 0 && (!p->has_measured || p->measured == NB_PATH_NONE))
		return ffail(c, NB_CTRL_E_FORMAT, "family", "only with a measured path");
	if ((rc = enc_family(c, o, "plan_family", p->plan_family)) < 0 ||
	    (rc = enc_family(c, o, "family", p->family)) < 0)
		return rc;
	/* last: a reader that cuts an entry at its first '}' still sees the rest */
	return enc_birthday(c, o, false, &p->birthday);
}

/* Unformatted length of item, or NB_CTRL_E_NOSPACE if over the buffer. */
static int printed_len(cJSON *item, char *scratch, size_t size, size_t *ret_len)
{
	if (!cJSON_PrintPreallocated(item, scratch, (int)size, false))
		return NB_CTRL_E_NOSPACE;
	*ret_len = strlen(scratch);
	return 0;
}

/* The list part of peer_list / matrix_list. Every entry is validated and
 * built first. With pack (ret_count != NULL), entries are then attached
 * while the whole message stays within limit: the printed length of an
 * array is "[" + entries joined by "," + "]", so it is the length with an
 * empty array plus each entry's own printed length plus one per comma. */
static int enc_list(struct ctx *c, cJSON *root, const char *name, uint32_t total, uint32_t offset,
		    const void *entries, size_t n, size_t entry_size,
		    int (*enc_entry)(struct ctx *, cJSON *, const void *), size_t limit,
		    size_t *ret_count)
{
	cJSON *items[NB_CTRL_MAX_PAGE] = { NULL };
	char scratch[PRINT_BUF];
	size_t used = 0, k = 0, elen;
	cJSON *arr;
	int rc;

	if (n > NB_CTRL_MAX_PAGE)
		return ffail(c, NB_CTRL_E_TOO_MANY, name, "more than %d elements",
			     NB_CTRL_MAX_PAGE);
	if ((rc = check_page(c, name, total, offset, n)) < 0 ||
	    (rc = put_u32(root, "total", total)) < 0 || (rc = put_u32(root, "offset", offset)) < 0)
		return rc;
	arr = cJSON_AddArrayToObject(root, name);
	if (arr == NULL)
		return NB_CTRL_E_NOMEM;
	for (size_t i = 0; i < n; i++) {
		items[i] = cJSON_CreateObject();
		if (items[i] == NULL) {
			rc = NB_CTRL_E_NOMEM;
			goto out;
		}
		set_prefix(c, name, i, true);
		rc = enc_entry(c, items[i], (const char *)entries + i * entry_size);
		set_prefix(c, NULL, 0, false);
		if (rc < 0)
			goto out;
	}
	if (ret_count != NULL && (rc = printed_len(root, scratch, sizeof(scratch), &used)) < 0)
		goto out;
	for (k = 0; k < n; k++) {
		if (ret_count != NULL) {
			if (printed_len(items[k], scratch, sizeof(scratch), &elen) < 0)
				break;
			elen += k > 0 ? 1 : 0; /* the comma */
			if (used + elen > limit)
				break;
			used += elen;
		}
		if (!cJSON_AddItemToArray(arr, items[k])) {
			rc = NB_CTRL_E_NOMEM;
			goto out;
		}
		items[k] = NULL; /* the array owns it now */
	}
	if (ret_count != NULL)
		*ret_count = k;
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		cJSON_Delete(items[i]);
	return rc;
}

static ssize_t encode(const struct nb_ctrl_msg *m, uint8_t *buf, size_t cap, size_t *ret_count)
{
	struct ctx c = { 0 };
	char out[PRINT_BUF];
	size_t limit = cap < NB_CTRL_MAX_DATAGRAM ? cap : NB_CTRL_MAX_DATAGRAM;
	size_t n, count = 0;
	const char *type;
	cJSON *root;
	int rc;

	if (m == NULL || (buf == NULL && cap > 0))
		return NB_CTRL_E_INVAL;
	type = nb_ctrl_type_to_string(m->type);
	if (type == NULL)
		return NB_CTRL_E_TYPE;
	if (ret_count != NULL && m->type != NB_CTRL_PEER_LIST && m->type != NB_CTRL_MATRIX_LIST)
		return NB_CTRL_E_INVAL;
	if ((rc = check_hex(&c, "tx", m->tx, NB_CTRL_TX_LEN)) < 0)
		return rc;
	root = cJSON_CreateObject();
	if (root == NULL)
		return NB_CTRL_E_NOMEM;
	if ((rc = put_u32(root, "v", NB_CTRL_VERSION)) < 0 ||
	    (rc = put_str(root, "type", type)) < 0 || (rc = put_str(root, "tx", m->tx)) < 0)
		goto fail;

	switch (m->type) {
	case NB_CTRL_REGISTER:
		rc = enc_register(&c, root, &m->u.reg);
		break;
	case NB_CTRL_REGISTERED:
		rc = enc_registered(&c, root, &m->u.registered);
		break;
	case NB_CTRL_KEEPALIVE:
		rc = put_id(&c, root, "id", m->u.keepalive.id);
		break;
	case NB_CTRL_BYE:
		rc = put_id(&c, root, "id", m->u.bye.id);
		break;
	case NB_CTRL_RELAYED:
		rc = put_hex(&c, root, "session", m->u.relayed.session, NB_CTRL_SESSION_LEN);
		if (rc == 0)
			rc = put_id(&c, root, "id", m->u.relayed.id);
		if (rc == 0)
			rc = put_addr(&c, root, "relayed", &m->u.relayed.relayed);
		break;
	case NB_CTRL_CONNECT:
		rc = put_id(&c, root, "id", m->u.connect.id);
		if (rc == 0)
			rc = put_id(&c, root, "peer", m->u.connect.peer);
		break;
	case NB_CTRL_PLAN:
		rc = enc_plan(&c, root, &m->u.plan);
		break;
	case NB_CTRL_RESULT:
		rc = enc_result(&c, root, &m->u.result);
		break;
	case NB_CTRL_ERROR:
		rc = enc_error(&c, root, &m->u.error);
		break;
	case NB_CTRL_ACK:
		rc = 0;
		break;
	case NB_CTRL_PEERS:
	case NB_CTRL_MATRIX:
		rc = m->u.query.offset != 0 ? put_u32(root, "offset", m->u.query.offset) : 0;
		if (rc == 0 && m->u.query.admin[0] != '\0') {
			rc = check_token(&c, "admin", m->u.query.admin);
			if (rc == 0)
				rc = put_str(root, "admin", m->u.query.admin);
		}
		if (rc == 0 && m->u.query.pad != 0) {
			char pad[NB_CTRL_PAD_MAX + 1];
			if (m->u.query.pad > NB_CTRL_PAD_MAX) {
				rc = ffail(&c, NB_CTRL_E_LENGTH, "pad", "longer than %d", NB_CTRL_PAD_MAX);
				break;
			}
			memset(pad, '.', m->u.query.pad);
			pad[m->u.query.pad] = '\0';
			rc = put_str(root, "pad", pad);
		}
		break;
	case NB_CTRL_CHALLENGE:
		rc = check_hex(&c, "cookie", m->u.challenge.cookie, NB_CTRL_COOKIE_LEN);
		if (rc == 0)
			rc = put_str(root, "cookie", m->u.challenge.cookie);
		break;
	case NB_CTRL_PEER_LIST:
		rc = enc_list(&c, root, "peers", m->u.peer_list.total, m->u.peer_list.offset,
			      m->u.peer_list.peers, m->u.peer_list.n_peers,
			      sizeof(m->u.peer_list.peers[0]), enc_peer_entry, limit,
			      ret_count != NULL ? &count : NULL);
		break;
	case NB_CTRL_VERIFY:
		rc = put_addr(&c, root, "external", &m->u.verify.external);
		if (rc == 0 && m->u.verify.tcp)
			rc = put_bool(root, "tcp", true);
		break;
	case NB_CTRL_PROBE:
		rc = check_hex(&c, "proof", m->u.probe.proof, NB_CTRL_PROOF_LEN);
		if (rc == 0)
			rc = put_str(root, "proof", m->u.probe.proof);
		break;
	case NB_CTRL_MATRIX_LIST:
		rc = enc_list(&c, root, "pairs", m->u.matrix_list.total, m->u.matrix_list.offset,
			      m->u.matrix_list.pairs, m->u.matrix_list.n_pairs,
			      sizeof(m->u.matrix_list.pairs[0]), enc_pair_entry, limit,
			      ret_count != NULL ? &count : NULL);
		break;
	}
	if (rc < 0)
		goto fail;
	if ((rc = printed_len(root, out, sizeof(out), &n)) < 0)
		goto fail;
	if (n > limit) {
		rc = NB_CTRL_E_NOSPACE;
		goto fail;
	}
	cJSON_Delete(root);
	memcpy(buf, out, n);
	if (ret_count != NULL)
		*ret_count = count;
	return (ssize_t)n;

fail:
	cJSON_Delete(root);
	return rc;
}

ssize_t nb_ctrl_encode(const struct nb_ctrl_msg *m, uint8_t *buf, size_t cap)
{
	return encode(m, buf, cap, NULL);
}

ssize_t nb_ctrl_encode_page(const struct nb_ctrl_msg *m, uint8_t *buf, size_t cap,
			    size_t *ret_count)
{
	if (ret_count == NULL)
		return NB_CTRL_E_INVAL;
	return encode(m, buf, cap, ret_count);
}

/* ---- Equality and helpers ------------------------------------------------------ */

static bool addrs_equal(const struct nb_addr *a, size_t na, const struct nb_addr *b, size_t nb)
{
	if (na != nb || na > NB_CTRL_MAX_ADDRS)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!nb_addr_equal(&a[i], &b[i]))
			return false;
	return true;
}

static bool str_eq(const char *a, const char *b, size_t size)
{
	return strncmp(a, b, size) == 0;
}
#define STREQ(x, y) str_eq((x), (y), sizeof(x))

static bool register_equal(const struct nb_ctrl_register *a, const struct nb_ctrl_register *b)
{
	if (!STREQ(a->id, b->id) || !STREQ(a->token, b->token) || !STREQ(a->cookie, b->cookie) ||
	    !addrs_equal(a->local, a->n_local, b->local, b->n_local) || a->has_nat != b->has_nat ||
	    a->has_upnp != b->has_upnp || a->has_relayed != b->has_relayed ||
	    (a->has_relayed && !nb_addr_equal(&a->relayed, &b->relayed)) || a->also != b->also)
		return false;
	if (a->has_nat && (a->mapping != b->mapping || a->filtering != b->filtering ||
			   a->has_hairpin != b->has_hairpin ||
			   (a->has_hairpin && a->hairpin != b->hairpin)))
		return false;
	if (a->has_upnp &&
	    (a->upnp != b->upnp || !STREQ(a->upnp_proof, b->upnp_proof) ||
	     (a->upnp == NB_CTRL_UPNP_MAPPED && !nb_addr_equal(&a->upnp_external, &b->upnp_external))))
		return false;
	return true;
}

static bool relay_equal(const struct nb_ctrl_relay *a, const struct nb_ctrl_relay *b)
{
	return a->has_relay == b->has_relay && a->alloc == b->alloc &&
	       a->has_relayed == b->has_relayed &&
	       (!a->has_relayed || nb_addr_equal(&a->relayed, &b->relayed)) &&
	       (!a->alloc || (nb_addr_equal(&a->server, &b->server) && STREQ(a->user, b->user) &&
			      STREQ(a->pass, b->pass) && a->family == b->family));
}

static bool birthday_equal(const struct nb_ctrl_birthday *a, const struct nb_ctrl_birthday *b)
{
	return a->has == b->has && (!a->has || (a->sockets == b->sockets && a->probes == b->probes &&
						a->rate == b->rate && a->port == b->port));
}

static bool plan_equal(const struct nb_ctrl_plan *a, const struct nb_ctrl_plan *b)
{
	return STREQ(a->session, b->session) && STREQ(a->peer, b->peer) && a->role == b->role &&
	       a->path == b->path && STREQ(a->reason, b->reason) &&
	       addrs_equal(a->candidates, a->n_candidates, b->candidates, b->n_candidates) &&
	       STREQ(a->username, b->username) && STREQ(a->peer_key, b->peer_key) &&
	       a->deadline_ms == b->deadline_ms && a->delay_ms == b->delay_ms &&
	       relay_equal(&a->relay, &b->relay) && birthday_equal(&a->birthday, &b->birthday);
}

static bool result_equal(const struct nb_ctrl_result *a, const struct nb_ctrl_result *b)
{
	return STREQ(a->session, b->session) && STREQ(a->id, b->id) && a->outcome == b->outcome &&
	       a->path == b->path && a->has_remote == b->has_remote &&
	       (!a->has_remote || nb_addr_equal(&a->remote, &b->remote)) && a->ms == b->ms &&
	       STREQ(a->reason, b->reason) && birthday_equal(&a->birthday, &b->birthday);
}

static bool peer_list_equal(const struct nb_ctrl_peer_list *a, const struct nb_ctrl_peer_list *b)
{
	if (a->total != b->total || a->offset != b->offset || a->n_peers != b->n_peers ||
	    a->n_peers > NB_CTRL_MAX_PAGE)
		return false;
	for (size_t i = 0; i < a->n_peers; i++) {
		const struct nb_ctrl_peer_info *x = &a->peers[i], *y = &b->peers[i];
		if (!STREQ(x->id, y->id) || x->nat != y->nat || x->mapping != y->mapping ||
		    x->filtering != y->filtering || !nb_addr_equal(&x->reflexive, &y->reflexive) ||
		    x->has_alt != y->has_alt ||
		    (x->has_alt && (!nb_addr_equal(&x->alt, &y->alt) || x->alt_mapping != y->alt_mapping ||
				    x->alt_filtering != y->alt_filtering)))
			return false;
	}
	return true;
}

static bool matrix_list_equal(const struct nb_ctrl_matrix_list *a,
			      const struct nb_ctrl_matrix_list *b)
{
	if (a->total != b->total || a->offset != b->offset || a->n_pairs != b->n_pairs ||
	    a->n_pairs > NB_CTRL_MAX_PAGE)
		return false;
	for (size_t i = 0; i < a->n_pairs; i++) {
		const struct nb_ctrl_pair *x = &a->pairs[i], *y = &b->pairs[i];
		if (!STREQ(x->a, y->a) || !STREQ(x->b, y->b) || x->predicted != y->predicted ||
		    x->role_a != y->role_a || x->role_b != y->role_b || !STREQ(x->reason, y->reason) ||
		    x->has_measured != y->has_measured || !birthday_equal(&x->birthday, &y->birthday) ||
		    (x->has_measured && (x->measured != y->measured || x->ms != y->ms)) ||
		    x->plan_family != y->plan_family || x->family != y->family)
			return false;
	}
	return true;
}

bool nb_ctrl_msg_equal(const struct nb_ctrl_msg *a, const struct nb_ctrl_msg *b)
{
	if (a->type != b->type || !STREQ(a->tx, b->tx))
		return false;
	switch (a->type) {
	case NB_CTRL_REGISTER:
		return register_equal(&a->u.reg, &b->u.reg);
	case NB_CTRL_REGISTERED:
		return STREQ(a->u.registered.id, b->u.registered.id) &&
		       nb_addr_equal(&a->u.registered.reflexive, &b->u.registered.reflexive) &&
		       a->u.registered.keepalive_s == b->u.registered.keepalive_s &&
		       a->u.registered.expires_s == b->u.registered.expires_s &&
		       a->u.registered.has_upnp == b->u.registered.has_upnp &&
		       a->u.registered.upnp_verified == b->u.registered.upnp_verified &&
		       a->u.registered.has_alt == b->u.registered.has_alt &&
		       (!a->u.registered.has_alt ||
			nb_addr_equal(&a->u.registered.alt, &b->u.registered.alt)) &&
		       relay_equal(&a->u.registered.relay, &b->u.registered.relay);
	case NB_CTRL_KEEPALIVE:
	case NB_CTRL_BYE:
		return STREQ(a->u.keepalive.id, b->u.keepalive.id);
	case NB_CTRL_CONNECT:
		return STREQ(a->u.connect.id, b->u.connect.id) &&
		       STREQ(a->u.connect.peer, b->u.connect.peer);
	case NB_CTRL_PLAN:
		return plan_equal(&a->u.plan, &b->u.plan);
	case NB_CTRL_RESULT:
		return result_equal(&a->u.result, &b->u.result);
	case NB_CTRL_ERROR:
		return a->u.error.code == b->u.error.code &&
		       STREQ(a->u.error.reason, b->u.error.reason);
	case NB_CTRL_ACK:
		return true;
	case NB_CTRL_PEERS:
	case NB_CTRL_MATRIX:
		return a->u.query.offset == b->u.query.offset && a->u.query.pad == b->u.query.pad &&
		       STREQ(a->u.query.admin, b->u.query.admin);
	case NB_CTRL_PEER_LIST:
		return peer_list_equal(&a->u.peer_list, &b->u.peer_list);
	case NB_CTRL_MATRIX_LIST:
		return matrix_list_equal(&a->u.matrix_list, &b->u.matrix_list);
	case NB_CTRL_VERIFY:
		return nb_addr_equal(&a->u.verify.external, &b->u.verify.external) && a->u.verify.tcp == b->u.verify.tcp;
	case NB_CTRL_PROBE:
		return STREQ(a->u.probe.proof, b->u.probe.proof);
	case NB_CTRL_CHALLENGE:
		return STREQ(a->u.challenge.cookie, b->u.challenge.cookie);
	case NB_CTRL_RELAYED:
		return STREQ(a->u.relayed.session, b->u.relayed.session) &&
		       STREQ(a->u.relayed.id, b->u.relayed.id) &&
		       nb_addr_equal(&a->u.relayed.relayed, &b->u.relayed.relayed);
	}
	return false;
}

void nb_ctrl_hex(const uint8_t *bytes, size_t n, char *ret)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		ret[2 * i] = digits[bytes[i] >> 4];
		ret[2 * i + 1] = digits[bytes[i] & 0x0F];
	}
	ret[2 * n] = '\0';
}
