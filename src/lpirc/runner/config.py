"""A profile's parameters for every step: notebook defaults <- profile <- --set, checked before any work."""
from __future__ import annotations

from pathlib import Path

from lpirc.runner import params as P
from lpirc.runner.context import STACKED_SOURCES
from lpirc.runner.steps import RESERVED_PROFILE_KEYS, STEPS


def step_parameters(root: Path) -> dict[str, dict[str, P.Param]]:
    out = {}
    for step in STEPS:
        nb = root / "notebooks" / step.notebook
        if not nb.exists():
            raise FileNotFoundError(f"notebook {nb} for step {step.name!r} is missing")
        out[step.name] = P.notebook_parameters(nb)
    return out


def profile_scheduler(root: Path, profile: str) -> str | None:
    """The profile's ``scheduler:`` (where grid tasks run by default), if it names one."""
    return P.load_profile(root / "params" / f"{profile}.yaml").get("scheduler")


def resolve_parameters(root: Path, profile: str, overrides: list[str] | None = None) -> tuple[dict, dict]:
    """(merged parameters per step, budgets) for a profile plus --set overrides; validated."""
    prof = P.load_profile(root / "params" / f"{profile}.yaml")
    budgets = prof.get("budgets_s", {}) or {}
    prof = {k: v for k, v in prof.items() if k not in RESERVED_PROFILE_KEYS}
    merged = P.merge(step_parameters(root), prof, P.parse_set(overrides or []))
    for step, values in merged.items():
        if "profile" in values:
            values["profile"] = profile
    check_cross_step(merged)
    return merged, budgets


def check_cross_step(merged: dict) -> None:
    """Checks that need more than one value: choices, folders that must exist, names across steps."""
    d = merged.get("data", {})
    if d.get("source") not in (None, "embedded", "folders"):
        raise P.ParameterError(f"data.source = {d.get('source')!r}: must be 'embedded' (generated) or "
                               "'folders' (real image folders, see book/reproduce.md)")
    if d.get("source") == "folders":
        for key in ("train_dir", "val_dir", "holdout_dir", "extra_dir", "val_labels_file"):
            value = d.get(key)
            if key in ("train_dir", "val_dir") and not value:
                raise P.ParameterError(f"data.{key} is required when data.source is 'folders'")
            if value and not Path(value).exists():
                raise P.ParameterError(f"data.{key} = {value!r} does not exist; fix the path in the "
                                       "profile or check the copy with `lpirc data verify`")
    b = merged.get("baseline", {})
    for where, spec in [("baseline.student", b.get("student", {}))] + [
            (f"baseline.teachers[{t.get('name', i)}]", t) for i, t in enumerate(b.get("teachers", []))]:
        if spec.get("arch") == "frozen":
            if not spec.get("path") or not Path(spec["path"]).exists():
                raise P.ParameterError(f"{where}: a frozen teacher needs the path of an existing .tflite or "
                                       f".keras classifier, got {spec.get('path')!r}")
            if where == "baseline.student":
                raise P.ParameterError("baseline.student cannot be frozen: the student is trained")
        file = spec.get("weights", "none")
        if file not in (None, "", "none", "imagenet") and not Path(file).exists():
            raise P.ParameterError(f"{where}.weights = {file!r} does not exist; give none, imagenet or the "
                                   "path of a .keras, .h5 or float MobileNet v1 .tflite file")
    source = merged.get("stacked", {}).get("source")
    if source is not None and source not in STACKED_SOURCES:
        raise P.ParameterError(f"stacked.source = {source!r}: must be one of {', '.join(STACKED_SOURCES)}")
    teachers = {t["name"] for t in merged.get("baseline", {}).get("teachers", [])}
    for step, values in merged.items():
        if step == "baseline":
            continue
        for key in ("teacher", "teachers"):
            for name in ([values[key]] if key == "teacher" else values[key]) if key in values else []:
                if name not in teachers:
                    raise P.ParameterError(f"{step}.{key}: unknown teacher {name!r}; baseline trains: "
                                           f"{', '.join(sorted(teachers))} (add it to baseline.teachers or pick one)")
