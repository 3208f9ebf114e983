/* tests/unit/test_connectivity.c - the connectivity table.
 *
 * Two checks:
 *  1. a hand-written table for the lab's NAT kinds, matching the hole-punching
 *     ground truth measured in the lab (shared natlab NOTES);
 *  2. every combination of mapping x filtering x UDP-blocked x UPnP on both
 *     sides, against a small packet-level NAT simulator that knows nothing of
 *     the predicate: a plan that promises a path must work when its roles are
 *     played out, and a plan of "none" must fail even when both sides punch.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "broker/connectivity.h"

#define EIM NB_MAPPING_ENDPOINT_INDEPENDENT
#define ADM NB_MAPPING_ADDRESS_DEPENDENT
#define APDM NB_MAPPING_ADDRESS_AND_PORT_DEPENDENT
#define NOMAP NB_MAPPING_NONE
#define EIF NB_FILTERING_ENDPOINT_INDEPENDENT
#define ADF NB_FILTERING_ADDRESS_DEPENDENT
#define APDF NB_FILTERING_ADDRESS_AND_PORT_DEPENDENT

static struct nb_peer_nat peer(enum nb_mapping m, enum nb_filtering f, bool blocked, bool upnp,
			       uint8_t ip_last)
{
	struct nb_peer_nat p;
	memset(&p, 0, sizeof(p));
	p.mapping = m;
	p.filtering = f;
	p.udp_blocked = blocked;
	p.upnp_verified = upnp;
	p.reflexive.family = NB_AF_INET;
	p.reflexive.ip[0] = 203;
	p.reflexive.ip[2] = 113;
	p.reflexive.ip[3] = ip_last;
	p.reflexive.port = 40000;
	return p;
}

/* ---- 1. The lab's kinds ------------------------------------------------- */

enum kind { OPEN, FC, RC, PRC, SYM, BLK, UPNP, KIND_N };
static const char *const kind_name[] = { "pub", "fc", "rc", "prc", "sym", "blk", "upnp" };

static struct nb_peer_nat of_kind(enum kind k, uint8_t ip)
{
	switch (k) {
	case OPEN: return peer(NOMAP, EIF, false, false, ip);
	case FC: return peer(EIM, EIF, false, false, ip);
	case RC: return peer(EIM, ADF, false, false, ip);
	case PRC: return peer(EIM, APDF, false, false, ip);
	case SYM: return peer(APDM, APDF, false, false, ip);
	case BLK: return peer(NB_MAPPING_UNKNOWN, NB_FILTERING_UNKNOWN, true, false, ip);
	default: return peer(EIM, APDF, false, true, ip); /* UPNP, mapping verified */
	}
}

#define D NB_ROLE_DIAL
#define L NB_ROLE_LISTEN
#define P NB_ROLE_PUNCH
#define R NB_ROLE_PRIME
#define N NB_ROLE_NONE
#define Y NB_ROLE_RELAY
#define S NB_ROLE_SPRAY
#define Q NB_ROLE_PROBE

static const struct nb_ctrl_birthday BDAY = { .has = true, .sockets = 256, .probes = 2048, .rate = 1000 };

static const struct {
	enum kind a, b;
	enum nb_path path;
	enum nb_role ra, rb;
} lab_cases[] = {
	/* the open side listens, the other dials */
	{ OPEN, OPEN, NB_PATH_DIRECT, D, L }, { OPEN, FC, NB_PATH_DIRECT, D, L },
	{ OPEN, RC, NB_PATH_DIRECT, L, D },   { OPEN, PRC, NB_PATH_DIRECT, L, D },
	{ OPEN, SYM, NB_PATH_DIRECT, L, D },  { FC, PRC, NB_PATH_DIRECT, L, D },
	{ PRC, FC, NB_PATH_DIRECT, D, L },    { SYM, FC, NB_PATH_DIRECT, D, L },
	{ FC, SYM, NB_PATH_DIRECT, L, D },    { RC, FC, NB_PATH_DIRECT, D, L },
	/* two cones punch at once */
	{ RC, RC, NB_PATH_DIRECT, P, P },     { RC, PRC, NB_PATH_DIRECT, P, P },
	{ PRC, PRC, NB_PATH_DIRECT, P, P },   { PRC, RC, NB_PATH_DIRECT, P, P },
	/* restricted cone vs symmetric: the restricted side primes first */
	{ SYM, RC, NB_PATH_DIRECT, D, R },    { RC, SYM, NB_PATH_DIRECT, R, D },
	/* no direct path: relay; the UDP-blocked side allocates, else the asker */
	/* symmetric vs port-restricted: birthday, the symmetric side sprays */
	{ SYM, PRC, NB_PATH_BIRTHDAY, S, Q }, { PRC, SYM, NB_PATH_BIRTHDAY, Q, S },
	{ OPEN, SYM, NB_PATH_DIRECT, L, D },
	/* both hard: relay; the UDP-blocked side allocates, else the asker */
	{ SYM, SYM, NB_PATH_RELAY, Y, D },    { BLK, OPEN, NB_PATH_RELAY, Y, D },
	{ FC, BLK, NB_PATH_RELAY, D, Y },     { BLK, BLK, NB_PATH_NONE, N, N },
	/* a verified UPnP mapping listens */
	{ SYM, UPNP, NB_PATH_UPNP, D, L },    { UPNP, SYM, NB_PATH_UPNP, L, D },
	{ UPNP, PRC, NB_PATH_UPNP, L, D },    { BLK, UPNP, NB_PATH_RELAY, Y, D },
};

static void test_lab_kinds(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(lab_cases) / sizeof(lab_cases[0]); i++) {
		struct nb_peer_nat a = of_kind(lab_cases[i].a, 101), b = of_kind(lab_cases[i].b, 102);
		struct nb_plan p;
		nb_connectivity_plan(&a, &b, &BDAY, &p);
		if (p.path != lab_cases[i].path || p.role_a != lab_cases[i].ra || p.role_b != lab_cases[i].rb)
			fail_msg("%s -> %s: got %s %s/%s (%s), want %s %s/%s", kind_name[lab_cases[i].a],
				 kind_name[lab_cases[i].b], nb_path_to_string(p.path),
				 nb_role_to_string(p.role_a), nb_role_to_string(p.role_b), p.reason,
				 nb_path_to_string(lab_cases[i].path), nb_role_to_string(lab_cases[i].ra),
				 nb_role_to_string(lab_cases[i].rb));
		assert_true(strlen(p.reason) > 0);
	}
}

static void test_same_public_ip_is_lan(void **state)
{
	struct nb_peer_nat a = of_kind(PRC, 109), b = of_kind(PRC, 109);
	struct nb_plan p;

	(void)state;
	b.reflexive.port = 40001;
	nb_connectivity_plan(&a, &b, &BDAY, &p);
	assert_int_equal(p.path, NB_PATH_LAN);
	assert_int_equal(p.role_a, NB_ROLE_PUNCH);
	assert_int_equal(p.role_b, NB_ROLE_PUNCH);
}

static void test_nat_names(void **state)
{
	(void)state;
	assert_int_equal(nb_nat_type_of(NOMAP, EIF, false), NB_NAT_OPEN);
	assert_int_equal(nb_nat_type_of(NOMAP, APDF, false), NB_NAT_FIREWALL);
	assert_int_equal(nb_nat_type_of(EIM, EIF, false), NB_NAT_FULL_CONE);
	assert_int_equal(nb_nat_type_of(EIM, ADF, false), NB_NAT_RESTRICTED_CONE);
	assert_int_equal(nb_nat_type_of(EIM, APDF, false), NB_NAT_PORT_RESTRICTED_CONE);
	assert_int_equal(nb_nat_type_of(ADM, APDF, false), NB_NAT_SYMMETRIC);
	assert_int_equal(nb_nat_type_of(APDM, EIF, false), NB_NAT_SYMMETRIC);
	assert_int_equal(nb_nat_type_of(EIM, EIF, true), NB_NAT_UDP_BLOCKED);
	assert_int_equal(nb_nat_type_of(NB_MAPPING_UNKNOWN, EIF, false), NB_NAT_UNKNOWN);
	assert_int_equal(nb_nat_type_of(EIM, NB_FILTERING_UNKNOWN, false), NB_NAT_UNKNOWN);
}

/* ---- 2. A packet-level NAT simulator ------------------------------------ */

#define SIM_MAX 256
#define BROKER_IP 9
#define BROKER_PORT 3478
#define HOST_PORT 5000
#define UPNP_PORT 7000
#define SPRAY_PORT 6000 /* birthday: the spraying side's sockets, from here up */
#define SPRAY_SOCKETS 16

struct sim_nat {
	struct nb_peer_nat cfg;
	uint8_t ip;
	/* mappings: (local port, destination ip, port) -> external port */
	struct { uint16_t lport; uint8_t ip; uint16_t port, ext; } map[SIM_MAX];
	int n_map;
	/* filter entries: external port sent from -> remote (ip, port) */
	struct { uint16_t ext; uint8_t ip; uint16_t port; } flt[SIM_MAX];
	int n_flt;
	uint16_t first_port, next_port;
	bool got; /* received a packet from the peer */
};

/* The external port the NAT uses for the host's socket `lport` toward (ip, port). */
static uint16_t sim_map(struct sim_nat *n, uint16_t lport, uint8_t ip, uint16_t port)
{
	if (n->cfg.upnp_verified && lport == HOST_PORT)
		return UPNP_PORT; /* static mapping, sent out unchanged */
	if (n->cfg.mapping == NB_MAPPING_NONE)
		return lport;
	for (int i = 0; i < n->n_map; i++) {
		bool same;
		if (n->map[i].lport != lport)
			continue;
		switch (n->cfg.mapping) {
		case NB_MAPPING_ENDPOINT_INDEPENDENT: same = true; break;
		case NB_MAPPING_ADDRESS_DEPENDENT: same = n->map[i].ip == ip; break;
		default: same = n->map[i].ip == ip && n->map[i].port == port; break;
		}
		if (same)
			return n->map[i].ext;
	}
	assert_true(n->n_map < SIM_MAX);
	n->map[n->n_map].lport = lport;
	n->map[n->n_map].ip = ip;
	n->map[n->n_map].port = port;
	n->map[n->n_map].ext = n->next_port++;
	return n->map[n->n_map++].ext;
}

/* The local port behind external port ext, or 0. */
static uint16_t sim_owner(const struct sim_nat *n, uint16_t ext)
{
	if (n->cfg.upnp_verified && ext == UPNP_PORT)
		return HOST_PORT;
	if (n->cfg.mapping == NB_MAPPING_NONE)
		return ext == HOST_PORT || (ext >= SPRAY_PORT && ext < SPRAY_PORT + SPRAY_SOCKETS) ? ext : 0;
	for (int i = 0; i < n->n_map; i++)
		if (n->map[i].ext == ext)
			return n->map[i].lport;
	return 0;
}

static bool sim_admits(const struct sim_nat *n, uint16_t ext, uint8_t ip, uint16_t port)
{
	enum nb_filtering f = n->cfg.filtering;

	if (n->cfg.udp_blocked || sim_owner(n, ext) == 0)
		return false;
	if ((n->cfg.upnp_verified && ext == UPNP_PORT) || f == NB_FILTERING_ENDPOINT_INDEPENDENT)
		return true;
	for (int i = 0; i < n->n_flt; i++) {
		if (n->flt[i].ext != ext || n->flt[i].ip != ip)
			continue;
		if (f == NB_FILTERING_ADDRESS_DEPENDENT || n->flt[i].port == port)
			return true;
	}
	return false;
}

/* Host behind `from` sends from its socket `lport` to (ip, port); returns
 * true if `to` delivers it. A delivered check is answered from the socket
 * it arrived on to the source the receiver saw. */
static bool sim_send_from(struct sim_nat *from, uint16_t lport, struct sim_nat *to, uint8_t ip,
			  uint16_t port, bool is_check)
{
	if (from->cfg.udp_blocked)
		return false;
	uint16_t src = sim_map(from, lport, ip, port);
	assert_true(from->n_flt < SIM_MAX);
	from->flt[from->n_flt].ext = src;
	from->flt[from->n_flt].ip = ip;
	from->flt[from->n_flt++].port = port;
	if (ip != to->ip || !sim_admits(to, port, from->ip, src))
		return false;
	to->got = true;
	if (is_check)
		sim_send_from(to, sim_owner(to, port), from, from->ip, src, false);
	return true;
}

static bool sim_send(struct sim_nat *from, struct sim_nat *to, uint8_t ip, uint16_t port, bool is_check)
{
	return sim_send_from(from, HOST_PORT, to, ip, port, is_check);
}

static void sim_init(struct sim_nat *n, const struct nb_peer_nat *cfg, uint8_t ip)
{
	memset(n, 0, sizeof(*n));
	n->cfg = *cfg;
	n->ip = ip;
	n->first_port = n->next_port = 20000 + (uint16_t)(ip * 1000);
}

/* Reflexive address as the broker saw it: the mapping toward the broker. */
static uint16_t sim_reflexive(struct sim_nat *n)
{
	return sim_map(n, HOST_PORT, BROKER_IP, BROKER_PORT);
}

/* Birthday: h sprays from SPRAY_SOCKETS sockets toward e's reflexive
 * address, then e probes every port h's NAT may have given out (the
 * simulator's ports are sequential: probing them all stands for enough
 * random probes). */
static void sim_birthday(struct sim_nat *h, uint16_t e_port, struct sim_nat *e)
{
	for (uint16_t j = 0; j < SPRAY_SOCKETS; j++)
		sim_send_from(h, SPRAY_PORT + j, e, e->ip, e_port, true);
	for (uint16_t k = 0; k < SIM_MAX / 2; k++)
		sim_send(e, h, h->ip, (uint16_t)(h->first_port + k), true);
	if (h->cfg.mapping == NB_MAPPING_NONE)
		for (uint16_t j = 0; j < SPRAY_SOCKETS; j++)
			sim_send(e, h, h->ip, SPRAY_PORT + j, true);
}

/* Play the roles out; true when each side received from the other. */
static bool sim_run(const struct nb_peer_nat *ca, const struct nb_peer_nat *cb, enum nb_role ra,
		    enum nb_role rb)
{
	static struct sim_nat a, b;

	sim_init(&a, ca, 1);
	sim_init(&b, cb, 2);
	uint16_t ra_port = sim_reflexive(&a), rb_port = sim_reflexive(&b);
	if (ra == NB_ROLE_SPRAY && rb == NB_ROLE_PROBE)
		sim_birthday(&a, rb_port, &b);
	if (rb == NB_ROLE_SPRAY && ra == NB_ROLE_PROBE)
		sim_birthday(&b, ra_port, &a);
	if (ra == NB_ROLE_PRIME)
		sim_send(&a, &b, b.ip, rb_port, false);
	if (rb == NB_ROLE_PRIME)
		sim_send(&b, &a, a.ip, ra_port, false);
	for (int round = 0; round < 3; round++) {
		if (ra == NB_ROLE_DIAL || ra == NB_ROLE_PUNCH)
			sim_send(&a, &b, b.ip, rb_port, true);
		if (rb == NB_ROLE_DIAL || rb == NB_ROLE_PUNCH)
			sim_send(&b, &a, a.ip, ra_port, true);
	}
	return a.got && b.got;
}

static void test_every_combination_against_simulator(void **state)
{
	static const enum nb_mapping maps[] = { NOMAP, EIM, ADM, APDM, NB_MAPPING_UNKNOWN };
	static const enum nb_filtering flts[] = { EIF, ADF, APDF, NB_FILTERING_UNKNOWN };
	struct nb_peer_nat all[2 * 2 * 5 * 4];
	size_t n = 0, promised = 0, refused = 0, birthday = 0;

	(void)state;
	for (size_t m = 0; m < 5; m++)
		for (size_t f = 0; f < 4; f++)
			for (int blk = 0; blk < 2; blk++)
				for (int up = 0; up < 2; up++)
					all[n++] = peer(maps[m], flts[f], blk, up, 0);

	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < n; j++) {
			struct nb_peer_nat a = all[i], b = all[j];
			struct nb_plan p;
			a.reflexive.ip[3] = 101;
			b.reflexive.ip[3] = 102;
			nb_connectivity_plan(&a, &b, &BDAY, &p);
			bool unknown = a.mapping == NB_MAPPING_UNKNOWN || b.mapping == NB_MAPPING_UNKNOWN ||
				       a.filtering == NB_FILTERING_UNKNOWN ||
				       b.filtering == NB_FILTERING_UNKNOWN;
			if (p.path == NB_PATH_DIRECT || p.path == NB_PATH_UPNP ||
			    p.path == NB_PATH_BIRTHDAY) {
				if (p.path == NB_PATH_BIRTHDAY)
					birthday++;
				promised++;
				if (!sim_run(&a, &b, p.role_a, p.role_b))
					fail_msg("case %zu/%zu: plan %s/%s (%s) fails in the simulator", i, j,
						 nb_role_to_string(p.role_a), nb_role_to_string(p.role_b), p.reason);
			} else if (a.udp_blocked && b.udp_blocked) {
				assert_int_equal(p.path, NB_PATH_NONE);
				assert_int_equal(p.role_a, NB_ROLE_NONE);
				assert_int_equal(p.role_b, NB_ROLE_NONE);
			} else {
				/* A relay: the allocating side is the UDP-blocked one
				 * if there is one, and the other side can send UDP. */
				assert_int_equal(p.path, NB_PATH_RELAY);
				assert_int_equal(p.role_a, p.relay_by_a ? NB_ROLE_RELAY : NB_ROLE_DIAL);
				assert_int_equal(p.role_b, p.relay_by_a ? NB_ROLE_DIAL : NB_ROLE_RELAY);
				assert_false(p.relay_by_a ? b.udp_blocked : a.udp_blocked);
				/* Between two that send UDP, the one whose mapping is
				 * not endpoint-independent allocates, if only one is. */
				if (a.udp_blocked == b.udp_blocked && !a.upnp_verified && !b.upnp_verified) {
					bool ea = a.mapping == NOMAP || a.mapping == EIM;
					bool eb = b.mapping == NOMAP || b.mapping == EIM;
					if (ea != eb)
						assert_true(p.relay_by_a == !ea);
				}
				refused++;
				/* Not pessimistic: even both punching (with priming) fails,
				 * unless the refusal was for unknown behaviour. */
				/* Birthday is not offered between two hard
				 * sides (issue 16), even where a lenient
				 * filter would let it through. */
				bool both_hard = (a.mapping == ADM || a.mapping == APDM) &&
						 (b.mapping == ADM || b.mapping == APDM);
				bool works = sim_run(&a, &b, NB_ROLE_PUNCH, NB_ROLE_PUNCH) ||
					     (!both_hard && sim_run(&a, &b, NB_ROLE_SPRAY, NB_ROLE_PROBE)) ||
					     (!both_hard && sim_run(&a, &b, NB_ROLE_PROBE, NB_ROLE_SPRAY)) ||
					     sim_run(&a, &b, NB_ROLE_PRIME, NB_ROLE_DIAL) ||
					     sim_run(&a, &b, NB_ROLE_DIAL, NB_ROLE_PRIME);
				if (works && !unknown)
					fail_msg("case %zu/%zu: plan says none (%s) but punching works", i, j, p.reason);
			}
		}
	}
	/* Both outcomes are exercised. */
	assert_true(promised > 1000);
	assert_true(refused > 1000);
	assert_true(birthday > 50);
}

/* Without a budget the broker offers no birthday plan: those pairs relay;
 * the reason gives the expected success for the budget it has. */
static void test_birthday_budget(void **state)
{
	struct nb_peer_nat a = of_kind(SYM, 101), b = of_kind(PRC, 102);
	struct nb_ctrl_birthday small = { .has = true, .sockets = 256, .probes = 174, .rate = 100 };
	struct nb_plan p;

	(void)state;
	nb_connectivity_plan(&a, &b, NULL, &p);
	assert_int_equal(p.path, NB_PATH_RELAY);
	nb_connectivity_plan(&a, &b, &(struct nb_ctrl_birthday){ 0 }, &p);
	assert_int_equal(p.path, NB_PATH_RELAY);
	nb_connectivity_plan(&a, &b, &BDAY, &p);
	assert_int_equal(p.path, NB_PATH_BIRTHDAY);
	assert_true(p.relay_by_a); /* the fallback: the hard side allocates */
	assert_non_null(strstr(p.reason, "256 sockets"));
	assert_non_null(strstr(p.reason, "2048 ports"));
	assert_non_null(strstr(p.reason, "99.97% expected"));
	nb_connectivity_plan(&b, &a, &small, &p);
	assert_int_equal(p.role_a, NB_ROLE_PROBE);
	assert_int_equal(p.role_b, NB_ROLE_SPRAY);
	assert_false(p.relay_by_a);
	assert_non_null(strstr(p.reason, "174 ports"));
	assert_non_null(strstr(p.reason, ": 49.98% expected")); /* about 50% after 174 probes */
	/* the formula: 1 - C(P-s, n)/C(P, n) */
	assert_true(nb_birthday_success(256, 0) == 0.0);
	assert_true(nb_birthday_success(256, 174) > 0.49 && nb_birthday_success(256, 174) < 0.51);
	assert_true(nb_birthday_success(256, 1024) > 0.98);
	assert_true(nb_birthday_success(256, 2048) > 0.999);
	assert_true(nb_birthday_success(1, NB_BDAY_PORTS) == 1.0);
	assert_true(nb_birthday_success(NB_BDAY_PORTS, 1) == 1.0);
	/* an ADM hard side also sprays; an unknown mapping does not */
	a.mapping = ADM;
	nb_connectivity_plan(&a, &b, &BDAY, &p);
	assert_int_equal(p.path, NB_PATH_BIRTHDAY);
	a.mapping = NB_MAPPING_UNKNOWN;
	nb_connectivity_plan(&a, &b, &BDAY, &p);
	assert_int_equal(p.path, NB_PATH_RELAY);
}

/* The simulator itself must be able to say no (a test that cannot fail is no test). */
static void test_simulator_sanity(void **state)
{
	struct nb_peer_nat sym = peer(APDM, APDF, false, false, 0), prc = peer(EIM, APDF, false, false, 0);
	struct nb_peer_nat rc = peer(EIM, ADF, false, false, 0);

	(void)state;
	assert_false(sim_run(&sym, &prc, NB_ROLE_PUNCH, NB_ROLE_PUNCH));
	assert_false(sim_run(&sym, &sym, NB_ROLE_PUNCH, NB_ROLE_PUNCH));
	assert_false(sim_run(&sym, &rc, NB_ROLE_DIAL, NB_ROLE_LISTEN)); /* needs the prime */
	assert_true(sim_run(&sym, &rc, NB_ROLE_DIAL, NB_ROLE_PRIME));
	assert_true(sim_run(&prc, &prc, NB_ROLE_PUNCH, NB_ROLE_PUNCH));
	assert_false(sim_run(&prc, &prc, NB_ROLE_DIAL, NB_ROLE_LISTEN));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lab_kinds),
		cmocka_unit_test(test_birthday_budget),
		cmocka_unit_test(test_same_public_ip_is_lan),
		cmocka_unit_test(test_nat_names),
		cmocka_unit_test(test_simulator_sanity),
		cmocka_unit_test(test_every_combination_against_simulator),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
