/* peer/netcheck_run.c - the libuv shell around peer/netcheck. */
#include "peer/netcheck_run.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cjson/cJSON.h>

#include "common/time.h"
#include "common/udp.h"
#include "peer/netcheck.h"
#include "proto/ctrl.h"

struct run {
	uv_loop_t loop;
	struct nb_udp sock[2];
	bool finished;
	uv_timer_t timer;
	struct nb_netcheck nc;
	uint64_t hard_deadline;
	bool timed_out;
	int open_handles;
};

/* The local IP the kernel picks toward `server`: a connected UDP socket
 * sends nothing and only asks the routing table. */
int nb_local_ip_toward(const struct nb_addr *server, struct nb_addr *ret)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int salen = nb_addr_to_sockaddr(server, &ss);
	int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int rc = -errno;

	if (fd < 0)
		return rc;
	if (connect(fd, (struct sockaddr *)&ss, (socklen_t)salen) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	close(fd);
	return nb_addr_from_sockaddr((struct sockaddr *)&ss, ret);
}

static void pump(struct run *r);

static void on_timer(uv_timer_t *t)
{
	struct run *r = t->data;

	/* A deadline is about to decide "no answer": first take what has
	 * already arrived, which the loop would only poll after this timer. */
	for (int i = 0; i < 2 && !r->finished; i++)
		nb_udp_drain(&r->sock[i], 16);
	if (!r->finished)
		pump(r);
}

static void on_closed(uv_handle_t *h)
{
	struct run *r = h->data;
	r->open_handles--;
}

static void on_udp_closed(struct nb_udp *u)
{
	struct run *r = u->arg;
	r->open_handles--;
}

static void finish(struct run *r)
{
	r->finished = true;
	uv_timer_stop(&r->timer);
	for (int i = 0; i < 2; i++)
		nb_udp_close(&r->sock[i], on_udp_closed);
	uv_close((uv_handle_t *)&r->timer, on_closed);
}

static void pump(struct run *r)
{
	struct nb_netcheck_tx tx;
	uint64_t now = nb_now_ms();

	if (now >= r->hard_deadline) {
		r->timed_out = true;
		finish(r);
		return;
	}
	while (nb_netcheck_poll(&r->nc, now, &tx) == 1)
		nb_udp_send(&r->sock[tx.sock], tx.bytes, tx.len, &tx.to);
	if (nb_netcheck_done(&r->nc)) {
		finish(r);
		return;
	}
	uint64_t next = nb_netcheck_deadline(&r->nc);
	if (next > r->hard_deadline)
		next = r->hard_deadline;
	uv_timer_start(&r->timer, on_timer, next > now ? next - now : 0, 0);
}

static void on_recv(struct nb_udp *u, const uint8_t *data, size_t len, const struct nb_addr *from,
		    void *arg)
{
	struct run *r = arg;
	int sock = u == &r->sock[0] ? NB_NC_MAP : NB_NC_FILT;

	nb_netcheck_input(&r->nc, sock, data, len, from, nb_now_ms());
	pump(r);
}

static const char *word(const char *s)
{
	return s ? s : "unknown";
}

static void report(const struct nb_netcheck_opts *o, const struct nb_netcheck_result *res)
{
	char refl[NB_ADDR_STRLEN], local[NB_ADDR_STRLEN], srv[NB_ADDR_STRLEN];
	const char *mapping = word(nb_mapping_to_string(res->mapping));
	const char *filtering = word(nb_filtering_to_string(res->filtering));
	const char *nat = word(nb_nat_type_to_string(res->nat));
	const char *hairpin = res->hairpin < 0 ? "not tested" : res->hairpin ? "yes" : "no";

	nb_addr_format(&res->local, local, sizeof(local));
	nb_addr_format(&o->server, srv, sizeof(srv));
	if (res->reflexive.family != NB_AF_NONE)
		nb_addr_format(&res->reflexive, refl, sizeof(refl));
	else
		snprintf(refl, sizeof(refl), "none");

	if (o->json) {
		cJSON *j = cJSON_CreateObject(), *up = cJSON_CreateObject(), *loc = cJSON_CreateArray();
		char *text;

		cJSON_AddStringToObject(j, "server", srv);
		if (res->reflexive.family != NB_AF_NONE)
			cJSON_AddStringToObject(j, "reflexive", refl);
		else
			cJSON_AddNullToObject(j, "reflexive");
		cJSON_AddItemToArray(loc, cJSON_CreateString(local));
		cJSON_AddItemToObject(j, "local", loc);
		cJSON_AddStringToObject(j, "mapping", res->udp_blocked ? "none" : mapping);
		cJSON_AddStringToObject(j, "filtering", filtering);
		cJSON_AddStringToObject(j, "nat", nat);
		if (res->hairpin < 0)
			cJSON_AddNullToObject(j, "hairpin");
		else
			cJSON_AddBoolToObject(j, "hairpin", res->hairpin);
		cJSON_AddBoolToObject(j, "rfc5780", res->rfc5780);
		cJSON_AddStringToObject(up, "status", "disabled");
		cJSON_AddStringToObject(up, "reason", "this natpeer has no UPnP client yet");
		cJSON_AddItemToObject(j, "upnp", up);
		cJSON_AddNumberToObject(j, "ms", (double)res->ms);
		if (res->note[0])
			cJSON_AddStringToObject(j, "note", res->note);
		text = cJSON_PrintUnformatted(j);
		if (text != NULL)
			printf("%s\n", text);
		cJSON_free(text);
		cJSON_Delete(j);
		return;
	}
	printf("natpeer netcheck against %s\n", srv);
	printf("  UDP:        %s\n", res->udp_blocked ? "blocked (no answer)" : "yes");
	printf("  local:      %s\n", local);
	printf("  reflexive:  %s\n", refl);
	printf("  mapping:    %s\n", res->udp_blocked ? "none" : mapping);
	printf("  filtering:  %s\n", filtering);
	printf("  NAT:        %s\n", nat);
	printf("  hairpin:    %s\n", hairpin);
	printf("  RFC 5780:   %s\n", res->rfc5780 ? "yes (server has two addresses)" : "no");
	printf("  UPnP:       disabled (this natpeer has no UPnP client yet)\n");
	if (res->note[0])
		printf("  note:       %s\n", res->note);
	printf("  took:       %llu ms\n", (unsigned long long)res->ms);
}

int nb_netcheck_run(const struct nb_netcheck_opts *o)
{
	struct run r;
	struct nb_addr local, any;
	uint8_t seed[NB_STUN_TID_LEN];
	char srv[NB_ADDR_STRLEN];
	int rc;

	memset(&r, 0, sizeof(r));
	nb_addr_format(&o->server, srv, sizeof(srv));
	rc = nb_local_ip_toward(&o->server, &local);
	if (rc != 0) {
		fprintf(stderr, "natpeer: no route to %s: %s (check --broker and the network)\n", srv,
			strerror(-rc));
		return 1;
	}
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
		fprintf(stderr, "natpeer: getrandom failed: %s\n", strerror(errno));
		return 1;
	}
	uv_loop_init(&r.loop);
	memset(&any, 0, sizeof(any));
	any.family = o->server.family;
	for (int i = 0; i < 2; i++) {
		any.port = i == 0 ? o->port : 0;
		rc = nb_udp_open(&r.sock[i], &r.loop, &any, 0, on_recv, &r);
		if (rc != 0) {
			char a[NB_ADDR_STRLEN];
			fprintf(stderr, "natpeer: cannot bind UDP %s: %s%s\n", nb_addr_format(&any, a, sizeof(a)),
				uv_strerror(rc), rc == UV_EADDRINUSE ? " (pick another --port)" : "");
			if (i == 1)
				nb_udp_close(&r.sock[0], NULL);
			uv_run(&r.loop, UV_RUN_DEFAULT);
			uv_loop_close(&r.loop);
			return 1;
		}
		r.open_handles++;
	}
	local.port = r.sock[0].local.port;
	uv_timer_init(&r.loop, &r.timer);
	r.timer.data = &r;
	r.open_handles++;
	if (!o->json)
		fprintf(stderr, "netcheck: testing mapping and filtering against %s...\n", srv);
	uint64_t now = nb_now_ms();
	r.hard_deadline = now + (o->timeout_ms ? o->timeout_ms : 10000);
	nb_netcheck_init(&r.nc, NULL, &o->server, &local, seed, now);
	pump(&r);
	uv_run(&r.loop, UV_RUN_DEFAULT);
	uv_loop_close(&r.loop);
	if (r.timed_out) {
		fprintf(stderr, "natpeer: netcheck did not finish within the timeout (raise --timeout)\n");
		return 1;
	}
	report(o, nb_netcheck_result(&r.nc));
	return 0;
}
