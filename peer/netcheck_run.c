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
#include "peer/blink.h"
#include "peer/client.h"
#include "peer/known.h"
#include "peer/netcheck.h"
#include "peer/portmap.h"
#include "proto/ctrl.h"

/* A netcheck waits this long for a UPnP gateway to answer SSDP before it
 * reports "unavailable" (a gateway that has answered is waited for). */
#define NETCHECK_UPNP_GRACE_MS 500

struct run {
	const struct nb_netcheck_opts *o;
	uv_loop_t loop;
	struct nb_udp sock[2];
	bool finished;
	uv_timer_t timer;
	struct nb_netcheck nc;
	struct nb_client client; /* for the broker's probe of a UPnP mapping */
	struct nb_blink bl;      /* ... asked for over the sealed channel */
	bool bl_on;
	uint8_t plain[NB_SEAL_MAX_DATAGRAM];
	struct nb_portmap *pm;
	bool reflexive_given;
	bool reported;
	uint64_t hard_deadline;
	bool timed_out;
	int open_handles;
};

static void report(const struct nb_netcheck_opts *o, const struct nb_netcheck_result *res,
		   const struct nb_portmap *pm);

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

static void close_all(void *arg)
{
	struct run *r = arg;

	uv_timer_stop(&r->timer);
	for (int i = 0; i < 2; i++)
		nb_udp_close(&r->sock[i], on_udp_closed);
	uv_close((uv_handle_t *)&r->timer, on_closed);
}

/* Report, then take the mapping down (bounded), then close. */
static void finish(struct run *r)
{
	struct nb_portmap *pm = r->pm;

	r->finished = true;
	uv_timer_stop(&r->timer);
	if (!r->timed_out && !r->reported) {
		report(r->o, nb_netcheck_result(&r->nc), pm);
		fflush(stdout);
		r->reported = true;
	}
	r->pm = NULL;
	if (pm != NULL)
		nb_portmap_stop(pm, close_all, r);
	else
		close_all(r);
}

static void client_events(struct run *r, uint64_t now)
{
	struct nb_client_event e;

	while (nb_client_next_event(&r->client, &e) == 1)
		nb_portmap_client_event(r->pm, &e, now);
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
	struct nb_addr refl;
	if (!r->reflexive_given && nb_netcheck_reflexive(&r->nc, &refl)) {
		r->reflexive_given = true; /* test I: the UPnP mapping can be verified now */
		nb_portmap_set_reflexive(r->pm, &refl, now);
	} else if (!r->reflexive_given && nb_netcheck_done(&r->nc)) {
		r->reflexive_given = true; /* no answer from the server: none is coming */
		nb_portmap_set_reflexive(r->pm, NULL, now);
	}
	struct nb_client_tx ctx;
	struct nb_blink_tx btx;
	while (nb_client_poll(&r->client, now, &ctx) == 1)
		if (r->bl_on)
			(void)nb_blink_send(&r->bl, ctx.bytes, ctx.len, now);
	while (r->bl_on && nb_blink_poll(&r->bl, now, &btx) == 1)
		nb_udp_send(&r->sock[0], btx.bytes, btx.len, &r->o->server);
	client_events(r, now);
	if (nb_netcheck_done(&r->nc) && nb_portmap_settled(r->pm, now, NETCHECK_UPNP_GRACE_MS)) {
		finish(r);
		return;
	}
	uint64_t next = nb_netcheck_done(&r->nc) ? UINT64_MAX : nb_netcheck_deadline(&r->nc);
	if (nb_client_deadline(&r->client) < next)
		next = nb_client_deadline(&r->client);
	if (r->bl_on && nb_blink_deadline(&r->bl) < next)
		next = nb_blink_deadline(&r->bl);
	if (nb_netcheck_done(&r->nc) && next > now + 50)
		next = now + 50; /* waiting for UPnP: look at the grace window again */
	if (next > r->hard_deadline)
		next = r->hard_deadline;
	uv_timer_start(&r->timer, on_timer, next > now ? next - now : 0, 0);
}

static void on_recv(struct nb_udp *u, const uint8_t *data, size_t len, const struct nb_addr *from,
		    void *arg)
{
	struct run *r = arg;
	int sock = u == &r->sock[0] ? NB_NC_MAP : NB_NC_FILT;
	uint64_t now = nb_now_ms();

	if (r->finished)
		return;
	if (sock == NB_NC_MAP && nb_wire_classify(data, len) == NB_WIRE_CTRL) {
		/* Unsealed: only the broker's probe of the mapping is taken. */
		struct nb_ctrl_msg m;
		if (nb_ctrl_decode(&m, data, len) == (ssize_t)len && m.type == NB_CTRL_PROBE)
			nb_client_input(&r->client, data, len, from, now);
		client_events(r, now);
	} else if (sock == NB_NC_MAP && nb_wire_classify(data, len) == NB_WIRE_DATA) {
		ssize_t n = r->bl_on ? nb_blink_input(&r->bl, data, len, from, now, r->plain,
						      sizeof(r->plain))
				     : -1;
		if (n > 0 && r->plain[0] == NB_CTRL_FIRST_BYTE)
			nb_client_input(&r->client, r->plain, (size_t)n, &r->o->server, now);
		client_events(r, now);
	} else {
		nb_netcheck_input(&r->nc, sock, data, len, from, now);
	}
	pump(r);
}

static const char *word(const char *s)
{
	return s ? s : "unknown";
}

static void on_portmap(struct nb_portmap *pm, bool changed, void *arg)
{
	struct run *r = arg;

	(void)pm;
	(void)changed;
	if (!r->finished) /* pump from the loop, not from inside the UPnP shell */
		uv_timer_start(&r->timer, on_timer, 0, 0);
}

static void upnp_json(cJSON *up, const struct nb_portmap *pm)
{
	enum nb_portmap_state s = nb_portmap_state(pm);
	const struct nb_upnp_info *in = nb_portmap_info(pm);
	char b[NB_ADDR_STRLEN];

	if (s == NB_PM_WORKING) /* no gateway answered in the grace window */
		s = NB_PM_UNAVAILABLE;
	cJSON_AddStringToObject(up, "status", nb_portmap_status_word(s));
	if (in != NULL && (s == NB_PM_VERIFIED || s == NB_PM_UNVERIFIED) && in->status == NB_UPNP_MAPPED) {
		cJSON_AddStringToObject(up, "external", nb_addr_format(&in->external, b, sizeof(b)));
		cJSON_AddNumberToObject(up, "lease", in->lease_s);
	}
	if (in != NULL && in->gateway.family != NB_AF_NONE)
		cJSON_AddStringToObject(up, "gateway", nb_addr_format(&in->gateway, b, sizeof(b)));
	if (nb_portmap_ms(pm) >= 0)
		cJSON_AddNumberToObject(up, "ms", (double)nb_portmap_ms(pm));
	if (s == NB_PM_DISABLED)
		cJSON_AddStringToObject(up, "reason", "disabled with --no-upnp");
	else if (s == NB_PM_UNAVAILABLE && nb_portmap_reason(pm)[0] == '\0')
		cJSON_AddStringToObject(up, "reason", "no UPnP gateway answered SSDP within 0.5 s");
	else if (s != NB_PM_VERIFIED)
		cJSON_AddStringToObject(up, "reason", nb_portmap_reason(pm));
}

static void report(const struct nb_netcheck_opts *o, const struct nb_netcheck_result *res,
		   const struct nb_portmap *pm)
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
		upnp_json(up, pm);
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
	{
		cJSON *up = cJSON_CreateObject();
		const cJSON *st, *ex, *le, *re;
		upnp_json(up, pm);
		st = cJSON_GetObjectItem(up, "status");
		ex = cJSON_GetObjectItem(up, "external");
		le = cJSON_GetObjectItem(up, "lease");
		re = cJSON_GetObjectItem(up, "reason");
		printf("  UPnP:       %s", st->valuestring);
		if (ex != NULL)
			printf(" %s (lease %.0f s)", ex->valuestring, le != NULL ? le->valuedouble : 0.0);
		if (re != NULL && re->valuestring[0] != '\0')
			printf(": %s", re->valuestring);
		printf("\n");
		cJSON_Delete(up);
	}
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
	r.o = o;
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
	uint8_t cseed[32];
	if (getrandom(cseed, sizeof(cseed), 0) != (ssize_t)sizeof(cseed))
		memset(cseed, 0, sizeof(cseed)); /* cannot happen after the first getrandom */
	nb_client_init(&r.client, NULL, &o->server, cseed, now);
	if (o->upnp && o->has_identity) {
		/* The broker's key: as pinned by listen/connect, or given; else
		 * asked for, and trusted for this run only (netcheck pins
		 * nothing). */
		struct nb_known known;
		char name[NB_KNOWN_NAME_MAX + 1], err[256];
		const uint8_t *pinned = NULL;
		uint8_t bk[NB_KEY_LEN];
		nb_known_init(&known);
		if (nb_known_broker_name(&o->server, name) == 0 &&
		    nb_known_load(&known, o->known_path, err, sizeof(err)) == 0 &&
		    (pinned = nb_known_lookup(&known, name)) != NULL)
			memcpy(bk, pinned, NB_KEY_LEN);
		if (pinned != NULL && o->has_broker_key && !nb_key_equal(bk, o->broker_key))
			fprintf(stderr, "natpeer: --broker-key is not the key pinned for %s in %s: the "
					"broker will not be asked to probe the mapping\n", srv, o->known_path);
		else {
			if (pinned == NULL && o->has_broker_key) {
				memcpy(bk, o->broker_key, NB_KEY_LEN);
				pinned = bk;
			}
			nb_blink_init(&r.bl, o->priv, o->pub, pinned != NULL ? bk : NULL, &o->server, cseed);
			r.bl_on = nb_blink_start(&r.bl, now) == 0;
		}
		nb_known_free(&known);
	}
	if (o->upnp) {
		struct nb_portmap_opts po = {
			.internal_port = local.port, .ssdp_flags = o->upnp_flags, .quiet = o->json,
		};
		rc = nb_portmap_open(&r.pm, &r.loop, &po, &r.client, on_portmap, &r);
		if (rc != 0)
			fprintf(stderr, "natpeer: UPnP: cannot start: %s (going on without it)\n", uv_strerror(rc));
	}
	pump(&r);
	uv_run(&r.loop, UV_RUN_DEFAULT);
	uv_loop_close(&r.loop);
	if (r.bl_on)
		nb_blink_wipe(&r.bl);
	if (r.timed_out) {
		fprintf(stderr, "natpeer: netcheck did not finish within the timeout (raise --timeout)\n");
		return 1;
	}
	return 0;
}
