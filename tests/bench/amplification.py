#!/usr/bin/env python3
"""tests/bench/amplification.py - the helper of amplification.sh (python3
stdlib; the natbroker cases also need Debian's python3-dissononce, so run it
with /usr/bin/python3).

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
      window). --third-ip is a bystander named in RESPONSE-ADDRESS.
      --control (natbroker only): plain control messages (refused unless
      sealed: a 401/400 no longer than the request, or nothing), the key
      request 0xD5, Noise initiations 0xD1 (real ones made with dissononce
      to the key the 0xD5 answer gave, and ones that do not verify), 0xD3
      frames (unknown index, bad tag, one real sealed register and its
      replay), and the broker's own answer types sent back to it.
      --spoof-ip also sends some of those with that forged source (raw
      socket) to show what the server sends to a third party. --burst-ip
      (a second address of the client, used by nothing else) sends 600
      Binding requests at once from a source whose rate-limit bucket is
      full.

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
    names = {0xD2: "0xD2 Noise response", 0xD3: "0xD3 sealed frame",
             0xD4: "0xD4 unknown-session hint", 0xD6: "0xD6 broker key"}
    if b and b[0] in names:
        return "%s (%d B)" % (names[b[0]], len(b))
    return "%d bytes" % len(b)

# ---------------------------------------------------------------- Noise (python3-dissononce)

PROLOGUE = b"natbroker v2 broker"  # broker/plink.h NB_PLINK_PROLOGUE


def noise_init(responder_key, payload=b""):
    """A real 0xD1 initiation (Noise_IK_25519_ChaChaPoly_SHA256, prologue
    PROLOGUE) from a fresh static key to responder_key (32 raw bytes):
    0xD1 || sender_index || msg1. Returns (frame, handshake state)."""
    from dissononce.cipher.chachapoly import ChaChaPolyCipher
    from dissononce.dh.x25519.public import PublicKey
    from dissononce.dh.x25519.x25519 import X25519DH
    from dissononce.hash.sha256 import SHA256Hash
    from dissononce.processing.handshakepatterns.interactive.IK import IKHandshakePattern
    from dissononce.processing.impl.cipherstate import CipherState
    from dissononce.processing.impl.handshakestate import HandshakeState
    from dissononce.processing.impl.symmetricstate import SymmetricState
    dh = X25519DH()
    hs = HandshakeState(SymmetricState(CipherState(ChaChaPolyCipher()), SHA256Hash()), dh)
    hs.initialize(IKHandshakePattern(), True, PROLOGUE, s=dh.generate_keypair(),
                  rs=PublicKey(bytes(responder_key)))
    buf = bytearray()
    hs.write_message(payload, buf)
    return b"\xd1" + os.urandom(4) + bytes(buf), hs


def noise_read_resp(hs, resp, init_frame):
    """Read the broker's 0xD2 response (it must echo our index and verify:
    the broker holds the key it gave). Returns our sending CipherState."""
    if resp[5:9] != init_frame[1:5]:
        sys.exit("amplification: the 0xD2 response does not echo our sender index")
    pair = hs.read_message(resp[9:], bytearray())
    if pair is None:
        sys.exit("amplification: the handshake did not complete")
    return pair[0]  # the initiator sends with the first


def seal_frame(cs, receiver_index, counter, pt):
    """A 0xD3 frame (common/seal.h): header = AD, nonce = 0^32 || LE64(counter)."""
    from dissononce.cipher.chachapoly import ChaChaPolyCipher
    hdr = b"\xd3" + receiver_index + struct.pack("!Q", counter)
    return hdr + ChaChaPolyCipher().encrypt(cs._key, counter, hdr, pt)


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
        self.keep = []  # sockets that outlive a case
        self.broker_key = None  # from the 0xD6 answer

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
        one("TURN Allocate + FINGERPRINT (no auth)",
            stun(method_class=0x0003, attrs=[attr(0x0019, b"\x11\0\0\0")], fingerprint=True))
        one("TURN Allocate + bogus credentials",
            stun(method_class=0x0003, attrs=[attr(0x0019, b"\x11\0\0\0"), attr(0x0006, b"1:x"),
                                             attr(0x0014, b"natbroker"), attr(0x0015, b"n" * 32),
                                             attr(0x0008, os.urandom(20))]))
        peer = attr(0x0012, struct.pack("!BBH4s", 0, 1, 3480 ^ 0x2112,
                                        bytes(a ^ b for a, b in zip(socket.inet_aton(third),
                                                                    b"\x21\x12\xa4\x42"))))
        one("TURN Refresh (no auth)", stun(method_class=0x0004))
        one("TURN CreatePermission (no auth)", stun(method_class=0x0008, attrs=[peer]))
        one("TURN ChannelBind (no auth)",
            stun(method_class=0x0009, attrs=[attr(0x000C, b"\x40\x00\0\0"), peer]))
        one("TURN Send indication (no allocation)",
            stun(method_class=0x0016, attrs=[peer, attr(0x0013, b"x" * 100)]))
        one("TURN ChannelData (no allocation)", b"\x40\x00\x00\x64" + b"x" * 100)
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

    # ------------------------------------------------------------ natbroker's own surfaces
    @staticmethod
    def facts(ip, port):
        """A register's facts as natpeer on a host without NAT sends them."""
        return {"local": ["%s:%d" % (ip, port)],
                "nat": {"mapping": "none", "filtering": "endpoint-independent"},
                "upnp": {"status": "none"}}

    def control_cases(self):
        """Control messages are refused unless sealed: a plain one gets a
        401 (or a 400 when it does not decode) no longer than itself, or
        nothing. The unauthenticated surfaces of the sealed channel
        (docs/protocol.md "Sizes: no amplification"): the key request 0xD5
        (>= 64 B -> 33 B), the Noise initiation 0xD1 (a real one, 101 B ->
        the 57-B 0xD2 response; anything that does not verify -> nothing),
        the sealed frame 0xD3 (unknown index -> the 5-B 0xD4 hint; a frame
        that does not open -> nothing)."""
        dst = (self.a.ip1, PORT1)
        me = self.a.client_ip

        def expect(name, msg, got, n, size):
            """n datagrams of size bytes came back (n None: at most one, no
            longer than the request); else the bench stops: the table in
            docs/protocol.md "Sizes: no amplification" no longer holds."""
            lens = [len(d) for _, d in got]
            ok = (len(lens) <= 1 and all(x <= len(msg) for x in lens) if n is None
                  else len(lens) == n and all(x == size for x in lens))
            if not ok:
                sys.exit("amplification: %s: got %r B, expected %s" % (
                    name, lens, "at most one answer <= %d B" % len(msg) if n is None
                    else "%d x %s B" % (n, size)))

        def one(name, msg, want=(0, None), **kw):
            s = self.udp()
            got = self.case(name, "control", [(s, msg, dst)], **kw)
            s.close()
            expect(name, msg, got, *want)
            return got

        # -- plain control messages: 400/401 no longer than the request, or nothing
        def plain(name, msg, **kw):
            return one("plain control: " + name, msg, want=(None, None), **kw)

        plain("'{' alone (1 B)", b"{")
        plain("JSON syntax error (cut), 160 B",
              (ctrl("register", id="a", local=[]) + b" " * 160)[:160])
        plain("unknown type (400 would not fit)", ctrl("hello"))
        plain("unknown type, 200 B (400)", ctrl("hello", pad="x" * 140))
        plain("register, id of 40 chars (400)", ctrl("register", id="a" * 40, local=[]))
        plain("register, shortest (401 with an empty reason)", ctrl("register", id="a", local=[]))
        s = self.udp()
        msg = ctrl("register", id="a", **self.facts(me, s.getsockname()[1]))
        expect("register", msg, self.case("plain control: register like natpeer's (401)", "control",
                                          [(s, msg, dst)],
                                          note="refused: control messages must be sealed"),
               None, None)
        s.close()
        plain("keepalive (401 would not fit)", ctrl("keepalive", id="x"))
        plain("connect (401 would not fit)", ctrl("connect", id="x", peer="y"))
        plain("verify, padded to 200 B (401)",
              ctrl("verify", external="%s:40000" % me, pad="." * 120))
        plain("peers, padded to 1200 B (401, no list)", Client.padded_query("peers", 1200))
        plain("matrix, padded to 1200 B (401, no list)", Client.padded_query("matrix", 1200))

        # -- the key request
        one("0xD5 key request, 1 B", b"\xd5")
        one("0xD5 key request, 63 B", b"\xd5" + os.urandom(62), note="shorter than 64: nothing")
        got = one("0xD5 key request, 64 B", b"\xd5" + bytes(63), want=(1, 33), until=bool)
        key = next((d[1:] for _, d in got if len(d) == 33 and d[0] == 0xD6), None)
        if key is None:
            sys.exit("amplification: no 0xD6 answer to a 64-byte key request: %r" % got)
        self.broker_key = key
        one("0xD5 key request, 1200 B", b"\xd5" + os.urandom(1199), want=(1, 33))

        # -- the Noise initiation
        s = self.udp()
        frame, hs = noise_init(key)
        got = self.case("0xD1 initiation, real (101 B)", "control", [(s, frame, dst)],
                        note="an unconfirmed session; the response is to the source")
        resp = [d for _, d in got if d[:1] == b"\xd2"]
        if len(resp) != 1 or len(resp[0]) != 57:
            sys.exit("amplification: a real initiation got %r, not one 57-byte 0xD2" % got)
        cs = noise_read_resp(hs, resp[0], frame)
        got = self.case("0xD1 the same initiation again (retransmission)", "control",
                        [(s, frame, dst)], note="the same response again, no DH, no second session")
        if [d for _, d in got] != resp:
            sys.exit("amplification: a retransmitted initiation got %r, not the same "
                     "response" % got)
        # A sealed frame to that session's index that does not open; then
        # the first real frame (it confirms the session: authenticated),
        # then that frame replayed.
        bidx = resp[0][1:5]
        bad = b"\xd3" + bidx + bytes(8) + os.urandom(1187)
        got = self.case("0xD3 to a live session's index, bad tag, 1200 B", "control",
                        [(s, bad, dst)], note="does not open")
        expect("bad tag", bad, got, 0, None)
        reg = ctrl("register", id="amp-sealed", **self.facts(me, s.getsockname()[1]))
        sealed = seal_frame(cs, bidx, 0, reg)
        got = self.case("0xD3 sealed register (authenticated, for the record)", "sealed",
                        [(s, sealed, dst)], until=bool, window=1.0,
                        note="a confirmed session: the sealed 'registered' answer")
        if not any(d[:1] == b"\xd3" for _, d in got):
            sys.exit("amplification: no sealed answer to a sealed register: %r" % got)
        expect("replay", sealed, self.case("0xD3 the sealed register replayed", "control",
                                           [(s, sealed, dst)], note="the replay window refuses it"),
               0, None)
        s.close()
        frame2, _ = noise_init(key, payload=os.urandom(256))
        one("0xD1 initiation, real, 256-B payload (357 B)", frame2, want=(1, 57))
        one("0xD1 real initiation cut to 100 B", noise_init(key)[0][:100])
        one("0xD1 initiation to another responder key (101 B)", noise_init(os.urandom(32))[0],
            note="the static key does not decrypt: nothing")
        one("0xD1 random bytes, 101 B", b"\xd1" + os.urandom(100))
        one("0xD1 random bytes, 1200 B", b"\xd1" + os.urandom(1199))

        # -- sealed frames with an unknown index
        one("0xD3 unknown index, 28 B (too short)", b"\xd3" + os.urandom(27))
        one("0xD3 unknown index, 29 B", b"\xd3" + os.urandom(28), want=(1, 5))
        one("0xD3 unknown index, 1200 B", b"\xd3" + os.urandom(1199), want=(1, 5))

        # -- answers sent to the broker: silence (no loops)
        one("0xD2 response sent to the broker, 57 B", b"\xd2" + os.urandom(56))
        one("0xD4 hint sent to the broker, 5 B", b"\xd4" + os.urandom(4))
        one("0xD6 key answer sent to the broker, 33 B", b"\xd6" + os.urandom(32))
        one("0xD0 (retired data frame), 1200 B", b"\xd0" + os.urandom(1199))

        if self.a.spoof_ip:
            self.spoof_cases()

    def spoof_cases(self):
        """Forged sources (raw socket): what the broker sends to a third
        party whose address a request names as its source. Each answer goes
        to the forged source and is smaller than the request."""
        v_ip, v_port = self.a.spoof_ip, 40000
        self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)

        def forged(name, msg, port, note):
            self.case(name, "control", [(None, msg, (v_ip, port, self.a.ip1, PORT1))],
                      allow=[v_ip], note=note)

        forged("forged source: plain register like natpeer's (401)",
               ctrl("register", id="v", **self.facts(v_ip, v_port)), v_port,
               "the 401 goes to the forged source: the victim")
        forged("forged source: 0xD5 key request, 64 B", b"\xd5" + bytes(63), v_port + 1,
               "the key goes to the victim")
        forged("forged source: 0xD1 initiation, real (101 B)", noise_init(self.broker_key)[0],
               v_port + 2, "the response goes to the victim; an unconfirmed session")
        forged("forged source: 0xD3 unknown index, 29 B", b"\xd3" + os.urandom(28), v_port + 3,
               "the hint goes to the victim")

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
