/* peer/main.c - natpeer: the peer agent's command line. Every command goes
 * through libnatpeer (natpeer.h, and peer/cli_run.h for the pipe, the
 * events, port forwarding, and netcheck's and map's output). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natpeer.h"
#include "common/addr.h"
#include "common/log.h"
#include "peer/cli_run.h"
#include "peer/fwd.h"

#define DEFAULT_BROKER_PORT 3478

/* The options every command shares. The brokers are parsed here too (a
 * CLI-only check, for the error messages: libnatpeer takes them as text). */
struct cmd_opts {
	struct nb_addr server, server2;
	bool has_server2;
	uint16_t port;
	bool json;
	uint32_t timeout_ms;
	bool upnp;
	bool upnp_any_host;
	unsigned portmap_protocols;
	struct {
		bool on, tcp;
		uint16_t port, external;
		uint32_t lease_s;
	} map;
};

/* What the options say, before it goes to libnatpeer. */
struct agent_args {
	enum cli_cmd cmd;
	const char *broker_text, *broker2_text; /* listen, connect, peers, matrix */
	char id[NATPEER_ID_MAX + 1];
	char peer[NATPEER_ID_MAX + 1];
	bool json;
	bool has_key; /* identity() loaded the key (and known_path) */
	bool one_family, ipv6_temporary;
	uint32_t bday_sockets, bday_rate;
	uint8_t priv[32], pub[32];
	char known_path[4096];
	bool has_broker_key;
	uint8_t broker_key[32];
	bool has_peer_key;
	uint8_t peer_key[32];
	size_t n_allow;
	char allow[NATPEER_MAX_ALLOW][NATPEER_KEY_TEXT_LEN + 1];
	struct nb_fwd_spec expose[NB_FWD_MAX_SPECS];
	size_t n_expose;
	struct nb_fwd_spec forward[NB_FWD_MAX_SPECS];
	size_t n_forward;
};

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
	      "                      STUN server, and print a report. Give --broker\n"
	      "                      twice, one IPv4 and one IPv6, to test both\n"
	      "                      families at once: a section per family (\"IPv4:\",\n"
	      "                      \"IPv6:\"; --json: \"families\":{\"4\":{..},\"6\":{..}}\n"
	      "                      beside the first --broker's fields), \"no IPv6\" and\n"
	      "                      the reason for a family without a route; the port\n"
	      "                      mapping is tested on the IPv4 family only\n"
	      "  listen --id NAME    check the NAT, register, and accept connections:\n"
	      "                      one event line per attempt; datagrams from connected\n"
	      "                      peers to stdout, one per line; stdin lines to every\n"
	      "                      connected peer. Runs until SIGINT/SIGTERM\n"
	      "  connect --id NAME PEER\n"
	      "                      check the NAT, register, connect to PEER on the\n"
	      "                      broker's plan and print one event line; then stdin\n"
	      "                      lines to PEER and its datagrams to stdout until EOF\n"
	      "                      (with --forward: until SIGINT/SIGTERM or PEER is lost)\n"
	      "  key                 print this peer's public key (creating the key pair\n"
	      "                      on first use): what other peers pin and --allow\n"
	      "  forget NAME         remove NAME (a peer id, or @IP:PORT for a broker)\n"
	      "                      from the known-peers file, after a key change\n"
	      "  peers               list the peers registered with the broker\n"
	      "  map udp|tcp PORT    map local PORT on the home router (PCP, NAT-PMP or\n"
	      "                      UPnP, whichever answers best), have the broker verify\n"
	      "                      it from outside, print the external address, keep it\n"
	      "                      renewed until SIGINT/SIGTERM, then delete it\n"
	      "  matrix              the broker's who-can-reach-whom matrix: for every pair\n"
	      "                      that was tried, the predicted path, the plan, and the\n"
	      "                      measured outcome (--json: one array of objects with\n"
	      "                      a, b, predicted, role_a, role_b, plan, measured, ms)\n"
	      "\n"
	      "options:\n"
	      "  --broker IP[:PORT]  the broker, a numeric address (port 3478 by default);\n"
	      "                      netcheck: twice, once per family; listen, connect: a\n"
	      "                      second, of the other family, is the same broker there\n"
	      "                      (its NAT tests then start at once; else natpeer learns\n"
	      "                      that address from the broker after registering)\n"
	      "  --id NAME           this peer's name: 1-32 of A-Z a-z 0-9 . _ -\n"
	      "  --token T           the token the broker asks for (default: none)\n"
	      "  --key FILE          this peer's private key (X25519), created on first use\n"
	      "                      with mode 0600 and refused if group or others can\n"
	      "                      read it (default $XDG_CONFIG_HOME/natpeer/key, else\n"
	      "                      ~/.config/natpeer/key). A peer IS its key: its\n"
	      "                      public key (natpeer key) is what others pin\n"
	      "  --known-peers FILE  names and brokers met before, and their keys (trust on\n"
	      "                      first use, as ssh does; default: known_peers beside\n"
	      "                      the key)\n"
	      "  --broker-key KEY    demand this public key of the broker (default: the\n"
	      "                      one pinned at first use)\n"
	      "  --peer-key KEY      connect: demand this public key of PEER\n"
	      "  --allow NAME|KEY    listen: accept only these peers (repeatable; default:\n"
	      "                      anyone, whose key is printed)\n"
	      "  --expose udp:HOST:PORT\n"
	      "                      listen: deliver connected peers' forwarded datagrams\n"
	      "                      to the UDP service at HOST:PORT (an IPv4 address,\n"
	      "                      [an IPv6 address] or localhost) from one local socket\n"
	      "                      per peer and flow, and send its replies back\n"
	      "                      (repeatable, at most 8; see docs/forwarding.md)\n"
	      "  --expose tcp:HOST:PORT\n"
	      "                      listen: connect peers' forwarded TCP streams for PORT\n"
	      "                      to the service at HOST:PORT (at most 64 per peer)\n"
	      "  --forward udp:[BIND:]LPORT[=RPORT]\n"
	      "                      connect: bind BIND:LPORT (default BIND 127.0.0.1);\n"
	      "                      what local programs send there goes to PEER's exposed\n"
	      "                      UDP port RPORT (default: its only one), replies come\n"
	      "                      back to them (repeatable, at most 8). Datagrams of up\n"
	      "                      to 1366 bytes; longer ones are dropped and counted\n"
	      "  --forward tcp:[BIND:]LPORT[=RPORT]\n"
	      "                      connect: listen on BIND:LPORT; each local connection\n"
	      "                      goes to PEER's exposed TCP port RPORT (default: its\n"
	      "                      only one) as one stream (repeatable)\n"
	      "  --admin-token T     peers, matrix: the broker's admin token\n"
	      "  --port N            local UDP port (random by default)\n"
	      "  --json              events (and results) as JSON, one object per line;\n"
	      "                      on stdin a line {\"data\":BASE64} is one binary-safe\n"
	      "                      datagram, {\"peer\":NAME,\"data\":BASE64} one for NAME\n"
	      "                      alone (listen); other lines are sent as they are\n"
	      "  --timeout S         netcheck: give up after S seconds (default 10);\n"
	      "                      listen, connect: the deadline of each punch attempt\n"
	      "                      (default: the broker's plan, 5 s)\n"
	      "  --no-portmap        netcheck, listen, connect: do not ask the router for a\n"
	      "                      port mapping (by default they do, over PCP, NAT-PMP\n"
	      "                      and UPnP at once, and have the broker probe it; it is\n"
	      "                      removed on exit). --no-upnp is the old name\n"
	      "  --portmap LIST      the protocols to ask, a comma list of pcp, nat-pmp,\n"
	      "                      upnp (default all three; PCP > NAT-PMP > UPnP when\n"
	      "                      several answer)\n"
	      "  --external N        map: ask for external port N (default: PORT)\n"
	      "  --lease S           map: ask for a lease of S seconds (default: 7200 with\n"
	      "                      PCP and NAT-PMP, 3600 with UPnP); renewed at half\n"
	      "  --no-relay          listen, connect: never relay through a TURN server; a\n"
	      "                      pair only a relay can connect then fails (by default a\n"
	      "                      pair relays when the plan says so, or when the direct\n"
	      "                      path has not worked by its deadline)\n"
	      "  --one-family        listen, connect: register only in the broker's address\n"
	      "                      family (by default, when the broker also listens in\n"
	      "                      the other family, natpeer tests its NAT and registers\n"
	      "                      there too, from a second socket, so that plans can\n"
	      "                      use IPv6 where IPv4 needs a relay)\n"
	      "  --ipv6-temporary    listen: let the system pick a temporary (privacy) IPv6\n"
	      "                      source address (default: a public, stable one)\n"
	      "  --birthday-sockets N listen, connect: in a birthday plan's spraying role,\n"
	      "                      open at most N sockets (1..1024; default: the plan's,\n"
	      "                      256 from a default broker); needs N + 64 open files\n"
	      "  --birthday-rate R   listen, connect: in a birthday plan's probing role, send\n"
	      "                      at most R probes per second (1..10000; default: the\n"
	      "                      plan's, 100 from a default broker)\n"
	      "  --portmap-check S   listen, connect, map: look for the mapping on the router\n"
	      "                      every S seconds (UPnP: the entry; PCP, NAT-PMP: the\n"
	      "                      epoch) and map again if it is gone, e.g. after a\n"
	      "                      router restart (default 60; 1..3600). --upnp-check is\n"
	      "                      the old name\n"
	      "  --upnp-any-location tests only: accept an SSDP LOCATION on another host\n"
	      "                      than the one that answered\n"
	      "  --log-level L       error, warn, info (default) or debug\n"
	      "  -h, --help          this text\n"
	      "  -V, --version       print the version\n"
	      "\n"
	      "events (stdout; with --json one object per line):\n"
	      "  {\"event\":\"connected\",\"peer\":P,\"path\":\"direct|lan|upnp|relay\",\"remote\":\"ip:port\",\"ms\":N,\"key\":K}\n"
	      "  {\"event\":\"data\",\"peer\":P,\"key\":K,\"data\":BASE64}   (--json: a datagram)\n"
	      "  {\"event\":\"failed\",\"peer\":P,\"reason\":R}\n"
	      "  {\"event\":\"lost\",\"peer\":P,\"remote\":\"ip:port\",\"reason\":R}   (listen)\n"
	      "  ms counts from the connect request (connect) or from the plan (listen).\n"
	      "\n"
	      "exit status: 0 when the command did its job (connect: connected), 1 when\n"
	      "it failed, 2 on bad usage\n",
	      f);
}

/* "pcp,nat-pmp,upnp" -> NATPEER_PORTMAP_* bits */
static int parse_protocols(const char *s, unsigned *ret)
{
	unsigned bits = 0;

	while (*s != '\0') {
		size_t n = strcspn(s, ",");

		if (n == 3 && strncmp(s, "pcp", 3) == 0)
			bits |= NATPEER_PORTMAP_PCP;
		else if (n == 7 && strncmp(s, "nat-pmp", 7) == 0)
			bits |= NATPEER_PORTMAP_NATPMP;
		else if (n == 4 && strncmp(s, "upnp", 4) == 0)
			bits |= NATPEER_PORTMAP_UPNP;
		else
			return -EINVAL;
		s += n;
		if (*s == ',')
			s++;
	}
	if (bits == 0)
		return -EINVAL;
	*ret = bits;
	return 0;
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

/* docs/protocol.md: an id is 1-32 characters of A-Z a-z 0-9 . _ - */
static bool valid_id(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > NATPEER_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int parse_broker(const char *s, struct nb_addr *ret)
{
	if (nb_addr_parse(s, true, ret) != 0)
		return -EINVAL;
	if (ret->port == 0)
		ret->port = DEFAULT_BROKER_PORT;
	return 0;
}

/* The key pair and the known-peers file's path: into ao. -1 when all is
 * well (go on), else the exit status. */
static int identity(const char *cmd, const char *key_path, const char *known_path,
		    struct agent_args *ao)
{
	char path[4096], err[512];
	int created = 0;

	if (key_path != NULL) {
		snprintf(path, sizeof(path), "%s", key_path);
	} else if (natpeer_keyfile_default_path(path, sizeof(path)) != 0) {
		fprintf(stderr, "natpeer: neither $XDG_CONFIG_HOME nor $HOME is set: give --key FILE\n");
		return 1;
	}
	if (known_path != NULL) {
		snprintf(ao->known_path, sizeof(ao->known_path), "%s", known_path);
	} else {
		/* beside the key */
		const char *slash = strrchr(path, '/');
		int dl = slash == NULL ? 0 : (int)(slash - path + 1);
		snprintf(ao->known_path, sizeof(ao->known_path), "%.*sknown_peers", dl, path);
	}
	if (strcmp(cmd, "forget") == 0)
		return -1;
	if (natpeer_keyfile_load(path, 1, ao->priv, ao->pub, &created, err, sizeof(err)) != 0) {
		fprintf(stderr, "natpeer: %s\n", err);
		return 1;
	}
	if (created) {
		char text[NATPEER_KEY_TEXT_LEN + 1];
		natpeer_key_to_text(ao->pub, text);
		fprintf(stderr, "natpeer: created a key pair in %s; public key %s\n", path, text);
	}
	ao->has_key = true;
	return -1;
}

static int forget(const char *name, const char *known_path)
{
	char err[512], text[NATPEER_KEY_TEXT_LEN + 1];
	uint8_t key[NATPEER_KEY_LEN];
	int rc = name == NULL ? NATPEER_E_INVAL : natpeer_known_forget(known_path, name, key, err, sizeof(err));

	switch (rc) {
	case 0:
		natpeer_key_to_text(key, text);
		fprintf(stderr, "forgot %s (key %s) in %s\n", name, text, known_path);
		return 0;
	case NATPEER_E_INVAL:
		fprintf(stderr, "natpeer: forget needs a NAME: a peer id, or @IP:PORT for a broker\n");
		return 2;
	case NATPEER_E_NOTFOUND:
		fprintf(stderr, "natpeer: %s is not in %s\n", name, known_path);
		return 1;
	default:
		fprintf(stderr, "natpeer: %s\n", err);
		return 1;
	}
}

/* The options into a natpeer_config, and run the command (nc: 0, or
 * netcheck / map). netcheck without a key runs without the broker's probe
 * of the port mapping. */
static int run_agent(struct agent_args *ao, const struct cmd_opts *o, bool have_timeout, bool no_relay,
		     uint32_t upnp_check_s, unsigned portmap_protocols, const char *token, const char *admin,
		     enum cli_nc nc)
{
	natpeer_config *cfg = NULL;
	struct cli_opts co;
	unsigned flags = 0;
	int rc, code = 1;

	memset(&co, 0, sizeof(co));
	if (natpeer_config_new(&cfg) != 0) {
		fprintf(stderr, "natpeer: out of memory\n");
		return 1;
	}
	if (no_relay)
		flags |= NATPEER_NO_RELAY;
	if (!o->upnp)
		flags |= NATPEER_NO_PORTMAP;
	if (ao->one_family)
		flags |= NATPEER_ONE_FAMILY;
	if (ao->ipv6_temporary)
		flags |= NATPEER_IPV6_TEMPORARY;
	if (o->upnp_any_host)
		flags |= NATPEER_UPNP_ANY_HOST;
	rc = ao->has_key ? natpeer_config_set_key(cfg, ao->priv) : 0;
	if (rc == 0)
		rc = natpeer_config_add_broker(cfg, ao->broker_text);
	if (rc == 0 && ao->broker2_text != NULL)
		rc = natpeer_config_add_broker(cfg, ao->broker2_text);
	if (rc == 0 && ao->id[0] != '\0')
		rc = natpeer_config_set_id(cfg, ao->id);
	if (rc == 0)
		rc = natpeer_config_set_token(cfg, token);
	if (rc == 0)
		rc = natpeer_config_set_admin_token(cfg, admin);
	if (rc == 0 && ao->has_key)
		rc = natpeer_config_set_known_peers(cfg, ao->known_path);
	if (rc == 0 && ao->has_broker_key && ao->has_key)
		rc = natpeer_config_set_broker_key(cfg, ao->broker_key);
	for (size_t i = 0; rc == 0 && i < ao->n_allow; i++)
		rc = natpeer_config_add_allow(cfg, ao->allow[i]);
	if (rc == 0)
		rc = natpeer_config_set_port(cfg, o->port);
	if (rc == 0)
		rc = natpeer_config_set_flags(cfg, flags);
	if (rc == 0)
		rc = natpeer_config_set_portmap(cfg, portmap_protocols, upnp_check_s);
	if (rc == 0 && nc == CLI_NC_NONE)
		rc = natpeer_config_set_punch_timeout(cfg, have_timeout ? o->timeout_ms : 0);
	if (rc == 0)
		rc = natpeer_config_set_birthday(cfg, ao->bday_sockets, ao->bday_rate);
	if (rc == 0)
		rc = natpeer_config_set_log_level(cfg, (int)nb_log_get_level());
	if (rc != 0) {
		fprintf(stderr, "natpeer: %s\n", natpeer_strerror(rc));
		goto out;
	}
	if (nc != CLI_NC_NONE) {
		struct cli_nc_opts no = {
			.what = nc, .cfg = cfg, .json = o->json, .timeout_ms = o->timeout_ms,
			.map_tcp = o->map.tcp, .map_port = o->map.port, .map_external = o->map.external,
			.map_lease_s = o->map.lease_s,
		};
		code = cli_netcheck_run(&no);
		goto out;
	}
	co.cmd = ao->cmd;
	co.cfg = cfg;
	co.json = ao->json;
	co.peer = ao->peer;
	co.has_peer_key = ao->has_peer_key;
	memcpy(co.peer_key, ao->peer_key, sizeof(co.peer_key));
	co.expose = ao->expose;
	co.n_expose = ao->n_expose;
	co.forward = ao->forward;
	co.n_forward = ao->n_forward;
	code = cli_run(&co);
out:
	natpeer_config_free(cfg);
	return code;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "broker", required_argument, NULL, 'b' }, { "port", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },         { "timeout", required_argument, NULL, 't' },
		{ "log-level", required_argument, NULL, 'l' }, { "id", required_argument, NULL, 'i' },
		{ "token", required_argument, NULL, 'k' },  { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },      { "no-upnp", no_argument, NULL, 'U' },
		{ "upnp-any-location", no_argument, NULL, 'A' }, { "upnp-check", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' },    { "known-peers", required_argument, NULL, 'N' },
		{ "broker-key", required_argument, NULL, 'B' }, { "peer-key", required_argument, NULL, 'P' },
		{ "allow", required_argument, NULL, 'W' },  { "admin-token", required_argument, NULL, 'T' },
		{ "no-relay", no_argument, NULL, 'R' },     { "no-portmap", no_argument, NULL, 'U' },
		{ "portmap", required_argument, NULL, 'M' }, { "portmap-check", required_argument, NULL, 'C' },
		{ "external", required_argument, NULL, 'E' }, { "lease", required_argument, NULL, 'L' },
		{ "birthday-sockets", required_argument, NULL, 'S' },
		{ "birthday-rate", required_argument, NULL, 'Q' },
		{ "one-family", no_argument, NULL, 'F' },
		{ "ipv6-temporary", no_argument, NULL, 'I' },
		{ "expose", required_argument, NULL, 'X' },
		{ "forward", required_argument, NULL, 'G' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_opts o;
	struct agent_args ao;
	bool have_broker = false, have_timeout = false, no_relay = false;
	uint32_t upnp_check_s = 0; /* 0: the UPnP client's default (60 s) */
	const char *cmd = NULL, *id = NULL, *token = NULL, *peer = NULL;
	const char *key_path = NULL, *known_path = NULL, *admin = NULL;
	const char *map_proto = NULL, *map_port = NULL;
	unsigned portmap_protocols = 0;
	unsigned long v;
	int c;

	memset(&o, 0, sizeof(o));
	memset(&ao, 0, sizeof(ao));
	o.timeout_ms = 10000;
	o.upnp = true;
	while ((c = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1 || optind < argc) {
		if (c == -1) { /* a command word (or connect's PEER); options may follow it */
			if (cmd == NULL) {
				cmd = argv[optind++];
			} else if ((strcmp(cmd, "connect") == 0 || strcmp(cmd, "forget") == 0) && peer == NULL) {
				peer = argv[optind++];
			} else if (strcmp(cmd, "map") == 0 && map_proto == NULL) {
				map_proto = argv[optind++];
			} else if (strcmp(cmd, "map") == 0 && map_port == NULL) {
				map_port = argv[optind++];
			} else {
				fprintf(stderr, "natpeer: unexpected argument '%s' (see --help)\n", argv[optind]);
				return 2;
			}
			continue;
		}
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("natpeer %s\n", NB_VERSION);
			return 0;
		case 'b': { /* netcheck takes a second, of the other family (checked below) */
			struct nb_addr *b = have_broker ? &o.server2 : &o.server;
			if (o.has_server2) {
				fprintf(stderr, "natpeer: --broker: at most two (netcheck: one IPv4, one IPv6)\n");
				return 2;
			}
			if (parse_broker(optarg, b) != 0) {
				fprintf(stderr, "natpeer: --broker '%s': expected a numeric IP[:PORT], "
						"e.g. 203.0.113.10 or 203.0.113.10:3478\n", optarg);
				return 2;
			}
			if (have_broker && o.server2.family == o.server.family) {
				fprintf(stderr, "natpeer: --broker '%s': a second --broker must be of the other "
						"family (netcheck: one IPv4, one IPv6; other commands take one)\n",
					optarg);
				return 2;
			}
			if (have_broker)
				ao.broker2_text = optarg;
			else
				ao.broker_text = optarg;
			o.has_server2 = have_broker;
			have_broker = true;
			break;
		}
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
			have_timeout = true;
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
			id = optarg;
			break;
		case 'k':
			token = optarg;
			break;
		case 'U':
			o.upnp = false;
			break;
		case 'R':
			no_relay = true;
			break;
		case 'F':
			ao.one_family = true;
			break;
		case 'I':
			ao.ipv6_temporary = true;
			break;
		case 'S':
			if (parse_uint(optarg, NATPEER_BDAY_SOCKETS_MAX, &v) != 0 || v == 0) {
				fprintf(stderr, "natpeer: --birthday-sockets '%s': expected 1..%d\n", optarg,
					NATPEER_BDAY_SOCKETS_MAX);
				return 2;
			}
			ao.bday_sockets = (uint32_t)v;
			break;
		case 'Q':
			if (parse_uint(optarg, NATPEER_BDAY_RATE_MAX, &v) != 0 || v == 0) {
				fprintf(stderr, "natpeer: --birthday-rate '%s': expected 1..%d probes per second\n",
					optarg, NATPEER_BDAY_RATE_MAX);
				return 2;
			}
			ao.bday_rate = (uint32_t)v;
			break;
		case 'A':
			o.upnp_any_host = true;
			break;
		case 'K':
			key_path = optarg;
			break;
		case 'N':
			known_path = optarg;
			break;
		case 'B':
		case 'P':
			if (natpeer_key_from_text(optarg, c == 'B' ? ao.broker_key : ao.peer_key) != 0) {
				fprintf(stderr, "natpeer: --%s '%s': expected a public key, %d base64url "
						"characters (natpeer key prints one)\n",
					c == 'B' ? "broker-key" : "peer-key", optarg, NATPEER_KEY_TEXT_LEN);
				return 2;
			}
			if (c == 'B')
				ao.has_broker_key = true;
			else
				ao.has_peer_key = true;
			break;
		case 'W':
			if (ao.n_allow == sizeof(ao.allow) / sizeof(ao.allow[0])) {
				fprintf(stderr, "natpeer: --allow: at most %zu\n",
					sizeof(ao.allow) / sizeof(ao.allow[0]));
				return 2;
			}
			if (!valid_id(optarg)) {
				uint8_t k[NATPEER_KEY_LEN];
				if (natpeer_key_from_text(optarg, k) != 0) {
					fprintf(stderr, "natpeer: --allow '%s': expected a peer name or a "
							"public key\n", optarg);
					return 2;
				}
			}
			snprintf(ao.allow[ao.n_allow++], sizeof(ao.allow[0]), "%s", optarg);
			break;
		case 'X':
		case 'G': {
			struct nb_fwd_spec sp;
			char err[256];
			int rc = c == 'X' ? nb_fwd_expose_parse(optarg, &sp, err, sizeof(err))
					  : nb_fwd_forward_parse(optarg, &sp, err, sizeof(err));
			if (rc == 0)
				rc = c == 'X' ? nb_fwd_spec_add(ao.expose, &ao.n_expose, &sp, err, sizeof(err))
					      : nb_fwd_spec_add(ao.forward, &ao.n_forward, &sp, err, sizeof(err));
			if (rc != 0) {
				fprintf(stderr, "natpeer: --%s %s\n", c == 'X' ? "expose" : "forward", err);
				return 2;
			}
			break;
		}
		case 'T':
			admin = optarg;
			break;
		case 'C':
			if (parse_uint(optarg, 3600, &v) != 0 || v == 0) {
				fprintf(stderr, "natpeer: --portmap-check '%s': expected 1..3600 seconds\n", optarg);
				return 2;
			}
			upnp_check_s = (uint32_t)v;
			break;
		case 'M':
			if (parse_protocols(optarg, &portmap_protocols) != 0) {
				fprintf(stderr, "natpeer: --portmap '%s': expected a comma list of pcp, nat-pmp, "
						"upnp\n", optarg);
				return 2;
			}
			break;
		case 'E':
			if (parse_uint(optarg, 65535, &v) != 0 || v == 0) {
				fprintf(stderr, "natpeer: --external '%s': expected 1..65535\n", optarg);
				return 2;
			}
			o.map.external = (uint16_t)v;
			break;
		case 'L':
			if (parse_uint(optarg, 86400 * 7, &v) != 0 || v < 60) {
				fprintf(stderr, "natpeer: --lease '%s': expected 60..604800 seconds\n", optarg);
				return 2;
			}
			o.map.lease_s = (uint32_t)v;
			break;
		default:
			fprintf(stderr, "natpeer: see 'natpeer --help'\n");
			return 2;
		}
	}
	if (cmd == NULL) {
		usage(stderr);
		return 2;
	}
	o.portmap_protocols = portmap_protocols;
	if (o.has_server2 && strcmp(cmd, "netcheck") != 0 && strcmp(cmd, "listen") != 0 &&
	    strcmp(cmd, "connect") != 0) {
		fprintf(stderr, "natpeer: %s takes one --broker (netcheck, listen and connect take two, "
				"one per family)\n",
			cmd);
		return 2;
	}
	if ((o.map.external != 0 || o.map.lease_s != 0) && strcmp(cmd, "map") != 0) {
		fprintf(stderr, "natpeer: --external and --lease are for map\n");
		return 2;
	}
	if (strcmp(cmd, "map") == 0) {
		if (map_proto == NULL || (strcmp(map_proto, "udp") != 0 && strcmp(map_proto, "tcp") != 0) ||
		    map_port == NULL || parse_uint(map_port, 65535, &v) != 0 || v == 0) {
			fprintf(stderr, "natpeer: usage: natpeer map udp|tcp PORT --broker IP[:PORT] "
					"[--external N] [--lease S] [--json]\n");
			return 2;
		}
		if (!have_broker) {
			fprintf(stderr, "natpeer: map needs --broker IP[:PORT] (the broker verifies the mapping "
					"from outside)\n");
			return 2;
		}
		if (!o.upnp) {
			fprintf(stderr, "natpeer: map: --no-portmap leaves nothing to do\n");
			return 2;
		}
		o.map.on = true;
		o.map.tcp = strcmp(map_proto, "tcp") == 0;
		o.map.port = (uint16_t)v;
		if (!have_timeout)
			o.timeout_ms = 15000; /* to a mapping, or a failure; then it runs until a signal */
		if (identity("map", key_path, known_path, &ao) >= 0)
			return 1;
		signal(SIGPIPE, SIG_IGN);
		return run_agent(&ao, &o, have_timeout, no_relay, upnp_check_s, portmap_protocols, NULL, NULL,
				 CLI_NC_MAP);
	}
	if (strcmp(cmd, "netcheck") == 0) {
		if (!have_broker) {
			fprintf(stderr, "natpeer: netcheck needs --broker IP[:PORT]\n");
			return 2;
		}
		/* The key pair, for the broker's probe of a UPnP mapping (asked
		 * over the sealed channel); netcheck runs without it too. */
		if (o.upnp && identity("netcheck", key_path, known_path, &ao) >= 0)
			ao.has_key = false; /* no probe, as before */
		return run_agent(&ao, &o, have_timeout, no_relay, upnp_check_s, portmap_protocols, NULL, NULL,
				 CLI_NC_NETCHECK);
	}
	if (strcmp(cmd, "key") == 0 || strcmp(cmd, "forget") == 0 || strcmp(cmd, "listen") == 0 ||
	    strcmp(cmd, "connect") == 0 || strcmp(cmd, "peers") == 0 || strcmp(cmd, "matrix") == 0) {
		int rc = identity(cmd, key_path, known_path, &ao);
		if (rc >= 0)
			return rc;
	}
	if (strcmp(cmd, "forget") == 0)
		return forget(peer, ao.known_path);
	if (strcmp(cmd, "key") == 0) {
		char text[NATPEER_KEY_TEXT_LEN + 1];
		natpeer_key_to_text(ao.pub, text);
		printf("%s\n", text);
		return 0;
	}
	if (strcmp(cmd, "listen") == 0)
		ao.cmd = CLI_LISTEN;
	else if (strcmp(cmd, "connect") == 0)
		ao.cmd = CLI_CONNECT;
	else if (strcmp(cmd, "peers") == 0)
		ao.cmd = CLI_PEERS;
	else if (strcmp(cmd, "matrix") == 0)
		ao.cmd = CLI_MATRIX;
	else {
		fprintf(stderr, "natpeer: unknown command '%s' (see --help)\n", cmd);
		return 2;
	}
	if (!have_broker) {
		fprintf(stderr, "natpeer: %s needs --broker IP[:PORT]\n", cmd);
		return 2;
	}
	ao.json = o.json;
	if (ao.cmd != CLI_PEERS && ao.cmd != CLI_MATRIX) {
		if (id == NULL || !valid_id(id)) {
			fprintf(stderr, "natpeer: %s needs --id NAME: 1-32 of A-Z a-z 0-9 . _ -\n", cmd);
			return 2;
		}
		snprintf(ao.id, sizeof(ao.id), "%s", id);
	}
	if (ao.cmd == CLI_CONNECT) {
		if (peer == NULL || !valid_id(peer)) {
			fprintf(stderr, "natpeer: connect needs the PEER to reach: 1-32 of A-Z a-z 0-9 . _ -\n");
			return 2;
		}
		if (strcmp(peer, id) == 0) {
			fprintf(stderr, "natpeer: connect: PEER is this peer's own --id\n");
			return 2;
		}
		snprintf(ao.peer, sizeof(ao.peer), "%s", peer);
	} else if (peer != NULL) {
		fprintf(stderr, "natpeer: unexpected argument '%s' (see --help)\n", peer);
		return 2;
	}
	if (ao.n_allow > 0 && ao.cmd != CLI_LISTEN) {
		fprintf(stderr, "natpeer: --allow is for listen\n");
		return 2;
	}
	if (ao.n_expose > 0 && ao.cmd != CLI_LISTEN) {
		fprintf(stderr, "natpeer: --expose is for listen (connect forwards with --forward)\n");
		return 2;
	}
	if (ao.n_forward > 0 && ao.cmd != CLI_CONNECT) {
		fprintf(stderr, "natpeer: --forward is for connect (listen exposes with --expose)\n");
		return 2;
	}
	if (ao.has_peer_key && ao.cmd != CLI_CONNECT) {
		fprintf(stderr, "natpeer: --peer-key is for connect\n");
		return 2;
	}
	if (admin != NULL) {
		size_t n = strlen(admin);
		bool ok = n >= 1 && n <= NATPEER_TOKEN_MAX;
		for (size_t i = 0; ok && i < n; i++)
			ok = admin[i] >= 0x20 && admin[i] <= 0x7e;
		if (!ok) {
			fprintf(stderr, "natpeer: --admin-token: expected 1-%d printable ASCII characters\n",
				NATPEER_TOKEN_MAX);
			return 2;
		}
	}
	if (token != NULL) {
		size_t n = strlen(token);
		bool ok = n >= 1 && n <= NATPEER_TOKEN_MAX;
		for (size_t i = 0; ok && i < n; i++)
			ok = token[i] >= 0x20 && token[i] <= 0x7e;
		if (!ok) {
			fprintf(stderr, "natpeer: --token: expected 1-%d printable ASCII characters\n",
				NATPEER_TOKEN_MAX);
			return 2;
		}
	}
	/* A closed stdout reader must not kill us with SIGPIPE: writes fail instead. */
	signal(SIGPIPE, SIG_IGN);
	return run_agent(&ao, &o, have_timeout, no_relay, upnp_check_s, portmap_protocols, token, admin,
			 CLI_NC_NONE);
}
