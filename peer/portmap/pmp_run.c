/* peer/portmap/pmp_run.c - the libuv shell around peer/portmap/pmp: a
 * connected UDP socket and a timer. It moves bytes and time only; what to
 * send, when, and every timeout come from the state machine.
 *
 * The socket is connected to the gateway's port 5351, so the kernel drops
 * datagrams from anyone else (the machine checks the source again) and an
 * ICMP port unreachable comes back as ECONNREFUSED: no NAT-PMP or PCP there.
 *
 * Re-entrancy and lifetime as in upnp_run.c: the event callback may call
 * _stop(), _set_reflexive() or _check_now(); the struct is freed once the
 * socket and the timer have closed, then `closed` runs. */
#include "peer/portmap/pmp_run.h"

#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "common/time.h"
#include "peer/portmap/gateway.h"

#define LOG "pmp"
/* /proc/net/route is a few lines per route; more than this is not read. */
#define ROUTE_MAX 65536

struct nb_pmp_run {
	uv_udp_t udp;
	uv_timer_t timer;
	struct nb_pmp m;
	nb_pmp_run_event_fn cb;
	void *arg;
	bool in_pump, pump_again;
	bool stopping, finished;
	int open_handles;
	nb_pmp_run_closed_fn closed;
	void *closed_arg;
	uint8_t rbuf[NB_PCP_MAX + 4];
};

static void pump(struct nb_pmp_run *r);

static void maybe_free(struct nb_pmp_run *r)
{
	nb_pmp_run_closed_fn closed = r->closed;
	void *arg = r->closed_arg;

	if (r->open_handles > 0)
		return;
	free(r);
	if (closed != NULL)
		closed(arg);
}

static void on_closed(uv_handle_t *h)
{
	struct nb_pmp_run *r = h->data;

	r->open_handles--;
	maybe_free(r);
}

static void finish(struct nb_pmp_run *r)
{
	if (r->finished)
		return;
	r->finished = true;
	uv_udp_recv_stop(&r->udp);
	uv_timer_stop(&r->timer);
	uv_close((uv_handle_t *)&r->udp, on_closed);
	uv_close((uv_handle_t *)&r->timer, on_closed);
}

static void on_timer(uv_timer_t *t)
{
	pump(t->data);
}

static void pump(struct nb_pmp_run *r)
{
	struct nb_pmp_out out;
	struct nb_pmp_event ev;
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
		while (nb_pmp_poll(&r->m, now, &out) == 1) {
			uv_buf_t b = uv_buf_init((char *)out.bytes, (unsigned)out.len);
			int rc = uv_udp_try_send(&r->udp, &b, 1, NULL); /* connected */

			if (rc < 0 && rc != UV_ECONNREFUSED)
				nb_log_debug(LOG, "request not sent: %s", uv_strerror(rc));
			else if (rc == UV_ECONNREFUSED)
				nb_pmp_unreachable(&r->m, now);
		}
		while (nb_pmp_event(&r->m, &ev) == 1) {
			if (!r->stopping && r->cb != NULL)
				r->cb(r, &ev, nb_pmp_info(&r->m), r->arg);
		}
	} while (r->pump_again);
	r->in_pump = false;
	if (r->stopping && nb_pmp_closed(&r->m)) {
		finish(r);
		return;
	}
	next = nb_pmp_deadline(&r->m);
	now = nb_now_ms();
	if (next == UINT64_MAX)
		uv_timer_stop(&r->timer);
	else
		uv_timer_start(&r->timer, on_timer, next > now ? next - now : 1, 0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct nb_pmp_run *r = h->data;

	(void)hint;
	*buf = uv_buf_init((char *)r->rbuf, sizeof(r->rbuf));
}

static void on_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *sa, unsigned flags)
{
	struct nb_pmp_run *r = h->data;
	struct nb_addr from;

	(void)flags;
	if (r->finished)
		return;
	if (n == UV_ECONNREFUSED) {
		nb_pmp_unreachable(&r->m, nb_now_ms());
		pump(r);
		return;
	}
	if (n <= 0 || sa == NULL || nb_addr_from_sockaddr(sa, &from) != 0)
		return;
	if ((size_t)n > NB_PCP_MAX) /* longer than any answer: ignored, as truncated */
		return;
	nb_pmp_input(&r->m, (const uint8_t *)buf->base, (size_t)n, &from, nb_now_ms());
	pump(r);
}

/* The default gateway from /proc/net/route (IPv4) or /proc/net/ipv6_route
 * (v6). RFC 6887 §8.1: the PCP server is the default router. A link-local
 * IPv6 next hop (what router advertisements give) gets its interface's index
 * as the scope (*scope; 0 otherwise). */
static int default_gateway(bool v6, struct nb_addr *gw, uint32_t *scope, char *why, size_t why_len)
{
	const char *path = v6 ? "/proc/net/ipv6_route" : "/proc/net/route";
	char *text = malloc(ROUTE_MAX);
	char ifname[NB_GATEWAY_IFNAME_MAX];
	size_t len = 0;
	FILE *f;
	int rc;

	*scope = 0;
	if (text == NULL)
		return UV_ENOMEM;
	f = fopen(path, "re");
	if (f == NULL) {
		snprintf(why, why_len, "cannot read %s: %s", path, strerror(errno));
		free(text);
		return UV_ENOENT;
	}
	len = fread(text, 1, ROUTE_MAX - 1, f);
	fclose(f);
	text[len] = '\0';
	rc = v6 ? nb_gateway_parse_ipv6_route(text, len, gw, ifname)
		: nb_gateway_parse_proc_route(text, len, gw, ifname);
	free(text);
	if (rc == -ENOENT) {
		snprintf(why, why_len, "no default IPv%c route, so no gateway to ask", v6 ? '6' : '4');
		return UV_ENOENT;
	}
	if (rc != 0) {
		snprintf(why, why_len, "cannot parse %s", path);
		return UV_EINVAL;
	}
	if (v6 && nb_addr_is_link_local(gw)) {
		*scope = if_nametoindex(ifname);
		if (*scope == 0) {
			snprintf(why, why_len, "the default IPv6 route's interface %s is gone", ifname);
			return UV_ENOENT;
		}
	}
	nb_log_debug(LOG, "default gateway via %s", ifname);
	return 0;
}

int nb_pmp_run_open(struct nb_pmp_run **ret, uv_loop_t *loop, const struct nb_pmp_params *p,
		    const struct nb_addr *gateway, const struct nb_addr *client6, nb_pmp_run_event_fn cb, void *arg,
		    char *why, size_t why_len)
{
	struct sockaddr_storage ss, local;
	struct nb_addr gw, client;
	struct nb_pmp_run *r;
	uint8_t nonce[NB_PCP_NONCE_LEN];
	char dummy[8];
	bool v6 = client6 != NULL && client6->family == NB_AF_INET6;
	uint32_t scope = 0;
	int namelen = sizeof(ss);
	int rc;

	if (why == NULL) {
		why = dummy;
		why_len = sizeof(dummy);
	}
	why[0] = '\0';
	if (gateway != NULL && gateway->family == (v6 ? NB_AF_INET6 : NB_AF_INET)) {
		gw = *gateway;
	} else {
		rc = default_gateway(v6, &gw, &scope, why, why_len);
		if (rc != 0)
			return rc;
	}
	gw.port = NB_NATPMP_PORT;
	/* bound to the host's own address (IPv6: the one the mapping is for,
	 * whatever source the kernel would pick toward a link-local router) */
	memset(&local, 0, sizeof(local));
	if (v6) {
		client = *client6;
		client.port = 0;
		if (nb_addr_to_sockaddr(&client, &local) < 0)
			return UV_EINVAL;
	} else {
		((struct sockaddr_in *)&local)->sin_family = AF_INET;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return UV_ENOMEM;
	r->cb = cb;
	r->arg = arg;
	uv_udp_init(loop, &r->udp);
	uv_timer_init(loop, &r->timer);
	r->udp.data = r->timer.data = r;
	r->open_handles = 2;
	rc = uv_udp_bind(&r->udp, (const struct sockaddr *)&local, 0);
	if (rc == 0 && nb_addr_to_sockaddr(&gw, &ss) < 0)
		rc = UV_EINVAL;
	if (rc == 0 && v6)
		((struct sockaddr_in6 *)&ss)->sin6_scope_id = scope;
	if (rc == 0)
		rc = uv_udp_connect(&r->udp, (const struct sockaddr *)&ss);
	if (rc == 0)
		rc = uv_udp_getsockname(&r->udp, (struct sockaddr *)&ss, &namelen);
	if (rc == 0 && nb_addr_from_sockaddr((const struct sockaddr *)&ss, &client) != 0)
		rc = UV_EINVAL;
	if (rc == 0)
		rc = uv_udp_recv_start(&r->udp, on_alloc, on_recv);
	if (rc != 0) {
		char g[NB_ADDR_STRLEN];

		snprintf(why, why_len, "cannot reach the gateway %s: %s", nb_addr_format(&gw, g, sizeof(g)),
			 uv_strerror(rc));
		r->stopping = true;
		finish(r); /* frees r from the loop */
		return rc;
	}
	if (getrandom(nonce, sizeof(nonce), GRND_NONBLOCK) != (ssize_t)sizeof(nonce)) {
		uint64_t t = nb_now_ns();

		memcpy(nonce, &t, sizeof(t));
		memcpy(nonce + sizeof(t), &r, sizeof(nonce) - sizeof(t));
	}
	nb_pmp_init(&r->m, p, &gw, &client, nonce, nb_now_ms());
	nb_pmp_start(&r->m, nb_now_ms());
	/* the first pump runs from the loop: no event from inside this call */
	uv_timer_start(&r->timer, on_timer, 0, 0);
	*ret = r;
	return 0;
}

void nb_pmp_run_set_reflexive(struct nb_pmp_run *r, const struct nb_addr *reflexive)
{
	if (r == NULL || r->stopping || reflexive == NULL)
		return;
	nb_pmp_set_reflexive(&r->m, reflexive, nb_now_ms());
	pump(r);
}

void nb_pmp_run_check_now(struct nb_pmp_run *r)
{
	if (r == NULL || r->stopping)
		return;
	nb_pmp_check_now(&r->m, nb_now_ms());
	pump(r);
}

const struct nb_pmp_info *nb_pmp_run_info(const struct nb_pmp_run *r)
{
	return nb_pmp_info(&r->m);
}

bool nb_pmp_run_answered(const struct nb_pmp_run *r)
{
	return nb_pmp_answered(&r->m);
}

void nb_pmp_run_stop(struct nb_pmp_run *r, nb_pmp_run_closed_fn closed, void *arg)
{
	if (r == NULL || r->stopping)
		return;
	r->stopping = true;
	r->closed = closed;
	r->closed_arg = arg;
	nb_pmp_stop(&r->m, nb_now_ms());
	pump(r);
}
