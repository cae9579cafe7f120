"""Building the Jupyter Book from one profile's results.

The book never executes notebooks (``execute_notebooks: 'off'``): Jupyter Book's cache runs them
alphabetically and keys only on code cells, so it can show stale pages. Instead the pipeline
executes them with papermill into results/<profile>/<step>/, and this module copies them to
book/executed/ (where _toc.yml includes them), writes the provenance block the intro page shows,
and runs a clean ``jupyter-book build -W -n --keep-going``.
"""
from __future__ import annotations

import csv
import html
import json
import shutil
import subprocess
import sys
from pathlib import Path

from lpirc.paths import project_root, results_dir
from lpirc.runner.steps import STEPS
from lpirc.results import atomic_path, read_json


class BookError(RuntimeError):
    pass


def _fmt_s(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _cell(text) -> str:
    """Text for a Markdown table cell: HTML-escaped (a CPU name may hold '<', '&') and pipes escaped."""
    return html.escape(str(text)).replace("|", "\\|")


def provenance_markdown(run: dict) -> str:
    git = run.get("git", {})
    cpu = run.get("host", {}).get("cpu", {})
    commit = (git.get("commit") or "unknown")[:12] + (" (uncommitted changes)" if git.get("dirty") else "")
    lines = [
        "| | |", "|---|---|",
        f"| profile | `{run.get('profile')}` |",
        f"| commit | `{commit}` |",
        f"| last updated | {run.get('updated', '?')} |",
        f"| CPU | {_cell(cpu.get('model', '?'))}, {cpu.get('logical_cpus', '?')} logical CPUs; "
        f"ISA: {', '.join(cpu.get('flags', [])) or '?'} |",
        f"| TensorFlow / LiteRT | {run.get('packages', {}).get('tensorflow')} / "
        f"{run.get('packages', {}).get('ai-edge-litert')} |",
        f"| total step wall time | {_fmt_s(run.get('total_wall_s', 0))} |",
        "",
        "| step | wall time | budget |", "|---|---|---|",
    ]
    for step, rec in run.get("steps", {}).items():
        budget = rec.get("budget_s")
        state = rec.get("status")
        if state == "ok" and budget and rec.get("wall_s", 0) > budget:
            state = "over budget"
        lines.append(f"| {step} | {_fmt_s(rec.get('wall_s', 0))} ({state}) | "
                     f"{_fmt_s(budget) if budget else '-'} |")
    return "\n".join(lines) + "\n"


def stage(profile: str, root: Path | None = None, results: Path | None = None) -> list[Path]:
    """Copy the profile's executed notebooks to book/executed/ and write book/_generated/."""
    root = Path(root or project_root())
    results = Path(results or results_dir(profile, root))
    run_json = results / "run.json"
    if not run_json.exists():
        raise BookError(f"no results for profile {profile!r} at {results}: run `lpirc run --profile {profile}` first")
    missing = [s for s in STEPS if not (results / s.name / s.notebook).exists()]
    if missing:
        names = " ".join(s.name for s in missing)
        raise BookError(f"profile {profile!r} has no executed notebook for: {names}; "
                        f"run `lpirc run --profile {profile} --only {names}`")
    executed = root / "book" / "executed"
    if executed.exists():
        shutil.rmtree(executed)
    executed.mkdir(parents=True)
    copied = []
    for s in STEPS:
        target = executed / s.notebook
        nb = json.loads((results / s.name / s.notebook).read_text())
        captioned_figures(nb, s.notebook)
        with atomic_path(target) as tmp:
            tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        copied.append(target)
    generated = root / "book" / "_generated"
    generated.mkdir(parents=True, exist_ok=True)
    with atomic_path(generated / "provenance.md") as tmp:
        tmp.write_text(provenance_markdown(read_json(run_json)))
    with atomic_path(generated / "dask_reports.md") as tmp:
        tmp.write_text(dask_reports_markdown(results, generated / "dask"))
    with atomic_path(generated / "task_time_split.md") as tmp:
        tmp.write_text(task_split_markdown(results))
    return copied


def task_split_markdown(results: Path) -> str:
    """The distillation step's table of where a grid task's time goes (its sweep, and the same kind of
    task run as before: with int8 conversion and LiteRT evaluation, on a fresh worker), for the
    reproduce page."""
    path = results / "distillation" / "tables" / "task_time_split.csv"
    if not path.exists():
        return "This build's distillation step did not measure it (its parameter `time_split` was off).\n"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    head, body = rows[0], rows[1:]
    lines = ["| " + " | ".join(_cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    for r in body:
        lines.append("| " + " | ".join([_cell(r[0])] + [f"{float(v):.2f}" if v else "–" for v in r[1:]]) + " |")
    return ("Measured in this build's distillation step (`results/<profile>/distillation/tables/task_time_split.csv`), "
            "mean seconds per task and share of a task's wall time:\n\n" + "\n".join(lines) + "\n")


_SHOWN = ("display_data", "execute_result")
_IMAGES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")


def captioned_figures(nb: dict, name: str = "notebook") -> dict:
    """Turn each figure's caption and alt text (the metadata ``StepContext.save_figure`` attaches to its
    display output) into the MyST-NB cell metadata that renders a numbered, captioned figure:
    ``{"mystnb": {"figure": {"caption", "name"}, "image": {"alt"}}}``. MyST-NB wraps *every* displayed
    output of such a cell in the figure, so a figure's cell may display nothing else. An image shown
    without a caption is an error: the book has no uncaptioned figure. Modifies ``nb`` and returns it."""
    problems = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        shown = [o for o in cell.get("outputs", []) if o.get("output_type") in _SHOWN]
        figures = [o["metadata"].pop("lpirc") for o in shown if isinstance(o.get("metadata"), dict) and "lpirc" in o["metadata"]]
        images = [o for o in shown if any(m in o.get("data", {}) for m in _IMAGES)]
        if figures:
            if len(shown) > 1:
                problems.append(f"cell {i} shows a figure and {len(shown) - 1} other output(s): give each figure a cell of its own")
                continue
            fig = figures[0]
            options = {"caption": fig["caption"], "name": fig["name"]}
            if fig.get("wide"):
                options["classes"] = "lpirc-wide"
            cell.setdefault("metadata", {})["mystnb"] = {**cell["metadata"].get("mystnb", {}), "figure": options,
                                                         "image": {"alt": fig["alt"]}}
        elif images and not (cell.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("caption")
                             and cell["metadata"]["mystnb"].get("image", {}).get("alt")):
            problems.append(f"cell {i} shows an image without a caption and alt text (use StepContext.save_figure)")
    if problems:
        raise BookError(f"{name}: " + "; ".join(problems))
    return nb


def dask_reports_markdown(results: Path, dest: Path) -> str:
    """Copy each grid step's Dask performance report (and the serial/local measurement's) next to the
    book's generated pages; the Markdown that links them and states the measured speed-up."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    lines = []
    speed = results / "grid_speedup" / "speedup.json"
    if speed.exists():
        rec = read_json(speed)
        timed = ", ".join(f"{_fmt_s(rec[f'{s}_s'])} with `{s.replace('_', '-')}`"
                          + (f" ({rec[f'speedup_serial_over_{s}']:.2f}x faster than serial)" if s != "serial" else "")
                          for s in ("serial", "local", "dask_local") if f"{s}_s" in rec)
        lines.append(f"Measured for this build's profile on {_cell(rec['cpu']['model'])} "
                     f"({rec['cpu']['logical_cpus']} logical CPUs), `tools/grid_speedup.py`: the distillation "
                     f"grid ({rec['tasks']} tasks, seeds {rec.get('seeds')}) took {timed}; rows identical: "
                     f"{'yes' if rec['rows_identical'] else 'no'}.\n")
    reports = sorted(results.glob("*/dask_report.html"))
    for report in reports:
        shutil.copyfile(report, dest / f"{report.parent.name}.html")
    if reports:
        lines.append("Task timelines of this build (Dask performance reports, HTML): "
                     + ", ".join(f"{{download}}`{r.parent.name} <dask/{r.parent.name}.html>`" for r in reports) + ".")
    else:
        lines.append("No grid of this build ran on Dask (`dask-local` or a cluster address), so it has no Dask task timeline.")
    return "\n".join(lines) + "\n"


def build(profile: str = "default", root: Path | None = None, results: Path | None = None) -> Path:
    """Stage and build clean with -W -n --keep-going; returns the index page to open."""
    root = Path(root or project_root())
    stage(profile, root, results)
    out = root / "_build"
    for sub in ("html", ".doctrees", "jupyter_execute"):
        shutil.rmtree(out / sub, ignore_errors=True)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--all",
           "--warningiserror", "--nitpick", "--keep-going"]
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=root)
    if proc.returncode != 0:
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}); warnings are errors, see above")
    index = out / "html" / "book" / "index.html"
    if not index.exists():
        raise BookError(f"build finished but {index} is missing")
    return index
