#!/usr/bin/env python3
"""fake_igd.py - a STRICT fake UPnP Internet Gateway Device, for tests.

It serves SSDP (answers M-SEARCH) and HTTP (the device description and the
WANIPConnection control URL), keeps a port-mapping table, and logs every
request as one JSON line, so that a test can assert what a client sent.

Where miniupnpd is lenient, this is strict, as many real routers are
(shared/natlab/NOTES.md "The UPnP router"):

  request                                         answer
  ----------------------------------------------  ------------------------------
  not "METHOD PATH HTTP/1.1", no Host, bad header  400 Bad Request
  POST without Content-Length, or chunked          411 Length Required
  Expect: 100-continue                             417 Expectation Failed
  Content-Type missing, not text/xml, or a         400 Bad Request
    charset other than utf-8
  body not well-formed XML (a raw '<' or '&' in    400 Bad Request
    a value), a DOCTYPE, not a SOAP Envelope with
    encodingStyle and one action in the Body
  SOAPAction missing or not in double quotes,      500, UPnP 401 Invalid Action
    a service type other than ours, or an action
    other than the one in the body
  arguments missing, extra or out of the order     500, UPnP 402 Invalid Args
    of the service description; a protocol other
    than exactly "TCP" or "UDP"; a port or lease
    that is not a plain decimal number in range;
    an empty description
  NewInternalClient other than the connection's    500, UPnP 606 Action not authorized
    source address
  NewRemoteHost not empty                          500, UPnP 726 RemoteHostOnlySupportsWildcard
  AddPortMapping with NewExternalPort 0            500, UPnP 716 WildCardNotPermittedInExtPort
  the external port taken by another client        500, UPnP 718 ConflictInMappingEntry
  Get/Delete of a mapping that does not exist      500, UPnP 714 NoSuchEntryInArray

Only requests that pass every check reach the action, and only then is a
scripted fault (--faults) consumed.

Output: once bound, it prints one line "ready http=IP:PORT [ssdp=IP]" on
stdout (and creates --ready-file if given); a test waits for that line.
Signals: SIGTERM and SIGINT exit at once; SIGUSR1 "restarts" the router
(drops every mapping, as a reboot would).

It binds only the addresses it is given: --http ADDR[:PORT] for HTTP, and
with --ssdp IFADDR the group 239.255.255.250:1900 (joined on the interface
with address IFADDR) plus IFADDR:1900 for the unicast replies. Never
0.0.0.0. Python 3 standard library only.
"""

import argparse
import json
import os
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

SSDP_GROUP = "239.255.255.250"
SSDP_PORT = 1900
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ENC = "http://schemas.xmlsoap.org/soap/encoding/"
HEADER_MAX = 16 * 1024
BODY_MAX = 64 * 1024
IO_TIMEOUT = 10.0
HUGE_BYTES = 10 * 1024 * 1024
UUID = "uuid:5f1e0b2a-7c3d-4e5f-8a9b-00000000fa1e"

FAULT_NAMES = {
    401: "Invalid Action",
    402: "Invalid Args",
    501: "Action Failed",
    606: "Action not authorized",
    713: "SpecifiedArrayIndexInvalid",
    714: "NoSuchEntryInArray",
    715: "WildCardNotPermittedInSrcIP",
    716: "WildCardNotPermittedInExtPort",
    718: "ConflictInMappingEntry",
    724: "SamePortValuesRequired",
    725: "OnlyPermanentLeasesSupported",
    726: "RemoteHostOnlySupportsWildcard",
    727: "ExternalPortOnlySupportsWildcard",
    728: "NoPortMapsAvailable",
    729: "ConflictWithOtherMechanisms",
}

MAPPING_ARGS = ["NewRemoteHost", "NewExternalPort", "NewProtocol", "NewInternalPort",
                "NewInternalClient", "NewEnabled", "NewPortMappingDescription",
                "NewLeaseDuration"]
KEY_ARGS = ["NewRemoteHost", "NewExternalPort", "NewProtocol"]
ACTION_ARGS = {
    "GetExternalIPAddress": [],
    "AddPortMapping": MAPPING_ARGS,
    "AddAnyPortMapping": MAPPING_ARGS,  # WANIPConnection:2 only
    "DeletePortMapping": KEY_ARGS,
    "GetSpecificPortMappingEntry": KEY_ARGS,
}
LEASE_MAX = 604800

HELP_EPILOG = """
behaviour switches (for every HTTP request, description and SOAP alike):
  --delay-ms N   answer after N ms
  --hang         read the request, then never answer (the connection stays
                 open until the client gives up)
  --endless      answer 200 with an endless chunked body
  --huge         answer 200 with a 10 MB body (Content-Length given)
  --html         answer 200 with an HTML login page instead of XML
  --hang-action A  like --hang, for SOAP action A only

log (--log FILE): one JSON object per line:
  {"t": 1700000000.123, "kind": "http", "peer": "192.168.9.2:40312",
   "method": "POST", "path": "/ctl/IPConn", "headers": {"content-type": ...},
   "soapaction": "\\"urn:...:WANIPConnection:2#AddPortMapping\\"",
   "action": "AddPortMapping", "arg_order": ["NewRemoteHost", ...],
   "args": {"NewExternalPort": "40001", ...},
   "status": 200, "fault": null, "rejected": null}
  "rejected" says why a request failed a strict check; "fault" is the UPnP
  errorCode sent (scripted or not). SSDP: {"kind": "ssdp", "peer", "st",
  "man", "mx", "answered"}; SIGUSR1: {"kind": "restart", "dropped": N}.

examples:
  fake_igd.py --http 127.0.0.1:0 --log /tmp/igd.log
  fake_igd.py --http 192.168.9.1:5000 --ssdp 192.168.9.1 --faults 718,718
"""


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="fake_igd.py",
        description="A strict fake UPnP IGD (SSDP + HTTP + SOAP) for tests.",
        epilog=HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--http", required=True, metavar="ADDR[:PORT]",
                   help="IPv4 address (and port, default 5000; 0 picks a free one) to serve HTTP on")
    p.add_argument("--ssdp", metavar="IFADDR",
                   help="answer M-SEARCH: join 239.255.255.250 on the interface with this IPv4 "
                        "address and bind 239.255.255.250:1900 and IFADDR:1900 (default: no SSDP)")
    p.add_argument("--location", metavar="URL",
                   help="LOCATION in SSDP replies (default http://HTTP-ADDR:PORT/rootDesc.xml)")
    p.add_argument("--igd-version", type=int, choices=(1, 2), default=2,
                   help="describe an IGD:N with WANIPConnection:N (default 2; only v2 has AddAnyPortMapping)")
    p.add_argument("--external-ip", default="203.0.113.109", metavar="IP",
                   help="GetExternalIPAddress answer; '' sends it empty (default 203.0.113.109, "
                        "r-lan's WAN address in the lab)")
    p.add_argument("--faults", default="", metavar="CODE,...",
                   help="UPnP error codes to answer AddPortMapping/AddAnyPortMapping with, one per "
                        "call, consumed in order; then calls succeed (e.g. 718,718,725)")
    p.add_argument("--only-permanent", action="store_true",
                   help="refuse every non-zero NewLeaseDuration with 725 (after --faults)")
    p.add_argument("--delay-ms", type=int, default=0, metavar="N", help="answer HTTP after N ms")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--hang", action="store_true", help="never answer HTTP requests")
    mode.add_argument("--endless", action="store_true", help="answer with an endless chunked body")
    mode.add_argument("--huge", action="store_true", help="answer with a 10 MB body")
    mode.add_argument("--html", action="store_true", help="answer with HTML instead of XML")
    p.add_argument("--hang-action", action="append", default=[], metavar="ACTION",
                   help="never answer this SOAP action (e.g. DeletePortMapping); repeatable")
    p.add_argument("--log", metavar="FILE", help="append one JSON line per request to FILE")
    p.add_argument("--ready-file", metavar="FILE", help="create FILE once the sockets are bound")
    a = p.parse_args(argv)
    host, _, port = a.http.partition(":")
    try:
        socket.inet_aton(host)
        a.http_addr = (host, int(port) if port else 5000)
        if not 0 <= a.http_addr[1] <= 65535:
            raise ValueError
    except (OSError, ValueError):
        p.error("--http wants IPv4ADDR[:PORT], got %r" % a.http)
    if a.http_addr[0] == "0.0.0.0":
        p.error("--http: give the address to serve on, not 0.0.0.0")
    if a.ssdp is not None:
        try:
            socket.inet_aton(a.ssdp)
        except OSError:
            p.error("--ssdp wants an IPv4 interface address, got %r" % a.ssdp)
        if a.ssdp == "0.0.0.0":
            p.error("--ssdp: give the interface address, not 0.0.0.0")
    try:
        a.fault_script = [int(x) for x in a.faults.split(",") if x.strip() != ""]
    except ValueError:
        p.error("--faults wants comma-separated integers, got %r" % a.faults)
    if a.delay_ms < 0:
        p.error("--delay-ms must be >= 0")
    return a


class Igd:
    """The router's state: mappings, the fault script, the log."""

    def __init__(self, args):
        self.a = args
        self.lock = threading.RLock()
        self.mappings = {}  # (proto, ext_port) -> dict
        self.faults = list(args.fault_script)
        self.log_lock = threading.RLock()
        self.logf = open(args.log, "a", encoding="utf-8") if args.log else None
        v = args.igd_version
        self.service = "urn:schemas-upnp-org:service:WANIPConnection:%d" % v
        self.http_port = 0

    def log(self, obj):
        if self.logf is None:
            return
        obj = dict(t=round(time.time(), 3), **obj)
        with self.log_lock:
            self.logf.write(json.dumps(obj) + "\n")
            self.logf.flush()

    def restart(self):
        with self.lock:
            n = len(self.mappings)
            self.mappings.clear()
        self.log({"kind": "restart", "dropped": n})

    # ------------------------------------------------------------ documents
    def description(self):
        v = self.a.igd_version
        host = "%s:%d" % (self.a.http_addr[0], self.http_port)
        return ("<?xml version=\"1.0\"?>\n"
                "<root xmlns=\"urn:schemas-upnp-org:device-1-0\"><specVersion><major>1</major>"
                "<minor>1</minor></specVersion><device>"
                "<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:%d</deviceType>"
                "<friendlyName>natbroker fake IGD</friendlyName><manufacturer>natbroker tests</manufacturer>"
                "<modelName>fake_igd.py</modelName><modelNumber>1</modelNumber>"
                "<UDN>%s</UDN><serviceList><service>"
                "<serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>"
                "<serviceId>urn:upnp-org:serviceId:L3Forwarding1</serviceId><SCPDURL>/L3F.xml</SCPDURL>"
                "<controlURL>/ctl/L3F</controlURL><eventSubURL>/evt/L3F</eventSubURL></service></serviceList>"
                "<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:%d</deviceType>"
                "<friendlyName>WANDevice</friendlyName><manufacturer>natbroker tests</manufacturer>"
                "<modelName>WAN Device</modelName><UDN>%s-1</UDN><serviceList><service>"
                "<serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType>"
                "<serviceId>urn:upnp-org:serviceId:WANCommonIFC1</serviceId><SCPDURL>/WANCfg.xml</SCPDURL>"
                "<controlURL>/ctl/CmnIfCfg</controlURL><eventSubURL>/evt/CmnIfCfg</eventSubURL></service>"
                "</serviceList><deviceList><device>"
                "<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:%d</deviceType>"
                "<friendlyName>WANConnectionDevice</friendlyName><manufacturer>natbroker tests</manufacturer>"
                "<modelName>fake_igd.py</modelName><UDN>%s-2</UDN><serviceList><service>"
                "<serviceType>%s</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>"
                "<SCPDURL>/WANIPCn.xml</SCPDURL><controlURL>/ctl/IPConn</controlURL>"
                "<eventSubURL>/evt/IPConn</eventSubURL></service></serviceList></device></deviceList>"
                "</device></deviceList><presentationURL>http://%s/</presentationURL></device></root>"
                % (v, UUID, v, UUID, v, UUID, self.service, host)).encode()

    def scpd(self):
        def arg(name, direction, var):
            return ("<argument><name>%s</name><direction>%s</direction>"
                    "<relatedStateVariable>%s</relatedStateVariable></argument>" % (name, direction, var))
        var = {"NewRemoteHost": "RemoteHost", "NewExternalPort": "ExternalPort",
               "NewProtocol": "PortMappingProtocol", "NewInternalPort": "InternalPort",
               "NewInternalClient": "InternalClient", "NewEnabled": "PortMappingEnabled",
               "NewPortMappingDescription": "PortMappingDescription",
               "NewLeaseDuration": "PortMappingLeaseDuration"}
        acts = []
        for name, ins in ACTION_ARGS.items():
            if name == "AddAnyPortMapping" and self.a.igd_version < 2:
                continue
            outs = {"GetExternalIPAddress": ["NewExternalIPAddress"],
                    "AddAnyPortMapping": ["NewReservedPort"],
                    "GetSpecificPortMappingEntry": MAPPING_ARGS[3:]}.get(name, [])
            a = "".join(arg(n, "in", var[n]) for n in ins)
            a += "".join(arg(n, "out", var.get(n, "ExternalIPAddress" if n == "NewExternalIPAddress"
                                               else "ExternalPort")) for n in outs)
            acts.append("<action><name>%s</name><argumentList>%s</argumentList></action>" % (name, a))
        return ("<?xml version=\"1.0\"?>\n<scpd xmlns=\"urn:schemas-upnp-org:service-1-0\">"
                "<specVersion><major>1</major><minor>0</minor></specVersion><actionList>%s</actionList>"
                "</scpd>" % "".join(acts)).encode()

    # ------------------------------------------------------------ SOAP actions
    def act(self, action, args, peer_ip):
        """-> (fault_code or None, [(name, value)] out args, rejected reason or None)"""
        now = time.monotonic()
        with self.lock:
            for k in [k for k, m in self.mappings.items() if m["expires"] and m["expires"] <= now]:
                del self.mappings[k]
            if action == "GetExternalIPAddress":
                return None, [("NewExternalIPAddress", self.a.external_ip)], None
            if args.get("NewRemoteHost", "") != "":
                return 726, [], "NewRemoteHost not empty"
            proto = args["NewProtocol"]
            if proto not in ("TCP", "UDP"):
                return 402, [], "NewProtocol %r is not TCP or UDP" % proto
            ext = port_value(args["NewExternalPort"], allow_zero=True)
            if ext is None:
                return 402, [], "NewExternalPort %r" % args["NewExternalPort"]
            key = (proto, ext)
            if action == "GetSpecificPortMappingEntry":
                m = self.mappings.get(key)
                if m is None:
                    return 714, [], None
                left = max(1, int(m["expires"] - now)) if m["expires"] else 0
                return None, [("NewInternalPort", str(m["port"])), ("NewInternalClient", m["client"]),
                              ("NewEnabled", "1" if m["enabled"] else "0"),
                              ("NewPortMappingDescription", m["desc"]),
                              ("NewLeaseDuration", str(left))], None
            if action == "DeletePortMapping":
                if key not in self.mappings:
                    return 714, [], None
                del self.mappings[key]
                return None, [], None
            # AddPortMapping / AddAnyPortMapping
            port = port_value(args["NewInternalPort"], allow_zero=False)
            if port is None:
                return 402, [], "NewInternalPort %r" % args["NewInternalPort"]
            lease = args["NewLeaseDuration"]
            if not re.fullmatch(r"[0-9]{1,10}", lease) or int(lease) > LEASE_MAX:
                return 402, [], "NewLeaseDuration %r" % lease
            lease = int(lease)
            enabled = args["NewEnabled"]
            if enabled not in ("0", "1", "true", "false", "yes", "no"):
                return 402, [], "NewEnabled %r" % enabled
            if args["NewPortMappingDescription"] == "":
                return 402, [], "empty NewPortMappingDescription"
            client = args["NewInternalClient"]
            if client != peer_ip:
                return 606, [], "NewInternalClient %r is not the requester %s" % (client, peer_ip)
            if ext == 0 and action == "AddPortMapping":
                return 716, [], None
            if self.faults:
                return self.faults.pop(0), [], None
            if self.a.only_permanent and lease != 0:
                return 725, [], None
            m = self.mappings.get(key)
            mine = m is not None and m["client"] == client and m["port"] == port
            if ext == 0 or (m is not None and not mine):
                if action == "AddPortMapping":
                    return 718, [], None
                ext = next((p for p in range(max(ext, 1024), 65536)
                            if (proto, p) not in self.mappings), None)
                if ext is None:
                    return 728, [], None
                key = (proto, ext)
            self.mappings[key] = {"client": client, "port": port, "desc": args["NewPortMappingDescription"],
                                  "enabled": enabled in ("1", "true", "yes"),
                                  "expires": now + lease if lease else 0}
            if action == "AddAnyPortMapping":
                return None, [("NewReservedPort", str(ext))], None
            return None, [], None


def port_value(s, allow_zero):
    if not re.fullmatch(r"[0-9]{1,5}", s):
        return None
    v = int(s)
    if v > 65535 or (v == 0 and not allow_zero):
        return None
    return v


# ------------------------------------------------------------------ HTTP
class Reject(Exception):
    def __init__(self, status, reason, fault=None):
        super().__init__(reason)
        self.status, self.reason, self.fault = status, reason, fault


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           411: "Length Required", 417: "Expectation Failed", 500: "Internal Server Error"}


def read_request(conn):
    """-> (method, path, version, headers list [(name, value)], body bytes)"""
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > HEADER_MAX:
            raise Reject(400, "header section larger than %d bytes" % HEADER_MAX)
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the end of the headers")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    try:
        lines = head.decode("ascii").split("\r\n")
    except UnicodeDecodeError:
        raise Reject(400, "non-ASCII header section")
    m = re.fullmatch(r"([A-Z]+) (/[!-~]*) (HTTP/1\.[01])", lines[0])
    if m is None:
        raise Reject(400, "bad request line %r" % lines[0][:100])
    headers = []
    for line in lines[1:]:
        hm = re.fullmatch(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*", line)
        if hm is None:
            raise Reject(400, "bad header line %r" % line[:100])
        headers.append((hm.group(1), hm.group(2)))
    req = (m.group(1), m.group(2), m.group(3), headers)
    hdr = {}
    for k, v in headers:
        hdr.setdefault(k.lower(), []).append(v)
    if m.group(3) != "HTTP/1.1" or "host" not in hdr:
        raise RejectWith(400, "not HTTP/1.1 with a Host header", req)
    body = b""
    if "transfer-encoding" in hdr:
        raise RejectWith(411, "chunked request body", req)
    if "content-length" in hdr:
        cl = hdr["content-length"]
        if len(cl) != 1 or not re.fullmatch(r"[0-9]{1,7}", cl[0]) or int(cl[0]) > BODY_MAX:
            raise RejectWith(400, "bad Content-Length %r" % cl, req)
        n = int(cl[0])
        if m.group(1) == "POST" and any(v.lower() == "100-continue" for v in hdr.get("expect", [])):
            raise RejectWith(417, "Expect: 100-continue", req)
        body = rest
        while len(body) < n:
            chunk = conn.recv(min(65536, n - len(body)))
            if not chunk:
                raise ConnectionError("closed before the end of the body")
            body += chunk
        body = body[:n]
    elif m.group(1) == "POST":
        raise RejectWith(411, "POST without Content-Length", req)
    return req + (body,)


class RejectWith(Reject):
    def __init__(self, status, reason, req, fault=None):
        super().__init__(status, reason, fault)
        self.req = req


def check_content_type(values):
    if len(values) != 1:
        return "Content-Type missing or repeated"
    parts = [p.strip() for p in values[0].split(";")]
    if parts[0].lower() != "text/xml":
        return "Content-Type %r is not text/xml" % values[0]
    for p in parts[1:]:
        k, _, v = p.partition("=")
        if k.strip().lower() == "charset" and v.strip().strip('"').lower() not in ("utf-8",):
            return "charset %r is not utf-8" % v
    return None


def parse_soap(body):
    """-> (service namespace, action, [(name, value)]) or raises Reject(400)"""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise Reject(400, "DOCTYPE or ENTITY in a SOAP body")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise Reject(400, "body is not well-formed XML (%s)" % e)
    if root.tag != "{%s}Envelope" % SOAP_ENV:
        raise Reject(400, "root element %r is not a SOAP Envelope" % root.tag)
    if root.get("{%s}encodingStyle" % SOAP_ENV) != SOAP_ENC:
        raise Reject(400, "Envelope without s:encodingStyle=%r" % SOAP_ENC)
    bodies = [c for c in root if c.tag == "{%s}Body" % SOAP_ENV]
    if len(bodies) != 1 or len(list(bodies[0])) != 1:
        raise Reject(400, "the Envelope must hold one Body with one action element")
    act = list(bodies[0])[0]
    m = re.fullmatch(r"\{([^}]*)\}(.+)", act.tag)
    if m is None:
        raise Reject(400, "action element %r has no namespace" % act.tag)
    args = []
    for a in act:
        if len(list(a)) != 0 or a.tag.startswith("{"):
            raise Reject(400, "argument %r is not a plain text element" % a.tag)
        args.append((a.tag, a.text or ""))
    return m.group(1), m.group(2), args


class Conn(threading.Thread):
    def __init__(self, igd, sock, peer):
        super().__init__(daemon=True)
        self.igd, self.sock, self.peer = igd, sock, peer
        self.entry = {"kind": "http", "peer": "%s:%d" % peer}

    def run(self):
        try:
            self.sock.settimeout(IO_TIMEOUT)
            self.serve()
        except (OSError, ConnectionError):
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def send(self, status, body, ctype='text/xml; charset="utf-8"', extra=()):
        head = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Error")),
                "Content-Type: %s" % ctype, "Connection: close", "Content-Length: %d" % len(body),
                "Server: Linux/6 UPnP/1.1 fake_igd/1", "Ext:"] + list(extra)
        self.entry["status"] = status
        # Logged before the answer leaves: a client that has its answer can
        # read the line at once (tests never poll the log).
        self.finish_log()
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def finish_log(self):
        if self.entry.get("_logged"):
            return
        self.entry["_logged"] = True
        e = {k: v for k, v in self.entry.items() if k != "_logged"}
        for k in ("method", "path", "headers", "soapaction", "action", "arg_order", "args", "status",
                  "fault", "rejected"):
            e.setdefault(k, None)
        self.igd.log(e)

    def serve(self):
        a = self.igd.a
        try:
            method, path, _, headers, body = read_request(self.sock)
        except RejectWith as r:
            self.entry.update(method=r.req[0], path=r.req[1],
                              headers={k.lower(): v for k, v in r.req[3]}, rejected=r.reason)
            self.send(r.status, b"<html><body>%d</body></html>" % r.status, "text/html")
            self.finish_log()
            return
        except Reject as r:
            self.entry["rejected"] = r.reason
            self.send(r.status, b"<html><body>%d</body></html>" % r.status, "text/html")
            self.finish_log()
            return
        self.entry.update(method=method, path=path, headers={k.lower(): v for k, v in headers})
        sa = [v for k, v in headers if k.lower() == "soapaction"]
        self.entry["soapaction"] = sa[0] if sa else None
        if method == "POST":
            # parse what the client sent, for the log, before any behaviour switch
            try:
                _, action, args = parse_soap(body)
                self.entry.update(action=action, arg_order=[n for n, _ in args], args=dict(args))
            except Reject:
                pass
        try:
            if a.delay_ms:
                time.sleep(a.delay_ms / 1000.0)
            if a.hang or (method == "POST" and self.entry.get("action") in a.hang_action):
                self.entry["status"] = 0
                self.finish_log()
                self.sock.settimeout(None)
                while self.sock.recv(4096):
                    pass
                return
            if a.endless:
                self.entry["status"] = 200
                self.finish_log()
                self.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
                                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                data = b"<x>" * 1365 + b"\n"  # 4096 bytes
                chunk = b"%x\r\n" % len(data) + data + b"\r\n"
                while True:
                    self.sock.sendall(chunk)
            if a.huge:
                self.entry["status"] = 200
                self.finish_log()
                self.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n"
                                  b"Content-Length: %d\r\n\r\n" % HUGE_BYTES)
                block = b"<!-- padding -->" * 4096
                sent = 0
                while sent < HUGE_BYTES:
                    n = min(len(block), HUGE_BYTES - sent)
                    self.sock.sendall(block[:n])
                    sent += n
                return
            if a.html:
                self.send(200, b"<!DOCTYPE html><html><head><title>Router login</title></head>"
                               b"<body><form>Password: <input type=password></form></body></html>",
                          "text/html")
                self.finish_log()
                return
            self.route(method, path, headers, body)
        except Reject as r:
            self.entry["rejected"] = r.reason
            self.entry["fault"] = r.fault
            if r.fault is not None:
                self.send_fault(r.fault)
            else:
                self.send(r.status, b"<html><body>%d</body></html>" % r.status, "text/html")
        self.finish_log()

    def send_fault(self, code):
        self.entry["fault"] = code
        body = ('<?xml version="1.0"?>\n<s:Envelope xmlns:s="%s" s:encodingStyle="%s"><s:Body><s:Fault>'
                "<faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>"
                '<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode>'
                "<errorDescription>%s</errorDescription></UPnPError></detail></s:Fault></s:Body>"
                "</s:Envelope>" % (SOAP_ENV, SOAP_ENC, code, escape(FAULT_NAMES.get(code, "Error"))))
        self.send(500, body.encode())

    def route(self, method, path, headers, body):
        igd = self.igd
        if path in ("/rootDesc.xml", "/WANIPCn.xml"):
            if method != "GET":
                raise Reject(405, "%s on %s" % (method, path))
            self.send(200, igd.description() if path == "/rootDesc.xml" else igd.scpd())
            return
        if path != "/ctl/IPConn":
            raise Reject(404, "no such path %s" % path)
        if method != "POST":
            raise Reject(405, "%s on the control URL" % method)
        why = check_content_type([v for k, v in headers if k.lower() == "content-type"])
        if why:
            raise Reject(400, why)
        ns, action, args = parse_soap(body)
        sa = self.entry["soapaction"]
        if sa is None:
            raise Reject(500, "no SOAPAction header", fault=401)
        m = re.fullmatch(r'"([^"#]+)#([^"#]+)"', sa)
        if m is None:
            raise Reject(500, "SOAPAction %r is not in double quotes" % sa, fault=401)
        if m.group(1) != igd.service or ns != igd.service:
            raise Reject(500, "service type %r / %r is not %s" % (m.group(1), ns, igd.service), fault=401)
        if m.group(2) != action:
            raise Reject(500, "SOAPAction %r names another action than the body's %r"
                         % (m.group(2), action), fault=401)
        want = ACTION_ARGS.get(action)
        if want is None or (action == "AddAnyPortMapping" and igd.a.igd_version < 2):
            raise Reject(500, "unknown action %r" % action, fault=401)
        if [n for n, _ in args] != want:
            raise Reject(500, "arguments %r, want %r" % ([n for n, _ in args], want), fault=402)
        fault, out, why = igd.act(action, dict(args), self.peer[0])
        if why:
            self.entry["rejected"] = why
        if fault is not None:
            self.send_fault(fault)
            return
        res = ('<?xml version="1.0"?>\n<s:Envelope xmlns:s="%s" s:encodingStyle="%s"><s:Body>'
               '<u:%sResponse xmlns:u="%s">%s</u:%sResponse></s:Body></s:Envelope>'
               % (SOAP_ENV, SOAP_ENC, action, igd.service,
                  "".join("<%s>%s</%s>" % (n, escape(v), n) for n, v in out), action))
        self.send(200, res.encode())


# ------------------------------------------------------------------ SSDP
def ssdp_sockets(ifaddr):
    g = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    g.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    g.bind((SSDP_GROUP, SSDP_PORT))
    g.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 struct.pack("4s4s", socket.inet_aton(SSDP_GROUP), socket.inet_aton(ifaddr)))
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    u.bind((ifaddr, SSDP_PORT))
    return g, u


def ssdp_answer(igd, data, peer, reply_sock):
    v = igd.a.igd_version
    entry = {"kind": "ssdp", "peer": "%s:%d" % peer, "st": None, "man": None, "mx": None, "answered": False}
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        igd.log(entry)
        return
    lines = text.split("\r\n")
    hdr = {}
    for line in lines[1:]:
        k, sep, val = line.partition(":")
        if sep:
            hdr[k.strip().lower()] = val.strip()
    entry.update(st=hdr.get("st"), man=hdr.get("man"), mx=hdr.get("mx"))
    # UDA 1.1 1.3.2: a device silently discards an M-SEARCH that is not
    # exactly this: the request line, MAN quoted, an MX, a HOST.
    ok = (lines[0] == "M-SEARCH * HTTP/1.1" and text.endswith("\r\n\r\n")
          and hdr.get("man") == '"ssdp:discover"' and re.fullmatch(r"[1-5]", hdr.get("mx", "") or "")
          and "host" in hdr)
    st = hdr.get("st", "")
    known = {"ssdp:all", "upnp:rootdevice", UUID}
    for n in range(1, v + 1):
        known |= {"urn:schemas-upnp-org:device:InternetGatewayDevice:%d" % n,
                  "urn:schemas-upnp-org:device:WANDevice:%d" % n,
                  "urn:schemas-upnp-org:device:WANConnectionDevice:%d" % n,
                  "urn:schemas-upnp-org:service:WANIPConnection:%d" % n}
    if ok and st in known:
        loc = igd.a.location or "http://%s:%d/rootDesc.xml" % (igd.a.http_addr[0], igd.http_port)
        rst = "urn:schemas-upnp-org:device:InternetGatewayDevice:%d" % v if st == "ssdp:all" else st
        usn = UUID if rst == UUID else "%s::%s" % (UUID, rst)
        msg = ("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: %s\r\nUSN: %s\r\nEXT:\r\n"
               "SERVER: Linux/6 UPnP/1.1 fake_igd/1\r\nLOCATION: %s\r\n"
               "OPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\nBOOTID.UPNP.ORG: 1\r\n"
               "CONFIGID.UPNP.ORG: 1\r\n\r\n" % (rst, usn, loc))
        try:
            reply_sock.sendto(msg.encode(), peer)
            entry["answered"] = True
        except OSError:
            pass
    igd.log(entry)


# ------------------------------------------------------------------ main
def main(argv):
    a = parse_args(argv)
    igd = Igd(a)

    def on_term(signum, frame):
        raise SystemExit(0)

    def on_usr1(signum, frame):
        igd.restart()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, on_usr1)

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(a.http_addr)
    lsock.listen(16)
    igd.http_port = lsock.getsockname()[1]
    udp = []
    if a.ssdp:
        g, u = ssdp_sockets(a.ssdp)
        udp = [g, u]
    ready = "ready http=%s:%d%s" % (a.http_addr[0], igd.http_port, " ssdp=%s" % a.ssdp if a.ssdp else "")
    if a.ready_file:
        with open(a.ready_file + ".tmp", "w") as f:
            f.write(ready + "\n")
        os.rename(a.ready_file + ".tmp", a.ready_file)
    print(ready, flush=True)
    while True:
        r, _, _ = select.select([lsock] + udp, [], [], 1.0)
        for s in r:
            if s is lsock:
                try:
                    c, peer = lsock.accept()
                except OSError:
                    continue
                Conn(igd, c, peer).start()
            else:
                try:
                    data, peer = s.recvfrom(2048)
                except OSError:
                    continue
                ssdp_answer(igd, data, peer, udp[1])


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except SystemExit as e:
        sys.stdout.flush()
        os._exit(e.code if isinstance(e.code, int) else 0)
