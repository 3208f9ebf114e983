/* peer/netcheck.c - RFC 5780 NAT behaviour discovery, client side. */
#include "peer/netcheck.h"

#include <stdio.h>
#include <string.h>

#include "proto/nat.h"

enum { T_IDLE = NB_NC_IDLE, T_ACTIVE = NB_NC_ACTIVE, T_ANSWERED = NB_NC_ANSWERED, T_FAILED = NB_NC_FAILED };

/* The hairpin wait: test I's round trip plus this slack, at most MAX. */
#define NB_NC_HAIRPIN_SLACK_MS 2
#define NB_NC_HAIRPIN_MAX_MS 500

/* A filtering test's verdict is "no answer", so the number of sends before
 * giving up is what bounds a wrong verdict on a lossy path: with a round
 * trip lost with probability q, all n sends go unanswered with q^n. At 20%
 * loss each way (q = 1 - 0.8^2 = 0.36) the doubling schedule of 6 sends
 * (0, 100, 300, 700, 1100, 1500 ms) gave 0.36^6 = 2.2e-3 per test, about
 * 1e-2 per run; 16 sends, one every 100 ms, give 0.36^16 = 8e-8 in the same
 * 1.6 s. An answered test stops at its answer, so only the tests whose
 * verdict is "no answer" send more: 16 datagrams of 28-36 bytes. */
static const struct nb_netcheck_params default_params = {
	.rto_ms = 100,
	.rto_max_ms = 100,
	.give_up_ms = 1600,
	.hairpin = true,
};

void nb_netcheck_init(struct nb_netcheck *nc, const struct nb_netcheck_params *p,
		      const struct nb_addr *server, const struct nb_addr *local,
		      const uint8_t seed[NB_STUN_TID_LEN], uint64_t now)
{
	memset(nc, 0, sizeof(*nc));
	nc->p = p ? *p : default_params;
	nc->server = *server;
	nc->start = now;
	nc->r.local = *local;
	nc->r.hairpin = -1;
	for (int i = 0; i < NB_NC_T_COUNT; i++) {
		memcpy(nc->t[i].tid, seed, NB_STUN_TID_LEN);
		nc->t[i].tid[NB_STUN_TID_LEN - 1] ^= (uint8_t)(i + 1);
		nc->t[i].sock = (i == NB_NC_T_MAP1 || i == NB_NC_T_MAP2 || i == NB_NC_T_MAP3) ? NB_NC_MAP
															: NB_NC_FILT;
	}
}

static void start(struct nb_netcheck *nc, enum nb_nc_test i, const struct nb_addr *to, uint32_t change,
		  uint64_t now)
{
	struct nb_nc_txn *t = &nc->t[i];

	t->state = T_ACTIVE;
	t->to = *to;
	t->change = change;
	t->first_send = now;
	t->next_send = now;
	t->give_up = now + nc->p.give_up_ms;
	t->rto = nc->p.rto_ms;
}

static void set_note(struct nb_netcheck *nc, const char *note)
{
	if (nc->r.note[0] == '\0')
		snprintf(nc->r.note, sizeof(nc->r.note), "%s", note);
}

/* Work out the verdict once every started transaction has settled. */
static void conclude(struct nb_netcheck *nc, uint64_t now)
{
	struct nb_nc_txn *t = nc->t;
	struct nb_netcheck_result *r = &nc->r;

	for (int i = 0; i < NB_NC_T_COUNT; i++)
		if (t[i].state == T_ACTIVE)
			return;
	nc->done = true;
	nc->end = now;
	r->ms = now - nc->start;
	r->mapping = NB_MAPPING_UNKNOWN;
	r->filtering = NB_FILTERING_UNKNOWN;

	if (t[NB_NC_T_MAP1].state != T_ANSWERED) {
		r->udp_blocked = t[NB_NC_T_FLT1].state != T_ANSWERED;
		set_note(nc, r->udp_blocked ? "no answer from the server over UDP"
					    : "no answer to the mapping test");
		r->nat = nb_nat_type_of(r->mapping, r->filtering, r->udp_blocked);
		return;
	}
	r->reflexive = t[NB_NC_T_MAP1].mapped;

	/* Mapping (RFC 5780 §4.3). */
	if (nb_addr_equal(&r->reflexive, &r->local))
		r->mapping = NB_MAPPING_NONE;
	else if (t[NB_NC_T_MAP2].state == T_ANSWERED) {
		if (nb_addr_equal(&t[NB_NC_T_MAP2].mapped, &r->reflexive))
			r->mapping = NB_MAPPING_ENDPOINT_INDEPENDENT;
		else if (t[NB_NC_T_MAP3].state == T_ANSWERED)
			r->mapping = nb_addr_equal(&t[NB_NC_T_MAP3].mapped, &t[NB_NC_T_MAP2].mapped)
					     ? NB_MAPPING_ADDRESS_DEPENDENT
					     : NB_MAPPING_ADDRESS_AND_PORT_DEPENDENT;
		else
			set_note(nc, "no answer from the alternate address and port");
	} else if (t[NB_NC_T_MAP1].other.family == NB_AF_NONE) {
		set_note(nc, "the server gave no alternate address (not RFC 5780)");
	} else {
		set_note(nc, "no answer from the alternate address");
	}

	/* Filtering (RFC 5780 §4.4). */
	if (t[NB_NC_T_FLT1].state != T_ANSWERED) {
		set_note(nc, "no answer to the filtering test");
	} else if (t[NB_NC_T_FLT2].state == T_ANSWERED) {
		r->filtering = NB_FILTERING_ENDPOINT_INDEPENDENT;
	} else if (t[NB_NC_T_FLT3].state == T_ANSWERED) {
		r->filtering = NB_FILTERING_ADDRESS_DEPENDENT;
	} else if (t[NB_NC_T_FLT2].error != 0 || t[NB_NC_T_FLT3].error != 0) {
		set_note(nc, "the server refused CHANGE-REQUEST (one address only?)");
	} else if (t[NB_NC_T_FLT2].state == T_FAILED && t[NB_NC_T_FLT3].state == T_FAILED) {
		r->filtering = NB_FILTERING_ADDRESS_AND_PORT_DEPENDENT;
	}
	r->rfc5780 = t[NB_NC_T_MAP1].other.family != NB_AF_NONE && t[NB_NC_T_FLT2].error == 0 &&
		     t[NB_NC_T_FLT3].error == 0;
	if (t[NB_NC_T_HAIRPIN].state != T_IDLE)
		r->hairpin = t[NB_NC_T_HAIRPIN].state == T_ANSWERED;
	r->nat = nb_nat_type_of(r->mapping, r->filtering, false);
}

/* Is filtering test II (change IP and port) decided, or will it never run?
 * Nothing may be sent to the alternate IP before: a filter keyed on the
 * remote IP alone, across all internal ports, opens for IP2 on the first
 * datagram to it from any socket, and would then let test II's answer in
 * (endpoint-independent, while the truth is address-dependent). */
static bool flt2_settled(const struct nb_netcheck *nc)
{
	const struct nb_nc_txn *t = nc->t;

	if (t[NB_NC_T_FLT2].state == T_ANSWERED || t[NB_NC_T_FLT2].state == T_FAILED)
		return true;
	/* test II never starts: no answer to filtering test I, or no alternate address */
	return t[NB_NC_T_FLT2].state == T_IDLE &&
	       (t[NB_NC_T_FLT1].state == T_FAILED ||
		(t[NB_NC_T_FLT1].state == T_ANSWERED && t[NB_NC_T_FLT1].other.family == NB_AF_NONE));
}

/* Phase 2 (filtering II and III, and the hairpin probe, which talks to M1
 * only) starts as soon as its inputs are known; phase 3 (mapping II and
 * III, to the alternate IP) once filtering test II is decided. */
static void advance(struct nb_netcheck *nc, uint64_t now)
{
	struct nb_nc_txn *t = nc->t;

	if (t[NB_NC_T_MAP1].state == T_ANSWERED && t[NB_NC_T_MAP2].state == T_IDLE &&
	    t[NB_NC_T_MAP1].other.family != NB_AF_NONE &&
	    !nb_addr_equal(&t[NB_NC_T_MAP1].mapped, &nc->r.local) && flt2_settled(nc)) {
		struct nb_addr alt_ip = t[NB_NC_T_MAP1].other;
		alt_ip.port = nc->server.port;
		start(nc, NB_NC_T_MAP2, &alt_ip, 0, now);
		start(nc, NB_NC_T_MAP3, &t[NB_NC_T_MAP1].other, 0, now);
	}
	if (t[NB_NC_T_FLT1].state == T_ANSWERED && t[NB_NC_T_FLT2].state == T_IDLE &&
	    t[NB_NC_T_FLT1].other.family != NB_AF_NONE) {
		start(nc, NB_NC_T_FLT2, &nc->server, NB_STUN_CHANGE_IP | NB_STUN_CHANGE_PORT, now);
		start(nc, NB_NC_T_FLT3, &nc->server, NB_STUN_CHANGE_PORT, now);
	}
	if (nc->p.hairpin && t[NB_NC_T_HAIRPIN].state == T_IDLE && t[NB_NC_T_MAP1].state == T_ANSWERED &&
	    t[NB_NC_T_FLT1].state == T_ANSWERED && !nb_addr_equal(&t[NB_NC_T_MAP1].mapped, &nc->r.local)) {
		/* The hairpin path (host, router, host) is part of the path to the
		 * server, so test I's round trip bounds it; after a retransmission
		 * that round trip is itself only an upper bound. */
		uint64_t rtt = t[NB_NC_T_MAP1].rtt, wait = rtt + NB_NC_HAIRPIN_SLACK_MS;
		start(nc, NB_NC_T_HAIRPIN, &t[NB_NC_T_MAP1].mapped, 0, now);
		if (wait > NB_NC_HAIRPIN_MAX_MS)
			wait = NB_NC_HAIRPIN_MAX_MS;
		t[NB_NC_T_HAIRPIN].give_up = now + wait;
	}
	conclude(nc, now);
}

int nb_netcheck_poll(struct nb_netcheck *nc, uint64_t now, struct nb_netcheck_tx *out)
{
	if (nc->done)
		return 0;
	if (nc->t[NB_NC_T_MAP1].state == T_IDLE) {
		start(nc, NB_NC_T_MAP1, &nc->server, 0, now);
		start(nc, NB_NC_T_FLT1, &nc->server, 0, now);
	}
	for (int i = 0; i < NB_NC_T_COUNT; i++) {
		struct nb_nc_txn *t = &nc->t[i];
		if (t->state == T_ACTIVE && now >= t->give_up) {
			t->state = T_FAILED;
			advance(nc, now);
			if (nc->done)
				return 0;
		}
	}
	for (int i = 0; i < NB_NC_T_COUNT; i++) {
		struct nb_nc_txn *t = &nc->t[i];
		struct nb_stun_enc e;
		if (t->state != T_ACTIVE || now < t->next_send)
			continue;
		if (nb_stun_enc_init(&e, nc->out, sizeof(nc->out), NB_STUN_BINDING_REQUEST, t->tid, false) != 0)
			continue;
		if (t->change != 0 && nb_stun_enc_u32(&e, NB_STUN_ATTR_CHANGE_REQUEST, t->change) != 0)
			continue;
		if (nb_stun_enc_fingerprint(&e) != 0)
			continue;
		t->sends++;
		t->next_send = now + t->rto;
		t->rto = t->rto * 2 > nc->p.rto_max_ms ? nc->p.rto_max_ms : t->rto * 2;
		out->sock = t->sock;
		out->to = t->to;
		out->bytes = nc->out;
		out->len = nb_stun_enc_len(&e);
		return 1;
	}
	return 0;
}

int nb_netcheck_input(struct nb_netcheck *nc, int sock, const uint8_t *buf, size_t len,
		      const struct nb_addr *from, uint64_t now)
{
	struct nb_stun_msg m;
	struct nb_nc_txn *t = NULL;

	if (nc->done || nb_stun_decode(&m, buf, len) < 0 || m.classic || m.method != NB_STUN_METHOD_BINDING)
		return -1;
	for (int i = 0; i < NB_NC_T_COUNT; i++)
		if (memcmp(nc->t[i].tid, m.tid, NB_STUN_TID_LEN) == 0)
			t = &nc->t[i];
	if (t == NULL || t->state != T_ACTIVE)
		return -1;

	if (t == &nc->t[NB_NC_T_HAIRPIN]) {
		/* Our own request, looped through the NAT to the agent socket. */
		if (sock != NB_NC_MAP || m.cls != NB_STUN_CLASS_REQUEST)
			return -1;
		t->state = T_ANSWERED;
		advance(nc, now);
		return 0;
	}
	if (sock != t->sock)
		return -1;
	if (m.cls == NB_STUN_CLASS_ERROR) {
		t->error = (m.present & NB_STUN_HAS_ERROR_CODE) ? m.error_code : 500;
		t->state = T_FAILED;
		advance(nc, now);
		return 0;
	}
	if (m.cls != NB_STUN_CLASS_SUCCESS)
		return -1;
	/* A changed answer must really come from elsewhere: a server that ignores
	 * CHANGE-REQUEST would otherwise make every NAT look open. */
	if ((t->change & NB_STUN_CHANGE_IP) && nb_addr_ip_equal(from, &nc->server))
		return -1;
	if ((t->change & NB_STUN_CHANGE_PORT) && from->port == nc->server.port)
		return -1;
	if (m.present & NB_STUN_HAS_XOR_MAPPED)
		t->mapped = m.xor_mapped;
	else if (m.present & NB_STUN_HAS_MAPPED)
		t->mapped = m.mapped;
	else
		return -1;
	if (m.present & NB_STUN_HAS_OTHER_ADDRESS)
		t->other = m.other_address;
	else if (m.present & NB_STUN_HAS_CHANGED)
		t->other = m.changed;
	t->from = *from;
	t->rtt = now - t->first_send;
	t->state = T_ANSWERED;
	advance(nc, now);
	return 0;
}

uint64_t nb_netcheck_deadline(const struct nb_netcheck *nc)
{
	uint64_t d = UINT64_MAX;

	if (nc->done)
		return d;
	if (nc->t[NB_NC_T_MAP1].state == T_IDLE)
		return nc->start;
	for (int i = 0; i < NB_NC_T_COUNT; i++) {
		const struct nb_nc_txn *t = &nc->t[i];
		if (t->state != T_ACTIVE)
			continue;
		if (t->next_send < d)
			d = t->next_send;
		if (t->give_up < d)
			d = t->give_up;
	}
	return d;
}

bool nb_netcheck_done(const struct nb_netcheck *nc)
{
	return nc->done;
}

bool nb_netcheck_reflexive(const struct nb_netcheck *nc, struct nb_addr *ret)
{
	if (nc->t[NB_NC_T_MAP1].state != T_ANSWERED)
		return false;
	*ret = nc->t[NB_NC_T_MAP1].mapped;
	return true;
}

const struct nb_netcheck_result *nb_netcheck_result(const struct nb_netcheck *nc)
{
	return &nc->r;
}
