/* peer/natpeer_netcheck_run.c - libnatpeer's netcheck and map (natpeer_netcheck, natpeer_map) on the app's loop. */
#include "peer/natpeer_netcheck_run.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "common/time.h"
#include "common/udp.h"
#include "peer/blink.h"
#include "peer/client.h"
#include "peer/known.h"
#include "peer/netcheck.h"
#include "peer/portmap/portmap_run.h"
#include "proto/ctrl.h"

/* A netcheck waits this long for a UPnP gateway to answer SSDP before it
 * reports "unavailable" (a gateway that has answered is waited for). */
#define NETCHECK_UPNP_GRACE_MS 500
/* natpeer map tcp: connections our listener serves at once (the broker's
 * probes: one per verify try). */
#define MAP_GREET_CONNS 4
#define MAP_GREETING "NATBROKER-PROBE "

/* One address family's tests: its own two sockets and netcheck machine.
 * With two --broker (one per family) both run at once on one loop. */
struct fam {
	struct nb_npnc *r;
	struct nb_addr server;
	struct nb_addr local;
	struct nb_udp sock[2];
	int n_open;     /* sockets opened (closed at the end) */
	bool on;        /* the tests run (else: why) */
	uint64_t sends_ok;
	int send_err;   /* the last send error (libuv -errno), if any */
	struct nb_netcheck nc;
	char why[192];  /* !on, or no send ever went out: why this family has no verdict */
};

struct nb_npnc {
	const struct nb_npnc_opts *o; /* &opt */
	struct nb_npnc_opts opt;
	struct nb_npnc_hooks h;
	uv_loop_t *loop;
	bool closing;     /* close_all() done: the hook `done` once open_handles is 0 */
	struct fam f[2];
	int n_fam;
	struct fam *pf; /* the family that carries the port mapping and the broker's probe */
	bool finished;
	uv_timer_t timer;
	uint64_t start;
	struct nb_client client; /* for the broker's probe of a UPnP mapping */
	struct nb_blink bl;      /* ... asked for over the sealed channel */
	bool bl_on;
	uint8_t plain[NB_SEAL_MAX_DATAGRAM];
	struct nb_portmap *pm;
	bool reflexive_given;
	bool reported;
	uint64_t hard_deadline;
	bool timed_out;
	int open_handles;
	/* natpeer map */
	uv_tcp_t lst;                 /* TCP: our listener on the mapped port */
	bool lst_on;
	struct greet {                /* ... and the connections it accepted */
		uv_tcp_t h;
		bool used;
		size_t n;
		char buf[160];
	} greet[MAP_GREET_CONNS];
	char greet_proof[MAP_GREET_CONNS][NB_CTRL_PROOF_LEN + 1]; /* the last greetings' proofs */
	unsigned n_greet;
	bool udp_busy;                /* UDP: the port is another program's */
	bool tcp_connect_only;        /* TCP: the port is another program's listener */
	bool map_printed;
	struct nb_addr map_printed_ext;
	enum nb_portmap_state map_printed_state;
	int status;     /* 0 or a NATPEER_E_* code, for `done` */
	bool stop_asked; /* nb_npnc_stop(), or a failure to start: no report */
};

static void report(const struct nb_npnc *r);

/* A line for the hook `line` (the instance's log callback). INFO: progress
 * (natpeer(1) drops it with --json), ERROR: a failure. */
static void say(const struct nb_npnc *r, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(const struct nb_npnc *r, int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (r->h.line == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r->h.line(r->h.arg, level, line);
}

/* The port mapping's progress lines. */
static void portmap_line(void *arg, const char *line)
{
	say(arg, NATPEER_LOG_INFO, "%s", line);
}

static void all_closed(struct nb_npnc *r);

static void pump(struct nb_npnc *r);

static void on_timer(uv_timer_t *t)
{
	struct nb_npnc *r = t->data;

	/* A deadline is about to decide "no answer": first take what has
	 * already arrived, which the loop would only poll after this timer. */
	for (int k = 0; k < r->n_fam; k++)
		for (int i = 0; i < r->f[k].n_open && !r->finished; i++)
			nb_udp_drain(&r->f[k].sock[i], 16);
	if (!r->finished)
		pump(r);
}

static void on_closed(uv_handle_t *h)
{
	struct nb_npnc *r = h->data;
	if (--r->open_handles == 0 && r->closing)
		all_closed(r);
}

static void on_udp_closed(struct nb_udp *u)
{
	struct fam *f = u->arg;
	if (--f->r->open_handles == 0 && f->r->closing)
		all_closed(f->r);
}

static void greet_closed(uv_handle_t *h);
static void fam_settle(struct fam *f);
static const char *fam_missing(const struct fam *f);

static void close_all(void *arg)
{
	struct nb_npnc *r = arg;

	r->closing = true;
	uv_timer_stop(&r->timer);
	for (int k = 0; k < r->n_fam; k++) {
		for (int i = 0; i < r->f[k].n_open; i++)
			nb_udp_close(&r->f[k].sock[i], on_udp_closed);
		r->f[k].n_open = 0;
	}
	uv_close((uv_handle_t *)&r->timer, on_closed);
	if (r->lst_on)
		uv_close((uv_handle_t *)&r->lst, on_closed);
	for (int i = 0; i < MAP_GREET_CONNS; i++) {
		if (r->greet[i].used && !uv_is_closing((uv_handle_t *)&r->greet[i].h))
			uv_close((uv_handle_t *)&r->greet[i].h, greet_closed);
	}
}

/* Report, then take the mapping down (bounded), then close. */
static void finish(struct nb_npnc *r)
{
	struct nb_portmap *pm = r->pm;

	r->finished = true;
	uv_timer_stop(&r->timer);
	if (r->n_fam == 2 && !r->timed_out && !r->o->map.on) {
		bool any = false;
		for (int k = 0; k < r->n_fam; k++) {
			fam_settle(&r->f[k]);
			any = any || fam_missing(&r->f[k]) == NULL;
		}
		if (!any) /* the report says why, per family */
			r->status = NATPEER_E_SYSTEM;
	}
	if (!r->timed_out && !r->reported && !r->o->map.on && !r->stop_asked) {
		report(r);
		r->reported = true;
	}
	r->pm = NULL;
	if (pm != NULL)
		nb_portmap_stop(pm, close_all, r);
	else
		close_all(r);
}

/* ---- natpeer map ----------------------------------------------------------- */

/* Did our listener get the broker's greeting with this proof? */
static bool greeted(const struct nb_npnc *r, const char *proof)
{
	for (unsigned i = 0; i < r->n_greet && i < MAP_GREET_CONNS; i++)
		if (proof[0] != '\0' && strcmp(r->greet_proof[i], proof) == 0)
			return true;
	return false;
}

static void greet_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct nb_npnc *r = h->data;

	(void)hint;
	for (int i = 0; i < MAP_GREET_CONNS; i++) {
		struct greet *g = &r->greet[i];
		if ((uv_handle_t *)&g->h == h) {
			*buf = uv_buf_init(g->buf + g->n, (unsigned)(sizeof(g->buf) - 1 - g->n));
			return;
		}
	}
	*buf = uv_buf_init(NULL, 0);
}

/* The slot is free only once libuv is done with its handle. */
static void greet_closed(uv_handle_t *h)
{
	struct nb_npnc *r = h->data;

	for (int i = 0; i < MAP_GREET_CONNS; i++)
		if ((uv_handle_t *)&r->greet[i].h == h)
			r->greet[i].used = false;
	if (--r->open_handles == 0 && r->closing) /* accounted when accepted */
		all_closed(r);
}

static void greet_close(struct nb_npnc *r, struct greet *g)
{
	(void)r;
	if (!uv_is_closing((uv_handle_t *)&g->h))
		uv_close((uv_handle_t *)&g->h, greet_closed);
}

static void spare_closed(uv_handle_t *h)
{
	free(h);
}

static void greet_write_done(uv_write_t *w, int status)
{
	(void)status;
	free(w);
}

/* A line from the broker: "NATBROKER-PROBE <tx> <proof>\r\n". Anything
 * else, or more than the buffer, closes the connection. */
static void greet_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct nb_npnc *r = st->data;
	struct greet *g = NULL;
	char *eol, *sp;

	(void)buf;
	for (int i = 0; i < MAP_GREET_CONNS; i++)
		if ((uv_stream_t *)&r->greet[i].h == st)
			g = &r->greet[i];
	if (g == NULL)
		return;
	if (n < 0) {
		greet_close(r, g);
		return;
	}
	g->n += (size_t)n;
	g->buf[g->n] = '\0';
	eol = strstr(g->buf, "\r\n");
	if (eol == NULL) {
		if (g->n >= sizeof(g->buf) - 1)
			greet_close(r, g);
		return;
	}
	*eol = '\0';
	sp = strrchr(g->buf, ' ');
	if (strncmp(g->buf, MAP_GREETING, strlen(MAP_GREETING)) == 0 && sp != NULL &&
	    strlen(sp + 1) == NB_CTRL_PROOF_LEN) {
		static const char ok[] = "NATPEER-OK\r\n";
		uv_write_t *w = malloc(sizeof(*w));
		uv_buf_t b = uv_buf_init((char *)ok, sizeof(ok) - 1);

		memcpy(r->greet_proof[r->n_greet % MAP_GREET_CONNS], sp + 1, NB_CTRL_PROOF_LEN + 1);
		r->n_greet++;
		nb_log_debug("map", "the broker's greeting arrived on TCP %u", (unsigned)r->o->map.port);
		if (w != NULL && uv_write(w, st, &b, 1, greet_write_done) != 0)
			free(w);
	}
	greet_close(r, g); /* the broker sends its probe once we have closed */
}

static void greet_accept(uv_stream_t *lst, int status)
{
	struct nb_npnc *r = lst->data;
	struct greet *g = NULL;
	uv_tcp_t *spare;

	if (status < 0)
		return;
	for (int i = 0; i < MAP_GREET_CONNS; i++)
		if (!r->greet[i].used)
			g = &r->greet[i];
	if (g == NULL) { /* all busy: take it and drop it */
		spare = malloc(sizeof(*spare));
		if (spare == NULL)
			return; /* libuv stops accepting until one is taken */
		uv_tcp_init(lst->loop, spare);
		(void)uv_accept(lst, (uv_stream_t *)spare);
		uv_close((uv_handle_t *)spare, spare_closed);
		return;
	}
	memset(g, 0, sizeof(*g));
	uv_tcp_init(lst->loop, &g->h);
	g->h.data = r;
	g->used = true;
	r->open_handles++;
	if (uv_accept(lst, (uv_stream_t *)&g->h) != 0 ||
	    uv_read_start((uv_stream_t *)&g->h, greet_alloc, greet_read) != 0)
		greet_close(r, g);
}

/* Our TCP listener on the port; taken by another program: connect-only. */
static int map_listen(struct nb_npnc *r)
{
	struct sockaddr_in sa;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(r->o->map.port);
	uv_tcp_init(r->loop, &r->lst);
	r->lst.data = r;
	r->lst_on = true;
	r->open_handles++;
	rc = uv_tcp_bind(&r->lst, (const struct sockaddr *)&sa, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&r->lst, MAP_GREET_CONNS, greet_accept);
	if (rc == UV_EADDRINUSE) {
		r->tcp_connect_only = true;
		uv_close((uv_handle_t *)&r->lst, on_closed);
		r->lst_on = false;
		say(r, NATPEER_LOG_INFO, "map: TCP %u is in use by another program: the broker will only "
					 "check that it can connect", (unsigned)r->o->map.port);
		return 0;
	}
	return rc;
}

/* The portmap's verify hook in map mode. */
static int map_verify(void *arg, const struct nb_addr *external, uint64_t now, char *why, size_t why_len)
{
	struct nb_npnc *r = arg;
	int rc;

	if (r->udp_busy) {
		snprintf(why, why_len, "UDP %u is in use by another program, which gets the broker's probe: "
				       "it cannot be verified here", (unsigned)r->o->map.port);
		return -EPERM;
	}
	if (!r->bl_on) {
		snprintf(why, why_len, "no sealed channel to the broker (no key, or its key is not the pinned one)");
		return -EPERM;
	}
	rc = nb_client_verify(&r->client, external, r->o->map.tcp, now);
	if (rc != 0 && rc != -EBUSY)
		snprintf(why, why_len, "could not ask the broker to probe the mapping");
	return rc;
}

static void finish(struct nb_npnc *r);

/* Report what the mapping came to, each time it changes; a failure ends the run. */
static void map_report(struct nb_npnc *r)
{
	struct nb_portmap_report p;
	char ext[NB_ADDR_STRLEN], gw[NB_ADDR_STRLEN];
	natpeer_map_info mi;
	bool final;

	nb_portmap_get_report(r->pm, &p);
	final = p.state == NB_PM_UNAVAILABLE || p.state == NB_PM_REFUSED || p.state == NB_PM_UNUSABLE ||
		p.state == NB_PM_DISABLED;
	if (final) {
		if (r->h.map_failed != NULL)
			r->h.map_failed(r->h.arg, nb_portmap_status_word(p.state), p.reason);
		r->status = NATPEER_E_PORTMAP;
		finish(r);
		return;
	}
	if (p.state != NB_PM_VERIFIED && p.state != NB_PM_UNVERIFIED)
		return;
	if (r->map_printed && r->map_printed_state == p.state && nb_addr_equal(&r->map_printed_ext, &p.external))
		return;
	r->map_printed = true;
	r->map_printed_state = p.state;
	r->map_printed_ext = p.external;
	memset(&mi, 0, sizeof(mi));
	mi.tcp = p.tcp;
	mi.internal = p.internal_port;
	mi.protocol = p.protocol;
	mi.external = nb_addr_format(&p.external, ext, sizeof(ext));
	mi.lease_s = p.lease_s;
	mi.gateway = nb_addr_format_ip(&p.gateway, gw, sizeof(gw));
	mi.verified = p.state == NB_PM_VERIFIED;
	mi.reason = mi.verified ? NULL : p.reason;
	mi.ms = p.ms;
	if (r->h.mapped != NULL)
		r->h.mapped(r->h.arg, &mi);
}


static void client_events(struct nb_npnc *r, uint64_t now)
{
	struct nb_client_event e;

	while (nb_client_next_event(&r->client, &e) == 1) {
		bool ok = e.type == NB_CLIENT_EV_VERIFIED;

		if (e.type != NB_CLIENT_EV_VERIFIED && e.type != NB_CLIENT_EV_VERIFY_FAILED)
			continue;
		if (ok && r->o->map.on && r->o->map.tcp && !r->tcp_connect_only && !greeted(r, e.proof)) {
			/* The broker connected to the mapping, but not to us. */
			nb_portmap_verify_result(r->pm, false, "", 0,
						 "the broker connected, but natpeer's listener got no greeting: "
						 "the external port leads elsewhere",
						 now);
			continue;
		}
		nb_portmap_verify_result(r->pm, ok, e.proof, e.code, e.reason, now);
	}
}

/* Every family that runs has its verdict. */
static bool all_done(const struct nb_npnc *r)
{
	for (int k = 0; k < r->n_fam; k++)
		if (r->f[k].on && !nb_netcheck_done(&r->f[k].nc))
			return false;
	return true;
}

static void pump(struct nb_npnc *r)
{
	struct nb_netcheck_tx tx;
	struct fam *pf = r->pf;
	uint64_t now = nb_now_ms(), nc_next = UINT64_MAX;

	if (now >= r->hard_deadline && !(r->o->map.on && r->map_printed)) {
		r->timed_out = true;
		finish(r);
		return;
	}
	for (int k = 0; k < r->n_fam; k++) {
		struct fam *f = &r->f[k];
		if (!f->on)
			continue;
		while (nb_netcheck_poll(&f->nc, now, &tx) == 1) {
			int rc = nb_udp_send(&f->sock[tx.sock], tx.bytes, tx.len, &tx.to);
			if (rc == 0)
				f->sends_ok++;
			else
				f->send_err = rc;
		}
		if (!nb_netcheck_done(&f->nc) && nb_netcheck_deadline(&f->nc) < nc_next)
			nc_next = nb_netcheck_deadline(&f->nc);
	}
	struct nb_addr refl;
	if (!r->reflexive_given && pf->on && nb_netcheck_reflexive(&pf->nc, &refl)) {
		r->reflexive_given = true; /* test I: the UPnP mapping can be verified now */
		nb_portmap_set_reflexive(r->pm, &refl, now);
	} else if (!r->reflexive_given && (!pf->on || nb_netcheck_done(&pf->nc))) {
		r->reflexive_given = true; /* no answer from the server: none is coming */
		nb_portmap_set_reflexive(r->pm, NULL, now);
	}
	struct nb_client_tx ctx;
	struct nb_blink_tx btx;
	while (nb_client_poll(&r->client, now, &ctx) == 1)
		if (r->bl_on)
			(void)nb_blink_send(&r->bl, ctx.bytes, ctx.len, now);
	while (r->bl_on && nb_blink_poll(&r->bl, now, &btx) == 1)
		nb_udp_send(&pf->sock[0], btx.bytes, btx.len, &pf->server);
	client_events(r, now);
	if (r->o->map.on) {
		map_report(r);
		if (r->finished)
			return;
	} else if (all_done(r) && nb_portmap_settled(r->pm, now, NETCHECK_UPNP_GRACE_MS)) {
		finish(r);
		return;
	}
	uint64_t next = nc_next;
	if (nb_client_deadline(&r->client) < next)
		next = nb_client_deadline(&r->client);
	if (r->bl_on && nb_blink_deadline(&r->bl) < next)
		next = nb_blink_deadline(&r->bl);
	if (r->o->map.on && r->map_printed) { /* the mapping lives on: only the client's timers */
		if (next == UINT64_MAX)
			uv_timer_stop(&r->timer);
		else
			uv_timer_start(&r->timer, on_timer, next > now ? next - now : 0, 0);
		return;
	}
	if (all_done(r) && next > now + 50)
		next = now + 50; /* waiting for UPnP: look at the grace window again */
	if (next > r->hard_deadline)
		next = r->hard_deadline;
	uv_timer_start(&r->timer, on_timer, next > now ? next - now : 0, 0);
}

static void on_recv(struct nb_udp *u, const uint8_t *data, size_t len, const struct nb_addr *from,
		    void *arg)
{
	struct fam *f = arg;
	struct nb_npnc *r = f->r;
	int sock = u == &f->sock[0] ? NB_NC_MAP : NB_NC_FILT;
	uint64_t now = nb_now_ms();

	if (r->finished)
		return;
	if (f != r->pf) {
		nb_netcheck_input(&f->nc, sock, data, len, from, now);
	} else if (sock == NB_NC_MAP && nb_wire_classify(data, len) == NB_WIRE_CTRL) {
		/* Unsealed: only the broker's probe of the mapping is taken. */
		struct nb_ctrl_msg m;
		if (nb_ctrl_decode(&m, data, len) == (ssize_t)len && m.type == NB_CTRL_PROBE)
			nb_client_input(&r->client, data, len, from, now);
		client_events(r, now);
	} else if (sock == NB_NC_MAP && nb_wire_classify(data, len) == NB_WIRE_DATA) {
		ssize_t n = r->bl_on ? nb_blink_input(&r->bl, data, len, from, now, r->plain,
						      sizeof(r->plain))
				     : -1;
		if (n > 0 && r->plain[0] == NB_CTRL_FIRST_BYTE)
			nb_client_input(&r->client, r->plain, (size_t)n, &f->server, now);
		client_events(r, now);
	} else {
		nb_netcheck_input(&f->nc, sock, data, len, from, now);
	}
	pump(r);
}

static void on_portmap(struct nb_portmap *pm, bool changed, void *arg)
{
	struct nb_npnc *r = arg;

	(void)pm;
	(void)changed;
	if (!r->finished) /* pump from the loop, not from inside the UPnP shell */
		uv_timer_start(&r->timer, on_timer, 0, 0);
}

/* The "portmap" part of the report. none_why: why there is no port
 * mapping at all (two families, and the IPv4 one has none), else NULL.
 * Strings point into *rep and b (ext, gw). */
static void portmap_info(natpeer_portmap_info *pi, const struct nb_portmap *pm, const char *none_why,
			 struct nb_portmap_report *rep, char ext[NB_ADDR_STRLEN], char gw[NB_ADDR_STRLEN])
{
	enum nb_portmap_state s;

	memset(pi, 0, sizeof(*pi));
	pi->ms = -1;
	if (pm == NULL && none_why != NULL) {
		pi->status = nb_portmap_status_word(NB_PM_UNAVAILABLE);
		pi->reason = none_why;
		return;
	}
	nb_portmap_get_report(pm, rep);
	s = rep->state;
	if (s == NB_PM_WORKING) /* no gateway answered in the grace window */
		s = NB_PM_UNAVAILABLE;
	if (rep->protocol[0] != '\0')
		pi->protocol = rep->protocol;
	pi->status = nb_portmap_status_word(s);
	if ((s == NB_PM_VERIFIED || s == NB_PM_UNVERIFIED) && rep->external.family != NB_AF_NONE) {
		pi->external = nb_addr_format(&rep->external, ext, NB_ADDR_STRLEN);
		pi->lease_s = rep->lease_s;
	}
	if (rep->gateway.family != NB_AF_NONE)
		pi->gateway = nb_addr_format_ip(&rep->gateway, gw, NB_ADDR_STRLEN);
	if (rep->ms >= 0)
		pi->ms = rep->ms;
	if (s == NB_PM_DISABLED)
		pi->reason = "disabled with --no-portmap";
	else if (s == NB_PM_UNAVAILABLE && rep->reason[0] == '\0')
		pi->reason = "no gateway answered PCP, NAT-PMP or UPnP within 0.5 s";
	else if (s != NB_PM_VERIFIED)
		pi->reason = rep->reason;
}

static const char *fam_name(const struct fam *f)
{
	return f->server.family == NB_AF_INET6 ? "IPv6" : "IPv4";
}

/* Why this family reached no verdict (no route, no socket, no send went
 * out), or NULL when it has one ("UDP blocked" is one). */
static const char *fam_missing(const struct fam *f)
{
	return f->why[0] != '\0' ? f->why : NULL;
}

/* A finished family whose every send failed has no verdict either. */
static void fam_settle(struct fam *f)
{
	char a[NB_ADDR_STRLEN];

	if (f->on && f->why[0] == '\0' && f->sends_ok == 0 && f->send_err != 0)
		snprintf(f->why, sizeof(f->why), "cannot send to %s: %s",
			 nb_addr_format(&f->server, a, sizeof(a)), uv_strerror(f->send_err));
}

/* A family's result; the empty one ("none") for a family without a verdict. */
static const struct nb_netcheck_result *fam_result(const struct fam *f)
{
	static const struct nb_netcheck_result none = { .hairpin = -1 };

	return f->on && fam_missing(f) == NULL ? nb_netcheck_result(&f->nc) : &none;
}

struct fam_text {
	char server[NB_ADDR_STRLEN], local[NB_ADDR_STRLEN], refl[NB_ADDR_STRLEN];
};

/* One family's fields (those of the empty result when it has no verdict). */
static void fam_info(natpeer_netcheck_family *fi, struct fam_text *t, const struct fam *f)
{
	const struct nb_netcheck_result *res = fam_result(f);

	memset(fi, 0, sizeof(*fi));
	fi->family = f->server.family == NB_AF_INET6 ? 6 : 4;
	fi->server = nb_addr_format(&f->server, t->server, sizeof(t->server));
	fi->missing = fam_missing(f);
	fi->udp_blocked = res->udp_blocked;
	if (res->local.family != NB_AF_NONE)
		fi->local = nb_addr_format(&res->local, t->local, sizeof(t->local));
	if (res->reflexive.family != NB_AF_NONE)
		fi->reflexive = nb_addr_format(&res->reflexive, t->refl, sizeof(t->refl));
	fi->mapping = res->udp_blocked ? "none" : nb_mapping_to_string(res->mapping);
	fi->filtering = nb_filtering_to_string(res->filtering);
	fi->nat = nb_nat_type_to_string(res->nat);
	fi->hairpin = res->hairpin < 0 ? -1 : res->hairpin ? 1 : 0;
	fi->rfc5780 = res->rfc5780;
	fi->note = res->note;
	fi->ms = res->ms;
}

/* The results, to the hook `report`. */
static void report(const struct nb_npnc *r)
{
	const struct fam *pf = r->pf;
	natpeer_netcheck_family fams[2];
	struct fam_text t[2];
	natpeer_netcheck_report rep;
	struct nb_portmap_report pr;
	char pm_buf[256], ext[NB_ADDR_STRLEN], gw[NB_ADDR_STRLEN];
	const char *pm_why = NULL;

	if (r->h.report == NULL)
		return;
	if (r->n_fam == 2 && fam_missing(pf) != NULL) {
		snprintf(pm_buf, sizeof(pm_buf), "no %s: %s", fam_name(pf), fam_missing(pf));
		pm_why = pm_buf;
	}
	memset(&rep, 0, sizeof(rep));
	for (int k = 0; k < r->n_fam; k++)
		fam_info(&fams[k], &t[k], &r->f[k]);
	rep.n_families = (size_t)r->n_fam;
	rep.families = fams;
	rep.portmap_family = (size_t)(pf - r->f);
	portmap_info(&rep.portmap, r->pm, pm_why, &pr, ext, gw);
	rep.total_ms = nb_now_ms() - r->start;
	r->h.report(r->h.arg, &rep);
}

/* Open a family's two sockets (its agent socket on `port`). With two
 * families a failure only makes this family "no IPvN" (f->why) and returns
 * 0; with one it is logged and fatal (returns the libuv error). */
static int fam_open(struct nb_npnc *r, struct fam *f, uint16_t port)
{
	const struct nb_npnc_opts *o = r->o;
	struct nb_addr any;
	/* two families: the v6 socket must not take the v4 port too (--port) */
	unsigned flags = r->n_fam == 2 && f->server.family == NB_AF_INET6 ? UV_UDP_IPV6ONLY : 0;
	int rc = 0;

	memset(&any, 0, sizeof(any));
	any.family = f->server.family;
	for (int i = 0; i < 2; i++) {
		any.port = i == 0 ? port : 0;
		rc = nb_udp_open(&f->sock[i], r->loop, &any, flags, on_recv, f);
		if (rc == UV_EADDRINUSE && i == 0 && o->map.on) {
			/* map udp: the port is another program's; map it anyway */
			r->udp_busy = true;
			say(r, NATPEER_LOG_INFO, "map: UDP %u is in use by another program: mapping it, but the "
						 "broker's probe goes to that program", (unsigned)o->map.port);
			any.port = 0;
			rc = nb_udp_open(&f->sock[i], r->loop, &any, flags, on_recv, f);
		}
		if (rc != 0)
			break;
		f->n_open++;
		r->open_handles++;
	}
	if (rc == 0) {
		f->local.port = f->sock[0].local.port;
		f->on = true;
		return 0;
	}
	{
		char a[NB_ADDR_STRLEN];
		nb_addr_format(&any, a, sizeof(a));
		if (r->n_fam == 2)
			snprintf(f->why, sizeof(f->why), "cannot bind UDP %s: %s", a, uv_strerror(rc));
		else
			say(r, NATPEER_LOG_ERROR, "natpeer: cannot bind UDP %s: %s%s", a, uv_strerror(rc),
			    rc == UV_EADDRINUSE ? " (pick another --port)" : "");
	}
	if (f->n_open == 1) /* counted: on_udp_closed takes it back */
		nb_udp_close(&f->sock[0], on_udp_closed);
	f->n_open = 0;
	return r->n_fam == 2 ? 0 : rc;
}

/* Every handle is closed: the hook `done`, and the memory. */
static void all_closed(struct nb_npnc *r)
{
	struct nb_npnc_hooks h = r->h;
	int status = r->status;

	if (r->timed_out) {
		say(r, NATPEER_LOG_ERROR, "natpeer: %s did not finish within the timeout (raise --timeout)",
		    r->o->map.on ? "map" : "netcheck");
		status = NATPEER_E_TIMEOUT;
	}
	if (r->bl_on)
		nb_blink_wipe(&r->bl);
	OPENSSL_cleanse(r, sizeof(*r));
	free(r);
	if (h.done != NULL)
		h.done(h.arg, status);
}

/* A failure once handles are open: close them; `done` follows. */
static int fail_async(struct nb_npnc *r, int status)
{
	r->status = status;
	r->stop_asked = true;
	finish(r);
	return 0;
}

void nb_npnc_stop(struct nb_npnc *r)
{
	if (r == NULL || r->finished)
		return;
	r->stop_asked = true;
	finish(r);
}

int nb_npnc_start(uv_loop_t *loop, const struct nb_npnc_opts *opts, const struct nb_npnc_hooks *hooks,
		  struct nb_npnc **ret)
{
	struct nb_npnc *r;
	const struct nb_npnc_opts *o;
	struct fam *pf;
	uint8_t seed[2][NB_STUN_TID_LEN];
	char srv[NB_ADDR_STRLEN], srv2[NB_ADDR_STRLEN];
	int rc;

	if (loop == NULL || opts == NULL || hooks == NULL || ret == NULL)
		return NATPEER_E_INVAL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NATPEER_E_NOMEM;
	r->opt = *opts;
	r->o = o = &r->opt;
	r->h = *hooks;
	r->loop = loop;
	r->n_fam = o->has_server2 && !o->map.on ? 2 : 1;
	r->f[0].server = o->server;
	r->f[1].server = o->server2;
	/* the port mapping and the broker's probe: the IPv4 family's */
	r->pf = pf = r->n_fam == 2 && o->server.family == NB_AF_INET6 ? &r->f[1] : &r->f[0];
	nb_addr_format(&o->server, srv, sizeof(srv));
	nb_addr_format(&o->server2, srv2, sizeof(srv2));
	for (int k = 0; k < r->n_fam; k++) {
		struct fam *f = &r->f[k];
		char a[NB_ADDR_STRLEN];
		f->r = r;
		rc = nb_local_ip_toward(&f->server, &f->local);
		if (rc == 0)
			continue;
		nb_addr_format(&f->server, a, sizeof(a));
		if (r->n_fam == 1) {
			say(r, NATPEER_LOG_ERROR, "natpeer: no route to %s: %s (check --broker and the network)", a,
			    strerror(-rc));
			free(r);
			return NATPEER_E_SYSTEM;
		}
		snprintf(f->why, sizeof(f->why), "no route to %s: %s", a, strerror(-rc));
	}
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
		say(r, NATPEER_LOG_ERROR, "natpeer: getrandom failed: %s", strerror(errno));
		free(r);
		return NATPEER_E_SYSTEM;
	}
	/* From here on every failure closes what is open, and `done` reports it. */
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
	r->open_handles++;
	*ret = r;
	for (int k = 0; k < r->n_fam; k++) {
		struct fam *f = &r->f[k];
		if (f->why[0] != '\0')
			continue;
		if (fam_open(r, f, o->map.on ? (o->map.tcp ? 0 : o->map.port) : o->port) != 0)
			return fail_async(r, NATPEER_E_SYSTEM);
	}
	if (o->map.on) {
		if (o->map.tcp && (rc = map_listen(r)) != 0) {
			say(r, NATPEER_LOG_ERROR, "natpeer: map: cannot listen on TCP %u: %s", (unsigned)o->map.port,
			    uv_strerror(rc));
			return fail_async(r, NATPEER_E_SYSTEM);
		}
	} else if (r->n_fam == 1) {
		say(r, NATPEER_LOG_INFO, "netcheck: testing mapping and filtering against %s...", srv);
	} else {
		say(r, NATPEER_LOG_INFO, "netcheck: testing mapping and filtering against %s and %s at once...", srv,
		    srv2);
	}
	uint64_t now = nb_now_ms();
	r->start = now;
	r->hard_deadline = now + (o->timeout_ms ? o->timeout_ms : 10000);
	for (int k = 0; k < r->n_fam; k++)
		if (r->f[k].on)
			nb_netcheck_init(&r->f[k].nc, NULL, &r->f[k].server, &r->f[k].local, seed[k], now);
	uint8_t cseed[32];
	if (getrandom(cseed, sizeof(cseed), 0) != (ssize_t)sizeof(cseed))
		memset(cseed, 0, sizeof(cseed)); /* cannot happen after the first getrandom */
	nb_client_init(&r->client, NULL, &pf->server, cseed, now);
	nb_addr_format(&pf->server, srv, sizeof(srv));
	if (o->upnp && o->has_identity && pf->on) {
		/* The broker's key: as pinned by listen/connect, or given; else
		 * asked for, and trusted for this run only (netcheck pins
		 * nothing). */
		struct nb_known known;
		char name[NB_KNOWN_NAME_MAX + 1], err[256];
		const uint8_t *pinned = NULL;
		uint8_t bk[NB_KEY_LEN];
		nb_known_init(&known);
		if (nb_known_broker_name(&pf->server, name) == 0 &&
		    nb_known_load(&known, o->known_path, err, sizeof(err)) == 0 &&
		    (pinned = nb_known_lookup(&known, name)) != NULL)
			memcpy(bk, pinned, NB_KEY_LEN);
		if (pinned != NULL && o->has_broker_key && !nb_key_equal(bk, o->broker_key))
			say(r, NATPEER_LOG_ERROR, "natpeer: --broker-key is not the key pinned for %s in %s: the "
						  "broker will not be asked to probe the mapping", srv, o->known_path);
		else {
			if (pinned == NULL && o->has_broker_key) {
				memcpy(bk, o->broker_key, NB_KEY_LEN);
				pinned = bk;
			}
			nb_blink_init(&r->bl, o->priv, o->pub, pinned != NULL ? bk : NULL, &pf->server, cseed);
			r->bl_on = nb_blink_start(&r->bl, now) == 0;
		}
		nb_known_free(&known);
		OPENSSL_cleanse(bk, sizeof(bk));
	}
	OPENSSL_cleanse(cseed, sizeof(cseed));
	if (o->upnp && pf->on) {
		struct nb_portmap_opts po = {
			.internal_port = pf->local.port, .ssdp_flags = o->upnp_flags, .quiet = false,
			.log = portmap_line, .log_arg = r,
			.protocols = o->portmap_protocols, .verify = nb_client_verify_hook, .verify_arg = &r->client,
		};
		if (o->map.on) {
			po.internal_port = o->map.port;
			po.tcp = o->map.tcp;
			po.external_port = o->map.external;
			po.lease_s = o->map.lease_s;
			po.check_s = o->map.check_s;
			po.verify = map_verify;
			po.verify_arg = r;
			po.no_fallback = true;
			if (pf->server.family == NB_AF_INET6) /* an IPv6 broker: a pinhole for our IPv6 address */
				po.client6 = pf->local;
		}
		rc = nb_portmap_open(&r->pm, r->loop, &po, on_portmap, r);
		if (rc != 0) {
			r->pm = NULL;
			say(r, NATPEER_LOG_ERROR, "natpeer: port mapping: cannot start: %s%s", uv_strerror(rc),
			    o->map.on ? "" : " (going on without it)");
		}
		if (rc != 0 && o->map.on)
			r->status = NATPEER_E_SYSTEM;
	}
	if (o->map.on && r->pm == NULL)
		return fail_async(r, r->status != 0 ? r->status : NATPEER_E_SYSTEM);
	pump(r);
	return 0;
}
