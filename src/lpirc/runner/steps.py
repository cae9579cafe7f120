"""The pipeline's steps: one parameterized notebook each, what it reads, and which repository files."""
from __future__ import annotations

import dataclasses

from lpirc.runner.params import ParameterError


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    notebook: str        # file name in notebooks/
    reads: tuple = ()    # steps whose results this step reads (its cache depends on their stamps)
    title: str = ""
    files: tuple = ()    # repository files (glob patterns) the step reads besides notebooks and code


# published figures, and the claims' criteria fixed before the run (lpirc.claims reads both)
REFERENCE = ("reference/*.csv", "criteria/*.yaml")
STEPS = (
    Step("data", "00_data.ipynb", (), "Datasheet: the embedded dataset", REFERENCE),
    Step("baseline", "01_baseline.ipynb", ("data",), "Baseline student and teachers", REFERENCE),
    Step("quantization", "10_quantization.ipynb", ("data", "baseline"), "Quantization", REFERENCE),
    Step("factorization", "20_factorization.ipynb", ("data", "baseline"), "Low-rank factorization", REFERENCE),
    Step("distillation", "30_distillation.ipynb", ("data", "baseline"), "Knowledge distillation", REFERENCE),
    Step("open_images", "40_open_images.ipynb", ("data", "baseline"), "Open Images pretraining", REFERENCE),
    Step("stacked", "60_stacked.ipynb", ("data", "baseline", "quantization", "factorization", "distillation", "open_images"),
         "The stacked model", REFERENCE),
    # after stacked: its one latency table collects the chapters' timings and times the files no chapter timed
    Step("benchmark", "50_benchmark.ipynb", ("quantization", "factorization", "stacked"), "Benchmark", REFERENCE),
    # the benchmark's grid and projection, the factorization chapter's measured ratios, reference/*.csv
    Step("rule", "70_rule.ipynb", ("benchmark", "factorization"), "What the rule rewarded", REFERENCE),
    Step("summary", "90_summary.ipynb", ("data", "baseline", "quantization", "factorization", "distillation", "open_images",
                                         "benchmark", "stacked", "rule"), "Summary", REFERENCE),
)
RESERVED_PROFILE_KEYS = ("budgets_s", "description", "scheduler")


class StepFailed(RuntimeError):
    def __init__(self, step: str, ename: str, evalue: str, notebook):
        self.step, self.ename, self.evalue, self.notebook = step, ename, evalue, notebook
        super().__init__(f"step {step!r} failed: {ename}: {evalue} (traceback in {notebook})")


def steps_by_name() -> dict[str, Step]:
    return {s.name: s for s in STEPS}


def downstream(names: set[str]) -> set[str]:
    """The given steps and every step that reads their results, directly or through others."""
    out = set(names)
    for step in STEPS:                      # STEPS is in pipeline order, so one pass suffices
        if out & set(step.reads):
            out.add(step.name)
    return out


def upstream(name: str) -> set[str]:
    """The steps whose results ``name`` reads, directly or through others."""
    by_name = steps_by_name()
    if name not in by_name:
        raise ParameterError(f"unknown step {name!r}; steps: {', '.join(by_name)}")
    out, todo = set(), list(by_name[name].reads)
    while todo:
        s = todo.pop()
        if s not in out:
            out.add(s)
            todo.extend(by_name[s].reads)
    return out


def select_steps(only: list[str] | None, start: str | None) -> list[Step]:
    names = [s.name for s in STEPS]
    for n in (only or []) + ([start] if start else []):
        if n not in names:
            raise ParameterError(f"unknown step {n!r}; steps: {', '.join(names)}")
    if only:
        return [s for s in STEPS if s.name in only]
    if start:
        return list(STEPS[names.index(start):])
    return list(STEPS)
