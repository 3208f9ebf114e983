/* proto/tcpframe.h - what one TCP connection to the broker carries, and how
 * its frames are told apart. Pure.
 *
 * A host whose network blocks UDP reaches the broker over TCP, on the same
 * port as STUN (docs/protocol.md "Over TCP"). The stream carries three
 * kinds of frame, told apart by the first byte (RFC 7983 style):
 *
 *   0x00-0x03  a STUN message (Binding, TURN), RFC 8489 §6.2.2: its length
 *              is 20 + the header's length field
 *   0x40-0x7F  TURN ChannelData, RFC 8656 §12.5: 4 + length, padded to 4
 *              (channels up to 0x7FFF, as RFC 5766 and coturn allow)
 *   0xDF       a natbroker datagram (a Noise handshake or sealed control
 *              frame, a key request or answer) behind a 4-byte header:
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |      0xDF     |      0x00     |     Length (1..1200)          |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |            the datagram, exactly as it would go over UDP      /
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * 0xDF lies outside every RFC 7983 range and outside the datagrams' own
 * first bytes (0xD1-0xD6), so a frame is never mistaken for one.
 */
#ifndef NB_PROTO_TCPFRAME_H
#define NB_PROTO_TCPFRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NB_TCPF_TYPE 0xDF
#define NB_TCPF_HDR 4
#define NB_TCPF_MAX_DATAGRAM 1200

enum nb_tcpf_kind {
	NB_TCPF_STUN = 1,
	NB_TCPF_CHANDATA,
	NB_TCPF_DATAGRAM,
};

/* Errors (negative), our own range. */
enum nb_tcpf_err {
	NB_TCPF_E_GARBAGE = -4001, /* a first byte of no kind, or a bad header */
	NB_TCPF_E_NOSPACE = -4002, /* encoder: buffer too small, or datagram too long */
};

/* The length of the first frame in buf (header and padding included), 0
 * when fewer than 4 bytes are there, or NB_TCPF_E_GARBAGE: the stream
 * cannot be followed and the connection should close. *ret_kind is set
 * when the return is > 0. */
ssize_t nb_tcpf_frame_len(const uint8_t *buf, size_t len, enum nb_tcpf_kind *ret_kind);

/* Write the 0xDF header and the datagram into buf. Returns the frame's
 * length or NB_TCPF_E_NOSPACE. */
ssize_t nb_tcpf_encode(uint8_t *buf, size_t cap, const uint8_t *dgram, size_t len);

#endif
