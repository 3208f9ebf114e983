/* peer/portmap/upnp_run.c - the libuv shell around peer/upnp: an SSDP socket, the HTTP client, a timer.
 *
 * It only moves bytes and time (STYLE.md, "pure cores, thin shells"): what
 * to send, when, and every timeout come from the state machine; this file
 * carries out nb_upnp_poll()'s outputs, feeds back SSDP datagrams and HTTP
 * results with the monotonic clock, and hands progress events to the user.
 *
 * Re-entrancy: the user's event callback may call nb_upnp_run_stop(),
 * _set_reflexive() or _check_now(). Those call pump(), which, if a pump is
 * already running further up the stack, only asks it to go round once more.
 *
 * Lifetime: struct nb_upnp_run embeds the SSDP endpoint and the timer, so it
 * is freed only once their close callbacks and the HTTP client's have run
 * (open_handles); `closed` runs after that, from the loop. */
#include "peer/portmap/upnp_run.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "common/time.h"
#include "common/udp.h"
#include "peer/portmap/http_run.h"

/* Datagrams read by the timer before it lets the machine decide. */
#define SSDP_DRAIN_MAX 16

struct nb_upnp_run {
	uv_loop_t *loop;
	struct nb_udp ssdp;
	struct nb_http *http;
	uv_timer_t timer;
	struct nb_upnp u;
	nb_upnp_run_event_fn cb;
	void *arg;
	bool in_pump, pump_again;
	uv_work_t load;  /* nb_http_preload() in the thread pool */
	bool loaded;     /* ... done (or failed: the request then fails as usual) */
	bool have_held;  /* the machine's request, waiting for the load */
	struct nb_upnp_out held;
	uint8_t held_body[NB_SOAP_REQ_BODY_MAX]; /* its headers stay in the machine: one request at a time */
	bool stopping;  /* nb_upnp_run_stop() was called: no more events */
	bool finished;  /* the handles are closing */
	int open_handles;
	nb_upnp_run_closed_fn closed;
	void *closed_arg;
};

static void pump(struct nb_upnp_run *r);

/* ---------------------------------------------------------------- closing */

static void maybe_free(struct nb_upnp_run *r)
{
	nb_upnp_run_closed_fn closed;
	void *arg;

	if (r->open_handles > 0)
		return;
	closed = r->closed;
	arg = r->closed_arg;
	free(r);
	if (closed != NULL)
		closed(arg);
}

static void on_udp_closed(struct nb_udp *u)
{
	struct nb_upnp_run *r = u->arg;

	r->open_handles--;
	maybe_free(r);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct nb_upnp_run *r = h->data;

	r->open_handles--;
	maybe_free(r);
}

static void on_http_closed(void *arg)
{
	struct nb_upnp_run *r = arg;

	r->open_handles--;
	maybe_free(r);
}

static void finish(struct nb_upnp_run *r)
{
	if (r->finished)
		return;
	r->finished = true;
	uv_timer_stop(&r->timer);
	nb_udp_close(&r->ssdp, on_udp_closed);
	nb_http_close(r->http, on_http_closed, r); /* reports nothing more */
	r->http = NULL;
	uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

/* ---------------------------------------------------------------- the machine's outputs */

static void do_http(struct nb_upnp_run *r, const struct nb_upnp_out *o, uint64_t now)
{
	char url[NB_URL_MAX + 40];
	struct nb_http_request q;
	int rc;

	memset(&q, 0, sizeof(q));
	if (nb_url_format(&o->url, url, sizeof(url)) < 0) {
		rc = -ENOSPC;
	} else {
		q.id = o->http_id;
		q.url = url;
		q.post = o->post;
		q.body = o->bytes;
		q.body_len = o->len;
		q.headers = o->headers;
		q.max_response = o->max_response;
		q.timeout_ms = o->timeout_ms;
		rc = nb_http_start(r->http, &q);
	}
	if (rc != 0) {
		/* Tell the machine at once, as a failed transfer; it decides. */
		char err[96];
		snprintf(err, sizeof(err), "the HTTP request could not be started: %s", strerror(-rc));
		nb_log_warn("upnp", "%s", err);
		nb_upnp_http_done(&r->u, o->http_id, 0, NULL, 0, false, NULL, err, now);
	}
}

static void carry_out(struct nb_upnp_run *r, const struct nb_upnp_out *o, uint64_t now)
{
	int rc;

	switch (o->kind) {
	case NB_UPNP_OUT_SSDP:
		rc = nb_udp_send(&r->ssdp, o->bytes, o->len, &o->to);
		if (rc != 0)
			nb_log_debug("upnp", "M-SEARCH not sent: %s", uv_strerror(rc));
		break;
	case NB_UPNP_OUT_HTTP:
		if (!r->loaded && o->len <= sizeof(r->held_body)) {
			/* libcurl is still loading: the request waits (the out
			 * points into the machine, so the body is copied) */
			r->held = *o;
			if (o->len > 0)
				memcpy(r->held_body, o->bytes, o->len);
			r->held.bytes = r->held_body;
			r->have_held = true;
			break;
		}
		do_http(r, o, now);
		break;
	case NB_UPNP_OUT_CANCEL:
		if (r->have_held && r->held.http_id == o->http_id) {
			r->have_held = false; /* never started */
			break;
		}
		nb_http_cancel(r->http, o->http_id);
		break;
	}
}

static void on_timer(uv_timer_t *t);

/* Carry out everything the machine wants now, report its events, rearm the
 * timer; once stopping and closed, close everything. */
static void pump(struct nb_upnp_run *r)
{
	struct nb_upnp_out out;
	struct nb_upnp_event ev;
	uint64_t now, next;

	if (r->finished)
		return;
	if (r->in_pump) {
		r->pump_again = true;
		return;
	}
	r->in_pump = true;
	do {
		r->pump_again = false;
		now = nb_now_ms();
		while (nb_upnp_poll(&r->u, now, &out) == 1)
			carry_out(r, &out, now);
		while (nb_upnp_event(&r->u, &ev) == 1) {
			if (!r->stopping && r->cb != NULL)
				r->cb(r, &ev, nb_upnp_info(&r->u), r->arg);
		}
	} while (r->pump_again);
	r->in_pump = false;
	if (r->stopping && nb_upnp_closed(&r->u)) {
		finish(r);
		return;
	}
	next = nb_upnp_deadline(&r->u);
	now = nb_now_ms();
	if (next == UINT64_MAX)
		uv_timer_stop(&r->timer);
	else
		/* At least 1 ms: a deadline already due is polled again on the
		 * next loop iteration, never in a spin. */
		uv_timer_start(&r->timer, on_timer, next > now ? next - now : 1, 0);
}

/* ---------------------------------------------------------------- inputs */

static void on_timer(uv_timer_t *t)
{
	struct nb_upnp_run *r = t->data;

	/* A deadline may be about to decide "no gateway answered": first take
	 * the replies that have already arrived (libuv runs due timers before
	 * it polls for I/O). Each one pumps. */
	nb_udp_drain(&r->ssdp, SSDP_DRAIN_MAX);
	pump(r);
}

static void on_ssdp(struct nb_udp *u, const uint8_t *data, size_t len, const struct nb_addr *from, void *arg)
{
	struct nb_upnp_run *r = arg;

	(void)u;
	if (r->finished)
		return;
	nb_upnp_ssdp_input(&r->u, data, len, from, nb_now_ms());
	pump(r);
}

static void on_http_done(uint32_t id, int status, const uint8_t *body, size_t len, bool truncated,
			 const struct nb_addr *local, const char *err, void *arg)
{
	struct nb_upnp_run *r = arg;

	if (r->finished)
		return;
	nb_upnp_http_done(&r->u, id, status, body, len, truncated, local, err, nb_now_ms());
	pump(r);
}

/* ---------------------------------------------------------------- libcurl */

/* In the thread pool: the loop thread never waits for dlopen. */
static void load_work(uv_work_t *w)
{
	(void)w;
	(void)nb_http_preload();
}

static void load_done(uv_work_t *w, int status)
{
	struct nb_upnp_run *r = w->data;

	(void)status;
	r->loaded = true;
	r->open_handles--;
	if (r->finished) {
		maybe_free(r);
		return;
	}
	if (r->have_held) {
		r->have_held = false;
		do_http(r, &r->held, nb_now_ms());
		pump(r);
	}
}

/* ---------------------------------------------------------------- API */

int nb_upnp_run_open(struct nb_upnp_run **ret, uv_loop_t *loop, const struct nb_upnp_params *p,
		     nb_upnp_run_event_fn cb, void *arg)
{
	struct nb_upnp_run *r;
	struct nb_addr any;
	uint64_t seed = 0;
	int rc;

	if (ret == NULL || loop == NULL || p == NULL)
		return UV_EINVAL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return UV_ENOMEM;
	r->loop = loop;
	r->cb = cb;
	r->arg = arg;
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		seed = nb_now_ns();
	nb_upnp_init(&r->u, p, seed, nb_now_ms());

	memset(&any, 0, sizeof(any));
	any.family = NB_AF_INET;
	rc = nb_udp_open(&r->ssdp, loop, &any, 0, on_ssdp, r);
	if (rc != 0) {
		free(r); /* nothing was left open */
		return rc;
	}
	r->open_handles = 1;
	/* UDA 1.1: M-SEARCH with TTL 2. Multicast loop stays on: a gateway
	 * running on this very host (or a local SSDP proxy) must hear us. */
	rc = uv_udp_set_multicast_ttl(&r->ssdp.handle, NB_SSDP_TTL);
	if (rc != 0)
		nb_log_debug("upnp", "multicast TTL %d not set: %s", NB_SSDP_TTL, uv_strerror(rc));
	rc = nb_http_open(&r->http, loop, on_http_done, r);
	if (rc != 0) {
		r->finished = true;
		nb_udp_close(&r->ssdp, on_udp_closed); /* frees r from the loop */
		return rc; /* a negative errno: libuv's codes on Unix */
	}
	r->open_handles++;
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
	r->open_handles++;
	r->load.data = r;
	if (uv_queue_work(loop, &r->load, load_work, load_done) == 0)
		r->open_handles++; /* load_done runs even after a stop */
	else
		r->loaded = true; /* no thread pool: the first request loads it */
	nb_upnp_start(&r->u, nb_now_ms());
	/* The first pump runs from the loop, so no event is reported from
	 * inside this call (the caller has not even got *ret yet). */
	uv_timer_start(&r->timer, on_timer, 0, 0);
	*ret = r;
	return 0;
}

void nb_upnp_run_set_reflexive(struct nb_upnp_run *r, const struct nb_addr *reflexive)
{
	if (r == NULL || r->stopping || reflexive == NULL)
		return;
	nb_upnp_set_reflexive(&r->u, reflexive, nb_now_ms());
	pump(r);
}

void nb_upnp_run_check_now(struct nb_upnp_run *r)
{
	if (r == NULL || r->stopping)
		return;
	nb_upnp_check_now(&r->u, nb_now_ms());
	pump(r);
}

const struct nb_upnp_info *nb_upnp_run_info(const struct nb_upnp_run *r)
{
	return nb_upnp_info(&r->u);
}

void nb_upnp_run_stop(struct nb_upnp_run *r, nb_upnp_run_closed_fn closed, void *arg)
{
	if (r == NULL || r->stopping)
		return;
	r->stopping = true;
	r->closed = closed;
	r->closed_arg = arg;
	nb_upnp_stop(&r->u, nb_now_ms());
	/* Carries out the delete (or the cancels), and closes once the
	 * machine is CLOSED; the machine bounds that by stop_ms. */
	pump(r);
}
