#!/usr/bin/env bash
# test_matrix_html.sh [OUTDIR]: matrix.html renders in a real browser.
#
# Renders tests/lab/data/matrix-sample.json (a real run of matrix.sh) with
# matrix_render.py, opens the page in headless Chromium (Debian's chromium)
# and checks the screenshot: a PNG of the window's size, not blank, with the
# matrix's colours in about the area the sample's cells should cover.
# The sample must show relayed pairs: R cells in the relay colour (class
# "relay"), the legend's relay entry, and the relay count in the headline;
# and birthday pairs the same way (B cells of class "birthday", the legend's
# entry, the count), each with its figures (probes, port) in its title.
# IP families (issue 17): the sample must have pairs that connected over
# IPv6; each of their cells carries the "v6" mark and no IPv4 cell does; the
# legend explains it. A copy of the sample with one IPv6 pair made to connect
# over IPv4 instead (the broker planned IPv6) must count as a disagreement:
# exit status 1, its two cells of class "disagree" marked "v6->v4", listed
# with both families, "6!4" in the terminal matrix.
# MATRIX_SAMPLE=FILE renders another matrix.json (e.g. a fresh matrix.sh run).
#
# Chromium runs in a new network namespace with no interfaces (unshare -n),
# so neither the page nor the browser can reach any network; the page must
# also name no external resource. The only network use is apt-get, when
# chromium or python3 is missing. Needs root for both: exit 77 (skip) when
# not root or without apt-get.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SAMPLE=${MATRIX_SAMPLE:-$HERE/data/matrix-sample.json}
RENDER=$HERE/matrix_render.py
OUT=${1:-}
W=1400 H=1000
# more hosts (the dual-stack lab's 21): a window the matrix and the legend
# beside it fit in
n_hosts=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["hosts"]))' "$SAMPLE" 2>/dev/null || echo 14)
if [ "$n_hosts" -gt 14 ]; then W=$((1400 + 53 * (n_hosts - 14) + 450)) H=$((1000 + 43 * (n_hosts - 14))); fi

PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   - $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $1"; [ $# -lt 2 ] || printf '%s\n' "$2" | sed 's/^/       | /'; }
summary() { echo "$PASS passed, $FAIL failed"; [ "$FAIL" -eq 0 ] && [ "$PASS" -gt 0 ]; }

# ---- dependencies: chromium and python3, from apt when missing
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "SKIP: $(basename "$0") needs ${missing[*]}; run it as root on Debian (it installs them with apt-get)"
        exit 77
    fi
    echo "# installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >/dev/null ||
        { bad "apt-get install ${missing[*]}"; summary; exit 1; }
fi
if [ "$(id -u)" != 0 ]; then   # unshare -n needs root
    echo "SKIP: $(basename "$0") needs root (Chromium runs in a network namespace without network)"
    exit 77
fi

TMP=$(mktemp -d /tmp/matrix-html.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
[ -n "$OUT" ] || OUT=$TMP/out
mkdir -p "$OUT"

# ---- render the sample
rc=0
python3 "$RENDER" --from-json "$SAMPLE" --out "$OUT" --quiet || rc=$?
# the sample has no disagreement: the renderer's status must say so
if [ "$rc" -eq 0 ] && [ -s "$OUT/matrix.html" ]; then ok "matrix_render.py renders the sample (exit 0)"
else bad "matrix_render.py --from-json exit $rc"; summary; exit 1; fi

# self-contained: nothing fetched from anywhere
if grep -Eqi '(src|href)=|url\(|@import|https?://' "$OUT/matrix.html"; then
    bad "matrix.html refers to external resources" "$(grep -Eoi '(src|href)=[^ >]*|url\([^)]*\)|@import[^;]*|https?://[^ "<]*' "$OUT/matrix.html" | head)"
else
    ok "matrix.html names no external resource"
fi
n_title=$(grep -o '<td class="c [a-z]*" title="' "$OUT/matrix.html" | wc -l)
n_pairs=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["pairs"]))' "$SAMPLE")
if [ "$n_title" -eq $((2 * n_pairs)) ]; then ok "every cell has a title ($n_title cells, $n_pairs pairs)"
else bad "cells with a title: $n_title, want $((2 * n_pairs))"; fi

# every path's cells carry its class (its colour), relay and birthday included;
# the sample has R and B cells
cprc=0
python3 - "$OUT/matrix.html" "$SAMPLE" "$HERE" <<'EOF' || cprc=$?
import json, re, sys
page, sample, here = open(sys.argv[1], encoding="utf-8").read(), sys.argv[2], sys.argv[3]
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, here)
from matrix_render import COLOR, PATHS, SYMBOL
doc = json.load(open(sample))
fails = 0
def check(ok, msg):
    global fails
    print(("#   ok   " if ok else "#   FAIL ") + msg)
    fails += 0 if ok else 1
for k in PATHS + ("disagree",):
    want = 2 * sum(1 for p in doc["pairs"]
                   if (k == "disagree" and not p["agree"]) or (p["agree"] and p["measured"] == k))
    got = len(re.findall(r'<td class="c %s" title="' % k, page))
    check(got == want, "%d cells of class %s, want %d" % (got, k, want))
relay = re.findall(r'<td class="c relay" title="[^"]*">([^<]*)', page)
check(len(relay) > 0, "the sample has relayed pairs (%d R cells)" % len(relay))
check(all(t == SYMBOL["relay"] for t in relay), "every relay cell reads %s" % SYMBOL["relay"])
check(re.search(r"td\.relay\{background:%s\}" % COLOR["relay"], page) is not None,
      "td.relay has the relay colour %s" % COLOR["relay"])
check(re.search(r'<span class="sw" style="background:%s;color:#fff">R</span>relay: ' % COLOR["relay"], page)
      is not None, "the legend has the relay entry (R on %s)" % COLOR["relay"])
n = sum(1 for p in doc["pairs"] if p["measured"] == "relay")
check(re.search(r"pairs connected: [^<]*\b%d relay\b" % n, page) is not None,
      "the headline counts %d relayed pairs" % n)
bday = re.findall(r'<td class="c birthday" title="([^"]*)">([^<]*)', page)
check(len(bday) > 0, "the sample has birthday pairs (%d B cells)" % len(bday))
check(all(t == SYMBOL["birthday"] for _, t in bday), "every birthday cell reads %s" % SYMBOL["birthday"])
check(all(re.search(r"connected, birthday(?: over IPv[46])?, \d+ ms \(\d+ probes at \d+/s, [^)]*port \d+\)", t)
          for t, _ in bday), "every birthday cell's title gives its probes, rate and port")
check(re.search(r"td\.birthday\{background:%s\}" % COLOR["birthday"], page) is not None,
      "td.birthday has the birthday colour %s" % COLOR["birthday"])
check(re.search(r'<span class="sw" style="background:%s;color:#fff">B</span>birthday: ' % COLOR["birthday"],
                page) is not None, "the legend has the birthday entry (B on %s)" % COLOR["birthday"])
n = sum(1 for p in doc["pairs"] if p["measured"] == "birthday")
check(re.search(r"pairs connected: [^<]*\b%d birthday\b" % n, page) is not None,
      "the headline counts %d birthday pairs" % n)
sys.exit(1 if fails else 0)
EOF
if [ "$cprc" -eq 0 ]; then ok "each path's cells have its class; relay and birthday are shown (cells, legend, count)"
else bad "cell classes and the relay and birthday entries (checks above)"; fi

# ---- IP families: the v6 mark, and a family mismatch is a disagreement
cfrc=0
python3 - "$OUT/matrix.html" "$SAMPLE" <<'EOF2' || cfrc=$?
import json, re, sys
page, doc = open(sys.argv[1], encoding="utf-8").read(), json.load(open(sys.argv[2]))
fails = 0
def check(ok, msg):
    global fails
    print(("#   ok   " if ok else "#   FAIL ") + msg)
    fails += 0 if ok else 1
n6 = sum(1 for p in doc["pairs"] if p["agree"] and p["measured"] != "none" and p.get("family") == 6)
n4 = sum(1 for p in doc["pairs"] if p["agree"] and p["measured"] != "none" and p.get("family") == 4)
check(n6 > 0, "the sample has pairs connected over IPv6 (%d, and %d over IPv4)" % (n6, n4))
cells = re.findall(r'<td class="c [a-z]+" title="[^"]*">([^<]*)((?:<sup class="f">[^<]*</sup>)?)', page)
got6 = sum(1 for _, m in cells if m == '<sup class="f">v6</sup>')
check(got6 == 2 * n6, "%d cells carry the v6 mark, want %d (two per IPv6 pair)" % (got6, 2 * n6))
check(all(m in ("", '<sup class="f">v6</sup>') for _, m in cells), "no other family mark in an agreeing sample")
check(re.search(r'<span class="sw"[^>]*>D<sup class="f">v6</sup></span>over IPv6: ', page) is not None,
      "the legend explains the v6 mark")
check(re.search(r"pairs connected: [^<]*; %d over IPv6, %d over IPv4" % (n6, n4), page) is not None,
      "the headline counts the families")
check(all(p.get("plan_family") in (4, 6) for p in doc["pairs"] if p["measured"] != "none"),
      "every connected pair of the sample has the broker's plan_family")
sys.exit(1 if fails else 0)
EOF2
if [ "$cfrc" -eq 0 ]; then ok "IPv6 cells carry the v6 mark (cells, legend, headline)"
else bad "the v6 marks (checks above)"; fi

FAMJ=$TMP/family-mismatch.json
python3 - "$SAMPLE" "$FAMJ" <<'EOF2'
import json, sys
doc = json.load(open(sys.argv[1]))
p = next(p for p in doc["pairs"] if p["agree"] and p.get("plan_family") == 6 and p.get("family") == 6)
p["family"] = 4
doc["mismatch"] = [p["a"], p["b"], p["measured"]]
json.dump(doc, open(sys.argv[2], "w"))
EOF2
rc=0
python3 "$RENDER" --from-json "$FAMJ" --out "$TMP/fam" >"$TMP/fam.txt" 2>&1 || rc=$?
if [ "$rc" -eq 1 ]; then ok "a pair over IPv4 where the broker planned IPv6 is a disagreement (exit 1)"
else bad "family mismatch: matrix_render.py exit $rc, want 1" "$(tail -n 5 "$TMP/fam.txt")"; fi
cmrc=0
python3 - "$TMP/fam/matrix.html" "$FAMJ" "$TMP/fam.txt" <<'EOF2' || cmrc=$?
import json, re, sys
page, doc, text = open(sys.argv[1], encoding="utf-8").read(), json.load(open(sys.argv[2])), open(sys.argv[3]).read()
a, b, path = doc["mismatch"]
fails = 0
def check(ok, msg):
    global fails
    print(("#   ok   " if ok else "#   FAIL ") + msg)
    fails += 0 if ok else 1
sym = {"direct": "D", "lan": "L", "upnp": "U", "birthday": "B", "relay": "R"}[path]
cells = re.findall(r'<td class="c disagree" title="(%s → %s [^"]*)">%s<sup class="f">v6→v4</sup>'
                   % (re.escape(a), re.escape(b), sym), page)
check(len(cells) == 2, "%s -> %s: two disagree cells marked %s v6->v4 (%d)" % (a, b, sym, len(cells)))
check(all("predicted: %s over IPv6" % path in t and "over IPv4" in t for t in cells),
      "their titles give both families")
check(re.search(r"<li><b>%s &rarr; %s</b>: predicted <b>%s over IPv6</b> [^<]*; measured: connected, %s over IPv4, "
                % (re.escape(a), re.escape(b), path, path), page) is not None, "listed under Disagreements")
check(re.search(r'<td class="in">in the IP family</td><td class="n">1</td>', page) is not None,
      "counted as a family disagreement")
check("6!4" in text and "1 disagreement (1 in the IP family)" in text,
      "the terminal matrix shows 6!4 and counts it")
sys.exit(1 if fails else 0)
EOF2
if [ "$cmrc" -eq 0 ]; then ok "the family mismatch shows in its cells, the list, the counts and the terminal"
else bad "the family mismatch (checks above)" "$(grep -E '6!4|disagreement' "$TMP/fam.txt" | head -n 5)"; fi

# ---- screenshot in headless Chromium, without network
PNG=$OUT/matrix.png
rm -f "$PNG"
rc=0
HOME=$TMP timeout 90 unshare -n chromium --headless --no-sandbox --disable-gpu \
    --user-data-dir="$TMP/profile" --no-first-run --no-default-browser-check \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-extensions --force-color-profile=srgb --hide-scrollbars \
    --screenshot="$PNG" --window-size="$W,$H" "file://$OUT/matrix.html" \
    >"$TMP/chromium.log" 2>&1 || rc=$?
if [ "$rc" -eq 0 ] && [ -s "$PNG" ]; then ok "chromium took a screenshot ($(stat -c %s "$PNG") bytes)"
else bad "chromium --screenshot exit $rc, no PNG" "$(tail -n 20 "$TMP/chromium.log")"; summary; exit 1; fi

# ---- check the PNG (stdlib only: zlib + PNG unfiltering)
prc=0
python3 - "$PNG" "$W" "$H" "$SAMPLE" "$HERE" <<'EOF' || prc=$?
import json, struct, sys, zlib

png, want_w, want_h, sample, here = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
data = open(png, "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, ihdr = 8, [], None
while pos < len(data):
    n, = struct.unpack(">I", data[pos:pos + 4])
    typ, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
    if typ == b"IHDR":
        ihdr = struct.unpack(">IIBBBBB", body)
    elif typ == b"IDAT":
        idat.append(body)
    pos += 12 + n
w, h, depth, ctype, _, _, interlace = ihdr
print("#   ok   PNG %dx%d, colour type %d" % (w, h, ctype) if (w, h) == (want_w, want_h)
      else "#   FAIL PNG is %dx%d, want %dx%d" % (w, h, want_w, want_h))
if (w, h) != (want_w, want_h):
    sys.exit(1)
assert depth == 8 and ctype in (2, 6) and interlace == 0, "unexpected PNG format %r" % (ihdr,)
bpp = 3 if ctype == 2 else 4
raw = zlib.decompress(b"".join(idat))
stride = w * bpp
prev = bytearray(stride)
counts = {}
for y in range(h):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    if f == 1:
        for i in range(bpp, stride):
            line[i] = (line[i] + line[i - bpp]) & 255
    elif f == 2:
        line = bytearray((a + b) & 255 for a, b in zip(line, prev))
    elif f == 3:
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
    elif f == 4:
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    px = bytes(line)
    for x in range(0, stride, bpp):
        k = px[x:x + 3]
        counts[k] = counts.get(k, 0) + 1
    prev = line

fails = 0
def check(ok, msg):
    global fails
    print(("#   ok   " if ok else "#   FAIL ") + msg)
    fails += 0 if ok else 1

total = w * h
white = counts.get(b"\xff\xff\xff", 0)
check(len(counts) >= 200, "%d distinct colours (not blank)" % len(counts))
check(white < 0.9 * total, "%.0f%% of the page is white (want < 90%%)" % (100.0 * white / total))

def near(rgb, tol=3):
    r, g, b = int(rgb[1:3], 16), int(rgb[3:5], 16), int(rgb[5:7], 16)
    return sum(n for k, n in counts.items()
               if abs(k[0] - r) <= tol and abs(k[1] - g) <= tol and abs(k[2] - b) <= tol)

# the renderer's colours (matrix_render.py COLOR)
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, here)
from matrix_render import COLOR
doc = json.load(open(sample))
cells = {}
for p in doc["pairs"]:
    key = (p["measured"] if p["measured"] in COLOR else "none") if p["agree"] else "disagree"
    cells[key] = cells.get(key, 0) + 2           # each pair is two cells
# a cell is 50x38 px less its rounded corners and text; a legend swatch ~30x22
for key in ("direct", "lan", "upnp", "birthday", "relay", "none", "disagree"):
    got = near(COLOR[key])
    want = int(cells.get(key, 0) * 50 * 38 * 0.6) + 400
    check(got >= want, "colour %s (%s): %d px, want >= %d (%d cells + legend)"
          % (key, COLOR[key], got, want, cells.get(key, 0)))
sys.exit(1 if fails else 0)
EOF
if [ "$prc" -eq 0 ]; then ok "the screenshot shows the matrix"; else bad "the screenshot (checks above)"; fi
echo "# screenshot: $PNG"
summary
