/* peer/cli_run.h - natpeer(1)'s listen, connect, peers, matrix, netcheck and
 * map: a client of libnatpeer (natpeer.h) that owns the loop, the signals,
 * stdin/stdout and port forwarding.
 *
 * The pipe's datagrams carry a kind byte in front (peer/fwd.h): a CLI
 * convention on top of the library's raw datagrams, which the library
 * neither adds nor reads:
 *
 *   +------+---------------------------+
 *   | kind | body                      |   0x00 a pipe line (stdin/stdout)
 *   +------+---------------------------+   0x01 forwarded UDP (peer/fwd_run.h)
 *     1 B    0..1170 B                      0x02 TCP transport (reserved)
 *
 * Events go to stdout (one line each, JSON with --json), the library's log
 * lines to stderr, unchanged.
 */
#ifndef NB_PEER_CLI_RUN_H
#define NB_PEER_CLI_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <cjson/cJSON.h>

#include "natpeer.h"
#include "peer/fwd.h"
#include "peer/fwd_run.h"

enum cli_cmd {
	CLI_LISTEN = 0,
	CLI_CONNECT,
	CLI_PEERS,
	CLI_MATRIX,
};

struct cli_opts {
	enum cli_cmd cmd;
	natpeer_config *cfg;     /* everything but the callbacks (cli_run sets them) */
	bool json;
	const char *peer;        /* connect */
	bool has_peer_key;
	uint8_t peer_key[NATPEER_KEY_LEN];
	const struct nb_fwd_spec *expose; /* listen --expose */
	size_t n_expose;
	const struct nb_fwd_spec *forward; /* connect --forward */
	size_t n_forward;
};

#define CLI_IN_BUF 65536
/* A stdin line: one pipe payload (NB_FWD_MAX_LINE), or with --json one
 * {"peer":..,"data":BASE64} object carrying one (4/3 of it, and room). */
#define CLI_LINE_MAX 2048
#define CLI_OUT_MAX (1u << 20)  /* stdout bytes queued before lines are dropped */

struct cli_out_chunk {
	struct cli_out_chunk *next;
	size_t len, off;
	char data[];
};

/* What the CLI knows of each channel (from `connected` to `closed`). */
struct cli_chan {
	bool up, confirmed;
	char peer[NATPEER_ID_MAX + 1];
	char key[NATPEER_KEY_TEXT_LEN + 1];
};

struct cli {
	const struct cli_opts *o;
	uv_loop_t loop;
	natpeer *np;
	struct cli_chan ch[NATPEER_MAX_CHANNELS];
	bool event_printed; /* connect: the one event line is out */
	bool ending;        /* natpeer_finish() asked */
	bool stopped;       /* the library stopped */
	int exit_code;
	uv_signal_t sigint, sigterm;
	uv_timer_t watchdog;
	/* Port forwarding (NULL: no --expose / --forward). */
	struct nb_fwd_run *fwd;
	uint64_t kinds_dropped;  /* payloads of a kind we do not know */
	bool said_no_expose;

	/* stdin */
	int in_kind; /* 0 not started, 1 stream, 2 file, 3 none */
	union {
		uv_handle_t h;
		uv_stream_t s;
		uv_tty_t tty;
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} in_h;
	bool in_handle_init, in_eof, in_fs_busy;
	uv_fs_t in_req;
	char in_buf[CLI_IN_BUF];
	uint8_t line[CLI_LINE_MAX];
	size_t line_len;
	bool line_overlong;
	uint64_t lines_dropped;

	/* stdout: a chain of uv_fs_write, one at a time, in order */
	struct cli_out_chunk *out_head, *out_tail;
	size_t out_pending;
	bool out_busy, out_broken;
	uint64_t out_dropped;
	uv_fs_t out_req;
};

/* Runs the command to completion on a loop of its own. Returns the exit status. */
int cli_run(const struct cli_opts *o);

/* cli_pipe_run.c: stdout (queued, written by the thread pool) and stdin. */
void cli_out_write(struct cli *c, const void *data, size_t len);
void cli_out_text(struct cli *c, const char *text);
void cli_out_json(struct cli *c, cJSON *j); /* takes j */
void cli_in_start(struct cli *c);
void cli_in_close(struct cli *c);
/* called by the pipe when stdin ends */
void cli_on_stdin_eof(struct cli *c);

/* cli_events.c: the event lines, the listings, and pipe lines on stdout. */
void cli_print_connected(struct cli *c, const natpeer_conn_info *ci);
void cli_print_failed(struct cli *c, const char *peer, const char *reason);
void cli_print_lost(struct cli *c, const char *peer, const char *remote);
void cli_print_peers(struct cli *c, const natpeer_peer_info *rows, size_t n);
void cli_print_matrix(struct cli *c, const natpeer_pair_info *rows, size_t n);
void cli_deliver(struct cli *c, uint32_t channel, const uint8_t *p, size_t n);

/* cli_netcheck_run.c: netcheck and map (natpeer_netcheck, natpeer_map) on
 * a loop of their own, their report and events printed as they always
 * were (text, or JSON with --json; progress on stderr). */
enum cli_nc {
	CLI_NC_NONE = 0,
	CLI_NC_NETCHECK,
	CLI_NC_MAP,
};

struct cli_nc_opts {
	enum cli_nc what;
	natpeer_config *cfg;     /* everything but the callbacks */
	bool json;
	uint32_t timeout_ms;
	bool map_tcp;            /* map */
	uint16_t map_port, map_external;
	uint32_t map_lease_s;
};

/* Runs to the end (map: until SIGINT or SIGTERM). Returns the exit status:
 * 0, or 1 (no verdict, no mapping, a timeout). */
int cli_netcheck_run(const struct cli_nc_opts *o);

#endif
