#!/usr/bin/python3
"""tests/lab/tcp_tool.py - small TCP servers and clients for the TCP forwarding lab test.

  tcp_tool.py echo HOST PORT            serve: echo every byte back; at EOF finish
                                        sending, then close (a half-close test needs this)
  tcp_tool.py sink HOST PORT            serve: accept and never read (connections held)
  tcp_tool.py halfclose HOST PORT N T   client: send N pattern bytes, shutdown(SHUT_WR),
                                        read until EOF (T s at most); exit 0 if the echo
                                        is exactly those N bytes
  tcp_tool.py push HOST PORT N T        client: write up to N bytes, T s at most, never
                                        read; print "accepted BYTES"; exit 0
  tcp_tool.py closed HOST PORT T        client: connect, send a line; exit 0 if the
                                        connection is closed (EOF or reset) within T s
  tcp_tool.py many HOST PORT N T        client: open N connections at once; on each send
                                        a line and wait (T s in all) for its echo; print
                                        "ok X failed Y" then, on the ones that worked, a
                                        second round: "again Z"; exit 0
Servers print "listening" once bound and run until killed.
"""
import errno
import select
import socket
import sys
import time


def pattern(n):
    return bytes(i % 251 for i in range(n))


def listen(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(256)
    print("listening", flush=True)
    return s


def serve_echo(host, port):
    ls = listen(host, port)
    ls.setblocking(False)
    conns = {}  # sock -> [pending bytes, eof]
    while True:
        rd = [ls] + [c for c, st in conns.items() if not st[1] and len(st[0]) < (1 << 20)]
        wr = [c for c, st in conns.items() if st[0]]
        r, w, _ = select.select(rd, wr, [], 1.0)
        for c in r:
            if c is ls:
                try:
                    n, _ = ls.accept()
                    n.setblocking(False)
                    conns[n] = [bytearray(), False]
                except OSError:
                    pass
                continue
            try:
                d = c.recv(65536)
            except OSError:
                d = None
            if d is None:
                c.close()
                del conns[c]
            elif not d:
                conns[c][1] = True
            else:
                conns[c][0] += d
        for c in w:
            if c not in conns:
                continue
            try:
                k = c.send(conns[c][0])
                del conns[c][0][:k]
            except OSError:
                c.close()
                del conns[c]
        for c in [c for c, st in conns.items() if st[1] and not st[0]]:
            c.close()  # all echoed after EOF: close
            del conns[c]


def serve_sink(host, port):
    ls = listen(host, port)
    held = []
    while True:
        c, _ = ls.accept()
        held.append(c)


def connect(host, port, t=5):
    s = socket.create_connection((host, port), timeout=t)
    return s


def halfclose(host, port, n, t):
    data = pattern(n)
    s = connect(host, port)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = bytearray()
    end = time.monotonic() + t
    while time.monotonic() < end:
        s.settimeout(max(0.1, end - time.monotonic()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        if not d:
            print("got %d bytes, then EOF" % len(got))
            return 0 if bytes(got) == data else 1
        got += d
    print("got %d bytes, no EOF within %s s" % (len(got), t))
    return 1


def push(host, port, n, t):
    s = connect(host, port)
    s.setblocking(False)
    chunk = b"\x5a" * 65536
    sent = 0
    end = time.monotonic() + t
    while sent < n and time.monotonic() < end:
        _, w, _ = select.select([], [s], [], 0.2)
        if not w:
            continue
        try:
            sent += s.send(chunk[: min(len(chunk), n - sent)])
        except BlockingIOError:
            pass
    print("accepted %d" % sent, flush=True)
    s.close()
    return 0


def closed(host, port, t):
    s = connect(host, port)
    try:
        s.sendall(b"hello\n")
    except OSError:
        print("closed (send)")
        return 0
    s.settimeout(t)
    try:
        d = s.recv(4096)
    except socket.timeout:
        print("still open after %s s" % t)
        return 1
    except OSError as e:
        print("closed (%s)" % errno.errorcode.get(e.errno, e.errno))
        return 0
    print("closed (EOF)" if not d else "got data: %r" % d[:40])
    return 0 if not d else 1


def roundtrip(socks, t, tag):
    """Send a line on each socket; which ones echo it back within t s."""
    ok = set()
    want = {}
    for i, s in enumerate(socks):
        msg = b"%s %d\n" % (tag, i)
        try:
            s.send(msg)
            want[s] = [msg, b""]
        except OSError:
            pass
    end = time.monotonic() + t
    while want and time.monotonic() < end:
        r, _, _ = select.select(list(want), [], [], 0.2)
        for s in r:
            try:
                d = s.recv(4096)
            except OSError:
                d = b""
            if not d:
                del want[s]
                continue
            want[s][1] += d
            if want[s][1] == want[s][0]:
                ok.add(s)
                del want[s]
    return ok


def many(host, port, n, t):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect((host, port))
        s.setblocking(False)
        socks.append(s)
    ok = roundtrip(socks, t, b"one")
    print("ok %d failed %d" % (len(ok), n - len(ok)), flush=True)
    good = [s for s in socks if s in ok]
    again = roundtrip(good, t, b"two")
    print("again %d" % len(again), flush=True)
    for s in socks:
        s.close()
    return 0


def main(a):
    if len(a) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    mode, host, port = a[1], a[2], int(a[3])
    if mode == "echo":
        serve_echo(host, port)
    elif mode == "sink":
        serve_sink(host, port)
    elif mode == "halfclose":
        return halfclose(host, port, int(a[4]), float(a[5]))
    elif mode == "push":
        return push(host, port, int(a[4]), float(a[5]))
    elif mode == "closed":
        return closed(host, port, float(a[4]))
    elif mode == "many":
        return many(host, port, int(a[4]), float(a[5]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
