/* tests/bench/datachan_rate.c - data-channel throughput: sealed 0xD3 frames vs plain UDP datagrams of the same size, one core each side.
 *
 *   datachan_rate send IP PORT [-s SECONDS] [--seal] [-k SEED] [-z SIZE] [-B BATCH]
 *   datachan_rate recv IP PORT [-s SECONDS] [--seal] [-k SEED] [-z SIZE] [-B BATCH]
 *                              [-r RCVBUF] [-w WAIT]
 *
 * Both sides move SIZE-byte datagrams (default 1200; at most NB_DC_MAX_DATAGRAM)
 * in batches of BATCH (default 64): the sender with sendmmsg() on a
 * blocking socket, the receiver with recvmmsg(). Plain mode: the datagram
 * is a SIZE-byte payload (a sequence number in its first 8 bytes). --seal:
 * each datagram is one data-channel frame, nb_dc_seal() of a SIZE - 29
 * byte payload (1171 at 1200), and the receiver counts only the frames
 * that nb_dc_open() verifies (tag, index, replay window). Both sides use
 * the same method for both modes, so the difference is the sealing.
 *
 * Keys: both sides derive the same fixed test keys from SEED (SHA-256 of a
 * label and the seed), so no handshake is needed: this measures the data
 * path only (tests/bench/handshake_rate.sh measures the handshake).
 *
 * The sender sends for WARM + SECONDS + TAIL (0.25 s each side), as fast as
 * it can, and prints what it sent. The receiver waits up to WAIT seconds
 * (default 10) for the first datagram, skips WARM, counts for SECONDS
 * (the measurement window), then drains until nothing has come for 0.5 s.
 * It prints the window's packets/s, payload Mbit/s and CPU time per packet
 * (getrusage, user + system, of the receiving process: recvmmsg and
 * opening), and the totals for the drop count. Output: one line of
 * key=value pairs on stdout. Not a test. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "peer/datachan.h"

#define MAX_BATCH 256
#define WARM_NS 250000000ull
#define TAIL_NS 250000000ull
#define IDLE_NS 500000000ull
#define SEED_MAX 0xffffffffUL

struct opts {
	bool send, seal;
	struct sockaddr_in addr;
	unsigned long secs, seed, size, batch, rcvbuf, wait;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int parse_num(const char *s, unsigned long min, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*ret = v;
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: datachan_rate send|recv IP PORT [-s SECONDS] [--seal] [-k SEED] "
			"[-z SIZE] [-B BATCH] [-r RCVBUF] [-w WAIT]\n");
	exit(2);
}

/* out = SHA-256(label || seed as 8 bytes BE). 0, or -1. */
static int derive(const char *label, unsigned long seed, uint8_t out[NB_SEAL_KEY_LEN])
{
	uint8_t in[64];
	size_t n = strlen(label);
	unsigned int olen = 0;

	if (n > sizeof(in) - 8)
		return -1;
	memcpy(in, label, n);
	for (int i = 0; i < 8; i++)
		in[n + (size_t)i] = (uint8_t)((uint64_t)seed >> (56 - 8 * i));
	if (EVP_Digest(in, n + 8, out, &olen, EVP_sha256(), NULL) != 1 || olen != NB_SEAL_KEY_LEN)
		return -1;
	return 0;
}

/* The fixed test keys: the sender's send key is the receiver's recv key;
 * the sender's frames carry index 2, the receiver's local index. */
static int test_keys(bool sender, unsigned long seed, struct nb_seal_keys *k)
{
	uint8_t a[NB_SEAL_KEY_LEN], b[NB_SEAL_KEY_LEN];
	int rc = -1;

	if (derive("datachan_rate a->b", seed, a) != 0 || derive("datachan_rate b->a", seed, b) != 0)
		goto out;
	memcpy(k->send, sender ? a : b, NB_SEAL_KEY_LEN);
	memcpy(k->recv, sender ? b : a, NB_SEAL_KEY_LEN);
	k->local_index = sender ? 1 : 2;
	k->remote_index = sender ? 2 : 1;
	rc = 0;
out:
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return rc;
}

static void parse(int argc, char **argv, struct opts *o)
{
	unsigned long port;

	if (argc < 4)
		usage();
	memset(o, 0, sizeof(*o));
	o->secs = 3;
	o->seed = 1;
	o->size = 1200; /* the size plain UDP is compared at (the most is NB_DC_MAX_DATAGRAM) */
	o->batch = 64;
	o->rcvbuf = 32ul << 20;
	o->wait = 10;
	if (strcmp(argv[1], "send") == 0)
		o->send = true;
	else if (strcmp(argv[1], "recv") != 0)
		usage();
	o->addr.sin_family = AF_INET;
	if (inet_pton(AF_INET, argv[2], &o->addr.sin_addr) != 1 ||
	    parse_num(argv[3], 1, 65535, &port) != 0)
		usage();
	o->addr.sin_port = htons((uint16_t)port);
	for (int i = 4; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int rc = 0;

		if (strcmp(a, "--seal") == 0) {
			o->seal = true;
			continue;
		}
		if (strcmp(a, "-s") == 0)
			rc = parse_num(v, 1, 600, &o->secs);
		else if (strcmp(a, "-k") == 0)
			rc = parse_num(v, 0, SEED_MAX, &o->seed);
		else if (strcmp(a, "-z") == 0)
			rc = parse_num(v, NB_DC_OVERHEAD + 8, NB_DC_MAX_DATAGRAM, &o->size);
		else if (strcmp(a, "-B") == 0)
			rc = parse_num(v, 1, MAX_BATCH, &o->batch);
		else if (strcmp(a, "-r") == 0)
			rc = parse_num(v, 4096, 1ul << 30, &o->rcvbuf);
		else if (strcmp(a, "-w") == 0)
			rc = parse_num(v, 1, 600, &o->wait);
		else
			usage();
		if (rc != 0) {
			fprintf(stderr, "datachan_rate: bad value for %s\n", a);
			exit(2);
		}
		i++;
	}
}

static uint8_t g_buf[MAX_BATCH][NB_DC_MAX_DATAGRAM];
static uint8_t g_pt[NB_DC_MAX_DATAGRAM];
static struct mmsghdr g_msg[MAX_BATCH];
static struct iovec g_iov[MAX_BATCH];

static int run_send(const struct opts *o, int fd, struct nb_dc *dc)
{
	size_t pay = o->seal ? o->size - NB_DC_OVERHEAD : o->size;
	uint64_t t0 = now_ns(), end = t0 + WARM_NS + o->secs * 1000000000ull + TAIL_NS, t = t0;
	uint64_t seq = 0, sent = 0, errs = 0, fill_ns = 0;
	double c0 = cpu_s(), c1;

	memset(g_pt, 0xA5, sizeof(g_pt));
	for (unsigned long i = 0; i < o->batch; i++) {
		g_iov[i].iov_base = g_buf[i];
		g_iov[i].iov_len = o->size;
		memset(&g_msg[i], 0, sizeof(g_msg[i]));
		g_msg[i].msg_hdr.msg_iov = &g_iov[i];
		g_msg[i].msg_hdr.msg_iovlen = 1;
		g_msg[i].msg_hdr.msg_name = (void *)&o->addr;
		g_msg[i].msg_hdr.msg_namelen = sizeof(o->addr);
		memset(g_buf[i], 0xA5, o->size);
	}
	while (t < end) {
		uint64_t ms = t / 1000000u;
		unsigned int n;
		int r;

		for (unsigned long i = 0; i < o->batch; i++, seq++) {
			if (o->seal) {
				ssize_t fl;
				memcpy(g_pt, &seq, sizeof(seq));
				fl = nb_dc_seal(dc, g_pt, pay, g_buf[i], sizeof(g_buf[i]), ms);
				if (fl != (ssize_t)o->size) {
					fprintf(stderr, "datachan_rate: seal: %s\n",
						nb_dc_strerror((int)fl));
					return 1;
				}
			} else {
				memcpy(g_buf[i], &seq, sizeof(seq));
			}
		}
		n = (unsigned int)o->batch;
		fill_ns += now_ns() - t;
		r = sendmmsg(fd, g_msg, n, 0);
		if (r < 0) {
			if (errno != EINTR && errno != ENOBUFS && errno != EAGAIN &&
			    errno != ECONNREFUSED) {
				perror("datachan_rate: sendmmsg");
				return 1;
			}
			errs++;
		} else {
			sent += (uint64_t)r;
			if ((unsigned int)r < n)
				errs++;
		}
		t = now_ns();
	}
	c1 = cpu_s();
	{
		double secs = (double)(t - t0) / 1e9;
		printf("role=send mode=%s size=%lu payload=%zu batch=%lu secs=%.3f sent=%llu pps=%.0f "
		       "payload_mbps=%.1f cpu_s=%.3f cpu_ns_per_pkt=%.0f fill_ns_per_pkt=%.0f send_errors=%llu\n",
		       o->seal ? "sealed" : "plain", o->size, pay, o->batch, secs,
		       (unsigned long long)sent, (double)sent / secs,
		       (double)sent * (double)pay * 8 / secs / 1e6, c1 - c0,
		       sent ? (c1 - c0) * 1e9 / (double)sent : 0.0,
		       seq ? (double)fill_ns / (double)seq : 0.0, (unsigned long long)errs);
	}
	return 0;
}

static int run_recv(const struct opts *o, int fd, struct nb_dc *dc)
{
	size_t pay = o->seal ? o->size - NB_DC_OVERHEAD : o->size;
	uint64_t first = 0, w0 = 0, w1 = 0, last_rx, t, hard;
	uint64_t win_ok = 0, total = 0, ok = 0, bad = 0;
	double cw0 = 0, cw1 = 0;
	bool in_win = false, done_win = false;
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
	int got_buf = 0;
	socklen_t sl = sizeof(got_buf);

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
		perror("datachan_rate: SO_RCVTIMEO");
		return 1;
	}
	getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got_buf, &sl);
	for (unsigned long i = 0; i < o->batch; i++) {
		g_iov[i].iov_base = g_buf[i];
		g_iov[i].iov_len = sizeof(g_buf[i]);
		memset(&g_msg[i], 0, sizeof(g_msg[i]));
		g_msg[i].msg_hdr.msg_iov = &g_iov[i];
		g_msg[i].msg_hdr.msg_iovlen = 1;
	}
	fprintf(stderr, "datachan_rate: listening, SO_RCVBUF %d\n", got_buf);
	fflush(stderr);
	t = now_ns();
	hard = t + o->wait * 1000000000ull;
	last_rx = t;
	for (;;) {
		int r;
		uint64_t k_ok = 0;

		for (unsigned long i = 0; i < o->batch; i++)
			g_iov[i].iov_len = sizeof(g_buf[i]);
		r = recvmmsg(fd, g_msg, (unsigned int)o->batch, MSG_WAITFORONE, NULL);
		t = now_ns();
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			perror("datachan_rate: recvmmsg");
			return 1;
		}
		if (r > 0) {
			uint64_t ms = t / 1000000u;
			if (first == 0) {
				first = t;
				w0 = first + WARM_NS;
				w1 = w0 + o->secs * 1000000000ull;
				hard = w1 + 10000000000ull;
			}
			last_rx = t;
			for (int i = 0; i < r; i++) {
				size_t len = g_msg[i].msg_len;
				if (o->seal) {
					ssize_t n = nb_dc_open(dc, g_buf[i], len, g_pt, sizeof(g_pt), ms);
					if (n == (ssize_t)pay)
						k_ok++;
					else
						bad++;
				} else if (len == o->size) {
					k_ok++;
				} else {
					bad++;
				}
			}
			total += (uint64_t)r;
			ok += k_ok;
		}
		if (first != 0 && !in_win && !done_win && t >= w0) {
			in_win = true;
			w0 = t; /* the window starts at this batch boundary */
			cw0 = cpu_s();
		} else if (in_win && r > 0) {
			win_ok += k_ok;
		}
		if (in_win && t >= w1) {
			in_win = false;
			done_win = true;
			w1 = t;
			cw1 = cpu_s();
		}
		if (first == 0 && t >= hard) {
			fprintf(stderr, "datachan_rate: nothing received in %lu s\n", o->wait);
			return 1;
		}
		if (done_win && (t - last_rx >= IDLE_NS || t >= hard))
			break;
		if (first != 0 && !done_win && t >= hard)
			break;
	}
	if (!done_win) {
		fprintf(stderr, "datachan_rate: the sender stopped before the window ended\n");
		return 1;
	}
	{
		double secs = (double)(w1 - w0) / 1e9;
		printf("role=recv mode=%s size=%lu payload=%zu batch=%lu rcvbuf=%d secs=%.3f pkts=%llu "
		       "pps=%.0f payload_mbps=%.1f cpu_s=%.3f cpu_ns_per_pkt=%.0f total=%llu ok=%llu "
		       "bad=%llu\n",
		       o->seal ? "sealed" : "plain", o->size, pay, o->batch, got_buf, secs,
		       (unsigned long long)win_ok, (double)win_ok / secs,
		       (double)win_ok * (double)pay * 8 / secs / 1e6, cw1 - cw0,
		       win_ok ? (cw1 - cw0) * 1e9 / (double)win_ok : 0.0, (unsigned long long)total,
		       (unsigned long long)ok, (unsigned long long)bad);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct nb_seal_keys k;
	struct nb_dc dc;
	int fd, rc = 1, one = 1;
	bool dc_up = false;

	parse(argc, argv, &o);
	memset(&dc, 0, sizeof(dc));
	if (o.seal) {
		int err;
		if (test_keys(o.send, o.seed, &k) != 0) {
			fprintf(stderr, "datachan_rate: key derivation failed\n");
			return 1;
		}
		err = nb_dc_init(&dc, &k, now_ns() / 1000000u);
		OPENSSL_cleanse(&k, sizeof(k));
		if (err != 0) {
			fprintf(stderr, "datachan_rate: nb_dc_init: %s\n", nb_dc_strerror(err));
			return 1;
		}
		dc_up = true;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("datachan_rate: socket");
		goto out;
	}
	if (o.send) {
		rc = run_send(&o, fd, &dc);
	} else {
		int sz = (int)o.rcvbuf;
		/* SO_RCVBUFFORCE (root) passes net.core.rmem_max; else the capped SO_RCVBUF. */
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) != 0 &&
		    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)) != 0)
			perror("datachan_rate: SO_RCVBUF");
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&o.addr, sizeof(o.addr)) != 0) {
			perror("datachan_rate: bind");
			goto out;
		}
		rc = run_recv(&o, fd, &dc);
	}
out:
	if (fd >= 0)
		close(fd);
	if (dc_up)
		nb_dc_wipe(&dc);
	return rc;
}
