/* common/time.h - the monotonic clock. Only shells call this; pure cores take `now`. */
#ifndef NB_COMMON_TIME_H
#define NB_COMMON_TIME_H

#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t nb_now_ms(void);
/* Nanoseconds on CLOCK_MONOTONIC. */
uint64_t nb_now_ns(void);

#endif
