"""Run parameters: profiles, merging, and validation before any notebook runs.

Precedence (lowest first): the notebook's own ``parameters`` cell <- ``global:`` of
``params/<profile>.yaml`` (applied to every step that has the key) <- the profile's per-step section
<- ``--set step.key=value`` (or ``--set key=value`` for a global key). Values are YAML.

Validation is strict on purpose: an unknown key or a value of the wrong type is reported with the
step, the key and the allowed keys, before anything runs.
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import yaml


class ParameterError(ValueError):
    """A profile or --set override that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    type_name: str  # "int", "float", "bool", "str", "list", "dict", "None"


def notebook_parameters(notebook: Path) -> dict[str, Param]:
    """The literal assignments in the notebook's cell tagged ``parameters``."""
    nb = json.loads(Path(notebook).read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{notebook} must have exactly one cell tagged 'parameters', found {len(cells)}")
    source = "".join(cells[0]["source"])
    params = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            try:
                value = ast.literal_eval(node.value)
            except ValueError as exc:
                raise ParameterError(f"{notebook}: parameter {name!r} must be a literal") from exc
            params[name] = Param(name, value, type(value).__name__ if value is not None else "None")
    return params


# Ranges checked by name; a value outside says what is allowed.
def _check_range(step: str, key: str, value) -> None:
    def fail(what):
        raise ParameterError(f"{step}.{key} = {value!r}: {what}")

    def each(v):
        return v if isinstance(v, list) else [v]

    if key in {"epochs", "qat_epochs", "finetune_epochs", "pretrain_epochs", "runs", "warmup_runs",
               "representative_size", "batch_size", "train_size", "val_size", "holdout_size",
               "extra_size", "num_seeds", "eval_limit", "grid_runs", "epoch_size"} or key.endswith("_epochs"):
        for v in each(value):
            if isinstance(v, int) and v < 0:
                fail("must be >= 0")
    if key == "rank_fraction" or key.endswith("rank_fractions"):
        for v in each(value):
            if not 0 < v <= 1:
                fail("rank fractions must be in (0, 1]")
    if key in {"alpha", "alphas"}:
        for v in each(value):
            if not 0 <= v <= 1:
                fail("alpha must be in [0, 1]")
    if key == "preprocess" and value not in ("inception", "resize_crop"):
        fail("must be 'inception' (TF-slim's central crop) or 'resize_crop'")
    if key == "init" and value not in ("fresh", "trained"):
        fail("must be 'fresh' (a new initialisation per seed) or 'trained' (the baseline student)")
    if key in {"temperature", "learning_rate"}:
        if value <= 0:
            fail("must be > 0")


def _type_ok(expected: str, value) -> bool:
    if expected == "None":
        return True
    if expected == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return type(value).__name__ == expected


def parse_set(items: list[str]) -> dict[str, dict]:
    """``["distillation.alpha=0.5", "seed=1"]`` -> {"distillation": {"alpha": 0.5}, "global": {"seed": 1}}."""
    out: dict[str, dict] = {}
    for item in items or []:
        if "=" not in item:
            raise ParameterError(f"--set {item!r}: expected KEY=VALUE, for example --set distillation.alpha=0.5")
        key, raw = item.split("=", 1)
        step, _, name = key.rpartition(".")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ParameterError(f"--set {item!r}: value is not valid YAML ({exc})") from exc
        out.setdefault(step or "global", {})[name] = value
    return out


def load_profile(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        available = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ParameterError(f"profile {path.stem!r} not found at {path}; available: {', '.join(available)}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParameterError(f"profile {path} is not valid YAML{where}: "
                             f"{getattr(exc, 'problem', exc)}; fix the file and rerun") from exc
    if not isinstance(data, dict):
        raise ParameterError(f"profile {path} must be a mapping of sections (global:, data:, ...)")
    return data


def merge(step_params: dict[str, dict[str, Param]], profile: dict, overrides: dict) -> dict[str, dict]:
    """Merged, validated parameters per step. Raises ParameterError naming key, step and allowed keys."""
    merged = {step: {k: p.default for k, p in params.items()} for step, params in step_params.items()}
    all_keys = sorted({k for params in step_params.values() for k in params})
    for source_name, source in (("profile", profile), ("--set", overrides)):
        for section, values in source.items():
            if section == "global":
                for key, value in (values or {}).items():
                    targets = [s for s, params in step_params.items() if key in params]
                    if not targets:
                        raise ParameterError(
                            f"{source_name}: unknown parameter {key!r} (global); no step has it. "
                            f"Known parameters: {', '.join(all_keys)}")
                    for s in targets:
                        merged[s][key] = _checked(s, key, value, step_params[s][key], source_name)
                continue
            if section not in step_params:
                raise ParameterError(f"{source_name}: unknown step {section!r}; steps: {', '.join(step_params)}")
            for key, value in (values or {}).items():
                if key not in step_params[section]:
                    raise ParameterError(
                        f"{source_name}: unknown parameter {key!r} for step {section!r}; "
                        f"allowed: {', '.join(sorted(step_params[section]))}")
                merged[section][key] = _checked(section, key, value, step_params[section][key], source_name)
    for step, values in merged.items():
        for key, value in values.items():
            _check_range(step, key, value)
    return merged


def _checked(step: str, key: str, value, param: Param, source_name: str):
    if not _type_ok(param.type_name, value):
        raise ParameterError(
            f"{source_name}: {step}.{key} must be {param.type_name} (default {param.default!r}), "
            f"got {type(value).__name__} {value!r}")
    if param.type_name == "float" and isinstance(value, int):
        value = float(value)
    return value
