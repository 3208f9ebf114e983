/* tests/fuzz/fuzz_pmp.c - libFuzzer target for the NAT-PMP / PCP client state
 * machine (peer/portmap/pmp.h), driven by a script.
 *
 * Input: byte 0 = flags (bit 0 TCP, bit 1 no PCP, bit 2 no NAT-PMP, bit 3
 * check every second), byte 1 = lease (1 + 30 x b seconds); then
 * operations, one opcode byte each (mod 12):
 *   0 dt      advance the clock dt x 7 ms      1     to the deadline
 *   2 n bytes datagram from the gateway        3 n bytes  ... from elsewhere
 *   4         ICMP port unreachable            5 a b c d  set_reflexive(a.b.c.d)
 *   6         check_now                        7          stop
 *   8 v       the gateway answers our last PCP request, 11 v our last NAT-PMP
 *             one (v: 0x40 = the other protocol's UNSUPP_VERSION; bit 7 = an
 *             error v & 0x0f; else SUCCESS, port and lifetime from v)
 *   9 dt      advance dt x 10 s                10         the router restarts
 * After each operation the machine is polled dry and its events drained.
 * Invariants (else __builtin_trap()): every output 1..NB_PMP_OUT_MAX bytes to
 * the gateway's port 5351, a bounded number per poll; the deadline is never in
 * the past after a dry poll; events bounded and not in the future; MAPPED has
 * a usable external address and a protocol; CLOSED stays CLOSED and silent;
 * the reason is a terminated string. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/log.h"
#include "peer/portmap/extip.h"
#include "peer/portmap/pmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

#define T0 1000000u

static const uint8_t NONCE[NB_PCP_NONCE_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

struct run {
	struct nb_pmp m;
	struct nb_addr gw;
	uint64_t now;
	uint64_t epoch_t0; /* the router's start */
	uint8_t last_pcp[NB_PMP_OUT_MAX], last_natpmp[NB_PMP_OUT_MAX];
	size_t last_pcp_len, last_natpmp_len;
	bool closed;
};

static void put16(uint8_t *p, uint32_t v)
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

static uint32_t epoch(const struct run *r)
{
	return (uint32_t)((r->now - r->epoch_t0) / 1000);
}

static void settle(struct run *r)
{
	struct nb_pmp_out out;
	struct nb_pmp_event ev;
	const struct nb_pmp_info *in;
	int n = 0;

	while (nb_pmp_poll(&r->m, r->now, &out) == 1) {
		CHECK(++n <= 4);
		CHECK(!r->closed);
		CHECK(out.len > 0 && out.len <= NB_PMP_OUT_MAX && out.bytes != NULL);
		CHECK(nb_addr_equal(&out.to, &r->gw));
		if (out.bytes[0] == 2) {
			memcpy(r->last_pcp, out.bytes, out.len);
			r->last_pcp_len = out.len;
		} else {
			CHECK(out.bytes[0] == 0);
			memcpy(r->last_natpmp, out.bytes, out.len);
			r->last_natpmp_len = out.len;
		}
	}
	CHECK(nb_pmp_deadline(&r->m) > r->now);
	n = 0;
	while (nb_pmp_event(&r->m, &ev) == 1) {
		CHECK(++n <= NB_PMP_EVENTS);
		CHECK(ev.at <= r->now && ev.at >= T0);
		CHECK(ev.kind >= NB_PMP_EV_ANSWERED && ev.kind <= NB_PMP_EV_CLOSED);
	}
	in = nb_pmp_info(&r->m);
	CHECK(memchr(in->reason, '\0', sizeof(in->reason)) != NULL);
	CHECK(in->status <= NB_PMP_CLOSED);
	if (in->status == NB_PMP_MAPPED) {
		CHECK(in->protocol == NB_PMP_PCP || in->protocol == NB_PMP_NATPMP);
		CHECK(nb_extip_useless(&in->external) == NULL);
		CHECK(in->lease_s != 0);
	}
	if (r->closed)
		CHECK(nb_pmp_closed(&r->m) && in->status == NB_PMP_CLOSED);
	if (nb_pmp_closed(&r->m)) {
		CHECK(in->status == NB_PMP_CLOSED);
		CHECK(nb_pmp_deadline(&r->m) == UINT64_MAX);
		r->closed = true;
	}
}

static void feed(struct run *r, const uint8_t *b, size_t len)
{
	(void)nb_pmp_input(&r->m, b, len, &r->gw, r->now);
}

/* A plausible answer from the gateway to our last PCP request. */
static void answer_pcp(struct run *r, uint8_t v)
{
	uint8_t a[60];
	const uint8_t *q = r->last_pcp;

	if (r->last_pcp_len == 0)
		return;
	if (v == 0x40) { /* a NAT-PMP-only router */
		a[0] = 0;
		a[1] = (uint8_t)(128 + (q[1] & 0x7f));
		put16(a + 2, 1);
		put32(a + 4, epoch(r));
		feed(r, a, 8);
		return;
	}
	memset(a, 0, sizeof(a));
	a[0] = 2;
	a[1] = (uint8_t)(0x80 | q[1]);
	put32(a + 8, epoch(r));
	if (r->last_pcp_len == 60) {
		memcpy(a + 24, q + 24, 36);
		if (v & 0x80) {
			a[3] = v & 0x0f;
			put32(a + 4, v & 0x30);
		} else if (q[4] | q[5] | q[6] | q[7]) {
			put32(a + 4, 1 + (uint32_t)(v & 0x3f) * 20);
			if (v & 1)
				put16(a + 42, 30000u + v);
			a[54] = 0xff;
			a[55] = 0xff;
			a[56] = (v & 2) ? 10 : 203;
			a[57] = 0;
			a[58] = 113;
			a[59] = (uint8_t)(1 + (v >> 6));
		}
		feed(r, a, 60);
	} else {
		a[3] = (v & 0x80) ? (v & 0x0f) : 0;
		feed(r, a, 24);
	}
}

/* ... and to our last NAT-PMP request. */
static void answer_natpmp(struct run *r, uint8_t v)
{
	uint8_t a[24];
	const uint8_t *q = r->last_natpmp;

	if (r->last_natpmp_len == 0)
		return;
	memset(a, 0, sizeof(a));
	if (v == 0x40) { /* a PCP-only router */
		a[0] = 2;
		a[1] = (uint8_t)(0x80 | q[1]);
		a[3] = 1;
		put32(a + 8, epoch(r));
		feed(r, a, 24);
		return;
	}
	a[1] = (uint8_t)(128 + q[1]);
	put32(a + 4, epoch(r));
	if (v & 0x80)
		put16(a + 2, v & 0x0f);
	if (q[1] == 0) {
		a[8] = (v & 2) ? 100 : 198;
		a[9] = (v & 2) ? 64 : 51;
		a[10] = 100;
		a[11] = (uint8_t)(1 + (v >> 6));
		feed(r, a, 12);
		return;
	}
	if (r->last_natpmp_len < 12)
		return;
	memcpy(a + 8, q + 4, 2);
	if (!(v & 0x80) && (q[8] | q[9] | q[10] | q[11])) {
		put16(a + 10, (v & 1) ? 30000u + v : (uint32_t)(q[6] << 8 | q[7]));
		put32(a + 12, 1 + (uint32_t)(v & 0x3f) * 20);
	}
	feed(r, a, (v & 0x80) && (v & 0x20) ? 8 : 16);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run r;
	struct nb_pmp_params p;
	struct nb_addr gw = { .family = NB_AF_INET, .port = 0, .ip = { 192, 168, 1, 1 } };
	struct nb_addr client = { .family = NB_AF_INET, .port = 0, .ip = { 192, 168, 1, 10 } };
	struct nb_addr other = { .family = NB_AF_INET, .port = NB_NATPMP_PORT, .ip = { 192, 168, 1, 2 } };
	size_t off = 2;
	int ops = 0;

	if (size < 2)
		return 0;
	nb_log_set_level(NB_LOG_ERROR);
	memset(&r, 0, sizeof(r));
	nb_pmp_params_default(&p);
	p.internal_port = 4000;
	p.tcp = data[0] & 1;
	p.pcp = !(data[0] & 2);
	p.natpmp = !(data[0] & 4);
	if (data[0] & 8)
		p.check_s = 1;
	p.lease_s = 1 + (uint32_t)data[1] * 30;
	r.gw = gw;
	r.gw.port = NB_NATPMP_PORT;
	r.now = T0;
	r.epoch_t0 = T0 - 5000000;
	nb_pmp_init(&r.m, &p, &gw, &client, NONCE, T0);
	nb_pmp_start(&r.m, T0);
	settle(&r);
	while (off < size && ops++ < 256) {
		uint8_t op = data[off++] % 12;
		uint8_t arg = off < size ? data[off] : 0;

		switch (op) {
		case 0:
			off++;
			r.now += (uint64_t)arg * 7;
			break;
		case 1: {
			uint64_t d = nb_pmp_deadline(&r.m);

			if (d != UINT64_MAX)
				r.now = d;
			break;
		}
		case 2:
		case 3: {
			size_t n = arg, have;

			off++;
			have = size - (off < size ? off : size);
			if (n > have)
				n = have;
			if (op == 2)
				(void)nb_pmp_input(&r.m, data + off, n, &r.gw, r.now);
			else
				CHECK(nb_pmp_input(&r.m, data + off, n, &other, r.now) < 0);
			off += n;
			break;
		}
		case 4:
			nb_pmp_unreachable(&r.m, r.now);
			break;
		case 5: {
			struct nb_addr a = { .family = NB_AF_INET };

			if (size - off < 4)
				return 0;
			memcpy(a.ip, data + off, 4);
			off += 4;
			nb_pmp_set_reflexive(&r.m, &a, r.now);
			break;
		}
		case 6:
			nb_pmp_check_now(&r.m, r.now);
			break;
		case 7:
			nb_pmp_stop(&r.m, r.now);
			break;
		case 8:
			off++;
			answer_pcp(&r, arg);
			break;
		case 11:
			off++;
			answer_natpmp(&r, arg);
			break;
		case 9:
			off++;
			r.now += (uint64_t)arg * 10000;
			break;
		case 10:
			r.epoch_t0 = r.now;
			break;
		default:
			break;
		}
		settle(&r);
	}
	/* stop always ends, within stop_ms plus a poll */
	nb_pmp_stop(&r.m, r.now);
	settle(&r);
	for (int i = 0; i < 64 && !nb_pmp_closed(&r.m); i++) {
		uint64_t d = nb_pmp_deadline(&r.m);

		CHECK(d != UINT64_MAX);
		r.now = d;
		settle(&r);
	}
	CHECK(nb_pmp_closed(&r.m));
	return 0;
}
