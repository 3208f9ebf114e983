/* tests/fuzz/fuzz_plink.c - libFuzzer target for the broker's sealed control
 * sessions (broker/plink.c), with real peers (peer/blink.c) talking to it.
 *
 * One broker (fixed key, MAXS sessions, the default idle time) and NPEER
 * peers (peers 0 and 1 share one key at two addresses, as two processes of
 * one user; peer 2 has its own). The input is a program of byte-coded
 * operations (op = byte % NOPS, then its operands; a missing byte reads 0):
 *
 *    0 START k            nb_blink_start (a handshake, or a rekey)
 *    1 SEND k len bytes   nb_blink_send
 *    2 PUMP k flags       poll peer k; its frames go to the broker, the
 *                         answers back (flags bit 0: lose the answers)
 *    3 TIME b             now += b * b * 16 ms (up to ~17 min)
 *    4 EXPIRE b           nb_plink_expire(now, b % 8)
 *    5 DEADLINE           jump to nb_plink_next_deadline and expire there
 *    6 SEAL k to len bytes  nb_plink_seal to peer k's key; the frame goes to
 *                         every peer with that key that owns it
 *    7 RAW mode from len bytes  arbitrary bytes to the broker: as they are,
 *                         as an initiation, as a sealed frame under a live
 *                         index, or under a live index with a small counter
 *    8 MUTATE pos xor from cut  the last peer frame, one byte changed and
 *                         maybe cut, to the broker from any address
 *    9 REPLAY from        the last peer frame again
 *   10 BLINKRAW k from len bytes  arbitrary bytes to peer k
 *   11 RESTART            the broker restarts (same key, no sessions)
 *   12 PUMPALL            PUMP every peer
 *
 * Promises (any broken one is __builtin_trap()): no crash, no leak (ASan);
 * the broker's stats stay consistent (sessions <= max, sessions ==
 * handshakes - evicted - expired, live keys <= sessions, confirmed <=
 * handshakes); a response is 57 bytes; a frame the broker opens came from
 * one of the peers' keys; a sealed reply that a peer opens carries exactly
 * the bytes sealed; expire() frees nothing before next_deadline() and
 * something at it; a peer's poll gives nothing before its deadline. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "broker/plink.h"
#include "common/bytes.h"
#include "peer/blink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

#define NPEER 3
#define MAXS 4
#define NOPS 13
#define MAX_OPS 96

struct rd {
	const uint8_t *p;
	size_t n;
};

static uint8_t get(struct rd *r)
{
	uint8_t b = 0;

	if (r->n > 0) {
		b = r->p[0];
		r->p++;
		r->n--;
	}
	return b;
}

/* Up to `want` bytes (fewer at the end of the input). */
static size_t take(struct rd *r, size_t want, const uint8_t **ret)
{
	size_t n = want < r->n ? want : r->n;

	*ret = r->p;
	r->p += n;
	r->n -= n;
	return n;
}

static bool ready;
static uint8_t bpriv[NB_KEY_LEN], bpub[NB_KEY_LEN], ppriv[NPEER][NB_KEY_LEN], ppub[NPEER][NB_KEY_LEN];
static struct nb_addr baddr, paddr[NPEER + 1]; /* paddr[NPEER]: nobody's */
static struct nb_plink_config cfg;
static struct nb_plink *pl;
static struct nb_blink bl[NPEER];
static uint64_t now;
static uint8_t last[NB_SEAL_MAX_DATAGRAM];
static size_t last_len;
static int last_from = -1;
static uint8_t buf[NB_SEAL_MAX_DATAGRAM], out[NB_SEAL_MAX_DATAGRAM], bout[NB_SEAL_MAX_DATAGRAM];

static void setup_once(void)
{
	for (int i = 0; i < NB_KEY_LEN; i++) {
		bpriv[i] = (uint8_t)(0xB0 + i * 3);
		ppriv[0][i] = (uint8_t)(0x11 + i * 5);
		ppriv[2][i] = (uint8_t)(0x22 + i * 7);
	}
	memcpy(ppriv[1], ppriv[0], NB_KEY_LEN); /* one key, two processes */
	CHECK(nb_key_public(bpriv, bpub) == 0);
	for (int k = 0; k < NPEER; k++)
		CHECK(nb_key_public(ppriv[k], ppub[k]) == 0);
	CHECK(nb_addr_parse("198.51.100.1:3478", false, &baddr) == 0);
	CHECK(nb_addr_parse("192.0.2.1:4000", false, &paddr[0]) == 0);
	CHECK(nb_addr_parse("192.0.2.1:4001", false, &paddr[1]) == 0);
	CHECK(nb_addr_parse("203.0.113.9:4000", false, &paddr[2]) == 0);
	CHECK(nb_addr_parse("203.0.113.66:666", false, &paddr[3]) == 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_sessions = MAXS;
	cfg.idle_ms = NB_PLINK_DEFAULT_IDLE_MS;
	memcpy(cfg.priv, bpriv, NB_KEY_LEN);
	for (int i = 0; i < NB_SIPHASH_KEY_LEN; i++)
		cfg.hash_key[i] = (uint8_t)i;
	ready = true;
}

static void check_stats(void)
{
	struct nb_plink_stats st;

	nb_plink_get_stats(pl, &st);
	CHECK(st.sessions <= MAXS);
	CHECK(st.live_keys <= st.sessions);
	CHECK(st.handshakes >= st.evicted + st.expired);
	CHECK(st.sessions == st.handshakes - st.evicted - st.expired);
	CHECK(st.confirmed <= st.handshakes);
	if (st.sessions == 0)
		CHECK(nb_plink_next_deadline(pl) == UINT64_MAX);
}

static bool known_key(const uint8_t *key)
{
	for (int k = 0; k < NPEER; k++)
		if (memcmp(key, ppub[k], NB_KEY_LEN) == 0)
			return true;
	return false;
}

/* A frame to the broker from paddr[from]; answers go to peer `to` (or
 * nobody, -1). */
static void to_broker(const uint8_t *f, size_t len, int from, int to)
{
	const uint8_t *key = NULL;
	ssize_t r;

	if (len == 0)
		return;
	if (f[0] == NB_NOISE_TYPE_INIT) {
		r = nb_plink_handshake(pl, f, len, &paddr[from], now, out, sizeof(out));
		if (r > 0) {
			CHECK(r == NB_NOISE_RESP_MIN && out[0] == NB_NOISE_TYPE_RESP);
			if (to >= 0)
				CHECK(nb_blink_input(&bl[to], out, (size_t)r, &baddr, now, bout, sizeof(bout)) <= 0);
		}
	} else {
		r = nb_plink_open(pl, f, len, &paddr[from], now, out, sizeof(out), &key);
		if (r >= 0) {
			CHECK(key != NULL && known_key(key));
			CHECK(len >= NB_SEAL_OVERHEAD && (size_t)r == len - NB_SEAL_OVERHEAD);
		} else if (r == NB_PLINK_E_UNKNOWN) {
			uint8_t hint[NB_PLINK_UNKNOWN_LEN];
			CHECK(nb_plink_unknown_hint(f, len, hint) == NB_PLINK_UNKNOWN_LEN);
			CHECK(hint[0] == NB_PLINK_UNKNOWN_TYPE && memcmp(hint + 1, f + 1, 4) == 0);
			if (to >= 0)
				CHECK(nb_blink_input(&bl[to], hint, sizeof(hint), &baddr, now, bout, sizeof(bout)) <= 0);
		}
	}
	check_stats();
}

static void pump(int k, bool lose)
{
	struct nb_blink_tx tx;

	for (int i = 0; i < 16; i++) {
		uint64_t d = nb_blink_deadline(&bl[k]);
		int r = nb_blink_poll(&bl[k], now, &tx);
		if (now < d)
			CHECK(r == 0);
		if (r != 1)
			return;
		CHECK(tx.len > 0 && tx.len <= NB_SEAL_MAX_DATAGRAM);
		memcpy(last, tx.bytes, tx.len);
		last_len = tx.len;
		last_from = k;
		to_broker(last, last_len, k, lose ? -1 : k);
	}
}

static void deadline(void)
{
	uint64_t d = nb_plink_next_deadline(pl);

	if (d == UINT64_MAX)
		return;
	if (d > now) {
		CHECK(nb_plink_expire(pl, d - 1, SIZE_MAX) == 0);
		now = d;
	}
	CHECK(nb_plink_expire(pl, now, 1) == 1);
	check_stats();
}

static void seal_to(struct rd *r)
{
	int k = get(r) % NPEER, tsel = get(r) % 4;
	const struct nb_addr *to = tsel == 3 ? NULL : &paddr[tsel == 0 ? k : tsel == 1 ? (k + 1) % NPEER : NPEER];
	const uint8_t *msg;
	size_t n = take(r, get(r), &msg);
	ssize_t s = nb_plink_seal(pl, ppub[k], to, msg, n, buf, sizeof(buf), now);

	check_stats();
	if (s < 0)
		return;
	CHECK((size_t)s == NB_SEAL_OVERHEAD + n);
	for (int j = 0; j < NPEER; j++) {
		ssize_t o;
		if (memcmp(ppub[j], ppub[k], NB_KEY_LEN) != 0 || !nb_blink_owns(&bl[j], buf, (size_t)s))
			continue;
		o = nb_blink_input(&bl[j], buf, (size_t)s, &baddr, now, bout, sizeof(bout));
		CHECK(o < 0 || ((size_t)o == n && memcmp(bout, msg, n) == 0));
	}
}

static void raw_to_broker(struct rd *r)
{
	int mode = get(r) % 4, from = get(r) % (NPEER + 1), who = get(r) % NPEER;
	const uint8_t *p;
	size_t n = take(r, get(r) * 5u, &p);

	if (n > sizeof(buf))
		n = sizeof(buf);
	memcpy(buf, p, n);
	if (mode >= 1 && n > 0)
		buf[0] = mode == 1 ? NB_NOISE_TYPE_INIT : NB_SEAL_TYPE;
	if (mode >= 2 && n >= 5 && bl[who].have_seal)
		nb_put_u32be(buf + 1, bl[who].seal.cur.remote_index);
	if (mode == 3 && n >= 13)
		memset(buf + 5, 0, 7); /* a counter 0..255: inside the window */
	to_broker(buf, n, from, -1);
}

static void mutate(struct rd *r, bool change)
{
	size_t pos = get(r), cut = get(r);
	uint8_t x = get(r);
	int from = get(r) % (NPEER + 1);
	size_t n = last_len;

	if (last_len == 0)
		return;
	memcpy(buf, last, last_len);
	if (change) {
		pos = (pos * 5) % last_len;
		buf[pos] ^= x;
		if (cut & 1)
			n = (cut >> 1) * 5 % (last_len + 1);
	}
	to_broker(buf, n, from, from < NPEER ? from : -1);
}

static void raw_to_blink(struct rd *r)
{
	int k = get(r) % NPEER, from = get(r) & 1;
	const uint8_t *p;
	size_t n = take(r, get(r) * 5u, &p);
	ssize_t o;

	if (n == 0)
		return;
	memcpy(buf, p, n);
	o = nb_blink_input(&bl[k], buf, n, from ? &paddr[NPEER] : &baddr, now, bout, sizeof(bout));
	if (from)
		CHECK(o < 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rd r = { data, size };
	uint8_t seed[16];

	if (!ready)
		setup_once();
	now = 1000;
	last_len = 0;
	last_from = -1;
	CHECK(nb_plink_new(&cfg, &pl) == 0);
	for (int k = 0; k < NPEER; k++) {
		memset(seed, 0x40 + k, sizeof(seed));
		nb_blink_init(&bl[k], ppriv[k], ppub[k], bpub, &baddr, seed);
	}
	for (int ops = 0; ops < MAX_OPS && r.n > 0; ops++) {
		uint8_t op = get(&r) % NOPS;
		switch (op) {
		case 0:
			CHECK(nb_blink_start(&bl[get(&r) % NPEER], now) == 0);
			break;
		case 1: {
			int k = get(&r) % NPEER;
			const uint8_t *p;
			size_t n = take(&r, get(&r), &p);
			CHECK(nb_blink_send(&bl[k], p, n, now) == 0);
			break;
		}
		case 2: {
			int k = get(&r) % NPEER;
			pump(k, get(&r) & 1);
			break;
		}
		case 3: {
			uint64_t b = get(&r);
			now += b * b * 16;
			break;
		}
		case 4:
			(void)nb_plink_expire(pl, now, get(&r) % 8);
			check_stats();
			break;
		case 5:
			deadline();
			break;
		case 6:
			seal_to(&r);
			break;
		case 7:
			raw_to_broker(&r);
			break;
		case 8:
			mutate(&r, true);
			break;
		case 9:
			mutate(&r, false);
			break;
		case 10:
			raw_to_blink(&r);
			break;
		case 11:
			nb_plink_free(pl);
			CHECK(nb_plink_new(&cfg, &pl) == 0);
			break;
		default:
			for (int k = 0; k < NPEER; k++)
				pump(k, false);
			break;
		}
	}
	check_stats();
	nb_plink_free(pl);
	pl = NULL;
	for (int k = 0; k < NPEER; k++)
		nb_blink_wipe(&bl[k]);
	return 0;
}
