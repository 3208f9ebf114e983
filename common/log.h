/* common/log.h - leveled logging to stderr, one line per event.
 *
 * Format: "<level> <component>: message" (journald-friendly: no timestamps
 * when stderr is not a terminal, since journald adds its own). */
#ifndef NB_COMMON_LOG_H
#define NB_COMMON_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum nb_log_level {
	NB_LOG_ERROR = 0,
	NB_LOG_WARN = 1,
	NB_LOG_INFO = 2,
	NB_LOG_DEBUG = 3,
};

void nb_log_set_level(enum nb_log_level level);
/* Prefix lines with sd-daemon priorities ("<3>error ...") for journald: 1 on,
 * 0 off, -1 (default) on when the JOURNAL_STREAM variable is set. */
void nb_log_set_journal(int mode);
enum nb_log_level nb_log_get_level(void);
/* "error", "warn", "info", "debug" -> 0 and *ret; else -EINVAL. */
int nb_log_parse_level(const char *s, enum nb_log_level *ret);

__attribute__((format(printf, 3, 4))) void nb_log(enum nb_log_level level, const char *component,
						  const char *fmt, ...);

#define nb_log_error(c, ...) nb_log(NB_LOG_ERROR, c, __VA_ARGS__)
#define nb_log_warn(c, ...) nb_log(NB_LOG_WARN, c, __VA_ARGS__)
#define nb_log_info(c, ...) nb_log(NB_LOG_INFO, c, __VA_ARGS__)
#define nb_log_debug(c, ...)                                   \
	do {                                                   \
		if (nb_log_get_level() >= NB_LOG_DEBUG)        \
			nb_log(NB_LOG_DEBUG, c, __VA_ARGS__);  \
	} while (0)

/* Rate-limited logging: at most one line per `interval_ms` per call site
 * state, counting the suppressed ones. For hot-path refusals. */
struct nb_log_ratelimit {
	uint64_t last_ms;
	uint64_t suppressed;
};

#endif
