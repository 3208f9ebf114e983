/* peer/natpeer_log.c - libnatpeer's nb_log backend: to the instance's log callback (see natpeer_log.h). */
#include "peer/natpeer_log.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "common/log.h"

static _Thread_local struct nb_lib_log *t_sinks;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void nb_lib_log_attach(struct nb_lib_log *l)
{
	struct nb_lib_log **p = &t_sinks;

	while (*p != NULL && *p != l)
		p = &(*p)->next;
	if (*p == NULL) {
		l->next = NULL;
		*p = l;
	}
}

void nb_lib_log_detach(struct nb_lib_log *l)
{
	for (struct nb_lib_log **p = &t_sinks; *p != NULL; p = &(*p)->next) {
		if (*p == l) {
			*p = l->next;
			l->next = NULL;
			return;
		}
	}
}

/* Only nb_log, nb_log_get_level (and the macros on them) are used in the
 * library: the level is each instance's (natpeer_config_set_log_level),
 * and nb_log_set_level / _set_journal / _parse_level are the CLI's, in
 * common/log.c. */
enum nb_log_level nb_log_get_level(void)
{
	return t_sinks != NULL ? (enum nb_log_level)t_sinks->level : NB_LOG_ERROR;
}

void nb_log(enum nb_log_level level, const char *component, const char *fmt, ...)
{
	struct nb_lib_log *l = t_sinks;
	char line[1024];
	va_list ap;
	int n;

	if (l == NULL || l->fn == NULL || (int)level > l->level || (unsigned)level > NB_LOG_DEBUG)
		return;
	n = snprintf(line, sizeof(line), "%s %s: ", level_names[level], component);
	if (n < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	l->fn(l->arg, (int)level, line);
}
