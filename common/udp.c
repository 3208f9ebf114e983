/* common/udp.c - a libuv UDP endpoint with recvmmsg batch receive. */
#include "common/udp.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct nb_udp *u = h->data;

	(void)suggested;
	/* One buffer per endpoint, reused for every batch: datagrams are
	 * handled synchronously inside on_recv, so nothing outlives a batch.
	 * A buffer of at least two 64 KiB slots makes libuv use recvmmsg. */
	if (u->rbuf_busy) {
		*buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
		return;
	}
	u->rbuf_busy = 1;
	*buf = uv_buf_init((char *)u->rbuf, NB_UDP_BATCH * NB_UDP_SLOT);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *sa,
		    unsigned flags)
{
	struct nb_udp *u = h->data;
	struct nb_addr from;

	(void)buf;
	/* The last call of a batch (or a plain recvmsg) returns the buffer. */
	if (!(flags & UV_UDP_MMSG_CHUNK))
		u->rbuf_busy = 0;
	if (nread <= 0 || sa == NULL)
		return; /* "buffer returned" (0, NULL), an empty datagram, or an error */
	if (flags & UV_UDP_PARTIAL) {
		u->rx_truncated++;
		return;
	}
	if (nb_addr_from_sockaddr(sa, &from) != 0)
		return;
	u->rx++;
	u->recv_cb(u, (const uint8_t *)buf->base, (size_t)nread, &from, u->arg);
}

int nb_udp_open(struct nb_udp *u, uv_loop_t *loop, const struct nb_addr *local, unsigned flags,
		nb_udp_recv_fn recv_cb, void *arg)
{
	struct sockaddr_storage ss;
	int salen = nb_addr_to_sockaddr(local, &ss);
	int rc;

	if (salen < 0)
		return UV_EAFNOSUPPORT;
	memset(u, 0, sizeof(*u));
	u->rbuf = malloc((size_t)NB_UDP_BATCH * NB_UDP_SLOT);
	if (u->rbuf == NULL)
		return UV_ENOMEM;
	u->recv_cb = recv_cb;
	u->arg = arg;
	rc = uv_udp_init_ex(loop, &u->handle, (unsigned)ss.ss_family | UV_UDP_RECVMMSG);
	if (rc != 0) {
		free(u->rbuf);
		u->rbuf = NULL;
		return rc;
	}
	u->handle.data = u;
	rc = uv_udp_bind(&u->handle, (const struct sockaddr *)&ss, flags);
	if (rc == 0) {
		int len = (int)sizeof(ss);
		rc = uv_udp_getsockname(&u->handle, (struct sockaddr *)&ss, &len);
	}
	if (rc == 0)
		rc = nb_addr_from_sockaddr((const struct sockaddr *)&ss, &u->local) == 0 ? 0 : UV_EINVAL;
	if (rc == 0)
		rc = uv_udp_recv_start(&u->handle, on_alloc, on_recv);
	if (rc != 0) {
		/* The handle is initialised: it must go through uv_close. The
		 * buffer is freed now; the caller's memory must outlive the
		 * close callback, which the loop runs later. */
		uv_close((uv_handle_t *)&u->handle, NULL);
		free(u->rbuf);
		u->rbuf = NULL;
	}
	return rc;
}

int nb_udp_send(struct nb_udp *u, const uint8_t *data, size_t len, const struct nb_addr *to)
{
	struct sockaddr_storage ss;
	uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
	int rc;

	if (nb_addr_to_sockaddr(to, &ss) < 0)
		return UV_EAFNOSUPPORT;
	rc = uv_udp_try_send(&u->handle, &b, 1, (const struct sockaddr *)&ss);
	if (rc < 0) {
		u->tx_dropped++;
		return rc;
	}
	u->tx++;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	struct nb_udp *u = h->data;

	free(u->rbuf);
	u->rbuf = NULL;
	if (u->close_cb != NULL)
		u->close_cb(u);
}

void nb_udp_close(struct nb_udp *u, nb_udp_close_fn close_cb)
{
	if (uv_is_closing((uv_handle_t *)&u->handle))
		return;
	u->close_cb = close_cb;
	uv_udp_recv_stop(&u->handle);
	uv_close((uv_handle_t *)&u->handle, on_closed);
}
