/* peer/spray_run.c - a birthday attempt's spraying sockets (see spray_run.h). */
#include "peer/spray_run.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/log.h"

struct spray_sock {
	uv_udp_t h; /* first: h.data points to the set */
	uint32_t idx;
	bool open;
};

struct nb_spray {
	nb_spray_recv_fn cb;
	void *arg;
	uint32_t n, n_open, closing;
	bool dead; /* nb_spray_close() was called: free once all are closed */
	uint8_t buf[2048];
	struct spray_sock s[];
};

static void on_closed(uv_handle_t *h)
{
	struct nb_spray *sp = h->data;

	if (--sp->closing == 0 && sp->dead)
		free(sp);
}

static void close_one(struct nb_spray *sp, struct spray_sock *x)
{
	if (!x->open)
		return;
	x->open = false;
	sp->n_open--;
	sp->closing++;
	uv_close((uv_handle_t *)&x->h, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct nb_spray *sp = h->data;

	(void)suggested;
	buf->base = (char *)sp->buf;
	buf->len = sizeof(sp->buf);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *sa,
		    unsigned flags)
{
	struct nb_spray *sp = h->data;
	struct spray_sock *x = (struct spray_sock *)h;
	struct nb_addr from;

	(void)buf;
	if (nread <= 0 || sa == NULL || (flags & UV_UDP_PARTIAL) || sp->dead || !x->open)
		return;
	if (nb_addr_from_sockaddr(sa, &from) != 0)
		return;
	sp->cb(sp, x->idx, sp->buf, (size_t)nread, &from, sp->arg);
}

/* Make room for `need` more descriptors under RLIMIT_NOFILE. */
static int check_limit(uint32_t n, char *why, size_t why_len)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)n + NB_SPRAY_FD_HEADROOM;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0; /* cannot tell: the sockets themselves will say */
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		struct rlimit want = rl;
		want.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
		if (want.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &want) == 0) {
			nb_log_info("spray", "open-file limit raised from %llu to %llu for %u sockets",
				    (unsigned long long)rl.rlim_cur, (unsigned long long)want.rlim_cur, n);
			rl.rlim_cur = want.rlim_cur;
		}
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		snprintf(why, why_len,
			 "birthday needs %u sockets, but the open-file limit is %llu (hard limit %llu): "
			 "raise it (e.g. ulimit -n %llu) or lower --birthday-sockets",
			 n, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
			 (unsigned long long)need);
		return -EMFILE;
	}
	return 0;
}

int nb_spray_open(uv_loop_t *loop, const struct nb_addr *local, uint32_t n, nb_spray_recv_fn cb,
		  void *arg, struct nb_spray **ret, char *why, size_t why_len)
{
	struct sockaddr_storage ss;
	struct nb_addr bind_to = *local;
	struct nb_spray *sp;
	int rc;

	if (n == 0 || n > NB_SPRAY_MAX) {
		snprintf(why, why_len, "birthday: %u sockets is not in 1..%d", n, NB_SPRAY_MAX);
		return -EINVAL;
	}
	rc = check_limit(n, why, why_len);
	if (rc != 0)
		return rc;
	sp = calloc(1, sizeof(*sp) + (size_t)n * sizeof(sp->s[0]));
	if (sp == NULL) {
		snprintf(why, why_len, "birthday: out of memory for %u sockets", n);
		return -ENOMEM;
	}
	sp->cb = cb;
	sp->arg = arg;
	sp->n = n;
	bind_to.port = 0;
	nb_addr_to_sockaddr(&bind_to, &ss);
	for (uint32_t i = 0; i < n; i++) {
		struct spray_sock *x = &sp->s[i];
		x->idx = i + 1;
		rc = uv_udp_init(loop, &x->h);
		if (rc == 0) {
			x->h.data = sp;
			x->open = true;
			sp->n_open++;
			rc = uv_udp_bind(&x->h, (const struct sockaddr *)&ss, 0);
			if (rc == 0)
				rc = uv_udp_recv_start(&x->h, on_alloc, on_recv);
		}
		if (rc != 0) {
			if (rc == UV_EMFILE || rc == UV_ENFILE)
				snprintf(why, why_len,
					 "birthday: socket %u of %u: %s: raise the open-file limit "
					 "(ulimit -n) or lower --birthday-sockets",
					 i + 1, n, uv_strerror(rc));
			else
				snprintf(why, why_len, "birthday: socket %u of %u: %s", i + 1, n,
					 uv_strerror(rc));
			nb_spray_close(sp);
			return rc;
		}
	}
	*ret = sp;
	return 0;
}

int nb_spray_send(struct nb_spray *sp, uint32_t idx, const uint8_t *data, size_t len,
		  const struct nb_addr *to)
{
	struct sockaddr_storage ss;
	uv_buf_t b = uv_buf_init((char *)data, (unsigned int)len);
	int rc;

	if (idx == 0 || idx > sp->n || !sp->s[idx - 1].open)
		return UV_EBADF;
	nb_addr_to_sockaddr(to, &ss);
	rc = uv_udp_try_send(&sp->s[idx - 1].h, &b, 1, (const struct sockaddr *)&ss);
	return rc < 0 ? rc : 0;
}

void nb_spray_keep(struct nb_spray *sp, uint32_t idx)
{
	for (uint32_t i = 0; i < sp->n; i++)
		if (sp->s[i].idx != idx)
			close_one(sp, &sp->s[i]);
}

uint32_t nb_spray_open_count(const struct nb_spray *sp)
{
	return sp->n_open;
}

void nb_spray_close(struct nb_spray *sp)
{
	if (sp == NULL)
		return;
	sp->dead = true;
	for (uint32_t i = 0; i < sp->n; i++)
		close_one(sp, &sp->s[i]);
	if (sp->closing == 0)
		free(sp);
}
