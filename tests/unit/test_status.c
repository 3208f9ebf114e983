/* tests/unit/test_status.c - the status report: refusals by reason, answers per second, the JSON. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/status.h"
#include "proto/ctrl.h"

/* ---- Refusals ---------------------------------------------------------------- */

struct refusal_case {
	enum nb_rendezvous_event_kind kind;
	enum nb_rendezvous_limit limit;
	uint16_t code;
	int want; /* enum nb_status_refusal, or -1: not counted */
};

static const struct refusal_case refusal_cases[] = {
	{ NB_RV_EVENT_REFUSED, NB_RV_LIMIT_NONE, NB_CTRL_ERR_BAD_REQUEST, NB_STATUS_REFUSED_BAD_REQUEST },
	{ NB_RV_EVENT_REFUSED, NB_RV_LIMIT_NONE, NB_CTRL_ERR_UNAUTHORIZED, NB_STATUS_REFUSED_UNAUTHORIZED },
	{ NB_RV_EVENT_REFUSED, NB_RV_LIMIT_NONE, NB_CTRL_ERR_UNKNOWN_PEER, NB_STATUS_REFUSED_UNKNOWN_PEER },
	{ NB_RV_EVENT_REFUSED, NB_RV_LIMIT_NONE, NB_CTRL_ERR_CONFLICT, NB_STATUS_REFUSED_CONFLICT },
	{ NB_RV_EVENT_REFUSED, NB_RV_LIMIT_NONE, NB_CTRL_ERR_SERVER, NB_STATUS_REFUSED_SERVER_ERROR },
	{ NB_RV_EVENT_LIMIT, NB_RV_LIMIT_RATE, NB_CTRL_ERR_RATE_LIMITED, NB_STATUS_REFUSED_RATE_LIMITED },
	{ NB_RV_EVENT_LIMIT, NB_RV_LIMIT_PEERS, NB_CTRL_ERR_FULL, NB_STATUS_REFUSED_REGISTRY_FULL },
	{ NB_RV_EVENT_LIMIT, NB_RV_LIMIT_SESSIONS, NB_CTRL_ERR_FULL, NB_STATUS_REFUSED_SESSIONS_FULL },
	/* Not refusals: a cache eviction, and the other events. */
	{ NB_RV_EVENT_LIMIT, NB_RV_LIMIT_CACHE, 0, -1 },
	{ NB_RV_EVENT_REGISTERED, NB_RV_LIMIT_NONE, 0, -1 },
	{ NB_RV_EVENT_EXPIRED, NB_RV_LIMIT_NONE, 0, -1 },
	{ NB_RV_EVENT_CONNECT, NB_RV_LIMIT_NONE, 0, -1 },
	{ NB_RV_EVENT_PUSH_ACKED, NB_RV_LIMIT_NONE, 0, -1 },
	{ NB_RV_EVENT_PUSH_FAILED, NB_RV_LIMIT_NONE, NB_CTRL_ERR_UNKNOWN_PEER, -1 },
	{ NB_RV_EVENT_RESULT, NB_RV_LIMIT_NONE, 0, -1 },
};

static void test_refusals(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(refusal_cases) / sizeof(refusal_cases[0]); i++) {
		const struct refusal_case *c = &refusal_cases[i];
		struct nb_rendezvous_event ev;
		struct nb_status_refusals r;

		memset(&ev, 0, sizeof(ev));
		memset(&r, 0, sizeof(r));
		ev.kind = c->kind;
		ev.limit = c->limit;
		ev.code = c->code;
		nb_status_count_refusal(&r, &ev);
		nb_status_count_refusal(&r, &ev);
		for (unsigned k = 0; k < NB_STATUS_REFUSAL_COUNT; k++)
			if (r.n[k] != ((int)k == c->want ? 2u : 0u))
				fail_msg("case %zu: counter %s is %llu", i, nb_status_refusal_name(k),
					 (unsigned long long)r.n[k]);
	}
	nb_status_count_refusal(NULL, NULL); /* accepted */
	assert_string_equal(nb_status_refusal_name(NB_STATUS_REFUSED_REGISTRY_FULL), "registry_full");
	assert_null(nb_status_refusal_name(NB_STATUS_REFUSAL_COUNT));
}

/* ---- Answers per second ------------------------------------------------------- */

static void test_rate(void **state)
{
	struct nb_status_rate r;

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(nb_status_rate_milli(&r, 5000, 100), 0); /* no sample */
	nb_status_rate_sample(&r, 1000, 0);
	assert_int_equal(nb_status_rate_milli(&r, 1000, 50), 0);   /* no time has passed */
	assert_int_equal(nb_status_rate_milli(&r, 1500, 50), 100000); /* 50 in 0.5 s */
	/* 100 per second for 20 s, sampled each second: the window is the last 10 s. */
	memset(&r, 0, sizeof(r));
	for (uint64_t t = 0; t <= 20; t++)
		nb_status_rate_sample(&r, 1000 + t * 1000, t * 100);
	assert_int_equal(nb_status_rate_milli(&r, 21000, 2000), 100000);
	/* Half a second later: the oldest sample in the window is from 12000 ms. */
	assert_int_equal(nb_status_rate_milli(&r, 21500, 3050), (3050 - 1100) * 1000000ull / 9500);
	/* Every sample older than the window: 0. */
	assert_int_equal(nb_status_rate_milli(&r, 40000, 5000), 0);
	/* A total below the sample (cannot happen with counters): 0, not a wrap. */
	assert_int_equal(nb_status_rate_milli(&r, 21000, 5), 0);
	/* A sample from the past is ignored. */
	nb_status_rate_sample(&r, 500, 999999);
	assert_int_equal(nb_status_rate_milli(&r, 21000, 2000), 100000);
	/* Huge totals do not overflow. */
	memset(&r, 0, sizeof(r));
	nb_status_rate_sample(&r, 0, 0);
	assert_int_equal(nb_status_rate_milli(&r, 1, UINT64_MAX), UINT64_MAX);
	assert_int_equal(nb_status_rate_milli(&r, 10000, 10000000000000000ull), /* 1e16 in 10 s */
			 1000000000000000000ull);
	assert_int_equal(nb_status_rate_milli(&r, 10000, UINT64_MAX / 2), UINT64_MAX); /* saturates */
}

/* ---- The report ------------------------------------------------------------------ */

static const char zero_report[] =
	"{\"version\":\"0.1.0\",\"uptime_s\":0,\"peers\":0,\"sessions\":0,\"pairs\":0,"
	"\"max_peers\":0,\"max_sessions\":0,\"answers_per_s\":0.000,"
	"\"answers\":{\"stun_udp\":0,\"control\":0},"
	"\"refusals\":{\"bad_request\":0,\"unauthorized\":0,\"unknown_peer\":0,\"conflict\":0,"
	"\"rate_limited\":0,\"registry_full\":0,\"sessions_full\":0,\"server_error\":0},"
	"\"stun\":{\"udp_received\":0,\"udp_answered\":0,\"udp_errors\":0,"
	"\"dropped\":{\"not-stun\":0,\"malformed\":0,\"not-request\":0,\"method\":0,\"source\":0,"
	"\"socket\":0,\"nospace\":0,\"too-big\":0},"
	"\"tcp_accepted\":0,\"tcp_requests\":0,\"tcp_waits_at_limit\":0},"
	"\"control\":{\"received\":0,\"replies\":0,\"errors\":0,\"undecodable\":0,\"registers\":0,"
	"\"keepalives\":0,\"connects\":0,\"results\":0,\"expired\":0,\"relay_plans\":0,\"birthday_plans\":0,"
	"\"rtt_timed\":0,\"registers_also\":0},"
	"\"links\":{\"sessions\":0,\"handshakes\":0,\"handshake_failures\":0,\"unsealed\":0,"
	"\"key_conflicts\":0},"
	"\"relay\":{\"mode\":\"off\",\"allocations\":0,\"max_allocations\":0,\"created\":0,"
	"\"expired\":0,\"deleted\":0,\"sockets\":0,\"bytes_to_peer\":0,\"packets_to_peer\":0,"
	"\"bytes_from_peer\":0,\"packets_from_peer\":0,\"tcp_control\":0,\"tcp_turn\":0,"
	"\"tcp_write_dropped\":0,\"refused\":{\"challenge\":0,\"unauthorized\":0,"
	"\"expired_credentials\":0,\"stale_nonce\":0,\"wrong_credentials\":0,\"mismatch\":0,"
	"\"quota_user\":0,\"quota_total\":0,\"capacity\":0,\"forbidden_peer\":0,\"perms_full\":0,"
	"\"channels_full\":0,\"bad_request\":0,\"unknown_attribute\":0,\"transport\":0,\"family\":0,"
	"\"peer_family\":0},\"dropped\":{\"malformed\":0,\"not_request\":0,\"method\":0,"
	"\"no_allocation\":0,\"no_permission\":0,\"no_channel\":0,\"forbidden\":0,\"bandwidth\":0,"
	"\"too_big\":0,\"bad_send\":0,\"source\":0,\"inval\":0,\"nospace\":0,\"retransmit\":0}}}";

static void test_format_zero(void **state)
{
	struct nb_status_snapshot s;
	char buf[NB_STATUS_MAX_LEN];

	(void)state;
	memset(&s, 0, sizeof(s));
	s.version = "0.1.0";
	assert_int_equal(nb_status_format(&s, buf, sizeof(buf)), (ssize_t)strlen(zero_report));
	assert_string_equal(buf, zero_report);
	/* Every shorter buffer: -ENOSPC and no partial report. */
	for (size_t len = 0; len <= strlen(zero_report); len++) {
		char *b = malloc(len > 0 ? len : 1);
		assert_non_null(b);
		memset(b, 'x', len);
		assert_int_equal(nb_status_format(&s, len > 0 ? b : NULL, len), -ENOSPC);
		if (len > 0)
			assert_int_equal(b[0], '\0');
		free(b);
	}
}

/* Every number at its largest still fits, and the result is JSON with the
 * values in the right places. */
static void test_format_full(void **state)
{
	struct nb_status_snapshot s;
	char buf[NB_STATUS_MAX_LEN];
	cJSON *j, *x;
	ssize_t n;

	(void)state;
	memset(&s, 0xFF, sizeof(s));
	s.version = "1.2.3~rc1+\"evil\\\n";
	s.key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
	s.answers_milli_per_s = 12345;
	s.peers = 7;
	s.refusals.n[NB_STATUS_REFUSED_SESSIONS_FULL] = 3;
	s.dropped[1] = 9;
	s.relay_mode = NB_STATUS_RELAY_EXTERNAL;
	s.turn.refused[NB_TURN_REFUSE_QUOTA_USER] = 5;
	s.turn.drops[nb_turn_drop_index(NB_TURN_DROP_BANDWIDTH)] = 6;
	n = nb_status_format(&s, buf, sizeof(buf));
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	assert_int_equal(strlen(buf), (size_t)n);
	j = cJSON_ParseWithLength(buf, (size_t)n);
	assert_non_null(j);
	x = cJSON_GetObjectItemCaseSensitive(j, "version");
	assert_true(cJSON_IsString(x));
	assert_string_equal(x->valuestring, "1.2.3~rc1+?evil??");
	x = cJSON_GetObjectItemCaseSensitive(j, "answers_per_s");
	assert_true(cJSON_IsNumber(x));
	assert_true(x->valuedouble > 12.344 && x->valuedouble < 12.346);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "peers")->valueint, 7);
	x = cJSON_GetObjectItemCaseSensitive(j, "refusals");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(x, "sessions_full")->valueint, 3);
	assert_int_equal(cJSON_GetArraySize(x), NB_STATUS_REFUSAL_COUNT);
	x = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "stun"), "dropped");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(x, "malformed")->valueint, 9);
	assert_int_equal(cJSON_GetArraySize(x), NB_BINDING_DROP_COUNT);
	assert_non_null(strstr(buf, "\"uptime_s\":18446744073709551615,"));
	x = cJSON_GetObjectItemCaseSensitive(j, "relay");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(x, "mode")->valuestring, "external");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(
				 cJSON_GetObjectItemCaseSensitive(x, "refused"), "quota_user")->valueint, 5);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x, "refused")),
			 NB_TURN_REFUSE_COUNT);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(
				 cJSON_GetObjectItemCaseSensitive(x, "dropped"), "bandwidth")->valueint, 6);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x, "dropped")),
			 NB_TURN_DROP_COUNT);
	cJSON_Delete(j);

	s.version = NULL;
	assert_true(nb_status_format(&s, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "{\"version\":\"\","));
	/* The broker's key, when given, follows the version; a character a
	 * JSON string would need escaped is shown as '?'. */
	s.key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
	assert_true(nb_status_format(&s, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "{\"version\":\"\",\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\","));
	s.key = "ab\"c\\d";
	assert_true(nb_status_format(&s, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"key\":\"ab?c?d\","));
}

static void test_request(void **state)
{
	(void)state;
	assert_true(nb_status_is_request((const uint8_t *)"status", 6));
	assert_true(nb_status_is_request((const uint8_t *)"status\n", 7));
	assert_true(nb_status_is_request((const uint8_t *)"status\r\n", 8));
	assert_false(nb_status_is_request((const uint8_t *)"status\r", 7));
	assert_false(nb_status_is_request((const uint8_t *)"status\n\n", 8));
	assert_false(nb_status_is_request((const uint8_t *)"statu", 5));
	assert_false(nb_status_is_request((const uint8_t *)"STATUS", 6));
	assert_false(nb_status_is_request((const uint8_t *)"statusx", 7));
	assert_false(nb_status_is_request(NULL, 6));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refusals),    cmocka_unit_test(test_rate),
		cmocka_unit_test(test_format_zero), cmocka_unit_test(test_format_full),
		cmocka_unit_test(test_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
