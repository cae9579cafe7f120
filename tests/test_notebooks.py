import json

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
