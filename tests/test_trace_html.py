"""render_html(): the trace as one self-contained HTML page with an SVG sequence diagram.

The fixtures in tests/data are real traces recorded from the sample lab:
a cold walk with a glueless sub-lookup, a CNAME across zones, a cache hit,
a timeout followed by the second server, and an NXDOMAIN.  The first tests
read the HTML as text and as a tree; the last ones load it in headless
Chromium (skipped, with the reason, when no Chromium is on PATH) to check
that it really draws, and that no two texts of the picture overlap.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dnslab.faces.trace_html import render_html

from conftest import find_chromium

DATA = Path(__file__).resolve().parent / "data"
TRACES = ["cold", "cname", "warm", "failover", "nx"]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def load(name: str) -> list[dict]:
    with open(DATA / f"trace-{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def render(name: str) -> str:
    events = load(name)
    return render_html(events, f"dnslab trace {events[0]['name']} {events[0]['type']}")


class Tree(HTMLParser):
    """Parses the page, checks every element is closed in order, and collects tags and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Tree:
    tree = Tree()
    tree.feed(page)
    tree.close()
    assert tree.errors == []
    assert tree.stack == []
    return tree


def svg_of(page: str) -> ET.Element:
    """The inline SVG, which must also be well-formed XML."""
    match = re.search(r"<svg class=\"diagram\".*?</svg>", page, re.S)
    assert match, "no diagram"
    return ET.fromstring(match.group(0))


def classes(element: ET.Element) -> set[str]:
    return set((element.get("class") or "").split())


def by_event(svg: ET.Element, kind: str) -> list[ET.Element]:
    return [e for e in svg.iter() if e.get("data-event") == kind]


# --- the page as text and tree -----------------------------------------------------------


@pytest.mark.parametrize("name", TRACES)
def test_page_parses_and_is_self_contained(name: str) -> None:
    page = render(name)
    tree = parse(page)
    tags = [tag for tag, _ in tree.elements]
    assert page.startswith("<!DOCTYPE html>")
    assert tags.count("svg") >= 1 and "style" in tags
    # Nothing fetched: no URL at all, no src/href, no script, no external CSS.
    assert "http://" not in page and "https://" not in page
    assert "//" not in re.sub(r"<(title|desc|text|li)\b.*?</\1>", "", page, flags=re.S)
    for tag, attrs in tree.elements:
        assert not {"src", "href", "xlink:href", "srcset", "action", "poster"} & attrs.keys(), (tag, attrs)
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    assert "@import" not in page and "url(" not in page.replace("url(#arrow-", "")
    # The policy forbids fetching anything even if something slipped through.
    csp = [a for tag, a in tree.elements if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in (csp[0]["content"] or "")


@pytest.mark.parametrize("name", TRACES)
def test_one_arrow_group_per_query_reply_and_failed_try(name: str) -> None:
    events = load(name)
    svg = svg_of(render(name))
    for kind in ("query", "reply", "failed"):
        expected = sum(1 for e in events if e["event"] == kind)
        groups = by_event(svg, kind)
        assert len(groups) == expected, kind
        for group in groups:
            assert group.tag == "g" and group.find("line") is not None, kind
    # The question and the answer are arrows too; every cache lookup is a badge.
    assert len(by_event(svg, "start")) == sum(1 for e in events if e["event"] == "start")
    assert len(by_event(svg, "cache")) == sum(1 for e in events if e["event"] == "cache")
    answer = [g for g in by_event(svg, "done") if "answer" in classes(g)]
    assert len(answer) == 1 and answer[0].find("line") is not None


@pytest.mark.parametrize("name", TRACES)
def test_a_lane_per_server_address_with_its_role(name: str) -> None:
    events = load(name)
    svg = svg_of(render(name))
    lanes = {g.get("data-lane"): g for g in svg.iter("g") if g.get("data-lane")}
    addresses = {e["address"] for e in events if "address" in e}
    assert set(lanes) == {"client", "resolver"} | addresses
    for event in events:
        if event["event"] != "query":
            continue
        lane = lanes[event["address"]]
        texts = " ".join("".join(t.itertext()) for t in lane.iter("text"))
        assert event["server"] in texts and event["address"] in texts
        zone = event["zone"]
        role = "root" if zone == "." else "tld" if zone.count(".") == 1 else "auth"
        assert lane.get("data-role") == role
        assert {"root": "root", "tld": "TLD", "auth": "authoritative"}[role] in texts
    # Lanes go root, TLD, authoritative, left to right.
    order = [g.get("data-role") for g in lanes.values()]
    assert order[:2] == ["client", "resolver"]
    assert order[2:] == sorted(order[2:], key=["root", "tld", "auth"].index)


def test_cold_walk_labels() -> None:
    svg = svg_of(render("cold"))
    queries = ["".join(g.itertext()) for g in by_event(svg, "query")]
    replies = ["".join(g.itertext()) for g in by_event(svg, "reply")]
    assert "priming" in queries[0] and ". NS?" in queries[0]
    assert "net. A? · minimised" in queries[1]
    assert any("glueless NS" in q for q in queries)
    assert "referral to net. · 4 ms" in replies[1]
    assert "answer (AA) · 4 ms" in replies[-1] and "192.0.2.50" in replies[-1]
    # The sub-lookup is a tinted band saying why, and the arrows inside it are nested.
    bands = [g for g in svg.iter("g") if "band" in classes(g)]
    assert len(bands) == 1 and bands[0].get("data-depth") == "1"
    sub = by_event(svg, "start")[1]
    assert "address of ns1.dns-host.org. for zone example.net." in "".join(sub.itertext())
    done = "".join("".join(g.itertext()) for g in by_event(svg, "done"))
    assert "sub-lookup done: NOERROR" in done and "3 queries" in done
    # The totals at the bottom: the time of the last event (total_ms is 0 in the trace), the queries.
    summary = "".join(next(g for g in svg.iter("g") if g.get("data-summary")).itertext())
    assert "answer NOERROR in 28 ms" in summary and "7 upstream queries" in summary
    assert "www.example.net. 3600 IN A 192.0.2.50" in summary


def test_failed_try_is_red_dashed_with_a_cross() -> None:
    svg = svg_of(render("failover"))
    [failed] = by_event(svg, "failed")
    assert "failed" in classes(failed)
    line = failed.find("line")
    assert line is not None and line.get("stroke-dasharray") and "c-bad" in classes(line)
    assert failed.find("path") is not None and "cross" in classes(failed.find("path"))  # type: ignore[arg-type]
    assert "timeout after 376 ms" in "".join(failed.itertext())
    # The query that went unanswered says so, and shares its try id with the failure.
    unanswered = [g for g in by_event(svg, "query") if "unanswered" in classes(g)]
    assert len(unanswered) == 1 and unanswered[0].get("data-try") == failed.get("data-try")
    for name in ("cold", "cname", "warm", "nx"):
        assert not [g for g in svg_of(render(name)).iter("g") if "failed" in classes(g)]


def test_lame_reply_then_failed_try_then_tcp() -> None:
    """A reply that is no use is drawn, then the try is marked failed; TCP and hold-downs are said."""
    events = load("failover")
    query = events[8]
    common = {"t_ms": 8.0, "depth": 0, "zone": query["zone"], "server": query["server"], "address": query["address"]}
    lame = {**common, "event": "reply", "rtt_ms": 4.0, "rcode": "REFUSED", "aa": False, "tc": False,
            "meaning": "lame", "child_zone": None, "ns": [], "glue": [], "records": [], "target": None, "dropped": 0}
    failed = {**common, "event": "failed", "failure": "lame", "after_ms": 4.0}
    events = events[:9] + [lame, failed] + events[10:]
    events[11] = {**events[11], "held_down": ["127.0.3.20"]}
    events[12] = {**events[12], "tcp": True}
    svg = svg_of(render_html(events, "lame"))
    replies = by_event(svg, "reply")
    assert "m-bad" in classes(replies[1]) and "lame (REFUSED) · 4 ms" in "".join(replies[1].itertext())
    [failed_group] = by_event(svg, "failed")
    assert "failed" in classes(failed_group) and "lame server: reply not usable" in "".join(failed_group.itertext())
    assert failed_group.get("data-try") == replies[1].get("data-try") == by_event(svg, "query")[1].get("data-try")
    tcp = by_event(svg, "query")[2]
    assert "tcp" in classes(tcp) and "resolve · TCP" in "".join(tcp.itertext())
    assert "held down: 127.0.3.20" in "".join(tcp.itertext())


def test_cache_hit_miss_and_negative_have_their_own_classes() -> None:
    svg = svg_of(render("warm"))
    [hit] = by_event(svg, "cache")
    assert "cache-hit" in classes(hit)
    assert "cache hit · ttl 3600" in "".join(hit.itertext())
    assert "www.example.net. A" in "".join(hit.itertext())
    assert all("cache-miss" in classes(g) for g in by_event(svg_of(render("cold")), "cache"))
    events = load("warm")
    events[1] = {**events[1], "result": "negative", "rcode": "NXDOMAIN", "ttl": 297, "records": []}
    [negative] = by_event(svg_of(render_html(events, "t")), "cache")
    assert "cache-negative" in classes(negative) and "negative hit · NXDOMAIN · ttl 297" in "".join(negative.itertext())
    events[1] = {**events[1], "result": "expired", "expired_ago": 12.5, "ttl": None}
    [expired] = by_event(svg_of(render_html(events, "t")), "cache")
    assert "cache-expired" in classes(expired) and "expired 12.5 s ago" in "".join(expired.itertext())


def test_cname_restart_is_marked() -> None:
    svg = svg_of(render("cname"))
    [restart] = by_event(svg, "restart")
    assert "restart" in classes(restart)
    assert "CNAME restart: www.example.org. -> www.example.com." in "".join(restart.itertext())
    assert any("cname -> www.example.com." in "".join(g.itertext()) for g in by_event(svg, "reply"))


def test_nxdomain_answer() -> None:
    svg = svg_of(render("nx"))
    [reply] = by_event(svg, "reply")
    assert "m-neg" in classes(reply) and "NXDOMAIN (AA)" in "".join(reply.itertext())
    summary = "".join(next(g for g in svg.iter("g") if g.get("data-summary")).itertext())
    assert "answer NXDOMAIN" in summary and "authority: example.com. 300 IN SOA" in summary


def test_accessible_svg() -> None:
    page = render("cold")
    svg = svg_of(page)
    assert svg.get("role") == "img"
    assert "NOERROR" in (svg.get("aria-label") or "")
    children = list(svg)
    assert children[0].tag == "title" and children[0].text == "dnslab trace www.example.net. A"
    assert children[1].tag == "desc" and "Sub-lookup of ns1.dns-host.org. A" in (children[1].text or "")
    assert svg.get("aria-labelledby") == "trace-title" and svg.get("aria-describedby") == "trace-desc"
    # The steps as text too, one per event.
    assert page.count("<li>") - page.count('<li><svg') == len(load("cold"))


def test_everything_from_the_network_is_escaped() -> None:
    evil = '<script>alert("x")</script>.example.'
    events = load("failover")
    events = [{**e, **{k: evil for k in ("name", "server") if k in e}} for e in events]
    events[5] = {**events[5], "ns": [evil], "records": [f'{evil} 60 IN A "&<b>'], "glue": [f"{evil} 1.2.3.4"]}
    events[-1] = {**events[-1], "records": [f"{evil} 60 IN A 1.2.3.4", "x\x00y\x1b[31m"], "reason": "</svg><img>"}
    page = render_html(events, evil)
    tree = parse(page)
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;.example." in page
    assert "script" not in [tag for tag, _ in tree.elements]
    assert "\x00" not in page and "\x1b" not in page and "x\\x00y\\x1b[31m" in page
    svg_of(page)  # still well-formed


def test_long_labels_are_cut_with_the_full_text_in_a_tooltip() -> None:
    long_name = ("a" * 60 + ".") * 3 + "example."
    events = load("nx")
    events = [{**e, "name": long_name} if "name" in e else e for e in events]
    svg = svg_of(render_html(events, "long"))
    [query] = by_event(svg, "query")
    cut = [t for t in query.iter("text") if (t.find("title") is not None)]
    assert cut, "the long name should be cut"
    text = cut[0]
    shown = "".join(text.itertext()).replace(text.find("title").text or "", "")  # type: ignore[union-attr]
    assert shown.endswith("…") and len(shown) < len(long_name)
    assert long_name in (text.find("title").text or "")  # type: ignore[union-attr]


def test_odd_streams_do_not_break_it() -> None:
    for events in ([], [{"event": "start", "depth": 0, "name": "x.", "type": "A", "why": ""}],
                   [{"event": "mystery", "t_ms": "soon"}, {"event": "failed", "address": "127.9.9.9"},
                    {"event": "reply", "depth": 1}, {"event": "done", "depth": 0}]):
        page = render_html(events, "odd")
        parse(page)
        svg_of(page)


# --- in a real browser ----------------------------------------------------------------------


def chromium() -> str:
    return find_chromium("the rendering checks in a browser are")


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Decodes an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes) into rows of RGB bytes."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = previous[i]
            c = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3))
        previous = line
    return width, height, rows


def near(pixel: tuple[int, int, int], colour: str, tolerance: int = 40) -> bool:
    target = bytes.fromhex(colour.lstrip("#"))
    return all(abs(p - t) <= tolerance for p, t in zip(pixel, target))


@pytest.mark.parametrize("name", ["cold", "failover"])
def test_chromium_draws_it(name: str, tmp_path: Path) -> None:
    page = tmp_path / "trace.html"
    page.write_text(render(name), encoding="utf-8")
    shot = tmp_path / "shot.png"
    result = run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,900", page.as_uri())
    assert shot.exists(), result.stderr[-2000:]
    width, height, rows = png_pixels(shot)
    assert (width, height) == (1400, 900)
    colours = Counter((row[i], row[i + 1], row[i + 2]) for row in rows[::3] for i in range(0, len(row), 9))
    assert len(colours) > 20, "the screenshot is (nearly) blank"
    white = sum(n for c, n in colours.items() if min(c) >= 250)
    assert white < 0.97 * sum(colours.values())
    assert any(near(c, "#1e3a8a", 30) for c in colours), "no query arrow drawn"
    if name == "failover":
        assert sum(n for c, n in colours.items() if near(c, "#b91c1c", 30)) > 20, "no red failed try"
    else:
        assert sum(n for c, n in colours.items() if near(c, "#fdf3dc", 4)) > 500, "no sub-lookup band"

    dom = run_chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    events = load(name)
    assert "<svg" in dom.stdout and 'class="diagram"' in dom.stdout
    for kind in ("query", "reply", "failed"):
        assert dom.stdout.count(f'data-event="{kind}"') == sum(1 for e in events if e["event"] == kind)


MEASURE = """
<script>
(() => {
  const svg = document.querySelector("svg.diagram");
  const box = svg.getBoundingClientRect();
  const texts = [...svg.querySelectorAll("text")].filter(t => t.textContent.trim());
  const rects = texts.map(t => t.getBoundingClientRect());
  const out = {count: texts.length, overlaps: [], outside: []};
  for (let i = 0; i < rects.length; i++) {
    const a = rects[i];
    if (a.left < box.left - 0.5 || a.right > box.right + 0.5) out.outside.push(texts[i].textContent);
    for (let j = i + 1; j < rects.length; j++) {
      const b = rects[j];
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 1 && h > 1) out.overlaps.push([texts[i].textContent, texts[j].textContent]);
    }
  }
  const pre = document.createElement("pre");
  pre.id = "measured";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""


@pytest.mark.parametrize("name", TRACES)
def test_no_text_overlaps_in_chromium(name: str, tmp_path: Path) -> None:
    # The page itself has no script (its policy forbids any); this copy adds one that measures.
    html = render(name)
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    page = tmp_path / "measure.html"
    page.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = run_chromium(tmp_path, "--window-size=1400,900", "--dump-dom", page.as_uri())
    match = re.search(r'<pre id="measured">(.*?)</pre>', dom.stdout, re.S)
    assert match, dom.stderr[-2000:]
    measured = json.loads(match.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                          .replace("&amp;", "&"))
    assert measured["count"] > 10
    assert measured["overlaps"] == []
    assert measured["outside"] == []
