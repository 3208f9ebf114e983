/* tests/unit/test_keyfile.c - the private key file: parse/format round
 * trips, a table of refusals (each naming its line), every-byte mutation,
 * every-prefix truncation, an input ending at a guard page, and the I/O
 * shell in a temp directory (create, modes, owner, symlink, FIFO, size,
 * racing creators, default paths). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/keyfile.h"
#include "upnp_test_util.h"

/* A fixed key and its file. */
static uint8_t PRIV[NB_KEY_LEN], PUB[NB_KEY_LEN];
static char PRIV_TEXT[NB_KEY_TEXT_LEN + 1], PUB_TEXT[NB_KEY_TEXT_LEN + 1];

static int setup_keys(void **state)
{
	(void)state;
	for (int i = 0; i < NB_KEY_LEN; i++)
		PRIV[i] = (uint8_t)(0x40 + i * 7);
	assert_int_equal(nb_key_public(PRIV, PUB), 0);
	nb_key_to_text(PRIV, PRIV_TEXT);
	nb_key_to_text(PUB, PUB_TEXT);
	return 0;
}

static void assert_parses_to(const char *text, const uint8_t want[NB_KEY_LEN])
{
	uint8_t got[NB_KEY_LEN];
	char err[256] = "";
	uint8_t *copy = nb_test_copy(text, strlen(text));
	int rc = nb_keyfile_parse((const char *)copy, strlen(text), got, err, sizeof(err));

	if (rc != 0)
		fail_msg("refused (%s): \"%s\"", err, text);
	assert_memory_equal(got, want, NB_KEY_LEN);
	free(copy);
}

/* ---- pure ---------------------------------------------------------------------- */

static void test_format_round_trip(void **state)
{
	char text[NB_KEYFILE_TEXT_MAX], want[512];
	size_t n;

	(void)state;
	n = nb_keyfile_format(PRIV, text, sizeof(text));
	snprintf(want, sizeof(want),
		 "# natbroker long-term X25519 private key: keep it secret (mode 0600)\n"
		 "# public-key: %s\nprivate-key: %s\n",
		 PUB_TEXT, PRIV_TEXT);
	assert_string_equal(text, want);
	assert_int_equal(n, strlen(want));
	assert_parses_to(text, PRIV);

	/* Random keys. */
	for (int i = 0; i < 50; i++) {
		uint8_t priv[NB_KEY_LEN], pub[NB_KEY_LEN];
		assert_int_equal(nb_key_generate(priv, pub), 0);
		assert_true(nb_keyfile_format(priv, text, sizeof(text)) > 0);
		assert_parses_to(text, priv);
	}

	/* Every cap too small: 0 and an empty string; exact fit works. */
	for (size_t cap = 0; cap <= n; cap++) {
		char small[NB_KEYFILE_TEXT_MAX];
		memset(small, 'x', sizeof(small));
		assert_int_equal(nb_keyfile_format(PRIV, small, cap), 0);
		if (cap > 0)
			assert_int_equal(small[0], '\0');
		/* Nothing of the private key is left in a refused buffer. */
		assert_null(memmem(small, cap, PRIV_TEXT, 8));
	}
	assert_int_equal(nb_keyfile_format(PRIV, text, n + 1), n);
	assert_int_equal(nb_keyfile_format(NULL, text, sizeof(text)), 0);
}

static void test_parse_accepts(void **state)
{
	char text[512];

	(void)state;
	snprintf(text, sizeof(text), "private-key: %s", PRIV_TEXT); /* no newline */
	assert_parses_to(text, PRIV);
	snprintf(text, sizeof(text), "private-key:\t%s\r\n", PRIV_TEXT);
	assert_parses_to(text, PRIV);
	snprintf(text, sizeof(text), "\n\n# a comment\n   # indented comment\n \t \n  private-key:   %s  \t\n\n#end",
		 PRIV_TEXT);
	assert_parses_to(text, PRIV);
	/* A "public-key" comment that does not match is only a comment. */
	snprintf(text, sizeof(text), "# public-key: AAAA\nprivate-key: %s\n", PRIV_TEXT);
	assert_parses_to(text, PRIV);
	/* A comment line of exactly NB_KEYFILE_LINE_MAX bytes. */
	{
		char line[NB_KEYFILE_LINE_MAX + 1];
		memset(line, 'c', NB_KEYFILE_LINE_MAX);
		line[0] = '#';
		line[NB_KEYFILE_LINE_MAX] = '\0';
		snprintf(text, sizeof(text), "%s\nprivate-key: %s\n", line, PRIV_TEXT);
		assert_parses_to(text, PRIV);
	}
}

struct bad {
	const char *name;
	const char *fmt; /* %s: the key text (used at most once) */
	int rc;
	const char *err;
};

static void test_parse_refuses(void **state)
{
	static const struct bad cases[] = {
		{ "empty", "", NB_KEYFILE_E_PARSE, "no \"private-key:\" line" },
		{ "comments only", "# x\n\n# y\n", NB_KEYFILE_E_PARSE, "no \"private-key:\" line" },
		{ "two keys", "private-key: %s\n#\nprivate-key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
		  NB_KEYFILE_E_PARSE, "line 3: a second private-key line (the first is line 1)" },
		{ "unknown word", "#\npublic-key: %s\n", NB_KEYFILE_E_PARSE, "line 2: expected" },
		{ "capitals", "Private-Key: %s\n", NB_KEYFILE_E_PARSE, "line 1: expected" },
		{ "space before colon", "private-key : %s\n", NB_KEYFILE_E_PARSE, "line 1: expected" },
		{ "no space", "private-key:%s\n", NB_KEYFILE_E_PARSE, "line 1: expected a space" },
		{ "no key", "private-key:\n", NB_KEYFILE_E_PARSE, "line 1: expected a space" },
		{ "blank key", "private-key:   \n", NB_KEYFILE_E_PARSE, "line 1: expected a space" },
		{ "short key", "private-key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", NB_KEYFILE_E_PARSE,
		  "line 1: the private key is not 43" },
		{ "long key", "private-key: %sA\n", NB_KEYFILE_E_PARSE, "line 1: the private key" },
		{ "padding", "private-key: %s=\n", NB_KEYFILE_E_PARSE, "line 1: the private key" },
		{ "standard base64", "private-key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+\n", NB_KEYFILE_E_PARSE,
		  "line 1: the private key" },
		{ "non-canonical", "private-key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB\n", NB_KEYFILE_E_PARSE,
		  "line 1: the private key" },
		{ "two words", "private-key: %s x\n", NB_KEYFILE_E_PARSE, "line 1: the private key" },
		{ "cr inside", "private-key: %s\r\r\n", NB_KEYFILE_E_PARSE, "line 1: the private key" },
		{ "trailing garbage line", "private-key: %s\nx\n", NB_KEYFILE_E_PARSE, "line 2: expected" },
	};
	char text[1024], err[256];
	uint8_t got[NB_KEY_LEN], sentinel[NB_KEY_LEN];

	(void)state;
	memset(sentinel, 0xa5, sizeof(sentinel));
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int rc;
		/* The one %s of the case's text becomes the key. */
		{
			const char *pc = strstr(cases[i].fmt, "%s");
			if (pc == NULL)
				snprintf(text, sizeof(text), "%s", cases[i].fmt);
			else
				snprintf(text, sizeof(text), "%.*s%s%s", (int)(pc - cases[i].fmt), cases[i].fmt,
					 PRIV_TEXT, pc + 2);
		}
		memcpy(got, sentinel, sizeof(got));
		err[0] = '\0';
		rc = nb_keyfile_parse(text, strlen(text), got, err, sizeof(err));
		if (rc != cases[i].rc || strstr(err, cases[i].err) == NULL)
			fail_msg("%s: rc %d err \"%s\", want %d \"%s\"", cases[i].name, rc, err, cases[i].rc,
				 cases[i].err);
		assert_memory_equal(got, sentinel, sizeof(got));
		/* The error never repeats the key. */
		assert_null(strstr(err, PRIV_TEXT));
	}

	/* A NUL byte; a line one byte too long; a file one byte too big. */
	{
		char buf[NB_KEYFILE_MAX + 2];
		int n = snprintf(buf, sizeof(buf), "# x\nprivate-key: %s\n", PRIV_TEXT);
		buf[2] = '\0';
		assert_int_equal(nb_keyfile_parse(buf, (size_t)n, got, err, sizeof(err)), NB_KEYFILE_E_PARSE);
		assert_string_equal(err, "line 1: a NUL byte");

		memset(buf, '#', NB_KEYFILE_LINE_MAX + 1);
		n = snprintf(buf + NB_KEYFILE_LINE_MAX + 1, sizeof(buf) - NB_KEYFILE_LINE_MAX - 1,
			     "\nprivate-key: %s\n", PRIV_TEXT);
		assert_int_equal(nb_keyfile_parse(buf, (size_t)n + NB_KEYFILE_LINE_MAX + 1, got, err, sizeof(err)),
				 NB_KEYFILE_E_PARSE);
		assert_string_equal(err, "line 1: longer than 256 bytes");

		memset(buf, '\n', sizeof(buf));
		n = snprintf(buf, sizeof(buf), "private-key: %s\n", PRIV_TEXT);
		buf[n] = '\n';
		assert_int_equal(nb_keyfile_parse(buf, NB_KEYFILE_MAX, got, err, sizeof(err)), 0);
		assert_int_equal(nb_keyfile_parse(buf, NB_KEYFILE_MAX + 1, got, err, sizeof(err)),
				 NB_KEYFILE_E_TOO_BIG);
		assert_memory_equal(got, PRIV, NB_KEY_LEN);
	}
	/* Arguments; a NULL err is fine. */
	assert_int_equal(nb_keyfile_parse(NULL, 1, got, err, sizeof(err)), NB_KEYFILE_E_INVAL);
	assert_int_equal(nb_keyfile_parse("", 0, NULL, err, sizeof(err)), NB_KEYFILE_E_INVAL);
	assert_int_equal(nb_keyfile_parse("", 0, got, NULL, 0), NB_KEYFILE_E_PARSE);
}

/* Flip every byte of a valid file (three ways): inside the key line the
 * result is refused or a different key; in a comment it is refused or the
 * same key. Never the same key from a changed key line. */
static void test_parse_mutations(void **state)
{
	static const uint8_t flips[] = { 0x01, 0x20, 0x80 };
	char text[NB_KEYFILE_TEXT_MAX], err[256];
	size_t n, key_line;
	uint8_t got[NB_KEY_LEN];

	(void)state;
	n = nb_keyfile_format(PRIV, text, sizeof(text));
	key_line = (size_t)(strstr(text, "private-key:") - text);
	for (size_t i = 0; i < n; i++) {
		for (size_t f = 0; f < ARRAY_LEN(flips); f++) {
			char m[NB_KEYFILE_TEXT_MAX];
			int rc;
			memcpy(m, text, n);
			m[i] = (char)(m[i] ^ flips[f]);
			rc = nb_keyfile_parse(m, n, got, err, sizeof(err));
			if (rc != 0)
				continue;
			if (i >= key_line && memcmp(got, PRIV, NB_KEY_LEN) == 0 && !(m[i] == ' ' || m[i] == '\t'))
				fail_msg("byte %zu ^ 0x%02x: the key line changed, the key did not", i, flips[f]);
			if (i < key_line && m[i] != '\n')
				assert_memory_equal(got, PRIV, NB_KEY_LEN);
		}
	}
}

/* Every prefix: refused until the whole key is there, then that key. */
static void test_parse_truncation(void **state)
{
	char text[NB_KEYFILE_TEXT_MAX], err[256];
	size_t n, key_end;
	uint8_t got[NB_KEY_LEN];
	struct nb_test_guard g;

	(void)state;
	n = nb_keyfile_format(PRIV, text, sizeof(text));
	key_end = (size_t)(strstr(text, PRIV_TEXT) - text) + NB_KEY_TEXT_LEN;
	nb_test_guard_open(&g);
	for (size_t len = 0; len <= n; len++) {
		const char *p = (const char *)nb_test_guard_place(&g, text, len);
		int rc = nb_keyfile_parse(p, len, got, err, sizeof(err));
		if (len < key_end) {
			assert_int_equal(rc, NB_KEYFILE_E_PARSE);
		} else {
			assert_int_equal(rc, 0);
			assert_memory_equal(got, PRIV, NB_KEY_LEN);
		}
	}
	nb_test_guard_close(&g);
}

/* ---- I/O ---------------------------------------------------------------------------- */

static char tmpdir[256];

static int mk_tmpdir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_keyfile.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int rm_tmpdir(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void path_in(char *out, size_t cap, const char *rel)
{
	assert_true((size_t)snprintf(out, cap, "%s/%s", tmpdir, rel) < cap);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* No temp file left behind in dir. */
static void assert_no_temp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strstr(e->d_name, ".tmp.") != NULL)
			fail_msg("temp file left: %s/%s", dir, e->d_name);
	closedir(d);
}

static void test_load_create(void **state)
{
	char path[512], dir[512], err[512];
	uint8_t priv[NB_KEY_LEN], pub[NB_KEY_LEN], priv2[NB_KEY_LEN], pub2[NB_KEY_LEN], want_pub[NB_KEY_LEN];
	bool created = true;
	struct stat st;

	(void)state;
	path_in(path, sizeof(path), "create/a/b/key");
	path_in(dir, sizeof(dir), "create/a/b");
	/* Missing, no create: -ENOENT, said. */
	memset(priv, 0x11, sizeof(priv));
	assert_int_equal(nb_keyfile_load(path, false, priv, pub, &created, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "does not exist"));
	assert_non_null(strstr(err, path));
	assert_true(created);
	for (int i = 0; i < NB_KEY_LEN; i++)
		assert_int_equal(priv[i], 0x11);

	/* Created: directories 0700, file 0600, the public key matches. */
	assert_int_equal(nb_keyfile_load(path, true, priv, pub, &created, err, sizeof(err)), 0);
	assert_true(created);
	assert_string_equal(err, "");
	assert_int_equal(nb_key_public(priv, want_pub), 0);
	assert_memory_equal(pub, want_pub, NB_KEY_LEN);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_no_temp(dir);

	/* Loaded again: the same key, not created. */
	assert_int_equal(nb_keyfile_load(path, true, priv2, pub2, &created, err, sizeof(err)), 0);
	assert_false(created);
	assert_memory_equal(priv2, priv, NB_KEY_LEN);
	assert_memory_equal(pub2, pub, NB_KEY_LEN);

	/* The write helper never replaces when asked not to. */
	assert_int_equal(nb_keyfile_write_private(path, "x", 1, false, err, sizeof(err)), -EEXIST);
	assert_no_temp(dir);
	assert_int_equal(nb_keyfile_load(path, false, priv2, pub2, NULL, err, sizeof(err)), 0);
	assert_memory_equal(priv2, priv, NB_KEY_LEN);
}

static void test_load_refuses(void **state)
{
	char path[512], link_path[512], err[512], text[NB_KEYFILE_TEXT_MAX];
	uint8_t priv[NB_KEY_LEN], pub[NB_KEY_LEN], sentinel[NB_KEY_LEN];
	bool created = false;

	(void)state;
	memset(sentinel, 0x5a, sizeof(sentinel));
	nb_keyfile_format(PRIV, text, sizeof(text));
	path_in(path, sizeof(path), "key.ok");
	write_file(path, text, 0600);
	assert_int_equal(nb_keyfile_load(path, false, priv, pub, &created, err, sizeof(err)), 0);
	assert_memory_equal(priv, PRIV, NB_KEY_LEN);
	assert_memory_equal(pub, PUB, NB_KEY_LEN);
	/* 0400 is fine too. */
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(nb_keyfile_load(path, false, priv, pub, &created, err, sizeof(err)), 0);

	/* Group/other bits, each one. */
	for (unsigned bit = 1; bit <= 040; bit <<= 1) {
		char want[600];
		assert_int_equal(chmod(path, (mode_t)(0600 | bit)), 0);
		memcpy(priv, sentinel, sizeof(priv));
		assert_int_equal(nb_keyfile_load(path, true, priv, pub, &created, err, sizeof(err)),
				 NB_KEYFILE_E_UNSAFE);
		snprintf(want, sizeof(want), "key file %s is %s by group or others (mode %04o); chmod 600 it", path,
			 (bit & 044) ? "readable" : "accessible", 0600 | bit);
		assert_string_equal(err, want);
		assert_memory_equal(priv, sentinel, sizeof(priv));
	}
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(nb_keyfile_load(path, false, priv, pub, &created, err, sizeof(err)), NB_KEYFILE_E_UNSAFE);
	assert_non_null(strstr(err, "is readable by group or others (mode 0644); chmod 600 it"));
	assert_int_equal(chmod(path, 0600), 0);

	/* A symbolic link, even to a good file; create does not replace it. */
	path_in(link_path, sizeof(link_path), "key.link");
	assert_int_equal(symlink(path, link_path), 0);
	assert_int_equal(nb_keyfile_load(link_path, true, priv, pub, &created, err, sizeof(err)),
			 NB_KEYFILE_E_UNSAFE);
	assert_non_null(strstr(err, "symbolic link"));
	/* A dangling one: create must not write through it. */
	path_in(link_path, sizeof(link_path), "key.dangling");
	{
		char target[512];
		path_in(target, sizeof(target), "nowhere");
		assert_int_equal(symlink(target, link_path), 0);
		assert_int_not_equal(nb_keyfile_load(link_path, true, priv, pub, &created, err, sizeof(err)), 0);
		assert_int_equal(access(target, F_OK), -1);
	}

	/* A directory, a FIFO: not regular files. */
	path_in(link_path, sizeof(link_path), "key.dir");
	assert_int_equal(mkdir(link_path, 0700), 0);
	assert_int_equal(nb_keyfile_load(link_path, true, priv, pub, &created, err, sizeof(err)),
			 NB_KEYFILE_E_UNSAFE);
	assert_non_null(strstr(err, "not a regular file"));
	path_in(link_path, sizeof(link_path), "key.fifo");
	assert_int_equal(mkfifo(link_path, 0600), 0);
	assert_int_equal(nb_keyfile_load(link_path, true, priv, pub, &created, err, sizeof(err)),
			 NB_KEYFILE_E_UNSAFE);
	assert_non_null(strstr(err, "not a regular file"));

	/* Another owner (as root we can arrange it). */
	if (geteuid() == 0) {
		assert_int_equal(chown(path, 4242, (gid_t)-1), 0);
		assert_int_equal(nb_keyfile_load(path, false, priv, pub, &created, err, sizeof(err)),
				 NB_KEYFILE_E_UNSAFE);
		assert_non_null(strstr(err, "is owned by uid 4242, not by this user (uid 0)"));
		assert_int_equal(chown(path, 0, (gid_t)-1), 0);
	}

	/* Too big; malformed (the line is named, with the path). */
	path_in(link_path, sizeof(link_path), "key.big");
	{
		static char big[NB_KEYFILE_MAX + 100];
		memset(big, '\n', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		write_file(link_path, big, 0600);
	}
	assert_int_equal(nb_keyfile_load(link_path, false, priv, pub, &created, err, sizeof(err)),
			 NB_KEYFILE_E_TOO_BIG);
	assert_non_null(strstr(err, "larger than 4096 bytes"));
	path_in(link_path, sizeof(link_path), "key.bad");
	write_file(link_path, "# ok\nprivate-key: nope\n", 0600);
	assert_int_equal(nb_keyfile_load(link_path, true, priv, pub, &created, err, sizeof(err)),
			 NB_KEYFILE_E_PARSE);
	{
		char want[600];
		snprintf(want, sizeof(want), "key file %s: line 2: the private key is not 43", link_path);
		assert_true(strncmp(err, want, strlen(want)) == 0);
	}

	/* Arguments. */
	assert_int_equal(nb_keyfile_load(NULL, true, priv, pub, &created, err, sizeof(err)), NB_KEYFILE_E_INVAL);
	assert_int_equal(nb_keyfile_load("", true, priv, pub, &created, err, sizeof(err)), NB_KEYFILE_E_INVAL);
	assert_int_equal(nb_keyfile_load(path, true, NULL, pub, &created, err, sizeof(err)), NB_KEYFILE_E_INVAL);
}

/* Several processes create the same key file at once: one key results, and
 * everyone loads it. */
static void test_create_race(void **state)
{
	enum { PROCS = 6, ROUNDS = 10 };

	(void)state;
	for (int round = 0; round < ROUNDS; round++) {
		char path[600], dir[512];
		int go[2], res[2], n_created = 0;
		pid_t pids[PROCS];
		uint8_t first[NB_KEY_LEN];

		snprintf(dir, sizeof(dir), "%s/race%d", tmpdir, round);
		snprintf(path, sizeof(path), "%s/sub/key", dir);
		assert_int_equal(pipe(go), 0);
		assert_int_equal(pipe(res), 0);
		for (int i = 0; i < PROCS; i++) {
			pids[i] = fork();
			assert_true(pids[i] >= 0);
			if (pids[i] == 0) {
				uint8_t msg[1 + NB_KEY_LEN], priv[NB_KEY_LEN];
				char c, err[512];
				bool created = false;
				close(go[1]);
				/* Wait for the start signal (EOF). */
				while (read(go[0], &c, 1) > 0)
					;
				if (nb_keyfile_load(path, true, priv, msg + 1, &created, err, sizeof(err)) != 0)
					_exit(2);
				msg[0] = created ? 1 : 0;
				if (write(res[1], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
					_exit(3);
				_exit(0);
			}
		}
		close(go[0]);
		close(res[1]);
		close(go[1]); /* go */
		for (int i = 0; i < PROCS; i++) {
			uint8_t msg[1 + NB_KEY_LEN];
			assert_int_equal(read(res[0], msg, sizeof(msg)), (ssize_t)sizeof(msg));
			n_created += msg[0];
			if (i == 0)
				memcpy(first, msg + 1, NB_KEY_LEN);
			else
				assert_memory_equal(first, msg + 1, NB_KEY_LEN);
		}
		close(res[0]);
		for (int i = 0; i < PROCS; i++) {
			int status;
			assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
			assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		}
		assert_int_equal(n_created, 1);
		snprintf(dir, sizeof(dir), "%s/race%d/sub", tmpdir, round);
		assert_no_temp(dir);
	}
}

static void test_default_path(void **state)
{
	char out[256];
	char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	char *old_xdg = getenv("XDG_CONFIG_HOME") ? strdup(getenv("XDG_CONFIG_HOME")) : NULL;

	(void)state;
	setenv("HOME", "/home/ann", 1);
	setenv("XDG_CONFIG_HOME", "/cfg", 1);
	assert_int_equal(nb_keyfile_default_path("natpeer", out, sizeof(out)), 0);
	assert_string_equal(out, "/cfg/natpeer/key");
	assert_int_equal(nb_keyfile_config_path("natpeer", "known_peers", out, sizeof(out)), 0);
	assert_string_equal(out, "/cfg/natpeer/known_peers");
	setenv("XDG_CONFIG_HOME", "relative/cfg", 1); /* ignored */
	assert_int_equal(nb_keyfile_default_path("natbroker", out, sizeof(out)), 0);
	assert_string_equal(out, "/home/ann/.config/natbroker/key");
	setenv("XDG_CONFIG_HOME", "", 1);
	assert_int_equal(nb_keyfile_default_path("natpeer", out, sizeof(out)), 0);
	assert_string_equal(out, "/home/ann/.config/natpeer/key");
	unsetenv("XDG_CONFIG_HOME");
	assert_int_equal(nb_keyfile_default_path("natpeer", out, sizeof(out)), 0);
	assert_string_equal(out, "/home/ann/.config/natpeer/key");
	/* Exactly fits; one byte short. */
	assert_int_equal(nb_keyfile_default_path("natpeer", out, strlen("/home/ann/.config/natpeer/key") + 1), 0);
	assert_int_equal(nb_keyfile_default_path("natpeer", out, strlen("/home/ann/.config/natpeer/key")),
			 -ENAMETOOLONG);
	setenv("HOME", "ann", 1);
	assert_int_equal(nb_keyfile_default_path("natpeer", out, sizeof(out)), NB_KEYFILE_E_NO_PATH);
	unsetenv("HOME");
	assert_int_equal(nb_keyfile_default_path("natpeer", out, sizeof(out)), NB_KEYFILE_E_NO_PATH);
	setenv("XDG_CONFIG_HOME", "/cfg", 1);
	assert_int_equal(nb_keyfile_default_path("natpeer", out, sizeof(out)), 0);
	/* Bad names. */
	assert_int_equal(nb_keyfile_default_path("", out, sizeof(out)), NB_KEYFILE_E_INVAL);
	assert_int_equal(nb_keyfile_default_path("a/b", out, sizeof(out)), NB_KEYFILE_E_INVAL);
	assert_int_equal(nb_keyfile_default_path("..", out, sizeof(out)), NB_KEYFILE_E_INVAL);
	assert_int_equal(nb_keyfile_default_path(NULL, out, sizeof(out)), NB_KEYFILE_E_INVAL);
	assert_int_equal(nb_keyfile_config_path("natpeer", "../x", out, sizeof(out)), NB_KEYFILE_E_INVAL);
	assert_string_equal(nb_keyfile_strerror(NB_KEYFILE_E_UNSAFE), "key file unsafe (type, owner or mode)");

	if (old_home != NULL)
		setenv("HOME", old_home, 1);
	else
		unsetenv("HOME");
	if (old_xdg != NULL)
		setenv("XDG_CONFIG_HOME", old_xdg, 1);
	else
		unsetenv("XDG_CONFIG_HOME");
	free(old_home);
	free(old_xdg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_parse_accepts),
		cmocka_unit_test(test_parse_refuses),
		cmocka_unit_test(test_parse_mutations),
		cmocka_unit_test(test_parse_truncation),
		cmocka_unit_test_setup_teardown(test_load_create, mk_tmpdir, rm_tmpdir),
		cmocka_unit_test_setup_teardown(test_load_refuses, mk_tmpdir, rm_tmpdir),
		cmocka_unit_test_setup_teardown(test_create_race, mk_tmpdir, rm_tmpdir),
		cmocka_unit_test(test_default_path),
	};
	return cmocka_run_group_tests(tests, setup_keys, NULL);
}
