/* tests/unit/test_xport_loop.c - two TCP-transport endpoints (peer/xport_run.h,
 * real usrsctp) on one uv loop, joined by an in-memory link that seals every
 * packet as a data-channel frame (peer/datachan.h, payload kind 0x02) and
 * opens it on the other side, with seeded 1 % loss, a 5 ms delay and some
 * reordering. Correctness never depends on the wall clock; only the
 * watchdogs (fail after 60 s) and the reported timings do.
 *
 *  - 10 MB each way on one connection, SHA-256 equal at both ends;
 *  - half-close: A sends then fins, B gets all then EOF, B keeps sending,
 *    then fins; both close gracefully;
 *  - refused service: the opener gets "refused", both associations go;
 *  - a reader that never reads: the writer's accepted bytes stop growing
 *    below 3 MiB, and a second connection on the same xport still moves
 *    1 MB each way;
 *  - association limits: the opener's 65th open fails at once, the
 *    acceptor aborts its 65th association; both counted.
 * Each test starts and stops the usrsctp stack (usrsctp_finish must succeed). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "peer/datachan.h"
#include "peer/xport_run.h"

#define KIND_XPORT 0x02
#define DELAY_MS 5
#define LOSS_PER_MILLE 10   /* 1 % */
#define REORDER_PER_MILLE 30 /* 3 % get 1..4 ms more */
#define PAT_LEN ((1u << 20) + 7)
#define MAX_APPS 160
#define WATCHDOG_MS 240000 /* a hang guard, not a speed test (valgrind is slow) */

struct pkt {
	struct pkt *next;
	uint64_t at;
	size_t len;
	uint8_t frame[NB_DC_MAX_DATAGRAM];
};

struct env;

struct side {
	struct env *env;
	struct side *peer;
	struct nb_xport *x;
	struct nb_dc dc;
	uv_timer_t timer; /* delivery of packets to this side */
	struct pkt *q;
	uint64_t frames, lost, max_frame;
};

struct app {
	struct nb_xconn *c;
	uint64_t tx_total, tx, rx;
	size_t pat_off;
	bool fin_when_done, reply_after_eof, pause_reading;
	bool open, eof, fin, refused, closed, reset;
	EVP_MD_CTX *tx_sha, *rx_sha;
};

struct env {
	uv_loop_t loop;
	uv_timer_t watchdog;
	struct side a, b;
	uint64_t rng;
	bool closing;
	struct app apps[MAX_APPS];
	int napps;
	struct app b_template; /* what B's accepted connections do */
};

static uint8_t *pat;

static uint64_t rng_next(struct env *e)
{
	/* xorshift64 */
	e->rng ^= e->rng << 13;
	e->rng ^= e->rng >> 7;
	e->rng ^= e->rng << 17;
	return e->rng;
}

static struct app *app_new(struct env *e)
{
	struct app *a;

	assert_true(e->napps < MAX_APPS);
	a = &e->apps[e->napps++];
	memset(a, 0, sizeof(*a));
	a->tx_sha = EVP_MD_CTX_new();
	a->rx_sha = EVP_MD_CTX_new();
	assert_non_null(a->tx_sha);
	assert_non_null(a->rx_sha);
	assert_int_equal(EVP_DigestInit_ex(a->tx_sha, EVP_sha256(), NULL), 1);
	assert_int_equal(EVP_DigestInit_ex(a->rx_sha, EVP_sha256(), NULL), 1);
	return a;
}

static void digest(EVP_MD_CTX *ctx, uint8_t out[32])
{
	unsigned int n = 0;

	assert_int_equal(EVP_DigestFinal_ex(ctx, out, &n), 1);
	assert_int_equal(n, 32);
}

/* ---- the link ---- */

static void deliver(uv_timer_t *t);

static void arm(struct side *to)
{
	uint64_t now = uv_now(&to->env->loop);

	if (!to->q)
		return;
	uv_timer_start(&to->timer, deliver, to->q->at > now ? to->q->at - now : 0, 0);
}

/* xport -> link: seal as kind 0x02 with the sender's keys, then lose,
 * delay or reorder it on the way to the other side. */
static void on_send(void *arg, const uint8_t *pkt, size_t len)
{
	struct side *from = arg, *to = from->peer;
	struct env *e = from->env;
	uint8_t payload[NB_DC_MAX_PAYLOAD];
	struct pkt *p, **pp;
	uint64_t now = uv_now(&e->loop), r;
	ssize_t n;

	assert_true(len >= 12 && len <= NB_XPORT_MAX_PACKET);
	if (e->closing)
		return;
	payload[0] = KIND_XPORT;
	memcpy(payload + 1, pkt, len);
	p = malloc(sizeof(*p));
	assert_non_null(p);
	n = nb_dc_seal(&from->dc, payload, len + 1, p->frame, sizeof(p->frame), now);
	assert_true(n > 0);
	assert_true(n <= NB_DC_MAX_DATAGRAM); /* every sealed datagram <= 1400 */
	assert_int_equal((size_t)n, len + 1 + NB_DC_OVERHEAD);
	p->len = (size_t)n;
	from->frames++;
	if ((size_t)n > from->max_frame)
		from->max_frame = (size_t)n;
	r = rng_next(e) % 1000;
	if (r < LOSS_PER_MILLE) {
		from->lost++;
		free(p);
		return;
	}
	p->at = now + DELAY_MS;
	if (r < LOSS_PER_MILLE + REORDER_PER_MILLE)
		p->at += 1 + rng_next(e) % 4;
	for (pp = &to->q; *pp && (*pp)->at <= p->at; pp = &(*pp)->next)
		;
	p->next = *pp;
	*pp = p;
	if (to->q == p)
		arm(to);
}

static void deliver(uv_timer_t *t)
{
	struct side *to = t->data;
	uint64_t now = uv_now(&to->env->loop);
	uint8_t out[NB_DC_MAX_PAYLOAD];

	while (to->q && to->q->at <= now && !to->env->closing) {
		struct pkt *p = to->q;
		ssize_t n;

		to->q = p->next;
		n = nb_dc_open(&to->dc, p->frame, p->len, out, sizeof(out), now);
		assert_true(n >= 2);
		assert_int_equal(out[0], KIND_XPORT);
		nb_xport_input(to->x, out + 1, (size_t)n - 1);
		free(p);
	}
	arm(to);
}

/* ---- the applications ---- */

static void pump(struct app *a)
{
	while (a->c && !a->fin && a->tx < a->tx_total) {
		size_t off = (size_t)((a->tx + a->pat_off) % PAT_LEN), n = PAT_LEN - off;
		ssize_t r;

		if (n > a->tx_total - a->tx)
			n = (size_t)(a->tx_total - a->tx);
		if (n > 300000)
			n = 300000;
		r = nb_xport_write(a->c, pat + off, n);
		assert_true(r >= 0);
		if (r == 0)
			return;
		assert_int_equal(EVP_DigestUpdate(a->tx_sha, pat + off, (size_t)r), 1);
		a->tx += (uint64_t)r;
	}
	if (a->c && !a->fin && a->tx == a->tx_total && a->fin_when_done) {
		a->fin = true;
		assert_int_equal(nb_xport_shutdown(a->c), 0);
		assert_int_equal(nb_xport_write(a->c, pat, 1), NB_XPORT_E_STATE);
	}
}

static void on_event(void *arg, struct nb_xconn *c, enum nb_xport_event ev, const uint8_t *d, size_t n)
{
	struct app *a = nb_xconn_user(c);

	(void)arg;
	assert_non_null(a);
	switch (ev) {
	case NB_XPORT_EV_OPEN:
		assert_false(a->open);
		a->open = true;
		a->c = c;
		if (a->pause_reading)
			nb_xport_pause(c, true);
		if (!a->reply_after_eof)
			pump(a);
		break;
	case NB_XPORT_EV_DATA:
		assert_true(a->open);
		assert_false(a->eof);
		assert_true(n > 0 && n <= NB_XPORT_DATA_MAX);
		assert_int_equal(EVP_DigestUpdate(a->rx_sha, d, n), 1);
		a->rx += n;
		break;
	case NB_XPORT_EV_EOF:
		assert_false(a->eof);
		a->eof = true;
		if (a->reply_after_eof)
			pump(a);
		break;
	case NB_XPORT_EV_WRITABLE:
		pump(a);
		break;
	case NB_XPORT_EV_REFUSED:
		a->refused = true;
		a->c = NULL;
		break;
	case NB_XPORT_EV_CLOSED:
		a->closed = true;
		a->c = NULL;
		break;
	case NB_XPORT_EV_RESET:
		a->reset = true;
		a->c = NULL;
		break;
	}
}

static bool on_accept(void *arg, struct nb_xconn *c, const char *service)
{
	struct side *s = arg;
	struct app *a;

	if (strcmp(service, "tcp:9") == 0)
		return false;
	a = app_new(s->env);
	a->tx_total = s->env->b_template.tx_total;
	a->pat_off = 12345;
	a->fin_when_done = s->env->b_template.fin_when_done;
	a->reply_after_eof = s->env->b_template.reply_after_eof;
	a->pause_reading = strcmp(service, "tcp:sink") == 0;
	nb_xconn_set_user(c, a);
	return true;
}

/* ---- the environment ---- */

static void keys_of(struct nb_seal_keys *a, struct nb_seal_keys *b)
{
	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	for (int i = 0; i < 32; i++) {
		a->send[i] = (uint8_t)i;
		a->recv[i] = (uint8_t)(0x80 + i);
	}
	memcpy(b->send, a->recv, 32);
	memcpy(b->recv, a->send, 32);
	a->local_index = b->remote_index = 0x100;
	b->local_index = a->remote_index = 0x200;
}

static void on_watchdog(uv_timer_t *t)
{
	(void)t;
}

static struct env *env_new(unsigned a_max, unsigned b_max)
{
	struct env *e = calloc(1, sizeof(*e));
	struct nb_seal_keys ka, kb;
	struct nb_xport_config ca = { .listen = false, .max_assocs = a_max };
	struct nb_xport_config cb = { .listen = true, .max_assocs = b_max };
	struct nb_xport_cbs cba = { .send = on_send, .accept = NULL, .event = on_event, .arg = NULL };
	struct nb_xport_cbs cbb = { .send = on_send, .accept = on_accept, .event = on_event, .arg = NULL };

	assert_non_null(e);
	assert_int_equal(uv_loop_init(&e->loop), 0);
	e->rng = 0x9E3779B97F4A7C15ull;
	e->a.env = e->b.env = e;
	e->a.peer = &e->b;
	e->b.peer = &e->a;
	keys_of(&ka, &kb);
	assert_int_equal(nb_dc_init(&e->a.dc, &ka, uv_now(&e->loop)), 0);
	assert_int_equal(nb_dc_init(&e->b.dc, &kb, uv_now(&e->loop)), 0);
	uv_timer_init(&e->loop, &e->a.timer);
	uv_timer_init(&e->loop, &e->b.timer);
	e->a.timer.data = &e->a;
	e->b.timer.data = &e->b;
	uv_timer_init(&e->loop, &e->watchdog);
	uv_timer_start(&e->watchdog, on_watchdog, 50, 50);
	cba.arg = &e->a;
	cbb.arg = &e->b;
	assert_int_equal(nb_xport_new(&e->loop, &ca, &cba, &e->a.x), 0);
	assert_int_equal(nb_xport_new(&e->loop, &cb, &cbb, &e->b.x), 0);
	return e;
}

static void env_free(struct env *e)
{
	int users = -1;
	bool up = true;
	unsigned fails = 99;

	e->closing = true;
	nb_xport_free(e->a.x);
	nb_xport_free(e->b.x);
	nb_xport_stack_state(&users, &up, &fails);
	assert_int_equal(users, 0);
	assert_false(up); /* usrsctp_finish succeeded */
	assert_int_equal(fails, 0);
	uv_close((uv_handle_t *)&e->a.timer, NULL);
	uv_close((uv_handle_t *)&e->b.timer, NULL);
	uv_close((uv_handle_t *)&e->watchdog, NULL);
	assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&e->loop), 0);
	for (struct side *s = &e->a; s; s = s == &e->a ? &e->b : NULL)
		while (s->q) {
			struct pkt *p = s->q;

			s->q = p->next;
			free(p);
		}
	nb_dc_wipe(&e->a.dc);
	nb_dc_wipe(&e->b.dc);
	for (int i = 0; i < e->napps; i++) {
		EVP_MD_CTX_free(e->apps[i].tx_sha);
		EVP_MD_CTX_free(e->apps[i].rx_sha);
	}
	free(e);
}

typedef bool (*cond_fn)(struct env *e, void *arg);

/* Run the loop until cond holds; false after ms of loop time. */
static bool run_until(struct env *e, cond_fn cond, void *arg, uint64_t ms)
{
	uint64_t end;

	uv_update_time(&e->loop);
	end = uv_now(&e->loop) + ms;
	while (!cond(e, arg)) {
		if (uv_now(&e->loop) >= end)
			return false;
		uv_run(&e->loop, UV_RUN_ONCE);
	}
	return true;
}

static bool both_closed(struct env *e, void *arg)
{
	struct app **ab = arg;

	(void)e;
	return (ab[0]->closed || ab[0]->reset) && (ab[1]->closed || ab[1]->reset);
}

static bool wait_ms(struct env *e, void *arg)
{
	(void)e;
	(void)arg;
	return false;
}

static bool no_assocs(struct env *e, void *arg)
{
	struct nb_xport_stats sa, sb;

	(void)arg;
	nb_xport_get_stats(e->a.x, &sa);
	nb_xport_get_stats(e->b.x, &sb);
	return sa.assocs == 0 && sb.assocs == 0;
}

static bool has_app(struct env *e, void *arg)
{
	return *(int *)arg < e->napps;
}

/* The application B made for its i-th accepted connection (apps[i]). */
static struct app *wait_b_app(struct env *e, int i)
{
	assert_true(run_until(e, has_app, &i, WATCHDOG_MS));
	return &e->apps[i];
}

static void check_pair(struct app *x, struct app *y)
{
	uint8_t h1[32], h2[32];

	assert_int_equal(x->tx, y->rx);
	digest(x->tx_sha, h1);
	digest(y->rx_sha, h2);
	assert_memory_equal(h1, h2, 32);
}

static void report(struct env *e, const char *what, double secs)
{
	struct nb_xport_stats sa, sb;

	nb_xport_get_stats(e->a.x, &sa);
	nb_xport_get_stats(e->b.x, &sb);
	printf("# %s: %.2f s (0: not timed); frames A->B %llu (lost %llu), B->A %llu (lost %llu); largest SCTP packet %llu/%llu, "
	       "sealed %llu/%llu\n",
	       what, secs, (unsigned long long)e->a.frames, (unsigned long long)e->a.lost,
	       (unsigned long long)e->b.frames, (unsigned long long)e->b.lost,
	       (unsigned long long)sa.max_pkt_out, (unsigned long long)sb.max_pkt_out,
	       (unsigned long long)e->a.max_frame, (unsigned long long)e->b.max_frame);
	assert_true(sa.max_pkt_out <= NB_XPORT_MAX_PACKET && sb.max_pkt_out <= NB_XPORT_MAX_PACKET);
	assert_int_equal(sa.pkts_too_big + sb.pkts_too_big, 0);
	assert_int_equal(sa.protocol_errors + sb.protocol_errors, 0);
}

/* ---- the tests ---- */

static void test_bulk_both_ways(void **state)
{
	struct env *e = env_new(0, 0);
	struct app *a = app_new(e), *b, *ab[2];
	uint64_t t0 = uv_hrtime();
	/* NB_XPORT_LOOP_MB (1..10, default 10): less under valgrind. */
	const char *mb = getenv("NB_XPORT_LOOP_MB");
	const uint64_t total = (mb != NULL && mb[0] >= '1' && mb[0] <= '9' && mb[1] == '\0' ? (uint64_t)(mb[0] - '0') : 10u) *
			       1000 * 1000;

	(void)state;
	a->tx_total = total;
	a->fin_when_done = true;
	e->b_template.tx_total = total;
	e->b_template.fin_when_done = true;
	assert_int_equal(nb_xport_open(e->a.x, "tcp:22", a, &a->c), 0);
	b = wait_b_app(e, 1);
	ab[0] = a;
	ab[1] = b;
	assert_true(run_until(e, both_closed, ab, WATCHDOG_MS));
	printf("# %llu MB each way\n", (unsigned long long)(total / 1000000));
	report(e, "each way at 1 % loss", (double)(uv_hrtime() - t0) / 1e9);
	assert_true(a->open && b->open && a->eof && b->eof);
	assert_true(a->closed && b->closed);
	assert_false(a->reset || b->reset);
	assert_int_equal(a->tx, total);
	assert_int_equal(b->tx, total);
	check_pair(a, b);
	check_pair(b, a);
	assert_true(e->a.lost > 0 && e->b.lost > 0);
	assert_true(run_until(e, no_assocs, NULL, 1000));
	env_free(e);
}

static void test_half_close(void **state)
{
	struct env *e = env_new(0, 0);
	struct app *a = app_new(e), *b, *ab[2];

	(void)state;
	a->tx_total = 100000;
	a->fin_when_done = true;
	e->b_template.tx_total = 200000;
	e->b_template.fin_when_done = true;
	e->b_template.reply_after_eof = true;
	assert_int_equal(nb_xport_open(e->a.x, "tcp:22", a, &a->c), 0);
	b = wait_b_app(e, 1);
	ab[0] = a;
	ab[1] = b;
	assert_true(run_until(e, both_closed, ab, WATCHDOG_MS));
	assert_true(a->closed && b->closed);
	assert_true(a->eof && b->eof);
	assert_int_equal(b->rx, 100000);
	assert_int_equal(a->rx, 200000);
	check_pair(a, b);
	check_pair(b, a);
	report(e, "half-close", 0);
	assert_true(run_until(e, no_assocs, NULL, 1000));
	env_free(e);
}

static bool refused_and_gone(struct env *e, void *arg)
{
	struct app *a = arg;

	return a->refused && no_assocs(e, NULL);
}

static void test_refused(void **state)
{
	struct env *e = env_new(0, 0);
	struct app *a = app_new(e);
	struct nb_xport_stats sb;

	uint8_t junk[NB_XPORT_MAX_PACKET + 1];
	struct nb_xport_stats sa;

	(void)state;
	run_until(e, wait_ms, NULL, 50);
	nb_xport_get_stats(e->a.x, &sa);
	assert_false(sa.ticking); /* no association: no timer */
	a->tx_total = 1000;
	assert_int_equal(nb_xport_open(e->a.x, "tcp:9", a, &a->c), 0);
	nb_xport_get_stats(e->a.x, &sa);
	assert_true(sa.ticking);
	assert_true(run_until(e, refused_and_gone, a, WATCHDOG_MS));
	run_until(e, wait_ms, NULL, 50);
	nb_xport_get_stats(e->a.x, &sa);
	nb_xport_get_stats(e->b.x, &sb);
	assert_false(sa.ticking || sb.ticking);
	/* the input checks sizes before usrsctp sees anything */
	memset(junk, 0, sizeof(junk));
	nb_xport_input(e->b.x, junk, 0);
	nb_xport_input(e->b.x, junk, sizeof(junk));
	nb_xport_get_stats(e->b.x, &sb);
	assert_int_equal(sb.pkts_in_dropped, 2);
	assert_false(a->open || a->closed || a->reset);
	assert_int_equal(e->napps, 1); /* B made no application */
	nb_xport_get_stats(e->b.x, &sb);
	assert_int_equal(sb.opens_refused, 1);
	/* bad service names never leave */
	assert_int_equal(nb_xport_open(e->a.x, "tcp 22", a, &a->c), NB_XPORT_E_SERVICE);
	env_free(e);
}

static bool pair_done(struct env *e, void *arg)
{
	struct app **ab = arg;

	(void)e;
	return ab[0]->eof && ab[1]->eof;
}

static void test_reader_never_reads(void **state)
{
	struct env *e = env_new(0, 0);
	struct app *sink = app_new(e), *a2 = app_new(e), *bsink, *b2, *ab[2];
	uint64_t w1, w2;

	(void)state;
	sink->tx_total = 64u << 20;
	assert_int_equal(nb_xport_open(e->a.x, "tcp:sink", sink, &sink->c), 0);
	bsink = wait_b_app(e, 2);
	/* the writer fills both windows, then stops: wait until two samples
	 * 1 s apart are equal */
	w1 = 0;
	for (int i = 0; i < 30; i++) {
		run_until(e, wait_ms, NULL, 1000);
		w2 = nb_xconn_bytes_written(sink->c);
		if (w2 == w1 && w2 > 0)
			break;
		w1 = w2;
	}
	assert_int_equal(w1, w2);
	printf("# never-reading sink: writer stopped at %llu bytes\n", (unsigned long long)w1);
	/* a second connection on the same xports still moves data */
	a2->tx_total = 1000000;
	a2->fin_when_done = true;
	e->b_template.tx_total = 1000000;
	e->b_template.fin_when_done = true;
	assert_int_equal(nb_xport_open(e->a.x, "tcp:22", a2, &a2->c), 0);
	b2 = wait_b_app(e, 3);
	ab[0] = a2;
	ab[1] = b2;
	assert_true(run_until(e, pair_done, ab, WATCHDOG_MS));
	check_pair(a2, b2);
	check_pair(b2, a2);
	run_until(e, wait_ms, NULL, 1000);
	w2 = nb_xconn_bytes_written(sink->c);
	printf("# never-reading sink: %llu bytes after the second connection moved 1 MB each way\n",
	       (unsigned long long)w2);
	assert_int_equal(w1, w2);           /* stopped growing */
	assert_true(w2 < 3u * NB_XPORT_SOCKBUF); /* below the bound: both buffers, and slack */
	assert_true(w2 > 100000);           /* but it did move some */
	assert_int_equal(bsink->rx, 0);     /* B never read */
	assert_false(sink->reset || bsink->reset);
	report(e, "backpressure", 0);
	/* reset: the peer sees RESET */
	nb_xport_reset(sink->c);
	sink->c = NULL;
	ab[0] = bsink;
	ab[1] = bsink;
	assert_true(run_until(e, both_closed, ab, WATCHDOG_MS));
	assert_true(bsink->reset);
	assert_false(sink->reset); /* no event for the side that reset */
	assert_true(run_until(e, no_assocs, NULL, WATCHDOG_MS));
	env_free(e);
}

static bool count_open(struct env *e, void *arg)
{
	int want = *(int *)arg, open = 0;

	for (int i = 0; i < e->napps; i++)
		open += e->apps[i].open;
	return open >= want;
}

static bool first_decided(struct env *e, void *arg)
{
	int n = *(int *)arg;

	for (int i = 0; i < n; i++)
		if (!e->apps[i].open && !e->apps[i].reset)
			return false;
	return true;
}

static void test_assoc_limits(void **state)
{
	struct env *e = env_new(0, 0);
	struct app *a[66];
	struct nb_xconn *c;
	struct nb_xport_stats sa, sb;
	int want, opened = 0, reset = 0, b_apps = 0;

	(void)state;
	/* the opener's own limit: the 65th open fails at once */
	for (int i = 0; i < 64; i++) {
		a[i] = app_new(e);
		assert_int_equal(nb_xport_open(e->a.x, "tcp:22", a[i], &a[i]->c), 0);
	}
	assert_int_equal(nb_xport_open(e->a.x, "tcp:22", NULL, &c), NB_XPORT_E_LIMIT);
	nb_xport_get_stats(e->a.x, &sa);
	assert_int_equal(sa.assocs_refused, 1);
	assert_int_equal(sa.assocs, 64);
	want = 128;
	assert_true(run_until(e, count_open, &want, WATCHDOG_MS));
	env_free(e);

	/* the acceptor's limit: the opener may open 70, B takes 64 */
	e = env_new(70, 0);
	for (int i = 0; i < 65; i++) {
		a[i] = app_new(e);
		assert_int_equal(nb_xport_open(e->a.x, "tcp:22", a[i], &a[i]->c), 0);
	}
	/* every one of the 65 ends: open, or reset by the acceptor */
	want = 65;
	assert_true(run_until(e, first_decided, &want, WATCHDOG_MS));
	run_until(e, wait_ms, NULL, 500); /* nothing changes after */
	for (int i = 0; i < 65; i++) {
		opened += a[i]->open;
		reset += a[i]->reset;
	}
	b_apps = e->napps - 65;
	nb_xport_get_stats(e->b.x, &sb);
	printf("# 65 opens against a 64-association acceptor: %d open, %d reset, acceptor refused %llu\n", opened,
	       reset, (unsigned long long)sb.assocs_refused);
	assert_int_equal(opened, 64);
	assert_int_equal(reset, 1);
	assert_int_equal(b_apps, 64);
	assert_int_equal(sb.assocs_refused, 1);
	assert_int_equal(sb.assocs, 64);
	env_free(e);
}

static int group_setup(void **state)
{
	struct env tmp;

	(void)state;
	pat = malloc(PAT_LEN);
	if (!pat)
		return -1;
	tmp.rng = 42;
	for (size_t i = 0; i < PAT_LEN; i++)
		pat[i] = (uint8_t)(rng_next(&tmp) >> 24);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	free(pat);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_half_close),
		cmocka_unit_test(test_reader_never_reads),
		cmocka_unit_test(test_assoc_limits),
		cmocka_unit_test(test_bulk_both_ways),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
