#!/usr/bin/python3
"""tests/lab/udp_tool.py - UDP helpers for test_forward.sh (no third-party modules).

  udp_tool.py echo HOST PORT
      echo every datagram back to its sender, unchanged, until killed
  udp_tool.py pattern N FILE
      write N bytes to FILE: 0, 1, ..., 255, 0, 1, ... (every byte value)
  udp_tool.py send HOST PORT INFILE OUTFILE [SECS]
      send INFILE's bytes as one datagram (again every 300 ms) until a reply
      comes or SECS (default 3) pass; the first reply's bytes go to OUTFILE.
      Exit 0 on a reply, 1 on none.
"""
import socket
import sys
import time


def fam(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def echo(host, port):
    s = socket.socket(fam(host), socket.SOCK_DGRAM)
    s.bind((host, port))
    while True:
        data, src = s.recvfrom(65535)
        s.sendto(data, src)


def send(host, port, infile, outfile, secs):
    with open(infile, "rb") as f:
        data = f.read()
    s = socket.socket(fam(host), socket.SOCK_DGRAM)
    s.settimeout(0.3)
    end = time.monotonic() + secs
    while time.monotonic() < end:
        s.sendto(data, (host, port))
        try:
            reply, _ = s.recvfrom(65535)
        except (socket.timeout, ConnectionRefusedError):
            continue
        with open(outfile, "wb") as f:
            f.write(reply)
        return 0
    return 1


def main(argv):
    if len(argv) >= 4 and argv[1] == "echo":
        echo(argv[2], int(argv[3]))
    elif len(argv) == 4 and argv[1] == "pattern":
        with open(argv[3], "wb") as f:
            f.write(bytes(i % 256 for i in range(int(argv[2]))))
        return 0
    elif len(argv) in (6, 7) and argv[1] == "send":
        return send(argv[2], int(argv[3]), argv[4], argv[5], float(argv[6]) if len(argv) == 7 else 3.0)
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
