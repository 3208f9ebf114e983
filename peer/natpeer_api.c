/* peer/natpeer_api.c - libnatpeer's pure parts: the configuration setters, the key and known-peers helpers, natpeer_strerror (natpeer.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "natpeer.h"
#include "common/keyfile.h"
#include "common/keys.h"
#include "peer/known.h"
#include "peer/natpeer_config.h"
#include "peer/portmap/portmap_run.h"
#include "peer/portmap/ssdp.h"

_Static_assert(NATPEER_PORTMAP_PCP == NB_PM_PCP && NATPEER_PORTMAP_NATPMP == NB_PM_NATPMP &&
		       NATPEER_PORTMAP_UPNP == NB_PM_UPNP,
	       "portmap protocol bits");

static const struct {
	int code;
	const char *text;
} errors[] = {
	{ NATPEER_E_INVAL, "invalid argument" },
	{ NATPEER_E_NOMEM, "out of memory" },
	{ NATPEER_E_STATE, "not in this state (already started, stopped, or not started)" },
	{ NATPEER_E_FULL, "no room for more" },
	{ NATPEER_E_TOOBIG, "datagram too big" },
	{ NATPEER_E_NOCHAN, "no such channel" },
	{ NATPEER_E_NOTREADY, "the peer has not been heard on the channel yet" },
	{ NATPEER_E_CONFIG, "the configuration lacks the key, the broker or the id" },
	{ NATPEER_E_SYSTEM, "the system refused (socket, route or randomness)" },
	{ NATPEER_E_KEYFILE, "key file error" },
	{ NATPEER_E_KNOWN, "known-peers file error" },
	{ NATPEER_E_NOTFOUND, "no such name" },
	{ NATPEER_E_KEY, "the key is not the one pinned or demanded" },
	{ NATPEER_E_BROKER, "the broker refused, or did not answer" },
	{ NATPEER_E_NOPATH, "neither $XDG_CONFIG_HOME nor $HOME is set" },
	{ NATPEER_E_PORTMAP, "the router made no port mapping" },
	{ NATPEER_E_TIMEOUT, "not done within the timeout" },
};

const char *natpeer_strerror(int err)
{
	if (err == 0)
		return "success";
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		if (errors[i].code == err)
			return errors[i].text;
	return "unknown error";
}

/* ---- Keys ---------------------------------------------------------------------- */

int natpeer_key_generate(uint8_t ret_priv[NATPEER_KEY_LEN], uint8_t ret_pub[NATPEER_KEY_LEN])
{
	if (ret_priv == NULL || ret_pub == NULL)
		return NATPEER_E_INVAL;
	return nb_key_generate(ret_priv, ret_pub) == 0 ? 0 : NATPEER_E_SYSTEM;
}

int natpeer_key_public(const uint8_t priv[NATPEER_KEY_LEN], uint8_t ret_pub[NATPEER_KEY_LEN])
{
	if (priv == NULL || ret_pub == NULL)
		return NATPEER_E_INVAL;
	return nb_key_public(priv, ret_pub) == 0 ? 0 : NATPEER_E_INVAL;
}

void natpeer_key_to_text(const uint8_t key[NATPEER_KEY_LEN], char out[NATPEER_KEY_TEXT_LEN + 1])
{
	if (key == NULL || out == NULL)
		return;
	nb_key_to_text(key, out);
}

int natpeer_key_from_text(const char *text, uint8_t ret_key[NATPEER_KEY_LEN])
{
	if (text == NULL || ret_key == NULL)
		return NATPEER_E_INVAL;
	return nb_key_from_text(text, strlen(text), ret_key) == 0 ? 0 : NATPEER_E_INVAL;
}

static void put_err(char *err, size_t err_len, const char *text)
{
	if (err != NULL && err_len > 0) {
		size_t n = strnlen(text, err_len - 1);
		memcpy(err, text, n);
		err[n] = '\0';
	}
}

int natpeer_keyfile_load(const char *path, int create, uint8_t ret_priv[NATPEER_KEY_LEN],
			 uint8_t ret_pub[NATPEER_KEY_LEN], int *ret_created, char *err, size_t err_len)
{
	bool created = false;
	int rc;

	if (path == NULL || path[0] == '\0' || ret_priv == NULL || ret_pub == NULL) {
		put_err(err, err_len, "natpeer_keyfile_load: no path or no key buffer");
		return NATPEER_E_INVAL;
	}
	rc = nb_keyfile_load(path, create != 0, ret_priv, ret_pub, &created, err, err_len);
	if (rc == NB_KEYFILE_E_INVAL)
		return NATPEER_E_INVAL;
	if (rc != 0)
		return NATPEER_E_KEYFILE;
	if (ret_created != NULL)
		*ret_created = created;
	return 0;
}

int natpeer_keyfile_save(const char *path, const uint8_t priv[NATPEER_KEY_LEN], char *err, size_t err_len)
{
	char text[NB_KEYFILE_TEXT_MAX];
	size_t n;
	int rc;

	if (path == NULL || path[0] == '\0' || priv == NULL) {
		put_err(err, err_len, "natpeer_keyfile_save: no path or no key");
		return NATPEER_E_INVAL;
	}
	n = nb_keyfile_format(priv, text, sizeof(text));
	if (n == 0) {
		put_err(err, err_len, "natpeer_keyfile_save: not a valid private key");
		return NATPEER_E_INVAL;
	}
	rc = nb_keyfile_mkdirs(path);
	if (rc == 0)
		rc = nb_keyfile_write_private(path, text, n, false, err, err_len);
	else
		put_err(err, err_len, "natpeer_keyfile_save: cannot make the key file's directory");
	OPENSSL_cleanse(text, sizeof(text));
	return rc == 0 ? 0 : NATPEER_E_KEYFILE;
}

int natpeer_keyfile_default_path(char *out, size_t cap)
{
	int rc;

	if (out == NULL || cap == 0)
		return NATPEER_E_INVAL;
	rc = nb_keyfile_default_path("natpeer", out, cap);
	if (rc == NB_KEYFILE_E_NO_PATH)
		return NATPEER_E_NOPATH;
	return rc == 0 ? 0 : NATPEER_E_INVAL;
}

int natpeer_known_forget(const char *path, const char *name, uint8_t ret_key[NATPEER_KEY_LEN], char *err,
			 size_t err_len)
{
	struct nb_known k;
	const uint8_t *key;
	uint8_t copy[NB_KEY_LEN];
	int rc;

	if (path == NULL || path[0] == '\0' || name == NULL || !nb_known_name_ok(name)) {
		put_err(err, err_len, "not a peer id, or @IP:PORT for a broker");
		return NATPEER_E_INVAL;
	}
	nb_known_init(&k);
	if (nb_known_load(&k, path, err, err_len) != 0)
		return NATPEER_E_KNOWN;
	key = nb_known_lookup(&k, name);
	if (key == NULL) {
		nb_known_free(&k);
		put_err(err, err_len, "no such name");
		return NATPEER_E_NOTFOUND;
	}
	memcpy(copy, key, sizeof(copy));
	nb_known_free(&k);
	rc = nb_known_update(path, name, NULL, NULL, err, err_len);
	if (rc == -ENOENT) /* gone meanwhile */
		rc = NATPEER_E_NOTFOUND;
	else if (rc != 0)
		rc = NATPEER_E_KNOWN;
	else if (ret_key != NULL)
		memcpy(ret_key, copy, sizeof(copy));
	return rc;
}

/* ---- Configuration ------------------------------------------------------------- */

int natpeer_config_new(natpeer_config **ret)
{
	natpeer_config *c;

	if (ret == NULL)
		return NATPEER_E_INVAL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NATPEER_E_NOMEM;
	c->upnp = true;
	c->log_level = NATPEER_LOG_INFO;
	*ret = c;
	return 0;
}

void natpeer_config_free(natpeer_config *cfg)
{
	if (cfg == NULL)
		return;
	OPENSSL_cleanse(cfg, sizeof(*cfg));
	free(cfg);
}

int natpeer_config_set_key(natpeer_config *cfg, const uint8_t priv[NATPEER_KEY_LEN])
{
	uint8_t pub[NB_KEY_LEN];

	if (cfg == NULL || priv == NULL || nb_key_public(priv, pub) != 0)
		return NATPEER_E_INVAL;
	memcpy(cfg->priv, priv, NB_KEY_LEN);
	memcpy(cfg->pub, pub, NB_KEY_LEN);
	cfg->has_key = true;
	return 0;
}

/* A peer id: 1-32 of A-Z a-z 0-9 . _ - */
static bool id_ok(const char *s)
{
	size_t n = strnlen(s, NB_CTRL_ID_MAX + 1);

	if (n < 1 || n > NB_CTRL_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* 1-64 printable ASCII. */
static bool token_ok(const char *s)
{
	size_t n = strnlen(s, NB_CTRL_TOKEN_MAX + 1);

	if (n < 1 || n > NB_CTRL_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

int natpeer_config_set_id(natpeer_config *cfg, const char *id)
{
	if (cfg == NULL || id == NULL || !id_ok(id))
		return NATPEER_E_INVAL;
	memcpy(cfg->id, id, strlen(id) + 1);
	return 0;
}

int natpeer_config_add_broker(natpeer_config *cfg, const char *addr)
{
	struct nb_addr b;

	if (cfg == NULL || addr == NULL || nb_addr_parse(addr, true, &b) != 0)
		return NATPEER_E_INVAL;
	if (b.port == 0)
		b.port = NATPEER_DEFAULT_BROKER_PORT;
	if (cfg->broker.family == NB_AF_NONE) {
		cfg->broker = b;
		return 0;
	}
	if (cfg->has_broker2)
		return NATPEER_E_FULL;
	if (b.family == cfg->broker.family)
		return NATPEER_E_INVAL;
	cfg->broker2 = b;
	cfg->has_broker2 = true;
	return 0;
}

int natpeer_config_set_broker_key(natpeer_config *cfg, const uint8_t pub[NATPEER_KEY_LEN])
{
	if (cfg == NULL || pub == NULL)
		return NATPEER_E_INVAL;
	memcpy(cfg->broker_key, pub, NB_KEY_LEN);
	cfg->has_broker_key = true;
	return 0;
}

int natpeer_config_set_token(natpeer_config *cfg, const char *token)
{
	if (cfg == NULL || (token != NULL && !token_ok(token)))
		return NATPEER_E_INVAL;
	memset(cfg->token, 0, sizeof(cfg->token));
	if (token != NULL)
		memcpy(cfg->token, token, strlen(token));
	return 0;
}

int natpeer_config_set_admin_token(natpeer_config *cfg, const char *token)
{
	if (cfg == NULL || (token != NULL && !token_ok(token)))
		return NATPEER_E_INVAL;
	memset(cfg->admin, 0, sizeof(cfg->admin));
	if (token != NULL)
		memcpy(cfg->admin, token, strlen(token));
	return 0;
}

int natpeer_config_set_known_peers(natpeer_config *cfg, const char *path)
{
	size_t n = path != NULL ? strnlen(path, sizeof(cfg->known_path)) : 0;

	if (cfg == NULL || n >= sizeof(cfg->known_path))
		return NATPEER_E_INVAL;
	memset(cfg->known_path, 0, sizeof(cfg->known_path));
	if (n > 0)
		memcpy(cfg->known_path, path, n);
	return 0;
}

int natpeer_config_add_allow(natpeer_config *cfg, const char *name_or_key)
{
	uint8_t k[NB_KEY_LEN];

	if (cfg == NULL || name_or_key == NULL)
		return NATPEER_E_INVAL;
	if (!id_ok(name_or_key) && nb_key_from_text(name_or_key, strlen(name_or_key), k) != 0)
		return NATPEER_E_INVAL;
	if (cfg->n_allow == NATPEER_MAX_ALLOW)
		return NATPEER_E_FULL;
	memcpy(cfg->allow[cfg->n_allow++], name_or_key, strlen(name_or_key) + 1);
	return 0;
}

int natpeer_config_set_port(natpeer_config *cfg, uint16_t port)
{
	if (cfg == NULL)
		return NATPEER_E_INVAL;
	cfg->port = port;
	return 0;
}

int natpeer_config_set_flags(natpeer_config *cfg, unsigned flags)
{
	if (cfg == NULL || (flags & ~NATPEER_FLAGS_ALL) != 0)
		return NATPEER_E_INVAL;
	cfg->no_relay = (flags & NATPEER_NO_RELAY) != 0;
	cfg->upnp = (flags & NATPEER_NO_PORTMAP) == 0;
	cfg->one_family = (flags & NATPEER_ONE_FAMILY) != 0;
	cfg->ipv6_temporary = (flags & NATPEER_IPV6_TEMPORARY) != 0;
	cfg->upnp_flags = (flags & NATPEER_UPNP_ANY_HOST) != 0 ? NB_SSDP_ANY_HOST : 0;
	return 0;
}

int natpeer_config_set_portmap(natpeer_config *cfg, unsigned protocols, uint32_t check_s)
{
	if (cfg == NULL || (protocols & ~(NB_PM_PCP | NB_PM_NATPMP | NB_PM_UPNP)) != 0 || check_s > 3600)
		return NATPEER_E_INVAL;
	cfg->portmap_protocols = protocols;
	cfg->upnp_check_s = check_s;
	return 0;
}

int natpeer_config_set_punch_timeout(natpeer_config *cfg, uint32_t ms)
{
	if (cfg == NULL || ms > 3600000)
		return NATPEER_E_INVAL;
	cfg->timeout_ms = ms;
	return 0;
}

int natpeer_config_set_birthday(natpeer_config *cfg, uint32_t sockets, uint32_t rate)
{
	if (cfg == NULL || sockets > NB_CTRL_BDAY_SOCKETS_MAX || rate > NB_CTRL_BDAY_RATE_MAX)
		return NATPEER_E_INVAL;
	cfg->bday_sockets = sockets;
	cfg->bday_rate = rate;
	return 0;
}

int natpeer_config_set_log_level(natpeer_config *cfg, int level)
{
	if (cfg == NULL || level < NATPEER_LOG_ERROR || level > NATPEER_LOG_DEBUG)
		return NATPEER_E_INVAL;
	cfg->log_level = level;
	return 0;
}

int natpeer_config_set_callbacks(natpeer_config *cfg, const natpeer_callbacks *cbs, size_t size, void *arg)
{
	if (cfg == NULL || (cbs == NULL && size != 0) || size > sizeof(natpeer_callbacks))
		return NATPEER_E_INVAL;
	memset(&cfg->cb, 0, sizeof(cfg->cb));
	if (cbs != NULL)
		memcpy(&cfg->cb, cbs, size);
	cfg->cb_arg = arg;
	return 0;
}
