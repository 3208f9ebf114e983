/* broker/status.h - the operator's status report: refusal counting, the
 * answers-per-second window, and the JSON object the status port sends.
 *
 * Pure: no sockets, no clock. The shell (broker/status_run.c) samples the
 * counters once a second, fills an nb_status_snapshot when a "status"
 * datagram arrives on the local status port, and sends what
 * nb_status_format() wrote. docs/operations.md "Status port" documents
 * every field.
 *
 * The reply, one JSON object (no line breaks; shown broken here):
 *
 *   {"version":"0.1.0","uptime_s":3600,"peers":2,"sessions":1,"pairs":1,
 *    "max_peers":10000,"max_sessions":4096,"answers_per_s":12.500,
 *    "answers":{"stun_udp":40000,"control":5000},
 *    "refusals":{"bad_request":0,"unauthorized":0,"unknown_peer":1,
 *                "conflict":0,"rate_limited":0,"registry_full":0,
 *                "sessions_full":0,"server_error":0},
 *    "stun":{"udp_received":..,"udp_answered":..,"udp_errors":..,
 *            "dropped":{"not-stun":..,...},"tcp_accepted":..,
 *            "tcp_requests":..,"tcp_waits_at_limit":..},
 *    "control":{"received":..,"replies":..,"errors":..,"undecodable":..,
 *               "registers":..,"keepalives":..,"connects":..,"results":..,
 *               "expired":..,"relay_plans":..,"birthday_plans":..,"rtt_timed":..,
 *               "registers_also":..}}
 */
#ifndef NB_BROKER_STATUS_H
#define NB_BROKER_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker/binding.h"
#include "broker/rendezvous.h"
#include "broker/turn.h"

/* ---- Refusals by reason ----------------------------------------------------- */

/* Why the rendezvous refused a request: one per error code, with 503 split
 * by the limit that was hit. */
enum nb_status_refusal {
	NB_STATUS_REFUSED_BAD_REQUEST = 0, /* 400: undecodable or invalid request */
	NB_STATUS_REFUSED_UNAUTHORIZED,    /* 401: unsealed, missing or wrong token; 403: no admin token */
	NB_STATUS_REFUSED_UNKNOWN_PEER,    /* 404 (also: id held by another key) */
	NB_STATUS_REFUSED_CONFLICT,        /* 409: id held by another key */
	NB_STATUS_REFUSED_RATE_LIMITED,    /* 429: list queries over the rate */
	NB_STATUS_REFUSED_REGISTRY_FULL,   /* 503 on register: --max-peers */
	NB_STATUS_REFUSED_SESSIONS_FULL,   /* 503 on connect: --max-sessions */
	NB_STATUS_REFUSED_SERVER_ERROR,    /* 500 */
	NB_STATUS_REFUSAL_COUNT,
};

struct nb_status_refusals {
	uint64_t n[NB_STATUS_REFUSAL_COUNT];
};

/* Count ev if it is a refusal (NB_RV_EVENT_REFUSED, or NB_RV_EVENT_LIMIT
 * with an error code); every other event is ignored. Accepts NULL. */
void nb_status_count_refusal(struct nb_status_refusals *r, const struct nb_rendezvous_event *ev);

/* "bad_request", ...; NULL for an index out of range. */
const char *nb_status_refusal_name(unsigned i);

/* ---- Answers per second ----------------------------------------------------- */

/* The window the rate is averaged over. */
#define NB_STATUS_RATE_WINDOW_MS 10000
/* Samples kept: one a second over the window, and one more. */
#define NB_STATUS_RATE_SAMPLES 12

/* A ring of (time, running total) samples. Zero it to start. */
struct nb_status_rate {
	uint64_t t[NB_STATUS_RATE_SAMPLES];
	uint64_t v[NB_STATUS_RATE_SAMPLES];
	unsigned head; /* next slot to write */
	unsigned n;    /* samples held */
};

/* Record that the running total was `total` at `now` (ms, monotonic).
 * A sample older than the newest one held is ignored. */
void nb_status_rate_sample(struct nb_status_rate *r, uint64_t now, uint64_t total);

/* Answers per second, times 1000, between the oldest sample no older than
 * NB_STATUS_RATE_WINDOW_MS and (now, total). 0 without such a sample, or
 * when no time has passed. */
uint64_t nb_status_rate_milli(const struct nb_status_rate *r, uint64_t now, uint64_t total);

/* ---- The report --------------------------------------------------------------- */

/* Everything the report shows; the shell copies it from the server's
 * counters. */
struct nb_status_snapshot {
	const char *version; /* printed with anything but [0-9A-Za-z.+~-] as '?' */
	const char *key;     /* the broker's public key (base64url); NULL: not shown */
	uint64_t uptime_s;
	uint64_t answers_milli_per_s;
	size_t peers, sessions, pairs, max_peers, max_sessions;
	uint64_t answers_stun_udp, answers_control;
	struct nb_status_refusals refusals;
	/* STUN */
	uint64_t udp_received, udp_answered, udp_errors;
	uint64_t dropped[NB_BINDING_DROP_COUNT]; /* by nb_binding_drop_index() */
	uint64_t tcp_accepted, tcp_requests, tcp_waits_at_limit;
	/* control messages (broker/rendezvous.h nb_rendezvous_stats) */
	uint64_t ctl_received, ctl_replies, ctl_errors, ctl_undecodable;
	uint64_t ctl_registers, ctl_keepalives, ctl_connects, ctl_results, ctl_expired;
	uint64_t ctl_relay_plans, ctl_birthday_plans, ctl_rtt_timed; /* plans by kind; timed from both RTTs */
	uint64_t ctl_registers_also; /* second addresses (the other IP family) registered */
	/* sealed sessions (broker/plink.h nb_plink_stats) and refusals of the
	 * unsealed (rendezvous) */
	size_t links;
	uint64_t handshakes, handshake_failures, unsealed, key_conflicts;
	/* relay (broker/turn.h nb_turn_stats; docs/operations.md "relay") */
	unsigned relay_mode; /* NB_STATUS_RELAY_*; another value prints "?" */
	uint64_t relay_max_allocations;
	struct nb_turn_stats turn;
	uint64_t relay_sockets, tcp_control, tcp_turn, tcp_write_dropped;
};
enum { NB_STATUS_RELAY_OFF = 0, NB_STATUS_RELAY_TURN, NB_STATUS_RELAY_EXTERNAL };

/* Largest report nb_status_format() writes (every counter at UINT64_MAX),
 * with room to spare. */
#define NB_STATUS_MAX_LEN 8192

/* Write the report into buf (NUL-terminated). Returns its length without
 * the NUL, or -ENOSPC if it does not fit in len (buf then holds no
 * partial report: buf[0] is NUL when len > 0). */
ssize_t nb_status_format(const struct nb_status_snapshot *s, char *buf, size_t len);

/* True for a status request: the 6 bytes "status", optionally followed by
 * "\n" or "\r\n". */
bool nb_status_is_request(const uint8_t *buf, size_t len);

#endif
