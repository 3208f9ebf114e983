#!/usr/bin/env python3
"""fake_pmp.py - a STRICT fake NAT-PMP (RFC 6886) + PCP (RFC 6887) server, for tests.

It binds UDP IP:5351 (never 0.0.0.0) in a router namespace, answers NAT-PMP
version 0 (opcodes 0, 1, 2) and PCP version 2 (ANNOUNCE, MAP for UDP and
TCP), keeps a mapping table and logs every datagram it got as one JSON line,
so that a test can assert renewals, deletes and requested ports. With --nft
it installs a real DNAT rule for every mapping it grants, so traffic flows.

Where miniupnpd is lenient, this is strict (see docs/lab.md "fake_pmp"):

  request                                           answer
  ------------------------------------------------  -------------------------
  < 2 bytes; PCP with the R bit set; NAT-PMP         none (logged, rejected)
    opcode >= 128; NAT-PMP op 0 not 2 bytes, op 1/2
    not 12 bytes, reserved != 0, internal port 0
    with a lifetime
  NAT-PMP opcode 3..127                              NAT-PMP UNSUPP_OPCODE (5)
  PCP version 1 or >= 3 (and 0 in pcp-only mode)     PCP UNSUPP_VERSION (1), version 2
  PCP < 24 bytes, > 1100, not a multiple of 4,       PCP MALFORMED_REQUEST (3)
    reserved bits set, ANNOUNCE with a lifetime or
    a payload, MAP not 60 bytes + options, internal
    port 0, suggested IP not ::ffff:a.b.c.d
  PCP opcode other than 0 / 1 (PEER too)             PCP UNSUPP_OPCODE (4)
  PCP client IP != the datagram's source             PCP ADDRESS_MISMATCH (12)
  PCP option malformed / unknown mandatory           MALFORMED_OPTION (6) / UNSUPP_OPTION (5)
  MAP protocol not 6 or 17                           UNSUPP_PROTOCOL (9)
  MAP on a mapping made with another nonce           NOT_AUTHORIZED (2)
  suggested port taken + PREFER_FAILURE              CANNOT_PROVIDE_EXTERNAL (11)

Mappings: key (client IP, protocol, internal port). A PCP MAP with the same
nonce renews it (same external port); lifetime 0 deletes it (SUCCESS, also
when there is none). NAT-PMP has no nonce: it renews/deletes by key; NAT-PMP
internal port 0 + lifetime 0 deletes all the client's mappings of that
protocol. Granted lifetime = min(requested, 86400) (or --mode
short-lifetime=S). Epoch = seconds since start (or since the last reset).

Output: once bound, one line "ready udp=IP:PORT mode=MODE" on stdout (and
--ready-file). SIGTERM/SIGINT exit (removing its nft rules); SIGUSR1 is a
reboot (epoch 0, table forgotten). It exits by itself after --max-seconds.
Python 3 standard library only.
"""

import argparse
import ipaddress
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time

PCP_RESULTS = {0: "SUCCESS", 1: "UNSUPP_VERSION", 2: "NOT_AUTHORIZED", 3: "MALFORMED_REQUEST",
               4: "UNSUPP_OPCODE", 5: "UNSUPP_OPTION", 6: "MALFORMED_OPTION", 7: "NETWORK_FAILURE",
               8: "NO_RESOURCES", 9: "UNSUPP_PROTOCOL", 10: "USER_EX_QUOTA",
               11: "CANNOT_PROVIDE_EXTERNAL", 12: "ADDRESS_MISMATCH", 13: "EXCESSIVE_REMOTE_PEERS"}
PMP_RESULTS = {0: "SUCCESS", 1: "UNSUPP_VERSION", 2: "NOT_AUTHORIZED", 3: "NETWORK_FAILURE",
               4: "OUT_OF_RESOURCES", 5: "UNSUPP_OPCODE"}
MAX_LIFETIME = 86400
PCP_MAX = 1100
OPT_PREFER_FAILURE = 2
NFT_MARK = "0x00004650"
V4MAPPED = b"\x00" * 10 + b"\xff\xff"

HELP_EPILOG = """
modes (--mode, one per run):
  normal                 PCP and NAT-PMP
  natpmp-only            PCP (any version != 0) gets the NAT-PMP UNSUPP_VERSION
                         answer: 8 bytes, version 0, op 128+opcode, result 1
  pcp-only               NAT-PMP (version 0) gets the PCP UNSUPP_VERSION answer
                         (RFC 6887 9: version 2, 24-byte header, result 1)
  result=N               every PCP MAP refused with result N (2..13), lifetime
                         --error-lifetime; ANNOUNCE and NAT-PMP work
  natpmp-result=N        every NAT-PMP map request refused with result N (2..5);
                         the address request and PCP work
  short-lifetime=S       grant at most S seconds
  epoch-reset-after=S    S seconds after start: epoch back to 0, table (and nft
                         rules) forgotten, as after a reboot (once)
  other-port             grant suggested port + 1000 (internal port + 1000 if
                         none suggested), wrapped into 1024-65535
  silent                 never answer (still logs)
  wrong-source           answer from --answer-from IP:5351 (an address of the
                         same namespace; add it with `ip addr add` first)
  wrong-nonce            PCP MAP answers carry the nonce with every bit flipped;
                         NAT-PMP unaffected

log (--log FILE): one JSON object per line, flushed before the answer is sent:
  {"t": 1700000000.123, "kind": "pcp", "peer": "192.168.6.2:40312", "len": 60,
   "hex": "0201...", "version": 2, "opcode": 1, "lifetime": 120,
   "client_ip": "192.168.6.2", "nonce": "0011...", "proto": 17,
   "internal_port": 40001, "suggested_port": 40001, "suggested_ip": "0.0.0.0",
   "options": [{"code": 2, "len": 0}], "result": 0, "result_name": "SUCCESS",
   "granted_lifetime": 120, "external_port": 40001, "action": "create",
   "answered": true, "answer_hex": "0281...", "answer_from": "192.168.6.1:5351",
   "rejected": null, "epoch": 12, "mode": "normal"}
  kind "natpmp": version, opcode, internal_port, suggested_port, lifetime,
  result, ... (no nonce/client_ip). "action" is one of create, renew, delete,
  delete-none, delete-all, address, announce, refused. "rejected" says why a
  request failed a strict check. Other kinds: "start", "reset" (dropped N),
  "expire" (one per mapping that ran out), "nft" (a failed nft command), "exit".

examples (in the router namespace):
  fake_pmp.py --listen 192.168.6.1 --mode normal --log /tmp/pmp.log --nft
  fake_pmp.py --listen 192.168.6.1 --mode result=8
  ip addr add 192.168.6.254/24 dev lan0
  fake_pmp.py --listen 192.168.6.1 --mode wrong-source --answer-from 192.168.6.254
"""


def parse_args(argv):
    p = argparse.ArgumentParser(prog="fake_pmp.py", description="A strict fake NAT-PMP + PCP server for tests.",
                                epilog=HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", required=True, metavar="IP", help="IPv4 address to bind (the gateway's LAN address)")
    p.add_argument("--port", type=int, default=5351, help="UDP port (default 5351; 0 picks one)")
    p.add_argument("--mode", default="normal", help="behaviour, see below (default normal)")
    p.add_argument("--external-ip", default="203.0.113.109", metavar="IP",
                   help="external address it claims (default 203.0.113.109, r-lan's WAN address)")
    p.add_argument("--answer-from", metavar="IP", help="wrong-source: the address answers come from")
    p.add_argument("--error-lifetime", type=int, default=30, help="lifetime in PCP error answers (default 30)")
    p.add_argument("--log", metavar="FILE", help="append one JSON line per datagram to FILE")
    p.add_argument("--pid-file", metavar="FILE", help="write our PID to FILE")
    p.add_argument("--ready-file", metavar="FILE", help="create FILE once bound")
    p.add_argument("--max-seconds", type=float, default=300, help="exit after this long (default 300)")
    p.add_argument("--nft", action="store_true",
                   help="add/remove a real DNAT rule (table ip fakepmp) per granted mapping")
    p.add_argument("--nft-wan-if", default="wan0", help="interface inbound traffic comes in on (default wan0)")
    p.add_argument("--nft-forward", metavar="'FAMILY TABLE CHAIN'",
                   help="forward chain to insert the accept rule for our DNATs into (default: "
                        "'inet lab post_forward' or 'inet filter miniupnpd', whichever exists)")
    a = p.parse_args(argv)
    for name in ("listen", "external_ip", "answer_from"):
        v = getattr(a, name)
        if v is None:
            continue
        try:
            socket.inet_aton(v)
            if not re.fullmatch(r"[0-9.]+", v):
                raise OSError
        except OSError:
            p.error("--%s wants an IPv4 address, got %r" % (name.replace("_", "-"), v))
    if a.listen == "0.0.0.0":
        p.error("--listen: give the address to serve on, not 0.0.0.0")
    m = re.fullmatch(r"(normal|natpmp-only|pcp-only|other-port|silent|wrong-source|wrong-nonce)"
                     r"|(result|natpmp-result|short-lifetime|epoch-reset-after)=([0-9]{1,6})", a.mode)
    if m is None:
        p.error("unknown --mode %r" % a.mode)
    a.mode_name = m.group(1) or m.group(2)
    a.mode_arg = int(m.group(3)) if m.group(3) else None
    if a.mode_name == "result" and not 2 <= a.mode_arg <= 13:
        p.error("result=N wants N in 2..13")
    if a.mode_name == "natpmp-result" and not 2 <= a.mode_arg <= 5:
        p.error("natpmp-result=N wants N in 2..5")
    if a.mode_name in ("short-lifetime", "epoch-reset-after") and a.mode_arg < 1:
        p.error("%s=S wants S >= 1" % a.mode_name)
    if a.mode_name == "wrong-source" and not a.answer_from:
        p.error("--mode wrong-source needs --answer-from IP")
    if not 0 <= a.port <= 65535 or a.error_lifetime < 0 or a.max_seconds <= 0:
        p.error("bad --port, --error-lifetime or --max-seconds")
    return a


class Nft:
    """DNAT rules in table ip fakepmp, plus one accept rule in the router's forward chain."""

    def __init__(self, srv, wan_if, forward):
        self.srv, self.wan_if = srv, wan_if
        self.fwd = None
        self.run("add table ip fakepmp")
        self.run("add chain ip fakepmp prerouting { type nat hook prerouting priority dstnat; policy accept; }")
        self.run("flush chain ip fakepmp prerouting")
        cands = [forward] if forward else ["inet lab post_forward", "inet filter miniupnpd"]
        for c in cands:
            if self.run("list chain %s" % c, quiet=True) is not None:
                h = self.add("insert rule %s meta mark %s accept comment \"fakepmp\"" % (c, NFT_MARK))
                if h is not None:
                    self.fwd = (c, h)
                break
        else:
            srv.log({"kind": "nft", "error": "no forward chain among %r: DNATed flows may be dropped" % cands})

    def run(self, cmd, quiet=False):
        try:
            r = subprocess.run(["nft", "-e", "-a", cmd], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired) as e:
            if not quiet:
                self.srv.log({"kind": "nft", "cmd": cmd, "error": str(e)})
            return None
        if r.returncode != 0:
            if not quiet:
                self.srv.log({"kind": "nft", "cmd": cmd, "error": r.stderr.strip()})
            return None
        return r.stdout

    def add(self, cmd):
        out = self.run(cmd)
        m = re.search(r"# handle ([0-9]+)", out or "")
        return int(m.group(1)) if m else None

    def map(self, proto, ext, client, port):
        pname = "udp" if proto == 17 else "tcp"
        return self.add("add rule ip fakepmp prerouting iifname \"%s\" meta l4proto %s th dport %d "
                        "meta mark set %s dnat to %s:%d comment \"fakepmp %s %d\""
                        % (self.wan_if, pname, ext, NFT_MARK, client, port, pname, ext))

    def unmap(self, handle, proto, ext):
        if handle is not None:
            self.run("delete rule ip fakepmp prerouting handle %d" % handle)
        try:
            subprocess.run(["conntrack", "-D", "-p", "udp" if proto == 17 else "tcp", "--orig-port-dst", str(ext)],
                           capture_output=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def close(self):
        if self.fwd:
            self.run("delete rule %s handle %d" % self.fwd, quiet=True)
        self.run("delete table ip fakepmp", quiet=True)


class Server:
    def __init__(self, a):
        self.a = a
        self.logf = open(a.log, "a", encoding="utf-8") if a.log else None
        self.start = time.monotonic()
        self.epoch_base = self.start
        self.reset_done = False
        self.maps = {}  # (client ip, proto, internal port) -> dict(nonce, ext, expires, nft)
        self.nft = None

    # ---------------------------------------------------------------- util
    def log(self, obj):
        if self.logf is None:
            return
        obj = dict(t=round(time.time(), 3), **obj)
        self.logf.write(json.dumps(obj) + "\n")
        self.logf.flush()

    def epoch(self):
        return int(time.monotonic() - self.epoch_base) & 0xffffffff

    def mode(self, name):
        return self.a.mode_name == name

    def reboot(self, why):
        n = len(self.maps)
        for k in list(self.maps):
            self.drop(k, log=False)
        self.epoch_base = time.monotonic()
        self.log({"kind": "reset", "why": why, "dropped": n})

    def drop(self, key, log=True):
        m = self.maps.pop(key)
        if self.nft:
            self.nft.unmap(m["nft"], key[1], m["ext"])
        if log:
            self.log({"kind": "expire", "client_ip": key[0], "proto": key[1], "internal_port": key[2],
                      "external_port": m["ext"]})

    def tick(self):
        now = time.monotonic()
        if self.mode("epoch-reset-after") and not self.reset_done and now - self.start >= self.a.mode_arg:
            self.reset_done = True
            self.reboot("epoch-reset-after")
        for k in [k for k, m in self.maps.items() if m["expires"] <= now]:
            self.drop(k)

    def grant_lifetime(self, req):
        lt = min(req, MAX_LIFETIME)
        if self.mode("short-lifetime"):
            lt = min(lt, self.a.mode_arg)
        return lt

    def taken(self, proto, ext, key):
        return any(k[1] == proto and m["ext"] == ext and k != key for k, m in self.maps.items())

    def pick_port(self, proto, want, key, prefer_failure):
        """-> (port, None) or (None, reason)"""
        if self.mode("other-port"):
            want = 1024 + (want + 1000 - 1024) % (65536 - 1024) if want >= 1024 else want + 1000
        if not self.taken(proto, want, key):
            return want, None
        if prefer_failure:
            return None, "suggested port taken"
        for p in list(range(max(want, 1024), 65536)) + list(range(1024, max(want, 1024))):
            if not self.taken(proto, p, key):
                return p, None
        return None, "no free port"

    def install(self, key, ext, lifetime, nonce):
        old = self.maps.get(key)
        if old is not None and old["ext"] == ext:
            old.update(expires=time.monotonic() + lifetime, nonce=nonce)
            return "renew"
        if old is not None:
            self.drop(key, log=False)
        h = self.nft.map(key[1], ext, key[0], key[2]) if self.nft else None
        self.maps[key] = {"nonce": nonce, "ext": ext, "expires": time.monotonic() + lifetime, "nft": h}
        return "create"

    # ---------------------------------------------------------------- NAT-PMP
    def pmp_answer(self, op, result, body=b""):
        return struct.pack("!BBHI", 0, 128 + op, result, self.epoch()) + body

    def natpmp(self, data, peer, e):
        e["kind"] = "natpmp"
        op = data[1]
        e["opcode"] = op
        if op >= 128:
            return self.reject(e, "NAT-PMP answer opcode %d in a request" % op)
        if op == 0:
            if len(data) != 2:
                return self.reject(e, "address request of %d bytes, want 2" % len(data))
            e.update(action="address", result=0)
            return self.pmp_answer(0, 0, socket.inet_aton(self.a.external_ip))
        if op not in (1, 2):
            e.update(result=5, action="refused")
            return self.pmp_answer(op, 5)
        if len(data) != 12:
            return self.reject(e, "map request of %d bytes, want 12" % len(data))
        _, _, resv, iport, sport, lt = struct.unpack("!BBHHHI", data)
        proto = 17 if op == 1 else 6
        e.update(proto=proto, internal_port=iport, suggested_port=sport, lifetime=lt, reserved=resv)
        if resv != 0:
            return self.reject(e, "reserved field %#x" % resv)
        if iport == 0 and lt != 0:
            return self.reject(e, "internal port 0 with lifetime %d" % lt)
        client = peer[0]

        def ans(result, ext, glt):
            e.update(result=result, external_port=ext, granted_lifetime=glt)
            return self.pmp_answer(op, result, struct.pack("!HHI", iport, ext, glt))
        if self.mode("natpmp-result"):
            e["action"] = "refused"
            return ans(self.a.mode_arg, 0, 0)
        if lt == 0:
            if iport == 0:
                keys = [k for k in self.maps if k[0] == client and k[1] == proto]
                for k in keys:
                    self.drop(k, log=False)
                e["action"] = "delete-all"
                e["deleted"] = len(keys)
                return ans(0, 0, 0)
            key = (client, proto, iport)
            e["action"] = "delete" if key in self.maps else "delete-none"
            if key in self.maps:
                self.drop(key, log=False)
            return ans(0, 0, 0)
        key = (client, proto, iport)
        old = self.maps.get(key)
        want = old["ext"] if old and not self.mode("other-port") else (sport or iport)
        ext, why = self.pick_port(proto, want, key, False)
        if ext is None:
            e.update(action="refused", why=why)
            return ans(4, 0, 0)
        glt = self.grant_lifetime(lt)
        e["action"] = self.install(key, ext, glt, None)
        return ans(0, ext, glt)

    # ---------------------------------------------------------------- PCP
    def pcp_answer(self, data, result, lifetime, payload=None):
        """Header answer for a request DATA (padded/truncated), or header + payload."""
        op = (data[1] & 0x7f) | 0x80 if len(data) > 1 else 0x80
        head = struct.pack("!BBBBII", 2, op, 0, result, lifetime, self.epoch()) + b"\x00" * 12
        if payload is not None:
            return head + payload
        return head

    def pcp(self, data, peer, e):
        e["kind"] = "pcp"
        ver, op = data[0], data[1]
        e.update(version=ver, opcode=op & 0x7f)
        if op & 0x80:
            return self.reject(e, "R bit set in a request")
        if ver != 2:
            e.update(result=1, action="refused", rejected="PCP version %d" % ver)
            return self.pcp_answer(data, 1, 0)
        if len(data) < 24 or len(data) > PCP_MAX or len(data) % 4:
            e.update(result=3, action="refused", rejected="PCP request of %d bytes" % len(data))
            return self.pcp_answer(data, 3, self.a.error_lifetime)
        lt = struct.unpack_from("!I", data, 4)[0]
        cip = data[8:24]
        e.update(lifetime=lt, client_ip=ip16(cip), reserved=data[2])
        if data[2] != 0:
            e.update(result=3, action="refused", rejected="reserved byte %#x" % data[2])
            return self.pcp_answer(data, 3, self.a.error_lifetime)
        opcode = op & 0x7f
        if opcode not in (0, 1):
            e.update(result=4, action="refused")
            return self.pcp_answer(data, 4, self.a.error_lifetime)
        if cip != V4MAPPED + socket.inet_aton(peer[0]):
            e.update(result=12, action="refused",
                     rejected="client IP %s, source %s" % (e["client_ip"], peer[0]))
            return self.map_error(data, 12) if opcode == 1 and len(data) >= 60 else self.pcp_answer(data, 12, 0)
        if opcode == 0:
            if len(data) != 24 or lt != 0:
                e.update(result=3, action="refused", rejected="ANNOUNCE with lifetime %d / %d bytes" % (lt, len(data)))
                return self.pcp_answer(data, 3, self.a.error_lifetime)
            e.update(result=0, action="announce")
            return self.pcp_answer(data, 0, 0)
        if len(data) < 60:
            e.update(result=3, action="refused", rejected="MAP of %d bytes" % len(data))
            return self.pcp_answer(data, 3, self.a.error_lifetime)
        nonce = data[24:36]
        proto = data[36]
        iport, sport = struct.unpack_from("!HH", data, 40)
        sip = data[44:60]
        e.update(nonce=nonce.hex(), proto=proto, internal_port=iport, suggested_port=sport,
                 suggested_ip=ip16(sip), reserved3=data[37:40].hex())
        # options
        opts, off, prefer_failure = [], 60, False
        while off < len(data):
            if len(data) - off < 4:
                e.update(result=6, action="refused", rejected="truncated option header")
                return self.map_error(data, 6)
            code, _, olen = struct.unpack_from("!BBH", data, off)
            padded = (olen + 3) & ~3
            if len(data) - off - 4 < padded:
                e.update(result=6, action="refused", rejected="option %d overruns the message" % code)
                return self.map_error(data, 6)
            opts.append({"code": code, "len": olen})
            if code == OPT_PREFER_FAILURE:
                if olen != 0 or prefer_failure:
                    e.update(options=opts, result=6, action="refused", rejected="bad PREFER_FAILURE")
                    return self.map_error(data, 6)
                prefer_failure = True
            elif code < 128:
                e.update(options=opts, result=5, action="refused", rejected="unsupported option %d" % code)
                return self.map_error(data, 5)
            off += 4 + padded
        e["options"] = opts
        if data[37:40] != b"\x00\x00\x00":
            e.update(result=3, action="refused", rejected="MAP reserved bytes %s" % data[37:40].hex())
            return self.map_error(data, 3)
        if sip[:12] != V4MAPPED:
            e.update(result=3, action="refused", rejected="suggested IP %s is not ::ffff:a.b.c.d" % ip16(sip))
            return self.map_error(data, 3)
        if proto not in (6, 17):
            e.update(result=9, action="refused", rejected="protocol %d" % proto)
            return self.map_error(data, 9)
        if iport == 0:
            e.update(result=3, action="refused", rejected="internal port 0")
            return self.map_error(data, 3)
        if self.mode("result"):
            e.update(result=self.a.mode_arg, action="refused")
            return self.map_error(data, self.a.mode_arg)
        key = (peer[0], proto, iport)
        old = self.maps.get(key)
        if old is not None and old["nonce"] is not None and old["nonce"] != nonce:
            e.update(result=2, action="refused", rejected="nonce differs from the mapping's")
            return self.map_error(data, 2)
        if lt == 0:
            e["action"] = "delete" if old else "delete-none"
            ext = old["ext"] if old else sport
            if old:
                self.drop(key, log=False)
            e.update(result=0, granted_lifetime=0, external_port=ext)
            return self.map_ok(data, 0, ext)
        want = old["ext"] if old and not self.mode("other-port") else (sport or iport)
        ext, why = self.pick_port(proto, want, key, prefer_failure)
        if ext is None:
            code = 11 if prefer_failure else 8
            e.update(result=code, action="refused", why=why)
            return self.map_error(data, code)
        glt = self.grant_lifetime(lt)
        e["action"] = self.install(key, ext, glt, nonce)
        e.update(result=0, granted_lifetime=glt, external_port=ext)
        return self.map_ok(data, glt, ext)

    def map_payload(self, data, ext, ext_ip16):
        nonce = data[24:36]
        if self.mode("wrong-nonce"):
            nonce = bytes(b ^ 0xff for b in nonce)
        return nonce + data[36:37] + b"\x00\x00\x00" + data[40:42] + struct.pack("!H", ext) + ext_ip16

    def map_ok(self, data, lifetime, ext):
        ext_ip = V4MAPPED + socket.inet_aton(self.a.external_ip)
        return self.pcp_answer(data, 0, lifetime, self.map_payload(data, ext, ext_ip) + data[60:])

    def map_error(self, data, result):
        # errors copy the request's suggested port and IP (RFC 6887 11.3)
        lt = 0 if result in (1, 12) else self.a.error_lifetime
        return self.pcp_answer(data, result, lt,
                               self.map_payload(data, struct.unpack_from("!H", data, 42)[0], data[44:60]) + data[60:])

    # ---------------------------------------------------------------- dispatch
    def reject(self, e, why):
        e.update(rejected=why, result=None)
        return None

    def handle(self, data, peer):
        """-> answer bytes or None; fills and returns the log entry."""
        e = {"kind": "garbage", "peer": "%s:%d" % peer, "len": len(data), "hex": data[:PCP_MAX + 16].hex(),
             "mode": self.a.mode, "rejected": None}
        ans = None
        if len(data) < 2:
            self.reject(e, "shorter than 2 bytes")
        elif data[0] == 0 and not self.mode("pcp-only"):
            ans = self.natpmp(data, peer, e)
        elif data[0] == 0:  # pcp-only: NAT-PMP gets PCP's UNSUPP_VERSION
            e.update(kind="natpmp", version=0, opcode=data[1], result=1, action="refused",
                     rejected="NAT-PMP to a PCP-only server")
            ans = None if data[1] & 0x80 else self.pcp_answer(data, 1, 0)
        elif self.mode("natpmp-only"):
            e.update(kind="pcp", version=data[0], opcode=data[1] & 0x7f, result=1, action="refused",
                     rejected="PCP to a NAT-PMP-only server")
            ans = None if data[1] & 0x80 else self.pmp_answer(data[1] & 0x7f, 1)
        else:
            ans = self.pcp(data, peer, e)
        if e.get("result") is not None:
            names = PMP_RESULTS if ans is not None and ans[0] == 0 else PCP_RESULTS
            e["result_name"] = names.get(e["result"])
        e["epoch"] = self.epoch()
        return ans, e


def ip16(b):
    try:
        a = ipaddress.IPv6Address(bytes(b))
    except ValueError:
        return None
    return str(a.ipv4_mapped) if a.ipv4_mapped is not None else str(a)


def main(argv):
    a = parse_args(argv)
    srv = Server(a)
    stop = {"why": None}

    def on_term(signum, frame):
        stop["why"] = "signal %d" % signum

    def on_usr1(signum, frame):
        stop["usr1"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, on_usr1)
    if a.pid_file:
        with open(a.pid_file + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.rename(a.pid_file + ".tmp", a.pid_file)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((a.listen, a.port))
    port = sock.getsockname()[1]
    out = sock
    if a.mode_name == "wrong-source":
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        out.bind((a.answer_from, port))
    if a.nft:
        srv.nft = Nft(srv, a.nft_wan_if, a.nft_forward)
    srv.log({"kind": "start", "listen": "%s:%d" % (a.listen, port), "mode": a.mode,
             "external_ip": a.external_ip, "nft": bool(a.nft), "pid": os.getpid()})
    ready = "ready udp=%s:%d mode=%s" % (a.listen, port, a.mode)
    if a.ready_file:
        with open(a.ready_file + ".tmp", "w") as f:
            f.write(ready + "\n")
        os.rename(a.ready_file + ".tmp", a.ready_file)
    print(ready, flush=True)
    deadline = time.monotonic() + a.max_seconds
    try:
        while stop["why"] is None:
            if time.monotonic() >= deadline:
                stop["why"] = "max-seconds"
                break
            if stop.pop("usr1", False):
                srv.reboot("SIGUSR1")
            srv.tick()
            try:
                r, _, _ = select.select([sock], [], [], 0.2)
            except InterruptedError:
                continue
            if not r:
                continue
            try:
                data, peer = sock.recvfrom(4096)
            except OSError:
                continue
            try:
                ans, e = srv.handle(data, peer)
            except Exception as ex:  # never crash on input
                ans, e = None, {"kind": "garbage", "peer": "%s:%d" % peer, "len": len(data),
                                "hex": data[:PCP_MAX].hex(), "mode": a.mode, "rejected": "exception %r" % ex}
            if a.mode_name == "silent":
                ans = None
            e["answered"] = ans is not None
            e["answer_hex"] = ans.hex() if ans is not None else None
            e["answer_from"] = "%s:%d" % out.getsockname() if ans is not None else None
            srv.log(e)
            if ans is not None:
                try:
                    out.sendto(ans, peer)
                except OSError:
                    pass
    finally:
        if srv.nft:
            srv.nft.close()
        srv.log({"kind": "exit", "why": stop["why"], "mappings": len(srv.maps)})
    return 0


if __name__ == "__main__":
    try:
        rc = main(sys.argv[1:])
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 0
    sys.stdout.flush()
    os._exit(rc)
