/* peer/cli_pipe_run.c - natpeer(1)'s line pipe: stdout written through the thread pool, stdin read into lines sent to the connected peers (--json: {"data":BASE64}). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "common/log.h"
#include "peer/cli_run.h"
#include "peer/fwd.h"

/* ---- stdout --------------------------------------------------------------- */

static void out_kick(struct cli *c);

static void on_out_written(uv_fs_t *req)
{
	struct cli *c = req->data;
	struct cli_out_chunk *k = c->out_head;
	ssize_t r = req->result;

	uv_fs_req_cleanup(req);
	c->out_busy = false;
	if (r < 0) {
		if (!c->out_broken)
			fprintf(stderr, "natpeer: stdout: %s; dropping output\n", uv_strerror((int)r));
		c->out_broken = true;
	}
	if (k != NULL) {
		if (r > 0)
			k->off += (size_t)r;
		if (r <= 0 || k->off >= k->len) {
			c->out_head = k->next;
			if (c->out_head == NULL)
				c->out_tail = NULL;
			c->out_pending -= k->len;
			free(k);
		}
	}
	out_kick(c);
}

static void out_kick(struct cli *c)
{
	struct cli_out_chunk *k = c->out_head;
	uv_buf_t b;

	if (c->out_busy || k == NULL)
		return;
	if (c->out_broken) {
		while ((k = c->out_head) != NULL) {
			c->out_head = k->next;
			c->out_pending -= k->len;
			free(k);
		}
		c->out_tail = NULL;
		return;
	}
	b = uv_buf_init(k->data + k->off, (unsigned)(k->len - k->off));
	c->out_req.data = c;
	if (uv_fs_write(&c->loop, &c->out_req, 1, &b, 1, -1, on_out_written) == 0)
		c->out_busy = true;
	else
		c->out_broken = true;
}

/* Queue bytes for stdout. Written by the thread pool, so a slow reader never
 * blocks the loop; beyond CLI_OUT_MAX queued bytes, lines are dropped. */
void cli_out_write(struct cli *c, const void *data, size_t len)
{
	struct cli_out_chunk *k;

	if (c->out_broken || len == 0)
		return;
	if (c->out_pending + len > CLI_OUT_MAX) {
		if (c->out_dropped++ == 0)
			fprintf(stderr, "natpeer: stdout is not keeping up; dropping lines\n");
		return;
	}
	k = malloc(sizeof(*k) + len);
	if (k == NULL) {
		c->out_dropped++;
		return;
	}
	k->next = NULL;
	k->len = len;
	k->off = 0;
	memcpy(k->data, data, len);
	if (c->out_tail != NULL)
		c->out_tail->next = k;
	else
		c->out_head = k;
	c->out_tail = k;
	c->out_pending += len;
	out_kick(c);
}

void cli_out_json(struct cli *c, cJSON *j)
{
	char *text = cJSON_PrintUnformatted(j);

	if (text != NULL) {
		cli_out_write(c, text, strlen(text));
		cli_out_write(c, "\n", 1);
	}
	cJSON_free(text);
	cJSON_Delete(j);
}

void cli_out_text(struct cli *c, const char *text)
{
	cli_out_write(c, text, strlen(text));
	cli_out_write(c, "\n", 1);
}

/* ---- stdin ------------------------------------------------------------------ */

/* --json: a stdin line that is a JSON object is {"data":BASE64}, with
 * "peer":NAME to send to that peer alone; payload and target in *ret_*.
 * 1 when it is such an object, 0 when the line is to be sent as it is, -1
 * when it is an object but a bad one (said on stderr; nothing is sent). */
static int in_json(const uint8_t *line, size_t len, uint8_t *ret_payload, size_t *ret_n,
		   char ret_peer[NATPEER_ID_MAX + 1])
{
	cJSON *j, *d, *p;
	size_t dl, pad = 0;
	int n, rc = -1;

	if (len == 0 || line[0] != '{')
		return 0;
	j = cJSON_ParseWithLength((const char *)line, len);
	if (j == NULL || !cJSON_IsObject(j))
		goto out_raw;
	d = cJSON_GetObjectItemCaseSensitive(j, "data");
	p = cJSON_GetObjectItemCaseSensitive(j, "peer");
	if (d == NULL) /* not ours: sent as it is */
		goto out_raw;
	if (!cJSON_IsString(d) || (p != NULL && (!cJSON_IsString(p) ||
						 strlen(p->valuestring) > NATPEER_ID_MAX))) {
		fprintf(stderr, "natpeer: stdin: {\"data\":BASE64[,\"peer\":NAME]} expected; line dropped\n");
		goto out;
	}
	dl = strlen(d->valuestring);
	if (dl % 4 != 0 || dl / 4 * 3 > NATPEER_MAX_DATAGRAM + 2) {
		fprintf(stderr, "natpeer: stdin: \"data\" is not base64 of at most %u bytes; line dropped\n",
			(unsigned)NB_FWD_MAX_LINE);
		goto out;
	}
	if (dl > 0 && d->valuestring[dl - 1] == '=')
		pad = dl > 1 && d->valuestring[dl - 2] == '=' ? 2 : 1;
	n = dl > 0 ? EVP_DecodeBlock(ret_payload, (const unsigned char *)d->valuestring, (int)dl) : 0;
	if (n < 0 || (size_t)n < pad || (size_t)n - pad > NB_FWD_MAX_LINE) {
		fprintf(stderr, "natpeer: stdin: \"data\" is not base64 of at most %u bytes; line dropped\n",
			(unsigned)NB_FWD_MAX_LINE);
		goto out;
	}
	*ret_n = (size_t)n - pad;
	snprintf(ret_peer, NATPEER_ID_MAX + 1, "%s", p != NULL ? p->valuestring : "");
	rc = 1;
	goto out;
out_raw:
	rc = 0;
out:
	cJSON_Delete(j);
	return rc;
}

/* One stdin line: to every confirmed peer (or, --json {"peer":..}, to one). */
static void in_line(struct cli *c, const uint8_t *line, size_t len)
{
	static const struct nb_fwd_hdr pipe_hdr = { .kind = NB_FWD_KIND_PIPE };
	uint8_t payload[NATPEER_MAX_DATAGRAM + 3], framed[NB_FWD_MAX_PAYLOAD];
	ssize_t hl;
	char peer[NATPEER_ID_MAX + 1] = "";
	int sent = 0, kind = c->o->json ? in_json(line, len, payload, &len, peer) : 0;

	if (kind < 0)
		return;
	if (kind == 1)
		line = payload;
	/* Kind 0x00, a pipe line (peer/fwd.h): one byte, then the line. */
	hl = nb_fwd_hdr_put(&pipe_hdr, len, framed, sizeof(framed));
	if (hl < 0) {
		fprintf(stderr, "natpeer: stdin: a line longer than %u bytes was dropped\n",
			(unsigned)NB_FWD_MAX_LINE);
		return;
	}
	memcpy(framed + hl, line, len);
	for (uint32_t i = 0; i < NATPEER_MAX_CHANNELS; i++) {
		const struct cli_chan *ch = &c->ch[i];
		if (ch->up && ch->confirmed && (peer[0] == '\0' || strcmp(peer, ch->peer) == 0) &&
		    natpeer_send(c->np, i, framed, (size_t)hl + len) == 0)
			sent++;
	}
	if (sent == 0)
		c->lines_dropped++;
}

/* Split into lines; a line longer than one datagram's payload is dropped
 * whole (with a warning), never cut. */
static void in_feed(struct cli *c, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char ch = data[i];
		if (ch == '\n') {
			if (c->line_overlong)
				fprintf(stderr, "natpeer: stdin: a line longer than %u bytes was dropped\n",
					(unsigned)CLI_LINE_MAX);
			else
				in_line(c, c->line, c->line_len);
			c->line_len = 0;
			c->line_overlong = false;
		} else if (c->line_len < sizeof(c->line)) {
			c->line[c->line_len++] = (uint8_t)ch;
		} else {
			c->line_overlong = true;
		}
	}
}

static void in_eof(struct cli *c)
{
	if (c->in_eof)
		return;
	c->in_eof = true;
	if (c->line_overlong)
		fprintf(stderr, "natpeer: stdin: a line longer than %u bytes was dropped\n",
			(unsigned)CLI_LINE_MAX);
	else if (c->line_len > 0)
		in_line(c, c->line, c->line_len); /* a last line without its newline */
	c->line_len = 0;
	if (c->in_kind == 1 && c->in_handle_init)
		uv_read_stop(&c->in_h.s);
	nb_log_debug("agent", "stdin: end of input");
	cli_on_stdin_eof(c);
}

static void in_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct cli *c = h->data;

	(void)suggested;
	*buf = uv_buf_init(c->in_buf, sizeof(c->in_buf));
}

static void in_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct cli *c = st->data;

	if (nread > 0) {
		in_feed(c, buf->base, (size_t)nread);
	} else if (nread < 0) {
		if (nread != UV_EOF)
			fprintf(stderr, "natpeer: stdin: %s\n", uv_strerror((int)nread));
		in_eof(c);
	}
}

static void in_fs_next(struct cli *c);

static void on_in_fs(uv_fs_t *req)
{
	struct cli *c = req->data;
	ssize_t r = req->result;

	uv_fs_req_cleanup(req);
	c->in_fs_busy = false;
	if (c->stopped)
		return;
	if (r > 0) {
		in_feed(c, c->in_buf, (size_t)r);
		in_fs_next(c);
		return;
	}
	if (r < 0)
		fprintf(stderr, "natpeer: stdin: %s\n", uv_strerror((int)r));
	in_eof(c);
}

static void in_fs_next(struct cli *c)
{
	uv_buf_t b = uv_buf_init(c->in_buf, sizeof(c->in_buf));

	if (c->in_eof || c->stopped)
		return;
	c->in_req.data = c;
	if (uv_fs_read(&c->loop, &c->in_req, 0, &b, 1, -1, on_in_fs) == 0)
		c->in_fs_busy = true;
	else
		in_eof(c);
}

/* Start reading stdin: a terminal, a pipe or socket (libuv streams), or a
 * file such as /dev/null (read through the thread pool: regular files do
 * not work with epoll). */
void cli_in_start(struct cli *c)
{
	uv_handle_type t;
	int rc = 0;

	if (c->in_kind != 0)
		return;
	t = uv_guess_handle(0);
	switch (t) {
	case UV_TTY:
		rc = uv_tty_init(&c->loop, &c->in_h.tty, 0, 1);
		c->in_handle_init = rc == 0;
		break;
	case UV_NAMED_PIPE:
		uv_pipe_init(&c->loop, &c->in_h.pipe, 0);
		c->in_handle_init = true;
		rc = uv_pipe_open(&c->in_h.pipe, 0);
		break;
	case UV_TCP:
		uv_tcp_init(&c->loop, &c->in_h.tcp);
		c->in_handle_init = true;
		rc = uv_tcp_open(&c->in_h.tcp, 0);
		break;
	case UV_FILE:
		c->in_kind = 2;
		in_fs_next(c);
		return;
	default:
		c->in_kind = 3;
		nb_log_debug("agent", "stdin: not a terminal, pipe, socket or file; nothing to read");
		in_eof(c);
		return;
	}
	c->in_kind = 1;
	if (c->in_handle_init)
		c->in_h.h.data = c;
	if (rc == 0)
		rc = uv_read_start(&c->in_h.s, in_alloc, in_read);
	if (rc != 0) {
		fprintf(stderr, "natpeer: stdin: %s; not reading it\n", uv_strerror(rc));
		in_eof(c);
	}
}

/* On the way out: stop reading stdin. */
void cli_in_close(struct cli *c)
{
	if (c->in_kind == 1 && c->in_handle_init && !uv_is_closing(&c->in_h.h))
		uv_close(&c->in_h.h, NULL);
	if (c->in_fs_busy)
		uv_cancel((uv_req_t *)&c->in_req);
}
