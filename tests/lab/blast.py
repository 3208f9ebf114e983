#!/usr/bin/python3
"""tests/lab/blast.py - a third host's datagrams at a birthday attempt.

    blast.py --dst IP [--port PORT] [--spoof IP] [--rate N] [--seconds S]

Sends, for S seconds (default 3) at N datagrams per second (default 2000),
UDP datagrams to IP: to random ports of 1024..65535, or to PORT alone. Each
is one of: a STUN Binding request that looks like a punch check (random
transaction ID, a USERNAME "<16 hex>:<name>", a MESSAGE-INTEGRITY of random
bytes, a correct FINGERPRINT), a Binding success response of the same shape
(as if answering a probe), or random bytes. With --spoof IP the datagrams
come from IP and a random port of 1024..65535 (a raw socket: root), as if
from the other peer's NAT. Prints "sent N" at the end. Only for the lab's
own addresses.
"""
import argparse
import os
import random
import socket
import struct
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawudp  # noqa: E402  (the lab's raw UDP helper, beside this file)

MAGIC = 0x2112A442


def attr(t, v):
    pad = (4 - len(v) % 4) % 4
    return struct.pack("!HH", t, len(v)) + v + b"\0" * pad


def stun(cls_type, rng):
    tid = bytes(rng.getrandbits(8) for _ in range(12))
    user = ("%016x:%s" % (rng.getrandbits(64), "peer")).encode()
    body = attr(0x0006, user) + attr(0x0008, bytes(rng.getrandbits(8) for _ in range(20)))
    hdr = struct.pack("!HHI", cls_type, len(body) + 8, MAGIC) + tid
    msg = hdr + body
    crc = (zlib.crc32(msg) ^ 0x5354554E) & 0xFFFFFFFF
    return msg + struct.pack("!HHI", 0x8028, 4, crc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dst", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--spoof")
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    if not a.dst.startswith("203.0.113."):
        sys.exit("blast: only the lab's internet (203.0.113.0/24)")
    rng = random.Random(os.getpid())
    if a.spoof:
        s = rawudp.raw_socket()
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    end = time.monotonic() + a.seconds
    gap = 1.0 / a.rate
    nxt = time.monotonic()
    n = 0
    while time.monotonic() < end:
        k = n % 3
        if k == 0:
            p = stun(0x0001, rng)
        elif k == 1:
            p = stun(0x0101, rng)
        else:
            p = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 120)))
        port = a.port or rng.randrange(1024, 65536)
        try:
            if a.spoof:
                s.sendto(rawudp.packet(a.spoof, rng.randrange(1024, 65536), a.dst, port, p), (a.dst, 0))
            else:
                s.sendto(p, (a.dst, port))
        except OSError:
            pass
        n += 1
        nxt += gap
        d = nxt - time.monotonic()
        if d > 0:
            time.sleep(d)
    print("sent %d" % n)


if __name__ == "__main__":
    main()
