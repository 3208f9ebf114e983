/* peer/known.h - the known-peers file (trust on first use, like ssh's known_hosts): name -> X25519 public key.
 *
 * Text, one entry per line ('\n'; a '\r' before it is dropped):
 *
 *    # natpeer known peers: <name> <public key>, one per line (trust on first use)
 *    alice AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA
 *    @203.0.113.1:3478 gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp8
 *    @[2001:db8::1]:3478 __z59vPw7ern5OHe29jV0s_MycbDwL26t7SxrquopaI
 *
 *  - blank lines and lines whose first non-blank character is '#' are
 *    ignored (and not kept: nb_known_format writes its own header);
 *  - an entry is a name, one or more spaces or tabs, and the key in the
 *    strict text form of common/keys.h (base64url, 43 characters);
 *  - a name is a peer id, 1-32 characters of A-Z a-z 0-9 . _ -, or a
 *    broker, '@' and its numeric address with port exactly as
 *    nb_addr_format writes it ("@203.0.113.1:3478", "@[2001:db8::1]:3478"),
 *    at most NB_KNOWN_NAME_MAX characters in all;
 *  - at most NB_KNOWN_MAX entries, NB_KNOWN_FILE_MAX bytes, and
 *    NB_KNOWN_LINE_MAX bytes per line. A malformed line, a duplicate name
 *    or a cap exceeded refuses the whole file (nothing is half-loaded), and
 *    the error names the line.
 *
 * On disk: a regular file (opened with O_NOFOLLOW), owned by the effective
 * uid and not writable by group or others (anyone who can write it can make
 * us trust a key). A missing file is an empty list. Saving writes a temp
 * file (0600) beside it, fsyncs and renames it over the old one, under an
 * exclusive flock on "<path>.lock": nb_known_update() reads the file under
 * that lock, applies one change and writes it back, so two natpeer
 * processes adding different names both survive.
 *
 * Errors: 0 ok; NB_KNOWN_E_* below; -ENOSPC (full), -ENOENT (no such name);
 * -errno from the system; the err buffer, when given, gets a sentence.
 */
#ifndef NB_PEER_KNOWN_H
#define NB_PEER_KNOWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/keys.h"

#define NB_KNOWN_MAX 4096             /* entries */
#define NB_KNOWN_FILE_MAX (1u << 20)  /* bytes in the file */
#define NB_KNOWN_LINE_MAX 256         /* bytes in a line, without its '\n' */
#define NB_KNOWN_NAME_MAX 64          /* characters in a name */
#define NB_KNOWN_ID_MAX 32            /* characters in a peer id */

enum nb_known_err {
	NB_KNOWN_E_PARSE = -4401,   /* malformed line or duplicate name (err names the line) */
	NB_KNOWN_E_TOO_BIG = -4402, /* over NB_KNOWN_FILE_MAX bytes or NB_KNOWN_MAX entries */
	NB_KNOWN_E_NAME = -4403,    /* not a valid peer id or broker name */
	NB_KNOWN_E_UNSAFE = -4404,  /* not a regular file, not ours, or writable by others */
	NB_KNOWN_E_INVAL = -4405,   /* bad argument */
	NB_KNOWN_E_NOMEM = -4406,   /* out of memory */
};

const char *nb_known_strerror(int err);

struct nb_known_entry {
	char name[NB_KNOWN_NAME_MAX + 1];
	uint8_t key[NB_KEY_LEN];
};

/* Entries in file order; e grows on the heap up to NB_KNOWN_MAX. */
struct nb_known {
	struct nb_known_entry *e;
	size_t n, cap;
};

/* An empty list; nb_known_free releases it (and accepts a zeroed or freed one). */
void nb_known_init(struct nb_known *k);
void nb_known_free(struct nb_known *k);

/* Is s (NUL-terminated) a valid name? */
bool nb_known_name_ok(const char *s);
/* The broker name of addr ("@203.0.113.1:3478"). 0, or NB_KNOWN_E_NAME. */
int nb_known_broker_name(const struct nb_addr *addr, char out[NB_KNOWN_NAME_MAX + 1]);

/* ---- pure ---------------------------------------------------------------------- */

/* Parse a whole file (buf need not be NUL-terminated) into k, replacing its
 * entries; on failure k is untouched. */
int nb_known_parse(struct nb_known *k, const char *buf, size_t len, char *err, size_t errlen);
/* The key for name, or NULL. Valid until k changes. */
const uint8_t *nb_known_lookup(const struct nb_known *k, const char *name);
/* Add (at the end) or replace. NB_KNOWN_E_NAME, -ENOSPC at NB_KNOWN_MAX, NB_KNOWN_E_NOMEM. */
int nb_known_set(struct nb_known *k, const char *name, const uint8_t key[NB_KEY_LEN]);
/* Remove; -ENOENT if absent. The others keep their order. */
int nb_known_forget(struct nb_known *k, const char *name);
/* The file's text: a header comment, then one line per entry in order,
 * NUL-terminated. Returns the length without the NUL; if that is >= cap,
 * nothing useful was written (call with cap 0 to size a buffer). */
size_t nb_known_format(const struct nb_known *k, char *out, size_t cap);

/* ---- I/O (thin) ------------------------------------------------------------------ */

/* Read path into k (a missing file is an empty list). On failure k is untouched. */
int nb_known_load(struct nb_known *k, const char *path, char *err, size_t errlen);
/* Write k to path atomically (directory made 0700 if missing), under the lock. */
int nb_known_save(const struct nb_known *k, const char *path, char *err, size_t errlen);
/* Under the lock: load path, set name = key (key NULL: forget name; absent
 * is not an error), save. k, if not NULL, gets the list as saved. The safe
 * way to change the file while other processes may too. */
int nb_known_update(const char *path, const char *name, const uint8_t *key, struct nb_known *k, char *err,
		    size_t errlen);
/* $XDG_CONFIG_HOME/natpeer/known_peers or ~/.config/natpeer/known_peers. */
int nb_known_default_path(char *out, size_t cap);

#endif
