/* common/keyfile.c - the long-term X25519 private key file: a pure parser and formatter, and a thin load/create shell. */
#include "common/keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define KEY_WORD "private-key:"
#define KEY_WORD_LEN (sizeof(KEY_WORD) - 1)

const char *nb_keyfile_strerror(int err)
{
	switch (err) {
	case 0: return "ok";
	case NB_KEYFILE_E_PARSE: return "malformed key file";
	case NB_KEYFILE_E_TOO_BIG: return "key file too large";
	case NB_KEYFILE_E_UNSAFE: return "key file unsafe (type, owner or mode)";
	case NB_KEYFILE_E_NO_PATH: return "neither XDG_CONFIG_HOME nor HOME is set to an absolute path";
	case NB_KEYFILE_E_INVAL: return "invalid argument";
	default: break;
	}
	if (err < 0 && err > -4096)
		return strerror(-err);
	return nb_key_strerror(err);
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

/* ---- pure ---------------------------------------------------------------------- */

int nb_keyfile_next_line(const char *buf, size_t len, size_t *off, unsigned *line, size_t max,
			 const char **ret_p, size_t *ret_n, char *err, size_t errlen)
{
	while (*off < len) {
		const char *p = buf + *off;
		const char *nl = memchr(p, '\n', len - *off);
		size_t n = nl != NULL ? (size_t)(nl - p) : len - *off;

		*off += n + (nl != NULL ? 1u : 0u);
		(*line)++;
		if (memchr(p, '\0', n) != NULL) {
			set_err(err, errlen, "line %u: a NUL byte", *line);
			return NB_KEYFILE_E_PARSE;
		}
		if (n > max) {
			set_err(err, errlen, "line %u: longer than %zu bytes", *line, max);
			return NB_KEYFILE_E_PARSE;
		}
		if (n > 0 && p[n - 1] == '\r')
			n--;
		while (n > 0 && is_blank(p[0]))
			p++, n--;
		while (n > 0 && is_blank(p[n - 1]))
			n--;
		if (n == 0 || p[0] == '#')
			continue;
		*ret_p = p;
		*ret_n = n;
		return 1;
	}
	return 0;
}

int nb_keyfile_parse(const char *buf, size_t len, uint8_t ret_priv[NB_KEY_LEN], char *err, size_t errlen)
{
	uint8_t key[NB_KEY_LEN];
	unsigned line = 0, key_line = 0;
	size_t off = 0;
	int rc = NB_KEYFILE_E_PARSE;

	if ((buf == NULL && len > 0) || ret_priv == NULL) {
		set_err(err, errlen, "invalid argument");
		return NB_KEYFILE_E_INVAL;
	}
	if (len > NB_KEYFILE_MAX) {
		set_err(err, errlen, "the key file is larger than %d bytes", NB_KEYFILE_MAX);
		return NB_KEYFILE_E_TOO_BIG;
	}
	for (;;) {
		const char *p;
		size_t n;
		int more = nb_keyfile_next_line(buf, len, &off, &line, NB_KEYFILE_LINE_MAX, &p, &n, err, errlen);

		if (more < 0)
			goto fail;
		if (more == 0)
			break;
		/* Never echo the line: it may be a mistyped key. */
		if (n < KEY_WORD_LEN || memcmp(p, KEY_WORD, KEY_WORD_LEN) != 0) {
			set_err(err, errlen, "line %u: expected \"private-key: <key>\", a # comment or a blank line",
				line);
			goto fail;
		}
		if (key_line != 0) {
			set_err(err, errlen, "line %u: a second private-key line (the first is line %u)", line,
				key_line);
			goto fail;
		}
		p += KEY_WORD_LEN;
		n -= KEY_WORD_LEN;
		if (n == 0 || !is_blank(p[0])) {
			set_err(err, errlen, "line %u: expected a space and the key after \"private-key:\"", line);
			goto fail;
		}
		while (n > 0 && is_blank(p[0]))
			p++, n--;
		if (nb_key_from_text(p, n, key) != 0) {
			set_err(err, errlen,
				"line %u: the private key is not %d characters of base64url (RFC 4648 section 5, "
				"no padding)",
				line, NB_KEY_TEXT_LEN);
			goto fail;
		}
		key_line = line;
	}
	if (key_line == 0) {
		set_err(err, errlen, "no \"private-key:\" line");
		goto fail;
	}
	memcpy(ret_priv, key, NB_KEY_LEN);
	rc = 0;
fail:
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* Append s (n bytes) at *off if it fits with a NUL after it. */
static bool put(char *out, size_t cap, size_t *off, const char *s, size_t n)
{
	if (cap - *off <= n)
		return false;
	memcpy(out + *off, s, n);
	*off += n;
	out[*off] = '\0';
	return true;
}

size_t nb_keyfile_format(const uint8_t priv[NB_KEY_LEN], char *out, size_t cap)
{
	static const char head[] = "# natbroker long-term X25519 private key: keep it secret (mode 0600)\n"
				   "# public-key: ";
	uint8_t pub[NB_KEY_LEN];
	char text[NB_KEY_TEXT_LEN + 1];
	size_t off = 0;
	bool ok;

	if (out == NULL || cap == 0)
		return 0;
	out[0] = '\0';
	if (priv == NULL || nb_key_public(priv, pub) != 0)
		return 0;
	nb_key_to_text(pub, text);
	ok = put(out, cap, &off, head, sizeof(head) - 1) && put(out, cap, &off, text, NB_KEY_TEXT_LEN) &&
	     put(out, cap, &off, "\n" KEY_WORD " ", KEY_WORD_LEN + 2);
	nb_key_to_text(priv, text);
	ok = ok && put(out, cap, &off, text, NB_KEY_TEXT_LEN) && put(out, cap, &off, "\n", 1);
	OPENSSL_cleanse(text, sizeof(text));
	OPENSSL_cleanse(pub, sizeof(pub));
	if (!ok) {
		OPENSSL_cleanse(out, cap);
		out[0] = '\0';
		return 0;
	}
	return off;
}

/* ---- paths ------------------------------------------------------------------------ */

static bool component_ok(const char *s)
{
	return s != NULL && s[0] != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

int nb_keyfile_config_path(const char *name, const char *file, char *out, size_t cap)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	int n;

	if (!component_ok(name) || !component_ok(file) || out == NULL || cap == 0)
		return NB_KEYFILE_E_INVAL;
	/* XDG Base Directory: "If $XDG_CONFIG_HOME is either not set or empty,
	 * a default equal to $HOME/.config should be used"; "all paths ...
	 * must be absolute. If an implementation encounters a relative path
	 * ... it should consider the path invalid and ignore it." */
	if (xdg != NULL && xdg[0] == '/')
		n = snprintf(out, cap, "%s/%s/%s", xdg, name, file);
	else if (home != NULL && home[0] == '/')
		n = snprintf(out, cap, "%s/.config/%s/%s", home, name, file);
	else
		return NB_KEYFILE_E_NO_PATH;
	if (n < 0 || (size_t)n >= cap) {
		out[0] = '\0';
		return -ENAMETOOLONG;
	}
	return 0;
}

int nb_keyfile_default_path(const char *name, char *out, size_t cap)
{
	return nb_keyfile_config_path(name, "key", out, cap);
}

/* ---- I/O ------------------------------------------------------------------------------ */

int nb_keyfile_mkdirs(const char *path)
{
	char buf[PATH_MAX];
	size_t n;

	if (path == NULL || path[0] == '\0')
		return -EINVAL;
	n = strlen(path);
	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i < n; i++) {
		if (buf[i] != '/' || buf[i - 1] == '/')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return -errno;
		buf[i] = '/';
	}
	return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static void fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return;
	(void)fsync(fd); /* best effort: some file systems refuse it on a directory */
	close(fd);
}

int nb_keyfile_write_private(const char *path, const void *buf, size_t len, bool replace, char *err,
			     size_t errlen)
{
	char dir[PATH_MAX], tmp[PATH_MAX];
	const char *slash, *base;
	int fd = -1, rc = 0, n;
	bool tmp_exists = false;

	if (path == NULL || path[0] == '\0' || (buf == NULL && len > 0)) {
		set_err(err, errlen, "invalid argument");
		return -EINVAL;
	}
	slash = strrchr(path, '/');
	if (slash == NULL) {
		memcpy(dir, ".", 2);
		base = path;
	} else {
		size_t dn = slash == path ? 1 : (size_t)(slash - path);
		if (dn >= sizeof(dir)) {
			set_err(err, errlen, "%s: path too long", path);
			return -ENAMETOOLONG;
		}
		memcpy(dir, path, dn);
		dir[dn] = '\0';
		base = slash + 1;
	}
	if (!component_ok(base)) {
		set_err(err, errlen, "%s: not a file name", path);
		return -EINVAL;
	}
	n = snprintf(tmp, sizeof(tmp), "%s/.%s.tmp.XXXXXX", dir, base);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		set_err(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	/* mkostemp creates the file with mode 0600 (O_EXCL). */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot create a temporary file in %s: %s", dir, strerror(-rc));
		return rc;
	}
	tmp_exists = true;
	if (fchmod(fd, 0600) != 0 || (rc = write_all(fd, buf, len)) != 0 || fsync(fd) != 0) {
		if (rc == 0)
			rc = -errno;
		set_err(err, errlen, "cannot write %s: %s", tmp, strerror(-rc));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = -errno;
		set_err(err, errlen, "cannot write %s: %s", tmp, strerror(-rc));
		goto out;
	}
	fd = -1;
	if (replace) {
		if (rename(tmp, path) != 0) {
			rc = -errno;
			set_err(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(-rc));
			goto out;
		}
		tmp_exists = false;
	} else if (link(tmp, path) != 0) {
		rc = -errno;
		if (rc == -EPERM || rc == -EOPNOTSUPP || rc == -ENOSYS) {
			/* No hard links here (vfat, some FUSE): rename without replacing. */
			rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0 ? 0 : -errno;
			if (rc == 0)
				tmp_exists = false;
		}
		if (rc == -EEXIST) {
			set_err(err, errlen, "%s exists already", path);
			goto out;
		}
		if (rc != 0) {
			set_err(err, errlen, "cannot create %s: %s", path, strerror(-rc));
			goto out;
		}
	}
	fsync_dir(dir);
out:
	if (fd >= 0)
		close(fd);
	if (tmp_exists)
		unlink(tmp);
	return rc;
}

/* Read the whole (small) file: up to cap bytes; *ret_len = cap means "cap
 * or more". 0 or -errno. */
static int read_upto(int fd, char *buf, size_t cap, size_t *ret_len)
{
	size_t off = 0;

	while (off < cap) {
		ssize_t r = read(fd, buf + off, cap - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		off += (size_t)r;
	}
	*ret_len = off;
	return 0;
}

/* The file at path, checked and parsed. -ENOENT (err says so) when missing. */
static int load_existing(const char *path, uint8_t priv[NB_KEY_LEN], uint8_t pub[NB_KEY_LEN], char *err,
			 size_t errlen)
{
	char buf[NB_KEYFILE_MAX + 1], why[192];
	struct stat st;
	size_t len = 0;
	unsigned mode;
	int fd, rc;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ENOENT)
			set_err(err, errlen, "key file %s does not exist", path);
		else if (rc == -ELOOP) {
			set_err(err, errlen, "key file %s is a symbolic link; refusing it", path);
			rc = NB_KEYFILE_E_UNSAFE;
		} else
			set_err(err, errlen, "cannot open key file %s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		set_err(err, errlen, "cannot stat key file %s: %s", path, strerror(-rc));
		goto out;
	}
	mode = (unsigned)(st.st_mode & 07777);
	if (!S_ISREG(st.st_mode)) {
		set_err(err, errlen, "key file %s is not a regular file", path);
		rc = NB_KEYFILE_E_UNSAFE;
		goto out;
	}
	if (st.st_uid != geteuid()) {
		set_err(err, errlen, "key file %s is owned by uid %u, not by this user (uid %u)", path,
			(unsigned)st.st_uid, (unsigned)geteuid());
		rc = NB_KEYFILE_E_UNSAFE;
		goto out;
	}
	if ((mode & 077u) != 0) {
		set_err(err, errlen, "key file %s is %s by group or others (mode %04o); chmod 600 it", path,
			(mode & 044u) != 0 ? "readable" : "accessible", mode);
		rc = NB_KEYFILE_E_UNSAFE;
		goto out;
	}
	if (st.st_size > NB_KEYFILE_MAX) {
		set_err(err, errlen, "key file %s is larger than %d bytes", path, NB_KEYFILE_MAX);
		rc = NB_KEYFILE_E_TOO_BIG;
		goto out;
	}
	rc = read_upto(fd, buf, sizeof(buf), &len);
	if (rc != 0) {
		set_err(err, errlen, "cannot read key file %s: %s", path, strerror(-rc));
		goto out;
	}
	rc = nb_keyfile_parse(buf, len, priv, why, sizeof(why));
	if (rc != 0) {
		set_err(err, errlen, "key file %s: %s", path, why);
		goto out;
	}
	rc = nb_key_public(priv, pub);
	if (rc != 0)
		set_err(err, errlen, "key file %s: cannot compute the public key", path);
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return rc;
}

/* A new key at path. 0, -EEXIST when another process got there first, or an error. */
static int create_key(const char *path, uint8_t priv[NB_KEY_LEN], uint8_t pub[NB_KEY_LEN], char *err,
		      size_t errlen)
{
	char text[NB_KEYFILE_TEXT_MAX];
	size_t n;
	int rc;

	rc = nb_keyfile_mkdirs(path);
	if (rc != 0) {
		set_err(err, errlen, "cannot create the directory of key file %s: %s", path, strerror(-rc));
		return rc;
	}
	rc = nb_key_generate(priv, pub);
	if (rc != 0) {
		set_err(err, errlen, "cannot generate a key for %s", path);
		return rc;
	}
	n = nb_keyfile_format(priv, text, sizeof(text));
	if (n == 0) {
		set_err(err, errlen, "cannot format a key for %s", path);
		rc = NB_KEY_E_CRYPTO;
		goto out;
	}
	rc = nb_keyfile_write_private(path, text, n, false, err, errlen);
out:
	OPENSSL_cleanse(text, sizeof(text));
	return rc;
}

int nb_keyfile_load(const char *path, bool create, uint8_t ret_priv[NB_KEY_LEN], uint8_t ret_pub[NB_KEY_LEN],
		    bool *ret_created, char *err, size_t errlen)
{
	uint8_t priv[NB_KEY_LEN], pub[NB_KEY_LEN];
	bool created = false;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (path == NULL || path[0] == '\0' || ret_priv == NULL || ret_pub == NULL) {
		set_err(err, errlen, "invalid argument");
		return NB_KEYFILE_E_INVAL;
	}
	rc = load_existing(path, priv, pub, err, errlen);
	if (rc == -ENOENT && create) {
		rc = create_key(path, priv, pub, err, errlen);
		if (rc == 0)
			created = true;
		else if (rc == -EEXIST) /* lost a race: the other process's key it is */
			rc = load_existing(path, priv, pub, err, errlen);
	}
	if (rc == 0) {
		memcpy(ret_priv, priv, NB_KEY_LEN);
		memcpy(ret_pub, pub, NB_KEY_LEN);
		if (ret_created != NULL)
			*ret_created = created;
		if (err != NULL && errlen > 0)
			err[0] = '\0';
	}
	OPENSSL_cleanse(priv, sizeof(priv));
	OPENSSL_cleanse(pub, sizeof(pub));
	return rc;
}
