/* peer/portmap/soap.c - SOAP calls to a WANIPConnection / WANPPPConnection service:
 * build the request, parse the response or the fault.
 *
 * Pure: no I/O; expat does the XML (its own allocations only). Choices made
 * here (see also peer/portmap/soap.h):
 * - The body is byte for byte what miniupnpc 2.2.4 sends (captured in
 *   natlab/captures/soap-AddPortMapping.txt): the XML declaration and the
 *   envelope each end with CRLF; an action without arguments is an empty
 *   element pair.
 * - service_type is refused unless it is printable ASCII without quotes,
 *   backslash, '<', '>' or '&' (it goes into a quoted header and an XML
 *   attribute as is). The description must be non-empty UTF-8 without control
 *   characters (XML 1.0 cannot carry most of them, escaped or not).
 * - Names. Namespace processing is off; prefixes are stripped and local
 *   names compared ASCII case-insensitively (MikroTik's faultCode).
 * - Shape. The root is Envelope, then Body; the response (ActionResponse) or
 *   the Fault is a child of Body; the out arguments are children of the
 *   response; errorCode and errorDescription may sit anywhere in the Fault.
 *   Both a response and a Fault refuse the body.
 * - Status. A SOAP Fault is reported as a fault whatever the HTTP status
 *   (500 by the spec; some routers send 200 or a 4xx with it). A response is
 *   accepted only with 200; any other status without a Fault is refused.
 * - errorCode: whitespace trimmed, optional sign, at most 9 digits;
 *   anything else gives code_known false (code 0). errorDescription (else
 *   faultstring) is for display: cut at 128 bytes on a UTF-8 boundary,
 *   control characters replaced.
 * - Out arguments, by action: GetExternalIPAddress needs
 *   NewExternalIPAddress (empty, or dotted IPv4); AddAnyPortMapping needs
 *   NewReservedPort (1..65535); GetSpecificPortMappingEntry needs
 *   NewInternalPort and NewInternalClient, and reads NewEnabled (0/1,
 *   true/false, yes/no; true when absent) and NewLeaseDuration (0 when
 *   absent). A value that does not parse or fit refuses the body. */
#include "peer/portmap/soap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "peer/portmap/ascii.h"
#include "peer/portmap/xml.h"

#define SOAP_TYPE_MAX 128
#define SOAP_DEPTH_MAX 16
#define SOAP_ELEMENTS_MAX 256
#define SOAP_IPV4_MAX 15

static const char *const action_names[NB_SOAP_ACTION_COUNT] = {
	[NB_SOAP_GET_EXTERNAL_IP] = "GetExternalIPAddress",
	[NB_SOAP_ADD_PORT_MAPPING] = "AddPortMapping",
	[NB_SOAP_ADD_ANY_PORT_MAPPING] = "AddAnyPortMapping",
	[NB_SOAP_DELETE_PORT_MAPPING] = "DeletePortMapping",
	[NB_SOAP_GET_SPECIFIC_ENTRY] = "GetSpecificPortMappingEntry",
};

const char *nb_soap_action_name(enum nb_soap_action a)
{
	if ((unsigned)a >= NB_SOAP_ACTION_COUNT)
		return NULL;
	return action_names[a];
}

/* ---- Building ------------------------------------------------------------ */

struct out {
	char *p;
	size_t cap, len;
	bool full;
};

static void put_n(struct out *o, const char *s, size_t n)
{
	if (o->full || o->cap - o->len <= n) {
		o->full = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void put(struct out *o, const char *s)
{
	put_n(o, s, strlen(s));
}

static void put_uint(struct out *o, uint32_t v)
{
	char tmp[10];
	char rev[10];
	size_t n = 0;

	do {
		rev[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0 && n < sizeof(rev));
	for (size_t i = 0; i < n; i++)
		tmp[i] = rev[n - 1 - i];
	put_n(o, tmp, n);
}

/* XML 1.0 §2.4: '&' and '<' must be escaped in text; '>', '"' and '\''
 * are escaped too so the value is safe anywhere. */
static void put_escaped(struct out *o, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&': put(o, "&amp;"); break;
		case '<': put(o, "&lt;"); break;
		case '>': put(o, "&gt;"); break;
		case '"': put(o, "&quot;"); break;
		case '\'': put(o, "&apos;"); break;
		default: put_n(o, s, 1); break;
		}
	}
}

static void put_arg(struct out *o, const char *name, const char *value)
{
	put(o, "<");
	put(o, name);
	put(o, ">");
	put_escaped(o, value);
	put(o, "</");
	put(o, name);
	put(o, ">");
}

static void put_arg_uint(struct out *o, const char *name, uint32_t v)
{
	put(o, "<");
	put(o, name);
	put(o, ">");
	put_uint(o, v);
	put(o, "</");
	put(o, name);
	put(o, ">");
}

static bool service_type_ok(const char *st)
{
	size_t n;

	if (st == NULL)
		return false;
	n = strnlen(st, SOAP_TYPE_MAX + 1);
	if (n == 0 || n > SOAP_TYPE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = st[i];
		if ((unsigned char)c <= 0x20 || (unsigned char)c >= 0x7f || c == '"' || c == '\'' ||
		    c == '\\' || c == '<' || c == '>' || c == '&')
			return false;
	}
	return true;
}

/* Well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF),
 * no C0 controls, no DEL. */
static bool text_ok(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t k;
		uint32_t cp;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return false;
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			k = 1;
			cp = c & 0x1Fu;
		} else if (c >= 0xE0 && c <= 0xEF) {
			k = 2;
			cp = c & 0x0Fu;
		} else if (c >= 0xF0 && c <= 0xF4) {
			k = 3;
			cp = c & 0x07u;
		} else {
			return false;
		}
		if (n - i - 1 < k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			unsigned char d = (unsigned char)s[i + j];
			if ((d & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (d & 0x3Fu);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += k + 1;
	}
	return true;
}

static bool ipv4_ok(const char *s, size_t cap)
{
	uint8_t ip[4];
	size_t n = strnlen(s, cap);

	return n < cap && n > 0 && inet_pton(AF_INET, s, ip) == 1 &&
	       (ip[0] | ip[1] | ip[2] | ip[3]) != 0;
}

int nb_soap_build(enum nb_soap_action a, const char *service_type, const struct nb_soap_args *args,
		  struct nb_soap_request *ret)
{
	struct nb_soap_request r;
	struct out o;
	const char *name = nb_soap_action_name(a);
	bool mapping = a == NB_SOAP_ADD_PORT_MAPPING || a == NB_SOAP_ADD_ANY_PORT_MAPPING;
	size_t dlen = 0;

	if (name == NULL || ret == NULL || !service_type_ok(service_type))
		return -EINVAL;
	if (a != NB_SOAP_GET_EXTERNAL_IP) {
		if (args == NULL || args->external_port == 0)
			return -EINVAL;
	}
	if (mapping) {
		dlen = strnlen(args->description, sizeof(args->description));
		if (args->internal_port == 0 || dlen == 0 || dlen == sizeof(args->description) ||
		    !text_ok(args->description, dlen) ||
		    !ipv4_ok(args->internal_client, sizeof(args->internal_client)))
			return -EINVAL;
	}

	memset(&r, 0, sizeof(r));
	o = (struct out){ .p = r.headers[0], .cap = sizeof(r.headers[0]) };
	put(&o, "SOAPAction: \"");
	put(&o, service_type);
	put(&o, "#");
	put(&o, name);
	put(&o, "\"");
	if (o.full)
		return -ENOSPC;
	o = (struct out){ .p = r.headers[1], .cap = sizeof(r.headers[1]) };
	put(&o, "Content-Type: text/xml; charset=\"utf-8\"");
	if (o.full)
		return -ENOSPC;
	o = (struct out){ .p = r.headers[2], .cap = sizeof(r.headers[2]) };
	put(&o, "Expect:");
	if (o.full)
		return -ENOSPC;

	o = (struct out){ .p = r.body, .cap = sizeof(r.body) };
	put(&o, "<?xml version=\"1.0\"?>\r\n"
		"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
		"s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:");
	put(&o, name);
	put(&o, " xmlns:u=\"");
	put(&o, service_type);
	put(&o, "\">");
	if (a != NB_SOAP_GET_EXTERNAL_IP) {
		/* WANIPConnection:2 service description, argument order. */
		put_arg(&o, "NewRemoteHost", "");
		put_arg_uint(&o, "NewExternalPort", args->external_port);
		put_arg(&o, "NewProtocol", args->tcp ? "TCP" : "UDP");
	}
	if (mapping) {
		put_arg_uint(&o, "NewInternalPort", args->internal_port);
		put_arg(&o, "NewInternalClient", args->internal_client);
		put_arg(&o, "NewEnabled", "1");
		put_arg(&o, "NewPortMappingDescription", args->description);
		put_arg_uint(&o, "NewLeaseDuration", args->lease_s);
	}
	put(&o, "</u:");
	put(&o, name);
	put(&o, "></s:Body></s:Envelope>\r\n");
	if (o.full)
		return -ENOSPC;
	r.body_len = o.len;
	*ret = r;
	return 0;
}

/* ---- Parsing ------------------------------------------------------------- */

enum tag {
	T_OTHER = 0,
	T_ENVELOPE,
	T_BODY,
	T_RESPONSE,
	T_FAULT,
	T_ERRORCODE,
	T_ERRORDESC,
	T_FAULTSTRING,
	/* out arguments: children of the response */
	T_ARG_EXTERNAL_IP,
	T_ARG_RESERVED_PORT,
	T_ARG_INTERNAL_PORT,
	T_ARG_INTERNAL_CLIENT,
	T_ARG_ENABLED,
	T_ARG_LEASE,
	T_COUNT,
};

#define ARG_FIRST T_ARG_EXTERNAL_IP
#define ARG_COUNT (T_COUNT - ARG_FIRST)

static const char *const arg_names[ARG_COUNT] = {
	"NewExternalIPAddress", "NewReservedPort", "NewInternalPort",
	"NewInternalClient",    "NewEnabled",      "NewLeaseDuration",
};

_Static_assert(SOAP_DEPTH_MAX <= NB_XML_DEPTH_MAX, "the element stack holds SOAP_DEPTH_MAX");

struct soap_parser {
	struct nb_xml x; /* first: expat's user data; tags are enum tag */
	const char *action;
	bool have_body, have_response, have_fault;
	/* fault */
	bool code_seen, desc_seen, fstring_seen;
	struct nb_xml_text code, desc, fstring;
	/* response */
	bool arg_seen[ARG_COUNT];
	struct nb_xml_text arg[ARG_COUNT];
};

/* local name == action + "Response" */
static bool is_response(const char *name, const char *action)
{
	size_t n = strlen(action);

	name = nb_xml_local_name(name);
	for (size_t i = 0; i < n; i++)
		if (nb_ascii_lower(name[i]) != nb_ascii_lower(action[i]))
			return false; /* also stops at name's NUL */
	return nb_xml_name_is(name + n, "Response");
}

static bool inside(const struct soap_parser *p, enum tag t)
{
	for (unsigned d = 1; d <= p->x.depth; d++)
		if (p->x.stack[d] == t)
			return true;
	return false;
}

static enum tag classify(const struct soap_parser *p, const char *name)
{
	enum tag parent = (enum tag)nb_xml_tag(&p->x);

	if (parent == T_ENVELOPE && !p->have_body && nb_xml_name_is(name, "Body"))
		return T_BODY;
	if (parent == T_BODY) {
		if (nb_xml_name_is(name, "Fault"))
			return p->have_fault ? T_OTHER : T_FAULT;
		if (is_response(name, p->action))
			return p->have_response ? T_OTHER : T_RESPONSE;
		return T_OTHER;
	}
	if (parent == T_RESPONSE) {
		for (int i = 0; i < ARG_COUNT; i++)
			if (nb_xml_name_is(name, arg_names[i]))
				return (enum tag)(ARG_FIRST + i);
		return T_OTHER;
	}
	if (parent == T_FAULT && nb_xml_name_is(name, "faultstring"))
		return T_FAULTSTRING;
	if (inside(p, T_FAULT)) {
		if (nb_xml_name_is(name, "errorCode"))
			return T_ERRORCODE;
		if (nb_xml_name_is(name, "errorDescription"))
			return T_ERRORDESC;
	}
	return T_OTHER;
}

static void XMLCALL on_start(void *arg, const XML_Char *name, const XML_Char **atts)
{
	struct soap_parser *p = arg;
	enum tag t;

	(void)atts;
	if (!nb_xml_enter(&p->x, name))
		return;
	t = p->x.depth == 0 ? T_ENVELOPE : classify(p, name);
	if (t == T_BODY)
		p->have_body = true;
	if (t == T_FAULT)
		p->have_fault = true;
	if (t == T_RESPONSE)
		p->have_response = true;
	if (p->have_fault && p->have_response) {
		nb_xml_stop(&p->x, "both a response and a SOAP Fault");
		return;
	}
	nb_xml_push(&p->x, (uint8_t)t);
}

static void XMLCALL on_end(void *arg, const XML_Char *name)
{
	struct soap_parser *p = arg;
	enum tag t;

	(void)name;
	if (nb_xml_idle(&p->x))
		return;
	t = (enum tag)nb_xml_tag(&p->x);
	if (t == T_ERRORCODE)
		nb_xml_text_keep_first(&p->code_seen, &p->code, &p->x.text);
	else if (t == T_ERRORDESC)
		nb_xml_text_keep_first(&p->desc_seen, &p->desc, &p->x.text);
	else if (t == T_FAULTSTRING)
		nb_xml_text_keep_first(&p->fstring_seen, &p->fstring, &p->x.text);
	else if (t >= ARG_FIRST && t < T_COUNT)
		nb_xml_text_keep_first(&p->arg_seen[t - ARG_FIRST], &p->arg[t - ARG_FIRST], &p->x.text);
	nb_xml_pop(&p->x);
}

static void XMLCALL on_text(void *arg, const XML_Char *s, int len)
{
	struct soap_parser *p = arg;
	enum tag t;

	if (nb_xml_idle(&p->x) || len <= 0)
		return;
	t = (enum tag)nb_xml_tag(&p->x);
	if (t == T_ERRORCODE || t == T_ERRORDESC || t == T_FAULTSTRING || t >= ARG_FIRST)
		nb_xml_text_add(&p->x.text, s, (size_t)len);
}

_Static_assert(offsetof(struct soap_parser, x) == 0, "expat's user data is the nb_xml");

static const struct nb_xml_rules soap_rules = {
	.root = "Envelope",
	.root_why = "not a SOAP envelope",
	.depth_max = SOAP_DEPTH_MAX,
	.depth_why = "elements nested deeper than a SOAP response has",
	.elements_max = SOAP_ELEMENTS_MAX,
	.elements_why = "more elements than a SOAP response has",
	.on_start = on_start,
	.on_end = on_end,
	.on_text = on_text,
};

/* n decimal digits (1..10), <= max. */
static bool parse_digits(const char *s, size_t n, uint32_t max, uint32_t *ret)
{
	uint64_t v = 0;

	if (n == 0 || n > 10)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return false;
	*ret = (uint32_t)v;
	return true;
}

static bool parse_uint(const struct nb_xml_text *t, uint32_t max, uint32_t *ret)
{
	return !t->over && parse_digits(t->s, t->len, max, ret);
}

static bool parse_port(const struct nb_xml_text *t, uint16_t *ret)
{
	uint32_t v;

	if (!parse_uint(t, 65535, &v) || v == 0)
		return false;
	*ret = (uint16_t)v;
	return true;
}

/* [+-] and at most 9 digits, so it fits an int either way. */
static bool parse_code(const struct nb_xml_text *t, int *ret)
{
	size_t off = 0;
	uint32_t v;

	if (t->over || t->len == 0)
		return false;
	if (t->s[0] == '-' || t->s[0] == '+')
		off = 1;
	if (t->len - off > 9 || !parse_digits(t->s + off, t->len - off, 999999999, &v))
		return false;
	*ret = t->s[0] == '-' ? -(int)v : (int)v;
	return true;
}

static bool parse_bool(const struct nb_xml_text *t, bool *ret)
{
	static const char *const words[] = { "0", "1", "false", "true", "no", "yes" };

	if (t->over)
		return false;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (nb_ascii_case_streq(t->s, words[i])) {
			*ret = i % 2 == 1;
			return true;
		}
	}
	return false;
}

/* Dotted IPv4 (at most 15 bytes) into dst[16]; "" allowed when allow_empty. */
static bool parse_ipv4(const struct nb_xml_text *t, bool allow_empty, char dst[SOAP_IPV4_MAX + 1])
{
	uint8_t ip[4];

	if (t->over || t->len > SOAP_IPV4_MAX)
		return false;
	if (t->len == 0) {
		dst[0] = '\0';
		return allow_empty;
	}
	if (inet_pton(AF_INET, t->s, ip) != 1)
		return false;
	memcpy(dst, t->s, t->len + 1);
	return true;
}

#define ARG(p, tag) (&(p)->arg[(tag) - ARG_FIRST])
#define SEEN(p, tag) ((p)->arg_seen[(tag) - ARG_FIRST])

static const char *read_response(enum nb_soap_action a, const struct soap_parser *p,
				 struct nb_soap_response *r)
{
	switch (a) {
	case NB_SOAP_GET_EXTERNAL_IP:
		if (!SEEN(p, T_ARG_EXTERNAL_IP))
			return "no NewExternalIPAddress in the response";
		if (!parse_ipv4(ARG(p, T_ARG_EXTERNAL_IP), true, r->external_ip))
			return "NewExternalIPAddress is neither empty nor dotted IPv4";
		break;
	case NB_SOAP_ADD_ANY_PORT_MAPPING:
		if (!SEEN(p, T_ARG_RESERVED_PORT))
			return "no NewReservedPort in the response";
		if (!parse_port(ARG(p, T_ARG_RESERVED_PORT), &r->reserved_port))
			return "NewReservedPort is not a port number";
		break;
	case NB_SOAP_GET_SPECIFIC_ENTRY:
		if (!SEEN(p, T_ARG_INTERNAL_PORT) || !SEEN(p, T_ARG_INTERNAL_CLIENT))
			return "no NewInternalPort or NewInternalClient in the response";
		if (!parse_port(ARG(p, T_ARG_INTERNAL_PORT), &r->internal_port))
			return "NewInternalPort is not a port number";
		if (!parse_ipv4(ARG(p, T_ARG_INTERNAL_CLIENT), false, r->internal_client))
			return "NewInternalClient is not dotted IPv4";
		r->enabled = true;
		if (SEEN(p, T_ARG_ENABLED) && !parse_bool(ARG(p, T_ARG_ENABLED), &r->enabled))
			return "NewEnabled is not a boolean";
		if (SEEN(p, T_ARG_LEASE) && !parse_uint(ARG(p, T_ARG_LEASE), UINT32_MAX, &r->lease_s))
			return "NewLeaseDuration is not a number of seconds";
		break;
	default:
		break;
	}
	return NULL;
}

int nb_soap_parse(enum nb_soap_action a, int http_status, const uint8_t *body, size_t len,
		  struct nb_soap_response *ret, const char **why)
{
	/* The response is built in r and copied out only on success. */
	struct soap_parser p;
	struct nb_soap_response r;
	const char *fail = NULL;
	int rc;

	if (nb_soap_action_name(a) == NULL || body == NULL || ret == NULL) {
		fail = "no action or no body";
		goto refuse;
	}
	if (len > NB_SOAP_RESPONSE_MAX) {
		fail = "response longer than NB_SOAP_RESPONSE_MAX bytes";
		goto refuse;
	}
	memset(&p, 0, sizeof(p));
	p.action = nb_soap_action_name(a);
	rc = nb_xml_parse(&p.x, &soap_rules, body, len, &fail);
	if (rc < 0) {
		if (why != NULL)
			*why = fail;
		return rc;
	}

	memset(&r, 0, sizeof(r));
	if (p.have_fault) {
		r.fault = true;
		if (p.code_seen)
			r.code_known = parse_code(&p.code, &r.code);
		if (!r.code_known)
			r.code = 0;
		if (p.desc_seen)
			nb_ascii_copy_display(r.description, sizeof(r.description), p.desc.s, p.desc.len);
		else if (p.fstring_seen)
			nb_ascii_copy_display(r.description, sizeof(r.description), p.fstring.s,
					      p.fstring.len);
	} else if (http_status != 200) {
		fail = "HTTP status other than 200 without a SOAP Fault";
		goto refuse;
	} else if (!p.have_response) {
		fail = "no <ActionResponse> in the 200 response";
		goto refuse;
	} else {
		fail = read_response(a, &p, &r);
		if (fail != NULL)
			goto refuse;
	}
	*ret = r;
	return 0;
refuse:
	if (why != NULL)
		*why = fail;
	return -EINVAL;
}
