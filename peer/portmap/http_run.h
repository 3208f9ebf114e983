/* peer/portmap/http_run.h - HTTP requests on the libuv loop: libcurl's multi_socket
 * interface driven by uv_poll_t and uv_timer_t (curl docs/examples/multi-uv.c).
 * A shell: it moves bytes and time, and decides nothing.
 *
 * Every request is plain http to a numeric address, with no proxy (NOPROXY
 * "*"), no redirects, connect timeout min(3 s, timeout) and a total timeout.
 * The response body is capped in the write callback: past max_response
 * bytes the transfer is aborted and reported with truncated = true (curl
 * 7.88 enforces CURLOPT_MAXFILESIZE only when the length is known up front).
 * Chunked transfer coding is curl's to decode. */
#ifndef NB_PEER_HTTP_RUN_H
#define NB_PEER_HTTP_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/addr.h"

/* Requests in flight at once; one more is refused with -EBUSY. */
#define NB_HTTP_MAX_REQUESTS 4

struct nb_http;

struct nb_http_request {
	uint32_t id;               /* the caller's; echoed in the result */
	const char *url;           /* "http://192.168.6.1:5000/rootDesc.xml" */
	bool post;                 /* POST body (copied), else GET */
	const uint8_t *body;
	size_t body_len;
	const char *const *headers;/* extra header lines, NULL-terminated; may be NULL */
	size_t max_response;       /* body cap, bytes (>= 1) */
	uint32_t timeout_ms;       /* total */
};

/* The result, exactly once per started request unless it was cancelled or
 * the client closed first. status: the HTTP status, or 0 when no complete
 * response arrived (err: curl's words). body is valid during the call only.
 * local: the local address of the connection (port 0 when unknown). */
typedef void (*nb_http_done_fn)(uint32_t id, int status, const uint8_t *body, size_t len, bool truncated,
				const struct nb_addr *local, const char *err, void *arg);
typedef void (*nb_http_closed_fn)(void *arg);

/* 0, or a negative errno; *ret is set only on success. */
int nb_http_open(struct nb_http **ret, uv_loop_t *loop, nb_http_done_fn done, void *arg);
/* Start a request: 0, -EBUSY (NB_HTTP_MAX_REQUESTS in flight), -EINVAL, -ENOMEM. */
int nb_http_start(struct nb_http *h, const struct nb_http_request *req);
/* Load libcurl now (dlopen and curl_global_init, once per process):
 * blocking, thread-safe, meant for a worker thread (uv_queue_work). 0, or
 * -ENOSYS (no libcurl) / -EIO. */
int nb_http_preload(void);
/* Abort request `id`; its result is never reported. No-op for an unknown id. */
void nb_http_cancel(struct nb_http *h, uint32_t id);
/* Abort everything, close the handles; `closed` runs from the loop once the
 * memory is freed. No result is reported after this call. */
void nb_http_close(struct nb_http *h, nb_http_closed_fn closed, void *arg);

#endif
