/* peer/portmap/ssdp.c - SSDP discovery of an Internet Gateway Device: M-SEARCH, replies.
 *
 * Pure: no I/O, no malloc. Choices made here (see also peer/portmap/ssdp.h):
 * - Lines end with CRLF or a bare LF; every line, the last header included,
 *   must end inside the datagram. The empty line ends the headers; a reply
 *   that simply ends after its last header line is accepted too.
 * - A line that starts with a space or a tab (obsolete folding) is matched
 *   against nothing.
 * - ST, LOCATION, USN and SERVER may each appear once; a second copy refuses
 *   the reply (two LOCATIONs would leave the choice to the attacker).
 * - ST values are compared case-insensitively (routers vary; the description
 *   is parsed anyway). USN longer than its field refuses the reply (it names
 *   the device). SERVER is for display: longer values are cut at a UTF-8
 *   character boundary. In both, control characters and DEL become '?'.
 * - nb_ssdp_build_msearch NUL-terminates (cap must leave room for it) and
 *   refuses every control character in ST, not only CR and LF.
 * - LOCATION must match the responder's IP, not its port (the HTTP server
 *   listens elsewhere than on 1900). */
#include "peer/portmap/ssdp.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "peer/portmap/ascii.h"

const char *const nb_ssdp_targets[NB_SSDP_TARGET_COUNT] = {
	"urn:schemas-upnp-org:device:InternetGatewayDevice:2",
	"urn:schemas-upnp-org:device:InternetGatewayDevice:1",
	"urn:schemas-upnp-org:service:WANIPConnection:2",
	"urn:schemas-upnp-org:service:WANIPConnection:1",
	"urn:schemas-upnp-org:service:WANPPPConnection:1",
};

#define SSDP_ST_MAX 128
#define SSDP_MX_MIN 1
#define SSDP_MX_MAX 5

struct buf {
	char *p;
	size_t cap, len;
	bool full;
};

static void put(struct buf *b, const char *s)
{
	size_t n = strlen(s);

	if (b->full || b->cap - b->len <= n) {
		b->full = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

int nb_ssdp_build_msearch(const char *st, unsigned mx, char *buf, size_t cap)
{
	char mxs[2] = { 0, 0 };
	struct buf b = { .p = buf, .cap = cap };
	size_t n;

	if (st == NULL || buf == NULL || mx < SSDP_MX_MIN || mx > SSDP_MX_MAX)
		return -EINVAL;
	n = strnlen(st, SSDP_ST_MAX + 1);
	if (n == 0 || n > SSDP_ST_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)st[i] < 0x20 || st[i] == 0x7f)
			return -EINVAL;
	mxs[0] = (char)('0' + mx);
	/* UDA 1.1 §1.3.2; MAN quoted, the empty line ends the message. */
	put(&b, "M-SEARCH * HTTP/1.1\r\n"
		"HOST: " NB_SSDP_GROUP ":1900\r\n"
		"MAN: \"ssdp:discover\"\r\n"
		"MX: ");
	put(&b, mxs);
	put(&b, "\r\nST: ");
	put(&b, st);
	put(&b, "\r\n\r\n");
	if (b.full)
		return -ENOSPC;
	buf[b.len] = '\0';
	return (int)b.len;
}

static bool st_wanted(const char *s, size_t len)
{
	return nb_ascii_urn_version(s, len, "urn:schemas-upnp-org:device:InternetGatewayDevice:") != 0 ||
	       nb_ascii_urn_version(s, len, "urn:schemas-upnp-org:service:WANIPConnection:") != 0 ||
	       nb_ascii_urn_version(s, len, "urn:schemas-upnp-org:service:WANPPPConnection:") != 0 ||
	       nb_ascii_case_equal(s, len, "upnp:rootdevice");
}

struct hdr {
	const char *v;
	size_t len;
	bool seen;
};

enum { H_ST = 0, H_LOCATION, H_USN, H_SERVER, H_COUNT };
static const char *const hdr_names[H_COUNT] = { "st", "location", "usn", "server" };

static int refuse(const char **why, const char *msg)
{
	if (why != NULL)
		*why = msg;
	return -EINVAL;
}

int nb_ssdp_parse_reply(const uint8_t *buf, size_t len, const struct nb_addr *from, unsigned flags,
			struct nb_ssdp_reply *ret, const char **why)
{
	static const char status[] = "HTTP/1.1 200";
	const size_t status_len = sizeof(status) - 1;
	const char *s = (const char *)buf;
	struct hdr h[H_COUNT];
	struct nb_ssdp_reply r;
	struct nb_url loc;
	size_t off = 0;
	bool first = true;

	if (buf == NULL || ret == NULL)
		return refuse(why, "no reply");
	if (len > NB_SSDP_REPLY_MAX)
		return refuse(why, "reply longer than NB_SSDP_REPLY_MAX");
	if (memchr(buf, '\0', len) != NULL)
		return refuse(why, "NUL in reply");
	memset(h, 0, sizeof(h));

	while (off < len) {
		const char *line = s + off;
		const char *lf = memchr(line, '\n', len - off);
		size_t llen, next;

		if (lf == NULL)
			return refuse(why, "header line runs past the end of the datagram");
		llen = (size_t)(lf - line);
		next = off + llen + 1;
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		if (memchr(line, '\r', llen) != NULL)
			return refuse(why, "bare CR in reply");
		off = next;
		if (first) {
			first = false;
			if (llen < status_len || memcmp(line, status, status_len) != 0 ||
			    (llen > status_len && line[status_len] != ' '))
				return refuse(why, "not an HTTP/1.1 200 reply");
			continue;
		}
		if (llen == 0)
			break; /* end of headers */
		if (line[0] == ' ' || line[0] == '\t')
			continue;
		const char *colon = memchr(line, ':', llen);
		if (colon == NULL)
			continue;
		size_t nlen = (size_t)(colon - line);
		for (int i = 0; i < H_COUNT; i++) {
			if (!nb_ascii_case_equal(line, nlen, hdr_names[i]))
				continue;
			if (h[i].seen)
				return refuse(why, "header repeated");
			size_t v = nlen + 1;
			while (v < llen && (line[v] == ' ' || line[v] == '\t'))
				v++;
			size_t e = llen;
			while (e > v && (line[e - 1] == ' ' || line[e - 1] == '\t'))
				e--;
			h[i].seen = true;
			h[i].v = line + v;
			h[i].len = e - v;
			break;
		}
	}
	if (first)
		return refuse(why, "empty reply");

	if (!h[H_ST].seen)
		return refuse(why, "no ST header");
	if (h[H_ST].len > SSDP_ST_MAX)
		return refuse(why, "ST longer than 128 bytes");
	if (!st_wanted(h[H_ST].v, h[H_ST].len))
		return refuse(why, "ST names no gateway device or WAN connection service");
	if (h[H_USN].len >= sizeof(r.usn))
		return refuse(why, "USN longer than 256 bytes");
	if (!h[H_LOCATION].seen)
		return refuse(why, "no LOCATION header");
	if (nb_url_parse(h[H_LOCATION].v, h[H_LOCATION].len, &loc) < 0)
		return refuse(why, "LOCATION is not http://IPv4[:port]/path of at most 255 bytes");
	if (!nb_url_host_ok(&loc.addr))
		return refuse(why, "LOCATION host is unspecified, loopback, link-local, multicast or broadcast");
	if (!(flags & NB_SSDP_ANY_HOST) && (from == NULL || !nb_addr_ip_equal(&loc.addr, from)))
		return refuse(why, "LOCATION host is not the address the reply came from");

	memset(&r, 0, sizeof(r));
	r.location = loc;
	memcpy(r.st, h[H_ST].v, h[H_ST].len);
	nb_ascii_copy_display(r.usn, sizeof(r.usn), h[H_USN].v, h[H_USN].len); /* fits: checked above */
	nb_ascii_copy_display(r.server, sizeof(r.server), h[H_SERVER].v, h[H_SERVER].len);
	*ret = r;
	return 0;
}
