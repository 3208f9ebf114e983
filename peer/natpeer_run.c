/* peer/natpeer_run.c - libnatpeer's agent on the application's libuv loop
 * (natpeer.h): one UDP socket shared by the NAT check, the broker client,
 * the punch machines and the data channels. It only moves bytes and time
 * between the world and the pure cores (netcheck, client, punch, datachan),
 * and reports through the application's callbacks: no stdin, stdout,
 * stderr or signals here (docs/library.md). */
#include "natpeer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <uv.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/bytes.h"
#include "common/keyfile.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/noise.h"
#include "common/seal.h"
#include "common/time.h"
#include "common/udp.h"
#include "peer/blink.h"
#include "peer/client.h"
#include "peer/known.h"
#include "peer/localip_run.h"
#include "peer/datachan.h"
#include "peer/natpeer_config.h"
#include "peer/natpeer_log.h"
#include "peer/natpeer_netcheck_run.h"
#include "peer/netcheck.h"
#include "peer/portmap/extip.h"
#include "peer/portmap/portmap_run.h"
#include "peer/portmap/ssdp.h"
#include "peer/punch.h"
#include "peer/spray_run.h"
#include "peer/tcpconn_run.h"
#include "peer/turnc.h"
#include "proto/nat.h"
#include "proto/tcpframe.h"

#define AGENT_MAX_SESSIONS NATPEER_MAX_CHANNELS /* attempts and connections at once (listen) */
#define AGENT_MAX_LISTED 100000    /* peers listing: entries kept */
#define AGENT_FAILED_KEEP_MS 1000  /* a failed attempt stays this long (late checks) */
/* Checks that arrive before their plan (the peer got its plan first) are
 * kept this long, this many, and handed to the session when it starts. */
#define AGENT_EARLY_MAX 8
#define AGENT_EARLY_MS 500
/* connect: wait this long for a UPnP gateway to answer before registering
 * without one (a gateway that answered is waited for). */
#define AGENT_UPNP_GRACE_MS 250
/* connect: register transactions without any reply before giving up (the
 * client retries after its backoff). One is lost whole with 2.2e-3 at 20%
 * loss each way, two with 4.7e-6 (as connect_tries in peer/client.h). A
 * refusal (an error reply) still fails at once. */
#define AGENT_CONNECT_REGISTER_TRIES 2
/* The peers' own handshake (Noise IK, the connector initiates) over the
 * punched path: the initiation again at 200, 600, 1400, 2400, ... ms (every
 * second from then), given up this long after the path was found. 10 tries
 * in 8 s: at 20% loss each way all round trips fail with 0.36^10 = 3.7e-5. */
#define AGENT_HS_RTO_MS 200
#define AGENT_HS_RTO_MAX_MS 1000
#define AGENT_HS_TIMEOUT_MS 8000
/* Mixed into every peer-to-peer handshake with the session id: a handshake
 * for one session (or with a broker) never passes for another. */
#define AGENT_PEER_PROLOGUE "natbroker v2 peer "
/* A relay attempt's own deadline, from when it starts (after the direct
 * attempt's, for a fallback): allocate, tell the other side, check. */
#define AGENT_RELAY_MS 10000
/* Through the relay the first handshake initiation may beat the allocating
 * side's permission or its hearing our first check: the first resend comes
 * sooner than on a punched path. */
#define AGENT_HS_RELAY_RTO_MS 50
/* connect: wait at most this long for the second family's NAT tests and
 * registration before asking for the plan without it. The tests take two
 * round trips and a timeout of the filtering tests (netcheck.h), the
 * registration one handshake and one request. */
#define AGENT_F2_WAIT_MS 3000

_Static_assert(NATPEER_MAX_DATAGRAM == NB_DC_MAX_PAYLOAD, "natpeer.h's datagram size");
_Static_assert(NATPEER_KEY_LEN == NB_KEY_LEN && NATPEER_KEY_TEXT_LEN == NB_KEY_TEXT_LEN, "key sizes");
_Static_assert(NATPEER_ID_MAX == NB_CTRL_ID_MAX && NATPEER_TOKEN_MAX == NB_CTRL_TOKEN_MAX, "name sizes");

enum mode {
	MODE_NONE = 0,
	MODE_LISTEN,
	MODE_CONNECT,
	MODE_PEERS,
	MODE_MATRIX,
	MODE_NETCHECK,  /* natpeer_netcheck: peer/natpeer_netcheck_run.c does it */
	MODE_MAP,       /* natpeer_map: the same */
};

enum phase {
	PH_NETCHECK = 0, /* NAT behaviour tests on the shared socket + a temporary one */
	PH_REGISTER,     /* waiting for the first `registered` */
	PH_CONNECT,      /* connect: waiting for the plan */
	PH_RUN,          /* listen: registered; connect: punching or connected */
	PH_PEERS,        /* peers: listing */
};

struct session {
	bool used;
	struct nb_ctrl_plan plan;
	uint8_t peer_key[NB_KEY_LEN];   /* the plan's peer_key: who must answer */
	char peer_key_text[NB_KEY_TEXT_LEN + 1];
	struct nb_punch pu;
	bool reported;   /* the outcome was printed and sent to the broker */
	bool connected;  /* punched and shaken hands: dc is set up */
	bool confirmed;  /* an authenticated frame came from the peer */
	/* The peers' Noise IK handshake over the punched path. */
	bool initiator;  /* we connect: we initiate */
	struct nb_noise_hs hs;
	bool hs_busy;    /* an initiation of ours is out, not yet answered */
	uint8_t hs_init[NB_NOISE_INIT_MIN];
	size_t hs_init_len;
	uint32_t hs_rto;
	uint64_t hs_next, hs_give_up;
	uint8_t hs_eph[32];             /* responder: the initiation we answered last */
	uint8_t hs_resp[NB_NOISE_RESP_MIN];
	size_t hs_resp_len;
	uint32_t hs_ctr;
	bool dc_set;
	struct nb_dc dc;
	/* The relay (docs/protocol.md "Relay"). */
	enum {
		REL_NONE = 0,     /* direct (or no relay in the plan) */
		REL_WAIT_ALLOC,   /* we allocate: waiting for the allocation */
		REL_WAIT_RELAYED, /* the other side allocates: waiting for its address */
		REL_RUN,          /* checks over the relay */
	} relay;
	bool have_relayed;        /* the other side's relayed address arrived */
	uint64_t relay_dial_at;   /* waiting: dial the relayed address then (plan delay) */
	struct nb_addr relayed;   /* that address, or ours once allocated */
	uint64_t relay_give_up;
	char pkey[NB_PUNCH_KEY_LEN + 1]; /* the checks' key, for the relay's checks */
	uint64_t plan_at; /* when the plan arrived */
	uint64_t t0;      /* "ms" in the event line counts from here */
	uint64_t free_at; /* failed: forget it then */
	/* Birthday, the spraying side: its sockets for the attempt; once one
	 * has won (pu.remote_sock), the session's datagrams go through it. */
	struct nb_spray *sp;
	bool sp_kept;
	uint32_t bd_sent; /* the probing side: probes of the birthday attempt */
};

struct out_chunk {
	struct out_chunk *next;
	size_t len, off;
	char data[];
};

/* One row of a listing: a peer (peers) or a pair (matrix). */
struct peer_row {
	union {
		struct nb_ctrl_peer_info info;
		struct nb_ctrl_pair pair;
	};
};

/* One TURN allocation of ours (RFC 8656): a relayed address of one
 * family, shared by the sessions that relay through it; over UDP on the
 * main socket, or over TCP. Two allocations never share a 5-tuple (the
 * server would refuse the second with 437): the second one to the same
 * server over UDP goes over TCP. */
struct talloc {
	struct natpeer *a;
	uint8_t fam;                 /* enum nb_fam of the relayed address (its index in tr[]) */
	bool on;
	struct nb_turnc turn;
	struct nb_ctrl_relay cfg;    /* from the plan (or registered) that started it */
	bool tcp;
	struct nb_tcpconn tconn;
	bool tconn_open;
	bool said;                   /* "relay: allocated ..." printed */
	bool advance;                /* allocated in advance (registered's credentials) */
	bool told;                   /* its relayed address is registered */
};

struct natpeer {
	const struct natpeer_config *o; /* &cfg */
	struct natpeer_config cfg;
	natpeer_callbacks cb;           /* cfg's; all NULL once closing */
	void *cb_arg;
	enum mode mode;
	uv_loop_t *loop;                /* the application's, or own_loop */
	uv_loop_t *own_loop;            /* natpeer_create_pump() */
	struct nb_lib_log log;          /* the cores' nb_log lines go here */
	struct nb_npnc *npnc;           /* netcheck, map: running (holds a ref) */
	bool started;
	bool stop_req;                  /* natpeer_stop(): shut down from the loop */
	bool free_req;                  /* natpeer_close(): free once refs is 0 */
	unsigned refs;                  /* handles closing, and jobs, that point at us */
	uv_idle_t *reaper;              /* frees us an iteration after the last close */
	struct nb_udp sock, filt;
	bool sock_open, filt_open;
	uv_timer_t timer;
	/* Data frames are queued (nb_udp_queue) and sent in one sendmmsg at
	 * the end of the loop iteration: started when one is queued. */
	uv_check_t flusher;
	bool flush_armed;
	enum phase phase;
	struct nb_addr local; /* the local candidate: IP toward the broker, socket port */
	char broker_str[NB_ADDR_STRLEN];

	struct nb_netcheck nc;
	struct nb_netcheck_result nat;
	struct nb_client client;
	struct session s[AGENT_MAX_SESSIONS];
	struct {
		uint64_t at; /* 0: empty */
		struct nb_addr from;
		size_t len;
		uint8_t b[NB_STUN_MAX_MSG];
	} early[AGENT_EARLY_MAX];
	size_t early_next;
	uint64_t connect_sent_at;
	bool event_printed; /* connect: the one event (connected or failed) is out */
	bool ever_registered;
	unsigned register_unanswered; /* connect: register transactions that got no reply */

	/* The UPnP port mapping (NULL: --no-upnp, or it could not start). */
	struct nb_portmap *pm;
	bool reg_sent;                 /* the first register is out */
	bool reflexive_given;          /* the portmap has the reflexive address */
	struct nb_ctrl_register reg;   /* what was last registered */

	/* natpeer_finish(): stop once results are acknowledged (or at
	 * end_by), and once every connected peer confirmed. */
	bool ending;
	uint64_t end_by;
	bool stopping;

	/* peers listing */
	struct peer_row *rows;
	size_t n_rows, cap_rows;

	uint8_t frame[NB_DC_MAX_DATAGRAM];
	uint8_t plain[NB_DC_MAX_DATAGRAM];

	/* The sealed channel to the broker, once its key is known. */
	struct nb_blink bl;
	bool bl_on;
	uint8_t broker_key[NB_KEY_LEN];
	char broker_name[NB_KNOWN_NAME_MAX + 1]; /* "@ip:port": its known-peers entry */
	bool no_key_told;              /* the broker never told its key: said so */
	uint8_t idx_seed[16];
	uint64_t idx_ctr;
	struct nb_known known; /* the known-peers file as read at start */
	bool broker_key_known;  /* a->broker_key was pinned or given at start */

	/* The other IP family (docs/protocol.md "IPv6"): the broker's
	 * `registered` named its address there (alt). One more socket, bound
	 * to that family alone (no v4-mapped addresses: one plain address type
	 * per socket, and each family's NAT tested on its own socket), with
	 * its own NAT tests, sealed session with the broker and registration
	 * ("also"). Candidates of that family in a plan go out of its socket;
	 * what it receives from peers goes where the main socket's goes. */
	struct {
		enum {
			F2_OFF = 0, /* not started (no alt, or --one-family) */
			F2_NETCHECK, /* its NAT tests */
			F2_WAIT,     /* tested; waiting for the first family's registration */
			F2_REGISTER, /* registering "also" */
			F2_UP,       /* registered: plans may use it */
			F2_DOWN,     /* given up (said why) */
		} st;
		struct nb_udp sock, filt;
		bool open, filt_open;
		struct nb_addr broker, local;
		char broker_str[NB_ADDR_STRLEN];
		const char *name; /* "IPv6" or "IPv4" */
		bool bl_init;     /* bl set up (f2_register) */
		struct nb_netcheck nc;
		struct nb_netcheck_result nat;
		struct nb_blink bl;
		struct nb_client client;
		bool told_registered;
	} f2;
	/* The IPv6 firewall pinhole for the IPv6 socket (pin6_*). */
	struct {
		struct nb_portmap *pm;      /* NULL: none (yet, or any more) */
		bool tried;                 /* started once, never again */
		bool f2;                    /* for f2's socket, else the main one */
		bool refl_given;            /* the portmap has the reflexive address */
		bool asked;                 /* a verify of its is in flight */
		enum nb_portmap_state told; /* the state last printed */
	} pin6;
	bool connect_due;      /* connect: registered; the connect goes out when f2 settles */
	uint64_t connect_due_by;

	/* The broker over TCP: UDP got no answer (docs/protocol.md "Over TCP"). */
	bool broker_tcp;
	struct nb_tcpconn bconn;

	/* Our TURN allocations (RFC 8656), one per family of relayed
	 * address: tr[NB_FAM_V4], tr[NB_FAM_V6] (struct talloc). */
	struct talloc tr[NB_FAM_COUNT];
	bool relayed_update;            /* the register in flight tells it (an update, not a loss) */
	uint8_t turn_buf[NB_TURNC_OUT_MAX + 64];

	/* The datagram being handled came in on a spraying socket: replies to
	 * its source go out through that socket. */
	struct {
		bool on;
		const struct session *s;
		uint32_t idx;
		struct nb_addr from;
	} rx;
};

static void pump(struct natpeer *a);
static void shutdown_agent(struct natpeer *a, int code);
static void dispatch(struct natpeer *a, const uint8_t *data, size_t len, const struct nb_addr *from,
		     uint64_t now);
static void send_register(struct natpeer *a, uint64_t now);
static void blink_up(struct natpeer *a, bool key_known, uint64_t now);

static void on_timer(uv_timer_t *t);
static void unref(struct natpeer *a);

/* ---- Reporting: the application's callbacks -------------------------------- */

/* One line for the log callback (a trailing newline is dropped). */
static void say(struct natpeer *a, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(struct natpeer *a, int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (a->cb.log == NULL)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	n = (int)strnlen(line, sizeof(line));
	if (n > 0 && line[n - 1] == '\n')
		line[n - 1] = '\0';
	a->cb.log(a->cb_arg, level, line);
}

/* The cores' nb_log lines (peer/natpeer_log.h). */
static void on_core_log(void *arg, int level, const char *line)
{
	struct natpeer *a = arg;

	if (a->cb.log != NULL)
		a->cb.log(a->cb_arg, level, line);
}

static void ev_failed(struct natpeer *a, const char *peer, const char *reason)
{
	if (a->cb.failed != NULL)
		a->cb.failed(a->cb_arg, peer, reason);
}

/* connect: `failed`, for a failure before or during the attempt (or of
 * the broker's link after it: the application may ignore that one). */
static void connect_failed(struct natpeer *a, const char *reason)
{
	ev_failed(a, a->o->peer, reason);
	a->event_printed = true;
}

/* ---- Known peers ---------------------------------------------------------- */

/* The key known for name: 1 and *ret, or 0 when unknown. */
static int known_get(const struct natpeer *a, const char *name, uint8_t ret[NB_KEY_LEN])
{
	const uint8_t *k = nb_known_lookup(&a->known, name);

	if (k == NULL)
		return 0;
	memcpy(ret, k, NB_KEY_LEN);
	return 1;
}

/* Recording a name's key in the file happens in the thread pool (a locked
 * read-modify-write with fsync), never on the loop thread. */
struct known_job {
	uv_work_t w;
	struct natpeer *a; /* holds a ref */
	char path[4096];
	char name[NB_KNOWN_NAME_MAX + 1];
	uint8_t key[NB_KEY_LEN];
	int rc;
	char err[256];
};

static void known_job_run(uv_work_t *w)
{
	struct known_job *j = w->data;

	j->rc = nb_known_update(j->path, j->name, j->key, NULL, j->err, sizeof(j->err));
}

static void known_job_done(uv_work_t *w, int status)
{
	struct known_job *j = w->data;
	struct natpeer *a = j->a;

	if (status == 0 && j->rc != 0)
		say(a, NATPEER_LOG_ERROR, "natpeer: known peers: %s", j->err);
	OPENSSL_cleanse(j->key, sizeof(j->key));
	free(j);
	unref(a);
}

/* name = key in memory at once, and in the file soon. */
static void known_record(struct natpeer *a, const char *name, const uint8_t key[NB_KEY_LEN])
{
	struct known_job *j;

	if (nb_known_set(&a->known, name, key) != 0)
		nb_log_warn("agent", "known peers: cannot add %s (full?)", name);
	if (a->o->known_path[0] == '\0' || (j = calloc(1, sizeof(*j))) == NULL)
		return;
	snprintf(j->path, sizeof(j->path), "%s", a->o->known_path);
	snprintf(j->name, sizeof(j->name), "%s", name);
	memcpy(j->key, key, NB_KEY_LEN);
	j->w.data = j;
	j->a = a;
	if (uv_queue_work(a->loop, &j->w, known_job_run, known_job_done) != 0)
		free(j);
	else
		a->refs++;
}
/* ---- Sending -------------------------------------------------------------- */

/* ---- The relay: our TURN allocation ------------------------------------------ */

/* One message for the TURN server, over the main socket or the TCP link. */
static void turn_out(struct natpeer *a, struct talloc *t, const uint8_t *b, size_t len)
{
	if (t->tcp)
		(void)nb_tcpconn_send(&t->tconn, b, len);
	else
		(void)nb_udp_send(&a->sock, b, len, &t->turn.cfg.server);
}

static bool talloc_live(const struct talloc *t)
{
	return t->on && nb_turnc_state(&t->turn) != NB_TURNC_FAILED && nb_turnc_state(&t->turn) != NB_TURNC_CLOSED;
}

/* The allocation a relaying session uses: of the family its plan names. */
static struct talloc *sess_talloc(struct natpeer *a, const struct session *s)
{
	return &a->tr[s->plan.relay.family == 6 ? NB_FAM_V6 : NB_FAM_V4];
}

/* Does traffic to `to` go through an allocation? Yes for every address
 * whose IP we asked a permission for (the peers we relay with), on the
 * allocation of its family. */
static bool relay_routes(const struct natpeer *a, const struct nb_addr *to)
{
	const struct talloc *t = &a->tr[nb_addr_fam(to)];

	if (!t->on || nb_turnc_state(&t->turn) != NB_TURNC_ALLOCATED)
		return false;
	for (size_t i = 0; i < t->turn.n_peers; i++)
		if (nb_addr_ip_equal(&t->turn.peers[i].addr, to))
			return true;
	return false;
}

/* A live relayed session checks or talks to `p`. */
static bool relay_peer_in_use(const struct natpeer *a, const struct nb_addr *p)
{
	for (int i = 0; i < AGENT_MAX_SESSIONS; i++) {
		const struct session *s = &a->s[i];
		if (!s->used || s->relay == REL_NONE)
			continue;
		if (nb_addr_equal(&s->pu.remote, p) || nb_addr_equal(&s->relayed, p))
			return true;
		for (size_t k = 0; k < s->plan.n_candidates; k++)
			if (nb_addr_equal(&s->plan.candidates[k], p))
				return true;
	}
	return false;
}

/* A permission (and channel) on allocation t for `peer`; when the table
 * is full, the peers of sessions that are gone make room first. */
static int relay_permit(struct natpeer *a, struct talloc *t, const struct nb_addr *peer, uint64_t now)
{
	int rc = nb_turnc_permit(&t->turn, peer, now);

	if (rc != -ENOSPC)
		return rc;
	for (size_t i = t->turn.n_peers; i-- > 0;) {
		struct nb_addr x = t->turn.peers[i].addr;
		if (!relay_peer_in_use(a, &x))
			(void)nb_turnc_forget(&t->turn, &x);
	}
	rc = nb_turnc_permit(&t->turn, peer, now);
	if (rc == -ENOSPC)
		nb_log_info("agent", "relay: %d peers at once on our allocation, the most it takes: one more "
				     "waits for a session to end", NB_TURNC_MAX_PEERS);
	return rc;
}

/* t has a permission entry (and a channel, once bound) for exactly `p`. */
static bool relay_peer_known(const struct talloc *t, const struct nb_addr *p)
{
	for (size_t i = 0; i < t->turn.n_peers; i++)
		if (nb_addr_equal(&t->turn.peers[i].addr, p))
			return true;
	return false;
}

/* A datagram for a peer, through the relay: ChannelData or a Send
 * indication. Until its permission is granted it is dropped (the checks
 * and the handshake retransmit). */
static void relay_send(struct natpeer *a, const uint8_t *b, size_t len, const struct nb_addr *to)
{
	struct talloc *t = &a->tr[nb_addr_fam(to)];
	ssize_t n = nb_turnc_send(&t->turn, to, b, len, a->turn_buf, sizeof(a->turn_buf));

	if (n == -ENOENT) {
		(void)relay_permit(a, t, to, nb_now_ms());
		return;
	}
	if (n > 0)
		turn_out(a, t, a->turn_buf, (size_t)n);
	/* Sent as a Send indication under another port's permission (a
	 * peer-reflexive address: a symmetric NAT gave the peer a new port
	 * towards our relay). Bind a channel to this exact address too, so
	 * that the data goes as ChannelData: 4 bytes of overhead instead of
	 * 36-48, and outside the broker's per-source request limit. */
	if (n > 0 && !relay_peer_known(t, to) && t->turn.n_peers < NB_TURNC_MAX_PEERS)
		(void)relay_permit(a, t, to, nb_now_ms());
}

/* One message from the TURN server of t: a response, or relayed data from
 * a peer (handled as if it came from that peer). */
static void turn_input(struct natpeer *a, struct talloc *t, const uint8_t *data, size_t len, uint64_t now)
{
	struct nb_turnc_rx rx;
	int rc = nb_turnc_input(&t->turn, data, len, now, &rx);

	if (rc == 0 && rx.kind == NB_TURNC_RX_DATA && rx.len > 0)
		dispatch(a, rx.data, rx.len, &rx.from, now);
	else if (rc < 0 && nb_log_get_level() >= NB_LOG_DEBUG)
		nb_log_debug("agent", "from the relay: dropped: %s", nb_turnc_drop_name(rc));
}

static void on_tconn_frame(struct nb_tcpconn *c, enum nb_tcpf_kind kind, const uint8_t *bytes,
			   size_t len, void *arg)
{
	struct talloc *t = arg;
	struct natpeer *a = t->a;

	(void)c;
	if (kind != NB_TCPF_DATAGRAM && !a->stopping) {
		turn_input(a, t, bytes, len, nb_now_ms());
		pump(a);
	}
}

static void on_tconn_state(struct nb_tcpconn *c, int status, void *arg)
{
	struct talloc *t = arg;
	struct natpeer *a = t->a;
	char s[NB_ADDR_STRLEN];

	if (status != 0 && !a->stopping)
		say(a, NATPEER_LOG_INFO, "relay: the TCP connection to %s failed: %s\n",
			nb_addr_format(&c->peer, s, sizeof(s)), uv_strerror(status));
}

/* Allocate on the relay of t->cfg (once: later sessions share it). Over
 * TCP when our network blocks UDP; over UDP otherwise, moving to TCP if
 * UDP gets no answer. */
static void turn_begin(struct natpeer *a, struct talloc *t, bool tcp, uint64_t now)
{
	struct nb_turnc_config tc;
	uint8_t seed[16];
	char srv[NB_ADDR_STRLEN];

	memset(&tc, 0, sizeof(tc));
	tc.server = t->cfg.server;
	snprintf(tc.username, sizeof(tc.username), "%s", t->cfg.user);
	snprintf(tc.password, sizeof(tc.password), "%s", t->cfg.pass);
	tc.lifetime_s = 600;
	tc.tcp = tcp;
	tc.timeout_ms = tcp ? 6000 : 3000;
	tc.family = t->fam == NB_FAM_V6 ? NB_AF_INET6 : NB_AF_NONE;
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		memcpy(seed, a->idx_seed, sizeof(seed));
	if (t->tconn_open) {
		nb_tcpconn_close(&t->tconn);
		t->tconn_open = false;
	}
	nb_turnc_init(&t->turn, &tc, seed, now);
	OPENSSL_cleanse(&tc, sizeof(tc));
	t->on = true;
	t->tcp = tcp;
	if (tcp) {
		int rc = nb_tcpconn_open(&t->tconn, a->loop, &t->cfg.server, on_tconn_frame, on_tconn_state, t);
		t->tconn_open = rc == 0;
		if (rc != 0)
			say(a, NATPEER_LOG_INFO, "relay: cannot connect over TCP: %s\n", uv_strerror(rc));
	}
	say(a, NATPEER_LOG_INFO, "relay: allocating an IPv%c address on %s over %s...\n", t->fam == NB_FAM_V6 ? '6' : '4',
		nb_addr_format(&t->cfg.server, srv, sizeof(srv)), tcp ? "TCP" : "UDP");
}

/* The allocation for relay r (a plan's or a registered's): started now
 * unless one of that family is alive. Returns it. */
static struct talloc *turn_start(struct natpeer *a, const struct nb_ctrl_relay *r, uint64_t now)
{
	struct talloc *t = &a->tr[r->family == 6 ? NB_FAM_V6 : NB_FAM_V4];
	const struct talloc *o = &a->tr[r->family == 6 ? NB_FAM_V4 : NB_FAM_V6];
	bool tcp = a->nat.udp_blocked;

	if (talloc_live(t))
		return t; /* one allocation serves every session */
	/* The other family's over UDP to this server has our 5-tuple. */
	if (talloc_live(o) && !o->tcp && nb_addr_equal(&o->turn.cfg.server, &r->server))
		tcp = true;
	t->cfg = *r;
	t->said = false;
	turn_begin(a, t, tcp, now);
	return t;
}

/* The allocations' requests and refreshes; UDP without an answer: TCP. */
static void turn_pump(struct natpeer *a, uint64_t now)
{
	struct nb_turnc_tx tx;

	for (int f = 0; f < NB_FAM_COUNT; f++) {
		struct talloc *t = &a->tr[f];
		if (!t->on)
			continue;
		while (nb_turnc_poll(&t->turn, now, &tx) == 1)
			turn_out(a, t, tx.bytes, tx.len);
		if (nb_turnc_state(&t->turn) == NB_TURNC_FAILED && !t->tcp &&
		    strstr(nb_turnc_reason(&t->turn), "no answer") != NULL) {
			say(a, NATPEER_LOG_INFO, "relay: no answer over UDP; trying TCP\n");
			turn_begin(a, t, true, now);
			while (nb_turnc_poll(&t->turn, now, &tx) == 1)
				turn_out(a, t, tx.bytes, tx.len);
		}
		if (t->advance && !t->told && a->reg_sent && nb_turnc_state(&t->turn) == NB_TURNC_ALLOCATED) {
			/* The broker puts it in the other side's plans: their
			 * checks and handshake start as soon as they have the
			 * plan. */
			t->told = true;
			a->relayed_update = true;
			a->reg.has_relayed = true;
			a->reg.relayed = *nb_turnc_relayed(&t->turn);
			send_register(a, now);
		}
		if (!t->said && nb_turnc_state(&t->turn) == NB_TURNC_ALLOCATED) {
			char r[NB_ADDR_STRLEN], m[NB_ADDR_STRLEN] = "?";
			t->said = true;
			if (nb_turnc_mapped(&t->turn) != NULL)
				nb_addr_format(nb_turnc_mapped(&t->turn), m, sizeof(m));
			say(a, NATPEER_LOG_INFO, "relay: allocated %s (%s, %u s; the relay sees us at %s)\n",
				nb_addr_format(nb_turnc_relayed(&t->turn), r, sizeof(r)), t->tcp ? "TCP" : "UDP",
				nb_turnc_lifetime(&t->turn), m);
		}
		if (nb_turnc_state(&t->turn) == NB_TURNC_FAILED && !t->said) {
			t->said = true;
			say(a, NATPEER_LOG_INFO, "relay: %s\n", nb_turnc_reason(&t->turn));
		}
	}
}

/* ---- The broker over TCP -------------------------------------------------------- */

static void on_bconn_frame(struct nb_tcpconn *t, enum nb_tcpf_kind kind, const uint8_t *bytes,
			   size_t len, void *arg)
{
	struct natpeer *a = arg;

	(void)t;
	if (kind == NB_TCPF_DATAGRAM && !a->stopping) {
		dispatch(a, bytes + NB_TCPF_HDR, len - NB_TCPF_HDR, &a->o->broker, nb_now_ms());
		pump(a);
	}
}

static void connect_failed(struct natpeer *a, const char *reason);

static void on_bconn_state(struct nb_tcpconn *t, int status, void *arg)
{
	struct natpeer *a = arg;
	char why[256];

	(void)t;
	if (a->stopping)
		return;
	if (status == 0) {
		say(a, NATPEER_LOG_INFO, "broker: connected over TCP to %s\n", a->broker_str);
		return;
	}
	snprintf(why, sizeof(why), "the TCP connection to the broker at %s failed: %s", a->broker_str,
		 uv_strerror(status));
	if (a->mode == MODE_CONNECT) {
		connect_failed(a, why);
		pump(a);
	} else {
		say(a, NATPEER_LOG_INFO, "natpeer: %s\n", why);
		shutdown_agent(a, NATPEER_E_BROKER);
	}
}

/* Birthday: datagrams to `to` that go out through a spraying socket: a
 * reply to a datagram that came in on one, or a session's, once a socket
 * has won. true when sent (or dropped) there. */
static bool spray_routes(struct natpeer *a, const uint8_t *b, size_t len, const struct nb_addr *to)
{
	if (a->rx.on && a->rx.s->sp != NULL && nb_addr_equal(to, &a->rx.from)) {
		(void)nb_spray_send(a->rx.s->sp, a->rx.idx, b, len, to);
		return true;
	}
	for (int i = 0; i < AGENT_MAX_SESSIONS; i++) {
		const struct session *s = &a->s[i];
		if (s->used && s->sp != NULL && s->sp_kept && nb_addr_equal(&s->pu.remote, to)) {
			(void)nb_spray_send(s->sp, s->pu.remote_sock, b, len, to);
			return true;
		}
	}
	return false;
}

static void on_flush(uv_check_t *h)
{
	struct natpeer *a = h->data;

	uv_check_stop(h);
	a->flush_armed = false;
	nb_udp_flush(&a->sock);
	if (a->f2.open)
		nb_udp_flush(&a->f2.sock);
}

/* queue: a data frame, sent with the others of this loop iteration. */
static void send_to_q(struct natpeer *a, const uint8_t *b, size_t len, const struct nb_addr *to, bool queue)
{
	struct nb_udp *u;
	int rc;

	if (spray_routes(a, b, len, to))
		return;
	if (a->broker_tcp && nb_addr_equal(to, &a->o->broker)) {
		(void)nb_tcpconn_send_dgram(&a->bconn, b, len);
		return;
	}
	if (relay_routes(a, to)) {
		relay_send(a, b, len, to);
		return;
	}
	u = a->f2.open && to->family == a->f2.broker.family ? &a->f2.sock : &a->sock;
	if (queue && !a->stopping) {
		rc = nb_udp_queue(u, b, len, to);
		if (!a->flush_armed) {
			a->flush_armed = true;
			uv_check_start(&a->flusher, on_flush);
		}
	} else {
		rc = nb_udp_send(u, b, len, to);
	}

	if (rc != 0) {
		char s[NB_ADDR_STRLEN];
		nb_log_debug("agent", "send to %s: %s", nb_addr_format(to, s, sizeof(s)), uv_strerror(rc));
	}
}

static void send_to(struct natpeer *a, const uint8_t *b, size_t len, const struct nb_addr *to)
{
	send_to_q(a, b, len, to, false);
}

static void send_frame(struct natpeer *a, struct session *s, const uint8_t *payload, size_t n,
		       uint64_t now)
{
	ssize_t len = nb_dc_seal(&s->dc, payload, n, a->frame, sizeof(a->frame), now);

	if (len > 0)
		send_to_q(a, a->frame, (size_t)len, &s->pu.remote, true);
}

/* ---- Sessions --------------------------------------------------------------- */

static void session_free(struct session *s);
static void session_end(struct natpeer *a, struct session *s);
static void session_fail(struct natpeer *a, struct session *s, const char *reason, uint64_t now);
static void relay_begin(struct natpeer *a, struct session *s, uint64_t now);

static struct session *session_new(struct natpeer *a, const char *peer)
{
	struct session *free_slot = NULL;

	/* The same peer again: an attempt of it not yet connected gives way
	 * to the new plan; a connected one stays (see session_secured()). */
	for (int i = 0; i < AGENT_MAX_SESSIONS; i++)
		if (a->s[i].used && !a->s[i].connected && strcmp(a->s[i].plan.peer, peer) == 0)
			return &a->s[i];
	for (int i = 0; i < AGENT_MAX_SESSIONS && free_slot == NULL; i++)
		if (!a->s[i].used)
			free_slot = &a->s[i];
	return free_slot;
}

/* A birthday attempt's figures, our side's: the sockets we sprayed from,
 * or the probes we sent and at what rate; and the winning port. */
static void bday_figures(const struct session *s, struct nb_ctrl_birthday *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (s->plan.path != NB_PATH_BIRTHDAY)
		return;
	if (s->plan.role == NB_ROLE_SPRAY) {
		ret->sockets = s->plan.birthday.sockets;
	} else {
		ret->probes = s->bd_sent;
		ret->rate = s->plan.birthday.rate;
	}
	if (nb_punch_state(&s->pu) == NB_PUNCH_CONNECTED && s->relay == REL_NONE)
		ret->port = s->pu.bd.port;
	ret->has = ret->sockets != 0 || ret->probes != 0 || ret->rate != 0 || ret->port != 0;
}

/* What worked: a private, link-local or loopback remote is the LAN; a
 * public one is the plan's path (a "lan" plan that worked over public
 * addresses went direct, through a hairpinning NAT). */
static enum nb_path path_of(const struct session *s)
{
	const struct nb_addr *r = &s->pu.remote;

	if (s->relay == REL_RUN)
		return NB_PATH_RELAY;
	if (nb_addr_is_private(r) || nb_addr_is_link_local(r) || nb_addr_is_loopback(r))
		return NB_PATH_LAN;
	if (s->plan.path == NB_PATH_LAN || s->plan.path == NB_PATH_NONE || s->plan.path == NB_PATH_RELAY)
		return NB_PATH_DIRECT;
	return s->plan.path;
}

static void ev_connected(struct natpeer *a, const struct session *s, uint64_t ms)
{
	char remote[NB_ADDR_STRLEN], rel[NB_ADDR_STRLEN];
	struct nb_ctrl_birthday b;
	natpeer_conn_info ci;

	if (a->cb.connected == NULL)
		return;
	bday_figures(s, &b);
	memset(&ci, 0, sizeof(ci));
	ci.channel = (uint32_t)(s - a->s);
	ci.peer = s->plan.peer;
	ci.key = s->peer_key;
	ci.key_text = s->peer_key_text;
	ci.path = nb_path_to_string(path_of(s));
	ci.family = s->pu.remote.family == NB_AF_INET6 ? 6 : 4;
	ci.remote = nb_addr_format(&s->pu.remote, remote, sizeof(remote));
	if (s->relay == REL_RUN)
		ci.relay = nb_addr_format(&s->relayed, rel, sizeof(rel));
	ci.ms = ms;
	ci.birthday = b.has;
	ci.birthday_spray = b.has && s->plan.role == NB_ROLE_SPRAY;
	ci.sockets = b.sockets;
	ci.socket = b.sockets != 0 ? s->pu.remote_sock : 0;
	ci.probes = b.probes;
	ci.rate = b.rate;
	ci.port = b.port;
	a->cb.connected(a->cb_arg, &ci);
}

static void ev_lost(struct natpeer *a, const struct session *s)
{
	char remote[NB_ADDR_STRLEN];

	if (a->cb.lost != NULL)
		a->cb.lost(a->cb_arg, (uint32_t)(s - a->s), s->plan.peer,
			   nb_addr_format(&s->pu.remote, remote, sizeof(remote)));
}

static void report_result(struct natpeer *a, struct session *s, bool ok, const char *reason,
			  uint64_t now)
{
	struct nb_ctrl_result r;
	int rc;

	memset(&r, 0, sizeof(r));
	memcpy(r.session, s->plan.session, sizeof(r.session));
	memcpy(r.id, a->o->id, sizeof(r.id));
	r.outcome = ok ? NB_CTRL_OUTCOME_CONNECTED : NB_CTRL_OUTCOME_FAILED;
	r.path = ok ? path_of(s) : NB_PATH_NONE;
	r.has_remote = ok;
	if (ok)
		r.remote = s->pu.remote;
	r.ms = (uint32_t)(now - s->plan_at);
	snprintf(r.reason, sizeof(r.reason), "%s", reason);
	bday_figures(s, &r.birthday);
	rc = nb_client_result(&a->client, &r, now);
	if (rc != 0)
		nb_log_warn("agent", "result for session %s not sent: %s", s->plan.session, strerror(-rc));
}

/* May we talk to this peer? connect: --peer-key, else the known-peers file
 * (trust on first use, as ssh does); listen: --allow. NULL if so, else why
 * not (in buf). */
static const char *peer_refused(struct natpeer *a, const char *name, const uint8_t key[NB_KEY_LEN],
				const char *key_text, char *buf, size_t len)
{
	if (a->mode == MODE_CONNECT) {
		char want[NB_KEY_TEXT_LEN + 1];
		uint8_t known[NB_KEY_LEN];
		if (a->o->has_peer_key) {
			if (nb_key_equal(a->o->peer_key, key))
				return NULL;
			nb_key_to_text(a->o->peer_key, want);
			snprintf(buf, len, "key for %s is not the one demanded: expected %s, got %s", name,
				 want, key_text);
			return buf;
		}
		if (known_get(a, name, known) == 1 && !nb_key_equal(known, key)) {
			nb_key_to_text(known, want);
			snprintf(buf, len, "key for %s changed: expected %s, got %s; `natpeer forget %s` if "
				 "this is expected", name, want, key_text, name);
			OPENSSL_cleanse(known, sizeof(known));
			return buf;
		}
		return NULL;
	}
	if (a->o->n_allow == 0)
		return NULL;
	for (size_t i = 0; i < a->o->n_allow; i++)
		if (strcmp(a->o->allow[i], name) == 0 || strcmp(a->o->allow[i], key_text) == 0)
			return NULL;
	snprintf(buf, len, "%s (key %s) is not on --allow", name, key_text);
	return buf;
}

static void on_spray_recv(struct nb_spray *sp, uint32_t idx, const uint8_t *data, size_t len,
			  const struct nb_addr *from, void *arg);

/* Birthday: our caps on the plan's budget, and the spraying side's
 * sockets. A set that cannot open leaves 0 sockets (the attempt fails at
 * once, and falls back to the relay) and says why in why[]. */
static void bday_prepare(struct natpeer *a, struct session *s, char *why, size_t why_len)
{
	struct nb_ctrl_birthday *b = &s->plan.birthday;
	char ip[NB_ADDR_STRLEN];

	if (s->plan.role == NB_ROLE_PROBE) {
		if (a->o->bday_rate != 0 && a->o->bday_rate < b->rate)
			b->rate = a->o->bday_rate;
		for (size_t i = 0; i < s->plan.n_candidates; i++) {
			if (nb_addr_is_private(&s->plan.candidates[i]))
				continue;
			say(a, NATPEER_LOG_INFO, "birthday: probing up to %u ports of %s at %u/s\n", b->probes,
				nb_addr_format_ip(&s->plan.candidates[i], ip, sizeof(ip)), b->rate);
			break;
		}
		return;
	}
	if (s->plan.role != NB_ROLE_SPRAY)
		return;
	if (a->o->bday_sockets != 0 && a->o->bday_sockets < b->sockets)
		b->sockets = a->o->bday_sockets;
	if (nb_spray_open(a->loop, &a->sock.local, b->sockets, on_spray_recv, a, &s->sp, why,
			  why_len) != 0) {
		say(a, NATPEER_LOG_INFO, "natpeer: %s\n", why);
		s->sp = NULL;
		b->sockets = 0;
		return;
	}
	say(a, NATPEER_LOG_INFO, "birthday: spraying from %u sockets toward %s\n", b->sockets,
		s->plan.n_candidates > 0 ? nb_addr_format(&s->plan.candidates[0], ip, sizeof(ip)) : "?");
}

static void session_start(struct natpeer *a, const struct nb_ctrl_plan *plan, uint64_t now)
{
	struct session *s;
	uint8_t seed[NB_STUN_TID_LEN], key[NB_KEY_LEN], dh[NB_KEY_LEN];
	char cands[NB_CTRL_MAX_ADDRS * NB_ADDR_STRLEN] = "", why[NB_CTRL_REASON_MAX + 256];
	char pkey[NB_PUNCH_KEY_LEN + 1], bwhy[NB_CTRL_REASON_MAX + 1] = "";
	const char *refused;
	size_t off = 0;

	for (size_t i = 0; i < plan->n_candidates; i++) {
		char c[NB_ADDR_STRLEN];
		int n = snprintf(cands + off, sizeof(cands) - off, "%s%s", i ? " " : "",
				 nb_addr_format(&plan->candidates[i], c, sizeof(c)));
		if (n > 0)
			off += (size_t)n;
	}
	say(a, NATPEER_LOG_INFO, "plan: %s %s (%s path, key %s), candidates %s%s%s\n",
		nb_role_to_string(plan->role), plan->peer, nb_path_to_string(plan->path), plan->peer_key,
		cands[0] ? cands : "none", plan->reason[0] ? "; " : "", plan->reason);
	if (nb_key_from_text(plan->peer_key, strlen(plan->peer_key), key) != 0) {
		nb_log_warn("agent", "plan for %s: its key is not valid: ignored", plan->peer);
		return;
	}
	refused = peer_refused(a, plan->peer, key, plan->peer_key, why, sizeof(why));
	if (refused != NULL) {
		if (a->mode == MODE_CONNECT) {
			say(a, NATPEER_LOG_INFO, "natpeer: %s\n", refused);
			connect_failed(a, refused);
		} else {
			say(a, NATPEER_LOG_INFO, "natpeer: refused %s\n", refused);
		}
		return;
	}
	/* The same peer again (it restarted, or tries again): the new plan
	 * gets a slot of its own. A live, authenticated session with that
	 * name is left alone until the new one has shaken hands too. */
	s = session_new(a, plan->peer);
	if (s == NULL) {
		nb_log_warn("agent", "too many sessions (%d): plan for %s ignored", AGENT_MAX_SESSIONS,
			    plan->peer);
		return;
	}
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
		nb_log_error("agent", "getrandom: %s", strerror(errno));
		return;
	}
	/* The punch checks' key: from a DH of the two static keys, so only
	 * the two peers know it (never the broker). */
	if (nb_key_dh(a->o->priv, key, dh) != 0 || nb_punch_derive_key(dh, plan->session, pkey) != 0) {
		OPENSSL_cleanse(dh, sizeof(dh));
		nb_log_warn("agent", "plan for %s: no shared key with its key: ignored", plan->peer);
		return;
	}
	OPENSSL_cleanse(dh, sizeof(dh));
	session_end(a, s);
	s->plan = *plan;
	memcpy(s->peer_key, key, sizeof(key));
	memcpy(s->peer_key_text, plan->peer_key, sizeof(s->peer_key_text));
	s->initiator = a->mode == MODE_CONNECT;
	if (a->o->timeout_ms != 0)
		s->plan.deadline_ms = a->o->timeout_ms;
	s->plan_at = now;
	s->t0 = a->mode == MODE_CONNECT ? a->connect_sent_at : now;
	bday_prepare(a, s, bwhy, sizeof(bwhy));
	if (nb_punch_init(&s->pu, NULL, &s->plan, pkey, seed, now) != 0) {
		OPENSSL_cleanse(pkey, sizeof(pkey));
		nb_log_warn("agent", "plan for %s has a bad username: ignored", plan->peer);
		session_free(s);
		return;
	}
	memcpy(s->pkey, pkey, sizeof(s->pkey));
	OPENSSL_cleanse(pkey, sizeof(pkey));
	s->used = true;
	if (bwhy[0] != '\0')
		snprintf(s->pu.reason, sizeof(s->pu.reason), "%s", bwhy);
	if (s->plan.relay.has_relay && !s->plan.relay.alloc && s->plan.relay.has_relayed) {
		s->relayed = s->plan.relay.relayed; /* allocated in advance */
		s->have_relayed = true;
	}
	if (s->plan.path == NB_PATH_RELAY) {
		if (a->o->no_relay || !s->plan.relay.has_relay)
			session_fail(a, s, a->o->no_relay ? "only a relay can connect us, and --no-relay is set"
							  : "only a relay can connect us, and the broker has none",
				     now);
		else
			relay_begin(a, s, now);
		return;
	}
	/* Checks that came before this plan: no need to wait for their
	 * retransmission. The session authenticates them as any other. */
	for (int i = 0; i < AGENT_EARLY_MAX; i++) {
		if (a->early[i].at == 0 || now - a->early[i].at > AGENT_EARLY_MS)
			continue;
		if (nb_punch_input(&s->pu, a->early[i].b, a->early[i].len, &a->early[i].from, now) == 0)
			a->early[i].at = 0;
	}
}

/* A Binding request no session took: keep it a moment (see AGENT_EARLY_MS). */
static void keep_early(struct natpeer *a, const uint8_t *data, size_t len, const struct nb_addr *from,
		       uint64_t now)
{
	size_t i = a->early_next;

	if (len < NB_STUN_HDR_LEN || len > NB_STUN_MAX_MSG || data[0] != 0x00 || data[1] != 0x01)
		return;
	a->early[i].at = now ? now : 1;
	a->early[i].from = *from;
	a->early[i].len = len;
	memcpy(a->early[i].b, data, len);
	a->early_next = (i + 1) % AGENT_EARLY_MAX;
}

/* A session goes: a connected one's channel is closed. */
static void session_end(struct natpeer *a, struct session *s)
{
	bool was = s->used && s->connected;

	session_free(s);
	if (was && a->cb.closed != NULL)
		a->cb.closed(a->cb_arg, (uint32_t)(s - a->s));
}

static void session_free(struct session *s)
{
	nb_spray_close(s->sp);
	s->sp = NULL;
	if (s->dc_set)
		nb_dc_wipe(&s->dc);
	nb_noise_wipe(&s->hs);
	OPENSSL_cleanse(s, sizeof(*s));
}

/* The Noise prologue of a peer-to-peer session: the label and the session
 * id, which both sides have from their plans. */
static size_t peer_prologue(const struct session *s, uint8_t *out)
{
	size_t l = sizeof(AGENT_PEER_PROLOGUE) - 1, n = strnlen(s->plan.session, NB_CTRL_SESSION_LEN);

	memcpy(out, AGENT_PEER_PROLOGUE, l);
	memcpy(out + l, s->plan.session, n);
	return l + n;
}

/* A fresh handshake index of ours. */
static uint32_t new_index(struct natpeer *a)
{
	uint8_t in[24], md[32];
	unsigned int mdlen = 0;

	memcpy(in, a->idx_seed, 16);
	memcpy(in + 16, &a->idx_ctr, 8);
	a->idx_ctr++;
	EVP_Digest(in, sizeof(in), md, &mdlen, EVP_sha256(), NULL);
	return nb_get_u32be(md);
}

/* Initiator: a new handshake with the peer (the first, or a rekey). */
static int hs_start(struct natpeer *a, struct session *s, uint64_t now)
{
	uint8_t pro[64];
	size_t pl = peer_prologue(s, pro);
	ssize_t n;
	int rc;

	rc = nb_noise_init_initiator(&s->hs, a->o->priv, s->peer_key, pro, pl);
	if (rc != 0)
		return rc;
	n = nb_noise_write_init(&s->hs, new_index(a), NULL, 0, s->hs_init, sizeof(s->hs_init));
	if (n < 0) {
		nb_noise_wipe(&s->hs);
		return (int)n;
	}
	s->hs_init_len = (size_t)n;
	s->hs_busy = true;
	s->hs_rto = AGENT_HS_RTO_MS;
	s->hs_next = now;
	return 0;
}

static void session_fail(struct natpeer *a, struct session *s, const char *reason, uint64_t now)
{
	s->reported = true;
	s->hs_busy = false;
	if (a->mode == MODE_CONNECT)
		connect_failed(a, reason);
	else
		ev_failed(a, s->plan.peer, reason);
	report_result(a, s, false, reason, now);
	s->free_at = now + AGENT_FAILED_KEEP_MS;
}

/* The handshake verified: the session is up. */
static void session_secured(struct natpeer *a, struct session *s, uint64_t now)
{
	s->connected = true;
	s->reported = true;
	s->dc.last_rx = now; /* the path was just proven: expiry counts from here */
	/* An older session with the same name gives way only now. */
	for (int i = 0; i < AGENT_MAX_SESSIONS; i++) {
		struct session *x = &a->s[i];
		if (x != s && x->used && x->connected && strcmp(x->plan.peer, s->plan.peer) == 0) {
			nb_log_info("agent", "%s: a new session replaces the old one", s->plan.peer);
			session_end(a, x);
		}
	}
	ev_connected(a, s, now - s->t0);
	if (a->mode == MODE_CONNECT) {
		uint8_t k[NB_KEY_LEN];
		a->event_printed = true;
		if (known_get(a, s->plan.peer, k) == 0) { /* first use: remember it */
			known_record(a, s->plan.peer, s->peer_key);
			say(a, NATPEER_LOG_INFO, "%s: key %s, first use: recorded in %s\n", s->plan.peer,
				s->peer_key_text, a->o->known_path);
		}
	}
	report_result(a, s, true, "", now);
}

/* Checks over the relay: a fresh punch machine with the session's key, as
 * `role`, toward `cands`, with the relay's own deadline. */
static void relay_punch(struct natpeer *a, struct session *s, enum nb_role role,
			const struct nb_addr *cands, size_t n, uint64_t now)
{
	struct nb_ctrl_plan p = s->plan;
	uint8_t seed[NB_STUN_TID_LEN];

	(void)a;
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		memcpy(seed, s->plan.session, sizeof(seed));
	p.role = role;
	p.path = NB_PATH_RELAY;
	p.n_candidates = n;
	memcpy(p.candidates, cands, n * sizeof(cands[0]));
	p.deadline_ms = AGENT_RELAY_MS;
	p.delay_ms = 0;
	if (nb_punch_init(&s->pu, NULL, &p, s->pkey, seed, now) != 0) {
		session_fail(a, s, "relay: cannot start the checks", now);
		return;
	}
	s->relay = REL_RUN;
	s->hs_give_up = 0;
	s->hs_busy = false;
	/* Over the relay the side that sends to the relayed address starts the
	 * peers' handshake, at once, right behind its first check: the
	 * allocating side cannot reach it before it has heard from it (its NAT
	 * mapping toward the relay is new), and the checks' answers would cost
	 * a round trip through the relay for nothing the handshake does not
	 * prove itself. The allocating side answers it once it has heard an
	 * authenticated check from that address (on_peer_init()). */
	s->initiator = !s->plan.relay.alloc;
	if (s->initiator)
		s->pu.remote = s->relayed;
}

/* The other side allocated: check toward its relayed address. */
static void relay_dial(struct natpeer *a, struct session *s, uint64_t now)
{
	char r[NB_ADDR_STRLEN];

	say(a, NATPEER_LOG_INFO, "%s: relaying through its relayed address %s\n", s->plan.peer,
		nb_addr_format(&s->relayed, r, sizeof(r)));
	relay_punch(a, s, NB_ROLE_DIAL, &s->relayed, 1, now);
}

/* Our allocation is up: permissions for the peer's public candidates, our
 * relayed address to the peer (through the broker), and checks that answer
 * what comes through the relay. */
static void relay_allocated(struct natpeer *a, struct session *s, uint64_t now)
{
	struct talloc *t = sess_talloc(a, s);
	struct nb_ctrl_relayed r;
	struct nb_addr pub[NB_CTRL_MAX_ADDRS];
	size_t n = 0;
	int rc;

	for (size_t i = 0; i < s->plan.n_candidates; i++) {
		const struct nb_addr *c = &s->plan.candidates[i];
		if (nb_addr_is_private(c) || nb_addr_is_link_local(c) || nb_addr_is_loopback(c) ||
		    c->family != nb_turnc_relayed(&t->turn)->family)
			continue; /* the relay sends to public addresses only */
		(void)relay_permit(a, t, c, now);
		pub[n++] = *c;
	}
	s->relayed = *nb_turnc_relayed(&t->turn);
	memset(&r, 0, sizeof(r));
	memcpy(r.session, s->plan.session, sizeof(r.session));
	memcpy(r.id, a->o->id, sizeof(r.id));
	r.relayed = s->relayed;
	rc = nb_client_relayed(&a->client, &r, now);
	if (rc != 0) {
		session_fail(a, s, "relay: cannot tell the broker our relayed address", now);
		return;
	}
	if (n == 0) {
		session_fail(a, s, "relay: the peer has no public address to permit", now);
		return;
	}
	relay_punch(a, s, NB_ROLE_LISTEN, pub, n, now);
}

/* Start the relay for s: allocate (if the plan says we do), else wait for
 * the other side's relayed address. */
static void relay_begin(struct natpeer *a, struct session *s, uint64_t now)
{
	s->relay_give_up = now + AGENT_RELAY_MS;
	if (s->plan.relay.alloc) {
		struct talloc *t;
		s->relay = REL_WAIT_ALLOC;
		t = turn_start(a, &s->plan.relay, now);
		if (nb_turnc_state(&t->turn) == NB_TURNC_ALLOCATED)
			relay_allocated(a, s, now);
		return;
	}
	s->relay = REL_WAIT_RELAYED;
	if (s->have_relayed && s->plan.path == NB_PATH_RELAY && s->plan.delay_ms > 0) {
		/* Its permission for us is on its way to the relay: after it. */
		s->relay_dial_at = now + s->plan.delay_ms;
	} else if (s->have_relayed) {
		relay_dial(a, s, now);
	} else {
		say(a, NATPEER_LOG_INFO, "%s: waiting for its relayed address\n", s->plan.peer);
	}
}

/* A direct plan's dialer sends its handshake initiation right behind its
 * first check to each plan candidate: the peer answers it once it has
 * taken that check (on_peer_init()), and its handshake response comes back
 * with the check's answer; either one proves the path
 * (nb_punch_confirm_sent()), so the handshake costs no round trip of its
 * own. The initiation is sealed to the peer's key: a third party at a
 * candidate address learns nothing from it. Until the path is found it is
 * not retransmitted (there is nowhere to send it); then it is, to the
 * remote. */
static void early_handshake(struct natpeer *a, struct session *s, const struct nb_addr *to, uint64_t now)
{
	if (!s->initiator || s->relay != REL_NONE || s->plan.path != NB_PATH_DIRECT || s->dc_set ||
	    (s->pu.role != NB_ROLE_DIAL && s->pu.role != NB_ROLE_PUNCH) ||
	    nb_punch_state(&s->pu) != NB_PUNCH_CHECKING)
		return;
	if (!s->hs_busy) {
		if (hs_start(a, s, now) != 0)
			return;
		s->hs_next = UINT64_MAX;
	}
	send_to(a, s->hs_init, s->hs_init_len, to);
}

/* Drive one session: its punch machine's datagrams, its outcome, its data
 * channel's keepalive and expiry. */
static void session_pump(struct natpeer *a, struct session *s, uint64_t now)
{
	struct nb_punch_tx tx;

	while (nb_punch_poll(&s->pu, now, &tx) == 1) {
		if (tx.sock == 0)
			send_to(a, tx.bytes, tx.len, &tx.to);
		else if (s->sp != NULL)
			(void)nb_spray_send(s->sp, tx.sock, tx.bytes, tx.len, &tx.to);
		if (tx.first && tx.sock == 0)
			early_handshake(a, s, &tx.to, now);
	}
	if (s->relay == REL_NONE)
		s->bd_sent = s->pu.bd.sent;
	/* Birthday: the winning socket stays, every other one closes at once;
	 * a failed attempt closes them all before any fallback. */
	if (s->sp != NULL && !s->sp_kept && nb_punch_state(&s->pu) == NB_PUNCH_CONNECTED) {
		if (s->pu.remote_sock != 0) {
			nb_spray_keep(s->sp, s->pu.remote_sock);
			s->sp_kept = true;
			say(a, NATPEER_LOG_INFO, "birthday: socket %u of %u reached %s; the other %u closed\n",
				s->pu.remote_sock, s->plan.birthday.sockets, s->plan.peer,
				s->plan.birthday.sockets - 1);
		} else {
			nb_spray_close(s->sp);
			s->sp = NULL;
		}
	}
	if (s->sp != NULL && nb_punch_state(&s->pu) == NB_PUNCH_FAILED) {
		nb_spray_close(s->sp);
		s->sp = NULL;
	}
	if (s->plan.role == NB_ROLE_PROBE && !s->reported && s->relay == REL_NONE &&
	    nb_punch_state(&s->pu) == NB_PUNCH_CONNECTED && s->hs_give_up == 0)
		say(a, NATPEER_LOG_INFO, "birthday: port %u of %s answered after %u probes\n", s->pu.bd.port,
			s->plan.peer, s->bd_sent);

	/* Through the relay the dialing side's handshake goes with its first
	 * checks (relay_punch()). */
	bool through = s->relay == REL_RUN && s->initiator && nb_punch_state(&s->pu) != NB_PUNCH_FAILED;
	if (!s->reported && (nb_punch_state(&s->pu) == NB_PUNCH_CONNECTED || through)) {
		/* The path works both ways: now the peers' own handshake over
		 * it. Nothing counts as connected until it has verified. */
		if (s->hs_give_up == 0)
			s->hs_give_up = now + AGENT_HS_TIMEOUT_MS;
		if (s->hs_busy && s->hs_next == UINT64_MAX) /* sent early: now to the remote */
			s->hs_next = now + s->hs_rto;
		if (s->initiator && !s->hs_busy && !s->dc_set) {
			if (hs_start(a, s, now) != 0) {
				session_fail(a, s, "cannot start the handshake", now);
				return;
			}
			if (through)
				s->hs_rto = AGENT_HS_RELAY_RTO_MS;
		}
		if (!s->dc_set && now >= s->hs_give_up) {
			char why[NB_CTRL_REASON_MAX + 1], r[NB_ADDR_STRLEN];
			snprintf(why, sizeof(why), "the path to %s works, but no handshake with key %.12s... "
				 "within %u ms", nb_addr_format(&s->pu.remote, r, sizeof(r)),
				 s->peer_key_text, AGENT_HS_TIMEOUT_MS);
			session_fail(a, s, why, now);
			return;
		}
	} else if (!s->reported && nb_punch_state(&s->pu) == NB_PUNCH_FAILED && s->relay == REL_NONE &&
		   s->plan.relay.has_relay && !a->o->no_relay) {
		/* The direct path did not work by its deadline: the relay. */
		say(a, NATPEER_LOG_INFO, "%s: no direct path (%s); trying the relay\n", s->plan.peer, s->pu.reason);
		relay_begin(a, s, now);
	} else if (!s->reported && nb_punch_state(&s->pu) == NB_PUNCH_FAILED &&
		   (s->relay == REL_NONE || s->relay == REL_RUN)) {
		char why[NB_CTRL_REASON_MAX + 1];
		snprintf(why, sizeof(why), "%s%s", s->relay == REL_RUN ? "over the relay: " : "", s->pu.reason);
		session_fail(a, s, why, now);
		return;
	}
	if (!s->reported && s->relay == REL_WAIT_ALLOC) {
		const struct talloc *t = sess_talloc(a, s);
		enum nb_turnc_state st = nb_turnc_state(&t->turn);
		if (st == NB_TURNC_ALLOCATED) {
			relay_allocated(a, s, now);
		} else if (st == NB_TURNC_FAILED || st == NB_TURNC_CLOSED) {
			char why[NB_CTRL_REASON_MAX + 1];
			snprintf(why, sizeof(why), "relay: %s", nb_turnc_reason(&t->turn));
			session_fail(a, s, why, now);
			return;
		}
	}
	if (!s->reported && s->relay == REL_WAIT_RELAYED && s->have_relayed && s->relay_dial_at != 0 &&
	    now >= s->relay_dial_at) {
		s->relay_dial_at = 0;
		relay_dial(a, s, now);
	}
	if (!s->reported && (s->relay == REL_WAIT_ALLOC || s->relay == REL_WAIT_RELAYED) &&
	    now >= s->relay_give_up) {
		session_fail(a, s, s->relay == REL_WAIT_ALLOC ? "relay: no allocation in time"
							     : "relay: the other side's relayed address never came",
			     now);
		return;
	}
	if (s->initiator && s->connected && !s->hs_busy && nb_dc_wants_rekey(&s->dc, now))
		(void)hs_start(a, s, now); /* new keys before the old ones run out */
	if (s->hs_busy && now >= s->hs_next) {
		send_to(a, s->hs_init, s->hs_init_len, &s->pu.remote);
		s->hs_next = now + s->hs_rto;
		s->hs_rto = s->hs_rto >= AGENT_HS_RTO_MAX_MS / 2 ? AGENT_HS_RTO_MAX_MS : s->hs_rto * 2;
	}
	if (s->connected) {
		/* The first keepalive goes out at once: it tells the peer its
		 * answer arrived (it may still be waiting for ours). */
		if (now >= nb_dc_deadline(&s->dc))
			send_frame(a, s, NULL, 0, now);
		if (nb_dc_expired(&s->dc, now)) {
			ev_lost(a, s);
			session_end(a, s);
			return;
		}
	}
	if (s->reported && !s->connected && a->mode == MODE_LISTEN && now >= s->free_at)
		session_end(a, s);
}

static uint64_t session_deadline(const struct session *s)
{
	uint64_t d = nb_punch_deadline(&s->pu);

	if (!s->reported && (s->relay == REL_WAIT_ALLOC || s->relay == REL_WAIT_RELAYED))
		d = s->relay_give_up; /* the punch machine is idle meanwhile */
	if (!s->reported && s->relay == REL_WAIT_RELAYED && s->relay_dial_at != 0 && s->relay_dial_at < d)
		d = s->relay_dial_at;
	if (s->hs_busy && s->hs_next < d)
		d = s->hs_next;
	if (!s->reported && s->hs_give_up != 0 && s->hs_give_up < d)
		d = s->hs_give_up;

	if (s->connected) {
		uint64_t k = nb_dc_deadline(&s->dc), e = s->dc.last_rx + NB_DC_EXPIRE_MS;
		if (k < d)
			d = k;
		if (e < d)
			d = e;
	}
	if (s->reported && !s->connected && s->free_at < d)
		d = s->free_at;
	return d;
}

/* ---- The IPv6 pinhole ---------------------------------------------------------- */

/* docs/portmap.md "Over IPv6": the agent's IPv6 socket (the main one, or
 * the second family's) on a global address asks the router's stateful
 * firewall for a pinhole with a PCP MAP for that address and port (RFC 6887
 * §11.1), beside the IPv4 mapping (a->pm). The portmap machinery renews it;
 * shutdown_agent() deletes it. It starts only once that socket's NAT tests
 * are done, so that the filtering they measure, and register, is the
 * firewall's own whatever the router grants. The registration does not
 * mention it: the broker still plans IPv6 pairs as hole punching, which
 * works through a stateful firewall; the pinhole lets a peer's first
 * datagrams in besides. The broker probes it over the same family's
 * session (f2's client for the second family), as it does the IPv4 one. */

/* The IPv6 socket a pinhole is for, once its NAT tests are done: true,
 * its address and port, and whether it is f2's. */
static bool pin6_socket(const struct natpeer *a, struct nb_addr *ret_local, bool *ret_f2)
{
	if (a->o->broker.family == NB_AF_INET6 && a->phase != PH_NETCHECK && a->phase != PH_PEERS &&
	    !a->broker_tcp && !a->nat.udp_blocked) {
		*ret_local = a->local;
		*ret_f2 = false;
		return true;
	}
	if (a->f2.broker.family == NB_AF_INET6 && a->f2.st != F2_OFF && a->f2.st != F2_NETCHECK &&
	    a->f2.st != F2_DOWN) {
		*ret_local = a->f2.local;
		*ret_f2 = true;
		return true;
	}
	return false;
}

/* The broker client of the pinhole's family; NULL while f2's has no
 * session yet. */
static struct nb_client *pin6_client(struct natpeer *a)
{
	if (!a->pin6.f2)
		return &a->client;
	return a->f2.st == F2_REGISTER || a->f2.st == F2_UP ? &a->f2.client : NULL;
}

/* The portmap's verify hook: the probe goes through that family's session. */
static int pin6_verify(void *arg, const struct nb_addr *external, uint64_t now, char *why, size_t why_len)
{
	struct natpeer *a = arg;
	struct nb_client *c = pin6_client(a);
	int rc;

	if (c == NULL) {
		snprintf(why, why_len, "no session with the broker over IPv6");
		return -ENOTCONN;
	}
	rc = nb_client_verify_hook(c, external, now, why, why_len);
	if (rc == 0)
		a->pin6.asked = true;
	return rc;
}

static void on_pin6(struct nb_portmap *pm, bool changed, void *arg)
{
	struct natpeer *a = arg;
	struct nb_portmap_report r;
	char ext[NB_ADDR_STRLEN];
	enum nb_portmap_state s = nb_portmap_state(pm);

	(void)changed;
	if (s != a->pin6.told && s != NB_PM_WORKING && s != NB_PM_VERIFYING) {
		a->pin6.told = s;
		nb_portmap_get_report(pm, &r);
		nb_addr_format(&r.external, ext, sizeof(ext));
		if (s == NB_PM_VERIFIED)
			say(a, NATPEER_LOG_INFO, "IPv6: pinhole UDP %s via PCP (lifetime %u s), verified by the broker\n", ext,
				(unsigned)r.lease_s);
		else if (s == NB_PM_UNVERIFIED && r.external.family != NB_AF_NONE)
			say(a, NATPEER_LOG_INFO, "IPv6: pinhole UDP %s via PCP (lifetime %u s), not verified: %s\n", ext,
				(unsigned)r.lease_s, r.reason);
		else
			say(a, NATPEER_LOG_INFO, "IPv6: no pinhole: %s\n", r.reason[0] ? r.reason : nb_portmap_status_word(s));
	}
	if (!a->stopping) /* pump from the loop: a verify may wait to go out */
		uv_timer_start(&a->timer, on_timer, 0, 0);
}

/* Start the pinhole once its socket is tested; give it the reflexive
 * address (what the broker saw: verify compares) once the family's session
 * can carry the probe; drop it with the second family. From pump(). */
static void pin6_when_due(struct natpeer *a, uint64_t now)
{
	struct nb_addr local;
	bool f2;
	const char *why;
	int rc;

	if (a->stopping || !a->o->upnp ||
	    (a->o->portmap_protocols != 0 && !(a->o->portmap_protocols & NB_PM_PCP)))
		return;
	if (!a->pin6.tried && pin6_socket(a, &local, &f2)) {
		struct nb_portmap_opts po = {
			.internal_port = local.port, .quiet = true, .check_s = a->o->upnp_check_s,
			.protocols = NB_PM_PCP, .client6 = local, .verify = pin6_verify, .verify_arg = a,
		};
		a->pin6.tried = true;
		a->pin6.f2 = f2;
		why = nb_extip_useless(&local);
		if (why != NULL) {
			char s[NB_ADDR_STRLEN];
			nb_log_info("agent", "IPv6: no pinhole for %s: %s", nb_addr_format(&local, s, sizeof(s)), why);
			return;
		}
		rc = nb_portmap_open(&a->pin6.pm, a->loop, &po, on_pin6, a);
		if (rc != 0) {
			a->pin6.pm = NULL;
			say(a, NATPEER_LOG_INFO, "IPv6: no pinhole: cannot start: %s\n", uv_strerror(rc));
			return;
		}
		if (nb_portmap_state(a->pin6.pm) != NB_PM_WORKING) /* nothing to ask (no IPv6 route) */
			on_pin6(a->pin6.pm, true, a);
	}
	if (a->pin6.pm == NULL)
		return;
	if (a->pin6.f2 && a->f2.st == F2_DOWN) { /* its socket is closed */
		nb_portmap_stop(a->pin6.pm, NULL, NULL);
		a->pin6.pm = NULL;
		return;
	}
	if (!a->pin6.refl_given && pin6_client(a) != NULL) {
		a->pin6.refl_given = true;
		nb_portmap_set_reflexive(a->pin6.pm, a->pin6.f2 ? &a->f2.nat.reflexive : &a->nat.reflexive, now);
	}
}

/* A verify answer from client c: true if it was the pinhole's (then it has it). */
static bool pin6_verify_event(struct natpeer *a, const struct nb_client *c, const struct nb_client_event *e,
			      uint64_t now)
{
	if (a->pin6.pm == NULL || !a->pin6.asked || pin6_client(a) != c)
		return false;
	a->pin6.asked = false;
	nb_portmap_verify_result(a->pin6.pm, e->type == NB_CLIENT_EV_VERIFIED, e->proof, e->code, e->reason, now);
	return true;
}

/* The broker's probe of the pinhole on f2's socket: true if taken (f2's
 * client asked for it). */
static bool pin6_probe_input(struct natpeer *a, const uint8_t *data, size_t len, const struct nb_addr *from,
			     uint64_t now)
{
	struct nb_ctrl_msg *m;
	bool probe;

	if (!a->pin6.f2 || !a->pin6.asked || nb_wire_classify(data, len) != NB_WIRE_CTRL)
		return false;
	m = malloc(sizeof(*m));
	probe = m != NULL && nb_ctrl_decode(m, data, len) == (ssize_t)len && m->type == NB_CTRL_PROBE;
	free(m);
	if (probe)
		nb_client_input(&a->f2.client, data, len, from, now);
	return probe;
}

/* On the way out: delete the pinhole (bounded, as the IPv4 mapping). */
static void pin6_stop(struct natpeer *a)
{
	struct nb_portmap_report r;

	nb_portmap_get_report(a->pin6.pm, &r); /* NULL: family NONE */
	if (r.external.family != NB_AF_NONE)
		say(a, NATPEER_LOG_INFO, "IPv6: removing the pinhole...\n");
	nb_portmap_stop(a->pin6.pm, NULL, NULL);
	a->pin6.pm = NULL;
}

/* ---- The broker client's events ------------------------------------------------ */

static void f2_start(struct natpeer *a, const struct nb_addr *alt, uint64_t now);

/* connect: ask for the plan once the second family is settled. */
static void connect_when_due(struct natpeer *a, uint64_t now)
{
	int rc;

	if (!a->connect_due || a->stopping)
		return;
	if ((a->f2.st == F2_NETCHECK || a->f2.st == F2_WAIT || a->f2.st == F2_REGISTER) &&
	    now < a->connect_due_by)
		return;
	rc = nb_client_connect(&a->client, a->o->peer, now);
	if (rc == -EAGAIN)
		return; /* registering again (a port mapping changed): when registered */
	a->connect_due = false;
	if (rc != 0) {
		connect_failed(a, "could not send connect");
		return;
	}
	a->connect_sent_at = now;
	a->phase = PH_CONNECT;
	say(a, NATPEER_LOG_INFO, "connecting to %s...\n", a->o->peer);
}

static void on_registered(struct natpeer *a, const struct nb_ctrl_registered *r, uint64_t now)
{
	char refl[NB_ADDR_STRLEN];

	nb_addr_format(&r->reflexive, refl, sizeof(refl));
	/* Credentials to allocate in advance (our NAT or network will need
	 * the relay with most peers): allocate now, as ICE gathers its relayed
	 * candidate, and register the relayed address once we have it. */
	if (r->relay.has_relay && r->relay.alloc && !a->o->no_relay &&
	    !talloc_live(&a->tr[r->relay.family == 6 ? NB_FAM_V6 : NB_FAM_V4])) {
		struct talloc *t = turn_start(a, &r->relay, now);
		for (int f = 0; f < NB_FAM_COUNT; f++)
			a->tr[f].advance = false; /* the newest registers its address */
		t->advance = true;
		t->told = false;
	}
	if (a->ever_registered && a->relayed_update) {
		char rel[NB_ADDR_STRLEN];
		a->relayed_update = false;
		say(a, NATPEER_LOG_INFO, "relay: registered our relayed address %s with the broker\n",
			nb_addr_format(&a->reg.relayed, rel, sizeof(rel)));
		return;
	}
	if (a->ever_registered) {
		say(a, NATPEER_LOG_INFO, "registered again as %s (reflexive %s)\n", r->id, refl);
		return;
	}
	a->ever_registered = true;
	say(a, NATPEER_LOG_INFO, "registered as %s with %s; reflexive %s, keepalive every %u s\n", r->id,
		a->broker_str, refl, (unsigned)r->keepalive_s);
	if (a->cb.registered != NULL)
		a->cb.registered(a->cb_arg, r->id, refl);
	if (r->has_alt && a->f2.st == F2_OFF && !a->o->one_family && !a->broker_tcp)
		f2_start(a, &r->alt, now); /* (with a second --broker it started at once) */
	if (a->mode == MODE_CONNECT) {
		/* With a second family coming up, connect once it is registered
		 * (or given up, or after AGENT_F2_WAIT_MS): the plan is made
		 * from what the broker knows when it is asked. */
		a->connect_due = true;
		a->connect_due_by = now + AGENT_F2_WAIT_MS;
		connect_when_due(a, now);
	} else {
		a->phase = PH_RUN;
		say(a, NATPEER_LOG_INFO, "listening as %s\n", a->o->id);
	}
}

/* The other side of a session allocated on the relay: its relayed address.
 * Whatever we are doing for that session, checks toward it start now. */
static void on_relayed(struct natpeer *a, const struct nb_ctrl_relayed *r, uint64_t now)
{
	for (int i = 0; i < AGENT_MAX_SESSIONS; i++) {
		struct session *s = &a->s[i];
		if (!s->used || strcmp(s->plan.session, r->session) != 0 || strcmp(s->plan.peer, r->id) != 0)
			continue;
		s->relayed = r->relayed;
		s->have_relayed = true;
		if (s->reported || s->plan.relay.alloc || a->o->no_relay || s->relay == REL_RUN)
			return;
		if (s->relay == REL_NONE)
			s->relay_give_up = now + AGENT_RELAY_MS;
		relay_dial(a, s, now);
		return;
	}
	nb_log_debug("agent", "relayed address for unknown session %s", r->session);
}

/* The listing, as the application gets it: every row at once. */
static void ev_peers(struct natpeer *a)
{
	natpeer_peer_info *rows;
	char (*txt)[2][NB_ADDR_STRLEN];

	if (a->cb.peers == NULL)
		return;
	rows = calloc(a->n_rows ? a->n_rows : 1, sizeof(*rows));
	txt = calloc(a->n_rows ? a->n_rows : 1, sizeof(*txt));
	if (rows == NULL || txt == NULL) {
		say(a, NATPEER_LOG_ERROR, "natpeer: peers: out of memory");
		goto out;
	}
	for (size_t i = 0; i < a->n_rows; i++) {
		const struct nb_ctrl_peer_info *p = &a->rows[i].info;
		rows[i].id = p->id;
		rows[i].nat = nb_nat_type_to_string(p->nat);
		rows[i].mapping = nb_mapping_to_string(p->mapping);
		rows[i].filtering = nb_filtering_to_string(p->filtering);
		rows[i].reflexive = nb_addr_format(&p->reflexive, txt[i][0], sizeof(txt[i][0]));
		rows[i].has_alt = p->has_alt;
		if (p->has_alt) { /* its registration in the other family */
			rows[i].alt = nb_addr_format(&p->alt, txt[i][1], sizeof(txt[i][1]));
			rows[i].alt_mapping = nb_mapping_to_string(p->alt_mapping);
			rows[i].alt_filtering = nb_filtering_to_string(p->alt_filtering);
		}
	}
	a->cb.peers(a->cb_arg, rows, a->n_rows);
out:
	free(rows);
	free(txt);
}

static void ev_matrix(struct natpeer *a)
{
	natpeer_pair_info *rows;

	if (a->cb.matrix == NULL)
		return;
	rows = calloc(a->n_rows ? a->n_rows : 1, sizeof(*rows));
	if (rows == NULL) {
		say(a, NATPEER_LOG_ERROR, "natpeer: matrix: out of memory");
		return;
	}
	for (size_t i = 0; i < a->n_rows; i++) {
		const struct nb_ctrl_pair *p = &a->rows[i].pair;
		natpeer_pair_info *r = &rows[i];
		r->a = p->a;
		r->b = p->b;
		r->predicted = nb_path_to_string(p->predicted);
		r->role_a = nb_role_to_string(p->role_a);
		r->role_b = nb_role_to_string(p->role_b);
		r->plan = p->reason;
		r->has_measured = p->has_measured;
		r->measured = p->has_measured ? nb_path_to_string(p->measured) : NULL;
		r->ms = p->ms;
		r->plan_family = p->plan_family;
		r->family = p->family;
		r->birthday = p->birthday.has;
		r->bd_sockets = p->birthday.sockets;
		r->bd_probes = p->birthday.probes;
		r->bd_rate = p->birthday.rate;
		r->bd_port = p->birthday.port;
	}
	a->cb.matrix(a->cb_arg, rows, a->n_rows);
	free(rows);
}

static void client_events(struct natpeer *a, uint64_t now)
{
	struct nb_client_event e;
	char why[NB_CTRL_REASON_MAX + 64];

	while (nb_client_next_event(&a->client, &e) == 1) {
		switch (e.type) {
		case NB_CLIENT_EV_REGISTERED:
			on_registered(a, &e.u.registered, now);
			break;
		case NB_CLIENT_EV_REGISTER_FAILED:
			if (e.code != 0)
				snprintf(why, sizeof(why), "the broker refused the registration: %d %s", e.code,
					 e.reason);
			else
				snprintf(why, sizeof(why), "no answer from the broker at %s (register)",
					 a->broker_str);
			if (a->mode == MODE_CONNECT && !a->ever_registered &&
			    (e.code != 0 || ++a->register_unanswered >= AGENT_CONNECT_REGISTER_TRIES)) {
				connect_failed(a, why);
			} else if (nb_client_state(&a->client) == NB_CLIENT_REFUSED) {
				say(a, NATPEER_LOG_INFO, "natpeer: %s\n", why);
				shutdown_agent(a, NATPEER_E_BROKER);
				return;
			} else {
				say(a, NATPEER_LOG_INFO, "natpeer: %s; trying again\n", why);
			}
			break;
		case NB_CLIENT_EV_LOST:
			if (a->bl_on) /* the broker may have lost our session too */
				(void)nb_blink_start(&a->bl, now);
			if (e.code != 0)
				say(a, NATPEER_LOG_INFO, "natpeer: registration lost (%d %s); registering again\n", e.code,
					e.reason);
			else
				say(a, NATPEER_LOG_INFO, "natpeer: registration lost (%s); registering again\n", e.reason);
			break;
		case NB_CLIENT_EV_PLAN:
			if (a->mode == MODE_CONNECT && e.pushed) {
				nb_log_info("agent", "%s wants to connect; natpeer connect does not accept: ignored",
					    e.u.plan.peer);
				break;
			}
			if (a->mode == MODE_CONNECT && a->phase != PH_CONNECT)
				break;
			if (a->mode == MODE_CONNECT)
				a->phase = PH_RUN;
			session_start(a, &e.u.plan, now);
			break;
		case NB_CLIENT_EV_CONNECT_FAILED:
			if (e.code != 0)
				snprintf(why, sizeof(why), "broker: %d %s", e.code, e.reason);
			else
				snprintf(why, sizeof(why), "no answer from the broker at %s (connect)",
					 a->broker_str);
			connect_failed(a, why);
			break;
		case NB_CLIENT_EV_RESULT_DONE:
			if (e.code != 0)
				nb_log_debug("agent", "result for %s: %d %s", e.session, e.code, e.reason);
			break;
		case NB_CLIENT_EV_RELAYED_DONE:
			if (e.code != 0)
				nb_log_warn("agent", "relayed address for %s: %d %s", e.session, e.code,
					    e.code > 0 ? e.reason : "no answer");
			break;
		case NB_CLIENT_EV_RELAYED:
			on_relayed(a, &e.u.relayed, now);
			break;
		case NB_CLIENT_EV_PEERS_PAGE:
		case NB_CLIENT_EV_MATRIX_PAGE: {
			bool matrix = e.type == NB_CLIENT_EV_MATRIX_PAGE;
			size_t n = matrix ? e.u.matrix.n_pairs : e.u.page.n_peers;
			for (size_t i = 0; i < n && a->n_rows < AGENT_MAX_LISTED; i++) {
				if (a->n_rows == a->cap_rows) {
					size_t cap = a->cap_rows ? a->cap_rows * 2 : 64;
					struct peer_row *r = realloc(a->rows, cap * sizeof(*r));
					if (r == NULL)
						break;
					a->rows = r;
					a->cap_rows = cap;
				}
				if (matrix)
					a->rows[a->n_rows++].pair = e.u.matrix.pairs[i];
				else
					a->rows[a->n_rows++].info = e.u.page.peers[i];
			}
			break;
		}
		case NB_CLIENT_EV_PEERS_DONE:
			if (a->mode == MODE_MATRIX)
				ev_matrix(a);
			else
				ev_peers(a);
			shutdown_agent(a, 0);
			return;
		case NB_CLIENT_EV_VERIFIED:
		case NB_CLIENT_EV_VERIFY_FAILED:
			if (!pin6_verify_event(a, &a->client, &e, now))
				nb_portmap_verify_result(a->pm, e.type == NB_CLIENT_EV_VERIFIED, e.proof, e.code,
							 e.reason, now);
			break;
		case NB_CLIENT_EV_PEERS_FAILED: {
			const char *what = a->mode == MODE_MATRIX ? "matrix" : "peers";
			if (e.code != 0)
				say(a, NATPEER_LOG_INFO, "natpeer: %s: the broker refused: %d %s\n", what, e.code, e.reason);
			else
				say(a, NATPEER_LOG_INFO, "natpeer: %s: %s (is natbroker running at %s?)\n", what, e.reason,
					a->broker_str);
		}
			shutdown_agent(a, NATPEER_E_BROKER);
			return;
		}
	}
}

/* ---- NAT check, then registration ----------------------------------------------- */

#define AGENT_SOCKBUF (4 << 20) /* SO_RCVBUF / SO_SNDBUF asked for the sockets of udp_open() */

static void on_udp_closed(struct nb_udp *u)
{
	unref(u->arg);
}

/* nb_udp_open, counting the handle in a->refs. */
static int udp_open(struct natpeer *a, struct nb_udp *u, const struct nb_addr *local, nb_udp_recv_fn cb)
{
	int rc = nb_udp_open(u, a->loop, local, 0, cb, a);
	int size = AGENT_SOCKBUF;

	if (rc == 0) {
		a->refs++;
		/* Room for a burst of data frames (a relay or a delay line
		 * releases them together): capped by net.core.rmem_max /
		 * wmem_max; best effort. */
		(void)uv_recv_buffer_size((uv_handle_t *)&u->handle, &size);
		size = AGENT_SOCKBUF;
		(void)uv_send_buffer_size((uv_handle_t *)&u->handle, &size);
	}
	return rc;
}

/* "NAT: ..." (label ""), or "NAT (IPv6): ..." for the second family. */
static void nat_line(struct natpeer *a, const struct nb_netcheck_result *r, const char *label,
		     const char *broker_str)
{
	char refl[NB_ADDR_STRLEN], what[16] = "NAT";

	if (label[0] != '\0')
		snprintf(what, sizeof(what), "NAT (%s)", label);
	if (r->udp_blocked) {
		say(a, NATPEER_LOG_INFO, "%s: no answer from %s over UDP (UDP blocked, or no broker there)\n", what,
			broker_str);
		return;
	}
	nb_addr_format(&r->reflexive, refl, sizeof(refl));
	if (r->mapping == NB_MAPPING_NONE)
		say(a, NATPEER_LOG_INFO, "%s: none (public address %s), %s filtering (%s)\n", what, refl,
			nb_filtering_to_string(r->filtering), nb_nat_type_to_string(r->nat));
	else
		say(a, NATPEER_LOG_INFO, "%s: %s mapping, %s filtering (%s); reflexive %s\n", what,
			nb_mapping_to_string(r->mapping), nb_filtering_to_string(r->filtering),
			nb_nat_type_to_string(r->nat), refl);
	if (r->note[0])
		say(a, NATPEER_LOG_INFO, "%s: note: %s\n", what, r->note);
}

static void netcheck_done(struct natpeer *a, uint64_t now)
{
	struct nb_ctrl_register reg;

	a->phase = PH_REGISTER;
	a->nat = *nb_netcheck_result(&a->nc);
	if (a->filt_open) {
		nb_udp_close(&a->filt, on_udp_closed);
		a->filt_open = false;
	}
	nat_line(a, &a->nat, "", a->broker_str);
	if (a->nat.udp_blocked && !a->broker_tcp) {
		/* docs/protocol.md "Over TCP": the same port, framed. The
		 * sealed channel starts again there. */
		int rc = nb_tcpconn_open(&a->bconn, a->loop, &a->o->broker, on_bconn_frame,
					 on_bconn_state, a);
		if (rc != 0) {
			char why[256];
			snprintf(why, sizeof(why), "no answer from the broker at %s over UDP, and no TCP: %s",
				 a->broker_str, uv_strerror(rc));
			if (a->mode == MODE_CONNECT) {
				connect_failed(a, why);
			} else {
				say(a, NATPEER_LOG_INFO, "natpeer: %s\n", why);
				shutdown_agent(a, NATPEER_E_BROKER);
			}
			return;
		}
		a->broker_tcp = true;
		say(a, NATPEER_LOG_INFO, "broker: no answer over UDP; reaching %s over TCP (relayed connections "
				"only)\n", a->broker_str);
		if (a->bl_on)
			nb_blink_wipe(&a->bl);
		blink_up(a, a->broker_key_known, now);
	}
	memset(&reg, 0, sizeof(reg));
	memcpy(reg.id, a->o->id, sizeof(reg.id));
	memcpy(reg.token, a->o->token, sizeof(reg.token));
	reg.local[0] = a->local;
	reg.n_local = 1;
	if (!a->nat.udp_blocked) {
		reg.has_nat = true;
		reg.mapping = a->nat.mapping;
		reg.filtering = a->nat.filtering;
		if (a->nat.hairpin >= 0) {
			reg.has_hairpin = true;
			reg.hairpin = a->nat.hairpin == 1;
		}
	}
	a->reg = reg;
	if (!a->reflexive_given) {
		a->reflexive_given = true;
		nb_portmap_set_reflexive(a->pm, &a->nat.reflexive, now);
	}
	/* The first register goes out from pump(): at once for listen; for
	 * connect once the port mapping has settled, since a verified mapping
	 * changes the plan. */
}

/* (Re-)register with the NAT facts and the port mapping as they are now. */
static void send_register(struct natpeer *a, uint64_t now)
{
	struct nb_ctrl_register reg = a->reg;
	int rc;

	nb_portmap_fill_register(a->pm, &reg);
	if (a->pm == NULL) {
		reg.has_upnp = false;
	}
	rc = nb_client_register(&a->client, &reg, now);
	if (rc != 0) {
		say(a, NATPEER_LOG_INFO, "natpeer: cannot build the register message (id or token invalid)\n");
		if (a->mode == MODE_CONNECT)
			connect_failed(a, "invalid register message");
		else
			shutdown_agent(a, NATPEER_E_CONFIG);
		return;
	}
	a->reg = reg;
	if (!a->reg_sent)
		say(a, NATPEER_LOG_INFO, "registering as %s with %s...\n", a->o->id, a->broker_str);
	else
		nb_log_info("agent", "registering again: upnp %s", nb_portmap_status_word(nb_portmap_state(a->pm)));
	a->reg_sent = true;
}

/* Register when due; register again when what the broker must know of the
 * mapping changed. */
static void register_when_due(struct natpeer *a, uint64_t now)
{
	if (a->phase == PH_NETCHECK || a->phase == PH_PEERS || a->stopping)
		return;
	if (!a->reg_sent) {
		if (a->phase != PH_REGISTER)
			return;
		if (a->mode == MODE_CONNECT && !nb_portmap_settled(a->pm, now, AGENT_UPNP_GRACE_MS))
			return;
		send_register(a, now);
		return;
	}
	struct nb_ctrl_register want = a->reg;
	nb_portmap_fill_register(a->pm, &want);
	if (a->pm != NULL && (want.upnp != a->reg.upnp || strcmp(want.upnp_proof, a->reg.upnp_proof) != 0 ||
			      !nb_addr_equal(&want.upnp_external, &a->reg.upnp_external)))
		send_register(a, now);
}

static void on_portmap(struct nb_portmap *pm, bool changed, void *arg)
{
	struct natpeer *a = arg;

	(void)pm;
	(void)changed;
	if (!a->stopping) /* pump from the loop, not from inside the UPnP shell */
		uv_timer_start(&a->timer, on_timer, 0, 0);
}

/* ---- The loop -------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
	struct natpeer *a = t->data;

	/* A deadline may be about to decide "no answer" (a netcheck test, a
	 * punch, a request): first take what has already arrived, which the
	 * loop would only poll after this timer. */
	if (a->sock_open && !a->stopping)
		nb_udp_drain(&a->sock, 16);
	if (a->filt_open && !a->stopping)
		nb_udp_drain(&a->filt, 16);
	if (!a->stopping)
		pump(a);
}

static bool results_pending(const struct natpeer *a)
{
	return nb_client_pending(&a->client, NB_CLIENT_TXN_RESULT) > 0;
}

/* natpeer_finish(): may we stop now? */
static void check_end(struct natpeer *a, uint64_t now)
{
	bool confirmed = true;

	if (!a->ending || a->stopping)
		return;
	for (int i = 0; i < AGENT_MAX_SESSIONS; i++)
		if (a->s[i].used && a->s[i].connected && !a->s[i].confirmed)
			confirmed = false;
	if (now >= a->end_by || (!results_pending(a) && confirmed))
		shutdown_agent(a, 0);
}

/* The broker's channel: handshake retransmissions and sealed messages out;
 * the key request while the broker's key is not known. */
static void broker_flush(struct natpeer *a, uint64_t now)
{
	struct nb_blink_tx tx;

	while (a->bl_on && nb_blink_poll(&a->bl, now, &tx) == 1)
		send_to(a, tx.bytes, tx.len, &a->o->broker);
	if (a->bl_on && nb_blink_state(&a->bl) == NB_BLINK_NO_KEY && a->mode == MODE_LISTEN) {
		(void)nb_blink_start(&a->bl, now); /* a listener keeps asking, as it keeps registering */
		broker_flush(a, now);
		return;
	}
	if (a->bl_on && nb_blink_state(&a->bl) == NB_BLINK_NO_KEY && !a->no_key_told) {
		char why[256];
		a->no_key_told = true;
		snprintf(why, sizeof(why), "no answer from the broker at %s (asked for its key); "
			 "is natbroker running there?", a->broker_str);
		if (a->mode == MODE_CONNECT) {
			connect_failed(a, why);
		} else {
			say(a, NATPEER_LOG_INFO, "natpeer: %s\n", why);
			shutdown_agent(a, NATPEER_E_BROKER);
		}
	}
}

/* The broker's channel; key_known: a->broker_key holds its pinned key (else
 * the channel asks for it first). */
static void blink_up(struct natpeer *a, bool key_known, uint64_t now)
{
	uint8_t seed[16];
	int rc;

	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		memcpy(seed, a->idx_seed, sizeof(seed));
	nb_blink_init(&a->bl, a->o->priv, a->o->pub, key_known ? a->broker_key : NULL, &a->o->broker,
		      seed);
	a->bl_on = true;
	rc = nb_blink_start(&a->bl, now);
	if (rc != 0)
		say(a, NATPEER_LOG_INFO, "natpeer: cannot start the handshake with the broker: %s\n",
			nb_noise_strerror(rc));
}

/* Tell the broker we leave, so our names are free at once: a sealed bye per
 * name, sent twice (no answer is waited for). */
static void send_bye(struct natpeer *a, uint64_t now)
{
	struct nb_ctrl_msg m;
	uint8_t buf[NB_CTRL_MAX_DATAGRAM];
	ssize_t n;

	if (!a->bl_on || !a->bl.have_seal || !a->ever_registered)
		return;
	memset(&m, 0, sizeof(m));
	m.type = NB_CTRL_BYE;
	snprintf(m.tx, sizeof(m.tx), "%016llx", (unsigned long long)new_index(a) << 32 | new_index(a));
	memcpy(m.u.bye.id, a->o->id, sizeof(m.u.bye.id));
	n = nb_ctrl_encode(&m, buf, sizeof(buf));
	if (n <= 0)
		return;
	for (int i = 0; i < 2; i++)
		(void)nb_blink_send(&a->bl, buf, (size_t)n, now);
	broker_flush(a, now);
}


/* ---- The other IP family ------------------------------------------------------ */

static void f2_down(struct natpeer *a, const char *why)
{
	if (a->f2.st == F2_DOWN || a->f2.st == F2_OFF)
		return;
	say(a, NATPEER_LOG_INFO, "%s: %s; using %s only\n", a->f2.name, why,
		a->f2.name[3] == '6' ? "IPv4" : "IPv6");
	a->f2.st = F2_DOWN;
	if (a->f2.filt_open)
		nb_udp_close(&a->f2.filt, on_udp_closed);
	if (a->f2.open)
		nb_udp_close(&a->f2.sock, on_udp_closed);
	a->f2.open = a->f2.filt_open = false;
	if (a->f2.bl_init)
		nb_blink_wipe(&a->f2.bl);
}

static void on_f2_recv(struct nb_udp *u, const uint8_t *data, size_t len, const struct nb_addr *from,
		       void *arg);

/* The local IP the kernel picks toward `server` (a route lookup; nothing
 * is sent). A listener keeps its address: on IPv6 it asks for a public
 * (stable) source address rather than a temporary one (RFC 4941 privacy
 * address), as RFC 5014's IPV6_PREFER_SRC_PUBLIC lets a socket ask;
 * --ipv6-temporary, and connect, take the system's choice. The second
 * family's sockets are then bound to that IP, so that their source is it
 * whatever the preferences. 0 or a negative errno. */
static int f2_local_ip(const struct natpeer *a, const struct nb_addr *server, struct nb_addr *ret)
{
	int rc = nb_local_ip_toward_pref(server, a->mode == MODE_LISTEN && !a->o->ipv6_temporary, ret);

	if (rc == 0)
		ret->port = 0;
	return rc;
}

static void f2_start(struct natpeer *a, const struct nb_addr *alt, uint64_t now)
{
	struct nb_addr any, local;
	uint8_t nseed[12];
	int rc;

	memset(&a->f2, 0, sizeof(a->f2));
	a->f2.broker = *alt;
	a->f2.name = alt->family == NB_AF_INET6 ? "IPv6" : "IPv4";
	nb_addr_format(alt, a->f2.broker_str, sizeof(a->f2.broker_str));
	a->f2.st = F2_NETCHECK;
	rc = f2_local_ip(a, alt, &local);
	if (rc != 0) {
		char why[128];
		snprintf(why, sizeof(why), "no route to the broker's %s", a->f2.broker_str);
		f2_down(a, why);
		return;
	}
	any = local; /* port 0 */
	rc = udp_open(a, &a->f2.sock, &any, on_f2_recv);
	if (rc == 0) {
		a->f2.open = true;
		rc = udp_open(a, &a->f2.filt, &any, on_f2_recv);
		a->f2.filt_open = rc == 0;
	}
	if (rc != 0) {
		char why[128];
		snprintf(why, sizeof(why), "cannot open a socket: %s", uv_strerror(rc));
		f2_down(a, why);
		return;
	}
	a->f2.local = local;
	a->f2.local.port = a->f2.sock.local.port;
	say(a, NATPEER_LOG_INFO, "%s: the broker is also at %s; testing %s NAT behaviour...\n", a->f2.name,
		a->f2.broker_str, a->f2.name);
	if (getrandom(nseed, sizeof(nseed), 0) != (ssize_t)sizeof(nseed))
		memcpy(nseed, a->idx_seed, sizeof(nseed));
	nb_netcheck_init(&a->f2.nc, NULL, alt, &a->f2.local, nseed, now);
}

/* Register the second address: once its NAT is known and the first family
 * is registered (the broker takes "also" only for a registered id, and
 * its key, the same in both families, is known by then: pinned or
 * given). */
static void f2_register(struct natpeer *a, uint64_t now)
{
	struct nb_ctrl_register reg;
	uint8_t seed[16], cseed[32];

	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		memcpy(seed, a->idx_seed, sizeof(seed));
	nb_blink_init(&a->f2.bl, a->o->priv, a->o->pub, a->broker_key_known ? a->broker_key : NULL,
		      &a->f2.broker, seed);
	a->f2.bl_init = true;
	(void)nb_blink_start(&a->f2.bl, now);
	if (getrandom(cseed, sizeof(cseed), 0) != (ssize_t)sizeof(cseed))
		memset(cseed, 0x5A, sizeof(cseed)); /* tx ids then repeat across runs: harmless */
	nb_client_init(&a->f2.client, NULL, &a->f2.broker, cseed, now);
	memset(&reg, 0, sizeof(reg));
	memcpy(reg.id, a->o->id, sizeof(reg.id));
	memcpy(reg.token, a->o->token, sizeof(reg.token));
	reg.has_nat = true;
	reg.mapping = a->f2.nat.mapping;
	reg.filtering = a->f2.nat.filtering;
	reg.also = true;
	if (nb_client_register(&a->f2.client, &reg, now) != 0) {
		f2_down(a, "cannot build the register message");
		return;
	}
	a->f2.st = F2_REGISTER;
}

static void f2_netcheck_done(struct natpeer *a, uint64_t now)
{
	const struct nb_netcheck_result *r;

	a->f2.nat = *nb_netcheck_result(&a->f2.nc);
	r = &a->f2.nat;
	if (a->f2.filt_open) {
		nb_udp_close(&a->f2.filt, on_udp_closed);
		a->f2.filt_open = false;
	}
	if (r->udp_blocked) {
		f2_down(a, "no answer from the broker over UDP (UDP blocked)");
		return;
	}
	nat_line(a, r, a->f2.name, a->f2.broker_str);
	a->f2.st = F2_WAIT;
	if (a->ever_registered)
		f2_register(a, now);
}

static void f2_events(struct natpeer *a, uint64_t now)
{
	struct nb_client_event e;
	char refl[NB_ADDR_STRLEN], why[NB_CTRL_REASON_MAX + 64];

	while (nb_client_next_event(&a->f2.client, &e) == 1) {
		switch (e.type) {
		case NB_CLIENT_EV_REGISTERED:
			a->f2.st = F2_UP;
			if (!a->f2.told_registered) {
				a->f2.told_registered = true;
				say(a, NATPEER_LOG_INFO, "registered %s %s with %s too\n", a->f2.name,
					nb_addr_format(&e.u.registered.reflexive, refl, sizeof(refl)),
					a->f2.broker_str);
			}
			break;
		case NB_CLIENT_EV_REGISTER_FAILED:
			if (e.code != 0) {
				snprintf(why, sizeof(why), "the broker refused the registration: %d %s", e.code,
					 e.reason);
				f2_down(a, why);
				return;
			}
			if (a->f2.st == F2_REGISTER) { /* never registered: do not hold connect up */
				f2_down(a, "no answer from the broker (register)");
				return;
			}
			break;
		case NB_CLIENT_EV_LOST:
			(void)nb_blink_start(&a->f2.bl, now);
			break;
		case NB_CLIENT_EV_VERIFIED:
		case NB_CLIENT_EV_VERIFY_FAILED:
			(void)pin6_verify_event(a, &a->f2.client, &e, now);
			break;
		default:
			break; /* plans come over the first family's session */
		}
	}
	(void)now;
}

static void f2_pump(struct natpeer *a, uint64_t now, uint64_t *next)
{
	struct nb_client_tx ctx;
	struct nb_blink_tx tx;

	if (a->f2.st == F2_OFF || a->f2.st == F2_DOWN)
		return;
	if (a->f2.st == F2_NETCHECK) {
		struct nb_netcheck_tx ntx;
		while (nb_netcheck_poll(&a->f2.nc, now, &ntx) == 1)
			nb_udp_send(ntx.sock == NB_NC_MAP ? &a->f2.sock : &a->f2.filt, ntx.bytes, ntx.len, &ntx.to);
		if (nb_netcheck_done(&a->f2.nc))
			f2_netcheck_done(a, now);
		else if (nb_netcheck_deadline(&a->f2.nc) < *next)
			*next = nb_netcheck_deadline(&a->f2.nc);
	}
	if (a->f2.st == F2_WAIT && a->ever_registered)
		f2_register(a, now);
	if (a->f2.st != F2_REGISTER && a->f2.st != F2_UP)
		return;
	while (nb_client_poll(&a->f2.client, now, &ctx) == 1)
		(void)nb_blink_send(&a->f2.bl, ctx.bytes, ctx.len, now);
	while (nb_blink_poll(&a->f2.bl, now, &tx) == 1)
		(void)nb_udp_send(&a->f2.sock, tx.bytes, tx.len, &a->f2.broker);
	if (nb_blink_state(&a->f2.bl) == NB_BLINK_NO_KEY) {
		f2_down(a, "the broker did not answer the handshake");
		return;
	}
	f2_events(a, now);
	if (a->f2.st == F2_DOWN)
		return;
	if (nb_client_deadline(&a->f2.client) < *next)
		*next = nb_client_deadline(&a->f2.client);
	if (nb_blink_deadline(&a->f2.bl) < *next)
		*next = nb_blink_deadline(&a->f2.bl);
}

static void on_f2_recv(struct nb_udp *u, const uint8_t *data, size_t len, const struct nb_addr *from,
		       void *arg)
{
	struct natpeer *a = arg;
	uint64_t now = nb_now_ms();

	if (a->stopping || a->f2.st == F2_OFF || a->f2.st == F2_DOWN)
		return;
	if (u == &a->f2.filt) {
		if (a->f2.st == F2_NETCHECK)
			nb_netcheck_input(&a->f2.nc, NB_NC_FILT, data, len, from, now);
		pump(a);
		return;
	}
	if (a->f2.st == F2_NETCHECK && len > 0 && data[0] <= 0x03 &&
	    nb_netcheck_input(&a->f2.nc, NB_NC_MAP, data, len, from, now) == 0) {
		pump(a);
		return;
	}
	if (a->f2.bl_init && nb_addr_equal(from, &a->f2.broker) && len > 0 &&
	    (data[0] == NB_NOISE_TYPE_RESP || data[0] == NB_BLINK_HINT_TYPE ||
	     data[0] == NB_BLINK_KEYR_TYPE ||
	     (data[0] == NB_SEAL_TYPE && nb_blink_owns(&a->f2.bl, data, len)))) {
		ssize_t n = nb_blink_input(&a->f2.bl, data, len, from, now, a->plain, sizeof(a->plain));
		if (n > 0 && a->plain[0] == NB_CTRL_FIRST_BYTE)
			nb_client_input(&a->f2.client, a->plain, (size_t)n, &a->f2.broker, now);
		pump(a);
		return;
	}
	if (pin6_probe_input(a, data, len, from, now)) {
		pump(a);
		return;
	}
	/* a peer's checks, handshakes and data: as on the main socket */
	dispatch(a, data, len, from, now);
	pump(a);
}

static void pump(struct natpeer *a)
{
	uint64_t now = nb_now_ms(), next = UINT64_MAX;
	struct nb_client_tx ctx;

	if (a->stopping)
		return;
	if (a->stop_req) {
		shutdown_agent(a, 0);
		return;
	}
	if (a->mode == MODE_NETCHECK || a->mode == MODE_MAP)
		return; /* peer/natpeer_netcheck_run.c keeps its own timers */
	if (a->phase == PH_NETCHECK) {
		struct nb_netcheck_tx tx;
		struct nb_addr refl;
		while (nb_netcheck_poll(&a->nc, now, &tx) == 1)
			nb_udp_send(tx.sock == NB_NC_MAP ? &a->sock : &a->filt, tx.bytes, tx.len, &tx.to);
		if (!a->reflexive_given && nb_netcheck_reflexive(&a->nc, &refl)) {
			a->reflexive_given = true; /* test I: the UPnP mapping can be verified now */
			nb_portmap_set_reflexive(a->pm, &refl, now);
		}
		if (nb_netcheck_done(&a->nc))
			netcheck_done(a, now);
		else
			next = nb_netcheck_deadline(&a->nc);
	}
	if (a->stopping)
		return;
	register_when_due(a, now);
	if (a->stopping)
		return;
	f2_pump(a, now, &next);
	pin6_when_due(a, now);
	connect_when_due(a, now);
	if (a->stopping)
		return;
	/* Two rounds: the client's events of the first (a plan, say) may
	 * start a session or a request that must go out now. */
	for (int round = 0; round < 2; round++) {
		/* The allocation first: a UDP attempt that got no answer moves
		 * to TCP here, before a session waiting for it sees it failed. */
		turn_pump(a, now);
		for (int i = 0; i < AGENT_MAX_SESSIONS; i++)
			if (a->s[i].used)
				session_pump(a, &a->s[i], now);
		/* After the sessions: their results go out in this round, sealed
		 * (until the broker's channel is up they wait in its queue; before
		 * the broker's key is known, their retransmissions will do). */
		while (nb_client_poll(&a->client, now, &ctx) == 1)
			if (a->bl_on)
				(void)nb_blink_send(&a->bl, ctx.bytes, ctx.len, now);
		broker_flush(a, now);
		turn_pump(a, now);
		client_events(a, now);
		if (a->stopping)
			return;
	}
	/* A `registered` above may have started the second family, or let
	 * its registration go: its timers count from now. */
	f2_pump(a, now, &next);
	connect_when_due(a, now);
	check_end(a, now);
	if (a->stopping)
		return;

	if (nb_client_deadline(&a->client) < next)
		next = nb_client_deadline(&a->client);
	if (a->bl_on && nb_blink_deadline(&a->bl) < next)
		next = nb_blink_deadline(&a->bl);
	for (int f = 0; f < NB_FAM_COUNT; f++)
		if (a->tr[f].on && nb_turnc_deadline(&a->tr[f].turn) < next)
			next = nb_turnc_deadline(&a->tr[f].turn);
	for (int i = 0; i < AGENT_MAX_SESSIONS; i++)
		if (a->s[i].used) {
			uint64_t d = session_deadline(&a->s[i]);
			if (d < next)
				next = d;
		}
	if (a->ending && a->end_by < next)
		next = a->end_by;
	if (a->connect_due && a->connect_due_by > now && a->connect_due_by < next)
		next = a->connect_due_by; /* past it, the client's registered event wakes us */
	if (a->phase == PH_REGISTER && !a->reg_sent && next > now + 50)
		next = now + 50; /* connect: waiting for the port mapping to settle */
	if (a->stop_req)
		next = now; /* natpeer_stop() from a callback: from the loop, at once */
	if (next == UINT64_MAX) {
		uv_timer_stop(&a->timer);
		return;
	}
	uv_timer_start(&a->timer, on_timer, next > now ? next - now : 0, 0);
}

/* ---- Sealed frames: the broker's channel, the peers' handshakes and data ---- */

/* A peer's initiation (0xD1): for a session whose punch heard this source,
 * from the key its plan names. */
/* The socket the datagram being handled came in on, for session x: a
 * spraying socket's number, else 0 (the main one). */
static uint32_t rx_idx(const struct natpeer *a, const struct session *x)
{
	return a->rx.on && a->rx.s == x ? a->rx.idx : 0;
}

static void on_peer_init(struct natpeer *a, const uint8_t *data, size_t len, const struct nb_addr *from,
			 uint64_t now)
{
	uint8_t pro[64], payload[NB_NOISE_MAX_PAYLOAD];

	if (len < NB_NOISE_INIT_MIN)
		return;
	for (int i = 0; i < AGENT_MAX_SESSIONS; i++) {
		struct session *x = &a->s[i];
		struct nb_noise_hs hs;
		struct nb_noise_keys k;
		struct nb_seal_keys sk;
		ssize_t n;
		bool path = x->used && !x->initiator &&
			    nb_punch_state(&x->pu) != NB_PUNCH_FAILED &&
			    ((nb_punch_state(&x->pu) == NB_PUNCH_CONNECTED &&
			      nb_addr_equal(&x->pu.remote, from)) ||
			     nb_punch_heard_on(&x->pu, rx_idx(a, x), from));
		if (!path)
			continue;
		/* Our answer was lost: the same answer again, no new keys. */
		if (x->hs_resp_len > 0 && CRYPTO_memcmp(x->hs_eph, data + NB_NOISE_INIT_HDR_LEN, 32) == 0) {
			send_to(a, x->hs_resp, x->hs_resp_len, from);
			return;
		}
		if (nb_noise_init_responder(&hs, a->o->priv, pro, peer_prologue(x, pro)) != 0)
			return;
		n = nb_noise_read_init(&hs, data, len, payload, sizeof(payload));
		if (n < 0) {
			nb_noise_wipe(&hs);
			continue; /* another session's, or forged */
		}
		if (!nb_key_equal(nb_noise_remote_static(&hs), x->peer_key)) {
			char got[NB_KEY_TEXT_LEN + 1];
			nb_key_to_text(nb_noise_remote_static(&hs), got);
			say(a, NATPEER_LOG_INFO, "natpeer: handshake for %s from key %s, not the plan's %s: dropped\n",
				x->plan.peer, got, x->peer_key_text);
			nb_noise_wipe(&hs);
			return;
		}
		n = nb_noise_write_resp(&hs, new_index(a), NULL, 0, x->hs_resp, sizeof(x->hs_resp));
		if (n < 0 || nb_noise_split(&hs, &k) != 0) {
			nb_noise_wipe(&hs);
			x->hs_resp_len = 0;
			return;
		}
		x->hs_resp_len = (size_t)n;
		memcpy(x->hs_eph, data + NB_NOISE_INIT_HDR_LEN, 32);
		memcpy(sk.send, k.send, 32);
		memcpy(sk.recv, k.recv, 32);
		sk.local_index = k.local_index;
		sk.remote_index = k.remote_index;
		OPENSSL_cleanse(&k, sizeof(k));
		if (x->dc_set)
			n = nb_dc_rekey(&x->dc, &sk, now);
		else if ((n = nb_dc_init(&x->dc, &sk, now)) == 0)
			x->dc_set = true;
		OPENSSL_cleanse(&sk, sizeof(sk));
		if (n != 0)
			return;
		send_to(a, x->hs_resp, x->hs_resp_len, from);
		if (nb_punch_state(&x->pu) != NB_PUNCH_CONNECTED)
			(void)nb_punch_confirm_on(&x->pu, rx_idx(a, x), from, now);
		if (!x->connected && nb_punch_state(&x->pu) == NB_PUNCH_CONNECTED)
			session_secured(a, x, now);
		return;
	}
}

/* A peer's response (0xD2) to our initiation. */
static void on_peer_resp(struct natpeer *a, const uint8_t *data, size_t len, const struct nb_addr *from,
			 uint64_t now)
{
	uint8_t payload[NB_NOISE_MAX_PAYLOAD];

	for (int i = 0; i < AGENT_MAX_SESSIONS; i++) {
		struct session *x = &a->s[i];
		struct nb_noise_hs saved;
		struct nb_noise_keys k;
		struct nb_seal_keys sk;
		ssize_t n;
		int rc;
		/* From the remote; or, for an initiation sent early
		 * (early_handshake()), from where a check of ours went. */
		bool early = x->used && nb_punch_state(&x->pu) != NB_PUNCH_CONNECTED &&
			     nb_punch_state(&x->pu) != NB_PUNCH_FAILED && x->relay == REL_NONE &&
			     nb_punch_sent_to(&x->pu, rx_idx(a, x), from);
		if (!x->used || !x->initiator || !x->hs_busy || (!early && !nb_addr_equal(&x->pu.remote, from)))
			continue;
		saved = x->hs; /* a forged response must not end the handshake */
		n = nb_noise_read_resp(&x->hs, data, len, payload, sizeof(payload));
		if (n < 0 || nb_noise_split(&x->hs, &k) != 0) {
			x->hs = saved;
			OPENSSL_cleanse(&saved, sizeof(saved));
			continue;
		}
		OPENSSL_cleanse(&saved, sizeof(saved));
		x->hs_busy = false;
		memcpy(sk.send, k.send, 32);
		memcpy(sk.recv, k.recv, 32);
		sk.local_index = k.local_index;
		sk.remote_index = k.remote_index;
		OPENSSL_cleanse(&k, sizeof(k));
		if (x->dc_set) {
			rc = nb_dc_rekey(&x->dc, &sk, now);
		} else if ((rc = nb_dc_init(&x->dc, &sk, now)) == 0) {
			x->dc_set = true;
		}
		OPENSSL_cleanse(&sk, sizeof(sk));
		if (rc == 0 && early)
			(void)nb_punch_confirm_sent(&x->pu, rx_idx(a, x), from, now);
		if (rc == 0 && !x->connected)
			session_secured(a, x, now);
		return;
	}
}

/* A sealed frame (0xD3) that is not the broker's: a session's data. */
static void on_peer_data(struct natpeer *a, const uint8_t *data, size_t len, const struct nb_addr *from,
			 uint64_t now)
{
	uint32_t idx;
	ssize_t n;

	if (nb_seal_peek_index(data, len, &idx) != 0)
		return;
	for (int i = 0; i < AGENT_MAX_SESSIONS; i++) {
		struct session *s = &a->s[i];
		const struct nb_seal *k = &s->dc.seal;
		if (!s->used || !s->dc_set || !s->connected ||
		    (k->cur.local_index != idx && !(k->prev.valid && k->prev.local_index == idx)))
			continue;
		if (!nb_addr_equal(&s->pu.remote, from))
			return;
		n = nb_dc_open(&s->dc, data, len, a->plain, sizeof(a->plain), now);
		if (n < 0) {
			nb_log_debug("agent", "data from %s dropped: %s", s->plan.peer, nb_dc_strerror((int)n));
			return;
		}
		if (!s->confirmed) {
			s->confirmed = true;
			nb_log_debug("agent", "%s confirmed the path", s->plan.peer);
			/* application data flows once both sides are connected */
			if (a->cb.confirmed != NULL)
				a->cb.confirmed(a->cb_arg, (uint32_t)i);
		}
		if (n > 0 && s->used && a->cb.data != NULL)
			a->cb.data(a->cb_arg, (uint32_t)i, a->plain, (size_t)n);
		return;
	}
}

/* The broker's channel: a control message inside a sealed frame. */
static void on_broker_frame(struct natpeer *a, const uint8_t *data, size_t len, const struct nb_addr *from,
			    uint64_t now)
{
	uint64_t shaken = a->bl.st.handshakes;
	ssize_t n = nb_blink_input(&a->bl, data, len, from, now, a->plain, sizeof(a->plain));
	uint8_t key[NB_KEY_LEN];

	/* A new session counts at the broker once a sealed frame confirms it:
	 * with nothing queued, an empty one (as WireGuard's keepalive after a
	 * handshake), so that the broker's replies move to the new keys now. */
	if (a->bl.st.handshakes != shaken && a->bl.q_n == 0)
		(void)nb_blink_send(&a->bl, a->plain, 0, now);
	if (nb_blink_learned(&a->bl, key) == 1) { /* first use: pin it */
		char text[NB_KEY_TEXT_LEN + 1];
		memcpy(a->broker_key, key, NB_KEY_LEN);
		a->broker_key_known = true;
		nb_key_to_text(key, text);
		known_record(a, a->broker_name, key);
		say(a, NATPEER_LOG_INFO, "broker %s: key %s, first use: pinned in %s\n", a->broker_str, text,
			a->o->known_path);
	}
	if (n > 0 && a->plain[0] == NB_CTRL_FIRST_BYTE)
		nb_client_input(&a->client, a->plain, (size_t)n, &a->o->broker, now);
	else if (n < 0 && nb_log_get_level() >= NB_LOG_DEBUG)
		nb_log_debug("agent", "frame 0x%02x from the broker dropped: %d", data[0], (int)n);
}

static void on_recv(struct nb_udp *u, const uint8_t *data, size_t len, const struct nb_addr *from,
		    void *arg)
{
	struct natpeer *a = arg;
	uint64_t now = nb_now_ms();

	if (a->stopping)
		return;
	if (u == &a->filt) {
		if (a->phase == PH_NETCHECK)
			nb_netcheck_input(&a->nc, NB_NC_FILT, data, len, from, now);
		pump(a);
		return;
	}
	/* From our TURN server: its responses (STUN) and relayed data
	 * (ChannelData 0x40-0x7F, Data indications). The rest of what that
	 * address sends (it may be the broker too) goes on as usual. */
	for (int f = 0; f < NB_FAM_COUNT; f++) {
		struct talloc *t = &a->tr[f];
		if (t->on && !t->tcp && len > 0 && (data[0] <= 0x03 || (data[0] >= 0x40 && data[0] <= 0x7F)) &&
		    data[0] != NB_CTRL_FIRST_BYTE && nb_addr_equal(from, &t->turn.cfg.server) &&
		    a->phase != PH_NETCHECK) {
			turn_input(a, t, data, len, now);
			pump(a);
			return;
		}
	}
	dispatch(a, data, len, from, now);
	pump(a);
}

/* One datagram from `from`: over UDP, or relayed to us by the TURN server
 * (then `from` is the peer), or over the broker's TCP link. */
static void dispatch(struct natpeer *a, const uint8_t *data, size_t len, const struct nb_addr *from,
		     uint64_t now)
{
	switch (nb_wire_classify(data, len)) {
	case NB_WIRE_STUN: {
		bool taken = false;
		if (a->phase == PH_NETCHECK && nb_netcheck_input(&a->nc, NB_NC_MAP, data, len, from, now) == 0)
			break;
		for (int i = 0; i < AGENT_MAX_SESSIONS && !taken; i++) {
			int r;
			if (!a->s[i].used || nb_punch_state(&a->s[i].pu) == NB_PUNCH_FAILED)
				continue;
			r = nb_punch_input(&a->s[i].pu, data, len, from, now);
			if (r == 0) {
				taken = true;
				break;
			}
			if (nb_log_get_level() >= NB_LOG_DEBUG) {
				char f[NB_ADDR_STRLEN];
				nb_log_debug("agent", "STUN from %s not for %s: %s",
					     nb_addr_format(from, f, sizeof(f)), a->s[i].plan.peer,
					     nb_punch_drop_name(r));
			}
		}
		if (!taken && a->phase != PH_NETCHECK && a->phase != PH_PEERS)
			keep_early(a, data, len, from, now);
		break;
	}
	case NB_WIRE_CTRL: {
		/* Unsealed control messages are not taken, but for the broker's
		 * probe of a port mapping, which comes from another port by
		 * design and proves nothing but that the mapping is open. */
		struct nb_ctrl_msg *m = malloc(sizeof(*m));
		if (m != NULL && nb_ctrl_decode(m, data, len) == (ssize_t)len && m->type == NB_CTRL_PROBE)
			nb_client_input(&a->client, data, len, from, now);
		free(m);
		break;
	}
	case NB_WIRE_DATA:
		switch (data[0]) {
		case NB_NOISE_TYPE_INIT:
			on_peer_init(a, data, len, from, now);
			break;
		case NB_NOISE_TYPE_RESP:
			if (a->bl_on && nb_addr_equal(from, &a->o->broker))
				on_broker_frame(a, data, len, from, now);
			else
				on_peer_resp(a, data, len, from, now);
			break;
		case NB_SEAL_TYPE:
			if (a->bl_on && nb_blink_owns(&a->bl, data, len))
				on_broker_frame(a, data, len, from, now);
			else
				on_peer_data(a, data, len, from, now);
			break;
		case NB_BLINK_HINT_TYPE:
			if (a->bl_on)
				on_broker_frame(a, data, len, from, now);
			break;
		case NB_BLINK_KEYR_TYPE:
			if (a->bl_on)
				on_broker_frame(a, data, len, from, now);
			break;
		default:
			break;
		}
		break;
	case NB_WIRE_DROP:
		if (nb_log_get_level() >= NB_LOG_DEBUG) {
			char f[NB_ADDR_STRLEN];
			nb_log_debug("agent", "%zu bytes from %s dropped: not STUN, control or data", len,
				     nb_addr_format(from, f, sizeof(f)));
		}
		break;
	}
}

/* A datagram on a birthday spraying socket: checks go to its session's
 * punch machine with the socket's number; the rest (the peers' handshake
 * and data, once the path is found) as any other, with replies routed
 * back through the same socket (spray_routes()). */
static void on_spray_recv(struct nb_spray *sp, uint32_t idx, const uint8_t *data, size_t len,
			  const struct nb_addr *from, void *arg)
{
	struct natpeer *a = arg;
	uint64_t now = nb_now_ms();
	struct session *s = NULL;

	if (a->stopping)
		return;
	for (int i = 0; i < AGENT_MAX_SESSIONS && s == NULL; i++)
		if (a->s[i].used && a->s[i].sp == sp)
			s = &a->s[i];
	if (s == NULL)
		return;
	if (nb_wire_classify(data, len) == NB_WIRE_STUN) {
		int r = nb_punch_input_on(&s->pu, idx, data, len, from, now);
		if (r != 0 && nb_log_get_level() >= NB_LOG_DEBUG) {
			char f[NB_ADDR_STRLEN];
			nb_log_debug("agent", "STUN on socket %u from %s: %s", idx,
				     nb_addr_format(from, f, sizeof(f)), nb_punch_drop_name(r));
		}
	} else {
		a->rx.on = true;
		a->rx.s = s;
		a->rx.idx = idx;
		a->rx.from = *from;
		dispatch(a, data, len, from, now);
		a->rx.on = false;
	}
	pump(a);
}

/* ---- Start and stop ------------------------------------------------------------------ */

/* The port mapping's progress lines. */
static void on_portmap_line(void *arg, const char *line)
{
	say(arg, NATPEER_LOG_INFO, "%s", line);
}

static void on_timer_closed(uv_handle_t *h)
{
	unref(h->data);
}

static void shutdown_agent(struct natpeer *a, int code)
{
	if (a->stopping)
		return;
	if (a->started)
		send_bye(a, nb_now_ms());
	a->stopping = true;
	a->stop_req = false;
	uv_timer_stop(&a->timer);
	uv_close((uv_handle_t *)&a->timer, on_timer_closed);
	uv_check_stop(&a->flusher);
	uv_close((uv_handle_t *)&a->flusher, on_timer_closed);
	for (int f = 0; f < NB_FAM_COUNT; f++) {
		struct talloc *t = &a->tr[f];
		if (t->on) { /* free the allocation at once (best effort) */
			struct nb_turnc_tx tx;
			if (nb_turnc_close(&t->turn, nb_now_ms(), &tx) == 1)
				turn_out(a, t, tx.bytes, tx.len);
		}
		if (t->tconn_open)
			nb_tcpconn_close(&t->tconn);
		t->tconn_open = false;
	}
	if (a->broker_tcp)
		nb_tcpconn_close(&a->bconn);
	for (int i = 0; i < AGENT_MAX_SESSIONS; i++) {
		nb_spray_close(a->s[i].sp);
		a->s[i].sp = NULL;
	}
	if (a->sock_open)
		nb_udp_close(&a->sock, on_udp_closed);
	if (a->filt_open)
		nb_udp_close(&a->filt, on_udp_closed);
	a->sock_open = a->filt_open = false;
	if (a->f2.open)
		nb_udp_close(&a->f2.sock, on_udp_closed);
	if (a->f2.filt_open)
		nb_udp_close(&a->f2.filt, on_udp_closed);
	a->f2.open = a->f2.filt_open = false;
	if (a->f2.bl_init)
		nb_blink_wipe(&a->f2.bl);
	a->f2.bl_init = false;
	/* The mapping is deleted on the way out, bounded by the UPnP client's
	 * stop time; its handles keep the loop until then. */
	nb_portmap_stop(a->pm, NULL, NULL);
	a->pm = NULL;
	if (a->pin6.pm != NULL)
		pin6_stop(a);
	if (a->npnc != NULL) { /* netcheck, map: `stopped` once it is done */
		nb_npnc_stop(a->npnc);
		return;
	}
	if (a->cb.stopped != NULL)
		a->cb.stopped(a->cb_arg, code);
}

/* The last of the memory: from the loop, an iteration after the last
 * close callback (libuv finishes a batch of closes in one go). */
static void final_free(struct natpeer *a)
{
	nb_lib_log_detach(&a->log);
	free(a->rows);
	nb_known_free(&a->known);
	for (int i = 0; i < AGENT_MAX_SESSIONS; i++)
		if (a->s[i].used)
			session_free(&a->s[i]);
	if (a->bl_on)
		nb_blink_wipe(&a->bl);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}

static void on_reaper_closed(uv_handle_t *h)
{
	free(h);
}

static void on_reap(uv_idle_t *h)
{
	struct natpeer *a = h->data;

	uv_idle_stop(h);
	uv_close((uv_handle_t *)h, on_reaper_closed);
	final_free(a);
}

static void reap(struct natpeer *a)
{
	if (a->reaper != NULL)
		return;
	a->reaper = malloc(sizeof(*a->reaper));
	if (a->reaper == NULL) { /* no memory for the last step: leak rather than risk a use after free */
		return;
	}
	uv_idle_init(a->loop, a->reaper);
	a->reaper->data = a;
	uv_idle_start(a->reaper, on_reap);
}

static void unref(struct natpeer *a)
{
	if (a->refs > 0 && --a->refs == 0 && a->free_req)
		reap(a);
}

/* natpeer_listen, natpeer_connect, natpeer_peers, natpeer_matrix. */
static int start(struct natpeer *a, enum mode mode)
{
	const struct natpeer_config *o = a->o;
	struct nb_addr any;
	uint8_t seed[32];
	uint64_t now;
	int rc;

	if (a->mode != MODE_NONE || a->stopping || a->stop_req)
		return NATPEER_E_STATE;
	if (!o->has_key || o->broker.family == NB_AF_NONE ||
	    ((mode == MODE_LISTEN || mode == MODE_CONNECT) && o->id[0] == '\0'))
		return NATPEER_E_CONFIG;
	a->mode = mode;
	nb_addr_format(&o->broker, a->broker_str, sizeof(a->broker_str));
	/* Who the broker is: its key demanded, else the key pinned at first
	 * use, else ask it (and pin what it says: trust on first use). */
	{
		char err[512], text[NB_KEY_TEXT_LEN + 1];
		uint8_t pinned[NB_KEY_LEN];
		if (o->known_path[0] != '\0' && nb_known_load(&a->known, o->known_path, err, sizeof(err)) != 0) {
			say(a, NATPEER_LOG_ERROR, "natpeer: %s", err);
			return NATPEER_E_KNOWN;
		}
		nb_known_broker_name(&o->broker, a->broker_name);
		if (known_get(a, a->broker_name, pinned) == 1) {
			if (o->has_broker_key && !nb_key_equal(pinned, o->broker_key)) {
				nb_key_to_text(o->broker_key, text);
				say(a, NATPEER_LOG_ERROR, "natpeer: --broker-key %s is not the key pinned for %s in %s; "
					"`natpeer forget %s` if the broker's key changed",
				    text, a->broker_str, o->known_path, a->broker_name);
				return NATPEER_E_KEY;
			}
			memcpy(a->broker_key, pinned, NB_KEY_LEN);
			a->broker_key_known = true;
		} else if (o->has_broker_key) {
			memcpy(a->broker_key, o->broker_key, NB_KEY_LEN);
			a->broker_key_known = true;
		}
		OPENSSL_cleanse(pinned, sizeof(pinned));
	}
	rc = nb_local_ip_toward(&o->broker, &a->local);
	if (rc != 0) {
		say(a, NATPEER_LOG_ERROR, "natpeer: no route to %s: %s (check --broker and the network)",
		    a->broker_str, strerror(-rc));
		return NATPEER_E_SYSTEM;
	}
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
		say(a, NATPEER_LOG_ERROR, "natpeer: getrandom: %s", strerror(errno));
		return NATPEER_E_SYSTEM;
	}
	memset(&any, 0, sizeof(any));
	any.family = o->broker.family;
	any.port = o->port;
	rc = udp_open(a, &a->sock, &any, on_recv);
	if (rc == 0) {
		a->sock_open = true;
		if (mode != MODE_PEERS && mode != MODE_MATRIX) {
			any.port = 0;
			rc = udp_open(a, &a->filt, &any, on_recv);
			a->filt_open = rc == 0;
		}
	}
	if (rc != 0) {
		char s[NB_ADDR_STRLEN];
		any.port = o->port;
		say(a, NATPEER_LOG_ERROR, "natpeer: cannot bind UDP %s: %s%s", nb_addr_format(&any, s, sizeof(s)),
		    uv_strerror(rc), rc == UV_EADDRINUSE ? " (pick another --port)" : "");
		if (a->sock_open)
			nb_udp_close(&a->sock, on_udp_closed);
		a->sock_open = false;
		return NATPEER_E_SYSTEM;
	}
	a->started = true;
	a->local.port = a->sock.local.port;

	now = nb_now_ms();
	nb_client_init(&a->client, NULL, &o->broker, seed, now);
	memcpy(a->client.admin, o->admin, sizeof(a->client.admin));
	memcpy(a->idx_seed, seed, sizeof(a->idx_seed));
	a->idx_seed[0] ^= 0xA5;
	if (a->broker_key_known && !nb_known_lookup(&a->known, a->broker_name))
		known_record(a, a->broker_name, a->broker_key); /* demanded, now pinned */
	blink_up(a, a->broker_key_known, now);
	if (mode == MODE_PEERS || mode == MODE_MATRIX) {
		a->phase = PH_PEERS;
		if (mode == MODE_MATRIX)
			nb_client_matrix(&a->client, now);
		else
			nb_client_peers(&a->client, now);
	} else {
		uint8_t nseed[NB_STUN_TID_LEN];
		memcpy(nseed, seed + 16, sizeof(nseed)); /* tx ids use the HMAC of the whole seed */
		nseed[0] ^= 0x5a;
		a->phase = PH_NETCHECK;
		say(a, NATPEER_LOG_INFO, "netcheck: testing mapping and filtering against %s...", a->broker_str);
		nb_netcheck_init(&a->nc, NULL, &o->broker, &a->local, nseed, now);
		/* The broker's other family given: its NAT tests at once, in
		 * parallel (its registration waits for the first one's). */
		if (o->has_broker2 && !o->one_family && o->broker2.family != o->broker.family)
			f2_start(a, &o->broker2, now);
		if (o->upnp) { /* in parallel with the NAT tests */
			struct nb_portmap_opts po = {
				.internal_port = a->local.port, .ssdp_flags = o->upnp_flags, .quiet = false,
				.log = on_portmap_line, .log_arg = a,
				.check_s = o->upnp_check_s, .protocols = o->portmap_protocols,
				.verify = nb_client_verify_hook, .verify_arg = &a->client,
			};
			rc = nb_portmap_open(&a->pm, a->loop, &po, on_portmap, a);
			if (rc != 0) {
				a->pm = NULL;
				say(a, NATPEER_LOG_ERROR, "natpeer: UPnP: cannot start: %s (going on with hole punching)",
				    uv_strerror(rc));
			}
		}
	}
	OPENSSL_cleanse(seed, sizeof(seed));
	pump(a);
	return 0;
}

/* ---- The API ------------------------------------------------------------------------- */

/* The pump's own loop (natpeer_create_pump), apart from the instance: it
 * outlives it by the last iterations of natpeer_close(). */
struct pump {
	uv_loop_t loop;
	bool in_run;  /* inside natpeer_pump_run() */
	bool closing; /* natpeer_close() was called */
};

static int create(uv_loop_t *loop, const natpeer_config *cfg, natpeer **ret)
{
	struct natpeer *a;

	if (loop == NULL || cfg == NULL || ret == NULL)
		return NATPEER_E_INVAL;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NATPEER_E_NOMEM;
	a->cfg = *cfg;
	a->o = &a->cfg;
	a->cb = cfg->cb;
	a->cb_arg = cfg->cb_arg;
	a->loop = loop;
	for (int f = 0; f < NB_FAM_COUNT; f++) {
		a->tr[f].a = a;
		a->tr[f].fam = (uint8_t)f;
	}
	nb_known_init(&a->known);
	a->log.fn = on_core_log;
	a->log.arg = a;
	a->log.level = cfg->log_level;
	nb_lib_log_attach(&a->log);
	uv_timer_init(loop, &a->timer);
	a->timer.data = a;
	uv_check_init(loop, &a->flusher);
	a->flusher.data = a;
	a->refs = 2; /* the timer and the flusher */
	*ret = a;
	return 0;
}

int natpeer_create(uv_loop_t *loop, const natpeer_config *cfg, natpeer **ret)
{
	return create(loop, cfg, ret);
}

int natpeer_create_pump(const natpeer_config *cfg, natpeer **ret)
{
	struct pump *p;
	int rc;

	if (cfg == NULL || ret == NULL)
		return NATPEER_E_INVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NATPEER_E_NOMEM;
	if (uv_loop_init(&p->loop) != 0) {
		free(p);
		return NATPEER_E_SYSTEM;
	}
	rc = create(&p->loop, cfg, ret);
	if (rc != 0) {
		uv_loop_close(&p->loop);
		free(p);
		return rc;
	}
	(*ret)->own_loop = &p->loop;
	return 0;
}

int natpeer_listen(natpeer *np)
{
	return np == NULL ? NATPEER_E_INVAL : start(np, MODE_LISTEN);
}

int natpeer_connect(natpeer *np, const char *peer, const uint8_t key[NATPEER_KEY_LEN])
{
	if (np == NULL || peer == NULL || !nb_known_name_ok(peer) || peer[0] == '@' ||
	    strcmp(peer, np->cfg.id) == 0)
		return NATPEER_E_INVAL;
	if (np->mode != MODE_NONE || np->stopping)
		return NATPEER_E_STATE;
	snprintf(np->cfg.peer, sizeof(np->cfg.peer), "%s", peer);
	np->cfg.has_peer_key = key != NULL;
	if (key != NULL)
		memcpy(np->cfg.peer_key, key, NB_KEY_LEN);
	return start(np, MODE_CONNECT);
}

int natpeer_peers(natpeer *np)
{
	return np == NULL ? NATPEER_E_INVAL : start(np, MODE_PEERS);
}

int natpeer_matrix(natpeer *np)
{
	return np == NULL ? NATPEER_E_INVAL : start(np, MODE_MATRIX);
}

/* ---- netcheck and map: peer/natpeer_netcheck_run.c's hooks ------------------------- */

static void npnc_line(void *arg, int level, const char *line)
{
	struct natpeer *a = arg;

	if (a->cb.log != NULL)
		a->cb.log(a->cb_arg, level, line);
}

static void npnc_report(void *arg, const natpeer_netcheck_report *rep)
{
	struct natpeer *a = arg;

	if (a->cb.netcheck != NULL)
		a->cb.netcheck(a->cb_arg, rep);
}

static void npnc_mapped(void *arg, const natpeer_map_info *info)
{
	struct natpeer *a = arg;

	if (a->cb.mapped != NULL)
		a->cb.mapped(a->cb_arg, info);
}

static void npnc_map_failed(void *arg, const char *status, const char *reason)
{
	struct natpeer *a = arg;

	if (a->cb.map_failed != NULL)
		a->cb.map_failed(a->cb_arg, status, reason);
}

/* The run is over (and freed): `stopped` with its status. */
static void npnc_done(void *arg, int status)
{
	struct natpeer *a = arg;

	a->npnc = NULL;
	if (!a->stopping)
		shutdown_agent(a, status);
	else if (a->cb.stopped != NULL)
		a->cb.stopped(a->cb_arg, status);
	unref(a);
}

static int npnc_start(struct natpeer *a, enum mode mode, struct nb_npnc_opts *no)
{
	const struct natpeer_config *o = a->o;
	const struct nb_npnc_hooks h = {
		.arg = a, .line = npnc_line, .report = npnc_report, .mapped = npnc_mapped,
		.map_failed = npnc_map_failed, .done = npnc_done,
	};
	int rc;

	no->server = o->broker;
	no->upnp = o->upnp;
	no->upnp_flags = o->upnp_flags;
	no->portmap_protocols = o->portmap_protocols;
	no->has_identity = o->has_key;
	memcpy(no->priv, o->priv, sizeof(no->priv));
	memcpy(no->pub, o->pub, sizeof(no->pub));
	no->has_broker_key = o->has_broker_key;
	memcpy(no->broker_key, o->broker_key, sizeof(no->broker_key));
	memcpy(no->known_path, o->known_path, sizeof(no->known_path));
	a->mode = mode;
	rc = nb_npnc_start(a->loop, no, &h, &a->npnc);
	OPENSSL_cleanse(no, sizeof(*no));
	if (rc != 0)
		return rc;
	a->refs++; /* npnc_done gives it back */
	return 0;
}

int natpeer_netcheck(natpeer *np, uint32_t timeout_ms)
{
	struct nb_npnc_opts no;

	if (np == NULL)
		return NATPEER_E_INVAL;
	if (np->mode != MODE_NONE || np->stopping || np->stop_req)
		return NATPEER_E_STATE;
	if (np->cfg.broker.family == NB_AF_NONE)
		return NATPEER_E_CONFIG;
	memset(&no, 0, sizeof(no));
	no.has_server2 = np->cfg.has_broker2 && np->cfg.broker2.family != np->cfg.broker.family;
	no.server2 = np->cfg.broker2;
	no.port = np->cfg.port;
	no.timeout_ms = timeout_ms;
	return npnc_start(np, MODE_NETCHECK, &no);
}

int natpeer_map(natpeer *np, int tcp, uint16_t port, uint16_t external, uint32_t lease_s, uint32_t timeout_ms)
{
	struct nb_npnc_opts no;

	if (np == NULL || port == 0 || (lease_s != 0 && (lease_s < 60 || lease_s > 604800)))
		return NATPEER_E_INVAL;
	if (np->mode != MODE_NONE || np->stopping || np->stop_req)
		return NATPEER_E_STATE;
	if (np->cfg.broker.family == NB_AF_NONE || !np->cfg.has_key || !np->cfg.upnp)
		return NATPEER_E_CONFIG;
	memset(&no, 0, sizeof(no));
	no.timeout_ms = timeout_ms != 0 ? timeout_ms : 15000;
	no.map.on = true;
	no.map.tcp = tcp != 0;
	no.map.port = port;
	no.map.external = external;
	no.map.lease_s = lease_s;
	no.map.check_s = np->cfg.upnp_check_s;
	return npnc_start(np, MODE_MAP, &no);
}

int natpeer_send(natpeer *np, uint32_t channel, const void *data, size_t len)
{
	struct session *s;

	if (np == NULL || (data == NULL && len > 0))
		return NATPEER_E_INVAL;
	if (np->stopping || !np->started)
		return NATPEER_E_STATE;
	if (len > NATPEER_MAX_DATAGRAM)
		return NATPEER_E_TOOBIG;
	if (channel >= AGENT_MAX_SESSIONS)
		return NATPEER_E_NOCHAN;
	s = &np->s[channel];
	if (!s->used || !s->connected)
		return NATPEER_E_NOCHAN;
	if (!s->confirmed)
		return NATPEER_E_NOTREADY;
	send_frame(np, s, data, len, nb_now_ms());
	return 0;
}

/* Stop from the loop: at once, or after the callback that asked. */
static void stop_soon(struct natpeer *a)
{
	a->stop_req = true;
	uv_timer_start(&a->timer, on_timer, 0, 0);
}

int natpeer_finish(natpeer *np, uint32_t linger_ms)
{
	uint64_t by;

	if (np == NULL)
		return NATPEER_E_INVAL;
	if (np->stopping)
		return NATPEER_E_STATE;
	if (!np->started) {
		stop_soon(np);
		return 0;
	}
	by = nb_now_ms() + linger_ms;
	if (!np->ending || by < np->end_by)
		np->end_by = by;
	np->ending = true;
	uv_timer_start(&np->timer, on_timer, 0, 0);
	return 0;
}

int natpeer_stop(natpeer *np)
{
	if (np == NULL)
		return NATPEER_E_INVAL;
	if (!np->stopping)
		stop_soon(np);
	return 0;
}

void natpeer_close(natpeer *np)
{
	struct pump *p;

	if (np == NULL)
		return;
	p = np->own_loop != NULL ? (struct pump *)(void *)np->own_loop : NULL;
	memset(&np->cb, 0, sizeof(np->cb));
	np->free_req = true;
	if (!np->stopping)
		stop_soon(np);
	else if (np->refs == 0)
		reap(np);
	/* np may be gone from here on */
	if (p != NULL) {
		p->closing = true;
		if (!p->in_run) {
			uv_run(&p->loop, UV_RUN_DEFAULT);
			(void)uv_loop_close(&p->loop);
			free(p);
		}
	}
}

int natpeer_pump_fd(natpeer *np)
{
	if (np == NULL)
		return NATPEER_E_INVAL;
	if (np->own_loop == NULL)
		return NATPEER_E_STATE;
	return uv_backend_fd(np->own_loop);
}

int natpeer_pump_timeout(natpeer *np)
{
	if (np == NULL)
		return NATPEER_E_INVAL;
	if (np->own_loop == NULL)
		return NATPEER_E_STATE;
	return uv_backend_timeout(np->own_loop);
}

int natpeer_pump_run(natpeer *np)
{
	struct pump *p;

	if (np == NULL)
		return NATPEER_E_INVAL;
	if (np->own_loop == NULL)
		return NATPEER_E_STATE;
	p = (struct pump *)(void *)np->own_loop;
	if (p->in_run)
		return NATPEER_E_STATE;
	p->in_run = true;
	uv_run(&p->loop, UV_RUN_NOWAIT);
	p->in_run = false;
	if (p->closing) { /* natpeer_close() from a callback: np is gone or going */
		uv_run(&p->loop, UV_RUN_DEFAULT);
		(void)uv_loop_close(&p->loop);
		free(p);
	}
	return 0;
}
