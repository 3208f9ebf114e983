/* peer/blink.c - the peer's sealed channel to the broker (see blink.h). */
#include "peer/blink.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "common/bytes.h"

void nb_blink_init(struct nb_blink *bl, const uint8_t priv[NB_KEY_LEN],
		   const uint8_t pub[NB_KEY_LEN], const uint8_t *broker_key,
		   const struct nb_addr *broker, const uint8_t seed[16])
{
	memset(bl, 0, sizeof(*bl));
	memcpy(bl->priv, priv, NB_KEY_LEN);
	memcpy(bl->pub, pub, NB_KEY_LEN);
	bl->have_key = broker_key != NULL;
	if (broker_key != NULL)
		memcpy(bl->broker_key, broker_key, NB_KEY_LEN);
	bl->broker = *broker;
	memcpy(bl->index_seed, seed, sizeof(bl->index_seed));
}

/* A fresh index: the first 4 bytes of SHA-256(seed || counter), never the
 * one of the keys in use (the seal refuses an ambiguous rekey). */
static uint32_t next_index(struct nb_blink *bl)
{
	for (;;) {
		uint8_t in[24], md[SHA256_DIGEST_LENGTH];
		uint32_t idx;
		memcpy(in, bl->index_seed, 16);
		memcpy(in + 16, &bl->index_ctr, 8);
		bl->index_ctr++;
		SHA256(in, sizeof(in), md);
		idx = nb_get_u32be(md);
		if (!bl->have_seal || idx != bl->seal.cur.local_index)
			return idx;
	}
}

int nb_blink_start(struct nb_blink *bl, uint64_t now)
{
	ssize_t n;
	int rc;

	if (bl->state == NB_BLINK_HANDSHAKE || bl->state == NB_BLINK_ASKING)
		return 0; /* one at a time: the one under way goes on */
	if (!bl->have_key) { /* (again, after NO_KEY: the caller decides) */
		bl->state = NB_BLINK_ASKING;
		bl->keyq_tries = 0;
		bl->rto = NB_BLINK_RTO_MS;
		bl->next_send = now;
		return 0;
	}
	rc = nb_noise_init_initiator(&bl->hs, bl->priv, bl->broker_key,
				     (const uint8_t *)NB_BLINK_PROLOGUE, sizeof(NB_BLINK_PROLOGUE) - 1);
	if (rc != 0)
		return rc;
	bl->index = next_index(bl);
	n = nb_noise_write_init(&bl->hs, bl->index, NULL, 0, bl->init, sizeof(bl->init));
	if (n < 0) {
		nb_noise_wipe(&bl->hs);
		return (int)n;
	}
	bl->init_len = (size_t)n;
	bl->state = NB_BLINK_HANDSHAKE;
	bl->rto = NB_BLINK_RTO_MS;
	bl->next_send = now;
	return 0;
}

int nb_blink_send(struct nb_blink *bl, const uint8_t *msg, size_t len, uint64_t now)
{
	size_t i;

	(void)now;
	if (len > NB_SEAL_MAX_PAYLOAD)
		return NB_SEAL_E_TOO_BIG;
	if (bl->q_n == NB_BLINK_QUEUE) { /* drop the oldest: its sender retransmits */
		bl->q_head = (bl->q_head + 1) % NB_BLINK_QUEUE;
		bl->q_n--;
		bl->st.queue_dropped++;
	}
	i = (bl->q_head + bl->q_n) % NB_BLINK_QUEUE;
	memcpy(bl->q[i].b, msg, len);
	bl->q[i].len = len;
	bl->q_n++;
	return 0;
}

static ssize_t on_response(struct nb_blink *bl, const uint8_t *buf, size_t len, uint64_t now)
{
	struct nb_noise_hs saved;
	struct nb_noise_keys k;
	struct nb_seal_keys sk;
	uint8_t payload[NB_NOISE_MAX_PAYLOAD];
	ssize_t n;
	int rc;

	if (bl->state != NB_BLINK_HANDSHAKE)
		return NB_NOISE_E_STATE;
	/* A forged response must not end the real handshake: a failure
	 * leaves the state as it was. */
	saved = bl->hs;
	n = nb_noise_read_resp(&bl->hs, buf, len, payload, sizeof(payload));
	if (n < 0 || (rc = nb_noise_split(&bl->hs, &k)) != 0) {
		bl->hs = saved;
		OPENSSL_cleanse(&saved, sizeof(saved));
		return n < 0 ? n : NB_NOISE_E_STATE;
	}
	OPENSSL_cleanse(&saved, sizeof(saved));
	memcpy(sk.send, k.send, sizeof(sk.send));
	memcpy(sk.recv, k.recv, sizeof(sk.recv));
	sk.local_index = k.local_index;
	sk.remote_index = k.remote_index;
	rc = bl->have_seal ? nb_seal_rekey(&bl->seal, &sk, now) : nb_seal_init(&bl->seal, &sk, now);
	OPENSSL_cleanse(&sk, sizeof(sk));
	OPENSSL_cleanse(&k, sizeof(k));
	if (rc != 0) {
		bl->state = bl->have_seal ? NB_BLINK_UP : NB_BLINK_DOWN;
		return rc;
	}
	bl->have_seal = true;
	bl->state = NB_BLINK_UP;
	bl->st.handshakes++;
	return 0;
}

ssize_t nb_blink_input(struct nb_blink *bl, const uint8_t *buf, size_t len,
		       const struct nb_addr *from, uint64_t now, uint8_t *out, size_t cap)
{
	ssize_t n;

	if (len == 0 || !nb_addr_equal(from, &bl->broker))
		return NB_SEAL_E_INVAL;
	switch (buf[0]) {
	case NB_NOISE_TYPE_RESP:
		return on_response(bl, buf, len, now);
	case NB_SEAL_TYPE:
		if (!bl->have_seal)
			return NB_SEAL_E_INDEX;
		n = nb_seal_open(&bl->seal, buf, len, out, cap, now);
		if (n < 0)
			bl->st.open_fail++;
		else
			bl->st.opened++;
		return n;
	case NB_BLINK_KEYR_TYPE:
		if (bl->state != NB_BLINK_ASKING || len != 1 + NB_KEY_LEN)
			return NB_SEAL_E_INVAL;
		memcpy(bl->broker_key, buf + 1, NB_KEY_LEN);
		bl->have_key = true;
		bl->learned = true;
		bl->state = NB_BLINK_DOWN;
		return nb_blink_start(bl, now);
	case NB_BLINK_HINT_TYPE:
		/* "I have no session with that index": we restarted it, or the
		 * broker did. Only the current index counts, and not too often. */
		if (len != NB_BLINK_HINT_LEN || !bl->have_seal || bl->state != NB_BLINK_UP ||
		    nb_get_u32be(buf + 1) != bl->seal.cur.remote_index ||
		    (bl->last_hint != 0 && now - bl->last_hint < NB_BLINK_HINT_MIN_MS))
			return NB_SEAL_E_INVAL;
		bl->last_hint = now;
		bl->st.hints++;
		return nb_blink_start(bl, now);
	default:
		return NB_SEAL_E_TYPE;
	}
}

int nb_blink_learned(struct nb_blink *bl, uint8_t ret[NB_KEY_LEN])
{
	if (!bl->learned)
		return 0;
	bl->learned = false;
	memcpy(ret, bl->broker_key, NB_KEY_LEN);
	return 1;
}

int nb_blink_poll(struct nb_blink *bl, uint64_t now, struct nb_blink_tx *tx)
{
	if (bl->state == NB_BLINK_ASKING && now >= bl->next_send) {
		if (bl->keyq_tries >= NB_BLINK_KEYQ_TRIES) {
			bl->state = NB_BLINK_NO_KEY;
			return 0;
		}
		memset(bl->out, 0, NB_BLINK_KEYQ_LEN);
		bl->out[0] = NB_BLINK_KEYQ_TYPE;
		bl->keyq_tries++;
		bl->st.key_requests++;
		bl->next_send = now + bl->rto;
		bl->rto *= 2;
		tx->bytes = bl->out;
		tx->len = NB_BLINK_KEYQ_LEN;
		return 1;
	}
	if (bl->state == NB_BLINK_UP && nb_seal_wants_rekey(&bl->seal, now))
		(void)nb_blink_start(bl, now);
	if (bl->state == NB_BLINK_HANDSHAKE && now >= bl->next_send) {
		bl->next_send = now + bl->rto;
		bl->rto = bl->rto * 2 > NB_BLINK_RTO_MAX_MS ? NB_BLINK_RTO_MAX_MS : bl->rto * 2;
		bl->st.inits_sent++;
		tx->bytes = bl->init;
		tx->len = bl->init_len;
		return 1;
	}
	while (bl->have_seal && bl->q_n > 0) {
		size_t i = bl->q_head;
		ssize_t n = nb_seal_seal(&bl->seal, bl->q[i].b, bl->q[i].len, bl->out, sizeof(bl->out), now);
		bl->q_head = (bl->q_head + 1) % NB_BLINK_QUEUE;
		bl->q_n--;
		if (n <= 0)
			continue; /* dead keys: the rekey above is under way; its sender retransmits */
		bl->st.sealed++;
		tx->bytes = bl->out;
		tx->len = (size_t)n;
		return 1;
	}
	return 0;
}

uint64_t nb_blink_deadline(const struct nb_blink *bl)
{
	uint64_t d = UINT64_MAX;

	if (bl->state == NB_BLINK_HANDSHAKE || bl->state == NB_BLINK_ASKING)
		d = bl->next_send;
	if (bl->have_seal && bl->q_n > 0)
		d = 0;
	if (bl->state == NB_BLINK_UP) {
		uint64_t r = bl->seal.cur.created_ms + NB_SEAL_REKEY_AFTER_TIME_MS;
		if (r < d)
			d = r;
	}
	return d;
}

bool nb_blink_owns(const struct nb_blink *bl, const uint8_t *buf, size_t len)
{
	uint32_t idx;

	if (!bl->have_seal || nb_seal_peek_index(buf, len, &idx) != 0)
		return false;
	return idx == bl->seal.cur.local_index || (bl->seal.prev.valid && idx == bl->seal.prev.local_index);
}

void nb_blink_wipe(struct nb_blink *bl)
{
	nb_seal_wipe(&bl->seal);
	nb_noise_wipe(&bl->hs);
	OPENSSL_cleanse(bl, sizeof(*bl));
}
