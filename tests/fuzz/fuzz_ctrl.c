/* tests/fuzz/fuzz_ctrl.c - libFuzzer target for the control-message codec.
 *
 * For every input:
 *  - nb_ctrl_decode, nb_ctrl_explain and nb_ctrl_peek_tx agree;
 *  - the explanation is a valid error reason (the broker sends it back);
 * and for every input that decodes:
 *  - it re-encodes into 1200 bytes, never longer than the input (the
 *    canonical form only drops whitespace, unknown fields and defaults);
 *  - the re-encoding decodes to an equal message and re-encodes to the
 *    same bytes;
 *  - a list page packs every entry when they all fit;
 *  - a plan's peer_key is 43 base64url characters; a query's admin token
 *    is absent or 1..64 printable ASCII.
 * Any broken promise is __builtin_trap(). */
#include <stdint.h>
#include <string.h>

#include "proto/ctrl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

static void check_why_is_a_reason(const char *why)
{
	struct nb_ctrl_msg e;
	uint8_t out[NB_CTRL_MAX_DATAGRAM];

	memset(&e, 0, sizeof(e));
	e.type = NB_CTRL_ERROR;
	memcpy(e.tx, "0123456789abcdef", NB_CTRL_TX_LEN + 1);
	e.u.error.code = NB_CTRL_ERR_BAD_REQUEST;
	CHECK(strlen(why) <= NB_CTRL_REASON_MAX);
	memcpy(e.u.error.reason, why, strlen(why) + 1);
	CHECK(nb_ctrl_encode(&e, out, sizeof(out)) > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct nb_ctrl_msg m, m2; /* large: keep off the stack */
	uint8_t out[NB_CTRL_MAX_DATAGRAM], out2[NB_CTRL_MAX_DATAGRAM];
	char why[NB_CTRL_REASON_MAX + 1];
	char tx[NB_CTRL_TX_LEN + 1];
	ssize_t rc, n, n2;
	int erc, prc;

	rc = nb_ctrl_decode(&m, data, size);
	erc = nb_ctrl_explain(data, size, why, sizeof(why));
	CHECK(erc == (rc < 0 ? (int)rc : 0));
	check_why_is_a_reason(why);
	prc = nb_ctrl_peek_tx(data, size, tx);
	if (rc < 0) {
		CHECK(rc >= NB_CTRL_E_INVAL && rc <= NB_CTRL_E_TOO_BIG);
		return 0;
	}
	CHECK((size_t)rc == size);
	CHECK(prc == 0 && strcmp(tx, m.tx) == 0);

	n = nb_ctrl_encode(&m, out, sizeof(out));
	CHECK(n > 0 && (size_t)n <= size);
	CHECK(nb_ctrl_decode(&m2, out, (size_t)n) == n);
	CHECK(nb_ctrl_msg_equal(&m, &m2));
	CHECK(nb_ctrl_msg_equal(&m2, &m));
	n2 = nb_ctrl_encode(&m2, out2, sizeof(out2));
	CHECK(n2 == n && memcmp(out, out2, (size_t)n) == 0);

	if (m.type == NB_CTRL_PLAN) {
		CHECK(strlen(m.u.plan.peer_key) == NB_CTRL_PUBKEY_LEN);
		for (size_t i = 0; i < NB_CTRL_PUBKEY_LEN; i++) {
			char c = m.u.plan.peer_key[i];
			CHECK((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			      c == '-' || c == '_');
		}
	}
	if (m.type == NB_CTRL_PEERS || m.type == NB_CTRL_MATRIX) {
		size_t al = strlen(m.u.query.admin);
		CHECK(al <= NB_CTRL_TOKEN_MAX);
		for (size_t i = 0; i < al; i++)
			CHECK(m.u.query.admin[i] >= 0x20 && m.u.query.admin[i] <= 0x7E);
	}
	if (m.type == NB_CTRL_BYE)
		CHECK(m.u.bye.id[0] != '\0');
	if (m.type == NB_CTRL_PEER_LIST || m.type == NB_CTRL_MATRIX_LIST) {
		size_t k = 0, want = m.type == NB_CTRL_PEER_LIST ? m.u.peer_list.n_peers
								 : m.u.matrix_list.n_pairs;
		n2 = nb_ctrl_encode_page(&m, out2, sizeof(out2), &k);
		CHECK(n2 == n && k == want && memcmp(out, out2, (size_t)n) == 0);
	}
	return 0;
}
