/* peer/fwd.c - port forwarding's pure core: payload kinds, specs, the flow table. */
#include "peer/fwd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/bytes.h"

#define FWD_SPEC_MAX 160 /* longest spec text we look at */

const char *nb_fwd_strerror(int err)
{
	switch (err) {
	case 0: return "ok";
	case NB_FWD_E_SHORT: return "payload shorter than its header";
	case NB_FWD_E_KIND: return "unknown payload kind";
	case NB_FWD_E_TOO_BIG: return "payload or datagram too long";
	case NB_FWD_E_FLOW: return "flow id 0";
	case NB_FWD_E_NOSPACE: return "buffer too small";
	case NB_FWD_E_INVAL: return "invalid argument";
	case NB_FWD_E_NOENT: return "no such flow or service";
	case NB_FWD_E_FULL: return "flow table full";
	case NB_FWD_E_SERVICE: return "not a transport service name (tcp:PORT)";
	default: return "unknown error";
	}
}

/* ---- Payload kinds -------------------------------------------------------- */

ssize_t nb_fwd_hdr_put(const struct nb_fwd_hdr *h, size_t body_len, uint8_t *out, size_t cap)
{
	uint8_t b[NB_FWD_UDP_HDR];

	if (h == NULL || out == NULL)
		return NB_FWD_E_INVAL;
	switch (h->kind) {
	case NB_FWD_KIND_PIPE:
		if (body_len > NB_FWD_MAX_LINE)
			return NB_FWD_E_TOO_BIG;
		if (cap < NB_FWD_PIPE_HDR)
			return NB_FWD_E_NOSPACE;
		out[0] = NB_FWD_KIND_PIPE;
		return NB_FWD_PIPE_HDR;
	case NB_FWD_KIND_UDP:
		if (h->flow == 0)
			return NB_FWD_E_FLOW;
		if (body_len > NB_FWD_MAX_DATAGRAM)
			return NB_FWD_E_TOO_BIG;
		if (cap < NB_FWD_UDP_HDR)
			return NB_FWD_E_NOSPACE;
		b[0] = NB_FWD_KIND_UDP;
		nb_put_u16be(b + 1, h->port);
		nb_put_u16be(b + 3, h->flow);
		memcpy(out, b, sizeof(b));
		return NB_FWD_UDP_HDR;
	case NB_FWD_KIND_TCP:
		if (body_len == 0)
			return NB_FWD_E_SHORT;
		if (body_len > NB_FWD_MAX_TPACKET)
			return NB_FWD_E_TOO_BIG;
		if (cap < NB_FWD_TCP_HDR)
			return NB_FWD_E_NOSPACE;
		out[0] = NB_FWD_KIND_TCP;
		return NB_FWD_TCP_HDR;
	default:
		return NB_FWD_E_KIND;
	}
}

int nb_fwd_decode(const uint8_t *p, size_t len, struct nb_fwd_hdr *ret_hdr, const uint8_t **ret_body,
		  size_t *ret_len)
{
	struct nb_fwd_hdr h = { 0 };
	size_t off;

	if (p == NULL || len < 1)
		return NB_FWD_E_SHORT;
	if (len > NB_FWD_MAX_PAYLOAD)
		return NB_FWD_E_TOO_BIG;
	h.kind = p[0];
	off = 1;
	switch (h.kind) {
	case NB_FWD_KIND_PIPE:
		break;
	case NB_FWD_KIND_UDP:
		if (len - off < 4)
			return NB_FWD_E_SHORT;
		h.port = nb_get_u16be(p + off);
		h.flow = nb_get_u16be(p + off + 2);
		off += 4;
		if (h.flow == 0)
			return NB_FWD_E_FLOW;
		break;
	case NB_FWD_KIND_TCP:
		if (len - off < 1)
			return NB_FWD_E_SHORT; /* an SCTP packet is never empty */
		break;
	default:
		return NB_FWD_E_KIND;
	}
	*ret_hdr = h;
	*ret_body = p + off;
	*ret_len = len - off;
	return 0;
}

/* ---- Specs ----------------------------------------------------------------- */

static void say(char *err, size_t err_len, const char *what, const char *s)
{
	if (err != NULL && err_len > 0)
		snprintf(err, err_len, "%s: %s", s, what);
}

/* Decimal 0..65535, all digits, no sign, not empty. */
static int port_parse(const char *s, size_t n, uint16_t *ret)
{
	unsigned v = 0;

	if (n == 0 || n > 5)
		return NB_FWD_E_INVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return NB_FWD_E_INVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return NB_FWD_E_INVAL;
	*ret = (uint16_t)v;
	return 0;
}

/* "udp:" / "tcp:" -> the protocol and the rest; else NB_FWD_E_INVAL. */
static int proto_strip(const char *s, const char *usage, uint8_t *ret_proto, const char **ret_rest, char *err,
		       size_t err_len)
{
	if (s == NULL || strnlen(s, FWD_SPEC_MAX + 1) > FWD_SPEC_MAX) {
		say(err, err_len, "too long", "spec");
		return NB_FWD_E_INVAL;
	}
	if (strncmp(s, "tcp:", 4) == 0)
		*ret_proto = NB_FWD_KIND_TCP;
	else if (strncmp(s, "udp:", 4) == 0)
		*ret_proto = NB_FWD_KIND_UDP;
	else {
		say(err, err_len, usage, s);
		return NB_FWD_E_INVAL;
	}
	*ret_rest = s + 4;
	return 0;
}

/* "HOST:PORT" (HOST: IPv4, [IPv6], localhost); port 0 allowed here. */
static int hostport_parse(const char *s, struct nb_addr *ret)
{
	char buf[FWD_SPEC_MAX + 16];
	struct nb_addr a;

	if (strncmp(s, "localhost:", 10) == 0) {
		snprintf(buf, sizeof(buf), "127.0.0.1:%s", s + 10);
		s = buf;
	}
	if (nb_addr_parse(s, false, &a) != 0)
		return NB_FWD_E_INVAL;
	*ret = a;
	return 0;
}

int nb_fwd_expose_parse(const char *s, struct nb_fwd_spec *ret, char *err, size_t err_len)
{
	static const char usage[] = "expected udp:HOST:PORT or tcp:HOST:PORT (HOST: an IPv4 address, "
				    "[an IPv6 address] or localhost), e.g. udp:127.0.0.1:5353";
	struct nb_fwd_spec sp = { .proto = NB_FWD_KIND_UDP };
	const char *rest;
	int rc = proto_strip(s, usage, &sp.proto, &rest, err, err_len);

	if (rc != 0)
		return rc;
	if (hostport_parse(rest, &sp.addr) != 0) {
		say(err, err_len, usage, s);
		return NB_FWD_E_INVAL;
	}
	if (sp.addr.port == 0) {
		say(err, err_len, "PORT must be 1..65535", s);
		return NB_FWD_E_INVAL;
	}
	if (nb_addr_is_unspecified(&sp.addr) || nb_addr_is_multicast(&sp.addr)) {
		say(err, err_len, "HOST must be one service's address (not 0.0.0.0, ::, or multicast)", s);
		return NB_FWD_E_INVAL;
	}
	*ret = sp;
	return 0;
}

int nb_fwd_forward_parse(const char *s, struct nb_fwd_spec *ret, char *err, size_t err_len)
{
	static const char usage[] = "expected udp:[BIND:]LPORT[=RPORT] or tcp:[BIND:]LPORT[=RPORT] (BIND: an "
				    "IPv4 address, [an IPv6 address] or localhost), e.g. udp:15353 or "
				    "tcp:127.0.0.1:2222=22";
	struct nb_fwd_spec sp = { .proto = NB_FWD_KIND_UDP };
	char left[FWD_SPEC_MAX + 1];
	const char *rest, *eq;
	size_t ll;
	int rc = proto_strip(s, usage, &sp.proto, &rest, err, err_len);

	if (rc != 0)
		return rc;
	eq = strchr(rest, '=');
	ll = eq != NULL ? (size_t)(eq - rest) : strlen(rest);
	if (eq != NULL && port_parse(eq + 1, strlen(eq + 1), &sp.rport) != 0) {
		say(err, err_len,
		    sp.proto == NB_FWD_KIND_TCP ? "RPORT must be 0..65535 (0: the listener's only TCP service)"
						: "RPORT must be 0..65535 (0: the listener's only UDP service)",
		    s);
		return NB_FWD_E_INVAL;
	}
	memcpy(left, rest, ll);
	left[ll] = '\0';
	if (strchr(left, ':') == NULL) {
		if (port_parse(left, ll, &sp.addr.port) != 0) {
			say(err, err_len, usage, s);
			return NB_FWD_E_INVAL;
		}
		sp.addr.family = NB_AF_INET;
		sp.addr.ip[0] = 127;
		sp.addr.ip[3] = 1;
	} else if (hostport_parse(left, &sp.addr) != 0) {
		say(err, err_len, left[0] != '[' && strchr(strchr(left, ':') + 1, ':') != NULL
					  ? "write an IPv6 BIND in brackets, e.g. udp:[::1]:15353 or tcp:[::1]:2222"
					  : usage,
		    s);
		return NB_FWD_E_INVAL;
	}
	if (sp.addr.port == 0) {
		say(err, err_len, "LPORT must be 1..65535", s);
		return NB_FWD_E_INVAL;
	}
	if (nb_addr_is_multicast(&sp.addr)) {
		say(err, err_len, "BIND must be a local address, not multicast", s);
		return NB_FWD_E_INVAL;
	}
	*ret = sp;
	return 0;
}

int nb_fwd_spec_add(struct nb_fwd_spec *list, size_t *n, const struct nb_fwd_spec *s, char *err,
		    size_t err_len)
{
	char t[NB_ADDR_STRLEN];

	if (list == NULL || n == NULL || s == NULL)
		return NB_FWD_E_INVAL;
	if (*n >= NB_FWD_MAX_SPECS) {
		if (err != NULL && err_len > 0)
			snprintf(err, err_len, "at most %u of each of --expose and --forward",
				 (unsigned)NB_FWD_MAX_SPECS);
		return NB_FWD_E_INVAL;
	}
	/* expose: the port is the key on the wire, one service per port;
	 * forward: one local port once (whatever the BIND). */
	for (size_t i = 0; i < *n; i++)
		if (list[i].proto == s->proto && list[i].addr.port == s->addr.port) {
			if (err != NULL && err_len > 0)
				snprintf(err, err_len, "%s port %u given twice (%s)",
					 s->proto == NB_FWD_KIND_TCP ? "tcp" : "udp", (unsigned)s->addr.port,
					 nb_addr_format(&s->addr, t, sizeof(t)));
			return NB_FWD_E_INVAL;
		}
	list[(*n)++] = *s;
	return 0;
}

int nb_fwd_expose_find(const struct nb_fwd_spec *list, size_t n, uint8_t proto, uint16_t port)
{
	int found = NB_FWD_E_NOENT;

	for (size_t i = 0; i < n && i < NB_FWD_MAX_SPECS; i++) {
		if (list[i].proto != proto)
			continue;
		if (port != 0 && list[i].addr.port == port)
			return (int)i;
		if (port == 0) {
			if (found != NB_FWD_E_NOENT)
				return NB_FWD_E_NOENT; /* several: 0 is ambiguous */
			found = (int)i;
		}
	}
	return found;
}

/* ---- Transport service names ---------------------------------------------- */

int nb_fwd_service_put(uint16_t port, char *out, size_t cap)
{
	char b[NB_FWD_SERVICE_MAX];
	int n;

	if (out == NULL)
		return NB_FWD_E_INVAL;
	n = snprintf(b, sizeof(b), "tcp:%u", (unsigned)port);
	if (n < 0 || (size_t)n >= sizeof(b))
		return NB_FWD_E_INVAL;
	if (cap < (size_t)n + 1)
		return NB_FWD_E_NOSPACE;
	memcpy(out, b, (size_t)n + 1);
	return 0;
}

int nb_fwd_service_parse(const char *s, uint16_t *ret_port)
{
	uint16_t p;
	size_t n;

	if (s == NULL || ret_port == NULL || strncmp(s, "tcp:", 4) != 0)
		return NB_FWD_E_SERVICE;
	s += 4;
	n = strnlen(s, 6);
	if (n == 0 || n > 5 || (n > 1 && s[0] == '0') || port_parse(s, n, &p) != 0)
		return NB_FWD_E_SERVICE;
	*ret_port = p;
	return 0;
}

/* ---- Flow table ------------------------------------------------------------- */

void nb_fwd_table_init(struct nb_fwd_table *t)
{
	memset(t, 0, sizeof(*t));
	t->next_flow = 1;
}

static int table_free_slot(struct nb_fwd_table *t, size_t *ret_slot)
{
	for (size_t i = 0; i < NB_FWD_MAX_FLOWS; i++)
		if (!t->f[i].used) {
			*ret_slot = i;
			return 0;
		}
	t->refused++;
	return NB_FWD_E_FULL;
}

static bool flow_in_use(const struct nb_fwd_table *t, uint16_t flow)
{
	for (size_t i = 0; i < NB_FWD_MAX_FLOWS; i++)
		if (t->f[i].used && t->f[i].flow == flow)
			return true;
	return false;
}

int nb_fwd_table_src(struct nb_fwd_table *t, uint32_t sock, const struct nb_addr *src, bool create,
		     uint64_t now, size_t *ret_slot)
{
	size_t slot;
	uint16_t id;

	for (size_t i = 0; i < NB_FWD_MAX_FLOWS; i++)
		if (t->f[i].used && t->f[i].sess == sock && nb_addr_equal(&t->f[i].src, src)) {
			t->f[i].last = now;
			*ret_slot = i;
			return 0;
		}
	if (!create)
		return NB_FWD_E_NOENT;
	if (table_free_slot(t, &slot) != 0)
		return NB_FWD_E_FULL;
	/* At most NB_FWD_MAX_FLOWS ids are in use: a free one comes within
	 * NB_FWD_MAX_FLOWS + 1 tries. Ids are not reused at once (a late
	 * reply of an expired flow must not reach the next source). */
	id = t->next_flow;
	for (;;) {
		if (id == 0)
			id = 1;
		if (!flow_in_use(t, id))
			break;
		id++;
	}
	t->next_flow = (uint16_t)(id + 1);
	memset(&t->f[slot], 0, sizeof(t->f[slot]));
	t->f[slot].used = true;
	t->f[slot].src = *src;
	t->f[slot].sess = sock;
	t->f[slot].flow = id;
	t->f[slot].last = now;
	t->n++;
	*ret_slot = slot;
	return 1;
}

int nb_fwd_table_flow(struct nb_fwd_table *t, uint16_t flow, uint64_t now, size_t *ret_slot)
{
	for (size_t i = 0; i < NB_FWD_MAX_FLOWS; i++)
		if (t->f[i].used && t->f[i].flow == flow) {
			t->f[i].last = now;
			*ret_slot = i;
			return 0;
		}
	return NB_FWD_E_NOENT;
}

int nb_fwd_table_key(struct nb_fwd_table *t, uint32_t sess, uint16_t port, uint16_t flow, bool create,
		     uint64_t now, size_t *ret_slot)
{
	size_t slot;

	if (flow == 0)
		return NB_FWD_E_FLOW;
	for (size_t i = 0; i < NB_FWD_MAX_FLOWS; i++)
		if (t->f[i].used && t->f[i].sess == sess && t->f[i].port == port && t->f[i].flow == flow) {
			t->f[i].last = now;
			*ret_slot = i;
			return 0;
		}
	if (!create)
		return NB_FWD_E_NOENT;
	if (table_free_slot(t, &slot) != 0)
		return NB_FWD_E_FULL;
	memset(&t->f[slot], 0, sizeof(t->f[slot]));
	t->f[slot].used = true;
	t->f[slot].sess = sess;
	t->f[slot].port = port;
	t->f[slot].flow = flow;
	t->f[slot].last = now;
	t->n++;
	*ret_slot = slot;
	return 1;
}

void nb_fwd_table_touch(struct nb_fwd_table *t, size_t slot, uint64_t now)
{
	if (slot < NB_FWD_MAX_FLOWS && t->f[slot].used)
		t->f[slot].last = now;
}

void nb_fwd_table_remove(struct nb_fwd_table *t, size_t slot)
{
	if (slot < NB_FWD_MAX_FLOWS && t->f[slot].used) {
		memset(&t->f[slot], 0, sizeof(t->f[slot]));
		t->n--;
	}
}

int nb_fwd_table_expire(struct nb_fwd_table *t, uint64_t now, size_t *ret_slot)
{
	for (size_t i = 0; i < NB_FWD_MAX_FLOWS; i++)
		if (t->f[i].used && now >= t->f[i].last && now - t->f[i].last >= NB_FWD_IDLE_MS) {
			nb_fwd_table_remove(t, i);
			t->expired++;
			*ret_slot = i;
			return 1;
		}
	return 0;
}

uint64_t nb_fwd_table_deadline(const struct nb_fwd_table *t)
{
	uint64_t d = UINT64_MAX;

	for (size_t i = 0; i < NB_FWD_MAX_FLOWS; i++)
		if (t->f[i].used && t->f[i].last + NB_FWD_IDLE_MS < d)
			d = t->f[i].last + NB_FWD_IDLE_MS;
	return d;
}
