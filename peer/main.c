/* peer/main.c - natpeer: the peer agent's command line. */
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
	fputs("usage: natpeer COMMAND --broker HOST[:PORT] [options]\n"
	      "\n"
	      "Peer agent of natbroker: learns its NAT's behaviour, registers with a\n"
	      "rendezvous broker and opens an authenticated UDP path to another peer.\n"
	      "\n"
	      "commands:\n"
	      "  netcheck            classify this host's NAT (RFC 5780) and print a report\n"
	      "  listen --id NAME    register and accept connections\n"
	      "  connect --id NAME PEER\n"
	      "                      register, ask the broker to connect to PEER, follow its plan\n"
	      "  peers               list the peers registered with the broker\n"
	      "\n"
	      "options:\n"
	      "  --broker HOST[:PORT]  the broker (port 3478 by default)\n"
	      "  --port N              local UDP port (random by default)\n"
	      "  --token T             registration token\n"
	      "  --json                one JSON object per event line\n"
	      "  --timeout S           give up after S seconds\n"
	      "  -h, --help            this text\n"
	      "  -V, --version         print the version\n",
	      f);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
			printf("natpeer %s\n", NB_VERSION);
			return 0;
		}
	}
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	/* The peer commands arrive with the rendezvous work (issue 5); until
	 * then say so plainly instead of pretending. */
	fprintf(stderr,
		"natpeer: '%s': this command is not available in this build yet "
		"(see 'natpeer --help')\n",
		argv[1]);
	return 2;
}
