/* tests/fuzz/fuzz_fwd.c - libFuzzer target for port forwarding's pure core.
 *
 * For every input:
 *  - nb_fwd_decode either refuses it (outputs untouched) or hands back a
 *    view inside the input whose header re-encodes to the input's first
 *    bytes;
 *  - the input, as a NUL-terminated string, goes through both spec parsers;
 *    what parses is a UDP or TCP spec with a port, and its error text
 *    otherwise is not empty; a transport service name that parses prints
 *    back to the same text;
 *  - the bytes drive a flow table (create / find / expire) whose count
 *    stays within NB_FWD_MAX_FLOWS and matches its used slots.
 * Any broken promise is __builtin_trap(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "peer/fwd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

static void check_decode(const uint8_t *data, size_t size)
{
	struct nb_fwd_hdr h = { .kind = 0xEE };
	const uint8_t *body = NULL;
	size_t blen = 0xDEAD;
	uint8_t hb[NB_FWD_UDP_HDR];
	ssize_t hl;
	int rc = nb_fwd_decode(data, size, &h, &body, &blen);

	if (rc != 0) {
		CHECK(h.kind == 0xEE && body == NULL && blen == 0xDEAD);
		return;
	}
	CHECK(h.kind == NB_FWD_KIND_PIPE || h.kind == NB_FWD_KIND_UDP || h.kind == NB_FWD_KIND_TCP);
	CHECK(h.kind != NB_FWD_KIND_TCP || blen >= 1);
	CHECK(body >= data && body + blen == data + size);
	CHECK(size <= NB_FWD_MAX_PAYLOAD);
	hl = nb_fwd_hdr_put(&h, blen, hb, sizeof(hb));
	CHECK(hl > 0 && (size_t)hl == (size_t)(body - data));
	CHECK(memcmp(hb, data, (size_t)hl) == 0);
}

static void check_specs(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	char err[256];
	struct nb_fwd_spec sp;
	struct nb_fwd_spec list[NB_FWD_MAX_SPECS];
	size_t n = 0;

	if (s == NULL)
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	err[0] = '\0';
	if (nb_fwd_expose_parse(s, &sp, err, sizeof(err)) == 0) {
		CHECK((sp.proto == NB_FWD_KIND_UDP || sp.proto == NB_FWD_KIND_TCP) && sp.addr.port != 0 &&
		      sp.rport == 0);
		CHECK(nb_fwd_spec_add(list, &n, &sp, err, sizeof(err)) == 0);
		CHECK(nb_fwd_expose_find(list, n, sp.proto, 0) == 0);
		CHECK(nb_fwd_expose_find(list, n, sp.proto, sp.addr.port) == 0);
		CHECK(nb_fwd_expose_find(list, n, (uint8_t)(sp.proto ^ 3), sp.addr.port) == NB_FWD_E_NOENT);
	} else {
		CHECK(err[0] != '\0');
	}
	err[0] = '\0';
	if (nb_fwd_forward_parse(s, &sp, err, sizeof(err)) == 0)
		CHECK((sp.proto == NB_FWD_KIND_UDP || sp.proto == NB_FWD_KIND_TCP) && sp.addr.port != 0);
	else
		CHECK(err[0] != '\0');
	/* A service name that parses prints back to itself. */
	{
		uint16_t port;
		char back[NB_FWD_SERVICE_MAX];
		if (nb_fwd_service_parse(s, &port) == 0) {
			CHECK(nb_fwd_service_put(port, back, sizeof(back)) == 0);
			CHECK(strcmp(back, s) == 0);
		}
	}
	free(s);
}

static void check_table(const uint8_t *data, size_t size)
{
	static struct nb_fwd_table t;
	uint64_t now = 0;
	size_t slot, used;

	nb_fwd_table_init(&t);
	for (size_t i = 0; i + 3 <= size; i += 3) {
		struct nb_addr a = { .family = NB_AF_INET, .port = (uint16_t)(data[i + 1] | data[i + 2] << 8) };
		now += (uint64_t)(data[i] & 0x0F) * 5000;
		switch (data[i] >> 6) {
		case 0:
			(void)nb_fwd_table_src(&t, data[i] & 1, &a, true, now, &slot);
			break;
		case 1:
			(void)nb_fwd_table_key(&t, data[i] & 0x30, a.port & 0x7F, a.port >> 7, true, now, &slot);
			break;
		case 2:
			if (nb_fwd_table_flow(&t, a.port, now, &slot) == 0)
				CHECK(t.f[slot].used && t.f[slot].flow == a.port);
			break;
		default:
			while (nb_fwd_table_expire(&t, now, &slot) == 1)
				CHECK(!t.f[slot].used);
			CHECK(nb_fwd_table_deadline(&t) > now);
		}
		used = 0;
		for (size_t k = 0; k < NB_FWD_MAX_FLOWS; k++)
			if (t.f[k].used) {
				used++;
				CHECK(t.f[k].flow != 0);
			}
		CHECK(used == t.n && t.n <= NB_FWD_MAX_FLOWS);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_decode(data, size);
	check_specs(data, size);
	check_table(data, size);
	return 0;
}
