/* peer/fwd_run.c - port forwarding's libuv shell: local UDP sockets <-> the peers' channels (see fwd_run.h). */
#include "peer/fwd_run.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"

#define FWD_REAP_MS 5000 /* look for idle flows this often */
#define FWD_TXQ 32       /* local datagrams queued for one sendmmsg per socket */
#define FWD_RXQ 16       /* datagrams per recvmmsg on a --forward socket (64 KiB each) */

_Static_assert(NB_FWD_TCP_MAX_SESS == NB_FWD_RUN_MAX_SESS, "one session numbering");

struct fwd_run_sock; /* a --forward socket (connector) */
struct lflow;        /* a listener flow's socket */

struct nb_fwd_run {
	uv_loop_t *loop;
	struct nb_fwd_spec expose[NB_FWD_MAX_SPECS], forward[NB_FWD_MAX_SPECS];
	size_t n_expose, n_forward;
	nb_fwd_send_fn send;
	void *arg;
	uv_timer_t reap;
	struct nb_fwd_tcp *tcp; /* with a tcp: spec, or anything exposed */
	bool closing;
	size_t handles; /* open handles (sockets, the timer): freed at 0 */

	/* connector */
	struct fsock {
		struct nb_fwd_run *r;
		uv_udp_t h;
		bool open;
		uint32_t idx;
	} fs[NB_FWD_MAX_SPECS];
	struct nb_fwd_table ct; /* all the forward sockets' flows */
	bool up;
	uint32_t up_sess;
	char peer[80];

	/* listener: per session, lazily */
	struct lsess {
		struct nb_fwd_table t;
		struct lflow *f[NB_FWD_MAX_FLOWS];
		bool said_unexposed, said_full;
	} *ls[NB_FWD_RUN_MAX_SESS];

	struct nb_fwd_counters c;
	bool said_too_big, said_not_connected, said_full, said_no_flow;
	/* Receive buffer, shared: room for the header in front, and one byte
	 * more than the largest datagram so a longer one shows. */
	uint8_t rbuf[NB_FWD_UDP_HDR + NB_FWD_MAX_DATAGRAM + 1];
	/* The --forward sockets read with recvmmsg into this (libuv carves it
	 * into 64 KiB slots); allocated with the first of them. */
	uint8_t *mbuf;
	/* Datagrams for local sockets, sent at the end of the loop iteration
	 * (uv_check) with one sendmmsg per socket run; flushed before any
	 * socket closes. */
	uv_check_t flusher;
	bool flush_armed;
	size_t txn;
	struct {
		int fd;
		bool has_to;
		struct sockaddr_storage to;
		size_t len;
	} txq[FWD_TXQ];
	uint8_t txbuf[FWD_TXQ][NB_FWD_MAX_DATAGRAM];
};

struct lflow {
	struct nb_fwd_run *r;
	uv_udp_t h;
	uint32_t sess;
	size_t slot;
	uint16_t port, flow; /* as the peer asked */
	int svc;             /* index into expose[] */
	bool dead;           /* closed (or closing): ignore what comes */
};

static void run_free(struct nb_fwd_run *r)
{
	free(r->mbuf);
	free(r);
}

static void handle_closed(uv_handle_t *h)
{
	struct nb_fwd_run *r = h->data;

	if (r != NULL && --r->handles == 0 && r->closing)
		run_free(r);
}

static void lflow_closed(uv_handle_t *h)
{
	struct lflow *f = h->data;
	struct nb_fwd_run *r = f->r;

	free(f);
	if (--r->handles == 0 && r->closing)
		run_free(r);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct nb_fwd_run *r = *(struct nb_fwd_run **)h->data;

	(void)suggested;
	*buf = uv_buf_init((char *)r->rbuf + NB_FWD_UDP_HDR, NB_FWD_MAX_DATAGRAM + 1);
}

/* A --forward socket's recvmmsg buffer. */
static void alloc_mm(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct nb_fwd_run *r = *(struct nb_fwd_run **)h->data;

	(void)suggested;
	*buf = uv_buf_init((char *)r->mbuf, FWD_RXQ * 65536u);
}

/* Send what is queued: one sendmmsg per run of datagrams to one socket.
 * A datagram the kernel refuses (buffer full, ICMP port unreachable
 * before) is dropped and counted, as with a single send. */
static void fwd_flush(struct nb_fwd_run *r)
{
	struct mmsghdr m[FWD_TXQ];
	struct iovec iov[FWD_TXQ];
	size_t i = 0;

	if (r->flush_armed) {
		uv_check_stop(&r->flusher);
		r->flush_armed = false;
	}
	while (i < r->txn) {
		size_t j = i, k;
		int sent;

		while (j < r->txn && r->txq[j].fd == r->txq[i].fd)
			j++;
		for (k = i; k < j; k++) {
			memset(&m[k - i], 0, sizeof(m[0]));
			iov[k - i].iov_base = r->txbuf[k];
			iov[k - i].iov_len = r->txq[k].len;
			m[k - i].msg_hdr.msg_iov = &iov[k - i];
			m[k - i].msg_hdr.msg_iovlen = 1;
			if (r->txq[k].has_to) {
				m[k - i].msg_hdr.msg_name = &r->txq[k].to;
				m[k - i].msg_hdr.msg_namelen = r->txq[k].to.ss_family == AF_INET6
								       ? sizeof(struct sockaddr_in6)
								       : sizeof(struct sockaddr_in);
			}
		}
		for (k = 0; k < j - i;) {
			do
				sent = sendmmsg(r->txq[i].fd, &m[k], (unsigned)(j - i - k), MSG_DONTWAIT);
			while (sent < 0 && errno == EINTR);
			if (sent <= 0) { /* the first of the rest is refused: skip it */
				r->c.send_failed++;
				nb_log_debug("fwd", "send to a local socket: %s", uv_strerror(uv_translate_sys_error(errno)));
				k++;
				continue;
			}
			r->c.from_peer += (uint64_t)sent;
			k += (size_t)sent;
		}
		i = j;
	}
	r->txn = 0;
}

static void on_flush(uv_check_t *h)
{
	fwd_flush(h->data);
}

/* Queue one datagram for socket h (to: NULL for a connected one). */
static void fwd_queue(struct nb_fwd_run *r, uv_udp_t *h, const uint8_t *data, size_t len,
		      const struct sockaddr_storage *to)
{
	uv_os_fd_t fd;

	if (uv_fileno((const uv_handle_t *)h, &fd) != 0 || len > NB_FWD_MAX_DATAGRAM) {
		r->c.send_failed++;
		return;
	}
	if (r->txn == FWD_TXQ)
		fwd_flush(r);
	r->txq[r->txn].fd = fd;
	r->txq[r->txn].has_to = to != NULL;
	if (to != NULL)
		r->txq[r->txn].to = *to;
	r->txq[r->txn].len = len;
	memcpy(r->txbuf[r->txn], data, len);
	r->txn++;
	if (!r->flush_armed) {
		r->flush_armed = true;
		uv_check_start(&r->flusher, on_flush);
	}
}

static void say_too_big(struct nb_fwd_run *r, const char *where)
{
	r->c.too_big++;
	if (!r->said_too_big) {
		r->said_too_big = true;
		fprintf(stderr, "%s: a datagram longer than %u bytes was dropped (the limit through the "
				"peer path; further ones are only counted)\n",
			where, (unsigned)NB_FWD_MAX_DATAGRAM);
	}
}

/* One datagram in from a local socket: nread bytes at rbuf + 5. 1 when it
 * is to be forwarded, 0 when there is nothing (or it was dropped). */
static int local_datagram(struct nb_fwd_run *r, ssize_t nread, const struct sockaddr *addr, unsigned flags,
			  const char *where)
{
	if (nread == 0 && addr == NULL)
		return 0; /* libuv: nothing more to read */
	if (nread < 0) {
		nb_log_debug("fwd", "%s: receive: %s", where, uv_strerror((int)nread));
		return 0;
	}
	if ((flags & UV_UDP_PARTIAL) != 0 || (size_t)nread > NB_FWD_MAX_DATAGRAM) {
		say_too_big(r, where);
		return 0;
	}
	return 1;
}

/* ---- connector ---------------------------------------------------------------- */

static void fs_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
		    unsigned flags)
{
	struct fsock *s = (struct fsock *)((char *)h - offsetof(struct fsock, h));
	struct nb_fwd_run *r = s->r;
	struct nb_fwd_hdr hd = { .kind = NB_FWD_KIND_UDP, .port = r->forward[s->idx].rport };
	struct nb_addr src;
	uint64_t now = uv_now(r->loop);
	size_t slot, n;
	int rc;

	if (r->closing || (flags & UV_UDP_MMSG_FREE) != 0 || local_datagram(r, nread, addr, flags, "forward") == 0)
		return;
	/* recvmmsg: the datagram is in its slot of mbuf; the header goes in
	 * front of it in rbuf. */
	memcpy(r->rbuf + NB_FWD_UDP_HDR, buf->base, (size_t)nread);
	n = (size_t)nread;
	if (nb_addr_from_sockaddr(addr, &src) != 0)
		return;
	if (!r->up) {
		r->c.not_connected++;
		if (!r->said_not_connected) {
			r->said_not_connected = true;
			fprintf(stderr, "forward: not connected to the peer yet: local datagrams are dropped "
					"until then (counted)\n");
		}
		return;
	}
	rc = nb_fwd_table_src(&r->ct, s->idx, &src, true, now, &slot);
	if (rc == NB_FWD_E_FULL) {
		size_t x;
		while (nb_fwd_table_expire(&r->ct, now, &x) == 1)
			r->c.expired++;
		rc = nb_fwd_table_src(&r->ct, s->idx, &src, true, now, &slot);
	}
	if (rc < 0) {
		r->c.full++;
		if (!r->said_full) {
			r->said_full = true;
			fprintf(stderr, "forward: %u local sources are in use, none idle for %u s: a new one "
					"is refused (counted)\n",
				(unsigned)NB_FWD_MAX_FLOWS, (unsigned)(NB_FWD_IDLE_MS / 1000));
		}
		return;
	}
	if (rc == 1) {
		char t[NB_ADDR_STRLEN];
		nb_log_info("fwd", "forward: new flow %u from %s", r->ct.f[slot].flow,
			    nb_addr_format(&src, t, sizeof(t)));
	}
	hd.flow = r->ct.f[slot].flow;
	if (nb_fwd_hdr_put(&hd, n, r->rbuf, NB_FWD_UDP_HDR) != NB_FWD_UDP_HDR)
		return;
	r->c.to_peer++;
	r->send(r->arg, r->up_sess, r->rbuf, NB_FWD_UDP_HDR + n);
}

static void connector_input(struct nb_fwd_run *r, const struct nb_fwd_hdr *h, const uint8_t *body, size_t len)
{
	struct sockaddr_storage ss;
	const struct nb_fwd_flow *f;
	struct fsock *s;
	size_t slot;

	if (nb_fwd_table_flow(&r->ct, h->flow, uv_now(r->loop), &slot) != 0) {
		r->c.no_flow++;
		nb_log_debug("fwd", "a datagram for flow %u, which is not (any more) ours: dropped", h->flow);
		return;
	}
	f = &r->ct.f[slot];
	s = &r->fs[f->sess];
	if (h->port != r->forward[f->sess].rport || !s->open) {
		r->c.no_flow++;
		return;
	}
	if (nb_addr_to_sockaddr(&f->src, &ss) < 0)
		return;
	fwd_queue(r, &s->h, body, len, &ss);
}

/* ---- listener ------------------------------------------------------------------ */

static void lflow_close(struct nb_fwd_run *r, struct lsess *ls, size_t slot)
{
	struct lflow *f = ls->f[slot];

	ls->f[slot] = NULL;
	if (f == NULL)
		return;
	fwd_flush(r); /* nothing queued may outlive its socket */
	f->dead = true;
	uv_close((uv_handle_t *)&f->h, lflow_closed);
	(void)r;
}

static void lflow_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
		       unsigned flags)
{
	struct lflow *f = (struct lflow *)((char *)h - offsetof(struct lflow, h));
	struct nb_fwd_run *r = f->r;
	struct nb_fwd_hdr hd = { .kind = NB_FWD_KIND_UDP, .port = f->port, .flow = f->flow };
	struct nb_addr from;
	struct lsess *ls;

	(void)buf;
	if (f->dead || r->closing || local_datagram(r, nread, addr, flags, "expose") == 0)
		return;
	/* Connected to the service: the kernel passes only its datagrams;
	 * check anyway. */
	if (nb_addr_from_sockaddr(addr, &from) != 0 || !nb_addr_equal(&from, &r->expose[f->svc].addr))
		return;
	ls = r->ls[f->sess];
	if (ls != NULL)
		nb_fwd_table_touch(&ls->t, f->slot, uv_now(r->loop));
	if (nb_fwd_hdr_put(&hd, (size_t)nread, r->rbuf, NB_FWD_UDP_HDR) != NB_FWD_UDP_HDR)
		return;
	r->c.to_peer++;
	r->send(r->arg, f->sess, r->rbuf, NB_FWD_UDP_HDR + (size_t)nread);
}

static struct lflow *lflow_open(struct nb_fwd_run *r, uint32_t sess, size_t slot, const struct nb_fwd_hdr *h,
				int svc)
{
	struct lflow *f = calloc(1, sizeof(*f));
	const struct nb_addr *to = &r->expose[svc].addr;
	struct sockaddr_storage any, dst;
	struct nb_addr a = { .family = to->family };
	int rc;

	if (f == NULL)
		return NULL;
	f->r = r;
	f->sess = sess;
	f->slot = slot;
	f->port = h->port;
	f->flow = h->flow;
	f->svc = svc;
	rc = uv_udp_init(r->loop, &f->h);
	if (rc != 0) {
		free(f);
		return NULL;
	}
	r->handles++;
	/* alloc_cb reads the run through the handle's data: a pointer whose
	 * first member is the run pointer (f->r). */
	f->h.data = &f->r;
	(void)nb_addr_to_sockaddr(&a, &any);
	(void)nb_addr_to_sockaddr(to, &dst);
	rc = uv_udp_bind(&f->h, (const struct sockaddr *)&any, 0);
	if (rc == 0)
		rc = uv_udp_connect(&f->h, (const struct sockaddr *)&dst);
	if (rc == 0)
		rc = uv_udp_recv_start(&f->h, alloc_cb, lflow_recv);
	if (rc != 0) {
		char t[NB_ADDR_STRLEN];
		fprintf(stderr, "expose: cannot open a socket toward udp %s: %s\n",
			nb_addr_format(to, t, sizeof(t)), uv_strerror(rc));
		f->dead = true;
		uv_close((uv_handle_t *)&f->h, lflow_closed);
		return NULL;
	}
	return f;
}

static void listener_input(struct nb_fwd_run *r, uint32_t sess, const struct nb_fwd_hdr *h, const uint8_t *body,
			   size_t len)
{
	uint64_t now = uv_now(r->loop);
	struct lsess *ls;
	struct lflow *f;
	size_t slot;
	int svc, rc;

	if (sess >= NB_FWD_RUN_MAX_SESS)
		return;
	ls = r->ls[sess];
	if (ls == NULL) {
		ls = calloc(1, sizeof(*ls));
		if (ls == NULL)
			return;
		nb_fwd_table_init(&ls->t);
		r->ls[sess] = ls;
	}
	svc = nb_fwd_expose_find(r->expose, r->n_expose, NB_FWD_KIND_UDP, h->port);
	if (svc < 0) {
		r->c.unexposed++;
		if (!ls->said_unexposed) {
			ls->said_unexposed = true;
			if (h->port == 0)
				fprintf(stderr, "expose: the peer asked for \"the only UDP service\", but %zu are "
						"exposed: dropped (it should name a port: --forward udp:LPORT=RPORT)\n",
					r->n_expose);
			else
				fprintf(stderr, "expose: the peer sent a datagram for udp port %u, which is not "
						"exposed: dropped (counted)\n",
					h->port);
		}
		return;
	}
	rc = nb_fwd_table_key(&ls->t, sess, h->port, h->flow, true, now, &slot);
	if (rc == NB_FWD_E_FULL) {
		size_t x;
		while (nb_fwd_table_expire(&ls->t, now, &x) == 1) {
			r->c.expired++;
			lflow_close(r, ls, x);
		}
		rc = nb_fwd_table_key(&ls->t, sess, h->port, h->flow, true, now, &slot);
	}
	if (rc < 0) {
		r->c.full++;
		if (!ls->said_full) {
			ls->said_full = true;
			fprintf(stderr, "expose: the peer has %u flows open, none idle for %u s: a new one is "
					"refused (counted)\n",
				(unsigned)NB_FWD_MAX_FLOWS, (unsigned)(NB_FWD_IDLE_MS / 1000));
		}
		return;
	}
	if (rc == 1) {
		ls->f[slot] = lflow_open(r, sess, slot, h, svc);
		if (ls->f[slot] == NULL) {
			nb_fwd_table_remove(&ls->t, slot);
			r->c.send_failed++;
			return;
		}
		nb_log_info("fwd", "expose: new flow %u from session %u to port %u", h->flow, sess,
			    r->expose[svc].addr.port);
	}
	f = ls->f[slot];
	if (f == NULL)
		return;
	/* Refused at the flush: ECONNREFUSED (an ICMP port unreachable from
	 * an earlier one: the service is not running), EAGAIN (its buffer is
	 * full). */
	fwd_queue(r, &f->h, body, len, NULL);
}

/* ---- both ------------------------------------------------------------------------ */

static void on_reap(uv_timer_t *t)
{
	struct nb_fwd_run *r = t->data;
	uint64_t now = uv_now(r->loop);
	size_t x;

	while (nb_fwd_table_expire(&r->ct, now, &x) == 1)
		r->c.expired++;
	for (size_t i = 0; i < NB_FWD_RUN_MAX_SESS; i++) {
		struct lsess *ls = r->ls[i];
		if (ls == NULL)
			continue;
		while (nb_fwd_table_expire(&ls->t, now, &x) == 1) {
			nb_log_info("fwd", "expose: flow %u idle for %u s: closed", ls->f[x] ? ls->f[x]->flow : 0,
				    (unsigned)(NB_FWD_IDLE_MS / 1000));
			r->c.expired++;
			lflow_close(r, ls, x);
		}
	}
}

static bool has_proto(const struct nb_fwd_spec *list, size_t n, uint8_t proto)
{
	for (size_t i = 0; i < n; i++)
		if (list[i].proto == proto)
			return true;
	return false;
}

int nb_fwd_run_open(const struct nb_fwd_run_cfg *cfg, struct nb_fwd_run **ret, char *err, size_t err_len)
{
	struct nb_fwd_run *r;
	char t[NB_ADDR_STRLEN];
	int rc = 0;

	if (cfg == NULL || ret == NULL || cfg->n_expose > NB_FWD_MAX_SPECS || cfg->n_forward > NB_FWD_MAX_SPECS ||
	    cfg->send == NULL)
		return UV_EINVAL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return UV_ENOMEM;
	r->loop = cfg->loop;
	r->send = cfg->send;
	r->arg = cfg->arg;
	r->n_expose = cfg->n_expose;
	r->n_forward = cfg->n_forward;
	if (cfg->n_expose > 0)
		memcpy(r->expose, cfg->expose, cfg->n_expose * sizeof(r->expose[0]));
	if (cfg->n_forward > 0)
		memcpy(r->forward, cfg->forward, cfg->n_forward * sizeof(r->forward[0]));
	nb_fwd_table_init(&r->ct);
	uv_check_init(r->loop, &r->flusher);
	r->flusher.data = r;
	r->handles++;
	if (has_proto(r->forward, r->n_forward, NB_FWD_KIND_UDP)) {
		r->mbuf = malloc(FWD_RXQ * 65536u);
		if (r->mbuf == NULL) {
			snprintf(err, err_len, "--forward: out of memory");
			rc = UV_ENOMEM;
		}
	}
	for (size_t i = 0; i < r->n_forward && rc == 0; i++) {
		struct fsock *s = &r->fs[i];
		struct sockaddr_storage ss;
		if (r->forward[i].proto != NB_FWD_KIND_UDP)
			continue;
		s->r = r;
		s->idx = (uint32_t)i;
		(void)nb_addr_to_sockaddr(&r->forward[i].addr, &ss);
		rc = uv_udp_init_ex(r->loop, &s->h, AF_UNSPEC | UV_UDP_RECVMMSG);
		if (rc != 0)
			break;
		s->h.data = &s->r;
		s->open = true;
		r->handles++;
		rc = uv_udp_bind(&s->h, (const struct sockaddr *)&ss, 0);
		if (rc == 0)
			rc = uv_udp_recv_start(&s->h, alloc_mm, fs_recv);
		if (rc != 0) {
			snprintf(err, err_len, "--forward udp:%s: cannot bind: %s%s",
				 nb_addr_format(&r->forward[i].addr, t, sizeof(t)), uv_strerror(rc),
				 rc == UV_EADDRINUSE ? " (another program has that port: pick another LPORT)"
				 : rc == UV_EADDRNOTAVAIL ? " (BIND is not an address of this host)"
				 : rc == UV_EACCES ? " (a port below 1024 needs privileges: pick one above)"
						   : "");
			break;
		}
	}
	uv_timer_init(r->loop, &r->reap);
	r->reap.data = r;
	r->handles++;
	if (rc == 0 && (r->n_expose > 0 || has_proto(r->forward, r->n_forward, NB_FWD_KIND_TCP))) {
		struct nb_fwd_tcp_cfg tc = {
			.loop = r->loop, .expose = r->expose, .n_expose = r->n_expose,
			.forward = r->forward, .n_forward = r->n_forward, .send = r->send, .arg = r->arg,
		};
		rc = nb_fwd_tcp_open(&tc, &r->tcp, err, err_len);
	}
	if (rc != 0) {
		nb_fwd_run_close(r);
		return rc;
	}
	uv_timer_start(&r->reap, on_reap, FWD_REAP_MS, FWD_REAP_MS);
	for (size_t i = 0; i < r->n_expose; i++)
		if (r->expose[i].proto == NB_FWD_KIND_UDP)
			fprintf(stderr, "expose: udp %s (listen)\n",
				nb_addr_format(&r->expose[i].addr, t, sizeof(t)));
	for (size_t i = 0; i < r->n_forward; i++)
		if (r->forward[i].proto == NB_FWD_KIND_UDP)
			fprintf(stderr, "forward: udp %s bound; waiting for the peer\n",
				nb_addr_format(&r->forward[i].addr, t, sizeof(t)));
	*ret = r;
	return 0;
}

void nb_fwd_run_up(struct nb_fwd_run *r, uint32_t sess, const char *peer)
{
	char t[NB_ADDR_STRLEN];

	if (r == NULL || r->closing)
		return;
	r->up = true;
	r->up_sess = sess;
	snprintf(r->peer, sizeof(r->peer), "%s", peer);
	nb_fwd_tcp_up(r->tcp, sess, peer);
	for (size_t i = 0; i < r->n_forward; i++) {
		if (r->forward[i].proto != NB_FWD_KIND_UDP)
			continue;
		if (r->forward[i].rport != 0)
			fprintf(stderr, "forward: udp %s -> %s udp/%u\n",
				nb_addr_format(&r->forward[i].addr, t, sizeof(t)), peer, r->forward[i].rport);
		else
			fprintf(stderr, "forward: udp %s -> %s udp (its only exposed service)\n",
				nb_addr_format(&r->forward[i].addr, t, sizeof(t)), peer);
	}
}

void nb_fwd_run_down(struct nb_fwd_run *r, uint32_t sess)
{
	struct lsess *ls;

	if (r == NULL)
		return;
	nb_fwd_tcp_down(r->tcp, sess);
	if (r->up && r->up_sess == sess) {
		r->up = false;
		if (has_proto(r->forward, r->n_forward, NB_FWD_KIND_UDP) && !r->closing)
			fprintf(stderr, "forward: %s is gone; local datagrams are dropped\n", r->peer);
	}
	if (sess >= NB_FWD_RUN_MAX_SESS || (ls = r->ls[sess]) == NULL)
		return;
	for (size_t i = 0; i < NB_FWD_MAX_FLOWS; i++)
		lflow_close(r, ls, i);
	free(ls);
	r->ls[sess] = NULL;
}

void nb_fwd_run_input(struct nb_fwd_run *r, uint32_t sess, const struct nb_fwd_hdr *h, const uint8_t *body,
		      size_t len)
{
	if (r == NULL || r->closing || h == NULL)
		return;
	if (h->kind == NB_FWD_KIND_TCP) {
		if (r->tcp != NULL)
			nb_fwd_tcp_input(r->tcp, sess, body, len);
		else
			r->c.tcp.dropped++;
		return;
	}
	if (h->kind != NB_FWD_KIND_UDP)
		return;
	if (r->n_forward > 0 && r->up && sess == r->up_sess)
		connector_input(r, h, body, len);
	else if (r->n_expose > 0)
		listener_input(r, sess, h, body, len);
	else
		r->c.unexposed++;
}

void nb_fwd_run_counters(const struct nb_fwd_run *r, struct nb_fwd_counters *ret)
{
	if (r != NULL) {
		struct nb_fwd_tcp_counters dropped = r->c.tcp;
		*ret = r->c;
		if (r->tcp != NULL) {
			nb_fwd_tcp_counters(r->tcp, &ret->tcp);
			ret->tcp.dropped += dropped.dropped;
		}
	}
}

void nb_fwd_run_close(struct nb_fwd_run *r)
{
	if (r == NULL || r->closing)
		return;
	nb_log_info("fwd", "datagrams: %llu to the peer, %llu from it; dropped: %llu too long, %llu before "
			   "connected, %llu not exposed, %llu no flow, %llu table full, %llu send failed; "
			   "%llu flows expired",
		    (unsigned long long)r->c.to_peer, (unsigned long long)r->c.from_peer,
		    (unsigned long long)r->c.too_big, (unsigned long long)r->c.not_connected,
		    (unsigned long long)r->c.unexposed, (unsigned long long)r->c.no_flow,
		    (unsigned long long)r->c.full, (unsigned long long)r->c.send_failed,
		    (unsigned long long)r->c.expired);
	if (r->tcp != NULL) {
		struct nb_fwd_counters c;
		nb_fwd_run_counters(r, &c);
		nb_log_info("fwd", "tcp streams: %llu opened, %llu refused, %llu reset (%llu idle), %llu closed; "
				   "bytes: %llu to the peer, %llu from it; %llu packets with nowhere to go",
			    (unsigned long long)c.tcp.opened, (unsigned long long)c.tcp.refused,
			    (unsigned long long)c.tcp.reset, (unsigned long long)c.tcp.idle,
			    (unsigned long long)c.tcp.closed, (unsigned long long)c.tcp.to_peer,
			    (unsigned long long)c.tcp.from_peer, (unsigned long long)c.tcp.dropped);
	}
	fwd_flush(r);
	r->closing = true;
	nb_fwd_tcp_close(r->tcp);
	r->tcp = NULL;
	for (size_t i = 0; i < NB_FWD_RUN_MAX_SESS; i++)
		nb_fwd_run_down(r, (uint32_t)i);
	for (size_t i = 0; i < NB_FWD_MAX_SPECS; i++)
		if (r->fs[i].open) {
			r->fs[i].open = false;
			r->fs[i].h.data = r;
			uv_close((uv_handle_t *)&r->fs[i].h, handle_closed);
		}
	uv_check_stop(&r->flusher);
	uv_close((uv_handle_t *)&r->flusher, handle_closed);
	uv_timer_stop(&r->reap);
	uv_close((uv_handle_t *)&r->reap, handle_closed); /* the last close frees r */
}
