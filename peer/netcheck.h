/* peer/netcheck.h - RFC 5780 NAT behaviour discovery, client side. Pure: no
 * sockets, no clock; the shell feeds datagrams and `now`, and sends what
 * nb_netcheck_poll() hands it.
 *
 * Two sockets:
 *   NB_NC_MAP   the agent's own socket: mapping tests (RFC 5780 §4.3)
 *                 I   -> primary address          reflexive M1, OTHER-ADDRESS
 *                 II  -> alternate IP, primary port   M2 == M1 ? EIM
 *                 III -> alternate IP and port        M3 == M2 ? ADM : APDM
 *   NB_NC_FILT  a second socket: filtering tests (§4.4), so that traffic of
 *               the mapping tests to the alternate address cannot open a
 *               filter keyed on the internal port (stuntman issue 18)
 *                 I   -> primary, plain
 *                 II  -> primary, CHANGE-REQUEST ip+port: answered ? EIF
 *                 III -> primary, CHANGE-REQUEST port:    answered ? ADF : APDF
 *   hairpin     a Binding request from NB_NC_FILT to M1: does NB_NC_MAP see it?
 *               A hairpinned packet never leaves the router, so this waits
 *               the round trip of test I plus 2 ms (at most 500 ms), not
 *               the full give-up time: the hairpin path is part of the
 *               path to the server. The shell must read what has arrived
 *               before it lets a deadline pass (nb_udp_drain), or a busy
 *               machine turns a late wake-up into "no hairpin".
 *
 * Phases (each test starts as soon as its inputs are known):
 *   1. mapping I and filtering I, at once, both to the primary address;
 *   2. filtering II and III (after filtering I), and the hairpin probe
 *      (after both tests I; it talks to M1 only), at once;
 *   3. mapping II and III (after mapping I), only once filtering II is
 *      decided (answered or given up; or it will never run). A second
 *      socket is not enough: a filter keyed on the remote IP alone, across
 *      all internal ports (lab router r-hr), opens for the alternate IP on
 *      the first datagram to it from any port, and then lets filtering II's
 *      answer in: "endpoint-independent" for an address-dependent filter.
 *      So nothing goes to the alternate IP before filtering II is decided.
 * Timing: an answered filtering II (EIF) costs one round trip more than
 * running everything at once (3 RTT in all); a filtered one (ADF, APDF)
 * costs the give-up time plus one round trip (1.6 s + 2 RTT).
 *
 * Each transaction is retransmitted until answered or its give-up time: a
 * filtering test's "no answer" costs exactly that. By default every 100 ms
 * (no doubling), 16 sends in 1.6 s: a "no answer" verdict must survive
 * loss; with round trips lost with probability q it is wrong with q^16, not
 * q^6 (see netcheck.c). */
#ifndef NB_PEER_NETCHECK_H
#define NB_PEER_NETCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "proto/ctrl.h"
#include "proto/stun.h"

enum { NB_NC_MAP = 0, NB_NC_FILT = 1 };

enum nb_nc_test {
	NB_NC_T_MAP1 = 0,
	NB_NC_T_FLT1,
	NB_NC_T_MAP2,
	NB_NC_T_MAP3,
	NB_NC_T_FLT2,
	NB_NC_T_FLT3,
	NB_NC_T_HAIRPIN,
	NB_NC_T_COUNT,
};

struct nb_netcheck_params {
	uint32_t rto_ms;     /* first retransmission timeout (default 100) */
	uint32_t rto_max_ms; /* cap on the doubling (default 100: no doubling) */
	uint32_t give_up_ms; /* a transaction with no answer by then has none (default 1600) */
	bool hairpin;        /* run the hairpin probe (default true) */
};

struct nb_netcheck_result {
	bool udp_blocked;   /* no answer to either test I */
	bool rfc5780;       /* the server gave an alternate address and honoured CHANGE-REQUEST */
	enum nb_mapping mapping;
	enum nb_filtering filtering;
	enum nb_nat_type nat;
	struct nb_addr reflexive; /* M1, the agent socket's mapping as the server saw it */
	struct nb_addr local;     /* the agent socket's local address */
	int hairpin;              /* -1 not tested, 0 no, 1 yes */
	uint64_t ms;              /* from start to done */
	char note[128];           /* why something is unknown, if it is */
};

/* One datagram to send. bytes points into the netcheck object and stays valid
 * until the next call into it. */
struct nb_netcheck_tx {
	int sock; /* NB_NC_MAP or NB_NC_FILT */
	struct nb_addr to;
	const uint8_t *bytes;
	size_t len;
};

/* A transaction's state (struct nb_nc_txn.state). */
enum { NB_NC_IDLE = 0, NB_NC_ACTIVE, NB_NC_ANSWERED, NB_NC_FAILED };

struct nb_nc_txn {
	uint8_t state; /* NB_NC_IDLE, _ACTIVE, _ANSWERED, _FAILED */
	uint8_t sends;
	uint64_t first_send, next_send, give_up;
	uint32_t rto;
	int sock;
	struct nb_addr to;
	uint32_t change;
	uint8_t tid[NB_STUN_TID_LEN];
	/* what the answer said */
	struct nb_addr mapped, other, from;
	uint64_t rtt; /* answer time - first send */
	uint16_t error;
};

struct nb_netcheck {
	struct nb_netcheck_params p;
	struct nb_addr server;
	uint64_t start, end;
	bool done;
	struct nb_nc_txn t[NB_NC_T_COUNT];
	uint8_t out[128];
	struct nb_netcheck_result r;
};

/* Start. server: the broker's (or any RFC 5780 server's) primary address.
 * local: the agent socket's local address (the IP it uses toward server).
 * seed: 12 random bytes; the transaction ids derive from it. p may be NULL. */
void nb_netcheck_init(struct nb_netcheck *nc, const struct nb_netcheck_params *p,
		      const struct nb_addr *server, const struct nb_addr *local,
		      const uint8_t seed[NB_STUN_TID_LEN], uint64_t now);

/* Next datagram due at `now`: 1 and *out filled, or 0 when none is due. Call
 * it until it returns 0. */
int nb_netcheck_poll(struct nb_netcheck *nc, uint64_t now, struct nb_netcheck_tx *out);

/* A datagram that arrived on `sock`. Returns 0 when it belonged to netcheck,
 * -1 otherwise (it changes nothing then). */
int nb_netcheck_input(struct nb_netcheck *nc, int sock, const uint8_t *buf, size_t len,
		      const struct nb_addr *from, uint64_t now);

/* When to call nb_netcheck_poll() next; UINT64_MAX once done. */
uint64_t nb_netcheck_deadline(const struct nb_netcheck *nc);

bool nb_netcheck_done(const struct nb_netcheck *nc);
/* The verdict; meaningful once done. */
const struct nb_netcheck_result *nb_netcheck_result(const struct nb_netcheck *nc);
/* The reflexive address (test I's answer), as soon as it is known, before
 * the verdict: true and *ret, or false. */
bool nb_netcheck_reflexive(const struct nb_netcheck *nc, struct nb_addr *ret);

#endif
