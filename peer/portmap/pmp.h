/* peer/portmap/pmp.h - the NAT-PMP (RFC 6886) and PCP (RFC 6887) client: one
 * mapping, probed with both protocols at once, then kept with the one the
 * router answers best. A pure state machine in the style of upnp.h: the
 * shell feeds it the datagrams that arrive from the gateway's port 5351 and
 * `now`, and sends what nb_pmp_poll() hands it to that port. No sockets, no
 * clock.
 *
 *   PROBE     PCP MAP (our nonce) and NAT-PMP "external address" at once,
 *             each resent at first_rto_ms doubling (PCP with RFC 6887
 *             §8.1.1's +-10% jitter), until probe_ms:
 *               PCP SUCCESS for our nonce        -> MAPPED (protocol pcp)
 *               PCP UNSUPP_VERSION (either format)-> PCP is off; NAT-PMP goes on
 *               NAT-PMP external address first   -> wait first_rto_ms more for
 *                                                   PCP, then MAP with NAT-PMP
 *               nothing by probe_ms, or ICMP      -> UNAVAILABLE
 *                 port unreachable on both
 *   MAP       NAT-PMP MAP for internal_port, suggesting external_port,
 *             resent at first_rto_ms doubling, bounded by map_tries
 *   MAPPED    renew at half the lifetime, suggesting the same external port
 *             (PCP: the same nonce); every check_s an ANNOUNCE / external
 *             address request reads the epoch. An epoch that went back
 *             (RFC 6886 §3.6, RFC 6887 §8.5) means the router lost its
 *             mappings: map again (READDED). A new external port or IP is
 *             MAPPED again.
 *   STOPPING  a delete (lifetime 0) resent every first_rto_ms, bounded by
 *             stop_ms; any answer ends it; then CLOSED
 *
 * Every result code has its own reason (nb_natpmp_result_string,
 * nb_pcp_result_string). Refusals are REFUSED, except: UNSUPP_VERSION (the
 * other protocol is tried), PCP's ADDRESS_MISMATCH (a NAT between us and
 * the router: UNUSABLE) and a useless external IP (UNUSABLE; a mapping
 * made is deleted). Transient errors while MAPPED (NETWORK_FAILURE,
 * NO_RESOURCES, ...) are retried within the lifetime.
 *
 * A datagram from anywhere but the gateway's port 5351, or that does not
 * answer what is outstanding (opcode, PCP nonce, protocol, internal port),
 * is ignored and counted. */
#ifndef NB_PORTMAP_PMP_H
#define NB_PORTMAP_PMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "peer/portmap/natpmp.h"
#include "peer/portmap/pcp.h"

enum nb_pmp_status {
	NB_PMP_IDLE = 0,    /* not started */
	NB_PMP_WORKING,     /* probing, mapping */
	NB_PMP_MAPPED,      /* the router granted the mapping; `external` is set */
	NB_PMP_UNAVAILABLE, /* no NAT-PMP or PCP on the gateway */
	NB_PMP_REFUSED,     /* the router refused (code in reason) */
	NB_PMP_UNUSABLE,    /* external IP useless, or not the broker-observed one */
	NB_PMP_CLOSED,      /* stopped */
};

enum nb_pmp_proto { NB_PMP_NONE = 0, NB_PMP_PCP, NB_PMP_NATPMP };

struct nb_pmp_params {
	uint16_t internal_port;  /* required */
	bool tcp;                /* map TCP instead of UDP */
	uint16_t external_port;  /* suggested; 0 = the internal port */
	uint32_t lease_s;        /* asked for (default 7200, RFC 6886's recommendation) */
	bool pcp, natpmp;        /* which to try (default both) */
	uint32_t first_rto_ms;   /* first retransmission (default 250) */
	uint32_t probe_ms;       /* no answer by then: UNAVAILABLE (default 2000) */
	uint8_t map_tries;       /* NAT-PMP MAP sends per try (default 4: 250+500+1000+2000 ms) */
	uint32_t check_s;        /* read the epoch this often while MAPPED (default 60) */
	uint32_t stop_ms;        /* bound on the delete at stop (default 1000) */
};

void nb_pmp_params_default(struct nb_pmp_params *p);

/* Progress, for the shell's lines. */
enum nb_pmp_event_kind {
	NB_PMP_EV_ANSWERED = 1, /* the gateway answered: info.protocol says which */
	NB_PMP_EV_MAPPED,       /* a mapping (first, or with a new external address) */
	NB_PMP_EV_RENEWED,      /* renewed, same external address */
	NB_PMP_EV_READDED,      /* the router had restarted (epoch); mapped again */
	NB_PMP_EV_FAILED,       /* status became UNAVAILABLE, REFUSED or UNUSABLE */
	NB_PMP_EV_CLOSED,       /* stop finished */
};

struct nb_pmp_event {
	enum nb_pmp_event_kind kind;
	uint64_t at;
};

struct nb_pmp_info {
	enum nb_pmp_status status;
	enum nb_pmp_proto protocol; /* who answered; the mapping's protocol once MAPPED */
	char reason[200];
	struct nb_addr gateway;     /* port 5351 */
	struct nb_addr external;    /* MAPPED: external IP and port */
	uint32_t lease_s;           /* MAPPED: granted */
	uint32_t epoch;             /* the latest epoch the router sent */
	uint64_t mapped_at;
	uint32_t renewals, readds;  /* counters, for tests and reports */
	uint32_t ignored;           /* datagrams ignored (wrong source, nonce, ...) */
};

#define NB_PMP_EVENTS 8
#define NB_PMP_OUT_MAX 64 /* the largest request we build: a PCP MAP is 60 */

struct nb_pmp_out {
	const uint8_t *bytes; /* into the state machine, valid until the next call */
	size_t len;
	struct nb_addr to;    /* the gateway, port 5351 */
};

struct nb_pmp;

/* `client` is the host's own address on the gateway's link (PCP's client
 * address: the shell's local address after connecting to the gateway).
 * IPv4, or IPv6: then only PCP is asked (NAT-PMP is IPv4-only, RFC 6886:
 * p->natpmp is ignored), the MAP suggests `client` itself as the external
 * address (a firewall pinhole, RFC 6887 §11.1: no translation), and a MAP
 * answer with an IPv4 external address is ignored (as is an IPv6 one for an
 * IPv4 client). The reflexive IP given to nb_pmp_set_reflexive must be of
 * the client's family. `nonce` seeds PCP's mapping nonce and the jitter. */
void nb_pmp_init(struct nb_pmp *m, const struct nb_pmp_params *p, const struct nb_addr *gateway,
		 const struct nb_addr *client, const uint8_t nonce[NB_PCP_NONCE_LEN], uint64_t now);
void nb_pmp_start(struct nb_pmp *m, uint64_t now);
/* 1 and *out filled, or 0. Call until 0. */
int nb_pmp_poll(struct nb_pmp *m, uint64_t now, struct nb_pmp_out *out);
/* A datagram from `from`. 0 taken; -EINVAL ignored. */
int nb_pmp_input(struct nb_pmp *m, const uint8_t *buf, size_t len, const struct nb_addr *from, uint64_t now);
/* The gateway's port 5351 is closed (ICMP port unreachable). */
void nb_pmp_unreachable(struct nb_pmp *m, uint64_t now);
/* The reflexive IP the broker observed (of the client's family; another is
 * ignored): a mapping on another external IP is deleted and UNUSABLE. */
void nb_pmp_set_reflexive(struct nb_pmp *m, const struct nb_addr *reflexive, uint64_t now);
/* Read the epoch now rather than at the next check (no-op unless MAPPED). */
void nb_pmp_check_now(struct nb_pmp *m, uint64_t now);
/* Delete the mapping if there is one (bounded by stop_ms), else close. */
void nb_pmp_stop(struct nb_pmp *m, uint64_t now);
uint64_t nb_pmp_deadline(const struct nb_pmp *m);
int nb_pmp_event(struct nb_pmp *m, struct nb_pmp_event *ev);
const struct nb_pmp_info *nb_pmp_info(const struct nb_pmp *m);
bool nb_pmp_closed(const struct nb_pmp *m);
/* Has the gateway answered anything (a probe, an error)? */
bool nb_pmp_answered(const struct nb_pmp *m);
/* "pcp", "nat-pmp", "" */
const char *nb_pmp_proto_string(enum nb_pmp_proto p);

/* ---- private -------------------------------------------------------------------- */
struct nb_pmp {
	struct nb_pmp_params p;
	struct nb_pmp_info info;
	int state;
	uint64_t now;
	uint64_t rng;
	struct nb_addr client;
	struct nb_addr reflexive;
	uint8_t nonce[NB_PCP_NONCE_LEN];
	/* the two exchanges that may be outstanding: [0] PCP, [1] NAT-PMP */
	struct {
		bool active;      /* a request is outstanding */
		uint8_t what;     /* pmp.c's request kind */
		uint8_t sent;     /* times sent */
		uint8_t max;      /* 0: until `until` */
		uint32_t rto;     /* the next interval */
		uint64_t next;    /* when to send it (again) */
		uint64_t until;   /* give up then */
		bool dead;        /* this protocol is out (unsupported, unreachable) */
	} x[2];
	bool answered;
	bool probe_refused;       /* PROBE: a protocol refused (reason set), not merely silent */
	bool natpmp_ready;        /* NAT-PMP told us the external IP */
	struct nb_addr natpmp_ext;/* ... which it is */
	uint64_t pcp_grace;       /* PROBE: NAT-PMP answered; PCP has until then */
	uint64_t probe_end;
	bool held;                /* a mapping the router granted us, not yet deleted */
	uint16_t want_port;       /* external port to suggest */
	uint32_t epoch_at_s;      /* info.epoch ... */
	uint64_t epoch_seen;      /* ... received at this time */
	bool have_epoch;
	uint64_t renew_at, check_at, expire_at, retry_at;
	uint8_t episode;          /* initial, renewal, re-add, check */
	uint8_t buf[NB_PMP_OUT_MAX];
	struct nb_pmp_event ev[NB_PMP_EVENTS];
	uint8_t ev_head, ev_len;
};

#endif
