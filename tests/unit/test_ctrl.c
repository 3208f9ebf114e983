/* tests/unit/test_ctrl.c - control-message codec: round trips, malformed
 * inputs, truncation, pagination, guard pages. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/ctrl.h"
#include "common/seal.h"

#define TX "0123456789abcdef"
#define HDR(type) "{\"v\":1,\"type\":\"" type "\",\"tx\":\"" TX "\""
#define KEY64 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
/* Public keys as text (common/keys.h): 43 base64url characters. PK43 is
 * bytes 00..1f; PKDASH uses both '-' and '_'. */
#define PK43 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
#define PKDASH "-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-__vA"

static struct nb_addr addr(const char *s)
{
	struct nb_addr a;

	memset(&a, 0, sizeof(a));
	assert_int_equal(nb_addr_parse(s, false, &a), 0);
	return a;
}

static void set_str(char *dst, size_t size, const char *src)
{
	assert_true(strlen(src) < size);
	memcpy(dst, src, strlen(src) + 1);
}
#define SET(dst, src) set_str((dst), sizeof(dst), (src))

static void init_msg(struct nb_ctrl_msg *m, enum nb_ctrl_type t)
{
	memset(m, 0, sizeof(*m));
	m->type = t;
	SET(m->tx, TX);
}

/* ---- Samples: every message type, full and minimal ---------------------- */

static const char *const v4v6[NB_CTRL_MAX_ADDRS] = {
	"192.168.1.10:40000",
	"10.0.0.7:1",
	"[fe80::1]:5000",
	"[2001:db8::2]:65535",
	"100.64.0.1:9",
	"[::ffff:1.2.3.4]:7",
	"172.16.0.1:123",
	"[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
};

static void fill_peer(struct nb_ctrl_peer_info *p, size_t i)
{
	char id[NB_CTRL_ID_MAX + 1];

	snprintf(id, sizeof(id), "peer-%zu", i);
	SET(p->id, id);
	p->nat = (enum nb_nat_type)(i % NB_NAT_COUNT);
	p->mapping = (enum nb_mapping)(i % NB_MAPPING_COUNT);
	p->filtering = (enum nb_filtering)(i % NB_FILTERING_COUNT);
	p->reflexive = addr(i % 2 ? "203.0.113.5:40001" : "[2001:db8::5]:40001");
	p->reflexive.port = (uint16_t)(1000 + i);
}

static void fill_pair(struct nb_ctrl_pair *p, size_t i)
{
	char id[NB_CTRL_ID_MAX + 1];

	snprintf(id, sizeof(id), "a%zu", i);
	SET(p->a, id);
	snprintf(id, sizeof(id), "b.%zu", i);
	SET(p->b, id);
	p->predicted = (enum nb_path)(i % NB_PATH_COUNT);
	p->role_a = (enum nb_role)(i % NB_ROLE_COUNT);
	p->role_b = (enum nb_role)((i + 1) % NB_ROLE_COUNT);
	p->has_measured = i % 3 != 0;
	if (p->has_measured) {
		p->measured = (enum nb_path)((i + 2) % NB_PATH_COUNT);
		p->ms = (uint32_t)(i * 137);
	}
	if (i % 2 == 1)
		snprintf(p->reason, sizeof(p->reason), "plan %zu: both sides punch", i);
	if (p->predicted == NB_PATH_BIRTHDAY)
		p->birthday = (struct nb_ctrl_birthday){ .has = true, .sockets = 256,
							 .probes = (uint32_t)i, .rate = 1000 };
}

#define MAX_SAMPLES 44

static size_t make_samples(struct nb_ctrl_msg *s)
{
	size_t n = 0;
	struct nb_ctrl_msg *m;

	/* register, everything set */
	m = &s[n++];
	init_msg(m, NB_CTRL_REGISTER);
	SET(m->u.reg.id, "Alice-01.home_x");
	SET(m->u.reg.token, "s3cret token with \"quotes\" and \\ ~");
	for (size_t i = 0; i < NB_CTRL_MAX_ADDRS; i++)
		m->u.reg.local[i] = addr(v4v6[i]);
	m->u.reg.n_local = NB_CTRL_MAX_ADDRS;
	m->u.reg.has_nat = true;
	m->u.reg.mapping = NB_MAPPING_ENDPOINT_INDEPENDENT;
	m->u.reg.filtering = NB_FILTERING_ADDRESS_AND_PORT_DEPENDENT;
	m->u.reg.has_hairpin = true;
	m->u.reg.hairpin = true;
	m->u.reg.has_upnp = true;
	m->u.reg.upnp = NB_CTRL_UPNP_MAPPED;
	m->u.reg.upnp_external = addr("198.51.100.1:51000");
	SET(m->u.reg.upnp_proof, "0123456789abcdef0123456789abcdef");

	/* register, minimal */
	m = &s[n++];
	init_msg(m, NB_CTRL_REGISTER);
	SET(m->u.reg.id, "b");

	/* register: nat without hairpin, upnp not mapped */
	m = &s[n++];
	init_msg(m, NB_CTRL_REGISTER);
	SET(m->u.reg.id, "c");
	m->u.reg.local[0] = addr("192.168.2.2:5555");
	m->u.reg.n_local = 1;
	m->u.reg.has_nat = true;
	m->u.reg.mapping = NB_MAPPING_NONE;
	m->u.reg.filtering = NB_FILTERING_UNKNOWN;
	m->u.reg.has_upnp = true;
	m->u.reg.upnp = NB_CTRL_UPNP_FAILED;

	m = &s[n++];
	init_msg(m, NB_CTRL_REGISTERED);
	SET(m->u.registered.id, "alice");
	m->u.registered.reflexive = addr("203.0.113.9:40000");
	m->u.registered.keepalive_s = 25;
	m->u.registered.expires_s = 90;

	m = &s[n++];
	init_msg(m, NB_CTRL_KEEPALIVE);
	SET(m->u.keepalive.id, "alice");

	m = &s[n++];
	init_msg(m, NB_CTRL_CONNECT);
	SET(m->u.connect.id, "alice");
	SET(m->u.connect.peer, "bob");

	/* plan, everything set */
	m = &s[n++];
	init_msg(m, NB_CTRL_PLAN);
	SET(m->u.plan.session, "fedcba9876543210");
	SET(m->u.plan.peer, "bob");
	m->u.plan.role = NB_ROLE_PRIME;
	m->u.plan.path = NB_PATH_DIRECT;
	SET(m->u.plan.reason, "restricted cone vs symmetric: prime, then bob dials "
			      "\xc3\xa9\xe2\x86\x92\xf0\x9f\x8e\x89");
	for (size_t i = 0; i < NB_CTRL_MAX_ADDRS; i++)
		m->u.plan.candidates[i] = addr(v4v6[NB_CTRL_MAX_ADDRS - 1 - i]);
	m->u.plan.n_candidates = NB_CTRL_MAX_ADDRS;
	SET(m->u.plan.username, "fedcba9876543210:bob:alice");
	SET(m->u.plan.peer_key, PK43);
	m->u.plan.deadline_ms = NB_CTRL_DEADLINE_MAX_MS;
	m->u.plan.delay_ms = NB_CTRL_DELAY_MAX_MS;

	/* plan, minimal */
	m = &s[n++];
	init_msg(m, NB_CTRL_PLAN);
	SET(m->u.plan.session, "0000000000000000");
	SET(m->u.plan.peer, "z");
	m->u.plan.role = NB_ROLE_NONE;
	m->u.plan.path = NB_PATH_NONE;
	SET(m->u.plan.username, "u");
	SET(m->u.plan.peer_key, PKDASH);
	m->u.plan.deadline_ms = 1;

	m = &s[n++];
	init_msg(m, NB_CTRL_RESULT);
	SET(m->u.result.session, "fedcba9876543210");
	SET(m->u.result.id, "alice");
	m->u.result.outcome = NB_CTRL_OUTCOME_CONNECTED;
	m->u.result.path = NB_PATH_LAN;
	m->u.result.has_remote = true;
	m->u.result.remote = addr("[2001:db8::7]:4242");
	m->u.result.ms = UINT32_MAX;
	SET(m->u.result.reason, "first check answered");

	m = &s[n++];
	init_msg(m, NB_CTRL_RESULT);
	SET(m->u.result.session, "fedcba9876543210");
	SET(m->u.result.id, "bob");
	m->u.result.outcome = NB_CTRL_OUTCOME_FAILED;
	m->u.result.path = NB_PATH_NONE;

	m = &s[n++];
	init_msg(m, NB_CTRL_ERROR);
	m->u.error.code = NB_CTRL_ERR_UNKNOWN_PEER;
	SET(m->u.error.reason, "no peer 'bob'");

	m = &s[n++];
	init_msg(m, NB_CTRL_ERROR);
	m->u.error.code = NB_CTRL_CODE_MAX;

	m = &s[n++];
	init_msg(m, NB_CTRL_ACK);

	m = &s[n++];
	init_msg(m, NB_CTRL_PEERS);

	m = &s[n++];
	init_msg(m, NB_CTRL_PEERS);
	m->u.query.offset = 40;

	m = &s[n++];
	init_msg(m, NB_CTRL_MATRIX);
	m->u.query.offset = UINT32_MAX;

	/* peer_list covering every nat, mapping and filtering word */
	m = &s[n++];
	init_msg(m, NB_CTRL_PEER_LIST);
	m->u.peer_list.total = 100;
	m->u.peer_list.offset = 8;
	m->u.peer_list.n_peers = 8;
	for (size_t i = 0; i < 8; i++)
		fill_peer(&m->u.peer_list.peers[i], i);

	m = &s[n++];
	init_msg(m, NB_CTRL_PEER_LIST);

	/* matrix_list covering every path and role word */
	m = &s[n++];
	init_msg(m, NB_CTRL_MATRIX_LIST);
	m->u.matrix_list.total = 6;
	m->u.matrix_list.n_pairs = 6;
	for (size_t i = 0; i < 6; i++)
		fill_pair(&m->u.matrix_list.pairs[i], i);

	m = &s[n++];
	init_msg(m, NB_CTRL_MATRIX_LIST);
	m->u.matrix_list.total = 3;
	m->u.matrix_list.offset = 3;

	assert_true(n <= MAX_SAMPLES);
	/* appended: keep the indices above stable */
	m = &s[n++];
	init_msg(m, NB_CTRL_REGISTERED);
	SET(m->u.registered.id, "alice");
	m->u.registered.reflexive = addr("203.0.113.9:40000");
	m->u.registered.keepalive_s = 25;
	m->u.registered.expires_s = 90;
	m->u.registered.has_upnp = true;
	m->u.registered.upnp_verified = true;

	m = &s[n++];
	init_msg(m, NB_CTRL_REGISTERED);
	SET(m->u.registered.id, "bob");
	m->u.registered.reflexive = addr("203.0.113.9:40001");
	m->u.registered.keepalive_s = 15;
	m->u.registered.expires_s = 45;
	m->u.registered.has_upnp = true;

	m = &s[n++];
	init_msg(m, NB_CTRL_VERIFY);
	m->u.verify.external = addr("203.0.113.106:40001");

	m = &s[n++];
	init_msg(m, NB_CTRL_PROBE);
	SET(m->u.probe.proof, "fedcba9876543210fedcba9876543210");

	m = &s[n++];
	init_msg(m, NB_CTRL_CHALLENGE);
	SET(m->u.challenge.cookie, "00112233445566778899aabbccddeeff");

	m = &s[n++]; /* a padded query */
	init_msg(m, NB_CTRL_MATRIX);
	m->u.query.offset = 24;
	m->u.query.pad = 1000;

	m = &s[n++]; /* register with a cookie */
	init_msg(m, NB_CTRL_REGISTER);
	SET(m->u.reg.id, "cookie-monster");
	SET(m->u.reg.cookie, "0123456789abcdef0123456789abcdef");

	m = &s[n++]; /* 27: bye */
	init_msg(m, NB_CTRL_BYE);
	SET(m->u.bye.id, "alice");

	m = &s[n++]; /* 28: a query with the admin token (printable ASCII, escapes) */
	init_msg(m, NB_CTRL_PEERS);
	m->u.query.offset = 3;
	SET(m->u.query.admin, "adm1n \"t0ken\" ~");
	m->u.query.pad = 10;

	m = &s[n++]; /* 29: matrix with the admin token only */
	init_msg(m, NB_CTRL_MATRIX);
	SET(m->u.query.admin, "x");

	m = &s[n++]; /* 30: relayed */
	init_msg(m, NB_CTRL_RELAYED);
	SET(m->u.relayed.session, "fedcba9876543210");
	SET(m->u.relayed.id, "alice");
	m->u.relayed.relayed = addr("203.0.113.10:49152");

	m = &s[n++]; /* 31: the fullest plan there is: every field at its longest, and a relay */
	*m = s[6];
	m->u.plan.relay.has_relay = true;
	m->u.plan.relay.alloc = true;
	m->u.plan.relay.server = addr("[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
	memset(m->u.plan.relay.user, 'u', NB_CTRL_RELAY_USER_MAX);
	m->u.plan.relay.user[NB_CTRL_RELAY_USER_MAX] = '\0';
	memset(m->u.plan.relay.pass, '~', NB_CTRL_RELAY_PASS_MAX);
	m->u.plan.relay.pass[NB_CTRL_RELAY_PASS_MAX] = '\0';

	m = &s[n++]; /* 32: a plan whose relay the other side allocates */
	*m = s[7];
	m->u.plan.path = NB_PATH_RELAY;
	m->u.plan.role = NB_ROLE_DIAL;
	m->u.plan.relay.has_relay = true;

	m = &s[n++]; /* 33: ... whose relayed address is known already */
	*m = s[32];
	m->u.plan.relay.has_relayed = true;
	m->u.plan.relay.relayed = addr("203.0.113.10:49999");

	m = &s[n++]; /* 34: registered with credentials to allocate in advance */
	init_msg(m, NB_CTRL_REGISTERED);
	SET(m->u.registered.id, "sym");
	m->u.registered.reflexive = addr("203.0.113.104:4000");
	m->u.registered.keepalive_s = 15;
	m->u.registered.expires_s = 45;
	m->u.registered.relay.has_relay = true;
	m->u.registered.relay.alloc = true;
	m->u.registered.relay.server = addr("203.0.113.10:3478");
	m->u.registered.relay.family = 6;
	SET(m->u.registered.relay.user, "1796000000:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA");
	SET(m->u.registered.relay.pass, "+neZNB2azV9ctVCtpoYv0LewyFU=");

	m = &s[n++]; /* 35: register with the relayed address of its allocation */
	init_msg(m, NB_CTRL_REGISTER);
	SET(m->u.reg.id, "sym");
	m->u.reg.has_relayed = true;
	m->u.reg.relayed = addr("203.0.113.10:50000");

	assert_true(n <= MAX_SAMPLES);
	m = &s[n++]; /* 36: a TCP mapping's verify */
	init_msg(m, NB_CTRL_VERIFY);
	m->u.verify.external = addr("203.0.113.106:8080");
	m->u.verify.tcp = true;

	m = &s[n++]; /* 37: a birthday plan, the spraying side, at every limit */
	*m = s[32];
	m->u.plan.path = NB_PATH_BIRTHDAY;
	m->u.plan.role = NB_ROLE_SPRAY;
	m->u.plan.birthday = (struct nb_ctrl_birthday){ .has = true, .sockets = NB_CTRL_BDAY_SOCKETS_MAX,
							.probes = NB_CTRL_BDAY_PROBES_MAX,
							.rate = NB_CTRL_BDAY_RATE_MAX };

	m = &s[n++]; /* 38: ... the probing side, at the bottom */
	*m = s[37];
	m->u.plan.role = NB_ROLE_PROBE;
	m->u.plan.birthday = (struct nb_ctrl_birthday){ .has = true, .sockets = 1, .probes = 1, .rate = 1 };

	m = &s[n++]; /* 39: a result with the probing side's figures */
	*m = s[8];
	m->u.result.path = NB_PATH_BIRTHDAY;
	m->u.result.birthday = (struct nb_ctrl_birthday){ .has = true, .probes = 173, .rate = 1000,
							  .port = 65535 };

	m = &s[n++]; /* 40: IPv6: a register that adds its family */
	init_msg(m, NB_CTRL_REGISTER);
	SET(m->u.reg.id, "d6");
	m->u.reg.has_nat = true;
	m->u.reg.mapping = NB_MAPPING_NONE;
	m->u.reg.filtering = NB_FILTERING_ADDRESS_AND_PORT_DEPENDENT;
	m->u.reg.also = true;

	m = &s[n++]; /* 41: ... a registered naming the broker's other family */
	*m = s[34];
	m->u.registered.has_alt = true;
	m->u.registered.alt = addr("[2001:db8::10]:3478");

	m = &s[n++]; /* 42: a peer list with both families, and a matrix with them */
	init_msg(m, NB_CTRL_PEER_LIST);
	m->u.peer_list.total = 2;
	m->u.peer_list.n_peers = 2;
	fill_peer(&m->u.peer_list.peers[0], 0);
	fill_peer(&m->u.peer_list.peers[1], 1);
	m->u.peer_list.peers[1].has_alt = true;
	m->u.peer_list.peers[1].alt = addr("[2001:db8:14::2]:40000");
	m->u.peer_list.peers[1].alt_mapping = NB_MAPPING_NONE;
	m->u.peer_list.peers[1].alt_filtering = NB_FILTERING_ADDRESS_AND_PORT_DEPENDENT;
	m = &s[n++]; /* 43 */
	init_msg(m, NB_CTRL_MATRIX_LIST);
	m->u.matrix_list.total = 2;
	m->u.matrix_list.n_pairs = 2;
	fill_pair(&m->u.matrix_list.pairs[0], 1);
	m->u.matrix_list.pairs[0].plan_family = 6;
	m->u.matrix_list.pairs[0].has_measured = true;
	m->u.matrix_list.pairs[0].measured = NB_PATH_DIRECT;
	m->u.matrix_list.pairs[0].family = 6;
	fill_pair(&m->u.matrix_list.pairs[1], 2);
	m->u.matrix_list.pairs[1].plan_family = 4;
	assert_true(n <= MAX_SAMPLES);
	return n;
}

static size_t encode_ok(const struct nb_ctrl_msg *m, uint8_t *buf)
{
	ssize_t n = nb_ctrl_encode(m, buf, NB_CTRL_MAX_DATAGRAM);

	if (n < 0)
		fail_msg("encode of %s: %s", nb_ctrl_type_to_string(m->type), nb_ctrl_strerror((int)n));
	assert_true(n > 0 && n <= NB_CTRL_MAX_DATAGRAM);
	return (size_t)n;
}

/* ---- Vocabulary and demux -------------------------------------------------- */

static void test_vocab(void **state)
{
	(void)state;

	for (int i = 0; i < NB_MAPPING_COUNT; i++) {
		enum nb_mapping v;
		const char *s = nb_mapping_to_string((enum nb_mapping)i);
		assert_non_null(s);
		assert_int_equal(nb_mapping_from_string(s, &v), 0);
		assert_int_equal(v, i);
	}
	for (int i = 0; i < NB_FILTERING_COUNT; i++) {
		enum nb_filtering v;
		const char *s = nb_filtering_to_string((enum nb_filtering)i);
		assert_non_null(s);
		assert_int_equal(nb_filtering_from_string(s, &v), 0);
		assert_int_equal(v, i);
	}
	for (int i = 0; i < NB_NAT_COUNT; i++) {
		enum nb_nat_type v;
		const char *s = nb_nat_type_to_string((enum nb_nat_type)i);
		assert_non_null(s);
		assert_int_equal(nb_nat_type_from_string(s, &v), 0);
		assert_int_equal(v, i);
	}
	for (int i = 0; i < NB_ROLE_COUNT; i++) {
		enum nb_role v;
		const char *s = nb_role_to_string((enum nb_role)i);
		assert_non_null(s);
		assert_int_equal(nb_role_from_string(s, &v), 0);
		assert_int_equal(v, i);
	}
	for (int i = 0; i < NB_PATH_COUNT; i++) {
		enum nb_path v;
		const char *s = nb_path_to_string((enum nb_path)i);
		assert_non_null(s);
		assert_int_equal(nb_path_from_string(s, &v), 0);
		assert_int_equal(v, i);
	}
	/* The exact words, as the rest of the project spells them. */
	assert_string_equal(nb_mapping_to_string(NB_MAPPING_ADDRESS_AND_PORT_DEPENDENT),
			    "address-and-port-dependent");
	assert_string_equal(nb_mapping_to_string(NB_MAPPING_NONE), "none");
	assert_string_equal(nb_filtering_to_string(NB_FILTERING_ENDPOINT_INDEPENDENT),
			    "endpoint-independent");
	assert_string_equal(nb_nat_type_to_string(NB_NAT_PORT_RESTRICTED_CONE),
			    "port-restricted-cone");
	assert_string_equal(nb_nat_type_to_string(NB_NAT_UDP_BLOCKED), "udp-blocked");
	assert_string_equal(nb_role_to_string(NB_ROLE_PRIME), "prime");
	assert_string_equal(nb_path_to_string(NB_PATH_UPNP), "upnp");
	assert_string_equal(nb_ctrl_type_to_string(NB_CTRL_MATRIX_LIST), "matrix_list");

	/* Out of range, unknown, wrong case. */
	enum nb_mapping mv = NB_MAPPING_NONE;
	assert_null(nb_mapping_to_string((enum nb_mapping)NB_MAPPING_COUNT));
	assert_null(nb_mapping_to_string((enum nb_mapping)-1));
	assert_null(nb_nat_type_to_string((enum nb_nat_type)99));
	assert_null(nb_ctrl_type_to_string((enum nb_ctrl_type)0));
	assert_null(nb_ctrl_type_to_string((enum nb_ctrl_type)(NB_CTRL_TYPE_MAX + 1)));
	assert_int_equal(nb_mapping_from_string("Endpoint-Independent", &mv), -EINVAL);
	assert_int_equal(nb_mapping_from_string("", &mv), -EINVAL);
	assert_int_equal(nb_mapping_from_string(NULL, &mv), -EINVAL);
	assert_int_equal(mv, NB_MAPPING_NONE); /* untouched */
	enum nb_filtering fv;
	assert_int_equal(nb_filtering_from_string("none", &fv), -EINVAL); /* mapping only */
}

static void test_classify(void **state)
{
	(void)state;
	uint8_t b[1];

	assert_int_equal(nb_wire_classify(NULL, 0), NB_WIRE_DROP);
	assert_int_equal(nb_wire_classify(b, 0), NB_WIRE_DROP);
	for (unsigned v = 0; v < 256; v++) {
		enum nb_wire_kind want = NB_WIRE_DROP;
		b[0] = (uint8_t)v;
		if (v <= 3)
			want = NB_WIRE_STUN;
		else if (v == 0x7B)
			want = NB_WIRE_CTRL;
		else if (v >= 0xD0 && v <= 0xDF)
			want = NB_WIRE_DATA;
		assert_int_equal(nb_wire_classify(b, 1), want);
	}
	/* The data range is clear of every RFC 7983 range. */
	for (unsigned v = NB_WIRE_DATA_FIRST; v <= NB_WIRE_DATA_LAST; v++)
		assert_false(v <= 3 || (v >= 16 && v <= 79) || (v >= 128 && v <= 191));
}

static void test_hex(void **state)
{
	(void)state;
	const uint8_t bytes[8] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
	char out[17];

	nb_ctrl_hex(bytes, sizeof(bytes), out);
	assert_string_equal(out, TX);
	nb_ctrl_hex(bytes, 0, out);
	assert_string_equal(out, "");
}

/* ---- Round trips -------------------------------------------------------------- */

static void test_roundtrip_all(void **state)
{
	(void)state;
	struct nb_ctrl_msg s[MAX_SAMPLES];
	size_t n = make_samples(s);
	bool seen[NB_CTRL_TYPE_MAX + 1] = { false };

	for (size_t i = 0; i < n; i++) {
		uint8_t buf[NB_CTRL_MAX_DATAGRAM], buf2[NB_CTRL_MAX_DATAGRAM];
		struct nb_ctrl_msg d;
		size_t len = encode_ok(&s[i], buf);

		assert_int_equal(buf[0], '{');
		assert_int_equal(nb_wire_classify(buf, len), NB_WIRE_CTRL);
		memset(&d, 0x5A, sizeof(d));
		assert_int_equal(nb_ctrl_decode(&d, buf, len), (ssize_t)len);
		if (!nb_ctrl_msg_equal(&s[i], &d))
			fail_msg("sample %zu (%s) does not round-trip: %.*s", i,
				 nb_ctrl_type_to_string(s[i].type), (int)len, buf);
		assert_true(nb_ctrl_msg_equal(&d, &s[i]));
		/* Canonical: encoding the decoded message gives the same bytes. */
		assert_int_equal(encode_ok(&d, buf2), len);
		assert_memory_equal(buf, buf2, len);
		seen[s[i].type] = true;
		/* Every control message travels sealed (common/seal.h): even
		 * the fullest plan, sample 31, must fit a sealed frame. */
		assert_true(len <= NB_SEAL_MAX_PAYLOAD);
	}
	for (int t = NB_CTRL_REGISTER; t <= NB_CTRL_TYPE_MAX; t++)
		if (!seen[t])
			fail_msg("no sample for %s", nb_ctrl_type_to_string((enum nb_ctrl_type)t));
}

/* The exact bytes of a few messages: compact, fields in order, defaults left out. */
static void test_golden(void **state)
{
	(void)state;
	static const struct {
		int sample;
		const char *json;
	} g[] = {
		{ 4, HDR("keepalive") ",\"id\":\"alice\"}" },
		{ 5, HDR("connect") ",\"id\":\"alice\",\"peer\":\"bob\"}" },
		{ 12, HDR("ack") "}" },
		{ 13, HDR("peers") "}" },
		{ 1, HDR("register") ",\"id\":\"b\",\"local\":[]}" },
		{ 9, HDR("result") ",\"session\":\"fedcba9876543210\",\"id\":\"bob\",\"outcome\":\"failed\","
		     "\"path\":\"none\",\"ms\":0}" },
		{ 3, HDR("registered") ",\"id\":\"alice\",\"reflexive\":\"203.0.113.9:40000\","
		     "\"keepalive\":25,\"expires\":90}" },
		{ 7, HDR("plan") ",\"session\":\"0000000000000000\",\"peer\":\"z\",\"role\":\"none\","
		     "\"path\":\"none\",\"reason\":\"\",\"candidates\":[],\"username\":\"u\","
		     "\"peer_key\":\"" PKDASH "\",\"deadline_ms\":1}" },
		{ 27, HDR("bye") ",\"id\":\"alice\"}" },
		{ 28, HDR("peers") ",\"offset\":3,\"admin\":\"adm1n \\\"t0ken\\\" ~\",\"pad\":\"..........\"}" },
		{ 29, HDR("matrix") ",\"admin\":\"x\"}" },
	};
	struct nb_ctrl_msg s[MAX_SAMPLES];
	make_samples(s);

	for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
		uint8_t buf[NB_CTRL_MAX_DATAGRAM];
		size_t len = encode_ok(&s[g[i].sample], buf);
		assert_int_equal(len, strlen(g[i].json));
		assert_memory_equal(buf, g[i].json, len);
	}
}

/* Hand-written messages: whitespace between tokens, any key order, unknown
 * fields of every JSON type, escapes. */
static void test_decode_handwritten(void **state)
{
	(void)state;
	struct nb_ctrl_msg m;
	const char *j;

	j = "{ \"id\" : \"alice\",\n\t\"tx\":\"" TX "\", \"type\":\"keepalive\",\r\n \"v\" : 1 ,"
	    "\"future\":{\"x\":[1,-2,0,true,false,null,\"s\",{}]}, \"n\":-0, \"z\":[] }";
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	assert_int_equal(m.type, NB_CTRL_KEEPALIVE);
	assert_string_equal(m.tx, TX);
	assert_string_equal(m.u.keepalive.id, "alice");

	j = HDR("error") ",\"code\":404,\"reason\":\"caf\\u00e9 \\ud83c\\udf89 \\/ \\\" \\\\\"}";
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	assert_int_equal(m.u.error.code, 404);
	assert_string_equal(m.u.error.reason, "caf\xc3\xa9 \xf0\x9f\x8e\x89 / \" \\");

	j = HDR("register") ",\"id\":\"x\",\"local\":[\"[::1]:1\"],\"nat\":{\"filtering\":"
	    "\"address-dependent\",\"mapping\":\"address-dependent\",\"hairpin\":false,\"new\":1},"
	    "\"upnp\":{\"status\":\"mapped\",\"external\":\"1.2.3.4:5\"}}";
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	assert_true(m.u.reg.has_nat && m.u.reg.has_hairpin && !m.u.reg.hairpin);
	assert_int_equal(m.u.reg.mapping, NB_MAPPING_ADDRESS_DEPENDENT);
	assert_int_equal(m.u.reg.filtering, NB_FILTERING_ADDRESS_DEPENDENT);
	assert_int_equal(m.u.reg.upnp, NB_CTRL_UPNP_MAPPED);
	assert_int_equal(m.u.reg.upnp_external.port, 5);
	assert_int_equal(m.u.reg.n_local, 1);
	assert_int_equal(m.u.reg.local[0].family, NB_AF_INET6);
	assert_string_equal(m.u.reg.token, "");

	/* Optional fields written with their default. */
	j = HDR("peers") ",\"offset\":0}";
	assert_true(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)) > 0);
	j = HDR("plan") ",\"session\":\"0000000000000000\",\"peer\":\"p\",\"role\":\"dial\","
	    "\"path\":\"relay\",\"reason\":\"\",\"candidates\":[],\"username\":\"u\",\"peer_key\":\"" PK43
	    "\",\"deadline_ms\":5000,\"delay_ms\":0}";
	assert_true(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)) > 0);
	assert_string_equal(m.u.plan.peer_key, PK43);
	assert_int_equal(m.u.plan.delay_ms, 0);
	assert_int_equal(m.u.plan.deadline_ms, 5000);
	j = HDR("result") ",\"session\":\"0000000000000000\",\"id\":\"p\",\"outcome\":\"connected\","
	    "\"path\":\"upnp\",\"ms\":12,\"reason\":\"\"}";
	assert_true(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)) > 0);
	assert_false(m.u.result.has_remote);

	/* bye; peers with an admin token given with escapes; an unknown "key"
	 * field beside peer_key is ignored */
	j = "{\"id\":\"bob\",\"type\":\"bye\",\"v\":1,\"tx\":\"" TX "\"}";
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	assert_int_equal(m.type, NB_CTRL_BYE);
	assert_string_equal(m.u.bye.id, "bob");
	j = HDR("peers") ",\"admin\":\"\\u0061dm\\/n\"}";
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	assert_string_equal(m.u.query.admin, "adm/n");
	j = HDR("matrix") "}";
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	assert_string_equal(m.u.query.admin, ""); /* absent */
	j = HDR("plan") ",\"session\":\"0000000000000000\",\"peer\":\"p\",\"role\":\"dial\","
	    "\"path\":\"relay\",\"reason\":\"\",\"candidates\":[],\"username\":\"u\",\"key\":\"" KEY64
	    "\",\"peer_key\":\"" PKDASH "\",\"deadline_ms\":5000}";
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	assert_string_equal(m.u.plan.peer_key, PKDASH);

	/* Depth 4 is allowed (root, then three more). */
	j = HDR("ack") ",\"x\":[[[1]]],\"y\":{\"a\":{\"b\":{}}}}";
	assert_true(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)) > 0);
}

/* ---- Malformed inputs -------------------------------------------------------- */

struct bad {
	const char *name;
	const char *data;
	size_t len; /* 0: strlen(data) */
	int err;
};

#define KA(rest) HDR("keepalive") rest "}"
#define ERRMSG(rest) HDR("error") rest "}"
#define REG(rest) HDR("register") ",\"id\":\"a\"" rest "}"
#define REGD(rest) HDR("registered") ",\"id\":\"a\",\"reflexive\":\"1.2.3.4:5\"" rest "}"
#define PLAN(rest)                                                                   \
	HDR("plan") ",\"session\":\"0000000000000000\",\"peer\":\"p\",\"reason\":\"r\"," \
		    "\"peer_key\":\"" PK43 "\"" rest "}"
/* A plan complete but for peer_key, given as pk. */
#define PLANK(pk)                                                                            \
	HDR("plan") ",\"session\":\"0000000000000000\",\"peer\":\"p\",\"role\":\"dial\","         \
		    "\"path\":\"direct\",\"reason\":\"\",\"candidates\":[],\"username\":\"u\"" pk \
		    ",\"deadline_ms\":1}"
#define RPU ",\"role\":\"dial\",\"path\":\"direct\",\"username\":\"u\""
#define CD ",\"candidates\":[],\"deadline_ms\":1"
#define PLIST(rest) HDR("peer_list") ",\"total\":5,\"offset\":0" rest "}"
#define PEER0(rest) "{\"id\":\"p\",\"mapping\":\"none\",\"filtering\":\"unknown\"" rest "}"
#define PEER(rest) PEER0(",\"nat\":\"open\"" rest)
#define MLIST(rest) HDR("matrix_list") ",\"total\":5,\"offset\":0" rest "}"
#define PAIR(rest)                                                                    \
	"{\"a\":\"x\",\"b\":\"y\",\"predicted\":\"lan\",\"role_a\":\"punch\",\"role_b\":\"punch\"" \
	rest "}"
#define ID33 "abcdefghijklmnopqrstuvwxyz0123456"
#define S10 "0123456789"
#define S160 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10

static const struct bad bad_inputs[] = {
	/* not an object / framing */
	{ "empty", "", 0, NB_CTRL_E_NOT_OBJECT },
	{ "array", "[1]", 0, NB_CTRL_E_NOT_OBJECT },
	{ "string", "\"x\"", 0, NB_CTRL_E_NOT_OBJECT },
	{ "number", "1", 0, NB_CTRL_E_NOT_OBJECT },
	{ "leading space", " " KA(",\"id\":\"a\""), 0, NB_CTRL_E_NOT_OBJECT },
	{ "BOM", "\xef\xbb\xbf" KA(",\"id\":\"a\""), 0, NB_CTRL_E_NOT_OBJECT },
	{ "STUN first byte", "\x00\x01\x00\x00", 4, NB_CTRL_E_NOT_OBJECT },
	{ "trailing space", KA(",\"id\":\"a\"") " ", 0, NB_CTRL_E_TRAILING },
	{ "trailing newline", KA(",\"id\":\"a\"") "\n", 0, NB_CTRL_E_TRAILING },
	{ "trailing object", KA(",\"id\":\"a\"") "{}", 0, NB_CTRL_E_TRAILING },
	{ "trailing word", KA(",\"id\":\"a\"") "x", 0, NB_CTRL_E_TRAILING },
	{ "trailing NUL", KA(",\"id\":\"a\"") "\0", sizeof(KA(",\"id\":\"a\"")), NB_CTRL_E_CONTROL },
	/* syntax */
	{ "unterminated", HDR("ack"), 0, NB_CTRL_E_SYNTAX },
	{ "unterminated string", "{\"v", 0, NB_CTRL_E_SYNTAX },
	{ "trailing comma", HDR("ack") ",}", 0, NB_CTRL_E_SYNTAX },
	{ "missing colon", "{\"v\" 1}", 0, NB_CTRL_E_SYNTAX },
	{ "single quotes", "{'v':1}", 0, NB_CTRL_E_SYNTAX },
	{ "comment", "{/*c*/\"v\":1}", 0, NB_CTRL_E_SYNTAX },
	{ "bare word", "{\"v\":1,\"x\":nul}", 0, NB_CTRL_E_SYNTAX },
	{ "NaN", HDR("ack") ",\"x\":NaN}", 0, NB_CTRL_E_SYNTAX },
	{ "Infinity", HDR("ack") ",\"x\":-Infinity}", 0, NB_CTRL_E_SYNTAX },
	{ "leading zero", KA(",\"id\":\"a\",\"x\":01"), 0, NB_CTRL_E_SYNTAX },
	{ "bad escape", KA(",\"id\":\"a\\x\""), 0, NB_CTRL_E_SYNTAX },
	{ "bad \\u escape", KA(",\"id\":\"a\\u12G4\""), 0, NB_CTRL_E_SYNTAX },
	{ "short \\u escape", KA(",\"id\":\"a\\u12\""), 0, NB_CTRL_E_SYNTAX },
	{ "non-ASCII between tokens", "{\xc3\xa9\"v\":1}", 0, NB_CTRL_E_SYNTAX },
	/* control characters */
	{ "NUL in string", KA(",\"id\":\"al\0ice\""), sizeof(KA(",\"id\":\"al\0ice\"")) - 1,
	  NB_CTRL_E_CONTROL },
	{ "NUL between tokens", "{\0\"v\":1}", sizeof("{\0\"v\":1}") - 1, NB_CTRL_E_CONTROL },
	{ "escaped NUL", KA(",\"id\":\"a\\u0000b\""), 0, NB_CTRL_E_CONTROL },
	{ "escaped newline", ERRMSG(",\"code\":400,\"reason\":\"a\\nb\""), 0, NB_CTRL_E_CONTROL },
	{ "escaped tab", ERRMSG(",\"code\":400,\"reason\":\"a\\tb\""), 0, NB_CTRL_E_CONTROL },
	{ "escaped DEL", ERRMSG(",\"code\":400,\"reason\":\"a\\u007fb\""), 0, NB_CTRL_E_CONTROL },
	{ "escaped C1", ERRMSG(",\"code\":400,\"reason\":\"a\\u0085b\""), 0, NB_CTRL_E_CONTROL },
	{ "raw tab in string", ERRMSG(",\"code\":400,\"reason\":\"a\tb\""), 0, NB_CTRL_E_CONTROL },
	{ "raw DEL in string", ERRMSG(",\"code\":400,\"reason\":\"a\x7f\""), 0, NB_CTRL_E_CONTROL },
	{ "raw C1 in string", ERRMSG(",\"code\":400,\"reason\":\"a\xc2\x85\""), 0, NB_CTRL_E_CONTROL },
	{ "control between tokens", "{\x01\"v\":1}", 0, NB_CTRL_E_CONTROL },
	{ "form feed between tokens", "{\f\"v\":1}", 0, NB_CTRL_E_CONTROL },
	/* UTF-8 */
	{ "overlong 2-byte", ERRMSG(",\"code\":400,\"reason\":\"\xc0\xaf\""), 0, NB_CTRL_E_UTF8 },
	{ "overlong 3-byte", ERRMSG(",\"code\":400,\"reason\":\"\xe0\x80\xaf\""), 0, NB_CTRL_E_UTF8 },
	{ "overlong 4-byte", ERRMSG(",\"code\":400,\"reason\":\"\xf0\x80\x80\xaf\""), 0, NB_CTRL_E_UTF8 },
	{ "surrogate D800", ERRMSG(",\"code\":400,\"reason\":\"\xed\xa0\x80\""), 0, NB_CTRL_E_UTF8 },
	{ "surrogate DFFF", ERRMSG(",\"code\":400,\"reason\":\"\xed\xbf\xbf\""), 0, NB_CTRL_E_UTF8 },
	{ "above U+10FFFF", ERRMSG(",\"code\":400,\"reason\":\"\xf4\x90\x80\x80\""), 0, NB_CTRL_E_UTF8 },
	{ "F5 lead", ERRMSG(",\"code\":400,\"reason\":\"\xf5\x80\x80\x80\""), 0, NB_CTRL_E_UTF8 },
	{ "lone continuation", ERRMSG(",\"code\":400,\"reason\":\"\x80\""), 0, NB_CTRL_E_UTF8 },
	{ "truncated 3-byte", ERRMSG(",\"code\":400,\"reason\":\"\xe2\x82\""), 0, NB_CTRL_E_UTF8 },
	{ "truncated at end", "{\"\xe2\x82", 0, NB_CTRL_E_UTF8 },
	{ "0xFF between tokens", "{\xff}", 0, NB_CTRL_E_UTF8 },
	{ "escaped lone high surrogate", ERRMSG(",\"code\":400,\"reason\":\"\\ud800\""), 0, NB_CTRL_E_UTF8 },
	{ "escaped lone low surrogate", ERRMSG(",\"code\":400,\"reason\":\"\\udc00\""), 0, NB_CTRL_E_UTF8 },
	{ "escaped high + non-low", ERRMSG(",\"code\":400,\"reason\":\"\\ud800\\u0041\""), 0,
	  NB_CTRL_E_UTF8 },
	{ "invalid UTF-8 in a key", HDR("ack") ",\"\xc0\x80\":1}", 0, NB_CTRL_E_UTF8 },
	/* depth */
	{ "depth 5 array", HDR("ack") ",\"x\":[[[[1]]]]}", 0, NB_CTRL_E_DEPTH },
	{ "depth 5 object", HDR("ack") ",\"x\":{\"a\":{\"b\":{\"c\":{}}}}}", 0, NB_CTRL_E_DEPTH },
	{ "deep", "{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
	  0, NB_CTRL_E_DEPTH },
	/* duplicates */
	{ "duplicate id", KA(",\"id\":\"a\",\"id\":\"b\""), 0, NB_CTRL_E_DUPLICATE },
	{ "duplicate tx", KA(",\"id\":\"a\",\"tx\":\"" TX "\""), 0, NB_CTRL_E_DUPLICATE },
	{ "duplicate by escape", KA(",\"id\":\"a\",\"\\u0069d\":\"b\""), 0, NB_CTRL_E_DUPLICATE },
	{ "duplicate in unknown field", KA(",\"id\":\"a\",\"x\":[{\"q\":1,\"q\":2}]"), 0,
	  NB_CTRL_E_DUPLICATE },
	{ "duplicate in nat", REG(",\"local\":[],\"nat\":{\"mapping\":\"none\",\"mapping\":\"none\","
				  "\"filtering\":\"unknown\"}"), 0, NB_CTRL_E_DUPLICATE },
	/* header */
	{ "no v", "{\"type\":\"ack\",\"tx\":\"" TX "\"}", 0, NB_CTRL_E_MISSING },
	{ "v string", "{\"v\":\"1\",\"type\":\"ack\",\"tx\":\"" TX "\"}", 0, NB_CTRL_E_WRONG_TYPE },
	{ "v 2", "{\"v\":2,\"type\":\"ack\",\"tx\":\"" TX "\"}", 0, NB_CTRL_E_VERSION },
	{ "v 0", "{\"v\":0,\"type\":\"ack\",\"tx\":\"" TX "\"}", 0, NB_CTRL_E_VERSION },
	{ "v 1.0", "{\"v\":1.0,\"type\":\"ack\",\"tx\":\"" TX "\"}", 0, NB_CTRL_E_RANGE },
	{ "no type", "{\"v\":1,\"tx\":\"" TX "\"}", 0, NB_CTRL_E_MISSING },
	{ "type number", "{\"v\":1,\"type\":7,\"tx\":\"" TX "\"}", 0, NB_CTRL_E_WRONG_TYPE },
	{ "type wrong case", "{\"v\":1,\"type\":\"Ack\",\"tx\":\"" TX "\"}", 0, NB_CTRL_E_TYPE },
	{ "type unknown", "{\"v\":1,\"type\":\"hello\",\"tx\":\"" TX "\"}", 0, NB_CTRL_E_TYPE },
	{ "type empty", "{\"v\":1,\"type\":\"\",\"tx\":\"" TX "\"}", 0, NB_CTRL_E_TYPE },
	{ "no tx", "{\"v\":1,\"type\":\"ack\"}", 0, NB_CTRL_E_MISSING },
	{ "tx upper case", "{\"v\":1,\"type\":\"ack\",\"tx\":\"0123456789ABCDEF\"}", 0, NB_CTRL_E_FORMAT },
	{ "tx not hex", "{\"v\":1,\"type\":\"ack\",\"tx\":\"0123456789abcdeg\"}", 0, NB_CTRL_E_FORMAT },
	{ "tx 15", "{\"v\":1,\"type\":\"ack\",\"tx\":\"0123456789abcde\"}", 0, NB_CTRL_E_LENGTH },
	{ "tx 17", "{\"v\":1,\"type\":\"ack\",\"tx\":\"0123456789abcdef0\"}", 0, NB_CTRL_E_LENGTH },
	{ "tx number", "{\"v\":1,\"type\":\"ack\",\"tx\":1234}", 0, NB_CTRL_E_WRONG_TYPE },
	{ "tx null", "{\"v\":1,\"type\":\"ack\",\"tx\":null}", 0, NB_CTRL_E_WRONG_TYPE },
	{ "Tx wrong case key", "{\"v\":1,\"type\":\"ack\",\"TX\":\"" TX "\"}", 0, NB_CTRL_E_MISSING },
	/* ids */
	{ "id missing", KA(""), 0, NB_CTRL_E_MISSING },
	{ "id empty", KA(",\"id\":\"\""), 0, NB_CTRL_E_LENGTH },
	{ "id 33", KA(",\"id\":\"" ID33 "\""), 0, NB_CTRL_E_LENGTH },
	{ "id huge", KA(",\"id\":\"" S160 S160 S160 S160 "\""), 0, NB_CTRL_E_LENGTH },
	{ "id space", KA(",\"id\":\"a b\""), 0, NB_CTRL_E_FORMAT },
	{ "id slash", KA(",\"id\":\"a/b\""), 0, NB_CTRL_E_FORMAT },
	{ "id non-ASCII", KA(",\"id\":\"\xc3\xa9\""), 0, NB_CTRL_E_FORMAT },
	{ "id number", KA(",\"id\":5"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "id null", KA(",\"id\":null"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "id array", KA(",\"id\":[\"a\"]"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "id object", KA(",\"id\":{}"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "connect no peer", HDR("connect") ",\"id\":\"a\"}", 0, NB_CTRL_E_MISSING },
	/* numbers */
	{ "keepalive 0", REGD(",\"keepalive\":0,\"expires\":60"), 0, NB_CTRL_E_RANGE },
	{ "keepalive 3601", REGD(",\"keepalive\":3601,\"expires\":60"), 0, NB_CTRL_E_RANGE },
	{ "keepalive -1", REGD(",\"keepalive\":-1,\"expires\":60"), 0, NB_CTRL_E_RANGE },
	{ "keepalive 1.5", REGD(",\"keepalive\":1.5,\"expires\":60"), 0, NB_CTRL_E_RANGE },
	{ "keepalive 1e2", REGD(",\"keepalive\":1e2,\"expires\":60"), 0, NB_CTRL_E_RANGE },
	{ "keepalive 16 digits", REGD(",\"keepalive\":1000000000000000,\"expires\":60"), 0,
	  NB_CTRL_E_RANGE },
	{ "keepalive string", REGD(",\"keepalive\":\"30\",\"expires\":60"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "keepalive bool", REGD(",\"keepalive\":true,\"expires\":60"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "expires missing", REGD(",\"keepalive\":30"), 0, NB_CTRL_E_MISSING },
	{ "expires 86401", REGD(",\"keepalive\":30,\"expires\":86401"), 0, NB_CTRL_E_RANGE },
	{ "code 299", ERRMSG(",\"code\":299,\"reason\":\"x\""), 0, NB_CTRL_E_RANGE },
	{ "code 700", ERRMSG(",\"code\":700,\"reason\":\"x\""), 0, NB_CTRL_E_RANGE },
	{ "error no reason", ERRMSG(",\"code\":400"), 0, NB_CTRL_E_MISSING },
	{ "ms 2^32", HDR("result") ",\"session\":\"0000000000000000\",\"id\":\"a\",\"outcome\":"
		     "\"failed\",\"path\":\"none\",\"ms\":4294967296}", 0, NB_CTRL_E_RANGE },
	{ "deadline 0", PLAN(RPU ",\"candidates\":[],\"deadline_ms\":0"), 0, NB_CTRL_E_RANGE },
	{ "deadline too long", PLAN(RPU ",\"candidates\":[],\"deadline_ms\":600001"), 0,
	  NB_CTRL_E_RANGE },
	{ "deadline missing", PLAN(RPU ",\"candidates\":[]"), 0, NB_CTRL_E_MISSING },
	{ "delay too long", PLAN(RPU CD ",\"delay_ms\":60001"), 0, NB_CTRL_E_RANGE },
	{ "offset negative", HDR("peers") ",\"offset\":-5}", 0, NB_CTRL_E_RANGE },
	/* strings */
	{ "reason 161", ERRMSG(",\"code\":400,\"reason\":\"" S160 "x\""), 0, NB_CTRL_E_LENGTH },
	{ "token empty", REG(",\"token\":\"\",\"local\":[]"), 0, NB_CTRL_E_LENGTH },
	{ "token 65", REG(",\"token\":\"" ID33 ID33 "\",\"local\":[]"), 0, NB_CTRL_E_LENGTH },
	{ "token non-ASCII", REG(",\"token\":\"\xc3\xa9\",\"local\":[]"), 0, NB_CTRL_E_FORMAT },
	{ "token null", REG(",\"token\":null,\"local\":[]"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "username space", PLAN(",\"role\":\"dial\",\"path\":\"direct\",\"username\":\"a b\"" CD), 0,
	  NB_CTRL_E_FORMAT },
	{ "username 65", PLAN(",\"role\":\"dial\",\"path\":\"direct\",\"username\":\"" ID33 ID33 "\"" CD),
	  0, NB_CTRL_E_LENGTH },
	{ "username missing", PLAN(",\"role\":\"dial\",\"path\":\"direct\"" CD), 0, NB_CTRL_E_MISSING },
	{ "candidates missing", PLAN(RPU ",\"deadline_ms\":1"), 0, NB_CTRL_E_MISSING },
	{ "peer_key missing", PLANK(""), 0, NB_CTRL_E_MISSING },
	{ "old hex key instead of peer_key", PLANK(",\"key\":\"" KEY64 "\""), 0, NB_CTRL_E_MISSING },
	{ "peer_key 42", PLANK(",\"peer_key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh\""), 0,
	  NB_CTRL_E_LENGTH },
	{ "peer_key 44", PLANK(",\"peer_key\":\"" PK43 "A\""), 0, NB_CTRL_E_LENGTH },
	{ "peer_key empty", PLANK(",\"peer_key\":\"\""), 0, NB_CTRL_E_LENGTH },
	{ "peer_key 64 hex", PLANK(",\"peer_key\":\"" KEY64 "\""), 0, NB_CTRL_E_LENGTH },
	{ "peer_key padded", PLANK(",\"peer_key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh=\""), 0,
	  NB_CTRL_E_FORMAT },
	{ "peer_key plus", PLANK(",\"peer_key\":\"+AECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\""), 0,
	  NB_CTRL_E_FORMAT },
	{ "peer_key slash", PLANK(",\"peer_key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh/\""), 0,
	  NB_CTRL_E_FORMAT },
	{ "peer_key space", PLANK(",\"peer_key\":\"AAECAwQFBgcICQoLDA0O xAREhMUFRYXGBkaGxwdHh8\""), 0,
	  NB_CTRL_E_FORMAT },
	{ "peer_key dot", PLANK(",\"peer_key\":\"AAECAwQFBgcICQoLDA0O.xAREhMUFRYXGBkaGxwdHh8\""), 0,
	  NB_CTRL_E_FORMAT },
	{ "peer_key non-ASCII", PLANK(",\"peer_key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH\xc3\xa9\""), 0,
	  NB_CTRL_E_FORMAT },
	{ "peer_key number", PLANK(",\"peer_key\":5"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "peer_key null", PLANK(",\"peer_key\":null"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "bye no id", HDR("bye") "}", 0, NB_CTRL_E_MISSING },
	{ "bye id bad", HDR("bye") ",\"id\":\"a b\"}", 0, NB_CTRL_E_FORMAT },
	{ "bye id 33", HDR("bye") ",\"id\":\"" ID33 "\"}", 0, NB_CTRL_E_LENGTH },
	{ "admin empty", HDR("peers") ",\"admin\":\"\"}", 0, NB_CTRL_E_LENGTH },
	{ "admin 65", HDR("matrix") ",\"admin\":\"" ID33 ID33 "\"}", 0, NB_CTRL_E_LENGTH },
	{ "admin non-ASCII", HDR("peers") ",\"admin\":\"\xc3\xa9\"}", 0, NB_CTRL_E_FORMAT },
	{ "admin number", HDR("peers") ",\"admin\":1}", 0, NB_CTRL_E_WRONG_TYPE },
	{ "admin duplicate", HDR("peers") ",\"admin\":\"a\",\"admin\":\"a\"}", 0, NB_CTRL_E_DUPLICATE },
	{ "session 15", HDR("result") ",\"session\":\"000000000000000\",\"id\":\"a\",\"outcome\":"
			"\"failed\",\"path\":\"none\",\"ms\":1}", 0, NB_CTRL_E_LENGTH },
	/* vocabulary */
	{ "role Dial", PLAN(",\"role\":\"Dial\",\"path\":\"direct\",\"username\":\"u\"" CD), 0,
	  NB_CTRL_E_ENUM },
	{ "path p2p", PLAN(",\"role\":\"dial\",\"path\":\"p2p\",\"username\":\"u\"" CD), 0,
	  NB_CTRL_E_ENUM },
	{ "role number", PLAN(",\"role\":1,\"path\":\"direct\",\"username\":\"u\"" CD), 0,
	  NB_CTRL_E_WRONG_TYPE },
	{ "outcome ok", HDR("result") ",\"session\":\"0000000000000000\",\"id\":\"a\",\"outcome\":"
			"\"ok\",\"path\":\"none\",\"ms\":1}", 0, NB_CTRL_E_ENUM },
	{ "mapping symmetric", REG(",\"local\":[],\"nat\":{\"mapping\":\"symmetric\",\"filtering\":\"unknown\"}"),
	  0, NB_CTRL_E_ENUM },
	{ "filtering none", REG(",\"local\":[],\"nat\":{\"mapping\":\"none\",\"filtering\":\"none\"}"), 0,
	  NB_CTRL_E_ENUM },
	{ "nat cone", PLIST(",\"peers\":[" PEER0(",\"reflexive\":\"1.2.3.4:5\",\"nat\":\"cone\"") "]"),
	  0, NB_CTRL_E_ENUM },
	{ "upnp status yes", REG(",\"local\":[],\"upnp\":{\"status\":\"yes\"}"), 0, NB_CTRL_E_ENUM },
	/* register structure */
	{ "local missing", REG(""), 0, NB_CTRL_E_MISSING },
	{ "local not array", REG(",\"local\":\"1.2.3.4:5\""), 0, NB_CTRL_E_WRONG_TYPE },
	{ "local element number", REG(",\"local\":[5]"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "local 9", REG(",\"local\":[\"1.1.1.1:1\",\"1.1.1.1:2\",\"1.1.1.1:3\",\"1.1.1.1:4\","
			 "\"1.1.1.1:5\",\"1.1.1.1:6\",\"1.1.1.1:7\",\"1.1.1.1:8\",\"1.1.1.1:9\"]"),
	  0, NB_CTRL_E_TOO_MANY },
	{ "nat not object", REG(",\"local\":[],\"nat\":\"symmetric\""), 0, NB_CTRL_E_WRONG_TYPE },
	{ "nat no filtering", REG(",\"local\":[],\"nat\":{\"mapping\":\"none\"}"), 0, NB_CTRL_E_MISSING },
	{ "hairpin string", REG(",\"local\":[],\"nat\":{\"mapping\":\"none\",\"filtering\":\"unknown\","
				"\"hairpin\":\"yes\"}"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "upnp mapped no external", REG(",\"local\":[],\"upnp\":{\"status\":\"mapped\"}"), 0,
	  NB_CTRL_E_MISSING },
	{ "upnp external without mapped", REG(",\"local\":[],\"upnp\":{\"status\":\"none\","
					      "\"external\":\"1.2.3.4:5\"}"), 0, NB_CTRL_E_FORMAT },
	{ "upnp proof without mapped", REG(",\"local\":[],\"upnp\":{\"status\":\"failed\","
					   "\"proof\":\"0123456789abcdef0123456789abcdef\"}"), 0, NB_CTRL_E_FORMAT },
	{ "upnp proof short", REG(",\"local\":[],\"upnp\":{\"status\":\"mapped\",\"external\":\"1.2.3.4:5\","
				  "\"proof\":\"0123456789abcdef\"}"), 0, NB_CTRL_E_LENGTH },
	{ "upnp proof upper case", REG(",\"local\":[],\"upnp\":{\"status\":\"mapped\",\"external\":\"1.2.3.4:5\","
				       "\"proof\":\"0123456789ABCDEF0123456789abcdef\"}"), 0, NB_CTRL_E_FORMAT },
	{ "registered upnp word", REGD(",\"keepalive\":15,\"expires\":45,\"upnp\":\"maybe\""), 0, NB_CTRL_E_ENUM },
	{ "verify no external", HDR("verify") "}", 0, NB_CTRL_E_MISSING },
	{ "verify external not addr", HDR("verify") ",\"external\":\"host:1\"}", 0, NB_CTRL_E_FORMAT },
	{ "verify tcp not bool", HDR("verify") ",\"external\":\"1.2.3.4:5\",\"tcp\":1}", 0, NB_CTRL_E_WRONG_TYPE },
	{ "probe no proof", HDR("probe") "}", 0, NB_CTRL_E_MISSING },
	{ "challenge no cookie", HDR("challenge") "}", 0, NB_CTRL_E_MISSING },
	{ "challenge cookie short", HDR("challenge") ",\"cookie\":\"0123\"}", 0, NB_CTRL_E_LENGTH },
	{ "register cookie not hex", REG(",\"local\":[],\"cookie\":\"0123456789abcdef0123456789abcdeg\""), 0, NB_CTRL_E_FORMAT },
	{ "peers pad not a string", HDR("peers") ",\"pad\":5}", 0, NB_CTRL_E_WRONG_TYPE },
	{ "probe proof long", HDR("probe") ",\"proof\":\"0123456789abcdef0123456789abcdef0\"}", 0, NB_CTRL_E_LENGTH },
	/* addresses */
	{ "addr no port", REG(",\"local\":[\"1.2.3.4\"]"), 0, NB_CTRL_E_FORMAT },
	{ "addr port 0", REG(",\"local\":[\"1.2.3.4:0\"]"), 0, NB_CTRL_E_FORMAT },
	{ "addr port 65536", REG(",\"local\":[\"1.2.3.4:65536\"]"), 0, NB_CTRL_E_FORMAT },
	{ "addr port 05", REG(",\"local\":[\"1.2.3.4:05\"]"), 0, NB_CTRL_E_FORMAT },
	{ "addr leading zero octet", REG(",\"local\":[\"01.2.3.4:5\"]"), 0, NB_CTRL_E_FORMAT },
	{ "addr bare v6", REG(",\"local\":[\"::1:5\"]"), 0, NB_CTRL_E_FORMAT },
	{ "addr v6 not canonical", REG(",\"local\":[\"[0:0::1]:5\"]"), 0, NB_CTRL_E_FORMAT },
	{ "addr v6 upper case", REG(",\"local\":[\"[2001:DB8::1]:5\"]"), 0, NB_CTRL_E_FORMAT },
	{ "addr v6 one zero group compressed", REG(",\"local\":[\"[1::3:4:5:6:7:8]:5\"]"), 0,
	  NB_CTRL_E_FORMAT },
	{ "addr zone", REG(",\"local\":[\"[fe80::1%eth0]:5\"]"), 0, NB_CTRL_E_FORMAT },
	{ "addr name", REG(",\"local\":[\"localhost:5\"]"), 0, NB_CTRL_E_FORMAT },
	{ "addr too long", REG(",\"local\":[\"" S10 S10 S10 S10 S10 ":5\"]"), 0, NB_CTRL_E_LENGTH },
	{ "reflexive empty", HDR("registered") ",\"id\":\"a\",\"reflexive\":\"\",\"keepalive\":1,"
			     "\"expires\":1}", 0, NB_CTRL_E_LENGTH },
	{ "candidates 9", PLAN(RPU ",\"deadline_ms\":1,\"candidates\":"
				   "[\"1.1.1.1:1\",\"1.1.1.1:2\",\"1.1.1.1:3\",\"1.1.1.1:4\",\"1.1.1.1:5\","
				   "\"1.1.1.1:6\",\"1.1.1.1:7\",\"1.1.1.1:8\",\"1.1.1.1:9\"]"),
	  0, NB_CTRL_E_TOO_MANY },
	{ "candidate v4-mapped dotted", PLAN(RPU ",\"deadline_ms\":1,\"candidates\":[\"[::ffff:0102:0304]:5\"]"),
	  0, NB_CTRL_E_FORMAT },
	/* lists */
	{ "peers missing", PLIST(""), 0, NB_CTRL_E_MISSING },
	{ "peers not array", PLIST(",\"peers\":{}"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "peer not object", PLIST(",\"peers\":[\"p\"]"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "peer bad reflexive", PLIST(",\"peers\":[" PEER(",\"reflexive\":\"1.2.3.4:5\"") "," PEER(
				  ",\"reflexive\":\"x\"") "]"), 0, NB_CTRL_E_FORMAT },
	{ "peer missing reflexive", PLIST(",\"peers\":[" PEER("") "]"), 0, NB_CTRL_E_MISSING },
	{ "page past total", HDR("peer_list") ",\"total\":1,\"offset\":1,\"peers\":[" PEER(
				 ",\"reflexive\":\"1.2.3.4:5\"") "]}", 0, NB_CTRL_E_RANGE },
	{ "total missing", HDR("peer_list") ",\"offset\":0,\"peers\":[]}", 0, NB_CTRL_E_MISSING },
	{ "pair ms without measured", MLIST(",\"pairs\":[" PAIR(",\"ms\":5") "]"), 0, NB_CTRL_E_FORMAT },
	{ "pair measured without ms", MLIST(",\"pairs\":[" PAIR(",\"measured\":\"lan\"") "]"), 0,
	  NB_CTRL_E_MISSING },
	{ "pair measured bad", MLIST(",\"pairs\":[" PAIR(",\"measured\":\"yes\",\"ms\":1") "]"), 0,
	  NB_CTRL_E_ENUM },
	{ "pair role_b missing", MLIST(",\"pairs\":[{\"a\":\"x\",\"b\":\"y\",\"predicted\":\"lan\","
				       "\"role_a\":\"punch\"}]"), 0, NB_CTRL_E_MISSING },
};

static void check_bad(const struct bad *b)
{
	size_t len = b->len ? b->len : strlen(b->data);
	struct nb_ctrl_msg m, before;
	char why[NB_CTRL_REASON_MAX + 1];
	char tx[NB_CTRL_TX_LEN + 1];
	uint8_t *copy = malloc(len ? len : 1), *orig = malloc(len ? len : 1);
	ssize_t rc;

	assert_non_null(copy);
	assert_non_null(orig);
	memcpy(copy, b->data, len);
	memcpy(orig, b->data, len);
	memset(&m, 0xA5, sizeof(m));
	memcpy(&before, &m, sizeof(m));
	rc = nb_ctrl_decode(&m, copy, len);
	if (rc != b->err)
		fail_msg("%s: got %zd (%s), want %d (%s)", b->name, rc, nb_ctrl_strerror((int)rc),
			 b->err, nb_ctrl_strerror(b->err));
	assert_memory_equal(&m, &before, sizeof(m)); /* untouched on failure */
	assert_memory_equal(copy, orig, len);        /* input never written */

	/* explain gives the same code, and words. */
	assert_int_equal(nb_ctrl_explain(copy, len, why, sizeof(why)), b->err);
	assert_true(strlen(why) > 0);
	assert_true(strcmp(why, "ok") != 0);
	/* peek does not crash, and finds the tx whenever the JSON is well formed. */
	(void)nb_ctrl_peek_tx(copy, len, tx);
	free(copy);
	free(orig);
}

static void test_malformed(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_inputs) / sizeof(bad_inputs[0]); i++)
		check_bad(&bad_inputs[i]);
	/* strerror covers every code with words. */
	for (int e = NB_CTRL_E_INVAL; e <= NB_CTRL_E_TOO_BIG; e++)
		assert_string_not_equal(nb_ctrl_strerror(e), "unknown error");
	assert_string_equal(nb_ctrl_strerror(-1), "unknown error");
}

/* 1200 bytes accepted, 1201 refused. */
static void test_size_limit(void **state)
{
	(void)state;
	uint8_t buf[NB_CTRL_MAX_DATAGRAM + 2];
	const char *head = KA(",\"id\":\"a\",\"pad\":\"");
	size_t hl = strlen(head) - 1; /* without the final '}' of KA */
	struct nb_ctrl_msg m;

	for (size_t total = NB_CTRL_MAX_DATAGRAM - 2; total <= NB_CTRL_MAX_DATAGRAM + 1; total++) {
		memcpy(buf, head, hl);
		memset(buf + hl, 'x', total - hl - 2);
		buf[total - 2] = '"';
		buf[total - 1] = '}';
		ssize_t rc = nb_ctrl_decode(&m, buf, total);
		if (total <= NB_CTRL_MAX_DATAGRAM)
			assert_int_equal(rc, (ssize_t)total);
		else
			assert_int_equal(rc, NB_CTRL_E_TOO_BIG);
	}
	assert_int_equal(nb_ctrl_decode(&m, buf, SIZE_MAX), NB_CTRL_E_TOO_BIG);
	assert_int_equal(nb_ctrl_decode(NULL, buf, 10), NB_CTRL_E_INVAL);
	assert_int_equal(nb_ctrl_decode(&m, NULL, 0), NB_CTRL_E_NOT_OBJECT);
}

/* Every proper prefix of every valid message is refused, each from an
 * exact-size heap copy (so ASan sees a read one past the end). */
static void test_truncation(void **state)
{
	(void)state;
	struct nb_ctrl_msg s[MAX_SAMPLES];
	size_t n = make_samples(s);

	for (size_t i = 0; i < n; i++) {
		uint8_t buf[NB_CTRL_MAX_DATAGRAM];
		size_t len = encode_ok(&s[i], buf);

		for (size_t k = 0; k < len; k++) {
			uint8_t *p = malloc(k ? k : 1);
			struct nb_ctrl_msg m;
			assert_non_null(p);
			memcpy(p, buf, k);
			ssize_t rc = nb_ctrl_decode(&m, p, k);
			if (rc >= 0)
				fail_msg("sample %zu: prefix of %zu/%zu bytes accepted", i, k, len);
			free(p);
		}
	}
}

/* Messages that end exactly at a PROT_NONE page, in a read-only page: a read
 * past the end faults, and so does any write to the input. */
static void test_guard_page(void **state)
{
	(void)state;
	long pg = sysconf(_SC_PAGESIZE);
	struct nb_ctrl_msg s[MAX_SAMPLES];
	size_t n = make_samples(s);
	uint8_t *map;

	assert_true(pg >= NB_CTRL_MAX_DATAGRAM);
	map = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);

	for (size_t i = 0; i < n; i++) {
		uint8_t buf[NB_CTRL_MAX_DATAGRAM];
		size_t len = encode_ok(&s[i], buf);

		for (size_t k = 0; k <= len; k++) {
			uint8_t *p = map + pg - k;
			struct nb_ctrl_msg m;
			assert_int_equal(mprotect(map, (size_t)pg, PROT_READ | PROT_WRITE), 0);
			memcpy(p, buf, k);
			assert_int_equal(mprotect(map, (size_t)pg, PROT_READ), 0);
			ssize_t rc = nb_ctrl_decode(&m, p, k);
			if (k == len) {
				assert_int_equal(rc, (ssize_t)len);
				assert_true(nb_ctrl_msg_equal(&m, &s[i]));
			} else {
				assert_true(rc < 0);
			}
		}
	}
	/* Malformed inputs at the edge too. */
	for (size_t i = 0; i < sizeof(bad_inputs) / sizeof(bad_inputs[0]); i++) {
		const struct bad *b = &bad_inputs[i];
		size_t len = b->len ? b->len : strlen(b->data);
		struct nb_ctrl_msg m;
		if (len > (size_t)pg)
			continue;
		assert_int_equal(mprotect(map, (size_t)pg, PROT_READ | PROT_WRITE), 0);
		memcpy(map + pg - len, b->data, len);
		assert_int_equal(mprotect(map, (size_t)pg, PROT_READ), 0);
		assert_int_equal(nb_ctrl_decode(&m, map + pg - len, len), b->err);
	}
	munmap(map, (size_t)pg * 2);
}

/* ---- Encoder ------------------------------------------------------------------ */

static void test_encode_nospace(void **state)
{
	(void)state;
	struct nb_ctrl_msg s[MAX_SAMPLES];
	size_t n = make_samples(s);

	for (size_t i = 0; i < n; i++) {
		uint8_t buf[NB_CTRL_MAX_DATAGRAM], small[NB_CTRL_MAX_DATAGRAM];
		size_t len = encode_ok(&s[i], buf);

		memset(small, 0xEE, sizeof(small));
		assert_int_equal(nb_ctrl_encode(&s[i], small, len - 1), NB_CTRL_E_NOSPACE);
		for (size_t k = 0; k < sizeof(small); k++)
			assert_int_equal(small[k], 0xEE); /* nothing written */
		assert_int_equal(nb_ctrl_encode(&s[i], small, len), (ssize_t)len);
		assert_memory_equal(small, buf, len);
		assert_int_equal(small[len], 0xEE); /* no NUL added */
		assert_int_equal(nb_ctrl_encode(&s[i], NULL, 0), NB_CTRL_E_NOSPACE);
	}
	assert_int_equal(nb_ctrl_encode(NULL, NULL, 0), NB_CTRL_E_INVAL);

	/* A message over 1200 bytes is refused even with a bigger buffer. */
	struct nb_ctrl_msg m;
	uint8_t big[4096];
	init_msg(&m, NB_CTRL_PEER_LIST);
	m.u.peer_list.total = NB_CTRL_MAX_PAGE;
	m.u.peer_list.n_peers = NB_CTRL_MAX_PAGE;
	for (size_t i = 0; i < NB_CTRL_MAX_PAGE; i++)
		fill_peer(&m.u.peer_list.peers[i], i);
	assert_int_equal(nb_ctrl_encode(&m, big, sizeof(big)), NB_CTRL_E_NOSPACE);
}

struct enc_case {
	const char *name;
	void (*mutate)(struct nb_ctrl_msg *m);
	int sample;
	int err;
};

static void mut_tx_upper(struct nb_ctrl_msg *m) { SET(m->tx, "0123456789ABCDEF"); }
static void mut_tx_short(struct nb_ctrl_msg *m) { SET(m->tx, "0123"); }
static void mut_tx_unterminated(struct nb_ctrl_msg *m) { memset(m->tx, 'a', sizeof(m->tx)); }
static void mut_type(struct nb_ctrl_msg *m) { m->type = (enum nb_ctrl_type)99; }
static void mut_id_bad(struct nb_ctrl_msg *m) { SET(m->u.reg.id, "a b"); }
static void mut_id_empty(struct nb_ctrl_msg *m) { m->u.reg.id[0] = '\0'; }
static void mut_id_unterminated(struct nb_ctrl_msg *m) { memset(m->u.reg.id, 'a', sizeof(m->u.reg.id)); }
static void mut_token_ctl(struct nb_ctrl_msg *m) { SET(m->u.reg.token, "a\tb"); }
static void mut_local_many(struct nb_ctrl_msg *m) { m->u.reg.n_local = NB_CTRL_MAX_ADDRS + 1; }
static void mut_local_port0(struct nb_ctrl_msg *m) { m->u.reg.local[3].port = 0; }
static void mut_local_family(struct nb_ctrl_msg *m) { m->u.reg.local[0].family = NB_AF_NONE; }
static void mut_mapping(struct nb_ctrl_msg *m) { m->u.reg.mapping = (enum nb_mapping)NB_MAPPING_COUNT; }
static void mut_upnp(struct nb_ctrl_msg *m) { m->u.reg.upnp = (enum nb_ctrl_upnp_status)3; }
static void mut_ext(struct nb_ctrl_msg *m) { m->u.reg.upnp_external.port = 0; }
static void mut_keepalive(struct nb_ctrl_msg *m) { m->u.registered.keepalive_s = 0; }
static void mut_reason_utf8(struct nb_ctrl_msg *m) { SET(m->u.plan.reason, "bad \xc0\xaf"); }
static void mut_reason_ctl(struct nb_ctrl_msg *m) { SET(m->u.plan.reason, "line\nbreak"); }
static void mut_reason_long(struct nb_ctrl_msg *m)
{
	memset(m->u.plan.reason, 'r', sizeof(m->u.plan.reason));
}
static void mut_role(struct nb_ctrl_msg *m) { m->u.plan.role = (enum nb_role)NB_ROLE_COUNT; }
static void mut_key(struct nb_ctrl_msg *m) { m->u.plan.peer_key[5] = '+'; }
static void mut_key_42(struct nb_ctrl_msg *m) { m->u.plan.peer_key[42] = '\0'; }
static void mut_key_unterminated(struct nb_ctrl_msg *m)
{
	memset(m->u.plan.peer_key, 'A', sizeof(m->u.plan.peer_key));
}
static void mut_key_empty(struct nb_ctrl_msg *m) { m->u.plan.peer_key[0] = '\0'; }
static void mut_bye_id(struct nb_ctrl_msg *m) { SET(m->u.bye.id, "a/b"); }
static void mut_bye_empty(struct nb_ctrl_msg *m) { m->u.bye.id[0] = '\0'; }
static void mut_admin_ctl(struct nb_ctrl_msg *m) { SET(m->u.query.admin, "a\tb"); }
static void mut_admin_long(struct nb_ctrl_msg *m)
{
	memset(m->u.query.admin, 'a', sizeof(m->u.query.admin));
}
static void mut_username(struct nb_ctrl_msg *m) { SET(m->u.plan.username, "a b"); }
static void mut_deadline(struct nb_ctrl_msg *m) { m->u.plan.deadline_ms = 0; }
static void mut_delay(struct nb_ctrl_msg *m) { m->u.plan.delay_ms = NB_CTRL_DELAY_MAX_MS + 1; }
static void mut_code(struct nb_ctrl_msg *m) { m->u.error.code = 200; }
static void mut_page(struct nb_ctrl_msg *m) { m->u.peer_list.total = 10; }
static void mut_page_many(struct nb_ctrl_msg *m) { m->u.peer_list.n_peers = NB_CTRL_MAX_PAGE + 1; }
static void mut_peer_nat(struct nb_ctrl_msg *m) { m->u.peer_list.peers[7].nat = (enum nb_nat_type)-1; }
static void mut_pair_measured(struct nb_ctrl_msg *m)
{
	m->u.matrix_list.pairs[1].measured = (enum nb_path)9;
}
static void mut_outcome(struct nb_ctrl_msg *m) { m->u.result.outcome = (enum nb_ctrl_outcome)2; }

static const struct enc_case enc_cases[] = {
	{ "tx upper", mut_tx_upper, 4, NB_CTRL_E_FORMAT },
	{ "tx short", mut_tx_short, 4, NB_CTRL_E_LENGTH },
	{ "tx unterminated", mut_tx_unterminated, 4, NB_CTRL_E_LENGTH },
	{ "type", mut_type, 4, NB_CTRL_E_TYPE },
	{ "id bad", mut_id_bad, 0, NB_CTRL_E_FORMAT },
	{ "id empty", mut_id_empty, 0, NB_CTRL_E_LENGTH },
	{ "id unterminated", mut_id_unterminated, 0, NB_CTRL_E_LENGTH },
	{ "token control", mut_token_ctl, 0, NB_CTRL_E_FORMAT },
	{ "local too many", mut_local_many, 0, NB_CTRL_E_TOO_MANY },
	{ "local port 0", mut_local_port0, 0, NB_CTRL_E_FORMAT },
	{ "local no family", mut_local_family, 0, NB_CTRL_E_FORMAT },
	{ "mapping", mut_mapping, 0, NB_CTRL_E_ENUM },
	{ "upnp", mut_upnp, 0, NB_CTRL_E_ENUM },
	{ "upnp external", mut_ext, 0, NB_CTRL_E_FORMAT },
	{ "keepalive", mut_keepalive, 3, NB_CTRL_E_RANGE },
	{ "reason utf8", mut_reason_utf8, 6, NB_CTRL_E_UTF8 },
	{ "reason control", mut_reason_ctl, 6, NB_CTRL_E_CONTROL },
	{ "reason unterminated", mut_reason_long, 6, NB_CTRL_E_LENGTH },
	{ "role", mut_role, 6, NB_CTRL_E_ENUM },
	{ "peer_key char", mut_key, 6, NB_CTRL_E_FORMAT },
	{ "peer_key 42", mut_key_42, 7, NB_CTRL_E_LENGTH },
	{ "peer_key unterminated", mut_key_unterminated, 6, NB_CTRL_E_LENGTH },
	{ "peer_key empty", mut_key_empty, 6, NB_CTRL_E_LENGTH },
	{ "bye id", mut_bye_id, 27, NB_CTRL_E_FORMAT },
	{ "bye id empty", mut_bye_empty, 27, NB_CTRL_E_LENGTH },
	{ "admin control", mut_admin_ctl, 28, NB_CTRL_E_FORMAT },
	{ "admin unterminated", mut_admin_long, 29, NB_CTRL_E_LENGTH },
	{ "username", mut_username, 6, NB_CTRL_E_FORMAT },
	{ "deadline", mut_deadline, 6, NB_CTRL_E_RANGE },
	{ "delay", mut_delay, 6, NB_CTRL_E_RANGE },
	{ "outcome", mut_outcome, 8, NB_CTRL_E_ENUM },
	{ "code", mut_code, 10, NB_CTRL_E_RANGE },
	{ "page past total", mut_page, 16, NB_CTRL_E_RANGE },
	{ "page too many", mut_page_many, 16, NB_CTRL_E_TOO_MANY },
	{ "peer nat", mut_peer_nat, 16, NB_CTRL_E_ENUM },
	{ "pair measured", mut_pair_measured, 18, NB_CTRL_E_ENUM },
};

/* The encoder refuses what the decoder would refuse, with the same code. */
static void test_encode_invalid(void **state)
{
	(void)state;
	struct nb_ctrl_msg s[MAX_SAMPLES];
	make_samples(s);

	for (size_t i = 0; i < sizeof(enc_cases) / sizeof(enc_cases[0]); i++) {
		struct nb_ctrl_msg m = s[enc_cases[i].sample];
		uint8_t buf[NB_CTRL_MAX_DATAGRAM];
		size_t count = 777;
		ssize_t rc;

		enc_cases[i].mutate(&m);
		rc = nb_ctrl_encode(&m, buf, sizeof(buf));
		if (rc != enc_cases[i].err)
			fail_msg("%s: got %zd (%s), want %d", enc_cases[i].name, rc,
				 nb_ctrl_strerror((int)rc), enc_cases[i].err);
		if (m.type == NB_CTRL_PEER_LIST || m.type == NB_CTRL_MATRIX_LIST) {
			assert_int_equal(nb_ctrl_encode_page(&m, buf, sizeof(buf), &count),
					 enc_cases[i].err);
			assert_int_equal(count, 777);
		}
	}
}

/* ---- Pagination ---------------------------------------------------------------- */

static void big_peer(struct nb_ctrl_peer_info *p, size_t i)
{
	char id[NB_CTRL_ID_MAX + 1];

	snprintf(id, sizeof(id), "%032zu", i);
	SET(p->id, id);
	p->nat = NB_NAT_PORT_RESTRICTED_CONE;
	p->mapping = NB_MAPPING_ADDRESS_AND_PORT_DEPENDENT;
	p->filtering = NB_FILTERING_ADDRESS_AND_PORT_DEPENDENT;
	p->reflexive = addr("[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

static void check_page_max(struct nb_ctrl_msg *m, size_t cap, size_t *ret_k)
{
	uint8_t buf[NB_CTRL_MAX_DATAGRAM], tmp[NB_CTRL_MAX_DATAGRAM];
	struct nb_ctrl_msg d;
	size_t k = 0, full_n = m->type == NB_CTRL_PEER_LIST ? m->u.peer_list.n_peers
							   : m->u.matrix_list.n_pairs;
	ssize_t len = nb_ctrl_encode_page(m, buf, cap, &k);

	assert_true(len > 0);
	assert_true((size_t)len <= cap && len <= NB_CTRL_MAX_DATAGRAM);
	assert_true(k <= full_n);
	assert_int_equal(nb_ctrl_decode(&d, buf, (size_t)len), len);
	/* What was packed is the first k entries, exactly. */
	struct nb_ctrl_msg want = *m;
	if (m->type == NB_CTRL_PEER_LIST)
		want.u.peer_list.n_peers = k;
	else
		want.u.matrix_list.n_pairs = k;
	assert_true(nb_ctrl_msg_equal(&d, &want));
	/* The page is as full as it can be: the same k via plain encode, and
	 * k + 1 entries do not fit. */
	assert_int_equal(nb_ctrl_encode(&want, tmp, cap), len);
	if (k < full_n) {
		if (m->type == NB_CTRL_PEER_LIST)
			want.u.peer_list.n_peers = k + 1;
		else
			want.u.matrix_list.n_pairs = k + 1;
		assert_int_equal(nb_ctrl_encode(&want, tmp, cap), NB_CTRL_E_NOSPACE);
	}
	*ret_k = k;
}

static void test_pagination(void **state)
{
	(void)state;
	struct nb_ctrl_msg m;
	uint8_t buf[NB_CTRL_MAX_DATAGRAM];
	size_t k, k600;

	/* 24 of the largest peer entries do not fit in one datagram. */
	init_msg(&m, NB_CTRL_PEER_LIST);
	m.u.peer_list.total = 1000;
	m.u.peer_list.offset = 976;
	m.u.peer_list.n_peers = NB_CTRL_MAX_PAGE;
	for (size_t i = 0; i < NB_CTRL_MAX_PAGE; i++)
		big_peer(&m.u.peer_list.peers[i], i);
	assert_int_equal(nb_ctrl_encode(&m, buf, sizeof(buf)), NB_CTRL_E_NOSPACE);
	check_page_max(&m, NB_CTRL_MAX_DATAGRAM, &k);
	assert_true(k >= 1 && k < NB_CTRL_MAX_PAGE);
	check_page_max(&m, 600, &k600);
	assert_true(k600 < k);
	check_page_max(&m, 5000, &k); /* capped at 1200 anyway */

	/* All fit: everything packed. */
	m.u.peer_list.n_peers = 2;
	check_page_max(&m, NB_CTRL_MAX_DATAGRAM, &k);
	assert_int_equal(k, 2);

	/* Not even an empty page fits. */
	assert_int_equal(nb_ctrl_encode_page(&m, buf, 20, &k), NB_CTRL_E_NOSPACE);
	/* Only list types page. */
	init_msg(&m, NB_CTRL_ACK);
	assert_int_equal(nb_ctrl_encode_page(&m, buf, sizeof(buf), &k), NB_CTRL_E_INVAL);
	assert_int_equal(nb_ctrl_encode_page(&m, buf, sizeof(buf), NULL), NB_CTRL_E_INVAL);

	/* Matrix pages. */
	init_msg(&m, NB_CTRL_MATRIX_LIST);
	m.u.matrix_list.total = NB_CTRL_MAX_PAGE;
	m.u.matrix_list.n_pairs = NB_CTRL_MAX_PAGE;
	for (size_t i = 0; i < NB_CTRL_MAX_PAGE; i++) {
		struct nb_ctrl_pair *p = &m.u.matrix_list.pairs[i];
		fill_pair(p, i);
		memset(p->a, 'a', NB_CTRL_ID_MAX);
		p->a[NB_CTRL_ID_MAX] = '\0';
		memset(p->b, 'b', NB_CTRL_ID_MAX);
		p->b[NB_CTRL_ID_MAX] = '\0';
	}
	check_page_max(&m, NB_CTRL_MAX_DATAGRAM, &k);
	assert_true(k >= 1 && k < NB_CTRL_MAX_PAGE);
}

/* A broker walking 100 peers page by page: every entry arrives once, in order. */
static void test_pagination_walk(void **state)
{
	(void)state;
	const uint32_t total = 100;
	uint32_t offset = 0;
	size_t pages = 0, got = 0;

	while (offset < total) {
		struct nb_ctrl_msg m, d;
		uint8_t buf[NB_CTRL_MAX_DATAGRAM];
		size_t n = total - offset < NB_CTRL_MAX_PAGE ? total - offset : NB_CTRL_MAX_PAGE, k;
		ssize_t len;

		init_msg(&m, NB_CTRL_PEER_LIST);
		m.u.peer_list.total = total;
		m.u.peer_list.offset = offset;
		m.u.peer_list.n_peers = n;
		for (size_t i = 0; i < n; i++)
			big_peer(&m.u.peer_list.peers[i], offset + i);
		len = nb_ctrl_encode_page(&m, buf, sizeof(buf), &k);
		assert_true(len > 0 && k > 0);
		assert_int_equal(nb_ctrl_decode(&d, buf, (size_t)len), len);
		assert_int_equal(d.u.peer_list.offset, offset);
		assert_int_equal(d.u.peer_list.n_peers, k);
		for (size_t i = 0; i < k; i++) {
			char want[NB_CTRL_ID_MAX + 1];
			snprintf(want, sizeof(want), "%032zu", offset + i);
			assert_string_equal(d.u.peer_list.peers[i].id, want);
		}
		got += k;
		offset += (uint32_t)k;
		pages++;
	}
	assert_int_equal(got, total);
	assert_true(pages > 1);
}

/* ---- explain / peek ----------------------------------------------------------- */

static void expect_why(const char *json, int err, const char *substr)
{
	char why[NB_CTRL_REASON_MAX + 1];
	int rc = nb_ctrl_explain((const uint8_t *)json, strlen(json), why, sizeof(why));

	if (rc != err || strstr(why, substr) == NULL)
		fail_msg("explain: got %d \"%s\", want %d with \"%s\"", rc, why, err, substr);
}

static void test_explain(void **state)
{
	(void)state;
	char why[8];

	expect_why(KA(",\"id\":\"" ID33 "\""), NB_CTRL_E_LENGTH, "field 'id': too long");
	expect_why(KA(",\"id\":\"a b\""), NB_CTRL_E_FORMAT, "field 'id'");
	expect_why(PLIST(",\"peers\":[" PEER(",\"reflexive\":\"1.2.3.4:5\"") "," PEER(
			   ",\"reflexive\":\"x\"") "]"),
		   NB_CTRL_E_FORMAT, "field 'peers[1].reflexive': not ip:port");
	expect_why(PLIST(",\"peers\":[" PEER(",\"reflexive\":\"1.2.3.4:5\",\"alt\":{\"reflexive\":\"x\","
			   "\"mapping\":\"none\",\"filtering\":\"unknown\"}") "]"),
		   NB_CTRL_E_FORMAT, "field 'peers[0].alt.reflexive': not ip:port");
	expect_why(REG(",\"local\":[],\"nat\":{\"mapping\":\"cone\",\"filtering\":\"unknown\"}"),
		   NB_CTRL_E_ENUM, "field 'nat.mapping': 'cone'");
	expect_why(REG(",\"local\":[\"1.2.3.4:5\",\"[0::1]:5\"]"), NB_CTRL_E_FORMAT,
		   "field 'local[1]': not in canonical form ([::1]:5)");
	expect_why(KA(",\"id\":\"a\",\"id\":\"b\""), NB_CTRL_E_DUPLICATE, "key 'id' appears twice");
	expect_why("{\"v\":2,\"type\":\"ack\",\"tx\":\"" TX "\"}", NB_CTRL_E_VERSION, "version 2");
	expect_why("{\"v\":1,\"type\":\"nope\",\"tx\":\"" TX "\"}", NB_CTRL_E_TYPE, "'nope'");
	expect_why(HDR("ack") ",\"x\":1.5}", NB_CTRL_E_RANGE, "not a plain integer");
	expect_why(REGD(",\"keepalive\":0,\"expires\":60"), NB_CTRL_E_RANGE,
		   "field 'keepalive': 0 not in 1..3600");
	expect_why(KA(",\"id\":\"a\"") " ", NB_CTRL_E_TRAILING, "1 byte(s) after the object");
	expect_why(HDR("ack") "}", 0, "ok");

	/* Small buffers: truncated, terminated. */
	const char *j = KA(",\"id\":\"" ID33 "\"");
	assert_int_equal(nb_ctrl_explain((const uint8_t *)j, strlen(j), why, sizeof(why)),
			 NB_CTRL_E_LENGTH);
	assert_true(strlen(why) < sizeof(why));
	assert_int_equal(nb_ctrl_explain((const uint8_t *)j, strlen(j), NULL, 0), NB_CTRL_E_LENGTH);

	/* A quoted word cut inside a UTF-8 character is trimmed to whole ones,
	 * so the text can go out as an error reason. */
	char why2[NB_CTRL_REASON_MAX + 1];
	j = HDR("plan") ",\"session\":\"0000000000000000\",\"peer\":\"p\",\"role\":"
	    "\"x\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "x\"}";
	assert_int_equal(nb_ctrl_explain((const uint8_t *)j, strlen(j), why2, sizeof(why2)),
			 NB_CTRL_E_ENUM);
	assert_non_null(strstr(why2, "' is not one of its words"));
	struct nb_ctrl_msg e;
	init_msg(&e, NB_CTRL_ERROR);
	e.u.error.code = NB_CTRL_ERR_BAD_REQUEST;
	SET(e.u.error.reason, why2);
	uint8_t out[NB_CTRL_MAX_DATAGRAM];
	assert_true(nb_ctrl_encode(&e, out, sizeof(out)) > 0);
}

static void test_peek_tx(void **state)
{
	(void)state;
	char tx[NB_CTRL_TX_LEN + 1];
	const char *j;

	memset(tx, 'z', sizeof(tx));
	j = KA(",\"id\":\"a b\""); /* bad field, good tx */
	assert_int_equal(nb_ctrl_peek_tx((const uint8_t *)j, strlen(j), tx), 0);
	assert_string_equal(tx, TX);
	j = "{\"v\":9,\"type\":\"future\",\"tx\":\"fedcba9876543210\"}";
	assert_int_equal(nb_ctrl_peek_tx((const uint8_t *)j, strlen(j), tx), 0);
	assert_string_equal(tx, "fedcba9876543210");

	memset(tx, 'z', sizeof(tx));
	j = "{\"v\":1,\"type\":\"ack\"}";
	assert_int_equal(nb_ctrl_peek_tx((const uint8_t *)j, strlen(j), tx), NB_CTRL_E_MISSING);
	j = "{\"v\":1,\"tx\":\"0123\"}";
	assert_int_equal(nb_ctrl_peek_tx((const uint8_t *)j, strlen(j), tx), NB_CTRL_E_LENGTH);
	j = "{\"tx\":\"" TX "\"";
	assert_int_equal(nb_ctrl_peek_tx((const uint8_t *)j, strlen(j), tx), NB_CTRL_E_SYNTAX);
	assert_int_equal(tx[0], 'z'); /* untouched */
	assert_int_equal(nb_ctrl_peek_tx((const uint8_t *)j, strlen(j), NULL), NB_CTRL_E_INVAL);
}

/* ---- The plan's "relay" and the relayed message ------------------------------- */

#define RPLAN(relay) PLAN(RPU CD ",\"relay\":" relay)
#define RSRV ",\"server\":\"203.0.113.10:3478\""
#define RUSER ",\"user\":\"1700003600:" PK43 "\""
#define RPASS ",\"pass\":\"Ym9ndXMgcGFzc3dvcmQgaGVyZSE=\""
#define U128 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 "01234567"
#define P64 S10 S10 S10 S10 S10 S10 "0123"
#define RELAYED(rest) HDR("relayed") rest "}"
#define BSP ",\"role\":\"spray\",\"path\":\"birthday\",\"username\":\"u\""
#define BGOOD "{\"sockets\":256,\"probes\":2048,\"rate\":1000}"
#define BPLAN(b) PLAN(BSP CD ",\"birthday\":" b)
#define BRES(b) HDR("result") ",\"session\":\"0000000000000000\",\"id\":\"a\",\"outcome\":\"connected\"," \
		"\"path\":\"birthday\",\"ms\":5,\"birthday\":" b "}"
#define RSESS ",\"session\":\"fedcba9876543210\""

static const struct bad bad_relay[] = {
	/* relay itself */
	{ "relay not object", RPLAN("true"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "relay array", RPLAN("[]"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "relay alloc missing", RPLAN("{}"), 0, NB_CTRL_E_MISSING },
	{ "relay alloc missing, rest there", RPLAN("{\"x\":1" RSRV RUSER RPASS "}"), 0, NB_CTRL_E_MISSING },
	{ "relay alloc not bool", RPLAN("{\"alloc\":1}"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "relay alloc string", RPLAN("{\"alloc\":\"true\"" RSRV RUSER RPASS "}"), 0, NB_CTRL_E_WRONG_TYPE },
	/* alloc false: nothing else */
	{ "relay alloc false with server", RPLAN("{\"alloc\":false" RSRV "}"), 0, NB_CTRL_E_FORMAT },
	{ "relay alloc false with user", RPLAN("{\"alloc\":false" RUSER "}"), 0, NB_CTRL_E_FORMAT },
	{ "relay alloc false with pass", RPLAN("{\"alloc\":false" RPASS "}"), 0, NB_CTRL_E_FORMAT },
	{ "relay alloc false with all", RPLAN("{\"alloc\":false" RSRV RUSER RPASS "}"), 0, NB_CTRL_E_FORMAT },
	/* alloc true: all three */
	{ "relay alloc true alone", RPLAN("{\"alloc\":true}"), 0, NB_CTRL_E_MISSING },
	{ "relay no server", RPLAN("{\"alloc\":true" RUSER RPASS "}"), 0, NB_CTRL_E_MISSING },
	{ "relay no user", RPLAN("{\"alloc\":true" RSRV RPASS "}"), 0, NB_CTRL_E_MISSING },
	{ "relay no pass", RPLAN("{\"alloc\":true" RSRV RUSER "}"), 0, NB_CTRL_E_MISSING },
	/* server */
	{ "relay server word", RPLAN("{\"alloc\":true,\"server\":\"x\"" RUSER RPASS "}"), 0, NB_CTRL_E_FORMAT },
	{ "relay server name", RPLAN("{\"alloc\":true,\"server\":\"turn.example:3478\"" RUSER RPASS "}"), 0,
	  NB_CTRL_E_FORMAT },
	{ "relay server no port", RPLAN("{\"alloc\":true,\"server\":\"203.0.113.10\"" RUSER RPASS "}"), 0,
	  NB_CTRL_E_FORMAT },
	{ "relay server turn uri", RPLAN("{\"alloc\":true,\"server\":\"turn:203.0.113.10:3478\"" RUSER RPASS "}"),
	  0, NB_CTRL_E_FORMAT },
	{ "relay server port 0", RPLAN("{\"alloc\":true,\"server\":\"203.0.113.10:0\"" RUSER RPASS "}"), 0,
	  NB_CTRL_E_FORMAT },
	{ "relay server empty", RPLAN("{\"alloc\":true,\"server\":\"\"" RUSER RPASS "}"), 0, NB_CTRL_E_LENGTH },
	{ "relay server number", RPLAN("{\"alloc\":true,\"server\":3478" RUSER RPASS "}"), 0,
	  NB_CTRL_E_WRONG_TYPE },
	/* user */
	{ "relay user space", RPLAN("{\"alloc\":true" RSRV ",\"user\":\"1700003600:a b\"" RPASS "}"), 0,
	  NB_CTRL_E_FORMAT },
	{ "relay user tab", RPLAN("{\"alloc\":true" RSRV ",\"user\":\"1:a\\tb\"" RPASS "}"), 0,
	  NB_CTRL_E_CONTROL }, /* the JSON layer refuses control characters in any string */
	{ "relay user DEL", RPLAN("{\"alloc\":true" RSRV ",\"user\":\"1:a\x7f\"" RPASS "}"), 0,
	  NB_CTRL_E_CONTROL },
	{ "relay user non-ASCII", RPLAN("{\"alloc\":true" RSRV ",\"user\":\"1:caf\xc3\xa9\"" RPASS "}"), 0,
	  NB_CTRL_E_FORMAT },
	{ "relay user empty", RPLAN("{\"alloc\":true" RSRV ",\"user\":\"\"" RPASS "}"), 0, NB_CTRL_E_LENGTH },
	{ "relay user 129", RPLAN("{\"alloc\":true" RSRV ",\"user\":\"" U128 "x\"" RPASS "}"), 0,
	  NB_CTRL_E_LENGTH },
	{ "relay user number", RPLAN("{\"alloc\":true" RSRV ",\"user\":1" RPASS "}"), 0, NB_CTRL_E_WRONG_TYPE },
	/* pass */
	{ "relay pass 65", RPLAN("{\"alloc\":true" RSRV RUSER ",\"pass\":\"" P64 "x\"}"), 0, NB_CTRL_E_LENGTH },
	{ "relay pass empty", RPLAN("{\"alloc\":true" RSRV RUSER ",\"pass\":\"\"}"), 0, NB_CTRL_E_LENGTH },
	{ "relay pass space", RPLAN("{\"alloc\":true" RSRV RUSER ",\"pass\":\"ab cd\"}"), 0, NB_CTRL_E_FORMAT },
	{ "relay pass null", RPLAN("{\"alloc\":true" RSRV RUSER ",\"pass\":null}"), 0, NB_CTRL_E_WRONG_TYPE },
	/* family: 4 or 6, with alloc only */
	{ "relay family 5", RPLAN("{\"alloc\":true" RSRV RUSER RPASS ",\"family\":5}"), 0, NB_CTRL_E_RANGE },
	{ "relay family 0", RPLAN("{\"alloc\":true" RSRV RUSER RPASS ",\"family\":0}"), 0, NB_CTRL_E_RANGE },
	{ "relay family string", RPLAN("{\"alloc\":true" RSRV RUSER RPASS ",\"family\":\"6\"}"), 0,
	  NB_CTRL_E_WRONG_TYPE },
	{ "relay family 6.5", RPLAN("{\"alloc\":true" RSRV RUSER RPASS ",\"family\":6.5}"), 0, NB_CTRL_E_RANGE },
	{ "relay alloc false with family", RPLAN("{\"alloc\":false,\"family\":6}"), 0, NB_CTRL_E_FORMAT },
	/* relayed */
	{ "relayed no address", RELAYED(RSESS ",\"id\":\"alice\""), 0, NB_CTRL_E_MISSING },
	{ "relayed word", RELAYED(RSESS ",\"id\":\"alice\",\"relayed\":\"x\""), 0, NB_CTRL_E_FORMAT },
	{ "relayed name", RELAYED(RSESS ",\"id\":\"alice\",\"relayed\":\"relay.example:50000\""), 0,
	  NB_CTRL_E_FORMAT },
	{ "relayed no port", RELAYED(RSESS ",\"id\":\"alice\",\"relayed\":\"203.0.113.10\""), 0, NB_CTRL_E_FORMAT },
	{ "relayed port 0", RELAYED(RSESS ",\"id\":\"alice\",\"relayed\":\"203.0.113.10:0\""), 0,
	  NB_CTRL_E_FORMAT },
	{ "relayed port 65536", RELAYED(RSESS ",\"id\":\"alice\",\"relayed\":\"203.0.113.10:65536\""), 0,
	  NB_CTRL_E_FORMAT },
	{ "relayed bare v6", RELAYED(RSESS ",\"id\":\"alice\",\"relayed\":\"2001:db8::1:5\""), 0,
	  NB_CTRL_E_FORMAT },
	{ "relayed v6 upper", RELAYED(RSESS ",\"id\":\"alice\",\"relayed\":\"[2001:DB8::1]:5\""), 0,
	  NB_CTRL_E_FORMAT },
	{ "relayed empty", RELAYED(RSESS ",\"id\":\"alice\",\"relayed\":\"\""), 0, NB_CTRL_E_LENGTH },
	{ "relayed number", RELAYED(RSESS ",\"id\":\"alice\",\"relayed\":5"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "relayed array", RELAYED(RSESS ",\"id\":\"alice\",\"relayed\":[\"203.0.113.10:5\"]"), 0,
	  NB_CTRL_E_WRONG_TYPE },
	{ "relayed no session", RELAYED(",\"id\":\"alice\",\"relayed\":\"203.0.113.10:5\""), 0, NB_CTRL_E_MISSING },
	{ "relayed short session", RELAYED(",\"session\":\"fedcba987654321\",\"id\":\"alice\","
					   "\"relayed\":\"203.0.113.10:5\""), 0, NB_CTRL_E_LENGTH },
	{ "relayed no id", RELAYED(RSESS ",\"relayed\":\"203.0.113.10:5\""), 0, NB_CTRL_E_MISSING },
	{ "relayed bad id", RELAYED(RSESS ",\"id\":\"a b\",\"relayed\":\"203.0.113.10:5\""), 0, NB_CTRL_E_FORMAT },
	/* birthday: exactly with path birthday, roles spray/probe exactly there */
	{ "birthday path without budget", PLAN(BSP CD), 0, NB_CTRL_E_FORMAT },
	{ "birthday budget on direct", PLAN(RPU CD ",\"birthday\":" BGOOD), 0, NB_CTRL_E_FORMAT },
	{ "spray on direct", PLAN(",\"role\":\"spray\",\"path\":\"direct\",\"username\":\"u\"" CD), 0,
	  NB_CTRL_E_FORMAT },
	{ "dial on birthday", PLAN(",\"role\":\"dial\",\"path\":\"birthday\",\"username\":\"u\"" CD
				   ",\"birthday\":" BGOOD), 0, NB_CTRL_E_FORMAT },
	{ "birthday sockets 0", BPLAN("{\"sockets\":0,\"probes\":2048,\"rate\":1000}"), 0, NB_CTRL_E_RANGE },
	{ "birthday sockets 1025", BPLAN("{\"sockets\":1025,\"probes\":2048,\"rate\":1000}"), 0, NB_CTRL_E_RANGE },
	{ "birthday probes 64513", BPLAN("{\"sockets\":256,\"probes\":64513,\"rate\":1000}"), 0, NB_CTRL_E_RANGE },
	{ "birthday rate 0", BPLAN("{\"sockets\":256,\"probes\":2048,\"rate\":0}"), 0, NB_CTRL_E_RANGE },
	{ "birthday rate 10001", BPLAN("{\"sockets\":256,\"probes\":2048,\"rate\":10001}"), 0, NB_CTRL_E_RANGE },
	{ "birthday no rate", BPLAN("{\"sockets\":256,\"probes\":2048}"), 0, NB_CTRL_E_MISSING },
	{ "birthday port in plan", BPLAN("{\"sockets\":256,\"probes\":2048,\"rate\":1,\"port\":5}"), 0,
	  NB_CTRL_E_FORMAT },
	{ "birthday sockets 1.5", BPLAN("{\"sockets\":1.5,\"probes\":2048,\"rate\":1}"), 0, NB_CTRL_E_RANGE },
	{ "birthday not object", BPLAN("[256]"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "result birthday empty", BRES("{}"), 0, NB_CTRL_E_FORMAT },
	{ "result birthday port 65536", BRES("{\"port\":65536}"), 0, NB_CTRL_E_RANGE },
	{ "result birthday probes -1", BRES("{\"probes\":-1}"), 0, NB_CTRL_E_RANGE },
	{ "result birthday string", BRES("{\"probes\":\"5\"}"), 0, NB_CTRL_E_WRONG_TYPE },
	/* IPv6: also, alt, the families of a pair */
	{ "also not bool", REG(",\"local\":[],\"also\":1"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "also string", REG(",\"local\":[],\"also\":\"true\""), 0, NB_CTRL_E_WRONG_TYPE },
	{ "alt not addr", REGD(",\"keepalive\":15,\"expires\":45,\"alt\":\"x\""), 0, NB_CTRL_E_FORMAT },
	{ "alt no port", REGD(",\"keepalive\":15,\"expires\":45,\"alt\":\"[2001:db8::10]\""), 0,
	  NB_CTRL_E_FORMAT },
	{ "alt number", REGD(",\"keepalive\":15,\"expires\":45,\"alt\":5"), 0, NB_CTRL_E_WRONG_TYPE },
	{ "peer alt not object", PLIST(",\"peers\":[" PEER(",\"reflexive\":\"1.2.3.4:5\",\"alt\":5") "]"), 0,
	  NB_CTRL_E_WRONG_TYPE },
	{ "peer alt no reflexive", PLIST(",\"peers\":[" PEER(",\"reflexive\":\"1.2.3.4:5\",\"alt\":{"
		"\"mapping\":\"none\",\"filtering\":\"unknown\"}") "]"), 0, NB_CTRL_E_MISSING },
	{ "peer alt bad mapping", PLIST(",\"peers\":[" PEER(",\"reflexive\":\"1.2.3.4:5\",\"alt\":{"
		"\"reflexive\":\"[::2]:5\",\"mapping\":\"cone\",\"filtering\":\"unknown\"}") "]"), 0,
	  NB_CTRL_E_ENUM },
	{ "peer alt no filtering", PLIST(",\"peers\":[" PEER(",\"reflexive\":\"1.2.3.4:5\",\"alt\":{"
		"\"reflexive\":\"[::2]:5\",\"mapping\":\"none\"}") "]"), 0, NB_CTRL_E_MISSING },
	{ "family 5", MLIST(",\"pairs\":[" PAIR(",\"measured\":\"direct\",\"ms\":1,\"family\":5") "]"), 0,
	  NB_CTRL_E_RANGE },
	{ "family 0", MLIST(",\"pairs\":[" PAIR(",\"measured\":\"direct\",\"ms\":1,\"family\":0") "]"), 0,
	  NB_CTRL_E_RANGE },
	{ "family 46", MLIST(",\"pairs\":[" PAIR(",\"measured\":\"direct\",\"ms\":1,\"family\":46") "]"), 0,
	  NB_CTRL_E_RANGE },
	{ "family unmeasured", MLIST(",\"pairs\":[" PAIR(",\"family\":6") "]"), 0, NB_CTRL_E_FORMAT },
	{ "family of none", MLIST(",\"pairs\":[" PAIR(",\"measured\":\"none\",\"ms\":1,\"family\":6") "]"),
	  0, NB_CTRL_E_FORMAT },
	{ "plan_family 7", MLIST(",\"pairs\":[" PAIR(",\"plan_family\":7") "]"), 0, NB_CTRL_E_RANGE },
	{ "plan_family string", MLIST(",\"pairs\":[" PAIR(",\"plan_family\":\"6\"") "]"), 0,
	  NB_CTRL_E_WRONG_TYPE },
};

static void test_relay_decode(void **state)
{
	struct nb_ctrl_msg m;
	const char *j;
	struct nb_addr srv = addr("203.0.113.10:3478"), rel = addr("[2001:db8::7]:50000");

	(void)state;
	/* the good forms first (so that each refusal below is of one change) */
	j = RPLAN("{\"alloc\":true" RSRV RUSER RPASS "}");
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	assert_true(m.u.plan.relay.has_relay && m.u.plan.relay.alloc);
	assert_true(nb_addr_equal(&m.u.plan.relay.server, &srv));
	assert_string_equal(m.u.plan.relay.user, "1700003600:" PK43);
	assert_string_equal(m.u.plan.relay.pass, "Ym9ndXMgcGFzc3dvcmQgaGVyZSE=");
	j = RPLAN("{\"alloc\":true" RSRV ",\"user\":\"" U128 "\",\"pass\":\"" P64 "\"}"); /* at the limits */
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	assert_int_equal(strlen(m.u.plan.relay.user), NB_CTRL_RELAY_USER_MAX);
	assert_int_equal(strlen(m.u.plan.relay.pass), NB_CTRL_RELAY_PASS_MAX);
	j = RPLAN("{\"alloc\":false}");
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	assert_true(m.u.plan.relay.has_relay);
	assert_false(m.u.plan.relay.alloc);
	j = RPLAN("{\"alloc\":false,\"future\":1}"); /* unknown fields ignored, as elsewhere */
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	/* the other side's relayed address rides only with alloc false */
	j = RPLAN("{\"alloc\":false,\"relayed\":\"203.0.113.10:3478\"}");
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	assert_true(m.u.plan.relay.has_relayed);
	assert_true(nb_addr_equal(&m.u.plan.relay.relayed, &srv));
	j = RPLAN("{\"alloc\":true" RSRV RUSER RPASS ",\"relayed\":\"203.0.113.10:3478\"}");
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), NB_CTRL_E_FORMAT);
	j = RPLAN("{\"alloc\":false,\"relayed\":\"nowhere\"}");
	assert_true(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)) < 0);
	j = PLAN(RPU CD);
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	assert_false(m.u.plan.relay.has_relay);
	j = RELAYED(RSESS ",\"id\":\"alice\",\"relayed\":\"[2001:db8::7]:50000\"");
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	assert_int_equal(m.type, NB_CTRL_RELAYED);
	assert_string_equal(m.u.relayed.session, "fedcba9876543210");
	assert_string_equal(m.u.relayed.id, "alice");
	assert_true(nb_addr_equal(&m.u.relayed.relayed, &rel));

	j = BPLAN(BGOOD);
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	assert_int_equal(m.u.plan.path, NB_PATH_BIRTHDAY);
	assert_int_equal(m.u.plan.role, NB_ROLE_SPRAY);
	assert_true(m.u.plan.birthday.has);
	assert_int_equal(m.u.plan.birthday.sockets, 256);
	assert_int_equal(m.u.plan.birthday.probes, 2048);
	assert_int_equal(m.u.plan.birthday.rate, 1000);
	j = BRES("{\"sockets\":12}");
	assert_int_equal(nb_ctrl_decode(&m, (const uint8_t *)j, strlen(j)), (ssize_t)strlen(j));
	assert_true(m.u.result.birthday.has);
	assert_int_equal(m.u.result.birthday.sockets, 12);
	assert_int_equal(m.u.result.birthday.probes, 0);
	assert_int_equal(m.u.result.birthday.port, 0);

	for (size_t i = 0; i < sizeof(bad_relay) / sizeof(bad_relay[0]); i++)
		check_bad(&bad_relay[i]);
}

/* The encoder refuses a relay the decoder would refuse. */
static void test_relay_encode_invalid(void **state)
{
	struct nb_ctrl_msg s[MAX_SAMPLES], m;
	uint8_t buf[NB_CTRL_MAX_DATAGRAM + 1];
	ssize_t len;
	size_t n;

	(void)state;
	n = make_samples(s);
	assert_true(n > 32);
	assert_int_equal(s[31].type, NB_CTRL_PLAN);
	assert_true(s[31].u.plan.relay.alloc);
	assert_true(nb_ctrl_encode(&s[31], buf, sizeof(buf)) > 0);

	m = s[31];
	SET(m.u.plan.relay.user, "1:a b");
	assert_int_equal(nb_ctrl_encode(&m, buf, sizeof(buf)), NB_CTRL_E_FORMAT);
	m = s[31];
	m.u.plan.relay.user[0] = '\0';
	assert_int_equal(nb_ctrl_encode(&m, buf, sizeof(buf)), NB_CTRL_E_LENGTH);
	m = s[31];
	memset(m.u.plan.relay.user, 'u', sizeof(m.u.plan.relay.user)); /* unterminated */
	assert_int_equal(nb_ctrl_encode(&m, buf, sizeof(buf)), NB_CTRL_E_LENGTH);
	m = s[31];
	memset(m.u.plan.relay.pass, 'p', sizeof(m.u.plan.relay.pass)); /* unterminated */
	assert_int_equal(nb_ctrl_encode(&m, buf, sizeof(buf)), NB_CTRL_E_LENGTH);
	m = s[31];
	SET(m.u.plan.relay.pass, "a\tb");
	assert_int_equal(nb_ctrl_encode(&m, buf, sizeof(buf)), NB_CTRL_E_FORMAT);
	m = s[31];
	m.u.plan.relay.server.port = 0;
	assert_int_equal(nb_ctrl_encode(&m, buf, sizeof(buf)), NB_CTRL_E_FORMAT);
	m = s[31];
	m.u.plan.relay.server.family = NB_AF_NONE;
	assert_int_equal(nb_ctrl_encode(&m, buf, sizeof(buf)), NB_CTRL_E_FORMAT);
	/* alloc false: server and credentials are not written, whatever they hold */
	m = s[31];
	m.u.plan.relay.alloc = false;
	SET(m.u.plan.relay.user, "1:a b");
	len = nb_ctrl_encode(&m, buf, sizeof(buf) - 1);
	assert_true(len > 0);
	buf[len] = '\0';
	assert_null(strstr((const char *)buf, "\"user\""));
	assert_null(strstr((const char *)buf, "\"server\""));
	assert_non_null(strstr((const char *)buf, "\"relay\":{\"alloc\":false}"));
	/* relayed: an address without a family or port */
	for (size_t i = 0; i < n; i++) {
		if (s[i].type != NB_CTRL_RELAYED)
			continue;
		m = s[i];
		m.u.relayed.relayed.port = 0;
		assert_int_equal(nb_ctrl_encode(&m, buf, sizeof(buf)), NB_CTRL_E_FORMAT);
		m = s[i];
		m.u.relayed.relayed.family = NB_AF_NONE;
		assert_int_equal(nb_ctrl_encode(&m, buf, sizeof(buf)), NB_CTRL_E_FORMAT);
		m = s[i];
		SET(m.u.relayed.session, "fedcba98765432");
		assert_int_equal(nb_ctrl_encode(&m, buf, sizeof(buf)), NB_CTRL_E_LENGTH);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vocab),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_roundtrip_all),
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_decode_handwritten),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_guard_page),
		cmocka_unit_test(test_encode_nospace),
		cmocka_unit_test(test_encode_invalid),
		cmocka_unit_test(test_pagination),
		cmocka_unit_test(test_pagination_walk),
		cmocka_unit_test(test_explain),
		cmocka_unit_test(test_peek_tx),
		cmocka_unit_test(test_relay_decode),
		cmocka_unit_test(test_relay_encode_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
