/* peer/portmap/url.c - the http URLs a UPnP gateway hands out: parse, resolve, format.
 *
 * Pure: no I/O, no malloc. Choices made here (see also peer/portmap/url.h):
 * - Characters. A URL is printable ASCII only: bytes <= 0x20, 0x7f and
 *   >= 0x80 refuse it anywhere (fragment included), and so does a backslash,
 *   which browsers read as '/' and curl does not: a forged URL must not mean
 *   two things. Percent escapes are passed through unchanged.
 * - Host. Four decimal octets as inet_pton(AF_INET) reads them (no leading
 *   zeros, no "127.1", no hex), so the address compared with the SSDP
 *   responder is the address curl connects to.
 * - Port. 1 to 5 digits, 1..65535; absent means 80. An empty port
 *   ("http://1.2.3.4:/") is refused.
 * - Length. The input, and the canonical form nb_url_format writes, are at
 *   most NB_URL_MAX bytes, so every accepted URL formats and parses back.
 * - Dots. nb_url_resolve removes "." and ".." segments (RFC 3986 §5.2.4)
 *   from the reference it resolves; nb_url_parse leaves a path as sent. */
#include "peer/portmap/url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#define URL_SCHEME "http://"
#define URL_SCHEME_LEN 7
#define URL_DEFAULT_PORT 80
/* "255.255.255.255" */
#define URL_IPV4_MAX 15

static bool url_char_ok(char c)
{
	unsigned char u = (unsigned char)c;

	return u > 0x20 && u < 0x7f && c != '\\';
}

static bool chars_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!url_char_ok(s[i]))
			return false;
	return true;
}

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Decimal digits of v into buf (at least 10 bytes); the count. */
static size_t put_uint(char *buf, unsigned v)
{
	char tmp[10];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0 && n < sizeof(tmp));
	for (size_t i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

/* Length of "http://a.b.c.d[:port]" for addr. */
static size_t authority_len(const struct nb_addr *a)
{
	char tmp[10];
	size_t n = URL_SCHEME_LEN + 3; /* the dots */

	for (int i = 0; i < 4; i++)
		n += put_uint(tmp, a->ip[i]);
	if (a->port != URL_DEFAULT_PORT)
		n += 1 + put_uint(tmp, a->port);
	return n;
}

/* "host[:port]" of hlen bytes into an IPv4 nb_addr. */
static int parse_authority(const char *s, size_t len, struct nb_addr *ret)
{
	char host[URL_IPV4_MAX + 1];
	const char *colon = memchr(s, ':', len);
	size_t hlen = colon != NULL ? (size_t)(colon - s) : len;
	unsigned port = URL_DEFAULT_PORT;
	struct nb_addr a;

	/* No user info: "http://a@b" names host b to curl and host a to a reader. */
	if (memchr(s, '@', len) != NULL)
		return -EINVAL;
	if (hlen == 0 || hlen > URL_IPV4_MAX)
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, host, a.ip) != 1)
		return -EINVAL;
	a.family = NB_AF_INET;
	if (colon != NULL) {
		size_t plen = len - hlen - 1;
		const char *p = colon + 1;

		if (plen == 0 || plen > 5)
			return -EINVAL;
		port = 0;
		for (size_t i = 0; i < plen; i++) {
			if (p[i] < '0' || p[i] > '9')
				return -EINVAL;
			port = port * 10 + (unsigned)(p[i] - '0');
		}
		if (port == 0 || port > 65535)
			return -EINVAL;
	}
	a.port = (uint16_t)port;
	*ret = a;
	return 0;
}

int nb_url_parse(const char *s, size_t len, struct nb_url *ret)
{
	struct nb_url u;
	size_t off, auth_end, end, plen;

	if (s == NULL || len > NB_URL_MAX || len < URL_SCHEME_LEN || !chars_ok(s, len))
		return -EINVAL;
	for (size_t i = 0; i < URL_SCHEME_LEN; i++)
		if (lower(s[i]) != URL_SCHEME[i])
			return -EINVAL;
	off = URL_SCHEME_LEN;
	for (auth_end = off; auth_end < len; auth_end++)
		if (s[auth_end] == '/' || s[auth_end] == '?' || s[auth_end] == '#')
			break;
	memset(&u, 0, sizeof(u));
	if (parse_authority(s + off, auth_end - off, &u.addr) < 0)
		return -EINVAL;
	/* The path, query kept, fragment dropped. */
	end = auth_end;
	while (end < len && s[end] != '#')
		end++;
	plen = 0;
	if (auth_end == end || s[auth_end] != '/')
		u.path[plen++] = '/'; /* "http://h" and "http://h?q" */
	/* plen + (end - auth_end) <= 1 + len - URL_SCHEME_LEN < sizeof(u.path) */
	memcpy(u.path + plen, s + auth_end, end - auth_end);
	plen += end - auth_end;
	u.path[plen] = '\0';
	if (NB_URL_MAX - plen < authority_len(&u.addr))
		return -EINVAL;
	*ret = u;
	return 0;
}

/* RFC 3986 §5.2.4 on a path of n bytes that starts with '/' (no query):
 * the result, which also starts with '/', into out[cap]. ".." never climbs
 * above the root. 0, or -EINVAL when it does not fit (with its NUL). */
static int remove_dots(const char *in, size_t n, char *out, size_t cap, size_t *ret_len)
{
	size_t o = 0, i = 1;

	if (n == 0 || in[0] != '/')
		return -EINVAL;
	for (;;) {
		const char *seg = in + i;
		const char *slash = memchr(seg, '/', n - i);
		size_t slen = slash != NULL ? (size_t)(slash - seg) : n - i;
		bool last = slash == NULL;

		if (slen == 1 && seg[0] == '.') {
			if (last) {
				if (cap - o < 2)
					return -EINVAL;
				out[o++] = '/';
			}
		} else if (slen == 2 && seg[0] == '.' && seg[1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--; /* the slash before the segment removed */
			if (last) {
				if (cap - o < 2)
					return -EINVAL;
				out[o++] = '/';
			}
		} else {
			if (cap - o < slen + 2)
				return -EINVAL;
			out[o++] = '/';
			memcpy(out + o, seg, slen);
			o += slen;
		}
		if (last)
			break;
		i += slen + 1;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	*ret_len = o;
	return 0;
}

/* Does ref start with a scheme ("x:", RFC 3986 §3.1)? */
static bool has_scheme(const char *ref, size_t len)
{
	size_t i = 0;

	if (len == 0 || !((ref[0] >= 'a' && ref[0] <= 'z') || (ref[0] >= 'A' && ref[0] <= 'Z')))
		return false;
	for (i = 1; i < len; i++) {
		char c = ref[i];
		if (c == ':')
			return true;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '-' || c == '.'))
			return false;
	}
	return false;
}

/* Path (merged, dots to remove) + query into u->path; checks the total. */
static int set_path(struct nb_url *u, const char *path, size_t plen, const char *query, size_t qlen)
{
	size_t n;

	if (remove_dots(path, plen, u->path, sizeof(u->path), &n) < 0)
		return -EINVAL;
	if (sizeof(u->path) - n <= qlen)
		return -EINVAL;
	memcpy(u->path + n, query, qlen);
	n += qlen;
	u->path[n] = '\0';
	if (NB_URL_MAX - n < authority_len(&u->addr))
		return -EINVAL;
	return 0;
}

int nb_url_resolve(const struct nb_url *base, const char *ref, size_t len, struct nb_url *ret)
{
	/* base directory + a relative path: at most 2 * NB_URL_MAX bytes */
	char merged[2 * NB_URL_MAX + 2];
	struct nb_url u;
	size_t qpos, end, blen;
	const char *bq;

	if (base == NULL || ref == NULL || len > NB_URL_MAX || !chars_ok(ref, len))
		return -EINVAL;
	if (has_scheme(ref, len)) {
		if (nb_url_parse(ref, len, &u) < 0)
			return -EINVAL;
		/* RFC 3986 §5.2.2: T.path = remove_dot_segments(R.path) */
		bq = strchr(u.path, '?');
		blen = bq != NULL ? (size_t)(bq - u.path) : strlen(u.path);
		memcpy(merged, u.path, strlen(u.path) + 1);
		if (set_path(&u, merged, blen, merged + blen, strlen(merged + blen)) < 0)
			return -EINVAL;
		*ret = u;
		return 0;
	}
	if (len >= 2 && ref[0] == '/' && ref[1] == '/') {
		/* Network-path reference: the base's scheme, a new authority. */
		char abs[URL_SCHEME_LEN - 2 + NB_URL_MAX];
		if (len > NB_URL_MAX - (URL_SCHEME_LEN - 2))
			return -EINVAL;
		memcpy(abs, "http:", URL_SCHEME_LEN - 2);
		memcpy(abs + URL_SCHEME_LEN - 2, ref, len);
		return nb_url_resolve(base, abs, len + URL_SCHEME_LEN - 2, ret);
	}

	u = *base;
	end = 0;
	while (end < len && ref[end] != '#')
		end++;
	qpos = 0;
	while (qpos < end && ref[qpos] != '?')
		qpos++;
	blen = strnlen(base->path, sizeof(base->path));
	if (blen == 0 || blen == sizeof(base->path) || base->path[0] != '/')
		return -EINVAL;
	bq = memchr(base->path, '?', blen);
	if (bq != NULL)
		blen = (size_t)(bq - base->path);

	if (end == 0) {
		/* "" or "#f": the base itself (its path was validated when parsed). */
		*ret = u;
		return 0;
	}
	if (qpos == 0) {
		/* "?q": the base path, the new query. */
		memcpy(merged, base->path, blen);
		merged[blen] = '\0';
	} else if (ref[0] == '/') {
		memcpy(merged, ref, qpos);
		merged[qpos] = '\0';
		blen = qpos;
	} else {
		/* RFC 3986 §5.2.3: all but the last segment of the base path. */
		while (blen > 0 && base->path[blen - 1] != '/')
			blen--;
		memcpy(merged, base->path, blen);
		memcpy(merged + blen, ref, qpos);
		blen += qpos;
		merged[blen] = '\0';
	}
	if (set_path(&u, merged, blen, ref + qpos, end - qpos) < 0)
		return -EINVAL;
	*ret = u;
	return 0;
}

int nb_url_format(const struct nb_url *u, char *buf, size_t cap)
{
	char tmp[NB_URL_MAX + 32];
	size_t n = 0, plen;

	if (u == NULL || buf == NULL || u->addr.family != NB_AF_INET)
		return -EINVAL;
	plen = strnlen(u->path, sizeof(u->path));
	if (plen == sizeof(u->path))
		return -EINVAL;
	memcpy(tmp, URL_SCHEME, URL_SCHEME_LEN);
	n = URL_SCHEME_LEN;
	for (int i = 0; i < 4; i++) {
		if (i > 0)
			tmp[n++] = '.';
		n += put_uint(tmp + n, u->addr.ip[i]);
	}
	if (u->addr.port != URL_DEFAULT_PORT) {
		tmp[n++] = ':';
		n += put_uint(tmp + n, u->addr.port);
	}
	if (cap <= n || cap - n <= plen)
		return -ENOSPC;
	memcpy(buf, tmp, n);
	memcpy(buf + n, u->path, plen);
	n += plen;
	buf[n] = '\0';
	return (int)n;
}

bool nb_url_host_ok(const struct nb_addr *a)
{
	static const uint8_t bcast[4] = { 255, 255, 255, 255 };

	if (a == NULL || a->family != NB_AF_INET)
		return false;
	if (a->ip[0] == 0)
		return false; /* 0.0.0.0/8, "this network" (RFC 1122 §3.2.1.3) */
	if (nb_addr_is_loopback(a) || nb_addr_is_link_local(a) || nb_addr_is_multicast(a))
		return false;
	return memcmp(a->ip, bcast, 4) != 0;
}
