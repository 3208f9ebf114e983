/* peer/natpeer_log.h - libnatpeer's nb_log (common/log.h) backend: the
 * cores' diagnostic lines go to the log callback of an instance instead of
 * stderr.
 *
 * The cores (client, punch, portmap, ...) call nb_log() without saying for
 * which instance. Each instance attaches a sink to its thread's list while
 * it lives; a line goes to the first sink of the calling thread's list
 * (with several instances on one thread, the oldest one gets the cores'
 * lines). Thread-local, never process-wide: two loops on two threads never
 * see each other's lines. No sink: the line is dropped. In libnatpeer this
 * file replaces common/log.c; the natpeer executable keeps common/log.c.
 */
#ifndef NB_PEER_NATPEER_LOG_H
#define NB_PEER_NATPEER_LOG_H

struct nb_lib_log {
	struct nb_lib_log *next;
	void (*fn)(void *arg, int level, const char *line); /* level: enum nb_log_level */
	void *arg;
	int level; /* lines above it are not formatted */
};

/* Add l to the calling thread's list (at its end). */
void nb_lib_log_attach(struct nb_lib_log *l);
/* Remove l from the calling thread's list; not on it: nothing happens. */
void nb_lib_log_detach(struct nb_lib_log *l);

#endif
