/* broker/main.c - natbroker: the command line and the config file over nb_server_run(). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "broker/binding.h"
#include "broker/ratelimit.h"
#include "broker/registry.h"
#include "broker/rendezvous.h"
#include "broker/plink.h"
#include "broker/server.h"
#include "common/keyfile.h"
#include "common/keys.h"
#include "common/config.h"
#include "common/log.h"

#define EXIT_USAGE 2
#define LOG "broker"
#define ERR_MAX 1024

static const char usage[] =
	"usage: natbroker [options]\n"
	"\n"
	"A STUN server (RFC 8489, RFC 5780, RFC 3489 clients) and rendezvous broker\n"
	"(control messages on the primary UDP port) for the natbroker peers.\n"
	"\n"
	"  --config FILE            read settings from FILE first: one 'key = value'\n"
	"                           per line, the keys are the options below without\n"
	"                           '--'; options on the command line override it\n"
	"  --check-config           check the settings, print them and exit\n"
	"  --listen IP              address to serve on (default 0.0.0.0). Give it twice,\n"
	"                           with two public IPs of one family, for RFC 5780 NAT\n"
	"                           behaviour discovery (CHANGE-REQUEST, OTHER-ADDRESS).\n"
	"                           IPv4 and IPv6 at once: up to four times, one or two\n"
	"                           IPs per family (two: RFC 5780 for that family); a\n"
	"                           wildcard (0.0.0.0, ::) only as the single --listen\n"
	"  --port N                 primary port (default 3478)\n"
	"  --alt-port N             alternate port, used with two --listen of a family\n"
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
	"  --key FILE               the broker's private key (X25519), created on first\n"
	"                           use with mode 0600 (default: $STATE_DIRECTORY/key\n"
	"                           under systemd, else ~/.config/natbroker/key). Peers\n"
	"                           pin its public key, printed at start\n"
	"  --admin-token T          'natpeer peers' and 'natpeer matrix' must carry this\n"
	"                           token (1 to 64 printable ASCII characters)\n"
	"  --public-list            answer peers and matrix queries from anyone (the\n"
	"                           lab and the demo); default: only with --admin-token\n"
	"  --max-links N            sealed peer sessions at once (default 20000)\n"
	"  --keepalive S            peers send a keepalive every S seconds; a\n"
	"                           registration expires after 3 x S (default 15)\n"
	"  --status-port N          answer the datagram \"status\" on 127.0.0.1:N with\n"
	"                           a JSON report (default 0: off)\n"
	"  --rate-limit N           requests per second from one source IP (IPv6: one\n"
	"                           /64): its UDP datagrams of any kind, and its TCP\n"
	"                           requests on a budget of their own; more are\n"
	"                           dropped without an answer (default 50; 0: off)\n"
	"  --rate-burst N           requests one source may send at once before\n"
	"                           --rate-limit applies (default 500)\n"
	"  --rate-table N           sources remembered; when full, the least recently\n"
	"                           seen is forgotten (default 25000)\n"
	"  --rate-penalty S         refuse a source for S seconds once it goes over\n"
	"                           the limit (default 0: off)\n"
	"\n"
	"Hole punching (docs/protocol.md \"Birthday\", \"Punch timing\"):\n"
	"  --birthday on|off        birthday punching between a symmetric NAT and an\n"
	"                           endpoint-independent one (default on; off: such\n"
	"                           pairs get a relay)\n"
	"  --birthday-sockets N     sockets the symmetric side opens, 1 to 1024\n"
	"                           (default 256)\n"
	"  --birthday-probes N      ports the other side probes at most, 1 to 64512\n"
	"                           (default 2048)\n"
	"  --birthday-rate N        probes per second, 1 to 10000 (default 100, for\n"
	"                           the internet; the lab uses 1000)\n"
	"  --punch-timing rtt|fixed when each side starts: from the measured round\n"
	"                           trips to both peers (default), or the fixed 100 ms\n"
	"                           for the side that goes second\n"
	"\n"
	"Relay (TURN, RFC 8656, on the STUN ports; on by default):\n"
	"  --turn-secret S          the TURN REST shared secret (coturn's\n"
	"                           static-auth-secret); default: drawn at start, so\n"
	"                           only this broker's peers get credentials\n"
	"  --turn-secret-file FILE  read the secret from FILE (its first line)\n"
	"  --no-relay               serve no TURN and put no relay in plans\n"
	"  --relay turn:HOST:PORT[,turn:HOST:PORT...]\n"
	"                           point peers at these TURN servers (e.g. coturn with\n"
	"                           use-auth-secret and the same secret) instead of\n"
	"                           relaying here; the broker only issues credentials\n"
	"  --relay-ip IP            the address relayed traffic of IP's family uses;\n"
	"                           give it twice for both (one IPv4, one IPv6).\n"
	"                           Default per family: the first --listen of that\n"
	"                           family (a family not given keeps this default);\n"
	"                           needed with only a wildcard --listen\n"
	"  --relay-ports LO-HI      relay port range (default 49152-65535)\n"
	"  --realm R                TURN realm (default natbroker)\n"
	"  --relay-allow-private    relay to private addresses (10/8, 172.16/12,\n"
	"                           192.168/16, 100.64/10, fc00::/7); default: refused\n"
	"  --max-allocations N      allocations at once (default 1024)\n"
	"  --max-allocations-per-user N\n"
	"                           allocations of one TURN user, i.e. one peer key\n"
	"                           (default 8)\n"
	"  --relay-bandwidth B      bytes per second per allocation, both ways\n"
	"                           together (default 0: unlimited)\n"
	"  --relay-lifetime-max S   longest allocation lifetime granted (default 3600)\n"
	"  --relay-lifetime S       lifetime of an allocation that asks for none or\n"
	"                           less (default 600)\n"
	"  --relay-max-permissions N, --relay-max-channels N\n"
	"                           permissions, channels per allocation (default 64\n"
	"                           each, at most 256); beyond: 508\n"
	"\n"
	"  --log-level L            error, warn, info (default) or debug\n"
	"  -h, --help               this text\n"
	"  -V, --version            the version\n"
	"\n"
	"SIGINT or SIGTERM stops it cleanly. SIGHUP re-reads the config file and\n"
	"applies its log-level (other changes need a restart). See natbroker(8),\n"
	"docs/broker.md and docs/operations.md.\n";

/* ---- The options ------------------------------------------------------------ */

/* Every option before OPT_N_SETTINGS may also be set in the config file,
 * under its long name. */
enum opt_id {
	OPT_LISTEN, OPT_PORT, OPT_ALT_PORT, OPT_NO_TCP, OPT_MAX_TCP, OPT_TCP_IDLE,
	OPT_TCP_MAX_BYTES, OPT_SOFTWARE, OPT_MAX_PEERS, OPT_MAX_SESSIONS, OPT_TOKEN,
	OPT_KEEPALIVE, OPT_STATUS_PORT, OPT_RATE_LIMIT, OPT_RATE_BURST, OPT_RATE_TABLE,
	OPT_RATE_PENALTY, OPT_LOG_LEVEL, OPT_KEY, OPT_ADMIN_TOKEN, OPT_PUBLIC_LIST, OPT_MAX_LINKS,
	OPT_TURN_SECRET, OPT_TURN_SECRET_FILE, OPT_NO_RELAY, OPT_RELAY, OPT_RELAY_IP, OPT_RELAY_PORTS,
	OPT_REALM, OPT_RELAY_ALLOW_PRIVATE, OPT_MAX_ALLOCS, OPT_MAX_ALLOCS_USER, OPT_RELAY_BANDWIDTH,
	OPT_RELAY_LIFETIME_MAX, OPT_RELAY_LIFETIME, OPT_RELAY_MAX_PERMS, OPT_RELAY_MAX_CHANNELS,
	OPT_BIRTHDAY, OPT_BIRTHDAY_SOCKETS, OPT_BIRTHDAY_PROBES, OPT_BIRTHDAY_RATE, OPT_PUNCH_TIMING,
	OPT_N_SETTINGS,
	OPT_CONFIG = OPT_N_SETTINGS, OPT_CHECK_CONFIG,
	OPT_N_LONG,
};
#define OPT_BASE 256 /* getopt_long values: OPT_BASE + enum opt_id */

static const struct nb_config_key settings[OPT_N_SETTINGS] = {
	[OPT_LISTEN] = { "listen", NB_CONFIG_VALUE, NB_SERVER_MAX_LISTEN },
	[OPT_PORT] = { "port", NB_CONFIG_VALUE, 1 },
	[OPT_ALT_PORT] = { "alt-port", NB_CONFIG_VALUE, 1 },
	[OPT_NO_TCP] = { "no-tcp", NB_CONFIG_FLAG, 1 },
	[OPT_MAX_TCP] = { "max-tcp", NB_CONFIG_VALUE, 1 },
	[OPT_TCP_IDLE] = { "tcp-idle-timeout", NB_CONFIG_VALUE, 1 },
	[OPT_TCP_MAX_BYTES] = { "tcp-max-bytes", NB_CONFIG_VALUE, 1 },
	[OPT_SOFTWARE] = { "software", NB_CONFIG_VALUE, 1 },
	[OPT_MAX_PEERS] = { "max-peers", NB_CONFIG_VALUE, 1 },
	[OPT_MAX_SESSIONS] = { "max-sessions", NB_CONFIG_VALUE, 1 },
	[OPT_TOKEN] = { "token", NB_CONFIG_VALUE, 1 },
	[OPT_KEEPALIVE] = { "keepalive", NB_CONFIG_VALUE, 1 },
	[OPT_STATUS_PORT] = { "status-port", NB_CONFIG_VALUE, 1 },
	[OPT_RATE_LIMIT] = { "rate-limit", NB_CONFIG_VALUE, 1 },
	[OPT_RATE_BURST] = { "rate-burst", NB_CONFIG_VALUE, 1 },
	[OPT_RATE_TABLE] = { "rate-table", NB_CONFIG_VALUE, 1 },
	[OPT_RATE_PENALTY] = { "rate-penalty", NB_CONFIG_VALUE, 1 },
	[OPT_LOG_LEVEL] = { "log-level", NB_CONFIG_VALUE, 1 },
	[OPT_KEY] = { "key", NB_CONFIG_VALUE, 1 },
	[OPT_ADMIN_TOKEN] = { "admin-token", NB_CONFIG_VALUE, 1 },
	[OPT_PUBLIC_LIST] = { "public-list", NB_CONFIG_FLAG, 1 },
	[OPT_MAX_LINKS] = { "max-links", NB_CONFIG_VALUE, 1 },
	[OPT_TURN_SECRET] = { "turn-secret", NB_CONFIG_VALUE, 1 },
	[OPT_TURN_SECRET_FILE] = { "turn-secret-file", NB_CONFIG_VALUE, 1 },
	[OPT_NO_RELAY] = { "no-relay", NB_CONFIG_FLAG, 1 },
	[OPT_RELAY] = { "relay", NB_CONFIG_VALUE, 1 },
	[OPT_RELAY_IP] = { "relay-ip", NB_CONFIG_VALUE, NB_FAM_COUNT },
	[OPT_RELAY_PORTS] = { "relay-ports", NB_CONFIG_VALUE, 1 },
	[OPT_REALM] = { "realm", NB_CONFIG_VALUE, 1 },
	[OPT_RELAY_ALLOW_PRIVATE] = { "relay-allow-private", NB_CONFIG_FLAG, 1 },
	[OPT_MAX_ALLOCS] = { "max-allocations", NB_CONFIG_VALUE, 1 },
	[OPT_MAX_ALLOCS_USER] = { "max-allocations-per-user", NB_CONFIG_VALUE, 1 },
	[OPT_RELAY_BANDWIDTH] = { "relay-bandwidth", NB_CONFIG_VALUE, 1 },
	[OPT_RELAY_LIFETIME_MAX] = { "relay-lifetime-max", NB_CONFIG_VALUE, 1 },
	[OPT_RELAY_LIFETIME] = { "relay-lifetime", NB_CONFIG_VALUE, 1 },
	[OPT_RELAY_MAX_PERMS] = { "relay-max-permissions", NB_CONFIG_VALUE, 1 },
	[OPT_RELAY_MAX_CHANNELS] = { "relay-max-channels", NB_CONFIG_VALUE, 1 },
	[OPT_BIRTHDAY] = { "birthday", NB_CONFIG_VALUE, 1 },
	[OPT_BIRTHDAY_SOCKETS] = { "birthday-sockets", NB_CONFIG_VALUE, 1 },
	[OPT_BIRTHDAY_PROBES] = { "birthday-probes", NB_CONFIG_VALUE, 1 },
	[OPT_BIRTHDAY_RATE] = { "birthday-rate", NB_CONFIG_VALUE, 1 },
	[OPT_PUNCH_TIMING] = { "punch-timing", NB_CONFIG_VALUE, 1 },
};

/* One option from the command line, applied after the config file. */
struct cli_opt {
	enum opt_id id;
	const char *val; /* NULL for a flag */
};

/* The settings being built: the server configuration and what main keeps
 * for itself. Strings are copied in, so a settings value owns everything. */
struct settings {
	struct nb_server_config cfg;
	unsigned n_listen;
	bool listen_from_cli; /* listen[] holds command-line addresses: the file's are gone */
	bool relay_ip_from_cli; /* relay_ip[] holds command-line addresses: the file's are gone */
	bool alt_port_given;
	enum nb_log_level level;
	const char *file;               /* config file, or NULL */
	unsigned line[OPT_N_SETTINGS];  /* where each setting was last set in the file; 0: not */
	char software[NB_BINDING_MAX_SOFTWARE + 1];
	char token[NB_CTRL_TOKEN_MAX + 1];
	char admin_token[NB_CTRL_TOKEN_MAX + 1];
	char key_path[4096]; /* "" = the default */
	bool secret_given;   /* --turn-secret or --turn-secret-file */
	bool lifetime_given; /* --relay-lifetime */
	bool no_relay;
	char relay_spec[1024]; /* --relay as given, for --check-config */
};

/* The program's state; static, so the loop's callbacks can reach it. */
struct program {
	const char *config_path;
	struct cli_opt *cli;
	size_t n_cli;
	struct settings running;
};

static struct option long_options[OPT_N_LONG + 3];

static void build_options(void)
{
	size_t i;

	for (i = 0; i < OPT_N_SETTINGS; i++)
		long_options[i] = (struct option){
			settings[i].name,
			settings[i].kind == NB_CONFIG_FLAG ? no_argument : required_argument,
			NULL, OPT_BASE + (int)i,
		};
	long_options[i++] = (struct option){ "config", required_argument, NULL, OPT_BASE + OPT_CONFIG };
	long_options[i++] = (struct option){ "check-config", no_argument, NULL,
					     OPT_BASE + OPT_CHECK_CONFIG };
	long_options[i++] = (struct option){ "help", no_argument, NULL, 'h' };
	long_options[i++] = (struct option){ "version", no_argument, NULL, 'V' };
	long_options[i] = (struct option){ NULL, 0, NULL, 0 };
}

/* ---- Checking and applying one setting --------------------------------------- */

/* An error for `where` ("--port" or "FILE:LINE: port") into err; -EINVAL. */
static int bad(char *err, size_t len, const char *where, const char *val, const char *what)
{
	if (val != NULL)
		snprintf(err, len, "%s: expected %s, got '%s'", where, what, val);
	else
		snprintf(err, len, "%s: %s", where, what);
	return -EINVAL;
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

static void settings_default(struct settings *s, const char *file)
{
	memset(s, 0, sizeof(*s));
	nb_server_config_default(&s->cfg);
	nb_turn_config_default(&s->cfg.turn_cfg);
	s->cfg.turn = true;
	s->level = NB_LOG_INFO;
	s->file = file;
}

/* "--port", or "FILE:LINE: port" for a setting last set in the file. */
static const char *where_of(const struct settings *s, enum opt_id id, char *buf, size_t len)
{
	if (s->file != NULL && s->line[id] != 0)
		snprintf(buf, len, "%s:%u: %s", s->file, s->line[id], settings[id].name);
	else
		snprintf(buf, len, "--%s", settings[id].name);
	return buf;
}

/* --turn-secret-file: the file's first line (without its newline). */
static int secret_file(struct settings *s, const char *path, const char *where, char *err,
		       size_t errlen)
{
	uint8_t buf[NB_TURN_MAX_SECRET + 2];
	ssize_t n;
	size_t len;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s: cannot open: %s", where, path, strerror(errno));
		return -EINVAL;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "%s: %s: cannot read: %s", where, path, strerror(errno));
		return -EINVAL;
	}
	len = (size_t)n;
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\n' || buf[i] == '\r') {
			len = i;
			break;
		}
	if (len < 1 || len > NB_TURN_MAX_SECRET) {
		OPENSSL_cleanse(buf, sizeof(buf));
		snprintf(err, errlen, "%s: %s: expected a first line of 1 to 256 bytes", where, path);
		return -EINVAL;
	}
	memcpy(s->cfg.turn_cfg.secret, buf, len);
	s->cfg.turn_cfg.secret_len = len;
	s->secret_given = true;
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

/* --relay turn:HOST:PORT[,...]: each HOST resolved now (IPv4 first). */
static int parse_relays(struct settings *s, const char *val, const char *where, char *err,
			size_t errlen)
{
	const char *p = val;

	if (strlen(val) >= sizeof(s->relay_spec))
		return bad(err, errlen, where, NULL, "too long");
	memcpy(s->relay_spec, val, strlen(val) + 1);
	s->cfg.n_relays = 0;
	while (*p != '\0') {
		const char *end = strchr(p, ','), *colon;
		char host[256], port[8];
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
		struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *res = NULL;
		unsigned long long pv;

		if (n < 5 || strncmp(p, "turn:", 5) != 0)
			return bad(err, errlen, where, val, "turn:HOST:PORT[,turn:HOST:PORT...]");
		colon = p + n;
		while (colon > p + 5 && colon[-1] != ':')
			colon--;
		if (colon <= p + 6 || (size_t)(colon - 1 - (p + 5)) >= sizeof(host) ||
		    (size_t)(p + n - colon) >= sizeof(port) || p + n == colon)
			return bad(err, errlen, where, val, "turn:HOST:PORT[,turn:HOST:PORT...]");
		memcpy(host, p + 5, (size_t)(colon - 1 - (p + 5)));
		host[colon - 1 - (p + 5)] = '\0';
		if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [v6] */
			memmove(host, host + 1, strlen(host));
			host[strlen(host) - 1] = '\0';
		}
		memcpy(port, colon, (size_t)(p + n - colon));
		port[p + n - colon] = '\0';
		if (parse_u64(port, 1, 65535, &pv) != 0)
			return bad(err, errlen, where, val, "turn:HOST:PORT with a port from 1 to 65535");
		if (s->cfg.n_relays == NB_RENDEZVOUS_MAX_RELAYS)
			return bad(err, errlen, where, NULL, "more than 8 relays");
		if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL ||
		    nb_addr_from_sockaddr(res->ai_addr, &s->cfg.relays[s->cfg.n_relays]) != 0) {
			if (res != NULL)
				freeaddrinfo(res);
			snprintf(err, errlen, "%s: cannot resolve '%s'", where, host);
			return -EINVAL;
		}
		freeaddrinfo(res);
		s->cfg.n_relays++;
		p += n;
		if (*p == ',')
			p++;
	}
	if (s->cfg.n_relays == 0)
		return bad(err, errlen, where, val, "turn:HOST:PORT[,turn:HOST:PORT...]");
	return 0;
}

/* Apply one setting, from the file (line > 0) or the command line (line 0):
 * the one check and the one assignment both paths share. val is the value
 * (NULL for a flag), flag the flag's value. 0, or -EINVAL with err set. */
static int apply(struct settings *s, enum opt_id id, const char *val, bool flag, unsigned line,
		 char *err, size_t errlen)
{
	char where[ERR_MAX / 2];
	unsigned long long v;

	s->line[id] = line;
	where_of(s, id, where, sizeof(where));
	switch (id) {
	case OPT_LISTEN: {
		struct nb_addr a;
		if (line == 0 && !s->listen_from_cli) {
			/* The command line's --listen replaces the file's. */
			s->n_listen = 0;
			s->listen_from_cli = true;
		}
		if (s->n_listen == NB_SERVER_MAX_LISTEN)
			return bad(err, errlen, where, NULL,
				   "given more than four times (one or two addresses per family)");
		if (nb_addr_parse(val, true, &a) != 0)
			return bad(err, errlen, where, val, "an IPv4 or IPv6 address");
		if (a.port != 0)
			return bad(err, errlen, where, val, "an address without a port (use --port)");
		s->cfg.listen[s->n_listen++] = a;
		return 0;
	}
	case OPT_PORT:
		if (parse_u64(val, 1, 65535, &v) != 0)
			return bad(err, errlen, where, val, "a port number from 1 to 65535");
		s->cfg.port = (uint16_t)v;
		return 0;
	case OPT_ALT_PORT:
		if (parse_u64(val, 1, 65535, &v) != 0)
			return bad(err, errlen, where, val, "a port number from 1 to 65535");
		s->cfg.alt_port = (uint16_t)v;
		s->alt_port_given = true;
		return 0;
	case OPT_NO_TCP:
		s->cfg.tcp = !flag;
		return 0;
	case OPT_MAX_TCP:
		if (parse_u64(val, 1, 1000000, &v) != 0)
			return bad(err, errlen, where, val, "a number from 1 to 1000000");
		s->cfg.max_tcp = (unsigned)v;
		return 0;
	case OPT_TCP_IDLE:
		if (parse_u64(val, 1, 86400, &v) != 0)
			return bad(err, errlen, where, val, "seconds, from 1 to 86400");
		s->cfg.tcp_idle_timeout_ms = v * 1000;
		return 0;
	case OPT_TCP_MAX_BYTES:
		if (parse_u64(val, NB_STUN_HDR_LEN, 1ull << 32, &v) != 0)
			return bad(err, errlen, where, val, "a number from 20 to 4294967296");
		s->cfg.tcp_max_bytes = v;
		return 0;
	case OPT_SOFTWARE:
		if (strlen(val) == 0 || strlen(val) > NB_BINDING_MAX_SOFTWARE)
			return bad(err, errlen, where, val, "text of 1 to 127 bytes");
		memcpy(s->software, val, strlen(val) + 1);
		s->cfg.software = s->software;
		return 0;
	case OPT_MAX_PEERS:
		if (parse_u64(val, 1, NB_REGISTRY_MAX_MAX, &v) != 0)
			return bad(err, errlen, where, val, "a number from 1 to 10000000");
		s->cfg.max_peers = (size_t)v;
		return 0;
	case OPT_MAX_SESSIONS:
		if (parse_u64(val, 1, NB_RENDEZVOUS_MAX_SESSIONS_MAX, &v) != 0)
			return bad(err, errlen, where, val, "a number from 1 to 1000000");
		s->cfg.max_sessions = (size_t)v;
		return 0;
	case OPT_TOKEN:
		if (!token_ok(val))
			return bad(err, errlen, where, val, "1 to 64 printable ASCII characters");
		memcpy(s->token, val, strlen(val) + 1);
		s->cfg.token = s->token;
		return 0;
	case OPT_KEEPALIVE:
		if (parse_u64(val, NB_CTRL_KEEPALIVE_MIN_S, NB_CTRL_KEEPALIVE_MAX_S, &v) != 0)
			return bad(err, errlen, where, val, "seconds, from 1 to 3600");
		s->cfg.keepalive_s = (uint32_t)v;
		return 0;
	case OPT_STATUS_PORT:
		if (parse_u64(val, 0, 65535, &v) != 0)
			return bad(err, errlen, where, val, "a port number from 1 to 65535, or 0 for off");
		s->cfg.status_port = (uint16_t)v;
		return 0;
	case OPT_RATE_LIMIT:
		if (parse_u64(val, 0, NB_RATELIMIT_RATE_MAX, &v) != 0)
			return bad(err, errlen, where, val,
				   "requests per second, from 1 to 1000000, or 0 for off");
		s->cfg.rate_limit = (uint32_t)v;
		return 0;
	case OPT_RATE_BURST:
		if (parse_u64(val, 1, NB_RATELIMIT_BURST_MAX, &v) != 0)
			return bad(err, errlen, where, val, "a number from 1 to 1000000");
		s->cfg.rate_burst = (uint32_t)v;
		return 0;
	case OPT_RATE_TABLE:
		if (parse_u64(val, 1, NB_RATELIMIT_ENTRIES_MAX, &v) != 0)
			return bad(err, errlen, where, val, "a number from 1 to 10000000");
		s->cfg.rate_table = (size_t)v;
		return 0;
	case OPT_RATE_PENALTY:
		if (parse_u64(val, 0, NB_RATELIMIT_PENALTY_MAX_S, &v) != 0)
			return bad(err, errlen, where, val, "seconds, from 0 (off) to 86400");
		s->cfg.rate_penalty_s = (uint32_t)v;
		return 0;
	case OPT_LOG_LEVEL:
		if (nb_log_parse_level(val, &s->level) != 0)
			return bad(err, errlen, where, val, "one of error, warn, info, debug");
		return 0;
	case OPT_KEY:
		if (val[0] == '\0' || strlen(val) >= sizeof(s->key_path))
			return bad(err, errlen, where, val, "a file name");
		memcpy(s->key_path, val, strlen(val) + 1);
		return 0;
	case OPT_ADMIN_TOKEN:
		if (!token_ok(val))
			return bad(err, errlen, where, val, "1 to 64 printable ASCII characters");
		memcpy(s->admin_token, val, strlen(val) + 1);
		s->cfg.admin_token = s->admin_token;
		return 0;
	case OPT_PUBLIC_LIST:
		s->cfg.public_list = flag;
		return 0;
	case OPT_MAX_LINKS:
		if (parse_u64(val, 1, NB_PLINK_MAX_MAX, &v) != 0)
			return bad(err, errlen, where, val, "a number from 1 to 10000000");
		s->cfg.max_links = (size_t)v;
		return 0;
	case OPT_TURN_SECRET: {
		size_t n = strlen(val);
		if (n < 1 || n > NB_TURN_MAX_SECRET)
			return bad(err, errlen, where, NULL, "expected 1 to 256 bytes");
		memcpy(s->cfg.turn_cfg.secret, val, n);
		s->cfg.turn_cfg.secret_len = n;
		s->secret_given = true;
		return 0;
	}
	case OPT_TURN_SECRET_FILE:
		return secret_file(s, val, where, err, errlen);
	case OPT_NO_RELAY:
		s->no_relay = flag;
		return 0;
	case OPT_RELAY:
		return parse_relays(s, val, where, err, errlen);
	case OPT_RELAY_IP: {
		struct nb_addr a;
		enum nb_fam f;
		if (line == 0 && !s->relay_ip_from_cli) {
			/* The command line's --relay-ip replaces the file's. */
			memset(s->cfg.relay_ip, 0, sizeof(s->cfg.relay_ip));
			s->relay_ip_from_cli = true;
		}
		if (nb_addr_parse(val, true, &a) != 0 || a.port != 0 || nb_addr_is_unspecified(&a))
			return bad(err, errlen, where, val, "a specific IPv4 or IPv6 address without a port");
		f = nb_addr_fam(&a);
		if (s->cfg.relay_ip[f].family != NB_AF_NONE)
			return bad(err, errlen, where, val,
				   f == NB_FAM_V4 ? "one IPv4 address only (a second --relay-ip must be IPv6)"
						  : "one IPv6 address only (a second --relay-ip must be IPv4)");
		s->cfg.relay_ip[f] = a;
		return 0;
	}
	case OPT_RELAY_PORTS: {
		unsigned long long lo, hi;
		const char *dash = strchr(val, '-');
		char a[8];
		if (dash == NULL || dash == val || (size_t)(dash - val) >= sizeof(a))
			return bad(err, errlen, where, val, "LO-HI, two ports from 1024 to 65535");
		memcpy(a, val, (size_t)(dash - val));
		a[dash - val] = '\0';
		if (parse_u64(a, 1024, 65535, &lo) != 0 || parse_u64(dash + 1, 1024, 65535, &hi) != 0 ||
		    lo > hi)
			return bad(err, errlen, where, val, "LO-HI, two ports from 1024 to 65535");
		s->cfg.turn_cfg.port_lo = (uint16_t)lo;
		s->cfg.turn_cfg.port_hi = (uint16_t)hi;
		return 0;
	}
	case OPT_REALM: {
		size_t n = strlen(val);
		bool ok = n >= 1 && n <= NB_TURN_MAX_REALM_LEN;
		for (size_t i = 0; ok && i < n; i++)
			ok = (unsigned char)val[i] >= 0x21 && (unsigned char)val[i] <= 0x7E && val[i] != '"';
		if (!ok)
			return bad(err, errlen, where, val, "1 to 127 printable ASCII characters, no spaces");
		memcpy(s->cfg.turn_cfg.realm, val, n + 1);
		return 0;
	}
	case OPT_RELAY_ALLOW_PRIVATE:
		s->cfg.turn_cfg.allow_private = flag;
		return 0;
	case OPT_MAX_ALLOCS:
		if (parse_u64(val, 1, NB_TURN_ALLOCS_LIMIT, &v) != 0)
			return bad(err, errlen, where, val, "a number from 1 to 65535");
		s->cfg.turn_cfg.max_allocs = (uint32_t)v;
		return 0;
	case OPT_MAX_ALLOCS_USER:
		if (parse_u64(val, 1, NB_TURN_ALLOCS_LIMIT, &v) != 0)
			return bad(err, errlen, where, val, "a number from 1 to 65535");
		s->cfg.turn_cfg.max_allocs_per_user = (uint32_t)v;
		return 0;
	case OPT_RELAY_BANDWIDTH:
		if (parse_u64(val, 0, 100000000000ull, &v) != 0)
			return bad(err, errlen, where, val, "bytes per second (0: unlimited)");
		s->cfg.turn_cfg.bandwidth_Bps = v;
		return 0;
	case OPT_RELAY_LIFETIME_MAX:
		if (parse_u64(val, 60, 86400, &v) != 0)
			return bad(err, errlen, where, val, "seconds, from 60 to 86400");
		s->cfg.turn_cfg.max_lifetime_s = (uint32_t)v;
		return 0;
	case OPT_RELAY_LIFETIME:
		if (parse_u64(val, 60, 86400, &v) != 0)
			return bad(err, errlen, where, val, "seconds, from 60 to 86400");
		s->cfg.turn_cfg.default_lifetime_s = (uint32_t)v;
		s->lifetime_given = true;
		return 0;
	case OPT_RELAY_MAX_PERMS:
		if (parse_u64(val, 1, NB_TURN_PERMS_LIMIT, &v) != 0)
			return bad(err, errlen, where, val, "a number from 1 to 256");
		s->cfg.turn_cfg.max_perms = (uint32_t)v;
		return 0;
	case OPT_RELAY_MAX_CHANNELS:
		if (parse_u64(val, 1, NB_TURN_CHANNELS_LIMIT, &v) != 0)
			return bad(err, errlen, where, val, "a number from 1 to 256");
		s->cfg.turn_cfg.max_channels = (uint32_t)v;
		return 0;
	case OPT_BIRTHDAY: {
		bool on;
		/* a value, not a flag: the default is on, and --birthday off must work */
		if (nb_config_parse_bool(val, &on) != 0)
			return bad(err, errlen, where, val, "on or off");
		s->cfg.birthday.has = on;
		return 0;
	}
	case OPT_BIRTHDAY_SOCKETS:
		if (parse_u64(val, 1, NB_CTRL_BDAY_SOCKETS_MAX, &v) != 0)
			return bad(err, errlen, where, val, "a number from 1 to 1024");
		s->cfg.birthday.sockets = (uint32_t)v;
		return 0;
	case OPT_BIRTHDAY_PROBES:
		if (parse_u64(val, 1, NB_CTRL_BDAY_PROBES_MAX, &v) != 0)
			return bad(err, errlen, where, val, "a number from 1 to 64512");
		s->cfg.birthday.probes = (uint32_t)v;
		return 0;
	case OPT_BIRTHDAY_RATE:
		if (parse_u64(val, 1, NB_CTRL_BDAY_RATE_MAX, &v) != 0)
			return bad(err, errlen, where, val, "probes per second, from 1 to 10000");
		s->cfg.birthday.rate = (uint32_t)v;
		return 0;
	case OPT_PUNCH_TIMING:
		if (strcmp(val, "rtt") == 0)
			s->cfg.rtt_timing = true;
		else if (strcmp(val, "fixed") == 0)
			s->cfg.rtt_timing = false;
		else
			return bad(err, errlen, where, val, "rtt or fixed");
		return 0;
	default:
		return bad(err, errlen, where, NULL, "not a setting");
	}
}

/* The checks across settings, once all are in. 0, or -EINVAL with err set. */
static int finish(struct settings *s, char *err, size_t errlen)
{
	struct nb_server_config *cfg = &s->cfg;
	char w[ERR_MAX / 2];

	if (s->n_listen > 0)
		cfg->n_listen = s->n_listen;
	if (!s->alt_port_given)
		cfg->alt_port = (uint16_t)(cfg->port + 1); /* as coturn does */
	if (s->n_listen > 1) {
		char why[256];
		/* Per family: one IP, or two specific distinct ones (RFC 5780);
		 * a wildcard only alone (server.h). */
		if (nb_server_listen_check(cfg, why, sizeof(why)) != 0)
			return bad(err, errlen, where_of(s, OPT_LISTEN, w, sizeof(w)), NULL, why);
	}
	if (nb_server_config_rfc5780(cfg)) {
		if (!s->alt_port_given && cfg->port == 65535)
			return bad(err, errlen, where_of(s, OPT_ALT_PORT, w, sizeof(w)), NULL,
				   "needed when --port is 65535");
		if (cfg->port == cfg->alt_port)
			return bad(err, errlen, where_of(s, OPT_ALT_PORT, w, sizeof(w)), NULL,
				   "must differ from --port");
	}
	if (cfg->status_port != 0 &&
	    (cfg->status_port == cfg->port ||
	     (nb_server_config_rfc5780(cfg) && cfg->status_port == cfg->alt_port)))
		return bad(err, errlen, where_of(s, OPT_STATUS_PORT, w, sizeof(w)), NULL,
			   "must differ from --port and --alt-port");
	if (cfg->n_relays > 0 && !s->secret_given)
		return bad(err, errlen, where_of(s, OPT_RELAY, w, sizeof(w)), NULL,
			   "external relays need their shared secret (--turn-secret or --turn-secret-file)");
	if (s->no_relay) {
		cfg->turn = false;
		cfg->n_relays = 0;
	}
	if (cfg->turn_cfg.max_lifetime_s < cfg->turn_cfg.default_lifetime_s) {
		if (s->lifetime_given)
			return bad(err, errlen, where_of(s, OPT_RELAY_LIFETIME, w, sizeof(w)), NULL,
				   "must not exceed --relay-lifetime-max");
		cfg->turn_cfg.default_lifetime_s = cfg->turn_cfg.max_lifetime_s;
	}
	if (cfg->turn && cfg->turn_cfg.port_lo <= cfg->port && cfg->port <= cfg->turn_cfg.port_hi)
		return bad(err, errlen, where_of(s, OPT_RELAY_PORTS, w, sizeof(w)), NULL,
			   "must not include --port");
	return 0;
}

/* ---- The config file ------------------------------------------------------------ */

/* Read the whole file into buf (cap bytes; a file of more than
 * NB_CONFIG_MAX_BYTES is refused). 0, or -errno / -EFBIG with err set. */
static int read_file(const char *path, uint8_t *buf, size_t cap, size_t *ret_len, char *err,
		     size_t errlen)
{
	struct stat st;
	size_t got = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	while (got < cap) {
		ssize_t n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > NB_CONFIG_MAX_BYTES) {
		rc = -EFBIG;
		snprintf(err, errlen, "%s: larger than %d bytes", path, NB_CONFIG_MAX_BYTES);
		goto out;
	}
	*ret_len = got;
out:
	close(fd);
	return rc;
}

/* Defaults, then the file (if any), then the command line, then the checks
 * across settings. All or nothing: 0 with *s complete, or -errno with err
 * set and *s not to be used. */
static int load(struct settings *s, const char *path, const struct cli_opt *cli, size_t n_cli,
		char *err, size_t errlen)
{
	static uint8_t buf[NB_CONFIG_MAX_BYTES + 1];
	static struct nb_config file;
	struct nb_config_error perr;
	size_t len = 0;
	int rc;

	settings_default(s, path);
	if (path != NULL) {
		rc = read_file(path, buf, sizeof(buf), &len, err, errlen);
		if (rc < 0)
			return rc;
		if (nb_config_parse(buf, len, settings, OPT_N_SETTINGS, &perr, &file) != 0) {
			if (perr.line > 0)
				snprintf(err, errlen, "%s:%u: %s", path, perr.line, perr.msg);
			else
				snprintf(err, errlen, "%s: %s", path, perr.msg);
			return -EINVAL;
		}
		for (size_t i = 0; i < file.n; i++) {
			const struct nb_config_entry *e = &file.e[i];
			rc = apply(s, (enum opt_id)e->key, e->value, e->flag, e->line, err, errlen);
			if (rc < 0)
				return rc;
		}
	}
	for (size_t i = 0; i < n_cli; i++) {
		rc = apply(s, cli[i].id, cli[i].val, true, 0, err, errlen);
		if (rc < 0)
			return rc;
	}
	return finish(s, err, errlen);
}

/* The effective settings, as a config file (the token is not shown). */
static void print_settings(FILE *f, const struct settings *s)
{
	static const char *const levels[] = { "error", "warn", "info", "debug" };
	const struct nb_server_config *c = &s->cfg;
	char ip[NB_ADDR_STRLEN];

	fprintf(f, "# natbroker %s: effective settings%s%s\n", NB_VERSION,
		s->file != NULL ? " from " : "", s->file != NULL ? s->file : "");
	for (unsigned i = 0; i < c->n_listen; i++)
		fprintf(f, "listen = %s\n", nb_addr_format_ip(&c->listen[i], ip, sizeof(ip)));
	fprintf(f, "port = %u\n", c->port);
	fprintf(f, "alt-port = %u%s\n", c->alt_port,
		nb_server_config_rfc5780(c) ? "" : "    # unused: one address per family");
	fprintf(f, "no-tcp = %s\n", c->tcp ? "no" : "yes");
	fprintf(f, "max-tcp = %u\n", c->max_tcp);
	fprintf(f, "tcp-idle-timeout = %llu\n", (unsigned long long)(c->tcp_idle_timeout_ms / 1000));
	fprintf(f, "tcp-max-bytes = %llu\n", (unsigned long long)c->tcp_max_bytes);
	if (c->software != NULL)
		fprintf(f, "software = \"%s\"\n", c->software);
	else
		fprintf(f, "# software: none\n");
	fprintf(f, "max-peers = %zu\n", c->max_peers);
	fprintf(f, "max-sessions = %zu\n", c->max_sessions);
	fprintf(f, "# token: %s\n", c->token != NULL ? "set (not shown)" : "none");
	fprintf(f, "keepalive = %u\n", c->keepalive_s);
	if (s->key_path[0] != '\0')
		fprintf(f, "key = %s\n", s->key_path);
	else
		fprintf(f, "# key: the default ($STATE_DIRECTORY/key, else ~/.config/natbroker/key)\n");
	fprintf(f, "# admin-token: %s\n", c->admin_token != NULL ? "set (not shown)" : "none");
	fprintf(f, "public-list = %s\n", c->public_list ? "yes" : "no");
	fprintf(f, "max-links = %zu\n", c->max_links);
	fprintf(f, "# turn-secret: %s\n", s->secret_given ? "set (not shown)" : "drawn at start");
	fprintf(f, "no-relay = %s\n", s->no_relay ? "yes" : "no");
	if (c->n_relays > 0)
		fprintf(f, "relay = %s\n", s->relay_spec);
	for (unsigned i = 0; i < NB_FAM_COUNT; i++)
		if (c->relay_ip[i].family != NB_AF_NONE)
			fprintf(f, "relay-ip = %s\n", nb_addr_format_ip(&c->relay_ip[i], ip, sizeof(ip)));
		else if (c->turn && c->n_relays == 0)
			fprintf(f, "# relay-ip (%s): the first %s --listen, if any\n",
				i == NB_FAM_V4 ? "IPv4" : "IPv6", i == NB_FAM_V4 ? "IPv4" : "IPv6");
	fprintf(f, "relay-ports = %u-%u\n", c->turn_cfg.port_lo, c->turn_cfg.port_hi);
	fprintf(f, "realm = %s\n", c->turn_cfg.realm);
	fprintf(f, "relay-allow-private = %s\n", c->turn_cfg.allow_private ? "yes" : "no");
	fprintf(f, "max-allocations = %u\n", c->turn_cfg.max_allocs);
	fprintf(f, "max-allocations-per-user = %u\n", c->turn_cfg.max_allocs_per_user);
	fprintf(f, "relay-bandwidth = %llu%s\n", (unsigned long long)c->turn_cfg.bandwidth_Bps,
		c->turn_cfg.bandwidth_Bps == 0 ? "    # unlimited" : "");
	fprintf(f, "relay-lifetime-max = %u\n", c->turn_cfg.max_lifetime_s);
	fprintf(f, "relay-lifetime = %u\n", c->turn_cfg.default_lifetime_s);
	fprintf(f, "relay-max-permissions = %u\n", c->turn_cfg.max_perms);
	fprintf(f, "relay-max-channels = %u\n", c->turn_cfg.max_channels);
	fprintf(f, "status-port = %u%s\n", c->status_port, c->status_port == 0 ? "    # off" : "");
	fprintf(f, "rate-limit = %u%s\n", c->rate_limit, c->rate_limit == 0 ? "    # off" : "");
	fprintf(f, "rate-burst = %u\n", c->rate_burst);
	fprintf(f, "rate-table = %zu\n", c->rate_table);
	fprintf(f, "rate-penalty = %u%s\n", c->rate_penalty_s, c->rate_penalty_s == 0 ? "    # off" : "");
	fprintf(f, "birthday = %s\n", c->birthday.has ? "on" : "off");
	fprintf(f, "birthday-sockets = %u%s\n", c->birthday.sockets, c->birthday.has ? "" : "    # unused: off");
	fprintf(f, "birthday-probes = %u%s\n", c->birthday.probes, c->birthday.has ? "" : "    # unused: off");
	fprintf(f, "birthday-rate = %u%s\n", c->birthday.rate, c->birthday.has ? "" : "    # unused: off");
	fprintf(f, "punch-timing = %s\n", c->rtt_timing ? "rtt" : "fixed");
	fprintf(f, "log-level = %s\n", levels[s->level]);
}

/* ---- SIGHUP ------------------------------------------------------------------------ */

static bool str_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

static bool setting_differs(const struct settings *a, const struct settings *b, enum opt_id id)
{
	const struct nb_server_config *x = &a->cfg, *y = &b->cfg;

	switch (id) {
	case OPT_LISTEN:
		if (x->n_listen != y->n_listen)
			return true;
		for (unsigned i = 0; i < x->n_listen; i++)
			if (!nb_addr_ip_equal(&x->listen[i], &y->listen[i]))
				return true;
		return false;
	case OPT_PORT: return x->port != y->port;
	case OPT_ALT_PORT: return x->alt_port != y->alt_port;
	case OPT_NO_TCP: return x->tcp != y->tcp;
	case OPT_MAX_TCP: return x->max_tcp != y->max_tcp;
	case OPT_TCP_IDLE: return x->tcp_idle_timeout_ms != y->tcp_idle_timeout_ms;
	case OPT_TCP_MAX_BYTES: return x->tcp_max_bytes != y->tcp_max_bytes;
	case OPT_SOFTWARE: return str_differs(x->software, y->software);
	case OPT_MAX_PEERS: return x->max_peers != y->max_peers;
	case OPT_MAX_SESSIONS: return x->max_sessions != y->max_sessions;
	case OPT_TOKEN: return str_differs(x->token, y->token);
	case OPT_KEEPALIVE: return x->keepalive_s != y->keepalive_s;
	case OPT_STATUS_PORT: return x->status_port != y->status_port;
	case OPT_RATE_LIMIT: return x->rate_limit != y->rate_limit;
	case OPT_RATE_BURST: return x->rate_burst != y->rate_burst;
	case OPT_RATE_TABLE: return x->rate_table != y->rate_table;
	case OPT_RATE_PENALTY: return x->rate_penalty_s != y->rate_penalty_s;
	case OPT_LOG_LEVEL: return a->level != b->level;
	case OPT_KEY: return strcmp(a->key_path, b->key_path) != 0;
	case OPT_ADMIN_TOKEN: return str_differs(x->admin_token, y->admin_token);
	case OPT_PUBLIC_LIST: return x->public_list != y->public_list;
	case OPT_MAX_LINKS: return x->max_links != y->max_links;
	case OPT_TURN_SECRET:
	case OPT_TURN_SECRET_FILE:
		return x->turn_cfg.secret_len != y->turn_cfg.secret_len ||
		       CRYPTO_memcmp(x->turn_cfg.secret, y->turn_cfg.secret, x->turn_cfg.secret_len) != 0;
	case OPT_NO_RELAY: return a->no_relay != b->no_relay;
	case OPT_RELAY: return strcmp(a->relay_spec, b->relay_spec) != 0;
	case OPT_RELAY_IP:
		return !nb_addr_equal(&x->relay_ip[NB_FAM_V4], &y->relay_ip[NB_FAM_V4]) ||
		       !nb_addr_equal(&x->relay_ip[NB_FAM_V6], &y->relay_ip[NB_FAM_V6]);
	case OPT_RELAY_PORTS:
		return x->turn_cfg.port_lo != y->turn_cfg.port_lo || x->turn_cfg.port_hi != y->turn_cfg.port_hi;
	case OPT_REALM: return strcmp(x->turn_cfg.realm, y->turn_cfg.realm) != 0;
	case OPT_RELAY_ALLOW_PRIVATE: return x->turn_cfg.allow_private != y->turn_cfg.allow_private;
	case OPT_MAX_ALLOCS: return x->turn_cfg.max_allocs != y->turn_cfg.max_allocs;
	case OPT_MAX_ALLOCS_USER: return x->turn_cfg.max_allocs_per_user != y->turn_cfg.max_allocs_per_user;
	case OPT_RELAY_BANDWIDTH: return x->turn_cfg.bandwidth_Bps != y->turn_cfg.bandwidth_Bps;
	case OPT_RELAY_LIFETIME_MAX: return x->turn_cfg.max_lifetime_s != y->turn_cfg.max_lifetime_s;
	case OPT_RELAY_LIFETIME: return x->turn_cfg.default_lifetime_s != y->turn_cfg.default_lifetime_s;
	case OPT_RELAY_MAX_PERMS: return x->turn_cfg.max_perms != y->turn_cfg.max_perms;
	case OPT_RELAY_MAX_CHANNELS: return x->turn_cfg.max_channels != y->turn_cfg.max_channels;
	case OPT_BIRTHDAY: return x->birthday.has != y->birthday.has;
	case OPT_BIRTHDAY_SOCKETS: return x->birthday.sockets != y->birthday.sockets;
	case OPT_BIRTHDAY_PROBES: return x->birthday.probes != y->birthday.probes;
	case OPT_BIRTHDAY_RATE: return x->birthday.rate != y->birthday.rate;
	case OPT_PUNCH_TIMING: return x->rtt_timing != y->rtt_timing;
	default: return false;
	}
}

/* SIGHUP: re-read the file and the command line as at start. A bad file
 * changes nothing. The log level is applied; any other change is logged as
 * needing a restart. Reading a config file (at most 64 KiB, local) is the
 * one blocking call on the loop thread, and only on SIGHUP. */
static void on_reload(void *arg)
{
	static const char *const levels[] = { "error", "warn", "info", "debug" };
	static struct settings next;
	struct program *p = arg;
	char err[ERR_MAX];
	enum nb_log_level old = p->running.level;

	if (load(&next, p->config_path, p->cli, p->n_cli, err, sizeof(err)) != 0) {
		nb_log_error(LOG, "SIGHUP: %s: configuration not reloaded, nothing changed", err);
		return;
	}
	for (unsigned id = 0; id < OPT_N_SETTINGS; id++)
		if (id != OPT_LOG_LEVEL && setting_differs(&p->running, &next, (enum opt_id)id))
			nb_log_warn(LOG, "SIGHUP: '%s' changed: not applied until a restart",
				    settings[id].name);
	if (next.level > old)
		nb_log_set_level(next.level);
	nb_log_info(LOG, "SIGHUP: %s reloaded; log level %s%s%s", p->config_path, levels[old],
		    next.level != old ? " -> " : " (unchanged)",
		    next.level != old ? levels[next.level] : "");
	nb_log_set_level(next.level);
	p->running.level = next.level;
}

/* ---- The broker's key ----------------------------------------------------------------- */

/* Load (or create) the broker's private key; print its public key, which
 * peers pin. 0, or -1 with the reason on stderr. */
static int key_load(struct settings *s)
{
	char path[4096], err[512], text[NB_KEY_TEXT_LEN + 1];
	uint8_t pub[NB_KEY_LEN];
	const char *sd = getenv("STATE_DIRECTORY"); /* systemd's StateDirectory= */
	bool created = false;
	int rc;

	if (s->key_path[0] != '\0')
		snprintf(path, sizeof(path), "%s", s->key_path);
	else if (sd != NULL && sd[0] == '/' && strchr(sd, ':') == NULL)
		snprintf(path, sizeof(path), "%s/key", sd);
	else if (nb_keyfile_default_path("natbroker", path, sizeof(path)) != 0) {
		fprintf(stderr, "natbroker: no key file: neither $XDG_CONFIG_HOME nor $HOME is set; "
				"give --key FILE\n");
		return -1;
	}
	rc = nb_keyfile_load(path, true, s->cfg.key, pub, &created, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "natbroker: %s\n", err);
		return -1;
	}
	nb_key_to_text(pub, text);
	nb_log_info(LOG, "%s key %s; public key %s", created ? "created" : "using", path, text);
	memcpy(s->cfg.pubkey_text, text, sizeof(text));
	return 0;
}

/* ---- main --------------------------------------------------------------------------- */

static int usage_error(const char *msg)
{
	fprintf(stderr, "natbroker: %s\nTry 'natbroker --help'.\n", msg);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	static struct program p; /* outlives the loop: SIGHUP reads it */
	bool check = false;
	char err[ERR_MAX];
	int opt;

	build_options();
	p.cli = calloc((size_t)argc, sizeof(*p.cli));
	if (p.cli == NULL) {
		fprintf(stderr, "natbroker: out of memory\n");
		return 1;
	}
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hV", long_options, NULL)) != -1) {
		if (opt >= OPT_BASE && opt < OPT_BASE + OPT_N_SETTINGS) {
			p.cli[p.n_cli++] = (struct cli_opt){ (enum opt_id)(opt - OPT_BASE), optarg };
			continue;
		}
		switch (opt) {
		case OPT_BASE + OPT_CONFIG:
			if (p.config_path != NULL) {
				bad(err, sizeof(err), "--config", NULL, "given twice");
				return usage_error(err);
			}
			p.config_path = optarg;
			break;
		case OPT_BASE + OPT_CHECK_CONFIG:
			check = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("natbroker %s\n", NB_VERSION);
			return 0;
		case ':':
			bad(err, sizeof(err), argv[optind - 1], NULL, "needs a value");
			return usage_error(err);
		default:
			bad(err, sizeof(err), argv[optind - 1], NULL, "unknown option");
			return usage_error(err);
		}
	}
	if (optind < argc) {
		bad(err, sizeof(err), argv[optind], NULL, "unexpected argument (options start with --)");
		return usage_error(err);
	}
	if (load(&p.running, p.config_path, p.cli, p.n_cli, err, sizeof(err)) != 0)
		return usage_error(err);
	if (check) {
		print_settings(stdout, &p.running);
		fprintf(stderr, "natbroker: configuration ok\n");
		return 0;
	}
	nb_log_set_level(p.running.level);
	if (key_load(&p.running) != 0)
		return 1;
	if (p.running.cfg.turn && !p.running.secret_given) {
		/* A secret of our own: credentials only our plans hand out. */
		uint8_t r[24];
		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
			fprintf(stderr, "natbroker: getrandom: %s\n", strerror(errno));
			return 1;
		}
		for (size_t i = 0; i < sizeof(r); i++) {
			static const char hx[] = "0123456789abcdef";
			p.running.cfg.turn_cfg.secret[2 * i] = (uint8_t)hx[r[i] >> 4];
			p.running.cfg.turn_cfg.secret[2 * i + 1] = (uint8_t)hx[r[i] & 15];
		}
		p.running.cfg.turn_cfg.secret_len = 2 * sizeof(r);
		OPENSSL_cleanse(r, sizeof(r));
	}
	if (p.config_path != NULL) {
		nb_log_info(LOG, "settings from %s, then the command line", p.config_path);
		p.running.cfg.reload_cb = on_reload;
		p.running.cfg.reload_arg = &p;
	}
	return nb_server_run(&p.running.cfg) == 0 ? 0 : 1;
}
