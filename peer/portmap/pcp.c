/* peer/portmap/pcp.c - PCP version 2 (RFC 6887) ANNOUNCE/MAP requests and responses.
 *
 * Pure: no I/O, no malloc. Choices made here (see also pcp.h):
 * - Framing follows §8.3 (what a client drops silently): shorter than the
 *   header, longer than 1100 bytes, not a multiple of 4, R bit clear.
 * - Version 0 is NAT-PMP and goes to nb_natpmp_decode; another version is
 *   accepted only as an UNSUPP_VERSION answer (§9), and only its header is
 *   read (a later version's layout is unknown).
 * - A MAP/PEER error response may be the header alone (a server that could
 *   not parse the request); if a payload is there it must be whole.
 * - Options are walked only to check their bounds (§7.3: "PCP clients MUST
 *   ignore Options that they do not understand that appear in responses");
 *   pad bytes are not checked.
 * - Reserved fields are ignored on reception (§7.2: "MUST be ignored"). */
#include "peer/portmap/pcp.h"

#include <errno.h>
#include <string.h>

#include "common/bytes.h"

#define PCP_R_BIT 0x80
#define PCP_OPCODE_MASK 0x7f
#define PCP_MAP_PAYLOAD 36
#define PCP_PEER_PAYLOAD 56 /* §12.1: MAP's 36 + remote port, reserved, remote IP */
#define PCP_OPTION_HDR 4

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static bool family_ok(const struct nb_addr *a)
{
	return a->family == NB_AF_INET || a->family == NB_AF_INET6;
}

/* §5: IPv4 as ::ffff:a.b.c.d. */
static void put_ip(uint8_t p[16], const struct nb_addr *a)
{
	if (a->family == NB_AF_INET) {
		memcpy(p, v4mapped_prefix, 12);
		memcpy(p + 12, a->ip, 4);
	} else {
		memcpy(p, a->ip, 16);
	}
}

/* §5: "all of the first 96 bits MUST be checked for the pattern". The
 * all-zero forms (:: and ::ffff:0.0.0.0) mean "no address". */
static void get_ip(const uint8_t p[16], struct nb_addr *a)
{
	static const uint8_t zero[16];

	memset(a, 0, sizeof(*a));
	if (memcmp(p, v4mapped_prefix, 12) == 0) {
		if (memcmp(p + 12, zero, 4) == 0)
			return;
		a->family = NB_AF_INET;
		memcpy(a->ip, p + 12, 4);
	} else if (memcmp(p, zero, 16) != 0) {
		a->family = NB_AF_INET6;
		memcpy(a->ip, p, 16);
	}
}

static void put_header(uint8_t *out, uint8_t opcode, uint32_t lifetime, const struct nb_addr *client)
{
	out[0] = NB_PCP_VERSION;
	out[1] = opcode; /* R = 0: a request */
	nb_put_u16be(out + 2, 0);
	nb_put_u32be(out + 4, lifetime);
	put_ip(out + 8, client);
}

size_t nb_pcp_encode_announce(uint8_t *out, size_t cap, const struct nb_addr *client)
{
	if (out == NULL || client == NULL || !family_ok(client) || cap < NB_PCP_HEADER_LEN)
		return 0;
	/* §14: an ANNOUNCE request carries lifetime 0. */
	put_header(out, NB_PCP_OP_ANNOUNCE, 0, client);
	return NB_PCP_HEADER_LEN;
}

size_t nb_pcp_encode_map(uint8_t *out, size_t cap, const struct nb_addr *client, uint32_t lifetime,
			 const struct nb_pcp_map *m)
{
	uint8_t *p;

	if (out == NULL || client == NULL || m == NULL || !family_ok(client) || cap < NB_PCP_MAP_LEN)
		return 0;
	if (m->protocol != NB_PCP_PROTO_UDP && m->protocol != NB_PCP_PROTO_TCP)
		return 0;
	if (m->internal_port == 0)
		return 0;
	if (m->external_ip.family != NB_AF_NONE && !family_ok(&m->external_ip))
		return 0;
	put_header(out, NB_PCP_OP_MAP, lifetime, client);
	p = out + NB_PCP_HEADER_LEN;
	memcpy(p, m->nonce, NB_PCP_NONCE_LEN);
	p[12] = m->protocol;
	memset(p + 13, 0, 3);
	nb_put_u16be(p + 16, m->internal_port);
	nb_put_u16be(p + 18, m->external_port);
	if (m->external_ip.family == NB_AF_NONE) {
		/* §11.1: "the address-family-specific all-zeros address" */
		if (client->family == NB_AF_INET) {
			memcpy(p + 20, v4mapped_prefix, 12);
			memset(p + 32, 0, 4);
		} else {
			memset(p + 20, 0, 16);
		}
	} else {
		put_ip(p + 20, &m->external_ip);
	}
	return NB_PCP_MAP_LEN;
}

/* §7.3: code, reserved, length, then length bytes padded to 4. */
static int skip_options(const uint8_t *buf, size_t len, size_t off)
{
	while (off < len) {
		size_t optlen, padded;

		if (len - off < PCP_OPTION_HDR)
			return -EINVAL;
		optlen = nb_get_u16be(buf + off + 2);
		padded = (optlen + 3) & ~(size_t)3;
		off += PCP_OPTION_HDR;
		if (len - off < padded)
			return -EINVAL;
		off += padded;
	}
	return 0;
}

int nb_pcp_decode(const uint8_t *buf, size_t len, struct nb_pcp_response *r)
{
	struct nb_pcp_response out;
	size_t payload = 0, rest;
	int rc;

	if (buf == NULL || r == NULL)
		return -EINVAL;
	/* §8.3: drop what is too short, too long or not a multiple of 4. */
	if (len < NB_PCP_HEADER_LEN || len > NB_PCP_MAX || len % 4 != 0)
		return -EINVAL;
	if (!(buf[1] & PCP_R_BIT)) /* a request, maybe our own reflected */
		return -EINVAL;
	if (buf[0] == 0) /* NAT-PMP: nb_natpmp_decode */
		return -EINVAL;
	memset(&out, 0, sizeof(out));
	out.version = buf[0];
	out.opcode = buf[1] & PCP_OPCODE_MASK;
	out.result = buf[3];
	out.lifetime = nb_get_u32be(buf + 4);
	out.epoch = nb_get_u32be(buf + 8);
	if (out.version != NB_PCP_VERSION) {
		/* §9: a server of another version answers UNSUPP_VERSION in its
		 * own; nothing past the header is known. */
		if (out.result != NB_PCP_UNSUPP_VERSION)
			return -EINVAL;
		goto done;
	}
	rest = len - NB_PCP_HEADER_LEN;
	switch (out.opcode) {
	case NB_PCP_OP_ANNOUNCE:
		break;
	case NB_PCP_OP_MAP:
	case NB_PCP_OP_PEER:
		payload = out.opcode == NB_PCP_OP_MAP ? PCP_MAP_PAYLOAD : PCP_PEER_PAYLOAD;
		if (rest == 0 && out.result != NB_PCP_SUCCESS) {
			payload = 0; /* an error may come header-only */
			break;
		}
		if (rest < payload)
			return -EINVAL;
		break;
	default:
		goto done; /* unknown layout: the caller drops the opcode */
	}
	rc = skip_options(buf, len, NB_PCP_HEADER_LEN + payload);
	if (rc < 0)
		return rc;
	if (out.opcode == NB_PCP_OP_MAP && payload != 0) {
		const uint8_t *p = buf + NB_PCP_HEADER_LEN;

		out.has_map = true;
		memcpy(out.map.nonce, p, NB_PCP_NONCE_LEN);
		out.map.protocol = p[12];
		out.map.internal_port = nb_get_u16be(p + 16);
		out.map.external_port = nb_get_u16be(p + 18);
		get_ip(p + 20, &out.map.external_ip);
	}
done:
	*r = out;
	return 0;
}

const char *nb_pcp_result_string(uint8_t result)
{
	switch (result) {
	case NB_PCP_SUCCESS:
		return "success";
	case NB_PCP_UNSUPP_VERSION:
		return "unsupported version (the router does not speak PCP version 2)";
	case NB_PCP_NOT_AUTHORIZED:
		return "not authorized (the router's PCP is off, or its policy refuses this host)";
	case NB_PCP_MALFORMED_REQUEST:
		return "malformed request (the router could not parse it)";
	case NB_PCP_UNSUPP_OPCODE:
		return "unsupported opcode (the router does not implement this request)";
	case NB_PCP_UNSUPP_OPTION:
		return "unsupported option (the router does not implement a mandatory option)";
	case NB_PCP_MALFORMED_OPTION:
		return "malformed option (repeated or of the wrong length)";
	case NB_PCP_NETWORK_FAILURE:
		return "network failure (the router has no external address yet)";
	case NB_PCP_NO_RESOURCES:
		return "no resources (the router cannot create more mappings now)";
	case NB_PCP_UNSUPP_PROTOCOL:
		return "unsupported protocol (the router cannot map this transport)";
	case NB_PCP_USER_EX_QUOTA:
		return "user quota exceeded (this host holds too many mappings)";
	case NB_PCP_CANNOT_PROVIDE_EXTERNAL:
		return "cannot provide the suggested external port or address";
	case NB_PCP_ADDRESS_MISMATCH:
		return "address mismatch (another NAT between this host and the router)";
	case NB_PCP_EXCESSIVE_REMOTE_PEERS:
		return "excessive remote peers (the router cannot install the requested filters)";
	default:
		return "unknown result code";
	}
}

bool nb_pcp_result_is_transient(uint8_t result)
{
	switch (result) {
	case NB_PCP_NETWORK_FAILURE:        /* §7.4: "a short lifetime error" */
	case NB_PCP_NO_RESOURCES:           /* idem */
	case NB_PCP_USER_EX_QUOTA:          /* idem */
	case NB_PCP_CANNOT_PROVIDE_EXTERNAL: /* idem */
		return true;
	default:
		return false;
	}
}
