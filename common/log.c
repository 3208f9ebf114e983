/* common/log.c - leveled logging to stderr. */
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static enum nb_log_level g_level = NB_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

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
	n = snprintf(line, sizeof(line), "%s %s: ", level_names[level], component);
	if (n < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line, so concurrent processes do not interleave. */
	fprintf(stderr, "%s\n", line);
}
