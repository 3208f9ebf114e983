/* peer/portmap/upnp.h - the UPnP IGD client: discovery, description, SOAP port
 * mapping, renewal, re-adding, removal. A pure state machine in the style of
 * netcheck.h: the shell feeds it SSDP datagrams, HTTP results and `now`, and
 * carries out what nb_upnp_poll() hands it (an SSDP datagram to send, an
 * HTTP request to start, one to cancel). No sockets, no curl, no clock.
 *
 *   DISCOVER   M-SEARCH for every nb_ssdp_targets entry, resent every
 *              ssdp_rto_ms until discover_ms; the first good reply wins
 *   DESCRIBE   GET LOCATION (at most NB_IGD_XML_MAX bytes) -> nb_igd_parse
 *   EXTIP      GetExternalIPAddress. A useless external IP (empty, 0.0.0.0,
 *              RFC 1918, 100.64/10, loopback, link-local) ends here:
 *              UNUSABLE, no mapping is asked for
 *   MAP        AddAnyPortMapping on WANIPConnection:2, else AddPortMapping,
 *              for internal_port; external port = internal port first.
 *              Faults, as the research notes say (RESEARCH.md, UPnP):
 *                725 OnlyPermanentLeases   retry once with lease 0
 *                402 InvalidArgs           toggle lease 0 / lease_s once
 *                718, 729 conflict         next external port from a fixed
 *                                          sequence seeded by `seed`, <= 5 tries
 *                724 SamePortValuesRequired external = internal, once
 *                401/602 on AddAny...      fall back to AddPortMapping
 *                606, 501, anything else   REFUSED, with the code in reason
 *   MAPPED     renew at half the lease with the same external port (a
 *              permanent lease: check every check_s); every check_s,
 *              GetSpecificPortMappingEntry: 714 NoSuchEntry (router restart)
 *              -> add again, same port first. A renewal that must change
 *              the port raises NB_UPNP_EV_MAPPED again with the new address.
 *   STOPPING   DeletePortMapping (200 and 714 are success), bounded by
 *              stop_ms; then CLOSED. nb_upnp_stop() in any other state
 *              cancels what is in flight and closes at once.
 *
 * Only a port the machine knows it holds is ever deleted (on refusal, on a
 * useless external IP, at stop): one the router granted to us, with nothing
 * since saying otherwise. A check that finds another client on it, a 714
 * NoSuchEntry, or a 718/729 conflict when adding it again (renewal, re-add)
 * means it is someone else's now (the router restarted and another host got
 * there first): it is forgotten, never deleted. Until a new port is granted
 * the status stays MAPPED (re-adding), but stop and refusal delete nothing;
 * a stop while that re-add is out waits (within stop_ms) for its answer and
 * deletes only the port it grants.
 *
 * NewInternalClient is the local address of the HTTP connection to the
 * router, which the shell reports with each HTTP result (the description
 * fetch gives it before the first SOAP call).
 *
 * One HTTP request at a time. Every request has an id; a result with an id
 * other than the one in flight (late, cancelled, after stop) is ignored. The
 * state machine enforces its own per-request timeout (http_timeout_ms) and
 * then asks the shell to cancel; the shell's own timeout is only a backstop.
 * After CLOSED nothing more is asked of the shell. */
#ifndef NB_PEER_UPNP_H
#define NB_PEER_UPNP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "peer/portmap/igd.h"
#include "peer/portmap/soap.h"
#include "peer/portmap/ssdp.h"
#include "peer/portmap/url.h"

enum nb_upnp_status {
	NB_UPNP_IDLE = 0,    /* not started */
	NB_UPNP_WORKING,     /* discovering, describing, asking */
	NB_UPNP_MAPPED,      /* the router granted the mapping; `external` is set */
	NB_UPNP_UNAVAILABLE, /* no gateway answered, or its description/control was unusable */
	NB_UPNP_REFUSED,     /* the router refused the mapping (code in reason) */
	NB_UPNP_UNUSABLE,    /* external IP useless, or not the broker-observed one */
	NB_UPNP_CLOSED,      /* stopped; the mapping is deleted, or deleting gave up (reason) */
};

struct nb_upnp_params {
	uint16_t internal_port;   /* the agent's port (required) */
	bool tcp;                 /* map TCP instead of UDP (default false) */
	uint16_t external_port;   /* asked for first (default 0: the internal port) */
	uint32_t lease_s;         /* asked for (default 3600) */
	uint32_t discover_ms;     /* no good SSDP reply by then: UNAVAILABLE (default 2000) */
	uint32_t ssdp_rto_ms;     /* resend the M-SEARCHes (default 500) */
	uint32_t http_timeout_ms; /* per request (default 3000) */
	uint32_t check_s;         /* look for the mapping this often while MAPPED (default 60) */
	uint32_t stop_ms;         /* bound on the delete at stop (default 1000) */
	unsigned ssdp_flags;      /* NB_SSDP_ANY_HOST: tests only */
	char description[64];     /* NewPortMappingDescription (default "natpeer") */
};

/* Fill in the defaults above. */
void nb_upnp_params_default(struct nb_upnp_params *p);

enum nb_upnp_out_kind {
	NB_UPNP_OUT_SSDP = 1, /* send bytes to `to` (239.255.255.250:1900) from the SSDP socket */
	NB_UPNP_OUT_HTTP,     /* start request http_id */
	NB_UPNP_OUT_CANCEL,   /* abort request http_id; report nothing for it */
};

struct nb_upnp_out {
	enum nb_upnp_out_kind kind;
	/* SSDP, and the HTTP body: point into the state machine, valid until the next call into it */
	const uint8_t *bytes;
	size_t len;
	struct nb_addr to;
	/* HTTP */
	uint32_t http_id;
	bool post;                  /* POST with `bytes` as body (SOAP), else GET */
	struct nb_url url;
	const char *headers[NB_SOAP_HEADERS + 1]; /* extra header lines, NULL-terminated */
	size_t max_response;        /* abort the transfer past this many body bytes */
	uint32_t timeout_ms;
};

/* Progress, for the shell's lines ("found MiniUPnPd at 192.168.6.1", "mapped
 * UDP 40001 -> 203.0.113.106:40001 (lease 3600 s)"). */
enum nb_upnp_event_kind {
	NB_UPNP_EV_GATEWAY = 1, /* a gateway answered SSDP: gateway, server */
	NB_UPNP_EV_DESCRIBED,   /* the description is good: friendly name, service */
	NB_UPNP_EV_EXTERNAL_IP, /* the router's external IP */
	NB_UPNP_EV_MAPPED,      /* a mapping (first, or with a new external port) */
	NB_UPNP_EV_RENEWED,     /* the lease was renewed, same port */
	NB_UPNP_EV_READDED,     /* the mapping had vanished and was added again */
	NB_UPNP_EV_FAILED,      /* status became UNAVAILABLE, REFUSED or UNUSABLE */
	NB_UPNP_EV_CLOSED,      /* stop finished */
};

struct nb_upnp_event {
	enum nb_upnp_event_kind kind;
	uint64_t at;
};

struct nb_upnp_info {
	enum nb_upnp_status status;
	char reason[160];         /* in words, whenever status is not MAPPED/WORKING/IDLE */
	struct nb_addr gateway;   /* the SSDP responder, once known */
	char server[129];         /* its SERVER header */
	struct nb_igd igd;        /* once described */
	struct nb_addr external;  /* MAPPED: external IP and port */
	uint32_t lease_s;         /* MAPPED: the lease granted (0 = permanent) */
	struct nb_addr internal_client; /* the address mapped to */
	uint64_t mapped_at;       /* MAPPED: when it was first granted */
};

#define NB_UPNP_EVENTS 8

struct nb_upnp; /* defined below; members are private to upnp.c */

void nb_upnp_init(struct nb_upnp *u, const struct nb_upnp_params *p, uint64_t seed, uint64_t now);
/* Start discovery. */
void nb_upnp_start(struct nb_upnp *u, uint64_t now);
/* The next thing to do now: 1 and *out filled, or 0. Call until 0. */
int nb_upnp_poll(struct nb_upnp *u, uint64_t now, struct nb_upnp_out *out);
/* An SSDP datagram. 0 taken; -EINVAL ignored (bad, or not wanted now). */
int nb_upnp_ssdp_input(struct nb_upnp *u, const uint8_t *buf, size_t len, const struct nb_addr *from,
		       uint64_t now);
/* The result of request http_id: the HTTP status (0 if the transfer failed;
 * then err says why, else err is NULL), the body (possibly cut at
 * max_response: then `truncated`), and the local address of the connection. */
void nb_upnp_http_done(struct nb_upnp *u, uint32_t http_id, int status, const uint8_t *body, size_t len,
		       bool truncated, const struct nb_addr *local, const char *err, uint64_t now);
/* The reflexive IP the broker observed. If MAPPED (or later mapped) with a
 * different external IP: the mapping is deleted and the status is UNUSABLE. */
void nb_upnp_set_reflexive(struct nb_upnp *u, const struct nb_addr *reflexive, uint64_t now);
/* Look for the mapping now rather than at the next check (e.g. the broker
 * could not verify it). No-op unless MAPPED. */
void nb_upnp_check_now(struct nb_upnp *u, uint64_t now);
/* Stop: delete the mapping if there is one we hold (bounded by stop_ms), else close. */
void nb_upnp_stop(struct nb_upnp *u, uint64_t now);
/* When nb_upnp_poll must next be called; UINT64_MAX when nothing is pending. */
uint64_t nb_upnp_deadline(const struct nb_upnp *u);
/* Pop one progress event: 1, or 0 when none. At most NB_UPNP_EVENTS are kept;
 * older ones are dropped first (counted in dropped_events). */
int nb_upnp_event(struct nb_upnp *u, struct nb_upnp_event *ev);
const struct nb_upnp_info *nb_upnp_info(const struct nb_upnp *u);
bool nb_upnp_closed(const struct nb_upnp *u);

/* "mapped", "unavailable", ...: the words of netcheck --json's upnp.status
 * for the router-side part ("working" and "idle" for the others). */
const char *nb_upnp_status_string(enum nb_upnp_status s);

/* ---- private -------------------------------------------------------------------- */
struct nb_upnp {
	struct nb_upnp_params p;
	struct nb_upnp_info info;
	/* filled by upnp.c */
	int state;             /* upnp.c's enum: finer than info.status */
	uint64_t seed;
	uint64_t now;          /* the latest `now` seen */
	/* discovery */
	uint64_t discover_end; /* no good reply by then: UNAVAILABLE */
	uint64_t ssdp_next;    /* next round of M-SEARCHes */
	uint8_t ssdp_left;     /* M-SEARCHes of the current round not yet handed out */
	uint32_t ssdp_refused; /* replies refused, and why the last one was */
	const char *ssdp_why;
	struct nb_url location;
	char ssdp_buf[256];
	/* the one HTTP request (built when queued, handed out by poll) */
	uint32_t next_id;
	uint32_t req_id;
	uint8_t req_stage;     /* none, queued, in flight */
	int req_action;        /* enum nb_soap_action, or -1 for the description GET */
	uint64_t req_deadline; /* in flight: our own timeout */
	struct nb_soap_request soap;
	uint32_t cancel[2];    /* CANCELs not yet handed out */
	uint8_t n_cancel;
	/* mapping */
	struct nb_addr local;     /* the last local IPv4 address the shell reported */
	struct nb_addr reflexive; /* what the broker saw; family NONE until known */
	bool have_external;       /* info.external's IP is the router's, and usable */
	bool held;                /* the router granted info.external.port to us and
				   * nothing since says otherwise: the only port we
				   * ever delete */
	uint8_t episode;          /* initial, renewal or re-add: how the add started */
	uint32_t lease;           /* asked for by the current try */
	uint16_t want_port;       /* external port of the current try */
	bool use_any;             /* AddAnyPortMapping for the next initial try */
	bool tried_725, tried_402, tried_724;
	uint8_t conflicts;        /* new ports drawn in the current episode */
	uint32_t port_seq;        /* position in the seeded port sequence */
	uint64_t renew_at, check_at, stop_end;
	bool stop_await_add;      /* STOPPING: an add was in flight; delete what it grants */
	/* progress events: a ring */
	struct nb_upnp_event ev[NB_UPNP_EVENTS];
	uint8_t ev_head, ev_len;
	uint32_t dropped_events;
};

#endif
