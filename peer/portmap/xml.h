/* peer/portmap/xml.h - the expat scaffolding of the UPnP parsers (peer/portmap/igd.c,
 * peer/portmap/soap.c): caps, refusals, the element stack and text accumulation.
 *
 * Pure: bytes in, the caller's handlers called; expat's own allocations only.
 * What every parser built on it gets:
 * - Refusals. A DOCTYPE or an entity declaration stops the parser at once
 *   (no entity is ever expanded); so do the element cap, the depth cap and
 *   a root element of another name. The first reason given sticks.
 * - Names. Namespace processing is off; nb_xml_name_is() strips a prefix
 *   ("s:Body") and compares the local name ASCII case-insensitively.
 * - Text. expat may split one text node over several callbacks: it is
 *   accumulated between tags, leading and trailing whitespace dropped, each
 *   inner whitespace byte kept as a space; past NB_XML_TEXT_MAX bytes it is
 *   marked over (callers refuse it, never truncate it).
 *
 * Use: embed struct nb_xml as the FIRST member of the parser's state (expat
 * hands the handlers that state, and the refusal handlers read it as a
 * struct nb_xml), zero the state, call nb_xml_parse() with static rules.
 * Start handler: nb_xml_enter(), choose a tag, nb_xml_push(). End handler:
 * nb_xml_tag(), act on it and x->text, nb_xml_pop(). Text handler:
 * nb_xml_text_add(&x->text, ...) when the innermost tag wants its text. */
#ifndef NB_PEER_XML_H
#define NB_PEER_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <expat.h>

#define NB_XML_TEXT_MAX 255 /* the longest value a parser looks at */
#define NB_XML_DEPTH_MAX 32 /* room in the element stack; rules may cap lower */

struct nb_xml_text {
	char s[NB_XML_TEXT_MAX + 1]; /* NUL-terminated */
	size_t len;
	size_t pending_ws; /* whitespace seen after the last non-space */
	bool over;         /* more than NB_XML_TEXT_MAX bytes */
};

/* A parser's fixed shape: a static const per parser. */
struct nb_xml_rules {
	const char *root;         /* the root element's local name */
	const char *root_why;     /* refusal when the root is another element */
	unsigned depth_max;       /* at most NB_XML_DEPTH_MAX */
	const char *depth_why;    /* refusal when elements nest deeper */
	unsigned elements_max;    /* elements in the document */
	const char *elements_why; /* refusal when there are more */
	XML_StartElementHandler on_start;
	XML_EndElementHandler on_end;
	XML_CharacterDataHandler on_text;
};

struct nb_xml {
	XML_Parser xp;
	const struct nb_xml_rules *rules;
	const char *why; /* static sentence, set by the first nb_xml_stop() */
	bool stopped;
	unsigned depth, elements;
	uint8_t stack[NB_XML_DEPTH_MAX + 1]; /* the caller's tag per depth; [0] unused */
	struct nb_xml_text text;             /* of the innermost open element */
};

/* Reset x and parse len bytes with rules' handlers; the user data they get
 * is x, the first member of the caller's state. DOCTYPE and entity
 * declarations are refused. 0; -EINVAL with *ret_why (required) the reason
 * the parser was stopped, else "malformed XML"; -ENOMEM with *ret_why
 * "expat could not allocate a parser". */
int nb_xml_parse(struct nb_xml *x, const struct nb_xml_rules *rules, const uint8_t *buf,
		 size_t len, const char **ret_why);

/* Stop the parser with a static sentence; only the first one is kept. */
void nb_xml_stop(struct nb_xml *x, const char *why);

/* First thing in a start handler: counts the element against the caps and
 * checks the root's name. false: the parser is stopped (now or before) and
 * the element is to be ignored. */
bool nb_xml_enter(struct nb_xml *x, const char *name);

/* Open the element as tag (the caller's enum, 0 for "other") one level
 * deeper, with empty text. Only after nb_xml_enter() said true. */
void nb_xml_push(struct nb_xml *x, uint8_t tag);

/* Was the parser stopped, or is no element open? End and text handlers
 * return at once then. */
bool nb_xml_idle(const struct nb_xml *x);

/* The innermost open element's tag; 0 when none is open. */
uint8_t nb_xml_tag(const struct nb_xml *x);

/* Close the innermost element and empty the text. */
void nb_xml_pop(struct nb_xml *x);

/* Is name's local part (after the last ':') want, ignoring ASCII case? */
bool nb_xml_name_is(const char *name, const char *want);

/* name with everything up to its last ':' removed. */
const char *nb_xml_local_name(const char *name);

void nb_xml_text_reset(struct nb_xml_text *t);
void nb_xml_text_add(struct nb_xml_text *t, const char *s, size_t len);

/* The first copy wins: *dst = *src unless *seen, then *seen. */
void nb_xml_text_keep_first(bool *seen, struct nb_xml_text *dst, const struct nb_xml_text *src);

#endif
