/* tests/fuzz/fuzz_turnc.c - libFuzzer target for the TURN client: an
 * allocated client (UDP or TCP, one peer with a bound channel, one with a
 * permission only, one still pending) is fed arbitrary frames, with polls
 * and time in between.
 *
 * Input: byte 0 bit 0 = TCP; then records [u16 len][len bytes][u8 dt]:
 * one input each, then the clock moves dt x 1000 ms and the client is
 * polled dry.
 *
 * For every input:
 *  - a drop returns a known reason and changes nothing but a drop counter;
 *  - RX_DATA points inside the input, and comes from a peer whose IP we
 *    asked a permission for;
 *  - what poll hands out is one valid STUN request (or nothing) within
 *    NB_TURNC_OUT_MAX, and the deadline is never in the past after a
 *    dry poll;
 *  - the peer table stays bounded, the state a known one.
 * Any broken promise is __builtin_trap(). */
#include <stdint.h>
#include <string.h>

#include "peer/turnc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

#define USER "1700000000:fuzz"
#define PASS "pw"
#define REALM "natbroker"
#define T0 1000000u

static const uint8_t SEED[16] = "fuzz-turnc-seed";
static struct nb_addr RELAYED = {.family = NB_AF_INET, .port = 50000, .ip = {192, 0, 2, 1}};
static struct nb_addr PEERS[3] = {
	{.family = NB_AF_INET, .port = 7000, .ip = {203, 0, 113, 5}},
	{.family = NB_AF_INET, .port = 7001, .ip = {203, 0, 113, 6}},
	{.family = NB_AF_INET, .port = 7002, .ip = {203, 0, 113, 7}},
};

static size_t respond(struct nb_turnc *c, const struct nb_turnc_tx *tx, bool auth, uint8_t *buf,
		      size_t cap)
{
	struct nb_stun_msg m;
	struct nb_turn_attrs ta;
	struct nb_stun_enc e;
	uint8_t key[NB_TURN_KEY_LEN];

	CHECK(nb_stun_decode(&m, tx->bytes, tx->len) == (ssize_t)tx->len);
	CHECK(nb_turn_attrs_parse(&m, tx->bytes, tx->len, &ta) == 0);
	(void)c;
	if (!auth) {
		CHECK(nb_stun_enc_init(&e, buf, cap, (uint16_t)(m.method | NB_STUN_CLASS_ERROR), m.tid,
				       false) == 0);
		CHECK(nb_stun_enc_error(&e, 401, "Unauthorized") == 0);
		CHECK(nb_stun_enc_attr(&e, NB_TURN_ATTR_REALM, REALM, strlen(REALM)) == 0);
		CHECK(nb_stun_enc_attr(&e, NB_TURN_ATTR_NONCE, "n0nce", 5) == 0);
		return nb_stun_enc_len(&e);
	}
	CHECK(nb_turn_long_term_key((const uint8_t *)USER, strlen(USER), (const uint8_t *)REALM,
				    strlen(REALM), (const uint8_t *)PASS, strlen(PASS), key) == 0);
	CHECK(nb_stun_enc_init(&e, buf, cap, (uint16_t)(m.method | NB_STUN_CLASS_SUCCESS), m.tid,
			       false) == 0);
	if (m.method == NB_TURN_METHOD_ALLOCATE) {
		CHECK(nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_RELAYED_ADDRESS, &RELAYED) == 0);
		CHECK(nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &PEERS[0]) == 0);
		CHECK(nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, 600) == 0);
	}
	CHECK(nb_stun_enc_integrity(&e, key, sizeof(key)) == 0);
	CHECK(nb_stun_enc_fingerprint(&e) == 0);
	return nb_stun_enc_len(&e);
}

/* An allocated client: peer 0 with a permission and a channel, peer 1 with
 * a permission (its ChannelBind unanswered), peer 2 with both pending. */
static void make(struct nb_turnc *c, bool tcp)
{
	struct nb_turnc_config cfg;
	struct nb_turnc_tx tx;
	struct nb_turnc_rx rx;
	uint8_t buf[512];
	size_t n;
	int answered = 0;

	memset(&cfg, 0, sizeof(cfg));
	cfg.server = RELAYED;
	cfg.server.port = 3478;
	memcpy(cfg.username, USER, sizeof(USER));
	memcpy(cfg.password, PASS, sizeof(PASS));
	cfg.tcp = tcp;
	nb_turnc_init(c, &cfg, SEED, T0);
	CHECK(nb_turnc_poll(c, T0, &tx) == 1);
	n = respond(c, &tx, false, buf, sizeof(buf));
	CHECK(nb_turnc_input(c, buf, n, T0, &rx) == 0);
	CHECK(nb_turnc_poll(c, T0, &tx) == 1);
	n = respond(c, &tx, true, buf, sizeof(buf));
	CHECK(nb_turnc_input(c, buf, n, T0, &rx) == 0);
	CHECK(nb_turnc_state(c) == NB_TURNC_ALLOCATED);
	for (int i = 0; i < 3; i++)
		CHECK(nb_turnc_permit(c, &PEERS[i], T0) == 0);
	/* The order: perm 0, chan 0, perm 1, chan 1, perm 2, chan 2. */
	while (nb_turnc_poll(c, T0, &tx) == 1) {
		if (answered < 3) {
			n = respond(c, &tx, true, buf, sizeof(buf));
			CHECK(nb_turnc_input(c, buf, n, T0, &rx) == 0);
		}
		answered++;
	}
	CHECK(answered == 6);
	CHECK(nb_turnc_chan_state(c, &PEERS[0]) == NB_TURNC_GRANT_OK);
	CHECK(nb_turnc_perm_state(c, &PEERS[1]) == NB_TURNC_GRANT_OK);
	CHECK(nb_turnc_chan_state(c, &PEERS[1]) == NB_TURNC_GRANT_PENDING);
}

static void check_poll(struct nb_turnc *c, uint64_t now)
{
	struct nb_turnc_tx tx;
	struct nb_stun_msg m;
	int guard = 0;

	while (nb_turnc_poll(c, now, &tx) == 1) {
		CHECK(tx.len <= NB_TURNC_OUT_MAX);
		CHECK(nb_stun_decode(&m, tx.bytes, tx.len) == (ssize_t)tx.len);
		CHECK(m.cls == NB_STUN_CLASS_REQUEST);
		CHECK(++guard < 64);
	}
	CHECK(nb_turnc_deadline(c) > now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct nb_turnc proto[2], c, before;
	static bool made;
	uint64_t now = T0;
	size_t off = 1;
	bool tcp;

	if (!made) {
		make(&proto[0], false);
		make(&proto[1], true);
		made = true;
	}
	if (size < 1)
		return 0;
	tcp = data[0] & 1;
	c = proto[tcp];
	while (size - off >= 2) {
		size_t len = (size_t)data[off] << 8 | data[off + 1];
		const uint8_t *frame;
		struct nb_turnc_rx rx;
		int rc;

		off += 2;
		if (len > size - off)
			len = size - off;
		frame = data + off;
		off += len;
		before = c;
		memset(&rx, 0xA5, sizeof(rx));
		rc = nb_turnc_input(&c, frame, len, now, &rx);
		if (rc < 0) {
			CHECK(rc >= -NB_TURNC_DROP_COUNT);
			memcpy(before.drops, c.drops, sizeof(c.drops));
			CHECK(memcmp(&before, &c, sizeof(c)) == 0);
		} else {
			CHECK(rc == 0);
			CHECK(rx.kind == NB_TURNC_RX_CONSUMED || rx.kind == NB_TURNC_RX_DATA);
			if (rx.kind == NB_TURNC_RX_DATA) {
				bool known = false;
				CHECK(rx.len <= len);
				CHECK(rx.len == 0 || (rx.data >= frame && rx.data + rx.len <= frame + len));
				for (size_t i = 0; i < 3; i++)
					known |= nb_addr_ip_equal(&rx.from, &PEERS[i]);
				CHECK(known);
			}
		}
		CHECK(c.n_peers <= NB_TURNC_MAX_PEERS);
		CHECK(c.state <= NB_TURNC_CLOSED);
		CHECK(c.state != NB_TURNC_ALLOCATED || c.have_key);
		if (off < size)
			now += (uint64_t)data[off++] * 1000u;
		check_poll(&c, now);
	}
	return 0;
}
