/* peer/igd.c - the device description of an Internet Gateway Device: find
 * the WAN connection service and its control URL.
 *
 * Pure: bytes in, struct out. expat does the XML (its own allocations only).
 * Choices made here (see also peer/igd.h):
 * - Names. Namespace processing is off; a prefix ("s:serviceType") is
 *   stripped and local names are compared ASCII case-insensitively.
 * - Where. URLBase counts only as a child of <root>; deviceType, friendlyName,
 *   manufacturer and modelName as children of a <device>, the last three of
 *   the root device only; serviceType and controlURL as children of a
 *   <service> in a <serviceList> of a <device>. The root element must be
 *   <root>: anything else (HTML) is not a description.
 * - Text. Leading and trailing whitespace is dropped, a run of inner
 *   whitespace becomes spaces; a value may arrive in many callbacks.
 * - Lengths. URLBase and a WAN service's serviceType and controlURL longer
 *   than their fields refuse the description. friendlyName, manufacturer and
 *   modelName are for display: cut at 128 bytes on a UTF-8 boundary, control
 *   characters replaced by '?'. Other services' values are ignored.
 * - URLBase. One that does not parse refuses only the services whose
 *   controlURL is relative; absolute ones do without it.
 * - Choice. A service is a candidate when its type is
 *   urn:schemas-upnp-org:service:WANIPConnection:N or WANPPPConnection:N
 *   (N = 1..999) and its controlURL, resolved against URLBase (else the
 *   LOCATION), names the LOCATION's host (any port): a description must not
 *   aim SOAP requests at another machine. WANIPConnection beats
 *   WANPPPConnection, then the higher version, then document order. At most
 *   IGD_CANDIDATES are kept; later ones are ignored.
 * - Refusals. A DOCTYPE or an entity declaration stops the parser at once
 *   (no entity is ever expanded); so do the depth and element caps. */
#include "peer/igd.h"

#include <errno.h>
#include <string.h>

#include <expat.h>

#define IGD_CANDIDATES 16
#define IGD_TEXT_MAX NB_URL_MAX /* the longest value looked at */
#define IGD_TYPE_MAX 128
#define IGD_VERSION_MAX 999

static const char igd_device_urn[] = "urn:schemas-upnp-org:device:InternetGatewayDevice:";
static const char igd_ip_urn[] = "urn:schemas-upnp-org:service:WANIPConnection:";
static const char igd_ppp_urn[] = "urn:schemas-upnp-org:service:WANPPPConnection:";

enum tag {
	T_OTHER = 0,
	T_ROOT,
	T_URLBASE,
	T_DEVICE,
	T_DEVICETYPE,
	T_FRIENDLY,
	T_MANUFACTURER,
	T_MODEL,
	T_SERVICELIST,
	T_SERVICE,
	T_SERVICETYPE,
	T_CONTROLURL,
	T_DEVICELIST,
};

struct text {
	char s[IGD_TEXT_MAX + 1];
	size_t len;
	size_t pending_ws; /* whitespace seen after the last non-space */
	bool over;         /* more than IGD_TEXT_MAX bytes */
};

struct cand {
	bool ppp;
	int version;
	char type[IGD_TYPE_MAX + 1];
	char control[IGD_TEXT_MAX + 1];
	size_t control_len;
};

struct igd_parser {
	XML_Parser xp;
	const char *why;
	bool stopped;
	unsigned depth, elements;
	uint8_t stack[NB_IGD_DEPTH_MAX + 1]; /* enum tag per depth; [0] unused */
	unsigned device_depth_root;          /* depth of the root <device>, 0 before */
	struct text text;
	/* URLBase */
	bool have_base;
	char base[IGD_TEXT_MAX + 1];
	size_t base_len;
	/* the service being read */
	bool svc_type_seen, svc_ctl_seen;
	struct text svc_type, svc_ctl;
	/* results */
	int device_version;
	char friendly_name[129], manufacturer[129], model_name[129];
	struct cand cands[IGD_CANDIDATES];
	unsigned ncands;
	const char *skip_why; /* why the last WAN service was not a candidate */
};

static void stop(struct igd_parser *g, const char *why)
{
	if (g->stopped)
		return;
	g->stopped = true;
	g->why = why;
	XML_StopParser(g->xp, XML_FALSE);
}

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool name_is(const char *name, const char *want)
{
	const char *colon = strrchr(name, ':');

	if (colon != NULL)
		name = colon + 1;
	for (; *name != '\0' && *want != '\0'; name++, want++)
		if (lower(*name) != lower(*want))
			return false;
	return *name == '\0' && *want == '\0';
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void text_reset(struct text *t)
{
	t->len = 0;
	t->pending_ws = 0;
	t->over = false;
	t->s[0] = '\0';
}

static void text_add(struct text *t, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (is_ws(s[i])) {
			if (t->len > 0)
				t->pending_ws++;
			continue;
		}
		if (t->over)
			continue;
		if (IGD_TEXT_MAX - t->len < t->pending_ws + 1) {
			t->over = true;
			continue;
		}
		memset(t->s + t->len, ' ', t->pending_ws);
		t->len += t->pending_ws;
		t->pending_ws = 0;
		t->s[t->len++] = s[i];
		t->s[t->len] = '\0';
	}
}

/* Display copy: at most cap - 1 bytes, cut at a UTF-8 boundary, control
 * characters replaced. */
static void copy_display(char *dst, size_t cap, const struct text *t)
{
	size_t n = t->len < cap - 1 ? t->len : cap - 1;

	if (n < t->len)
		while (n > 0 && ((unsigned char)t->s[n] & 0xC0) == 0x80)
			n--;
	for (size_t i = 0; i < n; i++)
		dst[i] = ((unsigned char)t->s[i] < 0x20 || t->s[i] == 0x7f) ? '?' : t->s[i];
	dst[n] = '\0';
}

/* The N of PREFIX N (1..IGD_VERSION_MAX, no leading zero), or 0. Prefix
 * compared case-insensitively. */
static int urn_version(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	int v = 0;

	if (len <= n || len - n > 3 || s[n] == '0')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (lower(s[i]) != lower(prefix[i]))
			return 0;
	for (size_t i = n; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	return v <= IGD_VERSION_MAX ? v : 0;
}

static bool starts_with_case(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	if (len < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(s[i]) != lower(prefix[i]))
			return false;
	return true;
}

static enum tag classify(const struct igd_parser *g, const char *name)
{
	enum tag parent = g->depth > 0 ? (enum tag)g->stack[g->depth] : T_OTHER;

	switch (parent) {
	case T_ROOT:
		if (name_is(name, "URLBase"))
			return T_URLBASE;
		if (name_is(name, "device"))
			return T_DEVICE;
		break;
	case T_DEVICELIST:
		if (name_is(name, "device"))
			return T_DEVICE;
		break;
	case T_DEVICE:
		if (name_is(name, "deviceType"))
			return T_DEVICETYPE;
		if (name_is(name, "friendlyName"))
			return T_FRIENDLY;
		if (name_is(name, "manufacturer"))
			return T_MANUFACTURER;
		if (name_is(name, "modelName"))
			return T_MODEL;
		if (name_is(name, "serviceList"))
			return T_SERVICELIST;
		if (name_is(name, "deviceList"))
			return T_DEVICELIST;
		break;
	case T_SERVICELIST:
		if (name_is(name, "service"))
			return T_SERVICE;
		break;
	case T_SERVICE:
		if (name_is(name, "serviceType"))
			return T_SERVICETYPE;
		if (name_is(name, "controlURL"))
			return T_CONTROLURL;
		break;
	default:
		break;
	}
	return T_OTHER;
}

static void XMLCALL on_start(void *arg, const XML_Char *name, const XML_Char **atts)
{
	struct igd_parser *g = arg;
	enum tag t;

	(void)atts;
	if (g->stopped)
		return;
	if (++g->elements > NB_IGD_ELEMENTS_MAX) {
		stop(g, "more than NB_IGD_ELEMENTS_MAX elements");
		return;
	}
	if (g->depth >= NB_IGD_DEPTH_MAX) {
		stop(g, "elements nested deeper than NB_IGD_DEPTH_MAX");
		return;
	}
	if (g->depth == 0) {
		if (!name_is(name, "root")) {
			stop(g, "not a UPnP device description (the root element is not <root>)");
			return;
		}
		t = T_ROOT;
	} else {
		t = classify(g, name);
	}
	g->depth++;
	g->stack[g->depth] = (uint8_t)t;
	text_reset(&g->text);
	if (t == T_DEVICE && g->device_depth_root == 0)
		g->device_depth_root = g->depth;
	if (t == T_SERVICE) {
		g->svc_type_seen = false;
		g->svc_ctl_seen = false;
		text_reset(&g->svc_type);
		text_reset(&g->svc_ctl);
	}
}

static void end_service(struct igd_parser *g)
{
	const struct text *ty = &g->svc_type, *ct = &g->svc_ctl;
	bool ppp;
	int v;

	if (!g->svc_type_seen)
		return;
	if (ty->over || ty->len > IGD_TYPE_MAX) {
		if (starts_with_case(ty->s, ty->len, igd_ip_urn) ||
		    starts_with_case(ty->s, ty->len, igd_ppp_urn))
			stop(g, "a WAN connection serviceType is longer than 128 bytes");
		return;
	}
	v = urn_version(ty->s, ty->len, igd_ip_urn);
	ppp = false;
	if (v == 0) {
		v = urn_version(ty->s, ty->len, igd_ppp_urn);
		ppp = true;
	}
	if (v == 0)
		return;
	if (ct->over) {
		stop(g, "a WAN connection controlURL is longer than 255 bytes");
		return;
	}
	if (!g->svc_ctl_seen || ct->len == 0) {
		g->skip_why = "a WAN connection service has no controlURL";
		return;
	}
	if (g->ncands >= IGD_CANDIDATES)
		return;
	struct cand *c = &g->cands[g->ncands++];
	c->ppp = ppp;
	c->version = v;
	memcpy(c->type, ty->s, ty->len + 1);
	memcpy(c->control, ct->s, ct->len + 1);
	c->control_len = ct->len;
}

static void XMLCALL on_end(void *arg, const XML_Char *name)
{
	struct igd_parser *g = arg;
	const struct text *t = &g->text;
	int v;

	(void)name;
	if (g->stopped || g->depth == 0)
		return;
	switch ((enum tag)g->stack[g->depth]) {
	case T_URLBASE:
		if (t->over) {
			stop(g, "URLBase is longer than 255 bytes");
			return;
		}
		if (!g->have_base && t->len > 0) {
			g->have_base = true;
			memcpy(g->base, t->s, t->len + 1);
			g->base_len = t->len;
		}
		break;
	case T_DEVICETYPE:
		v = t->over ? 0 : urn_version(t->s, t->len, igd_device_urn);
		if (g->device_version == 0)
			g->device_version = v;
		break;
	case T_FRIENDLY:
	case T_MANUFACTURER:
	case T_MODEL:
		/* Of the root device only: its fields sit one level below it. */
		if (g->depth != g->device_depth_root + 1)
			break;
		if (g->stack[g->depth] == T_FRIENDLY && g->friendly_name[0] == '\0')
			copy_display(g->friendly_name, sizeof(g->friendly_name), t);
		else if (g->stack[g->depth] == T_MANUFACTURER && g->manufacturer[0] == '\0')
			copy_display(g->manufacturer, sizeof(g->manufacturer), t);
		else if (g->stack[g->depth] == T_MODEL && g->model_name[0] == '\0')
			copy_display(g->model_name, sizeof(g->model_name), t);
		break;
	case T_SERVICETYPE:
		if (!g->svc_type_seen) {
			g->svc_type_seen = true;
			g->svc_type = *t;
		}
		break;
	case T_CONTROLURL:
		if (!g->svc_ctl_seen) {
			g->svc_ctl_seen = true;
			g->svc_ctl = *t;
		}
		break;
	case T_SERVICE:
		end_service(g);
		break;
	default:
		break;
	}
	g->depth--;
	text_reset(&g->text);
}

static void XMLCALL on_text(void *arg, const XML_Char *s, int len)
{
	struct igd_parser *g = arg;

	if (g->stopped || g->depth == 0 || len <= 0)
		return;
	switch ((enum tag)g->stack[g->depth]) {
	case T_URLBASE:
	case T_DEVICETYPE:
	case T_FRIENDLY:
	case T_MANUFACTURER:
	case T_MODEL:
	case T_SERVICETYPE:
	case T_CONTROLURL:
		text_add(&g->text, s, (size_t)len);
		break;
	default:
		break;
	}
}

static void XMLCALL on_doctype(void *arg, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	stop(arg, "DOCTYPE refused");
}

static void XMLCALL on_entity(void *arg, const XML_Char *name, int is_param, const XML_Char *value,
			      int value_len, const XML_Char *base, const XML_Char *sysid,
			      const XML_Char *pubid, const XML_Char *notation)
{
	(void)name;
	(void)is_param;
	(void)value;
	(void)value_len;
	(void)base;
	(void)sysid;
	(void)pubid;
	(void)notation;
	stop(arg, "entity declaration refused");
}

/* "http://..." (any case): resolved without the base. */
static bool absolute(const char *s, size_t len)
{
	return starts_with_case(s, len, "http://");
}

/* Is candidate a better than b? */
static bool better(const struct cand *a, const struct cand *b)
{
	if (a->ppp != b->ppp)
		return !a->ppp;
	return a->version > b->version;
}

int nb_igd_parse(const uint8_t *xml, size_t len, const struct nb_url *location, struct nb_igd *ret,
		 const char **why)
{
	struct igd_parser g;
	struct nb_url base, ctl, best_ctl;
	const struct cand *best = NULL;
	struct nb_igd r;
	enum XML_Status st;
	const char *fail = NULL;
	bool base_ok;

	if (xml == NULL || location == NULL || ret == NULL) {
		if (why != NULL)
			*why = "no description";
		return -EINVAL;
	}
	if (len > NB_IGD_XML_MAX) {
		if (why != NULL)
			*why = "description longer than NB_IGD_XML_MAX bytes";
		return -EINVAL;
	}
	memset(&g, 0, sizeof(g));
	g.xp = XML_ParserCreate(NULL);
	if (g.xp == NULL) {
		if (why != NULL)
			*why = "expat could not allocate a parser";
		return -ENOMEM;
	}
	XML_SetUserData(g.xp, &g);
	XML_SetElementHandler(g.xp, on_start, on_end);
	XML_SetCharacterDataHandler(g.xp, on_text);
	XML_SetStartDoctypeDeclHandler(g.xp, on_doctype);
	XML_SetEntityDeclHandler(g.xp, on_entity);
	XML_SetParamEntityParsing(g.xp, XML_PARAM_ENTITY_PARSING_NEVER);
	st = XML_Parse(g.xp, (const char *)xml, (int)len, XML_TRUE);
	if (g.stopped)
		fail = g.why;
	else if (st != XML_STATUS_OK)
		fail = "malformed XML";
	XML_ParserFree(g.xp);
	if (fail != NULL)
		goto refuse;

	base = *location;
	base_ok = !g.have_base || nb_url_parse(g.base, g.base_len, &base) == 0;
	fail = g.skip_why != NULL ? g.skip_why : "no WANIPConnection or WANPPPConnection service";
	for (unsigned i = 0; i < g.ncands; i++) {
		const struct cand *c = &g.cands[i];
		/* A URLBase that does not parse only matters to relative references. */
		if (!base_ok && !absolute(c->control, c->control_len)) {
			fail = "URLBase is not an http URL with an IPv4 host";
			continue;
		}
		if (nb_url_resolve(&base, c->control, c->control_len, &ctl) < 0) {
			fail = "a WAN connection controlURL does not resolve to an http URL";
			continue;
		}
		if (!nb_addr_ip_equal(&ctl.addr, &location->addr) || !nb_url_host_ok(&ctl.addr)) {
			fail = "a WAN connection controlURL names another host than LOCATION";
			continue;
		}
		if (best == NULL || better(c, best)) {
			best = c;
			best_ctl = ctl;
		}
	}
	if (best == NULL)
		goto refuse;

	memset(&r, 0, sizeof(r));
	r.device_version = g.device_version;
	r.service_version = best->version;
	r.ppp = best->ppp;
	memcpy(r.service_type, best->type, sizeof(r.service_type));
	r.control = best_ctl;
	memcpy(r.friendly_name, g.friendly_name, sizeof(r.friendly_name));
	memcpy(r.manufacturer, g.manufacturer, sizeof(r.manufacturer));
	memcpy(r.model_name, g.model_name, sizeof(r.model_name));
	*ret = r;
	return 0;
refuse:
	if (why != NULL)
		*why = fail;
	return -EINVAL;
}
