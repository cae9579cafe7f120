"""Checks of a built page's HTML that need no browser: captioned figures with meaningful alt text, no
raw Python reprs, and exercise solutions that do not state what the page's own results contradict.

Used by tests/test_pipeline.py (every chapter of the smoke book) and tests/test_browser.py.
"""
from __future__ import annotations

import re

from bs4 import BeautifulSoup

# what a value's repr looks like when a cell's last expression leaks into the page
RAW_REPRS = ("PosixPath(", "<Figure", "array(")
# an alt text that is a file name or a content hash (what Sphinx writes when a figure has none)
FILE_ALT = re.compile(r"(^[0-9a-f]{16,}(\.\w+)?$)|(\.(png|jpe?g|svg|gif)$)|(^$)", re.I)
NUMBER = re.compile(r"(?<![\w.])[-−+]?\d+\.\d+")
# a measured ratio's side of 1 is a run's outcome: a solution may state it only from a computed cell
RATIO_SIDE = re.compile(r"ratios? (?:is |are |stays |stay |was |were )?(?:above|below|under|over) 1\b(?!\.?\d)", re.I)


def _main(html: str):
    soup = BeautifulSoup(html, "html.parser")
    return soup.find("main") or soup.find("article") or soup


def reader_text(html: str) -> str:
    """The text a reader is shown as prose and results: paragraphs, lists, tables, captions and cell
    outputs, but not code (cell inputs, included source listings), where any text is legitimate."""
    main = _main(html)
    for code in main.select("div.cell_input, div.highlight, pre.literal-block"):
        if not code.find_parent(class_="cell_output"):
            code.decompose()
    return main.get_text(" ")


def raw_reprs(html: str) -> list[str]:
    """Raw Python reprs shown to the reader (each with some context)."""
    text = reader_text(html)
    found = []
    for raw in RAW_REPRS:
        for m in re.finditer(re.escape(raw), text):
            found.append(text[max(0, m.start() - 40):m.end() + 60].replace("\n", " "))
    return found


def figure_problems(html: str) -> list[str]:
    """Every image of the page's content must be a figure with a caption and with alt text that says
    what it shows (not a file or hash name)."""
    problems = []
    for img in _main(html).find_all("img"):
        src, alt = img.get("src", "?"), (img.get("alt") or "").strip()
        fig = img.find_parent("figure")
        caption = fig.find("figcaption") if fig else None
        text = caption.get_text(" ", strip=True) if caption else ""
        if not re.sub(r"^Fig\.\s*[\d.]+\s*", "", text).strip(" #"):
            problems.append(f"image {src} has no caption")
        if FILE_ALT.search(alt) or len(alt.split()) < 3:
            problems.append(f"image {src} has no meaningful alt text: {alt!r}")
    return problems


def _numbers(text: str) -> set[str]:
    return {n.replace("−", "-").lstrip("+") for n in NUMBER.findall(text)}


def solution_problems(html: str) -> list[str]:
    """Exercise solutions must not state run-dependent outcomes in typed text: every decimal number in a
    solution's own prose must appear elsewhere on the page (its tables, text, parameters), and no typed
    sentence may say on which side of 1 a measured ratio lies. Text a solution's code cell computed from
    the results is exempt: it comes from the run."""
    main = _main(html)
    solutions = main.select("div.solution")
    page = BeautifulSoup(str(main), "html.parser")
    for sol in page.select("div.solution"):
        sol.decompose()
    available = _numbers(page.get_text(" "))
    problems = []
    for sol in solutions:
        sol = BeautifulSoup(str(sol), "html.parser")
        title = sol.find(class_="admonition-title")
        name = title.get_text(" ", strip=True) if title else "a solution"
        if title:
            title.decompose()
        for cell in sol.select("div.cell, div.highlight, pre"):
            cell.decompose()
        text = sol.get_text(" ")
        for n in sorted(_numbers(text) - available):
            problems.append(f"{name}: states {n}, which appears nowhere else on the page")
        for m in RATIO_SIDE.finditer(text):
            problems.append(f"{name}: states a measured ratio's side of 1 in typed text ({m.group(0)!r}); compute it")
    return problems


def leaked_values(nb: dict) -> list[str]:
    """Cells of an executed notebook whose last expression's value was shown as plain text (a path, a list,
    a figure object): an ``execute_result`` with nothing but ``text/plain``. Tables, sentences and figures
    are displayed on purpose (display_data); a bare value never is."""
    found = []
    for i, cell in enumerate(nb.get("cells", [])):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") != "code" or "remove-cell" in tags or "remove-output" in tags:
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") == "execute_result" and set(o.get("data", {})) <= {"text/plain"}:
                found.append(f"cell {i}: {''.join(o['data'].get('text/plain', ''))[:80]}")
    return found
