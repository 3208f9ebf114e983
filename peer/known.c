/* peer/known.c - the known-peers file (TOFU): a pure parser/formatter over a bounded list, and thin load/save/update. */
#include "peer/known.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/keyfile.h"

#define KNOWN_HEADER "# natpeer known peers: <name> <public key>, one per line (trust on first use)\n"

const char *nb_known_strerror(int err)
{
	switch (err) {
	case 0: return "ok";
	case NB_KNOWN_E_PARSE: return "malformed known-peers file";
	case NB_KNOWN_E_TOO_BIG: return "known-peers file too large";
	case NB_KNOWN_E_NAME: return "not a peer id or broker name";
	case NB_KNOWN_E_UNSAFE: return "known-peers file unsafe (type, owner or mode)";
	case NB_KNOWN_E_INVAL: return "invalid argument";
	case NB_KNOWN_E_NOMEM: return "out of memory";
	default: break;
	}
	return err < 0 && err > -4096 ? strerror(-err) : nb_keyfile_strerror(err);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

void nb_known_init(struct nb_known *k)
{
	k->e = NULL;
	k->n = k->cap = 0;
}

void nb_known_free(struct nb_known *k)
{
	if (k == NULL)
		return;
	free(k->e);
	nb_known_init(k);
}

/* ---- names -------------------------------------------------------------------------- */

static bool id_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
	       c == '-';
}

/* The n bytes at s (no NUL needed) form a valid name. */
static bool name_ok(const char *s, size_t n)
{
	if (n == 0 || n > NB_KNOWN_NAME_MAX)
		return false;
	if (s[0] == '@') {
		char text[NB_KNOWN_NAME_MAX + 1], canon[NB_ADDR_STRLEN];
		struct nb_addr a;
		memcpy(text, s + 1, n - 1);
		text[n - 1] = '\0';
		if (memchr(text, '\0', n - 1) != NULL || nb_addr_parse(text, false, &a) != 0 || a.port == 0)
			return false;
		/* One spelling per broker, so lookups cannot miss. */
		nb_addr_format(&a, canon, sizeof(canon));
		return strcmp(canon, text) == 0;
	}
	if (n > NB_KNOWN_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!id_char(s[i]))
			return false;
	return true;
}

bool nb_known_name_ok(const char *s)
{
	return s != NULL && name_ok(s, strnlen(s, NB_KNOWN_NAME_MAX + 1));
}

int nb_known_broker_name(const struct nb_addr *addr, char out[NB_KNOWN_NAME_MAX + 1])
{
	char text[NB_ADDR_STRLEN];

	if (addr == NULL || out == NULL || addr->port == 0)
		return NB_KNOWN_E_NAME;
	nb_addr_format(addr, text, sizeof(text));
	if (strlen(text) + 1 > NB_KNOWN_NAME_MAX || (addr->family != NB_AF_INET && addr->family != NB_AF_INET6))
		return NB_KNOWN_E_NAME;
	out[0] = '@';
	memcpy(out + 1, text, strlen(text) + 1);
	return name_ok(out, strlen(out)) ? 0 : NB_KNOWN_E_NAME;
}

/* ---- the list -------------------------------------------------------------------------- */

static long find(const struct nb_known *k, const char *name)
{
	for (size_t i = 0; i < k->n; i++)
		if (strcmp(k->e[i].name, name) == 0)
			return (long)i;
	return -1;
}

static int grow(struct nb_known *k)
{
	size_t cap;
	struct nb_known_entry *e;

	if (k->n < k->cap)
		return 0;
	if (k->cap >= NB_KNOWN_MAX)
		return -ENOSPC;
	cap = k->cap == 0 ? 16 : k->cap * 2;
	if (cap > NB_KNOWN_MAX)
		cap = NB_KNOWN_MAX;
	e = realloc(k->e, cap * sizeof(*e));
	if (e == NULL)
		return NB_KNOWN_E_NOMEM;
	k->e = e;
	k->cap = cap;
	return 0;
}

const uint8_t *nb_known_lookup(const struct nb_known *k, const char *name)
{
	long i;

	if (k == NULL || name == NULL)
		return NULL;
	i = find(k, name);
	return i < 0 ? NULL : k->e[i].key;
}

int nb_known_set(struct nb_known *k, const char *name, const uint8_t key[NB_KEY_LEN])
{
	long i;
	int rc;

	if (k == NULL || key == NULL)
		return NB_KNOWN_E_INVAL;
	if (!nb_known_name_ok(name))
		return NB_KNOWN_E_NAME;
	i = find(k, name);
	if (i >= 0) {
		memcpy(k->e[i].key, key, NB_KEY_LEN);
		return 0;
	}
	rc = grow(k);
	if (rc != 0)
		return rc;
	memcpy(k->e[k->n].name, name, strlen(name) + 1);
	memcpy(k->e[k->n].key, key, NB_KEY_LEN);
	k->n++;
	return 0;
}

int nb_known_forget(struct nb_known *k, const char *name)
{
	long i;

	if (k == NULL || name == NULL)
		return NB_KNOWN_E_INVAL;
	i = find(k, name);
	if (i < 0)
		return -ENOENT;
	memmove(&k->e[i], &k->e[i + 1], (k->n - (size_t)i - 1) * sizeof(k->e[0]));
	k->n--;
	return 0;
}

/* ---- parse / format ------------------------------------------------------------------ */

/* For the duplicate check: entry indexes sorted by name, then line
 * (qsort_r: no static state, as the file is parsed in the thread pool too). */
struct sort_ctx {
	const struct nb_known_entry *entries;
	const unsigned *lines;
};

static int by_name_then_line(const void *a, const void *b, void *arg)
{
	const struct sort_ctx *sc = arg;
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	int c = strcmp(sc->entries[x].name, sc->entries[y].name);

	if (c != 0)
		return c;
	return sc->lines[x] < sc->lines[y] ? -1 : sc->lines[x] > sc->lines[y];
}

int nb_known_parse(struct nb_known *k, const char *buf, size_t len, char *err, size_t errlen)
{
	struct nb_known t;
	unsigned *lines = NULL, *idx = NULL, line = 0, dup_line = 0, dup_first = 0;
	size_t off = 0;
	int rc = NB_KNOWN_E_PARSE;

	nb_known_init(&t);
	if (k == NULL || (buf == NULL && len > 0)) {
		set_err(err, errlen, "invalid argument");
		return NB_KNOWN_E_INVAL;
	}
	if (len > NB_KNOWN_FILE_MAX) {
		set_err(err, errlen, "larger than %u bytes", NB_KNOWN_FILE_MAX);
		return NB_KNOWN_E_TOO_BIG;
	}
	for (;;) {
		const char *p, *name, *key;
		size_t n, name_len;
		int more = nb_keyfile_next_line(buf, len, &off, &line, NB_KNOWN_LINE_MAX, &p, &n, err, errlen);

		if (more < 0)
			goto fail;
		if (more == 0)
			break;
		name = p;
		for (name_len = 0; name_len < n && !is_blank(p[name_len]); name_len++)
			;
		if (name_len == n) {
			set_err(err, errlen, "line %u: expected \"<name> <key>\", a # comment or a blank line", line);
			goto fail;
		}
		if (!name_ok(name, name_len)) {
			set_err(err, errlen,
				"line %u: the name is not a peer id (1-%d of A-Z a-z 0-9 . _ -) nor a broker "
				"(@ and its numeric address:port, at most %d characters)",
				line, NB_KNOWN_ID_MAX, NB_KNOWN_NAME_MAX);
			goto fail;
		}
		key = name + name_len;
		n -= name_len;
		while (n > 0 && is_blank(key[0]))
			key++, n--;
		if (t.n == NB_KNOWN_MAX) {
			set_err(err, errlen, "line %u: more than %d entries", line, NB_KNOWN_MAX);
			rc = NB_KNOWN_E_TOO_BIG;
			goto fail;
		}
		if (grow(&t) != 0) {
			set_err(err, errlen, "out of memory");
			rc = NB_KNOWN_E_NOMEM;
			goto fail;
		}
		if (nb_key_from_text(key, n, t.e[t.n].key) != 0) {
			set_err(err, errlen, "line %u: the key is not %d characters of base64url (RFC 4648 section 5, "
					     "no padding)", line, NB_KEY_TEXT_LEN);
			goto fail;
		}
		memcpy(t.e[t.n].name, name, name_len);
		t.e[t.n].name[name_len] = '\0';
		if (t.n % 64 == 0) {
			unsigned *nl2 = realloc(lines, (t.n + 64) * sizeof(*lines));
			if (nl2 == NULL) {
				set_err(err, errlen, "out of memory");
				rc = NB_KNOWN_E_NOMEM;
				goto fail;
			}
			lines = nl2;
		}
		lines[t.n] = line;
		t.n++;
	}
	/* Duplicates: sort indexes by name; the earliest line that repeats a
	 * name is the one reported. */
	if (t.n > 1) {
		idx = malloc(t.n * sizeof(*idx));
		if (idx == NULL) {
			set_err(err, errlen, "out of memory");
			rc = NB_KNOWN_E_NOMEM;
			goto fail;
		}
		for (size_t i = 0; i < t.n; i++)
			idx[i] = (unsigned)i;
		struct sort_ctx sc = { .entries = t.e, .lines = lines };
		qsort_r(idx, t.n, sizeof(*idx), by_name_then_line, &sc);
		for (size_t i = 1; i < t.n; i++) {
			if (strcmp(t.e[idx[i]].name, t.e[idx[i - 1]].name) != 0)
				continue;
			if (dup_line == 0 || lines[idx[i]] < dup_line) {
				dup_line = lines[idx[i]];
				dup_first = lines[idx[i - 1]];
			}
		}
		if (dup_line != 0) {
			size_t j = 0;
			while (lines[j] != dup_line)
				j++;
			set_err(err, errlen, "line %u: \"%s\" is listed already (line %u)", dup_line, t.e[j].name,
				dup_first);
			goto fail;
		}
	}
	nb_known_free(k);
	*k = t;
	nb_known_init(&t);
	rc = 0;
fail:
	free(idx);
	free(lines);
	nb_known_free(&t);
	return rc;
}

size_t nb_known_format(const struct nb_known *k, char *out, size_t cap)
{
	size_t off = 0;

	/* Appends what fits; off counts everything. */
#define APPEND(s, n)                                                       \
	do {                                                               \
		size_t n_ = (n);                                           \
		if (off < cap)                                             \
			memcpy(out + off, (s), off + n_ < cap ? n_ : cap - off); \
		off += n_;                                                 \
	} while (0)

	if (k == NULL)
		return 0;
	APPEND(KNOWN_HEADER, sizeof(KNOWN_HEADER) - 1);
	for (size_t i = 0; i < k->n; i++) {
		char text[NB_KEY_TEXT_LEN + 1];
		nb_key_to_text(k->e[i].key, text);
		APPEND(k->e[i].name, strlen(k->e[i].name));
		APPEND(" ", 1);
		APPEND(text, NB_KEY_TEXT_LEN);
		APPEND("\n", 1);
	}
#undef APPEND
	if (cap > 0)
		out[off < cap ? off : cap - 1] = '\0';
	return off;
}

/* ---- I/O ------------------------------------------------------------------------------------ */

int nb_known_default_path(char *out, size_t cap)
{
	return nb_keyfile_config_path("natpeer", "known_peers", out, cap);
}

/* Read path into k, untouched on failure; missing = empty. */
static int load_unlocked(struct nb_known *k, const char *path, char *err, size_t errlen)
{
	char why[256];
	char *buf = NULL;
	struct stat st;
	size_t len = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ENOENT) {
			nb_known_free(k);
			return 0;
		}
		if (rc == -ELOOP) {
			set_err(err, errlen, "known-peers file %s is a symbolic link; refusing it", path);
			return NB_KNOWN_E_UNSAFE;
		}
		set_err(err, errlen, "cannot open known-peers file %s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		set_err(err, errlen, "cannot stat known-peers file %s: %s", path, strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		set_err(err, errlen, "known-peers file %s is not a regular file", path);
		rc = NB_KNOWN_E_UNSAFE;
		goto out;
	}
	if (st.st_uid != geteuid()) {
		set_err(err, errlen, "known-peers file %s is owned by uid %u, not by this user (uid %u)", path,
			(unsigned)st.st_uid, (unsigned)geteuid());
		rc = NB_KNOWN_E_UNSAFE;
		goto out;
	}
	if ((st.st_mode & 022) != 0) {
		set_err(err, errlen, "known-peers file %s is writable by group or others (mode %04o); chmod 600 it",
			path, (unsigned)(st.st_mode & 07777));
		rc = NB_KNOWN_E_UNSAFE;
		goto out;
	}
	if (st.st_size > (off_t)NB_KNOWN_FILE_MAX) {
		set_err(err, errlen, "known-peers file %s is larger than %u bytes", path, NB_KNOWN_FILE_MAX);
		rc = NB_KNOWN_E_TOO_BIG;
		goto out;
	}
	buf = malloc(NB_KNOWN_FILE_MAX + 1);
	if (buf == NULL) {
		rc = NB_KNOWN_E_NOMEM;
		set_err(err, errlen, "out of memory");
		goto out;
	}
	while (len < NB_KNOWN_FILE_MAX + 1) {
		ssize_t r = read(fd, buf + len, NB_KNOWN_FILE_MAX + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			set_err(err, errlen, "cannot read known-peers file %s: %s", path, strerror(-rc));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	rc = nb_known_parse(k, buf, len, why, sizeof(why));
	if (rc != 0)
		set_err(err, errlen, "known-peers file %s: %s", path, why);
out:
	free(buf);
	close(fd);
	return rc;
}

static int save_unlocked(const struct nb_known *k, const char *path, char *err, size_t errlen)
{
	size_t n = nb_known_format(k, NULL, 0);
	char *buf = malloc(n + 1);
	int rc;

	if (buf == NULL) {
		set_err(err, errlen, "out of memory");
		return NB_KNOWN_E_NOMEM;
	}
	nb_known_format(k, buf, n + 1);
	rc = nb_keyfile_write_private(path, buf, n, true, err, errlen);
	free(buf);
	return rc;
}

/* Take the exclusive lock beside path (making its directory). fd or an error. */
static int lock_file(const char *path, char *err, size_t errlen)
{
	char lock[PATH_MAX];
	int fd, rc, n;

	n = snprintf(lock, sizeof(lock), "%s.lock", path);
	if (n < 0 || (size_t)n >= sizeof(lock)) {
		set_err(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	rc = nb_keyfile_mkdirs(path);
	if (rc != 0) {
		set_err(err, errlen, "cannot create the directory of %s: %s", path, strerror(-rc));
		return rc;
	}
	fd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot open the lock file %s: %s", lock, strerror(-rc));
		return rc;
	}
	while (flock(fd, LOCK_EX) != 0) {
		if (errno == EINTR)
			continue;
		rc = -errno;
		set_err(err, errlen, "cannot lock %s: %s", lock, strerror(-rc));
		close(fd);
		return rc;
	}
	return fd;
}

int nb_known_load(struct nb_known *k, const char *path, char *err, size_t errlen)
{
	if (k == NULL || path == NULL || path[0] == '\0') {
		set_err(err, errlen, "invalid argument");
		return NB_KNOWN_E_INVAL;
	}
	/* rename() replaces the file whole: a reader needs no lock. */
	return load_unlocked(k, path, err, errlen);
}

int nb_known_save(const struct nb_known *k, const char *path, char *err, size_t errlen)
{
	int fd, rc;

	if (k == NULL || path == NULL || path[0] == '\0') {
		set_err(err, errlen, "invalid argument");
		return NB_KNOWN_E_INVAL;
	}
	fd = lock_file(path, err, errlen);
	if (fd < 0)
		return fd;
	rc = save_unlocked(k, path, err, errlen);
	close(fd);
	return rc;
}

int nb_known_update(const char *path, const char *name, const uint8_t *key, struct nb_known *k, char *err,
		    size_t errlen)
{
	struct nb_known t;
	int fd, rc;

	if (path == NULL || path[0] == '\0' || name == NULL) {
		set_err(err, errlen, "invalid argument");
		return NB_KNOWN_E_INVAL;
	}
	if (!nb_known_name_ok(name)) {
		set_err(err, errlen, "not a peer id or broker name");
		return NB_KNOWN_E_NAME;
	}
	nb_known_init(&t);
	fd = lock_file(path, err, errlen);
	if (fd < 0)
		return fd;
	rc = load_unlocked(&t, path, err, errlen);
	if (rc != 0)
		goto out;
	if (key != NULL) {
		rc = nb_known_set(&t, name, key);
		if (rc != 0) {
			set_err(err, errlen, "cannot add %s to %s: %s", name, path, nb_known_strerror(rc));
			goto out;
		}
	} else {
		(void)nb_known_forget(&t, name);
	}
	rc = save_unlocked(&t, path, err, errlen);
	if (rc == 0 && k != NULL) {
		nb_known_free(k);
		*k = t;
		nb_known_init(&t);
	}
out:
	close(fd);
	nb_known_free(&t);
	return rc;
}
