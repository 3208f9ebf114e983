#!/usr/bin/env python3
"""tests/layout.py SRCDIR: the source tree's layering, checked.

- No include cycle between the project's files ("#include "dir/x.h"").
- Each directory includes only from the ones below it:
      common <- proto <- peer/portmap <- peer,   proto <- broker
  (peer/portmap never reaches back into peer/; broker and peer never meet).
- In peer/ and peer/portmap/, every file that includes libuv or libcurl is an
  I/O shell and its name ends in _run (main.c aside): the pure cores do no I/O.
Exit 0 when all hold; else 1, with one line per violation."""
import os
import re
import sys

ALLOWED = {
    "common": {"common"},
    "proto": {"common", "proto"},
    "peer/portmap": {"common", "proto", "peer/portmap"},
    "peer": {"common", "proto", "peer", "peer/portmap"},
    "broker": {"common", "proto", "broker"},
}
INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SYS = re.compile(r'^\s*#\s*include\s+<(uv\.h|curl/[^>]+)>', re.M)


def main(root):
    files = {}
    for d in ALLOWED:
        full = os.path.join(root, d)
        for name in sorted(os.listdir(full)):
            if name.endswith((".c", ".h")):
                rel = d + "/" + name
                with open(os.path.join(root, rel), encoding="utf-8") as f:
                    files[rel] = f.read()
    bad = []
    graph = {}
    for rel, text in files.items():
        d = os.path.dirname(rel)
        graph[rel] = []
        for inc in INC.findall(text):
            idir = os.path.dirname(inc)
            if idir not in ALLOWED:
                continue
            if idir not in ALLOWED[d]:
                bad.append("%s includes %s: %s/ may not reach into %s/" % (rel, inc, d, idir))
            if inc in files:
                graph[rel].append(inc)
            else:
                bad.append("%s includes %s, which does not exist" % (rel, inc))
        base = os.path.basename(rel)
        if d in ("peer", "peer/portmap") and SYS.search(text) and base != "main.c" \
                and not re.search(r"_run\.[ch]$", base):
            bad.append("%s uses libuv/libcurl but is not named *_run: an I/O shell" % rel)
    # cycles among headers (a .c file is never included, so cycles run through .h)
    state = {}

    def visit(n, stack):
        state[n] = 1
        stack.append(n)
        for m in graph.get(n, []):
            if state.get(m) == 1:
                bad.append("include cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            elif m not in state:
                visit(m, stack)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])
    for b in bad:
        print("layout: " + b)
    print("layout: %d files, %d violations" % (len(files), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
