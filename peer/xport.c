/* peer/xport.c - the TCP transport's stream-0 message codec and its ID table (pure). */
#include "peer/xport.h"

#include <string.h>

#define ID_SLOT_BITS 12
#define ID_GEN_MAX ((1u << (32 - ID_SLOT_BITS)) - 1)

const char *nb_xport_strerror(int err)
{
	switch (err) {
	case 0: return "ok";
	case NB_XPORT_E_SHORT: return "transport message too short";
	case NB_XPORT_E_PPID: return "unknown transport message PPID";
	case NB_XPORT_E_FORMAT: return "malformed transport message";
	case NB_XPORT_E_SERVICE: return "bad service name";
	case NB_XPORT_E_NOSPACE: return "buffer too small";
	case NB_XPORT_E_INVAL: return "invalid argument";
	case NB_XPORT_E_FULL: return "transport ID table full";
	case NB_XPORT_E_UNKNOWN: return "unknown transport ID";
	case NB_XPORT_E_LIMIT: return "too many associations";
	case NB_XPORT_E_STATE: return "not allowed in this connection state";
	case NB_XPORT_E_SCTP: return "usrsctp call failed";
	case NB_XPORT_E_NOMEM: return "out of memory";
	default: return "unknown error";
	}
}

static const struct {
	enum nb_xport_msg_type type;
	uint32_t ppid;
	uint8_t body; /* the one body byte of OK, REFUSED, FIN */
} msg_kinds[] = {
	{ NB_XPORT_MSG_OPEN, NB_XPORT_PPID_OPEN, 0 },
	{ NB_XPORT_MSG_OK, NB_XPORT_PPID_OK, 'K' },
	{ NB_XPORT_MSG_REFUSED, NB_XPORT_PPID_REFUSED, 'R' },
	{ NB_XPORT_MSG_DATA, NB_XPORT_PPID_DATA, 0 },
	{ NB_XPORT_MSG_FIN, NB_XPORT_PPID_FIN, 'F' },
};
#define N_KINDS (sizeof(msg_kinds) / sizeof(msg_kinds[0]))

uint32_t nb_xport_msg_ppid(enum nb_xport_msg_type type)
{
	for (size_t i = 0; i < N_KINDS; i++)
		if (msg_kinds[i].type == type)
			return msg_kinds[i].ppid;
	return 0;
}

static int service_char_ok(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
	       c == '.' || c == '_' || c == '-';
}

static int service_ok(const uint8_t *s, size_t n)
{
	if (n == 0 || n > NB_XPORT_SERVICE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!service_char_ok(s[i]))
			return 0;
	return 1;
}

ssize_t nb_xport_msg_encode(enum nb_xport_msg_type type, const char *service, uint8_t *out,
			    size_t cap)
{
	size_t n;

	if (!out)
		return NB_XPORT_E_INVAL;
	if (type == NB_XPORT_MSG_OPEN) {
		if (!service)
			return NB_XPORT_E_INVAL;
		n = strnlen(service, NB_XPORT_SERVICE_MAX + 1);
		if (!service_ok((const uint8_t *)service, n))
			return NB_XPORT_E_SERVICE;
		if (cap < 2 + n)
			return NB_XPORT_E_NOSPACE;
		out[0] = NB_XPORT_OPEN_VERSION;
		out[1] = (uint8_t)n;
		memcpy(out + 2, service, n);
		return (ssize_t)(2 + n);
	}
	for (size_t i = 0; i < N_KINDS; i++) {
		if (msg_kinds[i].type != type || msg_kinds[i].body == 0)
			continue;
		if (cap < 1)
			return NB_XPORT_E_NOSPACE;
		out[0] = msg_kinds[i].body;
		return 1;
	}
	return NB_XPORT_E_INVAL;
}

int nb_xport_msg_decode(uint32_t ppid, const uint8_t *buf, size_t len, struct nb_xport_msg *ret)
{
	size_t i;

	if (!ret || (!buf && len))
		return NB_XPORT_E_INVAL;
	for (i = 0; i < N_KINDS; i++)
		if (msg_kinds[i].ppid == ppid)
			break;
	if (i == N_KINDS)
		return NB_XPORT_E_PPID;
	switch (msg_kinds[i].type) {
	case NB_XPORT_MSG_OPEN:
		if (len < 2)
			return NB_XPORT_E_SHORT;
		if (buf[0] != NB_XPORT_OPEN_VERSION)
			return NB_XPORT_E_FORMAT;
		if (len - 2 != buf[1])
			return len - 2 < buf[1] ? NB_XPORT_E_SHORT : NB_XPORT_E_FORMAT;
		if (!service_ok(buf + 2, buf[1]))
			return NB_XPORT_E_SERVICE;
		ret->type = NB_XPORT_MSG_OPEN;
		ret->body = buf + 2;
		ret->len = buf[1];
		return 0;
	case NB_XPORT_MSG_DATA:
		if (len < 1)
			return NB_XPORT_E_SHORT;
		if (len > NB_XPORT_DATA_MAX)
			return NB_XPORT_E_FORMAT;
		ret->type = NB_XPORT_MSG_DATA;
		ret->body = buf;
		ret->len = len;
		return 0;
	default:
		if (len < 1)
			return NB_XPORT_E_SHORT;
		if (len != 1 || buf[0] != msg_kinds[i].body)
			return NB_XPORT_E_FORMAT;
		ret->type = msg_kinds[i].type;
		ret->body = buf + 1;
		ret->len = 0;
		return 0;
	}
}

int nb_xport_ids_init(struct nb_xport_ids *t, struct nb_xport_id_slot *slots, uint32_t cap)
{
	if (!t || !slots || cap == 0 || cap > NB_XPORT_IDS_MAX)
		return NB_XPORT_E_INVAL;
	memset(slots, 0, sizeof(*slots) * cap);
	t->slot = slots;
	t->cap = cap;
	t->used = 0;
	t->next = 0;
	return 0;
}

int nb_xport_ids_add(struct nb_xport_ids *t, void *obj, uint32_t *ret_id)
{
	if (!t || !obj || !ret_id)
		return NB_XPORT_E_INVAL;
	if (t->used >= t->cap)
		return NB_XPORT_E_FULL;
	/* Round robin from the last slot handed out: a released slot is the
	 * last to be reused, which spreads the generations. */
	for (uint32_t k = 0; k < t->cap; k++) {
		uint32_t s = (t->next + k) % t->cap;
		struct nb_xport_id_slot *e = &t->slot[s];

		if (e->obj)
			continue;
		e->gen = e->gen >= ID_GEN_MAX ? 1 : e->gen + 1;
		e->obj = obj;
		t->used++;
		t->next = (s + 1) % t->cap;
		*ret_id = (e->gen << ID_SLOT_BITS) | s;
		return 0;
	}
	return NB_XPORT_E_FULL;
}

void *nb_xport_ids_get(const struct nb_xport_ids *t, uint32_t id)
{
	uint32_t s = id & ((1u << ID_SLOT_BITS) - 1), gen = id >> ID_SLOT_BITS;

	if (!t || !t->slot || s >= t->cap || gen == 0 || t->slot[s].gen != gen)
		return NULL;
	return t->slot[s].obj;
}

int nb_xport_ids_del(struct nb_xport_ids *t, uint32_t id)
{
	uint32_t s = id & ((1u << ID_SLOT_BITS) - 1);

	if (!nb_xport_ids_get(t, id))
		return NB_XPORT_E_UNKNOWN;
	t->slot[s].obj = NULL;
	t->used--;
	return 0;
}
