/* broker/tcpprobe_run.c - connect, greet, report: the TCP mapping probe. */
#include "broker/tcpprobe_run.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define LOG "tcpprobe"

struct probe {
	struct nb_tcpprobes *set;
	struct probe *next, *prev;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_connect_t creq;
	uv_write_t wreq;
	int open;         /* handles not yet closed */
	bool reported;
	bool connected;
	nb_tcpprobe_fn fn;
	void *ctx;
	char greeting[128];
	char rbuf[256];
	size_t len;
	unsigned char payload[];
};

struct nb_tcpprobes {
	uv_loop_t *loop;
	struct probe *head;
	unsigned active;
	bool closing;
	void (*done)(void *arg);
	void *done_arg;
	unsigned pending; /* while closing: probes not yet freed */
};

int nb_tcpprobes_new(uv_loop_t *loop, struct nb_tcpprobes **ret)
{
	struct nb_tcpprobes *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return -ENOMEM;
	s->loop = loop;
	*ret = s;
	return 0;
}

unsigned nb_tcpprobes_active(const struct nb_tcpprobes *s)
{
	return s == NULL ? 0 : s->active;
}

static void set_done(struct nb_tcpprobes *s)
{
	if (s->closing && s->pending == 0) {
		void (*done)(void *) = s->done;
		void *arg = s->done_arg;

		free(s);
		if (done != NULL)
			done(arg);
	}
}

static void on_closed(uv_handle_t *h)
{
	struct probe *p = h->data;
	struct nb_tcpprobes *s = p->set;

	if (--p->open > 0)
		return;
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		s->head = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	s->active--;
	free(p);
	if (s->closing) {
		s->pending--;
		set_done(s);
	}
}

/* Report once, then close. */
static void finish(struct probe *p, bool ok, const char *why)
{
	if (!p->reported) {
		p->reported = true;
		if (!p->set->closing && p->fn != NULL)
			p->fn(p->ctx, p->payload, p->len, ok, why);
	}
	if (!uv_is_closing((uv_handle_t *)&p->tcp)) {
		uv_timer_stop(&p->timer);
		uv_close((uv_handle_t *)&p->tcp, on_closed);
		uv_close((uv_handle_t *)&p->timer, on_closed);
	}
}

static void on_timer(uv_timer_t *t)
{
	struct probe *p = t->data;

	/* Connected and greeted: the far end has had its moment. */
	finish(p, p->connected, p->connected ? NULL : "connect timed out");
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct probe *p = h->data;

	(void)hint;
	*buf = uv_buf_init(p->rbuf, sizeof(p->rbuf));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct probe *p = st->data;

	(void)buf;
	if (n < 0) /* EOF or reset after the connect: the mapping led somewhere that listened */
		finish(p, true, NULL);
}

static void on_write(uv_write_t *w, int status)
{
	(void)w;
	if (status < 0 && status != UV_ECANCELED)
		nb_log_debug(LOG, "greeting not written: %s", uv_strerror(status));
}

static void on_connect(uv_connect_t *req, int status)
{
	struct probe *p = req->data;
	uv_buf_t b;

	if (status == UV_ECANCELED)
		return;
	if (status < 0) {
		finish(p, false, uv_strerror(status));
		return;
	}
	p->connected = true;
	b = uv_buf_init(p->greeting, (unsigned)strlen(p->greeting));
	p->wreq.data = p;
	if (uv_write(&p->wreq, (uv_stream_t *)&p->tcp, &b, 1, on_write) != 0 ||
	    uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read) != 0) {
		finish(p, true, NULL); /* connected is what counts */
		return;
	}
	uv_timer_start(&p->timer, on_timer, NB_TCPPROBE_LINGER_MS, 0);
}

int nb_tcpprobe_start(struct nb_tcpprobes *s, const struct nb_addr *to, const char *greeting, const void *payload,
		      size_t len, nb_tcpprobe_fn fn, void *ctx)
{
	struct sockaddr_storage ss;
	struct probe *p;
	int rc;

	if (s == NULL || s->closing || to == NULL || greeting == NULL || len > NB_TCPPROBE_PAYLOAD_MAX ||
	    strlen(greeting) >= sizeof(p->greeting) || nb_addr_to_sockaddr(to, &ss) < 0)
		return -EINVAL;
	if (s->active >= NB_TCPPROBE_MAX)
		return -ENOBUFS;
	p = calloc(1, sizeof(*p) + len);
	if (p == NULL)
		return -ENOMEM;
	p->set = s;
	p->fn = fn;
	p->ctx = ctx;
	p->len = len;
	if (len > 0)
		memcpy(p->payload, payload, len);
	memcpy(p->greeting, greeting, strlen(greeting) + 1);
	rc = uv_tcp_init(s->loop, &p->tcp);
	if (rc != 0) {
		free(p);
		return rc;
	}
	uv_timer_init(s->loop, &p->timer);
	p->tcp.data = p->timer.data = p->creq.data = p;
	p->open = 2;
	p->next = s->head;
	if (s->head != NULL)
		s->head->prev = p;
	s->head = p;
	s->active++;
	rc = uv_tcp_connect(&p->creq, &p->tcp, (const struct sockaddr *)&ss, on_connect);
	if (rc != 0) {
		p->reported = true; /* the caller hears it from the return value */
		finish(p, false, NULL);
		return rc;
	}
	uv_timer_start(&p->timer, on_timer, NB_TCPPROBE_CONNECT_MS, 0);
	return 0;
}

void nb_tcpprobes_close(struct nb_tcpprobes *s, void (*done)(void *arg), void *arg)
{
	if (s == NULL)
		return;
	s->closing = true;
	s->done = done;
	s->done_arg = arg;
	s->pending = s->active;
	for (struct probe *p = s->head; p != NULL; p = p->next)
		finish(p, false, NULL);
	set_done(s);
}
