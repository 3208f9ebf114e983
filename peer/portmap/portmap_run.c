/* peer/portmap/portmap_run.c - a port mapping, end to end: PCP, NAT-PMP and
 * UPnP raced (pick.h decides), then the broker's probe. */
#include "peer/portmap/portmap_run.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/time.h"
#include "peer/portmap/pick.h"
#include "peer/portmap/pmp_run.h"
#include "peer/portmap/upnp_run.h"

#define LOG "portmap"

enum { C_NONE = 0, C_PMP, C_UPNP };

struct nb_portmap {
	struct nb_portmap_opts o;
	struct nb_upnp_run *upnp;  /* NULL: not asked, or stopped */
	struct nb_pmp_run *pmp;    /* NULL: not asked, or stopped */
	bool upnp_on, pmp_on;      /* asked at start */
	bool upnp_deferred;        /* UPnP waits to start while NAT-PMP/PCP may map */
	uint64_t hold_until;       /* ... at most until then if they have not answered */
	struct nb_upnp_params upnp_p;
	uv_loop_t *loop;
	int chosen;                /* C_* */
	uv_timer_t timer;          /* pick's wake-up */
	int open;                  /* runs and the timer not yet closed */
	nb_portmap_fn cb;
	void *arg;
	enum nb_portmap_state state;
	uint64_t started;
	uint64_t done_at; /* when a final state was first reached; 0 = not yet */
	bool gateway_seen;
	bool have_reflexive;
	bool no_reflexive; /* the NAT tests ended without one: nothing can be verified */
	bool verify_pending;
	bool stopping;
	struct nb_addr reflexive;
	struct nb_addr verified_ext; /* the external address the proof is for */
	char proof[NB_CTRL_PROOF_LEN + 1];
	char reason[480]; /* room for two protocols' reasons */
	char upnp_fail[200], pmp_fail[200];
	enum nb_upnp_status upnp_status; /* the last seen; kept after the run stops */
	enum nb_pmp_status pmp_status;
	bool pmp_answered;
	void (*closed)(void *arg);
	void *closed_arg;
};

static void progress(const struct nb_portmap *pm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(const struct nb_portmap *pm, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (pm->o.quiet || pm->o.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pm->o.log(pm->o.log_arg, line);
}

/* What a failure leaves the caller with, for the progress line. */
static const char *fallback(const struct nb_portmap *pm)
{
	return pm->o.no_fallback ? "" : "; using hole punching";
}

static const char *proto_word(const struct nb_portmap *pm)
{
	if (pm->chosen == C_UPNP)
		return "upnp";
	if (pm->chosen == C_PMP && pm->pmp != NULL)
		return nb_pmp_proto_string(nb_pmp_run_info(pm->pmp)->protocol);
	return "";
}

static const char *transport(const struct nb_portmap *pm)
{
	return pm->o.tcp ? "TCP" : "UDP";
}

static void set_state(struct nb_portmap *pm, enum nb_portmap_state s)
{
	if (pm->state == s)
		return;
	nb_log_debug(LOG, "%s -> %s", nb_portmap_status_word(pm->state), nb_portmap_status_word(s));
	pm->state = s;
	if (s != NB_PM_WORKING && s != NB_PM_VERIFYING && pm->done_at == 0)
		pm->done_at = nb_now_ms();
	if (pm->cb != NULL)
		pm->cb(pm, true, pm->arg);
}

/* The chosen mapping, if the router granted one. */
static bool chosen_external(const struct nb_portmap *pm, struct nb_addr *ext)
{
	if (pm->chosen == C_UPNP && pm->upnp != NULL && nb_upnp_run_info(pm->upnp)->status == NB_UPNP_MAPPED) {
		*ext = nb_upnp_run_info(pm->upnp)->external;
		return true;
	}
	if (pm->chosen == C_PMP && pm->pmp != NULL && nb_pmp_run_info(pm->pmp)->status == NB_PMP_MAPPED) {
		*ext = nb_pmp_run_info(pm->pmp)->external;
		return true;
	}
	return false;
}

/* Ask the broker to probe the mapping, once both it and the reflexive IP are known. */
static void verify(struct nb_portmap *pm, uint64_t now)
{
	struct nb_addr ext;
	char why[160];
	int rc;

	if (!chosen_external(pm, &ext))
		return;
	if (pm->no_reflexive) {
		snprintf(pm->reason, sizeof(pm->reason), "the broker never answered, so it cannot probe the mapping");
		set_state(pm, NB_PM_UNVERIFIED);
		return;
	}
	if (!pm->have_reflexive)
		return; /* asked once the reflexive address is known */
	if (pm->reflexive.family != ext.family) {
		snprintf(pm->reason, sizeof(pm->reason), "the broker is reached over IPv%c; an IPv%c port mapping cannot be probed",
			 pm->reflexive.family == NB_AF_INET6 ? '6' : '4', ext.family == NB_AF_INET6 ? '6' : '4');
		set_state(pm, NB_PM_UNVERIFIED);
		return;
	}
	if (!nb_addr_ip_equal(&ext, &pm->reflexive))
		return; /* the protocol's machine calls it unusable itself */
	why[0] = '\0';
	rc = pm->o.verify(pm->o.verify_arg, &ext, now, why, sizeof(why));
	if (rc == -EBUSY)
		return; /* one in flight; its answer is for an older address: asked again then */
	if (rc != 0) {
		snprintf(pm->reason, sizeof(pm->reason), "%s", why[0] ? why : "could not ask the broker to probe the mapping");
		progress(pm, "%s: %s", proto_word(pm), pm->reason);
		set_state(pm, NB_PM_UNVERIFIED);
		return;
	}
	pm->verify_pending = true;
	pm->verified_ext = ext;
	pm->proof[0] = '\0';
	set_state(pm, NB_PM_VERIFYING);
}

static void ask_verify(struct nb_portmap *pm, uint64_t now)
{
	struct nb_addr ext;
	char b[NB_ADDR_STRLEN];

	set_state(pm, NB_PM_VERIFYING);
	if (chosen_external(pm, &ext) && pm->have_reflexive && pm->reflexive.family == ext.family &&
	    nb_addr_ip_equal(&ext, &pm->reflexive))
		progress(pm, "%s: asking the broker to probe %s...", proto_word(pm), nb_addr_format(&ext, b, sizeof(b)));
	verify(pm, now);
}

static void on_pmp_closed(void *arg);
static void on_upnp_closed(void *arg);

/* Both failed: one status and one reason for the two. */
static void fail_all(struct nb_portmap *pm)
{
	bool refused = pm->upnp_status == NB_UPNP_REFUSED || pm->pmp_status == NB_PMP_REFUSED;
	bool unusable = pm->upnp_status == NB_UPNP_UNUSABLE || pm->pmp_status == NB_PMP_UNUSABLE;

	if (pm->pmp_on && pm->upnp_on)
		snprintf(pm->reason, sizeof(pm->reason), "NAT-PMP/PCP: %s; UPnP: %s", pm->pmp_fail, pm->upnp_fail);
	else
		snprintf(pm->reason, sizeof(pm->reason), "%s", pm->pmp_on ? pm->pmp_fail : pm->upnp_fail);
	progress(pm, "portmap: %s%s", pm->reason, fallback(pm));
	set_state(pm, refused ? NB_PM_REFUSED : unusable ? NB_PM_UNUSABLE : NB_PM_UNAVAILABLE);
}

static void on_timer(uv_timer_t *t);

static void on_upnp(struct nb_upnp_run *r, const struct nb_upnp_event *ev, const struct nb_upnp_info *in,
		    void *arg);

/* UPnP starts only once the preferred NAT-PMP/PCP cannot map: they failed,
 * or were silent for the first HOLD_MS. Routers answer them on a LAN within
 * a few milliseconds; a router busy with a burst of M-SEARCHes answers them
 * late (miniupnpd: by up to 200 ms), and libcurl (some 30 ms to load) is
 * never loaded when they map. */
#define HOLD_MS 25

static void update_hold(struct nb_portmap *pm, uint64_t now)
{
	bool busy = pm->pmp_status == NB_PMP_IDLE || pm->pmp_status == NB_PMP_WORKING;
	int rc;

	if (!pm->upnp_deferred || pm->stopping)
		return;
	if (busy && (pm->pmp_answered || now < pm->hold_until))
		return;
	pm->upnp_deferred = false;
	nb_log_debug(LOG, "UPnP starts");
	rc = nb_upnp_run_open(&pm->upnp, pm->loop, &pm->upnp_p, on_upnp, pm);
	if (rc != 0) {
		snprintf(pm->upnp_fail, sizeof(pm->upnp_fail), "cannot start: %s", uv_strerror(rc));
		pm->upnp_status = NB_UPNP_UNAVAILABLE;
		return;
	}
	pm->open++;
}

/* Choose between the runs, once pick.h can. */
static void decide(struct nb_portmap *pm, uint64_t now)
{
	struct nb_pick_in in = {
		.pmp_on = pm->pmp_on, .upnp_on = pm->upnp_on, .pmp = pm->pmp_status,
		.pmp_answered = pm->pmp_answered, .upnp = pm->upnp_status, .started = pm->started,
		.grace_ms = 0, /* UPnP mapped before NAT-PMP/PCP said a word: keep UPnP */
	};
	uint64_t wake;
	enum nb_pick p;

	if (pm->chosen != C_NONE || pm->stopping || pm->state != NB_PM_WORKING)
		return;
	update_hold(pm, now);
	p = nb_portmap_pick(&in, now, &wake);
	switch (p) {
	case NB_PICK_WAIT:
		if (pm->upnp_deferred && !pm->pmp_answered && pm->hold_until < wake)
			wake = pm->hold_until;
		if (wake != UINT64_MAX)
			uv_timer_start(&pm->timer, on_timer, wake > now ? wake - now : 1, 0);
		return;
	case NB_PICK_NONE:
		fail_all(pm);
		return;
	case NB_PICK_PMP:
		pm->chosen = C_PMP;
		pm->upnp_deferred = false; /* never started */
		if (pm->upnp != NULL) {
			struct nb_upnp_run *u = pm->upnp;

			pm->upnp = NULL;
			nb_upnp_run_stop(u, on_upnp_closed, pm); /* deletes a UPnP mapping it made */
		}
		break;
	case NB_PICK_UPNP:
		pm->chosen = C_UPNP;
		if (pm->pmp != NULL) {
			struct nb_pmp_run *r = pm->pmp;

			pm->pmp = NULL;
			nb_pmp_run_stop(r, on_pmp_closed, pm);
		}
		break;
	}
	uv_timer_stop(&pm->timer);
	ask_verify(pm, now);
}

static void on_timer(uv_timer_t *t)
{
	decide(t->data, nb_now_ms());
}

static void mapped_line(struct nb_portmap *pm, const char *proto, const char *what, const struct nb_addr *ext,
			uint32_t lease)
{
	char b[NB_ADDR_STRLEN];

	progress(pm, "%s: %s %s %u -> %s (lease %u s)", proto, what, transport(pm), (unsigned)pm->o.internal_port,
		 nb_addr_format(ext, b, sizeof(b)), (unsigned)lease);
}

/* The chosen protocol's mapping failed (refused on renewal, unusable, lost). */
static void chosen_failed(struct nb_portmap *pm, const char *proto, const char *why, enum nb_portmap_state s)
{
	snprintf(pm->reason, sizeof(pm->reason), "%s", why);
	progress(pm, "%s: %s%s", proto, why, fallback(pm));
	set_state(pm, s);
}

static void on_upnp(struct nb_upnp_run *r, const struct nb_upnp_event *ev, const struct nb_upnp_info *in,
		    void *arg)
{
	struct nb_portmap *pm = arg;
	char a[NB_ADDR_STRLEN];
	uint64_t now = nb_now_ms();

	(void)r;
	if (ev->kind == NB_UPNP_EV_MAPPED || ev->kind == NB_UPNP_EV_READDED || ev->kind == NB_UPNP_EV_FAILED)
		pm->upnp_status = in->status; /* events in order: the status as of this one */
	switch (ev->kind) {
	case NB_UPNP_EV_GATEWAY:
		pm->gateway_seen = true;
		progress(pm, "upnp: found %s at %s", in->server[0] ? in->server : "a gateway",
			 nb_addr_format(&in->gateway, a, sizeof(a)));
		break;
	case NB_UPNP_EV_DESCRIBED:
		nb_log_debug(LOG, "%s: %s, control %s", in->igd.friendly_name, in->igd.service_type,
			     in->igd.control.path);
		break;
	case NB_UPNP_EV_EXTERNAL_IP:
		nb_log_debug(LOG, "external IP %s", nb_addr_format(&in->external, a, sizeof(a)));
		break;
	case NB_UPNP_EV_MAPPED:
	case NB_UPNP_EV_READDED:
		mapped_line(pm, "upnp", ev->kind == NB_UPNP_EV_MAPPED ? "mapped" : "mapping was gone; mapped again",
			    &in->external, in->lease_s);
		if (pm->chosen == C_UPNP)
			ask_verify(pm, now);
		else
			decide(pm, now);
		break;
	case NB_UPNP_EV_RENEWED:
		nb_log_info(LOG, "mapping renewed: %s (lease %u s)", nb_addr_format(&in->external, a, sizeof(a)),
			    (unsigned)in->lease_s);
		if (pm->chosen == C_UPNP && pm->cb != NULL)
			pm->cb(pm, false, pm->arg);
		break;
	case NB_UPNP_EV_FAILED:
		snprintf(pm->upnp_fail, sizeof(pm->upnp_fail), "%s", in->reason);
		if (pm->chosen == C_UPNP)
			chosen_failed(pm, "upnp", in->reason,
				      in->status == NB_UPNP_REFUSED   ? NB_PM_REFUSED
				      : in->status == NB_UPNP_UNUSABLE ? NB_PM_UNUSABLE
								       : NB_PM_UNAVAILABLE);
		else
			decide(pm, now);
		break;
	case NB_UPNP_EV_CLOSED:
		break;
	}
}

static void on_pmp(struct nb_pmp_run *r, const struct nb_pmp_event *ev, const struct nb_pmp_info *in, void *arg)
{
	struct nb_portmap *pm = arg;
	const char *proto = nb_pmp_proto_string(in->protocol);
	char a[NB_ADDR_STRLEN];
	uint64_t now = nb_now_ms();

	(void)r;
	if (ev->kind == NB_PMP_EV_MAPPED || ev->kind == NB_PMP_EV_READDED || ev->kind == NB_PMP_EV_FAILED)
		pm->pmp_status = in->status; /* events in order: the status as of this one */
	switch (ev->kind) {
	case NB_PMP_EV_ANSWERED:
		pm->gateway_seen = true;
		pm->pmp_answered = true;
		progress(pm, "%s: the gateway %s answers", proto, nb_addr_format(&in->gateway, a, sizeof(a)));
		decide(pm, now);
		break;
	case NB_PMP_EV_MAPPED:
	case NB_PMP_EV_READDED:
		mapped_line(pm, proto, ev->kind == NB_PMP_EV_MAPPED ? "mapped" : "the router restarted; mapped again",
			    &in->external, in->lease_s);
		if (pm->chosen == C_PMP)
			ask_verify(pm, now);
		else
			decide(pm, now);
		break;
	case NB_PMP_EV_RENEWED:
		nb_log_info(LOG, "%s mapping renewed: %s (lease %u s)", proto,
			    nb_addr_format(&in->external, a, sizeof(a)), (unsigned)in->lease_s);
		if (pm->chosen == C_PMP && pm->cb != NULL)
			pm->cb(pm, false, pm->arg);
		break;
	case NB_PMP_EV_FAILED:
		snprintf(pm->pmp_fail, sizeof(pm->pmp_fail), "%s", in->reason);
		if (pm->chosen == C_PMP)
			chosen_failed(pm, proto[0] ? proto : "nat-pmp", in->reason,
				      in->status == NB_PMP_REFUSED   ? NB_PM_REFUSED
				      : in->status == NB_PMP_UNUSABLE ? NB_PM_UNUSABLE
								      : NB_PM_UNAVAILABLE);
		else
			decide(pm, now);
		break;
	case NB_PMP_EV_CLOSED:
		break;
	}
}

static void maybe_free(struct nb_portmap *pm)
{
	void (*closed)(void *);
	void *closed_arg;

	if (pm->open > 0)
		return;
	closed = pm->closed;
	closed_arg = pm->closed_arg;
	free(pm);
	if (closed != NULL)
		closed(closed_arg);
}

static void on_pmp_closed(void *arg)
{
	struct nb_portmap *pm = arg;

	pm->open--;
	maybe_free(pm);
}

static void on_upnp_closed(void *arg)
{
	struct nb_portmap *pm = arg;

	pm->open--;
	maybe_free(pm);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct nb_portmap *pm = h->data;

	pm->open--;
	maybe_free(pm);
}

int nb_portmap_open(struct nb_portmap **ret, uv_loop_t *loop, const struct nb_portmap_opts *o, nb_portmap_fn cb,
		    void *arg)
{
	unsigned want = o->protocols != 0 ? o->protocols : NB_PM_ALL;
	struct nb_portmap *pm;
	char why[200];
	int rc_upnp = 0, rc_pmp = 0;

	if (o->verify == NULL)
		return UV_EINVAL;
	pm = calloc(1, sizeof(*pm));
	if (pm == NULL)
		return UV_ENOMEM;
	pm->o = *o;
	pm->cb = cb;
	pm->arg = arg;
	pm->state = NB_PM_WORKING;
	pm->started = nb_now_ms();
	uv_timer_init(loop, &pm->timer);
	pm->timer.data = pm;
	pm->open = 1;
	if (o->client6.family == NB_AF_INET6) {
		/* over IPv6 a mapping is a firewall pinhole for our own address */
		if (want & NB_PM_NATPMP)
			progress(pm, "nat-pmp: skipped: NAT-PMP is IPv4-only (RFC 6886)");
		if (want & NB_PM_UPNP)
			progress(pm, "upnp: skipped: IPv6 pinholes over UPnP (WANIPv6FirewallControl) are not implemented");
		want &= ~(unsigned)(NB_PM_NATPMP | NB_PM_UPNP);
		if (want == 0)
			snprintf(pm->pmp_fail, sizeof(pm->pmp_fail), "over IPv6 only PCP can open a pinhole, and it is not enabled");
	}
	if (want != 0)
		progress(pm, "portmap: discovering gateway (%s%s%s%s%s)...", want & NB_PM_PCP ? "PCP" : "",
			 (want & NB_PM_PCP) && (want & (NB_PM_NATPMP | NB_PM_UPNP)) ? ", " : "",
			 want & NB_PM_NATPMP ? "NAT-PMP" : "", (want & NB_PM_NATPMP) && (want & NB_PM_UPNP) ? ", " : "",
			 want & NB_PM_UPNP ? "UPnP" : "");
	if (want & (NB_PM_PCP | NB_PM_NATPMP)) {
		struct nb_pmp_params p;

		nb_pmp_params_default(&p);
		p.internal_port = o->internal_port;
		p.tcp = o->tcp;
		p.external_port = o->external_port;
		if (o->lease_s != 0)
			p.lease_s = o->lease_s;
		p.pcp = (want & NB_PM_PCP) != 0;
		p.natpmp = (want & NB_PM_NATPMP) != 0;
		if (o->check_s != 0)
			p.check_s = o->check_s;
		rc_pmp = nb_pmp_run_open(&pm->pmp, loop, &p, &o->gateway, &o->client6, on_pmp, pm, why, sizeof(why));
		if (rc_pmp == 0) {
			pm->pmp_on = true;
			pm->pmp_status = NB_PMP_WORKING;
			pm->open++;
		} else {
			snprintf(pm->pmp_fail, sizeof(pm->pmp_fail), "%s", why);
			progress(pm, "%s: %s", o->client6.family == NB_AF_INET6 ? "pcp" : "nat-pmp", why);
		}
	}
	pm->loop = loop;
	if (want & NB_PM_UPNP) {
		struct nb_upnp_params p;

		nb_upnp_params_default(&p);
		p.internal_port = o->internal_port;
		p.tcp = o->tcp;
		p.external_port = o->external_port;
		if (o->lease_s != 0)
			p.lease_s = o->lease_s;
		p.ssdp_flags = o->ssdp_flags;
		if (o->check_s != 0)
			p.check_s = o->check_s;
		pm->upnp_p = p;
		if (pm->pmp_on) { /* started by update_hold() */
			rc_upnp = 0;
			pm->upnp_deferred = true;
			pm->hold_until = pm->started + HOLD_MS;
			uv_timer_start(&pm->timer, on_timer, HOLD_MS, 0);
		} else {
			rc_upnp = nb_upnp_run_open(&pm->upnp, loop, &p, on_upnp, pm);
			if (rc_upnp == 0)
				pm->open++;
		}
		if (rc_upnp == 0) {
			pm->upnp_on = true;
			pm->upnp_status = NB_UPNP_WORKING;
		} else {
			snprintf(pm->upnp_fail, sizeof(pm->upnp_fail), "cannot start: %s", uv_strerror(rc_upnp));
		}
	}
	if (!pm->pmp_on && !pm->upnp_on) {
		/* nothing runs: report the failure as a state, not as an error,
		 * unless nothing could even be asked */
		if ((want & NB_PM_UPNP) && rc_upnp != 0 && !(want & (NB_PM_PCP | NB_PM_NATPMP))) {
			pm->stopping = true;
			uv_close((uv_handle_t *)&pm->timer, on_timer_closed); /* frees pm from the loop */
			return rc_upnp;
		}
		snprintf(pm->reason, sizeof(pm->reason), "%s", pm->pmp_fail[0] ? pm->pmp_fail : pm->upnp_fail);
		pm->state = NB_PM_UNAVAILABLE;
		pm->done_at = pm->started;
	}
	*ret = pm;
	return 0;
}

void nb_portmap_set_reflexive(struct nb_portmap *pm, const struct nb_addr *reflexive, uint64_t now)
{
	if (pm == NULL || pm->have_reflexive || pm->no_reflexive)
		return;
	if (reflexive == NULL || reflexive->family == NB_AF_NONE) {
		pm->no_reflexive = true; /* the NAT tests got no answer: none is coming */
	} else {
		pm->reflexive = *reflexive;
		pm->have_reflexive = true;
		if (pm->upnp != NULL)
			nb_upnp_run_set_reflexive(pm->upnp, reflexive);
		if (pm->pmp != NULL)
			nb_pmp_run_set_reflexive(pm->pmp, reflexive);
	}
	if (pm->state != NB_PM_VERIFYING || pm->verify_pending)
		return;
	ask_verify(pm, now);
}

void nb_portmap_verify_result(struct nb_portmap *pm, bool ok, const char *proof, int code, const char *reason,
			      uint64_t now)
{
	struct nb_addr ext;
	char b[NB_ADDR_STRLEN];
	const char *proto;

	if (pm == NULL)
		return;
	pm->verify_pending = false;
	if (!chosen_external(pm, &ext) || pm->state != NB_PM_VERIFYING)
		return; /* stale: the mapping went away meanwhile */
	if (!nb_addr_equal(&ext, &pm->verified_ext)) {
		verify(pm, now); /* the external port changed while we asked: ask again */
		return;
	}
	proto = proto_word(pm);
	nb_addr_format(&ext, b, sizeof(b));
	if (ok) {
		snprintf(pm->proof, sizeof(pm->proof), "%s", proof != NULL ? proof : "");
		pm->reason[0] = '\0';
		progress(pm, "%s: %s verified by the broker", proto, b);
		set_state(pm, NB_PM_VERIFIED);
		return;
	}
	if (code != 0)
		snprintf(pm->reason, sizeof(pm->reason), "the broker refused to probe %s: %d %s", b, code,
			 reason != NULL ? reason : "");
	else
		snprintf(pm->reason, sizeof(pm->reason), "the broker's probe of %s did not come through (%s)", b,
			 reason != NULL ? reason : "no probe");
	progress(pm, "%s: %s%s", proto, pm->reason, fallback(pm));
	set_state(pm, NB_PM_UNVERIFIED);
}

bool nb_portmap_settled(const struct nb_portmap *pm, uint64_t now, uint32_t grace_ms)
{
	if (pm == NULL)
		return true;
	switch (pm->state) {
	case NB_PM_WORKING:
		return !pm->gateway_seen && now >= pm->started + grace_ms;
	case NB_PM_VERIFYING:
		return false;
	default:
		return true;
	}
}

enum nb_portmap_state nb_portmap_state(const struct nb_portmap *pm)
{
	return pm == NULL ? NB_PM_DISABLED : pm->state;
}

void nb_portmap_fill_register(const struct nb_portmap *pm, struct nb_ctrl_register *reg)
{
	reg->has_upnp = pm != NULL;
	reg->upnp_proof[0] = '\0';
	memset(&reg->upnp_external, 0, sizeof(reg->upnp_external));
	if (pm == NULL)
		return;
	switch (pm->state) {
	case NB_PM_VERIFIED:
		reg->upnp = NB_CTRL_UPNP_MAPPED;
		reg->upnp_external = pm->verified_ext;
		snprintf(reg->upnp_proof, sizeof(reg->upnp_proof), "%s", pm->proof);
		break;
	case NB_PM_UNAVAILABLE:
	case NB_PM_WORKING:
		reg->upnp = pm->gateway_seen ? NB_CTRL_UPNP_FAILED : NB_CTRL_UPNP_NONE;
		break;
	default:
		reg->upnp = NB_CTRL_UPNP_FAILED;
		break;
	}
}

const char *nb_portmap_status_word(enum nb_portmap_state s)
{
	switch (s) {
	case NB_PM_DISABLED:
		return "disabled";
	case NB_PM_WORKING:
		return "working";
	case NB_PM_VERIFYING:
		return "verifying";
	case NB_PM_VERIFIED:
		return "mapped";
	case NB_PM_UNVERIFIED:
		return "unverified";
	case NB_PM_UNAVAILABLE:
		return "unavailable";
	case NB_PM_REFUSED:
		return "refused";
	case NB_PM_UNUSABLE:
		return "unusable";
	}
	return "unknown";
}

int64_t nb_portmap_ms(const struct nb_portmap *pm)
{
	return pm == NULL || pm->done_at == 0 ? -1 : (int64_t)(pm->done_at - pm->started);
}

const char *nb_portmap_reason(const struct nb_portmap *pm)
{
	return pm == NULL ? "" : pm->reason;
}

void nb_portmap_get_report(const struct nb_portmap *pm, struct nb_portmap_report *r)
{
	memset(r, 0, sizeof(*r));
	r->state = nb_portmap_state(pm);
	r->protocol = "";
	r->server = "";
	r->reason = "";
	r->ms = -1;
	if (pm == NULL)
		return;
	r->tcp = pm->o.tcp;
	r->internal_port = pm->o.internal_port;
	r->protocol = proto_word(pm);
	r->ms = nb_portmap_ms(pm);
	r->reason = pm->reason;
	if (pm->chosen == C_UPNP && pm->upnp != NULL) {
		const struct nb_upnp_info *in = nb_upnp_run_info(pm->upnp);

		r->gateway = in->gateway;
		r->server = in->server;
		if (in->status == NB_UPNP_MAPPED) {
			r->external = in->external;
			r->lease_s = in->lease_s;
		}
	} else if (pm->chosen == C_PMP && pm->pmp != NULL) {
		const struct nb_pmp_info *in = nb_pmp_run_info(pm->pmp);

		r->gateway = in->gateway;
		r->renewals = in->renewals;
		r->readds = in->readds;
		if (in->status == NB_PMP_MAPPED) {
			r->external = in->external;
			r->lease_s = in->lease_s;
		}
	} else if (pm->pmp != NULL && nb_pmp_run_answered(pm->pmp)) {
		r->gateway = nb_pmp_run_info(pm->pmp)->gateway;
	} else if (pm->upnp != NULL) {
		r->gateway = nb_upnp_run_info(pm->upnp)->gateway;
		r->server = nb_upnp_run_info(pm->upnp)->server;
	}
}

void nb_portmap_stop(struct nb_portmap *pm, void (*closed)(void *arg), void *arg)
{
	struct nb_upnp_run *u;
	struct nb_pmp_run *r;
	struct nb_addr ext;

	if (pm == NULL || pm->stopping)
		return;
	pm->stopping = true;
	pm->cb = NULL;
	pm->closed = closed;
	pm->closed_arg = arg;
	if (chosen_external(pm, &ext))
		progress(pm, "%s: removing the mapping...", proto_word(pm));
	u = pm->upnp;
	r = pm->pmp;
	pm->upnp = NULL;
	pm->pmp = NULL;
	pm->upnp_deferred = false;
	uv_timer_stop(&pm->timer);
	uv_close((uv_handle_t *)&pm->timer, on_timer_closed);
	if (u != NULL)
		nb_upnp_run_stop(u, on_upnp_closed, pm);
	if (r != NULL)
		nb_pmp_run_stop(r, on_pmp_closed, pm);
}
