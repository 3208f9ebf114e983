/* peer/portmap.c - a port mapping for the agent's socket: UPnP, then the broker's probe. */
#include "peer/portmap.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/time.h"

#define LOG "portmap"

struct nb_portmap {
	struct nb_upnp_run *run;
	struct nb_client *client;
	nb_portmap_fn cb;
	void *arg;
	bool quiet;
	enum nb_portmap_state state;
	uint64_t started;
	uint64_t done_at; /* when a final state was first reached; 0 = not yet */
	bool gateway_seen;
	bool have_reflexive;
	bool no_reflexive; /* the NAT tests ended without one: nothing can be verified */
	struct nb_addr reflexive;
	struct nb_addr verified_ext;          /* the external address the proof is for */
	char proof[NB_CTRL_PROOF_LEN + 1];
	char reason[320]; /* room for the broker's reason (160) and an address */
	void (*closed)(void *arg);
	void *closed_arg;
};

static void progress(const struct nb_portmap *pm, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void progress(const struct nb_portmap *pm, const char *fmt, ...)
{
	va_list ap;

	if (pm->quiet)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
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

/* Ask the broker to probe the mapping, once both it and the reflexive IP are known. */
static void verify(struct nb_portmap *pm, uint64_t now)
{
	const struct nb_upnp_info *in = nb_upnp_run_info(pm->run);
	int rc;

	if (in->status != NB_UPNP_MAPPED)
		return;
	if (pm->no_reflexive) {
		snprintf(pm->reason, sizeof(pm->reason),
			 "the broker never answered, so it cannot probe the mapping");
		set_state(pm, NB_PM_UNVERIFIED);
		return;
	}
	if (!pm->have_reflexive)
		return; /* asked once the reflexive address is known */
	if (pm->reflexive.family != NB_AF_INET) {
		snprintf(pm->reason, sizeof(pm->reason),
			 "the broker is reached over IPv6; an IPv4 port mapping cannot be probed");
		set_state(pm, NB_PM_UNVERIFIED);
		return;
	}
	if (!nb_addr_ip_equal(&in->external, &pm->reflexive))
		return; /* the UPnP machine calls it unusable itself (EV_FAILED) */
	rc = nb_client_verify(pm->client, &in->external, now);
	if (rc == -EBUSY)
		return; /* one in flight; its answer is for an older external port: asked again then */
	if (rc != 0) {
		snprintf(pm->reason, sizeof(pm->reason), "could not ask the broker to probe the mapping");
		set_state(pm, NB_PM_UNVERIFIED);
		return;
	}
	pm->verified_ext = in->external;
	pm->proof[0] = '\0';
	set_state(pm, NB_PM_VERIFYING);
}

static void on_upnp(struct nb_upnp_run *r, const struct nb_upnp_event *ev, const struct nb_upnp_info *in,
		    void *arg)
{
	struct nb_portmap *pm = arg;
	char a[NB_ADDR_STRLEN], b[NB_ADDR_STRLEN];
	uint64_t now = nb_now_ms();

	(void)r;
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
		nb_addr_format(&in->external, b, sizeof(b));
		progress(pm, "upnp: %s UDP %u -> %s (lease %u s)",
			 ev->kind == NB_UPNP_EV_MAPPED ? "mapped" : "mapping was gone; mapped again",
			 (unsigned)in->internal_client.port, b, (unsigned)in->lease_s);
		set_state(pm, NB_PM_VERIFYING);
		if (pm->have_reflexive && pm->reflexive.family == NB_AF_INET &&
		    nb_addr_ip_equal(&in->external, &pm->reflexive))
			progress(pm, "upnp: asking the broker to probe %s...", b);
		verify(pm, now);
		break;
	case NB_UPNP_EV_RENEWED:
		nb_log_info(LOG, "mapping renewed: %s (lease %u s)", nb_addr_format(&in->external, b, sizeof(b)),
			    (unsigned)in->lease_s);
		if (pm->cb != NULL)
			pm->cb(pm, false, pm->arg);
		break;
	case NB_UPNP_EV_FAILED:
		snprintf(pm->reason, sizeof(pm->reason), "%s", in->reason);
		progress(pm, "upnp: %s; using hole punching", in->reason);
		set_state(pm, in->status == NB_UPNP_REFUSED	 ? NB_PM_REFUSED
			      : in->status == NB_UPNP_UNUSABLE ? NB_PM_UNUSABLE
							       : NB_PM_UNAVAILABLE);
		break;
	case NB_UPNP_EV_CLOSED:
		break;
	}
}

int nb_portmap_open(struct nb_portmap **ret, uv_loop_t *loop, const struct nb_portmap_opts *o,
		    struct nb_client *client, nb_portmap_fn cb, void *arg)
{
	struct nb_upnp_params p;
	struct nb_portmap *pm;
	int rc;

	pm = calloc(1, sizeof(*pm));
	if (pm == NULL)
		return UV_ENOMEM;
	pm->client = client;
	pm->cb = cb;
	pm->arg = arg;
	pm->quiet = o->quiet;
	pm->state = NB_PM_WORKING;
	pm->started = nb_now_ms();
	nb_upnp_params_default(&p);
	p.internal_port = o->internal_port;
	p.ssdp_flags = o->ssdp_flags;
	if (o->check_s != 0)
		p.check_s = o->check_s;
	progress(pm, "upnp: discovering gateway...");
	rc = nb_upnp_run_open(&pm->run, loop, &p, on_upnp, pm);
	if (rc != 0) {
		free(pm);
		return rc;
	}
	*ret = pm;
	return 0;
}

void nb_portmap_set_reflexive(struct nb_portmap *pm, const struct nb_addr *reflexive, uint64_t now)
{
	const struct nb_upnp_info *in;
	char b[NB_ADDR_STRLEN];

	if (pm == NULL || pm->have_reflexive || pm->no_reflexive)
		return;
	if (reflexive == NULL || reflexive->family == NB_AF_NONE) {
		pm->no_reflexive = true; /* the NAT tests got no answer: none is coming */
	} else {
		pm->reflexive = *reflexive;
		pm->have_reflexive = true;
		nb_upnp_run_set_reflexive(pm->run, reflexive);
	}
	if (pm->state != NB_PM_VERIFYING || nb_client_pending(pm->client, NB_CLIENT_TXN_VERIFY) != 0)
		return;
	in = nb_upnp_run_info(pm->run);
	if (pm->have_reflexive && pm->reflexive.family == NB_AF_INET && in->status == NB_UPNP_MAPPED &&
	    nb_addr_ip_equal(&in->external, &pm->reflexive))
		progress(pm, "upnp: asking the broker to probe %s...", nb_addr_format(&in->external, b, sizeof(b)));
	verify(pm, now);
}

void nb_portmap_client_event(struct nb_portmap *pm, const struct nb_client_event *e, uint64_t now)
{
	const struct nb_upnp_info *in;
	char b[NB_ADDR_STRLEN];

	if (pm == NULL || (e->type != NB_CLIENT_EV_VERIFIED && e->type != NB_CLIENT_EV_VERIFY_FAILED))
		return;
	in = nb_upnp_run_info(pm->run);
	if (in->status != NB_UPNP_MAPPED || pm->state != NB_PM_VERIFYING)
		return; /* stale: the mapping went away meanwhile */
	if (!nb_addr_equal(&in->external, &pm->verified_ext)) {
		verify(pm, now); /* the external port changed while we asked: ask again */
		return;
	}
	nb_addr_format(&in->external, b, sizeof(b));
	if (e->type == NB_CLIENT_EV_VERIFIED) {
		snprintf(pm->proof, sizeof(pm->proof), "%s", e->proof);
		pm->reason[0] = '\0';
		progress(pm, "upnp: %s verified by the broker", b);
		set_state(pm, NB_PM_VERIFIED);
	} else {
		if (e->code != 0)
			snprintf(pm->reason, sizeof(pm->reason), "the broker refused to probe %s: %d %s", b,
				 e->code, e->reason);
		else
			snprintf(pm->reason, sizeof(pm->reason),
				 "the broker's probe of %s did not come through (%s)", b, e->reason);
		progress(pm, "upnp: %s; using hole punching", pm->reason);
		set_state(pm, NB_PM_UNVERIFIED);
	}
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

const struct nb_upnp_info *nb_portmap_info(const struct nb_portmap *pm)
{
	return pm == NULL ? NULL : nb_upnp_run_info(pm->run);
}

static void on_run_closed(void *arg)
{
	struct nb_portmap *pm = arg;
	void (*closed)(void *) = pm->closed;
	void *closed_arg = pm->closed_arg;

	free(pm);
	if (closed != NULL)
		closed(closed_arg);
}

void nb_portmap_stop(struct nb_portmap *pm, void (*closed)(void *arg), void *arg)
{
	if (pm == NULL)
		return;
	pm->cb = NULL;
	pm->closed = closed;
	pm->closed_arg = arg;
	if (nb_upnp_run_info(pm->run)->status == NB_UPNP_MAPPED)
		progress(pm, "upnp: removing the mapping...");
	nb_upnp_run_stop(pm->run, on_run_closed, pm);
}
