/* peer/xport_run.c - the TCP transport shell: usrsctp on one libuv loop (docs/forwarding.md). */
#include "peer/xport_run.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <usrsctp.h>

#define XPORTS_CAP 256          /* xports per process */
#define CONNS_CAP NB_XPORT_IDS_MAX /* connections per process */
#define FINISH_TRIES 8          /* usrsctp_finish attempts before we leave the stack up */
#define CLOSING_MAX_MS 30000    /* SHUTDOWN not complete by then: ABORT */
#define PORT_MIN 1024
#define LISTEN_BACKLOG 128
#define WRITE_MIN_CHUNK 4096

enum conn_state {
	ST_CONNECTING = 1, /* opener: INIT sent, waiting for COMM_UP */
	ST_OPENING,        /* opener: "open" sent, waiting for "ok"/"refused" */
	ST_AWAIT_OPEN,     /* acceptor: accepted, waiting for "open" */
	ST_OPEN,           /* data flows */
	ST_CLOSING,        /* SHUTDOWN started (or refused): waiting for the association to go */
};

struct nb_xconn {
	struct nb_xport *x;
	struct nb_xconn *next;
	struct socket *so;
	uint32_t id;
	uint16_t lport;
	enum conn_state state;
	bool pending;       /* an upcall came: read/act on the next idle run */
	bool visible;       /* the caller knows it (until a final event) */
	bool dead;          /* socket closed; freed at the end of the idle run */
	bool paused, want_writable;
	bool fin_queued, fin_sent, fin_rcvd, dry;
	uint64_t closing_since;
	uint64_t written;
	void *user;
};

struct nb_xport {
	uv_loop_t *loop;
	uv_timer_t timer;
	uv_idle_t idle;
	int handles;
	uint32_t id;
	bool freeing;
	struct nb_xport_cbs cbs;
	unsigned max_assocs;
	struct socket *lsock;
	bool accept_ready;
	struct nb_xconn *conns;
	unsigned nconns; /* live (not dead) connections */
	uint16_t next_port;
	struct nb_xport_stats stats;
	uint8_t rbuf[NB_XPORT_DATA_MAX];
};

/* The process-wide usrsctp stack. */
static struct {
	bool tables;
	bool up;
	int users;
	unsigned finish_failures;
	uint64_t last_tick;
	struct nb_xport_id_slot xslots[XPORTS_CAP], cslots[CONNS_CAP];
	struct nb_xport_ids xports, conns;
} g;

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000u;
}

/* usrsctp -> the peer: addr is the xport's ID, never a pointer. */
static int conn_output(void *addr, void *buf, size_t len, uint8_t tos, uint8_t set_df)
{
	struct nb_xport *x = nb_xport_ids_get(&g.xports, (uint32_t)(uintptr_t)addr);

	(void)tos;
	(void)set_df;
	if (!x)
		return 0; /* an ID that is gone: drop */
	if (len > NB_XPORT_MAX_PACKET) {
		x->stats.pkts_too_big++;
		return 0;
	}
	x->stats.pkts_out++;
	x->stats.bytes_out += len;
	if (len > x->stats.max_pkt_out)
		x->stats.max_pkt_out = len;
	x->cbs.send(x->cbs.arg, buf, len);
	return 0;
}

static void stack_acquire(void)
{
	if (!g.tables) {
		nb_xport_ids_init(&g.xports, g.xslots, XPORTS_CAP);
		nb_xport_ids_init(&g.conns, g.cslots, CONNS_CAP);
		g.tables = true;
	}
	if (!g.up) {
		usrsctp_init_nothreads(0, conn_output, NULL);
		/* Off what we do not use (asconf before auth: asconf needs auth). */
		usrsctp_sysctl_set_sctp_asconf_enable(0);
		usrsctp_sysctl_set_sctp_auth_enable(0);
		usrsctp_sysctl_set_sctp_pr_enable(0);
		usrsctp_sysctl_set_sctp_ecn_enable(0);
		usrsctp_sysctl_set_sctp_nrsack_enable(0);
		usrsctp_sysctl_set_sctp_reconfig_enable(0);
		usrsctp_sysctl_set_sctp_initial_cwnd(10);
		usrsctp_sysctl_set_sctp_delayed_sack_time_default(20);
		usrsctp_sysctl_set_sctp_rto_min_default(200);
		g.up = true;
		g.last_tick = now_ms();
	}
	g.users++;
}

/* usrsctp_finish returns -1 while any socket remains: then the stack stays
 * up, a later acquire reuses it and a later release tries again, up to
 * FINISH_TRIES times. */
static void stack_release(void)
{
	if (--g.users > 0 || !g.up || g.finish_failures >= FINISH_TRIES)
		return;
	if (usrsctp_finish() == 0) {
		g.up = false;
		g.finish_failures = 0;
		return;
	}
	g.finish_failures++;
}

void nb_xport_stack_state(int *ret_users, bool *ret_up, unsigned *ret_finish_failures)
{
	if (ret_users)
		*ret_users = g.users;
	if (ret_up)
		*ret_up = g.up;
	if (ret_finish_failures)
		*ret_finish_failures = g.finish_failures;
}

static void on_idle(uv_idle_t *h);

static void kick(struct nb_xport *x)
{
	if (!x->freeing && !uv_is_active((uv_handle_t *)&x->idle))
		uv_idle_start(&x->idle, on_idle);
}

/* Upcalls run inside usrsctp: they only set flags. */
static void conn_upcall(struct socket *so, void *arg, int flags)
{
	struct nb_xconn *c = nb_xport_ids_get(&g.conns, (uint32_t)(uintptr_t)arg);

	(void)so;
	(void)flags;
	if (!c || c->dead)
		return;
	c->pending = true;
	kick(c->x);
}

static void listen_upcall(struct socket *so, void *arg, int flags)
{
	struct nb_xport *x = nb_xport_ids_get(&g.xports, (uint32_t)(uintptr_t)arg);

	(void)so;
	(void)flags;
	if (!x)
		return;
	x->accept_ready = true;
	kick(x);
}

static int setopt(struct socket *so, int level, int name, const void *v, socklen_t n)
{
	return usrsctp_setsockopt(so, level, name, v, n) < 0 ? NB_XPORT_E_SCTP : 0;
}

/* The per-association options of docs/forwarding.md. On a socket that is
 * not connected yet they become the defaults of its future association; an
 * accepted socket inherits the listener's path parameters (usrsctp 0.9.5
 * refuses SCTP_PEER_ADDR_PARAMS without an address there: EAFNOSUPPORT). */
static int apply_opts(struct socket *so, bool accepted)
{
	static const uint16_t events[] = { SCTP_ASSOC_CHANGE, SCTP_SENDER_DRY_EVENT };
	struct sctp_paddrparams pp;
	struct sctp_initmsg im;
	int on = 1, buf = NB_XPORT_SOCKBUF, r = 0;

	if (usrsctp_set_non_blocking(so, 1) < 0)
		return NB_XPORT_E_SCTP;
	memset(&pp, 0, sizeof(pp));
	pp.spp_flags = SPP_PMTUD_DISABLE | SPP_HB_DISABLE;
	pp.spp_pathmtu = NB_XPORT_PATHMTU;
	if (!accepted)
		r |= setopt(so, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &pp, sizeof(pp));
	r |= setopt(so, IPPROTO_SCTP, SCTP_NODELAY, &on, sizeof(on));
	r |= setopt(so, IPPROTO_SCTP, SCTP_RECVRCVINFO, &on, sizeof(on));
	r |= setopt(so, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	r |= setopt(so, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	memset(&im, 0, sizeof(im));
	im.sinit_num_ostreams = 1;
	im.sinit_max_instreams = 1;
	r |= setopt(so, IPPROTO_SCTP, SCTP_INITMSG, &im, sizeof(im));
	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		struct sctp_event ev;

		memset(&ev, 0, sizeof(ev));
		ev.se_assoc_id = SCTP_FUTURE_ASSOC;
		ev.se_type = events[i];
		ev.se_on = 1;
		r |= setopt(so, IPPROTO_SCTP, SCTP_EVENT, &ev, sizeof(ev));
	}
	return r ? NB_XPORT_E_SCTP : 0;
}

static void close_socket(struct socket **so, bool abort)
{
	if (!*so)
		return;
	usrsctp_set_upcall(*so, NULL, NULL);
	if (abort) {
		struct linger l = { 1, 0 };

		usrsctp_setsockopt(*so, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	usrsctp_close(*so);
	*so = NULL;
}

static void emit(struct nb_xconn *c, enum nb_xport_event ev, const uint8_t *d, size_t n)
{
	struct nb_xport *x = c->x;

	if (c->visible && x->cbs.event)
		x->cbs.event(x->cbs.arg, c, ev, d, n);
}

/* The end of a connection: close (ABORT for a reset), one final event if
 * the caller knows it; the memory goes at the end of the idle run. */
static void conn_finish(struct nb_xconn *c, enum nb_xport_event ev)
{
	if (c->dead)
		return;
	close_socket(&c->so, ev != NB_XPORT_EV_CLOSED);
	c->dead = true;
	c->x->nconns--;
	if (c->visible) {
		emit(c, ev, NULL, 0);
		c->visible = false;
	}
	kick(c->x);
}

static void protocol_error(struct nb_xconn *c)
{
	c->x->stats.protocol_errors++;
	conn_finish(c, NB_XPORT_EV_RESET);
}

static ssize_t send_msg(struct nb_xconn *c, uint32_t ppid, const uint8_t *buf, size_t len)
{
	struct sctp_sndinfo si;
	ssize_t r;

	memset(&si, 0, sizeof(si));
	si.snd_sid = 0;
	si.snd_ppid = htonl(ppid);
	r = usrsctp_sendv(c->so, buf, len, NULL, 0, &si, sizeof(si), SCTP_SENDV_SNDINFO, 0);
	if (r < 0)
		return errno == EWOULDBLOCK || errno == EAGAIN ? -EAGAIN : NB_XPORT_E_SCTP;
	c->dry = false;
	return r;
}

static int send_ctrl(struct nb_xconn *c, enum nb_xport_msg_type type, const char *service)
{
	uint8_t m[NB_XPORT_MSG_MAX];
	ssize_t n = nb_xport_msg_encode(type, service, m, sizeof(m));

	if (n < 0)
		return (int)n;
	n = send_msg(c, nb_xport_msg_ppid(type), m, (size_t)n);
	return n < 0 ? (int)n : 0;
}

/* Graceful SHUTDOWN once both "fin"s are through and the sender is dry. */
static void maybe_close(struct nb_xconn *c)
{
	if (c->dead || c->state != ST_OPEN || !c->fin_sent || !c->fin_rcvd || !c->dry)
		return;
	c->state = ST_CLOSING;
	c->closing_since = now_ms();
	if (usrsctp_shutdown(c->so, SHUT_WR) < 0 && errno != ENOTCONN)
		conn_finish(c, NB_XPORT_EV_RESET);
}

static void try_fin(struct nb_xconn *c)
{
	int r = send_ctrl(c, NB_XPORT_MSG_FIN, NULL);

	if (r == -EAGAIN) {
		c->want_writable = true;
		return;
	}
	if (r < 0) {
		conn_finish(c, NB_XPORT_EV_RESET);
		return;
	}
	c->fin_sent = true;
	maybe_close(c);
}

static void on_open_msg(struct nb_xconn *c, const struct nb_xport_msg *m)
{
	struct nb_xport *x = c->x;
	char service[NB_XPORT_SERVICE_MAX + 1];
	bool ok;

	memcpy(service, m->body, m->len);
	service[m->len] = '\0';
	ok = x->cbs.accept && x->cbs.accept(x->cbs.arg, c, service);
	if (c->dead)
		return;
	if (ok) {
		if (send_ctrl(c, NB_XPORT_MSG_OK, NULL) < 0) {
			conn_finish(c, NB_XPORT_EV_RESET);
			return;
		}
		c->state = ST_OPEN;
		c->visible = true;
		emit(c, NB_XPORT_EV_OPEN, NULL, 0);
		return;
	}
	x->stats.opens_refused++;
	if (send_ctrl(c, NB_XPORT_MSG_REFUSED, NULL) < 0 || usrsctp_shutdown(c->so, SHUT_WR) < 0) {
		conn_finish(c, NB_XPORT_EV_RESET);
		return;
	}
	c->state = ST_CLOSING;
	c->closing_since = now_ms();
}

static void on_message(struct nb_xconn *c, uint32_t ppid, const uint8_t *buf, size_t n, bool eor)
{
	struct nb_xport_msg m;

	if (nb_xport_msg_decode(ppid, buf, n, &m) < 0 || (!eor && m.type != NB_XPORT_MSG_DATA)) {
		protocol_error(c);
		return;
	}
	switch (c->state) {
	case ST_AWAIT_OPEN:
		if (m.type != NB_XPORT_MSG_OPEN) {
			protocol_error(c);
			return;
		}
		on_open_msg(c, &m);
		return;
	case ST_CONNECTING:
	case ST_OPENING:
		if (m.type == NB_XPORT_MSG_OK) {
			c->state = ST_OPEN;
			emit(c, NB_XPORT_EV_OPEN, NULL, 0);
		} else if (m.type == NB_XPORT_MSG_REFUSED) {
			/* The acceptor shuts down; we wait for the association to go. */
			emit(c, NB_XPORT_EV_REFUSED, NULL, 0);
			c->visible = false;
			if (!c->dead) {
				c->state = ST_CLOSING;
				c->closing_since = now_ms();
			}
		} else {
			protocol_error(c);
		}
		return;
	case ST_OPEN:
		if (c->fin_rcvd || (m.type != NB_XPORT_MSG_DATA && m.type != NB_XPORT_MSG_FIN)) {
			protocol_error(c);
			return;
		}
		if (m.type == NB_XPORT_MSG_DATA) {
			emit(c, NB_XPORT_EV_DATA, m.body, m.len);
			return;
		}
		c->fin_rcvd = true;
		emit(c, NB_XPORT_EV_EOF, NULL, 0);
		maybe_close(c);
		return;
	default:
		protocol_error(c);
		return;
	}
}

static void on_notification(struct nb_xconn *c, const uint8_t *buf, size_t n)
{
	uint16_t type, state;

	if (n < sizeof(type))
		return;
	memcpy(&type, buf, sizeof(type));
	if (type == SCTP_SENDER_DRY_EVENT) {
		c->dry = true;
		maybe_close(c);
		return;
	}
	if (type != SCTP_ASSOC_CHANGE || n < sizeof(struct sctp_assoc_change))
		return;
	memcpy(&state, buf + offsetof(struct sctp_assoc_change, sac_state), sizeof(state));
	switch (state) {
	case SCTP_COMM_UP:
		if (c->state == ST_CONNECTING)
			c->state = ST_OPENING; /* the "open" was queued by nb_xport_open */
		return;
	case SCTP_SHUTDOWN_COMP:
		/* The peer's SHUTDOWN-ACK came only after all our data was
		 * acknowledged: with both "fin"s through, that is a clean close
		 * even if our DRY event has not been read yet. */
		conn_finish(c, c->state == ST_CLOSING || (c->state == ST_OPEN && c->fin_sent && c->fin_rcvd)
				       ? NB_XPORT_EV_CLOSED
				       : NB_XPORT_EV_RESET);
		return;
	case SCTP_COMM_LOST:
	case SCTP_CANT_STR_ASSOC:
		conn_finish(c, NB_XPORT_EV_RESET);
		return;
	default:
		return;
	}
}

static void conn_process(struct nb_xconn *c)
{
	struct nb_xport *x = c->x;

	/* A paused connection reads nothing, but an ABORT from the peer
	 * (so_error set, SCTP_EVENT_ERROR) still ends it. */
	if (c->paused && c->state == ST_OPEN && (usrsctp_get_events(c->so) & SCTP_EVENT_ERROR)) {
		conn_finish(c, NB_XPORT_EV_RESET);
		return;
	}
	while (!c->dead && !(c->paused && c->state == ST_OPEN)) {
		struct sockaddr_conn from;
		struct sctp_rcvinfo rcv;
		socklen_t fromlen = sizeof(from), infolen = sizeof(rcv);
		unsigned int infotype = 0;
		int flags = 0;
		ssize_t n;

		memset(&rcv, 0, sizeof(rcv));
		n = usrsctp_recvv(c->so, x->rbuf, sizeof(x->rbuf), (struct sockaddr *)&from, &fromlen, &rcv,
				  &infolen, &infotype, &flags);
		if (n < 0) {
			if (errno == EWOULDBLOCK || errno == EAGAIN)
				break;
			conn_finish(c, NB_XPORT_EV_RESET);
			return;
		}
		if (n == 0) {
			/* The peer's SHUTDOWN (or the association is gone). */
			if (c->state == ST_CLOSING)
				break; /* SHUTDOWN_COMP follows */
			if (c->state == ST_OPEN && c->fin_sent && c->fin_rcvd) {
				c->dry = true; /* SCTP sends SHUTDOWN only when all is acked */
				maybe_close(c);
				break;
			}
			conn_finish(c, NB_XPORT_EV_RESET);
			return;
		}
		if (flags & MSG_NOTIFICATION) {
			on_notification(c, x->rbuf, (size_t)n);
			continue;
		}
		if (infotype != SCTP_RECVV_RCVINFO) {
			protocol_error(c);
			return;
		}
		on_message(c, ntohl(rcv.rcv_ppid), x->rbuf, (size_t)n, (flags & MSG_EOR) != 0);
	}
	if (c->dead || !c->want_writable || c->state != ST_OPEN)
		return;
	if (!(usrsctp_get_events(c->so) & SCTP_EVENT_WRITE))
		return;
	c->want_writable = false;
	if (c->fin_queued && !c->fin_sent)
		try_fin(c);
	else
		emit(c, NB_XPORT_EV_WRITABLE, NULL, 0);
}

static struct nb_xconn *conn_new(struct nb_xport *x, struct socket *so)
{
	struct nb_xconn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (nb_xport_ids_add(&g.conns, c, &c->id) < 0) {
		free(c);
		return NULL;
	}
	c->x = x;
	c->so = so;
	c->next = x->conns;
	x->conns = c;
	x->nconns++;
	usrsctp_set_upcall(so, conn_upcall, (void *)(uintptr_t)c->id);
	return c;
}

static void do_accepts(struct nb_xport *x)
{
	for (;;) {
		struct socket *so = usrsctp_accept(x->lsock, NULL, NULL);
		struct nb_xconn *c;

		if (!so)
			return;
		if (x->nconns >= x->max_assocs || apply_opts(so, true) < 0 || !(c = conn_new(x, so))) {
			x->stats.assocs_refused++;
			close_socket(&so, true);
			continue;
		}
		c->state = ST_AWAIT_OPEN;
		c->pending = true; /* data may have arrived before the upcall was set */
	}
}

static void on_tick(uv_timer_t *h)
{
	struct nb_xport *x = h->data;
	uint64_t now = now_ms();

	if (now > g.last_tick) {
		uint64_t el = now - g.last_tick;

		g.last_tick = now;
		usrsctp_handle_timers((uint32_t)(el > 1000000 ? 1000000 : el));
	}
	for (struct nb_xconn *c = x->conns; c; c = c->next) {
		if (c->dead)
			continue;
		if (c->want_writable) {
			c->pending = true;
			kick(x);
		}
		if (c->state == ST_CLOSING && now - c->closing_since > CLOSING_MAX_MS)
			conn_finish(c, NB_XPORT_EV_RESET);
	}
}

static void timer_update(struct nb_xport *x)
{
	bool on = x->nconns > 0 && !x->freeing;

	if (on == (uv_is_active((uv_handle_t *)&x->timer) != 0))
		return;
	if (on) {
		bool any = false;

		for (unsigned i = 0; i < XPORTS_CAP; i++) {
			struct nb_xport *o = g.xslots[i].obj;

			if (o && o != x && uv_is_active((uv_handle_t *)&o->timer))
				any = true;
		}
		if (!any)
			g.last_tick = now_ms(); /* nothing ticked meanwhile: no time passed for usrsctp */
		uv_timer_start(&x->timer, on_tick, NB_XPORT_TICK_MS, NB_XPORT_TICK_MS);
	} else {
		uv_timer_stop(&x->timer);
	}
}

static void on_idle(uv_idle_t *h)
{
	struct nb_xport *x = h->data;
	struct nb_xconn **pp;

	uv_idle_stop(&x->idle);
	if (x->accept_ready) {
		x->accept_ready = false;
		do_accepts(x);
	}
	for (struct nb_xconn *c = x->conns; c; c = c->next) {
		if (c->dead || !c->pending)
			continue;
		c->pending = false;
		conn_process(c);
	}
	for (pp = &x->conns; *pp;) {
		struct nb_xconn *c = *pp;

		if (!c->dead) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		nb_xport_ids_del(&g.conns, c->id);
		free(c);
	}
	timer_update(x);
}

int nb_xport_new(uv_loop_t *loop, const struct nb_xport_config *cfg, const struct nb_xport_cbs *cbs,
		 struct nb_xport **ret_x)
{
	struct nb_xport *x;
	int r;

	if (!loop || !cfg || !cbs || !cbs->send || !ret_x)
		return NB_XPORT_E_INVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return NB_XPORT_E_NOMEM;
	x->loop = loop;
	x->cbs = *cbs;
	x->max_assocs = cfg->max_assocs ? cfg->max_assocs : NB_XPORT_MAX_ASSOCS;
	x->next_port = PORT_MIN;
	stack_acquire();
	r = nb_xport_ids_add(&g.xports, x, &x->id);
	if (r < 0)
		goto fail;
	usrsctp_register_address((void *)(uintptr_t)x->id);
	if (cfg->listen) {
		struct sockaddr_conn sc;

		r = NB_XPORT_E_SCTP;
		x->lsock = usrsctp_socket(AF_CONN, SOCK_STREAM, IPPROTO_SCTP, NULL, NULL, 0, NULL);
		if (!x->lsock)
			goto fail_reg;
		memset(&sc, 0, sizeof(sc));
		sc.sconn_family = AF_CONN;
		sc.sconn_port = htons(NB_XPORT_ACCEPT_PORT);
		sc.sconn_addr = (void *)(uintptr_t)x->id;
		if (apply_opts(x->lsock, false) < 0 ||
		    usrsctp_bind(x->lsock, (struct sockaddr *)&sc, sizeof(sc)) < 0 ||
		    usrsctp_listen(x->lsock, LISTEN_BACKLOG) < 0)
			goto fail_sock;
		usrsctp_set_upcall(x->lsock, listen_upcall, (void *)(uintptr_t)x->id);
	}
	uv_timer_init(loop, &x->timer);
	uv_idle_init(loop, &x->idle);
	x->timer.data = x;
	x->idle.data = x;
	x->handles = 2;
	*ret_x = x;
	return 0;

fail_sock:
	close_socket(&x->lsock, true);
fail_reg:
	usrsctp_deregister_address((void *)(uintptr_t)x->id);
	nb_xport_ids_del(&g.xports, x->id);
fail:
	free(x);
	stack_release();
	return r;
}

static void on_handle_closed(uv_handle_t *h)
{
	struct nb_xport *x = h->data;

	if (--x->handles == 0)
		free(x);
}

void nb_xport_free(struct nb_xport *x)
{
	if (!x)
		return;
	x->freeing = true;
	while (x->conns) {
		struct nb_xconn *c = x->conns;

		x->conns = c->next;
		close_socket(&c->so, true);
		nb_xport_ids_del(&g.conns, c->id);
		free(c);
	}
	x->nconns = 0;
	close_socket(&x->lsock, true);
	usrsctp_deregister_address((void *)(uintptr_t)x->id);
	nb_xport_ids_del(&g.xports, x->id);
	uv_close((uv_handle_t *)&x->timer, on_handle_closed);
	uv_close((uv_handle_t *)&x->idle, on_handle_closed);
	stack_release();
}

void nb_xport_input(struct nb_xport *x, const uint8_t *pkt, size_t len)
{
	if (!x || x->freeing)
		return;
	if (!pkt || len == 0 || len > NB_XPORT_MAX_PACKET) {
		x->stats.pkts_in_dropped++;
		return;
	}
	x->stats.pkts_in++;
	x->stats.bytes_in += len;
	usrsctp_conninput((void *)(uintptr_t)x->id, pkt, len, 0);
}

static bool port_busy(const struct nb_xport *x, uint16_t port)
{
	for (const struct nb_xconn *c = x->conns; c; c = c->next)
		if (!c->dead && c->lport == port)
			return true;
	return port == NB_XPORT_ACCEPT_PORT;
}

int nb_xport_open(struct nb_xport *x, const char *service, void *user, struct nb_xconn **ret_c)
{
	uint8_t m[NB_XPORT_MSG_MAX];
	struct sockaddr_conn sc;
	struct nb_xconn *c;
	struct socket *so;
	ssize_t mlen;
	int r = NB_XPORT_E_SCTP;

	if (!x || x->freeing || !ret_c)
		return NB_XPORT_E_INVAL;
	mlen = nb_xport_msg_encode(NB_XPORT_MSG_OPEN, service, m, sizeof(m));
	if (mlen < 0)
		return (int)mlen;
	if (x->nconns >= x->max_assocs) {
		x->stats.assocs_refused++;
		return NB_XPORT_E_LIMIT;
	}
	so = usrsctp_socket(AF_CONN, SOCK_STREAM, IPPROTO_SCTP, NULL, NULL, 0, NULL);
	if (!so)
		return NB_XPORT_E_SCTP;
	if (apply_opts(so, false) < 0)
		goto fail;
	memset(&sc, 0, sizeof(sc));
	sc.sconn_family = AF_CONN;
	sc.sconn_addr = (void *)(uintptr_t)x->id;
	/* A free local port: ours are the only ones on this address. */
	for (unsigned tries = 0;; tries++) {
		uint16_t p = x->next_port;

		if (tries >= 65536 - PORT_MIN)
			goto fail;
		x->next_port = (uint16_t)(p == 65535 ? PORT_MIN : p + 1);
		if (port_busy(x, p))
			continue;
		sc.sconn_port = htons(p);
		if (usrsctp_bind(so, (struct sockaddr *)&sc, sizeof(sc)) == 0) {
			sc.sconn_port = (uint16_t)p; /* remember it below */
			break;
		}
		if (errno != EADDRINUSE)
			goto fail;
	}
	r = NB_XPORT_E_FULL; /* the process-wide connection table (or memory) */
	c = conn_new(x, so);
	if (!c)
		goto fail;
	c->lport = sc.sconn_port;
	c->state = ST_CONNECTING;
	c->visible = true;
	c->user = user;
	sc.sconn_port = htons(NB_XPORT_ACCEPT_PORT);
	if (usrsctp_connect(so, (struct sockaddr *)&sc, sizeof(sc)) < 0 && errno != EINPROGRESS) {
		c->visible = false;
		conn_finish(c, NB_XPORT_EV_RESET);
		return NB_XPORT_E_SCTP;
	}
	/* The "open" goes with the COOKIE-ECHO: usrsctp queues data in COOKIE-WAIT. */
	if (send_msg(c, NB_XPORT_PPID_OPEN, m, (size_t)mlen) < 0) {
		c->visible = false;
		conn_finish(c, NB_XPORT_EV_RESET);
		return NB_XPORT_E_SCTP;
	}
	timer_update(x);
	*ret_c = c;
	return 0;

fail:
	close_socket(&so, true);
	return r;
}

ssize_t nb_xport_write(struct nb_xconn *c, const uint8_t *buf, size_t len)
{
	size_t done = 0, chunk = NB_XPORT_DATA_MAX;

	if (!c || (!buf && len))
		return NB_XPORT_E_INVAL;
	if (c->dead || !c->visible || c->state != ST_OPEN || c->fin_queued)
		return NB_XPORT_E_STATE;
	while (done < len) {
		size_t n = len - done < chunk ? len - done : chunk;
		ssize_t r = send_msg(c, NB_XPORT_PPID_DATA, buf + done, n);

		if (r >= 0) {
			done += n;
			continue;
		}
		if (r != -EAGAIN) {
			if (done == 0)
				return NB_XPORT_E_SCTP;
			break;
		}
		if (n <= WRITE_MIN_CHUNK)
			break;
		chunk = n / 2;
	}
	if (done < len)
		c->want_writable = true;
	c->written += done;
	return (ssize_t)done;
}

int nb_xport_shutdown(struct nb_xconn *c)
{
	if (!c)
		return NB_XPORT_E_INVAL;
	if (c->dead || !c->visible || c->state != ST_OPEN || c->fin_queued)
		return NB_XPORT_E_STATE;
	c->fin_queued = true;
	try_fin(c);
	return 0;
}

void nb_xport_reset(struct nb_xconn *c)
{
	if (!c || c->dead)
		return;
	c->visible = false;
	conn_finish(c, NB_XPORT_EV_RESET);
}

void nb_xport_pause(struct nb_xconn *c, bool paused)
{
	if (!c || c->dead || c->paused == paused)
		return;
	c->paused = paused;
	if (!paused) {
		c->pending = true;
		kick(c->x);
	}
}

void *nb_xconn_user(const struct nb_xconn *c)
{
	return c ? c->user : NULL;
}

void nb_xconn_set_user(struct nb_xconn *c, void *user)
{
	if (c)
		c->user = user;
}

uint64_t nb_xconn_bytes_written(const struct nb_xconn *c)
{
	return c ? c->written : 0;
}

void nb_xport_get_stats(const struct nb_xport *x, struct nb_xport_stats *ret)
{
	if (!x || !ret)
		return;
	*ret = x->stats;
	ret->assocs = x->nconns;
	ret->ticking = uv_is_active((const uv_handle_t *)&x->timer) != 0;
}
