/* broker/main.c - natbroker: the command line over nb_server_run(). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/binding.h"
#include "broker/registry.h"
#include "broker/rendezvous.h"
#include "broker/server.h"
#include "common/log.h"

#define EXIT_USAGE 2

static const char usage[] =
	"usage: natbroker [options]\n"
	"\n"
	"A STUN server (RFC 8489, RFC 5780, RFC 3489 clients) and rendezvous broker\n"
	"(control messages on the primary UDP port) for the natbroker peers.\n"
	"\n"
	"  --listen IP              address to serve on (default 0.0.0.0). Give it twice,\n"
	"                           with two public IPs, for RFC 5780 NAT behaviour\n"
	"                           discovery (CHANGE-REQUEST, OTHER-ADDRESS)\n"
	"  --port N                 primary port (default 3478)\n"
	"  --alt-port N             alternate port, used with two --listen\n"
	"                           (default --port + 1: 3479)\n"
	"  --no-tcp                 serve UDP only\n"
	"  --max-tcp N              TCP connections at once (default 1024)\n"
	"  --tcp-idle-timeout S     close a TCP connection that sends no whole request\n"
	"                           for S seconds (default 10)\n"
	"  --tcp-max-bytes N        bytes read per TCP connection before it is closed\n"
	"                           (default 65536)\n"
	"  --software TEXT          send a SOFTWARE attribute (default: none)\n"
	"  --max-peers N            registered peers at most (default 10000)\n"
	"  --max-sessions N         connections in progress at most (default 4096)\n"
	"  --token T                peers must register with this token (1 to 64\n"
	"                           printable ASCII characters; default: none needed)\n"
	"  --keepalive S            peers send a keepalive every S seconds; a\n"
	"                           registration expires after 3 x S (default 15)\n"
	"  --log-level L            error, warn, info (default) or debug\n"
	"  -h, --help               this text\n"
	"  -V, --version            the version\n"
	"\n"
	"SIGINT or SIGTERM stops it cleanly. See docs/broker.md.\n";

static int bad(const char *opt, const char *val, const char *what)
{
	if (val != NULL)
		fprintf(stderr, "natbroker: %s: expected %s, got '%s'\n", opt, what, val);
	else
		fprintf(stderr, "natbroker: %s: %s\n", opt, what);
	fprintf(stderr, "Try 'natbroker --help'.\n");
	return EXIT_USAGE;
}

/* A decimal number in [min, max]: digits only, no sign, no blanks. */
static int parse_u64(const char *s, unsigned long long min, unsigned long long max,
		     unsigned long long *ret)
{
	unsigned long long v;
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* docs/protocol.md "register": 1-64 printable ASCII characters (0x20-0x7E). */
static bool token_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > NB_CTRL_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7E)
			return false;
	return true;
}

enum {
	OPT_LISTEN = 256, OPT_PORT, OPT_ALT_PORT, OPT_NO_TCP, OPT_MAX_TCP, OPT_TCP_IDLE,
	OPT_TCP_MAX_BYTES, OPT_SOFTWARE, OPT_LOG_LEVEL, OPT_MAX_PEERS, OPT_MAX_SESSIONS, OPT_TOKEN,
	OPT_KEEPALIVE,
};

static const struct option options[] = {
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "alt-port", required_argument, NULL, OPT_ALT_PORT },
	{ "no-tcp", no_argument, NULL, OPT_NO_TCP },
	{ "max-tcp", required_argument, NULL, OPT_MAX_TCP },
	{ "tcp-idle-timeout", required_argument, NULL, OPT_TCP_IDLE },
	{ "tcp-max-bytes", required_argument, NULL, OPT_TCP_MAX_BYTES },
	{ "software", required_argument, NULL, OPT_SOFTWARE },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "max-peers", required_argument, NULL, OPT_MAX_PEERS },
	{ "max-sessions", required_argument, NULL, OPT_MAX_SESSIONS },
	{ "token", required_argument, NULL, OPT_TOKEN },
	{ "keepalive", required_argument, NULL, OPT_KEEPALIVE },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

int main(int argc, char **argv)
{
	struct nb_server_config cfg;
	unsigned n_listen = 0;
	bool alt_port_given = false;
	unsigned long long v;
	enum nb_log_level level;
	int opt;

	nb_server_config_default(&cfg);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hV", options, NULL)) != -1) {
		switch (opt) {
		case OPT_LISTEN: {
			struct nb_addr a;
			if (n_listen == 2)
				return bad("--listen", NULL, "given more than twice (one or two addresses)");
			if (nb_addr_parse(optarg, true, &a) != 0)
				return bad("--listen", optarg, "an IPv4 or IPv6 address");
			if (a.port != 0)
				return bad("--listen", optarg, "an address without a port (use --port)");
			cfg.listen[n_listen++] = a;
			break;
		}
		case OPT_PORT:
			if (parse_u64(optarg, 1, 65535, &v) != 0)
				return bad("--port", optarg, "a port number from 1 to 65535");
			cfg.port = (uint16_t)v;
			break;
		case OPT_ALT_PORT:
			if (parse_u64(optarg, 1, 65535, &v) != 0)
				return bad("--alt-port", optarg, "a port number from 1 to 65535");
			cfg.alt_port = (uint16_t)v;
			alt_port_given = true;
			break;
		case OPT_NO_TCP:
			cfg.tcp = false;
			break;
		case OPT_MAX_TCP:
			if (parse_u64(optarg, 1, 1000000, &v) != 0)
				return bad("--max-tcp", optarg, "a number from 1 to 1000000");
			cfg.max_tcp = (unsigned)v;
			break;
		case OPT_TCP_IDLE:
			if (parse_u64(optarg, 1, 86400, &v) != 0)
				return bad("--tcp-idle-timeout", optarg, "seconds, from 1 to 86400");
			cfg.tcp_idle_timeout_ms = v * 1000;
			break;
		case OPT_TCP_MAX_BYTES:
			if (parse_u64(optarg, NB_STUN_HDR_LEN, 1ull << 32, &v) != 0)
				return bad("--tcp-max-bytes", optarg, "a number from 20 to 4294967296");
			cfg.tcp_max_bytes = v;
			break;
		case OPT_SOFTWARE:
			if (strlen(optarg) == 0 || strlen(optarg) > NB_BINDING_MAX_SOFTWARE)
				return bad("--software", optarg, "text of 1 to 127 bytes");
			cfg.software = optarg;
			break;
		case OPT_MAX_PEERS:
			if (parse_u64(optarg, 1, NB_REGISTRY_MAX_MAX, &v) != 0)
				return bad("--max-peers", optarg, "a number from 1 to 10000000");
			cfg.max_peers = (size_t)v;
			break;
		case OPT_MAX_SESSIONS:
			if (parse_u64(optarg, 1, NB_RENDEZVOUS_MAX_SESSIONS_MAX, &v) != 0)
				return bad("--max-sessions", optarg, "a number from 1 to 1000000");
			cfg.max_sessions = (size_t)v;
			break;
		case OPT_TOKEN:
			if (!token_ok(optarg))
				return bad("--token", optarg, "1 to 64 printable ASCII characters");
			cfg.token = optarg;
			break;
		case OPT_KEEPALIVE:
			if (parse_u64(optarg, NB_CTRL_KEEPALIVE_MIN_S, NB_CTRL_KEEPALIVE_MAX_S, &v) != 0)
				return bad("--keepalive", optarg, "seconds, from 1 to 3600");
			cfg.keepalive_s = (uint32_t)v;
			break;
		case OPT_LOG_LEVEL:
			if (nb_log_parse_level(optarg, &level) != 0)
				return bad("--log-level", optarg, "one of error, warn, info, debug");
			nb_log_set_level(level);
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("natbroker %s\n", NB_VERSION);
			return 0;
		case ':':
			return bad(argv[optind - 1], NULL, "needs a value");
		default:
			return bad(argv[optind - 1], NULL, "unknown option");
		}
	}
	if (optind < argc)
		return bad(argv[optind], NULL, "unexpected argument (options start with --)");
	if (n_listen > 0)
		cfg.n_listen = n_listen;
	if (!alt_port_given)
		cfg.alt_port = (uint16_t)(cfg.port + 1); /* as coturn does */
	if (n_listen == 2) {
		if (!alt_port_given && cfg.port == 65535)
			return bad("--alt-port", NULL, "needed when --port is 65535");
		if (cfg.listen[0].family != cfg.listen[1].family)
			return bad("--listen", NULL, "the two addresses must be of one family");
		if (nb_addr_is_unspecified(&cfg.listen[0]) || nb_addr_is_unspecified(&cfg.listen[1]))
			return bad("--listen", NULL,
				   "RFC 5780 mode needs two specific addresses, not a wildcard");
		if (nb_addr_ip_equal(&cfg.listen[0], &cfg.listen[1]))
			return bad("--listen", NULL, "the two addresses must differ");
		if (cfg.port == cfg.alt_port)
			return bad("--alt-port", NULL, "must differ from --port");
	}
	return nb_server_run(&cfg) == 0 ? 0 : 1;
}
