/* common/log.c - leveled logging to stderr. */
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum nb_log_level g_level = NB_LOG_INFO;
static int g_journal = -1; /* -1 not looked at yet */

/* sd-daemon(3) priority prefixes: journald reads "<3>" as err, "<4>" as
 * warning, "<6>" as info, "<7>" as debug, and strips them. Used only when
 * stderr is the journal (systemd sets JOURNAL_STREAM for a unit's stdio). */
static const char *const journal_prefix[] = { "<3>", "<4>", "<6>", "<7>" };

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void nb_log_set_journal(int mode)
{
	g_journal = mode < 0 ? -1 : mode != 0;
}

void nb_log_set_level(enum nb_log_level level)
{
	g_level = level;
}

enum nb_log_level nb_log_get_level(void)
{
	return g_level;
}

int nb_log_parse_level(const char *s, enum nb_log_level *ret)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (s != NULL && strcmp(s, level_names[i]) == 0) {
			*ret = (enum nb_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void nb_log(enum nb_log_level level, const char *component, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (level > g_level)
		return;
	if (g_journal < 0)
		g_journal = getenv("JOURNAL_STREAM") != NULL;
	n = snprintf(line, sizeof(line), "%s%s %s: ", g_journal ? journal_prefix[level] : "",
		     level_names[level], component);
	if (n < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line, so concurrent processes do not interleave. */
	fprintf(stderr, "%s\n", line);
}
