/* broker/status.c - the status report: refusal counting, the answers-per-second window, the JSON. */
#include "broker/status.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto/ctrl.h"

static const char *const refusal_names[NB_STATUS_REFUSAL_COUNT] = {
	[NB_STATUS_REFUSED_BAD_REQUEST] = "bad_request",
	[NB_STATUS_REFUSED_UNAUTHORIZED] = "unauthorized",
	[NB_STATUS_REFUSED_UNKNOWN_PEER] = "unknown_peer",
	[NB_STATUS_REFUSED_CONFLICT] = "conflict",
	[NB_STATUS_REFUSED_RATE_LIMITED] = "rate_limited",
	[NB_STATUS_REFUSED_REGISTRY_FULL] = "registry_full",
	[NB_STATUS_REFUSED_SESSIONS_FULL] = "sessions_full",
	[NB_STATUS_REFUSED_SERVER_ERROR] = "server_error",
};

const char *nb_status_refusal_name(unsigned i)
{
	return i < NB_STATUS_REFUSAL_COUNT ? refusal_names[i] : NULL;
}

void nb_status_count_refusal(struct nb_status_refusals *r, const struct nb_rendezvous_event *ev)
{
	unsigned i;

	if (r == NULL || ev == NULL)
		return;
	if (ev->kind != NB_RV_EVENT_REFUSED && !(ev->kind == NB_RV_EVENT_LIMIT && ev->code != 0))
		return;
	switch (ev->code) {
	case NB_CTRL_ERR_BAD_REQUEST:
		i = NB_STATUS_REFUSED_BAD_REQUEST;
		break;
	case NB_CTRL_ERR_UNAUTHORIZED:
	case NB_CTRL_ERR_FORBIDDEN: /* a list without the admin token */
		i = NB_STATUS_REFUSED_UNAUTHORIZED;
		break;
	case NB_CTRL_ERR_UNKNOWN_PEER:
		i = NB_STATUS_REFUSED_UNKNOWN_PEER;
		break;
	case NB_CTRL_ERR_CONFLICT:
		i = NB_STATUS_REFUSED_CONFLICT;
		break;
	case NB_CTRL_ERR_RATE_LIMITED:
		i = NB_STATUS_REFUSED_RATE_LIMITED;
		break;
	case NB_CTRL_ERR_FULL:
		i = ev->limit == NB_RV_LIMIT_PEERS ? NB_STATUS_REFUSED_REGISTRY_FULL
						   : NB_STATUS_REFUSED_SESSIONS_FULL;
		break;
	default: /* 500, and any code added later */
		i = NB_STATUS_REFUSED_SERVER_ERROR;
		break;
	}
	r->n[i]++;
}

/* ---- Answers per second --------------------------------------------------------- */

void nb_status_rate_sample(struct nb_status_rate *r, uint64_t now, uint64_t total)
{
	if (r->n > 0) {
		unsigned last = (r->head + NB_STATUS_RATE_SAMPLES - 1) % NB_STATUS_RATE_SAMPLES;
		if (now < r->t[last])
			return;
	}
	r->t[r->head] = now;
	r->v[r->head] = total;
	r->head = (r->head + 1) % NB_STATUS_RATE_SAMPLES;
	if (r->n < NB_STATUS_RATE_SAMPLES)
		r->n++;
}

uint64_t nb_status_rate_milli(const struct nb_status_rate *r, uint64_t now, uint64_t total)
{
	uint64_t t0 = 0, v0 = 0, dt, dv;
	bool found = false;

	/* Oldest first: the first sample inside the window is the oldest one. */
	for (unsigned k = 0; k < r->n && k < NB_STATUS_RATE_SAMPLES; k++) {
		unsigned i = (r->head + NB_STATUS_RATE_SAMPLES - r->n + k) % NB_STATUS_RATE_SAMPLES;
		if (r->t[i] <= now && now - r->t[i] <= NB_STATUS_RATE_WINDOW_MS) {
			t0 = r->t[i];
			v0 = r->v[i];
			found = true;
			break;
		}
	}
	if (!found || now == t0 || total < v0)
		return 0;
	dt = now - t0;
	dv = total - v0;
	/* answers / (dt / 1000 s) * 1000 */
	if (dv <= UINT64_MAX / 1000000)
		return dv * 1000000 / dt;
	return dv / dt <= UINT64_MAX / 1000000 ? dv / dt * 1000000 : UINT64_MAX;
}

/* ---- The report --------------------------------------------------------------------- */

struct writer {
	char *buf;
	size_t len, off;
	bool full;
};

static __attribute__((format(printf, 2, 3))) void put(struct writer *w, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (w->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(w->buf + w->off, w->len - w->off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= w->len - w->off) {
		w->full = true;
		return;
	}
	w->off += (size_t)n;
}

/* "stale-nonce" -> "stale_nonce": the report's keys use underscores. */
static const char *json_name(const char *in, char *out, size_t cap)
{
	size_t i = 0;

	for (; in != NULL && in[i] != '\0' && i + 1 < cap; i++)
		out[i] = in[i] == '-' ? '_' : in[i];
	out[i] = '\0';
	return out;
}

static void put_u64(struct writer *w, const char *name, uint64_t v, bool comma)
{
	put(w, "%s\"%s\":%llu", comma ? "," : "", name, (unsigned long long)v);
}

static bool version_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       c == '.' || c == '+' || c == '~' || c == '-';
}

ssize_t nb_status_format(const struct nb_status_snapshot *s, char *buf, size_t len)
{
	struct writer w = { .buf = buf, .len = len };
	char ver[32], name[48];
	size_t i;

	if (buf == NULL || len == 0)
		return -ENOSPC;
	/* The version goes into a JSON string: only characters that need no escaping. */
	for (i = 0; s->version != NULL && s->version[i] != '\0' && i < sizeof(ver) - 1; i++)
		ver[i] = version_char(s->version[i]) ? s->version[i] : '?';
	ver[i] = '\0';

	put(&w, "{\"version\":\"%s\"", ver);
	if (s->key != NULL) {
		char k[64];
		for (i = 0; s->key[i] != '\0' && i < sizeof(k) - 1; i++)
			k[i] = version_char(s->key[i]) && s->key[i] != '.' && s->key[i] != '+' &&
					       s->key[i] != '~' ? s->key[i] : '?';
		k[i] = '\0';
		put(&w, ",\"key\":\"%s\"", k);
	}
	put_u64(&w, "uptime_s", s->uptime_s, true);
	put_u64(&w, "peers", s->peers, true);
	put_u64(&w, "sessions", s->sessions, true);
	put_u64(&w, "pairs", s->pairs, true);
	put_u64(&w, "max_peers", s->max_peers, true);
	put_u64(&w, "max_sessions", s->max_sessions, true);
	put(&w, ",\"answers_per_s\":%llu.%03llu",
	    (unsigned long long)(s->answers_milli_per_s / 1000),
	    (unsigned long long)(s->answers_milli_per_s % 1000));
	put(&w, ",\"answers\":{");
	put_u64(&w, "stun_udp", s->answers_stun_udp, false);
	put_u64(&w, "control", s->answers_control, true);
	put(&w, "},\"refusals\":{");
	for (unsigned k = 0; k < NB_STATUS_REFUSAL_COUNT; k++)
		put_u64(&w, refusal_names[k], s->refusals.n[k], k > 0);
	put(&w, "},\"stun\":{");
	put_u64(&w, "udp_received", s->udp_received, false);
	put_u64(&w, "udp_answered", s->udp_answered, true);
	put_u64(&w, "udp_errors", s->udp_errors, true);
	put(&w, ",\"dropped\":{");
	for (unsigned k = 0; k < NB_BINDING_DROP_COUNT; k++)
		put_u64(&w, nb_binding_drop_name(NB_BINDING_DROP_NOT_STUN - (int)k), s->dropped[k],
			k > 0);
	put(&w, "}");
	put_u64(&w, "tcp_accepted", s->tcp_accepted, true);
	put_u64(&w, "tcp_requests", s->tcp_requests, true);
	put_u64(&w, "tcp_waits_at_limit", s->tcp_waits_at_limit, true);
	put(&w, "},\"control\":{");
	put_u64(&w, "received", s->ctl_received, false);
	put_u64(&w, "replies", s->ctl_replies, true);
	put_u64(&w, "errors", s->ctl_errors, true);
	put_u64(&w, "undecodable", s->ctl_undecodable, true);
	put_u64(&w, "registers", s->ctl_registers, true);
	put_u64(&w, "keepalives", s->ctl_keepalives, true);
	put_u64(&w, "connects", s->ctl_connects, true);
	put_u64(&w, "results", s->ctl_results, true);
	put_u64(&w, "expired", s->ctl_expired, true);
	put_u64(&w, "relay_plans", s->ctl_relay_plans, true);
	put_u64(&w, "birthday_plans", s->ctl_birthday_plans, true);
	put_u64(&w, "rtt_timed", s->ctl_rtt_timed, true);
	put_u64(&w, "registers_also", s->ctl_registers_also, true);
	put(&w, "},\"links\":{");
	put_u64(&w, "sessions", s->links, false);
	put_u64(&w, "handshakes", s->handshakes, true);
	put_u64(&w, "handshake_failures", s->handshake_failures, true);
	put_u64(&w, "unsealed", s->unsealed, true);
	put_u64(&w, "key_conflicts", s->key_conflicts, true);
	put(&w, "},\"relay\":{\"mode\":\"%s\"",
	    s->relay_mode == NB_STATUS_RELAY_OFF	? "off"
	    : s->relay_mode == NB_STATUS_RELAY_TURN	? "turn"
	    : s->relay_mode == NB_STATUS_RELAY_EXTERNAL ? "external"
							: "?");
	put_u64(&w, "allocations", s->turn.allocs_now, true);
	put_u64(&w, "max_allocations", s->relay_max_allocations, true);
	put_u64(&w, "created", s->turn.allocs_created, true);
	put_u64(&w, "expired", s->turn.allocs_expired, true);
	put_u64(&w, "deleted", s->turn.allocs_deleted, true);
	put_u64(&w, "sockets", s->relay_sockets, true);
	put_u64(&w, "bytes_to_peer", s->turn.bytes_to_peer, true);
	put_u64(&w, "packets_to_peer", s->turn.pkts_to_peer, true);
	put_u64(&w, "bytes_from_peer", s->turn.bytes_from_peer, true);
	put_u64(&w, "packets_from_peer", s->turn.pkts_from_peer, true);
	put_u64(&w, "tcp_control", s->tcp_control, true);
	put_u64(&w, "tcp_turn", s->tcp_turn, true);
	put_u64(&w, "tcp_write_dropped", s->tcp_write_dropped, true);
	put(&w, ",\"refused\":{");
	for (unsigned k = 0; k < NB_TURN_REFUSE_COUNT; k++)
		put_u64(&w, json_name(nb_turn_refusal_name(k), name, sizeof(name)), s->turn.refused[k], k > 0);
	put(&w, "},\"dropped\":{");
	for (unsigned k = 0; k < NB_TURN_DROP_COUNT; k++)
		put_u64(&w, json_name(nb_turn_drop_name(NB_TURN_DROP_MALFORMED - (int)k), name, sizeof(name)),
			s->turn.drops[k], k > 0);
	put(&w, "}}}");
	if (w.full) {
		buf[0] = '\0';
		return -ENOSPC;
	}
	return (ssize_t)w.off;
}

bool nb_status_is_request(const uint8_t *buf, size_t len)
{
	static const char word[] = "status";
	size_t n = sizeof(word) - 1;

	if (buf == NULL || len < n || memcmp(buf, word, n) != 0)
		return false;
	if (len == n)
		return true;
	if (len == n + 1)
		return buf[n] == '\n';
	return len == n + 2 && buf[n] == '\r' && buf[n + 1] == '\n';
}
