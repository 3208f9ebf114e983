/* tests/unit/noise_peer.c - drives our nb_noise_* over stdin/stdout for noise_interop.py.
 *
 *   noise_peer initiator S_PRIV RS_PUB PROLOGUE PAYLOAD E_PRIV ROUNDS
 *   noise_peer responder S_PRIV PROLOGUE PAYLOAD E_PRIV ROUNDS
 *
 * Arguments are hex ("-" for empty). Messages on the pipes are raw Noise
 * messages (no 0xD1/0xD2 header: this program strips and adds it), each
 * preceded by its length (4 bytes, big-endian):
 *
 *   initiator: out msg1; in msg2; out payload received in msg2;
 *   responder: in msg1; out payload received in msg1; out the initiator's
 *              static key; out msg2;
 *   both:      out handshake hash; then ROUNDS times: in a transport
 *              message (their send key, n = round, empty AD); out
 *              "echo:" || its plaintext sealed with our send key, n = round.
 *
 * Any failure: a message on stderr and exit status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/keys.h"
#include "common/noise.h"

#define MAX_MSG 2048

static void die(const char *what, int rc)
{
	fprintf(stderr, "noise_peer: %s: %s (%d)\n", what, rc ? nb_noise_strerror(rc) : "failed", rc);
	exit(1);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n, i;

	if (strcmp(s, "-") == 0)
		return 0;
	n = strlen(s);
	if (n % 2 || n / 2 > cap)
		die("bad hex argument", 0);
	for (i = 0; i < n / 2; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			die("bad hex argument", 0);
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return n / 2;
}

static void send_msg(const uint8_t *p, size_t len)
{
	uint8_t hdr[4];

	nb_put_u32be(hdr, (uint32_t)len);
	if (fwrite(hdr, 1, 4, stdout) != 4 || (len && fwrite(p, 1, len, stdout) != len) || fflush(stdout) != 0)
		die("write", 0);
}

static size_t recv_msg(uint8_t *p, size_t cap)
{
	uint8_t hdr[4];
	size_t len;

	if (fread(hdr, 1, 4, stdin) != 4)
		die("read length", 0);
	len = nb_get_u32be(hdr);
	if (len > cap || (len && fread(p, 1, len, stdin) != len))
		die("read message", 0);
	return len;
}

static size_t count_arg(const char *s)
{
	char *end = NULL;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v > 1000)
		die("bad ROUNDS", 0);
	return v;
}

static void transport(const struct nb_noise_keys *k, size_t rounds)
{
	uint8_t in[MAX_MSG], pt[MAX_MSG], out[MAX_MSG + 16];
	size_t len, plen;
	int rc;

	send_msg(k->handshake_hash, sizeof(k->handshake_hash));
	for (size_t i = 0; i < rounds; i++) {
		len = recv_msg(in, sizeof(in));
		if (len < 16)
			die("short transport message", 0);
		plen = len - 16;
		memcpy(pt, "echo:", 5);
		if (plen > sizeof(pt) - 5)
			die("transport message too long", 0);
		rc = nb_noise_aead_open(k->recv, i, NULL, 0, in, len, pt + 5);
		if (rc)
			die("aead_open", rc);
		rc = nb_noise_aead_seal(k->send, i, NULL, 0, pt, plen + 5, out);
		if (rc)
			die("aead_seal", rc);
		send_msg(out, plen + 5 + 16);
	}
}

static void initiator(char **argv)
{
	uint8_t s[32], rs[32], e[32], prologue[256], payload[NB_NOISE_MAX_PAYLOAD], frame[MAX_MSG],
		got[NB_NOISE_MAX_PAYLOAD];
	size_t plen, n, elen;
	struct nb_noise_hs hs;
	struct nb_noise_keys k;
	ssize_t r;
	int rc;

	if (unhex(argv[2], s, 32) != 32 || unhex(argv[3], rs, 32) != 32)
		die("keys must be 32 bytes", 0);
	plen = unhex(argv[4], prologue, sizeof(prologue));
	n = unhex(argv[5], payload, sizeof(payload));
	elen = unhex(argv[6], e, 32);
	rc = nb_noise_init_initiator(&hs, s, rs, prologue, plen);
	if (rc)
		die("init_initiator", rc);
	if (elen == 32 && (rc = nb_noise_set_ephemeral_for_test(&hs, e)) != 0)
		die("set_ephemeral", rc);
	r = nb_noise_write_init(&hs, 0x1000 + 7, payload, n, frame, sizeof(frame));
	if (r < 0)
		die("write_init", (int)r);
	send_msg(frame + NB_NOISE_INIT_HDR_LEN, (size_t)r - NB_NOISE_INIT_HDR_LEN);

	frame[0] = NB_NOISE_TYPE_RESP;
	nb_put_u32be(frame + 1, 0x2000);
	nb_put_u32be(frame + 5, 0x1000 + 7);
	n = recv_msg(frame + NB_NOISE_RESP_HDR_LEN, sizeof(frame) - NB_NOISE_RESP_HDR_LEN);
	r = nb_noise_read_resp(&hs, frame, NB_NOISE_RESP_HDR_LEN + n, got, sizeof(got));
	if (r < 0)
		die("read_resp", (int)r);
	send_msg(got, (size_t)r);
	rc = nb_noise_split(&hs, &k);
	if (rc)
		die("split", rc);
	if (k.remote_index != 0x2000 || k.local_index != 0x1000 + 7)
		die("indices", 0);
	transport(&k, count_arg(argv[7]));
}

static void responder(char **argv)
{
	uint8_t s[32], e[32], prologue[256], payload[NB_NOISE_MAX_PAYLOAD], frame[MAX_MSG],
		got[NB_NOISE_MAX_PAYLOAD];
	size_t plen, n, elen;
	struct nb_noise_hs hs;
	struct nb_noise_keys k;
	ssize_t r;
	int rc;

	if (unhex(argv[2], s, 32) != 32)
		die("key must be 32 bytes", 0);
	plen = unhex(argv[3], prologue, sizeof(prologue));
	n = unhex(argv[4], payload, sizeof(payload));
	elen = unhex(argv[5], e, 32);
	rc = nb_noise_init_responder(&hs, s, prologue, plen);
	if (rc)
		die("init_responder", rc);

	frame[0] = NB_NOISE_TYPE_INIT;
	nb_put_u32be(frame + 1, 0x3000);
	plen = recv_msg(frame + NB_NOISE_INIT_HDR_LEN, sizeof(frame) - NB_NOISE_INIT_HDR_LEN);
	r = nb_noise_read_init(&hs, frame, NB_NOISE_INIT_HDR_LEN + plen, got, sizeof(got));
	if (r < 0)
		die("read_init", (int)r);
	send_msg(got, (size_t)r);
	send_msg(nb_noise_remote_static(&hs), 32);
	if (nb_noise_remote_index(&hs) != 0x3000)
		die("remote index", 0);
	if (elen == 32 && (rc = nb_noise_set_ephemeral_for_test(&hs, e)) != 0)
		die("set_ephemeral", rc);
	r = nb_noise_write_resp(&hs, 0x4000, payload, n, frame, sizeof(frame));
	if (r < 0)
		die("write_resp", (int)r);
	send_msg(frame + NB_NOISE_RESP_HDR_LEN, (size_t)r - NB_NOISE_RESP_HDR_LEN);
	rc = nb_noise_split(&hs, &k);
	if (rc)
		die("split", rc);
	transport(&k, count_arg(argv[6]));
}

int main(int argc, char **argv)
{
	if (argc == 8 && strcmp(argv[1], "initiator") == 0)
		initiator(argv);
	else if (argc == 7 && strcmp(argv[1], "responder") == 0)
		responder(argv);
	else {
		fprintf(stderr, "usage: noise_peer initiator S_PRIV RS_PUB PROLOGUE PAYLOAD E_PRIV ROUNDS\n"
				"       noise_peer responder S_PRIV PROLOGUE PAYLOAD E_PRIV ROUNDS\n");
		return 2;
	}
	return 0;
}
