/* tests/fuzz/fuzz_xport.c - libFuzzer target for the TCP transport's
 * stream-0 message codec (peer/xport.h).
 *
 * Input: 4 bytes of PPID (big-endian), then the message body. For every
 * input:
 *  - decode never reads past the input (ASan) and fails without touching
 *    its output;
 * and for every input that decodes:
 *  - the view lies inside the input;
 *  - a control message re-encodes to exactly the same bytes, and an OPEN's
 *    service is 1..64 bytes of [A-Za-z0-9:._-].
 * Any broken promise is __builtin_trap(). */
#include <stdint.h>
#include <string.h>

#include "common/bytes.h"
#include "peer/xport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nb_xport_msg m, keep;
	uint8_t out[NB_XPORT_MSG_MAX];
	char svc[NB_XPORT_SERVICE_MAX + 1];
	uint32_t ppid;
	ssize_t n;
	int r;

	if (size < 4)
		return 0;
	ppid = nb_get_u32be(data);
	data += 4;
	size -= 4;
	memset(&m, 0x33, sizeof(m));
	keep = m;
	r = nb_xport_msg_decode(ppid, data, size, &m);
	if (r < 0) {
		CHECK(memcmp(&m, &keep, sizeof(m)) == 0);
		CHECK(r <= NB_XPORT_E_SHORT && r >= NB_XPORT_E_NOMEM);
		return 0;
	}
	CHECK(nb_xport_msg_ppid(m.type) == ppid);
	CHECK(m.len <= size);
	CHECK(m.len == 0 || (m.body >= data && m.body + m.len <= data + size));
	if (m.type == NB_XPORT_MSG_DATA) {
		CHECK(m.len == size && size >= 1 && size <= NB_XPORT_DATA_MAX);
		return 0;
	}
	CHECK(size <= NB_XPORT_MSG_MAX);
	if (m.type == NB_XPORT_MSG_OPEN) {
		CHECK(m.len >= 1 && m.len <= NB_XPORT_SERVICE_MAX);
		memcpy(svc, m.body, m.len);
		svc[m.len] = '\0';
		CHECK(strlen(svc) == m.len);
	}
	n = nb_xport_msg_encode(m.type, m.type == NB_XPORT_MSG_OPEN ? svc : NULL, out, sizeof(out));
	CHECK(n > 0 && (size_t)n == size && memcmp(out, data, size) == 0);
	return 0;
}
