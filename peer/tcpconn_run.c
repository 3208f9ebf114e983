/* peer/tcpconn_run.c - a framed TCP client connection on libuv. */
#include "peer/tcpconn_run.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct tc_write {
	uv_write_t req; /* first */
	struct nb_tcpconn *t;
	size_t len;
	uint8_t data[];
};

static void fail(struct nb_tcpconn *t, int status)
{
	if (t->dead)
		return;
	t->dead = true;
	t->connected = false;
	if (t->open)
		uv_read_stop((uv_stream_t *)&t->h);
	if (t->state_cb != NULL)
		t->state_cb(t, status, t->arg);
}

static void on_write(uv_write_t *w, int status)
{
	struct tc_write *tw = (struct tc_write *)w;
	struct nb_tcpconn *t = tw->t;

	t->queued -= tw->len;
	free(tw);
	if (status < 0 && status != UV_ECANCELED)
		fail(t, status);
}

static int write_now(struct nb_tcpconn *t, const uint8_t *data, size_t len)
{
	uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
	struct tc_write *tw;
	size_t off = 0;

	if (t->queued == 0) {
		int n = uv_try_write((uv_stream_t *)&t->h, &b, 1);
		if (n == UV_EAGAIN)
			n = 0;
		if (n < 0) {
			fail(t, n);
			return -ENOTCONN;
		}
		off = (size_t)n;
		if (off == len)
			return 0;
	}
	if (t->queued + (len - off) > NB_TCPCONN_QUEUE_MAX) {
		if (off == 0) {
			t->dropped++;
			return -ENOBUFS;
		}
		fail(t, UV_ENOBUFS); /* half a frame is out: the stream is lost */
		return -ENOTCONN;
	}
	tw = malloc(sizeof(*tw) + (len - off));
	if (tw == NULL) {
		fail(t, UV_ENOMEM);
		return -ENOTCONN;
	}
	tw->t = t;
	tw->len = len - off;
	memcpy(tw->data, data + off, tw->len);
	b = uv_buf_init((char *)tw->data, (unsigned)tw->len);
	if (uv_write(&tw->req, (uv_stream_t *)&t->h, &b, 1, on_write) != 0) {
		free(tw);
		fail(t, UV_EPIPE);
		return -ENOTCONN;
	}
	t->queued += tw->len;
	return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct nb_tcpconn *t = (struct nb_tcpconn *)h;

	(void)suggested;
	*buf = uv_buf_init((char *)t->rbuf + t->have, (unsigned)(sizeof(t->rbuf) - t->have));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct nb_tcpconn *t = (struct nb_tcpconn *)s;

	(void)buf;
	if (nread < 0) {
		fail(t, (int)nread);
		return;
	}
	t->have += (size_t)nread;
	while (!t->dead) {
		enum nb_tcpf_kind kind = NB_TCPF_STUN;
		ssize_t fl = nb_tcpf_frame_len(t->rbuf, t->have, &kind);
		if (fl == 0 || (fl > 0 && (size_t)fl > t->have && (size_t)fl <= sizeof(t->rbuf)))
			break; /* more to come */
		if (fl < 0 || (size_t)fl > sizeof(t->rbuf)) {
			fail(t, UV_EPROTO); /* no way to find the next frame */
			return;
		}
		if (t->frame_cb != NULL)
			t->frame_cb(t, kind, t->rbuf, (size_t)fl, t->arg);
		if (t->dead || t->closing)
			return;
		memmove(t->rbuf, t->rbuf + fl, t->have - (size_t)fl);
		t->have -= (size_t)fl;
	}
}

static void on_connect(uv_connect_t *req, int status)
{
	struct nb_tcpconn *t = req->data;

	if (t->closing)
		return;
	if (status < 0) {
		fail(t, status);
		return;
	}
	t->connected = true;
	uv_tcp_nodelay(&t->h, 1);
	if (uv_read_start((uv_stream_t *)&t->h, on_alloc, on_read) != 0) {
		fail(t, UV_EIO);
		return;
	}
	if (t->pre_len > 0) {
		size_t n = t->pre_len;
		t->pre_len = 0;
		if (write_now(t, t->pre, n) != 0)
			return;
	}
	if (t->state_cb != NULL)
		t->state_cb(t, 0, t->arg);
}

int nb_tcpconn_open(struct nb_tcpconn *t, uv_loop_t *loop, const struct nb_addr *to,
		    nb_tcpconn_frame_fn frame_cb, nb_tcpconn_state_fn state_cb, void *arg)
{
	struct sockaddr_storage ss;
	int rc;

	memset(t, 0, sizeof(*t));
	if (nb_addr_to_sockaddr(to, &ss) < 0)
		return UV_EINVAL;
	rc = uv_tcp_init(loop, &t->h);
	if (rc != 0)
		return rc;
	t->open = true;
	t->loop = loop;
	t->peer = *to;
	t->frame_cb = frame_cb;
	t->state_cb = state_cb;
	t->arg = arg;
	t->creq.data = t;
	rc = uv_tcp_connect(&t->creq, &t->h, (const struct sockaddr *)&ss, on_connect);
	if (rc != 0) {
		nb_tcpconn_close(t);
		return rc;
	}
	return 0;
}

int nb_tcpconn_send(struct nb_tcpconn *t, const uint8_t *frame, size_t len)
{
	if (t->dead || !t->open || t->closing) {
		t->dropped++;
		return -ENOTCONN;
	}
	if (!t->connected) {
		if (sizeof(t->pre) - t->pre_len < len) {
			t->dropped++;
			return -ENOBUFS;
		}
		memcpy(t->pre + t->pre_len, frame, len);
		t->pre_len += len;
		return 0;
	}
	return write_now(t, frame, len);
}

int nb_tcpconn_send_dgram(struct nb_tcpconn *t, const uint8_t *dgram, size_t len)
{
	uint8_t f[NB_TCPF_HDR + NB_TCPF_MAX_DATAGRAM];
	ssize_t n = nb_tcpf_encode(f, sizeof(f), dgram, len);

	if (n < 0)
		return -EMSGSIZE;
	return nb_tcpconn_send(t, f, (size_t)n);
}

void nb_tcpconn_close(struct nb_tcpconn *t)
{
	if (!t->open || t->closing)
		return;
	t->closing = true;
	t->dead = true;
	uv_close((uv_handle_t *)&t->h, NULL);
}
