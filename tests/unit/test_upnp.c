/* tests/unit/test_upnp.c - the UPnP IGD state machine against a fake
 * miniupnpd, on a fake clock.
 *
 * The fake router reads what the machine hands out (M-SEARCH datagrams, the
 * description GET, SOAP POSTs whose body it parses just enough to know the
 * action and its arguments) and answers in the formats of the lab captures
 * (tests/unit/data/upnp_sm/, copied from natlab/captures): the SSDP reply and
 * rootDesc.xml verbatim, SOAP answers in the capture's envelope, faults as
 * miniupnpd writes them. It keeps a mapping table with miniupnpd's rules
 * (secure mode: another client's port is 718, ports below 1024 are 606;
 * lease 0 is stored as 604800; GetSpecificPortMappingEntry of a missing
 * entry is 714; deleting a missing one is 200), and can be told to fault,
 * stay silent or restart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "peer/portmap/upnp.h"

#define GW_IP "192.168.6.1"
#define LOCAL_IP "192.168.6.2"
#define CONTROL_PATH "/ctl/IPConn"
#define IGD1 "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
#define SERVICE2 "urn:schemas-upnp-org:service:WANIPConnection:2"
#define ENVELOPE_OPEN                                                                       \
	"<?xml version=\"1.0\"?>\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" " \
	"s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>"
#define ENVELOPE_CLOSE "</s:Body></s:Envelope>\r\n"
#define T0 1000000u

/* ---- the captures ---------------------------------------------------------- */

static char root_desc[8192];
static size_t root_desc_len;
static char ssdp_reply_tpl[1024];
static char add_response[1024]; /* the captured AddPortMappingResponse body */

static void read_data(const char *name, char *buf, size_t cap, size_t *ret_len)
{
	char path[1024];
	const char *slash = strrchr(__FILE__, '/');
	int dir = slash != NULL ? (int)(slash - __FILE__) + 1 : 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%.*sdata/upnp_sm/%s", dir, __FILE__, name);
	f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	n = fread(buf, 1, cap - 1, f);
	fclose(f);
	assert_true(n > 0 && n < cap - 1);
	buf[n] = '\0';
	*ret_len = n;
}

static int load_captures(void **state)
{
	char tmp[4096];
	size_t n;
	const char *p, *e;

	(void)state;
	read_data("rootDesc.xml", root_desc, sizeof(root_desc), &root_desc_len);
	read_data("ssdp-msearch.txt", tmp, sizeof(tmp), &n);
	p = strstr(tmp, "=== reply from 192.168.6.1:1900\n");
	assert_non_null(p);
	p = strchr(p, '\n') + 1;
	e = strstr(p, "\r\n\r\n");
	assert_non_null(e);
	snprintf(ssdp_reply_tpl, sizeof(ssdp_reply_tpl), "%.*s", (int)(e + 4 - p), p);
	read_data("soap-AddPortMapping.txt", tmp, sizeof(tmp), &n);
	p = strstr(tmp, "=== response");
	assert_non_null(p);
	p = strstr(p, "<?xml");
	assert_non_null(p);
	snprintf(add_response, sizeof(add_response), "%s", p);
	assert_non_null(strstr(add_response, "AddPortMappingResponse"));
	return 0;
}

/* ---- the fake router -------------------------------------------------------- */

enum { A_EXTIP, A_ADD, A_ANY, A_DEL, A_GET, A_DESC, A_N };

static int action_of(const char *name)
{
	static const char *const names[] = { "GetExternalIPAddress", "AddPortMapping", "AddAnyPortMapping",
					     "DeletePortMapping", "GetSpecificPortMappingEntry" };
	for (int i = 0; i < 5; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

/* A scripted answer, used by the next request of `action` (A_N: any add). */
struct fault {
	int action;
	const char *code; /* the errorCode text: "718", "-911", "abc"; NULL: silence */
	const char *desc;
};

struct mapping {
	bool used, tcp;
	uint16_t ext, iport;
	char client[16];
	uint32_t lease;
};

struct router {
	/* configuration */
	bool ssdp_silent;
	bool ssdp_bad_location; /* LOCATION on a host other than the responder */
	bool v1;                /* describe itself as IGD v1 / WANIPConnection:1 */
	int desc_status;        /* 0: 200 */
	const char *desc_body;  /* instead of rootDesc.xml */
	bool desc_truncated;
	const char *desc_err;   /* the transfer fails */
	bool any_moves_port;    /* AddAnyPortMapping grants internal+1 */
	char ext_ip[32];
	bool silent[A_N];
	uint32_t delay_ms;
	struct fault script[16];
	int n_script;
	/* state */
	struct mapping maps[8];
	int calls[A_N];
	/* DeletePortMappings that removed another host's mapping (the
	 * requester is always LOCAL_IP), and the last such port */
	int foreign_dels;
	uint16_t foreign_del_port;
};

struct req {
	int action;
	uint32_t id;
	uint64_t at;
	uint16_t ext, iport;
	uint32_t lease;
	bool tcp;
	char client[16];
};

struct h {
	struct nb_upnp u;
	struct nb_upnp_params p;
	struct router r;
	uint64_t now;
	/* the request in flight, and its answer if one is coming */
	bool inflight;
	uint32_t id;
	int action;
	bool resp_due;
	uint64_t resp_at;
	int resp_status;
	char resp_body[8192];
	size_t resp_len;
	bool resp_trunc;
	const char *resp_err;
	/* SSDP replies on their way */
	struct {
		uint64_t at;
		char buf[1024];
		size_t len;
		struct nb_addr from;
	} ssdp[64];
	int n_ssdp;
	int ssdp_taken, ssdp_refused;
	/* what the machine did */
	struct req reqs[2048];
	int n_reqs;
	uint32_t cancels[64];
	int n_cancels;
	struct nb_upnp_event evs[128];
	int n_evs;
	int msearch;
	uint64_t msearch_at[64];
	char msearch_st[64][130];
};

static struct h g_h;

static struct nb_addr A(const char *s)
{
	struct nb_addr a;
	assert_int_equal(nb_addr_parse(s, true, &a), 0);
	return a;
}

static void script(struct h *h, int action, const char *code, const char *desc)
{
	assert_true(h->r.n_script < 16);
	h->r.script[h->r.n_script++] = (struct fault){ action, code, desc };
}

static struct h *h_new(void)
{
	struct h *h = &g_h;

	memset(h, 0, sizeof(*h));
	nb_upnp_params_default(&h->p);
	h->p.internal_port = 40001;
	snprintf(h->r.ext_ip, sizeof(h->r.ext_ip), "203.0.113.106");
	h->r.delay_ms = 5;
	h->now = T0;
	return h;
}

static void h_init(struct h *h, uint64_t seed)
{
	nb_upnp_init(&h->u, &h->p, seed, h->now);
}

/* Text between <tag> and </tag>, into out. */
static bool xml_arg(const char *body, const char *tag, char *out, size_t cap)
{
	char open[64], close[64];
	const char *p, *e;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	p = strstr(body, open);
	if (p == NULL)
		return false;
	p += strlen(open);
	e = strstr(p, close);
	if (e == NULL || (size_t)(e - p) >= cap)
		return false;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
	return true;
}

static unsigned long num_arg(const char *body, const char *tag)
{
	char v[32];
	char *end;
	unsigned long n;

	assert_true(xml_arg(body, tag, v, sizeof(v)));
	n = strtoul(v, &end, 10);
	assert_true(end != v && *end == '\0');
	return n;
}

static const char *service_type(const struct h *h)
{
	return h->r.v1 ? "urn:schemas-upnp-org:service:WANIPConnection:1" : SERVICE2;
}

static void respond(struct h *h, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void respond(struct h *h, int status, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(h->resp_body, sizeof(h->resp_body), fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(h->resp_body));
	h->resp_len = (size_t)n;
	h->resp_status = status;
	h->resp_due = true;
	h->resp_at = h->now + h->r.delay_ms;
}

/* miniupnpd's SoapError(). */
static void respond_fault(struct h *h, const char *code, const char *desc)
{
	respond(h, 500,
		ENVELOPE_OPEN "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>"
			      "<detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>%s"
			      "</errorCode><errorDescription>%s</errorDescription></UPnPError></detail>"
			      "</s:Fault>" ENVELOPE_CLOSE,
		code, desc);
}

static void respond_ok(struct h *h, const char *action, const char *inner)
{
	if (inner[0] == '\0')
		respond(h, 200, ENVELOPE_OPEN "<u:%sResponse xmlns:u=\"%s\"/>" ENVELOPE_CLOSE, action,
			service_type(h));
	else
		respond(h, 200, ENVELOPE_OPEN "<u:%sResponse xmlns:u=\"%s\">%s</u:%sResponse>" ENVELOPE_CLOSE,
			action, service_type(h), inner, action);
}

static struct mapping *find_map(struct h *h, uint16_t ext, bool tcp)
{
	for (int i = 0; i < 8; i++)
		if (h->r.maps[i].used && h->r.maps[i].ext == ext && h->r.maps[i].tcp == tcp)
			return &h->r.maps[i];
	return NULL;
}

static struct mapping *put_map(struct h *h, const struct req *q, uint16_t ext)
{
	struct mapping *m = find_map(h, ext, q->tcp);

	for (int i = 0; m == NULL && i < 8; i++)
		if (!h->r.maps[i].used)
			m = &h->r.maps[i];
	assert_non_null(m);
	m->used = true;
	m->tcp = q->tcp;
	m->ext = ext;
	m->iport = q->iport;
	snprintf(m->client, sizeof(m->client), "%s", q->client);
	m->lease = q->lease == 0 ? 604800 : q->lease; /* miniupnpd stores 0 as a week */
	return m;
}

static void router_soap(struct h *h, const struct nb_upnp_out *o, struct req *q)
{
	char body[NB_SOAP_REQ_BODY_MAX + 1], name[64], open[256], v[64];
	const char *soapaction = NULL, *hash, *quote;
	struct mapping *m;

	assert_true(o->post);
	assert_true(o->len > 0 && o->len < sizeof(body));
	memcpy(body, o->bytes, o->len);
	body[o->len] = '\0';
	assert_int_equal(o->max_response, NB_SOAP_RESPONSE_MAX);
	assert_string_equal(o->url.path, CONTROL_PATH);
	assert_true(nb_addr_equal(&o->url.addr, &(struct nb_addr){ .family = NB_AF_INET,
								   .port = 5000,
								   .ip = { 192, 168, 6, 1 } }));
	for (int i = 0; o->headers[i] != NULL; i++) {
		assert_true(i < NB_SOAP_HEADERS);
		if (strncmp(o->headers[i], "SOAPAction:", 11) == 0)
			soapaction = o->headers[i];
	}
	/* The quoted "service#Action" that strict routers want. */
	assert_non_null(soapaction);
	hash = strchr(soapaction, '#');
	assert_non_null(hash);
	assert_non_null(strchr(soapaction, '"'));
	quote = strchr(hash, '"');
	assert_non_null(quote);
	snprintf(name, sizeof(name), "%.*s", (int)(quote - hash - 1), hash + 1);
	q->action = action_of(name);
	assert_true(q->action >= 0);
	snprintf(open, sizeof(open), "<u:%s xmlns:u=\"%s\">", name, service_type(h));
	assert_non_null(strstr(body, open));
	if (q->action != A_EXTIP) {
		q->ext = (uint16_t)num_arg(body, "NewExternalPort");
		assert_true(xml_arg(body, "NewProtocol", v, sizeof(v)));
		assert_true(strcmp(v, "UDP") == 0 || strcmp(v, "TCP") == 0);
		q->tcp = strcmp(v, "TCP") == 0;
	}
	if (q->action == A_ADD || q->action == A_ANY) {
		q->iport = (uint16_t)num_arg(body, "NewInternalPort");
		q->lease = (uint32_t)num_arg(body, "NewLeaseDuration");
		assert_true(xml_arg(body, "NewInternalClient", q->client, sizeof(q->client)));
		assert_int_equal(num_arg(body, "NewEnabled"), 1);
		assert_true(xml_arg(body, "NewPortMappingDescription", v, sizeof(v)));
		assert_string_equal(v, h->p.description[0] ? h->p.description : "natpeer");
	}
	h->r.calls[q->action]++;
	if (h->r.silent[q->action])
		return;
	for (int i = 0; i < h->r.n_script; i++) {
		struct fault *f = &h->r.script[i];
		if (f->action == q->action || (f->action == A_N && (q->action == A_ADD || q->action == A_ANY))) {
			struct fault now = *f;
			memmove(f, f + 1, (size_t)(h->r.n_script - i - 1) * sizeof(*f));
			h->r.n_script--;
			if (now.code != NULL)
				respond_fault(h, now.code, now.desc);
			return;
		}
	}
	switch (q->action) {
	case A_EXTIP:
		snprintf(open, sizeof(open), "<NewExternalIPAddress>%s</NewExternalIPAddress>", h->r.ext_ip);
		respond_ok(h, name, open);
		return;
	case A_ADD:
	case A_ANY: {
		uint16_t ext = q->ext;
		if (q->ext < 1024 || q->iport < 1024) {
			respond_fault(h, "606", "Action not authorized");
			return;
		}
		if (strncmp(q->client, "192.168.6.", 10) != 0) {
			respond_fault(h, "718", "ConflictInMappingEntry");
			return;
		}
		m = find_map(h, ext, q->tcp);
		if (q->action == A_ANY && h->r.any_moves_port)
			ext = (uint16_t)(ext + 1);
		while (q->action == A_ANY && (m = find_map(h, ext, q->tcp)) != NULL &&
		       (strcmp(m->client, q->client) != 0 || m->iport != q->iport))
			ext++;
		if (m != NULL && (strcmp(m->client, q->client) != 0 || m->iport != q->iport)) {
			respond_fault(h, "718", "ConflictInMappingEntry");
			return;
		}
		put_map(h, q, ext);
		if (q->action == A_ADD) {
			/* The captured answer, verbatim, when the service matches it. */
			if (!h->r.v1)
				respond(h, 200, "%s", add_response);
			else
				respond_ok(h, name, "");
		} else {
			snprintf(open, sizeof(open), "<NewReservedPort>%u</NewReservedPort>", (unsigned)ext);
			respond_ok(h, name, open);
		}
		return;
	}
	case A_DEL:
		m = find_map(h, q->ext, q->tcp);
		if (m != NULL && strcmp(m->client, LOCAL_IP) != 0) {
			h->r.foreign_dels++;
			h->r.foreign_del_port = q->ext;
		}
		if (m != NULL)
			m->used = false;
		respond_ok(h, name, ""); /* 200 even when missing, as miniupnpd does */
		return;
	case A_GET:
		m = find_map(h, q->ext, q->tcp);
		if (m == NULL) {
			respond_fault(h, "714", "NoSuchEntryInArray");
			return;
		}
		{
			char inner[512];
			snprintf(inner, sizeof(inner),
				 "<NewInternalPort>%u</NewInternalPort><NewInternalClient>%s</NewInternalClient>"
				 "<NewEnabled>1</NewEnabled><NewPortMappingDescription>natpeer"
				 "</NewPortMappingDescription><NewLeaseDuration>%u</NewLeaseDuration>",
				 (unsigned)m->iport, m->client, (unsigned)m->lease);
			respond_ok(h, name, inner);
		}
		return;
	default:
		fail();
	}
}

static void router_desc(struct h *h, const struct nb_upnp_out *o, struct req *q)
{
	char url[300];

	q->action = A_DESC;
	h->r.calls[A_DESC]++;
	assert_false(o->post);
	assert_int_equal(o->len, 0);
	assert_null(o->headers[0]);
	assert_int_equal(o->max_response, NB_IGD_XML_MAX);
	assert_true(nb_url_format(&o->url, url, sizeof(url)) > 0);
	assert_string_equal(url, h->r.ssdp_bad_location ? "http://192.168.6.9:5000/rootDesc.xml"
							: "http://" GW_IP ":5000/rootDesc.xml");
	if (h->r.silent[A_DESC])
		return;
	if (h->r.desc_err != NULL) {
		h->resp_due = true;
		h->resp_at = h->now + h->r.delay_ms;
		h->resp_status = 0;
		h->resp_len = 0;
		h->resp_err = h->r.desc_err;
		return;
	}
	if (h->r.desc_body != NULL) {
		respond(h, h->r.desc_status ? h->r.desc_status : 200, "%s", h->r.desc_body);
	} else if (h->r.v1) {
		/* force_igd_desc_v1=yes: every ":2<" of a type becomes ":1<". */
		char v1[8192], *p;
		snprintf(v1, sizeof(v1), "%s", root_desc);
		while ((p = strstr(v1, ":2</")) != NULL)
			p[1] = '1';
		respond(h, h->r.desc_status ? h->r.desc_status : 200, "%s", v1);
	} else {
		respond(h, h->r.desc_status ? h->r.desc_status : 200, "%s", root_desc);
	}
	h->resp_trunc = h->r.desc_truncated;
}

static void router_msearch(struct h *h, const struct nb_upnp_out *o)
{
	char dg[512], st[130], reply[1024];
	const char *p, *e;
	static const char *const answered_v2[] = {
		"urn:schemas-upnp-org:device:InternetGatewayDevice:2",
		"urn:schemas-upnp-org:device:InternetGatewayDevice:1",
		"urn:schemas-upnp-org:service:WANIPConnection:2",
		"urn:schemas-upnp-org:service:WANIPConnection:1",
	};
	bool answer = false;

	assert_true(nb_addr_equal(&o->to, &(struct nb_addr){ .family = NB_AF_INET,
							       .port = 1900,
							       .ip = { 239, 255, 255, 250 } }));
	assert_true(o->len > 0 && o->len < sizeof(dg));
	memcpy(dg, o->bytes, o->len);
	dg[o->len] = '\0';
	assert_true(strncmp(dg, "M-SEARCH * HTTP/1.1\r\n", 21) == 0);
	assert_non_null(strstr(dg, "\r\nMAN: \"ssdp:discover\"\r\n"));
	assert_non_null(strstr(dg, "\r\nMX: 2\r\n"));
	assert_true(strcmp(dg + o->len - 4, "\r\n\r\n") == 0);
	p = strstr(dg, "\r\nST: ");
	assert_non_null(p);
	p += 6;
	e = strstr(p, "\r\n");
	snprintf(st, sizeof(st), "%.*s", (int)(e - p), p);
	assert_true(h->msearch < 64);
	h->msearch_at[h->msearch] = h->now;
	snprintf(h->msearch_st[h->msearch++], sizeof(h->msearch_st[0]), "%s", st);
	if (h->r.ssdp_silent)
		return;
	for (size_t i = 0; i < sizeof(answered_v2) / sizeof(answered_v2[0]); i++)
		if (strcmp(st, answered_v2[i]) == 0 && (!h->r.v1 || strstr(st, ":1") != NULL))
			answer = true;
	if (!answer)
		return;
	/* The captured reply, with the ST asked for. */
	{
		char *w = reply;
		const char *r = ssdp_reply_tpl, *hit;
		size_t cap = sizeof(reply);
		while ((hit = strstr(r, IGD1)) != NULL) {
			int n = snprintf(w, cap, "%.*s%s", (int)(hit - r), r, st);
			w += n, cap -= (size_t)n;
			r = hit + strlen(IGD1);
		}
		snprintf(w, cap, "%s", r);
	}
	if (h->r.ssdp_bad_location) {
		char *loc = strstr(reply, "http://" GW_IP);
		assert_non_null(loc);
		memcpy(loc + 7, "192.168.6.9", 11);
	}
	assert_true(h->n_ssdp < 64);
	h->ssdp[h->n_ssdp].at = h->now + 10;
	h->ssdp[h->n_ssdp].len = strlen(reply);
	memcpy(h->ssdp[h->n_ssdp].buf, reply, h->ssdp[h->n_ssdp].len);
	h->ssdp[h->n_ssdp].from = A(GW_IP ":1900");
	h->n_ssdp++;
}

/* ---- driving the machine --------------------------------------------------------- */

static void handle_out(struct h *h, const struct nb_upnp_out *o)
{
	switch (o->kind) {
	case NB_UPNP_OUT_SSDP:
		router_msearch(h, o);
		break;
	case NB_UPNP_OUT_HTTP: {
		struct req *q;
		assert_false(h->inflight); /* one request at a time */
		assert_true(o->http_id != 0);
		for (int i = 0; i < h->n_reqs; i++)
			assert_true(h->reqs[i].id != o->http_id); /* fresh ids */
		assert_true(o->timeout_ms > 0);
		assert_true(h->n_reqs < 2048);
		q = &h->reqs[h->n_reqs++];
		memset(q, 0, sizeof(*q));
		q->id = o->http_id;
		q->at = h->now;
		h->inflight = true;
		h->id = o->http_id;
		h->resp_due = false;
		h->resp_trunc = false;
		h->resp_err = NULL;
		if (o->post)
			router_soap(h, o, q);
		else
			router_desc(h, o, q);
		h->action = q->action;
		break;
	}
	case NB_UPNP_OUT_CANCEL:
		assert_true(h->inflight);
		assert_int_equal(o->http_id, h->id);
		assert_true(h->n_cancels < 64);
		h->cancels[h->n_cancels++] = o->http_id;
		h->inflight = false;
		h->resp_due = false;
		break;
	default:
		fail();
	}
}

static void pump(struct h *h)
{
	struct nb_upnp_out o;
	struct nb_upnp_event ev;
	int guard = 0;

	while (nb_upnp_poll(&h->u, h->now, &o) == 1) {
		assert_true(++guard < 64);
		handle_out(h, &o);
	}
	while (nb_upnp_event(&h->u, &ev) == 1) {
		assert_true(h->n_evs < 128);
		h->evs[h->n_evs++] = ev;
	}
	/* Everything due was done. */
	assert_true(nb_upnp_deadline(&h->u) > h->now);
}

static const struct nb_addr *local_addr(void)
{
	static struct nb_addr a;
	a = A(LOCAL_IP ":43122");
	return &a;
}

static void deliver_response(struct h *h)
{
	h->resp_due = false;
	h->inflight = false;
	nb_upnp_http_done(&h->u, h->id, h->resp_status, (const uint8_t *)h->resp_body, h->resp_len, h->resp_trunc,
			  local_addr(), h->resp_err, h->now);
}

static uint64_t next_time(struct h *h)
{
	uint64_t t = nb_upnp_deadline(&h->u);

	if (h->resp_due && h->resp_at < t)
		t = h->resp_at;
	for (int i = 0; i < h->n_ssdp; i++)
		if (h->ssdp[i].at < t)
			t = h->ssdp[i].at;
	return t;
}

/* Run the world until `t` (inclusive). */
static void run_until(struct h *h, uint64_t t)
{
	pump(h);
	for (int guard = 0;; guard++) {
		uint64_t n = next_time(h);
		assert_true(guard < 100000);
		if (n > t)
			break;
		if (n > h->now)
			h->now = n;
		for (int i = 0; i < h->n_ssdp;) {
			if (h->ssdp[i].at <= h->now) {
				int rc = nb_upnp_ssdp_input(&h->u, (const uint8_t *)h->ssdp[i].buf, h->ssdp[i].len,
							    &h->ssdp[i].from, h->now);
				if (rc == 0)
					h->ssdp_taken++;
				else
					h->ssdp_refused++;
				memmove(&h->ssdp[i], &h->ssdp[i + 1], (size_t)(h->n_ssdp - i - 1) * sizeof(h->ssdp[0]));
				h->n_ssdp--;
			} else {
				i++;
			}
		}
		if (h->resp_due && h->resp_at <= h->now)
			deliver_response(h);
		pump(h);
	}
	if (h->now < t)
		h->now = t;
	pump(h);
}

static void run_for(struct h *h, uint64_t ms)
{
	run_until(h, h->now + ms);
}

static void start(struct h *h)
{
	nb_upnp_start(&h->u, h->now);
	pump(h);
}

static const struct nb_upnp_info *info(const struct h *h)
{
	return nb_upnp_info(&h->u);
}

static int count_reqs(const struct h *h, int action)
{
	int n = 0;
	for (int i = 0; i < h->n_reqs; i++)
		n += h->reqs[i].action == action;
	return n;
}

static const struct req *last_req(const struct h *h, int action)
{
	for (int i = h->n_reqs - 1; i >= 0; i--)
		if (h->reqs[i].action == action)
			return &h->reqs[i];
	return NULL;
}

static int count_evs(const struct h *h, enum nb_upnp_event_kind k)
{
	int n = 0;
	for (int i = 0; i < h->n_evs; i++)
		n += h->evs[i].kind == k;
	return n;
}

static const struct nb_upnp_event *last_ev(const struct h *h, enum nb_upnp_event_kind k)
{
	for (int i = h->n_evs - 1; i >= 0; i--)
		if (h->evs[i].kind == k)
			return &h->evs[i];
	return NULL;
}

/* Start and run until mapped (or anything else settles). */
static void bring_up(struct h *h, uint64_t seed)
{
	h_init(h, seed);
	start(h);
	run_for(h, 10000);
}

static void assert_mapped(const struct h *h, const char *ext)
{
	char a[NB_ADDR_STRLEN];

	assert_int_equal(info(h)->status, NB_UPNP_MAPPED);
	assert_string_equal(nb_addr_format(&info(h)->external, a, sizeof(a)), ext);
}

static void assert_reason(const struct h *h, enum nb_upnp_status st, const char *reason)
{
	assert_string_equal(nb_upnp_status_string(info(h)->status), nb_upnp_status_string(st));
	assert_string_equal(info(h)->reason, reason);
}

/* Silent after failing/closing: no output, no deadline. */
static void assert_quiet(struct h *h)
{
	struct nb_upnp_out o;

	assert_int_equal(nb_upnp_poll(&h->u, h->now, &o), 0);
	assert_int_equal(nb_upnp_poll(&h->u, h->now + 86400000ull * 30, &o), 0);
	assert_true(nb_upnp_deadline(&h->u) == UINT64_MAX);
}

/* ---- discovery ------------------------------------------------------------------ */

static void test_happy_path_v2(void **state)
{
	struct h *h = h_new();
	const struct req *q;
	char a[NB_ADDR_STRLEN];

	(void)state;
	h_init(h, 7);
	assert_int_equal(info(h)->status, NB_UPNP_IDLE);
	assert_true(nb_upnp_deadline(&h->u) == UINT64_MAX);
	start(h);
	/* All five targets at once, MX 2. */
	assert_int_equal(h->msearch, 5);
	for (int i = 0; i < 5; i++) {
		assert_string_equal(h->msearch_st[i], nb_ssdp_targets[i]);
		assert_int_equal(h->msearch_at[i], T0);
	}
	assert_int_equal(info(h)->status, NB_UPNP_WORKING);
	run_for(h, 10000);

	/* Four STs answered; the first reply won, the others were ignored. */
	assert_int_equal(h->ssdp_taken, 1);
	assert_int_equal(h->ssdp_refused, 3);
	assert_int_equal(h->msearch, 5); /* no second round: answered at 10 ms */
	assert_int_equal(h->r.calls[A_DESC], 1);
	assert_int_equal(h->reqs[0].at, T0 + 10);
	assert_int_equal(h->r.calls[A_EXTIP], 1);
	assert_int_equal(h->r.calls[A_ANY], 1); /* WANIPConnection:2: AddAnyPortMapping */
	assert_int_equal(h->r.calls[A_ADD], 0);
	q = last_req(h, A_ANY);
	assert_int_equal(q->ext, 40001);
	assert_int_equal(q->iport, 40001);
	assert_int_equal(q->lease, 3600);
	assert_false(q->tcp);
	assert_string_equal(q->client, LOCAL_IP);

	assert_mapped(h, "203.0.113.106:40001");
	assert_int_equal(info(h)->lease_s, 3600);
	assert_string_equal(nb_addr_format(&info(h)->internal_client, a, sizeof(a)), LOCAL_IP ":40001");
	assert_string_equal(nb_addr_format(&info(h)->gateway, a, sizeof(a)), GW_IP ":1900");
	assert_string_equal(info(h)->server, "Debian/6.18.44-fc-v657 UPnP/1.1 MiniUPnPd/2.3.1");
	assert_string_equal(info(h)->igd.friendly_name, "natlab r6 IGD");
	assert_string_equal(info(h)->igd.service_type, SERVICE2);
	assert_int_equal(info(h)->mapped_at, T0 + 10 + 3 * 5);
	assert_int_equal(h->r.maps[0].ext, 40001);

	/* Progress, in order, with their times. */
	assert_int_equal(h->n_evs, 4);
	assert_int_equal(h->evs[0].kind, NB_UPNP_EV_GATEWAY);
	assert_int_equal(h->evs[0].at, T0 + 10);
	assert_int_equal(h->evs[1].kind, NB_UPNP_EV_DESCRIBED);
	assert_int_equal(h->evs[1].at, T0 + 15);
	assert_int_equal(h->evs[2].kind, NB_UPNP_EV_EXTERNAL_IP);
	assert_int_equal(h->evs[3].kind, NB_UPNP_EV_MAPPED);
	assert_int_equal(h->evs[3].at, T0 + 25);
	assert_int_equal(h->n_cancels, 0);
}

static void test_happy_path_v1_tcp(void **state)
{
	struct h *h = h_new();
	const struct req *q;

	(void)state;
	h->r.v1 = true;
	h->p.tcp = true;
	h->p.lease_s = 7200;
	snprintf(h->p.description, sizeof(h->p.description), "natpeer-test");
	bring_up(h, 7);
	assert_int_equal(info(h)->igd.service_version, 1);
	assert_int_equal(h->r.calls[A_ANY], 0);
	assert_int_equal(h->r.calls[A_ADD], 1);
	q = last_req(h, A_ADD);
	assert_true(q->tcp);
	assert_int_equal(q->lease, 7200);
	assert_mapped(h, "203.0.113.106:40001");
}

static void test_ssdp_silent(void **state)
{
	struct h *h = h_new();

	(void)state;
	h->r.ssdp_silent = true;
	h_init(h, 1);
	start(h);
	run_until(h, T0 + 1999);
	assert_int_equal(info(h)->status, NB_UPNP_WORKING);
	/* Rounds at 0, 500, 1000, 1500 ms: five M-SEARCHes each. */
	assert_int_equal(h->msearch, 20);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(h->msearch_at[i], T0 + (uint64_t)(i / 5) * 500);
		assert_string_equal(h->msearch_st[i], nb_ssdp_targets[i % 5]);
	}
	run_until(h, T0 + 2000);
	assert_reason(h, NB_UPNP_UNAVAILABLE, "no UPnP gateway answered in 2.0 s");
	assert_int_equal(h->n_evs, 1);
	assert_int_equal(h->evs[0].kind, NB_UPNP_EV_FAILED);
	assert_int_equal(h->evs[0].at, T0 + 2000);
	assert_int_equal(h->msearch, 20);
	assert_int_equal(h->n_reqs, 0);
	assert_quiet(h);
	/* A reply now is not wanted. */
	assert_int_equal(nb_upnp_ssdp_input(&h->u, (const uint8_t *)ssdp_reply_tpl, strlen(ssdp_reply_tpl),
					    &(struct nb_addr){ .family = NB_AF_INET, .port = 1900, .ip = { 192, 168, 6, 1 } },
					    h->now),
			 -EINVAL);
}

static void test_ssdp_bad_location(void **state)
{
	struct h *h = h_new();

	(void)state;
	h->r.ssdp_bad_location = true; /* LOCATION names 192.168.6.9, the reply comes from .1 */
	bring_up(h, 1);
	assert_int_equal(h->ssdp_taken, 0);
	assert_true(h->ssdp_refused >= 4);
	assert_int_equal(info(h)->status, NB_UPNP_UNAVAILABLE);
	assert_non_null(strstr(info(h)->reason, "no usable UPnP gateway answered in 2.0 s ("));
	assert_non_null(strstr(info(h)->reason, " replies refused: "));
	assert_int_equal(h->n_reqs, 0);

	/* The lab's split namespaces: NB_SSDP_ANY_HOST accepts it. */
	h = h_new();
	h->r.ssdp_bad_location = true;
	h->p.ssdp_flags = NB_SSDP_ANY_HOST;
	h->r.desc_err = "Couldn't connect to server";
	bring_up(h, 1);
	assert_int_equal(h->ssdp_taken, 1);
	assert_reason(h, NB_UPNP_UNAVAILABLE,
		      "could not fetch the gateway's description (http://192.168.6.9:5000/rootDesc.xml): "
		      "Couldn't connect to server");
}

static void test_ssdp_garbage_then_good(void **state)
{
	struct h *h = h_new();
	const char *junk = "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n";
	struct nb_addr from = A(GW_IP ":1900");

	(void)state;
	h->r.ssdp_silent = true;
	h_init(h, 1);
	start(h);
	run_for(h, 700);
	assert_int_equal(nb_upnp_ssdp_input(&h->u, (const uint8_t *)junk, strlen(junk), &from, h->now), -EINVAL);
	assert_int_equal(nb_upnp_ssdp_input(&h->u, (const uint8_t *)ssdp_reply_tpl, strlen(ssdp_reply_tpl), &from,
					    h->now),
			 0);
	assert_int_equal(nb_upnp_ssdp_input(&h->u, (const uint8_t *)ssdp_reply_tpl, strlen(ssdp_reply_tpl), &from,
					    h->now),
			 -EINVAL);
	pump(h);
	assert_int_equal(h->msearch, 10);
	run_for(h, 10000);
	assert_int_equal(h->msearch, 10); /* no more rounds once a gateway answered */
	assert_mapped(h, "203.0.113.106:40001");
}

/* ---- the description ----------------------------------------------------------------- */

static void test_description_errors(void **state)
{
	struct h *h;

	(void)state;
	h = h_new();
	h->r.desc_status = 404;
	h->r.desc_body = "<html><body>Not Found</body></html>";
	bring_up(h, 1);
	assert_reason(h, NB_UPNP_UNAVAILABLE,
		      "the gateway's description (http://192.168.6.1:5000/rootDesc.xml) came with HTTP 404");
	assert_int_equal(h->r.calls[A_EXTIP], 0);

	h = h_new();
	h->r.desc_body = "<html><body>Welcome to your router</body></html>";
	bring_up(h, 1);
	assert_int_equal(info(h)->status, NB_UPNP_UNAVAILABLE);
	assert_non_null(strstr(info(h)->reason, "the gateway's description is unusable: "));

	h = h_new();
	h->r.desc_truncated = true;
	bring_up(h, 1);
	assert_reason(h, NB_UPNP_UNAVAILABLE, "the gateway's description is longer than 65536 bytes");

	/* A device with no WAN connection service. */
	{
		static char no_wan[8192];
		char *p;
		snprintf(no_wan, sizeof(no_wan), "%s", root_desc);
		while ((p = strstr(no_wan, "WANIPConnection")) != NULL)
			memcpy(p, "WANXXConnection", 15);
		h = h_new();
		h->r.desc_body = no_wan;
		bring_up(h, 1);
		assert_int_equal(info(h)->status, NB_UPNP_UNAVAILABLE);
		assert_non_null(strstr(info(h)->reason, "the gateway's description is unusable: "));
		assert_int_equal(h->r.calls[A_EXTIP], 0);
	}

	/* Silent: our timeout, a CANCEL, UNAVAILABLE. */
	h = h_new();
	h->r.silent[A_DESC] = true;
	bring_up(h, 1);
	assert_reason(h, NB_UPNP_UNAVAILABLE,
		      "the gateway did not answer the description request (http://192.168.6.1:5000/rootDesc.xml) "
		      "within 3.0 s");
	assert_int_equal(h->n_cancels, 1);
	assert_int_equal(h->cancels[0], h->reqs[0].id);
	assert_int_equal(last_ev(h, NB_UPNP_EV_FAILED)->at, T0 + 10 + 3000);
	assert_quiet(h);
}

/* ---- the external address ------------------------------------------------------------- */

static void test_external_ip_useless(void **state)
{
	static const struct {
		const char *ip, *reason;
	} cases[] = {
		{ "", "the router reports no external address: it is not connected, or behind another NAT" },
		{ "0.0.0.0", "the router's external address 0.0.0.0 is unspecified: the router has no WAN address" },
		{ "10.1.2.3", "the router's external address 10.1.2.3 is a private address (RFC 1918): double NAT" },
		{ "172.16.0.1", "the router's external address 172.16.0.1 is a private address (RFC 1918): double NAT" },
		{ "172.31.255.254", "the router's external address 172.31.255.254 is a private address (RFC 1918): "
				    "double NAT" },
		{ "192.168.1.1", "the router's external address 192.168.1.1 is a private address (RFC 1918): double NAT" },
		{ "100.64.11.2", "the router's external address 100.64.11.2 is a CGNAT address: double NAT" },
		{ "100.127.0.1", "the router's external address 100.127.0.1 is a CGNAT address: double NAT" },
		{ "127.0.0.1", "the router's external address 127.0.0.1 is a loopback address" },
		{ "169.254.3.4", "the router's external address 169.254.3.4 is a link-local address: the router has no "
				 "WAN lease" },
		{ "224.0.0.1", "the router's external address 224.0.0.1 is not a unicast address" },
		{ "255.255.255.255", "the router's external address 255.255.255.255 is not a unicast address" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct h *h = h_new();
		snprintf(h->r.ext_ip, sizeof(h->r.ext_ip), "%s", cases[i].ip);
		bring_up(h, 1);
		assert_reason(h, NB_UPNP_UNUSABLE, cases[i].reason);
		assert_int_equal(h->r.calls[A_ANY] + h->r.calls[A_ADD], 0); /* no mapping asked for */
		assert_int_equal(last_ev(h, NB_UPNP_EV_FAILED)->kind, NB_UPNP_EV_FAILED);
		assert_int_equal(count_evs(h, NB_UPNP_EV_EXTERNAL_IP), cases[i].ip[0] != '\0');
		assert_quiet(h);
	}
}

static void test_external_ip_usable(void **state)
{
	/* Public, and documentation ranges (the lab's internet is 203.0.113/24);
	 * the neighbours of the refused ranges too. */
	static const char *const ips[] = { "203.0.113.106", "198.51.100.7", "192.0.2.1", "8.8.8.8",
					   "172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1",
					   "192.169.0.1", "11.0.0.1", "169.253.1.1" };

	(void)state;
	for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
		struct h *h = h_new();
		char want[64];
		snprintf(h->r.ext_ip, sizeof(h->r.ext_ip), "%s", ips[i]);
		bring_up(h, 1);
		snprintf(want, sizeof(want), "%s:40001", ips[i]);
		assert_mapped(h, want);
	}
}

static void test_external_ip_faults(void **state)
{
	struct h *h;

	(void)state;
	/* A WAN that is down: the control service cannot serve us. */
	h = h_new();
	script(h, A_EXTIP, "501", "ActionFailed");
	bring_up(h, 1);
	assert_reason(h, NB_UPNP_UNAVAILABLE, "the router could not report its external address: 501 ActionFailed");
	/* Policy: REFUSED. */
	h = h_new();
	script(h, A_EXTIP, "606", "Action not authorized");
	bring_up(h, 1);
	assert_reason(h, NB_UPNP_REFUSED, "the router refused GetExternalIPAddress: 606 Action not authorized");
	/* Silent. */
	h = h_new();
	h->r.silent[A_EXTIP] = true;
	bring_up(h, 1);
	assert_reason(h, NB_UPNP_UNAVAILABLE, "the gateway did not answer GetExternalIPAddress within 3.0 s");
	assert_int_equal(h->n_cancels, 1);
	assert_int_equal(h->cancels[0], last_req(h, A_EXTIP)->id);
}

/* ---- mapping faults --------------------------------------------------------------------- */

static void test_add_refusals(void **state)
{
	static const struct {
		const char *code, *desc, *reason;
	} cases[] = {
		{ "501", "ActionFailed", "the router refused the mapping: 501 ActionFailed" },
		{ "606", "Action not authorized", "the router refused the mapping: 606 Action not authorized" },
		{ "-911", "Internal Error", "the router refused the mapping: -911 Internal Error" },
		{ "abc", "Weird", "the router refused the mapping: a fault without a numeric code (Weird)" },
		{ "714", "NoSuchEntryInArray", "the router refused the mapping: 714 NoSuchEntryInArray" },
		{ "716", "WildCardNotPermittedInExtPort",
		  "the router refused the mapping: 716 WildCardNotPermittedInExtPort" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct h *h = h_new();
		script(h, A_N, cases[i].code, cases[i].desc);
		bring_up(h, 1);
		assert_reason(h, NB_UPNP_REFUSED, cases[i].reason);
		assert_int_equal(h->r.calls[A_ANY] + h->r.calls[A_ADD], 1);
		assert_int_equal(count_evs(h, NB_UPNP_EV_FAILED), 1);
		assert_int_equal(count_evs(h, NB_UPNP_EV_MAPPED), 0);
		assert_quiet(h);
	}
}

static void test_add_port_80(void **state)
{
	struct h *h = h_new();

	(void)state;
	h->p.internal_port = 80; /* secure mode: 606 below 1024 */
	bring_up(h, 1);
	assert_reason(h, NB_UPNP_REFUSED, "the router refused the mapping: 606 Action not authorized");
}

static void test_add_725_permanent(void **state)
{
	struct h *h = h_new();

	(void)state;
	h->r.v1 = true;
	script(h, A_ADD, "725", "OnlyPermanentLeasesSupported");
	bring_up(h, 1);
	assert_int_equal(h->r.calls[A_ADD], 2);
	assert_int_equal(h->reqs[h->n_reqs - 2].lease, 3600);
	assert_int_equal(h->reqs[h->n_reqs - 1].lease, 0);
	assert_int_equal(h->reqs[h->n_reqs - 1].ext, 40001);
	assert_mapped(h, "203.0.113.106:40001");
	assert_int_equal(info(h)->lease_s, 0);
	/* Permanent: no renewal ever, but checks every 60 s. */
	run_for(h, 3 * 3600 * 1000);
	assert_int_equal(h->r.calls[A_ADD], 2);
	assert_int_equal(h->r.calls[A_GET], 3 * 60);
	assert_mapped(h, "203.0.113.106:40001");

	/* 725 twice: the second is a refusal. */
	h = h_new();
	script(h, A_N, "725", "OnlyPermanentLeasesSupported");
	script(h, A_N, "725", "OnlyPermanentLeasesSupported");
	bring_up(h, 1);
	assert_reason(h, NB_UPNP_REFUSED, "the router refused the mapping: 725 OnlyPermanentLeasesSupported");
	assert_int_equal(h->r.calls[A_ANY], 2);
}

static void test_add_402_toggle(void **state)
{
	struct h *h = h_new();

	(void)state;
	script(h, A_N, "402", "Invalid Args");
	bring_up(h, 1);
	assert_int_equal(h->r.calls[A_ANY], 2);
	assert_int_equal(h->reqs[h->n_reqs - 1].lease, 0);
	assert_mapped(h, "203.0.113.106:40001");

	/* Asked for permanent: toggled to a lease. */
	h = h_new();
	h->p.lease_s = 0;
	script(h, A_N, "402", "Invalid Args");
	bring_up(h, 1);
	assert_int_equal(h->reqs[h->n_reqs - 2].lease, 0);
	assert_int_equal(h->reqs[h->n_reqs - 1].lease, 3600);
	assert_int_equal(info(h)->lease_s, 3600);

	/* Once only. */
	h = h_new();
	script(h, A_N, "402", "Invalid Args");
	script(h, A_N, "402", "Invalid Args");
	bring_up(h, 1);
	assert_reason(h, NB_UPNP_REFUSED, "the router refused the mapping: 402 Invalid Args");
	assert_int_equal(h->r.calls[A_ANY], 2);
}

/* n conflicts in a row; returns the ports asked for. */
static int run_conflicts(struct h *h, int n, uint64_t seed, uint16_t *ports)
{
	int k = 0;

	h->r.v1 = true;
	for (int i = 0; i < n; i++) /* MikroTik pads the number */
		script(h, A_ADD, i % 2 ? "729" : i == 2 ? " 718 " : "718",
		       i % 2 ? "ConflictWithOtherMechanisms" : "ConflictInMappingEntry");
	bring_up(h, seed);
	for (int i = 0; i < h->n_reqs; i++)
		if (h->reqs[i].action == A_ADD)
			ports[k++] = h->reqs[i].ext;
	return k;
}

static void test_add_conflicts(void **state)
{
	uint16_t ports[16], again[16], other[16];
	char want[64];
	struct h *h;

	(void)state;
	for (int n = 1; n <= 5; n++) {
		h = h_new();
		assert_int_equal(run_conflicts(h, n, 42, ports), n + 1);
		assert_int_equal(ports[0], 40001);
		for (int i = 1; i <= n; i++) {
			assert_true(ports[i] >= 1024);
			for (int j = 0; j < i; j++)
				assert_int_not_equal(ports[i], ports[j]);
		}
		snprintf(want, sizeof(want), "203.0.113.106:%u", (unsigned)ports[n]);
		assert_mapped(h, want);
		assert_int_equal(count_evs(h, NB_UPNP_EV_MAPPED), 1);
	}
	/* Six: 5 new ports is the cap. */
	h = h_new();
	assert_int_equal(run_conflicts(h, 6, 42, ports), 6);
	assert_reason(h, NB_UPNP_REFUSED,
		      "the router refused the mapping: 729 ConflictWithOtherMechanisms (6 ports tried)");
	/* The sequence is fixed by the seed. */
	h = h_new();
	assert_int_equal(run_conflicts(h, 6, 42, again), 6);
	assert_memory_equal(ports, again, 6 * sizeof(ports[0]));
	h = h_new();
	assert_int_equal(run_conflicts(h, 6, 43, other), 6);
	assert_memory_not_equal(ports + 1, other + 1, 5 * sizeof(ports[0]));
}

static void test_add_724(void **state)
{
	struct h *h = h_new();

	(void)state;
	h->r.v1 = true;
	script(h, A_ADD, "718", "ConflictInMappingEntry");
	script(h, A_ADD, "724", "SamePortValuesRequired");
	bring_up(h, 5);
	assert_int_equal(h->r.calls[A_ADD], 3);
	assert_int_equal(h->reqs[h->n_reqs - 3].ext, 40001);
	assert_int_not_equal(h->reqs[h->n_reqs - 2].ext, 40001);
	assert_int_equal(h->reqs[h->n_reqs - 1].ext, 40001);
	assert_mapped(h, "203.0.113.106:40001");

	/* 724 for the internal port itself makes no sense: refused. */
	h = h_new();
	script(h, A_N, "724", "SamePortValuesRequired");
	bring_up(h, 5);
	assert_reason(h, NB_UPNP_REFUSED, "the router refused the mapping: 724 SamePortValuesRequired");
}

static void test_add_any_fallback(void **state)
{
	static const char *const codes[] = { "401", "602" };

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct h *h = h_new();
		script(h, A_ANY, codes[i], "Invalid Action");
		bring_up(h, 1);
		assert_int_equal(h->r.calls[A_ANY], 1);
		assert_int_equal(h->r.calls[A_ADD], 1);
		assert_int_equal(last_req(h, A_ADD)->ext, 40001);
		assert_mapped(h, "203.0.113.106:40001");
	}
	/* 401 to AddPortMapping itself is a refusal. */
	{
		struct h *h = h_new();
		h->r.v1 = true;
		script(h, A_ADD, "401", "Invalid Action");
		bring_up(h, 1);
		assert_reason(h, NB_UPNP_REFUSED, "the router refused the mapping: 401 Invalid Action");
	}
}

static void test_add_any_reserved_port(void **state)
{
	struct h *h = h_new();

	(void)state;
	h->r.any_moves_port = true;
	bring_up(h, 1);
	assert_mapped(h, "203.0.113.106:40002"); /* NewReservedPort is what counts */
	/* Renewal names the reserved port, with AddPortMapping. */
	run_for(h, 1800 * 1000);
	assert_int_equal(h->r.calls[A_ADD], 1);
	assert_int_equal(last_req(h, A_ADD)->ext, 40002);
	assert_mapped(h, "203.0.113.106:40002");
	assert_int_equal(count_evs(h, NB_UPNP_EV_RENEWED), 1);
}

static void test_add_silent(void **state)
{
	struct h *h = h_new();

	(void)state;
	h->r.silent[A_ANY] = true;
	bring_up(h, 1);
	assert_reason(h, NB_UPNP_UNAVAILABLE, "the gateway did not answer AddAnyPortMapping within 3.0 s");
	assert_int_equal(h->n_cancels, 1);
	assert_int_equal(h->cancels[0], last_req(h, A_ANY)->id);
	assert_int_equal(last_ev(h, NB_UPNP_EV_FAILED)->at, last_req(h, A_ANY)->at + 3000);
	/* The late answer is ignored. */
	nb_upnp_http_done(&h->u, h->cancels[0], 200, (const uint8_t *)add_response, strlen(add_response), false,
			  local_addr(), NULL, h->now);
	assert_int_equal(info(h)->status, NB_UPNP_UNAVAILABLE);
	assert_quiet(h);
}

static void test_add_garbled_and_transport(void **state)
{
	struct h *h = h_new();

	(void)state;
	/* An HTML answer to the add. */
	h->r.silent[A_ANY] = true;
	h_init(h, 1);
	start(h);
	run_for(h, 100);
	assert_true(h->inflight);
	h->inflight = false;
	nb_upnp_http_done(&h->u, h->id, 200, (const uint8_t *)"<html>hi</html>", 15, false, local_addr(), NULL,
			  h->now);
	pump(h);
	assert_int_equal(info(h)->status, NB_UPNP_UNAVAILABLE);
	assert_non_null(strstr(info(h)->reason, "the gateway's answer to AddAnyPortMapping is unusable: "));

	h = h_new();
	h->r.silent[A_ANY] = true;
	h_init(h, 1);
	start(h);
	run_for(h, 100);
	h->inflight = false;
	nb_upnp_http_done(&h->u, h->id, 0, NULL, 0, false, NULL, "Connection reset by peer", h->now);
	pump(h);
	assert_reason(h, NB_UPNP_UNAVAILABLE, "the gateway did not answer AddAnyPortMapping: Connection reset by peer");
	assert_int_equal(h->n_cancels, 0);
}

/* ---- while mapped ----------------------------------------------------------------------- */

static void test_renew_at_half_lease(void **state)
{
	struct h *h = h_new();
	uint64_t mapped;
	int gets;

	(void)state;
	bring_up(h, 1);
	mapped = info(h)->mapped_at;
	run_until(h, mapped + 1800000 - 1);
	assert_int_equal(h->r.calls[A_ADD], 0);
	/* Checks every 60 s, on the dot. */
	gets = 0;
	for (int i = 0; i < h->n_reqs; i++)
		if (h->reqs[i].action == A_GET) {
			gets++;
			assert_int_equal(h->reqs[i].at, mapped + (uint64_t)gets * 60000);
			assert_int_equal(h->reqs[i].ext, 40001);
		}
	assert_int_equal(gets, 29);
	run_until(h, mapped + 1800000);
	assert_int_equal(h->r.calls[A_ADD], 1);
	assert_int_equal(last_req(h, A_ADD)->at, mapped + 1800000);
	assert_int_equal(last_req(h, A_ADD)->ext, 40001);
	assert_int_equal(last_req(h, A_ADD)->lease, 3600);
	run_for(h, 100);
	assert_int_equal(count_evs(h, NB_UPNP_EV_RENEWED), 1);
	assert_int_equal(last_ev(h, NB_UPNP_EV_RENEWED)->at, mapped + 1800005);
	assert_int_equal(info(h)->mapped_at, mapped); /* same mapping */
	/* The next renewal half a lease after the first one's answer. */
	run_until(h, mapped + 1800005 + 1800000);
	assert_int_equal(h->r.calls[A_ADD], 2);
	assert_int_equal(last_req(h, A_ADD)->at, mapped + 1800005 + 1800000);
	assert_int_equal(count_evs(h, NB_UPNP_EV_MAPPED), 1);
	assert_mapped(h, "203.0.113.106:40001");
}

static void test_long_lease(void **state)
{
	struct h *h = h_new();
	uint64_t mapped;

	(void)state;
	h->p.lease_s = 604800; /* a week, like miniupnpd's "permanent": just a lease */
	h->p.check_s = 3600;
	bring_up(h, 1);
	mapped = info(h)->mapped_at;
	assert_int_equal(info(h)->lease_s, 604800);
	run_until(h, mapped + 302400000ull - 1);
	assert_int_equal(h->r.calls[A_ANY] + h->r.calls[A_ADD], 1);
	assert_int_equal(h->r.calls[A_GET], 83);
	run_until(h, mapped + 302400000ull);
	assert_int_equal(h->r.calls[A_ADD], 1);
}

static void test_router_restart_readd(void **state)
{
	struct h *h = h_new();
	uint64_t mapped;

	(void)state;
	bring_up(h, 1);
	mapped = info(h)->mapped_at;
	run_until(h, mapped + 100000);
	memset(h->r.maps, 0, sizeof(h->r.maps)); /* reboot */
	run_until(h, mapped + 120000 + 100);
	/* The check at 120 s found 714, the add went out at once, same port. */
	assert_int_equal(h->r.calls[A_ADD], 1);
	assert_int_equal(last_req(h, A_ADD)->at, mapped + 120005);
	assert_int_equal(last_req(h, A_ADD)->ext, 40001);
	assert_int_equal(count_evs(h, NB_UPNP_EV_READDED), 1);
	assert_int_equal(count_evs(h, NB_UPNP_EV_MAPPED), 1);
	assert_mapped(h, "203.0.113.106:40001");
	assert_true(find_map(h, 40001, false) != NULL);

	/* check_now finds it at once. */
	memset(h->r.maps, 0, sizeof(h->r.maps));
	nb_upnp_check_now(&h->u, h->now);
	pump(h);
	assert_int_equal(last_req(h, A_GET)->at, h->now);
	run_for(h, 100);
	assert_int_equal(count_evs(h, NB_UPNP_EV_READDED), 2);
	assert_true(find_map(h, 40001, false) != NULL);
}

static void test_port_taken_after_restart(void **state)
{
	struct h *h = h_new();
	char want[64];
	uint16_t new_port;

	(void)state;
	bring_up(h, 9);
	/* Reboot; another host takes 40001 first. */
	memset(h->r.maps, 0, sizeof(h->r.maps));
	h->r.maps[0] = (struct mapping){ .used = true, .ext = 40001, .iport = 40001, .client = "192.168.6.77",
					 .lease = 3600 };
	run_for(h, 60000 + 100);
	assert_int_equal(h->r.calls[A_GET], 1);
	assert_int_equal(h->r.calls[A_ADD], 1);
	new_port = last_req(h, A_ADD)->ext;
	assert_int_not_equal(new_port, 40001);
	snprintf(want, sizeof(want), "203.0.113.106:%u", (unsigned)new_port);
	assert_mapped(h, want);
	assert_int_equal(count_evs(h, NB_UPNP_EV_MAPPED), 2);
	assert_int_equal(last_ev(h, NB_UPNP_EV_MAPPED)->at, h->reqs[h->n_reqs - 1].at + 5);
	assert_int_equal(info(h)->mapped_at, h->reqs[h->n_reqs - 1].at + 5);
	/* The renewal keeps the new port. */
	run_for(h, 1800 * 1000);
	assert_int_equal(last_req(h, A_ADD)->ext, new_port);
	assert_int_equal(count_evs(h, NB_UPNP_EV_RENEWED), 1);

	/* Someone else at every port: 5 new ports, then REFUSED. */
	h = h_new();
	bring_up(h, 9);
	memset(h->r.maps, 0, sizeof(h->r.maps));
	h->r.maps[0] = (struct mapping){ .used = true, .ext = 40001, .iport = 40001, .client = "192.168.6.77",
					 .lease = 3600 };
	for (int i = 0; i < 5; i++)
		script(h, A_ADD, "718", "ConflictInMappingEntry");
	run_for(h, 60000 + 100);
	assert_int_equal(h->r.calls[A_ADD], 5);
	assert_reason(h, NB_UPNP_REFUSED,
		      "the router refused to add the mapping again: 718 ConflictInMappingEntry (6 ports tried)");
}

static void test_renew_conflict_moves_port(void **state)
{
	struct h *h = h_new();
	uint64_t mapped;

	(void)state;
	bring_up(h, 3);
	mapped = info(h)->mapped_at;
	script(h, A_ADD, "718", "ConflictInMappingEntry");
	run_until(h, mapped + 1800000 + 100);
	assert_int_equal(h->r.calls[A_ADD], 2);
	assert_int_equal(h->reqs[h->n_reqs - 2].ext, 40001);
	assert_int_not_equal(h->reqs[h->n_reqs - 1].ext, 40001);
	assert_int_equal(count_evs(h, NB_UPNP_EV_MAPPED), 2);
	assert_int_equal(count_evs(h, NB_UPNP_EV_RENEWED), 0);
	assert_int_equal(info(h)->external.port, h->reqs[h->n_reqs - 1].ext);

	/* A renewal refused outright. */
	h = h_new();
	bring_up(h, 3);
	mapped = info(h)->mapped_at;
	script(h, A_ADD, "606", "Action not authorized");
	run_until(h, mapped + 1800000 + 100);
	assert_reason(h, NB_UPNP_REFUSED, "the router refused to renew the mapping: 606 Action not authorized");
	assert_quiet(h);
}

static void test_silent_while_mapped(void **state)
{
	struct h *h = h_new();
	uint64_t mapped;

	(void)state;
	bring_up(h, 1);
	mapped = info(h)->mapped_at;
	h->r.silent[A_GET] = true;
	h->r.silent[A_ADD] = true;
	run_until(h, mapped + 1800000 + 5000);
	/* Every check timed out and was cancelled; the mapping stands. */
	assert_mapped(h, "203.0.113.106:40001");
	assert_int_equal(h->r.calls[A_GET], 29);
	assert_int_equal(h->n_cancels, 30);
	/* The silent renewal at 1800 s timed out at 1803 s; it is tried again
	 * at the next check, a check interval later. */
	assert_int_equal(h->r.calls[A_ADD], 1);
	run_until(h, mapped + 1863000 - 1);
	assert_int_equal(h->r.calls[A_ADD], 1);
	assert_int_equal(h->r.calls[A_GET], 29);
	h->r.silent[A_ADD] = false;
	run_until(h, mapped + 1863000 + 100);
	assert_int_equal(h->r.calls[A_ADD], 2);
	assert_int_equal(last_req(h, A_ADD)->at, mapped + 1863000);
	assert_int_equal(count_evs(h, NB_UPNP_EV_RENEWED), 1);
	assert_mapped(h, "203.0.113.106:40001");

	/* Checks that fault with something else than 714 change nothing. */
	h->r.silent[A_GET] = false;
	script(h, A_GET, "501", "ActionFailed");
	script(h, A_GET, "abc", "??");
	run_for(h, 180000);
	assert_mapped(h, "203.0.113.106:40001");
	assert_int_equal(h->r.calls[A_ADD], 2);
}

/* ---- the reflexive address ---------------------------------------------------------------- */

static void test_reflexive_mismatch_before_mapping(void **state)
{
	struct h *h = h_new();
	struct nb_addr refl = A("198.51.100.9:5555");

	(void)state;
	h_init(h, 1);
	nb_upnp_set_reflexive(&h->u, &refl, h->now); /* even before start */
	start(h);
	run_for(h, 10000);
	assert_reason(h, NB_UPNP_UNUSABLE, "the router's external address 203.0.113.106 is not the address the broker "
					   "sees (198.51.100.9): double NAT?");
	assert_int_equal(h->r.calls[A_ANY] + h->r.calls[A_ADD], 0);

	/* The same IP (any port): fine. */
	h = h_new();
	h_init(h, 1);
	refl = A("203.0.113.106:61000");
	start(h);
	run_for(h, 5);
	nb_upnp_set_reflexive(&h->u, &refl, h->now);
	run_for(h, 10000);
	assert_mapped(h, "203.0.113.106:40001");
}

static void test_reflexive_mismatch_after_mapping(void **state)
{
	struct h *h = h_new();
	struct nb_addr refl = A("203.0.113.111:43210"); /* the carrier's address */

	(void)state;
	bring_up(h, 1);
	assert_true(find_map(h, 40001, false) != NULL);
	nb_upnp_set_reflexive(&h->u, &refl, h->now);
	assert_reason(h, NB_UPNP_UNUSABLE, "the router's external address 203.0.113.106 is not the address the broker "
					   "sees (203.0.113.111): double NAT?");
	pump(h);
	assert_int_equal(last_req(h, A_DEL)->ext, 40001);
	run_for(h, 100);
	assert_null(find_map(h, 40001, false));
	assert_int_equal(count_evs(h, NB_UPNP_EV_FAILED), 1);
	assert_int_equal(info(h)->status, NB_UPNP_UNUSABLE);
	assert_quiet(h);
	/* Stop now closes at once. */
	nb_upnp_stop(&h->u, h->now);
	assert_true(nb_upnp_closed(&h->u));
	pump(h);
	assert_int_equal(count_reqs(h, A_DEL), 1);
}

static void test_reflexive_mismatch_during_add(void **state)
{
	struct h *h = h_new();
	struct nb_addr refl = A("203.0.113.111:43210");
	enum nb_log_level level = nb_log_get_level();

	(void)state;
	nb_log_set_level(NB_LOG_DEBUG); /* the debug lines must format */
	h_init(h, 1);
	start(h);
	/* Run until the add is in flight. */
	while (!(h->inflight && h->action == A_ANY))
		run_for(h, 1);
	nb_upnp_set_reflexive(&h->u, &refl, h->now);
	pump(h);
	assert_int_equal(info(h)->status, NB_UPNP_WORKING);
	run_for(h, 100);
	/* Granted, then deleted, and never announced as mapped. */
	assert_int_equal(info(h)->status, NB_UPNP_UNUSABLE);
	assert_int_equal(count_reqs(h, A_DEL), 1);
	assert_int_equal(last_req(h, A_DEL)->ext, 40001);
	assert_null(find_map(h, 40001, false));
	assert_int_equal(count_evs(h, NB_UPNP_EV_MAPPED), 0);
	nb_upnp_stop(&h->u, h->now);
	pump(h);
	nb_log_set_level(level);
}

/* ---- stopping ------------------------------------------------------------------------------ */

static void test_stop_mapped(void **state)
{
	struct h *h = h_new();

	(void)state;
	bring_up(h, 1);
	nb_upnp_stop(&h->u, h->now);
	assert_false(nb_upnp_closed(&h->u));
	pump(h);
	assert_int_equal(last_req(h, A_DEL)->ext, 40001);
	assert_int_equal(last_req(h, A_DEL)->at, h->now);
	run_for(h, 100);
	assert_true(nb_upnp_closed(&h->u));
	assert_reason(h, NB_UPNP_CLOSED, "stopped; the mapping was deleted");
	assert_null(find_map(h, 40001, false));
	assert_int_equal(h->evs[h->n_evs - 1].kind, NB_UPNP_EV_CLOSED);
	assert_quiet(h);

	/* 714 on delete is success too. */
	h = h_new();
	bring_up(h, 1);
	script(h, A_DEL, "714", "NoSuchEntryInArray");
	nb_upnp_stop(&h->u, h->now);
	run_for(h, 100);
	assert_reason(h, NB_UPNP_CLOSED, "stopped; the mapping was deleted");

	/* Another fault: closed, and said. */
	h = h_new();
	bring_up(h, 1);
	script(h, A_DEL, "606", "Action not authorized");
	nb_upnp_stop(&h->u, h->now);
	run_for(h, 100);
	assert_reason(h, NB_UPNP_CLOSED, "the router refused the delete: 606 Action not authorized");
}

static void test_stop_silent_router(void **state)
{
	struct h *h = h_new();
	uint64_t at;

	(void)state;
	bring_up(h, 1);
	h->r.silent[A_DEL] = true;
	at = h->now;
	nb_upnp_stop(&h->u, at);
	pump(h);
	assert_int_equal(nb_upnp_deadline(&h->u), at + 1000);
	run_until(h, at + 999);
	assert_false(nb_upnp_closed(&h->u));
	run_until(h, at + 1000);
	assert_true(nb_upnp_closed(&h->u));
	assert_reason(h, NB_UPNP_CLOSED, "the router did not answer the delete");
	assert_int_equal(h->n_cancels, 1);
	assert_int_equal(h->cancels[0], last_req(h, A_DEL)->id);
	assert_int_equal(last_ev(h, NB_UPNP_EV_CLOSED)->at, at + 1000);
	assert_quiet(h);

	/* stop_ms longer than the HTTP timeout: the request's own timeout ends it. */
	h = h_new();
	h->p.stop_ms = 10000;
	bring_up(h, 1);
	h->r.silent[A_DEL] = true;
	at = h->now;
	nb_upnp_stop(&h->u, at);
	run_for(h, 20000);
	assert_reason(h, NB_UPNP_CLOSED, "the router did not answer the delete");
	assert_int_equal(last_ev(h, NB_UPNP_EV_CLOSED)->at, at + 3000);
}

static void test_stop_during_renewal(void **state)
{
	struct h *h = h_new();
	uint64_t mapped;
	uint32_t renew_id;

	(void)state;
	bring_up(h, 1);
	mapped = info(h)->mapped_at;
	h->r.silent[A_ADD] = true;
	run_until(h, mapped + 1800000);
	assert_true(h->inflight && h->action == A_ADD);
	renew_id = h->id;
	nb_upnp_stop(&h->u, h->now);
	pump(h);
	/* The renewal is cancelled, then the delete goes out. */
	assert_int_equal(h->cancels[h->n_cancels - 1], renew_id);
	assert_int_equal(h->reqs[h->n_reqs - 1].action, A_DEL);
	run_for(h, 100);
	assert_reason(h, NB_UPNP_CLOSED, "stopped; the mapping was deleted");
	/* The late renewal answer changes nothing. */
	nb_upnp_http_done(&h->u, renew_id, 200, (const uint8_t *)add_response, strlen(add_response), false,
			  local_addr(), NULL, h->now);
	assert_int_equal(info(h)->status, NB_UPNP_CLOSED);
	assert_quiet(h);
}

/* Stop while an add is out: the router has probably acted on it, so its
 * answer is awaited (within stop_ms) and whatever it granted is deleted. */
static void test_stop_mid_add(void **state)
{
	struct h *h;

	(void)state;
	/* answered within stop_ms: the granted port is deleted */
	h = h_new();
	h->r.delay_ms = 300;
	h_init(h, 1);
	start(h);
	while (!(h->inflight && h->action == A_ANY))
		run_for(h, 1);
	nb_upnp_stop(&h->u, h->now);
	assert_false(nb_upnp_closed(&h->u));
	assert_int_equal(count_reqs(h, A_DEL), 0);
	run_for(h, 1000);
	assert_true(nb_upnp_closed(&h->u));
	assert_int_equal(count_reqs(h, A_DEL), 1);
	assert_int_equal(last_req(h, A_DEL)->ext, last_req(h, A_ANY)->ext);
	assert_reason(h, NB_UPNP_CLOSED, "stopped; the mapping was deleted");
	assert_int_equal(count_evs(h, NB_UPNP_EV_MAPPED), 0);
	assert_quiet(h);

	/* a silent router: closed at stop_ms, nothing more asked */
	h = h_new();
	h->r.silent[A_ANY] = true;
	h_init(h, 1);
	start(h);
	while (!(h->inflight && h->action == A_ANY))
		run_for(h, 1);
	nb_upnp_stop(&h->u, h->now);
	run_for(h, 999);
	assert_false(nb_upnp_closed(&h->u));
	run_for(h, 1);
	assert_true(nb_upnp_closed(&h->u));
	assert_int_equal(count_reqs(h, A_DEL), 0);
	pump(h);
	assert_quiet(h);

	/* refused: nothing was granted, nothing to delete */
	h = h_new();
	h->r.delay_ms = 300;
	script(h, A_ANY, "606", "Action not authorized");
	h_init(h, 1);
	start(h);
	while (!(h->inflight && h->action == A_ANY))
		run_for(h, 1);
	nb_upnp_stop(&h->u, h->now);
	run_for(h, 1000);
	assert_true(nb_upnp_closed(&h->u));
	assert_int_equal(count_reqs(h, A_DEL), 0);
	assert_reason(h, NB_UPNP_CLOSED, "stopped");
	assert_quiet(h);
}

/* A renewal the router refuses: the old mapping still stands until its lease
 * ends, so it is deleted. */
static void test_refused_renewal_deleted(void **state)
{
	struct h *h = h_new();

	(void)state;
	h_init(h, 1);
	start(h);
	run_for(h, 1000);
	assert_int_equal(info(h)->status, NB_UPNP_MAPPED);
	script(h, A_ADD, "606", "Action not authorized");
	script(h, A_ANY, "606", "Action not authorized");
	run_for(h, 1800u * 1000u + 1000u);
	assert_int_equal(info(h)->status, NB_UPNP_REFUSED);
	assert_int_equal(count_reqs(h, A_DEL), 1);
	nb_upnp_stop(&h->u, h->now);
	run_for(h, 2000);
	assert_true(nb_upnp_closed(&h->u));
	assert_int_equal(count_reqs(h, A_DEL), 1);
}

static void test_stop_mid_request(void **state)
{
	static const int at_action[] = { A_DESC, A_EXTIP };

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct h *h = h_new();
		uint32_t id;
		int nreqs, nevs;
		struct nb_upnp_out o;

		h->r.silent[at_action[i]] = true;
		h_init(h, 1);
		start(h);
		while (!(h->inflight && h->action == at_action[i]))
			run_for(h, 1);
		id = h->id;
		nb_upnp_stop(&h->u, h->now);
		assert_true(nb_upnp_closed(&h->u));
		assert_reason(h, NB_UPNP_CLOSED, "stopped");
		/* The CANCEL is the last thing handed out. */
		assert_int_equal(nb_upnp_poll(&h->u, h->now, &o), 1);
		assert_int_equal(o.kind, NB_UPNP_OUT_CANCEL);
		assert_int_equal(o.http_id, id);
		handle_out(h, &o);
		nreqs = h->n_reqs;
		assert_quiet(h);
		/* Late result, SSDP, reflexive, check, stop: all ignored. */
		nb_upnp_http_done(&h->u, id, 200, (const uint8_t *)root_desc, root_desc_len, false, local_addr(), NULL,
				  h->now);
		assert_int_equal(nb_upnp_ssdp_input(&h->u, (const uint8_t *)ssdp_reply_tpl, strlen(ssdp_reply_tpl),
						    &(struct nb_addr){ .family = NB_AF_INET, .port = 1900,
								       .ip = { 192, 168, 6, 1 } },
						    h->now),
				 -EINVAL);
		nb_upnp_set_reflexive(&h->u, &(struct nb_addr){ .family = NB_AF_INET, .ip = { 1, 2, 3, 4 } }, h->now);
		nb_upnp_check_now(&h->u, h->now);
		nb_upnp_stop(&h->u, h->now);
		nb_upnp_start(&h->u, h->now);
		pump(h);
		nevs = h->n_evs;
		run_for(h, 86400000);
		assert_int_equal(h->n_reqs, nreqs);
		assert_int_equal(h->n_evs, nevs);
		assert_int_equal(count_evs(h, NB_UPNP_EV_CLOSED), 1);
		assert_quiet(h);
	}
	/* Before start, and while discovering: closed at once, nothing to cancel. */
	{
		struct h *h = h_new();
		h_init(h, 1);
		nb_upnp_stop(&h->u, h->now);
		assert_true(nb_upnp_closed(&h->u));
		pump(h);
		assert_quiet(h);
		h = h_new();
		h->r.ssdp_silent = true;
		h_init(h, 1);
		start(h);
		run_for(h, 600);
		nb_upnp_stop(&h->u, h->now);
		pump(h);
		assert_int_equal(h->n_cancels, 0);
		run_for(h, 5000);
		assert_int_equal(h->msearch, 10);
		assert_quiet(h);
	}
}

static void test_unmap_then_stop(void **state)
{
	struct h *h = h_new();
	struct nb_addr refl = A("203.0.113.111:43210");
	uint64_t at;

	(void)state;
	bring_up(h, 1);
	h->r.silent[A_DEL] = true;
	nb_upnp_set_reflexive(&h->u, &refl, h->now);
	pump(h);
	assert_true(h->inflight && h->action == A_DEL);
	run_for(h, 200);
	at = h->now;
	/* The delete already in flight is the one stop wants: no new one. */
	nb_upnp_stop(&h->u, at);
	pump(h);
	assert_int_equal(count_reqs(h, A_DEL), 1);
	assert_int_equal(h->n_cancels, 0);
	assert_int_equal(nb_upnp_deadline(&h->u), at + 1000);
	run_for(h, 5000);
	assert_reason(h, NB_UPNP_CLOSED, "the router did not answer the delete");
	assert_int_equal(last_ev(h, NB_UPNP_EV_CLOSED)->at, at + 1000);
	assert_int_equal(h->n_cancels, 1);
	assert_quiet(h);

	/* The delete fails in transit. */
	h = h_new();
	bring_up(h, 1);
	h->r.silent[A_DEL] = true;
	nb_upnp_stop(&h->u, h->now);
	pump(h);
	h->inflight = false;
	nb_upnp_http_done(&h->u, h->id, 0, NULL, 0, false, NULL, "Connection refused", h->now);
	pump(h);
	assert_reason(h, NB_UPNP_CLOSED, "the gateway did not answer DeletePortMapping: Connection refused");
}

static void test_reflexive_mismatch_add_refused(void **state)
{
	struct h *h = h_new();
	struct nb_addr refl = A("203.0.113.111:43210");

	(void)state;
	/* A double NAT: the add is refused with 501 while the broker's view
	 * arrives; the mismatch is the better explanation. */
	script(h, A_N, "501", "ActionFailed");
	h_init(h, 1);
	start(h);
	while (!(h->inflight && h->action == A_ANY))
		run_for(h, 1);
	nb_upnp_set_reflexive(&h->u, &refl, h->now);
	run_for(h, 100);
	assert_reason(h, NB_UPNP_UNUSABLE, "the router's external address 203.0.113.106 is not the address the broker "
					   "sees (203.0.113.111): double NAT?");
	assert_int_equal(count_reqs(h, A_DEL), 0);
	assert_quiet(h);
}

/* ---- never delete a port we do not hold ------------------------------------------------------ */

static int count_dels_of(const struct h *h, uint16_t port)
{
	int n = 0;
	for (int i = 0; i < h->n_reqs; i++)
		n += h->reqs[i].action == A_DEL && h->reqs[i].ext == port;
	return n;
}

/* The router restarts and another host (192.168.6.77) takes `port` first. */
static void give_port_away(struct h *h, uint16_t port)
{
	memset(h->r.maps, 0, sizeof(h->r.maps));
	h->r.maps[0] = (struct mapping){ .used = true, .ext = port, .iport = port, .client = "192.168.6.77",
					 .lease = 3600 };
}

/* No DeletePortMapping for `port` was ever sent, none hit another host's
 * mapping, and the other host still holds `port`. */
static void assert_other_host_kept(const struct h *h, uint16_t port)
{
	const struct mapping *m = find_map((struct h *)h, port, false);

	assert_int_equal(count_dels_of(h, port), 0);
	assert_int_equal(h->r.foreign_dels, 0);
	assert_non_null(m);
	assert_string_equal(m->client, "192.168.6.77");
}

/* Stop, run out stop_ms, and it is closed. */
static void stop_and_settle(struct h *h)
{
	nb_upnp_stop(&h->u, h->now);
	run_for(h, 5000);
	assert_true(nb_upnp_closed(&h->u));
	assert_quiet(h);
}

/* The issue: after the router hands our old port to another host, the
 * re-add (or renewal) that learns so must forget the port, not delete it on
 * refusal, on a failed renewal or at stop. */
static void test_foreign_check_then_conflicts(void **state)
{
	struct h *h;

	(void)state;
	/* The check sees the other host; every new port conflicts: REFUSED. */
	h = h_new();
	bring_up(h, 9);
	give_port_away(h, 40001);
	for (int i = 0; i < 5; i++)
		script(h, A_ADD, "718", "ConflictInMappingEntry");
	run_for(h, 60000 + 100);
	assert_reason(h, NB_UPNP_REFUSED,
		      "the router refused to add the mapping again: 718 ConflictInMappingEntry (6 ports tried)");
	assert_int_equal(count_reqs(h, A_DEL), 0);
	assert_other_host_kept(h, 40001);
	stop_and_settle(h);
	assert_int_equal(count_reqs(h, A_DEL), 0);
	assert_other_host_kept(h, 40001);
}

static void test_foreign_check_then_606(void **state)
{
	struct h *h;

	(void)state;
	/* The check sees the other host; the new port is refused outright. */
	h = h_new();
	bring_up(h, 9);
	give_port_away(h, 40001);
	script(h, A_ADD, "606", "Action not authorized");
	run_for(h, 60000 + 100);
	assert_reason(h, NB_UPNP_REFUSED, "the router refused to add the mapping again: 606 Action not authorized");
	assert_int_equal(count_reqs(h, A_DEL), 0);
	assert_other_host_kept(h, 40001);
	stop_and_settle(h);
	assert_int_equal(count_reqs(h, A_DEL), 0);
}

static void test_foreign_renew_conflicts(void **state)
{
	struct h *h;
	uint64_t mapped;

	(void)state;
	/* The renewal (before any check) meets the other host: 718 on our old
	 * port, then every new port conflicts too. */
	h = h_new();
	h->p.check_s = 3600;
	bring_up(h, 3);
	mapped = info(h)->mapped_at;
	give_port_away(h, 40001);
	run_until(h, mapped + 1800000);
	assert_true(h->inflight && h->action == A_ADD && last_req(h, A_ADD)->ext == 40001);
	for (int i = 0; i < 5; i++)
		script(h, A_ADD, "718", "ConflictInMappingEntry");
	run_for(h, 1000);
	assert_reason(h, NB_UPNP_REFUSED,
		      "the router refused to renew the mapping: 718 ConflictInMappingEntry (6 ports tried)");
	assert_int_equal(count_reqs(h, A_DEL), 0);
	assert_other_host_kept(h, 40001);
	stop_and_settle(h);
	assert_int_equal(count_reqs(h, A_DEL), 0);
}

static void test_foreign_renew_conflict_then_606(void **state)
{
	struct h *h;
	uint64_t mapped;

	(void)state;
	/* The same, and the first new port is refused outright. */
	h = h_new();
	h->p.check_s = 3600;
	bring_up(h, 3);
	mapped = info(h)->mapped_at;
	give_port_away(h, 40001);
	run_until(h, mapped + 1800000);
	assert_true(h->inflight && h->action == A_ADD && last_req(h, A_ADD)->ext == 40001);
	script(h, A_ADD, "606", "Action not authorized");
	run_for(h, 1000);
	assert_reason(h, NB_UPNP_REFUSED, "the router refused to renew the mapping: 606 Action not authorized");
	assert_int_not_equal(last_req(h, A_ADD)->ext, 40001);
	assert_int_equal(count_reqs(h, A_DEL), 0);
	assert_other_host_kept(h, 40001);
}

static void test_foreign_renew_conflict_silent_stop(void **state)
{
	struct h *h;
	uint64_t mapped;

	(void)state;
	/* The renewal meets the other host, the new port gets no answer: the
	 * machine waits for the next check; stop then has nothing to delete. */
	h = h_new();
	h->p.check_s = 3600;
	bring_up(h, 3);
	mapped = info(h)->mapped_at;
	give_port_away(h, 40001);
	run_until(h, mapped + 1800000);
	h->r.silent[A_ADD] = true;
	run_for(h, 5000);
	assert_int_equal(count_reqs(h, A_ADD), 2);
	assert_false(h->inflight);
	stop_and_settle(h);
	assert_reason(h, NB_UPNP_CLOSED, "stopped; no mapping of ours to delete");
	assert_int_equal(count_reqs(h, A_DEL), 0);
	assert_other_host_kept(h, 40001);
}

static void test_foreign_lost_port_reflexive_mismatch(void **state)
{
	struct h *h;
	uint64_t mapped;

	(void)state;
	/* ... and the broker's view says double NAT then: UNUSABLE, no delete. */
	h = h_new();
	h->p.check_s = 3600;
	bring_up(h, 3);
	mapped = info(h)->mapped_at;
	give_port_away(h, 40001);
	run_until(h, mapped + 1800000);
	h->r.silent[A_ADD] = true;
	run_for(h, 5000);
	nb_upnp_set_reflexive(&h->u, &(struct nb_addr){ .family = NB_AF_INET, .ip = { 203, 0, 113, 111 } }, h->now);
	run_for(h, 5000);
	assert_int_equal(info(h)->status, NB_UPNP_UNUSABLE);
	assert_int_equal(count_reqs(h, A_DEL), 0);
	assert_other_host_kept(h, 40001);
}

static void test_foreign_stop_readd_answered(void **state)
{
	struct h *h;
	uint16_t new_port;

	(void)state;
	/* Stop while the re-add to a new port is out, answered in time: the
	 * new port (granted to us) is deleted, the old one is left alone. */
	h = h_new();
	bring_up(h, 9);
	give_port_away(h, 40001);
	h->r.delay_ms = 300;
	while (!(h->inflight && h->action == A_ADD))
		run_for(h, 1);
	new_port = last_req(h, A_ADD)->ext;
	assert_int_not_equal(new_port, 40001);
	stop_and_settle(h);
	assert_reason(h, NB_UPNP_CLOSED, "stopped; the mapping was deleted");
	assert_int_equal(count_reqs(h, A_DEL), 1);
	assert_int_equal(last_req(h, A_DEL)->ext, new_port);
	assert_null(find_map(h, new_port, false));
	assert_other_host_kept(h, 40001);
}

static void test_foreign_stop_readd_silent(void **state)
{
	struct h *h;

	(void)state;
	/* The same with a silent router: closed at stop_ms, nothing deleted. */
	h = h_new();
	bring_up(h, 9);
	give_port_away(h, 40001);
	h->r.silent[A_ADD] = true;
	while (!(h->inflight && h->action == A_ADD))
		run_for(h, 1);
	stop_and_settle(h);
	assert_int_equal(count_reqs(h, A_DEL), 0);
	assert_other_host_kept(h, 40001);
}

static void test_foreign_moved_port_stop(void **state)
{
	struct h *h;
	uint16_t new_port;

	(void)state;
	/* Moved to a new port for good: stop deletes that one only. */
	h = h_new();
	bring_up(h, 9);
	give_port_away(h, 40001);
	run_for(h, 60000 + 100);
	new_port = info(h)->external.port;
	assert_int_not_equal(new_port, 40001);
	assert_int_equal(info(h)->status, NB_UPNP_MAPPED);
	stop_and_settle(h);
	assert_reason(h, NB_UPNP_CLOSED, "stopped; the mapping was deleted");
	assert_int_equal(count_reqs(h, A_DEL), 1);
	assert_int_equal(last_req(h, A_DEL)->ext, new_port);
	assert_other_host_kept(h, 40001);
}

static void test_foreign_restart_same_port_stop(void **state)
{
	struct h *h;

	(void)state;
	/* A router restart with nobody on our port: the re-add gets it back,
	 * and stop deletes it as ours. */
	h = h_new();
	bring_up(h, 1);
	memset(h->r.maps, 0, sizeof(h->r.maps));
	run_for(h, 60000 + 100);
	assert_mapped(h, "203.0.113.106:40001");
	stop_and_settle(h);
	assert_int_equal(count_dels_of(h, 40001), 1);
	assert_null(find_map(h, 40001, false));
}

/* ---- ids, events, odds and ends ------------------------------------------------------------ */

static void test_stale_ids_ignored(void **state)
{
	struct h *h = h_new();
	uint32_t extip_id;

	(void)state;
	h->r.silent[A_EXTIP] = true;
	h_init(h, 1);
	start(h);
	while (!(h->inflight && h->action == A_EXTIP))
		run_for(h, 1);
	extip_id = h->id;
	/* An earlier id (the description's), and one never issued: ignored. */
	nb_upnp_http_done(&h->u, h->reqs[0].id, 200, (const uint8_t *)root_desc, root_desc_len, false, local_addr(),
			  NULL, h->now);
	nb_upnp_http_done(&h->u, extip_id + 100, 500, (const uint8_t *)"x", 1, false, local_addr(), NULL, h->now);
	pump(h);
	assert_int_equal(info(h)->status, NB_UPNP_WORKING);
	assert_true(h->inflight);
	/* The right id is taken. */
	h->r.silent[A_EXTIP] = false;
	h->inflight = false;
	respond_ok(h, "GetExternalIPAddress", "<NewExternalIPAddress>203.0.113.106</NewExternalIPAddress>");
	nb_upnp_http_done(&h->u, extip_id, 200, (const uint8_t *)h->resp_body, h->resp_len, false, local_addr(), NULL,
			  h->now);
	h->resp_due = false;
	/* ... once. */
	nb_upnp_http_done(&h->u, extip_id, 200, (const uint8_t *)h->resp_body, h->resp_len, false, local_addr(), NULL,
			  h->now);
	run_for(h, 100);
	assert_mapped(h, "203.0.113.106:40001");
	assert_int_equal(count_evs(h, NB_UPNP_EV_EXTERNAL_IP), 1);
	assert_int_equal(h->r.calls[A_ANY], 1);
}

static void test_no_local_address(void **state)
{
	struct h *h = h_new();

	(void)state;
	h_init(h, 1);
	start(h);
	run_for(h, 10);
	assert_true(h->inflight && h->action == A_DESC);
	/* The shell reported no local address with any result. */
	h->inflight = false;
	nb_upnp_http_done(&h->u, h->id, 200, (const uint8_t *)root_desc, root_desc_len, false, NULL, NULL, h->now);
	h->resp_due = false;
	pump(h);
	assert_true(h->inflight && h->action == A_EXTIP);
	h->inflight = false;
	respond_ok(h, "GetExternalIPAddress", "<NewExternalIPAddress>203.0.113.106</NewExternalIPAddress>");
	h->resp_due = false;
	nb_upnp_http_done(&h->u, h->id, 200, (const uint8_t *)h->resp_body, h->resp_len, false, NULL, NULL, h->now);
	pump(h);
	assert_int_equal(info(h)->status, NB_UPNP_UNAVAILABLE);
	assert_non_null(strstr(info(h)->reason, "could not ask the gateway for AddAnyPortMapping: "));
	assert_int_equal(h->r.calls[A_ANY], 0);
}

static void test_event_queue_bounded(void **state)
{
	struct h *h = h_new();
	struct nb_upnp_event ev;
	int n = 0;
	uint64_t last = 0;

	(void)state;
	h->p.lease_s = 120;
	h_init(h, 1);
	nb_upnp_start(&h->u, h->now);
	/* Run without reading events: 4 + many renewals. */
	for (int guard = 0; guard < 100000 && h->now < T0 + 3600000; guard++) {
		struct nb_upnp_out o;
		uint64_t t;
		while (nb_upnp_poll(&h->u, h->now, &o) == 1)
			handle_out(h, &o);
		t = next_time(h);
		if (t > h->now)
			h->now = t;
		for (int i = 0; i < h->n_ssdp; i++)
			if (h->ssdp[i].at <= h->now)
				nb_upnp_ssdp_input(&h->u, (const uint8_t *)h->ssdp[i].buf, h->ssdp[i].len,
						   &h->ssdp[i].from, h->now),
					h->ssdp[i].at = UINT64_MAX;
		if (h->resp_due && h->resp_at <= h->now)
			deliver_response(h);
	}
	assert_int_equal(info(h)->status, NB_UPNP_MAPPED);
	assert_true(h->u.dropped_events > 0);
	while (nb_upnp_event(&h->u, &ev) == 1) {
		assert_int_equal(ev.kind, NB_UPNP_EV_RENEWED);
		assert_true(ev.at > last);
		last = ev.at;
		n++;
	}
	assert_int_equal(n, NB_UPNP_EVENTS);
	/* The newest were kept. */
	assert_true(last > T0 + 3600000 - 61000);
	assert_int_equal(nb_upnp_event(&h->u, &ev), 0);
}

static void test_params_and_strings(void **state)
{
	struct nb_upnp_params p;
	struct h *h = h_new();

	(void)state;
	nb_upnp_params_default(&p);
	assert_int_equal(p.internal_port, 0);
	assert_false(p.tcp);
	assert_int_equal(p.lease_s, 3600);
	assert_int_equal(p.discover_ms, 2000);
	assert_int_equal(p.ssdp_rto_ms, 500);
	assert_int_equal(p.http_timeout_ms, 3000);
	assert_int_equal(p.check_s, 60);
	assert_int_equal(p.stop_ms, 1000);
	assert_int_equal(p.ssdp_flags, 0);
	assert_string_equal(p.description, "natpeer");
	assert_string_equal(nb_upnp_status_string(NB_UPNP_IDLE), "idle");
	assert_string_equal(nb_upnp_status_string(NB_UPNP_WORKING), "working");
	assert_string_equal(nb_upnp_status_string(NB_UPNP_MAPPED), "mapped");
	assert_string_equal(nb_upnp_status_string(NB_UPNP_UNAVAILABLE), "unavailable");
	assert_string_equal(nb_upnp_status_string(NB_UPNP_REFUSED), "refused");
	assert_string_equal(nb_upnp_status_string(NB_UPNP_UNUSABLE), "unusable");
	assert_string_equal(nb_upnp_status_string(NB_UPNP_CLOSED), "closed");

	/* No internal port: nothing to do. */
	h->p.internal_port = 0;
	h_init(h, 1);
	start(h);
	assert_reason(h, NB_UPNP_UNAVAILABLE, "no internal port to map");
	assert_int_equal(h->msearch, 0);
	assert_quiet(h);
}

/* ---- random inputs ---------------------------------------------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static void test_random_inputs(void **state)
{
	static const char *const codes[] = { "402", "501", "606", "714", "718", "724", "725", "729", "401", "602",
					     "-911", "abc", " 718 " };
	struct nb_addr from = A(GW_IP ":1900");

	(void)state;
	for (uint64_t seed = 1; seed <= 300; seed++) {
		struct h *h = h_new();
		bool stopped = false;
		uint64_t stop_at = 0;
		rng_state = seed * 0x9e3779b97f4a7c15ull;

		h->p.lease_s = rnd(3) == 0 ? 0 : 60 + rnd(600);
		h->p.check_s = 1 + rnd(90);
		h->p.stop_ms = rnd(2000);
		h->p.internal_port = (uint16_t)(1024 + rnd(60000));
		h->r.v1 = rnd(2);
		h->r.delay_ms = rnd(50);
		h_init(h, seed);
		if (rnd(10) != 0)
			nb_upnp_start(&h->u, h->now);
		for (int step = 0; step < 300; step++) {
			struct nb_upnp_out o;
			int guard = 0;
			uint64_t d;

			while (nb_upnp_poll(&h->u, h->now, &o) == 1) {
				assert_true(++guard < 64);
				/* Closed means silent, bar the one CANCEL stop() leaves. */
				if (nb_upnp_closed(&h->u) && o.kind != NB_UPNP_OUT_CANCEL)
					fail_msg("seed %llu: output after close", (unsigned long long)seed);
				handle_out(h, &o);
				/* The router misbehaves at random. */
				if (o.kind == NB_UPNP_OUT_HTTP && h->resp_due) {
					switch (rnd(12)) {
					case 0:
						respond_fault(h, codes[rnd(13)], "Random");
						break;
					case 1:
						h->resp_due = false; /* silence */
						break;
					case 2:
						respond(h, 200, "<html>%u</html>", rnd(100));
						break;
					case 3:
						h->resp_status = 0;
						h->resp_len = 0;
						h->resp_err = "Connection refused";
						break;
					case 4:
						h->resp_trunc = true;
						break;
					default:
						break;
					}
					h->resp_at = h->now + rnd(5000);
				}
			}
			d = nb_upnp_deadline(&h->u);
			assert_true(d > h->now);
			if (nb_upnp_closed(&h->u)) {
				assert_true(d == UINT64_MAX);
				assert_false(h->inflight);
			}
			if (info(h)->status == NB_UPNP_MAPPED)
				assert_int_not_equal(info(h)->external.port, 0);
			if (info(h)->status >= NB_UPNP_UNAVAILABLE)
				assert_true(info(h)->reason[0] != '\0');
			/* A stopped machine closes within stop_ms (or the HTTP timeout if shorter). */
			if (stopped && h->now >= stop_at + h->p.stop_ms)
				assert_true(nb_upnp_closed(&h->u));

			switch (rnd(14)) {
			case 0: case 1: case 2: case 3: { /* time passes: to the next thing, or a random step */
				uint64_t t = next_time(h);
				if (t == UINT64_MAX || rnd(3) == 0)
					t = h->now + rnd(120000);
				if (t > h->now)
					h->now = t;
				break;
			}
			case 4: case 5: /* the pending answer */
				if (h->resp_due) {
					if (h->resp_at > h->now)
						h->now = h->resp_at;
					deliver_response(h);
				}
				break;
			case 6: { /* SSDP, good or not */
				if (h->n_ssdp > 0) {
					nb_upnp_ssdp_input(&h->u, (const uint8_t *)h->ssdp[0].buf, h->ssdp[0].len,
							   &h->ssdp[0].from, h->now);
					memmove(&h->ssdp[0], &h->ssdp[1], (size_t)(h->n_ssdp - 1) * sizeof(h->ssdp[0]));
					h->n_ssdp--;
				} else {
					char junk[64];
					for (size_t i = 0; i < sizeof(junk); i++)
						junk[i] = (char)rnd(256);
					assert_int_equal(nb_upnp_ssdp_input(&h->u, (const uint8_t *)junk, sizeof(junk),
									    &from, h->now),
							 -EINVAL);
				}
				break;
			}
			case 7: { /* a stale or random id */
				uint32_t id = rnd(2) ? h->id - 1 - rnd(3) : rnd(1000) + 1000;
				uint32_t snapshot = h->inflight ? h->id : 0;
				int status_before = info(h)->status;
				if (id != snapshot) {
					nb_upnp_http_done(&h->u, id, 200, (const uint8_t *)add_response,
							  strlen(add_response), false, local_addr(), NULL, h->now);
					assert_int_equal(info(h)->status, status_before);
				}
				break;
			}
			case 8: { /* the broker's view */
				struct nb_addr r = A(rnd(2) ? "203.0.113.106:1" : "203.0.113.111:1");
				nb_upnp_set_reflexive(&h->u, &r, h->now);
				break;
			}
			case 9:
				nb_upnp_check_now(&h->u, h->now);
				break;
			case 10:
				memset(h->r.maps, 0, sizeof(h->r.maps)); /* router restart */
				break;
			case 11:
				if (rnd(4) == 0 && !stopped) {
					nb_upnp_stop(&h->u, h->now);
					stopped = true;
					stop_at = h->now;
				}
				break;
			default:
				snprintf(h->r.ext_ip, sizeof(h->r.ext_ip), "%s",
					 rnd(4) == 0 ? "100.64.11.2" : "203.0.113.106");
				break;
			}
		}
		/* Stop, and it closes in bounded time whatever the router does. */
		{
			struct nb_upnp_out o;
			uint64_t at = h->now;
			nb_upnp_stop(&h->u, at);
			for (int guard = 0; guard < 100 && !nb_upnp_closed(&h->u); guard++) {
				uint64_t t;
				while (nb_upnp_poll(&h->u, h->now, &o) == 1)
					handle_out(h, &o);
				t = next_time(h);
				if (t > h->now)
					h->now = t;
				if (h->resp_due && h->resp_at <= h->now)
					deliver_response(h);
			}
			while (nb_upnp_poll(&h->u, h->now, &o) == 1) {
				assert_int_equal(o.kind, NB_UPNP_OUT_CANCEL);
				handle_out(h, &o);
			}
			assert_true(nb_upnp_closed(&h->u));
			assert_true(h->now <= at + h->p.stop_ms);
			assert_false(h->inflight);
			assert_quiet(h);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_happy_path_v2),
		cmocka_unit_test(test_happy_path_v1_tcp),
		cmocka_unit_test(test_ssdp_silent),
		cmocka_unit_test(test_ssdp_bad_location),
		cmocka_unit_test(test_ssdp_garbage_then_good),
		cmocka_unit_test(test_description_errors),
		cmocka_unit_test(test_external_ip_useless),
		cmocka_unit_test(test_external_ip_usable),
		cmocka_unit_test(test_external_ip_faults),
		cmocka_unit_test(test_add_refusals),
		cmocka_unit_test(test_add_port_80),
		cmocka_unit_test(test_add_725_permanent),
		cmocka_unit_test(test_add_402_toggle),
		cmocka_unit_test(test_add_conflicts),
		cmocka_unit_test(test_add_724),
		cmocka_unit_test(test_add_any_fallback),
		cmocka_unit_test(test_add_any_reserved_port),
		cmocka_unit_test(test_add_silent),
		cmocka_unit_test(test_add_garbled_and_transport),
		cmocka_unit_test(test_renew_at_half_lease),
		cmocka_unit_test(test_long_lease),
		cmocka_unit_test(test_router_restart_readd),
		cmocka_unit_test(test_port_taken_after_restart),
		cmocka_unit_test(test_renew_conflict_moves_port),
		cmocka_unit_test(test_silent_while_mapped),
		cmocka_unit_test(test_reflexive_mismatch_before_mapping),
		cmocka_unit_test(test_reflexive_mismatch_after_mapping),
		cmocka_unit_test(test_reflexive_mismatch_during_add),
		cmocka_unit_test(test_stop_mapped),
		cmocka_unit_test(test_stop_silent_router),
		cmocka_unit_test(test_stop_during_renewal),
		cmocka_unit_test(test_stop_mid_request),
		cmocka_unit_test(test_stop_mid_add),
		cmocka_unit_test(test_refused_renewal_deleted),
		cmocka_unit_test(test_unmap_then_stop),
		cmocka_unit_test(test_reflexive_mismatch_add_refused),
		cmocka_unit_test(test_foreign_check_then_conflicts),
		cmocka_unit_test(test_foreign_check_then_606),
		cmocka_unit_test(test_foreign_renew_conflicts),
		cmocka_unit_test(test_foreign_renew_conflict_then_606),
		cmocka_unit_test(test_foreign_renew_conflict_silent_stop),
		cmocka_unit_test(test_foreign_lost_port_reflexive_mismatch),
		cmocka_unit_test(test_foreign_stop_readd_answered),
		cmocka_unit_test(test_foreign_stop_readd_silent),
		cmocka_unit_test(test_foreign_moved_port_stop),
		cmocka_unit_test(test_foreign_restart_same_port_stop),
		cmocka_unit_test(test_stale_ids_ignored),
		cmocka_unit_test(test_no_local_address),
		cmocka_unit_test(test_event_queue_bounded),
		cmocka_unit_test(test_params_and_strings),
		cmocka_unit_test(test_random_inputs),
	};
	return cmocka_run_group_tests(tests, load_captures, NULL);
}
