"""The built book in a real browser: tables have rows, images load, math renders, links resolve.

Runs headless Chromium (Debian's `chromium`, installed by `make test`) over the smoke book, with the
network unavailable (every request goes to a closed local port), at 1280 and 390 px wide. It reads
the rendered DOM through --dump-dom after the page's scripts ran, and saves screenshots to
_build/screenshots/ for a person to look at.
"""
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGES = [f"book/{n}.html" for n in ("index", "method", "reproduce", "glossary")] + [f"book/executed/{n}.html" for n in (
    "00_data", "01_baseline", "10_quantization", "20_factorization", "30_distillation", "40_open_images", "50_benchmark",
    "60_stacked", "90_summary")]
OFFLINE = "--proxy-server=127.0.0.1:9"        # nothing listens there: any network request fails


def chromium(*args, timeout=60):
    profile = tempfile.mkdtemp()
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic", OFFLINE,
           "--proxy-bypass-list=<-loopback>", f"--user-data-dir={profile}", *args]
    try:
        return subprocess.run(["timeout", str(timeout), *cmd], capture_output=True, text=True, timeout=timeout + 10)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# An image loaded iff naturalWidth > 0: the page script writes the verdicts into the DOM,
# which --dump-dom then prints (virtual time lets the load events fire first).
PROBE = """
<script>
window.addEventListener('load', () => {
  const out = document.createElement('pre'); out.id = 'lpirc-probe';
  const imgs = [...document.querySelectorAll('main img')];
  const wide = [...document.querySelectorAll('main table')].filter(t => t.id === 'tbl-summary' ||
      (t.closest('figure, div') && t.closest('figure, div').id === 'tbl-summary'));
  const box = t => t.closest('.pst-scrollable-table-container') || t.parentElement;
  const text = [...document.querySelectorAll('main p, main li, main td, main th, main dd')].map(e => e.innerText).join('\\n');
  out.textContent = JSON.stringify({
    images: imgs.map(i => [i.getAttribute('src'), i.naturalWidth]),
    tables: [...document.querySelectorAll('main table')].map(t => t.querySelectorAll('tbody tr').length),
    math: [document.querySelectorAll('main .math').length, document.querySelectorAll('main .math mjx-container').length],
    rawtex: /\\\\(?:frac|text|alpha|sum|times)\\b|\\\\\\[/.test(text),
    summary_overflow: wide.map(t => box(t).scrollWidth - box(t).clientWidth),
  });
  document.body.appendChild(out);
});
</script>
"""


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def probe(page: Path, tmp_path: Path, width: int = 1280) -> dict:
    import json
    copy = page.with_name(page.stem + ".probe.html")
    html = page.read_text()
    copy.write_text(html.replace("</body>", PROBE + "</body>"))
    try:
        r = chromium(f"--window-size={width},2400", "--virtual-time-budget=15000", "--dump-dom", copy.as_uri())
    finally:
        copy.unlink()
    m = re.search(r'<pre id="lpirc-probe"[^>]*>(.*?)</pre>', r.stdout, re.S)
    assert m, f"page script did not run on {page}: {r.stderr[-500:]}"
    import html as _html
    return json.loads(_html.unescape(m.group(1)))


def check_page(html_root: Path, rel: str, tmp_path: Path, width: int = 1280) -> None:
    page = html_root / rel
    assert page.exists(), rel
    text = page.read_text()
    assert "Traceback (most recent call last)" not in text, f"a Python traceback on {rel}"
    prose = re.sub(r"<pre.*?</pre>", "", text, flags=re.S)          # code cells may hold any text
    for raw in ("```{", "{cite}", ":::{", "{term}", "{download}"):
        assert raw not in prose, f"a MyST directive or role left as raw text ({raw}) on {rel}"
    remote = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', text)
    assert not remote, f"{rel} needs the network to display: {remote}"
    result = probe(page, tmp_path, width)
    assert result["images"] or "executed" not in rel or "60_stacked" in rel, f"no images on {rel}"   # stacked: tables only
    for src, w in result["images"]:
        assert w > 0, f"image {src} did not load on {rel} at {width} px"
    n_math, n_rendered = result["math"]
    assert n_rendered == n_math and not result["rawtex"], f"raw TeX on {rel} at {width} px (math {n_rendered}/{n_math})"
    if width >= 1280:
        assert all(o <= 1 for o in result["summary_overflow"]), f"the summary table scrolls sideways at {width} px"
    if "executed" in rel:
        assert result["tables"] and all(n > 0 for n in result["tables"]), f"empty table on {rel}: {result['tables']}"
    parser = Links()
    parser.feed(text)
    for href in parser.hrefs:
        if href.startswith(("http", "mailto:", "#", "javascript:")):
            continue
        target = (page.parent / href.split("#")[0]).resolve()
        assert target.exists(), f"broken link {href} on {rel}"


def test_book_pages_in_chromium(smoke_book, tmp_path, root):
    assert CHROMIUM, "chromium is not installed; .ci/run installs the Debian package 'chromium'"
    html_root, _ = smoke_book
    shots = root / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    for rel in PAGES:
        for width in (1280, 390):
            check_page(html_root, rel, tmp_path, width)
            shot = shots / f"{Path(rel).stem}-{width}.png"
            chromium(f"--window-size={width},2400", f"--screenshot={shot}", (html_root / rel).as_uri())
            assert shot.stat().st_size > 10_000


def test_browser_check_catches_a_missing_figure_and_an_empty_table(smoke_book, tmp_path):
    """The check must fail when a figure is removed or a table emptied (on a copy of the page)."""
    assert CHROMIUM, "chromium is not installed"
    html_root, _ = smoke_book
    page = html_root / "book/executed/90_summary.html"
    broken_dir = tmp_path / "broken"
    shutil.copytree(html_root, broken_dir)
    target = broken_dir / "book/executed/90_summary.html"
    # remove the image file a figure points at
    imgs = re.findall(r'<img[^>]+src="([^"]+)"', page.read_text())
    assert imgs
    (target.parent / imgs[0]).unlink()
    with pytest.raises(AssertionError, match="did not load"):
        check_page(broken_dir, "book/executed/90_summary.html", tmp_path)
    # empty a table's body
    shutil.copy(page, target)
    shutil.copytree(html_root / "_images", broken_dir / "_images", dirs_exist_ok=True)
    html = page.read_text()
    emptied = re.sub(r"(<tbody>).*?(</tbody>)", r"\1\2", html, count=1, flags=re.S)
    target.write_text(emptied)
    with pytest.raises(AssertionError, match="empty table"):
        check_page(broken_dir, "book/executed/90_summary.html", tmp_path)
