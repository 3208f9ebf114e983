/* peer/fwd_tcp_run.c - TCP port forwarding's libuv shell: local TCP connections <-> transport streams (see fwd_tcp_run.h). */
#include "peer/fwd_tcp_run.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "peer/xport_run.h"

_Static_assert(NB_XPORT_MAX_PACKET <= NB_FWD_MAX_TPACKET, "a transport packet must fit a 0x02 payload");

#define TCP_READ_BUF 65536       /* one local read */
#define TCP_IDLE_CHECK_MS 30000  /* look for idle streams this often */
#define TCP_BACKLOG 128
#define TCP_MAX_STREAMS NB_XPORT_MAX_ASSOCS /* per session */

struct tstream;

/* One session's transport and streams. */
struct tsess {
	struct nb_fwd_tcp *t;
	uint32_t sess;
	struct nb_xport *x;
	struct tstream *s[TCP_MAX_STREAMS];
	size_t n;
	bool said_refused, said_full;
};

/* One forwarded connection: the local socket and the transport stream. */
struct tstream {
	struct nb_fwd_tcp *t;
	struct tsess *ts; /* NULL once the session is gone */
	size_t slot;      /* in ts->s[] */
	int svc;          /* listener: index into expose[]; connector: forward[] */
	uv_tcp_t h;
	uv_connect_t creq;
	uv_shutdown_t sreq;
	struct nb_xconn *c; /* NULL once the stream is over */
	bool connected;     /* the local socket is up (accepted, or connect done) */
	bool xopen;         /* NB_XPORT_EV_OPEN seen */
	bool reading, local_eof, fin_sent, peer_eof, shut_sent, shut_done, paused, closing, counted;
	uint8_t *pend; /* read locally, not yet taken by the transport */
	size_t pend_off, pend_len;
	uint64_t last; /* a byte either way */
};

struct wreq {
	uv_write_t req;
	struct tstream *st;
	size_t len;
	uint8_t data[];
};

struct lsock { /* a --forward tcp listening socket */
	struct nb_fwd_tcp *t;
	uv_tcp_t h;
	size_t idx;
	bool open;
};

struct nb_fwd_tcp {
	uv_loop_t *loop;
	struct nb_fwd_spec expose[NB_FWD_MAX_SPECS], forward[NB_FWD_MAX_SPECS];
	size_t n_expose, n_forward;
	void (*send)(void *arg, uint32_t sess, const uint8_t *payload, size_t n);
	void *arg;
	struct lsock ls[NB_FWD_MAX_SPECS];
	size_t n_tcp_forward, n_tcp_expose;
	uv_timer_t idle;
	size_t handles;
	bool closing;
	bool up;
	uint32_t up_sess;
	char peer[80];
	struct tsess *ts[NB_FWD_TCP_MAX_SESS];
	bool said_not_connected, said_connect_failed[NB_FWD_MAX_SPECS];
	struct nb_fwd_tcp_counters c;
	uint8_t rbuf[TCP_READ_BUF];
	uint8_t pkt[NB_FWD_MAX_PAYLOAD];
};

static void t_handle_closed(struct nb_fwd_tcp *t)
{
	if (--t->handles == 0 && t->closing)
		free(t);
}

static void on_timer_closed(uv_handle_t *h)
{
	t_handle_closed(h->data);
}

/* ---- streams ----------------------------------------------------------------- */

static void stream_closed(uv_handle_t *h)
{
	struct tstream *st = h->data;
	struct nb_fwd_tcp *t = st->t;

	if (st->ts != NULL) {
		st->ts->s[st->slot] = NULL;
		st->ts->n--;
	}
	free(st->pend);
	free(st);
	t_handle_closed(t);
}

/* Close the local socket: RST when rst (the stream was reset), else a
 * normal close. Once. */
static void stream_close_local(struct tstream *st, bool rst)
{
	if (st->closing)
		return;
	st->closing = true;
	st->reading = false;
	if (!rst || uv_tcp_close_reset(&st->h, stream_closed) != 0)
		uv_close((uv_handle_t *)&st->h, stream_closed);
}

/* The stream ends by a reset: the transport side (if still there) and the
 * local socket (RST). */
static void stream_reset(struct tstream *st)
{
	if (st->c != NULL) {
		nb_xport_reset(st->c);
		st->c = NULL;
	}
	if (!st->counted) {
		st->counted = true;
		st->t->c.reset++;
	}
	stream_close_local(st, true);
}

/* Both directions done: the transport closed, our shutdown is through. */
static void stream_check_done(struct tstream *st)
{
	if (st->closing || st->c != NULL || !st->local_eof || !st->peer_eof || !st->shut_done)
		return;
	if (!st->counted) {
		st->counted = true;
		st->t->c.closed++;
	}
	stream_close_local(st, false);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct tstream *st = h->data;

	(void)suggested;
	*buf = uv_buf_init((char *)st->t->rbuf, sizeof(st->t->rbuf));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void stream_read_start(struct tstream *st)
{
	if (st->closing || st->reading || st->local_eof || !st->connected || !st->xopen || st->c == NULL ||
	    st->pend != NULL)
		return;
	if (uv_read_start((uv_stream_t *)&st->h, alloc_cb, read_cb) == 0)
		st->reading = true;
}

static void stream_read_stop(struct tstream *st)
{
	if (st->reading) {
		uv_read_stop((uv_stream_t *)&st->h);
		st->reading = false;
	}
}

static void stream_fin(struct tstream *st)
{
	if (st->fin_sent || st->c == NULL)
		return;
	st->fin_sent = true;
	if (nb_xport_shutdown(st->c) != 0)
		stream_reset(st);
}

/* Offer n bytes at b (a read, not pend) to the transport; what it does
 * not take is copied to pend and local reading stops until
 * NB_XPORT_EV_WRITABLE. 0, or -1 (the stream was reset). */
static int stream_to_peer(struct tstream *st, const uint8_t *b, size_t n)
{
	ssize_t w = nb_xport_write(st->c, b, n);

	if (w < 0) {
		nb_log_debug("fwd", "tcp: transport write: %s", nb_xport_strerror((int)w));
		stream_reset(st);
		return -1;
	}
	st->t->c.to_peer += (uint64_t)w;
	if ((size_t)w == n)
		return 0;
	stream_read_stop(st);
	st->pend = malloc(n - (size_t)w);
	if (st->pend == NULL) {
		stream_reset(st);
		return -1;
	}
	memcpy(st->pend, b + w, n - (size_t)w);
	st->pend_off = 0;
	st->pend_len = n - (size_t)w;
	return 0;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct tstream *st = s->data;

	if (st->closing || st->c == NULL)
		return;
	if (nread == 0)
		return;
	if (nread == UV_EOF) {
		stream_read_stop(st);
		st->local_eof = true;
		if (st->pend == NULL)
			stream_fin(st);
		return;
	}
	if (nread < 0) {
		nb_log_debug("fwd", "tcp: local read: %s", uv_strerror((int)nread));
		stream_reset(st);
		return;
	}
	st->last = uv_now(st->t->loop);
	(void)stream_to_peer(st, (const uint8_t *)buf->base, (size_t)nread);
}

/* NB_XPORT_EV_WRITABLE: the rest of pend, then reading again (or the fin). */
static void stream_writable(struct tstream *st)
{
	if (st->c == NULL || st->closing)
		return;
	if (st->pend != NULL) {
		ssize_t w = nb_xport_write(st->c, st->pend + st->pend_off, st->pend_len - st->pend_off);

		if (w < 0) {
			stream_reset(st);
			return;
		}
		st->t->c.to_peer += (uint64_t)w;
		st->pend_off += (size_t)w;
		if (st->pend_off < st->pend_len)
			return; /* another WRITABLE follows */
		free(st->pend);
		st->pend = NULL;
	}
	if (st->local_eof)
		stream_fin(st);
	else
		stream_read_start(st);
}

static void write_cb(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct tstream *st = w->st;

	free(w);
	if (status < 0) {
		if (status != UV_ECANCELED)
			stream_reset(st);
		return;
	}
	if (st->paused && st->c != NULL &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&st->h) <= NB_FWD_TCP_WQ_MAX / 2) {
		st->paused = false;
		nb_xport_pause(st->c, false);
	}
}

/* Bytes from the peer to the local socket: what the kernel does not take
 * at once is queued; above NB_FWD_TCP_WQ_MAX queued the stream pauses. */
static void stream_from_peer(struct tstream *st, const uint8_t *d, size_t n)
{
	uv_buf_t b = uv_buf_init((char *)d, (unsigned)n);
	struct wreq *w;
	int rc;

	st->last = uv_now(st->t->loop);
	st->t->c.from_peer += n;
	if (st->closing || st->peer_eof)
		return;
	rc = uv_try_write((uv_stream_t *)&st->h, &b, 1);
	if (rc == UV_EAGAIN || rc == UV_ENOSYS)
		rc = 0;
	if (rc < 0) {
		stream_reset(st);
		return;
	}
	if ((size_t)rc == n)
		return;
	w = malloc(sizeof(*w) + n - (size_t)rc);
	if (w == NULL) {
		stream_reset(st);
		return;
	}
	w->st = st;
	w->len = n - (size_t)rc;
	memcpy(w->data, d + rc, w->len);
	b = uv_buf_init((char *)w->data, (unsigned)w->len);
	if (uv_write(&w->req, (uv_stream_t *)&st->h, &b, 1, write_cb) != 0) {
		free(w);
		stream_reset(st);
		return;
	}
	if (!st->paused && uv_stream_get_write_queue_size((uv_stream_t *)&st->h) > NB_FWD_TCP_WQ_MAX) {
		st->paused = true;
		nb_xport_pause(st->c, true);
	}
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	struct tstream *st = req->data;

	st->shut_done = true;
	if (status < 0 && status != UV_ECANCELED) {
		stream_reset(st);
		return;
	}
	stream_check_done(st);
}

/* The transport's events for one stream. */
static void x_event(void *arg, struct nb_xconn *c, enum nb_xport_event ev, const uint8_t *data, size_t len)
{
	struct tstream *st = nb_xconn_user(c);

	(void)arg;
	if (st == NULL)
		return;
	switch (ev) {
	case NB_XPORT_EV_OPEN:
		st->xopen = true;
		if (st->connected && !st->counted)
			st->t->c.opened++;
		stream_read_start(st);
		return;
	case NB_XPORT_EV_DATA:
		stream_from_peer(st, data, len);
		return;
	case NB_XPORT_EV_EOF:
		st->peer_eof = true;
		if (st->closing || st->shut_sent)
			return;
		st->shut_sent = true;
		st->sreq.data = st;
		if (uv_shutdown(&st->sreq, (uv_stream_t *)&st->h, shutdown_cb) != 0)
			stream_reset(st);
		return;
	case NB_XPORT_EV_WRITABLE:
		stream_writable(st);
		return;
	case NB_XPORT_EV_REFUSED:
		st->c = NULL;
		st->counted = true;
		st->t->c.refused++;
		if (st->ts != NULL && !st->ts->said_refused) {
			st->ts->said_refused = true;
			fprintf(stderr, "forward: %s refused a TCP stream for port %u (not exposed there; "
					"further ones are only counted)\n",
				st->t->peer, (unsigned)st->t->forward[st->svc].rport);
		}
		stream_close_local(st, true);
		return;
	case NB_XPORT_EV_CLOSED:
		st->c = NULL;
		stream_check_done(st);
		return;
	case NB_XPORT_EV_RESET:
		st->c = NULL;
		stream_reset(st);
		return;
	}
}

/* A stream with a fresh socket handle, in a slot of ts (NULL: none, for a
 * connection that is only accepted to be reset). NULL when ts is full. */
static struct tstream *stream_new(struct nb_fwd_tcp *t, struct tsess *ts, int svc)
{
	struct tstream *st;

	if (ts != NULL && ts->n >= TCP_MAX_STREAMS)
		return NULL;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	if (uv_tcp_init(t->loop, &st->h) != 0) {
		free(st);
		return NULL;
	}
	t->handles++;
	st->t = t;
	st->ts = ts;
	st->svc = svc;
	st->h.data = st;
	st->last = uv_now(t->loop);
	for (size_t i = 0; ts != NULL && i < TCP_MAX_STREAMS; i++)
		if (ts->s[i] == NULL) {
			st->slot = i;
			ts->s[i] = st;
			ts->n++;
			break;
		}
	return st;
}

/* ---- sessions ----------------------------------------------------------------- */

static void x_send(void *arg, const uint8_t *pkt, size_t len)
{
	struct tsess *ts = arg;
	struct nb_fwd_tcp *t = ts->t;
	static const struct nb_fwd_hdr h = { .kind = NB_FWD_KIND_TCP };

	if (nb_fwd_hdr_put(&h, len, t->pkt, sizeof(t->pkt)) != NB_FWD_TCP_HDR)
		return;
	memcpy(t->pkt + NB_FWD_TCP_HDR, pkt, len);
	t->send(t->arg, ts->sess, t->pkt, NB_FWD_TCP_HDR + len);
}

static bool x_accept(void *arg, struct nb_xconn *c, const char *service);

static struct tsess *tsess_get(struct nb_fwd_tcp *t, uint32_t sess, bool listen)
{
	struct nb_xport_config xc = { .listen = listen, .max_assocs = TCP_MAX_STREAMS };
	struct nb_xport_cbs cbs = { .send = x_send, .accept = x_accept, .event = x_event };
	struct tsess *ts;
	int rc;

	if (sess >= NB_FWD_TCP_MAX_SESS)
		return NULL;
	if (t->ts[sess] != NULL)
		return t->ts[sess];
	ts = calloc(1, sizeof(*ts));
	if (ts == NULL)
		return NULL;
	ts->t = t;
	ts->sess = sess;
	cbs.arg = ts;
	rc = nb_xport_new(t->loop, &xc, &cbs, &ts->x);
	if (rc != 0) {
		fprintf(stderr, "%s: cannot start the TCP transport: %s\n", listen ? "expose" : "forward",
			rc < 0 && rc > -4900 && rc <= -4800 ? nb_xport_strerror(rc) : uv_strerror(rc));
		free(ts);
		return NULL;
	}
	t->ts[sess] = ts;
	return ts;
}

static void tsess_free(struct nb_fwd_tcp *t, uint32_t sess)
{
	struct tsess *ts;

	if (sess >= NB_FWD_TCP_MAX_SESS || (ts = t->ts[sess]) == NULL)
		return;
	for (size_t i = 0; i < TCP_MAX_STREAMS; i++) {
		struct tstream *st = ts->s[i];
		if (st == NULL)
			continue;
		st->c = NULL; /* nb_xport_free aborts them all, without events */
		st->ts = NULL;
		if (!st->counted) {
			st->counted = true;
			t->c.reset++;
		}
		stream_close_local(st, true);
	}
	nb_xport_free(ts->x); /* may still send ABORTs through x_send: ts lives on until here */
	t->ts[sess] = NULL;
	free(ts);
}

/* ---- listener ----------------------------------------------------------------- */

static void connect_cb(uv_connect_t *req, int status)
{
	struct tstream *st = req->data;
	struct nb_fwd_tcp *t = st->t;
	char a[NB_ADDR_STRLEN];

	if (st->closing)
		return;
	if (status < 0) {
		if (!t->said_connect_failed[st->svc]) {
			t->said_connect_failed[st->svc] = true;
			fprintf(stderr, "expose: tcp %s: connect: %s: the peer's stream is reset (further "
					"ones are only counted)\n",
				nb_addr_format(&t->expose[st->svc].addr, a, sizeof(a)), uv_strerror(status));
		}
		stream_reset(st);
		return;
	}
	st->connected = true;
	(void)uv_tcp_nodelay(&st->h, 1);
	if (st->c == NULL) { /* the stream went meanwhile */
		stream_reset(st);
		return;
	}
	if (st->xopen && !st->counted)
		t->c.opened++;
	nb_xport_pause(st->c, false);
	stream_read_start(st);
}

/* A peer's stream asks for a service: one of our --expose tcp, if any. */
static bool x_accept(void *arg, struct nb_xconn *c, const char *service)
{
	struct tsess *ts = arg;
	struct nb_fwd_tcp *t = ts->t;
	struct sockaddr_storage ss;
	struct tstream *st;
	uint16_t port;
	int svc = NB_FWD_E_NOENT;

	if (t->closing)
		return false;
	if (nb_fwd_service_parse(service, &port) == 0)
		svc = nb_fwd_expose_find(t->expose, t->n_expose, NB_FWD_KIND_TCP, port);
	if (svc < 0) {
		t->c.refused++;
		if (!ts->said_refused) {
			ts->said_refused = true;
			if (t->n_tcp_expose == 0)
				fprintf(stderr, "expose: the peer asked for TCP service \"%s\", but no TCP service "
						"is exposed here: refused (further ones are only counted)\n",
					service);
			else
				fprintf(stderr, "expose: the peer asked for TCP service \"%s\", which is not "
						"exposed%s: refused (further ones are only counted)\n",
					service,
					nb_fwd_service_parse(service, &port) == 0 && port == 0
						? " (several are: it should name a port, --forward tcp:LPORT=RPORT)"
						: "");
		}
		return false;
	}
	st = ts->n < TCP_MAX_STREAMS ? stream_new(t, ts, svc) : NULL;
	if (st == NULL) {
		t->c.refused++;
		if (!ts->said_full) {
			ts->said_full = true;
			fprintf(stderr, "expose: the peer has %u TCP streams open: a new one is refused (further "
					"ones are only counted)\n",
				(unsigned)TCP_MAX_STREAMS);
		}
		return false;
	}
	(void)nb_addr_to_sockaddr(&t->expose[svc].addr, &ss);
	st->creq.data = st;
	if (uv_tcp_connect(&st->creq, &st->h, (const struct sockaddr *)&ss, connect_cb) != 0) {
		st->counted = true;
		t->c.refused++;
		stream_close_local(st, false);
		return false;
	}
	st->c = c;
	nb_xconn_set_user(c, st);
	nb_xport_pause(c, true); /* nothing for the local socket before it is up */
	nb_log_info("fwd", "expose: a TCP stream from session %u to port %u", ts->sess, t->expose[svc].addr.port);
	return true;
}

/* ---- connector ---------------------------------------------------------------- */

static void on_local_conn(uv_stream_t *server, int status)
{
	struct lsock *l = server->data;
	struct nb_fwd_tcp *t = l->t;
	struct tsess *ts = t->up ? t->ts[t->up_sess] : NULL;
	bool full = ts != NULL && ts->n >= TCP_MAX_STREAMS;
	char service[NB_FWD_SERVICE_MAX];
	struct tstream *st;
	int rc;

	if (status < 0 || t->closing)
		return;
	/* Accept it in any case (a refused one has no session slot), then
	 * keep it or reset it. */
	st = stream_new(t, full ? NULL : ts, (int)l->idx);
	if (st == NULL)
		return;
	if (uv_accept(server, (uv_stream_t *)&st->h) != 0) {
		st->counted = true;
		stream_close_local(st, false);
		return;
	}
	st->connected = true;
	(void)uv_tcp_nodelay(&st->h, 1);
	if (ts == NULL || full) {
		st->counted = true;
		t->c.refused++;
		if (ts == NULL && !t->said_not_connected) {
			t->said_not_connected = true;
			fprintf(stderr, "forward: not connected to the peer yet: local TCP connections are reset "
					"until then (counted)\n");
		} else if (full && !ts->said_full) {
			ts->said_full = true;
			fprintf(stderr, "forward: %u TCP connections to %s are open: a new one is refused "
					"(further ones are only counted)\n",
				(unsigned)TCP_MAX_STREAMS, t->peer);
		}
		stream_close_local(st, true);
		return;
	}
	(void)nb_fwd_service_put(t->forward[l->idx].rport, service, sizeof(service));
	rc = nb_xport_open(ts->x, service, st, &st->c);
	if (rc != 0) {
		st->c = NULL;
		st->counted = true;
		t->c.refused++;
		if (!ts->said_full) {
			ts->said_full = true;
			fprintf(stderr, "forward: a TCP stream to %s cannot be opened: %s (further ones are only "
					"counted)\n",
				t->peer, nb_xport_strerror(rc));
		}
		stream_close_local(st, true);
		return;
	}
}

/* ---- both ---------------------------------------------------------------------- */

static void on_idle_check(uv_timer_t *h)
{
	struct nb_fwd_tcp *t = h->data;
	uint64_t now = uv_now(t->loop);

	for (size_t i = 0; i < NB_FWD_TCP_MAX_SESS; i++) {
		struct tsess *ts = t->ts[i];
		if (ts == NULL)
			continue;
		for (size_t k = 0; k < TCP_MAX_STREAMS; k++) {
			struct tstream *st = ts->s[k];
			if (st == NULL || st->closing || now < st->last || now - st->last < NB_FWD_TCP_IDLE_MS)
				continue;
			nb_log_info("fwd", "tcp: a stream idle for %u s: reset", (unsigned)(NB_FWD_TCP_IDLE_MS / 1000));
			t->c.idle++;
			stream_reset(st);
		}
	}
}

int nb_fwd_tcp_open(const struct nb_fwd_tcp_cfg *cfg, struct nb_fwd_tcp **ret, char *err, size_t err_len)
{
	struct nb_fwd_tcp *t;
	char a[NB_ADDR_STRLEN];
	int rc = 0;

	if (cfg == NULL || ret == NULL || cfg->send == NULL || cfg->n_expose > NB_FWD_MAX_SPECS ||
	    cfg->n_forward > NB_FWD_MAX_SPECS)
		return UV_EINVAL;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return UV_ENOMEM;
	t->loop = cfg->loop;
	t->send = cfg->send;
	t->arg = cfg->arg;
	t->n_expose = cfg->n_expose;
	t->n_forward = cfg->n_forward;
	if (cfg->n_expose > 0)
		memcpy(t->expose, cfg->expose, cfg->n_expose * sizeof(t->expose[0]));
	if (cfg->n_forward > 0)
		memcpy(t->forward, cfg->forward, cfg->n_forward * sizeof(t->forward[0]));
	for (size_t i = 0; i < t->n_expose; i++)
		if (t->expose[i].proto == NB_FWD_KIND_TCP)
			t->n_tcp_expose++;
	for (size_t i = 0; i < t->n_forward && rc == 0; i++) {
		struct lsock *l = &t->ls[i];
		struct sockaddr_storage ss;

		if (t->forward[i].proto != NB_FWD_KIND_TCP)
			continue;
		t->n_tcp_forward++;
		l->t = t;
		l->idx = i;
		(void)nb_addr_to_sockaddr(&t->forward[i].addr, &ss);
		rc = uv_tcp_init(t->loop, &l->h);
		if (rc != 0)
			break;
		l->h.data = l;
		l->open = true;
		t->handles++;
		rc = uv_tcp_bind(&l->h, (const struct sockaddr *)&ss, 0);
		if (rc == 0)
			rc = uv_listen((uv_stream_t *)&l->h, TCP_BACKLOG, on_local_conn);
		if (rc != 0)
			snprintf(err, err_len, "--forward tcp:%s: cannot bind: %s%s",
				 nb_addr_format(&t->forward[i].addr, a, sizeof(a)), uv_strerror(rc),
				 rc == UV_EADDRINUSE ? " (another program has that port: pick another LPORT)"
				 : rc == UV_EADDRNOTAVAIL ? " (BIND is not an address of this host)"
				 : rc == UV_EACCES ? " (a port below 1024 needs privileges: pick one above)"
						   : "");
	}
	uv_timer_init(t->loop, &t->idle);
	t->idle.data = t;
	t->handles++;
	if (rc != 0) {
		nb_fwd_tcp_close(t);
		return rc;
	}
	uv_timer_start(&t->idle, on_idle_check, TCP_IDLE_CHECK_MS, TCP_IDLE_CHECK_MS);
	for (size_t i = 0; i < t->n_expose; i++)
		if (t->expose[i].proto == NB_FWD_KIND_TCP)
			fprintf(stderr, "expose: tcp %s (listen)\n", nb_addr_format(&t->expose[i].addr, a, sizeof(a)));
	for (size_t i = 0; i < t->n_forward; i++)
		if (t->forward[i].proto == NB_FWD_KIND_TCP)
			fprintf(stderr, "forward: tcp %s bound; waiting for the peer\n",
				nb_addr_format(&t->forward[i].addr, a, sizeof(a)));
	*ret = t;
	return 0;
}

void nb_fwd_tcp_up(struct nb_fwd_tcp *t, uint32_t sess, const char *peer)
{
	char a[NB_ADDR_STRLEN];

	if (t == NULL || t->closing || t->n_tcp_forward == 0)
		return;
	if (t->up && t->up_sess != sess)
		nb_fwd_tcp_down(t, t->up_sess);
	if (tsess_get(t, sess, false) == NULL)
		return;
	t->up = true;
	t->up_sess = sess;
	snprintf(t->peer, sizeof(t->peer), "%s", peer);
	for (size_t i = 0; i < t->n_forward; i++) {
		if (t->forward[i].proto != NB_FWD_KIND_TCP)
			continue;
		if (t->forward[i].rport != 0)
			fprintf(stderr, "forward: tcp %s -> %s tcp/%u\n", nb_addr_format(&t->forward[i].addr, a, sizeof(a)),
				peer, t->forward[i].rport);
		else
			fprintf(stderr, "forward: tcp %s -> %s tcp (its only exposed TCP service)\n",
				nb_addr_format(&t->forward[i].addr, a, sizeof(a)), peer);
	}
}

void nb_fwd_tcp_down(struct nb_fwd_tcp *t, uint32_t sess)
{
	if (t == NULL)
		return;
	if (t->up && t->up_sess == sess) {
		t->up = false;
		if (!t->closing)
			fprintf(stderr, "forward: %s is gone; its TCP streams are reset, new local connections "
					"refused\n",
				t->peer);
	}
	tsess_free(t, sess);
}

void nb_fwd_tcp_input(struct nb_fwd_tcp *t, uint32_t sess, const uint8_t *pkt, size_t len)
{
	struct tsess *ts;

	if (t == NULL || t->closing || sess >= NB_FWD_TCP_MAX_SESS)
		return;
	if (t->up && sess == t->up_sess)
		ts = t->ts[sess];
	else if (t->n_expose > 0)
		ts = tsess_get(t, sess, true);
	else
		ts = NULL;
	if (ts == NULL) {
		t->c.dropped++;
		return;
	}
	nb_xport_input(ts->x, pkt, len);
}

void nb_fwd_tcp_counters(const struct nb_fwd_tcp *t, struct nb_fwd_tcp_counters *ret)
{
	if (t != NULL && ret != NULL)
		*ret = t->c;
}

void nb_fwd_tcp_close(struct nb_fwd_tcp *t)
{
	if (t == NULL || t->closing)
		return;
	t->closing = true;
	t->up = false;
	for (uint32_t i = 0; i < NB_FWD_TCP_MAX_SESS; i++)
		tsess_free(t, i);
	for (size_t i = 0; i < NB_FWD_MAX_SPECS; i++)
		if (t->ls[i].open) {
			t->ls[i].open = false;
			t->ls[i].h.data = t;
			uv_close((uv_handle_t *)&t->ls[i].h, on_timer_closed);
		}
	uv_timer_stop(&t->idle);
	uv_close((uv_handle_t *)&t->idle, on_timer_closed); /* the last close frees t */
}
