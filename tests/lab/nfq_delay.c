/* nfq_delay: hold every packet of an NFQUEUE for a fixed delay, then accept
 * it, in arrival (FIFO) order. The NAT lab's stand-in for netem, which this
 * kernel lacks (see docs/lab.md, "Delay and loss").
 *
 *   nfq_delay [-q QUEUE] -d DELAY_US
 *
 * Used with `iptables ... -j NFQUEUE --queue-num QUEUE --queue-bypass`, so
 * packets pass undelayed when this daemon is not running. Prints one line
 * containing "ready" on stderr once it is bound to the queue. On SIGTERM or
 * SIGINT it accepts every packet still held and exits 0.
 *
 * Built by tests/lab/natlab.sh: cc -O2 nfq_delay.c -lnetfilter_queue -lnfnetlink
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <libnfnetlink/libnfnetlink.h>

/* Packets held at once; the kernel queue is sized to match. At 20 ms this
 * covers 3.2 Mpps, far more than the lab carries. */
#define HELD_MAX 65536u
#define RCVBUF_BYTES (16 * 1024 * 1024)

struct held {
	uint32_t id;
	uint64_t due_ns;
};

static struct held ring[HELD_MAX];
static uint32_t ring_head; /* index of oldest */
static uint32_t ring_len;
static uint64_t delay_ns;
static uint64_t n_in, n_out, n_overflow;
static volatile sig_atomic_t stop_flag;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int verdict_accept(struct nfq_q_handle *qh, uint32_t id)
{
	if (nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL) < 0) {
		fprintf(stderr, "nfq_delay: verdict for %" PRIu32 " failed: %s\n",
			id, strerror(errno));
		return -1;
	}
	n_out++;
	return 0;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg,
		     struct nfq_data *nfa, void *data)
{
	struct nfqnl_msg_packet_hdr *ph;
	uint32_t id;

	(void)msg;
	(void)data;
	ph = nfq_get_msg_packet_hdr(nfa);
	if (ph == NULL)
		return 0;
	id = ntohl(ph->packet_id);
	n_in++;
	if (ring_len == HELD_MAX) {
		/* full: let it through now rather than lose it */
		n_overflow++;
		return verdict_accept(qh, id);
	}
	ring[(ring_head + ring_len) % HELD_MAX] =
		(struct held){ .id = id, .due_ns = now_ns() + delay_ns };
	ring_len++;
	return 0;
}

/* Accept every held packet whose time has come (all of them if flush). */
static void release_due(struct nfq_q_handle *qh, int flush)
{
	uint64_t now = now_ns();

	while (ring_len > 0 && (flush || ring[ring_head].due_ns <= now)) {
		verdict_accept(qh, ring[ring_head].id);
		ring_head = (ring_head + 1) % HELD_MAX;
		ring_len--;
	}
}

static int parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max)
		return -1;
	*ret = v;
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: nfq_delay [-q QUEUE] -d DELAY_US\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t queue = 0, delay_us = UINT64_MAX;
	struct nfq_handle *h;
	struct nfq_q_handle *qh;
	struct sigaction sa;
	sigset_t block, orig;
	char buf[4096] __attribute__((aligned));
	int opt, fd;

	while ((opt = getopt(argc, argv, "q:d:")) != -1) {
		switch (opt) {
		case 'q':
			if (parse_u64(optarg, 65535, &queue) < 0)
				usage();
			break;
		case 'd':
			if (parse_u64(optarg, 60000000, &delay_us) < 0)
				usage();
			break;
		default:
			usage();
		}
	}
	if (delay_us == UINT64_MAX || optind != argc)
		usage();
	delay_ns = delay_us * 1000u;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &orig);

	h = nfq_open();
	if (h == NULL) {
		perror("nfq_delay: nfq_open");
		return 1;
	}
	qh = nfq_create_queue(h, (uint16_t)queue, on_packet, NULL);
	if (qh == NULL) {
		perror("nfq_delay: nfq_create_queue");
		nfq_close(h);
		return 1;
	}
	/* metadata only: the verdict needs nothing but the packet id */
	if (nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0 ||
	    nfq_set_queue_maxlen(qh, HELD_MAX) < 0) {
		perror("nfq_delay: queue setup");
		goto fail;
	}
	/* hand over GSO packets whole rather than segmenting them */
	nfq_set_queue_flags(qh, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO);
	nfnl_rcvbufsiz(nfq_nfnlh(h), RCVBUF_BYTES);
	fd = nfq_fd(h);

	fprintf(stderr, "nfq_delay: queue %" PRIu64 " delay %" PRIu64 " us ready\n",
		queue, delay_us);

	while (!stop_flag) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		struct timespec ts, *tsp = NULL;
		int r;

		release_due(qh, 0);
		if (ring_len > 0) {
			uint64_t now = now_ns(), due = ring[ring_head].due_ns;
			uint64_t wait = due > now ? due - now : 0;

			ts.tv_sec = (time_t)(wait / 1000000000u);
			ts.tv_nsec = (long)(wait % 1000000000u);
			tsp = &ts;
		}
		r = ppoll(&pfd, 1, tsp, &orig);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			perror("nfq_delay: ppoll");
			break;
		}
		if (r == 0 || !(pfd.revents & POLLIN))
			continue;
		for (;;) {
			ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

			if (n < 0) {
				if (errno == ENOBUFS) {
					fprintf(stderr, "nfq_delay: ENOBUFS, packets lost\n");
					continue;
				}
				break; /* EAGAIN or a real error: back to ppoll */
			}
			if (n == 0)
				break;
			nfq_handle_packet(h, buf, (int)n);
		}
	}
	release_due(qh, 1);
	fprintf(stderr, "nfq_delay: exit: %" PRIu64 " in, %" PRIu64 " out, %" PRIu64
		" overflow\n", n_in, n_out, n_overflow);
	nfq_destroy_queue(qh);
	nfq_close(h);
	return 0;
fail:
	nfq_destroy_queue(qh);
	nfq_close(h);
	return 1;
}
