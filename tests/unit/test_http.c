/* tests/unit/test_http.c - peer/portmap/http_run.c against the strict fake IGD
 * (tests/lab/fake_igd.py) on 127.0.0.1: a GET and its local address, SOAP
 * POSTs with the exact headers soap.h describes (and an unquoted SOAPAction
 * the strict server refuses), a server that never answers, endless and huge
 * bodies, cancel, close with requests in flight, and refused arguments.
 *
 * The group setup starts one fake IGD per behaviour as child processes
 * (python3 from PATH; each picks a free port and prints "ready http=IP:PORT"
 * once bound) and the group teardown kills them by PID, even after a failed
 * test. Time limits are generous: under valgrind everything is ~20x slower. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "common/addr.h"
#include "peer/portmap/http_run.h"
#include "peer/portmap/soap.h"

#ifndef NB_FAKE_IGD
#error "NB_FAKE_IGD (the path of tests/lab/fake_igd.py) must be defined"
#endif

/* ---- the fake IGD children ------------------------------------------------ */

enum igd_kind { IGD_NORMAL = 0, IGD_HANG, IGD_ENDLESS, IGD_HUGE, IGD_COUNT };

static const char *const igd_flag[IGD_COUNT] = {NULL, "--hang", "--endless", "--huge"};

struct igd {
	pid_t pid;
	uint16_t port;
	char log[256];
};

static struct igd igds[IGD_COUNT];
static char tmpdir[] = "/tmp/test_http.XXXXXX";
static bool have_tmpdir;

#define READY_MS 30000 /* python start-up, under a loaded machine */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Start one fake IGD and wait for its "ready http=127.0.0.1:PORT" line. */
static int igd_start(struct igd *g, const char *flag)
{
	int fds[2];
	char line[256];
	size_t len = 0;
	uint64_t end = now_ms() + READY_MS;
	const char *argv[12];
	int n = 0;

	snprintf(g->log, sizeof(g->log), "%s/igd-%s.log", tmpdir, flag ? flag + 2 : "normal");
	argv[n++] = "python3";
	argv[n++] = NB_FAKE_IGD;
	argv[n++] = "--http";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--external-ip";
	argv[n++] = "203.0.113.109";
	argv[n++] = "--log";
	argv[n++] = g->log;
	if (flag != NULL)
		argv[n++] = flag;
	argv[n] = NULL;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	g->pid = fork();
	if (g->pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (g->pid == 0) {
		dup2(fds[1], STDOUT_FILENO); /* dup2 clears O_CLOEXEC on the copy */
		execvp("python3", (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	while (len < sizeof(line) - 1) {
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		uint64_t t = now_ms();
		ssize_t r;

		if (t >= end || poll(&p, 1, (int)(end - t)) <= 0)
			break;
		r = read(fds[0], line + len, sizeof(line) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		line[len] = '\0';
		if (strchr(line, '\n') != NULL)
			break;
	}
	close(fds[0]);
	line[len] = '\0';
	{
		const char *p = strstr(line, "ready http=127.0.0.1:");
		char *endp;
		unsigned long port;

		if (p == NULL) {
			fprintf(stderr, "fake IGD %s did not get ready: '%s'\n", flag ? flag : "", line);
			return -1;
		}
		errno = 0;
		port = strtoul(p + strlen("ready http=127.0.0.1:"), &endp, 10);
		if (errno != 0 || port == 0 || port > 65535 || (*endp != '\n' && *endp != ' '))
			return -1;
		g->port = (uint16_t)port;
	}
	return 0;
}

static void igd_stop(struct igd *g)
{
	int st;

	if (g->pid <= 0)
		return;
	kill(g->pid, SIGTERM);
	/* Wait for the exit itself (a pidfd becomes readable), at most 5 s. */
	int pfd = (int)syscall(SYS_pidfd_open, g->pid, 0);
	struct pollfd p = { .fd = pfd, .events = POLLIN };
	if (pfd < 0 || poll(&p, 1, 5000) != 1)
		kill(g->pid, SIGKILL);
	if (pfd >= 0)
		close(pfd);
	waitpid(g->pid, &st, 0);
	g->pid = 0;
	unlink(g->log);
}

static int group_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < IGD_COUNT; i++)
		igd_stop(&igds[i]);
	if (have_tmpdir)
		rmdir(tmpdir);
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	/* A proxy in the environment must change nothing (NOPROXY "*"). */
	setenv("http_proxy", "http://127.0.0.1:9", 1);
	setenv("HTTP_PROXY", "http://127.0.0.1:9", 1);
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	have_tmpdir = true;
	for (int i = 0; i < IGD_COUNT; i++) {
		if (igd_start(&igds[i], igd_flag[i]) != 0) {
			group_teardown(NULL);
			return -1;
		}
	}
	return 0;
}

/* Has the fake IGD logged a line containing both needles? It logs each
 * request before it sends the answer, so once the client has its result
 * the line is there: one read, no waiting. */
static bool log_has(const struct igd *g, const char *a, const char *b)
{
	char buf[4096];
	bool found = false;
	FILE *f = fopen(g->log, "r");

	if (f == NULL)
		return false;
	while (!found && fgets(buf, sizeof(buf), f) != NULL)
		found = strstr(buf, a) != NULL && (b == NULL || strstr(buf, b) != NULL);
	fclose(f);
	return found;
}

/* ---- the client under test ------------------------------------------------ */

#define MAX_RESULTS 16

struct result {
	uint32_t id;
	int status;
	uint8_t *body;
	size_t len;
	bool truncated;
	struct nb_addr local;
	char err[256];
	bool has_err;
	uint64_t at;
};

struct fx {
	uv_loop_t loop;
	struct nb_http *h;
	struct result res[MAX_RESULTS];
	int n_res;
	int closed_calls;
	bool closed_flag;
	/* what the done callback does */
	uint32_t chain_id;      /* non-zero: start this request from the callback (once) */
	struct nb_http_request chain_req;
	bool close_in_done;     /* close the client from the first callback */
	uv_timer_t guard;
	bool expired;
};

static void on_done(uint32_t id, int status, const uint8_t *body, size_t len, bool truncated,
		    const struct nb_addr *local, const char *err, void *arg)
{
	struct fx *f = arg;
	struct result *r;

	if (f->n_res >= MAX_RESULTS)
		return;
	r = &f->res[f->n_res++];
	r->id = id;
	r->status = status;
	r->len = len;
	r->truncated = truncated;
	r->at = now_ms();
	r->body = malloc(len + 1);
	if (r->body != NULL) {
		if (len > 0)
			memcpy(r->body, body, len);
		r->body[len] = '\0';
	}
	if (local != NULL)
		r->local = *local;
	r->has_err = err != NULL;
	snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
	if (f->chain_id != 0) {
		struct nb_http_request q = f->chain_req;
		q.id = f->chain_id;
		f->chain_id = 0;
		nb_http_start(f->h, &q);
	}
	if (f->close_in_done) {
		f->close_in_done = false;
		nb_http_close(f->h, NULL, NULL);
		f->h = NULL;
	}
}

static void on_closed(void *arg)
{
	struct fx *f = arg;

	f->closed_calls++;
	f->closed_flag = true;
}

static void on_guard(uv_timer_t *t)
{
	struct fx *f = t->data;
	f->expired = true;
}

/* Run the loop until *flag or cond(f) holds, or ms pass. */
static void run_until(struct fx *f, bool (*cond)(struct fx *), uint32_t ms)
{
	f->expired = false;
	uv_timer_start(&f->guard, on_guard, ms, 0);
	while (!f->expired && !(cond != NULL && cond(f)))
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->guard);
}

static int n_wanted;
static bool have_n(struct fx *f)
{
	return f->n_res >= n_wanted;
}
static bool is_closed(struct fx *f)
{
	return f->closed_flag;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL || uv_loop_init(&f->loop) != 0)
		return -1;
	uv_timer_init(&f->loop, &f->guard);
	f->guard.data = f;
	if (nb_http_open(&f->h, &f->loop, on_done, f) != 0)
		return -1;
	*state = f;
	return 0;
}

static void free_results(struct fx *f)
{
	for (int i = 0; i < f->n_res; i++)
		free(f->res[i].body);
	f->n_res = 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	int rc;

	if (f->h != NULL) {
		nb_http_close(f->h, on_closed, f);
		f->h = NULL;
	}
	uv_close((uv_handle_t *)&f->guard, NULL);
	/* Everything closes from close callbacks; then the loop has no handles
	 * left and uv_run returns (a handle left open would hang: ctest's
	 * timeout reports it). */
	uv_run(&f->loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(&f->loop);
	free_results(f);
	free(f);
	return rc == 0 ? 0 : -1;
}

/* A URL in one of 8 rotating buffers (a test holds a few at once). */
static const char *url(enum igd_kind k, const char *path)
{
	static char buf[8][128];
	static unsigned next;
	char *b = buf[next++ % 8];

	snprintf(b, sizeof(buf[0]), "http://127.0.0.1:%u%s", igds[k].port, path);
	return b;
}

static struct nb_http_request get_req(uint32_t id, const char *u, size_t max, uint32_t timeout_ms)
{
	struct nb_http_request q;

	memset(&q, 0, sizeof(q));
	q.id = id;
	q.url = u;
	q.max_response = max;
	q.timeout_ms = timeout_ms;
	return q;
}

/* ---- SOAP by hand, with the exact headers of peer/portmap/soap.h -------------------- */

#define SVC "urn:schemas-upnp-org:service:WANIPConnection:2"

static const char *const soap_hdr_ok[] = {
	"SOAPAction: \"" SVC "#GetExternalIPAddress\"",
	"Content-Type: text/xml; charset=\"utf-8\"",
	"Expect:",
	NULL,
};
static const char *const soap_hdr_unquoted[] = {
	"SOAPAction: " SVC "#GetExternalIPAddress",
	"Content-Type: text/xml; charset=\"utf-8\"",
	"Expect:",
	NULL,
};
static const char soap_getip[] =
	"<?xml version=\"1.0\"?>\r\n"
	"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
	"s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>"
	"<u:GetExternalIPAddress xmlns:u=\"" SVC "\"></u:GetExternalIPAddress></s:Body></s:Envelope>\r\n";

static const char *const soap_hdr_add[] = {
	"SOAPAction: \"" SVC "#AddPortMapping\"",
	"Content-Type: text/xml; charset=\"utf-8\"",
	"Expect:",
	NULL,
};

/* An AddPortMapping whose description pads the body past 1 KiB, where
 * some curl versions start sending "Expect: 100-continue". */
static size_t soap_add(char *buf, size_t cap)
{
	char desc[1201];
	int n;

	memset(desc, 'x', sizeof(desc) - 1);
	desc[sizeof(desc) - 1] = '\0';
	n = snprintf(buf, cap,
		     "<?xml version=\"1.0\"?>\r\n"
		     "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
		     "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>"
		     "<u:AddPortMapping xmlns:u=\"" SVC "\"><NewRemoteHost></NewRemoteHost>"
		     "<NewExternalPort>40001</NewExternalPort><NewProtocol>UDP</NewProtocol>"
		     "<NewInternalPort>40001</NewInternalPort><NewInternalClient>127.0.0.1</NewInternalClient>"
		     "<NewEnabled>1</NewEnabled><NewPortMappingDescription>natpeer &lt;test&gt; %s"
		     "</NewPortMappingDescription><NewLeaseDuration>3600</NewLeaseDuration>"
		     "</u:AddPortMapping></s:Body></s:Envelope>\r\n",
		     desc);
	assert_true(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

static struct nb_http_request post_req(uint32_t id, const char *const *hdr, const char *body, size_t len)
{
	struct nb_http_request q = get_req(id, url(IGD_NORMAL, "/ctl/IPConn"), 16 * 1024, 10000);

	q.post = true;
	q.body = (const uint8_t *)body;
	q.body_len = len;
	q.headers = hdr;
	return q;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_get_description(void **state)
{
	struct fx *f = *state;
	struct nb_http_request q = get_req(7, url(IGD_NORMAL, "/rootDesc.xml"), 64 * 1024, 10000);
	char ip[NB_ADDR_STRLEN], needle[64];

	assert_int_equal(nb_http_start(f->h, &q), 0);
	assert_int_equal(f->n_res, 0); /* never from inside start */
	n_wanted = 1;
	run_until(f, have_n, 20000);
	assert_int_equal(f->n_res, 1);
	assert_int_equal(f->res[0].id, 7);
	assert_int_equal(f->res[0].status, 200);
	assert_false(f->res[0].truncated);
	assert_false(f->res[0].has_err);
	assert_non_null(strstr((char *)f->res[0].body, "urn:schemas-upnp-org:device:InternetGatewayDevice:2"));
	assert_non_null(strstr((char *)f->res[0].body, "<controlURL>/ctl/IPConn</controlURL>"));
	/* The local address is the connection's: 127.0.0.1 and the port the
	 * server saw the request come from. */
	assert_int_equal(f->res[0].local.family, NB_AF_INET);
	assert_string_equal(nb_addr_format_ip(&f->res[0].local, ip, sizeof(ip)), "127.0.0.1");
	assert_true(f->res[0].local.port != 0);
	snprintf(needle, sizeof(needle), "\"peer\": \"127.0.0.1:%u\"", f->res[0].local.port);
	assert_true(log_has(&igds[IGD_NORMAL], needle, "\"path\": \"/rootDesc.xml\""));
}

static void test_get_404(void **state)
{
	struct fx *f = *state;
	struct nb_http_request q = get_req(8, url(IGD_NORMAL, "/nothing.xml"), 1024, 10000);

	assert_int_equal(nb_http_start(f->h, &q), 0);
	n_wanted = 1;
	run_until(f, have_n, 20000);
	assert_int_equal(f->n_res, 1);
	assert_int_equal(f->res[0].status, 404);
	assert_false(f->res[0].truncated);
	assert_false(f->res[0].has_err); /* an HTTP error status is a result, not a failure */
}

static void test_soap_strict_ok(void **state)
{
	struct fx *f = *state;
	char add[4096], needle[64];
	size_t add_len = soap_add(add, sizeof(add));
	struct nb_http_request q1 = post_req(1, soap_hdr_ok, soap_getip, strlen(soap_getip));
	struct nb_http_request q2 = post_req(2, soap_hdr_add, add, add_len);

	assert_int_equal(nb_http_start(f->h, &q1), 0);
	assert_int_equal(nb_http_start(f->h, &q2), 0);
	n_wanted = 2;
	run_until(f, have_n, 20000);
	assert_int_equal(f->n_res, 2);
	for (int i = 0; i < 2; i++) {
		struct result *r = &f->res[i];
		if (r->status != 200)
			fprintf(stderr, "request %u: status %d err '%s' body '%s'\n", r->id, r->status, r->err,
				r->body ? (char *)r->body : "");
		assert_int_equal(r->status, 200);
		assert_false(r->truncated);
		if (r->id == 1)
			assert_non_null(strstr((char *)r->body,
					       "<NewExternalIPAddress>203.0.113.109</NewExternalIPAddress>"));
		else
			assert_non_null(strstr((char *)r->body, "AddPortMappingResponse"));
	}
	/* The server saw the body as sent (Content-Length, the escaped value)
	 * and no Expect header. */
	snprintf(needle, sizeof(needle), "\"content-length\": \"%zu\"", add_len);
	assert_true(log_has(&igds[IGD_NORMAL], "\"action\": \"AddPortMapping\"", needle));
	assert_true(log_has(&igds[IGD_NORMAL], "\"NewPortMappingDescription\": \"natpeer <test> xxx", NULL));
	assert_false(log_has(&igds[IGD_NORMAL], "\"expect\":", NULL));
}

static void test_soap_unquoted_refused(void **state)
{
	struct fx *f = *state;
	struct nb_http_request q = post_req(3, soap_hdr_unquoted, soap_getip, strlen(soap_getip));

	assert_int_equal(nb_http_start(f->h, &q), 0);
	n_wanted = 1;
	run_until(f, have_n, 20000);
	assert_int_equal(f->n_res, 1);
	assert_int_equal(f->res[0].status, 500);
	assert_false(f->res[0].has_err);
	assert_non_null(strstr((char *)f->res[0].body, "<errorCode>401</errorCode>"));
	assert_true(log_has(&igds[IGD_NORMAL], "is not in double quotes", NULL));
}

/* One call built by peer/portmap/soap.c, sent, answered and parsed. */
static void soap_call(struct fx *f, enum nb_soap_action a, const struct nb_soap_args *args,
		      struct nb_soap_response *resp)
{
	struct nb_soap_request sr;
	const char *hdr[NB_SOAP_HEADERS + 1];
	const char *why = NULL;
	struct result *r;

	assert_int_equal(nb_soap_build(a, SVC, args, &sr), 0);
	for (int i = 0; i < NB_SOAP_HEADERS; i++)
		hdr[i] = sr.headers[i];
	hdr[NB_SOAP_HEADERS] = NULL;
	{
		struct nb_http_request q = post_req(100 + (uint32_t)a, hdr, sr.body, sr.body_len);
		assert_int_equal(nb_http_start(f->h, &q), 0);
	}
	n_wanted = f->n_res + 1;
	run_until(f, have_n, 20000);
	assert_int_equal(f->n_res, n_wanted);
	r = &f->res[f->n_res - 1];
	if (nb_soap_parse(a, r->status, r->body, r->len, resp, &why) != 0)
		fail_msg("%s: status %d, not a SOAP answer (%s): %s", nb_soap_action_name(a), r->status,
			 why ? why : "?", r->body ? (char *)r->body : "");
}

/* What peer/portmap/soap.c builds passes every strict check of the fake IGD, through
 * this client: the four calls of a mapping's life, the description escaped. */
static void test_soap_build_passes_strict(void **state)
{
	struct fx *f = *state;
	struct nb_soap_args args;
	struct nb_soap_response resp;

	memset(&args, 0, sizeof(args));
	args.external_port = 40002;
	args.internal_port = 40002;
	args.lease_s = 3600;
	snprintf(args.internal_client, sizeof(args.internal_client), "127.0.0.1");
	snprintf(args.description, sizeof(args.description), "natpeer <&> \"test\"");

	soap_call(f, NB_SOAP_GET_EXTERNAL_IP, NULL, &resp);
	assert_false(resp.fault);
	assert_string_equal(resp.external_ip, "203.0.113.109");
	soap_call(f, NB_SOAP_ADD_PORT_MAPPING, &args, &resp);
	assert_false(resp.fault);
	soap_call(f, NB_SOAP_GET_SPECIFIC_ENTRY, &args, &resp);
	assert_false(resp.fault);
	assert_int_equal(resp.internal_port, 40002);
	assert_string_equal(resp.internal_client, "127.0.0.1");
	soap_call(f, NB_SOAP_DELETE_PORT_MAPPING, &args, &resp);
	assert_false(resp.fault);
	soap_call(f, NB_SOAP_GET_SPECIFIC_ENTRY, &args, &resp);
	assert_true(resp.fault);
	assert_int_equal(resp.code, 714);
	assert_true(log_has(&igds[IGD_NORMAL], "\"NewPortMappingDescription\": \"natpeer <&> \\\"test\\\"\"", NULL));
}

static void test_hang_times_out(void **state)
{
	struct fx *f = *state;
	struct nb_http_request q = get_req(4, url(IGD_HANG, "/rootDesc.xml"), 64 * 1024, 1500);
	uint64_t t0 = now_ms();

	assert_int_equal(nb_http_start(f->h, &q), 0);
	n_wanted = 1;
	run_until(f, have_n, 20000);
	assert_int_equal(f->n_res, 1);
	assert_int_equal(f->res[0].status, 0);
	assert_true(f->res[0].has_err);
	assert_false(f->res[0].truncated);
	/* Not before the timeout; after it by at most the slack valgrind needs. */
	assert_true(f->res[0].at - t0 >= 1450);
	assert_true(f->res[0].at - t0 <= 1500 + 5000);
	assert_non_null(strstr(f->res[0].err, "imed out"));
}

static void check_truncated(struct fx *f, enum igd_kind k)
{
	const size_t cap = 16 * 1024;
	struct nb_http_request q = get_req(5, url(k, "/rootDesc.xml"), cap, 30000);
	uint64_t t0 = now_ms();
	char want[64];

	assert_int_equal(nb_http_start(f->h, &q), 0);
	n_wanted = 1;
	run_until(f, have_n, 30000);
	assert_int_equal(f->n_res, 1);
	assert_true(f->res[0].truncated);
	assert_int_equal(f->res[0].len, cap); /* exactly the cap: memory is bounded by it */
	assert_int_equal(f->res[0].status, 200);
	assert_true(f->res[0].has_err);
	snprintf(want, sizeof(want), "response larger than %zu bytes", cap);
	assert_string_equal(f->res[0].err, want);
	assert_true(f->res[0].at - t0 < 10000); /* at once, not at the timeout */
}

static void test_endless_truncated(void **state)
{
	check_truncated(*state, IGD_ENDLESS);
}

static void test_huge_truncated(void **state)
{
	check_truncated(*state, IGD_HUGE);
}

static void test_cancel_no_callback(void **state)
{
	struct fx *f = *state;
	struct nb_http_request q1 = get_req(10, url(IGD_HANG, "/rootDesc.xml"), 1024, 1000);
	struct nb_http_request q2 = get_req(11, url(IGD_NORMAL, "/rootDesc.xml"), 64 * 1024, 10000);
	struct nb_http_request q3 = get_req(12, url(IGD_ENDLESS, "/rootDesc.xml"), 1024, 10000);

	/* Cancelled once connected and waiting... */
	assert_int_equal(nb_http_start(f->h, &q1), 0);
	run_until(f, NULL, 300);
	nb_http_cancel(f->h, 10);
	/* ...and before the loop ever ran it. */
	assert_int_equal(nb_http_start(f->h, &q2), 0);
	nb_http_cancel(f->h, 11);
	nb_http_cancel(f->h, 999); /* unknown: no-op */
	/* Past q1's own timeout: still nothing. */
	run_until(f, NULL, 2000);
	assert_int_equal(f->n_res, 0);
	/* The slots are free again and the ids reusable. */
	q2.id = 10;
	assert_int_equal(nb_http_start(f->h, &q2), 0);
	assert_int_equal(nb_http_start(f->h, &q3), 0);
	n_wanted = 2;
	run_until(f, have_n, 20000);
	assert_int_equal(f->n_res, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(f->res[i].status, 200);
		assert_true(f->res[i].id == 10 ? !f->res[i].truncated : f->res[i].truncated);
	}
}

static void test_close_in_flight(void **state)
{
	struct fx *f = *state;
	struct nb_http_request q[NB_HTTP_MAX_REQUESTS + 1];
	char add[4096];
	size_t add_len = soap_add(add, sizeof(add));

	q[0] = get_req(20, url(IGD_HANG, "/rootDesc.xml"), 1024, 10000);
	q[1] = get_req(21, url(IGD_ENDLESS, "/rootDesc.xml"), 1024 * 1024, 10000);
	q[2] = get_req(22, url(IGD_HUGE, "/rootDesc.xml"), 1024 * 1024, 10000);
	q[3] = post_req(23, soap_hdr_add, add, add_len);
	q[4] = get_req(24, url(IGD_NORMAL, "/rootDesc.xml"), 1024, 10000);
	for (int i = 0; i < NB_HTTP_MAX_REQUESTS; i++)
		assert_int_equal(nb_http_start(f->h, &q[i]), 0);
	assert_int_equal(nb_http_start(f->h, &q[NB_HTTP_MAX_REQUESTS]), -EBUSY);
	run_until(f, NULL, 50); /* connections open, bodies arriving */
	free_results(f); /* the POST may have finished; nothing after close counts */
	nb_http_close(f->h, on_closed, f);
	f->h = NULL;
	assert_false(f->closed_flag); /* from the loop, not from close */
	run_until(f, is_closed, 10000);
	assert_int_equal(f->closed_calls, 1);
	assert_int_equal(f->n_res, 0);
	/* Nothing of the client is left on the loop (teardown's uv_loop_close
	 * checks it; ASan/valgrind check the memory). */
	run_until(f, NULL, 100);
	assert_int_equal(f->n_res, 0);
	assert_int_equal(f->closed_calls, 1);
}

static void test_close_from_done(void **state)
{
	struct fx *f = *state;
	struct nb_http_request q1 = get_req(30, url(IGD_NORMAL, "/rootDesc.xml"), 64 * 1024, 10000);
	struct nb_http_request q2 = get_req(31, url(IGD_HANG, "/rootDesc.xml"), 1024, 30000);

	f->close_in_done = true;
	assert_int_equal(nb_http_start(f->h, &q2), 0);
	assert_int_equal(nb_http_start(f->h, &q1), 0);
	n_wanted = 1;
	run_until(f, have_n, 20000);
	run_until(f, NULL, 300); /* q2 was in flight: nothing more */
	assert_int_equal(f->n_res, 1);
	assert_int_equal(f->res[0].id, 30);
	assert_null(f->h);
}

static void test_start_from_done(void **state)
{
	struct fx *f = *state;
	struct nb_http_request q = get_req(40, url(IGD_NORMAL, "/rootDesc.xml"), 64 * 1024, 10000);

	f->chain_req = get_req(0, url(IGD_NORMAL, "/WANIPCn.xml"), 64 * 1024, 10000);
	f->chain_id = 41;
	assert_int_equal(nb_http_start(f->h, &q), 0);
	n_wanted = 2;
	run_until(f, have_n, 20000);
	assert_int_equal(f->n_res, 2);
	assert_int_equal(f->res[1].id, 41);
	assert_int_equal(f->res[1].status, 200);
	assert_non_null(strstr((char *)f->res[1].body, "<scpd"));
}

static void test_connect_refused(void **state)
{
	struct fx *f = *state;
	struct nb_http_request q = get_req(50, "http://127.0.0.1:1/rootDesc.xml", 1024, 5000);

	assert_int_equal(nb_http_start(f->h, &q), 0);
	n_wanted = 1;
	run_until(f, have_n, 20000);
	assert_int_equal(f->n_res, 1);
	assert_int_equal(f->res[0].status, 0);
	assert_true(f->res[0].has_err);
	assert_true(f->res[0].err[0] != '\0');
}

static void test_bad_arguments(void **state)
{
	struct fx *f = *state;
	static const char *const crlf[] = {"X-A: 1\r\nX-B: 2", NULL};
	struct nb_http_request q = get_req(60, url(IGD_HANG, "/rootDesc.xml"), 1024, 1000);
	struct nb_http_request b;

	b = q, b.url = NULL;
	assert_int_equal(nb_http_start(f->h, &b), -EINVAL);
	b = q, b.max_response = 0;
	assert_int_equal(nb_http_start(f->h, &b), -EINVAL);
	b = q, b.timeout_ms = 0;
	assert_int_equal(nb_http_start(f->h, &b), -EINVAL);
	b = q, b.headers = crlf;
	assert_int_equal(nb_http_start(f->h, &b), -EINVAL);
	b = q, b.post = true, b.body = NULL, b.body_len = 3;
	assert_int_equal(nb_http_start(f->h, &b), -EINVAL);
	assert_int_equal(nb_http_start(f->h, &q), 0);
	assert_int_equal(nb_http_start(f->h, &q), -EINVAL); /* id in flight */
	nb_http_cancel(f->h, 60);
	/* A failed start never calls back. */
	run_until(f, NULL, 100);
	assert_int_equal(f->n_res, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_description, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_404, setup, teardown),
		cmocka_unit_test_setup_teardown(test_soap_strict_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_soap_unquoted_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_soap_build_passes_strict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hang_times_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_endless_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_no_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_from_done, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_from_done, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
