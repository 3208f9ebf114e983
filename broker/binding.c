/* broker/binding.c - the STUN Binding service (RFC 8489, RFC 5780, RFC 3489 classic). Pure. */
#include "broker/binding.h"

#include <errno.h>
#include <string.h>

/* Zero bytes to fill a PADDING value from; a response is never longer. */
static const uint8_t zeros[NB_BINDING_MAX_RESPONSE];

/* What the response will be, decided before any byte is written. */
struct plan {
	uint16_t error; /* 0: success */
	const char *reason;
	const uint16_t *unknown; /* 420: the types for UNKNOWN-ATTRIBUTES */
	size_t n_unknown;
	unsigned from_ip, from_port; /* socket the response leaves from */
	struct nb_addr to;
	bool pad; /* PADDING requested and allowed */
};

static const char *const drop_names[NB_BINDING_DROP_COUNT] = {
	"not-stun", "malformed", "not-request", "method", "source", "socket", "nospace", "too-big",
};

const char *nb_binding_drop_name(int drop)
{
	unsigned i = nb_binding_drop_index(drop);

	return i < NB_BINDING_DROP_COUNT ? drop_names[i] : "unknown";
}

int nb_binding_config_check(const struct nb_binding_config *cfg)
{
	if (cfg->software != NULL && cfg->software_len > NB_BINDING_MAX_SOFTWARE)
		return -EINVAL;
	if (cfg->ip[0].family != NB_AF_INET && cfg->ip[0].family != NB_AF_INET6)
		return -EINVAL;
	if (cfg->port[0] == 0)
		return -EINVAL;
	if (!cfg->rfc5780)
		return 0;
	/* RFC 5780 §6: "the server needs to have two IP addresses and two
	 * ports" - real ones, or RESPONSE-ORIGIN and OTHER-ADDRESS lie. */
	if (cfg->ip[1].family != cfg->ip[0].family || nb_addr_is_unspecified(&cfg->ip[0]) ||
	    nb_addr_is_unspecified(&cfg->ip[1]) || nb_addr_ip_equal(&cfg->ip[0], &cfg->ip[1]))
		return -EINVAL;
	if (cfg->port[1] == 0 || cfg->port[1] == cfg->port[0])
		return -EINVAL;
	return 0;
}

struct nb_addr nb_binding_local(const struct nb_binding_config *cfg, unsigned ip_idx,
				unsigned port_idx)
{
	struct nb_addr a = cfg->ip[ip_idx & 1];

	a.port = cfg->port[port_idx & 1];
	return a;
}

/* A source we may answer: a unicast address with a port. */
static bool source_ok(const struct nb_addr *a)
{
	if (a->port == 0 || nb_addr_is_unspecified(a) || nb_addr_is_multicast(a))
		return false;
	if (a->family == NB_AF_INET && a->ip[0] == 255 && a->ip[1] == 255 && a->ip[2] == 255 &&
	    a->ip[3] == 255)
		return false;
	return true;
}

static void plan_error(struct plan *p, uint16_t code, const char *reason)
{
	p->error = code;
	p->reason = reason;
}

/* Decide the response to a decoded Binding request. The response to an
 * error always leaves from the receiving socket to the source address. */
static void decide(const struct nb_binding_config *cfg, const struct nb_binding_request *req,
		   const struct nb_stun_msg *m, struct plan *p)
{
	static const uint16_t change_request_type[1] = { NB_STUN_ATTR_CHANGE_REQUEST };
	uint32_t change = 0;
	bool tcp = req->transport == NB_BINDING_TCP;
	bool rport = (m->present & NB_STUN_HAS_RESPONSE_PORT) != 0;
	bool padding = (m->present & NB_STUN_HAS_PADDING) != 0;

	memset(p, 0, sizeof(*p));
	p->from_ip = req->ip_idx;
	p->from_port = req->port_idx;
	p->to = req->from;

	if (m->present & NB_STUN_HAS_CHANGE_REQUEST)
		change = m->change_flags & (NB_STUN_CHANGE_IP | NB_STUN_CHANGE_PORT);

	/* RFC 8489 §6.3.1: "If the request contains one or more unknown
	 * comprehension-required attributes, the server replies with an error
	 * response with an error code of 420 (Unknown Attribute) and includes
	 * an UNKNOWN-ATTRIBUTES attribute in the response that lists the
	 * unknown comprehension-required attributes." */
	if (m->n_unknown_required > 0) {
		plan_error(p, NB_STUN_ERR_UNKNOWN_ATTRIBUTE, "Unknown Attribute");
		p->unknown = m->unknown_required;
		p->n_unknown = m->n_unknown_required;
		return;
	}
	/* RFC 5780 §6: a server without an alternate address cannot honour
	 * CHANGE-REQUEST and answers 420. A CHANGE-REQUEST with no flag set
	 * asks for nothing and is answered (RFC 3489 clients always send one;
	 * coturn does the same). */
	if (change != 0 && !cfg->rfc5780) {
		plan_error(p, NB_STUN_ERR_UNKNOWN_ATTRIBUTE, "Unknown Attribute");
		p->unknown = change_request_type;
		p->n_unknown = 1;
		return;
	}
	/* RFC 5780 §7.5: "If the server receives a Binding Request containing
	 * both the RESPONSE-PORT and PADDING attributes, it SHOULD reply with
	 * a 400 (Bad Request)" - they would make an amplifier aimed at any port. */
	if (rport && padding) {
		plan_error(p, NB_STUN_ERR_BAD_REQUEST, "Bad Request");
		return;
	}
	/* Over TCP the response can only go back on the connection: the
	 * attributes that move it are refused (coturn answers 400 as well). */
	if (tcp && (change != 0 || rport || padding)) {
		plan_error(p, NB_STUN_ERR_BAD_REQUEST, "Bad Request");
		return;
	}
	if (rport && m->response_port == 0) {
		plan_error(p, NB_STUN_ERR_BAD_REQUEST, "Bad Request");
		return;
	}

	/* RFC 5780 §7.2: "change IP" / "change port" pick the socket. */
	if (change & NB_STUN_CHANGE_IP)
		p->from_ip ^= 1u;
	if (change & NB_STUN_CHANGE_PORT)
		p->from_port ^= 1u;
	/* RFC 5780 §7.5: "the server MUST send the response to the IP address
	 * of the request's source and the port in RESPONSE-PORT". The IP is
	 * never changed: RESPONSE-ADDRESS (RFC 3489) is ignored. */
	if (rport)
		p->to.port = m->response_port;
	p->pad = padding;
}

static int encode(const struct nb_binding_config *cfg, const struct nb_binding_request *req,
		  const struct nb_stun_msg *m, const struct plan *p, uint8_t *buf, size_t cap,
		  size_t *ret_len)
{
	struct nb_stun_enc e;
	uint16_t type = p->error ? NB_STUN_BINDING_ERROR : NB_STUN_BINDING_SUCCESS;
	bool fp = (m->present & NB_STUN_HAS_FINGERPRINT) != 0;
	int rc;

	rc = nb_stun_enc_init(&e, buf, cap, type, m->tid, m->classic);
	if (rc < 0)
		return rc;

	if (p->error) {
		rc = nb_stun_enc_error(&e, p->error, p->reason);
		if (rc == 0 && p->n_unknown > 0)
			rc = nb_stun_enc_unknown(&e, p->unknown, p->n_unknown);
	} else if (m->classic) {
		/* RFC 3489 §11.2: MAPPED-ADDRESS, SOURCE-ADDRESS, CHANGED-ADDRESS.
		 * SOURCE-ADDRESS only when we know our address; CHANGED-ADDRESS
		 * ("where responses would have been sent from if the change IP
		 * and change port flags had been set") only with one to give. */
		struct nb_addr origin = nb_binding_local(cfg, p->from_ip, p->from_port);

		rc = nb_stun_enc_addr(&e, NB_STUN_ATTR_MAPPED_ADDRESS, &req->from);
		if (rc == 0 && !nb_addr_is_unspecified(&origin))
			rc = nb_stun_enc_addr(&e, NB_STUN_ATTR_SOURCE_ADDRESS, &origin);
		if (rc == 0 && cfg->rfc5780) {
			struct nb_addr other =
				nb_binding_local(cfg, req->ip_idx ^ 1u, req->port_idx ^ 1u);
			rc = nb_stun_enc_addr(&e, NB_STUN_ATTR_CHANGED_ADDRESS, &other);
		}
	} else {
		rc = nb_stun_enc_xor_addr(&e, NB_STUN_ATTR_XOR_MAPPED_ADDRESS, &req->from);
		if (rc == 0 && cfg->rfc5780) {
			/* RFC 5780 §6: MAPPED-ADDRESS too (a mismatch with
			 * XOR-MAPPED-ADDRESS reveals an address-rewriting ALG),
			 * RESPONSE-ORIGIN and OTHER-ADDRESS ("the source IP
			 * address and port that would be used if the client
			 * requested the change IP and change port behavior"). */
			struct nb_addr origin = nb_binding_local(cfg, p->from_ip, p->from_port);
			struct nb_addr other =
				nb_binding_local(cfg, req->ip_idx ^ 1u, req->port_idx ^ 1u);

			rc = nb_stun_enc_addr(&e, NB_STUN_ATTR_MAPPED_ADDRESS, &req->from);
			if (rc == 0)
				rc = nb_stun_enc_addr(&e, NB_STUN_ATTR_RESPONSE_ORIGIN, &origin);
			if (rc == 0)
				rc = nb_stun_enc_addr(&e, NB_STUN_ATTR_OTHER_ADDRESS, &other);
		}
	}
	if (rc == 0 && cfg->software != NULL && cfg->software_len > 0)
		rc = nb_stun_enc_attr(&e, NB_STUN_ATTR_SOFTWARE, cfg->software, cfg->software_len);
	if (rc == 0 && p->pad) {
		/* RFC 5780 §7.6 asks for PADDING in the response. We pad it to
		 * the request's size and no further, so padding never amplifies;
		 * if even an empty PADDING would make it larger, none is sent. */
		size_t tail = fp ? 8 : 0;
		size_t target = req->len < cap ? req->len : cap;
		size_t now = nb_stun_enc_len(&e);

		if (target >= now + 4 + tail)
			rc = nb_stun_enc_attr(&e, NB_STUN_ATTR_PADDING, zeros, target - now - 4 - tail);
	}
	/* A request with FINGERPRINT gets one back: its sender demultiplexes
	 * STUN from other traffic on one socket (RFC 7983, RFC 8489 §7.1). */
	if (rc == 0 && fp)
		rc = nb_stun_enc_fingerprint(&e);
	if (rc < 0)
		return rc;
	*ret_len = nb_stun_enc_len(&e);
	return 0;
}

int nb_binding_handle(const struct nb_binding_config *cfg, const struct nb_binding_request *req,
		      uint8_t *buf, size_t cap, struct nb_binding_reply *ret)
{
	struct nb_stun_msg m;
	struct plan p;
	size_t len = 0;

	if (req->ip_idx > 1 || req->port_idx > 1 ||
	    (!cfg->rfc5780 && (req->ip_idx != 0 || req->port_idx != 0)))
		return NB_BINDING_DROP_SOCKET;
	if (!source_ok(&req->from))
		return NB_BINDING_DROP_SOURCE;
	/* Every datagram of ours fits in NB_STUN_MAX_MSG; a Binding request
	 * has no reason to be longer (PADDING for fragmentation tests is not
	 * served: the padded response would be an amplifier's payload). */
	if (req->len > NB_STUN_MAX_MSG)
		return NB_BINDING_DROP_TOO_BIG;
	if (!nb_stun_is_stun(req->data, req->len))
		return NB_BINDING_DROP_NOT_STUN;
	if (nb_stun_decode(&m, req->data, req->len) < 0)
		return NB_BINDING_DROP_MALFORMED;
	/* Responses and indications need no answer; other methods are not
	 * ours to serve (a TURN Allocate gets silence, not an error). */
	if (m.cls != NB_STUN_CLASS_REQUEST)
		return NB_BINDING_DROP_NOT_REQUEST;
	if (m.method != NB_STUN_METHOD_BINDING)
		return NB_BINDING_DROP_METHOD;

	decide(cfg, req, &m, &p);
	if (cap > NB_BINDING_MAX_RESPONSE)
		cap = NB_BINDING_MAX_RESPONSE;
	if (encode(cfg, req, &m, &p, buf, cap, &len) < 0)
		return NB_BINDING_DROP_NOSPACE;

	ret->len = len;
	ret->ip_idx = (uint8_t)p.from_ip;
	ret->port_idx = (uint8_t)p.from_port;
	ret->to = p.to;
	ret->error_code = p.error;
	return 0;
}
