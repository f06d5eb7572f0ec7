"""Open the built site the way a reader does: serve site/ on localhost, drive headless Chromium.

The quick site (``--site``, what ``nox -s site`` built):

- every visited page: its images load, its internal links resolve, and it makes no request to
  another host; no page (HTML and its images) weighs over 1 MB but the tutorials in HEAVY_PAGES;
- search finds a layer by name, the CAM tutorial by "Grad-CAM", and a unit by model, backend, layer
  and number, with a result that says all four;
- a unit page lights the Galleries tab, lists its layers in the navigation, links its neighbouring
  layers, its twin in the other backend and the torch | TensorFlow page, opens its hero in the
  lightbox at least as large as shown, goes to the next unit on "n", transfers at most 150 KB beyond
  the theme's assets and the search index that every page shares, and its folder holds at most 80 KB;
- links between units: a VGG16 unit page shows its input and output rows, each link leading to a
  unit page and given by the page's script that page's hero image as its thumbnail, the units the
  gallery lacks with the command that renders them; a Lite0 class page (espresso) lists units whose
  pages exist, with their thumbnails;
- the reader defects of issue 23, each a check: compare pairs side by side and labelled; diversity
  images that are one picture flagged; verdict badges that agree with their numbers, in the unit
  pages' words on the layer pages; the first-layer kernel in the network's channel order; no literal
  backticks, no "random transforms" caption on a render without transforms, no mkdocs-gallery
  config comment on a tutorial; example rows on one line at 1280 px; no image inside the hero's
  caption; no white box in the dark palette and text (code tokens included) at 4.5:1 or more in both;
  the API reference shows the public helpers and its signatures need no horizontal scrolling.

Then a synthetic full layer (``--no-synthetic`` skips it): a site of one 512-unit layer, built from
a synthetic cache (benchmark data, never published) in a temporary folder. Its layer page must reach
DOMContentLoaded within 1 s from the local server and transfer at most 2 MB before scrolling, with
no request to another host. Screenshots go to ``--out``. Run by `nox -s browser` after `nox -s site`.

    python tests/browser/check_site.py [--site site] [--out site-screenshots] [--no-synthetic] [--partial]
"""

from __future__ import annotations

import argparse
import functools
import html as html_lib
import http.server
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_PAGE_BYTES = 1_000_000
# site-relative glob -> why it may weigh more than MAX_PAGE_BYTES (quick build, 2026-11-28: 2.30,
# 1.22 and 1.11 MB); gallery pages are not named here and must stay under the limit
HEAVY_PAGES: dict[str, str] = {
    "tutorials/plot_3_where_does_the_network_look/index.html": "a tutorial of 14 CAM figures on two photos",
    "tutorials/plot_1_feature_maps_by_hand/index.html": "a tutorial of full-size feature-map grids",
    "tutorials/plot_0_what_do_filters_respond_to/index.html": "a tutorial of 64-filter grids, step by step",
}
MIN_CONTRAST = 4.5
LINKS_A_ROW = 5  # a unit page's strongest excitatory (and inhibitory) inputs and outputs
UNIT_PAGE_BYTES = 150_000  # a unit page's own transfer, beyond what every page shares
UNIT_FOLDER_BYTES = 80_000
LAYER_DCL_MS = 1000  # a 512-unit layer page, from the local server
LAYER_FIRST_BYTES = 2_000_000  # transferred before the reader scrolls
ALIKE = 0.9  # diversity images at this mean pairwise correlation or more are one picture
SHARED = ("assets/", "search/", "css/", "js/", "galleries/theme.css", "galleries/units.json")  # what every page loads
# Elements whose text must stay readable in both palettes (mkdocs-gallery styles assume white), code
# tokens included.
CONTRAST_SELECTORS = [".mkd-glr-script-out-disp code", ".mkd-glr-script-out .highlight pre", "p.mkd-glr-script-out",
                      ".mkd-glr-thumbcontainer a", "div.mkd-glr-download a", "a.md-button", ".fg-badge",
                      ".highlight code span", ".md-typeset code"]  # fmt: skip
# WCAG contrast of each selected element's text against its effective background.
CONTRAST_JS = """(sels) => {
  const parse = c => { const m = c.match(/[\\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
  const lum = ([r, g, b]) => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
                                return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const over = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3]));
  const bg = el => { const layers = []; for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor); if (c[3] > 0) layers.push(c); if (c[3] >= 1) break; }
    let out = [255, 255, 255]; for (const l of layers.reverse()) out = over(l, out); return out; };
  const res = [];
  for (const sel of sels) for (const el of document.querySelectorAll(sel)) {
    if (!el.offsetParent && getComputedStyle(el).position !== 'fixed') continue;
    if (!(el.innerText || '').trim()) continue;
    const b = bg(el), f = over(parse(getComputedStyle(el).color), b);
    const [l1, l2] = [lum(f), lum(b)].sort((x, y) => y - x);
    res.push({sel, ratio: (l1 + 0.05) / (l2 + 0.05), text: (el.innerText || '').slice(0, 30)});
  }
  return res;
}"""
# The text a reader sees in the page's content, without code (where backticks belong).
VISIBLE_TEXT_JS = """() => { const root = document.querySelector('article') || document.body;
  const w = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {acceptNode: n =>
    n.parentElement.closest('code, pre, script, style') ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
  let s = ''; while (w.nextNode()) s += w.currentNode.nodeValue + ' '; return s; }"""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


class Report:
    """Named checks: each prints one line; ``failures`` collects what failed."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def check(self, name: str, problems: list[str], detail: str = "") -> None:
        print(f"{'ok  ' if not problems else 'FAIL'} {name}{': ' + detail if detail else ''}")
        for p in problems[:8]:
            print(f"       {p}")
        if len(problems) > 8:
            print(f"       ... and {len(problems) - 8} more")
        self.failures += [f"{name}: {p}" for p in problems]


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep the output to the checks
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # the browser may drop a connection early
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def first(root: Path, pattern: str, partial: bool = False) -> str | None:
    hits = sorted(root.glob(pattern))
    if not hits:
        if partial:
            print(f"skip     no page matches {pattern} (--partial)")
            return None
        raise SystemExit(f"no page matches {pattern} under {root}: build the site first (nox -s site)")
    return hits[0].parent.relative_to(root).as_posix() + "/"


# --- checks on the files ------------------------------------------------------------------------------------
def _text(html: str) -> str:
    body = re.sub(r"<(script|style|svg)\b.*?</\1>", " ", html, flags=re.S)
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


def _image(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.float64)


def _correlation(a, b) -> float:
    import numpy as np

    x, y = a.ravel() - a.mean(), b.ravel() - b.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    if den == 0:  # flat: one picture if the pixels agree
        return 1.0 if float(np.abs(a - b).mean()) <= 2.0 else 0.0
    return float((x * y).sum() / den)


DIVERSITY_SECTION = r'id="diversity"[^>]*>.*?(?=<h2 |</section>|</article>)'  # a section, or a heading's run


def _diversity_images(unit: Path, html: str) -> list:
    """The unit's diversity images: separate files, or one strip cut by its data-count and data-gap."""
    section = re.search(DIVERSITY_SECTION, html, re.S)
    if not section:
        return []
    srcs = re.findall(r'<img[^>]*src="([^"]*diversity[^"]*)"[^>]*>', section.group(0))
    if len(srcs) > 1:
        return [_image(unit / s) for s in srcs]
    tag = re.search(r'<img[^>]*src="([^"]*diversity[^"]*)"[^>]*>', section.group(0))
    if not tag:
        return []
    count = int(re.search(r'data-count="(\d+)"', tag.group(0)).group(1))
    gap = int(re.search(r'data-gap="(\d+)"', tag.group(0)).group(1))
    strip = _image(unit / tag.group(1))
    side = (strip.shape[1] - gap * (count - 1)) // count
    return [strip[:, i * (side + gap) : i * (side + gap) + side] for i in range(count)]


def diversity_checks(root: Path) -> tuple[list[str], int]:
    """Diversity images that are one picture (mean pairwise r >= ALIKE) are flagged as alike, and the
    page does not say they were pushed apart."""
    problems, alike = [], 0
    for page in sorted(root.glob("galleries/*/*/*/unit-*/index.html")):
        html = page.read_text(errors="replace")
        images = _diversity_images(page.parent, html)
        if len(images) < 2:
            continue
        r = sum(_correlation(a, b) for a, b in combinations(images, 2)) / (len(images) * (len(images) - 1) / 2)
        if r < ALIKE:
            continue
        alike += 1
        section = _text(re.search(DIVERSITY_SECTION, html, re.S).group(0))
        if "pushed apart" in section and "did not push them apart" not in section or "alike" not in section:
            problems.append(f"{page.parent.relative_to(root)}: its diversity images are one picture (mean r {r:.2f}), "
                            f"the page says {section[:90]!r}")  # fmt: skip
    return problems, alike


EXAMPLES_SECTION = r'<section id="examples">.*?</section>'


def example_checks(root: Path, least: int = 96) -> tuple[list[str], str]:
    """Each unit's dataset examples: a top and a bottom row of as many captions as the page says, their
    sheet at least ``least`` px a crop, and no row of ties at 0.00 unless the page calls the unit dead."""
    problems, units, counts = [], 0, set()
    for page in sorted(root.glob("galleries/*/*/*/unit-*/index.html")):
        html = page.read_text(errors="replace")
        section = re.search(EXAMPLES_SECTION, html, re.S)
        if not section or "fg-examples" not in section.group(0):
            continue
        units += 1
        rel = page.parent.relative_to(root)
        rows = re.findall(r'<div class="fg-examples" style="--n: (\d+)">(.*?)</div>', section.group(0), re.S)
        kinds = [re.findall(r'class="fg-ex-(\w+)"', body) for _, body in rows]
        if kinds != [["top"], ["bottom"]]:
            problems.append(f"{rel}: example rows {kinds}, not top then bottom")
            continue
        n = int(rows[0][0])
        counts.add(n)
        values = [re.findall(r'<small>[^<]* · (-?[\d.]+)</small>', body) for _, body in rows]
        if any(len(v) != n for v in values):
            problems.append(f"{rel}: {[len(v) for v in values]} captions for {n} examples a row")
        sheet = _image(page.parent / "examples.webp")
        if sheet.shape[1] < n * least or sheet.shape[0] < 2 * least:
            problems.append(f"{rel}: its example sheet is {sheet.shape[1]}x{sheet.shape[0]} px, under {n} x {least} px a row")
        dead = "Dead on this collection" in section.group(0)
        for kind, v in zip(("top", "bottom"), values):
            if len(v) > 1 and all(x in ("0.00", "-0.00") for x in v) and not dead:
                problems.append(f"{rel}: its {kind} row ties at 0.00 and the page does not call the unit dead")
    return problems, f"{units} units, {sorted(counts)} examples a row"


def _stats(html: str) -> dict[str, float]:
    rows = re.findall(r"<td>([^<]+)</td>\s*<td>(-?[\d.]+)</td>", html)
    return {html_lib.unescape(k).strip(): float(v) for k, v in rows}


def verdict_checks(root: Path) -> tuple[list[str], int]:
    """A unit's badge agrees with its numbers: a claimed "final < N % of naive" holds, a stated share
    of naive's gain is the table's; and a layer page's tiles use the unit pages' words."""
    problems, labels, n = [], set(), 0
    for page in sorted(root.glob("galleries/*/*/*/unit-*/index.html")):
        html = page.read_text(errors="replace")
        badge = re.search(r'class="fg-verdict"><span class="fg-badge[^"]*"[^>]*>([^<]+)</span>(.*?)</p>', html, re.S)
        if not badge:
            continue
        n += 1
        label, detail = html_lib.unescape(badge.group(1)), _text(badge.group(2))
        labels.add(label)
        s = _stats(html)
        start, final = s.get("start image"), s.get("regularized, final")
        naive = s.get("naive, final on its image clipped to [0, 1]", s.get("naive, final"))
        if None in (start, final, naive):
            continue
        rel = page.parent.relative_to(root)
        for claimed in re.findall(r"final < (\d+) % of naive", label + " " + detail):
            if naive > 0 and final / naive * 100 >= int(claimed):
                problems.append(f"{rel}: says final < {claimed} % of naive at {final:.4g}/{naive:.4g} = {100 * final / naive:.0f} %")
        stated = re.search(r"reached (-?\d+) % of naive ascent's gain", detail)
        if stated and naive != start and int(stated.group(1)) != round((final - start) / (naive - start) * 100):
            problems.append(f"{rel}: states {stated.group(1)} % of naive's gain; its table gives "
                            f"{100 * (final - start) / (naive - start):.1f} %")  # fmt: skip
    for layer in sorted(root.glob("galleries/*/*/*/index.html")):
        html = layer.read_text(errors="replace")
        words = {html_lib.unescape(w) for w in re.findall(r'<em class="fg-badge[^"]*">([^<]+)</em>', html)}
        for title in re.findall(r'<a [^>]*href="unit-\d+/"[^>]*title="([^"]+)"', html):
            said = html_lib.unescape(title).split(": ", 1)[-1].split(" · ")[-1]
            if not said.startswith("activation"):
                words.add(said)
        for w in sorted(words - labels):
            problems.append(f"{layer.parent.relative_to(root)}: a tile says {w!r}, a word no unit page's badge uses")
    return problems, n


def _swatch(unit: Path, html: str):
    """The kernel swatch's colour per channel, centred on grey: from an inline SVG or a kernel image."""
    import numpy as np

    svg = re.search(r'<svg class="fg-kernel".*?</svg>', html, re.S)
    if svg:
        fills = re.findall(r'fill="#([0-9a-f]{6})"', svg.group(0))
        rgb = np.array([[int(f[i : i + 2], 16) for i in (0, 2, 4)] for f in fills], np.float64)
        return rgb.mean(axis=0) / 255 - 0.5
    src = re.search(r'<img[^>]*src="([^"]*kernel[^"]*)"', html)
    if not src:
        return None
    im = _image(unit / src.group(1)) / 255
    inner = im[2:-2, 2:-2]  # the grid's margin off
    return inner.reshape(-1, 3).mean(axis=0) - 0.5


def kernel_checks(root: Path) -> tuple[list[str], int]:
    """A first-layer unit's kernel swatch leans to the colours its (near solid) image has: drawn in the
    network's input channel order, not BGR read as RGB."""
    import numpy as np

    problems, n = [], 0
    for page in sorted(root.glob("galleries/*/*/*/unit-*/index.html")):
        html = page.read_text(errors="replace")
        k = _swatch(page.parent, html)
        hero = re.search(r'<img[^>]*src="(regularized\.[a-z]+)"', html)
        if k is None or not hero:
            continue
        m = _image(page.parent / hero.group(1)).reshape(-1, 3).mean(axis=0) / 255
        m = m - m.mean()
        if np.std(m) < 0.05 or np.std(k) < 0.02:  # a grey image or swatch tells nothing
            continue
        n += 1
        if float(np.dot(k - k.mean(), m)) <= 0:
            problems.append(f"{page.parent.relative_to(root)}: swatch leans {np.round(k, 2).tolist()}, the image "
                            f"{np.round(m, 2).tolist()} (red, green, blue)")  # fmt: skip
    return problems, n


def unit_folder_sizes(root: Path) -> tuple[list[str], str]:
    sizes, blocks, problems = [], [], []
    for unit in sorted(root.glob("galleries/*/*/*/unit-*")):
        files = [p for p in unit.iterdir() if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        sizes.append(size)
        blocks.append(sum(p.stat().st_blocks * 512 for p in files))
        if size > UNIT_FOLDER_BYTES:
            problems.append(f"{unit.relative_to(root)}: {size / 1e3:.0f} KB")
    if not sizes:
        return ["no unit folders"], ""
    return problems, (f"{len(sizes)} unit folders, {min(sizes) / 1e3:.0f}–{max(sizes) / 1e3:.0f} KB "
                      f"({min(blocks) / 1e3:.0f}–{max(blocks) / 1e3:.0f} KB allocated)")  # fmt: skip


def page_weights(root: Path) -> tuple[list[str], list[tuple[int, str]]]:
    """Every page's HTML plus the local images it shows, against MAX_PAGE_BYTES."""
    failures, weights = [], []
    for page in root.rglob("*.html"):
        html = page.read_text(errors="replace")
        total = page.stat().st_size
        for src in set(re.findall(r'<img[^>]+src="([^"]+)"', html)):
            if "://" in src or src.startswith("data:"):
                continue
            f = (page.parent / urllib.parse.unquote(src.split("#")[0].split("?")[0])).resolve()
            total += f.stat().st_size if f.is_file() else 0
        rel = page.relative_to(root).as_posix()
        weights.append((total, rel))
        if total > MAX_PAGE_BYTES and not any(Path(rel).match(g) for g in HEAVY_PAGES):
            failures.append(f"{rel}: {total / 1e6:.2f} MB with its images (limit {MAX_PAGE_BYTES / 1e6:.0f} MB)")
    return failures, sorted(weights, reverse=True)


# --- checks in the browser ------------------------------------------------------------------------------------
TRANSFER_JS = """() => { const n = performance.getEntriesByType('navigation')[0];
  return {dcl: n.domContentLoadedEventEnd - n.startTime, doc: n.transferSize || n.encodedBodySize,
          resources: performance.getEntriesByType('resource').map(r => ({url: r.name, bytes: r.transferSize || r.encodedBodySize}))}; }"""


def foreign_requests(page, base: str) -> list[str]:
    """Collect the page's requests to another host (and to no site at all) as it loads."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if not r.url.startswith((base, "data:", "blob:", "about:")) else None)
    return seen


def lines_up(page, report: Report, name: str) -> None:
    """At 1280 px, the example crops of a row stay on one line (each row's items share a top)."""
    rows = page.evaluate("""() => Array.from(document.querySelectorAll('.fg-row, .fg-examples'))
      .filter(row => row.querySelector('img[src*="top"], img[src*="bottom"], img[src*="examples"]'))
      .map(row => Array.from(row.querySelectorAll(':scope > figure, :scope > small'))
      .map(e => Math.round(e.getBoundingClientRect().top)))""")
    problems = [f"a row of {len(r)} breaks over tops {sorted(set(r))}" for r in rows if len(set(r)) > 1]
    report.check(f"{name}: example rows on one line at 1280 px", problems, f"{len(rows)} rows")


def curve_not_white(page, report: Report, name: str) -> None:
    import numpy as np
    from PIL import Image

    curve = page.query_selector("svg.fg-curve, img[src*='curve']")
    if curve is None:
        report.check(f"{name} (dark): objective curve", ["no curve on the page"])
        return
    curve.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    shot = np.asarray(Image.open(io.BytesIO(curve.screenshot())).convert("L"), np.float64) / 255
    report.check(f"{name} (dark): the objective curve is no white box", [] if shot.mean() < 0.5 else
                 [f"its mean brightness is {shot.mean():.2f} on the dark palette"], f"mean brightness {shot.mean():.2f}")  # fmt: skip


def related_links(page, base: str, unit: str, root: Path, report: Report) -> None:
    """A unit page links its neighbouring layers, its twin in the other backend and the compare page."""
    m = re.match(r"galleries/([^/]+)/([^/]+)/([^/]+)/unit-(\d+)/", unit)
    model, backend, layer, u = m.groups()
    hrefs = {h.split("#")[0] for h in page.evaluate("Array.from(document.querySelectorAll('article a[href]')).map(a => a.href)")}
    layers = [p.parent.name for p in sorted((root / "galleries" / model / backend).glob("*/index.html"))]
    problems = []
    twin = [b for b in ("torch", "tensorflow") if b != backend][0]
    wanted = {f"the twin in {twin}": f"{base}galleries/{model}/{twin}/{layer}/unit-{u}/",
              "the compare page": f"{base}galleries/{model}/compare/{layer}/"}  # fmt: skip
    others = [x for x in layers if x != layer]
    if others:
        wanted["a neighbouring layer"] = None
    for what, url in wanted.items():
        if url is None:
            if not any(h.startswith(f"{base}galleries/{model}/{backend}/") and h.rstrip("/").split("/")[-1] in others for h in hrefs):
                problems.append(f"no link to {what} ({', '.join(others)})")
        elif url not in hrefs:
            problems.append(f"no link to {what} ({url[len(base):]})")
    report.check("unit page links neighbouring layers, its twin and the compare page", problems, unit)


# A link of a row: where it leads and the thumbnail the page's script gave it.
THUMB_OF = """(a => { const img = a.querySelector('img');
  return {href: a.href, text: a.innerText.trim(), img: img && img.src, loaded: !!img && img.complete && img.naturalWidth > 0}; })"""
# Each row of a unit page's links: its heading, kind, and entries (thumbnail links, or plain numbers).
LINK_ROWS_JS = """() => Array.from(document.querySelectorAll('#links h3')).map(h => {
  const rows = []; for (let e = h.nextElementSibling; e && e.tagName !== 'H3'; e = e.nextElementSibling) {
    if (!e.classList.contains('fg-linkrow')) continue;
    rows.push({kind: e.querySelector('.fg-linkrow-kind').innerText.trim(),
               links: Array.from(e.querySelectorAll(':scope > a')).map(THUMB_OF),
               plain: Array.from(e.querySelectorAll(':scope > span:not(.fg-linkrow-kind)')).map(x => x.innerText.trim())}); }
  const cmd = []; for (let e = h.nextElementSibling; e && e.tagName !== 'H3'; e = e.nextElementSibling)
    if (e.matches('pre.fg-cmd')) cmd.push(e.innerText.trim());
  return {title: h.innerText.trim(), rows, cmd}; })""".replace("THUMB_OF", THUMB_OF)
THUMBS_READY_JS = "() => Array.from(document.querySelectorAll('.fg-linkrow > a')).every(a => a.querySelector('img'))"
HERO_RE = re.compile(r'<figure class="fg-hero">.*?<img [^>]*src="([^"]+)"', re.S)


def await_thumbs(page) -> None:
    """Wait until the page's script has given every link its thumbnail, 5 s at most (a link left
    without one is then a problem that thumb_problems names)."""
    try:
        page.wait_for_function(THUMBS_READY_JS, timeout=5000)
    except Exception:  # noqa: BLE001 (a timeout)
        pass


def thumb_problems(link: dict, base: str, root: Path, where: str) -> list[str]:
    """A linked unit's thumbnail loads and is the hero image of the unit page it leads to."""
    m = re.fullmatch(re.escape(base) + r"(galleries/.+/unit-\d+/)", link["href"])
    if not m:
        return [f"{where}: {link['href']} is no unit page"]
    if not link["img"]:
        return [f"{where}: {link['href']} got no thumbnail"]
    hero = HERO_RE.search((root / m.group(1) / "index.html").read_text())
    want = link["href"] + hero.group(1) if hero else None
    problems = [] if link["loaded"] else [f"{where}: thumbnail {link['img']} did not load"]
    if link["img"] != want:
        problems.append(f"{where}: {link['href']}: thumbnail {link['img'][len(base):]}, its page's hero {want}")
    return problems


def _resolves(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=10).close()
        return True
    except urllib.error.URLError:
        return False


def links_checks(page, base: str, root: Path, report: Report, out: Path) -> None:
    """A VGG16 unit page of a middle layer shows input and output rows, excitatory and inhibitory;
    each thumbnail loads and leads to an existing unit page; units the gallery lacks are plain, with
    the command that renders them. A Lite0 class page (espresso, from the offline coffee photo) lists
    units whose pages exist, and a unit page of the last layer links its classes."""
    problems, anchors = [], 0
    units = sorted(root.glob("galleries/vgg16_hed/torch/block3_conv2/unit-*/index.html"))
    for unit in units:
        rel = unit.parent.relative_to(root).as_posix()
        page.goto(f"{base}{rel}/", wait_until="networkidle")
        page.evaluate("document.querySelector('#links') && document.querySelector('#links').scrollIntoView()")
        await_thumbs(page)
        page.wait_for_timeout(500)  # the thumbnails load lazily
        sides = page.evaluate(LINK_ROWS_JS)
        titles = [s["title"] for s in sides]
        if titles != ["Inputs from block3_conv1", "Outputs to block3_conv3"]:
            problems.append(f"{rel}: link sections {titles}")
        for side in sides:
            kinds = [r["kind"] for r in side["rows"]]
            if kinds != ["excitatory", "inhibitory"] or any(len(r["links"]) + len(r["plain"]) != LINKS_A_ROW for r in side["rows"]):
                problems.append(f"{rel}: {side['title']}: rows {[(r['kind'], len(r['links']) + len(r['plain'])) for r in side['rows']]}")
            for r in side["rows"]:
                for link in r["links"]:
                    anchors += 1
                    if not re.fullmatch(re.escape(base) + r"galleries/vgg16_hed/torch/[^/]+/unit-\d+/", link["href"]) or not _resolves(link["href"]):
                        problems.append(f"{rel}: link {link['href']} does not lead to a unit page")
                    problems += thumb_problems(link, base, root, rel)
            if any(r["plain"] for r in side["rows"]) and not (side["cmd"] and side["cmd"][0].startswith("featgen render vgg16_hed")):
                problems.append(f"{rel}: {side['title']}: units not rendered but no command")
        if unit == units[-1]:
            page.screenshot(path=str(out / "unit-links.png"), full_page=False)
    if not anchors:
        problems.append("no thumbnail link on any block3_conv1 unit page")
    report.check("a VGG16 unit page (block3_conv2) shows input and output rows whose links lead to unit pages", problems,
                 f"{len(units)} pages, {anchors} thumbnail links")  # fmt: skip

    problems = []
    espresso = root / "galleries/efficientnet_lite0/torch/classes"
    found = [p for p in espresso.glob("*/index.html") if "<h1>espresso <small>" in p.read_text(errors="replace")]
    if not found:
        problems.append(f"no class page for espresso under {espresso.relative_to(root)}")
    else:
        rel = found[0].parent.relative_to(root).as_posix()
        page.goto(f"{base}{rel}/", wait_until="networkidle")
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        await_thumbs(page)
        page.wait_for_timeout(500)
        links = page.evaluate(f"Array.from(document.querySelectorAll('.fg-linkrow > a')).map({THUMB_OF})")
        if not links:
            problems.append(f"{rel} lists no unit")
        problems += [f"{rel}: {x['href']} is no unit page" for x in links
                     if not re.search(r"/unit-\d+/$", x["href"]) or not _resolves(x["href"])]  # fmt: skip
        for x in links:
            problems += thumb_problems(x, base, root, rel)
        page.screenshot(path=str(out / "class-espresso.png"), full_page=False)
        layer = next(iter(sorted({re.search(r"/torch/([^/]+)/unit-", x["href"]).group(1) for x in links})), None)
        pages_with_class_links = [u for u in root.glob(f"galleries/efficientnet_lite0/torch/{layer}/unit-*/index.html")
                                  if 'href="../../classes/' in u.read_text(errors="replace")]  # fmt: skip
        if not pages_with_class_links:
            problems.append(f"no unit page of {layer} links a class page")
    report.check("a Lite0 class page (espresso) lists units whose pages exist", problems,
                 f"{len(found)} espresso page, its units' links checked")  # fmt: skip


def nav_lists_layers(page, base: str, path: str, report: Report, what: str) -> None:
    hrefs = page.evaluate("Array.from(document.querySelectorAll('.md-sidebar--primary a[href]')).map(a => a.href)")
    layers = [h for h in hrefs if re.fullmatch(re.escape(base) + r"galleries/[^/]+/[^/]+/[^/]+/", h.split("#")[0])]
    report.check(f"the navigation lists layers ({what})", [] if layers else [f"no layer in the sidebar of {path or 'home'}"],
                 f"{len(layers)} layer links")  # fmt: skip


def search_unit(page, base: str, report: Report) -> None:
    """A unit is found by model, backend, layer and number, and its result says all four."""
    query, target = "vgg16_hed tensorflow block3_conv1 2", "galleries/vgg16_hed/tensorflow/block3_conv1/unit-2/"
    page.goto(base, wait_until="networkidle")
    page.keyboard.press("/")
    page.keyboard.type(query)
    problems = []
    try:
        page.wait_for_function(f"Array.from(document.querySelectorAll('.md-search-result a')).some(a => a.href === '{base + target}')",
                               timeout=15000)  # fmt: skip
        text = page.evaluate(f"Array.from(document.querySelectorAll('.md-search-result a')).find(a => a.href === '{base + target}').innerText")
        problems += [f"the result does not say {w}: {text!r}" for w in ("vgg16_hed", "tensorflow", "block3_conv1", "unit 2") if w not in text]
    except Exception:  # noqa: BLE001 (a timeout: no such result)
        got = page.evaluate("Array.from(document.querySelectorAll('.md-search-result__item')).slice(0, 3).map(e => e.innerText.replace(/\\s+/g, ' '))")
        problems.append(f"search for {query!r} does not list {target}; first results {got}")
    report.check("search finds a unit by model, backend, layer and number", problems, query)


def api_checks(page, base: str, path: str, report: Report) -> None:
    page.goto(base + path, wait_until="networkidle")
    text = page.evaluate("document.body.innerText")
    names = ("load_model(", "visualize(", "save_image(", "grid(", "show(", "sample_image(", "classify(", "layer_info(")
    problems = [f"no {n!r}" for n in names if n not in text]
    problems += [f"a leaked {r!r}" for r in re.findall(r":(?:class|func|meth|attr|mod):", text)]
    wide = page.evaluate("""() => Array.from(document.querySelectorAll('.doc-signature pre, .doc-signature code, pre.doc-signature'))
        .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.innerText.slice(0, 60))""")
    total = page.evaluate("document.querySelectorAll('.doc-signature').length")
    problems += [f"signature scrolls sideways: {w!r}" for w in wide]
    report.check("API reference documents the public helpers; signatures need no horizontal scrolling", problems,
                 f"{total} signatures, {len(wide)} too wide")  # fmt: skip


def transfer(browser, url: str, scroll: bool) -> dict:
    """A cold load of ``url`` in a fresh context: DOMContentLoaded (ms) and every transfer, before
    scrolling or after scrolling to the bottom (lazy images loaded)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    base = url.split("/galleries/")[0].rstrip("/") + "/"
    foreign = foreign_requests(page, base)
    page.goto(url, wait_until="load")
    page.wait_for_timeout(800)
    if scroll:
        for _ in range(40):
            at_end = page.evaluate("window.scrollBy(0, window.innerHeight); window.innerHeight + window.scrollY >= document.body.scrollHeight")
            page.wait_for_timeout(120)
            if at_end:
                break
        page.wait_for_timeout(600)
    data = page.evaluate(TRANSFER_JS)
    context.close()
    data["foreign"] = foreign
    return data


def own_bytes(data: dict, base: str) -> int:
    """The page's own transfer: the HTML and what it loads, without what every page shares."""
    own = [r["bytes"] for r in data["resources"] if r["url"].startswith(base) and not r["url"][len(base):].startswith(SHARED)]
    return data["doc"] + sum(own)


# --- the synthetic full layer ----------------------------------------------------------------------------------
SYNTHETIC_CONFIG = """
profiles:
  layer:
    description: "one full layer of synthetic entries (benchmark data, never published)"
    galleries:
      - {model: vgg16_hed, backend: torch, layers: [block5_conv3], units: all, size: 128, steps: 512}
"""
SYNTHETIC_MKDOCS = """site_name: synthetic
theme:
  name: material
  font: false
  features: [navigation.tabs, navigation.sections, navigation.indexes]
  palette:
    - {scheme: default, primary: indigo, toggle: {icon: material/brightness-7, name: Dark mode}}
    - {scheme: slate, primary: indigo, toggle: {icon: material/brightness-4, name: Light mode}}
extra_css: [css/featgen.css]
extra_javascript: [js/featgen-search.js, js/featgen-links.js]
markdown_extensions: [admonition, attr_list, md_in_html, tables, pymdownx.details, pymdownx.superfences]
hooks: [HOOKS]
plugins: [search, glightbox]
nav:
  - Home: index.md
  - Galleries: galleries/index.md
"""


def synthetic_layer_site(work: Path) -> Path:
    """A site of one 512-unit layer (vgg16_hed block5_conv3 at 128 px, every view) from a synthetic cache."""
    sys.path.insert(0, str(ROOT))
    from featgen.models.base import LayerInfo
    from featgen.site.pages.write import write_pages
    from featgen.site.render import synthetic
    from featgen.site.render.cache import RenderCache
    from featgen.site.render.plan import plan

    (work / "docs" / "css").mkdir(parents=True)
    (work / "docs" / "js").mkdir()
    (work / "docs" / "index.md").write_text("# Synthetic\n")
    shutil.copy(ROOT / "docs/css/featgen.css", work / "docs/css/featgen.css")
    for script in ("featgen-search.js", "featgen-links.js"):
        shutil.copy(ROOT / "docs/js" / script, work / "docs/js" / script)
    (work / "mkdocs.yml").write_text(SYNTHETIC_MKDOCS.replace("HOOKS", str(ROOT / "featgen/site/mkdocs/hooks.py")))
    (work / "galleries.yml").write_text(SYNTHETIC_CONFIG)
    cache = RenderCache(work / "cache" / "renders")
    for backend in ("torch",):
        synthetic.put_model_info(cache, "vgg16_hed", backend, [LayerInfo("block5_conv3", "ReLU", (14, 14, 512), 512)], 224, bgr=True)
    p = plan("layer", cache, config=str(work / "galleries.yml"), loader=lambda *a: None)
    synthetic.fill(p, cache)
    write_pages(p, cache, work / "docs", pages_dir=work / ".featgen-pages", synthetic=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])), "NO_MKDOCS_2_WARNING": "1"}
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q"], cwd=work, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"the synthetic layer's site did not build:\n{res.stderr[-3000:]}")
    return work / "site"


def synthetic_checks(browser, report: Report, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="featgen-synthetic-layer-") as tmp:
        print("synthetic: building a site of one 512-unit layer (synthetic entries, never published) ...")
        site = synthetic_layer_site(Path(tmp))
        server, base = serve(site)
        try:
            url = base + "galleries/vgg16_hed/torch/block5_conv3/"
            cold = [transfer(browser, url, scroll=False) for _ in range(3)]
            dcl = sorted(c["dcl"] for c in cold)[1]  # the median of three cold loads
            first_bytes = max(c["doc"] + sum(r["bytes"] for r in c["resources"]) for c in cold)
            tiles = len(re.findall(r'class="fg-tile', (site / "galleries/vgg16_hed/torch/block5_conv3/index.html").read_text()))
            report.check("synthetic 512-unit layer page: DOMContentLoaded within 1 s", [] if dcl <= LAYER_DCL_MS else
                         [f"{dcl:.0f} ms"], f"{tiles} tiles, median of 3 cold loads {dcl:.0f} ms")  # fmt: skip
            report.check("synthetic 512-unit layer page: at most 2 MB before scrolling",
                         [] if first_bytes <= LAYER_FIRST_BYTES else [f"{first_bytes / 1e6:.2f} MB"],
                         f"{first_bytes / 1e6:.2f} MB in {1 + len(cold[0]['resources'])} requests")  # fmt: skip
            scrolled = transfer(browser, url, scroll=True)
            total = scrolled["doc"] + sum(r["bytes"] for r in scrolled["resources"])
            print(f"       after scrolling to the end: {total / 1e6:.2f} MB")
            foreign = sorted({u for c in [*cold, scrolled] for u in c["foreign"]})
            report.check("synthetic layer page: no request to another host", foreign)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url, wait_until="networkidle")
            page.screenshot(path=str(out / "synthetic-layer.png"))
            page.close()
        finally:
            server.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--site", default="site")
    ap.add_argument("--out", default="site-screenshots")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--partial", action="store_true", help="skip the checks of pages a small build lacks")
    ap.add_argument("--no-synthetic", action="store_true", help="skip the synthetic full layer")
    args = ap.parse_args()
    root = Path(args.site)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report()
    pages = {
        "home": "",
        "galleries": first(root, "galleries/index.html", args.partial),
        "model": first(root, "galleries/efficientnet_lite0/index.html", args.partial),
        "backend": first(root, "galleries/efficientnet_lite0/torch/index.html", args.partial),
        "tutorial": first(root, "tutorials/plot_2_*/index.html", args.partial),
        "cam-tutorial": first(root, "tutorials/plot_3_*/index.html", args.partial),
        "layer": first(root, "galleries/efficientnet_lite0/torch/blocks.4/index.html", args.partial),
        "unit": first(root, "galleries/efficientnet_lite0/torch/blocks.4/unit-0/index.html", args.partial),
        "keras-tutorial": first(root, "tutorials/plot_0_*/index.html", args.partial),
        "keras-layer": first(root, "galleries/vgg16_hed/tensorflow/block5_conv3/index.html", args.partial),
        "keras-unit": first(root, "galleries/vgg16_hed/tensorflow/block1_conv1/unit-0/index.html", args.partial),
        "vgg-unit": first(root, "galleries/vgg16_hed/torch/block3_conv1/unit-2/index.html", args.partial),
        "compare": first(root, "galleries/vgg16_hed/compare/block1_conv1/index.html", args.partial),
        "tutorials": first(root, "tutorials/index.html", args.partial),
        "api": first(root, "api/index.html", args.partial),
    }
    pages = {k: v for k, v in pages.items() if v is not None}

    # --- the files
    problems, n = diversity_checks(root)
    report.check("diversity images that are one picture are flagged, not called pushed apart", problems, f"{n} units with alike images")
    problems, n = verdict_checks(root)
    report.check("verdict badges agree with their numbers; layer tiles use the unit pages' words", problems, f"{n} unit verdicts")
    problems, n = kernel_checks(root)
    report.check("the first-layer kernel swatch is in the network's channel order", problems, f"{n} coloured units")
    problems, detail = example_checks(root)
    report.check("dataset examples: top and bottom rows of >= 96-px crops, no 0.00 ties unless the unit is dead", problems, detail)
    problems, detail = unit_folder_sizes(root)
    report.check("each unit folder holds at most 80 KB", problems, detail)
    problems, weights = page_weights(root)
    report.check("no page weighs over 1 MB with its images (tutorials in HEAVY_PAGES aside)", problems,
                 "heaviest: " + ", ".join(f"{r} {w / 1e3:.0f} KB" for w, r in weights[:3]))  # fmt: skip

    from playwright.sync_api import sync_playwright

    server, base = serve(root)
    checked: set[str] = set()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            foreign = foreign_requests(page, base)
            broken, dead_links, texts = [], [], {}
            for name, path in pages.items():
                page.goto(base + path, wait_until="networkidle")
                page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # load lazy images
                page.wait_for_timeout(400)
                page.evaluate("window.scrollTo(0, 0)")
                broken += [f"{name}: {src}" for src in page.evaluate(
                    "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")]  # fmt: skip
                for href in page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
                    url = href.split("#")[0]
                    if not url.startswith(base) or url in checked:
                        continue
                    checked.add(url)
                    try:
                        urllib.request.urlopen(url, timeout=10).close()
                    except urllib.error.URLError as exc:
                        dead_links.append(f"{name}: {url} ({exc})")
                texts[name] = page.evaluate(VISIBLE_TEXT_JS)
                if name in ("unit", "keras-unit", "vgg-unit"):
                    lines_up(page, report, name)
                    hero = page.evaluate("document.querySelectorAll('.fg-hero figcaption img, figure figcaption img').length")
                    report.check(f"{name}: no image inside a caption", [f"{hero} image(s) in a figcaption"] if hero else [])
                page.wait_for_timeout(400)  # the header's title and tabs animate back after the scroll
                page.screenshot(path=str(out / f"{name}.png"), full_page=False)
            report.check("every image loads", broken, f"{len(pages)} pages")
            report.check("every internal link resolves", dead_links, f"{len(checked)} links")
            ticks = [f"{n}: {t[max(0, t.index('`') - 40): t.index('`') + 40]!r}" for n, t in texts.items() if "`" in t]
            report.check("no literal backticks in the text a reader sees", ticks)
            config_text = [n for n, t in texts.items() if "mkdocs_gallery_thumbnail_number" in t]
            report.check("no mkdocs-gallery config comment shown as text", config_text)
            captions = []
            for unit in sorted(root.glob("galleries/*/*/*/unit-*/index.html")):
                text = _text(unit.read_text(errors="replace"))
                if "transforms none" in text and "random transforms" in text:
                    captions.append(f"{unit.parent.relative_to(root)}: rendered without transforms, its curve caption speaks of random transforms")
            report.check("curve captions say what the render did", captions)

            if "compare" in pages:  # each pair side by side, each image labelled with its backend
                page.goto(base + pages["compare"], wait_until="networkidle")
                pairs = page.evaluate("""() => Array.from(document.querySelectorAll('article figure')).map(f => {
                    const r = Array.from(f.querySelectorAll('img')).map(i => i.getBoundingClientRect());
                    const labels = Array.from(f.querySelectorAll('img')).map(i => (i.closest('a') || i.parentElement).innerText.trim());
                    return {n: r.length, side: r.length === 2 && Math.abs(r[0].top - r[1].top) < 2 && r[0].right <= r[1].left + 1, labels}; })""")
                problems = [f"pair {i}: {'side by side' if q['side'] else 'not side by side'}, labels {q['labels']}"
                            for i, q in enumerate(pairs) if q["n"] == 2 and not (q["side"] and q["labels"][0].lower() == "torch"
                                                                                and q["labels"][1].lower() == "tensorflow")]  # fmt: skip
                report.check("compare pages: each pair side by side, each image labelled", problems if pairs else ["no pairs"],
                             f"{len(pairs)} pairs")  # fmt: skip
            if "layer" in pages:  # a layer page links its neighbours
                page.goto(base + pages["layer"], wait_until="networkidle")
                rel = page.evaluate("Array.from(document.querySelectorAll('a[rel=prev], a[rel=next]')).map(a => a.rel)")
                report.check("a layer page links its neighbours", [] if {"prev", "next"} <= set(rel) else [f"rel links {rel}"])
            if "vgg-unit" in pages:
                page.goto(base + pages["vgg-unit"], wait_until="networkidle")
                related_links(page, base, pages["vgg-unit"], root, report)
                links_checks(page, base, root, report, out)
            if "unit" in pages:  # the Galleries tab, the layers in the sidebar, the lightbox, "n"
                page.goto(base + pages["unit"], wait_until="networkidle")
                nav_lists_layers(page, base, pages["unit"], report, "a unit page")
                nxt = page.evaluate("(document.querySelector('link[rel=next]') || {}).href")
                tab = page.evaluate("(document.querySelector('.md-tabs__item--active') || {}).innerText || ''")
                report.check("a unit page lights the Galleries tab", [] if tab.strip() == "Galleries" else [f"active tab {tab!r}"])
                shown = page.evaluate("document.querySelector('.fg-hero img').getBoundingClientRect().width")
                page.click(".fg-hero img")
                page.wait_for_selector(".gslide-image img", timeout=5000)
                page.wait_for_timeout(800)  # the lightbox zooms in
                boxed = page.evaluate("document.querySelector('.gslide-image img').getBoundingClientRect().width")
                report.check("the lightbox shows the hero at least as large as the page", [] if boxed >= shown - 1 else
                             [f"{boxed:.0f} px against {shown:.0f}"], f"{shown:.0f} px on the page, {boxed:.0f} in the lightbox")  # fmt: skip
                page.keyboard.press("Escape")
                page.wait_for_timeout(500)
                page.keyboard.press("n")
                page.wait_for_timeout(1500)
                report.check("'n' goes to the next unit", [] if nxt and page.url.split("#")[0] == nxt else [f"went to {page.url}"])
                data = transfer(browser, base + pages["unit"], scroll=True)
                own = own_bytes(data, base)
                report.check("a unit page transfers at most 150 KB beyond what every page shares", [] if own <= UNIT_PAGE_BYTES else
                             [f"{own / 1e3:.0f} KB"], f"{own / 1e3:.0f} KB of its own, {len(data['resources'])} requests in all")  # fmt: skip
            if "home" in pages:
                page.goto(base, wait_until="networkidle")
                nav_lists_layers(page, base, "", report, "every page")
            if "api" in pages:
                api_checks(page, base, pages["api"], report)
            # both palettes: contrast (output blocks, cards, badges, code tokens), the curve no white box
            for scheme in ("default", "slate"):
                low, counted = [], 0
                for name in (n for n in ("tutorial", "tutorials", "unit", "api") if n in pages):
                    page.goto(base + pages[name], wait_until="networkidle")
                    page.evaluate(f"document.body.setAttribute('data-md-color-scheme', '{scheme}')")
                    page.wait_for_timeout(600)  # the theme animates colour changes
                    res = page.evaluate(CONTRAST_JS, CONTRAST_SELECTORS)
                    counted += len(res)
                    low += [f"{name}: {r['sel']} {r['ratio']:.2f}:1 ({r['text']!r})" for r in res if r["ratio"] < MIN_CONTRAST]
                    if scheme == "slate" and name == "unit":
                        curve_not_white(page, report, name)
                        page.screenshot(path=str(out / "unit-dark.png"), full_page=True)
                report.check(f"text at {MIN_CONTRAST}:1 or more ({scheme})", sorted(set(low)), f"{counted} elements")
            # search: a layer name finds its layer page, "Grad-CAM" the CAM tutorial, a unit by its four names
            for query, key in (("blocks.4", "layer"), ("Grad-CAM", "cam-tutorial")):
                if key not in pages:
                    continue
                page.goto(base, wait_until="networkidle")
                page.keyboard.press("/")
                page.keyboard.type(query)
                page.wait_for_selector(".md-search-result__item", timeout=15000)
                hrefs = page.evaluate("Array.from(document.querySelectorAll('.md-search-result__link')).map(a => a.href)")
                page.screenshot(path=str(out / f"search-{key}.png"))
                found = any(h.split("#")[0].split("?")[0] == base + pages[key] for h in hrefs)
                report.check(f"search for {query!r} finds {pages[key]}", [] if found else [f"results {hrefs[:3]}"])
            if "vgg-unit" in pages:
                search_unit(page, base, report)
                page.screenshot(path=str(out / "search-unit.png"))
            report.check("no request to another host", sorted(set(foreign)), f"{len(pages)} pages")
            if not args.no_synthetic:
                synthetic_checks(browser, report, out)
            browser.close()
    finally:
        server.shutdown()
    print(f"screenshots in {out}/; {len(report.failures)} failures")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
