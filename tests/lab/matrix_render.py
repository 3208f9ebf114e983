#!/usr/bin/env python3
"""matrix_render.py: the who-can-reach-whom matrix of tests/lab/matrix.sh.

Joins what the demo measured with what the broker predicted and writes
matrix.json, matrix.html and the terminal matrix. Standard library only.

Two ways to run it:

  matrix_render.py --hosts "pub fc ..." --verdicts V.tsv --peers P.json \
      --matrix M.json --runs R.tsv --logs DIR --out DIR [--color always|never]
      (what matrix.sh does after the run: build matrix.json from the raw
       results, then render)

  matrix_render.py --from-json matrix.json --out DIR [--color ...] [--quiet]
      (render an existing matrix.json again: the HTML test does this)

The prediction is the broker's (`natpeer matrix --json`); nothing here
computes one. A pair agrees when the measured path is the predicted one and,
where both are known, the IP family it connected over is the family of the
broker's plan ("plan_family" against the connected event's "family"). Exit
status: 0 when every pair agrees, 1 when one does not, 2 on bad input.
"""

import argparse
import datetime
import html
import json
import os
import re
import sys

PATHS = ("direct", "lan", "upnp", "birthday", "relay", "none")
SYMBOL = {"direct": "D", "lan": "L", "upnp": "U", "birthday": "B", "relay": "R", "none": "-"}
WORDS = {
    "direct": "direct: straight between the public addresses",
    "lan": "lan: on the shared LAN, private addresses",
    "upnp": "upnp: through a UPnP port mapping",
    "birthday": "birthday: direct, the symmetric side sprays from many sockets, "
                "the other probes random ports",
    "relay": "relay: through the broker's TURN relay",
    "none": "none: no connection",
}
SHORT_KIND = {
    "open": "open", "full-cone": "full-cone", "restricted-cone": "restricted",
    "port-restricted-cone": "port-restr", "symmetric": "symmetric",
    "udp-blocked": "blocked", "firewall": "firewall", "unknown": "unknown",
}
TINY_KIND = {
    "open": "open", "full-cone": "fc", "restricted-cone": "rc",
    "port-restricted-cone": "prc", "symmetric": "sym", "udp-blocked": "blk",
    "firewall": "fw", "unknown": "?",
}
FAMILIES = (4, 6)
ABBR = {
    "none": "none", "endpoint-independent": "EI", "address-dependent": "AD",
    "address-and-port-dependent": "APD", "unknown": "?",
}
# HTML colours; tests/lab/test_matrix_html.sh looks for these in the screenshot
COLOR = {
    "direct": "#2e9d4f", "lan": "#1f7fc0", "upnp": "#8e5cc7", "birthday": "#0f8b8d",
    "relay": "#e39b22", "none": "#e2e2e2", "disagree": "#d7263d",
}
# the figures of a birthday connection, in the order pair_words gives them
BDAY_KEYS = ("probes", "rate", "sockets", "socket", "port")


def sym(path):
    return SYMBOL.get(path, "?")


# ---------------------------------------------------------------- building
def read_tsv(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                rows.append(line.split("\t"))
    return rows


def first_event(path):
    """The first JSON event line natpeer printed, or None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line.startswith("{") and '"event"' in line:
                    try:
                        return json.loads(line)
                    except ValueError:
                        continue
    except OSError:
        pass
    return None


def birthday_figures(*objs):
    """One "birthday" object from several (the broker's matrix entry, the
    connector's and the listener's connected events): the first value of each
    field wins; None when none has one. The probing side reports probes and
    rate, the spraying side sockets and its winning socket, both the port."""
    out = {}
    for o in objs:
        b = (o or {}).get("birthday")
        if not isinstance(b, dict):
            continue
        for k in BDAY_KEYS:
            if k not in out and isinstance(b.get(k), int):
                out[k] = b[k]
    return {k: out[k] for k in BDAY_KEYS if k in out} or None


def birthday_words(b):
    """"173 probes at 1000/s, socket 17 of 256, port 40211" from a birthday object."""
    if not b:
        return ""
    w = []
    if "probes" in b:
        w.append("%d probes" % b["probes"] + (" at %d/s" % b["rate"] if "rate" in b else ""))
    elif "rate" in b:
        w.append("probes at %d/s" % b["rate"])
    if "sockets" in b:
        w.append("socket %d of %d" % (b["socket"], b["sockets"]) if "socket" in b
                 else "%d sockets" % b["sockets"])
    if "port" in b:
        w.append("port %d" % b["port"])
    return ", ".join(w)


def relay_fallback(path):
    """Why the direct plan failed, when natpeer fell back to the relay (its stderr), or None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"\S+: no direct path \((.*)\); trying the relay$", line.rstrip("\n"))
                if m:
                    return m.group(1)
    except OSError:
        pass
    return None


def listener_events(path):
    """Events a listener printed, by the peer they name."""
    ev = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    o = json.loads(line)
                except ValueError:
                    continue
                if isinstance(o, dict) and "event" in o and "peer" in o:
                    ev.setdefault(o["peer"], o)
    except OSError:
        pass
    return ev


def upnp_status(path):
    """What the listener's natpeer said about its router port mapping (UPnP,
    PCP or NAT-PMP: the broker's path word is "upnp" for all three) on
    stderr, or None (no port-mapping client)."""
    st = None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                m = re.match(r"(upnp|pcp|nat-pmp|portmap): (.*)$", line)
                if not m:
                    continue
                proto, rest = m.group(1), m.group(2)
                m = re.match(r"(\S+) verified by the broker$", rest)
                if m and proto != "portmap":
                    st = {"status": "verified",
                          "detail": "%s mapping %s verified by the broker" % (proto, m.group(1))}
                    continue
                m = re.match(r"(.*); using hole punching$", rest)
                if m:
                    st = {"status": "unavailable", "detail": m.group(1)}
                elif st is None and proto == "upnp":
                    st = {"status": "unknown", "detail": rest}
    except OSError:
        pass
    return st


def family_of(addr):
    """4 or 6 from an address as natpeer prints it ("[v6]:port" or "v4:port"), or None."""
    if not isinstance(addr, str) or not addr:
        return None
    return 6 if addr.startswith("[") else 4


def host_families(v, p):
    """A host's two families: {"4": {...} or None, "6": {...} or None} from its
    verdicts.tsv row (each family: MAPPING FILTERING NAT OK DETAIL, "-" when
    the host has not got it; a 6-column row is IPv4 only) and the broker's
    view of it (its registration, and "alt", the other family's)."""
    fams = {}
    for i, fam in ((1, 4), (6, 6)):
        if len(v) < i + 5 or v[i] == "-":
            fams[str(fam)] = None
            continue
        fams[str(fam)] = {"mapping": v[i], "filtering": v[i + 1], "nat": v[i + 2],
                          "as_built": v[i + 3] == "1", "netcheck": v[i + 4]}
    if p is not None:   # the broker's record; its NAT name for the first registration
        for addr, m, f, n in ((p.get("reflexive"), p.get("mapping"), p.get("filtering"), p.get("nat")),
                              (p.get("alt"), p.get("alt_mapping"), p.get("alt_filtering"), None)):
            fam = family_of(addr)
            if fam is None:
                continue
            d = fams.get(str(fam)) or {"nat": "unknown", "as_built": False, "netcheck": ""}
            d.update(mapping=m, filtering=f, address=addr, registered=True)
            if n:
                d["nat"] = n
            fams[str(fam)] = d
    return fams


def build(args):
    hosts_order = args.hosts.split()
    verdicts = {r[0]: r for r in read_tsv(args.verdicts)}
    with open(args.peers, encoding="utf-8") as f:
        peers = {p["id"]: p for p in json.load(f)}
    with open(args.matrix, encoding="utf-8") as f:
        bmatrix = {(e["a"], e["b"]): e for e in json.load(f)}

    hosts = []
    kinds = {}
    for h in hosts_order:
        v = verdicts.get(h, [h, "unknown", "unknown", "unknown", "0", "no verdict"])
        p = peers.get(h)
        o = {"name": h}
        if p is not None:   # the broker's view of the host, as it registered
            o.update(mapping=p.get("mapping"), filtering=p.get("filtering"),
                     nat=p.get("nat"), reflexive=p.get("reflexive"), registered=True)
        else:               # not registered: its listener's own NAT check
            o.update(mapping=v[1], filtering=v[2], nat=v[3], reflexive=None,
                     registered=False)
        o["upnp"] = upnp_status(os.path.join(args.logs, "listen-%s.err" % h))
        o["netcheck"] = v[5] if len(v) > 5 else ""
        o["as_built"] = len(v) > 4 and v[4] == "1" and (len(v) < 10 or v[9] == "1")
        o["families"] = host_families(v, p)
        if len(v) > 10 and v[1] == "-":   # IPv6 only: its verdict is the IPv6 one
            o["netcheck"] = v[10]
        if p is None and o["mapping"] == "-":   # IPv6 only, not registered
            o.update({k: (o["families"].get("6") or {}).get(k, "unknown")
                      for k in ("mapping", "filtering", "nat")})
        kinds[h] = o["nat"]
        hosts.append(o)

    pairs = []
    lev_cache = {}
    for a, b, rc, wall, cid in read_tsv(args.runs):
        ev = first_event(os.path.join(args.logs, cid + ".out"))
        entry = bmatrix.get((cid, b))
        pair = {"a": a, "b": b}
        reason = None
        family = None
        if ev is not None and ev.get("event") == "connected":
            measured, ms = ev.get("path", "unknown"), ev.get("ms")
            family = ev.get("family") if ev.get("family") in FAMILIES else None
            if measured == "relay":
                pair["relay"] = ev.get("relay")
                why = relay_fallback(os.path.join(args.logs, cid + ".err"))
                if why is not None:
                    pair["fallback"] = why
        else:
            measured, ms = "none", None
            reason = (ev or {}).get("reason") or "no event (exit status %s after %s ms)" % (rc, wall)
        plan_family = bfamily = None
        if entry is not None:
            predicted = entry.get("predicted") or "unknown"
            plan_family = entry.get("plan_family") if entry.get("plan_family") in FAMILIES else None
            bfamily = entry.get("family") if entry.get("family") in FAMILIES else None
            # the connector's id "a.b" reads as "a" in the broker's sentence
            plan = re.sub(r"(?<![\w.-])%s(?![\w-])" % re.escape(cid), a, entry.get("plan") or "")
            roles = {a: entry.get("role_a"), b: entry.get("role_b")}
            bm = entry.get("measured")
        elif reason and reason.startswith("broker: "):
            # the broker refused to plan: no connection expected
            predicted, roles, bm = "none", {a: "none", b: "none"}, None
            plan = "the broker refused to plan: %s" % reason[len("broker: "):]
            if kinds.get(b) == "udp-blocked":
                plan += " (%s is UDP-blocked: did its registration over TCP fail?)" % b
        else:
            predicted, roles, bm = "unknown", {}, None
            plan = "the broker has no record of this pair"
        if b not in lev_cache:
            lev_cache[b] = listener_events(os.path.join(args.logs, "listen-%s.out" % b))
        lev = lev_cache[b].get(cid)
        pair.update(predicted=predicted, plan=plan, roles=roles, measured=measured, ms=ms,
                    plan_family=plan_family, family=family, connector=cid)
        pair["agree"] = pair_agrees(pair)
        if reason:
            pair["reason"] = reason
        pair["broker_measured"] = bm
        pair["broker_family"] = bfamily
        if lev is not None:
            pair["listener"] = ("%s %s" % (lev["event"], lev.get("path", ""))).strip()
        if measured == "birthday" or predicted == "birthday":
            bd = birthday_figures(ev if measured == "birthday" else None,
                                  lev if lev is not None and lev.get("path") == "birthday" else None,
                                  entry)
            if bd is not None:
                pair["birthday"] = bd
        pair["wall_ms"] = int(wall)
        pairs.append(pair)

    return make_doc(hosts, pairs, broker=args.broker, seconds=args.pairs_seconds)


def family_mismatch(p):
    """True when the broker planned one family and the pair connected over the other."""
    pf, mf = p.get("plan_family"), p.get("family")
    return pf in FAMILIES and mf in FAMILIES and pf != mf


def pair_agrees(p):
    return p["predicted"] == p["measured"] and not family_mismatch(p)


def counts(pairs):
    """The counts, and each pair's agree flag, from the pairs themselves."""
    def count(key):
        c = {p: 0 for p in PATHS}
        for x in pairs:
            c[x[key]] = c.get(x[key], 0) + 1
        return c
    for p in pairs:
        p["agree"] = pair_agrees(p)
    dis = [p for p in pairs if not p["agree"]]
    fams = {str(f): sum(1 for p in pairs if p["measured"] != "none" and p.get("family") == f)
            for f in FAMILIES}
    return {
        "pairs": len(pairs),
        "connected": sum(1 for p in pairs if p["measured"] != "none"),
        "predicted": count("predicted"),
        "measured": count("measured"),
        "families": fams,
        "agree": len(pairs) - len(dis),
        "disagreements": len(dis),
        "family_disagreements": sum(1 for p in pairs if family_mismatch(p)),
    }


def make_doc(hosts, pairs, broker=None, seconds=None):
    return {
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "broker": broker,
        "pairs_seconds": float(seconds) if seconds else None,
        "hosts": hosts,
        "pairs": pairs,
        "counts": counts(pairs),
    }


# ---------------------------------------------------------------- views
def fam_kind(h, fam):
    """The host's NAT name in one family, or None when it has not got that family
    (a matrix.json without families: the host's own, as IPv4)."""
    fams = h.get("families")
    if fams is None:
        return h["nat"] if fam == 4 else None
    f = fams.get(str(fam))
    return f.get("nat") if f else None


def has_v6(doc):
    return any(fam_kind(h, 6) for h in doc["hosts"]) or \
        any(p.get("family") == 6 or p.get("plan_family") == 6 for p in doc["pairs"])


def cell_map(doc):
    cells = {}
    for p in doc["pairs"]:
        cells[(p["a"], p["b"])] = p
        cells[(p["b"], p["a"])] = p
    return cells


def fam_words(f):
    return " over IPv%d" % f if f in FAMILIES else ""


def planned_words(p):
    """"direct over IPv6": the broker's prediction and its plan's family."""
    return p["predicted"] + (fam_words(p.get("plan_family")) if p["predicted"] != "none" else "")


def pair_words(p):
    m = p["measured"]
    if m == "none":
        got = "no connection" + (": " + p["reason"] if p.get("reason") else "")
    else:
        got = "connected, %s%s, %s ms" % (m, fam_words(p.get("family")), p["ms"])
        if m == "birthday" and p.get("birthday"):
            got += " (%s)" % birthday_words(p["birthday"])
        if m == "relay" and p.get("relay"):
            got = "connected, relay %s%s, %s ms" % (p["relay"], fam_words(p.get("family")), p["ms"])
        if p.get("fallback"):
            plan = p["predicted"] if p.get("predicted") not in (None, "relay", "unknown", "none") else "direct"
            got += ", after the %s plan failed (%s)" % (plan, p["fallback"])
    return got


def cross_checks(doc):
    """What the broker recorded and what the listener saw, against the connector."""
    notes = []
    for p in doc["pairs"]:
        bm = p.get("broker_measured")
        if "broker_measured" in p and bm is not None and bm != p["measured"]:
            notes.append("%s -> %s: the broker recorded %s, the connector printed %s"
                         % (p["a"], p["b"], bm, p["measured"]))
        bf, mf = p.get("broker_family"), p.get("family")
        if bm is not None and bf in FAMILIES and mf in FAMILIES and bf != mf:
            notes.append("%s -> %s: the broker recorded IPv%d, the connector printed IPv%d"
                         % (p["a"], p["b"], bf, mf))
        lst = p.get("listener")
        if p["measured"] != "none" and lst is not None and lst != "connected " + p["measured"]:
            notes.append("%s -> %s: the listener on %s printed '%s'" % (p["a"], p["b"], p["b"], lst))
    return notes


def headline(c):
    """"91 of 91 pairs connected: 43 direct, 1 lan, 12 upnp, 10 birthday, 25 relay" (measured),
    then "; 20 over IPv6, 180 over IPv4" when some pair went over IPv6."""
    m = c["measured"]
    connected = c.get("connected", c["pairs"] - m.get("none", 0))
    h = "%d of %d pairs connected: %s" % (
        connected, c["pairs"], ", ".join("%d %s" % (m.get(k, 0), k) for k in PATHS if k != "none"))
    f = c.get("families") or {}
    if f.get("6"):
        h += "; %d over IPv6, %d over IPv4" % (f.get("6", 0), f.get("4", 0))
    return h


def counts_line(c):
    def brk(d):
        return ", ".join("%d %s" % (d[k], k) for k in PATHS if d.get(k)) or "-"
    fd = c.get("family_disagreements", 0)
    return (headline(c) + "; %d disagreement%s" % (c["disagreements"], "" if c["disagreements"] == 1 else "s")
            + (" (%d in the IP family)" % fd if fd else ""),
            "predicted: %s;  measured: %s" % (brk(c["predicted"]), brk(c["measured"])))


def render_terminal(doc, color, out=sys.stdout):
    hosts = [h["name"] for h in doc["hosts"]]
    kind = {h["name"]: h["nat"] for h in doc["hosts"]}
    cells = cell_map(doc)
    ansi = {
        "direct": "\x1b[30;42m", "lan": "\x1b[30;46m", "upnp": "\x1b[30;45m", "birthday": "\x1b[97;44m",
        "relay": "\x1b[30;43m", "none": "\x1b[2m", "disagree": "\x1b[1;97;41m",
        "dim": "\x1b[2m", "bold": "\x1b[1m", "reset": "\x1b[0m",
    }

    def c(key, s):
        return ansi[key] + s + ansi["reset"] if color else s

    upnp = {h["name"]: (h.get("upnp") or {}).get("status") == "verified" for h in doc["hosts"]}
    byname = {h["name"]: h for h in doc["hosts"]}
    v6 = has_v6(doc)
    k4 = {h: fam_kind(byname[h], 4) for h in hosts}
    k6 = {h: fam_kind(byname[h], 6) for h in hosts}

    def k4label(h):
        if not v6:
            return SHORT_KIND.get(kind[h], kind[h]) + ("+UPnP" if upnp[h] else "")
        return SHORT_KIND.get(k4[h], k4[h]) + ("+UPnP" if upnp[h] else "") if k4[h] else "no v4"
    w4max = max(len(k4label(h)) for h in hosts)

    def klabel(h):
        if not v6:
            return k4label(h)
        return "%-*s %s" % (w4max, k4label(h), "v6 " + TINY_KIND.get(k6[h], k6[h]) if k6[h] else "no v6")
    w = 5
    lab = max(len(h) for h in hosts) + 1 + max(len(klabel(h)) for h in hosts)
    lines = []
    lines.append(" " * lab + "".join(h.center(w) for h in hosts).rstrip())
    if v6:
        lines.append(c("dim", "IPv4".rjust(lab - 1) + " " + "".join(
            (TINY_KIND.get(k4[h], "?") if k4[h] else "-").center(w) for h in hosts).rstrip()))
        lines.append(c("dim", "IPv6".rjust(lab - 1) + " " + "".join(
            (TINY_KIND.get(k6[h], "?") if k6[h] else "-").center(w) for h in hosts).rstrip()))
    else:
        lines.append(" " * lab + c("dim", "".join(TINY_KIND.get(kind[h], "?").center(w) for h in hosts).rstrip()))
    for r in hosts:
        label = ("%-*s %s" % (max(len(h) for h in hosts), r, klabel(r))).ljust(lab)
        row = [c("bold", label[:len(r)]) + label[len(r):]]
        for col in hosts:
            if r == col:
                row.append(c("dim", " \\ ".center(w)))
                continue
            p = cells.get((r, col))
            if p is None:
                row.append("  ?  ")
            elif p["agree"]:
                key = p["measured"] if p["measured"] in PATHS else "none"
                mark = "6" if p.get("family") == 6 else " "
                row.append(" " + c(key, " %s%s" % (sym(p["measured"]), mark)) + " ")
            elif p["predicted"] == p["measured"]:   # the family alone differs
                row.append(" " + c("disagree", "%d!%d" % (p["plan_family"], p["family"])) + " ")
            else:
                row.append(" " + c("disagree", "%s!%s" % (sym(p["predicted"]), sym(p["measured"]))) + " ")
        lines.append("".join(row).rstrip())
    lines.append("")
    lines.append("legend: " + "  ".join(
        (c(k, " %s " % SYMBOL[k]) if color else SYMBOL[k]) + " " + k
        for k in PATHS) + "   (predicted and measured agree)")
    if v6:
        lines.append("        " + (c("direct", " D6") if color else "D6 ") +
                     " a 6 after the letter: the connection went over IPv6 (none: IPv4)")
    lines.append("        " + (c("disagree", "P!M") if color else "P!M") +
                 " disagreement: the broker predicted P, the connect got M")
    if v6:
        lines.append("        " + (c("disagree", "6!4") if color else "6!4") +
                     " family disagreement: the path as predicted, but the broker planned IPv6"
                     " and it went over IPv4 (or 4!6)")
        lines.append("        rows and columns: the lab's hosts and the NAT kind each one found,"
                     " per family (-: the host has not got it)")
    else:
        lines.append("        rows and columns: the lab's hosts and the NAT kind each one found")
    lines.append("")
    c1, c2 = counts_line(doc["counts"])
    lines.append(c("bold", c1))
    lines.append(c2)
    dis = [p for p in doc["pairs"] if not p["agree"]]
    if dis:
        lines.append("")
        lines.append(c("bold", "disagreements:"))
        for p in dis:
            lines.append("  %s -> %s: predicted %s (%s); measured: %s"
                         % (p["a"], p["b"], planned_words(p), p["plan"], pair_words(p)))
    else:
        lines.append("no disagreement: every pair did what the broker predicted")
    notes = cross_checks(doc)
    if notes:
        lines.append("")
        lines.append("notes (not disagreements):")
        lines.extend("  " + n for n in notes)
    out.write("\n".join(lines) + "\n")


def esc(s):
    return html.escape(str(s), quote=True)


def render_html(doc):
    hosts = doc["hosts"]
    names = [h["name"] for h in hosts]
    cells = cell_map(doc)
    c = doc["counts"]
    css = """
body{font-family:"DejaVu Sans",Verdana,sans-serif;margin:24px 28px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px} .sub{color:#666;font-size:13px;margin-bottom:16px}
.wrap{display:flex;gap:32px;align-items:flex-start}
table.m{border-collapse:separate;border-spacing:3px}
table.m th{font-size:12px;font-weight:normal;color:#444;padding:2px 4px}
table.m thead th{width:50px;text-align:center;vertical-align:bottom}
table.m th.r{text-align:right;white-space:nowrap;padding-right:8px}
th b{font-size:14px;color:#111} th small{display:block;color:#777;font-size:11px}
td.c{width:50px;min-width:50px;height:38px;text-align:center;border-radius:5px;font-weight:bold;font-size:15px;
 color:#fff;cursor:default;line-height:1.1}
td.c small{display:block;font-weight:normal;font-size:10px;opacity:.9;white-space:nowrap}
td.direct{background:%(direct)s} td.lan{background:%(lan)s} td.upnp{background:%(upnp)s}
td.birthday{background:%(birthday)s} td.relay{background:%(relay)s} td.none{background:%(none)s;color:#888}
td.disagree{background:%(disagree)s;color:#fff;outline:3px solid #7a0010}
td.c sup.f{font-size:9px;font-weight:bold;vertical-align:top;margin-left:1px;opacity:.95}
th small.f6{color:#3b5ea8;white-space:nowrap}
td.self{background:repeating-linear-gradient(45deg,#fafafa,#fafafa 4px,#ececec 4px,#ececec 8px)}
.side{font-size:14px;max-width:420px} .side h2{font-size:15px;margin:18px 0 8px} .side h2:first-child{margin-top:4px}
.legend div{display:flex;align-items:center;gap:8px;margin:5px 0}
.sw{display:inline-block;flex:none;min-width:30px;padding:0 3px;box-sizing:border-box;height:22px;border-radius:4px;color:#fff;font-weight:bold;
 text-align:center;line-height:22px;font-size:13px}
.counts td{padding:2px 10px 2px 0} .counts td.n{text-align:right;font-weight:bold} .counts td.in{padding-left:14px;color:#555}
.ok{color:#1e7a3a;font-weight:bold} .bad{color:%(disagree)s;font-weight:bold}
ul.dis{padding-left:18px;margin:4px 0} ul.dis li{margin-bottom:6px}
.note{color:#777;font-size:12px;margin-top:14px}
""" % COLOR
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>natbroker: who can reach whom</title>",
           "<style>%s</style></head><body>" % css,
           "<h1>natbroker: who can reach whom</h1>"]
    sub = "%d hosts in the NAT lab; %s" % (len(hosts), headline(c))
    if doc.get("pairs_seconds"):
        sub += ", connected in %.1f s" % doc["pairs_seconds"]
    if doc.get("generated"):
        sub += "; %s" % doc["generated"]
    out.append('<div class="sub">%s. Each cell: the broker\'s prediction against what the connect '
               'did; hover for the plan and the time.</div>' % esc(sub))
    out.append('<div class="wrap"><table class="m"><thead><tr><th></th>')
    v6 = has_v6(doc)
    for h in hosts:
        v = (h.get("upnp") or {}).get("status") == "verified"
        if v6:
            k4, k6 = fam_kind(h, 4), fam_kind(h, 6)
            tip = "%s: IPv4 %s%s; IPv6 %s" % (h["name"], k4 or "none", " + UPnP" if v else "", k6 or "none")
            out.append('<th title="%s"><b>%s</b><small>%s</small><small class="f6">%s</small></th>'
                       % (esc(tip), esc(h["name"]),
                          esc(TINY_KIND.get(k4, k4) + ("+U" if v else "") if k4 else "-"),
                          esc("v6 " + TINY_KIND.get(k6, k6) if k6 else "-")))
            continue
        out.append('<th title="%s"><b>%s</b><small>%s</small></th>'
                   % (esc("%s: %s%s" % (h["name"], h["nat"], " + UPnP" if v else "")), esc(h["name"]),
                      esc(TINY_KIND.get(h["nat"], h["nat"]) + ("+U" if v else ""))))
    out.append("</tr></thead><tbody>")
    for h in hosts:
        r = h["name"]
        mf = "%s/%s" % (ABBR.get(h["mapping"], h["mapping"]), ABBR.get(h["filtering"], h["filtering"]))
        tip = "%s: %s, mapping %s, filtering %s" % (r, h["nat"], h["mapping"], h["filtering"])
        if h.get("reflexive"):
            tip += ", reflexive %s" % h["reflexive"]
        up = h.get("upnp") or {}
        if up.get("detail"):
            tip += "; UPnP: %s" % up["detail"]
        kind = h["nat"] + (" + UPnP" if up.get("status") == "verified" else "")
        if v6:
            f4, f6 = (h.get("families") or {}).get("4"), (h.get("families") or {}).get("6")

            def fline(f):
                return "%s &middot; %s/%s" % (esc(f.get("nat")), esc(ABBR.get(f.get("mapping"), f.get("mapping"))),
                                              esc(ABBR.get(f.get("filtering"), f.get("filtering"))))
            l4 = (fline(f4) + (" + UPnP" if up.get("status") == "verified" else "")) if f4 else "no IPv4"
            l6 = ("IPv6: " + fline(f6)) if f6 else "no IPv6"
            for fam, f in (("IPv4", f4), ("IPv6", f6)):
                if f and f.get("address"):
                    tip += "; %s %s" % (fam, f["address"])
            out.append('<tr><th class="r" title="%s"><b>%s</b><small>%s</small><small class="f6">%s</small></th>'
                       % (esc(tip), esc(r), l4, l6))
        else:
            out.append('<tr><th class="r" title="%s"><b>%s</b><small>%s &middot; %s</small></th>'
                       % (esc(tip), esc(r), esc(kind), esc(mf)))
        for col in names:
            if col == r:
                out.append('<td class="c self"></td>')
                continue
            p = cells.get((r, col))
            if p is None:
                out.append('<td class="c none" title="not tried">?</td>')
                continue
            roles = p.get("roles") or {}
            rl = ", ".join("%s %s" % (k, v) for k, v in roles.items() if v)
            title = ("%s \u2192 %s (%s connects)\npredicted: %s%s\nplan: %s\nmeasured: %s\n%s"
                     % (p["a"], p["b"], p["a"], planned_words(p), " (%s)" % rl if rl else "",
                        p["plan"], pair_words(p),
                        "agrees" if p["agree"] else "DISAGREES with the prediction"))
            mark = ""
            if p["agree"]:
                cls = p["measured"] if p["measured"] in PATHS else "none"
                text = "\u00d7" if cls == "none" else sym(p["measured"])
                if p.get("family") == 6:
                    mark = '<sup class="f">v6</sup>'
            elif p["predicted"] == p["measured"]:   # the family alone differs
                cls = "disagree"
                text = sym(p["measured"])
                mark = '<sup class="f">v%d\u2192v%d</sup>' % (p["plan_family"], p["family"])
            else:
                cls = "disagree"
                text = "%s\u2192%s" % tuple("\u00d7" if x == "none" else sym(x)
                                             for x in (p["predicted"], p["measured"]))
            small = "<small>%s ms</small>" % p["ms"] if p.get("ms") is not None else ""
            out.append('<td class="c %s" title="%s">%s%s%s</td>' % (cls, esc(title), esc(text), mark, small))
        out.append("</tr>")
    out.append("</tbody></table>")

    out.append('<div class="side"><h2>Legend</h2><div class="legend">')
    for k in PATHS:
        fg = "#888" if k == "none" else "#fff"
        out.append('<div><span class="sw" style="background:%s;color:%s">%s</span>%s</div>'
                   % (COLOR[k], fg, "\u00d7" if k == "none" else SYMBOL[k], esc(WORDS[k])))
    if v6:
        out.append('<div><span class="sw" style="background:%s">D<sup class="f">v6</sup></span>over IPv6: '
                   'the connection went over IPv6 (no mark: IPv4)</div>' % COLOR["direct"])
    out.append('<div><span class="sw" style="background:%s">P\u2192M</span>disagreement: the broker '
               'predicted P, the connect got M</div>' % COLOR["disagree"])
    if v6:
        out.append('<div><span class="sw" style="background:%s">D<sup class="f">v6\u2192v4</sup></span>'
                   'family disagreement: the path as predicted, but the broker planned IPv6 and it '
                   'went over IPv4 (or the other way)</div>' % COLOR["disagree"])
    out.append('<div style="color:#666;font-size:12px">A coloured cell: predicted and measured agree. '
               'The small number: time to connect.</div></div>')
    out.append('<h2>Counts</h2><table class="counts">')
    rows = [("pairs", c["pairs"], ""),
            ("connected", c.get("connected", c["pairs"] - c["measured"].get("none", 0)), "")]
    rows += [(k, c["measured"].get(k, 0), " class=\"in\"") for k in PATHS if k != "none"]
    if v6:
        rows += [("over IPv%s" % f, (c.get("families") or {}).get(f, 0), " class=\"in\"") for f in ("4", "6")]
    rows += [("not connected", c["measured"].get("none", 0), ""), ("disagreements", c["disagreements"], "")]
    if v6:
        rows += [("in the IP family", c.get("family_disagreements", 0), " class=\"in\"")]
    for label, n, cls in rows:
        out.append('<tr><td%s>%s</td><td class="n">%d</td></tr>' % (cls, esc(label), n))
    out.append("</table>")
    c1, c2 = counts_line(c)
    out.append('<div style="font-size:12px;color:#555;margin-top:6px">%s</div>' % esc(c2))
    dis = [p for p in doc["pairs"] if not p["agree"]]
    out.append("<h2>Disagreements</h2>")
    if dis:
        out.append('<ul class="dis">')
        for p in dis:
            out.append('<li><b>%s &rarr; %s</b>: predicted <b>%s</b> (%s); measured: %s</li>'
                       % (esc(p["a"]), esc(p["b"]), esc(planned_words(p)), esc(p["plan"]),
                          esc(pair_words(p))))
        out.append("</ul>")
    else:
        out.append('<div class="ok">none: every pair did what the broker predicted</div>')
    out.append('<div class="note">Made by tests/lab/matrix.sh (docs/demo.md). In each pair the '
               'host higher in the list connects to the other. Predictions: the broker\'s '
               '(<code>natpeer matrix</code>); birthday pairs connect directly, the symmetric '
               'side spraying from many sockets and the other probing random ports of its IP; '
               'relayed pairs go through natbroker\'s own TURN server.%s</div>'
               % (' The broker plans each pair in one IP family: IPv6 where both hosts have it and '
                  'it is direct there, else IPv4; a v6 mark says the connection went over IPv6, '
                  'and a pair agrees only when that is the family the broker planned.' if v6 else ''))
    out.append("</div></div></body></html>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from-json", help="render this matrix.json instead of building one")
    ap.add_argument("--hosts")
    ap.add_argument("--verdicts")
    ap.add_argument("--peers")
    ap.add_argument("--matrix")
    ap.add_argument("--runs")
    ap.add_argument("--logs")
    ap.add_argument("--broker")
    ap.add_argument("--pairs-seconds")
    ap.add_argument("--out", required=True)
    ap.add_argument("--color", choices=("always", "never"), default="never")
    ap.add_argument("--quiet", action="store_true", help="no terminal matrix")
    args = ap.parse_args()

    try:
        if args.from_json:
            with open(args.from_json, encoding="utf-8") as f:
                doc = json.load(f)
            doc["counts"] = counts(doc["pairs"])
        else:
            need = ("hosts", "verdicts", "peers", "matrix", "runs", "logs")
            missing = [n for n in need if getattr(args, n) is None]
            if missing:
                ap.error("missing --" + ", --".join(missing))
            doc = build(args)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print("matrix_render.py: %s" % e, file=sys.stderr)
        return 2

    os.makedirs(args.out, exist_ok=True)
    if not args.from_json:
        with open(os.path.join(args.out, "matrix.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    with open(os.path.join(args.out, "matrix.html"), "w", encoding="utf-8") as f:
        f.write(render_html(doc))
    if not args.quiet:
        render_terminal(doc, args.color == "always")
    return 0 if doc["counts"]["disagreements"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
