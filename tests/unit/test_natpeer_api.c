/* tests/unit/test_natpeer_api.c - libnatpeer's public API without a broker:
 * the config setters refuse bad input with the right codes, natpeer_strerror
 * names every code, the key and known-peers helpers round-trip, the pump
 * adapter gives a pollable fd and a timeout, and an instance that is
 * created, stopped and closed leaves nothing behind (ASan's leak check,
 * and an empty loop), natpeer_netcheck / natpeer_map check their arguments
 * and state. Only natpeer.h: it links libnatpeer.a. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "natpeer.h"

static const int all_codes[] = {
	NATPEER_E_INVAL, NATPEER_E_NOMEM, NATPEER_E_STATE, NATPEER_E_FULL, NATPEER_E_TOOBIG,
	NATPEER_E_NOCHAN, NATPEER_E_NOTREADY, NATPEER_E_CONFIG, NATPEER_E_SYSTEM, NATPEER_E_KEYFILE,
	NATPEER_E_KNOWN, NATPEER_E_NOTFOUND, NATPEER_E_KEY, NATPEER_E_BROKER, NATPEER_E_NOPATH,
	NATPEER_E_PORTMAP, NATPEER_E_TIMEOUT,
};
#define N_CODES (sizeof(all_codes) / sizeof(all_codes[0]))

static void test_strerror(void **state)
{
	(void)state;
	assert_string_equal(natpeer_strerror(0), "success");
	assert_string_equal(natpeer_strerror(-1), "unknown error");
	assert_string_equal(natpeer_strerror(NATPEER_E_INVAL + 1), "unknown error"); /* -7000 */
	assert_string_equal(natpeer_strerror(NATPEER_E_TIMEOUT - 1), "unknown error");
	for (size_t i = 0; i < N_CODES; i++) {
		const char *t = natpeer_strerror(all_codes[i]);
		assert_true(all_codes[i] <= -7001 && all_codes[i] >= -7099);
		assert_string_not_equal(t, "unknown error");
		for (size_t k = 0; k < i; k++) /* each its own sentence */
			assert_string_not_equal(t, natpeer_strerror(all_codes[k]));
	}
	/* every code of the range is one of them, or unknown */
	for (int c = -7001; c >= -7099; c--) {
		int known = 0;
		for (size_t i = 0; i < N_CODES; i++)
			known |= all_codes[i] == c;
		if (!known)
			assert_string_equal(natpeer_strerror(c), "unknown error");
	}
}

static void test_config_setters(void **state)
{
	natpeer_config *c = NULL;
	uint8_t priv[NATPEER_KEY_LEN], pub[NATPEER_KEY_LEN];
	char key_text[NATPEER_KEY_TEXT_LEN + 1], long_id[64], long_tok[80], path[5000];
	natpeer_callbacks cbs;

	(void)state;
	assert_int_equal(natpeer_config_new(NULL), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_new(&c), 0);
	assert_non_null(c);
	assert_int_equal(natpeer_key_generate(priv, pub), 0);
	natpeer_key_to_text(pub, key_text);

	/* NULL config: refused everywhere */
	assert_int_equal(natpeer_config_set_key(NULL, priv), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_id(NULL, "a"), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_add_broker(NULL, "1.2.3.4"), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_port(NULL, 1), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_flags(NULL, 0), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_callbacks(NULL, NULL, 0, NULL), NATPEER_E_INVAL);

	assert_int_equal(natpeer_config_set_key(c, NULL), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_key(c, priv), 0);

	/* ids: 1-32 of A-Z a-z 0-9 . _ - */
	assert_int_equal(natpeer_config_set_id(c, NULL), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_id(c, ""), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_id(c, "a b"), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_id(c, "a/b"), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_id(c, "\xc3\xa9t\xc3\xa9"), NATPEER_E_INVAL);
	memset(long_id, 'x', 33);
	long_id[33] = '\0';
	assert_int_equal(natpeer_config_set_id(c, long_id), NATPEER_E_INVAL);
	long_id[32] = '\0';
	assert_int_equal(natpeer_config_set_id(c, long_id), 0);
	assert_int_equal(natpeer_config_set_id(c, "alice.B_-9"), 0);

	/* brokers: numeric, one per family, at most two */
	assert_int_equal(natpeer_config_add_broker(c, NULL), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_add_broker(c, "broker.example"), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_add_broker(c, "1.2.3"), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_add_broker(c, "1.2.3.4:99999"), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_add_broker(c, "192.0.2.1"), 0);
	assert_int_equal(natpeer_config_add_broker(c, "192.0.2.2:3478"), NATPEER_E_INVAL); /* same family */
	assert_int_equal(natpeer_config_add_broker(c, "[2001:db8::1]:3478"), 0);
	assert_int_equal(natpeer_config_add_broker(c, "[2001:db8::2]"), NATPEER_E_FULL);

	assert_int_equal(natpeer_config_set_broker_key(c, NULL), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_broker_key(c, pub), 0);

	/* tokens: 1-64 printable ASCII; NULL clears */
	assert_int_equal(natpeer_config_set_token(c, ""), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_token(c, "tab\there"), NATPEER_E_INVAL);
	memset(long_tok, 't', 65);
	long_tok[65] = '\0';
	assert_int_equal(natpeer_config_set_token(c, long_tok), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_admin_token(c, long_tok), NATPEER_E_INVAL);
	long_tok[64] = '\0';
	assert_int_equal(natpeer_config_set_token(c, long_tok), 0);
	assert_int_equal(natpeer_config_set_admin_token(c, "s3cret !"), 0);
	assert_int_equal(natpeer_config_set_token(c, NULL), 0);

	memset(path, 'p', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(natpeer_config_set_known_peers(c, path), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_known_peers(c, "/tmp/known"), 0);
	assert_int_equal(natpeer_config_set_known_peers(c, NULL), 0);

	/* allow: a name or a key; at most NATPEER_MAX_ALLOW */
	assert_int_equal(natpeer_config_add_allow(c, NULL), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_add_allow(c, "not a name"), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_add_allow(c, key_text), 0);
	for (int i = 1; i < NATPEER_MAX_ALLOW; i++) {
		char n[16];
		snprintf(n, sizeof(n), "peer%d", i);
		assert_int_equal(natpeer_config_add_allow(c, n), 0);
	}
	assert_int_equal(natpeer_config_add_allow(c, "onemore"), NATPEER_E_FULL);

	assert_int_equal(natpeer_config_set_port(c, 0), 0);
	assert_int_equal(natpeer_config_set_port(c, 65535), 0);
	assert_int_equal(natpeer_config_set_flags(c, NATPEER_FLAGS_ALL + 1), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_flags(c, 0x80000000u), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_flags(c, NATPEER_NO_RELAY | NATPEER_NO_PORTMAP), 0);
	assert_int_equal(natpeer_config_set_portmap(c, 0x8, 0), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_portmap(c, NATPEER_PORTMAP_PCP, 3601), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_portmap(c, NATPEER_PORTMAP_PCP | NATPEER_PORTMAP_UPNP, 3600), 0);
	assert_int_equal(natpeer_config_set_punch_timeout(c, 3600001), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_punch_timeout(c, 5000), 0);
	assert_int_equal(natpeer_config_set_birthday(c, NATPEER_BDAY_SOCKETS_MAX + 1, 0), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_birthday(c, 0, NATPEER_BDAY_RATE_MAX + 1), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_birthday(c, 256, 1000), 0);
	assert_int_equal(natpeer_config_set_log_level(c, -1), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_log_level(c, NATPEER_LOG_DEBUG + 1), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_log_level(c, NATPEER_LOG_WARN), 0);

	memset(&cbs, 0, sizeof(cbs));
	assert_int_equal(natpeer_config_set_callbacks(c, NULL, sizeof(cbs), NULL), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_callbacks(c, &cbs, sizeof(cbs) + 8, NULL), NATPEER_E_INVAL);
	assert_int_equal(natpeer_config_set_callbacks(c, &cbs, sizeof(cbs), NULL), 0);
	assert_int_equal(natpeer_config_set_callbacks(c, &cbs, sizeof(void *), NULL), 0); /* an older app */
	assert_int_equal(natpeer_config_set_callbacks(c, NULL, 0, NULL), 0);
	natpeer_config_free(c);
	natpeer_config_free(NULL);
}

static void test_keys(void **state)
{
	uint8_t priv[NATPEER_KEY_LEN], pub[NATPEER_KEY_LEN], pub2[NATPEER_KEY_LEN], back[NATPEER_KEY_LEN];
	char text[NATPEER_KEY_TEXT_LEN + 1];

	(void)state;
	assert_int_equal(natpeer_key_generate(NULL, pub), NATPEER_E_INVAL);
	assert_int_equal(natpeer_key_generate(priv, pub), 0);
	assert_int_equal(natpeer_key_public(priv, pub2), 0);
	assert_memory_equal(pub, pub2, sizeof(pub));
	assert_int_equal(natpeer_key_public(NULL, pub2), NATPEER_E_INVAL);
	natpeer_key_to_text(pub, text);
	assert_int_equal(strlen(text), NATPEER_KEY_TEXT_LEN);
	assert_int_equal(natpeer_key_from_text(text, back), 0);
	assert_memory_equal(pub, back, sizeof(pub));
	assert_int_equal(natpeer_key_from_text(NULL, back), NATPEER_E_INVAL);
	assert_int_equal(natpeer_key_from_text("", back), NATPEER_E_INVAL);
	text[NATPEER_KEY_TEXT_LEN - 1] = '\0'; /* one short */
	assert_int_equal(natpeer_key_from_text(text, back), NATPEER_E_INVAL);
	natpeer_key_to_text(pub, text);
	text[5] = '+'; /* not base64url */
	assert_int_equal(natpeer_key_from_text(text, back), NATPEER_E_INVAL);
}

static void test_keyfile(void **state)
{
	char dir[] = "/tmp/test_natpeer_api.XXXXXX", path[256], err[512];
	uint8_t priv[NATPEER_KEY_LEN], pub[NATPEER_KEY_LEN], p2[NATPEER_KEY_LEN], q2[NATPEER_KEY_LEN];
	int created = -1;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sub/key", dir);
	/* missing, no create: refused; create: made */
	assert_int_equal(natpeer_keyfile_load(path, 0, priv, pub, &created, err, sizeof(err)), NATPEER_E_KEYFILE);
	assert_int_equal(natpeer_keyfile_load(path, 1, priv, pub, &created, err, sizeof(err)), 0);
	assert_int_equal(created, 1);
	assert_int_equal(natpeer_keyfile_load(path, 1, p2, q2, &created, err, sizeof(err)), 0);
	assert_int_equal(created, 0);
	assert_memory_equal(priv, p2, sizeof(priv));
	assert_memory_equal(pub, q2, sizeof(pub));
	/* save: never over an existing file; a new one loads back */
	assert_int_equal(natpeer_keyfile_save(path, priv, err, sizeof(err)), NATPEER_E_KEYFILE);
	snprintf(path, sizeof(path), "%s/saved/key", dir);
	assert_int_equal(natpeer_keyfile_save(path, priv, err, sizeof(err)), 0);
	assert_int_equal(natpeer_keyfile_load(path, 0, p2, q2, NULL, err, sizeof(err)), 0);
	assert_memory_equal(priv, p2, sizeof(priv));
	/* group-readable: unsafe */
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(natpeer_keyfile_load(path, 0, p2, q2, NULL, err, sizeof(err)), NATPEER_E_KEYFILE);
	assert_non_null(strstr(err, path));
	assert_int_equal(natpeer_keyfile_load(NULL, 0, p2, q2, NULL, err, sizeof(err)), NATPEER_E_INVAL);
	assert_int_equal(natpeer_keyfile_save("", priv, NULL, 0), NATPEER_E_INVAL);
	/* default path: under $XDG_CONFIG_HOME, else refused without one */
	setenv("XDG_CONFIG_HOME", dir, 1);
	assert_int_equal(natpeer_keyfile_default_path(path, sizeof(path)), 0);
	assert_non_null(strstr(path, "/natpeer/key"));
	assert_int_equal(natpeer_keyfile_default_path(path, 4), NATPEER_E_INVAL);
	unsetenv("XDG_CONFIG_HOME");
	char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	unsetenv("HOME");
	assert_int_equal(natpeer_keyfile_default_path(path, sizeof(path)), NATPEER_E_NOPATH);
	if (home != NULL) {
		setenv("HOME", home, 1);
		free(home);
	}
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
}

static void test_known_forget(void **state)
{
	char dir[] = "/tmp/test_natpeer_api.XXXXXX", path[256], err[512], line[128];
	uint8_t priv[NATPEER_KEY_LEN], pub[NATPEER_KEY_LEN], got[NATPEER_KEY_LEN];
	char text[NATPEER_KEY_TEXT_LEN + 1];
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/known_peers", dir);
	assert_int_equal(natpeer_key_generate(priv, pub), 0);
	natpeer_key_to_text(pub, text);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	snprintf(line, sizeof(line), "alice %s\nbob %s\n", text, text);
	assert_int_equal(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	close(fd);
	assert_int_equal(natpeer_known_forget(path, "not a name", got, err, sizeof(err)), NATPEER_E_INVAL);
	assert_int_equal(natpeer_known_forget(path, NULL, got, err, sizeof(err)), NATPEER_E_INVAL);
	assert_int_equal(natpeer_known_forget(path, "carol", got, err, sizeof(err)), NATPEER_E_NOTFOUND);
	memset(got, 0, sizeof(got));
	assert_int_equal(natpeer_known_forget(path, "alice", got, err, sizeof(err)), 0);
	assert_memory_equal(got, pub, sizeof(pub));
	assert_int_equal(natpeer_known_forget(path, "alice", got, err, sizeof(err)), NATPEER_E_NOTFOUND);
	assert_int_equal(natpeer_known_forget(path, "bob", NULL, err, sizeof(err)), 0);
	/* a malformed file: its own code, with the line named */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "alice notakey\n", 14), 14);
	close(fd);
	assert_int_equal(natpeer_known_forget(path, "alice", got, err, sizeof(err)), NATPEER_E_KNOWN);
	assert_non_null(strstr(err, "line 1"));
	snprintf(line, sizeof(line), "rm -rf '%s'", dir);
	assert_int_equal(system(line), 0);
}

/* ---- Instances ------------------------------------------------------------------ */

struct seen {
	int stopped, status, logs, other;
	int reports, mapped; /* netcheck, mapped */
};

static void cb_report(void *arg, const natpeer_netcheck_report *rep)
{
	struct seen *s = arg;

	assert_non_null(rep);
	s->reports++;
}

static void cb_mapped(void *arg, const natpeer_map_info *mi)
{
	struct seen *s = arg;

	assert_non_null(mi);
	s->mapped++;
}

static void cb_log(void *arg, int level, const char *line)
{
	struct seen *s = arg;

	(void)level;
	assert_non_null(line);
	s->logs++;
}

static void cb_stopped(void *arg, int status)
{
	struct seen *s = arg;

	s->stopped++;
	s->status = status;
}

static void cb_failed(void *arg, const char *peer, const char *reason)
{
	struct seen *s = arg;

	(void)peer;
	(void)reason;
	s->other++;
}

static natpeer_config *make_config(struct seen *seen)
{
	natpeer_config *c = NULL;
	uint8_t priv[NATPEER_KEY_LEN], pub[NATPEER_KEY_LEN];
	natpeer_callbacks cbs;

	memset(&cbs, 0, sizeof(cbs));
	cbs.log = cb_log;
	cbs.stopped = cb_stopped;
	cbs.failed = cb_failed;
	cbs.netcheck = cb_report;
	cbs.mapped = cb_mapped;
	assert_int_equal(natpeer_config_new(&c), 0);
	assert_int_equal(natpeer_key_generate(priv, pub), 0);
	assert_int_equal(natpeer_config_set_callbacks(c, &cbs, sizeof(cbs), seen), 0);
	return c;
}

static void test_create_close(void **state)
{
	struct seen seen;
	natpeer_config *c;
	natpeer *np = NULL;
	uv_loop_t loop;
	uint8_t buf[NATPEER_MAX_DATAGRAM + 1];

	(void)state;
	memset(&seen, 0, sizeof(seen));
	memset(buf, 0, sizeof(buf));
	c = make_config(&seen);
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(natpeer_create(NULL, c, &np), NATPEER_E_INVAL);
	assert_int_equal(natpeer_create(&loop, NULL, &np), NATPEER_E_INVAL);
	assert_int_equal(natpeer_create(&loop, c, &np), 0);
	natpeer_config_free(c); /* the instance has its own copy */
	/* nothing started: no key, no broker */
	assert_int_equal(natpeer_listen(np), NATPEER_E_CONFIG);
	assert_int_equal(natpeer_send(np, 0, buf, 1), NATPEER_E_STATE);
	assert_int_equal(natpeer_pump_fd(np), NATPEER_E_STATE);
	assert_int_equal(natpeer_pump_timeout(np), NATPEER_E_STATE);
	assert_int_equal(natpeer_pump_run(np), NATPEER_E_STATE);
	assert_int_equal(natpeer_connect(np, "bad name", NULL), NATPEER_E_INVAL);
	assert_int_equal(natpeer_connect(NULL, "bob", NULL), NATPEER_E_INVAL);
	/* stop: from the loop, then `stopped` (0), then close frees it all */
	assert_int_equal(natpeer_stop(np), 0);
	assert_int_equal(seen.stopped, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(seen.stopped, 1);
	assert_int_equal(seen.status, 0);
	assert_int_equal(natpeer_listen(np), NATPEER_E_STATE);
	assert_int_equal(natpeer_finish(np, 0), NATPEER_E_STATE);
	natpeer_close(np);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0); /* no handle of ours left */
	assert_int_equal(seen.other, 0);
	natpeer_close(NULL);
}

/* close at once, never started: no callback, nothing left */
static void test_close_unstarted(void **state)
{
	struct seen seen;
	natpeer_config *c;
	natpeer *np = NULL;
	uv_loop_t loop;

	(void)state;
	memset(&seen, 0, sizeof(seen));
	c = make_config(&seen);
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(natpeer_create(&loop, c, &np), 0);
	natpeer_close(np);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(seen.stopped, 0); /* none after close */
	assert_int_equal(uv_loop_close(&loop), 0);
	natpeer_config_free(c);
}

/* A started listener toward a broker that never answers (the discard
 * port on loopback), closed at once: every socket and timer goes. */
static void test_start_then_close(void **state)
{
	struct seen seen;
	natpeer_config *c;
	natpeer *np = NULL;
	uv_loop_t loop;
	uint8_t priv[NATPEER_KEY_LEN], pub[NATPEER_KEY_LEN];
	uint8_t buf[NATPEER_MAX_DATAGRAM + 1];

	(void)state;
	memset(&seen, 0, sizeof(seen));
	memset(buf, 0, sizeof(buf));
	c = make_config(&seen);
	assert_int_equal(natpeer_key_generate(priv, pub), 0);
	assert_int_equal(natpeer_config_set_key(c, priv), 0);
	assert_int_equal(natpeer_config_add_broker(c, "127.0.0.1:9"), 0);
	assert_int_equal(natpeer_config_set_flags(c, NATPEER_NO_PORTMAP), 0);
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(natpeer_create(&loop, c, &np), 0);
	assert_int_equal(natpeer_listen(np), NATPEER_E_CONFIG); /* no id */
	natpeer_close(np);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(natpeer_config_set_id(c, "alice"), 0);
	assert_int_equal(natpeer_create(&loop, c, &np), 0);
	assert_int_equal(natpeer_listen(np), 0);
	assert_true(seen.logs > 0); /* "netcheck: testing ..." */
	assert_int_equal(natpeer_listen(np), NATPEER_E_STATE);
	assert_int_equal(natpeer_connect(np, "bob", NULL), NATPEER_E_STATE);
	assert_int_equal(natpeer_send(np, 0, buf, sizeof(buf)), NATPEER_E_TOOBIG);
	assert_int_equal(natpeer_send(np, 0, buf, 1), NATPEER_E_NOCHAN);
	assert_int_equal(natpeer_send(np, NATPEER_MAX_CHANNELS, buf, 1), NATPEER_E_NOCHAN);
	uv_run(&loop, UV_RUN_NOWAIT);
	natpeer_close(np);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(seen.stopped, 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	natpeer_config_free(c);
}

/* The pump: a pollable fd, a timeout, run; closed from outside a callback. */
static void test_pump(void **state)
{
	struct seen seen;
	natpeer_config *c;
	natpeer *np = NULL;
	uint8_t priv[NATPEER_KEY_LEN], pub[NATPEER_KEY_LEN];
	struct pollfd pfd;
	int fd, to;

	(void)state;
	memset(&seen, 0, sizeof(seen));
	c = make_config(&seen);
	assert_int_equal(natpeer_create_pump(NULL, &np), NATPEER_E_INVAL);
	assert_int_equal(natpeer_create_pump(c, &np), 0);
	fd = natpeer_pump_fd(np);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) >= 0); /* a real descriptor */
	to = natpeer_pump_timeout(np);
	assert_true(to >= -1);
	assert_int_equal(natpeer_pump_run(np), 0);
	natpeer_close(np);
	/* started toward a silent broker: the timeout is a bounded deadline */
	assert_int_equal(natpeer_key_generate(priv, pub), 0);
	assert_int_equal(natpeer_config_set_key(c, priv), 0);
	assert_int_equal(natpeer_config_add_broker(c, "127.0.0.1:9"), 0);
	assert_int_equal(natpeer_config_set_id(c, "alice"), 0);
	assert_int_equal(natpeer_config_set_flags(c, NATPEER_NO_PORTMAP), 0);
	assert_int_equal(natpeer_create_pump(c, &np), 0);
	assert_int_equal(natpeer_listen(np), 0);
	for (int i = 0; i < 3; i++) {
		to = natpeer_pump_timeout(np);
		assert_true(to >= 0 && to <= 60000);
		pfd.fd = natpeer_pump_fd(np);
		pfd.events = POLLIN;
		(void)poll(&pfd, 1, to > 200 ? 200 : to);
		assert_int_equal(natpeer_pump_run(np), 0);
	}
	natpeer_close(np);
	natpeer_config_free(c);
}

/* natpeer_netcheck, natpeer_map: arguments, config, state; a netcheck
 * toward a silent broker ends with NATPEER_E_TIMEOUT and leaves nothing. */
static void test_netcheck_map(void **state)
{
	struct seen seen;
	natpeer_config *c;
	natpeer *np = NULL;
	uv_loop_t loop;
	uint8_t priv[NATPEER_KEY_LEN], pub[NATPEER_KEY_LEN];

	(void)state;
	memset(&seen, 0, sizeof(seen));
	c = make_config(&seen);
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(natpeer_netcheck(NULL, 0), NATPEER_E_INVAL);
	assert_int_equal(natpeer_map(NULL, 0, 4000, 0, 0, 0), NATPEER_E_INVAL);
	/* no broker, no key */
	assert_int_equal(natpeer_create(&loop, c, &np), 0);
	assert_int_equal(natpeer_netcheck(np, 0), NATPEER_E_CONFIG);
	assert_int_equal(natpeer_map(np, 0, 0, 0, 0, 0), NATPEER_E_INVAL);         /* port 0 */
	assert_int_equal(natpeer_map(np, 1, 4000, 0, 59, 0), NATPEER_E_INVAL);     /* lease too short */
	assert_int_equal(natpeer_map(np, 1, 4000, 0, 604801, 0), NATPEER_E_INVAL); /* too long */
	assert_int_equal(natpeer_map(np, 0, 4000, 0, 0, 0), NATPEER_E_CONFIG);
	natpeer_close(np);
	uv_run(&loop, UV_RUN_DEFAULT);
	/* a broker but no key: netcheck is fine without one, map is not */
	assert_int_equal(natpeer_config_add_broker(c, "127.0.0.1:9"), 0);
	assert_int_equal(natpeer_config_set_flags(c, NATPEER_NO_PORTMAP), 0);
	assert_int_equal(natpeer_create(&loop, c, &np), 0);
	assert_int_equal(natpeer_map(np, 0, 4000, 0, 3600, 0), NATPEER_E_CONFIG);
	natpeer_close(np);
	uv_run(&loop, UV_RUN_DEFAULT);
	/* a key, but NATPEER_NO_PORTMAP: map has nothing to do */
	assert_int_equal(natpeer_key_generate(priv, pub), 0);
	assert_int_equal(natpeer_config_set_key(c, priv), 0);
	assert_int_equal(natpeer_create(&loop, c, &np), 0);
	assert_int_equal(natpeer_map(np, 0, 4000, 0, 3600, 0), NATPEER_E_CONFIG);
	/* netcheck once: then nothing else on this instance */
	assert_int_equal(natpeer_netcheck(np, 300), 0);
	assert_int_equal(natpeer_netcheck(np, 300), NATPEER_E_STATE);
	assert_int_equal(natpeer_map(np, 0, 4000, 0, 0, 0), NATPEER_E_STATE);
	assert_int_equal(natpeer_listen(np), NATPEER_E_STATE);
	assert_int_equal(natpeer_peers(np), NATPEER_E_STATE);
	uv_run(&loop, UV_RUN_DEFAULT); /* the discard port never answers: the timeout */
	assert_int_equal(seen.stopped, 1);
	assert_int_equal(seen.status, NATPEER_E_TIMEOUT);
	assert_int_equal(seen.reports, 0);
	assert_int_equal(natpeer_netcheck(np, 300), NATPEER_E_STATE);
	natpeer_close(np);
	uv_run(&loop, UV_RUN_DEFAULT);
	/* stopped before a verdict: `stopped` (0), no report */
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(natpeer_create(&loop, c, &np), 0);
	assert_int_equal(natpeer_netcheck(np, 5000), 0);
	assert_int_equal(natpeer_stop(np), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(seen.stopped, 1);
	assert_int_equal(seen.status, 0);
	assert_int_equal(seen.reports, 0);
	natpeer_close(np);
	uv_run(&loop, UV_RUN_DEFAULT);
	/* closed while running, with callbacks as an older caller knows them */
	memset(&seen, 0, sizeof(seen));
	{
		natpeer_callbacks cbs;
		memset(&cbs, 0, sizeof(cbs));
		cbs.stopped = cb_stopped;
		assert_int_equal(natpeer_config_set_callbacks(c, &cbs, offsetof(natpeer_callbacks, netcheck), &seen),
				 0);
	}
	assert_int_equal(natpeer_create(&loop, c, &np), 0);
	assert_int_equal(natpeer_netcheck(np, 5000), 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	natpeer_close(np);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(seen.stopped, 0); /* none after close */
	assert_int_equal(uv_loop_close(&loop), 0);
	natpeer_config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strerror),     cmocka_unit_test(test_config_setters),
		cmocka_unit_test(test_keys),         cmocka_unit_test(test_keyfile),
		cmocka_unit_test(test_known_forget), cmocka_unit_test(test_create_close),
		cmocka_unit_test(test_close_unstarted), cmocka_unit_test(test_start_then_close),
		cmocka_unit_test(test_pump),         cmocka_unit_test(test_netcheck_map),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
