/* tests/fuzz/fuzz_turn_server.c - the TURN server core end to end, driven
 * by a script of records, with the invariants every output must keep:
 * no output longer than NB_TURN_MAX_RESPONSE, no PEER output to a
 * forbidden address (by the core's policy and by an independent list) or
 * port 0 or of another family than its allocation's, CLIENT outputs only
 * to known clients, OPEN ports in range on the relay IP of a configured
 * family, drops leave the output empty. The server relays both families.
 *
 * Input: records of [op][len hi][len lo][len bytes]. op bits 0-2 pick the
 * action, bits 3-4 the client (0-1 UDP, 2-3 TCP), bits 5-7 a peer address
 * (some forbidden) or a small argument:
 *   0 raw client message (a STUN message or ChannelData)
 *   1 raw peer datagram on the last allocation the harness saw OPEN
 *   2 an authenticated request the harness signs (the secret is fixed,
 *     the NONCE is the last one the core sent that client): payload[0]
 *     picks Allocate / Refresh / CreatePermission / ChannelBind (bits 0-1),
 *     FINGERPRINT (bit 2), REQUESTED-ADDRESS-FAMILY IPv6 (bit 3) or IPv4
 *     (bit 4) on Allocate / Refresh, ADDITIONAL-ADDRESS-FAMILY (bit 5) on
 *     Allocate; the rest its LIFETIME or CHANNEL-NUMBER
 *   3 a Send indication to the peer, payload as DATA
 *   4 nb_turn_opened() for the last OPEN (status 0 or -EADDRINUSE)
 *   5 advance the clock by payload[0] * 10 s, then poll until done
 *   6 nb_turn_client_closed()
 *   7 ChannelData for channel 0x4000 + payload[0] with the rest as data */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/turn.h"
#include "proto/stun.h"
#include "proto/turn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                 \
	do {                     \
		if (!(c))        \
			abort(); \
	} while (0)

#define SECRET "fuzz-secret"
#define UNIX_NOW UINT64_C(1700000000)
#define N_CLIENTS 4

static const char *const peer_addrs[8] = {
	"198.51.100.20:5000",  "[2001:db8::1]:1",        "127.0.0.1:1",           "10.0.0.1:1",
	"203.0.113.10:3478",   "[2001:db8::10]:3478",    "[2001:db8::10]:50001",  "203.0.113.10:50001",
};

/* An independent statement of the policy for the addresses above (and
 * anything a raw message could name): where a PEER output must never go. */
static bool bad_dest(const struct nb_addr *a)
{
	static const uint8_t relay6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 0x10 };
	const uint8_t *ip = a->ip;

	if (a->port == 0 || (a->family != NB_AF_INET && a->family != NB_AF_INET6))
		return true;
	if (a->family == NB_AF_INET6) {
		/* ::/8 (::, ::1, ::/96, ::ffff:0:0/96), fe80::/10, fec0::/10,
		 * ff00::/8, fc00::/7; the IPv6 relay IP outside the relay ports. */
		if (ip[0] == 0 || ip[0] == 0xff || (ip[0] & 0xfe) == 0xfc ||
		    (ip[0] == 0xfe && (ip[1] & 0x80) == 0x80))
			return true;
		if (memcmp(ip, relay6, 16) == 0)
			return a->port < 50000 || a->port > 50003;
		return false;
	}
	if (ip[0] == 0 || ip[0] == 10 || ip[0] == 127 || ip[0] >= 224)
		return true;
	if ((ip[0] == 169 && ip[1] == 254) || (ip[0] == 192 && ip[1] == 168) ||
	    (ip[0] == 172 && (ip[1] & 0xf0) == 16) || (ip[0] == 100 && (ip[1] & 0xc0) == 64))
		return true;
	if (ip[0] == 203 && ip[1] == 0 && ip[2] == 113 && ip[3] == 11)
		return true;
	if (ip[0] == 203 && ip[1] == 0 && ip[2] == 113 && ip[3] == 10)
		return a->port < 50000 || a->port > 50003;
	return false;
}

struct harness {
	struct nb_turn *t;
	struct nb_turn_config cfg;
	struct nb_turn_client clients[N_CLIENTS];
	uint8_t nonce[N_CLIENTS][64];
	size_t nonce_len[N_CLIENTS];
	char username[N_CLIENTS][64];
	uint32_t last_open;
	/* The family of each allocation seen OPEN (a ring). */
	uint32_t fam_alloc[8];
	uint8_t fam_of[8];
	unsigned fam_n;
	uint64_t now;
	uint32_t tid;
};

static struct nb_addr addr(const char *s)
{
	struct nb_addr a;

	memset(&a, 0, sizeof(a));
	CHECK(nb_addr_parse(s, true, &a) == 0);
	return a;
}

static int client_index(const struct harness *h, const struct nb_turn_client *c)
{
	for (int i = 0; i < N_CLIENTS; i++)
		if (h->clients[i].transport == c->transport && h->clients[i].conn == c->conn &&
		    h->clients[i].sock == c->sock && nb_addr_equal(&h->clients[i].addr, &c->addr))
			return i;
	return -1;
}

/* The invariants of one call's result; remembers OPENs and nonces. */
static void check_out(struct harness *h, int rc, const struct nb_turn_out *out)
{
	CHECK(out->len <= NB_TURN_MAX_RESPONSE);
	if (rc < 0) {
		CHECK(out->kind == NB_TURN_OUT_NONE);
		CHECK(rc <= NB_TURN_DROP_MALFORMED && rc > NB_TURN_DROP_MALFORMED - NB_TURN_DROP_COUNT);
		return;
	}
	switch (out->kind) {
	case NB_TURN_OUT_NONE: break;
	case NB_TURN_OUT_PEER:
		CHECK(out->len <= NB_TURN_MAX_DATA);
		CHECK(out->to.port != 0);
		CHECK(!nb_turn_peer_forbidden(&h->cfg, &out->to));
		CHECK(!bad_dest(&out->to));
		CHECK(out->alloc != 0);
		for (unsigned k = 0; k < 8; k++)
			if (h->fam_alloc[k] == out->alloc)
				CHECK(out->to.family == h->fam_of[k]);
		break;
	case NB_TURN_OUT_CLIENT: {
		int i = client_index(h, &out->client);
		struct nb_stun_msg m;
		struct nb_turn_attrs ta;

		CHECK(i >= 0);
		CHECK(out->len > 0 && out->data != NULL);
		if (nb_turn_is_chandata(out->data, out->len))
			break;
		CHECK(nb_stun_decode(&m, out->data, out->len) == (ssize_t)out->len);
		CHECK(nb_turn_attrs_parse(&m, out->data, out->len, &ta) == 0);
		if (m.cls == NB_STUN_CLASS_ERROR && (ta.present & NB_TURN_HAS_NONCE) &&
		    ta.nonce_len <= sizeof(h->nonce[i])) {
			/* 401 and 438 are small and unsigned. */
			CHECK(!(m.present & (NB_STUN_HAS_INTEGRITY | NB_STUN_HAS_SOFTWARE)));
			memcpy(h->nonce[i], ta.nonce, ta.nonce_len);
			h->nonce_len[i] = ta.nonce_len;
		}
		break;
	}
	case NB_TURN_OUT_OPEN:
		CHECK(out->port >= h->cfg.port_lo && out->port <= h->cfg.port_hi);
		CHECK(out->alloc != 0);
		CHECK(out->to.port == out->port);
		CHECK(out->to.family == NB_AF_INET || out->to.family == NB_AF_INET6);
		CHECK(nb_addr_ip_equal(&out->to, &h->cfg.relay_ip[nb_addr_fam(&out->to)]));
		h->last_open = out->alloc;
		h->fam_alloc[h->fam_n % 8] = out->alloc;
		h->fam_of[h->fam_n % 8] = out->to.family;
		h->fam_n++;
		break;
	case NB_TURN_OUT_CLOSE: CHECK(out->alloc != 0); break;
	default: abort();
	}
}

static size_t signed_request(struct harness *h, int ci, const uint8_t *p, size_t n, int peer,
			     uint8_t *buf, size_t cap)
{
	static const uint16_t methods[4] = { NB_TURN_METHOD_ALLOCATE, NB_TURN_METHOD_REFRESH,
					     NB_TURN_METHOD_CREATE_PERMISSION,
					     NB_TURN_METHOD_CHANNEL_BIND };
	uint16_t method = methods[n > 0 ? p[0] & 3 : 0];
	uint32_t arg = n > 2 ? (uint32_t)p[1] << 8 | p[2] : 600;
	struct nb_stun_enc e;
	uint8_t tid[NB_STUN_TID_LEN] = { 0 };
	const char *u = h->username[ci];
	const char *realm = NB_TURN_DEFAULT_REALM;
	char pw[NB_TURN_REST_PASSWORD_LEN + 1];
	uint8_t key[NB_TURN_KEY_LEN];
	struct nb_addr pa = addr(peer_addrs[peer]);

	h->tid++;
	memcpy(tid, &h->tid, sizeof(h->tid));
	if (nb_stun_enc_init(&e, buf, cap, method, tid, false) != 0)
		return 0;
	if (method == NB_TURN_METHOD_ALLOCATE) {
		uint8_t tr[4] = { NB_TURN_TRANSPORT_UDP, 0, 0, 0 };
		(void)nb_stun_enc_attr(&e, NB_TURN_ATTR_REQUESTED_TRANSPORT, tr, 4);
	}
	if (method == NB_TURN_METHOD_ALLOCATE || method == NB_TURN_METHOD_REFRESH) {
		(void)nb_stun_enc_u32(&e, NB_TURN_ATTR_LIFETIME, arg);
		if (n > 0 && (p[0] & 0x18)) {
			uint8_t f[4] = { p[0] & 8 ? NB_TURN_FAMILY_IPV6 : NB_TURN_FAMILY_IPV4, 0, 0, 0 };
			(void)nb_stun_enc_attr(&e, NB_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, f, 4);
		}
	}
	if (method == NB_TURN_METHOD_ALLOCATE && n > 0 && (p[0] & 0x20)) {
		uint8_t f[4] = { NB_TURN_FAMILY_IPV6, 0, 0, 0 };
		(void)nb_stun_enc_attr(&e, NB_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY, f, 4);
	}
	if (method == NB_TURN_METHOD_CHANNEL_BIND) {
		uint8_t ch[4] = { (uint8_t)(0x40 | (arg >> 8 & 0x1f)), (uint8_t)arg, 0, 0 };
		(void)nb_stun_enc_attr(&e, NB_TURN_ATTR_CHANNEL_NUMBER, ch, 4);
	}
	if (method == NB_TURN_METHOD_CREATE_PERMISSION || method == NB_TURN_METHOD_CHANNEL_BIND)
		(void)nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_PEER_ADDRESS, &pa);
	(void)nb_stun_enc_attr(&e, NB_STUN_ATTR_USERNAME, u, strlen(u));
	(void)nb_stun_enc_attr(&e, NB_TURN_ATTR_REALM, realm, strlen(realm));
	(void)nb_stun_enc_attr(&e, NB_TURN_ATTR_NONCE, h->nonce[ci], h->nonce_len[ci]);
	CHECK(nb_turn_rest_password((const uint8_t *)SECRET, strlen(SECRET), (const uint8_t *)u,
				    strlen(u), pw) == 0);
	CHECK(nb_turn_long_term_key((const uint8_t *)u, strlen(u), (const uint8_t *)realm,
				    strlen(realm), (const uint8_t *)pw, strlen(pw), key) == 0);
	if (nb_stun_enc_integrity(&e, key, sizeof(key)) != 0)
		return 0;
	if (n > 0 && (p[0] & 4))
		(void)nb_stun_enc_fingerprint(&e);
	return nb_stun_enc_len(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct harness h;
	struct nb_turn_out out;
	uint8_t buf[2048];
	size_t off = 0;
	int rc;

	memset(&h, 0, sizeof(h));
	nb_turn_config_default(&h.cfg);
	memcpy(h.cfg.secret, SECRET, strlen(SECRET));
	h.cfg.secret_len = strlen(SECRET);
	h.cfg.relay_ip[NB_FAM_V4] = addr("203.0.113.10");
	h.cfg.relay_ip[NB_FAM_V6] = addr("2001:db8::10");
	h.cfg.own[0] = addr("203.0.113.10");
	h.cfg.own[1] = addr("203.0.113.11");
	h.cfg.own[2] = addr("2001:db8::10");
	h.cfg.n_own = 3;
	h.cfg.port_lo = 50000;
	h.cfg.port_hi = 50003;
	h.cfg.max_allocs = 3;
	h.cfg.max_allocs_per_user = 2;
	h.cfg.max_perms = 2;
	h.cfg.max_channels = 2;
	h.cfg.bandwidth_Bps = (size > 0 && (data[0] & 1)) ? 2000 : 0;
	memcpy(h.cfg.software, "fuzz", 5);
	for (unsigned i = 0; i < sizeof(h.cfg.nonce_key); i++)
		h.cfg.nonce_key[i] = (uint8_t)i;
	CHECK(nb_turn_new(&h.cfg, &h.t) == 0);
	for (int i = 0; i < N_CLIENTS; i++) {
		h.clients[i].addr = addr(i & 1 ? "198.51.100.7:40001" : "198.51.100.7:40000");
		h.clients[i].transport = i >= 2 ? NB_TURN_CLIENT_TCP : NB_TURN_CLIENT_UDP;
		h.clients[i].conn = i >= 2 ? (uint64_t)i : 0;
		CHECK(nb_turn_rest_username(UNIX_NOW + 3600, i & 1 ? "bob" : "alice", h.username[i],
					    sizeof(h.username[i])) > 0);
	}
	h.now = 1000000;

	while (size - off >= 3) {
		uint8_t op = data[off];
		size_t n = (size_t)data[off + 1] << 8 | data[off + 2];
		const uint8_t *p = data + off + 3;
		int ci = (op >> 3) & 3;
		int pi = op >> 5;
		const struct nb_turn_client *c = &h.clients[ci];

		off += 3;
		if (n > size - off)
			n = size - off;
		off += n;
		switch (op & 7) {
		case 0:
			rc = nb_turn_handle_client(h.t, c, p, n, h.now, UNIX_NOW, &out);
			break;
		case 1: {
			struct nb_addr from = addr(peer_addrs[pi]);

			rc = nb_turn_handle_peer(h.t, h.last_open, &from, p, n, h.now, &out);
			break;
		}
		case 2: {
			size_t len = signed_request(&h, ci, p, n, pi, buf, sizeof(buf));

			rc = nb_turn_handle_client(h.t, c, buf, len, h.now, UNIX_NOW, &out);
			break;
		}
		case 3: {
			struct nb_stun_enc e;
			uint8_t tid[NB_STUN_TID_LEN] = { 1, 2, 3 };
			struct nb_addr pa = addr(peer_addrs[pi]);
			size_t dn = n > NB_TURN_MAX_DATA + 8 ? NB_TURN_MAX_DATA + 8 : n;

			CHECK(nb_stun_enc_init(&e, buf, sizeof(buf),
					       NB_TURN_METHOD_SEND | NB_STUN_CLASS_INDICATION, tid,
					       false) == 0);
			CHECK(nb_stun_enc_xor_addr(&e, NB_TURN_ATTR_XOR_PEER_ADDRESS, &pa) == 0);
			CHECK(nb_stun_enc_attr(&e, NB_TURN_ATTR_DATA, p, dn) == 0);
			rc = nb_turn_handle_client(h.t, c, buf, nb_stun_enc_len(&e), h.now, UNIX_NOW,
						   &out);
			break;
		}
		case 4:
			rc = nb_turn_opened(h.t, h.last_open, (n > 0 && p[0] & 1) ? -EADDRINUSE : 0,
					    h.now, &out);
			break;
		case 5:
			h.now += (uint64_t)(n > 0 ? p[0] : 1) * 10000;
			for (unsigned k = 0; k < 16; k++) {
				rc = nb_turn_poll(h.t, h.now, &out);
				CHECK(rc == 0 || rc == 1);
				check_out(&h, 0, &out);
				CHECK(rc == 0 || out.kind == NB_TURN_OUT_CLOSE);
				if (rc == 0)
					break;
			}
			CHECK(nb_turn_next_deadline(h.t) > h.now || nb_turn_poll(h.t, h.now, &out) == 1);
			rc = 0;
			memset(&out, 0, sizeof(out));
			break;
		case 6:
			rc = nb_turn_client_closed(h.t, c, h.now, &out);
			break;
		default: {
			size_t dn = n > 1 ? n - 1 : 0;
			ssize_t len;

			if (dn > NB_TURN_MAX_DATA)
				dn = NB_TURN_MAX_DATA;
			len = nb_turn_chandata_encode(buf, sizeof(buf),
						      (uint16_t)(0x4000 + (n > 0 ? p[0] : 0)),
						      n > 1 ? p + 1 : NULL, dn,
						      c->transport == NB_TURN_CLIENT_TCP);
			if (len < 0) {
				rc = 0;
				memset(&out, 0, sizeof(out));
				break;
			}
			rc = nb_turn_handle_client(h.t, c, buf, (size_t)len, h.now, UNIX_NOW, &out);
			break;
		}
		}
		check_out(&h, rc, &out);
		h.now += 1;
	}
	{
		const struct nb_turn_stats *st = nb_turn_get_stats(h.t);

		CHECK(st->allocs_now <= h.cfg.max_allocs);
	}
	nb_turn_free(h.t);
	return 0;
}
