/* peer/xport.h - the pure parts of the TCP transport (docs/forwarding.md "TCP:
 * the transport"): the messages on an association's stream 0 and the table
 * of small integer IDs that usrsctp sees instead of pointers. No sockets,
 * no usrsctp, no clock; peer/xport_run.c is the shell.
 *
 * Every message is one SCTP user message on stream 0; its PPID says what it
 * is. The PPIDs are 4 bits apart, so no single bit flip turns one into
 * another:
 *
 *   PPID 0x4E425811 "open"   (opener -> acceptor, first message, once)
 *    0        1        2                  2+n
 *   +--------+--------+------------------+
 *   |  0x01  |   n    | service, n bytes |   n = 1..64, [A-Za-z0-9:._-]
 *   +--------+--------+------------------+   (e.g. "tcp:22")
 *    version
 *
 *   PPID 0x4E425822 "ok"       +------+      PPID 0x4E425844 "refused" +------+
 *   (acceptor's answer)        | 'K'  |      (then SHUTDOWN)           | 'R'  |
 *                              +------+                                +------+
 *   PPID 0x4E42580F "fin"      +------+      PPID 0x4E425888 "data"
 *   (half-close, after data)   | 'F'  |      1..65536 bytes of the TCP stream
 *                              +------+
 *
 * The PPID travels in network byte order (usrsctp passes it through as is).
 */
#ifndef NB_PEER_XPORT_H
#define NB_PEER_XPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NB_XPORT_PPID_OPEN 0x4E425811u
#define NB_XPORT_PPID_OK 0x4E425822u
#define NB_XPORT_PPID_REFUSED 0x4E425844u
#define NB_XPORT_PPID_DATA 0x4E425888u
#define NB_XPORT_PPID_FIN 0x4E42580Fu

#define NB_XPORT_OPEN_VERSION 1
#define NB_XPORT_SERVICE_MAX 64
#define NB_XPORT_MSG_MAX (2 + NB_XPORT_SERVICE_MAX) /* the longest control message */
#define NB_XPORT_DATA_MAX 65536                      /* one "data" message */

/* Our own error codes: -4800..-4899. */
enum nb_xport_err {
	NB_XPORT_E_SHORT = -4801,   /* message shorter than its type needs */
	NB_XPORT_E_PPID = -4802,    /* unknown PPID */
	NB_XPORT_E_FORMAT = -4803,  /* wrong version, length or body byte */
	NB_XPORT_E_SERVICE = -4804, /* service name empty, too long or bad character */
	NB_XPORT_E_NOSPACE = -4805, /* output buffer too small */
	NB_XPORT_E_INVAL = -4806,   /* bad argument */
	NB_XPORT_E_FULL = -4807,    /* ID table full */
	NB_XPORT_E_UNKNOWN = -4808, /* no such ID (never issued, or released) */
	NB_XPORT_E_LIMIT = -4809,   /* association limit reached */
	NB_XPORT_E_STATE = -4810,   /* not allowed in this connection state */
	NB_XPORT_E_SCTP = -4811,    /* a usrsctp call failed */
	NB_XPORT_E_NOMEM = -4812,   /* allocation failed */
};

const char *nb_xport_strerror(int err);

enum nb_xport_msg_type {
	NB_XPORT_MSG_OPEN = 1,
	NB_XPORT_MSG_OK,
	NB_XPORT_MSG_REFUSED,
	NB_XPORT_MSG_DATA,
	NB_XPORT_MSG_FIN,
};

/* A decoded message. body/len is a view into the caller's buffer: for OPEN
 * the service name (not NUL-terminated), for DATA the bytes; empty for the
 * others. */
struct nb_xport_msg {
	enum nb_xport_msg_type type;
	const uint8_t *body;
	size_t len;
};

/* The PPID (host order) of a message type; 0 for an unknown type. */
uint32_t nb_xport_msg_ppid(enum nb_xport_msg_type type);

/* Encode a control message (OPEN, OK, REFUSED, FIN; not DATA, whose body is
 * the bytes themselves). service is used by OPEN only (NUL-terminated).
 * Returns the length written, or a negative enum nb_xport_err (out
 * untouched). */
ssize_t nb_xport_msg_encode(enum nb_xport_msg_type type, const char *service, uint8_t *out,
			    size_t cap);

/* Decode one complete message with its PPID (host order). 0 and *ret set,
 * or a negative enum nb_xport_err (*ret untouched). */
int nb_xport_msg_decode(uint32_t ppid, const uint8_t *buf, size_t len, struct nb_xport_msg *ret);

/* The ID table: bounded, caller-provided slots. An ID is
 * (generation << 12) | slot with a per-slot generation that moves on at each
 * add and never makes ID 0, so a released ID is not handed out again until
 * that slot has been reused 2^20 times. */
#define NB_XPORT_IDS_MAX 4096 /* slots at most (12 bits) */

struct nb_xport_id_slot {
	void *obj;    /* NULL: free */
	uint32_t gen; /* 1..2^20-1 once used */
};

struct nb_xport_ids {
	struct nb_xport_id_slot *slot;
	uint32_t cap, used;
	uint32_t next; /* where the next search for a free slot starts */
};

/* cap = 1..NB_XPORT_IDS_MAX slots, zeroed here. 0 or NB_XPORT_E_INVAL. */
int nb_xport_ids_init(struct nb_xport_ids *t, struct nb_xport_id_slot *slots, uint32_t cap);
/* Store obj (non-NULL); 0 and *ret_id, or NB_XPORT_E_FULL / _INVAL. */
int nb_xport_ids_add(struct nb_xport_ids *t, void *obj, uint32_t *ret_id);
/* The object of a live ID, or NULL (unknown, stale or 0). */
void *nb_xport_ids_get(const struct nb_xport_ids *t, uint32_t id);
/* Release a live ID: 0, or NB_XPORT_E_UNKNOWN. */
int nb_xport_ids_del(struct nb_xport_ids *t, uint32_t id);

#endif
