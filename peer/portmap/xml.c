/* peer/portmap/xml.c - the expat scaffolding of the UPnP parsers: caps, refusals,
 * the element stack and text accumulation (see peer/portmap/xml.h). */
#include "peer/portmap/xml.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "peer/portmap/ascii.h"

void nb_xml_stop(struct nb_xml *x, const char *why)
{
	if (x->stopped)
		return;
	x->stopped = true;
	x->why = why;
	XML_StopParser(x->xp, XML_FALSE);
}

bool nb_xml_enter(struct nb_xml *x, const char *name)
{
	const struct nb_xml_rules *r = x->rules;

	if (x->stopped)
		return false;
	if (++x->elements > r->elements_max) {
		nb_xml_stop(x, r->elements_why);
		return false;
	}
	if (x->depth >= r->depth_max || x->depth >= NB_XML_DEPTH_MAX) {
		nb_xml_stop(x, r->depth_why);
		return false;
	}
	if (x->depth == 0 && !nb_xml_name_is(name, r->root)) {
		nb_xml_stop(x, r->root_why);
		return false;
	}
	return true;
}

void nb_xml_push(struct nb_xml *x, uint8_t tag)
{
	x->depth++;
	x->stack[x->depth] = tag;
	nb_xml_text_reset(&x->text);
}

bool nb_xml_idle(const struct nb_xml *x)
{
	return x->stopped || x->depth == 0;
}

uint8_t nb_xml_tag(const struct nb_xml *x)
{
	return x->depth > 0 ? x->stack[x->depth] : 0;
}

void nb_xml_pop(struct nb_xml *x)
{
	x->depth--;
	nb_xml_text_reset(&x->text);
}

const char *nb_xml_local_name(const char *name)
{
	const char *colon = strrchr(name, ':');

	return colon != NULL ? colon + 1 : name;
}

bool nb_xml_name_is(const char *name, const char *want)
{
	return nb_ascii_case_streq(nb_xml_local_name(name), want);
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void nb_xml_text_reset(struct nb_xml_text *t)
{
	t->len = 0;
	t->pending_ws = 0;
	t->over = false;
	t->s[0] = '\0';
}

void nb_xml_text_add(struct nb_xml_text *t, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (is_ws(s[i])) {
			if (t->len > 0)
				t->pending_ws++;
			continue;
		}
		if (t->over)
			continue;
		if (NB_XML_TEXT_MAX - t->len < t->pending_ws + 1) {
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

void nb_xml_text_keep_first(bool *seen, struct nb_xml_text *dst, const struct nb_xml_text *src)
{
	if (*seen)
		return;
	*seen = true;
	*dst = *src;
}

static void XMLCALL on_doctype(void *arg, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	nb_xml_stop(arg, "DOCTYPE refused");
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
	nb_xml_stop(arg, "entity declaration refused");
}

int nb_xml_parse(struct nb_xml *x, const struct nb_xml_rules *rules, const uint8_t *buf,
		 size_t len, const char **ret_why)
{
	enum XML_Status st;
	const char *fail = NULL;

	/* The callers' byte caps are far below this; expat takes an int. */
	if (len > INT_MAX) {
		*ret_why = "longer than expat takes in one call";
		return -EINVAL;
	}
	memset(x, 0, sizeof(*x));
	x->rules = rules;
	x->xp = XML_ParserCreate(NULL);
	if (x->xp == NULL) {
		*ret_why = "expat could not allocate a parser";
		return -ENOMEM;
	}
	XML_SetUserData(x->xp, x);
	XML_SetElementHandler(x->xp, rules->on_start, rules->on_end);
	XML_SetCharacterDataHandler(x->xp, rules->on_text);
	XML_SetStartDoctypeDeclHandler(x->xp, on_doctype);
	XML_SetEntityDeclHandler(x->xp, on_entity);
	XML_SetParamEntityParsing(x->xp, XML_PARAM_ENTITY_PARSING_NEVER);
	st = XML_Parse(x->xp, (const char *)buf, (int)len, XML_TRUE);
	if (x->stopped)
		fail = x->why;
	else if (st != XML_STATUS_OK)
		fail = "malformed XML";
	XML_ParserFree(x->xp);
	x->xp = NULL;
	if (fail != NULL) {
		*ret_why = fail;
		return -EINVAL;
	}
	return 0;
}
