/* tests/fuzz/fuzz_punch.c - libFuzzer target for the punch state machine
 * (peer/punch.h) in every role, birthday spray and probe included: a plan
 * chosen by the input, then a sequence of datagrams (raw, or STUN checks and
 * answers built with the session's key and username), confirms and clock
 * steps, the machine polled dry after each.
 *
 * Input:
 *   header  [role][sockets][probes][rate hi][rate lo][delay][deadline][variant]
 *           role % 8: dial listen punch prime spray probe relay none;
 *           sockets 1..16, probes 1..64, rate 1..10000 per s;
 *           delay 0 (< 128) or (b - 128) x 8 ms; deadline 20 + b x 40 ms;
 *           variant bits 0-2 the candidate set, bit 3 fast params,
 *           bits 4-7 folded into the seed.
 *   records [kind][dt][sock][from][len][len bytes]...
 *           dt: the clock moves dt ms (< 128) or (dt - 127) x 64 ms first;
 *           dt 0: a burst, no poll after this record (answers pile up);
 *           kind % 8 (enum rec), kind >> 3 a variant of a built message
 *           (0-3 valid, 4 wrong key, 5 wrong username, 6 no FINGERPRINT,
 *           7 one byte flipped; +8 an extra attribute, +16 no
 *           XOR-MAPPED-ADDRESS in an answer);
 *           "ref" = the datagram the machine sent bytes[0] datagrams ago
 *           (kept in a ring of RING); sock & 0x80 = ref's socket, else
 *           sock % (bd.sockets + 2), 0x7f = UINT32_MAX;
 *           from % 8 picks the source (enum src).
 *
 * Promises, checked after every record; a broken one is __builtin_trap():
 *  - state moves only WAITING -> CHECKING -> CONNECTED | FAILED (WAITING
 *    may skip CHECKING), never out of CONNECTED or FAILED; CHECKING and
 *    FAILED only in poll, not before plan delay / deadline; CONNECTED only
 *    in input or confirm;
 *  - CONNECTED by input only on a success response whose transaction ID,
 *    source and socket are those of a check the machine sent (harness
 *    record); by confirm only from a source whose check was accepted; then
 *    remote and remote_sock never change, remote_sock <= bd.sockets (0 in a
 *    role that is not spray), probe: bd.port == remote.port;
 *  - a dropped datagram or refused confirm changes nothing but a drop
 *    counter; a drop code is one of enum nb_punch_drop;
 *  - every datagram polled: 0 < len <= 256, a valid STUN Binding message
 *    with our key's MESSAGE-INTEGRITY and a FINGERPRINT; sock <= bd.sockets,
 *    0 outside spray; nothing in FAILED;
 *      answers: to (and on the socket of) a check the machine accepted, with
 *      that check's ID and XOR-MAPPED-ADDRESS = its source;
 *      checks (our USERNAME) only in WAITING/CHECKING, to a plan candidate
 *      (CHECKING, non-birthday roles, socket 0) or a source whose check was
 *      accepted on that socket; spray checks (ID kind 0x40) from socket
 *      1..sockets to the first public candidate; probes (ID kind 0x80) from
 *      socket 0 to the public candidate's IP, ports >= 1024, never twice,
 *      bd.sent counting them, <= bd.probes;
 *  - at most MAX_TX datagrams per dry poll; then nb_punch_deadline() > now
 *    or UINT64_MAX (nothing left due at now);
 *  - once CONNECTED, bd.port, once known (non-zero), never changes;
 *  - tables within their bounds; heard_on() only for accepted sources. */
#include <stdint.h>
#include <string.h>

#include "peer/punch.h"

#ifdef NB_FUZZ_PUNCH_TRACE
#include <stdio.h>
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

#define KEY "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define BADKEY "f123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define USER "fedcba9876543210:fuzz"
#define BADUSER "fedcba9876543210:fuzy"
#define T0 1000000u
#define HDR_LEN 8
#define REC_HDR 5
#define RING 64
#define MAX_LIST 512
#define MAX_TX 20000
#define TID_SPRAY 0x40
#define TID_PROBE 0x80

enum rec {
	REC_RAW = 0,    /* the bytes as a datagram */
	REC_CHECK,      /* a Binding request, ID = bytes[0..12) */
	REC_ANSWER,     /* a Binding success, ID = bytes[0..12) */
	REC_ANSWER_REF, /* a Binding success to ref (an answer to our check) */
	REC_CHECK_REF,  /* a Binding request with ref's ID (reflection, replay) */
	REC_REFLECT,    /* the last datagram the machine sent, byte for byte */
	REC_CONFIRM,    /* nb_punch_confirm_on(sock, from) */
	REC_TICK,       /* the clock only */
};

enum src {
	SRC_PUB = 0, /* the peer's public candidate */
	SRC_LAN,     /* its LAN candidate */
	SRC_PUB_PORT, /* the public IP, port 40000 + (from >> 3) */
	SRC_ATTACKER,
	SRC_V6,
	SRC_REF,      /* where ref went */
	SRC_REF_NEAR, /* ref's IP, port ^ (1 + (from >> 3)) */
	SRC_PUB2,
};

#define A4(a, b, c, d, p) { .family = NB_AF_INET, .port = (p), .ip = { a, b, c, d } }
static const struct nb_addr PUB = A4(198, 51, 100, 7, 40000), PUB2 = A4(198, 51, 100, 8, 40000),
			    LAN = A4(192, 168, 3, 2, 5000), NOPORT = A4(198, 51, 100, 9, 0),
			    ATTACKER = A4(203, 0, 113, 66, 6666), ME = A4(203, 0, 113, 104, 50000),
			    V6 = { .family = NB_AF_INET6, .port = 40001,
				   .ip = { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 } };

static const enum nb_role ROLES[8] = { NB_ROLE_DIAL,  NB_ROLE_LISTEN, NB_ROLE_PUNCH, NB_ROLE_PRIME,
				       NB_ROLE_SPRAY, NB_ROLE_PROBE,  NB_ROLE_RELAY, NB_ROLE_NONE };

/* Candidate sets: variant & 7 (a NULL ends one). */
static const struct nb_addr *const CANDS[8][5] = {
	{ &PUB, &LAN, NULL },
	{ &LAN, &PUB, NULL },
	{ &PUB, NULL },
	{ &LAN, NULL }, /* birthday: no public address */
	{ &V6, &PUB, &LAN, NULL },
	{ &PUB, &PUB, &NOPORT, &PUB2, NULL },
	{ NULL },
	{ &PUB2, &PUB, &LAN, &V6, NULL },
};

struct sent {
	uint8_t tid[NB_STUN_TID_LEN];
	struct nb_addr to; /* a check's destination, or an accepted check's source */
	uint32_t sock;
};

static struct {
	struct nb_punch pu, before;
	struct nb_ctrl_plan plan;
	struct sent ring[RING]; /* every datagram sent, newest last */
	size_t n_ring;
	struct sent checks[MAX_LIST]; /* distinct checks sent */
	size_t n_checks;
	bool checks_full;
	struct sent heard[MAX_LIST]; /* checks accepted (input returned 0) */
	size_t n_heard;
	bool heard_full;
	uint8_t probed[65536 / 8];
	uint32_t n_probes;
	uint8_t last[256]; /* the last datagram sent */
	size_t last_len;
	bool connected;
	struct nb_addr remote;
	uint32_t remote_sock;
	uint16_t port; /* bd.port once CONNECTED and known */
} h;

static bool find(const struct sent *l, size_t n, const uint8_t *tid, const struct nb_addr *a,
		 uint32_t sock)
{
	for (size_t i = 0; i < n; i++)
		if ((tid == NULL || memcmp(l[i].tid, tid, NB_STUN_TID_LEN) == 0) &&
		    nb_addr_equal(&l[i].to, a) && l[i].sock == sock)
			return true;
	return false;
}

static void add(struct sent *l, size_t *n, bool *full, const uint8_t *tid, const struct nb_addr *a,
		uint32_t sock)
{
	if (find(l, *n, tid, a, sock))
		return;
	if (*n == MAX_LIST) {
		*full = true;
		return;
	}
	memcpy(l[*n].tid, tid, NB_STUN_TID_LEN);
	l[*n].to = *a;
	l[*n].sock = sock;
	(*n)++;
}

static bool in_plan(const struct nb_addr *a)
{
	for (size_t i = 0; i < h.plan.n_candidates; i++)
		if (h.plan.candidates[i].port != 0 && nb_addr_equal(&h.plan.candidates[i], a))
			return true;
	return false;
}

static void check_tx(const struct nb_punch_tx *tx)
{
	const struct nb_punch *pu = &h.pu;
	struct nb_stun_msg m;
	struct sent *r;

	CHECK(pu->state != NB_PUNCH_FAILED);
	CHECK(tx->len > 0 && tx->len <= 256 && tx->len <= sizeof(pu->out));
	CHECK(tx->bytes == pu->out);
	CHECK(tx->sock <= pu->bd.sockets);
	CHECK(pu->role == NB_ROLE_SPRAY || tx->sock == 0);
	CHECK(nb_stun_decode(&m, tx->bytes, tx->len) == (ssize_t)tx->len);
	CHECK(!m.classic && m.method == NB_STUN_METHOD_BINDING);
	CHECK(m.present & NB_STUN_HAS_FINGERPRINT);
	CHECK(m.present & NB_STUN_HAS_INTEGRITY);
	CHECK(nb_stun_check_integrity(&m, tx->bytes, tx->len, (const uint8_t *)KEY, NB_PUNCH_KEY_LEN) == 0);

	r = &h.ring[h.n_ring++ % RING];
	memcpy(r->tid, m.tid, NB_STUN_TID_LEN);
	r->to = tx->to;
	r->sock = tx->sock;
	memcpy(h.last, tx->bytes, tx->len);
	h.last_len = tx->len;

	if (!tx->is_check) {
		CHECK(m.cls == NB_STUN_CLASS_SUCCESS);
		CHECK(m.present & NB_STUN_HAS_XOR_MAPPED);
		CHECK(nb_addr_equal(&m.xor_mapped, &tx->to));
		CHECK(h.heard_full || find(h.heard, h.n_heard, m.tid, &tx->to, tx->sock));
		return;
	}
	CHECK(m.cls == NB_STUN_CLASS_REQUEST);
	CHECK((m.present & NB_STUN_HAS_USERNAME) && m.username_len == strlen(USER) &&
	      memcmp(m.username, USER, strlen(USER)) == 0);
	CHECK(pu->state == NB_PUNCH_WAITING || pu->state == NB_PUNCH_CHECKING);

	/* The ID layout of punch.h: seed bytes 0..7 and 11, kind in 8, value 9..10. */
	uint8_t kind = m.tid[8] ^ pu->seed[8];
	uint16_t v = (uint16_t)(((m.tid[9] ^ pu->seed[9]) << 8) | (m.tid[10] ^ pu->seed[10]));
	bool bday = memcmp(m.tid, pu->seed, 8) == 0 && m.tid[11] == pu->seed[11] &&
		    (kind == TID_SPRAY || kind == TID_PROBE);

	if (bday && kind == TID_PROBE) {
		CHECK(pu->role == NB_ROLE_PROBE && pu->state == NB_PUNCH_CHECKING);
		CHECK(tx->sock == 0);
		CHECK(tx->to.family == pu->bd.to.family &&
		      memcmp(tx->to.ip, pu->bd.to.ip, sizeof(tx->to.ip)) == 0);
		CHECK(tx->to.port == v && v >= NB_BDAY_PORT_MIN);
		CHECK(!((h.probed[v >> 3] >> (v & 7)) & 1)); /* never twice */
		h.probed[v >> 3] |= (uint8_t)(1u << (v & 7));
		h.n_probes++;
		CHECK(pu->bd.sent == h.n_probes);
		CHECK(pu->bd.sent <= pu->bd.probes);
	} else if (bday) {
		CHECK(pu->role == NB_ROLE_SPRAY && pu->state == NB_PUNCH_CHECKING);
		CHECK(v >= 1 && v <= pu->bd.sockets && tx->sock == v);
		CHECK(nb_addr_equal(&tx->to, &pu->bd.to) && in_plan(&tx->to));
	} else {
		bool plan_ok = tx->sock == 0 && pu->state == NB_PUNCH_CHECKING && in_plan(&tx->to) &&
			       pu->role != NB_ROLE_SPRAY && pu->role != NB_ROLE_PROBE;
		CHECK(plan_ok || h.heard_full || find(h.heard, h.n_heard, NULL, &tx->to, tx->sock));
	}
	add(h.checks, &h.n_checks, &h.checks_full, m.tid, &tx->to, tx->sock);
}

static void check_tables(void)
{
	const struct nb_punch *pu = &h.pu;

	CHECK(pu->state <= NB_PUNCH_FAILED);
	CHECK(pu->n_targets <= NB_PUNCH_MAX_TARGETS && pu->n_plan <= pu->n_targets);
	CHECK(pu->n_ans <= NB_PUNCH_MAX_ANSWERS);
	CHECK(pu->n_seen <= NB_PUNCH_MAX_SEEN && pu->seen_next < NB_PUNCH_MAX_SEEN);
	CHECK(pu->n_targets == 0 || pu->rr < pu->n_targets);
	CHECK(pu->bd.sent <= pu->bd.probes);
	CHECK(pu->bd.sprayed <= pu->bd.sockets);
	if (pu->state == NB_PUNCH_CONNECTED) {
		if (!h.connected) {
			h.connected = true;
			h.remote = pu->remote;
			h.remote_sock = pu->remote_sock;
		}
		CHECK(nb_addr_equal(&h.remote, &pu->remote) && h.remote_sock == pu->remote_sock);
		CHECK(pu->remote_sock <= pu->bd.sockets);
		CHECK(pu->role == NB_ROLE_SPRAY || pu->remote_sock == 0);
		CHECK(pu->role != NB_ROLE_PROBE || pu->bd.port == pu->remote.port);
		CHECK(h.port == 0 || pu->bd.port == h.port);
		h.port = pu->bd.port;
	}
	CHECK(!h.connected || pu->state == NB_PUNCH_CONNECTED);
}

/* The state moves a step of the machine may make. */
static bool may_move(enum nb_punch_state from, enum nb_punch_state to)
{
	if (from == to)
		return true;
	switch (from) {
	case NB_PUNCH_WAITING:
		return true;
	case NB_PUNCH_CHECKING:
		return to == NB_PUNCH_CONNECTED || to == NB_PUNCH_FAILED;
	default:
		return false;
	}
}

static void poll_dry(uint64_t now)
{
	struct nb_punch_tx tx;
	size_t n = 0;
	uint64_t d;

	for (;;) {
		enum nb_punch_state s = h.pu.state;
		int rc = nb_punch_poll(&h.pu, now, &tx);
		CHECK(rc == 0 || rc == 1);
		CHECK(may_move(s, h.pu.state));
		CHECK(h.pu.state != NB_PUNCH_CONNECTED || s == NB_PUNCH_CONNECTED);
		if (h.pu.state != s && h.pu.state == NB_PUNCH_FAILED)
			CHECK(now >= h.pu.deadline && h.pu.deadline == T0 + h.plan.deadline_ms);
		if (h.pu.state != s && h.pu.state == NB_PUNCH_CHECKING)
			CHECK(now >= T0 + h.plan.delay_ms);
		if (rc == 0)
			break;
		check_tx(&tx);
		CHECK(++n < MAX_TX);
	}
	d = nb_punch_deadline(&h.pu);
	CHECK(d > now || d == UINT64_MAX);
	check_tables();
}

/* A Binding request or success under variant v; 0 when it cannot be built. */
static size_t build(uint8_t *b, size_t cap, bool request, const uint8_t *tid, uint8_t v,
		    const uint8_t *pl, size_t len)
{
	struct nb_stun_enc e;
	const char *user = (v & 7) == 5 ? BADUSER : USER;
	const char *key = (v & 7) == 4 ? BADKEY : KEY;
	size_t n;

	if (nb_stun_enc_init(&e, b, cap, request ? NB_STUN_BINDING_REQUEST : NB_STUN_BINDING_SUCCESS,
			     tid, false) != 0)
		return 0;
	if (request || (v & 7) == 5)
		CHECK(nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, user, strlen(user)) == 0);
	if (!request && !(v & 16))
		CHECK(nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &ME) == 0);
	if (v & 8)
		CHECK(nb_stun_enc_attr(&e, 0x8055, "fuzz", 4) == 0); /* comprehension-optional */
	CHECK(nb_stun_enc_integrity(&e, (const uint8_t *)key, NB_PUNCH_KEY_LEN) == 0);
	if ((v & 7) != 6)
		CHECK(nb_stun_enc_fingerprint(&e) == 0);
	n = nb_stun_enc_len(&e);
	if ((v & 7) == 7) {
		size_t pos = len > 12 ? pl[12] % n : 20 % n;
		b[pos] ^= len > 13 ? (uint8_t)(pl[13] | 1) : 1;
	}
	return n;
}

static const struct sent *ref_of(const uint8_t *pl, size_t len)
{
	size_t n = h.n_ring < RING ? h.n_ring : RING;
	size_t back = len > 0 ? pl[0] % (n ? n : 1) : 0;

	if (n == 0)
		return NULL;
	return &h.ring[(h.n_ring - 1 - back) % RING];
}

static struct nb_addr source(uint8_t f, const struct sent *ref)
{
	struct nb_addr a;

	switch (f % 8) {
	case SRC_PUB: return PUB;
	case SRC_LAN: return LAN;
	case SRC_PUB_PORT:
		a = PUB;
		a.port = (uint16_t)(40000 + (f >> 3));
		return a;
	case SRC_ATTACKER: return ATTACKER;
	case SRC_V6: return V6;
	case SRC_REF: return ref ? ref->to : PUB;
	case SRC_REF_NEAR:
		a = ref ? ref->to : PUB;
		a.port ^= (uint16_t)(1 + (f >> 3));
		return a;
	default: return PUB2;
	}
}

static void record(uint8_t kind, uint8_t sockb, uint8_t fromb, const uint8_t *pl, size_t len,
		   uint64_t now)
{
	const struct sent *ref = ref_of(pl, len);
	struct nb_addr from = source(fromb, ref);
	uint32_t sock;
	uint8_t b[512], tid[NB_STUN_TID_LEN] = { 0 };
	const uint8_t *dgram = b;
	size_t n = 0;
	enum rec k = (enum rec)(kind % 8);
	uint8_t v = kind >> 3;
	int rc;

	if ((sockb & 0x80) && ref != NULL)
		sock = ref->sock;
	else if (sockb == 0x7f)
		sock = UINT32_MAX;
	else
		sock = sockb % (h.pu.bd.sockets + 2);

	memcpy(tid, pl, len < sizeof(tid) ? len : sizeof(tid));
	switch (k) {
	case REC_RAW:
		dgram = pl;
		n = len;
		break;
	case REC_CHECK:
	case REC_ANSWER:
		n = build(b, sizeof(b), k == REC_CHECK, tid, v, pl, len);
		break;
	case REC_ANSWER_REF:
	case REC_CHECK_REF:
		if (ref != NULL)
			memcpy(tid, ref->tid, sizeof(tid));
		n = build(b, sizeof(b), k == REC_CHECK_REF, tid, v, pl, len);
		break;
	case REC_REFLECT:
		dgram = h.last;
		n = h.last_len;
		break;
	case REC_CONFIRM:
	case REC_TICK:
		break;
	}
	if (k == REC_TICK)
		return;

	memcpy(&h.before, &h.pu, sizeof(h.pu));
	if (k == REC_CONFIRM)
		rc = sock == 0 && (fromb & 0x40) ? nb_punch_confirm(&h.pu, &from, now)
						 : nb_punch_confirm_on(&h.pu, sock, &from, now);
	else if (sock == 0)
		rc = nb_punch_input(&h.pu, dgram, n, &from, now);
	else
		rc = nb_punch_input_on(&h.pu, sock, dgram, n, &from, now);

	CHECK(may_move(h.before.state, h.pu.state));
	if (rc < 0) {
		CHECK(k == REC_CONFIRM ? rc == -1 : rc >= -NB_PUNCH_DROP_COUNT);
		memcpy(h.before.drops, h.pu.drops, sizeof(h.pu.drops));
		CHECK(memcmp(&h.before, &h.pu, sizeof(h.pu)) == 0);
		return;
	}
	CHECK(rc == 0);
	CHECK(h.pu.state == h.before.state || h.pu.state == NB_PUNCH_CONNECTED);
	if (k == REC_CONFIRM) {
		CHECK(h.pu.state == NB_PUNCH_CONNECTED && h.before.state != NB_PUNCH_CONNECTED);
		CHECK(h.heard_full || find(h.heard, h.n_heard, NULL, &from, sock));
		CHECK(nb_addr_equal(&h.pu.remote, &from) && h.pu.remote_sock == sock);
		return;
	}

	struct nb_stun_msg m;
	CHECK(nb_stun_decode(&m, dgram, n) == (ssize_t)n);
	if (m.cls == NB_STUN_CLASS_REQUEST) {
		CHECK(h.pu.state == h.before.state);
		add(h.heard, &h.n_heard, &h.heard_full, m.tid, &from, sock);
	} else {
		CHECK(m.cls == NB_STUN_CLASS_SUCCESS);
		if (h.pu.state != h.before.state) {
			CHECK(h.checks_full || find(h.checks, h.n_checks, m.tid, &from, sock));
			CHECK(nb_addr_equal(&h.pu.remote, &from) && h.pu.remote_sock == sock);
		}
	}
	CHECK(!nb_punch_heard_on(&h.pu, sock, &from) || h.heard_full ||
	      find(h.heard, h.n_heard, NULL, &from, sock));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct nb_punch_params fast = { .ta_ms = 10, .rto_ms = 20, .rto_max_ms = 80,
						     .prime_checks = 1 };
	uint8_t seed[NB_STUN_TID_LEN] = { 0x5e, 0xed, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	uint64_t now = T0;
	size_t off = HDR_LEN;
	uint8_t variant;

	if (size < HDR_LEN)
		return 0;
	memset(&h, 0, sizeof(h));
	variant = data[7];
	h.plan.role = ROLES[data[0] % 8];
	h.plan.path = h.plan.role == NB_ROLE_SPRAY || h.plan.role == NB_ROLE_PROBE ? NB_PATH_BIRTHDAY
										  : NB_PATH_DIRECT;
	h.plan.birthday.has = true;
	h.plan.birthday.sockets = 1u + data[1] % 16u;
	h.plan.birthday.probes = 1u + data[2] % 64u;
	h.plan.birthday.rate = 1u + (((uint32_t)data[3] << 8 | data[4]) % 10000u);
	h.plan.delay_ms = data[5] < 128 ? 0u : (data[5] - 128u) * 8u;
	h.plan.deadline_ms = 20u + data[6] * 40u;
	for (size_t i = 0; CANDS[variant & 7][i] != NULL; i++)
		h.plan.candidates[h.plan.n_candidates++] = *CANDS[variant & 7][i];
	memcpy(h.plan.session, "fedcba9876543210", 17);
	memcpy(h.plan.username, USER, sizeof(USER));
	seed[11] ^= (uint8_t)(variant >> 4);
	CHECK(nb_punch_init(&h.pu, (variant & 8) ? &fast : NULL, &h.plan, KEY, seed, now) == 0);
	CHECK(h.pu.state == (h.plan.delay_ms > 0 ? NB_PUNCH_WAITING : NB_PUNCH_CHECKING) ||
	      h.pu.state == NB_PUNCH_FAILED);
	check_tables();
	poll_dry(now);

	while (size - off >= REC_HDR) {
		uint8_t kind = data[off], dt = data[off + 1], sockb = data[off + 2], fromb = data[off + 3];
		size_t len = data[off + 4];

		off += REC_HDR;
		if (len > size - off)
			len = size - off;
		now += dt < 128 ? dt : (uint64_t)(dt - 127) * 64u;
		record(kind, sockb, fromb, data + off, len, now);
		off += len;
		check_tables();
		if (dt != 0)
			poll_dry(now);
	}
	poll_dry(now);
#ifdef NB_FUZZ_PUNCH_TRACE
	fprintf(stderr, "role %s state %s sent %u sprayed %u checks %zu reason %s\n",
		nb_role_to_string(h.plan.role), nb_punch_state_name(h.pu.state), h.pu.bd.sent,
		h.pu.bd.sprayed, h.n_checks, h.pu.reason);
#endif
	return 0;
}
