/* tests/fuzz/fuzz_rendezvous.c - the rendezvous engine driven by a script of
 * datagrams, with the promises every answer must keep.
 *
 * Input: byte 0 picks the setup (bit 0: small limits - 3 peers, 2 sessions,
 * 2 pairs, 4 cached replies, 5 list pages/s - else roomy ones; bit 1: a
 * broker token "tok" is required; bit 2: register needs the challenge's
 * cookie - off otherwise, so that the fuzzer reaches what follows a
 * register). The rest is lines, each
 *
 *   <control byte><datagram>'\n'
 *
 * control bits 0-1: the source (0 203.0.113.1:1000, 1 198.51.100.2:2000,
 * 2 198.51.100.2:3000 - behind the same NAT as 1 -, 3 [2001:db8::9]:4000);
 * bits 2-4: time to advance first (0, 1, 100, 250, 1000, 5000, 12000,
 * 46000 ms); bit 5: run nb_rendezvous_poll() first; bit 6: send the
 * datagram twice (the second must be answered from the reply cache).
 * In the datagram, the 16 bytes "SSSSSSSSSSSSSSSS" become the last session
 * id the engine handed out and "TTTTTTTTTTTTTTTT" the last pushed plan's tx,
 * so seeds can report results and ack plans (on a copy: input is never
 * written).
 *
 * Checked for every datagram:
 *  - everything sent decodes, fits 1200 bytes, and d[0] goes to the source
 *    (a verify's probe: to the source's IP, from the alternate port);
 *  - nothing answering a request is longer than the request when it is a
 *    challenge or a list page (no amplification);
 *  - a request gets exactly one reply echoing its tx (two datagrams only for
 *    a connect answered with a new plan: the pushed plan, same session, to
 *    a registered source; a plan alone only from the reply cache); replies,
 *    acks and errors get none;
 *  - an undecodable datagram gets at most a 400, never longer than itself;
 *  - an immediate retransmission gets the same bytes and nothing else
 *    (unless the reply was a transient 429/500/503);
 *  - tables stay within their limits; poll output decodes, and when poll
 *    says nothing more is due, the next deadline lies in the future.
 * Any broken promise aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/rendezvous.h"

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

struct run {
	struct nb_rendezvous_config cfg;
	struct nb_rendezvous *rv;
	struct nb_addr src[4];
	uint64_t now, seed;
	char session[NB_CTRL_SESSION_LEN + 1];
	char push_tx[NB_CTRL_TX_LEN + 1];
};

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
	       t == NB_CTRL_RESULT || t == NB_CTRL_PEERS || t == NB_CTRL_MATRIX || t == NB_CTRL_VERIFY;
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

static void one(struct run *r, const struct nb_addr *from, const uint8_t *buf, size_t len,
		bool twice)
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
	CHECK(nb_rendezvous_handle(r->rv, buf, len, from, r->now, rnd, sizeof(rnd), &out) == 0);
	nb_rendezvous_get_stats(r->rv, &after);
	CHECK(out.n <= NB_RENDEZVOUS_MAX_OUT);
	for (size_t i = 0; i < out.n; i++)
		CHECK(out.d[i].len > 0 && out.d[i].len <= NB_CTRL_MAX_DATAGRAM);
	if (out.n >= 1) {
		CHECK(nb_ctrl_decode(&m0, out.d[0].data, out.d[0].len) == (ssize_t)out.d[0].len);
		if (m0.type == NB_CTRL_PROBE)
			CHECK(nb_addr_ip_equal(&out.d[0].to, from) && out.d[0].from_alt_port);
		else
			CHECK(nb_addr_equal(&out.d[0].to, from) && !out.d[0].from_alt_port);
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
			CHECK(c == 400 || c == 401 || c == 404 || c == 409 || c == 429 || c == 500 ||
			      c == 503);
			transient = c == 429 || c == 500 || c == 503;
		}
		if (out.n == 2) {
			CHECK(in.type == NB_CTRL_CONNECT && m0.type == NB_CTRL_PLAN && out.rnd_used);
			CHECK(nb_ctrl_decode(&m1, out.d[1].data, out.d[1].len) == (ssize_t)out.d[1].len);
			CHECK(m1.type == NB_CTRL_PLAN);
			CHECK(strcmp(m1.u.plan.session, m0.u.plan.session) == 0);
			CHECK(strcmp(m1.u.plan.key, m0.u.plan.key) == 0);
			CHECK(strcmp(m1.u.plan.username, m0.u.plan.username) == 0);
			CHECK(strcmp(m1.u.plan.peer, in.u.connect.id) == 0);
			CHECK(strcmp(m0.u.plan.peer, in.u.connect.peer) == 0);
			CHECK(strcmp(m1.tx, m0.tx) != 0);
			CHECK(is_source(r, &out.d[1].to));
			memcpy(r->session, m0.u.plan.session, sizeof(r->session));
			memcpy(r->push_tx, m1.tx, sizeof(r->push_tx));
		} else if (in.type == NB_CTRL_CONNECT && m0.type == NB_CTRL_PLAN) {
			CHECK(after.replayed == before.replayed + 1 && !out.rnd_used);
		}
	}
	check_limits(r);
	if (!twice)
		return;
	CHECK(nb_rendezvous_handle(r->rv, buf, len, from, r->now, rnd, sizeof(rnd), &again) == 0);
	if (decoded && is_request(in.type) && !transient) {
		CHECK(again.n == 1 && !again.rnd_used);
		CHECK(again.d[0].len == out.d[0].len);
		CHECK(memcmp(again.d[0].data, out.d[0].data, out.d[0].len) == 0);
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
	for (unsigned i = 0; i < sizeof(r.cfg.hash_key); i++)
		r.cfg.hash_key[i] = (uint8_t)i;
	CHECK(nb_rendezvous_new(&r.cfg, &r.rv) == 0);
	for (int i = 0; i < 4; i++)
		CHECK(nb_addr_parse(sources[i], false, &r.src[i]) == 0);
	r.now = 1000;
	r.seed = 42;

	while (size - off >= 1) {
		uint8_t ctl = data[off++];
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = nl != NULL ? (size_t)(nl - (data + off)) : size - off;

		r.now += advance[(ctl >> 2) & 7];
		if (ctl & 0x20)
			do_poll(&r);
		if (len > sizeof(buf))
			len = sizeof(buf);
		memcpy(buf, data + off, len);
		substitute(&r, buf, len);
		one(&r, &r.src[ctl & 3], buf, len, (ctl & 0x40) != 0);
		off += len;
		if (size - off >= 1 && data[off] == '\n')
			off++;
	}
	r.now += 60000;
	do_poll(&r);
	nb_rendezvous_free(r.rv);
	return 0;
}
