/* proto/ctrl.h - control-message codec: JSON datagrams <-> plain C structs.
 *
 * Pure: bytes in, structs out, and structs in, bytes out. No I/O, no clock.
 * cJSON is used inside and never shows in this API; everything it allocates
 * is freed before a call returns. The wire format is specified in
 * docs/protocol.md; this header is its C mirror.
 *
 * One control message = one UDP datagram = one UTF-8 JSON object:
 *
 *   byte 0                                              byte len-1 (<= 1199)
 *   +---+------------------------------------------------------------+---+
 *   | { |  "v":1,"type":"<word>","tx":"<16 hex>", per-type fields... | } |
 *   +---+------------------------------------------------------------+---+
 *   0x7B: the first byte tells control apart from STUN (0x00-0x03) and the
 *   data channel (0xD0-0xDF) on the one shared socket (RFC 7983 style; see
 *   nb_wire_classify()). Nothing may follow the closing brace, not even
 *   whitespace.
 *
 * Every string in a decoded struct is NUL-terminated, within its limit, and
 * already validated (charset, UTF-8, no control characters); every enum
 * holds a value from its list; every address parsed, port non-zero.
 * The decoder never writes to its input, and leaves *ret untouched on
 * failure. Not thread-safe: cJSON's parser records its error position in a
 * process-wide variable (one loop thread, per STYLE.md, is fine).
 */
#ifndef NB_PROTO_CTRL_H
#define NB_PROTO_CTRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/addr.h"

/* ---- Framing and limits ------------------------------------------------ */

#define NB_CTRL_VERSION 1         /* "v" */
#define NB_CTRL_MAX_DATAGRAM 1200 /* bytes, decode and encode */
#define NB_CTRL_FIRST_BYTE 0x7B   /* '{' */
/* Objects and arrays nest at most this deep, the top-level object counting
 * as 1 (peer_list -> peers[] -> {peer} is 3). Checked on the raw bytes
 * before cJSON sees them. */
#define NB_CTRL_MAX_DEPTH 4

#define NB_CTRL_TX_LEN 16       /* "tx": exactly 16 lower-case hex chars */
#define NB_CTRL_SESSION_LEN 16  /* "session": exactly 16 lower-case hex chars */
#define NB_CTRL_PUBKEY_LEN 43   /* "peer_key": a public key, 43 base64url chars (common/keys.h) */
#define NB_CTRL_ID_MAX 32       /* peer ids: 1..32 of [A-Za-z0-9._-] */
#define NB_CTRL_TOKEN_MAX 64    /* 1..64 printable ASCII, 0x20..0x7E */
#define NB_CTRL_USERNAME_MAX 64 /* 1..64 printable ASCII except space, 0x21..0x7E */
#define NB_CTRL_REASON_MAX 160  /* bytes of UTF-8, no control characters */
#define NB_CTRL_MAX_ADDRS 8     /* "local", "candidates" */
#define NB_CTRL_MAX_PAGE 24     /* entries in one peer_list / matrix_list page */

/* Request retransmission (the shells implement it; the codec only names
 * the numbers). RFC 8489 §6.2.1 uses RTO 500 ms, Rc = 7, Rm = 16; we halve
 * the RTO and send one try fewer, for interactivity: tries at 0, 250, 750,
 * 1750, 3750, 7750 ms, then give up at 7750 + 16 * 250 = 11750 ms. */
#define NB_CTRL_RTO_MS 250
#define NB_CTRL_MAX_TRIES 6
#define NB_CTRL_FINAL_WAIT_MS (16 * NB_CTRL_RTO_MS)

/* Numeric ranges (inclusive). */
#define NB_CTRL_KEEPALIVE_MIN_S 1
#define NB_CTRL_KEEPALIVE_MAX_S 3600
#define NB_CTRL_EXPIRES_MIN_S 1
#define NB_CTRL_EXPIRES_MAX_S 86400
#define NB_CTRL_DEADLINE_MIN_MS 1
#define NB_CTRL_DEADLINE_MAX_MS 600000
#define NB_CTRL_DELAY_MAX_MS 60000
/* Birthday punching (docs/protocol.md "Birthday"). */
#define NB_CTRL_BDAY_SOCKETS_MAX 1024 /* sockets the spraying side opens */
#define NB_CTRL_BDAY_PROBES_MAX 64512 /* every port of 1024..65535 once */
#define NB_CTRL_BDAY_RATE_MAX 10000   /* probes per second */
/* The ports a birthday probe picks from: NATs allocate their random ports
 * above the well-known ones (Linux: 1024..65535). */
#define NB_BDAY_PORT_MIN 1024
#define NB_BDAY_PORTS (65536 - NB_BDAY_PORT_MIN)
/* RFC 8489 §14.8: "The Class represents the hundreds digit of the error
 * code. The value MUST be between 3 and 6." We use the same range. */
#define NB_CTRL_CODE_MIN 300
#define NB_CTRL_CODE_MAX 699

/* Error codes for "error" messages (docs/protocol.md lists when). */
#define NB_CTRL_ERR_BAD_REQUEST 400
#define NB_CTRL_ERR_UNAUTHORIZED 401
#define NB_CTRL_ERR_FORBIDDEN 403
#define NB_CTRL_ERR_UNKNOWN_PEER 404
#define NB_CTRL_ERR_CONFLICT 409
#define NB_CTRL_ERR_RATE_LIMITED 429
#define NB_CTRL_ERR_SERVER 500
#define NB_CTRL_ERR_FULL 503
#define NB_CTRL_ERR_UNREACHABLE 504 /* a TCP verify: the broker could not connect to the mapping */

/* ---- Demultiplexing one shared UDP socket ------------------------------ */

/* First byte -> who gets the datagram (RFC 7983 §7 style):
 *   0x00-0x03  STUN      (then nb_stun_is_stun() and the magic cookie)
 *   0x7B       control   (nb_ctrl_decode())
 *   0xD0-0xDF  data      (authenticated peer-to-peer channel: peer/datachan.h)
 *   else       drop
 * 0x7B and 0xD0-0xDF lie outside every RFC 7983 range (0-3, 16-19, 20-63,
 * 64-79, 128-191). */
enum nb_wire_kind {
	NB_WIRE_DROP = 0,
	NB_WIRE_STUN,
	NB_WIRE_CTRL,
	NB_WIRE_DATA,
};
#define NB_WIRE_DATA_FIRST 0xD0
#define NB_WIRE_DATA_LAST 0xDF

enum nb_wire_kind nb_wire_classify(const uint8_t *buf, size_t len);

/* ---- Shared vocabulary (exact words; used across the project) --------- */

/* RFC 4787 §4.1 mapping behaviour; NONE = no NAT (the address is public). */
enum nb_mapping {
	NB_MAPPING_UNKNOWN = 0,                /* "unknown" */
	NB_MAPPING_NONE,                       /* "none" */
	NB_MAPPING_ENDPOINT_INDEPENDENT,       /* "endpoint-independent" */
	NB_MAPPING_ADDRESS_DEPENDENT,          /* "address-dependent" */
	NB_MAPPING_ADDRESS_AND_PORT_DEPENDENT, /* "address-and-port-dependent" */
};
#define NB_MAPPING_COUNT 5

/* RFC 4787 §5 filtering behaviour. */
enum nb_filtering {
	NB_FILTERING_UNKNOWN = 0,                /* "unknown" */
	NB_FILTERING_ENDPOINT_INDEPENDENT,       /* "endpoint-independent" */
	NB_FILTERING_ADDRESS_DEPENDENT,          /* "address-dependent" */
	NB_FILTERING_ADDRESS_AND_PORT_DEPENDENT, /* "address-and-port-dependent" */
};
#define NB_FILTERING_COUNT 4

/* Classic RFC 3489 names, derived for display only. */
enum nb_nat_type {
	NB_NAT_UNKNOWN = 0,          /* "unknown" */
	NB_NAT_OPEN,                 /* "open" */
	NB_NAT_FULL_CONE,            /* "full-cone" */
	NB_NAT_RESTRICTED_CONE,      /* "restricted-cone" */
	NB_NAT_PORT_RESTRICTED_CONE, /* "port-restricted-cone" */
	NB_NAT_SYMMETRIC,            /* "symmetric" */
	NB_NAT_UDP_BLOCKED,          /* "udp-blocked" */
	NB_NAT_FIREWALL,             /* "firewall" (RFC 3489 symmetric UDP firewall) */
};
#define NB_NAT_COUNT 8

/* What the broker's plan asks one side to do. */
enum nb_role {
	NB_ROLE_DIAL = 0, /* "dial": send checks to the peer's candidates now */
	NB_ROLE_LISTEN,   /* "listen": answer checks; send none first */
	NB_ROLE_PUNCH,    /* "punch": both sides send at once */
	NB_ROLE_PRIME,    /* "prime": open our own filter toward the peer first, then listen */
	NB_ROLE_RELAY,    /* "relay": go through the relay */
	NB_ROLE_NONE,     /* "none": do not try */
	NB_ROLE_SPRAY,    /* "spray": birthday, the hard side: check from many sockets */
	NB_ROLE_PROBE,    /* "probe": birthday, the easy side: check many ports of the peer's IP */
};
#define NB_ROLE_COUNT 8

/* Which way two peers reach (or are predicted to reach) each other. */
enum nb_path {
	NB_PATH_DIRECT = 0, /* "direct": public/reflexive addresses */
	NB_PATH_LAN,        /* "lan": private addresses behind the same public IP */
	NB_PATH_UPNP,       /* "upnp": a UPnP/NAT-PMP mapped port */
	NB_PATH_RELAY,      /* "relay" */
	NB_PATH_NONE,       /* "none": no path */
	NB_PATH_BIRTHDAY,   /* "birthday": direct, found by birthday-paradox punching */
};
#define NB_PATH_COUNT 6

/* Words <-> enums. *_to_string returns NULL for a value outside the enum;
 * *_from_string returns 0 and sets *ret, or -EINVAL (*ret untouched).
 * Matching is exact and case-sensitive. */
const char *nb_mapping_to_string(enum nb_mapping v);
int nb_mapping_from_string(const char *s, enum nb_mapping *ret);
const char *nb_filtering_to_string(enum nb_filtering v);
int nb_filtering_from_string(const char *s, enum nb_filtering *ret);
const char *nb_nat_type_to_string(enum nb_nat_type v);
int nb_nat_type_from_string(const char *s, enum nb_nat_type *ret);
const char *nb_role_to_string(enum nb_role v);
int nb_role_from_string(const char *s, enum nb_role *ret);
const char *nb_path_to_string(enum nb_path v);
int nb_path_from_string(const char *s, enum nb_path *ret);

/* ---- Messages ----------------------------------------------------------- */

enum nb_ctrl_type {
	NB_CTRL_REGISTER = 1, /* peer -> broker; reply registered | error */
	NB_CTRL_REGISTERED,   /* broker -> peer */
	NB_CTRL_KEEPALIVE,    /* peer -> broker; reply ack | error */
	NB_CTRL_CONNECT,      /* peer -> broker; reply plan | error */
	NB_CTRL_PLAN,         /* broker -> peer (reply to connect, or broker-initiated; ack) */
	NB_CTRL_RESULT,       /* peer -> broker; reply ack | error */
	NB_CTRL_ERROR,        /* reply to any request */
	NB_CTRL_ACK,          /* reply */
	NB_CTRL_PEERS,        /* query -> peer_list | error */
	NB_CTRL_PEER_LIST,
	NB_CTRL_MATRIX,       /* query -> matrix_list | error */
	NB_CTRL_MATRIX_LIST,
	NB_CTRL_VERIFY,       /* peer -> broker: probe my mapping; no reply, a probe */
	NB_CTRL_PROBE,        /* broker -> the mapping being verified (not a reply) */
	NB_CTRL_CHALLENGE,    /* broker -> peer: reply to a register without a good cookie */
	NB_CTRL_BYE,          /* peer -> broker: free my name; reply ack | error */
	NB_CTRL_RELAYED,      /* peer -> broker -> the other peer: my relayed address; ack */
};
#define NB_CTRL_TYPE_MAX NB_CTRL_RELAYED

/* Hex digits of a register cookie (docs/protocol.md "challenge"). */
#define NB_CTRL_COOKIE_LEN 32
/* Longest "pad" of a query: a query padded to NB_CTRL_MAX_DATAGRAM. */
#define NB_CTRL_PAD_MAX (NB_CTRL_MAX_DATAGRAM - 48)

/* Hex digits of a UPnP mapping's proof (docs/protocol.md "verify"). */
#define NB_CTRL_PROOF_LEN 32

/* "the type word", or NULL for a value outside the enum. */
const char *nb_ctrl_type_to_string(enum nb_ctrl_type t);

enum nb_ctrl_upnp_status {
	NB_CTRL_UPNP_NONE = 0, /* "none": no UPnP IGD / NAT-PMP gateway found */
	NB_CTRL_UPNP_FAILED,   /* "failed": gateway found, mapping refused or unverified */
	NB_CTRL_UPNP_MAPPED,   /* "mapped": mapping made and verified; external is set */
};

enum nb_ctrl_outcome {
	NB_CTRL_OUTCOME_CONNECTED = 0, /* "connected" */
	NB_CTRL_OUTCOME_FAILED,        /* "failed" */
};

/* The relay part of a plan ("relay":{...}; docs/protocol.md "Relay"). One
 * side of a pair allocates on a TURN server (alloc: it gets the server and
 * REST credentials) and tells the other its relayed address with a
 * `relayed` message; the other side (alloc false, no server) sends to that
 * address. has_relay false: the broker has no relay (field absent). */
#define NB_CTRL_RELAY_USER_MAX 128 /* TURN username: printable ASCII, no space */
#define NB_CTRL_RELAY_PASS_MAX 64
struct nb_ctrl_relay {
	bool has_relay;
	bool alloc;                 /* this side allocates */
	bool has_relayed;           /* without alloc: the other side's relayed address is known */
	struct nb_addr relayed;     /* ... here ("relayed"): send to it at once */
	struct nb_addr server;      /* with alloc: the TURN server */
	char user[NB_CTRL_RELAY_USER_MAX + 1]; /* with alloc: TURN REST username */
	char pass[NB_CTRL_RELAY_PASS_MAX + 1]; /* with alloc: its password */
	uint8_t family; /* with alloc ("family"): the relayed address's IP family
			 * to ask for, 4 or 6; 0 = absent, which means 4 */
};

/* A birthday plan's budget ("birthday" in a plan), or what an attempt used
 * ("birthday" in a result and a matrix pair, every field optional there: 0
 * = absent; at least one present).
 *
 *   plan:   {"sockets": 256, "probes": 2048, "rate": 1000}   all required
 *   result: {"sockets": 256}                                  from the spraying side
 *           {"probes": 173, "rate": 1000, "port": 40211}      from the probing side
 *
 * port: the spraying side's external port that answered (0: none did). */
struct nb_ctrl_birthday {
	bool has;
	uint32_t sockets; /* 1..NB_CTRL_BDAY_SOCKETS_MAX */
	uint32_t probes;  /* 1..NB_CTRL_BDAY_PROBES_MAX (result: 0..) */
	uint32_t rate;    /* probes per second, 1..NB_CTRL_BDAY_RATE_MAX */
	uint16_t port;    /* result, pair: the winning port, 0 = none */
};

struct nb_ctrl_register {
	char id[NB_CTRL_ID_MAX + 1];
	char token[NB_CTRL_TOKEN_MAX + 1]; /* "" = no token (field absent) */
	struct nb_addr local[NB_CTRL_MAX_ADDRS];
	size_t n_local;
	bool has_nat;
	enum nb_mapping mapping;     /* "nat":{"mapping", ...} when has_nat */
	enum nb_filtering filtering; /* "nat":{..., "filtering"} when has_nat */
	bool has_hairpin;            /* "nat":{"hairpin":bool} present */
	bool hairpin;
	bool has_upnp;
	enum nb_ctrl_upnp_status upnp; /* "upnp":{"status"} */
	struct nb_addr upnp_external;  /* "upnp":{"external"}: iff upnp == MAPPED */
	char upnp_proof[NB_CTRL_PROOF_LEN + 1]; /* "upnp":{"proof"}: only with MAPPED; "" = absent */
	char cookie[NB_CTRL_COOKIE_LEN + 1];    /* from the broker's challenge; "" = absent */
	bool has_relayed;       /* "relayed": our allocation on the relay the broker named */
	struct nb_addr relayed;
	/* "also": true: this register adds its source's family to the id,
	 * which the same key registered over the other family already; the
	 * other family's registration stays (docs/protocol.md "IPv6"). "nat"
	 * is then this family's behaviour. Absent: false. */
	bool also;
};

struct nb_ctrl_registered {
	char id[NB_CTRL_ID_MAX + 1];
	struct nb_addr reflexive; /* the source the broker saw */
	uint32_t keepalive_s;     /* send keepalive at least this often */
	uint32_t expires_s;       /* registration dropped after this long without one */
	bool has_upnp;            /* "upnp" present: the register said "mapped" */
	bool upnp_verified;       /* "upnp":"verified" (else "unverified") */
	/* "relay": credentials to allocate in advance (alloc is true), for a
	 * host that will need the relay (symmetric NAT, UDP blocked) */
	struct nb_ctrl_relay relay;
	/* "alt": the broker's address in the other family, where the peer may
	 * register its second address (a register with "also"). */
	bool has_alt;
	struct nb_addr alt;
};

struct nb_ctrl_verify {
	struct nb_addr external; /* the mapping to probe; its IP must be the source's */
	bool tcp;                /* a TCP mapping: the broker connects (default false: UDP) */
};

struct nb_ctrl_probe {
	char proof[NB_CTRL_PROOF_LEN + 1];
};

struct nb_ctrl_keepalive {
	char id[NB_CTRL_ID_MAX + 1];
};

struct nb_ctrl_connect {
	char id[NB_CTRL_ID_MAX + 1];   /* who asks */
	char peer[NB_CTRL_ID_MAX + 1]; /* whom to reach */
};

/* relayed: the allocating side's relayed transport address, forwarded by the
 * broker to the other side of the session. */
struct nb_ctrl_relayed {
	char session[NB_CTRL_SESSION_LEN + 1];
	char id[NB_CTRL_ID_MAX + 1]; /* the side that allocated */
	struct nb_addr relayed;
};

struct nb_ctrl_plan {
	char session[NB_CTRL_SESSION_LEN + 1];
	char peer[NB_CTRL_ID_MAX + 1]; /* the other side */
	enum nb_role role;             /* what this side does */
	enum nb_path path;
	char reason[NB_CTRL_REASON_MAX + 1]; /* for people; may be "" */
	struct nb_addr candidates[NB_CTRL_MAX_ADDRS]; /* the peer's, in order to try */
	size_t n_candidates;
	char username[NB_CTRL_USERNAME_MAX + 1]; /* STUN USERNAME of the checks */
	char peer_key[NB_CTRL_PUBKEY_LEN + 1]; /* the other side's public key (its Noise static) */
	uint32_t deadline_ms;          /* give up this long after receiving the plan */
	uint32_t delay_ms;             /* wait this long before the first check (0 = absent) */
	struct nb_ctrl_relay relay;    /* "relay": what to do when no direct path works */
	struct nb_ctrl_birthday birthday; /* present exactly when path is "birthday" */
};

struct nb_ctrl_result {
	char session[NB_CTRL_SESSION_LEN + 1];
	char id[NB_CTRL_ID_MAX + 1]; /* who reports */
	enum nb_ctrl_outcome outcome;
	enum nb_path path;
	bool has_remote;
	struct nb_addr remote; /* the peer address that answered */
	uint32_t ms;           /* from plan received to outcome */
	char reason[NB_CTRL_REASON_MAX + 1]; /* "" = absent */
	struct nb_ctrl_birthday birthday; /* a birthday attempt's figures (optional) */
};

struct nb_ctrl_error {
	uint16_t code; /* NB_CTRL_CODE_MIN..MAX */
	char reason[NB_CTRL_REASON_MAX + 1];
};

struct nb_ctrl_query { /* peers, matrix */
	uint32_t offset; /* first entry wanted (0 = absent) */
	uint16_t pad;    /* "pad": that many '.', ignored (0 = absent): a page is no longer than its query */
	char admin[NB_CTRL_TOKEN_MAX + 1]; /* "admin": the broker's admin token; "" = absent */
};

struct nb_ctrl_challenge {
	char cookie[NB_CTRL_COOKIE_LEN + 1];
};

struct nb_ctrl_peer_info {
	char id[NB_CTRL_ID_MAX + 1];
	enum nb_nat_type nat;
	enum nb_mapping mapping;
	enum nb_filtering filtering;
	struct nb_addr reflexive;
	/* "alt":{"reflexive","mapping","filtering"}: the peer's registration
	 * in the other family, with that family's NAT behaviour. */
	bool has_alt;
	struct nb_addr alt;
	enum nb_mapping alt_mapping;
	enum nb_filtering alt_filtering;
};

/* One page: entries [offset, offset + n) of total. offset + n <= total. */
struct nb_ctrl_peer_list {
	uint32_t total;
	uint32_t offset;
	size_t n_peers;
	struct nb_ctrl_peer_info peers[NB_CTRL_MAX_PAGE];
};

struct nb_ctrl_pair {
	char a[NB_CTRL_ID_MAX + 1];
	char b[NB_CTRL_ID_MAX + 1];
	enum nb_path predicted;
	enum nb_role role_a, role_b; /* the plan: what a does, what b does */
	bool has_measured;           /* tried yet? */
	enum nb_path measured;       /* NB_PATH_NONE = tried and failed */
	uint32_t ms;                 /* with has_measured: time to the outcome */
	char reason[NB_CTRL_REASON_MAX + 1]; /* the plan's reason, for people; "" = absent */
	/* The IP family (4 or 6; 0 = absent) of the plan's first candidate
	 * ("plan_family") and of the path that connected ("family": only with
	 * a measured path other than "none"). */
	uint8_t plan_family;
	uint8_t family;
	struct nb_ctrl_birthday birthday; /* a birthday attempt's figures, both sides' (optional) */
};

struct nb_ctrl_matrix_list {
	uint32_t total;
	uint32_t offset;
	size_t n_pairs;
	struct nb_ctrl_pair pairs[NB_CTRL_MAX_PAGE];
};

struct nb_ctrl_msg {
	enum nb_ctrl_type type;
	char tx[NB_CTRL_TX_LEN + 1]; /* replies and acks echo the request's */
	union {
		struct nb_ctrl_register reg;
		struct nb_ctrl_registered registered;
		struct nb_ctrl_keepalive keepalive;
		struct nb_ctrl_keepalive bye; /* NB_CTRL_BYE: the id to free */
		struct nb_ctrl_connect connect;
		struct nb_ctrl_plan plan;
		struct nb_ctrl_result result;
		struct nb_ctrl_error error;
		struct nb_ctrl_query query; /* NB_CTRL_PEERS, NB_CTRL_MATRIX */
		struct nb_ctrl_peer_list peer_list;
		struct nb_ctrl_matrix_list matrix_list;
		struct nb_ctrl_verify verify;
		struct nb_ctrl_probe probe;
		struct nb_ctrl_challenge challenge;
		struct nb_ctrl_relayed relayed;
		/* NB_CTRL_ACK has no fields */
	} u;
};

/* ---- Errors ------------------------------------------------------------- */

/* Negative returns, in our own range (stun.h uses -1001..). */
enum nb_ctrl_err {
	NB_CTRL_E_TOO_BIG = -2001,    /* longer than NB_CTRL_MAX_DATAGRAM */
	NB_CTRL_E_NOT_OBJECT = -2002, /* empty, or the first byte is not '{' */
	NB_CTRL_E_UTF8 = -2003,       /* invalid UTF-8 (overlong, surrogate, truncated...) */
	NB_CTRL_E_CONTROL = -2004,    /* NUL or another control character */
	NB_CTRL_E_DEPTH = -2005,      /* nested deeper than NB_CTRL_MAX_DEPTH */
	NB_CTRL_E_SYNTAX = -2006,     /* not JSON, or JSON this protocol does not allow */
	NB_CTRL_E_TRAILING = -2007,   /* bytes after the object */
	NB_CTRL_E_DUPLICATE = -2008,  /* a key appears twice in one object */
	NB_CTRL_E_VERSION = -2009,    /* "v" is not 1 */
	NB_CTRL_E_TYPE = -2010,       /* unknown "type" */
	NB_CTRL_E_MISSING = -2011,    /* a required field is absent */
	NB_CTRL_E_WRONG_TYPE = -2012, /* a field has the wrong JSON type */
	NB_CTRL_E_RANGE = -2013,      /* number not an integer, or out of range */
	NB_CTRL_E_LENGTH = -2014,     /* string too long or too short */
	NB_CTRL_E_TOO_MANY = -2015,   /* array has too many elements */
	NB_CTRL_E_FORMAT = -2016,     /* string not in its format (id, hex, address) */
	NB_CTRL_E_ENUM = -2017,       /* word not in the field's vocabulary */
	NB_CTRL_E_NOMEM = -2018,      /* encoder: cJSON could not allocate (the decoder
				       * cannot tell that from bad syntax: cJSON returns
				       * NULL for both, so it says SYNTAX) */
	NB_CTRL_E_NOSPACE = -2019,    /* encoder: output over cap or NB_CTRL_MAX_DATAGRAM */
	NB_CTRL_E_INVAL = -2020,      /* encoder: NULL argument */
};

/* What kind of thing was wrong, in words ("string too long or too short").
 * For which field, see nb_ctrl_explain(). */
const char *nb_ctrl_strerror(int err);

/* ---- Decoding ----------------------------------------------------------- */

/* Decode one datagram of exactly len bytes. Returns len (> 0) or a negative
 * enum nb_ctrl_err; *ret is untouched on failure. Unknown fields are
 * ignored; everything else is checked (docs/protocol.md "Validation"). */
ssize_t nb_ctrl_decode(struct nb_ctrl_msg *ret, const uint8_t *buf, size_t len);

/* The same checks as nb_ctrl_decode(), for the failure path: returns the
 * same code and writes what was wrong, with the field, into why (always
 * NUL-terminated when why_len > 0), e.g. "field 'id': too long (33 > 32
 * bytes)" or "field 'peers[2].reflexive': not ip:port". "ok" when valid. */
int nb_ctrl_explain(const uint8_t *buf, size_t len, char *why, size_t why_len);

/* For answering a malformed request with an error that echoes its tx: if
 * buf is a well-formed JSON object (the checks before any field is read)
 * with a valid "tx", copy it to ret_tx (NB_CTRL_TX_LEN + 1 bytes) and
 * return 0; else a negative enum nb_ctrl_err and ret_tx is untouched. */
int nb_ctrl_peek_tx(const uint8_t *buf, size_t len, char *ret_tx);

/* ---- Encoding ----------------------------------------------------------- */

/* Encode m into buf. Returns the bytes written (no NUL is added), or a
 * negative enum nb_ctrl_err: NB_CTRL_E_NOSPACE if the message would exceed
 * cap or NB_CTRL_MAX_DATAGRAM (lists included: every entry must fit; see
 * nb_ctrl_encode_page()), or the code the decoder would give for a field
 * of m that is invalid. The output is compact (no whitespace), fields in a
 * fixed order, optional fields left out when they hold their default. */
ssize_t nb_ctrl_encode(const struct nb_ctrl_msg *m, uint8_t *buf, size_t cap);

/* For NB_CTRL_PEER_LIST and NB_CTRL_MATRIX_LIST: encode the first k entries
 * of m's list, k as large as fits in min(cap, NB_CTRL_MAX_DATAGRAM), and
 * set *ret_count = k (possibly 0; the next page starts at offset + k).
 * Returns bytes written or a negative enum nb_ctrl_err (NOSPACE if not even
 * an empty page fits); *ret_count untouched on failure. */
ssize_t nb_ctrl_encode_page(const struct nb_ctrl_msg *m, uint8_t *buf, size_t cap,
			    size_t *ret_count);

/* ---- Helpers ------------------------------------------------------------ */

/* Field-by-field equality of two valid messages (fields that do not apply,
 * e.g. hairpin without has_hairpin, are not compared). */
bool nb_ctrl_msg_equal(const struct nb_ctrl_msg *a, const struct nb_ctrl_msg *b);

/* Lower-case hex of n bytes into ret (2n + 1 bytes, NUL-terminated): for
 * making a tx, session or key from random bytes the shell supplies. */
void nb_ctrl_hex(const uint8_t *bytes, size_t n, char *ret);

#endif
