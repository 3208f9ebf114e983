/* broker/status_run.c - the status port: "status" in, one JSON object out, from 127.0.0.1 only. */
#include "broker/status_run.h"

#include "broker/plink.h"

#include <stdlib.h>
#include <string.h>

#include "broker/status.h"
#include "common/addr.h"
#include "common/log.h"

#define LOG "status"
/* A request is a few bytes; a longer datagram arrives truncated and is dropped. */
#define RBUF_LEN 64
#define SAMPLE_MS 1000

struct nb_status_server {
	uv_udp_t udp;
	uv_timer_t timer;
	uv_loop_t *loop;
	const struct nb_server *srv;
	const struct nb_server_config *cfg;
	uint64_t start_ms;
	unsigned open_handles; /* freed at 0 */
	bool rbuf_busy;
	struct nb_status_rate rate;
	char rbuf[RBUF_LEN];
	char out[NB_STATUS_MAX_LEN];
};

/* What answers_per_s counts: STUN responses over UDP (success and error)
 * and control-message replies. */
static uint64_t answers_total(const struct nb_server_stats *st, const struct nb_rendezvous_stats *rv)
{
	return st->udp_answered + st->udp_errors_sent + rv->replies;
}

static void on_sample(uv_timer_t *t)
{
	struct nb_status_server *s = t->data;
	struct nb_rendezvous_stats rv;

	nb_server_rendezvous_stats(s->srv, &rv);
	nb_status_rate_sample(&s->rate, uv_now(s->loop),
			      answers_total(nb_server_stats(s->srv), &rv));
}

static void snapshot(struct nb_status_server *s, struct nb_status_snapshot *out)
{
	const struct nb_server_stats *st = nb_server_stats(s->srv);
	struct nb_rendezvous_stats rv;
	uint64_t now = uv_now(s->loop);

	nb_server_rendezvous_stats(s->srv, &rv);
	memset(out, 0, sizeof(*out));
	out->version = NB_VERSION;
	out->key = s->cfg->pubkey_text[0] != '\0' ? s->cfg->pubkey_text : NULL;
	{
		struct nb_plink_stats ps;
		nb_server_plink_stats(s->srv, &ps);
		out->links = ps.sessions;
		out->handshakes = ps.handshakes;
		out->handshake_failures = ps.handshake_fail;
		out->unsealed = rv.unsealed;
		out->key_conflicts = rv.key_conflicts;
	}
	{
		const struct nb_turn_stats *ts = nb_server_turn_stats(s->srv);
		out->relay_mode = ts != NULL ? NB_STATUS_RELAY_TURN
				  : s->cfg->n_relays > 0 ? NB_STATUS_RELAY_EXTERNAL : NB_STATUS_RELAY_OFF;
		if (ts != NULL) {
			out->turn = *ts;
			out->relay_max_allocations = s->cfg->turn_cfg.max_allocs;
		}
		out->relay_sockets = st->relay_sockets;
		out->tcp_control = st->tcp_control;
		out->tcp_turn = st->tcp_turn;
		out->tcp_write_dropped = st->tcp_write_dropped;
	}
	out->uptime_s = (now - s->start_ms) / 1000;
	out->answers_milli_per_s = nb_status_rate_milli(&s->rate, now, answers_total(st, &rv));
	out->peers = rv.peers;
	out->sessions = rv.sessions;
	out->pairs = rv.pairs;
	out->max_peers = s->cfg->max_peers;
	out->max_sessions = s->cfg->max_sessions;
	out->answers_stun_udp = st->udp_answered + st->udp_errors_sent;
	out->answers_control = rv.replies;
	out->refusals = st->refusals;
	out->udp_received = st->udp_rx;
	out->udp_answered = st->udp_answered;
	out->udp_errors = st->udp_errors_sent;
	memcpy(out->dropped, st->drops, sizeof(out->dropped));
	out->tcp_accepted = st->tcp_accepted;
	out->tcp_requests = st->tcp_requests;
	out->tcp_waits_at_limit = st->tcp_refused_full;
	out->ctl_received = rv.rx;
	out->ctl_replies = rv.replies;
	out->ctl_errors = rv.errors;
	out->ctl_undecodable = rv.undecodable;
	out->ctl_registers = rv.registers;
	out->ctl_keepalives = rv.keepalives;
	out->ctl_connects = rv.connects;
	out->ctl_results = rv.results;
	out->ctl_expired = rv.expired;
	out->ctl_relay_plans = rv.relay_plans;
	out->ctl_birthday_plans = rv.birthday_plans;
	out->ctl_registers_also = rv.registers_also;
	out->ctl_rtt_timed = rv.rtt_timed;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct nb_status_server *s = h->data;

	(void)suggested;
	if (s->rbuf_busy) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	s->rbuf_busy = true;
	*buf = uv_buf_init(s->rbuf, sizeof(s->rbuf));
}

static void on_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
		    unsigned flags)
{
	struct nb_status_server *s = u->data;
	struct nb_status_snapshot snap;
	struct nb_addr from;
	ssize_t n;
	uv_buf_t b;

	if (buf->base == s->rbuf)
		s->rbuf_busy = false;
	/* nread 0 with no address: the buffer came back unused. */
	if (nread <= 0 || addr == NULL || (flags & UV_UDP_PARTIAL))
		return;
	if (nb_addr_from_sockaddr(addr, &from) != 0 || !nb_addr_is_loopback(&from) || from.port == 0)
		return;
	if (!nb_status_is_request((const uint8_t *)buf->base, (size_t)nread))
		return;
	snapshot(s, &snap);
	n = nb_status_format(&snap, s->out, sizeof(s->out));
	if (n <= 0)
		return;
	b = uv_buf_init(s->out, (unsigned)n);
	uv_udp_try_send(u, &b, 1, addr);
}

static void on_closed(uv_handle_t *h)
{
	struct nb_status_server *s = h->data;

	if (--s->open_handles == 0)
		free(s);
}

void nb_status_server_close(struct nb_status_server *s)
{
	if (s == NULL)
		return;
	uv_close((uv_handle_t *)&s->udp, on_closed);
	uv_close((uv_handle_t *)&s->timer, on_closed);
}

int nb_status_server_open(uv_loop_t *loop, const struct nb_server *srv,
			  const struct nb_server_config *cfg, uint16_t port,
			  struct nb_status_server **ret)
{
	struct nb_status_server *s = calloc(1, sizeof(*s));
	struct sockaddr_storage ss;
	struct nb_addr a;
	char as[NB_ADDR_STRLEN];
	int rc;

	if (s == NULL)
		return UV_ENOMEM;
	s->loop = loop;
	s->srv = srv;
	s->cfg = cfg;
	s->udp.data = s;
	s->timer.data = s;
	memset(&a, 0, sizeof(a));
	a.family = NB_AF_INET;
	a.ip[0] = 127;
	a.ip[3] = 1;
	a.port = port;
	nb_addr_format(&a, as, sizeof(as));
	if (nb_addr_to_sockaddr(&a, &ss) < 0) {
		free(s);
		return UV_EAFNOSUPPORT;
	}
	rc = uv_udp_init(loop, &s->udp);
	if (rc != 0) {
		free(s);
		nb_log_error(LOG, "cannot open the status port %s: %s", as, uv_strerror(rc));
		return rc;
	}
	rc = uv_timer_init(loop, &s->timer);
	if (rc != 0) {
		s->open_handles = 1;
		uv_close((uv_handle_t *)&s->udp, on_closed);
		nb_log_error(LOG, "cannot open the status port %s: %s", as, uv_strerror(rc));
		return rc;
	}
	s->open_handles = 2;
	rc = uv_udp_bind(&s->udp, (const struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_udp_recv_start(&s->udp, on_alloc, on_recv);
	if (rc != 0) {
		nb_log_error(LOG, "cannot open the status port %s: %s", as, uv_strerror(rc));
		nb_status_server_close(s);
		return rc;
	}
	s->start_ms = uv_now(loop);
	on_sample(&s->timer);
	uv_timer_start(&s->timer, on_sample, SAMPLE_MS, SAMPLE_MS);
	nb_log_info(LOG, "status on udp %s: send it the datagram \"status\"", as);
	*ret = s;
	return 0;
}
