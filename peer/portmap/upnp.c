/* peer/portmap/upnp.c - the UPnP IGD client state machine: discovery, description,
 * SOAP port mapping, renewal, re-adding, removal. Pure; see upnp.h. */
#include "peer/portmap/upnp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "peer/portmap/extip.h"

/* The states, finer than nb_upnp_status:
 *
 *   IDLE -> DISCOVER -> DESCRIBE -> EXTIP -> MAP -> MAPPED -> STOPPING -> CLOSED
 *              \            \          \       \      |  (renew, check, re-add
 *               `------------`----------`-------`-> FAILED   stay in MAPPED)
 *                                                     |
 *                            MAPPED -> UNMAP (UNUSABLE, deleting) -> FAILED
 *
 * nb_upnp_stop() leads from MAPPED and UNMAP to STOPPING, from anything else
 * straight to CLOSED. */
enum {
	S_IDLE = 0,
	S_DISCOVER,
	S_DESCRIBE,
	S_EXTIP,
	S_MAP,
	S_MAPPED,
	S_UNMAP,  /* UNUSABLE: deleting the mapping that turned out useless */
	S_FAILED, /* UNAVAILABLE, REFUSED or UNUSABLE: nothing more to do */
	S_STOPPING,
	S_CLOSED,
};

/* The one HTTP request. */
enum { R_NONE = 0, R_QUEUED, R_INFLIGHT };
#define ACTION_DESCRIBE (-1)

/* How the current add started: what a success is called, what a failure costs. */
enum { EP_INITIAL = 0, EP_RENEW, EP_READD };

/* What became of a SOAP call. */
enum { X_OK = 0, X_FAULT, X_SILENT, X_BAD, X_LOCAL };

struct outcome {
	int kind;
	const char *why; /* X_SILENT: the transfer error (NULL: our timeout); X_BAD, X_LOCAL: why */
	struct nb_soap_response r;
};

/* "718, 729 conflict: next external port from a fixed sequence seeded by
 * `seed`, <= 5 tries": at most this many new ports per add. */
#define NB_UPNP_CONFLICT_TRIES 5
/* UDA 1.1 §1.3.2: "MX ... SHOULD be less than 5"; the research notes use 2. */
#define NB_UPNP_MX 2
/* New ports are drawn from [1024, 65535]: below that miniupnpd's secure
 * mode answers 606 (NOTES.md, "The UPnP router"). */
#define NB_UPNP_PORT_MIN 1024u
/* Lease used for the 402 toggle when lease_s itself is 0. */
#define NB_UPNP_LEASE_DEFAULT 3600u

static const struct nb_upnp_params default_params = {
	.internal_port = 0,
	.tcp = false,
	.lease_s = 3600,
	.discover_ms = 2000,
	.ssdp_rto_ms = 500,
	.http_timeout_ms = 3000,
	.check_s = 60,
	.stop_ms = 1000,
	.ssdp_flags = 0,
	.description = "natpeer",
};

void nb_upnp_params_default(struct nb_upnp_params *p)
{
	*p = default_params;
}

const char *nb_upnp_status_string(enum nb_upnp_status s)
{
	switch (s) {
	case NB_UPNP_IDLE: return "idle";
	case NB_UPNP_WORKING: return "working";
	case NB_UPNP_MAPPED: return "mapped";
	case NB_UPNP_UNAVAILABLE: return "unavailable";
	case NB_UPNP_REFUSED: return "refused";
	case NB_UPNP_UNUSABLE: return "unusable";
	case NB_UPNP_CLOSED: return "closed";
	}
	return "?";
}

static const char *state_name(int s)
{
	switch (s) {
	case S_IDLE: return "idle";
	case S_DISCOVER: return "discover";
	case S_DESCRIBE: return "describe";
	case S_EXTIP: return "extip";
	case S_MAP: return "map";
	case S_MAPPED: return "mapped";
	case S_UNMAP: return "unmap";
	case S_FAILED: return "failed";
	case S_STOPPING: return "stopping";
	case S_CLOSED: return "closed";
	}
	return "?";
}

static const char *action_name(int a)
{
	const char *n;

	if (a == ACTION_DESCRIBE)
		return "the description request";
	n = nb_soap_action_name((enum nb_soap_action)a);
	return n != NULL ? n : "?";
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t add_ms(uint64_t now, uint64_t ms)
{
	return ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
}

/* "2.0 s" */
static const char *seconds(uint32_t ms, char *buf, size_t cap)
{
	snprintf(buf, cap, "%u.%u s", ms / 1000u, (ms % 1000u) / 100u);
	return buf;
}

static void set_reason(struct nb_upnp *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_reason(struct nb_upnp *u, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(u->info.reason, sizeof(u->info.reason), fmt, ap);
	va_end(ap);
}

static void push_event(struct nb_upnp *u, enum nb_upnp_event_kind kind, uint64_t now)
{
	if (u->ev_len == NB_UPNP_EVENTS) {
		/* Full: the oldest goes. */
		u->ev_head = (uint8_t)((u->ev_head + 1u) % NB_UPNP_EVENTS);
		u->ev_len--;
		u->dropped_events++;
	}
	u->ev[(u->ev_head + u->ev_len) % NB_UPNP_EVENTS] = (struct nb_upnp_event){ .kind = kind, .at = now };
	u->ev_len++;
}

/* ---- the request slot --------------------------------------------------- */

static void queue_request(struct nb_upnp *u, int action)
{
	u->req_id = u->next_id++;
	if (u->next_id == 0)
		u->next_id = 1;
	u->req_action = action;
	u->req_stage = R_QUEUED;
}

/* Forget the request; one the shell has started gets a CANCEL. */
static void drop_request(struct nb_upnp *u)
{
	if (u->req_stage == R_INFLIGHT) {
		/* At most one CANCEL can wait: poll hands them out before it
		 * starts a new request, and only a started request is cancelled. */
		if (u->n_cancel < sizeof(u->cancel) / sizeof(u->cancel[0]))
			u->cancel[u->n_cancel++] = u->req_id;
		else
			nb_log_debug("upnp", "cancel queue full, request %u left to the shell's timeout",
				     (unsigned)u->req_id);
	}
	u->req_stage = R_NONE;
}

/* ---- state ---------------------------------------------------------------- */

static void start_add(struct nb_upnp *u, int episode, uint16_t port);

static void set_state(struct nb_upnp *u, int s, uint64_t now)
{
	if (u->state == s)
		return;
	nb_log_debug("upnp", "%s -> %s", state_name(u->state), state_name(s));
	u->state = s;
	switch (s) {
	case S_DISCOVER:
		u->info.status = NB_UPNP_WORKING;
		u->discover_end = add_ms(now, u->p.discover_ms);
		u->ssdp_next = now; /* the first round goes out at the next poll */
		u->ssdp_left = 0;
		break;
	case S_DESCRIBE:
		queue_request(u, ACTION_DESCRIBE);
		break;
	case S_EXTIP:
		queue_request(u, NB_SOAP_GET_EXTERNAL_IP);
		break;
	case S_MAP:
		/* AddAnyPortMapping exists from WANIPConnection:2 on. */
		u->use_any = !u->info.igd.ppp && u->info.igd.service_version >= 2;
		start_add(u, EP_INITIAL, u->p.external_port != 0 ? u->p.external_port : u->p.internal_port);
		break;
	case S_MAPPED:
		u->info.status = NB_UPNP_MAPPED;
		break;
	case S_UNMAP:
		drop_request(u);
		queue_request(u, NB_SOAP_DELETE_PORT_MAPPING);
		break;
	case S_FAILED:
		drop_request(u);
		break;
	case S_STOPPING:
		u->stop_end = add_ms(now, u->p.stop_ms);
		if (u->req_stage != R_NONE && u->req_action == NB_SOAP_DELETE_PORT_MAPPING) {
			/* UNMAP's delete is the one we want: keep it, with the tighter bound. */
			u->req_deadline = min_u64(u->req_deadline, u->stop_end);
		} else if (u->stop_await_add) {
			/* An add is out: the router has probably acted on it. Its
			 * answer says which port to delete (stop_done). */
			u->req_deadline = min_u64(u->req_deadline, u->stop_end);
		} else {
			drop_request(u);
			queue_request(u, NB_SOAP_DELETE_PORT_MAPPING);
		}
		break;
	case S_CLOSED:
		drop_request(u);
		u->info.status = NB_UPNP_CLOSED;
		push_event(u, NB_UPNP_EV_CLOSED, now);
		break;
	default:
		break;
	}
}

/* UNAVAILABLE, REFUSED or UNUSABLE, with the reason already set. unmap: a
 * mapping exists and must go first; it is deleted only if it is one we hold
 * (see upnp.h: never delete a port that may be someone else's). */
static void fail(struct nb_upnp *u, enum nb_upnp_status st, bool unmap, uint64_t now)
{
	nb_log_debug("upnp", "%s: %s", nb_upnp_status_string(st), u->info.reason);
	u->info.status = st;
	push_event(u, NB_UPNP_EV_FAILED, now);
	set_state(u, unmap && u->held ? S_UNMAP : S_FAILED, now);
}

/* info.external.port is not ours any more (another client holds it, or the
 * router forgot it): never delete it, never renew it. Re-adds and checks
 * go on; the next grant makes a port ours again. */
static void forget_port(struct nb_upnp *u, const char *why)
{
	if (u->held)
		nb_log_debug("upnp", "external port %u is no longer ours: %s", (unsigned)u->info.external.port,
			     why);
	u->held = false;
	u->renew_at = UINT64_MAX;
}

static bool is_add(int action)
{
	return action == NB_SOAP_ADD_PORT_MAPPING || action == NB_SOAP_ADD_ANY_PORT_MAPPING;
}

/* ---- addresses -------------------------------------------------------------- */

/* Why this external IP cannot carry a mapping from the internet, or NULL.
 * RESEARCH.md: "an external IP that is empty, 0.0.0.0, RFC 1918, 100.64/10
 * or otherwise reserved means double NAT or CGNAT". Documentation ranges
 * (203.0.113/24, 198.51.100/24, 192.0.2/24) are NOT refused: the lab's
 * internet is 203.0.113/24, and they are not what a double NAT produces. */
static bool reflexive_mismatch(const struct nb_upnp *u)
{
	return u->have_external && u->reflexive.family == NB_AF_INET &&
	       !nb_addr_ip_equal(&u->info.external, &u->reflexive);
}

static void set_mismatch_reason(struct nb_upnp *u)
{
	char ext[NB_ADDR_STRLEN], refl[NB_ADDR_STRLEN];

	set_reason(u, "the router's external address %s is not the address the broker sees (%s): double NAT?",
		   nb_addr_format_ip(&u->info.external, ext, sizeof(ext)),
		   nb_addr_format_ip(&u->reflexive, refl, sizeof(refl)));
}

/* splitmix64: the port sequence depends on the seed alone. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint16_t next_port(struct nb_upnp *u)
{
	uint16_t port = 0;

	for (int i = 0; i < 8; i++) {
		uint64_t x = mix(u->seed ^ (uint64_t)++u->port_seq * 0x100000001b3ull);
		port = (uint16_t)(NB_UPNP_PORT_MIN + x % (65536u - NB_UPNP_PORT_MIN));
		if (port != u->p.internal_port && port != u->want_port && port != u->info.external.port)
			break;
	}
	return port;
}

/* ---- words for failures --------------------------------------------------------- */

static void fault_words(const struct nb_soap_response *r, char *buf, size_t cap)
{
	if (!r->code_known)
		snprintf(buf, cap, "a fault without a numeric code (%s)",
			 r->description[0] != '\0' ? r->description : "no description");
	else if (r->description[0] != '\0')
		snprintf(buf, cap, "%d %s", r->code, r->description);
	else
		snprintf(buf, cap, "%d", r->code);
}

/* The failure of a call that got no usable answer (not a fault), in words. */
static void trouble_words(const struct nb_upnp *u, int action, const struct outcome *o, char *buf, size_t cap)
{
	char s[24];

	switch (o->kind) {
	case X_SILENT:
		if (o->why != NULL)
			snprintf(buf, cap, "the gateway did not answer %s: %s", action_name(action), o->why);
		else
			snprintf(buf, cap, "the gateway did not answer %s within %s", action_name(action),
				 seconds(u->p.http_timeout_ms, s, sizeof(s)));
		break;
	case X_LOCAL:
		snprintf(buf, cap, "could not ask the gateway for %s: %s", action_name(action), o->why);
		break;
	default:
		snprintf(buf, cap, "the gateway's answer to %s is unusable: %s", action_name(action),
			 o->why != NULL ? o->why : "?");
		break;
	}
}

/* ---- the steps ------------------------------------------------------------------ */

/* Queue the next try of the current add. Renewals and re-adds name their
 * port: AddAnyPortMapping could move it. */
static void retry_add(struct nb_upnp *u)
{
	queue_request(u, (u->episode == EP_INITIAL && u->use_any) ? NB_SOAP_ADD_ANY_PORT_MAPPING
								  : NB_SOAP_ADD_PORT_MAPPING);
}

/* A new add: fresh retry budget. */
static void begin_add(struct nb_upnp *u, int episode, uint16_t port)
{
	u->episode = (uint8_t)episode;
	u->want_port = port;
	u->lease = u->p.lease_s;
	u->tried_725 = u->tried_402 = u->tried_724 = false;
	u->conflicts = 0;
}

static void start_add(struct nb_upnp *u, int episode, uint16_t port)
{
	begin_add(u, episode, port);
	retry_add(u);
}

/* The fault table of upnp.h. true: the next try is set up. */
static bool add_fault_retry(struct nb_upnp *u, int action, const struct nb_soap_response *r)
{
	if (!r->code_known)
		return false;
	switch (r->code) {
	case 725: /* OnlyPermanentLeases: once with lease 0 */
		if (u->tried_725 || u->lease == 0)
			return false;
		u->tried_725 = true;
		u->lease = 0;
		return true;
	case 402: /* InvalidArgs: toggle lease 0 / lease_s once */
		if (u->tried_402)
			return false;
		u->tried_402 = true;
		u->lease = u->lease != 0 ? 0 : (u->p.lease_s != 0 ? u->p.lease_s : NB_UPNP_LEASE_DEFAULT);
		return true;
	case 718: /* ConflictInMappingEntry */
	case 729: /* ConflictWithOtherMechanisms */
		if (u->conflicts >= NB_UPNP_CONFLICT_TRIES)
			return false;
		u->conflicts++;
		u->want_port = next_port(u);
		return true;
	case 724: /* SamePortValuesRequired: external = internal, once */
		if (u->tried_724 || u->want_port == u->p.internal_port)
			return false;
		u->tried_724 = true;
		u->want_port = u->p.internal_port;
		return true;
	case 401: /* Invalid Action */
	case 602: /* Optional Action Not Implemented */
		if (action != NB_SOAP_ADD_ANY_PORT_MAPPING)
			return false;
		u->use_any = false;
		return true;
	default:
		return false;
	}
}

/* The router granted `port`: MAPPED, and the right event. */
static void granted(struct nb_upnp *u, uint16_t port, uint64_t now)
{
	bool fresh = u->state != S_MAPPED || port != u->info.external.port;
	char ext[NB_ADDR_STRLEN];

	u->info.external.port = port;
	u->held = true;
	u->info.lease_s = u->lease;
	u->info.internal_client = u->local;
	u->info.internal_client.port = u->p.internal_port;
	if (fresh)
		u->info.mapped_at = now;
	u->renew_at = u->lease != 0 ? add_ms(now, (uint64_t)u->lease * 500u) : UINT64_MAX;
	u->check_at = add_ms(now, (uint64_t)u->p.check_s * 1000u);
	nb_log_debug("upnp", "%s %s (lease %u s)", fresh ? "mapped" : u->episode == EP_RENEW ? "renewed" : "re-added",
		     nb_addr_format(&u->info.external, ext, sizeof(ext)), (unsigned)u->lease);
	set_state(u, S_MAPPED, now);
	push_event(u, fresh ? NB_UPNP_EV_MAPPED : u->episode == EP_RENEW ? NB_UPNP_EV_RENEWED : NB_UPNP_EV_READDED,
		   now);
}

/* MAPPED, and an add got no answer: keep the mapping, try again at the
 * next check (a renewal then goes first). */
static void mapped_retry_later(struct nb_upnp *u, uint64_t now)
{
	if (u->check_at <= now)
		u->check_at = add_ms(now, (uint64_t)u->p.check_s * 1000u);
	if (u->renew_at <= now)
		u->renew_at = u->check_at;
}

static void add_done(struct nb_upnp *u, int action, const struct outcome *o, uint64_t now)
{
	char words[192];
	bool mismatch = reflexive_mismatch(u);

	if (o->kind == X_OK) {
		uint16_t port = u->want_port;
		if (action == NB_SOAP_ADD_ANY_PORT_MAPPING)
			port = o->r.reserved_port; /* soap.c insists on 1..65535 */
		if (mismatch) {
			/* Granted, but useless: delete it again, no MAPPED event. */
			u->info.external.port = port;
			u->held = true;
			set_mismatch_reason(u);
			fail(u, NB_UPNP_UNUSABLE, true, now);
			return;
		}
		granted(u, port, now);
		return;
	}
	if (u->state == S_MAP && mismatch) {
		/* The reflexive IP arrived while the add was out: that verdict wins. */
		set_mismatch_reason(u);
		fail(u, NB_UPNP_UNUSABLE, false, now);
		return;
	}
	if (o->kind == X_FAULT && o->r.code_known && (o->r.code == 718 || o->r.code == 729) &&
	    u->state == S_MAPPED && u->want_port == u->info.external.port)
		/* A conflict on the port we had (renewal, re-add): another
		 * client holds it now. Forget it; deleting it would cut them off. */
		forget_port(u, "the router reports a conflict on it");
	if (o->kind == X_FAULT && add_fault_retry(u, action, &o->r)) {
		nb_log_debug("upnp", "%s fault %d: trying port %u lease %u (%s)", action_name(action), o->r.code,
			     (unsigned)u->want_port, (unsigned)u->lease,
			     u->use_any ? "AddAnyPortMapping" : "AddPortMapping");
		retry_add(u);
		return;
	}
	if (o->kind == X_FAULT) {
		char tried[40] = "";
		fault_words(&o->r, words, sizeof(words));
		if (o->r.code_known && (o->r.code == 718 || o->r.code == 729) && u->conflicts > 0)
			snprintf(tried, sizeof(tried), " (%u ports tried)", (unsigned)u->conflicts + 1u);
		if (u->state == S_MAPPED)
			set_reason(u, "the router refused to %s: %s%s",
				   u->episode == EP_RENEW ? "renew the mapping" : "add the mapping again", words, tried);
		else
			set_reason(u, "the router refused the mapping: %s%s", words, tried);
		/* A refused renewal leaves the old mapping until its lease ends:
		 * delete it rather than leave it pointing at us, if it is still
		 * ours (fail() checks u->held). */
		fail(u, NB_UPNP_REFUSED, u->state == S_MAPPED, now);
		return;
	}
	if (u->state == S_MAPPED) {
		/* A silent or garbled router is not a reason to drop the mapping. */
		nb_log_debug("upnp", "%s got no usable answer; again at the next check", action_name(action));
		mapped_retry_later(u, now);
		return;
	}
	trouble_words(u, action, o, words, sizeof(words));
	set_reason(u, "%s", words);
	fail(u, NB_UPNP_UNAVAILABLE, false, now);
}

static void extip_done(struct nb_upnp *u, const struct outcome *o, uint64_t now)
{
	char words[192];
	const char *useless;
	struct nb_addr a;

	switch (o->kind) {
	case X_OK:
		break;
	case X_FAULT:
		/* A fault here is not about a mapping. 606 (Action not authorised)
		 * is the router's policy shutting us out: REFUSED. Anything else
		 * (501 on a WAN that is down, 401, -911, ...) means its control
		 * service cannot serve us: UNAVAILABLE. */
		fault_words(&o->r, words, sizeof(words));
		if (o->r.code_known && o->r.code == 606) {
			set_reason(u, "the router refused GetExternalIPAddress: %s", words);
			fail(u, NB_UPNP_REFUSED, false, now);
		} else {
			set_reason(u, "the router could not report its external address: %s", words);
			fail(u, NB_UPNP_UNAVAILABLE, false, now);
		}
		return;
	default:
		trouble_words(u, NB_SOAP_GET_EXTERNAL_IP, o, words, sizeof(words));
		set_reason(u, "%s", words);
		fail(u, NB_UPNP_UNAVAILABLE, false, now);
		return;
	}
	if (o->r.external_ip[0] == '\0') {
		/* miniupnpd on a double NAT without STUN (NOTES.md, "Double NAT"). */
		set_reason(u, "the router reports no external address: it is not connected, or behind another NAT");
		fail(u, NB_UPNP_UNUSABLE, false, now);
		return;
	}
	if (nb_addr_parse(o->r.external_ip, true, &a) != 0 || a.family != NB_AF_INET) {
		set_reason(u, "the router's external address \"%s\" is not an IPv4 address", o->r.external_ip);
		fail(u, NB_UPNP_UNAVAILABLE, false, now);
		return;
	}
	a.port = 0;
	u->info.external = a;
	push_event(u, NB_UPNP_EV_EXTERNAL_IP, now);
	useless = nb_extip_useless(&a);
	if (useless != NULL) {
		set_reason(u, "the router's external address %s is %s", o->r.external_ip, useless);
		fail(u, NB_UPNP_UNUSABLE, false, now);
		return;
	}
	u->have_external = true;
	if (reflexive_mismatch(u)) {
		set_mismatch_reason(u);
		fail(u, NB_UPNP_UNUSABLE, false, now);
		return;
	}
	set_state(u, S_MAP, now);
}

static void check_done(struct nb_upnp *u, const struct outcome *o)
{
	if (o->kind == X_OK) {
		struct nb_addr client;
		bool ours = nb_addr_parse(o->r.internal_client, true, &client) == 0 &&
			    nb_addr_ip_equal(&client, &u->info.internal_client) &&
			    o->r.internal_port == u->p.internal_port;
		if (ours)
			return; /* the next check was set when this one started */
		/* Someone else holds the port now (a router restart, and another
		 * host got there first): a conflict, so the next port. */
		nb_log_debug("upnp", "external port %u now goes to %s:%u", (unsigned)u->info.external.port,
			     o->r.internal_client, (unsigned)o->r.internal_port);
		forget_port(u, "the router maps it to another client");
		begin_add(u, EP_READD, u->info.external.port);
		u->conflicts = 1;
		u->want_port = next_port(u);
		retry_add(u);
		return;
	}
	if (o->kind == X_FAULT && o->r.code_known && o->r.code == 714) {
		/* NoSuchEntry: the router forgot it (restart). Same port first. */
		nb_log_debug("upnp", "the mapping vanished; adding it again");
		forget_port(u, "the router has no such mapping");
		start_add(u, EP_READD, u->info.external.port);
		return;
	}
	/* Any other answer, or none: look again at the next check, already set. */
	nb_log_debug("upnp", "the check got no usable answer; again at the next check");
}

static void stop_done(struct nb_upnp *u, const struct outcome *o, uint64_t now)
{
	char words[192];

	if (o->kind == X_OK || (o->kind == X_FAULT && o->r.code_known && o->r.code == 714)) {
		set_reason(u, "stopped; the mapping was deleted");
	} else if (o->kind == X_FAULT) {
		fault_words(&o->r, words, sizeof(words));
		set_reason(u, "the router refused the delete: %s", words);
	} else if (o->kind == X_SILENT && o->why == NULL) {
		set_reason(u, "the router did not answer the delete");
	} else {
		trouble_words(u, NB_SOAP_DELETE_PORT_MAPPING, o, words, sizeof(words));
		set_reason(u, "%s", words);
	}
	set_state(u, S_CLOSED, now);
}

/* A SOAP call ended (answered, failed, timed out or not even built). */
static void soap_done(struct nb_upnp *u, int action, const struct outcome *o, uint64_t now)
{
	switch (u->state) {
	case S_EXTIP:
		extip_done(u, o, now);
		break;
	case S_MAP:
		add_done(u, action, o, now);
		break;
	case S_MAPPED:
		if (action == NB_SOAP_GET_SPECIFIC_ENTRY)
			check_done(u, o);
		else
			add_done(u, action, o, now);
		break;
	case S_UNMAP:
		/* Whatever the answer, there is nothing more to try. */
		nb_log_debug("upnp", "delete of the useless mapping: %s",
			     o->kind == X_OK ? "done" : "failed");
		set_state(u, S_FAILED, now);
		break;
	case S_STOPPING:
		if (u->stop_await_add && is_add(action)) {
			u->stop_await_add = false;
			if (o->kind != X_OK) { /* nothing was granted: nothing to delete */
				set_reason(u, "stopped");
				set_state(u, S_CLOSED, now);
				break;
			}
			u->info.external.port = action == NB_SOAP_ADD_ANY_PORT_MAPPING ? o->r.reserved_port : u->want_port;
			u->held = true; /* just granted to us */
			queue_request(u, NB_SOAP_DELETE_PORT_MAPPING); /* bounded by stop_end */
			break;
		}
		stop_done(u, o, now);
		break;
	default:
		break;
	}
}

static void describe_done(struct nb_upnp *u, int status, const uint8_t *body, size_t len, bool truncated,
			  const char *err, uint64_t now)
{
	struct nb_igd igd;
	const char *why = NULL;
	char url[NB_URL_MAX + 8], s[24];

	if (nb_url_format(&u->location, url, sizeof(url)) < 0)
		snprintf(url, sizeof(url), "?");
	if (status == 0 && err == NULL)
		set_reason(u, "the gateway did not answer the description request (%s) within %s", url,
			   seconds(u->p.http_timeout_ms, s, sizeof(s)));
	else if (status == 0)
		set_reason(u, "could not fetch the gateway's description (%s): %s", url, err);
	else if (status != 200)
		set_reason(u, "the gateway's description (%s) came with HTTP %d", url, status);
	else if (truncated)
		set_reason(u, "the gateway's description is longer than %u bytes", (unsigned)NB_IGD_XML_MAX);
	else if (nb_igd_parse(body, len, &u->location, &igd, &why) != 0)
		set_reason(u, "the gateway's description is unusable: %s", why != NULL ? why : "?");
	else if (!nb_url_host_ok(&igd.control.addr))
		set_reason(u, "the gateway's control URL points to an address no gateway can have");
	else {
		u->info.igd = igd;
		push_event(u, NB_UPNP_EV_DESCRIBED, now);
		set_state(u, S_EXTIP, now);
		return;
	}
	fail(u, NB_UPNP_UNAVAILABLE, false, now);
}

/* Our own timeout for the request in flight: cancel it, and it failed. */
static void request_timed_out(struct nb_upnp *u, uint64_t now)
{
	int action = u->req_action;
	struct outcome o;

	nb_log_debug("upnp", "request %u (%s) timed out", (unsigned)u->req_id, action_name(action));
	drop_request(u);
	if (action == ACTION_DESCRIBE) {
		describe_done(u, 0, NULL, 0, false, NULL, now);
		return;
	}
	memset(&o, 0, sizeof(o));
	o.kind = X_SILENT;
	soap_done(u, action, &o, now);
}

/* ---- the API ---------------------------------------------------------------------- */

void nb_upnp_init(struct nb_upnp *u, const struct nb_upnp_params *p, uint64_t seed, uint64_t now)
{
	memset(u, 0, sizeof(*u));
	u->p = p != NULL ? *p : default_params;
	if (u->p.ssdp_rto_ms == 0)
		u->p.ssdp_rto_ms = default_params.ssdp_rto_ms;
	if (u->p.http_timeout_ms == 0)
		u->p.http_timeout_ms = default_params.http_timeout_ms;
	if (u->p.check_s == 0)
		u->p.check_s = default_params.check_s;
	u->p.description[sizeof(u->p.description) - 1] = '\0';
	if (u->p.description[0] == '\0')
		memcpy(u->p.description, default_params.description, sizeof(default_params.description));
	u->seed = seed;
	u->now = now;
	u->next_id = 1;
	u->state = S_IDLE;
	u->info.status = NB_UPNP_IDLE;
	u->renew_at = u->check_at = u->stop_end = UINT64_MAX;
}

void nb_upnp_start(struct nb_upnp *u, uint64_t now)
{
	if (now > u->now)
		u->now = now;
	if (u->state != S_IDLE)
		return;
	set_state(u, S_DISCOVER, now);
	if (u->p.internal_port == 0) {
		set_reason(u, "no internal port to map");
		fail(u, NB_UPNP_UNAVAILABLE, false, now);
	}
}

static void run_timers(struct nb_upnp *u, uint64_t now)
{
	char s[24];

	if (u->state == S_STOPPING && now >= u->stop_end) {
		if (u->stop_await_add)
			set_reason(u, "stopped; the router did not answer the add in time (a mapping it made lapses with its lease)");
		else
			set_reason(u, "the router did not answer the delete");
		set_state(u, S_CLOSED, now);
		return;
	}
	if (u->req_stage == R_INFLIGHT && now >= u->req_deadline)
		request_timed_out(u, now);
	switch (u->state) {
	case S_DISCOVER:
		if (now >= u->discover_end) {
			if (u->ssdp_refused == 0)
				set_reason(u, "no UPnP gateway answered in %s",
					   seconds(u->p.discover_ms, s, sizeof(s)));
			else
				set_reason(u, "no usable UPnP gateway answered in %s (%u replies refused: %s)",
					   seconds(u->p.discover_ms, s, sizeof(s)), (unsigned)u->ssdp_refused,
					   u->ssdp_why != NULL ? u->ssdp_why : "?");
			fail(u, NB_UPNP_UNAVAILABLE, false, now);
			return;
		}
		if (u->ssdp_left == 0 && now >= u->ssdp_next) {
			u->ssdp_left = NB_SSDP_TARGET_COUNT;
			u->ssdp_next = add_ms(u->ssdp_next, u->p.ssdp_rto_ms);
			if (u->ssdp_next <= now)
				u->ssdp_next = add_ms(now, u->p.ssdp_rto_ms);
		}
		break;
	case S_MAPPED:
		if (u->req_stage != R_NONE)
			break;
		if (now >= u->renew_at)
			start_add(u, EP_RENEW, u->info.external.port);
		else if (now >= u->check_at) {
			/* Checks keep their cadence whatever the answers take. */
			u->check_at = add_ms(now, (uint64_t)u->p.check_s * 1000u);
			queue_request(u, NB_SOAP_GET_SPECIFIC_ENTRY);
		}
		break;
	default:
		break;
	}
}

/* Build the SOAP call for the queued request into u->soap. 0, or -EINVAL with *why. */
static int build_soap(struct nb_upnp *u, const char **why)
{
	struct nb_soap_args args;
	enum nb_soap_action a = (enum nb_soap_action)u->req_action;

	memset(&args, 0, sizeof(args));
	args.tcp = u->p.tcp;
	args.internal_port = u->p.internal_port;
	memcpy(args.description, u->p.description, sizeof(args.description));
	args.lease_s = u->lease;
	switch (a) {
	case NB_SOAP_ADD_PORT_MAPPING:
	case NB_SOAP_ADD_ANY_PORT_MAPPING:
		if (u->local.family != NB_AF_INET) {
			*why = "the shell reported no local IPv4 address toward it";
			return -EINVAL;
		}
		nb_addr_format_ip(&u->local, args.internal_client, sizeof(args.internal_client));
		args.external_port = u->want_port;
		break;
	case NB_SOAP_DELETE_PORT_MAPPING:
	case NB_SOAP_GET_SPECIFIC_ENTRY:
		args.external_port = u->info.external.port;
		break;
	default:
		break;
	}
	if (u->local.family == NB_AF_INET && args.internal_client[0] == '\0')
		nb_addr_format_ip(&u->local, args.internal_client, sizeof(args.internal_client));
	if (nb_soap_build(a, u->info.igd.service_type, &args, &u->soap) != 0) {
		*why = "the call could not be built";
		return -EINVAL;
	}
	return 0;
}

/* Hand out the queued request. 1: *out is it; 0: it could not be built (and
 * was handled as a failure). */
static int emit_request(struct nb_upnp *u, uint64_t now, struct nb_upnp_out *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = NB_UPNP_OUT_HTTP;
	out->http_id = u->req_id;
	out->timeout_ms = u->p.http_timeout_ms;
	if (u->req_action == ACTION_DESCRIBE) {
		out->post = false;
		out->url = u->location;
		out->max_response = NB_IGD_XML_MAX;
	} else {
		const char *why = NULL;
		if (build_soap(u, &why) != 0) {
			struct outcome o;
			int action = u->req_action;
			memset(&o, 0, sizeof(o));
			o.kind = X_LOCAL;
			o.why = why;
			u->req_stage = R_NONE;
			soap_done(u, action, &o, now);
			return 0;
		}
		out->post = true;
		out->bytes = (const uint8_t *)u->soap.body;
		out->len = u->soap.body_len;
		out->url = u->info.igd.control;
		for (int i = 0; i < NB_SOAP_HEADERS; i++)
			out->headers[i] = u->soap.headers[i];
		out->headers[NB_SOAP_HEADERS] = NULL;
		out->max_response = NB_SOAP_RESPONSE_MAX;
	}
	u->req_stage = R_INFLIGHT;
	u->req_deadline = add_ms(now, u->p.http_timeout_ms);
	if (u->state == S_STOPPING) {
		u->req_deadline = min_u64(u->req_deadline, u->stop_end);
		out->timeout_ms = (uint32_t)min_u64(u->p.http_timeout_ms, u->stop_end > now ? u->stop_end - now : 0);
	}
	return 1;
}

int nb_upnp_poll(struct nb_upnp *u, uint64_t now, struct nb_upnp_out *out)
{
	if (now > u->now)
		u->now = now;
	/* A handful of rounds: a call that cannot be built is handled at once
	 * and may lead to the next step; none leads back to itself. */
	for (int round = 0; round < 4; round++) {
		if (u->n_cancel > 0) {
			memset(out, 0, sizeof(*out));
			out->kind = NB_UPNP_OUT_CANCEL;
			out->http_id = u->cancel[0];
			u->n_cancel--;
			memmove(&u->cancel[0], &u->cancel[1], u->n_cancel * sizeof(u->cancel[0]));
			return 1;
		}
		if (u->state == S_IDLE || u->state == S_CLOSED || u->state == S_FAILED)
			return 0;
		run_timers(u, now);
		if (u->n_cancel > 0)
			continue;
		if (u->req_stage == R_QUEUED) {
			if (emit_request(u, now, out))
				return 1;
			continue;
		}
		while (u->state == S_DISCOVER && u->ssdp_left > 0) {
			unsigned i = NB_SSDP_TARGET_COUNT - u->ssdp_left;
			int n = nb_ssdp_build_msearch(nb_ssdp_targets[i], NB_UPNP_MX, u->ssdp_buf,
						      sizeof(u->ssdp_buf));
			u->ssdp_left--;
			if (n <= 0)
				continue;
			memset(out, 0, sizeof(*out));
			out->kind = NB_UPNP_OUT_SSDP;
			out->bytes = (const uint8_t *)u->ssdp_buf;
			out->len = (size_t)n;
			out->to.family = NB_AF_INET;
			out->to.port = NB_SSDP_PORT;
			out->to.ip[0] = 239;
			out->to.ip[1] = 255;
			out->to.ip[2] = 255;
			out->to.ip[3] = 250;
			return 1;
		}
		return 0;
	}
	return 0;
}

int nb_upnp_ssdp_input(struct nb_upnp *u, const uint8_t *buf, size_t len, const struct nb_addr *from,
		       uint64_t now)
{
	struct nb_ssdp_reply r;
	const char *why = NULL;
	char a[NB_ADDR_STRLEN];

	if (now > u->now)
		u->now = now;
	if (u->state != S_DISCOVER || buf == NULL || from == NULL)
		return -EINVAL;
	if (nb_ssdp_parse_reply(buf, len, from, u->p.ssdp_flags, &r, &why) != 0) {
		u->ssdp_refused++;
		u->ssdp_why = why;
		nb_log_debug("upnp", "SSDP reply from %s refused: %s", nb_addr_format(from, a, sizeof(a)),
			     why != NULL ? why : "?");
		return -EINVAL;
	}
	u->info.gateway = *from;
	memcpy(u->info.server, r.server, sizeof(u->info.server));
	u->info.server[sizeof(u->info.server) - 1] = '\0';
	u->location = r.location;
	u->ssdp_left = 0;
	push_event(u, NB_UPNP_EV_GATEWAY, now);
	set_state(u, S_DESCRIBE, now);
	return 0;
}

void nb_upnp_http_done(struct nb_upnp *u, uint32_t http_id, int status, const uint8_t *body, size_t len,
		       bool truncated, const struct nb_addr *local, const char *err, uint64_t now)
{
	int action = u->req_action;
	struct outcome o;
	const char *why = NULL;

	if (now > u->now)
		u->now = now;
	if (u->state == S_CLOSED || u->req_stage != R_INFLIGHT || http_id != u->req_id) {
		nb_log_debug("upnp", "result for request %u ignored", (unsigned)http_id);
		return;
	}
	u->req_stage = R_NONE;
	if (local != NULL && local->family == NB_AF_INET && !nb_addr_is_unspecified(local)) {
		u->local = *local;
		u->local.port = 0;
	}
	if (body == NULL)
		len = 0;
	if (action == ACTION_DESCRIBE) {
		describe_done(u, status, body, len, truncated, status == 0 ? (err != NULL ? err : "transfer failed")
									 : NULL, now);
		return;
	}
	memset(&o, 0, sizeof(o));
	if (status == 0) {
		o.kind = X_SILENT;
		o.why = err != NULL ? err : "transfer failed";
	} else if (truncated) {
		o.kind = X_BAD;
		o.why = "longer than the answer size limit";
	} else if (nb_soap_parse((enum nb_soap_action)action, status, body, len, &o.r, &why) != 0) {
		o.kind = X_BAD;
		o.why = why != NULL ? why : "not a SOAP answer";
	} else {
		o.kind = o.r.fault ? X_FAULT : X_OK;
	}
	soap_done(u, action, &o, now);
}

void nb_upnp_set_reflexive(struct nb_upnp *u, const struct nb_addr *reflexive, uint64_t now)
{
	if (now > u->now)
		u->now = now;
	if (u->state == S_CLOSED || reflexive == NULL || reflexive->family != NB_AF_INET)
		return;
	u->reflexive = *reflexive;
	u->reflexive.port = 0;
	if (!reflexive_mismatch(u))
		return;
	switch (u->state) {
	case S_MAPPED:
		set_mismatch_reason(u);
		fail(u, NB_UPNP_UNUSABLE, true, now); /* deletes only a port we hold */
		break;
	case S_MAP:
		/* An add in flight may create the mapping: decide when it is answered. */
		if (u->req_stage == R_INFLIGHT)
			break;
		set_mismatch_reason(u);
		fail(u, NB_UPNP_UNUSABLE, false, now);
		break;
	default:
		/* Before the external IP: checked when it arrives. Failed,
		 * unmapping or stopping: nothing changes. */
		break;
	}
}

void nb_upnp_check_now(struct nb_upnp *u, uint64_t now)
{
	if (now > u->now)
		u->now = now;
	if (u->state == S_MAPPED && u->check_at > now)
		u->check_at = now;
}

/* From MAPPED with a port we hold (or UNMAP) the delete runs, bounded by
 * stop_ms; MAPPED while re-adding after losing the port deletes nothing but
 * what an add in flight grants. From anything
 * else: CLOSED at once; a request in flight leaves one CANCEL behind, which
 * the next nb_upnp_poll() hands out (the last output ever; the deadline says
 * "now" until then). */
void nb_upnp_stop(struct nb_upnp *u, uint64_t now)
{
	if (now > u->now)
		u->now = now;
	switch (u->state) {
	case S_CLOSED:
	case S_STOPPING:
		return;
	case S_UNMAP: /* entered only with a port we hold */
		set_state(u, S_STOPPING, now);
		return;
	case S_MAPPED:
		if (u->held) {
			set_state(u, S_STOPPING, now);
			return;
		}
		/* The port we had is someone else's now. A re-add in flight may
		 * grant a new one: wait for its answer, delete what it grants. */
		if (u->req_stage == R_INFLIGHT && is_add(u->req_action)) {
			u->stop_await_add = true;
			set_state(u, S_STOPPING, now);
			return;
		}
		set_reason(u, "stopped; no mapping of ours to delete");
		set_state(u, S_CLOSED, now);
		return;
	case S_MAP:
		/* An add in flight may already have made a mapping on the router:
		 * wait (within stop_ms) for its answer, and delete what it grants. */
		if (u->req_stage == R_INFLIGHT) {
			u->stop_await_add = true;
			set_state(u, S_STOPPING, now);
			return;
		}
		set_reason(u, "stopped");
		set_state(u, S_CLOSED, now);
		return;
	default:
		set_reason(u, "stopped");
		set_state(u, S_CLOSED, now);
		return;
	}
}

uint64_t nb_upnp_deadline(const struct nb_upnp *u)
{
	uint64_t d = UINT64_MAX;

	if (u->n_cancel > 0)
		return u->now;
	switch (u->state) {
	case S_IDLE:
	case S_FAILED:
	case S_CLOSED:
		return UINT64_MAX;
	case S_DISCOVER:
		return u->ssdp_left > 0 ? u->now : min_u64(u->ssdp_next, u->discover_end);
	default:
		break;
	}
	if (u->req_stage == R_QUEUED)
		return u->now;
	if (u->req_stage == R_INFLIGHT)
		d = u->req_deadline;
	if (u->state == S_STOPPING)
		d = min_u64(d, u->stop_end);
	if (u->state == S_MAPPED && u->req_stage == R_NONE)
		d = min_u64(u->renew_at, u->check_at);
	return d;
}

int nb_upnp_event(struct nb_upnp *u, struct nb_upnp_event *ev)
{
	if (u->ev_len == 0)
		return 0;
	*ev = u->ev[u->ev_head];
	u->ev_head = (uint8_t)((u->ev_head + 1u) % NB_UPNP_EVENTS);
	u->ev_len--;
	return 1;
}

const struct nb_upnp_info *nb_upnp_info(const struct nb_upnp *u)
{
	return &u->info;
}

bool nb_upnp_closed(const struct nb_upnp *u)
{
	return u->state == S_CLOSED;
}
