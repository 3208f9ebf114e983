/* tests/fuzz/fuzz_broker.c - the STUN Binding handler end to end: bytes in,
 * bytes out, with the invariants every response must keep.
 *
 * Input: byte 0 picks the setup (bits 0-1 configuration, bit 2 TCP, bit 3
 * receiving IP index, bit 4 receiving port index, bit 5 IPv6 source, bit 6
 * SOFTWARE on), bytes 1-2 the source port, the rest is the request. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/binding.h"
#include "proto/stun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                 \
	do {                     \
		if (!(c))        \
			abort(); \
	} while (0)

/* Largest response to a request without PADDING: RFC 5780 mode, IPv6
 * everywhere, four 24-byte addresses, FINGERPRINT; plus SOFTWARE. */
#define MAX_UNPADDED (20 + 4 * 24 + 8)
#define SOFTWARE "natbroker fuzz"

static struct nb_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	struct nb_addr x;

	memset(&x, 0, sizeof(x));
	x.family = NB_AF_INET;
	x.ip[0] = a;
	x.ip[1] = b;
	x.ip[2] = c;
	x.ip[3] = d;
	return x;
}

static struct nb_addr v6(uint8_t last)
{
	struct nb_addr x;

	memset(&x, 0, sizeof(x));
	x.family = NB_AF_INET6;
	x.ip[0] = 0x20;
	x.ip[1] = 0x01;
	x.ip[2] = 0x0d;
	x.ip[3] = 0xb8;
	x.ip[15] = last;
	return x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nb_binding_config cfg;
	struct nb_binding_request req;
	struct nb_binding_reply rep;
	struct nb_stun_msg in, out;
	uint8_t buf[NB_BINDING_MAX_RESPONSE];
	uint8_t setup;
	int rc;

	if (size < 3)
		return 0;
	setup = data[0];
	memset(&cfg, 0, sizeof(cfg));
	cfg.port[0] = 3478;
	cfg.port[1] = 3479;
	switch (setup & 3) {
	case 0: /* single, specific */
		cfg.ip[0] = cfg.ip[1] = v4(203, 0, 113, 10);
		break;
	case 1: /* single, wildcard */
		cfg.ip[0] = cfg.ip[1] = v4(0, 0, 0, 0);
		break;
	case 2: /* RFC 5780, IPv4 */
		cfg.rfc5780 = true;
		cfg.ip[0] = v4(203, 0, 113, 10);
		cfg.ip[1] = v4(203, 0, 113, 11);
		break;
	default: /* RFC 5780, IPv6 */
		cfg.rfc5780 = true;
		cfg.ip[0] = v6(0x10);
		cfg.ip[1] = v6(0x11);
		break;
	}
	if (setup & 0x40) {
		cfg.software = (const uint8_t *)SOFTWARE;
		cfg.software_len = sizeof(SOFTWARE) - 1;
	}
	CHECK(nb_binding_config_check(&cfg) == 0);

	memset(&req, 0, sizeof(req));
	req.transport = (setup & 4) ? NB_BINDING_TCP : NB_BINDING_UDP;
	req.ip_idx = (setup >> 3) & 1;
	req.port_idx = (setup >> 4) & 1;
	req.from = (setup & 0x20) ? v6(0x77) : v4(198, 51, 100, 7);
	req.from.port = (uint16_t)(data[1] << 8 | data[2]);
	req.data = data + 3;
	req.len = size - 3;

	memset(&rep, 0, sizeof(rep));
	rc = nb_binding_handle(&cfg, &req, buf, sizeof(buf), &rep);
	if (rc < 0) {
		CHECK(rc <= NB_BINDING_DROP_NOT_STUN && rc > NB_BINDING_DROP_NOT_STUN - NB_BINDING_DROP_COUNT);
		CHECK(rep.len == 0); /* untouched */
		return 0;
	}
	CHECK(rc == 0);

	/* Only a decodable Binding request from a usable source is answered. */
	CHECK(nb_stun_decode(&in, req.data, req.len) == (ssize_t)req.len);
	CHECK(in.cls == NB_STUN_CLASS_REQUEST && in.method == NB_STUN_METHOD_BINDING);
	CHECK(req.len <= NB_STUN_MAX_MSG && req.from.port != 0);

	/* The response: bounded, decodable, ours, to the requester's IP. */
	CHECK(rep.len >= NB_STUN_HDR_LEN && rep.len <= NB_BINDING_MAX_RESPONSE);
	CHECK(rep.len <= (req.len > MAX_UNPADDED ? req.len : MAX_UNPADDED) +
			 (cfg.software ? 4 + ((sizeof(SOFTWARE) - 1 + 3) & ~(size_t)3) : 0));
	CHECK(nb_stun_decode(&out, buf, rep.len) == (ssize_t)rep.len);
	CHECK(out.method == NB_STUN_METHOD_BINDING);
	CHECK(out.classic == in.classic);
	CHECK(memcmp(out.tid, in.tid, in.classic ? 16 : NB_STUN_TID_LEN) == 0);
	CHECK(nb_addr_ip_equal(&rep.to, &req.from));
	CHECK(rep.to.port != 0);
	CHECK(rep.ip_idx <= 1 && rep.port_idx <= 1);
	CHECK(cfg.rfc5780 || (rep.ip_idx == 0 && rep.port_idx == 0));
	if (rep.error_code != 0) {
		CHECK(out.cls == NB_STUN_CLASS_ERROR && out.error_code == rep.error_code);
		CHECK(rep.error_code == 400 || rep.error_code == 420);
		/* Errors leave from the receiving socket, to the source. */
		CHECK(rep.ip_idx == req.ip_idx && rep.port_idx == req.port_idx);
		CHECK(nb_addr_equal(&rep.to, &req.from));
		return 0;
	}
	CHECK(out.cls == NB_STUN_CLASS_SUCCESS);
	if (in.classic)
		CHECK((out.present & NB_STUN_HAS_MAPPED) && nb_addr_equal(&out.mapped, &req.from));
	else
		CHECK((out.present & NB_STUN_HAS_XOR_MAPPED) && nb_addr_equal(&out.xor_mapped, &req.from));
	/* Over TCP the response never moves. */
	if (req.transport == NB_BINDING_TCP)
		CHECK(nb_addr_equal(&rep.to, &req.from) && rep.ip_idx == req.ip_idx &&
		      rep.port_idx == req.port_idx);
	/* Without RESPONSE-PORT it goes to the exact source. */
	if (!(in.present & NB_STUN_HAS_RESPONSE_PORT))
		CHECK(nb_addr_equal(&rep.to, &req.from));
	/* PADDING never makes a response bigger than its request. */
	if (out.present & NB_STUN_HAS_PADDING)
		CHECK(rep.len == req.len);
	return 0;
}
