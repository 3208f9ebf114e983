/* tests/unit/test_birthday.c - birthday punching in the punch machine
 * (roles spray and probe), against a simulated symmetric NAT.
 *
 * The network: the spraying host H behind a NAT that maps every (socket,
 * destination) to a fresh random port of 1024..65535 and admits a packet
 * to a mapping only from the destination it was made for (APDM/APDF, the
 * lab's `snat ... fully-random`); the probing host E behind a port-
 * restricted cone (one external port, admits only endpoints it sent to).
 * Every packet crosses the internet in ONE_WAY_MS. A third host may blast
 * E's public IP.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "peer/punch.h"

#define KEY "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define BADKEY "f123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define USER "fedcba9876543210:hard"
#define ONE_WAY_MS 20
#define MAX_SOCKS 256
#define QMAX 16384

static const uint8_t H_IP[4] = { 203, 0, 113, 104 }, E_IP[4] = { 203, 0, 113, 103 },
		     X_IP[4] = { 203, 0, 113, 66 };
#define E_PORT 40000

struct pkt {
	uint64_t at;
	struct nb_addr from, to;
	size_t len;
	uint8_t b[256];
};

struct sim {
	uint64_t now, rng;
	struct nb_punch h, e;
	/* H's NAT: ext port -> (socket, destination) */
	struct { bool used; uint32_t sock; struct nb_addr dst; } hmap[65536];
	uint16_t hsock_ext[MAX_SOCKS + 1]; /* ext port of each socket toward E (0: none yet) */
	/* E's NAT: the endpoints E sent to on H's IP (by port), and others */
	uint8_t e_sent_h[65536 / 8];
	bool e_sent_x;
	struct pkt q[QMAX];
	size_t q_head, q_tail;
	/* counters */
	uint32_t probes, spray, to_attacker, attacker_in_e;
	uint64_t first_probe, last_probe;
	uint8_t probed[65536 / 8];
	bool dup_probe, bad_port, no_nat_h;
};

static struct nb_addr addr4(const uint8_t ip[4], uint16_t port)
{
	struct nb_addr a;

	memset(&a, 0, sizeof(a));
	a.family = NB_AF_INET;
	memcpy(a.ip, ip, 4);
	a.port = port;
	return a;
}

static uint64_t sim_rand(struct sim *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void enqueue(struct sim *s, const struct nb_addr *from, const struct nb_addr *to,
		    const uint8_t *b, size_t len)
{
	struct pkt *p;

	assert_true(s->q_tail - s->q_head < QMAX);
	assert_true(len <= sizeof(p->b));
	p = &s->q[s->q_tail++ % QMAX];
	p->at = s->now + ONE_WAY_MS;
	p->from = *from;
	p->to = *to;
	p->len = len;
	memcpy(p->b, b, len);
}

/* H's NAT: the external port of socket `sock` toward `to`. */
static uint16_t h_map(struct sim *s, uint32_t sock, const struct nb_addr *to)
{
	for (;;) {
		if (sock <= MAX_SOCKS && s->hsock_ext[sock] != 0 &&
		    nb_addr_equal(&s->hmap[s->hsock_ext[sock]].dst, to))
			return s->hsock_ext[sock];
		uint16_t port = (uint16_t)(1024 + sim_rand(s) % 64512);
		if (s->hmap[port].used)
			continue;
		s->hmap[port].used = true;
		s->hmap[port].sock = sock;
		s->hmap[port].dst = *to;
		if (sock <= MAX_SOCKS)
			s->hsock_ext[sock] = port;
		return port;
	}
}

static void pump(struct sim *s)
{
	struct nb_punch_tx tx;

	while (nb_punch_poll(&s->h, s->now, &tx) == 1) {
		struct nb_addr from = addr4(H_IP, h_map(s, tx.sock, &tx.to));
		if (tx.is_check && tx.sock != 0)
			s->spray++;
		enqueue(s, &from, &tx.to, tx.bytes, tx.len);
	}
	while (nb_punch_poll(&s->e, s->now, &tx) == 1) {
		struct nb_addr from = addr4(E_IP, E_PORT);
		assert_int_equal(tx.sock, 0);
		if (memcmp(tx.to.ip, H_IP, 4) == 0) {
			s->e_sent_h[tx.to.port >> 3] |= (uint8_t)(1u << (tx.to.port & 7));
			if (tx.is_check && s->e.bd.sent > s->probes) { /* a new probe */
				s->probes = s->e.bd.sent;
				if (s->probes == 1)
					s->first_probe = s->now;
				s->last_probe = s->now;
				if (tx.to.port < 1024)
					s->bad_port = true;
				if ((s->probed[tx.to.port >> 3] >> (tx.to.port & 7)) & 1)
					s->dup_probe = true;
				s->probed[tx.to.port >> 3] |= (uint8_t)(1u << (tx.to.port & 7));
			}
		} else if (memcmp(tx.to.ip, X_IP, 4) == 0) {
			s->to_attacker++;
		}
		enqueue(s, &from, &tx.to, tx.bytes, tx.len);
	}
}

static void deliver(struct sim *s, const struct pkt *p)
{
	if (memcmp(p->to.ip, H_IP, 4) == 0) {
		/* H's NAT: only to a mapping, only from its destination */
		if (s->no_nat_h || !s->hmap[p->to.port].used ||
		    !nb_addr_equal(&s->hmap[p->to.port].dst, &p->from))
			return;
		(void)nb_punch_input_on(&s->h, s->hmap[p->to.port].sock, p->b, p->len, &p->from, s->now);
	} else if (memcmp(p->to.ip, E_IP, 4) == 0 && p->to.port == E_PORT) {
		bool ok = memcmp(p->from.ip, H_IP, 4) == 0
				  ? (s->e_sent_h[p->from.port >> 3] >> (p->from.port & 7)) & 1
				  : memcmp(p->from.ip, X_IP, 4) == 0 && s->e_sent_x;
		if (!ok)
			return;
		if (memcmp(p->from.ip, X_IP, 4) == 0)
			s->attacker_in_e++;
		(void)nb_punch_input(&s->e, p->b, p->len, &p->from, s->now);
	} else if (memcmp(p->to.ip, X_IP, 4) == 0) {
		s->to_attacker++;
	}
}

/* Run until `until` (ms) or both sides are done. */
static void run(struct sim *s, uint64_t until)
{
	for (; s->now <= until; s->now++) {
		pump(s);
		while (s->q_head < s->q_tail && s->q[s->q_head % QMAX].at <= s->now) {
			struct pkt p = s->q[s->q_head % QMAX];
			s->q_head++;
			deliver(s, &p);
			pump(s);
		}
		if (nb_punch_state(&s->h) >= NB_PUNCH_CONNECTED && nb_punch_state(&s->e) >= NB_PUNCH_CONNECTED &&
		    s->q_head == s->q_tail)
			break;
	}
}

static struct nb_ctrl_plan plan(enum nb_role role, const struct nb_addr *cand, uint32_t sockets,
				uint32_t probes, uint32_t rate, uint32_t deadline)
{
	struct nb_ctrl_plan p;

	memset(&p, 0, sizeof(p));
	snprintf(p.session, sizeof(p.session), "fedcba9876543210");
	snprintf(p.peer, sizeof(p.peer), "peer");
	p.role = role;
	p.path = NB_PATH_BIRTHDAY;
	p.candidates[0] = *cand;
	p.candidates[1] = addr4((const uint8_t[4]){ 192, 168, 3, 2 }, 5000); /* a LAN one: never sprayed */
	p.n_candidates = 2;
	snprintf(p.username, sizeof(p.username), "%s", USER);
	p.deadline_ms = deadline;
	p.birthday = (struct nb_ctrl_birthday){ .has = true, .sockets = sockets, .probes = probes,
						.rate = rate };
	return p;
}

/* Both sides start at s->now; the seed picks every random choice. */
static void sim_start(struct sim *s, uint64_t seed, uint32_t sockets, uint32_t probes, uint32_t rate,
		      uint32_t deadline)
{
	uint8_t hs[NB_STUN_TID_LEN], es[NB_STUN_TID_LEN];

	memset(s, 0, sizeof(*s));
	s->now = 1000000;
	s->rng = seed;
	for (int i = 0; i < NB_STUN_TID_LEN; i++) {
		hs[i] = (uint8_t)sim_rand(s);
		es[i] = (uint8_t)sim_rand(s);
	}
	/* H's reflexive address: its main socket's mapping toward the broker */
	struct nb_addr broker = addr4((const uint8_t[4]){ 203, 0, 113, 10 }, 3478);
	struct nb_addr h_refl = addr4(H_IP, h_map(s, 0, &broker));
	struct nb_addr e_refl = addr4(E_IP, E_PORT);
	struct nb_ctrl_plan ph = plan(NB_ROLE_SPRAY, &e_refl, sockets, probes, rate, deadline);
	struct nb_ctrl_plan pe = plan(NB_ROLE_PROBE, &h_refl, sockets, probes, rate, deadline);
	assert_int_equal(nb_punch_init(&s->h, NULL, &ph, KEY, hs, s->now), 0);
	assert_int_equal(nb_punch_init(&s->e, NULL, &pe, KEY, es, s->now), 0);
}

/* A check as the prober sends it (its own transaction ID). */
static void bday_forge_check(struct sim *s, uint8_t *b, size_t *ret_n)
{
	struct nb_stun_enc e;
	uint8_t tid[NB_STUN_TID_LEN];

	for (int i = 0; i < NB_STUN_TID_LEN; i++)
		tid[i] = (uint8_t)sim_rand(s);
	nb_stun_enc_init(&e, b, 256, NB_STUN_BINDING_REQUEST, tid, false);
	nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, USER, strlen(USER));
	nb_stun_enc_integrity(&e, (const uint8_t *)KEY, 64);
	nb_stun_enc_fingerprint(&e);
	*ret_n = nb_stun_enc_len(&e);
}

/* 256 sockets, 2048 probes at 1000/s: connects, and both sides agree on
 * the one winning mapping. */
static void test_connects(void **state)
{
	static struct sim s;
	int ok = 0;

	(void)state;
	for (uint64_t seed = 1; seed <= 5; seed++) {
		sim_start(&s, seed, 256, 2048, 1000, 5000);
		run(&s, s.now + 5000);
		if (nb_punch_state(&s.h) != NB_PUNCH_CONNECTED)
			continue;
		ok++;
		assert_int_equal(nb_punch_state(&s.e), NB_PUNCH_CONNECTED);
		uint32_t j = s.h.remote_sock;
		assert_true(j >= 1 && j <= 256);
		uint16_t won = s.hsock_ext[j];
		/* H's winning socket is the one whose mapping E reached */
		assert_true(nb_addr_equal(&s.h.remote, &(struct nb_addr){ 0 }) == false);
		assert_true(nb_addr_equal(&s.e.remote, &(struct nb_addr){ .family = NB_AF_INET,
									   .ip = { 203, 0, 113, 104 },
									   .port = won }));
		assert_int_equal(s.e.bd.port, won);
		assert_int_equal(s.h.bd.port, won);
		assert_int_equal(s.h.remote.port, E_PORT);
		assert_true(s.e.bd.sent <= 2048);
		/* sprayed once per socket, in NB_PUNCH_SPRAY_PER_MS per ms */
		assert_int_equal(s.h.bd.rounds, 1);
		assert_int_equal(s.h.bd.sprayed, 256);
		assert_true(s.spray >= 256 && s.spray <= 256 + 8); /* + triggered checks */
		assert_false(s.dup_probe);
		assert_false(s.bad_port);
		/* and nothing more goes out once connected */
		uint32_t probes = s.e.bd.sent, spray = s.spray;
		run(&s, s.now + 3000);
		assert_int_equal(s.e.bd.sent, probes);
		assert_int_equal(s.spray, spray);
		assert_int_equal(nb_punch_deadline(&s.e), UINT64_MAX);
	}
	assert_true(ok >= 4); /* each try succeeds with 99.97% */
}

/* Pacing and the budget: against a host that never answers, E sends
 * exactly `probes` probes at `rate`, to distinct ports of 1024..65535,
 * then only waits; it fails at the deadline and says why. */
static void test_budget_and_pacing(void **state)
{
	static struct sim s;

	(void)state;
	sim_start(&s, 77, 256, 300, 100, 5000);
	s.no_nat_h = true; /* nothing reaches H */
	uint64_t t0 = s.now;
	run(&s, t0 + 6000);
	assert_int_equal(s.probes, 300);
	assert_int_equal(s.e.bd.sent, 300);
	assert_false(s.dup_probe);
	assert_false(s.bad_port);
	/* 100/s: the first at once, the 300th at 2.99 s */
	assert_int_equal(s.first_probe, t0);
	assert_true(s.last_probe >= t0 + 2990 && s.last_probe <= t0 + 3000);
	assert_int_equal(nb_punch_state(&s.e), NB_PUNCH_FAILED);
	assert_int_equal(nb_punch_state(&s.h), NB_PUNCH_FAILED);
	assert_int_equal(s.e.end, t0 + 5000);
	assert_non_null(strstr(s.e.reason, "none of 300 probes to ports of 203.0.113.104"));
	assert_non_null(strstr(s.h.reason, "no probe reached any of our 256 sockets"));
	/* the spray: 256 checks within 32 ms, then again every 5 s */
	assert_int_equal(s.h.bd.rounds, 1);
	assert_true(s.spray == 256 + 256 || s.spray == 256); /* a refresh at 5000 ms = the deadline */
}

static void test_spray_pacing(void **state)
{
	static struct sim s;
	struct nb_punch_tx tx;
	uint64_t t0;
	uint32_t n = 0, per_ms[64] = { 0 };
	bool seen[257] = { false };

	(void)state;
	sim_start(&s, 5, 256, 2048, 1000, 20000);
	t0 = s.now;
	for (uint64_t t = t0; t < t0 + 64; t++) {
		while (nb_punch_poll(&s.h, t, &tx) == 1) {
			assert_true(tx.is_check);
			assert_true(tx.sock >= 1 && tx.sock <= 256);
			assert_false(seen[tx.sock]);
			seen[tx.sock] = true;
			assert_true(nb_addr_equal(&tx.to, &(struct nb_addr){ .family = NB_AF_INET,
									      .ip = { 203, 0, 113, 103 },
									      .port = E_PORT }));
			per_ms[t - t0]++;
			n++;
		}
	}
	assert_int_equal(n, 256);
	for (int i = 0; i < 64; i++)
		assert_true(per_ms[i] <= NB_PUNCH_SPRAY_PER_MS);
	/* the next round at +5 s */
	assert_int_equal(nb_punch_deadline(&s.h), t0 + NB_PUNCH_SPRAY_REFRESH_MS);
	assert_int_equal(nb_punch_poll(&s.h, t0 + NB_PUNCH_SPRAY_REFRESH_MS - 1, &tx), 0);
	assert_int_equal(nb_punch_poll(&s.h, t0 + NB_PUNCH_SPRAY_REFRESH_MS, &tx), 1);
	assert_int_equal(tx.sock, 1);
	assert_int_equal(s.h.bd.rounds, 2);
}

/* The success rate over many seeded tries matches 1 - C(P-s,n)/C(P,n)
 * within four standard deviations. */
static void test_success_rate(void **state)
{
	static struct sim s;
	const uint32_t socks = 64, probes = 512, tries = 150;
	double miss = 1.0, p, sd;
	uint32_t ok = 0;

	(void)state;
	for (uint32_t i = 0; i < probes; i++)
		miss *= (double)(NB_BDAY_PORTS - socks - i) / (double)(NB_BDAY_PORTS - i);
	p = 1.0 - miss; /* 0.40 */
	for (uint64_t seed = 1000; seed < 1000 + tries; seed++) {
		sim_start(&s, seed, socks, probes, 10000, 400);
		run(&s, s.now + 400);
		ok += nb_punch_state(&s.e) == NB_PUNCH_CONNECTED;
		if (nb_punch_state(&s.e) == NB_PUNCH_CONNECTED)
			assert_int_equal(nb_punch_state(&s.h), NB_PUNCH_CONNECTED);
	}
	sd = sqrt(tries * p * (1 - p));
	print_message("birthday: %u of %u tries connected; expected %.1f +- %.1f\n", ok, tries,
		      tries * p, sd);
	assert_true(fabs((double)ok - tries * p) <= 4 * sd);
}

/* A third host blasting E's public IP during the attempt (forged checks
 * under a wrong key, forged answers to guessed transactions, garbage)
 * neither wins nor breaks it. E's NAT lets it in: E "sent to it" (the
 * worst case, a cone that admits it). */
static void test_third_host(void **state)
{
	static struct sim s;
	struct nb_stun_enc e;
	uint8_t b[256], tid[NB_STUN_TID_LEN];
	struct nb_addr x = addr4(X_IP, 7777), e_pub = addr4(E_IP, E_PORT);

	(void)state;
	sim_start(&s, 9, 256, 2048, 1000, 5000);
	s.e_sent_x = true;
	for (int round = 0; round < 40 && nb_punch_state(&s.e) != NB_PUNCH_CONNECTED; round++) {
		for (int k = 0; k < 50; k++) {
			uint16_t sport = (uint16_t)(1024 + sim_rand(&s) % 64512);
			x.port = sport;
			memset(tid, 0, sizeof(tid));
			for (int i = 0; i < NB_STUN_TID_LEN; i++)
				tid[i] = (uint8_t)sim_rand(&s);
			if (k % 3 == 0) { /* a check under the wrong key */
				nb_stun_enc_init(&e, b, sizeof(b), NB_STUN_BINDING_REQUEST, tid, false);
				nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, USER, strlen(USER));
				nb_stun_enc_integrity(&e, (const uint8_t *)BADKEY, 64);
			} else if (k % 3 == 1) { /* an answer, as if to a probe of that port */
				memcpy(tid, s.e.seed, NB_STUN_TID_LEN);
				tid[8] ^= 0x80;
				tid[9] ^= (uint8_t)(sport >> 8);
				tid[10] ^= (uint8_t)sport;
				nb_stun_enc_init(&e, b, sizeof(b), NB_STUN_BINDING_SUCCESS, tid, false);
				nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &e_pub);
				nb_stun_enc_integrity(&e, (const uint8_t *)BADKEY, 64);
			} else { /* garbage */
				nb_stun_enc_init(&e, b, sizeof(b), NB_STUN_BINDING_SUCCESS, tid, false);
			}
			nb_stun_enc_fingerprint(&e);
			enqueue(&s, &x, &e_pub, b, nb_stun_enc_len(&e));
		}
		run(&s, s.now + 10);
	}
	run(&s, s.now + 5000);
	assert_true(s.attacker_in_e > 0);
	assert_int_equal(nb_punch_state(&s.e), NB_PUNCH_CONNECTED);
	assert_int_equal(nb_punch_state(&s.h), NB_PUNCH_CONNECTED);
	assert_true(memcmp(s.e.remote.ip, H_IP, 4) == 0);
	assert_int_equal(s.to_attacker, 0);
	/* Even an answer with the right key, to a port E did probe, is
	 * refused from the attacker's address: it must come from that port of
	 * H's IP. */
	uint16_t port = 0;
	for (uint32_t p = 1024; p < 65536 && port == 0; p++)
		if ((s.probed[p >> 3] >> (p & 7)) & 1)
			port = (uint16_t)p;
	assert_true(port != 0);
	memcpy(tid, s.e.seed, NB_STUN_TID_LEN);
	tid[8] ^= 0x80;
	tid[9] ^= (uint8_t)(port >> 8);
	tid[10] ^= (uint8_t)port;
	nb_stun_enc_init(&e, b, sizeof(b), NB_STUN_BINDING_SUCCESS, tid, false);
	nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &e_pub);
	nb_stun_enc_integrity(&e, (const uint8_t *)KEY, 64);
	nb_stun_enc_fingerprint(&e);
	x.port = port;
	assert_int_equal(nb_punch_input(&s.e, b, nb_stun_enc_len(&e), &x, s.now), NB_PUNCH_DROP_ASYMMETRIC);
	struct nb_addr h = addr4(H_IP, port);
	assert_int_equal(nb_punch_input(&s.e, b, nb_stun_enc_len(&e), &h, s.now), 0); /* the real source */
}

/* Answers must come back on the socket and from the address their check
 * went to; a probe answer must name a port that was probed. */
static void test_answer_matching(void **state)
{
	static struct sim s;
	struct nb_punch_tx tx;
	struct nb_stun_enc e;
	uint8_t b[256], tid[NB_STUN_TID_LEN];
	struct nb_addr e_pub = addr4(E_IP, E_PORT), h_pub;
	uint16_t port = 0;

	(void)state;
	sim_start(&s, 3, 4, 10, 1000, 5000);
	/* E's first probe */
	assert_int_equal(nb_punch_poll(&s.e, s.now, &tx), 1);
	port = tx.to.port;
	memcpy(tid, tx.bytes + 8, NB_STUN_TID_LEN);
	h_pub = tx.to;
	nb_stun_enc_init(&e, b, sizeof(b), NB_STUN_BINDING_SUCCESS, tid, false);
	nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &e_pub);
	nb_stun_enc_integrity(&e, (const uint8_t *)KEY, 64);
	nb_stun_enc_fingerprint(&e);
	size_t n = nb_stun_enc_len(&e);
	/* from another port of H's IP: asymmetric */
	h_pub.port = (uint16_t)(port == 65535 ? 1024 : port + 1);
	assert_int_equal(nb_punch_input(&s.e, b, n, &h_pub, s.now), NB_PUNCH_DROP_ASYMMETRIC);
	/* the same answer with a probe ID of a port never probed: unknown */
	{
		uint8_t b2[256], tid2[NB_STUN_TID_LEN];
		uint16_t other = h_pub.port;
		memcpy(tid2, tid, sizeof(tid2));
		tid2[9] = (uint8_t)(s.e.seed[9] ^ (other >> 8));
		tid2[10] = (uint8_t)(s.e.seed[10] ^ other);
		nb_stun_enc_init(&e, b2, sizeof(b2), NB_STUN_BINDING_SUCCESS, tid2, false);
		nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &e_pub);
		nb_stun_enc_integrity(&e, (const uint8_t *)KEY, 64);
		nb_stun_enc_fingerprint(&e);
		assert_int_equal(nb_punch_input(&s.e, b2, nb_stun_enc_len(&e), &h_pub, s.now),
				 NB_PUNCH_DROP_UNKNOWN_TID);
	}
	/* on the right port: connected, once */
	h_pub.port = port;
	assert_int_equal(nb_punch_input(&s.e, b, n, &h_pub, s.now), 0);
	assert_int_equal(nb_punch_state(&s.e), NB_PUNCH_CONNECTED);
	assert_int_equal(s.e.bd.port, port);
	h_pub.port = (uint16_t)(port + 7);
	/* H: a spray answer must arrive on its own socket */
	assert_int_equal(nb_punch_poll(&s.h, s.now, &tx), 1);
	assert_int_equal(tx.sock, 1);
	memcpy(tid, tx.bytes + 8, NB_STUN_TID_LEN);
	nb_stun_enc_init(&e, b, sizeof(b), NB_STUN_BINDING_SUCCESS, tid, false);
	nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &h_pub);
	nb_stun_enc_integrity(&e, (const uint8_t *)KEY, 64);
	nb_stun_enc_fingerprint(&e);
	n = nb_stun_enc_len(&e);
	assert_int_equal(nb_punch_input_on(&s.h, 2, b, n, &e_pub, s.now), NB_PUNCH_DROP_ASYMMETRIC);
	assert_int_equal(nb_punch_input_on(&s.h, 5, b, n, &e_pub, s.now), NB_PUNCH_DROP_NOT_CHECK); /* > 4 */
	assert_int_equal(nb_punch_input_on(&s.h, 1, b, n, &h_pub, s.now), NB_PUNCH_DROP_ASYMMETRIC);
	assert_int_equal(nb_punch_state(&s.h), NB_PUNCH_CHECKING);
	assert_int_equal(nb_punch_input_on(&s.h, 1, b, n, &e_pub, s.now), 0);
	assert_int_equal(nb_punch_state(&s.h), NB_PUNCH_CONNECTED);
	assert_int_equal(s.h.remote_sock, 1);
	assert_int_equal(s.h.bd.port, h_pub.port); /* its mapped port, from the answer */
	/* a probe-side datagram on a spray socket number: refused */
	assert_int_equal(nb_punch_input_on(&s.e, 1, b, n, &e_pub, s.now), NB_PUNCH_DROP_NOT_CHECK);
}

/* The spraying side connected on the prober's data (before any answer):
 * it learns its winning port from the first late answer on that socket. */
static void test_spray_port_late(void **state)
{
	static struct sim s;
	struct nb_punch_tx tx;
	struct nb_stun_enc e;
	uint8_t b[256], tid[NB_STUN_TID_LEN];
	struct nb_addr e_pub = addr4(E_IP, E_PORT), mapped = addr4(H_IP, 31337);
	size_t n;

	(void)state;
	sim_start(&s, 11, 4, 10, 1000, 5000);
	while (nb_punch_poll(&s.h, s.now, &tx) == 1) /* the spray */
		;
	/* the prober's check on socket 3: answered and checked back from 3 */
	bday_forge_check(&s, b, &n);
	assert_int_equal(nb_punch_input_on(&s.h, 3, b, n, &e_pub, s.now), 0);
	bool found = false;
	while (nb_punch_poll(&s.h, s.now, &tx) == 1) {
		if (!tx.is_check || tx.sock != 3)
			continue;
		memcpy(tid, tx.bytes + 8, NB_STUN_TID_LEN); /* the triggered check */
		found = true;
	}
	assert_true(found);
	/* the prober's data comes before that check's answer */
	assert_int_equal(nb_punch_confirm_on(&s.h, 3, &e_pub, s.now), 0);
	assert_int_equal(nb_punch_state(&s.h), NB_PUNCH_CONNECTED);
	assert_int_equal(s.h.remote_sock, 3);
	assert_int_equal(s.h.bd.port, 0);
	nb_stun_enc_init(&e, b, sizeof(b), NB_STUN_BINDING_SUCCESS, tid, false);
	nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &mapped);
	nb_stun_enc_integrity(&e, (const uint8_t *)KEY, 64);
	nb_stun_enc_fingerprint(&e);
	/* on another socket: not taken as the port */
	assert_int_equal(nb_punch_input_on(&s.h, 2, b, nb_stun_enc_len(&e), &e_pub, s.now), NB_PUNCH_DROP_ASYMMETRIC);
	assert_int_equal(s.h.bd.port, 0);
	assert_int_equal(nb_punch_input_on(&s.h, 3, b, nb_stun_enc_len(&e), &e_pub, s.now), 0);
	assert_int_equal(s.h.bd.port, 31337);
}

/* Bad budgets fail at once, with a reason. */
static void test_bad_plans(void **state)
{
	static struct nb_punch pu;
	uint8_t seed[NB_STUN_TID_LEN] = { 1 };
	struct nb_addr lan = addr4((const uint8_t[4]){ 192, 168, 1, 2 }, 5000);
	struct nb_ctrl_plan p = plan(NB_ROLE_PROBE, &lan, 256, 2048, 1000, 5000);

	(void)state;
	p.n_candidates = 1; /* only a private address: nothing to probe */
	assert_int_equal(nb_punch_init(&pu, NULL, &p, KEY, seed, 100), 0);
	assert_int_equal(nb_punch_state(&pu), NB_PUNCH_FAILED);
	assert_non_null(strstr(pu.reason, "no public address"));
	p = plan(NB_ROLE_SPRAY, &(struct nb_addr){ .family = NB_AF_INET, .ip = { 203, 0, 113, 9 }, .port = 9 },
		 0, 2048, 1000, 5000);
	assert_int_equal(nb_punch_init(&pu, NULL, &p, KEY, seed, 100), 0);
	assert_int_equal(nb_punch_state(&pu), NB_PUNCH_FAILED);
	assert_non_null(strstr(pu.reason, "no sockets"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connects),
		cmocka_unit_test(test_budget_and_pacing),
		cmocka_unit_test(test_spray_pacing),
		cmocka_unit_test(test_success_rate),
		cmocka_unit_test(test_third_host),
		cmocka_unit_test(test_answer_matching),
		cmocka_unit_test(test_spray_port_late),
		cmocka_unit_test(test_bad_plans),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
