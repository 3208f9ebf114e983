/* tests/unit/test_pmp.c - the NAT-PMP / PCP client state machine (pmp.h) on a
 * fake clock against a fake gateway, and the protocol chooser (pick.h).
 *
 * The fake gateway reads every request the machine hands out with its own
 * byte parsing (RFC 6886 §3.2-3.4, RFC 6887 §7.1/§11.1/§14) and answers, after
 * a per-protocol delay, with responses written byte by byte here: PCP MAP and
 * ANNOUNCE answers, NAT-PMP external address and MAP answers, the NAT-PMP-only
 * router's 8-byte version-0 UNSUPP_VERSION to PCP, the PCP-only router's
 * version-2 UNSUPP_VERSION to NAT-PMP, any result code, an epoch that runs
 * with the clock and can be reset (a router restart). Tests assert the exact
 * bytes and times of what is sent and of the events.
 *
 * The tests named test_bug_* each caught a defect in pmp.c, fixed since:
 * they stay as regression tests. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "peer/portmap/pick.h"
#include "peer/portmap/pmp.h"

#define T0 1000000u
#define IPORT 4000
#define MAXSENT 1024
#define MAXQ 64
#define MAXEV 128

static const uint8_t NONCE[NB_PCP_NONCE_LEN] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
						  0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc };

/* ---- bytes ------------------------------------------------------------------ */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* ::ffff:a.b.c.d */
static void put_v4mapped(uint8_t *p, const uint8_t ip[4])
{
	memset(p, 0, 10);
	p[10] = 0xff;
	p[11] = 0xff;
	memcpy(p + 12, ip, 4);
}

static struct nb_addr addr(const char *s)
{
	struct nb_addr a;

	assert_int_equal(nb_addr_parse(s, true, &a), 0);
	return a;
}

/* A PCP MAP response (RFC 6887 §7.2 + §11.1), 60 bytes. */
static size_t pcp_map_resp(uint8_t r[60], uint8_t result, uint32_t life, uint32_t epoch, const uint8_t nonce[12],
			   uint8_t proto, uint16_t iport, uint16_t eport, const uint8_t ip[4])
{
	memset(r, 0, 60);
	r[0] = 2;
	r[1] = 0x80 | 1;
	r[3] = result;
	put32(r + 4, life);
	put32(r + 8, epoch);
	memcpy(r + 24, nonce, 12);
	r[36] = proto;
	put16(r + 40, iport);
	put16(r + 42, eport);
	put_v4mapped(r + 44, ip);
	return 60;
}

/* A NAT-PMP MAP response (RFC 6886 §3.3), 16 bytes. */
static size_t natpmp_map_resp(uint8_t r[16], uint8_t op, uint16_t result, uint32_t epoch, uint16_t iport,
			      uint16_t eport, uint32_t life)
{
	r[0] = 0;
	r[1] = (uint8_t)(128 + op);
	put16(r + 2, result);
	put32(r + 4, epoch);
	put16(r + 8, iport);
	put16(r + 10, eport);
	put32(r + 12, life);
	return 16;
}

/* ---- the fake gateway ---------------------------------------------------------- */

enum { M_OFF = 0, M_ON, M_UNSUPP };

struct sim {
	int pcp, natpmp;               /* M_OFF silent, M_ON answers, M_UNSUPP: the other protocol's UNSUPP_VERSION */
	uint32_t pcp_delay, natpmp_delay;
	uint8_t ext[4];                /* PCP's external address */
	uint8_t ext_natpmp[4];         /* NAT-PMP's (normally the same) */
	uint16_t port;                 /* assigned external port; 0 = the suggested one */
	uint32_t life_cap;             /* granted = min(asked, cap) */
	uint8_t pcp_result;            /* for MAP requests that are not deletes */
	uint32_t pcp_err_life;
	bool pcp_hdr_only;             /* error responses without the MAP payload */
	uint16_t natpmp_ext_result, natpmp_map_result;
	bool natpmp_short;             /* error responses of 8 bytes */
	bool mute_deletes;             /* deletes (lifetime 0) go unanswered */
	uint32_t epoch0;               /* epoch = epoch0 + (now - epoch_t0) / 1000 */
	uint64_t epoch_t0;
	unsigned pcp_maps, pcp_deletes, pcp_announces, natpmp_exts, natpmp_maps, natpmp_deletes;
};

struct rec {
	uint64_t at;
	uint8_t b[NB_PMP_OUT_MAX];
	size_t len;
};

struct pend {
	uint64_t at;
	uint8_t b[64];
	size_t len;
};

struct fx {
	struct nb_pmp m;
	struct nb_pmp_params p;
	struct nb_addr gw, client;
	uint64_t now;
	bool sim_on;
	struct sim s;
	struct rec sent[MAXSENT];
	size_t nsent;
	struct pend q[MAXQ];
	size_t nq;
	struct nb_pmp_event ev[MAXEV];
	size_t nev;
};

static struct fx F;

static uint32_t sim_epoch(const struct fx *f)
{
	return f->s.epoch0 + (uint32_t)((f->now - f->s.epoch_t0) / 1000);
}

static void queue(struct fx *f, const uint8_t *b, size_t len, uint32_t delay)
{
	assert_true(f->nq < MAXQ);
	assert_true(len <= sizeof(f->q[0].b));
	f->q[f->nq].at = f->now + delay;
	memcpy(f->q[f->nq].b, b, len);
	f->q[f->nq].len = len;
	f->nq++;
}

static void sim_pcp(struct fx *f, const uint8_t *rq, size_t len)
{
	struct sim *s = &f->s;
	uint8_t op = rq[1] & 0x7f, r[60];
	size_t n = 24;

	if (s->pcp == M_OFF)
		return;
	if (s->pcp == M_UNSUPP) { /* NAT-PMP-only router: RFC 6886 §3.5, RFC 6887 §9 */
		r[0] = 0;
		r[1] = (uint8_t)(128 + op);
		put16(r + 2, 1);
		put32(r + 4, sim_epoch(f));
		queue(f, r, 8, s->pcp_delay);
		return;
	}
	memset(r, 0, sizeof(r));
	r[0] = 2;
	r[1] = (uint8_t)(0x80 | op);
	put32(r + 8, sim_epoch(f));
	if (op == 0) {
		assert_int_equal(len, 24);
		s->pcp_announces++;
	} else {
		uint32_t asked = be32(rq + 4);

		assert_int_equal(op, 1);
		assert_int_equal(len, 60);
		memcpy(r + 24, rq + 24, 36); /* §11.1: the payload comes back */
		n = 60;
		if (asked == 0) {
			s->pcp_deletes++;
			if (s->mute_deletes)
				return;
		} else if (s->pcp_result != 0) {
			s->pcp_maps++;
			r[3] = s->pcp_result;
			put32(r + 4, s->pcp_err_life);
			if (s->pcp_hdr_only)
				n = 24;
		} else {
			s->pcp_maps++;
			put32(r + 4, asked < s->life_cap ? asked : s->life_cap);
			if (s->port != 0)
				put16(r + 42, s->port);
			put_v4mapped(r + 44, s->ext);
		}
	}
	queue(f, r, n, s->pcp_delay);
}

static void sim_natpmp(struct fx *f, const uint8_t *rq, size_t len)
{
	struct sim *s = &f->s;
	uint8_t op = rq[1], r[24];

	if (s->natpmp == M_OFF)
		return;
	if (s->natpmp == M_UNSUPP) { /* PCP-only router: version 2 UNSUPP_VERSION (RFC 6887 §9) */
		memset(r, 0, 24);
		r[0] = 2;
		r[1] = (uint8_t)(0x80 | op);
		r[3] = 1;
		put32(r + 8, sim_epoch(f));
		queue(f, r, 24, s->natpmp_delay);
		return;
	}
	if (op == 0) {
		assert_int_equal(len, 2);
		s->natpmp_exts++;
		memset(r, 0, 12);
		r[1] = 128;
		put16(r + 2, s->natpmp_ext_result);
		put32(r + 4, sim_epoch(f));
		if (s->natpmp_ext_result == 0)
			memcpy(r + 8, s->ext_natpmp, 4);
		queue(f, r, 12, s->natpmp_delay);
		return;
	}
	assert_true(op == 1 || op == 2);
	assert_int_equal(len, 12);
	{
		uint16_t in = be16(rq + 4), sugg = be16(rq + 6);
		uint32_t asked = be32(rq + 8);

		if (asked == 0) {
			s->natpmp_deletes++;
			if (s->mute_deletes)
				return;
			natpmp_map_resp(r, op, 0, sim_epoch(f), in, 0, 0);
		} else if (s->natpmp_map_result != 0) {
			s->natpmp_maps++;
			natpmp_map_resp(r, op, s->natpmp_map_result, sim_epoch(f), in, 0, 0);
		} else {
			s->natpmp_maps++;
			natpmp_map_resp(r, op, 0, sim_epoch(f), in, s->port ? s->port : (sugg ? sugg : in),
					asked < s->life_cap ? asked : s->life_cap);
		}
		queue(f, r, s->natpmp_map_result != 0 && s->natpmp_short ? 8 : 16, s->natpmp_delay);
	}
}

static void deliver(struct fx *f)
{
	for (;;) {
		size_t best = f->nq;

		for (size_t i = 0; i < f->nq; i++)
			if (f->q[i].at <= f->now && (best == f->nq || f->q[i].at < f->q[best].at))
				best = i;
		if (best == f->nq)
			return;
		{
			struct pend p = f->q[best];

			memmove(&f->q[best], &f->q[best + 1], (f->nq - best - 1) * sizeof(f->q[0]));
			f->nq--;
			(void)nb_pmp_input(&f->m, p.b, p.len, &f->gw, f->now);
		}
	}
}

static void drain(struct fx *f)
{
	struct nb_pmp_event ev;

	while (nb_pmp_event(&f->m, &ev) == 1) {
		assert_true(f->nev < MAXEV);
		f->ev[f->nev++] = ev;
	}
}

static void pump(struct fx *f)
{
	struct nb_pmp_out out;
	int guard = 0;

	deliver(f);
	while (nb_pmp_poll(&f->m, f->now, &out) == 1) {
		struct rec *r;

		assert_true(++guard < 8);
		assert_true(out.len > 0 && out.len <= NB_PMP_OUT_MAX);
		assert_true(nb_addr_equal(&out.to, &f->gw));
		assert_true(f->nsent < MAXSENT);
		r = &f->sent[f->nsent++];
		r->at = f->now;
		memcpy(r->b, out.bytes, out.len);
		r->len = out.len;
		if (f->sim_on) {
			if (r->b[0] == 2)
				sim_pcp(f, r->b, r->len);
			else
				sim_natpmp(f, r->b, r->len);
		}
	}
	drain(f);
}

static uint64_t next_pending(const struct fx *f)
{
	uint64_t t = UINT64_MAX;

	for (size_t i = 0; i < f->nq; i++)
		if (f->q[i].at < t)
			t = f->q[i].at;
	return t;
}

/* Run the clock to t, waking at every deadline and delivery. */
static void run_until(struct fx *f, uint64_t t)
{
	for (int guard = 0;; guard++) {
		uint64_t d, q;

		assert_true(guard < 200000);
		pump(f);
		d = nb_pmp_deadline(&f->m);
		assert_true(d > f->now); /* never in the past after a dry poll */
		q = next_pending(f);
		if (q < d)
			d = q;
		if (d > t)
			break;
		if (d > f->now)
			f->now = d;
	}
	if (t > f->now)
		f->now = t;
	pump(f);
}

static void fx_reset(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	nb_pmp_params_default(&f->p);
	f->p.internal_port = IPORT;
	f->p.check_s = 100000; /* no epoch checks unless a test wants them */
	f->gw = addr("192.168.1.1:5351");
	f->client = addr("192.168.1.10");
	f->sim_on = true;
	f->s.pcp = M_ON;
	f->s.natpmp = M_ON;
	f->s.pcp_delay = 10;
	f->s.natpmp_delay = 10;
	memcpy(f->s.ext, ((const uint8_t[]){ 203, 0, 113, 7 }), 4);
	memcpy(f->s.ext_natpmp, f->s.ext, 4);
	f->s.life_cap = 7200;
	f->s.epoch0 = 1000;
	f->s.epoch_t0 = T0;
}

static void fx_start(struct fx *f)
{
	struct nb_addr gw_noport = addr("192.168.1.1");

	f->now = T0;
	nb_pmp_init(&f->m, &f->p, &gw_noport, &f->client, NONCE, T0);
	assert_int_equal(nb_pmp_info(&f->m)->status, NB_PMP_IDLE);
	nb_pmp_start(&f->m, T0);
	assert_int_equal(nb_pmp_info(&f->m)->status, NB_PMP_WORKING);
	assert_true(nb_addr_equal(&nb_pmp_info(&f->m)->gateway, &f->gw));
}

static const struct nb_pmp_info *info(const struct fx *f)
{
	return nb_pmp_info(&f->m);
}

static size_t count_ev(const struct fx *f, enum nb_pmp_event_kind k)
{
	size_t n = 0;

	for (size_t i = 0; i < f->nev; i++)
		n += f->ev[i].kind == k;
	return n;
}

/* The time of the only event of kind k. */
static uint64_t ev_at(const struct fx *f, enum nb_pmp_event_kind k)
{
	assert_int_equal(count_ev(f, k), 1);
	for (size_t i = 0; i < f->nev; i++)
		if (f->ev[i].kind == k)
			return f->ev[i].at;
	return 0;
}

static bool is_pcp(const struct rec *r)
{
	return r->b[0] == 2;
}

static bool is_pcp_map(const struct rec *r)
{
	return r->len == 60 && r->b[0] == 2 && r->b[1] == 1;
}

static bool is_natpmp_map(const struct rec *r)
{
	return r->len == 12 && r->b[0] == 0 && r->b[1] == 1;
}

static bool is_natpmp_ext(const struct rec *r)
{
	return r->len == 2 && r->b[0] == 0 && r->b[1] == 0;
}

static size_t sends_since(const struct fx *f, uint64_t t)
{
	size_t n = 0;

	for (size_t i = 0; i < f->nsent; i++)
		n += f->sent[i].at >= t;
	return n;
}

static bool has(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

/* The PCP MAP request we expect, byte for byte (RFC 6887 §7.1, §11.1). */
static void want_pcp_map(const struct rec *r, uint32_t life, uint16_t sugg_port, const uint8_t *sugg_ip)
{
	uint8_t w[60];
	static const uint8_t client[4] = { 192, 168, 1, 10 }, zero[4] = { 0, 0, 0, 0 };

	memset(w, 0, sizeof(w));
	w[0] = 2;
	w[1] = 1;
	put32(w + 4, life);
	put_v4mapped(w + 8, client);
	memcpy(w + 24, NONCE, 12);
	w[36] = 17;
	put16(w + 40, IPORT);
	put16(w + 42, sugg_port);
	put_v4mapped(w + 44, sugg_ip != NULL ? sugg_ip : zero);
	assert_int_equal(r->len, 60);
	assert_memory_equal(r->b, w, 60);
}

/* The NAT-PMP MAP request (RFC 6886 §3.3). */
static void want_natpmp_map(const struct rec *r, uint16_t sugg_port, uint32_t life)
{
	uint8_t w[12] = { 0, 1, 0, 0 };

	put16(w + 4, IPORT);
	put16(w + 6, sugg_port);
	put32(w + 8, life);
	assert_int_equal(r->len, 12);
	assert_memory_equal(r->b, w, 12);
}

/* ---- probing --------------------------------------------------------------------- */

static void test_pcp_preferred(void **state)
{
	struct fx *f = &F;
	static const uint8_t ext[4] = { 203, 0, 113, 7 };

	(void)state;
	/* both answered at the same time: PCP's answer wins */
	fx_reset(f);
	memcpy(f->s.ext_natpmp, ((const uint8_t[]){ 198, 51, 100, 2 }), 4);
	f->s.port = 41000;
	fx_start(f);
	run_until(f, T0 + 10000);
	assert_int_equal(f->nsent, 2);
	want_pcp_map(&f->sent[0], 7200, IPORT, NULL);
	assert_int_equal(f->sent[0].at, T0);
	assert_true(is_natpmp_ext(&f->sent[1]));
	assert_int_equal(f->sent[1].at, T0);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	assert_int_equal(info(f)->protocol, NB_PMP_PCP);
	assert_true(nb_addr_equal(&info(f)->external, &(struct nb_addr){ .family = NB_AF_INET, .port = 41000,
									  .ip = { 203, 0, 113, 7 } }));
	assert_int_equal(info(f)->lease_s, 7200);
	assert_int_equal(info(f)->mapped_at, T0 + 10);
	assert_int_equal(ev_at(f, NB_PMP_EV_ANSWERED), T0 + 10);
	assert_int_equal(ev_at(f, NB_PMP_EV_MAPPED), T0 + 10);
	assert_int_equal(f->nev, 2);
	assert_true(nb_pmp_answered(&f->m));
	assert_string_equal(info(f)->reason, "");

	/* NAT-PMP answers first; PCP within the grace (first_rto_ms) still wins */
	fx_reset(f);
	f->s.natpmp_delay = 5;
	f->s.pcp_delay = 200;
	fx_start(f);
	run_until(f, T0 + 10000);
	assert_int_equal(f->nsent, 2);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	assert_int_equal(info(f)->protocol, NB_PMP_PCP);
	assert_int_equal(ev_at(f, NB_PMP_EV_ANSWERED), T0 + 5);
	assert_int_equal(ev_at(f, NB_PMP_EV_MAPPED), T0 + 200);
	assert_memory_equal(info(f)->external.ip, ext, 4);

	/* NAT-PMP answers, PCP stays silent: NAT-PMP maps first_rto_ms later */
	fx_reset(f);
	f->s.natpmp_delay = 5;
	f->s.pcp = M_OFF;
	memcpy(f->s.ext_natpmp, ((const uint8_t[]){ 198, 51, 100, 2 }), 4);
	fx_start(f);
	run_until(f, T0 + 10000);
	assert_int_equal(f->s.natpmp_maps, 1);
	for (size_t i = 0; i < f->nsent; i++) {
		if (is_natpmp_map(&f->sent[i])) {
			assert_int_equal(f->sent[i].at, T0 + 5 + 250);
			want_natpmp_map(&f->sent[i], IPORT, 7200);
		} else if (is_pcp(&f->sent[i])) {
			assert_true(f->sent[i].at < T0 + 255);
		}
	}
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	assert_int_equal(info(f)->protocol, NB_PMP_NATPMP);
	assert_int_equal(ev_at(f, NB_PMP_EV_MAPPED), T0 + 260);
	assert_true(nb_addr_equal(&info(f)->external, &(struct nb_addr){ .family = NB_AF_INET, .port = IPORT,
									  .ip = { 198, 51, 100, 2 } }));
}

static void test_natpmp_only(void **state)
{
	struct fx *f = &F;

	(void)state;
	for (int order = 0; order < 2; order++) {
		fx_reset(f);
		f->s.pcp = M_UNSUPP; /* 8 bytes: 0, 0x81, result 1, epoch */
		f->s.port = 40123;
		if (order == 1) {
			f->s.natpmp_delay = 5;
			f->s.pcp_delay = 20;
		}
		fx_start(f);
		run_until(f, T0 + 10000);
		assert_int_equal(f->nsent, 3);
		assert_true(is_pcp_map(&f->sent[0]));
		assert_true(is_natpmp_ext(&f->sent[1]));
		want_natpmp_map(&f->sent[2], IPORT, 7200);
		assert_int_equal(f->sent[2].at, order == 0 ? T0 + 10 : T0 + 20);
		assert_int_equal(info(f)->status, NB_PMP_MAPPED);
		assert_int_equal(info(f)->protocol, NB_PMP_NATPMP);
		assert_true(nb_addr_equal(&info(f)->external, &(struct nb_addr){ .family = NB_AF_INET, .port = 40123,
										  .ip = { 203, 0, 113, 7 } }));
		assert_int_equal(info(f)->lease_s, 7200);
		assert_int_equal(info(f)->epoch, 1000);
		assert_int_equal(ev_at(f, NB_PMP_EV_MAPPED), f->sent[2].at + f->s.natpmp_delay);
		assert_int_equal(count_ev(f, NB_PMP_EV_ANSWERED), 1);
		assert_int_equal(count_ev(f, NB_PMP_EV_FAILED), 0);
	}
}

static void test_pcp_only(void **state)
{
	struct fx *f = &F;

	(void)state;
	fx_reset(f);
	f->s.natpmp = M_UNSUPP; /* 24 bytes, version 2, result 1 */
	f->s.natpmp_delay = 5;
	f->s.pcp_delay = 50;
	fx_start(f);
	run_until(f, T0 + 100);
	assert_int_equal(info(f)->protocol, NB_PMP_PCP);
	assert_int_equal(ev_at(f, NB_PMP_EV_ANSWERED), T0 + 5);
	run_until(f, T0 + 10000);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	assert_int_equal(info(f)->protocol, NB_PMP_PCP);
	assert_int_equal(ev_at(f, NB_PMP_EV_MAPPED), T0 + 50);
	assert_int_equal(f->nsent, 2); /* NAT-PMP asked once, no retransmission */
	assert_true(is_natpmp_ext(&f->sent[1]));

	/* PCP-only router whose PCP is silent: UNAVAILABLE at probe_ms */
	fx_reset(f);
	f->s.natpmp = M_UNSUPP;
	f->s.pcp = M_OFF;
	fx_start(f);
	run_until(f, T0 + 10000);
	assert_int_equal(info(f)->status, NB_PMP_UNAVAILABLE);
	assert_int_equal(ev_at(f, NB_PMP_EV_FAILED), T0 + 2000);
	assert_int_equal(f->s.natpmp_exts, 0);
}

static void test_silence(void **state)
{
	struct fx *f = &F;
	static const uint64_t nominal[4] = { 0, 250, 750, 1750 };
	bool jittered = false;

	(void)state;
	for (uint8_t seed = 0; seed < 8; seed++) {
		uint8_t nonce[NB_PCP_NONCE_LEN];
		struct nb_addr gw = addr("192.168.1.1");
		size_t np = 0, nn = 0;
		uint64_t pcp_at[8];

		fx_reset(f);
		f->sim_on = false;
		memcpy(nonce, NONCE, sizeof(nonce));
		nonce[0] = (uint8_t)(nonce[0] + seed * 37);
		f->now = T0;
		nb_pmp_init(&f->m, &f->p, &gw, &f->client, nonce, T0);
		nb_pmp_start(&f->m, T0);
		run_until(f, T0 + 20000);
		for (size_t i = 0; i < f->nsent; i++) {
			const struct rec *r = &f->sent[i];

			if (is_pcp(r)) {
				assert_true(np < 8);
				assert_true(is_pcp_map(r));
				assert_memory_equal(r->b, f->sent[0].b, 60); /* same nonce every time */
				pcp_at[np++] = r->at - T0;
			} else {
				assert_true(is_natpmp_ext(r));
				assert_true(nn < 4);
				assert_int_equal(r->at - T0, nominal[nn]);
				nn++;
			}
		}
		assert_int_equal(nn, 4);
		assert_int_equal(np, 4);
		for (size_t k = 0; k < 4; k++) {
			/* cumulative within +-10% of the nominal schedule */
			assert_true(pcp_at[k] * 10 >= nominal[k] * 9 && pcp_at[k] * 10 <= nominal[k] * 11);
			if (k > 0) {
				uint64_t iv = pcp_at[k] - pcp_at[k - 1], nom = nominal[k] - nominal[k - 1];

				assert_true(iv * 10 >= nom * 9 && iv * 10 <= nom * 11);
				if (iv != nom)
					jittered = true;
			}
		}
		assert_int_equal(info(f)->status, NB_PMP_UNAVAILABLE);
		assert_int_equal(info(f)->protocol, NB_PMP_NONE);
		assert_int_equal(ev_at(f, NB_PMP_EV_FAILED), T0 + 2000);
		assert_int_equal(f->nev, 1);
		assert_true(has(info(f)->reason, "no NAT-PMP or PCP answer"));
		assert_true(has(info(f)->reason, "192.168.1.1:5351"));
		assert_int_equal(sends_since(f, T0 + 2000), 0);
		assert_int_equal(nb_pmp_deadline(&f->m), UINT64_MAX);
		assert_false(nb_pmp_answered(&f->m));
	}
	assert_true(jittered);

	/* other probe_ms / first_rto_ms */
	fx_reset(f);
	f->sim_on = false;
	f->p.pcp = false;
	f->p.first_rto_ms = 100;
	f->p.probe_ms = 1000;
	fx_start(f);
	run_until(f, T0 + 20000);
	assert_int_equal(f->nsent, 4); /* 0 100 300 700 */
	assert_int_equal(f->sent[3].at, T0 + 700);
	assert_int_equal(ev_at(f, NB_PMP_EV_FAILED), T0 + 1000);

	/* neither enabled */
	fx_reset(f);
	f->p.pcp = f->p.natpmp = false;
	f->now = T0;
	nb_pmp_init(&f->m, &f->p, &f->gw, &f->client, NONCE, T0);
	nb_pmp_start(&f->m, T0);
	assert_int_equal(info(f)->status, NB_PMP_UNAVAILABLE);
	assert_true(has(info(f)->reason, "neither"));
	run_until(f, T0 + 1000);
	assert_int_equal(f->nsent, 0);
}

static void test_unreachable(void **state)
{
	struct fx *f = &F;

	(void)state;
	fx_reset(f);
	f->sim_on = false;
	fx_start(f);
	run_until(f, T0 + 3);
	assert_int_equal(f->nsent, 2);
	nb_pmp_unreachable(&f->m, T0 + 3);
	drain(f);
	assert_int_equal(info(f)->status, NB_PMP_UNAVAILABLE);
	assert_true(has(info(f)->reason, "port unreachable"));
	assert_int_equal(ev_at(f, NB_PMP_EV_FAILED), T0 + 3);
	assert_int_equal(nb_pmp_deadline(&f->m), UINT64_MAX);
	run_until(f, T0 + 10000);
	assert_int_equal(f->nsent, 2);

	/* after an answer, an ICMP error is not believed */
	fx_reset(f);
	f->s.pcp = M_UNSUPP;
	f->s.natpmp = M_OFF;
	fx_start(f);
	run_until(f, T0 + 20);
	assert_true(nb_pmp_answered(&f->m));
	nb_pmp_unreachable(&f->m, T0 + 20);
	assert_int_equal(info(f)->status, NB_PMP_WORKING);
}

/* ---- refusals ---------------------------------------------------------------------- */

static void test_pcp_results(void **state)
{
	struct fx *f = &F;
	char reasons[2][14][200];

	(void)state;
	for (int hdr_only = 0; hdr_only < 2; hdr_only++) {
		for (uint8_t code = 2; code <= 13; code++) {
			bool fallback = code == 3 || code == 4 || code == 9;
			char num[32];

			/* NAT-PMP silent */
			fx_reset(f);
			f->s.natpmp = M_OFF;
			f->s.pcp_result = code;
			f->s.pcp_err_life = 30;
			f->s.pcp_hdr_only = hdr_only;
			fx_start(f);
			run_until(f, T0 + 11);
			if (fallback) {
				assert_int_equal(info(f)->status, NB_PMP_WORKING);
				run_until(f, T0 + 10000);
				assert_int_equal(ev_at(f, NB_PMP_EV_FAILED), T0 + 2000);
			} else {
				assert_int_equal(ev_at(f, NB_PMP_EV_FAILED), T0 + 10);
				assert_int_equal(sends_since(f, T0 + 10), 0);
				run_until(f, T0 + 10000);
				assert_int_equal(sends_since(f, T0 + 10), 0);
			}
			assert_int_equal(f->s.pcp_maps, 1);
			assert_int_equal(info(f)->status, code == 12 ? NB_PMP_UNUSABLE : NB_PMP_REFUSED);
			if (code == 12) {
				assert_true(has(info(f)->reason, "ADDRESS_MISMATCH"));
			} else {
				snprintf(num, sizeof(num), "(result %u)", (unsigned)code);
				assert_true(has(info(f)->reason, nb_pcp_result_string(code)));
				assert_true(has(info(f)->reason, num));
				assert_true(has(info(f)->reason, "PCP"));
			}
			snprintf(reasons[hdr_only][code], sizeof(reasons[0][0]), "%s", info(f)->reason);

			/* NAT-PMP answering, before or after the PCP refusal */
			for (int early = 0; early < 2; early++) {
				fx_reset(f);
				f->s.pcp_result = code;
				f->s.pcp_hdr_only = hdr_only;
				f->s.natpmp_delay = early ? 5 : 20;
				fx_start(f);
				run_until(f, T0 + 10000);
				if (fallback) {
					assert_int_equal(info(f)->status, NB_PMP_MAPPED);
					assert_int_equal(info(f)->protocol, NB_PMP_NATPMP);
					assert_int_equal(f->s.natpmp_maps, 1);
				} else {
					assert_int_equal(info(f)->status,
							 code == 12 ? NB_PMP_UNUSABLE : NB_PMP_REFUSED);
					assert_int_equal(f->s.natpmp_maps, 0);
					assert_int_equal(count_ev(f, NB_PMP_EV_MAPPED), 0);
				}
			}
		}
		for (int a = 2; a <= 13; a++)
			for (int b = a + 1; b <= 13; b++)
				assert_string_not_equal(reasons[hdr_only][a], reasons[hdr_only][b]);
	}
}

static void test_natpmp_results(void **state)
{
	struct fx *f = &F;
	char reasons[6][200];

	(void)state;
	for (int shrt = 0; shrt < 2; shrt++) {
		for (uint16_t code = 2; code <= 5; code++) {
			char num[32];

			fx_reset(f);
			f->s.pcp = M_UNSUPP;
			f->s.natpmp_map_result = code;
			f->s.natpmp_short = shrt;
			fx_start(f);
			run_until(f, T0 + 10000);
			assert_int_equal(f->s.natpmp_maps, 1);
			assert_int_equal(info(f)->status, NB_PMP_REFUSED);
			assert_int_equal(ev_at(f, NB_PMP_EV_FAILED), T0 + 20);
			assert_int_equal(sends_since(f, T0 + 11), 0);
			snprintf(num, sizeof(num), "(result %u)", (unsigned)code);
			assert_true(has(info(f)->reason, nb_natpmp_result_string(code)));
			assert_true(has(info(f)->reason, num));
			assert_true(has(info(f)->reason, "NAT-PMP"));
			snprintf(reasons[code], sizeof(reasons[0]), "%s", info(f)->reason);
		}
		for (int a = 2; a <= 5; a++)
			for (int b = a + 1; b <= 5; b++)
				assert_string_not_equal(reasons[a], reasons[b]);
	}

	/* the external address request refused, PCP not spoken: REFUSED with that reason */
	for (uint16_t code = 2; code <= 5; code++) {
		fx_reset(f);
		f->s.pcp = M_UNSUPP;
		f->s.natpmp_ext_result = code;
		fx_start(f);
		run_until(f, T0 + 10000);
		assert_int_equal(info(f)->status, NB_PMP_REFUSED);
		assert_int_equal(ev_at(f, NB_PMP_EV_FAILED), T0 + 10);
		assert_true(has(info(f)->reason, nb_natpmp_result_string(code)));
		assert_int_equal(f->s.natpmp_maps, 0);
	}
}

/* ---- keeping the mapping ------------------------------------------------------------- */

static void test_renew_natpmp(void **state)
{
	struct fx *f = &F;
	uint64_t t1, t2;
	size_t n;

	(void)state;
	fx_reset(f);
	f->s.pcp = M_UNSUPP;
	f->s.port = 40001;
	f->s.life_cap = 600;
	fx_start(f);
	run_until(f, T0 + 100);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	assert_int_equal(info(f)->external.port, 40001);
	assert_int_equal(info(f)->lease_s, 600);
	n = f->nsent;
	t1 = T0 + 20 + 300000; /* half the lifetime */
	run_until(f, t1 - 1);
	assert_int_equal(f->nsent, n);
	run_until(f, t1 + 100);
	assert_int_equal(f->nsent, n + 1);
	assert_int_equal(f->sent[n].at, t1);
	want_natpmp_map(&f->sent[n], 40001, 7200); /* the port we hold */
	assert_int_equal(ev_at(f, NB_PMP_EV_RENEWED), t1 + 10);
	assert_int_equal(info(f)->renewals, 1);
	assert_int_equal(info(f)->mapped_at, T0 + 20);
	assert_int_equal(info(f)->external.port, 40001);

	/* the router moves the mapping: MAPPED with the new port, kept */
	f->s.port = 40002;
	t2 = t1 + 10 + 300000;
	run_until(f, t2 + 100);
	assert_int_equal(f->nsent, n + 2);
	assert_int_equal(f->sent[n + 1].at, t2);
	want_natpmp_map(&f->sent[n + 1], 40001, 7200);
	assert_int_equal(count_ev(f, NB_PMP_EV_MAPPED), 2);
	assert_int_equal(f->ev[f->nev - 1].kind, NB_PMP_EV_MAPPED);
	assert_int_equal(f->ev[f->nev - 1].at, t2 + 10);
	assert_int_equal(info(f)->external.port, 40002);
	assert_int_equal(info(f)->renewals, 2);
	run_until(f, t2 + 10 + 300000 + 100);
	assert_int_equal(f->nsent, n + 3);
	want_natpmp_map(&f->sent[n + 2], 40002, 7200);
}

static void test_renew_pcp(void **state)
{
	struct fx *f = &F;
	static const uint8_t ext[4] = { 203, 0, 113, 7 };
	uint64_t t1, t2;
	size_t n;

	(void)state;
	fx_reset(f);
	f->s.natpmp = M_OFF;
	f->s.port = 40001;
	f->s.life_cap = 600;
	fx_start(f);
	run_until(f, T0 + 100);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	assert_int_equal(info(f)->lease_s, 600);
	n = f->nsent;
	t1 = T0 + 10 + 300000;
	run_until(f, t1 - 1);
	assert_int_equal(f->nsent, n);
	run_until(f, t1 + 100);
	assert_int_equal(f->nsent, n + 1);
	assert_int_equal(f->sent[n].at, t1);
	want_pcp_map(&f->sent[n], 7200, 40001, ext); /* same nonce, suggested port and IP */
	assert_int_equal(ev_at(f, NB_PMP_EV_RENEWED), t1 + 10);
	assert_int_equal(info(f)->renewals, 1);

	f->s.port = 40002;
	t2 = t1 + 10 + 300000;
	run_until(f, t2 + 100);
	assert_int_equal(f->nsent, n + 2);
	want_pcp_map(&f->sent[n + 1], 7200, 40001, ext);
	assert_int_equal(f->ev[f->nev - 1].kind, NB_PMP_EV_MAPPED);
	assert_int_equal(f->ev[f->nev - 1].at, t2 + 10);
	assert_int_equal(info(f)->external.port, 40002);
	run_until(f, t2 + 10 + 300000 + 100);
	assert_int_equal(f->nsent, n + 3);
	want_pcp_map(&f->sent[n + 2], 7200, 40002, ext);
}

static void test_other_port_kept(void **state)
{
	struct fx *f = &F;

	(void)state;
	for (int proto = 0; proto < 2; proto++) {
		size_t n;

		fx_reset(f);
		if (proto == 0)
			f->s.natpmp = M_OFF;
		else
			f->s.pcp = M_UNSUPP;
		f->p.external_port = 5000;
		f->s.port = 55555;
		f->s.life_cap = 100;
		fx_start(f);
		run_until(f, T0 + 100);
		if (proto == 0)
			want_pcp_map(&f->sent[0], 7200, 5000, NULL);
		else
			want_natpmp_map(&f->sent[2], 5000, 7200);
		assert_int_equal(info(f)->status, NB_PMP_MAPPED);
		assert_int_equal(info(f)->external.port, 55555);
		n = f->nsent;
		run_until(f, T0 + 200000);
		assert_true(f->nsent >= n + 3);
		for (size_t i = n; i < f->nsent; i++)
			assert_int_equal(be16(f->sent[i].b + (proto == 0 ? 42 : 6)), 55555);
		assert_int_equal(count_ev(f, NB_PMP_EV_MAPPED), 1);
		assert_int_equal(info(f)->renewals, f->nsent - n);
	}
}

static void test_epoch_reset_pcp(void **state)
{
	struct fx *f = &F;
	static const uint8_t ext[4] = { 203, 0, 113, 7 };
	uint8_t ann[24] = { 2, 0 };
	size_t n;

	(void)state;
	put_v4mapped(ann + 8, (const uint8_t[]){ 192, 168, 1, 10 });
	fx_reset(f);
	f->s.natpmp = M_OFF;
	f->p.check_s = 60;
	fx_start(f);
	run_until(f, T0 + 100);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	assert_int_equal(info(f)->epoch, 1000);
	n = f->nsent;
	/* the check at check_s: an ANNOUNCE; the epoch advanced with the clock */
	run_until(f, T0 + 10 + 60000 + 100);
	assert_int_equal(f->nsent, n + 1);
	assert_int_equal(f->sent[n].at, T0 + 10 + 60000);
	assert_int_equal(f->sent[n].len, 24);
	assert_memory_equal(f->sent[n].b, ann, 24);
	assert_int_equal(info(f)->epoch, 1060);
	assert_int_equal(info(f)->readds, 0);
	assert_int_equal(f->nev, 2);

	/* the router restarts at T0+100 s; the next check sees epoch 20 */
	f->s.epoch0 = 0;
	f->s.epoch_t0 = T0 + 100000;
	run_until(f, T0 + 10 + 120000 + 100);
	assert_int_equal(f->nsent, n + 3);
	assert_int_equal(f->sent[n + 1].at, T0 + 10 + 120000);
	assert_memory_equal(f->sent[n + 1].b, ann, 24);
	assert_int_equal(f->sent[n + 2].at, T0 + 10 + 120000 + 10);
	want_pcp_map(&f->sent[n + 2], 7200, IPORT, ext);
	assert_int_equal(ev_at(f, NB_PMP_EV_READDED), T0 + 10 + 120000 + 20);
	assert_int_equal(info(f)->readds, 1);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);

	/* check_now: at once */
	n = f->nsent;
	nb_pmp_check_now(&f->m, f->now);
	pump(f);
	assert_int_equal(f->nsent, n + 1);
	assert_memory_equal(f->sent[n].b, ann, 24);
}

static void test_epoch_reset_natpmp(void **state)
{
	struct fx *f = &F;
	size_t n;

	(void)state;
	fx_reset(f);
	f->s.pcp = M_UNSUPP;
	f->p.check_s = 60;
	fx_start(f);
	run_until(f, T0 + 100);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	n = f->nsent;
	run_until(f, T0 + 20 + 60000 + 100);
	assert_int_equal(f->nsent, n + 1);
	assert_int_equal(f->sent[n].at, T0 + 20 + 60000);
	assert_true(is_natpmp_ext(&f->sent[n]));
	assert_int_equal(info(f)->epoch, 1060);
	assert_int_equal(info(f)->readds, 0);

	f->s.epoch0 = 0;
	f->s.epoch_t0 = T0 + 100000;
	run_until(f, T0 + 20 + 120000 + 100);
	assert_int_equal(f->nsent, n + 3);
	assert_true(is_natpmp_ext(&f->sent[n + 1]));
	assert_int_equal(f->sent[n + 2].at, T0 + 20 + 120000 + 10);
	want_natpmp_map(&f->sent[n + 2], IPORT, 7200);
	assert_int_equal(ev_at(f, NB_PMP_EV_READDED), T0 + 20 + 120000 + 20);
	assert_int_equal(info(f)->readds, 1);

	/* an epoch that advanced less than 7/8 of the time, by more than 2 s: reset */
	f->s.epoch0 = 60; /* 40 s on, where 52 +- 2 were due */
	f->s.epoch_t0 = T0 + 40 + 180000;
	run_until(f, T0 + 40 + 180000 + 100);
	assert_int_equal(info(f)->readds, 2);
}

/* ---- what is ignored ------------------------------------------------------------------ */

static void test_ignored(void **state)
{
	struct fx *f = &F;
	static const uint8_t ext[4] = { 203, 0, 113, 7 };
	struct nb_addr other = addr("192.168.1.2:5351"), port = addr("192.168.1.1:5350");
	uint8_t r[60], bad[12];
	uint32_t ig;

	(void)state;
	fx_reset(f);
	f->sim_on = false;
	fx_start(f);
	pump(f);
	pcp_map_resp(r, 0, 3600, 5, NONCE, 17, IPORT, 4000, ext);
	assert_int_equal(nb_pmp_input(&f->m, r, 60, &other, T0 + 1), -EINVAL);
	assert_int_equal(nb_pmp_input(&f->m, r, 60, &port, T0 + 1), -EINVAL);
	assert_int_equal(nb_pmp_input(&f->m, r, 60, NULL, T0 + 1), -EINVAL);
	assert_int_equal(info(f)->ignored, 3);
	drain(f);
	assert_int_equal(f->nev, 0);
	assert_false(nb_pmp_answered(&f->m));
	assert_int_equal(info(f)->status, NB_PMP_WORKING);
	/* garbage and our own request reflected */
	assert_int_equal(nb_pmp_input(&f->m, r, 59, &f->gw, T0 + 1), -EINVAL);
	assert_int_equal(nb_pmp_input(&f->m, f->sent[0].b, 60, &f->gw, T0 + 1), -EINVAL);
	assert_int_equal(nb_pmp_input(&f->m, f->sent[1].b, 2, &f->gw, T0 + 1), -EINVAL);
	assert_int_equal(nb_pmp_input(&f->m, r, 0, &f->gw, T0 + 1), -EINVAL);
	assert_int_equal(info(f)->ignored, 7);

	/* from the gateway, but not ours: wrong nonce (each byte), protocol, internal port */
	ig = info(f)->ignored;
	for (int i = 0; i < 12; i++) {
		memcpy(bad, NONCE, 12);
		bad[i] ^= 0x01;
		pcp_map_resp(r, 0, 3600, 5, bad, 17, IPORT, 4000, ext);
		(void)nb_pmp_input(&f->m, r, 60, &f->gw, T0 + 2);
		assert_int_equal(info(f)->ignored, ++ig);
		assert_int_equal(info(f)->status, NB_PMP_WORKING);
	}
	pcp_map_resp(r, 0, 3600, 5, NONCE, 6, IPORT, 4000, ext);
	(void)nb_pmp_input(&f->m, r, 60, &f->gw, T0 + 2);
	assert_int_equal(info(f)->ignored, ++ig);
	pcp_map_resp(r, 0, 3600, 5, NONCE, 17, IPORT + 1, 4000, ext);
	(void)nb_pmp_input(&f->m, r, 60, &f->gw, T0 + 2);
	assert_int_equal(info(f)->ignored, ++ig);
	/* refusals that are not ours are ignored too */
	pcp_map_resp(r, 2, 3600, 5, bad, 17, IPORT, 4000, ext);
	(void)nb_pmp_input(&f->m, r, 60, &f->gw, T0 + 2);
	assert_int_equal(info(f)->ignored, ++ig);
	/* a SUCCESS without the MAP payload */
	pcp_map_resp(r, 0, 3600, 5, NONCE, 17, IPORT, 4000, ext);
	assert_int_equal(nb_pmp_input(&f->m, r, 24, &f->gw, T0 + 2), -EINVAL); /* refused by the decoder */
	ig++;
	r[1] = 0x80 | 2; /* a PEER answer */
	(void)nb_pmp_input(&f->m, r, 60, &f->gw, T0 + 2);
	assert_int_equal(info(f)->ignored, ++ig);
	drain(f);
	assert_int_equal(count_ev(f, NB_PMP_EV_MAPPED), 0);
	assert_int_equal(count_ev(f, NB_PMP_EV_FAILED), 0);
	assert_int_equal(info(f)->status, NB_PMP_WORKING);
	assert_int_equal(info(f)->external.family, NB_AF_NONE);

	/* the real one */
	pcp_map_resp(r, 0, 3600, 5, NONCE, 17, IPORT, 4444, ext);
	assert_int_equal(nb_pmp_input(&f->m, r, 60, &f->gw, T0 + 3), 0);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	assert_int_equal(info(f)->external.port, 4444);
	assert_int_equal(info(f)->ignored, ig);

	/* NAT-PMP: a MAP answer for another internal port, or TCP */
	fx_reset(f);
	f->s.pcp = M_UNSUPP;
	f->s.natpmp_delay = 1000000; /* answers the probe, then we answer by hand */
	fx_start(f);
	pump(f);
	{
		uint8_t e[12] = { 0, 128, 0, 0, 0, 0, 0, 9, 203, 0, 113, 7 };
		uint8_t u[8] = { 0, 0x81, 0, 1, 0, 0, 0, 9 };

		assert_int_equal(nb_pmp_input(&f->m, u, 8, &f->gw, T0 + 1), 0);
		assert_int_equal(nb_pmp_input(&f->m, e, 12, &f->gw, T0 + 1), 0);
	}
	f->now = T0 + 1;
	pump(f);
	assert_true(is_natpmp_map(&f->sent[f->nsent - 1]));
	ig = info(f)->ignored;
	natpmp_map_resp(r, 1, 0, 9, IPORT + 1, 4000, 7200);
	(void)nb_pmp_input(&f->m, r, 16, &f->gw, T0 + 2);
	assert_int_equal(info(f)->ignored, ++ig);
	natpmp_map_resp(r, 2, 0, 9, IPORT, 4000, 7200);
	(void)nb_pmp_input(&f->m, r, 16, &f->gw, T0 + 2);
	assert_int_equal(info(f)->ignored, ++ig);
	assert_int_equal(nb_pmp_input(&f->m, r, 16, &other, T0 + 2), -EINVAL);
	assert_int_equal(info(f)->ignored, ++ig);
	assert_int_equal(info(f)->status, NB_PMP_WORKING);
	natpmp_map_resp(r, 1, 0, 9, IPORT, 4001, 7200);
	assert_int_equal(nb_pmp_input(&f->m, r, 16, &f->gw, T0 + 3), 0);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	assert_int_equal(info(f)->external.port, 4001);
}

/* ---- unusable addresses ---------------------------------------------------------------- */

static void test_unusable(void **state)
{
	struct fx *f = &F;
	static const uint8_t priv[4] = { 10, 1, 2, 3 }, cgn[4] = { 100, 64, 1, 2 };
	uint8_t del[12] = { 0, 1, 0, 0 };
	struct nb_addr same = addr("203.0.113.7:9999"), other = addr("198.51.100.99");

	(void)state;
	put16(del + 4, IPORT);

	/* PCP grants a private address: UNUSABLE, deleted with the same nonce */
	fx_reset(f);
	f->s.natpmp = M_OFF;
	memcpy(f->s.ext, priv, 4);
	fx_start(f);
	run_until(f, T0 + 10);
	assert_int_equal(info(f)->status, NB_PMP_UNUSABLE);
	assert_true(has(info(f)->reason, "10.1.2.3"));
	assert_true(has(info(f)->reason, "private"));
	assert_int_equal(f->nsent, 3);
	assert_int_equal(f->sent[2].at, T0 + 10);
	want_pcp_map(&f->sent[2], 0, 0, NULL);
	run_until(f, T0 + 10000);
	assert_int_equal(f->s.pcp_deletes, 1);
	assert_int_equal(f->nsent, 3);
	assert_int_equal(ev_at(f, NB_PMP_EV_FAILED), T0 + 20);
	assert_int_equal(count_ev(f, NB_PMP_EV_MAPPED), 0);
	assert_int_equal(info(f)->status, NB_PMP_UNUSABLE);

	/* NAT-PMP's external address is CGNAT: the mapping made is deleted */
	fx_reset(f);
	f->s.pcp = M_UNSUPP;
	memcpy(f->s.ext_natpmp, cgn, 4);
	fx_start(f);
	run_until(f, T0 + 10000);
	assert_int_equal(info(f)->status, NB_PMP_UNUSABLE);
	assert_true(has(info(f)->reason, "100.64.1.2"));
	assert_true(has(info(f)->reason, "CGNAT"));
	assert_int_equal(f->s.natpmp_deletes, 1);
	assert_int_equal(f->nsent, 4);
	assert_int_equal(f->sent[3].at, T0 + 20);
	assert_int_equal(f->sent[3].len, 12);
	assert_memory_equal(f->sent[3].b, del, 12);
	assert_int_equal(ev_at(f, NB_PMP_EV_FAILED), T0 + 30);

	/* a silent delete: bounded by stop_ms, then FAILED */
	fx_reset(f);
	f->s.natpmp = M_OFF;
	memcpy(f->s.ext, priv, 4);
	f->s.mute_deletes = true;
	fx_start(f);
	run_until(f, T0 + 10000);
	assert_int_equal(f->nsent, 5); /* deletes at 10, ~260, ~760 (PCP jitter; ~1760 is past stop_ms) */
	assert_int_equal(f->sent[2].at, T0 + 10);
	assert_true(f->sent[3].at >= T0 + 10 + 225 && f->sent[3].at <= T0 + 10 + 275);
	assert_true(f->sent[4].at >= T0 + 10 + 675 && f->sent[4].at <= T0 + 10 + 825);
	for (int i = 2; i < 5; i++)
		want_pcp_map(&f->sent[i], 0, 0, NULL);
	assert_int_equal(ev_at(f, NB_PMP_EV_FAILED), T0 + 1010);
	assert_int_equal(info(f)->status, NB_PMP_UNUSABLE);

	/* the broker sees another address: UNUSABLE and deleted */
	for (int proto = 0; proto < 2; proto++) {
		fx_reset(f);
		if (proto == 0)
			f->s.natpmp = M_OFF;
		else
			f->s.pcp = M_UNSUPP;
		fx_start(f);
		run_until(f, T0 + 100);
		assert_int_equal(info(f)->status, NB_PMP_MAPPED);
		nb_pmp_set_reflexive(&f->m, &same, T0 + 100);
		run_until(f, T0 + 200);
		assert_int_equal(info(f)->status, NB_PMP_MAPPED);
		nb_pmp_set_reflexive(&f->m, &other, T0 + 200);
		assert_int_equal(info(f)->status, NB_PMP_UNUSABLE);
		assert_true(has(info(f)->reason, "203.0.113.7"));
		assert_true(has(info(f)->reason, "198.51.100.99"));
		run_until(f, T0 + 10000);
		if (proto == 0) {
			want_pcp_map(&f->sent[f->nsent - 1], 0, 0, NULL);
			assert_int_equal(f->s.pcp_deletes, 1);
		} else {
			assert_memory_equal(f->sent[f->nsent - 1].b, del, 12);
			assert_int_equal(f->s.natpmp_deletes, 1);
		}
		assert_int_equal(f->sent[f->nsent - 1].at, T0 + 200);
		assert_int_equal(ev_at(f, NB_PMP_EV_FAILED), T0 + 210);
		assert_int_equal(info(f)->status, NB_PMP_UNUSABLE);
	}

	/* a reflexive address known before the mapping */
	fx_reset(f);
	f->s.natpmp = M_OFF;
	fx_start(f);
	nb_pmp_set_reflexive(&f->m, &other, T0);
	run_until(f, T0 + 10000);
	assert_int_equal(info(f)->status, NB_PMP_UNUSABLE);
	assert_int_equal(f->s.pcp_deletes, 1);
	assert_int_equal(count_ev(f, NB_PMP_EV_MAPPED), 0);
}

/* ---- stop ----------------------------------------------------------------------------- */

static void test_stop(void **state)
{
	struct fx *f = &F;
	uint8_t del[12] = { 0, 1, 0, 0 };

	(void)state;
	put16(del + 4, IPORT);

	/* PCP: the delete answered */
	fx_reset(f);
	f->s.natpmp = M_OFF;
	f->s.port = 41000;
	fx_start(f);
	run_until(f, T0 + 1000);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	nb_pmp_stop(&f->m, T0 + 1000);
	assert_false(nb_pmp_closed(&f->m));
	run_until(f, T0 + 1005);
	assert_int_equal(f->nsent, 3);
	assert_int_equal(f->sent[2].at, T0 + 1000);
	want_pcp_map(&f->sent[2], 0, 0, NULL); /* same nonce, lifetime 0 */
	run_until(f, T0 + 10000);
	assert_true(nb_pmp_closed(&f->m));
	assert_int_equal(info(f)->status, NB_PMP_CLOSED);
	assert_int_equal(ev_at(f, NB_PMP_EV_CLOSED), T0 + 1010);
	assert_int_equal(f->nsent, 3);
	nb_pmp_stop(&f->m, T0 + 10000);
	drain(f);
	assert_int_equal(count_ev(f, NB_PMP_EV_CLOSED), 1);

	/* NAT-PMP: the delete unanswered, bounded by stop_ms */
	fx_reset(f);
	f->s.pcp = M_UNSUPP;
	fx_start(f);
	run_until(f, T0 + 1000);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	f->s.natpmp = M_OFF;
	nb_pmp_stop(&f->m, T0 + 1000);
	run_until(f, T0 + 10000);
	assert_int_equal(f->nsent, 6);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(f->sent[3 + i].len, 12);
		assert_memory_equal(f->sent[3 + i].b, del, 12); /* lifetime 0, external port 0 */
	}
	assert_int_equal(f->sent[3].at, T0 + 1000);
	assert_int_equal(f->sent[4].at, T0 + 1250);
	assert_int_equal(f->sent[5].at, T0 + 1750);
	assert_int_equal(ev_at(f, NB_PMP_EV_CLOSED), T0 + 2000);
	assert_true(nb_pmp_closed(&f->m));
	assert_true(has(info(f)->reason, "did not answer the delete"));

	/* NAT-PMP: answered */
	fx_reset(f);
	f->s.pcp = M_UNSUPP;
	fx_start(f);
	run_until(f, T0 + 1000);
	nb_pmp_stop(&f->m, T0 + 1000);
	run_until(f, T0 + 10000);
	assert_int_equal(f->s.natpmp_deletes, 1);
	assert_int_equal(ev_at(f, NB_PMP_EV_CLOSED), T0 + 1010);

	/* stop while probing: closed at once, nothing deleted, nothing more sent */
	fx_reset(f);
	f->sim_on = false;
	fx_start(f);
	run_until(f, T0 + 5);
	nb_pmp_stop(&f->m, T0 + 5);
	assert_true(nb_pmp_closed(&f->m));
	run_until(f, T0 + 10000);
	assert_int_equal(f->nsent, 2);
	assert_int_equal(ev_at(f, NB_PMP_EV_CLOSED), T0 + 5);
	assert_int_equal(nb_pmp_deadline(&f->m), UINT64_MAX);

	/* stop while NAT-PMP maps (no answer yet): closed at once */
	fx_reset(f);
	f->s.pcp = M_UNSUPP;
	f->s.natpmp_delay = 10;
	fx_start(f);
	run_until(f, T0 + 10);
	assert_true(is_natpmp_map(&f->sent[f->nsent - 1]));
	nb_pmp_stop(&f->m, T0 + 10);
	assert_true(nb_pmp_closed(&f->m));

	/* stop before start */
	fx_reset(f);
	nb_pmp_init(&f->m, &f->p, &f->gw, &f->client, NONCE, T0);
	nb_pmp_stop(&f->m, T0);
	assert_true(nb_pmp_closed(&f->m));
	nb_pmp_start(&f->m, T0);
	assert_true(nb_pmp_closed(&f->m));
}

/* ---- errors and expiry while mapped ------------------------------------------------------ */

static void test_renew_transient(void **state)
{
	struct fx *f = &F;
	uint64_t r1;
	size_t n;

	(void)state;
	fx_reset(f);
	f->s.natpmp = M_OFF;
	f->s.life_cap = 600;
	fx_start(f);
	run_until(f, T0 + 100);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	n = f->nsent;
	r1 = T0 + 10 + 300000;
	f->s.pcp_result = NB_PCP_NO_RESOURCES;
	f->s.pcp_err_life = 10;
	run_until(f, r1 + 10);
	assert_int_equal(f->sent[n].at, r1);
	want_pcp_map(&f->sent[n], 7200, IPORT, (const uint8_t[]){ 203, 0, 113, 7 });
	/* refused for now: the mapping is kept */
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	assert_int_equal(count_ev(f, NB_PMP_EV_FAILED), 0);
	assert_string_equal(info(f)->reason, "");

	/* refused once, then granted: RENEWED */
	fx_reset(f);
	f->s.natpmp = M_OFF;
	f->s.life_cap = 600;
	fx_start(f);
	run_until(f, T0 + 100);
	f->s.pcp_result = NB_PCP_NETWORK_FAILURE;
	f->s.pcp_err_life = 10;
	run_until(f, r1 + 10);
	f->s.pcp_result = 0;
	run_until(f, r1 + 60000);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	assert_int_equal(count_ev(f, NB_PMP_EV_RENEWED), 1);

	/* a lasting refusal on renewal: REFUSED at once */
	fx_reset(f);
	f->s.natpmp = M_OFF;
	f->s.life_cap = 600;
	fx_start(f);
	run_until(f, T0 + 100);
	f->s.pcp_result = NB_PCP_NOT_AUTHORIZED;
	run_until(f, r1 + 60000);
	assert_int_equal(info(f)->status, NB_PMP_REFUSED);
	assert_int_equal(ev_at(f, NB_PMP_EV_FAILED), r1 + 10);
	assert_int_equal(sends_since(f, r1 + 1), 0);
}

/* Was a bug: after a transient refusal of a renewal (or a renewal that timed out),
 * pmp.c sets retry_at but leaves renew_at in the past, so run_timers()
 * starts the renewal again at once: the error lifetime / RETRY_MS wait is
 * never honoured (a PCP NO_RESOURCES with lifetime 10 s is retried in the
 * same poll; a silent router gets 4 requests every 3.75 s until expiry). */
static void test_bug_renew_retry_waits(void **state)
{
	struct fx *f = &F;
	uint64_t r1;
	size_t n;

	(void)state;
	fx_reset(f);
	f->s.natpmp = M_OFF;
	f->s.life_cap = 600;
	fx_start(f);
	run_until(f, T0 + 100);
	n = f->nsent;
	r1 = T0 + 10 + 300000;
	f->s.pcp_result = NB_PCP_NO_RESOURCES;
	f->s.pcp_err_life = 10;
	run_until(f, r1 + 10);
	f->s.pcp_result = 0;
	run_until(f, r1 + 60000);
	/* expected: the renewal again 10 s after the refusal, not before */
	assert_true(f->nsent >= n + 2);
	assert_int_equal(f->sent[n + 1].at, r1 + 10 + 10000);

	/* refused until the lifetime ends: MAPPED until then, a bounded number of
	 * retries, FAILED at the end */
	fx_reset(f);
	f->s.natpmp = M_OFF;
	f->s.life_cap = 600;
	fx_start(f);
	run_until(f, T0 + 100);
	n = f->nsent;
	f->s.pcp_result = NB_PCP_NO_RESOURCES;
	f->s.pcp_err_life = 10;
	run_until(f, T0 + 10 + 600000 - 1);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	assert_true(f->nsent - n >= 2 && f->nsent - n <= 300 / 10 + 1);
	run_until(f, T0 + 10 + 600000 + 60000);
	assert_int_not_equal(info(f)->status, NB_PMP_MAPPED);
	assert_int_equal(count_ev(f, NB_PMP_EV_FAILED), 1);
	assert_true(f->ev[f->nev - 1].at >= T0 + 10 + 600000);

	/* silent router: 4 sends, then the next try RETRY_MS (30 s) later */
	fx_reset(f);
	f->s.natpmp = M_OFF;
	f->s.life_cap = 600;
	fx_start(f);
	run_until(f, T0 + 100);
	n = f->nsent;
	f->s.pcp = M_OFF;
	run_until(f, r1 + 30000);
	assert_int_equal(f->nsent, n + 4);
	run_until(f, T0 + 10 + 600000);
	assert_true(f->nsent - n <= 4 * (300000 / 30000 + 1));
}

static void test_expiry(void **state)
{
	struct fx *f = &F;
	uint64_t exp;

	(void)state;
	for (int proto = 0; proto < 2; proto++) {
		fx_reset(f);
		if (proto == 0)
			f->s.natpmp = M_OFF;
		else
			f->s.pcp = M_UNSUPP;
		f->s.life_cap = 600;
		fx_start(f);
		run_until(f, T0 + 100);
		assert_int_equal(info(f)->status, NB_PMP_MAPPED);
		exp = info(f)->mapped_at + 600000;
		f->s.pcp = f->s.natpmp = M_OFF;
		run_until(f, exp - 1);
		assert_int_equal(info(f)->status, NB_PMP_MAPPED);
		assert_int_equal(count_ev(f, NB_PMP_EV_FAILED), 0);
		assert_true(sends_since(f, info(f)->mapped_at + 300000) >= 4);
		run_until(f, exp + 100000);
		assert_int_equal(info(f)->status, NB_PMP_UNAVAILABLE);
		assert_int_equal(ev_at(f, NB_PMP_EV_FAILED), exp);
		assert_true(has(info(f)->reason, "expired"));
		assert_int_equal(sends_since(f, exp), 0);
		assert_int_equal(nb_pmp_deadline(&f->m), UINT64_MAX);
		/* nothing to delete at stop */
		nb_pmp_stop(&f->m, exp + 100000);
		assert_true(nb_pmp_closed(&f->m));
	}
}

/* Was a bug: while STOPPING, a late answer to the renewal (a MAP answer with a
 * nonzero lifetime, sent before the delete) is taken as the delete's answer:
 * CLOSED, and the mapping stays on the router for its whole lifetime. A
 * delete is answered with lifetime 0 (RFC 6886 §3.4, RFC 6887 §15) or an
 * error. */
static void test_bug_late_renewal_not_delete(void **state)
{
	struct fx *f = &F;
	static const uint8_t ext[4] = { 203, 0, 113, 7 };
	uint8_t r[60];

	(void)state;
	fx_reset(f);
	f->s.natpmp = M_OFF;
	f->s.life_cap = 600;
	fx_start(f);
	run_until(f, T0 + 100);
	f->sim_on = false;
	run_until(f, T0 + 10 + 300000); /* the renewal goes out */
	f->now = T0 + 10 + 300001;
	nb_pmp_stop(&f->m, f->now);
	pump(f);
	want_pcp_map(&f->sent[f->nsent - 1], 0, 0, NULL);
	pcp_map_resp(r, 0, 600, 1300, NONCE, 17, IPORT, IPORT, ext); /* the renewal's answer */
	(void)nb_pmp_input(&f->m, r, 60, &f->gw, T0 + 10 + 300002);
	assert_false(nb_pmp_closed(&f->m));
	pcp_map_resp(r, 0, 0, 1300, NONCE, 17, IPORT, 0, (const uint8_t[]){ 0, 0, 0, 0 });
	(void)nb_pmp_input(&f->m, r, 60, &f->gw, T0 + 10 + 300003);
	assert_true(nb_pmp_closed(&f->m));
}

/* BUG (contract): pmp.h says nb_pmp_input returns -EINVAL for what it
 * ignores, but a PCP answer from the gateway with another nonce, protocol
 * or internal port returns 0 (and counts in info.ignored), as do NAT-PMP
 * MAP answers for another port. */
static void test_bug_ignored_returns_einval(void **state)
{
	struct fx *f = &F;
	static const uint8_t ext[4] = { 203, 0, 113, 7 };
	uint8_t r[60], bad[12];

	(void)state;
	fx_reset(f);
	f->sim_on = false;
	fx_start(f);
	pump(f);
	memcpy(bad, NONCE, 12);
	bad[0] ^= 1;
	pcp_map_resp(r, 0, 3600, 5, bad, 17, IPORT, 4000, ext);
	assert_int_equal(nb_pmp_input(&f->m, r, 60, &f->gw, T0 + 1), -EINVAL);
}

/* BUG (robustness): when a request cannot be built (here: the client
 * address is not IPv4/IPv6, so nb_pcp_encode_map() returns 0) nb_pmp_poll()
 * stops the exchange without marking it dead; with NAT-PMP silent the
 * machine stays WORKING forever with deadline UINT64_MAX instead of
 * UNAVAILABLE at probe_ms. */
static void test_bug_unbuildable_request(void **state)
{
	struct fx *f = &F;
	struct nb_addr gw = addr("192.168.1.1");

	(void)state;
	fx_reset(f);
	f->sim_on = false;
	memset(&f->client, 0, sizeof(f->client));
	f->now = T0;
	nb_pmp_init(&f->m, &f->p, &gw, &f->client, NONCE, T0);
	nb_pmp_start(&f->m, T0);
	run_until(f, T0 + 10000);
	assert_int_equal(info(f)->status, NB_PMP_UNAVAILABLE);
}

/* PCP over IPv6 (a firewall pinhole for the client's own address): only PCP
 * is asked (NAT-PMP is IPv4-only), the MAP suggests the client's address and
 * the port, an answer with an IPv4(-mapped) external address is ignored, an
 * IPv6 one maps, the broker's IPv6 reflexive address is compared, and the
 * stop deletes with the same nonce. */
static void test_ipv6_pinhole(void **state)
{
	static const uint8_t me[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0x13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 };
	static const uint8_t other[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 };
	struct fx *f = &F;
	struct nb_addr gw6 = addr("2001:db8:13::1"), refl;
	uint8_t r[60];
	const uint8_t *q;

	(void)state;
	fx_reset(f);
	f->sim_on = false;
	f->gw = addr("[2001:db8:13::1]:5351");
	f->client = addr("2001:db8:13::2");
	f->now = T0;
	nb_pmp_init(&f->m, &f->p, &gw6, &f->client, NONCE, T0); /* p.natpmp is true: ignored over IPv6 */
	nb_pmp_start(&f->m, T0);
	pump(f);
	assert_int_equal(f->nsent, 1); /* PCP only: no NAT-PMP external-address request */
	q = f->sent[0].b;
	assert_int_equal(f->sent[0].len, 60);
	assert_memory_equal(q, ((const uint8_t[]){ 2, 1, 0, 0, 0, 0, 0x1c, 0x20 }), 8); /* MAP, 7200 s */
	assert_memory_equal(q + 8, me, 16);                                             /* client */
	assert_memory_equal(q + 24, NONCE, 12);
	assert_memory_equal(q + 36, ((const uint8_t[]){ 17, 0, 0, 0, 0x0f, 0xa0, 0x0f, 0xa0 }), 8);
	assert_memory_equal(q + 44, me, 16); /* suggested external: itself */

	/* a success for an IPv4 external address (::ffff:203.0.113.13): refused */
	pcp_map_resp(r, 0, 7200, 5, NONCE, 17, IPORT, IPORT, (const uint8_t[]){ 203, 0, 113, 13 });
	assert_int_equal(nb_pmp_input(&f->m, r, 60, &f->gw, T0 + 5), -EINVAL);
	assert_int_equal(info(f)->status, NB_PMP_WORKING);
	assert_int_equal(info(f)->ignored, 1);
	/* from anywhere but the gateway (here the client itself): refused */
	memcpy(r + 44, me, 16);
	assert_int_equal(nb_pmp_input(&f->m, r, 60, &F.client, T0 + 5), -EINVAL);
	/* every prefix of the good answer: refused */
	for (size_t n = 0; n < 60; n++)
		assert_int_equal(nb_pmp_input(&f->m, r, n, &f->gw, T0 + 5), -EINVAL);
	assert_int_equal(info(f)->status, NB_PMP_WORKING);
	/* the IPv6 answer maps */
	assert_int_equal(nb_pmp_input(&f->m, r, 60, &f->gw, T0 + 6), 0);
	drain(f);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	assert_int_equal(info(f)->protocol, NB_PMP_PCP);
	assert_int_equal(info(f)->external.family, NB_AF_INET6);
	assert_memory_equal(info(f)->external.ip, me, 16);
	assert_int_equal(info(f)->external.port, IPORT);
	assert_int_equal(count_ev(f, NB_PMP_EV_MAPPED), 1);

	/* an IPv4 reflexive address is not ours to compare; the same IPv6 one is fine */
	refl = addr("203.0.113.13:1234");
	nb_pmp_set_reflexive(&f->m, &refl, T0 + 7);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);
	refl = addr("[2001:db8:13::2]:4000");
	nb_pmp_set_reflexive(&f->m, &refl, T0 + 7);
	assert_int_equal(info(f)->status, NB_PMP_MAPPED);

	/* stop: a delete with the same nonce and client, lifetime 0 */
	f->nsent = 0;
	nb_pmp_stop(&f->m, T0 + 8);
	f->now = T0 + 8;
	pump(f);
	assert_int_equal(f->nsent, 1);
	q = f->sent[0].b;
	assert_memory_equal(q + 4, ((const uint8_t[]){ 0, 0, 0, 0 }), 4);
	assert_memory_equal(q + 8, me, 16);
	assert_memory_equal(q + 24, NONCE, 12);
	pcp_map_resp(r, 0, 0, 6, NONCE, 17, IPORT, IPORT, (const uint8_t[]){ 0, 0, 0, 0 });
	memcpy(r + 44, me, 16);
	assert_int_equal(nb_pmp_input(&f->m, r, 60, &f->gw, T0 + 9), 0);
	assert_true(nb_pmp_closed(&f->m));

	/* another IPv6 address than the broker sees: unusable, deleted */
	fx_reset(f);
	f->sim_on = false;
	f->gw = addr("[2001:db8:13::1]:5351");
	f->client = addr("2001:db8:13::2");
	f->now = T0;
	nb_pmp_init(&f->m, &f->p, &gw6, &f->client, NONCE, T0);
	nb_pmp_start(&f->m, T0);
	pump(f);
	refl = addr("[2001:db8:13::2]:4000");
	nb_pmp_set_reflexive(&f->m, &refl, T0 + 1);
	pcp_map_resp(r, 0, 7200, 5, NONCE, 17, IPORT, IPORT, (const uint8_t[]){ 0, 0, 0, 0 });
	memcpy(r + 44, other, 16);
	assert_int_equal(nb_pmp_input(&f->m, r, 60, &f->gw, T0 + 2), 0);
	assert_int_equal(info(f)->status, NB_PMP_UNUSABLE);
	assert_non_null(strstr(info(f)->reason, "not the address the broker sees"));

	/* PCP off over IPv6: nothing to ask, and it says why */
	fx_reset(f);
	f->p.pcp = false;
	f->client = addr("2001:db8:13::2");
	nb_pmp_init(&f->m, &f->p, &gw6, &f->client, NONCE, T0);
	nb_pmp_start(&f->m, T0);
	assert_int_equal(info(f)->status, NB_PMP_UNAVAILABLE);
	assert_non_null(strstr(info(f)->reason, "NAT-PMP is IPv4-only"));
}

static void test_events_bounded_and_strings(void **state)
{
	struct fx *f = &F;
	struct nb_pmp_event ev;
	int n = 0;

	(void)state;
	assert_string_equal(nb_pmp_proto_string(NB_PMP_PCP), "pcp");
	assert_string_equal(nb_pmp_proto_string(NB_PMP_NATPMP), "nat-pmp");
	assert_string_equal(nb_pmp_proto_string(NB_PMP_NONE), "");
	/* many renewals never drained: the queue keeps the newest 8 */
	fx_reset(f);
	f->s.natpmp = M_OFF;
	f->s.life_cap = 10;
	fx_start(f);
	for (int i = 0; i < 100; i++) {
		struct nb_pmp_out out;
		uint64_t d;

		deliver(f);
		while (nb_pmp_poll(&f->m, f->now, &out) == 1)
			if (out.bytes[0] == 2)
				sim_pcp(f, out.bytes, out.len);
		d = nb_pmp_deadline(&f->m);
		if (next_pending(f) < d)
			d = next_pending(f);
		f->now = d;
	}
	while (nb_pmp_event(&f->m, &ev) == 1) {
		assert_true(ev.kind == NB_PMP_EV_RENEWED);
		n++;
	}
	assert_int_equal(n, NB_PMP_EVENTS);
	assert_true(info(f)->renewals >= 10);
}

/* ---- pick ----------------------------------------------------------------------------------- */

static void test_pick(void **state)
{
	static const struct {
		bool pmp_on, upnp_on;
		enum nb_pmp_status pmp;
		bool answered;
		enum nb_upnp_status upnp;
		uint64_t now;
		enum nb_pick want;
		uint64_t wake;
	} c[] = {
		/* pmp mapped -> PMP, whatever UPnP does */
		{ true, true, NB_PMP_MAPPED, true, NB_UPNP_MAPPED, 100, NB_PICK_PMP, UINT64_MAX },
		{ true, true, NB_PMP_MAPPED, true, NB_UPNP_WORKING, 100, NB_PICK_PMP, UINT64_MAX },
		{ true, false, NB_PMP_MAPPED, true, NB_UPNP_IDLE, 100, NB_PICK_PMP, UINT64_MAX },
		{ true, true, NB_PMP_MAPPED, true, NB_UPNP_REFUSED, 100, NB_PICK_PMP, UINT64_MAX },
		/* pmp working, upnp mapped, pmp silent past the grace -> UPNP */
		{ true, true, NB_PMP_WORKING, false, NB_UPNP_MAPPED, 1250, NB_PICK_UPNP, UINT64_MAX },
		{ true, true, NB_PMP_WORKING, false, NB_UPNP_MAPPED, 9999, NB_PICK_UPNP, UINT64_MAX },
		{ true, true, NB_PMP_IDLE, false, NB_UPNP_MAPPED, 1250, NB_PICK_UPNP, UINT64_MAX },
		/* ... before the grace: WAIT, wake at the grace */
		{ true, true, NB_PMP_WORKING, false, NB_UPNP_MAPPED, 1249, NB_PICK_WAIT, 1250 },
		{ true, true, NB_PMP_WORKING, false, NB_UPNP_MAPPED, 1000, NB_PICK_WAIT, 1250 },
		/* pmp working and answered: WAIT for it, even with UPnP mapped */
		{ true, true, NB_PMP_WORKING, true, NB_UPNP_MAPPED, 9999, NB_PICK_WAIT, UINT64_MAX },
		/* pmp working, UPnP not mapped: WAIT, only an event wakes */
		{ true, true, NB_PMP_WORKING, false, NB_UPNP_WORKING, 9999, NB_PICK_WAIT, UINT64_MAX },
		{ true, true, NB_PMP_WORKING, false, NB_UPNP_UNAVAILABLE, 9999, NB_PICK_WAIT, UINT64_MAX },
		{ true, false, NB_PMP_WORKING, false, NB_UPNP_MAPPED, 9999, NB_PICK_WAIT, UINT64_MAX },
		/* pmp failed or off, upnp mapped -> UPNP */
		{ true, true, NB_PMP_UNAVAILABLE, false, NB_UPNP_MAPPED, 1000, NB_PICK_UPNP, UINT64_MAX },
		{ true, true, NB_PMP_REFUSED, true, NB_UPNP_MAPPED, 1000, NB_PICK_UPNP, UINT64_MAX },
		{ true, true, NB_PMP_UNUSABLE, true, NB_UPNP_MAPPED, 1000, NB_PICK_UPNP, UINT64_MAX },
		{ true, true, NB_PMP_CLOSED, true, NB_UPNP_MAPPED, 1000, NB_PICK_UPNP, UINT64_MAX },
		{ false, true, NB_PMP_IDLE, false, NB_UPNP_MAPPED, 1000, NB_PICK_UPNP, UINT64_MAX },
		{ false, true, NB_PMP_MAPPED, true, NB_UPNP_MAPPED, 1000, NB_PICK_UPNP, UINT64_MAX },
		/* pmp failed or off, upnp working -> WAIT */
		{ true, true, NB_PMP_UNAVAILABLE, false, NB_UPNP_WORKING, 1000, NB_PICK_WAIT, UINT64_MAX },
		{ true, true, NB_PMP_REFUSED, true, NB_UPNP_IDLE, 1000, NB_PICK_WAIT, UINT64_MAX },
		{ false, true, NB_PMP_IDLE, false, NB_UPNP_WORKING, 1000, NB_PICK_WAIT, UINT64_MAX },
		/* both failed or off -> NONE */
		{ true, true, NB_PMP_UNAVAILABLE, false, NB_UPNP_UNAVAILABLE, 1000, NB_PICK_NONE, UINT64_MAX },
		{ true, true, NB_PMP_REFUSED, true, NB_UPNP_REFUSED, 1000, NB_PICK_NONE, UINT64_MAX },
		{ true, true, NB_PMP_UNUSABLE, true, NB_UPNP_UNUSABLE, 1000, NB_PICK_NONE, UINT64_MAX },
		{ true, true, NB_PMP_CLOSED, true, NB_UPNP_CLOSED, 1000, NB_PICK_NONE, UINT64_MAX },
		{ true, false, NB_PMP_UNAVAILABLE, false, NB_UPNP_MAPPED, 1000, NB_PICK_NONE, UINT64_MAX },
		{ false, false, NB_PMP_MAPPED, true, NB_UPNP_MAPPED, 1000, NB_PICK_NONE, UINT64_MAX },
		{ false, true, NB_PMP_IDLE, false, NB_UPNP_REFUSED, 1000, NB_PICK_NONE, UINT64_MAX },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct nb_pick_in in = {
			.pmp_on = c[i].pmp_on,
			.upnp_on = c[i].upnp_on,
			.pmp = c[i].pmp,
			.pmp_answered = c[i].answered,
			.upnp = c[i].upnp,
			.started = 1000,
			.grace_ms = 250,
		};
		uint64_t wake = 7;

		if (nb_portmap_pick(&in, c[i].now, &wake) != c[i].want || wake != c[i].wake)
			fail_msg("case %zu: got %d wake %llu", i, (int)nb_portmap_pick(&in, c[i].now, NULL),
				 (unsigned long long)wake);
		assert_int_equal(nb_portmap_pick(&in, c[i].now, NULL), c[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pcp_preferred),
		cmocka_unit_test(test_natpmp_only),
		cmocka_unit_test(test_pcp_only),
		cmocka_unit_test(test_silence),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_pcp_results),
		cmocka_unit_test(test_natpmp_results),
		cmocka_unit_test(test_renew_natpmp),
		cmocka_unit_test(test_renew_pcp),
		cmocka_unit_test(test_other_port_kept),
		cmocka_unit_test(test_epoch_reset_pcp),
		cmocka_unit_test(test_epoch_reset_natpmp),
		cmocka_unit_test(test_ignored),
		cmocka_unit_test(test_unusable),
		cmocka_unit_test(test_stop),
		cmocka_unit_test(test_renew_transient),
		cmocka_unit_test(test_bug_renew_retry_waits),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_bug_late_renewal_not_delete),
		cmocka_unit_test(test_bug_ignored_returns_einval),
		cmocka_unit_test(test_bug_unbuildable_request),
		cmocka_unit_test(test_ipv6_pinhole),
		cmocka_unit_test(test_events_bounded_and_strings),
		cmocka_unit_test(test_pick),
	};

	nb_log_set_level(NB_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
