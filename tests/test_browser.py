"""The built book in a real browser: tables have rows, images load, math renders, links resolve, and a
phone's width (390 px) hides nothing without saying so.

One headless Chromium (Debian's `chromium`, installed by `make test`) serves every page at 1280 and
390 px wide (tests/cdp.py drives it over the DevTools protocol on a pipe), with the network unavailable.
After each page has loaded and MathJax has typeset it, a script reads the rendered DOM: image sizes,
table rows, typeset equations, and every box that scrolls sideways with whether it shows a hint.
Screenshots go to _build/screenshots/ for a person to look at.
"""
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bookcheck import figure_problems, raw_reprs
from cdp import CHROMIUM, Browser

pytestmark = [pytest.mark.slow, pytest.mark.browser]
PAGES = [f"book/{n}.html" for n in ("index", "method", "reproduce", "glossary")] + [f"book/executed/{n}.html" for n in (
    "00_data", "01_baseline", "10_quantization", "20_factorization", "30_distillation", "40_open_images", "50_benchmark",
    "60_stacked", "70_rule", "90_summary")]
WIDTHS = (1280, 390)

# What the page shows once its scripts ran: a box "scrolls" when its content is wider than it; it is
# "hinted" when lpirc.js marked it (book/_static/lpirc.css then draws the hint); a caption is "clipped"
# when part of it lies outside the box that holds it.
PROBE = r"""(() => {
  const main = document.querySelector('main') || document.body;
  const vw = window.innerWidth;
  const scrolls = el => [el, ...el.querySelectorAll('mjx-container')].some(e => e.scrollWidth > e.clientWidth + 1);
  const scrollable = el => [el, ...el.querySelectorAll('mjx-container')].some(
      e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX));
  const box = t => t.closest('.pst-scrollable-table-container') || t.parentElement;
  const text = [...main.querySelectorAll('p, li, td, th, dd')].map(e => e.innerText).join('\n');
  const tableBoxes = [...main.querySelectorAll('table')].map(t => {
    const b = box(t), cap = t.querySelector('caption');
    const br = b.getBoundingClientRect(), cr = cap ? cap.getBoundingClientRect() : null;
    return {id: t.id || (t.closest('[id]') || {}).id || '', rows: t.querySelectorAll('tbody tr').length,
            scrolls: scrolls(b), scrollable: scrollable(b), hinted: b.classList.contains('lpirc-scrolls'),
            overflow: b.scrollWidth - b.clientWidth,
            clipped: cr ? (cr.right > Math.min(br.right, vw) + 1 || cr.left < Math.max(br.left, 0) - 1) : false};
  });
  const otherBoxes = [...main.querySelectorAll('div.math, figure')].map(b => ({
    what: b.tagName.toLowerCase() + (b.id ? '#' + b.id : ''), scrolls: scrolls(b), scrollable: scrollable(b),
    hinted: b.classList.contains('lpirc-scrolls')}));
  return {
    images: [...main.querySelectorAll('img')].map(i => [i.getAttribute('src'), i.naturalWidth]),
    tables: tableBoxes,
    boxes: otherBoxes,
    captions: [...main.querySelectorAll('figcaption')].filter(c => c.getBoundingClientRect().right > vw + 1)
                  .map(c => c.innerText.slice(0, 60)),
    page_overflow: document.documentElement.scrollWidth - vw,
    math: [main.querySelectorAll('.math').length, main.querySelectorAll('.math mjx-container').length],
    rawtex: /\\(?:frac|text|alpha|sum|times)\b|\\\[/.test(text),
  };
})()"""


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def check_static(html_root: Path, rel: str) -> None:
    """What the page's HTML must satisfy whatever the width."""
    page = html_root / rel
    assert page.exists(), rel
    text = page.read_text()
    assert "Traceback (most recent call last)" not in text, f"a Python traceback on {rel}"
    prose = re.sub(r"<pre.*?</pre>", "", text, flags=re.S)          # code cells may hold any text
    for raw in ("```{", "{cite}", ":::{", "{term}", "{download}"):
        assert raw not in prose, f"a MyST directive or role left as raw text ({raw}) on {rel}"
    remote = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', text)
    assert not remote, f"{rel} needs the network to display: {remote}"
    assert not raw_reprs(text), f"a raw Python repr on {rel}: {raw_reprs(text)}"
    assert not figure_problems(text), f"{rel}: {figure_problems(text)}"
    parser = Links()
    parser.feed(text)
    for href in parser.hrefs:
        if href.startswith(("http", "mailto:", "#", "javascript:")):
            continue
        target = (page.parent / href.split("#")[0]).resolve()
        assert target.exists(), f"broken link {href} on {rel}"


def check_page(browser: Browser, html_root: Path, rel: str, width: int, shot: Path | None = None,
               static: bool = True) -> dict:
    """Load ``rel`` at ``width`` px and check what a reader sees; returns the probe's findings.
    ``static``: check the page's HTML first (:func:`check_static`, the same at every width)."""
    if static:
        check_static(html_root, rel)
    browser.open((html_root / rel).as_uri(), width)
    result = browser.evaluate(PROBE)
    if shot is not None:
        browser.screenshot(shot)
    where = f"{rel} at {width} px"
    assert result["images"] or "executed" not in rel or "60_stacked" in rel, f"no images on {rel}"   # stacked: tables only
    for src, w in result["images"]:
        assert w > 0, f"image {src} did not load on {where}"
    n_math, n_rendered = result["math"]
    assert n_rendered == n_math and not result["rawtex"], f"raw TeX on {where} (math {n_rendered}/{n_math})"
    if "executed" in rel:
        rows = [t["rows"] for t in result["tables"]]
        assert rows and all(n > 0 for n in rows), f"empty table on {rel}: {rows}"
    assert result["page_overflow"] <= 1, f"the page itself scrolls sideways on {where} ({result['page_overflow']} px)"
    for t in result["tables"]:
        if t["scrolls"]:
            assert t["scrollable"] and t["hinted"], f"table {t['id']} runs off its box without a scroll hint on {where}"
        assert not t["clipped"], f"the caption of table {t['id']} is cut off on {where}"
    for b in result["boxes"]:
        if b["scrolls"]:
            assert b["scrollable"] and b["hinted"], f"{b['what']} runs off its box without a scroll hint on {where}"
    assert not result["captions"], f"figure captions run off the screen on {where}: {result['captions']}"
    summary = [t for t in result["tables"] if t["id"] == "tbl-summary"]
    if width >= 1280:
        assert all(t["overflow"] <= 1 for t in summary), f"the summary table scrolls sideways at {width} px"
    return result


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM, "chromium is not installed; `make test` installs the Debian package 'chromium'"
    with Browser() as b:
        yield b


def test_book_pages_in_chromium(smoke_book, browser, root):
    html_root, _ = smoke_book
    shots = root / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    for rel in PAGES:
        check_static(html_root, rel)
        for width in WIDTHS:
            shot = shots / f"{Path(rel).stem}-{width}.png"
            result = check_page(browser, html_root, rel, width, shot, static=False)
            assert shot.stat().st_size > 10_000
            if rel.endswith("90_summary.html") and width < 600:
                summary = [t for t in result["tables"] if t["id"] == "tbl-summary"]
                assert summary and all(t["hinted"] for t in summary if t["scrolls"]), "the summary table at 390 px"


def test_browser_check_catches_what_it_is_for(smoke_book, browser, tmp_path):
    """The check must fail when a figure's image is removed, a table emptied, or the scroll hints are
    switched off at a phone's width (each on a copy of the summary page)."""
    html_root, _ = smoke_book
    rel = "book/executed/90_summary.html"
    page = html_root / rel
    broken_dir = tmp_path / "broken"
    shutil.copytree(html_root, broken_dir)
    target = broken_dir / rel
    imgs = re.findall(r'<img[^>]+src="([^"]+)"', page.read_text())
    assert imgs
    (target.parent / imgs[0]).unlink()
    with pytest.raises(AssertionError, match="did not load"):
        check_page(browser, broken_dir, rel, 1280)
    shutil.copytree(html_root / "_images", broken_dir / "_images", dirs_exist_ok=True)
    html = page.read_text()
    target.write_text(re.sub(r"(<tbody>).*?(</tbody>)", r"\1\2", html, count=1, flags=re.S))
    with pytest.raises(AssertionError, match="empty table"):
        check_page(browser, broken_dir, rel, 1280)
    target.write_text(re.sub(r'<script[^>]+lpirc\.js[^>]*></script>', "", html))
    with pytest.raises(AssertionError, match="without a scroll hint"):
        check_page(browser, broken_dir, rel, 390)
