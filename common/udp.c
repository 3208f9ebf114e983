/* common/udp.c - a libuv UDP endpoint with recvmmsg batch receive and sendmmsg batch send. */
#include "common/udp.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The send queue: datagrams copied in by nb_udp_queue(), sent by one
 * sendmmsg in nb_udp_flush(). Fixed size, allocated once per endpoint. */
struct nb_udp_txq {
	unsigned n;
	struct mmsghdr msgs[NB_UDP_TXQ];
	struct iovec iov[NB_UDP_TXQ];
	struct sockaddr_storage to[NB_UDP_TXQ];
	uint8_t data[NB_UDP_TXQ][NB_UDP_TXQ_SLOT];
};

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
	if (nread > 0 && sa != NULL) {
		if (flags & UV_UDP_PARTIAL) {
			u->rx_truncated++;
		} else if (nb_addr_from_sockaddr(sa, &from) == 0) {
			u->rx++;
			u->recv_cb(u, (const uint8_t *)buf->base, (size_t)nread, &from, u->arg);
		}
	}
	/* Anything but a chunk ends a batch: the last call of a recvmmsg
	 * batch returns the buffer (UV_UDP_MMSG_FREE), as does a plain
	 * recvmsg or the EAGAIN that ends a read loop. Answers queued while
	 * handling the batch go out now, in one sendmmsg. */
	if (!(flags & UV_UDP_MMSG_CHUNK)) {
		u->rbuf_busy = 0;
		if (u->batch_cb != NULL)
			u->batch_cb(u, u->arg);
		nb_udp_flush(u);
	}
}

int nb_udp_drain(struct nb_udp *u, int max)
{
	uv_os_fd_t fd;
	int n = 0;

	if (u->rbuf_busy || uv_fileno((uv_handle_t *)&u->handle, &fd) != 0)
		return 0;
	u->rbuf_busy = 1; /* the buffer is ours until the loop ends */
	while (n < max) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct nb_addr from;
		ssize_t r = recvfrom(fd, u->rbuf, NB_UDP_SLOT, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&ss,
				     &sl);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break; /* EAGAIN: nothing more waiting; anything else the loop will see */
		}
		if ((size_t)r > NB_UDP_SLOT) {
			u->rx_truncated++;
			continue;
		}
		if (nb_addr_from_sockaddr((struct sockaddr *)&ss, &from) != 0)
			continue;
		u->rx++;
		n++;
		u->recv_cb(u, u->rbuf, (size_t)r, &from, u->arg);
		if (uv_is_closing((uv_handle_t *)&u->handle))
			break; /* the callback closed us: the fd is gone */
	}
	u->rbuf_busy = 0;
	if (u->batch_cb != NULL)
		u->batch_cb(u, u->arg);
	if (!uv_is_closing((uv_handle_t *)&u->handle))
		nb_udp_flush(u);
	return n;
}

/* Create and bind the socket before libuv sees it, so that the usual
 * failures (address in use, not local, permission) leave nothing to close.
 * Returns the fd or a libuv -errno. */
/* errno as a libuv error code (on Unix, libuv's codes are -errno). */
static int uv_errno(void)
{
	return -errno;
}

static int bind_socket(const struct sockaddr_storage *ss, int salen, unsigned flags)
{
	int fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1, rc = 0;

	if (fd < 0)
		return uv_errno();
	if (flags & UV_UDP_REUSEADDR)
		rc = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (rc == 0 && ss->ss_family == AF_INET6 && (flags & UV_UDP_IPV6ONLY))
		rc = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (rc == 0)
		rc = bind(fd, (const struct sockaddr *)ss, (socklen_t)salen);
	if (rc != 0) {
		rc = uv_errno();
		close(fd);
		return rc;
	}
	return fd;
}

int nb_udp_open(struct nb_udp *u, uv_loop_t *loop, const struct nb_addr *local, unsigned flags,
		nb_udp_recv_fn recv_cb, void *arg)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int salen = nb_addr_to_sockaddr(local, &ss);
	int fd, rc, zero = 0;

	if (salen < 0)
		return UV_EAFNOSUPPORT;
	memset(u, 0, sizeof(*u));
	fd = bind_socket(&ss, salen, flags);
	if (fd < 0)
		return fd;
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0 ||
	    nb_addr_from_sockaddr((const struct sockaddr *)&ss, &u->local) != 0) {
		close(fd);
		return UV_EINVAL;
	}
	u->rbuf = malloc((size_t)NB_UDP_BATCH * NB_UDP_SLOT);
	u->txq = calloc(1, sizeof(*u->txq));
	if (u->rbuf == NULL || u->txq == NULL) {
		rc = UV_ENOMEM;
		goto fail;
	}
	u->recv_cb = recv_cb;
	u->arg = arg;
	/* AF_UNSPEC: libuv makes no socket of its own; it takes ours. */
	rc = uv_udp_init_ex(loop, &u->handle, AF_UNSPEC | UV_UDP_RECVMMSG);
	if (rc != 0)
		goto fail;
	u->handle.data = u;
	rc = uv_udp_open(&u->handle, fd);
	/* uv_udp_open() sets SO_REUSEADDR; it was not asked for, and on Linux
	 * it would let a later socket with the option share our port. */
	if (rc == 0 && !(flags & UV_UDP_REUSEADDR))
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &zero, sizeof(zero));
	if (rc == 0)
		rc = uv_udp_recv_start(&u->handle, on_alloc, on_recv);
	if (rc != 0) {
		/* Not seen in practice (the socket is already bound): the
		 * handle is initialised and must go through uv_close, so here
		 * the caller's memory must outlive the loop's next iteration. */
		uv_os_fd_t taken;
		if (uv_fileno((const uv_handle_t *)&u->handle, &taken) != 0)
			close(fd); /* uv_udp_open failed: libuv did not take it */
		uv_close((uv_handle_t *)&u->handle, NULL);
		free(u->rbuf);
		free(u->txq);
		u->rbuf = NULL;
		u->txq = NULL;
		return rc;
	}
	return 0;
fail:
	free(u->rbuf);
	free(u->txq);
	u->rbuf = NULL;
	u->txq = NULL;
	close(fd);
	return rc;
}

int nb_udp_send(struct nb_udp *u, const uint8_t *data, size_t len, const struct nb_addr *to)
{
	struct sockaddr_storage ss;
	uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
	int rc;

	if (nb_addr_to_sockaddr(to, &ss) < 0)
		return UV_EAFNOSUPPORT;
	nb_udp_flush(u);
	rc = uv_udp_try_send(&u->handle, &b, 1, (const struct sockaddr *)&ss);
	if (rc < 0) {
		u->tx_dropped++;
		return rc;
	}
	u->tx++;
	return 0;
}

int nb_udp_queue(struct nb_udp *u, const uint8_t *data, size_t len, const struct nb_addr *to)
{
	struct nb_udp_txq *q = u->txq;
	int salen;
	unsigned i;

	if (q == NULL)
		return UV_EBADF;
	if (len > NB_UDP_TXQ_SLOT)
		return nb_udp_send(u, data, len, to); /* flushes first: order kept */
	i = q->n;
	salen = nb_addr_to_sockaddr(to, &q->to[i]);
	if (salen < 0)
		return UV_EAFNOSUPPORT;
	memcpy(q->data[i], data, len);
	q->iov[i].iov_base = q->data[i];
	q->iov[i].iov_len = len;
	memset(&q->msgs[i], 0, sizeof(q->msgs[i]));
	q->msgs[i].msg_hdr.msg_name = &q->to[i];
	q->msgs[i].msg_hdr.msg_namelen = (socklen_t)salen;
	q->msgs[i].msg_hdr.msg_iov = &q->iov[i];
	q->msgs[i].msg_hdr.msg_iovlen = 1;
	q->n = i + 1;
	if (q->n == NB_UDP_TXQ)
		nb_udp_flush(u);
	return 0;
}

void nb_udp_flush(struct nb_udp *u)
{
	struct nb_udp_txq *q = u->txq;
	uv_os_fd_t fd;
	unsigned i = 0;

	if (q == NULL || q->n == 0)
		return;
	if (uv_fileno((const uv_handle_t *)&u->handle, &fd) != 0) {
		u->tx_dropped += q->n;
		q->n = 0;
		return;
	}
	while (i < q->n) {
		int r = sendmmsg(fd, &q->msgs[i], q->n - i, MSG_DONTWAIT);

		if (r > 0) {
			i += (unsigned)r;
			u->tx += (unsigned)r;
			u->tx_batches++;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
			/* Socket buffer full: drop the rest, never queue more. */
			u->tx_dropped += q->n - i;
			break;
		}
		/* This datagram failed (unreachable, refused, bad address):
		 * drop it alone and go on with the next. */
		u->tx_dropped++;
		i++;
	}
	q->n = 0;
}

static void on_closed(uv_handle_t *h)
{
	struct nb_udp *u = h->data;

	free(u->rbuf);
	free(u->txq);
	u->rbuf = NULL;
	u->txq = NULL;
	if (u->close_cb != NULL)
		u->close_cb(u);
}

void nb_udp_close(struct nb_udp *u, nb_udp_close_fn close_cb)
{
	if (uv_is_closing((uv_handle_t *)&u->handle))
		return;
	u->close_cb = close_cb;
	nb_udp_flush(u);
	uv_udp_recv_stop(&u->handle);
	uv_close((uv_handle_t *)&u->handle, on_closed);
}
