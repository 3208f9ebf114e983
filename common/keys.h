/* common/keys.h - X25519 key pairs, Diffie-Hellman and their text form, over OpenSSL's libcrypto.
 *
 * Keys are 32 raw bytes (RFC 7748 §5: the u-coordinate, little-endian; a
 * private key is any 32 random bytes, clamped by X25519 itself). Their text
 * form is base64url without padding (RFC 4648 §5), always 43 characters:
 *
 *    byte:  0        1        2        ...  30       31
 *          +--------+--------+--------+   +--------+--------+
 *          |aaaaaabb|bbbbcccc|ccdddddd|...|        |wwwwxxxx|
 *          +--------+--------+--------+   +--------+--------+
 *    char:  0: aaaaaa  1: bbbbbb  2: cccccc  3: dddddd ... 42: xxxx00
 *
 * The last character carries 4 bits and two zero bits; a text whose unused
 * bits are not zero is refused, so every key has exactly one text form.
 */
#ifndef NB_COMMON_KEYS_H
#define NB_COMMON_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NB_KEY_LEN 32
#define NB_KEY_TEXT_LEN 43 /* base64url (RFC 4648 §5) without padding of 32 bytes */

enum nb_key_err {
	NB_KEY_E_INVAL = -4001,  /* bad argument or text */
	NB_KEY_E_CRYPTO = -4002, /* libcrypto failed */
	NB_KEY_E_ZERO = -4003,   /* all-zero DH result (a low-order public key) */
};

const char *nb_key_strerror(int err);

/* A fresh key pair: 32 bytes from RAND_bytes and its public key.
 * 0 or NB_KEY_E_CRYPTO; outputs untouched on failure. */
int nb_key_generate(uint8_t ret_priv[NB_KEY_LEN], uint8_t ret_pub[NB_KEY_LEN]);

/* X25519(priv, 9). 0 or NB_KEY_E_CRYPTO. */
int nb_key_public(const uint8_t priv[NB_KEY_LEN], uint8_t ret_pub[NB_KEY_LEN]);

/* X25519(priv, pub). RFC 7748 §6.1: "check whether the resulting shared
 * secret is the all-zero value and abort if so": NB_KEY_E_ZERO then.
 * 0, NB_KEY_E_ZERO or NB_KEY_E_CRYPTO; ret_shared untouched on failure.
 * One scalar multiplication (see keys.c for why it is not two). */
int nb_key_dh(const uint8_t priv[NB_KEY_LEN], const uint8_t pub[NB_KEY_LEN],
	      uint8_t ret_shared[NB_KEY_LEN]);

/* base64url without padding, NUL-terminated. */
void nb_key_to_text(const uint8_t key[NB_KEY_LEN], char out[NB_KEY_TEXT_LEN + 1]);

/* Strict inverse of nb_key_to_text: exactly 43 characters of A-Z a-z 0-9 -
 * _, canonical (the two unused low bits of the last character are zero).
 * s need not be NUL-terminated. 0 or NB_KEY_E_INVAL (ret_key untouched). */
int nb_key_from_text(const char *s, size_t len, uint8_t ret_key[NB_KEY_LEN]);

/* Constant-time equality (CRYPTO_memcmp). */
bool nb_key_equal(const uint8_t a[NB_KEY_LEN], const uint8_t b[NB_KEY_LEN]);

#endif
