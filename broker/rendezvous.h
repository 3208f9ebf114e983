/* broker/rendezvous.h - the broker's control-message engine: register,
 * keepalive, connect (plans for both sides), result, bye, peers, matrix;
 * the sessions, the reply cache and the who-can-reach-whom matrix.
 *
 * Pure: no sockets, no clock, no random number generator, no Noise. Each
 * call takes `now` (milliseconds of a monotonic clock that never goes
 * back), and nb_rendezvous_handle_keyed() takes NB_RENDEZVOUS_RANDOM_LEN
 * fresh random bytes from the shell for the session id and push
 * transaction ID it may need. Out come datagrams (bytes, destination and
 * the key to seal them to), events (for the shell to log) and the next
 * deadline. docs/protocol.md is the specification; docs/broker.md the
 * operator's view.
 *
 * Peers are their keys. Every control message between a peer and the
 * broker travels sealed in a Noise IK session; the shell opens it and
 * hands the plaintext in with the sender's authenticated static public key
 * (`key`, NB_KEY_LEN bytes). A name (peer id) belongs to the key that
 * registered it while the entry lives (broker/registry.h); keepalive,
 * connect, result and bye are taken only from that key. A request that
 * arrived unsealed (key NULL) is refused with 401 and changes nothing.
 * Plans tell each side the other's key (`peer_key`), so the peers' own
 * Noise handshake authenticates the right peer.
 *
 *   shell                              nb_rendezvous
 *   -----                              -------------
 *   plaintext '{' from X with key K,
 *   now, random                     -> handle_keyed() -> reply to X sealed
 *                                                    to K (d[0]); plan
 *                                                    pushed to the other
 *                                                    peer sealed to its key
 *                                                    (d[1], connect only)
 *   timer at next_deadline()        -> poll()    -> plan retransmissions;
 *                                                    registrations expired
 *   (both)                          <- events via the config's callback
 *
 * Hard limits (refusals are answered and reported as events):
 *   registry      max_peers entries                      -> 503
 *   sessions      max_sessions; the oldest finished one
 *                 is evicted for a new one                -> 503 when all are live
 *   matrix        max_pairs pairs; the least recently
 *                 tried pair is forgotten for a new one
 *   reply cache   cache_entries replies for cache_ms; when full the oldest
 *                 is evicted early (and reported)
 *   list queries  list_rate pages per second (burst: one second's worth)
 *                                                         -> 429
 *   verify        verify_rate probes per second (same shape) -> 429
 *
 * UPnP mappings (docs/protocol.md "verify"): a `verify` for an external
 * address on the requester's own IP gets no reply but a `probe`, sent to
 * that address from the broker's primary IP and alternate port (d[0] with
 * from_alt_port), a source the peer's socket has never sent to. The probe
 * carries a proof, an HMAC under probe_key of (requester, external); a
 * later `register` that shows the proof gets its mapping treated as
 * verified by the connectivity table. Nothing is kept per verify.
 *
 * Return routability: a sealed register has shown that its source
 * receives (its first transport frame needs the broker's handshake
 * response). The older proof, a cookie (docs/protocol.md "challenge"), an
 * HMAC of (source, id, 30-s window) handed out in a `challenge` no longer
 * than the register, is asked for only with cfg.require_cookie (default
 * off). Plans are pushed to registered addresses only, so nothing goes to a
 * third party.
 *
 * peers and matrix are answered only with cfg.public_list or the broker's
 * admin token in the query's "admin" (else 403). List pages are no longer
 * than the query that asked for them (a client pads its query,
 * docs/protocol.md "peers"): no amplification.
 */
#ifndef NB_BROKER_RENDEZVOUS_H
#define NB_BROKER_RENDEZVOUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/registry.h"
#include "broker/table.h"
#include "common/addr.h"
#include "common/keys.h"
#include "proto/ctrl.h"

#define NB_RENDEZVOUS_DEFAULT_MAX_SESSIONS 4096
#define NB_RENDEZVOUS_DEFAULT_MAX_PAIRS 4096
#define NB_RENDEZVOUS_DEFAULT_CACHE_ENTRIES 16384
#define NB_RENDEZVOUS_MAX_SESSIONS_MAX 1000000 /* largest max_sessions, max_pairs accepted */
#define NB_RENDEZVOUS_CACHE_ENTRIES_MAX 1000000
/* docs/protocol.md: "it remembers its reply per (source address, tx) for
 * at least 12 s" - longer than a requester retransmits (11750 ms). */
#define NB_RENDEZVOUS_CACHE_MS 12000
#define NB_RENDEZVOUS_DEFAULT_KEEPALIVE_S 15
/* A registration lives 3 keepalive periods: two keepalives may be lost. */
#define NB_RENDEZVOUS_EXPIRES_FACTOR 3
#define NB_RENDEZVOUS_DEFAULT_DEADLINE_MS 5000
/* The dialer waits this long when the other side primes its filter, and
 * the probing side of a birthday plan before it probes, when the round
 * trips to both peers are not known (or with rtt_timing off). */
#define NB_RENDEZVOUS_DEFAULT_PRIME_DELAY_MS 100
/* Birthday punching's budget (docs/protocol.md "Birthday"): sockets the
 * spraying side opens, ports the probing side tries, probes per second.
 * 100/s is the internet default (a slow probe looks less like a scan);
 * the lab uses 1000/s. */
#define NB_RENDEZVOUS_DEFAULT_BDAY_SOCKETS 256
#define NB_RENDEZVOUS_DEFAULT_BDAY_PROBES 2048
#define NB_RENDEZVOUS_DEFAULT_BDAY_RATE 100
/* A birthday plan's deadline covers its whole probe budget at its rate,
 * the probing side's delay and this much more. */
#define NB_RENDEZVOUS_BDAY_SLACK_MS 1500
/* Punch timing from the round trips (DCUtR-style, docs/protocol.md
 * "Punch timing"): the side that goes second waits for the other side's
 * plan to arrive, plus NB_RENDEZVOUS_TIMING_MARGIN_MS + the larger round
 * trip / NB_RENDEZVOUS_TIMING_MARGIN_DIV. */
#define NB_RENDEZVOUS_TIMING_MARGIN_MS 5
#define NB_RENDEZVOUS_TIMING_MARGIN_DIV 10
/* Round-trip samples above this are not taken (a peer that took this long
 * to answer was busy, not far). */
#define NB_RENDEZVOUS_RTT_MAX_MS 10000
#define NB_RENDEZVOUS_DEFAULT_LIST_RATE 100 /* peers/matrix pages per second */
#define NB_RENDEZVOUS_DEFAULT_VERIFY_RATE 100 /* probes per second */
#define NB_RENDEZVOUS_PROBE_KEY_LEN 32
/* A register cookie is good in its 30-s window and the next one. */
#define NB_RENDEZVOUS_COOKIE_WINDOW_MS 30000

/* A pushed plan is sent at 0, 250, 750, 1750, 3750 and 7750 ms and given
 * up at 11750 ms without an ack (docs/protocol.md "Transactions"). */
#define NB_RENDEZVOUS_PUSH_WINDOW_MS \
	(NB_CTRL_RTO_MS * ((1u << (NB_CTRL_MAX_TRIES - 1)) - 1) + NB_CTRL_FINAL_WAIT_MS)

/* Random bytes per nb_rendezvous_handle_keyed(): 8 for the session id
 * (bytes 0..7), 8 for the pushed plan's tx (bytes 40..47). Bytes 8..39 are
 * unused since plans carry the peers' public keys instead of a session
 * key; the length is kept so that shells need not change. */
#define NB_RENDEZVOUS_RANDOM_LEN 48

#define NB_RENDEZVOUS_MAX_RELAYS 8
#define NB_RENDEZVOUS_MAX_SECRET 256
#define NB_RENDEZVOUS_DEFAULT_RELAY_CRED_S 3600
#define NB_RENDEZVOUS_DEFAULT_RELAY_EXTRA_MS 10000
/* Credentials in `registered` (for an allocation in advance, refreshed for
 * as long as the host runs): a day, less a margin; the relay accepts REST
 * expiries up to a day ahead (broker/turn.h max_credential_s). */
#define NB_RENDEZVOUS_REG_CRED_S 86000
/* A relay plan whose allocating side registered its relayed address: the
 * dialing side waits this long, so that the permission the allocating side
 * asks for on getting its plan reaches the relay first (its first resend
 * would cost more). */
#define NB_RENDEZVOUS_RELAY_DIAL_DELAY_MS 10

/* Datagrams out of one nb_rendezvous_handle(): the reply, and a pushed plan. */
#define NB_RENDEZVOUS_MAX_OUT 2

/* ---- Events: what the shell logs ---------------------------------------- */

enum nb_rendezvous_event_kind {
	NB_RV_EVENT_REGISTERED = 0, /* id, addr, key, change (other_addr: the old address, MOVED) */
	NB_RV_EVENT_EXPIRED,        /* id, addr, key: no register or keepalive for `expires` */
	NB_RV_EVENT_CONNECT,        /* session, id (asker) at addr with key, peer at other_addr,
				     * path, role_a, role_b, reason, the timing (delay_a,
				     * delay_b, rtt_a, rtt_b, rtt_timed), ms = the plans'
				     * deadline, birthday = the budget (path birthday) */
	NB_RV_EVENT_PUSH_ACKED,     /* session, peer: the other side has its plan */
	NB_RV_EVENT_PUSH_FAILED,    /* session, peer, code: refused with `error` code, or
				     * 0 = no ack after NB_CTRL_MAX_TRIES sends */
	NB_RV_EVENT_RESULT,         /* session, id (reporter) with key, peer, outcome, path, ms,
				     * birthday (the figures it reported, if any) */
	NB_RV_EVENT_REFUSED,        /* code (400, 401, 403, 404, 409, 500), reason, id, addr,
				     * key (NULL: the request arrived unsealed) */
	NB_RV_EVENT_LIMIT,          /* limit, limit_value, and for refusals code, reason, id, addr,
				     * key */
	NB_RV_EVENT_BYE,            /* id, addr (the bye's source), key: the name is free */
};

enum nb_rendezvous_limit {
	NB_RV_LIMIT_NONE = 0,
	NB_RV_LIMIT_PEERS,    /* registry full: register refused with 503 */
	NB_RV_LIMIT_SESSIONS, /* every session live: connect refused with 503 */
	NB_RV_LIMIT_CACHE,    /* reply cache full: a reply younger than cache_ms forgotten */
	NB_RV_LIMIT_RATE,     /* list queries over list_rate: refused with 429 */
};

/* Strings point into the engine; valid during the callback only. Fields
 * that do not apply are 0 / "". */
struct nb_rendezvous_event {
	enum nb_rendezvous_event_kind kind;
	enum nb_rendezvous_limit limit;
	size_t limit_value;
	enum nb_registry_change change;
	uint16_t code;
	const char *id, *peer, *session, *reason;
	struct nb_addr addr, other_addr;
	enum nb_path path;
	enum nb_role role_a, role_b;
	enum nb_ctrl_outcome outcome;
	uint32_t ms;
	enum nb_ctrl_type request;                /* REFUSED, LIMIT: what was refused (0: undecodable) */
	/* CONNECT: the plans' delay_ms (a: the asker's, b: the other side's),
	 * the smoothed round trips they came from (0: unknown), and whether
	 * they were computed from those round trips (else the fixed rule). */
	uint32_t delay_a, delay_b, rtt_a, rtt_b;
	bool rtt_timed;
	struct nb_ctrl_birthday birthday;         /* CONNECT: the budget; RESULT: the figures */
	const struct nb_registry_peer *entry;     /* REGISTERED: the entry as stored */
	/* REGISTERED: a register with "also": addr (and other_addr, for
	 * MOVED) is the entry's second address; change is about that one. */
	bool also;
	/* The key the event is about: the sender's for a request (REGISTERED,
	 * CONNECT, RESULT, REFUSED, LIMIT, BYE), the holder's for EXPIRED.
	 * NULL when there is none (an unsealed request, PUSH_*); key_text is
	 * then "". */
	const uint8_t *key;                       /* NB_KEY_LEN bytes, or NULL */
	const char *key_text;                     /* its base64url text (43 chars), or "" */
};

/* Called synchronously from nb_rendezvous_handle() / _poll(); must not
 * call back into the engine. */
typedef void (*nb_rendezvous_event_fn)(void *arg, const struct nb_rendezvous_event *ev);

/* ---- Configuration ------------------------------------------------------ */

struct nb_rendezvous_config {
	size_t max_peers;      /* 1..NB_REGISTRY_MAX_MAX (default 10000) */
	size_t max_sessions;   /* 1..NB_RENDEZVOUS_MAX_SESSIONS_MAX (default 4096) */
	size_t max_pairs;      /* 1..NB_RENDEZVOUS_MAX_SESSIONS_MAX (default 4096) */
	size_t cache_entries;  /* 1..NB_RENDEZVOUS_CACHE_ENTRIES_MAX (default 16384) */
	uint32_t cache_ms;     /* >= NB_RENDEZVOUS_CACHE_MS */
	uint32_t keepalive_s;  /* 1..3600 (default 15); expires = 3 x keepalive */
	uint32_t deadline_ms;  /* plan.deadline_ms, 1..600000 (default 5000) */
	uint32_t prime_delay_ms; /* plan.delay_ms of a dialer whose peer primes (default 100) */
	uint32_t list_rate;    /* peers/matrix pages per second; 0 = unlimited (default 100) */
	uint32_t verify_rate;  /* probes per second; 0 = unlimited (default 100) */
	bool require_cookie;   /* register needs the challenge's cookie (default false:
				* a sealed register has shown that its source receives) */
	bool public_list;      /* peers/matrix for every key (default false: admin only) */
	/* The token every register must carry; "" (default) = none needed. */
	char token[NB_CTRL_TOKEN_MAX + 1];
	/* The token a peers/matrix query must show in "admin" unless
	 * public_list; "" (default) = nobody can list. 0..64 printable ASCII.
	 * Compared in constant time. */
	char admin_token[NB_CTRL_TOKEN_MAX + 1];
	uint8_t hash_key[NB_SIPHASH_KEY_LEN]; /* secret random key for the hash tables */
	uint8_t probe_key[NB_RENDEZVOUS_PROBE_KEY_LEN]; /* secret random key of the mapping proofs */
	nb_rendezvous_event_fn event_cb;      /* may be NULL */
	void *event_arg;
	/* Relay (TURN, RFC 8656; docs/protocol.md "Relay"). n_relays 0: no
	 * relay, plans carry no "relay". Else each plan names one side to
	 * allocate on relays[k] (k from the session id) with TURN REST
	 * credentials: user "<unix expiry>:<its key>", password
	 * base64(HMAC-SHA1(relay_secret, user)), good for relay_cred_s. */
	struct nb_addr relays[NB_RENDEZVOUS_MAX_RELAYS];
	size_t n_relays;
	uint8_t relay_secret[NB_RENDEZVOUS_MAX_SECRET];
	size_t relay_secret_len;              /* 1.. when n_relays > 0 */
	uint32_t relay_cred_s;                /* default 3600 */
	uint32_t relay_extra_ms;              /* a session's time for the relay after the
					       * direct deadline (default 10000) */
	/* Birthday punching (docs/protocol.md "Birthday"): has = plan it for
	 * the pairs that need it (default on; off: they get a relay);
	 * sockets 1..NB_CTRL_BDAY_SOCKETS_MAX (default 256), probes
	 * 1..NB_CTRL_BDAY_PROBES_MAX (2048), rate 1..NB_CTRL_BDAY_RATE_MAX
	 * probes per second (100). port: unused. */
	struct nb_ctrl_birthday birthday;
	/* Punch timing: true (default) = from the measured round trips when
	 * both peers' are known (docs/protocol.md "Punch timing"); false =
	 * the fixed prime_delay_ms. */
	bool rtt_timing;
	/* The broker's primary address (IP and primary port) in each family:
	 * self[NB_FAM_V4], self[NB_FAM_V6]; NB_AF_NONE where it does not
	 * listen on that family on a specific IP. A `registered` answering a
	 * peer over one family names the other family's as "alt", where the
	 * peer registers its second address (docs/protocol.md "IPv6"). */
	struct nb_addr self[2];
	/* relays[] is the broker's own TURN server, which also listens at
	 * self[]: an allocating side is sent to it over its own family. */
	bool own_relay;
	/* The families relays[] hand out relayed addresses of (RFC 8656
	 * REQUESTED-ADDRESS-FAMILY): bits 1 << NB_FAM_V4 and 1 << NB_FAM_V6;
	 * 0 means IPv4 only, what every TURN server does by default. */
	uint8_t relay_fams;
};

void nb_rendezvous_config_default(struct nb_rendezvous_config *cfg);

/* ---- Engine ------------------------------------------------------------- */

struct nb_rendezvous;

/* 0, -EINVAL (cfg out of range) or -ENOMEM; *ret untouched on failure. */
int nb_rendezvous_new(const struct nb_rendezvous_config *cfg, struct nb_rendezvous **ret);
void nb_rendezvous_free(struct nb_rendezvous *rv); /* accepts NULL */

/* One datagram out: to `to`, `len` bytes of `data`. Sealed: the shell
 * sends data (a plaintext) sealed in the session of the static key `key`
 * (the recipient's: the requester's for a reply, the other peer's for a
 * pushed plan). Not sealed (a verify's probe; a 400 or 401 answering an
 * unsealed datagram): data goes out as it is and key is all zero. */
struct nb_rendezvous_dgram {
	struct nb_addr to;
	bool from_alt_port; /* send from the primary IP's alternate port (else primary) */
	bool sealed;
	uint8_t key[NB_KEY_LEN];
	size_t len;
	uint8_t data[NB_CTRL_MAX_DATAGRAM];
};

/* Owned by the caller; filled by nb_rendezvous_handle_keyed(). */
struct nb_rendezvous_out {
	size_t n;      /* datagrams in d[]: 0 (dropped), 1 or 2 */
	bool rnd_used; /* the random bytes were used: give fresh ones next time */
	struct nb_rendezvous_dgram d[NB_RENDEZVOUS_MAX_OUT];
	/* A TCP verify (docs/protocol.md "verify"): the shell connects to
	 * tcp_to (bounded in time and number), writes `greeting`, waits briefly
	 * for the far end to close, then sends d[0] (the probe, sealed to the
	 * requester) if the connection was made, else d[1] (a sealed 504). */
	bool tcp_probe;
	struct nb_addr tcp_to;
	char greeting[96];
};

/* Handle one control message (its first byte should be '{') of len bytes
 * from `from` at `now`. key: the sender's authenticated static public key
 * (NB_KEY_LEN bytes) when the message arrived sealed, NULL when it arrived
 * plain (every request is then refused with 401; replies, acks and errors
 * are ignored). rnd: NB_RENDEZVOUS_RANDOM_LEN random bytes (rnd_len must
 * be at least that); they are used only when ret->rnd_used is set.
 * Returns 0 and fills *ret (ret->n may be 0: nothing to send), or -EINVAL
 * for a NULL argument or short rnd, with *ret untouched. The input bytes
 * are never modified. Send d[] in order, each sealed as it says; d[0],
 * when present, is the reply to `from` (or a verify's probe). */
int nb_rendezvous_handle_keyed(struct nb_rendezvous *rv, const uint8_t *buf, size_t len,
			       const struct nb_addr *from, const uint8_t *key, uint64_t now,
			       const uint8_t *rnd, size_t rnd_len, struct nb_rendezvous_out *ret);

/* What the next nb_rendezvous_handle_keyed() call should know besides its
 * arguments: the wall clock (unix seconds, for the relay credentials'
 * expiry) and whether the message came over TCP (a register over TCP marks
 * the peer as UDP-blocked). Stays in force until changed. */
void nb_rendezvous_set_context(struct nb_rendezvous *rv, uint64_t unix_s, bool via_tcp);

/* The round trip (ms) the shell measured for the sealed session the next
 * nb_rendezvous_handle_keyed() message arrived in: from sending the Noise
 * handshake response to receiving the session's first transport frame
 * (0 = none: not the first frame, or not measured). Applies to that next
 * call only. A register, keepalive or connect then feeds it to the
 * sender's smoothed round trip (broker/registry.h rtt_ms); values above
 * NB_RENDEZVOUS_RTT_MAX_MS are ignored. The engine also takes a sample of
 * its own: a pushed plan acknowledged after its first transmission only
 * (Karn's rule: the ack of a retransmitted plan could answer either). */
void nb_rendezvous_set_rtt(struct nb_rendezvous *rv, uint32_t rtt_ms);

/* nb_rendezvous_handle_keyed(..., key = NULL, ...): a plain datagram. */
int nb_rendezvous_handle(struct nb_rendezvous *rv, const uint8_t *buf, size_t len,
			 const struct nb_addr *from, uint64_t now, const uint8_t *rnd,
			 size_t rnd_len, struct nb_rendezvous_out *ret);

/* Do what is due at `now`: expire registrations, retransmit pushed plans
 * (sealed to the other peer's key) into out[0..cap) and give up on unanswered ones. Sets *ret_n to the
 * datagrams written. Returns 1 if more is due (out was full: call again),
 * 0 if not, -EINVAL for a NULL argument (*ret_n untouched). */
int nb_rendezvous_poll(struct nb_rendezvous *rv, uint64_t now, struct nb_rendezvous_dgram *out,
		       size_t cap, size_t *ret_n);

/* When nb_rendezvous_poll() next has something to do, or UINT64_MAX. */
uint64_t nb_rendezvous_next_deadline(const struct nb_rendezvous *rv);

struct nb_rendezvous_stats {
	/* counters */
	uint64_t rx;                  /* datagrams handled */
	uint64_t undecodable;         /* refused by nb_ctrl_decode() */
	uint64_t bad_source;          /* from port 0, unspecified or multicast: dropped */
	uint64_t ignored;             /* replies sent to the broker, unmatched ack/error */
	uint64_t replayed;            /* answered from the reply cache */
	uint64_t replies;             /* replies sent, errors included */
	uint64_t errors;              /* error replies sent */
	uint64_t oversize_suppressed; /* 400s not sent: longer than the request */
	uint64_t registers, keepalives, connects, results, lists;
	uint64_t registers_also;       /* of the registers: second addresses ("also") taken */
	uint64_t expired;
	uint64_t pushes, push_retransmits, push_acked, push_failed;
	uint64_t full_peers, full_sessions, rate_limited, cache_evicted_early, cache_nomem;
	uint64_t verifies, probes, verify_refused; /* verify requests; probes sent; refused */
	uint64_t proofs_good, proofs_bad;          /* register: upnp proofs checked */
	uint64_t challenges, challenges_suppressed; /* register without a good cookie: challenged; silent (too short) */
	uint64_t unsealed;       /* requests refused with 401: arrived without a Noise session */
	uint64_t key_conflicts;  /* register refused with 409: the name is held by another key */
	uint64_t not_holder;     /* keepalive/connect/bye refused with 404: id held by another key */
	uint64_t forged_results; /* result refused: the named side's key is not the sender's */
	uint64_t list_refused;   /* peers/matrix refused with 403: no admin token */
	uint64_t byes;           /* names freed by bye */
	uint64_t relayed;        /* relayed messages accepted and forwarded */
	uint64_t relay_plans;    /* plans whose path is relay */
	uint64_t birthday_plans; /* plans whose path is birthday */
	uint64_t rtt_samples;    /* round-trip samples taken (shell's and pushes' acks) */
	uint64_t rtt_timed;      /* connects whose delays came from both round trips */
	/* gauges */
	size_t peers, sessions, pairs, cached;
};

void nb_rendezvous_get_stats(const struct nb_rendezvous *rv, struct nb_rendezvous_stats *ret);

#endif
