/* tests/unit/test_netcheck.c - the RFC 5780 client against a simulated NAT and server.
 *
 * The simulator has its own model of mapping and filtering, a server with
 * two addresses (or one), and a clock; netcheck must recover the behaviour
 * the simulator was given, in bounded time; also when the simulated
 * internet loses datagrams. Every run also checks that nothing goes to the
 * server's alternate IP before filtering test II is decided (a filter keyed
 * on the remote IP alone would otherwise let its answer in). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "peer/netcheck.h"
#include "proto/nat.h"

#define EIM NB_MAPPING_ENDPOINT_INDEPENDENT
#define ADM NB_MAPPING_ADDRESS_DEPENDENT
#define APDM NB_MAPPING_ADDRESS_AND_PORT_DEPENDENT
#define EIF NB_FILTERING_ENDPOINT_INDEPENDENT
#define ADF NB_FILTERING_ADDRESS_DEPENDENT
#define APDF NB_FILTERING_ADDRESS_AND_PORT_DEPENDENT

struct world {
	/* configuration */
	enum nb_mapping mapping; /* NB_MAPPING_NONE: no NAT */
	enum nb_filtering filtering;
	bool blocked, single_address, ignore_change, hairpin;
	/* the filter keys on the remote IP alone, across all internal ports (the
	 * lab's r-hr): an answer from IP X gets in once any socket sent to X */
	bool host_keyed;
	uint32_t rtt;
	uint32_t loss_pct; /* each crossing of the internet (request, answer) lost with this chance */
	uint64_t rng;      /* xorshift64 state for the losses; 0 = a fixed seed */
	/* state */
	struct nb_addr s1, s2, local[2], pub;
	struct { int sock; struct nb_addr dst; uint16_t ext; } maps[32];
	int n_maps;
	struct { int sock; struct nb_addr dst; } sent[256];
	int n_sent;
	struct { uint64_t at; int sock; struct nb_addr from; uint8_t b[128]; size_t len; } q[256];
	int n_q;
	int requests;
};

static struct nb_addr A(const char *s)
{
	struct nb_addr a;
	assert_int_equal(nb_addr_parse(s, false, &a), 0);
	return a;
}

static void world_init(struct world *w)
{
	w->s1 = A("203.0.113.10:3478");
	w->s2 = A("203.0.113.11:3479");
	w->local[0] = A("192.168.1.2:5000");
	w->local[1] = A("192.168.1.2:5001");
	w->pub = A("203.0.113.101:0");
	if (w->rtt == 0)
		w->rtt = 10;
}

static struct nb_addr ext_of(struct world *w, int sock, const struct nb_addr *dst)
{
	if (w->mapping == NB_MAPPING_NONE)
		return w->local[sock];
	for (int i = 0; i < w->n_maps; i++) {
		bool same = w->maps[i].sock == sock &&
			    (w->mapping == EIM || (w->mapping == ADM && nb_addr_ip_equal(&w->maps[i].dst, dst)) ||
			     nb_addr_equal(&w->maps[i].dst, dst));
		if (same) {
			struct nb_addr e = w->pub;
			e.port = w->maps[i].ext;
			return e;
		}
	}
	assert_true(w->n_maps < 32);
	w->maps[w->n_maps].sock = sock;
	w->maps[w->n_maps].dst = *dst;
	w->maps[w->n_maps].ext = (uint16_t)(40000 + w->n_maps * 7);
	struct nb_addr e = w->pub;
	e.port = w->maps[w->n_maps++].ext;
	return e;
}

static bool admits(const struct world *w, int sock, const struct nb_addr *from)
{
	if (w->mapping == NB_MAPPING_NONE && w->filtering == EIF)
		return true;
	if (w->filtering == EIF)
		return true;
	for (int i = 0; i < w->n_sent; i++) {
		if (w->host_keyed) {
			if (nb_addr_ip_equal(&w->sent[i].dst, from))
				return true;
			continue;
		}
		if (w->sent[i].sock != sock || !nb_addr_ip_equal(&w->sent[i].dst, from))
			continue;
		if (w->filtering == ADF || w->sent[i].dst.port == from->port)
			return true;
	}
	return false;
}

/* Is this crossing of the internet lost? (The NAT has already seen an
 * outgoing request: as in the lab, where the loss is on the bridge beyond
 * the router, the mapping and the filter are open either way.) */
static bool lost(struct world *w)
{
	if (w->loss_pct == 0)
		return false;
	if (w->rng == 0)
		w->rng = 0x9e3779b97f4a7c15u;
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng % 100 < w->loss_pct;
}

static void deliver_later(struct world *w, uint64_t at, int sock, const struct nb_addr *from,
			  const uint8_t *b, size_t len)
{
	assert_true(w->n_q < 256 && len <= 128);
	w->q[w->n_q].at = at;
	w->q[w->n_q].sock = sock;
	w->q[w->n_q].from = *from;
	memcpy(w->q[w->n_q].b, b, len);
	w->q[w->n_q++].len = len;
}

/* The client sent tx at `now`: play the NAT and the server. */
static void world_send(struct world *w, const struct nb_netcheck_tx *tx, uint64_t now)
{
	struct nb_stun_msg req;
	struct nb_addr src;

	w->requests++;
	if (w->blocked)
		return;
	src = ext_of(w, tx->sock, &tx->to);
	assert_true(w->n_sent < 256);
	w->sent[w->n_sent].sock = tx->sock;
	w->sent[w->n_sent++].dst = tx->to;

	if (nb_addr_ip_equal(&tx->to, &w->pub)) { /* hairpin */
		if (w->hairpin)
			for (int s = 0; s < 2; s++) {
				struct nb_addr e = ext_of(w, s, &w->s1);
				if (nb_addr_equal(&e, &tx->to))
					/* as slow as the whole server round trip: the
					 * wait (RTT + 2 ms) must still count it */
					deliver_later(w, now + w->rtt, s, &src, tx->bytes, tx->len);
			}
		return;
	}
	if (lost(w))
		return; /* the request, on its way to the server */
	bool to_s1 = nb_addr_equal(&tx->to, &w->s1);
	bool to_server = to_s1 || (!w->single_address && nb_addr_ip_equal(&tx->to, &w->s2)) ||
			 (!w->single_address && tx->to.port == w->s2.port);
	if (!to_server)
		return;
	assert_true(nb_stun_decode(&req, tx->bytes, tx->len) > 0);

	uint8_t out[128];
	struct nb_stun_enc e;
	struct nb_addr from = tx->to;
	nb_stun_enc_init(&e, out, sizeof(out), NB_STUN_BINDING_SUCCESS, req.tid, false);
	if ((req.present & NB_STUN_HAS_CHANGE_REQUEST) && req.change_flags) {
		if (w->single_address) {
			nb_stun_enc_init(&e, out, sizeof(out), NB_STUN_BINDING_ERROR, req.tid, false);
			nb_stun_enc_error(&e, 420, "Unknown Attribute");
			deliver_later(w, now + w->rtt, tx->sock, &from, out, nb_stun_enc_len(&e));
			return;
		}
		if (!w->ignore_change) {
			if (req.change_flags & NB_STUN_CHANGE_IP)
				memcpy(from.ip, nb_addr_ip_equal(&from, &w->s1) ? w->s2.ip : w->s1.ip, 4);
			if (req.change_flags & NB_STUN_CHANGE_PORT)
				from.port = from.port == w->s1.port ? w->s2.port : w->s1.port;
		}
	}
	nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &src);
	if (!w->single_address)
		nb_stun_enc_addr(&e, NB_STUN_ATTR_OTHER_ADDRESS, &w->s2);
	if (admits(w, tx->sock, &from) && !lost(w))
		deliver_later(w, now + w->rtt, tx->sock, &from, out, nb_stun_enc_len(&e));
}

/* May netcheck send to the alternate IP now? Only once filtering test II
 * (change IP and port) is decided, or when it will never run. */
static bool alt_ip_allowed(const struct nb_netcheck *nc)
{
	uint8_t flt1 = nc->t[NB_NC_T_FLT1].state, flt2 = nc->t[NB_NC_T_FLT2].state;

	if (flt2 == NB_NC_ANSWERED || flt2 == NB_NC_FAILED)
		return true;
	return flt2 == NB_NC_IDLE && flt1 != NB_NC_IDLE && flt1 != NB_NC_ACTIVE;
}

/* Run netcheck (with params p, NULL: the defaults) to completion on the world's clock. */
static const struct nb_netcheck_result *run_with(struct world *w, struct nb_netcheck *nc,
						  const struct nb_netcheck_params *p)
{
	static const uint8_t seed[NB_STUN_TID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	uint64_t now = 1000;
	struct nb_netcheck_tx tx;

	world_init(w);
	nb_netcheck_init(nc, p, &w->s1, &w->local[0], seed, now);
	for (int steps = 0; !nb_netcheck_done(nc); steps++) {
		assert_true(steps < 10000);
		while (nb_netcheck_poll(nc, now, &tx) == 1) {
			if (nb_addr_ip_equal(&tx.to, &w->s2) && !alt_ip_allowed(nc))
				fail_msg("a datagram to the alternate IP at %llu ms, before filtering test II is decided",
					 (unsigned long long)(now - 1000));
			world_send(w, &tx, now);
		}
		uint64_t next = nb_netcheck_deadline(nc);
		for (int i = 0; i < w->n_q; i++)
			if (w->q[i].at < next)
				next = w->q[i].at;
		if (next == UINT64_MAX)
			break;
		assert_true(next >= now);
		now = next;
		for (int i = 0; i < w->n_q; i++) {
			if (w->q[i].at != now)
				continue;
			nb_netcheck_input(nc, w->q[i].sock, w->q[i].b, w->q[i].len, &w->q[i].from, now);
			w->q[i] = w->q[--w->n_q];
			i--;
		}
	}
	assert_true(nb_netcheck_done(nc));
	assert_int_equal(nb_netcheck_deadline(nc), UINT64_MAX);
	return nb_netcheck_result(nc);
}

static const struct nb_netcheck_result *run(struct world *w, struct nb_netcheck *nc)
{
	return run_with(w, nc, NULL);
}

static void test_every_nat(void **state)
{
	static const struct {
		enum nb_mapping m;
		enum nb_filtering f;
		enum nb_nat_type nat;
	} cases[] = {
		{ NB_MAPPING_NONE, EIF, NB_NAT_OPEN },
		{ NB_MAPPING_NONE, APDF, NB_NAT_FIREWALL },
		{ EIM, EIF, NB_NAT_FULL_CONE },
		{ EIM, ADF, NB_NAT_RESTRICTED_CONE },
		{ EIM, APDF, NB_NAT_PORT_RESTRICTED_CONE },
		{ ADM, APDF, NB_NAT_SYMMETRIC },
		{ APDM, APDF, NB_NAT_SYMMETRIC },
		{ APDM, EIF, NB_NAT_SYMMETRIC },
		{ APDM, ADF, NB_NAT_SYMMETRIC },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct world w = { .mapping = cases[i].m, .filtering = cases[i].f };
		struct nb_netcheck nc;
		const struct nb_netcheck_result *r = run(&w, &nc);
		if (r->mapping != cases[i].m || r->filtering != cases[i].f || r->nat != cases[i].nat)
			fail_msg("case %zu: got %s/%s (%s) note '%s'", i, nb_mapping_to_string(r->mapping),
				 nb_filtering_to_string(r->filtering), nb_nat_type_to_string(r->nat), r->note);
		assert_false(r->udp_blocked);
		assert_true(r->rfc5780);
		/* An EIF answer ends early; a filtered one waits out the give-up time. */
		assert_true(r->ms <= 1600 + 2 * w.rtt);
		if (cases[i].f == EIF && cases[i].m == NB_MAPPING_NONE)
			assert_true(r->ms < 100);
	}
}

static void test_reflexive_and_hairpin(void **state)
{
	struct world w = { .mapping = EIM, .filtering = EIF, .hairpin = true };
	struct nb_netcheck nc;
	char buf[NB_ADDR_STRLEN];

	(void)state;
	const struct nb_netcheck_result *r = run(&w, &nc);
	assert_string_equal(nb_addr_format(&r->reflexive, buf, sizeof(buf)), "203.0.113.101:40000");
	assert_int_equal(r->hairpin, 1);
	struct world w2 = { .mapping = EIM, .filtering = EIF, .hairpin = false };
	r = run(&w2, &nc);
	assert_int_equal(r->hairpin, 0);
	/* A full cone that does not hairpin is not held up by the full give-up
	 * time: the probe starts after test I (one RTT) and waits RTT + 2 ms,
	 * within the three round trips of tests I, filtering II, mapping II. */
	assert_int_equal(r->ms, 3 * w2.rtt);
	struct world w3 = { .mapping = EIM, .filtering = EIF, .hairpin = false, .rtt = 400 };
	r = run(&w3, &nc);
	assert_int_equal(r->hairpin, 0);
	assert_int_equal(r->ms, 3 * 400); /* the probe gave up at 400 + 402 */
}

static void test_udp_blocked(void **state)
{
	struct world w = { .mapping = EIM, .filtering = EIF, .blocked = true };
	struct nb_netcheck nc;

	(void)state;
	const struct nb_netcheck_result *r = run(&w, &nc);
	assert_true(r->udp_blocked);
	assert_int_equal(r->nat, NB_NAT_UDP_BLOCKED);
	assert_int_equal(r->ms, 1600);
	/* Retransmission schedule: every 100 ms from 0 to 1500 ms for each of
	 * the two first tests, and nothing else. */
	assert_int_equal(w.requests, 32);
	assert_true(strlen(r->note) > 0);
}

/* 20% loss on each crossing of the internet, as NATLAB_LOSS=20% in the lab:
 * a round trip is lost with q = 1 - 0.8^2 = 0.36. A verdict built on "no
 * answer" (a filtering test; a mapping test or test I that loses every
 * answer) is wrong when all n sends of one test go unanswered: q^n. The old
 * schedule (RTO 100 ms doubling to 400, 6 sends) had 0.36^6 = 2.2e-3 per
 * test, about 0.5-1% of runs wrong over the 3-5 tests that matter; the
 * default (every 100 ms, 16 sends) has 0.36^16 = 8e-8 per test. Every NAT
 * type, 2000 runs each, with the same losses for both schedules. */
static void test_loss_20_percent(void **state)
{
	static const struct {
		enum nb_mapping m;
		enum nb_filtering f;
		bool host_keyed;
	} cases[] = {
		{ NB_MAPPING_NONE, EIF, false }, { NB_MAPPING_NONE, APDF, false }, { EIM, EIF, false },
		{ EIM, ADF, false },             { EIM, APDF, false },             { ADM, APDF, false },
		{ APDM, APDF, false },           { APDM, EIF, false },             { APDM, ADF, false },
		{ EIM, ADF, true },
	};
	static const struct nb_netcheck_params old = {
		.rto_ms = 100, .rto_max_ms = 400, .give_up_ms = 1600, .hairpin = true,
	};
	enum { RUNS = 2000 };
	unsigned wrong_old = 0, wrong_new = 0;

	(void)state;
	for (int sched = 0; sched < 2; sched++) {
		uint64_t rng = 0x2545f4914f6cdd1du;
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			for (int k = 0; k < RUNS; k++) {
				struct world w = { .mapping = cases[i].m, .filtering = cases[i].f,
						   .host_keyed = cases[i].host_keyed, .loss_pct = 20, .rng = rng };
				struct nb_netcheck nc;
				const struct nb_netcheck_result *r = run_with(&w, &nc, sched == 0 ? &old : NULL);
				rng = w.rng;
				if (r->mapping != cases[i].m || r->filtering != cases[i].f || r->udp_blocked) {
					if (sched == 0)
						wrong_old++;
					else
						wrong_new++;
				}
				/* Bounded: test I, filtering II, mapping II, each at most the
				 * give-up time. */
				assert_true(r->ms <= 3 * 1600 + 3 * w.rtt);
			}
		}
	}
	print_message("20%% loss, %d runs: %u wrong with 6 sends per test, %u with 16\n",
		      (int)(RUNS * (sizeof(cases) / sizeof(cases[0]))), wrong_old, wrong_new);
	assert_true(wrong_old > 0); /* the simulation does lose enough to matter */
	assert_int_equal(wrong_new, 0);
}

/* A filter keyed on the remote IP alone, across all internal ports (the
 * lab's r-hr, "hostrestricted"): once anything went to the alternate IP,
 * from any port, the answer to filtering test II gets in. Run in the right
 * order, netcheck sees address-dependent filtering; the mapping tests still
 * reach the alternate IP (their own datagrams open the filter). */
static void test_host_keyed_filter(void **state)
{
	struct nb_netcheck nc;

	(void)state;
	for (uint32_t rtt = 1; rtt <= 400; rtt *= 20) {
		struct world w = { .mapping = EIM, .filtering = ADF, .host_keyed = true, .rtt = rtt };
		const struct nb_netcheck_result *r = run(&w, &nc);
		if (r->mapping != EIM || r->filtering != ADF)
			fail_msg("rtt %u: got %s/%s, note '%s'", rtt, nb_mapping_to_string(r->mapping),
				 nb_filtering_to_string(r->filtering), r->note);
		assert_int_equal(r->nat, NB_NAT_RESTRICTED_CONE);
		assert_true(r->rfc5780);
		/* test I, filtering II's give-up, then mapping II */
		assert_int_equal(r->ms, rtt + 1600 + rtt);
	}

	/* The simulated filter does open on contact: a host that talked to the
	 * alternate IP shortly before (within the filter's timeout) looks
	 * endpoint-independent. No order of tests can see through that. */
	struct world w2 = { .mapping = EIM, .filtering = ADF, .host_keyed = true };
	w2.sent[0].sock = NB_NC_MAP;
	w2.sent[0].dst = A("203.0.113.11:3479");
	w2.n_sent = 1;
	const struct nb_netcheck_result *r = run(&w2, &nc);
	assert_int_equal(r->filtering, EIF);
	assert_int_equal(r->mapping, EIM);
}

static void test_single_address_server(void **state)
{
	struct world w = { .mapping = EIM, .filtering = APDF, .single_address = true };
	struct nb_netcheck nc;

	(void)state;
	const struct nb_netcheck_result *r = run(&w, &nc);
	assert_false(r->udp_blocked);
	assert_false(r->rfc5780);
	assert_int_equal(r->mapping, NB_MAPPING_UNKNOWN);
	assert_int_equal(r->filtering, NB_FILTERING_UNKNOWN);
	assert_int_equal(r->reflexive.port, 40000);
	assert_true(strstr(r->note, "alternate") != NULL);
}

static void test_server_ignoring_change_request_is_not_trusted(void **state)
{
	/* A server that answers CHANGE-REQUEST from its primary address would
	 * make a port-restricted NAT look open; those answers are ignored. */
	struct world w = { .mapping = EIM, .filtering = EIF, .ignore_change = true };
	struct nb_netcheck nc;

	(void)state;
	const struct nb_netcheck_result *r = run(&w, &nc);
	assert_int_not_equal(r->filtering, EIF);
}

static void test_foreign_input_changes_nothing(void **state)
{
	static const uint8_t seed[NB_STUN_TID_LEN] = { 0 };
	struct nb_netcheck nc, copy;
	struct nb_netcheck_tx tx;
	struct nb_addr s1 = A("203.0.113.10:3478"), local = A("192.168.1.2:5000");
	uint8_t junk[64] = { 0x7b, 0x22 };
	uint8_t resp[64];
	struct nb_stun_enc e;
	uint8_t other_tid[12] = { 9, 9, 9 };

	(void)state;
	nb_netcheck_init(&nc, NULL, &s1, &local, seed, 0);
	assert_int_equal(nb_netcheck_poll(&nc, 0, &tx), 1);
	memcpy(&copy, &nc, sizeof(nc));
	assert_int_equal(nb_netcheck_input(&nc, NB_NC_MAP, junk, sizeof(junk), &s1, 5), -1);
	nb_stun_enc_init(&e, resp, sizeof(resp), NB_STUN_BINDING_SUCCESS, other_tid, false);
	nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &local);
	assert_int_equal(nb_netcheck_input(&nc, NB_NC_MAP, resp, nb_stun_enc_len(&e), &s1, 5), -1);
	for (size_t n = 0; n < nb_stun_enc_len(&e); n++) /* every truncation */
		assert_int_equal(nb_netcheck_input(&nc, NB_NC_MAP, resp, n, &s1, 5), -1);
	assert_memory_equal(&nc, &copy, sizeof(nc));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_nat),
		cmocka_unit_test(test_reflexive_and_hairpin),
		cmocka_unit_test(test_udp_blocked),
		cmocka_unit_test(test_host_keyed_filter),
		cmocka_unit_test(test_loss_20_percent),
		cmocka_unit_test(test_single_address_server),
		cmocka_unit_test(test_server_ignoring_change_request_is_not_trusted),
		cmocka_unit_test(test_foreign_input_changes_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
