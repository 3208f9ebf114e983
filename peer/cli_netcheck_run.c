/* peer/cli_netcheck_run.c - natpeer(1)'s netcheck and map: libnatpeer's natpeer_netcheck / natpeer_map, printed. */
#include "peer/cli_run.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

struct nc {
	const struct cli_nc_opts *o;
	natpeer *np;
	uv_signal_t sig[2];
	bool sig_on;
	bool mapped;  /* map: a mapping was reported (then "removed" at the end) */
	int status;
};

static const char *word(const char *s)
{
	return s ? s : "unknown";
}

/* Progress lines (INFO) are dropped with --json, as they always were. */
static void on_log(void *arg, int level, const char *line)
{
	struct nc *n = arg;

	if (n->o->json && level == NATPEER_LOG_INFO)
		return;
	fprintf(stderr, "%s\n", line);
}

static void print_json(cJSON *j)
{
	char *text = cJSON_PrintUnformatted(j);

	if (text != NULL)
		printf("%s\n", text);
	cJSON_free(text);
	cJSON_Delete(j);
}

/* netcheck --json's "portmap" object (and its alias "upnp", kept for one
 * release: docs/upnp.md). */
static void portmap_json(cJSON *up, const natpeer_portmap_info *pi)
{
	if (pi->protocol != NULL)
		cJSON_AddStringToObject(up, "protocol", pi->protocol);
	cJSON_AddStringToObject(up, "status", pi->status);
	if (pi->external != NULL) {
		cJSON_AddStringToObject(up, "external", pi->external);
		cJSON_AddNumberToObject(up, "lease", pi->lease_s);
	}
	if (pi->gateway != NULL)
		cJSON_AddStringToObject(up, "gateway", pi->gateway);
	if (pi->ms >= 0)
		cJSON_AddNumberToObject(up, "ms", (double)pi->ms);
	if (pi->reason != NULL)
		cJSON_AddStringToObject(up, "reason", pi->reason);
}

static const char *fam_name(const natpeer_netcheck_family *f)
{
	return f->family == 6 ? "IPv6" : "IPv4";
}

/* One family's fields. family_obj: an entry of "families" (status and
 * reason first; no port map), else the top-level fields as they have
 * always been. */
static void result_json(cJSON *j, const natpeer_netcheck_family *f, bool family_obj, const natpeer_portmap_info *pi)
{
	cJSON *loc = cJSON_CreateArray();
	char why[256];

	cJSON_AddStringToObject(j, "server", f->server);
	if (family_obj) {
		cJSON_AddStringToObject(j, "status", f->missing != NULL ? "unavailable"
						     : f->udp_blocked ? "udp-blocked" : "ok");
		if (f->missing != NULL) {
			snprintf(why, sizeof(why), "no %s: %s", fam_name(f), f->missing);
			cJSON_AddStringToObject(j, "reason", why);
			cJSON_Delete(loc);
			return;
		}
	}
	if (f->reflexive != NULL)
		cJSON_AddStringToObject(j, "reflexive", f->reflexive);
	else
		cJSON_AddNullToObject(j, "reflexive");
	if (f->local != NULL)
		cJSON_AddItemToArray(loc, cJSON_CreateString(f->local));
	cJSON_AddItemToObject(j, "local", loc);
	cJSON_AddStringToObject(j, "mapping", word(f->mapping));
	cJSON_AddStringToObject(j, "filtering", word(f->filtering));
	cJSON_AddStringToObject(j, "nat", word(f->nat));
	if (f->hairpin < 0)
		cJSON_AddNullToObject(j, "hairpin");
	else
		cJSON_AddBoolToObject(j, "hairpin", f->hairpin);
	cJSON_AddBoolToObject(j, "rfc5780", f->rfc5780);
	if (!family_obj) {
		cJSON *up = cJSON_CreateObject();
		portmap_json(up, pi);
		cJSON_AddItemToObject(j, "portmap", up);
		cJSON_AddItemToObject(j, "upnp", cJSON_Duplicate(up, 1));
	}
	cJSON_AddNumberToObject(j, "ms", (double)f->ms);
	if (f->missing != NULL) {
		snprintf(why, sizeof(why), "no %s: %s", fam_name(f), f->missing);
		cJSON_AddStringToObject(j, "note", why);
	} else if (f->note != NULL && f->note[0] != '\0') {
		cJSON_AddStringToObject(j, "note", f->note);
	}
}

/* One family's lines of the text report, from "UDP:" to "took:". */
static void result_text(const natpeer_netcheck_family *f, const natpeer_portmap_info *pi)
{
	const char *hairpin = f->hairpin < 0 ? "not tested" : f->hairpin ? "yes" : "no";

	printf("  UDP:        %s\n", f->udp_blocked ? "blocked (no answer)" : "yes");
	printf("  local:      %s\n", f->local != NULL ? f->local : "-:0");
	printf("  reflexive:  %s\n", f->reflexive != NULL ? f->reflexive : "none");
	printf("  mapping:    %s\n", word(f->mapping));
	printf("  filtering:  %s\n", word(f->filtering));
	printf("  NAT:        %s\n", word(f->nat));
	printf("  hairpin:    %s\n", hairpin);
	printf("  RFC 5780:   %s\n", f->rfc5780 ? "yes (server has two addresses)" : "no");
	if (pi != NULL) {
		printf("  port map:   %s", pi->status);
		if (pi->external != NULL)
			printf(" %s via %s (lease %u s)", pi->external, pi->protocol != NULL ? pi->protocol : "?",
			       (unsigned)pi->lease_s);
		if (pi->reason != NULL && pi->reason[0] != '\0')
			printf(": %s", pi->reason);
		printf("\n");
	}
	if (f->note != NULL && f->note[0] != '\0')
		printf("  note:       %s\n", f->note);
	printf("  took:       %llu ms\n", (unsigned long long)f->ms);
}

/* One --broker: the report as it has always been. Two: the first's fields
 * at the top level (so consumers of one keep working), and a section (text)
 * or an entry of "families" (JSON) per family; docs/man/natpeer.1. */
static void on_netcheck(void *arg, const natpeer_netcheck_report *rep)
{
	struct nc *n = arg;
	const natpeer_netcheck_family *fa = rep->families;

	if (n->o->json) {
		cJSON *j = cJSON_CreateObject();

		result_json(j, &fa[0], false, &rep->portmap);
		if (rep->n_families == 2) {
			cJSON *fams = cJSON_CreateObject();
			for (size_t k = 0; k < rep->n_families; k++) {
				cJSON *fj = cJSON_CreateObject();
				result_json(fj, &fa[k], true, NULL);
				cJSON_AddItemToObject(fams, fa[k].family == 6 ? "6" : "4", fj);
			}
			cJSON_AddItemToObject(j, "families", fams);
			cJSON_AddNumberToObject(j, "total_ms", (double)rep->total_ms);
		}
		print_json(j);
	} else if (rep->n_families == 1) {
		printf("natpeer netcheck against %s\n", fa[0].server);
		result_text(&fa[0], &rep->portmap);
	} else {
		printf("natpeer netcheck against %s", fa[0].server);
		printf(" and %s\n", fa[1].server);
		for (size_t k = 0; k < rep->n_families; k++) {
			const natpeer_netcheck_family *f = &fa[k];
			if (f->missing != NULL) {
				printf("%s: no %s (%s)\n", fam_name(f), fam_name(f), f->missing);
				continue;
			}
			printf("%s: %s\n", fam_name(f), f->server);
			result_text(f, k == rep->portmap_family ? &rep->portmap : NULL);
		}
		printf("total:        %llu ms (both families at once)\n", (unsigned long long)rep->total_ms);
	}
	fflush(stdout);
}

static void on_mapped(void *arg, const natpeer_map_info *mi)
{
	struct nc *n = arg;

	n->mapped = true;
	if (n->o->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "event", "mapped");
		cJSON_AddStringToObject(j, "protocol", mi->protocol);
		cJSON_AddStringToObject(j, "transport", mi->tcp ? "tcp" : "udp");
		cJSON_AddNumberToObject(j, "internal", mi->internal);
		cJSON_AddStringToObject(j, "external", mi->external);
		cJSON_AddNumberToObject(j, "lease", mi->lease_s);
		cJSON_AddStringToObject(j, "gateway", mi->gateway);
		cJSON_AddBoolToObject(j, "verified", mi->verified);
		if (!mi->verified)
			cJSON_AddStringToObject(j, "reason", mi->reason);
		cJSON_AddNumberToObject(j, "ms", (double)mi->ms);
		print_json(j);
	} else if (mi->verified) {
		printf("mapped %s %u -> %s via %s (lease %u s), verified by the broker\n", mi->tcp ? "TCP" : "UDP",
		       (unsigned)mi->internal, mi->external, mi->protocol, (unsigned)mi->lease_s);
	} else {
		printf("mapped %s %u -> %s via %s (lease %u s); verified: no (%s)\n", mi->tcp ? "TCP" : "UDP",
		       (unsigned)mi->internal, mi->external, mi->protocol, (unsigned)mi->lease_s, mi->reason);
	}
	fflush(stdout);
}

static void on_map_failed(void *arg, const char *status, const char *reason)
{
	struct nc *n = arg;

	if (n->o->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "event", "failed");
		cJSON_AddStringToObject(j, "status", status);
		cJSON_AddStringToObject(j, "reason", reason);
		print_json(j);
		fflush(stdout);
	}
	fprintf(stderr, "natpeer: map: %s: %s\n", status, reason[0] ? reason : "no port-mapping protocol answered");
}

static void on_sig_closed(uv_handle_t *h)
{
	(void)h;
}

static void on_stopped(void *arg, int status)
{
	struct nc *n = arg;

	n->status = status;
	if (n->mapped) {
		if (n->o->json)
			printf("{\"event\":\"removed\"}\n");
		else
			printf("removed the mapping\n");
		fflush(stdout);
	}
	if (n->sig_on) {
		for (int i = 0; i < 2; i++)
			uv_close((uv_handle_t *)&n->sig[i], on_sig_closed);
		n->sig_on = false;
	}
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct nc *n = h->data;

	(void)signum;
	(void)natpeer_stop(n->np);
}

int cli_netcheck_run(const struct cli_nc_opts *o)
{
	const natpeer_callbacks cbs = {
		.log = on_log, .netcheck = on_netcheck, .mapped = on_mapped, .map_failed = on_map_failed,
		.stopped = on_stopped,
	};
	uv_loop_t loop;
	struct nc n;
	int rc;

	memset(&n, 0, sizeof(n));
	n.o = o;
	n.status = NATPEER_E_STATE; /* until `stopped` says */
	rc = natpeer_config_set_callbacks(o->cfg, &cbs, sizeof(cbs), &n);
	if (rc != 0 || uv_loop_init(&loop) != 0) {
		fprintf(stderr, "natpeer: %s\n", natpeer_strerror(rc != 0 ? rc : NATPEER_E_SYSTEM));
		return 1;
	}
	rc = natpeer_create(&loop, o->cfg, &n.np);
	if (rc == 0 && o->what == CLI_NC_MAP) {
		for (int i = 0; i < 2; i++) {
			uv_signal_init(&loop, &n.sig[i]);
			n.sig[i].data = &n;
			uv_signal_start(&n.sig[i], on_signal, i == 0 ? SIGINT : SIGTERM);
		}
		n.sig_on = true;
	}
	if (rc == 0)
		rc = o->what == CLI_NC_MAP ? natpeer_map(n.np, o->map_tcp, o->map_port, o->map_external,
							 o->map_lease_s, o->timeout_ms)
					   : natpeer_netcheck(n.np, o->timeout_ms);
	if (rc != 0) { /* the log said why, for all but argument errors */
		if (rc == NATPEER_E_INVAL || rc == NATPEER_E_CONFIG || rc == NATPEER_E_STATE || rc == NATPEER_E_NOMEM)
			fprintf(stderr, "natpeer: %s\n", natpeer_strerror(rc));
		n.status = rc;
		if (n.sig_on) {
			for (int i = 0; i < 2; i++)
				uv_close((uv_handle_t *)&n.sig[i], on_sig_closed);
			n.sig_on = false;
		}
	}
	if (rc == 0)
		uv_run(&loop, UV_RUN_DEFAULT);
	natpeer_close(n.np);
	uv_run(&loop, UV_RUN_DEFAULT);
	(void)uv_loop_close(&loop);
	return n.status == 0 ? 0 : 1;
}
