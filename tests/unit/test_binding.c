/* tests/unit/test_binding.c - the STUN Binding handler: a table of requests
 * and the responses they must get, decoded back with the codec. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "broker/binding.h"
#include "common/bytes.h"
#include "proto/stun.h"

/* ---- Configurations and addresses --------------------------------------- */

enum cfg_id { SINGLE, SINGLE_ANY, RFC5780, SINGLE6 };

static struct nb_addr ip(const char *s)
{
	struct nb_addr a;

	assert_int_equal(nb_addr_parse(s, true, &a), 0);
	return a;
}

static struct nb_binding_config config(enum cfg_id id)
{
	struct nb_binding_config c;

	memset(&c, 0, sizeof(c));
	c.port[0] = 3478;
	c.port[1] = 3479;
	switch (id) {
	case SINGLE:
		c.ip[0] = ip("203.0.113.10");
		c.ip[1] = c.ip[0];
		break;
	case SINGLE_ANY:
		c.ip[0] = ip("0.0.0.0");
		c.ip[1] = c.ip[0];
		break;
	case RFC5780:
		c.rfc5780 = true;
		c.ip[0] = ip("203.0.113.10");
		c.ip[1] = ip("203.0.113.11");
		break;
	case SINGLE6:
		c.ip[0] = ip("2001:db8::10");
		c.ip[1] = c.ip[0];
		break;
	}
	assert_int_equal(nb_binding_config_check(&c), 0);
	return c;
}

#define SRC4 "198.51.100.7:40000"
#define SRC6 "[2001:db8:1::7]:40001"

/* ---- Building requests --------------------------------------------------- */

#define NO_CHANGE (-1)

struct req_spec {
	bool classic;
	uint16_t type;          /* 0: Binding request */
	int change;             /* NO_CHANGE, or the CHANGE-REQUEST flags */
	uint16_t response_port; /* 0: none */
	int padding;            /* -1: none, else PADDING value length */
	uint16_t unknown;       /* 0: none, else an attribute type to add */
	bool response_address;  /* RFC 3489 RESPONSE-ADDRESS (never honoured) */
	bool fingerprint;
};

static const uint8_t tid16[16] = { 0xA1, 0xA2, 0xA3, 0xA4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

static size_t build(const struct req_spec *s, uint8_t *buf, size_t cap)
{
	static const uint8_t pad[1200];
	struct nb_stun_enc e;
	uint16_t type = s->type ? s->type : NB_STUN_BINDING_REQUEST;
	/* RFC 8489: the 12 bytes after the cookie; classic: all 16. */
	const uint8_t *tid = s->classic ? tid16 : tid16 + 4;

	assert_int_equal(nb_stun_enc_init(&e, buf, cap, type, tid, s->classic), 0);
	if (s->change != NO_CHANGE)
		assert_int_equal(nb_stun_enc_u32(&e, NB_STUN_ATTR_CHANGE_REQUEST, (uint32_t)s->change), 0);
	if (s->response_port)
		assert_int_equal(nb_stun_enc_u32(&e, NB_STUN_ATTR_RESPONSE_PORT,
						 (uint32_t)s->response_port << 16),
				 0);
	if (s->response_address) {
		struct nb_addr victim = ip("192.0.2.99:53");
		assert_int_equal(nb_stun_enc_addr(&e, NB_STUN_ATTR_RESPONSE_ADDRESS, &victim), 0);
	}
	if (s->unknown) {
		uint8_t v[4] = { 1, 2, 3, 4 };
		assert_int_equal(nb_stun_enc_attr(&e, s->unknown, v, sizeof(v)), 0);
	}
	if (s->padding >= 0)
		assert_int_equal(nb_stun_enc_attr(&e, NB_STUN_ATTR_PADDING, pad, (size_t)s->padding), 0);
	if (s->fingerprint)
		assert_int_equal(nb_stun_enc_fingerprint(&e), 0);
	return nb_stun_enc_len(&e);
}

/* ---- The table ------------------------------------------------------------ */

/* Attributes expected in a response (beyond ERROR-CODE, checked apart). */
enum {
	X = NB_STUN_HAS_XOR_MAPPED,
	M = NB_STUN_HAS_MAPPED,
	O = NB_STUN_HAS_RESPONSE_ORIGIN,
	OA = NB_STUN_HAS_OTHER_ADDRESS,
	S = NB_STUN_HAS_SOURCE,
	C = NB_STUN_HAS_CHANGED,
	U = NB_STUN_HAS_UNKNOWN_ATTRS,
	P = NB_STUN_HAS_PADDING,
	F = NB_STUN_HAS_FINGERPRINT,
	SW = NB_STUN_HAS_SOFTWARE,
};

struct binding_case {
	const char *name;
	enum cfg_id cfg;
	uint8_t transport;
	uint8_t ip_idx, port_idx; /* receiving socket */
	const char *src;
	struct req_spec req;
	/* expected */
	uint16_t error;      /* 0: success */
	uint8_t from_ip, from_port;
	uint16_t to_port;    /* 0: the source port */
	uint32_t attrs;      /* exactly these NB_STUN_HAS_* bits */
	size_t len;          /* exact response length */
	uint16_t unknown0;   /* first UNKNOWN-ATTRIBUTES entry, for 420 */
};

#define PLAIN { .change = NO_CHANGE, .padding = -1 }

static const struct binding_case cases[] = {
	/* Single address: XOR-MAPPED-ADDRESS only, 20 -> 32 bytes (1.6x). */
	{ "single plain", SINGLE, NB_BINDING_UDP, 0, 0, SRC4, PLAIN, 0, 0, 0, 0, X, 32, 0 },
	{ "single plain wildcard", SINGLE_ANY, NB_BINDING_UDP, 0, 0, SRC4, PLAIN, 0, 0, 0, 0, X, 32, 0 },
	{ "single plain ipv6 source", SINGLE6, NB_BINDING_UDP, 0, 0, SRC6, PLAIN, 0, 0, 0, 0, X, 44, 0 },
	{ "single plain tcp", SINGLE, NB_BINDING_TCP, 0, 0, SRC4, PLAIN, 0, 0, 0, 0, X, 32, 0 },
	{ "single fingerprint echoed", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = -1, .fingerprint = true }, 0, 0, 0, 0, X | F, 40, 0 },
	/* CHANGE-REQUEST with no flag asks for nothing: answered. */
	{ "single change none", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = 0, .padding = -1 }, 0, 0, 0, 0, X, 32, 0 },
	/* RFC 5780 §6: no alternate address -> 420 listing CHANGE-REQUEST. */
	{ "single change ip", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NB_STUN_CHANGE_IP, .padding = -1 }, 420, 0, 0, 0, U, 56, NB_STUN_ATTR_CHANGE_REQUEST },
	{ "single change port", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NB_STUN_CHANGE_PORT, .padding = -1 }, 420, 0, 0, 0, U, 56, NB_STUN_ATTR_CHANGE_REQUEST },
	{ "single change both", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NB_STUN_CHANGE_IP | NB_STUN_CHANGE_PORT, .padding = -1 }, 420, 0, 0, 0, U, 56,
	  NB_STUN_ATTR_CHANGE_REQUEST },
	{ "single classic", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .classic = true, .change = 0, .padding = -1 }, 0, 0, 0, 0, M | S, 44, 0 },
	{ "single classic wildcard", SINGLE_ANY, NB_BINDING_UDP, 0, 0, SRC4,
	  { .classic = true, .change = 0, .padding = -1 }, 0, 0, 0, 0, M, 32, 0 },
	{ "single classic change ip", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .classic = true, .change = NB_STUN_CHANGE_IP, .padding = -1 }, 420, 0, 0, 0, U, 56,
	  NB_STUN_ATTR_CHANGE_REQUEST },
	/* RESPONSE-PORT: same IP, that port. */
	{ "single response-port", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = -1, .response_port = 5000 }, 0, 0, 0, 5000, X, 32, 0 },
	{ "single response-port + padding", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = 500, .response_port = 5000 }, 400, 0, 0, 0, 0, 40, 0 },
	{ "single response-port 0", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = -1, .response_port = 0xFFFF }, 0, 0, 0, 0xFFFF, X, 32, 0 },
	/* PADDING: the response is padded to the request's size, no more. */
	{ "single padding", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = 100 }, 0, 0, 0, 0, X | P, 124, 0 },
	{ "single padding + fingerprint", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = 100, .fingerprint = true }, 0, 0, 0, 0, X | P | F, 132, 0 },
	{ "single padding too small to echo", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = 0 }, 0, 0, 0, 0, X, 32, 0 },
	{ "single padding max", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = 1176 }, 0, 0, 0, 0, X | P, 1200, 0 },
	/* Unknown comprehension-required attribute: 420 + UNKNOWN-ATTRIBUTES. */
	{ "single unknown required", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = -1, .unknown = 0x7777 }, 420, 0, 0, 0, U, 56, 0x7777 },
	{ "single unknown required + change", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NB_STUN_CHANGE_IP, .padding = -1, .unknown = 0x0035 }, 420, 0, 0, 0, U, 56, 0x0035 },
	{ "single unknown optional ignored", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = -1, .unknown = 0xC001 }, 0, 0, 0, 0, X, 32, 0 },
	{ "unknown required classic", RFC5780, NB_BINDING_UDP, 0, 0, SRC4,
	  { .classic = true, .change = 0, .padding = -1, .unknown = 0x0031 }, 420, 0, 0, 0, U, 56, 0x0031 },
	/* RESPONSE-ADDRESS is never honoured: the answer goes to the source. */
	{ "single response-address ignored", SINGLE, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = -1, .response_address = true }, 0, 0, 0, 0, X, 32, 0 },
	{ "classic response-address ignored", RFC5780, NB_BINDING_UDP, 0, 0, SRC4,
	  { .classic = true, .change = 0, .padding = -1, .response_address = true }, 0, 0, 0, 0,
	  M | S | C, 56, 0 },
	/* TCP: moving the response is refused, as coturn does. */
	{ "tcp change", RFC5780, NB_BINDING_TCP, 0, 0, SRC4,
	  { .change = NB_STUN_CHANGE_IP, .padding = -1 }, 400, 0, 0, 0, 0, 40, 0 },
	{ "tcp response-port", RFC5780, NB_BINDING_TCP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = -1, .response_port = 5000 }, 400, 0, 0, 0, 0, 40, 0 },
	{ "tcp padding", SINGLE, NB_BINDING_TCP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = 40 }, 400, 0, 0, 0, 0, 40, 0 },
	{ "tcp change none", RFC5780, NB_BINDING_TCP, 1, 0, SRC4,
	  { .change = 0, .padding = -1 }, 0, 1, 0, 0, X | M | O | OA, 68, 0 },

	/* RFC 5780 mode: XOR-MAPPED, MAPPED, RESPONSE-ORIGIN, OTHER-ADDRESS:
	 * 68 bytes, under coturn's 92 for the same request. */
	{ "5780 plain", RFC5780, NB_BINDING_UDP, 0, 0, SRC4, PLAIN, 0, 0, 0, 0, X | M | O | OA, 68, 0 },
	{ "5780 plain on alt ip", RFC5780, NB_BINDING_UDP, 1, 0, SRC4, PLAIN, 0, 1, 0, 0, X | M | O | OA, 68, 0 },
	{ "5780 plain on alt port", RFC5780, NB_BINDING_UDP, 0, 1, SRC4, PLAIN, 0, 0, 1, 0, X | M | O | OA, 68, 0 },
	{ "5780 plain on alt both", RFC5780, NB_BINDING_UDP, 1, 1, SRC4, PLAIN, 0, 1, 1, 0, X | M | O | OA, 68, 0 },
	{ "5780 change ip", RFC5780, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NB_STUN_CHANGE_IP, .padding = -1 }, 0, 1, 0, 0, X | M | O | OA, 68, 0 },
	{ "5780 change port", RFC5780, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NB_STUN_CHANGE_PORT, .padding = -1 }, 0, 0, 1, 0, X | M | O | OA, 68, 0 },
	{ "5780 change both", RFC5780, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NB_STUN_CHANGE_IP | NB_STUN_CHANGE_PORT, .padding = -1 }, 0, 1, 1, 0,
	  X | M | O | OA, 68, 0 },
	{ "5780 change both from alt", RFC5780, NB_BINDING_UDP, 1, 1, SRC4,
	  { .change = NB_STUN_CHANGE_IP | NB_STUN_CHANGE_PORT, .padding = -1 }, 0, 0, 0, 0,
	  X | M | O | OA, 68, 0 },
	{ "5780 change ip from alt port", RFC5780, NB_BINDING_UDP, 0, 1, SRC4,
	  { .change = NB_STUN_CHANGE_IP, .padding = -1 }, 0, 1, 1, 0, X | M | O | OA, 68, 0 },
	{ "5780 change + response-port", RFC5780, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NB_STUN_CHANGE_PORT, .padding = -1, .response_port = 6000 }, 0, 0, 1, 6000,
	  X | M | O | OA, 68, 0 },
	{ "5780 response-port + padding", RFC5780, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = 8, .response_port = 6000 }, 400, 0, 0, 0, 0, 40, 0 },
	{ "5780 padding", RFC5780, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = 100 }, 0, 0, 0, 0, X | M | O | OA | P, 124, 0 },
	{ "5780 padding smaller than response", RFC5780, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = 12 }, 0, 0, 0, 0, X | M | O | OA, 68, 0 },
	{ "5780 fingerprint", RFC5780, NB_BINDING_UDP, 0, 0, SRC4,
	  { .change = NO_CHANGE, .padding = -1, .fingerprint = true }, 0, 0, 0, 0, X | M | O | OA | F, 76, 0 },
	{ "5780 ipv6 source", RFC5780, NB_BINDING_UDP, 0, 0, SRC6, PLAIN, 0, 0, 0, 0,
	  X | M | O | OA, 92, 0 },
	/* Classic RFC 3489 (Debian's `stun`): MAPPED, SOURCE, CHANGED, 16-byte tid. */
	{ "5780 classic", RFC5780, NB_BINDING_UDP, 0, 0, SRC4,
	  { .classic = true, .change = 0, .padding = -1 }, 0, 0, 0, 0, M | S | C, 56, 0 },
	{ "5780 classic change ip", RFC5780, NB_BINDING_UDP, 0, 0, SRC4,
	  { .classic = true, .change = NB_STUN_CHANGE_IP, .padding = -1 }, 0, 1, 0, 0, M | S | C, 56, 0 },
	{ "5780 classic change port", RFC5780, NB_BINDING_UDP, 0, 0, SRC4,
	  { .classic = true, .change = NB_STUN_CHANGE_PORT, .padding = -1 }, 0, 0, 1, 0, M | S | C, 56, 0 },
	{ "5780 classic change both", RFC5780, NB_BINDING_UDP, 0, 0, SRC4,
	  { .classic = true, .change = NB_STUN_CHANGE_IP | NB_STUN_CHANGE_PORT, .padding = -1 }, 0, 1, 1, 0,
	  M | S | C, 56, 0 },
	{ "5780 classic on alt ip", RFC5780, NB_BINDING_UDP, 1, 0, SRC4,
	  { .classic = true, .change = 0, .padding = -1 }, 0, 1, 0, 0, M | S | C, 56, 0 },
};

static void check_reply(const struct binding_case *k, const struct nb_binding_config *cfg,
			const struct nb_binding_request *req, const struct nb_binding_reply *rep,
			const uint8_t *out)
{
	struct nb_stun_msg m;
	struct nb_addr origin = nb_binding_local(cfg, rep->ip_idx, rep->port_idx);
	struct nb_addr other = nb_binding_local(cfg, req->ip_idx ^ 1u, req->port_idx ^ 1u);
	uint32_t want = k->attrs | (k->error ? NB_STUN_HAS_ERROR_CODE : 0);

	assert_int_equal(rep->len, k->len);
	assert_true(rep->len <= NB_BINDING_MAX_RESPONSE);
	assert_int_equal(nb_stun_decode(&m, out, rep->len), (ssize_t)rep->len);
	assert_int_equal(m.method, NB_STUN_METHOD_BINDING);
	assert_int_equal(m.cls, k->error ? NB_STUN_CLASS_ERROR : NB_STUN_CLASS_SUCCESS);
	assert_int_equal(m.classic, k->req.classic);
	if (k->req.classic)
		assert_memory_equal(m.tid, tid16, 16);
	else
		assert_memory_equal(m.tid, tid16 + 4, NB_STUN_TID_LEN);
	assert_int_equal(m.present, want);
	assert_int_equal(m.n_unknown_required, 0);

	/* Where it goes: always the requester's IP. */
	assert_int_equal(rep->error_code, k->error);
	assert_int_equal(rep->ip_idx, k->from_ip);
	assert_int_equal(rep->port_idx, k->from_port);
	assert_true(nb_addr_ip_equal(&rep->to, &req->from));
	assert_int_equal(rep->to.port, k->to_port ? k->to_port : req->from.port);

	if (k->error) {
		assert_int_equal(m.error_code, k->error);
		if (k->error == 420) {
			/* RFC 3489 §11.2.11: an odd list repeats an entry. */
			assert_int_equal(m.n_unknown_attrs, k->req.classic ? 2 : 1);
			for (size_t i = 0; i < m.n_unknown_attrs; i++)
				assert_int_equal(m.unknown_attrs[i], k->unknown0);
		}
		return;
	}
	if (want & X)
		assert_true(nb_addr_equal(&m.xor_mapped, &req->from));
	if (want & M)
		assert_true(nb_addr_equal(&m.mapped, &req->from));
	if (want & O)
		assert_true(nb_addr_equal(&m.response_origin, &origin));
	if (want & S)
		assert_true(nb_addr_equal(&m.source, &origin));
	if (want & OA)
		assert_true(nb_addr_equal(&m.other_address, &other));
	if (want & C)
		assert_true(nb_addr_equal(&m.changed, &other));
	/* PADDING makes the response exactly as large as the request. */
	if (want & P)
		assert_int_equal(rep->len, req->len);
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct binding_case *k = &cases[i];
		struct nb_binding_config cfg = config(k->cfg);
		uint8_t in[1500], out[NB_BINDING_MAX_RESPONSE];
		struct nb_binding_request req;
		struct nb_binding_reply rep;

		print_message("case %zu: %s\n", i, k->name);
		memset(&req, 0, sizeof(req));
		req.len = build(&k->req, in, sizeof(in));
		req.data = in;
		assert_int_equal(nb_addr_parse(k->src, false, &req.from), 0);
		req.ip_idx = k->ip_idx;
		req.port_idx = k->port_idx;
		req.transport = k->transport;
		assert_int_equal(nb_binding_handle(&cfg, &req, out, sizeof(out), &rep), 0);
		check_reply(k, &cfg, &req, &rep, out);
	}
}

/* ---- Dropped without a word ------------------------------------------------ */

static int handle(enum cfg_id id, const uint8_t *data, size_t len, const char *src,
		  struct nb_binding_reply *rep)
{
	struct nb_binding_config cfg = config(id);
	struct nb_binding_request req;
	uint8_t out[NB_BINDING_MAX_RESPONSE];

	memset(&req, 0, sizeof(req));
	req.data = data;
	req.len = len;
	assert_int_equal(nb_addr_parse(src, false, &req.from), 0);
	return nb_binding_handle(&cfg, &req, out, sizeof(out), rep);
}

static void test_drops(void **state)
{
	static const uint8_t garbage[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	static const uint8_t dtls[24] = { 0x16, 0xfe, 0xfd };
	uint8_t buf[1500];
	struct nb_binding_reply rep;
	struct req_spec plain = PLAIN;
	size_t n;

	(void)state;
	memset(&rep, 0x5A, sizeof(rep));
	assert_int_equal(handle(SINGLE, garbage, sizeof(garbage) - 1, SRC4, &rep),
			 NB_BINDING_DROP_NOT_STUN);
	assert_int_equal(handle(SINGLE, dtls, sizeof(dtls), SRC4, &rep), NB_BINDING_DROP_NOT_STUN);
	assert_int_equal(handle(SINGLE, garbage, 0, SRC4, &rep), NB_BINDING_DROP_NOT_STUN);
	/* *ret untouched on a drop */
	assert_int_equal(rep.error_code, 0x5A5A);

	/* Responses, error responses, indications: no answer. */
	plain.type = NB_STUN_BINDING_SUCCESS;
	n = build(&plain, buf, sizeof(buf));
	assert_int_equal(handle(SINGLE, buf, n, SRC4, &rep), NB_BINDING_DROP_NOT_REQUEST);
	plain.type = NB_STUN_BINDING_ERROR;
	n = build(&plain, buf, sizeof(buf));
	assert_int_equal(handle(SINGLE, buf, n, SRC4, &rep), NB_BINDING_DROP_NOT_REQUEST);
	plain.type = NB_STUN_METHOD_BINDING | NB_STUN_CLASS_INDICATION;
	n = build(&plain, buf, sizeof(buf));
	assert_int_equal(handle(SINGLE, buf, n, SRC4, &rep), NB_BINDING_DROP_NOT_REQUEST);
	/* Other methods (TURN Allocate 0x003): silence. */
	plain.type = 0x0003;
	n = build(&plain, buf, sizeof(buf));
	assert_int_equal(handle(SINGLE, buf, n, SRC4, &rep), NB_BINDING_DROP_METHOD);

	/* A valid request from an unusable source. */
	plain.type = 0;
	n = build(&plain, buf, sizeof(buf));
	assert_int_equal(handle(SINGLE, buf, n, SRC4, &rep), 0);
	assert_int_equal(handle(SINGLE, buf, n, "198.51.100.7:0", &rep), NB_BINDING_DROP_SOURCE);
	assert_int_equal(handle(SINGLE, buf, n, "0.0.0.0:5", &rep), NB_BINDING_DROP_SOURCE);
	assert_int_equal(handle(SINGLE, buf, n, "224.0.0.1:5", &rep), NB_BINDING_DROP_SOURCE);
	assert_int_equal(handle(SINGLE, buf, n, "255.255.255.255:5", &rep), NB_BINDING_DROP_SOURCE);
	assert_int_equal(handle(SINGLE, buf, n, "[ff02::1]:5", &rep), NB_BINDING_DROP_SOURCE);

	/* Bad FINGERPRINT: not STUN as far as we can tell. */
	plain.fingerprint = true;
	n = build(&plain, buf, sizeof(buf));
	buf[n - 1] ^= 1;
	assert_int_equal(handle(SINGLE, buf, n, SRC4, &rep), NB_BINDING_DROP_MALFORMED);
	plain.fingerprint = false;

	/* Over the datagram cap, even if well-formed. */
	plain.padding = 1200;
	n = build(&plain, buf, sizeof(buf));
	assert_int_equal(n, 1224);
	assert_int_equal(handle(SINGLE, buf, n, SRC4, &rep), NB_BINDING_DROP_TOO_BIG);
}

static void test_socket_and_buffer(void **state)
{
	struct nb_binding_config single = config(SINGLE), dual = config(RFC5780);
	struct req_spec plain = PLAIN;
	uint8_t in[64], out[NB_BINDING_MAX_RESPONSE];
	struct nb_binding_request req;
	struct nb_binding_reply rep;

	(void)state;
	memset(&req, 0, sizeof(req));
	req.len = build(&plain, in, sizeof(in));
	req.data = in;
	req.from = ip(SRC4);
	/* Single mode has only socket (0,0). */
	req.port_idx = 1;
	assert_int_equal(nb_binding_handle(&single, &req, out, sizeof(out), &rep), NB_BINDING_DROP_SOCKET);
	req.port_idx = 0;
	req.ip_idx = 2;
	assert_int_equal(nb_binding_handle(&dual, &req, out, sizeof(out), &rep), NB_BINDING_DROP_SOCKET);
	req.ip_idx = 0;
	/* Too small a buffer: drop, never a truncated response. */
	assert_int_equal(nb_binding_handle(&dual, &req, out, 67, &rep), NB_BINDING_DROP_NOSPACE);
	assert_int_equal(nb_binding_handle(&dual, &req, out, 68, &rep), 0);
	assert_int_equal(rep.len, 68);
	assert_int_equal(nb_binding_handle(&single, &req, out, 31, &rep), NB_BINDING_DROP_NOSPACE);
	assert_int_equal(nb_binding_handle(&single, &req, out, 32, &rep), 0);
}

/* SOFTWARE, when configured, is the only addition. */
static void test_software(void **state)
{
	static const char sw[] = "natbroker 0.1.0";
	struct nb_binding_config cfg = config(RFC5780);
	struct req_spec plain = PLAIN;
	uint8_t in[64], out[NB_BINDING_MAX_RESPONSE];
	struct nb_binding_request req;
	struct nb_binding_reply rep;
	struct nb_stun_msg m;

	(void)state;
	cfg.software = (const uint8_t *)sw;
	cfg.software_len = sizeof(sw) - 1;
	assert_int_equal(nb_binding_config_check(&cfg), 0);
	memset(&req, 0, sizeof(req));
	req.len = build(&plain, in, sizeof(in));
	req.data = in;
	req.from = ip(SRC4);
	assert_int_equal(nb_binding_handle(&cfg, &req, out, sizeof(out), &rep), 0);
	assert_int_equal(rep.len, 68 + 4 + 16); /* still under coturn's 92 */
	assert_int_equal(nb_stun_decode(&m, out, rep.len), (ssize_t)rep.len);
	assert_true(m.present & NB_STUN_HAS_SOFTWARE);
	assert_int_equal(m.software_len, sizeof(sw) - 1);
	assert_memory_equal(m.software, sw, sizeof(sw) - 1);

	cfg.software_len = NB_BINDING_MAX_SOFTWARE + 1;
	assert_int_equal(nb_binding_config_check(&cfg), -EINVAL);
}

static void test_config_check(void **state)
{
	struct nb_binding_config c = config(RFC5780);

	(void)state;
	c.ip[1] = c.ip[0];
	assert_int_not_equal(nb_binding_config_check(&c), 0); /* same IP twice */
	c = config(RFC5780);
	c.port[1] = c.port[0];
	assert_int_not_equal(nb_binding_config_check(&c), 0); /* same port twice */
	c = config(RFC5780);
	c.ip[1] = ip("2001:db8::1");
	assert_int_not_equal(nb_binding_config_check(&c), 0); /* mixed families */
	c = config(RFC5780);
	c.ip[0] = ip("0.0.0.0");
	assert_int_not_equal(nb_binding_config_check(&c), 0); /* wildcard in 5780 mode */
	c = config(SINGLE);
	c.port[0] = 0;
	assert_int_not_equal(nb_binding_config_check(&c), 0);
	assert_string_equal(nb_binding_drop_name(NB_BINDING_DROP_NOT_STUN), "not-stun");
	assert_string_equal(nb_binding_drop_name(NB_BINDING_DROP_TOO_BIG), "too-big");
	assert_string_equal(nb_binding_drop_name(-1), "unknown");
}

/* Every prefix of a valid request (and of one with every attribute we
 * read) is dropped or answered, never anything else; only the whole
 * message is answered. Each prefix is an exact-size heap copy so ASan
 * sees a read one byte past its end. */
static void test_truncation(void **state)
{
	const struct req_spec specs[] = {
		{ .change = NB_STUN_CHANGE_IP, .padding = 16, .fingerprint = true },
		{ .classic = true, .change = 0, .padding = -1, .response_address = true },
		{ .change = NO_CHANGE, .padding = -1, .response_port = 7000, .unknown = 0x7001 },
	};
	struct nb_binding_config cfg = config(RFC5780);
	uint8_t full[256], out[NB_BINDING_MAX_RESPONSE];
	struct nb_binding_reply rep;

	(void)state;
	for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++) {
		size_t n = build(&specs[s], full, sizeof(full));

		for (size_t len = 0; len <= n; len++) {
			uint8_t *copy = test_malloc(len ? len : 1);
			struct nb_binding_request req;
			int rc;

			memcpy(copy, full, len);
			memset(&req, 0, sizeof(req));
			req.data = copy;
			req.len = len;
			req.from = ip(SRC4);
			rc = nb_binding_handle(&cfg, &req, out, sizeof(out), &rep);
			if (len == n)
				assert_int_equal(rc, 0);
			else
				assert_true(rc == NB_BINDING_DROP_NOT_STUN || rc == NB_BINDING_DROP_MALFORMED);
			test_free(copy);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_drops),
		cmocka_unit_test(test_socket_and_buffer),
		cmocka_unit_test(test_software),
		cmocka_unit_test(test_config_check),
		cmocka_unit_test(test_truncation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
