/* broker/server.h - the broker's libuv shell: UDP sockets, TCP listeners
 * and connections, a timer, signals. It moves bytes between the sockets and
 * the pure cores - nb_binding_handle() for STUN, nb_rendezvous_handle() for
 * control messages - and makes no decision of its own.
 *
 * The primary UDP socket (IP1:port) carries both, told apart by the first
 * byte (docs/protocol.md): '{' goes to the rendezvous engine, anything else
 * to the STUN handler (which drops what is not STUN). The other sockets and
 * TCP carry STUN only. A uv_timer drives nb_rendezvous_poll() at
 * nb_rendezvous_next_deadline(); random bytes come from getrandom().
 *
 * Sockets (docs/broker.md), one set per address family (IPv4, IPv6; the
 * --listen IPs of each family, in the order given):
 *   one IP of a family  : UDP IP:port, TCP IP:port.
 *   two IPs of a family : RFC 5780. UDP and TCP on IP1:port, IP1:alt_port,
 *                         IP2:port, IP2:alt_port.
 * Both families at once (dual stack) take up to four --listen IPs; a
 * wildcard (0.0.0.0 or ::) is only ever the single --listen (a :: socket
 * also takes IPv4, as IPv4-mapped addresses). Each family's primary UDP
 * socket (IP1:port) carries control messages; a STUN Binding is answered
 * by its own family's set (OTHER-ADDRESS, CHANGE-REQUEST stay inside it).
 * Whatever the broker sends to an address (replies, pushed plans, probes,
 * TURN responses) leaves from a socket of that address's family; for a
 * family it does not listen on, it is dropped and counted (tx_no_family).
 *
 * TCP: each connection carries STUN messages framed by their header length
 * (RFC 8489 §6.2.2). Hard limits: max_tcp connections at once (beyond that
 * the listeners stop accepting until one closes: new connections wait in
 * the kernel's backlog), one request must complete within
 * tcp_idle_timeout_ms of the connection or of the previous request (a
 * trickle of bytes does not keep a connection open), tcp_max_bytes read per
 * connection, messages of at most NB_STUN_MAX_MSG bytes, one response
 * in flight per connection (reading pauses while it drains).
 *
 * Per-source rate limit (broker/ratelimit.h, docs/broker.md "Per-source
 * rate limit"): with rate_limit > 0, every UDP datagram from one IP (IPv6:
 * one /64) - STUN, junk and control messages alike, on every socket -
 * draws on the source's UDP budget, every whole TCP request on its TCP
 * budget; each allows rate_limit per second after a burst of rate_burst,
 * and is checked before any other work. What is over it gets no answer; a
 * TCP connection whose request is over it is closed.
 */
#ifndef NB_BROKER_SERVER_H
#define NB_BROKER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "broker/binding.h"
#include "broker/ratelimit.h"
#include "broker/rendezvous.h"
#include "broker/status.h"
#include "broker/turn.h"
#include "common/addr.h"

#define NB_SERVER_DEFAULT_PORT 3478
#define NB_SERVER_DEFAULT_ALT_PORT 3479
#define NB_SERVER_DEFAULT_MAX_TCP 1024
#define NB_SERVER_DEFAULT_TCP_IDLE_MS 10000
#define NB_SERVER_DEFAULT_TCP_MAX_BYTES 65536
#define NB_SERVER_TCP_BACKLOG 128

/* --listen IPs at most: two per family. */
#define NB_SERVER_MAX_LISTEN 4

struct nb_server_config {
	/* IPs (ports ignored): 1..4, at most 2 per family (2: RFC 5780 for
	 * that family), distinct; a wildcard only as the single one. */
	struct nb_addr listen[NB_SERVER_MAX_LISTEN];
	unsigned n_listen;
	uint16_t port, alt_port;
	bool tcp;
	unsigned max_tcp;             /* >= 1 */
	uint64_t tcp_idle_timeout_ms; /* >= 1 */
	uint64_t tcp_max_bytes;       /* >= NB_STUN_HDR_LEN */
	const char *software;         /* NULL: no SOFTWARE attribute */
	/* Rendezvous (control messages on the primary UDP socket). */
	size_t max_peers;     /* 1..NB_REGISTRY_MAX_MAX */
	size_t max_sessions;  /* 1..NB_RENDEZVOUS_MAX_SESSIONS_MAX */
	uint32_t keepalive_s; /* 1..3600; registrations expire after 3x */
	const char *token;    /* NULL: none; else every register must carry it */
	const char *admin_token; /* NULL: none; else peers/matrix answer queries that carry it */
	bool public_list;        /* peers/matrix answer everyone */
	uint8_t key[32];         /* the broker's static private key (Noise), from --key */
	char pubkey_text[44];    /* its public key as text, for the status port */
	size_t max_links;        /* sealed sessions at once (NB_PLINK_DEFAULT_MAX) */
	/* Birthday punching's budget (broker/rendezvous.h: has = on; sockets,
	 * probes, rate) and punch timing from the round trips (rtt_timing;
	 * false: the fixed delay). Defaults: on, 256, 2048, 100/s; rtt. */
	struct nb_ctrl_birthday birthday;
	bool rtt_timing;
	/* Per-source rate limit (broker/ratelimit.h). */
	uint32_t rate_limit;     /* requests per second per source IP; 0: off */
	uint32_t rate_burst;     /* 1..NB_RATELIMIT_BURST_MAX */
	size_t rate_table;       /* sources remembered, 1..NB_RATELIMIT_ENTRIES_MAX */
	uint32_t rate_penalty_s; /* refuse a source this long after it goes over; 0: off */
	/* Relay (TURN, RFC 8656; broker/turn.h, docs/broker.md "Relay").
	 * turn: serve TURN on the STUN ports, relaying from relay_ip[f] for
	 * each family f (enum nb_fam) that has one: the one given, else the
	 * first specific --listen IP of that family, else the family is not
	 * relayed (440). A --relay-ip of one family leaves the other to its
	 * default; with only wildcard listens, relay_ip is needed. turn_cfg:
	 * secret, realm, limits (relay_ip, own and nonce_key are filled in by
	 * nb_server_open). relays: external TURN servers (--relay) the plans
	 * point at instead; the broker then serves no TURN of its own but
	 * issues credentials under turn_cfg.secret. */
	bool turn;
	struct nb_turn_config turn_cfg;
	/* By enum nb_fam: [NB_FAM_V4] IPv4 or NB_AF_NONE, [NB_FAM_V6] IPv6
	 * or NB_AF_NONE (the default: the first specific --listen IP of it). */
	struct nb_addr relay_ip[NB_FAM_COUNT];
	struct nb_addr relays[NB_RENDEZVOUS_MAX_RELAYS];
	size_t n_relays;
	/* ---- nb_server_run() only (operations: docs/operations.md) ---- */
	uint16_t status_port;             /* 0: off; else 127.0.0.1:status_port answers "status" */
	void (*reload_cb)(void *arg);     /* SIGHUP; NULL: nothing to reload */
	void *reload_arg;
};

/* Counters, readable at any time (single loop thread). */
struct nb_server_stats {
	uint64_t udp_rx, udp_answered, udp_errors_sent; /* errors_sent: 400/420 responses */
	uint64_t drops[NB_BINDING_DROP_COUNT];          /* by nb_binding_drop_index() */
	uint64_t tcp_accepted, tcp_refused_full, tcp_requests;
	uint64_t tcp_closed_idle, tcp_closed_bytes, tcp_closed_garbage;
	struct nb_status_refusals refusals; /* control requests refused, by reason */
	/* Dropped by the per-source rate limit (also counted in
	 * refusals.n[NB_STATUS_REFUSED_RATE_LIMITED]; udp_rx counts the UDP ones). */
	uint64_t rate_limited_udp, rate_limited_tcp, rate_limited_control;
	/* TCP connections that carry a sealed control session / a TURN
	 * allocation now; frames of relayed data dropped because a TCP
	 * client did not read fast enough. */
	uint64_t tcp_control, tcp_turn, tcp_write_dropped;
	uint64_t relay_sockets; /* relay sockets open now */
	/* Datagrams for an address of a family the broker has no socket of
	 * (a plan pushed to an IPv6 peer by a broker on IPv4 only): dropped. */
	uint64_t tx_no_family;
};

struct nb_server;

/* Fill *cfg with the defaults (0.0.0.0, 3478/3479, TCP on, limits above,
 * the rendezvous defaults of broker/rendezvous.h, the rate limit defaults
 * of broker/ratelimit.h). */
void nb_server_config_default(struct nb_server_config *cfg);

/* Check the --listen IPs of cfg (n_listen, families, wildcard, duplicates).
 * Pure. 0, or -EINVAL with a reason in err ("the two IPv4 addresses must
 * differ", ...). nb_server_open() checks them too. */
int nb_server_listen_check(const struct nb_server_config *cfg, char *err, size_t errlen);

/* True if some family has two --listen IPs (RFC 5780 mode, the alt port). */
bool nb_server_config_rfc5780(const struct nb_server_config *cfg);

/* Check cfg, open every socket on `loop` and start serving. 0, or a negative
 * errno/libuv code with a log line naming the address that failed; on
 * failure nothing stays open (run the loop once to finish closing). */
int nb_server_open(uv_loop_t *loop, const struct nb_server_config *cfg, struct nb_server **ret);

/* Close every handle; done_cb (may be NULL) runs once all are closed, after
 * which the server memory is freed. Accepts NULL. */
void nb_server_close(struct nb_server *srv, void (*done_cb)(void *arg), void *arg);

const struct nb_server_stats *nb_server_stats(const struct nb_server *srv);

/* The rendezvous engine's counters (see broker/rendezvous.h). */
void nb_server_rendezvous_stats(const struct nb_server *srv, struct nb_rendezvous_stats *ret);

/* The relay's counters (broker/turn.h); NULL when the broker relays nothing itself. */
const struct nb_turn_stats *nb_server_turn_stats(const struct nb_server *srv);

/* The sealed sessions' counters (broker/plink.h). */
struct nb_plink_stats;
void nb_server_plink_stats(const struct nb_server *srv, struct nb_plink_stats *ret);

/* The per-source limiter's counters (all zero when it is off). */
void nb_server_ratelimit_stats(const struct nb_server *srv, struct nb_ratelimit_stats *ret);

/* The whole program: a loop, the server, SIGINT/SIGTERM for a clean stop,
 * SIGHUP for cfg->reload_cb, and the status port (broker/status_run.h)
 * when cfg->status_port is set. cfg must stay valid while it runs.
 * Returns 0 after a signal, 1 if the server could not start. */
int nb_server_run(const struct nb_server_config *cfg);

#endif
