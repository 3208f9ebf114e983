/* natpeer.h - libnatpeer: NAT check, registration with a natbroker, and
 * authenticated UDP paths to other peers (hole punching, else a TURN
 * relay), as an embeddable C library on a libuv loop. docs/library.md has
 * the API by example, the threading rule and the lifetimes.
 *
 * The rules in short:
 *  - one loop thread: every call, and every callback, on the thread that
 *    runs the loop given to natpeer_create() (or calls natpeer_pump_run());
 *  - no global state, no signals, nothing written to stdout or stderr:
 *    lines go to the log callback;
 *  - functions return 0 (or a count) or a negative NATPEER_E_* code;
 *    natpeer_strerror() names each;
 *  - strings and buffers passed in are copied before the call returns;
 *    pointers passed to a callback are valid only during that callback.
 *
 *   app                     libnatpeer                       broker / peer
 *    |  natpeer_listen() ---> NAT tests, register ----------->  broker
 *    |  <--- registered       plans pushed by the broker <----  broker
 *    |  <--- connected(ch)    punch + Noise IK handshake <---->  peer
 *    |  natpeer_send(ch) ---> sealed datagram --------------->  peer
 *    |  <--- data(ch)         sealed datagram <---------------  peer
 */
#ifndef NATPEER_H
#define NATPEER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NATPEER_BUILDING)
#define NATPEER_API __attribute__((visibility("default")))
#else
#define NATPEER_API
#endif

#define NATPEER_VERSION_MAJOR 0
#define NATPEER_VERSION_MINOR 1
#define NATPEER_VERSION_PATCH 0

#define NATPEER_KEY_LEN 32       /* an X25519 key, private or public */
#define NATPEER_KEY_TEXT_LEN 43  /* its text form: base64url, no padding */
#define NATPEER_ID_MAX 32        /* a peer name: 1..32 of A-Z a-z 0-9 . _ - */
#define NATPEER_TOKEN_MAX 64     /* a token: 1..64 printable ASCII */
#define NATPEER_MAX_DATAGRAM 1371 /* bytes in one natpeer_send() datagram */
#define NATPEER_MAX_CHANNELS 16  /* channel ids are 0..NATPEER_MAX_CHANNELS-1 */
#define NATPEER_MAX_ALLOW 64     /* natpeer_config_add_allow() entries */
#define NATPEER_DEFAULT_BROKER_PORT 3478
#define NATPEER_BDAY_SOCKETS_MAX 1024 /* natpeer_config_set_birthday() */
#define NATPEER_BDAY_RATE_MAX 10000

/* Errors: negative, in their own range. */
enum natpeer_err {
	NATPEER_E_INVAL = -7001,     /* a bad argument (malformed name, key, address, ...) */
	NATPEER_E_NOMEM = -7002,     /* out of memory */
	NATPEER_E_STATE = -7003,     /* not now: already started, stopped, or not started */
	NATPEER_E_FULL = -7004,      /* no room: too many brokers, allow rules, ... */
	NATPEER_E_TOOBIG = -7005,    /* a datagram over NATPEER_MAX_DATAGRAM bytes */
	NATPEER_E_NOCHAN = -7006,    /* no such channel (never connected, or closed) */
	NATPEER_E_NOTREADY = -7007,  /* the channel is connected, the peer not yet heard */
	NATPEER_E_CONFIG = -7008,    /* the config lacks something the operation needs */
	NATPEER_E_SYSTEM = -7009,    /* the system refused (socket, route, randomness) */
	NATPEER_E_KEYFILE = -7010,   /* the key file is malformed, unsafe or unwritable */
	NATPEER_E_KNOWN = -7011,     /* the known-peers file is malformed, unsafe or unwritable */
	NATPEER_E_NOTFOUND = -7012,  /* no such name (natpeer_known_forget) */
	NATPEER_E_KEY = -7013,       /* a key does not match the one pinned or demanded */
	NATPEER_E_BROKER = -7014,    /* the broker refused, or never answered */
	NATPEER_E_NOPATH = -7015,    /* no $XDG_CONFIG_HOME or $HOME for the default path */
	NATPEER_E_PORTMAP = -7016,   /* natpeer_map: the router made no port mapping */
	NATPEER_E_TIMEOUT = -7017,   /* natpeer_netcheck / natpeer_map: not done within the timeout */
};
NATPEER_API const char *natpeer_strerror(int err);

/* ---- Keys ---------------------------------------------------------------------- */

/* A fresh key pair. 0 or NATPEER_E_SYSTEM. */
NATPEER_API int natpeer_key_generate(uint8_t ret_priv[NATPEER_KEY_LEN], uint8_t ret_pub[NATPEER_KEY_LEN]);
/* The public key of priv. 0 or NATPEER_E_INVAL. */
NATPEER_API int natpeer_key_public(const uint8_t priv[NATPEER_KEY_LEN], uint8_t ret_pub[NATPEER_KEY_LEN]);
/* The text form (what `natpeer key` prints, what peers pin): 43 characters
 * and a NUL in out. */
NATPEER_API void natpeer_key_to_text(const uint8_t key[NATPEER_KEY_LEN], char out[NATPEER_KEY_TEXT_LEN + 1]);
/* The text form back: 0, or NATPEER_E_INVAL (ret_key untouched). */
NATPEER_API int natpeer_key_from_text(const char *text, uint8_t ret_key[NATPEER_KEY_LEN]);
/* Load the private key file at path (the key file format of natpeer(1));
 * with create != 0 a missing file is created (mode 0600, parents 0700).
 * *ret_created (may be NULL) says which. 0, NATPEER_E_KEYFILE or
 * NATPEER_E_INVAL, with a sentence in err (may be NULL). */
NATPEER_API int natpeer_keyfile_load(const char *path, int create, uint8_t ret_priv[NATPEER_KEY_LEN],
				     uint8_t ret_pub[NATPEER_KEY_LEN], int *ret_created, char *err, size_t err_len);
/* Write priv to a new key file at path (never replaces one). 0,
 * NATPEER_E_KEYFILE or NATPEER_E_INVAL, with a sentence in err. */
NATPEER_API int natpeer_keyfile_save(const char *path, const uint8_t priv[NATPEER_KEY_LEN], char *err,
				     size_t err_len);
/* natpeer(1)'s default key file, $XDG_CONFIG_HOME/natpeer/key (else
 * ~/.config/natpeer/key). 0, NATPEER_E_NOPATH, or NATPEER_E_INVAL (cap too small). */
NATPEER_API int natpeer_keyfile_default_path(char *out, size_t cap);
/* Remove name (a peer id, or "@IP:PORT" for a broker) from the known-peers
 * file at path; its key in *ret_key (may be NULL). 0, NATPEER_E_INVAL (not
 * a valid name), NATPEER_E_NOTFOUND, or NATPEER_E_KNOWN, with a sentence in err. */
NATPEER_API int natpeer_known_forget(const char *path, const char *name, uint8_t ret_key[NATPEER_KEY_LEN],
				     char *err, size_t err_len);

/* ---- Configuration ------------------------------------------------------------- */

typedef struct natpeer_config natpeer_config;

/* Log levels. Lines of level ERROR and INFO that report progress or a
 * failure ("registered as ...", "natpeer: ...") always come; the library's
 * diagnostic lines ("debug agent: ...") only up to the configured level. */
enum natpeer_log_level {
	NATPEER_LOG_ERROR = 0,
	NATPEER_LOG_WARN = 1,
	NATPEER_LOG_INFO = 2,
	NATPEER_LOG_DEBUG = 3,
};

/* natpeer_config_set_flags() */
#define NATPEER_NO_RELAY 0x1u       /* never relay through TURN (a relay plan fails) */
#define NATPEER_NO_PORTMAP 0x2u     /* ask the router for no port mapping */
#define NATPEER_ONE_FAMILY 0x4u     /* do not register the broker's other IP family */
#define NATPEER_IPV6_TEMPORARY 0x8u /* listen: a temporary IPv6 source address will do */
#define NATPEER_UPNP_ANY_HOST 0x10u /* tests only: accept an IGD LOCATION on any host */
#define NATPEER_FLAGS_ALL 0x1fu

/* natpeer_config_set_portmap() protocols */
#define NATPEER_PORTMAP_PCP 0x1u
#define NATPEER_PORTMAP_NATPMP 0x2u
#define NATPEER_PORTMAP_UPNP 0x4u

typedef struct natpeer natpeer;

/* What `connected` reports. Strings are NUL-terminated. */
typedef struct natpeer_conn_info {
	uint32_t channel;        /* for natpeer_send(), until `closed` */
	const char *peer;        /* its name */
	const uint8_t *key;      /* its public key, NATPEER_KEY_LEN bytes */
	const char *key_text;    /* the same in text form */
	const char *path;        /* "direct", "lan", "relay", "birthday", ... */
	int family;              /* 4 or 6 */
	const char *remote;      /* the peer's address as we send to it, "IP:PORT" / "[IP]:PORT" */
	const char *relay;       /* path "relay": our or its relayed address; else NULL */
	uint64_t ms;             /* from the request (connect) or the plan (listen) */
	/* A birthday attempt (path "birthday"), our side's figures: */
	int birthday;            /* nonzero when this was one */
	int birthday_spray;      /* nonzero: we sprayed from `sockets` sockets, `socket` won */
	uint32_t sockets, socket; /* spraying side (0: not ours) */
	uint32_t probes, rate;   /* probing side (0: not ours) */
	uint32_t port;           /* the port that answered; 0: not known here */
} natpeer_conn_info;

/* One row of natpeer_peers(). */
typedef struct natpeer_peer_info {
	const char *id, *nat, *mapping, *filtering, *reflexive;
	int has_alt;             /* also registered in the other IP family: */
	const char *alt, *alt_mapping, *alt_filtering;
} natpeer_peer_info;

/* One row of natpeer_matrix(). */
typedef struct natpeer_pair_info {
	const char *a, *b, *predicted, *role_a, *role_b, *plan;
	int has_measured;
	const char *measured;    /* has_measured */
	uint32_t ms;             /* has_measured */
	int plan_family, family; /* 0: not given */
	int birthday;            /* nonzero: the four below are given (0: absent) */
	uint32_t bd_sockets, bd_probes, bd_rate, bd_port;
} natpeer_pair_info;

/* natpeer_netcheck(): one broker address family's results. Strings are
 * NUL-terminated; NULL where the comment says so. */
typedef struct natpeer_netcheck_family {
	int family;              /* 4 or 6 */
	const char *server;      /* the broker tested against, "IP:PORT" / "[IP]:PORT" */
	const char *missing;     /* NULL: a verdict (UDP blocked is one); else why none,
				  * e.g. "no route to ...: ..." (no "no IPvN: " in front) */
	/* The fields below are meaningful only when missing is NULL. */
	int udp_blocked;         /* nonzero: no answer at all */
	const char *local;       /* our address toward the broker; NULL: none */
	const char *reflexive;   /* our address as the broker saw it; NULL: none */
	const char *mapping;     /* RFC 4787 behaviour words; NULL: unknown */
	const char *filtering;
	const char *nat;         /* the NAT type in one word; NULL: unknown */
	int hairpin;             /* 1 yes, 0 no, -1 not tested */
	int rfc5780;             /* nonzero: the broker has two addresses (full tests) */
	const char *note;        /* "" or a remark on the results */
	uint64_t ms;             /* how long this family's tests took */
} natpeer_netcheck_family;

/* The port mapping asked of the router (PCP, NAT-PMP or UPnP), as found. */
typedef struct natpeer_portmap_info {
	const char *status;      /* "verified", "unverified", "unavailable", "refused",
				  * "unusable", "disabled", ... */
	const char *protocol;    /* "pcp", "nat-pmp", "upnp"; NULL: none answered */
	const char *external;    /* "IP:PORT" when status is (un)verified; else NULL */
	uint32_t lease_s;        /* with external */
	const char *gateway;     /* the router's IP; NULL: none */
	int64_t ms;              /* how long it took; -1: not known */
	const char *reason;      /* why not verified; NULL when verified */
} natpeer_portmap_info;

/* What `netcheck` reports. */
typedef struct natpeer_netcheck_report {
	size_t n_families;       /* 1, or 2 with two brokers (one per family) */
	const natpeer_netcheck_family *families; /* in the order the brokers were added */
	size_t portmap_family;   /* the index of the family the port mapping goes with */
	natpeer_portmap_info portmap;
	uint64_t total_ms;       /* the whole run */
} natpeer_netcheck_report;

/* What `mapped` reports (natpeer_map). */
typedef struct natpeer_map_info {
	int tcp;                 /* nonzero: TCP, else UDP */
	uint16_t internal;       /* the local port mapped */
	const char *protocol;    /* "pcp", "nat-pmp", "upnp" */
	const char *external;    /* the external address, "IP:PORT" */
	uint32_t lease_s;
	const char *gateway;     /* the router's IP */
	int verified;            /* nonzero: the broker reached us through it */
	const char *reason;      /* !verified: why not */
	int64_t ms;              /* how long it took */
} natpeer_map_info;

/* Callbacks; any may be NULL. `arg` is the pointer given with them. */
typedef struct natpeer_callbacks {
	/* One line of text, no newline. */
	void (*log)(void *arg, int level, const char *line);
	/* The first registration with the broker: listen accepts from now. */
	void (*registered)(void *arg, const char *id, const char *reflexive);
	/* A peer's path is up and authenticated; send once it is `confirmed`. */
	void (*connected)(void *arg, const natpeer_conn_info *info);
	/* The peer on channel has been heard on the path: data flows both ways. */
	void (*confirmed)(void *arg, uint32_t channel);
	/* An attempt failed (peer: the name asked for or planned). */
	void (*failed)(void *arg, const char *peer, const char *reason);
	/* Nothing from the peer for 30 s: lost; `closed` follows. */
	void (*lost)(void *arg, uint32_t channel, const char *peer, const char *remote);
	/* The channel is gone (lost, or replaced by a new session with the
	 * same peer); its id may be reused by a later `connected`. */
	void (*closed)(void *arg, uint32_t channel);
	/* A datagram from the peer on channel (0..NATPEER_MAX_DATAGRAM bytes). */
	void (*data)(void *arg, uint32_t channel, const uint8_t *data, size_t len);
	/* natpeer_peers() / natpeer_matrix(): every row at once. */
	void (*peers)(void *arg, const natpeer_peer_info *rows, size_t n);
	void (*matrix)(void *arg, const natpeer_pair_info *rows, size_t n);
	/* The instance stopped (natpeer_stop, natpeer_finish, a listing done:
	 * status 0; a fatal error: a NATPEER_E_* code, the log says why). Only
	 * natpeer_close() is left to call. */
	void (*stopped)(void *arg, int status);
	/* Appended later (natpeer_config_set_callbacks' size says whether a
	 * caller knows them): */
	/* natpeer_netcheck(): the results, once, before `stopped`. */
	void (*netcheck)(void *arg, const natpeer_netcheck_report *report);
	/* natpeer_map(): the mapping is made (again each time its external
	 * address or verification changes). */
	void (*mapped)(void *arg, const natpeer_map_info *info);
	/* natpeer_map(): no mapping could be made (status as in
	 * natpeer_portmap_info, reason may be ""); `stopped` follows. */
	void (*map_failed)(void *arg, const char *status, const char *reason);
} natpeer_callbacks;

NATPEER_API int natpeer_config_new(natpeer_config **ret);
/* NULL is fine. Wipes the key. */
NATPEER_API void natpeer_config_free(natpeer_config *cfg);
/* Our identity: an X25519 private key (natpeer_keyfile_load). Required. */
NATPEER_API int natpeer_config_set_key(natpeer_config *cfg, const uint8_t priv[NATPEER_KEY_LEN]);
/* Our name at the broker (listen, connect). */
NATPEER_API int natpeer_config_set_id(natpeer_config *cfg, const char *id);
/* The broker, a numeric "IP[:PORT]" (port 3478 by default). Once; a second
 * call names the same broker in the other IP family (else NATPEER_E_INVAL);
 * a third is NATPEER_E_FULL. */
NATPEER_API int natpeer_config_add_broker(natpeer_config *cfg, const char *addr);
/* Demand this public key of the broker (else the key pinned in the
 * known-peers file, else trust on first use). */
NATPEER_API int natpeer_config_set_broker_key(natpeer_config *cfg, const uint8_t pub[NATPEER_KEY_LEN]);
NATPEER_API int natpeer_config_set_token(natpeer_config *cfg, const char *token);
NATPEER_API int natpeer_config_set_admin_token(natpeer_config *cfg, const char *token);
/* The known-peers file (trust on first use; NULL or "": none kept). */
NATPEER_API int natpeer_config_set_known_peers(natpeer_config *cfg, const char *path);
/* listen: accept only these peers, a name or a public key in text form. */
NATPEER_API int natpeer_config_add_allow(natpeer_config *cfg, const char *name_or_key);
NATPEER_API int natpeer_config_set_port(natpeer_config *cfg, uint16_t port); /* 0: any */
NATPEER_API int natpeer_config_set_flags(natpeer_config *cfg, unsigned flags); /* NATPEER_* above */
/* protocols: NATPEER_PORTMAP_* (0: all); check_s: look for the mapping this
 * often, 0..3600 (0: 60 s). */
NATPEER_API int natpeer_config_set_portmap(natpeer_config *cfg, unsigned protocols, uint32_t check_s);
/* Each punch attempt's deadline, 1..3600000 ms; 0: the broker's plan (5 s). */
NATPEER_API int natpeer_config_set_punch_timeout(natpeer_config *cfg, uint32_t ms);
/* Caps on a birthday attempt's budget (0: the plan's): spraying sockets,
 * 0..1024; probes per second, 0..10000. */
NATPEER_API int natpeer_config_set_birthday(natpeer_config *cfg, uint32_t sockets, uint32_t rate);
NATPEER_API int natpeer_config_set_log_level(natpeer_config *cfg, int level);
/* size: sizeof(natpeer_callbacks) as the caller knows it. */
NATPEER_API int natpeer_config_set_callbacks(natpeer_config *cfg, const natpeer_callbacks *cbs, size_t size,
					     void *arg);

/* ---- An instance ------------------------------------------------------------------ */

/* On the application's loop. The config is copied: free it when you like. */
NATPEER_API int natpeer_create(uv_loop_t *loop, const natpeer_config *cfg, natpeer **ret);
/* With a loop of its own, for programs without libuv: see the pump below. */
NATPEER_API int natpeer_create_pump(const natpeer_config *cfg, natpeer **ret);

/* One of these per instance (else NATPEER_E_STATE):
 *  listen:  NAT tests, register, then accept the peers the broker sends
 *           plans for (connected / failed / lost / closed for each);
 *  connect: NAT tests, register, then reach peer (its key demanded when
 *           key is not NULL; else the known-peers file's, else recorded on
 *           first use): one `connected` or one `failed`;
 *  peers, matrix: ask the broker for its list (matrix: the admin token),
 *           then `peers` / `matrix` with the rows, then `stopped`.
 * 0, or an error with a log line (nothing started: natpeer_close() it). */
NATPEER_API int natpeer_listen(natpeer *np);
NATPEER_API int natpeer_connect(natpeer *np, const char *peer, const uint8_t key[NATPEER_KEY_LEN]);
NATPEER_API int natpeer_peers(natpeer *np);
NATPEER_API int natpeer_matrix(natpeer *np);
/* netcheck: test the NAT in front of us against the broker (two brokers,
 * one per IP family: both at once), with the port mapping found on the
 * router (unless NATPEER_NO_PORTMAP); then `netcheck`, then `stopped`
 * (0 with a verdict in at least one family; NATPEER_E_TIMEOUT after
 * timeout_ms, 0: 10 s). Needs a broker; a key only for the broker's probe
 * of the port mapping. */
NATPEER_API int natpeer_netcheck(natpeer *np, uint32_t timeout_ms);
/* map: map local port `port` (UDP, or TCP with tcp != 0) on the router
 * (PCP, NAT-PMP or UPnP; external: the external port asked for, 0: the
 * same; lease_s: 60..604800, 0: the protocol's default), have the broker
 * verify it over the sealed channel (needs the key), `mapped`, and keep it
 * renewed (natpeer_config_set_portmap's check_s) until natpeer_stop(),
 * which deletes it; then `stopped` (0). No mapping within timeout_ms (0:
 * 15 s): `map_failed` or NATPEER_E_TIMEOUT. The first broker only; port
 * 1..65535; NATPEER_E_CONFIG with NATPEER_NO_PORTMAP. */
NATPEER_API int natpeer_map(natpeer *np, int tcp, uint16_t port, uint16_t external, uint32_t lease_s,
			    uint32_t timeout_ms);

/* One datagram to the peer on channel. 0, NATPEER_E_NOCHAN,
 * NATPEER_E_NOTREADY, NATPEER_E_TOOBIG or NATPEER_E_STATE. Best effort,
 * as UDP: no retransmission, no order. */
NATPEER_API int natpeer_send(natpeer *np, uint32_t channel, const void *data, size_t len);

/* Stop once the broker has acknowledged every result and every connected
 * peer has been heard, or after linger_ms; then `stopped` (0). */
NATPEER_API int natpeer_finish(natpeer *np, uint32_t linger_ms);
/* Stop now: tell the broker we leave, free the relay allocation, delete
 * the port mappings (in the background, bounded); then `stopped` (0).
 * Done from the loop soon after the call, so callbacks may call it. */
NATPEER_API int natpeer_stop(natpeer *np);
/* Stop if not stopped, and free the instance once its handles are closed:
 * keep running the loop until then. No callback comes after this call.
 * A pump instance runs its own loop to the end here (bounded by the port
 * mapping's removal, a few seconds at most). NULL is fine. */
NATPEER_API void natpeer_close(natpeer *np);

/* ---- The pump: natpeer without libuv ------------------------------------------------ */

/* A thin adapter on the instance's own loop (natpeer_create_pump): poll
 * natpeer_pump_fd() for reading, with natpeer_pump_timeout() as the
 * timeout (ms; -1: none), then call natpeer_pump_run(). Callbacks come
 * from natpeer_pump_run(). The three return NATPEER_E_STATE for an
 * instance made by natpeer_create(). run returns 0 or that. */
NATPEER_API int natpeer_pump_fd(natpeer *np);
NATPEER_API int natpeer_pump_timeout(natpeer *np);
NATPEER_API int natpeer_pump_run(natpeer *np);

#ifdef __cplusplus
}
#endif

#endif
