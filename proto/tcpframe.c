/* proto/tcpframe.c - framing of the broker's TCP streams. */
#include "proto/tcpframe.h"

#include <string.h>

#include "common/bytes.h"

ssize_t nb_tcpf_frame_len(const uint8_t *buf, size_t len, enum nb_tcpf_kind *ret_kind)
{
	size_t n;

	if (len < 4)
		return 0;
	if (buf[0] <= 0x03) {
		n = nb_get_u16be(buf + 2);
		if (n % 4 != 0)
			return NB_TCPF_E_GARBAGE;
		*ret_kind = NB_TCPF_STUN;
		return (ssize_t)(20 + n);
	}
	if (buf[0] >= 0x40 && buf[0] <= 0x7F) {
		n = nb_get_u16be(buf + 2);
		*ret_kind = NB_TCPF_CHANDATA;
		return (ssize_t)(4 + ((n + 3) & ~(size_t)3));
	}
	if (buf[0] == NB_TCPF_TYPE && buf[1] == 0) {
		n = nb_get_u16be(buf + 2);
		if (n < 1 || n > NB_TCPF_MAX_DATAGRAM)
			return NB_TCPF_E_GARBAGE;
		*ret_kind = NB_TCPF_DATAGRAM;
		return (ssize_t)(NB_TCPF_HDR + n);
	}
	return NB_TCPF_E_GARBAGE;
}

ssize_t nb_tcpf_encode(uint8_t *buf, size_t cap, const uint8_t *dgram, size_t len)
{
	if (len < 1 || len > NB_TCPF_MAX_DATAGRAM || cap < NB_TCPF_HDR || cap - NB_TCPF_HDR < len)
		return NB_TCPF_E_NOSPACE;
	buf[0] = NB_TCPF_TYPE;
	buf[1] = 0;
	nb_put_u16be(buf + 2, (uint16_t)len);
	memmove(buf + NB_TCPF_HDR, dgram, len);
	return (ssize_t)(NB_TCPF_HDR + len);
}
