/* broker/server.c - the broker's libuv shell: sockets, a timer and signals around nb_binding_handle() and nb_rendezvous_handle(). */
#include "broker/server.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/crypto.h>

#include "broker/plink.h"
#include "broker/status_run.h"
#include "broker/tcpprobe_run.h"
#include "common/bytes.h"
#include "common/keys.h"
#include "common/noise.h"
#include "common/seal.h"
#include "common/log.h"
#include "common/udp.h"
#include "proto/ctrl.h"
#include "proto/nat.h"
#include "proto/stun.h"
#include "proto/tcpframe.h"
#include "proto/turn.h"

#define LOG "broker"
#define LOG_RV "rendezvous"
/* At most one warning per this many ms for a repeating condition. */
#define WARN_INTERVAL_MS 10000
/* Info lines of one kind (register, expire, connect, ...): at most this
 * many per second; the rest are counted and the count is logged with the
 * next line of that kind that gets through. */
#define INFO_BURST 20
#define INFO_WINDOW_MS 1000
/* Random bytes fetched from getrandom() at a time; each connect uses
 * NB_RENDEZVOUS_RANDOM_LEN of them. */
#define RND_POOL 1024
/* Datagrams per nb_rendezvous_poll() call, and calls per timer callback
 * (bounded work per callback; the timer fires again at once for more). */
#define POLL_BATCH 8
/* Sessions whose round trip is being measured at once (a handshake to its
 * first frame takes one round trip; a lost sample costs nothing). */
#define RTT_SLOTS_LOG2 12
#define RTT_SLOTS (1u << RTT_SLOTS_LOG2)

struct rtt_slot {
	uint32_t index; /* our index of the session */
	bool used, ambiguous;
	bool measured;    /* its first frame came: rtt holds the sample */
	uint32_t rtt;     /* ms; 0: none (ambiguous, too long) */
	uint64_t sent_at; /* the handshake response, loop ms */
};
/* The broker-key request and its answer (docs/protocol.md "Broker key"). */
#define KEYQ_TYPE 0xD5
#define KEYQ_MIN_LEN 64
#define KEYR_TYPE 0xD6
#define POLL_ROUNDS 16

/* Rate limit for log lines of one kind. */
struct log_limit {
	uint64_t start;      /* window start (ms) */
	unsigned n;          /* lines in this window */
	uint64_t suppressed; /* lines not logged since the last one that was */
};

enum {
	LL_REGISTER, LL_EXPIRE, LL_CONNECT, LL_PUSH, LL_RESULT, LL_REFUSED, LL_RANDOM,
	LL_LIMIT_PEERS, LL_LIMIT_SESSIONS, LL_LIMIT_CACHE, LL_LIMIT_RATE,
	LL_SRC_RATE, LL_SRC_TABLE, LL_TCP_BYTES, LL_PLINK_FULL,
	LL_TURN_REFUSED, LL_TURN_ALLOC, LL_TURN_BIND, LL_NO_FAMILY,
	LL_COUNT,
};

/* Every socket knows its family (the index of its set: enum nb_fam), its
 * IP index and its port index within the set. */
struct udp_sock {
	struct nb_udp udp;
	struct nb_server *srv;
	uint8_t fam, ip, port;
	bool open;
};

struct tcp_listener {
	uv_tcp_t handle;
	struct nb_server *srv;
	uint8_t fam, ip, port;
	bool open;
	bool paused; /* a connection waits in libuv: accept it when a slot frees */
};

/* A TCP frame (proto/tcpframe.h) is at most this long; a longer one closes
 * the connection. Room for a TURN Send indication of NB_TURN_MAX_DATA. */
#define TCP_FRAME_MAX 2048
/* Bytes queued for one connection that the kernel has not taken. Relayed
 * data over it is dropped (and counted); anything else closes it. */
#define TCP_WQ_MAX (256 * 1024)
/* Idle limit of a connection that carries a sealed control session or a
 * TURN allocation (it is a host's way in, not a one-off request). */
#define TCP_LONG_IDLE_MS (600 * 1000)

/*
 * One TCP connection. rbuf holds at most one whole frame (a longer frame
 * closes the connection). What uv_try_write does not take at once goes
 * into a uv_write of its own (struct conn_write), TCP_WQ_MAX at most.
 */
struct tcp_conn {
	uv_tcp_t handle;
	uv_timer_t timer;
	struct nb_server *srv;
	struct tcp_conn *prev, *next;
	struct nb_addr peer;
	uint64_t id;          /* for TURN's 5-tuple; never 0 */
	uint8_t fam, ip, port; /* the listener that accepted it */
	uint8_t open_handles; /* handles not yet closed: freed at 0 */
	bool closing;
	bool ctrl;            /* a sealed control session runs over it */
	bool turn_on;         /* a TURN allocation lives on it */
	size_t wq_bytes;      /* queued in uv_write requests */
	size_t have;          /* bytes in rbuf */
	uint64_t total;       /* bytes read since accept */
	uint8_t rbuf[TCP_FRAME_MAX];
};

struct conn_write {
	uv_write_t req; /* first */
	struct tcp_conn *c;
	size_t len;
	uint8_t data[];
};

/* One allocation's relay socket (TURN), found by its handle. */
struct relay_sock {
	uv_udp_t h; /* first */
	struct nb_server *srv;
	uint32_t alloc;
	struct relay_sock *next; /* hash chain */
	bool counted; /* closed by nb_server_close(): its callback ends a pending count */
};
#define RELAY_BUCKETS 4096

/* Datagrams for peers produced while a receive batch is handled: sent at
 * its end, one sendmmsg per relay socket (grouped, each socket's order
 * kept), instead of one sendmsg each. */
#define RELAY_TXQ 64
struct relay_txq {
	unsigned n;
	struct {
		struct relay_sock *r;
		struct sockaddr_storage to;
		socklen_t tolen;
		size_t len;
		uint8_t data[NB_TURN_MAX_RESPONSE];
	} e[RELAY_TXQ];
};

struct nb_server {
	uv_loop_t *loop;
	struct nb_server_config cfg;
	/* One binding set per family (has[f]: the broker listens on f); a
	 * destination of family f is reached from the sockets of set
	 * route[f] (f itself; NB_FAM_V6 for IPv4 too when the one listen is
	 * the dual-stack ::), NB_FAM_COUNT when none. */
	struct nb_binding_config bind[NB_FAM_COUNT];
	bool has[NB_FAM_COUNT];
	uint8_t route[NB_FAM_COUNT];
	char software[NB_BINDING_MAX_SOFTWARE + 1];
	struct udp_sock udp[NB_FAM_COUNT][2][2];
	struct tcp_listener tcp[NB_FAM_COUNT][2][2];
	struct tcp_conn *conns; /* every allocated connection, closing ones too */
	unsigned n_conns;
	uint64_t last_accept_warn_ms, last_full_warn_ms;
	uint64_t full_waits_logged; /* stats.tcp_refused_full at the last warning */
	bool closing;
	unsigned pending; /* while closing: handles and connections not yet gone */
	void (*done_cb)(void *arg);
	void *done_arg;
	struct nb_server_stats stats;

	/* Rendezvous: control messages on the primary UDP socket. */
	struct nb_rendezvous *rv;
	uv_timer_t rv_timer;
	bool rv_timer_open;
	uint64_t rv_timer_due; /* UINT64_MAX: not armed */
	uint8_t rnd[RND_POOL];
	size_t rnd_pos; /* bytes of rnd used; RND_POOL: empty */
	struct nb_rendezvous_out rv_out;
	struct nb_rendezvous_dgram rv_poll[POLL_BATCH];
	struct log_limit ll[LL_COUNT];

	/* TCP mapping probes (a verify with "tcp"). */
	struct nb_tcpprobes *probes;

	/* Sealed control sessions (Noise IK, the broker as responder). */
	struct nb_plink *pl;
	uint8_t sealbuf[NB_SEAL_MAX_DATAGRAM];
	uint8_t plainbuf[NB_SEAL_MAX_DATAGRAM];
	/* The round trip of each new session: when its handshake response
	 * went out, by our index, until its first frame (rtt_sent/rtt_take). */
	struct rtt_slot rtt[RTT_SLOTS];

	/* Per-source rate limit; NULL: off. */
	struct nb_ratelimit *rl;
	uint64_t rl_active_seen; /* recycled_active at the last check */

	/* TURN relay; NULL: off. */
	struct nb_turn *turn;
	uv_timer_t turn_timer;
	bool turn_timer_open;
	struct relay_sock *relay[RELAY_BUCKETS];
	uint8_t relay_rbuf[NB_UDP_SLOT];
	bool relay_rbuf_busy;
	uint64_t conn_ids;
	uint8_t framebuf[NB_TCPF_HDR + NB_SEAL_MAX_DATAGRAM];
	struct relay_txq *rtxq; /* NULL: send each at once */
	bool in_batch;          /* a UDP receive batch is being handled */
};

/* ---- Round trips of the sealed sessions ------------------------------------ */

/* A handshake response (its sender_index, bytes 1..4, is our index of the
 * new session) went out at now. A second response for the same index (a
 * retransmitted initiation) makes the session's round trip ambiguous: its
 * first frame may answer either (Karn's rule), so it is not measured. A
 * table slot taken by another index is simply overwritten: a lost sample. */
static void rtt_sent(struct nb_server *srv, const uint8_t *resp, size_t len, uint64_t now)
{
	struct rtt_slot *r;
	uint32_t idx;

	if (len < NB_NOISE_RESP_HDR_LEN)
		return;
	idx = nb_get_u32be(resp + 1);
	r = &srv->rtt[(idx * 2654435761u) >> (32 - RTT_SLOTS_LOG2)];
	if (r->used && r->index == idx) {
		r->ambiguous = true;
		return;
	}
	r->used = true;
	r->ambiguous = false;
	r->measured = false;
	r->rtt = 0;
	r->index = idx;
	r->sent_at = now;
}

/* A frame (0xD3: receiver_index at bytes 1..4) that opened at now. The
 * session's first frame times the round trip; it is often empty (natpeer
 * confirms a new session at once with an empty frame when it has nothing
 * queued), so the sample waits in the slot for the session's first
 * control message: with `message`, returns it (ms, >= 1) and frees the
 * slot; else 0. */
static uint32_t rtt_frame(struct nb_server *srv, const uint8_t *frame, size_t len, uint64_t now,
			  bool message)
{
	struct rtt_slot *r;
	uint32_t idx;

	if (len < NB_SEAL_HDR_LEN)
		return 0;
	idx = nb_get_u32be(frame + 1);
	r = &srv->rtt[(idx * 2654435761u) >> (32 - RTT_SLOTS_LOG2)];
	if (!r->used || r->index != idx)
		return 0;
	if (!r->measured) {
		uint64_t ms = now >= r->sent_at ? now - r->sent_at : UINT64_MAX;
		r->measured = true;
		if (!r->ambiguous && ms <= NB_RENDEZVOUS_RTT_MAX_MS)
			r->rtt = ms > 0 ? (uint32_t)ms : 1; /* under the clock's millisecond: 1 */
	}
	if (!message)
		return 0;
	r->used = false;
	return r->rtt;
}

static void conn_close(struct tcp_conn *c);
static void conn_process(struct tcp_conn *c);
static void conn_send(struct tcp_conn *c, const uint8_t *data, size_t len, bool droppable);
static void conn_send_dgram(struct tcp_conn *c, const uint8_t *data, size_t len);
static void turn_do(struct nb_server *srv, struct nb_turn_out *out);
static struct tcp_conn *conn_of_control(struct nb_server *srv, const struct nb_addr *to);
static int turn_from_client(struct nb_server *srv, const struct nb_turn_client *tc,
			    const uint8_t *data, size_t len);
static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void listener_accept(struct tcp_listener *l);
static void server_pending_done(struct nb_server *srv);

void nb_server_config_default(struct nb_server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen[0].family = NB_AF_INET; /* 0.0.0.0 */
	cfg->n_listen = 1;
	cfg->port = NB_SERVER_DEFAULT_PORT;
	cfg->alt_port = NB_SERVER_DEFAULT_ALT_PORT;
	cfg->tcp = true;
	cfg->max_tcp = NB_SERVER_DEFAULT_MAX_TCP;
	cfg->tcp_idle_timeout_ms = NB_SERVER_DEFAULT_TCP_IDLE_MS;
	cfg->tcp_max_bytes = NB_SERVER_DEFAULT_TCP_MAX_BYTES;
	cfg->max_peers = NB_REGISTRY_DEFAULT_MAX;
	cfg->max_sessions = NB_RENDEZVOUS_DEFAULT_MAX_SESSIONS;
	cfg->max_links = NB_PLINK_DEFAULT_MAX;
	cfg->keepalive_s = NB_RENDEZVOUS_DEFAULT_KEEPALIVE_S;
	cfg->token = NULL;
	cfg->rate_limit = NB_RATELIMIT_DEFAULT_RATE;
	cfg->rate_burst = NB_RATELIMIT_DEFAULT_BURST;
	cfg->rate_table = NB_RATELIMIT_DEFAULT_ENTRIES;
	cfg->rate_penalty_s = NB_RATELIMIT_DEFAULT_PENALTY_S;
	cfg->birthday.has = true;
	cfg->birthday.sockets = NB_RENDEZVOUS_DEFAULT_BDAY_SOCKETS;
	cfg->birthday.probes = NB_RENDEZVOUS_DEFAULT_BDAY_PROBES;
	cfg->birthday.rate = NB_RENDEZVOUS_DEFAULT_BDAY_RATE;
	cfg->rtt_timing = true;
}

const struct nb_server_stats *nb_server_stats(const struct nb_server *srv)
{
	return &srv->stats;
}

void nb_server_rendezvous_stats(const struct nb_server *srv, struct nb_rendezvous_stats *ret)
{
	nb_rendezvous_get_stats(srv->rv, ret);
}

void nb_server_plink_stats(const struct nb_server *srv, struct nb_plink_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	nb_plink_get_stats(srv->pl, ret);
}

void nb_server_ratelimit_stats(const struct nb_server *srv, struct nb_ratelimit_stats *ret)
{
	if (srv->rl != NULL)
		*ret = *nb_ratelimit_get_stats(srv->rl);
	else
		memset(ret, 0, sizeof(*ret));
}

static unsigned n_ips(const struct nb_server *srv, unsigned f)
{
	return srv->bind[f].rfc5780 ? 2 : 1;
}

/* A family's primary socket (IP1:port): the one that takes control messages. */
static bool is_primary(const struct udp_sock *s)
{
	return s->ip == 0 && s->port == 0;
}

/* TURN's socket index of a listening socket (nb_turn_client.sock): family,
 * IP, port in three bits; turn_client_sock() reverses it. */
static uint8_t turn_sock_index(unsigned fam, unsigned ip, unsigned port)
{
	return (uint8_t)(((fam & 1u) << 2) | ((ip & 1u) << 1) | (port & 1u));
}

static struct udp_sock *turn_client_sock(struct nb_server *srv, uint8_t sock)
{
	return &srv->udp[(sock >> 2) & 1][(sock >> 1) & 1][sock & 1];
}

static bool log_allow(struct nb_server *srv, unsigned k, unsigned burst, uint64_t window_ms,
		      uint64_t *ret_suppressed);
static const char *more_text(uint64_t suppressed, char *buf, size_t len);

/* The UDP socket that sends to `to`: the primary socket of to's family
 * (alt_port: the primary IP's alternate port when RFC 5780 mode has one,
 * as a UPnP probe needs; else the primary). NULL when the broker has no
 * open socket of that family: the datagram is dropped, counted and logged
 * (at most once per WARN_INTERVAL_MS). */
static struct udp_sock *tx_sock(struct nb_server *srv, const struct nb_addr *to, bool alt_port)
{
	unsigned f = srv->route[nb_addr_fam(to)];
	struct udp_sock *tx;
	uint64_t sup;

	if (f < NB_FAM_COUNT) {
		tx = &srv->udp[f][0][0];
		if (alt_port)
			tx = srv->udp[f][0][1].open ? &srv->udp[f][0][1]
			   : srv->udp[f][1][1].open ? &srv->udp[f][1][1]
			   : srv->udp[f][1][0].open ? &srv->udp[f][1][0] : tx;
		if (tx->open)
			return tx;
	}
	srv->stats.tx_no_family++;
	if (log_allow(srv, LL_NO_FAMILY, 1, WARN_INTERVAL_MS, &sup)) {
		char a[NB_ADDR_STRLEN], more[64];
		nb_log_warn(LOG, "no %s socket: a datagram to %s dropped (%llu in all; --listen "
				 "an address of that family to serve it)%s",
			    to->family == NB_AF_INET6 ? "IPv6" : "IPv4", nb_addr_format(to, a, sizeof(a)),
			    (unsigned long long)srv->stats.tx_no_family, more_text(sup, more, sizeof(more)));
	}
	return NULL;
}

/* Send what the primary sockets queued (outside a receive batch). */
static void flush_primaries(struct nb_server *srv)
{
	for (unsigned f = 0; f < NB_FAM_COUNT; f++)
		if (srv->udp[f][0][0].open)
			nb_udp_flush(&srv->udp[f][0][0].udp);
}

/* ---- Rendezvous -------------------------------------------------------------- */

/* True if a line of kind k may be logged now; *ret_suppressed is how many
 * were not since the last one that was. */
static bool log_allow(struct nb_server *srv, unsigned k, unsigned burst, uint64_t window_ms,
		      uint64_t *ret_suppressed)
{
	struct log_limit *l = &srv->ll[k];
	uint64_t now = uv_now(srv->loop);

	if (l->n == 0 || now - l->start >= window_ms) {
		l->start = now;
		l->n = 0;
	}
	if (l->n >= burst) {
		l->suppressed++;
		return false;
	}
	l->n++;
	*ret_suppressed = l->suppressed;
	l->suppressed = 0;
	return true;
}

/* " (N more not logged)" or "". */
static const char *more_text(uint64_t suppressed, char *buf, size_t len)
{
	buf[0] = '\0';
	if (suppressed > 0)
		snprintf(buf, len, " (%llu similar lines not logged)", (unsigned long long)suppressed);
	return buf;
}

static const char *word(const char *s)
{
	return s != NULL ? s : "?";
}

static void log_limit_hit(struct nb_server *srv, const struct nb_rendezvous_event *ev)
{
	static const unsigned kinds[] = {
		[NB_RV_LIMIT_PEERS] = LL_LIMIT_PEERS, [NB_RV_LIMIT_SESSIONS] = LL_LIMIT_SESSIONS,
		[NB_RV_LIMIT_CACHE] = LL_LIMIT_CACHE, [NB_RV_LIMIT_RATE] = LL_LIMIT_RATE,
	};
	uint64_t sup;
	char more[64];

	if (ev->limit == NB_RV_LIMIT_NONE || (size_t)ev->limit >= sizeof(kinds) / sizeof(kinds[0]))
		return;
	if (!log_allow(srv, kinds[ev->limit], 1, WARN_INTERVAL_MS, &sup))
		return;
	more_text(sup, more, sizeof(more));
	switch (ev->limit) {
	case NB_RV_LIMIT_PEERS:
		nb_log_warn(LOG_RV, "registry full (%zu peers, --max-peers): refusing new ids with "
				    "503, here '%s'%s",
			    ev->limit_value, ev->id, more);
		break;
	case NB_RV_LIMIT_SESSIONS:
		nb_log_warn(LOG_RV, "session table full (%zu connections in progress, "
				    "--max-sessions): refusing connect with 503, here from '%s'%s",
			    ev->limit_value, ev->id, more);
		break;
	case NB_RV_LIMIT_CACHE:
		nb_log_warn(LOG_RV, "reply cache full (%zu replies): forgetting replies younger "
				    "than %d s, so a retransmitted request may be acted on twice%s",
			    ev->limit_value, NB_RENDEZVOUS_CACHE_MS / 1000, more);
		break;
	default:
		nb_log_warn(LOG_RV, "%s over %zu per second in all: answering 429%s",
			    ev->request == NB_CTRL_VERIFY ? "verify requests" : "list queries",
			    ev->limit_value, more);
		break;
	}
}

static void on_rv_event(void *arg, const struct nb_rendezvous_event *ev)
{
	struct nb_server *srv = arg;
	char a[NB_ADDR_STRLEN], b[NB_ADDR_STRLEN], more[64];
	uint64_t sup;

	nb_status_count_refusal(&srv->stats.refusals, ev); /* refusals by reason, for the status port */
	switch (ev->kind) {
	case NB_RV_EVENT_REGISTERED:
		nb_addr_format(&ev->addr, a, sizeof(a));
		if (ev->change == NB_REGISTRY_REFRESHED) {
			nb_log_debug(LOG_RV, "register %s from %s: refreshed", ev->id, a);
			return;
		}
		if (!log_allow(srv, LL_REGISTER, INFO_BURST, INFO_WINDOW_MS, &sup))
			return;
		more_text(sup, more, sizeof(more));
		if (ev->also && ev->entry != NULL) {
			nb_log_info(LOG_RV, "register %s: also %s (mapping %s, filtering %s)%s", ev->id, a,
				    word(nb_mapping_to_string(ev->entry->alt_mapping)),
				    word(nb_filtering_to_string(ev->entry->alt_filtering)), more);
			return;
		}
		if (ev->change == NB_REGISTRY_MOVED) {
			nb_log_info(LOG_RV, "register %s: moved from %s to %s%s", ev->id,
				    nb_addr_format(&ev->other_addr, b, sizeof(b)), a, more);
		} else if (ev->entry != NULL) {
			const struct nb_registry_peer *p = ev->entry;
			b[0] = '\0';
			if (p->upnp == NB_CTRL_UPNP_MAPPED)
				nb_addr_format(&p->upnp_external, b, sizeof(b));
			char kt[NB_KEY_TEXT_LEN + 1] = "?";
			if (ev->key != NULL)
				nb_key_to_text(ev->key, kt);
			nb_log_info(LOG_RV, "register %s (key %s) from %s: %s (mapping %s, filtering %s), %zu "
					    "local, upnp %s%s%s%s",
				    ev->id, kt, a,
				    word(nb_nat_type_to_string(nb_nat_type_of(p->mapping, p->filtering,
									      p->udp_blocked))),
				    word(nb_mapping_to_string(p->mapping)),
				    word(nb_filtering_to_string(p->filtering)), p->n_local,
				    p->upnp == NB_CTRL_UPNP_MAPPED ? "mapped"
				    : p->upnp == NB_CTRL_UPNP_FAILED ? "failed" : "none",
				    b[0] != '\0' ? " " : "", b, more);
		} else {
			nb_log_info(LOG_RV, "register %s from %s%s", ev->id, a, more);
		}
		return;
	case NB_RV_EVENT_BYE:
		if (!log_allow(srv, LL_EXPIRE, INFO_BURST, INFO_WINDOW_MS, &sup))
			return;
		nb_log_info(LOG_RV, "bye %s (%s): the holder left; the name is free%s", ev->id,
			    nb_addr_format(&ev->addr, a, sizeof(a)), more_text(sup, more, sizeof(more)));
		return;
	case NB_RV_EVENT_EXPIRED:
		if (!log_allow(srv, LL_EXPIRE, INFO_BURST, INFO_WINDOW_MS, &sup))
			return;
		nb_log_info(LOG_RV, "expire %s (%s): no register or keepalive for %u s%s", ev->id,
			    nb_addr_format(&ev->addr, a, sizeof(a)),
			    srv->cfg.keepalive_s * NB_RENDEZVOUS_EXPIRES_FACTOR,
			    more_text(sup, more, sizeof(more)));
		return;
	case NB_RV_EVENT_CONNECT: {
		char bday[96] = "";
		if (!log_allow(srv, LL_CONNECT, INFO_BURST, INFO_WINDOW_MS, &sup))
			return;
		if (ev->birthday.has)
			snprintf(bday, sizeof(bday), "; birthday %u sockets, %u probes at %u/s",
				 ev->birthday.sockets, ev->birthday.probes, ev->birthday.rate);
		/* The timing: each side's delay, and the round trips (0: not
		 * measured) it came from, or "fixed" (docs/protocol.md "Punch
		 * timing"). */
		nb_log_info(LOG_RV, "connect %s (%s) -> %s (%s): session %s, path %s, %s %s, %s %s: "
				    "%s; start %s +%u ms, %s +%u ms (%s; rtt %u/%u ms), deadline %u ms%s%s",
			    ev->id, nb_addr_format(&ev->addr, a, sizeof(a)), ev->peer,
			    nb_addr_format(&ev->other_addr, b, sizeof(b)), ev->session,
			    word(nb_path_to_string(ev->path)), ev->id, word(nb_role_to_string(ev->role_a)),
			    ev->peer, word(nb_role_to_string(ev->role_b)), ev->reason, ev->id, ev->delay_a,
			    ev->peer, ev->delay_b, ev->rtt_timed ? "from the round trips" : "fixed",
			    ev->rtt_a, ev->rtt_b, ev->ms, bday, more_text(sup, more, sizeof(more)));
		return;
	}
	case NB_RV_EVENT_PUSH_ACKED:
		nb_log_debug(LOG_RV, "plan for %s (session %s) acknowledged", ev->peer, ev->session);
		return;
	case NB_RV_EVENT_PUSH_FAILED:
		if (!log_allow(srv, LL_PUSH, INFO_BURST, INFO_WINDOW_MS, &sup))
			return;
		more_text(sup, more, sizeof(more));
		if (ev->code != 0)
			nb_log_info(LOG_RV, "plan for %s (session %s) refused with error %u%s", ev->peer,
				    ev->session, ev->code, more);
		else
			nb_log_info(LOG_RV, "plan for %s (session %s) not acknowledged after %d sends%s",
				    ev->peer, ev->session, NB_CTRL_MAX_TRIES, more);
		return;
	case NB_RV_EVENT_RESULT: {
		char bday[112] = "";
		if (!log_allow(srv, LL_RESULT, INFO_BURST, INFO_WINDOW_MS, &sup))
			return;
		if (ev->birthday.has) { /* only the fields the side reported */
			char f[4][24] = { "", "", "", "" };
			if (ev->birthday.sockets != 0)
				snprintf(f[0], sizeof(f[0]), " sockets %u", ev->birthday.sockets);
			if (ev->birthday.probes != 0)
				snprintf(f[1], sizeof(f[1]), " probes %u", ev->birthday.probes);
			if (ev->birthday.rate != 0)
				snprintf(f[2], sizeof(f[2]), " rate %u/s", ev->birthday.rate);
			if (ev->birthday.port != 0)
				snprintf(f[3], sizeof(f[3]), " port %u", (unsigned)ev->birthday.port);
			snprintf(bday, sizeof(bday), "; birthday%s%s%s%s", f[0], f[1], f[2], f[3]);
		}
		nb_log_info(LOG_RV, "result %s from %s (peer %s): %s, path %s, %u ms%s%s%s%s", ev->session,
			    ev->id, ev->peer,
			    ev->outcome == NB_CTRL_OUTCOME_CONNECTED ? "connected" : "failed",
			    word(nb_path_to_string(ev->path)), ev->ms, ev->reason[0] != '\0' ? ": " : "",
			    ev->reason, bday, more_text(sup, more, sizeof(more)));
		return;
	}
	case NB_RV_EVENT_REFUSED:
		nb_addr_format(&ev->addr, a, sizeof(a));
		if (ev->code == NB_CTRL_ERR_BAD_REQUEST && ev->request == 0) {
			nb_log_debug(LOG_RV, "undecodable datagram from %s: %s", a, ev->reason);
			return;
		}
		if (!log_allow(srv, LL_REFUSED, INFO_BURST, INFO_WINDOW_MS, &sup))
			return;
		nb_log_info(LOG_RV, "refused %s%s%s%s from %s: %u %s%s",
			    word(nb_ctrl_type_to_string(ev->request)), ev->id[0] != '\0' ? " '" : "",
			    ev->id, ev->id[0] != '\0' ? "'" : "", a, ev->code, ev->reason,
			    more_text(sup, more, sizeof(more)));
		return;
	case NB_RV_EVENT_LIMIT:
		log_limit_hit(srv, ev);
		return;
	}
}

static void rv_timer_arm(struct nb_server *srv);

/* The bytes to send for d: sealed in the recipient's session when the
 * engine says so. NULL when it cannot be sealed (no session for that key:
 * the peer rekeys or registers again; counted by the link). */
static const uint8_t *rv_wire(struct nb_server *srv, const struct nb_rendezvous_dgram *d,
			      size_t *ret_len)
{
	ssize_t n;

	if (!d->sealed) {
		*ret_len = d->len;
		return d->data;
	}
	n = nb_plink_seal(srv->pl, d->key, &d->to, d->data, d->len, srv->sealbuf, sizeof(srv->sealbuf),
			  uv_now(srv->loop));
	if (n <= 0) {
		if (nb_log_get_level() >= NB_LOG_DEBUG) {
			char a[NB_ADDR_STRLEN];
			nb_log_debug(LOG_RV, "not sent to %s: %s", nb_addr_format(&d->to, a, sizeof(a)),
				     n == NB_PLINK_E_NOKEY ? "no session for its key" : nb_seal_strerror((int)n));
		}
		return NULL;
	}
	*ret_len = (size_t)n;
	return srv->sealbuf;
}

static void rv_send(struct nb_server *srv, const struct nb_rendezvous_dgram *d)
{
	struct tcp_conn *c = d->sealed ? conn_of_control(srv, &d->to) : NULL;
	struct udp_sock *p = c == NULL ? tx_sock(srv, &d->to, false) : NULL;
	const uint8_t *b;
	size_t len;

	if ((c != NULL || p != NULL) && (b = rv_wire(srv, d, &len)) != NULL) {
		if (c != NULL)
			conn_send_dgram(c, b, len); /* a host that came over TCP */
		else
			nb_udp_queue(&p->udp, b, len, &d->to);
	}
}

static void on_rv_timer(uv_timer_t *t)
{
	struct nb_server *srv = t->data;
	uint64_t now = uv_now(srv->loop);
	int more = 0;

	srv->rv_timer_due = UINT64_MAX;
	nb_plink_expire(srv->pl, now, 1024);
	for (unsigned round = 0; round < POLL_ROUNDS; round++) {
		size_t n = 0;
		more = nb_rendezvous_poll(srv->rv, now, srv->rv_poll, POLL_BATCH, &n);
		for (size_t i = 0; i < n; i++)
			rv_send(srv, &srv->rv_poll[i]);
		if (more <= 0)
			break;
	}
	flush_primaries(srv);
	if (more > 0) {
		/* More is due than one callback does: come back next iteration. */
		uv_timer_start(&srv->rv_timer, on_rv_timer, 0, 0);
		srv->rv_timer_due = now;
		return;
	}
	rv_timer_arm(srv);
}

/* Arm the timer for the engine's next deadline (or stop it). */
static void rv_timer_arm(struct nb_server *srv)
{
	uint64_t next = nb_rendezvous_next_deadline(srv->rv), now = uv_now(srv->loop);
	uint64_t pd = nb_plink_next_deadline(srv->pl);

	if (pd < next)
		next = pd;
	if (srv->closing || !srv->rv_timer_open || next == srv->rv_timer_due)
		return;
	srv->rv_timer_due = next;
	if (next == UINT64_MAX) {
		uv_timer_stop(&srv->rv_timer);
		return;
	}
	uv_timer_start(&srv->rv_timer, on_rv_timer, next > now ? next - now : 0, 0);
}

/* Fill the random pool. 0, or a negative errno. */
static int rnd_refill(struct nb_server *srv)
{
	size_t got = 0;

	while (got < RND_POOL) {
		ssize_t n = getrandom(srv->rnd + got, RND_POOL - got, GRND_NONBLOCK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	srv->rnd_pos = 0;
	return 0;
}

/* A control message from a UDP socket s, or over the TCP connection conn
 * (then s is NULL and the replies go back over it, framed). */
/* Wire bytes b of d, sent as rv_send() would (TCP control connection first). */
static void rv_send_raw(struct nb_server *srv, const struct nb_rendezvous_dgram *d, const uint8_t *b,
			size_t blen)
{
	struct tcp_conn *c = d->sealed ? conn_of_control(srv, &d->to) : NULL;
	struct udp_sock *tx;

	if (c != NULL) {
		conn_send_dgram(c, b, blen);
		return;
	}
	tx = tx_sock(srv, &d->to, d->from_alt_port);
	if (tx != NULL)
		nb_udp_send(&tx->udp, b, blen, &d->to);
}

/* A TCP probe ended: the probe (d[0]) or the 504 (d[1]) to the requester,
 * in its session. */
static void on_tcp_probe(void *ctx, const void *payload, size_t len, bool ok, const char *why)
{
	struct nb_server *srv = ctx;
	const struct nb_rendezvous_dgram *d = payload;
	char a[NB_ADDR_STRLEN];

	if (len != 2 * sizeof(*d) || srv->closing)
		return;
	if (!ok)
		nb_log_info(LOG_RV, "TCP probe for %s failed: %s", nb_addr_format(&d[0].to, a, sizeof(a)),
			    why != NULL ? why : "?");
	rv_send(srv, &d[ok ? 0 : 1]);
	flush_primaries(srv);
}

static void tcp_probe(struct nb_server *srv, const struct nb_rendezvous_out *out)
{
	char a[NB_ADDR_STRLEN];
	int rc = -ENOBUFS;

	if (srv->probes != NULL)
		rc = nb_tcpprobe_start(srv->probes, &out->tcp_to, out->greeting, out->d, 2 * sizeof(out->d[0]),
				       on_tcp_probe, srv);
	if (rc == 0)
		return;
	nb_log_warn(LOG_RV, "TCP probe of %s not started: %s", nb_addr_format(&out->tcp_to, a, sizeof(a)),
		    rc == -ENOBUFS ? "too many in flight" : uv_strerror(rc));
	rv_send(srv, &out->d[1]);
}

static void on_control(struct nb_server *srv, struct udp_sock *s, struct tcp_conn *conn,
		       const uint8_t *data, size_t len, const struct nb_addr *from, const uint8_t *key,
		       uint32_t rtt)
{
	struct nb_rendezvous_out *out = &srv->rv_out;
	int rc;

	if (RND_POOL - srv->rnd_pos < NB_RENDEZVOUS_RANDOM_LEN && (rc = rnd_refill(srv)) < 0) {
		uint64_t sup;
		if (log_allow(srv, LL_RANDOM, 1, WARN_INTERVAL_MS, &sup))
			nb_log_error(LOG_RV, "getrandom: %s: control message dropped (%llu more since "
					     "the last line)",
				     strerror(-rc), (unsigned long long)sup);
		return;
	}
	nb_rendezvous_set_context(srv->rv, (uint64_t)time(NULL), conn != NULL);
	nb_rendezvous_set_rtt(srv->rv, rtt); /* this message's only */
	rc = nb_rendezvous_handle_keyed(srv->rv, data, len, from, key, uv_now(srv->loop),
					srv->rnd + srv->rnd_pos, RND_POOL - srv->rnd_pos, out);
	if (rc < 0)
		return;
	if (out->rnd_used) {
		/* Used bytes never serve twice. */
		memset(srv->rnd + srv->rnd_pos, 0, NB_RENDEZVOUS_RANDOM_LEN);
		srv->rnd_pos += NB_RENDEZVOUS_RANDOM_LEN;
	}
	if (out->tcp_probe) {
		tcp_probe(srv, out);
		rv_timer_arm(srv);
		return;
	}
	/* Replies join the receive batch's sendmmsg. A UPnP probe leaves from
	 * the primary IP's alternate port, a source the peer has not sent to;
	 * else from the alternate IP; with one socket only, from the primary.
	 * Each from a socket of its destination's family (a plan pushed to a
	 * peer of the other family leaves from that family's primary). */
	for (size_t i = 0; i < out->n; i++) {
		const struct nb_rendezvous_dgram *d = &out->d[i];
		struct udp_sock *tx;
		const uint8_t *b;
		size_t blen;
		if ((b = rv_wire(srv, d, &blen)) == NULL)
			continue;
		if (conn != NULL && i == 0 && !d->from_alt_port) {
			conn_send_dgram(conn, b, blen); /* the reply, over TCP */
			continue;
		}
		if (conn != NULL || s == NULL || (i > 0 && conn_of_control(srv, &d->to) != NULL)) {
			rv_send_raw(srv, d, b, blen); /* a push (perhaps over TCP), or a probe */
			continue;
		}
		if ((tx = tx_sock(srv, &d->to, d->from_alt_port)) == NULL)
			continue;
		if (tx == s)
			nb_udp_queue(&s->udp, b, blen, &d->to);
		else
			nb_udp_send(&tx->udp, b, blen, &d->to);
	}
	rv_timer_arm(srv);
}

/* A handshake initiation or a sealed control message, on the primary UDP
 * socket (docs/protocol.md "Sealed control channel"). */
static void on_sealed(struct nb_server *srv, struct udp_sock *s, struct tcp_conn *conn,
		      const uint8_t *data, size_t len, const struct nb_addr *from)
{
	uint64_t now = uv_now(srv->loop);
	const uint8_t *key = NULL;
	uint32_t rtt;
	ssize_t n;

	if (data[0] == NB_NOISE_TYPE_INIT) {
		n = nb_plink_handshake(srv->pl, data, len, from, now, srv->sealbuf, sizeof(srv->sealbuf));
		if (n > 0) {
			rtt_sent(srv, srv->sealbuf, (size_t)n, now);
			if (conn != NULL)
				conn_send_dgram(conn, srv->sealbuf, (size_t)n);
			else
				nb_udp_queue(&s->udp, srv->sealbuf, (size_t)n, from);
			rv_timer_arm(srv);
		} else {
			uint64_t sup;
			if (n == NB_PLINK_E_FULL && log_allow(srv, LL_PLINK_FULL, 1, WARN_INTERVAL_MS, &sup))
				nb_log_warn(LOG_RV, "sealed sessions: all %zu in use and confirmed "
						    "(--max-links): handshake refused%s",
					    srv->cfg.max_links, more_text(sup, (char[64]){ 0 }, 64));
			else if (nb_log_get_level() >= NB_LOG_DEBUG) {
				char a[NB_ADDR_STRLEN];
				nb_log_debug(LOG_RV, "handshake from %s refused: %s",
					     nb_addr_format(from, a, sizeof(a)), nb_noise_strerror((int)n));
			}
		}
		return;
	}
	n = nb_plink_open(srv->pl, data, len, from, now, srv->plainbuf, sizeof(srv->plainbuf), &key);
	if (n == NB_PLINK_E_UNKNOWN) {
		/* Tell the peer its session is gone (we restarted, or it
		 * expired) so it makes a new one now, not after a timeout.
		 * 5 bytes for at least 29: no amplification. */
		uint8_t hint[NB_PLINK_UNKNOWN_LEN];
		if (nb_plink_unknown_hint(data, len, hint) == NB_PLINK_UNKNOWN_LEN) {
			if (conn != NULL)
				conn_send_dgram(conn, hint, sizeof(hint));
			else
				nb_udp_queue(&s->udp, hint, sizeof(hint), from);
		}
		return;
	}
	if (n < 0)
		return;
	/* opened: the session is confirmed (an empty frame confirms only) */
	rtt = rtt_frame(srv, data, len, now, n > 0);
	if (n == 0 || srv->plainbuf[0] != NB_CTRL_FIRST_BYTE)
		return;
	if (conn != NULL && !conn->ctrl) {
		/* A sealed session runs here: the host's way in, kept open. */
		conn->ctrl = true;
		srv->stats.tcp_control++;
	}
	on_control(srv, s, conn, srv->plainbuf, (size_t)n, from, key, rtt);
}

/* ---- Per-source rate limit ------------------------------------------------ */

/* The limiter's budgets (docs/broker.md "Per-source rate limit"): one for
 * everything a source sends over UDP (where sources can be forged and
 * answers amplified), one for its TCP requests (a handshake proves the
 * source; TCP has its own caps too). */
enum { RL_UDP = 0, RL_TCP = 1 };

/* True if a request from `from` may be handled; else it is counted in
 * *counter and in the status port's refusals, and logged at most once per
 * WARN_INTERVAL_MS with how many were dropped since the last line. The
 * caller drops it without an answer. */
static bool rate_ok(struct nb_server *srv, const struct nb_addr *from, unsigned budget,
		    uint64_t *counter)
{
	const struct nb_ratelimit_stats *st;
	enum nb_ratelimit_verdict v;
	char a[NB_ADDR_STRLEN], more[64];
	uint64_t sup;

	if (srv->rl == NULL)
		return true;
	v = nb_ratelimit_check(srv->rl, from, budget, uv_now(srv->loop));
	st = nb_ratelimit_get_stats(srv->rl);
	if (st->recycled_active != srv->rl_active_seen) {
		srv->rl_active_seen = st->recycled_active;
		if (log_allow(srv, LL_SRC_TABLE, 1, WARN_INTERVAL_MS, &sup))
			nb_log_warn(LOG, "rate limit: source table full (%zu sources, --rate-table): "
					 "forgot a source that was still being limited, which starts "
					 "afresh (%llu times in all)",
				    st->entries, (unsigned long long)st->recycled_active);
	}
	if (v == NB_RATELIMIT_ALLOW)
		return true;
	(*counter)++;
	srv->stats.refusals.n[NB_STATUS_REFUSED_RATE_LIMITED]++;
	if (!log_allow(srv, LL_SRC_RATE, 1, WARN_INTERVAL_MS, &sup))
		return false;
	nb_addr_format_ip(from, a, sizeof(a));
	more[0] = '\0';
	if (sup > 0)
		snprintf(more, sizeof(more), " (%llu more dropped since the last line)",
			 (unsigned long long)sup);
	if (srv->cfg.rate_penalty_s == 0)
		nb_log_warn(LOG, "rate limit: %s%s over %u requests/s (burst %u, --rate-limit): "
				 "dropping its requests without an answer%s",
			    a, from->family == NB_AF_INET6 ? " (its /64)" : "", srv->cfg.rate_limit,
			    srv->cfg.rate_burst, more);
	else
		nb_log_warn(LOG, "rate limit: %s%s over %u requests/s (burst %u, --rate-limit): "
				 "%s%s",
			    a, from->family == NB_AF_INET6 ? " (its /64)" : "", srv->cfg.rate_limit,
			    srv->cfg.rate_burst,
			    v == NB_RATELIMIT_DENY_RATE ? "dropping its requests, penalty started "
							  "(--rate-penalty)"
							: "dropping its requests: in its penalty",
			    more);
	return false;
}

/* The limiter, when configured. 0, -EINVAL or -ENOMEM (logged). */
static int ratelimit_open(struct nb_server *srv)
{
	const struct nb_server_config *cfg = &srv->cfg;
	struct nb_ratelimit_config rc;
	ssize_t n;
	int err;

	if (cfg->rate_limit == 0)
		return 0;
	nb_ratelimit_config_default(&rc);
	rc.rate = cfg->rate_limit;
	rc.burst = cfg->rate_burst;
	rc.entries = cfg->rate_table;
	rc.penalty_s = cfg->rate_penalty_s;
	/* Blocks only before the kernel's pool is first initialised at boot. */
	n = getrandom(rc.hash_key, sizeof(rc.hash_key), 0);
	if (n != (ssize_t)sizeof(rc.hash_key)) {
		err = n < 0 ? -errno : -EIO;
		nb_log_error(LOG, "getrandom: %s", strerror(-err));
		return err;
	}
	err = nb_ratelimit_new(&rc, &srv->rl);
	memset(rc.hash_key, 0, sizeof(rc.hash_key));
	if (err < 0)
		nb_log_error(LOG, "%s", err == -ENOMEM ? "out of memory for the rate limit table"
							: "invalid rate limit configuration");
	return err;
}

/* ---- UDP ---------------------------------------------------------------- */

/* A STUN message of a TURN method (RFC 8656 §18): Allocate, Refresh, Send,
 * CreatePermission, ChannelBind. Binding and the rest go to broker/binding. */
static bool turn_method(const uint8_t *data, size_t len)
{
	uint16_t t, m;

	if (len < NB_STUN_HDR_LEN || data[0] > 0x03)
		return false;
	t = (uint16_t)((data[0] << 8) | data[1]);
	m = (uint16_t)(((t & 0x3E00) >> 2) | ((t & 0x00E0) >> 1) | (t & 0x000F));
	return m == NB_TURN_METHOD_ALLOCATE || m == NB_TURN_METHOD_REFRESH ||
	       m == NB_TURN_METHOD_SEND || m == NB_TURN_METHOD_CREATE_PERMISSION ||
	       m == NB_TURN_METHOD_CHANNEL_BIND;
}

static void on_udp(struct nb_udp *u, const uint8_t *data, size_t len, const struct nb_addr *from,
		   void *arg)
{
	struct udp_sock *s = arg;
	struct nb_server *srv = s->srv;
	struct nb_binding_request req = {
		.data = data, .len = len, .from = *from,
		.ip_idx = s->ip, .port_idx = s->port, .transport = NB_BINDING_UDP,
	};
	bool primary = is_primary(s);
	struct nb_binding_reply rep;
	uint8_t out[NB_BINDING_MAX_RESPONSE];
	struct udp_sock *tx;
	int rc;

	/* docs/protocol.md: '{' is a control message; the primary socket
	 * (of each family) alone carries them. Everything else is the STUN handler's to take
	 * or drop. One compare on the STUN path. Both draw on the source's
	 * UDP rate-limit budget before any other work. */
	if (len > 0 && data[0] == NB_CTRL_FIRST_BYTE && primary) {
		/* 0x7B is also ChannelData of channel 0x7Bxx (RFC 5766's range,
		 * which coturn's clients use): an allocation on this 5-tuple
		 * with that channel bound takes it; else it is a control
		 * message, unsealed, refused (401). */
		struct nb_turn_client tc = {
			.addr = *from, .transport = NB_TURN_CLIENT_UDP,
			.sock = turn_sock_index(s->fam, 0, 0),
		};
		if (srv->turn != NULL && turn_from_client(srv, &tc, data, len) == 0)
			return;
		if (rate_ok(srv, from, RL_UDP, &srv->stats.rate_limited_control))
			on_control(srv, s, NULL, data, len, from, NULL, 0);
		return;
	}
	if (srv->turn != NULL && len >= 4 && (nb_turn_is_chandata(data, len) || turn_method(data, len))) {
		srv->in_batch = true; /* until on_udp_batch_end() */
		struct nb_turn_client tc = {
			.addr = *from, .transport = NB_TURN_CLIENT_UDP,
			.sock = turn_sock_index(s->fam, s->ip, s->port),
		};
		/* ChannelData skips the per-source limit: without an
		 * allocation it is dropped unanswered, and with one it is the
		 * relayed traffic the bandwidth cap governs. */
		if (data[0] >= 0x40 || rate_ok(srv, from, RL_UDP, &srv->stats.rate_limited_udp))
			turn_from_client(srv, &tc, data, len);
		return;
	}
	if (len >= KEYQ_MIN_LEN && data[0] == KEYQ_TYPE && primary) {
		/* "What is your key?" (a peer's first use; docs/protocol.md
		 * "Broker key"): 33 bytes back for at least 64. */
		if (rate_ok(srv, from, RL_UDP, &srv->stats.rate_limited_control)) {
			uint8_t r[1 + NB_KEY_LEN];
			r[0] = KEYR_TYPE;
			nb_plink_public_key(srv->pl, r + 1);
			nb_udp_queue(&s->udp, r, sizeof(r), from);
		}
		return;
	}
	if (len > 0 && (data[0] == NB_NOISE_TYPE_INIT || data[0] == NB_SEAL_TYPE) && primary) {
		if (rate_ok(srv, from, RL_UDP, &srv->stats.rate_limited_control))
			on_sealed(srv, s, NULL, data, len, from);
		return;
	}
	srv->stats.udp_rx++;
	if (!rate_ok(srv, from, RL_UDP, &srv->stats.rate_limited_udp))
		return;
	rc = nb_binding_handle(&srv->bind[s->fam], &req, out, sizeof(out), &rep);
	if (rc < 0) {
		srv->stats.drops[nb_binding_drop_index(rc)]++;
		if (nb_log_get_level() >= NB_LOG_DEBUG) {
			char a[NB_ADDR_STRLEN];
			nb_log_debug(LOG, "udp %zu bytes from %s dropped: %s", len,
				     nb_addr_format(from, a, sizeof(a)), nb_binding_drop_name(rc));
		}
		return;
	}
	if (rep.error_code != 0)
		srv->stats.udp_errors_sent++;
	else
		srv->stats.udp_answered++;
	tx = &srv->udp[s->fam][rep.ip_idx][rep.port_idx]; /* its own family's set */
	if (!tx->open)
		return;
	/* Answers from the receiving socket leave in the batch's sendmmsg;
	 * CHANGE-REQUEST answers from another socket go at once. */
	if (tx == s)
		nb_udp_queue(u, out, rep.len, &rep.to);
	else
		nb_udp_send(&tx->udp, out, rep.len, &rep.to);
}

/* ---- TCP connections ---------------------------------------------------- */

static void on_conn_handle_closed(uv_handle_t *h)
{
	struct tcp_conn *c = h->data;
	struct nb_server *srv = c->srv;

	if (--c->open_handles > 0)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	srv->n_conns--;
	free(c);
	if (srv->closing) {
		server_pending_done(srv);
		return;
	}
	/* A slot is free: accept what waits on a paused listener. */
	for (unsigned f = 0; f < NB_FAM_COUNT; f++)
		for (unsigned i = 0; i < 2; i++)
			for (unsigned p = 0; p < 2; p++) {
				struct tcp_listener *l = &srv->tcp[f][i][p];
				if (l->open && l->paused && srv->n_conns < srv->cfg.max_tcp) {
					l->paused = false;
					listener_accept(l);
				}
			}
}

static void conn_close(struct tcp_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->ctrl)
		c->srv->stats.tcp_control--;
	if (c->turn_on) {
		struct nb_turn_client tc = {
			.addr = c->peer, .transport = NB_TURN_CLIENT_TCP,
			.sock = turn_sock_index(c->fam, c->ip, c->port), .conn = c->id,
		};
		struct nb_turn_out out;
		c->srv->stats.tcp_turn--;
		if (c->srv->turn != NULL &&
		    nb_turn_client_closed(c->srv->turn, &tc, uv_now(c->srv->loop), &out) == 0)
			turn_do(c->srv, &out);
	}
	uv_read_stop((uv_stream_t *)&c->handle);
	uv_close((uv_handle_t *)&c->handle, on_conn_handle_closed);
	if (c->open_handles == 2)
		uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* Close c at the --tcp-max-bytes cap, counted and logged (rate-limited). */
static void conn_close_bytes(struct tcp_conn *c)
{
	struct nb_server *srv = c->srv;
	char a[NB_ADDR_STRLEN], more[64];
	uint64_t sup;

	srv->stats.tcp_closed_bytes++;
	if (log_allow(srv, LL_TCP_BYTES, 1, WARN_INTERVAL_MS, &sup))
		nb_log_warn(LOG, "tcp: closing the connection from %s at its byte cap (%llu bytes, "
				 "--tcp-max-bytes)%s",
			    nb_addr_format(&c->peer, a, sizeof(a)),
			    (unsigned long long)srv->cfg.tcp_max_bytes, more_text(sup, more, sizeof(more)));
	conn_close(c);
}

static void on_conn_idle(uv_timer_t *t)
{
	struct tcp_conn *c = t->data;

	c->srv->stats.tcp_closed_idle++;
	nb_log_debug(LOG, "tcp: closing an idle connection");
	conn_close(c);
}

static void on_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct tcp_conn *c = h->data;
	size_t room = sizeof(c->rbuf) - c->have;
	uint64_t allowance = c->srv->cfg.tcp_max_bytes - c->total;

	(void)suggested;
	/* Never read past the per-connection byte cap: a zero-length buffer
	 * makes libuv report UV_ENOBUFS, and the connection is closed. A
	 * connection that carries a host's control session or relayed
	 * traffic has no byte cap. */
	if (!c->ctrl && !c->turn_on && allowance < room)
		room = (size_t)allowance;
	*buf = uv_buf_init((char *)c->rbuf + c->have, (unsigned)room);
}

static void on_conn_write(uv_write_t *w, int status)
{
	struct conn_write *cw = (struct conn_write *)w;
	struct tcp_conn *c = cw->c;

	c->wq_bytes -= cw->len;
	free(cw);
	if (status < 0 && !c->closing)
		conn_close(c);
}

/* Send one frame: as much as the socket takes at once, the rest in a
 * uv_write of its own, TCP_WQ_MAX bytes queued at most. Beyond that a
 * droppable frame (relayed data: UDP semantics) is dropped whole; any
 * other closes the connection (its client does not read). */
static void conn_send(struct tcp_conn *c, const uint8_t *data, size_t len, bool droppable)
{
	uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
	struct conn_write *cw;
	size_t off = 0;

	if (c->closing)
		return;
	if (c->wq_bytes == 0) {
		int n = uv_try_write((uv_stream_t *)&c->handle, &b, 1);
		if (n == UV_EAGAIN)
			n = 0;
		if (n < 0) {
			conn_close(c);
			return;
		}
		off = (size_t)n;
		if (off == len)
			return;
	}
	if (c->wq_bytes + (len - off) > TCP_WQ_MAX) {
		if (droppable && off == 0) {
			c->srv->stats.tcp_write_dropped++;
			return;
		}
		conn_close(c);
		return;
	}
	cw = malloc(sizeof(*cw) + (len - off));
	if (cw == NULL) {
		conn_close(c);
		return;
	}
	cw->c = c;
	cw->len = len - off;
	memcpy(cw->data, data + off, cw->len);
	b = uv_buf_init((char *)cw->data, (unsigned)cw->len);
	if (uv_write(&cw->req, (uv_stream_t *)&c->handle, &b, 1, on_conn_write) != 0) {
		free(cw);
		conn_close(c);
		return;
	}
	c->wq_bytes += cw->len;
}

/* A natbroker datagram over TCP: behind its 0xDF header. */
static void conn_send_dgram(struct tcp_conn *c, const uint8_t *data, size_t len)
{
	ssize_t n = nb_tcpf_encode(c->srv->framebuf, sizeof(c->srv->framebuf), data, len);

	if (n > 0)
		conn_send(c, c->srv->framebuf, (size_t)n, false);
}

/* The TCP connection that carries the sealed control session of the host at
 * `to` (its source address), or NULL. */
static struct tcp_conn *conn_of_control(struct nb_server *srv, const struct nb_addr *to)
{
	if (srv->stats.tcp_control == 0)
		return NULL;
	for (struct tcp_conn *c = srv->conns; c != NULL; c = c->next)
		if (c->ctrl && !c->closing && nb_addr_equal(&c->peer, to))
			return c;
	return NULL;
}

static struct tcp_conn *conn_by_id(struct nb_server *srv, uint64_t id)
{
	for (struct tcp_conn *c = srv->conns; c != NULL; c = c->next)
		if (c->id == id)
			return c->closing ? NULL : c;
	return NULL;
}

/* A natbroker datagram that came over TCP (docs/protocol.md "Over TCP"):
 * what the primary UDP socket would do with it, the answers framed back. */
static void conn_datagram(struct tcp_conn *c, const uint8_t *data, size_t len)
{
	struct nb_server *srv = c->srv;

	if (data[0] == NB_CTRL_FIRST_BYTE) {
		on_control(srv, NULL, c, data, len, &c->peer, NULL, 0); /* unsealed: 401 */
	} else if (len >= KEYQ_MIN_LEN && data[0] == KEYQ_TYPE) {
		uint8_t r[1 + NB_KEY_LEN];
		r[0] = KEYR_TYPE;
		nb_plink_public_key(srv->pl, r + 1);
		conn_send_dgram(c, r, sizeof(r));
	} else if (data[0] == NB_NOISE_TYPE_INIT || data[0] == NB_SEAL_TYPE) {
		on_sealed(srv, NULL, c, data, len, &c->peer);
	}
}

/* Handle every whole frame in rbuf. */
static void conn_process(struct tcp_conn *c)
{
	struct nb_server *srv = c->srv;

	while (!c->closing) {
		enum nb_tcpf_kind kind = NB_TCPF_STUN;
		ssize_t fl = nb_tcpf_frame_len(c->rbuf, c->have, &kind);
		struct nb_binding_request req;
		struct nb_binding_reply rep;
		uint8_t out[NB_BINDING_MAX_RESPONSE];
		int rc;

		if (fl == 0)
			break; /* fewer than 4 bytes so far */
		if (fl < 0 || (size_t)fl > sizeof(c->rbuf) ||
		    (kind == NB_TCPF_STUN && fl < NB_STUN_HDR_LEN)) {
			/* Not a frame we know, or longer than any we accept:
			 * there is no way to find the next one. */
			srv->stats.tcp_closed_garbage++;
			conn_close(c);
			return;
		}
		if ((size_t)fl > c->have)
			break;
		if (kind != NB_TCPF_CHANDATA) {
			srv->stats.tcp_requests++;
			if (!rate_ok(srv, &c->peer, RL_TCP, &srv->stats.rate_limited_tcp)) {
				/* No answer; the connection goes too (it holds a slot). */
				conn_close(c);
				return;
			}
		}
		if (kind == NB_TCPF_DATAGRAM) {
			conn_datagram(c, c->rbuf + NB_TCPF_HDR, (size_t)fl - NB_TCPF_HDR);
		} else if (srv->turn != NULL &&
			   (kind == NB_TCPF_CHANDATA || turn_method(c->rbuf, (size_t)fl))) {
			struct nb_turn_client tc = {
				.addr = c->peer, .transport = NB_TURN_CLIENT_TCP,
				.sock = turn_sock_index(c->fam, c->ip, c->port), .conn = c->id,
			};
			turn_from_client(srv, &tc, c->rbuf, (size_t)fl);
		} else if (kind == NB_TCPF_STUN) {
			req = (struct nb_binding_request){
				.data = c->rbuf, .len = (size_t)fl, .from = c->peer,
				.ip_idx = c->ip, .port_idx = c->port, .transport = NB_BINDING_TCP,
			};
			rc = nb_binding_handle(&srv->bind[c->fam], &req, out, sizeof(out), &rep);
			if (rc < 0)
				srv->stats.drops[nb_binding_drop_index(rc)]++;
			else
				conn_send(c, out, rep.len, false);
		}
		if (c->closing)
			return;
		memmove(c->rbuf, c->rbuf + fl, c->have - (size_t)fl);
		c->have -= (size_t)fl;
		/* The idle clock restarts with each whole frame, never with a
		 * byte: a trickle does not hold a slot. */
		uv_timer_start(&c->timer, on_conn_idle,
			       c->ctrl || c->turn_on ? TCP_LONG_IDLE_MS : srv->cfg.tcp_idle_timeout_ms, 0);
	}
	if (!c->closing && !c->ctrl && !c->turn_on && c->total >= srv->cfg.tcp_max_bytes)
		conn_close_bytes(c);
}

static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct tcp_conn *c = s->data;

	(void)buf;
	if (nread < 0) {
		/* EOF, reset, or UV_ENOBUFS: the byte cap was reached. */
		if (nread == UV_ENOBUFS)
			conn_close_bytes(c);
		else
			conn_close(c);
		return;
	}
	c->have += (size_t)nread;
	c->total += (uint64_t)nread;
	conn_process(c);
}

static void listener_accept(struct tcp_listener *l)
{
	struct nb_server *srv = l->srv;
	struct tcp_conn *c = calloc(1, sizeof(*c));
	struct sockaddr_storage ss;
	int sslen = (int)sizeof(ss);
	int rc;

	if (c == NULL) {
		nb_log_error(LOG, "tcp: out of memory accepting a connection");
		return;
	}
	c->srv = srv;
	c->id = ++srv->conn_ids;
	c->fam = l->fam;
	c->ip = l->ip;
	c->port = l->port;
	c->handle.data = c;
	c->timer.data = c;
	c->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = c;
	srv->conns = c;
	srv->n_conns++;
	rc = uv_tcp_init(srv->loop, &c->handle);
	if (rc != 0) {
		/* Nothing to close: unlink and free at once. */
		srv->conns = c->next;
		if (c->next != NULL)
			c->next->prev = NULL;
		srv->n_conns--;
		free(c);
		return;
	}
	c->open_handles = 1;
	rc = uv_accept((uv_stream_t *)&l->handle, (uv_stream_t *)&c->handle);
	if (rc == 0)
		rc = uv_tcp_getpeername(&c->handle, (struct sockaddr *)&ss, &sslen);
	if (rc == 0)
		rc = nb_addr_from_sockaddr((const struct sockaddr *)&ss, &c->peer) == 0 ? 0 : UV_EINVAL;
	if (rc == 0)
		rc = uv_timer_init(srv->loop, &c->timer);
	if (rc != 0) {
		conn_close(c);
		return;
	}
	c->open_handles = 2;
	uv_tcp_nodelay(&c->handle, 1);
	srv->stats.tcp_accepted++;
	uv_timer_start(&c->timer, on_conn_idle, srv->cfg.tcp_idle_timeout_ms, 0);
	if (uv_read_start((uv_stream_t *)&c->handle, on_conn_alloc, on_conn_read) != 0)
		conn_close(c);
}

static void on_tcp_connection(uv_stream_t *server, int status)
{
	struct tcp_listener *l = server->data;
	struct nb_server *srv = l->srv;

	if (status < 0) {
		uint64_t now = uv_now(srv->loop);
		if (srv->last_accept_warn_ms == 0 || now - srv->last_accept_warn_ms >= WARN_INTERVAL_MS) {
			srv->last_accept_warn_ms = now;
			nb_log_warn(LOG, "tcp: accept failed: %s", uv_strerror(status));
		}
		return;
	}
	if (srv->n_conns >= srv->cfg.max_tcp) {
		/* Not accepting makes libuv stop polling this listener; the
		 * kernel backlog holds the rest until a slot frees. */
		uint64_t now = uv_now(srv->loop);

		l->paused = true;
		srv->stats.tcp_refused_full++;
		if (srv->last_full_warn_ms == 0 || now - srv->last_full_warn_ms >= WARN_INTERVAL_MS) {
			nb_log_warn(LOG, "tcp: connection limit (%u) reached (--max-tcp): not accepting "
					 "until one closes (%llu times since the last warning)",
				    srv->cfg.max_tcp,
				    (unsigned long long)(srv->stats.tcp_refused_full - srv->full_waits_logged));
			srv->last_full_warn_ms = now;
			srv->full_waits_logged = srv->stats.tcp_refused_full;
		}
		return;
	}
	listener_accept(l);
}

/* ---- TURN relay ----------------------------------------------------------- */

static struct relay_sock **relay_slot(struct nb_server *srv, uint32_t alloc)
{
	struct relay_sock **pp = &srv->relay[(alloc * 2654435761u) % RELAY_BUCKETS];

	while (*pp != NULL && (*pp)->alloc != alloc)
		pp = &(*pp)->next;
	return pp;
}

static void on_relay_closed(uv_handle_t *h)
{
	struct relay_sock *r = (struct relay_sock *)h;
	struct nb_server *srv = r->srv;
	bool counted = r->counted;

	free(r);
	/* Only a close nb_server_close() counted: one begun before (an
	 * allocation deleted just before shutdown) must not end another's. */
	if (counted)
		server_pending_done(srv);
}

static void on_relay_failed_closed(uv_handle_t *h)
{
	free(h); /* the handle is the struct's first member */
}

static void relay_close(struct nb_server *srv, uint32_t alloc)
{
	struct relay_sock **pp = relay_slot(srv, alloc), *r = *pp;

	if (r == NULL)
		return;
	*pp = r->next;
	srv->stats.relay_sockets--;
	uv_close((uv_handle_t *)&r->h, on_relay_closed);
}

static void on_relay_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct relay_sock *r = (struct relay_sock *)h;
	struct nb_server *srv = r->srv;

	(void)suggested;
	if (srv->relay_rbuf_busy) {
		*buf = uv_buf_init(NULL, 0); /* libuv then reports UV_ENOBUFS: skipped */
		return;
	}
	srv->relay_rbuf_busy = true;
	*buf = uv_buf_init((char *)srv->relay_rbuf, sizeof(srv->relay_rbuf));
}

/* A datagram from a peer on an allocation's relay socket. */
static void on_relay_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
			  unsigned flags)
{
	struct relay_sock *r = (struct relay_sock *)h;
	struct nb_server *srv = r->srv;
	struct nb_turn_out out;
	struct nb_addr from;

	if (buf->base == (char *)srv->relay_rbuf)
		srv->relay_rbuf_busy = false;
	if (nread <= 0 || addr == NULL || (flags & UV_UDP_PARTIAL) ||
	    nb_addr_from_sockaddr(addr, &from) != 0)
		return;
	if (nb_turn_handle_peer(srv->turn, r->alloc, &from, srv->relay_rbuf, (size_t)nread,
				uv_now(srv->loop), &out) == 0) {
		turn_do(srv, &out);
		/* Outside a receive batch of the client's socket: send now. */
		for (unsigned f = 0; f < NB_FAM_COUNT; f++)
			for (unsigned i = 0; i < 2; i++)
				for (unsigned p = 0; p < 2; p++)
					if (srv->udp[f][i][p].open)
						nb_udp_flush(&srv->udp[f][i][p].udp);
	}
}

/* Bind a relay socket for alloc on `to` (the relay IP of the allocation's
 * family and its port, from the core's OPEN). 0 or a libuv -errno. */
static int relay_open(struct nb_server *srv, uint32_t alloc, const struct nb_addr *to)
{
	struct relay_sock *r = calloc(1, sizeof(*r));
	struct sockaddr_storage ss;
	int rc;

	if (r == NULL)
		return UV_ENOMEM;
	if (nb_addr_to_sockaddr(to, &ss) < 0) {
		free(r);
		return UV_EINVAL;
	}
	rc = uv_udp_init(srv->loop, &r->h);
	if (rc != 0) {
		free(r);
		return rc;
	}
	r->srv = srv;
	r->alloc = alloc;
	rc = uv_udp_bind(&r->h, (const struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_udp_recv_start(&r->h, on_relay_alloc, on_relay_recv);
	if (rc != 0) {
		uv_close((uv_handle_t *)&r->h, on_relay_failed_closed);
		return rc;
	}
	r->next = *relay_slot(srv, alloc);
	*relay_slot(srv, alloc) = r;
	srv->stats.relay_sockets++;
	return 0;
}

static void turn_timer_arm(struct nb_server *srv);

/* Send what the batch queued for peers: for each relay socket in turn, its
 * datagrams in one sendmmsg (what the kernel does not take is dropped, as
 * everywhere in this server). */
static void relay_txq_flush(struct nb_server *srv)
{
	struct relay_txq *q = srv->rtxq;
	struct mmsghdr mm[RELAY_TXQ];
	struct iovec iov[RELAY_TXQ];
	bool done[RELAY_TXQ];

	if (q == NULL || q->n == 0)
		return;
	memset(done, 0, sizeof(done));
	for (unsigned i = 0; i < q->n; i++) {
		struct relay_sock *r = q->e[i].r;
		unsigned k = 0;
		uv_os_fd_t fd;

		if (done[i])
			continue;
		for (unsigned j = i; j < q->n; j++) {
			if (done[j] || q->e[j].r != r)
				continue;
			done[j] = true;
			iov[k] = (struct iovec){ q->e[j].data, q->e[j].len };
			memset(&mm[k], 0, sizeof(mm[k]));
			mm[k].msg_hdr.msg_name = &q->e[j].to;
			mm[k].msg_hdr.msg_namelen = q->e[j].tolen;
			mm[k].msg_hdr.msg_iov = &iov[k];
			mm[k].msg_hdr.msg_iovlen = 1;
			k++;
		}
		if (uv_is_closing((uv_handle_t *)&r->h) || uv_fileno((uv_handle_t *)&r->h, &fd) != 0)
			continue; /* its allocation ended within the batch */
		for (unsigned sent = 0; sent < k;) {
			int m = sendmmsg(fd, mm + sent, k - sent, MSG_DONTWAIT);
			if (m > 0)
				sent += (unsigned)m;
			else if (m < 0 && errno == EINTR)
				continue;
			else if (m < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
				sent++; /* this one failed: the rest may not */
			else
				break; /* full: the rest is dropped */
		}
	}
	q->n = 0;
}

/* nb_udp's end of a receive batch on a client socket. */
static void on_udp_batch_end(struct nb_udp *u, void *arg)
{
	struct udp_sock *s = arg;

	(void)u;
	relay_txq_flush(s->srv);
	s->srv->in_batch = false;
}

/* Carry out what the TURN core asks for, until it asks for nothing more. */
static void turn_do(struct nb_server *srv, struct nb_turn_out *out)
{
	for (unsigned guard = 0; guard < NB_TURN_OPEN_TRIES + 2; guard++) {
		switch (out->kind) {
		case NB_TURN_OUT_CLIENT:
			if (out->client.transport == NB_TURN_CLIENT_TCP) {
				struct tcp_conn *c = conn_by_id(srv, out->client.conn);
				if (c != NULL)
					conn_send(c, out->data, out->len, true);
			} else {
				/* back out of the socket it came in on, whatever
				 * the relay's family */
				struct udp_sock *u = turn_client_sock(srv, out->client.sock);
				if (u->open)
					nb_udp_queue(&u->udp, out->data, out->len, &out->client.addr);
			}
			break;
		case NB_TURN_OUT_PEER: {
			struct relay_sock *r = *relay_slot(srv, out->alloc);
			struct sockaddr_storage ss;
			uv_buf_t b = uv_buf_init((char *)(uintptr_t)out->data, (unsigned)out->len);
			int n = UV_EINVAL, sl = r != NULL ? nb_addr_to_sockaddr(&out->to, &ss) : -1;
			if (sl > 0 && srv->in_batch && srv->rtxq != NULL && out->len <= NB_TURN_MAX_RESPONSE) {
				struct relay_txq *q = srv->rtxq;
				if (q->n == RELAY_TXQ)
					relay_txq_flush(srv);
				q->e[q->n].r = r;
				q->e[q->n].to = ss;
				q->e[q->n].tolen = (socklen_t)sl;
				q->e[q->n].len = out->len;
				memcpy(q->e[q->n].data, out->data, out->len);
				q->n++;
				break;
			}
			if (sl > 0)
				n = uv_udp_try_send(&r->h, &b, 1, (const struct sockaddr *)&ss);
			if (n < 0 && nb_log_get_level() >= NB_LOG_DEBUG)
				nb_log_debug(LOG, "relay: send from allocation %u: %s", out->alloc,
					     r == NULL ? "no socket" : uv_strerror(n));
			break;
		}
		case NB_TURN_OUT_OPEN: {
			uint32_t alloc = out->alloc;
			int st = relay_open(srv, alloc, &out->to);
			uint64_t sup;
			if (st != 0 && log_allow(srv, LL_TURN_BIND, 1, WARN_INTERVAL_MS, &sup))
				nb_log_warn(LOG, "relay: cannot bind port %u: %s%s", out->port, uv_strerror(st),
					    more_text(sup, (char[64]){ 0 }, 64));
			if (out->client.transport == NB_TURN_CLIENT_TCP) {
				struct tcp_conn *c = conn_by_id(srv, out->client.conn);
				if (c != NULL && !c->turn_on && st == 0) {
					c->turn_on = true; /* relayed traffic: no byte cap */
					srv->stats.tcp_turn++;
				}
			}
			if (nb_turn_opened(srv->turn, alloc, st, uv_now(srv->loop), out) != 0)
				out->kind = NB_TURN_OUT_NONE;
			continue; /* the core's answer to the bind */
		}
		case NB_TURN_OUT_CLOSE:
			relay_close(srv, out->alloc);
			break;
		default:
			break;
		}
		break;
	}
	turn_timer_arm(srv);
}

/* 0 when the core took it (it may have answered nothing), else its drop. */
static int turn_from_client(struct nb_server *srv, const struct nb_turn_client *tc,
			    const uint8_t *data, size_t len)
{
	struct nb_turn_out out;
	int rc = nb_turn_handle_client(srv->turn, tc, data, len, uv_now(srv->loop),
				       (uint64_t)time(NULL), &out);

	if (rc == 0)
		turn_do(srv, &out);
	else if (nb_log_get_level() >= NB_LOG_DEBUG) {
		char f[NB_ADDR_STRLEN];
		nb_log_debug(LOG, "relay: %zu bytes from %s dropped: %s", len,
			     nb_addr_format(&tc->addr, f, sizeof(f)), nb_turn_drop_name(rc));
	}
	return rc;
}

static void on_turn_timer(uv_timer_t *t)
{
	struct nb_server *srv = t->data;
	uint64_t now = uv_now(srv->loop);
	struct nb_turn_out out;

	for (unsigned i = 0; i < 1024 && nb_turn_poll(srv->turn, now, &out) == 1; i++)
		turn_do(srv, &out);
	turn_timer_arm(srv);
}

static void turn_timer_arm(struct nb_server *srv)
{
	uint64_t next, now;

	if (srv->closing || !srv->turn_timer_open)
		return;
	next = nb_turn_next_deadline(srv->turn);
	now = uv_now(srv->loop);
	if (next == UINT64_MAX)
		uv_timer_stop(&srv->turn_timer);
	else
		uv_timer_start(&srv->turn_timer, on_turn_timer, next > now ? next - now : 0, 0);
}

static void on_turn_event(void *arg, const struct nb_turn_event *ev)
{
	struct nb_server *srv = arg;
	char a[NB_ADDR_STRLEN], more[64];
	uint64_t sup;

	if (ev->client != NULL)
		nb_addr_format(&ev->client->addr, a, sizeof(a));
	else
		snprintf(a, sizeof(a), "?");
	switch (ev->kind) {
	case NB_TURN_EV_REFUSED:
		if (ev->reason == NB_TURN_REFUSE_CHALLENGE || ev->reason == NB_TURN_REFUSE_STALE_NONCE)
			return; /* the normal first round trip */
		if (log_allow(srv, LL_TURN_REFUSED, INFO_BURST, INFO_WINDOW_MS, &sup))
			nb_log_warn(LOG, "relay: refused %s from %s%s%.*s: %u %s%s", ev->client != NULL &&
				    ev->client->transport == NB_TURN_CLIENT_TCP ? "(tcp)" : "(udp)", a,
				    ev->username != NULL ? " user " : "",
				    ev->username != NULL ? (int)ev->username_len : 0,
				    ev->username != NULL ? (const char *)ev->username : "", ev->code,
				    nb_turn_refusal_name(ev->reason), more_text(sup, more, sizeof(more)));
		break;
	case NB_TURN_EV_ALLOC_CREATED:
		if (log_allow(srv, LL_TURN_ALLOC, INFO_BURST, INFO_WINDOW_MS, &sup))
			nb_log_info(LOG, "relay: allocation for %s (%s) on port %u, %u s, user %.*s%s", a,
				    ev->client != NULL && ev->client->transport == NB_TURN_CLIENT_TCP ? "tcp"
													 : "udp",
				    ev->port, ev->lifetime_s, ev->username != NULL ? (int)ev->username_len : 0,
				    ev->username != NULL ? (const char *)ev->username : "",
				    more_text(sup, more, sizeof(more)));
		break;
	case NB_TURN_EV_ALLOC_DELETED:
		if (log_allow(srv, LL_TURN_ALLOC, INFO_BURST, INFO_WINDOW_MS, &sup))
			nb_log_info(LOG, "relay: allocation for %s on port %u %s%s", a, ev->port,
				    ev->expired ? "expired" : "deleted", more_text(sup, more, sizeof(more)));
		break;
	default:
		break;
	}
}

/* The relay core and its timer; nothing when cfg.turn is off. */
static int turn_open(struct nb_server *srv)
{
	struct nb_turn_config tc = srv->cfg.turn_cfg;
	char a[2][NB_ADDR_STRLEN];
	int err;

	if (!srv->cfg.turn)
		return 0;
	/* Per family: --relay-ip for it, else the first specific --listen IP
	 * of that family, else none (the family is not relayed: 440). */
	for (unsigned f = 0; f < NB_FAM_COUNT; f++) {
		memset(&tc.relay_ip[f], 0, sizeof(tc.relay_ip[f]));
		if (srv->cfg.relay_ip[f].family != NB_AF_NONE)
			tc.relay_ip[f] = srv->cfg.relay_ip[f];
		for (unsigned i = 0; i < srv->cfg.n_listen && tc.relay_ip[f].family == NB_AF_NONE; i++)
			if (nb_addr_fam(&srv->cfg.listen[i]) == f &&
			    !nb_addr_is_unspecified(&srv->cfg.listen[i]))
				tc.relay_ip[f] = srv->cfg.listen[i];
		tc.relay_ip[f].port = 0;
	}
	if (tc.relay_ip[NB_FAM_V4].family == NB_AF_NONE && tc.relay_ip[NB_FAM_V6].family == NB_AF_NONE) {
		nb_log_warn(LOG, "relay: off: the broker listens on the wildcard address; name the "
				 "address peers reach with --listen or --relay-ip");
		srv->cfg.turn = false;
		return 0;
	}
	tc.n_own = 0; /* every --listen IP, of both families */
	for (unsigned i = 0; i < srv->cfg.n_listen && tc.n_own < NB_TURN_MAX_OWN; i++)
		if (!nb_addr_is_unspecified(&srv->cfg.listen[i]))
			tc.own[tc.n_own++] = srv->cfg.listen[i];
	for (unsigned f = 0; f < NB_FAM_COUNT; f++)
		if (tc.relay_ip[f].family != NB_AF_NONE && tc.n_own < NB_TURN_MAX_OWN)
			tc.own[tc.n_own++] = tc.relay_ip[f];
	if (getrandom(tc.nonce_key, sizeof(tc.nonce_key), 0) != (ssize_t)sizeof(tc.nonce_key)) {
		nb_log_error(LOG, "getrandom: %s", strerror(errno));
		return -EIO;
	}
	tc.cb = on_turn_event;
	tc.cb_arg = srv;
	memcpy(srv->cfg.turn_cfg.relay_ip, tc.relay_ip, sizeof(tc.relay_ip));
	err = nb_turn_new(&tc, &srv->turn);
	OPENSSL_cleanse(&tc, sizeof(tc));
	if (err < 0) {
		nb_log_error(LOG, "relay: %s", err == -ENOMEM ? "out of memory for the allocation table"
							   : "invalid relay configuration");
		return err;
	}
	for (unsigned f = 0; f < NB_FAM_COUNT; f++) {
		const struct nb_addr *ip = &srv->cfg.turn_cfg.relay_ip[f];

		if (ip->family != NB_AF_NONE)
			nb_addr_format_ip(ip, a[f], sizeof(a[f]));
		else
			snprintf(a[f], sizeof(a[f]), "none (440)");
	}
	nb_log_info(LOG, "relay: TURN (RFC 8656) on the STUN ports, relaying from IPv4 %s, IPv6 %s, "
			 "ports %u-%u, realm \"%s\", %u allocations (%u per user), lifetime up to %u s%s",
		    a[NB_FAM_V4], a[NB_FAM_V6], srv->cfg.turn_cfg.port_lo,
		    srv->cfg.turn_cfg.port_hi, srv->cfg.turn_cfg.realm, srv->cfg.turn_cfg.max_allocs,
		    srv->cfg.turn_cfg.max_allocs_per_user, srv->cfg.turn_cfg.max_lifetime_s,
		    srv->cfg.turn_cfg.allow_private ? "; private peers allowed" : "");
	return 0;
}

const struct nb_turn_stats *nb_server_turn_stats(const struct nb_server *srv)
{
	return srv->turn != NULL ? nb_turn_get_stats(srv->turn) : NULL;
}

/* ---- Open and close ----------------------------------------------------- */

static void server_pending_done(struct nb_server *srv)
{
	if (--srv->pending > 0)
		return;
	if (srv->done_cb != NULL)
		srv->done_cb(srv->done_arg);
	nb_rendezvous_free(srv->rv);
	nb_plink_free(srv->pl);
	srv->pl = NULL;
	nb_ratelimit_free(srv->rl);
	nb_turn_free(srv->turn);
	free(srv->rtxq);
	free(srv);
}

static void on_udp_closed(struct nb_udp *u)
{
	struct udp_sock *s = u->arg;

	server_pending_done(s->srv);
}

static void on_listener_closed(uv_handle_t *h)
{
	struct tcp_listener *l = h->data;

	server_pending_done(l->srv);
}

static void on_rv_timer_closed(uv_handle_t *h)
{
	struct nb_server *srv = h->data;

	server_pending_done(srv);
}

static void probes_closed(void *arg)
{
	server_pending_done(arg);
}

void nb_server_close(struct nb_server *srv, void (*done_cb)(void *arg), void *arg)
{
	if (srv == NULL || srv->closing)
		return;
	srv->closing = true;
	srv->done_cb = done_cb;
	srv->done_arg = arg;
	srv->pending = 1; /* held until every close below has been started */
	for (unsigned f = 0; f < NB_FAM_COUNT; f++) {
		for (unsigned i = 0; i < 2; i++) {
			for (unsigned p = 0; p < 2; p++) {
				struct udp_sock *u = &srv->udp[f][i][p];
				struct tcp_listener *l = &srv->tcp[f][i][p];
				if (u->open) {
					u->open = false;
					srv->pending++;
					nb_udp_close(&u->udp, on_udp_closed);
				}
				if (l->open) {
					l->open = false;
					srv->pending++;
					uv_close((uv_handle_t *)&l->handle, on_listener_closed);
				}
			}
		}
	}
	for (struct tcp_conn *c = srv->conns; c != NULL; c = c->next) {
		srv->pending++;
		conn_close(c);
	}
	if (srv->rv_timer_open) {
		srv->rv_timer_open = false;
		srv->pending++;
		uv_close((uv_handle_t *)&srv->rv_timer, on_rv_timer_closed);
	}
	if (srv->probes != NULL) {
		srv->pending++;
		nb_tcpprobes_close(srv->probes, probes_closed, srv);
		srv->probes = NULL;
	}
	if (srv->turn_timer_open) {
		srv->turn_timer_open = false;
		srv->pending++;
		uv_close((uv_handle_t *)&srv->turn_timer, on_rv_timer_closed);
	}
	for (size_t b = 0; b < RELAY_BUCKETS; b++) {
		while (srv->relay[b] != NULL) {
			struct relay_sock *r = srv->relay[b];
			srv->relay[b] = r->next;
			srv->pending++;
			r->counted = true;
			uv_close((uv_handle_t *)&r->h, on_relay_closed);
		}
	}
	server_pending_done(srv);
}

static int open_udp(struct nb_server *srv, unsigned f, unsigned i, unsigned p)
{
	struct udp_sock *s = &srv->udp[f][i][p];
	struct nb_addr a = nb_binding_local(&srv->bind[f], i, p);
	char as[NB_ADDR_STRLEN];
	int rc;

	s->srv = srv;
	s->fam = (uint8_t)f;
	s->ip = (uint8_t)i;
	s->port = (uint8_t)p;
	rc = nb_udp_open(&s->udp, srv->loop, &a, 0, on_udp, s);
	nb_addr_format(&a, as, sizeof(as));
	if (rc != 0) {
		nb_log_error(LOG, "cannot listen on udp %s: %s", as, uv_strerror(rc));
		return rc;
	}
	s->open = true;
	s->udp.batch_cb = on_udp_batch_end;
	nb_log_info(LOG, "listening on udp %s", as);
	return 0;
}

static int open_tcp(struct nb_server *srv, unsigned f, unsigned i, unsigned p)
{
	struct tcp_listener *l = &srv->tcp[f][i][p];
	struct nb_addr a = nb_binding_local(&srv->bind[f], i, p);
	struct sockaddr_storage ss;
	char as[NB_ADDR_STRLEN];
	int rc;

	l->srv = srv;
	l->fam = (uint8_t)f;
	l->ip = (uint8_t)i;
	l->port = (uint8_t)p;
	nb_addr_format(&a, as, sizeof(as));
	if (nb_addr_to_sockaddr(&a, &ss) < 0)
		return UV_EAFNOSUPPORT;
	rc = uv_tcp_init(srv->loop, &l->handle);
	if (rc != 0) {
		nb_log_error(LOG, "cannot listen on tcp %s: %s", as, uv_strerror(rc));
		return rc;
	}
	l->handle.data = l;
	l->open = true; /* initialised: from here on it must be closed */
	rc = uv_tcp_bind(&l->handle, (const struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&l->handle, NB_SERVER_TCP_BACKLOG, on_tcp_connection);
	if (rc != 0) {
		nb_log_error(LOG, "cannot listen on tcp %s: %s", as, uv_strerror(rc));
		return rc;
	}
	nb_log_info(LOG, "listening on tcp %s", as);
	return 0;
}

/* The rendezvous engine and its timer (the timer is the last thing that
 * can fail here; once it is initialised, nb_server_close() closes it). */
static int rendezvous_open(struct nb_server *srv)
{
	const struct nb_server_config *cfg = &srv->cfg;
	struct nb_rendezvous_config rc;
	ssize_t n;
	int err;

	nb_rendezvous_config_default(&rc);
	rc.max_peers = cfg->max_peers;
	rc.max_sessions = cfg->max_sessions;
	rc.keepalive_s = cfg->keepalive_s;
	if (cfg->token != NULL) {
		size_t tl = strlen(cfg->token);
		if (tl < 1 || tl > NB_CTRL_TOKEN_MAX) {
			nb_log_error(LOG, "the token must be 1 to %d printable ASCII characters",
				     NB_CTRL_TOKEN_MAX);
			return -EINVAL;
		}
		memcpy(rc.token, cfg->token, tl + 1);
	}
	rc.event_cb = on_rv_event;
	rc.event_arg = srv;
	rc.birthday = cfg->birthday;
	rc.rtt_timing = cfg->rtt_timing;
	/* The broker's primary address per family, where it listens on a
	 * specific IP of it (a wildcard names no address). */
	for (unsigned f = 0; f < NB_FAM_COUNT; f++) {
		memset(&rc.self[f], 0, sizeof(rc.self[f])); /* NB_AF_NONE */
		if (srv->has[f] && !nb_addr_is_unspecified(&srv->bind[f].ip[0]))
			rc.self[f] = nb_binding_local(&srv->bind[f], 0, 0);
	}
	/* Blocks only before the kernel's pool is first initialised at boot;
	 * nothing is being served yet. */
	n = getrandom(rc.hash_key, sizeof(rc.hash_key), 0);
	if (n == (ssize_t)sizeof(rc.hash_key))
		n = getrandom(rc.probe_key, sizeof(rc.probe_key), 0) == (ssize_t)sizeof(rc.probe_key)
			    ? n : -1;
	if (n != (ssize_t)sizeof(rc.hash_key)) {
		err = n < 0 ? -errno : -EIO;
		nb_log_error(LOG, "getrandom: %s", strerror(-err));
		return err;
	}
	if (cfg->admin_token != NULL)
		snprintf(rc.admin_token, sizeof(rc.admin_token), "%s", cfg->admin_token);
	rc.public_list = cfg->public_list;
	/* Relays for the plans: the external ones, else our own TURN. */
	if (cfg->n_relays > 0) {
		rc.n_relays = cfg->n_relays;
		memcpy(rc.relays, cfg->relays, cfg->n_relays * sizeof(cfg->relays[0]));
	} else if (cfg->turn) {
		/* relays[0]: the IPv4 relay IP if any, else the IPv6 one;
		 * relay_fams: every family with a relay IP. (External relays
		 * leave relay_fams 0: IPv4 only, all one can assume.) */
		const struct nb_addr *ip = cfg->turn_cfg.relay_ip;

		rc.n_relays = 1;
		rc.relays[0] = ip[NB_FAM_V4].family != NB_AF_NONE ? ip[NB_FAM_V4] : ip[NB_FAM_V6];
		rc.relays[0].port = cfg->port;
		rc.own_relay = true; /* served at self[] of each family too */
		rc.relay_fams = 0;
		for (unsigned f = 0; f < NB_FAM_COUNT; f++)
			if (ip[f].family != NB_AF_NONE)
				rc.relay_fams |= (uint8_t)(1u << f);
	}
	if (rc.n_relays > 0) {
		memcpy(rc.relay_secret, cfg->turn_cfg.secret, cfg->turn_cfg.secret_len);
		rc.relay_secret_len = cfg->turn_cfg.secret_len;
	}
	err = nb_rendezvous_new(&rc, &srv->rv);
	OPENSSL_cleanse(rc.admin_token, sizeof(rc.admin_token));
	OPENSSL_cleanse(rc.relay_secret, sizeof(rc.relay_secret));
	memset(rc.token, 0, sizeof(rc.token));
	memset(rc.probe_key, 0, sizeof(rc.probe_key));
	if (err < 0) {
		nb_log_error(LOG, "%s", err == -ENOMEM ? "out of memory for the rendezvous tables"
							: "invalid rendezvous configuration");
		return err;
	}
	{
		struct nb_plink_config pc = {
			.max_sessions = cfg->max_links, .idle_ms = NB_PLINK_DEFAULT_IDLE_MS,
		};
		memcpy(pc.priv, cfg->key, sizeof(pc.priv));
		memcpy(pc.hash_key, rc.hash_key, sizeof(pc.hash_key));
		pc.hash_key[0] ^= 0x5c; /* its own key for its own tables */
		err = nb_plink_new(&pc, &srv->pl);
		OPENSSL_cleanse(&pc, sizeof(pc));
		if (err < 0) {
			nb_log_error(LOG, "%s", err == NB_PLINK_E_NOMEM ? "out of memory for the session table"
									: "invalid key or session limit");
			return -EINVAL;
		}
	}
	srv->rnd_pos = RND_POOL; /* empty: filled on first use */
	srv->rv_timer_due = UINT64_MAX;
	err = uv_timer_init(srv->loop, &srv->rv_timer);
	if (err != 0) {
		nb_log_error(LOG, "uv_timer_init: %s", uv_strerror(err));
		return err;
	}
	srv->rv_timer.data = srv;
	srv->rv_timer_open = true;
	err = nb_tcpprobes_new(srv->loop, &srv->probes);
	if (err != 0) {
		nb_log_error(LOG, "TCP probes: %s", strerror(-err));
		return err;
	}
	return 0;
}

static const char *fam_name(unsigned f)
{
	return f == NB_FAM_V6 ? "IPv6" : "IPv4";
}

int nb_server_listen_check(const struct nb_server_config *cfg, char *err, size_t errlen)
{
	unsigned n = cfg->n_listen, count[NB_FAM_COUNT] = { 0, 0 };
	char a[NB_ADDR_STRLEN];

	if (n < 1 || n > NB_SERVER_MAX_LISTEN) {
		snprintf(err, errlen, "one to %d addresses (two per family at most)", NB_SERVER_MAX_LISTEN);
		return -EINVAL;
	}
	for (unsigned i = 0; i < n; i++) {
		if (cfg->listen[i].family != NB_AF_INET && cfg->listen[i].family != NB_AF_INET6) {
			snprintf(err, errlen, "not an IPv4 or IPv6 address");
			return -EINVAL;
		}
		count[nb_addr_fam(&cfg->listen[i])]++;
	}
	for (unsigned i = 0; i < n && n > 1; i++) {
		if (!nb_addr_is_unspecified(&cfg->listen[i]))
			continue;
		if (n == 2 && cfg->listen[0].family == cfg->listen[1].family)
			snprintf(err, errlen, "RFC 5780 mode needs two specific addresses, not a wildcard");
		else
			snprintf(err, errlen, "a wildcard (%s) must be the only address; with several, "
					      "name each one",
				 nb_addr_format_ip(&cfg->listen[i], a, sizeof(a)));
		return -EINVAL;
	}
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < i; j++)
			if (nb_addr_ip_equal(&cfg->listen[i], &cfg->listen[j])) {
				snprintf(err, errlen, "%s given twice: the addresses must differ",
					 nb_addr_format_ip(&cfg->listen[i], a, sizeof(a)));
				return -EINVAL;
			}
	for (unsigned f = 0; f < NB_FAM_COUNT; f++)
		if (count[f] > 2) {
			snprintf(err, errlen, "%u %s addresses: at most two per family (one: plain STUN, "
					      "two: RFC 5780)",
				 count[f], fam_name(f));
			return -EINVAL;
		}
	return 0;
}

bool nb_server_config_rfc5780(const struct nb_server_config *cfg)
{
	unsigned count[NB_FAM_COUNT] = { 0, 0 };

	for (unsigned i = 0; i < cfg->n_listen && i < NB_SERVER_MAX_LISTEN; i++)
		if (++count[nb_addr_fam(&cfg->listen[i])] == 2)
			return true;
	return false;
}

/* srv->bind[], has[] and route[] from the --listen IPs: each family's, in
 * the order given. */
static void binding_sets(struct nb_server *srv)
{
	const struct nb_server_config *cfg = &srv->cfg;
	unsigned count[NB_FAM_COUNT] = { 0, 0 };

	for (unsigned i = 0; i < cfg->n_listen; i++) {
		unsigned f = nb_addr_fam(&cfg->listen[i]);
		if (count[f] < 2)
			srv->bind[f].ip[count[f]++] = cfg->listen[i];
	}
	for (unsigned f = 0; f < NB_FAM_COUNT; f++) {
		srv->has[f] = count[f] > 0;
		srv->route[f] = count[f] > 0 ? (uint8_t)f : (uint8_t)NB_FAM_COUNT;
		srv->bind[f].rfc5780 = count[f] == 2;
		if (count[f] == 1)
			srv->bind[f].ip[1] = srv->bind[f].ip[0];
		srv->bind[f].port[0] = cfg->port;
		srv->bind[f].port[1] = cfg->alt_port;
	}
	/* The :: wildcard socket is dual-stack: it takes (and reaches) IPv4
	 * too, as IPv4-mapped addresses - as it did before there were sets. */
	if (!srv->has[NB_FAM_V4] && srv->has[NB_FAM_V6] && nb_addr_is_unspecified(&srv->bind[NB_FAM_V6].ip[0]))
		srv->route[NB_FAM_V4] = NB_FAM_V6;
}

int nb_server_open(uv_loop_t *loop, const struct nb_server_config *cfg, struct nb_server **ret)
{
	struct nb_server *srv;
	char err[160];
	int rc;

	if (nb_server_listen_check(cfg, err, sizeof(err)) != 0) {
		nb_log_error(LOG, "invalid listen addresses: %s", err);
		return -EINVAL;
	}
	if (cfg->max_tcp < 1 ||
	    cfg->tcp_idle_timeout_ms < 1 || cfg->tcp_max_bytes < NB_STUN_HDR_LEN ||
	    cfg->max_peers < 1 || cfg->max_peers > NB_REGISTRY_MAX_MAX || cfg->max_sessions < 1 ||
	    cfg->max_sessions > NB_RENDEZVOUS_MAX_SESSIONS_MAX ||
	    cfg->keepalive_s < NB_CTRL_KEEPALIVE_MIN_S || cfg->keepalive_s > NB_CTRL_KEEPALIVE_MAX_S) {
		nb_log_error(LOG, "invalid server configuration");
		return -EINVAL;
	}
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return -ENOMEM;
	srv->loop = loop;
	srv->cfg = *cfg;
	binding_sets(srv);
	if (cfg->software != NULL) {
		size_t n = strlen(cfg->software);
		if (n > NB_BINDING_MAX_SOFTWARE) {
			free(srv);
			nb_log_error(LOG, "SOFTWARE text longer than %d bytes", NB_BINDING_MAX_SOFTWARE);
			return -EINVAL;
		}
		memcpy(srv->software, cfg->software, n);
		for (unsigned f = 0; f < NB_FAM_COUNT; f++) {
			srv->bind[f].software = (const uint8_t *)srv->software;
			srv->bind[f].software_len = n;
		}
		srv->cfg.software = srv->software;
	}
	rc = 0;
	for (unsigned f = 0; f < NB_FAM_COUNT && rc == 0; f++)
		if (srv->has[f])
			rc = nb_binding_config_check(&srv->bind[f]);
	if (rc < 0) {
		free(srv);
		nb_log_error(LOG, "invalid address configuration: RFC 5780 mode needs two different "
				  "specific IPs of one family and two different ports");
		return rc;
	}
	rc = ratelimit_open(srv);
	if (rc < 0) {
		free(srv);
		return rc;
	}
	if (srv->cfg.n_relays > 0)
		srv->cfg.turn = false; /* external relays: credentials only */
	rc = turn_open(srv);
	if (rc < 0) {
		nb_ratelimit_free(srv->rl);
		free(srv);
		return rc;
	}
	rc = rendezvous_open(srv);
	if (rc < 0) {
		nb_rendezvous_free(srv->rv);
		nb_plink_free(srv->pl);
		nb_ratelimit_free(srv->rl);
		nb_turn_free(srv->turn);
		free(srv);
		return rc;
	}
	if (srv->turn != NULL) {
		rc = uv_timer_init(srv->loop, &srv->turn_timer);
		if (rc != 0) {
			nb_log_error(LOG, "uv_timer_init: %s", uv_strerror(rc));
			nb_server_close(srv, NULL, NULL);
			return rc;
		}
		srv->turn_timer.data = srv;
		srv->turn_timer_open = true;
		srv->rtxq = calloc(1, sizeof(*srv->rtxq)); /* NULL: each datagram at once */
	}

	for (unsigned f = 0; f < NB_FAM_COUNT; f++) {
		/* One family alone: the lines as they always were. */
		const char *fn = srv->has[f ^ 1u] ? (f == NB_FAM_V6 ? "IPv6: " : "IPv4: ") : "";
		if (!srv->has[f])
			continue;
		if (srv->bind[f].rfc5780)
			nb_log_info(LOG, "%sRFC 5780 mode: 2 addresses x 2 ports; responses carry "
					 "RESPONSE-ORIGIN and OTHER-ADDRESS, CHANGE-REQUEST is honoured", fn);
		else
			nb_log_info(LOG, "%ssingle-address mode: no OTHER-ADDRESS, CHANGE-REQUEST with a "
					 "flag set is answered with 420", fn);
		if (!srv->bind[f].rfc5780 && nb_addr_is_unspecified(&srv->bind[f].ip[0]))
			nb_log_info(LOG, "listening on the wildcard address: on a host with several "
					 "addresses, name the public one with --listen");
	}

	rc = 0;
	for (unsigned f = 0; f < NB_FAM_COUNT && rc == 0; f++)
		for (unsigned i = 0; srv->has[f] && i < n_ips(srv, f) && rc == 0; i++)
			for (unsigned p = 0; p < n_ips(srv, f) && rc == 0; p++) {
				rc = open_udp(srv, f, i, p);
				if (rc == 0 && cfg->tcp)
					rc = open_tcp(srv, f, i, p);
			}
	if (rc != 0) {
		nb_server_close(srv, NULL, NULL);
		return rc;
	}
	if (cfg->tcp)
		nb_log_info(LOG, "tcp limits: %u connections, a request within %llu ms, %llu bytes "
				 "per connection",
			    cfg->max_tcp, (unsigned long long)cfg->tcp_idle_timeout_ms,
			    (unsigned long long)cfg->tcp_max_bytes);
	if (cfg->software != NULL)
		nb_log_info(LOG, "responses carry SOFTWARE \"%s\"", srv->software);
	{
		char a[2][NB_ADDR_STRLEN];
		unsigned k = 0;
		for (unsigned f = 0; f < NB_FAM_COUNT; f++)
			if (srv->has[f]) {
				struct nb_addr p = nb_binding_local(&srv->bind[f], 0, 0);
				nb_addr_format(&p, a[k++], sizeof(a[0]));
			}
		nb_log_info(LOG_RV, "control messages on udp %s%s%s: up to %zu peers (keepalive %u s, "
				    "expiry %u s), %zu connections in progress, %s",
			    a[0], k > 1 ? " and " : "", k > 1 ? a[1] : "", cfg->max_peers, cfg->keepalive_s,
			    cfg->keepalive_s * NB_RENDEZVOUS_EXPIRES_FACTOR, cfg->max_sessions,
			    cfg->token != NULL ? "token required" : "no token required");
	}
	if (srv->rl != NULL) {
		char pen[64] = "no penalty";
		if (cfg->rate_penalty_s > 0)
			snprintf(pen, sizeof(pen), "a source over it is refused for %u s",
				 cfg->rate_penalty_s);
		nb_log_info(LOG, "rate limit: %u requests/s per source IP (IPv6: per /64), burst %u, "
				 "for its UDP datagrams of any kind and again for its TCP requests; "
				 "%zu sources remembered; %s",
			    cfg->rate_limit, cfg->rate_burst, cfg->rate_table, pen);
	} else {
		nb_log_info(LOG, "rate limit: off (--rate-limit 0): no per-source limit");
	}
	*ret = srv;
	return 0;
}

/* ---- The program ---------------------------------------------------------- */

/* The handled signals: SIGINT, SIGTERM (stop), SIGPIPE (ignored), SIGHUP (reload). */
#define RUN_SIGNALS 4

struct run_ctx {
	uv_loop_t *loop;
	const struct nb_server_config *cfg;
	struct nb_server *srv;
	struct nb_status_server *status; /* NULL: no status port */
	uv_signal_t sig[RUN_SIGNALS];
	bool stopping;
};

static void log_stats(const struct nb_server_stats *st)
{
	char drops[256];
	size_t off = 0;

	drops[0] = '\0';
	for (unsigned i = 0; i < NB_BINDING_DROP_COUNT; i++) {
		int n = snprintf(drops + off, sizeof(drops) - off, "%s%s %llu", i ? ", " : "",
				 nb_binding_drop_name(NB_BINDING_DROP_NOT_STUN - (int)i),
				 (unsigned long long)st->drops[i]);
		if (n < 0 || (size_t)n >= sizeof(drops) - off)
			break;
		off += (size_t)n;
	}
	nb_log_info(LOG, "udp: %llu received, %llu answered, %llu errors sent; dropped: %s",
		    (unsigned long long)st->udp_rx, (unsigned long long)st->udp_answered,
		    (unsigned long long)st->udp_errors_sent, drops);
	nb_log_info(LOG, "tcp: %llu accepted, %llu requests, %llu waits at the limit; closed: "
			 "%llu idle, %llu byte cap, %llu garbage",
		    (unsigned long long)st->tcp_accepted, (unsigned long long)st->tcp_requests,
		    (unsigned long long)st->tcp_refused_full, (unsigned long long)st->tcp_closed_idle,
		    (unsigned long long)st->tcp_closed_bytes,
		    (unsigned long long)st->tcp_closed_garbage);
}

static void log_rv_stats(const struct nb_server *srv)
{
	struct nb_rendezvous_stats st;

	nb_server_rendezvous_stats(srv, &st);
	nb_log_info(LOG_RV, "control: %llu received, %llu replies (%llu errors, %llu from the cache), "
			    "%llu undecodable, %llu ignored; %llu registers, %llu keepalives, %llu "
			    "connects, %llu results, %llu list pages; %llu expired",
		    (unsigned long long)st.rx, (unsigned long long)st.replies,
		    (unsigned long long)st.errors, (unsigned long long)st.replayed,
		    (unsigned long long)st.undecodable, (unsigned long long)st.ignored,
		    (unsigned long long)st.registers, (unsigned long long)st.keepalives,
		    (unsigned long long)st.connects, (unsigned long long)st.results,
		    (unsigned long long)st.lists, (unsigned long long)st.expired);
	nb_log_info(LOG_RV, "plans pushed: %llu, %llu retransmissions, %llu acknowledged, %llu "
			    "failed; limits hit: registry %llu, sessions %llu, rate %llu, cache %llu; "
			    "now %zu peers, %zu sessions, %zu pairs",
		    (unsigned long long)st.pushes, (unsigned long long)st.push_retransmits,
		    (unsigned long long)st.push_acked, (unsigned long long)st.push_failed,
		    (unsigned long long)st.full_peers, (unsigned long long)st.full_sessions,
		    (unsigned long long)st.rate_limited, (unsigned long long)st.cache_evicted_early,
		    st.peers, st.sessions, st.pairs);
	nb_log_info(LOG_RV, "plans: %llu relay, %llu birthday; %llu timed from both round trips "
			    "(%llu round-trip samples)",
		    (unsigned long long)st.relay_plans, (unsigned long long)st.birthday_plans,
		    (unsigned long long)st.rtt_timed, (unsigned long long)st.rtt_samples);
}

static void log_rl_stats(const struct nb_server *srv)
{
	const struct nb_server_stats *s = nb_server_stats(srv);
	struct nb_ratelimit_stats st;

	if (srv->rl == NULL)
		return;
	nb_server_ratelimit_stats(srv, &st);
	nb_log_info(LOG, "rate limit: %llu requests allowed, %llu dropped (%llu stun udp, %llu stun "
			 "tcp, %llu control; %llu of them in a penalty); sources went over %llu times, "
			 "%llu penalties; table %zu of %zu, %llu recycled (%llu still active)",
		    (unsigned long long)st.allowed,
		    (unsigned long long)(st.denied_rate + st.denied_penalty),
		    (unsigned long long)s->rate_limited_udp, (unsigned long long)s->rate_limited_tcp,
		    (unsigned long long)s->rate_limited_control, (unsigned long long)st.denied_penalty,
		    (unsigned long long)st.episodes, (unsigned long long)st.penalties, st.used,
		    st.entries, (unsigned long long)st.recycled,
		    (unsigned long long)st.recycled_active);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct run_ctx *ctx = h->data;

	if (signum == SIGPIPE)
		return; /* a peer closed a TCP connection under a write: the write fails */
	if (ctx->stopping)
		return;
	/* ---- SIGHUP: reload (docs/operations.md "SIGHUP") ---- */
	if (signum == SIGHUP) {
		if (ctx->cfg->reload_cb != NULL)
			ctx->cfg->reload_cb(ctx->cfg->reload_arg);
		else
			nb_log_info(LOG, "SIGHUP: no config file: nothing to reload");
		return;
	}
	ctx->stopping = true;
	nb_log_info(LOG, "%s: shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
	log_stats(nb_server_stats(ctx->srv));
	log_rv_stats(ctx->srv);
	log_rl_stats(ctx->srv);
	nb_status_server_close(ctx->status);
	ctx->status = NULL;
	nb_server_close(ctx->srv, NULL, NULL);
	ctx->srv = NULL;
	for (unsigned i = 0; i < RUN_SIGNALS; i++)
		uv_close((uv_handle_t *)&ctx->sig[i], NULL);
}

int nb_server_run(const struct nb_server_config *cfg)
{
	static const int signums[RUN_SIGNALS] = { SIGINT, SIGTERM, SIGPIPE, SIGHUP };
	struct run_ctx ctx;
	uv_loop_t loop;
	int rc;

	memset(&ctx, 0, sizeof(ctx));
	rc = uv_loop_init(&loop);
	if (rc != 0) {
		nb_log_error(LOG, "uv_loop_init: %s", uv_strerror(rc));
		return 1;
	}
	ctx.loop = &loop;
	ctx.cfg = cfg;
	rc = nb_server_open(&loop, cfg, &ctx.srv);
	if (rc == 0 && cfg->status_port != 0) {
		rc = nb_status_server_open(&loop, ctx.srv, cfg, cfg->status_port, &ctx.status);
		if (rc != 0)
			nb_server_close(ctx.srv, NULL, NULL);
	}
	if (rc != 0) {
		uv_run(&loop, UV_RUN_DEFAULT); /* finish closing what was opened */
		uv_loop_close(&loop);
		return 1;
	}
	for (unsigned i = 0; i < RUN_SIGNALS; i++) {
		uv_signal_init(&loop, &ctx.sig[i]);
		ctx.sig[i].data = &ctx;
		uv_signal_start(&ctx.sig[i], on_signal, signums[i]);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(&loop);
	if (rc != 0) {
		nb_log_error(LOG, "handles left open at exit: %s", uv_strerror(rc));
		return 1;
	}
	nb_log_info(LOG, "stopped");
	return 0;
}
