/* tests/unit/test_known.c - the known-peers file: parse/format round trips,
 * a table of refusals (each naming its line), caps, every-byte mutation,
 * every-prefix truncation, an input at a guard page, set/forget, and the
 * I/O shell: load/save, modes, symlinks, sequential and concurrent
 * updates by several processes (none lost). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peer/known.h"
#include "upnp_test_util.h"

static uint8_t K1[NB_KEY_LEN], K2[NB_KEY_LEN], K3[NB_KEY_LEN];
static char T1[NB_KEY_TEXT_LEN + 1], T2[NB_KEY_TEXT_LEN + 1], T3[NB_KEY_TEXT_LEN + 1];

static int setup_keys(void **state)
{
	(void)state;
	for (int i = 0; i < NB_KEY_LEN; i++) {
		K1[i] = (uint8_t)(i + 1);
		K2[i] = (uint8_t)(0x80 + i);
		K3[i] = (uint8_t)(0xff - 3 * i);
	}
	nb_key_to_text(K1, T1);
	nb_key_to_text(K2, T2);
	nb_key_to_text(K3, T3);
	return 0;
}

/* "alice K1 / @203.0.113.1:3478 K2 / @[2001:db8::1]:3478 K3", no comments. */
static size_t sample(char *out, size_t cap)
{
	int n = snprintf(out, cap, "alice %s\n@203.0.113.1:3478 %s\n@[2001:db8::1]:3478 %s\n", T1, T2, T3);
	assert_true(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

static void assert_sample(const struct nb_known *k)
{
	assert_int_equal(k->n, 3);
	assert_string_equal(k->e[0].name, "alice");
	assert_string_equal(k->e[1].name, "@203.0.113.1:3478");
	assert_string_equal(k->e[2].name, "@[2001:db8::1]:3478");
	assert_memory_equal(nb_known_lookup(k, "alice"), K1, NB_KEY_LEN);
	assert_memory_equal(nb_known_lookup(k, "@203.0.113.1:3478"), K2, NB_KEY_LEN);
	assert_memory_equal(nb_known_lookup(k, "@[2001:db8::1]:3478"), K3, NB_KEY_LEN);
	assert_null(nb_known_lookup(k, "bob"));
	assert_null(nb_known_lookup(k, "Alice"));
}

/* The list's text, for comparing two lists. */
static char *text_of(const struct nb_known *k)
{
	size_t n = nb_known_format(k, NULL, 0);
	char *s = malloc(n + 1);

	assert_non_null(s);
	assert_int_equal(nb_known_format(k, s, n + 1), n);
	return s;
}

/* ---- pure ----------------------------------------------------------------------- */

static void test_parse_and_format(void **state)
{
	struct nb_known k, k2;
	char buf[1024], err[256];
	size_t n;
	char *text;

	(void)state;
	nb_known_init(&k);
	nb_known_init(&k2);
	n = sample(buf, sizeof(buf));
	assert_int_equal(nb_known_parse(&k, buf, n, err, sizeof(err)), 0);
	assert_sample(&k);

	/* Comments, blank lines, CRLF, tabs, no final newline. */
	snprintf(buf, sizeof(buf),
		 "# header\n\n  # indented\r\n\talice \t %s \r\n@203.0.113.1:3478\t%s\n \n@[2001:db8::1]:3478 %s", T1,
		 T2, T3);
	assert_int_equal(nb_known_parse(&k2, buf, strlen(buf), err, sizeof(err)), 0);
	assert_sample(&k2);

	/* Format: header, entries in order; it parses back to the same list. */
	text = text_of(&k);
	snprintf(buf, sizeof(buf),
		 "# natpeer known peers: <name> <public key>, one per line (trust on first use)\n"
		 "alice %s\n@203.0.113.1:3478 %s\n@[2001:db8::1]:3478 %s\n",
		 T1, T2, T3);
	assert_string_equal(text, buf);
	assert_int_equal(nb_known_parse(&k2, text, strlen(text), err, sizeof(err)), 0);
	assert_sample(&k2);

	/* Every cap too small: the full length is returned, out stays a string. */
	n = strlen(text);
	for (size_t cap = 1; cap <= n; cap++) {
		char small[1024];
		assert_int_equal(nb_known_format(&k, small, cap), n);
		assert_int_equal(strlen(small), cap - 1);
		assert_memory_equal(small, text, cap - 1);
	}
	free(text);

	/* An empty file, and only comments: an empty list. */
	assert_int_equal(nb_known_parse(&k2, "", 0, err, sizeof(err)), 0);
	assert_int_equal(k2.n, 0);
	assert_int_equal(nb_known_parse(&k2, "# x\n\n", 5, err, sizeof(err)), 0);
	assert_int_equal(k2.n, 0);
	nb_known_free(&k);
	nb_known_free(&k2);
	nb_known_free(&k2); /* twice is fine */
}

struct bad {
	const char *name;
	const char *text; /* %s: a valid key */
	int rc;
	const char *err;
};

static void test_parse_refuses(void **state)
{
	static const struct bad cases[] = {
		{ "name only", "alice\n", NB_KNOWN_E_PARSE, "line 1: expected" },
		{ "key only", "# c\n%s\n", NB_KNOWN_E_PARSE, "line 2: expected" },
		{ "bad char", "al/ice %s\n", NB_KNOWN_E_PARSE, "line 1: the name is not" },
		{ "space in name", "bob %s\n\"a b\" %s\n", NB_KNOWN_E_PARSE, "line 2: the name is not" },
		{ "id 33", "abcdefghijklmnopqrstuvwxyz0123456 %s\n", NB_KNOWN_E_PARSE, "line 1: the name is not" },
		{ "utf-8", "\xc3\xa9t\xc3\xa9 %s\n", NB_KNOWN_E_PARSE, "line 1: the name is not" },
		{ "broker no port", "@203.0.113.1 %s\n", NB_KNOWN_E_PARSE, "line 1: the name is not" },
		{ "broker port 0", "@203.0.113.1:0 %s\n", NB_KNOWN_E_PARSE, "line 1: the name is not" },
		{ "broker leading zero", "@203.0.113.01:3478 %s\n", NB_KNOWN_E_PARSE, "line 1: the name is not" },
		{ "broker upper v6", "@[2001:DB8::1]:3478 %s\n", NB_KNOWN_E_PARSE, "line 1: the name is not" },
		{ "broker long v6", "@[2001:db8:0:0:0:0:0:1]:3478 %s\n", NB_KNOWN_E_PARSE, "line 1: the name is not" },
		{ "broker host name", "@broker.example:3478 %s\n", NB_KNOWN_E_PARSE, "line 1: the name is not" },
		{ "at alone", "@ %s\n", NB_KNOWN_E_PARSE, "line 1: the name is not" },
		{ "short key", "alice AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", NB_KNOWN_E_PARSE,
		  "line 1: the key is not 43" },
		{ "long key", "alice %sA\n", NB_KNOWN_E_PARSE, "line 1: the key is not 43" },
		{ "two keys", "alice %s %s\n", NB_KNOWN_E_PARSE, "line 1: the key is not 43" },
		{ "non-canonical key", "alice AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB\n", NB_KNOWN_E_PARSE,
		  "line 1: the key is not 43" },
		{ "duplicate", "alice %s\nbob %s\n\nalice %s\n", NB_KNOWN_E_PARSE,
		  "line 4: \"alice\" is listed already (line 1)" },
		{ "two duplicates", "b %s\na %s\na %s\nb %s\n", NB_KNOWN_E_PARSE,
		  "line 3: \"a\" is listed already (line 2)" },
		{ "duplicate broker", "@[::1]:5 %s\n@[::1]:5 %s\n", NB_KNOWN_E_PARSE,
		  "line 2: \"@[::1]:5\" is listed already (line 1)" },
	};
	char text[1024], err[256], *before;
	struct nb_known k;

	(void)state;
	nb_known_init(&k);
	assert_int_equal(nb_known_parse(&k, text, sample(text, sizeof(text)), err, sizeof(err)), 0);
	before = text_of(&k);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		size_t w = 0;
		int rc;
		char *now;
		/* Each %s becomes T1. */
		for (const char *p = cases[i].text; *p != '\0'; p++) {
			if (p[0] == '%' && p[1] == 's') {
				memcpy(text + w, T1, NB_KEY_TEXT_LEN);
				w += NB_KEY_TEXT_LEN;
				p++;
			} else {
				text[w++] = *p;
			}
		}
		err[0] = '\0';
		rc = nb_known_parse(&k, text, w, err, sizeof(err));
		if (rc != cases[i].rc || strstr(err, cases[i].err) == NULL)
			fail_msg("%s: rc %d err \"%s\", want %d \"%s\"", cases[i].name, rc, err, cases[i].rc,
				 cases[i].err);
		/* Refused whole: the list is as it was. */
		now = text_of(&k);
		assert_string_equal(now, before);
		free(now);
	}
	/* NUL byte, overlong line. */
	{
		char line[NB_KNOWN_LINE_MAX + 8];
		snprintf(text, sizeof(text), "alice %s\n", T1);
		text[2] = '\0';
		assert_int_equal(nb_known_parse(&k, text, strlen(T1) + 7, err, sizeof(err)), NB_KNOWN_E_PARSE);
		assert_string_equal(err, "line 1: a NUL byte");
		memset(line, '#', sizeof(line));
		assert_int_equal(nb_known_parse(&k, line, NB_KNOWN_LINE_MAX, err, sizeof(err)), 0);
		assert_int_equal(nb_known_parse(&k, line, NB_KNOWN_LINE_MAX + 1, err, sizeof(err)),
				 NB_KNOWN_E_PARSE);
		assert_string_equal(err, "line 1: longer than 256 bytes");
	}
	assert_int_equal(nb_known_parse(NULL, "", 0, err, sizeof(err)), NB_KNOWN_E_INVAL);
	assert_int_equal(nb_known_parse(&k, NULL, 1, err, sizeof(err)), NB_KNOWN_E_INVAL);
	free(before);
	nb_known_free(&k);
}

static void test_caps(void **state)
{
	/* NB_KNOWN_MAX + 1 entries of 50 bytes: about 200 KB. */
	size_t cap = (NB_KNOWN_MAX + 1) * 64, w = 0;
	char *buf = malloc(NB_KNOWN_FILE_MAX + 2), err[256];
	struct nb_known k;
	uint8_t key[NB_KEY_LEN];

	(void)state;
	assert_non_null(buf);
	nb_known_init(&k);
	for (int i = 0; i <= NB_KNOWN_MAX; i++) {
		int n = snprintf(buf + w, cap - w, "p%d %s\n", i, T2);
		w += (size_t)n;
		if (i == NB_KNOWN_MAX - 1) {
			assert_int_equal(nb_known_parse(&k, buf, w, err, sizeof(err)), 0);
			assert_int_equal(k.n, NB_KNOWN_MAX);
		}
	}
	assert_int_equal(nb_known_parse(&k, buf, w, err, sizeof(err)), NB_KNOWN_E_TOO_BIG);
	assert_string_equal(err, "line 4097: more than 4096 entries");
	assert_int_equal(k.n, NB_KNOWN_MAX);
	/* Full: a new name is refused, replacing one is fine. */
	assert_int_equal(nb_known_set(&k, "newcomer", K1), -ENOSPC);
	assert_int_equal(nb_known_set(&k, "p7", K1), 0);
	assert_memory_equal(nb_known_lookup(&k, "p7"), K1, NB_KEY_LEN);
	assert_int_equal(nb_known_forget(&k, "p0"), 0);
	assert_int_equal(nb_known_set(&k, "newcomer", K1), 0);
	assert_string_equal(k.e[k.n - 1].name, "newcomer");

	/* 1 MiB of comments is fine; one byte more is too big. */
	memset(buf, '\n', NB_KNOWN_FILE_MAX + 1);
	assert_int_equal(nb_known_parse(&k, buf, NB_KNOWN_FILE_MAX, err, sizeof(err)), 0);
	assert_int_equal(k.n, 0);
	assert_int_equal(nb_known_parse(&k, buf, NB_KNOWN_FILE_MAX + 1, err, sizeof(err)), NB_KNOWN_E_TOO_BIG);
	(void)key;
	free(buf);
	nb_known_free(&k);
}

static void test_set_forget_names(void **state)
{
	struct nb_known k;
	char name[NB_KNOWN_NAME_MAX + 1];
	struct nb_addr a;

	(void)state;
	nb_known_init(&k);
	assert_int_equal(nb_known_set(&k, "bob", K1), 0);
	assert_int_equal(nb_known_set(&k, "carol", K2), 0);
	assert_int_equal(nb_known_set(&k, "dave", K3), 0);
	assert_int_equal(nb_known_set(&k, "bob", K3), 0); /* replace in place */
	assert_int_equal(k.n, 3);
	assert_string_equal(k.e[0].name, "bob");
	assert_memory_equal(nb_known_lookup(&k, "bob"), K3, NB_KEY_LEN);
	assert_int_equal(nb_known_forget(&k, "carol"), 0);
	assert_int_equal(nb_known_forget(&k, "carol"), -ENOENT);
	assert_int_equal(k.n, 2);
	assert_string_equal(k.e[1].name, "dave");
	assert_int_equal(nb_known_set(&k, "no/slash", K1), NB_KNOWN_E_NAME);
	assert_int_equal(nb_known_set(&k, "", K1), NB_KNOWN_E_NAME);
	assert_int_equal(nb_known_set(&k, NULL, K1), NB_KNOWN_E_NAME);
	assert_int_equal(nb_known_set(&k, "x", NULL), NB_KNOWN_E_INVAL);
	assert_int_equal(k.n, 2);

	assert_true(nb_known_name_ok("a"));
	assert_true(nb_known_name_ok("A.b_c-9"));
	assert_true(nb_known_name_ok("abcdefghijklmnopqrstuvwxyz012345"));  /* 32 */
	assert_false(nb_known_name_ok("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 */
	assert_true(nb_known_name_ok("@203.0.113.1:3478"));
	assert_true(nb_known_name_ok("@[2001:db8::1]:3478"));
	assert_true(nb_known_name_ok("@[2001:db8:1234:5678:9abc:def0:1234:5678]:65535"));
	assert_false(nb_known_name_ok("@203.0.113.1:65536"));
	assert_false(nb_known_name_ok("@2001:db8::1:3478"));
	assert_false(nb_known_name_ok("x@y"));

	assert_int_equal(nb_addr_parse("203.0.113.1:3478", false, &a), 0);
	assert_int_equal(nb_known_broker_name(&a, name), 0);
	assert_string_equal(name, "@203.0.113.1:3478");
	assert_int_equal(nb_addr_parse("[2001:0db8:0::1]:3478", false, &a), 0);
	assert_int_equal(nb_known_broker_name(&a, name), 0);
	assert_string_equal(name, "@[2001:db8::1]:3478");
	a.port = 0;
	assert_int_equal(nb_known_broker_name(&a, name), NB_KNOWN_E_NAME);
	nb_known_free(&k);
}

/* Flip every byte of a file without comments: each accepted mutation
 * yields a different list (nothing is silently ignored). */
static void test_mutations(void **state)
{
	static const uint8_t flips[] = { 0x01, 0x02, 0x20, 0x40, 0x80 };
	char buf[512], err[256], *orig;
	size_t n;
	struct nb_known k;

	(void)state;
	nb_known_init(&k);
	n = sample(buf, sizeof(buf));
	assert_int_equal(nb_known_parse(&k, buf, n, err, sizeof(err)), 0);
	orig = text_of(&k);
	for (size_t i = 0; i < n; i++) {
		for (size_t f = 0; f < ARRAY_LEN(flips); f++) {
			char m[512];
			memcpy(m, buf, n);
			m[i] = (char)(m[i] ^ flips[f]);
			if (nb_known_parse(&k, m, n, err, sizeof(err)) == 0) {
				char *now = text_of(&k);
				/* A space may become a tab: the same list. */
				if (!(buf[i] == ' ' && m[i] == '\t') && strcmp(now, orig) == 0)
					fail_msg("byte %zu ^ 0x%02x: accepted, same list", i, flips[f]);
				free(now);
			} else {
				assert_true(strncmp(err, "line ", 5) == 0);
			}
		}
	}
	free(orig);
	nb_known_free(&k);
}

/* Every prefix, each placed to end at a guard page: accepted exactly when it
 * ends after a whole key (with or without its newline). */
static void test_truncation(void **state)
{
	char buf[512], err[256];
	size_t n;
	struct nb_known k;
	struct nb_test_guard g;

	(void)state;
	nb_known_init(&k);
	n = sample(buf, sizeof(buf));
	nb_test_guard_open(&g);
	for (size_t len = 0; len <= n; len++) {
		const char *p = (const char *)nb_test_guard_place(&g, buf, len);
		int rc = nb_known_parse(&k, p, len, err, sizeof(err));
		size_t lines = 0;
		bool whole = len == 0 || buf[len - 1] == '\n' || (len < n && buf[len] == '\n');
		for (size_t i = 0; i < len; i++)
			lines += buf[i] == '\n';
		if (whole) {
			assert_int_equal(rc, 0);
			assert_int_equal(k.n, lines + (len > 0 && buf[len - 1] != '\n'));
		} else {
			assert_int_equal(rc, NB_KNOWN_E_PARSE);
		}
	}
	nb_test_guard_close(&g);
	nb_known_free(&k);
}

/* ---- I/O ----------------------------------------------------------------------------- */

static char tmpdir[256];

static int mk_tmpdir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_known.XXXXXX");
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

static void test_load_save(void **state)
{
	char path[600], dir[512], other[512], err[1024];
	struct nb_known k, k2;
	struct stat st;

	(void)state;
	nb_known_init(&k);
	nb_known_init(&k2);
	snprintf(dir, sizeof(dir), "%s/cfg/natpeer", tmpdir);
	snprintf(path, sizeof(path), "%s/known_peers", dir);
	/* Missing: empty. */
	assert_int_equal(nb_known_set(&k2, "stale", K1), 0);
	assert_int_equal(nb_known_load(&k2, path, err, sizeof(err)), 0);
	assert_int_equal(k2.n, 0);
	/* Save makes the directory (0700) and the file (0600). */
	assert_int_equal(nb_known_set(&k, "alice", K1), 0);
	assert_int_equal(nb_known_set(&k, "@203.0.113.1:3478", K2), 0);
	assert_int_equal(nb_known_save(&k, path, err, sizeof(err)), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(nb_known_load(&k2, path, err, sizeof(err)), 0);
	assert_int_equal(k2.n, 2);
	assert_memory_equal(nb_known_lookup(&k2, "@203.0.113.1:3478"), K2, NB_KEY_LEN);

	/* Readable by others is fine (public keys); writable is not. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(nb_known_load(&k2, path, err, sizeof(err)), 0);
	assert_int_equal(chmod(path, 0664), 0);
	assert_int_equal(nb_known_load(&k2, path, err, sizeof(err)), NB_KNOWN_E_UNSAFE);
	assert_non_null(strstr(err, "is writable by group or others (mode 0664); chmod 600 it"));
	assert_int_equal(k2.n, 2);
	assert_int_equal(chmod(path, 0600), 0);

	/* A symlink is refused; so is a malformed file, naming path and line. */
	snprintf(other, sizeof(other), "%s/link", tmpdir);
	assert_int_equal(symlink(path, other), 0);
	assert_int_equal(nb_known_load(&k2, other, err, sizeof(err)), NB_KNOWN_E_UNSAFE);
	assert_non_null(strstr(err, "symbolic link"));
	snprintf(other, sizeof(other), "%s/bad", tmpdir);
	{
		int fd = open(other, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "# x\nbob nope\n", 13), 13);
		close(fd);
	}
	assert_int_equal(nb_known_load(&k2, other, err, sizeof(err)), NB_KNOWN_E_PARSE);
	{
		char want[600];
		snprintf(want, sizeof(want), "known-peers file %s: line 2: the key is not 43", other);
		assert_true(strncmp(err, want, strlen(want)) == 0);
	}
	assert_int_equal(k2.n, 2);

	/* Two sequential load/modify/save cycles: both changes survive. */
	assert_int_equal(nb_known_load(&k, path, err, sizeof(err)), 0);
	assert_int_equal(nb_known_set(&k, "bob", K3), 0);
	assert_int_equal(nb_known_save(&k, path, err, sizeof(err)), 0);
	assert_int_equal(nb_known_load(&k2, path, err, sizeof(err)), 0);
	assert_int_equal(nb_known_forget(&k2, "alice"), 0);
	assert_int_equal(nb_known_set(&k2, "carol", K1), 0);
	assert_int_equal(nb_known_save(&k2, path, err, sizeof(err)), 0);
	assert_int_equal(nb_known_load(&k, path, err, sizeof(err)), 0);
	assert_int_equal(k.n, 3);
	assert_null(nb_known_lookup(&k, "alice"));
	assert_memory_equal(nb_known_lookup(&k, "bob"), K3, NB_KEY_LEN);
	assert_memory_equal(nb_known_lookup(&k, "carol"), K1, NB_KEY_LEN);
	assert_non_null(nb_known_lookup(&k, "@203.0.113.1:3478"));

	/* update: add, replace, forget (absent is fine). */
	assert_int_equal(nb_known_update(path, "dave", K2, &k, err, sizeof(err)), 0);
	assert_int_equal(k.n, 4);
	assert_int_equal(nb_known_update(path, "dave", K3, NULL, err, sizeof(err)), 0);
	assert_int_equal(nb_known_update(path, "bob", NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(nb_known_update(path, "nobody", NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(nb_known_update(path, "bad name", K1, NULL, err, sizeof(err)), NB_KNOWN_E_NAME);
	assert_int_equal(nb_known_load(&k, path, err, sizeof(err)), 0);
	assert_int_equal(k.n, 3);
	assert_memory_equal(nb_known_lookup(&k, "dave"), K3, NB_KEY_LEN);
	assert_null(nb_known_lookup(&k, "bob"));
	/* No temp file left. */
	{
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s' | grep '\\.tmp\\.')\"", dir);
		assert_int_equal(system(cmd), 0);
	}
	nb_known_free(&k);
	nb_known_free(&k2);
}

/* Several processes add their own names at once through nb_known_update:
 * none is lost. */
static void test_concurrent_updates(void **state)
{
	enum { PROCS = 6, EACH = 8 };
	char path[512], err[512];
	int go[2];
	pid_t pids[PROCS];
	struct nb_known k;

	(void)state;
	snprintf(path, sizeof(path), "%s/c/known_peers", tmpdir);
	assert_int_equal(pipe(go), 0);
	for (int i = 0; i < PROCS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char c, name[32];
			uint8_t key[NB_KEY_LEN];
			close(go[1]);
			while (read(go[0], &c, 1) > 0)
				;
			for (int j = 0; j < EACH; j++) {
				snprintf(name, sizeof(name), "p%d-%d", i, j);
				memset(key, i * 16 + j, sizeof(key));
				if (nb_known_update(path, name, key, NULL, err, sizeof(err)) != 0)
					_exit(2);
			}
			_exit(0);
		}
	}
	close(go[0]);
	close(go[1]);
	for (int i = 0; i < PROCS; i++) {
		int status;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	nb_known_init(&k);
	assert_int_equal(nb_known_load(&k, path, err, sizeof(err)), 0);
	assert_int_equal(k.n, PROCS * EACH);
	for (int i = 0; i < PROCS; i++) {
		for (int j = 0; j < EACH; j++) {
			char name[32];
			uint8_t key[NB_KEY_LEN];
			snprintf(name, sizeof(name), "p%d-%d", i, j);
			memset(key, i * 16 + j, sizeof(key));
			assert_non_null(nb_known_lookup(&k, name));
			assert_memory_equal(nb_known_lookup(&k, name), key, NB_KEY_LEN);
		}
	}
	nb_known_free(&k);
}

static void test_default_path(void **state)
{
	char out[256];
	char *old_xdg = getenv("XDG_CONFIG_HOME") ? strdup(getenv("XDG_CONFIG_HOME")) : NULL;
	char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;

	(void)state;
	setenv("XDG_CONFIG_HOME", "/cfg", 1);
	assert_int_equal(nb_known_default_path(out, sizeof(out)), 0);
	assert_string_equal(out, "/cfg/natpeer/known_peers");
	unsetenv("XDG_CONFIG_HOME");
	setenv("HOME", "/home/bo", 1);
	assert_int_equal(nb_known_default_path(out, sizeof(out)), 0);
	assert_string_equal(out, "/home/bo/.config/natpeer/known_peers");
	assert_int_equal(nb_known_default_path(out, 10), -ENAMETOOLONG);
	if (old_xdg != NULL)
		setenv("XDG_CONFIG_HOME", old_xdg, 1);
	if (old_home != NULL)
		setenv("HOME", old_home, 1);
	else
		unsetenv("HOME");
	free(old_xdg);
	free(old_home);
	assert_string_equal(nb_known_strerror(-ENOSPC), strerror(ENOSPC));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_format),
		cmocka_unit_test(test_parse_refuses),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_set_forget_names),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test_setup_teardown(test_load_save, mk_tmpdir, rm_tmpdir),
		cmocka_unit_test_setup_teardown(test_concurrent_updates, mk_tmpdir, rm_tmpdir),
		cmocka_unit_test(test_default_path),
	};
	return cmocka_run_group_tests(tests, setup_keys, NULL);
}
