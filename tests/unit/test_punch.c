/* tests/unit/test_punch.c - the punch state machine, two (or three) of them
 * wired through a simulated network of NATs.
 *
 * The simulator knows nothing of the punch rules: it models mapping (EIM,
 * ADM, APDM, or none) and filtering (EIF, ADF, APDF) tables per NAT, LANs
 * behind one NAT (no hairpinning), a one-way latency, and a clock. The
 * plans are the ones the broker's connectivity table gives for each pair.
 * A third host forges, reflects and replays packets: none may change state
 * or get an answer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "peer/punch.h"

#define EIM NB_MAPPING_ENDPOINT_INDEPENDENT
#define ADM NB_MAPPING_ADDRESS_DEPENDENT
#define APDM NB_MAPPING_ADDRESS_AND_PORT_DEPENDENT
#define NOMAP NB_MAPPING_NONE
#define EIF NB_FILTERING_ENDPOINT_INDEPENDENT
#define ADF NB_FILTERING_ADDRESS_DEPENDENT
#define APDF NB_FILTERING_ADDRESS_AND_PORT_DEPENDENT

static const char KEY[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
static const char BADKEY[] = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
static const char USER[] = "fedcba9876543210:b";

#define MAX_HOSTS 4
#define MAX_NATS 4
#define MAX_Q 256
#define LATENCY_MS 10

struct sim_nat {
	enum nb_mapping m;
	enum nb_filtering f;
	struct nb_addr pub; /* ip only */
	struct { struct nb_addr dst; uint16_t ext; int host; } map[64];
	int n_map;
	struct { uint16_t ext; struct nb_addr remote; } flt[256];
	int n_flt;
	uint16_t next_port;
};

struct sim_host {
	struct nb_addr local;
	int nat; /* -1: public */
	int lan; /* hosts with the same non-zero lan reach each other's local address */
	bool has_punch;
	struct nb_punch pu;
	uint64_t connected_at;
	uint64_t check_times[512];
	struct nb_addr check_to[512];
	int n_checks;
	int answers;
};

struct sim_pkt {
	uint64_t at;
	int to; /* host index */
	struct nb_addr from;
	uint8_t b[256];
	size_t len;
};

struct sim {
	struct sim_nat nat[MAX_NATS];
	int n_nat;
	struct sim_host h[MAX_HOSTS];
	int n_host;
	struct sim_pkt q[MAX_Q];
	int n_q;
	uint64_t now;
	struct nb_addr broker;
	/* Datagrams sent toward the attacker's address, and the last datagram
	 * each host sent (for the attacker to capture). */
	int to_attacker;
	struct nb_addr attacker;
	uint8_t last_check[MAX_HOSTS][256];
	size_t last_check_len[MAX_HOSTS];
	uint8_t last_answer[MAX_HOSTS][256];
	size_t last_answer_len[MAX_HOSTS];
	struct nb_addr last_answer_to[MAX_HOSTS];
};

static struct nb_addr A(const char *s)
{
	struct nb_addr a;
	assert_int_equal(nb_addr_parse(s, false, &a), 0);
	return a;
}

static void sim_init(struct sim *s)
{
	memset(s, 0, sizeof(*s));
	s->broker = A("203.0.113.10:3478");
	s->attacker = A("203.0.113.66:6666");
	s->now = 1000000;
}

static int sim_nat(struct sim *s, enum nb_mapping m, enum nb_filtering f, const char *pub_ip)
{
	struct sim_nat *n = &s->nat[s->n_nat];
	char buf[64];

	snprintf(buf, sizeof(buf), "%s:1", pub_ip);
	n->m = m;
	n->f = f;
	n->pub = A(buf);
	n->pub.port = 0;
	n->next_port = (uint16_t)(40000 + s->n_nat * 1000);
	return s->n_nat++;
}

static int sim_host(struct sim *s, const char *local, int nat, int lan)
{
	struct sim_host *h = &s->h[s->n_host];

	h->local = A(local);
	h->nat = nat;
	h->lan = lan;
	return s->n_host++;
}

static uint16_t nat_map(struct sim_nat *n, int host, const struct nb_addr *dst)
{
	for (int i = 0; i < n->n_map; i++) {
		if (n->map[i].host != host)
			continue;
		if (n->m == EIM || (n->m == ADM && nb_addr_ip_equal(&n->map[i].dst, dst)) ||
		    nb_addr_equal(&n->map[i].dst, dst))
			return n->map[i].ext;
	}
	assert_true(n->n_map < 64);
	n->map[n->n_map].dst = *dst;
	n->map[n->n_map].host = host;
	/* Symmetric NATs in the lab pick random ports; any new port will do. */
	n->map[n->n_map].ext = n->next_port;
	n->next_port = (uint16_t)(n->next_port + (n->m == EIM ? 1 : 17));
	return n->map[n->n_map++].ext;
}

static bool nat_admits(const struct sim_nat *n, uint16_t ext, const struct nb_addr *from, int *ret_host)
{
	int host = -1;

	for (int i = 0; i < n->n_map; i++)
		if (n->map[i].ext == ext)
			host = n->map[i].host;
	if (host < 0)
		return false;
	*ret_host = host;
	if (n->f == EIF)
		return true;
	for (int i = 0; i < n->n_flt; i++) {
		if (n->flt[i].ext != ext || !nb_addr_ip_equal(&n->flt[i].remote, from))
			continue;
		if (n->f == ADF || n->flt[i].remote.port == from->port)
			return true;
	}
	return false;
}

/* The source address host h's packets to dst carry on the internet. */
static struct nb_addr sim_source(struct sim *s, int h, const struct nb_addr *dst)
{
	struct sim_host *H = &s->h[h];
	struct nb_addr src = H->local;

	if (H->nat >= 0) {
		struct sim_nat *n = &s->nat[H->nat];
		src = n->pub;
		src.port = nat_map(n, h, dst);
		assert_true(n->n_flt < 256);
		n->flt[n->n_flt].ext = src.port;
		n->flt[n->n_flt++].remote = *dst;
	}
	return src;
}

static void enqueue(struct sim *s, int to, const struct nb_addr *from, const uint8_t *b, size_t len)
{
	assert_true(s->n_q < MAX_Q);
	assert_true(len <= sizeof(s->q[0].b));
	s->q[s->n_q].at = s->now + LATENCY_MS;
	s->q[s->n_q].to = to;
	s->q[s->n_q].from = *from;
	memcpy(s->q[s->n_q].b, b, len);
	s->q[s->n_q++].len = len;
}

/* Host h (or, h < 0, a public sender at `from`) sends b to dst. */
static void sim_route(struct sim *s, int h, const struct nb_addr *from_pub, const struct nb_addr *dst,
		      const uint8_t *b, size_t len)
{
	struct nb_addr src;

	if (nb_addr_equal(dst, &s->attacker)) {
		s->to_attacker++;
		return;
	}
	if (h >= 0) {
		/* Same LAN: straight to the neighbour, no NAT. */
		for (int j = 0; j < s->n_host; j++)
			if (j != h && s->h[h].lan != 0 && s->h[j].lan == s->h[h].lan &&
			    nb_addr_equal(&s->h[j].local, dst)) {
				enqueue(s, j, &s->h[h].local, b, len);
				return;
			}
		src = sim_source(s, h, dst);
	} else {
		src = *from_pub;
	}
	for (int j = 0; j < s->n_host; j++)
		if (s->h[j].nat < 0 && nb_addr_equal(&s->h[j].local, dst)) {
			enqueue(s, j, &src, b, len);
			return;
		}
	for (int k = 0; k < s->n_nat; k++) {
		int to;
		if (!nb_addr_ip_equal(&s->nat[k].pub, dst))
			continue;
		if (h >= 0 && s->h[h].nat == k)
			return; /* no hairpinning */
		if (nat_admits(&s->nat[k], dst->port, &src, &to))
			enqueue(s, to, &src, b, len);
		return;
	}
}

/* Where the broker saw host h: its mapping toward the broker. */
static struct nb_addr sim_reflexive(struct sim *s, int h)
{
	return sim_source(s, h, &s->broker);
}

static struct nb_ctrl_plan make_plan(enum nb_role role, const struct nb_addr *cands, size_t n,
				     uint32_t delay_ms)
{
	struct nb_ctrl_plan p;

	memset(&p, 0, sizeof(p));
	snprintf(p.session, sizeof(p.session), "fedcba9876543210");
	snprintf(p.peer, sizeof(p.peer), "peer");
	p.role = role;
	p.path = NB_PATH_DIRECT;
	snprintf(p.reason, sizeof(p.reason), "test plan");
	for (size_t i = 0; i < n; i++)
		p.candidates[i] = cands[i];
	p.n_candidates = n;
	snprintf(p.username, sizeof(p.username), "%s", USER);
	p.deadline_ms = 5000;
	p.delay_ms = delay_ms;
	return p;
}

static void start(struct sim *s, int h, const struct nb_ctrl_plan *plan)
{
	uint8_t seed[NB_STUN_TID_LEN];

	for (int i = 0; i < NB_STUN_TID_LEN; i++)
		seed[i] = (uint8_t)(0x10 * (h + 1) + i);
	assert_int_equal(nb_punch_init(&s->h[h].pu, NULL, plan, KEY, seed, s->now), 0);
	s->h[h].has_punch = true;
}

static void pump_host(struct sim *s, int h)
{
	struct sim_host *H = &s->h[h];
	struct nb_punch_tx tx;

	if (!H->has_punch)
		return;
	while (nb_punch_poll(&H->pu, s->now, &tx) == 1) {
		assert_true(tx.len <= 256);
		if (tx.is_check) {
			assert_true(H->n_checks < 512);
			H->check_times[H->n_checks] = s->now;
			H->check_to[H->n_checks++] = tx.to;
			memcpy(s->last_check[h], tx.bytes, tx.len);
			s->last_check_len[h] = tx.len;
		} else {
			H->answers++;
			memcpy(s->last_answer[h], tx.bytes, tx.len);
			s->last_answer_len[h] = tx.len;
			s->last_answer_to[h] = tx.to;
		}
		sim_route(s, h, NULL, &tx.to, tx.bytes, tx.len);
	}
	if (H->connected_at == 0 && nb_punch_state(&H->pu) == NB_PUNCH_CONNECTED)
		H->connected_at = s->now;
}

/* Advance the world until `until`, delivering packets and timers in order. */
static void sim_run(struct sim *s, uint64_t until)
{
	for (int guard = 0; guard < 100000; guard++) {
		uint64_t next = UINT64_MAX;

		for (int h = 0; h < s->n_host; h++)
			pump_host(s, h);
		/* Deliver what is due. */
		for (int i = 0; i < s->n_q;) {
			if (s->q[i].at > s->now) {
				i++;
				continue;
			}
			struct sim_pkt p = s->q[i];
			memmove(&s->q[i], &s->q[i + 1], (size_t)(s->n_q - i - 1) * sizeof(s->q[0]));
			s->n_q--;
			if (s->h[p.to].has_punch) {
				nb_punch_input(&s->h[p.to].pu, p.b, p.len, &p.from, s->now);
				pump_host(s, p.to);
			}
		}
		for (int h = 0; h < s->n_host; h++) {
			uint64_t d;
			if (!s->h[h].has_punch)
				continue;
			d = nb_punch_deadline(&s->h[h].pu);
			if (d <= s->now) {
				pump_host(s, h);
				d = nb_punch_deadline(&s->h[h].pu);
				assert_true(d > s->now); /* poll did what was due */
			}
			if (d < next)
				next = d;
		}
		for (int i = 0; i < s->n_q; i++)
			if (s->q[i].at < next)
				next = s->q[i].at;
		if (next == UINT64_MAX || next > until) {
			s->now = until;
			return;
		}
		s->now = next;
	}
	fail_msg("simulation did not settle");
}

/* Two hosts behind their own NATs (or public), with the plan roles given. */
struct pair_case {
	enum nb_mapping ma;
	enum nb_filtering fa;
	enum nb_mapping mb;
	enum nb_filtering fb;
	enum nb_role ra, rb;
	uint32_t delay_a, delay_b;
	bool works;
};

static void setup_pair(struct sim *s, const struct pair_case *c, int *ret_a, int *ret_b)
{
	int na = c->ma == NOMAP ? -1 : sim_nat(s, c->ma, c->fa, "203.0.113.101");
	int nb = c->mb == NOMAP ? -1 : sim_nat(s, c->mb, c->fb, "203.0.113.102");
	int a = sim_host(s, na < 0 ? "203.0.113.20:5000" : "192.168.1.2:5000", na, 0);
	int b = sim_host(s, nb < 0 ? "203.0.113.21:5000" : "192.168.2.2:5000", nb, 0);
	struct nb_addr ra = sim_reflexive(s, a), rb = sim_reflexive(s, b);
	struct nb_addr ca[2] = { rb, s->h[b].local }, cb[2] = { ra, s->h[a].local };
	struct nb_ctrl_plan pa = make_plan(c->ra, ca, 2, c->delay_a), pb = make_plan(c->rb, cb, 2, c->delay_b);

	start(s, a, &pa);
	start(s, b, &pb);
	*ret_a = a;
	*ret_b = b;
}

static const struct pair_case pair_cases[] = {
	/* dial / listen: the listener admits unsolicited packets */
	{ EIM, APDF, EIM, EIF, NB_ROLE_DIAL, NB_ROLE_LISTEN, 0, 0, true },
	{ APDM, APDF, NOMAP, EIF, NB_ROLE_DIAL, NB_ROLE_LISTEN, 0, 0, true },
	{ EIM, ADF, NOMAP, EIF, NB_ROLE_DIAL, NB_ROLE_LISTEN, 0, 0, true },
	/* punch / punch: two cones */
	{ EIM, APDF, EIM, APDF, NB_ROLE_PUNCH, NB_ROLE_PUNCH, 0, 0, true },
	{ EIM, ADF, EIM, APDF, NB_ROLE_PUNCH, NB_ROLE_PUNCH, 0, 0, true },
	{ EIM, ADF, EIM, ADF, NB_ROLE_PUNCH, NB_ROLE_PUNCH, 0, 0, true },
	/* prime / dial: restricted cone vs symmetric; the dialer waits */
	{ EIM, ADF, APDM, APDF, NB_ROLE_PRIME, NB_ROLE_DIAL, 0, 100, true },
	{ APDM, APDF, EIM, ADF, NB_ROLE_DIAL, NB_ROLE_PRIME, 100, 0, true },
	/* and without its delay: the dialer's retransmissions get through */
	{ EIM, ADF, APDM, APDF, NB_ROLE_PRIME, NB_ROLE_DIAL, 0, 0, true },
	/* failing pairs: port-restricted vs symmetric, symmetric vs symmetric */
	{ EIM, APDF, APDM, APDF, NB_ROLE_PUNCH, NB_ROLE_PUNCH, 0, 0, false },
	{ APDM, APDF, APDM, APDF, NB_ROLE_PUNCH, NB_ROLE_PUNCH, 0, 0, false },
	/* A wrong "admits unsolicited" verdict still connects: a listener
	 * sends one priming check toward the dialer at once (issue 16) */
	{ EIM, ADF, APDM, APDF, NB_ROLE_LISTEN, NB_ROLE_DIAL, 0, 0, true },
	{ EIM, APDF, EIM, APDF, NB_ROLE_DIAL, NB_ROLE_LISTEN, 0, 0, true },
	/* but not against a symmetric dialer: its check comes from a new
	 * port, which the listener's priming did not open */
	{ EIM, APDF, APDM, APDF, NB_ROLE_LISTEN, NB_ROLE_DIAL, 0, 0, false },
};

static void test_pairs(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(pair_cases) / sizeof(pair_cases[0]); i++) {
		const struct pair_case *c = &pair_cases[i];
		static struct sim s;
		int a, b;
		uint64_t t0;

		sim_init(&s);
		setup_pair(&s, c, &a, &b);
		t0 = s.now;
		sim_run(&s, t0 + 6000);
		enum nb_punch_state sa = nb_punch_state(&s.h[a].pu), sb = nb_punch_state(&s.h[b].pu);
		if (c->works) {
			if (sa != NB_PUNCH_CONNECTED || sb != NB_PUNCH_CONNECTED)
				fail_msg("case %zu (%s/%s): %s (%s) / %s (%s)", i, nb_role_to_string(c->ra),
					 nb_role_to_string(c->rb), nb_punch_state_name(sa), s.h[a].pu.reason,
					 nb_punch_state_name(sb), s.h[b].pu.reason);
			/* Each remote is where the other side's packets come from:
			 * sending there reaches it. */
			assert_true(s.h[a].connected_at - t0 < 1000);
			assert_true(s.h[b].connected_at - t0 < 1000);
			/* The remote each side chose is the address the other one's
			 * answer came from; the answer's XOR-MAPPED-ADDRESS is ours. */
			assert_int_equal(s.h[a].pu.mapped.family, NB_AF_INET);
		} else {
			if (sa != NB_PUNCH_FAILED || sb != NB_PUNCH_FAILED)
				fail_msg("case %zu (%s/%s) should fail: %s / %s", i, nb_role_to_string(c->ra),
					 nb_role_to_string(c->rb), nb_punch_state_name(sa), nb_punch_state_name(sb));
			/* At the deadline exactly, with a reason. */
			assert_int_equal(s.h[a].pu.end, t0 + 5000);
			assert_int_equal(s.h[b].pu.end, t0 + 5000);
			assert_true(strstr(s.h[a].pu.reason, "within 5000 ms") != NULL);
			assert_true(strstr(s.h[b].pu.reason, "within 5000 ms") != NULL);
		}
	}
}

static void test_remote_is_the_mapping_seen(void **state)
{
	static struct sim s;
	const struct pair_case c = { EIM, ADF, APDM, APDF, NB_ROLE_PRIME, NB_ROLE_DIAL, 0, 100, true };
	struct nb_addr rb;
	int a, b;

	(void)state;
	sim_init(&s);
	setup_pair(&s, &c, &a, &b);
	rb = s.h[b].pu.t[0].addr; /* a's reflexive, b's first candidate */
	sim_run(&s, s.now + 6000);
	assert_int_equal(nb_punch_state(&s.h[a].pu), NB_PUNCH_CONNECTED);
	assert_int_equal(nb_punch_state(&s.h[b].pu), NB_PUNCH_CONNECTED);
	/* The symmetric side reached a's reflexive address; a reached the
	 * symmetric side's new mapping (peer-reflexive), not its broker mapping. */
	assert_true(nb_addr_equal(&s.h[b].pu.remote, &rb));
	assert_false(nb_addr_equal(&s.h[a].pu.remote, &s.h[a].pu.t[0].addr));
	assert_true(nb_addr_ip_equal(&s.h[a].pu.remote, &s.nat[1].pub));
	assert_true(nb_addr_equal(&s.h[b].pu.mapped, &s.h[a].pu.remote));
	/* The primer sent only its priming checks to the plan's candidates. */
	int to_plan = 0;
	for (int i = 0; i < s.h[a].n_checks; i++)
		for (size_t k = 0; k < s.h[a].pu.n_plan; k++)
			to_plan += nb_addr_equal(&s.h[a].check_to[i], &s.h[a].pu.t[k].addr);
	assert_true(to_plan >= 1 && to_plan <= NB_PUNCH_PRIME_CHECKS * 2);
	/* It answered the dialer, then checked it. */
	assert_true(s.h[a].answers >= 1);
	assert_true(s.h[a].n_checks > to_plan);
}

/* Priming alone: exactly prime_checks per candidate, then silence. */
static void test_prime_budget(void **state)
{
	static struct sim s;
	/* b takes no part (its listener would prime, and connect) */
	const struct pair_case c = { EIM, ADF, APDM, APDF, NB_ROLE_PRIME, NB_ROLE_NONE, 0, 0, false };
	int a, b;

	(void)state;
	sim_init(&s);
	setup_pair(&s, &c, &a, &b);
	sim_run(&s, s.now + 6000);
	assert_int_equal(s.h[a].n_checks, NB_PUNCH_PRIME_CHECKS * 2);
	for (size_t k = 0; k < 2; k++) {
		int n = 0;
		for (int i = 0; i < s.h[a].n_checks; i++)
			n += nb_addr_equal(&s.h[a].check_to[i], &s.h[a].pu.t[k].addr);
		assert_int_equal(n, NB_PUNCH_PRIME_CHECKS);
	}
	/* All of it in the first few hundred milliseconds. */
	assert_true(s.h[a].check_times[s.h[a].n_checks - 1] - s.h[a].check_times[0] < 500);
	assert_int_equal(nb_punch_state(&s.h[a].pu), NB_PUNCH_FAILED);
}

static void test_lan_pair(void **state)
{
	static struct sim s;
	int n, a, b;
	struct nb_addr ra, rb;

	(void)state;
	sim_init(&s);
	n = sim_nat(&s, EIM, APDF, "203.0.113.109");
	a = sim_host(&s, "192.168.9.2:5000", n, 9);
	b = sim_host(&s, "192.168.9.3:5000", n, 9);
	ra = sim_reflexive(&s, a);
	rb = sim_reflexive(&s, b);
	{
		struct nb_addr ca[2] = { s.h[b].local, rb }, cb[2] = { s.h[a].local, ra };
		struct nb_ctrl_plan pa = make_plan(NB_ROLE_PUNCH, ca, 2, 0), pb = make_plan(NB_ROLE_PUNCH, cb, 2, 0);
		start(&s, a, &pa);
		start(&s, b, &pb);
	}
	sim_run(&s, s.now + 6000);
	assert_int_equal(nb_punch_state(&s.h[a].pu), NB_PUNCH_CONNECTED);
	assert_int_equal(nb_punch_state(&s.h[b].pu), NB_PUNCH_CONNECTED);
	assert_true(nb_addr_equal(&s.h[a].pu.remote, &s.h[b].local));
	assert_true(nb_addr_equal(&s.h[b].pu.remote, &s.h[a].local));
}

static void test_pacing_and_backoff(void **state)
{
	static struct sim s;
	const struct pair_case c = { APDM, APDF, APDM, APDF, NB_ROLE_PUNCH, NB_ROLE_PUNCH, 0, 0, false };
	int a, b;
	uint64_t t0;

	(void)state;
	sim_init(&s);
	setup_pair(&s, &c, &a, &b);
	t0 = s.now;
	sim_run(&s, t0 + 6000);
	struct sim_host *H = &s.h[a];
	assert_true(H->n_checks > 10);
	assert_int_equal(H->check_times[0], t0);
	for (int i = 1; i < H->n_checks; i++) {
		/* Ta between any two checks. */
		assert_true(H->check_times[i] - H->check_times[i - 1] >= NB_PUNCH_TA_MS);
		assert_true(H->check_times[i] < t0 + 5000);
	}
	/* Per target: 100 ms, then doubling to 400 ms. */
	uint64_t last = 0, gap_prev = 0;
	int n = 0;
	for (int i = 0; i < H->n_checks; i++) {
		if (!nb_addr_equal(&H->check_to[i], &H->pu.t[0].addr))
			continue;
		if (n > 0) {
			uint64_t gap = H->check_times[i] - last;
			assert_true(gap >= NB_PUNCH_RTO_MS && gap <= NB_PUNCH_RTO_MAX_MS + NB_PUNCH_TA_MS);
			assert_true(gap + NB_PUNCH_TA_MS >= gap_prev);
			gap_prev = gap;
		}
		last = H->check_times[i];
		n++;
	}
	/* 0, 100, 300, 700, then every 400 ms up to 5000: 15 or so. */
	assert_true(n >= 12 && n <= 16);
	/* Nothing after the deadline. */
	int before = H->n_checks;
	sim_run(&s, s.now + 10000);
	assert_int_equal(H->n_checks, before);
	assert_int_equal(nb_punch_deadline(&H->pu), UINT64_MAX);
}

static void test_delay_and_listen(void **state)
{
	static struct sim s;
	const struct pair_case c = { EIM, APDF, EIM, EIF, NB_ROLE_DIAL, NB_ROLE_LISTEN, 250, 0, true };
	int a, b;
	uint64_t t0;

	(void)state;
	sim_init(&s);
	setup_pair(&s, &c, &a, &b);
	t0 = s.now;
	assert_int_equal(nb_punch_state(&s.h[a].pu), NB_PUNCH_WAITING);
	assert_int_equal(nb_punch_deadline(&s.h[a].pu), t0 + 250);
	sim_run(&s, t0 + 6000);
	assert_int_equal(s.h[a].check_times[0], t0 + 250);
	/* The listener sent one priming check to each plan candidate, at
	 * once (before the dialer began); its other checks went to where the
	 * dialer's came from. */
	int primed = 0;
	for (int i = 0; i < s.h[b].n_checks; i++) {
		bool to_plan = false;
		for (size_t k = 0; k < s.h[b].pu.n_plan; k++)
			to_plan |= nb_addr_equal(&s.h[b].check_to[i], &s.h[b].pu.t[k].addr);
		if (s.h[b].check_times[i] < t0 + 250) {
			assert_true(to_plan);
			primed++;
		} else {
			assert_true(nb_addr_equal(&s.h[b].check_to[i], &s.h[b].pu.remote));
		}
	}
	assert_int_equal(primed, (int)s.h[b].pu.n_plan);
	assert_true(s.h[b].n_checks > primed);
	assert_int_equal(nb_punch_state(&s.h[b].pu), NB_PUNCH_CONNECTED);
	/* Connected sides send no more checks. */
	int ca = s.h[a].n_checks, cb = s.h[b].n_checks;
	sim_run(&s, s.now + 3000);
	assert_int_equal(s.h[a].n_checks, ca);
	assert_int_equal(s.h[b].n_checks, cb);
}

/* nb_punch_confirm_sent(): an authenticated reply from where a check of
 * ours went proves the path; from anywhere else, or before any check, it
 * changes nothing. */
static void test_confirm_sent(void **state)
{
	static struct nb_punch pu;
	struct nb_addr c[2] = { A("203.0.113.21:5000"), A("192.168.2.2:5000") };
	struct nb_addr other = A("203.0.113.66:5000");
	struct nb_ctrl_plan p = make_plan(NB_ROLE_DIAL, c, 2, 100);
	uint8_t seed[NB_STUN_TID_LEN] = { 7 };
	struct nb_punch_tx tx;

	(void)state;
	assert_int_equal(nb_punch_init(&pu, NULL, &p, KEY, seed, 1000), 0);
	/* WAITING: nothing sent yet */
	assert_false(nb_punch_sent_to(&pu, 0, &c[0]));
	assert_int_equal(nb_punch_confirm_sent(&pu, 0, &c[0], 1000), -1);
	assert_int_equal(nb_punch_state(&pu), NB_PUNCH_WAITING);
	assert_int_equal(nb_punch_poll(&pu, 1100, &tx), 1);
	assert_true(nb_addr_equal(&tx.to, &c[0]));
	assert_true(tx.first); /* the first check to that candidate */
	assert_true(nb_punch_sent_to(&pu, 0, &c[0]));
	assert_false(nb_punch_sent_to(&pu, 0, &c[1])); /* paced: not yet */
	assert_false(nb_punch_sent_to(&pu, 1, &c[0])); /* not from that socket */
	assert_int_equal(nb_punch_confirm_sent(&pu, 0, &other, 1100), -1);
	assert_int_equal(nb_punch_confirm_sent(&pu, 0, &c[1], 1100), -1);
	assert_int_equal(nb_punch_state(&pu), NB_PUNCH_CHECKING);
	assert_int_equal(nb_punch_confirm_sent(&pu, 0, &c[0], 1101), 0);
	assert_int_equal(nb_punch_state(&pu), NB_PUNCH_CONNECTED);
	assert_true(nb_addr_equal(&pu.remote, &c[0]));
	assert_int_equal(pu.end, 1101);
	/* once connected: no second winner */
	assert_int_equal(nb_punch_confirm_sent(&pu, 0, &c[0], 1102), -1);

	/* tx.first: each candidate's first check, not its retransmissions */
	assert_int_equal(nb_punch_init(&pu, NULL, &p, KEY, seed, 1000), 0);
	assert_int_equal(nb_punch_poll(&pu, 1100, &tx), 1);
	assert_true(tx.first && nb_addr_equal(&tx.to, &c[0]));
	assert_int_equal(nb_punch_poll(&pu, 1150, &tx), 1);
	assert_true(tx.first && nb_addr_equal(&tx.to, &c[1]));
	assert_int_equal(nb_punch_poll(&pu, 1200, &tx), 1);
	assert_true(tx.is_check && !tx.first && nb_addr_equal(&tx.to, &c[0]));
}

static void test_listener_alone_fails(void **state)
{
	static struct sim s;
	/* the peer takes no part (two listeners that admit unsolicited
	 * packets now connect: each one's priming check is a dial) */
	const struct pair_case c = { EIM, EIF, EIM, EIF, NB_ROLE_LISTEN, NB_ROLE_NONE, 0, 0, false };
	int a, b;

	(void)state;
	sim_init(&s);
	setup_pair(&s, &c, &a, &b);
	sim_run(&s, s.now + 6000);
	/* a listener sends one priming check per candidate, and no more */
	assert_int_equal(s.h[a].n_checks, (int)s.h[a].pu.n_plan);
	assert_int_equal(nb_punch_state(&s.h[a].pu), NB_PUNCH_FAILED);
	assert_non_null(strstr(s.h[a].pu.reason, "no check from the peer"));
}

static void test_role_none(void **state)
{
	struct nb_ctrl_plan p = make_plan(NB_ROLE_NONE, NULL, 0, 0);
	struct nb_punch pu;
	struct nb_punch_tx tx;
	uint8_t seed[NB_STUN_TID_LEN] = { 0 };

	(void)state;
	snprintf(p.reason, sizeof(p.reason), "symmetric vs port-restricted: needs a relay");
	assert_int_equal(nb_punch_init(&pu, NULL, &p, KEY, seed, 5), 0);
	assert_int_equal(nb_punch_state(&pu), NB_PUNCH_FAILED);
	assert_string_equal(pu.reason, "symmetric vs port-restricted: needs a relay");
	assert_int_equal(nb_punch_poll(&pu, 5, &tx), 0);
	assert_int_equal(nb_punch_deadline(&pu), UINT64_MAX);
	/* Bad keys are refused. */
	char bad[sizeof(BADKEY)];
	memcpy(bad, BADKEY, sizeof(BADKEY));
	bad[3] = 'X';
	assert_int_equal(nb_punch_init(&pu, NULL, &p, bad, seed, 5), -22);
	assert_int_equal(nb_punch_init(&pu, NULL, &p, NULL, seed, 5), -22);
}

static void test_reason_lists_candidates(void **state)
{
	struct nb_addr c[8];
	struct nb_ctrl_plan p;
	struct nb_punch pu;
	struct nb_punch_tx tx;
	uint8_t seed[NB_STUN_TID_LEN] = { 1 };

	(void)state;
	for (int i = 0; i < 8; i++) {
		char buf[64];
		snprintf(buf, sizeof(buf), "[2001:db8:aaaa:bbbb:cccc:dddd:eeee:%x]:65535", i + 1);
		c[i] = A(buf);
	}
	p = make_plan(NB_ROLE_DIAL, c, 8, 0);
	assert_int_equal(nb_punch_init(&pu, NULL, &p, KEY, seed, 0), 0);
	while (nb_punch_poll(&pu, 5000, &tx) == 1)
		;
	assert_int_equal(nb_punch_state(&pu), NB_PUNCH_FAILED);
	assert_true(strlen(pu.reason) <= NB_CTRL_REASON_MAX);
	assert_non_null(strstr(pu.reason, "no answer from [2001:db8:aaaa:bbbb:cccc:dddd:eeee:1]:65535"));
	assert_non_null(strstr(pu.reason, "..."));
	assert_non_null(strstr(pu.reason, "within 5000 ms"));
}

/* ---- The third host ------------------------------------------------------ */

static size_t forge_check(uint8_t *out, const uint8_t *tid, const char *user, const char *key, bool mi,
			  bool fp)
{
	struct nb_stun_enc e;

	assert_int_equal(nb_stun_enc_init(&e, out, 256, NB_STUN_BINDING_REQUEST, tid, false), 0);
	if (user != NULL)
		assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, user, strlen(user)), 0);
	if (mi)
		assert_int_equal(nb_stun_enc_integrity(&e, (const uint8_t *)key, 64), 0);
	if (fp)
		assert_int_equal(nb_stun_enc_fingerprint(&e), 0);
	return nb_stun_enc_len(&e);
}

static size_t forge_answer(uint8_t *out, const uint8_t *tid, const char *key, const struct nb_addr *m)
{
	struct nb_stun_enc e;

	assert_int_equal(nb_stun_enc_init(&e, out, 256, NB_STUN_BINDING_SUCCESS, tid, false), 0);
	assert_int_equal(nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, m), 0);
	assert_int_equal(nb_stun_enc_integrity(&e, (const uint8_t *)key, 64), 0);
	assert_int_equal(nb_stun_enc_fingerprint(&e), 0);
	return nb_stun_enc_len(&e);
}

/* Feed one datagram from the attacker; it must be dropped with `want`, and
 * change nothing: same state, no answer queued, nothing to send to it. */
static void attack(struct sim *s, int h, const uint8_t *b, size_t len, int want)
{
	struct nb_punch *pu = &s->h[h].pu;
	enum nb_punch_state before = nb_punch_state(pu);
	size_t n_ans = pu->n_ans, n_targets = pu->n_targets;
	int r = nb_punch_input(pu, b, len, &s->attacker, s->now);

	if (r != want)
		fail_msg("attack: got %d (%s), want %d (%s)", r, nb_punch_drop_name(r), want,
			 nb_punch_drop_name(want));
	assert_int_equal(nb_punch_state(pu), before);
	assert_int_equal(pu->n_ans, n_ans);
	assert_int_equal(pu->n_targets, n_targets);
	pump_host(s, h);
	assert_int_equal(s->to_attacker, 0);
}

static bool victim_saw(const struct nb_punch *pu, const uint8_t *check)
{
	for (size_t i = 0; i < pu->n_seen; i++)
		if (memcmp(pu->seen[i].tid, check + 8, NB_STUN_TID_LEN) == 0)
			return true;
	return false;
}

static void attack_all(struct sim *s, int victim, int peer)
{
	uint8_t b[256], tid[NB_STUN_TID_LEN];
	size_t n;
	struct nb_addr m = s->attacker;

	memset(tid, 0x5a, sizeof(tid));
	/* The wrong key. */
	n = forge_check(b, tid, USER, BADKEY, true, true);
	attack(s, victim, b, n, NB_PUNCH_DROP_INTEGRITY);
	/* The wrong USERNAME (with the right key: still refused). */
	n = forge_check(b, tid, "fedcba9876543210:x", KEY, true, true);
	attack(s, victim, b, n, NB_PUNCH_DROP_USERNAME);
	n = forge_check(b, tid, NULL, KEY, true, true);
	attack(s, victim, b, n, NB_PUNCH_DROP_USERNAME);
	/* No MESSAGE-INTEGRITY. */
	n = forge_check(b, tid, USER, KEY, false, true);
	attack(s, victim, b, n, NB_PUNCH_DROP_INTEGRITY);
	/* No FINGERPRINT, and a wrong one. */
	n = forge_check(b, tid, USER, KEY, true, false);
	attack(s, victim, b, n, NB_PUNCH_DROP_FINGERPRINT);
	n = forge_check(b, tid, USER, KEY, true, true);
	b[n - 1] ^= 1;
	attack(s, victim, b, n, NB_PUNCH_DROP_NOT_STUN);
	/* A tampered body under a right-looking MI (FINGERPRINT recomputed). */
	{
		struct nb_stun_enc e;
		uint8_t body[256];
		n = forge_check(body, tid, USER, KEY, true, false);
		body[50] ^= 1; /* a byte of the MESSAGE-INTEGRITY value (at 48) */
		memcpy(b, body, n);
		e.buf = b;
		e.cap = sizeof(b);
		e.len = n;
		e.classic = false;
		assert_int_equal(nb_stun_enc_fingerprint(&e), 0);
		attack(s, victim, b, nb_stun_enc_len(&e), NB_PUNCH_DROP_INTEGRITY);
	}
	/* Our own check, reflected back. */
	if (s->last_check_len[victim] > 0)
		attack(s, victim, s->last_check[victim], s->last_check_len[victim], NB_PUNCH_DROP_REFLECTED);
	/* The peer's genuine check, replayed from elsewhere, once the victim
	 * has had it (one it never had, say a priming check its NAT dropped,
	 * is indistinguishable from the peer's: answering it costs one
	 * answer, and nothing comes of it without the key). */
	if (s->last_check_len[peer] > 0 && victim_saw(&s->h[victim].pu, s->last_check[peer]))
		attack(s, victim, s->last_check[peer], s->last_check_len[peer], NB_PUNCH_DROP_REPLAYED);
	/* The peer's genuine answer, replayed from elsewhere. */
	if (s->last_answer_len[peer] > 0)
		attack(s, victim, s->last_answer[peer], s->last_answer_len[peer], NB_PUNCH_DROP_ASYMMETRIC);
	/* Answers: to a transaction of ours with the wrong key; to no transaction. */
	n = forge_answer(b, s->h[victim].pu.t[0].tid, BADKEY, &m);
	attack(s, victim, b, n, s->h[victim].pu.t[0].sends ? NB_PUNCH_DROP_INTEGRITY : NB_PUNCH_DROP_UNKNOWN_TID);
	n = forge_answer(b, tid, KEY, &m);
	attack(s, victim, b, n, NB_PUNCH_DROP_UNKNOWN_TID);
	/* Not STUN at all: a data frame, a control message, garbage. */
	memset(b, 0, sizeof(b));
	b[0] = 0xD0;
	attack(s, victim, b, 41, NB_PUNCH_DROP_NOT_STUN);
	attack(s, victim, (const uint8_t *)"{\"v\":1}", 7, NB_PUNCH_DROP_NOT_STUN);
	attack(s, victim, b, 0, NB_PUNCH_DROP_NOT_STUN);
	/* A Binding indication, an error response. */
	{
		struct nb_stun_enc e;
		assert_int_equal(nb_stun_enc_init(&e, b, sizeof(b), 0x0011, tid, false), 0);
		assert_int_equal(nb_stun_enc_fingerprint(&e), 0);
		attack(s, victim, b, nb_stun_enc_len(&e), NB_PUNCH_DROP_NOT_CHECK);
		assert_int_equal(nb_stun_enc_init(&e, b, sizeof(b), NB_STUN_BINDING_ERROR, tid, false), 0);
		assert_int_equal(nb_stun_enc_error(&e, 401, "no"), 0);
		assert_int_equal(nb_stun_enc_fingerprint(&e), 0);
		attack(s, victim, b, nb_stun_enc_len(&e), NB_PUNCH_DROP_NOT_CHECK);
	}
}

static void test_third_host(void **state)
{
	static struct sim s;
	/* b is full cone, so the attacker's packets do reach it through its NAT. */
	const struct pair_case c = { EIM, APDF, EIM, EIF, NB_ROLE_DIAL, NB_ROLE_LISTEN, 300, 0, true };
	int a, b;
	uint64_t t0;

	(void)state;
	sim_init(&s);
	setup_pair(&s, &c, &a, &b);
	t0 = s.now;
	/* Before anything was sent (WAITING), during the checks, after. */
	attack_all(&s, a, b);
	attack_all(&s, b, a);
	sim_run(&s, t0 + 300);
	sim_run(&s, t0 + 305); /* a's first check is out, no answer yet */
	assert_int_equal(nb_punch_state(&s.h[a].pu), NB_PUNCH_CHECKING);
	attack_all(&s, a, b);
	sim_run(&s, t0 + 6000);
	assert_int_equal(nb_punch_state(&s.h[a].pu), NB_PUNCH_CONNECTED);
	assert_int_equal(nb_punch_state(&s.h[b].pu), NB_PUNCH_CONNECTED);
	attack_all(&s, a, b);
	attack_all(&s, b, a);

	/* And through the network: forged checks sent to b's public mapping
	 * pass its full-cone NAT, and still get nothing. */
	{
		uint8_t pkt[256], tid[NB_STUN_TID_LEN];
		struct nb_addr rb = s.h[a].pu.remote;
		memset(tid, 0x77, sizeof(tid));
		size_t n = forge_check(pkt, tid, USER, BADKEY, true, true);
		uint64_t drops = s.h[b].pu.drops[-NB_PUNCH_DROP_INTEGRITY - 1];
		sim_route(&s, -1, &s.attacker, &rb, pkt, n);
		sim_run(&s, s.now + 100);
		assert_int_equal(s.h[b].pu.drops[-NB_PUNCH_DROP_INTEGRITY - 1], drops + 1);
		assert_int_equal(s.to_attacker, 0);
	}
	/* A failed machine answers nothing, not even the genuine peer. */
	{
		static struct sim f;
		const struct pair_case d = { APDM, APDF, APDM, APDF, NB_ROLE_PUNCH, NB_ROLE_PUNCH, 0, 0, false };
		uint8_t pkt[256];
		int x, y;
		sim_init(&f);
		setup_pair(&f, &d, &x, &y);
		sim_run(&f, f.now + 6000);
		assert_int_equal(nb_punch_state(&f.h[x].pu), NB_PUNCH_FAILED);
		memcpy(pkt, f.last_check[y], f.last_check_len[y]);
		assert_int_equal(nb_punch_input(&f.h[x].pu, pkt, f.last_check_len[y], &f.h[y].local, f.now),
				 NB_PUNCH_DROP_STATE);
		assert_int_equal(f.h[x].pu.n_ans, 0);
	}
}

/* A retransmitted check from the same source is answered again (it is not a
 * replay); the answer echoes the check's transaction ID and says where the
 * check came from. */
static void test_retransmission_answered(void **state)
{
	struct nb_ctrl_plan p = make_plan(NB_ROLE_LISTEN, NULL, 0, 0);
	struct nb_punch pu;
	struct nb_punch_tx tx;
	struct nb_stun_msg m;
	struct nb_addr from = A("198.51.100.7:4242");
	uint8_t seed[NB_STUN_TID_LEN] = { 9 }, tid[NB_STUN_TID_LEN], b[256];
	size_t n;

	(void)state;
	memset(tid, 0x33, sizeof(tid));
	assert_int_equal(nb_punch_init(&pu, NULL, &p, KEY, seed, 0), 0);
	n = forge_check(b, tid, USER, KEY, true, true);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(nb_punch_input(&pu, b, n, &from, 10), 0);
		assert_int_equal(nb_punch_deadline(&pu), 0);
		assert_int_equal(nb_punch_poll(&pu, 10, &tx), 1);
		assert_false(tx.is_check);
		assert_true(nb_addr_equal(&tx.to, &from));
		assert_true(nb_stun_decode(&m, tx.bytes, tx.len) > 0);
		assert_int_equal(m.type, NB_STUN_BINDING_SUCCESS);
		assert_memory_equal(m.tid, tid, NB_STUN_TID_LEN);
		assert_true(nb_addr_equal(&m.xor_mapped, &from));
		assert_int_equal(nb_stun_check_integrity(&m, tx.bytes, tx.len, (const uint8_t *)KEY, 64), 0);
		assert_true(m.present & NB_STUN_HAS_FINGERPRINT);
		/* Then the triggered check toward the source. */
		if (round == 0) {
			assert_int_equal(nb_punch_poll(&pu, 10, &tx), 1);
			assert_true(tx.is_check);
			assert_true(nb_addr_equal(&tx.to, &from));
			assert_true(nb_stun_decode(&m, tx.bytes, tx.len) > 0);
			assert_int_equal(m.username_len, strlen(USER));
			assert_memory_equal(m.username, USER, strlen(USER));
		}
		while (nb_punch_poll(&pu, 10, &tx) == 1)
			;
	}
	/* The answer queue is bounded: a flood queues at most NB_PUNCH_MAX_ANSWERS. */
	for (int i = 0; i < 50; i++)
		nb_punch_input(&pu, b, n, &from, 20);
	int answers = 0;
	while (nb_punch_poll(&pu, 20, &tx) == 1)
		answers += !tx.is_check;
	assert_int_equal(answers, NB_PUNCH_MAX_ANSWERS);
}

/* An authenticated data frame from a source whose check we answered
 * proves the path (the shell verifies the frame; the machine checks the
 * source). From anywhere else, or after the deadline, it changes nothing. */
static void test_confirm_by_data(void **state)
{
	struct nb_ctrl_plan p = make_plan(NB_ROLE_PUNCH, NULL, 0, 0);
	struct nb_punch pu;
	struct nb_punch_tx tx;
	struct nb_addr peer = A("198.51.100.7:4242"), other = A("198.51.100.8:4242");
	uint8_t seed[NB_STUN_TID_LEN] = { 7 }, tid[NB_STUN_TID_LEN], b[256];
	size_t n;

	(void)state;
	p.candidates[0] = A("198.51.100.7:4000");
	p.n_candidates = 1;
	memset(tid, 0x44, sizeof(tid));
	assert_int_equal(nb_punch_init(&pu, NULL, &p, KEY, seed, 0), 0);
	/* A plan candidate we only sent to is not enough. */
	assert_int_equal(nb_punch_confirm(&pu, &p.candidates[0], 1), -1);
	assert_false(nb_punch_heard(&pu, &peer));
	n = forge_check(b, tid, USER, KEY, true, true);
	assert_int_equal(nb_punch_input(&pu, b, n, &peer, 10), 0);
	while (nb_punch_poll(&pu, 10, &tx) == 1)
		;
	assert_true(nb_punch_heard(&pu, &peer));
	assert_int_equal(nb_punch_confirm(&pu, &other, 20), -1);
	assert_int_equal(nb_punch_state(&pu), NB_PUNCH_CHECKING);
	assert_int_equal(nb_punch_confirm(&pu, &peer, 20), 0);
	assert_int_equal(nb_punch_state(&pu), NB_PUNCH_CONNECTED);
	assert_true(nb_addr_equal(&pu.remote, &peer));
	assert_int_equal(pu.end, 20);
	assert_int_equal(nb_punch_confirm(&pu, &peer, 30), -1); /* once */

	/* After the deadline: nothing. */
	assert_int_equal(nb_punch_init(&pu, NULL, &p, KEY, seed, 0), 0);
	assert_int_equal(nb_punch_input(&pu, b, n, &peer, 10), 0);
	while (nb_punch_poll(&pu, 5000, &tx) == 1)
		;
	assert_int_equal(nb_punch_state(&pu), NB_PUNCH_FAILED);
	assert_int_equal(nb_punch_confirm(&pu, &peer, 5001), -1);
	assert_int_equal(nb_punch_state(&pu), NB_PUNCH_FAILED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pairs),
		cmocka_unit_test(test_remote_is_the_mapping_seen),
		cmocka_unit_test(test_prime_budget),
		cmocka_unit_test(test_lan_pair),
		cmocka_unit_test(test_pacing_and_backoff),
		cmocka_unit_test(test_delay_and_listen),
		cmocka_unit_test(test_listener_alone_fails),
		cmocka_unit_test(test_confirm_sent),
		cmocka_unit_test(test_role_none),
		cmocka_unit_test(test_reason_lists_candidates),
		cmocka_unit_test(test_third_host),
		cmocka_unit_test(test_retransmission_answered),
		cmocka_unit_test(test_confirm_by_data),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
