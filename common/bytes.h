/* common/bytes.h - big-endian integer access through memcpy; never cast onto a packet. */
#ifndef NB_COMMON_BYTES_H
#define NB_COMMON_BYTES_H

#include <stdint.h>
#include <string.h>

static inline uint16_t nb_get_u16be(const uint8_t *p)
{
	uint8_t b[2];
	memcpy(b, p, 2);
	return (uint16_t)((unsigned)b[0] << 8 | b[1]);
}

static inline uint32_t nb_get_u32be(const uint8_t *p)
{
	uint8_t b[4];
	memcpy(b, p, 4);
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static inline void nb_put_u16be(uint8_t *p, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	memcpy(p, b, 2);
}

static inline void nb_put_u32be(uint8_t *p, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	memcpy(p, b, 4);
}

#endif
