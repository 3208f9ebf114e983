/* common/keyfile.h - the long-term X25519 private key file of a peer or a broker: parse, format, load or create.
 *
 * The file is text, at most NB_KEYFILE_MAX bytes, one item per line ('\n';
 * a '\r' before it is dropped):
 *
 *    # natbroker long-term X25519 private key: keep it secret (mode 0600)
 *    # public-key: <43 characters: the public key>
 *    private-key: AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA
 *
 *  - blank lines (spaces and tabs only) and lines whose first non-blank
 *    character is '#' are ignored ("# public-key:" is only a comment: the
 *    public key is always computed from the private one);
 *  - exactly one line `private-key:` followed by one or more spaces or tabs
 *    and the key in the strict text form of common/keys.h (base64url without
 *    padding, 43 characters); spaces and tabs around a line are allowed;
 *  - anything else (another word, a second private-key line, a NUL byte, a
 *    line longer than NB_KEYFILE_LINE_MAX) refuses the file, and the error
 *    names the line.
 *
 * On disk the file must be a regular file (not a symbolic link: it is
 * opened with O_NOFOLLOW), owned by the effective uid, with no group or
 * other permission bits (chmod 600). A missing file can be created: the
 * parent directories are made (mode 0700), and the key is written to a temp
 * file (mode 0600) in the same directory, fsync'd and linked into place
 * without replacing anything, so two processes racing end with one key.
 *
 * Every buffer that held the private key is wiped (OPENSSL_cleanse).
 *
 * Errors: 0 ok; NB_KEYFILE_E_* below; -errno from the system (-ENOENT: the
 * file is missing and create is false); NB_KEY_E_CRYPTO from common/keys.h.
 * The err buffer, when given, always gets a sentence naming the path or line.
 */
#ifndef NB_COMMON_KEYFILE_H
#define NB_COMMON_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/keys.h"

#define NB_KEYFILE_MAX 4096      /* bytes in the file */
#define NB_KEYFILE_LINE_MAX 256  /* bytes in one line, without its '\n' */
#define NB_KEYFILE_TEXT_MAX 256  /* nb_keyfile_format's output, with its NUL */

enum nb_keyfile_err {
	NB_KEYFILE_E_PARSE = -4301,  /* malformed contents (err names the line) */
	NB_KEYFILE_E_TOO_BIG = -4302, /* over NB_KEYFILE_MAX bytes */
	NB_KEYFILE_E_UNSAFE = -4303, /* not a regular file, not ours, or group/other bits set */
	NB_KEYFILE_E_NO_PATH = -4304, /* no usable XDG_CONFIG_HOME or HOME */
	NB_KEYFILE_E_INVAL = -4305,  /* bad argument (name, path, buffer) */
};

const char *nb_keyfile_strerror(int err);

/* ---- pure --------------------------------------------------------------------- */

/* The next line of a text file of ours (the key file, the known-peers
 * file) that is not blank or a # comment: from *off in buf[0..len), without
 * its end of line (LF or CRLF) and the spaces and tabs around it, as a view
 * (*ret_p, *ret_n) into buf; *off and *line (1-based) advance. 1, 0 at the
 * end, or NB_KEYFILE_E_PARSE for a NUL byte or a line longer than max bytes
 * (err: "line N: ..."). */
int nb_keyfile_next_line(const char *buf, size_t len, size_t *off, unsigned *line, size_t max,
			 const char **ret_p, size_t *ret_n, char *err, size_t errlen);

/* Parse a key file's contents (buf need not be NUL-terminated). 0, or
 * NB_KEYFILE_E_PARSE / NB_KEYFILE_E_TOO_BIG with a sentence in err ("line 3:
 * ..."); ret_priv untouched on failure. */
int nb_keyfile_parse(const char *buf, size_t len, uint8_t ret_priv[NB_KEY_LEN], char *err, size_t errlen);

/* The file's text for priv: a comment saying what it is, the public key as
 * a comment, then the private-key line; NUL-terminated. Returns its length
 * without the NUL, or 0 if cap is too small (NB_KEYFILE_TEXT_MAX always
 * suffices) or the public key could not be computed; out is wiped then. */
size_t nb_keyfile_format(const uint8_t priv[NB_KEY_LEN], char *out, size_t cap);

/* ---- I/O (thin) ------------------------------------------------------------------ */

/* Load the key at path; when it is missing and create is true, make one
 * (see above). *ret_created says which happened. 0, or an error as above;
 * outputs untouched on failure. A racing creator's key wins: it is loaded. */
int nb_keyfile_load(const char *path, bool create, uint8_t ret_priv[NB_KEY_LEN], uint8_t ret_pub[NB_KEY_LEN],
		    bool *ret_created, char *err, size_t errlen);

/* $XDG_CONFIG_HOME/<name>/key when XDG_CONFIG_HOME is set and absolute, else
 * $HOME/.config/<name>/key (HOME set and absolute). name: one path
 * component (no '/', not "." or ".."). 0, NB_KEYFILE_E_NO_PATH,
 * NB_KEYFILE_E_INVAL, or -ENAMETOOLONG when cap is too small. */
int nb_keyfile_default_path(const char *name, char *out, size_t cap);

/* The same rule for another file of that directory: <config>/<name>/<file>. */
int nb_keyfile_config_path(const char *name, const char *file, char *out, size_t cap);

/* Helpers for other private files of the same directory (peer/known.c). */

/* Make each missing directory above path (mode 0700; existing ones are left
 * as they are). 0 or -errno. */
int nb_keyfile_mkdirs(const char *path);

/* Write len bytes to path atomically: a temp file of mode 0600 in the same
 * directory, fsync, then rename over path (replace) or link without
 * replacing (-EEXIST if path exists), then fsync the directory. The temp
 * file is always removed. 0 or -errno, with a sentence in err. */
int nb_keyfile_write_private(const char *path, const void *buf, size_t len, bool replace, char *err,
			     size_t errlen);

#endif
