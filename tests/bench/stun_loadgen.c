/* tests/bench/stun_loadgen.c - STUN Binding load generator for the benchmark.
 *
 * Keeps a window of Binding requests (distinct transaction IDs) in flight to
 * one server from one UDP socket: sendmmsg to fill the window, recvmmsg for
 * the answers, refill by as many as were answered. A window that gets no
 * answer for 20 ms is written off (the server or a socket buffer dropped it)
 * and sent again. Counts valid Binding success responses per second over a
 * fixed duration after a short warm-up, then stops by itself.
 *
 *   stun_loadgen IP PORT [-d SECONDS] [-w WINDOW]   load; prints one result line
 *   stun_loadgen IP PORT -p                         probe: one request, prints
 *                                                   the response size; exit 1
 *                                                   if no answer within 2 s
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQ_LEN 20
#define BATCH 64
#define MAX_WINDOW 4096
#define WARMUP_NS 500000000ull
#define LOSS_TIMEOUT_MS 20

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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

/* Binding request, tid = "NBLG" + 8-byte sequence number. */
static void make_request(uint8_t *b, uint64_t seq)
{
	static const uint8_t hdr[8] = { 0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42 };

	memcpy(b, hdr, 8);
	memcpy(b + 8, "NBLG", 4);
	for (int i = 0; i < 8; i++)
		b[12 + i] = (uint8_t)(seq >> (56 - 8 * i));
}

static int is_answer(const uint8_t *b, size_t n)
{
	return n >= 20 && b[0] == 0x01 && b[1] == 0x01 && b[4] == 0x21 && b[5] == 0x12 &&
	       b[6] == 0xa4 && b[7] == 0x42 && memcmp(b + 8, "NBLG", 4) == 0;
}

static uint8_t txbuf[BATCH][REQ_LEN];
static uint8_t rxbuf[BATCH][1500];

/* Send n requests (n <= BATCH per call, looped); returns how many went. */
static unsigned send_requests(int fd, unsigned n, uint64_t *seq)
{
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	unsigned sent = 0;

	while (sent < n) {
		unsigned k = n - sent < BATCH ? n - sent : BATCH;
		int r;

		memset(m, 0, sizeof(m[0]) * k);
		for (unsigned i = 0; i < k; i++) {
			make_request(txbuf[i], (*seq)++);
			iov[i].iov_base = txbuf[i];
			iov[i].iov_len = REQ_LEN;
			m[i].msg_hdr.msg_iov = &iov[i];
			m[i].msg_hdr.msg_iovlen = 1;
		}
		r = sendmmsg(fd, m, k, 0);
		if (r <= 0)
			break; /* ENOBUFS/EAGAIN/ECONNREFUSED: try again on the next round */
		sent += (unsigned)r;
	}
	return sent;
}

/* Receive what is there; returns answers, sets *resp_len to a valid answer's size. */
static unsigned recv_answers(int fd, size_t *resp_len)
{
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	unsigned got = 0;
	int r;

	memset(m, 0, sizeof(m));
	for (unsigned i = 0; i < BATCH; i++) {
		iov[i].iov_base = rxbuf[i];
		iov[i].iov_len = sizeof(rxbuf[i]);
		m[i].msg_hdr.msg_iov = &iov[i];
		m[i].msg_hdr.msg_iovlen = 1;
	}
	r = recvmmsg(fd, m, BATCH, MSG_DONTWAIT, NULL);
	for (int i = 0; i < r; i++) {
		if (is_answer(rxbuf[i], m[i].msg_len)) {
			got++;
			*resp_len = m[i].msg_len;
		}
	}
	return got;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa;
	unsigned long secs = 5, window = 128;
	int probe = 0, fd, opt;
	uint64_t seq = 1;
	size_t resp_len = 0;

	while ((opt = getopt(argc, argv, "d:w:p")) != -1) {
		switch (opt) {
		case 'd':
			if (parse_num(optarg, 1, 600, &secs) != 0) {
				fprintf(stderr, "stun_loadgen: -d: seconds from 1 to 600\n");
				return 2;
			}
			break;
		case 'w':
			if (parse_num(optarg, 1, MAX_WINDOW, &window) != 0) {
				fprintf(stderr, "stun_loadgen: -w: window from 1 to %d\n", MAX_WINDOW);
				return 2;
			}
			break;
		case 'p':
			probe = 1;
			break;
		default:
			fprintf(stderr, "usage: stun_loadgen IP PORT [-d SECONDS] [-w WINDOW] [-p]\n");
			return 2;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: stun_loadgen IP PORT [-d SECONDS] [-w WINDOW] [-p]\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	{
		unsigned long port;
		if (inet_pton(AF_INET, argv[optind], &sa.sin_addr) != 1 ||
		    parse_num(argv[optind + 1], 1, 65535, &port) != 0) {
			fprintf(stderr, "stun_loadgen: bad address %s %s\n", argv[optind], argv[optind + 1]);
			return 2;
		}
		sa.sin_port = htons((uint16_t)port);
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("stun_loadgen: socket");
		return 1;
	}
	{
		int sz = 4 << 20;
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	}

	if (probe) {
		for (int i = 0; i < 10; i++) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			send_requests(fd, 1, &seq);
			if (poll(&p, 1, 200) > 0 && recv_answers(fd, &resp_len) > 0) {
				printf("response_bytes=%zu request_bytes=%d\n", resp_len, REQ_LEN);
				return 0;
			}
		}
		fprintf(stderr, "stun_loadgen: no answer from %s:%s\n", argv[optind], argv[optind + 1]);
		return 1;
	}

	{
		uint64_t t0 = now_ns(), start = t0 + WARMUP_NS, end = start + secs * 1000000000ull;
		uint64_t answered = 0, sent = 0, writeoffs = 0, counted = 0;
		unsigned long outstanding = 0;
		int counting = 0;

		for (;;) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			uint64_t t = now_ns();
			unsigned got;

			if (t >= end)
				break;
			if (!counting && t >= start) {
				counting = 1;
				counted = 0;
			}
			if (outstanding < window) {
				unsigned n = send_requests(fd, (unsigned)(window - outstanding), &seq);
				outstanding += n;
				sent += n;
			}
			if (poll(&p, 1, LOSS_TIMEOUT_MS) == 0) {
				writeoffs += outstanding; /* nothing for 20 ms: lost, resend */
				outstanding = 0;
				continue;
			}
			while ((got = recv_answers(fd, &resp_len)) > 0) {
				answered += got;
				if (counting)
					counted += got;
				outstanding = got > outstanding ? 0 : outstanding - got;
				if (got < BATCH)
					break;
			}
		}
		printf("answers_per_sec=%.0f seconds=%lu window=%lu sent=%llu answered=%llu "
		       "written_off=%llu response_bytes=%zu\n",
		       (double)counted / (double)secs, secs, window, (unsigned long long)sent,
		       (unsigned long long)answered, (unsigned long long)writeoffs, resp_len);
	}
	close(fd);
	return 0;
}
