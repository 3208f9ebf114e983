/* peer/portmap/pmp.c - the NAT-PMP and PCP client state machine. Pure; see pmp.h. */
#include "peer/portmap/pmp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "peer/portmap/extip.h"

#define LOG "pmp"

/*   IDLE -> PROBE -> (MAP) -> MAPPED -> STOPPING -> CLOSED
 *             \        \        |  (renew, check, re-add stay in MAPPED)
 *              `--------`-------`-> FAILED
 *                               `-> UNMAP (UNUSABLE, deleting) -> FAILED */
enum { S_IDLE = 0, S_PROBE, S_MAP, S_MAPPED, S_UNMAP, S_FAILED, S_STOPPING, S_CLOSED };

/* What an exchange asks. */
enum { W_NONE = 0, W_PCP_MAP, W_PCP_ANNOUNCE, W_PCP_DELETE, W_NATPMP_EXT, W_NATPMP_MAP, W_NATPMP_DELETE };

/* How the current map request started. */
enum { EP_INITIAL = 0, EP_RENEW, EP_READD };

#define X_PCP 0
#define X_NATPMP 1
/* RFC 6887 §8.1.1: MRT, the cap on the retransmission interval. */
#define PCP_MRT_MS 1024000u
/* A transient error or silence while mapped: try again this soon (at most). */
#define RETRY_MS 30000u

static const struct nb_pmp_params default_params = {
	.internal_port = 0,
	.tcp = false,
	.external_port = 0,
	.lease_s = 7200,
	.pcp = true,
	.natpmp = true,
	.first_rto_ms = 250,
	.probe_ms = 2000,
	.map_tries = 4,
	.check_s = 60,
	.stop_ms = 1000,
};

void nb_pmp_params_default(struct nb_pmp_params *p)
{
	*p = default_params;
}

const char *nb_pmp_proto_string(enum nb_pmp_proto p)
{
	switch (p) {
	case NB_PMP_PCP:
		return "pcp";
	case NB_PMP_NATPMP:
		return "nat-pmp";
	case NB_PMP_NONE:
		break;
	}
	return "";
}

static void set_reason(struct nb_pmp *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_reason(struct nb_pmp *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->info.reason, sizeof(m->info.reason), fmt, ap);
	va_end(ap);
}

static void push_event(struct nb_pmp *m, enum nb_pmp_event_kind kind, uint64_t now)
{
	uint8_t i;

	if (m->ev_len == NB_PMP_EVENTS) { /* drop the oldest */
		m->ev_head = (uint8_t)((m->ev_head + 1) % NB_PMP_EVENTS);
		m->ev_len--;
	}
	i = (uint8_t)((m->ev_head + m->ev_len) % NB_PMP_EVENTS);
	m->ev[i].kind = kind;
	m->ev[i].at = now;
	m->ev_len++;
}

/* splitmix64 */
static uint64_t rnd(struct nb_pmp *m)
{
	uint64_t z = (m->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t add_ms(uint64_t now, uint64_t ms)
{
	return now > UINT64_MAX - ms ? UINT64_MAX : now + ms;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Start exchange i: send now, then at the retransmission intervals, until
 * `max` sends (0: no count) or `until`. */
static void xstart(struct nb_pmp *m, int i, uint8_t what, uint8_t max, uint64_t until, uint64_t now)
{
	m->x[i].active = true;
	m->x[i].what = what;
	m->x[i].sent = 0;
	m->x[i].max = max;
	m->x[i].rto = m->p.first_rto_ms;
	m->x[i].next = now;
	m->x[i].until = until;
}

static void xstop(struct nb_pmp *m, int i)
{
	m->x[i].active = false;
	m->x[i].what = W_NONE;
}

static int xindex(enum nb_pmp_proto p)
{
	return p == NB_PMP_PCP ? X_PCP : X_NATPMP;
}

static void fail(struct nb_pmp *m, enum nb_pmp_status st, uint64_t now)
{
	xstop(m, X_PCP);
	xstop(m, X_NATPMP);
	m->held = false;
	m->state = S_FAILED;
	m->info.status = st;
	nb_log_debug(LOG, "%s", m->info.reason); /* the shell reports it */
	push_event(m, NB_PMP_EV_FAILED, now);
}

static void close_now(struct nb_pmp *m, uint64_t now)
{
	xstop(m, X_PCP);
	xstop(m, X_NATPMP);
	m->state = S_CLOSED;
	m->info.status = NB_PMP_CLOSED;
	push_event(m, NB_PMP_EV_CLOSED, now);
}

/* Delete the mapping we hold with the protocol that made it. */
static void start_delete(struct nb_pmp *m, int next_state, uint64_t now)
{
	int i = xindex(m->info.protocol);

	xstop(m, X_PCP);
	xstop(m, X_NATPMP);
	m->state = next_state;
	xstart(m, i, i == X_PCP ? W_PCP_DELETE : W_NATPMP_DELETE, 0, add_ms(now, m->p.stop_ms), now);
}

static void unusable(struct nb_pmp *m, uint64_t now)
{
	if (m->held) {
		m->info.status = NB_PMP_UNUSABLE;
		start_delete(m, S_UNMAP, now);
		return;
	}
	fail(m, NB_PMP_UNUSABLE, now);
}

static void start_natpmp_map(struct nb_pmp *m, int episode, uint64_t now)
{
	m->episode = (uint8_t)episode;
	if (m->state == S_PROBE)
		m->state = S_MAP;
	m->info.protocol = NB_PMP_NATPMP;
	xstop(m, X_PCP);
	xstart(m, X_NATPMP, W_NATPMP_MAP, m->p.map_tries, UINT64_MAX, now);
}

static void start_map(struct nb_pmp *m, int episode, uint64_t now)
{
	if (m->info.protocol == NB_PMP_PCP) {
		m->episode = (uint8_t)episode;
		xstart(m, X_PCP, W_PCP_MAP, m->p.map_tries, UINT64_MAX, now);
	} else {
		start_natpmp_map(m, episode, now);
	}
}

/* PROBE: both protocols out of the running, or one refused for good. */
static void probe_settle(struct nb_pmp *m, uint64_t now)
{
	char g[NB_ADDR_STRLEN];

	if (m->state != S_PROBE)
		return;
	if (m->natpmp_ready && (m->x[X_PCP].dead || !m->x[X_PCP].active)) {
		start_natpmp_map(m, EP_INITIAL, now);
		return;
	}
	if (!m->x[X_PCP].dead || !m->x[X_NATPMP].dead)
		return;
	if (m->info.reason[0] == '\0')
		set_reason(m, "no NAT-PMP or PCP answer from the gateway %s within %u ms",
			   nb_addr_format(&m->info.gateway, g, sizeof(g)), (unsigned)m->p.probe_ms);
	fail(m, m->probe_refused ? NB_PMP_REFUSED : NB_PMP_UNAVAILABLE, now);
}

static bool reflexive_mismatch(const struct nb_pmp *m, const struct nb_addr *ext)
{
	return m->reflexive.family != NB_AF_NONE && !nb_addr_ip_equal(ext, &m->reflexive);
}

static void set_mismatch_reason(struct nb_pmp *m, const struct nb_addr *ext)
{
	char a[NB_ADDR_STRLEN], b[NB_ADDR_STRLEN];

	set_reason(m, "the router's external address %s is not the address the broker sees (%s): double NAT?",
		   nb_addr_format_ip(ext, a, sizeof(a)), nb_addr_format_ip(&m->reflexive, b, sizeof(b)));
}

/* The router granted `ext` for `lifetime` seconds. */
static void granted(struct nb_pmp *m, enum nb_pmp_proto proto, const struct nb_addr *ext, uint32_t lifetime,
		    uint64_t now)
{
	const char *why;
	char a[NB_ADDR_STRLEN];
	bool first = m->info.status != NB_PMP_MAPPED;
	bool same = !first && nb_addr_equal(ext, &m->info.external);

	xstop(m, xindex(proto));
	m->info.protocol = proto;
	m->held = true;
	m->info.external = *ext;
	m->info.lease_s = lifetime;
	m->want_port = ext->port;
	if (lifetime < 2)
		lifetime = 2;
	m->expire_at = add_ms(now, (uint64_t)lifetime * 1000);
	m->renew_at = add_ms(now, (uint64_t)lifetime * 500);
	m->check_at = add_ms(now, (uint64_t)m->p.check_s * 1000);
	m->retry_at = 0;
	why = nb_extip_useless(ext);
	if (why != NULL) {
		set_reason(m, "the router's external address %s is %s", nb_addr_format_ip(ext, a, sizeof(a)), why);
		unusable(m, now);
		return;
	}
	if (reflexive_mismatch(m, ext)) {
		set_mismatch_reason(m, ext);
		unusable(m, now);
		return;
	}
	m->state = S_MAPPED;
	m->info.status = NB_PMP_MAPPED;
	m->info.reason[0] = '\0';
	if (first) {
		m->info.mapped_at = now;
		push_event(m, NB_PMP_EV_MAPPED, now);
		return;
	}
	if (m->episode == EP_READD) {
		m->info.readds++;
		push_event(m, same ? NB_PMP_EV_READDED : NB_PMP_EV_MAPPED, now);
	} else {
		m->info.renewals++;
		push_event(m, same ? NB_PMP_EV_RENEWED : NB_PMP_EV_MAPPED, now);
	}
}

/* The router's epoch `e`, received now. False: it went back (the router
 * lost its state), by RFC 6886 §3.6 or RFC 6887 §8.5. */
static bool epoch_ok(struct nb_pmp *m, enum nb_pmp_proto proto, uint32_t e, uint64_t now)
{
	bool ok = true;

	if (m->have_epoch) {
		uint64_t client = (now - m->epoch_seen) / 1000;
		uint64_t last = m->epoch_at_s;

		if (proto == NB_PMP_NATPMP) {
			uint64_t expect = last + client * 7 / 8;

			ok = (uint64_t)e + 2 >= expect;
		} else if ((uint64_t)e + 1 < last) {
			ok = false;
		} else {
			uint64_t server = e >= last ? e - last : 0;

			ok = !(client + 2 < server - server / 16 || server + 2 < client - client / 16);
		}
	}
	m->have_epoch = true;
	m->epoch_at_s = e;
	m->epoch_seen = now;
	m->info.epoch = e;
	return ok;
}

/* While MAPPED: the epoch says the router restarted: map again. */
static void epoch_reset(struct nb_pmp *m, uint64_t now)
{
	nb_log_info(LOG, "the router's epoch went back: it restarted; mapping again");
	start_map(m, EP_READD, now);
}

/* A refusal while mapped (renewal, re-add). */
static void mapped_refused(struct nb_pmp *m, bool transient, uint32_t err_lifetime, uint64_t now)
{
	if (transient && now < m->expire_at) {
		uint64_t wait = err_lifetime != 0 ? (uint64_t)err_lifetime * 1000 : RETRY_MS;

		m->retry_at = add_ms(now, min_u64(wait, RETRY_MS));
		nb_log_info(LOG, "%s; trying again in %llu s", m->info.reason,
			    (unsigned long long)((m->retry_at - now) / 1000));
		m->info.reason[0] = '\0';
		return;
	}
	m->held = false; /* the router says it is not ours */
	fail(m, NB_PMP_REFUSED, now);
}

/* The gateway answered something we asked: the first time, say so. */
static void heard(struct nb_pmp *m, enum nb_pmp_proto proto, uint64_t now)
{
	if (m->answered)
		return;
	m->answered = true;
	if (m->info.protocol == NB_PMP_NONE)
		m->info.protocol = proto;
	push_event(m, NB_PMP_EV_ANSWERED, now);
}

/* PROBE: UNSUPP_VERSION took exchange i's protocol out; the gateway speaks
 * `speaks`. Anywhere else the answer is ignored. */
static void version_out(struct nb_pmp *m, int i, enum nb_pmp_proto speaks, const char *why, uint64_t now)
{
	if (!m->x[i].active || m->state != S_PROBE) {
		m->info.ignored++;
		return;
	}
	heard(m, speaks, now);
	nb_log_info(LOG, "%s", why);
	xstop(m, i);
	m->x[i].dead = true;
	probe_settle(m, now);
}

static void natpmp_refusal_reason(struct nb_pmp *m, const struct nb_natpmp_response *r)
{
	set_reason(m, "the router refused the mapping over NAT-PMP: %s (result %u)",
		   nb_natpmp_result_string(r->result), (unsigned)r->result);
}

static void on_natpmp(struct nb_pmp *m, const struct nb_natpmp_response *r, uint64_t now)
{
	struct nb_addr ext;

	if (r->result == NB_NATPMP_UNSUPP_VERSION) {
		/* Our NAT-PMP requests are version 0: this is about PCP's. */
		version_out(m, X_PCP, NB_PMP_NATPMP, "the gateway speaks NAT-PMP, not PCP", now);
		return;
	}
	if (r->op == NB_NATPMP_OP_EXTADDR) {
		if (!m->x[X_NATPMP].active || m->x[X_NATPMP].what != W_NATPMP_EXT) {
			m->info.ignored++;
			return;
		}
		heard(m, NB_PMP_NATPMP, now);
		xstop(m, X_NATPMP);
		if (r->result != NB_NATPMP_SUCCESS || !r->full) {
			if (m->state == S_PROBE) {
				natpmp_refusal_reason(m, r);
				m->probe_refused = true;
				m->x[X_NATPMP].dead = true;
				probe_settle(m, now);
			}
			return;
		}
		if (!epoch_ok(m, NB_PMP_NATPMP, r->epoch, now) && m->state == S_MAPPED &&
		    m->info.protocol == NB_PMP_NATPMP) {
			m->natpmp_ext = r->external;
			epoch_reset(m, now);
			return;
		}
		m->natpmp_ext = r->external;
		if (m->state == S_PROBE) {
			m->natpmp_ready = true;
			if (m->x[X_PCP].active)
				m->pcp_grace = add_ms(now, m->p.first_rto_ms); /* PCP is preferred: a moment more */
			probe_settle(m, now);
			return;
		}
		if (m->state == S_MAPPED && !nb_addr_ip_equal(&r->external, &m->info.external)) {
			ext = r->external;
			ext.port = m->info.external.port;
			m->episode = EP_RENEW;
			granted(m, NB_PMP_NATPMP, &ext, m->info.lease_s, now);
		}
		return;
	}
	/* a MAP answer: ours only */
	if (!m->x[X_NATPMP].active ||
	    (m->x[X_NATPMP].what != W_NATPMP_MAP && m->x[X_NATPMP].what != W_NATPMP_DELETE) ||
	    r->op != (m->p.tcp ? NB_NATPMP_OP_MAP_TCP : NB_NATPMP_OP_MAP_UDP) ||
	    (r->full && r->internal_port != m->p.internal_port)) {
		m->info.ignored++;
		return;
	}
	if (m->x[X_NATPMP].what == W_NATPMP_DELETE && r->full && r->lifetime != 0) {
		m->info.ignored++; /* a late answer to a MAP, not to the delete */
		return;
	}
	heard(m, NB_PMP_NATPMP, now);
	(void)epoch_ok(m, NB_PMP_NATPMP, r->epoch, now);
	if (m->x[X_NATPMP].what == W_NATPMP_DELETE) {
		xstop(m, X_NATPMP);
		m->held = false;
		if (m->state == S_UNMAP)
			fail(m, NB_PMP_UNUSABLE, now);
		else
			close_now(m, now);
		return;
	}
	if (r->result != NB_NATPMP_SUCCESS || !r->full) {
		xstop(m, X_NATPMP);
		natpmp_refusal_reason(m, r);
		if (m->state == S_MAPPED) {
			mapped_refused(m, r->result == NB_NATPMP_NETWORK_FAILURE || r->result == NB_NATPMP_NO_RESOURCES, 0,
				       now);
			return;
		}
		fail(m, NB_PMP_REFUSED, now);
		return;
	}
	if (r->lifetime == 0) { /* a zero lifetime grants nothing */
		xstop(m, X_NATPMP);
		set_reason(m, "the router answered the NAT-PMP mapping with a zero lifetime");
		m->held = false;
		fail(m, NB_PMP_REFUSED, now);
		return;
	}
	ext = m->natpmp_ext;
	ext.port = r->external_port;
	granted(m, NB_PMP_NATPMP, &ext, r->lifetime, now);
}

static void on_pcp(struct nb_pmp *m, const struct nb_pcp_response *r, uint64_t now)
{
	uint8_t want_proto = m->p.tcp ? NB_PCP_PROTO_TCP : NB_PCP_PROTO_UDP;
	uint8_t what = m->x[X_PCP].what;
	struct nb_addr ext;

	if (r->result == NB_PCP_UNSUPP_VERSION) {
		if (r->version >= NB_PCP_VERSION) /* a PCP-only server answering our NAT-PMP request */
			version_out(m, X_NATPMP, NB_PMP_PCP, "the gateway speaks PCP, not NAT-PMP", now);
		else /* another PCP version than ours */
			version_out(m, X_PCP, NB_PMP_NATPMP, "the gateway speaks another PCP version", now);
		return;
	}
	if (r->opcode == NB_PCP_OP_ANNOUNCE) {
		if (!m->x[X_PCP].active || what != W_PCP_ANNOUNCE) {
			m->info.ignored++;
			return;
		}
		heard(m, NB_PMP_PCP, now);
		xstop(m, X_PCP);
		if (r->result == NB_PCP_SUCCESS && !epoch_ok(m, NB_PMP_PCP, r->epoch, now) && m->state == S_MAPPED)
			epoch_reset(m, now);
		return;
	}
	if (r->opcode != NB_PCP_OP_MAP || !m->x[X_PCP].active || (what != W_PCP_MAP && what != W_PCP_DELETE)) {
		m->info.ignored++;
		return;
	}
	if (r->has_map && (memcmp(r->map.nonce, m->nonce, NB_PCP_NONCE_LEN) != 0 || r->map.protocol != want_proto ||
			   r->map.internal_port != m->p.internal_port)) {
		m->info.ignored++;
		return;
	}
	/* An external address of the other family (NAT46/NAT64, or a forged
	 * answer) is no mapping of ours: we asked for our own family. */
	if (r->has_map && r->map.external_ip.family != NB_AF_NONE && r->map.external_ip.family != m->client.family) {
		m->info.ignored++;
		return;
	}
	if (!r->has_map && r->result == NB_PCP_SUCCESS) {
		m->info.ignored++;
		return;
	}
	if (what == W_PCP_DELETE && r->result == NB_PCP_SUCCESS && r->lifetime != 0) {
		m->info.ignored++; /* a late answer to a MAP, not to the delete */
		return;
	}
	heard(m, NB_PMP_PCP, now);
	if (r->result == NB_PCP_SUCCESS || r->has_map)
		(void)epoch_ok(m, NB_PMP_PCP, r->epoch, now);
	if (what == W_PCP_DELETE) {
		xstop(m, X_PCP);
		m->held = false;
		if (m->state == S_UNMAP)
			fail(m, NB_PMP_UNUSABLE, now);
		else
			close_now(m, now);
		return;
	}
	if (r->result != NB_PCP_SUCCESS) {
		xstop(m, X_PCP);
		set_reason(m, "the router refused the mapping over PCP: %s (result %u)",
			   nb_pcp_result_string(r->result), (unsigned)r->result);
		if (m->state == S_MAPPED && r->result == NB_PCP_ADDRESS_MISMATCH) {
			set_reason(m, "the router sees this host at another address (PCP ADDRESS_MISMATCH): "
				      "a NAT between this host and the router");
			m->held = false;
			fail(m, NB_PMP_UNUSABLE, now);
			return;
		}
		if (m->state == S_MAPPED) {
			mapped_refused(m, nb_pcp_result_is_transient(r->result), r->lifetime, now);
			return;
		}
		switch (r->result) {
		case NB_PCP_ADDRESS_MISMATCH:
			set_reason(m, "the router sees this host at another address (PCP ADDRESS_MISMATCH): "
				      "a NAT between this host and the router");
			xstop(m, X_NATPMP);
			fail(m, NB_PMP_UNUSABLE, now);
			return;
		case NB_PCP_UNSUPP_OPCODE:
		case NB_PCP_MALFORMED_REQUEST:
		case NB_PCP_UNSUPP_PROTOCOL:
			/* the router's PCP cannot do this; NAT-PMP may */
			if (m->state != S_PROBE)
				break;
			m->x[X_PCP].dead = true;
			m->probe_refused = true;
			probe_settle(m, now);
			return;
		default:
			break;
		}
		fail(m, NB_PMP_REFUSED, now);
		return;
	}
	if (r->lifetime == 0) {
		xstop(m, X_PCP);
		set_reason(m, "the router answered the PCP mapping with a zero lifetime");
		m->held = false;
		fail(m, NB_PMP_REFUSED, now);
		return;
	}
	if (m->state == S_PROBE)
		xstop(m, X_NATPMP); /* PCP is preferred */
	ext = r->map.external_ip;
	ext.port = r->map.external_port;
	granted(m, NB_PMP_PCP, &ext, r->lifetime, now);
}

void nb_pmp_init(struct nb_pmp *m, const struct nb_pmp_params *p, const struct nb_addr *gateway,
		 const struct nb_addr *client, const uint8_t nonce[NB_PCP_NONCE_LEN], uint64_t now)
{
	memset(m, 0, sizeof(*m));
	m->p = *p;
	if (m->p.first_rto_ms == 0)
		m->p.first_rto_ms = default_params.first_rto_ms;
	if (m->p.map_tries == 0)
		m->p.map_tries = default_params.map_tries;
	if (m->p.check_s == 0)
		m->p.check_s = default_params.check_s;
	if (m->p.lease_s == 0)
		m->p.lease_s = default_params.lease_s;
	if (m->p.probe_ms == 0)
		m->p.probe_ms = default_params.probe_ms;
	if (m->p.stop_ms == 0)
		m->p.stop_ms = default_params.stop_ms;
	m->info.gateway = *gateway;
	m->info.gateway.port = NB_NATPMP_PORT;
	m->client = *client;
	memcpy(m->nonce, nonce, NB_PCP_NONCE_LEN);
	for (int i = 0; i < NB_PCP_NONCE_LEN; i++)
		m->rng = (m->rng << 8 | m->rng >> 56) ^ nonce[i];
	m->want_port = p->external_port != 0 ? p->external_port : p->internal_port;
	m->now = now;
	m->x[X_PCP].dead = !p->pcp;
	/* NAT-PMP is IPv4-only (RFC 6886): over IPv6 only PCP is asked */
	m->x[X_NATPMP].dead = !p->natpmp || client->family == NB_AF_INET6;
}

void nb_pmp_start(struct nb_pmp *m, uint64_t now)
{
	if (m->state != S_IDLE)
		return;
	m->now = now;
	m->state = S_PROBE;
	m->info.status = NB_PMP_WORKING;
	m->probe_end = add_ms(now, m->p.probe_ms);
	if (!m->x[X_PCP].dead)
		xstart(m, X_PCP, W_PCP_MAP, 0, m->probe_end, now);
	if (!m->x[X_NATPMP].dead)
		xstart(m, X_NATPMP, W_NATPMP_EXT, 0, m->probe_end, now);
	if (m->x[X_PCP].dead && m->x[X_NATPMP].dead) {
		set_reason(m, m->client.family == NB_AF_INET6 && m->p.natpmp
				      ? "PCP is not enabled, and NAT-PMP is IPv4-only"
				      : "neither NAT-PMP nor PCP is enabled");
		fail(m, NB_PMP_UNAVAILABLE, now);
	}
}

/* Exchange i ran out of sends or time. */
static void timed_out(struct nb_pmp *m, int i, uint64_t now)
{
	uint8_t what = m->x[i].what;
	char g[NB_ADDR_STRLEN];

	xstop(m, i);
	nb_addr_format(&m->info.gateway, g, sizeof(g));
	switch (m->state) {
	case S_PROBE:
		m->x[i].dead = true;
		probe_settle(m, now);
		break;
	case S_MAP:
		set_reason(m, "the gateway %s answered NAT-PMP but not the mapping request", g);
		fail(m, NB_PMP_UNAVAILABLE, now);
		break;
	case S_MAPPED:
		if (what == W_PCP_MAP || what == W_NATPMP_MAP) {
			m->retry_at = add_ms(now, RETRY_MS);
			nb_log_info(LOG, "the gateway %s did not answer the renewal; trying again", g);
		} /* a check that got no answer: the next one */
		break;
	case S_UNMAP:
		fail(m, NB_PMP_UNUSABLE, now);
		break;
	case S_STOPPING:
		set_reason(m, "the gateway %s did not answer the delete within %u ms", g, (unsigned)m->p.stop_ms);
		close_now(m, now);
		break;
	default:
		break;
	}
}

static void run_timers(struct nb_pmp *m, uint64_t now)
{
	char a[NB_ADDR_STRLEN];

	if (m->state == S_PROBE && m->pcp_grace != 0 && now >= m->pcp_grace && m->x[X_PCP].active) {
		xstop(m, X_PCP);
		m->x[X_PCP].dead = true;
		probe_settle(m, now);
	}
	for (int i = 0; i < 2; i++) {
		if (!m->x[i].active)
			continue;
		if (now >= m->x[i].until || (m->x[i].max != 0 && m->x[i].sent >= m->x[i].max && now >= m->x[i].next))
			timed_out(m, i, now);
	}
	if (m->state != S_MAPPED || m->x[xindex(m->info.protocol)].active)
		return;
	if (now >= m->expire_at) {
		set_reason(m, "the mapping %s expired: the router did not answer its renewal",
			   nb_addr_format(&m->info.external, a, sizeof(a)));
		m->held = false;
		fail(m, NB_PMP_UNAVAILABLE, now);
		return;
	}
	if (now >= m->renew_at || (m->retry_at != 0 && now >= m->retry_at)) {
		m->retry_at = 0;
		m->renew_at = UINT64_MAX; /* granted() sets the next; a failure sets retry_at */
		start_map(m, EP_RENEW, now);
		m->x[xindex(m->info.protocol)].until = m->expire_at;
		return;
	}
	if (now >= m->check_at) {
		m->check_at = add_ms(now, (uint64_t)m->p.check_s * 1000);
		if (m->info.protocol == NB_PMP_PCP)
			xstart(m, X_PCP, W_PCP_ANNOUNCE, 3, UINT64_MAX, now);
		else
			xstart(m, X_NATPMP, W_NATPMP_EXT, 3, UINT64_MAX, now);
	}
}

static size_t build(struct nb_pmp *m, uint8_t what)
{
	struct nb_pcp_map pm;

	memset(&pm, 0, sizeof(pm));
	memcpy(pm.nonce, m->nonce, sizeof(pm.nonce));
	pm.protocol = m->p.tcp ? NB_PCP_PROTO_TCP : NB_PCP_PROTO_UDP;
	pm.internal_port = m->p.internal_port;
	switch (what) {
	case W_PCP_MAP:
		pm.external_port = m->want_port;
		if (m->info.status == NB_PMP_MAPPED)
			pm.external_ip = m->info.external; /* renewal: the same address */
		else if (m->client.family == NB_AF_INET6)
			pm.external_ip = m->client; /* a firewall pinhole: our own address, no translation */
		pm.external_ip.port = 0;
		return nb_pcp_encode_map(m->buf, sizeof(m->buf), &m->client, m->p.lease_s, &pm);
	case W_PCP_DELETE:
		return nb_pcp_encode_map(m->buf, sizeof(m->buf), &m->client, 0, &pm);
	case W_PCP_ANNOUNCE:
		return nb_pcp_encode_announce(m->buf, sizeof(m->buf), &m->client);
	case W_NATPMP_EXT:
		return nb_natpmp_encode_extaddr(m->buf);
	case W_NATPMP_MAP:
		return nb_natpmp_encode_map(m->buf, m->p.tcp, m->p.internal_port, m->want_port, m->p.lease_s);
	case W_NATPMP_DELETE:
		return nb_natpmp_encode_map(m->buf, m->p.tcp, m->p.internal_port, 0, 0);
	default:
		return 0;
	}
}

int nb_pmp_poll(struct nb_pmp *m, uint64_t now, struct nb_pmp_out *out)
{
	if (now > m->now)
		m->now = now;
	run_timers(m, now);
	for (int i = 0; i < 2; i++) {
		uint64_t rt;
		size_t n;

		if (!m->x[i].active || now < m->x[i].next)
			continue;
		if (m->x[i].max != 0 && m->x[i].sent >= m->x[i].max)
			continue;
		n = build(m, m->x[i].what);
		if (n == 0) { /* cannot be asked: as if never answered */
			timed_out(m, i, now);
			continue;
		}
		m->x[i].sent++;
		rt = m->x[i].rto;
		if (i == X_PCP) /* RFC 6887 §8.1.1: RT = (1 + RAND) * RT, RAND in [-0.1, +0.1] */
			rt = rt * (900 + rnd(m) % 201) / 1000;
		m->x[i].next = add_ms(now, rt);
		m->x[i].rto = (uint32_t)min_u64((uint64_t)m->x[i].rto * 2, i == X_PCP ? PCP_MRT_MS : 64000);
		out->bytes = m->buf;
		out->len = n;
		out->to = m->info.gateway;
		return 1;
	}
	return 0;
}

int nb_pmp_input(struct nb_pmp *m, const uint8_t *buf, size_t len, const struct nb_addr *from, uint64_t now)
{
	uint32_t ignored = m->info.ignored;

	if (now > m->now)
		m->now = now;
	if (m->state == S_IDLE || m->state == S_CLOSED || m->state == S_FAILED || from == NULL ||
	    !nb_addr_equal(from, &m->info.gateway) || len == 0) {
		m->info.ignored++;
		return -EINVAL;
	}
	if (buf[0] == 0) {
		struct nb_natpmp_response r;

		if (nb_natpmp_decode(buf, len, &r) != 0) {
			m->info.ignored++;
			return -EINVAL;
		}
		on_natpmp(m, &r, now);
	} else {
		struct nb_pcp_response r;

		if (nb_pcp_decode(buf, len, &r) != 0) {
			m->info.ignored++;
			return -EINVAL;
		}
		on_pcp(m, &r, now);
	}
	return m->info.ignored != ignored ? -EINVAL : 0;
}

void nb_pmp_unreachable(struct nb_pmp *m, uint64_t now)
{
	char g[NB_ADDR_STRLEN];

	if (m->state != S_PROBE || m->answered)
		return;
	xstop(m, X_PCP);
	xstop(m, X_NATPMP);
	m->x[X_PCP].dead = m->x[X_NATPMP].dead = true;
	set_reason(m, "the gateway %s has no NAT-PMP or PCP (port unreachable)",
		   nb_addr_format(&m->info.gateway, g, sizeof(g)));
	probe_settle(m, now);
}

void nb_pmp_set_reflexive(struct nb_pmp *m, const struct nb_addr *reflexive, uint64_t now)
{
	if (reflexive == NULL || reflexive->family != m->client.family)
		return;
	m->reflexive = *reflexive;
	m->reflexive.port = 0;
	if (m->state == S_MAPPED && reflexive_mismatch(m, &m->info.external)) {
		set_mismatch_reason(m, &m->info.external);
		unusable(m, now);
	}
}

void nb_pmp_check_now(struct nb_pmp *m, uint64_t now)
{
	if (m->state != S_MAPPED)
		return;
	m->check_at = now;
	run_timers(m, now);
}

void nb_pmp_stop(struct nb_pmp *m, uint64_t now)
{
	switch (m->state) {
	case S_CLOSED:
	case S_STOPPING:
		return;
	case S_MAPPED:
	case S_UNMAP:
		if (m->held) {
			start_delete(m, S_STOPPING, now);
			return;
		}
		break;
	default:
		break;
	}
	close_now(m, now);
}

uint64_t nb_pmp_deadline(const struct nb_pmp *m)
{
	uint64_t d = UINT64_MAX;

	for (int i = 0; i < 2; i++) {
		if (!m->x[i].active)
			continue;
		d = min_u64(d, m->x[i].next);
		d = min_u64(d, m->x[i].until);
	}
	if (m->state == S_PROBE && m->pcp_grace != 0)
		d = min_u64(d, m->pcp_grace);
	if (m->state == S_MAPPED && !m->x[xindex(m->info.protocol)].active) {
		d = min_u64(d, m->expire_at);
		d = min_u64(d, m->renew_at);
		d = min_u64(d, m->check_at);
		if (m->retry_at != 0)
			d = min_u64(d, m->retry_at);
	}
	return d;
}

int nb_pmp_event(struct nb_pmp *m, struct nb_pmp_event *ev)
{
	if (m->ev_len == 0)
		return 0;
	*ev = m->ev[m->ev_head];
	m->ev_head = (uint8_t)((m->ev_head + 1) % NB_PMP_EVENTS);
	m->ev_len--;
	return 1;
}

const struct nb_pmp_info *nb_pmp_info(const struct nb_pmp *m)
{
	return &m->info;
}

bool nb_pmp_closed(const struct nb_pmp *m)
{
	return m->state == S_CLOSED;
}

bool nb_pmp_answered(const struct nb_pmp *m)
{
	return m->answered;
}
