#!/usr/bin/env python3
"""tests/bench/amplification.py - the helper of amplification.sh (python3 stdlib only).

  amplification.py sniff IFACE OUT
      Record every IPv4 packet leaving IFACE (run it in the server's
      namespace) as one JSON line in OUT: time, protocol, addresses, ports,
      payload bytes. Stops on SIGTERM. Creates OUT.ready once listening.

  amplification.py run --server NAME --ip1 IP --client-ip IP --third-ip IP
                       --cases OUT [--stun] [--tcp] [--control] [--spoof-ip IP]
                       [--burst-ip IP]
      Run from the client's namespace (whose address is --client-ip): send
      each unauthenticated request type to IP1:3478 from fresh sockets, one
      case at a time, and append one JSON line per case to OUT (request
      bytes, the datagrams that came back and where to, the case's time
      window). --third-ip is a bystander named in RESPONSE-ADDRESS and
      `verify`; --spoof-ip also sends control datagrams with that forged
      source (raw socket) to show what the server sends to a third party.
      Control cases register the way natpeer does (docs/protocol.md
      "register"): a register, the broker's challenge, the same register
      with its cookie, from the same socket. --burst-ip (a second address
      of the client, used by nothing else) sends 600 Binding requests at
      once from a source whose rate-limit bucket is full.

  amplification.py ping IP
      Exit 0 if a plain Binding to IP:3478 is answered within 0.5 s.

  amplification.py report [--strict PREFIX] CASES EGRESS CLIENT_IPS
      Join each case with the packets the server sent during its window and
      print the table (long form, then a markdown table per server).
      CLIENT_IPS: the client's own addresses, comma-separated. Exit status 1
      if a server whose name starts with PREFIX (default: any) sent
      anything to an address the case did not allow (by default: the
      request's source IP only), or anything outside every case's window to
      an address that is not the client's.

Factor = bytes of the response datagrams' payloads (UDP payload; STUN or
JSON message) / bytes of the request's payload, as in RESEARCH.md (a plain
Binding, 20 B -> 32 B, is 1.6x). The IP column counts IPv4 + UDP headers
(28 B per datagram) as well.
"""
import argparse
import json
import os
import select
import signal
import socket
import struct
import sys
import time
import zlib

COOKIE = 0x2112A442
PORT1, PORT2 = 3478, 3479
WINDOW = 0.25  # seconds to collect the answers of one case (the lab has no delay)

# ---------------------------------------------------------------- sniffer


def cmd_sniff(iface, out):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0))
    s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE (root): keep bursts whole
    # The kernel's time of each packet (SO_TIMESTAMPNS, CLOCK_REALTIME), on
    # the clients' clock (monotonic): a sniffer that lags (it runs niced)
    # still puts every packet in the window of the case that caused it.
    s.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
    offset = time.time() - time.monotonic()
    s.settimeout(0.2)
    with open(out, "a", buffering=1) as f:
        open(out + ".ready", "w").close()
        while True:
            if stop:
                s.setblocking(False)  # stopping: write what is queued, then end
            try:
                data, anc, _, addr = s.recvmsg(65535, socket.CMSG_SPACE(16))
            except (BlockingIOError, socket.timeout):
                if stop:
                    break
                continue
            except InterruptedError:
                continue
            t = time.monotonic()
            for level, typ, val in anc:
                if level == socket.SOL_SOCKET and typ == 35 and len(val) >= 16:
                    sec, nsec = struct.unpack("@qq", val[:16])
                    t = sec + nsec / 1e9 - offset
            if addr[2] != socket.PACKET_OUTGOING or len(data) < 34 or data[12:14] != b"\x08\x00":
                continue
            ip = data[14:]
            ihl = (ip[0] & 15) * 4
            tot = int.from_bytes(ip[2:4], "big")
            frag = int.from_bytes(ip[6:8], "big") & 0x1FFF
            rec = {"t": t, "proto": ip[9], "src": socket.inet_ntoa(ip[12:16]),
                   "dst": socket.inet_ntoa(ip[16:20]), "ip_len": tot, "frag": frag}
            l4 = ip[ihl:tot]
            if frag == 0 and ip[9] == 17 and len(l4) >= 8:
                rec["sport"], rec["dport"], ulen = struct.unpack("!HHH", l4[:6])
                rec["payload"] = ulen - 8  # the whole datagram, even if fragmented
            elif frag == 0 and ip[9] == 6 and len(l4) >= 20:
                rec["sport"], rec["dport"] = struct.unpack("!HH", l4[:4])
                rec["payload"] = tot - ihl - (l4[12] >> 4) * 4
                rec["flags"] = l4[13]
            elif frag == 0 and ip[9] == 1 and len(l4) >= 2:
                rec["icmp"] = [l4[0], l4[1]]
                rec["payload"] = 0
            else:
                rec["payload"] = 0  # a later fragment: counted in its first one
            f.write(json.dumps(rec) + "\n")

# ---------------------------------------------------------------- STUN


def tid_new():
    return os.urandom(12)


def attr(t, v):
    return struct.pack("!HH", t, len(v)) + v + b"\0" * (-len(v) % 4)


def stun(method_class=0x0001, attrs=(), fingerprint=False, classic=False, length=None):
    body = b"".join(attrs)
    head_tid = os.urandom(16) if classic else struct.pack("!I", COOKIE) + tid_new()
    if classic and head_tid[:4] == struct.pack("!I", COOKIE):
        head_tid = b"\0" + head_tid[1:]
    if fingerprint:
        pre = struct.pack("!HH", method_class, len(body) + 8) + head_tid + body
        crc = (zlib.crc32(pre) ^ 0x5354554E) & 0xFFFFFFFF
        body += attr(0x8028, struct.pack("!I", crc))
    n = len(body) if length is None else length
    return struct.pack("!HH", method_class, n) + head_tid + body


def addr_attr(t, ip, port):
    return attr(t, struct.pack("!BBH", 0, 1, port) + socket.inet_aton(ip))


def stun_summary(b):
    """A few words on a STUN message: class, error code, attribute names."""
    names = {0x0001: "MAPPED", 0x0004: "SOURCE", 0x0005: "CHANGED", 0x0009: "ERROR-CODE",
             0x000A: "UNKNOWN-ATTRS", 0x0020: "XOR-MAPPED", 0x0026: "PADDING",
             0x8022: "SOFTWARE", 0x8028: "FINGERPRINT", 0x802B: "RESPONSE-ORIGIN",
             0x802C: "OTHER-ADDRESS", 0x0008: "MESSAGE-INTEGRITY"}
    if len(b) < 20:
        return "short"
    mt = int.from_bytes(b[:2], "big")
    cls = ((mt >> 7) & 2) | ((mt >> 4) & 1)
    words = {0: "request", 1: "indication", 2: "success", 3: "error"}[cls]
    off, attrs, code = 20, [], None
    while off + 4 <= len(b):
        t, n = struct.unpack("!HH", b[off:off + 4])
        if t == 0x0009 and n >= 4:
            code = b[off + 6] * 100 + b[off + 7]
        attrs.append(names.get(t, "0x%04x" % t))
        off += 4 + n + (-n % 4)
    if code is not None:
        words = "error %d" % code
    return words + " (" + " ".join(attrs) + ")"

# ---------------------------------------------------------------- control


def ctrl(typ, tx=None, **fields):
    m = {"v": 1, "type": typ, "tx": tx or os.urandom(8).hex()}
    m.update(fields)
    return json.dumps(m, separators=(",", ":")).encode()


def ctrl_summary(b):
    try:
        m = json.loads(b)
    except ValueError:
        return "not JSON"
    s = m.get("type", "?")
    if s == "error":
        s += " %s (%s)" % (m.get("code"), m.get("reason"))
    if "peers" in m and isinstance(m["peers"], list):
        s += " (%d of %s entries)" % (len(m["peers"]), m.get("total"))
    if "pairs" in m and isinstance(m["pairs"], list):
        s += " (%d of %s entries)" % (len(m["pairs"]), m.get("total"))
    return s


def summary(b):
    if b[:1] == b"{":
        return ctrl_summary(b)
    if b[:1] in (b"\0", b"\1"):
        return stun_summary(b)
    return "%d bytes" % len(b)


def ipv4_udp(src, sport, dst, dport, payload):
    """An IPv4 + UDP datagram for a raw socket (the kernel fills the IP
    checksum, length and id; a UDP checksum of 0 means none, RFC 768)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0x4000, 64, 17, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + udp

# ---------------------------------------------------------------- the client


class Client:
    def __init__(self, args):
        self.a = args
        self.out = open(args.cases, "a", buffering=1)
        self.raw = None
        self.keep = []  # sockets that outlive a case (registered peers)

    def udp(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        return s

    def case(self, name, group, sends, window=WINDOW, watch=(), allow=(), note="",
             answer=None, measured=True, until=None, gap=0.05):
        """Send each (socket, bytes, dst) of sends (socket None: spoofed, dst
        = (src, sport, dst, dport)), collect every datagram arriving on the
        sockets of sends and watch for window seconds, write the case.
        answer(sock, data, src) may send more (acks), not counted.
        until(got) ends the window early once it is true of what came back
        (a list of (socket, bytes)): for setup steps whose answers are known.
        Returns what came back, as (socket, bytes) pairs."""
        socks = []
        for s, _, _ in sends:
            if s is not None and s not in socks:
                socks.append(s)
        for s in watch:
            if s not in socks:
                socks.append(s)
        req, sports, srcs = [], [], []
        t0 = time.monotonic()
        for s, data, dst in sends:
            if s is None:
                src, sport, dip, dport = dst
                self.raw.sendto(ipv4_udp(src, sport, dip, dport, data), (dip, 0))
                sports.append(sport)
                srcs.append(src)
            else:
                s.sendto(data, dst)
                ip, port = s.getsockname()[:2]
                sports.append(port)
                srcs.append(self.a.client_ip if ip == "0.0.0.0" else ip)
            req.append(len(data))
        rx, got = [], []
        end = t0 + window
        while until is None or not until(got):
            left = end - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select(socks, [], [], left)
            for s in r:
                try:
                    data, src = s.recvfrom(65535)
                except OSError:
                    continue
                rx.append({"port": s.getsockname()[1], "from": "%s:%d" % src,
                           "len": len(data), "what": summary(data)})
                got.append((s, data))
                if answer is not None:
                    answer(s, data, src)
        t1 = time.monotonic()
        self.write(name, group, req, rx, t0, t1, allow, note, measured, sports=sports,
                   srcs=srcs)
        time.sleep(gap)  # a gap between the windows
        return got

    def write(self, name, group, req, rx, t0, t1, allow, note, measured, transport="udp",
              sports=(), srcs=()):
        self.out.write(json.dumps({
            "server": self.a.server, "name": name, "group": group, "req": req, "rx": rx,
            "t0": t0, "t1": t1, "allow": list(allow), "note": note, "measured": measured,
            "transport": transport, "sports": list(sports),
            "srcs": sorted(set(srcs or [self.a.client_ip])),
            "src_each": list(srcs or [self.a.client_ip] * len(req))}) + "\n")

    # ------------------------------------------------------------ STUN cases
    def stun_cases(self):
        ip1 = self.a.ip1
        dst = (ip1, PORT1)
        third = self.a.third_ip

        def one(name, msg, **kw):
            s = self.udp()
            self.case(name, "stun", [(s, msg, dst)], **kw)
            s.close()

        one("Binding, plain", stun())
        one("Binding + FINGERPRINT", stun(fingerprint=True))
        one("Binding + SOFTWARE (20 B)", stun(attrs=[attr(0x8022, b"amplification-probe!")]))
        one("Binding + CHANGE-REQUEST none", stun(attrs=[attr(0x0003, struct.pack("!I", 0))]))
        one("Binding + CHANGE-REQUEST port", stun(attrs=[attr(0x0003, struct.pack("!I", 2))]))
        one("Binding + CHANGE-REQUEST ip", stun(attrs=[attr(0x0003, struct.pack("!I", 4))]))
        one("Binding + CHANGE-REQUEST ip+port", stun(attrs=[attr(0x0003, struct.pack("!I", 6))]))
        one("Binding + PADDING 4 B", stun(attrs=[attr(0x0026, b"\0" * 4)]))
        one("Binding + PADDING 100 B", stun(attrs=[attr(0x0026, b"\0" * 100)]))
        # RESPONSE-PORT: the answer should go to the source IP, port B.
        a, b = self.udp(), self.udp()
        pb = b.getsockname()[1]
        self.case("Binding + RESPONSE-PORT", "stun",
                  [(a, stun(attrs=[attr(0x0027, struct.pack("!HH", pb, 0))]), dst)], watch=[b])
        self.case("Binding + RESPONSE-PORT + PADDING", "stun",
                  [(a, stun(attrs=[attr(0x0027, struct.pack("!HH", pb, 0)),
                                   attr(0x0026, b"\0" * 4)]), dst)], watch=[b])
        a.close()
        b.close()
        # RESPONSE-ADDRESS (RFC 3489) naming a third party: must be ignored.
        one("Binding + RESPONSE-ADDRESS (3rd party)",
            stun(attrs=[addr_attr(0x0002, third, 40000)]))
        one("Binding + USERNAME + MESSAGE-INTEGRITY (bogus)",
            stun(attrs=[attr(0x0006, b"nobody:x"), attr(0x0008, os.urandom(20))]))
        one("Binding + unknown required attr, empty (24 B)", stun(attrs=[attr(0x0777, b"")]))
        one("Binding + unknown required attr, 4 B (28 B)", stun(attrs=[attr(0x0777, b"\0" * 4)]))
        one("Binding, classic RFC 3489", stun(classic=True))
        one("Binding, classic + CHANGE-REQUEST ip+port",
            stun(classic=True, attrs=[attr(0x0003, struct.pack("!I", 6))]))
        one("Binding indication", stun(method_class=0x0011))
        one("TURN Allocate (no auth)", stun(method_class=0x0003,
                                             attrs=[attr(0x0019, b"\x11\0\0\0")]))
        one("malformed: length 4, no attribute", stun(length=4))
        # length 4 = one attribute header; it claims 4 bytes of value that are not there
        one("malformed: attribute overruns", stun(attrs=[attr(0x8022, b"abcd")], length=4)[:24])
        bad = bytearray(stun(fingerprint=True))
        bad[-1] ^= 0xFF
        one("malformed: wrong FINGERPRINT", bytes(bad))
        one("not STUN: first byte 0x80 (RTP), 20 B", b"\x80" + os.urandom(19))

    def tcp_case(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2)
        t0 = time.monotonic()
        rx, req, sports = [], [], []
        try:
            s.connect((self.a.ip1, PORT1))
            sports.append(s.getsockname()[1])
            msg = stun()
            s.sendall(msg)
            req.append(len(msg))
            got = b""
            end = time.monotonic() + WINDOW * 2
            while time.monotonic() < end:
                s.settimeout(max(0.01, end - time.monotonic()))
                try:
                    d = s.recv(65535)
                except socket.timeout:
                    break
                if not d:
                    break
                got += d
            if got:
                rx.append({"port": s.getsockname()[1], "from": "%s:%d" % s.getpeername(),
                           "len": len(got), "what": summary(got)})
        except OSError as e:
            rx.append({"port": 0, "from": "-", "len": 0, "what": "tcp: %s" % e})
        finally:
            s.close()
        time.sleep(0.1)  # the FIN exchange stays in this window
        self.write("Binding over TCP, plain", "stun", req, rx, t0, time.monotonic(), (), "",
                   True, transport="tcp", sports=sports)
        time.sleep(0.05)

    # ------------------------------------------------------------ control cases
    @staticmethod
    def reply_of(got, typ):
        """The first control message of type typ among (socket, bytes) pairs."""
        for _, data in got:
            if data[:1] != b"{":
                continue
            try:
                m = json.loads(data)
            except ValueError:
                continue
            if m.get("type") == typ:
                return m
        return None

    @staticmethod
    def acker(asker):
        """An answer() for connects: ack a plan pushed to any socket but the asker's."""
        def ack(s, data, src):
            if s is asker or data[:1] != b"{":
                return
            try:
                m = json.loads(data)
            except ValueError:
                return
            if m.get("type") == "plan":
                s.sendto(ctrl("ack", tx=m["tx"]), src)
        return ack

    def enroll(self, s, pid, **fields):
        """Register pid from socket s as natpeer does (docs/protocol.md
        "register", "Cookie"): register, the challenge, the same register
        again (new tx) with its cookie. Unmeasured setup; exits if the
        broker does not play along."""
        dst = (self.a.ip1, PORT1)
        got = self.case("setup: register %s" % pid, "setup",
                        [(s, ctrl("register", id=pid, **fields), dst)],
                        window=2.0, measured=False, until=bool)
        ch = self.reply_of(got, "challenge")
        if ch is None:
            sys.exit("amplification: no challenge for the register of %s: %r" % (pid, got))
        got = self.case("setup: register %s with the cookie" % pid, "setup",
                        [(s, ctrl("register", id=pid, cookie=ch["cookie"], **fields), dst)],
                        window=2.0, measured=False, until=bool)
        if self.reply_of(got, "registered") is None:
            sys.exit("amplification: %s not registered with its cookie: %r" % (pid, got))
        return ch["cookie"]

    def control_cases(self):
        dst = (self.a.ip1, PORT1)
        me = self.a.client_ip

        def one(name, msg, **kw):
            s = self.udp()
            got = self.case(name, "control", [(s, msg, dst)], **kw)
            s.close()
            return got

        padded = Client.padded_query

        one("control: '{' alone (1 B)", b"{")
        one("control: JSON syntax error (cut), 160 B",
            (ctrl("register", id="a", local=[]) + b" " * 160)[:160])
        # Valid JSON that fails validation: a 400 if its tx can be read and
        # the answer is no longer than the datagram.
        one("control: unknown type (400 would not fit)", ctrl("hello"))
        one("control: register without 'local' (400 would not fit)", ctrl("register", id="a"))
        one("control: register, id of 40 chars (400)", ctrl("register", id="a" * 40, local=[]))
        one("control: unknown type, 200 B (400)", ctrl("hello", pad="x" * 140))
        one("control: keepalive, unknown id (404)", ctrl("keepalive", id="x"))
        one("control: connect, unknown id (404)", ctrl("connect", id="x", peer="y"))
        one("control: result, unknown session (404)",
            ctrl("result", session="0123456789abcdef", id="x", outcome="failed", path="none", ms=0))

        # register without a cookie: a challenge, only if it is no longer
        # than the register. The shortest registers that get one or not:
        chal = len(ctrl("challenge", cookie="0" * 32))
        k = chal - len(ctrl("register", id="", local=[]))
        assert 2 <= k <= 32, k
        one("control: register, no cookie, 1 B shorter than a challenge (silence)",
            ctrl("register", id="s" * (k - 1), local=[]))
        one("control: register, no cookie, as long as a challenge",
            ctrl("register", id="s" * k, local=[]))

        # 'a' and 'b' register as natpeer on pub would (no NAT, its own
        # address as the local one): challenge, then the cookie.
        a, b, c = self.udp(), self.udp(), self.udp()
        self.keep += [a, b]

        def facts(s):
            return {"local": ["%s:%d" % (me, s.getsockname()[1])],
                    "nat": {"mapping": "none", "filtering": "endpoint-independent"},
                    "upnp": {"status": "none"}}

        got = self.case("control: register like natpeer's, no cookie (new id)", "control",
                        [(a, ctrl("register", id="a", **facts(a)), dst)],
                        note="the challenge; nothing registered")
        ch = self.reply_of(got, "challenge")
        if ch is None:
            sys.exit("amplification: no challenge for 'a': %r" % got)
        cookie = ch["cookie"]
        got = self.case("control: register with the cookie (new id)", "control",
                        [(a, ctrl("register", id="a", cookie=cookie, **facts(a)), dst)])
        if self.reply_of(got, "registered") is None:
            sys.exit("amplification: 'a' not registered with its cookie: %r" % got)
        self.case("control: register with the cookie again (same id)", "control",
                  [(a, ctrl("register", id="a", cookie=cookie, **facts(a)), dst)])
        self.case("control: register with a wrong cookie (registered id)", "control",
                  [(a, ctrl("register", id="a", cookie="0" * 32, **facts(a)), dst)],
                  note="challenged again; the registration stays as it was")
        self.case("control: register with a's cookie from another port", "control",
                  [(c, ctrl("register", id="a", cookie=cookie, **facts(c)), dst)],
                  note="the cookie holds for one source address and id only")
        c.close()
        self.case("control: keepalive (registered)", "control", [(a, ctrl("keepalive", id="a"), dst)])
        self.enroll(b, "b", **facts(b))

        self.case("control: connect (peer acks the pushed plan)", "control",
                  [(a, ctrl("connect", id="a", peer="b"), dst)], watch=[b], answer=self.acker(a),
                  note="reply to the asker + the plan pushed to the other peer (here on the same IP)")

        # verify: the probe goes to `external`, which must be on the source IP.
        m = self.udp()
        self.case("control: verify (probe to own IP)", "control",
                  [(a, ctrl("verify", external="%s:%d" % (me, m.getsockname()[1])), dst)], watch=[m])
        m.close()
        self.case("control: verify, external on another IP (400)", "control",
                  [(a, ctrl("verify", external="%s:40000" % self.a.third_ip), dst)])

        # Fill the registry (50 peers more: 52) and the matrix (25 pairs
        # more: 26), each peer with its challenge and cookie, then list.
        peers = []
        for i in range(50):
            s = self.udp()
            peers.append(s)
            self.keep.append(s)
        for i, s in enumerate(peers):
            self.enroll(s, "peer-%02d" % i, local=["192.168.%d.2:%d" % (i, 40000 + i)],
                        nat={"mapping": "endpoint-independent",
                             "filtering": ["endpoint-independent", "address-dependent",
                                           "address-and-port-dependent"][i % 3]})

        def plans_in(asker, other):
            def done(got):
                return (any(s is asker for s, _ in got) and
                        any(s is other and d[:1] == b"{" and b'"plan"' in d for s, d in got))
            return done

        for i in range(0, 50, 2):
            self.case("setup: connect peer-%02d -> peer-%02d" % (i, i + 1), "setup",
                      [(peers[i], ctrl("connect", id="peer-%02d" % i, peer="peer-%02d" % (i + 1)),
                        dst)], watch=[peers[i + 1]], answer=self.acker(peers[i]), window=2.0,
                      measured=False, until=plans_in(peers[i], peers[i + 1]))
        time.sleep(0.3)
        # A page is never longer than its query: unpadded queries get
        # silence; natpeer pads its queries to 1200 B.
        one("control: peers, unpadded (52 registered)", ctrl("peers"))
        one("control: peers, padded to 200 B", padded("peers", 200))
        one("control: peers, padded to 1200 B (as natpeer), page 1", padded("peers", 1200))
        one("control: matrix, unpadded (26 pairs)", ctrl("matrix"))
        one("control: matrix, padded to 1200 B (as natpeer), page 1", padded("matrix", 1200))
        # The list rate (100 pages a second in all, burst 100) spent by
        # unpadded queries, which are answered by silence but still count:
        # what do the ones beyond get?
        s = self.udp()
        self.case("control: peers, unpadded, 110 at once (list rate spent: 429)", "control",
                  [(s, ctrl("peers"), dst) for _ in range(110)],
                  note="the first 100 spend the list rate (silence); the 429s beyond are longer "
                       "than their query")
        s.close()
        time.sleep(1.1)  # the list rate refills

        if self.a.spoof_ip:
            self.spoof_cases(a, b)

    def spoof_cases(self, a, b):
        """Forged sources. A register from the third party's address gets a
        challenge (to that address, no longer than the register) and
        registers nothing, so a connect to that id is a 404 and nothing is
        pushed to the third party. Forging a registered peer's own address
        still works: the plan goes to that peer, the pushed plan to the
        other (both proved they receive)."""
        dst = (self.a.ip1, PORT1)
        v_ip, v_port = self.a.spoof_ip, 40000
        me = self.a.client_ip
        self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        v_facts = {"local": ["%s:%d" % (v_ip, v_port)],
                   "nat": {"mapping": "none", "filtering": "endpoint-independent"},
                   "upnp": {"status": "none"}}
        self.case("control: register, forged source (3rd party), no cookie", "control",
                  [(None, ctrl("register", id="v", **v_facts), (v_ip, v_port, self.a.ip1, PORT1))],
                  allow=[v_ip], note="the challenge goes to the forged source: the victim")
        self.case("control: register, forged source, a guessed cookie", "control",
                  [(None, ctrl("register", id="v", cookie=os.urandom(16).hex(), **v_facts),
                    (v_ip, v_port, self.a.ip1, PORT1))],
                  allow=[v_ip], note="challenged again: not registered")
        self.case("control: connect to the id registered with a forged source", "control",
                  [(a, ctrl("connect", id="a", peer="v"), dst)], window=2.0,
                  note="404: 'v' was never registered; nothing to the third party")
        # All forged: two ids registered from two ports of the victim, then a
        # connect from one to the other.
        self.case("setup: register w1, w2 with forged sources", "setup",
                  [(None, ctrl("register", id="w1", **v_facts), (v_ip, v_port + 1, self.a.ip1, PORT1)),
                   (None, ctrl("register", id="w2", **v_facts), (v_ip, v_port + 2, self.a.ip1, PORT1))],
                  allow=[v_ip], measured=False)
        self.case("control: connect, forged source, both ids forged", "control",
                  [(None, ctrl("connect", id="w1", peer="w2"), (v_ip, v_port + 1, self.a.ip1, PORT1))],
                  window=2.0, allow=[v_ip], note="404 to the forged source; nothing pushed")
        # The source of a registered peer (a) forged: the broker cannot tell.
        self.case("control: connect, forged source = a registered peer's address", "control",
                  [(None, ctrl("connect", id="a", peer="b"), (me, a.getsockname()[1], self.a.ip1, PORT1))],
                  watch=[a, b], answer=self.acker(a), window=1.0,
                  note="the plan to the registered peer whose address was forged + the pushed "
                       "plan to the other (acked)")
        s = self.udp()
        self.case("control: peers, padded to 1200 B, after the forged registers", "control",
                  [(s, Client.padded_query("peers", 1200), dst)],
                  note="total still 52: no forged id was registered")
        s.close()

    @staticmethod
    def padded_query(typ, size):
        """A peers/matrix query padded to size bytes with the ignored field
        "pad", as natpeer pads its queries (docs/protocol.md "peers")."""
        m = ctrl(typ, pad=".")
        m = ctrl(typ, pad="." * (1 + size - len(m)))
        assert len(m) == size, (typ, size, len(m))
        return m

    def burst_case(self, burst=500, more=100, chunk=250, late_ms=30):
        """The per-source rate limit (defaults: --rate-burst 500, then
        --rate-limit 50 a second, one per 20 ms), from an address that sent
        nothing before: its burst of 500 Binding requests at once, then 100
        more 30 ms after the first. Expected: the 500 answered, and of the
        100 only one (the 20 ms that passed earned it), the rest dropped.
        The 500 go in chunks of 250, each as soon as the previous one is
        answered, so that the broker's socket buffer (the default 208 KiB)
        drops none; they take a few ms, and the 100 go at 30 ms, halfway
        between two 20-ms ticks, so that the count does not depend on the
        machine's load. What came back is read raw and summarised
        afterwards, to be quick."""
        dst = (self.a.ip1, PORT1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        s.bind((self.a.burst_ip, 0))
        req, got = [], []

        def drain(timeout):
            """Wait up to timeout for a datagram, then read all there are."""
            r, _, _ = select.select([s], [], [], timeout)
            if not r:
                return False
            while True:
                try:
                    got.append(s.recvfrom(65535, socket.MSG_DONTWAIT))
                except BlockingIOError:
                    return True

        msgs = [stun() for _ in range(burst + more)]
        t0 = time.monotonic()
        while len(req) < burst:
            for m in msgs[len(req):min(burst, len(req) + chunk)]:
                s.sendto(m, dst)
                req.append(len(m))
            while len(got) < len(req) and drain(0.003):
                pass
        burst_ms = (time.monotonic() - t0) * 1000
        while time.monotonic() < t0 + late_ms / 1000:
            drain(max(0.0, t0 + late_ms / 1000 - time.monotonic()))
        t_more = time.monotonic()
        for m in msgs[burst:]:
            s.sendto(m, dst)
            req.append(len(m))
        more_ms = (t_more - t0) * 1000
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            drain(max(0.0, end - time.monotonic()))
        t1 = time.monotonic()
        rx = [{"port": s.getsockname()[1], "from": "%s:%d" % src, "len": len(data),
               "what": summary(data)} for data, src in got]
        self.write("rate limit: %d Binding requests at once + %d at %d ms, one source" %
                   (burst, more, late_ms), "limit", req, rx, t0, t1, (),
                   "a fresh source: its burst answered, then one per 20 ms", True,
                   sports=[s.getsockname()[1]] * len(req), srcs=[self.a.burst_ip] * len(req))
        self.out.write(json.dumps({"server": self.a.server, "burst_ms": burst_ms,
                                   "more_ms": more_ms, "answered": len(rx), "burst": burst,
                                   "sent": len(req)}) + "\n")
        s.close()


def cmd_run(args):
    c = Client(args)
    if args.stun:
        c.stun_cases()
    if args.tcp:
        c.tcp_case()
    if args.control:
        c.control_cases()
    if args.burst_ip:
        c.burst_case()
    for s in c.keep:
        s.close()

# ---------------------------------------------------------------- report


def load_lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def cmd_ping(ip):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    s.sendto(stun(), (ip, PORT1))
    try:
        return 0 if len(s.recv(2048)) >= 20 else 1
    except OSError:
        return 1


def cmd_report(cases_path, egress_path, client_ips, strict=""):
    own = client_ips.split(",")
    client_ip = own[0]
    own = set(own)
    cases = load_lines(cases_path)
    bursts = [c for c in cases if "burst_ms" in c]
    cases = [c for c in cases if "burst_ms" not in c]
    egress = [e for e in load_lines(egress_path) if e.get("proto") in (1, 6, 17)]
    bad = []
    rows = []
    used = set()
    for c in cases:
        pk = [(i, e) for i, e in enumerate(egress) if c["t0"] - 0.005 <= e["t"] < c["t1"]]
        used.update(i for i, _ in pk)
        srcs = set(c.get("srcs") or [client_ip])
        allowed = srcs | set(c["allow"])
        data = [e for _, e in pk if e["payload"] > 0 or e["proto"] == 1]
        for e in data:
            if e["dst"] not in allowed:
                bad.append((c["server"], c["name"], e))
        if not c["measured"]:
            continue
        req = sum(c["req"])
        resp = sum(e["payload"] for e in data if e["proto"] != 1)
        n = sum(1 for e in data if e["proto"] != 1)
        # IP bytes: per datagram 20 + 8 (UDP); for TCP the payload segments' IP length.
        if c["transport"] == "tcp":
            req_ip = req + 40
            resp_ip = sum(e["ip_len"] for e in data if e["proto"] == 6)
        else:
            req_ip = req + 28 * len(c["req"])
            resp_ip = sum(e["payload"] + 28 for e in data if e["proto"] == 17)
        where = {}
        for e in data:
            if e["proto"] == 1:
                k = "ICMP %d/%d to %s" % (e["icmp"][0], e["icmp"][1], e["dst"])
            else:
                if e["dst"] not in srcs:
                    k = "OTHER IP " + e["dst"]
                elif e["dst"] not in own:
                    k = "source IP (forged, %s)" % e["dst"]
                elif e["dst"] != client_ip:
                    k = "source IP (%s)" % e["dst"]
                else:
                    k = "source IP"
                if e["dport"] not in c.get("sports", []):
                    k += ", another port"
                k += ", from %s:%d" % (e["src"], e["sport"])
            where.setdefault(k, [0, 0])
            where[k][0] += 1
            where[k][1] += e["payload"]
        wtxt = "; ".join("%s (%d x, %d B)" % (k, v[0], v[1]) for k, v in where.items()) or "-"
        got = sorted(set(r["what"] for r in c["rx"]))
        rx_bytes = sum(r["len"] for r in c["rx"])
        rows.append({"server": c["server"], "name": c["name"], "req": req, "resp": resp, "n": n,
                     "factor": resp / req if req else 0.0,
                     "factor_ip": resp_ip / req_ip if req_ip else 0.0,
                     "where": wtxt, "what": ", ".join(got) or "nothing",
                     "rx": rx_bytes, "note": c["note"]})
    stray = [e for i, e in enumerate(egress)
             if i not in used and (e["payload"] > 0 or e["proto"] == 1) and e["dst"] not in own]

    print("## long form: type | server | request B | response B (datagrams) | factor | "
          "factor on the wire (IPv4+UDP) | where the responses went | what came back")
    for r in rows:
        print("%-58s %-18s %5d -> %5d B (%d) %6.2fx %5.2fx  %s | %s%s" % (
            r["name"], r["server"], r["req"], r["resp"], r["n"], r["factor"], r["factor_ip"],
            r["where"], r["what"],
            "" if r["rx"] == r["resp"] or "OTHER" in r["where"] or "forged" in r["where"] else
            "  [client received %d B]" % r["rx"]))
    servers = []
    for r in rows:
        if r["server"] not in servers:
            servers.append(r["server"])
    names = []
    for r in rows:
        if r["name"] not in names:
            names.append(r["name"])
    by = {(r["server"], r["name"]): r for r in rows}
    print()
    print("## markdown: response bytes (factor) per server; '-' = no answer")
    print("| request | bytes | " + " | ".join(servers) + " |")
    print("|---|---|" + "---|" * len(servers))
    for nm in names:
        cells, req = [], ""
        for sv in servers:
            r = by.get((sv, nm))
            if r is None:
                cells.append("n/a")
                continue
            req = r["req"]
            if r["n"] == 0:
                cells.append("-")
            else:
                cell = "%d (%.2fx)" % (r["resp"], r["factor"])
                if r["n"] > 1:
                    cell += " in %d" % r["n"]
                if "OTHER IP" in r["where"]:
                    cell += " incl. 3rd party"
                elif "forged" in r["where"]:
                    cell += " to the forged source"
                cells.append(cell)
        print("| %s | %s | %s |" % (nm, req, " | ".join(cells)))
    print()
    # What each source sent over UDP: under the rate limiter's burst (500),
    # the limiter never dropped a measured request (amplification.sh also
    # checks natbroker's log).
    print("## UDP requests per source IP and server (all cases, setup included)")
    for sv in servers:
        per, span = {}, {}
        for c in cases:
            if c["server"] != sv or c["transport"] != "udp" or c["group"] == "limit":
                continue
            for ip in c.get("src_each") or [client_ip] * len(c["req"]):
                per[ip] = per.get(ip, 0) + 1
                t = span.setdefault(ip, [c["t0"], c["t1"]])
                t[0], t[1] = min(t[0], c["t0"]), max(t[1], c["t1"])
        print("   %s: %s" % (sv, ", ".join("%s %d in %.0f s" % (ip, n, span[ip][1] - span[ip][0])
                                         for ip, n in sorted(per.items()))))
    for b in bursts:
        print("   %s: the rate limiter: %d of %d answered; the first %d sent in %.1f ms, the "
              "rest at %.1f ms: a budget of %d + %d (one per 20 ms at 50/s)" % (
                  b["server"], b["answered"], b["sent"], b["burst"], b["burst_ms"], b["more_ms"],
                  b["burst"], int(b["more_ms"] // 20)))
    print()
    if stray:
        print("## packets outside every case window to an address other than the client:")
        for e in stray:
            print("   ", e)
    if bad:
        print("## UNEXPECTED destinations (not the request's source IP, not allowed by the case):")
        for sv, nm, e in bad:
            print("   %s / %s: %s:%s -> %s:%s %d B" % (sv, nm, e["src"], e.get("sport"), e["dst"],
                                                     e.get("dport"), e["payload"]))
    thirds = [r for r in rows if "OTHER IP" in r["where"] or "forged" in r["where"]]
    if thirds:
        print("## sent to a third party or a forged source (allowed by the case, for the record):")
        for r in thirds:
            print("   %s / %s: %s" % (r["server"], r["name"], r["where"]))
    if not bad and not stray:
        print("## destinations: every datagram each server sent went to the request's source IP,"
              " except where a case allows a third party (listed above)")
    return 1 if stray or any(sv.startswith(strict) for sv, _, _ in bad) else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sniff")
    s.add_argument("iface")
    s.add_argument("out")
    r = sub.add_parser("run")
    r.add_argument("--server", required=True)
    r.add_argument("--ip1", required=True)
    r.add_argument("--client-ip", required=True)
    r.add_argument("--third-ip", required=True)
    r.add_argument("--cases", required=True)
    r.add_argument("--stun", action="store_true")
    r.add_argument("--tcp", action="store_true")
    r.add_argument("--control", action="store_true")
    r.add_argument("--spoof-ip")
    r.add_argument("--burst-ip")
    g = sub.add_parser("ping")
    g.add_argument("ip")
    q = sub.add_parser("report")
    q.add_argument("--strict", default="")
    q.add_argument("cases")
    q.add_argument("egress")
    q.add_argument("client_ip")
    a = p.parse_args()
    if a.cmd == "sniff":
        cmd_sniff(a.iface, a.out)
        return 0
    if a.cmd == "run":
        cmd_run(a)
        return 0
    if a.cmd == "ping":
        return cmd_ping(a.ip)
    return cmd_report(a.cases, a.egress, a.client_ip, a.strict)


if __name__ == "__main__":
    sys.exit(main())
