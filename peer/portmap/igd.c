/* peer/portmap/igd.c - the device description of an Internet Gateway Device: find
 * the WAN connection service and its control URL.
 *
 * Pure: bytes in, struct out. expat does the XML (its own allocations only).
 * Choices made here (see also peer/portmap/igd.h):
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
#include "peer/portmap/igd.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "peer/portmap/ascii.h"
#include "peer/portmap/xml.h"

#define IGD_CANDIDATES 16
#define IGD_TEXT_MAX NB_URL_MAX /* the longest value looked at */
#define IGD_TYPE_MAX 128

_Static_assert(NB_XML_TEXT_MAX == IGD_TEXT_MAX, "URLBase and controlURL caps are the text cap");
_Static_assert(NB_IGD_DEPTH_MAX <= NB_XML_DEPTH_MAX, "the element stack holds NB_IGD_DEPTH_MAX");

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

struct cand {
	bool ppp;
	int version;
	char type[IGD_TYPE_MAX + 1];
	char control[IGD_TEXT_MAX + 1];
	size_t control_len;
};

struct igd_parser {
	struct nb_xml x;            /* first: expat's user data; tags are enum tag */
	unsigned device_depth_root; /* depth of the root <device>, 0 before */
	/* URLBase */
	bool have_base;
	char base[IGD_TEXT_MAX + 1];
	size_t base_len;
	/* the service being read */
	bool svc_type_seen, svc_ctl_seen;
	struct nb_xml_text svc_type, svc_ctl;
	/* results */
	int device_version;
	char friendly_name[129], manufacturer[129], model_name[129];
	struct cand cands[IGD_CANDIDATES];
	unsigned ncands;
	const char *skip_why; /* why the last WAN service was not a candidate */
};

static enum tag classify(const struct igd_parser *g, const char *name)
{
	enum tag parent = (enum tag)nb_xml_tag(&g->x);

	switch (parent) {
	case T_ROOT:
		if (nb_xml_name_is(name, "URLBase"))
			return T_URLBASE;
		if (nb_xml_name_is(name, "device"))
			return T_DEVICE;
		break;
	case T_DEVICELIST:
		if (nb_xml_name_is(name, "device"))
			return T_DEVICE;
		break;
	case T_DEVICE:
		if (nb_xml_name_is(name, "deviceType"))
			return T_DEVICETYPE;
		if (nb_xml_name_is(name, "friendlyName"))
			return T_FRIENDLY;
		if (nb_xml_name_is(name, "manufacturer"))
			return T_MANUFACTURER;
		if (nb_xml_name_is(name, "modelName"))
			return T_MODEL;
		if (nb_xml_name_is(name, "serviceList"))
			return T_SERVICELIST;
		if (nb_xml_name_is(name, "deviceList"))
			return T_DEVICELIST;
		break;
	case T_SERVICELIST:
		if (nb_xml_name_is(name, "service"))
			return T_SERVICE;
		break;
	case T_SERVICE:
		if (nb_xml_name_is(name, "serviceType"))
			return T_SERVICETYPE;
		if (nb_xml_name_is(name, "controlURL"))
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
	if (!nb_xml_enter(&g->x, name))
		return;
	t = g->x.depth == 0 ? T_ROOT : classify(g, name);
	nb_xml_push(&g->x, (uint8_t)t);
	if (t == T_DEVICE && g->device_depth_root == 0)
		g->device_depth_root = g->x.depth;
	if (t == T_SERVICE) {
		g->svc_type_seen = false;
		g->svc_ctl_seen = false;
		nb_xml_text_reset(&g->svc_type);
		nb_xml_text_reset(&g->svc_ctl);
	}
}

static void end_service(struct igd_parser *g)
{
	const struct nb_xml_text *ty = &g->svc_type, *ct = &g->svc_ctl;
	bool ppp;
	int v;

	if (!g->svc_type_seen)
		return;
	if (ty->over || ty->len > IGD_TYPE_MAX) {
		if (nb_ascii_case_prefix(ty->s, ty->len, igd_ip_urn) ||
		    nb_ascii_case_prefix(ty->s, ty->len, igd_ppp_urn))
			nb_xml_stop(&g->x, "a WAN connection serviceType is longer than 128 bytes");
		return;
	}
	v = nb_ascii_urn_version(ty->s, ty->len, igd_ip_urn);
	ppp = false;
	if (v == 0) {
		v = nb_ascii_urn_version(ty->s, ty->len, igd_ppp_urn);
		ppp = true;
	}
	if (v == 0)
		return;
	if (ct->over) {
		nb_xml_stop(&g->x, "a WAN connection controlURL is longer than 255 bytes");
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
	const struct nb_xml_text *t = &g->x.text;
	enum tag tag;
	int v;

	(void)name;
	if (nb_xml_idle(&g->x))
		return;
	tag = (enum tag)nb_xml_tag(&g->x);
	switch (tag) {
	case T_URLBASE:
		if (t->over) {
			nb_xml_stop(&g->x, "URLBase is longer than 255 bytes");
			return;
		}
		if (!g->have_base && t->len > 0) {
			g->have_base = true;
			memcpy(g->base, t->s, t->len + 1);
			g->base_len = t->len;
		}
		break;
	case T_DEVICETYPE:
		v = t->over ? 0 : nb_ascii_urn_version(t->s, t->len, igd_device_urn);
		if (g->device_version == 0)
			g->device_version = v;
		break;
	case T_FRIENDLY:
	case T_MANUFACTURER:
	case T_MODEL:
		/* Of the root device only: its fields sit one level below it. */
		if (g->x.depth != g->device_depth_root + 1)
			break;
		if (tag == T_FRIENDLY && g->friendly_name[0] == '\0')
			nb_ascii_copy_display(g->friendly_name, sizeof(g->friendly_name), t->s, t->len);
		else if (tag == T_MANUFACTURER && g->manufacturer[0] == '\0')
			nb_ascii_copy_display(g->manufacturer, sizeof(g->manufacturer), t->s, t->len);
		else if (tag == T_MODEL && g->model_name[0] == '\0')
			nb_ascii_copy_display(g->model_name, sizeof(g->model_name), t->s, t->len);
		break;
	case T_SERVICETYPE:
		nb_xml_text_keep_first(&g->svc_type_seen, &g->svc_type, t);
		break;
	case T_CONTROLURL:
		nb_xml_text_keep_first(&g->svc_ctl_seen, &g->svc_ctl, t);
		break;
	case T_SERVICE:
		end_service(g);
		break;
	default:
		break;
	}
	nb_xml_pop(&g->x);
}

static void XMLCALL on_text(void *arg, const XML_Char *s, int len)
{
	struct igd_parser *g = arg;

	if (nb_xml_idle(&g->x) || len <= 0)
		return;
	switch ((enum tag)nb_xml_tag(&g->x)) {
	case T_URLBASE:
	case T_DEVICETYPE:
	case T_FRIENDLY:
	case T_MANUFACTURER:
	case T_MODEL:
	case T_SERVICETYPE:
	case T_CONTROLURL:
		nb_xml_text_add(&g->x.text, s, (size_t)len);
		break;
	default:
		break;
	}
}

_Static_assert(offsetof(struct igd_parser, x) == 0, "expat's user data is the nb_xml");

static const struct nb_xml_rules igd_rules = {
	.root = "root",
	.root_why = "not a UPnP device description (the root element is not <root>)",
	.depth_max = NB_IGD_DEPTH_MAX,
	.depth_why = "elements nested deeper than NB_IGD_DEPTH_MAX",
	.elements_max = NB_IGD_ELEMENTS_MAX,
	.elements_why = "more than NB_IGD_ELEMENTS_MAX elements",
	.on_start = on_start,
	.on_end = on_end,
	.on_text = on_text,
};

/* "http://..." (any case): resolved without the base. */
static bool absolute(const char *s, size_t len)
{
	return nb_ascii_case_prefix(s, len, "http://");
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
	const char *fail = NULL;
	bool base_ok;
	int rc;

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
	rc = nb_xml_parse(&g.x, &igd_rules, xml, len, &fail);
	if (rc < 0) {
		if (why != NULL)
			*why = fail;
		return rc;
	}

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
