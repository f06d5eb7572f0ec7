"""Open the built site the way a reader does: serve site/ on localhost, drive headless Chromium.

Visits the home page, a tutorial, a layer page and a unit page; asserts that every <img> loaded
(naturalWidth > 0), that no internal link is broken, and that search finds a layer name. Saves
screenshots to site-screenshots/. Run by `nox -s browser` after `nox -s site`.

    python tests/browser/check_site.py [--site site] [--out site-screenshots]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep the output to the checks
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # the browser may drop a connection early
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                super().handle_error(request, client_address)

    handler = functools.partial(Quiet, directory=str(root))
    server = Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def first(root: Path, pattern: str) -> str:
    hits = sorted(root.glob(pattern))
    if not hits:
        raise SystemExit(f"no page matches {pattern} under {root}: build the site first (nox -s site)")
    return hits[0].parent.relative_to(root).as_posix() + "/"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--site", default="site")
    ap.add_argument("--out", default="site-screenshots")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    root = Path(args.site)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pages = {
        "home": "",
        "galleries": first(root, "galleries/index.html"),
        "model": first(root, "galleries/efficientnet_lite0/index.html"),
        "backend": first(root, "galleries/efficientnet_lite0/torch/index.html"),
        "tutorial": first(root, "tutorials/plot_2_*/index.html"),
        "cam-tutorial": first(root, "tutorials/plot_3_*/index.html"),
        "layer": first(root, "galleries/efficientnet_lite0/torch/blocks.4/index.html"),
        "unit": first(root, "galleries/efficientnet_lite0/torch/blocks.4/unit-0/index.html"),
        "keras-tutorial": first(root, "tutorials/plot_0_*/index.html"),
        "keras-layer": first(root, "galleries/vgg16_hed/tensorflow/block5_conv3/index.html"),
        "keras-unit": first(root, "galleries/vgg16_hed/tensorflow/block1_conv1/unit-0/index.html"),
    }
    from playwright.sync_api import sync_playwright

    server, base = serve(root)
    failures: list[str] = []
    checked: set[str] = set()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for name, path in pages.items():
                page.goto(base + path, wait_until="networkidle")
                page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # load lazy images
                page.wait_for_timeout(300)
                page.evaluate("window.scrollTo(0, 0)")
                broken = page.evaluate(
                    "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
                )
                n_img = page.evaluate("document.images.length")
                failures += [f"{name}: image did not load: {src}" for src in broken]
                links = page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
                for href in links:
                    url = href.split("#")[0]
                    if not url.startswith(base) or url in checked:
                        continue
                    checked.add(url)
                    try:
                        urllib.request.urlopen(url, timeout=10).close()
                    except urllib.error.URLError as exc:
                        failures.append(f"{name}: broken link {url} ({exc})")
                page.wait_for_timeout(400)  # the header's title and tabs animate back after the scroll
                page.screenshot(path=str(out / f"{name}.png"), full_page=False)
                print(f"{name:<9} {base + path}: {n_img} images, {len(broken)} broken; {len(links)} links")
            # search: the material search box must find a layer name
            page.goto(base, wait_until="networkidle")
            page.keyboard.press("/")
            page.keyboard.type("blocks.4")
            page.wait_for_selector(".md-search-result__item", timeout=15000)
            results = page.evaluate("Array.from(document.querySelectorAll('.md-search-result__item')).map(e => e.innerText)")
            page.screenshot(path=str(out / "search.png"))
            if not any("blocks.4" in r for r in results):
                failures.append(f"search for 'blocks.4' found nothing relevant: {results[:3]}")
            print(f"search   'blocks.4': {len(results)} results")
            browser.close()
    finally:
        server.shutdown()
    print(f"{len(checked)} internal links checked; screenshots in {out}/")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
