/* natpeer-echo - a small program on libnatpeer (docs/library.md): one side
 * listens and echoes every datagram back; the other connects, sends
 * binary datagrams (every byte value, sizes up to NATPEER_MAX_DATAGRAM)
 * one at a time, retransmitting until each comes back, and checks every
 * echo byte for byte.
 *
 *   natpeer-echo --broker IP[:PORT] --id NAME [--key FILE] [--pump] listen
 *   natpeer-echo --broker IP[:PORT] --id NAME [--key FILE] [--pump] connect PEER [COUNT]
 *
 * By default it runs libnatpeer on its own libuv loop; with --pump it uses
 * no libuv at all: poll() on natpeer_pump_fd() with natpeer_pump_timeout(),
 * then natpeer_pump_run().
 *
 * Build it against the installed library:
 *   cc -o natpeer-echo natpeer-echo.c $(pkg-config --cflags --libs natpeer)
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <natpeer.h>

#define RETRY_MS 250   /* resend a datagram not echoed within this */
#define MAX_TRIES 20   /* then give up on the run */

struct app {
	natpeer *np;
	bool connect;
	unsigned count;       /* datagrams to send (connect) */
	unsigned sent;        /* the one in flight: 0..count-1 */
	unsigned tries;
	uint32_t channel;
	bool ready;           /* connect: the peer is heard, datagrams flow */
	uint8_t out[NATPEER_MAX_DATAGRAM];
	size_t out_len;
	uint64_t sent_at;
	unsigned echoed, echoed_bytes;
	int status;           /* the exit status */
	bool stopping, stopped;
};

static volatile sig_atomic_t g_signalled;

static void on_signal(int sig)
{
	(void)sig;
	g_signalled = 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void stop(struct app *a, int status)
{
	if (a->stopping)
		return;
	a->stopping = true;
	a->status = status;
	(void)natpeer_stop(a->np);
}

/* Datagram i: a 4-byte sequence number, then bytes (i + j) & 0xff; its
 * length walks 1..NATPEER_MAX_DATAGRAM so that every size class and every
 * byte value is seen. */
static void make(struct app *a, unsigned i)
{
	size_t len = 4 + (size_t)((i * 397u) % (NATPEER_MAX_DATAGRAM - 3));

	if (i == 0 || i + 1 == a->count)
		len = NATPEER_MAX_DATAGRAM; /* the largest first and last */
	a->out[0] = (uint8_t)(i >> 24);
	a->out[1] = (uint8_t)(i >> 16);
	a->out[2] = (uint8_t)(i >> 8);
	a->out[3] = (uint8_t)i;
	for (size_t j = 4; j < len; j++)
		a->out[j] = (uint8_t)(i + j);
	a->out_len = len;
}

static void send_current(struct app *a)
{
	int rc = natpeer_send(a->np, a->channel, a->out, a->out_len);

	if (rc < 0)
		fprintf(stderr, "natpeer-echo: send: %s\n", natpeer_strerror(rc));
	a->sent_at = now_ms();
	a->tries++;
}

/* connect: called often; resends or gives up. */
static void tick(struct app *a)
{
	if (!a->connect || !a->ready || a->stopping || a->sent >= a->count)
		return;
	if (now_ms() - a->sent_at < RETRY_MS)
		return;
	if (a->tries >= MAX_TRIES) {
		fprintf(stderr, "natpeer-echo: datagram %u of %u never came back after %u tries\n", a->sent + 1,
			a->count, a->tries);
		stop(a, 1);
		return;
	}
	send_current(a);
}

static void cb_log(void *arg, int level, const char *line)
{
	(void)arg;
	if (level <= NATPEER_LOG_INFO)
		fprintf(stderr, "%s\n", line);
}

static void cb_connected(void *arg, const natpeer_conn_info *info)
{
	struct app *a = arg;

	printf("connected to %s (key %s), path %s over IPv%d in %llu ms, channel %u\n", info->peer,
	       info->key_text, info->path, info->family, (unsigned long long)info->ms, info->channel);
	fflush(stdout);
	if (a->connect)
		a->channel = info->channel;
}

static void cb_confirmed(void *arg, uint32_t channel)
{
	struct app *a = arg;

	if (!a->connect || channel != a->channel || a->ready)
		return;
	a->ready = true;
	make(a, 0);
	a->tries = 0;
	send_current(a);
}

static void cb_failed(void *arg, const char *peer, const char *reason)
{
	struct app *a = arg;

	printf("failed: %s: %s\n", peer, reason);
	fflush(stdout);
	if (a->connect)
		stop(a, 1);
}

static void cb_lost(void *arg, uint32_t channel, const char *peer, const char *remote)
{
	struct app *a = arg;

	printf("lost %s (%s) on channel %u\n", peer, remote, channel);
	fflush(stdout);
	if (a->connect)
		stop(a, 1);
}

static void cb_data(void *arg, uint32_t channel, const uint8_t *data, size_t len)
{
	struct app *a = arg;
	int rc;

	if (!a->connect) { /* listen: echo it */
		rc = natpeer_send(a->np, channel, data, len);
		if (rc < 0)
			fprintf(stderr, "natpeer-echo: echo: %s\n", natpeer_strerror(rc));
		return;
	}
	if (channel != a->channel || a->sent >= a->count)
		return;
	if (len != a->out_len || memcmp(data, a->out, len) != 0)
		return; /* an old echo of an earlier datagram: ignore */
	a->echoed++;
	a->echoed_bytes += (unsigned)len;
	if (++a->sent == a->count) {
		printf("echo: %u of %u datagrams (%u bytes) came back unchanged\n", a->echoed, a->count,
		       a->echoed_bytes);
		fflush(stdout);
		stop(a, 0);
		return;
	}
	make(a, a->sent);
	a->tries = 0;
	send_current(a);
}

static void cb_stopped(void *arg, int status)
{
	struct app *a = arg;

	a->stopped = true;
	if (status < 0 && a->status == 0)
		a->status = 1;
}

/* ---- the two ways to run it ---- */

struct uv_app {
	struct app *a;
	uv_timer_t timer;
};

static void on_uv_timer(uv_timer_t *t)
{
	struct uv_app *u = t->data;

	if (g_signalled && !u->a->stopping)
		stop(u->a, 0);
	tick(u->a);
	if (u->a->stopped) { /* free the instance; the loop ends once its handles are closed */
		natpeer_close(u->a->np);
		u->a->np = NULL;
		uv_close((uv_handle_t *)t, NULL);
	}
}

static int run_uv(struct app *a, const natpeer_config *cfg, bool listen, const char *peer)
{
	uv_loop_t loop;
	struct uv_app u = { .a = a };
	int rc;

	if (uv_loop_init(&loop) != 0)
		return 1;
	rc = natpeer_create(&loop, cfg, &a->np);
	if (rc == 0)
		rc = listen ? natpeer_listen(a->np) : natpeer_connect(a->np, peer, NULL);
	if (rc < 0) {
		fprintf(stderr, "natpeer-echo: %s\n", natpeer_strerror(rc));
		natpeer_close(a->np);
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		return 1;
	}
	uv_timer_init(&loop, &u.timer);
	u.timer.data = &u;
	uv_timer_start(&u.timer, on_uv_timer, 20, 20);
	uv_run(&loop, UV_RUN_DEFAULT); /* until stopped and closed (on_uv_timer) */
	return uv_loop_close(&loop) == 0 ? a->status : 1;
}

static int run_pump(struct app *a, const natpeer_config *cfg, bool listen, const char *peer)
{
	int rc = natpeer_create_pump(cfg, &a->np);

	if (rc == 0)
		rc = listen ? natpeer_listen(a->np) : natpeer_connect(a->np, peer, NULL);
	if (rc < 0) {
		fprintf(stderr, "natpeer-echo: %s\n", natpeer_strerror(rc));
		natpeer_close(a->np);
		return 1;
	}
	while (!a->stopped) {
		struct pollfd p = { .fd = natpeer_pump_fd(a->np), .events = POLLIN };
		int t = natpeer_pump_timeout(a->np);

		if (t < 0 || t > 20)
			t = 20; /* our own retransmission timer */
		if (poll(&p, 1, t) < 0 && errno != EINTR)
			break;
		if (g_signalled && !a->stopping)
			stop(a, 0);
		if (natpeer_pump_run(a->np) < 0)
			break;
		tick(a);
	}
	natpeer_close(a->np);
	return a->status;
}

static void usage(FILE *f)
{
	fputs("usage: natpeer-echo --broker IP[:PORT] --id NAME [--key FILE] [--pump] listen\n"
	      "       natpeer-echo --broker IP[:PORT] --id NAME [--key FILE] [--pump] connect PEER [COUNT]\n"
	      "listen echoes every datagram back; connect sends COUNT (default 100)\n"
	      "binary datagrams one at a time and checks each echo. --key: the private\n"
	      "key file (created if missing; default natpeer's own). --pump: run\n"
	      "without libuv (poll on natpeer_pump_fd).\n",
	      f);
}

int main(int argc, char **argv)
{
	struct app a = { .count = 100 };
	natpeer_callbacks cbs = {
		.log = cb_log, .connected = cb_connected, .confirmed = cb_confirmed, .failed = cb_failed,
		.lost = cb_lost, .data = cb_data, .stopped = cb_stopped,
	};
	const char *broker = NULL, *id = NULL, *key = NULL, *cmd = NULL, *peer = NULL;
	bool pump = false;
	char path[4096], err[256];
	uint8_t priv[NATPEER_KEY_LEN], pub[NATPEER_KEY_LEN];
	natpeer_config *cfg = NULL;
	int i, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--pump") == 0) {
			pump = true;
		} else if (i + 1 < argc && strcmp(argv[i], "--broker") == 0) {
			broker = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--id") == 0) {
			id = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--key") == 0) {
			key = argv[++i];
		} else if (cmd == NULL) {
			cmd = argv[i];
		} else if (peer == NULL && strcmp(cmd, "connect") == 0) {
			peer = argv[i];
		} else if (strcmp(cmd, "connect") == 0) {
			char *end;
			unsigned long n = strtoul(argv[i], &end, 10);
			if (*end != '\0' || n < 1 || n > 100000) {
				fprintf(stderr, "natpeer-echo: COUNT '%s': expected 1..100000\n", argv[i]);
				return 2;
			}
			a.count = (unsigned)n;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (broker == NULL || id == NULL || cmd == NULL ||
	    (strcmp(cmd, "listen") != 0 && strcmp(cmd, "connect") != 0) ||
	    (strcmp(cmd, "connect") == 0 && peer == NULL)) {
		usage(stderr);
		return 2;
	}
	a.connect = strcmp(cmd, "connect") == 0;
	if (key == NULL) {
		rc = natpeer_keyfile_default_path(path, sizeof(path));
		if (rc < 0) {
			fprintf(stderr, "natpeer-echo: no key file path: %s (give --key FILE)\n", natpeer_strerror(rc));
			return 1;
		}
		key = path;
	}
	rc = natpeer_keyfile_load(key, 1, priv, pub, NULL, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "natpeer-echo: %s\n", err);
		return 1;
	}
	rc = natpeer_config_new(&cfg);
	if (rc == 0)
		rc = natpeer_config_set_key(cfg, priv);
	if (rc == 0)
		rc = natpeer_config_set_id(cfg, id);
	if (rc == 0)
		rc = natpeer_config_add_broker(cfg, broker);
	if (rc == 0)
		rc = natpeer_config_set_callbacks(cfg, &cbs, sizeof(cbs), &a);
	memset(priv, 0, sizeof(priv));
	if (rc < 0) {
		fprintf(stderr, "natpeer-echo: configuration: %s\n", natpeer_strerror(rc));
		natpeer_config_free(cfg);
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	rc = pump ? run_pump(&a, cfg, !a.connect, peer) : run_uv(&a, cfg, !a.connect, peer);
	natpeer_config_free(cfg);
	return rc;
}
