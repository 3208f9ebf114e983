/* peer/punch.c - the punch state machine (see punch.h). */
#include "peer/punch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/log.h"

static const struct nb_punch_params default_params = {
	.ta_ms = NB_PUNCH_TA_MS,
	.rto_ms = NB_PUNCH_RTO_MS,
	.rto_max_ms = NB_PUNCH_RTO_MAX_MS,
	.prime_checks = NB_PUNCH_PRIME_CHECKS,
};

const char *nb_punch_state_name(enum nb_punch_state s)
{
	switch (s) {
	case NB_PUNCH_WAITING: return "waiting";
	case NB_PUNCH_CHECKING: return "checking";
	case NB_PUNCH_CONNECTED: return "connected";
	case NB_PUNCH_FAILED: return "failed";
	}
	return "?";
}

const char *nb_punch_drop_name(int drop)
{
	switch (drop) {
	case NB_PUNCH_DROP_NOT_STUN: return "not STUN";
	case NB_PUNCH_DROP_NOT_CHECK: return "not a Binding request or success";
	case NB_PUNCH_DROP_FINGERPRINT: return "no FINGERPRINT";
	case NB_PUNCH_DROP_USERNAME: return "wrong USERNAME";
	case NB_PUNCH_DROP_INTEGRITY: return "bad MESSAGE-INTEGRITY";
	case NB_PUNCH_DROP_REFLECTED: return "our own check reflected";
	case NB_PUNCH_DROP_REPLAYED: return "replayed check";
	case NB_PUNCH_DROP_UNKNOWN_TID: return "answer to nothing we sent";
	case NB_PUNCH_DROP_ASYMMETRIC: return "answer from another address";
	case NB_PUNCH_DROP_STATE: return "attempt over";
	default: return drop >= 0 ? "ok" : "?";
	}
}

static bool is_hex_key(const char *k)
{
	size_t i;

	for (i = 0; i < NB_PUNCH_KEY_LEN; i++)
		if (!((k[i] >= '0' && k[i] <= '9') || (k[i] >= 'a' && k[i] <= 'f')))
			return false;
	return k[i] == '\0';
}

/* Candidates worth a packet: a real unicast address with a port. */
static bool usable(const struct nb_addr *a)
{
	return (a->family == NB_AF_INET || a->family == NB_AF_INET6) && a->port != 0 &&
	       !nb_addr_is_unspecified(a) && !nb_addr_is_multicast(a);
}

static struct nb_punch_target *find_target(struct nb_punch *pu, uint32_t sock, const struct nb_addr *a)
{
	for (size_t i = 0; i < pu->n_targets; i++)
		if (pu->t[i].sock == sock && nb_addr_equal(&pu->t[i].addr, a))
			return &pu->t[i];
	return NULL;
}

static struct nb_punch_target *find_tid(struct nb_punch *pu, const uint8_t *tid)
{
	for (size_t i = 0; i < pu->n_targets; i++)
		if (memcmp(pu->t[i].tid, tid, NB_STUN_TID_LEN) == 0)
			return &pu->t[i];
	return NULL;
}

static struct nb_punch_target *add_target(struct nb_punch *pu, uint32_t sock, const struct nb_addr *a,
					  bool from_plan)
{
	struct nb_punch_target *t;
	size_t i = pu->n_targets;

	if (i >= NB_PUNCH_MAX_TARGETS)
		return NULL;
	t = &pu->t[i];
	memset(t, 0, sizeof(*t));
	t->addr = *a;
	t->sock = sock;
	t->from_plan = from_plan;
	t->rto = pu->p.rto_ms;
	/* Distinct per target: the seed with the index folded into its end. */
	memcpy(t->tid, pu->seed, NB_STUN_TID_LEN);
	t->tid[NB_STUN_TID_LEN - 1] ^= (uint8_t)(i + 1);
	pu->n_targets = i + 1;
	return t;
}

/* "a:1, b:2, ..." into buf, cut with "..." when it does not fit. */
static void format_list(const struct nb_punch *pu, bool plan_only, char *buf, size_t len)
{
	size_t off = 0, shown = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < pu->n_targets; i++) {
		char a[NB_ADDR_STRLEN];
		int n;
		if (plan_only && !pu->t[i].from_plan)
			continue;
		nb_addr_format(&pu->t[i].addr, a, sizeof(a));
		if (off + strlen(a) + 2 + 4 >= len) {
			snprintf(buf + off, len - off, "%s...", shown ? ", " : "");
			return;
		}
		n = snprintf(buf + off, len - off, "%s%s", shown ? ", " : "", a);
		if (n < 0)
			return;
		off += (size_t)n;
		shown++;
	}
	if (shown == 0)
		snprintf(buf, len, "no candidates");
}

static void fail_reason(struct nb_punch *pu)
{
	char list[112], from[NB_ADDR_STRLEN];

	format_list(pu, true, list, sizeof(list));
	if (pu->role == NB_ROLE_PROBE && !pu->got_check) {
		char ip[NB_ADDR_STRLEN];
		snprintf(pu->reason, sizeof(pu->reason),
			 "birthday: none of %u probes to ports of %s was answered within %u ms", pu->bd.sent,
			 nb_addr_format_ip(&pu->bd.to, ip, sizeof(ip)), (unsigned)pu->deadline_ms);
	} else if (pu->role == NB_ROLE_SPRAY && !pu->got_check) {
		snprintf(pu->reason, sizeof(pu->reason),
			 "birthday: no probe reached any of our %u sockets within %u ms", pu->bd.sockets,
			 (unsigned)pu->deadline_ms);
	} else if (pu->got_check) {
		nb_addr_format(&pu->check_from, from, sizeof(from));
		snprintf(pu->reason, sizeof(pu->reason),
			 "checks from %s were answered, but none of ours within %u ms", from,
			 (unsigned)pu->deadline_ms);
	} else if (pu->role == NB_ROLE_LISTEN) {
		snprintf(pu->reason, sizeof(pu->reason), "no check from the peer (%s) within %u ms", list,
			 (unsigned)pu->deadline_ms);
	} else {
		snprintf(pu->reason, sizeof(pu->reason), "no answer from %s within %u ms", list,
			 (unsigned)pu->deadline_ms);
	}
}

/* The one place the state changes; entry actions here. */
static void set_state(struct nb_punch *pu, enum nb_punch_state s, uint64_t now)
{
	if (pu->state == s)
		return;
	nb_log_debug("punch", "%s -> %s", nb_punch_state_name(pu->state), nb_punch_state_name(s));
	pu->state = s;
	switch (s) {
	case NB_PUNCH_CHECKING:
		pu->next_tick = now;
		pu->bd.round_at = now;
		break;
	case NB_PUNCH_CONNECTED: {
		char a[NB_ADDR_STRLEN];
		pu->end = now;
		snprintf(pu->reason, sizeof(pu->reason), "answer from %s",
			 nb_addr_format(&pu->remote, a, sizeof(a)));
		break;
	}
	case NB_PUNCH_FAILED:
		pu->end = now;
		pu->n_ans = 0;
		break;
	case NB_PUNCH_WAITING:
		break;
	}
}

int nb_punch_derive_key(const uint8_t dh[32], const char *session, char out[NB_PUNCH_KEY_LEN + 1])
{
	static const char hexd[] = "0123456789abcdef";
	uint8_t msg[sizeof(NB_PUNCH_KEY_LABEL) - 1 + NB_CTRL_SESSION_LEN], mac[32];
	size_t slen = strnlen(session, NB_CTRL_SESSION_LEN + 1), lab = sizeof(NB_PUNCH_KEY_LABEL) - 1;
	unsigned int maclen = 0;

	if (slen == 0 || slen > NB_CTRL_SESSION_LEN)
		return -EINVAL;
	memcpy(msg, NB_PUNCH_KEY_LABEL, lab);
	memcpy(msg + lab, session, slen);
	if (HMAC(EVP_sha256(), dh, 32, msg, lab + slen, mac, &maclen) == NULL || maclen != 32) {
		ERR_clear_error();
		return -EINVAL;
	}
	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = hexd[mac[i] >> 4];
		out[2 * i + 1] = hexd[mac[i] & 15];
	}
	out[NB_PUNCH_KEY_LEN] = '\0';
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

/* ---- Birthday ---------------------------------------------------------------- */

#define TID_SPRAY 0x40
#define TID_PROBE 0x80

/* splitmix64: the probe's port picker. Not a secret: the checks are
 * authenticated, and which port is next tells a third party nothing it
 * could use. */
static uint64_t rng_next(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void bday_tid(const struct nb_punch *pu, uint8_t kind, uint16_t v, uint8_t *tid)
{
	memcpy(tid, pu->seed, NB_STUN_TID_LEN);
	tid[8] ^= kind;
	tid[9] ^= (uint8_t)(v >> 8);
	tid[10] ^= (uint8_t)v;
}

/* One of our birthday transaction IDs: its kind (0 none) and value. */
static uint8_t bday_tid_parse(const struct nb_punch *pu, const uint8_t *tid, uint16_t *ret_v)
{
	uint8_t kind = tid[8] ^ pu->seed[8];

	if (memcmp(tid, pu->seed, 8) != 0 || tid[11] != pu->seed[11] ||
	    (kind != TID_SPRAY && kind != TID_PROBE))
		return 0;
	*ret_v = (uint16_t)(((tid[9] ^ pu->seed[9]) << 8) | (tid[10] ^ pu->seed[10]));
	return kind;
}

static bool probed(const struct nb_punch *pu, uint16_t port)
{
	return (pu->bd.probed[port >> 3] >> (port & 7)) & 1;
}

/* The first public candidate: where the spray goes, whose IP is probed. */
static void bday_init(struct nb_punch *pu, const struct nb_ctrl_plan *plan)
{
	pu->bd.sockets = plan->birthday.sockets;
	pu->bd.probes = plan->birthday.probes;
	if (pu->bd.probes > NB_BDAY_PORTS)
		pu->bd.probes = NB_BDAY_PORTS;
	pu->bd.rate = plan->birthday.rate ? plan->birthday.rate : 1;
	for (size_t i = 0; i < pu->n_plan; i++) {
		if (nb_addr_is_private(&pu->t[i].addr) || nb_addr_is_loopback(&pu->t[i].addr) ||
		    nb_addr_is_link_local(&pu->t[i].addr))
			continue;
		pu->bd.to = pu->t[i].addr;
		break;
	}
	if (pu->role == NB_ROLE_PROBE)
		pu->bd.to.port = 0;
	memcpy(&pu->bd.rng, pu->seed, sizeof(pu->bd.rng));
}

/* A fresh port to probe (the budget is below the number of ports). */
static uint16_t next_port(struct nb_punch *pu)
{
	for (;;) {
		uint16_t port = (uint16_t)(NB_BDAY_PORT_MIN + rng_next(&pu->bd.rng) % NB_BDAY_PORTS);
		if (!probed(pu, port)) {
			pu->bd.probed[port >> 3] |= (uint8_t)(1u << (port & 7));
			return port;
		}
	}
}

/* When the next spray or probe check is due (UINT64_MAX: none). */
static uint64_t bday_due(const struct nb_punch *pu)
{
	if (pu->state != NB_PUNCH_CHECKING || pu->bd.to.family == NB_AF_NONE)
		return UINT64_MAX;
	if (pu->role == NB_ROLE_SPRAY) {
		if (pu->bd.sprayed >= pu->bd.sockets)
			return pu->bd.round_at + NB_PUNCH_SPRAY_REFRESH_MS;
		return pu->bd.round_at + pu->bd.sprayed / NB_PUNCH_SPRAY_PER_MS;
	}
	if (pu->role == NB_ROLE_PROBE && pu->bd.sent < pu->bd.probes)
		return pu->go + ((uint64_t)pu->bd.sent * 1000 + pu->bd.rate - 1) / pu->bd.rate;
	return UINT64_MAX;
}

/* A check with transaction ID tid into pu->out, handed out as *out: 1, or
 * 0 if it did not encode (it always does: the buffer fits the largest). */
static int put_check(struct nb_punch *pu, const uint8_t *tid, const struct nb_addr *to, uint32_t sock,
		     struct nb_punch_tx *out)
{
	struct nb_stun_enc e;

	if (nb_stun_enc_init(&e, pu->out, sizeof(pu->out), NB_STUN_BINDING_REQUEST, tid, false) != 0 ||
	    nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, pu->username, pu->username_len) != 0 ||
	    nb_stun_enc_integrity(&e, pu->key, NB_PUNCH_KEY_LEN) != 0 || nb_stun_enc_fingerprint(&e) != 0)
		return 0;
	pu->checks_sent++;
	out->to = *to;
	out->bytes = pu->out;
	out->len = nb_stun_enc_len(&e);
	out->is_check = true;
	out->first = false;
	out->sock = sock;
	return 1;
}

static int emit_bday(struct nb_punch *pu, uint64_t now, struct nb_punch_tx *out)
{
	uint8_t tid[NB_STUN_TID_LEN];
	struct nb_addr to = pu->bd.to;
	uint32_t sock = 0;

	if (pu->role == NB_ROLE_SPRAY) {
		if (pu->bd.sprayed >= pu->bd.sockets) { /* refresh: a new round */
			pu->bd.sprayed = 0;
			pu->bd.round_at = now;
		}
		sock = ++pu->bd.sprayed;
		if (pu->bd.sprayed == 1)
			pu->bd.rounds++;
		bday_tid(pu, TID_SPRAY, (uint16_t)sock, tid);
	} else {
		to.port = next_port(pu);
		pu->bd.sent++;
		bday_tid(pu, TID_PROBE, to.port, tid);
	}
	return put_check(pu, tid, &to, sock, out);
}

int nb_punch_init(struct nb_punch *pu, const struct nb_punch_params *p,
		  const struct nb_ctrl_plan *plan, const char *key,
		  const uint8_t seed[NB_STUN_TID_LEN], uint64_t now)
{
	size_t ulen = strnlen(plan->username, sizeof(plan->username));

	if (key == NULL || ulen == 0 || ulen > NB_CTRL_USERNAME_MAX || !is_hex_key(key))
		return -EINVAL;
	memset(pu, 0, sizeof(*pu));
	pu->p = p ? *p : default_params;
	if (pu->p.ta_ms == 0)
		pu->p.ta_ms = NB_PUNCH_TA_MS;
	if (pu->p.rto_ms == 0)
		pu->p.rto_ms = NB_PUNCH_RTO_MS;
	if (pu->p.rto_max_ms < pu->p.rto_ms)
		pu->p.rto_max_ms = pu->p.rto_ms;
	pu->role = plan->role;
	memcpy(pu->username, plan->username, ulen);
	pu->username_len = ulen;
	/* RFC 8489 §9.1.1: the short-term key is OpaqueString(password); for 64
	 * lower-case hex characters that is the 64 ASCII bytes themselves. */
	memcpy(pu->key, key, NB_PUNCH_KEY_LEN);
	memcpy(pu->seed, seed, NB_STUN_TID_LEN);
	pu->start = now;
	pu->go = now + plan->delay_ms;
	pu->deadline_ms = plan->deadline_ms;
	pu->deadline = now + plan->deadline_ms;
	pu->state = NB_PUNCH_WAITING;
	for (size_t i = 0; i < plan->n_candidates && i < NB_CTRL_MAX_ADDRS; i++)
		if (usable(&plan->candidates[i]) && find_target(pu, 0, &plan->candidates[i]) == NULL)
			add_target(pu, 0, &plan->candidates[i], true);
	pu->n_plan = pu->n_targets;
	if (plan->role == NB_ROLE_SPRAY || plan->role == NB_ROLE_PROBE) {
		bday_init(pu, plan);
		if (pu->bd.to.family == NB_AF_NONE || pu->bd.sockets == 0) {
			snprintf(pu->reason, sizeof(pu->reason), "birthday: %s",
				 pu->bd.sockets == 0 ? "no sockets to spray from"
						     : "the peer has no public address");
			set_state(pu, NB_PUNCH_FAILED, now);
			return 0;
		}
	}

	if (plan->role == NB_ROLE_NONE || plan->role == NB_ROLE_RELAY) {
		if (plan->role == NB_ROLE_RELAY)
			snprintf(pu->reason, sizeof(pu->reason), "the plan needs a relay, which this natpeer "
								 "does not have yet");
		else if (plan->reason[0] != '\0')
			snprintf(pu->reason, sizeof(pu->reason), "%s", plan->reason);
		else
			snprintf(pu->reason, sizeof(pu->reason), "the broker found no direct path");
		set_state(pu, NB_PUNCH_FAILED, now);
		return 0;
	}
	if (now >= pu->go)
		set_state(pu, NB_PUNCH_CHECKING, now);
	return 0;
}

/* May this target get a check now (time aside)? */
static bool eligible(const struct nb_punch *pu, const struct nb_punch_target *t)
{
	if (t->heard)
		return true; /* triggered and retransmitted in every role */
	if (pu->state != NB_PUNCH_CHECKING || !t->from_plan)
		return false;
	switch (pu->role) {
	case NB_ROLE_DIAL:
	case NB_ROLE_PUNCH:
		return true;
	case NB_ROLE_PRIME:
		return t->sends < pu->p.prime_checks;
	case NB_ROLE_LISTEN:
		/* One priming check toward the dialer: free, and it opens our
		 * filter should the "admits unsolicited" verdict be wrong. */
		return t->sends < 1;
	default:
		return false;
	}
}

static bool active(const struct nb_punch *pu)
{
	return pu->state == NB_PUNCH_WAITING || pu->state == NB_PUNCH_CHECKING;
}

static int emit_answer(struct nb_punch *pu, struct nb_punch_tx *out)
{
	struct nb_stun_enc e;
	struct nb_addr to = pu->ans[0].to;
	uint32_t sock = pu->ans[0].sock;
	uint8_t tid[NB_STUN_TID_LEN];

	memcpy(tid, pu->ans[0].tid, NB_STUN_TID_LEN);
	pu->n_ans--;
	memmove(&pu->ans[0], &pu->ans[1], pu->n_ans * sizeof(pu->ans[0]));
	if (nb_stun_enc_init(&e, pu->out, sizeof(pu->out), NB_STUN_BINDING_SUCCESS, tid, false) != 0 ||
	    nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &to) != 0 ||
	    nb_stun_enc_integrity(&e, pu->key, NB_PUNCH_KEY_LEN) != 0 || nb_stun_enc_fingerprint(&e) != 0)
		return 0;
	pu->answers_sent++;
	out->to = to;
	out->bytes = pu->out;
	out->len = nb_stun_enc_len(&e);
	out->is_check = false;
	out->first = false;
	out->sock = sock;
	return 1;
}

static int emit_check(struct nb_punch *pu, struct nb_punch_target *t, uint64_t now,
		      struct nb_punch_tx *out)
{
	if (put_check(pu, t->tid, &t->addr, t->sock, out) == 0)
		return 0;
	out->first = t->from_plan && t->sends == 0;
	t->sends++;
	t->triggered = false;
	t->next_send = now + t->rto;
	t->rto = t->rto * 2 > pu->p.rto_max_ms ? pu->p.rto_max_ms : t->rto * 2;
	pu->next_tick = now + pu->p.ta_ms;
	return 1;
}

int nb_punch_poll(struct nb_punch *pu, uint64_t now, struct nb_punch_tx *out)
{
	if (active(pu) && now >= pu->deadline) {
		fail_reason(pu);
		set_state(pu, NB_PUNCH_FAILED, now);
	}
	if (pu->state == NB_PUNCH_WAITING && now >= pu->go)
		set_state(pu, NB_PUNCH_CHECKING, now);
	if (pu->state == NB_PUNCH_FAILED)
		return 0;
	/* Answers are not paced: the peer is waiting for them. */
	if (pu->n_ans > 0)
		return emit_answer(pu, out);
	if (!active(pu))
		return 0;
	if (now >= pu->next_tick) {
		/* Triggered checks first (RFC 8445 §6.1.4.2: the triggered-check
		 * queue is served before the ordinary checks). */
		for (size_t i = 0; i < pu->n_targets; i++)
			if (pu->t[i].triggered && eligible(pu, &pu->t[i]))
				return emit_check(pu, &pu->t[i], now, out);
		for (size_t k = 0; k < pu->n_targets; k++) {
			size_t i = (pu->rr + k) % pu->n_targets;
			struct nb_punch_target *t = &pu->t[i];
			if (eligible(pu, t) && now >= t->next_send) {
				pu->rr = (i + 1) % pu->n_targets;
				return emit_check(pu, t, now, out);
			}
		}
	}
	/* Birthday checks have their own pace (the budget's rate). */
	if (now >= bday_due(pu))
		return emit_bday(pu, now, out);
	return 0;
}

uint64_t nb_punch_deadline(const struct nb_punch *pu)
{
	uint64_t d = UINT64_MAX, send = UINT64_MAX;

	if (pu->state == NB_PUNCH_FAILED)
		return d;
	if (pu->n_ans > 0)
		return 0;
	if (!active(pu))
		return d;
	d = pu->deadline;
	if (pu->state == NB_PUNCH_WAITING && pu->go < d)
		d = pu->go;
	for (size_t i = 0; i < pu->n_targets; i++) {
		const struct nb_punch_target *t = &pu->t[i];
		uint64_t at = t->triggered ? 0 : t->next_send;
		if (eligible(pu, t) && at < send)
			send = at;
	}
	if (send != UINT64_MAX) {
		if (send < pu->next_tick)
			send = pu->next_tick;
		if (send < d)
			d = send;
	}
	if (bday_due(pu) < d)
		d = bday_due(pu);
	return d;
}

static int drop(struct nb_punch *pu, enum nb_punch_drop why)
{
	pu->drops[-(int)why - 1]++;
	return (int)why;
}

static bool seen_elsewhere(struct nb_punch *pu, const uint8_t *tid, const struct nb_addr *from,
			   bool *ret_known)
{
	*ret_known = false;
	for (size_t i = 0; i < pu->n_seen; i++) {
		if (memcmp(pu->seen[i].tid, tid, NB_STUN_TID_LEN) != 0)
			continue;
		*ret_known = true;
		return !nb_addr_equal(&pu->seen[i].from, from);
	}
	return false;
}

static void remember(struct nb_punch *pu, const uint8_t *tid, const struct nb_addr *from)
{
	size_t i = pu->seen_next;

	memcpy(pu->seen[i].tid, tid, NB_STUN_TID_LEN);
	pu->seen[i].from = *from;
	pu->seen_next = (i + 1) % NB_PUNCH_MAX_SEEN;
	if (pu->n_seen < NB_PUNCH_MAX_SEEN)
		pu->n_seen++;
}

static int take_check(struct nb_punch *pu, uint32_t sock, const struct nb_stun_msg *m,
		      const uint8_t *buf, size_t len, const struct nb_addr *from)
{
	struct nb_punch_target *t;
	uint16_t v;
	bool known;

	if (!(m->present & NB_STUN_HAS_USERNAME) || m->username_len != pu->username_len ||
	    memcmp(m->username, pu->username, pu->username_len) != 0)
		return drop(pu, NB_PUNCH_DROP_USERNAME);
	if (nb_stun_check_integrity(m, buf, len, pu->key, NB_PUNCH_KEY_LEN) != 0)
		return drop(pu, NB_PUNCH_DROP_INTEGRITY);
	/* Both sides share the key, so our own check looped back verifies. */
	if (find_tid(pu, m->tid) != NULL || bday_tid_parse(pu, m->tid, &v) != 0)
		return drop(pu, NB_PUNCH_DROP_REFLECTED);
	/* A retransmission comes from the same source; a copy of the peer's
	 * check sent from elsewhere is a replay, and must not make us send
	 * answers and checks to a third party. */
	if (seen_elsewhere(pu, m->tid, from, &known))
		return drop(pu, NB_PUNCH_DROP_REPLAYED);
	if (pu->state == NB_PUNCH_FAILED)
		return drop(pu, NB_PUNCH_DROP_STATE);

	if (!known)
		remember(pu, m->tid, from);
	if (pu->n_ans < NB_PUNCH_MAX_ANSWERS) {
		pu->ans[pu->n_ans].to = *from;
		pu->ans[pu->n_ans].sock = sock;
		memcpy(pu->ans[pu->n_ans].tid, m->tid, NB_STUN_TID_LEN);
		pu->n_ans++;
	} else {
		pu->answers_dropped++; /* the peer retransmits */
	}
	pu->got_check = true;
	pu->check_from = *from;
	if (pu->state == NB_PUNCH_CONNECTED)
		return 0;
	t = find_target(pu, sock, from);
	if (t == NULL)
		t = add_target(pu, sock, from, false); /* peer-reflexive */
	if (t != NULL) {
		if (!t->heard) {
			t->rto = pu->p.rto_ms;
			t->next_send = 0;
		}
		t->heard = true;
		t->triggered = true;
	}
	return 0;
}

/* An answer to a spray or probe check: it must come in on the socket, and
 * from the address, the check went out on and to. */
static int take_bday_answer(struct nb_punch *pu, uint32_t sock, uint8_t kind, uint16_t v,
			    const struct nb_addr *from, uint16_t *ret_port)
{
	struct nb_addr want = pu->bd.to;

	if (kind == TID_SPRAY) {
		if (pu->role != NB_ROLE_SPRAY || v == 0 || v > pu->bd.sockets || pu->bd.rounds == 0 ||
		    (pu->bd.rounds == 1 && v > pu->bd.sprayed))
			return NB_PUNCH_DROP_UNKNOWN_TID;
		if (sock != v || !nb_addr_equal(&want, from))
			return NB_PUNCH_DROP_ASYMMETRIC;
		*ret_port = 0; /* the mapped port comes with the answer */
		return 0;
	}
	if (pu->role != NB_ROLE_PROBE || v < NB_BDAY_PORT_MIN || !probed(pu, v))
		return NB_PUNCH_DROP_UNKNOWN_TID;
	want.port = v;
	if (sock != 0 || !nb_addr_equal(&want, from))
		return NB_PUNCH_DROP_ASYMMETRIC;
	*ret_port = v;
	return 0;
}

static int take_answer(struct nb_punch *pu, uint32_t sock, const struct nb_stun_msg *m,
		       const uint8_t *buf, size_t len, const struct nb_addr *from, uint64_t now)
{
	struct nb_punch_target *t = find_tid(pu, m->tid);
	uint16_t v = 0, port = 0;
	uint8_t kind = t == NULL ? bday_tid_parse(pu, m->tid, &v) : 0;
	int rc;

	if (kind != 0) {
		rc = take_bday_answer(pu, sock, kind, v, from, &port);
		if (rc == NB_PUNCH_DROP_UNKNOWN_TID)
			return drop(pu, NB_PUNCH_DROP_UNKNOWN_TID);
		if (nb_stun_check_integrity(m, buf, len, pu->key, NB_PUNCH_KEY_LEN) != 0)
			return drop(pu, NB_PUNCH_DROP_INTEGRITY);
		if (rc != 0)
			return drop(pu, (enum nb_punch_drop)rc);
		if (pu->state == NB_PUNCH_FAILED)
			return drop(pu, NB_PUNCH_DROP_STATE);
		if (pu->state == NB_PUNCH_CONNECTED)
			return 0;
		pu->remote = *from;
		pu->remote_sock = sock;
		if (m->present & NB_STUN_HAS_XOR_MAPPED)
			pu->mapped = m->xor_mapped;
		pu->bd.port = port != 0 ? port : pu->mapped.port;
		set_state(pu, NB_PUNCH_CONNECTED, now);
		return 0;
	}
	if (t == NULL || t->sends == 0)
		return drop(pu, NB_PUNCH_DROP_UNKNOWN_TID);
	if (nb_stun_check_integrity(m, buf, len, pu->key, NB_PUNCH_KEY_LEN) != 0)
		return drop(pu, NB_PUNCH_DROP_INTEGRITY);
	if (!nb_addr_equal(&t->addr, from) || t->sock != sock)
		return drop(pu, NB_PUNCH_DROP_ASYMMETRIC);
	if (pu->state == NB_PUNCH_FAILED)
		return drop(pu, NB_PUNCH_DROP_STATE);
	if (pu->state == NB_PUNCH_CONNECTED) {
		/* A late answer: the path is chosen. The spraying side may still
		 * learn its port from it (it connected on the peer's data). */
		if (pu->role == NB_ROLE_SPRAY && pu->bd.port == 0 && t->sock == pu->remote_sock &&
		    nb_addr_equal(&t->addr, &pu->remote) && (m->present & NB_STUN_HAS_XOR_MAPPED)) {
			pu->mapped = m->xor_mapped;
			pu->bd.port = m->xor_mapped.port;
		}
		return 0;
	}
	pu->remote = *from;
	pu->remote_sock = sock;
	if (m->present & NB_STUN_HAS_XOR_MAPPED)
		pu->mapped = m->xor_mapped;
	if (pu->role == NB_ROLE_SPRAY)
		pu->bd.port = pu->mapped.port;
	else if (pu->role == NB_ROLE_PROBE)
		pu->bd.port = from->port;
	set_state(pu, NB_PUNCH_CONNECTED, now);
	return 0;
}

bool nb_punch_heard_on(const struct nb_punch *pu, uint32_t sock, const struct nb_addr *from)
{
	for (size_t i = 0; i < pu->n_targets; i++)
		if (pu->t[i].heard && pu->t[i].sock == sock && nb_addr_equal(&pu->t[i].addr, from))
			return true;
	return false;
}

bool nb_punch_heard(const struct nb_punch *pu, const struct nb_addr *from)
{
	return nb_punch_heard_on(pu, 0, from);
}

bool nb_punch_sent_to(const struct nb_punch *pu, uint32_t sock, const struct nb_addr *to)
{
	for (size_t i = 0; i < pu->n_targets; i++)
		if (pu->t[i].sends > 0 && pu->t[i].sock == sock && nb_addr_equal(&pu->t[i].addr, to))
			return true;
	return false;
}

int nb_punch_confirm_sent(struct nb_punch *pu, uint32_t sock, const struct nb_addr *from,
			  uint64_t now)
{
	char a[NB_ADDR_STRLEN];

	if (!active(pu) || !nb_punch_sent_to(pu, sock, from))
		return -1;
	pu->remote = *from;
	pu->remote_sock = sock;
	set_state(pu, NB_PUNCH_CONNECTED, now);
	snprintf(pu->reason, sizeof(pu->reason), "handshake answered from %s",
		 nb_addr_format(from, a, sizeof(a)));
	return 0;
}

int nb_punch_confirm(struct nb_punch *pu, const struct nb_addr *from, uint64_t now)
{
	return nb_punch_confirm_on(pu, 0, from, now);
}

int nb_punch_confirm_on(struct nb_punch *pu, uint32_t sock, const struct nb_addr *from, uint64_t now)
{
	char a[NB_ADDR_STRLEN];

	if (!active(pu) || !nb_punch_heard_on(pu, sock, from))
		return -1;
	pu->remote = *from;
	pu->remote_sock = sock;
	if (pu->role == NB_ROLE_PROBE)
		pu->bd.port = from->port;
	set_state(pu, NB_PUNCH_CONNECTED, now);
	snprintf(pu->reason, sizeof(pu->reason), "authenticated data from %s",
		 nb_addr_format(from, a, sizeof(a)));
	return 0;
}

int nb_punch_input(struct nb_punch *pu, const uint8_t *buf, size_t len, const struct nb_addr *from,
		   uint64_t now)
{
	return nb_punch_input_on(pu, 0, buf, len, from, now);
}

int nb_punch_input_on(struct nb_punch *pu, uint32_t sock, const uint8_t *buf, size_t len,
		      const struct nb_addr *from, uint64_t now)
{
	struct nb_stun_msg m;
	ssize_t r;

	if (sock != 0 && (pu->role != NB_ROLE_SPRAY || sock > pu->bd.sockets))
		return drop(pu, NB_PUNCH_DROP_NOT_CHECK);
	if (len > NB_STUN_MAX_MSG)
		return drop(pu, NB_PUNCH_DROP_NOT_STUN);
	r = nb_stun_decode(&m, buf, len);
	if (r < 0)
		return drop(pu, NB_PUNCH_DROP_NOT_STUN); /* includes a wrong FINGERPRINT */
	if (m.classic || m.method != NB_STUN_METHOD_BINDING ||
	    (m.cls != NB_STUN_CLASS_REQUEST && m.cls != NB_STUN_CLASS_SUCCESS))
		return drop(pu, NB_PUNCH_DROP_NOT_CHECK);
	if (!(m.present & NB_STUN_HAS_FINGERPRINT))
		return drop(pu, NB_PUNCH_DROP_FINGERPRINT);
	/* HMAC-SHA1 MESSAGE-INTEGRITY only: nb_stun_check_integrity() would
	 * prefer a -SHA256 one, which we never send. */
	if (!(m.present & NB_STUN_HAS_INTEGRITY) || (m.present & NB_STUN_HAS_INTEGRITY_SHA256))
		return drop(pu, NB_PUNCH_DROP_INTEGRITY);
	if (m.cls == NB_STUN_CLASS_REQUEST)
		return take_check(pu, sock, &m, buf, len, from);
	return take_answer(pu, sock, &m, buf, len, from, now);
}
