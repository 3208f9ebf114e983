/* peer/main.c - natpeer: the peer agent's command line. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/log.h"
#include "peer/netcheck_run.h"

#define DEFAULT_BROKER_PORT 3478

static void usage(FILE *f)
{
	fputs("usage: natpeer COMMAND --broker IP[:PORT] [options]\n"
	      "\n"
	      "Peer agent of natbroker: learns its NAT's behaviour, registers with a\n"
	      "rendezvous broker and opens an authenticated UDP path to another peer.\n"
	      "\n"
	      "commands:\n"
	      "  netcheck            classify this host's NAT (RFC 5780 mapping and\n"
	      "                      filtering tests) against the broker, or any RFC 5780\n"
	      "                      STUN server, and print a report\n"
	      "  listen --id NAME    register and accept connections       (not yet available)\n"
	      "  connect --id NAME PEER\n"
	      "                      connect to PEER on the broker's plan  (not yet available)\n"
	      "  peers               list the peers registered             (not yet available)\n"
	      "\n"
	      "options:\n"
	      "  --broker IP[:PORT]  the broker, a numeric address (port 3478 by default)\n"
	      "  --port N            local UDP port (random by default)\n"
	      "  --json              print the result as one JSON object\n"
	      "  --timeout S         give up after S seconds (default 10)\n"
	      "  --log-level L       error, warn, info (default) or debug\n"
	      "  -h, --help          this text\n"
	      "  -V, --version       print the version\n"
	      "\n"
	      "exit status: 0 when the command did its job, 1 when it failed, 2 on bad usage\n",
	      f);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_broker(const char *s, struct nb_addr *ret)
{
	if (nb_addr_parse(s, true, ret) != 0)
		return -EINVAL;
	if (ret->port == 0)
		ret->port = DEFAULT_BROKER_PORT;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "broker", required_argument, NULL, 'b' }, { "port", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },         { "timeout", required_argument, NULL, 't' },
		{ "log-level", required_argument, NULL, 'l' }, { "id", required_argument, NULL, 'i' },
		{ "token", required_argument, NULL, 'k' },  { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },      { NULL, 0, NULL, 0 },
	};
	struct nb_netcheck_opts o;
	bool have_broker = false;
	const char *cmd = NULL;
	unsigned long v;
	int c;

	memset(&o, 0, sizeof(o));
	o.timeout_ms = 10000;
	while ((c = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1 || optind < argc) {
		if (c == -1) { /* a command word; options may follow it */
			if (cmd != NULL) {
				fprintf(stderr, "natpeer: unexpected argument '%s' (see --help)\n", argv[optind]);
				return 2;
			}
			cmd = argv[optind++];
			continue;
		}
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("natpeer %s\n", NB_VERSION);
			return 0;
		case 'b':
			if (parse_broker(optarg, &o.server) != 0) {
				fprintf(stderr, "natpeer: --broker '%s': expected a numeric IP[:PORT], "
						"e.g. 203.0.113.10 or 203.0.113.10:3478\n", optarg);
				return 2;
			}
			have_broker = true;
			break;
		case 'p':
			if (parse_uint(optarg, 65535, &v) != 0) {
				fprintf(stderr, "natpeer: --port '%s': expected 0..65535\n", optarg);
				return 2;
			}
			o.port = (uint16_t)v;
			break;
		case 'j':
			o.json = true;
			break;
		case 't':
			if (parse_uint(optarg, 3600, &v) != 0 || v == 0) {
				fprintf(stderr, "natpeer: --timeout '%s': expected 1..3600 seconds\n", optarg);
				return 2;
			}
			o.timeout_ms = (uint32_t)v * 1000;
			break;
		case 'l': {
			enum nb_log_level l;
			if (nb_log_parse_level(optarg, &l) != 0) {
				fprintf(stderr, "natpeer: --log-level '%s': expected error, warn, info or debug\n",
					optarg);
				return 2;
			}
			nb_log_set_level(l);
			break;
		}
		case 'i':
		case 'k':
			break; /* used by the rendezvous commands */
		default:
			fprintf(stderr, "natpeer: see 'natpeer --help'\n");
			return 2;
		}
	}
	if (cmd == NULL) {
		usage(stderr);
		return 2;
	}
	if (strcmp(cmd, "netcheck") == 0) {
		if (!have_broker) {
			fprintf(stderr, "natpeer: netcheck needs --broker IP[:PORT]\n");
			return 2;
		}
		return nb_netcheck_run(&o);
	}
	if (strcmp(cmd, "listen") == 0 || strcmp(cmd, "connect") == 0 || strcmp(cmd, "peers") == 0) {
		fprintf(stderr, "natpeer: '%s' is not available in this version yet; 'netcheck' is\n", cmd);
		return 2;
	}
	fprintf(stderr, "natpeer: unknown command '%s' (see --help)\n", cmd);
	return 2;
}
