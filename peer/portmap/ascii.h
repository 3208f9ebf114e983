/* peer/portmap/ascii.h - the UPnP codecs' text helpers: ASCII case-insensitive
 * comparison (no locale), versioned URNs, display copies.
 *
 * Pure and header-only: no I/O, no allocation. Lengths are bytes; a (s, len)
 * argument is not NUL-terminated, a plain char * one is. */
#ifndef NB_PEER_ASCII_H
#define NB_PEER_ASCII_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* 'A'..'Z' to 'a'..'z'; every other byte as is (UTF-8 included). */
static inline char nb_ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Do the len bytes at s start with prefix, ignoring ASCII case? */
static inline bool nb_ascii_case_prefix(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	if (len < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (nb_ascii_lower(s[i]) != nb_ascii_lower(prefix[i]))
			return false;
	return true;
}

/* Are the len bytes at s the string t, ignoring ASCII case? */
static inline bool nb_ascii_case_equal(const char *s, size_t len, const char *t)
{
	return strlen(t) == len && nb_ascii_case_prefix(s, len, t);
}

/* Are the strings s and t equal, ignoring ASCII case? */
static inline bool nb_ascii_case_streq(const char *s, const char *t)
{
	for (; *s != '\0' && *t != '\0'; s++, t++)
		if (nb_ascii_lower(*s) != nb_ascii_lower(*t))
			return false;
	return *s == '\0' && *t == '\0';
}

/* The N of "PREFIX N" (prefix compared case-insensitively; N of 1 to 3
 * digits without a leading zero, so 1..999), or 0. */
static inline int nb_ascii_urn_version(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	int v = 0;

	if (len <= n || len - n > 3 || s[n] == '0' || !nb_ascii_case_prefix(s, len, prefix))
		return 0;
	for (size_t i = n; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* Display copy of the len bytes at s into dst[cap] (cap >= 1): at most
 * cap - 1 bytes, cut at a UTF-8 boundary, control characters and DEL
 * replaced by '?', NUL-terminated. */
static inline void nb_ascii_copy_display(char *dst, size_t cap, const char *s, size_t len)
{
	size_t n = len < cap - 1 ? len : cap - 1;

	if (n < len)
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	for (size_t i = 0; i < n; i++)
		dst[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	dst[n] = '\0';
}

#endif
