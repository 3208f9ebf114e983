#!/usr/bin/python3
"""tests/lab/rawudp.py - UDP datagrams in pcap files, and spoofed UDP datagrams.

    rawudp.py frames PCAP [--src IP[:PORT]] [--dst IP[:PORT]] [--type HEXBYTE]
        one line per IPv4 UDP datagram in PCAP (tcpdump -w; Ethernet, Linux
        cooked v1 or v2): "SRC:SPORT DST:DPORT LEN HEXPAYLOAD", optionally
        only those from SRC, to DST, whose first payload byte is TYPE. A
        record cut short at the end (a capture still being written) ends the
        list without an error.
    rawudp.py send SRC:SPORT DST:DPORT HEXPAYLOAD...
        each payload as one UDP datagram with that source address and port,
        through a raw IP_HDRINCL socket (root), UDP checksum computed.
"""
import socket
import struct
import sys


def _payloads(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise SystemExit("rawudp: %s: not a pcap file" % path)
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0xFFFF
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        if off + incl > len(data):
            return  # still being written
        pkt = data[off:off + incl]
        off += incl
        if linktype == 1:  # Ethernet (skip 802.1Q tags)
            l3, et = 14, struct.unpack(">H", pkt[12:14])[0] if len(pkt) >= 14 else 0
            while et == 0x8100 and len(pkt) >= l3 + 4:
                et = struct.unpack(">H", pkt[l3 + 2:l3 + 4])[0]
                l3 += 4
        elif linktype == 113:  # Linux cooked v1
            l3, et = 16, struct.unpack(">H", pkt[14:16])[0] if len(pkt) >= 16 else 0
        elif linktype == 276:  # Linux cooked v2
            l3, et = 20, struct.unpack(">H", pkt[0:2])[0] if len(pkt) >= 20 else 0
        elif linktype == 101:  # raw IP
            l3, et = 0, 0x0800
        else:
            raise SystemExit("rawudp: link type %d not handled" % linktype)
        if et != 0x0800 or len(pkt) < l3 + 20:
            continue
        ip = pkt[l3:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[0] >> 4 != 4 or ip[9] != 17 or len(ip) < ihl + 8:
            continue
        if struct.unpack(">H", ip[6:8])[0] & 0x3FFF:
            continue  # fragments: not ours
        sport, dport, ulen = struct.unpack(">HHH", ip[ihl:ihl + 6])
        payload = ip[ihl + 8:ihl + ulen]
        yield socket.inet_ntoa(ip[12:16]), sport, socket.inet_ntoa(ip[16:20]), dport, payload


def _match(want, ip, port):
    if want is None:
        return True
    wip, _, wport = want.partition(":")
    return wip == ip and (not wport or int(wport) == port)


def frames(argv):
    path, src, dst, typ = argv[0], None, None, None
    i = 1
    while i < len(argv):
        if argv[i] == "--src":
            src = argv[i + 1]
        elif argv[i] == "--dst":
            dst = argv[i + 1]
        elif argv[i] == "--type":
            typ = int(argv[i + 1], 16)
        else:
            raise SystemExit("rawudp: frames: unknown option %s" % argv[i])
        i += 2
    for sip, sp, dip, dp, pl in _payloads(path):
        if not _match(src, sip, sp) or not _match(dst, dip, dp):
            continue
        if typ is not None and (not pl or pl[0] != typ):
            continue
        print("%s:%d %s:%d %d %s" % (sip, sp, dip, dp, len(pl), pl.hex()))


def _csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def packet(sip, sport, dip, dport, pl):
    """One IPv4 UDP datagram with its headers, checksums computed (for IP_HDRINCL)."""
    src, dst = socket.inet_aton(sip), socket.inet_aton(dip)
    ulen = 8 + len(pl)
    udp = struct.pack("!HHHH", int(sport), int(dport), ulen, 0) + pl
    c = _csum(src + dst + struct.pack("!BBH", 0, 17, ulen) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 0, 0x4000, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return ip + udp


def raw_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    return s


def send(argv):
    sip, _, sport = argv[0].rpartition(":")
    dip, _, dport = argv[1].rpartition(":")
    s = raw_socket()
    for hx in argv[2:]:
        s.sendto(packet(sip, sport, dip, dport, bytes.fromhex(hx)), (dip, 0))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "frames":
        frames(sys.argv[2:])
    elif len(sys.argv) >= 5 and sys.argv[1] == "send":
        send(sys.argv[2:])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
