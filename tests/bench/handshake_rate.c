/* tests/bench/handshake_rate.c - the broker's cost of one Noise IK handshake vs raw X25519, on one core.
 *
 *   handshake_rate [-s SECONDS] [-k KEYS] [-p PAYLOAD]
 *
 * Prepares KEYS (default 1024) initiations from as many different initiator
 * key pairs, each with a PAYLOAD-byte payload (default 32), then for
 * SECONDS each (default 3):
 *   (a) the responder's side: nb_noise_init_responder_with_public +
 *       read_init + write_resp + split, cycling through the initiations;
 *   (a') the same with nb_noise_init_responder (our public key recomputed
 *       every time), to show what the cached public key saves;
 *   (b) nb_key_dh with our static key and the initiators' public keys;
 *   (c) nb_key_generate (the ephemeral key: one fixed-base X25519).
 * Prints the rates, X25519 operations per handshake (IK's responder: es,
 * ss, ee, se = 4 DH + 1 key generation) and the ratio of the handshake
 * rate to the bound those operations alone would allow. Not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/keys.h"
#include "common/noise.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long arg_num(const char *s, unsigned long max)
{
	char *end = NULL;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v == 0 || v > max) {
		fprintf(stderr, "handshake_rate: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

struct init_msg {
	uint8_t frame[NB_NOISE_INIT_MAX];
	size_t len;
	uint8_t pub[32];
};

static uint8_t g_s[32], g_S[32];
static struct init_msg *g_msgs;
static size_t g_nkeys;

static int one_handshake(size_t i, bool cached_pub)
{
	struct nb_noise_hs hs;
	struct nb_noise_keys k;
	uint8_t payload[NB_NOISE_MAX_PAYLOAD], out[NB_NOISE_RESP_MAX];
	const struct init_msg *m = &g_msgs[i % g_nkeys];
	ssize_t n;

	if ((cached_pub ? nb_noise_init_responder_with_public(&hs, g_s, g_S, NULL, 0)
			: nb_noise_init_responder(&hs, g_s, NULL, 0)) != 0)
		return -1;
	n = nb_noise_read_init(&hs, m->frame, m->len, payload, sizeof(payload));
	if (n < 0)
		return -1;
	if (nb_noise_write_resp(&hs, (uint32_t)i, payload, (size_t)n, out, sizeof(out)) < 0)
		return -1;
	return nb_noise_split(&hs, &k);
}

enum job { JOB_HS, JOB_HS_NOCACHE, JOB_DH, JOB_KEYGEN };

static double run(enum job job, double secs)
{
	double t0 = now_s(), t = t0;
	unsigned long count = 0;
	uint8_t out[32], a[32], b[32];

	while (t - t0 < secs) {
		for (int j = 0; j < 32; j++, count++) {
			int rc = 0;

			switch (job) {
			case JOB_HS:
				rc = one_handshake(count, true);
				break;
			case JOB_HS_NOCACHE:
				rc = one_handshake(count, false);
				break;
			case JOB_DH:
				rc = nb_key_dh(g_s, g_msgs[count % g_nkeys].pub, out);
				break;
			case JOB_KEYGEN:
				rc = nb_key_generate(a, b);
				break;
			}
			if (rc != 0) {
				fprintf(stderr, "handshake_rate: operation failed (%d)\n", rc);
				exit(1);
			}
		}
		t = now_s();
	}
	return (double)count / (t - t0);
}

int main(int argc, char **argv)
{
	double secs = 3, hs, hs_nc, dh, kg, per_hs_bound;
	size_t plen = 32;
	uint8_t payload[NB_NOISE_MAX_PAYLOAD];
	int opt;

	g_nkeys = 1024;
	while ((opt = getopt(argc, argv, "s:k:p:")) != -1) {
		switch (opt) {
		case 's':
			secs = (double)arg_num(optarg, 600);
			break;
		case 'k':
			g_nkeys = arg_num(optarg, 1u << 20);
			break;
		case 'p':
			plen = arg_num(optarg, NB_NOISE_MAX_PAYLOAD);
			break;
		default:
			fprintf(stderr, "usage: handshake_rate [-s SECONDS] [-k KEYS] [-p PAYLOAD]\n");
			return 2;
		}
	}
	memset(payload, 'x', sizeof(payload));
	if (nb_key_generate(g_s, g_S) != 0)
		return 1;
	g_msgs = calloc(g_nkeys, sizeof(*g_msgs));
	if (!g_msgs)
		return 1;
	for (size_t i = 0; i < g_nkeys; i++) {
		uint8_t ip[32];
		struct nb_noise_hs ini;
		ssize_t n;

		if (nb_key_generate(ip, g_msgs[i].pub) != 0 || nb_noise_init_initiator(&ini, ip, g_S, NULL, 0) != 0)
			return 1;
		n = nb_noise_write_init(&ini, (uint32_t)i, payload, plen, g_msgs[i].frame, sizeof(g_msgs[i].frame));
		if (n < 0)
			return 1;
		g_msgs[i].len = (size_t)n;
		nb_noise_wipe(&ini);
	}
	hs = run(JOB_HS, secs);
	hs_nc = run(JOB_HS_NOCACHE, secs);
	dh = run(JOB_DH, secs);
	kg = run(JOB_KEYGEN, secs);
	/* Time per handshake if it were only its 4 DH and 1 key generation. */
	per_hs_bound = 1.0 / (4.0 / dh + 1.0 / kg);
	printf("initiations prepared: %zu (distinct initiator keys), payload %zu bytes, %.0f s per measurement\n",
	       g_nkeys, plen, secs);
	printf("responder handshakes/s:              %8.0f  (init_with_public + read_init + write_resp + split)\n",
	       hs);
	printf("responder handshakes/s, no cache:    %8.0f  (nb_noise_init_responder: public key recomputed)\n",
	       hs_nc);
	printf("X25519 DH/s (nb_key_dh):             %8.0f\n", dh);
	printf("X25519 key generations/s:            %8.0f\n", kg);
	printf("X25519 operations per handshake:     4 DH (es, ss, ee, se) + 1 key generation (e)\n");
	printf("ratio handshakes/s : DH/s            = 1 : %.2f\n", dh / hs);
	printf("bound from the X25519 work alone     = %.0f handshakes/s; measured = %.0f%% of it\n", per_hs_bound,
	       100.0 * hs / per_hs_bound);
	printf("goal >= 20000 handshakes/s: %s\n", hs >= 20000 ? "met" : "NOT met");
	free(g_msgs);
	return 0;
}
