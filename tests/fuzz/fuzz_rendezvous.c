/* tests/fuzz/fuzz_rendezvous.c - the rendezvous engine driven by a script of
 * datagrams, each from a source and under a sender's key (or none), with
 * the promises every answer must keep.
 *
 * Input: byte 0 picks the setup (bit 0: small limits - 3 peers, 2 sessions,
 * 2 pairs, 4 cached replies, 5 list pages/s - else roomy ones; bit 1: a
 * broker token "tok" is required; bit 2: register needs the challenge's
 * cookie - off otherwise, so that the fuzzer reaches what follows a
 * register; bit 3: peers/matrix are public - else they need the admin
 * token "adm"; bit 4: birthday plans off; bit 5: punch timing fixed; bit 6:
 * a small birthday budget at the lab's rate, 64 probes at 1000/s). The rest
 * is lines, each
 *
 *   <control byte><key byte><datagram>'\n'
 *
 * control bits 0-1: the source (0 203.0.113.1:1000, 1 198.51.100.2:2000,
 * 2 198.51.100.2:3000 - behind the same NAT as 1 -, 3 [2001:db8::9]:4000);
 * bits 2-4: time to advance first (0, 1, 100, 250, 1000, 5000, 12000,
 * 46000 ms); bit 5: run nb_rendezvous_poll() first; bit 6: send the
 * datagram twice (the second must be answered from the reply cache).
 * key byte bits 0-2: the sender's static key, 0-4 one of five fixed keys,
 * 5-7 none (the datagram arrived unsealed); bits 3-7: the shell's round-trip
 * sample for it (nb_rendezvous_set_rtt()), 0 none, 1-30 x 37 ms, 31 over
 * the maximum (20 s).
 * In the datagram, the 16 bytes "SSSSSSSSSSSSSSSS" become the last session
 * id the engine handed out and "TTTTTTTTTTTTTTTT" the last pushed plan's tx,
 * so seeds can report results and ack plans (on a copy: input is never
 * written).
 *
 * Checked for every datagram:
 *  - everything sent decodes, fits 1200 bytes, and d[0] goes to the source
 *    (a verify's probe: to the source's IP, from the alternate port);
 *  - how it is sealed: a reply to a keyed datagram in the sender's key, a
 *    probe plain, anything answering an unsealed datagram plain (and only
 *    a 400 or 401 no longer than it, with nothing changed); a pushed plan
 *    (and its retransmissions) in the key that registered its recipient,
 *    each plan naming the other side's key;
 *  - names are keys: a fresh plan, keepalive ack or bye ack goes only to
 *    the key that last registered the id (the harness's own record);
 *  - nothing answering a request is longer than the request when it is a
 *    challenge or a list page (no amplification);
 *  - a request gets exactly one reply echoing its tx (two datagrams only for
 *    a connect answered with a new plan: the pushed plan, same session, to
 *    a registered source; a plan alone only from the reply cache); replies,
 *    acks and errors get none;
 *  - an undecodable datagram gets at most a 400, never longer than itself;
 *  - an immediate retransmission gets the same bytes and nothing else
 *    (unless the reply was a transient 429/500/503);
 *  - a connect's two plans: the same deadline (at least the configured
 *    one), at most one side delayed, the birthday budget of the config in
 *    both exactly with path birthday (never when it is off), and with
 *    fixed timing only the fixed delays;
 *  - tables stay within their limits; poll output decodes, and when poll
 *    says nothing more is due, the next deadline lies in the future.
 * Any broken promise aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/rendezvous.h"
#include "common/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                 \
	do {                     \
		if (!(c))        \
			abort(); \
	} while (0)

static const char *const sources[4] = {
	"203.0.113.1:1000", "198.51.100.2:2000", "198.51.100.2:3000", "[2001:db8::9]:4000",
};
static const uint64_t advance[8] = { 0, 1, 100, 250, 1000, 5000, 12000, 46000 };

#define NKEYS 5
#define MAX_HELD 64

/* Who holds a name, as far as the replies have told: the key of the last
 * REGISTERED for it, when it was last registered or kept alive, and
 * whether its holder said bye. A name changes hands only through a
 * register, and only once it is free: said bye, or not seen for the
 * expiry time (3 x the 15-s keepalive). */
#define EXPIRES_MS (3 * 15000)
struct held {
	char id[NB_CTRL_ID_MAX + 1];
	uint8_t key[NB_KEY_LEN];
	uint64_t seen;
	bool gone;
};

struct run {
	struct nb_rendezvous_config cfg;
	struct nb_rendezvous *rv;
	struct nb_addr src[4];
	uint8_t keys[NKEYS][NB_KEY_LEN];
	uint64_t now, seed;
	char session[NB_CTRL_SESSION_LEN + 1];
	char push_tx[NB_CTRL_TX_LEN + 1];
	struct held held[MAX_HELD];
	size_t n_held;
};

static struct held *held_find(struct run *r, const char *id)
{
	for (size_t i = 0; i < r->n_held; i++)
		if (strcmp(r->held[i].id, id) == 0)
			return &r->held[i];
	return NULL;
}

static void held_set(struct run *r, const char *id, const uint8_t *key)
{
	struct held *h = held_find(r, id);

	if (h == NULL) {
		if (r->n_held == MAX_HELD)
			return; /* the record is partial from here on: checks skip unknown ids */
		h = &r->held[r->n_held++];
		memcpy(h->id, id, strlen(id) + 1);
	} else if (!h->gone && memcmp(h->key, key, NB_KEY_LEN) != 0) {
		CHECK(r->now - h->seen >= EXPIRES_MS); /* taken from a live holder */
	}
	memcpy(h->key, key, NB_KEY_LEN);
	h->seen = r->now;
	h->gone = false;
}

static bool is_fixed_key(const struct run *r, const uint8_t *key)
{
	for (int i = 0; i < NKEYS; i++)
		if (memcmp(r->keys[i], key, NB_KEY_LEN) == 0)
			return true;
	return false;
}

static void check_peer_key(const char *text, const uint8_t *key)
{
	char want[NB_KEY_TEXT_LEN + 1];

	nb_key_to_text(key, want);
	CHECK(strcmp(text, want) == 0);
}

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void check_limits(const struct run *r)
{
	struct nb_rendezvous_stats st;

	nb_rendezvous_get_stats(r->rv, &st);
	CHECK(st.peers <= r->cfg.max_peers);
	CHECK(st.sessions <= r->cfg.max_sessions);
	CHECK(st.pairs <= r->cfg.max_pairs);
	CHECK(st.cached <= r->cfg.cache_entries);
}

static bool is_source(const struct run *r, const struct nb_addr *a)
{
	for (int i = 0; i < 4; i++)
		if (nb_addr_equal(&r->src[i], a))
			return true;
	return false;
}

static void do_poll(struct run *r)
{
	static struct nb_rendezvous_dgram out[4];
	static struct nb_ctrl_msg m;
	size_t n = 0;
	int more;

	for (int round = 0; round < 1000; round++) {
		more = nb_rendezvous_poll(r->rv, r->now, out, 4, &n);
		CHECK(more == 0 || more == 1);
		CHECK(n <= 4);
		for (size_t i = 0; i < n; i++) {
			CHECK(out[i].len > 0 && out[i].len <= NB_CTRL_MAX_DATAGRAM);
			CHECK(nb_ctrl_decode(&m, out[i].data, out[i].len) == (ssize_t)out[i].len);
			CHECK(m.type == NB_CTRL_PLAN);
			CHECK(is_source(r, &out[i].to));
			CHECK(out[i].sealed && is_fixed_key(r, out[i].key) && !out[i].from_alt_port);
		}
		if (more == 0) {
			CHECK(nb_rendezvous_next_deadline(r->rv) > r->now);
			return;
		}
	}
	CHECK(0); /* a bounded amount of work was due */
}

static bool is_request(enum nb_ctrl_type t)
{
	return t == NB_CTRL_REGISTER || t == NB_CTRL_KEEPALIVE || t == NB_CTRL_CONNECT ||
	       t == NB_CTRL_RESULT || t == NB_CTRL_PEERS || t == NB_CTRL_MATRIX || t == NB_CTRL_VERIFY ||
	       t == NB_CTRL_BYE;
}

static enum nb_ctrl_type reply_type(enum nb_ctrl_type t)
{
	switch (t) {
	case NB_CTRL_REGISTER:
		return NB_CTRL_REGISTERED;
	case NB_CTRL_CONNECT:
		return NB_CTRL_PLAN;
	case NB_CTRL_PEERS:
		return NB_CTRL_PEER_LIST;
	case NB_CTRL_MATRIX:
		return NB_CTRL_MATRIX_LIST;
	case NB_CTRL_VERIFY:
		return NB_CTRL_PROBE;
	default:
		return NB_CTRL_ACK;
	}
}

static void substitute(const struct run *r, uint8_t *buf, size_t len)
{
	for (size_t i = 0; len - i >= 16 && len >= 16; i++) {
		if (memcmp(buf + i, "SSSSSSSSSSSSSSSS", 16) == 0 && r->session[0] != '\0')
			memcpy(buf + i, r->session, 16);
		else if (memcmp(buf + i, "TTTTTTTTTTTTTTTT", 16) == 0 && r->push_tx[0] != '\0')
			memcpy(buf + i, r->push_tx, 16);
	}
}

/* The two plans of one connect: what the timing and birthday rules promise. */
static void check_plans(const struct run *r, const struct nb_ctrl_plan *pa, const struct nb_ctrl_plan *pb)
{
	const struct nb_ctrl_birthday *want = &r->cfg.birthday;

	CHECK(pa->path == pb->path);
	CHECK(pa->deadline_ms == pb->deadline_ms && pa->deadline_ms >= r->cfg.deadline_ms);
	CHECK(pa->delay_ms == 0 || pb->delay_ms == 0);
	if (!r->cfg.rtt_timing)
		for (int i = 0; i < 2; i++) {
			uint32_t d = (i == 0 ? pa : pb)->delay_ms;
			CHECK(d == 0 || d == r->cfg.prime_delay_ms || d == NB_RENDEZVOUS_RELAY_DIAL_DELAY_MS);
		}
	CHECK(pa->birthday.has == (pa->path == NB_PATH_BIRTHDAY));
	CHECK(pb->birthday.has == (pb->path == NB_PATH_BIRTHDAY));
	if (pa->path != NB_PATH_BIRTHDAY) {
		CHECK(pa->deadline_ms == r->cfg.deadline_ms);
		return;
	}
	CHECK(want->has);
	for (int i = 0; i < 2; i++) {
		const struct nb_ctrl_birthday *b = &(i == 0 ? pa : pb)->birthday;
		CHECK(b->sockets == want->sockets && b->probes == want->probes && b->rate == want->rate &&
		      b->port == 0);
	}
	CHECK((pa->role == NB_ROLE_SPRAY && pb->role == NB_ROLE_PROBE) ||
	      (pa->role == NB_ROLE_PROBE && pb->role == NB_ROLE_SPRAY));
	/* long enough for every probe at the rate (or the most there is) */
	CHECK(pa->deadline_ms == NB_CTRL_DEADLINE_MAX_MS ||
	      (uint64_t)pa->deadline_ms * want->rate >= (uint64_t)want->probes * 1000);
}

static void one(struct run *r, const struct nb_addr *from, const uint8_t *key, const uint8_t *buf,
		size_t len, bool twice, uint32_t rtt)
{
	static struct nb_rendezvous_out out, again;
	static struct nb_ctrl_msg in, m0, m1;
	uint8_t rnd[NB_RENDEZVOUS_RANDOM_LEN];
	struct nb_rendezvous_stats before, after;
	bool decoded;
	bool transient = false;

	for (size_t i = 0; i < sizeof(rnd); i += 8) {
		uint64_t v = splitmix(&r->seed);
		memcpy(rnd + i, &v, 8);
	}
	decoded = nb_ctrl_decode(&in, buf, len) == (ssize_t)len;
	nb_rendezvous_get_stats(r->rv, &before);
	nb_rendezvous_set_rtt(r->rv, rtt); /* for this call only */
	CHECK(nb_rendezvous_handle_keyed(r->rv, buf, len, from, key, r->now, rnd, sizeof(rnd), &out) == 0);
	nb_rendezvous_get_stats(r->rv, &after);
	CHECK(out.n <= NB_RENDEZVOUS_MAX_OUT);
	for (size_t i = 0; i < out.n; i++)
		CHECK(out.d[i].len > 0 && out.d[i].len <= NB_CTRL_MAX_DATAGRAM);
	if (out.n >= 1) {
		CHECK(nb_ctrl_decode(&m0, out.d[0].data, out.d[0].len) == (ssize_t)out.d[0].len);
		if (m0.type == NB_CTRL_PROBE) {
			CHECK(nb_addr_ip_equal(&out.d[0].to, from) && out.d[0].from_alt_port);
			CHECK(!out.d[0].sealed && key != NULL);
		} else {
			CHECK(nb_addr_equal(&out.d[0].to, from) && !out.d[0].from_alt_port);
			CHECK(out.d[0].sealed == (key != NULL));
			if (key != NULL)
				CHECK(memcmp(out.d[0].key, key, NB_KEY_LEN) == 0);
		}
		if (m0.type == NB_CTRL_CHALLENGE || m0.type == NB_CTRL_PEER_LIST || m0.type == NB_CTRL_MATRIX_LIST)
			CHECK(out.d[0].len <= len);
	}
	if (!decoded) {
		CHECK(out.n <= 1 && !out.rnd_used);
		if (out.n == 1) {
			CHECK(m0.type == NB_CTRL_ERROR && m0.u.error.code == NB_CTRL_ERR_BAD_REQUEST);
			CHECK(out.d[0].len <= len); /* no amplification */
		}
	} else if (!is_request(in.type)) {
		CHECK(out.n == 0 && !out.rnd_used);
	} else if (key == NULL) {
		/* unsealed: a 401 at most, no longer than the request; nothing changes */
		CHECK(out.n <= 1 && !out.rnd_used);
		if (out.n == 1)
			CHECK(m0.type == NB_CTRL_ERROR && m0.u.error.code == NB_CTRL_ERR_UNAUTHORIZED &&
			      out.d[0].len <= len && strcmp(m0.tx, in.tx) == 0);
		CHECK(after.unsealed == before.unsealed + 1);
		CHECK(after.peers + (after.expired - before.expired) == before.peers &&
		      after.sessions == before.sessions &&
		      after.pairs == before.pairs && after.cached == before.cached &&
		      after.registers == before.registers && after.results == before.results);
		transient = true;
	} else if (out.n == 0) {
		/* Silence, only where an answer would amplify: a challenge
		 * longer than its register, a page longer than its query. */
		CHECK(!out.rnd_used);
		CHECK((in.type == NB_CTRL_REGISTER && after.challenges_suppressed == before.challenges_suppressed + 1) ||
		      ((in.type == NB_CTRL_PEERS || in.type == NB_CTRL_MATRIX) &&
		       after.oversize_suppressed == before.oversize_suppressed + 1));
		transient = true; /* nothing to replay */
	} else {
		CHECK(strcmp(m0.tx, in.tx) == 0);
		CHECK(m0.type == NB_CTRL_ERROR || m0.type == reply_type(in.type) ||
		      (in.type == NB_CTRL_REGISTER && m0.type == NB_CTRL_CHALLENGE));
		if (m0.type == NB_CTRL_CHALLENGE || m0.type == NB_CTRL_PROBE || in.type == NB_CTRL_VERIFY)
			transient = true; /* not cached: answered afresh */
		if (m0.type == NB_CTRL_ERROR) {
			uint16_t c = m0.u.error.code;
			CHECK(c == 400 || c == 401 || c == 403 || c == 404 || c == 409 || c == 429 ||
			      c == 500 || c == 503);
			transient = c == 429 || c == 500 || c == 503;
		}
		if (out.n == 2) {
			CHECK(in.type == NB_CTRL_CONNECT && m0.type == NB_CTRL_PLAN && out.rnd_used);
			CHECK(nb_ctrl_decode(&m1, out.d[1].data, out.d[1].len) == (ssize_t)out.d[1].len);
			CHECK(m1.type == NB_CTRL_PLAN);
			check_plans(r, &m0.u.plan, &m1.u.plan);
			CHECK(strcmp(m1.u.plan.session, m0.u.plan.session) == 0);
			CHECK(strcmp(m1.u.plan.username, m0.u.plan.username) == 0);
			/* sealed to the other side's key; each plan names the other's key */
			CHECK(out.d[1].sealed && is_fixed_key(r, out.d[1].key) && !out.d[1].from_alt_port);
			check_peer_key(m0.u.plan.peer_key, out.d[1].key);
			check_peer_key(m1.u.plan.peer_key, key);
			{
				const struct held *ha = held_find(r, in.u.connect.id);
				const struct held *hb = held_find(r, in.u.connect.peer);
				if (ha != NULL)
					CHECK(memcmp(ha->key, key, NB_KEY_LEN) == 0);
				if (hb != NULL)
					CHECK(memcmp(hb->key, out.d[1].key, NB_KEY_LEN) == 0);
			}
			CHECK(strcmp(m1.u.plan.peer, in.u.connect.id) == 0);
			CHECK(strcmp(m0.u.plan.peer, in.u.connect.peer) == 0);
			CHECK(strcmp(m1.tx, m0.tx) != 0);
			CHECK(is_source(r, &out.d[1].to));
			memcpy(r->session, m0.u.plan.session, sizeof(r->session));
			memcpy(r->push_tx, m1.tx, sizeof(r->push_tx));
		} else if (in.type == NB_CTRL_CONNECT && m0.type == NB_CTRL_PLAN) {
			CHECK(after.replayed == before.replayed + 1 && !out.rnd_used);
		}
		/* names are keys, by the harness's record of the REGISTERED replies */
		if (after.replayed == before.replayed) {
			const struct held *hx = NULL;
			if (in.type == NB_CTRL_KEEPALIVE && m0.type == NB_CTRL_ACK)
				hx = held_find(r, in.u.keepalive.id);
			if (in.type == NB_CTRL_BYE && m0.type == NB_CTRL_ACK)
				hx = held_find(r, in.u.bye.id);
			if (hx != NULL) {
				CHECK(memcmp(hx->key, key, NB_KEY_LEN) == 0 && !hx->gone);
				CHECK(r->now - hx->seen < EXPIRES_MS);
				((struct held *)hx)->seen = r->now;
				((struct held *)hx)->gone = in.type == NB_CTRL_BYE;
			}
			if (in.type == NB_CTRL_BYE && m0.type == NB_CTRL_ACK)
				CHECK(after.byes == before.byes + 1 &&
				      after.peers + 1 + (after.expired - before.expired) == before.peers);
			if (m0.type == NB_CTRL_REGISTERED)
				held_set(r, m0.u.registered.id, key);
			if (m0.type == NB_CTRL_PEER_LIST || m0.type == NB_CTRL_MATRIX_LIST)
				CHECK(r->cfg.public_list || strcmp(in.u.query.admin, "adm") == 0);
		}
	}
	check_limits(r);
	if (!twice)
		return;
	CHECK(nb_rendezvous_handle_keyed(r->rv, buf, len, from, key, r->now, rnd, sizeof(rnd), &again) == 0);
	if (decoded && is_request(in.type) && !transient) {
		CHECK(again.n == 1 && !again.rnd_used);
		CHECK(again.d[0].len == out.d[0].len);
		CHECK(memcmp(again.d[0].data, out.d[0].data, out.d[0].len) == 0);
		CHECK(again.d[0].sealed && memcmp(again.d[0].key, key, NB_KEY_LEN) == 0);
	}
	check_limits(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[4096];
	struct run r;
	size_t off = 1;

	if (size < 1)
		return 0;
	memset(&r, 0, sizeof(r));
	nb_rendezvous_config_default(&r.cfg);
	r.cfg.require_cookie = (data[0] & 4) != 0;
	if (data[0] & 1) {
		r.cfg.max_peers = 3;
		r.cfg.max_sessions = 2;
		r.cfg.max_pairs = 2;
		r.cfg.cache_entries = 4;
		r.cfg.list_rate = 5;
	} else {
		r.cfg.max_peers = 64;
		r.cfg.max_sessions = 16;
		r.cfg.max_pairs = 16;
		r.cfg.cache_entries = 64;
	}
	if (data[0] & 2)
		memcpy(r.cfg.token, "tok", 4);
	r.cfg.public_list = (data[0] & 8) != 0;
	r.cfg.birthday.has = (data[0] & 0x10) == 0;
	r.cfg.rtt_timing = (data[0] & 0x20) == 0;
	if (data[0] & 0x40) {
		r.cfg.birthday.probes = 64;
		r.cfg.birthday.rate = 1000;
	}
	memcpy(r.cfg.admin_token, "adm", 4);
	for (int k = 0; k < NKEYS; k++)
		for (unsigned i = 0; i < NB_KEY_LEN; i++)
			r.keys[k][i] = (uint8_t)(k * 37 + i * 11 + 1);
	for (unsigned i = 0; i < sizeof(r.cfg.hash_key); i++)
		r.cfg.hash_key[i] = (uint8_t)i;
	CHECK(nb_rendezvous_new(&r.cfg, &r.rv) == 0);
	for (int i = 0; i < 4; i++)
		CHECK(nb_addr_parse(sources[i], false, &r.src[i]) == 0);
	r.now = 1000;
	r.seed = 42;

	while (size - off >= 2) {
		uint8_t ctl = data[off++];
		uint8_t kbyte = data[off++], kb = kbyte & 7;
		uint32_t rtt = (kbyte >> 3) == 31 ? 20000 : (uint32_t)(kbyte >> 3) * 37;
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = nl != NULL ? (size_t)(nl - (data + off)) : size - off;

		r.now += advance[(ctl >> 2) & 7];
		if (ctl & 0x20)
			do_poll(&r);
		if (len > sizeof(buf))
			len = sizeof(buf);
		memcpy(buf, data + off, len);
		substitute(&r, buf, len);
		one(&r, &r.src[ctl & 3], kb < NKEYS ? r.keys[kb] : NULL, buf, len, (ctl & 0x40) != 0, rtt);
		off += len;
		if (size - off >= 1 && data[off] == '\n')
			off++;
	}
	r.now += 60000;
	do_poll(&r);
	nb_rendezvous_free(r.rv);
	return 0;
}
