/* peer/portmap/http_run.c - HTTP requests on the libuv loop: curl's multi_socket API on uv_poll_t + uv_timer_t.
 *
 * The pattern is curl's docs/examples/multi-uv.c: curl tells us which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake it
 * (CURLMOPT_TIMERFUNCTION); libuv tells curl what happened
 * (curl_multi_socket_action). Nothing here blocks: every URL is a numeric
 * address, so curl resolves it without a resolver thread.
 *
 * libcurl is loaded with dlopen(), not linked: Debian's libcurl pulls in
 * some 30 libraries (GnuTLS, Kerberos, LDAP...) whose loading and
 * constructors cost every natpeer start several milliseconds (about 30 ms
 * in the lab), and most runs never make an HTTP request. The headers are
 * still curl's own; the functions come from the table `api` below. The load
 * (dlopen, the symbols, then curl_global_init(CURL_GLOBAL_DEFAULT)) runs
 * once per process under pthread_once, in nb_http_preload(): peer/portmap/
 * upnp_run.c calls it from libuv's thread pool when UPnP starts, so the
 * loop thread never waits for it, and holds its first request until it is
 * done. The first request calls it too (then a no-op). curl_global_init is
 * thus called once, before any other curl call, while no other thread uses
 * curl, as curl documents it must be.
 *
 * curl_global_cleanup() is never called: other parts of the process may
 * still use curl (or OpenSSL, which curl initialises), and what it keeps is
 * still reachable at exit, not leaked. A program that wants it cleaned up
 * may call curl_global_cleanup() itself after its last nb_http_close().
 *
 * Lifetime: a struct nb_http embeds its uv_timer_t, and every watched socket
 * has a malloc'd context embedding its uv_poll_t. Each is freed only in its
 * close callback; the nb_http itself once the last of its handles has closed
 * (counted in open_handles), and only then does `closed` run.
 *
 * No result after cancel or close: a request's slot is released (easy
 * handle removed and cleaned up) before anything else can see it, and the
 * dispatch loop stops as soon as a callback closes the client. */
#include "peer/portmap/http_run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CURL_DISABLE_TYPECHECK /* curl_easy_setopt & co are plain calls through `api` */
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>

#include "common/log.h"

/* The connect phase gets at most this much of the total (RESEARCH.md: connect 3 s). */
#define HTTP_CONNECT_MS 3000
/* The body buffer starts at this size and doubles up to max_response. */
#define HTTP_BUF_START 4096

struct sock_ctx {
	uv_poll_t poll; /* first; poll.data points here */
	curl_socket_t fd;
	struct nb_http *h;
	struct sock_ctx *next; /* the client's list of open contexts */
	bool closing;
};

struct req {
	bool used;
	uint32_t id;
	CURL *easy;
	struct curl_slist *headers;
	uint8_t *buf; /* body received so far; at most max bytes */
	size_t len, cap, max;
	bool truncated; /* the write callback refused bytes past max */
	char errbuf[CURL_ERROR_SIZE];
	struct nb_http *h;
};

struct nb_http {
	uv_timer_t timer; /* first; timer.data points here */
	uv_loop_t *loop;
	CURLM *multi;
	nb_http_done_fn done;
	void *arg;
	struct req reqs[NB_HTTP_MAX_REQUESTS];
	struct sock_ctx *socks;
	int open_handles; /* the timer and every sock_ctx not yet closed */
	bool closing;
	nb_http_closed_fn closed;
	void *closed_arg;
};


/* libcurl's functions, from dlopen("libcurl.so.4") (see the top). */
static struct {
	void *lib;
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
	CURLMcode (*multi_cleanup)(CURLM *);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
} api;

/* curl.h defines these three as function-like macros of themselves */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init api.global_init
#define curl_easy_init api.easy_init
#define curl_easy_setopt api.easy_setopt
#define curl_easy_getinfo api.easy_getinfo
#define curl_easy_cleanup api.easy_cleanup
#define curl_easy_strerror api.easy_strerror
#define curl_multi_init api.multi_init
#define curl_multi_setopt api.multi_setopt
#define curl_multi_add_handle api.multi_add_handle
#define curl_multi_remove_handle api.multi_remove_handle
#define curl_multi_socket_action api.multi_socket_action
#define curl_multi_info_read api.multi_info_read
#define curl_multi_assign api.multi_assign
#define curl_multi_cleanup api.multi_cleanup
#define curl_slist_append api.slist_append
#define curl_slist_free_all api.slist_free_all

/* The load, once per process (pthread_once): dlopen, the symbols,
 * curl_global_init. 0 loaded; -ENOSYS libcurl cannot be loaded; -EIO
 * curl_global_init failed (logged). */
static int load_result = -ENOSYS;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static int curl_load_once(void)
{
	void *lib;

	lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		nb_log_error("http", "cannot load libcurl: %s (install libcurl4)", dlerror());
		return -ENOSYS;
	}
#define LOAD(field, name)                                                 \
	do {                                                              \
		*(void **)&api.field = dlsym(lib, name);                  \
		if (api.field == NULL) {                                  \
			nb_log_error("http", "libcurl has no %s", name);  \
			dlclose(lib);                                     \
			return -ENOSYS;                                   \
		}                                                         \
	} while (0)
	LOAD(global_init, "curl_global_init");
	LOAD(easy_init, "curl_easy_init");
	LOAD(easy_setopt, "curl_easy_setopt");
	LOAD(easy_getinfo, "curl_easy_getinfo");
	LOAD(easy_cleanup, "curl_easy_cleanup");
	LOAD(easy_strerror, "curl_easy_strerror");
	LOAD(multi_init, "curl_multi_init");
	LOAD(multi_setopt, "curl_multi_setopt");
	LOAD(multi_add_handle, "curl_multi_add_handle");
	LOAD(multi_remove_handle, "curl_multi_remove_handle");
	LOAD(multi_socket_action, "curl_multi_socket_action");
	LOAD(multi_info_read, "curl_multi_info_read");
	LOAD(multi_assign, "curl_multi_assign");
	LOAD(multi_cleanup, "curl_multi_cleanup");
	LOAD(slist_append, "curl_slist_append");
	LOAD(slist_free_all, "curl_slist_free_all");
#undef LOAD
	api.lib = lib; /* never closed: curl keeps global state */
	if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		nb_log_error("http", "curl_global_init failed");
		return -EIO;
	}
	return 0;
}

static void curl_load_run(void)
{
	load_result = curl_load_once();
}

/* 0, or -ENOSYS / -EIO (logged once). Blocks while another thread loads. */
static int curl_load(void)
{
	pthread_once(&load_once, curl_load_run);
	return load_result;
}

int nb_http_preload(void)
{
	return curl_load();
}

/* ---------------------------------------------------------------- handles */

static void maybe_free(struct nb_http *h)
{
	if (!h->closing || h->open_handles > 0)
		return;
	nb_http_closed_fn closed = h->closed;
	void *arg = h->closed_arg;

	free(h);
	if (closed != NULL)
		closed(arg);
}

static void on_sock_closed(uv_handle_t *handle)
{
	struct sock_ctx *c = handle->data;
	struct nb_http *h = c->h;

	free(c);
	h->open_handles--;
	maybe_free(h);
}

static void sock_close(struct sock_ctx *c)
{
	struct sock_ctx **p;

	if (c->closing)
		return;
	c->closing = true;
	for (p = &c->h->socks; *p != NULL; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	/* uv_close stops the watcher now: a new socket curl opens with the
	 * same number can be watched at once. */
	uv_close((uv_handle_t *)&c->poll, on_sock_closed);
}

static void on_timer_closed(uv_handle_t *handle)
{
	struct nb_http *h = handle->data;

	h->open_handles--;
	maybe_free(h);
}

/* ---------------------------------------------------------------- requests */

static struct req *req_find(struct nb_http *h, uint32_t id)
{
	for (int i = 0; i < NB_HTTP_MAX_REQUESTS; i++)
		if (h->reqs[i].used && h->reqs[i].id == id)
			return &h->reqs[i];
	return NULL;
}

/* Take the request out of curl and free what it owns (the body too,
 * unless the caller took it). The slot is free again afterwards. */
static void req_release(struct req *r)
{
	if (r->easy != NULL) {
		if (r->h->multi != NULL)
			curl_multi_remove_handle(r->h->multi, r->easy);
		curl_easy_cleanup(r->easy);
	}
	curl_slist_free_all(r->headers);
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
	struct req *r = userp;
	size_t n = size * nmemb, room = r->max - r->len, take = n < room ? n : room;

	if (take > r->cap - r->len) {
		size_t cap = r->cap ? r->cap : HTTP_BUF_START;
		uint8_t *nb;

		while (cap - r->len < take)
			cap = cap > r->max / 2 ? r->max : cap * 2;
		if (cap > r->max)
			cap = r->max;
		nb = realloc(r->buf, cap);
		if (nb == NULL) {
			snprintf(r->errbuf, sizeof(r->errbuf), "out of memory for the response body");
			return 0; /* aborts: CURLE_WRITE_ERROR */
		}
		r->buf = nb;
		r->cap = cap;
	}
	if (take > 0)
		memcpy(r->buf + r->len, data, take);
	r->len += take;
	if (take < n) {
		/* A short count aborts the transfer (CURLE_WRITE_ERROR): the
		 * body cap, which curl 7.88 enforces only for a length known
		 * up front (CURLOPT_MAXFILESIZE). */
		r->truncated = true;
		return take;
	}
	return n;
}

static bool header_ok(const char *s)
{
	return s != NULL && strpbrk(s, "\r\n") == NULL && s[0] != '\0';
}

static bool has_header(const char *const *headers, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':')
			return true;
	return false;
}

#define SETOPT(e, opt, val)                                     \
	do {                                                    \
		if (curl_easy_setopt((e), (opt), (val)) != CURLE_OK) \
			goto fail;                              \
	} while (0)

static int multi_ready(struct nb_http *h);

int nb_http_start(struct nb_http *h, const struct nb_http_request *q)
{
	struct req *r = NULL;
	long total, connect;

	if (h == NULL || h->closing || q == NULL || q->url == NULL || q->max_response == 0 || q->timeout_ms == 0 ||
	    (q->post && q->body == NULL && q->body_len > 0))
		return -EINVAL;
	for (size_t i = 0; q->headers != NULL && q->headers[i] != NULL; i++)
		if (!header_ok(q->headers[i]))
			return -EINVAL; /* a CR or LF would inject a header */
	if (req_find(h, q->id) != NULL)
		return -EINVAL; /* ids must tell requests apart */
	int rc = multi_ready(h);
	if (rc < 0)
		return rc;
	for (int i = 0; i < NB_HTTP_MAX_REQUESTS && r == NULL; i++)
		if (!h->reqs[i].used)
			r = &h->reqs[i];
	if (r == NULL)
		return -EBUSY;

	memset(r, 0, sizeof(*r));
	r->h = h;
	r->id = q->id;
	r->max = q->max_response;
	r->easy = curl_easy_init();
	if (r->easy == NULL)
		goto fail;
	/* Headers as given: an empty "Expect:" is curl's "do not send it". */
	for (size_t i = 0; q->headers != NULL && q->headers[i] != NULL; i++) {
		struct curl_slist *l = curl_slist_append(r->headers, q->headers[i]);
		if (l == NULL)
			goto fail;
		r->headers = l;
	}
	if (!has_header(q->headers, "Connection")) {
		struct curl_slist *l = curl_slist_append(r->headers, "Connection: close");
		if (l == NULL)
			goto fail;
		r->headers = l;
	}
	total = (long)q->timeout_ms;
	connect = total < HTTP_CONNECT_MS ? total : HTTP_CONNECT_MS;

	SETOPT(r->easy, CURLOPT_URL, q->url);
	SETOPT(r->easy, CURLOPT_PROTOCOLS_STR, "http");
	SETOPT(r->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http");
	SETOPT(r->easy, CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(r->easy, CURLOPT_NOPROXY, "*");
	SETOPT(r->easy, CURLOPT_PROXY, "");
	SETOPT(r->easy, CURLOPT_NOSIGNAL, 1L);
	SETOPT(r->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SETOPT(r->easy, CURLOPT_FORBID_REUSE, 1L); /* one connection per request, closed after it */
	SETOPT(r->easy, CURLOPT_FRESH_CONNECT, 1L);
	SETOPT(r->easy, CURLOPT_CONNECTTIMEOUT_MS, connect);
	SETOPT(r->easy, CURLOPT_TIMEOUT_MS, total);
	SETOPT(r->easy, CURLOPT_HTTPHEADER, r->headers);
	SETOPT(r->easy, CURLOPT_WRITEFUNCTION, on_write);
	SETOPT(r->easy, CURLOPT_WRITEDATA, r);
	SETOPT(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	SETOPT(r->easy, CURLOPT_PRIVATE, r);
	if (q->post) {
		/* The size first: COPYPOSTFIELDS copies that many bytes (the
		 * body need not be NUL-terminated), and curl sends it as
		 * Content-Length. */
		SETOPT(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
		SETOPT(r->easy, CURLOPT_COPYPOSTFIELDS, q->body_len > 0 ? (const char *)q->body : "");
	} else {
		SETOPT(r->easy, CURLOPT_HTTPGET, 1L);
	}
	/* Starts nothing yet: curl asks for a timer (0 ms) and the loop
	 * begins the transfer, so `done` never runs from inside this call. */
	if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
		goto fail;
	}
	r->used = true;
	return 0;
fail:
	if (r->easy != NULL)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	memset(r, 0, sizeof(*r));
	return -ENOMEM;
}

void nb_http_cancel(struct nb_http *h, uint32_t id)
{
	struct req *r;

	if (h == NULL || h->closing || (r = req_find(h, id)) == NULL)
		return;
	req_release(r);
}

/* ---------------------------------------------------------------- results */

static void local_of(CURL *e, struct nb_addr *ret)
{
	char *ip = NULL;
	long port = 0;

	memset(ret, 0, sizeof(*ret));
	if (curl_easy_getinfo(e, CURLINFO_LOCAL_IP, &ip) != CURLE_OK || ip == NULL || ip[0] == '\0' ||
	    nb_addr_parse(ip, true, ret) != 0) {
		memset(ret, 0, sizeof(*ret));
		return;
	}
	if (curl_easy_getinfo(e, CURLINFO_LOCAL_PORT, &port) == CURLE_OK && port > 0 && port <= 65535)
		ret->port = (uint16_t)port;
}

static void check_done(struct nb_http *h)
{
	CURLMsg *msg;
	int left;

	while (!h->closing && (msg = curl_multi_info_read(h->multi, &left)) != NULL) {
		void *priv = NULL;
		struct req *r;
		struct nb_addr local;
		char err[CURL_ERROR_SIZE + 64];
		const char *errp = NULL;
		long code = 0;
		int status = 0;
		uint8_t *body;
		size_t len;
		bool truncated;
		uint32_t id;
		CURLcode rc;

		if (msg->msg != CURLMSG_DONE)
			continue;
		rc = msg->data.result;
		if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv) != CURLE_OK || priv == NULL)
			continue;
		r = priv;
		if (!r->used)
			continue;
		local_of(r->easy, &local);
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
		if (r->truncated) {
			snprintf(err, sizeof(err), "response larger than %zu bytes", r->max);
			errp = err;
			status = code > 0 && code < 1000 ? (int)code : 0;
		} else if (rc != CURLE_OK) {
			snprintf(err, sizeof(err), "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
			errp = err;
		} else {
			status = code > 0 && code < 1000 ? (int)code : 0;
			if (status == 0) {
				snprintf(err, sizeof(err), "no HTTP status");
				errp = err;
			}
		}
		/* Free the slot before the callback, which may start the next
		 * request; the body is handed over and freed after the call. */
		id = r->id;
		body = r->buf;
		len = r->len;
		truncated = r->truncated;
		r->buf = NULL;
		req_release(r);
		h->done(id, status, body, len, truncated, &local, errp, h->arg);
		free(body);
	}
}

/* ---------------------------------------------------------------- curl <-> libuv */

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct sock_ctx *c = p->data;
	struct nb_http *h = c->h;
	int flags = 0, running;

	if (h->closing)
		return;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(h->multi, c->fd, flags, &running);
	check_done(h);
}

static void on_timeout(uv_timer_t *t)
{
	struct nb_http *h = t->data;
	int running;

	if (h->closing)
		return;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(h);
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer; 0 means "as soon as
 * possible", which must not be done from inside this callback. */
static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
	struct nb_http *h = userp;

	(void)m;
	if (timeout_ms < 0)
		uv_timer_stop(&h->timer);
	else if (!uv_is_closing((uv_handle_t *)&h->timer))
		uv_timer_start(&h->timer, on_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

/* CURLMOPT_SOCKETFUNCTION: watch, change or forget one socket. */
static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct nb_http *h = userp;
	struct sock_ctx *c = socketp;
	int events = 0, rc;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		/* curl calls this before it closes the socket, and forgets
		 * its socketp right after. */
		if (c != NULL)
			sock_close(c);
		return 0;
	}
	if (c == NULL) {
		c = calloc(1, sizeof(*c));
		if (c == NULL)
			return -1; /* curl 7.88 fails the transfers on this socket */
		rc = uv_poll_init_socket(h->loop, &c->poll, s);
		if (rc != 0) {
			nb_log_debug("http", "uv_poll_init_socket(%d): %s", (int)s, uv_strerror(rc));
			free(c);
			return -1;
		}
		c->fd = s;
		c->h = h;
		c->poll.data = c;
		c->next = h->socks;
		h->socks = c;
		h->open_handles++;
		curl_multi_assign(h->multi, s, c);
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	rc = uv_poll_start(&c->poll, events, on_poll);
	if (rc != 0) {
		nb_log_debug("http", "uv_poll_start(%d): %s", (int)s, uv_strerror(rc));
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- open / close */

/* The multi handle, made by the first request (libcurl is loaded then). */
static int multi_ready(struct nb_http *h)
{
	int rc;

	if (h->multi != NULL)
		return 0;
	if ((rc = curl_load()) < 0)
		return rc;
	h->multi = curl_multi_init();
	if (h->multi == NULL)
		return -ENOMEM;
	if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK) {
		curl_multi_cleanup(h->multi);
		h->multi = NULL;
		return -ENOMEM;
	}
	return 0;
}

int nb_http_open(struct nb_http **ret, uv_loop_t *loop, nb_http_done_fn done, void *arg)
{
	struct nb_http *h;

	if (ret == NULL || loop == NULL || done == NULL)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return -ENOMEM;
	h->loop = loop;
	h->done = done;
	h->arg = arg;
	uv_timer_init(loop, &h->timer); /* cannot fail on Unix */
	h->timer.data = h;
	h->open_handles = 1;
	*ret = h;
	return 0;
}

void nb_http_close(struct nb_http *h, nb_http_closed_fn closed, void *arg)
{
	if (h == NULL || h->closing)
		return;
	h->closing = true;
	h->closed = closed;
	h->closed_arg = arg;
	for (int i = 0; i < NB_HTTP_MAX_REQUESTS; i++)
		if (h->reqs[i].used)
			req_release(&h->reqs[i]);
	/* Closing the connections calls on_curl_socket(REMOVE) for each. */
	if (h->multi != NULL) /* NULL: no request ever started, libcurl maybe not loaded */
		curl_multi_cleanup(h->multi);
	h->multi = NULL;
	while (h->socks != NULL)
		sock_close(h->socks); /* anything curl did not hand back */
	uv_timer_stop(&h->timer);
	uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}
