"""The book reads as well as it computes: captioned figures, takeaways, and the checks on built pages.

Fast tests of the pieces (no pipeline run): ``StepContext.save_figure`` demands a caption and alt text
and hands them to the book; ``lpirc.runner.book.captioned_figures`` turns them into MyST-NB figures and
refuses an uncaptioned image; the HTML checks of tests/bookcheck.py catch what they are meant to catch;
the takeaways count their points.
"""
import json

import pytest

from bookcheck import figure_problems, leaked_values, raw_reprs, solution_problems
from lpirc import takeaways
from lpirc.runner import book
from lpirc.runner import context as context_module
from lpirc.runner.context import StepContext


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    return fig


def test_save_figure_needs_a_caption_and_alt_text_and_passes_them_on(tmp_path, monkeypatch):
    ctx = StepContext("quantization", "smoke", tmp_path, tmp_path / "out", 0)
    shown = []
    monkeypatch.setattr(context_module, "display", lambda obj, metadata=None: shown.append(metadata))
    with pytest.raises(TypeError):
        ctx.save_figure(_figure(), "bare")                                    # keyword-only, required
    with pytest.raises(ValueError, match="caption"):
        ctx.save_figure(_figure(), "empty", caption=" ", alt="A line.")
    ctx.save_figure(_figure(), "accuracy_vs_latency", caption="What to see:\n  the line rises.", alt="A rising line.",
                    wide=True)
    assert (tmp_path / "out" / "figures" / "accuracy_vs_latency.png").exists()
    assert shown == [{"lpirc": {"caption": "What to see: the line rises.", "alt": "A rising line.",
                                "name": "fig-quantization-accuracy-vs-latency", "wide": True}}]


def test_a_step_names_its_own_files_by_its_folder_and_another_steps_by_a_path_that_survives_the_move(tmp_path):
    ctx = StepContext("stacked", "smoke", tmp_path, tmp_path / ".staging" / "stacked.1", 0)
    assert ctx.relative(ctx.path("models", "a.tflite")) == "models/a.tflite"
    assert ctx.relative(tmp_path / "quantization" / "models" / "s.tflite") == "../quantization/models/s.tflite"


def _cell(outputs, metadata=None):
    return {"cell_type": "code", "metadata": metadata or {}, "source": "", "outputs": outputs, "execution_count": 1}


PNG = {"image/png": "iVBORw0KGgo=", "text/plain": "<IPython.core.display.Image object>"}


def test_captioned_figures_become_mystnb_figures():
    meta = {"lpirc": {"caption": "Top-1 against latency.", "alt": "A scatter plot.", "name": "fig-x-y", "wide": True}}
    nb = {"cells": [_cell([{"output_type": "display_data", "data": PNG, "metadata": meta}], {"tags": ["hide-input"]}),
                    _cell([{"output_type": "stream", "name": "stdout", "text": "hello"}])]}
    book.captioned_figures(nb)
    cell = nb["cells"][0]
    assert cell["metadata"]["mystnb"] == {"figure": {"caption": "Top-1 against latency.", "name": "fig-x-y",
                                                     "classes": "lpirc-wide"}, "image": {"alt": "A scatter plot."}}
    assert cell["metadata"]["tags"] == ["hide-input"] and "lpirc" not in cell["outputs"][0]["metadata"]
    json.dumps(nb)


def test_an_uncaptioned_image_or_a_crowded_figure_cell_stops_the_book():
    with pytest.raises(book.BookError, match="without a caption"):
        book.captioned_figures({"cells": [_cell([{"output_type": "display_data", "data": PNG, "metadata": {}}])]}, "x.ipynb")
    meta = {"lpirc": {"caption": "c", "alt": "a b c", "name": "fig-x-y"}}
    crowded = _cell([{"output_type": "display_data", "data": PNG, "metadata": meta},
                     {"output_type": "display_data", "data": {"text/markdown": "more"}, "metadata": {}}])
    with pytest.raises(book.BookError, match="cell of its own"):
        book.captioned_figures({"cells": [crowded]}, "x.ipynb")


PAGE = """<html><body><main>
<figure id="fig-a"><img alt="A scatter plot of top-1 against latency." src="a.png"/>
<figcaption><p><span class="caption-number">Fig. 1 </span><span class="caption-text">What to see.</span></p></figcaption></figure>
<table><tbody><tr><td>0.967 [0.959, 0.974]</td></tr></tbody></table>
<div class="cell"><div class="cell_input"><pre>x = np.array([1]); p = PosixPath("a")</pre></div>
<div class="cell_output"><p>computed 1.25</p></div></div>
<div class="solution dropdown admonition"><p class="admonition-title">Solution to Exercise 1</p>
<section><p>Its MAC ratio is close to 1, and its ratio 0.967 is read off the table.</p>
<div class="cell"><div class="cell_output"><p>the ratio is below 1: 0.9712</p></div></div></section></div>
</main></body></html>"""


def test_the_page_checks_pass_a_good_page():
    assert figure_problems(PAGE) == [] and raw_reprs(PAGE) == [] and solution_problems(PAGE) == []


def test_the_page_checks_catch_what_they_are_for():
    hashed = PAGE.replace('alt="A scatter plot of top-1 against latency."', 'alt="7f3a9c0d1e2b4a5f6c7d8e9f.png"')
    assert any("alt text" in p for p in figure_problems(hashed))
    bare = PAGE.replace('<span class="caption-text">What to see.</span>', "")
    assert any("no caption" in p for p in figure_problems(bare))
    outside = PAGE.replace("<figure id=\"fig-a\">", "").replace("</figure>", "")
    assert any("no caption" in p for p in figure_problems(outside))
    leaked = PAGE.replace("<p>computed 1.25</p>", "<pre>PosixPath('/r/.staging/baseline.x/histories.json')</pre>")
    assert raw_reprs(leaked) and "histories.json" in raw_reprs(leaked)[0]
    for raw in ("<pre>&lt;Figure size 640x480 with 1 Axes&gt;</pre>", "<p>array([1, 2])</p>"):
        assert raw_reprs(PAGE.replace("<p>computed 1.25</p>", raw))
    typed = PAGE.replace("and its ratio 0.967 is read off the table", "yet its latency ratio is above 1")
    assert any("side of 1" in p for p in solution_problems(typed))
    made_up = PAGE.replace("its ratio 0.967", "an SD of 0.8")
    assert any("0.8" in p for p in solution_problems(made_up))


def test_claim_points_state_verdict_number_and_reason():
    c = {"id": "mixing_ratio", "verdict": "inconclusive", "estimate": 0.4, "interval": [-0.6, 1.4], "unit": "points",
         "confidence": 0.9, "min_detectable": 1.8, "design": {"n": 4, "margin_points": 1.0}}
    text = takeaways.claim_point(c, "the mixing ratio does not matter")
    assert text.startswith("**the mixing ratio does not matter: inconclusive.** +0.40 [-0.60, +1.40] points (90% interval)")
    assert "straddles" in text and "1.80 points" in text and "more seeds" in text


def test_a_takeaway_has_three_to_five_points(tmp_path, monkeypatch):
    monkeypatch.setitem(takeaways.CHAPTERS, "data", lambda folder, results: ["one", "two"])
    with pytest.raises(ValueError, match="3 to 5"):
        takeaways.show("data", tmp_path)
    said = []
    monkeypatch.setattr(takeaways, "say", said.append)
    monkeypatch.setitem(takeaways.CHAPTERS, "data", lambda folder, results: ["one", "", "two", "three"])
    assert takeaways.points("data", tmp_path) == ["one", "two", "three"]
    assert takeaways.show("data", tmp_path) is None         # a cell ending with it shows no value
    assert said == ["- one\n- two\n- three"]


def test_a_bare_value_shown_by_a_cell_is_caught():
    shown = {"output_type": "display_data", "data": {"text/markdown": "- a point"}, "metadata": {}}
    value = {"output_type": "execute_result", "data": {"text/plain": "PosixPath('/r/histories.json')"}, "metadata": {}}
    assert leaked_values({"cells": [_cell([shown])]}) == []
    assert leaked_values({"cells": [_cell([shown, value])]}) == ["cell 0: PosixPath('/r/histories.json')"]
    assert leaked_values({"cells": [_cell([value], {"tags": ["remove-cell"]})]}) == []
