/* peer/cli_events.c - natpeer(1)'s event lines on stdout: connected, failed, lost, the listings, pipe lines (text, or JSON with --json). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "peer/cli_run.h"

/* The data channel's expiry (peer/datachan.h NB_DC_EXPIRE_MS): "lost" says it. */
#define CLI_LOST_S 30

void cli_print_connected(struct cli *c, const natpeer_conn_info *ci)
{
	char bday[96] = "";

	if (ci->birthday && ci->birthday_spray)
		snprintf(bday, sizeof(bday), " (birthday: socket %u of %u)", ci->socket, ci->sockets);
	else if (ci->birthday)
		snprintf(bday, sizeof(bday), " (birthday: port %u after %u probes at %u/s)", ci->port, ci->probes,
			 ci->rate);
	if (c->o->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "event", "connected");
		cJSON_AddStringToObject(j, "peer", ci->peer);
		cJSON_AddStringToObject(j, "path", ci->path);
		cJSON_AddStringToObject(j, "remote", ci->remote);
		cJSON_AddNumberToObject(j, "family", ci->family);
		if (ci->relay != NULL)
			cJSON_AddStringToObject(j, "relay", ci->relay);
		cJSON_AddNumberToObject(j, "ms", (double)ci->ms);
		cJSON_AddStringToObject(j, "key", ci->key_text);
		if (ci->birthday) {
			cJSON *bo = cJSON_AddObjectToObject(j, "birthday");
			if (bo != NULL && ci->sockets != 0) {
				cJSON_AddNumberToObject(bo, "sockets", ci->sockets);
				cJSON_AddNumberToObject(bo, "socket", ci->socket);
			}
			if (bo != NULL && ci->probes != 0) {
				cJSON_AddNumberToObject(bo, "probes", ci->probes);
				cJSON_AddNumberToObject(bo, "rate", ci->rate);
			}
			if (bo != NULL && ci->port != 0) /* the spraying side may not know it yet */
				cJSON_AddNumberToObject(bo, "port", ci->port);
		}
		cli_out_json(c, j);
	} else {
		char line[420], rel[80] = "";
		if (ci->relay != NULL)
			snprintf(rel, sizeof(rel), " via relay %s", ci->relay);
		snprintf(line, sizeof(line), "connected to %s (%s, %s) at %s%s in %llu ms, key %s%s", ci->peer,
			 ci->path, ci->family == 6 ? "IPv6" : "IPv4", ci->remote, rel, (unsigned long long)ci->ms,
			 ci->key_text, bday);
		cli_out_text(c, line);
	}
}

void cli_print_failed(struct cli *c, const char *peer, const char *reason)
{
	if (c->o->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "event", "failed");
		cJSON_AddStringToObject(j, "peer", peer);
		cJSON_AddStringToObject(j, "reason", reason);
		cli_out_json(c, j);
	} else {
		char line[512];
		snprintf(line, sizeof(line), "failed to connect to %s: %s", peer, reason);
		cli_out_text(c, line);
	}
}

void cli_print_lost(struct cli *c, const char *peer, const char *remote)
{
	if (c->o->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "event", "lost");
		cJSON_AddStringToObject(j, "peer", peer);
		cJSON_AddStringToObject(j, "remote", remote);
		cJSON_AddStringToObject(j, "reason", "nothing from the peer for 30 s");
		cli_out_json(c, j);
	} else {
		char line[256];
		snprintf(line, sizeof(line), "lost %s at %s: nothing from it for %u s", peer, remote, CLI_LOST_S);
		cli_out_text(c, line);
	}
}

void cli_print_peers(struct cli *c, const natpeer_peer_info *rows, size_t n)
{
	if (c->o->json) {
		cJSON *arr = cJSON_CreateArray();
		for (size_t i = 0; i < n; i++) {
			const natpeer_peer_info *p = &rows[i];
			cJSON *j = cJSON_CreateObject();
			cJSON_AddStringToObject(j, "id", p->id);
			cJSON_AddStringToObject(j, "nat", p->nat);
			cJSON_AddStringToObject(j, "mapping", p->mapping);
			cJSON_AddStringToObject(j, "filtering", p->filtering);
			cJSON_AddStringToObject(j, "reflexive", p->reflexive);
			if (p->has_alt) { /* its registration in the other family */
				cJSON_AddStringToObject(j, "alt", p->alt);
				cJSON_AddStringToObject(j, "alt_mapping", p->alt_mapping);
				cJSON_AddStringToObject(j, "alt_filtering", p->alt_filtering);
			}
			cJSON_AddItemToArray(arr, j);
		}
		cli_out_json(c, arr);
		return;
	}
	char line[256];
	snprintf(line, sizeof(line), "%-20s %-21s %-27s %-27s %s", "ID", "NAT", "MAPPING", "FILTERING",
		 "REFLEXIVE");
	cli_out_text(c, line);
	for (size_t i = 0; i < n; i++) {
		const natpeer_peer_info *p = &rows[i];
		snprintf(line, sizeof(line), "%-20s %-21s %-27s %-27s %s", p->id, p->nat, p->mapping, p->filtering,
			 p->reflexive);
		cli_out_text(c, line);
		if (p->has_alt) {
			snprintf(line, sizeof(line), "%-20s %-21s %-27s %-27s %s", "", "(other family)",
				 p->alt_mapping, p->alt_filtering, p->alt);
			cli_out_text(c, line);
		}
	}
}

/* The matrix listing: one JSON array, or a table. */
void cli_print_matrix(struct cli *c, const natpeer_pair_info *rows, size_t n)
{
	if (c->o->json) {
		cJSON *arr = cJSON_CreateArray();
		for (size_t i = 0; i < n; i++) {
			const natpeer_pair_info *p = &rows[i];
			cJSON *j = cJSON_CreateObject();
			cJSON_AddStringToObject(j, "a", p->a);
			cJSON_AddStringToObject(j, "b", p->b);
			cJSON_AddStringToObject(j, "predicted", p->predicted);
			cJSON_AddStringToObject(j, "role_a", p->role_a);
			cJSON_AddStringToObject(j, "role_b", p->role_b);
			cJSON_AddStringToObject(j, "plan", p->plan);
			if (p->has_measured) {
				cJSON_AddStringToObject(j, "measured", p->measured);
				cJSON_AddNumberToObject(j, "ms", p->ms);
			} else {
				cJSON_AddNullToObject(j, "measured");
				cJSON_AddNullToObject(j, "ms");
			}
			if (p->plan_family != 0)
				cJSON_AddNumberToObject(j, "plan_family", p->plan_family);
			if (p->family != 0)
				cJSON_AddNumberToObject(j, "family", p->family);
			if (p->birthday) { /* last, as on the wire */
				cJSON *b = cJSON_AddObjectToObject(j, "birthday");
				if (b != NULL && p->bd_sockets != 0)
					cJSON_AddNumberToObject(b, "sockets", p->bd_sockets);
				if (b != NULL && p->bd_probes != 0)
					cJSON_AddNumberToObject(b, "probes", p->bd_probes);
				if (b != NULL && p->bd_rate != 0)
					cJSON_AddNumberToObject(b, "rate", p->bd_rate);
				if (b != NULL && p->bd_port != 0)
					cJSON_AddNumberToObject(b, "port", p->bd_port);
			}
			cJSON_AddItemToArray(arr, j);
		}
		cli_out_json(c, arr);
		return;
	}
	char line[512];
	snprintf(line, sizeof(line), "%-16s %-16s %-9s %-9s %7s  %s", "A", "B", "PREDICTED", "MEASURED", "MS",
		 "PLAN");
	cli_out_text(c, line);
	for (size_t i = 0; i < n; i++) {
		const natpeer_pair_info *p = &rows[i];
		char ms[16] = "-";
		if (p->has_measured)
			snprintf(ms, sizeof(ms), "%u", p->ms);
		char bd[96] = "";
		if (p->birthday)
			snprintf(bd, sizeof(bd), " [birthday: %u sockets, %u probes at %u/s, port %u]", p->bd_sockets,
				 p->bd_probes, p->bd_rate, p->bd_port);
		snprintf(line, sizeof(line), "%-16s %-16s %-9s %-9s %7s  %s%s", p->a, p->b, p->predicted,
			 p->has_measured ? p->measured : "-", ms, p->plan[0] ? p->plan : "-", bd);
		cli_out_text(c, line);
	}
}

/* A pipe line for stdout: with --json, one labelled line whose payload is
 * base64 (binary-safe, and never mistaken for an event); else the raw
 * bytes and a newline. */
void cli_deliver(struct cli *c, uint32_t channel, const uint8_t *p, size_t n)
{
	const struct cli_chan *ch = &c->ch[channel];

	if (c->o->json) {
		char *b64 = malloc(4 * ((n + 2) / 3) + 1);
		cJSON *j;
		if (b64 == NULL)
			return;
		EVP_EncodeBlock((unsigned char *)b64, p, (int)n);
		j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "event", "data");
		cJSON_AddStringToObject(j, "peer", ch->peer);
		cJSON_AddStringToObject(j, "key", ch->key);
		cJSON_AddStringToObject(j, "data", b64);
		free(b64);
		cli_out_json(c, j);
		return;
	}
	cli_out_write(c, p, n);
	cli_out_write(c, "\n", 1);
}
