import json
import re

import pytest

from lpirc.paths import project_root
from lpirc.runner import config, steps

NOTEBOOKS = sorted((project_root() / "notebooks").glob("*.ipynb"))


def test_every_step_has_a_notebook_and_every_notebook_a_step():
    assert {s.notebook for s in steps.STEPS} == {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_hygiene(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    i = tagged[0]
    params = "".join(cells[i]["source"])
    assert "profile = " in params and "seed = " in params
    assert "hide-input" in cells[i]["metadata"]["tags"]
    above = "".join(cells[i - 1]["source"])
    assert cells[i - 1]["cell_type"] == "markdown" and "profile" in above
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
    for c in cells:
        if c["cell_type"] == "code":
            assert not c.get("outputs") and c.get("execution_count") is None, "no outputs committed"
            src = "".join(c["source"])
            assert "!pip" not in src and "display(Markdown('#" not in src


TECHNIQUES = ["10_quantization", "20_factorization", "30_distillation", "40_open_images", "50_benchmark", "60_stacked"]


def code_lines(path) -> list[str]:
    nb = json.loads(path.read_text())
    return [line for c in nb["cells"] if c["cell_type"] == "code" for line in "".join(c["source"]).splitlines()]


# a line of words, not of logic: a string literal (a figure's caption or alt text, a table's caption) alone
PROSE = re.compile(r"""^\s*(?:(?:caption|alt)=)?[rf]?["']""")


def test_notebooks_are_parameters_calls_and_tables():
    """The experiments live in the package: at most 650 lines of notebook logic (lines that are only the
    words of a caption do not count: a figure's caption belongs beside the call that draws it), and no
    loop statement."""
    assert sum(1 for p in NOTEBOOKS for line in code_lines(p) if not PROSE.match(line)) <= 650
    for p in NOTEBOOKS:
        loops = [line for line in code_lines(p) if re.match(r"\s*(for|while)\b.*:\s*(#.*)?$", line)]
        assert not loops, f"{p.name} has a loop; a grid belongs in a package function: {loops}"


@pytest.mark.parametrize("name", TECHNIQUES)
def test_technique_chapters_teach(name):
    """A Method section that shows the package's code with a link to its source, a Summary, two exercises."""
    nb = json.loads((project_root() / "notebooks" / f"{name}.ipynb").read_text())
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    method = text[text.index("## Method"):]
    assert "{literalinclude} ../../src/lpirc/" in method and ":pyobject:" in method
    assert "{download}`src/lpirc/" in method
    assert "## Summary" in text
    assert text.count("{exercise}") >= 2
    assert text.count("{solution}") + text.count("{solution-start}") == text.count("{exercise}")
    assert text.index("## Method") < text.index("## Summary") < text.index("## Exercises")


@pytest.mark.slow
def test_a_chapter_runs_by_hand(smoke_run, smoke_by_hand):
    """30_distillation.ipynb executed as a person would (nbclient, no papermill), after setting
    profile = "smoke" and a small grid in its first cell (tests/smoke_followers.py, in the background
    once the smoke run has finished): it makes what it reads (here: finds it fresh) and writes to
    results/smoke/by_hand/."""
    _, results, _ = smoke_run
    assert smoke_by_hand == results / "by_hand" / "distillation"
    assert (smoke_by_hand / "claims.json").exists() and (smoke_by_hand / "tables" / "runs.csv").exists()
    assert (smoke_by_hand / "tables" / "task_time_split.csv").exists()     # the chapter's default measures it
    assert not (results / "distillation" / "by_hand").exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_chapter_ends_with_a_takeaway_and_exercises(path):
    """A "What to take away" section generated from the chapter's results (lpirc.takeaways.show), then at
    least two exercises, each with a solution (a plain one, or one gated around a cell that computes it)."""
    cells = json.loads(path.read_text())["cells"]
    heads = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
             and "".join(c["source"]).lstrip().startswith("## What to take away")]
    assert len(heads) == 1, "one '## What to take away' section"
    nxt = cells[heads[0] + 1]
    assert nxt["cell_type"] == "code" and "takeaways.show(" in "".join(nxt["source"]), "the takeaway is generated"
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    exercises = text.count("{exercise}")
    assert exercises >= 2 and text.count("{solution}") + text.count("{solution-start}") == exercises
    assert text.count("{solution-start}") == text.count("{solution-end}")
    assert text.index("## What to take away") < text.index("## Exercises")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_is_saved_with_a_caption_and_alt_text(path):
    """StepContext.save_figure takes both as required keywords; the book turns them into a captioned figure."""
    for c in json.loads(path.read_text())["cells"]:
        src = "".join(c["source"])
        if c["cell_type"] == "code" and "save_figure(" in src:
            assert "caption=" in src and "alt=" in src, src[:200]
            assert "mystnb" not in c.get("metadata", {}), "captions come from save_figure, not from cell metadata"
