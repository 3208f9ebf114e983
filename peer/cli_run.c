/* peer/cli_run.c - natpeer(1)'s listen, connect, peers and matrix on libnatpeer: the loop, signals, the end of a run, and the payload kinds (see cli_run.h). */
#include "peer/cli_run.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define CLI_LINGER_MS 2000   /* connect: wait this long for the result's ack */
#define CLI_SHUTDOWN_MS 2000 /* give up on a stdout nobody reads */

/* ---- The library's callbacks ------------------------------------------------------ */

static void on_log(void *arg, int level, const char *line)
{
	(void)arg;
	(void)level;
	fprintf(stderr, "%s\n", line);
}

/* connect: end the run with `code` once the broker has the results and the
 * peer has been heard, at most linger_ms from now. */
static void finish(struct cli *c, int code, uint32_t linger_ms)
{
	c->ending = true;
	c->exit_code = code;
	(void)natpeer_finish(c->np, linger_ms);
}

static void on_connected(void *arg, const natpeer_conn_info *ci)
{
	struct cli *c = arg;
	struct cli_chan *ch = &c->ch[ci->channel];

	memset(ch, 0, sizeof(*ch));
	ch->up = true;
	snprintf(ch->peer, sizeof(ch->peer), "%s", ci->peer);
	snprintf(ch->key, sizeof(ch->key), "%s", ci->key_text);
	cli_print_connected(c, ci);
	if (c->o->cmd == CLI_CONNECT)
		c->event_printed = true;
}

static void on_confirmed(void *arg, uint32_t channel)
{
	struct cli *c = arg;

	c->ch[channel].confirmed = true;
	cli_in_start(c); /* application data flows once both sides are connected */
	if (c->o->cmd == CLI_CONNECT)
		nb_fwd_run_up(c->fwd, channel, c->ch[channel].peer);
}

static void on_failed(void *arg, const char *peer, const char *reason)
{
	struct cli *c = arg;

	if (c->o->cmd != CLI_CONNECT) {
		cli_print_failed(c, peer, reason);
		return;
	}
	/* connect: one event line, and the end */
	if (!c->event_printed)
		cli_print_failed(c, peer, reason);
	c->event_printed = true;
	if (!c->ending)
		finish(c, 1, CLI_LINGER_MS);
}

static void on_lost(void *arg, uint32_t channel, const char *peer, const char *remote)
{
	struct cli *c = arg;

	(void)channel;
	if (c->o->cmd != CLI_CONNECT) {
		cli_print_lost(c, peer, remote);
		return;
	}
	fprintf(stderr, "natpeer: lost %s: nothing from it for %u s\n", peer, 30u);
	if (!c->ending || c->exit_code == 0)
		finish(c, 1, 0);
}

static void on_closed(void *arg, uint32_t channel)
{
	struct cli *c = arg;

	nb_fwd_run_down(c->fwd, channel);
	memset(&c->ch[channel], 0, sizeof(c->ch[channel]));
}

/* A payload from channel ch: by its kind (peer/fwd.h). */
static void on_data(void *arg, uint32_t channel, const uint8_t *p, size_t n)
{
	struct cli *c = arg;
	struct nb_fwd_hdr h;
	const uint8_t *body;
	size_t blen;
	int rc = nb_fwd_decode(p, n, &h, &body, &blen);

	if (rc != 0) {
		c->kinds_dropped++;
		nb_log_debug("agent", "a payload from %s dropped: %s (kind 0x%02x)", c->ch[channel].peer,
			     nb_fwd_strerror(rc), p[0]);
		return;
	}
	if (h.kind == NB_FWD_KIND_PIPE) {
		cli_deliver(c, channel, body, blen);
		return;
	}
	if (c->fwd == NULL || (c->o->cmd == CLI_LISTEN && c->o->n_expose == 0)) {
		c->kinds_dropped++;
		if (!c->said_no_expose) {
			c->said_no_expose = true;
			fprintf(stderr, "natpeer: %s sent %s, but nothing is exposed here (listen --expose "
					"%s:HOST:PORT): dropped\n",
				c->ch[channel].peer,
				h.kind == NB_FWD_KIND_TCP ? "a forwarded TCP stream's packet" : "a forwarded UDP datagram",
				h.kind == NB_FWD_KIND_TCP ? "tcp" : "udp");
		}
		return;
	}
	nb_fwd_run_input(c->fwd, channel, &h, body, blen);
}

/* Forwarding's way out: a payload to channel i, if it is confirmed. */
static void fwd_send(void *arg, uint32_t i, const uint8_t *payload, size_t n)
{
	struct cli *c = arg;

	if (!c->stopped)
		(void)natpeer_send(c->np, i, payload, n);
}

static void on_peers(void *arg, const natpeer_peer_info *rows, size_t n)
{
	cli_print_peers(arg, rows, n);
}

static void on_matrix(void *arg, const natpeer_pair_info *rows, size_t n)
{
	cli_print_matrix(arg, rows, n);
}

static void on_watchdog(uv_timer_t *t)
{
	struct cli *c = t->data;

	fprintf(stderr, "natpeer: stdout is not being read; exiting without flushing it\n");
	_exit(c->exit_code);
}

/* The library stopped: close our side; the loop ends once stdout is written. */
static void on_stopped(void *arg, int status)
{
	struct cli *c = arg;

	if (c->stopped)
		return;
	c->stopped = true;
	if (status < 0)
		c->exit_code = 1;
	if (!uv_is_closing((uv_handle_t *)&c->sigint))
		uv_close((uv_handle_t *)&c->sigint, NULL);
	if (!uv_is_closing((uv_handle_t *)&c->sigterm))
		uv_close((uv_handle_t *)&c->sigterm, NULL);
	nb_fwd_run_close(c->fwd);
	c->fwd = NULL;
	cli_in_close(c);
	natpeer_close(c->np);
	c->np = NULL;
	/* Whatever stdout still has to write keeps the loop alive; a reader
	 * that never reads must not keep us forever. */
	uv_timer_init(&c->loop, &c->watchdog);
	c->watchdog.data = c;
	uv_timer_start(&c->watchdog, on_watchdog, CLI_SHUTDOWN_MS, 0);
	uv_unref((uv_handle_t *)&c->watchdog);
}

/* stdin ended (cli_pipe_run.c). */
void cli_on_stdin_eof(struct cli *c)
{
	/* With --forward, connect runs on: until a signal or the peer is lost. */
	if (c->o->cmd == CLI_CONNECT && !c->ending && !c->stopped && c->o->n_forward == 0)
		finish(c, 0, CLI_LINGER_MS);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct cli *c = h->data;
	bool connected = false;

	fprintf(stderr, "natpeer: %s, stopping\n", signum == SIGINT ? "interrupted" : "terminated");
	for (int i = 0; i < NATPEER_MAX_CHANNELS; i++)
		connected |= c->ch[i].up;
	if (c->o->cmd == CLI_CONNECT && !c->event_printed) {
		cli_print_failed(c, c->o->peer, "interrupted");
		c->event_printed = true;
	}
	if (c->o->cmd == CLI_LISTEN)
		c->exit_code = 0;
	else
		c->exit_code = c->o->cmd == CLI_CONNECT && connected ? 0 : 1;
	c->ending = true;
	(void)natpeer_stop(c->np);
}

/* ---- The run ---------------------------------------------------------------------- */

int cli_run(const struct cli_opts *o)
{
	static const natpeer_callbacks cbs = {
		.log = on_log, .connected = on_connected, .confirmed = on_confirmed, .failed = on_failed,
		.lost = on_lost, .closed = on_closed, .data = on_data, .peers = on_peers, .matrix = on_matrix,
		.stopped = on_stopped,
	};
	struct cli *c = calloc(1, sizeof(*c));
	int rc, code;

	if (c == NULL) {
		fprintf(stderr, "natpeer: out of memory\n");
		return 1;
	}
	c->o = o;
	uv_loop_init(&c->loop);
	rc = natpeer_config_set_callbacks(o->cfg, &cbs, sizeof(cbs), c);
	if (rc == 0)
		rc = natpeer_create(&c->loop, o->cfg, &c->np);
	if (rc != 0) {
		fprintf(stderr, "natpeer: %s\n", natpeer_strerror(rc));
		uv_loop_close(&c->loop);
		free(c);
		return 1;
	}
	uv_signal_init(&c->loop, &c->sigint);
	uv_signal_init(&c->loop, &c->sigterm);
	c->sigint.data = c->sigterm.data = c;
	uv_signal_start(&c->sigint, on_signal, SIGINT);
	uv_signal_start(&c->sigterm, on_signal, SIGTERM);
	if (o->n_expose > 0 || o->n_forward > 0) {
		struct nb_fwd_run_cfg fc = {
			.loop = &c->loop, .expose = o->expose, .n_expose = o->n_expose,
			.forward = o->forward, .n_forward = o->n_forward, .send = fwd_send, .arg = c,
		};
		char err[256] = "";
		rc = nb_fwd_run_open(&fc, &c->fwd, err, sizeof(err));
		if (rc != 0) {
			fprintf(stderr, "natpeer: %s\n", err[0] != '\0' ? err : uv_strerror(rc));
			c->fwd = NULL;
			rc = -1;
		}
	}
	if (rc == 0) {
		switch (o->cmd) {
		case CLI_LISTEN:
			rc = natpeer_listen(c->np);
			break;
		case CLI_CONNECT:
			rc = natpeer_connect(c->np, o->peer, o->has_peer_key ? o->peer_key : NULL);
			break;
		case CLI_PEERS:
			rc = natpeer_peers(c->np);
			break;
		case CLI_MATRIX:
			rc = natpeer_matrix(c->np);
			break;
		}
		if (rc != 0 && rc != NATPEER_E_KNOWN && rc != NATPEER_E_KEY && rc != NATPEER_E_SYSTEM)
			fprintf(stderr, "natpeer: %s\n", natpeer_strerror(rc)); /* (else the log said why) */
	}
	if (rc != 0)
		on_stopped(c, -1);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	/* The watchdog is unreferenced: it does not hold the loop. */
	if (c->stopped) {
		uv_close((uv_handle_t *)&c->watchdog, NULL);
		uv_run(&c->loop, UV_RUN_DEFAULT);
	}
	if (uv_loop_close(&c->loop) != 0)
		nb_log_debug("agent", "loop not empty at exit");
	code = c->exit_code;
	if (c->kinds_dropped > 0)
		nb_log_debug("agent", "%llu payloads of an unknown kind dropped", (unsigned long long)c->kinds_dropped);
	if (c->lines_dropped > 0)
		nb_log_debug("agent", "%llu stdin lines had no confirmed peer", (unsigned long long)c->lines_dropped);
	free(c);
	return code;
}
