/* tests/bench/relay_loadgen.c - TURN relay load generator for the benchmark (relay_rate.sh).
 *
 * Sets up A allocations on one TURN server over UDP with TURN REST
 * credentials (coturn's use-auth-secret: username "<expiry>:bench",
 * password base64(HMAC-SHA1(secret, username)), long-term key
 * MD5(username ":" realm ":" password)), binds channel 0x4000 of each to a
 * local UDP sink, then sends ChannelData (LEN bytes of data each) through the
 * relay and counts what the sink receives. Messages are hand-built here (the
 * same bytes for every server), so the figures do not depend on our codecs.
 *
 * Flow control: at most WINDOW datagrams are in flight (sent, not yet seen
 * at the sink); when the sink sees nothing for 20 ms the window is written
 * off (a socket buffer dropped it) and filled again. After a 0.5 s warm-up it
 * counts for SECONDS, then stops by itself and prints one line:
 *   relayed=N sent=N secs=S relayed_per_sec=N
 *
 *   relay_loadgen SERVER PORT SECRET SINK_IP [-c CLIENT_IP] [-r REALM]
 *                 [-a ALLOCS] [-l LEN] [-d SECONDS] [-w WINDOW] [-p]
 *   -p: probe: set up, relay one datagram, exit 0 when it arrives (2 s)
 * Exit 1 when the server refuses or does not answer (the reason on stderr).
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

#include <openssl/err.h>
#include <openssl/evp.h>

#define MAX_ALLOCS 64
#define BATCH 64
#define MAX_LEN 1400
#define MAX_WINDOW 8192
#define WARMUP_NS 500000000ull
#define STALL_NS 20000000ull
#define COOKIE 0x2112A442u
#define CHANNEL 0x4000
#define MAGIC "NBRELAY!"

struct alloc {
	int fd;
	uint8_t nonce[256];
	size_t nonce_len;
	uint8_t key[16];
	struct sockaddr_in relayed;
};

static char realm_buf[256] = "natbroker";
static size_t realm_len = 9;
static char username[64];
static char password[64];

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

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* ---- message building ---------------------------------------------------- */

struct msg {
	uint8_t b[1024];
	size_t len;
};

static void msg_init(struct msg *m, uint16_t type)
{
	put16(m->b, type);
	put16(m->b + 2, 0);
	put32(m->b + 4, COOKIE);
	for (int i = 0; i < 12; i++)
		m->b[8 + i] = (uint8_t)rand();
	m->len = 20;
}

static void msg_attr(struct msg *m, uint16_t type, const void *val, size_t len)
{
	put16(m->b + m->len, type);
	put16(m->b + m->len + 2, (uint16_t)len);
	memcpy(m->b + m->len + 4, val, len);
	memset(m->b + m->len + 4 + len, 0, (4 - len % 4) % 4);
	m->len += 4 + len + (4 - len % 4) % 4;
	put16(m->b + 2, (uint16_t)(m->len - 20));
}

static void msg_xor_addr(struct msg *m, uint16_t type, const struct sockaddr_in *sa)
{
	uint8_t v[8] = { 0, 0x01 };
	uint32_t ip = ntohl(sa->sin_addr.s_addr);

	put16(v + 2, (uint16_t)(ntohs(sa->sin_port) ^ (COOKIE >> 16)));
	put32(v + 4, ip ^ COOKIE);
	msg_attr(m, type, v, sizeof(v));
}

/* USERNAME, REALM, NONCE and MESSAGE-INTEGRITY (HMAC-SHA1 with the long-term key). */
static int msg_auth(struct msg *m, const struct alloc *a)
{
	uint8_t mac[EVP_MAX_MD_SIZE];
	size_t mac_len = 0;

	msg_attr(m, 0x0006, username, strlen(username));
	msg_attr(m, 0x0014, realm_buf, realm_len);
	msg_attr(m, 0x0015, a->nonce, a->nonce_len);
	put16(m->b + 2, (uint16_t)(m->len - 20 + 24)); /* length as if MI were there */
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA1", NULL, a->key, sizeof(a->key), m->b, m->len, mac,
		      sizeof(mac), &mac_len) == NULL ||
	    mac_len != 20) {
		ERR_clear_error();
		return -1;
	}
	msg_attr(m, 0x0008, mac, 20);
	return 0;
}

/* ---- response parsing ---------------------------------------------------- */

struct resp {
	uint16_t type;
	unsigned error;
	const uint8_t *realm, *nonce;
	size_t realm_len, nonce_len;
	struct sockaddr_in relayed;
	int has_relayed;
};

static int resp_parse(const uint8_t *b, size_t n, const uint8_t *tid, struct resp *r)
{
	size_t off = 20;

	memset(r, 0, sizeof(*r));
	if (n < 20 || (size_t)get16(b + 2) + 20 != n || memcmp(b + 8, tid, 12) != 0)
		return -1;
	r->type = get16(b);
	while (n - off >= 4) {
		uint16_t t = get16(b + off), l = get16(b + off + 2);
		const uint8_t *v = b + off + 4;

		if (n - off - 4 < l)
			return -1;
		if (t == 0x0009 && l >= 4)
			r->error = (unsigned)(v[2] & 7) * 100 + v[3];
		else if (t == 0x0014) {
			r->realm = v;
			r->realm_len = l;
		} else if (t == 0x0015) {
			r->nonce = v;
			r->nonce_len = l;
		} else if (t == 0x0016 && l == 8 && v[1] == 0x01) {
			r->relayed.sin_family = AF_INET;
			r->relayed.sin_port = htons((uint16_t)(get16(v + 2) ^ (COOKIE >> 16)));
			r->relayed.sin_addr.s_addr =
				htonl(((uint32_t)get16(v + 4) << 16 | get16(v + 6)) ^ COOKIE);
			r->has_relayed = 1;
		}
		off += 4 + l + (4 - l % 4) % 4;
	}
	return 0;
}

/* Send m on fd (connected), wait for its answer (3 tries, 1 s each). */
static int transact(int fd, const struct msg *m, uint8_t *rb, size_t cap, struct resp *r)
{
	for (int tries = 0; tries < 3; tries++) {
		uint64_t end = now_ns() + 1000000000ull;

		if (send(fd, m->b, m->len, 0) < 0 && errno != ECONNREFUSED)
			return -1;
		for (;;) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			uint64_t now = now_ns();
			ssize_t k;

			if (now >= end)
				break;
			if (poll(&p, 1, (int)((end - now) / 1000000 + 1)) <= 0)
				continue;
			k = recv(fd, rb, cap, 0);
			if (k > 0 && resp_parse(rb, (size_t)k, m->b + 8, r) == 0)
				return 0;
		}
	}
	return -1;
}

static int derive_credentials(const char *secret)
{
	uint8_t mac[EVP_MAX_MD_SIZE];
	size_t mac_len = 0;
	long long expiry = (long long)time(NULL) + 3600;
	int n;

	n = snprintf(username, sizeof(username), "%lld:bench", expiry);
	if (n < 0 || (size_t)n >= sizeof(username))
		return -1;
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA1", NULL, secret, strlen(secret), (uint8_t *)username,
		      strlen(username), mac, sizeof(mac), &mac_len) == NULL ||
	    mac_len != 20) {
		ERR_clear_error();
		return -1;
	}
	if (EVP_EncodeBlock((uint8_t *)password, mac, 20) != 28)
		return -1;
	return 0;
}

static int long_term_key(struct alloc *a)
{
	char in[512];
	unsigned int out_len = 0;
	int n = snprintf(in, sizeof(in), "%s:%.*s:%s", username, (int)realm_len, realm_buf, password);

	if (n < 0 || (size_t)n >= sizeof(in))
		return -1;
	if (EVP_Digest(in, (size_t)n, a->key, &out_len, EVP_md5(), NULL) != 1 || out_len != 16) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/* Allocate (401 round first) and bind CHANNEL to the sink. */
static int setup(struct alloc *a, const struct sockaddr_in *srv, const struct sockaddr_in *client,
		 const struct sockaddr_in *sink)
{
	uint8_t rb[1500];
	uint8_t transport[4] = { 17, 0, 0, 0 };
	uint8_t chan[4] = { 0 };
	struct msg m;
	struct resp r;
	int rcv = 4 << 20;

	a->fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (a->fd < 0 || bind(a->fd, (const struct sockaddr *)client, sizeof(*client)) < 0 ||
	    connect(a->fd, (const struct sockaddr *)srv, sizeof(*srv)) < 0) {
		perror("relay_loadgen: client socket");
		return -1;
	}
	setsockopt(a->fd, SOL_SOCKET, SO_SNDBUF, &rcv, sizeof(rcv));

	msg_init(&m, 0x0003);
	msg_attr(&m, 0x0019, transport, sizeof(transport));
	if (transact(a->fd, &m, rb, sizeof(rb), &r) < 0) {
		fprintf(stderr, "relay_loadgen: no answer to Allocate\n");
		return -1;
	}
	if (r.type != 0x0113 || r.error != 401 || r.nonce == NULL || r.realm == NULL ||
	    r.nonce_len > sizeof(a->nonce) || r.realm_len >= sizeof(realm_buf)) {
		fprintf(stderr, "relay_loadgen: Allocate: want 401 with REALM and NONCE, got type 0x%04x error %u\n",
			r.type, r.error);
		return -1;
	}
	memcpy(a->nonce, r.nonce, r.nonce_len);
	a->nonce_len = r.nonce_len;
	memcpy(realm_buf, r.realm, r.realm_len);
	realm_len = r.realm_len;
	if (long_term_key(a) < 0)
		return -1;

	msg_init(&m, 0x0003);
	msg_attr(&m, 0x0019, transport, sizeof(transport));
	if (msg_auth(&m, a) < 0 || transact(a->fd, &m, rb, sizeof(rb), &r) < 0) {
		fprintf(stderr, "relay_loadgen: no answer to the authenticated Allocate\n");
		return -1;
	}
	if (r.type != 0x0103 || !r.has_relayed) {
		fprintf(stderr, "relay_loadgen: Allocate refused: type 0x%04x error %u\n", r.type, r.error);
		return -1;
	}
	a->relayed = r.relayed;

	put16(chan, CHANNEL);
	msg_init(&m, 0x0009);
	msg_attr(&m, 0x000C, chan, sizeof(chan));
	msg_xor_addr(&m, 0x0012, sink);
	if (msg_auth(&m, a) < 0 || transact(a->fd, &m, rb, sizeof(rb), &r) < 0) {
		fprintf(stderr, "relay_loadgen: no answer to ChannelBind\n");
		return -1;
	}
	if (r.type != 0x0109) {
		fprintf(stderr, "relay_loadgen: ChannelBind refused: type 0x%04x error %u\n", r.type, r.error);
		return -1;
	}
	return 0;
}

static uint8_t txbuf[4 + MAX_LEN];
static uint8_t rxbuf[BATCH][2048];

/* Send n ChannelData on fd; returns how many went. */
static unsigned send_data(int fd, unsigned n, size_t frame_len)
{
	struct mmsghdr m[BATCH];
	struct iovec iov = { .iov_base = txbuf, .iov_len = frame_len };
	unsigned sent = 0;

	while (sent < n) {
		unsigned k = n - sent < BATCH ? n - sent : BATCH;
		int r;

		memset(m, 0, sizeof(m[0]) * k);
		for (unsigned i = 0; i < k; i++) {
			m[i].msg_hdr.msg_iov = &iov;
			m[i].msg_hdr.msg_iovlen = 1;
		}
		r = sendmmsg(fd, m, k, 0);
		if (r <= 0)
			break;
		sent += (unsigned)r;
	}
	return sent;
}

/* Datagrams the sink has now carrying our data (len bytes, MAGIC first). */
static unsigned sink_drain(int fd, size_t len)
{
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	unsigned got = 0;
	int r;

	do {
		memset(m, 0, sizeof(m));
		for (unsigned i = 0; i < BATCH; i++) {
			iov[i].iov_base = rxbuf[i];
			iov[i].iov_len = sizeof(rxbuf[i]);
			m[i].msg_hdr.msg_iov = &iov[i];
			m[i].msg_hdr.msg_iovlen = 1;
		}
		r = recvmmsg(fd, m, BATCH, MSG_DONTWAIT, NULL);
		for (int i = 0; i < r; i++)
			if (m[i].msg_len == len && memcmp(rxbuf[i], MAGIC, 8) == 0)
				got++;
	} while (r == BATCH);
	return got;
}

static int parse_ip(const char *s, uint16_t port, struct sockaddr_in *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->sin_family = AF_INET;
	ret->sin_port = htons(port);
	return inet_pton(AF_INET, s, &ret->sin_addr) == 1 ? 0 : -1;
}

static void usage(void)
{
	fprintf(stderr, "usage: relay_loadgen SERVER PORT SECRET SINK_IP [-c CLIENT_IP] [-r REALM]\n"
			"       [-a ALLOCS] [-l LEN] [-d SECONDS] [-w WINDOW] [-p]\n");
}

int main(int argc, char **argv)
{
	static struct alloc al[MAX_ALLOCS];
	struct sockaddr_in srv, client, sink;
	unsigned long port, allocs = 1, len = 1200, secs = 5, window = 512;
	const char *client_ip = NULL;
	int probe = 0, sfd, rcv = 16 << 20;
	socklen_t sl = sizeof(sink);
	size_t frame_len;
	uint64_t sent = 0, got = 0, written_off = 0, counted = 0, sent_counted = 0;
	uint64_t t0, t_start = 0, t_end, last_progress;
	unsigned next = 0;

	if (argc < 5 || parse_num(argv[2], 1, 65535, &port) < 0 || parse_ip(argv[1], (uint16_t)port, &srv) < 0 ||
	    parse_ip(argv[4], 0, &sink) < 0) {
		usage();
		return 2;
	}
	for (int i = 5; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 0;

		if (strcmp(o, "-p") == 0) {
			probe = 1;
			continue;
		}
		if (v == NULL) {
			usage();
			return 2;
		}
		i++;
		if (strcmp(o, "-c") == 0)
			client_ip = v;
		else if (strcmp(o, "-r") == 0) {
			realm_len = strlen(v);
			bad = realm_len >= sizeof(realm_buf);
			if (!bad)
				memcpy(realm_buf, v, realm_len + 1);
		} else if (strcmp(o, "-a") == 0)
			bad = parse_num(v, 1, MAX_ALLOCS, &allocs) < 0;
		else if (strcmp(o, "-l") == 0)
			bad = parse_num(v, 8, MAX_LEN, &len) < 0;
		else if (strcmp(o, "-d") == 0)
			bad = parse_num(v, 1, 3600, &secs) < 0;
		else if (strcmp(o, "-w") == 0)
			bad = parse_num(v, 1, MAX_WINDOW, &window) < 0;
		else
			bad = 1;
		if (bad) {
			usage();
			return 2;
		}
	}
	if (parse_ip(client_ip != NULL ? client_ip : argv[4], 0, &client) < 0) {
		usage();
		return 2;
	}
	srand((unsigned)now_ns() ^ (unsigned)getpid());

	sfd = socket(AF_INET, SOCK_DGRAM, 0);
	if (sfd < 0 || bind(sfd, (const struct sockaddr *)&sink, sizeof(sink)) < 0 ||
	    getsockname(sfd, (struct sockaddr *)&sink, &sl) < 0) {
		perror("relay_loadgen: sink socket");
		return 1;
	}
	setsockopt(sfd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	if (derive_credentials(argv[3]) < 0) {
		fprintf(stderr, "relay_loadgen: cannot derive credentials\n");
		return 1;
	}
	for (unsigned long i = 0; i < allocs; i++)
		if (setup(&al[i], &srv, &client, &sink) < 0)
			return 1;

	put16(txbuf, CHANNEL);
	put16(txbuf + 2, (uint16_t)len);
	memset(txbuf + 4, 0x5a, len);
	memcpy(txbuf + 4, MAGIC, 8);
	frame_len = 4 + len; /* over UDP the padding is optional: none sent */

	if (probe) {
		uint64_t end = now_ns() + 2000000000ull;

		for (unsigned long i = 0; i < allocs; i++)
			send_data(al[i].fd, 1, frame_len);
		while (now_ns() < end) {
			struct pollfd p = { .fd = sfd, .events = POLLIN };

			if (poll(&p, 1, 50) > 0)
				got += sink_drain(sfd, len);
			if (got >= allocs) {
				char ip[INET_ADDRSTRLEN];

				inet_ntop(AF_INET, &al[0].relayed.sin_addr, ip, sizeof(ip));
				printf("probe ok: %lu allocation(s), relayed %s:%u\n", allocs, ip,
				       ntohs(al[0].relayed.sin_port));
				return 0;
			}
		}
		fprintf(stderr, "relay_loadgen: the sink got %llu of %lu probe datagrams\n",
			(unsigned long long)got, allocs);
		return 1;
	}

	t0 = now_ns();
	t_end = t0 + WARMUP_NS + (uint64_t)secs * 1000000000ull;
	last_progress = t0;
	for (;;) {
		uint64_t now = now_ns(), in_flight = sent - got - written_off;
		unsigned k;

		if (now >= t_end)
			break;
		if (t_start == 0 && now >= t0 + WARMUP_NS) {
			t_start = now;
			counted = got;
			sent_counted = sent;
		}
		if (in_flight < window) {
			uint64_t room = window - in_flight;

			sent += send_data(al[next].fd, (unsigned)(room < BATCH ? room : BATCH), frame_len);
			next = (unsigned)((next + 1) % allocs);
		}
		k = sink_drain(sfd, len);
		if (k > 0) {
			got += k;
			last_progress = now;
		} else if (now - last_progress > STALL_NS) {
			written_off = sent - got; /* lost in a socket buffer: refill */
			last_progress = now;
		} else if (in_flight >= window) {
			struct pollfd p = { .fd = sfd, .events = POLLIN };

			poll(&p, 1, 1);
		}
	}
	{
		double dt = (double)(t_end - t_start) / 1e9;
		uint64_t n = got - counted;

		printf("relayed=%llu sent=%llu secs=%.2f relayed_per_sec=%.0f allocations=%lu len=%lu window=%lu\n",
		       (unsigned long long)n, (unsigned long long)(sent - sent_counted), dt, (double)n / dt,
		       allocs, len, window);
	}
	return 0;
}
