/* tests/bench/stun_bare.c - the benchmark's floor: a bare recvmmsg/sendmmsg
 * STUN responder with no event loop and no codec. It answers each datagram
 * that starts like an RFC 8489 request with a fixed-shape 32-byte Binding
 * success (XOR-MAPPED-ADDRESS of the source), and nothing else.
 *
 *   stun_bare IP PORT [-b BATCH]      runs until SIGINT/SIGTERM
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BATCH 256
#define RESP_LEN 32

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint8_t rx[MAX_BATCH][2048];
static uint8_t tx[MAX_BATCH][RESP_LEN];
static struct sockaddr_in from[MAX_BATCH];

int main(int argc, char **argv)
{
	struct mmsghdr rm[MAX_BATCH], tm[MAX_BATCH];
	struct iovec riov[MAX_BATCH], tiov[MAX_BATCH];
	struct sockaddr_in sa;
	struct sigaction act;
	unsigned long batch = 64, port;
	unsigned long long answered = 0;
	char *end;
	int fd, opt;

	while ((opt = getopt(argc, argv, "b:")) != -1) {
		if (opt != 'b')
			goto usage;
		errno = 0;
		batch = strtoul(optarg, &end, 10);
		if (errno != 0 || *end != '\0' || batch < 1 || batch > MAX_BATCH)
			goto usage;
	}
	if (argc - optind != 2)
		goto usage;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	errno = 0;
	port = strtoul(argv[optind + 1], &end, 10);
	if (inet_pton(AF_INET, argv[optind], &sa.sin_addr) != 1 || errno != 0 || *end != '\0' ||
	    port < 1 || port > 65535)
		goto usage;
	sa.sin_port = htons((uint16_t)port);

	memset(&act, 0, sizeof(act));
	act.sa_handler = on_signal; /* no SA_RESTART: recvmmsg returns EINTR */
	sigaction(SIGINT, &act, NULL);
	sigaction(SIGTERM, &act, NULL);

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("stun_bare: bind");
		return 1;
	}
	memset(rm, 0, sizeof(rm));
	memset(tm, 0, sizeof(tm));
	for (unsigned i = 0; i < MAX_BATCH; i++) {
		riov[i].iov_base = rx[i];
		riov[i].iov_len = sizeof(rx[i]);
		rm[i].msg_hdr.msg_iov = &riov[i];
		rm[i].msg_hdr.msg_iovlen = 1;
		rm[i].msg_hdr.msg_name = &from[i];
		tiov[i].iov_base = tx[i];
		tiov[i].iov_len = RESP_LEN;
		tm[i].msg_hdr.msg_iov = &tiov[i];
		tm[i].msg_hdr.msg_iovlen = 1;
	}
	while (!stop) {
		unsigned n = 0;
		int r;

		for (unsigned i = 0; i < batch; i++)
			rm[i].msg_hdr.msg_namelen = sizeof(from[i]);
		r = recvmmsg(fd, rm, (unsigned)batch, MSG_WAITFORONE, NULL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			perror("stun_bare: recvmmsg");
			break;
		}
		for (int i = 0; i < r; i++) {
			const uint8_t *q = rx[i];
			uint8_t *p = tx[n];
			uint32_t ip;
			uint16_t sport;

			if (rm[i].msg_len < 20 || q[0] != 0x00 || q[1] != 0x01 || q[4] != 0x21 ||
			    q[5] != 0x12 || q[6] != 0xa4 || q[7] != 0x42)
				continue;
			memcpy(&ip, &from[i].sin_addr, 4);
			sport = ntohs(from[i].sin_port);
			p[0] = 0x01; p[1] = 0x01; p[2] = 0x00; p[3] = 12;
			memcpy(p + 4, q + 4, 16); /* cookie + tid */
			p[20] = 0x00; p[21] = 0x20; p[22] = 0x00; p[23] = 8;
			p[24] = 0; p[25] = 1;
			p[26] = (uint8_t)((sport >> 8) ^ 0x21);
			p[27] = (uint8_t)((sport & 0xff) ^ 0x12);
			memcpy(p + 28, &ip, 4);
			p[28] ^= 0x21; p[29] ^= 0x12; p[30] ^= 0xa4; p[31] ^= 0x42;
			tm[n].msg_hdr.msg_name = &from[i];
			tm[n].msg_hdr.msg_namelen = sizeof(from[i]);
			n++;
		}
		for (unsigned done = 0; done < n;) {
			r = sendmmsg(fd, tm + done, n - done, 0);
			if (r <= 0) {
				if (r < 0 && errno == EINTR)
					continue;
				break; /* drop the rest, as a stateless responder must */
			}
			done += (unsigned)r;
			answered += (unsigned)r;
		}
	}
	fprintf(stderr, "stun_bare: answered %llu\n", answered);
	close(fd);
	return 0;
usage:
	fprintf(stderr, "usage: stun_bare IP PORT [-b BATCH (1-%d)]\n", MAX_BATCH);
	return 2;
}
