"""A profile's parameters for every step: notebook defaults <- profile <- --set, checked before any work."""
from __future__ import annotations

import json
from pathlib import Path

from lpirc.runner import params as P
from lpirc.runner import schema
from lpirc.runner.steps import STEPS

SCHEMA_FILE = Path("params") / "profile.schema.json"   # for editors; `lpirc schema --write` regenerates it


def step_parameters(root: Path) -> dict[str, dict[str, P.Param]]:
    """Each step's parameters with their notebook defaults. A notebook whose parameters are not exactly
    its schema model's keys is refused: the schema holds the types, the notebook the defaults."""
    out = {}
    for step in STEPS:
        nb = root / "notebooks" / step.notebook
        if not nb.exists():
            raise FileNotFoundError(f"notebook {nb} for step {step.name!r} is missing")
        params = P.notebook_parameters(nb)
        model = schema.STEP_MODELS.get(step.name)
        if model is None:
            raise P.ParameterError(f"step {step.name!r} has no parameter schema: add a model with the types and "
                                   f"ranges of {', '.join(params)} to STEP_MODELS in src/lpirc/runner/schema.py")
        extra = [k for k in params if k not in model.model_fields]
        lacking = [k for k in model.model_fields if k not in params]
        if extra or lacking:
            raise P.ParameterError(
                f"notebooks/{step.notebook} and the schema's {model.__name__} (src/lpirc/runner/schema.py) "
                "disagree: " + "; ".join(filter(None, [
                    extra and f"parameters not in the schema: {', '.join(extra)} (add them with their type and range)",
                    lacking and f"schema keys missing from the parameters cell: {', '.join(lacking)}"])))
        out[step.name] = params
    return out


def json_schema(root: Path) -> dict:
    """The JSON schema of a profile file: types and ranges from lpirc.runner.schema, defaults from the notebooks."""
    defaults = {step: {k: p.default for k, p in params.items()} for step, params in step_parameters(root).items()}
    return schema.profile_json_schema(defaults)


def json_schema_text(root: Path) -> str:
    return json.dumps(json_schema(root), indent=2) + "\n"


def profile_scheduler(root: Path, profile: str) -> str | None:
    """The profile's ``scheduler:`` (where grid tasks run by default), if it names one."""
    return P.load_profile(root / "params" / f"{profile}.yaml").get("scheduler")


def resolve_parameters(root: Path, profile: str, overrides: list[str] | None = None) -> tuple[dict, dict]:
    """(merged parameters per step, budgets) for a profile plus --set overrides; validated."""
    name = f"params/{profile}.yaml"
    prof = P.load_profile(root / name)
    P.check_profile_keys(prof, name)
    budgets = prof.get("budgets_s", {}) or {}
    prof = {k: v for k, v in prof.items() if k not in schema.RESERVED_PROFILE_KEYS}
    merged = P.merge(step_parameters(root), prof, P.parse_set(overrides or []), profile_name=name)
    for step, values in merged.items():
        if "profile" in values:
            values["profile"] = profile
    check_cross_step(merged)
    return merged, budgets


def check_cross_step(merged: dict) -> None:
    """Checks the schema cannot make: values that depend on others, files and folders that must exist,
    teacher names across steps. (Types, ranges and choices: lpirc.runner.schema, checked by P.merge.)"""
    d = merged.get("data", {})
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
        file = spec.get("weights", "none")
        if file not in (None, "", "none", "imagenet") and not Path(file).exists():
            raise P.ParameterError(f"{where}.weights = {file!r} does not exist; give none, imagenet or the "
                                   "path of a .keras, .h5 or float MobileNet v1 .tflite file")
    teachers = {t["name"] for t in merged.get("baseline", {}).get("teachers", [])}
    for step, values in merged.items():
        if step == "baseline":
            continue
        for key in ("teacher", "teachers"):
            for name in ([values[key]] if key == "teacher" else values[key]) if key in values else []:
                if name not in teachers:
                    raise P.ParameterError(f"{step}.{key}: unknown teacher {name!r}; baseline trains: "
                                           f"{', '.join(sorted(teachers))} (add it to baseline.teachers or pick one)")
