#!/usr/bin/env python3
"""pcp_probe.py - a small PCP (RFC 6887) and NAT-PMP (RFC 6886) client, for tests.

It sends ONE request (retransmitted --tries times, --timeout apart) to
SERVER:5351 and prints ONE JSON line: what it sent, what came back, and the
decoded fields. By default it accepts an answer only from SERVER:5351 and,
for PCP, only with the opcode, the R bit and (for MAP) the nonce it sent;
anything else is reported under "ignored" and it keeps waiting, as a strict
client should. Python 3 standard library only.

PCP request (RFC 6887 7.1, 11.1), as built here:

   0               1               2               3
  +---------------+-+-------------+---------------+---------------+
  | version = 2   |R| opcode      |   reserved (0)                |
  +---------------+-+-------------+---------------+---------------+
  |                 requested lifetime (seconds)                  |
  +---------------------------------------------------------------+
  |        PCP client's IP address (128 bits, ::ffff:a.b.c.d)     |
  +---------------------------------------------------------------+
  MAP only:
  |                 mapping nonce (96 bits)                       |
  +---------------+-----------------------------------------------+
  | protocol      |          reserved (24 bits)                   |
  +---------------+---------------+-------------------------------+
  |        internal port          |   suggested external port     |
  +-------------------------------+-------------------------------+
  |   suggested external IP (128 bits, ::ffff:0.0.0.0 = none)     |
  +---------------------------------------------------------------+

PCP response: version, R=1|opcode, reserved, result code, lifetime,
epoch time, 96 reserved bits, then (MAP) nonce, protocol, 24 reserved,
internal port, assigned external port, assigned external IP.

NAT-PMP: address request = 00 00; answer 00 80 RESULT(2) EPOCH(4) IP(4).
Map request = 00 OP(1 udp, 2 tcp) 0000 INTPORT EXTPORT LIFETIME(4);
answer 00 OP+128 RESULT(2) EPOCH(4) INTPORT EXTPORT LIFETIME(4).

Exit status: 0 an answer with result 0; 3 an answer with another result
(or an answer that does not decode); 4 ICMP port unreachable came back
("icmp": "port unreachable"); 1 no (acceptable) answer; 2 usage.

examples (from the host behind the router):
  pcp_probe.py 192.168.6.1 announce
  pcp_probe.py 192.168.6.1 map --proto udp --port 40001 --lifetime 120
  pcp_probe.py 192.168.6.1 map --proto tcp --port 40002 --lifetime 0 --nonce 00112233445566778899aabb
  pcp_probe.py 192.168.6.1 pmp-addr
  pcp_probe.py 192.168.6.1 pmp-map --proto udp --port 40003 --lifetime 60
  pcp_probe.py 192.168.6.1 raw 0201000000000078
"""

import argparse
import ipaddress
import json
import os
import select
import socket
import struct
import sys
import time

PORT = 5351
PROTOS = {"udp": 17, "tcp": 6}
PCP_RESULTS = {0: "SUCCESS", 1: "UNSUPP_VERSION", 2: "NOT_AUTHORIZED", 3: "MALFORMED_REQUEST",
               4: "UNSUPP_OPCODE", 5: "UNSUPP_OPTION", 6: "MALFORMED_OPTION", 7: "NETWORK_FAILURE",
               8: "NO_RESOURCES", 9: "UNSUPP_PROTOCOL", 10: "USER_EX_QUOTA",
               11: "CANNOT_PROVIDE_EXTERNAL", 12: "ADDRESS_MISMATCH", 13: "EXCESSIVE_REMOTE_PEERS"}
PMP_RESULTS = {0: "SUCCESS", 1: "UNSUPP_VERSION", 2: "NOT_AUTHORIZED", 3: "NETWORK_FAILURE",
               4: "OUT_OF_RESOURCES", 5: "UNSUPP_OPCODE"}


def v4mapped(ip):
    return b"\x00" * 10 + b"\xff\xff" + socket.inet_aton(ip)


def ip16_str(b):
    a = ipaddress.IPv6Address(b)
    return str(a.ipv4_mapped) if a.ipv4_mapped is not None else str(a)


def decode(data):
    """Decode any answer (PCP or NAT-PMP) into a dict; never raises."""
    d = {"len": len(data)}
    if len(data) < 2:
        d["error"] = "shorter than 2 bytes"
        return d
    ver, op = data[0], data[1]
    d["version"], d["op"] = ver, op
    if ver == 0:
        d["kind"] = "natpmp"
        if len(data) < 8:
            d["error"] = "NAT-PMP answer shorter than 8 bytes"
            return d
        res, epoch = struct.unpack_from("!HI", data, 2)
        d.update(result=res, result_name=PMP_RESULTS.get(res), epoch=epoch)
        if op == 128 and len(data) >= 12:
            d["external_ip"] = socket.inet_ntoa(data[8:12])
        elif op in (129, 130) and len(data) >= 16:
            ip, ep, lt = struct.unpack_from("!HHI", data, 8)
            d.update(internal_port=ip, external_port=ep, lifetime=lt)
        return d
    d["kind"] = "pcp"
    d["r"] = op >> 7
    d["opcode"] = op & 0x7f
    if len(data) < 24:
        d["error"] = "PCP answer shorter than 24 bytes"
        return d
    d["reserved1"] = data[2]
    res, lt, epoch = struct.unpack_from("!BII", data, 3)
    d.update(result=res, result_name=PCP_RESULTS.get(res), lifetime=lt, epoch=epoch,
             reserved12=data[12:24].hex())
    if d["opcode"] == 1 and len(data) >= 60:
        p = data[24:60]
        d.update(nonce=p[0:12].hex(), protocol=p[12], reserved3=p[13:16].hex(),
                 internal_port=struct.unpack_from("!H", p, 16)[0],
                 external_port=struct.unpack_from("!H", p, 18)[0],
                 external_ip=ip16_str(p[20:36]))
        if len(data) > 60:
            d["options"] = data[60:].hex()
    elif len(data) > 24:
        d["payload"] = data[24:].hex()
    return d


def local_ip_towards(server):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((server, PORT))
        return s.getsockname()[0]
    finally:
        s.close()


def parse_args(argv):
    p = argparse.ArgumentParser(prog="pcp_probe.py", description="One PCP / NAT-PMP request, one JSON line.",
                                epilog=__doc__.split("examples")[1] if "examples" in __doc__ else None,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("server", help="the PCP/NAT-PMP server (the default gateway), IPv4")
    p.add_argument("--server-port", type=int, default=PORT)
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait per try (default 1)")
    p.add_argument("--tries", type=int, default=2, help="transmissions (default 2)")
    p.add_argument("--bind", default="0.0.0.0", metavar="IP[:PORT]", help="local address (default any)")
    p.add_argument("--any-source", action="store_true",
                   help="accept an answer from any address/port (default: only SERVER:5351)")
    p.add_argument("--any-nonce", action="store_true", help="accept a PCP MAP answer with another nonce")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("announce", help="PCP ANNOUNCE (opcode 0)")
    a.add_argument("--version", type=int, default=2)
    a.add_argument("--client-ip", help="PCP client IP field (default: our source address)")
    a.add_argument("--lifetime", type=int, default=0)
    m = sub.add_parser("map", help="PCP MAP (opcode 1)")
    m.add_argument("--version", type=int, default=2)
    m.add_argument("--proto", default="udp", help="udp, tcp or a number (0 = all)")
    m.add_argument("--port", type=int, required=True, help="internal port")
    m.add_argument("--external-port", type=int, default=None, help="suggested (default = --port)")
    m.add_argument("--external-ip", default="0.0.0.0", help="suggested external IPv4 (default none)")
    m.add_argument("--lifetime", type=int, default=120, help="requested lifetime, 0 deletes (default 120)")
    m.add_argument("--nonce", default=None, help="24 hex digits (default random)")
    m.add_argument("--client-ip", help="PCP client IP field (default: our source address)")
    m.add_argument("--option", action="append", default=[], metavar="HEX",
                   help="raw option bytes to append (e.g. 02000000 = PREFER_FAILURE)")
    pa = sub.add_parser("pmp-addr", help="NAT-PMP public address request (opcode 0)")
    pa.add_argument("--version", type=int, default=0)
    pm = sub.add_parser("pmp-map", help="NAT-PMP map request (opcode 1 udp / 2 tcp)")
    pm.add_argument("--version", type=int, default=0)
    pm.add_argument("--proto", default="udp", choices=("udp", "tcp"))
    pm.add_argument("--port", type=int, required=True, help="internal port")
    pm.add_argument("--external-port", type=int, default=None, help="suggested (default = --port)")
    pm.add_argument("--lifetime", type=int, default=120)
    r = sub.add_parser("raw", help="send these bytes as they are")
    r.add_argument("hex")
    return p.parse_args(argv)


def build(a, src_ip):
    """-> (request bytes, expected nonce hex or None, expected answer op or None)"""
    if a.cmd == "raw":
        return bytes.fromhex(a.hex), None, None
    if a.cmd == "pmp-addr":
        return bytes([a.version & 0xff, 0]), None, 128
    if a.cmd == "pmp-map":
        op = 1 if a.proto == "udp" else 2
        ext = a.port if a.external_port is None else a.external_port
        return struct.pack("!BBHHHI", a.version & 0xff, op, 0, a.port, ext, a.lifetime), None, 128 + op
    client = v4mapped(a.client_ip or src_ip)
    if a.cmd == "announce":
        return struct.pack("!BBHI", a.version & 0xff, 0, 0, a.lifetime) + client, None, 0x80
    nonce = bytes.fromhex(a.nonce) if a.nonce else os.urandom(12)
    if len(nonce) != 12:
        raise SystemExit("--nonce wants 24 hex digits")
    proto = PROTOS.get(a.proto.lower()) if not a.proto.isdigit() else int(a.proto)
    if proto is None:
        raise SystemExit("--proto: udp, tcp or a number")
    ext = a.port if a.external_port is None else a.external_port
    req = (struct.pack("!BBHI", a.version & 0xff, 1, 0, a.lifetime) + client + nonce
           + struct.pack("!B3xHH", proto, a.port, ext) + v4mapped(a.external_ip)
           + b"".join(bytes.fromhex(o) for o in a.option))
    return req, nonce.hex(), 0x81


def main(argv):
    a = parse_args(argv)
    host, _, bport = a.bind.partition(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, int(bport) if bport else 0))
    # report ICMP errors (port unreachable) on this unconnected socket
    s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVERR", 11), 1)
    src_ip = host if host != "0.0.0.0" else local_ip_towards(a.server)
    req, nonce, want_op = build(a, src_ip)
    out = {"cmd": a.cmd, "server": a.server, "src": "%s:%d" % (src_ip, s.getsockname()[1]),
           "sent": req.hex(), "answered": False, "ignored": []}
    t0 = time.monotonic()
    for _ in range(max(1, a.tries)):
        s.sendto(req, (a.server, a.server_port))
        end = time.monotonic() + a.timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([s], [], [], left)
            if not r:
                break
            try:
                data, peer = s.recvfrom(2048)
            except ConnectionRefusedError:
                # ICMP port unreachable: nothing listens there; a definite no
                out.update(icmp="port unreachable", rtt_ms=round((time.monotonic() - t0) * 1000, 1))
                print(json.dumps(out), flush=True)
                return 4
            except OSError as e:
                out.setdefault("errors", []).append(str(e))
                continue
            d = decode(data)
            why = None
            if not a.any_source and peer != (a.server, a.server_port):
                why = "source %s:%d is not the server" % peer
            elif want_op is not None and d.get("op") != want_op and d.get("result") != 1:
                # another opcode is only acceptable as an UNSUPP_VERSION answer
                why = "op %s, want %d" % (d.get("op"), want_op)
            elif nonce and not a.any_nonce and d.get("kind") == "pcp" and d.get("nonce", nonce) != nonce:
                why = "nonce %s, sent %s" % (d.get("nonce"), nonce)
            if why:
                out["ignored"].append({"from": "%s:%d" % peer, "reply": data.hex(), "why": why})
                continue
            out.update(answered=True, rtt_ms=round((time.monotonic() - t0) * 1000, 1),
                       **{"from": "%s:%d" % peer, "reply": data.hex(), "decoded": d})
            print(json.dumps(out), flush=True)
            return 0 if d.get("result") == 0 and "error" not in d else 3
    print(json.dumps(out), flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
